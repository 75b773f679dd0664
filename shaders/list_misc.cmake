# Norms, rope, softmax, elementwise, KV cache and attention kernels (host/ops_misc.c, host/ops_attention.c).
# Kernels with a workgroup reduction come in two variants: NAME (shared-memory tree) and NAME_sg
# (subgroup arithmetic), chosen by the host from dev->info.features.subgroup_arithmetic.
vkllm_shader(rmsnorm rmsnorm.comp)
vkllm_shader(rmsnorm_sg rmsnorm.comp DEFINES USE_SUBGROUP=1)
vkllm_shader(softmax softmax.comp)
vkllm_shader(softmax_sg softmax.comp DEFINES USE_SUBGROUP=1)
vkllm_shader(attention attention.comp)
vkllm_shader(attention_sg attention.comp DEFINES USE_SUBGROUP=1)
vkllm_shader(attention_split attention.comp DEFINES SPLIT=1)
vkllm_shader(attention_split_sg attention.comp DEFINES SPLIT=1 USE_SUBGROUP=1)
vkllm_shader(attention_combine attention_combine.comp)
vkllm_shader(attention_tiled attention_tiled.comp)
vkllm_shader(rope rope.comp)
vkllm_shader(silu_mul silu_mul.comp)
vkllm_shader(add add.comp)
vkllm_shader(kv_store kv_store.comp)
vkllm_shader(kv_store_rope kv_store.comp DEFINES ROPE=1)
