/* Graph lifetime and settings. */

#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

/* Chunks of 1 MiB: large enough that small graphs live in one chunk. */
#define NB_CHUNK_SIZE ((size_t)1 << 20)

void *nb_default_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    (void)ud;
    (void)old_size;
    if (new_size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, new_size);
}

nb_graph *nb_graph_new_alloc(nb_alloc_fn alloc, void *ud)
{
    if (!alloc)
        return NULL;
    nb_graph *g = alloc(ud, NULL, 0, sizeof *g);
    if (!g)
        return NULL;
    memset(g, 0, sizeof *g);
    nbc_arena_init(&g->arena, alloc, ud, NB_CHUNK_SIZE);
    g->recording = true;
    g->threads = 1;
    nb_error_clear(&g->err);
    return g;
}

nb_graph *nb_graph_new(void)
{
    return nb_graph_new_alloc(nb_default_alloc, NULL);
}

void nb_graph_reset(nb_graph *g)
{
    if (!g)
        return;
    nbc_arena_reset(&g->arena);
    nb_graph_clear_error(g);
    g->evals = 0;
}

void nb_graph_free(nb_graph *g)
{
    if (!g)
        return;
    nbc_arena_free(&g->arena);
    nbc_prof_free(g);
    g->arena.alloc(g->arena.ud, g, sizeof *g, 0);
}

void nb_graph_set_recording(nb_graph *g, bool on)
{
    if (g)
        g->recording = on;
}

bool nb_graph_recording(const nb_graph *g)
{
    return g && g->recording;
}

void nb_graph_set_check_finite(nb_graph *g, bool on)
{
    if (g)
        g->check_finite = on;
}

void nb_graph_set_threads(nb_graph *g, int n)
{
    if (g)
        g->threads = n < 1 ? 1 : n;
}

int nb_graph_threads(const nb_graph *g)
{
    return g ? g->threads : 1;
}

uint64_t nb_graph_evals(const nb_graph *g)
{
    return g ? g->evals : 0;
}

size_t nb_graph_bytes(const nb_graph *g)
{
    return g ? g->arena.total : 0;
}

/* Loops shorter than this run on one thread: below it the cost of waking a
 * team exceeds the work. */
#define NB_PARALLEL_MIN 32768

int nbc_threads_for(const nb_graph *g, int64_t n)
{
    if (!g || g->threads <= 1 || n < NB_PARALLEL_MIN)
        return 1;
    return g->threads;
}

void *nbc_alloc_failed(nb_graph *g, size_t n, const char *op)
{
    nbc_error(g, NB_ERR_NOMEM, op, "out of memory allocating %zu bytes", n);
    return NULL;
}

uint64_t nbc_next_sweep(void)
{
    static _Atomic uint64_t counter;
    return atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1;
}
