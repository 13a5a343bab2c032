/* invariants.h — PL_ASSERT: the core's invariants (an fd >= 0, a node in
 * one queue at a time, the timer heap's order), checked in debug and
 * sanitizer builds (-DPL_DEBUG: csrc/tests builds with it when PL_SANITIZE
 * or PL_DEBUG is on) and compiled out of the extension's release build.
 * Independent of NDEBUG, which CMake's optimized builds define. */
#ifndef PHASELOOP_INVARIANTS_H
#define PHASELOOP_INVARIANTS_H

#ifdef PL_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define PL_ASSERT(cond)                                                            \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: %s: invariant broken: %s\n", __FILE__, __LINE__, \
                    __func__, #cond);                                              \
            abort();                                                               \
        }                                                                          \
    } while (0)
#else
#define PL_ASSERT(cond) ((void)0)
#endif

#endif
