/* Synthetic Llama GGUF writer (see synth.h).
 *
 * Weights: a 2-D weight with input dimension n_in (ne[0]) gets values of standard deviation 1/sqrt(n_in),
 * so each matrix-vector product keeps activations around unit scale. Float types draw uniform values of
 * that deviation; quantized types draw each block directly (a scale jittered around the target and
 * uniform symmetric quants), which is much faster than quantizing floats. Norm weights are 1 +- 0.05.
 * Every tensor has its own random stream derived from the seed and its index, so the output does not
 * depend on the chunk size. */
#include "host/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/ggml_types.h"
#include "host/gguf.h"
#include "host/quant.h"

static const synth_hparams presets[] = {
    {"tiny", "vkllm synthetic tiny", 128, 2, 4, 2, 384, 512, 256, 10000.0f, 1e-5f, false, false},
    /* tiny with widths that are multiples of 256, so that every weight can be a K-quant */
    {"tiny256", "vkllm synthetic tiny256", 256, 2, 4, 2, 768, 512, 256, 10000.0f, 1e-5f, false, false},
    {"llama3.2-1b", "vkllm synthetic Llama 3.2 1B", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, true,
     true},
    {"llama3-8b", "vkllm synthetic Llama 3 8B", 4096, 32, 32, 8, 14336, 128256, 8192, 500000.0f, 1e-5f, false, false},
};

const synth_hparams *synth_preset(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (!strcmp(presets[i].preset, name))
            return &presets[i];
    return NULL;
}

const char *synth_preset_names(void) { return "tiny, tiny256, llama3.2-1b, llama3-8b"; }

/* ---- random numbers: splitmix64 ---- */

typedef struct srng { uint64_t s; } srng;

