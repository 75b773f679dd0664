/* Device measurements for `vkllm bench` (see bench.h). */
#include "host/tools/bench.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "runtime/graph.h"
#include "runtime/pipeline.h"

#define MIB (1024ull * 1024ull)
#define GIB (1024ull * MIB)
#define READ_WG 256u
#define RANDOM_CHUNK (8ull * MIB)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rand_unit(uint64_t *s) { return (float)((splitmix64(s) >> 40) * (1.0 / 8388608.0) - 1.0); }

uint64_t vkl_bench_read_buffer_size(const vkr_device *dev)
{
    const vkr_device_info *info = &dev->info;
    uint64_t size = GIB;
    if (info->features.max_storage_buffer_range)
        size = min_u64(size, info->features.max_storage_buffer_range);
    if (info->features.max_memory_allocation_size)
        size = min_u64(size, info->features.max_memory_allocation_size);
    uint64_t heap = 0;
    for (uint32_t i = 0; i < info->n_heaps; i++)
        if (info->heaps[i].device_local && info->heaps[i].size > heap)
            heap = info->heaps[i].size;
    if (heap)
        size = min_u64(size, heap / 4);
    if (dev->memory_limit)
        size = min_u64(size, dev->memory_limit / 4);
    return size >= MIB ? size / MIB * MIB : size / 16 * 16;
}

vkllm_status vkl_bench_random_buffer(vkr_device *dev, uint64_t bytes, uint64_t seed, vkr_buffer **out)
{
    *out = NULL;
    if (bytes == 0 || bytes % 16)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "bench: buffer size %llu is not a positive multiple of 16",
                         (unsigned long long)bytes);
    uint64_t chunk = min_u64(bytes, RANDOM_CHUNK);
    uint64_t *host = malloc((size_t)chunk);
    if (!host)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    vkr_buffer *buf = NULL;
    vkllm_status st = vkr_buffer_create(dev, bytes, VKR_MEMORY_DEVICE, &buf);
    uint64_t s = seed;
    for (uint64_t off = 0; off < bytes && st == VKLLM_OK; off += chunk) {
        uint64_t n = min_u64(chunk, bytes - off);
        for (uint64_t i = 0; i < n / 8; i++)
            host[i] = splitmix64(&s);
        st = vkr_buffer_upload(dev, buf, off, host, (size_t)n);
    }
    free(host);
    if (st != VKLLM_OK) {
        vkr_buffer_destroy(dev, buf);
        return st;
    }
    *out = buf;
    return VKLLM_OK;
}

/* ---- Reading a buffer ---- */

static uint32_t read_wg(const vkr_device *dev)
{
    const vkr_features *ft = &dev->info.features;
    uint32_t wg = READ_WG;
    if (ft->max_workgroup_invocations && wg > ft->max_workgroup_invocations)
        wg = ft->max_workgroup_invocations;
    if (ft->max_workgroup_size[0] && wg > ft->max_workgroup_size[0])
        wg = ft->max_workgroup_size[0];
    return wg ? wg : 1;
}

/* Workgroups for reading n_vec4 vec4s with `per_thread` loads per invocation (raised if the device's workgroup
 * count limit needs it). */
static uint32_t read_groups(const vkr_device *dev, uint64_t n_vec4, uint32_t wg, uint32_t *per_thread)
{
    uint64_t maxg = dev->info.features.max_workgroup_count[0] ? dev->info.features.max_workgroup_count[0] : 65535;
    uint64_t pt = *per_thread ? *per_thread : 1;
    uint64_t groups = (n_vec4 + (uint64_t)wg * pt - 1) / ((uint64_t)wg * pt);
    if (groups > maxg) {
        pt = (n_vec4 + (uint64_t)wg * maxg - 1) / ((uint64_t)wg * maxg);
        groups = (n_vec4 + (uint64_t)wg * pt - 1) / ((uint64_t)wg * pt);
    }
    *per_thread = (uint32_t)pt;
    return groups ? (uint32_t)groups : 1;
}

