#include "ref/ref_matmul.h"

#include <string.h>

#include "host/ggml_types.h"
#include "host/quant.h"

size_t ref_tensor_bytes(uint32_t type, uint64_t ne0, uint64_t ne1)
{
    return (size_t)(ggml_row_bytes(type, ne0) * ne1);
}

void ref_encode(uint32_t type, const float *src, uint64_t ne0, uint64_t ne1, void *dst)
{
    uint64_t rb = ggml_row_bytes(type, ne0);
    for (uint64_t r = 0; r < ne1; r++) {
        const float *s = src + r * ne0;
        uint8_t *d = (uint8_t *)dst + r * rb;
        if (type == GGML_TYPE_F32) {
            memcpy(d, s, ne0 * sizeof(float));
        } else if (type == GGML_TYPE_F16) {
            for (uint64_t k = 0; k < ne0; k++) {
                uint16_t h = fp32_to_fp16(s[k]);
                memcpy(d + 2 * k, &h, 2);
            }
        } else {
            quantize_row(type, s, d, ne0);
        }
    }
}

void ref_decode(uint32_t type, const void *src, uint64_t ne0, uint64_t ne1, float *dst)
{
    uint64_t rb = ggml_row_bytes(type, ne0);
    for (uint64_t r = 0; r < ne1; r++)
        dequantize_row(type, (const uint8_t *)src + r * rb, dst + r * ne0, ne0);
}

void ref_decode_device(uint32_t type, const void *qs, const void *meta, uint64_t n_blocks, float *dst)
{
    const ggml_type_info *t = ggml_type_get(type);
    if (!t)
        return;
    if (t->meta_bytes == 0) {
        dequantize_row(type, qs, dst, n_blocks);
        return;
    }
    uint8_t block[256];   /* larger than any block in the table */
    const uint32_t tail = t->block_bytes - t->qs_start - t->qs_bytes;
    for (uint64_t b = 0; b < n_blocks; b++) {
        const uint8_t *m = (const uint8_t *)meta + b * t->meta_bytes;
        memcpy(block, m, t->qs_start);
        memcpy(block + t->qs_start, (const uint8_t *)qs + b * t->qs_bytes, t->qs_bytes);
        memcpy(block + t->qs_start + t->qs_bytes, m + t->qs_start, tail);
        dequantize_row(type, block, dst + b * t->block, t->block);
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
    uint64_t rb = ggml_row_bytes(type, K);
    for (uint64_t i = 0; i < n; i++) {
        if (ids[i] >= M)
            memset(out + i * K, 0, K * sizeof(float));
        else
            dequantize_row(type, (const uint8_t *)table + ids[i] * rb, out + i * K, K);
    }
}
