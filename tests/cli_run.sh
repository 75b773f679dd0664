#!/usr/bin/env bash
# The golden end-to-end test: stories260K, greedy from BOS, writes its known story; plus the CLI's
# handling of bad arguments (one clear line, exit status 1).
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_run
model="$SHARED/models/stories260K.gguf"
[ -f "$model" ] || cli_skip "$model not found"
expect='Once upon a time, there was a little girl named Lily. She loved to play outside in the park.'
if expect_ok "$BIN" run -m "$model" -n 100 --temp 0; then
  case "$(cat "$TMP/out")" in
    "$expect"*) ok "story";;
    *) fail "expected the story to begin with: $expect; got: $(cat "$TMP/out")";;
  esac
  grep -q 'generated 100 tokens' "$TMP/err" || fail "no timing line: $(cat "$TMP/err")"
fi

# The same story from the kernels a GPU runs (fused matvecs; VKLLM_DEBUG_AS_GPU), on any device.
if VKLLM_DEBUG_AS_GPU=1 expect_ok "$BIN" run -m "$model" -n 100 --temp 0; then
  case "$(cat "$TMP/out")" in
    "$expect"*) ok "story, gpu kernels";;
    *) fail "gpu kernels: expected the story to begin with: $expect; got: $(cat "$TMP/out")";;
  esac
fi

# A prompt continues as the model would: the prompt is echoed, then the continuation.
out=$("$BIN" run -m "$model" -p "Once upon a time" -n 20 --temp 0 2>/dev/null)
case "$out" in
  "Once upon a time, there was a little girl named Lily"*) ok "prompt";;
  *) fail "prompt continuation: $out";;
esac

# Sampling with a seed is reproducible.
a=$("$BIN" run -m "$model" -n 30 --temp 1 --seed 42 2>/dev/null)
b=$("$BIN" run -m "$model" -n 30 --temp 1 --seed 42 2>/dev/null)
[ "$a" = "$b" ] && ok "seed" || fail "same seed, different text"

# Bad input: one line on stderr, exit status 1.
expect_error "no model given" "$BIN" run
expect_error "cannot open" "$BIN" run -m /nonexistent.gguf
expect_error "expects an integer" "$BIN" run -m "$model" -n abc
expect_error "unknown option" "$BIN" run -m "$model" --bogus
expect_error "more than the context" "$BIN" run -m "$model" -c 4 -p "Once upon a time there was a girl"
expect_error "does not exist" "$BIN" run -m "$model" --device 99
expect_ok "$BIN" run -m "$model" -n 0 && ok "-n 0"
cli_finish
