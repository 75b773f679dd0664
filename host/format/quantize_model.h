/* `vkllm quantize`: converts a GGUF model to one of llama.cpp's file types (a per-tensor mix of weight
 * types, chosen by the rules described in quantize_model.c), writing the result atomically. */
#ifndef VKLLM_QUANTIZE_MODEL_H
#define VKLLM_QUANTIZE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "host/format/gguf.h"
#include "runtime/error.h"

/* A file type: its general.file_type number (llama.cpp's LLAMA_FTYPE_*; vkl_ggml_file_type_name in host/format/quant.h
 * gives its name as llama-quantize spells it, "Q4_K_M") and the tensor type most weights get. */
typedef struct quantize_ftype {
    uint32_t ftype;
    uint32_t type;
} quantize_ftype;

/* Looks a file type up by name (case-insensitive; also the aliases Q3_K, Q4_K, Q5_K for the _M mixes) or
 * by its number. NULL if unknown. */
const quantize_ftype *vkl_quantize_ftype_find(const char *name);
/* The i-th file type (i < vkl_quantize_ftype_count()), for listing. */
const quantize_ftype *vkl_quantize_ftype_at(uint32_t i);
uint32_t vkl_quantize_ftype_count(void);
/* A tensor type quantize can write, by its name ("q6_K", "Q8_0", "f16"; case-insensitive). */
bool vkl_quantize_tensor_type_find(const char *name, uint32_t *type);

#define QUANTIZE_TYPE_AUTO UINT32_MAX

typedef struct quantize_params {
    const quantize_ftype *ftype;
    uint32_t n_threads;              /* 0: one per online CPU */
    bool allow_requantize;           /* accept quantized input tensors (with a warning through the log) */
    bool pure;                       /* no mix: every weight gets ftype->type (fallbacks still apply) */
    uint32_t output_tensor_type;     /* QUANTIZE_TYPE_AUTO: by the mix */
    uint32_t token_embedding_type;   /* QUANTIZE_TYPE_AUTO: by the mix */
    /* Optional: called from the calling thread with the number of elements converted so far and the total. */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
} quantize_params;

/* The type each tensor of f gets (types[i] for tensor i; tensors that are not converted keep their type).
 * Fails (VKLLM_ERR_INVALID_ARGUMENT) on a quantized input without allow_requantize, or VKLLM_ERR_UNSUPPORTED
 * on a tensor vkllm cannot convert, with a message naming the tensor. */
vkllm_status vkl_quantize_plan(const gguf_file *f, const quantize_params *p, uint32_t *types);

/* Reads in_path, writes out_path (through a temporary file in the same folder, renamed over out_path only
 * when complete). Errors name the file and, where one is at fault, the tensor. */
vkllm_status vkl_quantize_model(const char *in_path, const char *out_path, const quantize_params *p);

#endif
