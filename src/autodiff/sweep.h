/* Shared by the reverse and forward sweeps. */
#ifndef NABLA_AUTODIFF_SWEEP_H
#define NABLA_AUTODIFF_SWEEP_H

#include "../core/internal.h"
#include "nabla/autodiff.h"
#include "nabla/op.h"
#include "nabla/ops.h"

/* Nodes that y depends on (with only_requires_grad: only those gradients flow
 * through), y included, in a topological order (inputs before users), by an
 * iterative depth-first search: no recursion, so chains of any length work.
 * The array lives in g's arena. NULL with an error recorded on failure. */
nb_tensor **nba_topo(nb_graph *g, nb_tensor *y, bool only_requires_grad, int64_t *n_out,
                     const char *op);

/* Grow an arena array to hold at least need entries of elem bytes (old
 * contents copied; *cap updated). NULL with an error recorded on failure. */
void *nba_grow(nb_graph *g, void *old, int64_t *cap, int64_t need, size_t elem, const char *op);

/* The adj of a tensor whose one-element gradient is held as a number in its
 * sadj (reverse sweeps without create_graph). */
extern nb_tensor nba_scalar_adj;

/* t's gradient from the latest reverse sweep as a tensor (a number held in
 * sadj becomes one); NULL with an error recorded when that fails. */
nb_tensor *nba_adj(nb_graph *g, nb_tensor *t);

/* Tensor of zeros shaped like t (in g). */
nb_tensor *nba_zeros_like(nb_graph *g, const nb_tensor *t);

/* Error unless t is a tensor of g (or a parameter). */
nb_status nba_check_mine(nb_graph *g, const nb_tensor *t, const char *op, const char *what);

#endif
