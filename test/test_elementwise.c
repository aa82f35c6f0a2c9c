/* Gradient checks of the elementwise ops, with broadcasting; the
 * elementwise compositions (comparisons with a scalar, clamp, log_sigmoid):
 * values, kinks and tails. */

#include "tc.h"

#include <float.h>
#include <math.h>
#include <string.h>

typedef nb_tensor *(*unary_fn)(nb_graph *, nb_tensor *);
typedef nb_tensor *(*binary_fn)(nb_graph *, nb_tensor *, nb_tensor *);

typedef struct unary_op {
    unary_fn fn;
} unary_op;
typedef struct binary_op {
    binary_fn fn;
} binary_op;

static nb_tensor *apply_unary(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return ((unary_op *)ctx)->fn(g, in[0]);
}

static nb_tensor *apply_binary(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return ((binary_op *)ctx)->fn(g, in[0], in[1]);
}

static const tc_shape unary_shapes[] = {{0, {0}}, {1, {5}}, {2, {3, 4}}};

static void check_unary(const char *name, unary_fn fn, double lo, double hi)
{
    for (size_t s = 0; s < sizeof unary_shapes / sizeof *unary_shapes; s++) {
        tc_opts o = {.lo = lo, .hi = hi, .seed = 10 + s};
        unary_op op = {fn};
        tc_check(name, apply_unary, &op, 1, &unary_shapes[s], &o);
    }
}

static void test_unary(void **state)
{
    (void)state;
    check_unary("neg", nb_neg, -2, 2);
    check_unary("exp", nb_exp, -2, 2);
    check_unary("log", nb_log, 0.2, 3);
    check_unary("log1p", nb_log1p, -0.5, 3);
    check_unary("expm1", nb_expm1, -2, 2);
    check_unary("sqrt", nb_sqrt, 0.2, 3);
    check_unary("abs", nb_abs, -2, 2);
    check_unary("sin", nb_sin, -3, 3);
    check_unary("cos", nb_cos, -3, 3);
    check_unary("tanh", nb_tanh, -2, 2);
    check_unary("sigmoid", nb_sigmoid, -4, 4);
    check_unary("erf", nb_erf, -2, 2);
}

/* Pairs of broadcasting shapes: equal, [3,4]+[4], [3,1]*[1,4], []*[2,3], [2,1,3]+[4,1]. */
static const tc_shape pairs[][2] = {
    {{2, {3, 4}}, {2, {3, 4}}}, {{2, {3, 4}}, {1, {4}}},       {{2, {3, 1}}, {2, {1, 4}}},
    {{0, {0}}, {2, {2, 3}}},    {{3, {2, 1, 3}}, {2, {4, 1}}},
};

static void check_binary(const char *name, binary_fn fn, double lo, double hi, unsigned no_grad)
{
    for (size_t s = 0; s < sizeof pairs / sizeof *pairs; s++) {
        tc_opts o = {.lo = lo, .hi = hi, .seed = 20 + s, .no_grad_mask = no_grad};
        binary_op op = {fn};
        tc_check(name, apply_binary, &op, 2, pairs[s], &o);
    }
}

static void test_binary(void **state)
{
    (void)state;
    check_binary("add", nb_add, -2, 2, 0);
    check_binary("sub", nb_sub, -2, 2, 0);
    check_binary("mul", nb_mul, -2, 2, 0);
    check_binary("div", nb_div, 0.5, 2, 0);
    check_binary("pow", nb_pow, 0.5, 2, 0);
    check_binary("maximum", nb_maximum, -2, 2, 0);
    check_binary("minimum", nb_minimum, -2, 2, 0);
}

static nb_tensor *where_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_where(g, nb_gt(g, in[0], nb_scalar(g, nb_tensor_dtype(in[0]), 0.0)), in[1], in[2]);
}

static void test_where(void **state)
{
    (void)state;
    tc_shape s[3] = {{2, {3, 4}}, {1, {4}}, {2, {3, 1}}};
    tc_opts o = {.no_grad_mask = 1};
    tc_check("where", where_fn, NULL, 3, s, &o);
}

