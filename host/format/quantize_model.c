/* `vkllm quantize`'s file flow and per-tensor type policy (see quantize_model.h).
 *
 * Which type each tensor gets — llama-quantize's rules (llama.cpp's llama-quant.cpp, as of 2026), for the
 * file types offered here:
 *  - Only tensors of 2 or more dimensions whose name ends in "weight" are converted, except norms
 *    ("_norm.weight"), MoE routers ("ffn_gate_inp.weight") and a few position/convolution tensors (the
 *    `keep` list below); every other tensor is copied unchanged (1-D tensors and norms stay F32).
 *  - --token-embedding-type T and --output-tensor-type T set token_embd.weight and output.weight.
 *  - F32, F16, BF16 targets: every converted tensor gets that type; no mix.
 *  - Quantized targets, unless --pure: the output tensor (or token_embd.weight when there is no
 *    output.weight, tied embeddings) gets Q6_K, or Q8_0 when its rows are not a multiple of the
 *    target's block (or the target is Q8_0: it stays Q8_0). Then, with n_gqa = heads / kv heads and the
 *    attention-V tensors (attn_v, attn_qkv, attn_kv_b) and ffn_down tensors counted in file order (i of n,
 *    n = their number resp. the block count) and more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2:
 *      attn_v:       Q2_K: Q4_K if n_gqa >= 4 else Q3_K; Q3_K_M: Q5_K for the first 2, Q4_K after;
 *                    Q3_K_L: Q5_K; IQ4_NL, IQ4_XS with n_gqa >= 4: Q5_K; Q4_K_M, Q5_K_M: Q6_K where
 *                    more_bits; Q4_K_S: Q5_K for the first 4. A 70B Llama (80 layers, GQA) lifts Q3_K
 *                    and Q4_K to Q5_K; 8 experts: Q8_0.
 *      attn_k:       8 experts: Q8_0.
 *      ffn_down:     Q2_K: Q3_K; Q3_K_M: Q5_K for i < n/16, else Q4_K (Falcon: Q4_K only where more_bits,
 *                    else Q3_K); Q3_K_L: Q5_K (Falcon Q4_K); Q4_K_M: Q6_K where more_bits (Falcon: Q6_K
 *                    for i < n/16, Q5_K where more_bits); IQ4_NL, IQ4_XS: Q5_K for i < n/8; Q5_K_M: Q6_K
 *                    where more_bits; Q4_K_S: Q5_K for i < n/8 (not Falcon).
 *      attn_output:  Q2_K: Q3_K; Q3_K_M: Q4_K; Q3_K_L: Q5_K; with 8 experts, Q5_K for Q2_K, Q3_K_S/M,
 *                    Q4_K_S/M, IQ4_NL, IQ4_XS; Falcon: only Q3_K_L, to Q4_K.
 *    Every other weight gets the file type's type (Q3_K for Q3_K_S/M/L, Q4_K for Q4_K_S/M, ...).
 *  - Fallback when a row (ne[0]) is not a multiple of the chosen type's block: IQ4_XS -> IQ4_NL,
 *    Q2_K and Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; if that still does not divide the
 *    row, F16. Unlike llama-quantize, vkllm applies it to types given with --output-tensor-type and
 *    --token-embedding-type too (llama-quantize fails on those).
 *  - A tensor already of its target type is copied. Converting a quantized tensor needs
 *    --allow-requantize (then it is dequantized to f32 and quantized again: a warning says quality drops).
 *  - Metadata: every key is copied but general.alignment (the writer's own is used) and split.*;
 *    general.file_type (LLAMA_FTYPE_*) and general.quantization_version = 2 are set. */
#define _POSIX_C_SOURCE 200809L

#include "host/format/quantize_model.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf_copy.h"
#include "host/format/quant.h"
#include "host/format/quantize.h"
#include "runtime/log.h"

/* ---- file types ---- */

enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9, FT_Q2_K = 10,
    FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_S = 16,
    FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ4_NL = 25, FT_IQ4_XS = 30, FT_BF16 = 32,
};

