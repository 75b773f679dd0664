/* Chat templates: detection from a Jinja source, rendering, and injection-safe tokenization.
 *
 * Each format renders a conversation as a list of segments: markup text, markers (markup that may be a
 * special token of the vocabulary: "<|im_start|>", "<s>", "[INST]", ...) and message contents. Formatting
 * concatenates the segments; tokenizing looks each marker up in the vocabulary and encodes the stretches of
 * text between special tokens with special-token parsing off, so only markers can become special tokens. */
#include "host/chat_template.h"

#include <stdlib.h>
#include <string.h>

static const char *const names[CHAT_TEMPLATE_COUNT] = {"llama3", "llama2", "chatml", "mistral", "zephyr"};

const char *chat_template_name(chat_template_kind k)
{
    return (unsigned)k < CHAT_TEMPLATE_COUNT ? names[k] : NULL;
}

const char *chat_template_names(void) { return "llama3, llama2, chatml, mistral, zephyr"; }

int chat_template_from_name(const char *name)
{
    if (!name)
        return -1;
    for (int k = 0; k < CHAT_TEMPLATE_COUNT; k++)
        if (!strcmp(name, names[k]))
            return k;
    return -1;
}

static bool contains(const char *s, size_t len, const char *pat)
{
    size_t plen = strlen(pat);
    if (plen > len)
        return false;
    for (size_t i = 0; i + plen <= len; i++)
        if (s[i] == pat[0] && !memcmp(s + i, pat, plen))
            return true;
    return false;
}

int chat_template_detect(const char *s, size_t len)
{
    if (!s)
        return -1;
    /* Most distinctive first: a Llama 3 or ChatML template may mention other formats' words, the reverse
     * does not happen in practice. */
    if (contains(s, len, "<|start_header_id|>") && contains(s, len, "<|end_header_id|>"))
        return CHAT_TEMPLATE_LLAMA3;
    if (contains(s, len, "<|im_start|>"))
        return CHAT_TEMPLATE_CHATML;
    if (contains(s, len, "[INST]"))
        return contains(s, len, "<<SYS>>") ? CHAT_TEMPLATE_LLAMA2 : CHAT_TEMPLATE_MISTRAL;
    /* Zephyr's role tags; Phi-3 uses the same tags but ends turns with <|end|>, a format we do not have. */
    if (contains(s, len, "<|user|>") && contains(s, len, "<|assistant|>") && !contains(s, len, "<|end|>"))
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
    /* llama2/mistral: an [INST] opened by a system message, waiting for the user's text. */
    bool open = false;
    if (k == CHAT_TEMPLATE_LLAMA3)
        MARK(l, "<|begin_of_text|>");
    else if (k == CHAT_TEMPLATE_MISTRAL)
        MARK(l, "<s>");
    for (size_t i = 0; i < n; i++) {
        int role = role_of(msgs[i].role);
        const char *c = msgs[i].content;
        size_t clen = strlen(c);
        switch (k) {
        case CHAT_TEMPLATE_LLAMA3:
            MARK(l, "<|start_header_id|>");
            push(l, SEG_TEXT, msgs[i].role, strlen(msgs[i].role));
            MARK(l, "<|end_header_id|>");
            TEXT(l, "\n\n");
            push(l, SEG_CONTENT, c, clen);
            if (i + 1 == from)
                *cut = l->n;
            MARK(l, "<|eot_id|>");
            break;
        case CHAT_TEMPLATE_CHATML:
            MARK(l, "<|im_start|>");
            push(l, SEG_TEXT, msgs[i].role, strlen(msgs[i].role));
            TEXT(l, "\n");
            push(l, SEG_CONTENT, c, clen);
            if (i + 1 == from)
                *cut = l->n;
            MARK(l, "<|im_end|>");
            TEXT(l, "\n");
            break;
        case CHAT_TEMPLATE_ZEPHYR:
            if (role == ROLE_SYSTEM)
                MARK(l, "<|system|>");
            else if (role == ROLE_USER)
                MARK(l, "<|user|>");
            else
                MARK(l, "<|assistant|>");
            TEXT(l, "\n");
            push(l, SEG_CONTENT, c, clen);
            if (i + 1 == from)
                *cut = l->n;
            MARK(l, "</s>");
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
                push(l, SEG_CONTENT, c, clen);
                if (i + 1 == from)
                    *cut = l->n;
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
                push(l, SEG_CONTENT, c, clen);
                if (i + 1 == from)
                    *cut = l->n;
                TEXT(l, " ");
                MARK(l, "[/INST]");
                open = false;
            } else {
                TEXT(l, " ");
                push(l, SEG_CONTENT, c, clen);
                if (i + 1 == from)
                    *cut = l->n;
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
            MARK(l, "<|start_header_id|>");
            TEXT(l, "assistant");
            MARK(l, "<|end_header_id|>");
            TEXT(l, "\n\n");
            break;
        case CHAT_TEMPLATE_CHATML:
            MARK(l, "<|im_start|>");
            TEXT(l, "assistant\n");
            break;
        case CHAT_TEMPLATE_ZEPHYR:
            MARK(l, "<|assistant|>");
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

vkllm_status chat_format(chat_template_kind k, const vkllm_chat_message *msgs, size_t n, size_t from,
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

/* Encodes segments [a, b) as one stretch of plain text (no special-token parsing). */
static vkllm_status encode_stretch(const tokenizer *t, const seg *v, size_t a, size_t b, id_list *out)
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
        if (v[i].len)
            memcpy(buf + at, v[i].s, v[i].len);
        at += v[i].len;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    vkllm_status st = tokenizer_encode(t, buf, total, false, false, &ids, &n_ids);
    free(buf);
    if (st == VKLLM_OK)
        st = ids_append(out, ids, n_ids);
    free(ids);
    return st;
}

/* The special token a marker stands for in this vocabulary, or -1 if it is plain text there. */
static int32_t marker_token(const tokenizer *t, const seg *s)
{
    int32_t id = tokenizer_find_token(t, s->s, s->len);
    if (id < 0)
        return -1;
    int type = tokenizer_token_type(t, id);
    return type == TOKEN_TYPE_CONTROL || type == TOKEN_TYPE_USER_DEFINED || type == TOKEN_TYPE_UNKNOWN ? id : -1;
}

vkllm_status chat_tokenize(const tokenizer *t, chat_template_kind k, const vkllm_chat_message *msgs, size_t n,
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
    for (size_t i = cut; st == VKLLM_OK && i < l.n; i++) {
        if (l.v[i].kind != SEG_MARK)
            continue;
        int32_t id = marker_token(t, &l.v[i]);
        if (id < 0)
            continue; /* plain text in this vocabulary: part of the stretch */
        st = encode_stretch(t, l.v, stretch, i, &out);
        if (st == VKLLM_OK)
            st = ids_append(&out, &id, 1);
        stretch = i + 1;
    }
    if (st == VKLLM_OK)
        st = encode_stretch(t, l.v, stretch, l.n, &out);
    int32_t bos = tokenizer_bos(t);
    if (st == VKLLM_OK && from == 0 && tokenizer_adds_bos(t) && bos >= 0 && (out.n == 0 || out.v[0] != bos)) {
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
