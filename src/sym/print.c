/* Printing with the fewest parentheses: a + (-1)*b prints as "a - b",
 * a * b^(-1) as "a/b", numbers so that they read back exactly. The text of
 * an expression the parser made reads back to the same node: a sign or a
 * slash is written only where the parser turns it back into the same
 * factors (see parse.c for how products are built). */

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

/* Whether the power e prints as a denominator, "/b" or "/b^k": a constant
 * negative exponent, as the parser reads a / b and a / b^k (k constant).
 * b^(-1) with b = c^k is not one: "/c^k" reads back as c^(-k). */
static bool denominator(const nb_expr *e)
{
    if (e->kind != NB_SYM_POW || e->args[1]->kind != NB_SYM_NUM || e->args[1]->value >= 0)
        return false;
    const nb_expr *b = e->args[0];
    return !(e->args[1]->value == -1 && b->kind == NB_SYM_POW && b->args[1]->kind == NB_SYM_NUM);
}

static int n_constants(const nb_expr *e)
{
    int n = 0;
    while (n < e->n_args && e->args[n]->kind == NB_SYM_NUM)
        n++;
    return n;
}

/* Whether a term of a sum prints as " - t", where the parser reads -t back
 * to the term: a negative number, or a product whose one constant factor
 * (its coefficient) is negative. */
static bool negative(const nb_expr *e)
{
    if (e->kind == NB_SYM_NUM)
        return e->value < 0;
    return e->kind == NB_SYM_MUL && n_constants(e) == 1 && e->args[0]->value < 0;
}

static int prec(const nb_expr *e)
{
    switch (e->kind) {
    case NB_SYM_NUM: return e->value < 0 ? P_NEG : P_ATOM;
    case NB_SYM_ADD: return P_SUM;
    case NB_SYM_MUL: return P_PROD;
    case NB_SYM_POW: return denominator(e) ? P_PROD : P_POW;
    default: return P_ATOM;
    }
}

static void print(out *o, const nb_expr *e, int ctx);

/* The factors args[0..n) as a product, sorted as the pool keeps them
 * (constants first); with @p negate (one negative constant) the sign is
 * flipped. One constant is a coefficient: "-x", "2*x", "-2/x". Several
 * constants (whose product the parser could not fold) are printed as
 * factors. Denominators follow the numerator one by one: "x/y/z" (the
 * parser reads "x/(y*z)" as x*(y*z)^(-1), another expression). */
static void print_product(out *o, const nb_expr *const *args, int n, bool negate)
{
    double coef = 1;
    int first = 0;
    if (n > 0 && args[0]->kind == NB_SYM_NUM && (n == 1 || args[1]->kind != NB_SYM_NUM)) {
        coef = args[0]->value;
        first = 1;
    }
    if (negate)
        coef = -coef;
    int n_num = 0, n_den = 0;
    for (int i = first; i < n; i++)
        denominator(args[i]) ? n_den++ : n_num++;
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
        if (denominator(args[i]))
            continue;
        if (wrote)
            puts_(o, "*");
        print(o, args[i], P_POW);
        wrote = true;
    }
    for (int i = first; i < n; i++) {
        if (!denominator(args[i]))
            continue;
        puts_(o, "/");
        double k = -args[i]->args[1]->value;
        if (k == 1) {
            print(o, args[i]->args[0], P_POW);
        } else {
            print(o, args[i]->args[0], P_ATOM);
            puts_(o, "^");
            put_num(o, k);
        }
    }
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
        if (denominator(e)) {
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
    nbs_clear(s, "nb_sym_str");
    if (!e) {
        nbs_error(s, NB_ERR_NULL, -1, "str: expression is NULL");
        return NULL;
    }
    out o = {s, 0, false};
    put(&o, "", 0);
    print(&o, e, P_SUM);
    return o.failed ? NULL : s->text;
}
