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

/* Which matmul kernel the library was built with: "cblas" or "builtin"
 * (set by bench/meson.build from the library's blas option). */
#ifndef BENCH_MATMUL
#define BENCH_MATMUL "builtin"
#endif

/* OpenBLAS's own controls, declared weak: they are non-NULL only when the
 * library was linked with OpenBLAS (its CBLAS matmul), and then the
 * benchmarks set OpenBLAS's thread count together with the graph's. */
extern void openblas_set_num_threads(int n) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

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

/* Use @p n threads: the graph's large kernels (nb_graph_set_threads) and,
 * when the library's matmul goes through OpenBLAS, OpenBLAS's pool (its
 * count is process-wide, so it is set here rather than by the graph). */
static inline void bench_set_threads(nb_graph *g, int n)
{
    if (g)
        nb_graph_set_threads(g, n);
    if (openblas_set_num_threads)
        openblas_set_num_threads(n);
}

/* The OpenBLAS kernel set in use ("Haswell", "Cooperlake"...), or "none". */
static inline const char *bench_blas_core(void)
{
    const char *s = openblas_get_corename ? openblas_get_corename() : NULL;
    return s ? s : "none";
}

/* A value of /proc/self/status (e.g. "VmHWM:", "VmRSS:") in MiB; -1 if unknown. */
static inline double bench_status_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = -1;
    size_t kl = strlen(key);
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) {
            mb = atof(line + kl) / 1024.0;
            break;
        }
    fclose(f);
    return mb;
}

/* Reset the process's peak-RSS counter (VmHWM) so that the next
 * bench_peak_mb() sees only what follows. Returns 0 on success. */
static inline int bench_reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Peak RSS since the last bench_reset_peak() (or since start), in MiB. */
static inline double bench_peak_mb(void)
{
    double mb = bench_status_mb("VmHWM:");
    return mb >= 0 ? mb : bench_peak_rss_mb();
}

/* Current RSS in MiB. */
static inline double bench_rss_mb(void)
{
    return bench_status_mb("VmRSS:");
}

/* True when argv holds the flag @p name (e.g. "--full"). */
static inline int bench_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of @p n values (sorts them). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Stop with a message when a nabla call failed. */
static inline void bench_check(nb_graph *g, const void *p, const char *what)
{
    if (!p || (g && nb_graph_status(g) != NB_OK)) {
        fprintf(stderr, "bench: %s failed: %s\n", what, g ? nb_graph_error(g)->msg : "");
        exit(1);
    }
}

#endif
