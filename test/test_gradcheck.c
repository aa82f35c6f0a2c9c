/* The gradient checker and user-defined ops: every built-in primitive
 * passes, wrong rules are caught and named, kinks are told apart from
 * errors, f32 functions are shadowed in f64, stochastic functions are
 * replayed, failures are localised, and fast mode agrees with full mode. */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tc.h"

/* Two entries are the same, values bit for bit. */
static void assert_same_entry(const nb_check_entry *a, const nb_check_entry *b)
{
    assert_int_equal(a->input, b->input);
    assert_string_equal(a->input_name, b->input_name);
    assert_int_equal(a->in_index, b->in_index);
    assert_int_equal(a->out_index, b->out_index);
    const double va[] = {a->reverse, a->forward, a->numerical, a->left, a->right, a->abs_err};
    const double vb[] = {b->reverse, b->forward, b->numerical, b->left, b->right, b->abs_err};
    assert_memory_equal(va, vb, sizeof va);
}

/* Two results of one check differ at most in how the points were evaluated. */
static void assert_same_result(const nb_check_result *a, const nb_check_result *b)
{
    assert_int_equal(a->error.status, b->error.status);
    assert_string_equal(a->error.msg, b->error.msg);
    assert_string_equal(a->detail, b->detail);
    assert_int_equal(a->pass, b->pass);
    assert_int_equal(a->reverse_ok, b->reverse_ok);
    assert_int_equal(a->forward_ok, b->forward_ok);
    assert_int_equal(a->fast, b->fast);
    assert_int_equal(a->full_detail, b->full_detail);
    assert_int_equal(a->shadow, b->shadow);
    assert_int_equal(a->shadow_failed, b->shadow_failed);
    assert_int_equal(a->n_entries, b->n_entries);
    assert_int_equal(a->n_kinks, b->n_kinks);
    assert_same_entry(&a->worst, &b->worst);
    if (a->n_kinks > 0)
        assert_same_entry(&a->kink, &b->kink);
    assert_int_equal(a->localised, b->localised);
    assert_string_equal(a->culprit_op, b->culprit_op);
    assert_string_equal(a->culprit_label, b->culprit_label);
    assert_int_equal(a->culprit_node, b->culprit_node);
    if (a->localised)
        assert_same_entry(&a->culprit_entry, &b->culprit_entry);
    assert_int_equal(a->n_sweep, b->n_sweep);
    assert_memory_equal(a->sweep_err, b->sweep_err, sizeof a->sweep_err);
}

/* Run f both ways and require the same verdict; returns the full result.
 * The full check gives the same result, bit for bit, when every point is
 * a call of f (no replay). */
static nb_check_result check_both(nb_check_fn f, void *ctx, nb_tensor *const *in, int n,
                                  nb_check_opts o, const char *what)
{
    nb_check_result full, fast, direct;
    o.fast = false;
    o.replay = false;
    assert_int_equal(nb_gradcheck(f, ctx, in, n, &o, &direct), NB_OK);
    assert_int_equal(direct.replays, 0);
    o.replay = true;
    assert_int_equal(nb_gradcheck(f, ctx, in, n, &o, &full), NB_OK);
    assert_same_result(&full, &direct);
    o.fast = true;
    assert_int_equal(nb_gradcheck(f, ctx, in, n, &o, &fast), NB_OK);
    if (full.pass != fast.pass) {
        fprintf(stderr, "%s: full and fast mode disagree\n", what);
        nb_check_print(&full, stderr);
        nb_check_print(&fast, stderr);
    }
    assert_int_equal(full.pass, fast.pass);
    assert_true(fast.fast);
    return full;
}

/* ------------------------------------------------------ built-in suite */

static void test_builtin_cases(void **state)
{
    (void)state;
    int n;
    const nb_check_case *cases = nb_check_builtin_cases(&n);
    assert_true(n > 60);
    bool covered[256] = {0};
    nb_check_opts o = nb_check_defaults();
    for (int i = 0; i < n; i++) {
        nb_check_result full, fast;
        o.fast = false;
        assert_int_equal(nb_check_run_case(&cases[i], &o, &full), NB_OK);
        o.fast = true;
        assert_int_equal(nb_check_run_case(&cases[i], &o, &fast), NB_OK);
        if (!full.pass || !fast.pass) {
            fprintf(stderr, "case %s %s:\n", cases[i].op, cases[i].what);
            nb_check_print(&full, stderr);
            nb_check_print(&fast, stderr);
        }
        assert_true(full.pass);
        assert_true(fast.pass);
        assert_true(full.n_entries > 0);
        /* random inputs: no kinks expected anywhere */
        assert_int_equal(full.n_kinks, 0);
        int id = nb_op_find(cases[i].op);
        assert_true(id >= 0);
        covered[id] = true;
    }
    /* every built-in op is covered (registered ops come after them) */
    for (int id = 0; id < nb_op_count(); id++) {
        const nb_op_def *d = nb_op_get(id);
        if (strncmp(d->name, "t_", 2) == 0)
            continue; /* ops this test program registers */
        if (!covered[id])
            fprintf(stderr, "op %s has no gradcheck case\n", d->name);
        assert_true(covered[id]);
    }
}

/* ------------------------------------------------------------- kinks */

static bool mentions(const char *text, const char *what)
{
    return strstr(text, what) != NULL;
}

/* The printed report of r, in a buffer. */
static const char *report(const nb_check_result *r)
{
    static char buf[8192];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    assert_non_null(f);
    nb_check_print(r, f);
    fclose(f);
    return buf;
}

