# `vkllm serve` under load: 64 concurrent streaming requests with different prompts on 4 slots (60 of
# them queued at first). All must finish; each greedy text must equal the same request sent alone; the
# server's RSS after the load must come back near what it was before (no growth per request).
. "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
serve_init cli_serve_load
N=64
TOKENS=12

# Under AddressSanitizer (ctest sets ASAN_OPTIONS), freed memory waits in a quarantine of 256 MiB, which
# would show as RSS growth: keep it small for this server (leaks are LeakSanitizer's job, at its exit).
# Its per-thread allocator caches also make the second round's RSS vary more: 16 MiB of slack, not 8.
slack=8192
if [ -n "${ASAN_OPTIONS:-}" ]; then
    export ASAN_OPTIONS="$ASAN_OPTIONS:quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
    slack=16384
fi
serve_start load --parallel 4 --queue $N -c 128 || cli_finish
LOAD_PID=$SERVER_PID

names=(Lily Tom Sue Max Ben Anna Sam Mia)
places=(park garden forest beach river school house shop)
body() {   # body I STREAM: request I's JSON (64 prompts sharing the "Once upon a time, " prefix)
    printf '{"prompt":"Once upon a time, %s went to the %s.","max_tokens":%d,"temperature":0,"stream":%s}' \
        "${names[$(($1 % 8))]}" "${places[$(($1 / 8))]}" "$TOKENS" "$2"
}
rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$LOAD_PID/status"; }

# Each request alone (one at a time, not streamed): the reference texts. This also warms the server up.
for i in $(seq 0 $((N - 1))); do
    req POST /v1/completions "$(body "$i" false)"
    [ "$status" = 200 ] || fail "request $i alone: status $status $(head -c 200 "$TMP/body")"
    json_field text "$TMP/body" >"$TMP/alone.$i"
    grep -q "\"completion_tokens\":$TOKENS" "$TMP/body" || fail "request $i alone: $(cat "$TMP/body")"
done
rss_before=$(rss_kib)

# All at once, streamed, twice: the second round shows whether memory grows per round.
for round in 1 2; do
    start=$SECONDS
    pids=()
    for i in $(seq 0 $((N - 1))); do
        curl -sN --max-time 300 "$URL/v1/completions" -d "$(body "$i" true)" >"$TMP/stream.$i" 2>/dev/null &
        pids+=($!)
    done
    lost=0
    for i in $(seq 0 $((N - 1))); do
        wait "${pids[$i]}" || lost=$((lost + 1))
    done
    differ=0 unfinished=0
    for i in $(seq 0 $((N - 1))); do
        [ "$(tail -n 2 "$TMP/stream.$i" | head -n 1)" = "data: [DONE]" ] || unfinished=$((unfinished + 1))
        if [ "$(sse_text text "$TMP/stream.$i")" != "$(cat "$TMP/alone.$i")" ]; then
            [ $differ -eq 0 ] && echo "request $i: '$(sse_text text "$TMP/stream.$i")' alone: '$(cat "$TMP/alone.$i")'"
            differ=$((differ + 1))
        fi
    done
    if [ $lost -eq 0 ] && [ $unfinished -eq 0 ] && [ $differ -eq 0 ]; then
        ok "round $round: $N concurrent streams finished in $((SECONDS - start)) s, each text = the request alone"
    else
        fail "round $round: $lost curl failures, $unfinished streams without [DONE], $differ texts differ"
    fi
    wait_metric slots_busy 0 30 || fail "slots still busy after round $round"
    [ "$(metric queue_depth)" = 0 ] || fail "requests still queued after round $round"
    eval "rss_round$round=\$(rss_kib)"
done
echo "RSS (KiB): after the single requests $rss_before, after round 1 $rss_round1, after round 2 $rss_round2"
# 64 connection threads come and go (their stacks, malloc arenas): allow 64 MiB over the baseline for
# the first round, then no more than $slack KiB for an identical second one.
if [ "$rss_round1" -le $((rss_before + 65536)) ] && [ "$rss_round2" -le $((rss_round1 + slack)) ]; then
    ok "RSS returns near its baseline"
else
    fail "RSS grew: $rss_before -> $rss_round1 -> $rss_round2 KiB"
fi
[ "$(metric requests_rejected_total)" = 0 ] || fail "requests were rejected"
serve_stop load "$LOAD_PID"
cli_finish
