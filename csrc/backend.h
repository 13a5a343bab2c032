/* backend.h — the interface every I/O backend implements, and the choice
 * of one. Each backend_*.c defines these static functions; loop.c includes
 * exactly one of them (chosen here), so the loop itself has no #ifdefs.
 *
 *   backend_name                   "epoll", "poll" or "kqueue"
 *   backend_init(loop)             create state in loop->backend; -errno
 *   backend_free(loop, forked)     release it; after fork, touch no kernel
 *                                  object the parent still uses
 *   backend_fd(loop)               the pollable fd, or -1
 *   backend_ctl(loop, fd, old, new) change interest from old to new
 *                                  (PL_READABLE|PL_WRITABLE; 0 = none); -errno
 *   backend_wait(loop, timeout_ms) wait (-1 = forever), fill loop->events;
 *                                  count, or -errno (-EINTR on a signal)
 */
#ifndef PHASELOOP_BACKEND_H
#define PHASELOOP_BACKEND_H

#if !defined(PL_BACKEND_EPOLL) && !defined(PL_BACKEND_KQUEUE) && !defined(PL_BACKEND_POLL)
#if defined(__linux__)
#define PL_BACKEND_EPOLL 1
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__)
#define PL_BACKEND_KQUEUE 1
#else
#define PL_BACKEND_POLL 1
#endif
#endif

#if defined(PL_BACKEND_EPOLL)
#include "backend_epoll.c"
#elif defined(PL_BACKEND_KQUEUE)
#include "backend_kqueue.c"
#else
#include "backend_poll.c"
#endif

#endif