/* where picks the very bits of its branches (NaN payloads, -0) for every
 * mask value (-0 and +0 false; NaN, subnormals, negatives true), whichever
 * side is a broadcast scalar, in every dtype pairing of data and mask. */
static void test_where_bits(void **state)
{
    (void)state;
    const double mask_v[8] = {0.0, -0.0, 1.0, -2.5, NAN, 5e-324, 1e-45, INFINITY};
    const double data_v[8] = {-0.0, NAN, -NAN, 1.5, -INFINITY, 3.0, 0.0, -7.25};
    const double other_v[8] = {2.0, -0.0, 0.0, NAN, 4.0, -1.0, INFINITY, 8.5};
    for (int dt = 0; dt < 2; dt++)
        for (int mt = 0; mt < 2; mt++)
            for (int layout = 0; layout < 3; layout++) { /* both [8]; a scalar; b scalar */
                nb_dtype d = dt ? NB_F64 : NB_F32, md = mt ? NB_F64 : NB_F32;
                nb_graph *g = nb_graph_new();
                int64_t n8[1] = {8};
                /* each array in its dtype (f32 copies hold the same values) */
                float mask_f[8], data_f[8], other_f[8];
                for (int i = 0; i < 8; i++) {
                    mask_f[i] = (float)mask_v[i];
                    data_f[i] = (float)data_v[i];
                    other_f[i] = (float)other_v[i];
                }
                const void *mv = mt ? (const void *)mask_v : mask_f;
                const double *dv = data_v, *ov = other_v;
                const float *df = data_f, *of = other_f;
                nb_tensor *m = nb_tensor_from(g, md, 1, n8, mv);
                nb_tensor *a =
                    layout == 1
                        ? nb_tensor_from(g, d, 0, NULL,
                                         dt ? (const void *)(dv + 1) : (const void *)(df + 1))
                        : nb_tensor_from(g, d, 1, n8, dt ? (const void *)dv : (const void *)df);
                nb_tensor *b =
                    layout == 2
                        ? nb_tensor_from(g, d, 0, NULL,
                                         dt ? (const void *)(ov + 3) : (const void *)(of + 3))
                        : nb_tensor_from(g, d, 1, n8, dt ? (const void *)ov : (const void *)of);
                nb_tensor *w = nb_where(g, m, a, b);
                assert_non_null(w);
                size_t es = d == NB_F32 ? 4 : 8;
                const unsigned char *pa = nb_tensor_data(a), *pb = nb_tensor_data(b),
                                    *pw = nb_tensor_data(w);
                const unsigned char *pm = nb_tensor_data(m);
                for (int i = 0; i < 8; i++) {
                    bool on = md == NB_F32 ? ((const float *)(const void *)pm)[i] != 0
                                           : ((const double *)(const void *)pm)[i] != 0;
                    const unsigned char *want =
                        on ? pa + (layout == 1 ? 0 : i * es) : pb + (layout == 2 ? 0 : i * es);
                    if (memcmp(pw + i * es, want, es) != 0)
                        fail_msg("where %s mask %s layout %d: element %d differs", nb_dtype_name(d),
                                 nb_dtype_name(md), layout, i);
                }
                nb_graph_free(g);
            }
}

/* ReLU and its gradient: gradient checks on several shapes (relu_mask
 * against both inputs: linear in g, zero in x away from 0). */
static nb_tensor *relu_mask_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_relu_mask(g, in[0], in[1]);
}

static void test_relu(void **state)
{
    (void)state;
    check_unary("relu", nb_relu, -2, 2);
    const tc_shape same[][2] = {
        {{0, {0}}, {0, {0}}}, {{1, {5}}, {1, {5}}}, {{3, {2, 3, 4}}, {3, {2, 3, 4}}}};
    for (size_t k = 0; k < sizeof same / sizeof *same; k++) {
        tc_opts o = {.seed = 30 + k};
        tc_check("relu_mask", relu_mask_fn, NULL, 2, same[k], &o);
    }
}

/* where(x <= 0, 0, v): ReLU (v = x) and its gradient (v = g) as compositions. */
static nb_tensor *relu_composed(nb_graph *g, nb_tensor *x, nb_tensor *v)
{
    nb_tensor *zero = nb_scalar(g, nb_tensor_dtype(x), 0.0);
    return nb_where(g, nb_le(g, x, zero), zero, v);
}

