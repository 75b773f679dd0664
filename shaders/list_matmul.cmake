# Matrix kernels (host/ops/ops_matmul.c), for each weight type: the GPU matvec (one or a few columns, with and
# without subgroup reductions; FUSED: with the RMSNorm / SiLU- or GELU-gate / residual-add fusions; _rope: and the
# Q;K;V epilogue, rope and the KV-cache store), the tiled GPU
# matmul, the CPU-device kernel for every column count (mm_cpu.comp: one subgroup per workgroup, no shared
# memory), row gather (get_rows) and the cooperative-matrix prompt matmul (NV and KHR forms of one source,
# VKLLM_COOPMAT=1, experimental; _emu: the same kernel with the cooperative operations in plain GLSL, tests only,
# VKLLM_COOPMAT=emulate).
# The weight types with kernels: the table names of host/format/quant.c whose `kernels` flag is set (a kernel's name
# ends in the table name, e.g. matvec_q4_K, as host/ops/ops_matmul.c's type_suffix builds it); each has its block
# in shaders/dequant.glsl (WTYPE_<NAME>).
set(VKLLM_WEIGHT_TYPES f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K iq4_nl iq4_xs mxfp4 iq2_xxs iq2_xs
    iq2_s iq3_xxs iq3_s iq1_s iq1_m)
foreach(t IN LISTS VKLLM_WEIGHT_TYPES)
  string(TOUPPER ${t} T)
  vkllm_shader(matvec_${t} matvec.comp DEFINES WTYPE_${T}=1)
  vkllm_shader(matvec_${t}_sg matvec.comp DEFINES WTYPE_${T}=1 USE_SUBGROUP=1)
  vkllm_shader(matvec_${t}_fused matvec.comp DEFINES WTYPE_${T}=1 FUSED=1)
  vkllm_shader(matvec_${t}_sg_fused matvec.comp DEFINES WTYPE_${T}=1 USE_SUBGROUP=1 FUSED=1)
  vkllm_shader(matvec_${t}_rope matvec.comp DEFINES WTYPE_${T}=1 FUSED=1 ROPE_KV=1)
  vkllm_shader(matvec_${t}_sg_rope matvec.comp DEFINES WTYPE_${T}=1 USE_SUBGROUP=1 FUSED=1 ROPE_KV=1)
  vkllm_shader(matmul_${t} matmul.comp DEFINES WTYPE_${T}=1)
  vkllm_shader(mm_cpu_${t} mm_cpu.comp DEFINES WTYPE_${T}=1)
  vkllm_shader(get_rows_${t} get_rows.comp DEFINES WTYPE_${T}=1)
  vkllm_shader_coopmat(matmul_coopmat_${t} matmul_coopmat.comp DEFINES WTYPE_${T}=1)
  vkllm_shader(matmul_coopmat_${t}_emu matmul_coopmat.comp DEFINES WTYPE_${T}=1 COOPMAT_EMULATE=1)
endforeach()
# X as f16 for the cooperative-matrix matmul (once per product, shaders/convert_f16.comp).
vkllm_shader(convert_f16 convert_f16.comp)
# mm_cpu with 64-bit loads (shaderInt64): the hand-tuned Q8_0/Q4_0 decode matvec, used where rows and bindings
# allow them (host/ops/ops_matmul.c looks the variant up by name).
vkllm_shader(mm_cpu_q8_0_i64 mm_cpu.comp DEFINES WTYPE_Q8_0=1 USE_INT64=1)
vkllm_shader(mm_cpu_q4_0_i64 mm_cpu.comp DEFINES WTYPE_Q4_0=1 USE_INT64=1)
# ... and its tiles of several columns (batched decode), Q4_0
vkllm_shader(mm_cpu_q4_0_i64mc mm_cpu.comp DEFINES WTYPE_Q4_0=1 USE_INT64=1 MC_INT64=1)
