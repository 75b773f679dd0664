/* Chat templates: detection from a Jinja source, rendering, and injection-safe tokenization.
 *
 * Each format renders a conversation as a list of segments: markup text, markers (markup that may be a
 * special token of the vocabulary: "<|im_start|>", "<s>", "[INST]", ...) and message contents. Formatting
 * concatenates the segments; tokenizing looks each marker up in the vocabulary and encodes the stretches of
 * text between special tokens with special-token parsing off, so only markers can become special tokens. */
#include "host/text/chat_template.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[CHAT_TEMPLATE_COUNT] = {
    "llama3", "llama2", "chatml", "mistral", "zephyr", "gemma", "phi3", "phi4", "qwen1.5", "qwen2", "qwen2.5",
    "qwen3", "qwen3-nothink", "mistral-v7", "mistral-tekken", "deepseek-r1",
};

const char *vkl_chat_template_name(chat_template_kind k)
{
    return (unsigned)k < CHAT_TEMPLATE_COUNT ? names[k] : NULL;
}

const char *vkl_chat_template_names(void)
{
    return "llama3, llama2, chatml, mistral, zephyr, gemma, phi3, phi4, qwen1.5, qwen2, qwen2.5, qwen3, qwen3-nothink, "
           "mistral-v7, mistral-tekken, deepseek-r1";
}

int vkl_chat_template_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int k = 0; k < CHAT_TEMPLATE_COUNT; k++)
        if (!strcmp(name, names[k]))
            return k;
    return -1;
}

/* Does the Jinja source contain pat? A newline in pat matches a newline or the escape \n: templates come
 * with Jinja strings written either way (tokenizer_config.json's JSON decodes one into the other). */
static bool contains(const char *s, size_t len, const char *pat)
{
    for (size_t i = 0; i < len; i++) {
        size_t j = i;
        const char *p = pat;
        for (; *p; p++) {
            if (*p == '\n' && j + 1 < len && s[j] == '\\' && s[j + 1] == 'n')
                j += 2;
            else if (j < len && s[j] == *p)
                j++;
            else
                break;
        }
        if (!*p)
            return true;
    }
    return false;
}

/* A ChatML template that renders a plain conversation as plain ChatML: no default system prompt, no thinking
 * block in the reply's prompt. */
static bool chatml_plain(const char *s, size_t len)
{
    return !contains(s, len, "<think>") && !contains(s, len, "You are ") && !contains(s, len, "Knowledge Cutoff");
}

/* Does the template contain every one of the NULL-terminated patterns? */
static bool contains_all(const char *s, size_t len, const char *const *pats)
{
    for (; *pats; pats++)
        if (!contains(s, len, *pats))
            return false;
    return true;
}

/* Each format is recognised by markers that its published templates all have and no other family's do
 * (checked over the 68 templates of ../shared/templates by tests/test_chat_template.c). A template that
 * resembles a format but renders a plain conversation differently (its own default system prompt, system
 * text moved into the last user turn, other turn markers) matches none: better no format than a wrong one.
 * Patterns are searched in the Jinja source (see contains for newlines). */