static nb_tensor *relu_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_maximum(g, x[0], nb_scalar(g, nb_tensor_dtype(x[0]), 0.0));
}

/* relu written with where: the gradient at exactly 0 is the one of the
 * 0 branch, a one-sided value that central differences (0.5) miss */
static nb_tensor *relu_where_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *zero = nb_scalar(g, nb_tensor_dtype(x[0]), 0.0);
    return nb_where(g, nb_gt(g, x[0], zero), x[0], nb_mul(g, x[0], zero));
}

static nb_tensor *abs_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_abs(g, x[0]);
}

static nb_tensor *steep_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_scale(g, nb_square(g, x[0]), 1e4);
}

static nb_tensor *max_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_max(g, x[0], NULL, 0, false);
}

static void test_kinks(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    const double xv[] = {-1.0, 0.0, 0.5, 0.0, 2.0};
    int64_t s5[] = {5};
    nb_tensor *x = nb_tensor_from(g, NB_F64, 1, s5, xv);
    nb_check_opts o = nb_check_defaults();

    nb_check_result r = check_both(relu_fn, NULL, &x, 1, o, "relu at 0");
    assert_true(r.pass);
    assert_int_equal(r.n_kinks, 2); /* the two exact zeros */
    assert_int_equal(r.kink.in_index, 1);
    assert_int_equal(r.kink.out_index, 1);
    assert_true(r.kink.left == 0.0 && fabs(r.kink.right - 1.0) < 1e-9);

    r = check_both(abs_fn, NULL, &x, 1, o, "abs at 0");
    assert_true(r.pass);
    assert_int_equal(r.n_kinks, 2);

    /* strong curvature where the slope is 0 is not a kink */
    nb_tensor *zero = nb_scalar(g, NB_F64, 0.0);
    r = check_both(steep_fn, NULL, &zero, 1, o, "steep parabola");
    assert_true(r.pass);
    assert_int_equal(r.n_kinks, 0);

    /* ties of a max reduction: the gradient is split, between the sides */
    const double tv[] = {1.0, 3.0, 3.0};
    int64_t s3[] = {3};
    nb_tensor *t = nb_tensor_from(g, NB_F64, 1, s3, tv);
    r = check_both(max_fn, NULL, &t, 1, o, "max ties");
    assert_true(r.pass);
    assert_int_equal(r.n_kinks, 2);

    /* a one-sided rule at the kink: accepted as a kink, not a failure */
    r = check_both(relu_where_fn, NULL, &x, 1, o, "relu by where");
    assert_true(r.pass);
    assert_int_equal(r.n_kinks, 2);
    assert_true(r.kink.reverse == 0.0 && fabs(r.kink.numerical - 0.5) < 1e-9);
    assert_true(mentions(report(&r), "kink"));

    /* with kinks treated as errors, the same check fails and says where */
    o.kinks = false;
    nb_check_result strict;
    assert_int_equal(nb_gradcheck(relu_where_fn, NULL, &x, 1, &o, &strict), NB_OK);
    assert_false(strict.pass);
    assert_true(strict.worst.in_index == 1 || strict.worst.in_index == 3);
    /* one cause, and the report does not call the kinks accepted */
    assert_int_equal(strict.cause, NB_CHECK_KINK);
    assert_false(strict.kinks_accepted);
    assert_int_equal(strict.n_kinks, 2);
    const char *text = report(&strict);
    assert_true(mentions(text, "FAILED (full mode): kinks:"));
    assert_true(mentions(text, "2 kinks found (one-sided differences disagree), not accepted: "
                               "kink acceptance is off"));
    assert_false(mentions(text, "accepted (one-sided"));
    o.fast = true;
    assert_int_equal(nb_gradcheck(relu_where_fn, NULL, &x, 1, &o, &strict), NB_OK);
    assert_int_equal(strict.cause, NB_CHECK_KINK);
    assert_false(mentions(report(&strict), "accepted (one-sided"));
    /* accepted, they pass and say so */
    o = nb_check_defaults();
    assert_int_equal(nb_gradcheck(relu_where_fn, NULL, &x, 1, &o, &r), NB_OK);
    assert_int_equal(r.cause, NB_CHECK_AGREE);
    assert_true(r.kinks_accepted);
    assert_true(mentions(report(&r), "PASSED (full mode)\n"));
    assert_true(mentions(report(&r), "2 kinks accepted"));
    nb_graph_free(g);
}

/* ------------------------------------------------- user-defined ops */

/* t_bmul: a*b with broadcasting, forward through nb_op_bcast_index. The
 * flavour in attrs.ints[0] selects a correct or a deliberately wrong rule. */
enum { GOOD, VJP_FACTOR, VJP_NO_REDUCE, JVP_WRONG };

static nb_status bmul_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    nb_tensor *a = nb_op_input(out, 0), *b = nb_op_input(out, 1);
    for (int64_t k = 0; k < nb_tensor_size(out); k++)
        nb_tensor_set(out, k,
                      nb_tensor_get(a, nb_op_bcast_index(out, 0, k)) *
                          nb_tensor_get(b, nb_op_bcast_index(out, 1, k)));
    return NB_OK;
}

static nb_tensor *bmul_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    int flavour = (int)nb_op_attrs(out)->ints[0];
    nb_tensor *self = nb_op_input(out, i), *other = nb_op_input(out, 1 - i);
    nb_tensor *d = nb_mul(g, grad, other); /* d(a*b)/da = b */
    if (flavour == VJP_FACTOR && i == 1)
        d = nb_scale(g, d, 2.0);
    if (flavour == VJP_NO_REDUCE)
        return d; /* forgets to sum broadcast axes back */
    return nb_sum_to(g, d, nb_tensor_rank(self), nb_tensor_shape(self));
}

