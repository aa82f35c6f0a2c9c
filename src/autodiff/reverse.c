/* Reverse mode: one sweep over the recorded graph in reverse topological
 * order, each op's VJP rule turning the gradient of its result into
 * gradients of its inputs, accumulated with +=. */

#include "../ops/kernels.h"
#include "../ops/scalar.h"
#include "sweep.h"

typedef struct add_job {
    nb_tensor *dst;
    const nb_tensor *src;
} add_job;

/* dst[lo..hi) += src[lo..hi) */
static inline void add_run(nb_tensor *dst, const nb_tensor *src, int64_t lo, int64_t hi)
{
    if (dst->dtype == NB_F32) {
        float *d = dst->data;
        const float *s = src->data;
        NBK_SIMD
        for (int64_t i = lo; i < hi; i++)
            d[i] += s[i];
    } else {
        double *d = dst->data;
        const double *s = src->data;
        NBK_SIMD
        for (int64_t i = lo; i < hi; i++)
            d[i] += s[i];
    }
}

/* Task t of n of dst += src: the t-th of n runs of elements, boundaries on
 * multiples of 64 elements (no cache line written by two threads). */
static void add_task(void *ctx, int t, int n)
{
    const add_job *j = ctx;
    int64_t size = j->dst->size;
    int64_t lo = size / 64 * t / n * 64, hi = t == n - 1 ? size : size / 64 * (t + 1) / n * 64;
    add_run(j->dst, j->src, lo, hi);
}

/* Add src into the buffer of dst elementwise (same shape and dtype): each
 * element on its own, so vectorised (NBK_SIMD) and on the graph's threads
 * above the parallel threshold, with the same sums. */
static void add_into(nb_graph *g, nb_tensor *dst, const nb_tensor *src)
{
    int n = nbc_threads_for(g, dst->size);
    if (n > 1)
        nbc_parallel(n, add_task, &(add_job){dst, src});
    else
        add_run(dst, src, 0, dst->size);
}

static bool same_desc(const nb_tensor *a, const nb_tensor *b)
{
    return a->dtype == b->dtype && nbc_same_shape(a, b);
}

nb_tensor nba_scalar_adj; /* only its address is used */

/* a + b rounded to the dtype (a float's sum of two floats is exact in double
 * before the rounding, so this is float arithmetic) */
static double add_in(nb_dtype dt, double a, double b)
{
    return dt == NB_F32 ? (double)((float)a + (float)b) : a + b;
}

static double adj_value(const nb_tensor *t)
{
    return t->adj == &nba_scalar_adj ? t->sadj : nb_tensor_get(t->adj, 0);
}

nb_tensor *nba_adj(nb_graph *g, nb_tensor *t)
{
    if (t->adj != &nba_scalar_adj)
        return t->adj;
    nb_tensor *a = nbc_tensor_new(g, t->dtype, t->rank, t->shape, "backward");
    if (!a)
        return NULL;
    nb_tensor_set(a, 0, t->sadj);
    t->adj = a;
    return a;
}

/* One reverse sweep. Nodes that gradients flow through are on their graph's
 * list in creation order (NB_T_LINKED, prev), which is a topological order:
 * the sweep walks it backwards from y and stops once no visited node has
 * handed a gradient to a node still ahead on the list. */
typedef struct sweep_state {
    nb_graph *g;
    uint64_t id;
    int64_t pending;     /* listed nodes holding a gradient, not yet visited */
    nb_tensor **reached; /* tensors off the list that received a gradient */
    int64_t n_reached, cap_reached;
    const char *op;
    bool to_grad; /* nb_backward: parameters' gradients go into their ->grad */
    bool profile; /* time each node's rule (nb_graph_set_profile) */
    uint64_t t0;  /* ... from this clock reading */
} sweep_state;

static nb_status first_touch(sweep_state *s, nb_tensor *t)
{
    t->adj_sweep = s->id;
    t->flags &= ~NB_T_ADJ_OWNED; /* whatever adj is, it is not (yet) t's alone */
    if (t->flags & NB_T_LINKED) {
        s->pending++;
        return NB_OK;
    }
    nb_tensor **r = nba_grow(s->g, s->reached, &s->cap_reached, s->n_reached + 1, sizeof *r, s->op);
    if (!r)
        return s->g->err.status;
    s->reached = r;
    r[s->n_reached++] = t;
    return NB_OK;
}

