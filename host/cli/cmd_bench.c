/* `vkllm bench`: the options, and what the model benchmark (bench_model.c) and the kernel benchmark
 * (bench_kernels.c) share. The results are printed through bench_table.c as markdown, JSON or CSV. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/cli/cmd_bench.h"
#include "host/model/llama.h"
#include "host/ops/ops.h"
#include "host/format/quant.h"
#include "host/tools/synth.h"

#define MAX_TEST_TOKENS 1000000

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
            "  --parallel LIST       also tgN xP for each P (1..256): P sequences of one context generating\n"
            "                        together, one batch per step (weights read once); t/s is the aggregate,\n"
            "                        t/s/seq each sequence's rate (like llama-batched-bench)\n"
            "  -r, --repetitions R   timed runs per test (default 5; --kernels --quick: 3)\n"
            "  -o, --output FORMAT   md (default), json or csv\n"
            "  -c, --ctx-size N      context positions (default: the longest test)\n"
            "  -b, --batch-size N    prompt tokens per batch (default 512)\n"
            "  --device N|NAME       Vulkan device index or name substring (default: $VKLLM_DEVICE or the best)\n"
            "  --memory-limit MIB    refuse device allocations beyond this many MiB\n"
            "  --validation          enable the Vulkan validation layer\n"
            "  --synth PRESET        synthetic model preset when no -m is given (%s)\n"
            "  --synth-type T        its weight type, any that vkllm synth takes (default q4_0)\n"
            "  --profile             after each tg test, print its GPU time per op (stderr)\n\n"
            "Kernel benchmark (--kernels): the read bandwidth (best run; buffer of min(1 GiB, maxStorageBufferRange,\n"
            "maxMemoryAllocationSize, a quarter of the device-local heap)), then y = W x (op_matmul, one column) for\n"
            "weights of each type the kernels run (f32, f16, q8_0, q4_0, ...) of M x K = 4096x4096, 14336x4096,\n"
            "4096x14336, 128256x4096: GPU time per call (median of R; caches flushed before each call), GB/s of the\n"
            "weight's GGUF bytes, %% of the read bandwidth. Shapes the device cannot hold, and types without\n"
            "kernels, are reported as skipped.\n"
            "  --quick               shapes a quarter as wide (1024x1024, 3584x1024, 1024x3584, 32064x1024),\n"
            "                        a 32 MiB read buffer and 3 runs (unless -r is given)\n"
            "  --shapes LIST         other shapes, M x K each: e.g. 3072x2048,16384x2048 (K a multiple of the\n"
            "                        block size: 32, 256 for K-quants and iq4_xs)\n"
            "  --types LIST          some of the types (those of vkllm synth --help): e.g. q4_0,f16,q4_K\n",
            TG_WARMUP_MAX, vkl_synth_preset_names());
}

void bench_error(const char *fmt, ...)
{
    char msg[8192];   /* formatted first so the line goes out in one write */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "vkllm %s: %s\n", cmd, msg);
}

