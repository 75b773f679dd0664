/* Internals shared by the tokenizer front end (host/text/tokenizer.c) and the per-algorithm encoders.
 * Not part of the public interface: include host/text/tokenizer.h instead.
 *
 * How an algorithm plugs in (byte-level BPE, host/text/tokenizer_bpe.c, is the next one):
 *   - tokenizer.c reads everything common (tokens, types, scores, special ids, the string -> id table,
 *     the list of tokens matched verbatim) and then calls the algorithm's init for its kind; the init
 *     reads what else it needs (e.g. tokenizer.ggml.merges), stores its state in t->impl / t->impl_free,
 *     and sets t->encode_fragment;
 *   - vkl_tokenizer_encode splits the input at special tokens (common code) and calls encode_fragment once per
 *     stretch of ordinary text, in order;
 *   - decoding is common, driven by the token types; an algorithm may set `decode_piece` to render its
 *     normal tokens (byte-level BPE maps its byte-to-unicode characters back to bytes). */
#ifndef VKLLM_TOKENIZER_IMPL_H
#define VKLLM_TOKENIZER_IMPL_H

#include "host/text/tokenizer.h"

/* A growable array of token ids (the output of encoding). */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;
vkllm_status vkl_tok_ids_push(tok_ids *ids, int32_t id);

/* Encodes one stretch of text that contains no special token. after_special: it starts the text or
 * follows a special token (SentencePiece then prepends a space when add_space_prefix is set). */
typedef vkllm_status (*tok_encode_fragment_fn)(const tokenizer *t, const char *text, size_t len,
                                               bool after_special, tok_ids *out);

/* Renders a TOKEN_TYPE_NORMAL token into out (NULL: only measure) and returns the byte count, which must not
 * exceed the length of the token's string. NULL: SentencePiece's rendering (U+2581 becomes a space). */
typedef size_t (*tok_decode_piece_fn)(const tokenizer *t, int32_t id, char *out);

enum {
    TOK_FLAG_EOG = 1,
    TOK_FLAG_RSTRIP = 2, /* when matched as a special token, the whitespace after it is dropped (Phi-3) */
};

struct tokenizer {
    tokenizer_kind kind;
    int32_t n_vocab;
    char *text;              /* every token string back to back */
    size_t *text_off;        /* [n_vocab] */
    uint32_t *text_len;      /* [n_vocab] */
    float *scores;           /* [n_vocab]; 0 where the file has none */
    uint8_t *type;           /* [n_vocab] token_type */
    uint8_t *flags;          /* [n_vocab] TOK_FLAG_* */
    uint8_t *byte_value;     /* [n_vocab] the byte of a TOKEN_TYPE_BYTE token */
    int32_t byte_token[256]; /* id of <0xNN>, -1 if the vocab has none */
    uint32_t max_len;        /* longest token string, bytes */
    int32_t bos, eos, unk, pad, eot, eom;
    bool add_bos, add_eos, add_space_prefix;

    /* token string -> id: open addressing, power-of-two size, -1 = empty */
    uint32_t hash_mask;
    int32_t *hash_id;
    uint32_t *hash_tag;

    /* CONTROL, UNKNOWN and USER_DEFINED tokens with a non-empty string, longest first */
    int32_t *special;
    size_t n_special;

    tok_encode_fragment_fn encode_fragment;
    tok_decode_piece_fn decode_piece; /* optional */
    void *impl;
    void (*impl_free)(void *impl);
};

/* Id of the token with string s[0..len), or -1. */
int32_t vkl_tok_lookup(const tokenizer *t, const char *s, size_t len);

/* Byte-level BPE (host/text/tokenizer_bpe.c): reads tokenizer.ggml.pre and tokenizer.ggml.merges, sets impl,
 * encode_fragment and decode_piece, and the BPE defaults (add_space_prefix off, add_bos_token). */
vkllm_status vkl_bpe_init(tokenizer *t, const gguf_file *f);
/* Where the pre-token that starts at i (< len) of a stretch of text ends, for a byte-level BPE tokenizer
 * (exposed for tests). */
size_t vkl_bpe_pre_next(const tokenizer *t, const char *text, size_t len, size_t i);

#endif
