/* Differentiation by rules, one per kind, each shared node differentiated
 * once (memo), results built with the simplifying constructors. A
 * subexpression free of the variable gets the derivative 0, and every rule
 * multiplies by its operand's derivative, so constant parts vanish. */

#include "internal.h"

#include <math.h>

typedef struct dctx {
    const char *var;
    uint64_t epoch;
    const nb_expr *zero, *one, *minus_one;
} dctx;

static const nb_expr *num(nb_sym *s, double v)
{
    return nbs_num(s, v);
}

static const nb_expr *mul3(nb_sym *s, const nb_expr *a, const nb_expr *b, const nb_expr *c)
{
    const nb_expr *abc[3] = {a, b, c};
    return a && b && c ? nbs_mul(s, abc, 3) : NULL;
}

static const nb_expr *diff(nb_sym *s, const nb_expr *e, const dctx *c);

/* f'(u) * du for the unary functions; f is e = f(u). */
static const nb_expr *chain(nb_sym *s, const nb_expr *e, const nb_expr *du)
{
    const nb_expr *u = e->args[0];
    switch (e->kind) {
    case NB_SYM_SIN: /* d sin u = cos u du */ return nbs_mul2(s, nbs_fn(s, NB_SYM_COS, u), du);
    case NB_SYM_COS: /* d cos u = -sin u du */
        return mul3(s, num(s, -1), nbs_fn(s, NB_SYM_SIN, u), du);
    case NB_SYM_TAN: /* d tan u = du / cos^2 u */
        return nbs_mul2(s, nbs_pow(s, nbs_fn(s, NB_SYM_COS, u), num(s, -2)), du);
    case NB_SYM_EXP: /* d e^u = e^u du */ return nbs_mul2(s, e, du);
    case NB_SYM_LN: /* d ln u = du / u */ return nbs_mul2(s, nbs_pow(s, u, num(s, -1)), du);
    case NB_SYM_SQRT: /* d sqrt u = du / (2 sqrt u) */
        return mul3(s, num(s, 0.5), nbs_pow(s, e, num(s, -1)), du);
    case NB_SYM_TANH: /* d tanh u = (1 - tanh^2 u) du */
        return nbs_mul2(
            s, nbs_add2(s, num(s, 1), nbs_mul2(s, num(s, -1), nbs_pow(s, e, num(s, 2)))), du);
    case NB_SYM_SIGMOID: /* d sigmoid u = sigmoid u (1 - sigmoid u) du */
        return mul3(s, e, nbs_add2(s, num(s, 1), nbs_mul2(s, num(s, -1), e)), du);
    case NB_SYM_ABS: /* d |u| = sign(u) du (0 at u = 0) */
        return nbs_mul2(s, nbs_fn(s, NB_SYM_SIGN, u), du);
    case NB_SYM_ERF: /* d erf u = 2/sqrt(pi) e^(-u^2) du */
        return mul3(s, num(s, 2 / sqrt(acos(-1.0))),
                    nbs_fn(s, NB_SYM_EXP, nbs_mul2(s, num(s, -1), nbs_pow(s, u, num(s, 2)))), du);
    case NB_SYM_SIGN: /* piecewise constant */ return num(s, 0);
    default:
        nbs_error(s, NB_ERR_ARG, -1, "diff: no rule for %s", nbs_kind_name(e->kind));
        return NULL;
    }
}

static const nb_expr *diff_mul(nb_sym *s, const nb_expr *e, const dctx *c)
{
    /* d(f1 ... fn) = sum_i f1 ... dfi ... fn */
    int n = e->n_args;
    const nb_expr *small[8];
    const nb_expr **parts = small, **terms = NULL;
    size_t bytes = (size_t)n * sizeof *parts;
    bool heap = n > 4;
    if (heap) {
        parts = s->alloc(s->ud, NULL, 0, 2 * bytes);
        if (!parts) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (product of %d factors)", n);
            return NULL;
        }
    }
    terms = parts + n;
    int n_terms = 0;
    const nb_expr *r = NULL;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        const nb_expr *d = diff(s, e->args[i], c);
        if (!d) {
            ok = false;
            break;
        }
        if (d == c->zero)
            continue;
        for (int j = 0; j < n; j++)
            parts[j] = j == i ? d : e->args[j];
        terms[n_terms] = nbs_mul(s, parts, n);
        ok = terms[n_terms++] != NULL;
    }
    if (ok)
        r = n_terms == 0 ? c->zero : nbs_add(s, terms, n_terms);
    if (heap)
        s->alloc(s->ud, parts, 2 * bytes, 0);
    return r;
}

