/* Options shared by the sub-commands that load a model, and small helpers. */
#ifndef VKLLM_CLI_COMMON_H
#define VKLLM_CLI_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "vkllm.h"

typedef struct cli_model_opts {
    const char *model;
    const char *device;
    uint32_t n_ctx, n_batch;
    uint64_t memory_limit;
    bool validation;
} cli_model_opts;

/* If argv[*i] is a shared option (-m, -c, -b, --device, --memory-limit, --validation), consumes it (and its
 * value), sets *ok = false on a bad value (message printed) and returns true. */
bool cli_model_option(cli_model_opts *o, int argc, char **argv, int *i, bool *ok);
extern const char *cli_model_options_help;

/* Sampling options (--temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, -s/--seed), as
 * cli_model_option. cli_sampling_init sets the defaults; cli_sampling_finish picks a seed from the clock
 * when none was given. */
typedef struct cli_sampling_opts {
    vkllm_sampler_params params;
    bool seed_given;
} cli_sampling_opts;
void cli_sampling_init(cli_sampling_opts *o);
bool cli_sampling_option(cli_sampling_opts *o, int argc, char **argv, int *i, bool *ok);
void cli_sampling_finish(cli_sampling_opts *o);
extern const char *cli_sampling_options_help;

/* Value parsing with one clear message on error: "vkllm <cmd>: -n expects an integer from 0 to 9, got 'x'". */
bool cli_parse_i64(const char *cmd, const char *flag, const char *s, int64_t min, int64_t max, int64_t *out);
bool cli_parse_f32(const char *cmd, const char *flag, const char *s, float min, float max, float *out);
/* Returns argv[++*i] or prints "option X needs a value" and returns NULL. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* Loads the model (progress bar on a terminal) and creates a context. Prints the error and returns false. */
bool cli_load(const char *cmd, const cli_model_opts *o, vkllm_model **model, vkllm_context **ctx, double *load_ms);
/* The model alone (for commands that make their own contexts). */
bool cli_load_model(const char *cmd, const cli_model_opts *o, vkllm_model **model);
/* The chat format: `asked` (--chat-template), else the one the model's template implements, else the
 * default with a warning on stderr when the model has none; NULL (message printed) for a template vkllm does not
 * recognise. */
const char *cli_chat_template(const char *cmd, const vkllm_model *model, const char *asked);
/* Whether `name` is a built-in chat format (else prints the error): checked before the slow load. */
bool cli_check_chat_template(const char *cmd, const char *name);
/* Reads a whole file (NUL-terminated). More than max bytes is refused: "vkllm <cmd>: <path> is larger than
 * <max> bytes, <limit_note>". */
#define CLI_MAX_TEXT_FILE ((size_t)1 << 30)
bool cli_read_file(const char *cmd, const char *path, size_t max, const char *limit_note, char **data, size_t *len);
/* "" for 1, else "s": "1 token", "2 tokens". */
static inline const char *cli_plural(uint64_t n) { return n == 1 ? "" : "s"; }
/* Standard output that cannot be written (a full disk, a pipe closed with SIGPIPE ignored, a closed stdout)
 * is an error: cli_write_out writes and flushes streamed text, cli_flush_out ends a command's output. Both
 * print "vkllm <cmd>: cannot write the output: <reason>" and return false on failure. */
bool cli_write_out(const char *cmd, const char *text, size_t len);
bool cli_flush_out(const char *cmd);
/* A closed standard stream is opened on /dev/null before anything else can take its number; stdout so
 * that writes fail (read-only), reported as above instead of output lost without a word. */
void cli_reserve_std_streams(void);
double cli_now_ms(void);
/* Files that must not outlive the process: removed when SIGINT, SIGTERM or SIGHUP ends it (the signal then
 * takes its default course). Slot 0 or 1; path NULL forgets the slot. Not thread-safe: call from main. */
void cli_remove_on_signal(int slot, const char *path);
void cli_error(const char *cmd);   /* prints "vkllm <cmd>: <last error>" */

#endif
