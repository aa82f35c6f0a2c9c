/* Neural-network pieces: activations against their closed forms and by
 * gradient check, stability at ±1000, initialisation statistics, losses,
 * layers (linear, maxout, activation, dropout, batch norm, MLP), vanishing
 * gradients in a deep sigmoid network, and bad input. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ------------------------------------------------ closed forms (notes) */

static double ref_sigmoid(double x)
{
    return 1 / (1 + exp(-x));
}
static double ref_hard_sigmoid(double x)
{
    return fmax(fmin(0.25 * x + 0.5, 1), 0);
}
static double ref_hard_tanh(double x)
{
    return fmax(fmin(x, 1), -1);
}
static double ref_relu(double x)
{
    return x >= 0 ? x : 0;
}
static double ref_leaky(double x)
{
    return x >= 0 ? x : 0.1 * x;
}
static double ref_elu(double x)
{
    return x >= 0 ? x : 1.5 * (exp(x) - 1);
}
static double ref_softplus(double x)
{
    return log(1 + exp(x));
}
static double ref_softsign(double x)
{
    return x / (1 + fabs(x));
}
static double ref_swish(double x)
{
    return x / (1 + exp(-2 * x)); /* β = 2 */
}
static double ref_gelu(double x)
{
    return x * 0.5 * (1 + erf(x / sqrt(2)));
}
static double ref_gelu_sigmoid(double x)
{
    return x * ref_sigmoid(1.702 * x);
}
static double ref_gelu_tanh(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
}
static double ref_step(double x)
{
    return x > 0 ? 1 : 0;
}
static double ref_tanh(double x)
{
    return (exp(x) - exp(-x)) / (exp(x) + exp(-x));
}

static nb_tensor *f_sigmoid(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_sigmoid(g, in[0]);
}
static nb_tensor *f_tanh(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_tanh(g, in[0]);
}
static nb_tensor *f_hard_sigmoid(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_hard_sigmoid(g, in[0]);
}
static nb_tensor *f_hard_tanh(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_hard_tanh(g, in[0]);
}
static nb_tensor *f_relu(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_relu(g, in[0]);
}
static nb_tensor *f_leaky(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_leaky_relu(g, in[0], 0.1);
}
static nb_tensor *f_elu(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_elu(g, in[0], 1.5);
}
static nb_tensor *f_softplus(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_softplus(g, in[0]);
}
static nb_tensor *f_softsign(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_softsign(g, in[0]);
}
static nb_tensor *f_swish(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_swish(g, in[0], 2);
}
static nb_tensor *f_gelu(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_gelu(g, in[0]);
}
static nb_tensor *f_gelu_sigmoid(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_gelu_sigmoid(g, in[0]);
}
static nb_tensor *f_gelu_tanh(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_gelu_tanh(g, in[0]);
}
static nb_tensor *f_step(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_step(g, in[0]);
}
/* x + step(x): the step adds nothing to the derivative */
static nb_tensor *f_x_plus_step(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_add(g, in[0], nb_step(g, in[0]));
}

typedef struct unary_case {
    const char *name;
    tc_fn fn;
    double (*ref)(double);
} unary_case;

static const unary_case unary_cases[] = {
    {"sigmoid", f_sigmoid, ref_sigmoid},
    {"tanh", f_tanh, ref_tanh},
    {"hard-sigmoid", f_hard_sigmoid, ref_hard_sigmoid},
    {"hard-tanh", f_hard_tanh, ref_hard_tanh},
    {"relu", f_relu, ref_relu},
    {"leaky-relu", f_leaky, ref_leaky},
    {"elu", f_elu, ref_elu},
    {"softplus", f_softplus, ref_softplus},
    {"softsign", f_softsign, ref_softsign},
    {"swish", f_swish, ref_swish},
    {"gelu", f_gelu, ref_gelu},
    {"gelu-sigmoid", f_gelu_sigmoid, ref_gelu_sigmoid},
    {"gelu-tanh", f_gelu_tanh, ref_gelu_tanh},
    {"step", f_step, ref_step}, /* last: it has no gradient to check */
};

/* Values at chosen points, kinks included, against the notes' formulas. */
static void test_activation_values(void **state)
{
    (void)state;
    const double pts[] = {-5, -2.5, -2, -1, -0.5, 0, 0.25, 1, 2, 3.5, 7};
    nb_graph *g = nb_graph_new();
    for (size_t c = 0; c < COUNT(unary_cases); c++) {
        nb_tensor *x = nb_tensor_from(g, NB_F64, 1, (int64_t[]){COUNT(pts)}, pts);
        nb_tensor *y = unary_cases[c].fn(g, &x, NULL);
        assert_non_null(y);
        for (size_t i = 0; i < COUNT(pts); i++) {
            double want = unary_cases[c].ref(pts[i]);
            if (fabs(nb_tensor_get(y, (int64_t)i) - want) > 1e-12 * fmax(1, fabs(want)))
                fail_msg("%s(%g) = %.17g, closed form %.17g", unary_cases[c].name, pts[i],
                         nb_tensor_get(y, (int64_t)i), want);
        }
    }
    /* the notes' worked numbers */
    nb_tensor *x = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (double[]){-4, 0, 4});
    nb_tensor *hs = nb_hard_sigmoid(g, x);
    tc_near(nb_tensor_get(hs, 0), 0, 0);
    tc_near(nb_tensor_get(hs, 1), 0.5, 0);
    tc_near(nb_tensor_get(hs, 2), 1, 0);
    nb_tensor *s = nb_sigmoid(g, x);
    tc_near(nb_tensor_get(s, 1), 0.5, 0);
    nb_graph_free(g);
}

static void test_activation_grads(void **state)
{
    (void)state;
    tc_shape shapes[] = {{1, {7}}, {2, {3, 4}}};
    for (size_t c = 0; c + 1 < COUNT(unary_cases); c++)
        for (size_t s = 0; s < COUNT(shapes); s++) {
            tc_opts o = {.lo = -3, .hi = 3, .seed = 10 + c * 7 + s};
            tc_check(unary_cases[c].name, unary_cases[c].fn, NULL, 1, &shapes[s], &o);
        }
    /* inside the linear parts of the hard functions, and on the far side */
    tc_shape one = {1, {6}};
    tc_check("hard-sigmoid inner", f_hard_sigmoid, NULL, 1, &one,
             &(tc_opts){.lo = -1.9, .hi = 1.9, .seed = 3});
    tc_check("hard-tanh outer", f_hard_tanh, NULL, 1, &one,
             &(tc_opts){.lo = 1.1, .hi = 4, .seed = 4});
}

/* Derivatives at points against the notes' closed forms (reverse mode). */
static void test_activation_derivatives(void **state)
{
    (void)state;
    const double pts[] = {-3, -0.7, 0.4, 2.2};
    nb_graph *g = nb_graph_new();
    for (size_t i = 0; i < COUNT(pts); i++) {
        double x0 = pts[i], sg = ref_sigmoid(x0);
        struct {
            tc_fn fn;
            double want;
        } d[] = {
            {f_sigmoid, sg * (1 - sg)},
            {f_relu, x0 > 0},
            {f_leaky, x0 > 0 ? 1 : 0.1},
            {f_elu, x0 > 0 ? 1 : 1.5 * exp(x0)},
            {f_softplus, sg},
            {f_softsign, 1 / ((1 + fabs(x0)) * (1 + fabs(x0)))},
            {f_hard_sigmoid, fabs(x0) < 2 ? 0.25 : 0},
            {f_x_plus_step, 1},
        };
        for (size_t k = 0; k < COUNT(d); k++) {
            nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, x0), true);
            nb_tensor *y = d[k].fn(g, &x, NULL);
            assert_int_equal(nb_backward(g, y), NB_OK);
            tc_near(nb_tensor_item(nb_tensor_grad(x)), d[k].want, 1e-12);
        }
        nb_graph_reset(g);
    }
    /* the binary step passes no gradient: its result needs none */
    nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 0.5), true);
    assert_false(nb_tensor_requires_grad(nb_step(g, x)));
    tc_check("x + step(x)", f_x_plus_step, NULL, 1, &(tc_shape){1, {5}}, &(tc_opts){.seed = 9});
    nb_graph_free(g);
}

static nb_tensor *f_abs(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_abs(g, in[0]);
}
/* maxout of the two pieces x and 2x − 0.5 (of a rank-0 x): they tie at 0.5,
 * where the slopes are 1 and 2 */
static nb_tensor *f_maxout_tie(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    nb_tensor *x = nb_reshape(g, in[0], 1, (int64_t[]){1});
    nb_tensor *pieces[2] = {x, nb_add_scalar(g, nb_scale(g, x, 2), -0.5)};
    return nb_sum(g, nb_maxout(g, nb_concat(g, pieces, 2, 0), 2), NULL, 0, false);
}
/* BCE of probability x against target 1, summed: p is clamped to [eps, 1-eps] */
static nb_tensor *f_bce_target1(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    nb_tensor *one =
        nb_full(g, nb_tensor_dtype(in[0]), nb_tensor_rank(in[0]), nb_tensor_shape(in[0]), 1);
    return nb_bce_loss(g, in[0], one, NB_REDUCE_SUM);
}

/* The convention at kinks (docs/ops.md, "Kinks"): where an input crosses a
 * threshold the derivative is the outer side's; ties between inputs split
 * evenly. Value, reverse-mode and forward-mode derivative at each kink, in
 * both dtypes, and NaN in gives NaN out. */
