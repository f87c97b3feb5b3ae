/* TCP echo load over N connections of SIZE-byte messages, every echo checked byte for byte.
 * One thread, one epoll instance, level-triggered. Compiled at benchmark time by
 * bench/echobench.py (never committed as a binary), so that a Python client on one core
 * does not cap the server under test.
 *
 *   echoclient HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S [RATE]
 *
 * Without RATE (or 0): closed loop, each connection sends, waits for the full echo, sends
 * again. With RATE: open loop, RATE messages per second in all, the k-th on connection
 * k mod N at k/RATE s (epoll's millisecond resolution), whether or not earlier echoes came
 * back.
 *
 * Prints "measure" on a line when the measure window opens, then, when it closes, one JSON
 * line: {"connections", "size", "seconds", "messages", "rate", "errors", "total_messages",
 * "outstanding"} (total_messages includes the warm-up; outstanding: echoes not back at the
 * end, open loop). Exit 0 when every echo matched, 1 otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    int got;
    int pending; /* messages sent whose echo is not complete */
    unsigned char *want;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr,
                "usage: echoclient HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S [RATE]\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), n = atoi(argv[3]), size = atoi(argv[4]);
    double warmup = atof(argv[5]), duration = atof(argv[6]);
    double rate = argc == 8 ? atof(argv[7]) : 0;
    if (n <= 0 || size <= 0 || size > 65536 || duration <= 0 || rate < 0) {
        fprintf(stderr, "echoclient: bad arguments\n");
        return 2;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "echoclient: bad host %s\n", host);
        return 2;
    }
    int ep = epoll_create1(0);
    struct conn *cs = calloc(n, sizeof *cs);
    unsigned char *buf = malloc(65536);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            fprintf(stderr, "echoclient: connect %d: %s\n", i, strerror(errno));
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        cs[i].fd = fd;
        cs[i].want = malloc(size);
        for (int k = 0; k < size; k++) cs[i].want[k] = (unsigned char)(i * 31 + k * 7);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    for (int i = 0; i < n && rate == 0; i++) {
        if (write(cs[i].fd, cs[i].want, size) != size) {
            fprintf(stderr, "echoclient: short first write\n");
            return 1;
        }
        cs[i].pending = 1;
    }
    struct epoll_event evs[512];
    double t0 = now(), tstart = t0 + warmup, tend = tstart + duration;
    long messages = 0, total = 0, errors = 0, sent = 0;
    int measuring = 0;
    for (;;) {
        double t = now();
        if (!measuring && t >= tstart) {
            measuring = 1;
            messages = 0;
            printf("measure\n");
            fflush(stdout);
        }
        if (t >= tend) break;
        int timeout = 100;
        if (rate > 0) {
            for (double due = t0 + sent / rate; due <= t; due = t0 + sent / rate) {
                struct conn *c = &cs[sent % n];
                if (write(c->fd, c->want, size) != size) {
                    fprintf(stderr, "echoclient: short write\n");
                    return 1;
                }
                c->pending++;
                sent++;
            }
            double wait_ms = (t0 + sent / rate - t) * 1e3;
            timeout = wait_ms < 1 ? 1 : (int)wait_ms;
        }
        int k = epoll_wait(ep, evs, 512, timeout);
        for (int j = 0; j < k; j++) {
            struct conn *c = evs[j].data.ptr;
            ssize_t r = read(c->fd, buf, size - c->got);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                fprintf(stderr, "echoclient: read: %s\n", r == 0 ? "EOF" : strerror(errno));
                return 1;
            }
            if (memcmp(buf, c->want + c->got, r) != 0) {
                errors++;
                fprintf(stderr, "echoclient: corrupt echo\n");
                return 1;
            }
            c->got += r;
            if (c->got == size) {
                c->got = 0;
                c->pending--;
                messages++;
                total++;
                if (rate > 0) continue;
                if (write(c->fd, c->want, size) != size) {
                    fprintf(stderr, "echoclient: short write\n");
                    return 1;
                }
                c->pending++;
            }
        }
    }
    double secs = now() - tstart;
    long outstanding = 0;
    for (int i = 0; i < n; i++) outstanding += cs[i].pending;
    printf("{\"connections\": %d, \"size\": %d, \"seconds\": %.3f, \"messages\": %ld, "
           "\"rate\": %.1f, \"errors\": %ld, \"total_messages\": %ld, "
           "\"outstanding\": %ld}\n", n, size, secs, messages, messages / secs, errors, total,
           outstanding);
    fflush(stdout);
    for (int i = 0; i < n; i++) close(cs[i].fd);
    return errors ? 1 : 0;
}