int vkl_chat_template_detect(const char *s, size_t len)
{
    if (!s)
        return -1;
    static const char *const llama3[] = {"<|start_header_id|>", "<|end_header_id|>", NULL};
    static const char *const deepseek_r1[] = {"<\xEF\xBD\x9C" "User\xEF\xBD\x9C>",
                                              "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C><think>\n", NULL};
    static const char *const gemma[] = {"<start_of_turn>", "<end_of_turn>", NULL};
    static const char *const mistral_v7[] = {"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", NULL};
    /* Phi-3's turns, "<|user|>\n...<|end|>\n" (Phi-3.5, Phi-3-mini); GLM and Apriel use the tags differently */
    static const char *const phi35[] = {"'<|user|>\n' + message['content'] + '<|end|>\n'", NULL};
    static const char *const phi3_mini[] = {"'<|user|>' + '\n' + message['content'] + '<|end|>'", NULL};
    /* Phi-4-mini: the same tags with no newline after them */
    static const char *const phi4[] = {"'<|' + message['role'] + '|>' + message['content'] + '<|end|>'",
                                       "'<|assistant|>'", NULL};
    static const char *const qwen25[] = {"<|im_start|>", "You are Qwen, created by Alibaba Cloud.", NULL};
    static const char *const qwen2[] = {"'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'", NULL};
    static const char *const qwen15[] = {"'<|im_start|>system\nYou are a helpful assistant<|im_end|>\n'", NULL};
    /* Qwen3's reasoning handling and its switch for the empty thinking block */
    static const char *const qwen3[] = {"<|im_start|>", "ns.last_query_index", "reasoning_content.strip('\n')",
                                        "enable_thinking is defined and enable_thinking is false", NULL};
    /* function-calling fine-tunes (Firefunction, Functionary) write their own system prompt */
    if (contains_all(s, len, llama3) && !contains(s, len, "functools") && !contains(s, len, "{# version=v3"))
        return CHAT_TEMPLATE_LLAMA3;
    if (contains_all(s, len, deepseek_r1))
        return CHAT_TEMPLATE_DEEPSEEK_R1;
    if (contains_all(s, len, gemma))
        return CHAT_TEMPLATE_GEMMA;
    if (contains_all(s, len, mistral_v7))
        return CHAT_TEMPLATE_MISTRAL_V7;
    if (contains_all(s, len, phi35) || contains_all(s, len, phi3_mini))
        return CHAT_TEMPLATE_PHI3;
    if (contains_all(s, len, phi4))
        return CHAT_TEMPLATE_PHI4;
    if (contains_all(s, len, qwen25))
        return CHAT_TEMPLATE_QWEN25;
    if (contains_all(s, len, qwen2))
        return CHAT_TEMPLATE_QWEN2;
    if (contains_all(s, len, qwen15))
        return CHAT_TEMPLATE_QWEN15;
    if (contains_all(s, len, qwen3) && !contains(s, len, "bos_token") && !contains(s, len, "enable_thinking is true"))
        return CHAT_TEMPLATE_QWEN3;
    if (contains(s, len, "<|im_start|>"))
        return chatml_plain(s, len) ? CHAT_TEMPLATE_CHATML : -1;
    if (contains(s, len, "[INST]")) {
        if (contains(s, len, "<<SYS>>"))
            return CHAT_TEMPLATE_LLAMA2;
        /* Mistral-instruct v1-v3 write "[INST] " and " [/INST]"; Nemo's tekken "[INST]" + content, with the system
         * text in the last user turn */
        if (contains(s, len, "[INST] "))
            return CHAT_TEMPLATE_MISTRAL;
        static const char *const tekken[] = {
            "loop.last and system_message is defined",
            "\"[INST]\" + system_message + \"\n\n\" + message[\"content\"] + \"[/INST]\"", NULL};
        return contains_all(s, len, tekken) ? CHAT_TEMPLATE_MISTRAL_TEKKEN : -1;
    }
    /* Zephyr's role tags, each turn ended with the EOS; GLM uses the tags with its own [gMASK] prefix */
    if (contains(s, len, "<|user|>") && contains(s, len, "<|assistant|>") && !contains(s, len, "<|end|>") &&
        contains(s, len, "eos_token") && !contains(s, len, "[gMASK]"))
        return CHAT_TEMPLATE_ZEPHYR;
    return -1;
}

/* ---- rendering ---- */

enum { SEG_TEXT, SEG_MARK, SEG_CONTENT };

typedef struct seg {
    const char *s;
    size_t len;
    int kind;
} seg;

typedef struct seg_list {
    seg *v;
    size_t n, cap;
    bool oom;
} seg_list;

static void push(seg_list *l, int kind, const char *s, size_t len)
{
    if (l->oom)
        return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        seg *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (seg){s, len, kind};
}

#define TEXT(l, lit) push(l, SEG_TEXT, lit, sizeof(lit) - 1)
#define MARK(l, lit) push(l, SEG_MARK, lit, sizeof(lit) - 1)

/* Llama 3's turn header: <|start_header_id|>ROLE<|end_header_id|> and a blank line. */
static void llama3_header(seg_list *l, const char *role)
{
    MARK(l, "<|start_header_id|>");
    push(l, SEG_TEXT, role, strlen(role));
    MARK(l, "<|end_header_id|>");
    TEXT(l, "\n\n");
}