static uint64_t srng_next(srng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void srng_init(srng *r, uint64_t seed, uint64_t stream)
{
    r->s = seed ^ (stream * 0xd1b54a32d192ed03ull);
    srng_next(r);
}

/* Uniform in [0, 1) from 24 bits. */
static float u24(uint32_t bits) { return (float)(bits >> 8) * (1.0f / 16777216.0f); }

static float srng_uniform(srng *r, float lo, float hi) { return lo + (hi - lo) * u24((uint32_t)srng_next(r)); }

/* ---- tensors ---- */

enum { KIND_WEIGHT, KIND_NORM, KIND_ROPE_FREQS };

typedef struct tdesc {
    char name[48];
    uint32_t type, n_dims;
    uint64_t ne[2];
    int kind;
} tdesc;

static uint32_t n_tensors_of(const synth_hparams *hp)
{
    return 2 + 9 * hp->n_layer + (hp->tied_embeddings ? 0 : 1) + (hp->rope_freqs ? 1 : 0);
}

/* The type a weight of rows of ne0 elements gets in a file of `type`: rows that are not whole blocks (of 256)
 * take the type's 32-element fallback. */
static uint32_t row_type(uint32_t type, uint64_t ne0)
{
    return ne0 % ggml_block_size(type) ? ggml_type_get(type)->fallback : type;
}

static void add_t(tdesc *t, uint32_t *n, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                  int kind)
{
    tdesc *d = &t[(*n)++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->type = row_type(type, ne0);
    d->n_dims = n_dims;
    d->ne[0] = ne0;
    d->ne[1] = ne1;
    d->kind = kind;
}

/* Fills t (n_tensors_of entries) in file order. */
static void list_tensors(const synth_hparams *hp, uint32_t wtype, tdesc *t)
{
    uint32_t n = 0;
    uint64_t E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    uint64_t kv = (uint64_t)hp->n_embd / hp->n_head * hp->n_head_kv;
    if (hp->rope_freqs)
        add_t(t, &n, "rope_freqs.weight", GGML_TYPE_F32, 1, hp->n_embd / hp->n_head / 2, 1, KIND_ROPE_FREQS);
    add_t(t, &n, "token_embd.weight", wtype, 2, E, V, KIND_WEIGHT);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        char name[48];
#define BLK(suffix, type, nd, a, b, kind)                                  \
    do {                                                                   \
        snprintf(name, sizeof name, "blk.%u." suffix ".weight", l);        \
        add_t(t, &n, name, type, nd, a, b, kind);                          \
    } while (0)
        BLK("attn_norm", GGML_TYPE_F32, 1, E, 1, KIND_NORM);
        BLK("attn_q", wtype, 2, E, E, KIND_WEIGHT);
        BLK("attn_k", wtype, 2, E, kv, KIND_WEIGHT);
        BLK("attn_v", wtype, 2, E, kv, KIND_WEIGHT);
        BLK("attn_output", wtype, 2, E, E, KIND_WEIGHT);
        BLK("ffn_norm", GGML_TYPE_F32, 1, E, 1, KIND_NORM);
        BLK("ffn_gate", wtype, 2, E, F, KIND_WEIGHT);
        BLK("ffn_up", wtype, 2, E, F, KIND_WEIGHT);
        BLK("ffn_down", wtype, 2, F, E, KIND_WEIGHT);
#undef BLK
    }
    add_t(t, &n, "output_norm.weight", GGML_TYPE_F32, 1, E, 1, KIND_NORM);
    if (!hp->tied_embeddings)
        add_t(t, &n, "output.weight", wtype, 2, E, V, KIND_WEIGHT);
}

uint64_t synth_n_params(const synth_hparams *hp)
{
    uint64_t E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    uint64_t kv = hp->n_head ? E / hp->n_head * hp->n_head_kv : 0;
    uint64_t per_layer = 2 * E + 2 * E * E + 2 * E * kv + 3 * E * F;
    uint64_t n = E * V + E + per_layer * hp->n_layer;
    if (!hp->tied_embeddings)
        n += E * V;
    if (hp->rope_freqs && hp->n_head)
        n += E / hp->n_head / 2;
    return n;
}

/* Llama 3.1 long-context frequency factors (factor 8, low/high frequency factors 1 and 4, original
 * context 8192): 1 for short wavelengths, 8 for long ones, a smooth blend in between. */
static void rope_factors(float *out, uint32_t n, uint32_t head_dim, float theta)
{
    const double factor = 8.0, low_ff = 1.0, high_ff = 4.0, old_ctx = 8192.0;
    const double low_wavelen = old_ctx / low_ff, high_wavelen = old_ctx / high_ff;
    for (uint32_t i = 0; i < n; i++) {
        double freq = pow((double)theta, -2.0 * i / head_dim);
        double wavelen = 2.0 * 3.14159265358979323846 / freq;
        double f;
        if (wavelen < high_wavelen) {
            f = 1.0;
        } else if (wavelen > low_wavelen) {
            f = factor;
        } else {
            double smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff);
            f = 1.0 / ((1.0 - smooth) / factor + smooth);
        }
        out[i] = (float)f;
    }
}

