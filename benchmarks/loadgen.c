/*
 * Load generator of the echo benchmarks (benchmarks/echo.py).
 *
 * Opens N TCP connections to an echo server; on each, sends a message of S
 * bytes, waits until the same S bytes have come back (checked byte for byte),
 * and sends the next one, so N requests are in flight at all times.  After a
 * warm-up, it counts the requests that complete in a measured window, which
 * ends after --duration seconds or --requests requests, whichever comes
 * first.  It is one thread on one epoll set, so that it can share one CPU with
 * the server (both pinned with taskset) and cost that CPU as little as it can.
 *
 * When --server-pid is given, it also reads the server's CPU time (the sum of
 * sum_exec_runtime in /proc/PID/task/TID/schedstat: user + system, ns) at the
 * two ends of the window, so that the server's cost per request covers
 * exactly the requests counted.
 *
 * Prints one JSON line: requests, seconds, rps, p50_us, p99_us, max_us,
 * server_cpu_s (null without --server-pid), client_cpu_s.  On failure
 * (refused, reset, wrong bytes, no progress for --timeout seconds) it prints
 * {"error": "..."} and exits with status 1.
 *
 * Built by benchmarks/echo.py with `cc -O2` into build/bench/.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_EVENTS = 256, RECV_CHUNK = 256 * 1024 };

struct options {
    const char *host;
    int port;
    int connections;
    size_t size;
    double duration;  /* seconds of the measured window, at most */
    double warmup;    /* seconds before it */
    long requests;    /* requests in the measured window, at most */
    double timeout;   /* seconds without any progress that make a failure */
    long server_pid;  /* 0: do not measure the server */
};

/* One connection and the request it has in flight. */
struct connection {
    int fd;
    int want_write;   /* EPOLLOUT is in its interest set */
    size_t sent;      /* bytes of the message sent so far */
    size_t received;  /* bytes of the echo received so far */
    uint64_t seq;     /* number of the request in flight */
    double started;   /* when its first byte was sent (monotonic seconds) */
    char *message;    /* the S bytes sent; the echo must equal them */
};

struct window {
    double start, end;
    double server_cpu_start, server_cpu_end;
    double client_cpu_start, client_cpu_end;
    long completed;
    float *latencies_us; /* one per completed request, capacity options.requests */
};

static void fail(const char *format, ...) {
    char text[512];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    printf("{\"error\": \"");
    for (const char *c = text; *c; c++) /* the messages hold no control characters */
        printf(*c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
    printf("\"}\n");
    exit(1);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double own_cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           (double)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

/* CPU seconds used so far by every thread of process ``pid`` (-1 if unreadable). */
static double process_cpu_seconds(long pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *tasks = opendir(path);
    if (!tasks)
        return -1;
    unsigned long long total_ns = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char stat_path[400];
        snprintf(stat_path, sizeof stat_path, "%s/%s/schedstat", path, entry->d_name);
        FILE *f = fopen(stat_path, "r");
        unsigned long long ns = 0;
        if (f) { /* a thread that just exited has no file any more */
            if (fscanf(f, "%llu", &ns) == 1)
                total_ns += ns;
            fclose(f);
        }
    }
    closedir(tasks);
    return (double)total_ns * 1e-9;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --port P [--host 127.0.0.1] [--connections 10] [--size 1024]\n"
            "          [--duration 2] [--warmup 0.5] [--requests 2000000] [--timeout 5]\n"
            "          [--server-pid PID]\n",
            argv0);
    exit(2);
}

static struct options parse_options(int argc, char **argv) {
    struct options opt = {"127.0.0.1", 0, 10, 1024, 2.0, 0.5, 2000000, 5.0, 0};
    static const struct option longs[] = {
        {"host", required_argument, 0, 'h'},     {"port", required_argument, 0, 'p'},
        {"connections", required_argument, 0, 'c'}, {"size", required_argument, 0, 's'},
        {"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
        {"requests", required_argument, 0, 'n'}, {"timeout", required_argument, 0, 't'},
        {"server-pid", required_argument, 0, 'P'}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'c': opt.connections = atoi(optarg); break;
        case 's': opt.size = strtoul(optarg, NULL, 10); break;
        case 'd': opt.duration = atof(optarg); break;
        case 'w': opt.warmup = atof(optarg); break;
        case 'n': opt.requests = atol(optarg); break;
        case 't': opt.timeout = atof(optarg); break;
        case 'P': opt.server_pid = atol(optarg); break;
        default: usage(argv[0]);
        }
    }
    if (opt.port <= 0 || opt.connections <= 0 || opt.size == 0 || opt.requests <= 0 ||
        opt.duration <= 0 || opt.warmup < 0 || opt.timeout <= 0)
        usage(argv[0]);
    return opt;
}

static int connect_to(const struct options *opt) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt->port)};
    if (inet_pton(AF_INET, opt->host, &addr.sin_addr) != 1)
        fail("bad IPv4 address %s", opt->host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        fail("connect to %s:%d: %s", opt->host, opt->port, strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
        fail("fcntl: %s", strerror(errno));
    return fd;
}

static void set_write_interest(int epfd, struct connection *conn, int want_write) {
    if (conn->want_write == want_write)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = conn};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, conn->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    conn->want_write = want_write;
}

/* Send what the kernel takes of the message; wait for EPOLLOUT for the rest. */
static void send_more(int epfd, struct connection *conn, size_t size) {
    while (conn->sent < size) {
        ssize_t n = send(conn->fd, conn->message + conn->sent, size - conn->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fail("send: %s", strerror(errno));
        }
        conn->sent += (size_t)n;
    }
    set_write_interest(epfd, conn, conn->sent < size);
}

