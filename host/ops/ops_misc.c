/* vkl_op_rmsnorm(_add), vkl_op_rope, vkl_op_softmax, vkl_op_silu_mul, vkl_op_gelu_mul, vkl_op_add, vkl_op_scale, vkl_op_softcap (host/ops/ops.h):
 * argument checks and one dispatch each. Shaders: shaders/{rmsnorm,rope,softmax,silu_mul,add,scale}.comp. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "host/ops/ops.h"
#include "host/ops/ops_misc_internal.h"

#define ELEMWISE_WG 256

static vkllm_status check_graph(vkr_graph *g, const char *op)
{
    if (!g)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: graph is NULL", op);
    return VKLLM_OK;
}

static vkllm_status rmsnorm(vkr_graph *g, const char *name, vk_view x, const vk_tensor *weight, vk_view out,
                            uint32_t n_rows, uint32_t dim, float eps)
{
    vkllm_status st = check_graph(g, name);
    if (st != VKLLM_OK)
        return st;
    if (dim == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: dim is 0", name);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: bad eps %g", name, (double)eps);
    if ((st = opsm_check_f32_vector(weight, dim, name, "weight")) != VKLLM_OK)
        return st;
    if ((uint64_t)n_rows * dim > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: %u x %u elements is too many", name, n_rows, dim);
    if (n_rows == 0)
        return VKLLM_OK;

    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = name;
    const uint32_t wg = opsm_reduce_wg(dev);
    const VkDeviceSize bytes = (VkDeviceSize)n_rows * dim * 4;
    uint32_t xo = 0, wo = 0, oo = 0;
    if ((st = opsm_pipeline(dev, &d, name, true, 3, 6 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, x.buf, x.offset, bytes, false, 4, &xo, "x")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, weight->buffer, weight->qs_offset, (VkDeviceSize)dim * 4, false, 4, &wo,
                        "weight")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 2, out.buf, out.offset, bytes, true, 4, &oo, "out")) != VKLLM_OK ||
        (st = opsm_groups(dev, &d, n_rows)) != VKLLM_OK)
        return st;
    d.push[0] = n_rows;
    d.push[1] = dim;
    opsm_push_f32(&d, 2, eps);
    d.push[3] = xo;
    d.push[4] = wo;
    d.push[5] = oo;
    return vkr_graph_add(g, &d);
}

vkllm_status vkl_op_rmsnorm(vkr_graph *g, vk_view x, const vk_tensor *weight, vk_view out, uint32_t n_rows,
                        uint32_t dim, float eps)
{
    return rmsnorm(g, "rmsnorm", x, weight, out, n_rows, dim, eps);
}

vkllm_status vkl_op_rmsnorm_add(vkr_graph *g, vk_view x, const vk_tensor *weight, vk_view out, uint32_t n_rows,
                            uint32_t dim, float eps)
{
    return rmsnorm(g, "rmsnorm_add", x, weight, out, n_rows, dim, eps);
}

vkllm_status vkl_op_rope(vkr_graph *g, vk_view x, vk_view positions, const vk_rope_params *p)
{
    vkllm_status st = check_graph(g, "rope");
    if (st != VKLLM_OK)
        return st;
    if (!p)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "rope: parameters are NULL");
    if (p->mode != VK_ROPE_INTERLEAVED && p->mode != VK_ROPE_NEOX)
        return vkr_error(VKLLM_ERR_UNSUPPORTED, "rope: unknown mode %d", (int)p->mode);
    if (p->n_heads == 0 || p->head_dim == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "rope: %u heads of %u dims", p->n_heads, p->head_dim);
    if (p->n_rot > p->head_dim || p->n_rot % 2)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "rope: n_rot %u must be even and at most head_dim %u", p->n_rot,
                         p->head_dim);
    if (!(p->theta_base > 0.0f) || !isfinite(p->theta_base))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "rope: bad theta_base %g", (double)p->theta_base);
    if ((uint64_t)p->n_rows * p->n_heads * p->head_dim > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "rope: %u rows x %u heads x %u dims is too many", p->n_rows,
                         p->n_heads, p->head_dim);
    if (p->freq_factors && (st = opsm_check_f32_vector(p->freq_factors, p->n_rot / 2, "rope", "freq_factors")) != VKLLM_OK)
        return st;
    if (p->n_rows == 0 || p->n_rot == 0)
        return VKLLM_OK;

    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "rope";
    const uint32_t wg = opsm_wg_size(dev, ELEMWISE_WG);
    const uint64_t n_pairs = (uint64_t)p->n_rows * p->n_heads * (p->n_rot / 2);
    uint32_t xo = 0, po = 0, fo = 0;
    if ((st = opsm_pipeline(dev, &d, "rope", false, 3, 10 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, x.buf, x.offset, (VkDeviceSize)p->n_rows * p->n_heads * p->head_dim * 4, true,
                        4, &xo, "x")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, positions.buf, positions.offset, (VkDeviceSize)p->n_rows * 4, false, 4, &po,
                        "positions")) != VKLLM_OK)
        return st;
    if (p->freq_factors)
        st = opsm_bind(dev, &d, 2, p->freq_factors->buffer, p->freq_factors->qs_offset,
                       (VkDeviceSize)(p->n_rot / 2) * 4, false, 4, &fo, "freq_factors");
    else   /* not read by the shader; any valid range will do */
        st = opsm_bind(dev, &d, 2, positions.buf, positions.offset, (VkDeviceSize)p->n_rows * 4, false, 4, &fo,
                       "positions");
    if (st != VKLLM_OK || (st = opsm_groups_for(dev, &d, n_pairs, wg)) != VKLLM_OK)
        return st;
    d.push[0] = p->n_rows;
    d.push[1] = p->n_heads;
    d.push[2] = p->head_dim;
    d.push[3] = p->n_rot;
    opsm_push_f32(&d, 4, (float)(-2.0 * log2((double)p->theta_base) / (double)p->n_rot));
    d.push[5] = p->mode == VK_ROPE_NEOX;
    d.push[6] = p->freq_factors != NULL;
    d.push[7] = xo;
    d.push[8] = po;
    d.push[9] = fo;
    return vkr_graph_add(g, &d);
}

