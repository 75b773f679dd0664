# Every compute shader variant is listed here: vkllm_shader(NAME SOURCE [DEFINES A=1 B=2]).
# One GLSL source serves all its variants through #defines; workgroup/subgroup sizes are
# specialization constants chosen at pipeline creation. A shader that fails to compile fails the build.
set(VKLLM_SPV_DIR ${CMAKE_CURRENT_BINARY_DIR}/spv)
file(MAKE_DIRECTORY ${VKLLM_SPV_DIR})
set(VKLLM_SPVS "")
function(vkllm_shader name source)
  cmake_parse_arguments(S "" "" "DEFINES" ${ARGN})
  set(defs "")
  foreach(d IN LISTS S_DEFINES)
    list(APPEND defs "-D${d}")
  endforeach()
  set(out ${VKLLM_SPV_DIR}/${name}.spv)
  file(GLOB includes ${CMAKE_CURRENT_SOURCE_DIR}/shaders/*.glsl)
  add_custom_command(OUTPUT ${out}
    COMMAND Vulkan::glslangValidator -V --target-env vulkan1.2 -S comp ${defs}
            -I${CMAKE_CURRENT_SOURCE_DIR}/shaders -o ${out} ${CMAKE_CURRENT_SOURCE_DIR}/shaders/${source}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/shaders/${source} ${includes}
    COMMENT "glslang ${name}" VERBATIM)
  set(VKLLM_SPVS ${VKLLM_SPVS} ${out} PARENT_SCOPE)
endfunction()

include(${CMAKE_CURRENT_SOURCE_DIR}/shaders/list.cmake)

set(VKLLM_SHADER_C ${CMAKE_CURRENT_BINARY_DIR}/shaders_spv.c)
add_custom_command(OUTPUT ${VKLLM_SHADER_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${VKLLM_SHADER_C} "-DSPVS=${VKLLM_SPVS}"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/third_party/embed_spirv.cmake
  DEPENDS ${VKLLM_SPVS} ${CMAKE_CURRENT_SOURCE_DIR}/third_party/embed_spirv.cmake
  COMMENT "Embedding SPIR-V" VERBATIM)
add_custom_target(vkllm_shaders DEPENDS ${VKLLM_SHADER_C})
