# `vkllm serve` on loopback with the stories260K model: every endpoint with curl (streaming too), API
# keys, bad requests (each a 4xx JSON error, the server still up), a full queue (503), a client that
# disconnects mid-stream (its slot is freed), a clean stop on SIGTERM; a sliding-window model (gemma3-tiny)
# on one and two slots.
. "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
serve_init cli_serve
CLI_ERROR_PREFIX="vkllm serve: "

# ---- Command-line errors ----
expect_error "no model given" "$BIN" serve
expect_error "unknown option" "$BIN" serve -m "$MODEL" --bogus
expect_error "--parallel" "$BIN" serve -m "$MODEL" --parallel 0
expect_error "--port" "$BIN" serve -m "$MODEL" --port 70000
expect_error "not both" "$BIN" serve -m "$MODEL" --api-key a --api-key-file "$TMP/none"
: >"$TMP/empty_key"
expect_error "is empty" "$BIN" serve -m "$MODEL" --api-key-file "$TMP/empty_key"
expect_error "cannot use --host" "$BIN" serve -m "$MODEL" --chat-template chatml --host no.such.host.invalid

# ---- Endpoints ----
serve_start main --parallel 2 -c 256 || cli_finish
MAIN_PID=$SERVER_PID

expect_status "GET /health" 200 GET /health && grep -q '"status":"ok"' "$TMP/body" || fail "health body"
expect_status "GET /v1/models" 200 GET /v1/models
grep -q '"id":"stories260K.gguf"' "$TMP/body" || fail "/v1/models does not list the model: $(cat "$TMP/body")"

complete='{"prompt":"Once upon a time","max_tokens":24,"temperature":0}'
expect_status "POST /v1/completions" 200 POST /v1/completions "$complete"
grep -q '"object":"text_completion"' "$TMP/body" && grep -q '"finish_reason":"length"' "$TMP/body" &&
    grep -q '"usage":{"prompt_tokens":5,"completion_tokens":24,"total_tokens":29}' "$TMP/body" ||
    fail "completion body: $(cat "$TMP/body")"
completion_text=$(json_field text "$TMP/body")
[ -n "$completion_text" ] || fail "the completion is empty"
# The same request streamed: the same text in chunks, then [DONE].
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":24,"temperature":0,"stream":true}' -N
streamed=$(sse_text text "$TMP/body")
if [ "$status" = 200 ] && [ "$streamed" = "$completion_text" ] && [ "$(tail -n 2 "$TMP/body" | head -n 1)" = "data: [DONE]" ] &&
    grep -qi '^content-type: text/event-stream' "$TMP/headers"; then
    ok "streamed completion = the whole one, ends with [DONE]"
else
    fail "streamed completion ($status): '$streamed' vs '$completion_text': $(tail -c 400 "$TMP/body")"
fi
# Prefix reuse: the same prompt again is served from the slot's cache (and still gives the same text).
reused_before=$(metric prompt_tokens_reused_total)
expect_status "completion again" 200 POST /v1/completions "$complete"
[ "$(json_field text "$TMP/body")" = "$completion_text" ] || fail "the repeated completion differs"
reused_after=$(metric prompt_tokens_reused_total)
[ "$((reused_after - reused_before))" -ge 4 ] && ok "a repeated prompt reuses the slot's KV cache" ||
    fail "prompt_tokens_reused_total went from $reused_before to $reused_after"

# Stop strings, also across token boundaries: stopping at a piece of the known continuation.
stop_at=${completion_text:8:5}
expect_status "stop string" 200 POST /v1/completions \
    "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stop\":[\"zzz\",\"$stop_at\"]}"
want=${completion_text%%"$stop_at"*}
[ "$(json_field text "$TMP/body")" = "$want" ] && grep -q '"finish_reason":"stop"' "$TMP/body" &&
    ok "stop string '$stop_at' cuts the text before it" || fail "stop '$stop_at': $(cat "$TMP/body") (want '$want')"
req POST /v1/completions "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stream\":true,\"stop\":\"$stop_at\"}" -N
[ "$(sse_text text "$TMP/body")" = "$want" ] && ok "stop string when streaming" ||
    fail "streamed stop: '$(sse_text text "$TMP/body")' (want '$want')"

chat='{"messages":[{"role":"system","content":"You tell stories."},{"role":"user","content":"Tell me about a cat."}],"max_tokens":16,"temperature":0}'
expect_status "POST /v1/chat/completions" 200 POST /v1/chat/completions "$chat"
grep -q '"object":"chat.completion"' "$TMP/body" && grep -q '"message":{"role":"assistant","content":"' "$TMP/body" ||
    fail "chat body: $(cat "$TMP/body")"
