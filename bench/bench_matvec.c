/* Stand-alone kernel benchmark for vkl_op_matmul: GPU time (timestamps) of y = W x for the weight shapes of a
 * Llama model, at a chosen number of columns (1 = the decode matvec, more = small batches / prompts).
 *
 *   bench_matvec [-t TYPE] [-n COLS] [-r RUNS] [-s SHAPES] [--device SEL]
 *
 * TYPE: f32, f16, q8_0, q4_0 (default q4_0). SHAPES: "1b" (Llama 3.2 1B, default), "8b" (Llama 3 8B), or a
 * list "KxM,KxM,...". Prints, for every shape, the median and best time of RUNS timed runs (after one
 * warm-up) and the weight bytes per second, then a per-token estimate: the layer shapes times the layer
 * count plus the output matrix, the way one decode step (n = 1) or one batch (n > 1) uses them. The weights
 * hold random quants (and small finite scales); their values do not matter for the timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
    uint32_t type = GGML_TYPE_Q4_0, ncols = 1, runs = 5, n_layer = 16;
    const char *sel = NULL;
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
            fprintf(stderr, "usage: %s [-t TYPE] [-n COLS] [-r RUNS] [-s 1b|8b|KxM,...] [--device SEL]\n", argv[0]);
            return 1;
        }
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
        if (st == VKLLM_OK)
            st = vkl_tensor_upload(dev, type, sh->k, sh->m, wdata, &t);
        free(wdata);
        if (st == VKLLM_OK)
            st = vkr_buffer_create(dev, (uint64_t)sh->k * ncols * 4, VKR_MEMORY_DEVICE, &xb);
        if (st == VKLLM_OK)
            st = vkr_buffer_create(dev, (uint64_t)sh->m * ncols * 4, VKR_MEMORY_DEVICE, &yb);
        if (st == VKLLM_OK)
            st = vkr_buffer_upload(dev, xb, 0, x, (size_t)sh->k * ncols * 4);
        if (st == VKLLM_OK)
            st = vkr_graph_create(dev, &g);
        if (st == VKLLM_OK)
            st = vkl_op_matmul(g, &t, vk_view_of(xb, 0), vk_view_of(yb, 0), ncols);
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
