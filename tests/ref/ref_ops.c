#include "ref/ref_ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/format/quant.h"
#include "util.h"

void ref_rmsnorm(const float *x, const float *w, float *out, uint32_t n_rows, uint32_t dim, float eps)
{
    for (uint32_t r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * dim;
        double ss = 0;
        for (uint32_t i = 0; i < dim; i++)
            ss += (double)xr[i] * xr[i];
        double s = 1.0 / sqrt(ss / dim + (double)eps);
        for (uint32_t i = 0; i < dim; i++)
            out[(size_t)r * dim + i] = (float)(xr[i] * s * w[i]);
    }
}

void ref_rope(float *x, const uint32_t *positions, uint32_t n_rows, uint32_t n_heads, uint32_t head_dim,
              uint32_t n_rot, float theta_base, bool neox, const float *freq_factors)
{
    const uint32_t half = n_rot / 2;
    for (uint32_t r = 0; r < n_rows; r++) {
        for (uint32_t h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)r * n_heads + h) * head_dim;
            for (uint32_t i = 0; i < half; i++) {
                double theta = (double)positions[r] * pow((double)theta_base, -2.0 * i / n_rot);
                if (freq_factors)
                    theta /= freq_factors[i];
                double c = cos(theta), s = sin(theta);
                uint32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
                double x0 = v[a], x1 = v[b];
                v[a] = (float)(x0 * c - x1 * s);
                v[b] = (float)(x0 * s + x1 * c);
            }
        }
    }
}

void ref_softmax(const float *x, float *out, uint32_t n_rows, uint32_t n_cols, float scale, bool causal,
                 uint32_t causal_offset)
{
    for (uint32_t r = 0; r < n_rows; r++) {
        const float *xr = x + (size_t)r * n_cols;
        float *o = out + (size_t)r * n_cols;
        uint64_t lim = n_cols;
        if (causal && (uint64_t)causal_offset + r + 1 < lim)
            lim = (uint64_t)causal_offset + r + 1;
        double m = -INFINITY;
        for (uint64_t c = 0; c < lim; c++)
            m = fmax(m, (double)xr[c] * scale);
        double s = 0;
        for (uint64_t c = 0; c < lim; c++)
            s += exp((double)xr[c] * scale - m);
        for (uint64_t c = 0; c < n_cols; c++)
            o[c] = c < lim ? (float)(exp((double)xr[c] * scale - m) / s) : 0.0f;
    }
}

void ref_silu_mul(const float *gate, const float *up, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

void ref_gelu_mul(const float *gate, const float *up, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(0.5 * g * (1.0 + tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) * up[i]);
    }
}

void ref_add(const float *a, const float *b, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)a[i] + (double)b[i]);
}

uint16_t ref_f16_bits(float x) { return vkl_fp32_to_fp16(x); }
float ref_f16_value(uint16_t h) { return vkl_fp16_to_fp32(h); }

void ref_kv_store(const float *k, const float *v, uint16_t *k_cache, uint16_t *v_cache, const uint32_t *positions,
                  uint32_t n_rows, uint32_t kv_dim, uint32_t n_ctx)
{
    for (uint32_t r = 0; r < n_rows; r++) {
        if (positions[r] >= n_ctx)
            continue;
        for (uint32_t i = 0; i < kv_dim; i++) {
            k_cache[(size_t)positions[r] * kv_dim + i] = vkl_fp32_to_fp16(k[(size_t)r * kv_dim + i]);
            v_cache[(size_t)positions[r] * kv_dim + i] = vkl_fp32_to_fp16(v[(size_t)r * kv_dim + i]);
        }
    }
}

void ref_attention(const float *q, const uint16_t *k_cache, const uint16_t *v_cache, const uint32_t *positions,
                   float *out, uint32_t n_rows, uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim,
                   uint32_t n_ctx, float scale, uint32_t window, float softcap)
{
    const uint32_t group = n_heads / n_kv_heads, kv_dim = n_kv_heads * head_dim;
    double *s = malloc(sizeof(double) * n_ctx);
    double *acc = malloc(sizeof(double) * head_dim);
    if (!s || !acc) {   /* the comparison then fails */
        fprintf(stderr, "ref_attention: out of memory\n");
        for (size_t i = 0; i < (size_t)n_rows * n_heads * head_dim; i++)
            out[i] = NAN;
        free(s);
        free(acc);
        return;
    }
    for (uint32_t r = 0; r < n_rows; r++) {
        uint32_t len = (positions[r] < n_ctx ? positions[r] : n_ctx - 1) + 1;
        uint32_t first = window && len > window ? len - window : 0;
        for (uint32_t h = 0; h < n_heads; h++) {
            const float *qh = q + ((size_t)r * n_heads + h) * head_dim;
            const size_t kvo = (size_t)(h / group) * head_dim;
            double m = -INFINITY;
            for (uint32_t j = first; j < len; j++) {
                const uint16_t *kr = k_cache + (size_t)j * kv_dim + kvo;
                double d = 0;
                for (uint32_t i = 0; i < head_dim; i++)
                    d += (double)qh[i] * vkl_fp16_to_fp32(kr[i]);
                s[j] = softcap > 0 ? softcap * tanh(d * scale / softcap) : d * scale;
                m = fmax(m, s[j]);
            }
            double sum = 0;
            memset(acc, 0, sizeof(double) * head_dim);
            for (uint32_t j = first; j < len; j++) {
                double p = exp(s[j] - m);
                sum += p;
                const uint16_t *vr = v_cache + (size_t)j * kv_dim + kvo;
                for (uint32_t i = 0; i < head_dim; i++)
                    acc[i] += p * vkl_fp16_to_fp32(vr[i]);
            }
            float *o = out + ((size_t)r * n_heads + h) * head_dim;
            for (uint32_t i = 0; i < head_dim; i++)
                o[i] = (float)(acc[i] / sum);
        }
    }
    free(s);
    free(acc);
}

