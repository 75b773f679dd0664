#!/usr/bin/env bash
# `vkllm chat` driven through a pipe: a reply per turn, the KV cache kept between turns (each turn decodes
# only its own tokens), /reset, /exit, end of input, every chat template, the default template's warning,
# the error for a template that is not recognised,
# and what happens when the context is too small (as documented in --help). A synthetic model has a
# synthetic SentencePiece vocabulary and no chat template; stories260K, if present, must not crash.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_chat
model="$TMP/chat.gguf"
expect_ok "$BIN" synth --preset tiny --type q8_0 -o "$model" || cli_finish

# chat INPUT ARGS...: runs the chat with INPUT on stdin; sets $rc, $out (stdout), $err (stderr), $timings
# (the --timings lines, one per reply).
chat() {
  local input=$1; shift
  out=$(printf '%b' "$input" | "$BIN" chat -m "$model" --timings "$@" 2>"$TMP/chat.err"); rc=$?
  err=$(cat "$TMP/chat.err")
  timings=$(printf '%s\n' "$err" | grep '^\[prompt ')
}
n_lines() { if [ -z "$1" ]; then echo 0; else printf '%s\n' "$1" | grep -c .; fi; }
field() { # field LINE WORD: the number before WORD ("reply 8 tokens" -> field "$l" reply) or after it
  printf '%s\n' "$1" | sed -n "s/.*$2 \([0-9]*\).*/\1/p"
}
expect_replies() { # name replies: the last chat exited 0 after that many replies
  if [ $rc -ne 0 ]; then fail "$1: exit status $rc: $err"; return 1; fi
  local got; got=$(n_lines "$timings")
  if [ "$got" -ne "$2" ]; then fail "$1: $got replies, want $2"; echo "$err"; return 1; fi
  ok "$1"
}

# A conversation: three turns and a /reset. Greedy, so the turn after /reset repeats the first exactly.
chat 'hello there\nhow are you\n/reset\nhello there\n' --chat-template chatml --temp 0 -n 8 -c 256
if expect_replies "conversation" 3; then
  t1=$(printf '%s\n' "$timings" | sed -n 1p); t2=$(printf '%s\n' "$timings" | sed -n 2p)
  t3=$(printf '%s\n' "$timings" | sed -n 3p)
  c1=$(field "$t1" context); c2=$(field "$t2" context); p2=$(field "$t2" prompt); r2=$(field "$t2" reply)
  for t in "$t1" "$t2" "$t3"; do
    [ "$(field "$t" reply)" -ge 1 ] || fail "an empty reply: $t"
  done
  # the second turn decoded only its own tokens on top of the first turn's context
  [ "$c2" -eq $((c1 + p2 + r2)) ] && ok "KV cache kept between turns" \
    || fail "turn 2 did not continue turn 1's context: $t1 / $t2"
  [ "$p2" -lt "$c1" ] || fail "turn 2 re-processed the conversation: $t2"
  # after /reset the context starts again from nothing
  [ "$(field "$t3" context)" -eq "$c1" ] && [ "$(field "$t3" prompt)" -eq "$(field "$t1" prompt)" ] \
    && ok "/reset" || fail "/reset: $t1 / $t3"
  printf '%s\n' "$err" | grep -q 'conversation reset' || fail "no reset note"
  [ -n "$out" ] || fail "nothing on stdout"
  printf '%s\n' "$err" | grep -q 'warning' && fail "a warning with --chat-template: $err"
fi

# Every template, two turns each.
for t in llama3 llama2 chatml mistral zephyr gemma phi3 phi4 qwen1.5 qwen2 qwen2.5 qwen3 qwen3-nothink mistral-v7 mistral-tekken deepseek-r1; do
  chat 'Hi!\nAnd now?\n' --chat-template "$t" --temp 0.7 --seed 5 -n 6 -c 256
  expect_replies "template $t" 2
done

# No template in the model and none asked for: the documented default, with a warning.
chat 'hi\n' --temp 0 -n 4
expect_replies "default template" 1
case "$err" in
  *"warning: the model has no chat template; using chatml"*) ok "default warning";;
  *) fail "no default-template warning: $err";;
esac

# A system prompt, sampling flags, end of input without a newline, blank lines ignored.
chat '\n  \nhi there' --system 'You are a pirate.' --temp 0.9 --top-k 20 --top-p 0.9 --min-p 0.01 \
  --repeat-penalty 1.1 --repeat-last-n 32 -s 7 -n 5
expect_replies "system prompt, last line without newline" 1

