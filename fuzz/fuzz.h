/* libFuzzer targets (fuzz/fuzz_*.c) and what they share. Each target defines the two libFuzzer entry
 * points; the same file is linked either with libFuzzer (VKLLM_FUZZ=ON, clang) or with replay_main.c,
 * which feeds it every file of the committed corpus and regression inputs (a ctest test in every build).
 *
 * A target must never crash, leak or trip a sanitizer, whatever the input. Properties it checks beyond
 * that (ids in range, ...) fail through FUZZ_ASSERT, which prints the condition and aborts: libFuzzer
 * then saves the input as a crash file. */
#ifndef VKLLM_FUZZ_H
#define VKLLM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "host/text/tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                        \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

/* Small fixed vocabularies, written to a temporary GGUF file with the GGUF writer and loaded back on
 * first use (no vocabulary file is committed; fuzz/common.c is the whole definition):
 *   FUZZ_VOCAB_SPM        SentencePiece: byte fallback, control/user-defined/unused/unknown tokens,
 *                         multi-byte pieces
 *   FUZZ_VOCAB_BPE_LLAMA3 byte-level BPE, pre-tokenizer "llama-bpe", Llama 3 style special tokens
 *   FUZZ_VOCAB_BPE_GPT2   the same tokens and merges with pre-tokenizer "gpt-2" and <|endoftext|>
 *   FUZZ_VOCAB_BPE_QWEN35 the same with pre-tokenizer "qwen35" (combining marks join words), ChatML tokens
 * Returns NULL (message on stderr) if one cannot be built: a bug in the code under test. */
typedef enum fuzz_vocab {
    FUZZ_VOCAB_SPM = 0,
    FUZZ_VOCAB_BPE_LLAMA3,
    FUZZ_VOCAB_BPE_GPT2,
    FUZZ_VOCAB_BPE_QWEN35,
    FUZZ_VOCAB_COUNT,
} fuzz_vocab;
const tokenizer *fuzz_tokenizer(fuzz_vocab v);
/* GPT-2's byte-to-unicode character of byte b (how byte-level BPE vocabularies spell bytes), UTF-8. */
void fuzz_bpe_byte_char(int b, char out[3]);
/* Builds every vocabulary above (for LLVMFuzzerInitialize, so that inputs find them ready); aborts if one
 * cannot be built. */
void fuzz_build_tokenizers(void);

/* Encodes/decodes with every flag combination that the first bytes select and checks the basic
 * properties: every id in range, decode and the streaming detokenizer agree. Shared by the tokenizer and
 * GGUF targets (the latter on tokenizers loaded from fuzzed metadata). */
void fuzz_exercise_tokenizer(const tokenizer *t, const uint8_t *text, size_t len, unsigned flags);

#endif