static nb_tensor *bmul_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    int flavour = (int)nb_op_attrs(out)->ints[0];
    nb_tensor *a = nb_op_input(out, 0), *b = nb_op_input(out, 1);
    nb_tensor *ta = nb_mul(g, t[0], b);
    if (flavour == JVP_WRONG)
        return ta; /* drops a * t_b */
    return nb_add(g, ta, nb_mul(g, a, t[1]));
}

static int bmul_id(void)
{
    static int id = -1;
    if (id < 0) {
        nb_op_def d = {"t_bmul", 2, nb_op_broadcast_result, bmul_fwd, bmul_vjp, bmul_jvp};
        assert_int_equal(nb_op_register(&d, &id), NB_OK);
    }
    return id;
}

static nb_tensor *bmul_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    nb_attrs at = {.ints = {*(int *)ctx}};
    return nb_apply(g, bmul_id(), x, n, &at);
}

/* t_matvec: y = A x for square A; the wrong flavour's dx uses A g (A not
 * transposed). */
static nb_status matvec_shape(nb_graph *g, nb_tensor *out)
{
    nb_tensor *a = nb_op_input(out, 0), *x = nb_op_input(out, 1);
    if (nb_tensor_rank(a) != 2 || nb_tensor_rank(x) != 1 ||
        nb_tensor_dim(a, 1) != nb_tensor_dim(x, 0))
        return nb_op_error(g, NB_ERR_SHAPE, "t_matvec", "need A [m,n] and x [n]");
    int64_t m = nb_tensor_dim(a, 0);
    return nb_op_set_result(g, out, nb_tensor_dtype(a), 1, &m);
}

static nb_status matvec_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    nb_tensor *a = nb_op_input(out, 0), *x = nb_op_input(out, 1);
    int64_t m = nb_tensor_dim(a, 0), n = nb_tensor_dim(a, 1);
    for (int64_t i = 0; i < m; i++) {
        double s = 0;
        for (int64_t j = 0; j < n; j++)
            s += nb_tensor_get(a, i * n + j) * nb_tensor_get(x, j);
        nb_tensor_set(out, i, s);
    }
    return NB_OK;
}

static nb_tensor *col(nb_graph *g, nb_tensor *v)
{
    int64_t s[] = {nb_tensor_dim(v, 0), 1};
    return nb_reshape(g, v, 2, s);
}

static nb_tensor *matvec_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    nb_tensor *a = nb_op_input(out, 0), *x = nb_op_input(out, 1);
    int64_t n = nb_tensor_dim(x, 0);
    if (i == 0) /* dA = g x^T */
        return nb_matmul(g, col(g, grad), col(g, x), false, true);
    bool wrong = nb_op_attrs(out)->ints[0] != 0;
    /* dx = A^T g (the wrong rule forgets the transpose) */
    return nb_reshape(g, nb_matmul(g, a, col(g, grad), !wrong, false), 1, &n);
}

static nb_tensor *matvec_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    nb_tensor *a = nb_op_input(out, 0), *x = nb_op_input(out, 1);
    int64_t m = nb_tensor_dim(a, 0);
    nb_tensor *y = nb_add(g, nb_matmul(g, t[0], col(g, x), false, false),
                          nb_matmul(g, a, col(g, t[1]), false, false));
    return nb_reshape(g, y, 1, &m);
}

static int matvec_id(void)
{
    static int id = -1;
    if (id < 0) {
        nb_op_def d = {"t_matvec", 2, matvec_shape, matvec_fwd, matvec_vjp, matvec_jvp};
        assert_int_equal(nb_op_register(&d, &id), NB_OK);
    }
    return id;
}

static nb_tensor *matvec_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    nb_attrs at = {.ints = {*(int *)ctx}};
    return nb_apply(g, matvec_id(), x, n, &at);
}

