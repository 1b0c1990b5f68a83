/* Acquire and release against a real cluster: the lease's accessors, a second client finding
 * the lock busy, describe/list/validate/cluster status, renew, idempotent release, the
 * lost-lease callback staying silent after a clean release, and close. */
#include "harness.h"

#include <stdatomic.h>

static atomic_int lost_calls;

static void on_lost(void *user_data) {
    (void)user_data;
    atomic_fetch_add(&lost_calls, 1);
}

int main(void) {
    char name[200];
    unique_name(name, sizeof name, "acquire_release", "job");

    tenure_client_t *a = NULL, *b = NULL;
    REQUIRE_OK(test_client(10000, &a));
    REQUIRE_OK(test_client(10000, &b));

    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 20000;
    opts.wait_ms = 10000;
    tenure_lease_t *lease = NULL;
    REQUIRE_OK(tenure_acquire(a, name, &opts, &lease));
    CHECK(lease != NULL);
    CHECK(tenure_last_error()[0] == '\0');
    uint64_t token = tenure_lease_token(lease);
    CHECK(token > 0);
    CHECK(strcmp(tenure_lease_name(lease), name) == 0);
    CHECK(strlen(tenure_lease_request_id(lease)) == 26); /* a ULID */
    CHECK(tenure_lease_is_held(lease));
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    uint64_t now = (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000;
    uint64_t expires = tenure_lease_expires_at_ms(lease);
    CHECK(expires > now && expires <= now + 20000);
    CHECK_STATUS(tenure_lease_on_lost(lease, on_lost, NULL), TENURE_OK);

    /* Someone else finds it busy, and a zero wait ends at once with TIMEOUT. */
    tenure_lease_t *other = NULL;
    CHECK_STATUS(tenure_try_acquire(b, name, &opts, &other), TENURE_BUSY);
    CHECK(strncmp(tenure_last_error(), "BUSY: ", 6) == 0);
    CHECK(other == NULL);
    tenure_acquire_options_t zero = opts;
    zero.wait_ms = 0;
    CHECK_STATUS(tenure_acquire(b, name, &zero, &other), TENURE_TIMEOUT);
    CHECK(other == NULL);

    /* Reads. */
    char *json = NULL;
    REQUIRE_OK(tenure_describe_json(b, name, &json));
    char expect[64];
    snprintf(expect, sizeof expect, "\"token\":%llu", (unsigned long long)token);
    CHECK(json != NULL && strstr(json, expect) != NULL);
    CHECK(json != NULL && strstr(json, "\"owner\":\"sdk-c-test\"") != NULL);
    tenure_string_free(json);
    json = NULL;
    REQUIRE_OK(tenure_list_json(b, "sdk-c/acquire_release/", &json));
    CHECK(json != NULL && strstr(json, name) != NULL);
    tenure_string_free(json);
    json = NULL;
    REQUIRE_OK(tenure_cluster_status_json(b, &json));
    CHECK(json != NULL && strstr(json, "\"has_quorum\":true") != NULL);
    tenure_string_free(json);
    bool current = false;
    REQUIRE_OK(tenure_validate_fence(b, name, token, &current));
    CHECK(current);
    REQUIRE_OK(tenure_validate_fence(b, name, token + 1000, &current));
    CHECK(!current);

    CHECK_STATUS(tenure_renew(lease), TENURE_OK);
    CHECK(tenure_lease_is_held(lease));

    /* Release: confirmed, then idempotent. */
    bool was_held = false;
    CHECK_STATUS(tenure_release(lease, &was_held), TENURE_OK);
    CHECK(was_held);
    CHECK(!tenure_lease_is_held(lease));
    was_held = true;
    CHECK_STATUS(tenure_release(lease, &was_held), TENURE_OK);
    CHECK(!was_held);
    CHECK_STATUS(tenure_renew(lease), TENURE_LEASE_LOST);
    tenure_lease_free(lease);
    CHECK(atomic_load(&lost_calls) == 0);

    /* Now free for the other client; its token is higher. */
    REQUIRE_OK(tenure_try_acquire(b, name, &opts, &other));
    CHECK(tenure_lease_token(other) > token);
    REQUIRE_OK(tenure_validate_fence(a, name, token, &current));
    CHECK(!current);

    /* Release by ids, as another process would. */
    was_held = false;
    CHECK_STATUS(tenure_release_request(a, name, tenure_lease_request_id(other), &was_held), TENURE_OK);
    CHECK(was_held);
    tenure_lease_free(other);

    /* A shared lock: two holders at once under limit 2, a third is busy. */
    char shared_name[200];
    unique_name(shared_name, sizeof shared_name, "acquire_release", "shared");
    tenure_acquire_options_t shared = opts;
    shared.shared = 1;
    shared.limit = 2;
    tenure_lease_t *r1 = NULL, *r2 = NULL, *r3 = NULL;
    REQUIRE_OK(tenure_acquire(a, shared_name, &shared, &r1));
    REQUIRE_OK(tenure_acquire(b, shared_name, &shared, &r2));
    CHECK_STATUS(tenure_try_acquire(b, shared_name, &shared, &r3), TENURE_BUSY);
    shared.limit = 3;
    CHECK_STATUS(tenure_try_acquire(b, shared_name, &shared, &r3), TENURE_LIMIT_MISMATCH);
    CHECK(r3 == NULL);
    tenure_lease_free(r1);
    tenure_lease_free(r2);

    /* close releases what was freed without a release, and waits for it. */
    tenure_lease_t *held = NULL;
    REQUIRE_OK(tenure_acquire(a, name, &opts, &held));
    tenure_lease_free(held);
    CHECK_STATUS(tenure_client_close(a), TENURE_OK);
    REQUIRE_OK(tenure_try_acquire(b, name, &opts, &other));
    CHECK_STATUS(tenure_release(other, NULL), TENURE_OK);
    tenure_lease_free(other);

    CHECK_STATUS(tenure_client_close(b), TENURE_OK);
    tenure_client_free(a);
    tenure_client_free(b);
    CHECK(atomic_load(&lost_calls) == 0);
    return harness_finish();
}
