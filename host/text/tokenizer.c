/* Tokenizer front end (loading, special-token splitting, decoding) and the SentencePiece encoder.
 * See host/text/tokenizer.h for the contract and host/text/tokenizer_impl.h for how other algorithms plug in. */
#include "host/text/tokenizer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/text/merge_heap.h"

#define TOK_MAX_VOCAB (1 << 24)        /* sanity bounds on what a file may declare */
#define TOK_MAX_TOKEN_BYTES (1u << 16)
#define TOK_MAX_TEXT ((size_t)1 << 29) /* encode input limit: keeps symbol indices in int32 */

static const char SPACE_MARK[3] = {'\xE2', '\x96', '\x81'}; /* U+2581 "▁" */

/* ---------------------------------------------------------------- small helpers */

vkllm_status vkl_tok_ids_push(tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu token ids", cap);
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return VKLLM_OK;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 29;
    h *= 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    return h;
}

int32_t vkl_tok_lookup(const tokenizer *t, const char *s, size_t len)
{
    if (len > t->max_len)
        return -1;
    uint64_t h = hash_bytes(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & t->hash_mask;; i = (i + 1) & t->hash_mask) {
        int32_t id = t->hash_id[i];
        if (id < 0)
            return -1;
        if (t->hash_tag[i] == tag && t->text_len[id] == len && !memcmp(t->text + t->text_off[id], s, len))
            return id;
    }
}

/* Inserts id under its string; a later token with the same string replaces an earlier one. */
static void hash_insert(tokenizer *t, int32_t id)
{
    const char *s = t->text + t->text_off[id];
    size_t len = t->text_len[id];
    uint64_t h = hash_bytes(s, len);
    uint32_t tag = (uint32_t)(h >> 32);
    for (uint32_t i = (uint32_t)h & t->hash_mask;; i = (i + 1) & t->hash_mask) {
        int32_t old = t->hash_id[i];
        if (old < 0 || (t->hash_tag[i] == tag && t->text_len[old] == len &&
                        !memcmp(t->text + t->text_off[old], s, len))) {
            t->hash_id[i] = id;
            t->hash_tag[i] = tag;
            return;
        }
    }
}

/* Length of the UTF-8 character at s (n > 0 bytes available), or 1 for a byte that does not start a
 * well-formed character (stray continuation, overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 1;
    if (len > n || s[1] < lo || s[1] > hi)
        return 1;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return len;
}

/* Writes a printable rendering of an untrusted string (for messages). */
static void sanitize(char *dst, size_t cap, const char *s, size_t len)
{
    size_t i = 0, j = 0;
    for (; i < len && j + 4 < cap; i++)
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (i < len && j + 3 < cap) {
        dst[j++] = '.';
        dst[j++] = '.';
        dst[j++] = '.';
    }
    dst[j] = '\0';
}

/* ---------------------------------------------------------------- loading */

static vkllm_status read_id(const gguf_file *f, const char *key, int32_t n_vocab, int32_t def, int32_t *out)
{
    if (vkl_gguf_find_key(f, key) < 0) {
        *out = def < n_vocab ? def : -1;
        return VKLLM_OK;
    }
    uint64_t u;
    int32_t i;
    if (vkl_gguf_get_u64(f, key, &u)) {
        if (u == 0xFFFFFFFFull || u == UINT64_MAX) {
            *out = -1;
            return VKLLM_OK;
        }
        if (u >= (uint64_t)n_vocab)
            return vkr_error(VKLLM_ERR_FORMAT, "%s = %llu is out of range (the vocabulary has %d tokens)", key,
                             (unsigned long long)u, n_vocab);
        *out = (int32_t)u;
        return VKLLM_OK;
    }
    if (vkl_gguf_get_i32(f, key, &i)) {
        if (i == -1) {
            *out = -1;
            return VKLLM_OK;
        }
        return vkr_error(VKLLM_ERR_FORMAT, "%s = %d is out of range (the vocabulary has %d tokens)", key, i,
                         n_vocab);
    }
    return vkr_error(VKLLM_ERR_FORMAT, "%s is not an integer", key);
}

static vkllm_status read_bool(const gguf_file *f, const char *key, bool def, bool *out)
{
    *out = def;
    if (vkl_gguf_find_key(f, key) < 0)
        return VKLLM_OK;
    if (!vkl_gguf_get_bool(f, key, out))
        return vkr_error(VKLLM_ERR_FORMAT, "%s is not a boolean", key);
    return VKLLM_OK;
}

/* Integer element i of a numeric array of the given element type (little-endian raw data). */
static bool arr_int(const void *data, gguf_value_type type, uint64_t i, int64_t *v)
{
    const unsigned char *p = data;
    switch (type) {
    case GGUF_TYPE_INT8: { int8_t x; memcpy(&x, p + i, 1); *v = x; return true; }
    case GGUF_TYPE_UINT8: { uint8_t x; memcpy(&x, p + i, 1); *v = x; return true; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, p + 2 * i, 2); *v = x; return true; }
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, p + 2 * i, 2); *v = x; return true; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, p + 4 * i, 4); *v = x; return true; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, p + 4 * i, 4); *v = x; return true; }
    default: return false;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* "<0xNN>" -> NN, else -1. */
