/* Symbolic differentiation: the seed example, a corpus checked four ways
 * (symbolic, reverse, forward, central differences), hash-consing and
 * expression swell, the simplifier, printing, and bad input. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const nb_expr *parse(nb_sym *s, const char *text)
{
    const nb_expr *e = nb_sym_parse(s, text, strlen(text));
    if (!e)
        fail_msg("parse '%s': %s", text, nb_sym_error(s)->msg);
    return e;
}

static double eval3(nb_sym *s, const nb_expr *e, double x, double y, double z)
{
    const char *names[3] = {"x", "y", "z"};
    double v[3] = {x, y, z}, out;
    nb_status st = nb_sym_eval(s, e, 3, names, v, &out);
    if (st != NB_OK)
        fail_msg("eval: %s", nb_sym_error(s)->msg);
    return out;
}

static bool close_rel(double a, double b, double tol)
{
    double scale = fmax(1.0, fmax(fabs(a), fabs(b)));
    return fabs(a - b) <= tol * scale;
}

/* ---------------------------------------------------------- seed example */

/* d/dx (ln x + x^2 y - sin(xy)) = 1/x + 2xy - y cos(xy): the printed form,
 * the same node as the expected formula, and equal values at 20 points. */
static void test_seed_example(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    const nb_expr *f = parse(s, "ln(x) + x^2*y - sin(x*y)");
    const nb_expr *df = nb_sym_diff(s, f, "x");
    assert_non_null(df);
    const char *text = nb_sym_str(s, df);
    assert_non_null(text);
    assert_string_equal(text, "1/x + 2*x*y - y*cos(x*y)");
    /* the text reads back to the same simplified node as the expected form */
    const nb_expr *back = nb_sym_simplify(s, parse(s, text));
    const nb_expr *want = nb_sym_simplify(s, parse(s, "1/x + 2*x*y - y*cos(x*y)"));
    assert_ptr_equal(back, df);
    assert_ptr_equal(want, df);

    nb_rng rng;
    nb_rng_seed(&rng, 42);
    for (int i = 0; i < 20; i++) {
        double x = 0.1 + 3 * nb_rng_uniform(&rng), y = -2 + 4 * nb_rng_uniform(&rng);
        double got = eval3(s, df, x, y, 0);
        double expect = 1 / x + 2 * x * y - y * cos(x * y);
        assert_true(close_rel(got, expect, 1e-14));
    }
    nb_sym_free(s);
}

/* ---------------------------------------------------------------- corpus */

typedef struct corpus_entry {
    const char *text;
    double lo, hi; /* every variable drawn from [lo, hi] */
} corpus_entry;

static const corpus_entry corpus[] = {
    {"x + y", -2, 2},
    {"x - y", -2, 2},
    {"x*y", -2, 2},
    {"x/y", 0.5, 2},
    {"-x", -2, 2},
    {"x^2", -2, 2},
    {"x^3 - 2*x^2 + x - 7", -2, 2},
    {"x^-2", 0.3, 2},
    {"x^-3 + y", -2, -0.3},
    {"x^0.5*y", 0.2, 2},
    {"x^y", 0.2, 2},
    {"2^x", -2, 2},
    {"x^(y^2)", 0.3, 2},
    {"x^y^z", 0.3, 1.5},
    {"(x+y)^3", -2, 2},
    {"(x*y)^-1", 0.5, 2},
    {"(x^2+1)^(y/2)", -2, 2},
    {"sin(x)", -3, 3},
    {"cos(x*y)", -2, 2},
    {"tan(x)", -1, 1},
    {"exp(x)", -2, 2},
    {"ln(x)", 0.1, 3},
    {"log(x*y)", 0.2, 2},
    {"sqrt(x)", 0.1, 3},
    {"tanh(x)", -2, 2},
    {"sigmoid(x)", -4, 4},
    {"abs(x)", -2, 2},
    {"erf(x)", -2, 2},
    {"pow(x, 3)", -2, 2},
    {"pow(x, y)", 0.3, 2},
    {"max(x, y)", -2, 2},
    {"min(x, y)", -2, 2},
    {"sin(cos(x))", -2, 2},
    {"exp(sin(x)*y)", -2, 2},
    {"ln(1 + x^2)", -2, 2},
    {"sqrt(x^2 + y^2)", 0.2, 2},
    {"tanh(x*y + z)", -2, 2},
    {"sigmoid(x*y - z)", -2, 2},
    {"abs(x - y)*z", -2, 2},
    {"erf(x/2)*exp(-y^2)", -2, 2},
    {"max(x^2, y)*min(y, z)", -2, 2},
    {"sin(x)/cos(y)", -1, 1},
    {"x/(1 + exp(-x))", -3, 3},
    {"x*sigmoid(1.702*x)", -3, 3},
    {"0.5*x*(1 + erf(x/sqrt(2)))", -3, 3},
    {"0.5*x*(1 + tanh(0.7978845608*(x + 0.044715*x^3)))", -3, 3},
    {"ln(sigmoid(x))", -3, 3},
    {"ln(exp(x) + exp(y))", -2, 2},
    {"x^2*y^3*z^4", -2, 2},
    {"(x - y)^2/(x + y)", 0.5, 2},
    {"sin(x)^2 + cos(x)^2", -2, 2},
    {"tan(sin(x))", -2, 2},
    {"exp(tan(x/2))", -1, 1},
    {"sqrt(1 + sin(x)^2)", -2, 2},
    {"1/sqrt(x)", 0.2, 2},
    {"x/y/z", 0.5, 2},
    {"x - y - z", -2, 2},
    {"-(x - y)^2", -2, 2},
    {"-x^2 + y", -2, 2},
    {"2.5e-1*x + 1e2*y", -2, 2},
    {"abs(sin(x*y))", -2, 2},
    {"max(sin(x), cos(y))", -2, 2},
    {"min(x, 1) + max(y, -1)", -2, 2},
    {"erf(sqrt(x))", 0.2, 2},
    {"x^x", 0.3, 2},
    {"ln(abs(x) + 1)", -2, 2},
    {"sigmoid(-x^2)*tanh(y)", -2, 2},
    {"pow(sin(x), 2)*pow(x, -1)", 0.5, 2},
    {"exp(-x)*sin(y)/(1 + z^2)", -2, 2},
    {"(x + y + z)^-1", 0.3, 2},
    {"sign(x)*x", -2, 2},
    {"x^(-y)", 0.3, 2},
    {"ln(x)^2", 0.3, 2},
    {"sqrt(sqrt(x)*y)", 0.2, 2},
    {"cos(x)^-2 - tan(x)^2", -1, 1},
};
#define N_CORPUS ((int)(sizeof corpus / sizeof corpus[0]))

static const char *const var_names[3] = {"x", "y", "z"};

/* Central difference of e in variable k, step h. */
static double central(nb_sym *s, const nb_expr *e, const double *p, int k, double h)
{
    double a[3] = {p[0], p[1], p[2]}, b[3] = {p[0], p[1], p[2]};
    a[k] += h;
    b[k] -= h;
    return (eval3(s, e, a[0], a[1], a[2]) - eval3(s, e, b[0], b[1], b[2])) / (2 * h);
}

/* Every entry: at random points where it is defined and smooth, the
 * symbolic derivative, reverse mode, forward mode (nb_jvp) and central
 * differences (with one Richardson step) agree to 1e-8 relative in f64. */
