/* How a fuzz target fails on a broken invariant: it names what broke on
 * stderr and aborts, which libFuzzer reports as a crash with the input
 * that caused it. */
#ifndef RUNVM_FUZZ_CHECK_H
#define RUNVM_FUZZ_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts, naming what broke, when cond is false. */
static inline void check_that(bool cond, const char *what)
{
    if (cond)
        return;
    fprintf(stderr, "fuzz invariant broken: %s\n", what);
    abort();
}

#endif
