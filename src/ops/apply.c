/* The op engine: every primitive goes through nbo_apply, which records the
 * node, runs the shape rule and the kernel, and counts the evaluation. */

#include "scalar.h"
#include "table.h"

const nb_attrs nbo_no_attrs;

/* An elementwise op whose inputs share one dtype and shape (scalars,
 * same-shape arithmetic: most ops) needs no shape rule: its node, inputs and
 * (small) data are one arena block. NULL with an error recorded when out of
 * memory. */
static nb_tensor *record_same_shape(nb_graph *g, const nbo_def *def, nb_tensor *const *in, int n)
{
    const nb_tensor *x = in[0];
    void *tail, *data;
    nb_tensor *out =
        nbc_node_alloc(g, x->rank, nbc_round16((size_t)n * sizeof(nb_tensor *)),
                       (size_t)x->size * nbc_dtype_size(x->dtype), &tail, &data, def->name);
    if (!out)
        return NULL;
    memset(out, 0, NBC_TENSOR_BYTES(0));
    out->dtype = x->dtype;
    out->rank = x->rank;
    for (int i = 0; i < x->rank; i++) /* a few entries: no call to memcpy */
        out->shape[i] = x->shape[i];
    out->size = x->size;
    out->graph = g;
    out->op = def;
    out->n_inputs = n;
    out->inputs = tail;
    for (int i = 0; i < n; i++)
        out->inputs[i] = in[i];
    out->attrs = (nb_attrs *)&nbo_no_attrs;
    out->data = data;
    return out;
}

static bool is_same_shape_elementwise(const nbo_def *def, nb_tensor *const *in, int n,
                                      const nb_attrs *attrs)
{
    if (attrs || (def->shape != nbo_binary_shape && def->shape != nbo_unary_shape))
        return false;
    for (int i = 1; i < n; i++)
        if (in[i]->dtype != in[0]->dtype || !nbc_same_shape(in[i], in[0]))
            return false;
    return true;
}

/* Any op: inputs and attributes first, then the node, whose shape array is
 * cut back to its rank once the shape rule has run, then its data. */
static nb_tensor *record_general(nb_graph *g, const nbo_def *def, nb_tensor *const *in, int n,
                                 const nb_attrs *attrs)
{
    nb_tensor **inputs = NULL;
    if (n > 0) {
        inputs = nbc_alloc(g, (size_t)n * sizeof *inputs, def->name);
        if (!inputs)
            return NULL;
        memcpy(inputs, in, (size_t)n * sizeof *inputs);
    }
    nb_attrs *copy = (nb_attrs *)&nbo_no_attrs; /* never written: ops without attrs */
    if (attrs) {
        copy = nbc_alloc(g, sizeof *attrs, def->name);
        if (!copy)
            return NULL;
        *copy = *attrs;
        copy->saved = NULL; /* the kernel's, never a caller's */
        if (attrs->n_idx > 0) {
            int64_t *idx = nbc_alloc(g, (size_t)attrs->n_idx * sizeof *idx, def->name);
            if (!idx)
                return NULL;
            memcpy(idx, attrs->idx, (size_t)attrs->n_idx * sizeof *idx);
            copy->idx = idx;
        }
    }
    nb_tensor *out = nbc_alloc(g, sizeof *out, def->name);
    if (!out)
        return NULL;
    memset(out, 0, sizeof *out);
    out->graph = g;
    out->op = def;
    out->n_inputs = n;
    out->inputs = inputs;
    out->attrs = copy;

    if (def->shape(g, out) != NB_OK)
        return NULL;
    nbc_arena_shrink(&g->arena, out, sizeof *out, NBC_TENSOR_BYTES(out->rank));
    if (nbc_tensor_alloc_data(g, out, def->name) != NB_OK)
        return NULL;
    return out;
}

static nb_tensor *apply_timed(nb_graph *g, const nbo_def *def, nb_tensor *const *in, int n,
                              const nb_attrs *attrs);

nb_tensor *nbo_apply(nb_graph *g, const nbo_def *def, nb_tensor *const *in, int n,
                     const nb_attrs *attrs)
{
    if (!g)
        return NULL;
    if (NB_UNLIKELY(g->profile))
        return apply_timed(g, def, in, n, attrs);
    if (def->arity >= 0 ? n != def->arity : n < 1) {
        if (def->arity >= 0)
            nbc_error(g, NB_ERR_ARG, def->name, "takes %d inputs, got %d", def->arity, n);
        else
            nbc_error(g, NB_ERR_ARG, def->name, "takes at least 1 input, got %d", n);
        return NULL;
    }
    unsigned flags = 0;
    int foreign = -1;
    for (int i = 0; i < n; i++) {
        if (!in[i])
            return NULL; /* an earlier op failed: its error is already recorded */
        if (in[i]->graph && in[i]->graph != g && foreign < 0)
            foreign = i;
        flags |= in[i]->flags;
    }
    if (foreign >= 0) {
        nbc_error(g, NB_ERR_GRAPH, def->name, "input %d belongs to another graph", foreign);
        return NULL;
    }

    bool same = is_same_shape_elementwise(def, in, n, attrs);
    nb_tensor *out = same ? record_same_shape(g, def, in, n) : record_general(g, def, in, n, attrs);
    if (!out)
        return NULL;
    if (def->forward(g, out) != NB_OK)
        return NULL;
    g->evals++;

    if (g->check_finite && !nbc_all_finite(out)) {
        char buf[160];
        const char *label = n > 0 ? nb_tensor_name(in[0]) : "";
        nbc_error(g, NB_ERR_NONFINITE, def->name, "result %s holds NaN or Inf%s%s%s",
                  nbc_shp(out, buf, sizeof buf), *label ? " (first input '" : "", label,
                  *label ? "')" : "");
        return NULL;
    }

    if (!g->recording) {
        out->n_inputs = 0; /* values only: nothing to differentiate through */
        return out;
    }
    if (def->vjp)
        out->flags |= flags & NB_T_REQUIRES_GRAD;
    if (out->flags & NB_T_REQUIRES_GRAD) { /* the reverse sweep walks this list */
        out->flags |= NB_T_LINKED;
        if (out->size == 1 && nbo_has_scalar_rule(def)) {
            bool one = true; /* same-shape inputs are like out already */
            for (int i = 0; i < n && !same; i++)
                one &= in[i]->size == 1 && in[i]->dtype == out->dtype;
            if (one)
                out->flags |= NB_T_SCALAR;
        }
        out->prev = g->arena.last_node;
        g->arena.last_node = out;
    }
    return out;
}

/* nbo_apply timed (nb_graph_set_profile): profiling is off inside, so an op
 * that evaluates others counts once, as a whole. */
static NB_NOINLINE nb_tensor *apply_timed(nb_graph *g, const nbo_def *def, nb_tensor *const *in,
                                          int n, const nb_attrs *attrs)
{
    g->profile = false;
    uint64_t t0 = nbc_now_ns();
    nb_tensor *out = nbo_apply(g, def, in, n, attrs);
    uint64_t ns = nbc_now_ns() - t0;
    g->profile = true;
    if (out)
        nbc_prof_add(g, def, def->name, NBC_PROF_FWD, ns);
    return out;
}
