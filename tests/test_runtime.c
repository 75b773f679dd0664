/* The Vulkan layer on its own: transfers of every size, fills, the graph executor's barriers and replay,
 * split graphs (segments submitted in groups sized by their measured times), bindings over
 * maxStorageBufferRange, the memory limit, constant buffers, and the on-disk pipeline cache. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/graph.h"
#include "util.h"

typedef struct scale_push {
    uint32_t n;
    float a, b;
} scale_push;

static vkllm_status add_scale(vkr_graph *g, vkr_pipeline *pl, vkr_buffer *x, VkDeviceSize xoff, vkr_buffer *y,
                              VkDeviceSize yoff, uint32_t n, float a, float b)
{
    vkr_dispatch d = {.pipeline = pl, .n_bindings = 2, .name = "scale_add"};
    d.bindings[0] = (vkr_binding){x, xoff, (VkDeviceSize)n * 4, false};
    d.bindings[1] = (vkr_binding){y, yoff, (VkDeviceSize)n * 4, true};
    scale_push p = {n, a, b};
    memcpy(d.push, &p, sizeof p);
    uint32_t groups = (n + 63) / 64;
    d.groups[0] = groups < 65535 ? groups : 65535;
    d.groups[1] = (groups + 65534) / 65535;
    d.groups[2] = 1;
    return vkr_graph_add(g, &d);
}

static void test_transfers(vkr_device *dev, test_rng *rng)
{
    /* Sizes around and past the staging slots (32 MiB each, two of them). */
    const size_t sizes[] = {4, 1000, (32u << 20) - 4, (32u << 20) + 4, (70u << 20) + 12};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        uint8_t *src = malloc(n), *dst = malloc(n);
        for (size_t i = 0; i < n; i++)
            src[i] = (uint8_t)rng_u32(rng);
        vkr_buffer *buf;
        vkllm_status st = vkr_buffer_create(dev, n + 256, VKR_MEMORY_DEVICE, &buf);
        CHECK(st == VKLLM_OK, "buffer_create(%zu): %s", n, vkr_last_error());
        if (st == VKLLM_OK) {
            CHECK(vkr_buffer_upload(dev, buf, 256, src, n) == VKLLM_OK, "upload: %s", vkr_last_error());
            memset(dst, 0, n);
            CHECK(vkr_buffer_download(dev, buf, 256, dst, n) == VKLLM_OK, "download: %s", vkr_last_error());
            CHECK(memcmp(src, dst, n) == 0, "round trip of %zu bytes differs", n);
            CHECK(vkr_buffer_upload(dev, buf, 1, src, n + 256) == VKLLM_ERR_INVALID_ARGUMENT,
                  "upload past the end must fail");
            vkr_buffer_destroy(dev, buf);
        }
        free(src);
        free(dst);
    }
    vkr_buffer *buf;
    if (vkr_buffer_create(dev, 4096, VKR_MEMORY_DEVICE, &buf) == VKLLM_OK) {
        uint32_t out[1024];
        CHECK(vkr_buffer_fill(dev, buf, 0, 4096, 0x7fc00000u) == VKLLM_OK, "fill: %s", vkr_last_error());
        CHECK(vkr_buffer_fill(dev, buf, 1024, 1024, 0x12345678u) == VKLLM_OK, "fill: %s", vkr_last_error());
        vkr_buffer_download(dev, buf, 0, out, sizeof out);
        int bad = 0;
        for (int i = 0; i < 1024; i++)
            bad += out[i] != ((i >= 256 && i < 512) ? 0x12345678u : 0x7fc00000u);
        CHECK(bad == 0, "fill pattern wrong in %d words", bad);
        vkr_buffer_destroy(dev, buf);
    }
}