chat_text=$(json_field content "$TMP/body")
req POST /v1/chat/completions "${chat%\}},\"stream\":true,\"stream_options\":{\"include_usage\":true}}" -N
if [ "$status" = 200 ] && [ "$(sse_text content "$TMP/body")" = "$chat_text" ] &&
    grep -q '"delta":{"role":"assistant","content":""}' "$TMP/body" &&
    grep -q '"choices":\[\],"usage":{"prompt_tokens":[0-9]*,"completion_tokens":16,' "$TMP/body" &&
    [ "$(tail -n 2 "$TMP/body" | head -n 1)" = "data: [DONE]" ]; then
    ok "streamed chat: role chunk, the same text, usage chunk, [DONE]"
else
    fail "streamed chat ($status): $(tail -c 600 "$TMP/body")"
fi
# Multi-turn chat: the next turn (history + reply + a new message) does not process the history again.
chat_prompt=$(sed -n 's/.*"prompt_tokens":\([0-9]*\).*/\1/p' "$TMP/body")
reused_before=$(metric prompt_tokens_reused_total)
expect_status "chat, second turn" 200 POST /v1/chat/completions \
    "{\"messages\":[{\"role\":\"system\",\"content\":\"You tell stories.\"},{\"role\":\"user\",\"content\":\"Tell me about a cat.\"},{\"role\":\"assistant\",\"content\":\"$chat_text\"},{\"role\":\"user\",\"content\":\"And then?\"}],\"max_tokens\":4}"
reused=$(($(metric prompt_tokens_reused_total) - reused_before))
[ "$reused" -ge "$chat_prompt" ] && ok "second turn: $reused prompt tokens from the slot's cache (first turn: $chat_prompt)" ||
    fail "second turn reused $reused tokens (first turn's prompt: '$chat_prompt')"
# Sampling parameters are accepted; the same seed gives the same text.
sampled='{"prompt":"Once upon a time","max_tokens":12,"temperature":0.9,"top_p":0.9,"top_k":20,"min_p":0.01,"seed":42,"presence_penalty":0.5,"frequency_penalty":0.5,"repeat_penalty":1.1}'
expect_status "sampling parameters" 200 POST /v1/completions "$sampled"
first=$(json_field text "$TMP/body")
req POST /v1/completions "$sampled"
[ "$(json_field text "$TMP/body")" = "$first" ] && ok "same seed, same text" || fail "seed 42 gave two texts"
expect_status "max_completion_tokens" 200 POST /v1/chat/completions \
    '{"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_completion_tokens":3}'
grep -q '"completion_tokens":3' "$TMP/body" || fail "max_completion_tokens: $(cat "$TMP/body")"

expect_status "POST /tokenize" 200 POST /tokenize '{"content":"Once upon a time"}'
tokens=$(sed -n 's/.*"tokens":\[\([0-9,]*\)\].*/\1/p' "$TMP/body")
[ -n "$tokens" ] || fail "tokenize body: $(cat "$TMP/body")"
expect_status "POST /detokenize" 200 POST /detokenize "{\"tokens\":[$tokens]}"
[ "$(json_field content "$TMP/body")" = "Once upon a time" ] && ok "detokenize(tokenize(x)) = x" ||
    fail "detokenize: $(cat "$TMP/body")"
expect_status "tokenize with pieces" 200 POST /tokenize '{"content":"Once","with_pieces":true,"add_special":true}'
grep -q '"tokens":\[{"id":1,"piece":' "$TMP/body" || fail "pieces: $(cat "$TMP/body")"

expect_status "GET /metrics" 200 GET /metrics
for m in requests_total generated_tokens_total generation_tokens_per_second queue_depth slots_busy kv_cache_usage_ratio; do
    grep -q "^vkllm_$m [0-9]" "$TMP/body" || fail "/metrics lacks vkllm_$m"
done

