/* timer.c — the timer min-heap, ordered by (deadline, seq).
 *
 * An array of pointers to caller-owned timers; each timer remembers its
 * slot, so stopping one is O(log n) (asyncio cancels most timeouts before
 * they fire). The array grows by doubling and shrinks when three quarters
 * of it are unused, so memory returns after a burst of cancelled timers. */
#include <errno.h>
#include <stdlib.h>

#include "loop_internal.h"

static int timer_less(const pl_timer_t *a, const pl_timer_t *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

static void heap_place(pl_loop_t *loop, size_t i, pl_timer_t *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

/* Debug and sanitizer builds check the heap after every change, where it
 * changed: the timer that settled in slot i knows its slot, comes no
 * earlier than its parent and no later than its children.  (A full check
 * would make a million timers quadratic; every slot a change touches ends
 * with one of its timers settling and being checked.) */
static void heap_check_at(const pl_loop_t *loop, size_t i)
{
#ifdef PL_DEBUG
    const pl_timer_t *t = loop->heap[i];
    size_t child = 2 * i + 1;
    PL_ASSERT(t->heap_index == i);
    PL_ASSERT(i == 0 || !timer_less(t, loop->heap[(i - 1) / 2]));
    PL_ASSERT(child >= loop->heap_len || !timer_less(loop->heap[child], t));
    PL_ASSERT(child + 1 >= loop->heap_len || !timer_less(loop->heap[child + 1], t));
#else
    (void)loop;
    (void)i;
#endif
}

static void sift_up(pl_loop_t *loop, size_t i)
{
    pl_timer_t *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, loop->heap[parent]))
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
    heap_check_at(loop, i);
}

static void sift_down(pl_loop_t *loop, size_t i)
{
    pl_timer_t *t = loop->heap[i];
    size_t n = loop->heap_len;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && timer_less(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_less(loop->heap[child], t))
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, t);
    heap_check_at(loop, i);
}

static int heap_resize(pl_loop_t *loop, size_t cap)
{
    pl_timer_t **h = realloc(loop->heap, cap * sizeof *h);
    if (h == NULL)
        return -ENOMEM;
    loop->heap = h;
    loop->heap_cap = cap;
    return 0;
}

static int heap_insert(pl_loop_t *loop, pl_timer_t *t)
{
    if (loop->heap_len == loop->heap_cap) {
        int r = heap_resize(loop, loop->heap_cap ? loop->heap_cap * 2 : 64);
        if (r < 0)
            return r;
    }
    loop->heap[loop->heap_len] = t;
    sift_up(loop, loop->heap_len++);
    return 0;
}

static void heap_remove(pl_loop_t *loop, pl_timer_t *t)
{
    size_t i = t->heap_index;
    pl_timer_t *last = loop->heap[--loop->heap_len];
    t->heap_index = PL_TIMER_IDLE;
    if (last != t) {
        heap_place(loop, i, last);
        if (i > 0 && timer_less(last, loop->heap[(i - 1) / 2]))
            sift_up(loop, i);
        else
            sift_down(loop, i);
    }
    /* Shrinking cannot fail in a way that matters: keep the old array. */
    if (loop->heap_cap > 64 && loop->heap_len < loop->heap_cap / 4)
        (void)heap_resize(loop, loop->heap_cap / 2);
}

void pl_timer_init(pl_timer_t *t, pl_timer_fn fn, void *data)
{
    t->deadline = 0;
    t->seq = 0;
    t->heap_index = PL_TIMER_IDLE;
    pl_queue_init(&t->due);
    t->fn = fn;
    t->data = data;
}

int pl_timer_start(pl_loop_t *loop, pl_timer_t *t, uint64_t deadline)
{
    pl_timer_stop(loop, t);
    t->deadline = deadline;
    t->seq = loop->timer_seq++;
    return heap_insert(loop, t);
}

int pl_timer_stop(pl_loop_t *loop, pl_timer_t *t)
{
    if (t->heap_index == PL_TIMER_IDLE)
        return 0;
    if (t->heap_index == PL_TIMER_DUE) {
        pl_queue_remove(&t->due);
        t->heap_index = PL_TIMER_IDLE;
        loop->ndue--;
    } else {
        heap_remove(loop, t);
    }
    return 1;
}

size_t pl_timer_count(const pl_loop_t *loop)
{
    return loop->heap_len + loop->ndue;
}

uint64_t pl_timer_next(const pl_loop_t *loop)
{
    uint64_t next = loop->heap_len ? loop->heap[0]->deadline : UINT64_MAX;
    if (loop->ndue) {
        const pl_timer_t *first = pl_container_of(loop->due.next, pl_timer_t, due);
        if (first->deadline < next)
            next = first->deadline;
    }
    return next;
}

/* Add a timer just taken off the heap to the due list, in key order. The
 * list is empty unless a break left timers in it, and the heap hands timers
 * over in order, so the walk from the tail almost always stops at once. */
void pl__timer_add_due(pl_loop_t *loop, pl_timer_t *t)
{
    pl_queue_t *pos = loop->due.prev;
    while (pos != &loop->due && timer_less(t, pl_container_of(pos, pl_timer_t, due)))
        pos = pos->prev;
    pl_queue_insert_tail(pos->next, &t->due);   /* i.e. right after pos */
    t->heap_index = PL_TIMER_DUE;
    loop->ndue++;
}

/* Take the first due timer off the due list, or NULL. */
pl_timer_t *pl__timer_take_due(pl_loop_t *loop)
{
    if (pl_queue_empty(&loop->due))
        return NULL;
    pl_timer_t *t = pl_container_of(loop->due.next, pl_timer_t, due);
    pl_queue_remove(&t->due);
    t->heap_index = PL_TIMER_IDLE;
    loop->ndue--;
    return t;
}

/* Take the earliest timer if it is due at the cached time, else NULL. */
pl_timer_t *pl__timer_pop_due(pl_loop_t *loop)
{
    if (loop->heap_len == 0 || loop->heap[0]->deadline > loop->now)
        return NULL;
    pl_timer_t *t = loop->heap[0];
    heap_remove(loop, t);
    return t;
}

void pl__timers_free(pl_loop_t *loop)
{
    while (pl__timer_take_due(loop) != NULL)
        ;
    for (size_t i = 0; i < loop->heap_len; i++)
        loop->heap[i]->heap_index = PL_TIMER_IDLE;
    free(loop->heap);
    loop->heap = NULL;
    loop->heap_len = loop->heap_cap = 0;
}