/* in->adj += v, a one-element gradient as a number */
static nb_status give_number(sweep_state *s, nb_tensor *in, double v)
{
    if (in->adj_sweep != s->id) {
        in->adj = &nba_scalar_adj;
        in->sadj = v;
        return first_touch(s, in);
    }
    in->sadj = add_in(in->dtype, adj_value(in), v);
    in->adj = &nba_scalar_adj;
    return NB_OK;
}

/* "'x'", or "0 (a mul result)" when input i of node has no name. */
static const char *input_label(const nb_tensor *node, int i, char *buf, size_t n)
{
    const nb_tensor *in = node->inputs[i];
    if (in->name && *in->name)
        snprintf(buf, n, "'%s'", in->name);
    else
        snprintf(buf, n, "%d (%s)", i, in->op ? in->op->name : "a leaf");
    return buf;
}

/* In check-finite mode, what a sweep computes is checked where it is made:
 * a derivative rule's result (not each op inside the rule, which the user
 * never wrote) and each sum of gradients. */
static nb_status check_rule_result(nb_graph *g, const nb_tensor *node, int i, const nb_tensor *gi)
{
    int64_t k = nbc_first_nonfinite(gi);
    if (k < 0)
        return NB_OK;
    char who[64], what[96];
    return nbc_error_named(g, NB_ERR_NONFINITE, node->op->name, node->inputs[i]->name,
                           "reverse rule for input %s gives %s",
                           input_label(node, i, who, sizeof who),
                           nbc_nonfinite_at(gi, k, what, sizeof what));
}

/* in->adj += gi, a gradient tensor shaped like in (for input i of node).
 * When no graph of the gradient is recorded, the sum of a second gradient
 * is a buffer made for in alone (NB_T_ADJ_OWNED), and later ones are added
 * into it in place: the same numbers without a new tensor each time. */
static nb_status give_tensor(sweep_state *s, const nb_tensor *node, int i, nb_tensor *in,
                             nb_tensor *gi)
{
    if (in->adj_sweep != s->id) {
        in->adj = gi;
        return first_touch(s, in);
    }
    if (in->adj == &nba_scalar_adj) {
        in->sadj = add_in(in->dtype, in->sadj, nb_tensor_get(gi, 0));
        return NB_OK;
    }
    nb_graph *g = s->g;
    bool check = g->check_finite;
    if ((in->flags & NB_T_ADJ_OWNED) && !g->recording && !check) {
        add_into(g, in->adj, gi);
        return NB_OK;
    }
    g->check_finite = false;
    in->adj = nb_add(g, in->adj, gi);
    g->check_finite = check;
    if (!in->adj)
        return g->err.status;
    if (!g->recording)
        in->flags |= NB_T_ADJ_OWNED;
    int64_t k = check ? nbc_first_nonfinite(in->adj) : -1;
    if (k >= 0) {
        char who[64], what[96];
        return nbc_error_named(
            g, NB_ERR_NONFINITE, node->op->name, in->name, "the gradients of input %s add up to %s",
            input_label(node, i, who, sizeof who), nbc_nonfinite_at(in->adj, k, what, sizeof what));
    }
    return NB_OK;
}

/* in's gradient so far as a buffer of its own that gradients can be added
 * into (NB_T_ADJ_OWNED): zeros when in has none yet, a copy of what it has
 * when that buffer is not its alone. NULL with g's error on failure. */
static nb_tensor *owned_adj(sweep_state *s, nb_tensor *in)
{
    nb_graph *g = s->g;
    bool touched = in->adj_sweep == s->id;
    if (touched && (in->flags & NB_T_ADJ_OWNED))
        return in->adj;
    nb_tensor *acc = nbc_tensor_new(g, in->dtype, in->rank, in->shape, "backward");
    if (!acc)
        return NULL;
    size_t bytes = (size_t)in->size * nb_dtype_size(in->dtype);
    if (!touched)
        memset(acc->data, 0, bytes);
    else if (in->adj == &nba_scalar_adj)
        nb_tensor_set(acc, 0, in->sadj);
    else
        memcpy(acc->data, in->adj->data, bytes);
    in->adj = acc;
    if (!touched && first_touch(s, in) != NB_OK)
        return NULL;
    in->flags |= NB_T_ADJ_OWNED;
    return acc;
}

