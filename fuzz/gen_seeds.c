/* Writes the GGUF files of the fuzzers' seed corpus (the .gguf files in fuzz/corpus/gguf) with the GGUF
 * writer:
 *
 *     ./build/fuzz/fuzz_gen_seeds fuzz/corpus/gguf
 *
 * The files are committed (small: a few KiB each); this program documents how they were made and
 * regenerates them if the format or the writer changes. Deterministic: the same files every run.
 *   kv_types.gguf      every scalar type, a string, numeric, bool and string arrays; no tensors
 *   tensors.gguf       one tensor of each of f32, f16, q8_0, q4_0, 1-D to 4-D, alignment 64
 *   quant_types.gguf   two rows of one block (256 elements for the K-quants, iq4_xs and the IQ grid types) of
 *                      every other type in the type table (bf16, q4_1, q5_0, q5_1, q2_K .. q6_K, iq4_nl, iq4_xs,
 *                      mxfp4, iq2_xxs .. iq1_m)
 *   micro_llama.gguf   a complete Llama model (8 embd, 1 layer, 2 heads, 48-token SentencePiece vocab,
 *                      ChatML chat template) that vkllm can load
 *   bpe_vocab.gguf     a byte-level BPE vocabulary with merges and Llama 3 special tokens, no tensors */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/text/tokenizer.h"
#include "fuzz.h"

#define TRY(x)                                                                                                 \
    do {                                                                                                       \
        if (st == VKLLM_OK)                                                                                    \
            st = (x);                                                                                          \
    } while (0)

static uint32_t rng_state = 12345;
static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static vkllm_status write_tensor(gguf_writer *w, uint32_t type, uint64_t n)
{
    float *x = malloc(n * sizeof *x);
    size_t bytes = (size_t)vkl_ggml_row_bytes(type, n);
    void *q = malloc(bytes ? bytes : 1);
    vkllm_status st = VKLLM_OK;
    if (!x || !q)
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of memory");
    if (st == VKLLM_OK) {
        for (uint64_t i = 0; i < n; i++)
            x[i] = frand() * 0.5f;
        vkl_quantize_row(type, x, q, n);
        st = vkl_gguf_writer_tensor_data(w, q, bytes);
    }
    free(x);
    free(q);
    return st;
}

static vkllm_status finish(gguf_writer *w, vkllm_status st)
{
    if (st != VKLLM_OK) {
        vkl_gguf_writer_abort(w);
        return st;
    }
    return vkl_gguf_writer_close(w);
}

static vkllm_status kv_types(const char *path)
{
    gguf_writer *w;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (st)
        return st;
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint32_t u32 = 4000000000u;
    int32_t i32 = -2000000000;
    float f32 = 3.5f;
    bool b = true;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 40);
    double f64 = 1e-300;
    TRY(vkl_gguf_writer_kv(w, "t.u8", GGUF_TYPE_UINT8, &u8));
    TRY(vkl_gguf_writer_kv(w, "t.i8", GGUF_TYPE_INT8, &i8));
    TRY(vkl_gguf_writer_kv(w, "t.u16", GGUF_TYPE_UINT16, &u16));
    TRY(vkl_gguf_writer_kv(w, "t.i16", GGUF_TYPE_INT16, &i16));
    TRY(vkl_gguf_writer_kv(w, "t.u32", GGUF_TYPE_UINT32, &u32));
    TRY(vkl_gguf_writer_kv(w, "t.i32", GGUF_TYPE_INT32, &i32));
    TRY(vkl_gguf_writer_kv(w, "t.f32", GGUF_TYPE_FLOAT32, &f32));
    TRY(vkl_gguf_writer_kv(w, "t.bool", GGUF_TYPE_BOOL, &b));
    TRY(vkl_gguf_writer_kv(w, "t.u64", GGUF_TYPE_UINT64, &u64));
    TRY(vkl_gguf_writer_kv(w, "t.i64", GGUF_TYPE_INT64, &i64));
    TRY(vkl_gguf_writer_kv(w, "t.f64", GGUF_TYPE_FLOAT64, &f64));
    TRY(vkl_gguf_writer_kv_str(w, "general.architecture", "llama"));
    TRY(vkl_gguf_writer_kv_str(w, "t.str", "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC"));
    TRY(vkl_gguf_writer_kv_str(w, "t.empty", ""));
    const uint16_t a16[] = {1, 2, 65535};
    const double af64[] = {0.5, -2.0};
    const bool ab[] = {true, false, true};
    const char *const astr[] = {"a", "", "<s>", "\xE2\x96\x81hello"};
    const float af32[] = {1.0f, -1.0f};
    const int32_t ai32[] = {-1, 0, 1};
    TRY(vkl_gguf_writer_kv_arr(w, "t.arr.u16", GGUF_TYPE_UINT16, a16, 3));
    TRY(vkl_gguf_writer_kv_arr(w, "t.arr.f64", GGUF_TYPE_FLOAT64, af64, 2));
    TRY(vkl_gguf_writer_kv_arr(w, "t.arr.bool", GGUF_TYPE_BOOL, ab, 3));
    TRY(vkl_gguf_writer_kv_arr(w, "t.arr.empty", GGUF_TYPE_UINT8, NULL, 0));
    TRY(vkl_gguf_writer_kv_arr_str(w, "t.arr.str", astr, 4));
    TRY(vkl_gguf_writer_kv_arr_f32(w, "t.arr.f32", af32, 2));
    TRY(vkl_gguf_writer_kv_arr_i32(w, "t.arr.i32", ai32, 3));
    return finish(w, st);
}

