/* Fuzz target: the tokenizers on arbitrary bytes.
 *
 * Input: byte 0 chooses the vocabulary (bits 0-1: SentencePiece, BPE llama-bpe, BPE gpt-2, BPE qwen35) and
 * the flags (bit 2 add_special, bit 3 parse_special, bit 4 special rendering when decoding); the rest is the
 * text to encode, and the same bytes read as little-endian int32 token ids to decode. See fuzz_exercise_tokenizer (fuzz/common.c) for the properties checked. */
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_build_tokenizers();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const tokenizer *t = fuzz_tokenizer((fuzz_vocab)(data[0] & 3));
    if (!t)
        abort();
    fuzz_exercise_tokenizer(t, data + 1, size - 1, data[0] >> 2);
    return 0;
}
