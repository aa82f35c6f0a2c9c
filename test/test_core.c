/* The engine itself: the course notes' worked examples, reverse and forward
 * sweeps, higher-order derivatives, errors, allocation, threads. */

#include "tc.h"

#include "../src/core/internal.h" /* white box: the arena chunk size */

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static nb_tensor *leaf(nb_graph *g, double v)
{
    return nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, v), true);
}

static double grad_of(const nb_tensor *t)
{
    return nb_tensor_item(nb_tensor_grad(t));
}

/* f(x,y,z) = (x+y)·z at (-2, 5, -4): df/dx = -4, df/dy = -4, df/dz = 3. */
static void test_seed_example_sum_times(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = leaf(g, -2), *y = leaf(g, 5), *z = leaf(g, -4);
    nb_tensor *f = nb_mul(g, nb_add(g, x, y), z);
    assert_non_null(f);
    tc_near(nb_tensor_item(f), -12, 0);
    assert_int_equal(nb_backward(g, f), NB_OK);
    tc_near(grad_of(x), -4, 1e-12);
    tc_near(grad_of(y), -4, 1e-12);
    tc_near(grad_of(z), 3, 1e-12);

    /* the same by forward mode, one sweep per input */
    nb_tensor *xs[3] = {x, y, z};
    double want[3] = {-4, -4, 3};
    for (int i = 0; i < 3; i++) {
        nb_tensor *t[3];
        for (int k = 0; k < 3; k++)
            t[k] = nb_scalar(g, NB_F64, k == i);
        nb_tensor *df = NULL;
        assert_int_equal(nb_jvp(g, f, xs, t, 3, &df), NB_OK);
        tc_near(nb_tensor_item(df), want[i], 1e-12);
    }
    nb_graph_free(g);
}

/* f(x;w,b) = 1/(exp(-(wx+b))+1) at x=1, w=0, b=0: df/dw = df/db = 0.25,
 * by reverse mode and by forward mode. */
static void test_seed_example_logistic(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_scalar(g, NB_F64, 1), *w = leaf(g, 0), *b = leaf(g, 0);
    nb_tensor *z = nb_add(g, nb_mul(g, w, x), b);
    nb_tensor *f =
        nb_div(g, nb_scalar(g, NB_F64, 1), nb_add_scalar(g, nb_exp(g, nb_neg(g, z)), 1.0));
    assert_non_null(f);
    tc_near(nb_tensor_item(f), 0.5, 1e-12);
    assert_int_equal(nb_backward(g, f), NB_OK);
    tc_near(grad_of(w), 0.25, 1e-12);
    tc_near(grad_of(b), 0.25, 1e-12);

    nb_tensor *one = nb_scalar(g, NB_F64, 1), *zero = nb_scalar(g, NB_F64, 0);
    nb_tensor *xs[2] = {w, b}, *dw_t[2] = {one, zero}, *db_t[2] = {zero, one};
    nb_tensor *dfw = NULL, *dfb = NULL;
    assert_int_equal(nb_jvp(g, f, xs, dw_t, 2, &dfw), NB_OK);
    assert_int_equal(nb_jvp(g, f, xs, db_t, 2, &dfb), NB_OK);
    tc_near(nb_tensor_item(dfw), 0.25, 1e-12);
    tc_near(nb_tensor_item(dfb), 0.25, 1e-12);
    nb_graph_free(g);
}

/* XOR with W = [[1,1],[1,1]], c = [0,-1], w = [1,-2], b = 0 and ReLU
 * outputs [0,1,1,0] on the four inputs. */
static void test_seed_example_xor(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    double X[] = {0, 0, 0, 1, 1, 0, 1, 1}, W[] = {1, 1, 1, 1}, c[] = {0, -1}, w[] = {1, -2};
    nb_tensor *tx = nb_tensor_from(g, NB_F64, 2, (int64_t[]){4, 2}, X);
    nb_tensor *tW = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 2}, W);
    nb_tensor *tc_ = nb_tensor_from(g, NB_F64, 1, (int64_t[]){2}, c);
    nb_tensor *tw = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 1}, w);
    nb_tensor *h =
        nb_maximum(g, nb_add(g, nb_matmul(g, tx, tW, false, false), tc_), nb_scalar(g, NB_F64, 0));
    nb_tensor *y = nb_add(g, nb_matmul(g, h, tw, false, false), nb_scalar(g, NB_F64, 0));
    assert_non_null(y);
    double want[4] = {0, 1, 1, 0};
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(y, i), want[i], 0);
    nb_graph_free(g);
}

/* Gradients accumulate with += over repeated backward calls and over
 * several uses of one tensor. */
static void test_accumulation(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = leaf(g, 3);
    nb_tensor *y = nb_add(g, nb_mul(g, x, x), x); /* x² + x: dy/dx = 7 */
    assert_int_equal(nb_backward(g, y), NB_OK);
    tc_near(grad_of(x), 7, 0);
    assert_int_equal(nb_backward(g, y), NB_OK);
    tc_near(grad_of(x), 14, 0);
    nb_graph_free(g);
}

/* The second derivative of sin is -sin, through create_graph. */
static void test_second_derivative_sin(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    for (double v = -3; v <= 3; v += 0.7) {
        nb_tensor *x = leaf(g, v);
        nb_tensor *y = nb_sin(g, x);
        nb_tensor *dy = NULL, *d2y = NULL;
        assert_int_equal(nb_grad(g, y, NULL, &x, 1, &dy, true), NB_OK);
        tc_near(nb_tensor_item(dy), cos(v), 1e-15);
        assert_true(nb_tensor_requires_grad(dy));
        assert_int_equal(nb_grad(g, dy, NULL, &x, 1, &d2y, true), NB_OK);
        tc_near(nb_tensor_item(d2y), -sin(v), 1e-15);
        nb_tensor *d3y = NULL;
        assert_int_equal(nb_grad(g, d2y, NULL, &x, 1, &d3y, false), NB_OK);
        tc_near(nb_tensor_item(d3y), -cos(v), 1e-15);
    }
    nb_graph_free(g);
}

/* Hessian-vector product of f(x) = ½ xᵀAx (A symmetric) equals A·v:
 * differentiate <∇f, v> again. */
