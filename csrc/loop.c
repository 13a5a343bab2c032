/* loop.c — the phase loop: queues, hooks, fd watchers and pl_loop_run.
 *
 * pl_loop_run reads as the list of phases (docs/phases.md). Every phase
 * starts with a drain of the ready queue and drains it again after each
 * callback it runs (the poll phase: after its batch of I/O callbacks), and
 * every phase function returns non-zero once pl_loop_break was called,
 * leaving whatever it had not run queued for the next run. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "loop_internal.h"
#include "backend.h"

/* ---- small pieces --------------------------------------------------------- */

const char *pl_backend_name(void) { return backend_name; }
void *pl_loop_runtime_data(pl_loop_t *loop) { return loop->rt.data; }
int pl_loop_backend_fd(pl_loop_t *loop) { return backend_fd(loop); }
uint64_t pl_loop_now(const pl_loop_t *loop) { return loop->now; }
void pl_loop_update_time(pl_loop_t *loop) { loop->now = pl_clock_ns(); }
void pl_loop_stop(pl_loop_t *loop) { loop->stop_flag = 1; }
void pl_loop_break(pl_loop_t *loop) { loop->break_flag = 1; }
void pl_loop_set_wait_cap(pl_loop_t *loop, int64_t ns) { loop->wait_cap_ns = ns; }
void pl_loop_stats(const pl_loop_t *loop, pl_stats_t *out)
{
    *out = loop->stats;
    if (loop->run_start)                 /* read from inside a run: count it so far */
        out->run_ns += pl_clock_ns() - loop->run_start;
}

void pl_callback_cancel(pl_callback_t *cb) { pl_queue_remove(&cb->node); }
int pl_callback_queued(const pl_callback_t *cb) { return pl_queue_linked(&cb->node); }
void pl_hook_stop(pl_hook_t *h) { pl_queue_remove(&h->node); }
int pl_hook_active(const pl_hook_t *h) { return pl_queue_linked(&h->node); }

void pl_callback_init(pl_callback_t *cb, pl_callback_fn fn, void *data)
{
    pl_queue_init(&cb->node);
    cb->fn = fn;
    cb->data = data;
}

void pl_ready_push(pl_loop_t *loop, pl_callback_t *cb) { pl_queue_insert_tail(&loop->ready, &cb->node); }
void pl_pending_push(pl_loop_t *loop, pl_callback_t *cb) { pl_queue_insert_tail(&loop->pending, &cb->node); }
void pl_poll_push(pl_loop_t *loop, pl_callback_t *cb) { pl_queue_insert_tail(&loop->poll_queue, &cb->node); }
void pl_immediate_push(pl_loop_t *loop, pl_callback_t *cb) { pl_queue_insert_tail(&loop->immediates, &cb->node); }
void pl_closing_push(pl_loop_t *loop, pl_callback_t *cb) { pl_queue_insert_tail(&loop->closing, &cb->node); }

size_t pl_ready_count(const pl_loop_t *loop)
{
    size_t n = 0;
    for (const pl_queue_t *q = loop->ready.next; q != &loop->ready; q = q->next)
        n++;
    return n;
}

void pl_hook_init(pl_hook_t *h, pl_hook_fn fn, void *data)
{
    pl_queue_init(&h->node);
    h->fn = fn;
    h->data = data;
}

static void hook_start(pl_queue_t *list, pl_hook_t *h)
{
    if (!pl_hook_active(h))
        pl_queue_insert_tail(list, &h->node);
}

void pl_idle_start(pl_loop_t *loop, pl_hook_t *h) { hook_start(&loop->idle_hooks, h); }
void pl_prepare_start(pl_loop_t *loop, pl_hook_t *h) { hook_start(&loop->prepare_hooks, h); }
void pl_check_start(pl_loop_t *loop, pl_hook_t *h) { hook_start(&loop->check_hooks, h); }

int pl__events_reserve(pl_loop_t *loop, int n)
{
    if (n <= loop->events_cap)
        return 0;
    int cap = loop->events_cap ? loop->events_cap : 64;
    while (cap < n)
        cap *= 2;
    pl_event_t *ev = realloc(loop->events, (size_t)cap * sizeof *ev);
    if (ev == NULL)
        return -ENOMEM;
    loop->events = ev;
    loop->events_cap = cap;
    return 0;
}

