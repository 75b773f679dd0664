/* Bad inputs through the public API: each gives its documented status and a clear message, leaves
 * nothing allocated (the sanitizer build checks for leaks) and leaves the objects it did not consume
 * usable. Model files: a synthetic tiny model (vkllm synth) and copies of it with one field patched in
 * place: the architecture, a tensor's name, a tensor's type, a tensor's shape, hyper-parameters, the
 * tokenizer model; truncated copies; a file that is not GGUF. The GGUF reader's own malformed-file cases
 * live in test_gguf.c; these are the ones the model loader has to catch.
 * Also: token ids out of range, prompts longer than the context, zero tokens, a context of one position,
 * invalid UTF-8 and NUL bytes in the text, device selectors that match nothing, a context larger than the
 * device can bind, and no Vulkan driver at all (in a child process with VK_ICD_FILENAMES and
 * VK_DRIVER_FILES pointing nowhere). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/tools/synth.h"
#include "util.h"
#include "vkllm.h"

static char tmp_dir[400];
static char tiny_path[512];
static const char *variant_source = tiny_path;   /* the file make_variant patches */

/* ---- files ---- */

static bool write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Offset of a GGUF string (key or tensor name) in the file: its u64 length followed by its bytes, so that
 * "llama.attention.head_count" does not match "llama.attention.head_count_kv". Returns the offset of the
 * string's bytes, or -1. */
static long find(const uint8_t *buf, size_t len, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 8; i + k <= len; i++) {
        uint64_t n = 0;
        for (int b = 0; b < 8; b++)
            n |= (uint64_t)buf[i - 8 + b] << (8 * b);
        if (n == k && !memcmp(buf + i, s, k))
            return (long)i;
    }
    return -1;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

typedef enum patch_kind {
    PATCH_STRING_VALUE,   /* the string value of key `what` (same length) */
    PATCH_U32_VALUE,      /* the u32 value of key `what` */
    PATCH_TENSOR_NAME,    /* rename tensor `what` to `str` (same length) */
    PATCH_TENSOR_TYPE,    /* set the type of 2-D tensor `what` */
    PATCH_TENSOR_NE0,     /* set ne[0] of tensor `what` */
    PATCH_TENSOR_NE1,     /* set ne[1] of 2-D tensor `what` */
    PATCH_TRUNCATE,       /* keep the first `value` bytes */
} patch_kind;

/* Writes <tmp>/bad-<label>.gguf: variant_source (the tiny model) with one patch. Returns the path (static)
 * or NULL. */
static const char *make_variant(const char *label, patch_kind kind, const char *what, const char *str, uint64_t value)
{
    static char path[600];
    size_t len;
    uint8_t *buf = (uint8_t *)test_read_file(variant_source, &len);
    CHECK(buf != NULL, "cannot read %s", variant_source);
    if (!buf)
        return NULL;
    long at = kind == PATCH_TRUNCATE ? 0 : find(buf, len, what);
    CHECK(at >= 0, "%s: '%s' not found in the model file", label, what);
    size_t k = strlen(what ? what : "");
    if (at >= 0) {
        uint8_t *p = buf + at + k; /* just after the key or tensor name */
        switch (kind) {
        case PATCH_STRING_VALUE: memcpy(p + 4 + 8, str, strlen(str)); break;   /* type u32, length u64 */
        case PATCH_U32_VALUE: put_u32(p + 4, (uint32_t)value); break;           /* type u32 */
        case PATCH_TENSOR_NAME: memcpy(buf + at, str, strlen(str)); break;
        case PATCH_TENSOR_TYPE: put_u32(p + 4 + 16, (uint32_t)value); break;    /* n_dims u32, ne[2] */
        case PATCH_TENSOR_NE0: put_u64(p + 4, value); break;
        case PATCH_TENSOR_NE1: put_u64(p + 4 + 8, value); break;
        case PATCH_TRUNCATE: len = (size_t)value; break;
        }
    }
    snprintf(path, sizeof path, "%s/bad-%s-%d.gguf", tmp_dir, label, (int)getpid());
    bool ok = at >= 0 && write_all(path, buf, len);
    free(buf);
    return ok ? path : NULL;
}

/* Loads `path`, expecting status `want` and `msg` in the message. */
static void expect_load_error(const char *label, const char *path, vkllm_status want, const char *msg)
{
    if (!path)
        return;
    vkllm_model *m = (vkllm_model *)1;
    vkllm_status st = vkllm_model_load(path, NULL, &m);
    const char *err = vkllm_last_error();
    CHECK(st == want, "%s: status %d, want %d (%s)", label, st, want, err);
    CHECK(m == NULL, "%s: *out must be NULL on failure", label);
    CHECK(strstr(err, msg) != NULL, "%s: message '%s' lacks '%s'", label, err, msg);
    if (st == VKLLM_OK)
        vkllm_model_free(m);
    else
        fprintf(stderr, "ok: %s -> %s\n", label, err);
    remove(path);
}