/* Whether a and b hold the same bits. */
static bool same_bits(nb_tensor *a, nb_tensor *b)
{
    return a && b && nb_tensor_size(a) == nb_tensor_size(b) &&
           memcmp(nb_tensor_data(a), nb_tensor_data(b),
                  (size_t)nb_tensor_size(a) * (nb_tensor_dtype(a) == NB_F32 ? 4 : 8)) == 0;
}

/* relu and relu_mask give the very bits of where(x <= 0, 0, x) and of its
 * gradient where(x <= 0, 0, g): +0 for -0 and for every x <= 0, NaN kept
 * with its payload and sign, g passed where x is NaN (NaN, -0 and infinite
 * g included); so do the reverse sweep, forward mode and the second
 * derivative, in both dtypes, on a vector (vector loops and their tail) and
 * on a scalar. */
static void test_relu_bits(void **state)
{
    (void)state;
    enum { N = 16, LEN = 3 * N + 1 };
    const double xv[N] = {0.0,   -0.0,   NAN, -NAN, INFINITY, -INFINITY, 5e-324, -5e-324,
                          1e-45, -1e-45, 1.5, -2.5, DBL_MAX,  -DBL_MIN,  3.0,    -0.25};
    const double gv[N] = {NAN,       1.0, -2.0, -0.0, 0.0, INFINITY, -3.5, NAN,
                          -INFINITY, 7.0, -0.0, 2.0,  NAN, 1.0,      -1.0, 4.0};
    for (int dt = 0; dt < 2; dt++)
        for (int scalar = 0; scalar < 2; scalar++) {
            nb_dtype d = dt ? NB_F64 : NB_F32;
            double xd[LEN], gd[LEN], wd[LEN];
            float xf[LEN], gf[LEN], wf[LEN];
            for (int i = 0; i < LEN; i++) {
                xd[i] = xv[(i + scalar) % N];
                gd[i] = gv[(i * 5) % N];
                wd[i] = 0.5 * (double)(i % 7) - 1.25;
                xf[i] = (float)xd[i];
                gf[i] = (float)gd[i];
                wf[i] = (float)wd[i];
            }
            int rank = scalar ? 0 : 1;
            int64_t len[1] = {LEN};
            nb_graph *g = nb_graph_new();
            nb_tensor *x = nb_tensor_set_requires_grad(
                nb_tensor_from(g, d, rank, len, dt ? (const void *)xd : xf), true);
            nb_tensor *gr = nb_tensor_set_requires_grad(
                nb_tensor_from(g, d, rank, len, dt ? (const void *)gd : gf), true);
            nb_tensor *w = nb_tensor_from(g, d, rank, len, dt ? (const void *)wd : wf);
            nb_tensor *y = nb_relu(g, x), *yc = relu_composed(g, x, x);
            assert_true(same_bits(y, yc));
            assert_true(same_bits(nb_relu_mask(g, gr, x), relu_composed(g, x, gr)));
            /* reverse: d<g, y>/dx, recorded for the second derivative */
            nb_tensor *dx, *dxc;
            assert_int_equal(nb_grad(g, y, gr, &x, 1, &dx, true), NB_OK);
            assert_int_equal(nb_grad(g, yc, gr, &x, 1, &dxc, true), NB_OK);
            assert_true(same_bits(dx, dxc));
            /* second order: d<w, dx>/dg = relu_mask(w, x); d<w, dx>/dx = 0 */
            nb_tensor *both[2] = {gr, x}, *d2[2], *d2c[2];
            assert_int_equal(nb_grad(g, dx, w, both, 2, d2, false), NB_OK);
            assert_int_equal(nb_grad(g, dxc, w, both, 2, d2c, false), NB_OK);
            assert_true(same_bits(d2[0], d2c[0]));
            assert_true(same_bits(d2[1], d2c[1]));
            /* forward: the tangent g at x */
            nb_tensor *ty, *tyc;
            assert_int_equal(nb_jvp(g, y, &x, &gr, 1, &ty), NB_OK);
            assert_int_equal(nb_jvp(g, yc, &x, &gr, 1, &tyc), NB_OK);
            assert_true(same_bits(ty, tyc));
            /* the expected values, spelled out for a few elements */
            const unsigned char *py = nb_tensor_data(y);
            size_t es = dt ? 8 : 4;
            if (!scalar) {
                double zero = 0.0;
                float zero_f = 0.0f;
                assert_memory_equal(py + es, dt ? (const void *)&zero : &zero_f, es); /* -0 */
                assert_memory_equal(py + 3 * es, dt ? (const void *)(xd + 3) : xf + 3, es);
            }
            assert_int_equal(nb_graph_status(g), NB_OK);
            nb_graph_free(g);
        }
}

