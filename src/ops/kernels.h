/* Helpers shared by the op files: broadcasting plans, dtype dispatch,
 * threaded loops, and small compositions used by derivative rules. */
#ifndef NABLA_OPS_KERNELS_H
#define NABLA_OPS_KERNELS_H

#include "table.h"

/* A loop whose iterations are independent (elementwise work: each output
 * element from the same index of the inputs), vectorised even where -O2's
 * cost model would leave it scalar (meson passes -fopenmp-simd). Never on
 * a reduction: marking one would let the compiler reorder its sum. */
#define NBK_SIMD _Pragma("omp simd")

/* OpenMP pragmas (omp simd) where the build has OpenMP; loops run on
 * threads through nbc_parallel (src/core/workers.c). */
#ifdef _OPENMP
#define NBK_PRAGMA(x) _Pragma(#x)
#else
#define NBK_PRAGMA(x)
#endif

/* ------------------------------------------------------------ broadcasting */

/* Broadcast shape of n tensors by NumPy rules into rank/shape; records a
 * shape error under op and returns it when they do not broadcast. */
nb_status nbk_broadcast_shape(nb_graph *g, const char *op, nb_tensor *const *in, int n, int *rank,
                              int64_t *shape);

/* How to walk up to three broadcast inputs along an output: after merging
 * axes that are contiguous in every operand, element strides per input
 * (0 on broadcast axes). rank >= 1; the last axis is the inner loop. */
typedef struct nbk_plan {
    int rank;
    int n_in;
    int64_t shape[NB_MAX_RANK];
    int64_t stride[3][NB_MAX_RANK];
    int64_t inner; /* shape[rank-1] */
    int64_t outer; /* product of the other axes */
} nbk_plan;

void nbk_plan_make(nbk_plan *p, const nb_tensor *out, nb_tensor *const *in, int n);

/* Step the offsets from one outer row to the next (odometer over the
 * outer axes, held in idx). */
static inline void nbk_plan_next(const nbk_plan *p, int64_t *idx, int64_t *off)
{
    for (int d = p->rank - 2; d >= 0; d--) {
        idx[d]++;
        for (int k = 0; k < p->n_in; k++)
            off[k] += p->stride[k][d];
        if (idx[d] < p->shape[d])
            return;
        for (int k = 0; k < p->n_in; k++)
            off[k] -= p->stride[k][d] * p->shape[d];
        idx[d] = 0;
    }
}

/* The row index tuple of outer row `row`. */
static inline void nbk_plan_index(const nbk_plan *p, int64_t row, int64_t *idx)
{
    for (int d = p->rank - 2; d >= 0; d--) {
        idx[d] = row % p->shape[d];
        row /= p->shape[d];
    }
}

/* Fill rows [r0,r1) of out, columns [j0,j1) of each row. */
typedef void (*nbk_rows_fn)(const nbk_plan *p, nb_tensor *out, int64_t r0, int64_t r1, int64_t j0,
                            int64_t j1);

/* Plan out over its first n_in inputs and run fn over all of it: split by
 * rows over the graph's threads when out is large enough, by columns when
 * there are fewer rows than threads. Nothing runs for an empty out. */
void nbk_run_rows(nb_graph *g, nb_tensor *out, int n_in, nbk_rows_fn fn);

/* Element offsets of each input at the start of outer row `row`. */
static inline void nbk_plan_offsets(const nbk_plan *p, int64_t row, int64_t *off)
{
    for (int k = 0; k < p->n_in; k++)
        off[k] = 0;
    if (p->rank == 1)
        return; /* one row */
    int64_t idx[NB_MAX_RANK];
    nbk_plan_index(p, row, idx);
    for (int k = 0; k < p->n_in; k++)
        for (int d = 0; d < p->rank - 1; d++)
            off[k] += idx[d] * p->stride[k][d];
}

/* ------------------------------------------------- reductions, as numbers */

/* dst = the sum (max false) or maximum (max true) of @p data, a non-empty
 * array of x's dtype and shape, over the axes in @p mask: the numbers
 * nb_sum and nb_max give for that shape, bit for bit, on any number of
 * threads (reduce.c). dst holds one element per slice. */
void nbk_reduce_into(nb_graph *g, const nb_tensor *x, const void *data, uint64_t mask, bool max,
                     void *dst);
/* The sum and maximum of one contiguous row of n >= 1 elements in the
 * order nb_sum and nb_max keep for a reduced innermost axis (pairwise). */
float nbk_sum_row_f32(const float *x, int64_t n);
double nbk_sum_row_f64(const double *x, int64_t n);
float nbk_max_row_f32(const float *x, int64_t n);
double nbk_max_row_f64(const double *x, int64_t n);

/* ----------------------------------------------------- rule compositions */

/* Sum a gradient back to the shape of input x (identity when equal). */
nb_tensor *nbk_unbroadcast(nb_graph *g, nb_tensor *grad, const nb_tensor *x);
/* A rank-0 constant of like's dtype. */
nb_tensor *nbk_const(nb_graph *g, const nb_tensor *like, double v);

/* Normalise an axis (negative counts from the end) against rank; -1 if out of range. */
int nbk_axis(int axis, int rank);
/* The same for an axis of x, recording NB_ERR_ARG under op when it is out of
 * range. rank is rank(x), or rank(x) + 1 for an axis to insert. */
int nbk_check_axis(nb_graph *g, const char *op, const nb_tensor *x, int64_t axis, int rank);

#endif