/* Start the next request: a new sequence number in the message's first bytes. */
static void start_request(int epfd, struct connection *conn, size_t size, double at) {
    conn->seq++;
    memcpy(conn->message, &conn->seq, size < sizeof conn->seq ? size : sizeof conn->seq);
    conn->sent = conn->received = 0;
    conn->started = at;
    send_more(epfd, conn, size);
}

/* Read what has arrived of the echo; returns 1 when all of it is in. */
static int receive_more(struct connection *conn, size_t size, char *scratch) {
    for (;;) {
        size_t room = size - conn->received;
        ssize_t n = recv(conn->fd, scratch, room < RECV_CHUNK ? room : RECV_CHUNK, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            fail("recv: %s", strerror(errno));
        }
        if (n == 0)
            fail("the server closed a connection");
        const char *expected = conn->message + conn->received;
        if (memcmp(scratch, expected, (size_t)n) != 0) {
            size_t at = 0;
            while (scratch[at] == expected[at])
                at++;
            fail("the echo differs from the message (request %llu, byte %zu)",
                 (unsigned long long)conn->seq, conn->received + at);
        }
        conn->received += (size_t)n;
        if (conn->received == size)
            return 1;
    }
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The value under which ``fraction`` of the sorted samples lie (nearest rank). */
static double percentile(const float *sorted, long count, double fraction) {
    if (count == 0)
        return 0;
    long rank = (long)(fraction * (double)count + 0.999999);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static void open_window(struct window *w, const struct options *opt, double at) {
    w->start = at;
    w->completed = 0;
    w->client_cpu_start = own_cpu_seconds();
    w->server_cpu_start = opt->server_pid ? process_cpu_seconds(opt->server_pid) : -1;
}

static void close_window(struct window *w, const struct options *opt) {
    w->end = now();
    w->client_cpu_end = own_cpu_seconds();
    w->server_cpu_end = opt->server_pid ? process_cpu_seconds(opt->server_pid) : -1;
}

static void print_report(struct window *w, const struct options *opt) {
    double seconds = w->end - w->start;
    qsort(w->latencies_us, (size_t)w->completed, sizeof *w->latencies_us, compare_floats);
    printf("{\"requests\": %ld, \"seconds\": %.6f, \"rps\": %.1f, \"p50_us\": %.1f, "
           "\"p99_us\": %.1f, \"max_us\": %.1f, \"connections\": %d, \"size\": %zu, ",
           w->completed, seconds, (double)w->completed / seconds,
           percentile(w->latencies_us, w->completed, 0.50),
           percentile(w->latencies_us, w->completed, 0.99),
           w->completed ? w->latencies_us[w->completed - 1] : 0.0, opt->connections, opt->size);
    if (w->server_cpu_start >= 0 && w->server_cpu_end >= 0)
        printf("\"server_cpu_s\": %.6f, ", w->server_cpu_end - w->server_cpu_start);
    else
        printf("\"server_cpu_s\": null, ");
    printf("\"client_cpu_s\": %.6f}\n", w->client_cpu_end - w->client_cpu_start);
}

int main(int argc, char **argv) {
    struct options opt = parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct window w = {0};
    w.latencies_us = malloc((size_t)opt.requests * sizeof *w.latencies_us);
    struct connection *conns = calloc((size_t)opt.connections, sizeof *conns);
    char *scratch = malloc(RECV_CHUNK);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!w.latencies_us || !conns || !scratch || epfd < 0)
        fail("out of memory or epoll: %s", strerror(errno));

    for (int i = 0; i < opt.connections; i++) {
        struct connection *conn = &conns[i];
        conn->fd = connect_to(&opt);
        if (!(conn->message = malloc(opt.size)))
            fail("out of memory");
        for (size_t b = 0; b < opt.size; b++) /* varied bytes, different on each connection */
            conn->message[b] = (char)('A' + (b * 7 + (size_t)i * 13) % 58);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = conn};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conn->fd, &ev) < 0)
            fail("epoll_ctl: %s", strerror(errno));
    }

    double t = now();
    double warmup_end = t + opt.warmup, last_progress = t;
    int measuring = 0;
    for (int i = 0; i < opt.connections; i++)
        start_request(epfd, &conns[i], opt.size, t);
    if (opt.warmup == 0) {
        open_window(&w, &opt, t);
        measuring = 1;
    }

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, 100);
        if (n < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            struct connection *conn = events[i].data.ptr;
            if (events[i].events & EPOLLOUT)
                send_more(epfd, conn, opt.size);
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            if (!receive_more(conn, opt.size, scratch))
                continue;
            if (conn->sent != opt.size)
                fail("the echo arrived before the message was sent");
            t = now();
            last_progress = t;
            if (measuring && w.completed < opt.requests)
                w.latencies_us[w.completed++] = (float)((t - conn->started) * 1e6);
            start_request(epfd, conn, opt.size, t);
        }
        t = now();
        if (!measuring && t >= warmup_end) {
            open_window(&w, &opt, t);
            measuring = 1;
        }
        if (measuring && (w.completed >= opt.requests || t - w.start >= opt.duration))
            break;
        if (t - last_progress > opt.timeout)
            fail("no echo for %.1f s", opt.timeout);
    }
    close_window(&w, &opt);
    for (int i = 0; i < opt.connections; i++)
        close(conns[i].fd);
    print_report(&w, &opt);
    return 0;
}