static void test_corpus_four_ways(void **state)
{
    (void)state;
    assert_true(N_CORPUS >= 60);
    bool seen[NB_SYM_KIND_COUNT] = {false};
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int c = 0; c < N_CORPUS; c++) {
        nb_sym *s = nb_sym_new();
        const nb_expr *f = parse(s, corpus[c].text);
        const nb_expr *df[3];
        for (int k = 0; k < 3; k++) {
            df[k] = nb_sym_diff(s, f, var_names[k]);
            assert_non_null(df[k]);
        }
        /* record which kinds the corpus covers */
        const nb_expr *stack[256];
        int top = 0;
        stack[top++] = f;
        while (top > 0) {
            const nb_expr *e = stack[--top];
            seen[nb_expr_kind(e)] = true;
            for (int i = 0; i < nb_expr_arity(e) && top < 256; i++)
                stack[top++] = nb_expr_arg(e, i);
        }

        int good = 0;
        for (int attempt = 0; attempt < 40 && good < 4; attempt++) {
            double p[3];
            for (int k = 0; k < 3; k++)
                p[k] = corpus[c].lo + (corpus[c].hi - corpus[c].lo) * nb_rng_uniform(&rng);
            double fv = eval3(s, f, p[0], p[1], p[2]);
            if (!isfinite(fv))
                continue;
            double sym[3], num[3];
            bool smooth = true;
            for (int k = 0; k < 3 && smooth; k++) {
                sym[k] = eval3(s, df[k], p[0], p[1], p[2]);
                double h = 1e-3 * fmax(1, fabs(p[k]));
                double d1 = central(s, f, p, k, h), d2 = central(s, f, p, k, h / 2);
                num[k] = (4 * d2 - d1) / 3;
                /* a kink or a pole nearby: pick another point */
                smooth =
                    isfinite(sym[k]) && isfinite(d1) && isfinite(d2) && close_rel(d1, d2, 1e-4);
            }
            if (!smooth)
                continue;
            good++;

            nb_graph *g = nb_graph_new();
            nb_tensor *xs[3];
            for (int k = 0; k < 3; k++)
                xs[k] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, p[k]), true);
            nb_tensor *y = nb_sym_to_graph(g, s, f, 3, var_names, xs);
            if (!y)
                fail_msg("%s: to_graph: %s", corpus[c].text, nb_sym_error(s)->msg);
            assert_true(close_rel(nb_tensor_item(y), fv, 1e-12));
            assert_int_equal(nb_backward(g, y), NB_OK);
            for (int k = 0; k < 3; k++) {
                nb_tensor *gr = nb_tensor_grad(xs[k]);
                double rev = gr ? nb_tensor_item(gr) : 0;
                nb_tensor *tan[3], *dy = NULL;
                for (int j = 0; j < 3; j++)
                    tan[j] = nb_scalar(g, NB_F64, j == k);
                assert_int_equal(nb_jvp(g, y, xs, tan, 3, &dy), NB_OK);
                double fwd = nb_tensor_item(dy);
                if (!close_rel(sym[k], rev, 1e-8) || !close_rel(sym[k], fwd, 1e-8) ||
                    !close_rel(sym[k], num[k], 1e-8))
                    fail_msg("%s: d/d%s at (%g, %g, %g): symbolic %.17g reverse %.17g "
                             "forward %.17g numeric %.17g (%s)",
                             corpus[c].text, var_names[k], p[0], p[1], p[2], sym[k], rev, fwd,
                             num[k], nb_sym_str(s, df[k]));
            }
            nb_graph_free(g);
        }
        if (good < 3)
            fail_msg("%s: only %d usable points", corpus[c].text, good);
        nb_sym_free(s);
    }
    /* every function and operator of the language is covered */
    for (int k = NB_SYM_NUM; k < NB_SYM_KIND_COUNT; k++)
        if (!seen[k])
            fail_msg("corpus misses kind %d", k);
}

/* Printing and reading back gives the same simplified node, for the corpus
 * and for its derivatives. */
static void test_print_reads_back(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    for (int c = 0; c < N_CORPUS; c++) {
        const nb_expr *f = parse(s, corpus[c].text);
        const nb_expr *forms[3] = {f, nb_sym_simplify(s, f), nb_sym_diff(s, f, "x")};
        for (int i = 0; i < 3; i++) {
            const char *text = nb_sym_str(s, forms[i]);
            assert_non_null(text);
            char *copy = strdup(text);
            const nb_expr *back = parse(s, copy);
            if (nb_sym_simplify(s, back) != nb_sym_simplify(s, forms[i]))
                fail_msg("%s: '%s' reads back as '%s'", corpus[c].text, copy,
                         nb_sym_str(s, nb_sym_simplify(s, back)));
            free(copy);
        }
    }
    nb_sym_free(s);
}

/* ---------------------------------------------------------- hash-consing */

static const nb_expr *first_of_kind(const nb_expr *e, nb_sym_kind k)
{
    if (nb_expr_kind(e) == k)
        return e;
    for (int i = 0; i < nb_expr_arity(e); i++) {
        const nb_expr *r = first_of_kind(nb_expr_arg(e, i), k);
        if (r)
            return r;
    }
    return NULL;
}

/* sin(x)*sin(x) + sin(x) holds one sin(x) node: the DAG has 4 nodes (x,
 * sin, *, +), the tree 8; commuted operands are the same node. */
static void test_hash_consing(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    const nb_expr *e = parse(s, "sin(x)*sin(x) + sin(x)");
    assert_int_equal(nb_sym_node_count(s), 4);
    assert_int_equal(nb_sym_dag_size(s, e), 4);
    assert_true(nb_sym_tree_size(e) == 8);
    const nb_expr *sinx = first_of_kind(e, NB_SYM_SIN);
    const nb_expr *prod = first_of_kind(e, NB_SYM_MUL);
    assert_non_null(prod);
    assert_ptr_equal(nb_expr_arg(prod, 0), sinx);
    assert_ptr_equal(nb_expr_arg(prod, 1), sinx);
    /* parsing sin(x) again finds the node: nothing new */
    assert_ptr_equal(parse(s, "sin(x)"), sinx);
    assert_int_equal(nb_sym_node_count(s), 4);

    assert_ptr_equal(parse(s, "x*y"), parse(s, "y*x"));
    assert_ptr_equal(parse(s, "x+y+z"), parse(s, "z+(y+x)"));
    assert_ptr_equal(parse(s, "max(x, y)"), parse(s, "max(y, x)"));
    assert_ptr_not_equal(parse(s, "x^y"), parse(s, "y^x"));
    assert_ptr_not_equal(parse(s, "x-y"), parse(s, "y-x"));
    nb_sym_free(s);
}

/* The derivative of a 20-deep nested composition: the DAG grows by the
 * same number of nodes per level, the tree much faster (a chain of
 * functions: quadratic). And u -> u*sin(u), which uses its argument twice:
 * the tree grows exponentially, the DAG polynomially. */
static void test_swell_contained(void **state)
{
    (void)state;
    static const char *const fns[] = {"sin", "exp", "cos", "tanh", "sigmoid"};
    nb_sym *s = nb_sym_new();
    int64_t dag[21];
    double tree[21];
    char text[512] = "x";
    for (int k = 1; k <= 20; k++) {
        char next[512];
        snprintf(next, sizeof next, "%s(%s)", fns[(k - 1) % 5], text);
        memcpy(text, next, sizeof text);
        const nb_expr *d = nb_sym_diff(s, parse(s, text), "x");
        assert_non_null(d);
        dag[k] = nb_sym_dag_size(s, d);
        tree[k] = nb_sym_tree_size(d);
    }
    /* linear: past the first cycle of functions, every 5 levels add the
     * same number of nodes; the tree adds more and more */
    for (int k = 11; k <= 20; k++)
        assert_int_equal(dag[k] - dag[k - 5], dag[10] - dag[5]);
    assert_true(dag[20] <= 3 * 20);
    assert_true(tree[10] - tree[5] < tree[15] - tree[10]);
    assert_true(tree[15] - tree[10] < tree[20] - tree[15]);
    assert_true(tree[20] > 6 * dag[20]);

    /* u -> u*sin(u): the function itself is a 2^k tree */
    const nb_expr *u = nb_sym_var(s, "x");
    for (int k = 1; k <= 20; k++) {
        const nb_expr *sn = nb_sym_apply(s, NB_SYM_SIN, &u, 1);
        const nb_expr *args[2] = {u, sn};
        u = nb_sym_apply(s, NB_SYM_MUL, args, 2);
        const nb_expr *d = nb_sym_diff(s, u, "x");
        assert_non_null(d);
        dag[k] = nb_sym_dag_size(s, d);
        tree[k] = nb_sym_tree_size(d);
    }
    /* products are flattened, so each level's derivative is a sum of
     * products of all earlier factors: the DAG grows quadratically (one more
     * node per level than the level before), the tree exponentially */
    for (int k = 3; k <= 20; k++)
        assert_int_equal((dag[k] - dag[k - 1]) - (dag[k - 1] - dag[k - 2]), 1);
    assert_true(tree[20] > 1e6 * (double)dag[20]);
    assert_true(tree[20] / tree[10] > 500);
    /* writing it out would exceed the print limit: a clear error */
    assert_null(nb_sym_str(s, nb_sym_diff(s, u, "x")));
    assert_int_equal(nb_sym_status(s), NB_ERR_ARG);
    assert_non_null(strstr(nb_sym_error(s)->msg, "longer than"));
    nb_sym_free(s);
}

/* ------------------------------------------------------------ simplifier */

static void expect_simple(nb_sym *s, const char *in, const char *out)
{
    const nb_expr *e = nb_sym_simplify(s, parse(s, in));
    assert_non_null(e);
    const char *text = nb_sym_str(s, e);
    if (!text || strcmp(text, out) != 0)
        fail_msg("simplify '%s': got '%s', want '%s'", in, text ? text : "(null)", out);
}

