/* Printing with the fewest parentheses: a + (-1)*b prints as "a - b",
 * a * b^(-1) as "a/b", numbers so that they read back exactly. */

#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Binding strength, loosest first. */
enum { P_SUM = 1, P_PROD = 2, P_NEG = 3, P_POW = 4, P_ATOM = 5 };

typedef struct out {
    nb_sym *s;
    size_t len;
    bool failed;
} out;

static void put(out *o, const char *text, size_t n)
{
    nb_sym *s = o->s;
    if (o->failed)
        return;
    if (n > NB_SYM_MAX_PRINT - o->len) {
        nbs_error(s, NB_ERR_ARG, -1, "printed expression longer than %d bytes", NB_SYM_MAX_PRINT);
        o->failed = true;
        return;
    }
    if (o->len + n + 1 > s->text_cap) {
        size_t cap = s->text_cap ? s->text_cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = s->alloc(s->ud, s->text, s->text_cap, cap);
        if (!p) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (text of %zu bytes)", cap);
            o->failed = true;
            return;
        }
        s->text = p;
        s->text_cap = cap;
    }
    memcpy(s->text + o->len, text, n);
    o->len += n;
    s->text[o->len] = '\0';
}

static void puts_(out *o, const char *text)
{
    put(o, text, strlen(text));
}

static void put_num(out *o, double v)
{
    char buf[40];
    if (v == nearbyint(v) && fabs(v) < 1e15) { /* integers in full: 1000, not 1e+03 */
        snprintf(buf, sizeof buf, "%.0f", v);
        puts_(o, buf);
        return;
    }
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    puts_(o, buf);
}

static bool neg_exponent(const nb_expr *e)
{
    return e->kind == NB_SYM_POW && e->args[1]->kind == NB_SYM_NUM && e->args[1]->value < 0;
}

/* Whether a term of a sum prints with a leading minus. */
static bool negative(const nb_expr *e)
{
    if (e->kind == NB_SYM_NUM)
        return e->value < 0;
    return e->kind == NB_SYM_MUL && e->args[0]->kind == NB_SYM_NUM && e->args[0]->value < 0;
}

static int prec(const nb_expr *e)
{
    switch (e->kind) {
    case NB_SYM_NUM: return e->value < 0 ? P_NEG : P_ATOM;
    case NB_SYM_ADD: return P_SUM;
    case NB_SYM_MUL: return P_PROD;
    case NB_SYM_POW: return neg_exponent(e) ? P_PROD : P_POW;
    default: return P_ATOM;
    }
}

static void print(out *o, const nb_expr *e, int ctx);

/* The factors args[0..n) as a product; with @p negate the sign is flipped. */
static void print_product(out *o, const nb_expr *const *args, int n, bool negate)
{
    double coef = 1;
    int first = 0;
    if (n > 0 && args[0]->kind == NB_SYM_NUM) {
        coef = args[0]->value;
        first = 1;
    }
    if (negate)
        coef = -coef;
    int n_num = 0, n_den = 0;
    for (int i = first; i < n; i++)
        neg_exponent(args[i]) ? n_den++ : n_num++;
    if (coef < 0) {
        puts_(o, "-");
        coef = -coef;
    }
    bool wrote = false;
    if (coef != 1 || n_num == 0) {
        put_num(o, coef);
        wrote = true;
    }
    for (int i = first; i < n; i++) {
        if (neg_exponent(args[i]))
            continue;
        if (wrote)
            puts_(o, "*");
        print(o, args[i], P_POW);
        wrote = true;
    }
    if (n_den == 0)
        return;
    puts_(o, n_den > 1 ? "/(" : "/");
    wrote = false;
    for (int i = first; i < n; i++) {
        if (!neg_exponent(args[i]))
            continue;
        if (wrote)
            puts_(o, "*");
        double k = -args[i]->args[1]->value;
        if (k == 1) {
            print(o, args[i]->args[0], P_POW);
        } else {
            print(o, args[i]->args[0], P_ATOM);
            puts_(o, "^");
            put_num(o, k);
        }
        wrote = true;
    }
    if (n_den > 1)
        puts_(o, ")");
}

static void print_term(out *o, const nb_expr *e, bool negate)
{
    if (e->kind == NB_SYM_NUM)
        put_num(o, negate ? -e->value : e->value);
    else if (e->kind == NB_SYM_MUL)
        print_product(o, e->args, e->n_args, negate);
    else
        print(o, e, P_PROD);
}

static void print(out *o, const nb_expr *e, int ctx)
{
    if (o->failed)
        return;
    bool paren = prec(e) < ctx;
    if (paren)
        puts_(o, "(");
    switch (e->kind) {
    case NB_SYM_NUM: put_num(o, e->value); break;
    case NB_SYM_VAR: puts_(o, e->name); break;
    case NB_SYM_ADD: {
        /* a positive term first, then the others in order, a constant last:
         * 1 - x rather than -x + 1, x + 1 rather than 1 + x */
        int n = e->n_args, konst = e->args[0]->kind == NB_SYM_NUM ? 1 : 0, lead = -1;
        for (int k = 0; k < n && lead < 0; k++)
            if (!negative(e->args[(k + konst) % n]))
                lead = (k + konst) % n;
        if (lead < 0)
            lead = konst % n;
        print(o, e->args[lead], P_SUM);
        for (int k = 0; k < n; k++) {
            int i = (k + konst) % n;
            if (i == lead)
                continue;
            bool neg = negative(e->args[i]);
            puts_(o, neg ? " - " : " + ");
            print_term(o, e->args[i], neg);
        }
        break;
    }
    case NB_SYM_MUL: print_product(o, e->args, e->n_args, false); break;
    case NB_SYM_POW:
        if (neg_exponent(e)) {
            print_product(o, &e, 1, false);
        } else {
            print(o, e->args[0], P_ATOM);
            puts_(o, "^");
            print(o, e->args[1], P_POW);
        }
        break;
    default:
        puts_(o, nbs_kind_name(e->kind));
        puts_(o, "(");
        for (int i = 0; i < e->n_args; i++) {
            if (i)
                puts_(o, ", ");
            print(o, e->args[i], P_SUM);
        }
        puts_(o, ")");
        break;
    }
    if (paren)
        puts_(o, ")");
}

const char *nb_sym_str(nb_sym *s, const nb_expr *e)
{
    if (!s)
        return NULL;
    nbs_clear(s);
    if (!e) {
        nbs_error(s, NB_ERR_NULL, -1, "str: expression is NULL");
        return NULL;
    }
    out o = {s, 0, false};
    put(&o, "", 0);
    print(&o, e, P_SUM);
    return o.failed ? NULL : s->text;
}
