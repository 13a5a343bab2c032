/* queue.h — the core's intrusive doubly linked queue: a circular list with
 * a sentinel head, nodes embedded in what they link (libuv keeps its
 * queue.h private the same way). Only csrc/ includes it; the node type,
 * pl_queue_t, is in phaseloop.h because public structs embed it. */
#ifndef PHASELOOP_QUEUE_H
#define PHASELOOP_QUEUE_H

#include <stddef.h>

#include "phaseloop.h"
#include "invariants.h"

static inline void pl_queue_init(pl_queue_t *q) { q->next = q; q->prev = q; }
static inline int pl_queue_empty(const pl_queue_t *q) { return q->next == q; }
/* A node that is not linked anywhere points at itself. */
static inline int pl_queue_linked(const pl_queue_t *n) { return n->next != n; }

static inline void pl_queue_insert_tail(pl_queue_t *h, pl_queue_t *n)
{
    PL_ASSERT(!pl_queue_linked(n));      /* a node is in one queue at a time */
    n->next = h;
    n->prev = h->prev;
    n->prev->next = n;
    h->prev = n;
}

static inline void pl_queue_remove(pl_queue_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n;
    n->prev = n;
}

/* Move every node of h to the (empty) head n; h is left empty. */
static inline void pl_queue_move(pl_queue_t *h, pl_queue_t *n)
{
    if (pl_queue_empty(h)) {
        pl_queue_init(n);
        return;
    }
    n->next = h->next;
    n->prev = h->prev;
    n->next->prev = n;
    n->prev->next = n;
    pl_queue_init(h);
}

/* Put every node of src (in order) in front of the nodes of dst. */
static inline void pl_queue_prepend(pl_queue_t *dst, pl_queue_t *src)
{
    if (pl_queue_empty(src))
        return;
    pl_queue_t *first = src->next, *last = src->prev;
    last->next = dst->next;
    dst->next->prev = last;
    dst->next = first;
    first->prev = dst;
    pl_queue_init(src);
}

#define pl_container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
