/* The simplifier: constructors that fold constants, drop 0 and 1, flatten,
 * and collect like terms and like factors, and nb_sym_simplify, which
 * rebuilds an expression bottom-up with them. Every rewrite is exact
 * wherever the original expression is defined (real arithmetic). */

#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* A scratch array of operands through the pool's hook. */
typedef struct tmp_list {
    const nb_expr **at;
    size_t n, cap;
    const nb_expr *small[16];
} tmp_list;

static void tl_init(tmp_list *l)
{
    l->at = l->small;
    l->n = 0;
    l->cap = 16;
}

static void tl_free(nb_sym *s, tmp_list *l)
{
    if (l->at != l->small)
        s->alloc(s->ud, l->at, l->cap * sizeof *l->at, 0);
}

/* Double the array a of *cap elements of elem bytes (16 to start) through
 * the pool's hook; NULL with the error recorded, a untouched, when it
 * cannot. */
static void *grow_array(nb_sym *s, void *a, size_t *cap, size_t elem, const char *what)
{
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = nc < SIZE_MAX / elem ? s->alloc(s->ud, a, *cap * elem, nc * elem) : NULL;
    if (!p) {
        nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (%zu %s)", nc, what);
        return NULL;
    }
    *cap = nc;
    return p;
}

static bool tl_push(nb_sym *s, tmp_list *l, const nb_expr *e)
{
    if (!e)
        return false;
    if (l->n == l->cap) {
        if (l->cap > SIZE_MAX / 2 / sizeof *l->at) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (operand list)");
            return false;
        }
        size_t cap = l->cap * 2;
        const nb_expr **p = s->alloc(s->ud, NULL, 0, cap * sizeof *p);
        if (!p) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (%zu operands)", cap);
            return false;
        }
        memcpy(p, l->at, l->n * sizeof *p);
        tl_free(s, l);
        l->at = p;
        l->cap = cap;
    }
    l->at[l->n++] = e;
    return true;
}

static const nb_expr *tl_build(nb_sym *s, nb_sym_kind kind, tmp_list *l, double neutral)
{
    const nb_expr *r;
    if (l->n == 0)
        r = nbs_num(s, neutral);
    else if (l->n == 1)
        r = l->at[0];
    else if (l->n > INT32_MAX / 2) {
        nbs_error(s, NB_ERR_ARG, -1, "%s of %zu operands", nbs_kind_name(kind), l->n);
        r = NULL;
    } else
        r = nbs_make(s, kind, l->at, (int)l->n);
    return r;
}

/* A term as coefficient * rest (rest NULL for a pure constant). */
typedef struct term {
    double coef;
    const nb_expr *rest;
} term;

static int cmp_term(const void *pa, const void *pb)
{
    const term *a = pa, *b = pb;
    return nbs_cmp(a->rest, b->rest);
}

static const nb_expr *split_coef(nb_sym *s, const nb_expr *t, double *coef)
{
    *coef = 1;
    if (t->kind != NB_SYM_MUL || t->args[0]->kind != NB_SYM_NUM)
        return t;
    *coef = t->args[0]->value;
    if (t->n_args == 2)
        return t->args[1];
    return nbs_make(s, NB_SYM_MUL, t->args + 1, t->n_args - 1);
}

static const nb_expr *scaled(nb_sym *s, double coef, const nb_expr *rest)
{
    if (coef == 1)
        return rest;
    const nb_expr *c = nbs_num(s, coef);
    if (!c)
        return NULL;
    if (rest->kind != NB_SYM_MUL)
        return nbs_make2(s, NB_SYM_MUL, c, rest);
    tmp_list l;
    tl_init(&l);
    bool ok = tl_push(s, &l, c);
    for (int i = 0; ok && i < rest->n_args; i++)
        ok = tl_push(s, &l, rest->args[i]);
    const nb_expr *r = ok ? tl_build(s, NB_SYM_MUL, &l, 1) : NULL;
    tl_free(s, &l);
    return r;
}

/* Sum: constants folded, like terms collected (2a + 3a = 5a, a - a = 0). */
const nb_expr *nbs_add(nb_sym *s, const nb_expr *const *args, int n)
{
    term *terms = NULL;
    size_t n_terms = 0, cap = 0;
    double constant = 0;
    tmp_list out;
    tl_init(&out);
    const nb_expr *result = NULL;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        if (!args[i]) {
            ok = false;
            break;
        }
        bool flat = args[i]->kind == NB_SYM_ADD;
        int m = flat ? args[i]->n_args : 1;
        for (int j = 0; ok && j < m; j++) {
            const nb_expr *t = flat ? args[i]->args[j] : args[i];
            if (t->kind == NB_SYM_NUM && isfinite(constant + t->value)) {
                constant += t->value;
                continue;
            }
            if (n_terms == cap) {
                term *p = grow_array(s, terms, &cap, sizeof *terms, "terms");
                if (!p) {
                    ok = false;
                    break;
                }
                terms = p;
            }
            term *tm = &terms[n_terms++];
            tm->rest = split_coef(s, t, &tm->coef);
            ok = tm->rest != NULL;
        }
    }
    if (ok) {
        if (n_terms > 1)
            qsort(terms, n_terms, sizeof *terms, cmp_term);
        for (size_t i = 0; ok && i < n_terms;) {
            double coef = terms[i].coef;
            size_t j = i + 1;
            /* merge equal rests; an overflowing sum starts a new group */
            while (j < n_terms && terms[j].rest == terms[i].rest && isfinite(coef + terms[j].coef))
                coef += terms[j++].coef;
            if (coef != 0)
                ok = tl_push(s, &out, scaled(s, coef, terms[i].rest));
            i = j;
        }
    }
    if (ok && constant != 0)
        ok = tl_push(s, &out, nbs_num(s, constant));
    if (ok)
        result = tl_build(s, NB_SYM_ADD, &out, 0);
    if (terms)
        s->alloc(s->ud, terms, cap * sizeof *terms, 0);
    tl_free(s, &out);
    return result;
}

