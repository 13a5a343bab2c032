/* phaseloop.h — the C core's public interface (no Python here).
 *
 * The core moves caller-owned, intrusive nodes between queues and calls
 * function pointers; it never allocates per scheduled callback and never
 * owns the objects behind the nodes. Every function that can fail returns a
 * negative errno value; 0 (or a count) means success.
 *
 * One iteration of pl_loop_run (see docs/phases.md):
 *   pending -> idle -> prepare -> poll -> check -> close -> timers
 * with the ready queue (asyncio's call_soon, Node's microtasks) drained at
 * the start of every phase and after every callback a phase runs (the poll
 * phase: after its batch of I/O callbacks); in the timers phase, after the
 * clock is read and before the due timers are collected.
 */
#ifndef PHASELOOP_H
#define PHASELOOP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- intrusive queue nodes ---------------------------------------------

A node embedded in the callbacks, timers and hooks below: its layout is
public (the binding embeds these structs), its operations are the core's
own (csrc/queue.h). */

typedef struct pl_queue {
    struct pl_queue *next;
    struct pl_queue *prev;
} pl_queue_t;

/* ---- the loop's objects ------------------------------------------------ */

typedef struct pl_loop pl_loop_t;
typedef struct pl_callback pl_callback_t;
typedef struct pl_timer pl_timer_t;
typedef struct pl_hook pl_hook_t;
typedef struct pl_io pl_io_t;

/* A one-shot callback: a node in the ready, pending, poll, immediates or
 * closing queue. `data` belongs to the caller (the binding keeps its object there). */
typedef void (*pl_callback_fn)(pl_loop_t *loop, pl_callback_t *cb);
struct pl_callback {
    pl_queue_t node;
    pl_callback_fn fn;
    void *data;
};

/* A timer: min-heap ordered by (deadline, seq); ties fire in the order they
 * were started. While it waits, heap_index is its slot; while it sits in the
 * due list of a running timers phase, heap_index is PL_TIMER_DUE. */
#define PL_TIMER_IDLE ((size_t)-1)
#define PL_TIMER_DUE ((size_t)-2)
typedef void (*pl_timer_fn)(pl_loop_t *loop, pl_timer_t *timer);
struct pl_timer {
    uint64_t deadline;   /* monotonic ns; UINT64_MAX = never */
    uint64_t seq;
    size_t heap_index;
    pl_queue_t due;      /* link in the due list of a timers phase */
    pl_timer_fn fn;
    void *data;
};

/* A per-iteration hook (idle, prepare or check), called once per iteration
 * in its phase until stopped. */
typedef void (*pl_hook_fn)(pl_loop_t *loop, pl_hook_t *hook);
struct pl_hook {
    pl_queue_t node;
    pl_hook_fn fn;
    void *data;
};

/* An fd watcher. One per fd: the binding merges readers and writers. */
enum { PL_READABLE = 1, PL_WRITABLE = 2 };
typedef void (*pl_io_fn)(pl_loop_t *loop, pl_io_t *io, unsigned revents);
struct pl_io {
    int fd;
    unsigned events;     /* interest registered with the backend */
    pl_io_fn fn;
    void *data;
};

/* Hooks into the embedding runtime (the binding): called around the
 * blocking wait (to release and retake the GIL) and after a wait that a
 * signal interrupted. Each may be NULL. */
typedef struct pl_runtime {
    void (*before_wait)(pl_loop_t *loop);
    void (*after_wait)(pl_loop_t *loop);
    void (*on_interrupt)(pl_loop_t *loop);
    void *data;
} pl_runtime_t;

typedef enum {
    PL_RUN_DEFAULT = 0,  /* until pl_loop_stop */
    PL_RUN_ONCE = 1,     /* one iteration, waiting for I/O if nothing is due */
    PL_RUN_NOWAIT = 2,   /* one iteration, never waiting */
} pl_run_mode;

/* What pl_loop_run returns besides a negative errno. */
enum { PL_STOPPED = 0, PL_BROKEN = 1 };

/* Counters, always on (cheap increments; read with pl_loop_stats). */
enum {
    PL_PHASE_PENDING, PL_PHASE_IDLE, PL_PHASE_PREPARE, PL_PHASE_POLL,
    PL_PHASE_CHECK, PL_PHASE_CLOSE, PL_PHASE_TIMERS, PL_PHASE_READY,
    PL_NPHASES
};
typedef struct pl_stats {
    uint64_t iterations;
    uint64_t callbacks[PL_NPHASES];  /* callbacks run, by phase */
    uint64_t phase_ns[PL_NPHASES];   /* time spent in each phase (poll includes idle) */
    uint64_t idle_ns;                /* time spent blocked in the wait */
    uint64_t run_ns;                 /* time spent inside pl_loop_run */
    uint64_t ready_max;              /* deepest ready-queue snapshot drained */
} pl_stats_t;

/* ---- clock --------------------------------------------------------------- */

uint64_t pl_clock_ns(void);                /* CLOCK_MONOTONIC, live */

/* ---- loop ---------------------------------------------------------------- */

