/* Status codes and the thread-local "last error" message shared by the runtime and the host layer.
 * Functions return a vkllm_status; on failure they have stored a one-line human message first. */
#ifndef VKR_ERROR_H
#define VKR_ERROR_H

#include "vkllm_status.h"

/* Stores a printf-formatted message for the calling thread and returns `status` unchanged,
 * so a failure site reads: `return vkr_error(VKLLM_ERR_FORMAT, "tensor %s: ...", name);` */
vkllm_status vkr_error(vkllm_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The message stored by the last failing call on this thread ("" if none). */
const char *vkr_last_error(void);
void vkr_clear_error(void);

/* Short name of a status code, e.g. "out of device memory". */
const char *vkr_status_name(vkllm_status status);

#endif
