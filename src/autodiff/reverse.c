/* Reverse mode: one sweep over the recorded graph in reverse topological
 * order, each op's VJP rule turning the gradient of its result into
 * gradients of its inputs, accumulated with +=. */

#include "sweep.h"

/* Add src into the buffer of dst elementwise (same shape and dtype). */
static void add_into(nb_tensor *dst, const nb_tensor *src)
{
    if (dst->dtype == NB_F32) {
        float *d = dst->data;
        const float *s = src->data;
        for (int64_t i = 0; i < dst->size; i++)
            d[i] += s[i];
    } else {
        double *d = dst->data;
        const double *s = src->data;
        for (int64_t i = 0; i < dst->size; i++)
            d[i] += s[i];
    }
}

static bool same_desc(const nb_tensor *a, const nb_tensor *b)
{
    return a->dtype == b->dtype && nbc_same_shape(a, b);
}

/* Run the sweep from y with the given seed (NULL: y has one element, seed 1).
 * On return every node that y depends on through gradient-carrying paths
 * holds its gradient in ->adj (NULL: zero). */
static nb_status sweep(nb_graph *g, nb_tensor *y, nb_tensor *seed, bool create_graph,
                       const char *op, nb_tensor ***order_out, int64_t *n_out)
{
    if (!g)
        return NB_ERR_NULL;
    if (nba_check_mine(g, y, op, "y") != NB_OK)
        return g->status;
    char b0[160], b1[160];
    if (!seed) {
        if (y->size != 1)
            return nbc_error(g, NB_ERR_SHAPE, op,
                             "output has shape %s, not one element: give a seed "
                             "(nb_backward_seed) for a non-scalar output",
                             nbc_shp(y, b0, sizeof b0));
        seed = nb_ones(g, y->dtype, y->rank, y->shape);
        if (!seed)
            return g->status;
    } else {
        if (nba_check_mine(g, seed, op, "seed") != NB_OK)
            return g->status;
        if (!same_desc(seed, y))
            return nbc_error(g, seed->dtype != y->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE, op,
                             "seed %s%s does not match output %s%s", nb_dtype_name(seed->dtype),
                             nbc_shp(seed, b0, sizeof b0), nb_dtype_name(y->dtype),
                             nbc_shp(y, b1, sizeof b1));
    }
    if (!(y->flags & NB_T_NEEDS_GRAD))
        return nbc_error(g, NB_ERR_GRAPH, op,
                         "output %s does not depend on any tensor that needs a gradient "
                         "(mark inputs with nb_tensor_requires_grad, or record the graph)",
                         nbc_shp(y, b0, sizeof b0));

    int64_t n;
    nb_tensor **order = nba_topo(g, y, true, &n, op);
    if (!order)
        return g->status;
    g->last_reverse = g->sweep;
    for (int64_t k = 0; k < n; k++) {
        order[k]->adj = NULL;
        order[k]->adj_sweep = g->last_reverse;
    }
    y->adj = seed;

    bool was_recording = g->recording;
    g->recording = create_graph;
    nb_status st = NB_OK;
    for (int64_t k = n - 1; k >= 0 && st == NB_OK; k--) {
        nb_tensor *node = order[k];
        if (!node->adj || !node->op)
            continue;
        for (int i = 0; i < node->n_inputs; i++) {
            nb_tensor *in = node->inputs[i];
            if (!(in->flags & NB_T_NEEDS_GRAD))
                continue;
            nb_tensor *gi = node->op->vjp(g, node, i, node->adj);
            if (!gi) {
                if (g->status != NB_OK) {
                    st = g->status;
                    break;
                }
                continue; /* a zero gradient */
            }
            if (!same_desc(gi, in)) {
                st = nbc_error(g, NB_ERR_SHAPE, node->op->name,
                               "derivative rule returned %s%s for input %d of %s%s",
                               nb_dtype_name(gi->dtype), nbc_shp(gi, b0, sizeof b0), i,
                               nb_dtype_name(in->dtype), nbc_shp(in, b1, sizeof b1));
                break;
            }
            in->adj = in->adj ? nb_add(g, in->adj, gi) : gi;
            if (!in->adj) {
                st = g->status;
                break;
            }
        }
    }
    g->recording = was_recording;
    if (st != NB_OK)
        return st;
    *order_out = order;
    *n_out = n;
    return NB_OK;
}

/* Add the gradients reaching leaves and parameters into their ->grad. */
static nb_status accumulate(nb_graph *g, nb_tensor **order, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        nb_tensor *t = order[k];
        if (t->op || !t->adj)
            continue;
        if (!t->grad) {
            t->grad = nba_zeros_like(g, t);
            if (!t->grad)
                return g->status;
        }
        add_into(t->grad, t->adj);
    }
    return NB_OK;
}

nb_status nb_backward_seed(nb_graph *g, nb_tensor *y, nb_tensor *seed)
{
    nb_tensor **order;
    int64_t n;
    nb_status st = sweep(g, y, seed, false, "backward", &order, &n);
    return st != NB_OK ? st : accumulate(g, order, n);
}

nb_status nb_backward(nb_graph *g, nb_tensor *y)
{
    return nb_backward_seed(g, y, NULL);
}

nb_status nb_grad(nb_graph *g, nb_tensor *y, nb_tensor *seed, nb_tensor *const *xs, int n,
                  nb_tensor **out, bool create_graph)
{
    if (!g)
        return NB_ERR_NULL;
    if (n < 0 || (n > 0 && (!xs || !out)))
        return nbc_error(g, n < 0 ? NB_ERR_ARG : NB_ERR_NULL, "grad",
                         "need n >= 0 inputs and non-NULL xs and out");
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    for (int i = 0; i < n; i++) {
        char what[32];
        snprintf(what, sizeof what, "xs[%d]", i);
        if (nba_check_mine(g, xs[i], "grad", what) != NB_OK)
            return g->status;
        if (!(xs[i]->flags & NB_T_NEEDS_GRAD))
            return nbc_error(g, NB_ERR_GRAPH, "grad",
                             "xs[%d] does not need a gradient (mark it with "
                             "nb_tensor_requires_grad before using it)",
                             i);
    }
    /* every node the sweep reaches has its adj reset; clearing the inputs'
     * first makes a non-NULL adj mean "reached with a gradient" */
    for (int i = 0; i < n; i++)
        xs[i]->adj = NULL;
    nb_tensor **order;
    int64_t n_order;
    nb_status st = sweep(g, y, seed, create_graph, "grad", &order, &n_order);
    if (st != NB_OK)
        return st;
    for (int i = 0; i < n; i++) {
        bool reached = xs[i]->adj != NULL;
        out[i] = reached ? xs[i]->adj : nba_zeros_like(g, xs[i]);
        if (!out[i])
            return g->status;
    }
    return NB_OK;
}
