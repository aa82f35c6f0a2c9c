/* Forward mode: the tangent rules leave out the terms of inputs that have
 * no tangent, and the results are those of the full rules; full Jacobians
 * by forward mode agree with reverse mode; tangents handed back are new
 * tensors; registered ops still get zeros for inputs without a tangent. */

#include "tc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the graphs */

/* y(x, c1, c2): x [3,4] the input, c1 [1,4] and c2 [3,1] broadcast against
 * it; each function exercises a few rules with one or two inputs that have
 * no tangent when only x has one. */
typedef nb_tensor *(*graph_fn)(nb_graph *g, nb_tensor *x, nb_tensor *c1, nb_tensor *c2);

static nb_tensor *f_affine(nb_graph *g, nb_tensor *x, nb_tensor *c1, nb_tensor *c2)
{
    /* tanh(W x + b): W [3,3] from c2 c2^T + 1, b = c2 */
    nb_tensor *w = nb_add_scalar(g, nb_matmul(g, c2, c2, false, true), 1.0);
    return nb_tanh(g, nb_add(g, nb_matmul(g, w, nb_mul(g, x, c1), false, false), c2));
}

static nb_tensor *f_arith(nb_graph *g, nb_tensor *x, nb_tensor *c1, nb_tensor *c2)
{
    /* x c1 + c2 / x - (c1 - x) + (x - c2) / c1 + c2 + c2 x + ... */
    nb_tensor *r = nb_add(g, nb_mul(g, x, c1), nb_div(g, c2, x));
    r = nb_sub(g, r, nb_sub(g, c1, x));
    r = nb_add(g, r, nb_div(g, nb_sub(g, x, c2), c1));
    r = nb_add(g, c2, nb_add(g, r, nb_mul(g, c2, x)));
    /* a term with a tangent smaller than the result: broadcast */
    nb_tensor *c12 = nb_mul(g, c1, c2); /* [3,4] */
    nb_tensor *col = nb_sum(g, x, (int[]){0}, 1, true), *row = nb_sum(g, x, (int[]){1}, 1, true);
    return nb_add(g, r, nb_add(g, nb_add(g, col, c12), nb_sub(g, c12, row)));
}

static nb_tensor *f_select(nb_graph *g, nb_tensor *x, nb_tensor *c1, nb_tensor *c2)
{
    /* max(x, c1) + min(c2, x) + where(c1 > 0, x², c2) + where(c2 > 0, c1, x) */
    nb_tensor *zero = nb_scalar(g, nb_tensor_dtype(x), 0.0);
    nb_tensor *r = nb_add(g, nb_maximum(g, x, c1), nb_minimum(g, c2, x));
    r = nb_add(g, r, nb_where(g, nb_gt(g, c1, zero), nb_square(g, x), c2));
    return nb_add(g, r, nb_where(g, nb_gt(g, c2, zero), c1, x));
}

static nb_tensor *f_pow(nb_graph *g, nb_tensor *x, nb_tensor *c1, nb_tensor *c2)
{
    /* |x|^|c1| + |c2|^x, bases kept positive so that every term is finite */
    nb_tensor *ax = nb_add_scalar(g, nb_abs(g, x), 0.5);
    nb_tensor *ac1 = nb_add_scalar(g, nb_abs(g, c1), 0.5);
    nb_tensor *ac2 = nb_add_scalar(g, nb_abs(g, c2), 0.5);
    return nb_add(g, nb_pow(g, ax, ac1), nb_pow(g, ac2, x));
}

static nb_tensor *f_shapes(nb_graph *g, nb_tensor *x, nb_tensor *c1, nb_tensor *c2)
{
    /* sum over rows of concat(x, c1) · mean over columns of x^T c2-ish products */
    nb_tensor *cat = nb_concat(g, (nb_tensor *[]){x, c1}, 2, 0); /* [4,4] */
    nb_tensor *xt_c2 = nb_matmul(g, x, c2, true, false);         /* [4,1] */
    nb_tensor *c2t_x = nb_matmul(g, c2, x, true, false);         /* [1,4] */
    nb_tensor *s = nb_sum(g, cat, (int[]){0}, 1, true);          /* [1,4] */
    nb_tensor *m = nb_mean(g, nb_mul(g, cat, xt_c2), (int[]){1}, 1, true);
    return nb_add(g, nb_mul(g, s, c2t_x), nb_reshape(g, m, 2, (int64_t[]){1, 4}));
}

static const graph_fn graphs[] = {f_affine, f_arith, f_select, f_pow, f_shapes};
#define N_GRAPHS (int)(sizeof graphs / sizeof graphs[0])