static void test_hessian_vector_product(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    double A[9] = {4, 1, -2, 1, 3, 0.5, -2, 0.5, 5}, X[3] = {0.3, -1.2, 2}, V[3] = {1, -2, 0.5};
    nb_tensor *a = nb_tensor_from(g, NB_F64, 2, (int64_t[]){3, 3}, A);
    nb_tensor *x =
        nb_tensor_set_requires_grad(nb_tensor_from(g, NB_F64, 2, (int64_t[]){3, 1}, X), true);
    nb_tensor *v = nb_tensor_from(g, NB_F64, 2, (int64_t[]){3, 1}, V);
    nb_tensor *ax = nb_matmul(g, a, x, false, false);
    nb_tensor *f = nb_scale(g, nb_sum(g, nb_mul(g, x, ax), NULL, 0, false), 0.5);
    nb_tensor *grad = NULL, *hv = NULL;
    assert_int_equal(nb_grad(g, f, NULL, &x, 1, &grad, true), NB_OK);
    for (int i = 0; i < 3; i++) /* ∇f = A x */
        tc_near(nb_tensor_get(grad, i), A[3 * i] * X[0] + A[3 * i + 1] * X[1] + A[3 * i + 2] * X[2],
                1e-12);
    nb_tensor *gv = nb_sum(g, nb_mul(g, grad, v), NULL, 0, false);
    assert_int_equal(nb_grad(g, gv, NULL, &x, 1, &hv, false), NB_OK);
    for (int i = 0; i < 3; i++)
        tc_near(nb_tensor_get(hv, i), A[3 * i] * V[0] + A[3 * i + 1] * V[1] + A[3 * i + 2] * V[2],
                1e-12);
    nb_graph_free(g);
}

/* A chain of 10^6 ops backpropagates without recursion. */
static void test_deep_chain(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = leaf(g, 0.5);
    nb_tensor *y = x;
    const int n = 1000000;
    for (int i = 0; i < n; i++)
        y = nb_add_scalar(g, y, 1e-6);
    assert_non_null(y);
    assert_int_equal(nb_backward(g, y), NB_OK);
    tc_near(grad_of(x), 1.0, 0);
    tc_near(nb_tensor_item(y), 1.5, 1e-9);
    nb_graph_free(g);
}

/* Full Jacobians agree both ways, and the evaluation counts show that
 * forward mode costs a sweep per input and reverse mode one per output. */
static void test_jacobian_modes(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    nb_tensor *W = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 5}, 0, 1);
    nb_tensor *x = nb_tensor_set_requires_grad(
        nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){5, 1}, 0, 1), true);
    nb_tensor *y = nb_tanh(g, nb_matmul(g, W, x, false, false)); /* R^5 -> R^2 */
    assert_non_null(y);
    uint64_t e0 = nb_graph_evals(g);
    nb_tensor *Jf = nb_jacobian(g, y, x, NB_JACOBIAN_FORWARD);
    uint64_t e1 = nb_graph_evals(g);
    nb_tensor *Jr = nb_jacobian(g, y, x, NB_JACOBIAN_REVERSE);
    uint64_t e2 = nb_graph_evals(g);
    assert_non_null(Jf);
    assert_non_null(Jr);
    assert_int_equal(nb_tensor_rank(Jf), 4);
    for (int64_t i = 0; i < nb_tensor_size(Jf); i++)
        tc_near(nb_tensor_get(Jf, i), nb_tensor_get(Jr, i), 1e-14);
    /* dy_i/dx_j = (1 - y_i²) W_ij */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 5; j++) {
            double yi = nb_tensor_get(y, i);
            tc_near(nb_tensor_get(Jf, i * 5 + j), (1 - yi * yi) * nb_tensor_get(W, i * 5 + j),
                    1e-14);
        }
    /* 5 forward sweeps vs 2 reverse sweeps: forward mode does more work here */
    assert_true(e1 - e0 > e2 - e1);
    nb_graph_free(g);
}

/* nb_jacobian's mode is one of nb_jacobian_mode: NB_JACOBIAN_AUTO runs the
 * cheaper sweep (the same numbers and evaluation count as that mode asked
 * for by name, fewer than the other mode), and any other value is refused
 * with NB_ERR_ARG naming it, before any work. */
static void test_jacobian_mode_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    nb_tensor *W = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 5}, 0, 1);
    nb_tensor *xw = nb_tensor_set_requires_grad(
        nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){5, 1}, 0, 1), true);
    nb_tensor *xt = nb_tensor_set_requires_grad(
        nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 1}, 0, 1), true);
    struct {
        nb_tensor *y, *x;
        nb_jacobian_mode cheaper, dearer;
    } cases[] = {
        /* R^5 -> R^2: two reverse sweeps beat five forward ones */
        {nb_tanh(g, nb_matmul(g, W, xw, false, false)), xw, NB_JACOBIAN_REVERSE,
         NB_JACOBIAN_FORWARD},
        /* R^2 -> R^5: two forward sweeps beat five reverse ones */
        {nb_tanh(g, nb_matmul(g, W, xt, true, false)), xt, NB_JACOBIAN_FORWARD,
         NB_JACOBIAN_REVERSE},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_non_null(cases[k].y);
        uint64_t e0 = nb_graph_evals(g);
        nb_tensor *Jc = nb_jacobian(g, cases[k].y, cases[k].x, cases[k].cheaper);
        uint64_t e1 = nb_graph_evals(g);
        nb_tensor *Ja = nb_jacobian(g, cases[k].y, cases[k].x, NB_JACOBIAN_AUTO);
        uint64_t e2 = nb_graph_evals(g);
        nb_tensor *Jd = nb_jacobian(g, cases[k].y, cases[k].x, cases[k].dearer);
        uint64_t e3 = nb_graph_evals(g);
        assert_non_null(Jc);
        assert_non_null(Ja);
        assert_non_null(Jd);
        assert_int_equal(e2 - e1, e1 - e0);
        assert_true(e3 - e2 > e2 - e1);
        assert_int_equal(nb_tensor_size(Ja), 10);
        for (int64_t i = 0; i < nb_tensor_size(Ja); i++) {
            assert_true(nb_tensor_get(Ja, i) == nb_tensor_get(Jc, i));
            tc_near(nb_tensor_get(Ja, i), nb_tensor_get(Jd, i), 1e-14);
        }
    }
    int bad[] = {-1, 3, 4, 5, 7, 100};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        nb_graph_clear_error(g);
        uint64_t e0 = nb_graph_evals(g);
        assert_null(nb_jacobian(g, cases[0].y, xw, (nb_jacobian_mode)bad[k]));
        assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
        assert_string_equal(nb_graph_error(g)->where, "jacobian");
        char want[32];
        snprintf(want, sizeof want, "mode %d is not", bad[k]);
        assert_non_null(strstr(nb_graph_error(g)->msg, want));
        assert_int_equal(nb_graph_evals(g), e0);
    }
    nb_graph_free(g);
}

/* ------------------------------------------------------------------ errors */

