/* Reductions: sum, mean, max, min, argmax, sum_to, broadcast_to, and the
 * compositions logsumexp, var and the single-axis helpers. Gradient checks
 * over several shapes, exact values on small examples, ties of max and min,
 * thread-count determinism, and every bad-input error. */

#include "tc.h"

#include <math.h>
#include <string.h>

/* --------------------------------------------------------------- helpers */

static nb_tensor *from(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, const double *vals)
{
    nb_tensor *t = nb_zeros(g, dt, rank, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, vals[i]);
    return t;
}

static void expect_shape(const nb_tensor *t, int rank, const int64_t *shape)
{
    assert_non_null(t);
    assert_int_equal(nb_tensor_rank(t), rank);
    for (int d = 0; d < rank; d++)
        assert_int_equal(nb_tensor_shape(t)[d], shape[d]);
}

static void expect_values(const nb_tensor *t, const double *want, int64_t n, double tol)
{
    assert_non_null(t);
    assert_int_equal(nb_tensor_size(t), n);
    for (int64_t i = 0; i < n; i++)
        tc_near(nb_tensor_get(t, i), want[i], tol);
}

/* ------------------------------------------------------ gradient checks */

typedef nb_tensor *(*reduce_fn)(nb_graph *, nb_tensor *, const int *, int, bool);

typedef struct reduce_case {
    reduce_fn fn;
    int axes[NB_MAX_RANK];
    int n_axes;
    bool keepdims;
} reduce_case;

static nb_tensor *apply_reduce(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    reduce_case *c = ctx;
    return c->fn(g, in[0], c->n_axes ? c->axes : NULL, c->n_axes, c->keepdims);
}

/* Shapes and axes: all axes of a vector, the last axis (negative), leading
 * and trailing axes with keepdims, a middle axis (needs the reshape in the
 * rule), all axes listed explicitly, a rank-0 input. */
static const struct {
    tc_shape shape;
    int axes[NB_MAX_RANK];
    int n_axes;
    bool keepdims;
} reduce_shapes[] = {
    {{1, {5}}, {0}, 0, false},           {{2, {3, 4}}, {-1}, 1, false},
    {{2, {3, 4}}, {0}, 1, true},         {{3, {2, 3, 4}}, {0, -1}, 2, true},
    {{3, {2, 3, 4}}, {0, 2}, 2, false},  {{3, {2, 3, 4}}, {1}, 1, false},
    {{3, {2, 3, 4}}, {-2, 0}, 2, false}, {{3, {2, 1, 4}}, {1}, 1, false},
    {{2, {3, 4}}, {1, 0}, 2, true},      {{0, {0}}, {0}, 0, false},
};

static void check_reduce(const char *name, reduce_fn fn)
{
    for (size_t s = 0; s < sizeof reduce_shapes / sizeof *reduce_shapes; s++) {
        reduce_case c = {fn, {0}, reduce_shapes[s].n_axes, reduce_shapes[s].keepdims};
        memcpy(c.axes, reduce_shapes[s].axes, sizeof c.axes);
        tc_opts o = {.seed = 30 + s};
        tc_check(name, apply_reduce, &c, 1, &reduce_shapes[s].shape, &o);
    }
}

static void test_reduce_grad(void **state)
{
    (void)state;
    check_reduce("sum", nb_sum);
    check_reduce("mean", nb_mean);
    check_reduce("max", nb_max);
    check_reduce("min", nb_min);
}

/* logsumexp and var over one axis, with and without keepdims */
typedef struct axis_case {
    tc_shape shape;
    int axis;
    bool keepdims;
    double correction; /* var */
} axis_case;

static const axis_case axis_cases[] = {
    {{1, {5}}, 0, false, 1},       {{2, {3, 4}}, -1, false, 0},     {{2, {3, 4}}, 0, true, 1},
    {{3, {2, 3, 4}}, 1, false, 2}, {{3, {2, 3, 4}}, -3, true, 0.5}, {{3, {2, 1, 4}}, 2, true, 1},
};

static nb_tensor *logsumexp_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const axis_case *c = ctx;
    return nb_logsumexp(g, in[0], c->axis, c->keepdims);
}

static nb_tensor *var_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const axis_case *c = ctx;
    return nb_var(g, in[0], c->axis, c->keepdims, c->correction);
}

static void test_logsumexp_var_grad(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof axis_cases / sizeof *axis_cases; s++) {
        tc_opts o = {.seed = 90 + s};
        tc_check("logsumexp", logsumexp_fn, (void *)&axis_cases[s], 1, &axis_cases[s].shape, &o);
        /* far from 0: the shift by the maximum at work */
        tc_opts far = {.seed = 95 + s, .lo = 300, .hi = 304};
        tc_check("logsumexp", logsumexp_fn, (void *)&axis_cases[s], 1, &axis_cases[s].shape, &far);
        tc_check("var", var_fn, (void *)&axis_cases[s], 1, &axis_cases[s].shape, &o);
    }
}

typedef nb_tensor *(*to_fn)(nb_graph *, nb_tensor *, int, const int64_t *);

typedef struct to_case {
    to_fn fn;
    tc_shape target;
} to_case;

static nb_tensor *apply_to(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    to_case *c = ctx;
    return c->fn(g, in[0], c->target.rank, c->target.dims);
}

static void test_sum_to_grad(void **state)
{
    (void)state;
    static const tc_shape pairs[][2] = {
        {{2, {3, 4}}, {1, {4}}},          {{2, {3, 4}}, {2, {3, 1}}}, {{3, {2, 3, 4}}, {2, {1, 4}}},
        {{3, {2, 3, 4}}, {3, {2, 1, 4}}}, {{3, {2, 3, 4}}, {0, {0}}}, {{2, {3, 4}}, {2, {3, 4}}},
        {{3, {2, 3, 1}}, {2, {1, 1}}},
    };
    for (size_t s = 0; s < sizeof pairs / sizeof *pairs; s++) {
        to_case c = {nb_sum_to, pairs[s][1]};
        tc_opts o = {.seed = 50 + s};
        tc_check("sum_to", apply_to, &c, 1, &pairs[s][0], &o);
    }
}

