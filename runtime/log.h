/* The library's diagnostics (validation messages, warnings): every one goes through vkr_log, never
 * straight to stderr or stdout, so an embedding application can redirect them (vkllm_log_set). */
#ifndef VKR_LOG_H
#define VKR_LOG_H

#include "vkllm_log.h"

/* fn NULL: back to the default, which writes "vkllm: <level>: <message>\n" to stderr. */
void vkr_log_set(vkllm_log_fn fn, void *user);

/* Formats one message (printf-style, no trailing newline) and hands it to the current callback. */
void vkr_log(vkllm_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

const char *vkr_log_level_name(vkllm_log_level level);

#endif