/* ChatML's turn opening (Qwen's too): <|im_start|>ROLE and a newline. */
static void chatml_open(seg_list *l, const char *role)
{
    MARK(l, "<|im_start|>");
    push(l, SEG_TEXT, role, strlen(role));
    TEXT(l, "\n");
}

/* DeepSeek's markers use U+FF5C FULLWIDTH VERTICAL LINE and U+2581 LOWER ONE EIGHTH BLOCK. */
#define DS_BOS "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
#define DS_EOS "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"
#define DS_USER "<\xEF\xBD\x9C" "User\xEF\xBD\x9C>"
#define DS_ASSISTANT "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>"

/* The system prompt the Qwen1.5, Qwen2 and Qwen2.5 templates write when a conversation has none. */
static const char *default_system(chat_template_kind k)
{
    switch (k) {
    case CHAT_TEMPLATE_QWEN15:
        return "You are a helpful assistant";
    case CHAT_TEMPLATE_QWEN2:
        return "You are a helpful assistant.";
    case CHAT_TEMPLATE_QWEN25:
        return "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
    default:
        return NULL;
    }
}

/* A slice of a message's content. */
typedef struct span {
    const char *s;
    size_t len;
} span;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Jinja's trim (ASCII whitespace). */
static span trim(span x)
{
    while (x.len && is_space(x.s[0]))
        x.s++, x.len--;
    while (x.len && is_space(x.s[x.len - 1]))
        x.len--;
    return x;
}

static span lstrip_nl(span x)
{
    while (x.len && x.s[0] == '\n')
        x.s++, x.len--;
    return x;
}

static span rstrip_nl(span x)
{
    while (x.len && x.s[x.len - 1] == '\n')
        x.len--;
    return x;
}

/* Offset of the first (last: the last) occurrence of pat in x, or -1. */
static ptrdiff_t find(span x, const char *pat, bool last)
{
    size_t plen = strlen(pat);
    ptrdiff_t at = -1;
    for (size_t i = 0; i + plen <= x.len; i++)
        if (!memcmp(x.s + i, pat, plen)) {
            at = (ptrdiff_t)i;
            if (!last)
                break;
        }
    return at;
}

static bool starts_ends(span x, const char *head, const char *tail)
{
    size_t h = strlen(head), t = strlen(tail);
    return x.len >= h + t && !memcmp(x.s, head, h) && !memcmp(x.s + x.len - t, tail, t);
}

/* Qwen3 / DeepSeek-R1: an assistant message written as "<think>\nREASONING\n</think>\n\nANSWER" splits into
 * its answer (after the last </think>) and its reasoning (before the first </think>, after the last <think>
 * there), each with the newlines Qwen3's template strips. Without </think> it is all answer. */
static bool split_reasoning(span c, span *answer, span *reasoning)
{
    *answer = c;
    *reasoning = (span){c.s, 0};
    ptrdiff_t first = find(c, "</think>", false), last = find(c, "</think>", true);
    if (first < 0)
        return false;
    *answer = (span){c.s + last + 8, c.len - (size_t)last - 8};
    span before = rstrip_nl((span){c.s, (size_t)first});
    ptrdiff_t open = find(before, "<think>", true);
    if (open >= 0)
        before = (span){before.s + open + 7, before.len - (size_t)open - 7};
    *reasoning = lstrip_nl(before);
    return true;
}

/* Pushes a message's content; cut_here: it is message from-1's, so the text from `from` starts after it. */
static void content(seg_list *l, const char *s, size_t len, bool cut_here, size_t *cut)
{
    push(l, SEG_CONTENT, s, len);
    if (cut_here)
        *cut = l->n;
}

