/* Shared by the reverse and forward sweeps. */
#ifndef NABLA_AUTODIFF_SWEEP_H
#define NABLA_AUTODIFF_SWEEP_H

#include "../core/internal.h"

/* Nodes that y depends on (with only_needs_grad: only those gradients flow
 * through), y included, in a topological order (inputs before users), by an
 * iterative depth-first search: no recursion, so chains of any length work.
 * The array lives in g's arena. NULL with an error recorded on failure. */
nb_tensor **nba_topo(nb_graph *g, nb_tensor *y, bool only_needs_grad, int64_t *n_out,
                     const char *op);

/* Tensor of zeros shaped like t (in g). */
nb_tensor *nba_zeros_like(nb_graph *g, const nb_tensor *t);

/* Error unless t is a tensor of g (or a parameter). */
nb_status nba_check_mine(nb_graph *g, const nb_tensor *t, const char *op, const char *what);

#endif
