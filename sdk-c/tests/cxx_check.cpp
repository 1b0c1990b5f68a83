// tenure.h from C++: compiles cleanly with -Wall -Wextra -Werror (and -pedantic), links, and the
// small calls work. Needs no cluster.
#include <cstdio>
#include <cstring>
#include <memory>

#include "tenure.h"

namespace {

struct ClientDeleter {
    void operator()(tenure_client_t *c) const { tenure_client_free(c); }
};
using Client = std::unique_ptr<tenure_client_t, ClientDeleter>;

}  // namespace

int main() {
    int failed = 0;
    if (std::strcmp(tenure_version(), TENURE_VERSION) != 0) {
        failed++;
    }
    tenure_client_options_t options;
    tenure_client_options_default(&options);
    options.owner = "sdk-c-cxx";
    tenure_client_t *raw = nullptr;
    if (tenure_client_new("127.0.0.1:1", &options, &raw) != TENURE_OK) {
        failed++;
    }
    Client client(raw);
    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    opts.ttl_ms = 0;
    tenure_lease_t *lease = nullptr;
    tenure_status_t status = tenure_acquire(client.get(), "job", &opts, &lease);
    if (status != TENURE_INVALID_ARGUMENT || lease != nullptr) {
        failed++;
    }
    std::printf("%s: %s\n", tenure_status_name(status), tenure_last_error());
    std::printf("%d passed, %d failed\n", failed == 0 ? 3 : 3 - failed, failed);
    return failed == 0 ? 0 : 1;
}
