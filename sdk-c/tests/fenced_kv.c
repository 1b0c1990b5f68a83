/* The KV store as a fenced resource: a write carrying a stale fencing token is refused with
 * TENURE_FENCED_OUT and changes nothing; the current holder's write goes through. Also plain
 * get/put/delete and TENURE_NOT_FOUND. */
#include "harness.h"

int main(void) {
    char name[200], key[200];
    unique_name(name, sizeof name, "fenced_kv", "job");
    unique_name(key, sizeof key, "fenced_kv", "state");
    tenure_client_t *client = NULL;
    REQUIRE_OK(test_client(10000, &client));

    char *value = NULL;
    size_t len = 99;
    uint64_t revision = 0;
    CHECK_STATUS(tenure_kv_get(client, key, &value, &len, &revision), TENURE_NOT_FOUND);
    CHECK(value == NULL && len == 99);

    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 20000;
    opts.wait_ms = 10000;
    tenure_lease_t *first = NULL;
    REQUIRE_OK(tenure_acquire(client, name, &opts, &first));
    tenure_fence_t stale = {tenure_lease_name(first), tenure_lease_token(first)};
    REQUIRE_OK(tenure_kv_put(client, key, (const uint8_t *)"one", 3, &stale, &revision));
    CHECK(revision > 0);
    CHECK_STATUS(tenure_release(first, NULL), TENURE_OK);

    tenure_lease_t *second = NULL;
    REQUIRE_OK(tenure_acquire(client, name, &opts, &second));
    CHECK(tenure_lease_token(second) > stale.token);

    /* The old holder's token no longer holds: refused, nothing written. */
    uint64_t refused_revision = 12345;
    CHECK_STATUS(tenure_kv_put(client, key, (const uint8_t *)"stale", 5, &stale, &refused_revision),
                 TENURE_FENCED_OUT);
    CHECK(refused_revision == 12345);
    CHECK(strncmp(tenure_last_error(), "FENCED_OUT: ", 12) == 0);
    bool existed = false;
    CHECK_STATUS(tenure_kv_delete(client, key, &stale, &existed), TENURE_FENCED_OUT);
    REQUIRE_OK(tenure_kv_get(client, key, &value, &len, &revision));
    CHECK(len == 3 && strcmp(value, "one") == 0);
    tenure_string_free(value);

    /* The current holder writes; binary values keep their NULs. */
    tenure_fence_t current = {tenure_lease_name(second), tenure_lease_token(second)};
    const uint8_t binary[5] = {'t', 0, 'w', 0, 'o'};
    REQUIRE_OK(tenure_kv_put(client, key, binary, sizeof binary, &current, NULL));
    REQUIRE_OK(tenure_kv_get(client, key, &value, &len, NULL));
    CHECK(len == 5 && memcmp(value, binary, 5) == 0 && value[5] == '\0');
    tenure_string_free(value);

    /* Once released, even that token is stale. */
    CHECK_STATUS(tenure_release(second, NULL), TENURE_OK);
    CHECK_STATUS(tenure_kv_put(client, key, (const uint8_t *)"late", 4, &current, NULL), TENURE_FENCED_OUT);

    /* Unfenced delete. */
    existed = false;
    CHECK_STATUS(tenure_kv_delete(client, key, NULL, &existed), TENURE_OK);
    CHECK(existed);
    CHECK_STATUS(tenure_kv_delete(client, key, NULL, &existed), TENURE_OK);
    CHECK(!existed);
    CHECK_STATUS(tenure_kv_get(client, key, &value, &len, NULL), TENURE_NOT_FOUND);

    tenure_lease_free(first);
    tenure_lease_free(second);
    tenure_client_free(client);
    return harness_finish();
}
