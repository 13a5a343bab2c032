/* loop_internal.h — the loop's private state, shared by the core's files.
 * Nothing outside csrc/ includes this; the binding sees only phaseloop.h. */
#ifndef PHASELOOP_LOOP_INTERNAL_H
#define PHASELOOP_LOOP_INTERNAL_H

#include <stdatomic.h>
#include <sys/types.h>

#include "phaseloop.h"
#include "queue.h"

/* One ready fd reported by a backend, in the loop's own terms. */
typedef struct pl_event {
    int fd;            /* -1 once invalidated (watcher removed mid-batch) */
    unsigned revents;  /* PL_READABLE | PL_WRITABLE */
} pl_event_t;

struct pl_loop {
    uint64_t now;                 /* cached clock, ns */
    uint64_t timer_seq;           /* next timer sequence number */

    pl_timer_t **heap;            /* owned: the timer min-heap's array */
    size_t heap_len;
    size_t heap_cap;

    pl_queue_t due;               /* timers taken off the heap to run now,
                                     in (deadline, seq) order; a break leaves
                                     the rest for the next timers phase */
    size_t ndue;
    pl_queue_t ready;             /* call_soon: drained between callbacks */
    pl_queue_t pending;           /* deferred I/O callbacks */
    pl_queue_t poll_queue;        /* run among the next poll phase's I/O
                                     callbacks (pl_poll_push) */
    pl_queue_t immediates;        /* call_immediate: Node's setImmediate */
    pl_queue_t closing;           /* close callbacks */
    pl_queue_t idle_hooks;
    pl_queue_t prepare_hooks;
    pl_queue_t check_hooks;

    pl_io_t **watchers;           /* owned: fd -> watcher */
    int nwatchers;

    pl_event_t *events;           /* owned: the batch being dispatched */
    int events_cap;
    int nevents;
    int event_cursor;             /* index being dispatched, -1 outside */

    void *backend;                /* owned: the backend's state */

    int wake_rfd;                 /* owned: eventfd, or a pipe's two ends */
    int wake_wfd;
    atomic_int wake_pending;
    pl_io_t wake_io;

    int stop_flag;
    int break_flag;
    int polled_events;            /* the last poll found events: try the next
                                     without releasing the runtime first */
    int busy_polls;               /* polls in a row that did not release it */
    int probe_skip;               /* polls left before the next try (after a
                                     try that found nothing) */
    int probe_backoff;            /* the skip after the next try that finds
                                     nothing: 1, 2, 4 ... PL_BUSY_POLLS */
    uint64_t probes;              /* tries made (the core's tests count them) */
    uint64_t ncallbacks;          /* callbacks run so far: a phase that ran
                                     none reads no clock */
    int64_t wait_cap_ns;
    pid_t pid;                    /* creator: a forked child must not poll */

    pl_runtime_t rt;
    pl_stats_t stats;
    uint64_t run_start;          /* clock at the start of the current run; 0 when not running */
};

/* timer.c */
void pl__timers_free(pl_loop_t *loop);
pl_timer_t *pl__timer_pop_due(pl_loop_t *loop);
void pl__timer_add_due(pl_loop_t *loop, pl_timer_t *t);
pl_timer_t *pl__timer_take_due(pl_loop_t *loop);

/* wakeup.c */
int pl__wakeup_open(pl_loop_t *loop);
void pl__wakeup_close(pl_loop_t *loop);
void pl__wakeup_drain(pl_loop_t *loop, pl_io_t *io, unsigned revents);

/* loop.c, for the backends */
int pl__events_reserve(pl_loop_t *loop, int n);

#endif