/* A factor as base ^ exponent. */
typedef struct factor {
    const nb_expr *base;
    const nb_expr *exps; /* summed exponent */
} factor;

static int cmp_factor(const void *pa, const void *pb)
{
    const factor *a = pa, *b = pb;
    return nbs_cmp(a->base, b->base);
}

/* Product: constants folded, 0 absorbs, like factors collected
 * (a*a = a^2, a^b*a^c = a^(b+c), a/a = 1). */
const nb_expr *nbs_mul(nb_sym *s, const nb_expr *const *args, int n)
{
    factor *fs = NULL;
    size_t n_fs = 0, cap = 0;
    double coef = 1;
    tmp_list out, nums;
    tl_init(&out);
    tl_init(&nums);
    const nb_expr *result = NULL;
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        if (!args[i]) {
            ok = false;
            break;
        }
        bool flat = args[i]->kind == NB_SYM_MUL;
        int m = flat ? args[i]->n_args : 1;
        for (int j = 0; ok && j < m; j++) {
            const nb_expr *f = flat ? args[i]->args[j] : args[i];
            if (f->kind == NB_SYM_NUM) {
                if (f->value == 0) {
                    coef = 0;
                } else if (isfinite(coef * f->value) && coef * f->value != 0) {
                    coef *= f->value;
                } else {
                    ok = tl_push(s, &nums, f); /* would overflow: kept apart */
                }
                continue;
            }
            if (n_fs == cap) {
                factor *p = grow_array(s, fs, &cap, sizeof *fs, "factors");
                if (!p) {
                    ok = false;
                    break;
                }
                fs = p;
            }
            factor *fc = &fs[n_fs++];
            if (f->kind == NB_SYM_POW) {
                fc->base = f->args[0];
                fc->exps = f->args[1];
            } else {
                fc->base = f;
                fc->exps = nbs_num(s, 1);
                ok = fc->exps != NULL;
            }
        }
    }
    if (ok && coef == 0) {
        result = nbs_num(s, 0);
        goto done;
    }
    if (ok) {
        if (n_fs > 1)
            qsort(fs, n_fs, sizeof *fs, cmp_factor);
        for (size_t i = 0; ok && i < n_fs;) {
            size_t j = i + 1;
            while (j < n_fs && fs[j].base == fs[i].base)
                j++;
            const nb_expr *e = fs[i].exps;
            if (j > i + 1) {
                tmp_list ex;
                tl_init(&ex);
                for (size_t k = i; ok && k < j; k++)
                    ok = tl_push(s, &ex, fs[k].exps);
                e = ok ? nbs_add(s, ex.at, (int)ex.n) : NULL;
                tl_free(s, &ex);
                ok = e != NULL;
            }
            const nb_expr *p = ok ? nbs_pow(s, fs[i].base, e) : NULL;
            ok = p != NULL;
            if (ok && p->kind == NB_SYM_NUM) {
                if (p->value == 0) {
                    coef = 0;
                } else if (isfinite(coef * p->value) && coef * p->value != 0) {
                    coef *= p->value;
                } else {
                    ok = tl_push(s, &nums, p);
                }
            } else if (ok && p->kind == NB_SYM_MUL) {
                for (int k = 0; ok && k < p->n_args; k++) {
                    if (p->args[k]->kind == NB_SYM_NUM && isfinite(coef * p->args[k]->value) &&
                        coef * p->args[k]->value != 0)
                        coef *= p->args[k]->value;
                    else
                        ok = tl_push(s, &out, p->args[k]);
                }
            } else if (ok) {
                ok = tl_push(s, &out, p);
            }
            i = j;
        }
    }
    if (ok && coef == 0) {
        result = nbs_num(s, 0);
        goto done;
    }
    if (ok && (coef != 1 || (out.n == 0 && nums.n == 0)))
        ok = tl_push(s, &out, nbs_num(s, coef));
    for (size_t i = 0; ok && i < nums.n; i++)
        ok = tl_push(s, &out, nums.at[i]);
    if (ok)
        result = tl_build(s, NB_SYM_MUL, &out, 1);