/* ---- fd watchers ----------------------------------------------------------- */

void pl_io_init(pl_io_t *io, int fd, pl_io_fn fn, void *data)
{
    io->fd = fd;
    io->events = 0;
    io->fn = fn;
    io->data = data;
}

pl_io_t *pl_io_lookup(const pl_loop_t *loop, int fd)
{
    return fd >= 0 && fd < loop->nwatchers ? loop->watchers[fd] : NULL;
}

static int watchers_reserve(pl_loop_t *loop, int fd)
{
    PL_ASSERT(fd >= 0);
    if (fd < loop->nwatchers)
        return 0;
    int n = loop->nwatchers ? loop->nwatchers : 64;
    while (n <= fd)
        n *= 2;
    pl_io_t **w = realloc(loop->watchers, (size_t)n * sizeof *w);
    if (w == NULL)
        return -ENOMEM;
    for (int i = loop->nwatchers; i < n; i++)
        w[i] = NULL;
    loop->watchers = w;
    loop->nwatchers = n;
    return 0;
}

/* A watcher removed while its batch is being dispatched must not receive
 * the batch's later events, which may belong to a new owner of the fd. */
static void invalidate_events(pl_loop_t *loop, int fd)
{
    for (int i = loop->event_cursor + 1; i < loop->nevents && loop->event_cursor >= 0; i++)
        if (loop->events[i].fd == fd)
            loop->events[i].fd = -1;
}

int pl_io_set(pl_loop_t *loop, pl_io_t *io, unsigned events)
{
    int fd = io->fd, r;
    if (fd < 0)
        return -EBADF;
    pl_io_t *owner = pl_io_lookup(loop, fd);
    if (owner != NULL && owner != io)
        return -EEXIST;
    unsigned old = owner == io ? io->events : 0;
    if (old == events)
        return 0;
    if (events && (r = watchers_reserve(loop, fd)) < 0)
        return r;
    if ((r = backend_ctl(loop, fd, old, events)) < 0)
        return r;
    io->events = events;
    if (events) {
        loop->watchers[fd] = io;
    } else {
        loop->watchers[fd] = NULL;
        invalidate_events(loop, fd);
    }
    return 0;
}

/* ---- construction ------------------------------------------------------------ */

pl_loop_t *pl_loop_new(const pl_runtime_t *runtime)
{
    pl_loop_t *loop = calloc(1, sizeof *loop);
    int r;
    if (loop == NULL)
        return NULL;
    pl_queue_init(&loop->due);
    pl_queue_init(&loop->ready);
    pl_queue_init(&loop->pending);
    pl_queue_init(&loop->poll_queue);
    pl_queue_init(&loop->immediates);
    pl_queue_init(&loop->closing);
    pl_queue_init(&loop->idle_hooks);
    pl_queue_init(&loop->prepare_hooks);
    pl_queue_init(&loop->check_hooks);
    loop->event_cursor = -1;
    loop->wait_cap_ns = -1;
    loop->wake_rfd = loop->wake_wfd = -1;
    loop->pid = getpid();
    if (runtime != NULL)
        loop->rt = *runtime;
    loop->now = pl_clock_ns();
    if ((r = backend_init(loop)) < 0)
        goto fail;
    if ((r = pl__wakeup_open(loop)) < 0)
        goto fail_backend;
    pl_io_init(&loop->wake_io, loop->wake_rfd, pl__wakeup_drain, NULL);
    if ((r = pl_io_set(loop, &loop->wake_io, PL_READABLE)) < 0)
        goto fail_wakeup;
    return loop;

fail_wakeup:
    pl__wakeup_close(loop);
fail_backend:
    backend_free(loop, 0);
fail:
    free(loop->events);
    free(loop->watchers);
    free(loop);
    errno = -r;
    return NULL;
}

/* Unlink every node of a queue the loop is dropping (the binding frees
 * what they belong to; the loop must not leave them pointing at it). */
