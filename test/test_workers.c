/* The library's worker threads (nbc_parallel, src/core/workers.c): every
 * task of a job runs once, on the team's threads, for many job sizes; jobs
 * started from a task, from two threads at once, after the team has gone
 * to sleep and in a forked child all finish; and ops on 1 to 4 threads
 * give the bits of 1 thread, in a graph and in the next one after it is
 * freed. Under -Db_sanitize=thread this also checks the team's hand-over
 * for races. */

#include "tc.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../src/core/internal.h"

enum { MAX_TASKS = 200 };

typedef struct counts {
    _Atomic int ran[MAX_TASKS]; /* times task t ran */
    _Atomic int bad_n;          /* calls that were told a wrong n */
    int n;
    pthread_t caller;
    _Atomic int off_caller; /* tasks run on another thread than the caller */
    int nap_us;             /* tasks 0 and 1 sleep this long */
} counts;

static void nap(int us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void count_task(void *ctx, int t, int n)
{
    counts *c = ctx;
    if (n != c->n)
        atomic_fetch_add(&c->bad_n, 1);
    if (t >= 0 && t < MAX_TASKS)
        atomic_fetch_add(&c->ran[t], 1);
    if (!pthread_equal(pthread_self(), c->caller))
        atomic_fetch_add(&c->off_caller, 1);
    if (t <= 1 && c->nap_us) /* the caller's first task and the next one */
        nap(c->nap_us);
}

/* Run a job of n tasks; true when each ran exactly once, told n */
static bool run_counted(counts *c, int n, int nap_us)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->caller = pthread_self();
    c->nap_us = nap_us;
    nbc_parallel(n, count_task, c);
    bool ok = atomic_load(&c->bad_n) == 0;
    for (int t = 0; t < MAX_TASKS; t++)
        ok &= atomic_load(&c->ran[t]) == (t < n);
    return ok;
}

static void test_every_task_once(void **state)
{
    (void)state;
    counts c;
    for (int n = 0; n < MAX_TASKS; n++)
        assert_true(run_counted(&c, n, 0));
    /* workers run tasks (when they are given a core in time: the caller
     * takes what they have not) */
    int off = 0;
    for (int i = 0; i < 100 && !off; i++) {
        assert_true(run_counted(&c, 4, 2000));
        off = atomic_load(&c.off_caller);
    }
    assert_true(off > 0);
    assert_true(nbc_workers_started() >= 3);
    /* a job after the team has gone to sleep, and one whose caller sleeps
     * waiting for a slow worker */
    nap(20000);
    assert_true(run_counted(&c, 2, 0));
    assert_true(run_counted(&c, 3, 5000));
    nap(20000);
    assert_true(run_counted(&c, 4, 5000));
}

/* A task that starts a job of its own: it runs on its caller */
typedef struct nested {
    counts inner[4];
    _Atomic int ok;
} nested;

static void nested_task(void *ctx, int t, int n)
{
    (void)n;
    nested *s = ctx;
    if (run_counted(&s->inner[t], 3, 0))
        atomic_fetch_add(&s->ok, 1);
}

static void test_nested(void **state)
{
    (void)state;
    nested *s = calloc(1, sizeof *s);
    assert_non_null(s);
    nbc_parallel(4, nested_task, s);
    assert_int_equal(atomic_load(&s->ok), 4);
    free(s);
}

/* Two threads starting jobs at once: each job completes, whoever runs it */
static void *many_jobs(void *arg)
{
    counts *c = malloc(sizeof *c);
    intptr_t ok = c != NULL;
    for (int i = 0; ok && i < 300; i++)
        ok = run_counted(c, 1 + i % 5, 0);
    free(c);
    (void)arg;
    return (void *)ok;
}

static void test_two_callers(void **state)
{
    (void)state;
    pthread_t a, b;
    void *ra, *rb;
    assert_int_equal(pthread_create(&a, NULL, many_jobs, NULL), 0);
    assert_int_equal(pthread_create(&b, NULL, many_jobs, NULL), 0);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    assert_true(ra && rb);
}

/* fork after the team has run: the child runs jobs (on a team of its own)
 * and exits; the parent's team still works */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

static void test_fork(void **state)
{
    (void)state;
#ifdef UNDER_TSAN
    skip(); /* ThreadSanitizer dies when a child of a threaded process starts threads */
#endif
    counts c;
    assert_true(run_counted(&c, 4, 0));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a hang kills the child: the parent sees a signal */
        bool ok = true;
        for (int n = 1; n < 9; n++)
            ok &= run_counted(&c, n, 0);
        _exit(ok && nbc_workers_started() >= 3 ? 7 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
    assert_true(run_counted(&c, 4, 0));

    /* a child that exits through exit(): its team is joined, no hang */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        exit(run_counted(&c, 3, 0) ? 8 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 8);
}

/* y = sum(relu(A B + c) * 2, axis 0) through matmul, broadcast add, relu,
 * scale, cast and a reduction, with A [m,k], B [k,n]: values of a graph on
 * `threads` threads */
static void ops_values(int threads, int64_t m, int64_t k, int64_t n, float *out)
{
    nb_graph *g = nb_graph_new();
    assert_non_null(g);
    nb_graph_set_threads(g, threads);
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    int64_t sa[2] = {m, k}, sb[2] = {k, n}, sc[1] = {n};
    nb_tensor *A = nb_rand_uniform(g, &rng, NB_F32, 2, sa, -1, 1);
    nb_tensor *B = nb_rand_uniform(g, &rng, NB_F32, 2, sb, -1, 1);
    nb_tensor *C = nb_rand_uniform(g, &rng, NB_F32, 1, sc, -1, 1);
    nb_tensor *h = nb_relu(g, nb_add(g, nb_matmul(g, A, B, false, false), C));
    h = nb_cast(g, nb_cast(g, nb_scale(g, h, 2.0), NB_F64), NB_F32);
    int axes[1] = {0};
    nb_tensor *y = nb_sum(g, h, axes, 1, false);
    assert_non_null(y);
    memcpy(out, nb_tensor_data(y), (size_t)n * sizeof *out);
    nb_graph_free(g);
}

static void test_ops_any_threads(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{300, 200, 257}, {64, 64, 64}, {1000, 40, 70}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *want = malloc((size_t)n * sizeof *want), *got = malloc((size_t)n * sizeof *got);
        assert_true(want && got);
        ops_values(1, m, k, n, want);
        for (int rep = 0; rep < 2; rep++) /* each graph freed, then a new one */
            for (int threads = 2; threads <= 4; threads++) {
                ops_values(threads, m, k, n, got);
                assert_memory_equal(got, want, (size_t)n * sizeof *got);
            }
        free(want);
        free(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_once), cmocka_unit_test(test_nested),
        cmocka_unit_test(test_two_callers),     cmocka_unit_test(test_fork),
        cmocka_unit_test(test_ops_any_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
