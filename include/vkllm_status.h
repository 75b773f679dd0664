/* vkllm status codes: every fallible library call returns one of these. */
#ifndef VKLLM_STATUS_H
#define VKLLM_STATUS_H

typedef enum vkllm_status {
    VKLLM_OK = 0,
    VKLLM_ERR_INVALID_ARGUMENT = -1,   /* a caller error: bad flag, id out of range, ... */
    VKLLM_ERR_IO = -2,                 /* a file could not be opened, read or written */
    VKLLM_ERR_FORMAT = -3,             /* a malformed or truncated file */
    VKLLM_ERR_UNSUPPORTED = -4,        /* a valid input we cannot run (tensor type, architecture) */
    VKLLM_ERR_OUT_OF_HOST_MEMORY = -5,
    VKLLM_ERR_OUT_OF_DEVICE_MEMORY = -6,
    VKLLM_ERR_VULKAN = -7,             /* any other failing Vulkan call */
    VKLLM_ERR_DEVICE_LOST = -8,
    VKLLM_ERR_NO_DEVICE = -9,          /* no Vulkan driver, or no device matching the request */
    VKLLM_ERR_CONTEXT_FULL = -10,      /* the prompt or conversation does not fit the context */
    VKLLM_ERR_CANCELLED = -11,         /* a progress or abort callback asked to stop */
    VKLLM_ERR_BUSY = -12,              /* a decode submitted with vkllm_decode_submit is still in flight */
    VKLLM_NOT_READY = 1,               /* not an error: vkllm_decode_poll/_wait, the decode is still running */
} vkllm_status;

#endif