static void test_broadcast_to_grad(void **state)
{
    (void)state;
    static const tc_shape pairs[][2] = {
        {{1, {4}}, {2, {3, 4}}},
        {{2, {3, 1}}, {2, {3, 4}}},
        {{0, {0}}, {2, {2, 3}}},
        {{2, {1, 4}}, {3, {2, 3, 4}}},
        {{3, {2, 1, 4}}, {4, {2, 2, 3, 4}}},
        {{2, {3, 4}}, {2, {3, 4}}},
    };
    for (size_t s = 0; s < sizeof pairs / sizeof *pairs; s++) {
        to_case c = {nb_broadcast_to, pairs[s][1]};
        tc_opts o = {.seed = 70 + s};
        tc_check("broadcast_to", apply_to, &c, 1, &pairs[s][0], &o);
    }
}

/* ----------------------------------------------------------- exact values */

static const double m23[] = {1, 2, 3, 4, 5, 6}; /* [[1,2,3],[4,5,6]] */

static void test_values(void **state)
{
    (void)state;
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *x = from(g, (nb_dtype)dt, 2, (int64_t[]){2, 3}, m23);

        nb_tensor *s_all = nb_sum(g, x, NULL, 0, false);
        expect_shape(s_all, 0, NULL);
        tc_near(nb_tensor_item(s_all), 21, 0);
        nb_tensor *s_all_k = nb_sum(g, x, (int[]){0, 1}, 2, true);
        expect_shape(s_all_k, 2, (int64_t[]){1, 1});
        tc_near(nb_tensor_item(s_all_k), 21, 0);

        nb_tensor *s0 = nb_sum(g, x, (int[]){0}, 1, false);
        expect_shape(s0, 1, (int64_t[]){3});
        expect_values(s0, (double[]){5, 7, 9}, 3, 0);
        nb_tensor *s1 = nb_sum(g, x, (int[]){-1}, 1, true);
        expect_shape(s1, 2, (int64_t[]){2, 1});
        expect_values(s1, (double[]){6, 15}, 2, 0);

        nb_tensor *m0 = nb_mean(g, x, (int[]){-2}, 1, true);
        expect_shape(m0, 2, (int64_t[]){1, 3});
        expect_values(m0, (double[]){2.5, 3.5, 4.5}, 3, 0);
        nb_tensor *m1 = nb_mean(g, x, (int[]){1}, 1, false);
        expect_values(m1, (double[]){2, 5}, 2, 0);
        tc_near(nb_tensor_item(nb_mean(g, x, NULL, 0, false)), 3.5, 0);

        nb_tensor *x0 = nb_max(g, x, (int[]){0}, 1, false);
        expect_values(x0, (double[]){4, 5, 6}, 3, 0);
        nb_tensor *x1 = nb_max(g, x, (int[]){-1}, 1, false);
        expect_values(x1, (double[]){3, 6}, 2, 0);
        tc_near(nb_tensor_item(nb_max(g, x, NULL, 0, false)), 6, 0);

        /* sum_to and broadcast_to */
        nb_tensor *t4 = nb_sum_to(g, x, 1, (int64_t[]){3});
        expect_values(t4, (double[]){5, 7, 9}, 3, 0);
        nb_tensor *t21 = nb_sum_to(g, x, 2, (int64_t[]){2, 1});
        expect_shape(t21, 2, (int64_t[]){2, 1});
        expect_values(t21, (double[]){6, 15}, 2, 0);
        nb_tensor *t0 = nb_sum_to(g, x, 0, NULL);
        expect_shape(t0, 0, NULL);
        tc_near(nb_tensor_item(t0), 21, 0);

        nb_tensor *b =
            nb_broadcast_to(g, nb_sum_to(g, x, 1, (int64_t[]){3}), 3, (int64_t[]){2, 2, 3});
        expect_shape(b, 3, (int64_t[]){2, 2, 3});
        expect_values(b, (double[]){5, 7, 9, 5, 7, 9, 5, 7, 9, 5, 7, 9}, 12, 0);
        nb_tensor *col = nb_broadcast_to(g, t21, 2, (int64_t[]){2, 3});
        expect_values(col, (double[]){6, 6, 6, 15, 15, 15}, 6, 0);
        nb_tensor *sc = nb_broadcast_to(g, nb_scalar(g, (nb_dtype)dt, 2.5), 2, (int64_t[]){2, 3});
        expect_values(sc, (double[]){2.5, 2.5, 2.5, 2.5, 2.5, 2.5}, 6, 0);

        /* [2,3,4] -> [1,4] */
        double v24[24];
        for (int i = 0; i < 24; i++)
            v24[i] = i;
        nb_tensor *x3 = from(g, (nb_dtype)dt, 3, (int64_t[]){2, 3, 4}, v24);
        nb_tensor *t14 = nb_sum_to(g, x3, 2, (int64_t[]){1, 4});
        expect_shape(t14, 2, (int64_t[]){1, 4});
        expect_values(t14, (double[]){60, 66, 72, 78}, 4, 0);
        /* middle axis: [2,3,4] summed over axis 1 */
        nb_tensor *mid = nb_sum(g, x3, (int[]){1}, 1, false);
        expect_values(mid, (double[]){12, 15, 18, 21, 48, 51, 54, 57}, 8, 0);
        /* outer and inner axes together: max over {0,2} */
        nb_tensor *mx02 = nb_max(g, x3, (int[]){2, 0}, 2, false);
        expect_values(mx02, (double[]){15, 19, 23}, 3, 0);
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }
}