static void test_kinks(void **state)
{
    (void)state;
    const double eps32 = (float)1e-7, eps64 = 1e-12;
    const struct {
        const char *name;
        tc_fn fn;
        double x, value, slope;
    } k[] = {
        {"relu", f_relu, 0, 0, 0},
        {"leaky-relu", f_leaky, 0, 0, 0.1},
        {"elu", f_elu, 0, 0, 1.5},
        {"hard-tanh", f_hard_tanh, 1, 1, 0},
        {"hard-tanh", f_hard_tanh, -1, -1, 0},
        {"hard-sigmoid", f_hard_sigmoid, 2, 1, 0},
        {"hard-sigmoid", f_hard_sigmoid, -2, 0, 0},
        {"abs", f_abs, 0, 0, 0},
        {"softplus", f_softplus, 0, log(2.0), 0.5}, /* smooth: no kink */
        {"maxout", f_maxout_tie, 0.5, 0.5, 1.5},    /* a tie: ½·1 + ½·2 */
        {"bce clamp", f_bce_target1, -1, 0, 0},     /* -1: at p = eps, value −ln eps */
    };
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        double tol = d ? 1e-15 : 1e-6, eps = d ? eps64 : eps32;
        nb_graph *g = nb_graph_new();
        for (size_t i = 0; i < COUNT(k); i++) {
            bool bce = k[i].fn == f_bce_target1;
            double x0 = bce ? eps : k[i].x, value = bce ? -log(eps) : k[i].value;
            nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, dt, x0), true);
            nb_tensor *y = k[i].fn(g, &x, NULL);
            assert_non_null(y);
            nb_tensor *dy = NULL;
            nb_tensor *t = nb_scalar(g, dt, 1);
            assert_int_equal(nb_jvp(g, y, &x, &t, 1, &dy), NB_OK);
            assert_int_equal(nb_backward(g, y), NB_OK);
            double got[3] = {nb_tensor_item(y), nb_tensor_item(nb_tensor_grad(x)),
                             nb_tensor_item(dy)};
            double want[3] = {value, k[i].slope, k[i].slope};
            for (int j = 0; j < 3; j++)
                if (!(fabs(got[j] - want[j]) <= tol * fmax(1, fabs(want[j]))))
                    fail_msg("%s %s at %g: %s %.17g, want %.17g", nb_dtype_name(dt), k[i].name, x0,
                             j == 0   ? "value"
                             : j == 1 ? "reverse derivative"
                                      : "forward derivative",
                             got[j], want[j]);
            /* NaN in, NaN out */
            nb_tensor *nan = nb_scalar(g, dt, NAN);
            nb_tensor *yn = k[i].fn(g, &nan, NULL);
            assert_non_null(yn);
            if (!isnan(nb_tensor_item(yn)))
                fail_msg("%s %s(NaN) = %g", nb_dtype_name(dt), k[i].name, nb_tensor_item(yn));
            nb_graph_reset(g);
        }
        nb_graph_free(g);
    }
}

static nb_tensor *f_prelu(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_prelu(g, in[0], in[1]);
}
static nb_tensor *f_swish_param(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_swish_param(g, in[0], in[1]);
}
static nb_tensor *f_rrelu_train(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    nb_rng rng; /* the same slopes at every evaluation */
    nb_rng_seed(&rng, *(const uint64_t *)ctx);
    return nb_rrelu(g, in[0], 0.1, 0.4, &rng, true);
}
static nb_tensor *f_rrelu_eval(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_rrelu(g, in[0], 0.1, 0.4, NULL, false);
}
static nb_tensor *f_maxout3(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_maxout(g, in[0], 3);
}
static nb_tensor *f_softmax(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_softmax(g, in[0], *(const int *)ctx);
}
static nb_tensor *f_log_softmax(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_log_softmax(g, in[0], *(const int *)ctx);
}

static void test_param_activations(void **state)
{
    (void)state;
    /* PReLU and learned swish: the parameter broadcasts per feature or as a scalar */
    tc_shape per_feature[] = {{2, {4, 3}}, {1, {3}}};
    tc_shape scalar[] = {{2, {4, 3}}, {0, {0}}};
    tc_check("prelu [F]", f_prelu, NULL, 2, per_feature, &(tc_opts){.lo = -3, .hi = 3, .seed = 5});
    tc_check("prelu scalar", f_prelu, NULL, 2, scalar, &(tc_opts){.lo = -3, .hi = 3, .seed = 6});
    tc_check("swish learned", f_swish_param, NULL, 2, per_feature, &(tc_opts){.seed = 7});
    tc_check("swish learned scalar", f_swish_param, NULL, 2, scalar, &(tc_opts){.seed = 8});

    tc_shape x = {2, {5, 4}};
    uint64_t seed = 99;
    tc_check("rrelu training", f_rrelu_train, &seed, 1, &x, &(tc_opts){.lo = -3, .hi = 3});
    tc_check("rrelu evaluation", f_rrelu_eval, NULL, 1, &x, &(tc_opts){.lo = -3, .hi = 3});
    tc_shape mo[] = {{2, {4, 6}}, {3, {2, 2, 9}}};
    for (size_t k = 0; k < COUNT(mo); k++)
        tc_check("maxout", f_maxout3, NULL, 1, &mo[k], &(tc_opts){.seed = 20 + k});
    tc_shape sm[] = {{2, {3, 5}}, {3, {2, 3, 4}}, {1, {6}}};
    int axes[] = {-1, 0, 1};
    for (size_t k = 0; k < COUNT(sm); k++)
        for (size_t a = 0; a < COUNT(axes); a++) {
            if (axes[a] >= sm[k].rank)
                continue;
            tc_opts o = {.lo = -4, .hi = 4, .seed = 30 + k * 3 + a};
            tc_check("softmax", f_softmax, &axes[a], 1, &sm[k], &o);
            tc_check("log_softmax", f_log_softmax, &axes[a], 1, &sm[k], &o);
        }

    /* values: PReLU, RReLU, maxout, softmax */
    nb_graph *g = nb_graph_new();
    nb_tensor *xs =
        nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 3}, (double[]){-1, 2, -3, 4, -5, 6});
    nb_tensor *alpha = nb_tensor_from(g, NB_F64, 1, (int64_t[]){3}, (double[]){0.1, 0.2, 0.3});
    nb_tensor *y = nb_prelu(g, xs, alpha);
    const double want_prelu[] = {-0.1, 2, -0.9, 4, -1.0, 6};
    for (int i = 0; i < 6; i++)
        tc_near(nb_tensor_get(y, i), want_prelu[i], 1e-15);
    y = nb_rrelu(g, xs, 0.1, 0.3, NULL, false);
    tc_near(nb_tensor_get(y, 0), -0.2, 1e-15);
    tc_near(nb_tensor_get(y, 1), 2, 0);
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_tensor *big = nb_full(g, NB_F64, 1, (int64_t[]){2000}, -1.0);
    y = nb_rrelu(g, big, 0.1, 0.3, &rng, true);
    double sum = 0, lo = 1, hi = -1;
    for (int i = 0; i < 2000; i++) {
        double a = -nb_tensor_get(y, i);
        sum += a, lo = fmin(lo, a), hi = fmax(hi, a);
    }
    assert_true(lo >= 0.1 && hi < 0.3 && hi > lo);
    tc_near(sum / 2000, 0.2, 0.01); /* E[α] = (l+u)/2 */
    y = nb_maxout(g, xs, 3);
    assert_int_equal(nb_tensor_dim(y, 1), 1);
    tc_near(nb_tensor_get(y, 0), 2, 0);
    tc_near(nb_tensor_get(y, 1), 6, 0);
    y = nb_softmax(g, xs, 1);
    double z = exp(-1) + exp(2) + exp(-3);
    tc_near(nb_tensor_get(y, 1), exp(2) / z, 1e-15);
    y = nb_log_softmax(g, xs, 1);
    tc_near(nb_tensor_get(y, 0), -1 - log(z), 1e-14);
    nb_graph_free(g);
}

/* ELU, softplus, sigmoid, log-softmax (and BCE on logits) at ±1000 in both
 * dtypes: finite values with the right limits, finite gradients. */
static void test_extreme_inputs(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_graph *g = nb_graph_new();
        const double pts[] = {-1000, -80, 80, 1000};
        nb_tensor *outs[5];
        nb_tensor *xs[5];
        for (int k = 0; k < 5; k++) {
            xs[k] = nb_tensor_set_requires_grad(nb_zeros(g, dt, 1, (int64_t[]){4}), true);
            for (int i = 0; i < 4; i++)
                nb_tensor_set(xs[k], i, pts[i]);
        }
        outs[0] = nb_elu(g, xs[0], 1);
        outs[1] = nb_softplus(g, xs[1]);
        outs[2] = nb_sigmoid(g, xs[2]);
        outs[3] = nb_log_softmax(g, xs[3], 0);
        outs[4] =
            nb_bce_with_logits(g, xs[4], nb_full(g, dt, 1, (int64_t[]){4}, 0.5), NB_REDUCE_SUM);
        for (int k = 0; k < 5; k++) {
            assert_non_null(outs[k]);
            nb_tensor *seed = nb_ones(g, dt, nb_tensor_rank(outs[k]), nb_tensor_shape(outs[k]));
            assert_int_equal(nb_backward_seed(g, outs[k], seed), NB_OK);
            for (int64_t i = 0; i < nb_tensor_size(outs[k]); i++)
                if (!isfinite(nb_tensor_get(outs[k], i)))
                    fail_msg("%s output %d, case %d not finite", nb_dtype_name(dt), (int)i, k);
            for (int i = 0; i < 4; i++)
                if (!isfinite(nb_tensor_get(nb_tensor_grad(xs[k]), i)))
                    fail_msg("%s gradient %d, case %d not finite", nb_dtype_name(dt), i, k);
        }
        tc_near(nb_tensor_get(outs[0], 0), -1, 0);                  /* elu(-1000) = -α */
        tc_near(nb_tensor_get(outs[0], 3), 1000, 0);                /* elu(1000) = x */
        tc_near(nb_tensor_get(nb_tensor_grad(xs[0]), 3), 1, 0);     /* d elu = 1 */
        tc_near(nb_tensor_get(outs[1], 0), 0, 1e-30);               /* softplus(-1000) */
        tc_near(nb_tensor_get(outs[1], 3), 1000, 0);                /* softplus(1000) */
        tc_near(nb_tensor_get(nb_tensor_grad(xs[1]), 3), 1, 0);     /* σ(1000) */
        tc_near(nb_tensor_get(nb_tensor_grad(xs[1]), 0), 0, 1e-30); /* σ(-1000) */
        tc_near(nb_tensor_get(outs[2], 0), 0, 1e-30);
        tc_near(nb_tensor_get(outs[2], 3), 1, 0);
        tc_near(nb_tensor_get(outs[3], 3), 0, 0); /* log p of the max */
        tc_near(nb_tensor_get(outs[3], 0), -2000, 1e-3);
        tc_near(nb_tensor_item(outs[4]), 500 + 40 + 40 + 500, 1e-3); /* Σ softplus(z) - z/2 */
        nb_graph_free(g);
    }
}

