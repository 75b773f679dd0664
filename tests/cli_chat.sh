#!/usr/bin/env bash
# `vkllm chat` driven through a pipe: a reply per turn, the KV cache kept between turns (each turn decodes
# only its own tokens), /reset, /exit, end of input, every chat template, the default template's warning,
# and what happens when the context is too small (as documented in --help). A synthetic model has a
# synthetic SentencePiece vocabulary and no chat template; stories260K, if present, must not crash.
set -u
tmp="$VKLLM_TEST_TMP"
model="$tmp/chat.gguf"
fail=0
if ! "$VKLLM_BIN" synth --preset tiny --type q8_0 -o "$model" >/dev/null 2>"$tmp/chat.err"; then
  echo "FAIL: synth: $(cat "$tmp/chat.err")"; exit 1
fi

# chat INPUT ARGS...: runs the chat with INPUT on stdin; sets $rc, $out (stdout), $err (stderr), $timings
# (the --timings lines, one per reply).
chat() {
  local input=$1; shift
  out=$(printf '%b' "$input" | "$VKLLM_BIN" chat -m "$model" --timings "$@" 2>"$tmp/chat.err"); rc=$?
  err=$(cat "$tmp/chat.err")
  timings=$(printf '%s\n' "$err" | grep '^\[prompt ')
}
n_lines() { if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | grep -c .; fi; }
field() { # field LINE WORD: the number before WORD ("reply 8 tokens" -> field "$l" reply) or after it
  printf '%s\n' "$1" | sed -n "s/.*$2 \([0-9]*\).*/\1/p"
}
expect_ok() { # name replies
  if [ $rc -ne 0 ]; then echo "FAIL: $1: exit status $rc: $err"; fail=1; return 1; fi
  local got; got=$(n_lines "$timings")
  if [ "$got" -ne "$2" ]; then echo "FAIL: $1: $got replies, want $2"; echo "$err"; fail=1; return 1; fi
  echo "ok: $1"
}

# A conversation: three turns and a /reset. Greedy, so the turn after /reset repeats the first exactly.
chat 'hello there\nhow are you\n/reset\nhello there\n' --chat-template chatml --temp 0 -n 8 -c 256
if expect_ok "conversation" 3; then
  t1=$(printf '%s\n' "$timings" | sed -n 1p); t2=$(printf '%s\n' "$timings" | sed -n 2p)
  t3=$(printf '%s\n' "$timings" | sed -n 3p)
  c1=$(field "$t1" context); c2=$(field "$t2" context); p2=$(field "$t2" prompt); r2=$(field "$t2" reply)
  for t in "$t1" "$t2" "$t3"; do
    [ "$(field "$t" reply)" -ge 1 ] || { echo "FAIL: an empty reply: $t"; fail=1; }
  done
  # the second turn decoded only its own tokens on top of the first turn's context
  [ "$c2" -eq $((c1 + p2 + r2)) ] && echo "ok: KV cache kept between turns" \
    || { echo "FAIL: turn 2 did not continue turn 1's context: $t1 / $t2"; fail=1; }
  [ "$p2" -lt "$c1" ] || { echo "FAIL: turn 2 re-processed the conversation: $t2"; fail=1; }
  # after /reset the context starts again from nothing
  [ "$(field "$t3" context)" -eq "$c1" ] && [ "$(field "$t3" prompt)" -eq "$(field "$t1" prompt)" ] \
    && echo "ok: /reset" || { echo "FAIL: /reset: $t1 / $t3"; fail=1; }
  printf '%s\n' "$err" | grep -q 'conversation reset' || { echo "FAIL: no reset note"; fail=1; }
  [ -n "$out" ] || { echo "FAIL: nothing on stdout"; fail=1; }
  printf '%s\n' "$err" | grep -q 'warning' && { echo "FAIL: a warning with --chat-template: $err"; fail=1; }
fi

# Every template, two turns each.
for t in llama3 llama2 chatml mistral zephyr; do
  chat 'Hi!\nAnd now?\n' --chat-template "$t" --temp 0.7 --seed 5 -n 6 -c 256
  expect_ok "template $t" 2
done