static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_zeros(g, NB_F64, 2, (int64_t[]){3, 4});
    nb_tensor *b = nb_zeros(g, NB_F64, 2, (int64_t[]){5, 2});
    nb_tensor *c32 = nb_zeros(g, NB_F32, 2, (int64_t[]){3, 4});

    /* shape mismatch */
    assert_null(nb_add(g, a, b));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "add: [3,4] and [5,2] do not broadcast"));
    assert_string_equal(nb_graph_error(g)->where, "add");
    /* the first error sticks */
    assert_null(nb_mul(g, a, c32));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    nb_graph_clear_error(g);

    /* dtype mismatch */
    assert_null(nb_mul(g, a, c32));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "mul: f64[3,4] and f32[3,4]: dtypes differ"));
    nb_graph_clear_error(g);

    /* matmul inner sizes */
    assert_null(nb_matmul(g, a, b, false, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "matmul"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "[3,4]"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "[5,2]"));
    nb_graph_clear_error(g);

    /* rank over 8 */
    int64_t big[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_null(nb_zeros(g, NB_F64, 9, big));
    assert_int_equal(nb_graph_status(g), NB_ERR_RANK);
    assert_non_null(strstr(nb_graph_error(g)->msg, "rank 9 is outside 0..8"));
    nb_graph_clear_error(g);

    /* negative size, unknown dtype */
    assert_null(nb_zeros(g, NB_F64, 1, (int64_t[]){-3}));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    nb_graph_clear_error(g);
    assert_null(nb_zeros(g, (nb_dtype)7, 1, (int64_t[]){3}));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    nb_graph_clear_error(g);

    /* backward of a non-scalar without a seed */
    nb_tensor *x = nb_tensor_set_requires_grad(nb_ones(g, NB_F64, 1, (int64_t[]){3}), true);
    nb_tensor *y = nb_exp(g, x);
    assert_int_equal(nb_backward(g, y), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "backward: output has shape [3]"));
    nb_graph_clear_error(g);
    /* ... which works with a seed (vector-Jacobian product) */
    nb_tensor *seed = nb_full(g, NB_F64, 1, (int64_t[]){3}, 2.0);
    assert_int_equal(nb_backward_seed(g, y, seed), NB_OK);
    tc_near(nb_tensor_get(nb_tensor_grad(x), 1), 2 * exp(1.0), 1e-12);
    /* a seed of the wrong shape */
    assert_int_equal(nb_backward_seed(g, y, a), NB_ERR_SHAPE);
    nb_graph_clear_error(g);

    /* backward of something that needs no gradient */
    assert_int_equal(nb_backward(g, nb_sum(g, a, NULL, 0, false)), NB_ERR_GRAPH);
    nb_graph_clear_error(g);

    /* NULL inputs: ops return NULL quietly, no error */
    assert_null(nb_exp(g, NULL));
    assert_null(nb_add(g, a, NULL));
    assert_null(nb_add(NULL, a, a));
    assert_int_equal(nb_graph_status(g), NB_OK);
    assert_int_equal(nb_backward(g, NULL), NB_ERR_NULL);
    nb_graph_clear_error(g);
    assert_null(nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);

    /* tensors of another graph */
    nb_graph *g2 = nb_graph_new();
    nb_tensor *other = nb_zeros(g2, NB_F64, 2, (int64_t[]){3, 4});
    assert_null(nb_add(g, a, other));
    assert_int_equal(nb_graph_status(g), NB_ERR_GRAPH);
    nb_graph_clear_error(g);
    nb_graph_free(g2);

    /* check-finite mode names the op */
    nb_graph_set_check_finite(g, true);
    nb_tensor *neg = nb_tensor_set_name(nb_full(g, NB_F64, 1, (int64_t[]){2}, -1.0), "neg_input");
    assert_null(nb_log(g, neg));
    assert_int_equal(nb_graph_status(g), NB_ERR_NONFINITE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "log: result [2] holds NaN or Inf"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "neg_input"));
    nb_graph_free(g);

    /* every status has a sentence */
    for (int s = 0; s <= NB_ERR_COMM; s++) {
        assert_true(strlen(nb_status_str((nb_status)s)) > 1);
        assert_string_not_equal(nb_status_str((nb_status)s), "unknown status");
    }
    assert_string_equal(nb_status_str((nb_status)999), "unknown status");
    assert_string_equal(nb_graph_error(NULL)->msg, "no graph");
    assert_int_equal(nb_graph_error(NULL)->status, NB_ERR_NULL);
}

/* The graph's error is one nb_error: where is the op, the sentence starts
 * with it, line and column stay 0 and offset -1; a reset clears it. */
static void test_graph_error_fields(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    const nb_error *e = nb_graph_error(g);
    assert_int_equal(e->status, NB_OK);
    assert_true(e->offset == -1);
    assert_string_equal(e->msg, "");
    nb_tensor *a = nb_zeros(g, NB_F64, 2, (int64_t[]){2, 3});
    nb_tensor *b = nb_zeros(g, NB_F64, 2, (int64_t[]){4, 2});
    assert_null(nb_matmul(g, a, b, false, false));
    assert_ptr_equal(nb_graph_error(g), e);
    assert_int_equal(e->status, NB_ERR_SHAPE);
    assert_string_equal(e->where, "matmul");
    assert_true(strncmp(e->msg, "matmul: ", 8) == 0);
    assert_string_equal(e->name, "");
    assert_true(e->offset == -1 && e->line == 0 && e->column == 0);
    /* the first error stays */
    assert_null(nb_sum(g, a, (const int[]){7}, 1, false));
    assert_string_equal(e->where, "matmul");
    nb_graph_reset(g);
    assert_int_equal(e->status, NB_OK);
    assert_string_equal(e->where, "");
    assert_string_equal(e->msg, "");
    /* an error recorded by a custom op's rule: nb_op_error */
    assert_int_equal(nb_op_error(g, NB_ERR_ARG, "my_op", "bad %s", "thing"), NB_ERR_ARG);
    assert_string_equal(e->where, "my_op");
    assert_string_equal(e->msg, "my_op: bad thing");
    nb_graph_clear_error(g);
    assert_int_equal(nb_op_error(g, NB_ERR_ARG, NULL, NULL), NB_ERR_ARG);
    assert_string_equal(e->where, "op");
    assert_string_equal(e->msg, "op: ");
    nb_graph_free(g);
}