/* Generates `bytes` bytes (a whole number of blocks/elements) of tensor data into buf. */
static void gen_chunk(const tdesc *t, srng *r, uint8_t *buf, size_t bytes)
{
    if (t->kind == KIND_NORM) {
        for (size_t i = 0; i < bytes / 4; i++) {
            float v = srng_uniform(r, 0.95f, 1.05f);
            memcpy(buf + 4 * i, &v, 4);
        }
        return;
    }
    const float sd = 1.0f / sqrtf((float)t->ne[0]);
    const float a = sd * 1.7320508f;   /* uniform(-a, a) has deviation sd */
    switch (t->type) {
    case GGML_TYPE_F32:
        for (size_t i = 0; i < bytes / 4; i += 2) {
            uint64_t b = srng_next(r);
            float v[2] = {a * (2.0f * u24((uint32_t)b) - 1.0f), a * (2.0f * u24((uint32_t)(b >> 32)) - 1.0f)};
            memcpy(buf + 4 * i, v, i + 1 < bytes / 4 ? 8 : 4);
        }
        break;
    case GGML_TYPE_F16:
        for (size_t i = 0; i < bytes / 2; i += 2) {
            uint64_t b = srng_next(r);
            uint16_t h0 = fp32_to_fp16(a * (2.0f * u24((uint32_t)b) - 1.0f));
            uint16_t h1 = fp32_to_fp16(a * (2.0f * u24((uint32_t)(b >> 32)) - 1.0f));
            buf[2 * i] = (uint8_t)h0;
            buf[2 * i + 1] = (uint8_t)(h0 >> 8);
            if (i + 1 < bytes / 2) {
                buf[2 * i + 2] = (uint8_t)h1;
                buf[2 * i + 3] = (uint8_t)(h1 >> 8);
            }
        }
        break;
    case GGML_TYPE_Q8_0: {
        /* quants: a random byte as int8 with -128 folded to 0, i.e. symmetric in -127..127 (deviation 73.5) */
        for (size_t off = 0; off + 34 <= bytes; off += 34) {
            uint8_t *blk = buf + off;
            uint64_t b = srng_next(r);
            uint16_t d = fp32_to_fp16(sd / 73.5f * (0.8f + 0.4f * u24((uint32_t)b)));
            blk[0] = (uint8_t)d;
            blk[1] = (uint8_t)(d >> 8);
            for (int j = 0; j < 32; j += 8) {
                b = srng_next(r);
                for (int k = 0; k < 8; k++) {
                    uint8_t q = (uint8_t)(b >> (8 * k));
                    blk[2 + j + k] = q == 0x80 ? 0 : q;
                }
            }
        }
        break;
    }
    case GGML_TYPE_Q4_0: {
        /* quants: random nibbles with 0 folded to 8, i.e. values (q - 8) symmetric in -7..7 (deviation 4.18) */
        uint8_t fold[256];
        for (int x = 0; x < 256; x++) {
            int lo = x & 15, hi = x >> 4;
            fold[x] = (uint8_t)((lo ? lo : 8) | ((hi ? hi : 8) << 4));
        }
        for (size_t off = 0; off + 18 <= bytes; off += 18) {
            uint8_t *blk = buf + off;
            uint64_t b = srng_next(r);
            uint16_t d = fp32_to_fp16(sd / 4.18f * (0.8f + 0.4f * u24((uint32_t)b)));
            blk[0] = (uint8_t)d;
            blk[1] = (uint8_t)(d >> 8);
            for (int j = 0; j < 16; j += 8) {
                b = srng_next(r);
                for (int k = 0; k < 8; k++)
                    blk[2 + j + k] = fold[(b >> (8 * k)) & 0xff];
            }
        }
        break;
    }
    default: {
        /* the other types: uniform values of the same deviation, quantized block by block */
        const ggml_type_info *ty = ggml_type_get(t->type);
        float x[QK_K];
        for (size_t off = 0; off + ty->block_bytes <= bytes; off += ty->block_bytes) {
            for (uint32_t i = 0; i < ty->block; i += 2) {
                uint64_t b = srng_next(r);
                x[i] = a * (2.0f * u24((uint32_t)b) - 1.0f);
                x[i + 1] = a * (2.0f * u24((uint32_t)(b >> 32)) - 1.0f);
            }
            quantize_row(t->type, x, buf + off, ty->block);
        }
        break;
    }
    }
}

/* ---- vocabulary ---- */

#define PIECE_MAX 24   /* longest piece + NUL: "\xe2\x96\x81" + up to 15 letters */