static void test_activation_names(void **state)
{
    (void)state;
    for (int k = 0; k < NB_ACT_COUNT; k++) {
        nb_act a = NB_ACT_COUNT;
        const char *name = nb_act_name((nb_act)k);
        assert_int_equal(nb_act_from_name(name, &a), NB_OK);
        assert_int_equal(a, k);
        assert_non_null(strstr(nb_act_names(), name));
    }
    nb_act a = NB_ACT_TANH;
    assert_int_equal(nb_act_from_name("ReLU", &a), NB_OK);
    assert_int_equal(a, NB_ACT_RELU);
    assert_int_equal(nb_act_from_name("leaky_relu", &a), NB_OK);
    assert_int_equal(a, NB_ACT_LEAKY_RELU);
    assert_int_equal(nb_act_from_name("logistic", &a), NB_OK);
    assert_int_equal(a, NB_ACT_SIGMOID);
    assert_int_equal(nb_act_from_name("hard-logistic", &a), NB_OK);
    assert_int_equal(a, NB_ACT_HARD_SIGMOID);
    a = NB_ACT_TANH;
    assert_int_equal(nb_act_from_name("relux", &a), NB_ERR_NOTFOUND);
    assert_int_equal(nb_act_from_name("", &a), NB_ERR_NOTFOUND);
    assert_int_equal(a, NB_ACT_TANH); /* untouched */
    assert_int_equal(nb_act_from_name(NULL, &a), NB_ERR_NULL);
    assert_int_equal(nb_act_from_name("relu", NULL), NB_ERR_NULL);
    assert_string_equal(nb_act_name((nb_act)99), "?");
    assert_string_equal(nb_act_name((nb_act)-1), "?");
    nb_init in = NB_INIT_ZEROS;
    assert_int_equal(nb_init_from_name("He_Uniform", &in), NB_OK);
    assert_int_equal(in, NB_INIT_HE_UNIFORM);
    assert_int_equal(nb_init_from_name("glorot", &in), NB_ERR_NOTFOUND);
    assert_string_equal(nb_init_name(NB_INIT_XAVIER_NORMAL), "xavier-normal");
}

