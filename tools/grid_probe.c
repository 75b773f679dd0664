/* Development tool (never run by the tests or CI): measures ggml's dequantization of the IQ grid types with
 * llama.cpp's own llama-quantize, used as a black box, and checks vkllm's against it. See derive_grids.sh.
 *
 *   grid_probe write TYPE BASE.gguf OUT.gguf   BASE (an F32 llama model, e.g. `vkllm synth --preset tiny256
 *                                              --type f32`) with its first matrix of 256-wide rows stored as
 *                                              TYPE: probe blocks that enumerate every grid index (scale and
 *                                              signs known), then blocks of random bytes
 *   grid_probe table TYPE DEQ.gguf             prints the grid read back from DEQ (llama-quantize's F32 output
 *                                              of OUT) in the form of shaders/iq_grids.glsl
 *   grid_probe check A.gguf DEQ.gguf           vkllm's dequantization of every quantized tensor of A against
 *                                              the F32 tensor of the same name in DEQ: elements that differ */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/gguf.h"
#include "host/format/gguf_copy.h"
#include "host/format/quant.h"

/* ---- probe blocks: every field zero but the block scale and the grid indices, so that element j of
 *      group g of a block is grid[index][j] (times 1, with no sign; IQ1_S: plus its delta 1/8) ---- */

typedef struct probe {
    uint32_t type;
    const char *macro;        /* the generated table's name */
    uint32_t entries, dim;    /* grid entries, elements per entry */
    float offset;             /* value of element - grid value */
    void (*put)(uint8_t *blk, uint32_t group, uint32_t index);   /* index of group (dim elements) */
    uint16_t d;               /* f16 block scale giving a factor of 1 */
    uint32_t block_bytes;
} probe;

static void put_u16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }

/* IQ2_XXS: group g of 8 elements has its index in byte (g / 4) * 8 + g % 4 of qs (after d) */
static void put_iq2_xxs(uint8_t *b, uint32_t g, uint32_t i) { b[2 + (g / 4) * 8 + g % 4] = (uint8_t)i; }
/* IQ2_XS: qs[g] (uint16): 9-bit index, 7 sign bits above it */
static void put_iq2_xs(uint8_t *b, uint32_t g, uint32_t i) { put_u16(b + 2 + 2 * g, i); }
/* IQ2_S: low 8 bits in qs[g], bits 8-9 in qh[g / 4] at bit 2 * (g % 4) (qh after qs[32] and signs[32]) */
static void put_iq2_s(uint8_t *b, uint32_t g, uint32_t i)
{
    b[2 + g] = (uint8_t)i;
    b[66 + g / 4] |= (uint8_t)((i >> 8) << (2 * (g % 4)));
}
/* IQ3_XXS: qs[g], groups of 4 */
static void put_iq3_xxs(uint8_t *b, uint32_t g, uint32_t i) { b[2 + g] = (uint8_t)i; }
/* IQ3_S: low 8 bits in qs[g], bit 8 in qh[g / 8] at bit g % 8 */
static void put_iq3_s(uint8_t *b, uint32_t g, uint32_t i)
{
    b[2 + g] = (uint8_t)i;
    b[66 + g / 8] |= (uint8_t)((i >> 8) << (g % 8));
}
/* IQ1_S: low 8 bits in qs[g], bits 8-10 in qh[g / 4] (uint16) at bit 3 * (g % 4) */
static void put_iq1_s(uint8_t *b, uint32_t g, uint32_t i)
{
    b[2 + g] = (uint8_t)i;
    uint8_t *qh = b + 34 + 2 * (g / 4);
    put_u16(qh, (uint32_t)(qh[0] | qh[1] << 8) | (i >> 8) << (3 * (g % 4)));
}

static const probe PROBES[] = {
    {GGML_TYPE_IQ2_XXS, "IQ2XXS_GRID", 256, 8, 0.0f, put_iq2_xxs, 0x4800, 66},   /* d 8: 8 * (0.5 + 0) / 4 = 1 */
    {GGML_TYPE_IQ2_XS, "IQ2XS_GRID", 512, 8, 0.0f, put_iq2_xs, 0x4800, 74},
    {GGML_TYPE_IQ2_S, "IQ2S_GRID", 1024, 8, 0.0f, put_iq2_s, 0x4800, 82},
    {GGML_TYPE_IQ3_XXS, "IQ3XXS_GRID", 256, 4, 0.0f, put_iq3_xxs, 0x4400, 98},  /* d 4: 4 * (0.5 + 0) / 2 = 1 */
    {GGML_TYPE_IQ3_S, "IQ3S_GRID", 512, 4, 0.0f, put_iq3_s, 0x3c00, 110},        /* d 1: 1 * (1 + 2 * 0) = 1 */
    {GGML_TYPE_IQ1_S, "IQ1S_GRID", 2048, 8, 0.125f, put_iq1_s, 0x3c00, 50},     /* d 1: 1 * (2 * 0 + 1) = 1 */
    {GGML_TYPE_IQ1_M, "IQ1S_GRID", 0, 8, 0.0f, NULL, 0, 56},   /* IQ1_S's grid: random blocks only */
    {GGML_TYPE_MXFP4, NULL, 0, 32, 0.0f, NULL, 0, 17},
};

