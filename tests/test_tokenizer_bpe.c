/* Byte-level BPE tokenizer: the test vectors of the GPT-2, Llama 3, Qwen2 and Qwen3.5 (pre-tokenizers gpt-2,
 * llama-bpe, qwen2, qwen35) vocabularies (exact ids), where each pre-tokenizer (tekken too, which has no
 * vectors) cuts, worked by hand from its regular expression, round trips
 * through decode and the streaming detokenizer, special tokens only with parse_special, end of generation,
 * seeded random byte strings, long pre-tokens, merge order on small synthetic vocabularies, and metadata
 * validation. The SentencePiece vectors (ggml-vocab-llama-spm) are covered by test_tokenizer_spm.c. */
#include <stdlib.h>
#include <string.h>

#include "host/text/tokenizer_impl.h"
#include "tokenizer_check.h"

static bool contains(const int32_t *ids, size_t n, int32_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* ---------------------------------------------------------------- test vectors */

/* Qwen2's vocab (also read with the qwen35 pre-tokenizer): ChatML control tokens, no BOS. */
static void test_qwen_details(const tokenizer *tok)
{
    CHECK(vkl_tokenizer_get_kind(tok) == TOKENIZER_BPE && vkl_tokenizer_n_vocab(tok) == 151936, "kind / n_vocab %d",
          vkl_tokenizer_n_vocab(tok));
    CHECK(vkl_tokenizer_bos(tok) == 151643 && vkl_tokenizer_eos(tok) == 151643 && !vkl_tokenizer_adds_bos(tok) &&
              !vkl_tokenizer_adds_eos(tok),
          "bos %d eos %d, no BOS added", vkl_tokenizer_bos(tok), vkl_tokenizer_eos(tok));
    CHECK(vkl_tokenizer_is_eog(tok, 151643) && vkl_tokenizer_is_eog(tok, 151645), "<|endoftext|>, <|im_end|> end generation");
    CHECK(!vkl_tokenizer_is_eog(tok, 151644) && !vkl_tokenizer_is_eog(tok, 872), "<|im_start|> does not end generation");
    CHECK(vkl_tokenizer_token_type(tok, 151644) == TOKEN_TYPE_CONTROL, "<|im_start|> is a control token");
    static const char TURN[] = "<|im_start|>user\nHi<|im_end|>";
    TOK_EXPECT_IDS(tok, TURN, true, true, 151644, 872, 198, 13048, 151645);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (tok_encode(tok, TURN, strlen(TURN), true, false, &ids, &n_ids)) {
        CHECK(!contains(ids, n_ids, 151644) && !contains(ids, n_ids, 151645),
              "ChatML tokens matched without parse_special");
        free(ids);
    }
    tok_expect_decode(tok, (const int32_t[]){151644, 872, 198, 13048, 151645}, 5, true, TURN);
    tok_expect_decode(tok, (const int32_t[]){151644, 872, 198, 13048, 151645}, 5, false, "user\nHi");
}

/* ---------------------------------------------------------------- random input */

static void test_random(const tokenizer *tok, uint64_t seed)
{
    static const char *const cases[] = {
        "\xFF", "\x80", "a\xC3", "\xC3(", "\xE2\x82", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF0\x9F\x98",
        "\xC0\xAF", "'s'S'T're'RE \xC5\xBF 'll'LL'\xC5\xBF", "'", "''", "'x", "\r\n\r\n  \t \n\x0B\x0C",
        " \xC2\xA0\xE3\x80\x80 x", "123456789 1 12 123 1234", "\xD9\xA3\xD9\xA4\xD9\xA5\xD9\xA6", "a\0b\0 \0",
        "\xEF\xBF\xBD\xEF\xBF\xBE\xEF\xBF\xBF", "\xF3\xA0\x80\x81", "<|eot_id|> <|endoftext|><s></s>",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        tok_round_trip(tok, cases[i], i == 17 ? 7 : strlen(cases[i]), false);

    static const char *const atoms[] = {" ", "  ", "\n", "\r\n", "\t", "'", "'s", "'RE", "a", "Z", "word",
                                        " the", "7", "42", "\xC3\xA9", "\xE4\xBD\xA0", "\xF0\x9F\x9A\x80",
                                        "\xD9\xA3", ".", "!!", "(", "\xC2\xA0", "\xE3\x80\x80", "\xC5\xBF"};
    test_rng r;
    rng_init(&r, seed);
    char buf[96];
    for (int it = 0; it < 3000; it++) {
        size_t n = rng_u32(&r) % 64;
        size_t j = 0;
        while (j < n) {
            uint32_t k = rng_u32(&r) % 4;
            if (k == 0) { /* any byte */
                buf[j++] = (char)rng_u32(&r);
            } else if (k == 1) { /* a lead or continuation byte */
                buf[j++] = (char)(0x80 + rng_u32(&r) % 0x78);
            } else {
                const char *a = atoms[rng_u32(&r) % (sizeof atoms / sizeof atoms[0])];
                size_t al = strlen(a);
                if (j + al > sizeof buf)
                    break;
                memcpy(buf + j, a, al);
                j += al;
            }
        }
        if (!tok_round_trip(tok, buf, j, false)) {
            fprintf(stderr, "  (random case %d, seed %llu)\n", it, (unsigned long long)seed);
            break;
        }
    }
}

/* Long pre-tokens: one word, one number, one run of punctuation, of whitespace and of invalid bytes. */
static void test_long(const tokenizer *tok)
{
    const size_t n = 20000;
    char *s = malloc(n);
    if (!s)
        return;
    const char fill[] = {'a', '7', '!', ' ', '\n', (char)0xFF};
    for (size_t k = 0; k < sizeof fill; k++) {
        memset(s, fill[k], n);
        tok_round_trip(tok, s, n, false);
    }
    for (size_t i = 0; i < n; i++)
        s[i] = "abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 26) % 26];
    tok_round_trip(tok, s, n, false);
    free(s);
}

/* ---------------------------------------------------------------- the two real vocabularies */

static void test_llama3_details(const tokenizer *tok)
{
    CHECK(vkl_tokenizer_get_kind(tok) == TOKENIZER_BPE, "kind");
    CHECK(vkl_tokenizer_n_vocab(tok) == 128256, "n_vocab %d", vkl_tokenizer_n_vocab(tok));
    CHECK(vkl_tokenizer_bos(tok) == 128000 && vkl_tokenizer_eos(tok) == 128001 && vkl_tokenizer_unk(tok) == -1 &&
              vkl_tokenizer_pad(tok) == -1,
          "special ids %d %d %d %d", vkl_tokenizer_bos(tok), vkl_tokenizer_eos(tok), vkl_tokenizer_unk(tok), vkl_tokenizer_pad(tok));
    CHECK(vkl_tokenizer_adds_bos(tok) && !vkl_tokenizer_adds_eos(tok), "add_bos/add_eos");
    CHECK(vkl_tokenizer_is_eog(tok, 128009), "<|eot_id|> (128009) must end generation");
    CHECK(vkl_tokenizer_is_eog(tok, 128001), "<|end_of_text|> (128001) must end generation");
    CHECK(!vkl_tokenizer_is_eog(tok, 128000) && !vkl_tokenizer_is_eog(tok, 128006) && !vkl_tokenizer_is_eog(tok, 128007) &&
              !vkl_tokenizer_is_eog(tok, 9906) && !vkl_tokenizer_is_eog(tok, 0) && !vkl_tokenizer_is_eog(tok, 2),
          "is_eog of non-EOG tokens");
    CHECK(vkl_tokenizer_token_type(tok, 128009) == TOKEN_TYPE_CONTROL && vkl_tokenizer_token_type(tok, 9906) == TOKEN_TYPE_NORMAL,
          "token types");
    CHECK(vkl_tokenizer_find_token(tok, "<|eot_id|>", 10) == 128009, "find <|eot_id|>");

    /* pieces: byte-level characters mapped back to bytes, no leading-space convention */
    char buf[64];
    int32_t n = vkl_tokenizer_token_to_piece(tok, 22691, buf, sizeof buf); /* "ĠHello" */
    CHECK(n == 6 && !memcmp(buf, " Hello", 6), "piece of 22691: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 198, buf, sizeof buf); /* "Ċ" */
    CHECK(n == 1 && buf[0] == '\n', "piece of 198: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 128009, buf, sizeof buf);
    CHECK(n == 0, "piece of <|eot_id|>: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 22691, buf, 3);
    CHECK(n == -6, "piece into a small buffer: %d", n);
    n = vkl_tokenizer_token_to_piece(tok, 128256, buf, sizeof buf);
    CHECK(n == TOKENIZER_BAD_ID, "piece of an id out of range: %d", n);
    tok_expect_decode(tok, (const int32_t[]){220, 22691}, 2, false, "  Hello");
    tok_expect_decode(tok, (const int32_t[]){128000, 9906, 1917, 128009}, 4, false, "Hello world");
    tok_expect_decode(tok, (const int32_t[]){128000, 9906, 1917, 128009}, 4, true, "<|begin_of_text|>Hello world<|eot_id|>");

    /* special tokens are matched only with parse_special */
    TOK_EXPECT_IDS(tok, "Hello world", true, false, 128000, 9906, 1917);
    TOK_EXPECT_IDS(tok, "", true, false, 128000);
    TOK_EXPECT_IDS(tok, "<|begin_of_text|>Hello<|eot_id|>", false, true, 128000, 9906, 128009);
    TOK_EXPECT_IDS(tok, "a<|eot_id|> b", false, true, 64, 128009, 293);
    TOK_EXPECT_IDS(tok, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", true, true, 128000, 128006, 882,
               128007, 271, 13347, 128009);
    const char *texts[] = {"<|eot_id|>", "Hello<|eot_id|>", "<|begin_of_text|><|start_header_id|>x<|end_header_id|>",
                           "<|end_of_text|>", "<|reserved_special_token_0|>"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (!tok_encode(tok, texts[i], strlen(texts[i]), true, false, &ids, &n_ids))
            continue;
        bool special = false;
        for (size_t k = 1; k < n_ids; k++)
            special |= ids[k] >= 128000;
        CHECK(!special && n_ids > 2 && ids[0] == 128000, "special token matched without parse_special in \"%s\"",
              texts[i]);
        free(ids);
        tok_round_trip(tok, texts[i], strlen(texts[i]), false);
        if (tok_encode(tok, texts[i], strlen(texts[i]), false, true, &ids, &n_ids)) {
            CHECK(n_ids >= 1 && ids[n_ids - 1] >= 128000, "special token not matched with parse_special in \"%s\"",
                  texts[i]);
            free(ids);
        }
    }

    /* pre-tokenizer details (llama-bpe) */
    {
        int32_t *ids = NULL, *ids2 = NULL;
        size_t n_ids = 0, n2 = 0;
        /* case-insensitive contractions: "'RE" is one pre-token, so it cannot merge with the letters after it */
        int32_t re = vkl_tokenizer_find_token(tok, "'RE", 3);
        if (re >= 0 && tok_encode(tok, "'REALLY", 7, false, false, &ids, &n_ids)) {
            CHECK(n_ids >= 2 && ids[0] == re, "\"'REALLY\" should start with the token \"'RE\"");
            free(ids);
        }
        /* numbers in groups of at most three digits */
        if (tok_encode(tok, "1234567", 7, false, false, &ids, &n_ids)) {
            CHECK(n_ids == 3, "\"1234567\" should be 3 tokens (123 456 7), got %zu", n_ids);
            free(ids);
        }
        /* "\s+(?!\S)": the last space of a run goes with the word after it */
        if (tok_encode(tok, "a   b", 5, false, false, &ids, &n_ids) && tok_encode(tok, " b", 2, false, false, &ids2, &n2)) {
            CHECK(n_ids >= 2 && n2 == 1 && ids[n_ids - 1] == ids2[0], "\"a   b\" should end with the token \" b\"");
        }
        free(ids);
        free(ids2);
    }
    /* U+0100 .. U+0143 written in the text are ordinary characters, not byte markers */
    tok_round_trip(tok, "\xC4\xA0\xC4\x8A \xC4\x80\xC5\x83", 10, false);
}

static void test_gpt2_details(const tokenizer *tok)
{
    CHECK(vkl_tokenizer_get_kind(tok) == TOKENIZER_BPE, "kind");
    CHECK(vkl_tokenizer_n_vocab(tok) == 50257, "n_vocab %d", vkl_tokenizer_n_vocab(tok));
    CHECK(vkl_tokenizer_bos(tok) == 50256 && vkl_tokenizer_eos(tok) == 50256, "bos/eos %d %d", vkl_tokenizer_bos(tok),
          vkl_tokenizer_eos(tok));
    /* the file has no add_bos_token: GPT-2 adds nothing */
    CHECK(!vkl_tokenizer_adds_bos(tok) && !vkl_tokenizer_adds_eos(tok), "gpt-2 adds no BOS/EOS by default");
    CHECK(vkl_tokenizer_is_eog(tok, 50256) && !vkl_tokenizer_is_eog(tok, 15496), "is_eog");
    TOK_EXPECT_IDS(tok, "Hello world", true, false, 15496, 995);
    /* <|endoftext|> only with parse_special (its type decides whether it is split out at all) */
    int type = vkl_tokenizer_token_type(tok, 50256);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (tok_encode(tok, "Hello<|endoftext|>", 18, false, false, &ids, &n_ids)) {
        CHECK(type == TOKEN_TYPE_USER_DEFINED || !contains(ids, n_ids, 50256),
              "<|endoftext|> matched without parse_special");
        free(ids);
    }
    if (type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED)
        TOK_EXPECT_IDS(tok, "Hello<|endoftext|>", false, true, 15496, 50256);
    /* gpt-2 contractions are case-sensitive: "'S" is not one, so the apostrophe is punctuation on its own */
    int32_t apos = vkl_tokenizer_find_token(tok, "'", 1);
    if (tok_encode(tok, "'S", 2, false, false, &ids, &n_ids)) {
        CHECK(n_ids == 2 && ids[0] == apos, "\"'S\" should be ' + S");
        free(ids);
    }
    if (tok_encode(tok, "'s", 2, false, false, &ids, &n_ids)) {
        CHECK(n_ids == 1 && ids[0] == vkl_tokenizer_find_token(tok, "'s", 2), "\"'s\" should be one token");
        free(ids);
    }
}

/* ---------------------------------------------------------------- synthetic vocabularies */

typedef struct bpe_spec {
    const char *const *tokens;
    size_t n_tokens;
    const char *const *merges; /* NULL: no key */
    size_t n_merges;
    bool merges_as_i32;
    const char *pre;   /* NULL: no key */
    int64_t unk;       /* -2: no key */
    int add_bos;       /* -1: no key */
} bpe_spec;

static vkllm_status write_bpe_keys(gguf_writer *w, const void *spec)
{
    const bpe_spec *v = spec;
    vkllm_status st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "gpt2");
    if (!st && v->pre)
        st = vkl_gguf_writer_kv_str(w, "tokenizer.ggml.pre", v->pre);
    if (!st)
        st = vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", v->tokens, v->n_tokens);
    if (!st && v->merges)
        st = vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.merges", v->merges, v->n_merges);
    if (!st && v->merges_as_i32)
        st = vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.merges", (const int32_t[]){1, 2}, 2);
    if (!st && v->unk != -2)
        st = vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v->unk);
    if (!st && v->add_bos >= 0)
        st = vkl_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos != 0);
    return st;
}

static vkllm_status load_bpe_spec(const bpe_spec *v, tokenizer **tok)
{
    return tok_load_written("test_tokenizer_bpe_vocab.gguf", write_bpe_keys, v, tok);
}

/* "Ġ" is the byte-level character of a space. */
static const char *const MINI[] = {"a", "b", "c", "\xC4\xA0", "ab", "bb", "abb", ("\xC4\xA0" "a"), "aa", "<unk>"};
enum { MINI_A, MINI_B, MINI_C, MINI_SP, MINI_AB, MINI_BB, MINI_ABB, MINI_SPA, MINI_AA, MINI_UNK, MINI_N };

static bpe_spec mini(const char *const *merges, size_t n_merges)
{
    bpe_spec v = {MINI, MINI_N, merges, n_merges, false, "gpt-2", -2, -1};
    return v;
}

static void test_synthetic(void)
{
    tokenizer *tok = NULL;
    /* rank order: "b b" before "a b" */
    static const char *const m1[] = {"b b", "a b", "ab b", "a a", "\xC4\xA0 a"};
    bpe_spec v = mini(m1, 5);
    vkllm_status st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "mini BPE vocab: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        TOK_EXPECT_IDS(tok, "abb", false, false, MINI_A, MINI_BB);
        /* equal ranks: leftmost first */
        TOK_EXPECT_IDS(tok, "aaa", false, false, MINI_AA, MINI_A);
        TOK_EXPECT_IDS(tok, "aaaa", false, false, MINI_AA, MINI_AA);
        TOK_EXPECT_IDS(tok, " a ab", false, false, MINI_SPA, MINI_SP, MINI_AB);
        CHECK(!vkl_tokenizer_adds_bos(tok) && vkl_tokenizer_bos(tok) == -1 && vkl_tokenizer_unk(tok) == -1,
              "BPE defaults: no bos, no unk");
        /* 'd' has no token and there is no unknown token: an error, not a crash */
        int32_t *ids = NULL;
        size_t n_ids = 0;
        st = vkl_tokenizer_encode(tok, "abd", 3, false, false, &ids, &n_ids);
        CHECK(st != VKLLM_OK && ids == NULL && vkr_last_error()[0], "byte without a token: %d", st);
        tok_expect_decode(tok, (const int32_t[]){MINI_SPA, MINI_SP, MINI_ABB}, 3, false, " a abb");
        vkl_tokenizer_free(tok);
    }
    static const char *const m2[] = {"a b", "b b", "ab b"};
    v = mini(m2, 3);
    v.unk = MINI_UNK;
    v.add_bos = 1;
    st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "mini BPE vocab 2: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        TOK_EXPECT_IDS(tok, "abb", false, false, MINI_ABB);
        TOK_EXPECT_IDS(tok, "abd", false, false, MINI_AB, MINI_UNK);
        CHECK(!vkl_tokenizer_adds_bos(tok), "add_bos_token without a bos id adds nothing");
        vkl_tokenizer_free(tok);
    }
    /* merges naming unknown tokens or producing strings that are not tokens are ignored */
    static const char *const m3[] = {"x y", "a c", "a b"};
    v = mini(m3, 3);
    st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "mini BPE vocab with useless merges: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        TOK_EXPECT_IDS(tok, "acab", false, false, MINI_A, MINI_C, MINI_AB);
        vkl_tokenizer_free(tok);
    }
    /* an unknown pre-tokenizer falls back (with a warning) and still works */
    v = mini(m1, 5);
    v.pre = "no-such-pre";
    st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "unknown pre: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        TOK_EXPECT_IDS(tok, "abb", false, false, MINI_A, MINI_BB);
        vkl_tokenizer_free(tok);
    }
    v.pre = NULL;
    st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "missing pre: %s", vkr_last_error());
    vkl_tokenizer_free(tok);

    /* errors */
    struct {
        bpe_spec v;
        vkllm_status want;
        const char *what;
    } bad[] = {
        {mini(NULL, 0), VKLLM_ERR_FORMAT, "no merges"},
        {mini((const char *const[]){"ab"}, 1), VKLLM_ERR_FORMAT, "a merge without a space"},
        {mini((const char *const[]){"a "}, 1), VKLLM_ERR_FORMAT, "a merge with an empty right side"},
        {mini((const char *const[]){""}, 1), VKLLM_ERR_FORMAT, "an empty merge"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = load_bpe_spec(&bad[i].v, &tok);
        CHECK(st == bad[i].want && tok == NULL && vkr_last_error()[0], "%s: expected %d, got %d (%s)", bad[i].what,
              bad[i].want, st, vkr_last_error());
        if (st == bad[i].want)
            fprintf(stderr, "  %s -> %s\n", bad[i].what, vkr_last_error());
        vkl_tokenizer_free(tok);
    }
    v = mini(NULL, 0);
    v.merges_as_i32 = true;
    st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_ERR_FORMAT && tok == NULL, "merges not strings: %d", st);
    vkl_tokenizer_free(tok);
    /* a vocabulary without merges entries is fine: bytes only */
    v = mini((const char *const[]){"a b"}, 0);
    st = load_bpe_spec(&v, &tok);
    CHECK(st == VKLLM_OK, "empty merges: %s", vkr_last_error());
    if (st == VKLLM_OK) {
        TOK_EXPECT_IDS(tok, "ab", false, false, MINI_A, MINI_B);
        vkl_tokenizer_free(tok);
    }
}