/* relu_mask needs g and x of one shape and dtype. */
static void test_relu_mask_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_zeros(g, NB_F32, 2, (int64_t[]){3, 4});
    nb_tensor *b = nb_zeros(g, NB_F32, 1, (int64_t[]){4});
    nb_tensor *c = nb_zeros(g, NB_F64, 2, (int64_t[]){3, 4});
    assert_null(nb_relu_mask(g, a, b));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_string_equal(nb_graph_error(g)->where, "relu_mask");
    assert_non_null(strstr(nb_graph_error(g)->msg, "[3,4]"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "[4]"));
    nb_graph_clear_error(g);
    assert_null(nb_relu_mask(g, a, c));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    nb_graph_clear_error(g);
    assert_null(nb_relu_mask(g, NULL, a));
    assert_null(nb_relu(g, NULL));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* Empty tensors: broadcasting over a zero-length axis that is not the last
 * gives an empty result, and the backward sweep gives empty gradients. */
static void test_empty(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    assert_non_null(g);
    int64_t s03[2] = {0, 3}, s3[1] = {3};
    nb_tensor *a = nb_zeros(g, NB_F64, 2, s03), *b = nb_ones(g, NB_F64, 1, s3);
    nb_tensor_set_requires_grad(a, true);
    nb_tensor_set_requires_grad(b, true);
    nb_tensor *y = nb_sum(g, nb_mul(g, nb_add(g, a, b), b), NULL, 0, false);
    assert_non_null(y);
    assert_int_equal(nb_backward(g, y), NB_OK);
    assert_true(nb_tensor_item(y) == 0.0);
    assert_int_equal(nb_tensor_size(nb_tensor_grad(a)), 0);
    const double *gb = nb_tensor_data(nb_tensor_grad(b));
    for (int i = 0; i < 3; i++)
        assert_true(gb[i] == 0.0);
    nb_graph_free(g);
}

/* Comparisons, sign and step give exact masks and no gradient. */
static void test_masks(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    double a[] = {-1, 0, 2}, b[] = {0, 0, 1};
    nb_tensor *ta =
        nb_tensor_set_requires_grad(nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, a), true);
    nb_tensor *tb = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, b);
    struct {
        binary_fn fn;
        double want[3];
    } cases[] = {{nb_gt, {0, 0, 1}},
                 {nb_ge, {0, 1, 1}},
                 {nb_lt, {1, 0, 0}},
                 {nb_le, {1, 1, 0}},
                 {nb_eq, {0, 1, 0}}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nb_tensor *m = cases[c].fn(g, ta, tb);
        assert_non_null(m);
        assert_false(nb_tensor_requires_grad(m));
        for (int i = 0; i < 3; i++)
            tc_near(nb_tensor_get(m, i), cases[c].want[i], 0);
    }
    nb_tensor *s = nb_sign(g, ta), *st = nb_step(g, ta);
    double ws[] = {-1, 0, 1}, wst[] = {0, 0, 1};
    for (int i = 0; i < 3; i++) {
        tc_near(nb_tensor_get(s, i), ws[i], 0);
        tc_near(nb_tensor_get(st, i), wst[i], 0);
    }
    assert_false(nb_tensor_requires_grad(s));
    assert_false(nb_tensor_requires_grad(st));
    nb_graph_free(g);
}