static int parse_byte_token(const char *s, size_t len)
{
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

/* Phi-3's special tokens swallow the whitespace that follows them (the rstrip of its tokenizer.json's added
 * tokens, which GGUF does not carry; llama.cpp recognises the vocabulary by general.name as we do), except
 * these. "<|user|>\nHi" is <|user|> ▁Hi. */
static const char *const RSTRIP_EXEMPT[] = {"<unk>", "<s>", "<|endoftext|>"};

static bool is_phi3(const gguf_file *f)
{
    const char *name;
    uint64_t len;
    if (!vkl_gguf_get_str(f, "general.name", &name, &len))
        return false;
    char low[256]; /* lower-case ASCII copy; a longer name is cut */
    size_t n = len < sizeof low ? (size_t)len : sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    low[n] = '\0';
    return strstr(low, "phi3") || strstr(low, "phi-3");
}

static bool text_is(const tokenizer *t, int32_t id, const char *s)
{
    return t->text_len[id] == strlen(s) && !memcmp(t->text + t->text_off[id], s, t->text_len[id]);
}

static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "<|end_of_text|>",
};

/* Special tokens are sorted by (length desc, id asc) through (len, id) pairs. */
typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

static int cmp_special_key(const void *a, const void *b)
{
    const special_key *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static vkllm_status spm_init(tokenizer *t);
static vkllm_status spm_encode_fragment(const tokenizer *t, const char *text, size_t len, bool after_special,
                                        tok_ids *out);

static vkllm_status load_common(tokenizer *t, const gguf_file *f)
{
    vkllm_status st;
    gguf_value_type et;
    uint64_t count;

    /* tokens */
    if (!vkl_gguf_get_arr_info(f, "tokenizer.ggml.tokens", &et, &count))
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.tokens is missing or not an array");
    if (et != GGUF_TYPE_STRING)
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings");
    if (count == 0 || count > TOK_MAX_VOCAB)
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.tokens has %llu entries (expected 1..%d)",
                         (unsigned long long)count, TOK_MAX_VOCAB);
    int32_t n = (int32_t)count;
    t->n_vocab = n;
    t->text_off = malloc((size_t)n * sizeof *t->text_off);
    t->text_len = malloc((size_t)n * sizeof *t->text_len);
    t->scores = calloc((size_t)n, sizeof *t->scores);
    t->type = malloc((size_t)n);
    t->flags = calloc((size_t)n, 1);
    t->byte_value = calloc((size_t)n, 1);
    if (!t->text_off || !t->text_len || !t->scores || !t->type || !t->flags || !t->byte_value)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %d tokens", n);

    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        if (!vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", (uint64_t)i, &s, &len))
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.tokens[%d] cannot be read", i);
        if (len > TOK_MAX_TOKEN_BYTES)
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.tokens[%d] is %llu bytes long (limit %u)", i,
                             (unsigned long long)len, TOK_MAX_TOKEN_BYTES);
        t->text_off[i] = total;
        t->text_len[i] = (uint32_t)len;
        total += (size_t)len;
        if (len > t->max_len)
            t->max_len = (uint32_t)len;
    }
    t->text = malloc(total ? total : 1);
    if (!t->text)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu bytes of tokens", total);
    for (int32_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        if (!vkl_gguf_get_arr_str(f, "tokenizer.ggml.tokens", (uint64_t)i, &s, &len) || len != t->text_len[i])
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.tokens[%d] cannot be read", i);
        if (len)
            memcpy(t->text + t->text_off[i], s, (size_t)len);
    }

    /* scores (required by SentencePiece; optional for other models) */
    if (vkl_gguf_get_arr_info(f, "tokenizer.ggml.scores", &et, &count)) {
        if (et != GGUF_TYPE_FLOAT32)
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.scores is not an array of float32");
        if (count != (uint64_t)n)
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.scores has %llu entries but there are %d tokens",
                             (unsigned long long)count, n);
        const unsigned char *d = vkl_gguf_get_arr_data(f, "tokenizer.ggml.scores");
        if (!d)
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.scores cannot be read");
        for (int32_t i = 0; i < n; i++) {
            float s;
            memcpy(&s, d + 4 * (size_t)i, 4);
            t->scores[i] = isnan(s) ? -INFINITY : s;
        }
    } else if (vkl_gguf_find_key(f, "tokenizer.ggml.scores") >= 0) {
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.scores is not an array");
    } else if (t->kind == TOKENIZER_SPM) {
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.scores is missing (required by a SentencePiece vocab)");
    }

    /* token types (optional: inferred from the strings when absent) */
    bool have_types = false;
    if (vkl_gguf_get_arr_info(f, "tokenizer.ggml.token_type", &et, &count)) {
        if (count != (uint64_t)n)
            return vkr_error(VKLLM_ERR_FORMAT,
                             "tokenizer.ggml.token_type has %llu entries but there are %d tokens",
                             (unsigned long long)count, n);
        const void *d = vkl_gguf_get_arr_data(f, "tokenizer.ggml.token_type");
        int64_t v;
        if (!d || !arr_int(d, et, 0, &v))
            return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.token_type is not an array of integers");
        for (int32_t i = 0; i < n; i++) {
            arr_int(d, et, (uint64_t)i, &v);
            if (v < TOKEN_TYPE_UNDEFINED || v > TOKEN_TYPE_BYTE)
                return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.token_type[%d] = %lld is not a token type", i,
                                 (long long)v);
            t->type[i] = (uint8_t)v;
        }
        have_types = true;
    } else if (vkl_gguf_find_key(f, "tokenizer.ggml.token_type") >= 0) {
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.token_type is not an array");
    }

    /* special ids and flags */
    bool spm = t->kind == TOKENIZER_SPM; /* BPE vocabularies have no conventional special ids */
    if ((st = read_id(f, "tokenizer.ggml.bos_token_id", n, spm ? 1 : -1, &t->bos)) ||
        (st = read_id(f, "tokenizer.ggml.eos_token_id", n, spm ? 2 : -1, &t->eos)) ||
        (st = read_id(f, "tokenizer.ggml.unknown_token_id", n, spm ? 0 : -1, &t->unk)) ||
        (st = read_id(f, "tokenizer.ggml.padding_token_id", n, -1, &t->pad)) ||
        (st = read_id(f, "tokenizer.ggml.eot_token_id", n, -1, &t->eot)) ||
        (st = read_id(f, "tokenizer.ggml.eom_token_id", n, -1, &t->eom)) ||
        (st = read_bool(f, "tokenizer.ggml.add_bos_token", true, &t->add_bos)) ||
        (st = read_bool(f, "tokenizer.ggml.add_eos_token", false, &t->add_eos)) ||
        (st = read_bool(f, "tokenizer.ggml.add_space_prefix", true, &t->add_space_prefix)))
        return st;

    for (int i = 0; i < 256; i++)
        t->byte_token[i] = -1;
    for (int32_t i = 0; i < n; i++) {
        const char *s = t->text + t->text_off[i];
        int b = parse_byte_token(s, t->text_len[i]);
        if (!have_types)
            t->type[i] = b >= 0 ? TOKEN_TYPE_BYTE : TOKEN_TYPE_NORMAL;
        if (t->type[i] == TOKEN_TYPE_BYTE) {
            if (b < 0) /* a byte token we cannot read: show its string instead */
                t->type[i] = TOKEN_TYPE_NORMAL;
            else
                t->byte_value[i] = (uint8_t)b;
        }
        if (b >= 0 && t->byte_token[b] < 0)
            t->byte_token[b] = i;
    }
    if (!have_types) {
        if (t->unk >= 0)
            t->type[t->unk] = TOKEN_TYPE_UNKNOWN;
        if (t->bos >= 0)
            t->type[t->bos] = TOKEN_TYPE_CONTROL;
        if (t->eos >= 0)
            t->type[t->eos] = TOKEN_TYPE_CONTROL;
    }

    /* end of generation */
    int32_t eog_ids[3] = {t->eos, t->eot, t->eom};
    for (int k = 0; k < 3; k++)
        if (eog_ids[k] >= 0)
            t->flags[eog_ids[k]] |= TOK_FLAG_EOG;
    for (int32_t i = 0; i < n; i++) {
        if (t->type[i] != TOKEN_TYPE_CONTROL && t->type[i] != TOKEN_TYPE_USER_DEFINED)
            continue;
        for (size_t k = 0; k < sizeof EOG_TEXTS / sizeof EOG_TEXTS[0]; k++)
            if (text_is(t, i, EOG_TEXTS[k]))
                t->flags[i] |= TOK_FLAG_EOG;
    }
    if (is_phi3(f)) {
        for (int32_t i = 0; i < n; i++) {
            bool exempt = false;
            for (size_t k = 0; k < sizeof RSTRIP_EXEMPT / sizeof RSTRIP_EXEMPT[0]; k++)
                exempt |= text_is(t, i, RSTRIP_EXEMPT[k]);
            if (!exempt && (t->type[i] == TOKEN_TYPE_CONTROL || t->type[i] == TOKEN_TYPE_UNKNOWN ||
                            t->type[i] == TOKEN_TYPE_USER_DEFINED))
                t->flags[i] |= TOK_FLAG_RSTRIP;
        }
    }

    /* string -> id */
    uint32_t cap = 16;
    while (cap < (uint32_t)n * 2u)
        cap *= 2;
    t->hash_mask = cap - 1;
    t->hash_id = malloc((size_t)cap * sizeof *t->hash_id);
    t->hash_tag = malloc((size_t)cap * sizeof *t->hash_tag);
    if (!t->hash_id || !t->hash_tag)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for the token table");
    memset(t->hash_id, 0xFF, (size_t)cap * sizeof *t->hash_id);
    for (int32_t i = 0; i < n; i++)
        hash_insert(t, i);

    /* tokens matched verbatim in the input, longest first */
    size_t n_special = 0;
    for (int32_t i = 0; i < n; i++)
        if ((t->type[i] == TOKEN_TYPE_CONTROL || t->type[i] == TOKEN_TYPE_UNKNOWN ||
             t->type[i] == TOKEN_TYPE_USER_DEFINED) &&
            t->text_len[i] > 0)
            n_special++;
    if (n_special) {
        special_key *keys = malloc(n_special * sizeof *keys);
        t->special = malloc(n_special * sizeof *t->special);
        if (!keys || !t->special) {
            free(keys);
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
        }
        size_t k = 0;
        for (int32_t i = 0; i < n; i++)
            if ((t->type[i] == TOKEN_TYPE_CONTROL || t->type[i] == TOKEN_TYPE_UNKNOWN ||
                 t->type[i] == TOKEN_TYPE_USER_DEFINED) &&
                t->text_len[i] > 0)
                keys[k++] = (special_key){t->text_len[i], i};
        qsort(keys, n_special, sizeof *keys, cmp_special_key);
        for (k = 0; k < n_special; k++)
            t->special[k] = keys[k].id;
        free(keys);
        t->n_special = n_special;
    }
    return VKLLM_OK;
}

