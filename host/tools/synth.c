/* Synthetic GGUF writer for every family (see synth.h): the tensors are those host/model/arch.c lists for the
 * family, so the file has exactly what the loader of that family expects.
 *
 * Weights: a 2-D weight with input dimension n_in (ne[0]) gets values of standard deviation 1/sqrt(n_in),
 * so each matrix-vector product keeps activations around unit scale. Float types draw uniform values of
 * that deviation; quantized types draw each block directly (a scale jittered around the target and
 * uniform symmetric quants), which is much faster than quantizing floats. Norm weights are 1 +- 0.05, biases
 * uniform in +-0.5, LongRoPE factors smooth ramps from 1.
 * Every tensor has its own random stream derived from the seed and its index, so the output does not
 * depend on the chunk size. */
#include "host/tools/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/model/arch.h"
#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"

#define TINY(name, arch_name) .preset = name, .model_name = "vkllm synthetic " name, .arch = arch_name, \
    .n_embd = 128, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 384, .n_vocab = 512, .n_ctx = 256

/* Tiny presets switch every feature of their family on, with values that make each one matter in a short
 * test (a window shorter than the test prompt, soft-caps near the scores' scale, rope scaling whose original
 * context the test passes); the others have the shapes of a small real member. */
static const synth_hparams presets[] = {
    {TINY("tiny", NULL), .rope_theta = 10000.0f, .rms_eps = 1e-5f},
    /* tiny with widths that are multiples of 256, so that every weight can be a K-quant */
    {.preset = "tiny256", .model_name = "vkllm synthetic tiny256", .n_embd = 256, .n_layer = 2, .n_head = 4,
     .n_head_kv = 2, .n_ff = 768, .n_vocab = 512, .n_ctx = 256, .rope_theta = 10000.0f, .rms_eps = 1e-5f},
    {.preset = "llama3.2-1b", .model_name = "vkllm synthetic Llama 3.2 1B", .n_embd = 2048, .n_layer = 16,
     .n_head = 32, .n_head_kv = 8, .n_ff = 8192, .n_vocab = 128256, .n_ctx = 131072, .rope_theta = 500000.0f,
     .rms_eps = 1e-5f, .tied_embeddings = true, .rope_freqs = true},
    /* SmolLM-135M: many thin layers and a small vocabulary (tests of decode split into layer groups) */
    {.preset = "smollm-135m", .model_name = "vkllm synthetic SmolLM 135M", .n_embd = 576, .n_layer = 30, .n_head = 9,
     .n_head_kv = 3, .n_ff = 1536, .n_vocab = 49152, .n_ctx = 2048, .rope_theta = 10000.0f, .rms_eps = 1e-5f,
     .tied_embeddings = true},
    {.preset = "llama3-8b", .model_name = "vkllm synthetic Llama 3 8B", .n_embd = 4096, .n_layer = 32, .n_head = 32,
     .n_head_kv = 8, .n_ff = 14336, .n_vocab = 128256, .n_ctx = 8192, .rope_theta = 500000.0f, .rms_eps = 1e-5f},
    /* Mistral Nemo style: head dimension from key_length, not n_embd / n_head; linear rope scaling. */
    {TINY("llama-variant-tiny", "llama"), .head_dim = 48, .rope_theta = 1000000.0f, .rms_eps = 1e-5f,
     .rope_scaling = "linear", .rope_factor = 2.0f, .rope_orig_ctx = 128},
    {TINY("qwen2-tiny", "qwen2"), .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .tied_embeddings = true,
     .rope_scaling = "yarn", .rope_factor = 4.0f, .rope_orig_ctx = 16},
    {.preset = "qwen2.5-0.5b", .model_name = "vkllm synthetic Qwen2.5 0.5B", .arch = "qwen2", .n_embd = 896,
     .n_layer = 24, .n_head = 14, .n_head_kv = 2, .n_ff = 4864, .n_vocab = 151936, .n_ctx = 32768,
     .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .tied_embeddings = true},
    {TINY("qwen3-tiny", "qwen3"), .head_dim = 64, .rope_theta = 1000000.0f, .rms_eps = 1e-6f,
     .tied_embeddings = true},
    {.preset = "qwen3-0.6b", .model_name = "vkllm synthetic Qwen3 0.6B", .arch = "qwen3", .n_embd = 1024,
     .n_layer = 28, .n_head = 16, .n_head_kv = 8, .n_ff = 3072, .n_vocab = 151936, .n_ctx = 40960,
     .head_dim = 128, .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .tied_embeddings = true},
    {TINY("gemma2-tiny", "gemma2"), .head_dim = 32, .rope_theta = 10000.0f, .rms_eps = 1e-6f,
     .tied_embeddings = true, .sliding_window = 8, .attn_softcap = 1.5f, .final_softcap = 2.0f},
    {.preset = "gemma2-2b", .model_name = "vkllm synthetic Gemma 2 2B", .arch = "gemma2", .n_embd = 2304,
     .n_layer = 26, .n_head = 8, .n_head_kv = 4, .n_ff = 9216, .n_vocab = 256000, .n_ctx = 8192, .head_dim = 256,
     .rope_theta = 10000.0f, .rms_eps = 1e-6f, .tied_embeddings = true, .sliding_window = 4096,
     .attn_softcap = 50.0f, .final_softcap = 30.0f},
    /* Six layers: five local (window 8, base 10000), one global (base 1e6, linear scaling 8). */
    {.preset = "gemma3-tiny", .model_name = "vkllm synthetic gemma3-tiny", .arch = "gemma3", .n_embd = 128,
     .n_layer = 6, .n_head = 4, .n_head_kv = 1, .n_ff = 384, .n_vocab = 512, .n_ctx = 256, .head_dim = 64, .rope_theta = 1000000.0f,
     .rms_eps = 1e-6f, .tied_embeddings = true, .sliding_window = 8, .rope_scaling = "linear", .rope_factor = 8.0f,
     .rope_orig_ctx = 128},
    {.preset = "gemma3-1b", .model_name = "vkllm synthetic Gemma 3 1B", .arch = "gemma3", .n_embd = 1152,
     .n_layer = 26, .n_head = 4, .n_head_kv = 1, .n_ff = 6912, .n_vocab = 262144, .n_ctx = 32768, .head_dim = 256,
     .rope_theta = 1000000.0f, .rms_eps = 1e-6f, .tied_embeddings = true, .sliding_window = 512},
    /* Phi-4-mini style partial rotary (24 of 32 dims); LongRoPE's long factors past 16 positions. */
    {TINY("phi3-tiny", "phi3"), .n_rot = 24, .rope_theta = 10000.0f, .rms_eps = 1e-5f, .rope_orig_ctx = 16,
     .rope_attn_factor = 1.2f, .longrope = true, .qkv_fused = true},
    {.preset = "phi3.5-mini", .model_name = "vkllm synthetic Phi-3.5 mini", .arch = "phi3", .n_embd = 3072,
     .n_layer = 32, .n_head = 32, .n_head_kv = 32, .n_ff = 8192, .n_vocab = 32064, .n_ctx = 131072,
     .rope_theta = 10000.0f, .rms_eps = 1e-5f, .rope_orig_ctx = 4096, .rope_attn_factor = 1.1902f,
     .longrope = true, .qkv_fused = true},
};
#undef TINY

