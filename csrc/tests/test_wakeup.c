/* test_wakeup.c — waking a waiting loop: pl_loop_wakeup from another thread
 * (a burst coalesced into one write), the runtime hooks around the wait and
 * a wait a signal interrupts, and the polls a busy loop tries before it
 * waits.  Public API only, but for the wakeup fd (loop_internal.h), to count
 * the writes a burst made, and the count of polls tried. */
#include "steps.h"

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

int main(void)
{
    int fds_at_start = open_fds();
    fprintf(stderr, "backend=%s\n", pl_backend_name());
    RUN(test_wakeup_from_thread);
    RUN(test_wakeup_burst_coalesced);
    RUN(test_runtime_hooks_and_interrupt);
    RUN(test_busy_polls_keep_the_runtime);
    RUN(test_tries_that_find_nothing_back_off);
    /* Every loop closed its backend and wakeup descriptors; every test
     * closed its pipes. */
    CHECK_EQ(open_fds(), fds_at_start);
    fprintf(stderr, "test_wakeup: ok\n");
    return 0;
}