static void test_user_ops(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    int64_t s34[] = {3, 4}, s4[] = {4}, s33[] = {3, 3}, s3[] = {3};
    nb_tensor *ab[2] = {nb_rand_uniform(g, &rng, NB_F64, 2, s34, -2, 2),
                        nb_rand_uniform(g, &rng, NB_F64, 1, s4, -2, 2)};
    nb_tensor_set_name(ab[0], "a");
    nb_tensor_set_name(ab[1], "b");
    nb_check_opts o = nb_check_defaults();

    int flavour = GOOD;
    nb_check_result r = check_both(bmul_fn, &flavour, ab, 2, o, "bmul good");
    assert_true(r.pass);

    /* off by a factor in b's VJP: reverse fails, forward is fine, and the
     * worst entry is in b */
    flavour = VJP_FACTOR;
    r = check_both(bmul_fn, &flavour, ab, 2, o, "bmul factor");
    assert_false(r.pass);
    assert_false(r.reverse_ok);
    assert_true(r.forward_ok);
    assert_int_equal(r.worst.input, 1);
    assert_string_equal(r.worst.input_name, "b");
    assert_true(fabs(r.worst.reverse - 2 * r.worst.numerical) <
                1e-6 * (1 + fabs(r.worst.numerical)));
    assert_true(r.localised);
    assert_string_equal(r.culprit_op, "t_bmul");
    assert_int_equal(r.cause, NB_CHECK_MISMATCH);
    const char *text = report(&r);
    assert_true(mentions(text, "FAILED") && mentions(text, "t_bmul") && mentions(text, "'b'["));
    assert_true(mentions(text, nb_check_cause_str(NB_CHECK_MISMATCH)));

    /* no reduction over the broadcast axis: the sweep rejects the shape,
     * and the report says which op and input */
    flavour = VJP_NO_REDUCE;
    r = check_both(bmul_fn, &flavour, ab, 2, o, "bmul no reduce");
    assert_false(r.pass);
    assert_false(r.reverse_ok);
    assert_true(r.forward_ok);
    assert_true(mentions(r.detail, "t_bmul") && mentions(r.detail, "[3,4]"));
    assert_true(strncmp(r.detail, "reverse mode failed: t_bmul: derivative rule", 44) == 0);
    assert_int_equal(r.error.status, NB_OK);
    assert_string_equal(r.error.msg, "");
    assert_int_equal(r.cause, NB_CHECK_RULE_ERROR);
    assert_true(mentions(report(&r), "FAILED (full mode): a derivative rule failed"));
    assert_true(r.localised);
    assert_string_equal(r.culprit_op, "t_bmul");

    /* a wrong JVP only: the forward column fails, the reverse one does not */
    flavour = JVP_WRONG;
    r = check_both(bmul_fn, &flavour, ab, 2, o, "bmul jvp");
    assert_false(r.pass);
    assert_true(r.reverse_ok);
    assert_false(r.forward_ok);
    assert_int_equal(r.worst.input, 1);
    assert_true(fabs(r.worst.reverse - r.worst.numerical) < 1e-6);
    assert_true(fabs(r.worst.forward) < 1e-12); /* the dropped term */

    /* transposed matrix in a VJP */
    nb_tensor *ax[2] = {nb_rand_uniform(g, &rng, NB_F64, 2, s33, -2, 2),
                        nb_rand_uniform(g, &rng, NB_F64, 1, s3, -2, 2)};
    int wrong = 0;
    r = check_both(matvec_fn, &wrong, ax, 2, o, "matvec good");
    assert_true(r.pass);
    wrong = 1;
    r = check_both(matvec_fn, &wrong, ax, 2, o, "matvec transposed");
    assert_false(r.pass);
    assert_false(r.reverse_ok);
    assert_true(r.forward_ok);
    assert_int_equal(r.worst.input, 1);
    assert_string_equal(r.culprit_op, "t_matvec");

    /* a registered op is recorded like a built-in: second derivatives too */
    nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 1.5), true);
    nb_tensor *two[2] = {x, x};
    nb_attrs good = {.ints = {GOOD}};
    nb_tensor *y = nb_apply(g, bmul_id(), two, 2, &good); /* x^2 */
    nb_tensor *dx;
    assert_int_equal(nb_grad(g, y, NULL, &x, 1, &dx, true), NB_OK);
    assert_true(fabs(nb_tensor_item(dx) - 3.0) < 1e-12);
    nb_tensor *d2x;
    assert_int_equal(nb_grad(g, dx, NULL, &x, 1, &d2x, false), NB_OK);
    assert_true(fabs(nb_tensor_item(d2x) - 2.0) < 1e-12);
    assert_string_equal(nb_tensor_op_name(y), "t_bmul");

    /* checking an op alone on random broadcast shapes */
    int ranks[2] = {2, 1};
    const int64_t *shapes[2] = {s34, s4};
    nb_attrs bad = {.ints = {VJP_FACTOR}};
    assert_int_equal(nb_gradcheck_op(bmul_id(), &good, 2, ranks, shapes, &o, &r), NB_OK);
    assert_true(r.pass);
    assert_int_equal(nb_gradcheck_op(bmul_id(), &bad, 2, ranks, shapes, &o, &r), NB_OK);
    assert_false(r.pass);
    nb_graph_free(g);
}

/* ----------------------------------------------------- localisation */

static nb_tensor *composite_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n;
    nb_tensor *e = nb_exp(g, nb_scale(g, x[0], 0.5));
    nb_tensor *in[2] = {e, x[1]};
    nb_attrs at = {.ints = {*(int *)ctx}};
    nb_tensor *m = nb_apply(g, bmul_id(), in, 2, &at);
    nb_tensor_set_name(m, "middle");
    return nb_sum(g, nb_tanh(g, m), NULL, 0, false);
}

static void test_localisation(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    int64_t s34[] = {3, 4}, s4[] = {4};
    nb_tensor *in[2] = {nb_rand_uniform(g, &rng, NB_F64, 2, s34, -1, 1),
                        nb_rand_uniform(g, &rng, NB_F64, 1, s4, -1, 1)};
    nb_check_opts o = nb_check_defaults();
    int flavour = GOOD;
    nb_check_result r = check_both(composite_fn, &flavour, in, 2, o, "composite good");
    assert_true(r.pass);
    assert_false(r.localised);

    flavour = VJP_FACTOR;
    r = check_both(composite_fn, &flavour, in, 2, o, "composite bad");
    assert_false(r.pass);
    assert_true(r.localised);
    assert_string_equal(r.culprit_op, "t_bmul");
    assert_string_equal(r.culprit_label, "middle");
    assert_int_equal(r.culprit_node, 3); /* scale's mul, exp, then this */
    const char *text = report(&r);
    assert_true(mentions(text, "localised: op 't_bmul'") && mentions(text, "'middle'"));

    /* the wrong JVP is localised too */
    flavour = JVP_WRONG;
    o.fast = true;
    assert_int_equal(nb_gradcheck(composite_fn, &flavour, in, 2, &o, &r), NB_OK);
    assert_false(r.pass);
    assert_false(r.forward_ok);
    assert_string_equal(r.culprit_op, "t_bmul");
    nb_graph_free(g);
}