/* Create a loop; NULL with errno set on failure. The loop owns its backend
 * fd and its wakeup fd; pl_loop_free closes both (or, after fork, only the
 * descriptors, without touching the parent's kernel objects). */
pl_loop_t *pl_loop_new(const pl_runtime_t *runtime);
void pl_loop_free(pl_loop_t *loop);
const char *pl_backend_name(void);       /* "epoll", "poll" or "kqueue" */
void *pl_loop_runtime_data(pl_loop_t *loop);
int pl_loop_backend_fd(pl_loop_t *loop); /* -1 for the poll backend */

int pl_loop_run(pl_loop_t *loop, pl_run_mode mode);
/* End PL_RUN_DEFAULT after this iteration. The request stays until a
 * PL_RUN_DEFAULT run honours it, as asyncio's stop() before run_forever. */
void pl_loop_stop(pl_loop_t *loop);
void pl_loop_break(pl_loop_t *loop);     /* end after the current callback */
/* Cap every wait of PL_RUN_ONCE at ns until changed (negative: no cap). */
void pl_loop_set_wait_cap(pl_loop_t *loop, int64_t ns);
uint64_t pl_loop_now(const pl_loop_t *loop);   /* cached per iteration */
void pl_loop_update_time(pl_loop_t *loop);
void pl_loop_stats(const pl_loop_t *loop, pl_stats_t *out);

/* For closing a loop: unlink and return one queued callback, armed timer
 * or active hook; NULL when none is left. The caller releases what each
 * node belongs to (pl_loop_free only unlinks them). */
pl_callback_t *pl_loop_take_callback(pl_loop_t *loop);
pl_timer_t *pl_loop_take_timer(pl_loop_t *loop);
pl_hook_t *pl_loop_take_hook(pl_loop_t *loop);

/* Thread-safe, async-signal-safe: wake a loop blocked in its wait.
 * Coalesced: one write per burst until the loop has woken. */
void pl_loop_wakeup(pl_loop_t *loop);

/* ---- one-shot queues ---------------------------------------------------- */

void pl_callback_init(pl_callback_t *cb, pl_callback_fn fn, void *data);
void pl_ready_push(pl_loop_t *loop, pl_callback_t *cb);     /* call_soon */
void pl_pending_push(pl_loop_t *loop, pl_callback_t *cb);   /* deferred I/O */
/* Run cb in the next poll phase, after that poll's fd callbacks and before
 * its drain of the ready queue: libuv's async handles, which is how Node
 * delivers thread-pool completions. Not thread-safe by itself: a caller on
 * another thread serialises the push with the loop's thread (the binding
 * holds the GIL) and then calls pl_loop_wakeup. */
void pl_poll_push(pl_loop_t *loop, pl_callback_t *cb);
void pl_immediate_push(pl_loop_t *loop, pl_callback_t *cb); /* call_immediate: the check phase */
void pl_closing_push(pl_loop_t *loop, pl_callback_t *cb);   /* close phase */
/* Unlink a queued callback (any queue); harmless if it is not queued. */
void pl_callback_cancel(pl_callback_t *cb);
int pl_callback_queued(const pl_callback_t *cb);
size_t pl_ready_count(const pl_loop_t *loop);

/* ---- timers ---------------------------------------------------------------- */

void pl_timer_init(pl_timer_t *t, pl_timer_fn fn, void *data);
/* Arm at an absolute deadline (ns on pl_clock_ns's scale). -ENOMEM if the
 * heap cannot grow. Re-arming an armed timer moves it. */
int pl_timer_start(pl_loop_t *loop, pl_timer_t *t, uint64_t deadline);
/* Disarm; returns 1 if it was armed (or due), 0 otherwise. */
int pl_timer_stop(pl_loop_t *loop, pl_timer_t *t);
static inline int pl_timer_active(const pl_timer_t *t) { return t->heap_index != PL_TIMER_IDLE; }
size_t pl_timer_count(const pl_loop_t *loop);
/* Nearest deadline, or UINT64_MAX if no timer is armed. */
uint64_t pl_timer_next(const pl_loop_t *loop);

/* ---- hooks ---------------------------------------------------------------- */

void pl_hook_init(pl_hook_t *h, pl_hook_fn fn, void *data);
void pl_idle_start(pl_loop_t *loop, pl_hook_t *h);
void pl_prepare_start(pl_loop_t *loop, pl_hook_t *h);
void pl_check_start(pl_loop_t *loop, pl_hook_t *h);
void pl_hook_stop(pl_hook_t *h);
int pl_hook_active(const pl_hook_t *h);

/* ---- fd watchers ------------------------------------------------------------ */

void pl_io_init(pl_io_t *io, int fd, pl_io_fn fn, void *data);
/* Set the interest of io to `events` (PL_READABLE | PL_WRITABLE, or 0 to
 * stop watching). -EEXIST if another watcher has the fd, the backend's
 * errno otherwise (-EPERM for a regular file on epoll, -EBADF). */
int pl_io_set(pl_loop_t *loop, pl_io_t *io, unsigned events);
pl_io_t *pl_io_lookup(const pl_loop_t *loop, int fd);

#ifdef __cplusplus
}
#endif
#endif /* PHASELOOP_H */
