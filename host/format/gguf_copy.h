/* Copying metadata between GGUF files: for tools that rewrite a model (`vkllm quantize`, test helpers). */
#ifndef VKLLM_GGUF_COPY_H
#define VKLLM_GGUF_COPY_H

#include "host/format/gguf.h"

/* Copies key/value i of f (i < vkl_gguf_n_kv(f)) to w with its type: scalars, strings and arrays of them.
 * An array of arrays is skipped with a warning through the log; a string holding a NUL byte is an error
 * (the writer takes C strings). */
vkllm_status vkl_gguf_copy_kv(const gguf_file *f, uint64_t i, gguf_writer *w);

#endif