typedef struct vocab {
    uint32_t n, cap;
    char *arena;           /* cap * PIECE_MAX bytes */
    const char **tok;
    float *score;
    int32_t *ttype;
    uint32_t *set;         /* hash set of token indices + 1 */
    uint32_t set_mask;
    uint32_t n_normal;
} vocab;

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Adds a piece if it is new and there is room; returns true if added. */
static bool vocab_add(vocab *v, const char *s, int32_t type)
{
    if (v->n >= v->cap)
        return false;
    uint32_t h = str_hash(s) & v->set_mask;
    while (v->set[h]) {
        if (!strcmp(v->tok[v->set[h] - 1], s))
            return false;
        h = (h + 1) & v->set_mask;
    }
    char *dst = v->arena + (size_t)v->n * PIECE_MAX;
    size_t len = strlen(s);
    if (len >= PIECE_MAX) /* cannot happen with our pieces; keeps the arena slot terminated */
        len = PIECE_MAX - 1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    v->tok[v->n] = dst;
    v->ttype[v->n] = type;
    /* control/unknown/byte pieces score 0; normal pieces strictly decreasing */
    v->score[v->n] = type == 1 ? -(float)v->n_normal++ : 0.0f;
    v->set[h] = ++v->n;
    return true;
}

static void vocab_free(vocab *v)
{
    free(v->arena);
    free(v->tok);
    free(v->score);
    free(v->ttype);
    free(v->set);
}

static vkllm_status vocab_build(vocab *v, uint32_t n_vocab, uint64_t seed)
{
    memset(v, 0, sizeof *v);
    uint32_t cap = 16;
    while (cap < 2 * n_vocab)
        cap *= 2;
    v->cap = n_vocab;
    v->arena = malloc((size_t)n_vocab * PIECE_MAX);
    v->tok = malloc((size_t)n_vocab * sizeof *v->tok);
    v->score = malloc((size_t)n_vocab * sizeof *v->score);
    v->ttype = malloc((size_t)n_vocab * sizeof *v->ttype);
    v->set = calloc(cap, sizeof *v->set);
    v->set_mask = cap - 1;
    if (!v->arena || !v->tok || !v->score || !v->ttype || !v->set) {
        vocab_free(v);
        memset(v, 0, sizeof *v);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "synth: out of host memory for a %u-token vocabulary", n_vocab);
    }
    static const char *const WS = "\xe2\x96\x81";   /* U+2581, SentencePiece's word-start mark */
    char s[PIECE_MAX + 8];
    vocab_add(v, "<unk>", 2);
    vocab_add(v, "<s>", 3);
    vocab_add(v, "</s>", 3);
    for (int b = 0; b < 256; b++) {
        snprintf(s, sizeof s, "<0x%02X>", b);
        vocab_add(v, s, 6);
    }
    vocab_add(v, WS, 1);
    static const char singles[] = "etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789.,!?'\"-:;()";
    for (const char *c = singles; *c; c++) {
        s[0] = *c;
        s[1] = '\0';
        vocab_add(v, s, 1);
    }
    for (const char *c = singles; *c && c < singles + 52; c++) {
        snprintf(s, sizeof s, "%s%c", WS, *c);
        vocab_add(v, s, 1);
    }
    for (const char *a = singles; a < singles + 26; a++)
        for (const char *b = singles; b < singles + 26; b++) {
            snprintf(s, sizeof s, "%c%c", *a, *b);
            vocab_add(v, s, 1);
        }
    /* Generated words: consonant-vowel syllables; "▁word" (word start) or bare (continuation). */
    static const char cons[] = "bcdfghjklmnprstvwz";
    static const char vows[] = "aeiou";
    srng r;
    srng_init(&r, seed, 0x766f636162ull);
    while (v->n < n_vocab) {
        uint64_t b = srng_next(&r);
        int n_syl = 1 + (int)(b % 4);
        b >>= 2;
        size_t k = 0;
        bool word_start = (b & 3) != 0;
        b >>= 2;
        if (word_start) {
            memcpy(s, WS, 3);
            k = 3;
        }
        for (int i = 0; i < n_syl; i++) {
            uint64_t c = srng_next(&r);
            s[k++] = cons[c % 18];
            s[k++] = vows[(c >> 8) % 5];
            if ((c >> 16) % 3 == 0)
                s[k++] = cons[(c >> 24) % 18];
        }
        s[k] = '\0';
        vocab_add(v, s, 1);
    }
    return VKLLM_OK;
}

