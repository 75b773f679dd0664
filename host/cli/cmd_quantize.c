/* `vkllm quantize [options] IN.gguf OUT.gguf TYPE [THREADS]`: llama-quantize's command, same arguments. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"
#include "host/format/quant.h"
#include "host/format/quantize_model.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vkllm quantize [options] IN.gguf OUT.gguf TYPE [THREADS]\n\n"
            "Converts a model to a llama.cpp file type: the weights get TYPE's tensor type, except where the\n"
            "type's mix gives some tensors more bits (as llama-quantize does: the output tensor Q6_K; in the\n"
            "_M and _L mixes attn_v and ffn_down in the first, last and every third layer Q5_K/Q6_K; rows that\n"
            "are not a multiple of 256 fall back to Q4_0/Q5_0/Q5_1/Q8_0/IQ4_NL). Norms and other 1-D tensors\n"
            "stay as they are. Each block's scale is searched for least squared error. The output is written to\n"
            "a temporary file beside OUT and renamed over OUT when complete.\n\n"
            "TYPE (case-insensitive; or its general.file_type number):\n ");
    for (uint32_t i = 0; i < vkl_quantize_ftype_count(); i++)
        fprintf(out, " %s", vkl_ggml_file_type_name(vkl_quantize_ftype_at(i)->ftype));
    fprintf(out, "\n\n"
                 "  --allow-requantize         accept quantized input tensors (quality drops further)\n"
                 "  --pure                     no mix: every weight gets TYPE's tensor type\n"
                 "  --output-tensor-type T     output.weight's type (q8_0, q6_K, f16, ...)\n"
                 "  --token-embedding-type T   token_embd.weight's type\n"
                 "  -t, --threads N            worker threads (default: one per CPU)\n"
                 "  -h, --help\n");
}

static void progress_bar(void *user, uint64_t done, uint64_t total)
{
    int *last = user;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == *last)
        return;
    *last = pct;
    int width = 40, filled = pct * width / 100;
    fprintf(stderr, "\rquantizing [%.*s%*s] %3d%%", filled, "########################################",
            width - filled, "", pct);
    fflush(stderr);
}

static bool parse_type_option(const char *flag, const char *v, uint32_t *type)
{
    if (vkl_quantize_tensor_type_find(v, type))
        return true;
    fprintf(stderr, "vkllm quantize: %s: unknown tensor type '%s' (f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, "
                    "q2_K, q3_K, q4_K, q5_K, q6_K, iq4_nl, iq4_xs)\n", flag, v);
    return false;
}

static double file_mib(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size / 1048576.0 : 0.0;
}

int cmd_quantize(int argc, char **argv)
{
    quantize_params p = {0};
    p.output_tensor_type = QUANTIZE_TYPE_AUTO;
    p.token_embedding_type = QUANTIZE_TYPE_AUTO;
    const char *pos[4];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--allow-requantize")) {
            p.allow_requantize = true;
        } else if (!strcmp(a, "--pure")) {
            p.pure = true;
        } else if (!strcmp(a, "--output-tensor-type") || !strcmp(a, "--token-embedding-type")) {
            const char *v = cli_value("quantize", argc, argv, &i);
            if (!v || !parse_type_option(a, v, a[2] == 'o' ? &p.output_tensor_type : &p.token_embedding_type))
                return 1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            const char *v = cli_value("quantize", argc, argv, &i);
            int64_t n;
            if (!v || !cli_parse_i64("quantize", a, v, 1, 1024, &n))
                return 1;
            p.n_threads = (uint32_t)n;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "vkllm quantize: unknown option '%s' (try 'vkllm quantize --help')\n", a);
            return 1;
        } else if (n_pos < 4) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "vkllm quantize: too many arguments (try 'vkllm quantize --help')\n");
            return 1;
        }
    }
    if (n_pos < 3) {
        fprintf(stderr, "vkllm quantize: need IN.gguf OUT.gguf TYPE (try 'vkllm quantize --help')\n");
        return 1;
    }
    p.ftype = vkl_quantize_ftype_find(pos[2]);
    if (!p.ftype) {
        fprintf(stderr, "vkllm quantize: unknown type '%s' (see 'vkllm quantize --help')\n", pos[2]);
        return 1;
    }
    if (n_pos == 4) {
        int64_t n;
        if (!cli_parse_i64("quantize", "THREADS", pos[3], 1, 1024, &n))
            return 1;
        p.n_threads = (uint32_t)n;
    }
    int last_pct = -1;
    if (isatty(STDERR_FILENO)) {
        p.progress = progress_bar;
        p.progress_user = &last_pct;
    }
    double t0 = cli_now_ms();
    vkllm_status st = vkl_quantize_model(pos[0], pos[1], &p);
    if (last_pct >= 0)
        fprintf(stderr, "\n");
    if (st != VKLLM_OK) {
        cli_error("quantize");
        return 1;
    }
    printf("wrote %s: %s (file type %u), %.2f MiB -> %.2f MiB in %.2f s\n", pos[1], vkl_ggml_file_type_name(p.ftype->ftype), p.ftype->ftype,
           file_mib(pos[0]), file_mib(pos[1]), (cli_now_ms() - t0) / 1000.0);
    return 0;
}