static void test_simplifier(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    expect_simple(s, "2 + 3*4", "14");
    expect_simple(s, "x - x", "0");
    expect_simple(s, "x/x", "1");
    expect_simple(s, "sin(y)/sin(y)", "1");
    expect_simple(s, "x + 0", "x");
    expect_simple(s, "1*x", "x");
    expect_simple(s, "0*ln(x)", "0");
    expect_simple(s, "x^1", "x");
    expect_simple(s, "x^0", "1");
    expect_simple(s, "1^x", "1");
    expect_simple(s, "2*x + 3*x - x", "4*x");
    expect_simple(s, "x*y - y*x", "0");
    expect_simple(s, "x*x*x", "x^3");
    expect_simple(s, "x^y*x^z", "x^(y + z)");
    expect_simple(s, "x^2/x^5", "1/x^3");
    expect_simple(s, "(x^2)^3", "x^6");
    expect_simple(s, "(x^y)^2", "x^(2*y)");
    expect_simple(s, "(2*x)^-1", "0.5/x");
    expect_simple(s, "sin(0) + cos(0)", "1");
    expect_simple(s, "max(x, x)", "x");
    expect_simple(s, "max(2, -3)", "2");
    /* not exact everywhere, so not done */
    expect_simple(s, "(x^2)^0.5", "(x^2)^0.5");
    expect_simple(s, "sqrt(x^2)", "sqrt(x^2)");
    expect_simple(s, "ln(exp(x))", "ln(exp(x))");
    expect_simple(s, "sin(x)^2 + cos(x)^2", "sin(x)^2 + cos(x)^2");
    expect_simple(s, "x*(y + 1)", "x*(y + 1)");
    /* constants that are not finite stay symbolic */
    expect_simple(s, "ln(-1)", "ln(-1)");
    expect_simple(s, "1/0", "1/0");
    expect_simple(s, "exp(1000)", "exp(1000)");
    /* simplification is idempotent */
    const nb_expr *e = nb_sym_simplify(s, parse(s, "x^2*y + 3*x*(y/x) - sin(x)^2*x"));
    assert_ptr_equal(nb_sym_simplify(s, e), e);
    nb_sym_free(s);
}

/* Printing uses the fewest parentheses. */
static void test_printing(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    static const char *const same[] = {
        "x^y^z",     "(x^y)^z", "-x^2",      "(-2)^x",  "2^(-x)",     "x - (y - z)",
        "a*(b + c)", "1/(x*y)", "x/(y + 1)", "-x",      "sin(x + 1)", "max(x, y + 1)",
        "2*x^3",     "x^(1/y)", "1e+300*x",  "0.1 + x",
    };
    static const char *const want[] = {
        "x^y^z",     "(x^y)^z", "-x^2",      "(-2)^x",  "2^(-x)",     "x - (y - z)",
        "a*(b + c)", "1/(x*y)", "x/(y + 1)", "-x",      "sin(x + 1)", "max(x, y + 1)",
        "2*x^3",     "x^(1/y)", "1e+300*x",  "x + 0.1",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        const char *text = nb_sym_str(s, parse(s, same[i]));
        if (!text || strcmp(text, want[i]) != 0)
            fail_msg("print '%s': got '%s', want '%s'", same[i], text ? text : "(null)", want[i]);
    }
    nb_sym_free(s);
}

/* ------------------------------------------------------------ round trip */

/* Parse, print, parse the text again: the same node (so the same value,
 * bit for bit), and the same text when printed again. */
static void expect_round_trip(nb_sym *s, const char *in, const char *want)
{
    const nb_expr *e = nb_sym_parse(s, in, strlen(in));
    if (!e)
        fail_msg("parse '%s': %s", in, nb_sym_error(s)->msg);
    const char *text = nb_sym_str(s, e);
    assert_non_null(text);
    char *copy = strdup(text);
    assert_non_null(copy);
    if (want && strcmp(copy, want) != 0)
        fail_msg("print '%s': got '%s', want '%s'", in, copy, want);
    const nb_expr *back = nb_sym_parse(s, copy, strlen(copy));
    if (back != e)
        fail_msg("'%s' prints as '%s', which reads back as '%s'", in, copy,
                 back ? nb_sym_str(s, back) : nb_sym_error(s)->msg);
    const char *again = nb_sym_str(s, back);
    if (!again || strcmp(again, copy) != 0)
        fail_msg("'%s' prints as '%s', then as '%s'", in, copy, again ? again : "(null)");
    free(copy);
}

/* The libFuzzer finding: "-(-1)*t" was printed for (-1)*(-1)*t and read
 * back as 1*t, a new node, which reordered a sum whose terms cancel
 * (8^64 - 8^64): the value went from 0 to 4.76. Products now fold their
 * constant factors when parsed, and the printer writes only what the
 * parser reads back to the same node. */
static void test_fuzz_sign_of_products(void **state)
{
    (void)state;
    static const char crash[] =
        "8^----t-------t8^-t---------t------t---t------8^8^2-8^8^2----t------t--t";
    const char *names[2] = {"t", "t8"};
    double v[2] = {0.75, 0.875}, before, after;
    nb_sym *s = nb_sym_new();
    const nb_expr *e = parse(s, crash);
    assert_int_equal(nb_sym_eval(s, e, 2, names, v, &before), NB_OK);
    char *text = strdup(nb_sym_str(s, e));
    assert_non_null(text);
    assert_string_equal(text, "t + t + t + t - t - t + 8^t - t8^(-t) + 8^8^2 - 8^8^2");
    assert_ptr_equal(parse(s, text), e);
    assert_int_equal(nb_sym_eval(s, parse(s, text), 2, names, v, &after), NB_OK);
    assert_true(after == before);
    free(text);
    expect_round_trip(s, crash, NULL);
    /* its minimal forms */
    expect_round_trip(s, "--t--8^8^2-8^8^2", "t + 8^8^2 - 8^8^2");
    expect_round_trip(s, "--t", "t");
    expect_round_trip(s, "-(-1)*t", "t");
    expect_round_trip(s, "----t", "t");
    expect_round_trip(s, "---t", "-t");
    expect_round_trip(s, "8^(----t)", "8^t");
    /* the same node however the sign is written */
    assert_ptr_equal(parse(s, "--t"), parse(s, "t"));
    assert_ptr_equal(parse(s, "-2*t + x"), parse(s, "x - 2*t"));
    assert_ptr_equal(parse(s, "-(2*t)"), parse(s, "(-2)*t"));
    assert_ptr_equal(parse(s, "-x*y"), parse(s, "x*(-y)"));
    assert_ptr_equal(parse(s, "2*3*x"), parse(s, "6*x"));
    assert_ptr_equal(parse(s, "1*x"), parse(s, "x"));
    assert_ptr_equal(parse(s, "x/y^2"), parse(s, "x*y^(-2)"));
    assert_ptr_equal(parse(s, "x/y^-1"), parse(s, "x*y^1"));
    /* constants whose product is not a finite nonzero double stay apart */
    const nb_expr *big = parse(s, "1e300*1e300*x");
    assert_int_equal(nb_expr_arity(big), 3);
    expect_round_trip(s, "1e300*1e300*x", "1e+300*1e+300*x");
    expect_round_trip(s, "x - 1e300*1e300*y", "x + (-1)*1e+300*1e+300*y");
    expect_round_trip(s, "1e-300*1e-300*x", "1e-300*1e-300*x");
    expect_round_trip(s, "0*x", "0*x");
    /* what used to read back as another node */
    expect_round_trip(s, "-2*t + x", "x - 2*t");
    nb_sym *fresh = nb_sym_new();
    expect_round_trip(fresh, "1/x/y", "1/x/y");
    nb_sym_free(fresh);
    expect_round_trip(s, "1/(x*y)", "1/(x*y)");
    expect_round_trip(s, "x^-2", "1/x^2");
    expect_round_trip(s, "1/x^2", "1/x^2");
    expect_round_trip(s, "(x^3)^-1", "(x^3)^(-1)");
    expect_round_trip(s, "(x^y)^-1", "1/x^y");
    expect_round_trip(s, "2^-3", "1/2^3");
    expect_round_trip(s, "x - -2/y", "x + 2/y");
    nb_sym_free(s);
}

/* A random expression of the grammar, at most @p depth levels deep. */
static void gen_expr(nb_rng *rng, char *buf, size_t cap, int depth);

static void append(char *buf, size_t cap, const char *text)
{
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, "%s", text);
}

static void gen_primary(nb_rng *rng, char *buf, size_t cap, int depth)
{
    static const char *const numbers[] = {"0",    "1",      "2",       "3",    "0.5", "0.1",
                                          "10",   "1e300",  "1e-300",  "2.5",  "7",   "1e-310",
                                          "1e15", "123456", "0.33333", "1e+3", ".25", "4"};
    static const char *const vars[] = {"x", "y", "z"};
    static const char *const fn1[] = {"sin",  "cos",     "tan", "exp", "ln",   "log",
                                      "sqrt", "sigmoid", "abs", "erf", "sign", "tanh"};
    static const char *const fn2[] = {"pow", "max", "min"};
    uint64_t pick = depth <= 0 ? nb_rng_below(rng, 2) : nb_rng_below(rng, 6);
    if (pick == 0) {
        append(buf, cap, numbers[nb_rng_below(rng, sizeof numbers / sizeof numbers[0])]);
    } else if (pick == 1 || pick == 2) {
        append(buf, cap, vars[nb_rng_below(rng, 3)]);
    } else if (pick == 3) {
        append(buf, cap, fn1[nb_rng_below(rng, sizeof fn1 / sizeof fn1[0])]);
        append(buf, cap, "(");
        gen_expr(rng, buf, cap, depth - 1);
        append(buf, cap, ")");
    } else if (pick == 4) {
        append(buf, cap, fn2[nb_rng_below(rng, 3)]);
        append(buf, cap, "(");
        gen_expr(rng, buf, cap, depth - 1);
        append(buf, cap, ", ");
        gen_expr(rng, buf, cap, depth - 1);
        append(buf, cap, ")");
    } else {
        append(buf, cap, "(");
        gen_expr(rng, buf, cap, depth - 1);
        append(buf, cap, ")");
    }
}