# ---- Bad requests: a 4xx JSON error each, never a crash ----
expect_status "unknown path" 404 GET /nope
expect_status "wrong method" 405 GET /v1/completions
expect_status "malformed JSON" 400 POST /v1/completions '{"prompt":'
expect_status "empty body" 400 POST /v1/completions ''
expect_status "not an object" 400 POST /v1/completions '[1,2]'
expect_status "prompt of the wrong type" 400 POST /v1/completions '{"prompt":5}'
expect_status "no messages" 400 POST /v1/chat/completions '{"prompt":"x"}'
expect_status "empty messages" 400 POST /v1/chat/completions '{"messages":[]}'
expect_status "unknown role" 400 POST /v1/chat/completions '{"messages":[{"role":"tool","content":"x"}]}'
expect_status "image content" 400 POST /v1/chat/completions '{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}'
expect_status "n > 1" 400 POST /v1/completions '{"prompt":"x","n":2}'
expect_status "tools" 400 POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}'
expect_status "logprobs" 400 POST /v1/completions '{"prompt":"x","logprobs":5}'
expect_status "temperature as a string" 400 POST /v1/completions '{"prompt":"x","temperature":"hot"}'
expect_status "temperature out of range" 400 POST /v1/completions '{"prompt":"x","temperature":5}'
expect_status "max_tokens 0" 400 POST /v1/completions '{"prompt":"x","max_tokens":0}'
expect_status "max_tokens a fraction" 400 POST /v1/completions '{"prompt":"x","max_tokens":1.5}'
expect_status "huge integer" 400 POST /v1/completions '{"prompt":"x","max_tokens":123456789012345678901234567890}'
expect_status "huge real" 400 POST /v1/completions '{"prompt":"x","top_p":1e999}'
expect_status "five stop strings" 400 POST /v1/completions '{"prompt":"x","stop":["a","b","c","d","e"]}'
expect_status "stop of the wrong type" 400 POST /v1/completions '{"prompt":"x","stop":[1]}'
expect_status "duplicate key" 400 POST /v1/completions '{"prompt":"x","prompt":"y"}'
expect_status "NUL in a string" 400 POST /v1/completions '{"prompt":"a\u0000b"}'
expect_status "stream not a boolean" 400 POST /v1/completions '{"prompt":"x","stream":"yes"}'
expect_status "token id out of range" 400 POST /detokenize '{"tokens":[100000]}'
expect_status "negative token id" 400 POST /detokenize '{"tokens":[-1]}'
expect_status "prompt longer than the context" 400 POST /v1/completions \
    "{\"prompt\":\"$(printf 'Once upon a time %.0s' $(seq 1 80))\"}"
printf '{"prompt":"\xff\xfe"}' >"$TMP/bad_utf8"
expect_status "invalid UTF-8" 400 POST /v1/completions '' --data-binary @"$TMP/bad_utf8"
printf '%0.s[' $(seq 1 5000) >"$TMP/deep"
expect_status "deep nesting" 400 POST /v1/completions '' --data-binary @"$TMP/deep"
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'a' >"$TMP/big"
expect_status "5 MiB body" 413 POST /v1/completions '' --data-binary @"$TMP/big"
req GET /health '' -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' 'b')"
case $status in 4*) ok "100 kB header ($status)" ;; *) fail "100 kB header: status $status" ;; esac
# Not HTTP at all: a 400 status line or a closed connection, and the server lives on.
if exec 3<>"/dev/tcp/127.0.0.1/${URL##*:}"; then
    printf 'GARBAGE \x01\x02\r\n\r\n' >&3
    answer=$(timeout 10 head -c 12 <&3)
    exec 3>&-
    case $answer in "" | "HTTP/1.1 400" | "HTTP/1.0 400") ok "garbage request line: '${answer:-closed}'" ;;
    *) fail "garbage request line answered '$answer'" ;; esac
fi
expect_status "still serving after the bad requests" 200 GET /health
serve_stop main "$MAIN_PID"

# ---- API key ----
printf 'sk-test-key\n' >"$TMP/key"
serve_start auth --api-key-file "$TMP/key" --timeout 2 || cli_finish
AUTH_PID=$SERVER_PID
# A client that sends half a request and then nothing is disconnected after the idle time (2 s).
if exec 3<>"/dev/tcp/127.0.0.1/${URL##*:}"; then
    printf 'GET /health HTTP/1.1\r\nHost: x\r\n' >&3
    start=$SECONDS
    timeout 20 cat <&3 >/dev/null
    exec 3>&-
    [ $((SECONDS - start)) -le 10 ] && ok "an idle half-sent request is dropped after $((SECONDS - start)) s" ||
        fail "an idle connection stayed open $((SECONDS - start)) s (--timeout 2)"
fi
expect_status "no key" 401 GET /v1/models
expect_status "wrong key" 401 GET /v1/models '' -H 'Authorization: Bearer sk-test-kez'
expect_status "key too long" 401 GET /v1/models '' -H 'Authorization: Bearer sk-test-key2'
expect_status "key not a bearer token" 401 GET /v1/models '' -H 'Authorization: sk-test-key'
expect_status "the right key" 200 GET /v1/models '' -H 'Authorization: Bearer sk-test-key'
expect_status "/health needs no key" 200 GET /health
serve_stop auth "$AUTH_PID"

# ---- Queue full, and a client leaving mid-stream ----
# One slot, one queue place, each generation round slowed to 50 ms so that requests stay busy.
VKLLM_DEBUG_SERVE_STEP_MS=50 serve_start queue --parallel 1 --queue 1 -c 256 || cli_finish
QUEUE_PID=$SERVER_PID
curl -sN --max-time 60 "$URL/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":200,"stream":true}' \
    >"$TMP/long.out" 2>/dev/null &