/* ---- the file ---- */

static vkllm_status check_hparams(const synth_hparams *hp, uint32_t type)
{
    if (!hp->n_embd || !hp->n_layer || !hp->n_head || !hp->n_head_kv || !hp->n_ff || !hp->n_ctx)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: hyper-parameters must be non-zero");
    if (hp->n_embd % hp->n_head || (hp->n_embd / hp->n_head) % 2)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: n_embd %u is not n_head %u times an even head size",
                         hp->n_embd, hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: n_head %u is not a multiple of n_head_kv %u", hp->n_head,
                         hp->n_head_kv);
    uint32_t bs = ggml_block_size(ggml_type_get(type)->fallback);   /* rows of other lengths take the fallback */
    if (hp->n_embd % bs || hp->n_ff % bs)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: n_embd %u and n_ff %u must be multiples of %u for %s",
                         hp->n_embd, hp->n_ff, bs, ggml_type_name(type));
    if (hp->n_vocab < 512 || hp->n_vocab > (1u << 22))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: vocabulary size %u is not in 512..%u", hp->n_vocab,
                         1u << 22);
    if (hp->n_layer > 4096 || hp->n_embd > (1u << 20) || hp->n_ff > (1u << 22))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: hyper-parameters too large");
    if (!(hp->rope_theta > 0) || !(hp->rms_eps > 0))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: rope theta and rms epsilon must be positive");
    return VKLLM_OK;
}

