#include "host/cli/common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *cli_model_options_help =
    "  -m, --model FILE      GGUF model file (required)\n"
    "  -c, --ctx-size N      context positions (default: the smaller of the model's and 4096)\n"
    "  -b, --batch-size N    prompt tokens per batch (default 512)\n"
    "  --device N|NAME       Vulkan device index or name substring (default: $VKLLM_DEVICE or the best)\n"
    "  --memory-limit MIB    refuse device allocations beyond this many MiB\n"
    "  --validation          enable the Vulkan validation layer\n";

const char *cli_sampling_options_help =
    "  --temp T              temperature, 0 to 100 (default 0.8; 0: greedy)\n"
    "  --top-k K             keep the K most likely tokens (default 40; 0: off)\n"
    "  --top-p P             nucleus sampling, 0 to 1 (default 0.95; 1: off)\n"
    "  --min-p P             drop tokens below P x the best one's probability, 0 to 1 (default 0.05; 0: off)\n"
    "  --repeat-penalty F    penalty on recent tokens, 0.01 to 100 (default 1.0: off)\n"
    "  --repeat-last-n N     how many recent tokens the penalty sees (default 64)\n"
    "  -s, --seed S          random seed (default: from the clock)\n";

void cli_sampling_init(cli_sampling_opts *o)
{
    vkllm_sampler_default_params(&o->params);
    o->seed_given = false;
}

bool cli_sampling_option(cli_sampling_opts *o, int argc, char **argv, int *i, bool *ok)
{
    const char *a = argv[*i], *cmd = argv[0], *s;
    vkllm_sampler_params *p = &o->params;
    int64_t v = 0;
    *ok = true;
    if (!strcmp(a, "--temp")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_f32(cmd, a, s, 0, 100, &p->temperature);
    } else if (!strcmp(a, "--top-k")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_i64(cmd, a, s, 0, INT32_MAX, &v);
        p->top_k = (int32_t)v;
    } else if (!strcmp(a, "--top-p")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_f32(cmd, a, s, 0, 1, &p->top_p);
    } else if (!strcmp(a, "--min-p")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_f32(cmd, a, s, 0, 1, &p->min_p);
    } else if (!strcmp(a, "--repeat-penalty")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_f32(cmd, a, s, 0.01f, 100, &p->repeat_penalty);
    } else if (!strcmp(a, "--repeat-last-n")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_i64(cmd, a, s, 0, INT32_MAX, &v);
        p->repeat_last_n = (int32_t)v;
    } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_i64(cmd, a, s, 0, INT64_MAX, &v);
        p->seed = (uint64_t)v;
        o->seed_given = true;
    } else {
        return false;
    }
    return true;
}

void cli_sampling_finish(cli_sampling_opts *o)
{
    if (!o->seed_given)
        o->params.seed = (uint64_t)(cli_now_ms() * 1000.0);
}

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char remove_paths[2][4096];
static volatile sig_atomic_t remove_set[2];

static void remove_and_die(int sig)
{
    for (int i = 0; i < 2; i++)
        if (remove_set[i])
            unlink(remove_paths[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_remove_on_signal(int slot, const char *path)
{
    static bool installed;
    remove_set[slot] = 0;
    if (!path || snprintf(remove_paths[slot], sizeof remove_paths[slot], "%s", path) >= (int)sizeof remove_paths[slot])
        return;
    remove_set[slot] = 1;
    if (installed)
        return;
    installed = true;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_and_die;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)   /* nohup: stays ignored */
            sigaction(sigs[i], &sa, NULL);
    }
}

void cli_error(const char *cmd) { fprintf(stderr, "vkllm %s: %s\n", cmd, vkllm_last_error()); }

const char *cli_value(const char *cmd, int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "vkllm %s: option %s needs a value\n", cmd, argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "vkllm %s: %s expects an integer from %lld to %lld, got '%s'\n", cmd, flag, (long long)min,
                (long long)max, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_f32(const char *cmd, const char *flag, const char *s, float min, float max, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || isnan(v)) {
        fprintf(stderr, "vkllm %s: %s expects a number, got '%s'\n", cmd, flag, s);
        return false;
    }
    /* An underflow (1e-45) is the tiny number it is; an overflow is out of range like any other value. */
    if (v < min || v > max) {
        fprintf(stderr, "vkllm %s: %s expects a number from %g to %g, got '%s'\n", cmd, flag, (double)min, (double)max,
                s);
        return false;
    }
    *out = (float)v;
    return true;
}

bool cli_model_option(cli_model_opts *o, int argc, char **argv, int *i, bool *ok)
{
    const char *a = argv[*i];
    const char *cmd = argv[0];
    int64_t v;
    const char *s;
    *ok = true;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        *ok = (o->model = cli_value(cmd, argc, argv, i)) != NULL;
    } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_i64(cmd, a, s, 1, INT32_MAX, &v);
        if (*ok)
            o->n_ctx = (uint32_t)v;
    } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_i64(cmd, a, s, 1, 65536, &v);
        if (*ok)
            o->n_batch = (uint32_t)v;
    } else if (!strcmp(a, "--device")) {
        *ok = (o->device = cli_value(cmd, argc, argv, i)) != NULL;
    } else if (!strcmp(a, "--memory-limit")) {
        *ok = (s = cli_value(cmd, argc, argv, i)) && cli_parse_i64(cmd, a, s, 1, INT64_MAX >> 20, &v);
        if (*ok)
            o->memory_limit = (uint64_t)v << 20;
    } else if (!strcmp(a, "--validation")) {
        o->validation = true;
    } else {
        return false;
    }
    return true;
}

