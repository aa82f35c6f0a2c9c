/* Forward mode: tangents pushed through the recorded graph in creation
 * (topological) order with each op's JVP rule; full Jacobians either way.
 *
 * The tangents forward mode makes up for inputs that have none are zeros
 * flagged NB_T_ZERO: the built-in rules skip the terms they would scale
 * (matmul, add, mul, ...), while the data is real zeros for any rule that
 * reads it (registered ops get zeros, as op.h promises). Flagged tensors
 * never reach the caller, and a caller's tangent is never flagged. */

#include "sweep.h"

/* What a sweep over the graph of y needs besides the tangents at xs: the
 * order, and the tangent each node starts with (a flagged zero for the
 * nodes whose tangent is known to be zero and that feed one that is not,
 * NULL otherwise). Made once, used for any number of sweeps. */
typedef struct fwd_plan {
    nb_tensor **order;
    nb_tensor **start;
    int64_t n;
} fwd_plan;

static nb_tensor *zero_tangent(nb_graph *g, const nb_tensor *t)
{
    nb_tensor *z = nba_zeros_like(g, t);
    if (z)
        z->flags |= NB_T_ZERO;
    return z;
}

static bool is_zero(const nb_tensor *tan)
{
    return !tan || (tan->flags & NB_T_ZERO);
}

static bool differentiable(const nb_tensor *node)
{
    return node->op && node->n_inputs > 0 && node->op->jvp;
}

/* Which nodes can carry a tangent from xs (marked by pointing their tan at
 * a sentinel), and a zero for each input of those that cannot. */
static nb_status plan_make(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, int n, fwd_plan *p)
{
    p->order = nba_topo(g, y, false, &p->n, "jvp");
    if (!p->order)
        return g->err.status;
    p->start = nbc_alloc(g, (size_t)p->n * sizeof *p->start, "jvp");
    if (!p->start)
        return g->err.status;
    nb_tensor given = {0}, live = {0}; /* sentinels, only their addresses are used */
    for (int64_t k = 0; k < p->n; k++)
        p->order[k]->tan = NULL;
    for (int i = 0; i < n; i++)
        xs[i]->tan = &given;
    for (int64_t k = 0; k < p->n; k++) {
        nb_tensor *node = p->order[k];
        if (node->tan || !differentiable(node))
            continue;
        for (int i = 0; i < node->n_inputs; i++)
            if (node->inputs[i]->tan == &given || node->inputs[i]->tan == &live) {
                node->tan = &live;
                break;
            }
    }
    nb_status st = NB_OK;
    for (int64_t k = 0; k < p->n && st == NB_OK; k++) {
        nb_tensor *node = p->order[k];
        if (node->tan != &live)
            continue;
        for (int i = 0; i < node->n_inputs; i++) {
            nb_tensor *in = node->inputs[i];
            if (!in->tan && !(in->tan = zero_tangent(g, in))) {
                st = g->err.status;
                break;
            }
        }
    }
    for (int64_t k = 0; k < p->n; k++) {
        nb_tensor *t = p->order[k]->tan;
        p->start[k] = t == &given || t == &live ? NULL : t;
        p->order[k]->tan = NULL;
    }
    for (int i = 0; i < n; i++)
        xs[i]->tan = NULL;
    return st;
}