/* min mirrors max; argmax gives the first index of the maximum. */
static void test_min_argmax_values(void **state)
{
    (void)state;
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *x = from(g, (nb_dtype)dt, 2, (int64_t[]){2, 3}, m23);
        expect_values(nb_min(g, x, (int[]){0}, 1, false), (double[]){1, 2, 3}, 3, 0);
        nb_tensor *mn1 = nb_min(g, x, (int[]){-1}, 1, true);
        expect_shape(mn1, 2, (int64_t[]){2, 1});
        expect_values(mn1, (double[]){1, 4}, 2, 0);
        tc_near(nb_tensor_item(nb_min(g, x, NULL, 0, false)), 1, 0);
        /* a NaN makes its slice's minimum NaN, in a row (8 lanes and the
         * tail) and down a column */
        double nv[2 * 11];
        for (int i = 0; i < 22; i++)
            nv[i] = i % 5 - 2.0;
        nv[3] = NAN;  /* row 0, a lane */
        nv[21] = NAN; /* row 1, the tail */
        nb_tensor *xn = from(g, (nb_dtype)dt, 2, (int64_t[]){2, 11}, nv);
        nb_tensor *rows = nb_min(g, xn, (int[]){1}, 1, false);
        assert_true(isnan(nb_tensor_get(rows, 0)) && isnan(nb_tensor_get(rows, 1)));
        nb_tensor *cols = nb_min(g, xn, (int[]){0}, 1, false);
        for (int j = 0; j < 11; j++)
            if (j == 3 || j == 10)
                assert_true(isnan(nb_tensor_get(cols, j)));
            else
                tc_near(nb_tensor_get(cols, j), fmin(nv[j], nv[11 + j]), 0);

        /* ties go to the first index; NaN counts as the maximum */
        nb_tensor *t =
            from(g, (nb_dtype)dt, 2, (int64_t[]){3, 3}, (double[]){1, 3, 3, 5, -1, 5, 2, NAN, NAN});
        nb_tensor *a1 = nb_argmax(g, t, 1);
        expect_shape(a1, 1, (int64_t[]){3});
        assert_int_equal(nb_tensor_dtype(a1), (nb_dtype)dt);
        expect_values(a1, (double[]){1, 0, 1}, 3, 0);
        expect_values(nb_argmax(g, t, -2), (double[]){1, 2, 2}, 3, 0);
        nb_tensor *t3 = from(g, (nb_dtype)dt, 3, (int64_t[]){2, 3, 2},
                             (double[]){5, 0, 5, 1, 5, 2, 1, 7, 2, 7, 0, 9});
        nb_tensor *a3 = nb_argmax(g, t3, 1);
        expect_shape(a3, 2, (int64_t[]){2, 2});
        expect_values(a3, (double[]){0, 2, 1, 2}, 4, 0);
        expect_values(nb_argmax(g, t3, 2), (double[]){0, 0, 0, 1, 1, 1}, 6, 0);
        expect_values(nb_argmax(g, t3, 0), (double[]){0, 1, 0, 1, 0, 1}, 6, 0);
        nb_tensor *v = from(g, (nb_dtype)dt, 1, (int64_t[]){4}, (double[]){-3, -1, -2, -1});
        nb_tensor *a0 = nb_argmax(g, v, 0);
        expect_shape(a0, 0, NULL);
        tc_near(nb_tensor_item(a0), 1, 0);
        expect_shape(nb_argmax(g, nb_zeros(g, (nb_dtype)dt, 2, (int64_t[]){0, 3}), 1), 1,
                     (int64_t[]){0});
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }

    /* argmax carries no gradient; its indices feed gather */
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(from(g, NB_F64, 2, (int64_t[]){2, 3}, m23), true);
    nb_tensor *idx = nb_argmax(g, nb_transpose(g, x), 1);
    assert_false(nb_tensor_requires_grad(idx));
    expect_values(idx, (double[]){1, 1, 1}, 3, 0);
    int64_t flat[3]; /* of x[idx[j], j] in x's 6 entries */
    for (int j = 0; j < 3; j++)
        flat[j] = (int64_t)nb_tensor_get(idx, j) * 3 + j;
    nb_tensor *picked = nb_gather(g, nb_reshape(g, x, 1, (int64_t[]){6}), 0, flat, 3);
    expect_values(picked, (double[]){4, 5, 6}, 3, 0);
    assert_int_equal(nb_backward_seed(g, picked, nb_ones(g, NB_F64, 1, (int64_t[]){3})), NB_OK);
    expect_values(nb_tensor_grad(x), (double[]){0, 0, 0, 1, 1, 1}, 6, 0);
    nb_graph_free(g);
}

/* Ties split the gradient of min equally, in reverse and forward mode, as
 * for max. */
static void test_min_ties(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(
        from(g, NB_F64, 2, (int64_t[]){2, 3}, (double[]){1, -2, -2, 4, 0, 5}), true);
    nb_tensor *y = nb_min(g, x, (int[]){1}, 1, false);
    expect_values(y, (double[]){-2, 0}, 2, 0);
    nb_tensor *seed = from(g, NB_F64, 1, (int64_t[]){2}, (double[]){4, 3});
    assert_int_equal(nb_backward_seed(g, y, seed), NB_OK);
    expect_values(nb_tensor_grad(x), (double[]){0, 2, 2, 0, 3, 0}, 6, 0);
    nb_tensor *t = from(g, NB_F64, 2, (int64_t[]){2, 3}, (double[]){10, 20, 40, 1, 2, 3});
    nb_tensor *ty = NULL;
    assert_int_equal(nb_jvp(g, y, &x, &t, 1, &ty), NB_OK);
    expect_values(ty, (double[]){30, 2}, 2, 0);
    nb_graph_free(g);
}

/* logsumexp: values against the definition, no overflow far from 0, infinite
 * slices; var: PyTorch's values for each correction, and two passes keep a
 * large offset from cancelling. */