/* ---------------------------------------------------- f32 shadowing */

static nb_tensor *f32_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    /* exp(x) * sin(x) + x^3 / 3 */
    nb_tensor *x3 = nb_mul(g, x[0], nb_square(g, x[0]));
    return nb_add(g, nb_mul(g, nb_exp(g, x[0]), nb_sin(g, x[0])), nb_scale(g, x3, 1.0 / 3));
}

static nb_tensor *f32_only_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    /* a constant made in f32 on purpose: the function cannot run in f64 */
    return nb_mul(g, x[0], nb_scalar(g, NB_F32, 3.0));
}

static nb_tensor *sumsq_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_sum(g, nb_square(g, x[0]), NULL, 0, false);
}

/* x^3 + 0.1x with the 0.1x hidden from the derivative: the rules say 3x^2 */
static nb_tensor *cube_off_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *cube = nb_mul(g, x[0], nb_square(g, x[0]));
    return nb_add(g, cube, nb_stop_gradient(g, nb_scale(g, x[0], 0.1)));
}

static void test_f32_shadow(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    int64_t s6[] = {6};
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F32, 1, s6, 1, 2);
    nb_check_opts o = nb_check_defaults();

    /* naive: the function in f32 with the step 1e-6 that suits f64 */
    o.shadow = false;
    o.eps = 1e-6;
    nb_check_result naive = check_both(f32_fn, NULL, &x, 1, o, "f32 naive");
    assert_false(naive.pass);
    assert_false(naive.shadow);
    /* the same f32 check with a sensible step still cannot reach 1e-3 relative */

    /* shadowed: re-run in f64, passes, and the report says so */
    o = nb_check_defaults();
    nb_check_result r = check_both(f32_fn, NULL, &x, 1, o, "f32 shadow");
    assert_true(r.pass);
    assert_true(r.shadow);
    assert_true(mentions(report(&r), "shadow"));
    assert_true(r.worst.rel_err < 1e-8);

    /* without the shadow, a smooth f32 function: the round-off of f32
     * differences is no kink, and the verdict names it */
    nb_tensor *v = nb_rand_uniform(g, &rng, NB_F32, 1, (int64_t[]){64}, -3, 3);
    o = nb_check_defaults();
    o.shadow = false;
    assert_int_equal(nb_gradcheck(sumsq_fn, NULL, &v, 1, &o, &r), NB_OK);
    assert_false(r.shadow);
    assert_int_equal(r.n_kinks, 0);
    assert_false(r.pass);
    assert_int_equal(r.cause, NB_CHECK_ROUNDOFF);
    assert_true(r.worst.abs_err > o.atol + o.rtol * fabs(r.worst.numerical));
    assert_true(r.worst.abs_err < r.worst.roundoff);
    const char *text = report(&r);
    assert_true(mentions(text, "FAILED (full mode): round-off"));
    assert_true(mentions(text, "round-off bound"));
    assert_false(mentions(text, "kink"));
    assert_false(mentions(text, "localis"));
    /* fast mode's tolerance is summed over the entries: a pass here, or
     * round-off, never a kink */
    o.fast = true;
    assert_int_equal(nb_gradcheck(sumsq_fn, NULL, &v, 1, &o, &r), NB_OK);
    assert_true(r.pass || r.cause == NB_CHECK_ROUNDOFF);
    assert_false(r.full_detail);
    assert_false(mentions(report(&r), "kink"));
    /* ... and the same tolerance-busting error from a wrong rule is a
     * mismatch: x^3 with the derivative 3x^2 + 0.1 */
    nb_tensor *w = nb_rand_uniform(g, &rng, NB_F32, 1, (int64_t[]){4}, 0.5, 1.5);
    o.fast = false;
    assert_int_equal(nb_gradcheck(cube_off_fn, NULL, &w, 1, &o, &r), NB_OK);
    assert_int_equal(r.cause, NB_CHECK_MISMATCH);
    /* real kinks are still kinks in f32 */
    nb_tensor *z = nb_tensor_from(g, NB_F32, 1, (int64_t[]){3}, (const float[]){-1, 0, 1});
    assert_int_equal(nb_gradcheck(relu_fn, NULL, &z, 1, &o, &r), NB_OK);
    assert_true(r.pass);
    assert_int_equal(r.n_kinks, 1);

    /* a function tied to f32 falls back to checking in f32, and says so */
    o = nb_check_defaults();
    o.atol = 1e-3;
    o.rtol = 1e-2;
    r = check_both(f32_only_fn, NULL, &x, 1, o, "f32 only");
    assert_true(r.pass);
    assert_false(r.shadow);
    assert_true(r.shadow_failed);
    assert_true(mentions(report(&r), "checked in f32"));
    nb_graph_free(g);
}

/* ------------------------------------------------- stochastic functions */

typedef struct dropout_ctx {
    nb_rng *rng;
} dropout_ctx;

static nb_tensor *dropout_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n;
    dropout_ctx *d = ctx;
    nb_dtype dt = nb_tensor_dtype(x[0]);
    nb_tensor *u =
        nb_rand_uniform(g, d->rng, dt, nb_tensor_rank(x[0]), nb_tensor_shape(x[0]), 0, 1);
    nb_tensor *keep = nb_gt(g, u, nb_scalar(g, dt, 0.5));
    return nb_sum(g, nb_sin(g, nb_mul(g, nb_scale(g, keep, 2.0), x[0])), NULL, 0, false);
}

