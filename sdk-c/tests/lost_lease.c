/* A lease lost behind the holder's back (here: another client releases it by its ids) is
 * reported: the callback runs once with its user_data, the lease reads as not held, renew says
 * LEASE_LOST. A blocking call made inside the callback is refused instead of deadlocking. */
#include "harness.h"

#include <stdatomic.h>

struct seen {
    atomic_int calls;
    atomic_int blocking_status; /* what a blocking call inside the callback returned */
    const tenure_client_t *client;
};

static void on_lost(void *user_data) {
    struct seen *seen = user_data;
    char *value = NULL;
    atomic_store(&seen->blocking_status, tenure_kv_get(seen->client, "any", &value, NULL, NULL));
    atomic_fetch_add(&seen->calls, 1);
}

int main(void) {
    char name[200];
    unique_name(name, sizeof name, "lost_lease", "job");
    tenure_client_t *holder = NULL, *other = NULL;
    REQUIRE_OK(test_client(10000, &holder));
    REQUIRE_OK(test_client(10000, &other));

    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 3000; /* renewed every second: the loss shows within about one */
    opts.wait_ms = 10000;
    tenure_lease_t *lease = NULL;
    REQUIRE_OK(tenure_acquire(holder, name, &opts, &lease));
    struct seen seen = {0, -1, holder};
    REQUIRE_OK(tenure_lease_on_lost(lease, on_lost, &seen));

    bool was_held = false;
    REQUIRE_OK(tenure_release_request(other, name, tenure_lease_request_id(lease), &was_held));
    CHECK(was_held);

    int64_t deadline = now_ms() + 15000;
    while (atomic_load(&seen.calls) == 0 && now_ms() < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    CHECK(atomic_load(&seen.calls) == 1);
    CHECK(atomic_load(&seen.blocking_status) == TENURE_INTERNAL);
    CHECK(!tenure_lease_is_held(lease));
    CHECK_STATUS(tenure_renew(lease), TENURE_LEASE_LOST);

    /* Registering on a lease that is lost already calls at once (on a library thread). */
    struct seen again = {0, -1, holder};
    REQUIRE_OK(tenure_lease_on_lost(lease, on_lost, &again));
    deadline = now_ms() + 5000;
    while (atomic_load(&again.calls) == 0 && now_ms() < deadline) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    CHECK(atomic_load(&again.calls) == 1);
    tenure_lease_free(lease);
    CHECK(atomic_load(&seen.calls) == 1);

    tenure_client_free(holder);
    tenure_client_free(other);
    return harness_finish();
}