#define N_PRESETS (sizeof presets / sizeof presets[0])

const synth_hparams *vkl_synth_preset(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(presets[i].preset, name))
            return &presets[i];
    return NULL;
}

const char *vkl_synth_preset_names(void)
{
    return "tiny, tiny256, llama3.2-1b, smollm-135m, llama3-8b, llama-variant-tiny, qwen2-tiny, qwen2.5-0.5b, qwen3-tiny, qwen3-0.6b, "
           "gemma2-tiny, gemma2-2b, gemma3-tiny, gemma3-1b, phi3-tiny, phi3.5-mini";
}

const synth_hparams *vkl_synth_family_preset(const char *arch)
{
    if (!arch)
        return NULL;
    if (!strcmp(arch, "llama"))
        return vkl_synth_preset("tiny");
    char name[64];
    snprintf(name, sizeof name, "%s-tiny", arch);
    return vkl_synth_preset(name);
}

static const char *arch_name(const synth_hparams *hp) { return hp->arch ? hp->arch : "llama"; }

static uint32_t head_dim_of(const synth_hparams *hp)
{
    return hp->head_dim ? hp->head_dim : hp->n_head ? hp->n_embd / hp->n_head : 0;
}

static uint32_t n_rot_of(const synth_hparams *hp) { return hp->n_rot ? hp->n_rot : head_dim_of(hp); }