static vkllm_status tensors(const char *path)
{
    gguf_writer *w;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (st)
        return st;
    TRY(vkl_gguf_writer_kv_u32(w, "general.alignment", 64));
    const uint64_t ne_f32[] = {4, 2}, ne_f16[] = {8}, ne_q8[] = {32, 1, 1}, ne_q4[] = {32, 2, 1, 1};
    TRY(vkl_gguf_writer_tensor_info(w, "a.f32", GGML_TYPE_F32, 2, ne_f32));
    TRY(vkl_gguf_writer_tensor_info(w, "b.f16", GGML_TYPE_F16, 1, ne_f16));
    TRY(vkl_gguf_writer_tensor_info(w, "c.q8_0", GGML_TYPE_Q8_0, 3, ne_q8));
    TRY(vkl_gguf_writer_tensor_info(w, "d.q4_0", GGML_TYPE_Q4_0, 4, ne_q4));
    TRY(write_tensor(w, GGML_TYPE_F32, 8));
    TRY(write_tensor(w, GGML_TYPE_F16, 8));
    TRY(write_tensor(w, GGML_TYPE_Q8_0, 32));
    TRY(write_tensor(w, GGML_TYPE_Q4_0, 64));
    return finish(w, st);
}

static vkllm_status quant_types(const char *path)
{
    gguf_writer *w;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (st)
        return st;
    for (int pass = 0; pass < 2; pass++) {   /* the infos, then the data in the same order */
        for (size_t i = 0; i < vkl_ggml_type_count(); i++) {
            const ggml_type_info *t = vkl_ggml_type_at(i);
            if (t->id == GGML_TYPE_F32 || t->id == GGML_TYPE_F16 || t->id == GGML_TYPE_Q8_0 ||
                t->id == GGML_TYPE_Q4_0)
                continue;   /* in tensors.gguf */
            const uint64_t ne[2] = {t->block > 1 ? t->block : 8, 2};
            if (pass == 0)
                TRY(vkl_gguf_writer_tensor_info(w, t->name, t->id, 2, ne));
            else
                TRY(write_tensor(w, t->id, ne[0] * ne[1]));
        }
    }
    return finish(w, st);
}