static void test_bad_files(void)
{
    expect_load_error("architecture",
                      make_variant("arch", PATCH_STRING_VALUE, "general.architecture", "gemma", 0),
                      VKLLM_ERR_UNSUPPORTED, "architecture 'gemma' is not supported");
    expect_load_error("tokenizer model",
                      make_variant("tokmodel", PATCH_STRING_VALUE, "tokenizer.ggml.model", "gemma", 0),
                      VKLLM_ERR_UNSUPPORTED, "gemma");
    expect_load_error("missing tensor",
                      make_variant("missing", PATCH_TENSOR_NAME, "blk.1.ffn_down.weight", "blk.1.ffn_dowX.weight", 0),
                      VKLLM_ERR_FORMAT, "missing tensor blk.1.ffn_down.weight");
    /* 34 is tq1_0: a real ggml type the reader keeps (it cannot size it) and the loader must refuse. */
    expect_load_error("unsupported tensor type",
                      make_variant("type", PATCH_TENSOR_TYPE, "blk.0.attn_q.weight", NULL, 34),
                      VKLLM_ERR_UNSUPPORTED, "blk.0.attn_q.weight has type tq1_0");
    expect_load_error("type id vkllm does not know",
                      make_variant("type99", PATCH_TENSOR_TYPE, "blk.0.attn_q.weight", NULL, 99),
                      VKLLM_ERR_UNSUPPORTED, "blk.0.attn_q.weight has type unknown (99)");
    /* 12 is q4_K: tiny's rows of 128 are not whole blocks of 256 */
    expect_load_error("row not a multiple of the block",
                      make_variant("typek", PATCH_TENSOR_TYPE, "blk.0.attn_q.weight", NULL, 12),
                      VKLLM_ERR_FORMAT, "blk.0.attn_q.weight: row length 128 is not a multiple of the block size 256 "
                      "of type q4_K");
    /* q8_0 -> f32: the tensor's size from its type and shape runs into the next tensor */
    expect_load_error("byte size does not match type and shape",
                      make_variant("typesize", PATCH_TENSOR_TYPE, "blk.0.attn_q.weight", NULL, GGML_TYPE_F32),
                      VKLLM_ERR_FORMAT, "tensor blk.0.attn_q.weight: its 65536 bytes (type f32");
    expect_load_error("vocabulary size mismatch",
                      make_variant("vocab", PATCH_TENSOR_NE1, "token_embd.weight", NULL, 511),
                      VKLLM_ERR_FORMAT, "511 rows");
    expect_load_error("tensor shape mismatch",
                      make_variant("shape", PATCH_TENSOR_NE1, "blk.1.ffn_up.weight", NULL, 96),
                      VKLLM_ERR_FORMAT, "blk.1.ffn_up.weight has shape");
    expect_load_error("embedding length changed",
                      make_variant("embd", PATCH_U32_VALUE, "llama.embedding_length", NULL, 256),
                      VKLLM_ERR_FORMAT, "has shape");
    expect_load_error("zero heads", make_variant("heads", PATCH_U32_VALUE, "llama.attention.head_count", NULL, 0),
                      VKLLM_ERR_FORMAT, "llama.attention.head_count is 0");
    expect_load_error("heads not dividing the embedding",
                      make_variant("heads3", PATCH_U32_VALUE, "llama.attention.head_count", NULL, 3),
                      VKLLM_ERR_FORMAT, "multiple");
    size_t len;
    uint8_t *whole = (uint8_t *)test_read_file(tiny_path, &len);
    if (whole) {
        expect_load_error("truncated in the data", make_variant("trunc", PATCH_TRUNCATE, NULL, NULL, len - 1000),
                          VKLLM_ERR_FORMAT, "past end of file");
        expect_load_error("truncated in the header", make_variant("trunc-head", PATCH_TRUNCATE, NULL, NULL, 300),
                          VKLLM_ERR_FORMAT, "300 bytes");
        free(whole);
    }
    char text[600];
    snprintf(text, sizeof text, "%s/not-gguf-%d.gguf", tmp_dir, (int)getpid());
    if (write_all(text, "Once upon a time, there was a text file.\n", 42))
        expect_load_error("not a GGUF file", text, VKLLM_ERR_FORMAT, "GGUF");
    expect_load_error("missing file", "/nonexistent/model.gguf", VKLLM_ERR_IO, "cannot open");
    expect_load_error("directory", "/", VKLLM_ERR_IO, "not a regular file");
}

