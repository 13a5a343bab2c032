/* test_phases.c — one iteration of pl_loop_run, phase by phase.
 *
 * Callbacks append their names to a log; each test compares the log with
 * the order docs/phases.md gives: pending, idle, prepare, poll, check, close,
 * timers, with the ready queue drained after every callback (a snapshot per
 * drain). Also: break and stop, the run modes and the wait cap, wakeups
 * from another thread, fd watcher errors and removal mid-batch, fork,
 * taking everything back from a loop. Public API only, but for the
 * wakeup fd (loop_internal.h), to count the writes a burst of wakeups made,
 * and the count of polls tried before waiting. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "loop_internal.h" /* the wakeup fd (wakeup_writes), the poll tries (probes) */

/* ---- the log ------------------------------------------------------------------ */

static char log_buf[4096];

static void log_clear(void) { log_buf[0] = '\0'; }

static void note(const char *name)
{
    CHECK(strlen(log_buf) + strlen(name) + 2 < sizeof log_buf);
    if (log_buf[0])
        strcat(log_buf, " ");
    strcat(log_buf, name);
}

#define EXPECT_LOG(want)                                                      \
    do {                                                                      \
        if (strcmp(log_buf, (want)) != 0) {                                   \
            fprintf(stderr, "%s:%d: %s: log differs\n  want: %s\n  got:  %s\n", \
                    __FILE__, __LINE__, __func__, (want), log_buf);            \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

/* ---- small helpers ------------------------------------------------------------- */

static uint64_t ms_since(uint64_t t0) { return (pl_clock_ns() - t0) / 1000000u; }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void make_pipe(int fds[2])
{
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

static void write_byte(int fd)
{
    CHECK_EQ(write(fd, "x", 1), 1);
}

static pl_loop_t *new_loop(void)
{
    pl_loop_t *loop = pl_loop_new(NULL);
    CHECK(loop != NULL);
    return loop;
}

static uint64_t poll_callbacks(const pl_loop_t *loop)
{
    pl_stats_t st;
    pl_loop_stats(loop, &st);
    return st.callbacks[PL_PHASE_POLL];
}

/* A one-shot callback that logs its name and may, when it runs, queue
 * another step on the ready or check queue, or break the loop. */
typedef struct step {
    pl_callback_t cb;
    const char *name;
    struct step *then_ready;
    struct step *then_check;
    pl_callback_t *cancel;
    int do_break;
} step_t;

static void on_step(pl_loop_t *loop, pl_callback_t *cb)
{
    step_t *s = pl_container_of(cb, step_t, cb);
    note(s->name);
    if (s->cancel)
        pl_callback_cancel(s->cancel);
    if (s->then_ready)
        pl_ready_push(loop, &s->then_ready->cb);
    if (s->then_check)
        pl_immediate_push(loop, &s->then_check->cb);
    if (s->do_break)
        pl_loop_break(loop);
}

static void step_init(step_t *s, const char *name)
{
    memset(s, 0, sizeof *s);
    pl_callback_init(&s->cb, on_step, NULL);
    s->name = name;
}

/* A hook that logs and may queue a ready step, stop another hook, start
 * one, break or stop the loop. */
typedef struct hook_step {
    pl_hook_t hook;
    const char *name;
    step_t *then_ready;
    pl_hook_t *stop_other;
    pl_hook_t *start_check;
    int calls;
    int break_on_call;   /* break on this call (1-based), 0 never */
    int stop_every;      /* pl_loop_stop on every n-th call, 0 never */
    step_t *immediate_on_stop;
} hook_step_t;

static void on_hook(pl_loop_t *loop, pl_hook_t *h)
{
    hook_step_t *s = pl_container_of(h, hook_step_t, hook);
    s->calls++;
    note(s->name);
    if (s->then_ready && !pl_callback_queued(&s->then_ready->cb))
        pl_ready_push(loop, &s->then_ready->cb);
    if (s->stop_other)
        pl_hook_stop(s->stop_other);
    if (s->start_check)
        pl_check_start(loop, s->start_check);
    if (s->break_on_call == s->calls)
        pl_loop_break(loop);
    if (s->stop_every && s->calls % s->stop_every == 0) {
        pl_loop_stop(loop);
        if (s->immediate_on_stop)
            pl_immediate_push(loop, &s->immediate_on_stop->cb);
    }
}

static void hook_step_init(hook_step_t *s, const char *name)
{
    memset(s, 0, sizeof *s);
    pl_hook_init(&s->hook, on_hook, NULL);
    s->name = name;
}

/* A timer that logs and may queue a ready step, arm another timer, break. */
typedef struct timer_step {
    pl_timer_t timer;
    const char *name;
    step_t *then_ready;
    pl_timer_t *start;
    uint64_t start_deadline;
    int do_break;
} timer_step_t;

static void on_timer(pl_loop_t *loop, pl_timer_t *t)
{
    timer_step_t *s = pl_container_of(t, timer_step_t, timer);
    note(s->name);
    if (s->then_ready)
        pl_ready_push(loop, &s->then_ready->cb);
    if (s->start)
        CHECK_EQ(pl_timer_start(loop, s->start, s->start_deadline), 0);
    if (s->do_break)
        pl_loop_break(loop);
}

static void timer_step_init(timer_step_t *s, const char *name)
{
    memset(s, 0, sizeof *s);
    pl_timer_init(&s->timer, on_timer, NULL);
    s->name = name;
}

/* A watcher of a pipe's read end that logs, reads what is there and may
 * queue a ready step or break. */
typedef struct io_step {
    pl_io_t io;
    const char *name;
    step_t *then_ready;
    int do_break;
    int calls;
} io_step_t;

static void on_io(pl_loop_t *loop, pl_io_t *io, unsigned revents)
{
    io_step_t *s = pl_container_of(io, io_step_t, io);
    char buf[16];
    CHECK(revents & PL_READABLE);
    s->calls++;
    note(s->name);
    while (read(io->fd, buf, sizeof buf) > 0) {
    }
    if (s->then_ready)
        pl_ready_push(loop, &s->then_ready->cb);
    if (s->do_break)
        pl_loop_break(loop);
}

static void io_step_init(io_step_t *s, int fd, const char *name)
{
    memset(s, 0, sizeof *s);
    pl_io_init(&s->io, fd, on_io, NULL);
    s->name = name;
}

/* ---- phase order ------------------------------------------------------------------ */

static void test_phase_order(void)
{
    pl_loop_t *loop = new_loop();
    int p[2];
    step_t pending, check1, check2, closing;
    step_t r_pending, r_idle, r_prepare, r_poll, r_check1, r_check2, r_checkhook, r_close, r_timer;
    hook_step_t idle, prepare, checkhook;
    io_step_t io;
    timer_step_t timer;
    pl_stats_t before, after;

    step_init(&r_pending, "r:pending");
    step_init(&r_idle, "r:idle");
    step_init(&r_prepare, "r:prepare");
    step_init(&r_poll, "r:poll");
    step_init(&r_check1, "r:check1");
    step_init(&r_check2, "r:check2");
    step_init(&r_checkhook, "r:checkhook");
    step_init(&r_close, "r:close");
    step_init(&r_timer, "r:timer");

    step_init(&pending, "pending");
    pending.then_ready = &r_pending;
    step_init(&check1, "check1");
    check1.then_ready = &r_check1;
    step_init(&check2, "check2");
    check2.then_ready = &r_check2;
    step_init(&closing, "close");
    closing.then_ready = &r_close;
    hook_step_init(&idle, "idle");
    idle.then_ready = &r_idle;
    hook_step_init(&prepare, "prepare");
    prepare.then_ready = &r_prepare;
    hook_step_init(&checkhook, "checkhook");
    checkhook.then_ready = &r_checkhook;
    timer_step_init(&timer, "timer");
    timer.then_ready = &r_timer;
    make_pipe(p);
    io_step_init(&io, p[0], "poll");
    io.then_ready = &r_poll;

    /* Queued in reverse phase order, so only the phases can sort them. */
    CHECK_EQ(pl_timer_start(loop, &timer.timer, pl_clock_ns()), 0);
    pl_closing_push(loop, &closing.cb);
    pl_check_start(loop, &checkhook.hook);
    pl_immediate_push(loop, &check1.cb);
    pl_immediate_push(loop, &check2.cb);
    write_byte(p[1]);
    CHECK_EQ(pl_io_set(loop, &io.io, PL_READABLE), 0);
    CHECK(pl_io_lookup(loop, p[0]) == &io.io);
    pl_prepare_start(loop, &prepare.hook);
    pl_idle_start(loop, &idle.hook);
    pl_pending_push(loop, &pending.cb);

    pl_loop_stats(loop, &before);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("pending r:pending idle r:idle prepare r:prepare poll r:poll"
               " check1 r:check1 check2 r:check2 checkhook r:checkhook"
               " close r:close timer r:timer");
    pl_loop_stats(loop, &after);
    CHECK_EQ(after.iterations - before.iterations, 1);
    CHECK_EQ(after.callbacks[PL_PHASE_PENDING] - before.callbacks[PL_PHASE_PENDING], 1);
    CHECK_EQ(after.callbacks[PL_PHASE_IDLE] - before.callbacks[PL_PHASE_IDLE], 1);
    CHECK_EQ(after.callbacks[PL_PHASE_PREPARE] - before.callbacks[PL_PHASE_PREPARE], 1);
    CHECK_EQ(after.callbacks[PL_PHASE_POLL] - before.callbacks[PL_PHASE_POLL], 1);
    CHECK_EQ(after.callbacks[PL_PHASE_CHECK] - before.callbacks[PL_PHASE_CHECK], 3);
    CHECK_EQ(after.callbacks[PL_PHASE_CLOSE] - before.callbacks[PL_PHASE_CLOSE], 1);
    CHECK_EQ(after.callbacks[PL_PHASE_TIMERS] - before.callbacks[PL_PHASE_TIMERS], 1);
    CHECK_EQ(after.callbacks[PL_PHASE_READY] - before.callbacks[PL_PHASE_READY], 9);
    CHECK(!pl_callback_queued(&pending.cb) && !pl_callback_queued(&closing.cb));
    CHECK(!pl_timer_active(&timer.timer));

    /* Hooks stay until stopped; one-shots do not come back. */
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("idle r:idle prepare r:prepare checkhook r:checkhook");
    pl_hook_stop(&idle.hook);
    pl_hook_stop(&prepare.hook);
    pl_hook_stop(&checkhook.hook);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("");

    CHECK_EQ(pl_io_set(loop, &io.io, 0), 0);
    close(p[0]);
    close(p[1]);
    pl_loop_free(loop);
}

/* PL_RUN_DEFAULT starts as Node does: the ready callbacks queued before
 * the run, then the due timers, then the first iteration. */
static void test_default_runs_timers_first(void)
{
    pl_loop_t *loop = new_loop();
    step_t pending, ready, r_timer;
    timer_step_t timer;
    hook_step_t idle;
    step_init(&pending, "pending");
    step_init(&ready, "ready");
    step_init(&r_timer, "r:timer");
    timer_step_init(&timer, "timer");
    timer.then_ready = &r_timer;
    hook_step_init(&idle, "idle");
    idle.stop_every = 1;
    pl_pending_push(loop, &pending.cb);
    CHECK_EQ(pl_timer_start(loop, &timer.timer, 0), 0);
    pl_idle_start(loop, &idle.hook);
    pl_ready_push(loop, &ready.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_DEFAULT), PL_STOPPED);
    EXPECT_LOG("ready timer r:timer pending idle");
    pl_hook_stop(&idle.hook);
    pl_loop_free(loop);
}

/* ---- the ready queue ------------------------------------------------------------ */

/* A ready callback queued by a ready callback runs at the next drain, which
 * comes after the next callback of the phase. */
static void test_ready_snapshot(void)
{
    pl_loop_t *loop = new_loop();
    step_t x1, x2, a, b, first;
    step_init(&x1, "X1");
    step_init(&x2, "X2");
    step_init(&a, "A");
    step_init(&b, "B");
    step_init(&first, "first");
    x1.then_ready = &a;
    a.then_ready = &b;
    pl_ready_push(loop, &first.cb);   /* queued before the run: first drain */
    pl_immediate_push(loop, &x1.cb);
    pl_immediate_push(loop, &x2.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("first X1 A X2 B");
    CHECK_EQ(pl_ready_count(loop), 0);

    /* A chain started by the last callback of an iteration is not lost:
     * its tail waits for the next run's first drain. */
    timer_step_t t;
    step_t c, d, e;
    timer_step_init(&t, "T");
    step_init(&c, "C");
    step_init(&d, "D");
    step_init(&e, "E");
    t.then_ready = &c;
    c.then_ready = &d;
    CHECK_EQ(pl_timer_start(loop, &t.timer, 0), 0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("T C");
    CHECK_EQ(pl_ready_count(loop), 1);
    pl_pending_push(loop, &e.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("D E");
    pl_loop_free(loop);
}

/* A ready callback queued by a timer runs before the next timer due at
 * the same time. */
static void test_ready_between_timers(void)
{
    pl_loop_t *loop = new_loop();
    timer_step_t t1, t2;
    step_t r;
    timer_step_init(&t1, "T1");
    timer_step_init(&t2, "T2");
    step_init(&r, "R1");
    t1.then_ready = &r;
    CHECK_EQ(pl_timer_start(loop, &t1.timer, 5), 0);
    CHECK_EQ(pl_timer_start(loop, &t2.timer, 5), 0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("T1 R1 T2");
    pl_loop_free(loop);
}

/* A ready callback queued before the timers phase read the clock runs
 * before a timer armed no later than it (asyncio's order for call_later(0)
 * then call_soon), even when it was queued by the last drain before that
 * phase; a timer armed by the timers phase's own first drain is not due. */
static void test_ready_before_timers_armed_earlier(void)
{
    pl_loop_t *loop = new_loop();
    step_t r1, r2, r3, r4;
    timer_step_t t, late;
    step_init(&r1, "R1");
    step_init(&r2, "R2");
    step_init(&r3, "R3");
    step_init(&r4, "R4");
    timer_step_init(&t, "T");
    timer_step_init(&late, "LATE");
    r1.then_ready = &r2;   /* R2 runs in the drain after the close callback R1 */
    r2.then_ready = &r3;   /* R3 is queued there: the timers phase's first drain */
    r3.then_ready = &r4;   /* R4 is queued there: after the timer */
    CHECK_EQ(pl_timer_start(loop, &t.timer, pl_clock_ns()), 0);
    pl_closing_push(loop, &r1.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("R1 R2 R3 T R4");

    /* The first drain of the timers phase arms a timer due at once: it
     * waits for the next timers phase, after the callbacks queued with it. */
    step_t a;
    step_init(&a, "A");
    pl_closing_push(loop, &a.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("A");
    timer_step_t arm;
    timer_step_init(&arm, "ARM");
    arm.start = &late.timer;
    arm.start_deadline = 0;
    CHECK_EQ(pl_timer_start(loop, &arm.timer, 0), 0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("ARM");
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("LATE");
    pl_loop_free(loop);
}

/* pl_poll_push: run in the poll phase after its fd callbacks and before
 * its drain, even when no fd is ready; one pushed by a poll-queue callback
 * waits for the next poll; a pushed callback keeps the wait from blocking. */
typedef struct poll_step {
    pl_callback_t cb;
    const char *name;
    step_t *then_ready;
    struct poll_step *then_poll;
} poll_step_t;

static void on_poll_step(pl_loop_t *loop, pl_callback_t *cb)
{
    poll_step_t *s = pl_container_of(cb, poll_step_t, cb);
    note(s->name);
    if (s->then_ready)
        pl_ready_push(loop, &s->then_ready->cb);
    if (s->then_poll)
        pl_poll_push(loop, &s->then_poll->cb);
}

static void test_poll_queue(void)
{
    pl_loop_t *loop = new_loop();
    int p[2];
    io_step_t io;
    poll_step_t q1, q2, q3;
    step_t r_io, r_q1, r_q2, imm;
    step_init(&r_io, "r:io");
    step_init(&r_q1, "r:q1");
    step_init(&r_q2, "r:q2");
    step_init(&imm, "immediate");
    make_pipe(p);
    io_step_init(&io, p[0], "io");
    io.then_ready = &r_io;
    memset(&q1, 0, sizeof q1);
    memset(&q2, 0, sizeof q2);
    memset(&q3, 0, sizeof q3);
    pl_callback_init(&q1.cb, on_poll_step, NULL);
    pl_callback_init(&q2.cb, on_poll_step, NULL);
    pl_callback_init(&q3.cb, on_poll_step, NULL);
    q1.name = "q1";
    q2.name = "q2";
    q3.name = "q3";
    q1.then_ready = &r_q1;
    q2.then_ready = &r_q2;
    q2.then_poll = &q3;
    CHECK_EQ(pl_io_set(loop, &io.io, PL_READABLE), 0);
    write_byte(p[1]);
    pl_immediate_push(loop, &imm.cb);
    pl_poll_push(loop, &q1.cb);
    pl_poll_push(loop, &q2.cb);
    uint64_t polls = poll_callbacks(loop);
    log_clear();
    pl_loop_set_wait_cap(loop, 20ll * 1000000000);
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("io q1 q2 r:io r:q1 r:q2 immediate");
    CHECK_EQ(poll_callbacks(loop) - polls, 3);
    /* q3 keeps the next wait from blocking and runs with no fd ready. */
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK(ms_since(t0) < 10000);
    EXPECT_LOG("q3");
    pl_loop_set_wait_cap(loop, -1);

    /* Taken back like every other queued callback. */
    pl_poll_push(loop, &q1.cb);
    CHECK(pl_loop_take_callback(loop) == &q1.cb);
    CHECK(pl_loop_take_callback(loop) == NULL);
    CHECK_EQ(pl_io_set(loop, &io.io, 0), 0);
    close(p[0]);
    close(p[1]);
    pl_loop_free(loop);
}

/* Cancelling a queued callback, also one of the batch being run. */
static void test_cancel_queued(void)
{
    pl_loop_t *loop = new_loop();
    step_t i1, i2, i3, p1;
    step_init(&i1, "I1");
    step_init(&i2, "I2");
    step_init(&i3, "I3");
    step_init(&p1, "P1");
    i1.cancel = &i2.cb;
    pl_immediate_push(loop, &i1.cb);
    pl_immediate_push(loop, &i2.cb);
    pl_immediate_push(loop, &i3.cb);
    pl_pending_push(loop, &p1.cb);
    pl_callback_cancel(&p1.cb);
    CHECK(!pl_callback_queued(&p1.cb));
    pl_callback_cancel(&p1.cb); /* twice is harmless */
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("I1 I3");
    CHECK(!pl_callback_queued(&i2.cb));
    pl_loop_free(loop);
}

/* ---- next-iteration rules ---------------------------------------------------------- */

static void test_immediate_from_check_runs_next_iteration(void)
{
    pl_loop_t *loop = new_loop();
    step_t i1, i2, r;
    step_init(&i1, "I1");
    step_init(&i2, "I2");
    step_init(&r, "R");
    i1.then_check = &i2;
    i1.then_ready = &r;
    pl_immediate_push(loop, &i1.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("I1 R");
    CHECK(pl_callback_queued(&i2.cb));
    log_clear();
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED); /* must not block */
    CHECK(ms_since(t0) < 5000);
    EXPECT_LOG("I2");
    pl_loop_free(loop);
}

/* A check hook started from a check hook, or one stopped by an earlier
 * hook of the same phase: the first waits an iteration, the second is
 * skipped. */
static void test_hooks_started_and_stopped_in_phase(void)
{
    pl_loop_t *loop = new_loop();
    hook_step_t h1, h2, h3;
    hook_step_init(&h1, "H1");
    hook_step_init(&h2, "H2");
    hook_step_init(&h3, "H3");
    h1.stop_other = &h2.hook;
    h1.start_check = &h3.hook;
    pl_check_start(loop, &h1.hook);
    pl_check_start(loop, &h2.hook);
    pl_check_start(loop, &h1.hook); /* already active: no second entry */
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("H1");
    CHECK(!pl_hook_active(&h2.hook));
    CHECK(pl_hook_active(&h3.hook));
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("H1 H3");
    pl_hook_stop(&h1.hook);
    pl_hook_stop(&h3.hook);
    pl_loop_free(loop);
}

static void test_timer_from_timer_runs_next_iteration(void)
{
    pl_loop_t *loop = new_loop();
    timer_step_t t1, t2;
    timer_step_init(&t1, "T1");
    timer_step_init(&t2, "T2");
    t1.start = &t2.timer;
    t1.start_deadline = 0; /* long past */
    CHECK_EQ(pl_timer_start(loop, &t1.timer, pl_clock_ns()), 0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("T1");
    CHECK(pl_timer_active(&t2.timer));
    CHECK(pl_timer_next(loop) == 0);
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED); /* due: no wait */
    CHECK(ms_since(t0) < 5000);
    EXPECT_LOG("T1 T2");
    CHECK_EQ(pl_timer_count(loop), 0);
    pl_loop_free(loop);
}

/* ---- break and stop ------------------------------------------------------------------ */

/* Break from an immediate: what the breaking callback queued and the rest
 * of the phase wait for the next run, in order. */
static void test_break_in_check(void)
{
    pl_loop_t *loop = new_loop();
    step_t i1, i2, i3, r2, c;
    step_init(&i1, "I1");
    step_init(&i2, "I2");
    step_init(&i3, "I3");
    step_init(&r2, "R2");
    step_init(&c, "C");
    i2.then_ready = &r2;
    i2.do_break = 1;
    pl_immediate_push(loop, &i1.cb);
    pl_immediate_push(loop, &i2.cb);
    pl_immediate_push(loop, &i3.cb);
    pl_closing_push(loop, &c.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_BROKEN);
    EXPECT_LOG("I1 I2");
    CHECK(pl_callback_queued(&r2.cb));
    CHECK(pl_callback_queued(&i3.cb));
    CHECK(pl_callback_queued(&c.cb));
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    EXPECT_LOG("R2 I3 C");
    pl_loop_free(loop);
}

/* Break from a ready callback: the rest of its snapshot stays in front of
 * what was queued during it. */
static void test_break_in_ready(void)
{
    pl_loop_t *loop = new_loop();
    step_t a, b, c, d;
    step_init(&a, "A");
    step_init(&b, "B");
    step_init(&c, "C");
    step_init(&d, "D");
    a.then_ready = &d;
    a.do_break = 1;
    pl_ready_push(loop, &a.cb);
    pl_ready_push(loop, &b.cb);
    pl_ready_push(loop, &c.cb);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_BROKEN);
    EXPECT_LOG("A");
    CHECK_EQ(pl_ready_count(loop), 3);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("B C D");
    pl_loop_free(loop);
}

static void test_break_in_hook(void)
{
    pl_loop_t *loop = new_loop();
    hook_step_t h1, h2, p;
    hook_step_init(&h1, "H1");
    hook_step_init(&h2, "H2");
    hook_step_init(&p, "P");
    h1.break_on_call = 1;
    pl_idle_start(loop, &h1.hook);
    pl_idle_start(loop, &h2.hook);
    pl_prepare_start(loop, &p.hook);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_BROKEN);
    EXPECT_LOG("H1");
    CHECK(pl_hook_active(&h1.hook) && pl_hook_active(&h2.hook));
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("H1 H2 P");
    pl_hook_stop(&h1.hook);
    pl_hook_stop(&h2.hook);
    pl_hook_stop(&p.hook);
    pl_loop_free(loop);
}

/* Break from an fd callback: the batch's other ready fd is reported again
 * (level-triggered) by the next run. */
static void test_break_in_poll(void)
{
    pl_loop_t *loop = new_loop();
    int p[2], q[2];
    io_step_t a, b;
    make_pipe(p);
    make_pipe(q);
    io_step_init(&a, p[0], "A");
    io_step_init(&b, q[0], "B");
    a.do_break = b.do_break = 1;
    CHECK_EQ(pl_io_set(loop, &a.io, PL_READABLE), 0);
    CHECK_EQ(pl_io_set(loop, &b.io, PL_READABLE), 0);
    write_byte(p[1]);
    write_byte(q[1]);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_BROKEN);
    CHECK_EQ(a.calls + b.calls, 1);
    a.do_break = b.do_break = 0;
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(b.calls, 1);
    CHECK_EQ(pl_io_set(loop, &a.io, 0), 0);
    CHECK_EQ(pl_io_set(loop, &b.io, 0), 0);
    close(p[0]); close(p[1]); close(q[0]); close(q[1]);
    pl_loop_free(loop);
}

/* Break from a timer: the due timers not yet run keep their order, also
 * against a timer armed for the same deadline by the breaking callback. */
static void test_break_in_timers_keeps_order(void)
{
    pl_loop_t *loop = new_loop();
    timer_step_t t1, t2, t3, t4;
    timer_step_init(&t1, "T1");
    timer_step_init(&t2, "T2");
    timer_step_init(&t3, "T3");
    timer_step_init(&t4, "T4");
    t1.start = &t4.timer;
    t1.start_deadline = 7;
    t1.do_break = 1;
    CHECK_EQ(pl_timer_start(loop, &t1.timer, 7), 0);
    CHECK_EQ(pl_timer_start(loop, &t2.timer, 7), 0);
    CHECK_EQ(pl_timer_start(loop, &t3.timer, 7), 0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_BROKEN);
    EXPECT_LOG("T1");
    CHECK(pl_timer_active(&t2.timer) && pl_timer_active(&t3.timer));
    CHECK_EQ(pl_timer_count(loop), 3);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("T2 T3 T4");
    pl_loop_free(loop);
}

static void test_stop_ends_default_after_iteration(void)
{
    pl_loop_t *loop = new_loop();
    hook_step_t idle;
    step_t after;
    pl_stats_t s0, s1;
    hook_step_init(&idle, "idle");
    step_init(&after, "immediate");
    idle.stop_every = 3;
    idle.immediate_on_stop = &after;
    pl_idle_start(loop, &idle.hook);
    pl_loop_stats(loop, &s0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_DEFAULT), PL_STOPPED);
    /* The stopping iteration runs to its end: its check phase included. */
    EXPECT_LOG("idle idle idle immediate");
    pl_loop_stats(loop, &s1);
    CHECK_EQ(s1.iterations - s0.iterations, 3);
    /* The stop is consumed: the next run goes on until the next stop. */
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_DEFAULT), PL_STOPPED);
    EXPECT_LOG("idle idle idle immediate");
    CHECK_EQ(idle.calls, 6);
    pl_hook_stop(&idle.hook);
    pl_loop_free(loop);
}

/* ---- run modes and waiting ------------------------------------------------------------ */

static void test_nowait_never_blocks(void)
{
    pl_loop_t *loop = new_loop();
    timer_step_t far;
    timer_step_init(&far, "far");
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED); /* nothing at all */
    CHECK_EQ(pl_timer_start(loop, &far.timer, pl_clock_ns() + 30ull * 1000000000u), 0);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED); /* a far timer */
    pl_loop_set_wait_cap(loop, 10ll * 1000000000);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED); /* a cap changes nothing */
    CHECK(ms_since(t0) < 2000);
    CHECK_EQ(pl_timer_stop(loop, &far.timer), 1); /* still armed: it never ran */
    pl_loop_free(loop);
}

