/* Checks shared by the tokenizer tests (test_tokenizer_bpe.c, test_tokenizer_spm.c): encode, round trips
 * through decode and the streaming detokenizer, expected ids and text, llama.cpp's vocab test vectors, and
 * loading a vocabulary written by the test. Failures are CHECKed (counted and printed). */
#ifndef VKLLM_TOKENIZER_CHECK_H
#define VKLLM_TOKENIZER_CHECK_H

#include "host/format/gguf.h"
#include "host/text/tokenizer.h"
#include "util.h"

/* Counts a failure `what` and prints the text wanted and the text got (escaped). */
void tok_fail_text(const char *what, const char *want, size_t n_want, const char *got, size_t n_got);

/* vkl_tokenizer_encode, its failure counted; true with *ids set (free it) if it worked. */
bool tok_encode(const tokenizer *tok, const char *s, size_t n, bool add_special, bool parse_special, int32_t **ids,
                size_t *n_ids);

/* Encodes s[0..n) (no BOS/EOS, no special parsing), checks every id is in range, decodes, and checks the
 * text comes back byte for byte, and that the stream (pushed one token at a time, then flushed) gives the
 * decoded text. check_chunks (for valid UTF-8 input): no streamed chunk splits a character. */
bool tok_round_trip(const tokenizer *tok, const char *s, size_t n, bool check_chunks);

void tok_expect_ids(const tokenizer *tok, const char *s, size_t n, bool add_special, bool parse_special,
                    const int32_t *want, size_t n_want);
/* TOK_EXPECT_IDS(tok, "text", add_special, parse_special, id, id, ...) */
#define TOK_EXPECT_IDS(tok, s, add, parse, ...)                                                         \
    tok_expect_ids(tok, s, strlen(s), add, parse, (const int32_t[]){__VA_ARGS__},                       \
                   sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

void tok_expect_decode(const tokenizer *tok, const int32_t *ids, size_t n, bool special, const char *want);

/* llama.cpp's test vectors of a vocab file: VOCAB.inp (strings between "\n__ggml_vocab_test__\n" lines) and
 * VOCAB.out (one line of ids each). Every string must encode to its ids exactly, with add_special and
 * parse_special to the BOS (where the vocab adds one) and the same ids, and round trip (check_chunks). */
void tok_check_vectors(const tokenizer *tok, const char *vocab_path);

/* Writes a GGUF file of tokenizer keys only (write_keys(w, spec) adds them) under VKLLM_TEST_TMP as `name`,
 * loads its tokenizer into *tok and removes the file. Returns the first error (writing is CHECKed; the
 * load's error is the caller's to expect), with *tok NULL. */
vkllm_status tok_load_written(const char *name, vkllm_status (*write_keys)(gguf_writer *w, const void *spec),
                              const void *spec, tokenizer **tok);

#endif
