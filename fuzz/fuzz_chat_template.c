/* Fuzz target: chat templates (host/text/chat_template.h) on arbitrary conversations and template texts.
 *
 * Input: byte 0 picks the format (a value past the last one tests the invalid-kind error), byte 1 the
 * flags (bit 0 add_assistant, bits 1-2 the tokenizer, bits 3-7 `from`); the rest is split at NUL bytes
 * into messages, each a role byte (0 system, 1 user, 2 assistant, 3 an invalid role, others user) and the
 * content. The whole input is also given to vkl_chat_template_detect as a Jinja template text.
 * Checked: no crash/leak; a valid request succeeds; formatting from message k gives a suffix of
 * formatting from 0; tokenizing succeeds exactly when formatting does, with every id in range. */
#include <string.h>

#include "fuzz.h"
#include "host/text/chat_template.h"

#define MAX_MESSAGES 32

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_build_tokenizers();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int detected = vkl_chat_template_detect((const char *)data, size);
    FUZZ_ASSERT(detected >= -1 && detected < CHAT_TEMPLATE_COUNT);
    if (size < 2)
        return 0;
    int kind_sel = data[0] % (CHAT_TEMPLATE_COUNT + 1);
    chat_template_kind kind = kind_sel == CHAT_TEMPLATE_COUNT ? (chat_template_kind)99 : (chat_template_kind)kind_sel;
    bool add_assistant = data[1] & 1;
    const tokenizer *tok = fuzz_tokenizer((fuzz_vocab)((data[1] >> 1) & 3));
    FUZZ_ASSERT(tok != NULL);

    /* A NUL-terminated copy to split into contents. */
    size_t n_body = size - 2;
    char *body = malloc(n_body + 1);
    if (!body)
        return 0;
    memcpy(body, data + 2, n_body);
    body[n_body] = '\0';
    static const char *const roles[] = {"system", "user", "assistant", "tool"};
    vkllm_chat_message msgs[MAX_MESSAGES];
    size_t n = 0;
    bool valid_roles = true;
    for (size_t i = 0; i < n_body && n < MAX_MESSAGES;) {
        unsigned char r = (unsigned char)body[i];
        const char *content = body + i + 1; /* at most body + n_body, the final NUL */
        size_t clen = strlen(content);
        msgs[n].role = roles[r < 4 ? r : 1];
        msgs[n].content = content;
        valid_roles = valid_roles && r != 3;
        n++;
        i += 1 + clen + 1; /* role byte, content, separating NUL */
    }
    size_t from = n ? (size_t)(data[1] >> 3) % (n + 2) : (size_t)(data[1] >> 3) % 2;
    bool valid = valid_roles && kind_sel < CHAT_TEMPLATE_COUNT && from <= n;

    char *text = NULL, *full = NULL;
    size_t len = 0, full_len = 0;
    vkllm_status st = vkl_chat_format(kind, msgs, n, from, add_assistant, &text, &len);
    FUZZ_ASSERT((st == VKLLM_OK) == valid);
    FUZZ_ASSERT(st == VKLLM_OK || st == VKLLM_ERR_INVALID_ARGUMENT);
    if (st == VKLLM_OK) {
        FUZZ_ASSERT(text != NULL && text[len] == '\0');
        if (vkl_chat_format(kind, msgs, n, 0, add_assistant, &full, &full_len) == VKLLM_OK) {
            FUZZ_ASSERT(full_len >= len && !memcmp(full + full_len - len, text, len));
            free(full);
        } else {
            FUZZ_ASSERT(0 && "formatting from 0 failed where formatting from k succeeded");
        }
    }
    free(text);

    int32_t *ids = NULL;
    size_t n_ids = 0;
    vkllm_status st2 = vkl_chat_tokenize(tok, kind, msgs, n, from, add_assistant, &ids, &n_ids);
    FUZZ_ASSERT((st2 == VKLLM_OK) == (st == VKLLM_OK));
    if (st2 == VKLLM_OK) {
        FUZZ_ASSERT(ids != NULL);
        for (size_t i = 0; i < n_ids; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vkl_tokenizer_n_vocab(tok));
    }
    free(ids);
    free(body);
    return 0;
}
