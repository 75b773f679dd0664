/* GGUF reader and writer: writer -> reader round trip of every value type and tensor types/shapes,
 * the real stories260K.gguf, and malformed files built in memory (every truncation, bad header fields,
 * absurd counts and lengths, bad tensor infos, random corruption), each failing cleanly with a message
 * that names the problem. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/format/ggml_types.h"
#include "host/format/gguf.h"
#include "host/format/quant.h"
#include "util.h"

/* ---- a little byte builder for hand-made files ---- */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void b_bytes(bb *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void b_u32(bb *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    b_bytes(b, x, 4);
}
static void b_u64(bb *b, uint64_t v)
{
    b_u32(b, (uint32_t)v);
    b_u32(b, (uint32_t)(v >> 32));
}
static void b_str(bb *b, const char *s)
{
    b_u64(b, strlen(s));
    b_bytes(b, s, strlen(s));
}
static void b_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    b_bytes(b, "GGUF", 4);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_kv_u32(bb *b, const char *key, uint32_t v)
{
    b_str(b, key);
    b_u32(b, GGUF_TYPE_UINT32);
    b_u32(b, v);
}
static void b_kv_str(bb *b, const char *key, const char *v)
{
    b_str(b, key);
    b_u32(b, GGUF_TYPE_STRING);
    b_str(b, v);
}
static void b_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t offset)
{
    b_str(b, name);
    b_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        b_u64(b, ne[d]);
    b_u32(b, type);
    b_u64(b, offset);
}
static void b_pad(bb *b, size_t align)
{
    static const uint8_t z[256];
    b_bytes(b, z, (align - b->n % align) % align);
}
static void b_zeros(bb *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b_bytes(b, "", 1);
}

/* Opens a copy of buf[0..n) in a buffer of exactly n bytes (so the sanitizers see any over-read). */
static vkllm_status open_copy(const uint8_t *buf, size_t n, gguf_file **f)
{
    uint8_t *copy = malloc(n ? n : 1);
    if (n)
        memcpy(copy, buf, n);
    vkllm_status st = vkl_gguf_open_memory(n ? copy : NULL, n, f);
    if (st == VKLLM_OK)
        vkl_gguf_close(*f);   /* the file does not outlive the copy */
    free(copy);
    *f = NULL;
    return st;
}

/* The command-line tool on a malformed file: `vkllm info` and `vkllm run` each exit with status 1 and
 * print one line naming the problem (s1). Skipped when VKLLM_BIN is not set (outside ctest). */
static void expect_cli_error(const char *what, const bb *b, const char *s1)
{
    const char *bin = getenv("VKLLM_BIN"), *dir = getenv("VKLLM_TEST_TMP");
    if (!bin || !*bin)
        return;
    char path[1024], err_path[1100], cmd[4096], line[2048];
    snprintf(path, sizeof path, "%s/malformed-%d.gguf", dir && *dir ? dir : "/tmp", (int)getpid());
    snprintf(err_path, sizeof err_path, "%s.err", path);
    FILE *f = fopen(path, "wb");
    if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0) {
        CHECK(0, "%s: cannot write %s", what, path);
        return;
    }
    const char *forms[] = {"'%s' info '%s' >/dev/null 2>'%s'", "'%s' run -m '%s' -n 1 >/dev/null 2>'%s'"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, forms[i], bin, path, err_path);
        int rc = system(cmd);
        CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "%s: '%s' exited with %d, not 1", what, cmd, rc);
        FILE *e = fopen(err_path, "r");
        int lines = 0;
        bool mentions = !s1;
        while (e && fgets(line, sizeof line, e)) {
            lines++;
            mentions = mentions || strstr(line, s1);
        }
        if (e)
            fclose(e);
        CHECK(lines == 1 && mentions, "%s: '%s' printed %d line(s), want one mentioning '%s'", what, cmd, lines,
              s1 ? s1 : "");
    }
    remove(path);
    remove(err_path);
}

/* Expects the buffer to be rejected as malformed with a message containing each of the given strings,
 * by the library and by the command-line tool. */
static void expect_format_error(const char *what, const bb *b, const char *s1, const char *s2)
{
    expect_cli_error(what, b, s1);
    gguf_file *f;
    vkr_clear_error();
    vkllm_status st = open_copy(b->p, b->n, &f);
    const char *msg = vkr_last_error();
    CHECK(st == VKLLM_ERR_FORMAT, "%s: expected VKLLM_ERR_FORMAT, got %d (%s)", what, (int)st, msg);
    CHECK(!s1 || strstr(msg, s1), "%s: message '%s' does not mention '%s'", what, msg, s1);
    CHECK(!s2 || strstr(msg, s2), "%s: message '%s' does not mention '%s'", what, msg, s2);
    CHECK(!strchr(msg, '\n'), "%s: message has a newline: '%s'", what, msg);
}

/* A valid small file: 3 key/values (one an array), 2 f32 tensors; the last tensor ends the file. */
static void build_small(bb *b)
{
    b_header(b, 3, 2, 3);
    b_kv_str(b, "general.architecture", "llama");
    b_kv_u32(b, "llama.block_count", 2);
    b_str(b, "tokenizer.ggml.tokens");
    b_u32(b, GGUF_TYPE_ARRAY);
    b_u32(b, GGUF_TYPE_STRING);
    b_u64(b, 3);
    b_str(b, "a");
    b_str(b, "");
    b_str(b, "ccc");
    uint64_t ne_a[2] = {4, 2}, ne_b[1] = {3};
    b_tensor(b, "a.weight", 2, ne_a, GGML_TYPE_F32, 0);
    b_tensor(b, "b.weight", 1, ne_b, GGML_TYPE_F32, 32);
    b_pad(b, 32);
    for (int i = 0; i < 8; i++) {
        float v = (float)i;
        b_bytes(b, &v, 4);
    }
    for (int i = 0; i < 3; i++) {
        float v = -(float)i;
        b_bytes(b, &v, 4);
    }
}

