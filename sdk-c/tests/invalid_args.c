/* Bad arguments return TENURE_INVALID_ARGUMENT with a message naming the field, write no
 * out-parameter, and never crash. Needs no cluster: nothing here reaches the network. Also: the
 * small functions (version, status names, NULL-safe frees) and the thread-local message. */
#include "harness.h"

#include <pthread.h>

static int message_names(const char *field) {
    const char *message = tenure_last_error();
    return strncmp(message, "INVALID_ARGUMENT: ", 18) == 0 && strstr(message, field) != NULL;
}

#define CHECK_INVALID(call, field)                                                           \
    do {                                                                                     \
        CHECK_STATUS(call, TENURE_INVALID_ARGUMENT);                                         \
        if (!message_names(field)) {                                                         \
            harness_failed++;                                                                \
            fprintf(stderr, "%s:%d: message does not name %s: %s\n", __FILE__, __LINE__,     \
                    field, tenure_last_error());                                             \
        }                                                                                    \
    } while (0)

static void *other_thread(void *arg) {
    (void)arg;
    /* A fresh thread has an empty message, whatever the main thread's is. */
    int empty = tenure_last_error()[0] == '\0';
    tenure_client_t *client = NULL;
    tenure_client_options_t options;
    tenure_client_options_default(&options);
    options.connect_timeout_ms = 0;
    tenure_status_t status = tenure_client_new("127.0.0.1:1", &options, &client);
    int own = status == TENURE_INVALID_ARGUMENT && strstr(tenure_last_error(), "connect_timeout_ms");
    return (void *)(intptr_t)(empty && own && client == NULL);
}