static void test_logsumexp_var_values(void **state)
{
    (void)state;
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        double tol = dt == NB_F32 ? 1e-5 : 1e-13;
        nb_graph *g = nb_graph_new();
        nb_tensor *x = from(g, (nb_dtype)dt, 2, (int64_t[]){2, 3}, m23);
        nb_tensor *l1 = nb_logsumexp(g, x, 1, false);
        expect_shape(l1, 1, (int64_t[]){2});
        expect_values(l1, (double[]){log(exp(1) + exp(2) + exp(3)), log(exp(4) + exp(5) + exp(6))},
                      2, tol);
        nb_tensor *l0 = nb_logsumexp(g, x, -2, true);
        expect_shape(l0, 2, (int64_t[]){1, 3});
        expect_values(l0, (double[]){4 + log1p(exp(-3)), 5 + log1p(exp(-3)), 6 + log1p(exp(-3))}, 3,
                      tol * 10);

        double big[] = {1000, 1000, -1000, -1000, -INFINITY, -INFINITY, INFINITY, 1, NAN, 1};
        nb_tensor *b = from(g, (nb_dtype)dt, 2, (int64_t[]){5, 2}, big);
        nb_tensor *lb = nb_logsumexp(g, b, 1, false);
        tc_near(nb_tensor_get(lb, 0), 1000 + log(2), 1000 * tol);
        tc_near(nb_tensor_get(lb, 1), -1000 + log(2), 1000 * tol);
        assert_true(isinf(nb_tensor_get(lb, 2)) && nb_tensor_get(lb, 2) < 0);
        assert_true(isinf(nb_tensor_get(lb, 3)) && nb_tensor_get(lb, 3) > 0);
        assert_true(isnan(nb_tensor_get(lb, 4)));
        nb_tensor *le = nb_logsumexp(g, nb_zeros(g, (nb_dtype)dt, 2, (int64_t[]){2, 0}), 1, true);
        expect_shape(le, 2, (int64_t[]){2, 1});
        assert_true(isinf(nb_tensor_get(le, 0)) && nb_tensor_get(le, 0) < 0);

        /* torch.var([[1,2,3],[4,5,6]], dim) */
        expect_values(nb_var(g, x, 1, false, 1), (double[]){1, 1}, 2, tol);
        expect_values(nb_var(g, x, 1, false, 0), (double[]){2. / 3, 2. / 3}, 2, tol);
        nb_tensor *v0 = nb_var(g, x, 0, true, 1);
        expect_shape(v0, 2, (int64_t[]){1, 3});
        expect_values(v0, (double[]){4.5, 4.5, 4.5}, 3, tol);
        expect_values(nb_var(g, x, -1, false, 2), (double[]){2, 2}, 2, tol);
        expect_values(nb_var(g, x, -1, false, 0.5), (double[]){0.8, 0.8}, 2, tol);
        /* n - correction <= 0 divides by zero: 0/0 for one element */
        nb_tensor *one = nb_var(g, nb_scalar(g, (nb_dtype)dt, 7), 0, false, 1);
        assert_null(one); /* a scalar has no axis */
        nb_graph_clear_error(g);
        nb_tensor *v1 = from(g, (nb_dtype)dt, 1, (int64_t[]){1}, (double[]){7});
        assert_true(isnan(nb_tensor_item(nb_var(g, v1, 0, false, 1))));
        tc_near(nb_tensor_item(nb_var(g, v1, 0, false, 0)), 0, 0);
        double ramp[] = {1, 2, 3, 4};
        nb_tensor *r = from(g, (nb_dtype)dt, 1, (int64_t[]){4}, ramp);
        assert_true(isinf(nb_tensor_item(nb_var(g, r, 0, false, 5))));
        assert_true(isnan(
            nb_tensor_item(nb_var(g, nb_zeros(g, (nb_dtype)dt, 1, (int64_t[]){0}), 0, false, 0))));
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }
    /* 1e8 + [1,2,3,4]: E[x²] - E[x]² would lose every digit in f64 */
    nb_graph *g = nb_graph_new();
    nb_tensor *x =
        from(g, NB_F64, 1, (int64_t[]){4}, (double[]){1e8 + 1, 1e8 + 2, 1e8 + 3, 1e8 + 4});
    tc_near(nb_tensor_item(nb_var(g, x, 0, false, 1)), 5.0 / 3, 1e-15);
    nb_graph_free(g);
}

/* The single-axis helpers are the array forms with one axis, bit for bit. */
static void test_axis_helpers(void **state)
{
    (void)state;
    typedef nb_tensor *(*axis_fn)(nb_graph *, nb_tensor *, int, bool);
    static const struct {
        axis_fn one;
        reduce_fn many;
        const char *name;
    } pairs[] = {{nb_sum_axis, nb_sum, "sum"},
                 {nb_mean_axis, nb_mean, "mean"},
                 {nb_max_axis, nb_max, "max"},
                 {nb_min_axis, nb_min, "min"}};
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F32, 3, (int64_t[]){3, 4, 5}, -1, 1);
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
        for (int axis = -3; axis < 3; axis++) {
            for (int keep = 0; keep < 2; keep++) {
                nb_tensor *a = pairs[k].one(g, x, axis, keep);
                nb_tensor *b = pairs[k].many(g, x, &axis, 1, keep);
                assert_non_null(a);
                assert_int_equal(nb_tensor_rank(a), nb_tensor_rank(b));
                assert_memory_equal(nb_tensor_data(a), nb_tensor_data(b),
                                    (size_t)nb_tensor_size(a) * sizeof(float));
            }
        }
        assert_null(pairs[k].one(g, x, 3, false));
        assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
        assert_string_equal(nb_graph_error(g)->where, pairs[k].name);
        nb_graph_clear_error(g);
        assert_null(pairs[k].one(g, NULL, 0, false));
        assert_int_equal(nb_graph_status(g), NB_OK);
    }
    nb_graph_free(g);
}

/* Gradients on the small example: sum -> ones, mean -> 1/count,
 * sum_to and broadcast_to adjoint to each other. */
static void test_grad_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(from(g, NB_F64, 2, (int64_t[]){2, 3}, m23), true);
    nb_tensor *y = nb_add(g, nb_sum(g, x, NULL, 0, false),
                          nb_sum(g, nb_mean(g, x, (int[]){1}, 1, false), NULL, 0, false));
    assert_int_equal(nb_backward(g, y), NB_OK);
    double w = 1 + 1.0 / 3;
    expect_values(nb_tensor_grad(x), (double[]){w, w, w, w, w, w}, 6, 1e-15);

    /* broadcast_to's gradient is sum_to: [3] -> [4,3] gives 4 each */
    nb_tensor *v = nb_tensor_set_requires_grad(from(g, NB_F64, 1, (int64_t[]){3}, m23), true);
    nb_tensor *bv = nb_broadcast_to(g, v, 2, (int64_t[]){4, 3});
    assert_int_equal(nb_backward(g, nb_sum(g, bv, NULL, 0, false)), NB_OK);
    expect_values(nb_tensor_grad(v), (double[]){4, 4, 4}, 3, 0);
    nb_graph_free(g);
}

