/* Checks shared by the tokenizer tests; see tokenizer_check.h. */
#include "tokenizer_check.h"

#include <stdlib.h>
#include <string.h>

bool tok_encode(const tokenizer *tok, const char *s, size_t n, bool add_special, bool parse_special, int32_t **ids,
                size_t *n_ids)
{
    vkllm_status st = vkl_tokenizer_encode(tok, s, n, add_special, parse_special, ids, n_ids);
    CHECK(st == VKLLM_OK, "encode failed: %s", vkr_last_error());
    if (st == VKLLM_OK)
        CHECK(*ids != NULL, "encode returned NULL ids");
    return st == VKLLM_OK;
}

void tok_fail_text(const char *what, const char *want, size_t n_want, const char *got, size_t n_got)
{
    fprintf(stderr, "FAIL %s\n  want: ", what);
    test_print_escaped(stderr, want, n_want);
    fprintf(stderr, "\n  got:  ");
    test_print_escaped(stderr, got, n_got);
    fprintf(stderr, "\n");
    test_failures++;
}

/* Counts a failure: text s encoded to ids[0..n_ids) instead of want[0..n_want). */
static void fail_ids(const char *what, const char *s, size_t n, const int32_t *want, size_t n_want,
                     const int32_t *ids, size_t n_ids)
{
    fprintf(stderr, "FAIL %s ", what);
    test_print_escaped(stderr, s, n);
    fprintf(stderr, "\n");
    test_print_ids(stderr, "expected", want, n_want);
    test_print_ids(stderr, "got     ", ids, n_ids);
    test_failures++;
}

/* A streamed chunk of valid UTF-8 text must neither start with a continuation byte nor end inside a
 * character. */
static bool chunk_is_whole(const char *piece, size_t plen)
{
    if (plen == 0)
        return true;
    if (((unsigned char)piece[0] & 0xC0) == 0x80)
        return false;
    size_t j = plen;
    while (j > 0 && ((unsigned char)piece[j - 1] & 0xC0) == 0x80)
        j--;
    if (j == 0)
        return true;
    unsigned char lead = (unsigned char)piece[j - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return plen - (j - 1) == need;
}

/* Pushes ids through a stream one at a time, then flushes: the streamed text must be text[0..len). */
static bool stream_matches(const tokenizer *tok, const int32_t *ids, size_t n_ids, const char *text, size_t len,
                           bool check_chunks, const char *input, size_t n)
{
    tokenizer_stream *ts = NULL;
    vkllm_status st = vkl_tokenizer_stream_create(tok, false, &ts);
    CHECK(st == VKLLM_OK, "stream create failed: %s", vkr_last_error());
    if (st != VKLLM_OK)
        return false;
    const size_t cap = len + 16;
    char *acc = malloc(cap);
    size_t acc_n = 0;
    bool chunks_ok = true, overflow = false;
    for (size_t i = 0; i <= n_ids && acc; i++) {
        const char *piece;
        size_t plen;
        if (i < n_ids) {
            st = vkl_tokenizer_stream_push(ts, ids[i], &piece, &plen);
            CHECK(st == VKLLM_OK, "stream push failed: %s", vkr_last_error());
        } else {
            vkl_tokenizer_stream_flush(ts, &piece, &plen);
        }
        if (check_chunks && !chunk_is_whole(piece, plen))
            chunks_ok = false;
        if (acc_n + plen > cap) {
            overflow = true;
            break;
        }
        memcpy(acc + acc_n, piece, plen);
        acc_n += plen;
    }
    bool same = acc && !overflow && acc_n == len && (len == 0 || !memcmp(acc, text, len));
    CHECK(same, "streamed text differs from decoded text (%zu vs %zu bytes)", acc_n, len);
    CHECK(chunks_ok, "a streamed chunk splits a UTF-8 character");
    if (!chunks_ok) {
        fprintf(stderr, "  text: ");
        test_print_escaped(stderr, input, n);
        fprintf(stderr, "\n");
    }
    free(acc);
    vkl_tokenizer_stream_free(ts);
    return same && chunks_ok;
}

bool tok_round_trip(const tokenizer *tok, const char *s, size_t n, bool check_chunks)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!tok_encode(tok, s, n, false, false, &ids, &n_ids))
        return false;
    bool ok = true;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= vkl_tokenizer_n_vocab(tok))
            ok = false;
    CHECK(ok, "encode produced an id out of range");
    char *text = NULL;
    size_t len = 0;
    vkllm_status st = vkl_tokenizer_decode(tok, ids, n_ids, false, &text, &len);
    CHECK(st == VKLLM_OK, "decode failed: %s", vkr_last_error());
    if (st != VKLLM_OK) {
        ok = false;
    } else if (len != n || (n && memcmp(text, s, n))) {
        tok_fail_text("round trip", s, n, text, len);
        test_print_ids(stderr, "ids", ids, n_ids);
        ok = false;
    }
    if (st == VKLLM_OK && !stream_matches(tok, ids, n_ids, text, len, check_chunks, s, n))
        ok = false;
    free(text);
    free(ids);
    return ok;
}

void tok_expect_ids(const tokenizer *tok, const char *s, size_t n, bool add_special, bool parse_special,
                    const int32_t *want, size_t n_want)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!tok_encode(tok, s, n, add_special, parse_special, &ids, &n_ids))
        return;
    if (n_ids != n_want || (n_want && memcmp(ids, want, n_want * sizeof *ids))) {
        char what[64];
        snprintf(what, sizeof what, "encode(add_special=%d, parse_special=%d)", add_special, parse_special);
        fail_ids(what, s, n, want, n_want, ids, n_ids);
    }
    free(ids);
}