vkllm_status vkl_tokenizer_load(const gguf_file *f, tokenizer **out)
{
    if (!out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_load: out is NULL");
    *out = NULL;
    if (!f)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_load: no file");

    const char *model;
    uint64_t model_len;
    if (!vkl_gguf_get_str(f, "tokenizer.ggml.model", &model, &model_len))
        return vkr_error(VKLLM_ERR_FORMAT, "tokenizer.ggml.model is missing or not a string");
    tokenizer_kind kind;
    if (model_len == 5 && !memcmp(model, "llama", 5)) {
        kind = TOKENIZER_SPM;
    } else if (model_len == 4 && !memcmp(model, "gpt2", 4)) {
        kind = TOKENIZER_BPE;
    } else {
        char name[40];
        sanitize(name, sizeof name, model, (size_t)model_len);
        return vkr_error(VKLLM_ERR_UNSUPPORTED,
                         "tokenizer.ggml.model \"%s\" is not supported (only \"llama\" and \"gpt2\")", name);
    }

    tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
    t->kind = kind;
    vkllm_status st = load_common(t, f);
    if (st) {
        vkl_tokenizer_free(t);
        return st;
    }
    st = kind == TOKENIZER_BPE ? vkl_bpe_init(t, f) : spm_init(t);
    if (st) {
        vkl_tokenizer_free(t);
        return st;
    }
    if (kind == TOKENIZER_SPM)
        t->encode_fragment = spm_encode_fragment;
    *out = t;
    return VKLLM_OK;
}

void vkl_tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    if (t->impl_free)
        t->impl_free(t->impl);
    free(t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->scores);
    free(t->type);
    free(t->flags);
    free(t->byte_value);
    free(t->hash_id);
    free(t->hash_tag);
    free(t->special);
    free(t);
}

