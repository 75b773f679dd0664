#!/usr/bin/env bash
# Hardening (issue 15): lost output, files that are not regular, leftovers, a full chat context, messages
# that mislead, bounds, environment values, the pipeline cache. Every command here is bounded in time.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_harden
model="$SHARED/models/stories260K.gguf"
[ -f "$model" ] || cli_skip "$model not found"
cli_require_device
T="timeout 120"

# ---- Pipeline cache: a corrupt file of the same size (here: its header's cache UUID) is rewritten ----
cache="$TMP/cache"
if VKLLM_CACHE_DIR="$cache" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0; then
  file=$(ls "$cache"/pipelines-*.bin 2>/dev/null | head -n 1)
  if [ -z "$file" ]; then
    fail "no pipeline cache file in $cache"
  else
    cp "$file" "$TMP/cache.good"
    printf '\377' | dd of="$file" bs=1 seek=20 conv=notrunc 2>/dev/null   # inside the 16-byte cache UUID
    cmp -s "$file" "$TMP/cache.good" && fail "the cache file was not corrupted"
    VKLLM_CACHE_DIR="$cache" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0 &&
      { cmp -s "$file" "$TMP/cache.good" && ok "corrupt cache header rewritten" ||
          fail "a same-size cache with a foreign UUID was not rewritten"; }
  fi
fi
# A VKLLM_CACHE_DIR too long for a path is not cut short: a warning, and the default directory.
long=$(printf "$TMP/%0800d" 0)
if XDG_CACHE_HOME="$TMP/xdg" VKLLM_CACHE_DIR="$long" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0; then
  grep -q "VKLLM_CACHE_DIR is 8.. bytes long" "$TMP/err" && ok "long VKLLM_CACHE_DIR: warning" ||
    fail "long VKLLM_CACHE_DIR: no warning: $(head -c 300 "$TMP/err")"
  ls "$TMP/xdg/vkllm"/pipelines-*.bin >/dev/null 2>&1 && ok "long VKLLM_CACHE_DIR: default directory used" ||
    fail "long VKLLM_CACHE_DIR: no cache in the default directory"
fi

# ---- Files that are not regular files are refused at once, never waited on ----
mkfifo "$TMP/fifo"
expect_error "not a regular file" $T "$BIN" info "$TMP/fifo"
expect_error "not a regular file" $T "$BIN" run -m "$TMP/fifo" -n 1
expect_error "not a regular file" $T "$BIN" tokenize -m "$TMP/fifo" -p hi
expect_error "not a regular file" $T "$BIN" bench -m "$TMP/fifo" -p 0 -n 1 -r 1
# A FIFO where the pipeline cache file goes: no cache read, and the run goes on.
mkdir -p "$TMP/fifocache"
name=$(basename "$(ls "$cache"/pipelines-*.bin | head -n 1)")
mkfifo "$TMP/fifocache/$name"
VKLLM_CACHE_DIR="$TMP/fifocache" expect_ok $T "$BIN" run -m "$model" -n 2 --temp 0 && ok "FIFO at the cache path"

cli_finish
