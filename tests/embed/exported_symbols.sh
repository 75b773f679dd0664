#!/usr/bin/env bash
# libvkllm.so and libvkllm.a export exactly the API: the functions declared in the public headers,
# parsed from them, and nothing else; and libvkllm.a leaves none of its internal names undefined (the
# application's definitions would be used instead).
#     exported_symbols.sh INCLUDE_DIR libvkllm.so libvkllm.a libvkllm_internal.a [libvkllm_tools.a ...]
# Every global name of the internal libraries carries our prefixes.
set -euo pipefail
inc=$1 so=$2 ar=$3 internal=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A declaration starts at column 0 with its return type (comments and struct members do not); a
# typedef of a function pointer is not a function.
grep -hE '^[A-Za-z_][A-Za-z_0-9 *]*\bvkllm_[a-z_0-9]+\(' "$inc"/*.h | grep -v '^typedef' > "$tmp/decls" || true
sed -E 's/^[^(]*\b(vkllm_[a-z_0-9]+)\(.*/\1/' "$tmp/decls" | sort -u > "$tmp/api"
echo "$(wc -l < "$tmp/api") functions declared in $inc"
grep -qx vkllm_model_load "$tmp/api" || fail "the header parser found no vkllm_model_load in $inc"
if grep -v '^VKLLM_API ' "$tmp/decls" > "$tmp/unmarked"; then
    fail "declared without VKLLM_API: $(tr '\n' ' ' < "$tmp/unmarked")"
fi

compare() {   # compare NAME FILE: FILE's symbols are exactly the API
    if diff -u "$tmp/api" "$2" > "$tmp/diff"; then
        echo "ok: $1 exports exactly the API"
    else
        fail "$1: exported symbols differ from the header ('-' declared but not exported, '+' exported but not declared):"
        tail -n +3 "$tmp/diff"
    fi
}
nm -D --defined-only "$so" | awk '{print $NF}' | sort -u > "$tmp/so"
compare "$(basename "$so")" "$tmp/so"
nm -g --defined-only "$ar" | awk 'NF == 3 {print $3}' | sort -u > "$tmp/ar"
compare "$(basename "$ar")" "$tmp/ar"

nm -g --defined-only "$internal" | awk 'NF == 3 {print $3}' | sort -u > "$tmp/internal"
nm -u "$ar" | awk '{print $NF}' | sort -u > "$tmp/undefined"
comm -12 "$tmp/internal" "$tmp/undefined" > "$tmp/leaked"
if [ -s "$tmp/leaked" ]; then
    fail "$(basename "$ar") leaves internal names undefined: $(tr '\n' ' ' < "$tmp/leaked")"
else
    echo "ok: $(basename "$ar") needs only system libraries ($(wc -l < "$tmp/undefined") undefined symbols)"
fi
# Internal names carry our prefixes (they share a process with llama.cpp, ggml or the application's own
# Vulkan code): vkllm_ (API), vkr_ (runtime/), vkl_ (host/), Vulkan entry points and volk (vk[A-Z], volk).
# Names starting with __ or holding a dot are the compiler's (sanitizers).
shift 4
for lib in "$internal" "$@"; do
    nm -g --defined-only "$lib" | awk 'NF == 3 {print $3}' |
        grep -vE '^(vkllm_|vkr_|vkl_|vk[A-Z]|volk|__)|[.]' | sort -u > "$tmp/unprefixed" || true
    if [ -s "$tmp/unprefixed" ]; then
        fail "$(basename "$lib") defines names without our prefixes: $(tr '\n' ' ' < "$tmp/unprefixed")"
    else
        echo "ok: every global name of $(basename "$lib") has our prefix"
    fi
done
[ "$failures" = 0 ]