/* Ties split the gradient of max equally, in reverse and forward mode. */
static void test_max_ties(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x =
        nb_tensor_set_requires_grad(from(g, NB_F64, 1, (int64_t[]){3}, (double[]){1, 3, 3}), true);
    nb_tensor *y = nb_max(g, x, NULL, 0, false);
    tc_near(nb_tensor_item(y), 3, 0);
    assert_int_equal(nb_backward(g, y), NB_OK);
    expect_values(nb_tensor_grad(x), (double[]){0, 0.5, 0.5}, 3, 0);

    nb_tensor *t = from(g, NB_F64, 1, (int64_t[]){3}, (double[]){10, 20, 40});
    nb_tensor *ty = NULL;
    assert_int_equal(nb_jvp(g, y, &x, &t, 1, &ty), NB_OK);
    tc_near(nb_tensor_item(ty), 30, 0);

    /* per row, with a three-way tie and a middle-axis reduction */
    nb_tensor *x2 = nb_tensor_set_requires_grad(
        from(g, NB_F32, 3, (int64_t[]){2, 3, 2}, (double[]){5, 0, 5, 1, 5, 2, 1, 7, 2, 7, 0, 7}),
        true);
    nb_tensor *y2 = nb_max(g, x2, (int[]){1}, 1, false);
    expect_values(y2, (double[]){5, 2, 2, 7}, 4, 0);
    nb_tensor *seed = from(g, NB_F32, 2, (int64_t[]){2, 2}, (double[]){3, 1, 1, 2});
    assert_int_equal(nb_backward_seed(g, y2, seed), NB_OK);
    expect_values(nb_tensor_grad(x2), (double[]){1, 0, 1, 0, 1, 1, 0, 2. / 3, 1, 2. / 3, 0, 2. / 3},
                  12, 1e-7);
    nb_graph_free(g);
}

/* Second order through the rules: d/dx sum(x^2 over axis 1) = 2x, and
 * the gradient of sum(2x) is 2 everywhere. */
static void test_second_order(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(from(g, NB_F64, 2, (int64_t[]){2, 3}, m23), true);
    nb_tensor *y = nb_sum(g, nb_sum(g, nb_square(g, x), (int[]){1}, 1, false), NULL, 0, false);
    nb_tensor *dx = NULL;
    assert_int_equal(nb_grad(g, y, NULL, &x, 1, &dx, true), NB_OK);
    expect_values(dx, (double[]){2, 4, 6, 8, 10, 12}, 6, 0);
    nb_tensor *d2 = NULL;
    assert_int_equal(nb_grad(g, nb_mean(g, dx, NULL, 0, false), NULL, &x, 1, &d2, false), NB_OK);
    double w = 2.0 / 6;
    expect_values(d2, (double[]){w, w, w, w, w, w}, 6, 1e-15);
    nb_graph_free(g);
}

/* Second order through the compositions: the Hessian of logsumexp is
 * diag(p) - p pᵀ (p = softmax), so the gradient of <softmax(x), w> is
 * p·w - p·(p·w); that of var with correction c over n entries is
 * 2/(n - c)·(I - 1/n), so the gradient of <dvar/dx, w> is
 * 2/(n - c)·(w - mean w). */
static void test_compositions_second_order(void **state)
{
    (void)state;
    double xv[] = {0.5, -1, 2, 0.25}, wv[] = {1, -2, 0.5, 3};
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(from(g, NB_F64, 1, (int64_t[]){4}, xv), true);
    nb_tensor *w = from(g, NB_F64, 1, (int64_t[]){4}, wv);
    double p[4], z = 0, pw = 0, wmean = 0;
    for (int i = 0; i < 4; i++)
        z += exp(xv[i]);
    for (int i = 0; i < 4; i++) {
        p[i] = exp(xv[i]) / z;
        pw += p[i] * wv[i];
        wmean += wv[i] / 4;
    }

    nb_tensor *dx = NULL, *d2 = NULL;
    assert_int_equal(nb_grad(g, nb_logsumexp(g, x, 0, false), NULL, &x, 1, &dx, true), NB_OK);
    expect_values(dx, p, 4, 1e-15);
    nb_tensor *dot = nb_sum(g, nb_mul(g, dx, w), NULL, 0, false);
    assert_int_equal(nb_grad(g, dot, NULL, &x, 1, &d2, false), NB_OK);
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(d2, i), p[i] * wv[i] - p[i] * pw, 1e-15);

    assert_int_equal(nb_grad(g, nb_var(g, x, 0, false, 1), NULL, &x, 1, &dx, true), NB_OK);
    double xmean = (xv[0] + xv[1] + xv[2] + xv[3]) / 4;
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(dx, i), 2.0 / 3 * (xv[i] - xmean), 1e-15);
    dot = nb_sum(g, nb_mul(g, dx, w), NULL, 0, false);
    assert_int_equal(nb_grad(g, dot, NULL, &x, 1, &d2, false), NB_OK);
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(d2, i), 2.0 / 3 * (wv[i] - wmean), 1e-15);
    nb_graph_free(g);
}

/* Empty tensors: sums of nothing are 0, means NaN, max of nothing an error
 * (but a max whose result is empty is fine). */