enum { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static int role_of(const char *role)
{
    if (!role)
        return -1;
    if (!strcmp(role, "system"))
        return ROLE_SYSTEM;
    if (!strcmp(role, "user"))
        return ROLE_USER;
    if (!strcmp(role, "assistant"))
        return ROLE_ASSISTANT;
    return -1;
}

/* Renders the whole conversation; *cut = index of the first segment after message from-1's content. */
static vkllm_status render(chat_template_kind k, const vkllm_chat_message *msgs, size_t n, size_t from,
                           bool add_assistant, seg_list *l, size_t *cut)
{
    if ((unsigned)k >= CHAT_TEMPLATE_COUNT)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "chat template: unknown template %d", (int)k);
    if (from > n)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "chat template: start %zu is past the %zu messages", from, n);
    if (n && !msgs)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "chat template: NULL messages");
    for (size_t i = 0; i < n; i++) {
        if (role_of(msgs[i].role) < 0)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT,
                             "chat template: message %zu: role '%s' is not system, user or assistant", i,
                             msgs[i].role ? msgs[i].role : "(null)");
        if (!msgs[i].content)
            return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "chat template: message %zu has no content", i);
    }
    *cut = 0;
    /* llama2/mistral: an [INST] opened by a system message, waiting for the user's text; gemma: a user turn
     * opened by a system message */
    bool open = false;
    bool qwen3 = k == CHAT_TEMPLATE_QWEN3 || k == CHAT_TEMPLATE_QWEN3_NOTHINK;
    /* Qwen3: the last user message that is not a tool response; replies after it keep their reasoning.
     * mistral-tekken: the last user message, which carries the system text */
    size_t last_query = n ? n - 1 : 0;
    for (size_t i = n; k == CHAT_TEMPLATE_MISTRAL_TEKKEN && i-- > 0;)
        if (role_of(msgs[i].role) == ROLE_USER) {
            last_query = i;
            break;
        }
    for (size_t i = n; qwen3 && i-- > 0;) {
        span c = {msgs[i].content, strlen(msgs[i].content)};
        if (role_of(msgs[i].role) == ROLE_USER && !starts_ends(c, "<tool_response>", "</tool_response>")) {
            last_query = i;
            break;
        }
    }
    if (k == CHAT_TEMPLATE_LLAMA3)
        MARK(l, "<|begin_of_text|>");
    else if (k == CHAT_TEMPLATE_MISTRAL || k == CHAT_TEMPLATE_MISTRAL_V7 || k == CHAT_TEMPLATE_MISTRAL_TEKKEN)
        MARK(l, "<s>");
    else if (k == CHAT_TEMPLATE_GEMMA)
        MARK(l, "<bos>");
    else if (k == CHAT_TEMPLATE_DEEPSEEK_R1)
        MARK(l, DS_BOS);
    else if (default_system(k) && n > 0 && role_of(msgs[0].role) != ROLE_SYSTEM) {
        chatml_open(l, "system");
        push(l, SEG_TEXT, default_system(k), strlen(default_system(k)));
        MARK(l, "<|im_end|>");
        TEXT(l, "\n");
    }
    for (size_t i = 0; i < n; i++) {
        int role = role_of(msgs[i].role);
        const char *c = msgs[i].content;
        size_t clen = strlen(c);
        span body = {c, clen};
        switch (k) {
        case CHAT_TEMPLATE_LLAMA3:
            llama3_header(l, msgs[i].role);
            content(l, c, clen, i + 1 == from, cut);
            MARK(l, "<|eot_id|>");
            break;
        case CHAT_TEMPLATE_CHATML:
        case CHAT_TEMPLATE_QWEN15:
        case CHAT_TEMPLATE_QWEN2:
        case CHAT_TEMPLATE_QWEN25:
        case CHAT_TEMPLATE_QWEN3:
        case CHAT_TEMPLATE_QWEN3_NOTHINK:
            chatml_open(l, msgs[i].role);
            if (qwen3 && role == ROLE_ASSISTANT) {
                span reasoning;
                bool split = split_reasoning(body, &body, &reasoning);
                if (split)
                    body = lstrip_nl(body);
                if (i > last_query && (i + 1 == n || reasoning.len)) {
                    MARK(l, "<think>");
                    TEXT(l, "\n");
                    reasoning = rstrip_nl(lstrip_nl(reasoning));
                    push(l, SEG_CONTENT, reasoning.s, reasoning.len);
                    TEXT(l, "\n");
                    MARK(l, "</think>");
                    TEXT(l, "\n\n");
                    body = lstrip_nl(body);
                }
            }
            content(l, body.s, body.len, i + 1 == from, cut);
            MARK(l, "<|im_end|>");
            TEXT(l, "\n");
            break;
        case CHAT_TEMPLATE_GEMMA:
            if (role == ROLE_ASSISTANT && open) { /* a system message not followed by a user one */
                MARK(l, "<end_of_turn>");
                TEXT(l, "\n");
                open = false;
            }
            if (!open) {
                MARK(l, "<start_of_turn>");
                if (role == ROLE_ASSISTANT)
                    TEXT(l, "model\n");
                else
                    TEXT(l, "user\n");
            }
            if (role == ROLE_SYSTEM) { /* the text opens the next user turn, as Gemma 3's template does */
                content(l, c, clen, i + 1 == from, cut);
                TEXT(l, "\n\n");
                open = true;
                break;
            }
            body = trim(body);
            content(l, body.s, body.len, i + 1 == from, cut);
            MARK(l, "<end_of_turn>");
            TEXT(l, "\n");
            open = false;
            break;
        case CHAT_TEMPLATE_MISTRAL_V7:
            if (role == ROLE_SYSTEM)
                MARK(l, "[SYSTEM_PROMPT]");
            else if (role == ROLE_USER)
                MARK(l, "[INST]");
            content(l, c, clen, i + 1 == from, cut);
            if (role == ROLE_SYSTEM)
                MARK(l, "[/SYSTEM_PROMPT]");
            else if (role == ROLE_USER)
                MARK(l, "[/INST]");
            else
                MARK(l, "</s>");
            break;
        case CHAT_TEMPLATE_MISTRAL_TEKKEN:
            if (role == ROLE_SYSTEM) { /* written in the last user turn: nothing here */
                if (i + 1 == from)
                    *cut = l->n;
                break;
            }
            if (role == ROLE_USER) {
                MARK(l, "[INST]");
                if (i == last_query && role_of(msgs[0].role) == ROLE_SYSTEM) {
                    push(l, SEG_CONTENT, msgs[0].content, strlen(msgs[0].content));
                    TEXT(l, "\n\n");
                }
            }
            content(l, c, clen, i + 1 == from, cut);
            if (role == ROLE_USER)
                MARK(l, "[/INST]");
            else
                MARK(l, "</s>");
            break;
        case CHAT_TEMPLATE_DEEPSEEK_R1:
            if (role == ROLE_USER)
                MARK(l, DS_USER);
            else if (role == ROLE_ASSISTANT) {
                MARK(l, DS_ASSISTANT);
                span reasoning;
                split_reasoning(body, &body, &reasoning); /* earlier replies lose their reasoning */
            }
            content(l, body.s, body.len, i + 1 == from, cut);
            if (role == ROLE_ASSISTANT)
                MARK(l, DS_EOS);
            break;
        case CHAT_TEMPLATE_ZEPHYR:
        case CHAT_TEMPLATE_PHI3:
        case CHAT_TEMPLATE_PHI4:
            /* the same role tags; Phi ends a turn with <|end|>, Zephyr with </s>; Phi-4 has no newlines */
            if (k == CHAT_TEMPLATE_PHI3 && role == ROLE_SYSTEM && clen == 0) { /* Phi-3.5 leaves it out */
                if (i + 1 == from)
                    *cut = l->n;
                break;
            }
            if (role == ROLE_SYSTEM)
                MARK(l, "<|system|>");
            else if (role == ROLE_USER)
                MARK(l, "<|user|>");
            else
                MARK(l, "<|assistant|>");
            if (k != CHAT_TEMPLATE_PHI4)
                TEXT(l, "\n");
            content(l, c, clen, i + 1 == from, cut);
            if (k == CHAT_TEMPLATE_ZEPHYR)
                MARK(l, "</s>");
            else
                MARK(l, "<|end|>");
            if (k != CHAT_TEMPLATE_PHI4)
                TEXT(l, "\n");
            break;
        case CHAT_TEMPLATE_LLAMA2:
        case CHAT_TEMPLATE_MISTRAL: {
            bool l2 = k == CHAT_TEMPLATE_LLAMA2;
            if (role == ROLE_ASSISTANT && open) {
                TEXT(l, " "); /* close the [INST] a system message opened, with an empty user turn */
                MARK(l, "[/INST]");
                open = false;
            }
            if (role == ROLE_SYSTEM) { /* a second system message in a row joins the open [INST] */
                if (!open) {
                    if (l2)
                        MARK(l, "<s>");
                    MARK(l, "[INST]");
                    TEXT(l, " ");
                }
                if (l2) {
                    MARK(l, "<<SYS>>");
                    TEXT(l, "\n");
                }
                content(l, c, clen, i + 1 == from, cut);
                if (l2) {
                    TEXT(l, "\n");
                    MARK(l, "<</SYS>>");
                }
                TEXT(l, "\n\n");
                open = true;
            } else if (role == ROLE_USER) {
                if (!open) {
                    if (l2)
                        MARK(l, "<s>");
                    MARK(l, "[INST]");
                    TEXT(l, " ");
                }
                content(l, c, clen, i + 1 == from, cut);
                TEXT(l, " ");
                MARK(l, "[/INST]");
                open = false;
            } else {
                TEXT(l, " ");
                content(l, c, clen, i + 1 == from, cut);
                if (l2)
                    TEXT(l, " ");
                MARK(l, "</s>");
            }
            break;
        }
        default:
            break;
        }
    }
    if (add_assistant) {
        switch (k) {
        case CHAT_TEMPLATE_LLAMA3:
            llama3_header(l, "assistant");
            break;
        case CHAT_TEMPLATE_CHATML:
        case CHAT_TEMPLATE_QWEN15:
        case CHAT_TEMPLATE_QWEN2:
        case CHAT_TEMPLATE_QWEN25:
        case CHAT_TEMPLATE_QWEN3:
            chatml_open(l, "assistant");
            break;
        case CHAT_TEMPLATE_QWEN3_NOTHINK: /* an empty thinking block: the reply starts with the answer */
            chatml_open(l, "assistant");
            MARK(l, "<think>");
            TEXT(l, "\n\n");
            MARK(l, "</think>");
            TEXT(l, "\n\n");
            break;
        case CHAT_TEMPLATE_GEMMA:
            if (open) {
                MARK(l, "<end_of_turn>");
                TEXT(l, "\n");
            }
            MARK(l, "<start_of_turn>");
            TEXT(l, "model\n");
            break;
        case CHAT_TEMPLATE_MISTRAL_V7: /* the reply follows [/INST] */
        case CHAT_TEMPLATE_MISTRAL_TEKKEN:
            break;
        case CHAT_TEMPLATE_DEEPSEEK_R1: /* the reply starts with its reasoning */
            MARK(l, DS_ASSISTANT);
            MARK(l, "<think>");
            TEXT(l, "\n");
            break;
        case CHAT_TEMPLATE_ZEPHYR:
        case CHAT_TEMPLATE_PHI3:
        case CHAT_TEMPLATE_PHI4:
            MARK(l, "<|assistant|>");
            if (k != CHAT_TEMPLATE_PHI4)
                TEXT(l, "\n");
            break;
        default: /* llama2, mistral: the reply follows [/INST] directly */
            if (open) {
                TEXT(l, " ");
                MARK(l, "[/INST]");
            }
            break;
        }
    }
    if (l->oom)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "chat template: out of host memory");
    return VKLLM_OK;
}

