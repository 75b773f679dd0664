/* Linked into every executable of a VKLLM_SANITIZE=ON build (never into the library, never into a
 * normal build): keeps Vulkan drivers and layers mapped after the Vulkan loader dlclose()s them.
 *
 * Why: LeakSanitizer checks for leaks at exit. Mesa's lavapipe (libvulkan_lvp.so, Mesa 22.3 on Debian
 * 12) allocates, once per load, a 128-byte L3-cache affinity mask (util_cpu_detect -> get_cpu_topology,
 * on AMD Zen hosts) that only a global of the driver points to and that it never frees. The loader
 * unloads the driver at vkDestroyInstance, so at exit nothing points to the block any more and LSan
 * reports it as a leak whose only frame is an address in a module that no longer exists
 * ("<unknown module>"). An LSan suppression cannot match such a frame (suppressions match function,
 * file or module names, and the address has none). With the module kept mapped, LSan scans its globals,
 * finds the pointer, and there is nothing to report; any real leak in a driver or layer is then reported
 * with the module's name, which third_party/lsan.supp can name.
 *
 * This is the run-time equivalent of the Vulkan loader's own build option for sanitizer runs,
 * LOADER_DISABLE_DYNAMIC_LIBRARY_UNLOADING. Only libraries whose file name starts with libvulkan_ (ICDs)
 * or libVkLayer_ (layers) are kept; every other dlclose() goes through unchanged. The executable exports
 * dlclose (-Wl,--export-dynamic-symbol=dlclose, see CMakeLists.txt) so the loader's call binds here. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <string.h>

static int is_vulkan_module(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    return strncmp(base, "libvulkan_", 10) == 0 || strncmp(base, "libVkLayer_", 11) == 0;
}

int dlclose(void *handle)
{
    static int (*real_dlclose)(void *);
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && is_vulkan_module(map->l_name))
        return 0; /* stays loaded until the process exits */
    if (!real_dlclose)
        real_dlclose = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    return real_dlclose ? real_dlclose(handle) : -1;
}