/* The file types offered (names from vkl_ggml_file_type_name) and the tensor type most weights get. */
static const quantize_ftype ftypes[] = {
    {FT_Q4_0, GGML_TYPE_Q4_0},     {FT_Q4_1, GGML_TYPE_Q4_1},     {FT_Q5_0, GGML_TYPE_Q5_0},
    {FT_Q5_1, GGML_TYPE_Q5_1},     {FT_Q8_0, GGML_TYPE_Q8_0},     {FT_Q2_K, GGML_TYPE_Q2_K},
    {FT_Q3_K_S, GGML_TYPE_Q3_K},   {FT_Q3_K_M, GGML_TYPE_Q3_K},   {FT_Q3_K_L, GGML_TYPE_Q3_K},
    {FT_Q4_K_S, GGML_TYPE_Q4_K},   {FT_Q4_K_M, GGML_TYPE_Q4_K},   {FT_Q5_K_S, GGML_TYPE_Q5_K},
    {FT_Q5_K_M, GGML_TYPE_Q5_K},   {FT_Q6_K, GGML_TYPE_Q6_K},     {FT_IQ4_NL, GGML_TYPE_IQ4_NL},
    {FT_IQ4_XS, GGML_TYPE_IQ4_XS}, {FT_F16, GGML_TYPE_F16},       {FT_BF16, GGML_TYPE_BF16},
    {FT_F32, GGML_TYPE_F32},
};
enum { N_FTYPES = sizeof ftypes / sizeof ftypes[0] };

uint32_t vkl_quantize_ftype_count(void) { return N_FTYPES; }
const quantize_ftype *vkl_quantize_ftype_at(uint32_t i) { return i < N_FTYPES ? &ftypes[i] : NULL; }

const quantize_ftype *vkl_quantize_ftype_find(const char *name)
{
    static const struct { const char *alias, *name; } aliases[] = {{"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"},
                                                                  {"Q5_K", "Q5_K_M"}};
    if (!name || !*name)
        return NULL;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcasecmp(name, aliases[i].alias))
            name = aliases[i].name;
    char *end;
    unsigned long number = strtoul(name, &end, 10);
    bool numeric = isdigit((unsigned char)name[0]) && *end == '\0';
    for (uint32_t i = 0; i < N_FTYPES; i++)
        if (numeric ? ftypes[i].ftype == number : !strcasecmp(name, vkl_ggml_file_type_name(ftypes[i].ftype)))
            return &ftypes[i];
    return NULL;
}

bool vkl_quantize_tensor_type_find(const char *name, uint32_t *type)
{
    for (uint32_t t = 0; t < 64; t++) {
        const char *label = vkl_ggml_type_label(t);
        if (label && name && !strcasecmp(name, label) && vkl_quantize_search_supported(t)) {
            *type = t;
            return true;
        }
    }
    return false;
}

static bool is_float_type(uint32_t t) { return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16; }

/* ---- the per-tensor policy ---- */

typedef enum category {
    CAT_OTHER, CAT_OUTPUT, CAT_TOKEN_EMBD, CAT_ATTN_V, CAT_ATTN_K, CAT_ATTN_OUTPUT, CAT_FFN_DOWN,
} category;

static category category_of(const char *name)
{
    if (!strcmp(name, "output.weight"))
        return CAT_OUTPUT;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "per_layer_token_embd.weight"))
        return CAT_TOKEN_EMBD;
    if (strstr(name, "attn_qkv.weight") || strstr(name, "attn_kv_b.weight") || strstr(name, "attn_v.weight"))
        return CAT_ATTN_V;
    if (strstr(name, "attn_k.weight"))
        return CAT_ATTN_K;
    if (strstr(name, "attn_output.weight"))
        return CAT_ATTN_OUTPUT;
    if (strstr(name, "ffn_up") || strstr(name, "ffn_gate"))
        return CAT_OTHER;     /* (checked first, as llama-quantize does: "ffn_gate_down" is not a down) */
    if (strstr(name, "ffn_down"))
        return CAT_FFN_DOWN;
    return CAT_OTHER;
}

/* Tensors that are never converted although 2-D "...weight" (positions, convolutions, routers). */
static bool convertible(const gguf_tensor *t)
{
    static const char *const keep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
        "position_embd", "token_types", "ssm_conv1d", "shortconv.conv.weight", "time_mix_", "attn_rel_b.weight",
        "rel_pos", "patch_embd", "patch_merger", "indexer.k_proj.weight", "indexer.q_proj.weight",
    };
    size_t len = strlen(t->name);
    if (t->n_dims < 2 || len < 6 || strcmp(t->name + len - 6, "weight") != 0)
        return false;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        if (strstr(t->name, keep[i]))
            return false;
    return true;
}

