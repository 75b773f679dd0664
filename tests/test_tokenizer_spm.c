/* SentencePiece tokenizer: llama.cpp's test vectors for the Llama 2 and Phi-3 vocabs, Phi-3's control tokens,
 * Gemma's conventions on a hand-made vocab, round trips, the streaming detokenizer, invalid UTF-8, metadata
 * validation, and encode speed. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer_check.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_llama_spm_details(const tokenizer *tok)
{
    CHECK(vkl_tokenizer_get_kind(tok) == TOKENIZER_SPM, "kind");
    CHECK(vkl_tokenizer_n_vocab(tok) == 32000, "n_vocab %d", vkl_tokenizer_n_vocab(tok));
    CHECK(vkl_tokenizer_bos(tok) == 1 && vkl_tokenizer_eos(tok) == 2 && vkl_tokenizer_unk(tok) == 0 && vkl_tokenizer_pad(tok) == -1,
          "special ids %d %d %d %d", vkl_tokenizer_bos(tok), vkl_tokenizer_eos(tok), vkl_tokenizer_unk(tok), vkl_tokenizer_pad(tok));
    CHECK(vkl_tokenizer_adds_bos(tok) && !vkl_tokenizer_adds_eos(tok), "add_bos/add_eos");
    CHECK(vkl_tokenizer_is_eog(tok, 2) && !vkl_tokenizer_is_eog(tok, 1) && !vkl_tokenizer_is_eog(tok, 15043) &&
              !vkl_tokenizer_is_eog(tok, -1) && !vkl_tokenizer_is_eog(tok, 32000),
          "is_eog");
    CHECK(vkl_tokenizer_token_type(tok, 0) == TOKEN_TYPE_UNKNOWN && vkl_tokenizer_token_type(tok, 1) == TOKEN_TYPE_CONTROL &&
              vkl_tokenizer_token_type(tok, 3) == TOKEN_TYPE_BYTE && vkl_tokenizer_token_type(tok, 15043) == TOKEN_TYPE_NORMAL &&
              vkl_tokenizer_token_type(tok, 32000) == -1,
          "token types");
    CHECK(vkl_tokenizer_find_token(tok, "\xE2\x96\x81Hello", 8) == 15043, "find ▁Hello");
    CHECK(vkl_tokenizer_find_token(tok, "no-such-token-xyz", 17) == -1, "find missing");
    size_t tl;
    const char *tt = vkl_tokenizer_token_text(tok, 1, &tl);
    CHECK(tt && tl == 3 && !memcmp(tt, "<s>", 3), "token text of BOS");
    CHECK(vkl_tokenizer_token_text(tok, -5, &tl) == NULL, "token text out of range");

    /* pieces */
    char buf[64];
    int32_t n = vkl_tokenizer_token_to_piece(tok, 15043, buf, sizeof buf);
    CHECK(n == 6 && !memcmp(buf, " Hello", 6), "piece of ▁Hello: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 3 + 0x41, buf, sizeof buf);
    CHECK(n == 1 && buf[0] == 'A', "piece of <0x41>: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 3 + 0xF0, buf, sizeof buf);
    CHECK(n == 1 && (unsigned char)buf[0] == 0xF0, "piece of <0xF0>: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 1, buf, sizeof buf);
    CHECK(n == 0, "piece of BOS: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 15043, buf, 3);
    CHECK(n == -6, "piece into a small buffer: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 32000, buf, sizeof buf);
    CHECK(n == TOKENIZER_BAD_ID && vkr_last_error()[0], "piece of an id out of range: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, -1, buf, sizeof buf);
    CHECK(n == TOKENIZER_BAD_ID, "piece of -1: %d", n);
    CHECK(vkl_tokenizer_max_piece_len(tok) >= 16, "max piece len %zu", vkl_tokenizer_max_piece_len(tok));

    /* special tokens */
    TOK_EXPECT_IDS(tok, "Hello world", true, false, 1, 15043, 3186);
    TOK_EXPECT_IDS(tok, "", true, false, 1);
    tok_expect_ids(tok, "", 0, false, false, NULL, 0);
    TOK_EXPECT_IDS(tok, "<s>Hello", false, true, 1, 15043);
    TOK_EXPECT_IDS(tok, "Hello</s>", false, true, 15043, 2);
    TOK_EXPECT_IDS(tok, "a<s>b", false, true, 263, 1, 289);
    {
        /* without parse_special "<s>" is text: no id 1 anywhere */
        int32_t *ids;
        size_t n_ids;
        CHECK(vkl_tokenizer_encode(tok, "<s>Hello", 8, false, false, &ids, &n_ids) == VKLLM_OK, "encode");
        bool has_bos = false;
        for (size_t i = 0; i < n_ids; i++)
            has_bos |= ids[i] == 1;
        CHECK(!has_bos && n_ids > 2, "\"<s>\" parsed as BOS without parse_special");
        free(ids);
    }

    /* decoding conventions */
    tok_expect_decode(tok, (const int32_t[]){1, 15043, 3186, 2}, 4, false, "Hello world");
    tok_expect_decode(tok, (const int32_t[]){1, 15043, 3186, 2}, 4, true, "<s>Hello world</s>");
    tok_expect_decode(tok, (const int32_t[]){15043, 1, 15043}, 3, true, "Hello<s>Hello");
    tok_expect_decode(tok, (const int32_t[]){29871, 15043}, 2, false, " Hello");
    tok_expect_decode(tok, NULL, 0, false, "");
    /* incomplete UTF-8 at the end is passed through */
    tok_expect_decode(tok, (const int32_t[]){29871, 3 + 0xF0, 3 + 0x9F}, 3, false, "\xF0\x9F");

    /* ids out of range */
    char *text = NULL;
    size_t len = 0;
    vkllm_status st = vkl_tokenizer_decode(tok, (const int32_t[]){15043, 32000}, 2, false, &text, &len);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && text == NULL && vkr_last_error()[0], "decode of id 32000: %d", st);
    st = vkl_tokenizer_decode(tok, (const int32_t[]){-1}, 1, false, &text, &len);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && text == NULL, "decode of id -1: %d", st);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    st = vkl_tokenizer_encode(tok, NULL, 3, false, false, &ids, &n_ids);
    CHECK(st == VKLLM_ERR_INVALID_ARGUMENT, "encode of NULL text: %d", st);

    /* streaming: UTF-8 held back across byte tokens, leading space, errors */
    tokenizer_stream *ts = NULL;
    st = vkl_tokenizer_stream_create(tok, false, &ts);
    CHECK(st == VKLLM_OK, "stream create: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        const char *p;
        size_t pl;
        /* "▁" then 🚀 (F0 9F 9A 80) as four byte tokens */
        const int32_t seq[] = {1, 29871, 3 + 0xF0, 3 + 0x9F, 3 + 0x9A, 3 + 0x80, 15043};
        size_t lens[7];
        char all[64];
        size_t an = 0;
        for (size_t i = 0; i < 7; i++) {
            st = vkl_tokenizer_stream_push(ts, seq[i], &p, &pl);
            CHECK(st == VKLLM_OK, "push %zu", i);
            lens[i] = pl;
            memcpy(all + an, p, pl);
            an += pl;
        }
        CHECK(lens[0] == 0 && lens[1] == 0 && lens[2] == 0 && lens[3] == 0 && lens[4] == 0 && lens[5] == 4 &&
                  lens[6] == 6,
              "stream chunk lengths %zu %zu %zu %zu %zu %zu %zu", lens[0], lens[1], lens[2], lens[3], lens[4],
              lens[5], lens[6]);
        CHECK(an == 10 && !memcmp(all, "\xF0\x9F\x9A\x80 Hello", 10), "stream text");
        st = vkl_tokenizer_stream_push(ts, 32000, &p, &pl);
        CHECK(st == VKLLM_ERR_INVALID_ARGUMENT && pl == 0, "stream push of an id out of range: %d", st);
        /* held bytes that can never complete are released by the next piece or by flush */
        vkl_tokenizer_stream_reset(ts, false);
        st = vkl_tokenizer_stream_push(ts, 15043, &p, &pl);
        CHECK(st == VKLLM_OK && pl == 6 && !memcmp(p, " Hello", 6), "continuing stream keeps the space");
        st = vkl_tokenizer_stream_push(ts, 3 + 0xE2, &p, &pl);
        CHECK(st == VKLLM_OK && pl == 0, "lead byte held");
        st = vkl_tokenizer_stream_push(ts, 3 + 0x41, &p, &pl);
        CHECK(st == VKLLM_OK && pl == 2 && !memcmp(p, "\xE2" "A", 2), "invalid sequence released");
        st = vkl_tokenizer_stream_push(ts, 3 + 0xE2, &p, &pl);
        st = vkl_tokenizer_stream_push(ts, 3 + 0x96, &p, &pl);
        CHECK(st == VKLLM_OK && pl == 0, "two bytes held");
        vkl_tokenizer_stream_flush(ts, &p, &pl);
        CHECK(pl == 2 && !memcmp(p, "\xE2\x96", 2), "flush releases held bytes");
        vkl_tokenizer_stream_flush(ts, &p, &pl);
        CHECK(pl == 0, "second flush is empty");
        vkl_tokenizer_stream_free(ts);
    }
}

static void test_invalid_utf8(const tokenizer *tok, uint64_t seed)
{
    static const char *const cases[] = {
        "\xFF", "\xC0\x80", "\x80", "\xE2\x96", "\xE2\x96 x", "\xED\xA0\x80", "\xF4\x90\x80\x80",
        "\xF0\x9F\x98", "a\xF0\x9F\x98 b", "\xC3", "\xC3\xA9\xC3", "  \xFE\xFF  ", "x \xE2\x96",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tok_round_trip(tok, cases[i], strlen(cases[i]), false);
    /* NUL bytes */
    tok_round_trip(tok, "a\0b\0 \0", 6, false);
    /* random bytes, biased towards UTF-8 lead/continuation bytes and spaces */
    test_rng r;
    rng_init(&r, seed);
    char buf[64];
    for (int it = 0; it < 2000; it++) {
        size_t n = rng_u32(&r) % sizeof buf;
        for (size_t i = 0; i < n; i++) {
            uint32_t k = rng_u32(&r) % 8;
            buf[i] = k == 0 ? ' ' : k == 1 ? (char)(0x80 + rng_u32(&r) % 64) : k == 2 ? (char)(0xC0 + rng_u32(&r) % 64)
                                                                            : (char)rng_u32(&r);
        }
        /* a literal U+2581 reads as a space (SentencePiece cannot tell them apart): keep it out */
        for (size_t i = 0; i + 2 < n; i++)
            if (!memcmp(buf + i, "\xE2\x96\x81", 3))
                buf[i] = 'x';
        if (!tok_round_trip(tok, buf, n, false))
            break;
    }
}

static void test_speed(const tokenizer *tok, const char *inp_path)
{
    size_t inp_len;
    char *inp = test_read_file(inp_path, &inp_len);
    if (!inp)
        return;
    const size_t target = (size_t)1 << 20;
    char *text = malloc(target);
    size_t n = 0;
    while (n < target) {
        size_t k = inp_len < target - n ? inp_len : target - n;
        memcpy(text + n, inp, k);
        n += k;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    double t0 = now_s();
    vkllm_status st = vkl_tokenizer_encode(tok, text, n, true, false, &ids, &n_ids);
    double t1 = now_s();
    CHECK(st == VKLLM_OK, "encode 1 MiB: %s", vkr_last_error());
    fprintf(stderr, "encode speed: %.2f MB/s (%zu bytes -> %zu tokens in %.1f ms)\n", (double)n / (t1 - t0) / 1e6, n,
            n_ids, (t1 - t0) * 1e3);
    char *back = NULL;
    size_t back_len = 0;
    t0 = now_s();
    st = vkl_tokenizer_decode(tok, ids + 1, n_ids - 1, false, &back, &back_len);
    t1 = now_s();
    CHECK(st == VKLLM_OK && back_len == n && !memcmp(back, text, n), "1 MiB round trip");
    fprintf(stderr, "decode speed: %.2f MB/s\n", (double)n / (t1 - t0) / 1e6);
    free(back);
    free(ids);
    free(text);
    free(inp);
}

static void test_stories(const char *path)
{
    gguf_file *f = NULL;
    vkllm_status st = vkl_gguf_open(path, &f);
    CHECK(st == VKLLM_OK, "open %s: %s", path, vkr_last_error());
    if (st)
        return;
    tokenizer *tok = NULL;
    st = vkl_tokenizer_load(f, &tok);
    vkl_gguf_close(f); /* the tokenizer owns its copies */
    CHECK(st == VKLLM_OK, "load stories260K vocab: %s", vkr_last_error());
    if (st)
        return;
    CHECK(vkl_tokenizer_n_vocab(tok) == 512, "stories n_vocab %d", vkl_tokenizer_n_vocab(tok));
    CHECK(vkl_tokenizer_pad(tok) == -1, "padding id 0xFFFFFFFF means none: %d", vkl_tokenizer_pad(tok));
    const char *s = "Once upon a time";
    int32_t *ids = NULL;
    size_t n_ids = 0;
    st = vkl_tokenizer_encode(tok, s, strlen(s), true, false, &ids, &n_ids);
    CHECK(st == VKLLM_OK && n_ids >= 2 && ids[0] == 1, "encode with BOS");
    if (st == VKLLM_OK) {
        char *text = NULL;
        size_t len = 0;
        st = vkl_tokenizer_decode(tok, ids, n_ids, false, &text, &len);
        CHECK(st == VKLLM_OK && len == strlen(s) && !memcmp(text, s, len), "stories round trip: %s",
              text ? text : "(null)");
        fprintf(stderr, "stories260K \"%s\":", s);
        for (size_t i = 0; i < n_ids; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        free(text);
        /* no byte fallback needed for plain English with this vocab */
        for (size_t i = 1; i < n_ids; i++)
            CHECK(vkl_tokenizer_token_type(tok, ids[i]) == TOKEN_TYPE_NORMAL, "token %d is not normal", ids[i]);
    }
    free(ids);
    tok_round_trip(tok, "Once upon a time, there was a little girl named Lily.", 53, true);
    tok_round_trip(tok, "Ünïcödé ✓ 🚀 text not in a 512-token vocab", strlen("Ünïcödé ✓ 🚀 text not in a 512-token vocab"),
               true);
    vkl_tokenizer_free(tok);
}

/* ---- metadata validation on small synthetic vocabularies ---- */

static const char *const MINI_TOKENS[] = {
    "<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab", "<0x41>",
};
static const float MINI_SCORES[] = {0, 0, 0, -1, -2, -3, -4, -5, -6, 0};
static const int32_t MINI_TYPES[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6};
#define MINI_N 10

typedef struct vocab_spec {
    const char *model;     /* NULL: no key */
    int n_tokens;          /* -1: no key; -2: an i32 array instead of strings */
    int n_scores;          /* -1: no key; -2: an i32 array */
    int n_types;           /* -1: no key */
    int32_t type5;         /* type written for token 5 */
    int64_t bos;           /* -2: no key; else written as u32 */
    bool add_bos_as_string;
} vocab_spec;

static vocab_spec mini_spec(void)
{
    vocab_spec v = {"llama", MINI_N, MINI_N, MINI_N, 1, 1, false};
    return v;
}

static vkllm_status write_spm_keys(gguf_writer *w, const void *spec)
{
    const vocab_spec *v = spec;
    vkllm_status st = VKLLM_OK;
    int32_t ints[MINI_N];
    for (int i = 0; i < MINI_N; i++)
        ints[i] = i;
    int32_t types[MINI_N];
    memcpy(types, MINI_TYPES, sizeof types);
    types[5] = v->type5;
    if (v->model)
        st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", v->model);
    if (!st && v->n_tokens >= 0)
        st = vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", MINI_TOKENS, (uint64_t)v->n_tokens);
    if (!st && v->n_tokens == -2)
        st = vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.tokens", ints, MINI_N);
    if (!st && v->n_scores >= 0)
        st = vkl_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", MINI_SCORES, (uint64_t)v->n_scores);
    if (!st && v->n_scores == -2)
        st = vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.scores", ints, MINI_N);
    if (!st && v->n_types >= 0)
        st = vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)v->n_types);
    if (!st && v->bos != -2)
        st = vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos);
    if (!st && v->add_bos_as_string)
        st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.add_bos_token", "yes");
    return st;
}

static vkllm_status load_spec(const vocab_spec *v, tokenizer **tok)
{
    return tok_load_written("test_tokenizer_spm_vocab.gguf", write_spm_keys, v, tok);
}

static void expect_load_error(const vocab_spec *v, vkllm_status want, const char *what)
{
    tokenizer *tok = NULL;
    vkllm_status st = load_spec(v, &tok);
    CHECK(st == want && tok == NULL && vkr_last_error()[0], "%s: expected status %d, got %d (%s)", what, want, st,
          vkr_last_error());
    if (st == want)
        fprintf(stderr, "  %s -> %s\n", what, vkr_last_error());
    vkl_tokenizer_free(tok);
}

static void test_metadata(void)
{
    vocab_spec v = mini_spec();
    tokenizer *tok = NULL;
    vkllm_status st = load_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "mini vocab: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(vkl_tokenizer_n_vocab(tok) == MINI_N && vkl_tokenizer_bos(tok) == 1 && vkl_tokenizer_eos(tok) == 2 &&
                  vkl_tokenizer_unk(tok) == 0,
              "mini vocab ids");
        /* ▁a (-4) first, twice, then ▁a+b = ▁ab (-6) */
        TOK_EXPECT_IDS(tok, "ab a", true, false, 1, 8, 6);
        /* z has no token and no byte token: unknown; A falls back to <0x41> */
        TOK_EXPECT_IDS(tok, "zA", false, false, 3, 0, 9);
        tok_expect_decode(tok, (const int32_t[]){1, 8, 6, 2}, 4, false, "ab a");
        vkl_tokenizer_free(tok);
    }

    v = mini_spec();
    v.n_types = -1; /* types inferred: <0x41> is a byte token, bos/eos control, unk unknown */
    st = load_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "vocab without token types: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(vkl_tokenizer_token_type(tok, 9) == TOKEN_TYPE_BYTE && vkl_tokenizer_token_type(tok, 1) == TOKEN_TYPE_CONTROL &&
                  vkl_tokenizer_token_type(tok, 0) == TOKEN_TYPE_UNKNOWN && vkl_tokenizer_token_type(tok, 4) == TOKEN_TYPE_NORMAL,
              "inferred token types");
        TOK_EXPECT_IDS(tok, "zA", false, false, 3, 0, 9);
        vkl_tokenizer_free(tok);
    }

    v = mini_spec();
    v.bos = 0xFFFFFFFFll; /* none */
    st = load_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "vocab with bos = none: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        CHECK(vkl_tokenizer_bos(tok) == -1 && !vkl_tokenizer_adds_bos(tok), "bos none");
        TOK_EXPECT_IDS(tok, "ab", true, false, 8);
        vkl_tokenizer_free(tok);
    }

    v = mini_spec(); v.model = "gpt2"; /* byte-level BPE needs tokenizer.ggml.merges */
    expect_load_error(&v, VKLLM_ERR_FORMAT, "model gpt2 without merges");
    v = mini_spec(); v.model = "bert";
    expect_load_error(&v, VKLLM_ERR_UNSUPPORTED, "model bert");
    v = mini_spec(); v.model = "\x01\xFF";
    expect_load_error(&v, VKLLM_ERR_UNSUPPORTED, "model with binary name");
    v = mini_spec(); v.model = NULL;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "no model");
    v = mini_spec(); v.n_tokens = -1;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "no tokens");
    v = mini_spec(); v.n_tokens = 0; v.n_scores = 0; v.n_types = 0; v.bos = -2;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "empty tokens");
    v = mini_spec(); v.n_tokens = -2;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "tokens not strings");
    v = mini_spec(); v.n_scores = MINI_N - 1;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "scores shorter than tokens");
    v = mini_spec(); v.n_scores = -1;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "no scores");
    v = mini_spec(); v.n_scores = -2;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "scores not float");
    v = mini_spec(); v.n_types = MINI_N - 1;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "types shorter than tokens");
    v = mini_spec(); v.type5 = 9;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "bad token type");
    v = mini_spec(); v.bos = MINI_N;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "bos out of range");
    v = mini_spec(); v.add_bos_as_string = true;
    expect_load_error(&v, VKLLM_ERR_FORMAT, "add_bos_token not a bool");

    tok = NULL;
    CHECK(vkl_tokenizer_load(NULL, &tok) == VKLLM_ERR_INVALID_ARGUMENT && tok == NULL, "load of NULL file");
    vkl_tokenizer_free(NULL);
    vkl_tokenizer_stream_free(NULL);
}

