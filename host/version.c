/* vkllm_version (include/vkllm.h): the version CMake configured into vkllm_version.h. */
#include "vkllm.h"

const char *vkllm_version(void)
{
    return VKLLM_VERSION_STRING;
}
