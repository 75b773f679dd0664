/* The fuzzers' fixed vocabularies and the tokenizer workout they share (fuzz/fuzz.h). */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "host/format/gguf.h"

/* ---------------------------------------------------------------- vocabularies */

#define MAX_TOKENS 640
#define MAX_MERGES 64

typedef struct vocab_builder {
    char *tokens[MAX_TOKENS];
    float scores[MAX_TOKENS];
    int32_t types[MAX_TOKENS];
    uint32_t n;
    char *merges[MAX_MERGES];
    uint32_t n_merges;
} vocab_builder;

static int32_t vb_find(const vocab_builder *v, const char *s)
{
    for (uint32_t i = 0; i < v->n; i++)
        if (!strcmp(v->tokens[i], s))
            return (int32_t)i;
    return -1;
}

static int32_t vb_add(vocab_builder *v, const char *s, int32_t type, float score)
{
    int32_t id = vb_find(v, s);
    if (id >= 0 || v->n == MAX_TOKENS)
        return id;
    size_t n = strlen(s) + 1;
    v->tokens[v->n] = malloc(n);
    if (!v->tokens[v->n])
        return -1;
    memcpy(v->tokens[v->n], s, n);
    v->types[v->n] = type;
    v->scores[v->n] = score;
    return (int32_t)v->n++;
}

static void vb_free(vocab_builder *v)
{
    for (uint32_t i = 0; i < v->n; i++)
        free(v->tokens[i]);
    for (uint32_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
}

/* SentencePiece: <unk> <s> </s>, 256 byte tokens, "▁", letters, digits and punctuation alone and after
 * "▁", a few words and multi-byte pieces (scores favour longer pieces), and one token of every other
 * type: user-defined (always matched), control, unused. */
static void build_spm(vocab_builder *v)
{
    static const char WS[] = "\xE2\x96\x81";
    char s[64];
    vb_add(v, "<unk>", TOKEN_TYPE_UNKNOWN, 0);
    vb_add(v, "<s>", TOKEN_TYPE_CONTROL, 0);
    vb_add(v, "</s>", TOKEN_TYPE_CONTROL, 0);
    for (int b = 0; b < 256; b++) {
        snprintf(s, sizeof s, "<0x%02X>", b);
        vb_add(v, s, TOKEN_TYPE_BYTE, 0);
    }
    vb_add(v, WS, TOKEN_TYPE_NORMAL, -1);
    static const char singles[] = "etaoinshrdlcumwfgypbvkjxqzETAOINSHRDLCUMWFGYPBVKJXQZ0123456789.,!?'\"-:;()";
    for (const char *c = singles; *c; c++) {
        snprintf(s, sizeof s, "%c", *c);
        vb_add(v, s, TOKEN_TYPE_NORMAL, -2);
        snprintf(s, sizeof s, "%s%c", WS, *c);
        vb_add(v, s, TOKEN_TYPE_NORMAL, -3);
    }
    static const char *const words[] = {
        "he", "ll", "llo", "hello", "\xE2\x96\x81hello", "or", "ld", "world", "\xE2\x96\x81world", "th",
        "the", "\xE2\x96\x81the", "in", "ing", "\xE2\x96\x81\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81",
        "\xC3\xA9", "caf\xC3\xA9", "\xE6\x97\xA5", "\xE6\x97\xA5\xE6\x9C\xAC", "\xF0\x9F\x9A\x80", "12", "123",
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        vb_add(v, words[i], TOKEN_TYPE_NORMAL, (float)strlen(words[i]));
    vb_add(v, "<|user|>", TOKEN_TYPE_USER_DEFINED, 0);
    vb_add(v, "<|im_start|>", TOKEN_TYPE_CONTROL, 0);
    vb_add(v, "<|im_end|>", TOKEN_TYPE_CONTROL, 0);
    vb_add(v, "<unused0>", TOKEN_TYPE_UNUSED, 0);
}

void fuzz_bpe_byte_char(int b, char out[3])
{
#define PRINTABLE(c) (((c) >= 0x21 && (c) <= 0x7E) || ((c) >= 0xA1 && (c) <= 0xAC) || ((c) >= 0xAE && (c) <= 0xFF))
    int cp = b;
    if (!PRINTABLE(b)) {
        cp = 256;
        for (int c = 0; c < b; c++)
            cp += !PRINTABLE(c);
    }
#undef PRINTABLE
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = '\0';
    }
}

/* Raw bytes -> the byte-level string of a BPE token. */
static void to_bpe(const char *raw, char *out, size_t cap)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p && k + 3 < cap; p++) {
        char c[3];
        fuzz_bpe_byte_char(*p, c);
        for (const char *q = c; *q; q++)
            out[k++] = *q;
    }
    out[k] = '\0';
}

