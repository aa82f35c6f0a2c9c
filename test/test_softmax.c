/* log_softmax and its VJP as primitives: the forward numbers are those of
 * the composition nb_log_softmax used to record (max, sub, exp, sum, log,
 * sub), bit for bit in f32 and f64 on any axis and thread count; the VJP's
 * are those of gy − exp(y)·sum(gy); derivatives of both ops are checked
 * against central differences, forward mode against reverse mode, and the
 * second derivatives of a softmax cross-entropy against the composition's;
 * bad input gives errors that name the op. */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tc.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* What nb_log_softmax recorded before it was a primitive. */
static nb_tensor *old_log_softmax(nb_graph *g, nb_tensor *x, int axis)
{
    nb_tensor *s = nb_sub(g, x, nb_stop_gradient(g, nb_max(g, x, &axis, 1, true)));
    return nb_sub(g, s, nb_log(g, nb_sum(g, nb_exp(g, s), &axis, 1, true)));
}

/* The op's VJP formula written with separate ops. */
static nb_tensor *old_backward(nb_graph *g, nb_tensor *gy, nb_tensor *y, int axis)
{
    return nb_sub(g, gy, nb_mul(g, nb_exp(g, y), nb_sum(g, gy, &axis, 1, true)));
}

static nb_tensor *along(nb_graph *g, const char *op, nb_tensor *const *in, int n, int axis)
{
    nb_attrs a = {0};
    a.ints[0] = axis;
    return nb_apply(g, nb_op_find(op), in, n, &a);
}

static nb_tensor *backward_op(nb_graph *g, nb_tensor *gy, nb_tensor *y, int axis)
{
    nb_tensor *in[2] = {gy, y};
    return along(g, "log_softmax_backward", in, 2, axis);
}

/* Uniform in [lo, hi], then the cases a reduction's order shows: ties of
 * the maximum, −0 and +0 side by side, −inf (a masked logit), a row whose
 * only finite entry is −0 (the sum is exactly 1), and one NaN. */
static void fill(nb_tensor *t, uint64_t seed, double lo, double hi, bool special)
{
    nb_rng r;
    nb_rng_seed(&r, seed);
    int64_t n = nb_tensor_size(t);
    for (int64_t i = 0; i < n; i++)
        nb_tensor_set(t, i, lo + (hi - lo) * nb_rng_uniform(&r));
    if (!special || n < 16)
        return;
    for (int64_t i = 0; i + 4 < n; i += 37) {
        nb_tensor_set(t, i, hi);
        nb_tensor_set(t, i + 1, -0.0);
        nb_tensor_set(t, i + 2, 0.0);
        nb_tensor_set(t, i + 3, hi);
        nb_tensor_set(t, i + 4, -INFINITY);
    }
    nb_tensor_set(t, n / 2, NAN);
}

/* Equal bit for bit, or both NaN. */
static void expect_same(const nb_tensor *a, const nb_tensor *b, const char *what)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(nb_tensor_size(a), nb_tensor_size(b));
    for (int64_t i = 0; i < nb_tensor_size(a); i++) {
        double x = nb_tensor_get(a, i), y = nb_tensor_get(b, i);
        if (isnan(x) && isnan(y))
            continue;
        if (memcmp(&x, &y, sizeof x) != 0)
            fail_msg("%s: element %lld is %.17g, the composition gives %.17g", what, (long long)i,
                     x, y);
    }
}

static const struct {
    tc_shape shape;
    int axis;
} bit_cases[] = {
    {{2, {32, 10}}, -1},     /* B1's logits */
    {{2, {5, 300}}, 1},      /* rows longer than a pairwise leaf (128) */
    {{2, {3, 1000}}, -1},    /* several levels of the pairwise tree */
    {{2, {300, 7}}, 0},      /* a kept last axis: more than one block of 128 rows */
    {{3, {2, 300, 3}}, 1},   /* a middle axis */
    {{3, {4, 5, 6}}, 0},     /* each axis of a rank-3 tensor: the first */
    {{3, {4, 5, 6}}, 1},     /* the middle one */
    {{3, {4, 5, 6}}, -1},    /* the last, negative */
    {{1, {7}}, 0},           /* one row */
    {{2, {6, 1}}, 1},        /* rows of length 1 */
    {{2, {1, 6}}, 0},        /* one slice along the first axis */
    {{3, {2, 1, 5}}, -1},    /* a size-1 axis before the last */
    {{4, {2, 3, 4, 5}}, 2},  /* rank 4 */
    {{4, {2, 3, 4, 5}}, -4}, /* rank 4, the first axis, negative */
    {{3, {3, 20, 1}}, 1},    /* size-1 axes after the axis: still rows */
    {{2, {64, 20000}}, 1},   /* large: split over threads */
    {{2, {20000, 40}}, 0},   /* large along a kept last axis */
    {{2, {2, 70000}}, -1},   /* few long rows (the sum's tree over threads) */
};

