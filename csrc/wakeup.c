/* wakeup.c — cross-thread wakeup of a loop blocked in its wait.
 *
 * Linux has eventfd (one fd); elsewhere a non-blocking pipe. Wakeups are
 * coalesced by wake_pending: the first pl_loop_wakeup of a burst writes,
 * the rest see the flag and return. The loop clears the flag *before* it
 * reads the fd, so a wakeup racing with the drain writes again rather than
 * being lost (a spurious wakeup is harmless, a lost one hangs the loop). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "loop_internal.h"

#ifdef __linux__
int pl__wakeup_open(pl_loop_t *loop)
{
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    loop->wake_rfd = loop->wake_wfd = fd;
    return 0;
}
#else
static int set_flags(int fd)
{
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int pl__wakeup_open(pl_loop_t *loop)
{
    int fds[2], r;
    if (pipe(fds) < 0)
        return -errno;
    if ((r = set_flags(fds[0])) < 0 || (r = set_flags(fds[1])) < 0) {
        close(fds[0]);
        close(fds[1]);
        return r;
    }
    loop->wake_rfd = fds[0];
    loop->wake_wfd = fds[1];
    return 0;
}
#endif

void pl__wakeup_close(pl_loop_t *loop)
{
    if (loop->wake_wfd >= 0 && loop->wake_wfd != loop->wake_rfd)
        close(loop->wake_wfd);
    if (loop->wake_rfd >= 0)
        close(loop->wake_rfd);
    loop->wake_rfd = loop->wake_wfd = -1;
}

void pl_loop_wakeup(pl_loop_t *loop)
{
    if (atomic_exchange(&loop->wake_pending, 1))
        return;
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(loop->wake_wfd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter or pipe is full, so a wakeup is already due. */
}

void pl__wakeup_drain(pl_loop_t *loop, pl_io_t *io, unsigned revents)
{
    (void)revents;
    char buf[64];
    ssize_t n;
    atomic_store(&loop->wake_pending, 0);
    do {
        n = read(io->fd, buf, sizeof buf);
        /* An eventfd hands over its whole counter in one read. */
    } while ((n > 0 && loop->wake_rfd != loop->wake_wfd) || (n < 0 && errno == EINTR));
}
