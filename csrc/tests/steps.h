/* steps.h — what the loop tests share: a log the callbacks write their
 * names to (EXPECT_LOG compares it), small helpers, and the callback, hook,
 * timer and fd watcher "steps" whose run is logged.  Everything is static
 * inline, so a test file pays only for what it uses. */
#ifndef PL_TESTS_STEPS_H
#define PL_TESTS_STEPS_H

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

static char log_buf[4096] __attribute__((unused));

static inline void log_clear(void) { log_buf[0] = '\0'; }

static inline void note(const char *name)
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

static inline uint64_t ms_since(uint64_t t0) { return (pl_clock_ns() - t0) / 1000000u; }

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static inline void make_pipe(int fds[2])
{
    CHECK_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

static inline void write_byte(int fd)
{
    CHECK_EQ(write(fd, "x", 1), 1);
}

static inline pl_loop_t *new_loop(void)
{
    pl_loop_t *loop = pl_loop_new(NULL);
    CHECK(loop != NULL);
    return loop;
}

static inline uint64_t poll_callbacks(const pl_loop_t *loop)
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

static inline void on_step(pl_loop_t *loop, pl_callback_t *cb)
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

static inline void step_init(step_t *s, const char *name)
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

static inline void on_hook(pl_loop_t *loop, pl_hook_t *h)
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

static inline void hook_step_init(hook_step_t *s, const char *name)
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

static inline void on_timer(pl_loop_t *loop, pl_timer_t *t)
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

static inline void timer_step_init(timer_step_t *s, const char *name)
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

static inline void on_io(pl_loop_t *loop, pl_io_t *io, unsigned revents)
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

static inline void io_step_init(io_step_t *s, int fd, const char *name)
{
    memset(s, 0, sizeof *s);
    pl_io_init(&s->io, fd, on_io, NULL);
    s->name = name;
}

/* Descriptors open in this process, or -1 without /proc. */
static inline int open_fds(void)
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

#endif