/* nb_activate dispatches to the same functions, and checks its parameter. */
static void test_activate_by_kind(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F64, 2, (int64_t[]){3, 4}, -3, 3);
    nb_tensor *alpha = nb_full(g, NB_F64, 1, (int64_t[]){4}, 0.25);
    for (int k = 0; k < NB_ACT_COUNT; k++) {
        nb_act act = (nb_act)k;
        nb_tensor *param = nb_act_has_param(act) ? alpha : NULL;
        nb_tensor *y = nb_activate(g, act, x, NULL, param, NULL, false);
        if (!y)
            fail_msg("%s: %s", nb_act_name(act), nb_graph_error(g)->msg);
        nb_act_opts d = nb_act_defaults(act);
        nb_tensor *want = NULL;
        switch (act) {
        case NB_ACT_LEAKY_RELU: want = nb_leaky_relu(g, x, 0.01); break;
        case NB_ACT_ELU: want = nb_elu(g, x, 1); break;
        case NB_ACT_PRELU: want = nb_leaky_relu(g, x, 0.25); break;
        case NB_ACT_RRELU: want = nb_leaky_relu(g, x, (d.lower + d.upper) / 2); break;
        case NB_ACT_SWISH:
        case NB_ACT_SWISH_LEARNED:
            want = nb_mul(g, x, nb_sigmoid(g, nb_scale(g, x, k == NB_ACT_SWISH ? 1 : 0.25)));
            break;
        case NB_ACT_MAXOUT: want = nb_maxout(g, x, 2); break;
        case NB_ACT_IDENTITY: want = x; break;
        default: continue;
        }
        assert_int_equal(nb_tensor_size(y), nb_tensor_size(want));
        for (int64_t i = 0; i < nb_tensor_size(y); i++)
            tc_near(nb_tensor_get(y, i), nb_tensor_get(want, i), 1e-15);
    }
    assert_null(nb_activate(g, NB_ACT_PRELU, x, NULL, NULL, NULL, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    assert_non_null(strstr(nb_graph_error(g)->msg, "prelu needs its parameter"));
    nb_graph_clear_error(g);
    assert_null(nb_activate(g, NB_ACT_RELU, x, NULL, alpha, NULL, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    nb_graph_clear_error(g);
    assert_null(nb_activate(g, (nb_act)77, x, NULL, NULL, NULL, false));
    assert_non_null(strstr(nb_graph_error(g)->msg, "unknown activation 77"));
    nb_graph_clear_error(g);
    assert_null(nb_rrelu(g, x, 0.1, 0.3, NULL, true)); /* training needs an rng */
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);
    assert_null(nb_rrelu(g, x, 0.5, 0.3, NULL, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    nb_graph_clear_error(g);
    assert_null(nb_maxout(g, x, 3)); /* 4 does not split into 3s */
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "maxout: input [3,4]"));
    nb_graph_clear_error(g);
    assert_null(nb_softmax(g, x, 2));
    assert_non_null(strstr(nb_graph_error(g)->msg, "softmax: axis 2 out of range for [3,4]"));
    nb_graph_clear_error(g);
    assert_null(nb_sigmoid(g, NULL)); /* NULL input: quiet */
    assert_null(nb_softmax(g, NULL, 0));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* -------------------------------------------------------- initialisation */

static void moments(nb_tensor *t, double *mean, double *var, double *maxabs)
{
    double s = 0, s2 = 0, m = 0;
    int64_t n = nb_tensor_size(t);
    for (int64_t i = 0; i < n; i++) {
        double v = nb_tensor_get(t, i);
        s += v, s2 += v * v, m = fmax(m, fabs(v));
    }
    *mean = s / (double)n;
    *var = s2 / (double)n - *mean * *mean;
    *maxabs = m;
}

static void test_init(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 42);
    const int64_t fi = 200, fo = 300;
    nb_tensor *w = nb_zeros(g, NB_F64, 2, (int64_t[]){fi, fo});
    struct {
        nb_init kind;
        double var, bound; /* bound 0: normal */
    } cases[] = {
        {NB_INIT_XAVIER_UNIFORM, 2.0 / (fi + fo), sqrt(6.0 / (fi + fo))},
        {NB_INIT_XAVIER_NORMAL, 2.0 / (fi + fo), 0},
        {NB_INIT_HE_UNIFORM, 2.0 / fi, sqrt(6.0 / fi)},
        {NB_INIT_HE_NORMAL, 2.0 / fi, 0},
        {NB_INIT_LECUN_UNIFORM, 1.0 / fi, sqrt(3.0 / fi)},
        {NB_INIT_LECUN_NORMAL, 1.0 / fi, 0},
        {NB_INIT_SMALL_NORMAL, 1e-4, 0},
    };
    for (size_t k = 0; k < COUNT(cases); k++) {
        assert_int_equal(nb_init_tensor(w, cases[k].kind, 0, &rng), NB_OK);
        double mean, var, maxabs;
        moments(w, &mean, &var, &maxabs);
        /* 60000 draws: the sample variance is within a few percent */
        if (fabs(var / cases[k].var - 1) > 0.03 || fabs(mean) > 4 * sqrt(cases[k].var / 6e4))
            fail_msg("%s: mean %g variance %g, expected 0 and %g", nb_init_name(cases[k].kind),
                     mean, var, cases[k].var);
        if (cases[k].bound > 0) {
            assert_true(maxabs <= cases[k].bound);
            assert_true(maxabs > 0.99 * cases[k].bound);
        } else {
            assert_true(maxabs > 3 * sqrt(cases[k].var)); /* a normal, not a uniform */
        }
    }
    /* small random with an explicit σ */
    assert_int_equal(nb_init_tensor(w, NB_INIT_SMALL_NORMAL, 0.5, &rng), NB_OK);
    double mean, var, maxabs;
    moments(w, &mean, &var, &maxabs);
    tc_near(var, 0.25, 0.01);
    /* constants */
    assert_int_equal(nb_init_tensor(w, NB_INIT_CONSTANT, 0.75, NULL), NB_OK);
    moments(w, &mean, &var, &maxabs);
    tc_near(mean, 0.75, 0);
    tc_near(maxabs, 0.75, 0);
    assert_int_equal(nb_init_tensor(w, NB_INIT_ZEROS, 0, NULL), NB_OK);
    moments(w, &mean, &var, &maxabs);
    tc_near(maxabs, 0, 0);
    /* seeded: same seed same values, another seed other values */
    nb_tensor *a = nb_zeros(g, NB_F32, 2, (int64_t[]){5, 7});
    nb_tensor *b = nb_zeros(g, NB_F32, 2, (int64_t[]){5, 7});
    nb_rng r1, r2;
    nb_rng_seed(&r1, 7);
    nb_rng_seed(&r2, 7);
    nb_init_tensor(a, NB_INIT_HE_NORMAL, 0, &r1);
    nb_init_tensor(b, NB_INIT_HE_NORMAL, 0, &r2);
    assert_memory_equal(nb_tensor_data(a), nb_tensor_data(b), 35 * sizeof(float));
    nb_rng_seed(&r2, 8);
    nb_init_tensor(b, NB_INIT_HE_NORMAL, 0, &r2);
    assert_memory_not_equal(nb_tensor_data(a), nb_tensor_data(b), 35 * sizeof(float));
    /* fans of rank 3: fan_in = 2·3, fan_out = 4 */
    nb_tensor *r3 = nb_zeros(g, NB_F64, 3, (int64_t[]){2, 3, 4});
    nb_init_tensor(r3, NB_INIT_HE_UNIFORM, 0, &rng);
    moments(r3, &mean, &var, &maxabs);
    assert_true(maxabs <= 1.0); /* sqrt(6/6) */
    /* errors */
    assert_int_equal(nb_init_tensor(w, NB_INIT_HE_UNIFORM, 0, NULL), NB_ERR_NULL);
    assert_int_equal(nb_init_tensor(NULL, NB_INIT_ZEROS, 0, &rng), NB_ERR_NULL);
    assert_int_equal(nb_init_tensor(w, NB_INIT_AUTO, 0, &rng), NB_ERR_ARG);
    assert_int_equal(nb_init_tensor(w, (nb_init)99, 0, &rng), NB_ERR_ARG);
    assert_int_equal(nb_init_tensor_fans(w, NB_INIT_HE_NORMAL, 0, 0, 3, &rng), NB_ERR_ARG);
    nb_graph_free(g);
}

/* ------------------------------------------------------------------ losses */

typedef struct loss_ctx {
    nb_reduction r;
    const int64_t *labels;
    double delta; /* huber */
} loss_ctx;

static nb_tensor *f_mse(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_mse_loss(g, in[0], in[1], ((loss_ctx *)ctx)->r);
}
static nb_tensor *f_l1(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_l1_loss(g, in[0], in[1], ((loss_ctx *)ctx)->r);
}
static nb_tensor *f_huber(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return nb_huber_loss(g, in[0], in[1], c->delta, c->r);
}

/* The gradient of a loss with respect to its prediction, recorded
 * (create_graph), as a function of prediction and target: checking it
 * checks the loss's second derivatives. The checker also calls it with
 * recording off and on inputs without gradients: both are turned on here
 * for the inner gradient. */
typedef struct grad_ctx {
    tc_fn loss;
    loss_ctx c;
} grad_ctx;

static nb_tensor *f_loss_grad(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    grad_ctx *gc = ctx;
    bool recording = nb_graph_recording(g);
    nb_graph_set_recording(g, true);
    nb_tensor *p = in[0];
    if (!nb_tensor_requires_grad(p))
        nb_tensor_set_requires_grad(p, true);
    nb_tensor *loss = gc->loss(g, in, &gc->c), *dp = NULL;
    if (loss && nb_grad(g, loss, NULL, &p, 1, &dp, true) != NB_OK)
        dp = NULL;
    nb_graph_set_recording(g, recording);
    return dp;
}

static nb_tensor *f_bce(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_bce_loss(g, in[0], in[1], ((loss_ctx *)ctx)->r);
}
static nb_tensor *f_bce_logits(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_bce_with_logits(g, in[0], in[1], ((loss_ctx *)ctx)->r);
}
static nb_tensor *f_ce(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    loss_ctx *c = ctx;
    return nb_softmax_cross_entropy(g, in[0], c->labels, nb_tensor_dim(in[0], 0), c->r);
}
static nb_tensor *f_ce_soft(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_softmax_cross_entropy_soft(g, in[0], in[1], ((loss_ctx *)ctx)->r);
}
static nb_tensor *f_penalties(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_add(g, nb_l2_penalty(g, in, 2, 0.3), nb_l1_penalty(g, in + 1, 2, 0.7));
}

static void test_loss_grads(void **state)
{
    (void)state;
    const int64_t labels[] = {2, 0, 3, 3, 1};
    for (int r = 0; r < 2; r++) {
        loss_ctx c = {(nb_reduction)r, labels, 0};
        tc_shape two[] = {{2, {5, 4}}, {2, {5, 4}}};
        tc_check("mse", f_mse, &c, 2, two, &(tc_opts){.seed = 50 + r});
        tc_check("l1", f_l1, &c, 2, two, &(tc_opts){.seed = 62 + r});
        for (int d = 0; d < 3; d++) { /* δ below, among and above the differences */
            loss_ctx hc = {(nb_reduction)r, NULL, (double[]){0.3, 1, 10}[d]};
            tc_check("huber", f_huber, &hc, 2, two, &(tc_opts){.seed = 64 + 2 * d + r});
        }
        tc_check("bce", f_bce, &c, 2, two, &(tc_opts){.lo = 0.05, .hi = 0.95, .seed = 52 + r});
        tc_check("bce logits", f_bce_logits, &c, 2, two,
                 &(tc_opts){.lo = -4, .hi = 4, .seed = 54 + r});
        tc_check("softmax ce", f_ce, &c, 1, two, &(tc_opts){.lo = -4, .hi = 4, .seed = 56 + r});
        tc_check("softmax ce soft", f_ce_soft, &c, 2, two, &(tc_opts){.lo = 0, .hi = 1});
    }
    tc_shape ps[] = {{2, {3, 4}}, {1, {5}}, {2, {2, 2}}};
    tc_check("l2 + l1 penalties", f_penalties, NULL, 3, ps, &(tc_opts){.seed = 60});
}

/* Second derivatives of the regression losses, through the recorded
 * gradient: reverse and forward mode of d(loss)/d(pred) against central
 * differences (MSE: 2/n·I, Huber: 1/n inside δ, 0 outside); L1's gradient
 * sign(d)/n is a constant of the graph (its second derivative is 0). */
static void test_loss_second_order(void **state)
{
    (void)state;
    tc_shape two[] = {{2, {4, 3}}, {2, {4, 3}}};
    for (int r = 0; r < 2; r++) {
        grad_ctx mse = {f_mse, {(nb_reduction)r, NULL, 0}};
        grad_ctx huber = {f_huber, {(nb_reduction)r, NULL, 0.8}};
        tc_check("d mse / d pred", f_loss_grad, &mse, 2, two, &(tc_opts){.seed = 70 + r});
        tc_check("d huber / d pred", f_loss_grad, &huber, 2, two, &(tc_opts){.seed = 74 + r});
    }
    /* the Huber Hessian is diagonal: 1/n where |d| < δ, 0 elsewhere */
    nb_graph *g = nb_graph_new();
    nb_tensor *p = nb_tensor_set_requires_grad(
        nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, (double[]){0.1, -0.5, 2, -3}), true);
    nb_tensor *t = nb_zeros(g, NB_F64, 1, (int64_t[]){4});
    nb_tensor *dp = NULL, *h = NULL;
    assert_int_equal(nb_grad(g, nb_huber_loss(g, p, t, 1, NB_REDUCE_MEAN), NULL, &p, 1, &dp, true),
                     NB_OK);
    const double want_dp[4] = {0.1 / 4, -0.5 / 4, 1.0 / 4, -1.0 / 4};
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(dp, i), want_dp[i], 1e-15);
    assert_int_equal(nb_grad(g, nb_sum(g, dp, NULL, 0, false), NULL, &p, 1, &h, false), NB_OK);
    const double want_h[4] = {0.25, 0.25, 0, 0};
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(h, i), want_h[i], 1e-15);
    assert_int_equal(nb_grad(g, nb_l1_loss(g, p, t, NB_REDUCE_SUM), NULL, &p, 1, &dp, true), NB_OK);
    assert_false(nb_tensor_requires_grad(dp)); /* nothing to differentiate again */
    const double want_l1[4] = {1, -1, 1, -1};
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(dp, i), want_l1[i], 0);
    nb_graph_free(g);
}

