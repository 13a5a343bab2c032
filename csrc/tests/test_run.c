/* test_run.c — how a run ends and waits: pl_loop_break in every phase,
 * pl_loop_stop, the run modes (DEFAULT, ONCE, NOWAIT) and the wait cap, and
 * taking everything back from a loop before freeing it. */
#include "steps.h"

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

int main(void)
{
    int fds_at_start = open_fds();
    fprintf(stderr, "backend=%s\n", pl_backend_name());
    RUN(test_break_in_check);
    RUN(test_break_in_ready);
    RUN(test_break_in_hook);
    RUN(test_break_in_poll);
    RUN(test_break_in_timers_keeps_order);
    RUN(test_stop_ends_default_after_iteration);
    RUN(test_nowait_never_blocks);
    RUN(test_once_returns_after_wait_cap);
    RUN(test_once_does_not_block_when_runnable);
    RUN(test_never_timer_and_uncapped_wait);
    RUN(test_take_and_free_detach_everything);
    /* Every loop closed its backend and wakeup descriptors; every test
     * closed its pipes. */
    CHECK_EQ(open_fds(), fds_at_start);
    fprintf(stderr, "test_run: ok\n");
    return 0;
}
