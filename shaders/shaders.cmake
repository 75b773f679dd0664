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

# Cooperative-matrix kernels: vkllm_shader_coopmat(NAME SOURCE [DEFINES ...]) makes two modules from one
# GLSL source written with GL_NV_cooperative_matrix (the form Debian 12's glslang 12.0 compiles): NAME_nv
# (glslang's output) and NAME_khr (the same module rewritten to SPV_KHR_cooperative_matrix by
# shaders/tools/spirv_coopmat_khr.c, for drivers that offer only the KHR extension: AMD, Intel). Both are
# SPIR-V 1.6 (vulkan1.3): a KHR cooperative-matrix pipeline must be SPIR-V 1.6 or require full subgroups.
add_executable(vkllm_spirv_coopmat_khr ${CMAKE_CURRENT_SOURCE_DIR}/shaders/tools/spirv_coopmat_khr.c)
function(vkllm_shader_coopmat name source)
  cmake_parse_arguments(S "" "" "DEFINES" ${ARGN})
  set(defs "")
  foreach(d IN LISTS S_DEFINES)
    list(APPEND defs "-D${d}")
  endforeach()
  set(nv ${VKLLM_SPV_DIR}/${name}_nv.spv)
  set(khr ${VKLLM_SPV_DIR}/${name}_khr.spv)
  file(GLOB includes ${CMAKE_CURRENT_SOURCE_DIR}/shaders/*.glsl)
  add_custom_command(OUTPUT ${nv}
    COMMAND Vulkan::glslangValidator -V --target-env vulkan1.3 -S comp ${defs}
            -I${CMAKE_CURRENT_SOURCE_DIR}/shaders -o ${nv} ${CMAKE_CURRENT_SOURCE_DIR}/shaders/${source}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/shaders/${source} ${includes}
    COMMENT "glslang ${name}_nv" VERBATIM)
  add_custom_command(OUTPUT ${khr}
    COMMAND vkllm_spirv_coopmat_khr ${nv} ${khr}
    DEPENDS ${nv} vkllm_spirv_coopmat_khr
    COMMENT "NV -> KHR cooperative matrix: ${name}_khr" VERBATIM)
  set(VKLLM_SPVS ${VKLLM_SPVS} ${nv} ${khr} PARENT_SCOPE)
endfunction()

include(${CMAKE_CURRENT_SOURCE_DIR}/shaders/list.cmake)

set(VKLLM_SHADER_C ${CMAKE_CURRENT_BINARY_DIR}/shaders_spv.c)
add_custom_command(OUTPUT ${VKLLM_SHADER_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${VKLLM_SHADER_C} "-DSPVS=${VKLLM_SPVS}"
          -P ${CMAKE_CURRENT_SOURCE_DIR}/third_party/embed_spirv.cmake
  DEPENDS ${VKLLM_SPVS} ${CMAKE_CURRENT_SOURCE_DIR}/third_party/embed_spirv.cmake
  COMMENT "Embedding SPIR-V" VERBATIM)
add_custom_target(vkllm_shaders DEPENDS ${VKLLM_SHADER_C})