static void test_loss_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    const double z[] = {1, 2, 0.5, -1, 0, 3};
    const int64_t labels[] = {1, 2};
    nb_tensor *logits = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 3}, z);
    double l0 = -(2 - log(exp(1) + exp(2) + exp(0.5)));
    double l1 = -(3 - log(exp(-1) + exp(0) + exp(3)));
    nb_tensor *ce = nb_softmax_cross_entropy(g, logits, labels, 2, NB_REDUCE_MEAN);
    tc_near(nb_tensor_item(ce), (l0 + l1) / 2, 1e-14);
    ce = nb_softmax_cross_entropy(g, logits, labels, 2, NB_REDUCE_SUM);
    tc_near(nb_tensor_item(ce), l0 + l1, 1e-14);
    /* one-hot targets give the same as integer labels */
    nb_tensor *onehot = nb_one_hot(g, NB_F64, labels, 2, 3);
    tc_near(nb_tensor_item(nb_softmax_cross_entropy_soft(g, logits, onehot, NB_REDUCE_SUM)),
            l0 + l1, 1e-14);
    /* mse: mean over every element */
    nb_tensor *p = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, (double[]){1, 2, 3, 4});
    nb_tensor *t = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, (double[]){0, 2, 5, 4});
    tc_near(nb_tensor_item(nb_mse_loss(g, p, t, NB_REDUCE_MEAN)), 5.0 / 4, 1e-15);
    tc_near(nb_tensor_item(nb_mse_loss(g, p, t, NB_REDUCE_SUM)), 5.0, 1e-15);
    /* l1: mean absolute error */
    tc_near(nb_tensor_item(nb_l1_loss(g, p, t, NB_REDUCE_MEAN)), 3.0 / 4, 1e-15);
    tc_near(nb_tensor_item(nb_l1_loss(g, p, t, NB_REDUCE_SUM)), 3.0, 1e-15);
    /* huber (PyTorch's HuberLoss): 0.5·d² for |d| < δ, δ(|d| − δ/2) beyond;
     * d = (1, 0, -2, 0), and at |d| = δ both branches give δ²/2 */
    tc_near(nb_tensor_item(nb_huber_loss(g, p, t, 1, NB_REDUCE_SUM)), 0.5 + 0 + 1.5 + 0, 1e-15);
    tc_near(nb_tensor_item(nb_huber_loss(g, p, t, 1.5, NB_REDUCE_MEAN)),
            (0.5 + 1.5 * (2 - 0.75)) / 4, 1e-15);
    tc_near(nb_tensor_item(nb_huber_loss(g, p, t, 2, NB_REDUCE_SUM)), 0.5 + 2, 1e-15);
    tc_near(nb_tensor_item(nb_huber_loss(g, p, t, 100, NB_REDUCE_MEAN)),
            nb_tensor_item(nb_mse_loss(g, p, t, NB_REDUCE_MEAN)) / 2, 1e-15);
    /* bce on probabilities equals bce on logits through the sigmoid */
    nb_tensor *zz = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, (double[]){-3, -0.2, 0.7, 5});
    nb_tensor *tt = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, (double[]){0, 1, 1, 0.3});
    double b1 = nb_tensor_item(nb_bce_loss(g, nb_sigmoid(g, zz), tt, NB_REDUCE_MEAN));
    double b2 = nb_tensor_item(nb_bce_with_logits(g, zz, tt, NB_REDUCE_MEAN));
    double want = 0;
    for (int i = 0; i < 4; i++) {
        double s = ref_sigmoid(nb_tensor_get(zz, i)), y = nb_tensor_get(tt, i);
        want -= (y * log(s) + (1 - y) * log(1 - s)) / 4;
    }
    tc_near(b1, want, 1e-12);
    tc_near(b2, want, 1e-12);
    /* probabilities 0 and 1 are clamped: finite loss, finite gradient */
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_tensor *pe = nb_tensor_set_requires_grad(nb_zeros(g, dt, 1, (int64_t[]){2}), true);
        nb_tensor_set(pe, 1, 1);
        nb_tensor *te = nb_zeros(g, dt, 1, (int64_t[]){2});
        nb_tensor_set(te, 0, 1); /* both maximally wrong */
        nb_tensor *l = nb_bce_loss(g, pe, te, NB_REDUCE_MEAN);
        assert_int_equal(nb_backward(g, l), NB_OK);
        double v = nb_tensor_item(l);
        assert_true(isfinite(v) && v > 10);
        assert_true(isfinite(nb_tensor_get(nb_tensor_grad(pe), 0)));
        assert_true(isfinite(nb_tensor_get(nb_tensor_grad(pe), 1)));
    }
    /* penalties */
    nb_tensor *w = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 2}, (double[]){1, -2, 3, 0});
    tc_near(nb_tensor_item(nb_l2_penalty(g, &w, 1, 0.1)), 0.5 * 0.1 * 14, 1e-15);
    tc_near(nb_tensor_item(nb_l1_penalty(g, &w, 1, 0.1)), 0.1 * 6, 1e-15);
    /* accuracy: first arg-max on ties */
    nb_tensor *acc_logits =
        nb_tensor_from(g, NB_F64, 2, (int64_t[]){4, 2}, (double[]){1, 0, 0, 1, 2, 2, -1, -3});
    double acc = -1;
    assert_int_equal(nb_accuracy(acc_logits, (int64_t[]){0, 1, 1, 0}, 4, &acc), NB_OK);
    tc_near(acc, 0.75, 0);
    assert_int_equal(nb_accuracy(acc_logits, (int64_t[]){0, 1, 1}, 3, &acc), NB_ERR_SHAPE);
    assert_int_equal(nb_accuracy(NULL, (int64_t[]){0}, 1, &acc), NB_ERR_NULL);
    assert_int_equal(nb_accuracy(p, (int64_t[]){0, 1, 1, 0}, 4, &acc), NB_ERR_SHAPE);
    nb_graph_free(g);
}

static void test_loss_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *logits = nb_zeros(g, NB_F64, 2, (int64_t[]){2, 3});
    assert_null(nb_softmax_cross_entropy(g, logits, (int64_t[]){0, 3}, 2, NB_REDUCE_MEAN));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    assert_non_null(strstr(nb_graph_error(g)->msg, "label 3 of sample 1 is outside [0, 3)"));
    nb_graph_clear_error(g);
    assert_null(nb_softmax_cross_entropy(g, logits, (int64_t[]){0, 1, 2}, 3, NB_REDUCE_MEAN));
    assert_non_null(strstr(nb_graph_error(g)->msg, "logits [2,3] but 3 labels"));
    nb_graph_clear_error(g);
    assert_null(nb_softmax_cross_entropy(g, logits, NULL, 2, NB_REDUCE_MEAN));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);
    nb_tensor *v = nb_zeros(g, NB_F64, 1, (int64_t[]){3});
    assert_null(nb_softmax_cross_entropy(g, v, (int64_t[]){0, 1, 2}, 3, NB_REDUCE_MEAN));
    assert_non_null(strstr(nb_graph_error(g)->msg, "logits [3] must be [N, C]"));
    nb_graph_clear_error(g);
    assert_null(nb_mse_loss(g, logits, v, NB_REDUCE_MEAN));
    assert_non_null(
        strstr(nb_graph_error(g)->msg, "mse_loss: prediction f64 [2,3] and target f64 [3]"));
    nb_graph_clear_error(g);
    nb_tensor *f = nb_zeros(g, NB_F32, 2, (int64_t[]){2, 3});
    assert_null(nb_bce_with_logits(g, logits, f, NB_REDUCE_MEAN));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    nb_graph_clear_error(g);
    /* the regression losses: shapes named, δ checked */
    nb_tensor *w1 = nb_zeros(g, NB_F64, 2, (int64_t[]){2, 1});
    assert_null(nb_l1_loss(g, logits, w1, NB_REDUCE_MEAN));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg,
                           "l1_loss: prediction f64 [2,3] and target f64 [2,1] differ"));
    nb_graph_clear_error(g);
    assert_null(nb_huber_loss(g, logits, w1, 1, NB_REDUCE_MEAN));
    assert_non_null(strstr(nb_graph_error(g)->msg,
                           "huber_loss: prediction f64 [2,3] and target f64 [2,1] differ"));
    nb_graph_clear_error(g);
    assert_null(nb_huber_loss(g, logits, f, 1, NB_REDUCE_MEAN));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    nb_graph_clear_error(g);
    const double deltas[] = {0, -1, NAN, INFINITY};
    for (int i = 0; i < 4; i++) {
        assert_null(nb_huber_loss(g, logits, logits, deltas[i], NB_REDUCE_MEAN));
        assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
        assert_non_null(strstr(nb_graph_error(g)->msg, "huber_loss: delta = "));
        assert_non_null(strstr(nb_graph_error(g)->msg, "it must be finite and > 0"));
        nb_graph_clear_error(g);
    }
    assert_null(nb_l1_loss(g, logits, logits, (nb_reduction)5));
    assert_non_null(strstr(nb_graph_error(g)->msg, "l1_loss: unknown reduction 5"));
    nb_graph_clear_error(g);
    assert_null(nb_l1_loss(g, NULL, logits, NB_REDUCE_MEAN)); /* quiet */
    assert_null(nb_huber_loss(g, logits, NULL, 1, NB_REDUCE_MEAN));
    assert_int_equal(nb_graph_status(g), NB_OK);
    assert_null(nb_mse_loss(g, logits, logits, (nb_reduction)5));
    assert_non_null(strstr(nb_graph_error(g)->msg, "unknown reduction 5"));
    nb_graph_clear_error(g);
    assert_null(nb_l2_penalty(g, NULL, 1, 0.1));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);
    assert_null(nb_l1_penalty(g, &v, 0, 0.1));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    nb_graph_clear_error(g);
    assert_null(nb_mse_loss(g, NULL, logits, NB_REDUCE_MEAN)); /* quiet */
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* ------------------------------------------------------------------ layers */

/* A loss of the layer's output: <v, forward(x)> with v fixed. */
static double layer_objective(nb_layer *l, nb_graph *g, nb_tensor *x, nb_tensor *v, bool training,
                              nb_rng *rng, uint64_t seed, nb_tensor **out)
{
    if (rng)
        nb_rng_seed(rng, seed);
    if (!out) /* evaluation: a fresh copy of the values in g */
        x = nb_tensor_from(g, NB_F64, nb_tensor_rank(x), nb_tensor_shape(x), nb_tensor_data(x));
    v = nb_tensor_from(g, NB_F64, nb_tensor_rank(v), nb_tensor_shape(v), nb_tensor_data(v));
    nb_tensor *y = nb_layer_forward(g, l, x, training);
    if (!y)
        fail_msg("%s: %s", nb_layer_name(l), nb_graph_error(g)->msg);
    nb_tensor *obj = nb_sum(g, nb_mul(g, y, v), NULL, 0, false);
    if (out)
        *out = obj;
    return nb_tensor_item(obj);
}

/* Gradcheck of a layer in f64: the gradient of <v, layer(x)> with respect
 * to x and to every trainable parameter of m, against central differences.
 * @p rng, when given, is re-seeded before every forward pass so random
 * masks are the same each time. */