/* check-finite also catches a non-finite value produced by the backward pass */
static void test_nonfinite_backward(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_graph_set_check_finite(g, true);
    nb_tensor *x = leaf(g, 0.0);
    nb_tensor *y = nb_sqrt(g, x); /* sqrt(0) = 0 is finite, its derivative is not */
    assert_non_null(y);
    assert_int_equal(nb_backward(g, y), NB_ERR_NONFINITE);
    /* named after the op whose rule made it and the input, not an op of the rule */
    assert_string_equal(nb_graph_error(g)->where, "sqrt");
    assert_string_equal(nb_graph_error(g)->name, "");
    assert_string_equal(nb_graph_error(g)->msg,
                        "sqrt: reverse rule for input 0 (a leaf) gives Inf at []");

    /* a named input inside a larger function: sqrt's rule makes Inf at
     * [1], which then meets the seed's 0 in mul's rule to give NaN; the
     * first is reported */
    nb_graph_reset(g);
    nb_tensor *v = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (const double[]){1, 0, 4});
    nb_tensor_set_requires_grad(nb_tensor_set_name(v, "x"), true);
    nb_tensor *w = nb_mul(g, nb_sqrt(g, v), nb_scalar(g, NB_F64, 3.0));
    nb_tensor *seed = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (const double[]){1, 1, 1});
    assert_int_equal(nb_backward_seed(g, w, seed), NB_ERR_NONFINITE);
    assert_string_equal(nb_graph_error(g)->msg,
                        "sqrt: reverse rule for input 'x' gives Inf at [1]");
    assert_string_equal(nb_graph_error(g)->where, "sqrt");
    assert_string_equal(nb_graph_error(g)->name, "x");
    assert_null(strstr(nb_graph_error(g)->msg, "div"));

    /* two finite gradients that add up to Inf: the sum is named */
    nb_graph_reset(g);
    nb_tensor *b = nb_full(g, NB_F64, 1, (int64_t[]){2}, 1e-300);
    nb_tensor_set_requires_grad(nb_tensor_set_name(b, "b"), true);
    nb_tensor *twice = nb_add(g, nb_scale(g, b, 1e308), nb_scale(g, b, 1e308));
    assert_non_null(twice);
    assert_int_equal(nb_backward_seed(g, twice, nb_ones(g, NB_F64, 1, (int64_t[]){2})),
                     NB_ERR_NONFINITE);
    assert_non_null(
        strstr(nb_graph_error(g)->msg, "the gradients of input 'b' add up to Inf at [0]"));
    assert_string_equal(nb_graph_error(g)->where, "mul");
    assert_string_equal(nb_graph_error(g)->name, "b");

    /* forward mode alike: the op whose tangent rule made it */
    nb_graph_reset(g);
    v = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (const double[]){1, 0, 4});
    w = nb_mul(g, nb_sqrt(g, v), nb_scalar(g, NB_F64, 3.0));
    nb_tensor *u = nb_ones(g, NB_F64, 1, (int64_t[]){3}), *wt = NULL;
    assert_int_equal(nb_jvp(g, w, &v, &u, 1, &wt), NB_ERR_NONFINITE);
    assert_string_equal(nb_graph_error(g)->msg, "sqrt: tangent rule gives Inf at [1]");
    nb_graph_free(g);
}

/* One-element gradients are computed as numbers when no graph of them is
 * wanted; they must equal, bit for bit, what the VJP rules' graphs give
 * (create_graph), in both dtypes, for 0-d and [1]-shaped operands, with
 * fan-out (numbers added up) and with a one-element tensor that also feeds
 * a broadcasting op (a tensor gradient meeting a number). */
typedef nb_tensor *(*unary_fn)(nb_graph *, nb_tensor *);
typedef nb_tensor *(*binary_fn)(nb_graph *, nb_tensor *, nb_tensor *);

static nb_tensor *one_elem(nb_graph *g, nb_dtype dt, int rank, double v)
{
    int64_t shape[2] = {1, 1};
    nb_tensor *t = nb_full(g, dt, rank, shape, v);
    return nb_tensor_set_requires_grad(t, true);
}

/* f(a, b) built with op; gradients of both by the number path and the
 * graph path, compared bit for bit */
static void compare_paths(nb_dtype dt, int rank_a, int rank_b, unary_fn u, binary_fn bf, double av,
                          double bv, bool mixed)
{
    double got[2][3];
    for (int path = 0; path < 2; path++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *a = one_elem(g, dt, rank_a, av), *b = one_elem(g, dt, rank_b, bv);
        nb_tensor *y = u ? u(g, a) : bf(g, a, b);
        nb_tensor *z = nb_add(g, nb_mul(g, y, nb_tanh(g, y)), nb_sub(g, y, b)); /* fan-out */
        nb_tensor *v = NULL;
        if (mixed) { /* b also scales a vector: a tensor gradient reaches b */
            v = nb_tensor_set_requires_grad(nb_full(g, dt, 1, (int64_t[]){3}, 0.5), true);
            nb_tensor_set(v, 1, 1.5);
            nb_tensor_set(v, 2, 2.5);
            z = nb_add(g, nb_sum(g, nb_mul(g, b, nb_sin(g, v)), NULL, 0, false), z);
        }
        assert_non_null(z);
        nb_tensor *xs[3] = {a, b, v}, *out[3];
        assert_int_equal(nb_grad(g, z, NULL, xs, mixed ? 3 : 2, out, path == 1), NB_OK);
        for (int i = 0; i < (mixed ? 3 : 2); i++)
            got[path][i] = nb_tensor_get(out[i], i == 2 ? 1 : 0);
        if (!mixed)
            got[path][2] = 0;
        nb_graph_free(g);
    }
    assert_memory_equal(got[0], got[1], sizeof got[0]);
}

static void test_scalar_gradients_as_numbers(void **state)
{
    (void)state;
    const unary_fn un[] = {nb_neg, nb_exp, nb_log,  nb_log1p, nb_expm1, nb_sqrt,   nb_abs,
                           nb_sin, nb_cos, nb_tanh, nb_erf,   nb_relu,  nb_sigmoid};
    const binary_fn bin[] = {nb_add, nb_sub, nb_mul, nb_div, nb_pow, nb_maximum};
    const nb_dtype dts[2] = {NB_F32, NB_F64};
    const double vals[3][2] = {{0.7, 1.3}, {1.9, -0.45}, {0.123456789, 3.3}};
    for (int d = 0; d < 2; d++)
        for (int r = 0; r < 3; r++) {
            int ra = r == 2 ? 2 : r, rb = r == 1 ? 0 : r;
            for (size_t k = 0; k < sizeof un / sizeof un[0]; k++)
                compare_paths(dts[d], ra, rb, un[k], NULL, vals[r][0], vals[r][1], r == 1);
            for (size_t k = 0; k < sizeof bin / sizeof bin[0]; k++)
                compare_paths(dts[d], ra, rb, NULL, bin[k], fabs(vals[r][0]), vals[r][1],
                              r == 1);
        }

    /* nb_backward's numbers land in the leaves' gradients like tensors did */
    nb_graph *g = nb_graph_new();
    nb_tensor *x = leaf(g, 0.5);
    nb_tensor *y = nb_mul(g, nb_sin(g, x), nb_add(g, x, nb_scale(g, x, 3.0)));
    assert_int_equal(nb_backward(g, y), NB_OK);
    assert_int_equal(nb_backward(g, y), NB_OK); /* accumulates */
    double expect = 2 * (cos(0.5) * 4 * 0.5 + sin(0.5) * 4);
    assert_true(fabs(grad_of(x) - expect) < 1e-15);
    nb_graph_free(g);
}

/* Constants the library makes (nb_scale's factor) are shared within a graph
 * while their value is unchanged, and never outlive a reset or release. */
