/* Sub-commands not written yet. Each is replaced by its own cmd_*.c as it lands. */
#include <stdio.h>

#include "host/cli/cli.h"

#define NOT_YET(fn)                                                          \
    int fn(int argc, char **argv)                                            \
    {                                                                        \
        (void)argc;                                                          \
        fprintf(stderr, "vkllm: '%s' is not implemented yet\n", argv[0]);    \
        return 1;                                                            \
    }
NOT_YET(cmd_bench)