/* One sweep: y->tan is left at y's tangent (NULL or flagged when zero). */
static nb_status sweep(nb_graph *g, const fwd_plan *p, nb_tensor *const *xs,
                       nb_tensor *const *tangents, int n)
{
    char b0[160], b1[160];
    for (int64_t k = 0; k < p->n; k++)
        p->order[k]->tan = p->start[k];
    for (int i = 0; i < n; i++)
        xs[i]->tan = tangents[i];

    bool was_recording = g->recording;
    g->recording = false;
    nb_status st = NB_OK;
    for (int64_t k = 0; k < p->n && st == NB_OK; k++) {
        nb_tensor *node = p->order[k];
        /* leaves, ops without a derivative, the given inputs and the nodes
         * known to have a zero tangent keep theirs */
        if (node->tan || !differentiable(node))
            continue;
        bool any = false;
        for (int i = 0; i < node->n_inputs; i++)
            any |= !is_zero(node->inputs[i]->tan);
        if (!any)
            continue;
        nb_tensor **tans = nbc_alloc(g, (size_t)node->n_inputs * sizeof *tans, "jvp");
        if (!tans) {
            st = g->err.status;
            break;
        }
        for (int i = 0; i < node->n_inputs; i++) {
            nb_tensor *in = node->inputs[i];
            /* a rule returned zero for in: its users get a zero after all */
            if (!in->tan && !(in->tan = zero_tangent(g, in))) {
                st = g->err.status;
                break;
            }
            tans[i] = in->tan;
        }
        if (st != NB_OK)
            break;
        bool check = g->check_finite;
        g->check_finite = false; /* the rule's result is checked, not its ops */
        nb_tensor *t = node->op->jvp(g, node, tans);
        g->check_finite = check;
        if (!t) {
            st = g->err.status; /* NB_OK: a zero tangent */
            continue;
        }
        if (t->dtype != node->dtype || !nbc_same_shape(t, node)) {
            st = nbc_error(g, NB_ERR_SHAPE, node->op->name,
                           "tangent rule returned %s%s for a result of %s%s",
                           nb_dtype_name(t->dtype), nbc_shp(t, b0, sizeof b0),
                           nb_dtype_name(node->dtype), nbc_shp(node, b1, sizeof b1));
            break;
        }
        int64_t bad = check ? nbc_first_nonfinite(t) : -1;
        if (bad >= 0) {
            st = nbc_error(g, NB_ERR_NONFINITE, node->op->name, "tangent rule gives %s",
                           nbc_nonfinite_at(t, bad, b0, sizeof b0));
            break;
        }
        node->tan = t;
    }
    g->recording = was_recording;
    return st;
}

nb_status nb_jvp(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *tangents, int n,
                 nb_tensor **y_tangent)
{
    if (!g)
        return NB_ERR_NULL;
    if (!y_tangent || n < 0 || (n > 0 && (!xs || !tangents)))
        return nbc_error(g, NB_ERR_NULL, "jvp", "need y_tangent, and xs and tangents for n > 0");
    *y_tangent = NULL;
    if (nba_check_mine(g, y, "jvp", "y") != NB_OK)
        return g->err.status;
    char b0[160], b1[160], what[32];
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof what, "xs[%d]", i);
        if (nba_check_mine(g, xs[i], "jvp", what) != NB_OK)
            return g->err.status;
        snprintf(what, sizeof what, "tangents[%d]", i);
        if (nba_check_mine(g, tangents[i], "jvp", what) != NB_OK)
            return g->err.status;
        if (tangents[i]->dtype != xs[i]->dtype || !nbc_same_shape(tangents[i], xs[i]))
            return nbc_error(g, NB_ERR_SHAPE, "jvp", "tangents[%d] %s%s does not match xs[%d] %s%s",
                             i, nb_dtype_name(tangents[i]->dtype),
                             nbc_shp(tangents[i], b0, sizeof b0), i, nb_dtype_name(xs[i]->dtype),
                             nbc_shp(xs[i], b1, sizeof b1));
    }

    fwd_plan plan;
    if (plan_make(g, y, xs, n, &plan) != NB_OK || sweep(g, &plan, xs, tangents, n) != NB_OK)
        return g->err.status;
    nb_tensor *t = y->tan;
    if (is_zero(t)) {
        t = nba_zeros_like(g, y);
    } else {
        /* a rule may pass a tangent on as it is; the result is a new tensor */
        for (int i = 0; i < n; i++)
            if (t == tangents[i]) {
                t = nb_tensor_from(g, t->dtype, t->rank, t->shape, t->data);
                break;
            }
    }
    *y_tangent = t;
    return t ? NB_OK : g->err.status;
}