/* Files of a known family whose tensors do not match it: a Qwen2 file without a K bias, a Qwen3 file
 * without a K norm or with a Q norm of the wrong length; and an unknown architecture, whose message lists
 * the supported ones. */
static void test_family_files(void)
{
    char path[512];
    const char *presets[] = {"qwen2-tiny", "qwen3-tiny"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/bad-inputs-%s-%d.gguf", tmp_dir, presets[i], (int)getpid());
        synth_options o = {.preset = presets[i], .type = GGML_TYPE_F16, .path = path, .seed = 3};
        vkllm_status st = vkl_synth_write(&o);
        CHECK(st == VKLLM_OK, "synth %s: %s", presets[i], vkr_last_error());
        if (st != VKLLM_OK)
            continue;
        variant_source = path;
        if (i == 0) {
            expect_load_error("missing bias",
                              make_variant("bias", PATCH_TENSOR_NAME, "blk.1.attn_k.bias", "blk.1.attn_k.biaX", 0),
                              VKLLM_ERR_FORMAT, "missing tensor blk.1.attn_k.bias");
            expect_load_error("unknown architecture",
                              make_variant("mamba", PATCH_STRING_VALUE, "general.architecture", "mamba", 0),
                              VKLLM_ERR_UNSUPPORTED, "vkllm runs llama, qwen2, qwen3, gemma2, gemma3, phi3");
        } else {
            expect_load_error("missing k norm",
                              make_variant("knorm", PATCH_TENSOR_NAME, "blk.0.attn_k_norm.weight",
                                           "blk.0.attn_k_norX.weight", 0),
                              VKLLM_ERR_FORMAT, "missing tensor blk.0.attn_k_norm.weight");
            expect_load_error("q norm of the wrong length",
                              make_variant("qnorm", PATCH_TENSOR_NE0, "blk.1.attn_q_norm.weight", NULL, 32),
                              VKLLM_ERR_FORMAT, "blk.1.attn_q_norm.weight has shape [32, 1, 1, 1]; expected [64, 1]");
        }
        remove(path);
    }
    variant_source = tiny_path;
}

/* ---- a good model, bad requests ---- */

static void test_devices(void)
{
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    vkllm_model *m = NULL;
    mp.device = "99";
    vkllm_status st = vkllm_model_load(tiny_path, &mp, &m);
    CHECK(st == VKLLM_ERR_NO_DEVICE && m == NULL && strstr(vkllm_last_error(), "device 99 does not exist"),
          "device 99: %d %s", st, vkllm_last_error());
    mp.device = "no-such-gpu-anywhere";
    st = vkllm_model_load(tiny_path, &mp, &m);
    CHECK(st == VKLLM_ERR_NO_DEVICE && m == NULL && strstr(vkllm_last_error(), "no device name contains"),
          "device by name: %d %s", st, vkllm_last_error());
    /* VKLLM_DEVICE is read when no selector is given. */
    setenv("VKLLM_DEVICE", "42", 1);
    mp.device = NULL;
    st = vkllm_model_load(tiny_path, &mp, &m);
    CHECK(st == VKLLM_ERR_NO_DEVICE && m == NULL && strstr(vkllm_last_error(), "device 42 does not exist"),
          "VKLLM_DEVICE=42: %d %s", st, vkllm_last_error());
    unsetenv("VKLLM_DEVICE");
}

static vkllm_context *make_context(vkllm_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    vkllm_context *c = NULL;
    vkllm_status st = vkllm_context_create(m, &cp, &c);
    CHECK(st == VKLLM_OK, "context n_ctx=%u: %s", n_ctx, vkllm_last_error());
    return st == VKLLM_OK ? c : NULL;
}

