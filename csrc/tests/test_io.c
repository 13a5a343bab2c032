/* test_io.c — fd watchers: pl_io_set's errors, a watcher removed (or its fd
 * reused) in the middle of a batch of events, and a loop after fork: the
 * child refuses to run it, and the parent's loop is intact. */
#include "steps.h"

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

int main(void)
{
    int fds_at_start = open_fds();
    fprintf(stderr, "backend=%s\n", pl_backend_name());
    RUN(test_io_set_errors);
    RUN(test_remove_watcher_mid_batch);
    RUN(test_reused_fd_mid_batch);
    RUN(test_fork_child_refuses_run);
    /* Every loop closed its backend and wakeup descriptors; every test
     * closed its pipes. */
    CHECK_EQ(open_fds(), fds_at_start);
    fprintf(stderr, "test_io: ok\n");
    return 0;
}