# /exit ends the chat; so does empty input.
chat 'hi\n/exit\nhello\n' --chat-template zephyr --temp 0 -n 3
expect_replies "/exit" 1
chat '' --chat-template zephyr
expect_replies "empty input" 0

# The context fills: the oldest exchanges are forgotten and the chat goes on.
chat 'hello there\nhow are you\nand again\nmore words here\n' --chat-template chatml --temp 0 -n 20 -c 160
expect_replies "context full: oldest turns dropped" 4
printf '%s\n' "$err" | grep -q 'context full (160 tokens): forgot the 2 oldest messages' \
  || fail "no note about forgotten messages: $err"
while read -r line; do
  [ -z "$line" ] && continue
  [ "$(field "$line" context)" -le 160 ] || fail "context overflow: $line"
done <<< "$timings"

# A reply that reaches the end of the context is cut short, and the next turn still works.
chat 'hi\nhello\n' --chat-template chatml --temp 0 -n -1 -c 100
expect_replies "reply cut at the end of the context" 2
printf '%s\n' "$err" | grep -q 'the reply was cut short' || fail "no cut-short note: $err"

# A message too long for the context is refused; the chat goes on.
long='this is a much longer message that cannot fit in a context this small at all'
chat "hi\n$long\nhi\n" --chat-template llama2 --temp 0 -n 4 -c 40
expect_replies "message too long for the context" 2
printf '%s\n' "$err" | grep -q 'the message does not fit the context: .* the context holds 40 (raise -c)' \
  || fail "no note about the refused message: $err"

# Errors: one line, exit status 1 (with a message waiting on stdin).
chat_hi() { printf 'hi\n' | "$BIN" chat "$@"; }
expect_error "unknown chat template 'jinja' (known: llama3, llama2, chatml, mistral, zephyr, gemma, phi3, phi4, qwen1.5, qwen2, qwen2.5, qwen3, qwen3-nothink, mistral-v7, mistral-tekken, deepseek-r1)" \
  chat_hi -m "$model" --chat-template jinja
expect_error "no model given" chat_hi --chat-template chatml
expect_error "unknown option" chat_hi -m "$model" --bogus
expect_error "the system prompt has" \
  chat_hi -m "$model" --chat-template chatml -c 16 --system "You are a helpful assistant who answers briefly."

# A model whose chat template vkllm does not recognise: an error naming --chat-template, never a guessed
# format; with --chat-template it chats. The template goes in as one more key right after the GGUF header
# (n_kv + 1); the key/value takes 96 bytes, a multiple of the alignment, so the tensor data stays aligned.
tmpl="{{ '<|custom|>' + message['content'] + '<|stop|>' }} " # 53 bytes
[ ${#tmpl} -eq 53 ] || fail "test bug: the template must be 53 bytes"
n_kv=$(od -An -t u8 -j 16 -N 8 "$model" | tr -d ' ')
custom="$TMP/custom.gguf"
{ head -c 16 "$model"
  printf "$(printf '\\x%02x' $((n_kv + 1)))\0\0\0\0\0\0\0"
  printf '\x17\0\0\0\0\0\0\0tokenizer.chat_template\x08\0\0\0\x35\0\0\0\0\0\0\0%s' "$tmpl"
  tail -c +25 "$model"; } > "$custom"
"$BIN" info "$custom" >/dev/null 2>&1 || fail "test bug: the model with a template does not load"
expect_error "the model's chat template is not one vkllm recognises; name its format with --chat-template NAME (llama3," \
  chat_hi -m "$custom"
printf 'hi\n' | "$BIN" chat -m "$custom" --chat-template chatml -n 2 >/dev/null 2>&1 \
  && ok "an unrecognised template with --chat-template" || fail "--chat-template does not override an unrecognised template"

"$BIN" chat --help | grep -q 'less than a quarter of the context' && ok "--help documents a full context" \
  || fail "--help does not document what happens when the context fills"
"$BIN" --help | grep -q '^  chat ' || fail "chat missing from vkllm --help"

# A real (tiny) model: must not crash, a reply per turn.
stories="$SHARED/models/stories260K.gguf"
if [ -f "$stories" ]; then
  model="$stories"
  chat 'Once upon a time\nTell me about Lily.\n/reset\nHi\n' --temp 0 -n 30
  expect_replies "stories260K" 3
  chat 'Hi\nWhat then?\n' --chat-template llama2 --temp 0.8 -s 1 -n 30 -c 64
  expect_replies "stories260K, llama2, small context" 2
else
  echo "skip: $stories not found"
fi
cli_finish