static const probe *find_probe(uint32_t type)
{
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++)
        if (PROBES[i].type == type)
            return &PROBES[i];
    return NULL;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

/* A block of random bytes whose scale is a random f16 of magnitude 1/64 .. 1/16 (IQ1_M: its f16 scale is the
 * top nibbles of its four uint16 scales). MXFP4's exponent byte is any of 0..249 (subnormal scales included). */
static void random_block(uint32_t type, uint8_t *b, uint32_t bytes)
{
    for (uint32_t i = 0; i < bytes; i++)
        b[i] = (uint8_t)rnd();
    uint16_t d = (uint16_t)((rnd() & 0x83ffu) | (0x2400u + (rnd() % 3) * 0x400u));
    if (type == GGML_TYPE_IQ1_M) {
        for (int k = 0; k < 4; k++)
            b[48 + 2 * k + 1] = (uint8_t)((b[48 + 2 * k + 1] & 0x0f) | ((d >> (4 * k)) & 15) << 4);
    } else if (type == GGML_TYPE_MXFP4) {
        b[0] = (uint8_t)(b[0] % 250);   /* ggml refuses exponent 255, and infinite values from 251 up */
    } else {
        put_u16(b, d);
    }
}

/* The matrix the probe replaces: blk.0.attn_q.weight (256 x 256 in tiny256: 256 blocks). */
#define PROBE_TENSOR "blk.0.attn_q.weight"

static int write_probe(uint32_t type, const char *base_path, const char *out_path)
{
    const probe *pr = find_probe(type);
    if (!pr) {
        fprintf(stderr, "no probe for this type\n");
        return 1;
    }
    const uint32_t bb = pr->block_bytes, blk_elems = type == GGML_TYPE_MXFP4 ? 32 : QK_K;
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    if (vkl_gguf_open(base_path, &f) != VKLLM_OK || vkl_gguf_writer_open(out_path, &w) != VKLLM_OK) {
        fprintf(stderr, "cannot open %s or %s\n", base_path, out_path);
        return 1;
    }
    vkllm_status st = VKLLM_OK;
    for (uint64_t i = 0; i < vkl_gguf_n_kv(f) && st == VKLLM_OK; i++)
        st = vkl_gguf_copy_kv(f, i, w);
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f) && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        st = vkl_gguf_writer_tensor_info(w, t->name, strcmp(t->name, PROBE_TENSOR) ? t->type : type, t->n_dims, t->ne);
    }
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f) && st == VKLLM_OK; i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
        if (strcmp(t->name, PROBE_TENSOR)) {
            st = vkl_gguf_writer_tensor_data(w, t->data, t->nbytes);
            continue;
        }
        const uint64_t nb = t->n_elements / blk_elems;
        const uint32_t groups = blk_elems / pr->dim, probe_blocks = pr->entries / groups;
        uint8_t *data = calloc(nb, bb);
        for (uint64_t b = 0; b < nb; b++) {
            uint8_t *blk = data + b * bb;
            if (b < probe_blocks) {
                put_u16(blk, pr->d);
                for (uint32_t g = 0; g < groups; g++)
                    pr->put(blk, g, (uint32_t)b * groups + g);
            } else {
                random_block(type, blk, bb);
            }
        }
        st = vkl_gguf_writer_tensor_data(w, data, nb * bb);
        free(data);
    }
    st = st == VKLLM_OK ? vkl_gguf_writer_close(w) : (vkl_gguf_writer_abort(w), st);
    vkl_gguf_close(f);
    if (st != VKLLM_OK)
        fprintf(stderr, "writing %s failed\n", out_path);
    return st != VKLLM_OK;
}

/* Prints the grid as the macro of shaders/iq_grids.glsl: IQ1_S entries 2 bits per element (value + 1), two entries
 * per word (even entry low); the others one byte per element, little-endian in 32-bit words. */