static void check_layer(const char *label, nb_layer *l, nb_model *m, int64_t n, int64_t f_in,
                        bool training, nb_rng *rng)
{
    nb_rng data;
    nb_rng_seed(&data, 1234);
    nb_graph *keep = nb_graph_new();
    nb_tensor *xv = nb_rand_uniform(keep, &data, NB_F64, 2, (int64_t[]){n, f_in}, -2, 2);
    nb_graph *g = nb_graph_new();
    nb_tensor *y0 = nb_layer_forward(
        g, l, nb_tensor_from(g, NB_F64, 2, (int64_t[]){n, f_in}, nb_tensor_data(xv)), training);
    assert_non_null(y0);
    nb_tensor *v =
        nb_rand_uniform(keep, &data, NB_F64, nb_tensor_rank(y0), nb_tensor_shape(y0), -1, 1);
    nb_graph_reset(g);

    nb_model_zero_grad(m);
    nb_tensor *x = nb_tensor_set_requires_grad(
        nb_tensor_from(g, NB_F64, 2, (int64_t[]){n, f_in}, nb_tensor_data(xv)), true);
    nb_tensor *obj = NULL;
    layer_objective(l, g, x, v, training, rng, 77, &obj);
    assert_int_equal(nb_backward(g, obj), NB_OK);
    nb_tensor *gx = nb_tensor_grad(x);

    nb_graph *ge = nb_graph_new();
    nb_graph_set_recording(ge, false);
    /* the input */
    for (int64_t e = 0; e < nb_tensor_size(x); e++) {
        double x0 = nb_tensor_get(xv, e), h = 6e-6 * fmax(1, fabs(x0));
        nb_tensor_set(xv, e, x0 + h);
        double fp = layer_objective(l, ge, xv, v, training, rng, 77, NULL);
        nb_graph_reset(ge);
        nb_graph_set_recording(ge, false);
        nb_tensor_set(xv, e, x0 - h);
        double fm = layer_objective(l, ge, xv, v, training, rng, 77, NULL);
        nb_graph_reset(ge);
        nb_graph_set_recording(ge, false);
        nb_tensor_set(xv, e, x0);
        double num = (fp - fm) / (2 * h), ana = nb_tensor_get(gx, e);
        if (fabs(num - ana) > 1e-6 * fmax(1, fabs(num)))
            fail_msg("%s: input element %lld: reverse %.12g, central %.12g", label, (long long)e,
                     ana, num);
    }
    /* every trainable parameter */
    int n_params = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (!nb_tensor_requires_grad(p))
            continue;
        n_params++;
        for (int64_t e = 0; e < nb_tensor_size(p); e++) {
            double p0 = nb_tensor_get(p, e), h = 6e-6 * fmax(1, fabs(p0));
            nb_tensor_set(p, e, p0 + h);
            double fp = layer_objective(l, ge, xv, v, training, rng, 77, NULL);
            nb_graph_reset(ge);
            nb_graph_set_recording(ge, false);
            nb_tensor_set(p, e, p0 - h);
            double fm = layer_objective(l, ge, xv, v, training, rng, 77, NULL);
            nb_graph_reset(ge);
            nb_graph_set_recording(ge, false);
            nb_tensor_set(p, e, p0);
            double num = (fp - fm) / (2 * h), ana = nb_tensor_get(nb_tensor_grad(p), e);
            if (fabs(num - ana) > 1e-6 * fmax(1, fabs(num)))
                fail_msg("%s: %s element %lld: reverse %.12g, central %.12g", label,
                         nb_tensor_name(p), (long long)e, ana, num);
        }
    }
    assert_true(n_params > 0 || nb_model_count(m) == 0);
    nb_graph_free(ge);
    nb_graph_free(g);
    nb_graph_free(keep);
}

static void test_layer_grads(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nb_layer_opts o = {.dtype = NB_F64, .rng = &rng};

    nb_model *m = nb_model_new();
    nb_layer *l = NULL;
    assert_int_equal(nb_linear_new(m, "fc1", 4, 3, &o, &l), NB_OK);
    nb_init_tensor(nb_model_get(m, "fc1.bias"), NB_INIT_SMALL_NORMAL, 0.5, &rng);
    check_layer("linear", l, m, 5, 4, true, NULL);
    nb_layer_free(l);
    nb_model_free(m);

    m = nb_model_new();
    assert_int_equal(nb_maxout_new(m, "mo", 4, 3, 2, &o, &l), NB_OK);
    check_layer("maxout layer", l, m, 5, 4, true, NULL);
    nb_layer_free(l);
    nb_model_free(m);

    nb_act acts[] = {NB_ACT_PRELU, NB_ACT_SWISH_LEARNED, NB_ACT_TANH, NB_ACT_RRELU};
    for (size_t k = 0; k < COUNT(acts); k++) {
        m = nb_model_new();
        assert_int_equal(nb_act_layer_new(m, "act", acts[k], NULL, 4, &o, &l), NB_OK);
        check_layer(nb_act_name(acts[k]), l, m, 3, 4, true, &rng);
        nb_layer_free(l);
        nb_model_free(m);
    }

    m = nb_model_new();
    assert_int_equal(nb_dropout_new("drop", 0.4, &o, &l), NB_OK);
    check_layer("dropout", l, m, 6, 5, true, &rng);
    nb_layer_free(l);
    nb_model_free(m);

    /* batch norm in training mode (gradients through the batch statistics) */
    m = nb_model_new();
    assert_int_equal(nb_batch_norm_new(m, "bn", 3, 1e-5, 0.1, &o, &l), NB_OK);
    nb_init_tensor(nb_model_get(m, "bn.weight"), NB_INIT_SMALL_NORMAL, 1, &rng);
    nb_init_tensor(nb_model_get(m, "bn.bias"), NB_INIT_SMALL_NORMAL, 1, &rng);
    check_layer("batch norm (training)", l, m, 6, 3, true, NULL);
    check_layer("batch norm (evaluation)", l, m, 6, 3, false, NULL);
    nb_layer_free(l);
    nb_model_free(m);

    /* a whole MLP with batch norm, PReLU and dropout */
    m = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer = o;
    mo.act = NB_ACT_PRELU;
    mo.batch_norm = true;
    mo.dropout = 0.3;
    assert_int_equal(nb_mlp_new(m, "net", (int64_t[]){3, 5, 4, 2}, 4, &mo, &l), NB_OK);
    check_layer("mlp", l, m, 6, 3, true, &rng);
    nb_layer_free(l);
    nb_model_free(m);
}

static void test_dropout(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    nb_layer_opts o = {.rng = &rng};
    nb_layer *d = NULL;
    assert_int_equal(nb_dropout_new("drop", 0.3, &o, &d), NB_OK);
    assert_int_equal(nb_layer_get_kind(d), NB_LAYER_DROPOUT);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F32, 2, (int64_t[]){400, 250}, 0.5, 1.5);
    nb_tensor *y = nb_layer_forward(g, d, x, true);
    assert_non_null(y);
    double sx = 0, sy = 0;
    int64_t zeros = 0, n = nb_tensor_size(x);
    for (int64_t i = 0; i < n; i++) {
        double xi = nb_tensor_get(x, i), yi = nb_tensor_get(y, i);
        sx += xi, sy += yi;
        if (yi == 0)
            zeros++;
        else if (fabs(yi - xi / 0.7) > 1e-5) /* kept elements are scaled by 1/(1-p) */
            fail_msg("element %lld: %g kept as %g", (long long)i, xi, yi);
    }
    tc_near((double)zeros / (double)n, 0.3, 0.01);
    tc_near(sy / sx, 1, 0.01); /* the mean is preserved */
    /* evaluation is the identity */
    nb_tensor *e = nb_layer_forward(g, d, x, false);
    assert_ptr_equal(e, x);
    nb_graph_free(g);
    nb_layer_free(d);
    assert_int_equal(nb_dropout_new("drop", 1.0, &o, &d), NB_ERR_ARG);
    assert_int_equal(nb_dropout_new("drop", -0.1, &o, &d), NB_ERR_ARG);
    assert_int_equal(nb_dropout_new("drop", 0.5, NULL, &d), NB_ERR_NULL);
    assert_null(d);
}

