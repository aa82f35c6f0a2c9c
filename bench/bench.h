/* Shared by the benchmark programs: wall clock, peak memory, JSON lines as
 * ../shared/bench-ref/WORKLOADS.md defines them. Header-only. */
#ifndef NABLA_BENCH_H
#define NABLA_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "nabla.h"

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Peak resident set size of the process so far, in MiB. */
static inline double bench_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* Threads from the environment (OMP_NUM_THREADS), default 1. */
static inline int bench_threads(void)
{
    const char *s = getenv("OMP_NUM_THREADS");
    int n = s ? atoi(s) : 1;
    return n > 0 ? n : 1;
}

/* Stop with a message when a nabla call failed. */
static inline void bench_check(nb_graph *g, const void *p, const char *what)
{
    if (!p || (g && nb_graph_status(g) != NB_OK)) {
        fprintf(stderr, "bench: %s failed: %s\n", what, g ? nb_graph_errmsg(g) : "");
        exit(1);
    }
}

#endif