static void test_tokens(vkllm_model *m)
{
    const int32_t n_vocab = (int32_t)vkllm_model_n_vocab(m);
    vkllm_context *c = make_context(m, 16, 4);
    if (!c)
        return;
    const float *logits = NULL;
    const int32_t bad_ids[] = {-1, n_vocab, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        vkllm_status st = vkllm_decode(c, &bad_ids[i], 1, &logits);
        CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && strstr(vkllm_last_error(), "out of range"),
              "decode id %d: %d %s", bad_ids[i], st, vkllm_last_error());
    }
    /* A bad id late in a batched prompt: refused before any batch runs, the position does not move. */
    int32_t prompt[10] = {1, 5, 6, 7, 8, 9, 10, 11, 12, n_vocab + 3};
    vkllm_status st = vkllm_decode(c, prompt, 10, &logits);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && strstr(vkllm_last_error(), "token 9"), "late bad id: %d %s", st,
          vkllm_last_error());
    CHECK(vkllm_context_position(c) == 0, "a refused decode moved the position to %u", vkllm_context_position(c));
    st = vkllm_decode(c, prompt, 0, &logits);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT, "decode of 0 tokens: %d", st);
    st = vkllm_decode(c, NULL, 3, &logits);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT, "decode of NULL tokens: %d", st);
    float *all = malloc(sizeof(float) * 2 * (size_t)n_vocab);
    if (all) {
        const int32_t two[2] = {1, -7};
        st = vkllm_decode_all(c, two, 2, all);
        CHECK(st == VKLLM_ERR_INVALID_ARGUMENT, "decode_all with a bad id: %d", st);
        free(all);
    }
    /* The context is still good after all that. */
    st = vkllm_decode(c, prompt, 9, &logits);
    CHECK(st == VKLLM_OK && logits && vkllm_context_position(c) == 9, "decode after errors: %s", vkllm_last_error());

    /* Longer than the context: refused whole, nothing changes. */
    int32_t many[20];
    for (int i = 0; i < 20; i++)
        many[i] = 5 + i;
    st = vkllm_decode(c, many, 8, &logits);
    CHECK(st == VKLLM_ERR_CONTEXT_FULL && vkllm_context_position(c) == 9, "8 more tokens in 16 after 9: %d %s", st,
          vkllm_last_error());
    st = vkllm_decode(c, many, 7, &logits);
    CHECK(st == VKLLM_OK && vkllm_context_position(c) == 16, "filling the context: %s", vkllm_last_error());
    st = vkllm_decode(c, many, 1, &logits);
    CHECK(st == VKLLM_ERR_CONTEXT_FULL, "decode into a full context: %d", st);
    st = vkllm_context_truncate(c, 17);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT, "truncate past the position: %d", st);
    CHECK(vkllm_context_truncate(c, 0) == VKLLM_OK, "truncate to 0");
    st = vkllm_decode(c, many, 20, &logits);
    CHECK(st == VKLLM_ERR_CONTEXT_FULL && strstr(vkllm_last_error(), "do not fit"), "20 tokens in 16: %d %s", st,
          vkllm_last_error());
    vkllm_context_free(c);

    /* A context of one position: one token fits, the next does not. */
    c = make_context(m, 1, 0);
    if (c) {
        int32_t bos = vkllm_token_bos(m) >= 0 ? vkllm_token_bos(m) : 1;
        CHECK(vkllm_decode(c, &bos, 1, &logits) == VKLLM_OK, "n_ctx 1: first token: %s", vkllm_last_error());
        CHECK(vkllm_decode(c, &bos, 1, &logits) == VKLLM_ERR_CONTEXT_FULL, "n_ctx 1: second token must not fit");
        vkllm_context_free(c);
    }

    /* Detokenizing ids out of range. */
    char *text = NULL;
    size_t len = 0;
    st = vkllm_detokenize(m, bad_ids, 2, &text, &len);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && text == NULL, "detokenize bad ids: %d", st);
    free(text);
    vkllm_detokenizer *d = NULL;
    if (vkllm_detokenizer_create(m, &d) == VKLLM_OK) {
        const char *piece;
        size_t plen;
        CHECK(vkllm_detokenizer_push(d, n_vocab, &piece, &plen) == VKLLM_ERR_INVALID_ARGUMENT,
              "detokenizer push of a bad id");
        CHECK(vkllm_detokenizer_push(d, 5, &piece, &plen) == VKLLM_OK, "detokenizer after a bad id");
        vkllm_detokenizer_free(d);
    }
}

