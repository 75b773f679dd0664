/* vkllm_token_piece on stories260K (a SentencePiece vocabulary with byte tokens): the pieces of a
 * tokenized text concatenate to the text with the encoder's leading space kept, a newline comes from its
 * byte token, BOS has no bytes, a too-small buffer is measured and left alone, a bad id is an error. */
#include <string.h>

#include "util.h"
#include "vkllm.h"

int main(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    vkllm_model *m;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        fprintf(stderr, "FAIL: %s\n", vkllm_last_error());
        return 1;
    }

    /* The encoder writes "▁Once▁upon..." for this text: every piece keeps its space, the first one too. */
    const char *text = "Once upon a time\nLily";
    const char *expect = " Once upon a time\nLily";
    int32_t *ids;
    size_t n;
    CHECK(vkllm_tokenize(m, text, strlen(text), false, false, &ids, &n) == VKLLM_OK, "%s", vkllm_last_error());
    char joined[256], piece[64];
    size_t used = 0, len;
    bool byte_token_seen = false;
    for (size_t i = 0; i < n; i++) {
        memset(piece, 0x5a, sizeof piece);
        CHECK(vkllm_token_piece(m, ids[i], NULL, 0, &len) == VKLLM_OK, "measuring token %d", ids[i]);
        size_t measured = len;
        CHECK(vkllm_token_piece(m, ids[i], piece, sizeof piece, &len) == VKLLM_OK && len == measured,
              "token %d: %zu bytes written, %zu measured", ids[i], len, measured);
        if (len > 1) {   /* one byte short: only the length comes back */
            char small[64];
            memset(small, 0x5a, sizeof small);
            CHECK(vkllm_token_piece(m, ids[i], small, len - 1, &len) == VKLLM_OK && len == measured &&
                      (unsigned char)small[0] == 0x5a,
                  "token %d with a buffer one byte short", ids[i]);
        }
        if (len == 1 && piece[0] == '\n')
            byte_token_seen = true;
        if (used + len < sizeof joined) {
            memcpy(joined + used, piece, len);
            used += len;
        }
    }
    joined[used] = '\0';
    CHECK(strcmp(joined, expect) == 0, "pieces joined: \"%s\", expected \"%s\"", joined, expect);
    CHECK(byte_token_seen, "no piece was the newline byte");
    vkllm_free(ids);

    CHECK(vkllm_token_piece(m, vkllm_token_bos(m), piece, sizeof piece, &len) == VKLLM_OK && len == 0,
          "BOS: %zu bytes", len);
    CHECK(vkllm_token_piece(m, (int32_t)vkllm_model_n_vocab(m), piece, sizeof piece, &len) ==
              VKLLM_ERR_INVALID_ARGUMENT && strstr(vkllm_last_error(), "out of range"),
          "an id past the vocabulary: %s", vkllm_last_error());
    CHECK(vkllm_token_piece(m, -1, piece, sizeof piece, &len) == VKLLM_ERR_INVALID_ARGUMENT, "id -1");
    CHECK(vkllm_token_piece(m, 0, NULL, 0, NULL) == VKLLM_ERR_INVALID_ARGUMENT, "NULL len");
    vkllm_model_free(m);
    return test_finish("token_piece");
}
