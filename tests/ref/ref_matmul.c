#include "ref/ref_matmul.h"

#include <math.h>
#include <string.h>

#include "host/format/ggml_types.h"
#include "host/format/quant.h"

size_t ref_tensor_bytes(uint32_t type, uint64_t ne0, uint64_t ne1)
{
    return (size_t)(vkl_ggml_row_bytes(type, ne0) * ne1);
}

/* Types vkllm reads but does not quantize (IQ grids): each block's bytes are a hash of the source block's values
 * (so different sources give different blocks) with the block scale set for the source block's root mean
 * square. The values are not the source's: tests compare kernels with ref_decode of the same bytes. */
static void ref_encode_unquantizable(uint32_t type, const float *src, uint64_t n, uint8_t *dst)
{
    const uint32_t bs = vkl_ggml_block_size(type), bb = vkl_ggml_block_bytes(type);
    for (uint64_t b = 0; b < n / bs; b++) {
        uint64_t h = 0x9e3779b97f4a7c15u;
        double sq = 0.0;
        for (uint32_t i = 0; i < bs; i++) {
            uint32_t u;
            memcpy(&u, &src[b * bs + i], 4);
            h = (h ^ u) * 0x100000001b3u;
            sq += (double)src[b * bs + i] * src[b * bs + i];
        }
        uint8_t *blk = dst + b * bb;
        for (uint32_t i = 0; i < bb; i++) {   /* splitmix64 steps from the hash */
            h += 0x9e3779b97f4a7c15u;
            uint64_t z = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
            blk[i] = (uint8_t)((z ^ (z >> 31)) >> 24);
        }
        vkl_ggml_block_set_rms(type, blk, (float)sqrt(sq / bs));
    }
}

void ref_encode(uint32_t type, const float *src, uint64_t ne0, uint64_t ne1, void *dst)
{
    uint64_t rb = vkl_ggml_row_bytes(type, ne0);
    for (uint64_t r = 0; r < ne1; r++) {
        const float *s = src + r * ne0;
        uint8_t *d = (uint8_t *)dst + r * rb;
        if (type == GGML_TYPE_F32) {
            memcpy(d, s, ne0 * sizeof(float));
        } else if (type == GGML_TYPE_F16) {
            for (uint64_t k = 0; k < ne0; k++) {
                uint16_t h = vkl_fp32_to_fp16(s[k]);
                memcpy(d + 2 * k, &h, 2);
            }
        } else if (vkl_ggml_type_can_quantize(type)) {
            vkl_quantize_row(type, s, d, ne0);
        } else {
            ref_encode_unquantizable(type, s, ne0, d);
        }
    }
}

void ref_decode(uint32_t type, const void *src, uint64_t ne0, uint64_t ne1, float *dst)
{
    uint64_t rb = vkl_ggml_row_bytes(type, ne0);
    for (uint64_t r = 0; r < ne1; r++)
        vkl_dequantize_row(type, (const uint8_t *)src + r * rb, dst + r * ne0, ne0);
}

void ref_decode_device(uint32_t type, const void *qs, const void *meta, uint64_t n_blocks, float *dst)
{
    const ggml_type_info *t = vkl_ggml_type_get(type);
    if (!t)
        return;
    if (t->meta_bytes == 0) {
        vkl_dequantize_row(type, qs, dst, n_blocks);
        return;
    }
    uint8_t block[256];   /* larger than any block in the table */
    const uint32_t tail = t->block_bytes - t->qs_start - t->qs_bytes;
    for (uint64_t b = 0; b < n_blocks; b++) {
        const uint8_t *m = (const uint8_t *)meta + b * t->meta_bytes;
        memcpy(block, m, t->qs_start);
        memcpy(block + t->qs_start, (const uint8_t *)qs + b * t->qs_bytes, t->qs_bytes);
        memcpy(block + t->qs_start + t->qs_bytes, m + t->qs_start, tail);
        vkl_dequantize_row(type, block, dst + b * t->block, t->block);
    }
}

void ref_matmul_f32(const float *w, const float *x, float *y, uint64_t K, uint64_t M, uint64_t N)
{
    for (uint64_t n = 0; n < N; n++) {
        const float *xn = x + n * K;
        for (uint64_t m = 0; m < M; m++) {
            const float *wm = w + m * K;
            double s = 0;
            for (uint64_t k = 0; k < K; k++)
                s += (double)wm[k] * (double)xn[k];
            y[n * M + m] = (float)s;
        }
    }
}

void ref_get_rows(uint32_t type, const void *table, uint64_t K, uint64_t M, const uint32_t *ids, uint64_t n,
                  float *out)
{
    uint64_t rb = vkl_ggml_row_bytes(type, K);
    for (uint64_t i = 0; i < n; i++) {
        if (ids[i] >= M)
            memset(out + i * K, 0, K * sizeof(float));
        else
            vkl_dequantize_row(type, (const uint8_t *)table + ids[i] * rb, out + i * K, K);
    }
}