int main(void) {
    CHECK(strcmp(tenure_version(), TENURE_VERSION) == 0);
    CHECK(strcmp(tenure_status_name(TENURE_OK), "OK") == 0);
    CHECK(strcmp(tenure_status_name(TENURE_TIMEOUT), "TIMEOUT") == 0);
    CHECK(strcmp(tenure_status_name(TENURE_FENCED_OUT), "FENCED_OUT") == 0);
    CHECK(strcmp(tenure_status_name(TENURE_BUSY), "BUSY") == 0);
    CHECK(strcmp(tenure_status_name(12345), "UNKNOWN") == 0);

    /* NULL-safe frees. */
    tenure_client_free(NULL);
    tenure_lease_free(NULL);
    tenure_string_free(NULL);
    tenure_client_options_default(NULL);
    tenure_acquire_options_default(NULL);

    /* Making a client contacts no node, so an unreachable endpoint is fine here. */
    tenure_client_t *client = NULL;
    CHECK_INVALID(tenure_client_new("127.0.0.1:1", NULL, NULL), "out");
    tenure_client_options_t copts;
    tenure_client_options_default(&copts);
    CHECK(copts.timeout_ms == 5000 && copts.owner == NULL);
    copts.timeout_ms = 0;
    CHECK_INVALID(tenure_client_new("127.0.0.1:1", &copts, &client), "timeout");
    CHECK(client == NULL);
    char long_owner[300];
    memset(long_owner, 'o', sizeof long_owner - 1);
    long_owner[sizeof long_owner - 1] = '\0';
    tenure_client_options_default(&copts);
    copts.owner = long_owner;
    CHECK_INVALID(tenure_client_new("127.0.0.1:1", &copts, &client), "owner");
    CHECK(client == NULL);
    CHECK_INVALID(tenure_client_new("not a uri ::", NULL, &client), "endpoint");
    CHECK(client == NULL);
    REQUIRE_OK(tenure_client_new("127.0.0.1:1", NULL, &client));
    CHECK(client != NULL);
    CHECK(tenure_last_error()[0] == '\0');

    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    CHECK(opts.ttl_ms == 30000 && opts.wait_ms == TENURE_WAIT_FOREVER && opts.shared == 0);

    tenure_lease_t *lease = NULL;
    CHECK_INVALID(tenure_acquire(NULL, "job", &opts, &lease), "client");
    CHECK_INVALID(tenure_acquire(client, NULL, &opts, &lease), "name");
    CHECK_INVALID(tenure_acquire(client, "", &opts, &lease), "name");
    CHECK_INVALID(tenure_try_acquire(client, "", &opts, &lease), "name");
    CHECK_INVALID(tenure_acquire(client, "job", &opts, NULL), "lease_out");
    CHECK_INVALID(tenure_acquire(client, "\xff\xfe", &opts, &lease), "UTF-8");
    opts.ttl_ms = 0;
    CHECK_INVALID(tenure_acquire(client, "job", &opts, &lease), "ttl");
    CHECK_INVALID(tenure_try_acquire(client, "job", &opts, &lease), "ttl");
    tenure_acquire_options_default(&opts);
    opts.wait_ms = -5;
    CHECK_INVALID(tenure_acquire(client, "job", &opts, &lease), "wait_ms");
    tenure_acquire_options_default(&opts);
    opts.limit = 2; /* a limit without shared */
    CHECK_INVALID(tenure_acquire(client, "job", &opts, &lease), "limit");
    CHECK(lease == NULL);

    /* Lease functions on NULL. */
    CHECK(tenure_lease_token(NULL) == 0);
    CHECK(tenure_lease_name(NULL) == NULL);
    CHECK(tenure_lease_request_id(NULL) == NULL);
    CHECK(tenure_lease_expires_at_ms(NULL) == 0);
    CHECK(!tenure_lease_is_held(NULL));
    CHECK_INVALID(tenure_renew(NULL), "lease");
    CHECK_INVALID(tenure_release(NULL, NULL), "lease");
    CHECK_INVALID(tenure_lease_on_lost(NULL, NULL, NULL), "lease");

    /* Client calls with NULLs. */
    char *json = NULL;
    CHECK_INVALID(tenure_describe_json(NULL, "job", &json), "client");
    CHECK_INVALID(tenure_describe_json(client, NULL, &json), "name");
    CHECK_INVALID(tenure_describe_json(client, "job", NULL), "json_out");
    CHECK_INVALID(tenure_list_json(client, "", NULL), "json_out");
    CHECK_INVALID(tenure_cluster_status_json(client, NULL), "json_out");
    CHECK_INVALID(tenure_cluster_status_json(NULL, &json), "client");
    CHECK(json == NULL);
    bool current = true;
    CHECK_INVALID(tenure_validate_fence(client, NULL, 1, &current), "name");
    CHECK_INVALID(tenure_validate_fence(client, "job", 1, NULL), "current");
    CHECK(current);
    CHECK_INVALID(tenure_release_request(client, "job", NULL, NULL), "request_id");
    CHECK_INVALID(tenure_client_close(NULL), "client");

    /* KV with NULLs. */
    uint64_t revision = 77;
    CHECK_INVALID(tenure_kv_put(client, NULL, (const uint8_t *)"v", 1, NULL, &revision), "key");
    CHECK_INVALID(tenure_kv_put(client, "k", NULL, 3, NULL, &revision), "value");
    tenure_fence_t fence = {NULL, 5};
    CHECK_INVALID(tenure_kv_put(client, "k", (const uint8_t *)"v", 1, &fence, &revision), "fence.name");
    CHECK_INVALID(tenure_kv_delete(client, "k", &fence, NULL), "fence.name");
    CHECK(revision == 77);
    char *value = NULL;
    CHECK_INVALID(tenure_kv_get(client, NULL, &value, NULL, NULL), "key");
    CHECK_INVALID(tenure_kv_get(client, "k", NULL, NULL, NULL), "value_out");
    CHECK(value == NULL);

    /* The message is per thread. */
    CHECK_INVALID(tenure_kv_get(client, NULL, &value, NULL, NULL), "key");
    pthread_t thread;
    void *thread_ok = NULL;
    CHECK(pthread_create(&thread, NULL, other_thread, NULL) == 0);
    CHECK(pthread_join(thread, &thread_ok) == 0);
    CHECK(thread_ok != NULL);
    CHECK(message_names("key"));

    tenure_client_free(client);
    return harness_finish();
}