static vkllm_status micro_llama(const char *path)
{
    enum { E = 8, L = 1, H = 2, F = 16 };
    static const char *const words[] = {
        "<unk>", "<s>", "</s>", "<0x00>", "<0x0A>", "<0xFF>", "\xE2\x96\x81", "a", "b", "c", "d", "e", "h", "l",
        "o", "r", "w", "\xE2\x96\x81" "a", "\xE2\x96\x81" "h", "\xE2\x96\x81" "w", "he", "ll", "llo", "hello",
        "\xE2\x96\x81hello", "or", "ld", "world", "\xE2\x96\x81world", ".", ",", "!", "?", "<|im_start|>",
        "<|im_end|>", "<|user|>", "1", "2", "3", "12", "\xC3\xA9", "\xE6\x97\xA5", "t", "th", "the",
        "\xE2\x96\x81the", "s", "<unused0>",
    };
    enum { V = sizeof words / sizeof words[0] };
    float scores[V];
    int32_t types[V];
    for (int i = 0; i < V; i++) {
        const char *t = words[i];
        scores[i] = -(float)i;
        types[i] = !strncmp(t, "<0x", 3)                                                     ? TOKEN_TYPE_BYTE
                   : !strcmp(t, "<unk>")                                                      ? TOKEN_TYPE_UNKNOWN
                   : !strcmp(t, "<s>") || !strcmp(t, "</s>") || !strncmp(t, "<|im_", 5)       ? TOKEN_TYPE_CONTROL
                   : !strcmp(t, "<|user|>")                                                   ? TOKEN_TYPE_USER_DEFINED
                   : !strcmp(t, "<unused0>")                                                  ? TOKEN_TYPE_UNUSED
                                                                                              : TOKEN_TYPE_NORMAL;
    }
    gguf_writer *w;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (st)
        return st;
    TRY(vkl_gguf_writer_kv_str(w, "general.architecture", "llama"));
    TRY(vkl_gguf_writer_kv_str(w, "general.name", "micro"));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.context_length", 64));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.embedding_length", E));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.block_count", L));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.feed_forward_length", F));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.attention.head_count", H));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.attention.head_count_kv", 1));
    TRY(vkl_gguf_writer_kv_u32(w, "llama.rope.dimension_count", E / H));
    TRY(vkl_gguf_writer_kv_f32(w, "llama.rope.freq_base", 10000.0f));
    TRY(vkl_gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
    TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama"));
    TRY(vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", words, V));
    TRY(vkl_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", scores, V));
    TRY(vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", types, V));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 1));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 2));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    TRY(vkl_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", true));
    TRY(vkl_gguf_writer_kv_str(w, "tokenizer.chat_template",
                           "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                           "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"));
    const uint64_t emb[] = {E, V}, norm[] = {E}, wq[] = {E, E}, wk[] = {E, E / H}, ff[] = {E, F}, fd[] = {F, E};
    TRY(vkl_gguf_writer_tensor_info(w, "token_embd.weight", GGML_TYPE_F32, 2, emb));
    TRY(vkl_gguf_writer_tensor_info(w, "output_norm.weight", GGML_TYPE_F32, 1, norm));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.attn_norm.weight", GGML_TYPE_F32, 1, norm));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.attn_q.weight", GGML_TYPE_F16, 2, wq));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.attn_k.weight", GGML_TYPE_F16, 2, wk));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.attn_v.weight", GGML_TYPE_F16, 2, wk));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.attn_output.weight", GGML_TYPE_F16, 2, wq));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.ffn_norm.weight", GGML_TYPE_F32, 1, norm));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.ffn_gate.weight", GGML_TYPE_F32, 2, ff));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.ffn_up.weight", GGML_TYPE_F32, 2, ff));
    TRY(vkl_gguf_writer_tensor_info(w, "blk.0.ffn_down.weight", GGML_TYPE_F32, 2, fd));
    TRY(write_tensor(w, GGML_TYPE_F32, (uint64_t)E * V));
    TRY(write_tensor(w, GGML_TYPE_F32, E));
    TRY(write_tensor(w, GGML_TYPE_F32, E));
    TRY(write_tensor(w, GGML_TYPE_F16, E * E));
    TRY(write_tensor(w, GGML_TYPE_F16, E * E / H));
    TRY(write_tensor(w, GGML_TYPE_F16, E * E / H));
    TRY(write_tensor(w, GGML_TYPE_F16, E * E));
    TRY(write_tensor(w, GGML_TYPE_F32, E));
    TRY(write_tensor(w, GGML_TYPE_F32, E * F));
    TRY(write_tensor(w, GGML_TYPE_F32, E * F));
    TRY(write_tensor(w, GGML_TYPE_F32, F * E));
    return finish(w, st);
}

static vkllm_status bpe_vocab(const char *path)
{
    static char storage[300][8];
    const char *tokens[300];
    int32_t types[300];
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        fuzz_bpe_byte_char(b, storage[n]);
        types[n] = TOKEN_TYPE_NORMAL;
        tokens[n] = storage[n];
        n++;
    }
    /* "Ġ" is the character of a space. */
    static const char *const merged[] = {"\xC4\xA0t", "he", "\xC4\xA0the", "in", "ing", "er", "ll", "hello"};
    static const char *const merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n", "in g", "e r", "l l", "he llo"};
    for (size_t i = 0; i < sizeof merged / sizeof merged[0]; i++) {
        types[n] = TOKEN_TYPE_NORMAL;
        tokens[n++] = merged[i];
    }
    static const char *const specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                            "<|end_header_id|>", "<|eot_id|>"};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        types[n] = TOKEN_TYPE_CONTROL;
        tokens[n++] = specials[i];
    }
    gguf_writer *w;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (st)
        return st;
    TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "gpt2"));
    TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.pre", "llama-bpe"));
    TRY(vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, n));
    TRY(vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", types, n));
    TRY(vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.merges", merges, sizeof merges / sizeof merges[0]));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", n - 5));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", n - 1));
    TRY(vkl_gguf_writer_kv_str(w, "tokenizer.chat_template",
                           "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}<|eot_id|>"));
    return finish(w, st);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR   (writes the GGUF seed files into DIR)\n", argv[0]);
        return 1;
    }
    /* New seeds go last, so that the random stream of the earlier ones (and their files) stays the same. */
    static const struct {
        const char *name;
        vkllm_status (*fn)(const char *);
    } seeds[] = {{"kv_types.gguf", kv_types}, {"tensors.gguf", tensors}, {"micro_llama.gguf", micro_llama},
                 {"bpe_vocab.gguf", bpe_vocab}, {"quant_types.gguf", quant_types}};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], seeds[i].name);
        if (seeds[i].fn(path) != VKLLM_OK) {
            fprintf(stderr, "%s: %s\n", path, vkr_last_error());
            return 1;
        }
        printf("wrote %s\n", path);
    }
    return 0;
}
