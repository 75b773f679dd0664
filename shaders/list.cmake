# Shader variants; each vkllm_shader() line makes one embedded SPIR-V module. Grouped by kernel family.
file(GLOB VKLLM_SHADER_LISTS ${CMAKE_CURRENT_SOURCE_DIR}/shaders/list_*.cmake)
foreach(list_file IN LISTS VKLLM_SHADER_LISTS)
  include(${list_file})
endforeach()
