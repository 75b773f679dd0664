/* `vkllm bench`: model throughput like llama-bench (ppN: an N-token prompt, batched, from an empty context;
 * tgN: N tokens generated one at a time from an empty context) and, with --kernels, the device's read
 * bandwidth and the speed of matrix-vector products for each weight type at Llama shapes.
 * Results as a markdown table, JSON (an array of objects) or CSV. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/bench.h"
#include "host/cli/cli.h"
#include "host/cli/common.h"
#include "host/gguf.h"
#include "host/llama.h"
#include "host/quant.h"
#include "host/synth.h"

#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)
#define MAX_TESTS 32
#define MAX_TEST_TOKENS 1000000
#define TG_WARMUP_MAX 32u
#define KERNEL_QUICK_BW_BYTES (32ull << 20)
#define KERNEL_FLUSH_MAX (256ull << 20)

static const char *cmd = "bench";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm bench [-m MODEL] [-p N[,N...]] [-n N[,N...]] [-r R] [-o md|json|csv] [options]\n"
            "       vkllm bench --kernels [--quick] [--shapes LIST] [--types LIST] [-r R] [-o FORMAT] [--device N]\n\n"
            "Model benchmark (like llama-bench), one row per test:\n"
            "  ppN  an N-token prompt of random token ids, evaluated in batches from an empty context (tok/s)\n"
            "  tgN  N tokens generated one at a time (decode replays) from an empty context, random ids (tok/s)\n"
            "Each test runs once to warm up (tg: at most %u tokens), then R times; t/s is the mean +- stddev.\n"
            "tg rows also give the weight bytes read per second (weights only, KV cache not counted), that as a\n"
            "%% of the device's read bandwidth (measured first with the read kernel), the process CPU time per\n"
            "token, and the GPU time per token from a separate timed run (GPU timestamps).\n"
            "Without -m: a synthetic Q4_0 Llama (preset llama3.2-1b; tiny on a CPU device such as lavapipe)\n"
            "written to a temporary file in $TMPDIR (default /tmp) and removed again.\n\n"
            "  -m, --model FILE      GGUF model file\n"
            "  -p, --n-prompt LIST   prompt lengths, comma-separated (default 512; 0: none)\n"
            "  -n, --n-gen LIST      generation lengths, comma-separated (default 128; 0: none)\n"
            "  -r, --repetitions R   timed runs per test (default 5; --kernels --quick: 3)\n"
            "  -o, --output FORMAT   md (default), json or csv\n"
            "  -c, --ctx-size N      context positions (default: the longest test)\n"
            "  -b, --batch-size N    prompt tokens per batch (default 512)\n"
            "  --device N|NAME       Vulkan device index or name substring (default: $VKLLM_DEVICE or the best)\n"
            "  --memory-limit MIB    refuse device allocations beyond this many MiB\n"
            "  --validation          enable the Vulkan validation layer\n"
            "  --synth PRESET        synthetic model preset when no -m is given (%s)\n"
            "  --synth-type T        its weight type: f32, f16, q8_0, q4_0 (default q4_0)\n"
            "  --profile             after each tg test, print its GPU time per op (stderr)\n\n"
            "Kernel benchmark (--kernels): the read bandwidth (best run; buffer of min(1 GiB, maxStorageBufferRange,\n"
            "maxMemoryAllocationSize, a quarter of the device-local heap)), then y = W x (op_matmul, one column) for\n"
            "f32, f16, q8_0, q4_0 weights of M x K = 4096x4096, 14336x4096, 4096x14336, 128256x4096: GPU time per\n"
            "call (median of R; caches flushed before each call), GB/s of the weight's GGUF bytes, %% of the read\n"
            "bandwidth. Shapes the device cannot hold are reported as skipped.\n"
            "  --quick               shapes a quarter as wide (1024x1024, 3584x1024, 1024x3584, 32064x1024),\n"
            "                        a 32 MiB read buffer and 3 runs (unless -r is given)\n"
            "  --shapes LIST         other shapes, M x K each: e.g. 3072x2048,16384x2048 (K a multiple of 32)\n"
            "  --types LIST          some of the types: e.g. q4_0,f16\n",
            TG_WARMUP_MAX, synth_preset_names());
}

/* ---- Result tables: one set of rows printed as markdown, JSON or CSV ---- */

enum { IN_MD = 1, IN_DATA = 2, IN_BOTH = 3 };   /* markdown column / JSON and CSV field */
enum { K_STR, K_NUM, K_RAW };                   /* JSON: quoted string / number / raw JSON text */

typedef struct column {
    const char *key;     /* JSON/CSV name */
    const char *head;    /* markdown heading */
    int kind;
    int in;
    int right;           /* markdown: right-aligned */
} column;

typedef struct table {
    const column *cols;
    int n_cols;
    char **cells;        /* n_rows x n_cols, NULL = no value */
    int n_rows, cap;
    bool oom;
} table;