/* The arch_hparams a loader would read from the file, for vkl_arch_layer_tensors. */
static void arch_of(const synth_hparams *hp, arch_hparams *a)
{
    memset(a, 0, sizeof *a);
    const char *name = arch_name(hp);
    a->fam = vkl_arch_family_find(name, strlen(name));
    a->n_embd = hp->n_embd;
    a->n_layer = hp->n_layer;
    a->n_head = hp->n_head;
    a->n_head_kv = hp->n_head_kv;
    a->n_ff = hp->n_ff;
    a->head_dim = head_dim_of(hp);
    a->n_rot = n_rot_of(hp);
    a->qkv_fused = hp->qkv_fused;
}

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

enum { KIND_WEIGHT, KIND_NORM, KIND_BIAS, KIND_ROPE_FREQS, KIND_LONGROPE_SHORT, KIND_LONGROPE_LONG };

typedef struct tdesc {
    char name[64];
    uint32_t type, n_dims;
    uint64_t ne[2];
    int kind;
} tdesc;

/* The type a weight of rows of ne0 elements gets in a file of `type`: rows that are not whole blocks (of 256)
 * take the type's 32-element fallback. */
static uint32_t row_type(uint32_t type, uint64_t ne0)
{
    return ne0 % vkl_ggml_block_size(type) ? vkl_ggml_type_get(type)->fallback : type;
}

static void add_t(tdesc *t, uint32_t *n, const char *name, uint32_t type, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
                  int kind)
{
    if (t) {
        tdesc *d = &t[*n];
        snprintf(d->name, sizeof d->name, "%s", name);
        d->type = row_type(type, ne0);
        d->n_dims = n_dims;
        d->ne[0] = ne0;
        d->ne[1] = ne1;
        d->kind = kind;
    }
    (*n)++;
}

/* Lists the tensors in file order into t (NULL: only counts them); returns the count and adds their
 * elements to *n_params. */
static uint32_t list_tensors(const synth_hparams *hp, uint32_t wtype, tdesc *t, uint64_t *n_params)
{
    arch_hparams a;
    arch_of(hp, &a);
    uint32_t n = 0;
    uint64_t E = hp->n_embd, V = hp->n_vocab, R = n_rot_of(hp) / 2;
    uint64_t params = 0;
    if (hp->rope_freqs)
        add_t(t, &n, "rope_freqs.weight", GGML_TYPE_F32, 1, R, 1, KIND_ROPE_FREQS), params += R;
    if (hp->longrope) {
        add_t(t, &n, "rope_factors_long.weight", GGML_TYPE_F32, 1, R, 1, KIND_LONGROPE_LONG);
        add_t(t, &n, "rope_factors_short.weight", GGML_TYPE_F32, 1, R, 1, KIND_LONGROPE_SHORT);
        params += 2 * R;
    }
    add_t(t, &n, "token_embd.weight", wtype, 2, E, V, KIND_WEIGHT);
    params += E * V;
    for (uint32_t l = 0; l < hp->n_layer && a.fam; l++) {
        arch_tensor_desc td[ARCH_T_COUNT];
        vkl_arch_layer_tensors(&a, l, td);
        for (int r = 0; r < ARCH_T_COUNT; r++) {
            if (!td[r].present)
                continue;
            bool vec = td[r].ne1 == 0;
            add_t(t, &n, td[r].name, vec ? GGML_TYPE_F32 : wtype, vec ? 1 : 2, td[r].ne0, vec ? 1 : td[r].ne1,
                  vec ? (td[r].is_norm ? KIND_NORM : KIND_BIAS) : KIND_WEIGHT);
            params += td[r].ne0 * (vec ? 1 : td[r].ne1);
        }
    }
    add_t(t, &n, "output_norm.weight", GGML_TYPE_F32, 1, E, 1, KIND_NORM);
    params += E;
    if (!hp->tied_embeddings)
        add_t(t, &n, "output.weight", wtype, 2, E, V, KIND_WEIGHT), params += E * V;
    if (n_params)
        *n_params = params;
    return n;
}

