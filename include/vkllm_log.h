/* vkllm log messages: where the library's own diagnostics go (see vkllm_log_set in vkllm.h). */
#ifndef VKLLM_LOG_H
#define VKLLM_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

/* Lower is more severe, so a callback can filter with `level <= VKLLM_LOG_WARNING`. */
typedef enum vkllm_log_level {
    VKLLM_LOG_ERROR = 1,     /* something failed (e.g. a Vulkan validation error) */
    VKLLM_LOG_WARNING = 2,   /* the call goes on, but maybe not as the caller meant (e.g. a guessed tokenizer) */
    VKLLM_LOG_INFO = 3,      /* reports asked for (e.g. VKLLM_PROFILE) */
    VKLLM_LOG_DEBUG = 4,
} vkllm_log_level;

/* message: one line, NUL-terminated, no trailing newline; valid only during the call. */
typedef void (*vkllm_log_fn)(vkllm_log_level level, const char *message, void *user);

#ifdef __cplusplus
}
#endif

#endif