typedef struct problem {
    nb_tensor *x, *c1, *c2, *y;
} problem;

static problem make(nb_graph *g, nb_rng *rng, nb_dtype dt, graph_fn f)
{
    problem p;
    p.x = nb_tensor_set_requires_grad(nb_rand_normal(g, rng, dt, 2, (int64_t[]){3, 4}, 0, 1), true);
    p.c1 = nb_rand_normal(g, rng, dt, 2, (int64_t[]){1, 4}, 0, 1);
    p.c2 = nb_rand_normal(g, rng, dt, 2, (int64_t[]){3, 1}, 0, 1);
    p.y = f(g, p.x, p.c1, p.c2);
    assert_non_null(p.y);
    return p;
}

static nb_tensor *zeros_like(nb_graph *g, nb_tensor *t)
{
    return nb_zeros(g, nb_tensor_dtype(t), nb_tensor_rank(t), nb_tensor_shape(t));
}

/* --------------------------------------------------------------- tests */

/* A tangent at x alone gives exactly what the full rules give when the
 * constants are listed too, with tangents of zeros (which the rules cannot
 * tell from any other tangent, so they compute every term). */
static void test_skipping_equals_dense(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    const nb_dtype dts[2] = {NB_F64, NB_F32};
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < N_GRAPHS; k++) {
            nb_graph *g = nb_graph_new();
            problem p = make(g, &rng, dts[d], graphs[k]);
            nb_tensor *t = nb_rand_normal(g, &rng, dts[d], 2, (int64_t[]){3, 4}, 0, 1);
            nb_tensor *sparse = NULL, *dense = NULL;
            assert_int_equal(nb_jvp(g, p.y, &p.x, &t, 1, &sparse), NB_OK);
            nb_tensor *xs[3] = {p.x, p.c1, p.c2};
            nb_tensor *ts[3] = {t, zeros_like(g, p.c1), zeros_like(g, p.c2)};
            assert_int_equal(nb_jvp(g, p.y, xs, ts, 3, &dense), NB_OK);
            assert_int_equal(nb_tensor_size(sparse), nb_tensor_size(p.y));
            assert_int_equal(nb_tensor_size(dense), nb_tensor_size(p.y));
            for (int64_t i = 0; i < nb_tensor_size(p.y); i++) {
                double a = nb_tensor_get(sparse, i), b = nb_tensor_get(dense, i);
                assert_true(isfinite(a));
                if (a != b)
                    fail_msg("graph %d %s element %lld: %.17g without the zero terms, %.17g with",
                             k, nb_dtype_name(dts[d]), (long long)i, a, b);
            }
            nb_graph_free(g);
        }
}

/* Skipped terms cost nothing: the tangent of W·x at x is one matmul, of
 * x·c one mul, of c - x one neg. */
static void test_skipped_terms_are_not_evaluated(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nb_tensor *w = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){6, 5}, 0, 1);
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){5, 1}, 0, 1);
    nb_tensor *t = nb_ones(g, NB_F64, 2, (int64_t[]){5, 1});
    nb_tensor *ys[3] = {nb_matmul(g, w, x, false, false), nb_mul(g, x, nb_scalar(g, NB_F64, 3)),
                        nb_sub(g, nb_scalar(g, NB_F64, 3), x)};
    for (int c = 0; c < 3; c++) {
        nb_tensor *ty = NULL;
        uint64_t e0 = nb_graph_evals(g);
        assert_int_equal(nb_jvp(g, ys[c], &x, &t, 1, &ty), NB_OK);
        assert_int_equal(nb_graph_evals(g) - e0, 1);
        for (int64_t i = 0; i < nb_tensor_size(ty); i++) {
            double want = c == 0 ? 0 : c == 1 ? 3 : -1;
            if (c == 0)
                for (int j = 0; j < 5; j++)
                    want += nb_tensor_get(w, i * 5 + j);
            tc_near(nb_tensor_get(ty, i), want, 1e-12);
        }
    }
    nb_graph_free(g);
}

/* d(x^3)/dx at x < 0 by forward mode: the exponent's term (which takes the
 * log of the base) is left out, so the result is 3x², as reverse mode
 * gives, not NaN. */
static void test_pow_negative_base(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(
        nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (double[]){-2, -0.5, 1.5}), true);
    nb_tensor *y = nb_pow(g, x, nb_scalar(g, NB_F64, 3.0));
    nb_tensor *t = nb_ones(g, NB_F64, 1, (int64_t[]){3}), *ty = NULL;
    assert_int_equal(nb_jvp(g, y, &x, &t, 1, &ty), NB_OK);
    nb_tensor *J = nb_jacobian(g, nb_sum(g, y, NULL, 0, false), x, NB_JACOBIAN_FORWARD);
    assert_non_null(J);
    for (int i = 0; i < 3; i++) {
        double xi = nb_tensor_get(x, i);
        tc_near(nb_tensor_get(ty, i), 3 * xi * xi, 1e-12);
        tc_near(nb_tensor_get(J, i), 3 * xi * xi, 1e-12);
    }
    nb_graph_free(g);
}