static void test_small_valid(void)
{
    bb b = {0};
    build_small(&b);
    gguf_file *f;
    vkllm_status st = vkl_gguf_open_memory(b.p, b.n, &f);
    CHECK(st == VKLLM_OK, "small file: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(vkl_gguf_version(f) == 3, "version");
        CHECK(vkl_gguf_n_kv(f) == 3 && vkl_gguf_n_tensors(f) == 2, "counts");
        const gguf_tensor *t = vkl_gguf_find_tensor(f, "b.weight");
        CHECK(t && t->nbytes == 12 && t->data == b.p + b.n - 12, "b.weight data");
        uint64_t len;
        const char *s;
        CHECK(vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 1, &s, &len) && len == 0, "empty string element");
        CHECK(vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 2, &s, &len) && len == 3 && !memcmp(s, "ccc", 3), "ccc");
        CHECK(!vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 3, &s, &len), "element past the end");
        vkl_gguf_close(f);
    }
    /* every truncation fails cleanly */
    int n_fail = 0;
    for (size_t n = 0; n < b.n; n++) {
        gguf_file *g;
        vkr_clear_error();
        st = open_copy(b.p, n, &g);
        if (st != VKLLM_ERR_FORMAT || !*vkr_last_error()) {
            n_fail++;
            if (n_fail < 5)
                CHECK(0, "truncated to %zu of %zu bytes: status %d, message '%s'", n, b.n, (int)st, vkr_last_error());
        }
    }
    CHECK(n_fail == 0, "%d truncation lengths did not fail cleanly", n_fail);
    /* a few messages name the right thing */
    bb t = {0};
    b_bytes(&t, b.p, 60);   /* inside key/value 1: too short for the counts in the header */
    expect_format_error("truncated in kv 1", &t, "key/value count 3", "cannot fit");
    t.n = 0;
    /* cut in the middle of the string array */
    size_t cut = 24 + (8 + 20 + 4 + 8 + 5) + (8 + 17 + 4 + 4) + (8 + 21 + 4 + 4 + 8) + 4;
    b_bytes(&t, b.p, cut);
    expect_format_error("truncated string array", &t, "key/value 2 (tokenizer.ggml.tokens)", "past end of file");
    t.n = 0;
    b_bytes(&t, b.p, b.n - 1);
    expect_format_error("truncated data", &t, "tensor b.weight", "data extends past end of file");
    free(t.p);
    free(b.p);
}

/* ---- malformed headers, key/values and tensor infos ---- */

