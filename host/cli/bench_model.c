/* `vkllm bench` on a model, like llama-bench: ppN (an N-token prompt, batched, from an empty context) and
 * tgN (N tokens generated one at a time from an empty context) in tokens per second, with the weight bytes
 * read per second and the CPU and GPU time per token. Without -m, on a synthetic model written for it. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/cli/cmd_bench.h"
#include "host/format/gguf.h"
#include "host/model/llama.h"
#include "host/format/quant.h"
#include "host/tools/synth.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* CPU time of the process (all threads: on a CPU device that includes the kernels) or of the calling thread
 * alone (the host's own work per token: recording is done once, so this is submission, waiting and the
 * logits; the driver's own threads are not in it). */
static double cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
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
    {"host_ms_per_token", "host ms/tok", K_NUM, IN_BOTH, 1},
    {"gpu_ms_per_token", "GPU ms/tok", K_NUM, IN_BOTH, 1},
    {"n_parallel", "n_parallel", K_NUM, IN_DATA, 1},
    {"per_seq_ts", "t/s/seq", K_NUM, IN_BOTH, 1},
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
        bench_error("out of host memory");
    for (uint32_t r = 0; r <= b->reps && ok; r++) {   /* run 0 is the warm-up */
        random_tokens(b, tok, n);
        double t0 = now_ns();
        if (vkl_llama_eval(b->ctx, tok, n, 0, false, b->logits) != VKLLM_OK)
            ok = bench_fail();
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
    if (vkl_llama_context_create(b->model, n, 1, &pc) != VKLLM_OK) {
        /* Only the GPU column is lost: the device may have no room for a second KV cache. */
        bench_error("note: no GPU time for tg%u: %s", n, vkr_last_error());
        return true;
    }
    vkl_llama_context_set_timing(pc, true);
    enum { MAX_OPS = 64 };
    op_time ops[MAX_OPS];
    uint32_t n_ops = 0;
    double total = 0;
    bool ok = true;
    for (uint32_t i = 0; i <= n && ok; i++) {   /* the first token records the graph: not counted */
        int32_t tok;
        random_tokens(b, &tok, 1);
        if (vkl_llama_eval(pc, &tok, 1, i ? i - 1 : 0, false, b->logits) != VKLLM_OK) {
            ok = bench_fail();
            break;
        }
        if (i == 0)
            continue;
        total += vkl_llama_context_last_gpu_ns(pc);
        const vkr_graph *g = vkl_llama_context_decode_graph(pc);
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
        const vkr_graph *g = vkl_llama_context_decode_graph(pc);
        fprintf(stderr, "  per token: %u dispatches, %u copies, %u barriers; the timestamp after every dispatch "
                "serializes them (times without overlap)\n", vkr_graph_size(g) - vkr_graph_copy_count(g),
                vkr_graph_copy_count(g), vkr_graph_barrier_count(g));
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
    vkl_llama_context_free(pc);
    return ok;
}

static bool test_tg(bench_run *b, uint32_t n)
{
    double *ts = calloc(b->reps, sizeof *ts);
    if (!ts) {
        bench_error("out of host memory");
        return false;
    }
    bool ok = true;
    double cpu_total = 0, host_total = 0;
    for (uint32_t r = 0; r <= b->reps && ok; r++) {   /* run 0 is the warm-up */
        uint32_t count = r == 0 && n > TG_WARMUP_MAX ? TG_WARMUP_MAX : n;
        double c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), h0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), t0 = now_ns();
        for (uint32_t i = 0; i < count && ok; i++) {
            int32_t tok;
            random_tokens(b, &tok, 1);
            if (vkl_llama_eval(b->ctx, &tok, 1, i, false, b->logits) != VKLLM_OK)
                ok = bench_fail();
        }
        double dt = now_ns() - t0, dc = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
        double dh = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - h0;
        if (r > 0) {
            ts[r - 1] = n / (fmax(dt, 1.0) * 1e-9);
            cpu_total += dc;
            host_total += dh;
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
        table_num(&b->t, "host_ms_per_token", host_total / ((double)n * b->reps) / 1e6, 3);
        table_num(&b->t, "gpu_ms_per_token", gpu_ns / 1e6, 3);
    }
    free(ts);
    return ok;
}