/* ---------------------------------------------------------------- accessors */

tokenizer_kind vkl_tokenizer_get_kind(const tokenizer *t) { return t->kind; }
int32_t vkl_tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
int32_t vkl_tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t vkl_tokenizer_eos(const tokenizer *t) { return t->eos; }
int32_t vkl_tokenizer_unk(const tokenizer *t) { return t->unk; }
int32_t vkl_tokenizer_pad(const tokenizer *t) { return t->pad; }
bool vkl_tokenizer_adds_bos(const tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool vkl_tokenizer_adds_eos(const tokenizer *t) { return t->add_eos && t->eos >= 0; }

bool vkl_tokenizer_is_eog(const tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_FLAG_EOG);
}

bool vkl_tokenizer_token_rstrip(const tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_FLAG_RSTRIP);
}

int vkl_tokenizer_token_type(const tokenizer *t, int32_t id)
{
    return (id >= 0 && id < t->n_vocab) ? t->type[id] : -1;
}

const char *vkl_tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || id >= t->n_vocab) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = t->text_len[id];
    return t->text + t->text_off[id];
}

int32_t vkl_tokenizer_find_token(const tokenizer *t, const char *s, size_t len)
{
    if (!s && len)
        return -1;
    return vkl_tok_lookup(t, s ? s : "", len);
}

size_t vkl_tokenizer_max_piece_len(const tokenizer *t) { return t->max_len > 0 ? t->max_len : 1; }

/* ---------------------------------------------------------------- SentencePiece encoder
 *
 * The text (with spaces written as U+2581 and, at the start of a text, one more U+2581 in front) is cut
 * into characters; then, as long as some adjacent pair of symbols spells a vocabulary token, the pair whose
 * token has the highest score (the leftmost on ties) is merged into one symbol. Candidate pairs live in a
 * heap (host/text/merge_heap.h); entries made stale by an earlier merge are recognised when popped (a symbol's length
 * only grows, and a merged-away symbol has length 0) and dropped. Each final symbol is its token, or, if it
 * is a character the vocabulary lacks, the byte tokens <0xNN> of its bytes (the unknown token if there is
 * no byte token).
 *
 * Speed: a symbol is always a vocabulary token or a single character, so no symbol can ever span two
 * adjacent characters that appear next to each other in no token. The text is cut at such places (for
 * Llama vocabularies: before nearly every space) and each piece is merged on its own: the result is the
 * same as merging the whole text at once, with small heaps. */