static void gen_unary(nb_rng *rng, char *buf, size_t cap, int depth)
{
    while (nb_rng_below(rng, 4) == 0)
        append(buf, cap, "-");
    gen_primary(rng, buf, cap, depth);
    if (depth > 0 && nb_rng_below(rng, 4) == 0) {
        append(buf, cap, "^");
        gen_unary(rng, buf, cap, depth - 1);
    }
}

static void gen_expr(nb_rng *rng, char *buf, size_t cap, int depth)
{
    int terms = 1 + (int)nb_rng_below(rng, depth > 0 ? 3 : 2);
    for (int t = 0; t < terms; t++) {
        if (t)
            append(buf, cap, nb_rng_below(rng, 2) ? " + " : "-");
        int factors = 1 + (int)nb_rng_below(rng, depth > 0 ? 3 : 2);
        for (int f = 0; f < factors; f++) {
            if (f)
                append(buf, cap, nb_rng_below(rng, 3) ? "*" : "/");
            gen_unary(rng, buf, cap, depth);
        }
    }
}

static bool same_value(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

/* For 1000 random expressions of the grammar (signs, constants that fold
 * or overflow, quotients, powers, every function): printing, parsing the
 * text and printing again gives the same node, the same text and the
 * same value. The simplified form and the derivative read back to
 * expressions with the same value (to rounding) that are fixed points. */
static void test_round_trip_random(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    const char *names[3] = {"x", "y", "z"};
    double v[3] = {0.75, -0.875, 1.25};
    int checked = 0;
    nb_sym *s = NULL;
    for (int i = 0; i < 1000; i++) {
        char in[4096] = "";
        gen_expr(&rng, in, sizeof in, nb_rng_below(&rng, 4) ? 1 + (int)nb_rng_below(&rng, 2) : 3);
        if (strlen(in) >= sizeof in - 1)
            continue;            /* cut short: not an expression of the grammar */
        if (!s || i % 50 == 0) { /* a new pool now and then, a used one otherwise */
            nb_sym_free(s);
            s = nb_sym_new();
        }
        expect_round_trip(s, in, NULL);
        const nb_expr *e = parse(s, in);
        double value, again;
        assert_int_equal(nb_sym_eval(s, e, 3, names, v, &value), NB_OK);
        assert_int_equal(nb_sym_eval(s, parse(s, nb_sym_str(s, e)), 3, names, v, &again), NB_OK);
        if (!same_value(value, again))
            fail_msg("'%s': %.17g, printed and read back %.17g", in, value, again);
        const nb_expr *forms[2] = {nb_sym_simplify(s, e), nb_sym_diff(s, e, "x")};
        for (int k = 0; k < 2; k++) {
            assert_non_null(forms[k]);
            char *text = strdup(nb_sym_str(s, forms[k]));
            assert_non_null(text);
            /* not necessarily the same node (the simplifier keeps some
             * constants apart that the parser folds), but what it reads
             * back to is a fixed point */
            const nb_expr *back = parse(s, text);
            char *text2 = strdup(nb_sym_str(s, back));
            assert_non_null(text2);
            if (parse(s, text2) != back)
                fail_msg("'%s' form %d: '%s' reads back as '%s', which does not", in, k, text,
                         text2);
            assert_int_equal(nb_sym_eval(s, forms[k], 3, names, v, &value), NB_OK);
            assert_int_equal(nb_sym_eval(s, back, 3, names, v, &again), NB_OK);
            if (!same_value(value, again) && !close_rel(value, again, 1e-9))
                fail_msg("'%s' form %d: '%s' is %.17g, read back %.17g", in, k, text, value, again);
            free(text);
            free(text2);
        }
        checked++;
    }
    nb_sym_free(s);
    assert_true(checked > 950);
}

/* ------------------------------------------------------------- bad input */

static void expect_parse_error(const char *text, size_t len, int64_t offset, const char *words)
{
    nb_sym *s = nb_sym_new();
    const nb_expr *e = nb_sym_parse(s, text, len);
    if (e)
        fail_msg("'%.*s' parsed", (int)(len < 40 ? len : 40), text);
    assert_int_equal(nb_sym_status(s), NB_ERR_PARSE);
    if (nb_sym_error(s)->offset != offset || !strstr(nb_sym_error(s)->msg, words))
        fail_msg("'%.*s': got '%s' (offset %lld), want offset %lld and '%s'",
                 (int)(len < 40 ? len : 40), text, nb_sym_error(s)->msg,
                 (long long)nb_sym_error(s)->offset, (long long)offset, words);
    char at[32];
    snprintf(at, sizeof at, " at %lld", (long long)offset);
    assert_non_null(strstr(nb_sym_error(s)->msg, at));
    nb_sym_free(s);
}

/* A parse error's offset, line and column in multi-line text. */
static void test_parse_error_position(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    const char *text = "x + 1\n  * (y -\n   )";
    assert_null(nb_sym_parse(s, text, strlen(text)));
    const nb_error *e = nb_sym_error(s);
    assert_int_equal(e->status, NB_ERR_PARSE);
    assert_string_equal(e->where, "nb_sym_parse");
    assert_int_equal(e->offset, 18); /* the ')' */
    assert_int_equal(e->line, 3);
    assert_int_equal(e->column, 4);
    assert_non_null(strstr(e->msg, "at 18 near ')'"));
    /* on the first line, at its first byte */
    assert_null(nb_sym_parse(s, ")", 1));
    assert_int_equal(e->offset, 0);
    assert_int_equal(e->line, 1);
    assert_int_equal(e->column, 1);
    /* at the end of the text, just after a newline */
    assert_null(nb_sym_parse(s, "x+\n", 3));
    assert_int_equal(e->offset, 3);
    assert_int_equal(e->line, 2);
    assert_int_equal(e->column, 1);
    nb_sym_free(s);
}

static void test_bad_input(void **state)
{
    (void)state;
    expect_parse_error("", 0, 0, "empty expression");
    expect_parse_error("   ", 3, 3, "empty expression");
    expect_parse_error("2+", 2, 2, "expected an operand at 2 near end of input");
    expect_parse_error("sin(", 4, 4, "expected an operand");
    expect_parse_error(")(", 2, 0, "expected an operand at 0 near ')'");
    expect_parse_error("x**y", 4, 2, "'**' is not an operator");
    expect_parse_error("foo(x)", 6, 0, "unknown function 'foo'");
    expect_parse_error("1e999", 5, 0, "number '1e999' overflows a double");
    expect_parse_error("2*1e", 4, 2, "malformed number");
    expect_parse_error("(x + 1", 6, 6, "expected ')' at 6 near end of input");
    expect_parse_error("(x + 1 y", 8, 7, "expected ')' at 7 near 'y'");
    expect_parse_error("x + y)", 6, 5, "unmatched ')'");
    expect_parse_error("3 x", 3, 2, "expected an operator at 2 near 'x'");
    expect_parse_error("sin + 1", 7, 4, "expected '(' after function 'sin'");
    expect_parse_error("max(x)", 6, 5, "max takes 2 arguments, not 1");
    expect_parse_error("ln(x, y)", 8, 7, "ln takes 1 argument, not 2");
    expect_parse_error("x # y", 5, 2, "unexpected character '#'");
    expect_parse_error("x + \xce\xbb", 6, 4, "unexpected character");
    /* embedded NUL: the length is explicit, the NUL is an error */
    expect_parse_error("x+\0y", 4, 2, "unexpected NUL byte");
    /* invalid UTF-8: a lone continuation byte, a truncated sequence, an
     * overlong encoding */
    expect_parse_error("x+\x80", 3, 2, "invalid UTF-8 byte 0x80");
    expect_parse_error("x*\xe2\x82", 4, 2, "invalid UTF-8 byte 0xe2");
    expect_parse_error("\xc0\xaf", 2, 0, "invalid UTF-8 byte 0xc0");

    /* 100000 nested parentheses: an error, not a stack overflow */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    assert_non_null(deep);
    memset(deep, '(', n);
    deep[n] = 'x';
    memset(deep + n + 1, ')', n);
    expect_parse_error(deep, 2 * n + 1, NB_SYM_MAX_NESTING, "nesting deeper than");
    /* the same with unary minus and powers */
    memset(deep, '-', n);
    expect_parse_error(deep, n + 1, NB_SYM_MAX_NESTING, "nesting deeper than");
    for (size_t i = 0; i < n; i++)
        deep[2 * i] = 'x', deep[2 * i + 1] = '^';
    expect_parse_error(deep, 2 * n + 1, 2 * NB_SYM_MAX_NESTING, "nesting deeper than");
    free(deep);

    /* input longer than the limit */
    size_t big = (size_t)NB_SYM_MAX_INPUT + 1;
    char *longtext = malloc(big);
    assert_non_null(longtext);
    memset(longtext, ' ', big);
    longtext[0] = 'x';
    expect_parse_error(longtext, big, NB_SYM_MAX_INPUT, "longer than");
    /* a long flat sum within the limit is fine (no deep recursion) */
    size_t terms = 200000;
    for (size_t i = 0; i < terms; i++)
        longtext[2 * i] = 'x', longtext[2 * i + 1] = '+';
    longtext[2 * terms - 1] = ' ';
    nb_sym *s = nb_sym_new();
    const nb_expr *sum = nb_sym_parse(s, longtext, 2 * terms);
    assert_non_null(sum);
    assert_int_equal(nb_expr_arity(sum), terms);
    assert_string_equal(nb_sym_str(s, nb_sym_simplify(s, sum)), "200000*x");
    free(longtext);

    /* an unknown variable at evaluation and in a graph */
    const nb_expr *e = parse(s, "x + z");
    const char *names[1] = {"x"};
    double v[1] = {1}, out = 0;
    assert_int_equal(nb_sym_eval(s, e, 1, names, v, &out), NB_ERR_NOTFOUND);
    assert_true(isnan(out));
    assert_string_equal(nb_sym_error(s)->msg, "unknown variable 'z'");
    assert_string_equal(nb_sym_error(s)->name, "z");
    assert_string_equal(nb_sym_error(s)->where, "nb_sym_eval");
    nb_graph *g = nb_graph_new();
    nb_tensor *xt = nb_scalar(g, NB_F64, 1);
    assert_null(nb_sym_to_graph(g, s, e, 1, names, &xt));
    assert_int_equal(nb_sym_status(s), NB_ERR_NOTFOUND);
    assert_string_equal(nb_sym_error(s)->name, "z");
    assert_string_equal(nb_sym_error(s)->where, "nb_sym_to_graph");
    nb_graph_free(g);

    /* NULLs and bad arguments */
    assert_null(nb_sym_parse(NULL, "x", 1));
    assert_null(nb_sym_parse(s, NULL, 1));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    assert_null(nb_sym_diff(s, e, "2x"));
    assert_int_equal(nb_sym_status(s), NB_ERR_ARG);
    assert_string_equal(nb_sym_error(s)->where, "nb_sym_diff");
    assert_int_equal(nb_sym_error(s)->offset, -1);
    assert_int_equal(nb_sym_error(s)->line, 0);
    assert_null(nb_sym_diff(s, NULL, "x"));
    assert_null(nb_sym_num(s, INFINITY));
    assert_int_equal(nb_sym_status(s), NB_ERR_ARG);
    assert_null(nb_sym_var(s, "a b"));
    assert_null(nb_sym_apply(s, NB_SYM_SIN, &e, 2));
    assert_null(nb_sym_apply(s, NB_SYM_ADD, &e, 1));
    assert_null(nb_sym_apply(s, NB_SYM_NUM, &e, 1));
    assert_null(nb_sym_str(s, NULL));
    assert_int_equal(nb_sym_eval(NULL, e, 0, NULL, NULL, &out), NB_ERR_NULL);
    assert_int_equal(nb_sym_dag_size(s, NULL), -1);
    assert_true(nb_sym_tree_size(NULL) == 0);
    assert_int_equal(nb_expr_kind(NULL), NB_SYM_KIND_COUNT);
    assert_string_equal(nb_sym_error(NULL)->msg, "no pool");
    assert_int_equal(nb_sym_error(NULL)->status, NB_ERR_NULL);
    /* a success clears the error */
    assert_non_null(parse(s, "x"));
    assert_int_equal(nb_sym_status(s), NB_OK);
    assert_int_equal(nb_sym_error(s)->offset, -1);
    assert_string_equal(nb_sym_error(s)->msg, "");
    assert_string_equal(nb_sym_error(s)->where, "");
    nb_sym_free(s);
    nb_sym_free(NULL);
}

/* Expressions deeper than NB_SYM_MAX_DEPTH are refused; those just below
 * are differentiated, printed and evaluated without exhausting the stack. */
static void test_depth_limit(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    const nb_expr *e = parse(s, "x");
    for (int k = 1; k < NB_SYM_MAX_DEPTH / 2; k++)
        e = nb_sym_apply(s, k % 2 ? NB_SYM_SIN : NB_SYM_COS, &e, 1);
    assert_non_null(e);
    const nb_expr *d = nb_sym_diff(s, e, "x");
    assert_non_null(d);
    assert_non_null(nb_sym_str(s, d));
    double out;
    const char *names[1] = {"x"};
    double v[1] = {0.3};
    assert_int_equal(nb_sym_eval(s, d, 1, names, v, &out), NB_OK);
    assert_true(isfinite(out));
    for (int k = NB_SYM_MAX_DEPTH / 2; k < NB_SYM_MAX_DEPTH; k++)
        e = nb_sym_apply(s, NB_SYM_SIN, &e, 1);
    assert_non_null(e);
    assert_null(nb_sym_apply(s, NB_SYM_SIN, &e, 1));
    assert_int_equal(nb_sym_status(s), NB_ERR_ARG);
    assert_non_null(strstr(nb_sym_error(s)->msg, "deeper than"));
    nb_sym_free(s);
}

/* ------------------------------------------------------------- utilities */

static void test_vars_eval_graph(void **state)
{
    (void)state;
    nb_sym *s = nb_sym_new();
    const nb_expr *e = parse(s, "z*sin(y) + x^2 + y");
    const char *names[4] = {NULL};
    assert_int_equal(nb_sym_vars(s, e, names, 4), 3);
    assert_string_equal(names[0], "x");
    assert_string_equal(names[1], "y");
    assert_string_equal(names[2], "z");
    assert_int_equal(nb_sym_vars(s, e, names, 1), 3); /* count beyond cap */
    assert_int_equal(nb_sym_vars(s, parse(s, "2+3"), names, 4), 0);

    /* integer powers of a negative base: both modes finite and right */
    const nb_expr *p = parse(s, "x^3 + x^-2");
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, -1.5), true);
    const char *xn[1] = {"x"};
    nb_tensor *y = nb_sym_to_graph(g, s, p, 1, xn, &x);
    assert_non_null(y);
    tc_near(nb_tensor_item(y), -3.375 + 1 / 2.25, 1e-14);
    assert_int_equal(nb_backward(g, y), NB_OK);
    double want = 3 * 2.25 - 2 / -3.375;
    tc_near(nb_tensor_item(nb_tensor_grad(x)), want, 1e-12);
    nb_tensor *one = nb_scalar(g, NB_F64, 1), *dy = NULL;
    assert_int_equal(nb_jvp(g, y, &x, &one, 1, &dy), NB_OK);
    tc_near(nb_tensor_item(dy), want, 1e-12);

    /* elementwise over a vector, f32, broadcasting with a scalar variable */
    int64_t shape[1] = {3};
    float xv[3] = {0.5f, 1.0f, 2.0f};
    nb_tensor *xs = nb_tensor_from(g, NB_F32, 1, shape, xv);
    nb_tensor *ys = nb_scalar(g, NB_F32, 2.0);
    nb_tensor *vals[2] = {xs, ys};
    const char *two[2] = {"x", "y"};
    nb_tensor *r = nb_sym_to_graph(g, s, parse(s, "y*ln(x) + sigmoid(x)"), 2, two, vals);
    assert_non_null(r);
    assert_int_equal(nb_tensor_dtype(r), NB_F32);
    for (int i = 0; i < 3; i++)
        tc_near(nb_tensor_get(r, i), 2 * log(xv[i]) + 1 / (1 + exp(-xv[i])), 1e-6);
    /* mixed dtypes are refused */
    nb_tensor *mixed[2] = {xs, nb_scalar(g, NB_F64, 1)};
    assert_null(nb_sym_to_graph(g, s, parse(s, "x + y"), 2, two, mixed));
    assert_int_equal(nb_sym_status(s), NB_ERR_DTYPE);
    nb_graph_free(g);

    /* sigmoid is evaluated without overflow at large |x| */
    const nb_expr *sg = parse(s, "sigmoid(x)");
    double out;
    double big[1] = {-800};
    assert_int_equal(nb_sym_eval(s, sg, 1, xn, big, &out), NB_OK);
    assert_true(out >= 0 && out < 1e-300);

    /* ties of abs, max, min: 0 and the halves, as nabla's ops */
    double zero[1] = {0};
    assert_int_equal(nb_sym_eval(s, nb_sym_diff(s, parse(s, "abs(x)"), "x"), 1, xn, zero, &out),
                     NB_OK);
    tc_near(out, 0, 0);
    assert_int_equal(nb_sym_eval(s, nb_sym_diff(s, parse(s, "max(x, 0)"), "x"), 1, xn, zero, &out),
                     NB_OK);
    tc_near(out, 0.5, 0);
    assert_int_equal(nb_sym_eval(s, nb_sym_diff(s, parse(s, "min(x, 0)"), "x"), 1, xn, zero, &out),
                     NB_OK);
    tc_near(out, 0.5, 0);
    nb_sym_free(s);
}

