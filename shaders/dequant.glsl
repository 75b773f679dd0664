/* Helpers for the device weight layout of host/tensor.h, read through 32-bit words only (no 8/16-bit
 * storage, no shaderFloat16):
 *   Q8_0: quants region = 32 int8 per block (8 words), scales region = one f16 per block.
 *   Q4_0: quants region = 16 bytes of nibbles per block (4 words, GGUF order: byte j holds element j in
 *         its low nibble and element j+16 in its high nibble), scales region = one f16 per block.
 * Exactly one of WTYPE_F32, WTYPE_F16, WTYPE_Q8_0, WTYPE_Q4_0 is defined by the variant. */
#ifndef VKLLM_DEQUANT_GLSL
#define VKLLM_DEQUANT_GLSL

#if defined(WTYPE_Q8_0) || defined(WTYPE_Q4_0)
#define WQUANT 1
#endif

/* The four signed bytes of a word, as floats (byte 0 first). */
vec4 q8_word(uint w)
{
    ivec4 b = ivec4(bitfieldExtract(int(w), 0, 8), bitfieldExtract(int(w), 8, 8),
                    bitfieldExtract(int(w), 16, 8), bitfieldExtract(int(w), 24, 8));
    return vec4(b);
}

/* The low nibbles of the four bytes of a word, unsigned (0..15). */
vec4 q4_lo(uint w)
{
    return vec4(uvec4(w, w >> 8, w >> 16, w >> 24) & 0xFu);
}

/* The high nibbles of the four bytes of a word, unsigned (0..15). */
vec4 q4_hi(uint w)
{
    return vec4(uvec4(w >> 4, w >> 12, w >> 20, w >> 28) & 0xFu);
}

/* Half number h of an array of words holding packed f16 values (little-endian: even halves low). */
#define HALF_AT(arr, h) (unpackHalf2x16((arr)[(h) >> 1])[(h) & 1u])

#endif