vkllm_status vkl_chat_format(chat_template_kind k, const vkllm_chat_message *msgs, size_t n, size_t from,
                         bool add_assistant, char **text, size_t *len)
{
    if (!text || !len)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "chat_format: NULL argument");
    *text = NULL;
    *len = 0;
    seg_list l = {0};
    size_t cut = 0;
    vkllm_status st = render(k, msgs, n, from, add_assistant, &l, &cut);
    if (st != VKLLM_OK) {
        free(l.v);
        return st;
    }
    size_t total = 0;
    for (size_t i = cut; i < l.n; i++)
        total += l.v[i].len;
    char *out = malloc(total + 1);
    if (!out) {
        free(l.v);
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "chat template: out of host memory");
    }
    size_t at = 0;
    for (size_t i = cut; i < l.n; i++) {
        if (l.v[i].len)
            memcpy(out + at, l.v[i].s, l.v[i].len);
        at += l.v[i].len;
    }
    out[at] = '\0';
    free(l.v);
    *text = out;
    *len = at;
    return VKLLM_OK;
}

/* ---- tokenizing ---- */

typedef struct id_list {
    int32_t *v;
    size_t n, cap;
} id_list;

static vkllm_status ids_append(id_list *l, const int32_t *ids, size_t n)
{
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 64;
        while (cap < l->n + n)
            cap *= 2;
        int32_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "chat template: out of host memory");
        l->v = v;
        l->cap = cap;
    }
    if (n)
        memcpy(l->v + l->n, ids, n * sizeof *ids);
    l->n += n;
    return VKLLM_OK;
}

