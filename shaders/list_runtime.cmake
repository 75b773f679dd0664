vkllm_shader(scale_add scale_add.comp)
vkllm_shader(read_bandwidth read_bandwidth.comp)
