/* A program using an installed tenure C SDK: takes and releases a lock on the cluster at
 * TENURE_ENDPOINTS. Exit 0 on success. */
#include <stdio.h>
#include <string.h>

#include <tenure.h>

int main(void) {
    if (strcmp(tenure_version(), TENURE_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", TENURE_VERSION, tenure_version());
        return 1;
    }
    tenure_client_t *client = NULL;
    if (tenure_client_new(NULL, NULL, &client) != TENURE_OK) {
        fprintf(stderr, "client: %s\n", tenure_last_error());
        return 1;
    }
    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 10000;
    opts.wait_ms = 10000;
    tenure_lease_t *lease = NULL;
    tenure_status_t status = tenure_acquire(client, "sdk-c/consumer", &opts, &lease);
    if (status != TENURE_OK) {
        fprintf(stderr, "acquire: %s\n", tenure_last_error());
        tenure_client_free(client);
        return 1;
    }
    printf("tenure %s: held %s with token %llu\n", tenure_version(), tenure_lease_name(lease),
           (unsigned long long)tenure_lease_token(lease));
    status = tenure_release(lease, NULL);
    tenure_lease_free(lease);
    tenure_client_free(client);
    return status == TENURE_OK ? 0 : 1;
}
