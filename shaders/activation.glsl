/* The gate activations of a gated FFN, shared by silu_mul.comp and matvec.comp's GLU epilogue (one formula,
 * so the fused and the separate paths agree). */
#ifndef VKLLM_ACTIVATION_GLSL
#define VKLLM_ACTIVATION_GLSL

/* silu(g) = g / (1 + exp(-g)) */
float act_silu(float g)
{
    return g / (1.0 + exp(-g));
}

/* GELU in its tanh approximation, 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) (Gemma); the argument is
 * clamped where tanh is already +-1 in f32, so exp inside tanh cannot overflow. */
float act_gelu_tanh(float g)
{
    const float t = tanh(clamp(0.7978845608 * (g + 0.044715 * g * g * g), -15.0, 15.0));
    return 0.5 * g * (1.0 + t);
}

#endif
