/* Contexts on separate threads (include/vkllm.h, "Threads"): two contexts of one model generate the
 * stories260K greedy story at the same time, each on its own thread, several rounds, under the validation
 * layer (its thread-safety checks report unsynchronized queue submissions). Both texts must equal the
 * single-threaded one, which must be the golden story, and no validation message may appear. The second
 * thread decodes its prompt in batches of 2 (several submissions per call), so submissions interleave. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "app_device.h"
#include "greedy.h"
#include "util.h"

#define N_TOKENS 40
#define ROUNDS 3

typedef struct job {
    vkllm_model *model;
    uint32_t n_batch;
    char text[1024];
    vkllm_status status;
    char error[256];
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    char text[sizeof j->text];
    j->status = VKLLM_OK;
    for (int r = 0; r < ROUNDS && j->status == VKLLM_OK; r++) {
        j->status = greedy_story(j->model, j->n_batch, N_TOKENS, text, sizeof text);
        if (j->status != VKLLM_OK)
            snprintf(j->error, sizeof j->error, "%s", vkllm_last_error());
        else if (r == 0)
            memcpy(j->text, text, sizeof text);
        else if (strcmp(text, j->text) != 0)
            snprintf(j->error, sizeof j->error, "round %d differs from round 0: '%.200s'", r, text);
    }
    return NULL;
}

/* Both threads generate ROUNDS stories at once; each text must be `golden`. */
static void two_threads(vkllm_model *m, const char *golden, const char *where)
{
    job jobs[2] = {{.model = m, .n_batch = 0}, {.model = m, .n_batch = 2}};
    pthread_t threads[2];
    bool started[2];
    for (int i = 0; i < 2; i++) {
        started[i] = pthread_create(&threads[i], NULL, run_job, &jobs[i]) == 0;
        CHECK(started[i], "pthread_create");
    }
    for (int i = 0; i < 2; i++) {
        if (!started[i])
            continue;
        pthread_join(threads[i], NULL);
        CHECK(jobs[i].status == VKLLM_OK && !jobs[i].error[0], "%s, thread %d: %s", where, i, jobs[i].error);
        CHECK(!strcmp(jobs[i].text, golden), "%s, thread %d wrote '%s', not the single-threaded text", where, i,
              jobs[i].text);
    }
}

/* The application's queue lock, here a probe: it does not exclude anything itself, it records how many
 * vkllm submissions were inside it at once (vkllm must serialize its own) and stays held a little, so
 * that overlapping submissions would be seen. */
static _Atomic int in_lock, max_in_lock, lock_calls, unlock_calls;

static void probe_lock(void *user)
{
    CHECK(user == &in_lock, "the queue lock got user %p", user);
    int now = ++in_lock;
    if (now > max_in_lock)
        max_in_lock = now;
    lock_calls++;
    struct timespec pause = {0, 200000};
    nanosleep(&pause, NULL);
}

static void probe_unlock(void *user)
{
    (void)user;
    in_lock--;
    unlock_calls++;
}

/* Two contexts on the application's device, its queue lock passed in. */
static void on_app_device(const char *path, const char *golden)
{
    app_device a;
    if (!app_device_create(&a, VK_API_VERSION_1_2, true)) {
        test_failures++;
        return;
    }
    vkllm_model_params mp;
    vkllm_model_default_params(&mp);
    app_device_params(&a, true, &mp);
    mp.vk_queue_lock = probe_lock;
    mp.vk_queue_unlock = probe_unlock;
    mp.vk_queue_lock_user = (void *)&in_lock;
    vkllm_model *m = NULL;
    vkllm_status st = vkllm_model_load(path, &mp, &m);
    CHECK(st == VKLLM_OK, "load on the application's device: %s", vkllm_last_error());
    if (st == VKLLM_OK)
        two_threads(m, golden, "application's device");
    vkllm_model_free(m);
    CHECK(lock_calls > 0 && lock_calls == unlock_calls, "queue lock calls %d, unlock calls %d", (int)lock_calls,
          (int)unlock_calls);
    CHECK(max_in_lock == 1, "%d vkllm submissions were inside the application's queue lock at once", (int)max_in_lock);
    printf("application's device: %d submissions under its queue lock, never two at once\n", (int)lock_calls);
    app_device_destroy(&a);
    CHECK(app_device_messages() == 0, "%u validation message(s) on the application's instance", app_device_messages());
}

int main(void)
{
    const char *path = test_shared_path("models/stories260K.gguf");
    if (!path) {
        fprintf(stderr, "SKIP: ../shared/models/stories260K.gguf not found\n");
        return TEST_SKIP;
    }
    vkllm_model *m = NULL;
    if (vkllm_model_load(path, NULL, &m) != VKLLM_OK) {
        fprintf(stderr, "FAIL: %s\n", vkllm_last_error());
        return 1;
    }
    char golden[1024];
    vkllm_status st = greedy_story(m, 0, N_TOKENS, golden, sizeof golden);
    CHECK(st == VKLLM_OK, "single-threaded generation: %s", vkllm_last_error());
    CHECK(!strncmp(golden, GREEDY_STORY_START, strlen(GREEDY_STORY_START)), "not the golden story: '%s'", golden);
    printf("single thread: %s\n", golden);
    two_threads(m, golden, "vkllm's device");
    vkllm_model_free(m);
    on_app_device(path, golden);
    return test_finish("threads");
}