/* Encodes segments [a, b) as one stretch of plain text (no special-token parsing), without its leading
 * whitespace if lstrip (it follows a special token that swallows it, as vkl_tokenizer_encode does). */
static vkllm_status encode_stretch(const tokenizer *t, const seg *v, size_t a, size_t b, bool lstrip, id_list *out)
{
    size_t total = 0;
    for (size_t i = a; i < b; i++)
        total += v[i].len;
    if (total == 0)
        return VKLLM_OK;
    char *buf = malloc(total);
    if (!buf)
        return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "chat template: out of host memory");
    size_t at = 0;
    for (size_t i = a; i < b; i++) {
        size_t skip = 0;
        while (lstrip && at == 0 && skip < v[i].len && is_space(v[i].s[skip]))
            skip++;
        if (v[i].len > skip)
            memcpy(buf + at, v[i].s + skip, v[i].len - skip);
        at += v[i].len - skip;
    }
    total = at;
    if (total == 0) {
        free(buf);
        return VKLLM_OK;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    vkllm_status st = vkl_tokenizer_encode(t, buf, total, false, false, &ids, &n_ids);
    free(buf);
    if (st == VKLLM_OK)
        st = ids_append(out, ids, n_ids);
    free(ids);
    return st;
}

/* The special token a marker stands for in this vocabulary, or -1 if it is plain text there. */
static int32_t marker_token(const tokenizer *t, const seg *s)
{
    int32_t id = vkl_tokenizer_find_token(t, s->s, s->len);
    if (id < 0)
        return -1;
    int type = vkl_tokenizer_token_type(t, id);
    return type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED || type == TOKEN_TYPE_UNKNOWN ? id : -1;
}