/* ---- Gemma's conventions on a small hand-made vocabulary (no Gemma vocab file is shared) ----
 * Gemma's SentencePiece vocab (256k tokens) differs from Llama 2's in its metadata: no space prefix
 * (tokenizer.ggml.add_space_prefix = false), <pad>/<eos>/<bos>/<unk> = 0/1/2/3, the chat control tokens
 * <start_of_turn>/<end_of_turn>, byte fallback, and whitespace tokens ("▁▁", "\n") kept as they are. */

enum {
    G_PAD, G_EOS, G_BOS, G_UNK, G_SOT, G_EOT, G_BYTE0, /* 256 byte tokens */
    G_SP = G_BYTE0 + 256, G_SP2, G_NL, G_H, G_I, G_HI, G_SP_HI, G_U, G_S, G_E, G_R, G_US, G_ER, G_USER, G_N
};

static vkllm_status load_gemma_like(bool space_prefix_key, tokenizer **tok)
{
    static char byte_names[256][7];
    const char *tokens[G_N] = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"};
    float scores[G_N] = {0};
    int32_t types[G_N] = {3, 3, 3, 2, 3, 3};
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
        tokens[G_BYTE0 + b] = byte_names[b];
        types[G_BYTE0 + b] = TOKEN_TYPE_BYTE;
    }
    static const struct {
        int id;
        const char *text;
        float score;
    } normal[] = {
        {G_SP, "\xE2\x96\x81", -20}, {G_SP2, "\xE2\x96\x81\xE2\x96\x81", -3}, {G_NL, "\n", -20}, {G_H, "H", -20},
        {G_I, "i", -20}, {G_HI, "Hi", -1}, {G_SP_HI, "\xE2\x96\x81Hi", -2}, {G_U, "u", -20}, {G_S, "s", -20},
        {G_E, "e", -20}, {G_R, "r", -20}, {G_US, "us", -4}, {G_ER, "er", -5}, {G_USER, "user", -6},
    };
    for (size_t k = 0; k < sizeof normal / sizeof normal[0]; k++) {
        tokens[normal[k].id] = normal[k].text;
        scores[normal[k].id] = normal[k].score;
        types[normal[k].id] = TOKEN_TYPE_NORMAL;
    }
    char path[512];
    const char *dir = getenv("VKLLM_TEST_TMP");
    snprintf(path, sizeof path, "%s/test_tokenizer_spm_gemma.gguf", dir && *dir ? dir : "/tmp");
    gguf_writer *w = NULL;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (!st)
        st = vkl_gguf_writer_kv_str(w, "general.name", "gemma-like");
    if (!st)
        st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama");
    if (!st)
        st = vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", tokens, G_N);
    if (!st)
        st = vkl_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", scores, G_N);
    if (!st)
        st = vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", types, G_N);
    static const char *const id_keys[] = {"tokenizer.ggml.padding_token_id", "tokenizer.ggml.eos_token_id",
                                          "tokenizer.ggml.bos_token_id", "tokenizer.ggml.unknown_token_id"};
    for (uint32_t k = 0; k < 4 && !st; k++)
        st = vkl_gguf_writer_kv_u32(w, id_keys[k], k);
    if (!st && space_prefix_key)
        st = vkl_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix", false);
    vkllm_status st2 = w ? vkl_gguf_writer_close(w) : st;
    CHECK(st == VKLLM_OK && st2 == VKLLM_OK, "writing %s: %s", path, vkr_last_error());
    gguf_file *f = NULL;
    if (!st && !st2 && (st = vkl_gguf_open(path, &f)) == VKLLM_OK) {
        st = vkl_tokenizer_load(f, tok);
        vkl_gguf_close(f);
    }
    remove(path);
    CHECK(st == VKLLM_OK, "gemma-like vocab: %s", vkr_last_error());
    return st ? st : st2;
}

