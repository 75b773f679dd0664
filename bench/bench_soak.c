/* Soak test: many decode steps on one context, watching for growth in process memory or device memory.
 *
 *     ./build/bench/bench_soak [--steps N] [--every K] [--ctx C] [--type T] [--model FILE] [--seed S]
 *
 * Writes a synthetic tiny model (vkllm synth --preset tiny; or uses --model), loads it, decodes a prompt,
 * then N single-token steps (default 10,000): sample (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05,
 * repetition penalty 1.1), stream-detokenize, decode — what `vkllm run` does per token, through the same
 * host-level pieces the public API wraps (vkl_llama_eval, sampler, tokenizer stream), so the device's block
 * allocator can be read (vkr_memory_allocated). When the context is full it is wrapped back to the end of
 * the prompt, as vkllm_context_truncate does, so any C (default 512) works for any N.
 *
 * Every K steps (default 1000) it prints the process's resident and virtual size (/proc/self/statm), the
 * device memory allocated in blocks, and the decode rate. At the end it reports the growth during warm-up
 * (step K to the middle: first touches of KV-cache pages, which are host memory on lavapipe, allocator
 * arenas) and judges the second half (middle to last sample), where a leak would keep growing and warm-up
 * cannot: resident memory up by more than 1 MiB, virtual memory by more than 16 MiB, or device memory at
 * all is "GREW". Exit status 0: no growth; 1: growth; 2: setup or decode failed. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/model/llama.h"
#include "host/format/quant.h"
#include "host/sampler.h"
#include "host/tools/synth.h"
#include "host/text/tokenizer.h"
#include "runtime/memory.h"

typedef struct sample {
    uint64_t step;
    uint64_t rss_kib, vm_kib;
    uint64_t device_bytes;
    double tok_s;
} sample;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void read_statm(uint64_t *vm_kib, uint64_t *rss_kib)
{
    *vm_kib = *rss_kib = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return;
    unsigned long long size = 0, resident = 0;
    if (fscanf(f, "%llu %llu", &size, &resident) == 2) {
        uint64_t page_kib = (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
        *vm_kib = size * page_kib;
        *rss_kib = resident * page_kib;
    }
    fclose(f);
}

static bool parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi || s[0] == '-') {
        fprintf(stderr, "bench_soak: %s expects an integer from %" PRIu64 " to %" PRIu64 "\n", flag, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    uint64_t steps = 10000, every = 1000, n_ctx = 512, seed = 1;
    const char *model = NULL, *type_name = "q8_0";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "--steps"))
            ok = parse_u64(a, v, 1, 100000000, &steps), i++;
        else if (!strcmp(a, "--every"))
            ok = parse_u64(a, v, 1, 100000000, &every), i++;
        else if (!strcmp(a, "--ctx"))
            ok = parse_u64(a, v, 64, 1 << 20, &n_ctx), i++;
        else if (!strcmp(a, "--seed"))
            ok = parse_u64(a, v, 0, UINT64_MAX, &seed), i++;
        else if (!strcmp(a, "--model") && v)
            model = v, i++;
        else if (!strcmp(a, "--type") && v)
            type_name = v, i++;
        else {
            fprintf(stderr, "usage: bench_soak [--steps N] [--every K] [--ctx C] [--type f32|f16|q8_0|q4_0] "
                            "[--model FILE] [--seed S]\n");
            return !strcmp(a, "-h") || !strcmp(a, "--help") ? 0 : 2;
        }
        if (!ok)
            return 2;
    }

    char synth_path[512] = "";
    if (!model) {
        uint32_t type;
        if (!vkl_ggml_type_from_name(type_name, &type)) {
            fprintf(stderr, "bench_soak: unknown type '%s'\n", type_name);
            return 2;
        }
        const char *tmp = getenv("TMPDIR");
        snprintf(synth_path, sizeof synth_path, "%s/bench_soak-%d.gguf", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        synth_options o = {.preset = "tiny", .type = type, .path = synth_path, .seed = seed};
        if (vkl_synth_write(&o) != VKLLM_OK) {
            fprintf(stderr, "bench_soak: synth: %s\n", vkr_last_error());
            return 2;
        }
        model = synth_path;
    }

    int rc = 2;
    gguf_file *f = NULL;
    vkr_instance *inst = NULL;
    vkr_device *dev = NULL;
    llama_model *m = NULL;
    llama_context *c = NULL;
    tokenizer *tok = NULL;
    sampler *smp = NULL;
    tokenizer_stream *stream = NULL;
    float *logits = NULL;
    int32_t *prompt = NULL;
    sample *samples = NULL;
    size_t n_prompt = 0;
    vkllm_status st = vkl_gguf_open(model, &f);
    if (st == VKLLM_OK)
        st = vkl_tokenizer_load(f, &tok);
    vkr_instance_options io = {0};
    if (st == VKLLM_OK)
        st = vkr_instance_create(&io, &inst);
    if (st == VKLLM_OK)
        st = vkr_device_create(inst, NULL, &dev);
    if (st == VKLLM_OK)
        st = vkl_llama_model_load(dev, f, NULL, NULL, &m);
    if (st == VKLLM_OK)
        st = vkl_llama_context_create(m, (uint32_t)n_ctx, 64, &c);
    sampler_params sp = vkl_sampler_default_params();
    sp.repeat_penalty = 1.1f;
    sp.seed = seed;
    if (st == VKLLM_OK)
        st = vkl_sampler_create(&sp, (int32_t)m->hp.n_vocab, &smp);
    if (st == VKLLM_OK)
        st = vkl_tokenizer_stream_create(tok, false, &stream);
    static const char text[] = "Once upon a time, there was a little girl who loved to soak in the rain.";
    if (st == VKLLM_OK)
        st = vkl_tokenizer_encode(tok, text, sizeof text - 1, true, false, &prompt, &n_prompt);
    if (st == VKLLM_OK && (n_prompt == 0 || n_prompt >= n_ctx))
        st = vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "prompt of %zu tokens for a context of %" PRIu64, n_prompt, n_ctx);
    size_t n_samples = (size_t)(steps / every) + 2;
    if (st == VKLLM_OK && (!(logits = malloc(m->hp.n_vocab * sizeof *logits)) ||
                           !(samples = calloc(n_samples, sizeof *samples))))
        st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == VKLLM_OK)
        st = vkl_llama_eval(c, prompt, (uint32_t)n_prompt, 0, false, NULL);
    if (st != VKLLM_OK) {
        fprintf(stderr, "bench_soak: %s\n", vkr_last_error());
        goto out;
    }
    printf("bench_soak: %s on %s, context %" PRIu64 ", prompt %zu tokens, %" PRIu64 " decode steps\n", model,
           dev->info.name, n_ctx, n_prompt, steps);
    printf("%10s %12s %12s %14s %10s\n", "step", "RSS KiB", "VM KiB", "device bytes", "tok/s");

    size_t ns = 0;
    uint32_t pos = (uint32_t)n_prompt;
    uint64_t wraps = 0, bytes_out = 0;
    double t_last = now_s();
    for (uint64_t step = 0; step <= steps; step++) {
        if (step % every == 0 || step == steps) {
            sample *s = &samples[ns++];
            double t = now_s();
            s->step = step;
            read_statm(&s->vm_kib, &s->rss_kib);
            s->device_bytes = vkr_memory_allocated(dev);
            uint64_t done = ns > 1 ? step - samples[ns - 2].step : 0;
            s->tok_s = done && t > t_last ? done / (t - t_last) : 0.0;
            t_last = t;
            printf("%10" PRIu64 " %12" PRIu64 " %12" PRIu64 " %14" PRIu64 " %10.1f\n", s->step, s->rss_kib, s->vm_kib,
                   s->device_bytes, s->tok_s);
            fflush(stdout);
            if (step == steps)
                break;
        }
        memcpy(logits, vkl_llama_context_logits(c), m->hp.n_vocab * sizeof *logits);
        int32_t id = vkl_sampler_sample(smp, logits);
        vkl_sampler_accept(smp, id);
        const char *piece;
        size_t len;
        if ((st = vkl_tokenizer_stream_push(stream, id, &piece, &len)) != VKLLM_OK)
            break;
        bytes_out += len;
        if (pos >= n_ctx) { /* full: keep the prompt, forget the rest (vkllm_context_truncate) */
            pos = (uint32_t)n_prompt;
            wraps++;
        }
        if ((st = vkl_llama_eval(c, &id, 1, pos, false, NULL)) != VKLLM_OK)
            break;
        pos++;
    }
    if (st != VKLLM_OK) {
        fprintf(stderr, "bench_soak: decode failed: %s\n", vkr_last_error());
        goto out;
    }

    /* A leak grows with the number of steps; warm-up (first-touch of the KV cache and activation pages,
     * which on lavapipe are host memory, allocator arenas) happens once. So growth is judged on the second
     * half of the run: from the first sample at or past the middle to the last. */
    size_t mid = 0;
    while (mid + 1 < ns && samples[mid].step < steps / 2)
        mid++;
    const sample *first = ns > 2 ? &samples[1] : &samples[0], *base = &samples[mid], *last = &samples[ns - 1];
    int64_t d_rss = (int64_t)last->rss_kib - (int64_t)base->rss_kib;
    int64_t d_vm = (int64_t)last->vm_kib - (int64_t)base->vm_kib;
    int64_t d_dev = (int64_t)last->device_bytes - (int64_t)base->device_bytes;
    uint64_t max_rss = 0;
    for (size_t i = 0; i < ns; i++)
        max_rss = samples[i].rss_kib > max_rss ? samples[i].rss_kib : max_rss;
    bool grew = d_rss > 1024 || d_vm > 16 * 1024 || d_dev != 0;
    printf("context wrapped %" PRIu64 " times, %" PRIu64 " bytes of text streamed, peak RSS %" PRIu64 " KiB\n", wraps,
           bytes_out, max_rss);
    printf("warm-up, step %" PRIu64 " to %" PRIu64 ": RSS %+" PRId64 " KiB, VM %+" PRId64 " KiB, device %+" PRId64
           " bytes\n",
           first->step, base->step, (int64_t)base->rss_kib - (int64_t)first->rss_kib,
           (int64_t)base->vm_kib - (int64_t)first->vm_kib, (int64_t)base->device_bytes - (int64_t)first->device_bytes);
    printf("steady, step %" PRIu64 " to %" PRIu64 ": RSS %+" PRId64 " KiB, VM %+" PRId64 " KiB, device %+" PRId64
           " bytes\n",
           base->step, last->step, d_rss, d_vm, d_dev);
    printf("verdict: %s\n", grew ? "GREW in the second half (possible leak)" : "no growth");
    rc = grew ? 1 : 0;
out:
    free(samples);
    free(logits);
    free(prompt);
    vkl_tokenizer_stream_free(stream);
    vkl_sampler_free(smp);
    vkl_tokenizer_free(tok);
    vkl_llama_context_free(c);
    vkl_llama_model_free(m);
    vkr_device_destroy(dev);
    vkr_instance_destroy(inst);
    vkl_gguf_close(f);
    if (synth_path[0])
        remove(synth_path);
    return rc;
}