static void test_shared_constants(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = leaf(g, 2.0);
    nb_tensor *a = nb_scale(g, x, 0.25), *b = nb_scale(g, a, 0.25), *c = nb_scale(g, b, 3.0);
    assert_non_null(c);
    assert_ptr_equal(nb_op_input(a, 1), nb_op_input(b, 1));
    assert_ptr_not_equal(nb_op_input(a, 1), nb_op_input(c, 1));
    assert_true(nb_tensor_item(c) == 2.0 * 0.25 * 0.25 * 3.0);
    /* f32 and f64 constants of the same value are different tensors */
    nb_tensor *xf = nb_full(g, NB_F32, 0, NULL, 2.0);
    nb_tensor *af = nb_scale(g, xf, 0.25);
    assert_int_equal(nb_tensor_dtype(nb_op_input(af, 1)), NB_F32);
    /* a constant whose value was changed is not handed out again */
    nb_tensor_set(nb_op_input(a, 1), 0, 7.0);
    nb_tensor *d = nb_scale(g, x, 0.25);
    assert_true(nb_tensor_item(d) == 0.5);
    /* gradients through shared constants add up per use */
    nb_tensor *y = nb_add(g, nb_scale(g, x, 0.5), nb_scale(g, nb_sin(g, x), 0.5));
    assert_int_equal(nb_backward(g, y), NB_OK);
    assert_true(fabs(grad_of(x) - (0.5 + 0.5 * cos(2.0))) < 1e-15);
    size_t before = nb_graph_bytes(g);
    for (int i = 0; i < 1000; i++) /* after a reset, fresh constants, reused */
        nb_graph_reset(g), x = leaf(g, 1.0), y = nb_scale(g, nb_scale(g, x, 0.5), 0.5);
    assert_true(nb_tensor_item(y) == 0.25);
    assert_int_equal(nb_graph_bytes(g), before);
    nb_graph_free(g);
}

/* --------------------------------------------------------------- the model */

static void test_model(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = NULL, *b = NULL, *dup = NULL;
    assert_int_equal(nb_model_add(m, "fc1.weight", NB_F64, 2, (int64_t[]){2, 3}, &w), NB_OK);
    assert_int_equal(nb_model_add(m, "fc1.bias", NB_F64, 1, (int64_t[]){3}, &b), NB_OK);
    assert_int_equal(nb_model_add(m, "fc1.bias", NB_F64, 1, (int64_t[]){3}, &dup), NB_ERR_EXISTS);
    assert_null(dup);
    assert_int_equal(nb_model_add(m, NULL, NB_F64, 1, (int64_t[]){3}, NULL), NB_ERR_NULL);
    assert_int_equal(nb_model_add(m, "x", NB_F64, 9, (int64_t[]){3}, NULL), NB_ERR_RANK);
    assert_ptr_equal(nb_model_get(m, "fc1.weight"), w);
    assert_null(nb_model_get(m, "nope"));
    assert_int_equal(nb_model_count(m), 2);
    assert_int_equal(nb_model_numel(m), 9);
    assert_ptr_equal(nb_model_next(m, NULL), w);
    assert_ptr_equal(nb_model_next(m, w), b);
    assert_null(nb_model_next(m, b));
    assert_string_equal(nb_tensor_name(w), "fc1.weight");
    assert_true(nb_tensor_requires_grad(w));

    for (int i = 0; i < 6; i++)
        nb_tensor_set(w, i, i + 1);
    /* gradients of parameters persist across graph resets and accumulate */
    nb_graph *g = nb_graph_new();
    for (int step = 0; step < 2; step++) {
        nb_tensor *loss = nb_sum(g, nb_mul(g, w, w), NULL, 0, false);
        assert_int_equal(nb_backward(g, loss), NB_OK);
        nb_graph_reset(g);
    }
    for (int i = 0; i < 6; i++)
        tc_near(nb_tensor_get(nb_tensor_grad(w), i), 2 * 2.0 * (i + 1), 0);
    nb_model_zero_grad(m);
    for (int i = 0; i < 6; i++)
        tc_near(nb_tensor_get(nb_tensor_grad(w), i), 0, 0);
    nb_graph_free(g);
    nb_model_free(m);
    nb_model_free(NULL);
    nb_graph_free(NULL);
}

/* ----------------------------------------------- allocation through a hook */

/* One small training step: y = tanh(x W + b), loss = mean((y - t)²),
 * backward, SGD update, reset. Returns the status of the step. */
static nb_status train_step(nb_graph *g, nb_tensor *W, nb_tensor *b, const double *xd,
                            const double *td)
{
    nb_tensor *x = nb_tensor_from(g, NB_F64, 2, (int64_t[]){4, 2}, xd);
    nb_tensor *t = nb_tensor_from(g, NB_F64, 2, (int64_t[]){4, 3}, td);
    nb_tensor *y = nb_tanh(g, nb_add(g, nb_matmul(g, x, W, false, false), b));
    nb_tensor *loss = nb_mean(g, nb_square(g, nb_sub(g, y, t)), NULL, 0, false);
    if (!loss)
        return nb_graph_status(g);
    nb_status st = nb_backward(g, loss);
    if (st != NB_OK)
        return st;
    nb_tensor *ps[2] = {W, b};
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < nb_tensor_size(ps[k]); i++)
            nb_tensor_set(ps[k], i,
                          nb_tensor_get(ps[k], i) - 0.1 * nb_tensor_get(nb_tensor_grad(ps[k]), i));
    nb_graph_reset(g);
    return NB_OK;
}

static const double XD[8] = {0, 0, 0, 1, 1, 0, 1, 1};
static const double TD[12] = {0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1};

/* After the first step, a training loop makes no allocation at all. */
static void test_no_malloc_after_first_step(void **state)
{
    (void)state;
    tc_counting c = {0};
    nb_model *m = nb_model_new_alloc(tc_counting_alloc, &c);
    nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
    nb_tensor *W, *b;
    assert_int_equal(nb_model_add(m, "W", NB_F64, 2, (int64_t[]){2, 3}, &W), NB_OK);
    assert_int_equal(nb_model_add(m, "b", NB_F64, 1, (int64_t[]){3}, &b), NB_OK);
    nb_tensor_set(W, 0, 0.5);
    assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    long after_first = c.calls;
    for (int step = 0; step < 20; step++) {
        nb_model_zero_grad(m);
        assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    }
    assert_int_equal(c.calls, after_first);
    nb_graph_free(g);
    nb_model_free(m);
    assert_int_equal(c.live, 0);
}

/* Fail every allocation of a small training step in turn: each failure
 * gives NB_ERR_NOMEM (or a NULL handle at creation), the parameters keep
 * their values, and nothing leaks. */
