/* Stand-alone kernel benchmark for vkl_op_matmul: GPU time (timestamps) of y = W x for the weight shapes of a
 * Llama model, at a chosen number of columns (1 = the decode matvec, more = small batches / prompts).
 *
 *   bench_matvec [-t TYPE] [-n COLS] [-r RUNS] [-s SHAPES] [--device SEL]
 *                [--packed | --packed-split | --packed-nomul | --sdot]
 *
 * The last four (an experiment for issue 12, q4_0 only, see bench/RESULTS.md) time mm_cpu.comp's int8-x tile
 * variants instead of vkl_op_matmul and check the result against a CPU reference; PK_RPL=R sets their rows per
 * invocation (default 16).
 * TYPE: f32, f16, q8_0, q4_0 (default q4_0). SHAPES: "1b" (Llama 3.2 1B, default), "8b" (Llama 3 8B), or a
 * list "KxM,KxM,...". Prints, for every shape, the median and best time of RUNS timed runs (after one
 * warm-up) and the weight bytes per second, then a per-token estimate: the layer shapes times the layer
 * count plus the output matrix, the way one decode step (n = 1) or one batch (n > 1) uses them. The weights
 * hold random quants (and small finite scales); their values do not matter for the timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/resource.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"

typedef struct shape {
    uint32_t k, m, count;   /* uses per layer; 0: once per token (the output matrix) */
    const char *what;
} shape;