static void test_empty(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *e = nb_zeros(g, NB_F64, 2, (int64_t[]){0, 3});
    nb_tensor *s = nb_sum(g, e, (int[]){0}, 1, false);
    expect_values(s, (double[]){0, 0, 0}, 3, 0);
    nb_tensor *m = nb_mean(g, e, NULL, 0, false);
    assert_non_null(m);
    assert_true(isnan(nb_tensor_item(m)));
    nb_tensor *mx = nb_max(g, e, (int[]){1}, 1, false);
    expect_shape(mx, 1, (int64_t[]){0});
    nb_tensor *bt = nb_broadcast_to(g, nb_scalar(g, NB_F64, 1), 2, (int64_t[]){4, 0});
    expect_shape(bt, 2, (int64_t[]){4, 0});
    nb_tensor *st = nb_sum_to(g, e, 2, (int64_t[]){1, 3});
    expect_values(st, (double[]){0, 0, 0}, 3, 0);
    assert_int_equal(nb_graph_status(g), NB_OK);
    assert_null(nb_max(g, e, (int[]){0}, 1, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_string_equal(nb_graph_error(g)->where, "max");
    nb_graph_free(g);
}

/* ------------------------------------------------- threads: bit-identical */

static void fill_random(nb_tensor *t, uint64_t seed)
{
    nb_rng r;
    nb_rng_seed(&r, seed);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, nb_rng_uniform(&r) * 2 - 1);
}

static bool same_bits(const nb_tensor *a, const nb_tensor *b)
{
    if (nb_tensor_size(a) != nb_tensor_size(b) || nb_tensor_dtype(a) != nb_tensor_dtype(b))
        return false;
    size_t bytes = (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a));
    return memcmp(nb_tensor_data((nb_tensor *)a), nb_tensor_data((nb_tensor *)b), bytes) == 0;
}

/* One reduction of a large tensor under 1 and 4 threads. */
typedef nb_tensor *(*big_fn)(nb_graph *g, nb_tensor *x, int which);

static nb_tensor *big_reduce(nb_graph *g, nb_tensor *x, int which)
{
    static const struct {
        int axes[3];
        int n;
    } sets[] = {{{0}, 0}, {{0}, 1}, {{-1}, 1}, {{1}, 1}, {{0, 2}, 2}, {{0, 1}, 2}, {{1, 2}, 2}};
    int s = which % 7;
    switch (which / 7) {
    case 0: return nb_sum(g, x, sets[s].axes, sets[s].n, false);
    case 1: return nb_mean(g, x, sets[s].axes, sets[s].n, true);
    case 2: return nb_max(g, x, sets[s].axes, sets[s].n, false);
    default: return nb_min(g, x, sets[s].axes, sets[s].n, true);
    }
}

static void test_threads_identical(void **state)
{
    (void)state;
    static const tc_shape shapes[] = {
        {3, {40, 50, 60}},
        {3, {2, 3, 40000}},
        {3, {40000, 2, 3}},
        {3, {3, 70000, 1}},
    };
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            nb_graph *g1 = nb_graph_new(), *g4 = nb_graph_new();
            nb_graph_set_threads(g4, 4);
            nb_tensor *x1 = nb_zeros(g1, (nb_dtype)dt, shapes[s].rank, shapes[s].dims);
            fill_random(x1, 7 + s);
            nb_tensor *x4 = nb_tensor_from(g4, (nb_dtype)dt, shapes[s].rank, shapes[s].dims,
                                           nb_tensor_data(x1));
            for (int w = 0; w < 28; w++) {
                nb_tensor *r1 = big_reduce(g1, x1, w), *r4 = big_reduce(g4, x4, w);
                assert_non_null(r1);
                assert_non_null(r4);
                if (!same_bits(r1, r4))
                    fail_msg("dtype %d shape %zu reduction %d differs between 1 and 4 threads", dt,
                             s, w);
            }
            /* sum_to and broadcast_to, the broadcasting hot path */
            const int64_t *d = shapes[s].dims;
            nb_tensor *a1 = nb_sum_to(g1, x1, 2, (int64_t[]){d[1], d[2]});
            nb_tensor *a4 = nb_sum_to(g4, x4, 2, (int64_t[]){d[1], d[2]});
            assert_true(same_bits(a1, a4));
            nb_tensor *b1 = nb_sum_to(g1, x1, 3, (int64_t[]){d[0], 1, 1});
            nb_tensor *b4 = nb_sum_to(g4, x4, 3, (int64_t[]){d[0], 1, 1});
            assert_true(same_bits(b1, b4));
            nb_tensor *c1 = nb_broadcast_to(g1, a1, 3, d), *c4 = nb_broadcast_to(g4, a4, 3, d);
            assert_true(same_bits(c1, c4));
            nb_graph_free(g1);
            nb_graph_free(g4);
        }
    }
}

/* ---------------------------------------- the order of a reduction's sums */

/* The order every reduction keeps (reduce.c), written out: a contiguous row
 * is reduced pairwise, split at half its length rounded down to a multiple
 * of 8 while longer than BLOCK; a leaf combines 8 lanes over its elements
 * as ((0,1),(2,3)),((4,5),(6,7)) and then the rest one by one (a leaf of
 * fewer than 8 elements: one by one). Rows of one output are then combined
 * in order. */
#define REF_REDUCE(NAME, T, COMBINE, BLOCK)                                                        \
    static T NAME(const T *x, int64_t n)                                                           \
    {                                                                                              \
        if (n > (BLOCK)) {                                                                         \
            int64_t n2 = n / 2 - (n / 2) % 8;                                                      \
            T a = NAME(x, n2), b = NAME(x + n2, n - n2);                                           \
            return COMBINE(a, b);                                                                  \
        }                                                                                          \
        T acc = x[0];                                                                              \
        int64_t i = 1;                                                                             \
        if (n >= 8) {                                                                              \
            T l[8];                                                                                \
            for (int k = 0; k < 8; k++)                                                            \
                l[k] = x[k];                                                                       \
            for (i = 8; i + 8 <= n; i += 8)                                                        \
                for (int k = 0; k < 8; k++)                                                        \
                    l[k] = COMBINE(l[k], x[i + k]);                                                \
            acc = COMBINE(COMBINE(COMBINE(l[0], l[1]), COMBINE(l[2], l[3])),                       \
                          COMBINE(COMBINE(l[4], l[5]), COMBINE(l[6], l[7])));                      \
        }                                                                                          \
        for (; i < n; i++)                                                                         \
            acc = COMBINE(acc, x[i]);                                                              \
        return acc;                                                                                \
    }
#define REF_SUM(a, v) ((a) + (v))
#define REF_MAX(a, v) (((v) > (a) || (v) != (v)) ? (v) : (a))
REF_REDUCE(ref_sum_f32, float, REF_SUM, 128)
REF_REDUCE(ref_sum_f64, double, REF_SUM, 128)
REF_REDUCE(ref_max_f32, float, REF_MAX, 8192)
REF_REDUCE(ref_max_f64, double, REF_MAX, 8192)