/* Invalid UTF-8 and NUL bytes: tokenized byte by byte (byte fallback), evaluated, and detokenized back. */
static void test_invalid_utf8(vkllm_model *m)
{
    static const char text[] = "ok \xff\xfe bad \xc3( \xe6\x97 \xf0\x9f\x9a \xed\xa0\x80 \xc0\xaf nul:\0: end";
    const size_t n = sizeof text - 1;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    vkllm_status st = vkllm_tokenize(m, text, n, true, false, &ids, &n_ids);
    CHECK(st == VKLLM_OK && n_ids > 0, "tokenize invalid UTF-8: %s", vkllm_last_error());
    if (st != VKLLM_OK)
        return;
    char *back = NULL;
    size_t blen = 0;
    st = vkllm_detokenize(m, ids, n_ids, &back, &blen);
    CHECK(st == VKLLM_OK && blen == n && !memcmp(back, text, n), "invalid UTF-8 does not round-trip");
    vkllm_free(back);
    vkllm_context *c = make_context(m, (uint32_t)n_ids + 4, 8);
    if (c) {
        const float *logits = NULL;
        st = vkllm_decode(c, ids, n_ids, &logits);
        CHECK(st == VKLLM_OK && logits, "decode of invalid UTF-8 text: %s", vkllm_last_error());
        vkllm_context_free(c);
    }
    /* The streaming detokenizer passes bytes that cannot become UTF-8 through; it never fails on them. */
    vkllm_detokenizer *d = NULL;
    if (vkllm_detokenizer_create(m, &d) == VKLLM_OK) {
        size_t total = 0;
        const char *piece;
        size_t plen;
        for (size_t i = 0; i < n_ids; i++) {
            CHECK(vkllm_detokenizer_push(d, ids[i], &piece, &plen) == VKLLM_OK, "detokenizer push");
            total += plen;
        }
        vkllm_detokenizer_flush(d, &piece, &plen);
        total += plen;
        CHECK(total == n, "streamed %zu bytes of %zu", total, n);
        vkllm_detokenizer_free(d);
    }
    vkllm_free(ids);
}

/* A context the device cannot hold: refused with a clear message, the model stays usable. */
static void test_too_large(vkllm_model *m)
{
    vkllm_context_params cp;
    vkllm_context_default_params(&cp);
    cp.n_ctx = 2000000000u;
    vkllm_context *c = (vkllm_context *)1;
    vkllm_status st = vkllm_context_create(m, &cp, &c);
    CHECK(st == VKLLM_ERR_UNSUPPORTED && c == NULL && strstr(vkllm_last_error(), "more than this device can bind"),
          "context of 2e9 positions: %d %s", st, vkllm_last_error());
    c = make_context(m, 8, 8);
    if (c) {
        int32_t t = 1;
        const float *logits;
        CHECK(vkllm_decode(c, &t, 1, &logits) == VKLLM_OK, "model unusable after a refused context");
        vkllm_context_free(c);
    }
}

/* Child process: no Vulkan driver anywhere. */
static int no_driver_child(void)
{
    vkllm_model *m = (vkllm_model *)1;
    vkllm_status st = vkllm_model_load(tiny_path, NULL, &m);
    const char *err = vkllm_last_error();
    fprintf(stderr, "no driver -> %d: %s\n", st, err);
    bool ok = st == VKLLM_ERR_NO_DEVICE && m == NULL && strstr(err, "no Vulkan") != NULL;
    return ok ? 0 : 1;
}

static void test_no_driver(const char *self, bool validation)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("VK_ICD_FILENAMES", "/nonexistent/icd.json", 1);
        setenv("VK_DRIVER_FILES", "/nonexistent/icd.json", 1);
        if (validation)
            setenv("VKLLM_VALIDATION", "1", 1);
        else
            unsetenv("VKLLM_VALIDATION");
        execl(self, self, "--no-driver", tiny_path, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork/wait failed");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "no-driver child (validation %d) failed: status %d",
          validation, status);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("VKLLM_TEST_TMP");
    snprintf(tmp_dir, sizeof tmp_dir, "%s", tmp && *tmp ? tmp : "/tmp");
    if (argc == 3 && !strcmp(argv[1], "--no-driver")) {
        snprintf(tiny_path, sizeof tiny_path, "%s", argv[2]);
        return no_driver_child();
    }
    snprintf(tiny_path, sizeof tiny_path, "%s/bad-inputs-tiny-%d.gguf", tmp_dir, (int)getpid());
    synth_options o = {.preset = "tiny", .type = GGML_TYPE_Q8_0, .path = tiny_path, .seed = 3};
    vkllm_status st = vkl_synth_write(&o);
    CHECK(st == VKLLM_OK, "synth: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return test_finish("bad_inputs");

    test_bad_files();
    test_family_files();
    test_devices();
    vkllm_model *m = NULL;
    st = vkllm_model_load(tiny_path, NULL, &m);
    CHECK(st == VKLLM_OK, "load tiny: %s", vkllm_last_error());
    if (st == VKLLM_OK) {
        test_tokens(m);
        test_invalid_utf8(m);
        test_too_large(m);
        vkllm_model_free(m);
    }
    test_no_driver("/proc/self/exe", false);
    test_no_driver("/proc/self/exe", true);
    remove(tiny_path);
    return test_finish("bad_inputs");
}
