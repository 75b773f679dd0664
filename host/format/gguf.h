/* GGUF (versions 2 and 3) reader, every field validated before use, and a streaming writer. vkl_gguf_open reads
 * the metadata into memory with pread; tensor data is read with vkl_gguf_tensor_read (pread: a file truncated by
 * another process meanwhile is an error) or through gguf_tensor.data (a read-only mapping, for tools and tests).
 * Errors are returned as vkllm_status with a message naming the problem (runtime/error.h). */
#ifndef VKLLM_GGUF_H
#define VKLLM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/error.h"

typedef enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
} gguf_value_type;

#define GGUF_MAX_DIMS 4

/* Bytes of one value of a scalar type (1, 2, 4 or 8); 0 for string, array and unknown types. */
size_t vkl_gguf_type_size(gguf_value_type t);
/* Short name: "u8", "i32", "f32", "bool", "string", "array", ...; "unknown" for other values. */
const char *vkl_gguf_type_name(gguf_value_type t);

typedef struct gguf_tensor {
    const char *name;         /* NUL-terminated copy */
    uint32_t type;            /* GGML_TYPE_* (host/format/ggml_types.h); any value is allowed here, see below */
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS];  /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint64_t n_elements;
    uint64_t offset;          /* from the start of the data section */
    uint64_t nbytes;          /* 0 if the type is unknown to us */
    const void *data;         /* inside the mapping (vkl_gguf_open) or the buffer (vkl_gguf_open_memory); NULL if the
                                 type is unknown to us. Touching a mapped page after another process truncated
                                 the file raises SIGBUS: code that may run while a file changes (the model
                                 loader) uses vkl_gguf_tensor_read instead. */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates the whole file: header, every key/value, every tensor info (dims, overflow,
 * alignment, data inside the file). Tensors of a type we cannot size are kept (nbytes 0, data NULL) so
 * that `info` can list them; users that need the data report them as unsupported. Error messages start
 * with the path ("model.gguf: tensor blk.3.attn_q.weight: data extends past end of file"). */
vkllm_status vkl_gguf_open(const char *path, gguf_file **out);
/* Same from a memory buffer (not copied; must outlive the file object), with the same bounds checks:
 * vkllm_model_load_from_memory, fuzzing and tests. */
vkllm_status vkl_gguf_open_memory(const void *data, size_t size, gguf_file **out);
void vkl_gguf_close(gguf_file *f);

/* Copies tensor t's nbytes of data to dst: read with pread from a vkl_gguf_open file ("<path>: file changed or
 * truncated while loading (tensor <name>: ...)", VKLLM_ERR_IO, when the file now ends before it). */
vkllm_status vkl_gguf_tensor_read(const gguf_file *f, const gguf_tensor *t, void *dst);
/* The same into a new malloc'd buffer (*out; the caller frees it). */
vkllm_status vkl_gguf_tensor_load(const gguf_file *f, const gguf_tensor *t, void **out);

uint32_t vkl_gguf_version(const gguf_file *f);
uint32_t vkl_gguf_alignment(const gguf_file *f);     /* general.alignment, default 32 */
uint64_t vkl_gguf_data_offset(const gguf_file *f);   /* file position of the data section */
uint64_t vkl_gguf_file_size(const gguf_file *f);
uint64_t vkl_gguf_n_kv(const gguf_file *f);
const char *vkl_gguf_kv_key(const gguf_file *f, uint64_t i);        /* NULL if i >= vkl_gguf_n_kv */
gguf_value_type vkl_gguf_kv_type(const gguf_file *f, uint64_t i);  /* i < vkl_gguf_n_kv */
/* Index of a key, or -1. */
int64_t vkl_gguf_find_key(const gguf_file *f, const char *key);

/* Typed getters by key: return false if the key is missing or its value does not fit the request
 * (integers of any width are accepted when the value is in range; floats accept f32/f64). */
