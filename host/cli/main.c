/* vkllm: the command-line tool. Dispatches to one function per sub-command (host/cli/cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "host/cli/cli.h"
#include "host/cli/common.h"

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"devices", cmd_devices, "list Vulkan devices with their features and limits"},
    {"info", cmd_info, "print a GGUF model's metadata and tensor table"},
    {"synth", cmd_synth, "write a Llama GGUF with random weights (for tests and benchmarks)"},
    {"quantize", cmd_quantize, "convert a model to Q4_K_M, Q8_0, ... (llama-quantize's file types)"},
    {"run", cmd_run, "generate text from a prompt"},
    {"chat", cmd_chat, "a conversation with a chat model"},
    {"perplexity", cmd_perplexity, "compute perplexity over a text file"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"bench", cmd_bench, "benchmark kernels and models"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: vkllm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\nRun 'vkllm <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    cli_reserve_std_streams();
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return cli_flush_out("help") ? 0 : 1;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].fn(argc - 1, argv + 1);
            /* Output that could not be written is a failure, whatever the command (it reported its own errors) */
            return rc == 0 && !cli_flush_out(commands[i].name) ? 1 : rc;
        }
    fprintf(stderr, "vkllm: unknown command '%s' (try 'vkllm --help')\n", argv[1]);
    return 1;
}