/* log_softmax and its backward against the compositions, in f32 and f64,
 * the compositions on 1 thread and the primitives on 1 and 4. */
static void test_bit_identical(void **state)
{
    (void)state;
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (size_t k = 0; k < COUNT(bit_cases); k++) {
            const tc_shape *s = &bit_cases[k].shape;
            int axis = bit_cases[k].axis;
            nb_graph *g1 = nb_graph_new(), *g4 = nb_graph_new();
            nb_graph_set_threads(g4, 4);
            nb_tensor *x1 = nb_zeros(g1, (nb_dtype)dt, s->rank, s->dims);
            nb_tensor *gy1 = nb_zeros(g1, (nb_dtype)dt, s->rank, s->dims);
            fill(x1, 11 + k, -30, 30, true);
            fill(gy1, 101 + k, -1, 1, false);
            nb_tensor *x4 = nb_tensor_from(g4, (nb_dtype)dt, s->rank, s->dims, nb_tensor_data(x1));
            nb_tensor *gy4 =
                nb_tensor_from(g4, (nb_dtype)dt, s->rank, s->dims, nb_tensor_data(gy1));
            char what[96];
            snprintf(what, sizeof what, "%s case %zu", dt == NB_F32 ? "f32" : "f64", k);

            nb_tensor *want = old_log_softmax(g1, x1, axis);
            nb_tensor *y1 = nb_log_softmax(g1, x1, axis), *y4 = nb_log_softmax(g4, x4, axis);
            assert_string_equal(nb_tensor_op_name(y1), "log_softmax");
            expect_same(y1, want, what);
            expect_same(y4, want, what);

            nb_tensor *want_dx = old_backward(g1, gy1, want, axis);
            expect_same(backward_op(g1, gy1, y1, axis), want_dx, what);
            expect_same(backward_op(g4, gy4, y4, axis), want_dx, what);
            assert_int_equal(nb_graph_status(g1), NB_OK);
            assert_int_equal(nb_graph_status(g4), NB_OK);
            nb_graph_free(g1);
            nb_graph_free(g4);
        }
}

/* Element k of a row of n f32 or f64 values: two NaNs of different
 * payloads at a and b, the rest drawn from {−0, +0, −1, −2}. */
static void nan_row(void *row, nb_dtype dt, int64_t n, int64_t a, int64_t b, nb_rng *r)
{
    static const double pool[] = {-0.0, 0.0, -1.0, -2.0};
    for (int64_t k = 0; k < n; k++) {
        double v = pool[nb_rng_below(r, 4)];
        if (dt == NB_F32) {
            float f = (float)v;
            uint32_t bits = k == a ? 0x7fc00001u : 0x7fc00002u;
            if (k == a || k == b)
                memcpy(&f, &bits, sizeof f);
            ((float *)row)[k] = f;
        } else {
            uint64_t bits = k == a ? 0x7ff8000000000001u : 0x7ff8000000000002u;
            if (k == a || k == b)
                memcpy(&v, &bits, sizeof v);
            ((double *)row)[k] = v;
        }
    }
}

/* A row's maximum, when it is a NaN (which of two payloads) or a zero (+0
 * or −0), is the one nb_max's order gives: rows of 1 to 20 elements with
 * two NaNs at every pair of places, or none (a < 0), the rest zeros of
 * both signs and negatives, give log_softmax the composition's bits,
 * NaN payloads included. */