static void test_malformed(void)
{
    bb b = {0};
    uint64_t ne1[1] = {8};

    expect_format_error("empty", &b, "not a GGUF file", NULL);
    b_bytes(&b, "GGUX", 4);
    b_u32(&b, 3);
    b_u64(&b, 0);
    b_u64(&b, 0);
    expect_format_error("bad magic", &b, "bad magic", NULL);

    uint32_t versions[] = {0, 1, 4, 0x03000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        b.n = 0;
        b_header(&b, versions[i], 0, 0);
        expect_format_error("bad version", &b, "version", NULL);
    }
    b.n = 0;
    b_header(&b, 2, 0, 0);
    gguf_file *f;
    CHECK(open_copy(b.p, b.n, &f) == VKLLM_OK, "empty v2 file: %s", vkr_last_error());
    b.n = 0;
    b_bytes(&b, "GGUF\3\0\0\0", 8);
    expect_format_error("short header", &b, "truncated file", NULL);

    b.n = 0;
    b_header(&b, 3, 1ull << 40, 0);
    b_zeros(&b, 100);
    expect_format_error("absurd tensor count", &b, "tensor count", NULL);
    b.n = 0;
    b_header(&b, 3, UINT64_MAX, 0);
    expect_format_error("max tensor count", &b, "tensor count", NULL);
    b.n = 0;
    b_header(&b, 3, 0, 1ull << 40);
    b_zeros(&b, 100);
    expect_format_error("absurd kv count", &b, "key/value count", NULL);
    b.n = 0;
    b_header(&b, 3, 0, UINT64_MAX);
    expect_format_error("max kv count", &b, "key/value count", NULL);
    b.n = 0;
    b_header(&b, 3, 3, 4);   /* each alone could fit 130 bytes, together they cannot */
    b_zeros(&b, 130);
    expect_format_error("counts together", &b, "cannot fit", NULL);

    /* string value whose length runs past the end */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "general.name");
    b_u32(&b, GGUF_TYPE_STRING);
    b_u64(&b, 1ull << 40);
    b_bytes(&b, "abc", 3);
    expect_format_error("string past end", &b, "general.name", "extends past end of file");
    /* key whose length runs past the end */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_u64(&b, UINT64_MAX);
    b_zeros(&b, 20);
    expect_format_error("key past end", &b, "key/value 0", "past end of file");

    /* array count needing terabytes */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "tokenizer.ggml.scores");
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u32(&b, GGUF_TYPE_FLOAT64);
    b_u64(&b, 1ull << 40);
    b_zeros(&b, 64);
    expect_format_error("huge array", &b, "tokenizer.ggml.scores", "array count 1099511627776");
    /* count * element size overflowing 64 bits */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "x.arr");
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u32(&b, GGUF_TYPE_UINT64);
    b_u64(&b, (1ull << 61) + 1);
    b_zeros(&b, 64);
    expect_format_error("overflowing array", &b, "x.arr", "array count");
    /* huge array of strings (must be rejected before allocating an index) */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "tokenizer.ggml.tokens");
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u32(&b, GGUF_TYPE_STRING);
    b_u64(&b, UINT64_MAX / 2);
    b_zeros(&b, 64);
    expect_format_error("huge string array", &b, "tokenizer.ggml.tokens", "array count");

    /* unknown value types */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "x.y");
    b_u32(&b, 13);
    b_u32(&b, 0);
    expect_format_error("unknown value type", &b, "x.y", "unknown value type 13");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "x.y");
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u32(&b, 99);
    b_u64(&b, 0);
    expect_format_error("unknown element type", &b, "x.y", "unknown element type 99");

    /* nested arrays: a valid array of arrays is accepted (contents not exposed), deep nesting rejected */
    b.n = 0;
    b_header(&b, 3, 0, 2);
    b_str(&b, "x.nested");
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u32(&b, GGUF_TYPE_ARRAY);
    b_u64(&b, 2);
    b_u32(&b, GGUF_TYPE_UINT8);
    b_u64(&b, 3);
    b_bytes(&b, "\1\2\3", 3);
    b_u32(&b, GGUF_TYPE_STRING);
    b_u64(&b, 1);
    b_str(&b, "hi");
    b_kv_u32(&b, "x.after", 7);
    CHECK(vkl_gguf_open_memory(b.p, b.n, &f) == VKLLM_OK, "nested array: %s", vkr_last_error());
    if (f) {
        gguf_value_type et;
        uint64_t n;
        uint32_t v;
        CHECK(vkl_gguf_get_arr_info(f, "x.nested", &et, &n) && et == GGUF_TYPE_ARRAY && n == 2, "nested info");
        CHECK(vkl_gguf_get_arr_data(f, "x.nested") == NULL, "nested data hidden");
        CHECK(vkl_gguf_get_u32(f, "x.after", &v) && v == 7, "key after a nested array");
        vkl_gguf_close(f);
        f = NULL;
    }
    for (size_t n = 0; n < b.n; n++) {   /* truncations of the nested array */
        gguf_file *g;
        CHECK(open_copy(b.p, n, &g) == VKLLM_ERR_FORMAT, "nested array truncated to %zu", n);
    }
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_str(&b, "x.deep");
    b_u32(&b, GGUF_TYPE_ARRAY);
    for (int i = 0; i < 20; i++) {
        b_u32(&b, GGUF_TYPE_ARRAY);
        b_u64(&b, 1);
    }
    b_u32(&b, GGUF_TYPE_UINT8);
    b_u64(&b, 0);
    expect_format_error("deep nesting", &b, "x.deep", "nested");

    /* keys: duplicate, empty, NUL inside */
    b.n = 0;
    b_header(&b, 3, 0, 3);
    b_kv_u32(&b, "a.b", 1);
    b_kv_u32(&b, "c.d", 1);
    b_kv_u32(&b, "a.b", 2);
    expect_format_error("duplicate key", &b, "duplicate key a.b", NULL);
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "", 1);
    expect_format_error("empty key", &b, "key/value 0", "empty");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_u64(&b, 3);
    b_bytes(&b, "a\0b", 3);
    b_u32(&b, GGUF_TYPE_UINT8);
    b_bytes(&b, "\1", 1);
    expect_format_error("NUL in key", &b, "NUL", NULL);

    /* alignment */
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "general.alignment", 24);
    expect_format_error("alignment 24", &b, "general.alignment", "power of two");
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_kv_u32(&b, "general.alignment", 0);
    expect_format_error("alignment 0", &b, "general.alignment", NULL);
    b.n = 0;
    b_header(&b, 3, 0, 1);
    b_kv_str(&b, "general.alignment", "32");
    expect_format_error("alignment string", &b, "general.alignment", "integer");

    /* tensor infos */
    struct {
        const char *what;
        uint32_t n_dims;
        uint64_t ne[5];
        uint32_t type;
        uint64_t offset;
        const char *s1, *s2;
    } bad[] = {
        {"n_dims 0", 0, {0}, GGML_TYPE_F32, 0, "blk.0.attn_q.weight", "n_dims 0"},
        {"n_dims 5", 5, {1, 1, 1, 1, 1}, GGML_TYPE_F32, 0, "blk.0.attn_q.weight", "n_dims 5"},
        {"dim 0", 2, {8, 0}, GGML_TYPE_F32, 0, "blk.0.attn_q.weight", "dimension 1 is 0"},
        {"product overflow", 4, {1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, GGML_TYPE_F32, 0,
         "blk.0.attn_q.weight", "overflow"},
        {"dim > int64", 1, {1ull << 63}, GGML_TYPE_F32, 0, "blk.0.attn_q.weight", "too large"},
        {"bytes overflow", 2, {1ull << 32, 1ull << 30}, GGML_TYPE_F32, 0, "blk.0.attn_q.weight", NULL},
        {"misaligned offset", 1, {8}, GGML_TYPE_F32, 4, "blk.0.attn_q.weight", "alignment"},
        {"data past end", 1, {8}, GGML_TYPE_F32, 1ull << 40, "blk.0.attn_q.weight", "data extends past end of file"},
        {"data past end (size)", 2, {1024, 1024}, GGML_TYPE_F32, 0, "blk.0.attn_q.weight",
         "data extends past end of file"},
        {"offset near 2^64", 1, {8}, GGML_TYPE_F32, UINT64_MAX - 31, "blk.0.attn_q.weight", "past end of file"},
        {"q4_0 row not a block multiple", 2, {48, 2}, GGML_TYPE_Q4_0, 0, "blk.0.attn_q.weight", "block size"},
        {"q4_K row of 128", 2, {128, 2}, GGML_TYPE_Q4_K, 0, "blk.0.attn_q.weight",
         "row length 128 is not a multiple of the block size 256 of type q4_K"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        b.n = 0;
        b_header(&b, 3, 1, 0);
        b_tensor(&b, "blk.0.attn_q.weight", bad[i].n_dims, bad[i].ne, bad[i].type, bad[i].offset);
        b_pad(&b, 32);
        b_zeros(&b, 64);
        expect_format_error(bad[i].what, &b, bad[i].s1, bad[i].s2);
    }
    /* a tensor whose type and shape give more bytes than it has before the next tensor */
    b.n = 0;
    b_header(&b, 3, 2, 0);
    uint64_t ne_k[2] = {256, 2};   /* q4_K: 2 blocks of 144 bytes = 288, but the next tensor starts at 256 */
    uint64_t ne_next[1] = {8};
    b_tensor(&b, "big.weight", 2, ne_k, GGML_TYPE_Q4_K, 0);
    b_tensor(&b, "next.weight", 1, ne_next, GGML_TYPE_F32, 256);
    b_pad(&b, 32);
    b_zeros(&b, 512);
    expect_format_error("overlapping tensors", &b, "big.weight", "overlap tensor next.weight at offset 256");
    /* duplicate tensor names */
    b.n = 0;
    b_header(&b, 3, 2, 0);
    b_tensor(&b, "t", 1, ne1, GGML_TYPE_F32, 0);
    b_tensor(&b, "t", 1, ne1, GGML_TYPE_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    expect_format_error("duplicate tensor", &b, "duplicate tensor name t", NULL);
    /* tensor name past the end */
    b.n = 0;
    b_header(&b, 3, 1, 0);
    b_u64(&b, 1000);
    b_zeros(&b, 40);
    expect_format_error("tensor name past end", &b, "tensor info 0", "past end of file");

    /* an unknown tensor type is kept with nbytes 0 and data NULL */
    b.n = 0;
    b_header(&b, 3, 2, 0);
    uint64_t ne2[2] = {256, 4};
    b_tensor(&b, "odd.weight", 2, ne2, 34 /* TQ1_0: a GGUF type vkllm does not read */, 0);
    b_tensor(&b, "f.weight", 1, ne1, GGML_TYPE_F32, 0);
    b_pad(&b, 32);
    b_zeros(&b, 32);
    f = NULL;
    CHECK(vkl_gguf_open_memory(b.p, b.n, &f) == VKLLM_OK, "unknown type: %s", vkr_last_error());
    if (f) {
        const gguf_tensor *t = vkl_gguf_find_tensor(f, "odd.weight");
        CHECK(t && t->nbytes == 0 && t->data == NULL && t->type == 34 && t->n_elements == 1024, "unknown type kept");
        vkl_gguf_close(f);
    }

    /* custom alignment is honoured */
    b.n = 0;
    b_header(&b, 3, 2, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b_tensor(&b, "x", 1, ne1, GGML_TYPE_F32, 0);
    b_tensor(&b, "y", 1, ne1, GGML_TYPE_F32, 64);
    b_pad(&b, 64);
    size_t data_at = b.n;
    b_zeros(&b, 64 + 32);
    f = NULL;
    CHECK(vkl_gguf_open_memory(b.p, b.n, &f) == VKLLM_OK, "alignment 64: %s", vkr_last_error());
    if (f) {
        CHECK(vkl_gguf_alignment(f) == 64 && vkl_gguf_data_offset(f) == data_at, "alignment 64 data offset");
        CHECK(vkl_gguf_find_tensor(f, "y")->data == b.p + data_at + 64, "alignment 64 tensor data");
        vkl_gguf_close(f);
    }
    b.n = 0;
    b_header(&b, 3, 1, 1);
    b_kv_u32(&b, "general.alignment", 64);
    b_tensor(&b, "x", 1, ne1, GGML_TYPE_F32, 32);
    b_pad(&b, 64);
    b_zeros(&b, 128);
    expect_format_error("offset aligned to 32 but not 64", &b, "tensor x", "alignment 64");
    free(b.p);
}

/* ---- writer -> reader round trip ---- */

typedef struct rt_tensor {
    const char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    uint8_t *data;
    uint64_t nbytes;
} rt_tensor;

static void test_round_trip(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/test_gguf_roundtrip_%ld.gguf", dir, (long)getpid());
    test_rng r;
    rng_init(&r, test_seed());

    rt_tensor ts[] = {
        {"token_embd.weight", GGML_TYPE_Q4_0, 2, {64, 5, 1, 1}, NULL, 0},
        {"blk.0.attn_q.weight", GGML_TYPE_Q8_0, 2, {32, 3, 1, 1}, NULL, 0},
        {"blk.0.ffn_norm.weight", GGML_TYPE_F32, 1, {7, 1, 1, 1}, NULL, 0},
        {"x.f16", GGML_TYPE_F16, 3, {3, 2, 5, 1}, NULL, 0},
        {"x.four_d", GGML_TYPE_F32, 4, {2, 3, 1, 2}, NULL, 0},
        {"x.last", GGML_TYPE_F16, 1, {5, 1, 1, 1}, NULL, 0},
    };
    const size_t n_ts = sizeof ts / sizeof ts[0];
    for (size_t i = 0; i < n_ts; i++) {
        uint64_t n = ts[i].ne[0] * ts[i].ne[1] * ts[i].ne[2] * ts[i].ne[3];
        ts[i].nbytes = vkl_ggml_row_bytes(ts[i].type, ts[i].ne[0]) * (n / ts[i].ne[0]);
        ts[i].data = malloc(ts[i].nbytes);
        for (uint64_t k = 0; k < ts[i].nbytes; k++)
            ts[i].data[k] = (uint8_t)rng_u32(&r);
    }

    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int32_t i32 = -2000000000;
    uint64_t u64 = 0xfedcba9876543210ull;
    int64_t i64 = INT64_MIN;
    double f64 = -1.0 / 3.0;
    const char *strs[] = {"<unk>", "", "\xe2\x96\x81hello", "with\nnewline"};
    float f32s[] = {1.5f, -0.25f, 1e30f};
    int32_t i32s[] = {1, -2, 2147483647};
    uint8_t u8s[] = {0, 255};
    int8_t i8s[] = {-128, 127};
    uint16_t u16s[] = {65535};
    int16_t i16s[] = {-32768, 1};
    uint32_t u32s[] = {4000000000u, 3};
    uint64_t u64s[] = {UINT64_MAX};
    int64_t i64s[] = {-5, INT64_MAX};
    double f64s[] = {2.5, -1e300};
    bool bools[] = {true, false, true};

    gguf_writer *w;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    CHECK(st == VKLLM_OK, "writer_open %s: %s", path, vkr_last_error());
    if (st != VKLLM_OK)
        goto out;
#define W(call) CHECK((call) == VKLLM_OK, "%s: %s", #call, vkr_last_error())
    W(vkl_gguf_writer_kv_str(w, "general.architecture", "llama"));
    W(vkl_gguf_writer_kv_u32(w, "k.u32", 4000000000u));
    W(vkl_gguf_writer_kv_f32(w, "k.f32", 0.125f));
    W(vkl_gguf_writer_kv_bool(w, "k.bool", true));
    W(vkl_gguf_writer_kv(w, "k.u8", GGUF_TYPE_UINT8, &u8));
    W(vkl_gguf_writer_kv(w, "k.i8", GGUF_TYPE_INT8, &i8));
    W(vkl_gguf_writer_kv(w, "k.u16", GGUF_TYPE_UINT16, &u16));
    W(vkl_gguf_writer_kv(w, "k.i16", GGUF_TYPE_INT16, &i16));
    W(vkl_gguf_writer_kv(w, "k.i32", GGUF_TYPE_INT32, &i32));
    W(vkl_gguf_writer_kv(w, "k.u64", GGUF_TYPE_UINT64, &u64));
    W(vkl_gguf_writer_kv(w, "k.i64", GGUF_TYPE_INT64, &i64));
    W(vkl_gguf_writer_kv(w, "k.f64", GGUF_TYPE_FLOAT64, &f64));
    W(vkl_gguf_writer_kv_str(w, "k.empty_str", ""));
    W(vkl_gguf_writer_kv_arr_str(w, "k.arr_str", strs, 4));
    W(vkl_gguf_writer_kv_arr_f32(w, "k.arr_f32", f32s, 3));
    W(vkl_gguf_writer_kv_arr_i32(w, "k.arr_i32", i32s, 3));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_u8", GGUF_TYPE_UINT8, u8s, 2));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_i8", GGUF_TYPE_INT8, i8s, 2));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_u16", GGUF_TYPE_UINT16, u16s, 1));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_i16", GGUF_TYPE_INT16, i16s, 2));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_u32", GGUF_TYPE_UINT32, u32s, 2));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_u64", GGUF_TYPE_UINT64, u64s, 1));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_i64", GGUF_TYPE_INT64, i64s, 2));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_f64", GGUF_TYPE_FLOAT64, f64s, 2));
    W(vkl_gguf_writer_kv_arr(w, "k.arr_bool", GGUF_TYPE_BOOL, bools, 3));
    W(vkl_gguf_writer_kv_arr_f32(w, "k.arr_empty", NULL, 0));
    W(vkl_gguf_writer_kv_arr_str(w, "k.arr_str_empty", NULL, 0));
    /* writer misuse is refused without harming the file */
    CHECK(vkl_gguf_writer_kv_u32(w, "k.u32", 1) == VKLLM_ERR_INVALID_ARGUMENT, "duplicate key accepted");
    CHECK(vkl_gguf_writer_kv_u32(w, "", 1) == VKLLM_ERR_INVALID_ARGUMENT, "empty key accepted");
    CHECK(vkl_gguf_writer_kv(w, "k.s", GGUF_TYPE_STRING, "x") == VKLLM_ERR_INVALID_ARGUMENT, "kv(string) accepted");
    uint64_t bad_ne[2] = {48, 2};
    CHECK(vkl_gguf_writer_tensor_info(w, "bad", GGML_TYPE_Q8_0, 2, bad_ne) == VKLLM_ERR_INVALID_ARGUMENT,
          "q8_0 row of 48 accepted");
    CHECK(vkl_gguf_writer_tensor_info(w, "bad", 12, 2, bad_ne) == VKLLM_ERR_INVALID_ARGUMENT, "unknown type accepted");
    CHECK(vkl_gguf_writer_tensor_info(w, "bad", GGML_TYPE_F32, 0, bad_ne) == VKLLM_ERR_INVALID_ARGUMENT, "n_dims 0");
    for (size_t i = 0; i < n_ts; i++)
        W(vkl_gguf_writer_tensor_info(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne));
    CHECK(vkl_gguf_writer_tensor_info(w, ts[0].name, GGML_TYPE_F32, 1, bad_ne) == VKLLM_ERR_INVALID_ARGUMENT,
          "duplicate tensor name accepted");
    /* data in uneven pieces */
    for (size_t i = 0; i < n_ts; i++) {
        uint64_t off = 0;
        while (off < ts[i].nbytes) {
            uint64_t n = 1 + rng_u32(&r) % 40;
            if (n > ts[i].nbytes - off)
                n = ts[i].nbytes - off;
            W(vkl_gguf_writer_tensor_data(w, ts[i].data + off, (size_t)n));
            off += n;
        }
        if (i == 0) {
            CHECK(vkl_gguf_writer_kv_u32(w, "k.late", 1) == VKLLM_ERR_INVALID_ARGUMENT, "kv after data accepted");
            CHECK(vkl_gguf_writer_tensor_info(w, "late", GGML_TYPE_F32, 1, bad_ne) == VKLLM_ERR_INVALID_ARGUMENT,
                  "tensor info after data accepted");
        }
    }
    CHECK(vkl_gguf_writer_tensor_data(w, "x", 1) == VKLLM_ERR_INVALID_ARGUMENT, "data past the last tensor accepted");
    W(vkl_gguf_writer_close(w));