static void test_once_returns_after_wait_cap(void)
{
    pl_loop_t *loop = new_loop();
    timer_step_t far;
    pl_stats_t s0, s1;
    timer_step_init(&far, "far");
    pl_loop_set_wait_cap(loop, 50 * 1000000ll);
    pl_loop_stats(loop, &s0);
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED); /* no timer at all */
    uint64_t ms = ms_since(t0);
    CHECK(ms >= 45 && ms < 3000);
    pl_loop_stats(loop, &s1);
    CHECK(s1.idle_ns - s0.idle_ns >= 40 * 1000000ull);

    CHECK_EQ(pl_timer_start(loop, &far.timer, pl_clock_ns() + 30ull * 1000000000u), 0);
    t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED); /* a timer further than the cap */
    ms = ms_since(t0);
    CHECK(ms >= 45 && ms < 3000);
    CHECK(pl_timer_active(&far.timer));

    /* A timer nearer than the cap ends the wait, and never fires early. */
    timer_step_t near;
    timer_step_init(&near, "near");
    pl_loop_set_wait_cap(loop, 10ll * 1000000000);
    t0 = pl_clock_ns();
    uint64_t deadline = t0 + 30 * 1000000ull;
    CHECK_EQ(pl_timer_start(loop, &near.timer, deadline), 0);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK(pl_clock_ns() >= deadline);
    CHECK(pl_loop_now(loop) >= deadline);
    CHECK(ms_since(t0) < 5000);
    EXPECT_LOG("near");
    pl_timer_stop(loop, &far.timer);
    pl_loop_free(loop);
}