/* tgN xP (--parallel, like llama-batched-bench): P sequences of one context generate N tokens each, one
 * token per sequence per step, every step one batch (vkl_llama_eval_seqs) with each token's logits; t/s is the
 * aggregate, t/s/seq each sequence's rate. */
static bool test_tg_parallel(bench_run *b, uint32_t n, uint32_t n_par)
{
    llama_context *pc = NULL;
    double *ts = calloc(b->reps, sizeof *ts);
    int32_t *tok = malloc(n_par * sizeof *tok);
    uint32_t *pos = malloc(n_par * sizeof *pos), *seq = malloc(n_par * sizeof *seq);
    int8_t *want = malloc(n_par);
    float *logits = malloc((size_t)n_par * b->mi.n_vocab * sizeof *logits);
    bool ok = ts && tok && pos && seq && want && logits;
    if (!ok)
        bench_error("out of host memory");
    if (ok && vkl_llama_context_create_seq(b->model, n, n_par, n_par, &pc) != VKLLM_OK)
        ok = bench_fail();
    if (ok && n_par > vkl_llama_context_seq_batch_max(pc)) {
        bench_error("%u parallel sequences: at most %u logit rows per batch on this device", n_par,
                    vkl_llama_context_seq_batch_max(pc));
        ok = false;
    }
    for (uint32_t s = 0; ok && s < n_par; s++)
        seq[s] = s, want[s] = 1;
    double cpu_total = 0;
    for (uint32_t r = 0; r <= b->reps && ok; r++) {   /* run 0 is the warm-up */
        uint32_t count = r == 0 && n > TG_WARMUP_MAX ? TG_WARMUP_MAX : n;
        double c0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns();
        for (uint32_t i = 0; i < count && ok; i++) {
            random_tokens(b, tok, n_par);
            for (uint32_t s = 0; s < n_par; s++)
                pos[s] = i;
            if (vkl_llama_eval_seqs(pc, tok, pos, seq, want, n_par, logits) != VKLLM_OK)
                ok = bench_fail();
        }
        double dt = now_ns() - t0, dc = cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (r > 0) {
            ts[r - 1] = (double)n * n_par / (fmax(dt, 1.0) * 1e-9);
            cpu_total += dc;
        }
    }
    if (ok) {
        char name[48];
        snprintf(name, sizeof name, "tg%u x%u", n, n_par);
        row_common(b, name, 0, n, ts);
        double mean, sd;
        mean_stddev(ts, b->reps, &mean, &sd);
        double gbs = b->mi.bytes_per_token * (mean / n_par) / 1e9;   /* the weights are read once per step */
        table_set(&b->t, "bytes_per_token", "%" PRIu64, b->mi.bytes_per_token);
        table_num(&b->t, "gbs", gbs, 2);
        table_num(&b->t, "bw_pct", 100.0 * gbs / b->bw_gbs, 1);
        table_num(&b->t, "cpu_ms_per_token", cpu_total / ((double)n * n_par * b->reps) / 1e6, 3);
        table_set(&b->t, "n_parallel", "%u", n_par);
        table_num(&b->t, "per_seq_ts", mean / n_par, 2);
    }
    free(ts);
    free(tok);
    free(pos);
    free(seq);
    free(want);
    free(logits);
    vkl_llama_context_free(pc);
    return ok;
}

/* Reads what the rows say about the model from its GGUF; the file is then closed. */
static void describe_model(const gguf_file *f, const llama_model *m, const char *path, model_info *mi)
{
    const char *name;
    uint64_t len;
    if (vkl_gguf_get_str(f, "general.name", &name, &len) && len > 0)
        snprintf(mi->name, sizeof mi->name, "%.*s", (int)(len < 200 ? len : 200), name);
    else {
        const char *base = strrchr(path, '/');
        snprintf(mi->name, sizeof mi->name, "%s", base ? base + 1 : path);
    }
    mi->type = vkl_ggml_type_name(m->weight_type) ? vkl_ggml_type_name(m->weight_type) : "?";
    mi->bytes = m->weight_bytes;
    mi->n_params = 0;
    for (uint64_t i = 0; i < vkl_gguf_n_tensors(f); i++)
        mi->n_params += vkl_gguf_tensor_at(f, i)->n_elements;
    mi->bytes_per_token = vkl_bench_gguf_bytes_per_token(f);
    mi->n_vocab = m->hp.n_vocab;
}