#undef W

    /* read back, through the mapping and from memory */
    gguf_file *f;
    st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "gguf_open %s: %s", path, vkr_last_error());
    if (st != VKLLM_OK)
        goto out;
    CHECK(vkl_gguf_version(f) == 3 && vkl_gguf_alignment(f) == 32, "version/alignment");
    CHECK(vkl_gguf_n_kv(f) == 27, "n_kv %llu", (unsigned long long)vkl_gguf_n_kv(f));
    CHECK(vkl_gguf_n_tensors(f) == n_ts, "n_tensors");
    CHECK(vkl_gguf_find_key(f, "k.f64") == 11 && vkl_gguf_find_key(f, "nope") == -1, "find_key");
    CHECK(vkl_gguf_kv_type(f, 11) == GGUF_TYPE_FLOAT64 && !strcmp(vkl_gguf_kv_key(f, 11), "k.f64"), "kv by index");
    CHECK(vkl_gguf_kv_key(f, 27) == NULL, "kv key past the end");

    const char *s;
    uint64_t len, vu64;
    uint32_t vu32;
    int32_t vi32;
    int64_t vi64;
    float vf32;
    double vf64;
    bool vb;
    CHECK(vkl_gguf_get_str(f, "general.architecture", &s, &len) && len == 5 && !memcmp(s, "llama", 5), "arch");
    CHECK(vkl_gguf_get_str(f, "k.empty_str", &s, &len) && len == 0, "empty string");
    CHECK(vkl_gguf_get_u32(f, "k.u32", &vu32) && vu32 == 4000000000u, "u32");
    CHECK(!vkl_gguf_get_i32(f, "k.u32", &vi32), "u32 4e9 read as i32");
    CHECK(vkl_gguf_get_u64(f, "k.u32", &vu64) && vu64 == 4000000000u, "u32 as u64");
    CHECK(vkl_gguf_get_f32(f, "k.f32", &vf32) && vf32 == 0.125f, "f32");
    CHECK(!vkl_gguf_get_u32(f, "k.f32", &vu32), "f32 read as u32");
    CHECK(vkl_gguf_get_bool(f, "k.bool", &vb) && vb, "bool");
    CHECK(!vkl_gguf_get_u32(f, "k.bool", &vu32), "bool read as u32");
    CHECK(vkl_gguf_get_u32(f, "k.u8", &vu32) && vu32 == 200, "u8");
    CHECK(vkl_gguf_get_i32(f, "k.i8", &vi32) && vi32 == -100, "i8");
    CHECK(!vkl_gguf_get_u32(f, "k.i8", &vu32) && !vkl_gguf_get_u64(f, "k.i8", &vu64), "negative read as unsigned");
    CHECK(vkl_gguf_get_u32(f, "k.u16", &vu32) && vu32 == 60000, "u16");
    CHECK(vkl_gguf_get_i32(f, "k.i16", &vi32) && vi32 == -30000, "i16");
    CHECK(vkl_gguf_get_i32(f, "k.i32", &vi32) && vi32 == -2000000000, "i32");
    CHECK(vkl_gguf_get_u64(f, "k.u64", &vu64) && vu64 == u64, "u64");
    CHECK(!vkl_gguf_get_u32(f, "k.u64", &vu32) && !vkl_gguf_get_i64(f, "k.u64", &vi64), "u64 out of range");
    CHECK(vkl_gguf_get_i64(f, "k.i64", &vi64) && vi64 == INT64_MIN, "i64 min");
    CHECK(vkl_gguf_get_f64(f, "k.f64", &vf64) && vf64 == f64, "f64");
    CHECK(vkl_gguf_get_f32(f, "k.f64", &vf32) && vf32 == (float)f64, "f64 as f32");
    CHECK(!vkl_gguf_get_str(f, "k.u8", &s, &len) && !vkl_gguf_get_u32(f, "missing", &vu32), "wrong type / missing");

    gguf_value_type et;
    uint64_t cnt;
    CHECK(vkl_gguf_get_arr_info(f, "k.arr_str", &et, &cnt) && et == GGUF_TYPE_STRING && cnt == 4, "arr_str info");
    for (uint64_t i = 0; i < 4; i++)
        CHECK(vkl_gguf_get_arr_str(f, "k.arr_str", i, &s, &len) && len == strlen(strs[i]) && !memcmp(s, strs[i], len),
              "arr_str %llu", (unsigned long long)i);
    CHECK(vkl_gguf_get_arr_data(f, "k.arr_str") == NULL, "string array has no raw data");
    CHECK(!vkl_gguf_get_arr_info(f, "k.u8", &et, &cnt), "scalar as array");
    struct {
        const char *key;
        gguf_value_type t;
        const void *v;
        uint64_t n;
        size_t sz;
    } arrs[] = {
        {"k.arr_f32", GGUF_TYPE_FLOAT32, f32s, 3, 4}, {"k.arr_i32", GGUF_TYPE_INT32, i32s, 3, 4},
        {"k.arr_u8", GGUF_TYPE_UINT8, u8s, 2, 1},     {"k.arr_i8", GGUF_TYPE_INT8, i8s, 2, 1},
        {"k.arr_u16", GGUF_TYPE_UINT16, u16s, 1, 2},  {"k.arr_i16", GGUF_TYPE_INT16, i16s, 2, 2},
        {"k.arr_u32", GGUF_TYPE_UINT32, u32s, 2, 4},  {"k.arr_u64", GGUF_TYPE_UINT64, u64s, 1, 8},
        {"k.arr_i64", GGUF_TYPE_INT64, i64s, 2, 8},   {"k.arr_f64", GGUF_TYPE_FLOAT64, f64s, 2, 8},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        CHECK(vkl_gguf_get_arr_info(f, arrs[i].key, &et, &cnt) && et == arrs[i].t && cnt == arrs[i].n, "%s info",
              arrs[i].key);
        const void *d = vkl_gguf_get_arr_data(f, arrs[i].key);
        CHECK(d && !memcmp(d, arrs[i].v, arrs[i].n * arrs[i].sz), "%s data (little-endian host)", arrs[i].key);
    }
    const uint8_t *bd = vkl_gguf_get_arr_data(f, "k.arr_bool");
    CHECK(bd && bd[0] == 1 && bd[1] == 0 && bd[2] == 1, "bool array");
    CHECK(vkl_gguf_get_arr_info(f, "k.arr_empty", &et, &cnt) && et == GGUF_TYPE_FLOAT32 && cnt == 0, "empty array");
    CHECK(vkl_gguf_get_arr_info(f, "k.arr_str_empty", &et, &cnt) && et == GGUF_TYPE_STRING && cnt == 0, "empty strs");

    for (size_t i = 0; i < n_ts; i++) {
        const gguf_tensor *t = vkl_gguf_find_tensor(f, ts[i].name);
        CHECK(t != NULL, "tensor %s missing", ts[i].name);
        if (!t)
            continue;
        CHECK(t == vkl_gguf_tensor_at(f, i), "tensor %s order", ts[i].name);
        CHECK(t->type == ts[i].type && t->n_dims == ts[i].n_dims, "tensor %s type/dims", ts[i].name);
        for (int d = 0; d < 4; d++)
            CHECK(t->ne[d] == ts[i].ne[d], "tensor %s ne[%d]", ts[i].name, d);
        CHECK(t->nbytes == ts[i].nbytes, "tensor %s nbytes", ts[i].name);
        CHECK(t->offset % 32 == 0, "tensor %s offset aligned", ts[i].name);
        CHECK(t->data && !memcmp(t->data, ts[i].data, ts[i].nbytes), "tensor %s data", ts[i].name);
    }
    CHECK(vkl_gguf_find_tensor(f, "nope") == NULL && vkl_gguf_tensor_at(f, n_ts) == NULL, "missing tensor");

    /* the same bytes through vkl_gguf_open_memory, then every truncation and random corruption */
    uint64_t size = vkl_gguf_file_size(f);
    uint8_t *copy = malloc(size);
    memcpy(copy, vkl_gguf_tensor_at(f, 0)->data - vkl_gguf_data_offset(f), size);
    const gguf_tensor *last = vkl_gguf_tensor_at(f, n_ts - 1);
    uint64_t data_end = vkl_gguf_data_offset(f) + last->offset + last->nbytes;
    uint64_t header_end = vkl_gguf_data_offset(f);
    vkl_gguf_close(f);
    gguf_file *m;
    st = vkl_gguf_open_memory(copy, size, &m);
    CHECK(st == VKLLM_OK, "gguf_open_memory: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(vkl_gguf_n_kv(m) == 27 && vkl_gguf_n_tensors(m) == n_ts, "memory counts");
        vkl_gguf_close(m);
    }
    int bad = 0;
    for (uint64_t n = 0; n < size; n++) {
        gguf_file *g;
        st = open_copy(copy, (size_t)n, &g);
        /* cutting only the zero padding after the last tensor leaves a valid file */
        vkllm_status want = n >= data_end ? VKLLM_OK : VKLLM_ERR_FORMAT;
        if (st != want && bad++ < 5)
            CHECK(0, "round-trip file truncated to %llu of %llu: status %d (%s)", (unsigned long long)n,
                  (unsigned long long)size, (int)st, vkr_last_error());
    }
    CHECK(bad == 0, "%d truncations misbehaved", bad);
    /* random corruption: must never crash or read outside the buffer; the result may be anything */
    uint8_t *mut = malloc(size);
    int n_ok = 0;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(mut, copy, size);
        int n_flips = 1 + (int)(rng_u32(&r) % 4);
        for (int k = 0; k < n_flips; k++) {
            uint64_t pos = rng_u32(&r) % (k == 0 ? header_end : size);   /* mostly where the structure is */
            static const uint8_t special[] = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x20};
            uint32_t x = rng_u32(&r);
            mut[pos] = (x & 1) ? (uint8_t)(x >> 8) : special[(x >> 8) % sizeof special];
        }
        gguf_file *g;
        vkr_clear_error();
        st = open_copy(mut, (size_t)size, &g);
        if (st == VKLLM_OK)
            n_ok++;
        else
            CHECK(st == VKLLM_ERR_FORMAT && *vkr_last_error(), "corruption %d: status %d without message", iter,
                  (int)st);
    }
    fprintf(stderr, "corrupted files: %d of 4000 still valid\n", n_ok);
    free(mut);
    free(copy);
