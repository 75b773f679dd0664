/* The `vkllm` command: one function per sub-command, each `int cmd_X(int argc, char **argv)` where
 * argv[0] is the sub-command name. They print one clear line on error and return the exit status. */
#ifndef VKLLM_CLI_H
#define VKLLM_CLI_H

int cmd_devices(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