/* Ties of maximum/minimum split the gradient in halves. */
static void test_extremum_ties(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *a = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 1.5), true);
    nb_tensor *b = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 1.5), true);
    nb_tensor *y = nb_add(g, nb_maximum(g, a, b), nb_minimum(g, a, b));
    assert_int_equal(nb_backward(g, y), NB_OK);
    tc_near(nb_tensor_item(nb_tensor_grad(a)), 1.0, 0);
    tc_near(nb_tensor_item(nb_tensor_grad(b)), 1.0, 0);
    nb_graph_free(g);
}

/* f(x) and f'(x) at the n points pts against ref, which gives both in long
 * double: within a few ulps (relative) wherever the true value is a normal
 * number of the dtype, and within a few of the smallest subnormals below
 * that; never Inf or NaN. */
typedef void (*tails_ref)(long double x, long double want[2]);

static void check_tails(const char *name, unary_fn f, tails_ref ref_fn, const double *pts, int n,
                        nb_dtype dt)
{
    bool f32 = dt == NB_F32;
    double ulp = f32 ? FLT_EPSILON / 2 : DBL_EPSILON / 2;
    double tiny = f32 ? FLT_MIN : DBL_MIN, denorm = f32 ? 0x1p-149 : 0x1p-1074;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(g, dt, 1, (int64_t[]){n});
    for (int i = 0; i < n; i++)
        nb_tensor_set(x, i, pts[i]);
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *y = f(g, x);
    assert_non_null(y);
    assert_int_equal(nb_backward(g, nb_sum(g, y, NULL, 0, false)), NB_OK);
    for (int i = 0; i < n; i++) {
        long double want[2];
        ref_fn(f32 ? (float)pts[i] : pts[i], want);
        double got[2] = {nb_tensor_get(y, i), nb_tensor_get(nb_tensor_grad(x), i)};
        for (int k = 0; k < 2; k++) {
            double ref = f32 ? (double)(float)want[k] : (double)want[k], mag = fabs(ref);
            double err = fabs(got[k] - ref);
            bool ok = mag >= tiny ? err <= 4 * ulp * mag : err <= 4 * denorm;
            if (!isfinite(got[k]) || !ok)
                fail_msg("%s %s%s(%g) = %a, long double gives %a (%.3g ulps)", nb_dtype_name(dt),
                         name, k ? "'" : "", pts[i], got[k], ref,
                         mag > 0 ? err / (ulp * mag) : err / denorm);
        }
    }
    nb_graph_free(g);
}

/* σ(x) and σ'(x) = σ(x)σ(-x) */
static void sigmoid_ref(long double x, long double want[2])
{
    long double e = expl(-fabsl(x));
    want[0] = (x >= 0 ? 1 : e) / (1 + e);
    want[1] = e / ((1 + e) * (1 + e));
}

static void check_sigmoid_tails(nb_dtype dt)
{
    static const double pts[] = {-745,  -700, -120, -100, -87, -80, -40, -30, -20, -5,
                                 -1e-3, 0,    1e-3, 5,    17,  20,  30,  40,  80,  700};
    check_tails("sigmoid", nb_sigmoid, sigmoid_ref, pts, sizeof pts / sizeof *pts, dt);
}

static void test_sigmoid_tails(void **state)
{
    (void)state;
    check_sigmoid_tails(NB_F64);
    check_sigmoid_tails(NB_F32);
    /* the limits and NaN */
    nb_graph *g = nb_graph_new();
    nb_tensor *y = nb_sigmoid(
        g, nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (double[]){-INFINITY, INFINITY, NAN}));
    tc_near(nb_tensor_get(y, 0), 0, 0);
    tc_near(nb_tensor_get(y, 1), 1, 0);
    assert_true(isnan(nb_tensor_get(y, 2)));
    nb_graph_free(g);
}

/* ------------------------------------------------------ compositions */

typedef struct clamp_case {
    double lo, hi;
} clamp_case;

static nb_tensor *clamp_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const clamp_case *c = ctx;
    return nb_clamp(g, in[0], c->lo, c->hi);
}

/* A comparison with a scalar used as a mask: its own Jacobian is zero, the
 * product's is the mask. */