/* Byte-level BPE: the 256 byte characters, merges that build a few words (each merge's parts exist
 * before it), and Llama 3 / GPT-2 / ChatML special tokens. */
static void build_bpe(vocab_builder *v)
{
    char a[64], b[64], m[160];
    for (int byte = 0; byte < 256; byte++) {
        fuzz_bpe_byte_char(byte, a);
        vb_add(v, a, TOKEN_TYPE_NORMAL, 0);
    }
    static const char *const merges[][2] = {
        {" ", "t"}, {"h", "e"}, {" t", "he"}, {"i", "n"}, {"in", "g"}, {" ", "a"}, {"e", "r"}, {"o", "n"},
        {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"}, {"l", "d"},
        {" wor", "ld"}, {" ", "hello"}, {"1", "2"}, {"12", "3"}, {"'", "s"}, {"\n", "\n"}, {" ", " "},
        {"\xC3", "\xA9"}, {"\xE6", "\x97"}, {"\xE6\x97", "\xA5"}, {" ", "\xE6\x97\xA5"},
        {"\xCC", "\x81"}, {"e", "\xCC\x81"},
    };
    for (size_t i = 0; i < sizeof merges / sizeof merges[0] && v->n_merges < MAX_MERGES; i++) {
        to_bpe(merges[i][0], a, sizeof a);
        to_bpe(merges[i][1], b, sizeof b);
        snprintf(m, sizeof m, "%s %s", a, b);
        v->merges[v->n_merges] = malloc(strlen(m) + 1);
        if (!v->merges[v->n_merges])
            return;
        strcpy(v->merges[v->n_merges++], m);
        snprintf(m, sizeof m, "%s%s", a, b);
        vb_add(v, m, TOKEN_TYPE_NORMAL, 0);
    }
    static const char *const specials[] = {
        "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
        "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    };
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        vb_add(v, specials[i], TOKEN_TYPE_CONTROL, 0);
}

#define TRY(x)                                                                                                 \
    do {                                                                                                       \
        if (st == VKLLM_OK)                                                                                    \
            st = (x);                                                                                          \
    } while (0)

static tokenizer *load_vocab(fuzz_vocab which)
{
    vocab_builder v;
    memset(&v, 0, sizeof v);
    if (which == FUZZ_VOCAB_SPM)
        build_spm(&v);
    else
        build_bpe(&v);

    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/vkllm-fuzz-vocab-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot create a temporary file in %s\n", dir && *dir ? dir : "/tmp");
        vb_free(&v);
        return NULL;
    }
    close(fd);
    gguf_writer *w = NULL;
    vkllm_status st = vkl_gguf_writer_open(path, &w);
    if (which == FUZZ_VOCAB_SPM) {
        TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama"));
        TRY(vkl_gguf_writer_kv_arr_f32(w, "tokenizer.ggml.scores", v.scores, v.n));
        TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", 1));
        TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", 2));
        TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", 0));
    } else {
        bool llama3 = which == FUZZ_VOCAB_BPE_LLAMA3, qwen = which == FUZZ_VOCAB_BPE_QWEN35;
        TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.model", "gpt2"));
        TRY(vkl_gguf_writer_kv_str(w, "tokenizer.ggml.pre", llama3 ? "llama-bpe" : qwen ? "qwen35" : "gpt-2"));
        TRY(vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges, v.n_merges));
        int32_t bos = vb_find(&v, llama3 ? "<|begin_of_text|>" : "<|endoftext|>");
        int32_t eos = vb_find(&v, llama3 ? "<|eot_id|>" : qwen ? "<|im_end|>" : "<|endoftext|>");
        TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos));
        TRY(vkl_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos));
        TRY(vkl_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", llama3));
    }
    TRY(vkl_gguf_writer_kv_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens, v.n));
    TRY(vkl_gguf_writer_kv_arr_i32(w, "tokenizer.ggml.token_type", v.types, v.n));
    vkllm_status closed = w ? vkl_gguf_writer_close(w) : st;
    if (st == VKLLM_OK)
        st = closed;
    vb_free(&v);
    tokenizer *t = NULL;
    gguf_file *f = NULL;
    TRY(vkl_gguf_open(path, &f));
    TRY(vkl_tokenizer_load(f, &t));
    vkl_gguf_close(f);
    remove(path);
    if (st != VKLLM_OK) {
        fprintf(stderr, "fuzz: cannot build vocabulary %d: %s\n", (int)which, vkr_last_error());
        return NULL;
    }
    return t;
}

