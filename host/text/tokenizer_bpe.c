/* Byte-level BPE (tokenizer.ggml.model = "gpt2"): GPT-2, Llama 3, Qwen2/2.5/3/3.5 and relatives.
 *
 * Encoding one stretch of ordinary text (the front end in host/text/tokenizer.c has already split out special
 * tokens) goes in two steps:
 *
 *   1. Pre-tokenization: the text is cut into pre-tokens by a hand-written matcher that behaves exactly like
 *      the regular expression the vocabulary was trained with (leftmost alternative first, greedy, with the
 *      backtracking the patterns imply). The pattern is picked by tokenizer.ggml.pre:
 *        "llama-bpe" (also "llama3", "llama-v3"), Llama 3 / 3.1 / 3.2:
 *            (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3} | ' '?[^\s\p{L}\p{N}]+[\r\n]*
 *            | \s*[\r\n]+ | \s+(?!\S) | \s+
 *        "qwen2" (also "stablelm2"), Qwen2 / 2.5 / 3 and DeepSeek-R1-Distill-Qwen: Llama 3's with single digits
 *            (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N} | ' '?[^\s\p{L}\p{N}]+[\r\n]*
 *            | \s*[\r\n]+ | \s+(?!\S) | \s+
 *        "qwen35", Qwen3.5: Qwen2's with combining marks (\p{M}) joining letters instead of punctuation
 *            (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+ | \p{N}
 *            | ' '?[^\s\p{L}\p{M}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *        "tekken", Mistral Nemo and later Mistral models (the pattern of their tokenizer.json; words split at a
 *        change from lower to upper case, as in "camelCase"):
 *            [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
 *            | [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]* | \p{N}
 *            | ' '?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *        "gpt-4o" (also "llama4"), the o200k pattern (Phi-4-mini, Llama 4): tekken's words, each followed by an
 *        optional case-insensitive contraction, and up to three digits:
 *            [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+
 *                (?i:'s|'t|'re|'ve|'m|'ll|'d)?
 *            | [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*
 *                (?i:'s|'t|'re|'ve|'m|'ll|'d)?
 *            | \p{N}{1,3} | ' '?[^\s\p{L}\p{N}]+[\r\n/]* | \s*[\r\n]+ | \s+(?!\S) | \s+
 *        "gpt-2", the original GPT-2 pattern:
 *            's|'t|'re|'ve|'m|'ll|'d | ' '?\p{L}+ | ' '?\p{N}+ | ' '?[^\s\p{L}\p{N}]+ | \s+(?!\S) | \s+
 *      Default: a missing or unknown tokenizer.ggml.pre gives "llama-bpe" when the vocabulary looks like
 *      Llama 3's (it has a <|begin_of_text|> token or at least 100,000 tokens) and "gpt-2" otherwise, with a
 *      one-line warning through the log callback (vkllm_log_set; stderr by default).
 *      \p{L}, \p{N}, \p{M} and \s are the Unicode General_Category L*, N*, M* and the White_Space property, for
 *      every code point (host/text/unicode.h). The case-insensitive contractions use Unicode simple case folding, which for
 *      these letters means ASCII case plus U+017F (long s) matching 's', as regex engines with Unicode case
 *      folding do. A byte that is not part of well-formed UTF-8 counts as one character of no class (like
 *      punctuation), so any byte string can be encoded.
 *
 *   2. Byte-level BPE per pre-token: each byte is the token of its GPT-2 byte-to-unicode character; then the
 *      adjacent pair with the lowest merge rank (its index in tokenizer.ggml.merges, "left right") is merged,
 *      leftmost first among equal ranks, until no pair has a merge. Candidate pairs live in a min-heap keyed
 *      by (rank, position); entries made stale by an earlier merge are recognised when popped and dropped,
 *      so a pre-token of n bytes costs O(n log n). Pair -> (rank, merged token) is one hash lookup.
 *      For "llama-bpe" and "tekken" a pre-token that is itself a vocabulary token is emitted as is without merging
 *      (the vocabulary's ignore_merges behaviour).
 *
 * Defaults when the file does not say (tokenizer.ggml.add_bos_token etc.): add_bos_token is true for
 * "llama-bpe" and "tekken" and false otherwise; BPE never adds a space prefix. Decoding maps each character of a normal
 * token's string back through the byte-to-unicode table to its byte (characters outside the table are
 * copied as they are), with no leading-space convention. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/text/merge_heap.h"
#include "host/text/tokenizer_impl.h"
#include "host/text/unicode.h"
#include "runtime/log.h"

#define BPE_MAX_MERGES ((uint64_t)1 << 24)
#define BPE_NO_KEY UINT64_MAX

typedef enum bpe_pre {
    BPE_PRE_LLAMA3 = 0,
    BPE_PRE_GPT2 = 1,
    BPE_PRE_QWEN2 = 2,
    BPE_PRE_QWEN35 = 3,
    BPE_PRE_TEKKEN = 4,
    BPE_PRE_GPT4O = 5,
} bpe_pre;

/* What tells the patterns of the Llama 3 shape (llama-bpe, qwen2, qwen35) apart. */
typedef struct bpe_l3_shape {
    int max_digits; /* \p{N}{1,max_digits} */
    unsigned word;  /* the classes of a word run: \p{L}, or [\p{L}\p{M}] */
} bpe_l3_shape;