static void test_nan_and_zero_max(void **state)
{
    (void)state;
    nb_rng r;
    nb_rng_seed(&r, 71);
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (int64_t n = 1; n <= 20; n++)
            for (int64_t a = -1; a < n; a++)
                for (int64_t b = a < 0 ? -1 : a + 1; b < n; b++) {
                    double data[20];
                    nan_row(data, (nb_dtype)dt, n, a, b < 0 ? a : b, &r);
                    nb_graph *g = nb_graph_new();
                    int64_t shape[] = {1, n};
                    nb_tensor *x = nb_tensor_from(g, (nb_dtype)dt, 2, shape, data);
                    nb_tensor *y = nb_log_softmax(g, x, 1), *want = old_log_softmax(g, x, 1);
                    assert_non_null(y);
                    assert_non_null(want);
                    if (memcmp(nb_tensor_data(y), nb_tensor_data(want),
                               (size_t)n * nb_dtype_size((nb_dtype)dt)) != 0)
                        fail_msg("%s n=%lld NaNs at %lld, %lld: not the composition's bits",
                                 dt == NB_F32 ? "f32" : "f64", (long long)n, (long long)a,
                                 (long long)b);
                    nb_graph_free(g);
                    if (b < 0)
                        break;
                }
}

/* ------------------------------------------------------------ derivatives */

typedef struct axis_ctx {
    int axis;
} axis_ctx;

static nb_tensor *f_log_softmax(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_log_softmax(g, in[0], ((const axis_ctx *)ctx)->axis);
}

static nb_tensor *f_backward(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return backward_op(g, in[0], in[1], ((const axis_ctx *)ctx)->axis);
}

/* f64 central differences, <J u, v> = <u, Jᵀ v> and the f32 kernels
 * (tc_check), for both ops on ranks 1 to 4, first, middle, last and
 * negative axes, and rows of length 1. */
static void test_gradcheck(void **state)
{
    (void)state;
    static const struct {
        tc_shape shape;
        int axis;
    } cases[] = {
        {{1, {5}}, 0},       {{1, {5}}, -1},       {{2, {3, 4}}, 1},       {{2, {3, 4}}, 0},
        {{2, {3, 4}}, -2},   {{2, {4, 1}}, 1},     {{2, {1, 4}}, 0},       {{3, {2, 3, 4}}, 1},
        {{3, {2, 3, 4}}, 0}, {{3, {2, 3, 4}}, -1}, {{4, {2, 2, 3, 2}}, 2}, {{2, {2, 140}}, 1},
    };
    for (size_t k = 0; k < COUNT(cases); k++) {
        axis_ctx c = {cases[k].axis};
        char label[64];
        snprintf(label, sizeof label, "log_softmax case %zu", k);
        tc_check(label, f_log_softmax, &c, 1, &cases[k].shape,
                 &(tc_opts){.lo = -4, .hi = 4, .seed = 40 + k});
        tc_shape two[2] = {cases[k].shape, cases[k].shape};
        snprintf(label, sizeof label, "log_softmax_backward case %zu", k);
        tc_check(label, f_backward, &c, 2, two, &(tc_opts){.lo = -2, .hi = 2, .seed = 80 + k});
    }
}

/* Forward mode through the backward with a tangent on one input only (the
 * other's is a known zero): <J_i u, v> = <u, J_iᵀ v> for each input. */
static void test_backward_one_tangent(void **state)
{
    (void)state;
    int64_t shape[] = {3, 5};
    for (int axis = -2; axis < 2; axis++)
        for (int i = 0; i < 2; i++) {
            nb_graph *g = nb_graph_new();
            nb_rng r;
            nb_rng_seed(&r, 7 + (uint64_t)(axis + 2) * 2 + (uint64_t)i);
            nb_tensor *in[2];
            for (int k = 0; k < 2; k++)
                in[k] = nb_tensor_set_requires_grad(nb_rand_uniform(g, &r, NB_F64, 2, shape, -2, 2),
                                                    true);
            nb_tensor *u = nb_rand_uniform(g, &r, NB_F64, 2, shape, -1, 1);
            nb_tensor *v = nb_rand_uniform(g, &r, NB_F64, 2, shape, -1, 1);
            nb_tensor *y = backward_op(g, in[0], in[1], axis);
            tc_adjoint(g, y, in[i], u, v);
            nb_graph_free(g);
        }
}

/* ----------------------------------------------------------- second order */

#define N_ROWS 8
#define N_CLASSES 10