static void test_gemma_like(void)
{
    tokenizer *tok = NULL;
    if (load_gemma_like(true, &tok))
        return;
    CHECK(vkl_tokenizer_bos(tok) == G_BOS && vkl_tokenizer_eos(tok) == G_EOS && vkl_tokenizer_unk(tok) == G_UNK &&
              vkl_tokenizer_pad(tok) == G_PAD && vkl_tokenizer_adds_bos(tok),
          "gemma-like special ids");
    CHECK(vkl_tokenizer_is_eog(tok, G_EOT) && vkl_tokenizer_is_eog(tok, G_EOS) && !vkl_tokenizer_is_eog(tok, G_SOT),
          "<end_of_turn> and <eos> end generation, <start_of_turn> does not");
    /* no space prefix: a text's first word has no ▁, and spaces are kept as written */
    TOK_EXPECT_IDS(tok, "Hi", false, false, G_HI);
    TOK_EXPECT_IDS(tok, " Hi", false, false, G_SP_HI);
    TOK_EXPECT_IDS(tok, "  Hi", false, false, G_SP, G_SP_HI);
    TOK_EXPECT_IDS(tok, "Hi   ", false, false, G_HI, G_SP2, G_SP);
    /* a chat turn: control tokens only with parse_special, no space after them, whitespace kept */
    static const char TURN[] = "<start_of_turn>user\nHi<end_of_turn>\n";
    TOK_EXPECT_IDS(tok, TURN, true, true, G_BOS, G_SOT, G_USER, G_NL, G_HI, G_EOT, G_NL);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (vkl_tokenizer_encode(tok, TURN, strlen(TURN), true, false, &ids, &n_ids) == VKLLM_OK) {
        bool control = false;
        for (size_t i = 1; i < n_ids; i++)
            control |= ids[i] == G_SOT || ids[i] == G_EOT;
        CHECK(!control && n_ids > 10, "<start_of_turn> matched without parse_special");
        free(ids);
    }
    /* byte fallback: characters without a token are their UTF-8 bytes */
    TOK_EXPECT_IDS(tok, "\xC3\xA9z", false, false, G_BYTE0 + 0xC3, G_BYTE0 + 0xA9, G_BYTE0 + 'z');
    tok_expect_decode(tok, (const int32_t[]){G_BOS, G_SOT, G_USER, G_NL, G_SP_HI, G_EOT}, 6, false, "user\n Hi");
    tok_expect_decode(tok, (const int32_t[]){G_BOS, G_SOT, G_USER, G_EOT}, 4, true,
                  "<bos><start_of_turn>user<end_of_turn>");
    tok_round_trip(tok, TURN, strlen(TURN), true);
    tok_round_trip(tok, " Hi  user\n\n\xC3\xA9 \xF0\x9F\x9A\x80 ", strlen(" Hi  user\n\n\xC3\xA9 \xF0\x9F\x9A\x80 "), true);
    vkl_tokenizer_free(tok);

    /* the same vocab without the key: SentencePiece's default space prefix comes back */
    if (load_gemma_like(false, &tok))
        return;
    TOK_EXPECT_IDS(tok, "Hi", false, false, G_SP_HI);
    vkl_tokenizer_free(tok);
}