typedef struct spm_state {
    uint64_t *pairs; /* character pairs that occur inside some token; SPM_NO_PAIR = empty slot */
    uint32_t mask;
} spm_state;

#define SPM_NO_PAIR UINT64_MAX

static uint32_t pack_char(const unsigned char *s, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint32_t)s[i] << (8 * i);
    return v;
}

static inline uint32_t pair_slot(uint64_t key, uint32_t mask)
{
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static bool spm_pair_known(const spm_state *ss, uint64_t key)
{
    for (uint32_t i = pair_slot(key, ss->mask);; i = (i + 1) & ss->mask) {
        if (ss->pairs[i] == key)
            return true;
        if (ss->pairs[i] == SPM_NO_PAIR)
            return false;
    }
}

static void spm_state_free(void *p)
{
    spm_state *ss = p;
    if (ss)
        free(ss->pairs);
    free(ss);
}

/* Adds key to the set, doubling it when half full. */
static vkllm_status spm_pair_add(spm_state *ss, size_t *count, uint64_t key)
{
    if (*count * 2 >= (size_t)ss->mask + 1) {
        size_t cap = ((size_t)ss->mask + 1) * 2;
        uint64_t *pairs = malloc(cap * sizeof *pairs);
        if (!pairs)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
        memset(pairs, 0xFF, cap * sizeof *pairs);
        uint32_t mask = (uint32_t)(cap - 1);
        for (size_t i = 0; i <= ss->mask; i++) {
            if (ss->pairs[i] == SPM_NO_PAIR)
                continue;
            uint32_t j = pair_slot(ss->pairs[i], mask);
            while (pairs[j] != SPM_NO_PAIR)
                j = (j + 1) & mask;
            pairs[j] = ss->pairs[i];
        }
        free(ss->pairs);
        ss->pairs = pairs;
        ss->mask = mask;
    }
    uint32_t i = pair_slot(key, ss->mask);
    while (ss->pairs[i] != SPM_NO_PAIR && ss->pairs[i] != key)
        i = (i + 1) & ss->mask;
    if (ss->pairs[i] == SPM_NO_PAIR) {
        ss->pairs[i] = key;
        (*count)++;
    }
    return VKLLM_OK;
}

static vkllm_status spm_init(tokenizer *t)
{
    const size_t cap = 1024;
    spm_state *ss = calloc(1, sizeof *ss);
    if (ss)
        ss->pairs = malloc(cap * sizeof *ss->pairs);
    if (!ss || !ss->pairs) {
        spm_state_free(ss);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
    }
    memset(ss->pairs, 0xFF, cap * sizeof *ss->pairs);
    ss->mask = (uint32_t)(cap - 1);
    size_t count = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const unsigned char *s = (const unsigned char *)t->text + t->text_off[id];
        size_t n = t->text_len[id];
        uint32_t prev = 0;
        for (size_t off = 0; off < n;) {
            size_t cl = utf8_char_len(s + off, n - off);
            uint32_t c = pack_char(s + off, cl);
            if (off > 0) {
                vkllm_status st = spm_pair_add(ss, &count, (uint64_t)prev | ((uint64_t)c << 32));
                if (st) {
                    spm_state_free(ss);
                    return st;
                }
            }
            prev = c;
            off += cl;
        }
    }
    t->impl = ss;
    t->impl_free = spm_state_free;
    return VKLLM_OK;
}

typedef struct spm_sym {
    uint32_t start, n; /* bytes of the escaped text; n == 0 once merged into its left neighbour */
    int32_t prev, next;
} spm_sym;


typedef struct spm_work {
    char *buf;
    spm_sym *sym;
    size_t sym_cap;
    merge_heap heap;   /* candidates: aux[0] = the merged size in bytes */
} spm_work;

static vkllm_status spm_try_pair(const tokenizer *t, spm_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return VKLLM_OK;
    uint32_t size = w->sym[left].n + w->sym[right].n;
    if (size > t->max_len)
        return VKLLM_OK;
    int32_t id = vkl_tok_lookup(t, w->buf + w->sym[left].start, size);
    if (id < 0)
        return VKLLM_OK;
    merge_cand c = {merge_key_score(t->scores[id], left), left, right, {(int32_t)size, 0, 0}};
    return vkl_merge_heap_push(&w->heap, &c);
}