const tokenizer *fuzz_tokenizer(fuzz_vocab which)
{
    /* Built once and kept for the life of the process (libFuzzer runs millions of inputs). LeakSanitizer
     * sees them through this array. */
    static tokenizer *cache[FUZZ_VOCAB_COUNT];
    static bool tried[FUZZ_VOCAB_COUNT];
    if ((unsigned)which >= FUZZ_VOCAB_COUNT)
        return NULL;
    if (!tried[which]) {
        tried[which] = true;
        cache[which] = load_vocab(which);
    }
    return cache[which];
}

void fuzz_build_tokenizers(void)
{
    for (int v = 0; v < FUZZ_VOCAB_COUNT; v++)
        if (!fuzz_tokenizer((fuzz_vocab)v))
            abort();
}

/* ---------------------------------------------------------------- tokenizer workout */

static bool contains(const uint8_t *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(s + i, needle, k))
            return true;
    return false;
}

/* Decodes ids with the streaming detokenizer; returns the concatenated text (malloc'ed) or NULL if a push
 * failed (an id out of range: then decode must have failed too). */
static char *stream_all(const tokenizer *t, const int32_t *ids, size_t n, bool special, size_t *out_len)
{
    tokenizer_stream *s = NULL;
    if (vkl_tokenizer_stream_create(t, special, &s) != VKLLM_OK)
        return NULL;
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    bool ok = out != NULL;
    for (size_t i = 0; i < n + 1 && ok; i++) {
        const char *piece;
        size_t plen;
        if (i < n) {
            if (vkl_tokenizer_stream_push(s, ids[i], &piece, &plen) != VKLLM_OK) {
                ok = false;
                break;
            }
        } else {
            vkl_tokenizer_stream_flush(s, &piece, &plen);
        }
        if (len + plen + 1 > cap) {
            while (len + plen + 1 > cap)
                cap *= 2;
            char *bigger = realloc(out, cap);
            if (!bigger) {
                ok = false;
                break;
            }
            out = bigger;
        }
        memcpy(out + len, piece, plen);
        len += plen;
    }
    vkl_tokenizer_stream_free(s);
    if (!ok) {
        free(out);
        return NULL;
    }
    out[len] = '\0';
    *out_len = len;
    return out;
}

/* decode() and the stream must give the same bytes (or both refuse the ids). */
static void check_decoders(const tokenizer *t, const int32_t *ids, size_t n, bool special, bool all_valid)
{
    char *text = NULL;
    size_t len = 0;
    vkllm_status st = vkl_tokenizer_decode(t, ids, n, special, &text, &len);
    FUZZ_ASSERT(st == VKLLM_OK || st == VKLLM_ERR_INVALID_ARGUMENT);
    FUZZ_ASSERT(!all_valid || st == VKLLM_OK);
    size_t slen = 0;
    char *streamed = stream_all(t, ids, n, special, &slen);
    if (st == VKLLM_OK) {
        FUZZ_ASSERT(text != NULL && text[len] == '\0');
        FUZZ_ASSERT(streamed != NULL);
        FUZZ_ASSERT(slen == len && !memcmp(streamed, text, len));
    } else {
        FUZZ_ASSERT(streamed == NULL);
    }
    free(text);
    free(streamed);
}