/* Phi-3: Llama 2's vocabulary plus chat control tokens, which (as in llama.cpp, keyed on general.name) swallow
 * the whitespace after them: the chat turn below is llama.cpp's 8 tokens, not 14. */
static void test_phi3_details(const tokenizer *tok)
{
    CHECK(vkl_tokenizer_n_vocab(tok) == 32064 && vkl_tokenizer_bos(tok) == 1 && vkl_tokenizer_eos(tok) == 32000 &&
              vkl_tokenizer_adds_bos(tok) && !vkl_tokenizer_adds_eos(tok),
          "phi-3 ids: n_vocab %d bos %d eos %d", vkl_tokenizer_n_vocab(tok), vkl_tokenizer_bos(tok), vkl_tokenizer_eos(tok));
    CHECK(vkl_tokenizer_is_eog(tok, 32007) && vkl_tokenizer_is_eog(tok, 32000), "<|end|>, <|endoftext|> end generation");
    CHECK(!vkl_tokenizer_is_eog(tok, 32010) && !vkl_tokenizer_is_eog(tok, 32001), "<|user|>, <|assistant|> do not");
    CHECK(vkl_tokenizer_token_type(tok, 32010) == TOKEN_TYPE_CONTROL &&
              vkl_tokenizer_token_type(tok, 2) == TOKEN_TYPE_USER_DEFINED,
          "token types");
    static const char TURN[] = "<|user|>\nSYS\nHI<|end|>\n<|assistant|>\n";
    TOK_EXPECT_IDS(tok, TURN, true, true, 1, 32010, 317, 21554, 13, 17628, 32007, 32001);
    TOK_EXPECT_IDS(tok, "<|user|>\nHi", false, true, 32010, 6324);
    /* without parse_special the control tokens are text, and their whitespace stays */
    TOK_EXPECT_IDS(tok, "<|end|>\n", false, false, 529, 29989, 355, 29989, 29958, 13);
    /* </s> is user-defined (always matched) and swallows spaces too; <s> and <|endoftext|> do not */
    TOK_EXPECT_IDS(tok, "a</s> b", false, false, 263, 2, 289);
    TOK_EXPECT_IDS(tok, "<|endoftext|>\n", false, true, 32000, 29871, 13);
    tok_expect_decode(tok, (const int32_t[]){1, 32010, 6324, 32007, 32001}, 5, true, "<s><|user|>Hi<|end|><|assistant|>");
    tok_round_trip(tok, TURN, strlen(TURN), true);
}