/* Full Jacobians by forward mode (one order and one set of zero tangents
 * shared by all columns) equal those by reverse mode, in both dtypes. */
static void test_jacobian_forward_reverse(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    const nb_dtype dts[2] = {NB_F64, NB_F32};
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < N_GRAPHS; k++) {
            nb_graph *g = nb_graph_new();
            problem p = make(g, &rng, dts[d], graphs[k]);
            nb_tensor *Jf = nb_jacobian(g, p.y, p.x, NB_JACOBIAN_FORWARD);
            nb_tensor *Jr = nb_jacobian(g, p.y, p.x, NB_JACOBIAN_REVERSE);
            assert_non_null(Jf);
            assert_non_null(Jr);
            assert_int_equal(nb_tensor_dtype(Jf), dts[d]);
            assert_int_equal(nb_tensor_size(Jf), nb_tensor_size(p.y) * 12);
            double tol = dts[d] == NB_F32 ? 1e-4 : 1e-12, big = 0;
            for (int64_t i = 0; i < nb_tensor_size(Jf); i++) {
                double a = nb_tensor_get(Jf, i), b = nb_tensor_get(Jr, i);
                big = fmax(big, fabs(b));
                tc_near(a, b, tol * (1 + fabs(b)));
            }
            assert_true(big > 0.1); /* the Jacobians are not trivially zero */
            nb_graph_free(g);
        }
}

/* Jacobians with the corner cases of the sweep: a rule that returns a zero
 * tangent for a node that depends on x (where with constant branches and
 * x as the mask), x an intermediate, y = x, y independent of x. */
static void test_jacobian_corners(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 13);
    nb_tensor *x0 =
        nb_tensor_set_requires_grad(nb_rand_normal(g, &rng, NB_F64, 1, (int64_t[]){4}, 0, 1), true);
    nb_tensor *c = nb_rand_normal(g, &rng, NB_F64, 1, (int64_t[]){4}, 0, 1);
    nb_tensor *h = nb_sin(g, x0);
    nb_tensor *ys[4] = {
        nb_add(g, nb_where(g, x0, c, nb_neg(g, c)), nb_mul(g, x0, x0)), /* zero from a rule */
        nb_mul(g, nb_exp(g, h), x0), /* d/dh with x0 held: diag(e^h x0) */
        x0,                          /* identity */
        nb_exp(g, c),                /* no dependence */
    };
    nb_tensor *xs[4] = {x0, h, x0, x0};
    for (int k = 0; k < 4; k++) {
        nb_tensor *Jf = nb_jacobian(g, ys[k], xs[k], NB_JACOBIAN_FORWARD);
        assert_non_null(Jf);
        /* reverse mode refuses a y that depends on nothing needing a gradient */
        nb_tensor *Jr = k < 3 ? nb_jacobian(g, ys[k], xs[k], NB_JACOBIAN_REVERSE) : Jf;
        assert_non_null(Jr);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                double x = nb_tensor_get(x0, i), e = nb_tensor_get(Jf, i * 4 + j);
                double want = i != j   ? 0
                              : k == 0 ? 2 * x
                              : k == 1 ? exp(sin(x)) * x
                              : k == 2 ? 1
                                       : 0;
                tc_near(e, want, 1e-12);
                tc_near(nb_tensor_get(Jr, i * 4 + j), want, 1e-12);
            }
    }
    nb_graph_free(g);
}

/* The tangent nb_jvp hands back is a new tensor even when a rule passes
 * the given tangent on, and a zero result is an ordinary tensor that works
 * as a tangent in a later sweep. */