/* A timer at UINT64_MAX never comes due and does not shorten a wait; a
 * negative cap removes the cap; the loop's clock is cached until updated. */
static void test_never_timer_and_uncapped_wait(void)
{
    pl_loop_t *loop = new_loop();
    timer_step_t never, soon;
    timer_step_init(&never, "never");
    timer_step_init(&soon, "soon");
    CHECK_EQ(pl_timer_start(loop, &never.timer, UINT64_MAX), 0);
    pl_loop_set_wait_cap(loop, 30 * 1000000ll);
    log_clear();
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK(ms_since(t0) >= 25);
    EXPECT_LOG("");
    CHECK(pl_timer_active(&never.timer));

    pl_loop_set_wait_cap(loop, -1);
    t0 = pl_clock_ns();
    uint64_t deadline = t0 + 120 * 1000000ull;
    CHECK_EQ(pl_timer_start(loop, &soon.timer, deadline), 0);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK(pl_clock_ns() >= deadline);   /* the 30 ms cap is gone */
    EXPECT_LOG("soon");

    uint64_t now = pl_loop_now(loop);
    sleep_ms(3);
    CHECK(pl_loop_now(loop) == now);
    pl_loop_update_time(loop);
    CHECK(pl_loop_now(loop) >= now + 3000000u);
    CHECK_EQ(pl_timer_stop(loop, &never.timer), 1);
    pl_loop_free(loop);
}

