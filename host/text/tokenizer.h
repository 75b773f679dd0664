/* Tokenizer: text <-> token ids, loaded from a GGUF's tokenizer.ggml.* metadata.
 *
 * One opaque object behind one interface; the algorithm is picked by tokenizer.ggml.model:
 *   "llama" -> SentencePiece (score-driven pair merges with byte fallback), in host/text/tokenizer.c;
 *   "gpt2"  -> byte-level BPE (GPT-2, Llama 3, Qwen; pre-tokenizer from tokenizer.ggml.pre), in
 *              host/text/tokenizer_bpe.c behind host/text/tokenizer_impl.h.
 * The object owns copies of everything it needs: the gguf_file may be closed after vkl_tokenizer_load.
 * A loaded tokenizer is read-only, so one object may be used from several threads at once.
 *
 * Token ids are int32_t; "no such token" (e.g. a model without a padding token) is -1. */
#ifndef VKLLM_TOKENIZER_H
#define VKLLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/format/gguf.h"
#include "runtime/error.h"

typedef struct tokenizer tokenizer;

typedef enum tokenizer_kind {
    TOKENIZER_SPM = 0,   /* tokenizer.ggml.model = "llama" */
    TOKENIZER_BPE = 1,   /* tokenizer.ggml.model = "gpt2" */
} tokenizer_kind;

/* tokenizer.ggml.token_type values, as GGUF numbers them. */
typedef enum token_type {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,       /* <s>, </s>, <|eot_id|>, ... */
    TOKEN_TYPE_USER_DEFINED = 4,  /* always matched verbatim in the input, never merged into */
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,          /* <0xNN>: one raw byte */
} token_type;

/* Reads tokenizer.ggml.model, .tokens, .scores, .token_type and the optional
 * bos/eos/unknown/padding/eot/eom token ids, add_bos_token, add_eos_token, add_space_prefix.
 * Defaults for SentencePiece: bos 1, eos 2, unknown 0, no padding, add_bos_token true,
 * add_eos_token false, add_space_prefix true. Byte-level BPE (which also reads tokenizer.ggml.merges and
 * tokenizer.ggml.pre): no bos/eos/unknown unless given, add_bos_token true only for the "llama-bpe" and
 * "tekken" pre-tokenizers, never a space prefix. An id of 0xFFFFFFFF (or -1) means "none".
 * Errors: VKLLM_ERR_FORMAT for missing/mistyped/mismatched arrays or ids out of range,
 * VKLLM_ERR_UNSUPPORTED for a tokenizer model we do not implement. */
vkllm_status vkl_tokenizer_load(const gguf_file *f, tokenizer **out);
void vkl_tokenizer_free(tokenizer *t);

tokenizer_kind vkl_tokenizer_get_kind(const tokenizer *t);
int32_t vkl_tokenizer_n_vocab(const tokenizer *t);
int32_t vkl_tokenizer_bos(const tokenizer *t);   /* -1 if none */
int32_t vkl_tokenizer_eos(const tokenizer *t);   /* -1 if none */
int32_t vkl_tokenizer_unk(const tokenizer *t);   /* -1 if none */
int32_t vkl_tokenizer_pad(const tokenizer *t);   /* -1 if none */
bool vkl_tokenizer_adds_bos(const tokenizer *t); /* what add_special does at the start */
bool vkl_tokenizer_adds_eos(const tokenizer *t); /* ... and at the end */
/* End of generation: EOS, EOT/EOM (tokenizer.ggml.eot_token_id/eom_token_id) and control tokens that
 * conventionally end a turn (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...). */
bool vkl_tokenizer_is_eog(const tokenizer *t, int32_t id);
/* Whether text after this token, when it is matched as a special token, loses its leading whitespace (the
 * rstrip of Phi-3's special tokens; see vkl_tokenizer_encode). */
bool vkl_tokenizer_token_rstrip(const tokenizer *t, int32_t id);
/* Type of a token, or -1 if id is out of range. */
int vkl_tokenizer_token_type(const tokenizer *t, int32_t id);
/* The vocabulary string of a token (not NUL-terminated, may contain any bytes; "▁" not replaced),
 * or NULL if id is out of range. Valid while t lives. */
