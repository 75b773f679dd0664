# Two `vkllm serve` replicas behind nginx on loopback, with the configuration of docs/deploy.md (its
# ports changed): requests reach both, a stream passes through unbuffered, and once one replica is
# killed every request goes to the other. Skipped (77) without nginx.
. "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
serve_init cli_serve_nginx
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || cli_skip "nginx is not installed"
DOC=$(dirname "${BASH_SOURCE[0]}")/../docs/deploy.md

serve_start a --parallel 2 -c 128 || cli_finish
A_PID=$SERVER_PID A_URL=$URL
serve_start b --parallel 2 -c 128 || cli_finish
B_PID=$SERVER_PID B_URL=$URL

# The documented site, on the replicas' ports and a free port of our own (tried until nginx starts).
site=$(sed -n '/^```nginx$/,/^```$/p' "$DOC" | sed '1d;$d')
[ -n "$site" ] || fail "no nginx block in docs/deploy.md"
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
user_line=
[ "$(id -u)" = 0 ] && user_line="user root;"
nginx_pid=
for _ in 1 2 3 4 5; do
    port=$((20000 + RANDOM % 40000))
    sed -e "s/127.0.0.1:8081/${A_URL#http://}/" -e "s/127.0.0.1:8082/${B_URL#http://}/" \
        -e "s/listen 127.0.0.1:8080;/listen 127.0.0.1:$port;/" <<<"$site" >"$TMP/nginx/site.conf"
    cat >"$TMP/nginx/nginx.conf" <<CONF
$user_line
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    include $TMP/nginx/site.conf;
}
CONF
    "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr" &
    nginx_pid=$!
    serve_pids+=("$nginx_pid")
    URL=http://127.0.0.1:$port
    for _ in $(seq 1 50); do
        curl -s --max-time 2 -o /dev/null "$URL/health" && break
        kill -0 "$nginx_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$nginx_pid" 2>/dev/null && break
    nginx_pid=
done
[ -n "$nginx_pid" ] || { fail "nginx did not start: $(cat "$TMP/nginx/stderr" "$TMP/nginx/logs/error.log")"; cli_finish; }

requests_of() { curl -s --max-time 30 "$1/metrics" | sed -n 's/^vkllm_requests_total //p'; }
a0=$(requests_of "$A_URL") b0=$(requests_of "$B_URL")
bad=0
for i in $(seq 1 8); do
    req POST /v1/completions "{\"prompt\":\"Once upon a time $i\",\"max_tokens\":4,\"temperature\":0}"
    [ "$status" = 200 ] || bad=$((bad + 1))
done
a1=$(requests_of "$A_URL") b1=$(requests_of "$B_URL")
# Each /metrics call counts once too: subtract ours.
da=$((a1 - a0 - 1)) db=$((b1 - b0 - 1))
[ $bad -eq 0 ] && [ $da -ge 1 ] && [ $db -ge 1 ] && [ $((da + db)) -eq 8 ] &&
    ok "8 requests through nginx: $da to replica a, $db to replica b" ||
    fail "through nginx: $bad failed, $da to a, $db to b"

req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"stream":true}' -N
[ "$status" = 200 ] && [ "$(tail -n 2 "$TMP/body" | head -n 1)" = "data: [DONE]" ] &&
    [ "$(grep -c '^data: {' "$TMP/body")" -ge 3 ] && ok "a stream through nginx" ||
    fail "stream through nginx ($status): $(tail -c 300 "$TMP/body")"

b1=$(requests_of "$B_URL")
kill -KILL "$A_PID"
wait "$A_PID" 2>/dev/null
bad=0
for i in $(seq 1 6); do
    req POST /v1/completions "{\"prompt\":\"Once upon a time $i\",\"max_tokens\":4,\"temperature\":0}"
    [ "$status" = 200 ] || bad=$((bad + 1))
done
b2=$(requests_of "$B_URL")
[ $bad -eq 0 ] && [ $((b2 - b1 - 1)) -eq 6 ] && ok "replica a killed: all 6 requests answered by b" ||
    fail "after killing a: $bad failed, b got $((b2 - b1 - 1)) of 6"

kill -TERM "$nginx_pid"
wait "$nginx_pid" 2>/dev/null
serve_stop b "$B_PID"
cli_finish