static void test_graph(vkr_device *dev, test_rng *rng)
{
    vkr_pipeline *pl;
    vkr_pipeline_desc desc = {.shader = "scale_add", .n_buffers = 2, .push_size = sizeof(scale_push), .local_size_x = 64};
    vkllm_status st = vkr_pipeline_get(dev, &desc, &pl);
    CHECK(st == VKLLM_OK, "pipeline: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    vkr_pipeline *again;
    CHECK(vkr_pipeline_get(dev, &desc, &again) == VKLLM_OK && again == pl, "pipelines are not cached");
    vkr_pipeline_desc bad_desc = desc;
    bad_desc.shader = "no_such_shader";
    CHECK(vkr_pipeline_get(dev, &bad_desc, &again) == VKLLM_ERR_INVALID_ARGUMENT, "unknown shader must fail");

    const uint32_t n = 1000; /* not a multiple of the workgroup size */
    float *x = malloc(n * 4), *out = malloc(n * 4);
    rng_fill(rng, x, n, -1, 1);
    vkr_buffer *bx, *by, *bz, *bw;
    vkr_buffer_create(dev, n * 4, VKR_MEMORY_DEVICE, &bx);
    vkr_buffer_create(dev, n * 4, VKR_MEMORY_DEVICE, &by);
    vkr_buffer_create(dev, n * 4, VKR_MEMORY_DEVICE, &bz);
    vkr_buffer_create(dev, n * 4, VKR_MEMORY_HOST, &bw);
    CHECK(bw->mapped != NULL, "host buffers are mapped");
    vkr_buffer_upload(dev, bx, 0, x, n * 4);
    vkr_buffer_fill(dev, bz, 0, n * 4, 0x7fc00000u);

    vkr_graph *g;
    CHECK(vkr_graph_create(dev, &g) == VKLLM_OK, "graph: %s", vkr_last_error());
    /* y = 2x+1 and w = 3x are independent; z = y-1 depends on y. Expect exactly one barrier. */
    add_scale(g, pl, bx, 0, by, 0, n, 2.0f, 1.0f);
    add_scale(g, pl, bx, 0, bw, 0, n, 3.0f, 0.0f);
    add_scale(g, pl, by, 0, bz, 0, n, 1.0f, -1.0f);
    st = vkr_graph_record(g, true);
    CHECK(st == VKLLM_OK, "record: %s", vkr_last_error());
    CHECK(vkr_graph_barrier_count(g) == 1, "expected 1 barrier, got %u", vkr_graph_barrier_count(g));
    CHECK(vkr_graph_run(g) == VKLLM_OK, "run: %s", vkr_last_error());
    vkr_buffer_download(dev, bz, 0, out, n * 4);
    int bad = 0;
    for (uint32_t i = 0; i < n; i++)
        bad += fabsf(out[i] - 2.0f * x[i]) > 1e-6f;
    CHECK(bad == 0, "z = 2x wrong in %d elements", bad);
    const float *w = bw->mapped;
    bad = 0;
    for (uint32_t i = 0; i < n; i++)
        bad += fabsf(w[i] - 3.0f * x[i]) > 1e-6f;
    CHECK(bad == 0, "host-visible w = 3x wrong in %d elements", bad);
    if (dev->info.features.timestamps)
        CHECK(vkr_graph_dispatch_ns(g, 0) >= 0.0 && !strcmp(vkr_graph_dispatch_name(g, 2), "scale_add"),
              "timings");

    /* Replay without re-recording: new input, same command buffer. */
    for (uint32_t i = 0; i < n; i++)
        x[i] = (float)i;
    vkr_buffer_upload(dev, bx, 0, x, n * 4);
    CHECK(vkr_graph_submit(g) == VKLLM_OK && vkr_graph_wait(g) == VKLLM_OK, "replay: %s", vkr_last_error());
    vkr_buffer_download(dev, bz, 0, out, n * 4);
    bad = 0;
    for (uint32_t i = 0; i < n; i++)
        bad += out[i] != 2.0f * i;
    CHECK(bad == 0, "replayed result wrong in %d elements", bad);

    /* Write-after-read: x is read by the first op and written by the second -> a barrier. */
    vkr_graph_clear(g);
    add_scale(g, pl, bx, 0, by, 0, n, 1.0f, 0.0f);
    add_scale(g, pl, bz, 0, bx, 0, n, 1.0f, 0.0f);
    vkr_graph_record(g, false);
    CHECK(vkr_graph_barrier_count(g) == 1, "write-after-read needs a barrier (got %u)", vkr_graph_barrier_count(g));
    /* Disjoint halves of one buffer need none. */
    vkr_graph_clear(g);
    VkDeviceSize half = 512 * 4; /* aligned for any minStorageBufferOffsetAlignment <= 2048 */
    add_scale(g, pl, bx, 0, by, 0, 512, 1.0f, 0.0f);
    add_scale(g, pl, bx, 0, by, half, n - 512, 1.0f, 0.0f);
    vkr_graph_record(g, false);
    CHECK(vkr_graph_barrier_count(g) == 0, "disjoint writes need no barrier (got %u)", vkr_graph_barrier_count(g));
    CHECK(vkr_graph_run(g) == VKLLM_OK, "run: %s", vkr_last_error());

    /* Copies order like dispatches: host-visible w copied into z, then y = 2z (one barrier, transfer to
     * compute); x = y copied back (compute to transfer: one more). Replayed after the host rewrites w. */
    for (int rep = 0; rep < 2; rep++) {
        float *hw = bw->mapped;
        for (uint32_t i = 0; i < n; i++)
            hw[i] = (float)(i % 97) - (rep ? 7.0f : 0.0f);
        if (rep == 0) {
            vkr_graph_clear(g);
            CHECK(vkr_graph_add_copy(g, bw, 0, bz, 0, n * 4) == VKLLM_OK, "copy: %s", vkr_last_error());
            add_scale(g, pl, bz, 0, by, 0, n, 2.0f, 0.0f);
            CHECK(vkr_graph_add_copy(g, by, 0, bx, 0, n * 4) == VKLLM_OK, "copy: %s", vkr_last_error());
            CHECK(vkr_graph_record(g, true) == VKLLM_OK, "record: %s", vkr_last_error());
            CHECK(vkr_graph_barrier_count(g) == 2 && vkr_graph_copy_count(g) == 2 && vkr_graph_size(g) == 3,
                  "copies: %u barriers, %u copies, %u ops", vkr_graph_barrier_count(g), vkr_graph_copy_count(g),
                  vkr_graph_size(g));
            CHECK(!strcmp(vkr_graph_dispatch_name(g, 0), "copy"), "a copy's name");
        }
        CHECK(vkr_graph_submit(g) == VKLLM_OK && vkr_graph_wait(g) == VKLLM_OK, "copies run: %s", vkr_last_error());
        vkr_buffer_download(dev, bx, 0, out, n * 4);
        bad = 0;
        for (uint32_t i = 0; i < n; i++)
            bad += out[i] != 2.0f * hw[i];
        CHECK(bad == 0, "copy, scale, copy (replay %d) wrong in %d elements", rep, bad);
    }
    CHECK(vkr_graph_add_copy(g, bx, 0, bx, 16, 64) == VKLLM_ERR_INVALID_ARGUMENT &&
              vkr_graph_add_copy(g, bx, 0, by, 8, n * 4) == VKLLM_ERR_INVALID_ARGUMENT,
          "overlapping or out-of-range copies are refused");

    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, bx);
    vkr_buffer_destroy(dev, by);
    vkr_buffer_destroy(dev, bz);
    vkr_buffer_destroy(dev, bw);
    free(x);
    free(out);
}

