/* A minimal test harness for the C SDK's tests: CHECK macros that count instead of aborting,
 * a closing "N passed, M failed" line, a monotonic clock, and lock names unique per run.
 * The cluster comes from TENURE_ENDPOINTS (set by tests/with_cluster.sh from the CTest fixture). */
#ifndef TENURE_TEST_HARNESS_H
#define TENURE_TEST_HARNESS_H

#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tenure.h"

static int harness_passed;
static int harness_failed;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (cond) {                                                                          \
            harness_passed++;                                                                \
        } else {                                                                             \
            harness_failed++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

/* Checks a status, printing the message of the call when it differs. */
#define CHECK_STATUS(call, expected)                                                         \
    do {                                                                                     \
        tenure_status_t check_status_ = (call);                                              \
        if (check_status_ == (expected)) {                                                   \
            harness_passed++;                                                                \
        } else {                                                                             \
            harness_failed++;                                                                \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n",         \
                    __FILE__, __LINE__, #call, tenure_status_name(check_status_),            \
                    tenure_status_name(expected), tenure_last_error());                      \
        }                                                                                    \
    } while (0)

/* Like CHECK_STATUS for TENURE_OK, but ends the test when it fails (later steps need it). */
#define REQUIRE_OK(call)                                                                     \
    do {                                                                                     \
        tenure_status_t require_status_ = (call);                                            \
        if (require_status_ != TENURE_OK) {                                                  \
            fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #call,        \
                    tenure_status_name(require_status_), tenure_last_error());               \
            harness_failed++;                                                                \
            return harness_finish();                                                         \
        }                                                                                    \
        harness_passed++;                                                                    \
    } while (0)

static inline int harness_finish(void) {
    printf("%d passed, %d failed\n", harness_passed, harness_failed);
    return harness_failed == 0 && harness_passed > 0 ? 0 : 1;
}

static inline int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "sdk-c/<test>/<pid>-<clock>/<what>": unique per run, so reruns against one cluster (and the
 * static and shared builds running side by side) never meet each other's locks. */
static inline void unique_name(char *buf, size_t size, const char *test, const char *what) {
    static unsigned counter; /* one per file: each test is one file */
    snprintf(buf, size, "sdk-c/%s/%ld-%lld-%u/%s", test, (long)getpid(), (long long)now_ms(),
             counter++, what);
}

/* A client of the test cluster (TENURE_ENDPOINTS) with the given call timeout. */
static inline tenure_status_t test_client(uint64_t timeout_ms, tenure_client_t **out) {
    const char *endpoints = getenv("TENURE_ENDPOINTS");
    if (endpoints == NULL || endpoints[0] == '\0') {
        fprintf(stderr, "TENURE_ENDPOINTS is not set: run this test through ctest (it starts a "
                        "cluster), or point it at a running cluster\n");
        exit(2);
    }
    tenure_client_options_t options;
    tenure_client_options_default(&options);
    options.timeout_ms = timeout_ms;
    options.owner = "sdk-c-test";
    return tenure_client_new(endpoints, &options, out);
}

#endif