static vkllm_status spm_emit_bytes(const tokenizer *t, const unsigned char *s, size_t n, tok_ids *out)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_token[s[i]] >= 0 ? t->byte_token[s[i]] : t->unk;
        if (id < 0)
            return vkr_error(VKLLM_ERR_UNSUPPORTED,
                             "cannot encode byte 0x%02X: the vocabulary has neither a byte token nor an unknown token",
                             s[i]);
        vkllm_status st = vkl_tok_ids_push(out, id);
        if (st)
            return st;
    }
    return VKLLM_OK;
}

/* Merges the n_sym (>= 1) symbols in w->sym (a chain 0 -> n_sym-1) and appends their tokens. */
static vkllm_status spm_merge_piece(const tokenizer *t, spm_work *w, int32_t n_sym, tok_ids *out)
{
    vkllm_status st;
    w->heap.n = 0;
    for (int32_t i = 1; i < n_sym; i++)
        if ((st = spm_try_pair(t, w, i - 1, i)))
            return st;
    while (w->heap.n > 0) {
        merge_cand p = vkl_merge_heap_pop(&w->heap);
        spm_sym *l = &w->sym[p.left], *r = &w->sym[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != (uint32_t)p.aux[0])
            continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = p.left;
        if ((st = spm_try_pair(t, w, l->prev, p.left)) || (st = spm_try_pair(t, w, p.left, l->next)))
            return st;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        const spm_sym *s = &w->sym[i];
        int32_t id = vkl_tok_lookup(t, w->buf + s->start, s->n);
        st = id >= 0 ? vkl_tok_ids_push(out, id)
                     : spm_emit_bytes(t, (const unsigned char *)w->buf + s->start, s->n, out);
        if (st)
            return st;
    }
    return VKLLM_OK;
}

static vkllm_status spm_run(const tokenizer *t, spm_work *w, size_t len, tok_ids *out)
{
    const spm_state *ss = t->impl;
    const unsigned char *buf = (const unsigned char *)w->buf;
    vkllm_status st;
    int32_t n_sym = 0;
    uint32_t prev = 0;
    for (size_t off = 0; off < len;) {
        size_t cl = utf8_char_len(buf + off, len - off);
        uint32_t c = pack_char(buf + off, cl);
        if (n_sym > 0 && !spm_pair_known(ss, (uint64_t)prev | ((uint64_t)c << 32))) {
            /* no token spans this point: finish the piece on the left */
            w->sym[n_sym - 1].next = -1;
            if ((st = spm_merge_piece(t, w, n_sym, out)))
                return st;
            n_sym = 0;
        }
        if ((size_t)n_sym == w->sym_cap) {
            size_t cap = w->sym_cap ? w->sym_cap * 2 : 256;
            spm_sym *v = realloc(w->sym, cap * sizeof *v);
            if (!v)
                return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
            w->sym = v;
            w->sym_cap = cap;
        }
        spm_sym *s = &w->sym[n_sym];
        s->start = (uint32_t)off;
        s->n = (uint32_t)cl;
        s->prev = n_sym - 1;
        s->next = n_sym + 1;
        n_sym++;
        prev = c;
        off += cl;
    }
    if (n_sym > 0) {
        w->sym[n_sym - 1].next = -1;
        if ((st = spm_merge_piece(t, w, n_sym, out)))
            return st;
    }
    return VKLLM_OK;
}

static vkllm_status spm_encode_fragment(const tokenizer *t, const char *text, size_t len, bool after_special,
                                        tok_ids *out)
{
    bool prefix = after_special && t->add_space_prefix;
    size_t spaces = 0;
    for (size_t i = 0; i < len; i++)
        spaces += text[i] == ' ';
    size_t elen = len + 2 * spaces + (prefix ? 3 : 0);
    if (elen == 0)
        return VKLLM_OK;
    if (elen > TOK_MAX_TEXT)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer: text of %zu bytes is too long", len);

    spm_work w = {0};
    w.buf = malloc(elen);
    if (!w.buf)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu bytes of text", len);
    size_t j = 0;
    if (prefix) {
        memcpy(w.buf, SPACE_MARK, 3);
        j = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(w.buf + j, SPACE_MARK, 3);
            j += 3;
        } else {
            w.buf[j++] = text[i];
        }
    }
    vkllm_status st = spm_run(t, &w, elen, out);
    free(w.buf);
    free(w.sym);
    free(w.heap.v);
    return st;
}

/* ---------------------------------------------------------------- encoding front end */

typedef struct tok_frag {
    int32_t id; /* -1: text [off, off+len) */
    size_t off, len;
} tok_frag;

typedef struct frag_list {
    tok_frag *v;
    size_t n, cap;
} frag_list;

static vkllm_status frag_push(frag_list *l, tok_frag f)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        tok_frag *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return VKLLM_OK;
}

/* Position of the first occurrence of pat (plen >= 1) in s[0..n), or n. */
static size_t find_bytes(const char *s, size_t n, const char *pat, size_t plen)
{
    size_t i = 0;
    while (i + plen <= n) {
        const char *p = memchr(s + i, pat[0], n - plen + 1 - i);
        if (!p)
            return n;
        i = (size_t)(p - s);
        if (!memcmp(s + i, pat, plen))
            return i;
        i++;
    }
    return n;
}