void fuzz_exercise_tokenizer(const tokenizer *t, const uint8_t *text, size_t len, unsigned flags)
{
    bool add_special = flags & 1, parse_special = (flags >> 1) & 1;
    int32_t n_vocab = vkl_tokenizer_n_vocab(t);
    FUZZ_ASSERT(n_vocab > 0);

    /* Encode, then decode what came out. */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    vkllm_status st = vkl_tokenizer_encode(t, (const char *)text, len, add_special, parse_special, &ids, &n_ids);
    if (st == VKLLM_OK) {
        FUZZ_ASSERT(ids != NULL);
        for (size_t i = 0; i < n_ids; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < n_vocab);
        check_decoders(t, ids, n_ids, false, true);
        check_decoders(t, ids, n_ids, true, true);
        /* Round trip (tokenizer.h): without special-token parsing, text the vocabulary can spell comes
         * back unchanged, except that SentencePiece reads U+2581 as a space. Only the fuzzers' own
         * vocabularies are known to spell every byte. */
        bool own = false;
        for (int v = 0; v < FUZZ_VOCAB_COUNT; v++)
            own |= t == fuzz_tokenizer((fuzz_vocab)v);
        if (own && !parse_special && !contains(text, len, "\xE2\x96\x81")) {
            char *back = NULL;
            size_t blen = 0;
            FUZZ_ASSERT(vkl_tokenizer_decode(t, ids, n_ids, false, &back, &blen) == VKLLM_OK);
            FUZZ_ASSERT(blen == len && !memcmp(back, text, len));
            free(back);
        }
        free(ids);
    } else {
        FUZZ_ASSERT(ids == NULL || n_ids == 0);
        FUZZ_ASSERT(vkr_last_error()[0] != '\0');
        free(ids);
    }

    /* The same bytes read as token ids: most in range, some not. */
    size_t n = len / 4;
    if (n > 4096)
        n = 4096;
    int32_t *raw = malloc((n ? n : 1) * sizeof *raw);
    if (!raw)
        return;
    bool all_valid = true;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)text[4 * i] | (uint32_t)text[4 * i + 1] << 8 | (uint32_t)text[4 * i + 2] << 16 |
                     (uint32_t)text[4 * i + 3] << 24;
        /* Top bit set: the raw value (negative or huge); else an id near the vocabulary's range. */
        raw[i] = (u & 0x80000000u) ? (int32_t)u : (int32_t)(u % ((uint32_t)n_vocab + 8)) - 4;
        all_valid = all_valid && raw[i] >= 0 && raw[i] < n_vocab;
    }
    check_decoders(t, raw, n, (flags >> 2) & 1, all_valid);
    size_t max_piece = vkl_tokenizer_max_piece_len(t);
    char small[4];
    char *big = malloc(max_piece + 1);
    for (size_t i = 0; i < n && i < 64 && big; i++) {
        int32_t id = raw[i];
        bool valid = id >= 0 && id < n_vocab;
        int32_t r = vkl_tokenizer_token_to_piece(t, id, small, sizeof small);
        FUZZ_ASSERT(valid ? r != TOKENIZER_BAD_ID : r == TOKENIZER_BAD_ID);
        if (valid) {
            FUZZ_ASSERT(r >= -(int32_t)max_piece);
            int32_t r2 = vkl_tokenizer_token_to_piece(t, id, big, max_piece);
            FUZZ_ASSERT(r2 >= 0 && (size_t)r2 <= max_piece);
            FUZZ_ASSERT(r < 0 ? -r == r2 : r == r2);
        }
        size_t tl = 0;
        const char *tt = vkl_tokenizer_token_text(t, id, &tl);
        FUZZ_ASSERT(valid == (tt != NULL));
        FUZZ_ASSERT(valid == (vkl_tokenizer_token_type(t, id) >= 0));
        if (valid)
            FUZZ_ASSERT(vkl_tokenizer_find_token(t, tt, tl) >= 0);
        (void)vkl_tokenizer_is_eog(t, id);
    }
    free(big);
    free(raw);
}
