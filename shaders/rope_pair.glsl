/* Interleaved rope of one pair, shared by kv_store.comp and matvec.comp's Q;K;V epilogue (the same arithmetic
 * as rope.comp). The includer declares the push-constant block `pc` with half_rot, freq_exp, has_ff and f_off
 * (as kv_store.comp's), and the buffer freq_factors[]. */
#ifndef VKLLM_ROPE_PAIR_GLSL
#define VKLLM_ROPE_PAIR_GLSL

/* Pair (x, y) = dims (2i, 2i+1) of a head turned for position pos; pairs i >= half_rot pass through. */
vec2 rope_pair(vec2 xy, uint i, uint pos)
{
    if (i >= pc.half_rot)
        return xy;
    float freq = exp2(float(i) * pc.freq_exp);
    if (pc.has_ff != 0u)
        freq /= freq_factors[pc.f_off + i];
    const float theta = float(pos) * freq;
    const float cs = cos(theta), sn = sin(theta);
    return vec2(xy.x * cs - xy.y * sn, xy.x * sn + xy.y * cs);
}

#endif
