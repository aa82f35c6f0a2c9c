/* The worker threads behind every parallel loop of the library
 * (nbc_parallel): one team per process, started on first use, shared by all
 * graphs.
 *
 * Why not OpenMP's team: a sleeping OpenMP thread (OMP_WAIT_POLICY=PASSIVE,
 * the setting that keeps OpenMP's and OpenBLAS's threads from fighting over
 * two cores) took 25-60 microseconds to wake and join on a 2-core VM, longer
 * than a 128x256x128 product takes on two threads, and a training step runs
 * dozens of such loops one after another; and each thread of an OpenMP
 * team has its fixed share of a loop, so on a busy machine the caller waits
 * for a thread that is not running. Here:
 *
 * - A job is n tasks t = 0..n-1. The caller and the workers claim the next
 *   unclaimed task until none is left, so a worker that is late (asleep,
 *   or not given a core) takes fewer or none, and the caller waits only for
 *   tasks that have started. What a task computes depends on t and n, not
 *   on the thread: the result is the same bit for bit on any number of
 *   threads, and on the caller alone, which is what a call does when the
 *   team is busy with another thread's job (two graphs in two threads, or
 *   a task that starts a job of its own), when threads cannot be started,
 *   after fork in the child until it starts its own team, and once exit
 *   has begun.
 * - Idle workers spin a while (SPIN_NS) before they sleep on a condition
 *   variable, so the loops of one step find them awake.
 *
 * The job's state is one 64-bit word: its number, n and the next task. A
 * task is claimed by a compare-and-swap of that word, which also proves
 * that the job's function and context read before it were the job's own
 * (a job's fields are rewritten only after all its tasks are claimed).
 * Sleeping and waking follow one order: the sleeper counts itself, then
 * reads the word it waits on; the waker changes the word, then reads the
 * count (all sequentially consistent), so one of them sees the other.
 */

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* Most workers, and most tasks a job runs on them (a larger job runs on
 * its caller). */
#define WORKERS_MAX 63
#define TASKS_MAX 0xffff

/* Nanoseconds an idle worker spins before it sleeps, and a caller before
 * it sleeps waiting for the tasks that workers run. A B2 step
 * (784-256-128-10, batch 128) has gaps of a few to a few hundred
 * microseconds between its parallel loops: 200 us keeps the team awake
 * through a step, and costs a sleeping team one wake-up per step. */
#define SPIN_NS 200000
#define WAIT_SPIN_NS 50000
#define YIELD_NS 20000

/* the state word: job number (32 bits), n (16), next task (16) */
#define ST_JOB(s) ((s) >> 32)
#define ST_N(s) ((int)(((s) >> 16) & 0xffff))
#define ST_NEXT(s) ((int)((s)&0xffff))

