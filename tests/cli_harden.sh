#!/usr/bin/env bash
# Hardening (issue 15): lost output, files that are not regular, leftovers, a full chat context, messages
# that mislead, bounds, environment values, the pipeline cache. Every command here is bounded in time.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_harden
model="$SHARED/models/stories260K.gguf"
[ -f "$model" ] || cli_skip "$model not found"
cli_require_device
T="timeout 120"

# ---- Output that cannot be written: exit 1 with one line, never lost with exit 0 ----
text="$TMP/text.txt"
for i in $(seq 1 40); do echo "Once upon a time, there was a little girl named Lily. She liked to play."; done >"$text"
echo hi >"$TMP/hi.txt"
for where in full closed; do
  for c in "run -m $model -n 20 --temp 0" "perplexity -m $model -f $text -c 16" "info $model" "devices" \
           "tokenize -m $model -p hello" "bench -m $model -p 8 -n 8 -r 1" "chat -m $model -n 8 --temp 0" \
           "--help" "synth --help"; do
    if [ "$where" = full ]; then
      $T "$BIN" $c <"$TMP/hi.txt" >/dev/full 2>"$TMP/err"
    else
      $T "$BIN" $c <"$TMP/hi.txt" >&- 2>"$TMP/err"
    fi
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q "cannot write the output" "$TMP/err"; then
      ok "${c%% *} with stdout $where: exit 1, said so"
    else
      fail "${c%% *} with stdout $where: exit $rc: $(head -c 300 "$TMP/err")"
    fi
  done
done
# SIGPIPE ignored: generation stops at the first failed write instead of filling the context.
(trap '' PIPE; $T "$BIN" run -m "$model" -n -1 -c 2048 --temp 1 --seed 1 2>"$TMP/err" | head -c 10 >/dev/null
 echo "${PIPESTATUS[0]}" >"$TMP/rc")
rc=$(cat "$TMP/rc")
[ "$rc" -eq 1 ] && grep -q "cannot write the output: Broken pipe" "$TMP/err" && ok "run, SIGPIPE ignored: stops" ||
  fail "run, SIGPIPE ignored: exit $rc: $(head -c 300 "$TMP/err")"
for i in $(seq 1 200); do echo "Tell me a story."; done >"$TMP/story.txt"
(trap '' PIPE; $T "$BIN" chat -m "$model" -c 2048 --temp 1 <"$TMP/story.txt" 2>"$TMP/err" | head -c 10 >/dev/null
 echo "${PIPESTATUS[0]}" >"$TMP/rc")
rc=$(cat "$TMP/rc")
[ "$rc" -eq 1 ] && grep -q "cannot write the output: Broken pipe" "$TMP/err" && ok "chat, SIGPIPE ignored: stops" ||
  fail "chat, SIGPIPE ignored: exit $rc: $(head -c 300 "$TMP/err")"

# ---- Chat at a full context drops to about half of it, so the next turns fit without a re-prefill ----
for i in $(seq 1 40); do echo "Tell me a story."; done >"$TMP/turns.txt"
if expect_ok $T "$BIN" chat -m "$model" -c 256 -n 4 --temp 0 --system "Be brief." <"$TMP/turns.txt"; then
  n=$(grep -c "forgot the" "$TMP/err")
  # One exchange is about 55 tokens here: dropping only to 3/4 of the context forgot at every turn (39 of 40).
  [ "$n" -ge 1 ] && [ "$n" -le 25 ] && ok "chat at a full context: $n of 40 turns forgot messages" ||
    fail "chat at a full context: $n of 40 turns forgot messages (want 1 to 25)"
fi
"$BIN" chat --help | grep -q "at most half of the context" && ok "chat --help says half" ||
  fail "chat --help does not describe dropping to half the context"

# ---- Messages that said the wrong thing ----
if VKLLM_DEVICE=999 expect_ok "$BIN" devices; then
  grep -q "^device 0" "$TMP/out" && ! grep -q "(default)" "$TMP/out" && ok "devices ignores a VKLLM_DEVICE that matches nothing" ||
    fail "devices with VKLLM_DEVICE=999: $(head -c 300 "$TMP/out")"
