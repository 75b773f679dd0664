# Matrix kernels (host/ops_matmul.c): decode matvec (with and without subgroup reductions), tiled
# prefill matmul, and row gather (get_rows), for each weight type.
foreach(t f32 f16 q8_0 q4_0)
  string(TOUPPER ${t} T)
  vkllm_shader(matvec_${t} matvec.comp DEFINES WTYPE_${T}=1)
  vkllm_shader(matvec_${t}_sg matvec.comp DEFINES WTYPE_${T}=1 USE_SUBGROUP=1)
  vkllm_shader(matmul_${t} matmul.comp DEFINES WTYPE_${T}=1)
  vkllm_shader(get_rows_${t} get_rows.comp DEFINES WTYPE_${T}=1)
endforeach()