typedef struct bpe_merge {
    uint64_t key; /* (left id << 32) | right id; BPE_NO_KEY = empty slot */
    uint32_t rank;
    int32_t merged;
} bpe_merge;

typedef struct bpe_state {
    bpe_pre pre;
    bpe_l3_shape shape; /* for the Llama 3 shaped patterns */
    bool ignore_merges;
    int32_t byte_id[256];         /* token of each byte's character; -1 if the vocab lacks it */
    unsigned char byte_chr[256][2]; /* UTF-8 of each byte's character (1 or 2 bytes) */
    uint8_t byte_chr_len[256];
    int16_t cp_byte[0x144];       /* character -> byte; -1 for characters outside the table */
    bpe_merge *merges;
    uint32_t mask;
} bpe_state;

/* ---------------------------------------------------------------- the byte <-> unicode table
 *
 * Printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the other 68 bytes
 * (controls, space, DEL, 0x80..0xA0, soft hyphen) are given U+0100, U+0101, ... in increasing byte order. */

static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

static void build_byte_table(bpe_state *ss)
{
    for (size_t i = 0; i < sizeof ss->cp_byte / sizeof ss->cp_byte[0]; i++)
        ss->cp_byte[i] = -1;
    uint32_t next = 0x100;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_is_printable(b) ? b : next++;
        ss->cp_byte[cp] = (int16_t)b;
        unsigned char u[4];
        ss->byte_chr_len[b] = (uint8_t)vkl_unicode_utf8_encode(cp, u);
        memcpy(ss->byte_chr[b], u, 2);
    }
}

/* ---------------------------------------------------------------- merges */

static inline uint32_t merge_slot(uint64_t key, uint32_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 40) & mask;
}

static inline const bpe_merge *merge_find(const bpe_state *ss, int32_t left, int32_t right)
{
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (uint32_t i = merge_slot(key, ss->mask);; i = (i + 1) & ss->mask) {
        const bpe_merge *m = &ss->merges[i];
        if (m->key == key)
            return m;
        if (m->key == BPE_NO_KEY)
            return NULL;
    }
}

static void bpe_state_free(void *p)
{
    bpe_state *ss = p;
    if (ss)
        free(ss->merges);
    free(ss);
}