/* The byte-level spelling of raw bytes (the byte-to-unicode table: printable Latin-1 stands for itself, the
 * other 68 bytes are U+0100.. in byte order), for writing synthetic vocabularies. Returns the length. */
static size_t byte_level(const char *raw, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned b = (unsigned char)raw[i];
        unsigned cp = b;
        if (!((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
            cp = 0x100;
            for (unsigned k = 0; k < b; k++)
                cp += !((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF));
        }
        if (cp < 0x80) {
            out[j++] = (char)cp;
        } else {
            out[j++] = (char)(0xC0 | (cp >> 6));
            out[j++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[j] = '\0';
    return j;
}

/* Where the pre-tokenizers of the Llama 3 shape cut, seen through a vocabulary that could merge across every
 * cut: all 256 byte tokens plus the merged words below, so each pre-token boundary shows as an extra token.
 * (The Qwen vectors cannot show these: Qwen's vocabulary has no multi-digit tokens and no merges into
 * combining marks.) */
static void test_pre_boundaries(void)
{
    /* merges, left and right as raw bytes; every prefix chain is in the vocabulary */
    static const char *const MERGES[][2] = {
        {"1", "2"}, {"12", "3"}, {"\xCC", "\x81"}, {"e", "\xCC\x81"}, {"e\xCC\x81", "s"}, {"'", "S"}, {"a", "!"},
    };
    enum { N_MERGES = sizeof MERGES / sizeof MERGES[0] };
    static char store[256 + N_MERGES][32];
    const char *tokens[256 + N_MERGES];
    const char *merges[N_MERGES];
    static char merge_store[N_MERGES][64];
    for (int b = 0; b < 256; b++) {
        char raw = (char)b;
        byte_level(&raw, 1, store[b]);
        tokens[b] = store[b];
    }
    for (int m = 0; m < N_MERGES; m++) {
        char joined[16];
        snprintf(joined, sizeof joined, "%s%s", MERGES[m][0], MERGES[m][1]);
        byte_level(joined, strlen(joined), store[256 + m]);
        tokens[256 + m] = store[256 + m];
        size_t k = byte_level(MERGES[m][0], strlen(MERGES[m][0]), merge_store[m]);
        merge_store[m][k++] = ' ';
        byte_level(MERGES[m][1], strlen(MERGES[m][1]), merge_store[m] + k);
        merges[m] = merge_store[m];
    }
    static const struct {
        const char *text;
        size_t want[4]; /* tokens with each pre-tokenizer of pres[] */
    } cases[] = {
        {"123", {1, 3, 3, 3}},         /* \p{N}{1,3} vs \p{N} */
        {"e\xCC\x81", {2, 2, 1, 1}},   /* a combining mark is punctuation, or part of the word */
        {"e\xCC\x81s", {3, 3, 1, 1}},
        {"\xCC\x81", {1, 1, 1, 1}},
        {"'S", {1, 1, 1, 1}},          /* a contraction, or (tekken) "'" prefixing a word */
        {"a!", {2, 2, 2, 2}},          /* a word and punctuation are two pre-tokens */
    };
    static const char *const pres[] = {"llama-bpe", "qwen2", "qwen35", "tekken"};
    for (size_t p = 0; p < 4; p++) {
        bpe_spec v = {tokens, 256 + N_MERGES, merges, N_MERGES, false, pres[p], -2, -1};
        tokenizer *tok = NULL;
        vkllm_status st = load_bpe_spec(&v, &tok);
        CHECK(st == VKLLM_OK, "byte vocab with pre %s: %s", pres[p], vkr_last_error());
        if (st)
            continue;
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            size_t want = cases[c].want[p];
            int32_t *ids = NULL;
            size_t n_ids = 0;
            if (tok_encode(tok, cases[c].text, strlen(cases[c].text), false, false, &ids, &n_ids)) {
                CHECK(n_ids == want, "pre %s, case %zu: %zu tokens, expected %zu", pres[p], c, n_ids, want);
                free(ids);
            }
            tok_round_trip(tok, cases[c].text, strlen(cases[c].text), false);
        }
        test_random(tok, test_seed() + p); /* every byte has a token: any text round-trips */
        vkl_tokenizer_free(tok);
    }
}

/* The pre-tokens of text under pre-tokenizer `pre`, written between '|', against the regular expression worked
 * by hand (see host/text/tokenizer_bpe.c for the patterns). */
static void expect_cuts(const char *pre, const char *text, const char *want)
{
    bpe_spec v = mini(NULL, 0);
    static const char *const no_merges[] = {"a b"};
    v.merges = no_merges;
    v.pre = pre;
    tokenizer *tok = NULL;
    if (load_bpe_spec(&v, &tok) != VKLLM_OK)
        return;
    char got[256];
    size_t n = strlen(text), k = 0;
    for (size_t i = 0; i < n && k + 2 < sizeof got;) {
        size_t e = vkl_bpe_pre_next(tok, text, n, i);
        CHECK(e > i && e <= n, "%s: no progress at %zu", pre, i);
        if (e <= i || e > n)
            break;
        if (i > 0)
            got[k++] = '|';
        for (; i < e && k + 2 < sizeof got; i++)
            got[k++] = text[i];
    }
    got[k] = '\0';
    if (strcmp(got, want)) {
        char what[64];
        snprintf(what, sizeof what, "pre-tokens (%s) of the text below", pre);
        tok_fail_text(what, want, strlen(want), got, k);
        fprintf(stderr, "  text: ");
        test_print_escaped(stderr, text, n);
        fprintf(stderr, "\n");
    }
    vkl_tokenizer_free(tok);
}

static void test_pre_cuts(void)
{
    /* tekken: words split where lower case turns upper; caseless letters (Lo) and marks go either way */
    expect_cuts("tekken", "camelCase HTTPServer ABC def", "camel|Case| HTTPServer| ABC| def");
    expect_cuts("tekken", "aB Ab", "a|B| Ab");
    expect_cuts("tekken", "don't 123", "don|'t| |1|2|3");
    expect_cuts("tekken", "x.../\n/y", "x|.../\n/|y");
    expect_cuts("tekken", "\xC3\x89" "COLE \xC3\xA9" "cole", "\xC3\x89" "COLE| \xC3\xA9" "cole");
    expect_cuts("tekken", "e\xCC\x81s", "e\xCC\x81s"); /* a mark in a lower-case word */
    expect_cuts("tekken", "\xCC\x81" "A", "\xCC\x81|A"); /* UPPER*LOWER+ takes the mark alone */
    expect_cuts("tekken", "\xE6\x97\xA5\xE6\x9C\xAC", "\xE6\x97\xA5\xE6\x9C\xAC"); /* Lo: one word */
    expect_cuts("tekken", "  x\n\n y", " | x|\n\n| y");
    /* gpt-4o: tekken's words with contraction suffixes, three digits */
    expect_cuts("gpt-4o", "I'M camelCase's 12345 don't", "I'M| camel|Case's| |123|45| don't");
    expect_cuts("gpt-4o", "'s x's'll", "'s| x's|'ll");
    /* the Llama 3 shapes */
    expect_cuts("llama-bpe", "123456 I'M", "123|456| I|'M");
    expect_cuts("qwen2", "12 e\xCC\x81s", "1|2| e|\xCC\x81s"); /* the mark is punctuation, prefixing "s" */
    expect_cuts("qwen35", "12 e\xCC\x81s", "1|2| e\xCC\x81s");
    expect_cuts("gpt-2", "I'M 1234", "I|'|M| 1234"); /* case-sensitive contractions */
}

int main(void)
{
    uint64_t seed = test_seed();
    test_synthetic();
    test_pre_boundaries();
    test_pre_cuts();

    static const struct {
        const char *path;
        void (*details)(const tokenizer *tok); /* NULL: the vectors say it all */
    } vocabs[] = {
        {"vocab/ggml-vocab-gpt-2.gguf", test_gpt2_details},
        {"vocab/llama3-vocab.gguf", test_llama3_details},
        {"vocab/ggml-vocab-qwen2.gguf", test_qwen_details},
        {"vocab/ggml-vocab-qwen35.gguf", test_qwen_details},
    };
    bool found = false;
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        const char *p = test_shared_path(vocabs[v].path);
        if (!p) {
            fprintf(stderr, "%s not found\n", vocabs[v].path);
            continue;
        }
        found = true;
        char path[1024];
        snprintf(path, sizeof path, "%s", p);
        tokenizer *tok = test_load_tokenizer(path);
        if (!tok)
            continue;
        tok_check_vectors(tok, path);
        if (vocabs[v].details)
            vocabs[v].details(tok);
        test_random(tok, seed + v);
        test_long(tok);
        vkl_tokenizer_free(tok);
    }
    if (!found) {
        fprintf(stderr, "skipped: shared vocab data not found\n");
        test_finish("tokenizer_bpe");
        return test_failures ? 1 : TEST_SKIP;
    }
    return test_finish("tokenizer_bpe");
}