/* ---------------------------------------------------- allocation failure */

typedef struct failing {
    long budget; /* allocations left before failing; < 0: never fail */
    long live;
} failing;

static void *failing_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    failing *f = ud;
    (void)old_size;
    if (new_size == 0) {
        if (ptr)
            f->live--;
        free(ptr);
        return NULL;
    }
    if (f->budget == 0)
        return NULL;
    if (f->budget > 0)
        f->budget--;
    void *p = realloc(ptr, new_size);
    if (p && !ptr)
        f->live++;
    return p;
}

/* Failing the n-th allocation, for every n, gives NB_ERR_NOMEM (or an
 * earlier NULL pool) and never a crash or a leak. */
static void test_allocation_failure(void **state)
{
    (void)state;
    const char *text = "ln(x) + x^2*y - sin(x*y) + max(x, y)*sigmoid(x/y)";
    bool succeeded = false;
    for (long n = 0; n < 100000 && !succeeded; n++) {
        failing f = {n, 0};
        nb_sym *s = nb_sym_new_alloc(failing_alloc, &f);
        if (!s) {
            assert_int_equal(f.live, 0);
            continue;
        }
        const nb_expr *e = nb_sym_parse(s, text, strlen(text));
        const nb_expr *d = e ? nb_sym_diff(s, e, "x") : NULL;
        const char *str = d ? nb_sym_str(s, d) : NULL;
        const char *names[8];
        int nv = str ? nb_sym_vars(s, d, names, 8) : -1;
        if (nv < 0) {
            assert_int_equal(nb_sym_status(s), NB_ERR_NOMEM);
            assert_non_null(strstr(nb_sym_error(s)->msg, "out of memory"));
        } else {
            succeeded = true;
            assert_string_equal(str, nb_sym_str(s, d));
        }
        nb_sym_free(s);
        assert_int_equal(f.live, 0);
    }
    assert_true(succeeded);
}

