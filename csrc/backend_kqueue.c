/* backend_kqueue.c — macOS/BSD kqueue. Included by loop.c.
 * UNTESTED: no kqueue exists on the Linux machines this project is built
 * and tested on (see docs/architecture.md). It mirrors backend_epoll.c. */
#include <errno.h>
#include <stdlib.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include "loop_internal.h"

#define KQUEUE_BATCH 1024

typedef struct {
    int kq;
    struct kevent ready[KQUEUE_BATCH];
} kqueue_state;

static const char backend_name[] = "kqueue";

static int backend_init(pl_loop_t *loop)
{
    kqueue_state *st = malloc(sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    st->kq = kqueue();
    if (st->kq < 0) {
        int err = errno;
        free(st);
        return -err;
    }
    loop->backend = st;
    return pl__events_reserve(loop, KQUEUE_BATCH);
}

static void backend_free(pl_loop_t *loop, int forked)
{
    (void)forked; /* a kqueue is not inherited across fork */
    kqueue_state *st = loop->backend;
    close(st->kq);
    free(st);
    loop->backend = NULL;
}

static int backend_fd(pl_loop_t *loop)
{
    return ((kqueue_state *)loop->backend)->kq;
}

static int backend_ctl(pl_loop_t *loop, int fd, unsigned old, unsigned new)
{
    kqueue_state *st = loop->backend;
    struct kevent ch[2];
    int n = 0;
    unsigned added = new & ~old, removed = old & ~new;
    if (added & PL_READABLE)
        EV_SET(&ch[n++], fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
    if (added & PL_WRITABLE)
        EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_ADD, 0, 0, NULL);
    if (n && kevent(st->kq, ch, n, NULL, 0, NULL) < 0)
        return -errno;
    n = 0;
    if (removed & PL_READABLE)
        EV_SET(&ch[n++], fd, EVFILT_READ, EV_DELETE, 0, 0, NULL);
    if (removed & PL_WRITABLE)
        EV_SET(&ch[n++], fd, EVFILT_WRITE, EV_DELETE, 0, 0, NULL);
    /* Deleting from a closed fd fails harmlessly: the kernel dropped it. */
    if (n && kevent(st->kq, ch, n, NULL, 0, NULL) < 0 && errno != EBADF && errno != ENOENT)
        return -errno;
    return 0;
}

static int backend_wait(pl_loop_t *loop, int timeout_ms)
{
    kqueue_state *st = loop->backend;
    struct timespec ts, *tp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tp = &ts;
    }
    int n = kevent(st->kq, NULL, 0, st->ready, KQUEUE_BATCH, tp);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        const struct kevent *e = &st->ready[i];
        unsigned rev = e->filter == EVFILT_READ ? PL_READABLE : PL_WRITABLE;
        if (e->flags & EV_ERROR)
            rev = PL_READABLE | PL_WRITABLE;
        loop->events[i].fd = (int)e->ident;
        loop->events[i].revents = rev;
    }
    return n;
}