static void test_batch_norm(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_layer *bn = NULL;
    assert_int_equal(
        nb_batch_norm_new(m, "bn1", 2, 1e-5, 0.1, &(nb_layer_opts){.dtype = NB_F64}, &bn), NB_OK);
    nb_tensor *rm = nb_model_get(m, "bn1.running_mean");
    nb_tensor *rv = nb_model_get(m, "bn1.running_var");
    assert_non_null(rm);
    assert_non_null(rv);
    assert_false(nb_tensor_requires_grad(rm));
    assert_false(nb_tensor_requires_grad(rv));
    assert_true(nb_tensor_requires_grad(nb_model_get(m, "bn1.weight")));
    assert_int_equal(nb_model_count(m), 4);

    nb_graph *g = nb_graph_new();
    /* feature 0: 1,2,3,6 (mean 3, biased var 3.5); feature 1: 10 each */
    const double xd[] = {1, 10, 2, 10, 3, 10, 6, 10};
    nb_tensor *x = nb_tensor_from(g, NB_F64, 2, (int64_t[]){4, 2}, xd);
    nb_tensor *y = nb_layer_forward(g, bn, x, true);
    assert_non_null(y);
    for (int i = 0; i < 4; i++) {
        tc_near(nb_tensor_get(y, 2 * i), (xd[2 * i] - 3) / sqrt(3.5 + 1e-5), 1e-12);
        tc_near(nb_tensor_get(y, 2 * i + 1), 0, 1e-12);
    }
    /* running statistics moved by momentum 0.1 (unbiased variance 14/3) */
    tc_near(nb_tensor_get(rm, 0), 0.3, 1e-15);
    tc_near(nb_tensor_get(rm, 1), 1.0, 1e-15);
    tc_near(nb_tensor_get(rv, 0), 0.9 + 0.1 * 14.0 / 3, 1e-15);
    tc_near(nb_tensor_get(rv, 1), 0.9, 1e-15);
    /* evaluation uses them (and learned γ, β) */
    nb_tensor_set(nb_model_get(m, "bn1.weight"), 0, 2);
    nb_tensor_set(nb_model_get(m, "bn1.bias"), 1, -1);
    nb_tensor *ye = nb_layer_forward(g, bn, x, false);
    for (int i = 0; i < 4; i++) {
        tc_near(nb_tensor_get(ye, 2 * i), 2 * (xd[2 * i] - 0.3) / sqrt(0.9 + 1.4 / 3 + 1e-5),
                1e-12);
        tc_near(nb_tensor_get(ye, 2 * i + 1), (10 - 1.0) / sqrt(0.9 + 1e-5) - 1, 1e-12);
    }
    /* an evaluation pass does not move the statistics; backward leaves buffers alone */
    assert_int_equal(nb_backward(g, nb_sum(g, ye, NULL, 0, false)), NB_OK);
    tc_near(nb_tensor_get(rm, 0), 0.3, 1e-15);
    tc_near(nb_tensor_get(nb_tensor_grad(rm), 0), 0, 0);
    assert_true(nb_tensor_get(nb_tensor_grad(nb_model_get(m, "bn1.bias")), 0) != 0);
    /* many training steps on one distribution converge to its statistics */
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    for (int step = 0; step < 200; step++) {
        nb_graph_reset(g);
        nb_tensor *xb = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){64, 2}, 5, 2);
        assert_non_null(nb_layer_forward(g, bn, xb, true));
    }
    tc_near(nb_tensor_get(rm, 0), 5, 0.3);
    tc_near(nb_tensor_get(rv, 1), 4, 0.6);
    /* errors */
    nb_graph_reset(g);
    nb_tensor *one_row = nb_zeros(g, NB_F64, 2, (int64_t[]){1, 2});
    assert_null(nb_layer_forward(g, bn, one_row, true));
    assert_non_null(
        strstr(nb_graph_error(g)->msg, "bn1: training mode needs a batch of at least 2"));
    assert_non_null(nb_layer_forward(g, bn, one_row, false)); /* fine in evaluation */
    nb_graph_clear_error(g);
    nb_tensor *wide = nb_zeros(g, NB_F64, 2, (int64_t[]){4, 3});
    assert_null(nb_layer_forward(g, bn, wide, true));
    assert_non_null(strstr(nb_graph_error(g)->msg, "bn1: input [4,3] must be [N, 2]"));
    nb_graph_free(g);
    nb_layer *bad = NULL;
    assert_int_equal(nb_batch_norm_new(m, "bn2", 2, 0, 0.1, NULL, &bad), NB_ERR_ARG);
    assert_int_equal(nb_batch_norm_new(m, "bn2", 2, 1e-5, 1.5, NULL, &bad), NB_ERR_ARG);
    assert_int_equal(nb_batch_norm_new(m, "bn1", 2, 1e-5, 0.1, NULL, &bad), NB_ERR_EXISTS);
    assert_null(bad);
    assert_int_equal(nb_model_count(m), 4);
    nb_layer_free(bn);
    nb_model_free(m);
}

static void test_mlp_structure(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, (int64_t[]){64, 128, 64, 10}, 4, &o, &net), NB_OK);
    const char *names[] = {"fc1.weight", "fc1.bias",   "fc2.weight",
                           "fc2.bias",   "fc3.weight", "fc3.bias"};
    nb_tensor *p = nb_model_next(m, NULL);
    for (size_t k = 0; k < COUNT(names); k++, p = nb_model_next(m, p)) {
        assert_non_null(p);
        assert_string_equal(nb_tensor_name(p), names[k]);
        assert_int_equal(nb_tensor_dtype(p), NB_F32);
    }
    assert_null(p);
    assert_int_equal(nb_model_numel(m), 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
    assert_int_equal(nb_tensor_dim(nb_model_get(m, "fc2.weight"), 0), 128);
    assert_int_equal(nb_tensor_dim(nb_model_get(m, "fc2.weight"), 1), 64);
    /* fc, act, fc, act, fc */
    assert_int_equal(nb_layer_count(net), 5);
    assert_string_equal(nb_layer_name(nb_layer_at(net, 1)), "act1");
    assert_int_equal(nb_layer_get_kind(nb_layer_find(net, "fc3")), NB_LAYER_LINEAR);
    assert_null(nb_layer_at(net, 5));
    /* He-uniform by default for ReLU: bound sqrt(6/64) */
    double mean, var, maxabs;
    moments(nb_model_get(m, "fc1.weight"), &mean, &var, &maxabs);
    assert_true(maxabs <= sqrt(6.0 / 64) && maxabs > 0.9 * sqrt(6.0 / 64));
    moments(nb_model_get(m, "fc1.bias"), &mean, &var, &maxabs);
    tc_near(maxabs, 0, 0);

    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F32, 2, (int64_t[]){7, 64}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, net, x, true);
    assert_non_null(y);
    assert_int_equal(nb_tensor_dim(y, 0), 7);
    assert_int_equal(nb_tensor_dim(y, 1), 10);
    /* the same network by hand */
    nb_tensor *h = x;
    for (int i = 1; i <= 3; i++) {
        char wn[32], bname[32];
        snprintf(wn, sizeof wn, "fc%d.weight", i);
        snprintf(bname, sizeof bname, "fc%d.bias", i);
        h = nb_add(g, nb_matmul(g, h, nb_model_get(m, wn), false, false), nb_model_get(m, bname));
        if (i < 3)
            h = nb_maximum(g, h, nb_scalar(g, NB_F32, 0));
    }
    for (int64_t i = 0; i < nb_tensor_size(y); i++)
        tc_near(nb_tensor_get(y, i), nb_tensor_get(h, i), 1e-6);
    nb_graph_free(g);
    nb_layer_free(net);

    /* a second network in the same model, prefixed, with every option */
    o.act = NB_ACT_MAXOUT;
    nb_act_opts ao = nb_act_defaults(NB_ACT_MAXOUT);
    ao.pieces = 3;
    o.act_opts = &ao;
    o.batch_norm = true;
    o.dropout = 0.5;
    o.out_act = NB_ACT_SIGMOID;
    assert_int_equal(nb_mlp_new(m, "enc", (int64_t[]){4, 6, 1}, 3, &o, &net), NB_OK);
    assert_non_null(nb_model_get(m, "enc.bn1.running_var"));
    assert_int_equal(nb_tensor_dim(nb_model_get(m, "enc.fc1.weight"), 1), 18);
    /* fc1 (maxout), bn1, drop1, fc2, act2 */
    assert_int_equal(nb_layer_count(net), 5);
    assert_int_equal(nb_layer_get_kind(nb_layer_at(net, 0)), NB_LAYER_MAXOUT);
    assert_string_equal(nb_layer_name(nb_layer_at(net, 2)), "enc.drop1");
    assert_string_equal(nb_layer_name(nb_layer_at(net, 4)), "enc.act2");
    /* the same names again are taken */
    nb_layer *again = NULL;
    assert_int_equal(nb_mlp_new(m, "enc", (int64_t[]){4, 6, 1}, 3, &o, &again), NB_ERR_EXISTS);
    assert_null(again);
    nb_layer_free(net);
    nb_model_free(m);
}

/* ------------------------------------------------- vanishing gradients */

/* Per-layer ‖dL/dW‖ of a 10-layer network of width 32 at initialisation. */
static void deep_grad_norms(nb_act act, double *norms, int *n_out)
{
    enum { DEPTH = 10, WIDTH = 32, BATCH = 64 };
    nb_rng rng;
    nb_rng_seed(&rng, 21);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.act = act;
    o.layer.rng = &rng;
    o.layer.dtype = NB_F64;
    int64_t sizes[DEPTH + 1];
    for (int i = 0; i <= DEPTH; i++)
        sizes[i] = WIDTH;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, sizes, DEPTH + 1, &o, &net), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){BATCH, WIDTH}, 0, 1);
    nb_tensor *t = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){BATCH, WIDTH}, 0, 1);
    nb_tensor *loss = nb_mse_loss(g, nb_layer_forward(g, net, x, true), t, NB_REDUCE_MEAN);
    assert_int_equal(nb_backward(g, loss), NB_OK);
    nb_param_norm report[DEPTH];
    int n = nb_grad_norms(m, report, DEPTH);
    assert_int_equal(n, DEPTH);
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "fc%d.weight", i + 1);
        assert_string_equal(report[i].name, want);
        norms[i] = report[i].norm;
    }
    *n_out = n;
    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
}

static void test_vanishing_gradients(void **state)
{
    (void)state;
    double sig[10], relu[10];
    int n = 0;
    deep_grad_norms(NB_ACT_SIGMOID, sig, &n);
    deep_grad_norms(NB_ACT_RELU, relu, &n);
    /* sigmoid: σ' <= 1/4 at every layer, so the norms fall towards the input */
    for (int i = 0; i + 1 < n; i++)
        if (!(sig[i] < sig[i + 1]))
            fail_msg("sigmoid: |grad fc%d| = %g is not below |grad fc%d| = %g", i + 1, sig[i],
                     i + 2, sig[i + 1]);
    double ratio_sig = sig[0] / sig[n - 1], ratio_relu = relu[0] / relu[n - 1];
    if (!(ratio_sig < 1e-3))
        fail_msg("sigmoid first/last gradient ratio %g", ratio_sig);
    if (!(ratio_relu > 0.1))
        fail_msg("relu first/last gradient ratio %g", ratio_relu);
    assert_true(ratio_relu > 100 * ratio_sig);
    /* bad arguments */
    assert_int_equal(nb_grad_norms(NULL, NULL, 0), -1);
    nb_model *m = nb_model_new();
    assert_int_equal(nb_grad_norms(m, NULL, 3), -1);
    assert_int_equal(nb_grad_norms(m, NULL, 0), 0);
    nb_model_free(m);
}