/* −mean_i log_softmax(z_i)[label_i], the loss as it was recorded before. */
static nb_tensor *old_ce(nb_graph *g, nb_tensor *z, const int64_t *labels)
{
    int axis = 1;
    nb_tensor *onehot = nb_one_hot(g, nb_tensor_dtype(z), labels, N_ROWS, N_CLASSES);
    nb_tensor *logp = old_log_softmax(g, z, axis);
    nb_tensor *per_row = nb_neg(g, nb_sum(g, nb_mul(g, onehot, logp), &axis, 1, false));
    return nb_mean(g, per_row, NULL, 0, false);
}

static double max_abs_diff(const nb_tensor *a, const nb_tensor *b)
{
    double d = 0;
    for (int64_t i = 0; i < nb_tensor_size(a); i++)
        d = fmax(d, fabs(nb_tensor_get(a, i) - nb_tensor_get(b, i)));
    return d;
}

/* The gradient dz (with its graph) and the Hessian-vector product H·v of
 * a loss of z, reverse over reverse and forward over reverse. */
typedef struct hvp {
    nb_tensor *dz, *hv, *hv_fwd;
} hvp;

static hvp hvp_of(nb_graph *g, nb_tensor *loss, nb_tensor *z, nb_tensor *v)
{
    hvp h = {0};
    assert_non_null(loss);
    assert_int_equal(nb_grad(g, loss, NULL, &z, 1, &h.dz, true), NB_OK);
    nb_tensor *dot = nb_sum(g, nb_mul(g, h.dz, v), NULL, 0, false);
    assert_int_equal(nb_grad(g, dot, NULL, &z, 1, &h.hv, true), NB_OK);
    assert_int_equal(nb_jvp(g, h.dz, &z, &v, 1, &h.hv_fwd), NB_OK);
    return h;
}

/* Hessian-vector products of nb_softmax_cross_entropy (through the
 * backward op's rules) equal the composition's and the closed form
 * (diag(p) − p pᵀ)/N per row, to 1e-12 in f64; so do those of a weighted
 * log_softmax along axis 0 of a rank-3 tensor. */
