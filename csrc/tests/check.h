/* check.h — the tests' one assertion: report where and what, then exit 1.
 * Exiting on the first failure keeps a broken invariant from cascading
 * into a crash that hides it. */
#ifndef PL_TESTS_CHECK_H
#define PL_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__,       \
                    __LINE__, __func__, #cond);                              \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* Compare two integers and show both values when they differ. */
#define CHECK_EQ(a, b)                                                       \
    do {                                                                     \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);      \
        if (check_a_ != check_b_) {                                          \
            fprintf(stderr, "%s:%d: %s: check failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, __func__, #a, #b, check_a_, check_b_); \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

/* Run one test function and say so, so a failure names its test. */
#define RUN(test)                                                            \
    do {                                                                     \
        fprintf(stderr, "-- %s\n", #test);                                   \
        test();                                                              \
    } while (0)

#endif