/* ------------------------------------------------- recording as written */

/* The recorded graph of @p t as text: a bound variable by its name, a
 * constant by its value (%g), an op as name(operands). */
static void graph_text(nb_tensor *t, int n, const char *const *names, nb_tensor *const *values,
                       char *buf, size_t cap)
{
    size_t len = strlen(buf);
    for (int i = 0; i < n; i++)
        if (values[i] == t) {
            snprintf(buf + len, cap - len, "%s", names[i]);
            return;
        }
    if (nb_op_n_inputs(t) == 0) {
        snprintf(buf + len, cap - len, "%g", nb_tensor_item(t));
        return;
    }
    snprintf(buf + len, cap - len, "%s(", nb_tensor_op_name(t));
    for (int i = 0; i < nb_op_n_inputs(t); i++) {
        if (i)
            append(buf, cap, ",");
        graph_text(nb_op_input(t, i), n, names, values, buf, cap);
    }
    append(buf, cap, ")");
}

/* @p text recorded with x, y, z bound to 0.5, -1.5, 2 is @p want. */
static void expect_recorded(const char *text, const char *want)
{
    nb_sym *s = nb_sym_new();
    nb_graph *g = nb_graph_new();
    nb_tensor *xs[3];
    double v[3] = {0.5, -1.5, 2};
    for (int k = 0; k < 3; k++)
        xs[k] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, v[k]), true);
    nb_tensor *y = nb_sym_record(g, s, text, strlen(text), 3, var_names, xs);
    if (!y)
        fail_msg("record '%s': %s", text, nb_sym_error(s)->msg);
    char got[512] = "";
    graph_text(y, 3, var_names, xs, got, sizeof got);
    if (strcmp(got, want) != 0)
        fail_msg("'%s' recorded as %s, want %s", text, got, want);
    /* the value is the canonical expression's */
    double want_value = eval3(s, parse(s, text), v[0], v[1], v[2]);
    if (!close_rel(nb_tensor_item(y), want_value, 1e-14))
        fail_msg("'%s': recorded %.17g, evaluated %.17g", text, nb_tensor_item(y), want_value);
    nb_graph_free(g);
    nb_sym_free(s);
}

/* The course notes' f(x; w, b) = 1/(exp(-(wx + b)) + 1) records the notes'
 * h1 = w*x, h2 = h1 + b, h3 = -h2, h4 = exp(h3), h5 = h4 + 1, h6 = 1/h5,
 * with the operands in the written order, and its values and gradients
 * (reverse and forward) are those of the canonical graph. */
static void test_record_notes(void **state)
{
    (void)state;
    const char *text = "1/(exp(-(w*x+b))+1)";
    const char *names[3] = {"x", "w", "b"};
    nb_rng rng;
    nb_rng_seed(&rng, 16);
    for (int point = 0; point < 10; point++) {
        double v[3] = {1, 0, 0};
        if (point > 0)
            for (int k = 0; k < 3; k++)
                v[k] = -2 + 4 * nb_rng_uniform(&rng);
        nb_sym *s = nb_sym_new();
        nb_graph *g = nb_graph_new();
        nb_tensor *xs[3];
        for (int k = 0; k < 3; k++)
            xs[k] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, v[k]), true);
        nb_tensor *y = nb_sym_record(g, s, text, strlen(text), 3, names, xs);
        assert_non_null(y);
        assert_int_equal(nb_sym_status(s), NB_OK);

        nb_tensor *nodes[32], *h[7] = {NULL};
        int64_t n = nb_graph_nodes(g, y, nodes, 32);
        assert_true(n > 0 && n <= 32);
        const char *ops[6] = {"mul", "add", "neg", "exp", "add", "div"};
        int k = 0;
        for (int64_t i = 0; i < n; i++) {
            if (nb_op_n_inputs(nodes[i]) == 0)
                continue;
            assert_true(k < 6);
            assert_string_equal(nb_tensor_op_name(nodes[i]), ops[k]);
            h[++k] = nodes[i];
        }
        assert_int_equal(k, 6);
        assert_ptr_equal(h[6], y);
        /* h1 = w*x, h2 = h1 + b, h3 = -h2, h4 = exp(h3), h5 = h4 + 1, h6 = 1/h5 */
        assert_int_equal(nb_op_n_inputs(h[1]), 2);
        assert_ptr_equal(nb_op_input(h[1], 0), xs[1]);
        assert_ptr_equal(nb_op_input(h[1], 1), xs[0]);
        assert_ptr_equal(nb_op_input(h[2], 0), h[1]);
        assert_ptr_equal(nb_op_input(h[2], 1), xs[2]);
        assert_int_equal(nb_op_n_inputs(h[3]), 1);
        assert_ptr_equal(nb_op_input(h[3], 0), h[2]);
        assert_ptr_equal(nb_op_input(h[4], 0), h[3]);
        assert_ptr_equal(nb_op_input(h[5], 0), h[4]);
        nb_tensor *one = nb_op_input(h[5], 1), *num = nb_op_input(h[6], 0);
        assert_ptr_equal(nb_op_input(h[6], 1), h[5]);
        /* each literal 1 is a constant of its own, without gradient */
        assert_true(one != num);
        assert_int_equal(nb_op_n_inputs(one), 0);
        assert_false(nb_tensor_requires_grad(one));
        assert_true(nb_tensor_item(one) == 1 && nb_tensor_item(num) == 1);
        if (point == 0)
            assert_true(nb_tensor_item(y) == 0.5);

        /* the same values and derivatives as the canonical graph */
        nb_graph *gc = nb_graph_new();
        nb_tensor *cs[3];
        for (int j = 0; j < 3; j++)
            cs[j] = nb_tensor_set_requires_grad(nb_scalar(gc, NB_F64, v[j]), true);
        nb_tensor *yc = nb_sym_to_graph(gc, s, parse(s, text), 3, names, cs);
        assert_non_null(yc);
        assert_true(close_rel(nb_tensor_item(y), nb_tensor_item(yc), 1e-12));
        assert_int_equal(nb_backward(g, y), NB_OK);
        assert_int_equal(nb_backward(gc, yc), NB_OK);
        for (int j = 0; j < 3; j++) {
            double got = nb_tensor_item(nb_tensor_grad(xs[j]));
            double want = nb_tensor_item(nb_tensor_grad(cs[j]));
            if (!close_rel(got, want, 1e-12))
                fail_msg("d/d%s at (%g, %g, %g): recorded %.17g, canonical %.17g", names[j], v[0],
                         v[1], v[2], got, want);
        }
        if (point == 0) { /* sigma' = 1/4 at 0, times x = 1 for w and 1 for b */
            assert_true(nb_tensor_item(nb_tensor_grad(xs[1])) == 0.25);
            assert_true(nb_tensor_item(nb_tensor_grad(xs[2])) == 0.25);
        }
        nb_graph_free(gc);
        nb_graph_free(g);
        nb_sym_free(s);
    }
}