out:
    remove(path);
    for (size_t i = 0; i < n_ts; i++)
        free(ts[i].data);
}

static void test_writer_failures(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/test_gguf_partial_%ld.gguf", dir, (long)getpid());
    gguf_writer *w;
    CHECK(vkl_gguf_writer_open(path, &w) == VKLLM_OK, "writer_open: %s", vkr_last_error());
    uint64_t ne[2] = {32, 4};
    CHECK(vkl_gguf_writer_tensor_info(w, "t", GGML_TYPE_Q8_0, 2, ne) == VKLLM_OK, "info: %s", vkr_last_error());
    uint8_t data[34] = {0};
    CHECK(vkl_gguf_writer_tensor_data(w, data, sizeof data) == VKLLM_OK, "data: %s", vkr_last_error());
    CHECK(vkl_gguf_writer_tensor_data(w, data, sizeof data - 1) == VKLLM_OK, "data: %s", vkr_last_error());
    vkllm_status st = vkl_gguf_writer_close(w);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && strstr(vkr_last_error(), "tensor t"),
          "close with a partial tensor: %d (%s)", (int)st, vkr_last_error());
    CHECK(access(path, F_OK) != 0, "partial file %s left behind", path);

    CHECK(vkl_gguf_writer_open(path, &w) == VKLLM_OK, "writer_open: %s", vkr_last_error());
    CHECK(vkl_gguf_writer_kv_u32(w, "a.b", 1) == VKLLM_OK, "kv");
    vkl_gguf_writer_abort(w);
    CHECK(access(path, F_OK) != 0, "aborted file %s left behind", path);

    CHECK(vkl_gguf_writer_open("/nonexistent-dir/x.gguf", &w) == VKLLM_ERR_IO, "writer in a missing directory");
    CHECK(strstr(vkr_last_error(), "/nonexistent-dir/x.gguf") != NULL, "message names the path: %s", vkr_last_error());

    gguf_file *f;
    CHECK(vkl_gguf_open("/nonexistent-dir/x.gguf", &f) == VKLLM_ERR_IO && f == NULL, "open missing file");
    CHECK(vkl_gguf_open(dir, &f) == VKLLM_ERR_IO, "open a directory");
    /* an empty file on disk */
    FILE *fp = fopen(path, "wb");
    if (fp) {
        fclose(fp);
        CHECK(vkl_gguf_open(path, &f) == VKLLM_ERR_FORMAT && strstr(vkr_last_error(), path), "empty file: %s",
              vkr_last_error());
        remove(path);
    }
}

