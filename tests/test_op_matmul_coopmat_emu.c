/* test_op_matmul_coopmat.c's suite on the cooperative-matrix kernel with its cooperative operations emulated in
 * plain GLSL (VKLLM_COOPMAT=emulate; shaders/coopmat_emulate.glsl): checks everything around them (tiling,
 * dequantization to f16, X conversion, subgroup layout, staging, bounds checks, dispatch splitting) on any
 * device with shaderFloat16 and the Vulkan memory model, lavapipe included. Skipped (77) without those. */
#define COOPMAT_EMULATED 1
#include "test_op_matmul_coopmat.c"