/* Closing a loop: pl_loop_take_* hand back every queued callback, armed
 * timer and active hook once, unlinked; pl_loop_free unlinks whatever is
 * left, so the owners of those nodes can free or reuse them. */
typedef struct everything {
    step_t r, p, c, x;
    hook_step_t i, pr, ch;
    timer_step_t t, u;
} everything_t;

static void queue_everything(pl_loop_t *loop, everything_t *e)
{
    step_init(&e->r, "r");
    step_init(&e->p, "p");
    step_init(&e->c, "c");
    step_init(&e->x, "x");
    hook_step_init(&e->i, "i");
    hook_step_init(&e->pr, "pr");
    hook_step_init(&e->ch, "ch");
    timer_step_init(&e->t, "t");
    timer_step_init(&e->u, "u");
    pl_ready_push(loop, &e->r.cb);
    pl_pending_push(loop, &e->p.cb);
    pl_immediate_push(loop, &e->c.cb);
    pl_closing_push(loop, &e->x.cb);
    pl_idle_start(loop, &e->i.hook);
    pl_prepare_start(loop, &e->pr.hook);
    pl_check_start(loop, &e->ch.hook);
    CHECK_EQ(pl_timer_start(loop, &e->t.timer, 1), 0);
    CHECK_EQ(pl_timer_start(loop, &e->u.timer, UINT64_MAX), 0);
}