bool vkl_gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
bool vkl_gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
bool vkl_gguf_get_i32(const gguf_file *f, const char *key, int32_t *out);
bool vkl_gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
bool vkl_gguf_get_f32(const gguf_file *f, const char *key, float *out);
bool vkl_gguf_get_f64(const gguf_file *f, const char *key, double *out);
bool vkl_gguf_get_bool(const gguf_file *f, const char *key, bool *out);
/* Strings are not NUL-terminated in the file: pointer + length into the mapping. */
bool vkl_gguf_get_str(const gguf_file *f, const char *key, const char **s, uint64_t *len);

/* Arrays: element type and count; numeric arrays expose their raw little-endian data (not necessarily
 * aligned: copy with memcpy). Arrays of arrays (nesting up to 8 deep) are validated and listed here with
 * element type GGUF_TYPE_ARRAY, but their contents are not accessible. */
bool vkl_gguf_get_arr_info(const gguf_file *f, const char *key, gguf_value_type *elem_type, uint64_t *count);
const void *vkl_gguf_get_arr_data(const gguf_file *f, const char *key);   /* numeric arrays only */
/* Element i of a string array. */
bool vkl_gguf_get_arr_str(const gguf_file *f, const char *key, uint64_t i, const char **s, uint64_t *len);

uint64_t vkl_gguf_n_tensors(const gguf_file *f);
const gguf_tensor *vkl_gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *vkl_gguf_find_tensor(const gguf_file *f, const char *name);

/* ---- Streaming writer (for `vkllm synth` and tests) ----
 * Add all key/values and tensor infos first, then write each tensor's data in order. The header is
 * written at the first vkl_gguf_writer_tensor_data call; nothing is held in memory but the header.
 * The file is written under vkl_gguf_writer_temp_name(path) next to the target and renamed over it only once
 * complete, so a failed or interrupted write leaves an existing file as it was. A target that exists and is
 * not a regular file (a device such as /dev/stdout, a FIFO) is refused. */
typedef struct gguf_writer gguf_writer;
vkllm_status vkl_gguf_writer_open(const char *path, gguf_writer **out);
/* The temporary file's name for a target ("<path>.partial-<pid>"), for a caller that removes it when
 * interrupted by a signal; returns snprintf's result. */
int vkl_gguf_writer_temp_name(const char *path, char *buf, size_t len);
vkllm_status vkl_gguf_writer_kv_u32(gguf_writer *w, const char *key, uint32_t v);
vkllm_status vkl_gguf_writer_kv_f32(gguf_writer *w, const char *key, float v);
vkllm_status vkl_gguf_writer_kv_bool(gguf_writer *w, const char *key, bool v);
vkllm_status vkl_gguf_writer_kv_str(gguf_writer *w, const char *key, const char *v);
vkllm_status vkl_gguf_writer_kv_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n);
vkllm_status vkl_gguf_writer_kv_arr_f32(gguf_writer *w, const char *key, const float *v, uint64_t n);
vkllm_status vkl_gguf_writer_kv_arr_i32(gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
/* Any scalar type: `value` points to a host value of that type (uint8_t..double; bool for GGUF_TYPE_BOOL). */
vkllm_status vkl_gguf_writer_kv(gguf_writer *w, const char *key, gguf_value_type type, const void *value);
/* Array of any scalar element type; `v` points to n host values of that type (bool for GGUF_TYPE_BOOL). */
vkllm_status vkl_gguf_writer_kv_arr(gguf_writer *w, const char *key, gguf_value_type elem_type, const void *v,
                                uint64_t n);
vkllm_status vkl_gguf_writer_tensor_info(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                     const uint64_t *ne);
/* Appends bytes to the current tensor's data (may be called several times per tensor; padding to the
 * alignment is inserted automatically when a tensor is complete). */
vkllm_status vkl_gguf_writer_tensor_data(gguf_writer *w, const void *data, size_t size);
/* Checks every tensor was written in full; frees w. On any failure (here or in an earlier call that
 * failed writing) the partial file is removed and the error returned. */
vkllm_status vkl_gguf_writer_close(gguf_writer *w);
/* Gives up: closes and removes the partial file, frees w; leaves the last error message untouched. */
void vkl_gguf_writer_abort(gguf_writer *w);

#endif