static vkllm_status load_merges(tokenizer *t, bpe_state *ss, const gguf_file *f)
{
    static const char KEY[] = "tokenizer.ggml.merges";
    gguf_value_type et;
    uint64_t count;
    if (!vkl_gguf_get_arr_info(f, KEY, &et, &count)) {
        if (vkl_gguf_find_key(f, KEY) >= 0)
            return vkr_error(VKLLM_ERR_FORMAT, "%s is not an array", KEY);
        return vkr_error(VKLLM_ERR_FORMAT, "%s is missing (required by a byte-level BPE vocab)", KEY);
    }
    if (et != GGUF_TYPE_STRING)
        return vkr_error(VKLLM_ERR_FORMAT, "%s is not an array of strings", KEY);
    if (count > BPE_MAX_MERGES)
        return vkr_error(VKLLM_ERR_FORMAT, "%s has %llu entries (limit %llu)", KEY, (unsigned long long)count,
                         (unsigned long long)BPE_MAX_MERGES);
    uint32_t cap = 16;
    while ((uint64_t)cap < count + count / 2 + 1)
        cap *= 2;
    ss->merges = malloc((size_t)cap * sizeof *ss->merges);
    char *joined = malloc((size_t)t->max_len + 1);
    if (!ss->merges || !joined) {
        free(joined);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %llu merges",
                         (unsigned long long)count);
    }
    for (uint32_t i = 0; i < cap; i++)
        ss->merges[i].key = BPE_NO_KEY;
    ss->mask = cap - 1;

    for (uint64_t r = 0; r < count; r++) {
        const char *s;
        uint64_t len;
        if (!vkl_gguf_get_arr_str(f, KEY, r, &s, &len)) {
            free(joined);
            return vkr_error(VKLLM_ERR_FORMAT, "%s[%llu] cannot be read", KEY, (unsigned long long)r);
        }
        /* "left right": the first space after the first byte separates the two tokens */
        const char *sp = len > 1 ? memchr(s + 1, ' ', (size_t)len - 1) : NULL;
        if (!sp || sp + 1 == s + len) {
            free(joined);
            return vkr_error(VKLLM_ERR_FORMAT, "%s[%llu] is not two tokens separated by a space", KEY,
                             (unsigned long long)r);
        }
        size_t llen = (size_t)(sp - s), rlen = (size_t)len - llen - 1;
        if (llen + rlen > t->max_len)
            continue; /* the merged token cannot exist */
        int32_t left = vkl_tok_lookup(t, s, llen);
        int32_t right = vkl_tok_lookup(t, sp + 1, rlen);
        memcpy(joined, s, llen);
        memcpy(joined + llen, sp + 1, rlen);
        int32_t merged = vkl_tok_lookup(t, joined, llen + rlen);
        if (left < 0 || right < 0 || merged < 0)
            continue; /* can never apply */
        uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
        uint32_t i = merge_slot(key, ss->mask);
        while (ss->merges[i].key != BPE_NO_KEY && ss->merges[i].key != key)
            i = (i + 1) & ss->mask;
        if (ss->merges[i].key == key)
            continue; /* a repeated pair keeps its first (lowest) rank */
        ss->merges[i].key = key;
        ss->merges[i].rank = (uint32_t)r;
        ss->merges[i].merged = merged;
    }
    free(joined);
    return VKLLM_OK;
}

/* ---------------------------------------------------------------- decoding hook */

static size_t bpe_decode_piece(const tokenizer *t, int32_t id, char *out)
{
    const bpe_state *ss = t->impl;
    const unsigned char *s = (const unsigned char *)t->text + t->text_off[id];
    size_t len = t->text_len[id], j = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = vkl_unicode_utf8_decode(s + i, len - i, &cp);
        if (cp < sizeof ss->cp_byte / sizeof ss->cp_byte[0] && ss->cp_byte[cp] >= 0) {
            if (out)
                out[j] = (char)ss->cp_byte[cp];
            j++;
        } else {
            if (out)
                memcpy(out + j, s + i, l);
            j += l;
        }
        i += l;
    }
    return j;
}

/* ---------------------------------------------------------------- pre-tokenizers */

enum {
    CL_L = UNICODE_LETTER,
    CL_N = UNICODE_NUMBER,
    CL_S = UNICODE_SPACE,
    CL_M = UNICODE_MARK,
    CL_UP = UNICODE_UPPER,
    CL_LOW = UNICODE_LOWER,
};
/* Punctuation and the rest: a character in none of the classes that make words, numbers or spaces. */
#define CL_OTHER(fl, word) (((fl) & ((word) | CL_N | CL_S)) == 0)