static void check_nothing_linked(const everything_t *e)
{
    CHECK(!pl_callback_queued(&e->r.cb) && !pl_callback_queued(&e->p.cb));
    CHECK(!pl_callback_queued(&e->c.cb) && !pl_callback_queued(&e->x.cb));
    CHECK(!pl_hook_active(&e->i.hook) && !pl_hook_active(&e->pr.hook));
    CHECK(!pl_hook_active(&e->ch.hook));
    CHECK(!pl_timer_active(&e->t.timer) && !pl_timer_active(&e->u.timer));
}

static void test_take_and_free_detach_everything(void)
{
    everything_t e;
    pl_loop_t *loop = new_loop();
    queue_everything(loop, &e);
    pl_loop_free(loop);
    check_nothing_linked(&e);
    pl_loop_free(NULL);

    loop = new_loop();
    queue_everything(loop, &e);
    pl_callback_t *cb;
    pl_hook_t *h;
    pl_timer_t *t;
    unsigned seen = 0;
    while ((cb = pl_loop_take_callback(loop)) != NULL) {
        CHECK(!pl_callback_queued(cb));
        unsigned bit = cb == &e.r.cb ? 1u : cb == &e.p.cb ? 2u : cb == &e.c.cb ? 4u
                     : cb == &e.x.cb ? 8u : 0u;
        CHECK(bit != 0 && !(seen & bit));
        seen |= bit;
    }
    CHECK_EQ(seen, 15);
    seen = 0;
    while ((h = pl_loop_take_hook(loop)) != NULL) {
        CHECK(!pl_hook_active(h));
        unsigned bit = h == &e.i.hook ? 1u : h == &e.pr.hook ? 2u : h == &e.ch.hook ? 4u : 0u;
        CHECK(bit != 0 && !(seen & bit));
        seen |= bit;
    }
    CHECK_EQ(seen, 7);
    seen = 0;
    while ((t = pl_loop_take_timer(loop)) != NULL) {
        CHECK(!pl_timer_active(t));
        unsigned bit = t == &e.t.timer ? 1u : t == &e.u.timer ? 2u : 0u;
        CHECK(bit != 0 && !(seen & bit));
        seen |= bit;
    }
    CHECK_EQ(seen, 3);
    CHECK_EQ(pl_timer_count(loop), 0);
    check_nothing_linked(&e);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("");
    pl_loop_free(loop);
}

/* ONCE does not wait while anything is runnable when it reaches the poll
 * phase: work queued by a prepare hook (a pending or check callback, a
 * close, a ready callback left by a drain's snapshot, a stop), or an active
 * idle hook. */
static int runnable_kind;
static step_t runnable_step, runnable_ready_tail;

static void on_prepare_queue_work(pl_loop_t *loop, pl_hook_t *h)
{
    pl_hook_stop(h);
    switch (runnable_kind) {
    case 0: pl_pending_push(loop, &runnable_step.cb); break;
    case 1: pl_immediate_push(loop, &runnable_step.cb); break;
    case 2: pl_closing_push(loop, &runnable_step.cb); break;
    case 3: /* the drain after this hook runs the step, which queues the tail */
        runnable_step.then_ready = &runnable_ready_tail;
        pl_ready_push(loop, &runnable_step.cb);
        break;
    default: pl_loop_stop(loop); break;
    }
}

