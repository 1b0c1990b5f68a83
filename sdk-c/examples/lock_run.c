/* lock_run: the C equivalent of `tenure run`. Holds a tenure lock while a command runs.
 *
 *   lock_run [--ttl MS] [--wait MS] [--shared] [--limit N] [--lock-delay MS] NAME -- CMD [ARGS...]
 *
 * The cluster is TENURE_ENDPOINTS (comma-separated host:port), else 127.0.0.1:7070. CMD runs in
 * its own process group with TENURE_LOCK and TENURE_TOKEN (the fencing token) in its
 * environment; SIGINT, SIGTERM and SIGHUP are passed on to it. If the lease is lost, CMD's
 * process group is killed at once. Exit status: CMD's, or 120 the lease was lost (CMD killed),
 * 124 the lock was not obtained within --wait (--wait 0 tries once), 125 lock_run itself failed,
 * 126/127 CMD could not be executed / was not found, 128+N CMD died from signal N.
 *
 * Unlike `tenure run`, a signal that arrives while lock_run is still waiting for the lock ends
 * it at once; the abandoned request is no longer renewed and leaves the queue when its TTL ends.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tenure.h"

enum { EXIT_LEASE_LOST = 120, EXIT_TIMEOUT = 124, EXIT_FAILED = 125, EXIT_CANNOT_EXECUTE = 126,
       EXIT_NOT_FOUND = 127 };

/* The command's process group, for the signal handlers and the lost-lease callback. */
static volatile pid_t child_group;
static atomic_int lease_lost;

/* Runs on a library thread: only async-signal-safe work, no tenure calls that block. */
static void on_lost(void *user_data) {
    (void)user_data;
    atomic_store(&lease_lost, 1);
    if (child_group > 0) {
        kill(-child_group, SIGKILL);
    }
}

static void forward_signal(int sig) {
    if (child_group > 0) {
        kill(-child_group, sig);
    }
}

static int usage(void) {
    fprintf(stderr, "usage: lock_run [--ttl MS] [--wait MS] [--shared] [--limit N] [--lock-delay MS] "
                    "NAME -- CMD [ARGS...]\n");
    return EXIT_FAILED;
}

/* A non-negative integer option value, or -1. */
static long long number(const char *s) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return (errno != 0 || end == s || *end != '\0' || v < 0) ? -1 : v;
}

static int fail(const char *what, tenure_status_t status) {
    fprintf(stderr, "lock_run: %s: %s\n", what, tenure_last_error());
    return status == TENURE_TIMEOUT ? EXIT_TIMEOUT : status == TENURE_LEASE_LOST ? EXIT_LEASE_LOST : EXIT_FAILED;
}

int main(int argc, char **argv) {
    tenure_acquire_options_t opts;
    tenure_acquire_options_default(&opts);
    const char *name = NULL;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        long long v = 0;
        if (strcmp(argv[i], "--shared") == 0) {
            opts.shared = 1;
        } else if (i + 1 < argc && (v = number(argv[i + 1])) >= 0 &&
                   (strcmp(argv[i], "--ttl") == 0 || strcmp(argv[i], "--wait") == 0 ||
                    strcmp(argv[i], "--limit") == 0 || strcmp(argv[i], "--lock-delay") == 0)) {
            if (strcmp(argv[i], "--ttl") == 0) opts.ttl_ms = (uint64_t)v;
            if (strcmp(argv[i], "--wait") == 0) opts.wait_ms = (int64_t)v;
            if (strcmp(argv[i], "--limit") == 0) opts.limit = (uint32_t)v;
            if (strcmp(argv[i], "--lock-delay") == 0) opts.lock_delay_ms = (uint64_t)v;
            i++;
        } else if (argv[i][0] != '-' && name == NULL) {
            name = argv[i];
        } else {
            return usage();
        }
    }
    if (name == NULL || i + 1 >= argc) {
        return usage();
    }
    char **command = &argv[i + 1];

    tenure_client_options_t client_opts;
    tenure_client_options_default(&client_opts);
    tenure_client_t *client = NULL;
    tenure_status_t status = tenure_client_new(NULL, &client_opts, &client);
    if (status != TENURE_OK) {
        return fail("cannot make a client", status);
    }
    tenure_lease_t *lease = NULL;
    status = tenure_acquire(client, name, &opts, &lease);
    if (status != TENURE_OK) {
        int code = fail("cannot take the lock", status);
        tenure_client_free(client);
        return code;
    }
    char token[32];
    snprintf(token, sizeof token, "%" PRIu64, tenure_lease_token(lease));

    /* A pipe closed on exec tells the parent whether exec worked (and errno if not). */
    int exec_pipe[2];
    if (pipe(exec_pipe) != 0) {
        perror("lock_run: pipe");
        tenure_release(lease, NULL);
        tenure_lease_free(lease);
        tenure_client_free(client);
        return EXIT_FAILED;
    }
    fcntl(exec_pipe[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child touches no tenure function (the library's threads are not in it). */
        close(exec_pipe[0]);
        setpgid(0, 0);
        setenv("TENURE_LOCK", name, 1);
        setenv("TENURE_TOKEN", token, 1);
        execvp(command[0], command);
        int err = errno;
        ssize_t ignored = write(exec_pipe[1], &err, sizeof err);
        (void)ignored;
        _exit(err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
    }
    close(exec_pipe[1]);
    if (pid < 0) {
        perror("lock_run: fork");
        close(exec_pipe[0]);
        tenure_release(lease, NULL);
        tenure_lease_free(lease);
        tenure_client_free(client);
        return EXIT_FAILED;
    }
    setpgid(pid, pid); /* also here, so the group exists before any signal is passed on */
    child_group = pid;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* Registered after the fork: a lease lost before now fires at once and kills the group. */
    tenure_lease_on_lost(lease, on_lost, NULL);

    int exec_errno = 0;
    ssize_t n;
    while ((n = read(exec_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
    }
    close(exec_pipe[0]);
    if (n > 0) {
        fprintf(stderr, "lock_run: cannot run %s: %s\n", command[0], strerror(exec_errno));
    }

    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : EXIT_FAILED;

    /* Freeing the lease first guarantees the callback is not running any more. */
    bool was_held = false;
    status = tenure_release(lease, &was_held);
    tenure_lease_free(lease);
    if (atomic_load(&lease_lost)) {
        fprintf(stderr, "lock_run: the lease on %s was lost; killed %s (pid %ld)\n", name, command[0], (long)pid);
        code = EXIT_LEASE_LOST;
    } else if (status != TENURE_OK) {
        fprintf(stderr, "lock_run: could not release %s (%s); it expires when its TTL runs out\n", name,
                tenure_last_error());
    } else if (!was_held) {
        fprintf(stderr, "lock_run: the lock %s was no longer held when the command ended\n", name);
    }
    tenure_client_free(client);
    return code;
}