/* Hand the gradient of node to its inputs. */
static nb_status visit(sweep_state *s, nb_tensor *node, bool create_graph)
{
    nb_graph *g = s->g;
    double d[2];
    /* numbers for one-element nodes, unless the gradient is to be a graph or
     * every result checked (the rule's ops then report where a NaN arose) */
    if (!create_graph && !g->check_finite && (node->flags & NB_T_SCALAR)) {
        nbo_scalar_vjp(node, adj_value(node), d);
        for (int i = 0; i < node->n_inputs; i++)
            if ((node->inputs[i]->flags & NB_T_REQUIRES_GRAD) &&
                give_number(s, node->inputs[i], d[i]) != NB_OK)
                return g->err.status;
        return NB_OK;
    }
    nb_tensor *adj = nba_adj(g, node);
    if (!adj)
        return g->err.status;
    bool into = !create_graph && !g->check_finite && nbo_has_vjp_into(node->op);
    nb_tensor *pre = NULL; /* what every input's rule starts from, made once */
    if (nbo_has_vjp_pre(node->op)) {
        bool check = g->check_finite;
        g->check_finite = false;
        pre = nbo_vjp_pre(g, node, adj);
        g->check_finite = check;
        if (!pre)
            return g->err.status;
    }
    /* a parameter's gradient added straight into its ->grad by the rule
     * (nb_backward only, nothing recorded or checked) */
    bool to_grad = s->to_grad && pre && !create_graph && !g->check_finite;
    for (int i = 0; i < node->n_inputs; i++) {
        nb_tensor *in = node->inputs[i];
        if (!(in->flags & NB_T_REQUIRES_GRAD))
            continue;
        if (to_grad && (in->flags & NB_T_PARAM) && in->grad) {
            bool done = false;
            if (nbo_vjp_into_grad(g, node, i, pre, in->grad, &done) != NB_OK)
                return g->err.status;
            if (done)
                continue;
        }
        if (into) { /* the rule adds into in's own buffer */
            nb_tensor *acc = owned_adj(s, in);
            if (!acc)
                return g->err.status;
            nbo_vjp_into(node, i, adj, acc);
            continue;
        }
        bool check = g->check_finite;
        g->check_finite = false; /* the rule's result is checked, not its ops */
        nb_tensor *gi = pre ? nbo_vjp_post(g, node, i, pre) : node->op->vjp(g, node, i, adj);
        g->check_finite = check;
        if (!gi) {
            if (g->err.status != NB_OK)
                return g->err.status;
            continue; /* a zero gradient */
        }
        if (!same_desc(gi, in)) {
            char b0[160], b1[160];
            return nbc_error(g, NB_ERR_SHAPE, node->op->name,
                             "derivative rule returned %s%s for input %d of %s%s",
                             nb_dtype_name(gi->dtype), nbc_shp(gi, b0, sizeof b0), i,
                             nb_dtype_name(in->dtype), nbc_shp(in, b1, sizeof b1));
        }
        if (check && check_rule_result(g, node, i, gi) != NB_OK)
            return g->err.status;
        if (give_tensor(s, node, i, in, gi) != NB_OK)
            return g->err.status;
    }
    return NB_OK;
}

/* The time since s->t0 added to the profile under the node's op. */
static NB_NOINLINE void profile_rule(sweep_state *s, const nb_tensor *node)
{
    nbc_prof_add(s->g, node->op, node->op->name, NBC_PROF_BWD, nbc_now_ns() - s->t0);
}

/* Run the sweep from y with the given seed (NULL: y has one element, seed 1).
 * On return every tensor the gradient reached has adj_sweep == s->id and its
 * gradient in adj (nba_adj); s->reached lists those off the node list.
 * Profiling is off during the sweep (the ops of the rules count as the
 * rules' time); with profile, each rule is timed. */