static void test_once_does_not_block_when_runnable(void)
{
    pl_loop_t *loop = new_loop();
    pl_hook_t prepare;
    hook_step_t idle;
    hook_step_init(&idle, "idle");
    pl_hook_init(&prepare, on_prepare_queue_work, NULL);
    pl_loop_set_wait_cap(loop, 20ll * 1000000000);
    for (runnable_kind = 0; runnable_kind < 6; runnable_kind++) {
        step_init(&runnable_step, "step");
        step_init(&runnable_ready_tail, "tail");
        if (runnable_kind == 5)
            pl_idle_start(loop, &idle.hook);
        else
            pl_prepare_start(loop, &prepare);
        uint64_t t0 = pl_clock_ns();
        log_clear();
        CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
        if (ms_since(t0) >= 10000) {
            fprintf(stderr, "kind %d blocked\n", runnable_kind);
            CHECK(!"ONCE waited although work was runnable");
        }
        pl_hook_stop(&idle.hook);
        /* What was queued runs in this iteration or the next. */
        CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
        if (runnable_kind < 3)
            EXPECT_LOG("step");
        else if (runnable_kind == 3)
            EXPECT_LOG("step tail");
    }
    pl_loop_free(loop);
}

/* ---- wakeups --------------------------------------------------------------------------- */

typedef struct waker {
    pl_loop_t *loop;
    long delay_ms;
    int count;
} waker_t;

static void *waker_main(void *arg)
{
    waker_t *w = arg;
    sleep_ms(w->delay_ms);
    for (int i = 0; i < w->count; i++)
        pl_loop_wakeup(w->loop);
    return NULL;
}

static void test_wakeup_from_thread(void)
{
    pl_loop_t *loop = new_loop();
    pthread_t th;
    waker_t w = {loop, 100, 1};
    uint64_t polls = poll_callbacks(loop);
    pl_loop_set_wait_cap(loop, 20ll * 1000000000);
    CHECK_EQ(pthread_create(&th, NULL, waker_main, &w), 0);
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    uint64_t ms = ms_since(t0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK(ms >= 50);                       /* it did wait for the thread */
    CHECK(ms < 10000);                     /* woken long before the cap */
    CHECK_EQ(poll_callbacks(loop) - polls, 1);

    /* The wakeup was consumed: the next waits run to the cap. */
    pl_loop_set_wait_cap(loop, 30 * 1000000ll);
    t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK(ms_since(t0) >= 25);
    CHECK_EQ(poll_callbacks(loop) - polls, 1);
    pl_loop_free(loop);
}

/* How many wakeups the wakeup fd holds, read without consuming them: an
 * eventfd's counter (from /proc/self/fdinfo), or the bytes in the pipe. */
static long long wakeup_writes(pl_loop_t *loop)
{
    if (loop->wake_rfd != loop->wake_wfd) {
        int n = 0;
        CHECK_EQ(ioctl(loop->wake_rfd, FIONREAD, &n), 0);
        return n / 8;
    }
    char path[64], line[256];
    long long count = -1;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", loop->wake_rfd);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "eventfd-count:", 14) == 0)
            count = strtoll(line + 14, NULL, 16);
    fclose(f);
    CHECK(count >= 0);
    return count;
}

/* 1000 wakeups while the loop is not waiting cost one write to the wakeup
 * fd and one run of the loop's wake callback. */
static void test_wakeup_burst_coalesced(void)
{
    pl_loop_t *loop = new_loop();
    pthread_t th;
    waker_t w = {loop, 0, 1000};
    uint64_t polls = poll_callbacks(loop);
    CHECK_EQ(pthread_create(&th, NULL, waker_main, &w), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(wakeup_writes(loop), 1);   /* one write for the whole burst */
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(wakeup_writes(loop), 0);
    CHECK_EQ(poll_callbacks(loop) - polls, 1);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(poll_callbacks(loop) - polls, 1);

    /* A burst from this thread too; and the next burst still wakes. */
    for (int round = 2; round <= 4; round++) {
        for (int i = 0; i < 1000; i++)
            pl_loop_wakeup(loop);
        pl_loop_set_wait_cap(loop, 20ll * 1000000000);
        uint64_t t0 = pl_clock_ns();
        CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
        CHECK(ms_since(t0) < 10000);
        CHECK_EQ(poll_callbacks(loop) - polls, (uint64_t)round);
    }
    pl_loop_free(loop);
}

/* A signal interrupting the wait reaches the runtime's on_interrupt and
 * ends the wait (the binding raises KeyboardInterrupt from there). */
static int interrupts, waits_before, waits_after;
static void on_before_wait(pl_loop_t *loop) { (void)loop; waits_before++; }
static void on_after_wait(pl_loop_t *loop) { (void)loop; waits_after++; }
static void on_interrupt(pl_loop_t *loop) { (void)loop; interrupts++; }
static void on_usr1(int sig) { (void)sig; }

/* Signals the target every 50 ms until told to stop, so one lands in the
 * wait even if the first comes before the loop got there. */
typedef struct signaller {
    pthread_t target;
    atomic_int done;
} signaller_t;

static void *signaller_main(void *arg)
{
    signaller_t *s = arg;
    while (!atomic_load(&s->done)) {
        sleep_ms(50);
        if (!atomic_load(&s->done))
            pthread_kill(s->target, SIGUSR1);
    }
    return NULL;
}

static void test_runtime_hooks_and_interrupt(void)
{
    int token;
    pl_runtime_t rt = {on_before_wait, on_after_wait, on_interrupt, &token};
    pl_loop_t *loop = pl_loop_new(&rt);
    struct sigaction sa, old;
    CHECK(loop != NULL);
    CHECK(pl_loop_runtime_data(loop) == &token);
    waits_before = waits_after = interrupts = 0;

    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED); /* no wait: no hooks */
    CHECK_EQ(waits_before, 0);
    pl_loop_set_wait_cap(loop, 10 * 1000000ll);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK_EQ(waits_before, 1);
    CHECK_EQ(waits_after, 1);
    CHECK_EQ(interrupts, 0);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: the wait fails with EINTR */
    sigemptyset(&sa.sa_mask);
    CHECK_EQ(sigaction(SIGUSR1, &sa, &old), 0);
    signaller_t s;
    s.target = pthread_self();
    atomic_init(&s.done, 0);
    pthread_t th;
    pl_loop_set_wait_cap(loop, 20ll * 1000000000);
    CHECK_EQ(pthread_create(&th, NULL, signaller_main, &s), 0);
    uint64_t t0 = pl_clock_ns();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK(ms_since(t0) < 10000);
    atomic_store(&s.done, 1);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(interrupts, 1);
    CHECK_EQ(waits_before, 2);
    CHECK_EQ(waits_after, 2);
    CHECK_EQ(sigaction(SIGUSR1, &old, NULL), 0);
    pl_loop_free(loop);
}

/* A loop whose polls keep finding events polls without the runtime's hooks
 * (the binding's GIL stays held), but still calls them every 64th poll so
 * that other threads get in; a poll that finds nothing waits with them. */
static void on_always_readable(pl_loop_t *loop, pl_io_t *io, unsigned revents)
{
    (void)loop;
    (void)io;
    CHECK(revents & PL_READABLE);
}

/* A loop with the runtime hooks rt, watching the read end of a new pipe p
 * with fn (the tests of the poll's tries). */
static pl_loop_t *loop_watching_pipe(const pl_runtime_t *rt, pl_io_t *io, int p[2], pl_io_fn fn)
{
    pl_loop_t *loop = pl_loop_new(rt);
    CHECK(loop != NULL);
    make_pipe(p);
    pl_io_init(io, p[0], fn, NULL);
    CHECK_EQ(pl_io_set(loop, io, PL_READABLE), 0);
    return loop;
}

static void free_loop_and_pipe(pl_loop_t *loop, pl_io_t *io, int p[2])
{
    CHECK_EQ(pl_io_set(loop, io, 0), 0);
    close(p[0]);
    close(p[1]);
    pl_loop_free(loop);
}

static void test_busy_polls_keep_the_runtime(void)
{
    pl_runtime_t rt = {on_before_wait, on_after_wait, on_interrupt, NULL};
    pl_io_t io;
    int p[2];
    pl_loop_t *loop = loop_watching_pipe(&rt, &io, p, on_always_readable);
    write_byte(p[1]);                    /* never read: readable at every poll */
    waits_before = waits_after = 0;
    for (int i = 0; i < 128; i++)
        CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    /* The first poll (nothing found before it) and the 65th waited with the
     * hooks; the other 126 found the fd ready without them. */
    CHECK_EQ(waits_before, 2);
    CHECK_EQ(waits_after, 2);
    char buf[4];
    CHECK_EQ(read(p[0], buf, sizeof buf), 1);
    pl_loop_set_wait_cap(loop, 1000000ll);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);   /* nothing ready: it waits */
    CHECK_EQ(waits_before, 3);
    free_loop_and_pipe(loop, &io, p);
}

