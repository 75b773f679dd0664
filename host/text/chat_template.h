/* Chat templates: turning a conversation ({role, content} messages) into the prompt text a chat model was
 * trained on, and into tokens for it.
 *
 * A GGUF's tokenizer.chat_template is a Jinja program. We do not run Jinja: we recognise which of a few
 * well-known formats a template implements by its distinctive markers (vkl_chat_template_detect; a template that
 * only resembles one is not recognised) and render that format with built-in code. The formats, with S/U/A
 * the system, user and assistant contents:
 *
 *   llama3   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>
 *            <|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>
 *            <|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>   (every message alike)
 *            prompt for the reply: <|start_header_id|>assistant<|end_header_id|>\n\n
 *   llama2   <s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U [/INST] A </s>...
 *            (the system block opens the first [INST]; each later user turn starts with <s>)
 *            prompt for the reply: nothing (the model writes the space before its reply itself)
 *   chatml   <|im_start|>ROLE\nCONTENT<|im_end|>\n for every message (Qwen2 and many fine-tunes)
 *            prompt for the reply: <|im_start|>assistant\n
 *   mistral  <s>[INST] S\n\nU [/INST] A</s>[INST] U [/INST] A</s>...
 *            (the system text goes into the next [INST]; <s> once at the start)
 *            prompt for the reply: nothing, as llama2
 *   zephyr   <|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\nA</s>\n
 *            prompt for the reply: <|assistant|>\n
 *   gemma    <bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n
 *            (no system role: its text opens the next user turn, as Gemma 3's template does; user and
 *            assistant contents trimmed)   prompt for the reply: <start_of_turn>model\n
 *   phi3     <|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\nA<|end|>\n (an empty system message
 *            left out)   prompt for the reply: <|assistant|>\n
 *   phi4     <|system|>S<|end|><|user|>U<|end|><|assistant|>A<|end|> (Phi-4-mini: no newlines)
 *            prompt for the reply: <|assistant|>
 *   qwen1.5, qwen2, qwen2.5   chatml, with the template's default system prompt when the first message is not
 *            a system message ("You are a helpful assistant" without / with a period; "You are Qwen, created
 *            by Alibaba Cloud. You are a helpful assistant.")
 *   qwen3    chatml; a reply before the last user message loses its reasoning (what precedes </think>), the
 *            replies after it are written <think>\nREASONING\n</think>\n\nANSWER (always for the last
 *            message); prompt for the reply: <|im_start|>assistant\n (thinking on, the template's default)
 *   qwen3-nothink   the same with thinking off: the prompt is <|im_start|>assistant\n<think>\n\n</think>\n\n
 *   mistral-v7   <s>[SYSTEM_PROMPT]S[/SYSTEM_PROMPT][INST]U[/INST]A</s>[INST]U[/INST]...
 *            (Mistral Small 3.x, Devstral, Ministral; the template's default system prompt, which carries
 *            today's date, is not written)   prompt for the reply: nothing
 *   mistral-tekken   <s>[INST]U[/INST]A</s>[INST]S\n\nU[/INST]... (Mistral Nemo: a first system message's text
 *            goes into the last user turn, as its template does; other system messages are left out)
 *            prompt for the reply: nothing
 *   deepseek-r1   <｜begin▁of▁sentence｜>S<｜User｜>U<｜Assistant｜>A<｜end▁of▁sentence｜>...
 *            (replies lose their reasoning; a system message is written where it stands, the template
 *            moves the last one to the start)   prompt for the reply: <｜Assistant｜><think>\n
 *
 * Contents are inserted verbatim except where a template trims (gemma) or strips reasoning (qwen3,
 * deepseek-r1). Odd orders are rendered, not refused: in llama2/mistral a system message that is not
 * followed by a user message gets its [INST] closed by an empty user turn (gemma: an empty user turn).
 * The rendering of a message depends only on the messages before it, so the text of a conversation
 * always begins with the text of any of its prefixes; except in qwen3/qwen3-nothink/deepseek-r1, which
 * write a reply differently once a user message follows it, and mistral-tekken, whose system text moves to
 * the newest user turn (a chat keeps what it processed in its context: only the text from the first new
 * message on is formatted).
 *
 * Tokens: the template's markup is tokenized with special tokens recognised (as parse_special=true would)
 * and message contents as plain text (parse_special=false), so a message cannot inject control tokens:
 * special tokens only ever come from the template's own markers. A marker token that swallows the whitespace
 * after it (Phi-3's) does so here too. For contents that contain no special token's text, the result equals
 * vkl_tokenizer_encode(text, parse_special=true) of the whole text. */