done:
    if (fs)
        s->alloc(s->ud, fs, cap * sizeof *fs, 0);
    tl_free(s, &out);
    tl_free(s, &nums);
    return result;
}

const nb_expr *nbs_add2(nb_sym *s, const nb_expr *a, const nb_expr *b)
{
    const nb_expr *ab[2] = {a, b};
    return a && b ? nbs_add(s, ab, 2) : NULL;
}

const nb_expr *nbs_mul2(nb_sym *s, const nb_expr *a, const nb_expr *b)
{
    const nb_expr *ab[2] = {a, b};
    return a && b ? nbs_mul(s, ab, 2) : NULL;
}

static bool is_integer(const nb_expr *e)
{
    return e->kind == NB_SYM_NUM && e->value == nearbyint(e->value) && fabs(e->value) < 0x1p53;
}

/* Power: a^0 = 1, a^1 = a, 1^a = 1, constants folded, and for an integer
 * constant n: (a^b)^n = a^(b*n), (a*b)^n = a^n*b^n. */
const nb_expr *nbs_pow(nb_sym *s, const nb_expr *b, const nb_expr *e)
{
    if (!b || !e)
        return NULL;
    if (nbs_is_num(e, 0) || nbs_is_num(b, 1))
        return nbs_num(s, 1);
    if (nbs_is_num(e, 1))
        return b;
    if (b->kind == NB_SYM_NUM && e->kind == NB_SYM_NUM) {
        double r = pow(b->value, e->value);
        if (isfinite(r))
            return nbs_num(s, r);
    }
    if (is_integer(e) && b->kind == NB_SYM_POW)
        return nbs_pow(s, b->args[0], nbs_mul2(s, b->args[1], e));
    if (is_integer(e) && b->kind == NB_SYM_MUL) {
        tmp_list l;
        tl_init(&l);
        bool ok = true;
        for (int i = 0; ok && i < b->n_args; i++)
            ok = tl_push(s, &l, nbs_pow(s, b->args[i], e));
        const nb_expr *r = ok ? nbs_mul(s, l.at, (int)l.n) : NULL;
        tl_free(s, &l);
        return r;
    }
    return nbs_make2(s, NB_SYM_POW, b, e);
}

/* Functions: folded at constants when the value is finite. */
const nb_expr *nbs_fn(nb_sym *s, nb_sym_kind kind, const nb_expr *a)
{
    if (!a)
        return NULL;
    if (a->kind == NB_SYM_NUM) {
        double r = nbs_apply_num(kind, &a->value, 1);
        if (isfinite(r))
            return nbs_num(s, r);
    }
    return nbs_make1(s, kind, a);
}

/* max and min: folded at constants; max(a,a) = min(a,a) = a. */
const nb_expr *nbs_fn2(nb_sym *s, nb_sym_kind kind, const nb_expr *a, const nb_expr *b)
{
    if (!a || !b)
        return NULL;
    if (a == b)
        return a;
    if (a->kind == NB_SYM_NUM && b->kind == NB_SYM_NUM) {
        double x[2] = {a->value, b->value};
        return nbs_num(s, nbs_apply_num(kind, x, 2));
    }
    return nbs_make2(s, kind, a, b);
}

const nb_expr *nbs_rebuild(nb_sym *s, const nb_expr *e, const nb_expr *const *args)
{
    switch (e->kind) {
    case NB_SYM_NUM:
    case NB_SYM_VAR: return e;
    case NB_SYM_ADD: return nbs_add(s, args, e->n_args);
    case NB_SYM_MUL: return nbs_mul(s, args, e->n_args);
    case NB_SYM_POW: return nbs_pow(s, args[0], args[1]);
    case NB_SYM_MAX:
    case NB_SYM_MIN: return nbs_fn2(s, e->kind, args[0], args[1]);
    default: return nbs_fn(s, e->kind, args[0]);
    }
}

static const nb_expr *simplify(nb_sym *s, const nb_expr *e, uint64_t epoch)
{
    nb_expr *m = (nb_expr *)e; /* scratch memo only */
    if (m->mark == epoch)
        return m->memo.expr;
    const nb_expr *r = e;
    if (e->n_args > 0) {
        tmp_list l;
        tl_init(&l);
        bool ok = true;
        for (int i = 0; ok && i < e->n_args; i++)
            ok = tl_push(s, &l, simplify(s, e->args[i], epoch));
        r = ok ? nbs_rebuild(s, e, l.at) : NULL;
        tl_free(s, &l);
    }
    if (r) {
        m->mark = epoch;
        m->memo.expr = r;
    }
    return r;
}

const nb_expr *nb_sym_simplify(nb_sym *s, const nb_expr *e)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_simplify");
    if (!e) {
        nbs_error(s, NB_ERR_NULL, -1, "simplify: expression is NULL");
        return NULL;
    }
    return nbs_simplify(s, e);
}

const nb_expr *nbs_simplify(nb_sym *s, const nb_expr *e)
{
    return simplify(s, e, nbs_new_epoch(s));
}