static nb_tensor *masked_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    nb_tensor *m = nb_add(g, nb_gt_scalar(g, in[0], 0.5), nb_le_scalar(g, in[0], -0.5));
    return nb_mul(g, m, nb_square(g, in[0]));
}

static void test_compositions_grad(void **state)
{
    (void)state;
    check_unary("log_sigmoid", nb_log_sigmoid, -4, 4);
    check_unary("log_sigmoid", nb_log_sigmoid, -40, 40);
    clamp_case cases[] = {{-1, 1}, {-INFINITY, 0.5}, {-0.25, INFINITY}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
        for (size_t k = 0; k < sizeof unary_shapes / sizeof *unary_shapes; k++) {
            tc_opts o = {.seed = 40 + 3 * c + k};
            tc_check("clamp", clamp_fn, &cases[c], 1, &unary_shapes[k], &o);
        }
    tc_opts o = {.seed = 50};
    tc_check("gt_scalar, le_scalar", masked_fn, NULL, 1, &unary_shapes[2], &o);
}

/* clamp: the bounds belong to the outer side (value the bound, derivative 0),
 * in reverse and forward mode; NaN passes; one bound may be infinite. */
static void test_clamp_values(void **state)
{
    (void)state;
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        nb_graph *g = nb_graph_new();
        double xv[] = {-3, -1, -0.5, 0, 0.75, 1, 2, NAN};
        nb_tensor *x =
            nb_tensor_set_requires_grad(nb_zeros(g, (nb_dtype)dt, 1, (int64_t[]){8}), true);
        for (int i = 0; i < 8; i++)
            nb_tensor_set(x, i, xv[i]);
        nb_tensor *y = nb_clamp(g, x, -1, 1);
        double want[] = {-1, -1, -0.5, 0, 0.75, 1, 1};
        for (int i = 0; i < 7; i++)
            tc_near(nb_tensor_get(y, i), want[i], 0);
        assert_true(isnan(nb_tensor_get(y, 7)));
        nb_tensor *seed = nb_ones(g, (nb_dtype)dt, 1, (int64_t[]){8});
        assert_int_equal(nb_backward_seed(g, y, seed), NB_OK);
        double dwant[] = {0, 0, 1, 1, 1, 0, 0};
        for (int i = 0; i < 7; i++)
            tc_near(nb_tensor_get(nb_tensor_grad(x), i), dwant[i], 0);
        nb_tensor *ty = NULL;
        assert_int_equal(nb_jvp(g, y, &x, &seed, 1, &ty), NB_OK);
        for (int i = 0; i < 7; i++)
            tc_near(nb_tensor_get(ty, i), dwant[i], 0);

        nb_tensor *lo_only = nb_clamp(g, x, 0, INFINITY);
        double lw[] = {0, 0, 0, 0, 0.75, 1, 2};
        for (int i = 0; i < 7; i++)
            tc_near(nb_tensor_get(lo_only, i), lw[i], 0);
        nb_tensor *point = nb_clamp(g, x, 0.5, 0.5);
        for (int i = 0; i < 7; i++)
            tc_near(nb_tensor_get(point, i), 0.5, 0);
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }
}

/* x compared with a scalar: masks in x's dtype, the scalar rounded to that
 * dtype, NaN false, no gradient. */
static void test_compare_scalar(void **state)
{
    (void)state;
    typedef nb_tensor *(*cmp_fn)(nb_graph *, nb_tensor *, double);
    struct {
        cmp_fn fn;
        double want[4];
    } cases[] = {{nb_gt_scalar, {0, 0, 1, 0}},
                 {nb_ge_scalar, {0, 1, 1, 0}},
                 {nb_lt_scalar, {1, 0, 0, 0}},
                 {nb_le_scalar, {1, 1, 0, 0}},
                 {nb_eq_scalar, {0, 1, 0, 0}}};
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *x =
            nb_tensor_set_requires_grad(nb_zeros(g, (nb_dtype)dt, 1, (int64_t[]){4}), true);
        double xv[] = {-1, 0.1, 2, NAN};
        for (int i = 0; i < 4; i++)
            nb_tensor_set(x, i, xv[i]);
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            nb_tensor *m = cases[c].fn(g, x, 0.1); /* 0.1 as f32 equals x[1] as f32 */
            assert_non_null(m);
            assert_int_equal(nb_tensor_dtype(m), (nb_dtype)dt);
            assert_false(nb_tensor_requires_grad(m));
            for (int i = 0; i < 4; i++)
                tc_near(nb_tensor_get(m, i), cases[c].want[i], 0);
            assert_null(cases[c].fn(g, NULL, 0));
        }
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }
}

