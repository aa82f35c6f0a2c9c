/* Looking at a recorded graph: its nodes in order, and Graphviz DOT pictures: one box per tensor with its
 * op, label, shape, value and gradient, one edge per input. */

#include <math.h>
#include <stdio.h>

#include "sweep.h"

/* Write s with the characters DOT's quoted strings need escaped. */
static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* A few numbers of t: all of them when there are at most four, else a
 * summary (min, mean, max). */
static void put_values(FILE *f, const char *what, const nb_tensor *t)
{
    fprintf(f, "\\n%s ", what);
    if (t->size <= 4) {
        for (int64_t i = 0; i < t->size; i++)
            fprintf(f, "%s%.6g", i ? " " : "", nb_tensor_get(t, i));
        if (t->size == 0)
            fputs("(empty)", f);
        return;
    }
    double lo = INFINITY, hi = -INFINITY, sum = 0;
    for (int64_t i = 0; i < t->size; i++) {
        double v = nb_tensor_get(t, i);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
        sum += v;
    }
    fprintf(f, "min %.4g mean %.4g max %.4g", lo, sum / (double)t->size, hi);
}

int64_t nb_graph_nodes(nb_graph *g, nb_tensor *y, nb_tensor **out, int64_t cap)
{
    if (!g)
        return -1;
    if (cap < 0 || (cap > 0 && !out)) {
        nbc_error(g, NB_ERR_NULL, "graph_nodes", "need an output array for cap = %lld",
                  (long long)cap);
        return -1;
    }
    if (nba_check_mine(g, y, "graph_nodes", "y") != NB_OK)
        return -1;
    int64_t n;
    nb_tensor **order = nba_topo(g, y, false, &n, "graph_nodes");
    if (!order)
        return -1;
    for (int64_t k = 0; k < n && k < cap; k++)
        out[k] = order[k];
    return n;
}

nb_status nb_graph_dot(nb_graph *g, nb_tensor *y, FILE *f)
{
    if (!g)
        return NB_ERR_NULL;
    if (!f)
        return nbc_error(g, NB_ERR_NULL, "graph_dot", "no FILE to write to");
    if (nba_check_mine(g, y, "graph_dot", "y") != NB_OK)
        return g->err.status;
    int64_t n_order;
    nb_tensor **order = nba_topo(g, y, false, &n_order, "graph_dot");
    if (!order)
        return g->err.status;
    fputs("digraph nabla {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\", "
          "fontsize=10];\n",
          f);
    for (int64_t k = 0; k < n_order; k++) {
        nb_tensor *t = order[k];
        char shape[160];
        fprintf(f, "  t%lld [label=\"", (long long)k);
        if (t->name && *t->name) {
            put_escaped(f, t->name);
            fputs(" = ", f);
        }
        fputs(t->op ? t->op->name : (t->flags & NB_T_PARAM ? "parameter" : "leaf"), f);
        fprintf(f, "\\n%s %s", nb_dtype_name(t->dtype), nbc_shp(t, shape, sizeof shape));
        put_values(f, "value", t);
        /* a leaf's accumulated gradient, or what the latest reverse sweep
         * left in an intermediate it reached */
        if (t->grad)
            put_values(f, "grad", t->grad);
        else if (t->adj && t->adj_sweep == g->last_reverse && nba_adj(g, t))
            put_values(f, "grad", t->adj);
        fprintf(f, "\"%s];\n",
                !t->op ? ", style=filled, fillcolor=\"#e8f0ff\""
                       : (t->flags & NB_T_REQUIRES_GRAD ? "" : ", color=gray"));
        t->mark = (uint64_t)k; /* its box number, for the edges below */
    }
    for (int64_t k = 0; k < n_order; k++)
        for (int j = 0; j < order[k]->n_inputs; j++)
            fprintf(f, "  t%lld -> t%lld [label=\"%d\", fontsize=8];\n",
                    (long long)order[k]->inputs[j]->mark, (long long)k, j);
    fputs("}\n", f);
    /* the marks now hold box numbers: make sure no sort mistakes them (0 is
     * never a sweep mark) */
    for (int64_t k = 0; k < n_order; k++)
        order[k]->mark = 0;
    return ferror(f) ? nbc_error(g, NB_ERR_IO, "graph_dot", "writing the DOT text failed") : NB_OK;
}
