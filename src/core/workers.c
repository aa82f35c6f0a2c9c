/* The worker threads behind every parallel loop of the library
 * (nbc_parallel): one team per process, started on first use, shared by all
 * graphs.
 *
 * Why not OpenMP's team: a sleeping OpenMP thread (OMP_WAIT_POLICY=PASSIVE,
 * the setting that keeps OpenMP's and OpenBLAS's threads from fighting over
 * two cores) took 25-60 microseconds to wake and join on a 2-core VM, longer
 * than a 128x256x128 product takes on two threads, and a training step runs
 * dozens of such loops one after another. These workers spin a while
 * (SPIN_NS) after each job before they sleep, so the loops of one step find
 * them awake, and they sleep between steps that are far apart.
 *
 * A job is n tasks t = 0..n-1, each run once: the calling thread runs
 * t = 0, w, 2w, ... and worker i runs t = i, i + w, ..., with w threads in
 * all (w = n unless fewer workers could be started). The task numbers, not
 * the threads, decide what each task does, so a job gives the same result
 * bit for bit on any number of threads, and on the caller alone: that is
 * what a call does when the team is busy with another thread's job (two
 * graphs in two threads, or a task that starts a job of its own), when
 * threads cannot be started, after fork in the child until it starts its
 * own team, and after exit has begun.
 *
 * Handing a job over: the caller writes the job, then bumps each needed
 * worker's `go` counter (its own cache line); a worker spinning on it
 * starts within a microsecond, a sleeping one is woken through its
 * condition variable. The caller then runs its own tasks and waits for
 * `pending` to reach 0, spinning a while, then sleeping. Both sleeps use
 * the same order: the sleeper sets its flag, then reads the counter; the
 * waker changes the counter, then reads the flag (all sequentially
 * consistent), so one of the two always sees the other.
 */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* Most workers; a job of more tasks runs them in turns. */
#define WORKERS_MAX 63

/* Nanoseconds an idle worker spins before it sleeps, and a caller before
 * it sleeps waiting for the workers. A B2 step (784-256-128-10, batch 128)
 * has gaps of a few to a few hundred microseconds between its parallel
 * loops (the optimizer, the loader and the graph's reset run on one
 * thread): 200 us keeps the team awake through a step on 2 cores and
 * costs a sleeping team one wake-up per step. */
#define SPIN_NS 200000
#define WAIT_SPIN_NS 50000

typedef struct worker {
    _Alignas(64) _Atomic uint64_t go; /* jobs handed to this worker so far */
    _Atomic int sleeping;             /* 1 while it waits on wake (or is about to) */
    int index;                        /* its first task, 1..WORKERS_MAX */
    pthread_t id;
    pthread_mutex_t lock;
    pthread_cond_t wake;
} worker;

static struct {
    pthread_mutex_t run; /* held by the thread whose job the team runs */
    pthread_mutex_t done_lock;
    pthread_cond_t done;
    _Atomic int pending; /* workers not yet through the current job */
    _Atomic int waiting; /* 1 while the caller sleeps on done */
    _Atomic int stop;    /* workers return */
    int count;           /* workers started (under run) */
    int registered;      /* the fork and exit handlers: 1 in place, -1 failed */
    bool closed;         /* exit has begun: no more workers */
    /* the current job: written by its caller before any go is bumped, read
     * by the workers until they decrement pending */
    nbc_task_fn *fn;
    void *ctx;
    int n, width;
} team = {.run = PTHREAD_MUTEX_INITIALIZER,
          .done_lock = PTHREAD_MUTEX_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static worker workers[WORKERS_MAX];

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

/* Spin until *v differs from old or `ns` nanoseconds pass (the clock read
 * every 64 turns); true when it differs. */
static bool spin_until(_Atomic uint64_t *v, uint64_t old, int64_t ns)
{
    int64_t end = 0;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(v, memory_order_acquire) != old ||
            atomic_load_explicit(&team.stop, memory_order_relaxed))
            return true;
        cpu_relax();
        if (i % 64 == 0) {
            int64_t t = now_ns();
            if (!end)
                end = t + ns;
            else if (t >= end)
                return false;
        }
    }
}

