#!/usr/bin/env bash
# `vkllm bench`: the kernel benchmark (--kernels --quick) and the model benchmark on the default synthetic
# model (the tiny preset on a CPU device) and on a -m file, in md, json and csv; every number it reports is
# positive, the JSON parses, the temporary model is removed; bad options give one line and exit status 1.
set -u
: "${VKLLM_BIN:?}" "${VKLLM_TEST_TMP:?}"
if ! "$VKLLM_BIN" devices >/dev/null 2>&1; then echo "SKIP: no Vulkan device"; exit 77; fi
tmp="$VKLLM_TEST_TMP/cli_bench"
rm -rf "$tmp"
mkdir -p "$tmp"
export TMPDIR="$tmp"   # where the synthetic model goes
fail=0
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1

run() { # name command... : stdout to $tmp/name.out, stderr to $tmp/name.err; must exit 0 and print nothing on stderr
  local name=$1; shift
  "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  local rc=$?
  if [ $rc -ne 0 ]; then echo "FAIL: '$*' exited $rc: $(cat "$tmp/$name.err")"; fail=1; return 1; fi
  if [ -s "$tmp/$name.err" ]; then echo "FAIL: '$*' wrote to stderr: $(head -5 "$tmp/$name.err")"; fail=1; return 1; fi
  return 0
}

# Markdown: the value of column `col` (1-based, counting the cells between pipes) in the row whose first cell
# is `first` and that contains `pattern`.
md_cell() { # file first pattern col
  awk -F'|' -v first="$1" -v pat="$2" -v col="$3" '
    { c = $2; gsub(/^ +| +$/, "", c) }
    c == first && index($0, pat) { v = $(col + 1); gsub(/^ +| +$/, "", v); print v; exit }' "$4"
}
positive() { awk -v v="$1" 'BEGIN { exit !(v + 0 > 0) }'; }

# ---- --kernels --quick ----
if run kernels "$VKLLM_BIN" bench --kernels --quick; then
  out="$tmp/kernels.out"
  bw=$(md_cell read read 6 "$out")
  if positive "$bw"; then echo "ok: kernels: read bandwidth $bw GB/s"; else echo "FAIL: no read bandwidth in:"; cat "$out"; fail=1; fi
  n=$(grep -c '^| matvec' "$out")
  [ "$n" -eq 16 ] && echo "ok: kernels: 16 matvec rows" || { echo "FAIL: $n matvec rows (want 16)"; cat "$out"; fail=1; }
  for t in f32 f16 q8_0 q4_0; do
    us=$(md_cell matvec "| $t " 5 "$out"); gbs=$(md_cell matvec "| $t " 6 "$out"); pct=$(md_cell matvec "| $t " 7 "$out")
    if positive "$us" && positive "$gbs" && positive "$pct"; then echo "ok: kernels: $t ${us} us, $gbs GB/s, $pct%"
    else echo "FAIL: kernels: $t: us '$us' GB/s '$gbs' % '$pct'"; fail=1; fi
  done
  grep -q '^device: .*timer:' "$out" && echo "ok: kernels: device line" || { echo "FAIL: no device line"; fail=1; }
fi
if run kernels_json "$VKLLM_BIN" bench --kernels --quick -r 1 -o json; then
  if [ $have_python -eq 1 ]; then
    python3 - "$tmp/kernels_json.out" <<'EOF' && echo "ok: kernels: json" || { echo "FAIL: kernels json"; fail=1; }