typedef struct mix_state {
    uint32_t ft;                 /* LLAMA_FTYPE */
    bool falcon, is_70b, tied;
    uint32_t n_gqa, n_expert, n_layer;
    uint32_t n_attn_v, i_attn_v, i_ffn_down;
} mix_state;

static bool more_bits(uint32_t i, uint32_t n)
{
    return i < n / 8 || i >= 7 * n / 8 || ((int64_t)i - (int64_t)(n / 8)) % 3 == 2;
}

static uint32_t block_of(uint32_t type) { return vkl_ggml_block_size(type) ? vkl_ggml_block_size(type) : 1; }

/* The mix's choice for a convertible tensor of a quantized file type (before the fallback). */
static uint32_t mix_type(mix_state *s, const gguf_tensor *t, uint32_t type, uint32_t output_type)
{
    const uint32_t ft = s->ft;
    category cat = category_of(t->name);
    if (cat == CAT_OUTPUT || (cat == CAT_TOKEN_EMBD && s->tied)) {
        if (output_type != QUANTIZE_TYPE_AUTO)
            return output_type;
        if (s->falcon || t->ne[0] % block_of(type) != 0)
            return GGML_TYPE_Q8_0;
        return type == GGML_TYPE_Q8_0 ? type : GGML_TYPE_Q6_K;
    }
    if (cat == CAT_ATTN_V) {
        uint32_t i = s->i_attn_v++;
        if (ft == FT_Q2_K)
            type = s->n_gqa >= 4 ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            type = i < 2 ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
        else if (ft == FT_Q3_K_L)
            type = GGML_TYPE_Q5_K;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && s->n_gqa >= 4)
            type = GGML_TYPE_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && more_bits(i, s->n_attn_v))
            type = GGML_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && i < 4)
            type = GGML_TYPE_Q5_K;
        if (s->is_70b && (type == GGML_TYPE_Q3_K || type == GGML_TYPE_Q4_K))
            type = GGML_TYPE_Q5_K;
        if (s->n_expert == 8)
            type = GGML_TYPE_Q8_0;
        return type;
    }
    if (cat == CAT_ATTN_K)
        return s->n_expert == 8 ? GGML_TYPE_Q8_0 : type;
    if (cat == CAT_FFN_DOWN) {
        uint32_t i = s->i_ffn_down++, n = s->n_layer;
        if (s->n_expert > 1) {                          /* experts are not in layer order: use the name */
            unsigned layer;
            i = sscanf(t->name, "blk.%u.", &layer) == 1 ? layer : 0;
        }
        if (ft == FT_Q2_K)
            type = GGML_TYPE_Q3_K;
        else if (ft == FT_Q3_K_M)
            type = i < n / 16 ? GGML_TYPE_Q5_K
                   : !s->falcon || more_bits(i, n) ? GGML_TYPE_Q4_K : GGML_TYPE_Q3_K;
        else if (ft == FT_Q3_K_L)
            type = s->falcon ? GGML_TYPE_Q4_K : GGML_TYPE_Q5_K;
        else if (ft == FT_Q4_K_M) {
            if (s->falcon)
                type = i < n / 16 ? GGML_TYPE_Q6_K : more_bits(i, n) ? GGML_TYPE_Q5_K : GGML_TYPE_Q4_K;
            else if (more_bits(i, n))
                type = GGML_TYPE_Q6_K;
        } else if (i < n / 8 && (ft == FT_IQ4_NL || ft == FT_IQ4_XS))
            type = GGML_TYPE_Q5_K;
        else if (ft == FT_Q5_K_M && more_bits(i, n))
            type = GGML_TYPE_Q6_K;
        else if (ft == FT_Q4_K_S && !s->falcon && i < n / 8)
            type = GGML_TYPE_Q5_K;
        return type;
    }
    if (cat == CAT_ATTN_OUTPUT) {
        if (s->falcon)
            return ft == FT_Q3_K_L ? GGML_TYPE_Q4_K : type;
        if (s->n_expert == 8)
            return ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_IQ4_NL || ft == FT_Q4_K_S ||
                           ft == FT_Q4_K_M || ft == FT_IQ4_XS
                       ? GGML_TYPE_Q5_K
                       : type;
        return ft == FT_Q2_K ? GGML_TYPE_Q3_K : ft == FT_Q3_K_M ? GGML_TYPE_Q4_K : ft == FT_Q3_K_L ? GGML_TYPE_Q5_K : type;
    }
    return type;
}