static bool progress_bar(float fraction, void *user)
{
    (void)user;
    int width = 40, filled = (int)(fraction * width + 0.5f);
    fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "########################################", width - filled,
            "", (int)(fraction * 100 + 0.5f));
    if (fraction >= 1.0f)
        fprintf(stderr, "\r%*s\r", width + 20, "");
    fflush(stderr);
    return true;
}

bool cli_load_model(const char *cmd, const cli_model_opts *o, vkllm_model **model)
{
    *model = NULL;
    if (!o->model) {
        fprintf(stderr, "vkllm %s: no model given (-m FILE)\n", cmd);
        return false;
    }
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    mp.device = o->device;
    mp.memory_limit = o->memory_limit;
    mp.validation = o->validation;
    if (isatty(STDERR_FILENO))
        mp.progress = progress_bar;
    if (vkllm_model_load(o->model, &mp, model) != VKLLM_OK) {
        if (mp.progress)
            fprintf(stderr, "\n");
        cli_error(cmd);
        return false;
    }
    return true;
}

bool cli_load(const char *cmd, const cli_model_opts *o, vkllm_model **model, vkllm_context **ctx, double *load_ms)
{
    *ctx = NULL;
    double t0 = cli_now_ms();
    if (!cli_load_model(cmd, o, model))
        return false;
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = o->n_ctx;
    cp.n_batch = o->n_batch;
    if (vkllm_context_create(*model, &cp, ctx) != VKLLM_OK) {
        cli_error(cmd);
        vkllm_model_free(*model);
        *model = NULL;
        return false;
    }
    if (load_ms)
        *load_ms = cli_now_ms() - t0;
    return true;
}

static bool out_failed(const char *cmd)
{
    fprintf(stderr, "vkllm %s: cannot write the output: %s\n", cmd, errno ? strerror(errno) : "write error");
    return false;
}

bool cli_write_out(const char *cmd, const char *text, size_t len)
{
    errno = 0;
    if ((len && fwrite(text, 1, len, stdout) != len) || fflush(stdout) != 0)
        return out_failed(cmd);
    return true;
}

bool cli_flush_out(const char *cmd)
{
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout))
        return out_failed(cmd);
    return true;
}

void cli_reserve_std_streams(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int got = open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY);
            if (got >= 0 && got != fd)   /* cannot happen: the lower numbers are open by now */
                close(got);
        }
}

bool cli_read_file(const char *cmd, const char *path, size_t max, const char *limit_note, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vkllm %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return false;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    bool too_long = false;
    errno = 0;
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        if (n > max) {   /* /dev/zero, or just too long: stop before memory runs out */
            too_long = true;
            break;
        }
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!buf || err || too_long || n > max) {
        if (!buf)
            fprintf(stderr, "vkllm %s: cannot read %s: out of host memory\n", cmd, path);
        else if (err)
            fprintf(stderr, "vkllm %s: cannot read %s: %s\n", cmd, path, strerror(err));
        else
            fprintf(stderr, "vkllm %s: %s is larger than %zu bytes, %s\n", cmd, path, max, limit_note);
        free(buf);
        return false;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return true;
}

const char *cli_chat_template(const char *cmd, const vkllm_model *model, const char *asked)
{
    if (asked)
        return asked;
    const char *jinja = vkllm_model_chat_template(model);
    const char *name = vkllm_chat_template_detect(jinja);
    if (name)
        return name;
    if (jinja) {
        /* Guessing would be a silently wrong format. */
        fprintf(stderr, "vkllm %s: the model's chat template is not one vkllm recognises; name its format with "
                        "--chat-template NAME (%s)\n",
                cmd, vkllm_chat_template_names());
        return NULL;
    }
    fprintf(stderr, "vkllm %s: warning: the model has no chat template; using %s (choose with --chat-template)\n", cmd,
            VKLLM_CHAT_TEMPLATE_DEFAULT);
    return VKLLM_CHAT_TEMPLATE_DEFAULT;
}

bool cli_check_chat_template(const char *cmd, const char *name)
{
    char *text = NULL;
    size_t len;
    vkllm_status st = vkllm_chat_format(name, NULL, 0, 0, false, &text, &len);
    vkllm_free(text);
    if (st != VKLLM_OK)
        cli_error(cmd);
    return st == VKLLM_OK;
}
