/* An expression as a graph of nabla primitives, each shared node one
 * tensor, so that reverse mode, forward mode and numerical differences
 * can be compared with the symbolic derivative on one formula. */

#include "internal.h"

#include "nabla/ops.h"

#include <math.h>

typedef struct gctx {
    nb_graph *g;
    nb_dtype dt;
    int n;
    const char *const *names;
    nb_tensor *const *values;
    uint64_t epoch;
} gctx;

/* a^k for an integer k by repeated squaring: exact for a < 0 too, where
 * nb_pow's derivative with respect to the exponent (ln a) is NaN. */
static nb_tensor *int_power(const gctx *c, nb_tensor *a, double k)
{
    nb_graph *g = c->g;
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
    return k < 0 ? nb_div(g, nb_scalar(g, c->dt, 1), result) : result;
}

static nb_tensor *build(nb_sym *s, const nb_expr *e, const gctx *c);

static nb_tensor *build_nary(nb_sym *s, const nb_expr *e, const gctx *c)
{
    nb_tensor *acc = build(s, e->args[0], c);
    for (int i = 1; i < e->n_args && acc; i++) {
        nb_tensor *x = build(s, e->args[i], c);
        acc = e->kind == NB_SYM_ADD ? nb_add(c->g, acc, x) : nb_mul(c->g, acc, x);
    }
    return acc;
}

static nb_tensor *build(nb_sym *s, const nb_expr *e, const gctx *c)
{
    nb_expr *m = (nb_expr *)e; /* scratch memo only */
    if (m->mark == c->epoch)
        return m->memo.tensor;
    nb_graph *g = c->g;
    nb_tensor *r = NULL, *a = NULL, *b = NULL;
    if (e->kind == NB_SYM_NUM) {
        r = nb_scalar(g, c->dt, e->value);
    } else if (e->kind == NB_SYM_VAR) {
        int i = 0;
        while (i < c->n && !(c->names[i] && strcmp(c->names[i], e->name) == 0))
            i++;
        if (i == c->n) {
            nbs_unknown_var(s, e->name);
            return NULL;
        }
        r = c->values[i];
    } else if (e->kind == NB_SYM_ADD || e->kind == NB_SYM_MUL) {
        r = build_nary(s, e, c);
    } else {
        a = build(s, e->args[0], c);
        if (!a)
            return NULL;
        if (e->n_args == 2 && e->kind != NB_SYM_POW && !(b = build(s, e->args[1], c)))
            return NULL;
        const nb_expr *k = e->n_args == 2 ? e->args[1] : NULL;
        switch (e->kind) {
        case NB_SYM_POW:
            if (k->kind == NB_SYM_NUM && k->value == nearbyint(k->value) && fabs(k->value) <= 1024)
                r = int_power(c, a, k->value);
            else if ((b = build(s, k, c)))
                r = nb_pow(g, a, b);
            else
                return NULL;
            break;
        case NB_SYM_SIN: r = nb_sin(g, a); break;
        case NB_SYM_COS: r = nb_cos(g, a); break;
        case NB_SYM_TAN: r = nb_div(g, nb_sin(g, a), nb_cos(g, a)); break;
        case NB_SYM_EXP: r = nb_exp(g, a); break;
        case NB_SYM_LN: r = nb_log(g, a); break;
        case NB_SYM_SQRT: r = nb_sqrt(g, a); break;
        case NB_SYM_TANH: r = nb_tanh(g, a); break;
        case NB_SYM_SIGMOID: r = nb_sigmoid(g, a); break;
        case NB_SYM_ABS: r = nb_abs(g, a); break;
        case NB_SYM_ERF: r = nb_erf(g, a); break;
        case NB_SYM_SIGN: r = nb_sign(g, a); break;
        case NB_SYM_MAX: r = nb_maximum(g, a, b); break;
        case NB_SYM_MIN: r = nb_minimum(g, a, b); break;
        default: break;
        }
    }
    if (!r) {
        if (s->err.status != NB_OK) /* an operand already said why */
            return NULL;
        nbs_error(s, NB_ERR_GRAPH, -1, "building %s in the graph failed: %s",
                  nbs_kind_name(e->kind), nb_graph_error(g)->msg);
        return NULL;
    }
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
    if (!e || !g || n < 0 || (n > 0 && (!names || !values))) {
        nbs_error(s, NB_ERR_NULL, -1,
                  "to_graph: need an expression, a graph, and names and values for n > 0");
        return NULL;
    }
    nb_dtype dt = NB_F64;
    for (int i = 0; i < n; i++) {
        if (!values[i]) {
            nbs_error(s, NB_ERR_NULL, -1, "to_graph: values[%d] is NULL", i);
            return NULL;
        }
        if (i == 0)
            dt = nb_tensor_dtype(values[0]);
        else if (nb_tensor_dtype(values[i]) != dt) {
            nbs_error(s, NB_ERR_DTYPE, -1, "to_graph: values[%d] is %s, values[0] is %s", i,
                      nb_dtype_name(nb_tensor_dtype(values[i])), nb_dtype_name(dt));
            return NULL;
        }
    }
    gctx c = {g, dt, n, names, values, nbs_new_epoch(s)};
    return build(s, e, &c);
}