# No template in the model and none asked for: the documented default, with a warning.
chat 'hi\n' --temp 0 -n 4
expect_ok "default template" 1
case "$err" in
  *"warning: the model has no chat template; using chatml"*) echo "ok: default warning";;
  *) echo "FAIL: no default-template warning: $err"; fail=1;;
esac

# A system prompt, sampling flags, end of input without a newline, blank lines ignored.
chat '\n  \nhi there' --system 'You are a pirate.' --temp 0.9 --top-k 20 --top-p 0.9 --min-p 0.01 \
  --repeat-penalty 1.1 --repeat-last-n 32 -s 7 -n 5
expect_ok "system prompt, last line without newline" 1

# /exit ends the chat; so does empty input.
chat 'hi\n/exit\nhello\n' --chat-template zephyr --temp 0 -n 3
expect_ok "/exit" 1
chat '' --chat-template zephyr
expect_ok "empty input" 0

# The context fills: the oldest exchanges are forgotten and the chat goes on.
chat 'hello there\nhow are you\nand again\nmore words here\n' --chat-template chatml --temp 0 -n 20 -c 160
expect_ok "context full: oldest turns dropped" 4
printf '%s\n' "$err" | grep -q 'context full (160 tokens): forgot the 2 oldest messages' \
  || { echo "FAIL: no note about forgotten messages: $err"; fail=1; }
while read -r line; do
  [ -z "$line" ] && continue
  [ "$(field "$line" context)" -le 160 ] || { echo "FAIL: context overflow: $line"; fail=1; }
done <<< "$timings"

# A reply that reaches the end of the context is cut short, and the next turn still works.
chat 'hi\nhello\n' --chat-template chatml --temp 0 -n -1 -c 100
expect_ok "reply cut at the end of the context" 2
printf '%s\n' "$err" | grep -q 'the reply was cut short' || { echo "FAIL: no cut-short note: $err"; fail=1; }

# A message too long for the context is refused; the chat goes on.
long='this is a much longer message that cannot fit in a context this small at all'
chat "hi\n$long\nhi\n" --chat-template llama2 --temp 0 -n 4 -c 40
expect_ok "message too long for the context" 2
printf '%s\n' "$err" | grep -q 'the message does not fit the context: .* the context holds 40 (raise -c)' \
  || { echo "FAIL: no note about the refused message: $err"; fail=1; }

# Errors: one line, exit status 1.
check_error() { # expected-substring args...
  local want=$1; shift
  local e r
  e=$(printf 'hi\n' | "$VKLLM_BIN" chat "$@" 2>&1 >/dev/null); r=$?
  if [ $r -ne 1 ]; then echo "FAIL: 'chat $*' exited $r (want 1)"; fail=1; return; fi
  if [ "$(printf '%s\n' "$e" | grep -c .)" -ne 1 ]; then echo "FAIL: 'chat $*' printed more than one line: $e"; fail=1; return; fi
  case "$e" in *"$want"*) echo "ok: $want";; *) echo "FAIL: 'chat $*': want '$want' in: $e"; fail=1;; esac
}
check_error "unknown chat template 'jinja' (known: llama3, llama2, chatml, mistral, zephyr)" -m "$model" --chat-template jinja
check_error "no model given" --chat-template chatml
check_error "unknown option" -m "$model" --bogus
check_error "the system prompt has" -m "$model" --chat-template chatml -c 16 --system "You are a helpful assistant who answers briefly."

"$VKLLM_BIN" chat --help | grep -q 'less than a quarter of the context' && echo "ok: --help documents a full context" \
  || { echo "FAIL: --help does not document what happens when the context fills"; fail=1; }
"$VKLLM_BIN" --help | grep -q '^  chat ' || { echo "FAIL: chat missing from vkllm --help"; fail=1; }

# A real (tiny) model: must not crash, a reply per turn.
stories="$VKLLM_SHARED/models/stories260K.gguf"
if [ -f "$stories" ]; then
  model="$stories"
  chat 'Once upon a time\nTell me about Lily.\n/reset\nHi\n' --temp 0 -n 30
  expect_ok "stories260K" 3
  chat 'Hi\nWhat then?\n' --chat-template llama2 --temp 0.8 -s 1 -n 30 -c 64
  expect_ok "stories260K, llama2, small context" 2
else
  echo "skip: $stories not found"
fi
rm -f "$tmp/chat.gguf" "$tmp/chat.err"
exit $fail