fi
# Every device says whether it has timeline semaphores (vkllm_context_timeline); Vulkan 1.2 requires them.
if expect_ok "$BIN" devices; then
  read -r n_dev n_line n_bad < <(awk '/^device /{d++} /Vulkan API/{split($3,v,"."); api=v[1]*100+v[2]}
    /^ +timeline semaphore +(yes|no)$/{n++; if (api>=102 && $3!="yes") bad++} END{print d+0, n+0, bad+0}' "$TMP/out")
  [ "$n_dev" -ge 1 ] && [ "$n_line" -eq "$n_dev" ] && [ "$n_bad" -eq 0 ] &&
    ok "devices: the timeline semaphore of each of $n_dev device(s)" ||
    fail "devices: $n_line timeline semaphore lines for $n_dev devices, $n_bad Vulkan 1.2+ without: $(head -c 300 "$TMP/out")"
fi
VKLLM_DEVICE=-1 expect_error "no device name contains '-1'" "$BIN" run -m "$model" -n 1
grep -q 18446744073709551615 "$TMP/err" && fail "VKLLM_DEVICE=-1 became a huge index"
expect_ok "$BIN" run -m "$model" -n 1 --temp 1e-45 && ok "--temp 1e-45 (an underflow) is a number"
mkdir -p "$TMP/adir"
expect_error "cannot read $TMP/adir: Is a directory" "$BIN" run -m "$model" -f "$TMP/adir"
if expect_ok "$BIN" run -m "$model" -n 1 -p ""; then
  grep -q "prompt 1 token, .* generated 1 token, " "$TMP/err" && ok "1 token, not 1 tokens" ||
    fail "plural: $(head -c 300 "$TMP/err")"
fi
VKLLM_DEBUG_MAX_ALLOCATION=4096 expect_error "maxMemoryAllocationSize (4096 bytes)" "$BIN" run -m "$model" -n 1
expect_error "cannot read standard input: Is a directory" "$BIN" chat -m "$model" --chat-template chatml <"$TMP/adir"

# ---- Bounds, warnings, environment values ----
expect_error "is larger than 1048576 bytes, more than a context of 4096 tokens can hold" $T "$BIN" run -m "$model" -f /dev/zero
head -c 5000000 /dev/zero | tr '\0' 'a' >"$TMP/big.txt"
expect_error "is larger than 16384 bytes, more than a context of 64 tokens" timeout 20 "$BIN" run -m "$model" -c 64 -f "$TMP/big.txt"
expect_error "--top-p expects a number from 0 to 1" "$BIN" run -m "$model" --top-p -1
expect_error "--min-p expects a number from 0 to 1" "$BIN" run -m "$model" --min-p -1
expect_error "--repeat-penalty expects a number from 0.01 to 100" "$BIN" run -m "$model" --repeat-penalty 1e-30
expect_error "--temp expects a number from 0 to 100" "$BIN" chat -m "$model" --temp -1
if expect_ok "$BIN" run -m "$model" -n 1 -c 4096; then
  grep -q "context of 4096 positions exceeds the 2048 the model was trained on" "$TMP/err" &&
    ok "warning: -c beyond the trained context" || fail "no warning for -c 4096 > 2048: $(head -c 300 "$TMP/err")"
fi
if expect_ok "$BIN" run -m "$model" -n 1 -c 2048; then
  grep -q "warning" "$TMP/err" && fail "a warning at the trained context: $(head -c 300 "$TMP/err")" ||
    ok "no warning at the trained context"
fi
for env in VKLLM_GPU_TIMEOUT=-5 VKLLM_GPU_TIMEOUT=abc VKLLM_GPU_TIMEOUT=99999999999 VKLLM_MATVEC=4x VKLLM_COOPMAT=garbage; do
  export "$env"
  if VKLLM_DEBUG_AS_GPU=1 expect_ok "$BIN" run -m "$model" -n 2 --temp 0; then
    [ "$(grep -c "vkllm: warning: ${env%%=*}='${env#*=}'" "$TMP/err")" -eq 1 ] && ok "$env: one warning" ||
      fail "$env: want one warning, got: $(head -c 300 "$TMP/err")"
  fi
  unset "${env%%=*}"
done

# ---- Pipeline cache: a corrupt file of the same size (here: its header's cache UUID) is rewritten ----
cache="$TMP/cache"
if VKLLM_CACHE_DIR="$cache" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0; then
  file=$(ls "$cache"/pipelines-*.bin 2>/dev/null | head -n 1)
  if [ -z "$file" ]; then
    fail "no pipeline cache file in $cache"
  else
    cp "$file" "$TMP/cache.good"
    printf '\377' | dd of="$file" bs=1 seek=20 conv=notrunc 2>/dev/null   # inside the 16-byte cache UUID
    cmp -s "$file" "$TMP/cache.good" && fail "the cache file was not corrupted"
    VKLLM_CACHE_DIR="$cache" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0 &&
      { cmp -s "$file" "$TMP/cache.good" && ok "corrupt cache header rewritten" ||
          fail "a same-size cache with a foreign UUID was not rewritten"; }
  fi
fi
# A VKLLM_CACHE_DIR too long for a path is not cut short: a warning, and the default directory.
long=$(printf "$TMP/%0800d" 0)
if XDG_CACHE_HOME="$TMP/xdg" VKLLM_CACHE_DIR="$long" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0; then
  grep -q "VKLLM_CACHE_DIR is 8.. bytes long" "$TMP/err" && ok "long VKLLM_CACHE_DIR: warning" ||
    fail "long VKLLM_CACHE_DIR: no warning: $(head -c 300 "$TMP/err")"
  ls "$TMP/xdg/vkllm"/pipelines-*.bin >/dev/null 2>&1 && ok "long VKLLM_CACHE_DIR: default directory used" ||
    fail "long VKLLM_CACHE_DIR: no cache in the default directory"
fi

# ---- Files that are not regular files are refused at once, never waited on ----
mkfifo "$TMP/fifo"
expect_error "not a regular file" timeout 20 "$BIN" info "$TMP/fifo"
expect_error "not a regular file" timeout 20 "$BIN" run -m "$TMP/fifo" -n 1
expect_error "not a regular file" timeout 20 "$BIN" tokenize -m "$TMP/fifo" -p hi
expect_error "not a regular file" timeout 20 "$BIN" bench -m "$TMP/fifo" -p 0 -n 1 -r 1
# A FIFO where the pipeline cache file goes: no cache read, and the run goes on.
mkdir -p "$TMP/fifocache"
name=$(basename "$(ls "$cache"/pipelines-*.bin | head -n 1)")
mkfifo "$TMP/fifocache/$name"
VKLLM_CACHE_DIR="$TMP/fifocache" expect_ok timeout 20 "$BIN" run -m "$model" -n 2 --temp 0 && ok "FIFO at the cache path"

# ---- synth writes atomically: a temporary file next to the target, renamed over it when complete ----
expect_ok $T "$BIN" synth --preset tiny --type q8_0 -o "$TMP/keep.gguf" --seed 3
cp "$TMP/keep.gguf" "$TMP/keep.orig"
# A write that fails (the file size limit; SIGXFSZ ignored, so writes fail with EFBIG): the old file stays.
(trap '' XFSZ; ulimit -f 64; exec $T "$BIN" synth --preset tiny --type f32 -o "$TMP/keep.gguf" --seed 4) \
  >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && ok "failed synth write: exit 1" || fail "failed synth write: exit $rc: $(head -c 300 "$TMP/err")"
cmp -s "$TMP/keep.gguf" "$TMP/keep.orig" && ok "failed synth write: the existing file is intact" ||
  fail "failed synth write: the existing file was changed or removed"
# Interrupted (SIGINT while writing a large model): the old file stays and no partial file is left.
$T "$BIN" synth --preset llama3.2-1b --type f32 -o "$TMP/keep.gguf" --seed 5 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 500); do
  ls "$TMP"/keep.gguf.partial-* >/dev/null 2>&1 && break
  sleep 0.02
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" -ne 0 ] && ok "interrupted synth: exit $rc" || fail "interrupted synth exited 0 (finished before the signal?)"
cmp -s "$TMP/keep.gguf" "$TMP/keep.orig" && ok "interrupted synth: the existing file is intact" ||
  fail "interrupted synth: the existing file was changed"