static vkllm_status write_kvs(gguf_writer *w, const synth_hparams *hp, uint32_t type, const vocab *v)
{
    vkllm_status st;
#define TRY(call)                        \
    do {                                 \
        if ((st = (call)) != VKLLM_OK)   \
            return st;                   \
    } while (0)
    TRY(gguf_writer_kv_str(w, "general.architecture", "llama"));
    TRY(gguf_writer_kv_str(w, "general.name", hp->model_name ? hp->model_name : "vkllm synthetic"));
    TRY(gguf_writer_kv_u32(w, "general.file_type", ggml_type_get(type)->file_type));
    TRY(gguf_writer_kv_u32(w, "general.quantization_version", 2));
    TRY(gguf_writer_kv_u32(w, "llama.context_length", hp->n_ctx));
    TRY(gguf_writer_kv_u32(w, "llama.embedding_length", hp->n_embd));
    TRY(gguf_writer_kv_u32(w, "llama.block_count", hp->n_layer));
    TRY(gguf_writer_kv_u32(w, "llama.feed_forward_length", hp->n_ff));
    TRY(gguf_writer_kv_u32(w, "llama.rope.dimension_count", hp->n_embd / hp->n_head));
    TRY(gguf_writer_kv_u32(w, "llama.attention.head_count", hp->n_head));
    TRY(gguf_writer_kv_u32(w, "llama.attention.head_count_kv", hp->n_head_kv));
    TRY(gguf_writer_kv_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->rms_eps));
    TRY(gguf_writer_kv_f32(w, "llama.rope.freq_base", hp->rope_theta));
    TRY(gguf_writer_kv_u32(w, "llama.vocab_size", hp->n_vocab));
    TRY(gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama"));
    TRY(gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", v->tok, v->n));
    TRY(gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", v->score, v->n));
    TRY(gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", v->ttype, v->n));
    TRY(gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 1));
    TRY(gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 2));
    TRY(gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    TRY(gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", true));
    TRY(gguf_writer_kv_bool(w, "tokenizer.ggml.add_eos_token", false));
#undef TRY
    return VKLLM_OK;
}

#define SYNTH_CHUNK (4u << 20)

vkllm_status synth_write(const synth_options *o)
{
    if (!o || !o->path)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: no output path");
    const synth_hparams *hp = o->hp ? o->hp : synth_preset(o->preset);
    if (!hp)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: unknown preset '%s' (presets: %s)",
                         o->preset ? o->preset : "(none)", synth_preset_names());
    uint32_t type = o->type;
    if (!ggml_type_get(type))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: unsupported weight type %u", type);
    vkllm_status st = check_hparams(hp, type);
    for (uint32_t k = 0; k < o->n_overrides && st == VKLLM_OK; k++)
        if (!o->overrides || !o->overrides[k].name_part || !ggml_type_get(o->overrides[k].type))
            st = vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: override %u: no name or an unsupported type", k);
        else
            st = check_hparams(hp, o->overrides[k].type);
    if (st != VKLLM_OK)
        return st;

    uint32_t n_t = n_tensors_of(hp);
    tdesc *t = calloc(n_t, sizeof *t);
    uint8_t *buf = malloc(SYNTH_CHUNK);
    vocab v;
    memset(&v, 0, sizeof v);
    gguf_writer *w = NULL;
    if (!t || !buf) {
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "synth: out of host memory");
        goto done;
    }
    list_tensors(hp, type, t);
    for (uint32_t i = 0; i < n_t; i++)
        for (uint32_t k = 0; k < o->n_overrides; k++)
            if (t[i].kind == KIND_WEIGHT && strstr(t[i].name, o->overrides[k].name_part))
                t[i].type = row_type(o->overrides[k].type, t[i].ne[0]);
    if ((st = vocab_build(&v, hp->n_vocab, o->seed)) != VKLLM_OK)
        goto done;
    if ((st = gguf_writer_open(o->path, &w)) != VKLLM_OK)
        goto done;
    if ((st = write_kvs(w, hp, type, &v)) != VKLLM_OK)
        goto done;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n_t; i++) {
        if ((st = gguf_writer_tensor_info(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne)) != VKLLM_OK)
            goto done;
        total += ggml_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1];
    }
    vocab_free(&v);   /* the header is serialized: the vocabulary is no longer needed */
    memset(&v, 0, sizeof v);

    uint64_t done_bytes = 0;
    for (uint32_t i = 0; i < n_t; i++) {
        srng r;
        srng_init(&r, o->seed, (uint64_t)i + 1);
        uint64_t nbytes = ggml_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1];
        if (t[i].kind == KIND_ROPE_FREQS) {
            uint32_t n = (uint32_t)t[i].ne[0];
            float *f = (float *)buf;   /* n <= 2^19 floats fit the chunk buffer */
            rope_factors(f, n, hp->n_embd / hp->n_head, hp->rope_theta);
            if ((st = gguf_writer_tensor_data(w, f, (size_t)n * sizeof *f)) != VKLLM_OK)
                goto done;
            done_bytes += nbytes;
            continue;
        }
        uint32_t bb = ggml_block_bytes(t[i].type);
        size_t chunk = SYNTH_CHUNK / (2 * bb) * (2 * bb);   /* even number of blocks/elements */
        for (uint64_t off = 0; off < nbytes; off += chunk) {
            size_t n = nbytes - off < chunk ? (size_t)(nbytes - off) : chunk;
            gen_chunk(&t[i], &r, buf, n);
            if ((st = gguf_writer_tensor_data(w, buf, n)) != VKLLM_OK)
                goto done;
            done_bytes += n;
            if (o->progress)
                o->progress(o->progress_user, done_bytes, total);
        }
    }

done:
    if (w) {
        if (st == VKLLM_OK)
            st = gguf_writer_close(w);
        else
            gguf_writer_abort(w);
    }
    vocab_free(&v);
    free(buf);
    free(t);
    return st;
}