static void test_stochastic(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng, data_rng;
    nb_rng_seed(&rng, 99);
    nb_rng_seed(&data_rng, 3);
    int64_t s8[] = {8};
    nb_tensor *x = nb_rand_uniform(g, &data_rng, NB_F64, 1, s8, -1, 1);
    dropout_ctx d = {&rng};
    nb_rng before = rng;

    nb_check_opts o = nb_check_defaults();
    o.rng = &rng; /* replayed for every evaluation */
    nb_check_result r = check_both(dropout_fn, &d, &x, 1, o, "dropout replayed");
    assert_true(r.pass);
    /* the caller's state is kept (fields, not padding bytes) */
    assert_memory_equal(rng.s, before.s, sizeof rng.s);
    assert_int_equal(rng.has_spare, before.has_spare);
    assert_true(rng.spare == before.spare);

    /* without replay every evaluation draws a new mask: the check fails,
     * and says f is not deterministic rather than finding kinks */
    o.rng = NULL;
    for (int fast = 0; fast < 2; fast++) {
        o.fast = fast;
        assert_int_equal(nb_gradcheck(dropout_fn, &d, &x, 1, &o, &r), NB_OK);
        assert_false(r.pass);
        assert_int_equal(r.cause, NB_CHECK_NOT_DETERMINISTIC);
        assert_int_equal(r.n_kinks, 0);
        assert_false(r.localised);
        const char *text = report(&r);
        assert_true(mentions(text, "FAILED"));
        assert_true(mentions(text, "not deterministic: f returns different values at the same "
                                   "point"));
        assert_true(mentions(text, "opts.rng"));
        assert_false(mentions(text, "kink"));
        assert_false(mentions(text, "worst entry"));
    }
    nb_graph_free(g);
}

/* ------------------------------------------------- step sweep, numerics */

static nb_tensor *sin_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    return nb_sin(g, x[0]);
}

static nb_tensor *affine_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n;
    int64_t s[] = {3, 1}, s33[] = {3, 3};
    nb_tensor *a = nb_tensor_from(g, NB_F64, 2, s33, ctx); /* constants live in g too */
    return nb_matmul(g, a, nb_reshape(g, x[0], 2, s), false, false);
}

static void test_sweep_and_numerics(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_scalar(g, NB_F64, 1.0);
    nb_check_opts o = nb_check_defaults();
    o.sweep = true;
    nb_check_result r;
    assert_int_equal(nb_gradcheck(sin_fn, NULL, &x, 1, &o, &r), NB_OK);
    assert_true(r.pass);
    assert_int_equal(r.n_sweep, 12);
    int best = 0;
    for (int i = 1; i < r.n_sweep; i++)
        if (r.sweep_err[i] < r.sweep_err[best])
            best = i;
    /* the V: truncation error falls with h, round-off rises below ~1e-5 */
    assert_true(best >= 2 && best <= 7);
    assert_true(r.sweep_err[0] > 100 * r.sweep_err[best]);
    assert_true(r.sweep_err[r.n_sweep - 1] > 100 * r.sweep_err[best]);
    assert_true(mentions(report(&r), "step sweep"));

    /* Richardson extrapolation beats plain central differences at a large step */
    o = nb_check_defaults();
    o.eps = 1e-2;
    nb_tensor *jc = nb_numerical_jacobian(g, sin_fn, NULL, &x, 1, 0, &o);
    o.richardson = true;
    nb_tensor *jr = nb_numerical_jacobian(g, sin_fn, NULL, &x, 1, 0, &o);
    assert_non_null(jc);
    assert_non_null(jr);
    double ec = fabs(nb_tensor_item(jc) - cos(1.0)), er = fabs(nb_tensor_item(jr) - cos(1.0));
    assert_true(ec > 1e-6 && er < 1e-9);

    /* the numerical Jacobian of x -> A x is A */
    const double av[] = {1, 2, 3, -1, 0.5, 4, 0, 0, 2};
    int64_t s3[] = {3};
    nb_tensor *v = nb_full(g, NB_F64, 1, s3, 0.25);
    nb_tensor *j = nb_numerical_jacobian(g, affine_fn, (void *)av, &v, 1, 0, NULL);
    assert_non_null(j);
    assert_int_equal(nb_tensor_rank(j), 3); /* [3,1] ++ [3] */
    for (int q = 0; q < 9; q++)
        assert_true(fabs(nb_tensor_get(j, q) - av[q]) < 1e-9);
    nb_graph_free(g);
}

/* ------------------------------------------------------------ replay */

/* sum(x * c) where c is a copy of x's values made outside the graph: the
 * recorded graph does not know c depends on x, so replaying it would see
 * c as a constant; the derivative is 2x, the recorded rules give c = x */
static nb_tensor *copy_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *c =
        nb_tensor_from(g, NB_F64, nb_tensor_rank(x[0]), nb_tensor_shape(x[0]), nb_tensor_f64(x[0]));
    return nb_sum(g, nb_mul(g, x[0], c), NULL, 0, false);
}

/* branches in C on x[0]: sin below 0.5, cos from there on */
static nb_tensor *branch_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    nb_tensor *y = nb_tensor_get(x[0], 0) < 0.5 ? nb_sin(g, x[0]) : nb_cos(g, x[0]);
    return nb_sum(g, y, NULL, 0, false);
}

/* t_tscale: y = 2x; the tangent rule is right only when the tangent's
 * first element is nonzero (it reads the tangent's values in C) */