const char *vkl_tokenizer_token_text(const tokenizer *t, int32_t id, size_t *len);
/* Id of the token whose vocabulary string is exactly s[0..len), or -1. */
int32_t vkl_tokenizer_find_token(const tokenizer *t, const char *s, size_t len);

/* Encodes len bytes of text (any bytes: invalid UTF-8 is encoded byte by byte, NULs included).
 * add_special: add BOS/EOS as the metadata says (vkl_tokenizer_adds_bos/eos).
 * parse_special: control/unknown tokens written in the text ("<s>") become those tokens; without it
 *   they are ordinary text. User-defined tokens are always matched, as llama.cpp does. In a Phi-3 vocabulary
 *   (general.name contains "phi3"/"phi-3", as llama.cpp checks) a matched special token other than <unk>, <s>
 *   and <|endoftext|> drops the whitespace after it, as Phi-3's tokenizer does: "<|user|>\nHi" is <|user|> ▁Hi.
 * On success *ids is a malloc'ed array (never NULL, free with free()) of *n_ids ids.
 * Matches llama.cpp's tokenize() for SentencePiece vocabularies. */
vkllm_status vkl_tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t **ids, size_t *n_ids);

/* The bytes token `id` stands for: "▁" becomes a space, <0xNN> the raw byte, control/unknown/unused
 * tokens nothing (use vkl_tokenizer_token_text to show them). Not NUL-terminated.
 * Returns the number of bytes written (>= 0); if cap is too small, -(bytes needed) and nothing is written;
 * TOKENIZER_BAD_ID (with a message stored) if id is out of range. The leading-space convention is not
 * applied here (see vkl_tokenizer_decode / tokenizer_stream). */
#define TOKENIZER_BAD_ID INT32_MIN
int32_t vkl_tokenizer_token_to_piece(const tokenizer *t, int32_t id, char *buf, size_t cap);
/* Longest piece any token can produce, in bytes (in either rendering). */
size_t vkl_tokenizer_max_piece_len(const tokenizer *t);

/* Decodes a whole sequence into a malloc'ed NUL-terminated string (*len excludes the NUL): pieces
 * concatenated, with the space that the encoder prepends (add_space_prefix) dropped from the first
 * text piece and from the first text piece after a control or user-defined token (the encoder adds it
 * after those too). special: control/unknown tokens are written as their text ("<s>") instead of nothing.
 * VKLLM_ERR_INVALID_ARGUMENT for an id out of range.
 * decode(encode(s, add_special, parse_special=false)) == s for every byte string s that does not contain
 * U+2581 "▁" itself (SentencePiece reads it as a space), that the vocabulary can spell (byte fallback), and
 * (Phi-3) has no whitespace after a user-defined token such as "</s>". */
vkllm_status vkl_tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n_ids, bool special, char **text,
                              size_t *len);

/* Streaming detokenizer for generation: feed tokens one at a time, get the bytes ready to print.
 * Same conventions as vkl_tokenizer_decode, and bytes of an incomplete UTF-8 sequence at the end of a piece
 * are held back until the following pieces complete it (bytes that cannot become valid UTF-8 are passed
 * through unchanged, so the concatenated output equals vkl_tokenizer_decode's). Never allocates after create. */
typedef struct tokenizer_stream tokenizer_stream;
vkllm_status vkl_tokenizer_stream_create(const tokenizer *t, bool special, tokenizer_stream **out);
void vkl_tokenizer_stream_free(tokenizer_stream *s);
/* at_start: the next token starts a text, so the encoder's space prefix is dropped from it. Use true when
 * the stream will see the prompt's tokens (created streams start this way); use false to stream only
 * generated tokens that continue a prompt printed some other way. Discards held-back bytes. */
void vkl_tokenizer_stream_reset(tokenizer_stream *s, bool at_start);
/* *text points to an internal buffer valid until the next call on s; *len may be 0. */
vkllm_status vkl_tokenizer_stream_push(tokenizer_stream *s, int32_t id, const char **text, size_t *len);
/* Returns any held-back bytes (an incomplete sequence at the end of the text). */
void vkl_tokenizer_stream_flush(tokenizer_stream *s, const char **text, size_t *len);

#endif
