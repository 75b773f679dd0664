/* Tests only (COOPMAT_EMULATE, VKLLM_COOPMAT=emulate): the CM_* cooperative-matrix operations of
 * shaders/matmul_coopmat.comp in plain GLSL, with the semantics of SPV_NV/KHR_cooperative_matrix for 16 x 16
 * subgroup-scope matrices: a load takes element (r, c) from ARR[OFF + r * STRIDE + c] (row-major) or
 * ARR[OFF + c * STRIDE + r] (column-major), a store writes it back the same way, MulAdd is D = A * B + C with
 * f16 inputs (read from the f16 shared tiles) and f32 accumulation. It checks the kernel around the cooperative
 * operations (tiling, dequantization, subgroup layout, staging, bounds), not the hardware's.
 *
 * Loop iterations are kept few: llvmpipe ends every loop of an invocation once all its loops together ran
 * 65535 iterations (gallivm LP_MAX_TGSI_LOOP_ITERATIONS), which a long K would reach (about K = 10000 here;
 * the tests stay at K <= 4096). A and B are references (offset, stride, layout) into the kernel's As and Bs
 * tiles, read at MulAdd time (valid because the kernel only rewrites the tiles after the
 * barrier that ends a K step), and accumulators are slots of a per-subgroup shared area. Restrictions, all
 * met by the kernel: A is loaded from As, B from Bs; MulAdd's C and D are the same variable; at most TM * TN
 * accumulators per subgroup. Element idx = r * 16 + c belongs to invocation idx % S (S = subgroup size).
 * Include after NSG, TM, TN are defined. */
#ifndef VKLLM_COOPMAT_EMULATE_GLSL
#define VKLLM_COOPMAT_EMULATE_GLSL

shared float EmuAcc[NSG * TM * TN * 256u];   /* accumulator slots, 256 floats each (row-major) */
uint emu_next_slot = 0u;                       /* slots handed out by CM_ZERO, per invocation */

#define EMU_AT(R, C, OFF, STRIDE, COLMAJOR) ((OFF) + ((COLMAJOR) ? (C) * (STRIDE) + (R) : (R) * (STRIDE) + (C)))

#define CM_TYPE_A uvec3   /* (offset, stride, column-major) into As */
#define CM_TYPE_B uvec3   /* ... into Bs */
#define CM_TYPE_C uint    /* a slot of EmuAcc */
#define CM_ZERO(D)                                                                                  \
    {                                                                                               \
        D = gl_SubgroupID * (TM * TN) + emu_next_slot++;                                            \
        for (uint e_ = gl_SubgroupInvocationID; e_ < 256u; e_ += gl_SubgroupSize)                  \
            EmuAcc[D * 256u + e_] = 0.0;                                                            \
    }
#define CM_LOAD(D, ARR, OFF, STRIDE, COLMAJOR) D = uvec3(OFF, STRIDE, (COLMAJOR) ? 1u : 0u)
#define CM_STORE(S, ARR, OFF, STRIDE, COLMAJOR)                                                     \
    for (uint e_ = gl_SubgroupInvocationID; e_ < 256u; e_ += gl_SubgroupSize)                      \
        ARR[EMU_AT(e_ / 16u, e_ % 16u, OFF, STRIDE, COLMAJOR)] = EmuAcc[(S) * 256u + e_]
/* One element of MulAdd: k_ runs a constant 16, which llvmpipe unrolls (not counted as loop iterations). */
#define EMU_MAC(D, E)                                                                               \
    if ((E) < 256u) {                                                                               \
        const uint r_ = (E) / 16u, c_ = (E) % 16u;                                                  \
        float s_ = EmuAcc[(D) * 256u + (E)];                                                        \
        for (uint k_ = 0u; k_ < 16u; k_++)                                                          \
            s_ += float(As[EMU_AT(r_, k_, a_.x, a_.y, a_.z != 0u)]) *                               \
                  float(Bs[EMU_AT(k_, c_, b_.x, b_.y, b_.z != 0u)]);                                \
        EmuAcc[(D) * 256u + (E)] = s_;                                                              \
    }
/* Four elements per loop iteration: fewer iterations against llvmpipe's limit. */
#define CM_MULADD(D, A, B, C)                                                                       \
    {                                                                                               \
        D = C;                                                                                      \
        const uvec3 a_ = A, b_ = B;                                                                 \
        const uint s1_ = gl_SubgroupSize;                                                           \
        for (uint e_ = gl_SubgroupInvocationID; e_ < 256u; e_ += 4u * s1_) {                      \
            EMU_MAC(D, e_)                                                                          \
            EMU_MAC(D, e_ + s1_)                                                                    \
            EMU_MAC(D, e_ + 2u * s1_)                                                               \
            EMU_MAC(D, e_ + 3u * s1_)                                                               \
        }                                                                                           \
    }

#endif
