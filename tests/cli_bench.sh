#!/usr/bin/env bash
# `vkllm bench`: the kernel benchmark (--kernels --quick) and the model benchmark on the default synthetic
# model (the tiny preset on a CPU device) and on a -m file, in md, json and csv; every number it reports is
# positive, the JSON parses, the temporary model is removed; bad options give one line and exit status 1.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_bench
cli_require_device
export TMPDIR="$TMP"   # where the synthetic model goes
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1
CLI_ERROR_PREFIX="vkllm bench: "

# run NAME CMD...: must exit 0 and print nothing on stderr; its stdout is kept in $TMP/NAME.out.
run() {
  local name=$1; shift
  expect_quiet "$@" && cp "$TMP/out" "$TMP/$name.out"
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
if run kernels "$BIN" bench --kernels --quick; then
  out="$TMP/kernels.out"
  bw=$(md_cell read read 6 "$out")
  if positive "$bw"; then ok "kernels: read bandwidth $bw GB/s"; else fail "no read bandwidth in:"; cat "$out"; fi
  n=$(grep -c '^| matvec' "$out")
  nt=$(grep '^| matvec' "$out" | awk -F'|' '{print $3}' | sort -u | wc -l)   # every type with kernels: 4 shapes each
  [ "$nt" -ge 15 ] && [ "$n" -eq $((4 * nt)) ] && ok "kernels: $n matvec rows, $nt types" ||
    { fail "$n matvec rows of $nt types (want 4 per type, 15 types or more)"; cat "$out"; }
  for t in f32 f16 q8_0 q4_0; do
    us=$(md_cell matvec "| $t " 5 "$out"); gbs=$(md_cell matvec "| $t " 6 "$out"); pct=$(md_cell matvec "| $t " 7 "$out")
    if positive "$us" && positive "$gbs" && positive "$pct"; then ok "kernels: $t ${us} us, $gbs GB/s, $pct%"
    else fail "kernels: $t: us '$us' GB/s '$gbs' % '$pct'"; fi
  done
  grep -q '^device: .*timer:' "$out" && ok "kernels: device line" || fail "no device line"
fi
if run kernels_json "$BIN" bench --kernels --quick -r 1 -o json; then
  if [ $have_python -eq 1 ]; then
    python3 - "$TMP/kernels_json.out" <<'EOF' && ok "kernels: json" || fail "kernels json"
import json, sys
rows = json.load(open(sys.argv[1]))
assert rows[0]["test"] == "read" and rows[0]["gbs"] > 0, rows[0]
mv = [r for r in rows if r["test"] == "matvec"]
per_elem = {"f32": 4, "f16": 2, "bf16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_1": 20 / 32, "q5_0": 22 / 32,
            "q5_1": 24 / 32, "iq4_nl": 18 / 32, "q2_K": 84 / 256, "q3_K": 110 / 256, "q4_K": 144 / 256,
            "q5_K": 176 / 256, "q6_K": 210 / 256, "iq4_xs": 136 / 256, "mxfp4": 17 / 32, "iq2_xxs": 66 / 256,
            "iq2_xs": 74 / 256, "iq2_s": 82 / 256, "iq3_xxs": 98 / 256, "iq3_s": 110 / 256, "iq1_s": 50 / 256,
            "iq1_m": 56 / 256}   # GGUF bytes per element
assert len(mv) == 4 * len({r["type"] for r in mv}) and len({r["type"] for r in mv}) >= 15, len(mv)
for r in mv:
    assert r["skipped"] is not None or (r["us"] > 0 and r["gbs"] > 0 and r["bw_pct"] > 0), r
    assert r["bytes"] == r["m"] * r["k"] * per_elem[r["type"]], r
EOF
  else
    grep -q '"test": "read"' "$TMP/kernels_json.out" && ok "kernels: json (grep)" || fail "kernels json"
  fi
fi
# A shape over the device's memory (here a --memory-limit) is reported as skipped, the rest still run.
if run kernels_skip "$BIN" bench --kernels --quick -r 1 --memory-limit 150 --types f32 --shapes 1024x1024,32064x1024; then
  out="$TMP/kernels_skip.out"
  us=$(md_cell matvec "1024 x 1024" 5 "$out"); sk=$(md_cell matvec "32064 x 1024" 5 "$out")
  if positive "$us" && [ "$sk" = skipped ] && grep -q '^skipped f32 32064 x 1024: .*limit' "$out"; then
    ok "kernels: skipped shape"
  else fail "kernels: skipped shape:"; cat "$out"; fi
fi

# ---- model benchmark on the default synthetic model ----
if run json "$BIN" bench -p 16 -n 4 -r 1 -o json; then
  if [ $have_python -eq 1 ]; then
    if python3 -m json.tool "$TMP/json.out" >/dev/null; then ok "json parses"; else fail "invalid JSON:"; cat "$TMP/json.out"; fi
    python3 - "$TMP/json.out" <<'EOF' && ok "json fields" || { fail "json fields"; cat "$TMP/json.out"; }
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
assert 0 < tg["host_ms_per_token"] <= tg["cpu_ms_per_token"], tg
assert tg["gpu_ms_per_token"] is None or tg["gpu_ms_per_token"] > 0, tg
EOF
  else
    grep -q '"test": "tg4"' "$TMP/json.out" && ok "json (grep)" || fail "json"
  fi
fi
if run csv "$BIN" bench -p 16 -n 4 -r 1 -o csv; then
  lines=$(grep -c . "$TMP/csv.out")
  head -1 "$TMP/csv.out" | grep -q '^model,.*,test,.*avg_ts' && [ "$lines" -eq 3 ] && ok "csv" ||
    { fail "csv:"; cat "$TMP/csv.out"; }
  if [ $have_python -eq 1 ]; then
    python3 - "$TMP/csv.out" <<'EOF' && ok "csv fields" || fail "csv fields"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["test"] for r in rows] == ["pp16", "tg4"] and all(float(r["avg_ts"]) > 0 for r in rows), rows