/* Decodes the character at s[i] (i < n): code point (UNICODE_INVALID for a stray byte), class, length. */
static inline size_t chr_at(const unsigned char *s, size_t n, size_t i, uint32_t *cp, unsigned *fl)
{
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        *fl = vkl_unicode_stage2[0][c];
        return 1;
    }
    size_t l = vkl_unicode_utf8_decode(s + i, n - i, cp);
    *fl = unicode_flags(*cp);
    return l;
}

/* End of the run of at most max characters from i whose class has a bit of mask (in_mask) or has none
 * (!in_mask). */
static inline size_t class_run(const unsigned char *s, size_t n, size_t i, unsigned mask, bool in_mask, size_t max)
{
    for (size_t k = 0; k < max && i < n; k++) {
        uint32_t cp;
        unsigned fl;
        size_t l = chr_at(s, n, i, &cp, &fl);
        if (((fl & mask) != 0) != in_mask)
            break;
        i += l;
    }
    return i;
}

/* End of the run of characters starting at i whose class has a bit of mask. */
static size_t run_of(const unsigned char *s, size_t n, size_t i, unsigned mask)
{
    return class_run(s, n, i, mask, true, SIZE_MAX);
}

/* End of the run of CL_OTHER characters (not word, number or space) starting at i. */
static size_t run_of_other(const unsigned char *s, size_t n, size_t i, unsigned word)
{
    return class_run(s, n, i, word | CL_N | CL_S, false, SIZE_MAX);
}

/* ' '?[^\s WORD \p{N}]+ from i (character c0 of class f0) followed by any of the bytes in `trail`: its end, or
 * 0 if there is no such run at i. */
static size_t other_run(const unsigned char *s, size_t n, size_t i, uint32_t c0, unsigned f0, unsigned word,
                        const char *trail)
{
    size_t j = i;
    unsigned fj = f0;
    if (c0 == ' ' && i + 1 < n) {
        uint32_t c1;
        chr_at(s, n, i + 1, &c1, &fj);
        j = i + 1;
    }
    if (!CL_OTHER(fj, word))
        return 0;
    j = run_of_other(s, n, j, word);
    while (j < n && s[j] && strchr(trail, s[j]))
        j++;
    return j;
}

static inline uint32_t fold(uint32_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c + 32;
    if (c == 0x17F) /* LATIN SMALL LETTER LONG S folds to 's' */
        return 's';
    return c;
}