/* --------------------------------------------- penalties over parameters */

static void test_penalty_selection(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer = (nb_layer_opts){.dtype = NB_F64, .rng = &rng};
    o.batch_norm = true;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, (int64_t[]){3, 4, 2}, 3, &o, &net), NB_OK);
    nb_tensor *ws[8];
    /* fc1.weight, bn1.weight, fc2.weight (buffers never count) */
    int n = nb_params_matching(m, ".weight", ws, 8);
    assert_int_equal(n, 3);
    assert_string_equal(nb_tensor_name(ws[1]), "bn1.weight");
    assert_int_equal(nb_params_matching(m, NULL, NULL, 0), 6);
    assert_int_equal(nb_params_matching(m, "running_mean", ws, 8), 0);
    assert_int_equal(nb_params_matching(m, ".weight", ws, 1), 3); /* count beyond cap */
    ws[1] = ws[2];
    /* d/dW ½λ‖W‖² = λW */
    nb_graph *g = nb_graph_new();
    nb_model_zero_grad(m);
    assert_int_equal(nb_backward(g, nb_l2_penalty(g, ws, 2, 0.2)), NB_OK);
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < nb_tensor_size(ws[k]); i++)
            tc_near(nb_tensor_get(nb_tensor_grad(ws[k]), i), 0.2 * nb_tensor_get(ws[k], i), 1e-15);
    tc_near(nb_tensor_get(nb_tensor_grad(nb_model_get(m, "fc1.bias")), 0), 0, 0);
    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
}

/* --------------------------------------------------------------- bad input */

static void test_layer_errors(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    nb_layer_opts o = {.rng = &rng};
    nb_model *m = nb_model_new();
    nb_layer *l = (nb_layer *)&rng; /* must be cleared on error */
    assert_int_equal(nb_linear_new(NULL, "fc", 2, 3, &o, &l), NB_ERR_NULL);
    assert_null(l);
    assert_int_equal(nb_linear_new(m, NULL, 2, 3, &o, &l), NB_ERR_NULL);
    assert_int_equal(nb_linear_new(m, "fc", 2, 3, &o, NULL), NB_ERR_NULL);
    assert_int_equal(nb_linear_new(m, "fc", 0, 3, &o, &l), NB_ERR_ARG);
    assert_int_equal(nb_linear_new(m, "fc", 2, -1, &o, &l), NB_ERR_ARG);
    assert_int_equal(nb_linear_new(m, "fc", INT64_MAX / 2, 4, &o, &l), NB_ERR_ARG);
    assert_int_equal(nb_linear_new(m, "fc", 2, 3, NULL, &l), NB_ERR_NULL); /* init needs rng */
    assert_int_equal(nb_linear_new(m, "fc", 2, 3, &(nb_layer_opts){.dtype = (nb_dtype)7}, &l),
                     NB_ERR_DTYPE);
    assert_int_equal(
        nb_linear_new(m, "fc", 2, 3, &(nb_layer_opts){.init = (nb_init)40, .rng = &rng}, &l),
        NB_ERR_ARG);
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    assert_int_equal(nb_linear_new(m, long_name, 2, 3, &o, &l), NB_ERR_ARG);
    assert_int_equal(nb_model_count(m), 0); /* nothing was added */
    /* a constant init needs no rng */
    assert_int_equal(nb_linear_new(m, "fc", 2, 3,
                                   &(nb_layer_opts){.init = NB_INIT_CONSTANT, .init_scale = 0.5},
                                   &l),
                     NB_OK);
    nb_layer *dup = NULL;
    assert_int_equal(nb_linear_new(m, "fc", 2, 3, &o, &dup), NB_ERR_EXISTS);
    assert_int_equal(nb_model_count(m), 2);
    assert_int_equal(nb_maxout_new(m, "mo", 2, 3, 1, &o, &dup), NB_ERR_ARG);
    assert_int_equal(nb_act_layer_new(m, "a", (nb_act)55, NULL, 3, &o, &dup), NB_ERR_ARG);
    assert_int_equal(nb_act_layer_new(m, "a", NB_ACT_PRELU, NULL, 0, &o, &dup), NB_ERR_ARG);
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    assert_int_equal(nb_mlp_new(m, "x", (int64_t[]){3}, 1, &mo, &dup), NB_ERR_ARG);
    assert_int_equal(nb_mlp_new(m, "x", (int64_t[]){3, 0, 2}, 3, &mo, &dup), NB_ERR_ARG);
    assert_int_equal(nb_mlp_new(m, "x", NULL, 3, &mo, &dup), NB_ERR_NULL);
    mo.out_act = NB_ACT_PRELU;
    assert_int_equal(nb_mlp_new(m, "x", (int64_t[]){3, 2}, 2, &mo, &dup), NB_ERR_ARG);
    mo = nb_mlp_defaults(); /* no rng for the random init */
    assert_int_equal(nb_mlp_new(m, "x", (int64_t[]){3, 2}, 2, &mo, &dup), NB_ERR_NULL);

    /* forward with bad input */
    nb_graph *g = nb_graph_new();
    nb_tensor *bad = nb_zeros(g, NB_F32, 2, (int64_t[]){4, 5});
    assert_null(nb_layer_forward(g, l, bad, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_string_equal(nb_graph_error(g)->msg, "fc: input [4,5] does not fit weight [2,3]");
    nb_graph_clear_error(g);
    nb_tensor *wrong_dtype = nb_zeros(g, NB_F64, 2, (int64_t[]){4, 2});
    assert_null(nb_layer_forward(g, l, wrong_dtype, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    assert_string_equal(nb_graph_error(g)->msg, "fc: input is f64 but the parameters are f32");
    nb_graph_clear_error(g);
    nb_tensor *vec = nb_zeros(g, NB_F32, 1, (int64_t[]){2});
    assert_null(nb_layer_forward(g, l, vec, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    nb_graph_clear_error(g);
    assert_null(nb_layer_forward(g, NULL, vec, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_clear_error(g);
    assert_null(nb_layer_forward(g, l, NULL, true)); /* quiet */
    assert_int_equal(nb_graph_status(g), NB_OK);
    /* a good input gives x·W + b with the constant init */
    nb_tensor *good = nb_ones(g, NB_F32, 2, (int64_t[]){4, 2});
    nb_tensor *y = nb_layer_forward(g, l, good, false);
    tc_near(nb_tensor_get(y, 0), 1.0, 0);
    nb_graph_free(g);

    /* sequences */
    nb_layer *seq = NULL;
    assert_int_equal(nb_sequential_new("seq", &seq), NB_OK);
    assert_int_equal(nb_sequential_add(l, seq), NB_ERR_ARG); /* l is not a sequence: seq freed */
    assert_int_equal(nb_sequential_add(NULL, NULL), NB_ERR_NULL);
    nb_layer_free(l);
    nb_layer_free(NULL);
    assert_string_equal(nb_layer_name(NULL), "");
    assert_int_equal(nb_layer_count(NULL), 0);
    assert_null(nb_layer_find(NULL, "x"));
    nb_model_free(m);
}

/* Allocation failure: fail each allocation of building an MLP and running a
 * training step in turn; each failure is reported, nothing leaks. */
static nb_status build_and_step(tc_counting *c)
{
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_model *m = nb_model_new_alloc(tc_counting_alloc, c);
    nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, c);
    nb_status st = NB_ERR_NOMEM;
    nb_layer *net = NULL;
    if (m && g) {
        nb_mlp_opts o = nb_mlp_defaults();
        o.layer.rng = &rng;
        o.batch_norm = true;
        o.dropout = 0.2;
        o.act = NB_ACT_PRELU;
        st = nb_mlp_new(m, NULL, (int64_t[]){3, 8, 8, 2}, 4, &o, &net);
    }
    if (st == NB_OK) {
        nb_tensor *x = nb_rand_normal(g, &rng, NB_F32, 2, (int64_t[]){5, 3}, 0, 1);
        nb_tensor *loss = nb_softmax_cross_entropy(g, nb_layer_forward(g, net, x, true),
                                                   (int64_t[]){0, 1, 1, 0, 1}, 5, NB_REDUCE_MEAN);
        st = loss ? nb_backward(g, loss) : nb_graph_status(g);
    }
    nb_layer_free(net);
    nb_graph_free(g);
    nb_model_free(m);
    return st;
}

static void test_alloc_failure(void **state)
{
    (void)state;
    tc_counting probe = {0};
    assert_int_equal(build_and_step(&probe), NB_OK);
    assert_true(probe.calls > 10);
    for (long n = 1; n <= probe.calls; n++) {
        tc_counting c = {.fail_at = n};
        nb_status st = build_and_step(&c);
        if (st != NB_ERR_NOMEM)
            fail_msg("allocation %ld of %ld failed but the result was %s", n, probe.calls,
                     nb_status_str(st));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_activation_values),
        cmocka_unit_test(test_activation_grads),
        cmocka_unit_test(test_activation_derivatives),
        cmocka_unit_test(test_kinks),
        cmocka_unit_test(test_param_activations),
        cmocka_unit_test(test_extreme_inputs),
        cmocka_unit_test(test_activation_names),
        cmocka_unit_test(test_activate_by_kind),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_loss_grads),
        cmocka_unit_test(test_loss_second_order),
        cmocka_unit_test(test_loss_values),
        cmocka_unit_test(test_loss_errors),
        cmocka_unit_test(test_layer_grads),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_mlp_structure),
        cmocka_unit_test(test_vanishing_gradients),
        cmocka_unit_test(test_penalty_selection),
        cmocka_unit_test(test_layer_errors),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