static void table_free(table *t)
{
    for (int i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->n_rows = t->cap = 0;
}

static void table_add_row(table *t)
{
    if (t->oom)
        return;
    if (t->n_rows == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        char **cells = realloc(t->cells, (size_t)cap * t->n_cols * sizeof *cells);
        if (!cells) {
            t->oom = true;
            return;
        }
        t->cells = cells;
        t->cap = cap;
    }
    for (int c = 0; c < t->n_cols; c++)
        t->cells[t->n_rows * t->n_cols + c] = NULL;
    t->n_rows++;
}

/* Sets a cell of the last row (the key must be a column). */
static void table_set(table *t, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void table_set(table *t, const char *key, const char *fmt, ...)
{
    if (t->oom || t->n_rows == 0)
        return;
    int c = 0;
    while (c < t->n_cols && strcmp(t->cols[c].key, key) != 0)
        c++;
    if (c == t->n_cols)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) {
        t->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    char **cell = &t->cells[(t->n_rows - 1) * t->n_cols + c];
    free(*cell);
    *cell = s;
}

/* A number with `prec` decimals; left empty if it is not finite. */
static void table_num(table *t, const char *key, double v, int prec)
{
    if (isfinite(v))
        table_set(t, key, "%.*f", prec, v);
}

static const char *cell(const table *t, int r, int c) { return t->cells[r * t->n_cols + c]; }

static void print_md(const table *t)
{
    int width[32] = {0};
    for (int c = 0; c < t->n_cols && c < 32; c++) {
        if (!(t->cols[c].in & IN_MD))
            continue;
        width[c] = (int)strlen(t->cols[c].head);
        for (int r = 0; r < t->n_rows; r++) {
            const char *s = cell(t, r, c);
            int w = s ? (int)strlen(s) : 1;
            /* "±" and "µ" take two bytes for one column */
            for (const char *p = s; p && *p; p++)
                if (((unsigned char)*p & 0xC0) == 0x80)
                    w--;
            if (w > width[c])
                width[c] = w;
        }
    }
    for (int r = -2; r < t->n_rows; r++) {
        printf("|");
        for (int c = 0; c < t->n_cols && c < 32; c++) {
            if (!(t->cols[c].in & IN_MD))
                continue;
            if (r == -1) {
                for (int k = 0; k < width[c] + 2; k++)
                    putchar(k == 0 || k == width[c] + 1 ? ' ' : k == width[c] && t->cols[c].right ? ':' : '-');
                putchar('|');
                continue;
            }
            const char *s = r == -2 ? t->cols[c].head : cell(t, r, c);
            if (!s)
                s = "-";
            int pad = width[c] - (int)strlen(s);
            for (const char *p = s; *p; p++)
                if (((unsigned char)*p & 0xC0) == 0x80)
                    pad++;
            if (pad < 0)
                pad = 0;
            if (t->cols[c].right)
                printf(" %*s%s |", pad, "", s);
            else
                printf(" %s%*s |", s, pad, "");
        }
        printf("\n");
    }
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            printf("\\n");
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void print_json(const table *t)
{
    printf("[");
    for (int r = 0; r < t->n_rows; r++) {
        printf("%s\n  {", r ? "," : "");
        bool first = true;
        for (int c = 0; c < t->n_cols; c++) {
            if (!(t->cols[c].in & IN_DATA))
                continue;
            printf("%s\n    \"%s\": ", first ? "" : ",", t->cols[c].key);
            first = false;
            const char *s = cell(t, r, c);
            if (!s)
                printf("null");
            else if (t->cols[c].kind == K_STR)
                print_json_string(s);
            else
                printf("%s", s);
        }
        printf("\n  }");
    }
    printf("\n]\n");
}

/* Quoted only when it has to be. */
static void print_csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        printf("%s", s);
        return;
    }
    putchar('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            putchar('"');
        putchar(*p);
    }
    putchar('"');
}

static void print_csv(const table *t)
{
    bool first = true;
    for (int c = 0; c < t->n_cols; c++)
        if (t->cols[c].in & IN_DATA) {
            printf("%s%s", first ? "" : ",", t->cols[c].key);
            first = false;
        }
    printf("\n");
    for (int r = 0; r < t->n_rows; r++) {
        first = true;
        for (int c = 0; c < t->n_cols; c++) {
            if (!(t->cols[c].in & IN_DATA))
                continue;
            if (!first)
                putchar(',');
            first = false;
            const char *s = cell(t, r, c);
            if (s)
                print_csv_field(s);
        }
        printf("\n");
    }
}

typedef enum out_format { OUT_MD, OUT_JSON, OUT_CSV } out_format;

static void table_print(const table *t, out_format f)
{
    if (f == OUT_JSON)
        print_json(t);
    else if (f == OUT_CSV)
        print_csv(t);
    else
        print_md(t);
}

/* ---- Helpers ---- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void mean_stddev(const double *v, uint32_t n, double *mean, double *sd)
{
    double m = 0, s = 0;
    for (uint32_t i = 0; i < n; i++)
        m += v[i];
    m /= n;
    for (uint32_t i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(s / (n - 1)) : 0.0;
}

static bool fail(void)
{
    fprintf(stderr, "vkllm %s: %s\n", cmd, vkr_last_error());
    return false;
}

/* Parses "128,512" into at most MAX_TESTS values. */
static bool parse_list(const char *flag, const char *s, uint32_t *vals, uint32_t *n)
{
    *n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        if (len == 0 || len >= sizeof item || *n == MAX_TESTS) {
            fprintf(stderr, "vkllm %s: %s expects a comma-separated list of at most %d integers, got '%s'\n", cmd,
                    flag, MAX_TESTS, s);
            return false;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        int64_t v;
        if (!cli_parse_i64(cmd, flag, item, 0, MAX_TEST_TOKENS, &v))
            return false;
        vals[(*n)++] = (uint32_t)v;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static void device_strings(const vkr_device *dev, char *driver, size_t driver_len, char *api, size_t api_len)
{
    const vkr_device_info *d = &dev->info;
    char version[64];
    vkr_driver_version_string(d, version, sizeof version);
    if (d->driver_name[0] || d->driver_info[0])
        snprintf(driver, driver_len, "%s%s%s", d->driver_name, d->driver_name[0] && d->driver_info[0] ? " " : "",
                 d->driver_info);
    else
        snprintf(driver, driver_len, "%s", version);
    snprintf(api, api_len, "%u.%u.%u", VK_API_VERSION_MAJOR(d->api_version), VK_API_VERSION_MINOR(d->api_version),
             VK_API_VERSION_PATCH(d->api_version));
}

static bool measure_bandwidth(vkr_device *dev, uint64_t bytes, uint32_t runs, bench_bandwidth *bw, vkr_buffer **keep)
{
    vkr_buffer *buf = NULL;
    if (bytes < 16) {
        fprintf(stderr, "vkllm %s: the device allows no read buffer to measure its bandwidth\n", cmd);
        return false;
    }
    if (bench_random_buffer(dev, bytes, 1, &buf) != VKLLM_OK || bench_read_bandwidth(dev, buf, runs, bw) != VKLLM_OK) {
        vkr_buffer_destroy(dev, buf);
        return fail();
    }
    if (keep)
        *keep = buf;
    else
        vkr_buffer_destroy(dev, buf);
    return true;
}

/* ---- --kernels ---- */

static const column kernel_cols[] = {
    {"device", "device", K_STR, IN_DATA, 0},
    {"driver", "driver", K_STR, IN_DATA, 0},
    {"test", "test", K_STR, IN_BOTH, 0},
    {"type", "type", K_STR, IN_BOTH, 0},
    {"shape", "M x K", K_STR, IN_MD, 1},
    {"m", "M", K_NUM, IN_DATA, 1},
    {"k", "K", K_NUM, IN_DATA, 1},
    {"bytes", "bytes", K_NUM, IN_DATA, 1},
    {"mib", "MiB", K_NUM, IN_BOTH, 1},
    {"runs", "runs", K_NUM, IN_DATA, 1},
    {"timer", "timer", K_STR, IN_DATA, 0},
    {"us", "us/call", K_NUM, IN_BOTH, 1},
    {"min_us", "min us", K_NUM, IN_DATA, 1},
    {"gbs", "GB/s", K_NUM, IN_BOTH, 1},
    {"bw_pct", "% read bw", K_NUM, IN_BOTH, 1},
    {"skipped", "skipped", K_STR, IN_DATA, 0},
};

typedef struct kernel_opts kernel_opts;
static bool parse_shapes(const char *s, kernel_opts *ko);
static bool parse_types(const char *s, kernel_opts *ko);

struct kernel_opts {
    uint32_t shapes[MAX_TESTS][2], n_shapes;   /* M x K; 0: the defaults */
    uint32_t types[4], n_types;                 /* 0: all four */
    bool quick;
};

/* "4096x4096,14336x4096" */
static bool parse_shapes(const char *s, kernel_opts *ko)
{
    ko->n_shapes = 0;
    for (const char *p = s;;) {
        char *end;
        errno = 0;
        unsigned long m = strtoul(p, &end, 10), k = 0;
        bool good = end != p && *p != '-' && *end == 'x' && !errno;
        if (good) {
            const char *q = end + 1;
            k = strtoul(q, &end, 10);
            good = end != q && *q != '-' && (*end == ',' || *end == '\0') && !errno;
        }
        if (!good || m == 0 || k == 0 || m > (1ul << 24) || k > (1ul << 20) || ko->n_shapes == MAX_TESTS) {
            fprintf(stderr, "vkllm %s: --shapes expects a list like 4096x4096,14336x4096 (M rows x K), got '%s'\n",
                    cmd, s);
            return false;
        }
        ko->shapes[ko->n_shapes][0] = (uint32_t)m;
        ko->shapes[ko->n_shapes++][1] = (uint32_t)k;
        if (*end == '\0')
            return true;
        p = end + 1;
    }
}

/* "q4_0,f16" */
static bool parse_types(const char *s, kernel_opts *ko)
{
    ko->n_types = 0;
    for (const char *p = s;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[16];
        uint32_t type;
        if (len == 0 || len >= sizeof name || ko->n_types == 4) {
            fprintf(stderr, "vkllm %s: --types expects a list of f32, f16, q8_0, q4_0, got '%s'\n", cmd, s);
            return false;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!ggml_type_from_name(name, &type)) {
            fprintf(stderr, "vkllm %s: unknown type '%s' (types: f32, f16, q8_0, q4_0)\n", cmd, name);
            return false;
        }
        ko->types[ko->n_types++] = type;
        if (!comma)
            return true;
        p = comma + 1;
    }
}

static int run_kernels(vkr_device *dev, uint32_t reps, const kernel_opts *ko, out_format fmt)
{
    const bool quick = ko->quick;
    char driver[600], api[32];
    device_strings(dev, driver, sizeof driver, api, sizeof api);
    table t = {kernel_cols, (int)(sizeof kernel_cols / sizeof kernel_cols[0]), NULL, 0, 0, false};
    uint64_t bytes = bench_read_buffer_size(dev);
    if (quick && bytes > KERNEL_QUICK_BW_BYTES)
        bytes = KERNEL_QUICK_BW_BYTES;
    bench_bandwidth bw;
    vkr_buffer *flush = NULL;
    if (!measure_bandwidth(dev, bytes, reps, &bw, &flush))
        return 1;
    /* The read buffer then serves to flush the caches between matvec calls; a smaller one does for that. */
    if (bytes > KERNEL_FLUSH_MAX) {
        vkr_buffer_destroy(dev, flush);
        flush = NULL;
        if (bench_random_buffer(dev, KERNEL_FLUSH_MAX, 2, &flush) != VKLLM_OK) {
            fail();
            return 1;
        }
    }
    const char *timer = bw.gpu_timer ? "gpu" : "wall";
    table_add_row(&t);
    table_set(&t, "device", "%s", dev->info.name);
    table_set(&t, "driver", "%s", driver);
    table_set(&t, "test", "read");
    table_set(&t, "bytes", "%" PRIu64, bw.bytes);
    table_num(&t, "mib", bw.bytes / MIB, 1);
    table_set(&t, "runs", "%u", bw.runs);
    table_set(&t, "timer", "%s", timer);
    table_num(&t, "us", bw.best_ns / 1e3, 1);
    table_num(&t, "min_us", bw.best_ns / 1e3, 1);
    table_num(&t, "gbs", bw.gbps, 2);
    table_num(&t, "bw_pct", 100.0, 1);

    static const uint32_t all_types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    static const uint32_t llama_shapes[4][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
    static const uint32_t quick_shapes[4][2] = {{1024, 1024}, {3584, 1024}, {1024, 3584}, {32064, 1024}};
    const uint32_t(*shapes)[2] = ko->n_shapes ? ko->shapes : quick ? quick_shapes : llama_shapes;
    const uint32_t n_shapes = ko->n_shapes ? ko->n_shapes : 4;
    const uint32_t *types = ko->n_types ? ko->types : all_types;
    const uint32_t n_types = ko->n_types ? ko->n_types : 4;
    char notes[64][256];
    int n_notes = 0;
    int rc = 0;
    for (uint32_t ti = 0; ti < n_types && rc == 0; ti++) {
        for (uint32_t si = 0; si < n_shapes; si++) {
            uint32_t m = shapes[si][0], k = shapes[si][1];
            if (isatty(STDERR_FILENO)) {
                fprintf(stderr, "\rmatvec %s %u x %u ...      ", ggml_type_name(types[ti]), m, k);
                fflush(stderr);
            }
            bench_matvec_result res;
            if (bench_matvec(dev, types[ti], m, k, reps, flush, &res) != VKLLM_OK) {
                if (isatty(STDERR_FILENO))
                    fprintf(stderr, "\n");
                fail();
                rc = 1;
                break;
            }
            table_add_row(&t);
            table_set(&t, "device", "%s", dev->info.name);
            table_set(&t, "driver", "%s", driver);
            table_set(&t, "test", "matvec");
            table_set(&t, "type", "%s", ggml_type_name(types[ti]));
            table_set(&t, "shape", "%u x %u", m, k);
            table_set(&t, "m", "%u", m);
            table_set(&t, "k", "%u", k);
            table_set(&t, "bytes", "%" PRIu64, res.weight_bytes);
            table_num(&t, "mib", res.weight_bytes / MIB, 1);
            if (res.skipped) {
                table_set(&t, "us", "skipped");   /* markdown only: the JSON number stays null */
                table_set(&t, "skipped", "%s", res.reason);
                if (n_notes < 64)
                    snprintf(notes[n_notes++], sizeof notes[0], "skipped %s %u x %u: %s", ggml_type_name(types[ti]),
                             m, k, res.reason);
                continue;
            }
            double gbs = res.weight_bytes / res.median_ns;
            table_set(&t, "runs", "%u", reps);
            table_set(&t, "timer", "%s", timer);
            table_num(&t, "us", res.median_ns / 1e3, 1);
            table_num(&t, "min_us", res.min_ns / 1e3, 1);
            table_num(&t, "gbs", gbs, 2);
            table_num(&t, "bw_pct", 100.0 * gbs / bw.gbps, 1);
        }
    }
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\r%40s\r", "");
    double flush_mib = flush->size / MIB;
    vkr_buffer_destroy(dev, flush);
    if (rc == 0 && t.oom) {
        fprintf(stderr, "vkllm %s: out of host memory\n", cmd);
        rc = 1;
    }
    if (rc == 0) {
        if (fmt != OUT_MD) {
            /* "skipped" in the time column is for the markdown table only. */
            for (int r = 0; r < t.n_rows; r++)
                for (int c = 0; c < t.n_cols; c++)
                    if (!strcmp(t.cols[c].key, "us") && t.cells[r * t.n_cols + c] &&
                        !strcmp(t.cells[r * t.n_cols + c], "skipped")) {
                        free(t.cells[r * t.n_cols + c]);
                        t.cells[r * t.n_cols + c] = NULL;
                    }
        }
        if (fmt == OUT_MD)
            printf("device: %s (%s), driver: %s, Vulkan %s; timer: %s; matvec: median of %u, caches flushed "
                   "(%.0f MiB read) before each call\n\n",
                   dev->info.name, vkr_device_type_name(dev->info.type), driver, api,
                   bw.gpu_timer ? "GPU timestamps" : "fence wall time", reps, flush_mib);
        table_print(&t, fmt);
        if (fmt == OUT_MD)
            for (int i = 0; i < n_notes; i++)
                printf("%s%s\n", i ? "" : "\n", notes[i]);
    }
    table_free(&t);
    return rc;
}

/* ---- Model benchmark ---- */

static const column model_cols[] = {
    {"model", "model", K_STR, IN_BOTH, 0},
    {"model_file", "file", K_STR, IN_DATA, 0},
    {"synthetic", "synthetic", K_RAW, IN_DATA, 0},
    {"model_type", "type", K_STR, IN_BOTH, 0},
    {"model_size", "bytes", K_NUM, IN_DATA, 1},
    {"model_size_gib", "size", K_NUM, IN_DATA, 1},
    {"size_md", "size", K_STR, IN_MD, 1},
    {"model_n_params", "n_params", K_NUM, IN_DATA, 1},
    {"params_md", "params", K_STR, IN_MD, 1},
    {"device", "device", K_STR, IN_BOTH, 0},
    {"device_type", "device type", K_STR, IN_DATA, 0},
    {"driver", "driver", K_STR, IN_BOTH, 0},
    {"vulkan", "Vulkan", K_STR, IN_DATA, 0},
    {"n_ctx", "n_ctx", K_NUM, IN_DATA, 1},
    {"n_batch", "n_batch", K_NUM, IN_DATA, 1},
    {"test", "test", K_STR, IN_BOTH, 1},
    {"n_prompt", "n_prompt", K_NUM, IN_DATA, 1},
    {"n_gen", "n_gen", K_NUM, IN_DATA, 1},
    {"repetitions", "r", K_NUM, IN_DATA, 1},
    {"ts_md", "t/s", K_STR, IN_MD, 1},
    {"avg_ts", "t/s", K_NUM, IN_DATA, 1},
    {"stddev_ts", "stddev", K_NUM, IN_DATA, 1},
    {"samples_ts", "samples", K_RAW, IN_DATA, 0},
    {"bytes_per_token", "bytes/token", K_NUM, IN_DATA, 1},
    {"gbs", "GB/s", K_NUM, IN_BOTH, 1},
    {"bw_pct", "% read bw", K_NUM, IN_BOTH, 1},
    {"read_bw_gbs", "read GB/s", K_NUM, IN_DATA, 1},
    {"cpu_ms_per_token", "CPU ms/tok", K_NUM, IN_BOTH, 1},
    {"gpu_ms_per_token", "GPU ms/tok", K_NUM, IN_BOTH, 1},
};

typedef struct model_info {
    char name[256];
    const char *file;          /* NULL for the synthetic model */
    const char *type;
    uint64_t bytes, n_params, bytes_per_token;
    uint32_t n_vocab;
} model_info;

typedef struct bench_run {
    vkr_device *dev;
    llama_model *model;
    llama_context *ctx;
    model_info mi;
    char driver[600], api[32];
    uint32_t n_ctx, n_batch, reps;
    double bw_gbs;
    bool profile;
    uint64_t rng;
    float *logits;
    table t;
} bench_run;

static void row_common(bench_run *b, const char *test, uint32_t n_prompt, uint32_t n_gen, const double *ts)
{
    table *t = &b->t;
    table_add_row(t);
    table_set(t, "model", "%s", b->mi.name);
    if (b->mi.file)
        table_set(t, "model_file", "%s", b->mi.file);
    table_set(t, "synthetic", "%s", b->mi.file ? "false" : "true");
    table_set(t, "model_type", "%s", b->mi.type);
    table_set(t, "model_size", "%" PRIu64, b->mi.bytes);
    table_num(t, "model_size_gib", b->mi.bytes / GIB, 4);
    if (b->mi.bytes >= GIB / 10)
        table_set(t, "size_md", "%.2f GiB", b->mi.bytes / GIB);
    else
        table_set(t, "size_md", "%.2f MiB", b->mi.bytes / MIB);
    table_set(t, "model_n_params", "%" PRIu64, b->mi.n_params);
    if (b->mi.n_params >= 1000000000ull)
        table_set(t, "params_md", "%.2f B", b->mi.n_params / 1e9);
    else
        table_set(t, "params_md", "%.2f M", b->mi.n_params / 1e6);
    table_set(t, "device", "%s", b->dev->info.name);
    table_set(t, "device_type", "%s", vkr_device_type_name(b->dev->info.type));
    table_set(t, "driver", "%s", b->driver);
    table_set(t, "vulkan", "%s", b->api);
    table_set(t, "n_ctx", "%u", b->n_ctx);
    table_set(t, "n_batch", "%u", b->n_batch);
    table_set(t, "test", "%s", test);
    table_set(t, "n_prompt", "%u", n_prompt);
    table_set(t, "n_gen", "%u", n_gen);
    table_set(t, "repetitions", "%u", b->reps);
    double mean, sd;
    mean_stddev(ts, b->reps, &mean, &sd);
    table_set(t, "ts_md", "%.2f ± %.2f", mean, sd);
    table_num(t, "avg_ts", mean, 3);
    table_num(t, "stddev_ts", sd, 3);
    /* samples: a JSON array of numbers (each finite: a positive count over a positive time) */
    size_t cap = 48 * (size_t)b->reps + 4, len = 1;
    char *s = malloc(cap);
    if (!s) {
        t->oom = true;
        return;
    }
    s[0] = '[';
    for (uint32_t i = 0; i < b->reps && len < cap; i++) {
        int w = snprintf(s + len, cap - len, "%s%.3f", i ? ", " : "", ts[i]);
        len = w < 0 ? cap : len + (size_t)w;
    }
    if (len + 2 > cap) {   /* cannot happen with finite rates below 10^40 */
        free(s);
        t->oom = true;
        return;
    }
    snprintf(s + len, cap - len, "]");
    table_set(t, "samples_ts", "%s", s);
    table_num(t, "read_bw_gbs", b->bw_gbs, 2);
    free(s);
}

static void random_tokens(bench_run *b, int32_t *tok, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        tok[i] = (int32_t)(next_random(&b->rng) % b->mi.n_vocab);
}

static bool test_pp(bench_run *b, uint32_t n)
{
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    double *ts = calloc(b->reps, sizeof *ts);
    bool ok = tok && ts;
    if (!ok)
        fprintf(stderr, "vkllm %s: out of host memory\n", cmd);
    for (uint32_t r = 0; r <= b->reps && ok; r++) {   /* run 0 is the warm-up */
        random_tokens(b, tok, n);
        double t0 = now_ns();
        if (llama_eval(b->ctx, tok, n, 0, false, b->logits) != VKLLM_OK)
            ok = fail();
        double dt = now_ns() - t0;
        if (r > 0)
            ts[r - 1] = n / (fmax(dt, 1.0) * 1e-9);
    }
    if (ok) {
        char name[32];
        snprintf(name, sizeof name, "pp%u", n);
        row_common(b, name, n, 0, ts);
    }
    free(tok);
    free(ts);
    return ok;
}

/* "pp512 ..." on stderr while a test runs, when stderr is a terminal; NULL clears it. */
static void progress(const char *test, uint32_t n)
{
    if (!isatty(STDERR_FILENO))
        return;
    if (test)
        fprintf(stderr, "\r%s%u ...          ", test, n);
    else
        fprintf(stderr, "\r%40s\r", "");
    fflush(stderr);
}

typedef struct op_time {
    const char *name;
    double ns;
    uint64_t count;
} op_time;

/* GPU time per token: N tokens on a second context (decode graph only) with timestamps. With --profile, also
 * the time per dispatch name. *gpu_ns_per_token stays NAN when the device has no timestamps. */
static bool gpu_time_tg(bench_run *b, uint32_t n, double *gpu_ns_per_token)
{
    *gpu_ns_per_token = NAN;
    if (!b->dev->info.features.timestamps)
        return true;
    llama_context *pc;
    if (llama_context_create(b->model, n, 1, &pc) != VKLLM_OK) {
        /* Only the GPU column is lost: the device may have no room for a second KV cache. */
        fprintf(stderr, "vkllm %s: note: no GPU time for tg%u: %s\n", cmd, n, vkr_last_error());
        return true;
    }
    llama_context_set_timing(pc, true);
    enum { MAX_OPS = 64 };
    op_time ops[MAX_OPS];
    uint32_t n_ops = 0;
    double total = 0;
    bool ok = true;
    for (uint32_t i = 0; i <= n && ok; i++) {   /* the first token records the graph: not counted */
        int32_t tok;
        random_tokens(b, &tok, 1);
        if (llama_eval(pc, &tok, 1, i ? i - 1 : 0, false, b->logits) != VKLLM_OK) {
            ok = fail();
            break;
        }
        if (i == 0)
            continue;
        total += llama_context_last_gpu_ns(pc);
        const vkr_graph *g = llama_context_decode_graph(pc);
        for (uint32_t d = 0; b->profile && d < vkr_graph_size(g); d++) {
            const char *name = vkr_graph_dispatch_name(g, d);
            uint32_t j = 0;
            while (j < n_ops && strcmp(ops[j].name, name) != 0)
                j++;
            if (j == n_ops) {
                if (n_ops == MAX_OPS)
                    continue;
                ops[n_ops++] = (op_time){name, 0, 0};
            }
            ops[j].ns += vkr_graph_dispatch_ns(g, d);
            ops[j].count++;
        }
    }
    if (ok && total > 0)
        *gpu_ns_per_token = total / n;
    if (ok && b->profile && total > 0) {
        progress(NULL, 0);
        double per = total / n;
        fprintf(stderr, "tg%u GPU time per token: %.3f ms (%u tokens from an empty context)\n", n, per / 1e6, n);
        for (uint32_t k = 0; k < n_ops; k++) {
            uint32_t best = k;
            for (uint32_t j = k + 1; j < n_ops; j++)
                if (ops[j].ns > ops[best].ns)
                    best = j;
            op_time tmp = ops[k];
            ops[k] = ops[best];
            ops[best] = tmp;
            double ms = ops[k].ns / n / 1e6;
            fprintf(stderr, "  %-16s %6.1f dispatches/token  %9.3f ms/token  %5.1f%%", ops[k].name,
                    (double)ops[k].count / n, ms, 100.0 * ops[k].ns / total);
            if (!strcmp(ops[k].name, "matvec") && ops[k].ns > 0)
                fprintf(stderr, "  (weights at %.2f GB/s)", b->mi.bytes_per_token / (ops[k].ns / n));
            fprintf(stderr, "\n");
        }
    }
    llama_context_free(pc);
    return ok;
}

static bool test_tg(bench_run *b, uint32_t n)
{
    double *ts = calloc(b->reps, sizeof *ts);
    if (!ts) {
        fprintf(stderr, "vkllm %s: out of host memory\n", cmd);
        return false;
    }
    bool ok = true;
    double cpu_total = 0;
    for (uint32_t r = 0; r <= b->reps && ok; r++) {   /* run 0 is the warm-up */
        uint32_t count = r == 0 && n > TG_WARMUP_MAX ? TG_WARMUP_MAX : n;
        double c0 = cpu_ns(), t0 = now_ns();
        for (uint32_t i = 0; i < count && ok; i++) {
            int32_t tok;
            random_tokens(b, &tok, 1);
            if (llama_eval(b->ctx, &tok, 1, i, false, b->logits) != VKLLM_OK)
                ok = fail();
        }
        double dt = now_ns() - t0, dc = cpu_ns() - c0;
        if (r > 0) {
            ts[r - 1] = n / (fmax(dt, 1.0) * 1e-9);
            cpu_total += dc;
        }
    }
    double gpu_ns = NAN;
    if (ok)
        ok = gpu_time_tg(b, n, &gpu_ns);
    if (ok) {
        char name[32];
        snprintf(name, sizeof name, "tg%u", n);
        row_common(b, name, 0, n, ts);
        double mean, sd;
        mean_stddev(ts, b->reps, &mean, &sd);
        double gbs = b->mi.bytes_per_token * mean / 1e9;
        table_set(&b->t, "bytes_per_token", "%" PRIu64, b->mi.bytes_per_token);
        table_num(&b->t, "gbs", gbs, 2);
        table_num(&b->t, "bw_pct", 100.0 * gbs / b->bw_gbs, 1);
        table_num(&b->t, "cpu_ms_per_token", cpu_total / ((double)n * b->reps) / 1e6, 3);
        table_num(&b->t, "gpu_ms_per_token", gpu_ns / 1e6, 3);
    }
    free(ts);
    return ok;
}

/* Reads what the rows say about the model from its GGUF; the file is then closed. */
static void describe_model(const gguf_file *f, const llama_model *m, const char *path, model_info *mi)
{
    const char *name;
    uint64_t len;
    if (gguf_get_str(f, "general.name", &name, &len) && len > 0)
        snprintf(mi->name, sizeof mi->name, "%.*s", (int)(len < 200 ? len : 200), name);
    else {
        const char *base = strrchr(path, '/');
        snprintf(mi->name, sizeof mi->name, "%s", base ? base + 1 : path);
    }
    mi->type = ggml_type_name(m->weight_type) ? ggml_type_name(m->weight_type) : "?";
    mi->bytes = m->weight_bytes;
    mi->n_params = 0;
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++)
        mi->n_params += gguf_tensor_at(f, i)->n_elements;
    mi->bytes_per_token = bench_gguf_bytes_per_token(f);
    mi->n_vocab = m->hp.n_vocab;
}

typedef struct model_opts {
    cli_model_opts mo;
    uint32_t pp[MAX_TESTS], n_pp, tg[MAX_TESTS], n_tg;
    uint32_t reps;
    const char *synth_preset;
    uint32_t synth_type;
    bool profile;
} model_opts;

static int run_model(vkr_device *dev, const model_opts *o, out_format fmt)
{
    bench_run b;
    memset(&b, 0, sizeof b);
    b.dev = dev;
    b.reps = o->reps;
    b.profile = o->profile;
    b.rng = 0x62656E6368ull;
    b.t = (table){model_cols, (int)(sizeof model_cols / sizeof model_cols[0]), NULL, 0, 0, false};
    device_strings(dev, b.driver, sizeof b.driver, b.api, sizeof b.api);

    uint32_t longest = 1;
    for (uint32_t i = 0; i < o->n_pp; i++)
        longest = o->pp[i] > longest ? o->pp[i] : longest;
    for (uint32_t i = 0; i < o->n_tg; i++)
        longest = o->tg[i] > longest ? o->tg[i] : longest;
    b.n_ctx = o->mo.n_ctx ? o->mo.n_ctx : longest;
    b.n_batch = o->mo.n_batch ? o->mo.n_batch : 512;
    if (b.n_ctx < longest) {
        fprintf(stderr, "vkllm %s: a test needs %u positions but the context has %u (raise -c)\n", cmd, longest,
                b.n_ctx);
        return 1;
    }

    int rc = 1;
    bench_bandwidth bw;
    char tmp[4096] = "";
    const char *path = o->mo.model;
    gguf_file *f = NULL;
    if (!path) {
        const char *preset = o->synth_preset ? o->synth_preset
                                             : dev->info.type == VK_PHYSICAL_DEVICE_TYPE_CPU ? "tiny" : "llama3.2-1b";
        const char *dir = getenv("TMPDIR");
        snprintf(tmp, sizeof tmp, "%s/vkllm-bench-XXXXXX", dir && *dir ? dir : "/tmp");
        int fd = mkstemp(tmp);
        if (fd < 0) {
            fprintf(stderr, "vkllm %s: cannot create a temporary file %s: %s\n", cmd, tmp, strerror(errno));
            return 1;
        }
        close(fd);
        if (isatty(STDERR_FILENO))
            fprintf(stderr, "writing a synthetic %s %s model to %s\n", preset, ggml_type_name(o->synth_type), tmp);
        synth_options so;
        memset(&so, 0, sizeof so);
        so.preset = preset;
        so.type = o->synth_type;
        so.path = tmp;
        so.seed = 1;
        if (synth_write(&so) != VKLLM_OK) {
            fail();
            goto out;
        }
        path = tmp;
    }
    if (gguf_open(path, &f) != VKLLM_OK) {
        fail();
        goto out;
    }
    /* The read bandwidth before the weights go up, while the device memory is free. */
    if (!measure_bandwidth(dev, bench_read_buffer_size(dev), o->reps > 3 ? o->reps : 3, &bw, NULL))
        goto out;
    b.bw_gbs = bw.gbps;
    if (llama_model_load(dev, f, NULL, NULL, &b.model) != VKLLM_OK) {
        fail();
        goto out;
    }
    describe_model(f, b.model, path, &b.mi);
    b.mi.file = o->mo.model;
    gguf_close(f);
    f = NULL;
    if (tmp[0]) {   /* everything is on the device now */
        unlink(tmp);
        tmp[0] = '\0';
    }
    if (llama_context_create(b.model, b.n_ctx, b.n_batch, &b.ctx) != VKLLM_OK) {
        fail();
        goto out;
    }
    b.logits = malloc((size_t)b.mi.n_vocab * sizeof *b.logits);
    if (!b.logits) {
        fprintf(stderr, "vkllm %s: out of host memory\n", cmd);
        goto out;
    }
    bool ok = true;
    for (uint32_t i = 0; i < o->n_pp && ok; i++)
        if (o->pp[i]) {
            progress("pp", o->pp[i]);
            ok = test_pp(&b, o->pp[i]);
        }
    for (uint32_t i = 0; i < o->n_tg && ok; i++)
        if (o->tg[i]) {
            progress("tg", o->tg[i]);
            ok = test_tg(&b, o->tg[i]);
        }
    progress(NULL, 0);
    if (ok && b.t.oom) {
        fprintf(stderr, "vkllm %s: out of host memory\n", cmd);
        ok = false;
    }
    if (ok) {
        table_print(&b.t, fmt);
        if (fmt == OUT_MD)
            printf("\nread bandwidth: %.2f GB/s (%.0f MiB buffer, best of %u, %s); GB/s of tg = weight bytes per "
                   "token x t/s (KV cache not counted)\n",
                   bw.gbps, bw.bytes / MIB, bw.runs, bw.gpu_timer ? "GPU timestamps" : "fence wall time");
        rc = 0;
    }
out:
    if (f)
        gguf_close(f);
    if (tmp[0])
        unlink(tmp);
    free(b.logits);
    llama_context_free(b.ctx);
    llama_model_free(b.model);
    table_free(&b.t);
    return rc;
}

/* ---- Options ---- */

int cmd_bench(int argc, char **argv)
{
    model_opts o;
    memset(&o, 0, sizeof o);
    o.pp[0] = 512;
    o.n_pp = 1;
    o.tg[0] = 128;
    o.n_tg = 1;
    o.reps = 5;
    o.synth_type = GGML_TYPE_Q4_0;
    kernel_opts ko;
    memset(&ko, 0, sizeof ko);
    bool kernels = false, quick = false, reps_given = false;
    const char *kernels_only = NULL;   /* an option that only --kernels takes */
    const char *model_only = NULL;   /* an option that --kernels does not take */
    out_format fmt = OUT_MD;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        bool ok = true;
        int64_t v;
        if (cli_model_option(&o.mo, argc, argv, &i, &ok)) {
            if (strcmp(a, "--device") && strcmp(a, "--memory-limit") && strcmp(a, "--validation"))
                model_only = a;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--kernels")) {
            kernels = true;
        } else if (!strcmp(a, "--quick")) {
            quick = ko.quick = true;
            kernels_only = a;
        } else if (!strcmp(a, "--shapes")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && parse_shapes(s, &ko);
            kernels_only = a;
        } else if (!strcmp(a, "--types")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && parse_types(s, &ko);
            kernels_only = a;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && parse_list(a, s, o.pp, &o.n_pp);
            model_only = a;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && parse_list(a, s, o.tg, &o.n_tg);
            model_only = a;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && cli_parse_i64(cmd, a, s, 1, 1000, &v);
            if (ok)
                o.reps = (uint32_t)v;
            reps_given = true;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) != NULL;
            if (ok && !strcmp(s, "md"))
                fmt = OUT_MD;
            else if (ok && !strcmp(s, "json"))
                fmt = OUT_JSON;
            else if (ok && !strcmp(s, "csv"))
                fmt = OUT_CSV;
            else if (ok) {
                fprintf(stderr, "vkllm %s: unknown output format '%s' (md, json or csv)\n", cmd, s);
                ok = false;
            }
        } else if (!strcmp(a, "--synth")) {
            ok = (o.synth_preset = cli_value(cmd, argc, argv, &i)) != NULL;
            if (ok && !synth_preset(o.synth_preset)) {
                fprintf(stderr, "vkllm %s: unknown preset '%s' (presets: %s)\n", cmd, o.synth_preset,
                        synth_preset_names());
                ok = false;
            }
            model_only = a;
        } else if (!strcmp(a, "--synth-type")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) != NULL;
            if (ok && !ggml_type_from_name(s, &o.synth_type)) {
                fprintf(stderr, "vkllm %s: unknown type '%s' (types: f32, f16, q8_0, q4_0)\n", cmd, s);
                ok = false;
            }
            model_only = a;
        } else if (!strcmp(a, "--profile")) {
            o.profile = true;
            model_only = a;
        } else {
            fprintf(stderr, "vkllm %s: unknown option '%s' (try --help)\n", cmd, a);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (kernels && model_only) {
        fprintf(stderr, "vkllm %s: %s does not apply to --kernels\n", cmd, model_only);
        return 1;
    }
    if (kernels_only && !kernels) {
        fprintf(stderr, "vkllm %s: %s applies to --kernels only\n", cmd, kernels_only);
        return 1;
    }
    for (uint32_t i = 0; i < ko.n_shapes; i++)
        for (uint32_t j = 0; j < ko.n_types; j++)
            if (ko.shapes[i][1] % ggml_block_size(ko.types[j])) {
                fprintf(stderr, "vkllm %s: K = %u is not a multiple of the %s block size %u\n", cmd,
                        ko.shapes[i][1], ggml_type_name(ko.types[j]), ggml_block_size(ko.types[j]));
                return 1;
            }
    if (ko.n_types == 0)
        for (uint32_t i = 0; i < ko.n_shapes; i++)
            if (ko.shapes[i][1] % 32) {
                fprintf(stderr, "vkllm %s: K = %u is not a multiple of 32 (the q8_0/q4_0 block size)\n", cmd,
                        ko.shapes[i][1]);
                return 1;
            }
    if (o.mo.model && (o.synth_preset || o.synth_type != GGML_TYPE_Q4_0)) {
        fprintf(stderr, "vkllm %s: --synth and --synth-type are for the synthetic model (no -m)\n", cmd);
        return 1;
    }
    bool any = false;
    for (uint32_t i = 0; i < o.n_pp; i++)
        any |= o.pp[i] > 0;
    for (uint32_t i = 0; i < o.n_tg; i++)
        any |= o.tg[i] > 0;
    if (!kernels && !any) {
        fprintf(stderr, "vkllm %s: no tests: every -p and -n length is 0\n", cmd);
        return 1;
    }
    if (kernels && quick && !reps_given)
        o.reps = 3;

    vkr_instance *inst = NULL;
    vkr_device *dev = NULL;
    vkr_instance_options io = {.validation = o.mo.validation};
    vkr_device_options dopts = {.selector = o.mo.device, .memory_limit = o.mo.memory_limit};
    if (vkr_instance_create(&io, &inst) != VKLLM_OK || vkr_device_create(inst, &dopts, &dev) != VKLLM_OK) {
        fail();
        vkr_instance_destroy(inst);
        return 1;
    }
    int rc = kernels ? run_kernels(dev, o.reps, &ko, fmt) : run_model(dev, &o, fmt);
    vkr_device_destroy(dev);
    vkr_instance_destroy(inst);
    return rc;
}
