#!/usr/bin/env bash
# `vkllm quantize` from the shell, on the synthetic tiny model in F32 (width 128, FFN 384, 2 layers):
# every file type writes a file that `vkllm info` reads, with the per-tensor types llama-quantize gives
# (checked against llama.cpp's llama-quantize during development): rows of 128 are not a multiple of 256,
# so the K-quants take their fallbacks (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0,
# IQ4_XS -> IQ4_NL) and the output tensor is Q8_0 instead of Q6_K. The mixes on 256-wide 16-layer models
# are checked in test_quantize_model.c. Bad inputs and flags: exit 1 and one line on stderr.
. "$(dirname "${BASH_SOURCE[0]}")/lib_cli.sh"
cli_init cli_quantize
CLI_ERROR_PREFIX="vkllm quantize: "

model="$TMP/tiny-f32.gguf"
expect_ok "$BIN" synth --preset tiny --type f32 -o "$model" --seed 3 || exit 1

# type_of FILE TENSOR: the tensor's type as `vkllm info` prints it
type_of() { "$BIN" info "$1" | awk -v t="$2" '$2 == t {print $3}'; }

# check_types FILE LABEL TENSOR=TYPE...
check_types() {
    local file=$1 label=$2 spec got
    shift 2
    for spec in "$@"; do
        got=$(type_of "$file" "${spec%%=*}")
        if [ "$got" = "${spec#*=}" ]; then ok "$label: ${spec%%=*} is ${spec#*=}"; else fail "$label: ${spec%%=*} is '$got', want ${spec#*=}"; fi
    done
}

# FILE-TYPE  general.file_type  token_embd  output  blk.0.attn_v  blk.1.attn_v  blk.1.ffn_down  blk.0.attn_output
while read -r ft num embd out v0 v1 down1 ao0; do
    f="$TMP/$ft.gguf"
    expect_quiet "$BIN" quantize "$model" "$f" "$ft" -t 2 || continue
    grep -q "wrote $f: $ft (file type $num)" "$TMP/out" || fail "$ft: summary line: $(cat "$TMP/out")"
    expect_quiet "$BIN" info "$f" || continue
    grep -qE "^file type: +$num( |$)" "$TMP/out" || fail "$ft: general.file_type is not $num"
    check_types "$f" "$ft" token_embd.weight="$embd" output.weight="$out" blk.0.attn_v.weight="$v0" \
        blk.1.attn_v.weight="$v1" blk.1.ffn_down.weight="$down1" blk.0.attn_output.weight="$ao0" \
        blk.0.attn_norm.weight=f32 output_norm.weight=f32
done <<'TABLE'
Q4_0   2  q4_0   q8_0   q4_0   q4_0   q4_0   q4_0
Q4_1   3  q4_1   q8_0   q4_1   q4_1   q4_1   q4_1
Q5_0   8  q5_0   q8_0   q5_0   q5_0   q5_0   q5_0
Q5_1   9  q5_1   q8_0   q5_1   q5_1   q5_1   q5_1
Q8_0   7  q8_0   q8_0   q8_0   q8_0   q8_0   q8_0
Q2_K   10 q4_0   q8_0   q4_0   q4_0   q4_0   q4_0
Q3_K_S 11 q4_0   q8_0   q4_0   q4_0   q4_0   q4_0
Q3_K_M 12 q4_0   q8_0   q5_1   q5_1   q5_0   q5_0
Q3_K_L 13 q4_0   q8_0   q5_1   q5_1   q5_1   q5_1
Q4_K_S 14 q5_0   q8_0   q5_1   q5_1   q5_0   q5_0
Q4_K_M 15 q5_0   q8_0   q5_0   q8_0   q8_0   q5_0
Q5_K_S 16 q5_1   q8_0   q5_1   q5_1   q5_1   q5_1
Q5_K_M 17 q5_1   q8_0   q5_1   q8_0   q8_0   q5_1
Q6_K   18 q8_0   q8_0   q8_0   q8_0   q8_0   q8_0
IQ4_NL 25 iq4_nl q8_0   iq4_nl iq4_nl iq4_nl iq4_nl
IQ4_XS 30 iq4_nl q8_0   iq4_nl iq4_nl iq4_nl iq4_nl
F16    1  f16    f16    f16    f16    f16    f16
BF16   32 bf16   bf16   bf16   bf16   bf16   bf16
F32    0  f32    f32    f32    f32    f32    f32
TABLE

# A 256-wide model (preset tiny256): the K-quants apply, and the _M mixes lift layer 1's attn_v and
# ffn_down (more_bits(1, 2): the last eighth of 2 layers).
expect_ok "$BIN" synth --preset tiny256 --type f32 -o "$TMP/t256.gguf" --seed 3 &&
    expect_quiet "$BIN" quantize "$TMP/t256.gguf" "$TMP/t256-q4km.gguf" Q4_K_M &&
    check_types "$TMP/t256-q4km.gguf" "tiny256 Q4_K_M" output.weight=q6_K token_embd.weight=q4_K \
        blk.0.attn_v.weight=q4_K blk.1.attn_v.weight=q6_K blk.0.ffn_down.weight=q4_K blk.1.ffn_down.weight=q6_K \
        blk.1.attn_q.weight=q4_K