vkllm_status vkl_op_softmax(vkr_graph *g, vk_view x, vk_view out, uint32_t n_rows, uint32_t n_cols, float scale,
                        bool causal, uint32_t causal_offset)
{
    vkllm_status st = check_graph(g, "softmax");
    if (st != VKLLM_OK)
        return st;
    if (n_cols == 0)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "softmax: n_cols is 0");
    if (!isfinite(scale))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "softmax: bad scale %g", (double)scale);
    if ((uint64_t)n_rows * n_cols > UINT32_MAX)
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "softmax: %u x %u elements is too many", n_rows, n_cols);
    if (n_rows == 0)
        return VKLLM_OK;

    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = "softmax";
    const uint32_t wg = opsm_reduce_wg(dev);
    const VkDeviceSize bytes = (VkDeviceSize)n_rows * n_cols * 4;
    uint32_t xo = 0, oo = 0;
    if ((st = opsm_pipeline(dev, &d, "softmax", true, 2, 7 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, x.buf, x.offset, bytes, false, 4, &xo, "x")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, out.buf, out.offset, bytes, true, 4, &oo, "out")) != VKLLM_OK ||
        (st = opsm_groups(dev, &d, n_rows)) != VKLLM_OK)
        return st;
    d.push[0] = n_rows;
    d.push[1] = n_cols;
    opsm_push_f32(&d, 2, scale);
    d.push[3] = causal;
    d.push[4] = causal_offset;
    d.push[5] = xo;
    d.push[6] = oo;
    return vkr_graph_add(g, &d);
}

/* out = f(a, b) elementwise over n floats: shaders silu_mul and add share the binding/push layout. */
static vkllm_status elementwise(vkr_graph *g, const char *shader, const char *name, vk_view a, vk_view b,
                                vk_view out, uint32_t n)
{
    vkllm_status st = check_graph(g, name);
    if (st != VKLLM_OK)
        return st;
    if (n == 0)
        return VKLLM_OK;
    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = name;
    const uint32_t wg = opsm_wg_size(dev, ELEMWISE_WG);
    const VkDeviceSize bytes = (VkDeviceSize)n * 4;
    uint32_t ao = 0, bo = 0, oo = 0;
    if ((st = opsm_pipeline(dev, &d, shader, false, 3, 4 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, a.buf, a.offset, bytes, false, 4, &ao, "input a")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 1, b.buf, b.offset, bytes, false, 4, &bo, "input b")) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 2, out.buf, out.offset, bytes, true, 4, &oo, "out")) != VKLLM_OK ||
        (st = opsm_groups_for(dev, &d, n, wg)) != VKLLM_OK)
        return st;
    d.push[0] = n;
    d.push[1] = ao;
    d.push[2] = bo;
    d.push[3] = oo;
    return vkr_graph_add(g, &d);
}

vkllm_status vkl_op_silu_mul(vkr_graph *g, vk_view gate, vk_view up, vk_view out, uint32_t n)
{
    return elementwise(g, "silu_mul", "silu_mul", gate, up, out, n);
}

vkllm_status vkl_op_gelu_mul(vkr_graph *g, vk_view gate, vk_view up, vk_view out, uint32_t n)
{
    return elementwise(g, "gelu_mul", "gelu_mul", gate, up, out, n);
}

vkllm_status vkl_op_add(vkr_graph *g, vk_view a, vk_view b, vk_view out, uint32_t n)
{
    return elementwise(g, "add", "add", a, b, out, n);
}

/* x = f(x) in place over n floats with one parameter: shaders scale and softcap. */
static vkllm_status in_place(vkr_graph *g, const char *shader, vk_view x, uint32_t n, float a)
{
    vkllm_status st = check_graph(g, shader);
    if (st != VKLLM_OK)
        return st;
    if (!isfinite(a))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "%s: bad parameter %g", shader, (double)a);
    if (n == 0)
        return VKLLM_OK;
    vkr_device *dev = vkr_graph_device(g);
    vkr_dispatch d;
    memset(&d, 0, sizeof d);
    d.name = shader;
    const uint32_t wg = opsm_wg_size(dev, ELEMWISE_WG);
    uint32_t xo = 0;
    if ((st = opsm_pipeline(dev, &d, shader, false, 1, 3 * 4, wg)) != VKLLM_OK ||
        (st = opsm_bind(dev, &d, 0, x.buf, x.offset, (VkDeviceSize)n * 4, true, 4, &xo, "x")) != VKLLM_OK ||
        (st = opsm_groups_for(dev, &d, n, wg)) != VKLLM_OK)
        return st;
    d.push[0] = n;
    opsm_push_f32(&d, 1, a);
    d.push[2] = xo;
    return vkr_graph_add(g, &d);
}

vkllm_status vkl_op_scale(vkr_graph *g, vk_view x, uint32_t n, float a)
{
    return in_place(g, "scale", x, n, a);
}

vkllm_status vkl_op_softcap(vkr_graph *g, vk_view x, uint32_t n, float cap)
{
    if (!(cap > 0.0f))
        return vkr_error(VKLLM_ERR_INVALID_ARGUMENT, "softcap: cap %g must be positive", (double)cap);
    return in_place(g, "softcap", x, n, cap);
}
