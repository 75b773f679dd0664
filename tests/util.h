/* Shared test helpers: seeded random data, error metrics, a validated device, skip handling, and the frame
 * of the kernel tests (device and seed, reduction variants, recording and running an op, argument errors). */
#ifndef VKLLM_TEST_UTIL_H
#define VKLLM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/device.h"
#include "runtime/graph.h"
#include "runtime/memory.h"

#define TEST_SKIP 77

/* Seed: VKLLM_TEST_SEED if set, else fresh from the clock. Printed once, so a failure can be replayed. */
uint64_t test_seed(void);

typedef struct test_rng { uint64_t s; } test_rng;
void rng_init(test_rng *r, uint64_t seed);
uint32_t rng_u32(test_rng *r);
float rng_uniform(test_rng *r, float lo, float hi);
float rng_normal(test_rng *r);
void rng_fill(test_rng *r, float *x, size_t n, float lo, float hi);

/* ||a - ref||_2 / max(||ref||_2, tiny) */
double rel_l2(const float *a, const float *ref, size_t n);
/* Index of the first non-finite value, or -1. */
long first_nonfinite(const float *a, size_t n);

/* A device with the validation layer on (VKLLM_VALIDATION is set by ctest). Returns false on failure
 * (message printed). test_device_close returns false if any validation message was seen. */
typedef struct test_device {
    vkr_instance *inst;
    vkr_device *dev;
} test_device;
bool test_device_open(test_device *t);
/* Validation messages a test provoked on purpose (to prove the layer is live); not counted as failures. */
extern uint32_t test_expected_validation_messages;
bool test_device_close(test_device *t);

/* ---- The frame of the kernel tests (test_op_*.c) ---- */

/* Destroys the buffers listed, NULL ones skipped (a test's clean-up after a partial set-up):
 * TEST_DESTROY_BUFFERS(dev, xb, yb, ...). */
void test_destroy_buffers(vkr_device *dev, vkr_buffer *const *bufs, size_t n);
#define TEST_DESTROY_BUFFERS(dev, ...)                                  \
    test_destroy_buffers((dev), (vkr_buffer *const[]){__VA_ARGS__},      \
                         sizeof((vkr_buffer *const[]){__VA_ARGS__}) / sizeof(vkr_buffer *))

/* Seeds rng with test_seed() and opens the validated device; false (message printed) if it cannot. */
bool test_op_begin(test_device *td, test_rng *rng);

/* Runs run(dev, rng) once per reduction variant of the kernels: with subgroup arithmetic where the device
 * has it, then with the shared-memory fallback; the device's feature flag is restored afterwards. */
void test_each_reduction_variant(vkr_device *dev, test_rng *rng, void (*run)(vkr_device *dev, test_rng *rng));

/* After `recorded = op_xxx(g, ...)`: checks that the op recorded and that the graph then ran. False (the
 * failure counted, with `op` in the message) otherwise. */
bool test_op_run(vkr_graph *g, vkllm_status recorded, const char *op);

/* Argument-error checks: runs checks(g, b) on an empty graph and a (poisoned) device buffer of `bytes`,
 * then frees both; a failure to make them is counted instead. */
void test_op_errors(vkr_device *dev, size_t bytes, void (*checks)(vkr_graph *g, vkr_buffer *b));

/* The whole main of a row-reduction kernel test (rmsnorm, softmax): run_all under each reduction variant, then
 * argument_errors through test_op_errors (a 4096-byte buffer). Returns the exit status. */
int test_reduction_op_main(const char *name, void (*run_all)(vkr_device *dev, test_rng *rng),
                           void (*argument_errors)(vkr_graph *g, vkr_buffer *b));

/* Path to a file under the shared test data (VKLLM_SHARED, default ../shared); NULL if it is missing.
 * Returned string is static storage (valid until the next call). */
const char *test_shared_path(const char *rel);

/* Reads a whole file (NUL-terminated, *len without it); NULL if it cannot be read. Free with free(). */
char *test_read_file(const char *path, size_t *len);
/* The tokenizer of a GGUF file (vocab-only files too); NULL, with a failed check, if it cannot be loaded. */
struct tokenizer *test_load_tokenizer(const char *path);
/* Diagnostics: a string in quotes with control bytes escaped (the first 400 bytes), and an id list
 * (the first 200 ids). */
void test_print_escaped(FILE *out, const char *s, size_t n);
void test_print_ids(FILE *out, const char *label, const int32_t *ids, size_t n);

/* Counting checks: CHECK(cond, fmt, ...) prints "FAIL file:line: ..." and counts the failure. */
extern int test_failures;
#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                      \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n");                                                    \
            test_failures++;                                                          \
        }                                                                             \
    } while (0)

/* Prints the summary line and returns the exit status (0 if no failures). Unexpected Vulkan validation
 * messages seen anywhere in the process (also through the public API) count as a failure. */
int test_finish(const char *name);

/* Index of the largest of n values (the first on ties): the greedy token. */
int32_t test_argmax(const float *x, uint32_t n);

/* A stop callback (abort, vkr_graph_set_stop) for user = a test_call_counter: counts its calls and answers
 * true at call true_at (0: never). */
typedef struct test_call_counter {
    uint32_t calls, true_at;
} test_call_counter;
bool test_count_call(void *user);

#endif