/* A graph with one dispatch reading all of src; the per-workgroup sums go to *dst (created here). */
static vkllm_status read_graph(vkr_device *dev, vkr_buffer *src, uint32_t per_thread, vkr_graph **g_out,
                               vkr_buffer **dst_out)
{
    *g_out = NULL;
    *dst_out = NULL;
    uint64_t n_vec4 = src->size / 16;
    if (n_vec4 == 0 || n_vec4 > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "bench: cannot read a buffer of %llu bytes",
                         (unsigned long long)src->size);
    uint32_t wg = read_wg(dev);
    uint32_t groups = read_groups(dev, n_vec4, wg, &per_thread);
    vkr_pipeline_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.shader = "read_bandwidth";
    desc.n_buffers = 2;
    desc.push_size = 8;
    desc.local_size_x = wg;
    vkr_pipeline *p;
    vkllm_status st = vkr_pipeline_get(dev, &desc, &p);
    vkr_buffer *dst = NULL;
    vkr_graph *g = NULL;
    if (st == VKLLM_OK)
        st = vkr_buffer_create(dev, (uint64_t)groups * 4, VKR_MEMORY_DEVICE, &dst);
    if (st == VKLLM_OK)
        st = vkr_graph_create(dev, &g);
    if (st == VKLLM_OK) {
        vkr_dispatch d;
        memset(&d, 0, sizeof d);
        d.pipeline = p;
        d.n_bindings = 2;
        d.bindings[0] = (vkr_binding){src, 0, 0, false};
        d.bindings[1] = (vkr_binding){dst, 0, 0, true};
        d.push[0] = (uint32_t)n_vec4;
        d.push[1] = per_thread;
        d.groups[0] = groups;
        d.groups[1] = d.groups[2] = 1;
        d.name = "read_bandwidth";
        st = vkr_graph_add(g, &d);
    }
    if (st == VKLLM_OK)
        st = vkr_graph_record(g, dev->info.features.timestamps);
    if (st != VKLLM_OK) {
        vkr_graph_destroy(g);
        vkr_buffer_destroy(dev, dst);
        return st;
    }
    *g_out = g;
    *dst_out = dst;
    return VKLLM_OK;
}

/* Runs a recorded graph once; *ns = GPU time of dispatches [first, size) with timestamps, else the wall time
 * of the submit and wait. */
static vkllm_status time_graph(vkr_graph *g, uint32_t first, double *ns)
{
    bool gpu = vkr_graph_device(g)->info.features.timestamps;
    double t0 = now_ns();
    vkllm_status st = vkr_graph_submit(g);
    if (st == VKLLM_OK)
        st = vkr_graph_wait(g);
    double wall = now_ns() - t0;
    if (st != VKLLM_OK)
        return st;
    if (!gpu) {
        *ns = wall;
        return VKLLM_OK;
    }
    double t = 0;
    for (uint32_t i = first; i < vkr_graph_size(g); i++)
        t += vkr_graph_dispatch_ns(g, i);
    *ns = t;
    return VKLLM_OK;
}

vkllm_status vkl_bench_read_bandwidth(vkr_device *dev, vkr_buffer *buf, uint32_t runs, bench_bandwidth *out)
{
    memset(out, 0, sizeof *out);
    if (runs == 0)
        runs = 1;
    static const uint32_t per_thread[] = {1, 4, 16, 64};
    double best = INFINITY;
    vkllm_status st = VKLLM_OK;
    for (size_t c = 0; c < sizeof per_thread / sizeof per_thread[0] && st == VKLLM_OK; c++) {
        vkr_graph *g;
        vkr_buffer *dst;
        st = read_graph(dev, buf, per_thread[c], &g, &dst);
        for (uint32_t r = 0; r <= runs && st == VKLLM_OK; r++) {   /* run 0 is the warm-up */
            double ns = 0;
            st = time_graph(g, 0, &ns);
            if (st == VKLLM_OK && r > 0 && ns > 0 && ns < best)
                best = ns;
        }
        vkr_graph_destroy(g);
        vkr_buffer_destroy(dev, dst);
    }
    if (st != VKLLM_OK)
        return st;
    if (!isfinite(best))
        return vkr_error(VKLLM_ERR_VULKAN, "bench: the read kernel reported no time");
    out->bytes = buf->size;
    out->best_ns = best;
    out->gbps = (double)buf->size / best;
    out->runs = runs;
    out->gpu_timer = dev->info.features.timestamps;
    return VKLLM_OK;
}