/* A type whose block divides a row of n elements: the type, else its fallback (the type table's, the rule
 * synth follows too), else F16. */
static uint32_t fallback_type(uint32_t type, uint64_t n)
{
    if (n % block_of(type) == 0)
        return type;
    const ggml_type_info *info = vkl_ggml_type_get(type);
    type = info ? info->fallback : GGML_TYPE_F16;
    return n % block_of(type) == 0 ? type : GGML_TYPE_F16;
}

static uint32_t key_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t dflt)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    return vkl_gguf_get_u32(f, key, &v) ? v : dflt;
}

static const char *type_label(uint32_t t)
{
    return vkl_ggml_type_label(t) ? vkl_ggml_type_label(t) : "unknown";
}

vkllm_status vkl_quantize_plan(const gguf_file *f, const quantize_params *p, uint32_t *types)
{
    char arch[64] = "llama";
    const char *s;
    uint64_t len;
    if (vkl_gguf_get_str(f, "general.architecture", &s, &len) && len < sizeof arch) {
        memcpy(arch, s, (size_t)len);
        arch[len] = '\0';
    }
    mix_state m = {0};
    m.ft = p->ftype->ftype;
    m.falcon = !strcmp(arch, "falcon");
    uint32_t n_head = key_u32(f, arch, "attention.head_count", 1);
    uint32_t n_head_kv = key_u32(f, arch, "attention.head_count_kv", n_head);
    m.n_gqa = n_head_kv ? n_head / n_head_kv : 1;
    m.n_expert = key_u32(f, arch, "expert_count", 0);
    m.n_layer = key_u32(f, arch, "block_count", 0);
    m.is_70b = !strcmp(arch, "llama") && m.n_layer == 80 && n_head != n_head_kv;
    m.tied = vkl_gguf_find_tensor(f, "output.weight") == NULL;
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
        m.n_attn_v += category_of(vkl_gguf_tensor_at(f, i)->name) == CAT_ATTN_V;

    const uint32_t dflt = p->ftype->type;
    const bool mixes = !p->pure && !is_float_type(dflt);
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        uint32_t type = t->type;
        if (convertible(t)) {
            category cat = category_of(t->name);
            if (cat == CAT_TOKEN_EMBD && p->token_embedding_type != QUANTIZE_TYPE_AUTO)
                type = p->token_embedding_type;
            else if (cat == CAT_OUTPUT && p->output_tensor_type != QUANTIZE_TYPE_AUTO)
                type = p->output_tensor_type;
            else
                type = mixes ? mix_type(&m, t, dflt, p->output_tensor_type) : dflt;
            type = fallback_type(type, t->ne[0]);
        }
        types[i] = type;
        if (type == t->type) {
            if (t->data == NULL)
                return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s: type %s (%u) is not one vkllm knows", t->name,
                                 type_label(t->type), t->type);
            continue;
        }
        if (!vkl_ggml_type_name(t->type) || t->data == NULL)
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "tensor %s: cannot convert from type %s (%u)", t->name,
                             type_label(t->type), t->type);
        if (!is_float_type(t->type) && !p->allow_requantize)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                             "tensor %s is already quantized (%s): requantizing needs --allow-requantize", t->name,
                             type_label(t->type));
    }
    return VKLLM_OK;
}

/* ---- metadata ---- */

static vkllm_status write_header(const gguf_file *f, const quantize_params *p, const uint32_t *types,
                                 gguf_writer *w)
{
    for (uint64_t i = 0; i < vkl_gguf_n_kv(f); i++) {
        const char *key = vkl_gguf_kv_key(f, i);
        if (!strcmp(key, "general.file_type") || !strcmp(key, "general.quantization_version") ||
            !strcmp(key, "general.alignment") || !strncmp(key, "split.", 6))
            continue;
        vkllm_status st = vkl_gguf_copy_kv(f, i, w);
        if (st != VKLLM_OK)
            return st;
    }
    vkllm_status st = vkl_gguf_writer_kv_u32(w, "general.quantization_version", 2);
    if (st == VKLLM_OK)
        st = vkl_gguf_writer_kv_u32(w, "general.file_type", p->ftype->ftype);
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f) && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        st = vkl_gguf_writer_tensor_info(w, t->name, types[i], t->n_dims, t->ne);
    }
    return st;
}

/* ---- converting one tensor, on several threads ---- */

enum { ROWS_PER_CLAIM = 8 };