void tok_expect_decode(const tokenizer *tok, const int32_t *ids, size_t n, bool special, const char *want)
{
    char *text = NULL;
    size_t len = 0;
    vkllm_status st = vkl_tokenizer_decode(tok, ids, n, special, &text, &len);
    CHECK(st == VKLLM_OK, "decode failed: %s", vkr_last_error());
    if (st == VKLLM_OK && (len != strlen(want) || memcmp(text, want, len)))
        tok_fail_text("decode", want, strlen(want), text, len);
    free(text);
}

/* One vector: s[0..slen) must encode to want[0..n_want), also with add_special and parse_special (to the BOS,
 * where the vocab adds one, and the same ids: no special tokens in the text), and round trip. */
static bool check_vector(const tokenizer *tok, size_t at, const char *s, size_t slen, const int32_t *want,
                         size_t n_want)
{
    bool ok = false;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (tok_encode(tok, s, slen, false, false, &ids, &n_ids)) {
        ok = n_ids == n_want && (n_want == 0 || !memcmp(ids, want, n_want * sizeof *ids));
        if (!ok) {
            char what[48];
            snprintf(what, sizeof what, "vector %zu:", at);
            fail_ids(what, s, slen, want, n_want, ids, n_ids);
        }
        free(ids);
    }
    bool bos = vkl_tokenizer_adds_bos(tok);
    if (tok_encode(tok, s, slen, true, true, &ids, &n_ids)) {
        size_t k = bos ? 1 : 0;
        CHECK(n_ids == n_want + k && (!bos || ids[0] == vkl_tokenizer_bos(tok)) &&
                  (n_want == 0 || !memcmp(ids + k, want, n_want * sizeof *ids)),
              "vector %zu with add_special and parse_special: expected %s the same ids", at, bos ? "BOS +" : "");
        free(ids);
    }
    tok_round_trip(tok, s, slen, true);
    return ok;
}

void tok_check_vectors(const tokenizer *tok, const char *vocab_path)
{
    char inp_path[1100], out_path[1100];
    snprintf(inp_path, sizeof inp_path, "%s.inp", vocab_path);
    snprintf(out_path, sizeof out_path, "%s.out", vocab_path);
    size_t inp_len = 0, out_len = 0;
    char *inp = test_read_file(inp_path, &inp_len);
    char *out = test_read_file(out_path, &out_len);
    CHECK(inp && out, "cannot read %s / %s", inp_path, out_path);
    if (!inp || !out) {
        free(inp);
        free(out);
        return;
    }
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof SEP - 1;
    enum { MAX_IDS = 4096 };
    size_t n_vec = 0, n_ok = 0;
    char *ip = inp, *op = out;
    char *const iend = inp + inp_len, *const oend = out + out_len;
    int32_t *want = malloc(MAX_IDS * sizeof *want);
    while (want && ip < iend) {
        /* the next test string ends at the separator (strings may contain NUL-free arbitrary bytes) */
        char *sep = NULL;
        for (char *q = ip; q + sep_len <= iend; q++)
            if (*q == '\n' && !memcmp(q, SEP, sep_len)) {
                sep = q;
                break;
            }
        if (!sep)
            break;
        /* expected ids: one line */
        char *eol = memchr(op, '\n', (size_t)(oend - op));
        CHECK(eol != NULL, "%s: fewer lines than test strings", out_path);
        if (!eol)
            break;
        size_t n_want = 0;
        for (char *q = op; q < eol && n_want < MAX_IDS;) {
            char *end;
            long v = strtol(q, &end, 10);
            if (end == q)
                break;
            want[n_want++] = (int32_t)v;
            q = end;
        }
        op = eol + 1;
        if (check_vector(tok, n_vec, ip, (size_t)(sep - ip), want, n_want))
            n_ok++;
        n_vec++;
        ip = sep + sep_len;
    }
    CHECK(op == oend, "%s: more lines than test strings", out_path);
    CHECK(n_vec > 0, "no test vectors in %s", inp_path);
    fprintf(stderr, "%s: %zu/%zu vectors match\n", inp_path, n_ok, n_vec);
    free(want);
    free(inp);
    free(out);
}

vkllm_status tok_load_written(const char *name, vkllm_status (*write_keys)(gguf_writer *w, const void *spec),
                              const void *spec, tokenizer **tok)
{
    *tok = NULL;
    char path[512];
    const char *dir = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/tmp", name);
    gguf_writer *w = NULL;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    CHECK(st == VKLLM_OK, "writer open %s: %s", path, vkr_last_error());
    if (st != VKLLM_OK)
        return st;
    st = write_keys(w, spec);
    vkllm_status st2 = vkl_gguf_writer_close(w);
    CHECK(st == VKLLM_OK && st2 == VKLLM_OK, "writing %s: %s", path, vkr_last_error());
    if (st != VKLLM_OK || st2 != VKLLM_OK) {
        remove(path);
        return st != VKLLM_OK ? st : st2;
    }
    gguf_file *f = NULL;
    st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "open %s: %s", path, vkr_last_error());
    if (st == VKLLM_OK) {
        vkr_clear_error();
        st = vkl_tokenizer_load(f, tok);
        vkl_gguf_close(f);
    }
    remove(path);
    return st;
}