static struct {
    _Alignas(64) _Atomic uint64_t state;
    _Atomic(nbc_task_fn *) fn;
    _Atomic(void *) ctx;
    _Alignas(64) _Atomic int finished; /* tasks of the current job done */
    _Atomic int waiting;               /* 1 while the caller sleeps on done */
    _Atomic int sleepers;              /* workers asleep on wake (or about to be) */
    _Atomic int stop;                  /* workers return */
    pthread_mutex_t run;               /* held by the thread whose job the team runs */
    pthread_mutex_t lock;              /* for wake and done */
    pthread_cond_t wake, done;
    int count;      /* workers started (under run) */
    int registered; /* the fork and exit handlers: 1 in place, -1 failed */
    bool closed;    /* exit has begun: no more workers */
    pthread_t ids[WORKERS_MAX];
} team = {.run = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One spin turn of a wait that may last `ns`: false once it has (the
 * clock read every 64 turns; *end 0 before the first). After YIELD_NS the
 * thread yields its core at each reading: on an idle machine that returns
 * at once, on a busy one the threads that have work run first. */
static bool spin_on(unsigned i, int64_t *end, int64_t ns)
{
    cpu_relax();
    if (i % 64)
        return true;
    int64_t t = now_ns();
    if (!*end)
        *end = t + ns;
    else if (t > *end - ns + YIELD_NS)
        sched_yield();
    return t < *end;
}

/* Claim and run tasks of the job in state s until none is left */
static void run_tasks(uint64_t s)
{
    uint64_t job = ST_JOB(s);
    while (ST_JOB(s) == job && ST_NEXT(s) < ST_N(s)) {
        nbc_task_fn *fn = atomic_load_explicit(&team.fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&team.ctx, memory_order_relaxed);
        if (!atomic_compare_exchange_weak_explicit(&team.state, &s, s + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue; /* s reloaded */
        int n = ST_N(s);
        fn(ctx, ST_NEXT(s), n);
        if (atomic_fetch_add(&team.finished, 1) + 1 == n && atomic_load(&team.waiting)) {
            pthread_mutex_lock(&team.lock);
            pthread_cond_broadcast(&team.done);
            pthread_mutex_unlock(&team.lock);
        }
        s = atomic_load_explicit(&team.state, memory_order_acquire);
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    uint64_t seen = ST_JOB(atomic_load_explicit(&team.state, memory_order_acquire));
    for (;;) {
        /* wait for a job after `seen`: spin, then sleep */
        int64_t end = 0;
        uint64_t s;
        for (unsigned i = 1;; i++) {
            s = atomic_load_explicit(&team.state, memory_order_acquire);
            if (ST_JOB(s) != seen || atomic_load_explicit(&team.stop, memory_order_relaxed))
                break;
            if (!spin_on(i, &end, SPIN_NS)) {
                atomic_fetch_add(&team.sleepers, 1);
                pthread_mutex_lock(&team.lock);
                while (ST_JOB(s = atomic_load(&team.state)) == seen && !atomic_load(&team.stop))
                    pthread_cond_wait(&team.wake, &team.lock);
                pthread_mutex_unlock(&team.lock);
                atomic_fetch_sub(&team.sleepers, 1);
                break;
            }
        }
        if (atomic_load(&team.stop))
            return NULL;
        seen = ST_JOB(s);
        run_tasks(s);
    }
}

/* Wait until the n tasks of the current job are done */
static void wait_done(int n)
{
    int64_t end = 0;
    for (unsigned i = 1; atomic_load_explicit(&team.finished, memory_order_acquire) < n; i++)
        if (!spin_on(i, &end, WAIT_SPIN_NS)) {
            atomic_store(&team.waiting, 1);
            pthread_mutex_lock(&team.lock);
            while (atomic_load(&team.finished) < n)
                pthread_cond_wait(&team.done, &team.lock);
            pthread_mutex_unlock(&team.lock);
            atomic_store(&team.waiting, 0);
            return;
        }
}

/* Join every worker (under run) */
static void stop_workers(void)
{
    atomic_store(&team.stop, 1);
    pthread_mutex_lock(&team.lock);
    pthread_cond_broadcast(&team.wake);
    pthread_mutex_unlock(&team.lock);
    for (int i = 0; i < team.count; i++)
        pthread_join(team.ids[i], NULL);
    team.count = 0;
    atomic_store(&team.stop, 0);
}

/* At exit: the workers finish and are joined, and later jobs run on their
 * caller (a library unloaded with dlclose leaves no thread behind in it) */
static void at_exit(void)
{
    pthread_mutex_lock(&team.run);
    team.closed = true;
    stop_workers();
    pthread_mutex_unlock(&team.run);
}

/* fork: no job is under way while the process is copied; the child has no
 * workers (it starts its own on its first job) */
static void at_fork_prepare(void)
{
    pthread_mutex_lock(&team.run);
}

static void at_fork_parent(void)
{
    pthread_mutex_unlock(&team.run);
}

static void at_fork_child(void)
{
    team.count = 0;
    atomic_store(&team.sleepers, 0);
    atomic_store(&team.waiting, 0);
    pthread_mutex_init(&team.lock, NULL);
    pthread_cond_init(&team.wake, NULL);
    pthread_cond_init(&team.done, NULL);
    pthread_mutex_init(&team.run, NULL);
}

/* Start workers until there are `want` (under run); the count there is */
static int start_workers(int want)
{
    if (team.closed)
        return 0;
    if (!team.registered) /* without the fork handler a child would wait for workers it lacks */
        team.registered = pthread_atfork(at_fork_prepare, at_fork_parent, at_fork_child) == 0 &&
                                  atexit(at_exit) == 0
                              ? 1
                              : -1;
    if (team.registered < 0)
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    while (team.count < want) {
        /* signals go to the program's own threads, never to a worker */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&team.ids[team.count], NULL, worker_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0)
            break;
        team.count++;
    }
    return team.count;
}

static void run_alone(int n, nbc_task_fn *fn, void *ctx)
{
    for (int t = 0; t < n; t++)
        fn(ctx, t, n);
}

void nbc_parallel(int n, nbc_task_fn *fn, void *ctx)
{
    if (n <= 1 || n > TASKS_MAX || pthread_mutex_trylock(&team.run) != 0) {
        run_alone(n, fn, ctx);
        return;
    }
    int want = n - 1 < WORKERS_MAX ? n - 1 : WORKERS_MAX;
    if (team.count < want && start_workers(want) == 0) {
        pthread_mutex_unlock(&team.run);
        run_alone(n, fn, ctx);
        return;
    }
    /* the previous job's tasks are all claimed and done: no thread reads
     * these fields until the new state is published */
    atomic_store_explicit(&team.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&team.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&team.finished, 0, memory_order_relaxed);
    uint64_t job = ST_JOB(atomic_load_explicit(&team.state, memory_order_relaxed)) + 1;
    uint64_t s = (job & 0xffffffffu) << 32 | (uint64_t)n << 16;
    atomic_store(&team.state, s);
    if (atomic_load(&team.sleepers)) {
        pthread_mutex_lock(&team.lock);
        pthread_cond_broadcast(&team.wake);
        pthread_mutex_unlock(&team.lock);
    }
    run_tasks(s);
    wait_done(n);
    pthread_mutex_unlock(&team.run);
}

int nbc_workers_started(void)
{
    pthread_mutex_lock(&team.run);
    int n = team.count;
    pthread_mutex_unlock(&team.run);
    return n;
}
