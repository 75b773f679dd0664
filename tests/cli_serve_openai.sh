# The official OpenAI client (the `openai` npm package, installed by .ci/run into the folder that
# $VKLLM_NODE_MODULES names) doing a streamed chat completion against `vkllm serve`. Skipped (77) only
# when node or the package is not there.
. "$(dirname "${BASH_SOURCE[0]}")/lib_serve.sh"
serve_init cli_serve_openai
node_modules=${VKLLM_NODE_MODULES:-}
command -v node >/dev/null || cli_skip "node is not installed"
[ -n "$node_modules" ] && [ -f "$node_modules/openai/package.json" ] ||
    cli_skip "no openai package in \$VKLLM_NODE_MODULES ('$node_modules'; .ci/run installs it)"
version=$(sed -n 's/^ *"version": "\(.*\)",$/\1/p' "$node_modules/openai/package.json")

serve_start openai --parallel 2 -c 256 || cli_finish
if NODE_PATH=$node_modules BASE_URL=$URL/v1 timeout 120 node "$(dirname "${BASH_SOURCE[0]}")/serve_openai.cjs" \
    >"$TMP/node.out" 2>&1; then
    ok "openai $version, node $(node --version): $(tail -n 1 "$TMP/node.out")"
else
    fail "the openai $version client: $(tail -c 800 "$TMP/node.out")"
fi
serve_stop openai "$SERVER_PID"
cli_finish
