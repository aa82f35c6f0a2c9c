/* Forward mode: tangents pushed through the recorded graph in creation
 * (topological) order with each op's JVP rule; full Jacobians either way. */

#include "sweep.h"

nb_status nb_jvp(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *tangents, int n,
                 nb_tensor **y_tangent)
{
    if (!g)
        return NB_ERR_NULL;
    if (!y_tangent || n < 0 || (n > 0 && (!xs || !tangents)))
        return nbc_error(g, NB_ERR_NULL, "jvp", "need y_tangent, and xs and tangents for n > 0");
    *y_tangent = NULL;
    if (nba_check_mine(g, y, "jvp", "y") != NB_OK)
        return g->status;
    char b0[160], b1[160], what[32];
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "xs[%d]", i);
        if (nba_check_mine(g, xs[i], "jvp", what) != NB_OK)
            return g->status;
        snprintf(what, sizeof what, "tangents[%d]", i);
        if (nba_check_mine(g, tangents[i], "jvp", what) != NB_OK)
            return g->status;
        if (tangents[i]->dtype != xs[i]->dtype || !nbc_same_shape(tangents[i], xs[i]))
            return nbc_error(g, NB_ERR_SHAPE, "jvp", "tangents[%d] %s%s does not match xs[%d] %s%s",
                             i, nb_dtype_name(tangents[i]->dtype),
                             nbc_shp(tangents[i], b0, sizeof b0), i, nb_dtype_name(xs[i]->dtype),
                             nbc_shp(xs[i], b1, sizeof b1));
    }

    int64_t n_order;
    nb_tensor **order = nba_topo(g, y, false, &n_order, "jvp");
    if (!order)
        return g->status;
    for (int64_t k = 0; k < n_order; k++)
        order[k]->tan = NULL;
    for (int i = 0; i < n; i++)
        xs[i]->tan = tangents[i];

    bool was_recording = g->recording;
    g->recording = false;
    nb_status st = NB_OK;
    for (int64_t k = 0; k < n_order && st == NB_OK; k++) {
        nb_tensor *node = order[k];
        /* leaves, ops without a derivative, and the given inputs keep theirs */
        if (node->tan || !node->op || node->n_inputs == 0 || !node->op->jvp)
            continue;
        bool any = false;
        for (int i = 0; i < node->n_inputs; i++)
            any |= node->inputs[i]->tan != NULL;
        if (!any)
            continue;
        nb_tensor **tans = nbc_alloc(g, (size_t)node->n_inputs * sizeof *tans, "jvp");
        if (!tans) {
            st = g->status;
            break;
        }
        for (int i = 0; i < node->n_inputs && st == NB_OK; i++) {
            nb_tensor *in = node->inputs[i];
            tans[i] = in->tan ? in->tan : nba_zeros_like(g, in);
            if (!tans[i])
                st = g->status;
        }
        if (st != NB_OK)
            break;
        nb_tensor *t = node->op->jvp(g, node, tans);
        if (!t) {
            st = g->status; /* NB_OK: a zero tangent */
            continue;
        }
        if (t->dtype != node->dtype || !nbc_same_shape(t, node)) {
            st = nbc_error(g, NB_ERR_SHAPE, node->op->name,
                           "tangent rule returned %s%s for a result of %s%s",
                           nb_dtype_name(t->dtype), nbc_shp(t, b0, sizeof b0),
                           nb_dtype_name(node->dtype), nbc_shp(node, b1, sizeof b1));
            break;
        }
        node->tan = t;
    }
    g->recording = was_recording;
    if (st != NB_OK)
        return st;
    *y_tangent = y->tan ? y->tan : nba_zeros_like(g, y);
    return *y_tangent ? NB_OK : g->status;
}

/* Copy the elements of src into J at J[i*stride_i + j*stride_j] over src's
 * flat index i (the other index fixed by base). */
static void scatter_line(nb_tensor *J, int64_t base, int64_t step, const nb_tensor *src)
{
    for (int64_t i = 0; i < src->size; i++) {
        double v = nb_tensor_get(src, i);
        if (J->dtype == NB_F32)
            ((float *)J->data)[base + i * step] = (float)v;
        else
            ((double *)J->data)[base + i * step] = v;
    }
}

nb_tensor *nb_jacobian(nb_graph *g, nb_tensor *y, nb_tensor *x, int mode)
{
    if (!g)
        return NULL;
    if (nba_check_mine(g, y, "jacobian", "y") != NB_OK ||
        nba_check_mine(g, x, "jacobian", "x") != NB_OK)
        return NULL;
    if (!(mode & (NB_FORWARD | NB_REVERSE))) {
        nbc_error(g, NB_ERR_ARG, "jacobian", "mode must be NB_FORWARD or NB_REVERSE");
        return NULL;
    }
    if (y->rank + x->rank > NB_MAX_RANK) {
        nbc_error(g, NB_ERR_RANK, "jacobian", "rank %d + %d of the Jacobian exceeds %d", y->rank,
                  x->rank, NB_MAX_RANK);
        return NULL;
    }
    bool forward = (mode & NB_FORWARD) && (!(mode & NB_REVERSE) || x->size < y->size);
    int64_t shape[NB_MAX_RANK];
    memcpy(shape, y->shape, (size_t)y->rank * sizeof *shape);
    memcpy(shape + y->rank, x->shape, (size_t)x->rank * sizeof *shape);
    nb_tensor *J = nb_zeros(g, y->dtype, y->rank + x->rank, shape);
    if (!J)
        return NULL;

    /* each sweep's scratch is released before the next one */
    int64_t lines = forward ? x->size : y->size;
    for (int64_t k = 0; k < lines; k++) {
        nbc_arena_pos pos = nbc_arena_tell(&g->arena);
        nb_tensor *res = NULL;
        if (forward) {
            nb_tensor *t = nba_zeros_like(g, x);
            if (t)
                nb_tensor_set(t, k, 1.0);
            if (!t || nb_jvp(g, y, &x, &t, 1, &res) != NB_OK)
                return NULL;
            scatter_line(J, k, x->size, res); /* column k: J[i, k] */
        } else {
            nb_tensor *seed = nba_zeros_like(g, y);
            if (seed)
                nb_tensor_set(seed, k, 1.0);
            if (!seed || nb_grad(g, y, seed, &x, 1, &res, false) != NB_OK)
                return NULL;
            scatter_line(J, k * x->size, 1, res); /* row k: J[k, j] */
        }
        nbc_arena_release(&g->arena, pos);
    }
    return J;
}
