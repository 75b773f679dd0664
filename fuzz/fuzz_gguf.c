/* Fuzz target: the GGUF reader on arbitrary bytes (vkl_gguf_open_memory), then every accessor on whatever it
 * accepted: each key/value through every typed getter, every array element, every tensor (by index and by
 * name, its first row dequantized), and the model-level readers that consume GGUF metadata: the Llama
 * hyper-parameters, the tokenizer (and, if one loads, a short encode/decode workout) and the chat-template
 * detection. Errors are fine; crashes, leaks, sanitizer reports and broken invariants are not. */
#include <string.h>

#include "fuzz.h"
#include "host/text/chat_template.h"
#include "host/format/gguf.h"
#include "host/model/llama.h"
#include "host/format/quant.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static volatile uint64_t sink; /* keeps reads of the mapped data from being optimised away */

static void walk_kv(const gguf_file *f, uint64_t i)
{
    const char *key = vkl_gguf_kv_key(f, i);
    FUZZ_ASSERT(key != NULL);
    FUZZ_ASSERT(vkl_gguf_find_key(f, key) >= 0);
    gguf_value_type type = vkl_gguf_kv_type(f, i);
    (void)vkl_gguf_type_name(type);
    (void)vkl_gguf_type_size(type);
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    int64_t i64;
    float f32;
    double f64;
    bool b;
    const char *s;
    uint64_t len;
    sink += vkl_gguf_get_u32(f, key, &u32) ? u32 : 0;
    sink += vkl_gguf_get_u64(f, key, &u64) ? u64 : 0;
    sink += vkl_gguf_get_i32(f, key, &i32) ? (uint64_t)i32 : 0;
    sink += vkl_gguf_get_i64(f, key, &i64) ? (uint64_t)i64 : 0;
    sink += vkl_gguf_get_f32(f, key, &f32) && f32 == f32 ? 1 : 0;
    sink += vkl_gguf_get_f64(f, key, &f64) && f64 == f64 ? 1 : 0;
    sink += vkl_gguf_get_bool(f, key, &b) ? b : 0;
    if (vkl_gguf_get_str(f, key, &s, &len)) {
        FUZZ_ASSERT(type == GGUF_TYPE_STRING);
        FUZZ_ASSERT(len <= vkl_gguf_file_size(f));
        if (len)
            sink += (unsigned char)s[0] + (unsigned char)s[len - 1];
    }
    gguf_value_type et;
    uint64_t count;
    if (vkl_gguf_get_arr_info(f, key, &et, &count)) {
        FUZZ_ASSERT(type == GGUF_TYPE_ARRAY);
        const void *data = vkl_gguf_get_arr_data(f, key);
        size_t es = vkl_gguf_type_size(et);
        if (data && es && count) {
            FUZZ_ASSERT(count <= vkl_gguf_file_size(f) / es);
            const unsigned char *p = data;
            sink += p[0] + p[count * es - 1];
        }
        if (et == GGUF_TYPE_STRING) {
            for (uint64_t k = 0; k < count && k < 100000; k++) {
                FUZZ_ASSERT(vkl_gguf_get_arr_str(f, key, k, &s, &len));
                if (len)
                    sink += (unsigned char)s[0] + (unsigned char)s[len - 1];
            }
            FUZZ_ASSERT(!vkl_gguf_get_arr_str(f, key, count, &s, &len));
        } else {
            FUZZ_ASSERT(!vkl_gguf_get_arr_str(f, key, 0, &s, &len));
        }
    }
}

static void walk_tensor(const gguf_file *f, uint64_t i)
{
    const gguf_tensor *t = vkl_gguf_tensor_at(f, i);
    FUZZ_ASSERT(t != NULL && t->name != NULL);
    FUZZ_ASSERT(t->n_dims <= GGUF_MAX_DIMS);
    const gguf_tensor *by_name = vkl_gguf_find_tensor(f, t->name);
    FUZZ_ASSERT(by_name != NULL && !strcmp(by_name->name, t->name));
    (void)vkl_ggml_type_name(t->type);
    if (!t->data) {
        FUZZ_ASSERT(t->nbytes == 0);
        return;
    }
    FUZZ_ASSERT(vkl_gguf_data_offset(f) <= vkl_gguf_file_size(f));
    FUZZ_ASSERT(t->offset <= vkl_gguf_file_size(f) - vkl_gguf_data_offset(f));
    FUZZ_ASSERT(t->nbytes <= vkl_gguf_file_size(f) - vkl_gguf_data_offset(f) - t->offset);
    if (t->nbytes) {
        const unsigned char *p = t->data;
        sink += p[0] + p[t->nbytes - 1];
    }
    /* The first row, dequantized as the CPU reference and the loaders do. */
    uint32_t bs = vkl_ggml_block_size(t->type);
    uint64_t row = t->ne[0];
    if (bs && row && row % bs == 0 && row <= 65536 && vkl_ggml_row_bytes(t->type, row) <= t->nbytes) {
        float *out = malloc(row * sizeof *out);
        if (out) {
            vkl_dequantize_row(t->type, t->data, out, row);
            sink += out[0] == out[0];
            free(out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open_memory(data, size, &f);
    if (st != VKLLM_OK) {
        FUZZ_ASSERT(f == NULL);
        FUZZ_ASSERT(vkr_last_error()[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(f != NULL);
    FUZZ_ASSERT(vkl_gguf_file_size(f) == size);
    /* vkl_gguf_data_offset may lie past the end of a file without tensor data (the header's padding is not
     * required there, as in llama.cpp), so it is only checked against tensors that have data. */
    (void)vkl_gguf_version(f);
    uint32_t align = vkl_gguf_alignment(f);
    FUZZ_ASSERT(align > 0);
    uint64_t n_kv = vkl_gguf_n_kv(f), n_tensors = vkl_gguf_n_tensors(f);
    for (uint64_t i = 0; i < n_kv; i++)
        walk_kv(f, i);
    FUZZ_ASSERT(vkl_gguf_kv_key(f, n_kv) == NULL);
    for (uint64_t i = 0; i < n_tensors; i++)
        walk_tensor(f, i);
    FUZZ_ASSERT(vkl_gguf_tensor_at(f, n_tensors) == NULL);

    /* What vkllm_model_load reads before it touches the GPU. */
    llama_hparams hp;
    (void)vkl_llama_read_hparams(f, &hp);
    const char *tmpl;
    uint64_t tmpl_len;
    if (vkl_gguf_get_str(f, "tokenizer.chat_template", &tmpl, &tmpl_len)) {
        int kind = vkl_chat_template_detect(tmpl, (size_t)tmpl_len);
        FUZZ_ASSERT(kind >= -1 && kind < CHAT_TEMPLATE_COUNT);
    }
    tokenizer *tok = NULL;
    if (vkl_tokenizer_load(f, &tok) == VKLLM_OK) {
        FUZZ_ASSERT(tok != NULL);
        /* The file may be closed once the tokenizer is loaded: it owns copies of what it needs. */
        vkl_gguf_close(f);
        f = NULL;
        static const char sample[] = "Hello world! <s>caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC 123 \xFF\xFE";
        fuzz_exercise_tokenizer(tok, (const uint8_t *)sample, sizeof sample - 1, 3);
        fuzz_exercise_tokenizer(tok, data, size < 64 ? size : 64, 0);
        vkl_tokenizer_free(tok);
    }
    vkl_gguf_close(f);
    return 0;
}
