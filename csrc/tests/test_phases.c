/* test_phases.c — one iteration of pl_loop_run, phase by phase.
 *
 * Callbacks append their names to a log; each test compares the log with
 * the order docs/phases.md gives: pending, idle, prepare, poll, check, close,
 * timers, with the ready queue drained at the start of every phase and
 * after every callback (a snapshot per drain), and what waits for the next
 * iteration. */
#include "steps.h"

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
    /* Every loop closed its backend and wakeup descriptors; every test
     * closed its pipes. */
    CHECK_EQ(open_fds(), fds_at_start);
    fprintf(stderr, "test_phases: ok\n");
    return 0;
}
