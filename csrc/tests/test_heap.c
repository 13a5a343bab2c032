/* test_heap.c — the timer heap: order, FIFO ties, index bookkeeping.
 *
 * A reference model keeps, for every timer, its state (idle, armed, due)
 * and its (deadline, model sequence); the model sequence counts starts in
 * the test, so "FIFO for equal deadlines" is checked against the order the
 * test armed timers in, not against the core's own seq. After every step
 * the heap array is checked through loop_internal.h: each slot's timer
 * knows its slot, no child sorts before its parent, and exactly the armed
 * timers of the model are in it.
 *
 * Timers are popped two ways: pl__timer_pop_due with a chosen clock value
 * (to pop partial prefixes), and pl_loop_run(PL_RUN_NOWAIT), whose timers
 * phase runs every timer with a deadline in the past. "Small" deadlines
 * (< SMALL) are always in the past of the monotonic clock; "far" ones
 * (near UINT64_MAX) never come due. */
#include <string.h>

#include "check.h"
#include "loop_internal.h"

#define SMALL 200u

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(uint64_t n)
{
    /* xorshift64*: enough spread for shuffling operations. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((rng_state * 2685821657736338717ull) >> 11) % n;
}

static int key_less(uint64_t da, uint64_t sa, uint64_t db, uint64_t sb)
{
    return da != db ? da < db : sa < sb;
}

/* The heap array is a valid min-heap and every timer knows its slot. */
static void check_heap_shape(const pl_loop_t *loop)
{
    CHECK(loop->heap_len <= loop->heap_cap);
    for (size_t i = 0; i < loop->heap_len; i++) {
        const pl_timer_t *t = loop->heap[i];
        CHECK_EQ(t->heap_index, i);
        if (i > 0) {
            const pl_timer_t *p = loop->heap[(i - 1) / 2];
            CHECK(!key_less(t->deadline, t->seq, p->deadline, p->seq));
        }
    }
}

/* ---- the random model test ------------------------------------------------- */

enum { M_IDLE, M_HEAP, M_DUE };

#define NTIMERS 400

typedef struct model {
    pl_loop_t *loop;
    pl_timer_t timers[NTIMERS];
    int state[NTIMERS];
    uint64_t deadline[NTIMERS];
    uint64_t mseq[NTIMERS];
    uint64_t next_mseq;
    int due[NTIMERS];    /* ids due in the running timers phase, in order */
    int ndue;
    int due_pos;
    int broke;
} model_t;

static model_t M;

static int id_of(const pl_timer_t *t) { return (int)(t - M.timers); }

static uint64_t random_deadline(void)
{
    return rnd(4) ? rnd(SMALL) : UINT64_MAX - rnd(20);
}

static void model_start(int id, uint64_t deadline)
{
    CHECK_EQ(pl_timer_start(M.loop, &M.timers[id], deadline), 0);
    M.state[id] = M_HEAP;
    M.deadline[id] = deadline;
    M.mseq[id] = M.next_mseq++;
    CHECK(pl_timer_active(&M.timers[id]));
}

static void model_stop(int id)
{
    int was = M.state[id] != M_IDLE;
    CHECK_EQ(pl_timer_stop(M.loop, &M.timers[id]), was);
    M.state[id] = M_IDLE;
    CHECK(!pl_timer_active(&M.timers[id]));
}

/* The armed timer that sorts first, or -1. */
static int model_min(void)
{
    int best = -1;
    for (int i = 0; i < NTIMERS; i++)
        if (M.state[i] == M_HEAP
            && (best < 0 || key_less(M.deadline[i], M.mseq[i], M.deadline[best], M.mseq[best])))
            best = i;
    return best;
}

/* The armed timer that sorts first, in the heap or left due by a break. */
static int model_min_armed(void)
{
    int best = -1;
    for (int i = 0; i < NTIMERS; i++)
        if (M.state[i] != M_IDLE
            && (best < 0 || key_less(M.deadline[i], M.mseq[i], M.deadline[best], M.mseq[best])))
            best = i;
    return best;
}

static void check_against_model(void)
{
    size_t armed = 0;
    check_heap_shape(M.loop);
    for (int i = 0; i < NTIMERS; i++) {
        const pl_timer_t *t = &M.timers[i];
        if (M.state[i] == M_DUE) {
            /* Left unrun by a break: waits in the due list for next run. */
            armed++;
            CHECK(pl_timer_active(t));
            CHECK(t->heap_index == PL_TIMER_DUE && pl_queue_linked(&t->due));
            continue;
        }
        if (M.state[i] == M_IDLE) {
            CHECK(t->heap_index == PL_TIMER_IDLE);
            CHECK(!pl_timer_active(t));
            continue;
        }
        armed++;
        CHECK(pl_timer_active(t));
        CHECK(t->heap_index < M.loop->heap_len);
        CHECK(M.loop->heap[t->heap_index] == t);
        CHECK_EQ(t->deadline == M.deadline[i], 1);
        CHECK(!pl_queue_linked(&t->due));
    }
    CHECK_EQ(pl_timer_count(M.loop), armed);
    int min = model_min_armed();
    CHECK(pl_timer_next(M.loop) == (min < 0 ? UINT64_MAX : M.deadline[min]));
}

/* Pop everything due at `now` through the internal pop, one at a time. */
static void pop_due_at(uint64_t now)
{
    pl_timer_t *t;
    M.loop->now = now;
    while ((t = pl__timer_pop_due(M.loop)) != NULL) {
        int id = id_of(t), want = model_min();
        CHECK_EQ(id, want);
        CHECK(M.deadline[id] <= now);
        CHECK(t->heap_index == PL_TIMER_IDLE);
        M.state[id] = M_IDLE;
        check_heap_shape(M.loop);
    }
    int min = model_min();
    CHECK(min < 0 || M.deadline[min] > now);
}

/* A timer callback: it must be the next due timer in model order; then it
 * may stop or re-arm another timer (perhaps one still due in this phase,
 * perhaps itself) or break the loop. */
static void on_model_timer(pl_loop_t *loop, pl_timer_t *t)
{
    int id = id_of(t);
    CHECK(loop == M.loop);
    CHECK(!M.broke);
    while (M.due_pos < M.ndue && M.state[M.due[M.due_pos]] != M_DUE)
        M.due_pos++;
    CHECK(M.due_pos < M.ndue);
    CHECK_EQ(id, M.due[M.due_pos]);
    M.due_pos++;
    M.state[id] = M_IDLE;
    CHECK(!pl_timer_active(t));
    /* The rest of the due set waits outside the heap, marked due. */
    for (int k = M.due_pos; k < M.ndue; k++) {
        const pl_timer_t *d = &M.timers[M.due[k]];
        if (M.state[M.due[k]] == M_DUE)
            CHECK(d->heap_index == PL_TIMER_DUE && pl_timer_active(d) && pl_queue_linked(&d->due));
        else
            CHECK(d->heap_index != PL_TIMER_DUE && !pl_queue_linked(&d->due));
    }
    switch (rnd(16)) {
    case 0: case 1: case 2: case 3:
        model_stop((int)rnd(NTIMERS));
        break;
    case 4: case 5: case 6: case 7:
        model_start((int)rnd(NTIMERS), random_deadline());
        break;
    case 8:
        model_start(id, rnd(SMALL)); /* due again: must wait for the next run */
        break;
    case 9:
        pl_loop_break(loop);
        M.broke = 1;
        break;
    default:
        break;
    }
}

static int cmp_due(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (key_less(M.deadline[x], M.mseq[x], M.deadline[y], M.mseq[y]))
        return -1;
    return key_less(M.deadline[y], M.mseq[y], M.deadline[x], M.mseq[x]) ? 1 : 0;
}

/* One loop iteration: its timers phase runs every small-deadline timer. */
static void run_timers_phase(void)
{
    M.ndue = 0;
    M.due_pos = 0;
    M.broke = 0;
    for (int i = 0; i < NTIMERS; i++)
        if (M.state[i] != M_IDLE && M.deadline[i] < SMALL)
            M.due[M.ndue++] = i;
    qsort(M.due, (size_t)M.ndue, sizeof M.due[0], cmp_due);
    for (int k = 0; k < M.ndue; k++)
        M.state[M.due[k]] = M_DUE;

    int r = pl_loop_run(M.loop, PL_RUN_NOWAIT);
    CHECK_EQ(r, M.broke ? PL_BROKEN : PL_STOPPED);
    /* After a break the unrun due timers stay armed in the due list; the
     * next phase merges them with the newly due by (deadline, seq). */
    for (int k = 0; k < M.ndue; k++)
        if (M.state[M.due[k]] == M_DUE)
            CHECK(M.broke);
}

static void test_random_against_model(void)
{
    memset(&M, 0, sizeof M);
    M.loop = pl_loop_new(NULL);
    CHECK(M.loop != NULL);
    for (int i = 0; i < NTIMERS; i++)
        pl_timer_init(&M.timers[i], on_model_timer, NULL);
    check_against_model();

    for (int step = 0; step < 60000; step++) {
        int id = (int)rnd(NTIMERS);
        uint64_t op = rnd(100);
        if (op < 40)
            model_start(id, random_deadline());     /* arm or re-arm */
        else if (op < 70)
            model_stop(id);
        else if (op < 85)
            pop_due_at(rnd(SMALL));
        else if (op < 90)
            pop_due_at(rnd(2) ? 0 : UINT64_MAX - 10); /* nothing / a far prefix */
        else
            run_timers_phase();
        check_against_model();
    }
    pl_loop_free(M.loop);
    /* The loop lets go of the timers it still had armed. */
    for (int i = 0; i < NTIMERS; i++)
        CHECK(!pl_timer_active(&M.timers[i]));
}

/* Equal deadlines fire in start order, and re-arming moves a timer to the
 * back of its new deadline's line. */
static int fifo_log[8], fifo_n;

static void on_fifo_timer(pl_loop_t *loop, pl_timer_t *t)
{
    (void)loop;
    fifo_log[fifo_n++] = (int)(intptr_t)t->data;
}

static void test_equal_deadlines_fifo(void)
{
    pl_loop_t *loop = pl_loop_new(NULL);
    pl_timer_t t[5];
    CHECK(loop != NULL);
    for (int i = 0; i < 5; i++) {
        pl_timer_init(&t[i], on_fifo_timer, (void *)(intptr_t)i);
        CHECK_EQ(pl_timer_start(loop, &t[i], 42), 0);
    }
    CHECK_EQ(pl_timer_start(loop, &t[1], 42), 0); /* re-armed: now last */
    CHECK_EQ(pl_timer_start(loop, &t[3], 41), 0); /* earlier: now first */
    CHECK_EQ(pl_timer_count(loop), 5);
    CHECK(pl_timer_next(loop) == 41);
    fifo_n = 0;
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(fifo_n, 5);
    int want[5] = {3, 0, 2, 4, 1};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(fifo_log[i], want[i]);
    CHECK_EQ(pl_timer_count(loop), 0);
    CHECK(pl_timer_next(loop) == UINT64_MAX);
    pl_loop_free(loop);
}

/* ---- a million live timers ---------------------------------------------------- */

#define NBIG 1000000

typedef struct big {
    pl_timer_t timer;
    uint64_t order;     /* start order, as the test counts it */
    int armed;
    int ran;
} big_t;

static big_t *big;
static const big_t *big_last;
static size_t big_ran;

static void on_big_timer(pl_loop_t *loop, pl_timer_t *t)
{
    (void)loop;
    big_t *b = pl_container_of(t, big_t, timer);
    CHECK(b->armed && !b->ran);
    if (big_last != NULL)
        CHECK(key_less(big_last->timer.deadline, big_last->order, b->timer.deadline, b->order));
    b->ran = 1;
    big_last = b;
    big_ran++;
}

static void test_million_timers_in_order(void)
{
    pl_loop_t *loop = pl_loop_new(NULL);
    uint64_t order = 0, min = UINT64_MAX;
    size_t armed = NBIG;
    CHECK(loop != NULL);
    big = calloc(NBIG, sizeof *big);
    CHECK(big != NULL);

    /* ~1000 timers share each deadline, so ties are everywhere. */
    for (size_t i = 0; i < NBIG; i++) {
        uint64_t d = 1 + rnd(1000);
        pl_timer_init(&big[i].timer, on_big_timer, NULL);
        CHECK_EQ(pl_timer_start(loop, &big[i].timer, d), 0);
        big[i].order = order++;
        big[i].armed = 1;
        min = d < min ? d : min;
    }
    CHECK_EQ(pl_timer_count(loop), NBIG);
    CHECK(pl_timer_next(loop) == min);
    check_heap_shape(loop);

    /* Cancel a third, re-arm a seventh (to the back of a new line). */
    for (size_t i = 0; i < NBIG; i += 3) {
        CHECK_EQ(pl_timer_stop(loop, &big[i].timer), 1);
        big[i].armed = 0;
        armed--;
    }
    for (size_t i = 0; i < NBIG; i += 7) {
        CHECK_EQ(pl_timer_start(loop, &big[i].timer, 1 + rnd(1000)), 0);
        big[i].order = order++;
        if (!big[i].armed)
            armed++;
        big[i].armed = 1;
    }
    CHECK_EQ(pl_timer_count(loop), armed);
    check_heap_shape(loop);

    big_last = NULL;
    big_ran = 0;
    CHECK_EQ(pl_loop_run(loop, PL_RUN_NOWAIT), PL_STOPPED);
    CHECK_EQ(big_ran, armed);
    CHECK_EQ(pl_timer_count(loop), 0);
    for (size_t i = 0; i < NBIG; i++) {
        CHECK_EQ(big[i].ran, big[i].armed);
        CHECK(!pl_timer_active(&big[i].timer));
    }
    /* The array gave its memory back as it emptied. */
    CHECK(loop->heap_cap <= 128);
    pl_loop_free(loop);
    free(big);
}

int main(void)
{
    RUN(test_equal_deadlines_fifo);
    RUN(test_random_against_model);
    RUN(test_million_timers_in_order);
    fprintf(stderr, "test_heap: ok\n");
    return 0;
}