ls "$TMP"/keep.gguf.partial-* >/dev/null 2>&1 && fail "interrupted synth left a partial file" ||
  ok "interrupted synth: no partial file"
# -o - and -o /dev/stdout: refused, nothing written.
expect_error "cannot be written to standard output" env -C "$TMP" "$BIN" synth --preset tiny --type q8_0 -o -
[ -e "$TMP/-" ] && fail "synth -o - created a file named '-'"
expect_error "cannot be written to standard output" "$BIN" synth --preset tiny --type q8_0 -o /dev/stdout
[ -s "$TMP/out" ] && fail "synth -o /dev/stdout wrote to stdout"
"$BIN" synth --preset tiny --type q8_0 -o /dev/stdout 2>"$TMP/err" | cat >"$TMP/out"
grep -Eq "standard output|not a regular file" "$TMP/err" && [ ! -s "$TMP/out" ] && ok "synth -o /dev/stdout into a pipe: refused" ||
  fail "synth -o /dev/stdout into a pipe: $(head -c 300 "$TMP/err")"

# ---- bench without -m: its synthetic model is removed when the run is interrupted ----
mkdir -p "$TMP/benchtmp"
TMPDIR="$TMP/benchtmp" $T "$BIN" bench --synth llama3.2-1b --synth-type f32 -p 0 -n 1 -r 1 >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 500); do
  [ -n "$(ls -A "$TMP/benchtmp")" ] && break
  sleep 0.02
done
seen=$(ls -A "$TMP/benchtmp")
kill -TERM "$pid" 2>/dev/null
wait "$pid"
if [ -z "$seen" ]; then
  fail "bench: no synthetic model appeared in TMPDIR"
elif [ -n "$(ls -A "$TMP/benchtmp")" ]; then
  fail "interrupted bench left $(ls -A "$TMP/benchtmp") in TMPDIR"
else
  ok "interrupted bench: TMPDIR clean"
fi

cli_finish