vkllm_status vkl_chat_tokenize(const tokenizer *t, chat_template_kind k, const vkllm_chat_message *msgs, size_t n,
                           size_t from, bool add_assistant, int32_t **ids, size_t *n_ids)
{
    if (!t || !ids || !n_ids)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "chat_tokenize: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    seg_list l = {0};
    size_t cut = 0;
    id_list out = {0};
    vkllm_status st = render(k, msgs, n, from, add_assistant, &l, &cut);
    size_t stretch = cut; /* first segment of the text not encoded yet */
    bool lstrip = false;  /* it follows a special token that swallows whitespace */
    for (size_t i = cut; st == VKLLM_OK && i < l.n; i++) {
        if (l.v[i].kind != SEG_MARK)
            continue;
        int32_t id = marker_token(t, &l.v[i]);
        if (id < 0)
            continue; /* plain text in this vocabulary: part of the stretch */
        st = encode_stretch(t, l.v, stretch, i, lstrip, &out);
        if (st == VKLLM_OK)
            st = ids_append(&out, &id, 1);
        stretch = i + 1;
        lstrip = vkl_tokenizer_token_rstrip(t, id);
    }
    if (st == VKLLM_OK)
        st = encode_stretch(t, l.v, stretch, l.n, lstrip, &out);
    int32_t bos = vkl_tokenizer_bos(t);
    if (st == VKLLM_OK && from == 0 && vkl_tokenizer_adds_bos(t) && bos >= 0 && (out.n == 0 || out.v[0] != bos)) {
        st = ids_append(&out, &bos, 1); /* room for one more */
        if (st == VKLLM_OK) {
            memmove(out.v + 1, out.v, (out.n - 1) * sizeof *out.v);
            out.v[0] = bos;
        }
    }
    if (st == VKLLM_OK && !out.v) {
        out.v = malloc(sizeof *out.v); /* never return NULL */
        if (!out.v)
            st = vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "chat template: out of host memory");
    }
    free(l.v);
    if (st != VKLLM_OK) {
        free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return VKLLM_OK;
}
