/*
 * The floor of the echo benchmarks: the least a single-threaded server can do.
 *
 * One thread, one level-triggered epoll set, nonblocking sockets on 127.0.0.1.
 * Each readable connection is read once (up to READ_CHUNK bytes) and what was
 * read is written straight back.  When the kernel takes only part of it, the
 * rest waits in the connection's buffer, the connection stops reading and
 * waits for EPOLLOUT: memory stays bounded by READ_CHUNK per connection, as a
 * loop with flow control would keep it.
 *
 * Usage: echo_epoll PORT   (0 picks a free port)
 * Prints "ready PORT" on stdout once listening; runs until killed.
 *
 * Built by benchmarks/echo.py with `cc -O2` into build/bench/.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { READ_CHUNK = 256 * 1024, MAX_EVENTS = 256, BACKLOG = 4096 };

/* One accepted connection; owned by the epoll set (data.ptr), freed on close. */
struct connection {
    int fd;
    size_t pending_start; /* first byte of buf not yet written back */
    size_t pending_end;   /* one past the last byte read into buf */
    char *buf;            /* READ_CHUNK bytes, allocated on first read */
};

static int die(const char *what) {
    perror(what);
    exit(1);
}

/* Let the process hold as many sockets as its hard limit allows. */
static void raise_fd_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(fd, BACKLOG) < 0)
        die("listen");
    return fd;
}

static int bound_port(int fd) {
    struct sockaddr_in addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) < 0)
        die("getsockname");
    return ntohs(addr.sin_port);
}

static void watch(int epfd, int op, struct connection *conn, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = conn};
    if (epoll_ctl(epfd, op, conn->fd, &ev) < 0)
        die("epoll_ctl");
}

static void close_connection(struct connection *conn) {
    close(conn->fd); /* also removes it from the epoll set */
    free(conn->buf);
    free(conn);
}

/* Accept every connection waiting on the listening socket. */
static void accept_all(int epfd, int listen_fd) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            die("accept4");
        }
        int one = 1; /* as asyncio's transports do */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct connection *conn = calloc(1, sizeof *conn);
        if (!conn)
            die("calloc");
        conn->fd = fd;
        watch(epfd, EPOLL_CTL_ADD, conn, EPOLLIN);
    }
}

/* Write back what is pending; returns -1 if the connection failed. */
static int flush_pending(struct connection *conn) {
    while (conn->pending_start < conn->pending_end) {
        ssize_t n = send(conn->fd, conn->buf + conn->pending_start,
                         conn->pending_end - conn->pending_start, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        conn->pending_start += (size_t)n;
    }
    conn->pending_start = conn->pending_end = 0;
    return 0;
}

static void on_event(int epfd, struct connection *conn, uint32_t events) {
    if (conn->pending_end == 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        if (!conn->buf && !(conn->buf = malloc(READ_CHUNK)))
            die("malloc");
        ssize_t n = recv(conn->fd, conn->buf, READ_CHUNK, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            close_connection(conn);
            return;
        }
        if (n > 0)
            conn->pending_end = (size_t)n;
    }
    int was_blocked = (events & EPOLLOUT) != 0;
    if (flush_pending(conn) < 0) {
        close_connection(conn);
        return;
    }
    int blocked = conn->pending_end != 0;
    if (blocked != was_blocked) /* read again only once everything is written */
        watch(epfd, EPOLL_CTL_MOD, conn, blocked ? EPOLLOUT : EPOLLIN);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    int listen_fd = listen_on(atoi(argv[1]));
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    /* The listener is marked by a NULL data.ptr. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
        die("epoll_ctl");
    printf("ready %d\n", bound_port(listen_fd));
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                accept_all(epfd, listen_fd);
            else
                on_event(epfd, events[i].data.ptr, events[i].events);
        }
    }
}