int bench_model(vkr_device *dev, const model_opts *o, out_format fmt)
{
    bench_run b;
    memset(&b, 0, sizeof b);
    b.dev = dev;
    b.reps = o->reps;
    b.profile = o->profile;
    b.rng = 0x62656E6368ull;
    b.t = TABLE_INIT(model_cols);
    bench_device_strings(dev, b.driver, sizeof b.driver, b.api, sizeof b.api);

    uint32_t longest = 1;
    for (uint32_t i = 0; i < o->n_pp; i++)
        longest = o->pp[i] > longest ? o->pp[i] : longest;
    for (uint32_t i = 0; i < o->n_tg; i++)
        longest = o->tg[i] > longest ? o->tg[i] : longest;
    b.n_ctx = o->mo.n_ctx ? o->mo.n_ctx : longest;
    b.n_batch = o->mo.n_batch ? o->mo.n_batch : 512;
    if (b.n_ctx < longest) {
        bench_error("a test needs %u positions but the context has %u (raise -c)", longest, b.n_ctx);
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
            bench_error("cannot create a temporary file %s: %s", tmp, strerror(errno));
            return 1;
        }
        close(fd);
        /* Ctrl-C or a kill while the model is written or loaded must not leave it (or its partial file) behind. */
        char partial[4200];
        cli_remove_on_signal(0, tmp);
        if (vkl_gguf_writer_temp_name(tmp, partial, sizeof partial) < (int)sizeof partial)
            cli_remove_on_signal(1, partial);
        if (isatty(STDERR_FILENO))
            fprintf(stderr, "writing a synthetic %s %s model to %s\n", preset, vkl_ggml_type_name(o->synth_type), tmp);
        synth_options so;
        memset(&so, 0, sizeof so);
        so.preset = preset;
        so.type = o->synth_type;
        so.path = tmp;
        so.seed = 1;
        if (vkl_synth_write(&so) != VKLLM_OK) {
            bench_fail();
            goto out;
        }
        path = tmp;
    }
    if (vkl_gguf_open(path, &f) != VKLLM_OK) {
        bench_fail();
        goto out;
    }
    /* The read bandwidth before the weights go up, while the device memory is free. */
    if (!bench_measure_bandwidth(dev, vkl_bench_read_buffer_size(dev), o->reps > 3 ? o->reps : 3, &bw, NULL))
        goto out;
    b.bw_gbs = bw.gbps;
    if (vkl_llama_model_load(dev, f, NULL, NULL, &b.model) != VKLLM_OK) {
        bench_fail();
        goto out;
    }
    describe_model(f, b.model, path, &b.mi);
    b.mi.file = o->mo.model;
    vkl_gguf_close(f);
    f = NULL;
    if (tmp[0]) {   /* everything is on the device now */
        unlink(tmp);
        tmp[0] = '\0';
        cli_remove_on_signal(0, NULL);
        cli_remove_on_signal(1, NULL);
    }
    if (vkl_llama_context_create(b.model, b.n_ctx, b.n_batch, &b.ctx) != VKLLM_OK) {
        bench_fail();
        goto out;
    }
    b.logits = malloc((size_t)b.mi.n_vocab * sizeof *b.logits);
    if (!b.logits) {
        bench_error("out of host memory");
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
    for (uint32_t i = 0; i < o->n_tg && ok; i++)
        for (uint32_t j = 0; j < o->n_par && ok && o->tg[i]; j++) {
            progress("tg", o->tg[i]);
            ok = test_tg_parallel(&b, o->tg[i], o->par[j]);
        }
    progress(NULL, 0);
    if (ok && b.t.oom) {
        bench_error("out of host memory");
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
        vkl_gguf_close(f);
    if (tmp[0])
        unlink(tmp);
    free(b.logits);
    vkl_llama_context_free(b.ctx);
    vkl_llama_model_free(b.model);
    table_free(&b.t);
    return rc;
}
