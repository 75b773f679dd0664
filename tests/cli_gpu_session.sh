#!/usr/bin/env bash
# bench/gpu_session.sh rehearsed on this machine's device (GPU_SESSION_DRY=1: tiny models, GPU kernels on
# lavapipe), as the one device call a GPU session gets would run it: this build packed as for the GPU machine,
# then every step against the unpacked copy. Fails if packing fails, a step fails or runs out of time, the real
# run's step limits add up to over 9 minutes, or a step's output lacks what bench/RESULTS.md is written from:
# each test program's exit line, the bench tables' rows, the dispatches per token, the kernel rows, the
# frame loop's and the profile's lines.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_gpu_session
cli_require_device
command -v xz >/dev/null || cli_skip "xz (pack's compression) is not installed"
[ -f "$SHARED/models/stories260K.gguf" ] || cli_skip "$SHARED/models/stories260K.gguf not found"
script=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bench/gpu_session.sh
build=$(dirname "$BIN")
out=$TMP/session   # ($TMP/out is cli_run's stdout)

expect_ok env VKLLM_SHARED="$SHARED" "$script" pack "$build" "$TMP/build-gpu" || cli_finish
ok "$(cat "$TMP/out")"
# Run as a program (as the device tool does: its mode bit counts), BUILD and OUT set as there.
(cd "$TMP" && GPU_SESSION_DRY=1 BUILD="$TMP/build-gpu" OUT="$out" TMPDIR="$TMP" "$script" >"$TMP/session.out" 2>&1)
rc=$?
[ -f "$out/steps.txt" ] || { fail "no steps.txt (exit $rc):"; cat "$TMP/session.out"; cli_finish; }
cat "$out/steps.txt"
[ "$(ls "$out")" = "$(printf 'session.log\nsteps.txt')" ] && ok "\$OUT holds session.log and steps.txt only" ||
    fail "\$OUT holds $(ls "$out" | tr '\n' ' ')(the device tool brings back 8 files at most)"

steps="devices tests synth bench attn prompt parallel bench_families kernels synth_k bench_k matvec_sweep frame profile"
# section NAME: the step's output in session.log (its command's lines start with "==== " too)
section() { awk -v s="$1" '$0 ~ "^==== " s ": exit" { exit } on && !/^==== / { print } $0 ~ "^==== " s ": " { on = 1 }' "$out/session.log"; }
failed=0
for s in $steps; do
    line=$(grep "^$s " "$out/steps.txt")
    case $line in
    *"exit   0 "*) ok "$s" ;;
    "") fail "$s did not run" ;;
    *)  failed=$((failed + 1))
        # lavapipe's timestamps count the time other processes preempt its threads (tests/embed/frame_loop.sh):
        # half a token's budget is not asserted here, only that both loops made text.
        if [ "$s" = frame ] && [ "$(section frame | grep -c '^FAIL: ')" = "$(section frame | grep -c '^FAIL: .*over the budget')" ] &&
           [ "$(section frame | grep -c '^text: ')" = 2 ] && [ "${line#*exit   1 }" != "$line" ]; then
            ok "frame: over the budget on lavapipe (not asserted)"
        else
            fail "$s: $line"
            section "$s" | tail -30
        fi ;;
    esac
done
[ "$rc" = "$failed" ] && ok "exit status $rc: the failed steps" || fail "exit status $rc, $failed step(s) failed"
limits=$(sed -n 's/^time limits: \([0-9]*\) s.*/\1/p' "$out/steps.txt")
[ -n "$limits" ] && [ "$limits" -le 540 ] && ok "the real run's limits add up to $limits s" ||
    fail "the real run's limits add up to '$limits' s (over 9 minutes)"

# want NAME COUNT ERE WHAT: at least COUNT lines of NAME's output match ERE
want() {
    local n
    n=$(section "$1" | grep -c -E -- "$3")
    [ "$n" -ge "$2" ] && ok "$1: $4 ($n)" || { fail "$1: $n of $2 $4"; section "$1" | tail -20; }
}
row() { echo "^\\| .*\\| +$1 +\\| +[0-9.]+ ± [0-9.]+ \\|"; }   # a bench table's row: test name, t/s
# (the rehearsal's sizes: pp16, tg4 and tg8, --parallel 1,4)

want devices 1 "Vulkan API" "device listed"
# tests: "-- [VAR=VALUE] PROGRAM" then its last lines and "   exit N", "   not run (rehearsal)" or "   missing"
coopmat=0
"$BIN" devices | grep -q -- "-> usable" && coopmat=1
section tests | awk '/^-- / { name = substr($0, 4) } /^   (exit|not run|missing)/ { print name "|" substr($0, 4) }' >"$TMP/tests"
n_run=0
while IFS='|' read -r name result; do
    case $result in
    "exit 0") n_run=$((n_run + 1)) ;;
    "not run (rehearsal)") ;;
    "exit 77") [ $coopmat = 0 ] && [ "${name%/test_op_matmul_coopmat}" != "$name" ] || fail "tests: $name skipped" ;;
    *) fail "tests: $name: $result"; section tests | grep -A4 -F -- "-- $name" ;;
    esac
done <"$TMP/tests"
programs=$(wc -l <"$TMP/tests")
[ "$programs" -ge 22 ] && [ "$programs" = "$(section tests | grep -c '^-- ')" ] && ok "tests: $programs programs, $n_run ran" ||
    fail "tests: $programs programs with a result (want 22 or more, one per program)"
for t in test_op_rmsnorm test_forward_stories test_timeline; do
    grep -q "/$t|exit 0\$" "$TMP/tests" && ok "tests: $t passed" || fail "tests: $t did not pass"
done
if [ $coopmat = 1 ]; then
    want prompt 1 "self-check passed" "self-check line"
fi
want bench 2 "$(row pp16)" "pp16 rows"
want bench 2 "$(row tg4)" "tg4 rows"
want bench 1 "per token: [0-9.]+ dispatches" "per-token dispatch line"
want attn 3 "$(row tg8)" "tg8 rows (split on, off, old kernel)"
want attn 3 "$(row tg4)" "tg4 rows"
want prompt 8 "$(row pp16)" "pp16 rows (default, 3 tiled, 4 coopmat)"
want parallel 2 "$(row 'tg4 x4')" "tg4 x4 rows"
want bench_families 2 "$(row tg4)" "tg4 rows (qwen3, gemma3)"
want kernels 2 '^\| matvec .*\| (q4_0|q8_0) ' "matvec rows"
want bench_k 1 "file type: .*Q4_K_M" "file type line"
want bench_k 2 "$(row tg4)" "tg4 rows (q4_K_M, q6_K)"
want matvec_sweep 5 ',tg4,' "csv rows"
want frame 2 '^[1-9][0-9]* tokens' "frame loop runs"
want profile 1 "per token: [0-9.]+ dispatches" "profile line"
if grep -E "vkllm: warning: VKLLM_[A-Z_]*='[^']*' is not" "$out/session.log" | grep -v "within this device's limits"; then
    fail "a variable's value is not one vkllm takes"
else
    ok "every variable's value taken"
fi
cli_finish