/* log σ(x) = min(x,0) - log(1 + e^-|x|) and its derivative σ(-x) */
static void log_sigmoid_ref(long double x, long double want[2])
{
    long double e = expl(-fabsl(x));
    want[0] = (x < 0 ? x : 0) - log1pl(e);
    want[1] = (x < 0 ? 1 : e) / (1 + e);
}

/* Both tails, ±100 and ±1000 among the points. */
static void check_log_sigmoid_tails(nb_dtype dt)
{
    static const double pts[] = {-1000, -745, -100, -40, -20, -5, -1,  -1e-3, 0,
                                 1e-3,  1,    5,    20,  40,  87, 100, 745,   1000};
    check_tails("log_sigmoid", nb_log_sigmoid, log_sigmoid_ref, pts, sizeof pts / sizeof *pts, dt);
}

static void test_log_sigmoid(void **state)
{
    (void)state;
    check_log_sigmoid_tails(NB_F64);
    check_log_sigmoid_tails(NB_F32);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(
        nb_tensor_from(g, NB_F64, 1, (int64_t[]){5}, (double[]){-3, -0.5, 0, 0.5, 3}), true);
    nb_tensor *y = nb_log_sigmoid(g, x);
    tc_near(nb_tensor_get(y, 2), -log(2), 1e-16);
    nb_tensor *dx = NULL, *d2 = NULL;
    assert_int_equal(nb_grad(g, nb_sum(g, y, NULL, 0, false), NULL, &x, 1, &dx, true), NB_OK);
    tc_near(nb_tensor_get(dx, 2), 0.5, 0);
    assert_int_equal(nb_grad(g, nb_sum(g, dx, NULL, 0, false), NULL, &x, 1, &d2, false), NB_OK);
    for (int i = 0; i < 5; i++) {
        double v = nb_tensor_get(x, i);
        if (v != 0) /* -σ(x)σ(-x) away from the point where |x| has a kink */
            tc_near(nb_tensor_get(d2, i), -1 / ((1 + exp(v)) * (1 + exp(-v))), 1e-15);
    }
    /* the limits and NaN */
    nb_tensor *lim = nb_log_sigmoid(
        g, nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (double[]){-INFINITY, INFINITY, NAN}));
    assert_true(isinf(nb_tensor_get(lim, 0)) && nb_tensor_get(lim, 0) < 0);
    tc_near(nb_tensor_get(lim, 1), 0, 0);
    assert_true(isnan(nb_tensor_get(lim, 2)));
    assert_null(nb_log_sigmoid(g, NULL));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

static void test_composition_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(g, NB_F64, 2, (int64_t[]){2, 3});
    double bad[][2] = {{1, -1}, {NAN, 1}, {0, NAN}};
    for (size_t k = 0; k < 3; k++) {
        assert_null(nb_clamp(g, x, bad[k][0], bad[k][1]));
        assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
        assert_string_equal(nb_graph_error(g)->where, "clamp");
        assert_non_null(strstr(nb_graph_error(g)->msg, "[2,3]"));
        nb_graph_clear_error(g);
    }
    assert_null(nb_clamp(g, NULL, 0, 1));
    assert_null(nb_clamp(NULL, x, 0, 1));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_where),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_extremum_ties),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_sigmoid_tails),
        cmocka_unit_test(test_where_bits),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_relu_bits),
        cmocka_unit_test(test_relu_mask_errors),
        cmocka_unit_test(test_compositions_grad),
        cmocka_unit_test(test_clamp_values),
        cmocka_unit_test(test_compare_scalar),
        cmocka_unit_test(test_log_sigmoid),
        cmocka_unit_test(test_composition_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
