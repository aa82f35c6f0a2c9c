/* An expression as a graph of nabla primitives, each shared node one
 * tensor, so that reverse mode, forward mode and numerical differences
 * can be compared with the symbolic derivative on one formula. */

#include "internal.h"

#include "nabla/ops.h"

#include <math.h>

typedef struct gctx {
    nbs_binding b;
    uint64_t epoch;
} gctx;

bool nbs_bind(nb_sym *s, nbs_binding *b, const char *what, const char *need, bool have, nb_graph *g,
              int n, const char *const *names, nb_tensor *const *values)
{
    if (!have || !g || n < 0 || (n > 0 && (!names || !values))) {
        nbs_error(s, NB_ERR_NULL, -1, "%s: need %s, a graph, and names and values for n > 0", what,
                  need);
        return false;
    }
    nb_dtype dt = NB_F64;
    for (int i = 0; i < n; i++) {
        if (!values[i]) {
            nbs_error(s, NB_ERR_NULL, -1, "%s: values[%d] is NULL", what, i);
            return false;
        }
        if (i == 0)
            dt = nb_tensor_dtype(values[0]);
        else if (nb_tensor_dtype(values[i]) != dt) {
            nbs_error(s, NB_ERR_DTYPE, -1, "%s: values[%d] is %s, values[0] is %s", what, i,
                      nb_dtype_name(nb_tensor_dtype(values[i])), nb_dtype_name(dt));
            return false;
        }
    }
    *b = (nbs_binding){g, dt, n, names, values};
    return true;
}

nb_tensor *nbs_graph_var(const nbs_binding *b, const char *name, size_t len)
{
    for (int i = 0; i < b->n; i++)
        if (b->names[i] && strlen(b->names[i]) == len && memcmp(b->names[i], name, len) == 0)
            return b->values[i];
    return NULL;
}

nb_tensor *nbs_graph_apply(nb_graph *g, int op, nb_tensor *a, nb_tensor *b)
{
    switch (op) {
    case NB_SYM_ADD: return nb_add(g, a, b);
    case NB_SYM_MUL: return nb_mul(g, a, b);
    case NB_SYM_POW: return nb_pow(g, a, b);
    case NB_SYM_SIN: return nb_sin(g, a);
    case NB_SYM_COS: return nb_cos(g, a);
    case NB_SYM_TAN: return nb_div(g, nb_sin(g, a), nb_cos(g, a));
    case NB_SYM_EXP: return nb_exp(g, a);
    case NB_SYM_LN: return nb_log(g, a);
    case NB_SYM_SQRT: return nb_sqrt(g, a);
    case NB_SYM_TANH: return nb_tanh(g, a);
    case NB_SYM_SIGMOID: return nb_sigmoid(g, a);
    case NB_SYM_ABS: return nb_abs(g, a);
    case NB_SYM_ERF: return nb_erf(g, a);
    case NB_SYM_SIGN: return nb_sign(g, a);
    case NB_SYM_MAX: return nb_maximum(g, a, b);
    case NB_SYM_MIN: return nb_minimum(g, a, b);
    case NBS_SUB: return nb_sub(g, a, b);
    case NBS_DIV: return nb_div(g, a, b);
    case NBS_NEG: return nb_neg(g, a);
    default: return NULL;
    }
}

nb_tensor *nbs_graph_built(nb_sym *s, const nbs_binding *b, nb_tensor *r, const char *what)
{
    if (!r && s->err.status == NB_OK) /* else an operand already said why */
        nbs_error(s, NB_ERR_GRAPH, -1, "building %s in the graph failed: %s", what,
                  nb_graph_error(b->g)->msg);
    return r;
}

/* a^k for an integer k by repeated squaring: exact for a < 0 too, where
 * nb_pow's derivative with respect to the exponent (ln a) is NaN. */
static nb_tensor *int_power(const gctx *c, nb_tensor *a, double k)
{
    nb_graph *g = c->b.g;
    double m = fabs(k);
    nb_tensor *result = NULL, *sq = a;
    while (m >= 1 && sq) {
        double half = floor(m / 2);
        if (m - 2 * half == 1)
            result = result ? nb_mul(g, result, sq) : sq;
        m = half;
        if (m >= 1)
            sq = nb_mul(g, sq, sq);
    }
    if (!result) /* k = 0: ones of a's shape, no gradient (d a^0 = 0) */
        return sq ? nb_add_scalar(g, nb_scale(g, nb_stop_gradient(g, a), 0), 1) : NULL;
    return k < 0 ? nb_div(g, nb_scalar(g, c->b.dt, 1), result) : result;
}

static nb_tensor *build(nb_sym *s, const nb_expr *e, const gctx *c);

static nb_tensor *build_nary(nb_sym *s, const nb_expr *e, const gctx *c)
{
    nb_tensor *acc = build(s, e->args[0], c);
    for (int i = 1; i < e->n_args && acc; i++) {
        nb_tensor *x = build(s, e->args[i], c);
        acc = nbs_graph_apply(c->b.g, e->kind, acc, x);
    }
    return acc;
}

static nb_tensor *build(nb_sym *s, const nb_expr *e, const gctx *c)
{
    nb_expr *m = (nb_expr *)e; /* scratch memo only */
    if (m->mark == c->epoch)
        return m->memo.tensor;
    nb_graph *g = c->b.g;
    nb_tensor *r = NULL, *a = NULL, *b = NULL;
    if (e->kind == NB_SYM_NUM) {
        r = nb_scalar(g, c->b.dt, e->value);
    } else if (e->kind == NB_SYM_VAR) {
        r = nbs_graph_var(&c->b, e->name, strlen(e->name));
        if (!r) {
            nbs_unknown_var(s, e->name);
            return NULL;
        }
    } else if (e->kind == NB_SYM_ADD || e->kind == NB_SYM_MUL) {
        r = build_nary(s, e, c);
    } else {
        a = build(s, e->args[0], c);
        if (!a)
            return NULL;
        if (e->n_args == 2 && e->kind != NB_SYM_POW && !(b = build(s, e->args[1], c)))
            return NULL;
        const nb_expr *k = e->n_args == 2 ? e->args[1] : NULL;
        if (e->kind != NB_SYM_POW)
            r = nbs_graph_apply(g, e->kind, a, b);
        else if (k->kind == NB_SYM_NUM && k->value == nearbyint(k->value) && fabs(k->value) <= 1024)
            r = int_power(c, a, k->value);
        else if ((b = build(s, k, c)))
            r = nb_pow(g, a, b);
        else
            return NULL;
    }
    if (!nbs_graph_built(s, &c->b, r, nbs_kind_name(e->kind)))
        return NULL;
    m->mark = c->epoch;
    m->memo.tensor = r;
    return r;
}

nb_tensor *nb_sym_to_graph(nb_graph *g, nb_sym *s, const nb_expr *e, int n,
                           const char *const *names, nb_tensor *const *values)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_to_graph");
    gctx c;
    if (!nbs_bind(s, &c.b, "to_graph", "an expression", e != NULL, g, n, names, values))
        return NULL;
    c.epoch = nbs_new_epoch(s);
    return build(s, e, &c);
}