static void test_alloc_failure_everywhere(void **state)
{
    (void)state;
    /* count the allocations of a whole run first */
    tc_counting probe = {0};
    {
        nb_model *m = nb_model_new_alloc(tc_counting_alloc, &probe);
        nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &probe);
        g->arena.chunk_size = 64; /* a chunk per tensor: many places to fail */
        nb_tensor *W, *b;
        nb_model_add(m, "W", NB_F64, 2, (int64_t[]){2, 3}, &W);
        nb_model_add(m, "b", NB_F64, 1, (int64_t[]){3}, &b);
        assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
        nb_graph_free(g);
        nb_model_free(m);
    }
    assert_true(probe.calls > 3);
    int failures_seen = 0;
    for (long n = 1; n <= probe.calls; n++) {
        tc_counting c = {.fail_at = n};
        nb_model *m = nb_model_new_alloc(tc_counting_alloc, &c);
        nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
        nb_tensor *W = NULL, *b = NULL;
        nb_status st = NB_OK;
        if (!m || !g) {
            st = NB_ERR_NOMEM;
        } else {
            g->arena.chunk_size = 64;
            st = nb_model_add(m, "W", NB_F64, 2, (int64_t[]){2, 3}, &W);
            if (st == NB_OK)
                st = nb_model_add(m, "b", NB_F64, 1, (int64_t[]){3}, &b);
            if (st == NB_OK) {
                st = train_step(g, W, b, XD, TD);
                if (st != NB_OK) {
                    assert_non_null(strstr(nb_graph_error(g)->msg, "out of memory"));
                    /* nothing was updated: parameters are still zero */
                    for (int i = 0; i < 6; i++)
                        tc_near(nb_tensor_get(W, i), 0, 0);
                }
            }
        }
        assert_int_equal(st, NB_ERR_NOMEM);
        failures_seen++;
        nb_graph_free(g);
        nb_model_free(m);
        assert_int_equal(c.live, 0);
    }
    assert_int_equal(failures_seen, probe.calls);
}

/* ----------------------------------------------------------------- threads */

typedef struct job {
    uint64_t seed;
    double out[16];
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, j->seed);
    for (int rep = 0; rep < 50; rep++) {
        nb_tensor *x = nb_tensor_set_requires_grad(
            nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){4, 4}, 0, 1), true);
        nb_tensor *y = nb_sum(g, nb_tanh(g, nb_matmul(g, x, x, false, true)), NULL, 0, false);
        if (nb_backward(g, y) != NB_OK)
            break;
        for (int i = 0; i < 16; i++)
            j->out[i] = nb_tensor_get(nb_tensor_grad(x), i);
        nb_graph_reset(g);
    }
    nb_graph_free(g);
    return NULL;
}

/* A parameter used by a graph that is then freed must not look already
 * visited to a later graph (which malloc may place at the same address):
 * every fresh graph's backward pass reaches it, by nb_backward, nb_grad
 * and nb_jvp alike. */
static void test_params_across_graphs(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = NULL;
    assert_int_equal(nb_model_add(m, "w", NB_F64, 1, (int64_t[]){2}, &w), NB_OK);
    nb_tensor_set(w, 0, 3);
    nb_tensor_set(w, 1, -1);
    /* each graph does one sweep, so every sweep has the same number */
    for (int round = 0; round < 9; round++) {
        nb_model_zero_grad(m);
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_tensor_from(g, NB_F64, 1, (int64_t[]){2}, (double[]){2, 5});
        nb_tensor *y = nb_sum(g, nb_mul(g, w, x), NULL, 0, false);
        if (round % 3 == 0) {
            assert_int_equal(nb_backward(g, y), NB_OK);
            tc_near(nb_tensor_get(nb_tensor_grad(w), 0), 2, 0);
            tc_near(nb_tensor_get(nb_tensor_grad(w), 1), 5, 0);
        } else if (round % 3 == 1) {
            nb_tensor *dw = NULL;
            assert_int_equal(nb_grad(g, y, NULL, &w, 1, &dw, false), NB_OK);
            tc_near(nb_tensor_get(dw, 1), 5, 0);
        } else {
            nb_tensor *t = nb_ones(g, NB_F64, 1, (int64_t[]){2});
            nb_tensor *jv = NULL;
            assert_int_equal(nb_jvp(g, y, &w, &t, 1, &jv), NB_OK);
            tc_near(nb_tensor_item(jv), 7, 0);
        }
        nb_graph_free(g);
    }
    nb_model_free(m);
}

static void test_two_threads(void **state)
{
    (void)state;
    job serial[2] = {{.seed = 11}, {.seed = 12}}, par[2] = {{.seed = 11}, {.seed = 12}};
    run_job(&serial[0]);
    run_job(&serial[1]);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, run_job, &par[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        assert_memory_equal(serial[i].out, par[i].out, sizeof serial[i].out);
    assert_true(serial[0].out[0] != serial[1].out[0]);
}

/* ------------------------------------------------------------- rng, misc */

static void test_rng(void **state)
{
    (void)state;
    nb_rng a, b;
    nb_rng_seed(&a, 42);
    nb_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(nb_rng_u64(&a) == nb_rng_u64(&b));
    double sum = 0, sq = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double z = nb_rng_normal(&a);
        sum += z;
        sq += z * z;
    }
    tc_near(sum / n, 0, 0.02);
    tc_near(sq / n, 1, 0.02);
    for (int i = 0; i < 1000; i++) {
        assert_true(nb_rng_below(&a, 7) < 7);
        double u = nb_rng_uniform(&a);
        assert_true(u >= 0 && u < 1);
    }
}

static void test_not_recording(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_graph_set_recording(g, false);
    nb_tensor *x = leaf(g, 2);
    nb_tensor *y = nb_mul(g, x, x);
    tc_near(nb_tensor_item(y), 4, 0);
    assert_false(nb_tensor_requires_grad(y));
    assert_int_equal(nb_backward(g, y), NB_ERR_GRAPH);
    nb_graph_free(g);
}

static void test_print(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    double d[] = {1, 2.5, -3, 4};
    nb_tensor *t = nb_tensor_set_name(nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 2}, d), "w");
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof buf, "w");
    nb_tensor_print(t, f, 0);
    fclose(f);
    assert_string_equal(buf, "w f64[2,2] = [[1, 2.5],\n [-3, 4]]\n");
    assert_string_equal(nb_tensor_op_name(t), "leaf");
    assert_string_equal(nb_tensor_op_name(nb_exp(g, t)), "exp");
    nb_graph_free(g);
}

/* DOT pictures: every tensor a box with op, value and gradient; edges by
 * input position; Graphviz accepts the text when it is installed. */
