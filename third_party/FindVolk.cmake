# Finds Debian's libvulkan-volk-dev: a header (volk.h) and the single source file (volk.c)
# that we compile into libvkllm. Provides Volk_FOUND, Volk_INCLUDE_DIR and Volk_SOURCE.
find_path(Volk_INCLUDE_DIR volk.h)
find_file(Volk_SOURCE volk.c PATHS ${Volk_INCLUDE_DIR} NO_DEFAULT_PATH)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Volk REQUIRED_VARS Volk_INCLUDE_DIR Volk_SOURCE)
mark_as_advanced(Volk_INCLUDE_DIR Volk_SOURCE)