/* Operators as written: order, minus signs, literals, functions. */
static void test_record_as_written(void **state)
{
    (void)state;
    expect_recorded("x*y + z", "add(mul(x,y),z)");
    expect_recorded("z + x*y", "add(z,mul(x,y))");
    expect_recorded("x - y - z", "sub(sub(x,y),z)");
    expect_recorded("x - (y - z)", "sub(x,sub(y,z))");
    expect_recorded("x/y/z", "div(div(x,y),z)");
    expect_recorded("x*y/z*x", "mul(div(mul(x,y),z),x)");
    expect_recorded("x + x", "add(x,x)");
    expect_recorded("-x", "neg(x)");
    expect_recorded("--x", "neg(neg(x))");
    expect_recorded("-(x + y)", "neg(add(x,y))");
    expect_recorded("-x^2", "neg(pow(x,2))");
    expect_recorded("x^y^z", "pow(x,pow(y,z))");
    expect_recorded("(x^y)^z", "pow(pow(x,y),z)");
    expect_recorded("x^-2", "pow(x,-2)");
    expect_recorded("x^(-2)", "pow(x,-2)");
    expect_recorded("x^-(2)", "pow(x,neg(2))");
    expect_recorded("-2*x", "mul(-2,x)");
    expect_recorded("2*-3*x", "mul(mul(2,-3),x)");
    expect_recorded("-(2)*x", "mul(neg(2),x)");
    expect_recorded("-2^2 + x", "add(neg(pow(2,2)),x)");
    expect_recorded("--2 + x", "add(neg(-2),x)");
    expect_recorded("x - -0.5", "sub(x,-0.5)");
    expect_recorded("1*x + 0", "add(mul(1,x),0)");
    expect_recorded("pow(x, 3) + max(x, y) - min(y, z)",
                    "sub(add(pow(x,3),maximum(x,y)),minimum(y,z))");
    expect_recorded("tan(x)", "div(sin(x),cos(x))");
    expect_recorded("sin(x)*cos(y) + exp(z) - ln(z) - log(z)",
                    "sub(sub(add(mul(sin(x),cos(y)),exp(z)),log(z)),log(z))");
    expect_recorded("sqrt(z) + tanh(x) + sigmoid(y) + abs(y) + erf(x) + sign(y)",
                    "add(add(add(add(add(sqrt(z),tanh(x)),sigmoid(y)),abs(y)),erf(x)),sign(y))");

    /* -0 is the constant 0, not -0 */
    nb_sym *s = nb_sym_new();
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_sym_record(g, s, "-0", 2, 0, NULL, NULL);
    assert_non_null(y);
    assert_int_equal(nb_tensor_dtype(y), NB_F64);
    assert_true(nb_tensor_item(y) == 0 && !signbit(nb_tensor_item(y)));

    /* a negative base with an integer exponent: exact value and derivative
     * in both modes (nb_pow's derivative in the exponent is not taken) */
    const char *xn[1] = {"x"};
    const char *powers[3] = {"x^3", "x^-2", "pow(x, 3)"};
    double want_v[3] = {-8, 0.25, -8}, want_d[3] = {12, 0.25, 12};
    for (int i = 0; i < 3; i++) {
        nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, -2), true);
        nb_tensor *p = nb_sym_record(g, s, powers[i], strlen(powers[i]), 1, xn, &x);
        assert_non_null(p);
        assert_true(nb_tensor_item(p) == want_v[i]);
        assert_int_equal(nb_backward(g, p), NB_OK);
        assert_true(nb_tensor_item(nb_tensor_grad(x)) == want_d[i]);
        nb_tensor *one = nb_scalar(g, NB_F64, 1), *dy = NULL;
        assert_int_equal(nb_jvp(g, p, &x, &one, 1, &dy), NB_OK);
        assert_true(nb_tensor_item(dy) == want_d[i]);
    }

    /* the documented difference: x^0 at 0 is nb_pow's 0*0^(-1), NaN */
    nb_tensor *x0 = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 0), true);
    nb_tensor *p0 = nb_sym_record(g, s, "x^0", 3, 1, xn, &x0);
    assert_non_null(p0);
    assert_true(nb_tensor_item(p0) == 1);
    assert_int_equal(nb_backward(g, p0), NB_OK);
    assert_true(isnan(nb_tensor_item(nb_tensor_grad(x0))));

    /* f32 values: the constants are f32, elementwise over a vector */
    int64_t shape[1] = {3};
    float xv[3] = {0.5f, 1.0f, 2.0f};
    nb_tensor *vals[2] = {nb_tensor_from(g, NB_F32, 1, shape, xv), nb_scalar(g, NB_F32, 2.0)};
    const char *two[2] = {"x", "y"};
    nb_tensor *r = nb_sym_record(g, s, "y*x - 0.5", 9, 2, two, vals);
    assert_non_null(r);
    assert_int_equal(nb_tensor_dtype(r), NB_F32);
    assert_int_equal(nb_tensor_dtype(nb_op_input(r, 1)), NB_F32);
    for (int i = 0; i < 3; i++)
        tc_near(nb_tensor_get(r, i), 2 * xv[i] - 0.5, 0);
    nb_graph_free(g);
    nb_sym_free(s);
}

/* Recorded value and gradients (reverse, and forward in each variable) of
 * @p text at @p p against nb_sym_to_graph's, to 1e-12 relative; false
 * (not compared) where the canonical graph's are not all finite. */
static bool record_matches_canonical(const char *text, const double *p)
{
    nb_sym *s = nb_sym_new();
    nb_graph *g[2] = {nb_graph_new(), nb_graph_new()};
    nb_tensor *xs[2][3], *y[2];
    double value[2], rev[2][3], fwd[2][3];
    for (int m = 0; m < 2; m++) {
        for (int k = 0; k < 3; k++)
            xs[m][k] = nb_tensor_set_requires_grad(nb_scalar(g[m], NB_F64, p[k]), true);
        y[m] = m == 0 ? nb_sym_to_graph(g[0], s, parse(s, text), 3, var_names, xs[0])
                      : nb_sym_record(g[1], s, text, strlen(text), 3, var_names, xs[1]);
        if (!y[m])
            fail_msg("'%s' (%s): %s", text, m ? "record" : "to_graph", nb_sym_error(s)->msg);
        value[m] = nb_tensor_item(y[m]);
        if (nb_tensor_requires_grad(y[m]))
            assert_int_equal(nb_backward(g[m], y[m]), NB_OK);
        for (int k = 0; k < 3; k++) {
            nb_tensor *gr = nb_tensor_grad(xs[m][k]), *tan[3], *dy = NULL;
            rev[m][k] = gr ? nb_tensor_item(gr) : 0;
            for (int j = 0; j < 3; j++)
                tan[j] = nb_scalar(g[m], NB_F64, j == k);
            assert_int_equal(nb_jvp(g[m], y[m], xs[m], tan, 3, &dy), NB_OK);
            fwd[m][k] = dy ? nb_tensor_item(dy) : 0;
        }
    }
    bool finite = isfinite(value[0]);
    for (int k = 0; k < 3; k++)
        finite = finite && isfinite(rev[0][k]) && isfinite(fwd[0][k]);
    if (finite) {
        if (!close_rel(value[1], value[0], 1e-12))
            fail_msg("'%s' at (%g, %g, %g): recorded %.17g, canonical %.17g", text, p[0], p[1],
                     p[2], value[1], value[0]);
        for (int k = 0; k < 3; k++)
            if (!close_rel(rev[1][k], rev[0][k], 1e-12) || !close_rel(fwd[1][k], fwd[0][k], 1e-12))
                fail_msg("'%s' d/d%s at (%g, %g, %g): recorded reverse %.17g forward %.17g, "
                         "canonical %.17g %.17g",
                         text, var_names[k], p[0], p[1], p[2], rev[1][k], fwd[1][k], rev[0][k],
                         fwd[0][k]);
    }
    nb_graph_free(g[0]);
    nb_graph_free(g[1]);
    nb_sym_free(s);
    return finite;
}

/* The corpus at random points of its ranges, and random formulas of the
 * grammar with moderate constants: recorded as written, the same values
 * and derivatives as the canonical graph. */
static void test_record_matches_canonical(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    for (int c = 0; c < N_CORPUS; c++) {
        int compared = 0;
        for (int attempt = 0; attempt < 10; attempt++) {
            double p[3];
            for (int k = 0; k < 3; k++)
                p[k] = corpus[c].lo + (corpus[c].hi - corpus[c].lo) * nb_rng_uniform(&rng);
            compared += record_matches_canonical(corpus[c].text, p);
        }
        if (compared < 5)
            fail_msg("%s: only %d points compared", corpus[c].text, compared);
    }
    const double p[3] = {0.75, -0.875, 1.25};
    int compared = 0, tried = 0;
    for (int i = 0; i < 1000; i++) {
        char in[4096] = "";
        gen_expr(&rng, in, sizeof in, 1 + (int)nb_rng_below(&rng, 2));
        /* no huge or tiny constants, whose sums cancel differently in
         * another order */
        bool extreme = strstr(in, "123456") != NULL;
        for (const char *e = strchr(in, 'e'); e && !extreme; e = strchr(e + 1, 'e'))
            extreme = e > in && e[-1] >= '0' && e[-1] <= '9';
        if (strlen(in) >= sizeof in - 1 || extreme)
            continue;
        tried++;
        compared += record_matches_canonical(in, p);
    }
    assert_true(tried > 200 && compared > tried / 2);
}

/* Bad text gives nb_sym_parse's error, byte for byte, at the same offset,
 * line and column, and records nothing; then the errors of recording. */
