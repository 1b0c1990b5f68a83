/* free_ports N: prints N distinct TCP ports that are free on 127.0.0.1 right now, one per
 * line. It binds all N at once (port 0: the kernel picks), so they differ, then closes them. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (n < 1 || n > 64) {
        fprintf(stderr, "usage: free_ports N (1..64)\n");
        return 2;
    }
    int fds[64];
    unsigned ports[64];
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {0};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&addr, sizeof addr) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&addr, &len) != 0) {
            perror("free_ports");
            return 1;
        }
        ports[i] = ntohs(addr.sin_port);
    }
    for (int i = 0; i < n; i++) {
        printf("%u\n", ports[i]);
        close(fds[i]);
    }
    return 0;
}
