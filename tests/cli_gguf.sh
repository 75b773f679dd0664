#!/bin/bash
# `vkllm info` and `vkllm synth` from the shell: exit status 0 on success; on a broken input exit
# status 1 and exactly one line on stderr, "vkllm: <message>", naming the problem.
set -u
BIN=${VKLLM_BIN:?VKLLM_BIN must point at the vkllm binary}
SHARED=${VKLLM_SHARED:-../shared}
TMP=$(mktemp -d "${VKLLM_TEST_TMP:-/tmp}/cli_gguf.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# expect_ok NAME CMD...: exit 0, nothing on stderr
expect_ok() {
    local name=$1
    shift
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ $rc -eq 0 ] || fail "$name: exit status $rc, expected 0 (stderr: $(head -c 300 "$TMP/err"))"
    [ ! -s "$TMP/err" ] || fail "$name: unexpected stderr: $(head -c 300 "$TMP/err")"
}

# expect_error NAME PATTERN CMD...: exit 1, one stderr line "vkllm: ..." matching PATTERN (grep -E)
expect_error() {
    local name=$1 pattern=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    [ $rc -eq 1 ] || fail "$name: exit status $rc, expected 1"
    local lines
    lines=$(wc -l <"$TMP/err")
    [ "$lines" -eq 1 ] || fail "$name: $lines lines on stderr, expected 1: $(head -c 500 "$TMP/err")"
    grep -qE "^vkllm: " "$TMP/err" || fail "$name: stderr does not start with 'vkllm: ': $(cat "$TMP/err")"
    grep -qE -- "$pattern" "$TMP/err" || fail "$name: stderr does not match '$pattern': $(cat "$TMP/err")"
}

# --- synth: a small model to inspect (needs no shared data) ---
expect_ok "synth tiny" "$BIN" synth --preset tiny --type q8_0 -o "$TMP/tiny.gguf" --seed 7
grep -q "tiny" "$TMP/out" || fail "synth did not say what it wrote: $(cat "$TMP/out")"
[ -s "$TMP/tiny.gguf" ] || fail "synth wrote no file"
expect_ok "synth --help" "$BIN" synth --help
grep -q "usage" "$TMP/out" || fail "synth --help prints no usage"
expect_error "synth unknown preset" "unknown preset" "$BIN" synth --preset nope --type f32 -o "$TMP/x.gguf"
expect_error "synth unknown type" "unknown type" "$BIN" synth --preset tiny --type q3_k -o "$TMP/x.gguf"
expect_error "synth missing -o" "required" "$BIN" synth --preset tiny --type f32
expect_error "synth bad seed" "seed" "$BIN" synth --preset tiny --type f32 -o "$TMP/x.gguf" --seed x1
expect_error "synth unwritable" "cannot create" "$BIN" synth --preset tiny --type f32 -o "$TMP/no/such/dir.gguf"
[ ! -e "$TMP/x.gguf" ] || fail "a failed synth left a file behind"

# --- info on good files ---
expect_ok "info tiny" "$BIN" info "$TMP/tiny.gguf"
for want in "GGUF version: *3" "architecture: *llama" "llama.embedding_length *128" "llama.block_count *2" \
    "tokenizer: *llama.*512 tokens" "token_embd.weight *q8_0 *\[128, 512\]" "blk.1.ffn_down.weight" \
    "output_norm.weight *f32" "total: 21 tensors"; do
    grep -qE -- "$want" "$TMP/out" || fail "info tiny: output lacks '$want'"
done
expect_ok "info --kv" "$BIN" info --kv "$TMP/tiny.gguf"
grep -qE "tokenizer.ggml.tokens .*string x 512" "$TMP/out" || fail "info --kv does not list the tokens array"
expect_ok "info --help" "$BIN" info --help
grep -q "usage" "$TMP/out" || fail "info --help prints no usage"
STORIES="$SHARED/models/stories260K.gguf"
if [ -r "$STORIES" ]; then
    expect_ok "info stories260K" "$BIN" info "$STORIES"
    grep -qE "llama.embedding_length *64" "$TMP/out" || fail "info stories260K: no embedding_length 64"
    grep -qE "total: 48 tensors" "$TMP/out" || fail "info stories260K: not 48 tensors"
else
    echo "note: $STORIES not found, skipping that check" >&2
fi

# --- info on broken files ---
size=$(stat -c %s "$TMP/tiny.gguf")
head -c $((size / 2)) "$TMP/tiny.gguf" >"$TMP/half.gguf"
expect_error "info truncated in the data" "data extends past end of file" "$BIN" info "$TMP/half.gguf"
head -c 5000 "$TMP/tiny.gguf" >"$TMP/head.gguf"
expect_error "info truncated in the header" "truncated file: key/value [0-9]+ \(tokenizer.ggml.tokens\)" \
    "$BIN" info "$TMP/head.gguf"
{ printf 'GGUX'; tail -c +5 "$TMP/tiny.gguf"; } >"$TMP/magic.gguf"
expect_error "info bad magic" "bad magic" "$BIN" info "$TMP/magic.gguf"
{ printf 'GGUF\001\000\000\000'; tail -c +9 "$TMP/tiny.gguf"; } >"$TMP/v1.gguf"
expect_error "info version 1" "version 1" "$BIN" info "$TMP/v1.gguf"
: >"$TMP/empty.gguf"
expect_error "info empty file" "not a GGUF file" "$BIN" info "$TMP/empty.gguf"
expect_error "info missing file" "cannot open" "$BIN" info "$TMP/does-not-exist.gguf"
expect_error "info directory" "not a regular file" "$BIN" info "$TMP"
expect_error "info no argument" "no model file" "$BIN" info
expect_error "info bad option" "unknown option" "$BIN" info --bogus "$TMP/tiny.gguf"

if [ $failures -ne 0 ]; then
    echo "cli_gguf: $failures check(s) FAILED" >&2
    exit 1
fi
echo "cli_gguf: all checks passed" >&2
exit 0