long_pid=$!
wait_metric slots_busy 1 30 || fail "the long request did not take the slot"
curl -s --max-time 60 "$URL/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":4}' >"$TMP/queued.out" &
queued_pid=$!
wait_metric queue_depth 1 30 || fail "the second request did not wait in the queue"
expect_status "queue full" 503 POST /v1/completions '{"prompt":"x","max_tokens":1}'
grep -qi '^retry-after: 1' "$TMP/headers" && ok "503 says Retry-After" || fail "503 without Retry-After"
[ "$(metric requests_rejected_total)" = 1 ] || fail "requests_rejected_total is not 1"
# The streaming client goes away: its slot goes to the queued request, which then finishes quickly
# (the long one had about 8 s of work left).
sleep 0.5
kill "$long_pid" 2>/dev/null
wait "$long_pid" 2>/dev/null
grep -q '^data: {' "$TMP/long.out" && ! grep -q 'DONE' "$TMP/long.out" || fail "the long stream was not cut mid-way"
start=$SECONDS
wait "$queued_pid"
if grep -q '"finish_reason":"length"' "$TMP/queued.out" && [ $((SECONDS - start)) -le 5 ]; then
    ok "a disconnected stream frees its slot: the queued request finished in $((SECONDS - start)) s"
else
    fail "queued request after the disconnect ($((SECONDS - start)) s): $(cat "$TMP/queued.out")"
fi
wait_metric slots_busy 0 10 && ok "no slot busy afterwards" || fail "a slot stays busy"
# A non-streamed request (10 s of work) whose client leaves once it has the slot is cancelled too.
curl -s --max-time 60 "$URL/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":200}' >/dev/null 2>&1 &
whole_pid=$!
wait_metric slots_busy 1 30 || fail "the whole-answer request did not take the slot"
kill "$whole_pid" 2>/dev/null
wait "$whole_pid" 2>/dev/null
wait_metric slots_busy 0 3 && ok "a client that leaves a whole-answer request frees its slot" ||
    fail "the abandoned whole-answer request keeps its slot"
serve_stop queue "$QUEUE_PID"

# ---- A sliding-window model (gemma3-tiny, window 8) with a context larger than window + batch ----
# Each slot keeps a ring in the window layers, which takes the scheduler's batches in order. Two prompts
# longer than the window, run concurrently on two slots, give the greedy text
# each gives alone on one slot.
gemma3=$TMP/gemma3-tiny.gguf
expect_ok "$BIN" synth --preset gemma3-tiny --type q8_0 -o "$gemma3" --seed 3 || cli_finish
ring_prompts=("The quick brown fox jumps over the lazy dog and runs far away"
    "Once upon a time there was a little girl who lived in a house")
ring_req() { printf '{"prompt":"%s","max_tokens":24,"temperature":0}' "$1"; }
MODEL=$gemma3 serve_start ring1 --parallel 1 -c 256 -b 32 || cli_finish
RING1_PID=$SERVER_PID
alone=()
for i in 0 1; do
    expect_status "gemma3 ring, prompt $i alone" 200 POST /v1/completions "$(ring_req "${ring_prompts[$i]}")"
    alone[i]=$(json_field text "$TMP/body")
done
[ -n "${alone[0]}" ] && [ "${alone[0]}" != "${alone[1]}" ] || fail "gemma3 texts alone: '${alone[0]}' '${alone[1]}'"
serve_stop ring1 "$RING1_PID"
MODEL=$gemma3 serve_start ring2 --parallel 2 -c 256 -b 32 || cli_finish
RING2_PID=$SERVER_PID
ring_pids=()
for i in 0 1; do
    curl -s --max-time 60 "$URL/v1/completions" -d "$(ring_req "${ring_prompts[$i]}")" >"$TMP/ring$i.out" &
    ring_pids+=($!)
done
wait "${ring_pids[@]}"
for i in 0 1; do
    got=$(json_field text "$TMP/ring$i.out")
    [ "$got" = "${alone[$i]}" ] && ok "gemma3, two slots: prompt $i gives its text alone" ||
        fail "gemma3, two slots: prompt $i: '$got', alone '${alone[$i]}': $(head -c 300 "$TMP/ring$i.out")"
done
# The same prompt again: its slot's ring is cut back to the prompt (vkllm_seq_rm within a batch), which is reused.
reused_before=$(metric prompt_tokens_reused_total)
expect_status "gemma3, two slots: prompt 0 again" 200 POST /v1/completions "$(ring_req "${ring_prompts[0]}")"
reused=$(($(metric prompt_tokens_reused_total) - reused_before))
[ "$(json_field text "$TMP/body")" = "${alone[0]}" ] && [ "$reused" -gt 0 ] &&
    ok "gemma3, two slots: prompt 0 again reuses $reused cached tokens of its ring, same text" ||
    fail "gemma3, two slots: prompt 0 again: '$(json_field text "$TMP/body")' ($reused tokens reused)"
serve_stop ring2 "$RING2_PID"

cli_finish