int main(void)
{
    uint64_t seed = test_seed();
    test_metadata();
    test_gemma_like();

    const char *stories = test_shared_path("models/stories260K.gguf");
    if (stories) {
        char path[1024];
        snprintf(path, sizeof path, "%s", stories);
        test_stories(path);
    }

    bool found = false;
    static const char *const vocabs[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-phi-3.gguf"};
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        const char *vp = test_shared_path(vocabs[v]);
        if (!vp) {
            fprintf(stderr, "%s not found\n", vocabs[v]);
            continue;
        }
        found = true;
        char vocab_path[1024], inp_path[1100];
        snprintf(vocab_path, sizeof vocab_path, "%s", vp);
        snprintf(inp_path, sizeof inp_path, "%s.inp", vocab_path);
        tokenizer *tok = test_load_tokenizer(vocab_path);
        if (!tok)
            continue;
        tok_check_vectors(tok, vocab_path);
        if (v == 0) {
            test_llama_spm_details(tok);
            test_speed(tok, inp_path);
        } else {
            test_phi3_details(tok);
        }
        test_invalid_utf8(tok, seed + v);
        vkl_tokenizer_free(tok);
    }
    if (!found) {
        fprintf(stderr, "skipped: shared vocab data not found\n");
        test_finish("tokenizer_spm");
        return test_failures ? 1 : TEST_SKIP;
    }
    return test_finish("tokenizer_spm");
}