/* The contractions 's 't 'm 'd 're 've 'll after an apostrophe at i-1: the match's end, or 0. */
static size_t contraction(const unsigned char *s, size_t n, size_t i, bool ci)
{
    if (i >= n)
        return 0;
    uint32_t c1, c2;
    unsigned fl;
    size_t l1 = chr_at(s, n, i, &c1, &fl);
    if (ci)
        c1 = fold(c1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
        return i + l1;
    if (i + l1 >= n || (c1 != 'r' && c1 != 'v' && c1 != 'l'))
        return 0;
    size_t l2 = chr_at(s, n, i + l1, &c2, &fl);
    if (ci)
        c2 = fold(c2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return i + l1 + l2;
    return 0;
}

/* The whitespace alternatives from i (a space character): \s*[\r\n]+ if with_newlines, then \s+(?!\S), \s+. */
static size_t match_spaces(const unsigned char *s, size_t n, size_t i, bool with_newlines)
{
    size_t e = i, last = i, nl_end = 0;
    while (e < n) {
        uint32_t cp;
        unsigned fl;
        size_t l = chr_at(s, n, e, &cp, &fl);
        if (!(fl & CL_S))
            break;
        if (cp == '\r' || cp == '\n')
            nl_end = e + l;
        last = e;
        e += l;
    }
    if (e == i)
        return i + 1; /* not reached: the caller only comes here at a space */
    if (with_newlines && nl_end)
        return nl_end; /* \s*[\r\n]+: up to the last line break of the run */
    if (e == n || last == i)
        return e; /* \s+(?!\S) at the end of the text, or \s+ for a single space before text */
    return last;  /* \s+(?!\S): all but the last space, which goes with what follows */
}

/* End of \p{N}{1,max} from i (a number character). */
static size_t digits_end(const unsigned char *s, size_t n, size_t i, int max)
{
    return class_run(s, n, i, CL_N, true, (size_t)max);
}

/* The Llama 3 shaped patterns; `word` is \p{L} or [\p{L}\p{M}], `max_digits` 3 or 1 (see the top). */
static size_t pre_llama3(const unsigned char *s, size_t n, size_t i, bpe_l3_shape shape)
{
    const unsigned word = shape.word;
    uint32_t c0;
    unsigned f0;
    size_t l0 = chr_at(s, n, i, &c0, &f0);
    size_t j;
    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (c0 == '\'' && (j = contraction(s, n, i + 1, true)))
        return j;
    /* [^\r\n\p{L}\p{N}]?WORD+: a word character at i makes the same match with or without the optional one */
    if (f0 & word)
        return run_of(s, n, i + l0, word);
    if (!(f0 & (CL_L | CL_N)) && c0 != '\r' && c0 != '\n' && i + l0 < n) {
        uint32_t c1;
        unsigned f1;
        size_t l1 = chr_at(s, n, i + l0, &c1, &f1);
        if (f1 & word)
            return run_of(s, n, i + l0 + l1, word);
    }
    /* \p{N}{1,max_digits} */
    if (f0 & CL_N)
        return digits_end(s, n, i, shape.max_digits);
    /* ' '?[^\s WORD \p{N}]+[\r\n]* */
    if ((j = other_run(s, n, i, c0, f0, word, "\r\n")))
        return j;
    /* \s*[\r\n]+ | \s+(?!\S) | \s+ */
    if (!(f0 & CL_S))
        return i + l0; /* not reached: every character is a letter, number, space or other */
    return match_spaces(s, n, i, true);
}

static size_t pre_gpt2(const unsigned char *s, size_t n, size_t i)
{
    uint32_t c0;
    unsigned f0;
    chr_at(s, n, i, &c0, &f0);
    size_t j;
    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (c0 == '\'' && (j = contraction(s, n, i + 1, false)))
        return j;
    /* ' '?\p{L}+ | ' '?\p{N}+ | ' '?[^\s\p{L}\p{N}]+ */
    size_t start = i;
    unsigned f = f0;
    if (c0 == ' ' && i + 1 < n) {
        uint32_t c1;
        unsigned f1;
        chr_at(s, n, i + 1, &c1, &f1);
        if (!(f1 & CL_S)) {
            start = i + 1;
            f = f1;
        }
    }
    if (f & CL_L)
        return run_of(s, n, start, CL_L);
    if (f & CL_N)
        return run_of(s, n, start, CL_N);
    if (CL_OTHER(f, CL_L))
        return run_of_other(s, n, start, CL_L);
    /* \s+(?!\S) | \s+ */
    return match_spaces(s, n, i, false);
}

/* Tekken's two case classes: "upper" [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and "lower" [\p{Ll}\p{Lm}\p{Lo}\p{M}]: letters
 * without case (Lm, Lo) and marks are in both. */
static bool tk_upper(unsigned fl) { return (fl & CL_M) || ((fl & CL_L) && !(fl & CL_LOW)); }
static bool tk_lower(unsigned fl) { return (fl & CL_M) || ((fl & CL_L) && !(fl & CL_UP)); }

/* End of the run of "upper" characters from j. *last_both: start of the last character of the run that is
 * also "lower" (Lm, Lo, M), or SIZE_MAX. */
static size_t tk_upper_run(const unsigned char *s, size_t n, size_t j, size_t *last_both)
{
    *last_both = SIZE_MAX;
    while (j < n) {
        uint32_t cp;
        unsigned fl;
        size_t l = chr_at(s, n, j, &cp, &fl);
        if (!tk_upper(fl))
            break;
        if (tk_lower(fl))
            *last_both = j;
        j += l;
    }
    return j;
}

static size_t tk_lower_run(const unsigned char *s, size_t n, size_t j)
{
    while (j < n) {
        uint32_t cp;
        unsigned fl;
        size_t l = chr_at(s, n, j, &cp, &fl);
        if (!tk_lower(fl))
            break;
        j += l;
    }
    return j;
}

/* UPPER*LOWER+ at j, with the regex's backtracking: the longest upper run, then the lower run after it; if
 * none follows, the upper run gives back characters until one that is also lower can start LOWER+ (the
 * characters after it in the run are upper only, so that one is all of LOWER+). The end, or 0. */
static size_t tk_word_lower(const unsigned char *s, size_t n, size_t j)
{
    size_t last_both;
    size_t r = tk_upper_run(s, n, j, &last_both);
    size_t e = tk_lower_run(s, n, r);
    if (e > r)
        return e;
    if (last_both == SIZE_MAX)
        return 0;
    uint32_t cp;
    unsigned fl;
    return last_both + chr_at(s, n, last_both, &cp, &fl);
}

/* UPPER+LOWER* at j: the end, or 0. */
static size_t tk_word_upper(const unsigned char *s, size_t n, size_t j)
{
    size_t last_both;
    size_t r = tk_upper_run(s, n, j, &last_both);
    return r > j ? tk_lower_run(s, n, r) : 0;
}

/* tekken, and with o200k the gpt-4o pattern (contraction suffixes, three digits). */
static size_t pre_tekken(const unsigned char *s, size_t n, size_t i, bool o200k)
{
    uint32_t c0;
    unsigned f0;
    size_t l0 = chr_at(s, n, i, &c0, &f0);
    size_t j, k;
    /* [^\r\n\p{L}\p{N}]?UPPER*LOWER+ | [^\r\n\p{L}\p{N}]?UPPER+LOWER*, each first with the optional character;
     * o200k: each then takes (?i:'s|'t|'re|'ve|'m|'ll|'d)? */
    bool prefix = !(f0 & (CL_L | CL_N)) && c0 != '\r' && c0 != '\n' && i + l0 < n;
    if ((prefix && (j = tk_word_lower(s, n, i + l0))) || (j = tk_word_lower(s, n, i)) ||
        (prefix && (j = tk_word_upper(s, n, i + l0))) || (j = tk_word_upper(s, n, i)))
        return o200k && j < n && s[j] == '\'' && (k = contraction(s, n, j + 1, true)) ? k : j;
    /* \p{N} | \p{N}{1,3} */
    if (f0 & CL_N)
        return digits_end(s, n, i, o200k ? 3 : 1);
    /* ' '?[^\s\p{L}\p{N}]+[\r\n/]* (marks count as punctuation here) */
    if ((j = other_run(s, n, i, c0, f0, CL_L, "\r\n/")))
        return j;
    if (!(f0 & CL_S))
        return i + l0; /* not reached: every character is a letter, number, space or other */
    return match_spaces(s, n, i, true);
}

/* ---------------------------------------------------------------- BPE on one pre-token */

typedef struct bpe_sym {
    int32_t id; /* -1: a byte without a token; -2: merged into its left neighbour */
    int32_t prev, next;
} bpe_sym;


typedef struct bpe_work {
    bpe_sym *sym;
    size_t sym_cap;
    merge_heap heap;   /* candidates: aux = {left id, right id, merged id} */
    char *map; /* the pre-token written in byte-to-unicode characters */
    size_t map_cap;
} bpe_work;

static vkllm_status try_pair(const bpe_state *ss, bpe_work *w, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return VKLLM_OK;
    int32_t a = w->sym[left].id, b = w->sym[right].id;
    if (a < 0 || b < 0)
        return VKLLM_OK;
    const bpe_merge *m = merge_find(ss, a, b);
    if (!m)
        return VKLLM_OK;
    merge_cand c = {merge_key_rank(m->rank, left), left, right, {a, b, m->merged}};
    return vkl_merge_heap_push(&w->heap, &c);
}

static vkllm_status emit_byte(const tokenizer *t, const bpe_state *ss, unsigned char b, tok_ids *out)
{
    int32_t id = ss->byte_id[b] >= 0 ? ss->byte_id[b] : t->unk;
    if (id < 0)
        return vkr_error(VKLLM_ERR_UNSUPPORTED,
                         "cannot encode byte 0x%02X: the vocabulary has neither a token for it nor an unknown token",
                         b);
    return vkl_tok_ids_push(out, id);
}

static vkllm_status bpe_word(const tokenizer *t, const bpe_state *ss, bpe_work *w, const unsigned char *s, size_t n,
                             tok_ids *out)
{
    vkllm_status st;
    if (n <= 1)
        return n ? emit_byte(t, ss, s[0], out) : VKLLM_OK;

    if (ss->ignore_merges && n <= t->max_len) { /* the characters take n..2n bytes */
        if (w->map_cap < n * 2) {
            size_t cap = n * 2 > 256 ? n * 2 : 256;
            char *m = realloc(w->map, cap);
            if (!m)
                return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
            w->map = m;
            w->map_cap = cap;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            w->map[k] = (char)ss->byte_chr[s[i]][0];
            if (ss->byte_chr_len[s[i]] == 2)
                w->map[k + 1] = (char)ss->byte_chr[s[i]][1];
            k += ss->byte_chr_len[s[i]];
        }
        int32_t id = vkl_tok_lookup(t, w->map, k);
        if (id >= 0)
            return vkl_tok_ids_push(out, id);
    }

    if (w->sym_cap < n) {
        size_t cap = n > 64 ? n : 64;
        bpe_sym *v = realloc(w->sym, cap * sizeof *v);
        if (!v)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
        w->sym = v;
        w->sym_cap = cap;
    }
    for (size_t i = 0; i < n; i++) {
        w->sym[i].id = ss->byte_id[s[i]];
        w->sym[i].prev = (int32_t)i - 1;
        w->sym[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    w->heap.n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((st = try_pair(ss, w, (int32_t)i, (int32_t)i + 1)))
            return st;
    while (w->heap.n > 0) {
        merge_cand c = vkl_merge_heap_pop(&w->heap);
        bpe_sym *l = &w->sym[c.left], *r = &w->sym[c.right];
        /* A symbol's start never moves and its token fixes its length, so unchanged ids on both sides mean
         * the pair is still there. */
        if (l->id != c.aux[0] || r->id != c.aux[1])
            continue;
        l->id = c.aux[2];
        r->id = -2;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = c.left;
        if ((st = try_pair(ss, w, l->prev, c.left)) || (st = try_pair(ss, w, c.left, l->next)))
            return st;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        st = w->sym[i].id >= 0 ? vkl_tok_ids_push(out, w->sym[i].id) : emit_byte(t, ss, s[i], out);
        if (st)
            return st;
    }
    return VKLLM_OK;
}

size_t vkl_bpe_pre_next(const tokenizer *t, const char *text, size_t len, size_t i)
{
    const bpe_state *ss = t->impl;
    const unsigned char *s = (const unsigned char *)text;
    switch (ss->pre) {
    case BPE_PRE_GPT2:
        return pre_gpt2(s, len, i);
    case BPE_PRE_TEKKEN:
    case BPE_PRE_GPT4O:
        return pre_tekken(s, len, i, ss->pre == BPE_PRE_GPT4O);
    default:
        return pre_llama3(s, len, i, ss->shape);
    }
}

static vkllm_status bpe_encode_fragment(const tokenizer *t, const char *text, size_t len, bool after_special,
                                        tok_ids *out)
{
    (void)after_special; /* byte-level BPE adds no space prefix */
    const bpe_state *ss = t->impl;
    const unsigned char *s = (const unsigned char *)text;
    bpe_work w = {0};
    vkllm_status st = VKLLM_OK;
    for (size_t i = 0; i < len;) {
        size_t end = vkl_bpe_pre_next(t, text, len, i);
        if ((st = bpe_word(t, ss, &w, s + i, end - i, out)))
            break;
        i = end;
    }
    free(w.sym);
    free(w.heap.v);
    free(w.map);
    return st;
}

/* ---------------------------------------------------------------- init */

static bool str_is(const char *s, uint64_t len, const char *lit)
{
    return len == strlen(lit) && !memcmp(s, lit, (size_t)len);
}

static void printable(char *dst, size_t cap, const char *s, uint64_t len)
{
    size_t j = 0;
    for (uint64_t i = 0; i < len && j + 4 < cap; i++)
        dst[j++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    if (j + 4 >= cap && len > j)
        memcpy(dst + j, "...", 3), j += 3;
    dst[j] = '\0';
}

vkllm_status vkl_bpe_init(tokenizer *t, const gguf_file *f)
{
    bpe_state *ss = calloc(1, sizeof *ss);
    if (!ss)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
    vkllm_status st = load_merges(t, ss, f);
    if (st) {
        bpe_state_free(ss);
        return st;
    }

    /* pre-tokenizer */
    const char *pre;
    uint64_t pre_len;
    bool have_pre = vkl_gguf_get_str(f, "tokenizer.ggml.pre", &pre, &pre_len);
    if (have_pre && (str_is(pre, pre_len, "llama-bpe") || str_is(pre, pre_len, "llama3") ||
                     str_is(pre, pre_len, "llama-v3"))) {
        ss->pre = BPE_PRE_LLAMA3;
    } else if (have_pre && str_is(pre, pre_len, "gpt-2")) {
        ss->pre = BPE_PRE_GPT2;
    } else if (have_pre && (str_is(pre, pre_len, "qwen2") || str_is(pre, pre_len, "stablelm2"))) {
        ss->pre = BPE_PRE_QWEN2;
    } else if (have_pre && str_is(pre, pre_len, "qwen35")) {
        ss->pre = BPE_PRE_QWEN35;
    } else if (have_pre && str_is(pre, pre_len, "tekken")) {
        ss->pre = BPE_PRE_TEKKEN;
    } else if (have_pre && (str_is(pre, pre_len, "gpt-4o") || str_is(pre, pre_len, "llama4"))) {
        ss->pre = BPE_PRE_GPT4O;
    } else {
        bool llama3_like = t->n_vocab >= 100000 || vkl_tok_lookup(t, "<|begin_of_text|>", 17) >= 0;
        ss->pre = llama3_like ? BPE_PRE_LLAMA3 : BPE_PRE_GPT2;
        const char *used = llama3_like ? "llama-bpe" : "gpt-2";
        if (have_pre) {
            char name[48];
            printable(name, sizeof name, pre, pre_len);
            vkr_log(VKLLM_LOG_WARNING, "tokenizer.ggml.pre \"%s\" is not known; using the %s pre-tokenizer", name,
                    used);
        } else {
            vkr_log(VKLLM_LOG_WARNING, "tokenizer.ggml.pre is missing; using the %s pre-tokenizer", used);
        }
    }
    ss->ignore_merges = ss->pre == BPE_PRE_LLAMA3 || ss->pre == BPE_PRE_TEKKEN;
    ss->shape.max_digits = ss->pre == BPE_PRE_LLAMA3 ? 3 : 1;
    ss->shape.word = ss->pre == BPE_PRE_QWEN35 ? CL_L | CL_M : CL_L;

    build_byte_table(ss);
    for (int b = 0; b < 256; b++)
        ss->byte_id[b] = vkl_tok_lookup(t, (const char *)ss->byte_chr[b], ss->byte_chr_len[b]);

    /* defaults that differ from SentencePiece's */
    if (vkl_gguf_find_key(f, "tokenizer.ggml.add_bos_token") < 0)
        t->add_bos = ss->pre == BPE_PRE_LLAMA3 || ss->pre == BPE_PRE_TEKKEN;
    t->add_space_prefix = false;

    t->impl = ss;
    t->impl_free = bpe_state_free;
    t->encode_fragment = bpe_encode_fragment;
    t->decode_piece = bpe_decode_piece;
    return VKLLM_OK;
}