/* ---- Matrix-vector products ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void skip(bench_matvec_result *out, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void skip(bench_matvec_result *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    out->skipped = true;
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

static bool out_of_memory(vkllm_status st)
{
    return st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY || st == VKLLM_ERR_OUT_OF_HOST_MEMORY;
}

/* Uploads an M x K weight made of one random row repeated. Out-of-memory leaves *skipped set, status OK. */
static vkllm_status make_weight(vkr_device *dev, uint32_t type, uint32_t m, uint32_t k, vk_tensor *w,
                                bench_matvec_result *out)
{
    uint64_t row_bytes = vkl_ggml_row_bytes(type, k);
    uint64_t total = row_bytes * m;
    float *row = malloc((size_t)k * sizeof *row);
    uint8_t *data = malloc((size_t)total);
    if (!row || !data) {
        free(row);
        free(data);
        skip(out, "needs %.0f MiB of host memory for the upload", total / (double)MIB);
        return VKLLM_OK;
    }
    uint64_t s = 0x5EEDull + type;
    float scale = 1.0f / sqrtf((float)k);
    for (uint32_t i = 0; i < k; i++)
        row[i] = rand_unit(&s) * scale;
    if (vkl_ggml_type_can_quantize(type)) {
        vkl_quantize_row(type, row, data, k);
    } else {
        /* the IQ grid types have no quantizer: random bytes (every grid index and sign pattern), each block's
         * scale set for the row's deviation, as synth makes them; all-zero blocks would read one grid entry */
        uint32_t bb = vkl_ggml_block_bytes(type);
        for (uint64_t i = 0; i < row_bytes; i += 8) {
            uint64_t b = splitmix64(&s);
            memcpy(data + i, &b, row_bytes - i < 8 ? (size_t)(row_bytes - i) : 8);
        }
        for (uint64_t off = 0; off + bb <= row_bytes; off += bb)
            vkl_ggml_block_set_rms(type, data + off, scale / sqrtf(3.0f));
    }
    for (uint32_t r = 1; r < m; r++)
        memcpy(data + (uint64_t)r * row_bytes, data, (size_t)row_bytes);
    free(row);
    vkllm_status st = vkl_tensor_upload(dev, type, k, m, data, w);
    free(data);
    if (out_of_memory(st)) {
        skip(out, "does not fit (%.0f MiB): %s", total / (double)MIB, vkr_last_error());
        return VKLLM_OK;
    }
    return st;
}