static void queue_detach_all(pl_queue_t *q)
{
    while (!pl_queue_empty(q))
        pl_queue_remove(q->next);
}

void pl_loop_free(pl_loop_t *loop)
{
    if (loop == NULL)
        return;
    int forked = getpid() != loop->pid;
    queue_detach_all(&loop->ready);
    queue_detach_all(&loop->pending);
    queue_detach_all(&loop->poll_queue);
    queue_detach_all(&loop->immediates);
    queue_detach_all(&loop->closing);
    queue_detach_all(&loop->idle_hooks);
    queue_detach_all(&loop->prepare_hooks);
    queue_detach_all(&loop->check_hooks);
    pl__timers_free(loop);
    pl__wakeup_close(loop);
    backend_free(loop, forked);
    free(loop->events);
    free(loop->watchers);
    free(loop);
}

/* ---- the phases --------------------------------------------------------------- */

/* Run the ready queue's snapshot: callbacks queued meanwhile wait for the
 * next drain. On a break the rest of the snapshot goes back to the front.
 * Every phase calls it after each callback, mostly on an empty queue: that
 * test is inline, the drain is not. */
static int drain_ready_batch(pl_loop_t *loop);

static inline int drain_ready(pl_loop_t *loop)
{
    if (loop->break_flag || pl_queue_empty(&loop->ready))
        return loop->break_flag;
    return drain_ready_batch(loop);
}

static int drain_ready_batch(pl_loop_t *loop)
{
    pl_queue_t batch;
    uint64_t n = 0;
    pl_queue_move(&loop->ready, &batch);
    while (!pl_queue_empty(&batch)) {
        pl_callback_t *cb = pl_container_of(batch.next, pl_callback_t, node);
        pl_queue_remove(&cb->node);
        n++;
        cb->fn(loop, cb);
        if (loop->break_flag) {
            pl_queue_prepend(&loop->ready, &batch);
            break;
        }
    }
    loop->stats.callbacks[PL_PHASE_READY] += n;
    loop->ncallbacks += n;
    if (n > loop->stats.ready_max)
        loop->stats.ready_max = n;
    return loop->break_flag;
}

/* Run a snapshot of a one-shot queue (pending, immediates, closing). The phase
 * starts with a drain: a callback queued by the last drain of the phase
 * before runs ahead of this phase's callbacks, as a microtask queued in a
 * Node callback runs before the next phase (and a callback that drain
 * queues here runs in this phase). Most iterations find most queues and
 * hook lists empty: those tests are inline. */
static int run_queue_batch(pl_loop_t *loop, pl_queue_t *q, int phase);

static inline int run_queue(pl_loop_t *loop, pl_queue_t *q, int phase)
{
    if (drain_ready(loop))
        return 1;
    if (pl_queue_empty(q))
        return 0;
    return run_queue_batch(loop, q, phase);
}

static int run_queue_batch(pl_loop_t *loop, pl_queue_t *q, int phase)
{
    pl_queue_t batch;
    pl_queue_move(q, &batch);
    while (!pl_queue_empty(&batch)) {
        pl_callback_t *cb = pl_container_of(batch.next, pl_callback_t, node);
        pl_queue_remove(&cb->node);
        loop->stats.callbacks[phase]++;
        loop->ncallbacks++;
        cb->fn(loop, cb);
        if (drain_ready(loop)) {
            pl_queue_prepend(q, &batch);
            return 1;
        }
    }
    return 0;
}

/* Run each hook of a list once, after a drain as run_queue. A hook started
 * meanwhile waits for the next iteration; one stopped meanwhile is skipped. */
static int run_hooks_list(pl_loop_t *loop, pl_queue_t *list, int phase);

static inline int run_hooks(pl_loop_t *loop, pl_queue_t *list, int phase)
{
    if (drain_ready(loop))
        return 1;
    if (pl_queue_empty(list))
        return 0;
    return run_hooks_list(loop, list, phase);
}