typedef struct convert_job {
    const gguf_tensor *t;
    uint32_t type;
    uint64_t n_per_row, first_row, n_rows;   /* the slab */
    uint64_t src_row_bytes, dst_row_bytes;
    uint8_t *dst;                            /* the slab's output */
    atomic_uint_fast64_t next;               /* next row to claim, relative to first_row */
    atomic_uint_fast64_t rows_done;
    atomic_bool out_of_memory;
} convert_job;

static void *convert_worker(void *arg)
{
    convert_job *j = arg;
    float *row = malloc((size_t)j->n_per_row * sizeof *row);
    if (!row) {
        atomic_store(&j->out_of_memory, true);
        return NULL;
    }
    const uint8_t *src = j->t->data;
    for (;;) {
        uint64_t r0 = atomic_fetch_add(&j->next, ROWS_PER_CLAIM);
        if (r0 >= j->n_rows)
            break;
        uint64_t r1 = r0 + ROWS_PER_CLAIM < j->n_rows ? r0 + ROWS_PER_CLAIM : j->n_rows;
        for (uint64_t r = r0; r < r1; r++) {
            vkl_dequantize_row(j->t->type, src + (j->first_row + r) * j->src_row_bytes, row, j->n_per_row);
            vkl_quantize_row_search(j->type, row, j->dst + r * j->dst_row_bytes, j->n_per_row);
        }
        atomic_fetch_add(&j->rows_done, r1 - r0);
    }
    free(row);
    return NULL;
}

typedef struct progress_state {
    const quantize_params *p;
    uint64_t done, total;
} progress_state;

/* Converts t to `type` slab by slab (at most ~64 MiB of output each), writing each slab. */
static vkllm_status convert_tensor(const gguf_tensor *t, uint32_t type, uint32_t n_threads, gguf_writer *w,
                                   progress_state *ps)
{
    const uint64_t n_per_row = t->ne[0], n_rows = t->n_elements / t->ne[0];
    const uint64_t dst_row_bytes = vkl_ggml_row_bytes(type, n_per_row);
    uint64_t slab_rows = (64u << 20) / (dst_row_bytes ? dst_row_bytes : 1);
    slab_rows = slab_rows < 1 ? 1 : slab_rows > n_rows ? n_rows : slab_rows;
    uint8_t *dst = malloc((size_t)(slab_rows * dst_row_bytes));
    pthread_t *threads = calloc(n_threads, sizeof *threads);
    if (!dst || !threads) {
        free(dst);
        free(threads);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory converting %s", t->name);
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t first = 0; first < n_rows && st == VKLLM_OK; first += slab_rows) {
        convert_job j = {.t = t, .type = type, .n_per_row = n_per_row, .first_row = first,
                         .n_rows = first + slab_rows <= n_rows ? slab_rows : n_rows - first,
                         .src_row_bytes = vkl_ggml_row_bytes(t->type, n_per_row), .dst_row_bytes = dst_row_bytes,
                         .dst = dst};
        atomic_init(&j.next, 0);
        atomic_init(&j.rows_done, 0);
        atomic_init(&j.out_of_memory, false);
        uint32_t started = 0;
        uint32_t want = (uint32_t)(j.n_rows / ROWS_PER_CLAIM + 1 < n_threads ? j.n_rows / ROWS_PER_CLAIM + 1 : n_threads);
        for (uint32_t k = 1; k < want; k++, started++)
            if (pthread_create(&threads[k - 1], NULL, convert_worker, &j) != 0)
                break;
        /* The calling thread works too, reporting progress between its claims. */
        float *row = malloc((size_t)n_per_row * sizeof *row);
        if (!row)
            atomic_store(&j.out_of_memory, true);
        while (row) {
            uint64_t r0 = atomic_fetch_add(&j.next, ROWS_PER_CLAIM);
            if (r0 >= j.n_rows)
                break;
            uint64_t r1 = r0 + ROWS_PER_CLAIM < j.n_rows ? r0 + ROWS_PER_CLAIM : j.n_rows;
            for (uint64_t r = r0; r < r1; r++) {
                vkl_dequantize_row(t->type, (const uint8_t *)t->data + (first + r) * j.src_row_bytes, row, n_per_row);
                vkl_quantize_row_search(type, row, dst + r * dst_row_bytes, n_per_row);
            }
            atomic_fetch_add(&j.rows_done, r1 - r0);
            if (ps->p->progress)
                ps->p->progress(ps->p->progress_user, ps->done + atomic_load(&j.rows_done) * n_per_row, ps->total);
        }
        free(row);
        for (uint32_t k = 0; k < started; k++)
            pthread_join(threads[k], NULL);
        ps->done += j.n_rows * n_per_row;
        if (atomic_load(&j.out_of_memory) || atomic_load(&j.next) < j.n_rows)
            st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory converting %s", t->name);
        else
            st = vkl_gguf_writer_tensor_data(w, dst, (size_t)(j.n_rows * dst_row_bytes));
    }
    free(dst);
    free(threads);
    return st;
}

