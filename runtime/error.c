#include "runtime/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

vkllm_status vkr_error(vkllm_status status, const char *fmt, ...)
{
    /* Formatted into a scratch buffer first: callers add context to an earlier failure with
     * vkr_error(st, "tensor %s: %s", name, vkr_last_error()), and vsnprintf must not read the buffer it
     * writes (that is undefined behaviour, and garbles the message in practice). */
    char msg[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof msg);
    return status;
}

const char *vkr_last_error(void) { return last_error; }

void vkr_clear_error(void) { last_error[0] = '\0'; }

const char *vkr_status_name(vkllm_status status)
{
    switch (status) {
    case VKLLM_OK: return "ok";
    case VKLLM_ERR_INVALID_ARGUMENT: return "invalid argument";
    case VKLLM_ERR_IO: return "i/o error";
    case VKLLM_ERR_FORMAT: return "malformed file";
    case VKLLM_ERR_UNSUPPORTED: return "unsupported";
    case VKLLM_ERR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VKLLM_ERR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VKLLM_ERR_VULKAN: return "vulkan error";
    case VKLLM_ERR_DEVICE_LOST: return "device lost";
    case VKLLM_ERR_NO_DEVICE: return "no vulkan device";
    case VKLLM_ERR_CONTEXT_FULL: return "context full";
    case VKLLM_ERR_CANCELLED: return "cancelled";
    case VKLLM_ERR_BUSY: return "busy";
    case VKLLM_NOT_READY: return "not ready";
    }
    return "unknown error";
}