#ifndef VKLLM_CHAT_TEMPLATE_H
#define VKLLM_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/text/tokenizer.h"
#include "runtime/error.h"
#include "vkllm.h"

typedef enum chat_template_kind {
    CHAT_TEMPLATE_LLAMA3 = 0,
    CHAT_TEMPLATE_LLAMA2,
    CHAT_TEMPLATE_CHATML,
    CHAT_TEMPLATE_MISTRAL,
    CHAT_TEMPLATE_ZEPHYR,
    CHAT_TEMPLATE_GEMMA,
    CHAT_TEMPLATE_PHI3,
    CHAT_TEMPLATE_PHI4,
    CHAT_TEMPLATE_QWEN15,
    CHAT_TEMPLATE_QWEN2,
    CHAT_TEMPLATE_QWEN25,
    CHAT_TEMPLATE_QWEN3,
    CHAT_TEMPLATE_QWEN3_NOTHINK,
    CHAT_TEMPLATE_MISTRAL_V7,
    CHAT_TEMPLATE_MISTRAL_TEKKEN,
    CHAT_TEMPLATE_DEEPSEEK_R1,
    CHAT_TEMPLATE_COUNT,
} chat_template_kind;

/* Used when a model has no chat template we recognise and none was asked for. */
#define CHAT_TEMPLATE_DEFAULT CHAT_TEMPLATE_CHATML

/* "llama3", "llama2", "chatml", "mistral", "zephyr", "gemma", ...; NULL for a value out of range. */
const char *vkl_chat_template_name(chat_template_kind k);
/* "llama3, llama2, chatml, ..." (all the names, for messages). */
const char *vkl_chat_template_names(void);
/* The kind with this exact name, or -1. */
int vkl_chat_template_from_name(const char *name);
/* Which format a Jinja chat template implements, recognised by its markers; -1 if none (or s is NULL).
 * s need not be NUL-terminated. */
int vkl_chat_template_detect(const char *s, size_t len);

/* Formats messages[from..n) of a conversation (0 <= from <= n), plus the prompt for the assistant's reply
 * if add_assistant. Messages before `from` are not written, except the markup that closes message
 * from-1: the text starts right after that message's content. So, when a context holds the conversation
 * up to the end of a reply the model generated (message from-1; the end-of-generation token it sampled
 * was not decoded), the result is exactly what to process next; and for any from,
 *     format(msgs, n, 0) == format(msgs, n, 0)[0 .. end of message from-1's content] + format(msgs, n, from).
 * *text is malloc'ed and NUL-terminated (*len excludes the NUL).
 * Errors: VKLLM_ERR_INVALID_ARGUMENT for an unknown kind, from > n, a NULL content or a role other than
 * "system", "user" and "assistant". */
vkllm_status vkl_chat_format(chat_template_kind k, const vkllm_chat_message *msgs, size_t n, size_t from,
                         bool add_assistant, char **text, size_t *len);

/* The same text as tokens for tokenizer t (see the top of this file). When from == 0 and the tokenizer
 * adds a BOS (vkl_tokenizer_adds_bos) that the template did not write, it is prepended. With from > 0 the
 * first stretch of text is tokenized as the start of a text (SentencePiece prepends its space there).
 * *ids is malloc'ed (never NULL). */
vkllm_status vkl_chat_tokenize(const tokenizer *t, chat_template_kind k, const vkllm_chat_message *msgs, size_t n,
                           size_t from, bool add_assistant, int32_t **ids, size_t *n_ids);

#endif