/* When the try before the wait keeps finding nothing (the peer runs only
 * while the loop waits, as when both are pinned to one core), the loop
 * tries less and less often: after 1, 2, 4, 8 ... polls without one. Here
 * the peer is the before_wait hook, which writes the byte the wait finds. */
static int peer_wfd = -1;
static void write_before_wait(pl_loop_t *loop) { (void)loop; waits_before++; write_byte(peer_wfd); }

static void on_drain(pl_loop_t *loop, pl_io_t *io, unsigned revents)
{
    char buf[16];
    (void)loop;
    CHECK(revents & PL_READABLE);
    while (read(io->fd, buf, sizeof buf) > 0) {
    }
}

static void test_tries_that_find_nothing_back_off(void)
{
    pl_runtime_t rt = {write_before_wait, NULL, NULL, NULL};
    pl_io_t io;
    int p[2];
    pl_loop_t *loop = loop_watching_pipe(&rt, &io, p, on_drain);
    peer_wfd = p[1];
    waits_before = 0;
    for (int i = 0; i < 21; i++)
        CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), PL_STOPPED);
    CHECK_EQ(waits_before, 21);             /* every poll waited for the peer */
    /* Tries in polls 2, 4, 7, 12 and 21: 1, 2, 4 and 8 polls skipped between. */
    CHECK_EQ(loop->probes, 5u);
    peer_wfd = -1;
    free_loop_and_pipe(loop, &io, p);
}

/* ---- fd watchers --------------------------------------------------------------------- */

static void test_io_set_errors(void)
{
    pl_loop_t *loop = new_loop();
    int p[2];
    io_step_t a, b, bad;
    make_pipe(p);
    io_step_init(&a, p[0], "A");
    io_step_init(&b, p[0], "B");

    CHECK_EQ(pl_io_set(loop, &a.io, 0), 0); /* never watched: nothing to do */
    CHECK_EQ(pl_io_set(loop, &a.io, PL_READABLE), 0);
    CHECK_EQ(pl_io_set(loop, &a.io, PL_READABLE), 0);
    CHECK_EQ(pl_io_set(loop, &b.io, PL_READABLE), -EEXIST);
    CHECK(pl_io_lookup(loop, p[0]) == &a.io);
    CHECK_EQ(b.io.events, 0);
    CHECK_EQ(pl_io_set(loop, &a.io, PL_READABLE | PL_WRITABLE), 0);
    CHECK_EQ(a.io.events, PL_READABLE | PL_WRITABLE);
    CHECK_EQ(pl_io_set(loop, &a.io, 0), 0);
    CHECK(pl_io_lookup(loop, p[0]) == NULL);
    CHECK_EQ(pl_io_set(loop, &b.io, PL_READABLE), 0); /* free again */
    CHECK_EQ(pl_io_set(loop, &b.io, 0), 0);

    /* A descriptor closed before its watcher is removed: removal works. */
    int q[2];
    make_pipe(q);
    io_step_init(&bad, q[0], "closed-first");
    CHECK_EQ(pl_io_set(loop, &bad.io, PL_READABLE), 0);
    close(q[0]);
    CHECK_EQ(pl_io_set(loop, &bad.io, 0), 0);
    CHECK(pl_io_lookup(loop, q[0]) == NULL);
    close(q[1]);

    /* A closed descriptor, and a negative one. */
    int closed = p[0];
    close(p[0]);
    io_step_init(&bad, closed, "bad");
    CHECK_EQ(pl_io_set(loop, &bad.io, PL_READABLE), -EBADF);
    CHECK(pl_io_lookup(loop, closed) == NULL);
    io_step_init(&bad, -1, "bad");
    CHECK_EQ(pl_io_set(loop, &bad.io, PL_READABLE), -EBADF);

    /* A regular file: epoll refuses it, poll takes it (always ready). */
    char path[] = "/tmp/phaseloop-test-XXXXXX";
    int f = mkstemp(path);
    CHECK(f >= 0);
    unlink(path);
    io_step_init(&bad, f, "file");
    int r = pl_io_set(loop, &bad.io, PL_READABLE);
    if (strcmp(pl_backend_name(), "epoll") == 0) {
        CHECK_EQ(r, -EPERM);
        CHECK(pl_io_lookup(loop, f) == NULL);
        CHECK(pl_loop_backend_fd(loop) >= 0);
    } else {
        CHECK_EQ(r, 0);
        CHECK_EQ(pl_io_set(loop, &bad.io, 0), 0);
    }
    if (strcmp(pl_backend_name(), "poll") == 0)
        CHECK_EQ(pl_loop_backend_fd(loop), -1);
    close(f);
    close(p[1]);
    pl_loop_free(loop);
}

/* Two pipes ready in one batch: whichever callback runs first removes the
 * other watcher, puts a fresh (empty) pipe on its fd number and watches that
 * with a third watcher. The removed watcher's event, still in the batch,
 * must reach neither the removed watcher nor the fd's new owner. */