/* ---- Device helpers ---- */

vkr_buffer *opt_buffer(vkr_device *dev, size_t bytes)
{
    vkr_buffer *buf = NULL;
    bytes = (bytes + 3) & ~(size_t)3;
    vkllm_status st = vkr_buffer_create(dev, bytes, VKR_MEMORY_DEVICE, &buf);
    CHECK(st == VKLLM_OK, "vkr_buffer_create(%zu): %s", bytes, vkr_last_error());
    if (st != VKLLM_OK)
        return NULL;
    if (!opt_poison(dev, buf)) {
        vkr_buffer_destroy(dev, buf);
        return NULL;
    }
    return buf;
}

bool opt_upload(vkr_device *dev, vkr_buffer *buf, size_t offset, const void *src, size_t bytes)
{
    vkllm_status st = vkr_buffer_upload(dev, buf, offset, src, bytes);
    CHECK(st == VKLLM_OK, "vkr_buffer_upload(%zu bytes at %zu): %s", bytes, offset, vkr_last_error());
    return st == VKLLM_OK;
}

bool opt_download(vkr_device *dev, vkr_buffer *buf, size_t offset, void *dst, size_t bytes)
{
    vkllm_status st = vkr_buffer_download(dev, buf, offset, dst, bytes);
    CHECK(st == VKLLM_OK, "vkr_buffer_download(%zu bytes at %zu): %s", bytes, offset, vkr_last_error());
    return st == VKLLM_OK;
}

bool opt_poison(vkr_device *dev, vkr_buffer *buf)
{
    vkllm_status st = vkr_buffer_fill(dev, buf, 0, buf->size & ~(VkDeviceSize)3, OPT_POISON);
    CHECK(st == VKLLM_OK, "vkr_buffer_fill: %s", vkr_last_error());
    return st == VKLLM_OK;
}

size_t opt_count_outside_host(const void *all, size_t size, size_t offset, size_t bytes)
{
    size_t bad = 0;
    uint32_t word;
    for (size_t i = 0; i + 4 <= size; i += 4) {
        if (i >= offset && i < offset + bytes)
            continue;
        memcpy(&word, (const char *)all + i, 4);
        bad += word != OPT_POISON;
    }
    return bad;
}

size_t opt_count_outside(vkr_device *dev, vkr_buffer *buf, size_t offset, size_t bytes)
{
    size_t words = (size_t)(buf->size / 4);
    uint32_t *all = malloc(words * 4);
    if (!all || !opt_download(dev, buf, 0, all, words * 4)) {
        free(all);
        return words;
    }
    size_t bad = opt_count_outside_host(all, words * 4, offset, bytes);
    free(all);
    return bad;
}

vk_tensor opt_f32_tensor(vkr_buffer *buf, size_t offset, uint64_t n)
{
    vk_tensor t;
    memset(&t, 0, sizeof t);
    t.type = GGML_TYPE_F32;
    t.ne[0] = n;
    t.ne[1] = 1;
    t.buffer = buf;
    t.qs_offset = offset;
    t.row_qs_bytes = n * 4;
    return t;
}

size_t opt_aligned(const vkr_device *dev, uint32_t k)
{
    size_t a = (size_t)dev->info.features.min_storage_buffer_offset_alignment;
    if (a < 4)
        a = 4;
    return a * k;
}

size_t opt_report_mismatches(const char *what, const float *a, const float *ref, size_t n, double atol,
                             double rtol)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu] = %.9g, want %.9g\n", what, i, a[i], ref[i]);
            bad++;
        }
    }
    if (bad > 5)
        fprintf(stderr, "  %s: %zu mismatches in all\n", what, bad);
    return bad;
}