static const nb_expr *diff_minmax(nb_sym *s, const nb_expr *e, const dctx *c)
{
    /* d max(a,b) = (1+sign(a-b))/2 da + (1-sign(a-b))/2 db; halves at ties.
     * min swaps the weights. */
    const nb_expr *a = e->args[0], *b = e->args[1];
    const nb_expr *da = diff(s, a, c), *db = da ? diff(s, b, c) : NULL;
    if (!db)
        return NULL;
    if (da == c->zero && db == c->zero)
        return c->zero;
    const nb_expr *sg = nbs_fn(s, NB_SYM_SIGN, nbs_add2(s, a, nbs_mul2(s, c->minus_one, b)));
    double k = e->kind == NB_SYM_MAX ? 0.5 : -0.5;
    const nb_expr *wa = nbs_add2(s, num(s, 0.5), nbs_mul2(s, num(s, k), sg));
    const nb_expr *wb = nbs_add2(s, num(s, 0.5), nbs_mul2(s, num(s, -k), sg));
    return nbs_add2(s, nbs_mul2(s, wa, da), nbs_mul2(s, wb, db));
}

static const nb_expr *diff_pow(nb_sym *s, const nb_expr *e, const dctx *c)
{
    /* d b^x = x b^(x-1) db + b^x ln(b) dx */
    const nb_expr *b = e->args[0], *x = e->args[1];
    const nb_expr *db = diff(s, b, c), *dx = db ? diff(s, x, c) : NULL;
    if (!dx)
        return NULL;
    const nb_expr *t1 = c->zero, *t2 = c->zero;
    if (db != c->zero)
        t1 = mul3(s, x, nbs_pow(s, b, nbs_add2(s, x, c->minus_one)), db);
    if (dx != c->zero)
        t2 = mul3(s, e, nbs_fn(s, NB_SYM_LN, b), dx);
    return nbs_add2(s, t1, t2);
}

static const nb_expr *diff(nb_sym *s, const nb_expr *e, const dctx *c)
{
    nb_expr *m = (nb_expr *)e; /* scratch memo only */
    if (m->mark == c->epoch)
        return m->memo.expr;
    const nb_expr *r = NULL;
    switch (e->kind) {
    case NB_SYM_NUM: r = c->zero; break;
    case NB_SYM_VAR: r = strcmp(e->name, c->var) == 0 ? c->one : c->zero; break;
    case NB_SYM_ADD: {
        const nb_expr *small[8];
        const nb_expr **ds = small;
        size_t bytes = (size_t)e->n_args * sizeof *ds;
        if (e->n_args > 8 && !(ds = s->alloc(s->ud, NULL, 0, bytes))) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (sum of %d terms)", e->n_args);
            return NULL;
        }
        bool ok = true;
        for (int i = 0; ok && i < e->n_args; i++)
            ok = (ds[i] = diff(s, e->args[i], c)) != NULL;
        r = ok ? nbs_add(s, ds, e->n_args) : NULL;
        if (ds != small)
            s->alloc(s->ud, ds, bytes, 0);
        break;
    }
    case NB_SYM_MUL: r = diff_mul(s, e, c); break;
    case NB_SYM_POW: r = diff_pow(s, e, c); break;
    case NB_SYM_MAX:
    case NB_SYM_MIN: r = diff_minmax(s, e, c); break;
    default: {
        const nb_expr *du = diff(s, e->args[0], c);
        r = !du ? NULL : du == c->zero ? c->zero : chain(s, e, du);
        break;
    }
    }
    if (r) {
        m->mark = c->epoch;
        m->memo.expr = r;
    }
    return r;
}

static bool ident(const char *v)
{
    if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || *v == '_'))
        return false;
    for (; *v; v++)
        if (!((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
              *v == '_'))
            return false;
    return true;
}

const nb_expr *nb_sym_diff(nb_sym *s, const nb_expr *e, const char *var)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_diff");
    if (!e || !var) {
        nbs_error(s, NB_ERR_NULL, -1, "diff: %s is NULL", e ? "variable" : "expression");
        return NULL;
    }
    if (!ident(var)) {
        nbs_error(s, NB_ERR_ARG, -1, "diff: '%.40s' is not a variable name", var);
        return NULL;
    }
    const nb_expr *simple = nbs_simplify(s, e);
    if (!simple)
        return NULL;
    dctx c = {var, nbs_new_epoch(s), nbs_num(s, 0), nbs_num(s, 1), nbs_num(s, -1)};
    if (!c.zero || !c.one || !c.minus_one)
        return NULL;
    return diff(s, simple, &c);
}