/* Channel c of s (sums of x) and m (maxima of y) against the reference order,
 * bit for bit, in element type T. */
#define CHANNEL_EXPECT(T, SUF)                                                                     \
    do {                                                                                           \
        const T *px = nb_tensor_##SUF(x), *py = nb_tensor_##SUF(y);                                \
        T want_s = 0, want_m = 0;                                                                  \
        for (int64_t k = 0; k < N; k++) {                                                          \
            T vs = ref_sum_##SUF(px + (k * C + c) * HW, HW);                                       \
            T vm = ref_max_##SUF(py + (k * C + c) * HW, HW);                                       \
            want_s = k == 0 ? vs : REF_SUM(want_s, vs);                                            \
            want_m = k == 0 ? vm : REF_MAX(want_m, vm);                                            \
        }                                                                                          \
        assert_memory_equal(nb_tensor_##SUF(s) + c, &want_s, sizeof want_s);                       \
        assert_memory_equal(nb_tensor_##SUF(m) + c, &want_m, sizeof want_m);                       \
    } while (0)

/* The channel sums of x [N,C,H,W] (a convolution's bias gradient, sum_to
 * [C,1,1]) and their maxima over (0,2,3), bit for bit those of the order
 * above: each (n, c) row of H·W reduced pairwise, the N rows of a channel
 * combined in order; for batches that are and are not multiples of 4 and
 * rows shorter than a lane block, with tails, longer than a leaf. Values
 * spread over many magnitudes (so that any other order rounds differently),
 * and for the maxima ties of -0 and +0, and NaN. */
static void test_channel_order(void **state)
{
    (void)state;
    static const int64_t batches[] = {1, 3, 4, 7, 9};
    static const int64_t planes[][2] = {{1, 1},  {1, 5},  {2, 4},   {3, 5},
                                        {8, 16}, {3, 43}, {28, 28}, {17, 19}};
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
            for (size_t pl = 0; pl < sizeof planes / sizeof *planes; pl++) {
                int64_t N = batches[b], C = 3, H = planes[pl][0], W = planes[pl][1], HW = H * W;
                int64_t shape[4] = {N, C, H, W}, n = N * C * HW;
                nb_graph *g = nb_graph_new();
                nb_tensor *x = nb_zeros(g, (nb_dtype)dt, 4, shape);
                nb_tensor *y = nb_zeros(g, (nb_dtype)dt, 4, shape);
                assert_non_null(x);
                assert_non_null(y);
                nb_rng r;
                nb_rng_seed(&r, 40 + b * 10 + pl);
                for (int64_t i = 0; i < n; i++) {
                    double u = nb_rng_uniform(&r);
                    nb_tensor_set(x, i, (u - 0.5) * pow(10.0, (double)(i % 13) - 6));
                    nb_tensor_set(y, i,
                                  i % 17 == 3  ? NAN
                                  : i % 5 == 1 ? -0.0
                                  : i % 5 == 2 ? 0.0
                                               : u);
                }
                nb_tensor *s = nb_sum_to(g, x, 3, (int64_t[]){C, 1, 1});
                nb_tensor *m = nb_max(g, y, (const int[]){0, 2, 3}, 3, false);
                assert_non_null(s);
                assert_non_null(m);
                for (int64_t c = 0; c < C; c++) {
                    if (dt == NB_F32)
                        CHANNEL_EXPECT(float, f32);
                    else
                        CHANNEL_EXPECT(double, f64);
                }
                nb_graph_free(g);
            }
}

/* A long f32 sum is accurate (pairwise), and matches a double reference. */
static void test_accuracy(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_graph_set_threads(g, 3);
    int64_t n = 1000003;
    nb_tensor *x = nb_zeros(g, NB_F32, 1, &n);
    fill_random(x, 99);
    double ref = 0;
    for (int64_t i = 0; i < n; i++)
        ref += nb_tensor_get(x, i);
    nb_tensor *s = nb_sum(g, x, NULL, 0, false);
    tc_near(nb_tensor_item(s), ref, 1e-3);
    nb_tensor *col =
        nb_sum_to(g, nb_broadcast_to(g, nb_scalar(g, NB_F32, 0.1f), 2, (int64_t[]){100000, 2}), 1,
                  (int64_t[]){2});
    tc_near(nb_tensor_get(col, 0), 10000, 0.5);
    nb_graph_free(g);
}

/* ---------------------------------------------------------------- errors */

static void expect_error(nb_graph *g, nb_tensor *r, nb_status code, const char *op)
{
    assert_null(r);
    assert_int_equal(nb_graph_status(g), code);
    assert_string_equal(nb_graph_error(g)->where, op);
    if (!strstr(nb_graph_error(g)->msg, op))
        fail_msg("message '%s' does not name %s", nb_graph_error(g)->msg, op);
    nb_graph_clear_error(g);
}

static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(g, NB_F64, 2, (int64_t[]){2, 3});
    static const struct {
        reduce_fn fn;
        const char *name;
    } ops[] = {{nb_sum, "sum"}, {nb_mean, "mean"}, {nb_max, "max"}, {nb_min, "min"}};
    for (size_t k = 0; k < 4; k++) {
        reduce_fn fn = ops[k].fn;
        const char *name = ops[k].name;
        expect_error(g, fn(g, x, (int[]){2}, 1, false), NB_ERR_ARG, name);
        expect_error(g, fn(g, x, (int[]){-3}, 1, false), NB_ERR_ARG, name);
        expect_error(g, fn(g, x, (int[]){1, -1}, 2, false), NB_ERR_ARG, name);
        expect_error(g, fn(g, x, (int[]){0, 0}, 2, true), NB_ERR_ARG, name);
        expect_error(g, fn(g, x, (int[]){0}, -1, false), NB_ERR_ARG, name);
        expect_error(g, fn(g, x, NULL, 2, false), NB_ERR_NULL, name);
        expect_error(g, fn(g, nb_scalar(g, NB_F64, 1), (int[]){0}, 1, false), NB_ERR_ARG, name);
        /* a NULL input is quiet */
        assert_null(fn(g, NULL, NULL, 0, false));
        assert_int_equal(nb_graph_status(g), NB_OK);
    }
    nb_tensor *e = nb_zeros(g, NB_F64, 2, (int64_t[]){3, 0});
    expect_error(g, nb_max(g, e, (int[]){-1}, 1, false), NB_ERR_SHAPE, "max");
    expect_error(g, nb_max(g, e, NULL, 0, true), NB_ERR_SHAPE, "max");
    expect_error(g, nb_min(g, e, (int[]){1}, 1, false), NB_ERR_SHAPE, "min");
    assert_null(nb_min(g, e, NULL, 0, false));
    assert_non_null(strstr(nb_graph_error(g)->msg, "minimum of no elements"));
    nb_graph_clear_error(g);

    /* argmax */
    expect_error(g, nb_argmax(g, x, 2), NB_ERR_ARG, "argmax");
    expect_error(g, nb_argmax(g, x, -3), NB_ERR_ARG, "argmax");
    expect_error(g, nb_argmax(g, nb_scalar(g, NB_F64, 1), 0), NB_ERR_ARG, "argmax");
    expect_error(g, nb_argmax(g, e, 1), NB_ERR_SHAPE, "argmax");
    /* f32 holds indices exactly only up to 2^24 (an empty tensor suffices) */
    nb_tensor *long32 = nb_zeros(g, NB_F32, 2, (int64_t[]){0, (1 << 24) + 1});
    expect_error(g, nb_argmax(g, long32, 1), NB_ERR_ARG, "argmax");
    assert_non_null(nb_argmax(g, nb_zeros(g, NB_F32, 2, (int64_t[]){0, 1 << 24}), 1));
    assert_non_null(nb_argmax(g, nb_zeros(g, NB_F64, 2, (int64_t[]){0, (1 << 24) + 1}), 1));
    assert_null(nb_argmax(g, NULL, 0));
    assert_null(nb_argmax(NULL, x, 0));
    assert_int_equal(nb_graph_status(g), NB_OK);

    /* logsumexp, var */
    expect_error(g, nb_logsumexp(g, x, 2, false), NB_ERR_ARG, "logsumexp");
    expect_error(g, nb_logsumexp(g, x, -3, true), NB_ERR_ARG, "logsumexp");
    expect_error(g, nb_logsumexp(g, nb_scalar(g, NB_F64, 1), 0, false), NB_ERR_ARG, "logsumexp");
    expect_error(g, nb_var(g, x, 2, false, 1), NB_ERR_ARG, "var");
    expect_error(g, nb_var(g, x, 0, false, -1), NB_ERR_ARG, "var");
    expect_error(g, nb_var(g, x, 0, false, NAN), NB_ERR_ARG, "var");
    expect_error(g, nb_var(g, x, 0, false, INFINITY), NB_ERR_ARG, "var");
    assert_null(nb_logsumexp(g, NULL, 0, false));
    assert_null(nb_var(g, NULL, 0, false, 1));
    assert_null(nb_logsumexp(NULL, x, 0, false));
    assert_null(nb_var(NULL, x, 0, false, 1));
    assert_int_equal(nb_graph_status(g), NB_OK);

    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 2, 3};
    static const struct {
        to_fn fn;
        const char *name;
    } tos[] = {{nb_sum_to, "sum_to"}, {nb_broadcast_to, "broadcast_to"}};
    for (size_t k = 0; k < 2; k++) {
        expect_error(g, tos[k].fn(g, x, 9, nine), NB_ERR_RANK, tos[k].name);
        expect_error(g, tos[k].fn(g, x, -1, nine), NB_ERR_RANK, tos[k].name);
        expect_error(g, tos[k].fn(g, x, 2, NULL), NB_ERR_NULL, tos[k].name);
        expect_error(g, tos[k].fn(g, x, 2, (int64_t[]){2, -3}), NB_ERR_ARG, tos[k].name);
        assert_null(tos[k].fn(g, NULL, 1, (int64_t[]){3}));
        assert_int_equal(nb_graph_status(g), NB_OK);
    }
    /* sum_to a shape that does not broadcast to x's */
    expect_error(g, nb_sum_to(g, x, 1, (int64_t[]){2}), NB_ERR_SHAPE, "sum_to");
    expect_error(g, nb_sum_to(g, x, 2, (int64_t[]){2, 2}), NB_ERR_SHAPE, "sum_to");
    expect_error(g, nb_sum_to(g, x, 3, (int64_t[]){1, 2, 3}), NB_ERR_SHAPE, "sum_to");
    /* broadcast_to an incompatible shape */
    expect_error(g, nb_broadcast_to(g, x, 2, (int64_t[]){4, 3}), NB_ERR_SHAPE, "broadcast_to");
    expect_error(g, nb_broadcast_to(g, x, 1, (int64_t[]){3}), NB_ERR_SHAPE, "broadcast_to");
    expect_error(g, nb_broadcast_to(g, x, 3, (int64_t[]){5, 2, 1}), NB_ERR_SHAPE, "broadcast_to");

    /* the message names the shapes and the bad value */
    assert_null(nb_sum(g, x, (int[]){5}, 1, false));
    assert_non_null(strstr(nb_graph_error(g)->msg, "[2,3]"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "5"));
    nb_graph_clear_error(g);
    assert_null(nb_sum_to(g, x, 1, (int64_t[]){4}));
    assert_non_null(strstr(nb_graph_error(g)->msg, "[2,3]"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "[4]"));
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_grad),        cmocka_unit_test(test_sum_to_grad),
        cmocka_unit_test(test_broadcast_to_grad),  cmocka_unit_test(test_values),
        cmocka_unit_test(test_grad_values),        cmocka_unit_test(test_max_ties),
        cmocka_unit_test(test_logsumexp_var_grad), cmocka_unit_test(test_min_argmax_values),
        cmocka_unit_test(test_min_ties),           cmocka_unit_test(test_logsumexp_var_values),
        cmocka_unit_test(test_axis_helpers),       cmocka_unit_test(test_compositions_second_order),
        cmocka_unit_test(test_second_order),       cmocka_unit_test(test_empty),
        cmocka_unit_test(test_threads_identical),  cmocka_unit_test(test_channel_order),
        cmocka_unit_test(test_accuracy),           cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