/* C isspace in the "C" locale, which is what the rstrip of special tokens removes. */
static bool is_c_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Splits the text at special tokens (longest first; each token splits every stretch of text left). */
static vkllm_status split_special(const tokenizer *t, const char *text, size_t len, bool parse_special,
                                  frag_list *frags)
{
    vkllm_status st = frag_push(frags, (tok_frag){-1, 0, len});
    if (st)
        return st;
    frag_list next = {0};
    for (size_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        if (!parse_special && t->type[id] != TOKEN_TYPE_USER_DEFINED)
            continue;
        const char *pat = t->text + t->text_off[id];
        size_t plen = t->text_len[id];
        /* quick check: does the token occur at all? */
        bool found = false;
        for (size_t i = 0; i < frags->n && !found; i++)
            if (frags->v[i].id < 0 && frags->v[i].len >= plen &&
                find_bytes(text + frags->v[i].off, frags->v[i].len, pat, plen) < frags->v[i].len)
                found = true;
        if (!found)
            continue;
        next.n = 0;
        for (size_t i = 0; i < frags->n; i++) {
            tok_frag f = frags->v[i];
            if (f.id >= 0) {
                if ((st = frag_push(&next, f)))
                    goto done;
                continue;
            }
            size_t pos = 0;
            for (;;) {
                size_t at = pos + find_bytes(text + f.off + pos, f.len - pos, pat, plen);
                if (at >= f.len) {
                    if (pos < f.len && (st = frag_push(&next, (tok_frag){-1, f.off + pos, f.len - pos})))
                        goto done;
                    break;
                }
                if (at > pos && (st = frag_push(&next, (tok_frag){-1, f.off + pos, at - pos})))
                    goto done;
                if ((st = frag_push(&next, (tok_frag){id, 0, 0})))
                    goto done;
                pos = at + plen;
                if (t->flags[id] & TOK_FLAG_RSTRIP)
                    while (pos < f.len && is_c_space(text[f.off + pos]))
                        pos++;
            }
        }
        frag_list tmp = *frags;
        *frags = next;
        next = tmp;
    }
done:
    free(next.v);
    return st;
}

vkllm_status vkl_tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t **ids, size_t *n_ids)
{
    if (!t || !ids || !n_ids || (!text && len))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    if (len > TOK_MAX_TEXT)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer: text of %zu bytes is too long", len);

    tok_ids out = {0};
    frag_list frags = {0};
    vkllm_status st = VKLLM_OK;
    if (add_special && vkl_tokenizer_adds_bos(t) && (st = vkl_tok_ids_push(&out, t->bos)))
        goto fail;
    if (len > 0) {
        if ((st = split_special(t, text, len, parse_special, &frags)))
            goto fail;
        bool after_special = true;
        for (size_t i = 0; i < frags.n; i++) {
            const tok_frag *f = &frags.v[i];
            if (f->id >= 0) {
                st = vkl_tok_ids_push(&out, f->id);
                after_special = true;
            } else {
                st = t->encode_fragment(t, text + f->off, f->len, after_special, &out);
                after_special = false;
            }
            if (st)
                goto fail;
        }
    }
    if (add_special && vkl_tokenizer_adds_eos(t) && (st = vkl_tok_ids_push(&out, t->eos)))
        goto fail;
    if (!out.v && (st = vkl_tok_ids_push(&out, 0)) == VKLLM_OK)
        out.n = 0; /* never return NULL */
    if (st)
        goto fail;
    free(frags.v);
    *ids = out.v;
    *n_ids = out.n;
    return VKLLM_OK;
fail:
    free(frags.v);
    free(out.v);
    return st;
}

/* ---------------------------------------------------------------- decoding */

/* Renders token id (in range) into out (NULL: only measure). Returns the byte count. */
static size_t render_piece(const tokenizer *t, int32_t id, bool special, char *out)
{
    const char *s = t->text + t->text_off[id];
    size_t len = t->text_len[id];
    switch (t->type[id]) {
    case TOKEN_TYPE_NORMAL: {
        if (t->decode_piece)
            return t->decode_piece(t, id, out);
        size_t j = 0;
        for (size_t i = 0; i < len;) {
            if (i + 3 <= len && !memcmp(s + i, SPACE_MARK, 3)) {
                if (out)
                    out[j] = ' ';
                j++;
                i += 3;
            } else {
                if (out)
                    out[j] = s[i];
                j++;
                i++;
            }
        }
        return j;
    }
    case TOKEN_TYPE_BYTE:
        if (out)
            out[0] = (char)t->byte_value[id];
        return 1;
    case TOKEN_TYPE_USER_DEFINED:
        if (out && len)
            memcpy(out, s, len);
        return len;
    case TOKEN_TYPE_CONTROL:
    case TOKEN_TYPE_UNKNOWN:
        if (!special)
            return 0;
        if (out && len)
            memcpy(out, s, len);
        return len;
    default: /* undefined, unused */
        return 0;
    }
}

/* One step of sequence decoding: renders id into out (NULL: measure) applying the leading-space
 * convention; *strip says whether the next text piece loses its leading space. */