static int run_hooks_list(pl_loop_t *loop, pl_queue_t *list, int phase)
{
    pl_queue_t todo;
    pl_queue_move(list, &todo);
    while (!pl_queue_empty(&todo)) {
        pl_hook_t *h = pl_container_of(todo.next, pl_hook_t, node);
        pl_queue_remove(&h->node);
        pl_queue_insert_tail(list, &h->node);
        loop->stats.callbacks[phase]++;
        loop->ncallbacks++;
        h->fn(loop, h);
        if (drain_ready(loop)) {
            while (!pl_queue_empty(&todo)) {
                pl_queue_t *n = todo.next;
                pl_queue_remove(n);
                pl_queue_insert_tail(list, n);
            }
            return 1;
        }
    }
    return 0;
}

static int poll_timeout_ms(pl_loop_t *loop, pl_run_mode mode)
{
    if (mode == PL_RUN_NOWAIT || loop->stop_flag || loop->break_flag
        || !pl_queue_empty(&loop->ready) || !pl_queue_empty(&loop->pending)
        || !pl_queue_empty(&loop->poll_queue)
        || !pl_queue_empty(&loop->idle_hooks) || !pl_queue_empty(&loop->immediates)
        || !pl_queue_empty(&loop->closing) || loop->ndue)
        return 0;
    uint64_t next = pl_timer_next(loop);
    int64_t wait_ns = -1;
    /* A callback may have run long since the clock was read (a blocking
     * call): measure the wait from now, or the timer would fire that late. */
    if (next != UINT64_MAX)
        pl_loop_update_time(loop);
    if (next != UINT64_MAX)
        wait_ns = next <= loop->now ? 0 : (int64_t)(next - loop->now);
    if (mode == PL_RUN_ONCE && loop->wait_cap_ns >= 0 && (wait_ns < 0 || wait_ns > loop->wait_cap_ns))
        wait_ns = loop->wait_cap_ns;
    if (wait_ns < 0)
        return -1;
    /* Round up: waking before the deadline would only spin. */
    int64_t ms = (wait_ns + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The callbacks pushed with pl_poll_push before this poll (a snapshot:
 * one pushed meanwhile waits for the next poll), as I/O callbacks of the
 * batch: no drain of the ready queue between them. */
static void run_poll_queue(pl_loop_t *loop)
{
    if (pl_queue_empty(&loop->poll_queue))
        return;
    pl_queue_t batch;
    pl_queue_move(&loop->poll_queue, &batch);
    while (!pl_queue_empty(&batch)) {
        pl_callback_t *cb = pl_container_of(batch.next, pl_callback_t, node);
        pl_queue_remove(&cb->node);
        loop->stats.callbacks[PL_PHASE_POLL]++;
        cb->fn(loop, cb);
        if (loop->break_flag) {
            pl_queue_prepend(&loop->poll_queue, &batch);
            return;
        }
    }
}

static int dispatch_events(pl_loop_t *loop, int n)
{
    loop->nevents = n;
    for (int i = 0; i < n; i++) {
        loop->event_cursor = i;
        int fd = loop->events[i].fd;
        PL_ASSERT(fd >= -1);     /* -1: a watcher removed earlier in this batch */
        pl_io_t *io = pl_io_lookup(loop, fd);
        if (io == NULL)
            continue;
        unsigned revents = loop->events[i].revents & io->events;
        if (revents == 0)
            continue;
        loop->stats.callbacks[PL_PHASE_POLL]++;
        loop->ncallbacks++;
        io->fn(loop, io, revents);
        if (loop->break_flag)
            break;
    }
    loop->event_cursor = -1;
    loop->nevents = 0;
    if (!loop->break_flag)
        run_poll_queue(loop);
    if (!loop->break_flag)
        drain_ready(loop);
    return loop->break_flag;
}

/* A wait that may block runs between the runtime's before_wait and
 * after_wait (the binding releases the GIL there). When the last poll found
 * events the loop is likely busy: it first tries a poll that cannot block,
 * without the hooks, and waits only if that finds nothing. Under callgrind
 * the hooks (a GIL release and retake) cost ~370 instructions per
 * iteration, 7% of an add_reader round trip. A try that finds nothing is
 * a syscall wasted, the common case when the peers share the loop's core
 * (a benchmark client pinned with the server): after one, the loop skips
 * the try for 1, 2, 4 ... up to PL_BUSY_POLLS polls, and a try that finds
 * events starts that over. Every PL_BUSY_POLLS-th poll releases the runtime
 * anyway, so that a busy loop whose callbacks run no Python still lets
 * other threads in between iterations. */
#define PL_BUSY_POLLS 64

static inline int probe_first(pl_loop_t *loop)
{
    if (!loop->polled_events)
        return 0;
    if (loop->probe_skip > 0) {
        loop->probe_skip--;
        return 0;
    }
    return ++loop->busy_polls < PL_BUSY_POLLS;
}

static int run_poll(pl_loop_t *loop, int timeout_ms)
{
    int n = 0;
    if (timeout_ms != 0 && probe_first(loop)) {
        loop->probes++;
        n = backend_wait(loop, 0);
        if (n != 0) {
            loop->probe_backoff = 1;
        } else {
            loop->probe_skip = loop->probe_backoff ? loop->probe_backoff : 1;
            loop->probe_backoff = loop->probe_skip < PL_BUSY_POLLS ? 2 * loop->probe_skip
                                                                  : PL_BUSY_POLLS;
        }
    }
    if (n == 0 && timeout_ms != 0) {
        loop->busy_polls = 0;
        uint64_t before = pl_clock_ns();
        if (loop->rt.before_wait)
            loop->rt.before_wait(loop);
        n = backend_wait(loop, timeout_ms);
        if (loop->rt.after_wait)
            loop->rt.after_wait(loop);
        pl_loop_update_time(loop);
        loop->stats.idle_ns += loop->now - before;
    } else if (timeout_ms == 0) {
        n = backend_wait(loop, 0);
    }
    /* Without a wait the clock is read once the callbacks have run (the
     * poll phase's timing, which also refreshes the loop's time). */
    loop->polled_events = n > 0;
    if (n == -EINTR) {
        if (loop->rt.on_interrupt)
            loop->rt.on_interrupt(loop);
        n = 0;
    }
    if (n < 0)
        return n;
    return dispatch_events(loop, n);
}

/* Immediates (a snapshot: one queued by an immediate waits an iteration),
 * then the check hooks. */
static int run_check(pl_loop_t *loop)
{
    if (run_queue(loop, &loop->immediates, PL_PHASE_CHECK))
        return 1;
    return run_hooks(loop, &loop->check_hooks, PL_PHASE_CHECK);
}

/* Drain the ready queue first: the clock was read just before, so a
 * callback queued before that read runs before a timer armed no later
 * than it (asyncio's order for call_later(0) then call_soon), and a timer
 * armed by that drain is not due yet. Then collect the due set, so a timer
 * armed by a timer callback runs in the next iteration even when it is
 * already due. The set lives in the loop: timers a break leaves unrun stay
 * there, and the next timers phase merges the newly due among them by
 * (deadline, seq). Most iterations have nothing due: that test is inline. */
static int run_due_timers(pl_loop_t *loop);

static inline int run_timers(pl_loop_t *loop)
{
    if (loop->ndue == 0 && (loop->heap_len == 0 || loop->heap[0]->deadline > loop->now))
        return drain_ready(loop);
    return run_due_timers(loop);
}

static int run_due_timers(pl_loop_t *loop)
{
    pl_timer_t *t;
    if (drain_ready(loop))
        return 1;
    while ((t = pl__timer_pop_due(loop)) != NULL)
        pl__timer_add_due(loop, t);
    while ((t = pl__timer_take_due(loop)) != NULL) {
        loop->stats.callbacks[PL_PHASE_TIMERS]++;
        loop->ncallbacks++;
        t->fn(loop, t);
        if (drain_ready(loop))
            return 1;
    }
    return 0;
}

/* Charge the time since *mark to a phase: loop.metrics()'s timings. A
 * phase that ran no callback took next to no time and reads no clock (its
 * few nanoseconds go to the next phase that does); the poll phase always
 * does, its wait is in it. The reading is also the loop's time: the last
 * one follows the last callback, so the timers phase needs no clock read
 * of its own (timers may fire nanoseconds late, never early). */
static inline void phase_done(pl_loop_t *loop, int phase, uint64_t *mark, uint64_t *calls)
{
    if (loop->ncallbacks == *calls && phase != PL_PHASE_POLL)
        return;
    *calls = loop->ncallbacks;
    uint64_t now = pl_clock_ns();
    loop->stats.phase_ns[phase] += now - *mark;
    *mark = loop->now = now;
}

/* One phase of pl_loop_run: run it, charge its time, and end the run if it
 * returned non-zero (a break, or an error). */
#define PHASE(id, call)                                   \
    do {                                                  \
        r = (call);                                       \
        phase_done(loop, (id), &mark, &calls);            \
        if (r != 0)                                       \
            goto out;                                     \
    } while (0)

int pl_loop_run(pl_loop_t *loop, pl_run_mode mode)
{
    int r = 0;
    if (getpid() != loop->pid)
        return -ECHILD;
    loop->break_flag = 0;
    pl_loop_update_time(loop);
    uint64_t start = loop->now, mark = start, calls = loop->ncallbacks;
    loop->run_start = start;
    /* As Node starts: microtasks queued before the run, then due timers. */
    if (mode == PL_RUN_DEFAULT && ((r = drain_ready(loop)) != 0 || (r = run_timers(loop)) != 0))
        goto out;
    for (;;) {
        PHASE(PL_PHASE_READY, drain_ready(loop));
        PHASE(PL_PHASE_PENDING, run_queue(loop, &loop->pending, PL_PHASE_PENDING));
        PHASE(PL_PHASE_IDLE, run_hooks(loop, &loop->idle_hooks, PL_PHASE_IDLE));
        PHASE(PL_PHASE_PREPARE, run_hooks(loop, &loop->prepare_hooks, PL_PHASE_PREPARE));
        PHASE(PL_PHASE_POLL, run_poll(loop, poll_timeout_ms(loop, mode)));
        PHASE(PL_PHASE_CHECK, run_check(loop));
        PHASE(PL_PHASE_CLOSE, run_queue(loop, &loop->closing, PL_PHASE_CLOSE));
        PHASE(PL_PHASE_TIMERS, run_timers(loop));
        loop->stats.iterations++;
        if (mode != PL_RUN_DEFAULT || loop->stop_flag)
            break;
    }
out:
    loop->stats.run_ns += pl_clock_ns() - start;
    loop->run_start = 0;
    if (r < 0)
        return r;
    if (loop->break_flag) {
        loop->break_flag = 0;
        return PL_BROKEN;
    }
    if (mode == PL_RUN_DEFAULT)
        loop->stop_flag = 0;
    return PL_STOPPED;
}

#undef PHASE

/* ---- teardown ------------------------------------------------------------------- */

/* For closing a loop: unlink and return one queued callback (ready,
 * pending, poll, immediates or closing), armed timer or active hook; NULL when none
 * is left. The binding releases what each node belongs to. */
pl_callback_t *pl_loop_take_callback(pl_loop_t *loop)
{
    pl_queue_t *queues[] = {&loop->ready, &loop->pending, &loop->poll_queue, &loop->immediates,
                            &loop->closing};
    for (size_t i = 0; i < sizeof queues / sizeof *queues; i++) {
        if (!pl_queue_empty(queues[i])) {
            pl_queue_t *n = queues[i]->next;
            pl_queue_remove(n);
            return pl_container_of(n, pl_callback_t, node);
        }
    }
    return NULL;
}

pl_timer_t *pl_loop_take_timer(pl_loop_t *loop)
{
    pl_timer_t *t = pl__timer_take_due(loop);
    if (t == NULL && loop->heap_len != 0) {
        t = loop->heap[loop->heap_len - 1];
        pl_timer_stop(loop, t);
    }
    return t;
}

pl_hook_t *pl_loop_take_hook(pl_loop_t *loop)
{
    pl_queue_t *lists[] = {&loop->idle_hooks, &loop->prepare_hooks, &loop->check_hooks};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        if (!pl_queue_empty(lists[i])) {
            pl_queue_t *n = lists[i]->next;
            pl_queue_remove(n);
            return pl_container_of(n, pl_hook_t, node);
        }
    }
    return NULL;
}