/* Runs g (a chain adding 1 to x SPLIT_STEPS times) from x = i and checks the result and the number of
 * submissions (0: not checked); poll: completed by vkr_graph_poll, which must take one call per submission. */
#define SPLIT_STEPS 7
static void check_split_run(vkr_device *dev, vkr_graph *g, vkr_buffer *bx, vkr_buffer *bres, uint32_t n,
                            uint32_t submits, bool poll, const char *what)
{
    float *x = malloc(n * 4);
    for (uint32_t i = 0; i < n; i++)
        x[i] = (float)i;
    vkr_buffer_upload(dev, bx, 0, x, n * 4);
    vkllm_status st = vkr_graph_submit(g);
    uint32_t polls = 0;
    for (bool done = false; st == VKLLM_OK && poll && !done; polls++)
        st = vkr_graph_poll(g, 60000000000ull, &done);
    if (st == VKLLM_OK && !poll)
        st = vkr_graph_wait(g);
    CHECK(st == VKLLM_OK, "%s: %s", what, vkr_last_error());
    CHECK(!submits || vkr_graph_run_submits(g) == submits, "%s: %u submissions, not %u", what,
          vkr_graph_run_submits(g), submits);
    CHECK(!poll || polls == vkr_graph_run_submits(g), "%s: %u polls for %u submissions", what, polls,
          vkr_graph_run_submits(g));
    vkr_buffer_download(dev, bres, 0, x, n * 4);
    int bad = 0;
    for (uint32_t i = 0; i < n; i++)
        bad += x[i] != (float)i + SPLIT_STEPS;
    CHECK(bad == 0, "%s: wrong in %d elements", what, bad);
    free(x);
}

/* A split run (one submission per segment) stopped by its callback before its third submission, waited or
 * polled: VKLLM_ERR_CANCELLED after two submissions and nothing pending; the callback asked once per later
 * submission of the next, whole run. */
