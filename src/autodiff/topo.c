/* Topological ordering of a recorded graph without recursion. */

#include "sweep.h"

typedef struct frame {
    nb_tensor *node;
    int next_input;
} frame;

void *nba_grow(nb_graph *g, void *old, int64_t *cap, int64_t need, size_t elem, const char *op)
{
    if (need <= *cap)
        return old;
    int64_t cap2 = *cap < 64 ? 64 : *cap;
    while (cap2 < need)
        cap2 *= 2;
    void *p = nbc_alloc(g, (size_t)cap2 * elem, op);
    if (p && old)
        memcpy(p, old, (size_t)*cap * elem);
    if (p)
        *cap = cap2;
    return p;
}

nb_tensor **nba_topo(nb_graph *g, nb_tensor *y, bool only_requires_grad, int64_t *n_out,
                     const char *op)
{
    uint64_t mark = nbc_next_sweep();
    int64_t stack_cap = 0, order_cap = 0, sp = 0, n = 0;
    frame *stack = nba_grow(g, NULL, &stack_cap, 64, sizeof *stack, op);
    nb_tensor **order = nba_grow(g, NULL, &order_cap, 64, sizeof *order, op);
    if (!stack || !order)
        return NULL;
    y->mark = mark; /* marks are unique in the process: no clean-up needed */
    stack[sp++] = (frame){y, 0};
    while (sp > 0) {
        frame *top = &stack[sp - 1];
        if (top->next_input < top->node->n_inputs) {
            nb_tensor *c = top->node->inputs[top->next_input++];
            if (c->mark == mark || (only_requires_grad && !(c->flags & NB_T_REQUIRES_GRAD)))
                continue;
            c->mark = mark;
            frame *grown = nba_grow(g, stack, &stack_cap, sp + 1, sizeof *stack, op);
            if (!grown)
                return NULL;
            stack = grown;
            stack[sp++] = (frame){c, 0};
        } else {
            nb_tensor **grown = nba_grow(g, order, &order_cap, n + 1, sizeof *order, op);
            if (!grown)
                return NULL;
            order = grown;
            order[n++] = top->node;
            sp--;
        }
    }
    *n_out = n;
    return order;
}

nb_tensor *nba_zeros_like(nb_graph *g, const nb_tensor *t)
{
    return nb_zeros(g, t->dtype, t->rank, t->shape);
}

nb_status nba_check_mine(nb_graph *g, const nb_tensor *t, const char *op, const char *what)
{
    if (!t)
        return nbc_error(g, NB_ERR_NULL, op, "%s is NULL", what);
    if (t->graph && t->graph != g)
        return nbc_error(g, NB_ERR_GRAPH, op, "%s belongs to another graph", what);
    return NB_OK;
}