/* Copy the elements of src into J at J[base + i*step] over src's flat
 * index i. */
static void scatter_line(nb_tensor *J, int64_t base, int64_t step, const nb_tensor *src)
{
    if (J->dtype == NB_F64 && src->dtype == NB_F64) {
        const double *s = src->data;
        double *d = (double *)J->data + base;
        for (int64_t i = 0; i < src->size; i++)
            d[i * step] = s[i];
    } else if (J->dtype == NB_F32 && src->dtype == NB_F32) {
        const float *s = src->data;
        float *d = (float *)J->data + base;
        for (int64_t i = 0; i < src->size; i++)
            d[i * step] = s[i];
    } else {
        for (int64_t i = 0; i < src->size; i++) {
            double v = nb_tensor_get(src, i);
            if (J->dtype == NB_F32)
                ((float *)J->data)[base + i * step] = (float)v;
            else
                ((double *)J->data)[base + i * step] = v;
        }
    }
}

nb_tensor *nb_jacobian(nb_graph *g, nb_tensor *y, nb_tensor *x, nb_jacobian_mode mode)
{
    if (!g)
        return NULL;
    if (nba_check_mine(g, y, "jacobian", "y") != NB_OK ||
        nba_check_mine(g, x, "jacobian", "x") != NB_OK)
        return NULL;
    bool forward;
    switch (mode) {
    case NB_JACOBIAN_AUTO: forward = x->size < y->size; break;
    case NB_JACOBIAN_FORWARD: forward = true; break;
    case NB_JACOBIAN_REVERSE: forward = false; break;
    default:
        nbc_error(g, NB_ERR_ARG, "jacobian",
                  "mode %d is not NB_JACOBIAN_AUTO, NB_JACOBIAN_FORWARD or NB_JACOBIAN_REVERSE",
                  (int)mode);
        return NULL;
    }
    if (y->rank + x->rank > NB_MAX_RANK) {
        nbc_error(g, NB_ERR_RANK, "jacobian", "rank %d + %d of the Jacobian exceeds %d", y->rank,
                  x->rank, NB_MAX_RANK);
        return NULL;
    }
    int64_t shape[NB_MAX_RANK];
    memcpy(shape, y->shape, (size_t)y->rank * sizeof *shape);
    memcpy(shape + y->rank, x->shape, (size_t)x->rank * sizeof *shape);
    nb_tensor *J = nb_zeros(g, y->dtype, y->rank + x->rank, shape);
    if (!J)
        return NULL;

    /* each sweep's scratch is released before the next one; what all
     * forward sweeps share (order, zero tangents, the seed) is made first */
    int64_t lines = forward ? x->size : y->size;
    fwd_plan plan;
    nb_tensor *seed = NULL;
    if (forward && (plan_make(g, y, &x, 1, &plan) != NB_OK || !(seed = nba_zeros_like(g, x))))
        return NULL;
    for (int64_t k = 0; k < lines; k++) {
        nbc_arena_pos pos = nbc_arena_tell(&g->arena);
        nb_tensor *res = NULL;
        if (forward) {
            if (k > 0)
                nb_tensor_set(seed, k - 1, 0.0);
            nb_tensor_set(seed, k, 1.0);
            if (sweep(g, &plan, &x, &seed, 1) != NB_OK)
                return NULL;
            if (!is_zero(y->tan))
                scatter_line(J, k, x->size, y->tan); /* column k: J[i, k] */
        } else {
            nb_tensor *s = nba_zeros_like(g, y);
            if (s)
                nb_tensor_set(s, k, 1.0);
            if (!s || nb_grad(g, y, s, &x, 1, &res, false) != NB_OK)
                return NULL;
            scatter_line(J, k * x->size, 1, res); /* row k: J[k, j] */
        }
        nbc_arena_release(&g->arena, pos);
    }
    return J;
}