import json, sys
rows = json.load(open(sys.argv[1]))
assert rows[0]["test"] == "read" and rows[0]["gbs"] > 0, rows[0]
mv = [r for r in rows if r["test"] == "matvec"]
assert len(mv) == 16
for r in mv:
    assert r["skipped"] is not None or (r["us"] > 0 and r["gbs"] > 0 and r["bw_pct"] > 0), r
    assert r["bytes"] == r["m"] * r["k"] * {"f32": 4, "f16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32}[r["type"]], r
EOF
  else
    grep -q '"test": "read"' "$tmp/kernels_json.out" && echo "ok: kernels: json (grep)" || { echo "FAIL: kernels json"; fail=1; }
  fi
fi
# A shape over the device's memory (here a --memory-limit) is reported as skipped, the rest still run.
if run kernels_skip "$VKLLM_BIN" bench --kernels --quick -r 1 --memory-limit 150 --types f32 --shapes 1024x1024,32064x1024; then
  out="$tmp/kernels_skip.out"
  us=$(md_cell matvec "1024 x 1024" 5 "$out"); sk=$(md_cell matvec "32064 x 1024" 5 "$out")
  if positive "$us" && [ "$sk" = skipped ] && grep -q '^skipped f32 32064 x 1024: .*limit' "$out"; then
    echo "ok: kernels: skipped shape"
  else echo "FAIL: kernels: skipped shape:"; cat "$out"; fail=1; fi
fi

# ---- model benchmark on the default synthetic model ----
if run json "$VKLLM_BIN" bench -p 16 -n 4 -r 1 -o json; then
  if [ $have_python -eq 1 ]; then
    if python3 -m json.tool "$tmp/json.out" >/dev/null; then echo "ok: json parses"; else echo "FAIL: invalid JSON:"; cat "$tmp/json.out"; fail=1; fi
    python3 - "$tmp/json.out" <<'EOF' && echo "ok: json fields" || { echo "FAIL: json fields"; cat "$tmp/json.out"; fail=1; }
import json, sys
rows = json.load(open(sys.argv[1]))
assert [r["test"] for r in rows] == ["pp16", "tg4"], rows
for r in rows:
    assert r["avg_ts"] > 0 and r["stddev_ts"] >= 0 and len(r["samples_ts"]) == 1 and r["repetitions"] == 1, r
    assert r["model_type"] == "q4_0" and r["synthetic"] is True and r["model_size"] > 0, r
    assert r["device"] and r["driver"] and r["read_bw_gbs"] > 0, r
pp, tg = rows
assert pp["n_prompt"] == 16 and pp["n_gen"] == 0 and pp["gbs"] is None
assert tg["n_prompt"] == 0 and tg["n_gen"] == 4
assert tg["gbs"] > 0 and tg["bw_pct"] > 0 and tg["cpu_ms_per_token"] > 0 and tg["bytes_per_token"] > 0, tg
assert tg["gpu_ms_per_token"] is None or tg["gpu_ms_per_token"] > 0, tg
EOF
  else
    grep -q '"test": "tg4"' "$tmp/json.out" && echo "ok: json (grep)" || { echo "FAIL: json"; fail=1; }
  fi
fi
if run csv "$VKLLM_BIN" bench -p 16 -n 4 -r 1 -o csv; then
  lines=$(grep -c . "$tmp/csv.out")
  head -1 "$tmp/csv.out" | grep -q '^model,.*,test,.*avg_ts' && [ "$lines" -eq 3 ] && echo "ok: csv" ||
    { echo "FAIL: csv:"; cat "$tmp/csv.out"; fail=1; }
  if [ $have_python -eq 1 ]; then
    python3 - "$tmp/csv.out" <<'EOF' && echo "ok: csv fields" || { echo "FAIL: csv fields"; fail=1; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["test"] for r in rows] == ["pp16", "tg4"] and all(float(r["avg_ts"]) > 0 for r in rows), rows
assert float(rows[1]["gbs"]) > 0 and rows[0]["gbs"] == ""
EOF
  fi
fi
if run md "$VKLLM_BIN" bench -p 16 -n 4 -r 2 -o md; then
  out="$tmp/md.out"
  # columns: model type size params device driver test t/s GB/s %bw CPU GPU
  pp=$(awk -F'|' '/\| *pp16 *\|/ { v = $9; sub(/±.*/, "", v); print v + 0 }' "$out")
  tg=$(awk -F'|' '/\| *tg4 *\|/ { v = $9; sub(/±.*/, "", v); print v + 0 }' "$out")
  tgbw=$(awk -F'|' '/\| *tg4 *\|/ { print $10 + 0 }' "$out")
  tgcpu=$(awk -F'|' '/\| *tg4 *\|/ { print $12 + 0 }' "$out")
  if positive "$pp" && positive "$tg" && positive "$tgbw" && positive "$tgcpu"; then
    echo "ok: md: pp16 $pp t/s, tg4 $tg t/s, $tgbw GB/s, CPU $tgcpu ms/token"
  else echo "FAIL: md table:"; cat "$out"; fail=1; fi
  grep -q '^read bandwidth: ' "$out" && echo "ok: md: bandwidth line" || { echo "FAIL: md: no bandwidth line"; fail=1; }
fi
left=$(find "$tmp" -name 'vkllm-bench-*' | wc -l)
[ "$left" -eq 0 ] && echo "ok: temporary model removed" || { echo "FAIL: $left temporary model file(s) left in $tmp"; fail=1; }

# ---- -m with a file, lists of lengths ----
if "$VKLLM_BIN" synth --preset tiny --type q8_0 -o "$tmp/tiny_q8.gguf" >/dev/null 2>&1 &&
   run file "$VKLLM_BIN" bench -m "$tmp/tiny_q8.gguf" -p 8,4 -n 2,0 -r 1 -o csv; then
  out="$tmp/file.out"
  if [ $have_python -eq 1 ]; then
    python3 - "$out" "$tmp/tiny_q8.gguf" <<'EOF' && echo "ok: -m file, lists" || { echo "FAIL: -m file:"; cat "$out"; fail=1; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["test"] for r in rows] == ["pp8", "pp4", "tg2"], rows
assert all(r["model_type"] == "q8_0" and r["model_file"] == sys.argv[2] and r["synthetic"] == "false" for r in rows)
assert all(float(r["avg_ts"]) > 0 for r in rows)
EOF
  else
    grep -q ',pp8,' "$out" && grep -q ',pp4,' "$out" && grep -q ',tg2,' "$out" && grep -q ',q8_0,' "$out" &&
      echo "ok: -m file, lists (grep)" || { echo "FAIL: -m file:"; cat "$out"; fail=1; }
  fi
fi

# ---- bad options: one line on stderr, exit status 1 ----
check_error() { # expected-substring command...
  local want=$1; shift
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 1 ]; then echo "FAIL: '$*' exited $rc (want 1)"; fail=1; return; fi
  if [ "$(printf '%s\n' "$err" | grep -c .)" -ne 1 ]; then echo "FAIL: '$*' printed more than one line: $err"; fail=1; return; fi
  case "$err" in "vkllm bench: "*"$want"*) echo "ok: $want";; *) echo "FAIL: '$*': want 'vkllm bench: ...$want' in: $err"; fail=1;; esac
}
check_error "unknown option" "$VKLLM_BIN" bench --bogus
check_error "expects an integer" "$VKLLM_BIN" bench -p abc
check_error "comma-separated" "$VKLLM_BIN" bench -p 16,,32
check_error "expects an integer" "$VKLLM_BIN" bench -n -3
check_error "expects an integer" "$VKLLM_BIN" bench -r 0
check_error "needs a value" "$VKLLM_BIN" bench -p
check_error "unknown output format" "$VKLLM_BIN" bench -o xml
check_error "--quick applies to --kernels only" "$VKLLM_BIN" bench --quick
check_error "does not apply to --kernels" "$VKLLM_BIN" bench --kernels -p 16
check_error "--shapes applies to --kernels only" "$VKLLM_BIN" bench --shapes 64x64
check_error "--shapes expects a list" "$VKLLM_BIN" bench --kernels --shapes 4096
check_error "not a multiple of 32" "$VKLLM_BIN" bench --kernels --shapes 100x100
check_error "unknown type" "$VKLLM_BIN" bench --kernels --types q5_k
check_error "no tests" "$VKLLM_BIN" bench -p 0 -n 0
check_error "raise -c" "$VKLLM_BIN" bench -p 64 -n 0 -c 32
check_error "unknown preset" "$VKLLM_BIN" bench --synth nope
check_error "for the synthetic model" "$VKLLM_BIN" bench -m "$tmp/tiny_q8.gguf" --synth tiny
check_error "cannot open" "$VKLLM_BIN" bench -m /nonexistent.gguf -p 1 -n 0
check_error "does not exist" "$VKLLM_BIN" bench --device 99
"$VKLLM_BIN" bench --help >/dev/null && echo "ok: --help" || { echo "FAIL: --help"; fail=1; }
rm -rf "$tmp"
exit $fail
