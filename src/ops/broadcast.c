/* Broadcasting: result shapes by NumPy rules and walking plans for kernels;
 * the compositions that derivative rules share. */

#include "kernels.h"

int nbk_axis(int axis, int rank)
{
    if (axis < 0)
        axis += rank;
    return axis >= 0 && axis < rank ? axis : -1;
}

int nbk_check_axis(nb_graph *g, const char *op, const nb_tensor *x, int64_t axis, int rank)
{
    int a = axis < -NB_MAX_RANK - 1 || axis > NB_MAX_RANK ? -1 : nbk_axis((int)axis, rank);
    if (a < 0) {
        char b[160];
        if (rank == x->rank)
            nbc_error(g, NB_ERR_ARG, op, "axis %lld is out of range for %s (rank %d)",
                      (long long)axis, nbc_shp(x, b, sizeof b), x->rank);
        else
            nbc_error(g, NB_ERR_ARG, op, "axis %lld is out of range for a new axis of %s (%d..%d)",
                      (long long)axis, nbc_shp(x, b, sizeof b), -rank, rank - 1);
    }
    return a;
}

nb_status nbk_broadcast_shape(nb_graph *g, const char *op, nb_tensor *const *in, int n, int *rank,
                              int64_t *shape)
{
    /* the common case first: every input has the same shape */
    bool same = true;
    for (int k = 1; k < n && same; k++)
        same = nbc_same_shape(in[k], in[0]);
    if (same) {
        *rank = in[0]->rank;
        memcpy(shape, in[0]->shape, (size_t)in[0]->rank * sizeof *shape);
        return NB_OK;
    }
    int r = 0;
    for (int k = 0; k < n; k++)
        if (in[k]->rank > r)
            r = in[k]->rank;
    for (int d = 0; d < r; d++) {
        int64_t size = 1;
        for (int k = 0; k < n; k++) {
            int kd = d - (r - in[k]->rank);
            if (kd < 0)
                continue;
            int64_t s = in[k]->shape[kd];
            if (s == size || s == 1)
                continue;
            if (size != 1) {
                char b0[160], b1[160];
                return nbc_error(g, NB_ERR_SHAPE, op,
                                 "%s and %s do not broadcast (axis %d: %lld vs %lld)",
                                 nbc_shp(in[0], b0, sizeof b0), nbc_shp(in[k], b1, sizeof b1), d,
                                 (long long)size, (long long)s);
            }
            size = s;
        }
        shape[d] = size;
    }
    *rank = r;
    return NB_OK;
}

void nbk_plan_make(nbk_plan *p, const nb_tensor *out, nb_tensor *const *in, int n)
{
    /* no broadcasting: one contiguous row */
    bool flat = true;
    for (int k = 0; k < n && flat; k++)
        flat = in[k]->size == out->size;
    if (flat) {
        p->n_in = n;
        p->rank = 1;
        p->shape[0] = p->inner = out->size;
        p->outer = 1;
        for (int k = 0; k < n; k++)
            p->stride[k][0] = 1;
        return;
    }
    /* full-rank strides, 0 on broadcast axes */
    int r = out->rank;
    int64_t st[3][NB_MAX_RANK];
    for (int k = 0; k < n; k++) {
        int64_t s = 1;
        for (int d = r - 1; d >= 0; d--) {
            int kd = d - (r - in[k]->rank);
            int64_t size = kd >= 0 ? in[k]->shape[kd] : 1;
            st[k][d] = (size == 1 && out->shape[d] != 1) ? 0 : s;
            s *= size;
        }
    }
    /* merge axis d into the axis after it when every operand is contiguous
     * across the two; drop axes of size 1 */
    p->n_in = n;
    p->rank = 0;
    for (int d = 0; d < r; d++) {
        if (out->shape[d] == 1)
            continue;
        int q = p->rank;
        if (q > 0) {
            bool merge = true;
            for (int k = 0; k < n; k++)
                if (p->stride[k][q - 1] != st[k][d] * out->shape[d])
                    merge = false;
            if (merge) {
                p->shape[q - 1] *= out->shape[d];
                for (int k = 0; k < n; k++)
                    p->stride[k][q - 1] = st[k][d];
                continue;
            }
        }
        p->shape[q] = out->shape[d];
        for (int k = 0; k < n; k++)
            p->stride[k][q] = st[k][d];
        p->rank++;
    }
    if (p->rank == 0) {
        p->rank = 1;
        p->shape[0] = out->size == 0 ? 0 : 1;
        for (int k = 0; k < n; k++)
            p->stride[k][0] = 1;
    }
    p->inner = p->shape[p->rank - 1];
    p->outer = 1;
    for (int d = 0; d < p->rank - 1; d++)
        p->outer *= p->shape[d];
    if (p->inner == 0)
        p->outer = 0;
}

nb_tensor *nbk_unbroadcast(nb_graph *g, nb_tensor *grad, const nb_tensor *x)
{
    if (!grad || nbc_same_shape(grad, x))
        return grad;
    return nb_sum_to(g, grad, x->rank, x->shape);
}

nb_tensor *nbk_const(nb_graph *g, const nb_tensor *like, double v)
{
    return nbc_const(g, like->dtype, v);
}

typedef struct rows_job {
    const nbk_plan *p;
    nb_tensor *out;
    nbk_rows_fn fn;
} rows_job;

/* Task t of T: a share of the rows, or of every row's columns when there
 * are fewer rows than tasks */
static void rows_task(void *ctx, int t, int T)
{
    const rows_job *j = ctx;
    const nbk_plan *p = j->p;
    if (p->outer >= T) {
        j->fn(p, j->out, p->outer * t / T, p->outer * (t + 1) / T, 0, p->inner);
    } else {
        for (int64_t r = 0; r < p->outer; r++)
            j->fn(p, j->out, r, r + 1, p->inner * t / T, p->inner * (t + 1) / T);
    }
}

void nbk_run_rows(nb_graph *g, nb_tensor *out, int n_in, nbk_rows_fn fn)
{
    if (out->size == 0)
        return;
    nbk_plan p;
    nbk_plan_make(&p, out, out->inputs, n_in);
    int nt = nbc_threads_for(g, out->size);
    if (nt == 1) {
        fn(&p, out, 0, p.outer, 0, p.inner);
        return;
    }
    rows_job j = {&p, out, fn};
    nbc_parallel(nt, rows_task, &j);
}