static nb_status tscale_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    nb_tensor *x = nb_op_input(out, 0);
    for (int64_t k = 0; k < nb_tensor_size(out); k++)
        nb_tensor_set(out, k, 2 * nb_tensor_get(x, k));
    return NB_OK;
}

static nb_tensor *tscale_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    (void)out, (void)i;
    return nb_scale(g, grad, 2.0);
}

static nb_tensor *tscale_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    (void)out;
    return nb_scale(g, t[0], nb_tensor_get(t[0], 0) != 0 ? 2.0 : 3.0);
}

static nb_tensor *tscale_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n;
    return nb_apply(g, *(int *)ctx, x, 1, NULL);
}

/* Full mode with and without replay: the same result, bit for bit. */
static nb_check_result check_replay(nb_check_fn f, void *ctx, nb_tensor *const *in, int n,
                                    nb_check_result *direct)
{
    nb_check_opts o = nb_check_defaults();
    nb_check_result r;
    assert_int_equal(nb_gradcheck(f, ctx, in, n, &o, &r), NB_OK);
    o.replay = false;
    assert_int_equal(nb_gradcheck(f, ctx, in, n, &o, direct), NB_OK);
    if (r.pass != direct->pass) {
        nb_check_print(&r, stderr);
        nb_check_print(direct, stderr);
    }
    assert_same_result(&r, direct);
    assert_int_equal(direct->replays, 0);
    return r;
}

static void test_replay(void **state)
{
    (void)state;
    /* every case of the built-in suite replays, to the same result */
    int n;
    const nb_check_case *cases = nb_check_builtin_cases(&n);
    nb_check_opts o = nb_check_defaults();
    for (int i = 0; i < n; i++) {
        nb_check_result r, direct;
        o.replay = true;
        assert_int_equal(nb_check_run_case(&cases[i], &o, &r), NB_OK);
        o.replay = false;
        assert_int_equal(nb_check_run_case(&cases[i], &o, &direct), NB_OK);
        assert_same_result(&r, &direct);
        /* every moved point replayed; f itself is called twice more than
         * without replay (at the two points that judge the recording) */
        if (r.replays != direct.evals - 3)
            fprintf(stderr, "case %s %s: %lld of %lld points replayed\n", cases[i].op,
                    cases[i].what, (long long)r.replays, (long long)direct.evals - 3);
        assert_int_equal(r.replays, direct.evals - 3);
        assert_int_equal(r.evals, direct.evals + 2);
    }

    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    int64_t s6[] = {6};
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F64, 1, s6, 0.1, 1);

    /* a value copied out of the graph and back in: no replay, and the
     * check fails (the rules miss the copy's dependence on x) */
    nb_check_result direct;
    nb_check_result r = check_replay(copy_fn, NULL, &x, 1, &direct);
    assert_false(r.pass);
    assert_int_equal(r.replays, 0);
    assert_true(fabs(r.worst.numerical - 2 * r.worst.reverse) < 1e-6);

    /* branching in C: far from the switch the graph is the same at every
     * point and replays; at the switch the calls of f disagree with the
     * replay, so every point is a call */
    r = check_replay(branch_fn, NULL, &x, 1, &direct);
    assert_true(r.pass);
    assert_true(r.replays > 0);
    nb_tensor *at = nb_full(g, NB_F64, 1, s6, 0.5);
    r = check_replay(branch_fn, NULL, &at, 1, &direct);
    assert_int_equal(r.replays, 0);
    /* x[0] moved down switches to sin: a jump, seen as a kink */
    assert_int_equal(r.n_kinks, 1);
    assert_int_equal(r.kink.in_index, 0);

    /* a new dropout mask at every call (no opts.rng): the replay would
     * keep the recorded one, so it is not used (the verdict is the luck of
     * the draws, as without replay); with opts.rng it is */
    dropout_ctx d = {&rng};
    o = nb_check_defaults();
    assert_int_equal(nb_gradcheck(dropout_fn, &d, &x, 1, &o, &r), NB_OK);
    assert_int_equal(r.replays, 0);
    o.rng = &rng;
    assert_int_equal(nb_gradcheck(dropout_fn, &d, &x, 1, &o, &r), NB_OK);
    assert_true(r.pass);
    assert_int_equal(r.replays, 12);

    /* a tangent rule that depends on the tangent's values in C: the
     * recorded tangent sweep (at the first one-hot) does not reproduce
     * nb_jvp at the last one-hot, so forward mode runs nb_jvp per column
     * and fails where the rule is wrong */
    int id;
    nb_op_def def = {"t_tscale", 1, nb_op_like_input, tscale_fwd, tscale_vjp, tscale_jvp};
    assert_int_equal(nb_op_register(&def, &id), NB_OK);
    r = check_replay(tscale_fn, &id, &x, 1, &direct);
    assert_false(r.pass);
    assert_true(r.reverse_ok);
    assert_false(r.forward_ok);
    assert_true(r.replays > 0); /* the numerical side still replays */
    assert_true(mentions(report(&r), "by replay"));
    nb_graph_free(g);
}

/* --------------------------------------------------------- bad input */

static nb_tensor *null_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)g, (void)x, (void)n, (void)ctx;
    return NULL;
}

static nb_tensor *failing_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n, (void)ctx;
    int64_t s[] = {7};
    return nb_add(g, x[0], nb_zeros(g, NB_F64, 1, s)); /* [4] + [7] */
}

static nb_status any_shape(nb_graph *g, nb_tensor *out)
{
    return nb_op_set_result(g, out, NB_F64, 0, NULL);
}

static nb_status any_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g, (void)out;
    return NB_OK;
}

