/* cluster_ready DEADLINE_S: waits until the cluster at TENURE_ENDPOINTS grants locks (a
 * try-lock of a probe lock answers), polling until DEADLINE_S seconds have passed. Exit 0 when
 * ready, 1 when the deadline passed. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tenure.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    double deadline = now_s() + (argc > 1 ? atof(argv[1]) : 30.0);
    tenure_client_options_t options;
    tenure_client_options_default(&options);
    options.timeout_ms = 2000;
    options.owner = "sdk-c-cluster-ready";
    tenure_client_t *client = NULL;
    if (tenure_client_new(getenv("TENURE_ENDPOINTS"), &options, &client) != TENURE_OK) {
        fprintf(stderr, "cluster_ready: %s\n", tenure_last_error());
        return 1;
    }
    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 5000;
    int ready = 0;
    while (!ready && now_s() < deadline) {
        tenure_lease_t *lease = NULL;
        tenure_status_t status = tenure_try_acquire(client, "sdk-c/cluster-ready", &opts, &lease);
        if (status == TENURE_OK) {
            tenure_release(lease, NULL);
            tenure_lease_free(lease);
        }
        ready = status == TENURE_OK || status == TENURE_BUSY;
        if (!ready) {
            fprintf(stderr, "cluster_ready: not yet: %s\n", tenure_last_error());
            struct timespec pause = {0, 100 * 1000 * 1000};
            nanosleep(&pause, NULL);
        }
    }
    tenure_client_free(client);
    return ready ? 0 : 1;
}