uint64_t vkl_synth_n_params(const synth_hparams *hp)
{
    uint64_t n = 0;
    list_tensors(hp, GGML_TYPE_F32, NULL, &n);
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
    if (t->kind == KIND_NORM || t->kind == KIND_BIAS) {
        for (size_t i = 0; i < bytes / 4; i++) {
            float v = t->kind == KIND_NORM ? srng_uniform(r, 0.95f, 1.05f) : srng_uniform(r, -0.5f, 0.5f);
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
            uint16_t h0 = vkl_fp32_to_fp16(a * (2.0f * u24((uint32_t)b) - 1.0f));
            uint16_t h1 = vkl_fp32_to_fp16(a * (2.0f * u24((uint32_t)(b >> 32)) - 1.0f));
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
            uint16_t d = vkl_fp32_to_fp16(sd / 73.5f * (0.8f + 0.4f * u24((uint32_t)b)));
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
            uint16_t d = vkl_fp32_to_fp16(sd / 4.18f * (0.8f + 0.4f * u24((uint32_t)b)));
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
        /* the other types: uniform values of the same deviation, quantized block by block; the types vkllm
         * does not quantize (IQ grids): random bytes with the block scale set for that deviation */
        const ggml_type_info *ty = vkl_ggml_type_get(t->type);
        float x[QK_K];
        for (size_t off = 0; !vkl_ggml_type_can_quantize(t->type) && off + ty->block_bytes <= bytes; off += ty->block_bytes) {
            for (uint32_t i = 0; i < ty->block_bytes; i += 8) {
                uint64_t b = srng_next(r);
                memcpy(buf + off + i, &b, ty->block_bytes - i < 8 ? ty->block_bytes - i : 8);
            }
            vkl_ggml_block_set_rms(t->type, buf + off, sd);
        }
        for (size_t off = 0; vkl_ggml_type_can_quantize(t->type) && off + ty->block_bytes <= bytes; off += ty->block_bytes) {
            for (uint32_t i = 0; i < ty->block; i += 2) {
                uint64_t b = srng_next(r);
                x[i] = a * (2.0f * u24((uint32_t)b) - 1.0f);
                x[i + 1] = a * (2.0f * u24((uint32_t)(b >> 32)) - 1.0f);
            }
            vkl_quantize_row(t->type, x, buf + off, ty->block);
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
    const char *arch = arch_name(hp);
    if (!vkl_arch_family_find(arch, strlen(arch)))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: unknown architecture '%s' (%s)", arch,
                         vkl_arch_supported_names());
    if (!hp->n_embd || !hp->n_layer || !hp->n_head || !hp->n_head_kv || !hp->n_ff || !hp->n_ctx)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: hyper-parameters must be non-zero");
    if (!hp->head_dim && hp->n_embd % hp->n_head)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: n_embd %u is not a multiple of n_head %u", hp->n_embd,
                         hp->n_head);
    const uint32_t hd = head_dim_of(hp), rot = n_rot_of(hp);
    if (hd % 2 || hd > 256 || rot % 2 || rot > hd)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: head dimension %u (rotated %u) must be even, at most 256",
                         hd, rot);
    if (hp->n_head % hp->n_head_kv)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: n_head %u is not a multiple of n_head_kv %u", hp->n_head,
                         hp->n_head_kv);
    uint32_t bs = vkl_ggml_block_size(vkl_ggml_type_get(type)->fallback);   /* rows of other lengths take the fallback */
    if (hp->n_embd % bs || hp->n_ff % bs || (hp->n_head * hd) % bs)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: n_embd %u, n_ff %u and n_head * head_dim %u must be "
                         "multiples of %u for %s", hp->n_embd, hp->n_ff, hp->n_head * hd, bs, vkl_ggml_type_name(type));
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
    const char *arch = arch_name(hp);
    const arch_family *fam = vkl_arch_family_find(arch, strlen(arch));
    char key[96];
