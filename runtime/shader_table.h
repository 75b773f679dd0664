/* The embedded SPIR-V, generated at build time by third_party/embed_spirv.cmake. */
#ifndef VKR_SHADER_TABLE_H
#define VKR_SHADER_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct vkr_shader_blob {
    const char *name;
    const uint32_t *code;
    size_t size;        /* bytes */
} vkr_shader_blob;

extern const vkr_shader_blob vkr_shader_table[];   /* ends with a {NULL, NULL, 0} entry */

#endif
