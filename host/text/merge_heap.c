#include "host/text/merge_heap.h"

#include <stdlib.h>

vkllm_status vkl_merge_heap_push(merge_heap *h, const merge_cand *c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        merge_cand *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return vkr_error(VKLLM_ERR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent].key <= c->key)
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = *c;
    return VKLLM_OK;
}

merge_cand vkl_merge_heap_pop(merge_heap *h)
{
    merge_cand top = h->v[0];
    merge_cand last = h->v[--h->n];
    size_t n = h->n, i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h->v[c + 1].key < h->v[c].key)
            c++;
        if (h->v[c].key >= last.key)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n > 0)
        h->v[i] = last;
    return top;
}