static void test_dot(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_name(nb_scalar(g, NB_F64, -2), "x");
    nb_tensor *y = nb_tensor_set_name(nb_scalar(g, NB_F64, 5), "y");
    nb_tensor *z = nb_tensor_set_name(nb_scalar(g, NB_F64, -4), "z \"q\"");
    nb_tensor_set_requires_grad(x, true);
    nb_tensor_set_requires_grad(y, true);
    nb_tensor_set_requires_grad(z, true);
    nb_tensor *q = nb_tensor_set_name(nb_add(g, x, y), "q");
    nb_tensor *f = nb_tensor_set_name(nb_mul(g, q, z), "f");
    assert_int_equal(nb_backward(g, f), NB_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_int_equal(nb_graph_dot(g, f, m), NB_OK);
    fclose(m);
    assert_non_null(strstr(text, "digraph nabla"));
    assert_non_null(strstr(text, "q = add"));
    assert_non_null(strstr(text, "f = mul"));
    assert_non_null(strstr(text, "z \\\"q\\\" = leaf")); /* escaped quotes */
    assert_non_null(strstr(text, "value -12"));
    assert_non_null(strstr(text, "value 3\\ngrad -4")); /* q: value 3, gradient z = -4 */
    assert_non_null(strstr(text, "value -4\\ngrad 3")); /* z: gradient q = 3 */
    int edges = 0;
    for (const char *p = text; (p = strstr(p, " -> ")) != NULL; p++)
        edges++;
    assert_int_equal(edges, 4);
    /* sweeps still work after drawing */
    nb_tensor *dx;
    assert_int_equal(nb_grad(g, f, NULL, &x, 1, &dx, false), NB_OK);
    assert_true(nb_tensor_item(dx) == -4.0);
    if (system("command -v dot >/dev/null 2>&1") == 0) {
        FILE *p = popen("dot -Tsvg -o /dev/null", "w");
        assert_non_null(p);
        fputs(text, p);
        assert_int_equal(pclose(p), 0);
    }
    free(text);
    assert_int_equal(nb_graph_dot(g, f, NULL), NB_ERR_NULL);
    nb_graph_free(g);
}

/* nb_error: set fills every field, clear resets them; NULL is accepted. */
static void test_error_type(void **state)
{
    (void)state;
    nb_error e;
    memset(&e, 'x', sizeof e);
    assert_int_equal(nb_error_set(&e, NB_ERR_SHAPE, "nb_matmul", "shapes %s and %s", "[2,3]", "[4]"),
                     NB_ERR_SHAPE);
    assert_int_equal(e.status, NB_ERR_SHAPE);
    assert_string_equal(e.where, "nb_matmul");
    assert_string_equal(e.msg, "shapes [2,3] and [4]");
    assert_int_equal(e.offset, -1);
    assert_int_equal(e.line, 0);
    assert_string_equal(e.name, "");
    assert_int_equal(nb_error_set(NULL, NB_ERR_IO, "x", "y"), NB_ERR_IO);
    assert_int_equal(nb_error_set(&e, NB_ERR_ARG, NULL, "%s", ""), NB_ERR_ARG);
    assert_string_equal(e.where, "");
    nb_error_clear(&e);
    assert_int_equal(e.status, NB_OK);
    assert_string_equal(e.msg, "");
    nb_error_clear(NULL);
}

/* Metadata text is built with nb_meta_put and read back by the typed getters. */
static void test_meta_put_get(void **state)
{
    (void)state;
    char buf[64] = "";
    assert_int_equal(nb_meta_put(buf, sizeof buf, "a", "%d", 1), NB_OK);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "b.c", "%.17g", 0.1), NB_OK);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "n", "%lld", -9223372036854775807LL - 1), NB_OK);
    assert_string_equal(buf, "a=1\nb.c=0.10000000000000001\nn=-9223372036854775808");
    nb_error err;
    memset(&err, 'x', sizeof err);
    assert_int_equal(nb_meta_check(buf, &err), NB_OK);
    assert_int_equal(err.status, NB_OK);
    assert_true(err.offset == -1);
    assert_string_equal(err.where, "");
    /* a refused text: where, the byte offset of the problem, a sentence */
    assert_int_equal(nb_meta_check("a=1\nb=2\na=3", &err), NB_ERR_PARSE);
    assert_string_equal(err.where, "nb_meta_check");
    assert_true(err.offset == 8);
    assert_non_null(strstr(err.msg, "'a' appears twice"));
    assert_int_equal(nb_meta_check("a=1\nb\x01", &err), NB_ERR_PARSE);
    assert_true(err.offset == 5);
    assert_int_equal(nb_meta_check(NULL, &err), NB_ERR_NULL);
    assert_string_equal(err.where, "nb_meta_check");
    assert_true(err.offset == -1);
    int64_t i;
    double d;
    assert_int_equal(nb_meta_get_i64(buf, "a", &i), NB_OK);
    assert_int_equal(i, 1);
    assert_int_equal(nb_meta_get_i64(buf, "n", &i), NB_OK);
    assert_true(i == INT64_MIN);
    assert_int_equal(nb_meta_get_f64(buf, "b.c", &d), NB_OK);
    assert_true(d == 0.1);
    assert_int_equal(nb_meta_get_i64(buf, "b.c", &i), NB_ERR_PARSE);
    assert_int_equal(nb_meta_get_i64(buf, "zz", &i), NB_ERR_NOTFOUND);
    assert_int_equal(nb_meta_get_f64(buf, "zz", &d), NB_ERR_NOTFOUND);
    assert_int_equal(nb_meta_get_i64(buf, "a", NULL), NB_ERR_NULL);
    assert_int_equal(nb_meta_get_f64(buf, "a", NULL), NB_ERR_NULL);
    /* refused: key twice, bad keys, a newline in the value, too long */
    char before[64];
    memcpy(before, buf, sizeof buf);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "a", "2"), NB_ERR_EXISTS);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "", "2"), NB_ERR_ARG);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "k=v", "2"), NB_ERR_ARG);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "k\n", "2"), NB_ERR_ARG);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "k", "x\ny"), NB_ERR_ARG);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "long", "%s", "0123456789012345678901234567"), NB_ERR_ARG);
    assert_int_equal(nb_meta_put(buf, sizeof buf, "longer-key-than-fits-here-at-all", "1"), NB_ERR_ARG);
    assert_string_equal(buf, before);
    assert_int_equal(nb_meta_put(NULL, 8, "a", "1"), NB_ERR_NULL);
    char full[4] = "a=1";
    assert_int_equal(nb_meta_put(full, 3, "b", "1"), NB_ERR_ARG);
    /* numbers that do not parse or overflow */
    assert_int_equal(nb_meta_get_i64("x=99999999999999999999", "x", &i), NB_ERR_PARSE);
    assert_int_equal(nb_meta_get_i64("x= 1", "x", &i), NB_ERR_PARSE);
    assert_int_equal(nb_meta_get_i64("x=", "x", &i), NB_ERR_PARSE);
    assert_int_equal(nb_meta_get_f64("x=1e999", "x", &d), NB_ERR_PARSE);
    assert_int_equal(nb_meta_get_f64("x=1.5z", "x", &d), NB_ERR_PARSE);
    assert_int_equal(nb_meta_get_f64("x=1e-310", "x", &d), NB_OK);
    char longv[80];
    memset(longv, '1', sizeof longv);
    memcpy(longv, "x=", 2);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(nb_meta_get_f64(longv, "x", &d), NB_ERR_PARSE);
}