static void check_split_stop(vkr_device *dev, vkr_graph *g, vkr_buffer *bx, vkr_buffer *bres, uint32_t n, bool poll)
{
    const char *what = poll ? "stopped, polled" : "stopped, waited";
    test_call_counter sc = {.true_at = 2};
    vkr_graph_set_stop(g, test_count_call, &sc);
    vkllm_status st = vkr_graph_submit(g);
    for (bool done = false; st == VKLLM_OK && poll && !done;)
        st = vkr_graph_poll(g, 60000000000ull, &done);
    if (st == VKLLM_OK && !poll)
        st = vkr_graph_wait(g);
    CHECK(st == VKLLM_ERR_CANCELLED, "%s: %s", what, st ? vkr_last_error() : "not cancelled");
    CHECK(sc.calls == 2 && vkr_graph_run_submits(g) == 2, "%s: asked %u times, %u submissions", what, sc.calls,
          vkr_graph_run_submits(g));
    bool done = false;
    CHECK(vkr_graph_poll(g, 0, &done) == VKLLM_OK && done, "%s: something left pending", what);
    sc = (test_call_counter){0};
    check_split_run(dev, g, bx, bres, n, SPLIT_STEPS, poll, what);
    CHECK(sc.calls == SPLIT_STEPS - 1, "%s: the next run asked %u times", what, sc.calls);
    vkr_graph_set_stop(g, NULL, NULL);
}

/* A chain of dependent dispatches with a segment mark after each (and marks that must be ignored: before
 * the first, twice, after the last), split into submissions. */
static void test_graph_split(vkr_device *dev)
{
    if (!dev->info.features.timestamps) {
        printf("note: no timestamps: the split graph runs as one submission, not tested\n");
        return;
    }
    vkr_pipeline *pl;
    vkr_pipeline_desc desc = {.shader = "scale_add", .n_buffers = 2, .push_size = sizeof(scale_push), .local_size_x = 64};
    if (vkr_pipeline_get(dev, &desc, &pl) != VKLLM_OK)
        return;
    const uint32_t n = 4096;
    vkr_buffer *b[2];
    vkr_buffer_create(dev, n * 4, VKR_MEMORY_DEVICE, &b[0]);
    vkr_buffer_create(dev, n * 4, VKR_MEMORY_DEVICE, &b[1]);
    vkr_graph *g;
    vkr_graph_create(dev, &g);
    vkr_graph_mark_segment(g);
    for (int i = 0; i < SPLIT_STEPS; i++) {
        add_scale(g, pl, b[i % 2], 0, b[(i + 1) % 2], 0, n, 1.0f, 1.0f);
        vkr_graph_mark_segment(g);
        if (i == 2)
            vkr_graph_mark_segment(g);
    }
    vkr_buffer *res = b[SPLIT_STEPS % 2];
    CHECK(vkr_graph_record(g, true) == VKLLM_OK && vkr_graph_segments(g) == 1, "not split: one segment");
    check_split_run(dev, g, b[0], res, n, 1, false, "not split");
    /* A target no segment fits: each alone; the first run measures them (each alone too). */
    vkr_graph_set_split(g, 1.0);
    CHECK(vkr_graph_record(g, true) == VKLLM_OK, "record: %s", vkr_last_error());
    CHECK(vkr_graph_segments(g) == SPLIT_STEPS, "%u segments, not %d", vkr_graph_segments(g), SPLIT_STEPS);
    check_split_run(dev, g, b[0], res, n, SPLIT_STEPS, false, "first split run");
    check_split_run(dev, g, b[0], res, n, SPLIT_STEPS, true, "split, polled");
    check_split_stop(dev, g, b[0], res, n, false);
    check_split_stop(dev, g, b[0], res, n, true);
    CHECK(vkr_graph_longest_submit_ns(g) > 0, "the longest submission was measured");
    /* A target they all fit, once measured: one submission again, without recording anew. */
    vkr_graph_set_split(g, 1e12);
    check_split_run(dev, g, b[0], res, n, 1, true, "split, all fit");
    /* Without timestamps a split graph is one submission. */
    vkr_graph_set_split(g, 1.0);
    CHECK(vkr_graph_record(g, false) == VKLLM_OK, "record: %s", vkr_last_error());
    check_split_run(dev, g, b[0], res, n, 1, false, "split without timestamps");
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, b[0]);
    vkr_buffer_destroy(dev, b[1]);
}