expect_quiet "$BIN" quantize "$TMP/t256.gguf" "$TMP/t256-q3km.gguf" Q3_K_M &&
    check_types "$TMP/t256-q3km.gguf" "tiny256 Q3_K_M" output.weight=q6_K token_embd.weight=q3_K \
        blk.0.attn_v.weight=q5_K blk.1.attn_v.weight=q5_K blk.0.ffn_down.weight=q4_K blk.1.attn_output.weight=q4_K \
        blk.1.attn_q.weight=q3_K

# Names are case-insensitive, aliases and numbers work; the options.
expect_quiet "$BIN" quantize "$model" "$TMP/lower.gguf" q4_k_m && cmp -s "$TMP/lower.gguf" "$TMP/Q4_K_M.gguf" &&
    ok "q4_k_m gives the same file as Q4_K_M" || fail "q4_k_m differs from Q4_K_M"
expect_quiet "$BIN" quantize "$model" "$TMP/num.gguf" 15 1 && cmp -s "$TMP/num.gguf" "$TMP/Q4_K_M.gguf" &&
    ok "15 (with 1 thread) gives the same file as Q4_K_M" || fail "15 differs from Q4_K_M"
expect_quiet "$BIN" quantize --pure "$model" "$TMP/pure.gguf" Q4_K_M &&
    check_types "$TMP/pure.gguf" "--pure" output.weight=q5_0 blk.1.attn_v.weight=q5_0 blk.1.ffn_down.weight=q5_0
expect_quiet "$BIN" quantize --output-tensor-type f16 --token-embedding-type Q8_0 "$model" "$TMP/opt.gguf" Q4_0 &&
    check_types "$TMP/opt.gguf" "type options" output.weight=f16 token_embd.weight=q8_0 blk.0.attn_q.weight=q4_0
expect_quiet "$BIN" quantize --help
grep -q "Q4_K_M" "$TMP/out" && grep -q -- "--allow-requantize" "$TMP/out" || fail "quantize --help lacks the types or options"
"$BIN" --help | grep -q "quantize" || fail "vkllm --help does not list quantize"

# The quantized files run (types with device kernels today).
for ft in Q8_0 Q4_0 F16; do
    expect_ok "$BIN" run -m "$TMP/$ft.gguf" -p "Once" -n 4 --temp 0 && ok "$ft output runs"
done

# Requantizing: refused without the flag (the old target stays), warned about with it.
echo old >"$TMP/target.gguf"
expect_error "--allow-requantize" "$BIN" quantize "$TMP/Q8_0.gguf" "$TMP/target.gguf" Q4_0
[ "$(cat "$TMP/target.gguf")" = old ] || fail "a refused quantize changed the target"
expect_ok "$BIN" quantize --allow-requantize "$TMP/Q8_0.gguf" "$TMP/target.gguf" Q4_0 &&
    grep -q "requantizing" "$TMP/err" && ok "requantizing warns" || fail "no requantize warning: $(cat "$TMP/err")"
[ "$(type_of "$TMP/target.gguf" blk.0.attn_q.weight)" = q4_0 ] || fail "the requantized file replaced no target"
ls "$TMP" | grep -q '\.tmp-' && fail "temporary files left: $(ls "$TMP")"

# Bad inputs and flags.
expect_error "unknown type 'Q4_K_X'" "$BIN" quantize "$model" "$TMP/x.gguf" Q4_K_X
expect_error "unknown type 'IQ2_XXS'" "$BIN" quantize "$model" "$TMP/x.gguf" IQ2_XXS
expect_error "need IN.gguf OUT.gguf TYPE" "$BIN" quantize "$model" "$TMP/x.gguf"
expect_error "unknown option" "$BIN" quantize --bogus "$model" "$TMP/x.gguf" Q4_0
expect_error "unknown tensor type 'q9_0'" "$BIN" quantize --output-tensor-type q9_0 "$model" "$TMP/x.gguf" Q4_0
expect_error "needs a value" "$BIN" quantize "$model" "$TMP/x.gguf" Q4_0 --token-embedding-type
expect_error "-t" "$BIN" quantize -t 0 "$model" "$TMP/x.gguf" Q4_0
expect_error "too many arguments" "$BIN" quantize "$model" "$TMP/x.gguf" Q4_0 2 extra
expect_error "cannot open" "$BIN" quantize "$TMP/none.gguf" "$TMP/x.gguf" Q4_0
: >"$TMP/empty.gguf"
expect_error "not a GGUF file" "$BIN" quantize "$TMP/empty.gguf" "$TMP/x.gguf" Q4_0
expect_error "cannot create $TMP/no/such/dir.gguf" "$BIN" quantize "$model" "$TMP/no/such/dir.gguf" Q4_0
[ ! -e "$TMP/x.gguf" ] || fail "a failed quantize left $TMP/x.gguf"

cli_finish