#define TRY(call)                        \
    do {                                 \
        if ((st = (call)) != VKLLM_OK)   \
            return st;                   \
    } while (0)
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    TRY(vkl_gguf_writer_kv_str(w, "general.architecture", arch));
    TRY(vkl_gguf_writer_kv_str(w, "general.name", hp->model_name ? hp->model_name : "vkllm synthetic"));
    TRY(vkl_gguf_writer_kv_u32(w, "general.file_type", vkl_ggml_type_get(type)->file_type));
    TRY(vkl_gguf_writer_kv_u32(w, "general.quantization_version", 2));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("context_length"), hp->n_ctx));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("embedding_length"), hp->n_embd));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("block_count"), hp->n_layer));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("feed_forward_length"), hp->n_ff));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("rope.dimension_count"), n_rot_of(hp)));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("attention.head_count"), hp->n_head));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("attention.head_count_kv"), hp->n_head_kv));
    if (hp->head_dim) {
        TRY(vkl_gguf_writer_kv_u32(w, KEY("attention.key_length"), hp->head_dim));
        TRY(vkl_gguf_writer_kv_u32(w, KEY("attention.value_length"), hp->head_dim));
    }
    TRY(vkl_gguf_writer_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), hp->rms_eps));
    TRY(vkl_gguf_writer_kv_f32(w, KEY("rope.freq_base"), hp->rope_theta));
    if (hp->rope_scaling) {
        TRY(vkl_gguf_writer_kv_str(w, KEY("rope.scaling.type"), hp->rope_scaling));
        TRY(vkl_gguf_writer_kv_f32(w, KEY("rope.scaling.factor"), hp->rope_factor));
    }
    if (hp->rope_orig_ctx)
        TRY(vkl_gguf_writer_kv_u32(w, KEY("rope.scaling.original_context_length"), hp->rope_orig_ctx));
    if (hp->rope_attn_factor > 0)
        TRY(vkl_gguf_writer_kv_f32(w, KEY("rope.scaling.attn_factor"), hp->rope_attn_factor));
    if (fam->swa_pattern && hp->sliding_window)
        TRY(vkl_gguf_writer_kv_u32(w, KEY("attention.sliding_window"), hp->sliding_window));
    if (hp->attn_softcap > 0)
        TRY(vkl_gguf_writer_kv_f32(w, KEY("attn_logit_softcapping"), hp->attn_softcap));
    if (hp->final_softcap > 0)
        TRY(vkl_gguf_writer_kv_f32(w, KEY("final_logit_softcapping"), hp->final_softcap));
    TRY(vkl_gguf_writer_kv_u32(w, KEY("vocab_size"), hp->n_vocab));
