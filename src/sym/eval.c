/* Evaluation in double at given variable values, each shared node once. */

#include "internal.h"

#include <math.h>

static double sigmoid(double x)
{
    /* never exponentiates a large positive number */
    if (x >= 0)
        return 1 / (1 + exp(-x));
    double z = exp(x);
    return z / (1 + z);
}

double nbs_apply_num(nb_sym_kind kind, const double *x, int n)
{
    double r = 0;
    switch (kind) {
    case NB_SYM_ADD:
        for (int i = 0; i < n; i++)
            r += x[i];
        return r;
    case NB_SYM_MUL:
        r = 1;
        for (int i = 0; i < n; i++)
            r *= x[i];
        return r;
    case NB_SYM_POW: return pow(x[0], x[1]);
    case NB_SYM_SIN: return sin(x[0]);
    case NB_SYM_COS: return cos(x[0]);
    case NB_SYM_TAN: return tan(x[0]);
    case NB_SYM_EXP: return exp(x[0]);
    case NB_SYM_LN: return log(x[0]);
    case NB_SYM_SQRT: return sqrt(x[0]);
    case NB_SYM_TANH: return tanh(x[0]);
    case NB_SYM_SIGMOID: return sigmoid(x[0]);
    case NB_SYM_ABS: return fabs(x[0]);
    case NB_SYM_ERF: return erf(x[0]);
    case NB_SYM_SIGN: return x[0] > 0 ? 1 : x[0] < 0 ? -1 : x[0];
    case NB_SYM_MAX: return isnan(x[0]) || isnan(x[1]) ? NAN : x[0] > x[1] ? x[0] : x[1];
    case NB_SYM_MIN: return isnan(x[0]) || isnan(x[1]) ? NAN : x[0] < x[1] ? x[0] : x[1];
    default: return NAN;
    }
}

typedef struct env {
    int n;
    const char *const *names;
    const double *values;
    uint64_t epoch;
} env;

static nb_status eval(nb_sym *s, const nb_expr *e, const env *en, double *out)
{
    nb_expr *m = (nb_expr *)e; /* scratch memo only */
    if (m->mark == en->epoch) {
        *out = m->memo.num;
        return NB_OK;
    }
    double r = NAN;
    if (e->kind == NB_SYM_NUM) {
        r = e->value;
    } else if (e->kind == NB_SYM_VAR) {
        int i = 0;
        while (i < en->n && !(en->names[i] && strcmp(en->names[i], e->name) == 0))
            i++;
        if (i == en->n)
            return nbs_unknown_var(s, e->name);
        r = en->values[i];
    } else if (e->kind == NB_SYM_ADD || e->kind == NB_SYM_MUL) {
        r = e->kind == NB_SYM_ADD ? 0 : 1;
        for (int i = 0; i < e->n_args; i++) {
            double v;
            nb_status st = eval(s, e->args[i], en, &v);
            if (st != NB_OK)
                return st;
            r = e->kind == NB_SYM_ADD ? r + v : r * v;
        }
    } else {
        double x[2];
        for (int i = 0; i < e->n_args; i++) {
            nb_status st = eval(s, e->args[i], en, &x[i]);
            if (st != NB_OK)
                return st;
        }
        r = nbs_apply_num(e->kind, x, e->n_args);
    }
    m->mark = en->epoch;
    m->memo.num = r;
    *out = r;
    return NB_OK;
}

nb_status nb_sym_eval(nb_sym *s, const nb_expr *e, int n, const char *const *names,
                      const double *values, double *out)
{
    if (out)
        *out = NAN;
    if (!s)
        return NB_ERR_NULL;
    nbs_clear(s, "nb_sym_eval");
    if (!e || !out || n < 0 || (n > 0 && (!names || !values)))
        return nbs_error(s, NB_ERR_NULL, -1,
                         "eval: need an expression, out, and names and values for n > 0");
    env en = {n, names, values, nbs_new_epoch(s)};
    double r;
    nb_status st = eval(s, e, &en, &r);
    if (st == NB_OK)
        *out = r;
    return st;
}
