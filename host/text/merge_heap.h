/* The priority queue both tokenizers merge with: candidates (a pair of adjacent symbols) ordered by a
 * 64-bit key, smallest first. The key is the pair's priority in its upper half and its left symbol's
 * index in the lower half, so equal priorities merge leftmost first. */
#ifndef VKLLM_MERGE_HEAP_H
#define VKLLM_MERGE_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/error.h"

typedef struct merge_cand {
    uint64_t key;
    int32_t left, right;   /* symbol indices */
    int32_t aux[3];        /* the tokenizer's own data about the pair */
} merge_cand;

typedef struct merge_heap {
    merge_cand *v;
    size_t n, cap;
} merge_heap;

/* BPE: a lower merge rank goes first. */
static inline uint64_t merge_key_rank(uint32_t rank, int32_t left)
{
    return (uint64_t)rank << 32 | (uint32_t)left;
}

/* SentencePiece: a higher score goes first (the float's bits mapped to an order-preserving integer,
 * then inverted). */
static inline uint64_t merge_key_score(float score, int32_t left)
{
    uint32_t u;
    memcpy(&u, &score, sizeof u);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
    return (uint64_t)~u << 32 | (uint32_t)left;
}

vkllm_status vkl_merge_heap_push(merge_heap *h, const merge_cand *c);
/* Removes and returns the smallest candidate; h->n must be > 0. */
merge_cand vkl_merge_heap_pop(merge_heap *h);

#endif