#undef KEY
    TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama"));
    TRY(vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", v->tok, v->n));
    TRY(vkl_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", v->score, v->n));
    TRY(vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", v->ttype, v->n));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 1));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 2));
    TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    TRY(vkl_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", true));
    TRY(vkl_gguf_writer_kv_bool(w, "tokenizer.ggml.add_eos_token", false));
#undef TRY
    return VKLLM_OK;
}

#define SYNTH_CHUNK (4u << 20)

vkllm_status vkl_synth_write(const synth_options *o)
{
    if (!o || !o->path)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: no output path");
    const synth_hparams *hp = o->hp ? o->hp : vkl_synth_preset(o->preset);
    if (!hp)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: unknown preset '%s' (presets: %s)",
                         o->preset ? o->preset : "(none)", vkl_synth_preset_names());
    uint32_t type = o->type;
    if (!vkl_ggml_type_get(type))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: unsupported weight type %u", type);
    vkllm_status st = check_hparams(hp, type);
    for (uint32_t k = 0; k < o->n_overrides && st == VKLLM_OK; k++)
        if (!o->overrides || !o->overrides[k].name_part || !vkl_ggml_type_get(o->overrides[k].type))
            st = vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "synth: override %u: no name or an unsupported type", k);
        else
            st = check_hparams(hp, o->overrides[k].type);
    if (st != VKLLM_OK)
        return st;

    uint32_t n_t = list_tensors(hp, type, NULL, NULL);
    tdesc *t = calloc(n_t, sizeof *t);
    uint8_t *buf = malloc(SYNTH_CHUNK);
    vocab v;
    memset(&v, 0, sizeof v);
    gguf_writer *w = NULL;
    if (!t || !buf) {
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "synth: out of host memory");
        goto done;
    }
    list_tensors(hp, type, t, NULL);
    for (uint32_t i = 0; i < n_t; i++)
        for (uint32_t k = 0; k < o->n_overrides; k++)
            if (t[i].kind == KIND_WEIGHT && strstr(t[i].name, o->overrides[k].name_part))
                t[i].type = row_type(o->overrides[k].type, t[i].ne[0]);
    if ((st = vocab_build(&v, hp->n_vocab, o->seed)) != VKLLM_OK)
        goto done;
    if ((st = vkl_gguf_writer_open(o->path, &w)) != VKLLM_OK)
        goto done;
    if ((st = write_kvs(w, hp, type, &v)) != VKLLM_OK)
        goto done;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n_t; i++) {
        if ((st = vkl_gguf_writer_tensor_info(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne)) != VKLLM_OK)
            goto done;
        total += vkl_ggml_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1];
    }
    vocab_free(&v);   /* the header is serialized: the vocabulary is no longer needed */
    memset(&v, 0, sizeof v);

    uint64_t done_bytes = 0;
    for (uint32_t i = 0; i < n_t; i++) {
        srng r;
        srng_init(&r, o->seed, (uint64_t)i + 1);
        uint64_t nbytes = vkl_ggml_row_bytes(t[i].type, t[i].ne[0]) * t[i].ne[1];
        if (t[i].kind == KIND_ROPE_FREQS || t[i].kind == KIND_LONGROPE_SHORT || t[i].kind == KIND_LONGROPE_LONG) {
            uint32_t n = (uint32_t)t[i].ne[0];
            float *f = (float *)buf;   /* n <= 2^19 floats fit the chunk buffer */
            if (t[i].kind == KIND_ROPE_FREQS)
                rope_factors(f, n, n_rot_of(hp), hp->rope_theta);
            for (uint32_t j = 0; j < n && t[i].kind != KIND_ROPE_FREQS; j++) {
                const float x = (float)j / (float)n;   /* LongRoPE-like ramps: short near 1, long up to 8 */
                f[j] = t[i].kind == KIND_LONGROPE_SHORT ? 1.0f + 0.5f * x : 1.0f + 7.0f * x * x;
            }
            if ((st = vkl_gguf_writer_tensor_data(w, f, (size_t)n * sizeof *f)) != VKLLM_OK)
                goto done;
            done_bytes += nbytes;
            continue;
        }
        uint32_t bb = vkl_ggml_block_bytes(t[i].type);
        size_t chunk = SYNTH_CHUNK / (2 * bb) * (2 * bb);   /* even number of blocks/elements */
        for (uint64_t off = 0; off < nbytes; off += chunk) {
            size_t n = nbytes - off < chunk ? (size_t)(nbytes - off) : chunk;
            gen_chunk(&t[i], &r, buf, n);
            if ((st = vkl_gguf_writer_tensor_data(w, buf, n)) != VKLLM_OK)
                goto done;
            done_bytes += n;
            if (o->progress)
                o->progress(o->progress_user, done_bytes, total);
        }
    }

done:
    if (w) {
        if (st == VKLLM_OK)
            st = vkl_gguf_writer_close(w);
        else
            vkl_gguf_writer_abort(w);
    }
    vocab_free(&v);
    free(buf);
    free(t);
    return st;
}
