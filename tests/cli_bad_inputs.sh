#!/usr/bin/env bash
# Bad inputs from the command line, on a synthetic tiny model (no shared data needed): each exits with
# status 1 and exactly one line on stderr naming the problem (under ctest the validation layer is on, so
# a validation message would show as an extra line), or, where the input is legal, works. In the
# sanitizer build the same runs also check for leaks and undefined behaviour (a report fails the exit
# status or line count). Model-level bad files are made by patching a field of the synthetic model in
# place; the GGUF reader's own malformed-file cases are in cli_gguf.sh.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_bad_inputs

# patch FILE OFFSET BYTES...: overwrite bytes in place (BYTES as printf escapes, e.g. '\x0c')
patch() {
    local file=$1 offset=$2
    shift 2
    printf "$@" | dd of="$file" bs=1 seek="$offset" conv=notrunc status=none
}

# offset_after FILE STRING: byte offset just past the first occurrence of STRING in FILE
offset_after() {
    local at
    at=$(grep -obUaF -- "$2" "$1" | head -n 1 | cut -d: -f1)
    [ -n "$at" ] || { echo "FAIL: '$2' not found in $1" >&2; echo -1; return; }
    echo $((at + ${#2}))
}

model="$TMP/tiny.gguf"
expect_ok "$BIN" synth --preset tiny --type q8_0 -o "$model" --seed 11 || exit 1

# ---- bad model files ----
cp "$model" "$TMP/arch.gguf"
o=$(offset_after "$TMP/arch.gguf" general.architecture)   # then: type u32, length u64, "llama"
patch "$TMP/arch.gguf" $((o + 12)) 'gemma'
expect_error "architecture 'gemma' is not supported" "$BIN" run -m "$TMP/arch.gguf" -n 1

cp "$model" "$TMP/missing.gguf"
o=$(offset_after "$TMP/missing.gguf" blk.1.ffn_down.weight)
patch "$TMP/missing.gguf" $((o - 8)) 'X'                    # blk.1.ffn_dowX.weight
expect_error "missing tensor blk.1.ffn_down.weight" "$BIN" run -m "$TMP/missing.gguf" -n 1

cp "$model" "$TMP/type.gguf"
o=$(offset_after "$TMP/type.gguf" blk.0.attn_q.weight)     # then: n_dims u32, ne[2] u64, type u32
patch "$TMP/type.gguf" $((o + 20)) '\x22\x00\x00\x00'       # 34 = tq1_0
expect_error "tensor blk.0.attn_q.weight has type tq1_0" "$BIN" run -m "$TMP/type.gguf" -n 1
patch "$TMP/type.gguf" $((o + 20)) '\x63\x00\x00\x00'       # 99: no GGUF type
expect_error "tensor blk.0.attn_q.weight has type unknown (99)" "$BIN" run -m "$TMP/type.gguf" -n 1
patch "$TMP/type.gguf" $((o + 20)) '\x0c\x00\x00\x00'       # 12 = q4_K, rows of 128
expect_error "blk.0.attn_q.weight: row length 128 is not a multiple of the block size 256 of type q4_K" \
    "$BIN" run -m "$TMP/type.gguf" -n 1
expect_error "row length 128 is not a multiple" "$BIN" info "$TMP/type.gguf"
patch "$TMP/type.gguf" $((o + 20)) '\x00\x00\x00\x00'       # q8_0 -> f32: 4x the bytes
expect_error "tensor blk.0.attn_q.weight: its 65536 bytes (type f32" "$BIN" run -m "$TMP/type.gguf" -n 1

size=$(stat -c %s "$model")
head -c $((size - 4096)) "$model" >"$TMP/truncated.gguf"
expect_error "data extends past end of file" "$BIN" run -m "$TMP/truncated.gguf" -n 1
expect_error "past end of file" "$BIN" perplexity -m "$TMP/truncated.gguf" -f "$model"

# ---- prompts and lengths ----
expect_error "more than the context" "$BIN" run -m "$model" -c 4 -p "Once upon a time there was a girl"
expect_error "more than the context" "$BIN" run -m "$model" -c 1 -p "Once upon a time"
# -c 1 with BOS alone: one token fits, generation stops when the context is full (status 0)
if expect_ok "$BIN" run -m "$model" -c 1 -n 5 --temp 0; then
    grep -q "context full" "$TMP/err" && ok "-c 1" || fail "-c 1 did not say the context is full"
fi
if expect_ok "$BIN" run -m "$model" -n 0 -p "hello" --temp 0; then
    grep -q "generated 0 tokens" "$TMP/err" && ok "-n 0" || fail "-n 0: $(cat "$TMP/err")"
fi
# Invalid UTF-8 (and, from a file, NUL bytes) in the prompt: tokenized byte by byte, echoed back as is.
if expect_ok "$BIN" run -m "$model" -p $'\xff\xfe bad \xc3( \xed\xa0\x80 end' -n 3 --temp 0; then
    LC_ALL=C grep -qF $'\xff\xfe bad \xc3( \xed\xa0\x80 end' "$TMP/out" && ok "invalid UTF-8 prompt" ||
        fail "invalid UTF-8 prompt not echoed"
fi
printf 'nul \000 and \377\376 bytes' >"$TMP/binary.txt"
expect_ok "$BIN" run -m "$model" -f "$TMP/binary.txt" -n 3 --temp 0 && ok "binary prompt file"
expect_error "expects an integer from -1" "$BIN" run -m "$model" -n -2
expect_error "expects an integer from 1" "$BIN" run -m "$model" -c 0
expect_error "expects an integer from 1" "$BIN" run -m "$model" -b 0
expect_error "expects an integer from 1" "$BIN" run -m "$model" --memory-limit 0
expect_error "needs a value" "$BIN" run -m "$model" -p

# ---- devices ----
expect_error "device 99 does not exist" "$BIN" run -m "$model" --device 99
expect_error "no device name contains 'no-such-gpu'" "$BIN" run -m "$model" --device no-such-gpu
VKLLM_DEVICE=77 expect_error "device 77 does not exist" "$BIN" run -m "$model"
# No Vulkan driver at all (validation off: the loader would report its own failure as a second line).
(
    export VK_ICD_FILENAMES=/nonexistent/icd.json VK_DRIVER_FILES=/nonexistent/icd.json
    unset VKLLM_VALIDATION
    expect_error "no Vulkan driver" "$BIN" run -m "$model" -n 1
    expect_error "no Vulkan driver" "$BIN" devices
    expect_error "no Vulkan driver" "$BIN" perplexity -m "$model" -f "$TMP/binary.txt"
    # Commands that need no GPU still work.
    expect_ok "$BIN" info "$model" && ok "info without a driver"
    exit "$cli_failures"
)
cli_failures=$?   # the subshell's count: this script's so far plus its own

# ---- device memory ----
expect_error "more than this device can bind" "$BIN" run -m "$model" -c 2000000000
expect_error "out of device memory" "$BIN" run -m "$model" --memory-limit 1
expect_error "out of device memory" "$BIN" run -m "$model" --memory-limit 65
VKLLM_DEBUG_LOSE_DEVICE=1 expect_error "device lost" "$BIN" run -m "$model" -n 3

cli_finish