static void test_results_are_new_tensors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_from(g, NB_F64, 1, (int64_t[]){2}, (double[]){1, 2});
    nb_tensor *c = nb_tensor_from(g, NB_F64, 1, (int64_t[]){2}, (double[]){5, 7});
    nb_tensor *t = nb_tensor_from(g, NB_F64, 1, (int64_t[]){2}, (double[]){0.25, -3});
    nb_tensor *y = nb_add(g, x, c), *ty = NULL;
    assert_int_equal(nb_jvp(g, y, &x, &t, 1, &ty), NB_OK);
    assert_ptr_not_equal(ty, t);
    tc_near(nb_tensor_get(ty, 0), 0.25, 0);
    tc_near(nb_tensor_get(ty, 1), -3, 0);
    nb_tensor_set(ty, 0, 100);
    tc_near(nb_tensor_get(t, 0), 0.25, 0);

    /* y independent of x: zeros; filled and used as the tangent of c */
    nb_tensor *z = NULL, *tz = NULL;
    assert_int_equal(nb_jvp(g, nb_exp(g, c), &x, &t, 1, &z), NB_OK);
    for (int i = 0; i < 2; i++) {
        tc_near(nb_tensor_get(z, i), 0, 0);
        nb_tensor_set(z, i, 1.0);
    }
    assert_int_equal(nb_jvp(g, nb_mul(g, x, c), &c, &z, 1, &tz), NB_OK);
    tc_near(nb_tensor_get(tz, 0), 1, 0);
    tc_near(nb_tensor_get(tz, 1), 2, 0);
    nb_graph_free(g);
}

/* A registered op whose tangent rule reads its tangents' data: inputs with
 * no tangent get real zeros of their shape, as op.h promises. */
static int64_t seen_size[2];
static double seen_abs[2];

static nb_status axpy_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    nb_tensor *a = nb_op_input(out, 0), *b = nb_op_input(out, 1);
    for (int64_t k = 0; k < nb_tensor_size(out); k++)
        nb_tensor_set(out, k,
                      nb_tensor_get(a, nb_op_bcast_index(out, 0, k)) +
                          2 * nb_tensor_get(b, nb_op_bcast_index(out, 1, k)));
    return NB_OK;
}

static nb_tensor *axpy_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    nb_tensor *d = i == 0 ? grad : nb_scale(g, grad, 2.0);
    nb_tensor *in = nb_op_input(out, i);
    return nb_sum_to(g, d, nb_tensor_rank(in), nb_tensor_shape(in));
}

static nb_tensor *axpy_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    (void)out;
    for (int i = 0; i < 2; i++) {
        assert_non_null(t[i]);
        seen_size[i] = nb_tensor_size(t[i]);
        seen_abs[i] = 0;
        for (int64_t k = 0; k < nb_tensor_size(t[i]); k++)
            seen_abs[i] += fabs(nb_tensor_get(t[i], k));
    }
    return nb_add(g, t[0], nb_scale(g, t[1], 2.0));
}

static void test_registered_op_gets_zeros(void **state)
{
    (void)state;
    int id = -1;
    nb_op_def d = {"t_fwd_axpy", 2, nb_op_broadcast_result, axpy_fwd, axpy_vjp, axpy_jvp};
    assert_int_equal(nb_op_register(&d, &id), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 3}, (double[]){1, 2, 3, 4, 5, 6});
    nb_tensor *b = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (double[]){7, 8, 9});
    nb_tensor *y = nb_sin(g, nb_apply(g, id, (nb_tensor *[]){a, nb_exp(g, b)}, 2, NULL));
    assert_non_null(y);
    nb_tensor *t = nb_ones(g, NB_F64, 2, (int64_t[]){2, 3}), *ty = NULL;
    assert_int_equal(nb_jvp(g, y, &a, &t, 1, &ty), NB_OK);
    assert_int_equal(seen_size[0], 6);
    tc_near(seen_abs[0], 6, 0);
    assert_int_equal(seen_size[1], 3);
    tc_near(seen_abs[1], 0, 0);
    for (int k = 0; k < 6; k++) {
        double v = nb_tensor_get(a, k) + 2 * exp(nb_tensor_get(b, k % 3));
        tc_near(nb_tensor_get(ty, k), cos(v), 1e-12);
    }
    /* and the same through nb_jacobian, column by column */
    nb_tensor *J = nb_jacobian(g, y, b, NB_JACOBIAN_FORWARD);
    assert_non_null(J);
    assert_int_equal(seen_size[0], 6);
    tc_near(seen_abs[0], 0, 0);
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 3; j++) {
            double bj = nb_tensor_get(b, j);
            double v = nb_tensor_get(a, k) + 2 * exp(nb_tensor_get(b, k % 3));
            tc_near(nb_tensor_get(J, k * 3 + j), j == k % 3 ? cos(v) * 2 * exp(bj) : 0, 1e-9);
        }
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skipping_equals_dense),
        cmocka_unit_test(test_skipped_terms_are_not_evaluated),
        cmocka_unit_test(test_pow_negative_base),
        cmocka_unit_test(test_jacobian_forward_reverse),
        cmocka_unit_test(test_jacobian_corners),
        cmocka_unit_test(test_results_are_new_tensors),
        cmocka_unit_test(test_registered_op_gets_zeros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
