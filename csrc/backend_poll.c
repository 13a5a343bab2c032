/* backend_poll.c — portable poll(2). Included by loop.c.
 *
 * A dense pollfd array plus an fd -> slot map; removal swaps the last slot
 * into the hole, so every operation but the wait is O(1). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "loop_internal.h"

typedef struct {
    struct pollfd *fds;   /* owned */
    int nfds;
    int cap;
    int *slot;            /* owned: fd -> index in fds, -1 if absent */
    int nslots;
} poll_state;

static const char backend_name[] = "poll";

static int backend_init(pl_loop_t *loop)
{
    poll_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    loop->backend = st;
    return pl__events_reserve(loop, 64);
}

static void backend_free(pl_loop_t *loop, int forked)
{
    (void)forked;
    poll_state *st = loop->backend;
    free(st->fds);
    free(st->slot);
    free(st);
    loop->backend = NULL;
}

static int backend_fd(pl_loop_t *loop)
{
    (void)loop;
    return -1;
}

static short to_poll(unsigned events)
{
    return (short)(((events & PL_READABLE) ? POLLIN : 0) | ((events & PL_WRITABLE) ? POLLOUT : 0));
}

static int grow_slots(poll_state *st, int fd)
{
    if (fd < st->nslots)
        return 0;
    int n = st->nslots ? st->nslots : 64;
    while (n <= fd)
        n *= 2;
    int *s = realloc(st->slot, (size_t)n * sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    for (int i = st->nslots; i < n; i++)
        s[i] = -1;
    st->slot = s;
    st->nslots = n;
    return 0;
}

static int add_fd(pl_loop_t *loop, poll_state *st, int fd, unsigned events)
{
    /* poll(2) reports a bad fd only at wait time; check now, as epoll does. */
    if (fcntl(fd, F_GETFD) < 0)
        return -errno;
    int r = grow_slots(st, fd);
    if (r < 0)
        return r;
    if (st->nfds == st->cap) {
        int cap = st->cap ? st->cap * 2 : 64;
        struct pollfd *f = realloc(st->fds, (size_t)cap * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        st->fds = f;
        st->cap = cap;
    }
    if ((r = pl__events_reserve(loop, st->nfds + 1)) < 0)
        return r;
    st->fds[st->nfds] = (struct pollfd){.fd = fd, .events = to_poll(events)};
    st->slot[fd] = st->nfds++;
    return 0;
}

static void remove_fd(poll_state *st, int fd)
{
    int i = st->slot[fd];
    st->slot[fd] = -1;
    if (i != --st->nfds) {
        st->fds[i] = st->fds[st->nfds];
        st->slot[st->fds[i].fd] = i;
    }
}

static int backend_ctl(pl_loop_t *loop, int fd, unsigned old, unsigned new)
{
    poll_state *st = loop->backend;
    int present = fd < st->nslots && st->slot[fd] >= 0;
    (void)old;
    if (new == 0) {
        if (present)
            remove_fd(st, fd);
        return 0;
    }
    if (!present)
        return add_fd(loop, st, fd, new);
    st->fds[st->slot[fd]].events = to_poll(new);
    return 0;
}

static int backend_wait(pl_loop_t *loop, int timeout_ms)
{
    poll_state *st = loop->backend;
    int n = poll(st->fds, (nfds_t)st->nfds, timeout_ms);
    if (n < 0)
        return -errno;
    int k = 0;
    for (int i = 0; i < st->nfds && k < n; i++) {
        short e = st->fds[i].revents;
        if (e == 0)
            continue;
        loop->events[k].fd = st->fds[i].fd;
        loop->events[k].revents = ((e & ~POLLOUT) ? PL_READABLE : 0)
                                | ((e & ~POLLIN) ? PL_WRITABLE : 0);
        k++;
    }
    return k;
}