static void test_second_order(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng r;
    nb_rng_seed(&r, 2024);
    int64_t shape[] = {N_ROWS, N_CLASSES};
    int64_t labels[N_ROWS];
    for (int i = 0; i < N_ROWS; i++)
        labels[i] = (i * 7 + 3) % N_CLASSES;
    nb_tensor *z =
        nb_tensor_set_requires_grad(nb_rand_uniform(g, &r, NB_F64, 2, shape, -4, 4), true);
    nb_tensor *v = nb_rand_uniform(g, &r, NB_F64, 2, shape, -1, 1);

    hvp now = hvp_of(g, nb_softmax_cross_entropy(g, z, labels, N_ROWS, NB_REDUCE_MEAN), z, v);
    hvp old = hvp_of(g, old_ce(g, z, labels), z, v);
    assert_string_equal(nb_tensor_op_name(now.dz), "softmax_xent_backward");
    assert_true(max_abs_diff(now.dz, old.dz) <= 1e-15);
    assert_true(max_abs_diff(now.hv, old.hv) <= 1e-12);
    assert_true(max_abs_diff(now.hv_fwd, old.hv) <= 1e-12);
    for (int i = 0; i < N_ROWS; i++) {
        double p[N_CLASSES], sum = 0, pv = 0;
        for (int c = 0; c < N_CLASSES; c++)
            sum += p[c] = exp(nb_tensor_get(z, i * N_CLASSES + c));
        for (int c = 0; c < N_CLASSES; c++)
            pv += (p[c] /= sum) * nb_tensor_get(v, i * N_CLASSES + c);
        for (int c = 0; c < N_CLASSES; c++) {
            double want = (p[c] * nb_tensor_get(v, i * N_CLASSES + c) - p[c] * pv) / N_ROWS;
            tc_near(nb_tensor_get(now.hv, i * N_CLASSES + c), want, 1e-12);
        }
    }
    /* a third derivative exists and agrees too */
    nb_tensor *d3_now = NULL, *d3_old = NULL;
    nb_tensor *s_now = nb_sum(g, nb_mul(g, now.hv, v), NULL, 0, false);
    nb_tensor *s_old = nb_sum(g, nb_mul(g, old.hv, v), NULL, 0, false);
    assert_int_equal(nb_grad(g, s_now, NULL, &z, 1, &d3_now, false), NB_OK);
    assert_int_equal(nb_grad(g, s_old, NULL, &z, 1, &d3_old, false), NB_OK);
    assert_true(max_abs_diff(d3_now, d3_old) <= 1e-12);

    /* Σ w·log_softmax(x, 0), x [4,3,2] */
    int64_t s3[] = {4, 3, 2};
    nb_tensor *x = nb_tensor_set_requires_grad(nb_rand_uniform(g, &r, NB_F64, 3, s3, -3, 3), true);
    nb_tensor *w = nb_rand_uniform(g, &r, NB_F64, 3, s3, -1, 1);
    nb_tensor *v3 = nb_rand_uniform(g, &r, NB_F64, 3, s3, -1, 1);
    hvp a = hvp_of(g, nb_sum(g, nb_mul(g, w, nb_log_softmax(g, x, 0)), NULL, 0, false), x, v3);
    hvp b = hvp_of(g, nb_sum(g, nb_mul(g, w, old_log_softmax(g, x, 0)), NULL, 0, false), x, v3);
    assert_true(max_abs_diff(a.dz, b.dz) <= 1e-14);
    assert_true(max_abs_diff(a.hv, b.hv) <= 1e-12);
    assert_true(max_abs_diff(a.hv_fwd, b.hv) <= 1e-12);
    assert_true(max_abs_diff(a.hv, nb_zeros(g, NB_F64, 3, s3)) > 1e-3);
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* One node forward and one backward: a softmax cross-entropy's graph no
 * longer holds the max/sub/exp/sum/log chain. */
static void test_one_node(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    int64_t shape[] = {N_ROWS, N_CLASSES}, labels[N_ROWS] = {0};
    nb_tensor *z = nb_tensor_set_requires_grad(nb_zeros(g, NB_F64, 2, shape), true);
    nb_tensor *y = nb_log_softmax(g, z, -1);
    assert_int_equal(nb_graph_nodes(g, y, NULL, 0), 2); /* z and y */
    nb_tensor *loss = nb_softmax_cross_entropy(g, z, labels, N_ROWS, NB_REDUCE_MEAN);
    int64_t n_new = nb_graph_nodes(g, loss, NULL, 0);
    int64_t n_old = nb_graph_nodes(g, old_ce(g, z, labels), NULL, 0);
    assert_true(n_new + 5 <= n_old);
    nb_tensor *dz = NULL;
    assert_int_equal(nb_grad(g, loss, NULL, &z, 1, &dz, true), NB_OK);
    assert_string_equal(nb_tensor_op_name(dz), "softmax_xent_backward");
    for (int64_t i = 0; i < N_ROWS * N_CLASSES; i++) /* (softmax − onehot)/N */
        tc_near(nb_tensor_get(dz, i), (0.1 - (i % N_CLASSES == 0)) / N_ROWS, 1e-16);
    nb_graph_free(g);
}

/* ----------------------------------------------------------------- errors */

static void expect_error(nb_graph *g, const nb_tensor *t, nb_status st, const char *msg)
{
    assert_null(t);
    assert_int_equal(nb_graph_status(g), st);
    if (!strstr(nb_graph_error(g)->msg, msg))
        fail_msg("error '%s' does not contain '%s'", nb_graph_error(g)->msg, msg);
}

static void test_errors(void **state)
{
    (void)state;
    int64_t s34[] = {3, 4}, s30[] = {3, 0}, s04[] = {0, 4}, s43[] = {4, 3};
    struct {
        int which;
        nb_status st;
        const char *msg;
    } cases[] = {
        {0, NB_ERR_ARG, "log_softmax: axis 2 out of range for [3,4]"},
        {1, NB_ERR_ARG, "log_softmax: axis -3 out of range for [3,4]"},
        {2, NB_ERR_ARG, "log_softmax: axis 0 out of range for []"},
        {3, NB_ERR_SHAPE, "log_softmax: cannot normalise axis 1 of [3,0]: it has size 0"},
        {4, NB_ERR_ARG, "log_softmax: axis 5 is out of range for [3,4] (rank 2)"},
        {5, NB_ERR_DTYPE, "log_softmax_backward: gradient f32[3,4] and result f64[3,4]: dtypes"},
        {6, NB_ERR_SHAPE, "log_softmax_backward: gradient [4,3] and result [3,4]: shapes differ"},
        {7, NB_ERR_ARG, "log_softmax_backward: axis -3 is out of range for [3,4] (rank 2)"},
        {8, NB_ERR_ARG, "log_softmax_backward: takes 2 inputs, got 1"},
        {9, NB_ERR_SHAPE, "log_softmax_backward: cannot normalise axis 0 of [0,4]"},
    };
    for (size_t k = 0; k < COUNT(cases); k++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_zeros(g, NB_F64, 2, s34);
        nb_tensor *in[2] = {x, x}, *t = NULL;
        switch (cases[k].which) {
        case 0: t = nb_log_softmax(g, x, 2); break;
        case 1: t = nb_log_softmax(g, x, -3); break;
        case 2: t = nb_log_softmax(g, nb_scalar(g, NB_F64, 1), 0); break;
        case 3: t = nb_log_softmax(g, nb_zeros(g, NB_F64, 2, s30), 1); break;
        case 4: t = along(g, "log_softmax", &x, 1, 5); break;
        case 5: t = backward_op(g, nb_zeros(g, NB_F32, 2, s34), x, 1); break;
        case 6: t = backward_op(g, nb_zeros(g, NB_F64, 2, s43), x, 1); break;
        case 7: t = along(g, "log_softmax_backward", in, 2, -3); break;
        case 8: t = along(g, "log_softmax_backward", in, 1, 0); break;
        default: {
            nb_tensor *e = nb_zeros(g, NB_F64, 2, s04);
            t = backward_op(g, e, e, 0);
        }
        }
        expect_error(g, t, cases[k].st, cases[k].msg);
        nb_graph_free(g);
    }

    /* NULL inputs: NULL back, nothing recorded (an earlier op said why) */
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(g, NB_F64, 2, s34);
    assert_null(nb_log_softmax(g, NULL, 0));
    assert_null(backward_op(g, NULL, x, 0));
    assert_null(backward_op(g, x, NULL, 0));
    assert_int_equal(nb_graph_status(g), NB_OK);
    /* an empty axis other than the normalised one is fine, gradient too */
    nb_tensor *e = nb_tensor_set_requires_grad(nb_zeros(g, NB_F64, 2, s04), true);
    nb_tensor *y = nb_log_softmax(g, e, 1);
    assert_non_null(y);
    assert_int_equal(nb_tensor_size(y), 0);
    nb_tensor *de = NULL;
    assert_int_equal(nb_grad(g, nb_sum(g, y, NULL, 0, false), NULL, &e, 1, &de, false), NB_OK);
    assert_int_equal(nb_tensor_size(de), 0);
    nb_graph_free(g);
}

/* Out of memory for the per-slice buffers of an axis that is not the
 * last: the allocation that needs a new arena chunk fails; shifting what
 * comes before moves that boundary over each of the op's allocations in
 * turn. Every failure is a clean NB_ERR_NOMEM under the op's name; at
 * least one falls on each op's buffers (their byte counts are in the
 * message). */
static nb_tensor *oom_forward(nb_graph *g, nb_tensor *x, void *ctx)
{
    (void)ctx;
    return nb_log_softmax(g, x, 0);
}

static nb_tensor *oom_backward(nb_graph *g, nb_tensor *x, void *ctx)
{
    (void)ctx;
    return backward_op(g, x, x, 0);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    /* [outer=1, len=3, inner=4000]: the result 96000 bytes, a buffer 32000 */
    int64_t shape[] = {3, 4000};
    const char *buffer_msg[] = {"out of memory allocating 32000 bytes"};
    assert_int_equal(tc_oom_sweep(oom_forward, NULL, 2, shape, "log_softmax", buffer_msg, 1), 1);
    assert_int_equal(
        tc_oom_sweep(oom_backward, NULL, 2, shape, "log_softmax_backward", buffer_msg, 1), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bit_identical), cmocka_unit_test(test_nan_and_zero_max),
        cmocka_unit_test(test_gradcheck),     cmocka_unit_test(test_backward_one_tangent),
        cmocka_unit_test(test_second_order),  cmocka_unit_test(test_one_node),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
