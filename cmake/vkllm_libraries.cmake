# The two libraries an application links, from the objects of vkllm_objects and vkllm_volk (compiled with
# hidden visibility), and the target a parent project uses: vkllm::vkllm.
#
# - libvkllm.so (vkllm_shared): hidden visibility already limits its exports to the VKLLM_API functions;
#   --exclude-libs keeps anything from static libraries linked into it private too.
# - libvkllm.a (vkllm_static): an archive of separate objects would still expose every internal global
#   (gguf_*, llama_*, volk's vkCreateInstance pointer...) to the application's linker, where they collide
#   with the application's own volk, its libvulkan or ggml. So the objects are first linked into one
#   relocatable object (ld -r, which resolves the references between them) and objcopy --localize-hidden
#   then turns every hidden symbol local: the archive's single object defines only the API.
# tests/embed/ checks both export sets against the header (nm) and links applications that would clash.

set(VKLLM_LIBRARY_OBJECTS $<TARGET_OBJECTS:vkllm_objects> $<TARGET_OBJECTS:vkllm_volk>)
set(VKLLM_PUBLIC_INCLUDE_DIRS
  $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
  $<BUILD_INTERFACE:${VKLLM_GENERATED_INCLUDE_DIR}>
  $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

add_library(vkllm_shared SHARED ${VKLLM_LIBRARY_OBJECTS})
target_include_directories(vkllm_shared PUBLIC ${VKLLM_PUBLIC_INCLUDE_DIRS})
target_link_libraries(vkllm_shared PRIVATE Threads::Threads ${CMAKE_DL_LIBS} m)
target_link_options(vkllm_shared PRIVATE -Wl,--exclude-libs,ALL)
set_target_properties(vkllm_shared PROPERTIES
  OUTPUT_NAME vkllm VERSION ${PROJECT_VERSION} SOVERSION ${VKLLM_ABI_VERSION} EXPORT_NAME vkllm_shared)

if(CMAKE_OBJCOPY AND CMAKE_LINKER AND NOT APPLE AND NOT WIN32)
  set(merged ${CMAKE_CURRENT_BINARY_DIR}/vkllm_static.o)
  add_custom_command(OUTPUT ${merged}
    COMMAND ${CMAKE_LINKER} -r -o ${merged}.all ${VKLLM_LIBRARY_OBJECTS}
    COMMAND ${CMAKE_OBJCOPY} --localize-hidden ${merged}.all ${merged}
    COMMAND ${CMAKE_COMMAND} -E remove ${merged}.all
    DEPENDS ${VKLLM_LIBRARY_OBJECTS}
    COMMENT "Linking the objects of libvkllm.a into one, internal symbols local"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_library(vkllm_static STATIC ${merged})
  add_dependencies(vkllm_static vkllm_objects vkllm_volk)
else()
  message(WARNING "vkllm: no ld -r/objcopy on this platform: libvkllm.a exposes internal symbols")
  add_library(vkllm_static STATIC ${VKLLM_LIBRARY_OBJECTS})
endif()
target_include_directories(vkllm_static PUBLIC ${VKLLM_PUBLIC_INCLUDE_DIRS})
# Exported as link-only dependencies: what a static link of libvkllm.a needs (-lpthread -ldl -lm).
target_link_libraries(vkllm_static PRIVATE Threads::Threads ${CMAKE_DL_LIBS} m)
target_compile_definitions(vkllm_static INTERFACE VKLLM_STATIC)
set_target_properties(vkllm_static PROPERTIES OUTPUT_NAME vkllm EXPORT_NAME vkllm_static LINKER_LANGUAGE C)

# The names a parent project (add_subdirectory) uses, the same as the installed package's. vkllm::vkllm
# follows BUILD_SHARED_LIBS like any CMake library: static unless the parent asks for shared libraries.
add_library(vkllm::vkllm_shared ALIAS vkllm_shared)
add_library(vkllm::vkllm_static ALIAS vkllm_static)
if(BUILD_SHARED_LIBS)
  add_library(vkllm::vkllm ALIAS vkllm_shared)
else()
  add_library(vkllm::vkllm ALIAS vkllm_static)
endif()
