/* Two threads contend for one lock through one shared client handle: they never hold it at the
 * same time, and every grant's fencing token is higher than the one before. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>

#define ROUNDS 8

static tenure_client_t *client;
static char name[200];
static atomic_int inside;         /* holders inside the critical section right now */
static atomic_int overlaps;       /* times a thread found another one inside */
static atomic_int token_regressions;
static atomic_int failures;
static uint64_t last_token;       /* written only while holding the lock */
static atomic_int grants;

static void *worker(void *arg) {
    (void)arg;
    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 20000;
    opts.wait_ms = 30000;
    for (int i = 0; i < ROUNDS; i++) {
        tenure_lease_t *lease = NULL;
        tenure_status_t status = tenure_acquire(client, name, &opts, &lease);
        if (status != TENURE_OK) {
            fprintf(stderr, "acquire: %s\n", tenure_last_error());
            atomic_fetch_add(&failures, 1);
            continue;
        }
        if (atomic_fetch_add(&inside, 1) != 0) {
            atomic_fetch_add(&overlaps, 1);
        }
        uint64_t token = tenure_lease_token(lease);
        if (token <= last_token) {
            fprintf(stderr, "token %llu after %llu\n", (unsigned long long)token,
                    (unsigned long long)last_token);
            atomic_fetch_add(&token_regressions, 1);
        }
        last_token = token;
        if (!tenure_lease_is_held(lease)) {
            atomic_fetch_add(&failures, 1);
        }
        /* Stay inside a little, so the other thread is surely queued meanwhile. */
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        atomic_fetch_sub(&inside, 1);
        atomic_fetch_add(&grants, 1);
        /* Leave the critical section before releasing: after the release the other thread may
         * enter at once. */
        if (tenure_release(lease, NULL) != TENURE_OK) {
            fprintf(stderr, "release: %s\n", tenure_last_error());
            atomic_fetch_add(&failures, 1);
        }
        tenure_lease_free(lease);
    }
    return NULL;
}

int main(void) {
    unique_name(name, sizeof name, "contention", "mutex");
    REQUIRE_OK(test_client(10000, &client));
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_create(&threads[i], NULL, worker, NULL) == 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    printf("%d grants, last token %llu\n", atomic_load(&grants), (unsigned long long)last_token);
    CHECK(atomic_load(&grants) == 2 * ROUNDS);
    CHECK(atomic_load(&overlaps) == 0);
    CHECK(atomic_load(&token_regressions) == 0);
    CHECK(atomic_load(&failures) == 0);
    tenure_client_free(client);
    return harness_finish();
}
