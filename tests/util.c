#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/format/gguf.h"
#include "host/text/tokenizer.h"
#include "ref/ref_ops.h"

int test_failures = 0;
uint32_t test_expected_validation_messages = 0;
/* Unexpected validation messages already counted as a failure (test_device_close, test_finish). */
static uint32_t reported_validation_messages = 0;

uint64_t test_seed(void)
{
    static bool have = false;
    static uint64_t seed;
    if (!have) {
        const char *env = getenv("VKLLM_TEST_SEED");
        if (env && *env) {
            seed = strtoull(env, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
        }
        have = true;
        fprintf(stderr, "seed: %llu (replay with VKLLM_TEST_SEED=%llu)\n", (unsigned long long)seed,
                (unsigned long long)seed);
    }
    return seed;
}

void rng_init(test_rng *r, uint64_t seed) { r->s = seed ? seed : 0x9e3779b97f4a7c15ull; }

uint32_t rng_u32(test_rng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

float rng_uniform(test_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_u32(r) >> 8) * (1.0 / 16777216.0));
}

float rng_normal(test_rng *r)
{
    double u1 = ((rng_u32(r) >> 8) + 1.0) / 16777217.0;
    double u2 = (rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void rng_fill(test_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_uniform(r, lo, hi);
}

double rel_l2(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        if (!isfinite(a[i]))
            return INFINITY;
        num += d * d;
        den += (double)ref[i] * (double)ref[i];
    }
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1e-15);
}

long first_nonfinite(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return (long)i;
    return -1;
}

bool test_device_open(test_device *t)
{
    memset(t, 0, sizeof *t);
    vkr_instance_options io = {0};
    io.validation = true;
    vkllm_status st = vkr_instance_create(&io, &t->inst);
    if (st != VKLLM_OK) {
        fprintf(stderr, "FAIL: cannot create a Vulkan instance: %s\n", vkr_last_error());
        return false;
    }
    vkr_device_options dopts = {0};
    st = vkr_device_create(t->inst, &dopts, &t->dev);
    if (st != VKLLM_OK) {
        fprintf(stderr, "FAIL: cannot create a Vulkan device: %s\n", vkr_last_error());
        vkr_instance_destroy(t->inst);
        t->inst = NULL;
        return false;
    }
    fprintf(stderr, "device: %s (%s)\n", t->dev->info.name, t->dev->info.driver_info);
    return true;
}

bool test_device_close(test_device *t)
{
    if (t->dev)
        vkr_device_destroy(t->dev);
    if (t->inst)
        vkr_instance_destroy(t->inst);
    t->dev = NULL;
    t->inst = NULL;
    uint32_t n = vkr_validation_message_count() - test_expected_validation_messages;
    if (n > reported_validation_messages) {
        fprintf(stderr, "FAIL: %u validation message(s)\n", n - reported_validation_messages);
        reported_validation_messages = n;
        test_failures++;
        return false;
    }
    return true;
}

bool test_op_begin(test_device *td, test_rng *rng)
{
    rng_init(rng, test_seed());
    return test_device_open(td);
}

void test_each_reduction_variant(vkr_device *dev, test_rng *rng, void (*run)(vkr_device *dev, test_rng *rng))
{
    const bool has_subgroup = dev->info.features.subgroup_arithmetic;
    for (int sg = has_subgroup; sg >= 0; sg--) {
        fprintf(stderr, "variant: %s\n", sg ? "subgroup" : "shared memory");
        dev->info.features.subgroup_arithmetic = sg;
        run(dev, rng);
    }
    dev->info.features.subgroup_arithmetic = has_subgroup;
}

int test_reduction_op_main(const char *name, void (*run_all)(vkr_device *dev, test_rng *rng),
                           void (*argument_errors)(vkr_graph *g, vkr_buffer *b))
{
    test_rng rng;
    test_device td;
    if (!test_op_begin(&td, &rng))
        return 1;
    test_each_reduction_variant(td.dev, &rng, run_all);
    test_op_errors(td.dev, 4096, argument_errors);
    test_device_close(&td);
    return test_finish(name);
}

bool test_op_run(vkr_graph *g, vkllm_status recorded, const char *op)
{
    CHECK(recorded == VKLLM_OK, "%s: %s", op, vkr_last_error());
    if (recorded != VKLLM_OK)
        return false;
    vkllm_status st = vkr_graph_run(g);
    CHECK(st == VKLLM_OK, "graph run: %s", vkr_last_error());
    return st == VKLLM_OK;
}

void test_op_errors(vkr_device *dev, size_t bytes, void (*checks)(vkr_graph *g, vkr_buffer *b))
{
    vkr_graph *g = NULL;
    vkr_buffer *b = opt_buffer(dev, bytes);
    if (b && vkr_graph_create(dev, &g) == VKLLM_OK)
        checks(g, b);
    else
        CHECK(false, "setup failed: %s", vkr_last_error());
    vkr_graph_destroy(g);
    vkr_buffer_destroy(dev, b);
}

const char *test_shared_path(const char *rel)
{
    static char path[4096];
    const char *dir = getenv("VKLLM_SHARED");
    if (!dir || !*dir)
        dir = "../shared";
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (access(path, R_OK) != 0)
        return NULL;
    return path;
}

struct tokenizer *test_load_tokenizer(const char *path)
{
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "open %s: %s", path, vkr_last_error());
    if (st)
        return NULL;
    tokenizer *tok = NULL;
    st = vkl_tokenizer_load(f, &tok);
    vkl_gguf_close(f); /* the tokenizer owns its copies */
    CHECK(st == VKLLM_OK, "load %s: %s", path, vkr_last_error());
    return st ? NULL : tok;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

void test_print_escaped(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n && i < 400; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", out);
        else if (c == '\r')
            fputs("\\r", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7F)
            fprintf(out, "\\x%02X", c);
        else
            fputc(c, out);
    }
    if (n > 400)
        fprintf(out, "...(%zu bytes)", n);
    fputc('"', out);
}

void test_print_ids(FILE *out, const char *label, const int32_t *ids, size_t n)
{
    fprintf(out, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 200; i++)
        fprintf(out, " %d", ids[i]);
    if (n > 200)
        fprintf(out, " ...");
    fputc('\n', out);
}

int test_finish(const char *name)
{
    /* Tests that run through the public API (the model owns its instance) have no test_device_close:
     * validation messages fail them here. */
    uint32_t n = vkr_validation_message_count() - test_expected_validation_messages;
    if (n > reported_validation_messages) {
        fprintf(stderr, "FAIL: %u validation message(s)\n", n - reported_validation_messages);
        reported_validation_messages = n;
        test_failures++;
    }
    if (test_failures) {
        fprintf(stderr, "%s: %d check(s) FAILED\n", name, test_failures);
        return 1;
    }
    fprintf(stderr, "%s: all checks passed\n", name);
    return 0;
}

int32_t test_argmax(const float *x, uint32_t n)
{
    int32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = (int32_t)i;
    return best;
}

bool test_count_call(void *user)
{
    test_call_counter *c = user;
    return ++c->calls == c->true_at;
}

void test_destroy_buffers(vkr_device *dev, vkr_buffer *const *bufs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        vkr_buffer_destroy(dev, bufs[i]);   /* NULL: nothing */
}