static nb_status sweep(nb_graph *g, nb_tensor *y, nb_tensor *seed, bool create_graph,
                       const char *op, bool to_grad, bool profile, sweep_state *s)
{
    if (nba_check_mine(g, y, op, "y") != NB_OK)
        return g->err.status;
    char b0[160], b1[160];
    if (!seed) {
        if (y->size != 1)
            return nbc_error(g, NB_ERR_SHAPE, op,
                             "output has shape %s, not one element: give a seed "
                             "(nb_backward_seed) for a non-scalar output",
                             nbc_shp(y, b0, sizeof b0));
    } else {
        if (nba_check_mine(g, seed, op, "seed") != NB_OK)
            return g->err.status;
        if (!same_desc(seed, y))
            return nbc_error(g, seed->dtype != y->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE, op,
                             "seed %s%s does not match output %s%s", nb_dtype_name(seed->dtype),
                             nbc_shp(seed, b0, sizeof b0), nb_dtype_name(y->dtype),
                             nbc_shp(y, b1, sizeof b1));
    }
    if (!(y->flags & NB_T_REQUIRES_GRAD))
        return nbc_error(g, NB_ERR_GRAPH, op,
                         "output %s does not depend on any tensor that needs a gradient "
                         "(mark inputs with nb_tensor_set_requires_grad, or record the graph)",
                         nbc_shp(y, b0, sizeof b0));

    *s = (sweep_state){
        .g = g, .id = nbc_next_sweep(), .op = op, .to_grad = to_grad, .profile = profile};
    g->last_reverse = s->id;
    if (seed) {
        y->adj = seed;
    } else if (create_graph) {
        y->adj = nb_ones(g, y->dtype, y->rank, y->shape);
        if (!y->adj)
            return g->err.status;
    } else {
        y->adj = &nba_scalar_adj;
        y->sadj = 1.0;
    }
    if (first_touch(s, y) != NB_OK)
        return g->err.status;

    bool was_recording = g->recording;
    g->recording = create_graph;
    nb_status st = NB_OK;
    for (nb_tensor *node = y; node && s->pending > 0 && st == NB_OK; node = node->prev) {
        if (node->adj_sweep != s->id)
            continue;
        s->pending--;
        if (node->op && node->op->vjp) { /* visit has this one call: it stays inline */
            if (NB_UNLIKELY(s->profile))
                s->t0 = nbc_now_ns();
            st = visit(s, node, create_graph);
            if (NB_UNLIKELY(s->profile))
                profile_rule(s, node);
        }
    }
    g->recording = was_recording;
    return st;
}

/* Add the gradients reaching leaves and parameters into their ->grad. */
static nb_status accumulate(nb_graph *g, const sweep_state *s)
{
    for (int64_t k = 0; k < s->n_reached; k++) {
        nb_tensor *t = s->reached[k];
        if (t->op)
            continue;
        if (!t->grad) {
            t->grad = nba_zeros_like(g, t);
            if (!t->grad)
                return g->err.status;
        }
        if (t->adj == &nba_scalar_adj) {
            nb_tensor_set(t->grad, 0, add_in(t->dtype, nb_tensor_get(t->grad, 0), t->sadj));
            continue;
        }
        add_into(g, t->grad, t->adj);
    }
    return NB_OK;
}

nb_status nb_backward_seed(nb_graph *g, nb_tensor *y, nb_tensor *seed)
{
    if (!g)
        return NB_ERR_NULL;
    bool profile = g->profile;
    g->profile = false;
    sweep_state s;
    nb_status st = sweep(g, y, seed, false, "backward", true, profile, &s);
    if (st == NB_OK)
        st = accumulate(g, &s);
    g->profile = profile;
    return st;
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
            return g->err.status;
        if (!(xs[i]->flags & NB_T_REQUIRES_GRAD))
            return nbc_error(g, NB_ERR_GRAPH, "grad",
                             "xs[%d] does not need a gradient (mark it with "
                             "nb_tensor_set_requires_grad before using it)",
                             i);
    }
    bool profile = g->profile;
    g->profile = false;
    sweep_state s;
    nb_status st = sweep(g, y, seed, create_graph, "grad", false, profile, &s);
    for (int i = 0; i < n && st == NB_OK; i++) {
        bool reached = xs[i]->adj_sweep == s.id && xs[i]->adj;
        out[i] = reached ? nba_adj(g, xs[i]) : nba_zeros_like(g, xs[i]);
        if (!out[i])
            st = g->err.status;
    }
    g->profile = profile;
    return st;
}
