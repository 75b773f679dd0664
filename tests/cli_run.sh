#!/usr/bin/env bash
# The golden end-to-end test: stories260K, greedy from BOS, writes its known story; plus the CLI's
# handling of bad arguments (one clear line, exit status 1).
set -u
model="$VKLLM_SHARED/models/stories260K.gguf"
if [ ! -f "$model" ]; then echo "SKIP: $model not found"; exit 77; fi
fail=0
expect='Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'
out=$("$VKLLM_BIN" run -m "$model" -n 100 --temp 0 2>"$VKLLM_TEST_TMP/run.err")
rc=$?
if [ $rc -ne 0 ]; then echo "FAIL: vkllm run exited $rc: $(cat "$VKLLM_TEST_TMP/run.err")"; fail=1; fi
case "$out" in
  "$expect"*) echo "ok: story";;
  *) echo "FAIL: expected the story to begin with: $expect"; echo "got: $out"; fail=1;;
esac
grep -q 'generated 100 tokens' "$VKLLM_TEST_TMP/run.err" || { echo "FAIL: no timing line"; cat "$VKLLM_TEST_TMP/run.err"; fail=1; }

# A prompt continues as the model would: the prompt is echoed, then the continuation.
out=$("$VKLLM_BIN" run -m "$model" -p "Once upon a time" -n 20 --temp 0 2>/dev/null)
case "$out" in
  "Once upon a time, there was a little girl named Lily"*) echo "ok: prompt";;
  *) echo "FAIL: prompt continuation: $out"; fail=1;;
esac

# Sampling with a seed is reproducible.
a=$("$VKLLM_BIN" run -m "$model" -n 30 --temp 1 --seed 42 2>/dev/null)
b=$("$VKLLM_BIN" run -m "$model" -n 30 --temp 1 --seed 42 2>/dev/null)
[ "$a" = "$b" ] && echo "ok: seed" || { echo "FAIL: same seed, different text"; fail=1; }

# Bad input: one line on stderr, exit status 1.
check_error() { # expected-substring command...
  local want=$1; shift
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [ $rc -ne 1 ]; then echo "FAIL: '$*' exited $rc (want 1)"; fail=1; return; fi
  if [ "$(printf '%s\n' "$err" | grep -c .)" -ne 1 ]; then echo "FAIL: '$*' printed more than one line: $err"; fail=1; return; fi
  case "$err" in *"$want"*) echo "ok: $want";; *) echo "FAIL: '$*': want '$want' in: $err"; fail=1;; esac
}
check_error "no model given" "$VKLLM_BIN" run
check_error "cannot open" "$VKLLM_BIN" run -m /nonexistent.gguf
check_error "expects an integer" "$VKLLM_BIN" run -m "$model" -n abc
check_error "unknown option" "$VKLLM_BIN" run -m "$model" --bogus
check_error "more than the context" "$VKLLM_BIN" run -m "$model" -c 4 -p "Once upon a time there was a girl"
check_error "does not exist" "$VKLLM_BIN" run -m "$model" --device 99
out=$("$VKLLM_BIN" run -m "$model" -n 0 2>/dev/null); rc=$?
[ $rc -eq 0 ] && echo "ok: -n 0" || { echo "FAIL: -n 0 exited $rc"; fail=1; }
exit $fail
