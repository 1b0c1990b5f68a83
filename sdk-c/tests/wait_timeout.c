/* A wait that ends returns TENURE_TIMEOUT with a message, only after the wait, and withdraws
 * the request: the lock has no waiter left, and the holder's release frees it for good. */
#include "harness.h"

int main(void) {
    char name[200];
    unique_name(name, sizeof name, "wait_timeout", "job");
    tenure_client_t *holder_client = NULL, *waiter_client = NULL;
    REQUIRE_OK(test_client(10000, &holder_client));
    REQUIRE_OK(test_client(10000, &waiter_client));

    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 20000;
    opts.wait_ms = 10000;
    tenure_lease_t *holder = NULL;
    REQUIRE_OK(tenure_acquire(holder_client, name, &opts, &holder));

    tenure_lease_t *waiter = NULL;
    opts.wait_ms = 700;
    int64_t start = now_ms();
    CHECK_STATUS(tenure_acquire(waiter_client, name, &opts, &waiter), TENURE_TIMEOUT);
    int64_t took = now_ms() - start;
    CHECK(waiter == NULL);
    CHECK(took >= 700);
    const char *message = tenure_last_error();
    CHECK(strncmp(message, "TIMEOUT: ", 9) == 0);
    CHECK(strstr(message, name) != NULL);
    printf("timed out after %lld ms: %s\n", (long long)took, message);

    /* The withdrawn request left no waiter behind. */
    char *json = NULL;
    REQUIRE_OK(tenure_describe_json(waiter_client, name, &json));
    CHECK(json != NULL && strstr(json, "\"waiters\":[]") != NULL);
    tenure_string_free(json);

    /* So after the holder's release, the lock is free, not granted to a ghost. */
    CHECK_STATUS(tenure_release(holder, NULL), TENURE_OK);
    tenure_lease_free(holder);
    REQUIRE_OK(tenure_try_acquire(waiter_client, name, &opts, &waiter));
    CHECK_STATUS(tenure_release(waiter, NULL), TENURE_OK);
    tenure_lease_free(waiter);

    tenure_client_free(holder_client);
    tenure_client_free(waiter_client);
    return harness_finish();
}
