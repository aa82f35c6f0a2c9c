/* Helpers shared by the files of src/nn (prefix nbn_). Not installed. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "../core/internal.h"
#include "nabla/nn.h"

/* A rank-0 constant of x's dtype (NULL when x is NULL). */
nb_tensor *nbn_const(nb_graph *g, const nb_tensor *x, double v);
/* The positive part where(x <= 0, 0, x): derivative 1(x > 0), NaN kept. */
nb_tensor *nbn_pos(nb_graph *g, nb_tensor *x);
/* x clamped to [lo, hi] as where(x >= hi, hi, where(x <= lo, lo, x)):
 * derivative 1(lo < x < hi), 0 at the bounds, NaN kept. */
nb_tensor *nbn_clamp(nb_graph *g, nb_tensor *x, double lo, double hi);
/* Sum or mean of every element of x as a rank-0 tensor. */
nb_tensor *nbn_reduce_all(nb_graph *g, nb_tensor *x, nb_reduction r, const char *op);

#endif