/* A buffer larger than maxStorageBufferRange, processed through two bindings of sub-ranges. */
static void test_large_buffer(vkr_device *dev)
{
    const vkr_features *ft = &dev->info.features;
    uint64_t range = ft->max_storage_buffer_range;
    if (range > (512ull << 20)) {
        fprintf(stderr, "note: maxStorageBufferRange is %llu MiB; the large-buffer case is exercised on lavapipe\n",
                (unsigned long long)(range >> 20));
        return;
    }
    uint64_t n = range / 4 + range / 8; /* 1.5x the range, in floats */
    vkr_pipeline *pl;
    vkr_pipeline_desc desc = {.shader = "scale_add", .n_buffers = 2, .push_size = sizeof(scale_push), .local_size_x = 64};
    if (vkr_pipeline_get(dev, &desc, &pl) != VKLLM_OK)
        return;
    vkr_buffer *buf;
    vkllm_status st = vkr_buffer_create(dev, n * 4, VKR_MEMORY_DEVICE, &buf);
    CHECK(st == VKLLM_OK, "large buffer: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    float *host = malloc(n * 4);
    for (uint64_t i = 0; i < n; i++)
        host[i] = (float)(i % 1000);
    vkr_buffer_upload(dev, buf, 0, host, n * 4);
    vkr_graph *g;
    vkr_graph_create(dev, &g);
    /* Binding the whole buffer must be refused ... */
    vkr_dispatch d = {.pipeline = pl, .n_bindings = 2, .groups = {1, 1, 1}};
    d.bindings[0] = (vkr_binding){buf, 0, 0, false};
    d.bindings[1] = (vkr_binding){buf, 0, 0, true};
    CHECK(vkr_graph_add(g, &d) == VKLLM_ERR_INVALID_ARGUMENT, "binding over maxStorageBufferRange must be refused");
    /* ... two halves work, in place. */
    uint64_t first = n / 2 / 64 * 64;
    add_scale(g, pl, buf, 0, buf, 0, (uint32_t)first, 2.0f, 0.0f);
    add_scale(g, pl, buf, first * 4, buf, first * 4, (uint32_t)(n - first), 2.0f, 0.0f);
    CHECK(vkr_graph_run(g) == VKLLM_OK, "run: %s", vkr_last_error());
    vkr_buffer_download(dev, buf, 0, host, n * 4);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++)
        bad += host[i] != 2.0f * (float)(i % 1000);
    CHECK(bad == 0, "large buffer wrong in %llu elements", (unsigned long long)bad);
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, buf);
    free(host);
}

/* A second device with a 100 MiB memory limit, or NULL (the failure counted). */
static vkr_device *limited_device(test_device *t)
{
    vkr_device *dev = NULL;
    vkr_device_options o = {.memory_limit = 100ull << 20};
    vkllm_status st = vkr_device_create(t->inst, &o, &dev);
    CHECK(st == VKLLM_OK, "device with a memory limit: %s", vkr_last_error());
    return st == VKLLM_OK ? dev : NULL;
}

static void test_memory_limit(test_device *t)
{
    vkr_device *dev = limited_device(t);
    if (!dev)
        return;
    vkr_buffer *a, *b;
    CHECK(vkr_buffer_create(dev, 16u << 20, VKR_MEMORY_DEVICE, &a) == VKLLM_OK, "16 MiB under a 100 MiB limit");
    vkllm_status st = vkr_buffer_create(dev, 200u << 20, VKR_MEMORY_DEVICE, &b);
    CHECK(st == VKLLM_ERR_OUT_OF_DEVICE_MEMORY, "200 MiB over a 100 MiB limit must fail (got %d)", st);
    CHECK(strstr(vkr_last_error(), "out of device memory") != NULL, "message: %s", vkr_last_error());
    uint64_t before = vkr_memory_allocated(dev);
    vkr_buffer_destroy(dev, a);
    CHECK(vkr_memory_allocated(dev) < before, "freeing returns memory");
    uint64_t too_big = dev->info.features.max_memory_allocation_size + 1;
    CHECK(vkr_buffer_create(dev, too_big, VKR_MEMORY_DEVICE, &b) == VKLLM_ERR_OUT_OF_DEVICE_MEMORY,
          "a buffer over maxMemoryAllocationSize must fail");
    vkr_device_destroy(dev);
}

/* Constant buffers (vkr_constant_acquire): one device copy per data pointer, shared by its users, freed with the
 * last reference (under a memory limit blocks are sized exactly, so that shows in the allocated bytes); more
 * distinct tables than a device keeps are refused with a message. */
