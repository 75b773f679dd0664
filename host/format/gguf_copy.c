/* Copying a key/value from a GGUF file being read into one being written (see gguf_copy.h). */
#include "host/format/gguf_copy.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"

vkllm_status vkl_gguf_copy_kv(const gguf_file *f, uint64_t i, gguf_writer *w)
{
    const char *key = vkl_gguf_kv_key(f, i);
    gguf_value_type type = vkl_gguf_kv_type(f, i);
    if (type == GGUF_TYPE_STRING) {
        const char *s;
        uint64_t len;
        vkl_gguf_get_str(f, key, &s, &len);
        if (memchr(s, 0, (size_t)len))
            return vkr_error(VKLLM_ERR_UNSUPPORTED, "key %s: a string with a NUL byte cannot be copied", key);
        char *copy = malloc((size_t)len + 1);
        if (!copy)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        memcpy(copy, s, (size_t)len);
        copy[len] = '\0';
        vkllm_status st = vkl_gguf_writer_kv_str(w, key, copy);
        free(copy);
        return st;
    }
    if (type != GGUF_TYPE_ARRAY) {
        union { uint64_t u; int64_t i; double d; bool b; uint8_t u8; int8_t i8; uint16_t u16; int16_t i16;
                uint32_t u32; int32_t i32; float f32; } v = {0}, out = {0};
        switch (type) {
        case GGUF_TYPE_UINT8: vkl_gguf_get_u64(f, key, &v.u); out.u8 = (uint8_t)v.u; break;
        case GGUF_TYPE_UINT16: vkl_gguf_get_u64(f, key, &v.u); out.u16 = (uint16_t)v.u; break;
        case GGUF_TYPE_UINT32: vkl_gguf_get_u64(f, key, &v.u); out.u32 = (uint32_t)v.u; break;
        case GGUF_TYPE_UINT64: vkl_gguf_get_u64(f, key, &out.u); break;
        case GGUF_TYPE_INT8: vkl_gguf_get_i64(f, key, &v.i); out.i8 = (int8_t)v.i; break;
        case GGUF_TYPE_INT16: vkl_gguf_get_i64(f, key, &v.i); out.i16 = (int16_t)v.i; break;
        case GGUF_TYPE_INT32: vkl_gguf_get_i64(f, key, &v.i); out.i32 = (int32_t)v.i; break;
        case GGUF_TYPE_INT64: vkl_gguf_get_i64(f, key, &out.i); break;
        case GGUF_TYPE_FLOAT32: vkl_gguf_get_f32(f, key, &out.f32); break;
        case GGUF_TYPE_FLOAT64: vkl_gguf_get_f64(f, key, &out.d); break;
        case GGUF_TYPE_BOOL: vkl_gguf_get_bool(f, key, &out.b); break;
        default: return vkr_error(VKLLM_ERR_FORMAT, "key %s: unknown value type %u", key, (unsigned)type);
        }
        return vkl_gguf_writer_kv(w, key, type, &out);
    }
    gguf_value_type et;
    uint64_t n;
    vkl_gguf_get_arr_info(f, key, &et, &n);
    if (et == GGUF_TYPE_ARRAY) {
        vkr_log(VKLLM_LOG_WARNING, "key %s (an array of arrays) is not copied", key);
        return VKLLM_OK;
    }
    if (et == GGUF_TYPE_STRING) {
        const char **v = calloc(n ? n : 1, sizeof *v);
        vkllm_status st = v ? VKLLM_OK : vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        for (uint64_t k = 0; k < n && st == VKLLM_OK; k++) {
            const char *s;
            uint64_t len;
            vkl_gguf_get_arr_str(f, key, k, &s, &len);
            char *copy = malloc((size_t)len + 1);
            if (!copy)
                st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
            else if (memchr(s, 0, (size_t)len))
                st = vkr_error(VKLLM_ERR_UNSUPPORTED, "key %s: a string with a NUL byte cannot be copied", key);
            else {
                memcpy(copy, s, (size_t)len);
                copy[len] = '\0';
            }
            v[k] = copy;
        }
        if (st == VKLLM_OK)
            st = vkl_gguf_writer_kv_arr_str(w, key, v, n);
        for (uint64_t k = 0; v && k < n; k++)
            free((void *)v[k]);
        free(v);
        return st;
    }
    /* Numeric: the file's little-endian values are the host's (vkllm runs on little-endian hosts). */
    size_t bytes = (size_t)n * vkl_gguf_type_size(et);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memcpy(copy, vkl_gguf_get_arr_data(f, key), bytes);
    vkllm_status st = vkl_gguf_writer_kv_arr(w, key, et, copy, n);
    free(copy);
    return st;
}