vkllm_status vkl_bench_matvec(vkr_device *dev, uint32_t type, uint32_t m, uint32_t k, uint32_t runs, vkr_buffer *flush,
                          bench_matvec_result *out)
{
    memset(out, 0, sizeof *out);
    if (runs == 0)
        runs = 1;
    uint32_t block = vkl_ggml_block_size(type);
    if (block == 0 || m == 0 || k == 0 || k % block)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "bench: cannot make a %s weight of %u x %u",
                         vkl_ggml_type_name(type) ? vkl_ggml_type_name(type) : "?", m, k);
    out->weight_bytes = vkl_ggml_row_bytes(type, k) * m;
    out->gpu_timer = dev->info.features.timestamps;
    if (!vkl_op_weight_type_supported(type)) {
        skip(out, "no kernels for %s yet", vkl_ggml_type_name(type));
        return VKLLM_OK;
    }

    /* Shapes that cannot fit are skipped before any memory is taken. The device layout is the GGUF size
     * give or take the padding between the quants and the scales. */
    const vkr_features *ft = &dev->info.features;
    uint64_t need = out->weight_bytes + 4096;
    if (ft->max_memory_allocation_size && need > ft->max_memory_allocation_size) {
        skip(out, "%.0f MiB is over maxMemoryAllocationSize (%.0f MiB)", need / (double)MIB,
             ft->max_memory_allocation_size / (double)MIB);
        return VKLLM_OK;
    }
    uint64_t heap = 0;
    for (uint32_t i = 0; i < dev->info.n_heaps; i++)
        if (dev->info.heaps[i].device_local && dev->info.heaps[i].size > heap)
            heap = dev->info.heaps[i].size;
    uint64_t used = vkr_memory_allocated(dev);
    if (heap && need + used > heap) {
        skip(out, "%.0f MiB does not fit the device-local heap (%.0f MiB, %.0f MiB in use)", need / (double)MIB,
             heap / (double)MIB, used / (double)MIB);
        return VKLLM_OK;
    }

    vk_tensor w;
    memset(&w, 0, sizeof w);
    vkr_buffer *x = NULL, *y = NULL, *fdst = NULL;
    vkr_graph *g = NULL, *fg = NULL;
    double *times = calloc(runs, sizeof *times);
    vkllm_status st = times ? VKLLM_OK : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == VKLLM_OK)
        st = make_weight(dev, type, m, k, &w, out);
    if (st == VKLLM_OK && !out->skipped) {
        st = vkr_buffer_create(dev, (uint64_t)k * 4, VKR_MEMORY_DEVICE, &x);
        if (st == VKLLM_OK)
            st = vkr_buffer_create(dev, (uint64_t)m * 4, VKR_MEMORY_DEVICE, &y);
        if (out_of_memory(st)) {
            skip(out, "does not fit (%.0f MiB): %s", out->weight_bytes / (double)MIB, vkr_last_error());
            st = VKLLM_OK;
        }
    }
    if (st == VKLLM_OK && !out->skipped) {
        float *xs = malloc((size_t)k * sizeof *xs);
        uint64_t s = 0xF00Dull;
        if (!xs)
            st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint32_t i = 0; xs && i < k; i++)
            xs[i] = rand_unit(&s);
        if (st == VKLLM_OK)
            st = vkr_buffer_upload(dev, x, 0, xs, (size_t)k * sizeof *xs);
        free(xs);
        if (st == VKLLM_OK)
            st = vkr_graph_create(dev, &g);
        if (st == VKLLM_OK)
            st = vkl_op_matmul(g, &w, vk_view_of(x, 0), vk_view_of(y, 0), 1);
        if (st == VKLLM_OK)
            st = vkr_graph_record(g, ft->timestamps);
        if (st == VKLLM_OK && flush)
            st = read_graph(dev, flush, 4, &fg, &fdst);
        double ns;
        if (st == VKLLM_OK)
            st = time_graph(g, 0, &ns);   /* warm-up */
        for (uint32_t r = 0; r < runs && st == VKLLM_OK; r++) {
            if (fg)
                st = vkr_graph_run(fg);
            if (st == VKLLM_OK)
                st = time_graph(g, 0, &times[r]);
        }
    }
    if (st == VKLLM_OK && !out->skipped) {
        qsort(times, runs, sizeof *times, cmp_double);
        out->min_ns = times[0];
        out->median_ns = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
    }
    vkr_graph_destroy(fg);
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, fdst);
    vkr_buffer_destroy(dev, x);
    vkr_buffer_destroy(dev, y);
    vkl_tensor_free(dev, &w);
    free(times);
    return st;
}

/* ---- Models ---- */

uint64_t vkl_bench_gguf_bytes_per_token(const gguf_file *f)
{
    uint64_t b = 0;
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
        b += vkl_gguf_tensor_at(f, i)->nbytes;
    const gguf_tensor *emb = vkl_gguf_find_tensor(f, "token_embd.weight");
    if (emb && vkl_gguf_find_tensor(f, "output.weight") && emb->ne[1])
        b -= emb->nbytes - emb->nbytes / emb->ne[1];
    return b;
}
