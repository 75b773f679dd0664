/* Shared test helpers: seeded random data, error metrics, a validated device, skip handling. */
#ifndef VKLLM_TEST_UTIL_H
#define VKLLM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/device.h"

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

/* Path to a file under the shared test data (VKLLM_SHARED, default ../shared); NULL if it is missing.
 * Returned string is static storage (valid until the next call). */
const char *test_shared_path(const char *rel);

/* Reads a whole file (NUL-terminated, *len without it); NULL if it cannot be read. Free with free(). */
char *test_read_file(const char *path, size_t *len);
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

#endif
