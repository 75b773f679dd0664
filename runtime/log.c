#include "runtime/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The callback and its user pointer change together under the lock, so a message never reaches the new
 * function with the old pointer. The callback itself runs outside the lock: it may be slow, log from
 * several threads at once, or even call vkllm_log_set. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static vkllm_log_fn log_fn;   /* NULL: log_to_stderr */
static void *log_user;

const char *vkr_log_level_name(vkllm_log_level level)
{
    switch (level) {
    case VKLLM_LOG_ERROR: return "error";
    case VKLLM_LOG_WARNING: return "warning";
    case VKLLM_LOG_INFO: return "info";
    case VKLLM_LOG_DEBUG: return "debug";
    }
    return "log";
}

static void log_to_stderr(vkllm_log_level level, const char *message, void *user)
{
    (void)user;
    fprintf(stderr, "vkllm: %s: %s\n", vkr_log_level_name(level), message);
}

void vkr_log_set(vkllm_log_fn fn, void *user)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user = fn ? user : NULL;
    pthread_mutex_unlock(&log_lock);
}

void vkr_log(vkllm_log_level level, const char *fmt, ...)
{
    pthread_mutex_lock(&log_lock);
    vkllm_log_fn fn = log_fn ? log_fn : log_to_stderr;
    void *user = log_user;
    pthread_mutex_unlock(&log_lock);

    /* Most messages fit on the stack; validation messages can run to kilobytes, so those get the heap
     * (and are cut to the stack buffer's size if that fails: a log call has no way to report errors). */
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *big = NULL;
    if ((size_t)n >= sizeof small && (big = malloc((size_t)n + 1)) != NULL) {
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    fn(level, big ? big : small, user);
    free(big);
}