static int print_table(uint32_t type, const char *deq_path)
{
    const probe *pr = find_probe(type);
    gguf_file *f = NULL;
    if (!pr || !pr->entries || vkl_gguf_open(deq_path, &f) != VKLLM_OK) {
        fprintf(stderr, "no probe for this type, or cannot open %s\n", deq_path);
        return 1;
    }
    const gguf_tensor *t = vkl_gguf_find_tensor(f, PROBE_TENSOR);
    if (!t || t->type != GGML_TYPE_F32 || t->n_elements < (uint64_t)pr->entries * pr->dim) {
        fprintf(stderr, "%s: no F32 %s\n", deq_path, PROBE_TENSOR);
        return 1;
    }
    const float *v = t->data;
    const bool ternary = type == GGML_TYPE_IQ1_S;
    const uint32_t words = ternary ? pr->entries / 2 : pr->entries * pr->dim / 4;
    uint32_t *w = calloc(words, 4);
    for (uint32_t i = 0; i < pr->entries; i++) {
        for (uint32_t j = 0; j < pr->dim; j++) {
            const float g = v[i * pr->dim + j] - pr->offset;
            const int q = (int)g;
            if ((float)q != g || (ternary ? q < -1 || q > 1 : q < 0 || q > 255)) {
                fprintf(stderr, "entry %u element %u: %g is not a grid value\n", i, j, g);
                return 1;
            }
            if (ternary)
                w[i / 2] |= (uint32_t)(q + 1) << (16 * (i % 2) + 2 * j);
            else
                w[(i * pr->dim + j) / 4] |= (uint32_t)q << (8 * (j % 4));
        }
    }
    printf("#define %s \\\n", pr->macro);
    for (uint32_t i = 0; i < words; i++)
        printf("%s0x%08xu%s", i % 8 ? ", " : "    ", w[i], i + 1 == words ? "\n" : i % 8 == 7 ? ", \\\n" : "");
    free(w);
    vkl_gguf_close(f);
    return 0;
}

static int check(const char *a_path, const char *deq_path)
{
    gguf_file *a = NULL, *d = NULL;
    if (vkl_gguf_open(a_path, &a) != VKLLM_OK || vkl_gguf_open(deq_path, &d) != VKLLM_OK) {
        fprintf(stderr, "cannot open %s or %s\n", a_path, deq_path);
        return 1;
    }
    uint64_t total = 0, bad = 0;
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(a); i++) {
        const gguf_tensor *t = vkl_gguf_tensor_at(a, i);
        const gguf_tensor *r = vkl_gguf_find_tensor(d, t->name);
        if (t->type == GGML_TYPE_F32 || !vkl_ggml_type_name(t->type) || !r || r->type != GGML_TYPE_F32 ||
            r->n_elements != t->n_elements)
            continue;
        float *y = malloc(t->n_elements * sizeof(float));
        vkl_dequantize_row(t->type, t->data, y, t->n_elements);
        const float *want = r->data;
        uint64_t tb = 0;
        for (uint64_t e = 0; e < t->n_elements; e++) {
            if (!(y[e] == want[e]) && !(isnan(y[e]) && isnan(want[e])) && tb++ < 5)
                fprintf(stderr, "%s [%" PRIu64 "]: vkllm %.9g, llama.cpp %.9g\n", t->name, e, y[e], want[e]);
        }
        printf("%-28s %-7s %8" PRIu64 " elements, %" PRIu64 " differ\n", t->name, vkl_ggml_type_name(t->type),
               t->n_elements, tb);
        total += t->n_elements;
        bad += tb;
        free(y);
    }
    printf("%" PRIu64 " of %" PRIu64 " elements differ\n", bad, total);
    vkl_gguf_close(a);
    vkl_gguf_close(d);
    return bad != 0 || total == 0;
}

/* A type by its GGUF label ("iq2_xxs"), known to the type table or not. */
static bool type_from_label(const char *name, uint32_t *type)
{
    for (uint32_t t = 0; t < 64; t++)
        if (vkl_ggml_type_label(t) && !strcmp(vkl_ggml_type_label(t), name))
            return *type = t, true;
    return false;
}

int main(int argc, char **argv)
{
    uint32_t type = 0;
    if (argc == 4 && !strcmp(argv[1], "check"))
        return check(argv[2], argv[3]);
    if (argc == 5 && !strcmp(argv[1], "write") && type_from_label(argv[2], &type))
        return write_probe(type, argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "table") && type_from_label(argv[2], &type))
        return print_table(type, argv[3]);
    fprintf(stderr, "usage: grid_probe write TYPE BASE.gguf OUT.gguf | table TYPE DEQ.gguf | check A.gguf DEQ.gguf\n");
    return 2;
}
