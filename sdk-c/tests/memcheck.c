/* A short program for valgrind memcheck: one pass over every kind of call (long TTLs and
 * timeouts, so valgrind's slowness cannot expire a lease), freeing everything it gets. */
#include "harness.h"

static void on_lost(void *user_data) {
    (void)user_data;
}

int main(void) {
    char name[200], key[200];
    unique_name(name, sizeof name, "memcheck", "job");
    unique_name(key, sizeof key, "memcheck", "key");
    tenure_client_t *client = NULL;
    REQUIRE_OK(test_client(60000, &client));

    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 600000;
    opts.wait_ms = 60000;
    tenure_lease_t *lease = NULL;
    REQUIRE_OK(tenure_acquire(client, name, &opts, &lease));
    CHECK(tenure_lease_is_held(lease));
    CHECK(tenure_lease_token(lease) > 0);
    CHECK(strcmp(tenure_lease_name(lease), name) == 0);
    CHECK(tenure_lease_expires_at_ms(lease) > 0);
    CHECK_STATUS(tenure_lease_on_lost(lease, on_lost, NULL), TENURE_OK);

    tenure_lease_t *busy = NULL;
    CHECK_STATUS(tenure_try_acquire(client, name, &opts, &busy), TENURE_BUSY);

    tenure_fence_t fence = {tenure_lease_name(lease), tenure_lease_token(lease)};
    CHECK_STATUS(tenure_kv_put(client, key, (const uint8_t *)"value", 5, &fence, NULL), TENURE_OK);
    char *value = NULL;
    size_t len = 0;
    CHECK_STATUS(tenure_kv_get(client, key, &value, &len, NULL), TENURE_OK);
    CHECK(value != NULL && len == 5 && strcmp(value, "value") == 0);
    tenure_string_free(value);
    char *json = NULL;
    CHECK_STATUS(tenure_describe_json(client, name, &json), TENURE_OK);
    tenure_string_free(json);
    json = NULL;
    CHECK_STATUS(tenure_cluster_status_json(client, &json), TENURE_OK);
    tenure_string_free(json);

    CHECK_STATUS(tenure_acquire(client, "", &opts, &busy), TENURE_INVALID_ARGUMENT);
    CHECK_STATUS(tenure_acquire(client, NULL, &opts, &busy), TENURE_INVALID_ARGUMENT);
    opts.ttl_ms = 0;
    CHECK_STATUS(tenure_acquire(client, name, &opts, &busy), TENURE_INVALID_ARGUMENT);

    CHECK_STATUS(tenure_release(lease, NULL), TENURE_OK);
    CHECK_STATUS(tenure_kv_put(client, key, (const uint8_t *)"x", 1, &fence, NULL), TENURE_FENCED_OUT);
    CHECK_STATUS(tenure_kv_delete(client, key, NULL, NULL), TENURE_OK);
    tenure_lease_free(lease);
    CHECK_STATUS(tenure_client_close(client), TENURE_OK);
    tenure_client_free(client);
    return harness_finish();
}