static void test_constants(test_device *t)
{
    static const uint32_t table_a[300] = {1, 2, 3, 0xdeadbeefu}, table_b[5] = {7, 8, 9, 10, 11};
    static const uint32_t many[17][4];   /* 17 distinct tables */
    vkr_device *dev = limited_device(t);
    if (!dev)
        return;
    vkllm_status st;
    const uint64_t base = vkr_memory_allocated(dev);
    vkr_buffer *a1 = NULL, *a2 = NULL, *b1 = NULL;
    CHECK(vkr_constant_acquire(dev, table_a, sizeof table_a, &a1) == VKLLM_OK &&
              vkr_constant_acquire(dev, table_a, sizeof table_a, &a2) == VKLLM_OK &&
              vkr_constant_acquire(dev, table_b, sizeof table_b, &b1) == VKLLM_OK,
          "constant buffers: %s", vkr_last_error());
    CHECK(a1 && a1 == a2 && b1 && b1 != a1, "one buffer per table: %p %p %p", (void *)a1, (void *)a2, (void *)b1);
    uint32_t got[300];
    CHECK(a1 && vkr_buffer_download(dev, a1, 0, got, sizeof got) == VKLLM_OK && !memcmp(got, table_a, sizeof got),
          "a constant buffer holds its table");
    vkr_constant_release(dev, a1);
    vkr_constant_release(dev, b1);
    CHECK(vkr_memory_allocated(dev) > base, "a constant buffer with a reference left was freed");
    vkr_constant_release(dev, a2);
    CHECK(vkr_memory_allocated(dev) == base, "the last release left %llu bytes (base %llu)",
          (unsigned long long)vkr_memory_allocated(dev), (unsigned long long)base);
    vkr_buffer *m[17];
    uint32_t n = 0;
    while (n < 17 && (st = vkr_constant_acquire(dev, many[n], sizeof many[n], &m[n])) == VKLLM_OK)
        n++;
    CHECK(n < 17 && st == VKLLM_ERR_UNSUPPORTED && strstr(vkr_last_error(), "constant buffers"),
          "17 tables: %u taken, status %d (%s)", n, st, vkr_last_error());
    while (n > 0)
        vkr_constant_release(dev, m[--n]);
    CHECK(vkr_memory_allocated(dev) == base, "constant buffers left %llu bytes",
          (unsigned long long)vkr_memory_allocated(dev));
    vkr_device_destroy(dev);
}

/* The validation layer is live and its messages are counted: a buffer of size 0 is invalid usage. */
static void test_validation_is_live(vkr_device *dev)
{
    uint32_t before = vkr_validation_message_count();
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = 0,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
    };
    VkBuffer b = VK_NULL_HANDLE;
    if (vkCreateBuffer(dev->device, &bci, NULL, &b) == VK_SUCCESS && b)
        vkDestroyBuffer(dev->device, b, NULL);
    uint32_t seen = vkr_validation_message_count() - before;
    CHECK(seen >= 1, "the validation layer did not report an invalid vkCreateBuffer");
    test_expected_validation_messages += seen;
}

int main(void)
{
    char cache_dir[512];
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(cache_dir, sizeof cache_dir, "%s/pipeline-cache-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    setenv("VKLLM_CACHE_DIR", cache_dir, 1);

    test_rng rng;
    rng_init(&rng, test_seed());
    test_device t;
    if (!test_device_open(&t))
        return 1;
    const vkr_features *ft = &t.dev->info.features;
    CHECK(ft->max_storage_buffer_range >= (1u << 27), "maxStorageBufferRange %llu",
          (unsigned long long)ft->max_storage_buffer_range);
    CHECK(ft->subgroup_size >= 1 && ft->max_workgroup_invocations >= 128, "limits look sane");
    test_transfers(t.dev, &rng);
    test_graph(t.dev, &rng);
    test_graph_split(t.dev);
    test_large_buffer(t.dev);
    test_memory_limit(&t);
    test_constants(&t);
    test_validation_is_live(t.dev);
    test_device_close(&t);

    /* The pipeline cache was written on device destruction. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s/pipelines-*.bin >/dev/null 2>&1", cache_dir);
    CHECK(system(cmd) == 0, "no pipeline cache file in %s", cache_dir);
    snprintf(cmd, sizeof cmd, "rm -rf %s", cache_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", cache_dir);
    return test_finish("runtime");
}