/* The worker's next job count after `seen`, or `seen` when it is to stop */
static uint64_t wait_go(worker *w, uint64_t seen)
{
    if (!spin_until(&w->go, seen, SPIN_NS)) {
        atomic_store(&w->sleeping, 1);
        pthread_mutex_lock(&w->lock);
        while (atomic_load(&w->go) == seen && !atomic_load(&team.stop))
            pthread_cond_wait(&w->wake, &w->lock);
        pthread_mutex_unlock(&w->lock);
        atomic_store(&w->sleeping, 0);
    }
    return atomic_load(&team.stop) ? seen : atomic_load_explicit(&w->go, memory_order_acquire);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t go = wait_go(w, seen);
        if (go == seen)
            return NULL;
        seen = go;
        for (int t = w->index; t < team.n; t += team.width)
            team.fn(team.ctx, t, team.n);
        if (atomic_fetch_sub(&team.pending, 1) == 1 && atomic_load(&team.waiting)) {
            pthread_mutex_lock(&team.done_lock);
            pthread_cond_signal(&team.done);
            pthread_mutex_unlock(&team.done_lock);
        }
    }
}

/* Wait until every worker is through the current job */
static void wait_done(void)
{
    int64_t end = 0;
    for (unsigned i = 1; atomic_load_explicit(&team.pending, memory_order_acquire); i++) {
        cpu_relax();
        if (i % 64 == 0) {
            int64_t t = now_ns();
            if (!end) {
                end = t + WAIT_SPIN_NS;
            } else if (t >= end) {
                atomic_store(&team.waiting, 1);
                pthread_mutex_lock(&team.done_lock);
                while (atomic_load(&team.pending))
                    pthread_cond_wait(&team.done, &team.done_lock);
                pthread_mutex_unlock(&team.done_lock);
                atomic_store(&team.waiting, 0);
                return;
            }
        }
    }
}

/* Join every worker (under run) */
static void stop_workers(void)
{
    atomic_store(&team.stop, 1);
    for (int i = 0; i < team.count; i++) {
        pthread_mutex_lock(&workers[i].lock);
        pthread_cond_signal(&workers[i].wake);
        pthread_mutex_unlock(&workers[i].lock);
    }
    for (int i = 0; i < team.count; i++) {
        pthread_join(workers[i].id, NULL);
        pthread_cond_destroy(&workers[i].wake);
        pthread_mutex_destroy(&workers[i].lock);
    }
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
    atomic_store(&team.pending, 0);
    atomic_store(&team.waiting, 0);
    pthread_mutex_init(&team.done_lock, NULL);
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
        worker *w = &workers[team.count];
        w->index = team.count + 1;
        atomic_store(&w->go, 0);
        atomic_store(&w->sleeping, 0);
        if (pthread_mutex_init(&w->lock, NULL) != 0)
            break;
        if (pthread_cond_init(&w->wake, NULL) != 0) {
            pthread_mutex_destroy(&w->lock);
            break;
        }
        /* signals go to the program's own threads, never to a worker */
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int rc = pthread_create(&w->id, NULL, worker_main, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
            pthread_cond_destroy(&w->wake);
            pthread_mutex_destroy(&w->lock);
            break;
        }
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
    if (n <= 1 || pthread_mutex_trylock(&team.run) != 0) {
        run_alone(n, fn, ctx);
        return;
    }
    int width = n <= WORKERS_MAX ? n : WORKERS_MAX + 1;
    if (team.count < width - 1)
        width = 1 + start_workers(width - 1);
    if (width == 1) {
        pthread_mutex_unlock(&team.run);
        run_alone(n, fn, ctx);
        return;
    }
    team.fn = fn;
    team.ctx = ctx;
    team.n = n;
    team.width = width;
    atomic_store(&team.pending, width - 1);
    for (int i = 0; i < width - 1; i++) {
        worker *w = &workers[i];
        atomic_fetch_add(&w->go, 1);
        if (atomic_load(&w->sleeping)) {
            pthread_mutex_lock(&w->lock);
            pthread_cond_signal(&w->wake);
            pthread_mutex_unlock(&w->lock);
        }
    }
    for (int t = 0; t < n; t += width)
        fn(ctx, t, n);
    wait_done();
    pthread_mutex_unlock(&team.run);
}

int nbc_workers_started(void)
{
    pthread_mutex_lock(&team.run);
    int n = team.count;
    pthread_mutex_unlock(&team.run);
    return n;
}