static nb_status bad_rank_shape(nb_graph *g, nb_tensor *out)
{
    int64_t s[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    return nb_op_set_result(g, out, NB_F64, 9, s);
}

static void test_bad_input(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    int64_t s4[] = {4};
    nb_tensor *x = nb_ones(g, NB_F64, 1, s4), *x32 = nb_ones(g, NB_F32, 1, s4);
    nb_check_result r;
    assert_int_equal(nb_gradcheck(NULL, NULL, &x, 1, NULL, &r), NB_ERR_NULL);
    assert_true(mentions(r.error.msg, "NULL"));
    assert_string_equal(r.error.where, "nb_gradcheck");
    /* every cause has its sentence; an unknown one is named so */
    for (int c = NB_CHECK_AGREE; c <= NB_CHECK_RULE_ERROR; c++)
        assert_false(mentions(nb_check_cause_str((nb_check_cause)c), "unknown"));
    assert_string_equal(nb_check_cause_str((nb_check_cause)99), "unknown cause");
    assert_int_equal(nb_gradcheck(sin_fn, NULL, &x, 0, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "got 0"));
    assert_int_equal(nb_gradcheck(sin_fn, NULL, NULL, 1, NULL, &r), NB_ERR_NULL);
    nb_tensor *mixed[2] = {x, x32};
    assert_int_equal(nb_gradcheck(relu_fn, NULL, mixed, 2, NULL, &r), NB_ERR_DTYPE);
    assert_true(mentions(r.error.msg, "f32") && mentions(r.error.msg, "f64"));
    assert_int_equal(nb_gradcheck(null_fn, NULL, &x, 1, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "returned NULL"));
    assert_int_equal(nb_gradcheck(failing_fn, NULL, &x, 1, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "add") && mentions(r.error.msg, "[7]"));
    /* the op that failed inside the function, and its sentence once */
    assert_string_equal(r.error.where, "add");
    assert_true(strncmp(r.error.msg, "the function failed: add: ", 26) == 0);
    assert_null(strstr(r.error.msg, "add: add:"));
    assert_true(mentions(report(&r), "ERROR"));
    nb_check_opts o = nb_check_defaults();
    o.atol = -1;
    assert_int_equal(nb_gradcheck(sin_fn, NULL, &x, 1, &o, &r), NB_ERR_ARG);
    o = nb_check_defaults();
    o.wrt = 1u << 3;
    assert_int_equal(nb_gradcheck(sin_fn, NULL, &x, 1, &o, &r), NB_ERR_ARG);
    assert_int_equal(nb_gradcheck(sin_fn, NULL, &x, 1, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_gradcheck_op(-5, NULL, 1, (int[]){1}, (const int64_t *[]){s4}, NULL, &r),
                     NB_ERR_ARG);
    assert_string_equal(r.error.where, "nb_gradcheck_op");
    assert_true(r.error.offset == -1);
    assert_int_equal(nb_check_run_case(NULL, NULL, &r), NB_ERR_NULL);
    assert_string_equal(r.error.where, "nb_check_run_case");
    assert_string_equal(r.error.msg, "no case given");
    assert_null(nb_numerical_jacobian(g, NULL, NULL, &x, 1, 0, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);

    /* registering */
    int id;
    nb_op_def d = {"t_any", 1, any_shape, any_fwd, NULL, NULL};
    assert_int_equal(nb_op_register(NULL, &id), NB_ERR_NULL);
    assert_int_equal(nb_op_register(&d, NULL), NB_ERR_NULL);
    nb_op_def dup = d;
    dup.name = "add";
    assert_int_equal(nb_op_register(&dup, &id), NB_ERR_EXISTS);
    nb_op_def empty = d;
    empty.name = "";
    assert_int_equal(nb_op_register(&empty, &id), NB_ERR_ARG);
    nb_op_def half = d;
    half.vjp = bmul_vjp;
    assert_int_equal(nb_op_register(&half, &id), NB_ERR_ARG);
    nb_op_def noshape = d;
    noshape.shape = NULL;
    assert_int_equal(nb_op_register(&noshape, &id), NB_ERR_NULL);
    assert_int_equal(nb_op_register(&d, &id), NB_OK);
    assert_int_equal(nb_op_find("t_any"), id);
    assert_int_equal(nb_op_register(&d, &id), NB_ERR_EXISTS);
    assert_false(nb_op_differentiable(id));
    assert_null(nb_op_name(nb_op_count()));

    /* applying */
    assert_null(nb_apply(g, 100000, &x, 1, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    assert_true(mentions(nb_graph_error(g)->msg, "unknown op id"));
    nb_graph_clear_error(g);
    assert_null(nb_apply(g, id, NULL, 1, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);
    nb_tensor *xx[2] = {x, x};
    assert_null(nb_apply(g, id, xx, 2, NULL)); /* t_any takes 1 */
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    nb_graph_clear_error(g);
    nb_op_def rank9 = {"t_rank9", 1, bad_rank_shape, any_fwd, NULL, NULL};
    assert_int_equal(nb_op_register(&rank9, &id), NB_OK);
    assert_null(nb_apply(g, id, &x, 1, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_RANK);
    assert_true(mentions(nb_graph_error(g)->where, "t_rank9"));
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_cases),
        cmocka_unit_test(test_kinks),
        cmocka_unit_test(test_user_ops),
        cmocka_unit_test(test_localisation),
        cmocka_unit_test(test_f32_shadow),
        cmocka_unit_test(test_stochastic),
        cmocka_unit_test(test_sweep_and_numerics),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