static void test_record_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len;
    } bad[] = {
        {"", 0},
        {"   ", 3},
        {"2+", 2},
        {"sin(", 4},
        {")(", 2},
        {"x**y", 4},
        {"foo(x)", 6},
        {"1e999", 5},
        {"2*1e", 4},
        {"(x + 1", 6},
        {"(x + 1 y", 8},
        {"x + y)", 6},
        {"3 x", 3},
        {"sin + 1", 7},
        {"max(x)", 6},
        {"ln(x, y)", 8},
        {"x # y", 5},
        {"x + \xce\xbb", 6},
        {"x+\0y", 4},
        {"x+\x80", 3},
        {"x*\xe2\x82", 4},
        {"\xc0\xaf", 2},
        {"x + 1\n  * (y -\n   )", 19},
        {"x*y + (x", 8},
        {"z + (x", 6},
        {"max(x, y, z)", 12},
        {"x^", 2},
        {"-", 1},
        {"x - -", 5},
        {"x, y", 4},
        {".", 1},
        {"2x", 2},
        {"exp", 3},
        {"sin(x", 5},
        {"((x)", 4},
    };
    nb_sym *s = nb_sym_new();
    nb_graph *g = nb_graph_new();
    nb_tensor *xs[3];
    for (int k = 0; k < 3; k++)
        xs[k] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 1 + k), true);
    size_t n = 200000;
    char *deep = malloc(n > NB_SYM_MAX_INPUT ? n : (size_t)NB_SYM_MAX_INPUT + 1);
    assert_non_null(deep);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] + 5; i++) {
        const char *text;
        size_t len;
        if (i < sizeof bad / sizeof bad[0]) {
            text = bad[i].text;
            len = bad[i].len;
        } else { /* deep nesting of each kind, a long name, too long an input */
            size_t kind = i - sizeof bad / sizeof bad[0];
            const char *unit = kind == 0 ? "(" : kind == 1 ? "-" : kind == 2 ? "x^" : "x";
            len = kind == 4 ? (size_t)NB_SYM_MAX_INPUT + 1 : kind == 3 ? 300 : n;
            for (size_t j = 0; j < len; j++)
                deep[j] = unit[j % strlen(unit)];
            text = deep;
        }
        assert_null(nb_sym_parse(s, text, len));
        nb_error want = *nb_sym_error(s);
        assert_int_equal(want.status, NB_ERR_PARSE);
        uint64_t evals = nb_graph_evals(g);
        assert_null(nb_sym_record(g, s, text, len, 3, var_names, xs));
        const nb_error *got = nb_sym_error(s);
        if (got->status != want.status || strcmp(got->msg, want.msg) != 0 ||
            got->offset != want.offset || got->line != want.line || got->column != want.column)
            fail_msg("'%.*s': record gives '%s' at %lld (%lld:%lld), parse '%s' at %lld "
                     "(%lld:%lld)",
                     (int)(len < 40 ? len : 40), text, got->msg, (long long)got->offset,
                     (long long)got->line, (long long)got->column, want.msg, (long long)want.offset,
                     (long long)want.line, (long long)want.column);
        assert_string_equal(got->where, "nb_sym_record");
        assert_true(nb_graph_evals(g) == evals); /* nothing recorded */
        assert_int_equal(nb_graph_status(g), NB_OK);
    }
    free(deep);

    /* a variable without a value: the first one in the text */
    assert_null(nb_sym_record(g, s, "x + q*r", 7, 3, var_names, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_NOTFOUND);
    assert_string_equal(nb_sym_error(s)->msg, "unknown variable 'q'");
    assert_string_equal(nb_sym_error(s)->name, "q");
    assert_string_equal(nb_sym_error(s)->where, "nb_sym_record");
    assert_int_equal(nb_graph_status(g), NB_OK);
    /* names may be NULL (never matched), as in nb_sym_to_graph */
    const char *holes[3] = {"x", NULL, "z"};
    assert_null(nb_sym_record(g, s, "y", 1, 3, holes, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_NOTFOUND);
    assert_non_null(nb_sym_record(g, s, "z", 1, 3, holes, xs));

    /* NULLs and bad arguments */
    assert_null(nb_sym_record(g, NULL, "x", 1, 3, var_names, xs));
    assert_null(nb_sym_record(NULL, s, "x", 1, 3, var_names, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    assert_string_equal(nb_sym_error(s)->msg,
                        "record: need a text, a graph, and names and values for n > 0");
    assert_null(nb_sym_record(g, s, NULL, 1, 3, var_names, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    assert_null(nb_sym_record(g, s, "x", 1, 3, NULL, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    assert_null(nb_sym_record(g, s, "x", 1, 3, var_names, NULL));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    assert_null(nb_sym_record(g, s, "x", 1, -1, var_names, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    nb_tensor *with_null[3] = {xs[0], NULL, xs[2]};
    assert_null(nb_sym_record(g, s, "x", 1, 3, var_names, with_null));
    assert_int_equal(nb_sym_status(s), NB_ERR_NULL);
    assert_string_equal(nb_sym_error(s)->msg, "record: values[1] is NULL");
    /* NULL text of length 0 is the empty text */
    assert_null(nb_sym_record(g, s, NULL, 0, 3, var_names, xs));
    assert_int_equal(nb_sym_status(s), NB_ERR_PARSE);
    assert_string_equal(nb_sym_error(s)->msg, "empty expression at 0");
    /* mixed dtypes */
    nb_tensor *mixed[2] = {xs[0], nb_scalar(g, NB_F32, 1)};
    assert_null(nb_sym_record(g, s, "x", 1, 2, var_names, mixed));
    assert_int_equal(nb_sym_status(s), NB_ERR_DTYPE);
    assert_string_equal(nb_sym_error(s)->msg, "record: values[1] is f32, values[0] is f64");

    /* an op that fails: shapes that do not broadcast */
    int64_t three[1] = {3}, two[1] = {2};
    nb_tensor *vec[3] = {nb_zeros(g, NB_F64, 1, three), nb_zeros(g, NB_F64, 1, two), xs[2]};
    const char *texts[4] = {"z*x - y", "x + y", "x/y", "max(x, y)"};
    const char *ops[4] = {"-", "+", "/", "max"};
    for (int i = 0; i < 4; i++) {
        assert_null(nb_sym_record(g, s, texts[i], strlen(texts[i]), 3, var_names, vec));
        assert_int_equal(nb_sym_status(s), NB_ERR_GRAPH);
        char want[64];
        snprintf(want, sizeof want, "building %s in the graph failed: ", ops[i]);
        if (strncmp(nb_sym_error(s)->msg, want, strlen(want)) != 0)
            fail_msg("'%s': '%s', want '%s...'", texts[i], nb_sym_error(s)->msg, want);
        assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
        nb_graph_clear_error(g);
    }
    /* success clears the error */
    assert_non_null(nb_sym_record(g, s, "x", 1, 3, var_names, xs));
    assert_int_equal(nb_sym_status(s), NB_OK);
    assert_string_equal(nb_sym_error(s)->msg, "");
    nb_graph_free(g);
    nb_sym_free(s);
}

/* Failing the n-th allocation of the graph while recording, for every n,
 * gives an error (NB_ERR_GRAPH in the pool, NB_ERR_NOMEM in the graph) and
 * never a crash or a leak. The formula is long enough to need several
 * chunks of the graph's arena. */
static void test_record_allocation_failure(void **state)
{
    (void)state;
    const char *unit = "1/(exp(-(w*x+b))+1) + max(x, w)*sigmoid(x/b) - tan(w)^2 + ";
    size_t reps = 2000, ulen = strlen(unit);
    char *text = malloc(reps * ulen + 2);
    assert_non_null(text);
    for (size_t i = 0; i < reps; i++)
        memcpy(text + i * ulen, unit, ulen);
    memcpy(text + reps * ulen, "x", 2);
    const char *names[3] = {"x", "w", "b"};
    int failures = 0;
    bool succeeded = false;
    for (long n = 0; n < 1000 && !succeeded; n++) {
        failing f = {-1, 0};
        nb_graph *g = nb_graph_new_alloc(failing_alloc, &f);
        nb_sym *s = nb_sym_new();
        assert_non_null(g);
        assert_non_null(s);
        nb_tensor *xs[3];
        for (int k = 0; k < 3; k++)
            assert_non_null(xs[k] = nb_scalar(g, NB_F64, 0.5 + k));
        f.budget = n;
        nb_tensor *y = nb_sym_record(g, s, text, strlen(text), 3, names, xs);
        if (y) {
            succeeded = true;
        } else {
            failures++;
            assert_int_equal(nb_sym_status(s), NB_ERR_GRAPH);
            assert_int_equal(nb_graph_status(g), NB_ERR_NOMEM);
            assert_non_null(strstr(nb_sym_error(s)->msg, "in the graph failed"));
        }
        nb_sym_free(s);
        nb_graph_free(g);
        assert_int_equal(f.live, 0);
    }
    free(text);
    assert_true(succeeded);
    assert_true(failures >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_example),
        cmocka_unit_test(test_corpus_four_ways),
        cmocka_unit_test(test_print_reads_back),
        cmocka_unit_test(test_hash_consing),
        cmocka_unit_test(test_swell_contained),
        cmocka_unit_test(test_simplifier),
        cmocka_unit_test(test_printing),
        cmocka_unit_test(test_parse_error_position),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_vars_eval_graph),
        cmocka_unit_test(test_allocation_failure),
        cmocka_unit_test(test_fuzz_sign_of_products),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_record_notes),
        cmocka_unit_test(test_record_as_written),
        cmocka_unit_test(test_record_matches_canonical),
        cmocka_unit_test(test_record_errors),
        cmocka_unit_test(test_record_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