static const shape SHAPES_1B[] = {
    {2048, 2048, 2, "attn_q+attn_output"}, {2048, 512, 2, "attn_k+attn_v"},
    {2048, 8192, 2, "ffn_gate+ffn_up"},    {8192, 2048, 1, "ffn_down"},
    {2048, 128256, 0, "output"},
};
static const shape SHAPES_8B[] = {
    {4096, 4096, 2, "attn_q+attn_output"}, {4096, 1024, 2, "attn_k+attn_v"},
    {4096, 14336, 2, "ffn_gate+ffn_up"},   {14336, 4096, 1, "ffn_down"},
    {4096, 128256, 0, "output"},
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random GGUF data for M rows of K. */
static void *make_weight(uint32_t type, uint32_t K, uint32_t M, size_t *bytes)
{
    uint64_t rb = vkl_ggml_row_bytes(type, K);
    *bytes = (size_t)(rb * M);
    uint8_t *p = malloc(*bytes);
    if (!p)
        return NULL;
    if (type == GGML_TYPE_F32) {
        float *f = (float *)p;
        for (size_t i = 0; i < *bytes / 4; i++)
            f[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
    } else if (type == GGML_TYPE_F16) {
        uint16_t *h = (uint16_t *)p;
        for (size_t i = 0; i < *bytes / 2; i++)
            h[i] = vkl_fp32_to_fp16((float)(rnd() % 2001) / 1000.0f - 1.0f);
    } else {
        uint32_t bb = vkl_ggml_block_bytes(type);
        for (size_t b = 0; b < *bytes / bb; b++) {
            uint8_t *blk = p + b * bb;
            uint16_t d = vkl_fp32_to_fp16(0.001f * (float)(1 + rnd() % 16));
            blk[0] = (uint8_t)d;
            blk[1] = (uint8_t)(d >> 8);
            for (uint32_t i = 2; i < bb; i++)
                blk[i] = (uint8_t)rnd();
        }
    }
    return p;
}

/* CPU seconds of this process (all threads): on a CPU device, the work done, whatever else runs. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int parse_shapes(const char *s, shape *out, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        unsigned k, m;
        int used = 0;
        if (sscanf(s, "%ux%u%n", &k, &m, &used) != 2)
            return -1;
        out[n].k = k;
        out[n].m = m;
        out[n].count = 1;
        out[n].what = "";
        n++;
        s += used;
        if (*s == ',')
            s++;
    }
    return n;
}

/* --packed (an experiment, issue 12): Q4_0 times x quantized to int8 per 32-element block, two columns packed per
 * int32 (shaders/mm_cpu.comp's MC_PACKED). Host side: x's quants and block scales, and the reference sums. */
typedef struct packed_x {
    int8_t *q;       /* N columns of K quants */
    float *d;        /* N columns of K / 32 block scales */
    uint32_t *pair;  /* N / 2 pairs of K words: q_a + q_b * 2^16 */
} packed_x;

static void packed_x_free(packed_x *px)
{
    free(px->q);
    free(px->d);
    free(px->pair);
}

static int packed_x_make(const float *x, uint32_t K, uint32_t N, packed_x *px)
{
    px->q = malloc((size_t)K * N);
    px->d = malloc((size_t)K / 32 * N * sizeof *px->d);
    px->pair = malloc((size_t)K * (N / 2) * sizeof *px->pair);
    if (!px->q || !px->d || !px->pair)
        return -1;
    for (size_t b = 0; b < (size_t)K / 32 * N; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.0f, inv = d > 0 ? 1.0f / d : 0.0f;
        px->d[b] = d;
        for (int j = 0; j < 32; j++)
            px->q[b * 32 + j] = (int8_t)lrintf(x[b * 32 + j] * inv);
    }
    for (size_t p = 0; p < N / 2; p++)
        for (size_t k = 0; k < K; k++)
            px->pair[p * K + k] = (uint32_t)(int32_t)px->q[2 * p * K + k] +
                                  ((uint32_t)(int32_t)px->q[(2 * p + 1) * K + k] << 16);
    return 0;
}

/* Relative L2 errors of y (N columns of M) against the f32 product (W dequantized times x) and against the
 * product with x's int8 quants (the same numerics as the kernel), in double. */
static int packed_errors(const void *w, const float *x, const packed_x *px, const float *y, uint32_t K, uint32_t M,
                         uint32_t N, double *err_f32, double *err_i8)
{
    const uint64_t rb = vkl_ggml_row_bytes(GGML_TYPE_Q4_0, K);
    float *row = malloc((size_t)K * sizeof *row);
    if (!row)
        return -1;
    double e32 = 0, n32 = 0, e8 = 0, n8 = 0;
    for (uint32_t r = 0; r < M; r++) {
        vkl_dequantize_row(GGML_TYPE_Q4_0, (const uint8_t *)w + r * rb, row, K);
        for (uint32_t c = 0; c < N; c++) {
            double f = 0, q = 0;
            for (uint32_t k = 0; k < K; k++)
                f += (double)row[k] * x[(size_t)c * K + k];
            for (uint32_t b = 0; b < K / 32; b++) {
                double s = 0;
                for (uint32_t j = 0; j < 32; j++)
                    s += (double)row[b * 32 + j] * px->q[(size_t)c * K + b * 32 + j];
                q += s * px->d[(size_t)c * (K / 32) + b];
            }
            const double v = y[(size_t)c * M + r];
            e32 += (v - f) * (v - f), n32 += f * f;
            e8 += (v - q) * (v - q), n8 += q * q;
        }
    }
    free(row);
    *err_f32 = sqrt(e32 / n32);
    *err_i8 = sqrt(e8 / n8);
    return 0;
}

/* The --packed dispatch: the whole weight in one binding, rows in workgroups of WG * RPL, NC columns per tile. */
static vkllm_status packed_add(vkr_graph *g, vkr_device *dev, const char *shader, const vk_tensor *t, vkr_buffer *xpb,
                               vkr_buffer *xdb, vkr_buffer *yb, uint32_t N)
{
    const uint32_t wg = dev->info.features.subgroup_size, nc = N < 8 ? N : 8;
    const uint32_t rpl = getenv("PK_RPL") && atoi(getenv("PK_RPL")) > 0 ? (uint32_t)atoi(getenv("PK_RPL")) : 16;
    if (!t->buffer || t->qs_offset % 32 || t->d_offset % 8 || t->ne[0] % 128 || N % 2 || (N > 8 && N % 8) ||
        (nc & (nc - 1)))
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "--packed: needs Q4_0, K %% 128 == 0, N 2, 4, 8 or a multiple of 8");
    vkr_pipeline_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.shader = shader;
    desc.n_buffers = 5;
    desc.push_size = 9 * 4;
    desc.local_size_x = wg;
    desc.n_spec = 2;
    desc.spec[0] = rpl;
    desc.spec[1] = nc;
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "matmul_packed";
    d.n_bindings = 5;
    vkllm_status st = vkr_pipeline_get(dev, &desc, &d.pipeline);
    if (st != VKLLM_OK)
        return st;
    d.bindings[0] = (vkr_binding){t->buffer, 0, 0, false};
    d.bindings[1] = (vkr_binding){t->buffer, 0, 0, false};
    d.bindings[2] = (vkr_binding){xpb, 0, 0, false};
    d.bindings[3] = (vkr_binding){yb, 0, 0, true};
    d.bindings[4] = (vkr_binding){xdb, 0, 0, false};
    const uint32_t K = (uint32_t)t->ne[0], M = (uint32_t)t->ne[1];
    const uint32_t p[9] = {K, M, N, (uint32_t)t->qs_offset, (uint32_t)t->d_offset, 0, K, 0, M};
    memcpy(d.push, p, sizeof p);
    d.groups[0] = (M + wg * rpl - 1) / (wg * rpl);
    d.groups[1] = (N + nc - 1) / nc;
    d.groups[2] = 1;
    return vkr_graph_add(g, &d);
}

int main(int argc, char **argv)
{
    uint32_t type = GGML_TYPE_Q4_0, ncols = 1, runs = 5, n_layer = 16;
    const char *sel = NULL;
    const char *packed = NULL;   /* --packed: the experimental kernel's shader */
    shape custom[32];
    const shape *shapes = SHAPES_1B;
    int n_shapes = (int)(sizeof SHAPES_1B / sizeof SHAPES_1B[0]);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-t") && v) {
            if (!vkl_ggml_type_from_name(v, &type)) {
                fprintf(stderr, "unknown type %s\n", v);
                return 1;
            }
            i++;
        } else if (!strcmp(a, "-n") && v) {
            ncols = (uint32_t)atoi(v), i++;
        } else if (!strcmp(a, "-r") && v) {
            runs = (uint32_t)atoi(v), i++;
        } else if (!strcmp(a, "--packed")) {
            packed = "mm_cpu_q4_0_i64mcpk";
        } else if (!strcmp(a, "--packed-split")) {   /* the pairs unpacked: an int multiply per column */
            packed = "mm_cpu_q4_0_i64mcpkS";
        } else if (!strcmp(a, "--sdot")) {   /* int8 x, one column per byte, OpSDot */
            packed = "mm_cpu_q4_0_i64mcsdot";
        } else if (!strcmp(a, "--packed-nomul")) {   /* multiplies replaced by adds: wrong sums, a cost bound */
            packed = "mm_cpu_q4_0_i64mcpkA";
        } else if (!strcmp(a, "--device") && v) {
            sel = v, i++;
        } else if (!strcmp(a, "-s") && v) {
            i++;
            if (!strcmp(v, "1b")) {
                shapes = SHAPES_1B, n_shapes = 5, n_layer = 16;
            } else if (!strcmp(v, "8b")) {
                shapes = SHAPES_8B, n_shapes = 5, n_layer = 32;
            } else {
                n_shapes = parse_shapes(v, custom, 32);
                if (n_shapes <= 0) {
                    fprintf(stderr, "bad shape list %s\n", v);
                    return 1;
                }
                shapes = custom;
                n_layer = 0;
            }
        } else {
            fprintf(stderr, "usage: %s [-t TYPE] [-n COLS] [-r RUNS] [-s 1b|8b|KxM,...] [--packed[-split|-nomul]|--sdot] [--device SEL]\n", argv[0]);
            return 1;
        }
    }
    if (packed && type != GGML_TYPE_Q4_0) {
        fprintf(stderr, "--packed needs -t q4_0\n");
        return 1;
    }
    if (ncols == 0 || runs == 0) {
        fprintf(stderr, "-n and -r must be at least 1\n");
        return 1;
    }

    vkr_instance *inst = NULL;
    vkr_device *dev = NULL;
    vkr_instance_options io = {0};
    vkr_device_options dopts = {0};
    dopts.selector = sel;
    if (vkr_instance_create(&io, &inst) != VKLLM_OK || vkr_device_create(inst, &dopts, &dev) != VKLLM_OK) {
        fprintf(stderr, "device: %s\n", vkr_last_error());
        return 1;
    }
    fprintf(stderr, "device: %s, type %s, %u columns, %u runs\n", dev->info.name, vkl_ggml_type_name(type), ncols, runs);

    double token_ns = 0;
    int status = 0;
    for (int si = 0; si < n_shapes && status == 0; si++) {
        const shape *sh = &shapes[si];
        size_t wbytes = 0;
        void *wdata = make_weight(type, sh->k, sh->m, &wbytes);
        float *x = malloc((size_t)sh->k * ncols * 4);
        double *ns = calloc(runs, sizeof *ns);
        vk_tensor t;
        memset(&t, 0, sizeof t);
        vkr_buffer *xb = NULL, *yb = NULL;
        vkr_graph *g = NULL;
        vkllm_status st = wdata && x && ns ? VKLLM_OK : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (size_t i = 0; x && i < (size_t)sh->k * ncols; i++)
            x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        packed_x px = {0};
        vkr_buffer *xpb = NULL, *xdb = NULL;
        if (st == VKLLM_OK)
            st = vkl_tensor_upload(dev, type, sh->k, sh->m, wdata, &t);
        if (st == VKLLM_OK && packed) {
            const bool sdot = strstr(packed, "sdot") != NULL;
            const uint64_t pair_bytes = sdot ? (uint64_t)sh->k * ncols : (uint64_t)sh->k * (ncols / 2) * 4;
            const uint64_t d_bytes = (uint64_t)sh->k / 32 * ncols * 4;
            if (packed_x_make(x, sh->k, ncols, &px) != 0)
                st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            if (st == VKLLM_OK)
                st = vkr_buffer_create(dev, pair_bytes ? pair_bytes : 4, VKR_MEMORY_DEVICE, &xpb);
            if (st == VKLLM_OK)
                st = vkr_buffer_create(dev, d_bytes, VKR_MEMORY_DEVICE, &xdb);
            if (st == VKLLM_OK && pair_bytes)
                st = vkr_buffer_upload(dev, xpb, 0, sdot ? (const void *)px.q : (const void *)px.pair, pair_bytes);
            if (st == VKLLM_OK)
                st = vkr_buffer_upload(dev, xdb, 0, px.d, d_bytes);
        }
        if (st == VKLLM_OK)
            st = vkr_buffer_create(dev, (uint64_t)sh->k * ncols * 4, VKR_MEMORY_DEVICE, &xb);
        if (st == VKLLM_OK)
            st = vkr_buffer_create(dev, (uint64_t)sh->m * ncols * 4, VKR_MEMORY_DEVICE, &yb);
        if (st == VKLLM_OK)
            st = vkr_buffer_upload(dev, xb, 0, x, (size_t)sh->k * ncols * 4);
        if (st == VKLLM_OK)
            st = vkr_graph_create(dev, &g);
        float *y = NULL;
        if (st == VKLLM_OK && packed) {   /* poisoned: every output must be written */
            y = malloc((size_t)sh->m * ncols * 4);
            if (!y)
                st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            for (size_t i = 0; y && i < (size_t)sh->m * ncols; i++)
                y[i] = NAN;
            if (st == VKLLM_OK)
                st = vkr_buffer_upload(dev, yb, 0, y, (size_t)sh->m * ncols * 4);
        }
        if (st == VKLLM_OK)
            st = packed ? packed_add(g, dev, packed, &t, xpb, xdb, yb, ncols)
                        : vkl_op_matmul(g, &t, vk_view_of(xb, 0), vk_view_of(yb, 0), ncols);
        if (st == VKLLM_OK)
            st = vkr_graph_record(g, true);
        double cpu0 = 0;
        for (uint32_t r = 0; r <= runs && st == VKLLM_OK; r++) {
            if (r == 1)
                cpu0 = cpu_seconds();
            st = vkr_graph_run(g);
            double sum = 0;
            for (uint32_t i = 0; i < vkr_graph_size(g); i++)
                sum += vkr_graph_dispatch_ns(g, i);
            if (r > 0)
                ns[r - 1] = sum;
        }
        if (st == VKLLM_OK) {
            double cpu = (cpu_seconds() - cpu0) / runs * 1e3;
            qsort(ns, runs, sizeof *ns, cmp_double);
            double med = ns[runs / 2];
            printf("%-18s K=%-5u M=%-6u n=%-3u %2u disp  median %8.3f ms  best %8.3f ms  cpu %8.3f ms  %5.2f GB/s  "
                   "%6.2f GFLOP/s\n",
                   sh->what, sh->k, sh->m, ncols, vkr_graph_size(g), med / 1e6, ns[0] / 1e6, cpu,
                   (double)wbytes / ns[0], 2.0 * sh->k * sh->m * ncols / ns[0]);
            double e32 = 0, e8 = 0;
            if (packed && (st = vkr_buffer_download(dev, yb, 0, y, (size_t)sh->m * ncols * 4)) == VKLLM_OK &&
                packed_errors(wdata, x, &px, y, sh->k, sh->m, ncols, &e32, &e8) == 0)
                printf("%-18s packed int8 x: relative L2 error %.3g%% vs f32 x, %.3g vs its own int8 numerics\n", "",
                       100 * e32, e8);
            fflush(stdout);
            token_ns += med * (sh->count ? sh->count * n_layer : 1);
        } else {
            fprintf(stderr, "%s K=%u M=%u: %s\n", sh->what, sh->k, sh->m, vkr_last_error());
            status = 1;
        }
        if (g)
            vkr_graph_destroy(g);
        if (xb)
            vkr_buffer_destroy(dev, xb);
        if (yb)
            vkr_buffer_destroy(dev, yb);
        vkl_tensor_free(dev, &t);
        if (xpb)
            vkr_buffer_destroy(dev, xpb);
        if (xdb)
            vkr_buffer_destroy(dev, xdb);
        packed_x_free(&px);
        free(wdata);
        free(y);
        free(x);
        free(ns);
    }
    if (status == 0 && n_layer)
        printf("estimate: %.1f ms of matmuls per %s of %u token(s): %.2f tok/s\n", token_ns / 1e6,
               ncols == 1 ? "decode step" : "batch", ncols, ncols * 1e9 / token_ns);
    vkr_device_destroy(dev);
    vkr_instance_destroy(inst);
    return status;
}