/* The entry of op @p name in a profile of n entries (fails the test when
 * there is none). */
static nb_op_profile profile_entry(const nb_op_profile *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].op, name) == 0)
            return p[i];
    fail_msg("no profile entry for %s", name);
    return (nb_op_profile){0};
}

/* Profiling: off by default, per-op counts of evaluations and of derivative
 * rules (the ops a rule calls are the rule's time, not evaluations), kept
 * by reset, emptied by clear, and its errors. */
static void test_profile(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_graph *g = nb_graph_new();
    nb_tensor *W, *b;
    assert_int_equal(nb_model_add(m, "W", NB_F64, 2, (int64_t[]){2, 3}, &W), NB_OK);
    assert_int_equal(nb_model_add(m, "b", NB_F64, 1, (int64_t[]){3}, &b), NB_OK);
    nb_tensor_set(W, 0, 0.5);
    /* off by default: nothing is kept */
    assert_false(nb_graph_profiling(g));
    assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    assert_int_equal(nb_graph_profile(g, NULL, 0), 0);
    /* on: the six ops of the step, each evaluated once and its rule run once */
    assert_int_equal(nb_graph_set_profile(g, true), NB_OK);
    assert_true(nb_graph_profiling(g));
    nb_model_zero_grad(m);
    assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    nb_op_profile p[16];
    const char *ops[] = {"matmul", "add", "tanh", "sub", "mul", "mean"}; /* square: mul */
    assert_int_equal(nb_graph_profile(g, p, 16), 6);
    double total = 0;
    for (int i = 0; i < 6; i++) {
        nb_op_profile e = profile_entry(p, 6, ops[i]);
        assert_int_equal(e.fwd_count, 1);
        assert_int_equal(e.bwd_count, 1);
        assert_true(e.fwd_s >= 0 && e.bwd_s >= 0);
        total += e.fwd_s + e.bwd_s;
    }
    assert_true(total > 0);
    assert_string_equal(p[0].op, "matmul"); /* in order of first use */
    /* kept by nb_graph_reset (train_step resets): a second step adds to it */
    assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    assert_int_equal(nb_graph_profile(g, p, 16), 6);
    assert_int_equal(profile_entry(p, 6, "matmul").fwd_count, 2);
    assert_int_equal(profile_entry(p, 6, "matmul").bwd_count, 2);
    /* fewer places than ops: only cap entries are written */
    nb_op_profile two[3];
    two[2].op = "untouched";
    assert_int_equal(nb_graph_profile(g, two, 2), 6);
    assert_string_equal(two[2].op, "untouched");
    /* nb_grad is timed too, and its gradients are the same as without */
    nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 0.3), true);
    nb_tensor *gx = NULL;
    assert_int_equal(nb_grad(g, nb_sin(g, x), NULL, &x, 1, &gx, false), NB_OK);
    tc_near(nb_tensor_item(gx), cos(0.3), 1e-15);
    assert_int_equal(nb_graph_profile(g, p, 16), 7);
    assert_int_equal(profile_entry(p, 7, "sin").fwd_count, 1);
    assert_int_equal(profile_entry(p, 7, "sin").bwd_count, 1);
    nb_graph_reset(g);
    /* cleared: empty, still on */
    nb_graph_profile_clear(g);
    assert_int_equal(nb_graph_profile(g, p, 16), 0);
    assert_true(nb_graph_profiling(g));
    assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    assert_int_equal(nb_graph_profile(g, p, 16), 6);
    /* off again: the profile is kept but no longer grows */
    assert_int_equal(nb_graph_set_profile(g, false), NB_OK);
    assert_false(nb_graph_profiling(g));
    assert_int_equal(train_step(g, W, b, XD, TD), NB_OK);
    assert_int_equal(nb_graph_profile(g, p, 16), 6);
    assert_int_equal(profile_entry(p, 6, "matmul").fwd_count, 1);
    /* NULL */
    assert_int_equal(nb_graph_set_profile(NULL, true), NB_ERR_NULL);
    assert_false(nb_graph_profiling(NULL));
    assert_int_equal(nb_graph_profile(NULL, p, 16), 0);
    nb_graph_profile_clear(NULL);
    nb_graph_free(g);
    nb_model_free(m);
}

/* Out of memory: turning profiling on fails cleanly and leaves it off; a
 * table that cannot grow records NB_ERR_NOMEM in the graph; nothing leaks. */
static void test_profile_out_of_memory(void **state)
{
    (void)state;
    tc_counting c = {0};
    nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
    assert_non_null(g);
    c.fail_at = c.calls + 1;
    assert_int_equal(nb_graph_set_profile(g, true), NB_ERR_NOMEM);
    assert_false(nb_graph_profiling(g));
    assert_int_equal(nb_graph_status(g), NB_OK);
    c.fail_at = 0;
    assert_int_equal(nb_graph_set_profile(g, true), NB_OK);
    g->cap_prof = 1; /* white box: a table with room for one op */
    nb_tensor *x = nb_scalar(g, NB_F64, 2.0);
    assert_non_null(nb_exp(g, x));
    c.fail_at = c.calls + 1;
    assert_non_null(nb_log(g, x)); /* the op's value is still made */
    assert_int_equal(nb_graph_status(g), NB_ERR_NOMEM);
    assert_string_equal(nb_graph_error(g)->where, "profile");
    nb_op_profile p[4];
    assert_int_equal(nb_graph_profile(g, p, 4), 1);
    assert_string_equal(p[0].op, "exp");
    nb_graph_free(g);
    assert_int_equal(c.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_example_sum_times),
        cmocka_unit_test(test_seed_example_logistic),
        cmocka_unit_test(test_seed_example_xor),
        cmocka_unit_test(test_accumulation),
        cmocka_unit_test(test_second_derivative_sin),
        cmocka_unit_test(test_hessian_vector_product),
        cmocka_unit_test(test_deep_chain),
        cmocka_unit_test(test_jacobian_modes),
        cmocka_unit_test(test_jacobian_mode_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nonfinite_backward),
        cmocka_unit_test(test_scalar_gradients_as_numbers),
        cmocka_unit_test(test_shared_constants),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_no_malloc_after_first_step),
        cmocka_unit_test(test_alloc_failure_everywhere),
        cmocka_unit_test(test_params_across_graphs),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_not_recording),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_dot),
        cmocka_unit_test(test_error_type),
        cmocka_unit_test(test_graph_error_fields),
        cmocka_unit_test(test_meta_put_get),
        cmocka_unit_test(test_profile),
        cmocka_unit_test(test_profile_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