static void test_stories(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        fprintf(stderr, "stories260K.gguf not found: skipping that part\n");
        return;
    }
    gguf_file *f;
    vkllm_status st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "stories260K: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return;
    const char *s;
    uint64_t len;
    uint32_t v;
    float eps;
    CHECK(vkl_gguf_version(f) == 3, "stories version %u", vkl_gguf_version(f));
    CHECK(vkl_gguf_get_str(f, "general.architecture", &s, &len) && len == 5 && !memcmp(s, "llama", 5), "arch");
    CHECK(vkl_gguf_get_u32(f, "llama.embedding_length", &v) && v == 64, "embedding_length");
    CHECK(vkl_gguf_get_u32(f, "llama.block_count", &v) && v == 5, "block_count");
    CHECK(vkl_gguf_get_u32(f, "llama.attention.head_count", &v) && v == 8, "head_count");
    CHECK(vkl_gguf_get_u32(f, "llama.attention.head_count_kv", &v) && v == 4, "head_count_kv");
    CHECK(vkl_gguf_get_u32(f, "llama.feed_forward_length", &v) && v == 172, "feed_forward_length");
    CHECK(vkl_gguf_get_f32(f, "llama.attention.layer_norm_rms_epsilon", &eps) && eps > 0 && eps < 1e-3f, "rms eps");
    CHECK(vkl_gguf_get_str(f, "tokenizer.ggml.model", &s, &len) && len == 5 && !memcmp(s, "llama", 5), "tokenizer");
    gguf_value_type et;
    uint64_t n;
    CHECK(vkl_gguf_get_arr_info(f, "tokenizer.ggml.tokens", &et, &n) && et == GGUF_TYPE_STRING && n == 512, "tokens");
    CHECK(vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", 1, &s, &len) && len == 3 && !memcmp(s, "<s>", 3), "<s>");
    CHECK(vkl_gguf_get_arr_info(f, "tokenizer.ggml.scores", &et, &n) && et == GGUF_TYPE_FLOAT32 && n == 512, "scores");
    CHECK(vkl_gguf_n_tensors(f) == 3 + 9 * 5, "stories tensors %llu", (unsigned long long)vkl_gguf_n_tensors(f));
    const gguf_tensor *t = vkl_gguf_find_tensor(f, "token_embd.weight");
    CHECK(t && t->type == GGML_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 64 && t->ne[1] == 512 && t->data,
          "token_embd.weight");
    t = vkl_gguf_find_tensor(f, "blk.4.ffn_down.weight");
    CHECK(t && t->ne[0] == 172 && t->ne[1] == 64 && t->nbytes == 172 * 64 * 4, "blk.4.ffn_down.weight");
    if (t && t->data) {
        float x[172];
        memcpy(x, t->data, sizeof x);
        CHECK(first_nonfinite(x, 172) < 0, "ffn_down values finite");
    }
    vkl_gguf_close(f);
}

int main(void)
{
    const char *dir = getenv("VKLLM_TEST_TMP");
    if (!dir || !*dir)
        dir = "/tmp";
    test_small_valid();
    test_malformed();
    test_round_trip(dir);
    test_writer_failures(dir);
    test_stories();
    return test_finish("gguf");
}