/* ---- the whole file ---- */

static uint32_t default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 1024 ? (uint32_t)n : 1;
}

/* Creates a fresh temporary file beside `target` (so the final rename stays in one filesystem); its name
 * goes to tmp. The file is created with 0666 minus the umask, as fopen would. */
static vkllm_status make_temp_beside(const char *target, char *tmp, size_t size)
{
    for (unsigned attempt = 0; attempt < 100; attempt++) {
        int n = snprintf(tmp, size, "%s.tmp-%ld-%u", target, (long)getpid(), attempt);
        if (n < 0 || (size_t)n >= size)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "output path too long: %s", target);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0) {
            close(fd);
            return VKLLM_OK;
        }
        if (errno != EEXIST)
            return vkr_error(VKLLM_ERR_IO, "cannot create %s: %s", target, strerror(errno));
    }
    return vkr_error(VKLLM_ERR_IO, "cannot create %s: no free temporary name", target);
}

/* Flushes the finished temporary file to disk and renames it over the target. */
static vkllm_status commit_temp(const char *tmp, const char *target)
{
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        vkllm_status st = vkr_error(VKLLM_ERR_IO, "cannot write %s: %s", target, strerror(errno));
        if (fd >= 0)
            close(fd);
        return st;
    }
    close(fd);
    if (rename(tmp, target) != 0)
        return vkr_error(VKLLM_ERR_IO, "cannot replace %s: %s", target, strerror(errno));
    return VKLLM_OK;
}

vkllm_status vkl_quantize_model(const char *in_path, const char *out_path, const quantize_params *p)
{
    if (!in_path || !out_path || !p || !p->ftype)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "quantize_model: NULL argument");
    gguf_file *f;
    vkllm_status st = vkl_gguf_open(in_path, &f);
    if (st != VKLLM_OK)
        return st;
    uint64_t n_tensors = vkl_gguf_n_tensors(f);
    uint32_t *types = malloc((n_tensors ? n_tensors : 1) * sizeof *types);
    if (!types) {
        vkl_gguf_close(f);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    st = vkl_quantize_plan(f, p, types);
    progress_state ps = {p, 0, 0};
    bool requantize = false;
    for (uint64_t i = 0; i < n_tensors && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        if (types[i] != t->type) {
            ps.total += t->n_elements;
            requantize |= !is_float_type(t->type);
        }
    }
    if (st == VKLLM_OK && requantize)
        vkr_log(VKLLM_LOG_WARNING, "%s holds quantized tensors: requantizing them loses more quality than "
                                   "quantizing the original F32/F16/BF16 model", in_path);

    char tmp[4096];
    gguf_writer *w = NULL;
    if (st == VKLLM_OK)
        st = make_temp_beside(out_path, tmp, sizeof tmp);
    if (st == VKLLM_OK) {
        st = vkl_gguf_writer_open(tmp, &w);
        if (st != VKLLM_OK)
            unlink(tmp);
    }
    if (st == VKLLM_OK)
        st = write_header(f, p, types, w);
    uint32_t n_threads = p->n_threads ? p->n_threads : default_threads();
    for (uint64_t i = 0; i < n_tensors && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        if (types[i] == t->type)
            st = vkl_gguf_writer_tensor_data(w, t->data, (size_t)t->nbytes);
        else
            st = convert_tensor(t, types[i], n_threads, w, &ps);
    }
    if (w) {
        if (st == VKLLM_OK) {
            st = vkl_gguf_writer_close(w);     /* removes the file on failure */
            if (st == VKLLM_OK) {
                st = commit_temp(tmp, out_path);
                if (st != VKLLM_OK)
                    unlink(tmp);
            }
        } else {
            vkl_gguf_writer_abort(w);
        }
    }
    if (st == VKLLM_OK && p->progress)
        p->progress(p->progress_user, ps.total, ps.total);
    free(types);
    vkl_gguf_close(f);
    return st;
}
