/* backend_epoll.c — Linux epoll, level-triggered. Included by loop.c. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop_internal.h"

#define EPOLL_BATCH 1024

typedef struct {
    int epfd;
    struct epoll_event ready[EPOLL_BATCH];
} epoll_state;

static const char backend_name[] = "epoll";

static int backend_init(pl_loop_t *loop)
{
    epoll_state *st = malloc(sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int err = errno;
        free(st);
        return -err;
    }
    loop->backend = st;
    return pl__events_reserve(loop, EPOLL_BATCH);
}

static void backend_free(pl_loop_t *loop, int forked)
{
    (void)forked; /* closing our descriptor never changes the parent's set */
    epoll_state *st = loop->backend;
    close(st->epfd);
    free(st);
    loop->backend = NULL;
}

static int backend_fd(pl_loop_t *loop)
{
    return ((epoll_state *)loop->backend)->epfd;
}

static int backend_ctl(pl_loop_t *loop, int fd, unsigned old, unsigned new)
{
    epoll_state *st = loop->backend;
    struct epoll_event ev = {0};
    ev.events = ((new & PL_READABLE) ? EPOLLIN : 0) | ((new & PL_WRITABLE) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (new == 0) {
        /* The fd may already be closed: then the kernel dropped it. */
        if (epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != EBADF && errno != ENOENT)
            return -errno;
        return 0;
    }
    int op = old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(st->epfd, op, fd, &ev) == 0)
        return 0;
    /* A stale registration (an fd closed and reused without removal) or a
     * missing one: retry with the other operation. */
    if (errno == EEXIST || errno == ENOENT) {
        op = op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(st->epfd, op, fd, &ev) == 0)
            return 0;
    }
    return -errno;
}

static int backend_wait(pl_loop_t *loop, int timeout_ms)
{
    epoll_state *st = loop->backend;
    int n = epoll_wait(st->epfd, st->ready, EPOLL_BATCH, timeout_ms);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = st->ready[i].events;
        /* As selectors does: anything but EPOLLOUT wakes a reader, anything
         * but EPOLLIN wakes a writer (errors and hang-ups wake both). */
        loop->events[i].fd = st->ready[i].data.fd;
        loop->events[i].revents = ((e & ~(uint32_t)EPOLLOUT) ? PL_READABLE : 0)
                                | ((e & ~(uint32_t)EPOLLIN) ? PL_WRITABLE : 0);
    }
    return n;
}