assert float(rows[1]["gbs"]) > 0 and rows[0]["gbs"] == ""
EOF
  fi
fi
if run md "$BIN" bench -p 16 -n 4 -r 2 -o md; then
  out="$TMP/md.out"
  # columns: model type size params device driver test t/s GB/s %bw CPU GPU
  pp=$(awk -F'|' '/\| *pp16 *\|/ { v = $9; sub(/±.*/, "", v); print v + 0 }' "$out")
  tg=$(awk -F'|' '/\| *tg4 *\|/ { v = $9; sub(/±.*/, "", v); print v + 0 }' "$out")
  tgbw=$(awk -F'|' '/\| *tg4 *\|/ { print $10 + 0 }' "$out")
  tgcpu=$(awk -F'|' '/\| *tg4 *\|/ { print $12 + 0 }' "$out")
  if positive "$pp" && positive "$tg" && positive "$tgbw" && positive "$tgcpu"; then
    ok "md: pp16 $pp t/s, tg4 $tg t/s, $tgbw GB/s, CPU $tgcpu ms/token"
  else fail "md table:"; cat "$out"; fi
  grep -q '^read bandwidth: ' "$out" && ok "md: bandwidth line" || fail "md: no bandwidth line"
fi
left=$(find "$TMP" -name 'vkllm-bench-*' | wc -l)
[ "$left" -eq 0 ] && ok "temporary model removed" || fail "$left temporary model file(s) left in $TMP"

# ---- -m with a file, lists of lengths ----
if "$BIN" synth --preset tiny --type q8_0 -o "$TMP/tiny_q8.gguf" >/dev/null 2>&1 &&
   run file "$BIN" bench -m "$TMP/tiny_q8.gguf" -p 8,4 -n 2,0 -r 1 -o csv; then
  out="$TMP/file.out"
  if [ $have_python -eq 1 ]; then
    python3 - "$out" "$TMP/tiny_q8.gguf" <<'EOF' && ok "-m file, lists" || { fail "-m file:"; cat "$out"; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["test"] for r in rows] == ["pp8", "pp4", "tg2"], rows
assert all(r["model_type"] == "q8_0" and r["model_file"] == sys.argv[2] and r["synthetic"] == "false" for r in rows)
assert all(float(r["avg_ts"]) > 0 for r in rows)
EOF
  else
    grep -q ',pp8,' "$out" && grep -q ',pp4,' "$out" && grep -q ',tg2,' "$out" && grep -q ',q8_0,' "$out" &&
      ok "-m file, lists (grep)" || { fail "-m file:"; cat "$out"; }
  fi
fi

# ---- --parallel: tgN xP rows with aggregate and per-sequence rates ----
if run par "$BIN" bench -m "$TMP/tiny_q8.gguf" -p 0 -n 3 -r 1 --parallel 1,3 -o csv; then
  out="$TMP/par.out"
  if [ $have_python -eq 1 ]; then
    python3 - "$out" <<'EOF' && ok "--parallel rows" || { fail "--parallel:"; cat "$out"; }
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["test"] for r in rows] == ["tg3", "tg3 x1", "tg3 x3"], rows
for r in rows[1:]:
    p = int(r["n_parallel"])
    assert float(r["avg_ts"]) > 0 and abs(float(r["per_seq_ts"]) * p - float(r["avg_ts"])) < 0.02 * float(r["avg_ts"]) + 0.01, r
EOF
  else
    grep -q ',tg3 x3,' "$out" && ok "--parallel rows (grep)" || { fail "--parallel:"; cat "$out"; }
  fi
fi

# ---- bad options: one line on stderr, exit status 1 ----
expect_error "unknown option" "$BIN" bench --bogus
expect_error "expects an integer" "$BIN" bench -p abc
expect_error "comma-separated" "$BIN" bench -p 16,,32
expect_error "expects an integer" "$BIN" bench -n -3
expect_error "expects an integer" "$BIN" bench -r 0
expect_error "needs a value" "$BIN" bench -p
expect_error "unknown output format" "$BIN" bench -o xml
expect_error "--quick applies to --kernels only" "$BIN" bench --quick
expect_error "does not apply to --kernels" "$BIN" bench --kernels -p 16
expect_error "--shapes applies to --kernels only" "$BIN" bench --shapes 64x64
expect_error "--shapes expects a list" "$BIN" bench --kernels --shapes 4096
expect_error -E "not a multiple of the q[48]_0 block size 32" "$BIN" bench --kernels --shapes 100x100
expect_error "K = 384 is not a multiple of the q4_K block size 256" "$BIN" bench --kernels --shapes 64x384 --types q4_k
expect_error "unknown type" "$BIN" bench --kernels --types tq1_0
expect_error "no tests" "$BIN" bench -p 0 -n 0
expect_error "--parallel takes 1 to 256" "$BIN" bench --parallel 4,0
expect_error "--parallel takes 1 to 256" "$BIN" bench --parallel 300
expect_error "does not apply to --kernels" "$BIN" bench --kernels --parallel 4
expect_error "raise -c" "$BIN" bench -p 64 -n 0 -c 32
expect_error "unknown preset" "$BIN" bench --synth nope
expect_error "for the synthetic model" "$BIN" bench -m "$TMP/tiny_q8.gguf" --synth tiny
expect_error "cannot open" "$BIN" bench -m /nonexistent.gguf -p 1 -n 0
expect_error "does not exist" "$BIN" bench --device 99
expect_ok "$BIN" bench --help && ok "--help"
cli_finish
