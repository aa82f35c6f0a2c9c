/* Per-op timing of a graph (nb_graph_set_profile): for each op, how many
 * times and for how long it was evaluated outside reverse sweeps, and how
 * many of its nodes' derivative rules reverse sweeps ran and for how long.
 * The table is the graph's own (its allocation hook), kept across resets. */

#include <time.h>

#include "internal.h"

/* The table starts with room for this many ops and doubles when full. */
#define NBC_PROF_FIRST 32

struct nbc_prof_entry {
    const void *op; /* the op's definition: the key */
    const char *name;
    uint64_t count[2]; /* NBC_PROF_FWD, NBC_PROF_BWD */
    uint64_t ns[2];
};

uint64_t nbc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t table_bytes(int cap)
{
    return (size_t)cap * sizeof(nbc_prof_entry);
}

/* Room for one more op: false (nothing changed) when out of memory. */
static bool grow(nb_graph *g)
{
    int cap = g->cap_prof > 0 ? 2 * g->cap_prof : NBC_PROF_FIRST;
    nbc_prof_entry *t =
        g->arena.alloc(g->arena.ud, g->prof, table_bytes(g->cap_prof), table_bytes(cap));
    if (!t)
        return false;
    g->prof = t;
    g->cap_prof = cap;
    return true;
}

void nbc_prof_add(nb_graph *g, const nbo_def *op, const char *name, int phase, uint64_t ns)
{
    int i = 0;
    while (i < g->n_prof && g->prof[i].op != op)
        i++;
    if (i == g->n_prof) {
        if (i == g->cap_prof && !grow(g)) {
            nbc_error(g, NB_ERR_NOMEM, "profile", "out of memory adding op '%s' to the profile",
                      name);
            return;
        }
        g->prof[i] = (nbc_prof_entry){.op = op, .name = name};
        g->n_prof++;
    }
    g->prof[i].count[phase]++;
    g->prof[i].ns[phase] += ns;
}

void nbc_prof_free(nb_graph *g)
{
    if (g->prof)
        g->arena.alloc(g->arena.ud, g->prof, table_bytes(g->cap_prof), 0);
    g->prof = NULL;
    g->n_prof = g->cap_prof = 0;
}

nb_status nb_graph_set_profile(nb_graph *g, bool on)
{
    if (!g)
        return NB_ERR_NULL;
    if (on && !g->prof && !grow(g))
        return NB_ERR_NOMEM;
    g->profile = on;
    return NB_OK;
}

bool nb_graph_profiling(const nb_graph *g)
{
    return g && g->profile;
}

int nb_graph_profile(const nb_graph *g, nb_op_profile *out, int cap)
{
    if (!g)
        return 0;
    for (int i = 0; i < g->n_prof && i < cap && out; i++) {
        const nbc_prof_entry *e = &g->prof[i];
        out[i] = (nb_op_profile){
            .op = e->name,
            .fwd_count = e->count[NBC_PROF_FWD],
            .fwd_s = 1e-9 * (double)e->ns[NBC_PROF_FWD],
            .bwd_count = e->count[NBC_PROF_BWD],
            .bwd_s = 1e-9 * (double)e->ns[NBC_PROF_BWD],
        };
    }
    return g->n_prof;
}

void nb_graph_profile_clear(nb_graph *g)
{
    if (g)
        g->n_prof = 0;
}
