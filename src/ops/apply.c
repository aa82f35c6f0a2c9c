/* The op engine: every primitive goes through nbo_apply, which records the
 * node, runs the shape rule and the kernel, and counts the evaluation. */

#include "../core/internal.h"

const nb_attrs nbo_no_attrs;

nb_tensor *nbo_apply(nb_graph *g, const nbo_def *def, nb_tensor *const *in, int n,
                     const nb_attrs *attrs)
{
    if (!g)
        return NULL;
    if (def->arity >= 0 ? n != def->arity : n < 1) {
        if (def->arity >= 0)
            nbc_error(g, NB_ERR_ARG, def->name, "takes %d inputs, got %d", def->arity, n);
        else
            nbc_error(g, NB_ERR_ARG, def->name, "takes at least 1 input, got %d", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!in[i])
            return NULL; /* an earlier op failed: its error is already recorded */
    for (int i = 0; i < n; i++) {
        if (in[i]->graph && in[i]->graph != g) {
            nbc_error(g, NB_ERR_GRAPH, def->name, "input %d belongs to another graph", i);
            return NULL;
        }
    }

    /* inputs and attributes first, then the node, whose shape array is cut
     * back to its rank once the shape rule has run */
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
        for (int i = 0; i < n; i++)
            if (in[i]->flags & NB_T_NEEDS_GRAD)
                out->flags |= NB_T_NEEDS_GRAD;
    if (out->flags & NB_T_NEEDS_GRAD) { /* the reverse sweep walks this list */
        out->flags |= NB_T_LINKED;
        out->prev = g->arena.last_node;
        g->arena.last_node = out;
    }
    return out;
}
