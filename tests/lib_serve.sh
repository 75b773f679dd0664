# Helpers for the server tests (tests/cli_serve*.sh), on top of lib_cli.sh: start `vkllm serve` on a free
# loopback port, send requests with curl, stop it. Every wait is bounded; the servers are killed at exit
# even when a check fails.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"

MODEL=$SHARED/models/stories260K.gguf
serve_pids=()

serve_cleanup() {
    for pid in "${serve_pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    # Background curl clients of this script.
    for pid in $(jobs -p); do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}

# serve_init NAME: cli_init plus the checks every server test needs; skips (77) without curl or the model.
serve_init() {
    cli_init "$1"
    trap serve_cleanup EXIT
    command -v curl >/dev/null || cli_skip "curl is not installed"
    [ -f "$MODEL" ] || cli_skip "$MODEL not found"
    cli_require_device
}

# serve_start NAME ARGS...: starts `vkllm serve -m MODEL --port 0 ARGS...` (stderr in $TMP/NAME.err) and
# waits (at most 120 s) for its "listening" line. Sets $URL and $SERVER_PID; returns 1 if it did not start.
serve_start() {
    local name=$1
    shift
    "$BIN" serve -m "$MODEL" --port 0 --chat-template chatml "$@" 2>"$TMP/$name.err" &
    SERVER_PID=$!
    serve_pids+=("$SERVER_PID")
    local port=
    for _ in $(seq 1 1200); do
        port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$TMP/$name.err")
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        fail "server $name did not start: $(head -c 600 "$TMP/$name.err")"
        return 1
    fi
    URL=http://127.0.0.1:$port
}

# serve_stop NAME PID: SIGTERM, then the server must exit 0 within 60 s (a sanitizer build checks its
# leaks at that exit) and have written nothing unexpected on stderr (info lines are expected).
serve_stop() {
    local name=$1 pid=$2 rc=
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "server $name did not stop within 60 s of SIGTERM"
        kill -KILL "$pid" 2>/dev/null
        return 1
    fi
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "server $name exited $rc after SIGTERM: $(tail -c 1500 "$TMP/$name.err")"
        return 1
    fi
    local unexpected
    unexpected=$(grep -v -e '^vkllm serve: listening on ' -e '^vkllm serve: stopping' -e '^vkllm: info: ' "$TMP/$name.err")
    if [ -n "$unexpected" ]; then
        fail "server $name wrote to stderr: $(head -c 1500 <<<"$unexpected")"
        return 1
    fi
    ok "server $name stopped cleanly"
}

# req METHOD PATH [BODY [CURL ARGS...]]: the response body in $TMP/body, headers in $TMP/headers, the
# status in $status (000: no answer). At most 120 s.
req() {
    local method=$1 path=$2 body=${3-}
    shift 3 2>/dev/null || shift $#
    local args=(-s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' --max-time 120 -X "$method")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    status=$(curl "${args[@]}" "$@" "$URL$path")
}

# expect_status NAME WANT METHOD PATH [BODY [CURL ARGS...]]: the status is WANT; for 4xx/5xx the body must
# be an OpenAI error object.
expect_status() {
    local name=$1 want=$2
    shift 2
    req "$@"
    if [ "$status" != "$want" ]; then
        fail "$name: status $status (want $want): $(head -c 300 "$TMP/body")"
        return 1
    fi
    if [ "$want" -ge 400 ] && ! grep -q '^{"error":{"message":"[^"]' "$TMP/body"; then
        fail "$name: status $want without an error object: $(head -c 300 "$TMP/body")"
        return 1
    fi
    ok "$name ($want)"
}

# json_field FIELD FILE: the raw (still escaped) value of the first string field FIELD in FILE.
json_field() {
    sed -n "s/.*\"$1\":\"\(\([^\"\\\\]\|\\\\.\)*\)\".*/\1/p" "$2" | head -n 1
}

# sse_text FIELD FILE: the concatenated (escaped) FIELD values of a server-sent event stream's chunks.
sse_text() {
    grep '^data: {' "$2" | sed -n "s/.*\"$1\":\"\(\([^\"\\\\]\|\\\\.\)*\)\".*/\1/p" | tr -d '\n'
}

# metric NAME: the value of a /metrics line.
metric() {
    curl -s --max-time 30 "$URL/metrics" | sed -n "s/^vkllm_$1 //p"
}

# wait_metric NAME VALUE SECONDS: polls /metrics until NAME is VALUE; returns 1 on timeout.
wait_metric() {
    local name=$1 want=$2 tenths=$(($3 * 10))
    for _ in $(seq 1 "$tenths"); do
        [ "$(metric "$name")" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}
