#!/bin/bash
# `vkllm info` and `vkllm synth` from the shell: exit status 0 on success; on a broken input exit
# status 1 and exactly one line on stderr, "vkllm: <message>", naming the problem.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_gguf
CLI_ERROR_PREFIX="vkllm: "

# --- synth: a small model to inspect (needs no shared data) ---
expect_quiet "$BIN" synth --preset tiny --type q8_0 -o "$TMP/tiny.gguf" --seed 7
grep -q "tiny" "$TMP/out" || fail "synth did not say what it wrote: $(cat "$TMP/out")"
[ -s "$TMP/tiny.gguf" ] || fail "synth wrote no file"
expect_quiet "$BIN" synth --help
grep -q "usage" "$TMP/out" || fail "synth --help prints no usage"
expect_error "unknown preset" "$BIN" synth --preset nope --type f32 -o "$TMP/x.gguf"
expect_error "unknown type" "$BIN" synth --preset tiny --type tq1_0 -o "$TMP/x.gguf"
expect_error "required" "$BIN" synth --preset tiny --type f32
expect_error "seed" "$BIN" synth --preset tiny --type f32 -o "$TMP/x.gguf" --seed x1
expect_error "cannot create" "$BIN" synth --preset tiny --type f32 -o "$TMP/no/such/dir.gguf"
[ ! -e "$TMP/x.gguf" ] || fail "a failed synth left a file behind"
# --arch: a family's tiny preset, its keys and tensors named as llama.cpp's converter names them
expect_quiet "$BIN" synth --arch qwen2 --type f16 -o "$TMP/qwen2.gguf" --seed 7
expect_quiet "$BIN" info "$TMP/qwen2.gguf"
for want in "architecture: *qwen2" "qwen2.rope.scaling.type *\"yarn\"" "blk.1.attn_k.bias *f32 *\[64\]"; do
    grep -qE -- "$want" "$TMP/out" || fail "info qwen2-tiny: output lacks '$want'"
done
expect_quiet "$BIN" synth --arch phi3 --preset phi3-tiny --type q8_0 -o "$TMP/phi3.gguf" --seed 7
expect_quiet "$BIN" info "$TMP/phi3.gguf"
for want in "blk.0.attn_qkv.weight *q8_0 *\[128, 256\]" "blk.0.ffn_up.weight *q8_0 *\[128, 768\]" \
    "rope_factors_long.weight *f32 *\[12\]" "phi3.rope.scaling.attn_factor"; do
    grep -qE -- "$want" "$TMP/out" || fail "info phi3-tiny: output lacks '$want'"
done
expect_error "unknown architecture 'mamba' (supported: llama, qwen2, qwen3, gemma2, gemma3, phi3)" \
    "$BIN" synth --arch mamba --type f32 -o "$TMP/x.gguf"
expect_error "preset 'gemma3-1b' is a gemma3 model, not qwen3" \
    "$BIN" synth --arch qwen3 --preset gemma3-1b --type f32 -o "$TMP/x.gguf"

# --- info on good files ---
expect_quiet "$BIN" info "$TMP/tiny.gguf"
for want in "GGUF version: *3" "architecture: *llama" "llama.embedding_length *128" "llama.block_count *2" \
    "tokenizer: *llama.*512 tokens" "token_embd.weight *q8_0 *\[128, 512\]" "blk.1.ffn_down.weight" \
    "output_norm.weight *f32" "total: 21 tensors"; do
    grep -qE -- "$want" "$TMP/out" || fail "info tiny: output lacks '$want'"
done
grep -qE "file type: *7 \(Q8_0\)" "$TMP/out" || fail "info tiny: no file type 7 (Q8_0)"
# K-quants: tiny's rows of 128 fall back to q5_0 (as llama.cpp's quantizer does); tiny256 keeps q4_K
expect_quiet "$BIN" synth --preset tiny --type q4_K -o "$TMP/k.gguf" --seed 7
expect_quiet "$BIN" info "$TMP/k.gguf"
for want in "file type: *14 \(Q4_K_S\)" "token_embd.weight *q5_0" "q5_0 *16 tensors" "f32 *5 tensors"; do
    grep -qE -- "$want" "$TMP/out" || fail "info tiny q4_K: output lacks '$want'"
done
expect_quiet "$BIN" synth --preset tiny256 --type q4_k -o "$TMP/k.gguf" --seed 7
expect_quiet "$BIN" info "$TMP/k.gguf"
for want in "token_embd.weight *q4_K *\[256, 512\]" "blk.1.ffn_down.weight *q4_K *\[768, 256\]" "q4_K *16 tensors"; do
    grep -qE -- "$want" "$TMP/out" || fail "info tiny256 q4_K: output lacks '$want'"
done
expect_quiet "$BIN" synth --help
grep -q "q5_0 for q4_K" "$TMP/out" || fail "synth --help does not say the K-quant fallbacks"
expect_quiet "$BIN" info --kv "$TMP/tiny.gguf"
grep -qE "tokenizer.ggml.tokens .*string x 512" "$TMP/out" || fail "info --kv does not list the tokens array"
expect_quiet "$BIN" info --help
grep -q "usage" "$TMP/out" || fail "info --help prints no usage"
STORIES="$SHARED/models/stories260K.gguf"
if [ -r "$STORIES" ]; then
    expect_quiet "$BIN" info "$STORIES"
    grep -qE "llama.embedding_length *64" "$TMP/out" || fail "info stories260K: no embedding_length 64"
    grep -qE "total: 48 tensors" "$TMP/out" || fail "info stories260K: not 48 tensors"
else
    echo "note: $STORIES not found, skipping that check" >&2
fi

# --- info on broken files ---
size=$(stat -c %s "$TMP/tiny.gguf")
head -c $((size / 2)) "$TMP/tiny.gguf" >"$TMP/half.gguf"
expect_error "data extends past end of file" "$BIN" info "$TMP/half.gguf"
head -c 5000 "$TMP/tiny.gguf" >"$TMP/head.gguf"
expect_error -E "truncated file: key/value [0-9]+ \(tokenizer.ggml.tokens\)" "$BIN" info "$TMP/head.gguf"
{ printf 'GGUX'; tail -c +5 "$TMP/tiny.gguf"; } >"$TMP/magic.gguf"
expect_error "bad magic" "$BIN" info "$TMP/magic.gguf"
{ printf 'GGUF\001\000\000\000'; tail -c +9 "$TMP/tiny.gguf"; } >"$TMP/v1.gguf"
expect_error "version 1" "$BIN" info "$TMP/v1.gguf"
: >"$TMP/empty.gguf"
expect_error "not a GGUF file" "$BIN" info "$TMP/empty.gguf"
expect_error "cannot open" "$BIN" info "$TMP/does-not-exist.gguf"
expect_error "not a regular file" "$BIN" info "$TMP"
expect_error "no model file" "$BIN" info
expect_error "unknown option" "$BIN" info --bogus "$TMP/tiny.gguf"

cli_finish
