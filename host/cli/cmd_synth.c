/* `vkllm synth [--arch A] [--preset P] --type T -o FILE [--seed S]`: writes a GGUF of a supported family with
 * random weights. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "host/model/arch.h"
#include "host/cli/cli.h"
#include "host/cli/common.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "host/tools/synth.h"

static void usage(FILE *out)
{
    char types[256];
    vkl_ggml_type_list_names(types, sizeof types);
    fprintf(out, "usage: vkllm synth [--arch A] [--preset P] --type T -o FILE [--seed S]\n\n"
                 "Writes a GGUF of a supported family with random weights and a synthetic SentencePiece\n"
                 "vocabulary, for tests and benchmarks. The same seed gives the same file.\n\n"
                 "  --arch A         family: %s (alone: its tiny test preset)\n"
                 "  --preset P       %s\n"
                 "  --type T         type of the 2-D weights (norms stay f32): %s.\n"
                 "                   Weights whose rows are not a multiple of 256 get, as llama-quantize does,\n"
                 "                   q5_0 for q4_K, q5_1 for q5_K, q8_0 for q6_K, q4_0 for q2_K and q3_K, and\n"
                 "                   iq4_nl for iq4_xs and the IQ grid types (use preset tiny256 to keep every\n"
                 "                   weight in its type). The IQ grid types (iq2_xxs ... iq1_m) get random\n"
                 "                   blocks: vkllm reads them but has no quantizer for them\n"
                 "  -o, --output F   output file: written next to it under a temporary name and renamed over\n"
                 "                   it when complete (a failed or interrupted run leaves an existing F as it was)\n"
                 "  --seed S         random seed (default 1)\n"
                 "  -h, --help\n",
            vkl_arch_supported_names(), vkl_synth_preset_names(), types);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct progress_state {
    int last_pct;
} progress_state;

static void progress(void *user, uint64_t done, uint64_t total)
{
    progress_state *p = user;
    int pct = total ? (int)(done * 100 / total) : 100;
    if (pct == p->last_pct)
        return;
    p->last_pct = pct;
    fprintf(stderr, "\rwriting: %3d%% (%.2f / %.2f GiB)", pct, done / 1073741824.0, total / 1073741824.0);
    fflush(stderr);
}

int cmd_synth(int argc, char **argv)
{
    const char *preset = NULL, *arch = NULL, *type_name = NULL, *out = NULL;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        bool takes_value = !strcmp(a, "--preset") || !strcmp(a, "--arch") || !strcmp(a, "--type") || !strcmp(a, "-o") ||
                           !strcmp(a, "--output") || !strcmp(a, "--seed");
        if (!takes_value) {
            fprintf(stderr, "vkllm: synth: unknown argument '%s' (try 'vkllm synth --help')\n", a);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vkllm: synth: %s needs a value (try 'vkllm synth --help')\n", a);
            return 1;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--preset")) {
            preset = v;
        } else if (!strcmp(a, "--arch")) {
            arch = v;
        } else if (!strcmp(a, "--type")) {
            type_name = v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 0);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "vkllm: synth: --seed: '%s' is not a non-negative integer\n", v);
                return 1;
            }
            seed = s;
        } else {
            out = v;
        }
    }
    if ((!preset && !arch) || !type_name || !out) {
        fprintf(stderr, "vkllm: synth: --preset or --arch, --type and -o are required (try 'vkllm synth --help')\n");
        return 1;
    }
    struct stat out_st, stdout_st;
    if (!strcmp(out, "-") || (stat(out, &out_st) == 0 && fstat(STDOUT_FILENO, &stdout_st) == 0 &&
                              out_st.st_dev == stdout_st.st_dev && out_st.st_ino == stdout_st.st_ino)) {
        fprintf(stderr, "vkllm: synth: -o %s: a model cannot be written to standard output (it is read back); give a "
                        "file name\n", out);
        return 1;
    }
    if (arch && !vkl_arch_family_find(arch, strlen(arch))) {
        fprintf(stderr, "vkllm: synth: unknown architecture '%s' (supported: %s)\n", arch, vkl_arch_supported_names());
        return 1;
    }
    const synth_hparams *hp = preset ? vkl_synth_preset(preset) : vkl_synth_family_preset(arch);
    if (!hp) {
        fprintf(stderr, "vkllm: synth: unknown preset '%s' (presets: %s)\n", preset, vkl_synth_preset_names());
        return 1;
    }
    const char *hp_arch = hp->arch ? hp->arch : "llama";
    if (arch && strcmp(arch, hp_arch) != 0) {
        fprintf(stderr, "vkllm: synth: preset '%s' is a %s model, not %s\n", hp->preset, hp_arch, arch);
        return 1;
    }
    uint32_t type;
    if (!vkl_ggml_type_from_name(type_name, &type)) {
        char types[256];
        vkl_ggml_type_list_names(types, sizeof types);
        fprintf(stderr, "vkllm: synth: unknown type '%s' (types: %s)\n", type_name, types);
        return 1;
    }

    progress_state ps = {-1};
    synth_options o = {0};
    o.hp = hp;
    o.type = type;
    o.path = out;
    o.seed = seed;
    if (isatty(STDERR_FILENO)) {
        o.progress = progress;
        o.progress_user = &ps;
    }
    char partial[4200];
    if (vkl_gguf_writer_temp_name(out, partial, sizeof partial) < (int)sizeof partial)
        cli_remove_on_signal(0, partial);   /* Ctrl-C: no partial file left next to the target */
    double t0 = now_s();
    vkllm_status st = vkl_synth_write(&o);
    cli_remove_on_signal(0, NULL);
    double dt = now_s() - t0;
    if (ps.last_pct >= 0)
        fprintf(stderr, "\n");
    if (st != VKLLM_OK) {
        fprintf(stderr, "vkllm: %s\n", vkr_last_error());
        return 1;
    }
    /* Read the file back: counts for the summary, and a check that what was written is valid. */
    gguf_file *f;
    if (vkl_gguf_open(out, &f) != VKLLM_OK) {
        fprintf(stderr, "vkllm: synth wrote an unreadable file: %s\n", vkr_last_error());
        return 1;
    }
    uint64_t size = vkl_gguf_file_size(f), n_tensors = vkl_gguf_n_tensors(f);
    vkl_gguf_close(f);
    uint64_t np = vkl_synth_n_params(hp);
    printf("wrote %s: preset %s, %s weights, seed %" PRIu64 ", %.*f%s parameters, %" PRIu64 " tensors, %.2f MiB "
           "in %.2f s (%.0f MiB/s)\n",
           out, hp->preset, vkl_ggml_type_name(type), seed, np >= 1000000000ull ? 2 : 1,
           np >= 1000000000ull ? np / 1e9 : np / 1e6, np >= 1000000000ull ? " B" : " M", n_tensors, size / 1048576.0,
           dt, dt > 0 ? size / 1048576.0 / dt : 0.0);
    return 0;
}
