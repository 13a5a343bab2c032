/* test_queue.c — the intrusive queue helpers of phaseloop.h.
 *
 * Fixed cases for each helper, then random operations on two queues checked
 * against arrays of ids after every step (walked both ways, so a broken
 * prev link is caught as surely as a broken next link). */
#include <string.h>

#include "check.h"
#include "queue.h"

typedef struct item {
    int id;
    pl_queue_t node;
} item_t;

#define NITEMS 64

static item_t items[NITEMS];

static void items_init(void)
{
    for (int i = 0; i < NITEMS; i++) {
        items[i].id = i;
        pl_queue_init(&items[i].node);
    }
}

static int id_of(const pl_queue_t *n)
{
    return pl_container_of(n, item_t, node)->id;
}

/* The queue holds exactly ids[0..n) in order, in both directions. */
static void check_queue(const pl_queue_t *h, const int *ids, int n)
{
    const pl_queue_t *q = h->next;
    for (int i = 0; i < n; i++, q = q->next) {
        CHECK(q != h);
        CHECK_EQ(id_of(q), ids[i]);
        CHECK(q->next->prev == q);
        CHECK(pl_queue_linked(q));
    }
    CHECK(q == h);
    q = h->prev;
    for (int i = n - 1; i >= 0; i--, q = q->prev) {
        CHECK(q != h);
        CHECK_EQ(id_of(q), ids[i]);
    }
    CHECK(q == h);
    CHECK_EQ(pl_queue_empty(h), n == 0);
}

static void test_init_and_linked(void)
{
    pl_queue_t h;
    items_init();
    pl_queue_init(&h);
    CHECK(pl_queue_empty(&h));
    CHECK(!pl_queue_linked(&items[0].node));
    pl_queue_insert_tail(&h, &items[0].node);
    CHECK(!pl_queue_empty(&h));
    CHECK(pl_queue_linked(&items[0].node));
    pl_queue_remove(&items[0].node);
    CHECK(!pl_queue_linked(&items[0].node));
    CHECK(pl_queue_empty(&h));
}

static void test_insert_tail_keeps_order(void)
{
    pl_queue_t h;
    int ids[5] = {3, 1, 4, 0, 2};
    items_init();
    pl_queue_init(&h);
    for (int i = 0; i < 5; i++)
        pl_queue_insert_tail(&h, &items[ids[i]].node);
    check_queue(&h, ids, 5);
}

static void test_remove_head_middle_tail(void)
{
    pl_queue_t h;
    items_init();
    pl_queue_init(&h);
    for (int i = 0; i < 5; i++)
        pl_queue_insert_tail(&h, &items[i].node);
    pl_queue_remove(&items[2].node);
    check_queue(&h, (int[]){0, 1, 3, 4}, 4);
    pl_queue_remove(&items[0].node);
    check_queue(&h, (int[]){1, 3, 4}, 3);
    pl_queue_remove(&items[4].node);
    check_queue(&h, (int[]){1, 3}, 2);
    /* Removing an unlinked node is harmless (pl_callback_cancel relies on it). */
    pl_queue_remove(&items[4].node);
    CHECK(!pl_queue_linked(&items[4].node));
    check_queue(&h, (int[]){1, 3}, 2);
    pl_queue_remove(&items[1].node);
    pl_queue_remove(&items[3].node);
    check_queue(&h, NULL, 0);
    /* A removed node can be queued again. */
    pl_queue_insert_tail(&h, &items[4].node);
    check_queue(&h, (int[]){4}, 1);
}

static void test_move(void)
{
    pl_queue_t h, n;
    items_init();
    pl_queue_init(&h);
    for (int i = 0; i < 3; i++)
        pl_queue_insert_tail(&h, &items[i].node);
    memset(&n, 0xa5, sizeof n); /* the target need not be initialized */
    pl_queue_move(&h, &n);
    check_queue(&h, NULL, 0);
    check_queue(&n, (int[]){0, 1, 2}, 3);
    /* The emptied head is usable at once. */
    pl_queue_insert_tail(&h, &items[5].node);
    check_queue(&h, (int[]){5}, 1);
    check_queue(&n, (int[]){0, 1, 2}, 3);

    /* Moving an empty queue leaves an empty, valid target. */
    pl_queue_t e, target;
    pl_queue_init(&e);
    memset(&target, 0xa5, sizeof target);
    pl_queue_move(&e, &target);
    check_queue(&e, NULL, 0);
    check_queue(&target, NULL, 0);

    /* One element. */
    pl_queue_t one, got;
    pl_queue_init(&one);
    pl_queue_insert_tail(&one, &items[9].node);
    pl_queue_move(&one, &got);
    check_queue(&one, NULL, 0);
    check_queue(&got, (int[]){9}, 1);
}