typedef struct rival {
    io_step_t step;
    struct rival *other;
    io_step_t *heir;
    int heir_pipe[2];
} rival_t;

static int rivals_ran;
static int heir_calls;

static void on_heir(pl_loop_t *loop, pl_io_t *io, unsigned revents)
{
    (void)loop; (void)io; (void)revents;
    heir_calls++;
}

static void on_rival(pl_loop_t *loop, pl_io_t *io, unsigned revents)
{
    rival_t *r = pl_container_of(io, rival_t, step.io);
    char buf[8];
    CHECK(revents & PL_READABLE);
    CHECK_EQ(rivals_ran, 0);
    rivals_ran++;
    CHECK_EQ(read(io->fd, buf, sizeof buf), 1);
    if (r->heir == NULL) {              /* just remove the other */
        CHECK_EQ(pl_io_set(loop, &r->other->step.io, 0), 0);
        return;
    }
    int fd = r->other->step.io.fd;
    CHECK_EQ(pl_io_set(loop, &r->other->step.io, 0), 0);
    make_pipe(r->heir_pipe);
    CHECK_EQ(dup2(r->heir_pipe[0], fd), fd);
    close(r->heir_pipe[0]);
    r->heir_pipe[0] = fd;
    pl_io_init(&r->heir->io, fd, on_heir, NULL);
    CHECK_EQ(pl_io_set(loop, &r->heir->io, PL_READABLE), 0);
}

static void run_rivals(int with_heir)
{
    pl_loop_t *loop = new_loop();
    int p[2], q[2];
    rival_t a, b;
    io_step_t heir;
    make_pipe(p);
    make_pipe(q);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&heir, 0, sizeof heir);
    pl_io_init(&a.step.io, p[0], on_rival, NULL);
    pl_io_init(&b.step.io, q[0], on_rival, NULL);
    a.other = &b;
    b.other = &a;
    a.heir = b.heir = with_heir ? &heir : NULL;
    CHECK_EQ(pl_io_set(loop, &a.step.io, PL_READABLE), 0);
    CHECK_EQ(pl_io_set(loop, &b.step.io, PL_READABLE), 0);
    write_byte(p[1]);
    write_byte(q[1]);
    rivals_ran = heir_calls = 0;
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(rivals_ran, 1);
    CHECK_EQ(heir_calls, 0);

    rival_t *winner = a.step.io.events ? &a : &b;
    rival_t *loser = winner->other;
    CHECK_EQ(loser->step.io.events, 0);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(rivals_ran, 1);
    CHECK_EQ(heir_calls, 0);
    if (with_heir) {
        /* The heir does get its own events. */
        CHECK(pl_io_lookup(loop, heir.io.fd) == &heir.io);
        write_byte(winner->heir_pipe[1]);
        CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
        CHECK(heir_calls >= 1);
        CHECK_EQ(pl_io_set(loop, &heir.io, 0), 0);
        close(winner->heir_pipe[0]);
        close(winner->heir_pipe[1]);
    } else {
        close(loser->step.io.fd);
    }
    CHECK_EQ(pl_io_set(loop, &winner->step.io, 0), 0);
    close(winner->step.io.fd);
    close(p[1]);
    close(q[1]);
    pl_loop_free(loop);
}

static void test_remove_watcher_mid_batch(void) { run_rivals(0); }
static void test_reused_fd_mid_batch(void) { run_rivals(1); }

/* ---- fork ------------------------------------------------------------------------------ */

static void test_fork_child_refuses_run(void)
{
    pl_loop_t *loop = new_loop();
    int p[2];
    io_step_t io;
    timer_step_t t;
    make_pipe(p);
    io_step_init(&io, p[0], "io");
    timer_step_init(&t, "T");
    CHECK_EQ(pl_io_set(loop, &io.io, PL_READABLE), 0);
    CHECK_EQ(pl_timer_start(loop, &t.timer, 0), 0);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        log_clear();
        CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), -ECHILD);
        CHECK_EQ(pl_loop_run(loop, PL_RUN_ONCE), -ECHILD);
        CHECK_EQ(pl_loop_run(loop, PL_RUN_DEFAULT), -ECHILD);
        CHECK_EQ(log_buf[0], '\0'); /* nothing ran */
        pl_loop_free(loop);
        close(p[0]);
        close(p[1]);
        /* A new loop in the child works. */
        pl_loop_t *child = new_loop();
        pl_loop_wakeup(child);
        CHECK_EQ(pl_loop_run(child, PL_RUN_NOWAIT), PL_STOPPED);
        CHECK_EQ(poll_callbacks(child), 1);
        pl_loop_free(child);
        _exit(0);
    }
    int status;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    /* The child's free left the parent's loop intact. */
    write_byte(p[1]);
    uint64_t polls = poll_callbacks(loop);
    log_clear();
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    EXPECT_LOG("io T");
    pl_loop_wakeup(loop);
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(poll_callbacks(loop) - polls, 2);
    CHECK_EQ(pl_io_set(loop, &io.io, 0), 0);
    close(p[0]);
    close(p[1]);
    pl_loop_free(loop);
}

/* Descriptors open in this process, or -1 without /proc. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

int main(void)
{
    int fds_at_start = open_fds();
    fprintf(stderr, "backend=%s\n", pl_backend_name());
    RUN(test_phase_order);
    RUN(test_default_runs_timers_first);
    RUN(test_ready_snapshot);
    RUN(test_ready_between_timers);
    RUN(test_ready_before_timers_armed_earlier);
    RUN(test_poll_queue);
    RUN(test_cancel_queued);
    RUN(test_immediate_from_check_runs_next_iteration);
    RUN(test_hooks_started_and_stopped_in_phase);
    RUN(test_timer_from_timer_runs_next_iteration);
    RUN(test_break_in_check);
    RUN(test_break_in_ready);
    RUN(test_break_in_hook);
    RUN(test_break_in_poll);
    RUN(test_break_in_timers_keeps_order);
    RUN(test_stop_ends_default_after_iteration);
    RUN(test_nowait_never_blocks);
    RUN(test_once_returns_after_wait_cap);
    RUN(test_once_does_not_block_when_runnable);
    RUN(test_wakeup_from_thread);
    RUN(test_wakeup_burst_coalesced);
    RUN(test_runtime_hooks_and_interrupt);
    RUN(test_busy_polls_keep_the_runtime);
    RUN(test_tries_that_find_nothing_back_off);
    RUN(test_io_set_errors);
    RUN(test_remove_watcher_mid_batch);
    RUN(test_reused_fd_mid_batch);
    RUN(test_fork_child_refuses_run);
    RUN(test_never_timer_and_uncapped_wait);
    RUN(test_take_and_free_detach_everything);
    /* Every loop closed its backend and wakeup descriptors; every test
     * closed its pipes. */
    CHECK_EQ(open_fds(), fds_at_start);
    fprintf(stderr, "test_phases: ok\n");
    return 0;
}