static size_t decode_step(const tokenizer *t, int32_t id, bool special, bool *strip, char *out)
{
    uint8_t type = t->type[id];
    if (type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED) {
        /* The encoder starts the text after any special fragment, user-defined ones included, with a space. */
        *strip = t->add_space_prefix;
        return render_piece(t, id, special, out);
    }
    size_t n = render_piece(t, id, special, out);
    if (n > 0 && *strip) {
        *strip = false;
        if (type == TOKEN_TYPE_NORMAL && t->text_len[id] >= 3 && !memcmp(t->text + t->text_off[id], SPACE_MARK, 3)) {
            if (out)
                memmove(out, out + 1, n - 1);
            n--;
        }
    }
    return n;
}

int32_t vkl_tokenizer_token_to_piece(const tokenizer *t, int32_t id, char *buf, size_t cap)
{
    if (!t || id < 0 || id >= t->n_vocab) {
        vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token id %d is out of range (vocabulary of %d tokens)", id,
                  t ? t->n_vocab : 0);
        return TOKENIZER_BAD_ID;
    }
    size_t need = render_piece(t, id, false, NULL);
    if (need > cap || (!buf && need))
        return -(int32_t)need;
    if (need)
        render_piece(t, id, false, buf);
    return (int32_t)need;
}

vkllm_status vkl_tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n_ids, bool special, char **text,
                              size_t *len)
{
    if (!t || !text || !len || (!ids && n_ids))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_decode: NULL argument");
    *text = NULL;
    *len = 0;
    size_t total = 0;
    bool strip = t->add_space_prefix;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token %zu: id %d is out of range (vocabulary of %d tokens)",
                             i, ids[i], t->n_vocab);
        total += decode_step(t, ids[i], special, &strip, NULL);
    }
    char *s = malloc(total + 1);
    if (!s)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu bytes of text", total);
    size_t j = 0;
    strip = t->add_space_prefix;
    for (size_t i = 0; i < n_ids; i++)
        j += decode_step(t, ids[i], special, &strip, s + j);
    s[j] = '\0';
    *text = s;
    *len = j;
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- streaming */

struct tokenizer_stream {
    const tokenizer *t;
    bool special;
    bool strip;
    unsigned char held[4];
    size_t n_held;
    char *buf; /* held bytes + one piece */
};

vkllm_status vkl_tokenizer_stream_create(const tokenizer *t, bool special, tokenizer_stream **out)
{
    if (!out)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_stream_create: out is NULL");
    *out = NULL;
    if (!t)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_stream_create: no tokenizer");
    tokenizer_stream *s = calloc(1, sizeof *s);
    char *buf = malloc(vkl_tokenizer_max_piece_len(t) + sizeof s->held);
    if (!s || !buf) {
        free(s);
        free(buf);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
    }
    s->t = t;
    s->special = special;
    s->buf = buf;
    vkl_tokenizer_stream_reset(s, true);
    *out = s;
    return VKLLM_OK;
}

void vkl_tokenizer_stream_free(tokenizer_stream *s)
{
    if (!s)
        return;
    free(s->buf);
    free(s);
}

void vkl_tokenizer_stream_reset(tokenizer_stream *s, bool at_start)
{
    s->strip = at_start && s->t->add_space_prefix;
    s->n_held = 0;
}

/* Bytes at the end of s[0..n) that begin a UTF-8 character not yet complete (0..3). */
static size_t utf8_incomplete_tail(const unsigned char *s, size_t n)
{
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned c = s[n - k];
        if ((c & 0xC0) == 0x80)
            continue;
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed second byte */
        if (c >= 0xC2 && c <= 0xDF)
            need = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else
            return 0;
        if (need <= k)
            return 0; /* complete (or over-long run of continuation bytes): nothing to wait for */
        if (k >= 2 && (s[n - k + 1] < lo || s[n - k + 1] > hi))
            return 0; /* can never become valid */
        return k;
    }
    return 0;
}

vkllm_status vkl_tokenizer_stream_push(tokenizer_stream *s, int32_t id, const char **text, size_t *len)
{
    if (!s || !text || !len)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "tokenizer_stream_push: NULL argument");
    *text = s->buf;
    *len = 0;
    if (id < 0 || id >= s->t->n_vocab)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "token id %d is out of range (vocabulary of %d tokens)", id,
                         s->t->n_vocab);
    size_t n = s->n_held;
    memcpy(s->buf, s->held, n);
    n += decode_step(s->t, id, s->special, &s->strip, s->buf + n);
    size_t keep = utf8_incomplete_tail((const unsigned char *)s->buf, n);
    memcpy(s->held, s->buf + n - keep, keep);
    s->n_held = keep;
    *len = n - keep;
    return VKLLM_OK;
}

void vkl_tokenizer_stream_flush(tokenizer_stream *s, const char **text, size_t *len)
{
    memcpy(s->buf, s->held, s->n_held);
    *text = s->buf;
    *len = s->n_held;
    s->n_held = 0;
}