static void test_prepend(void)
{
    pl_queue_t dst, src;
    items_init();
    pl_queue_init(&dst);
    pl_queue_init(&src);

    /* Both empty. */
    pl_queue_prepend(&dst, &src);
    check_queue(&dst, NULL, 0);
    check_queue(&src, NULL, 0);

    /* Empty source: the destination is unchanged. */
    pl_queue_insert_tail(&dst, &items[7].node);
    pl_queue_insert_tail(&dst, &items[8].node);
    pl_queue_prepend(&dst, &src);
    check_queue(&dst, (int[]){7, 8}, 2);
    check_queue(&src, NULL, 0);

    /* Both non-empty: the source's nodes come first, in their order. */
    pl_queue_insert_tail(&src, &items[1].node);
    pl_queue_insert_tail(&src, &items[2].node);
    pl_queue_insert_tail(&src, &items[3].node);
    pl_queue_prepend(&dst, &src);
    check_queue(&dst, (int[]){1, 2, 3, 7, 8}, 5);
    check_queue(&src, NULL, 0);

    /* Empty destination. */
    pl_queue_t d2, s2;
    pl_queue_init(&d2);
    pl_queue_init(&s2);
    pl_queue_insert_tail(&s2, &items[20].node);
    pl_queue_prepend(&d2, &s2);
    check_queue(&d2, (int[]){20}, 1);
    check_queue(&s2, NULL, 0);
}

static void test_container_of(void)
{
    items_init();
    CHECK(pl_container_of(&items[11].node, item_t, node) == &items[11]);
    pl_callback_t cb;
    pl_callback_init(&cb, NULL, NULL);
    CHECK(pl_container_of(&cb.node, pl_callback_t, node) == &cb);
    CHECK(!pl_callback_queued(&cb));
}

/* ---- random operations against an array model ---------------------------- */

static unsigned rng_state = 12345u;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % n;
}

typedef struct model {
    int ids[NITEMS];
    int n;
} model_t;

static void model_remove(model_t *m, int id)
{
    for (int i = 0; i < m->n; i++) {
        if (m->ids[i] == id) {
            memmove(&m->ids[i], &m->ids[i + 1], (size_t)(m->n - i - 1) * sizeof m->ids[0]);
            m->n--;
            return;
        }
    }
    CHECK(!"id not in model");
}

static void test_random_against_model(void)
{
    pl_queue_t q[2];
    model_t m[2] = {{{0}, 0}, {{0}, 0}};
    int where[NITEMS]; /* -1 unlinked, else index of the queue */
    items_init();
    pl_queue_init(&q[0]);
    pl_queue_init(&q[1]);
    for (int i = 0; i < NITEMS; i++)
        where[i] = -1;

    for (int step = 0; step < 200000; step++) {
        int a = (int)rnd(2), b = 1 - a;
        int id = (int)rnd(NITEMS);
        switch (rnd(8)) {
        case 0: case 1: case 2: /* insert (or remove, if already queued) */
            if (where[id] < 0) {
                pl_queue_insert_tail(&q[a], &items[id].node);
                m[a].ids[m[a].n++] = id;
                where[id] = a;
            } else {
                pl_queue_remove(&items[id].node);
                model_remove(&m[where[id]], id);
                where[id] = -1;
            }
            break;
        case 3: case 4: /* remove, harmless on an unlinked node */
            pl_queue_remove(&items[id].node);
            if (where[id] >= 0)
                model_remove(&m[where[id]], id);
            where[id] = -1;
            break;
        case 5: { /* move a to a temporary head and append it to b */
            pl_queue_t tmp;
            pl_queue_move(&q[a], &tmp);
            while (!pl_queue_empty(&tmp)) {
                pl_queue_t *n = tmp.next;
                pl_queue_remove(n);
                pl_queue_insert_tail(&q[b], n);
            }
            for (int i = 0; i < m[a].n; i++) {
                where[m[a].ids[i]] = b;
                m[b].ids[m[b].n++] = m[a].ids[i];
            }
            m[a].n = 0;
            break;
        }
        case 6: /* prepend b to a */
            pl_queue_prepend(&q[a], &q[b]);
            memmove(&m[a].ids[m[b].n], m[a].ids, (size_t)m[a].n * sizeof m[a].ids[0]);
            memcpy(m[a].ids, m[b].ids, (size_t)m[b].n * sizeof m[b].ids[0]);
            m[a].n += m[b].n;
            for (int i = 0; i < m[b].n; i++)
                where[m[b].ids[i]] = a;
            m[b].n = 0;
            break;
        default: /* move a out and straight back: order unchanged */
        {
            pl_queue_t tmp;
            pl_queue_move(&q[a], &tmp);
            pl_queue_move(&tmp, &q[a]);
            check_queue(&tmp, NULL, 0);
            break;
        }
        }
        check_queue(&q[0], m[0].ids, m[0].n);
        check_queue(&q[1], m[1].ids, m[1].n);
        for (int i = 0; i < NITEMS; i++)
            CHECK_EQ(pl_queue_linked(&items[i].node), where[i] >= 0);
    }
}

#ifdef PL_DEBUG
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Debug builds check the core's invariants: a node queued twice aborts
 * (in a child, so that the abort is what is tested). */
static void test_a_node_queued_twice_aborts(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        pl_queue_t head, node;
        pl_queue_init(&head);
        pl_queue_init(&node);
        pl_queue_insert_tail(&head, &node);
        freopen("/dev/null", "w", stderr);     /* the expected report */
        pl_queue_insert_tail(&head, &node);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}
#endif

int main(void)
{
    RUN(test_init_and_linked);
    RUN(test_insert_tail_keeps_order);
    RUN(test_remove_head_middle_tail);
    RUN(test_move);
    RUN(test_prepend);
    RUN(test_container_of);
    RUN(test_random_against_model);
#ifdef PL_DEBUG
    RUN(test_a_node_queued_twice_aborts);
#endif
    fprintf(stderr, "test_queue: ok\n");
    return 0;
}