bool bench_fail(void)
{
    bench_error("%s", vkr_last_error());
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
            bench_error("%s expects a comma-separated list of at most %d integers, got '%s'", flag, MAX_TESTS, s);
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

void bench_device_strings(const vkr_device *dev, char *driver, size_t driver_len, char *api, size_t api_len)
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

bool bench_measure_bandwidth(vkr_device *dev, uint64_t bytes, uint32_t runs, bench_bandwidth *bw, vkr_buffer **keep)
{
    vkr_buffer *buf = NULL;
    if (bytes < 16) {
        bench_error("the device allows no read buffer to measure its bandwidth");
        return false;
    }
    if (vkl_bench_random_buffer(dev, bytes, 1, &buf) != VKLLM_OK || vkl_bench_read_bandwidth(dev, buf, runs, bw) != VKLLM_OK) {
        vkr_buffer_destroy(dev, buf);
        return bench_fail();
    }
    if (keep)
        *keep = buf;
    else
        vkr_buffer_destroy(dev, buf);
    return true;
}

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
            bench_error("--shapes expects a list like 4096x4096,14336x4096 (M rows x K), got '%s'", s);
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
        char types[256];
        vkl_ggml_type_list_names(types, sizeof types);
        if (len == 0 || len >= sizeof name || ko->n_types == MAX_TESTS) {
            bench_error("--types expects a list of %s, got '%s'", types, s);
            return false;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!vkl_ggml_type_from_name(name, &type)) {
            bench_error("unknown type '%s' (types: %s)", name, types);
            return false;
        }
        ko->types[ko->n_types++] = type;
        if (!comma)
            return true;
        p = comma + 1;
    }
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
        } else if (!strcmp(a, "--parallel")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) && parse_list(a, s, o.par, &o.n_par);
            for (uint32_t k = 0; ok && k < o.n_par; k++)
                if (o.par[k] < 1 || o.par[k] > LLAMA_MAX_SEQ) {
                    bench_error("--parallel takes 1 to %u sequences, not %u", LLAMA_MAX_SEQ, o.par[k]);
                    ok = false;
                }
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
                bench_error("unknown output format '%s' (md, json or csv)", s);
                ok = false;
            }
        } else if (!strcmp(a, "--synth")) {
            ok = (o.synth_preset = cli_value(cmd, argc, argv, &i)) != NULL;
            if (ok && !vkl_synth_preset(o.synth_preset)) {
                bench_error("unknown preset '%s' (presets: %s)", o.synth_preset, vkl_synth_preset_names());
                ok = false;
            }
            model_only = a;
        } else if (!strcmp(a, "--synth-type")) {
            ok = (s = cli_value(cmd, argc, argv, &i)) != NULL;
            if (ok && !vkl_ggml_type_from_name(s, &o.synth_type)) {
                char types[256];
                vkl_ggml_type_list_names(types, sizeof types);
                bench_error("unknown type '%s' (types: %s)", s, types);
                ok = false;
            }
            model_only = a;
        } else if (!strcmp(a, "--profile")) {
            o.profile = true;
            model_only = a;
        } else {
            bench_error("unknown option '%s' (try --help)", a);
            return 1;
        }
        if (!ok)
            return 1;
    }
    if (kernels && model_only) {
        bench_error("%s does not apply to --kernels", model_only);
        return 1;
    }
    if (kernels_only && !kernels) {
        bench_error("%s applies to --kernels only", kernels_only);
        return 1;
    }
    if (ko.n_types == 0) /* the default: every type the kernels run */
        for (size_t i = 0; i < vkl_ggml_type_count() && ko.n_types < MAX_TESTS; i++)
            if (vkl_op_weight_type_supported(vkl_ggml_type_at(i)->id))
                ko.types[ko.n_types++] = vkl_ggml_type_at(i)->id;
    for (uint32_t i = 0; i < ko.n_shapes; i++)
        for (uint32_t j = 0; j < ko.n_types; j++)
            if (ko.shapes[i][1] % vkl_ggml_block_size(ko.types[j])) {
                bench_error("K = %u is not a multiple of the %s block size %u", ko.shapes[i][1],
                            vkl_ggml_type_name(ko.types[j]), vkl_ggml_block_size(ko.types[j]));
                return 1;
            }
    if (o.mo.model && (o.synth_preset || o.synth_type != GGML_TYPE_Q4_0)) {
        bench_error("--synth and --synth-type are for the synthetic model (no -m)");
        return 1;
    }
    bool any = false;
    for (uint32_t i = 0; i < o.n_pp; i++)
        any |= o.pp[i] > 0;
    for (uint32_t i = 0; i < o.n_tg; i++)
        any |= o.tg[i] > 0;
    if (!kernels && !any) {
        bench_error("no tests: every -p and -n length is 0");
        return 1;
    }
    if (kernels && quick && !reps_given)
        o.reps = 3;

    vkr_instance *inst = NULL;
    vkr_device *dev = NULL;
    vkr_instance_options io = {.validation = o.mo.validation};
    vkr_device_options dopts = {.selector = o.mo.device, .memory_limit = o.mo.memory_limit};
    if (vkr_instance_create(&io, &inst) != VKLLM_OK || vkr_device_create(inst, &dopts, &dev) != VKLLM_OK) {
        bench_fail();
        vkr_instance_destroy(inst);
        return 1;
    }
    int rc = kernels ? bench_kernels(dev, o.reps, &ko, fmt) : bench_model(dev, &o, fmt);
    vkr_device_destroy(dev);
    vkr_instance_destroy(inst);
    return rc;
}
