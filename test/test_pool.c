/* Pooling: max_pool2d, avg_pool2d, their adjoint primitives (max_unpool2d,
 * max_gather2d, avg_unpool2d) and the 1-D forms. Values and argmax against
 * naive loops over odd and even sizes, kernels 1-3, strides 1-3, padding
 * 0-1; ties and NaN; gradient checks in f64 (reverse, forward, f32 against
 * f64); second order against finite differences; forward against reverse
 * by dot products; 1 against 2 threads bit for bit; every bad input. */

#include "tc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ------------------------------------------------------------ helpers */

static nb_tensor *from(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, const double *vals)
{
    nb_tensor *t = nb_zeros(g, dt, rank, shape);
    assert_non_null(t);
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, vals[i]);
    return t;
}

static nb_tensor *random_tensor(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape,
                                uint64_t seed)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_tensor *t = nb_rand_uniform(g, &rng, dt, rank, shape, -2, 2);
    assert_non_null(t);
    return t;
}

static bool same_bits(nb_tensor *a, nb_tensor *b)
{
    if (nb_tensor_size(a) != nb_tensor_size(b) || nb_tensor_dtype(a) != nb_tensor_dtype(b))
        return false;
    size_t n = (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a));
    return memcmp(nb_tensor_data(a), nb_tensor_data(b), n) == 0;
}

/* One window setting over an input plane of h x w. */
typedef struct pool_case {
    int64_t h, w;
    nb_pool2d_opts o;
} pool_case;

/* Every valid combination of kernel 1-3 (square and 1x3, 3x2), stride
 * 1-3, padding 0-1 over odd and even plane sizes (kernel no larger than
 * the padded plane, padding at most half the kernel). */
static int make_cases(pool_case *out, int cap)
{
    static const int64_t planes[][2] = {{5, 6}, {4, 7}, {3, 3}, {1, 4}};
    static const int64_t kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {1, 3}, {3, 2}};
    int n = 0;
    for (size_t pl = 0; pl < COUNT(planes); pl++)
        for (size_t k = 0; k < COUNT(kernels); k++)
            for (int64_t s = 1; s <= 3; s++)
                for (int64_t p = 0; p <= 1; p++) {
                    pool_case c = {planes[pl][0], planes[pl][1], {{0}, {0}, {0}}};
                    bool ok = true;
                    for (int d = 0; d < 2; d++) {
                        int64_t kk = kernels[k][d], pp = p <= kk / 2 ? p : 0;
                        c.o.kernel[d] = kk;
                        c.o.stride[d] = d == 0 ? s : (s % 3) + 1; /* strides differ per axis */
                        c.o.padding[d] = pp;
                        ok &= kk <= (d == 0 ? c.h : c.w) + 2 * pp;
                    }
                    if (ok && p == 1 && !c.o.padding[0] && !c.o.padding[1])
                        ok = false; /* same as p = 0 */
                    if (ok) {
                        assert_true(n < cap);
                        out[n++] = c;
                    }
                }
    return n;
}

/* Naive pooling of x [N,C,H,W] in f64: for each window, its maximum (first
 * maximum in scan order, or the first NaN) with the argmax, and its sum
 * over the elements inside the input divided by the window's size. */
static void naive_pool(const nb_tensor *x, const nb_pool2d_opts *o, double *mx, int64_t *arg,
                       double *avg, int64_t *oh_out, int64_t *ow_out)
{
    const int64_t *s = nb_tensor_shape(x);
    int64_t H = s[2], W = s[3];
    int64_t OH = (H + 2 * o->padding[0] - o->kernel[0]) / o->stride[0] + 1;
    int64_t OW = (W + 2 * o->padding[1] - o->kernel[1]) / o->stride[1] + 1;
    *oh_out = OH;
    *ow_out = OW;
    int64_t k = 0;
    for (int64_t pl = 0; pl < s[0] * s[1]; pl++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++, k++) {
                double best = 0, sum = 0;
                int64_t at = -1;
                for (int64_t a = 0; a < o->kernel[0]; a++)
                    for (int64_t b = 0; b < o->kernel[1]; b++) {
                        int64_t r = i * o->stride[0] - o->padding[0] + a;
                        int64_t c = j * o->stride[1] - o->padding[1] + b;
                        if (r < 0 || r >= H || c < 0 || c >= W)
                            continue;
                        double v = nb_tensor_get(x, pl * H * W + r * W + c);
                        sum += v;
                        if (at < 0 || (!isnan(best) && (v > best || isnan(v)))) {
                            best = v;
                            at = r * W + c;
                        }
                    }
                mx[k] = best;
                arg[k] = at;
                avg[k] = sum / (double)(o->kernel[0] * o->kernel[1]);
            }
}

/* ------------------------------------------------------------- values */

static void test_values(void **state)
{
    (void)state;
    pool_case cases[256];
    int n = make_cases(cases, (int)COUNT(cases));
    assert_true(n > 60);
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (int c = 0; c < n; c++) {
            nb_graph *g = nb_graph_new();
            int64_t shape[4] = {2, 3, cases[c].h, cases[c].w};
            nb_tensor *x = random_tensor(g, (nb_dtype)dt, 4, shape, 11 + (uint64_t)c);
            nb_tensor *mx = nb_max_pool2d(g, x, &cases[c].o);
            nb_tensor *av = nb_avg_pool2d(g, x, &cases[c].o);
            assert_non_null(mx);
            assert_non_null(av);
            double want_max[512], want_avg[512];
            int64_t want_arg[512], OH, OW;
            naive_pool(x, &cases[c].o, want_max, want_arg, want_avg, &OH, &OW);
            assert_int_equal(nb_tensor_rank(mx), 4);
            assert_int_equal(nb_tensor_shape(mx)[0], 2);
            assert_int_equal(nb_tensor_shape(mx)[1], 3);
            assert_int_equal(nb_tensor_shape(mx)[2], OH);
            assert_int_equal(nb_tensor_shape(mx)[3], OW);
            assert_int_equal(nb_tensor_size(av), 6 * OH * OW);
            const nb_attrs *a = nb_op_attrs(mx);
            assert_int_equal(a->n_idx, nb_tensor_size(mx));
            double tol = dt == NB_F32 ? 1e-6 : 1e-15;
            for (int64_t k = 0; k < nb_tensor_size(mx); k++) {
                tc_near(nb_tensor_get(mx, k), want_max[k], 0);
                assert_int_equal(a->idx[k], want_arg[k]);
                tc_near(nb_tensor_get(av, k), want_avg[k], tol);
            }
            assert_int_equal(nb_graph_status(g), NB_OK);
            nb_graph_free(g);
        }
}

/* The 1-D forms are the 2-D ops on [N,C,1,L]. */
static void test_1d_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = random_tensor(g, NB_F64, 3, (int64_t[]){2, 3, 7}, 5);
    for (int64_t k = 1; k <= 3; k++)
        for (int64_t s = 1; s <= 3; s++)
            for (int64_t p = 0; p <= k / 2; p++) {
                nb_tensor *m1 = nb_max_pool1d(g, x, k, s, p), *a1 = nb_avg_pool1d(g, x, k, s, p);
                nb_tensor *x4 = nb_reshape(g, x, 4, (int64_t[]){2, 3, 1, 7});
                nb_pool2d_opts o = {{1, k}, {1, s}, {0, p}};
                nb_tensor *m2 = nb_max_pool2d(g, x4, &o), *a2 = nb_avg_pool2d(g, x4, &o);
                assert_non_null(m1);
                assert_non_null(a1);
                assert_int_equal(nb_tensor_rank(m1), 3);
                assert_int_equal(nb_tensor_shape(m1)[2], (7 + 2 * p - k) / s + 1);
                assert_int_equal(nb_tensor_shape(a1)[2], nb_tensor_shape(a1)[2]);
                assert_true(same_bits(m1, m2));
                assert_true(same_bits(a1, a2));
            }
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* An empty batch pools to an empty batch, in every op and both modes. */
static void test_empty_batch(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_pool2d_opts o = {{3, 3}, {2, 2}, {1, 1}};
    nb_tensor *x =
        nb_tensor_set_requires_grad(nb_zeros(g, NB_F32, 4, (int64_t[]){0, 3, 5, 6}), true);
    nb_tensor *mx = nb_max_pool2d(g, x, &o), *av = nb_avg_pool2d(g, x, &o);
    assert_non_null(mx);
    assert_non_null(av);
    assert_int_equal(nb_tensor_shape(mx)[2], 3);
    assert_int_equal(nb_tensor_shape(mx)[3], 3);
    assert_int_equal(nb_tensor_size(mx), 0);
    assert_int_equal(nb_op_attrs(mx)->n_idx, 0);
    nb_tensor *loss = nb_add(g, nb_sum(g, mx, NULL, 0, false), nb_sum(g, av, NULL, 0, false));
    nb_tensor *dx = NULL, *t = NULL;
    assert_int_equal(nb_grad(g, loss, NULL, &x, 1, &dx, false), NB_OK);
    assert_int_equal(nb_tensor_size(dx), 0);
    assert_int_equal(nb_jvp(g, loss, &x, &x, 1, &t), NB_OK);
    assert_int_equal(nb_tensor_size(nb_avg_unpool2d(g, av, &o, 5, 6)), 0);
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* Ties go to the first maximum in scan order (rows top to bottom, each
 * left to right), in reverse and forward mode; NaN propagates and its first
 * occurrence is the argmax; padding never wins, even against -inf. */
static void test_ties_nan(void **state)
{
    (void)state;
    for (int dt = NB_F32; dt <= NB_F64; dt++) {
        nb_graph *g = nb_graph_new();
        /* one 4x4 plane, 2x2 windows, stride 2 */
        double v[] = {1, 3, 2, 2, /**/ 3, 0, 2, 2, /**/ NAN, 5, -1, -1, /**/ 7, NAN, -1, -1};
        nb_tensor *x =
            nb_tensor_set_requires_grad(from(g, (nb_dtype)dt, 4, (int64_t[]){1, 1, 4, 4}, v), true);
        nb_pool2d_opts o = {{2, 2}, {2, 2}, {0, 0}};
        nb_tensor *y = nb_max_pool2d(g, x, &o);
        assert_non_null(y);
        tc_near(nb_tensor_get(y, 0), 3, 0);
        tc_near(nb_tensor_get(y, 1), 2, 0);
        assert_true(isnan(nb_tensor_get(y, 2)));
        tc_near(nb_tensor_get(y, 3), -1, 0);
        const nb_attrs *a = nb_op_attrs(y);
        int64_t want_arg[] = {1, 2, 8, 10};
        for (int k = 0; k < 4; k++)
            assert_int_equal(a->idx[k], want_arg[k]);
        nb_tensor *seed =
            from(g, (nb_dtype)dt, 4, (int64_t[]){1, 1, 2, 2}, (double[]){10, 20, 30, 40});
        assert_int_equal(nb_backward_seed(g, y, seed), NB_OK);
        double want_grad[16] = {0};
        want_grad[1] = 10, want_grad[2] = 20, want_grad[8] = 30, want_grad[10] = 40;
        for (int k = 0; k < 16; k++)
            tc_near(nb_tensor_get(nb_tensor_grad(x), k), want_grad[k], 0);
        double tv[16];
        for (int k = 0; k < 16; k++)
            tv[k] = k + 1;
        nb_tensor *t = from(g, (nb_dtype)dt, 4, (int64_t[]){1, 1, 4, 4}, tv), *ty = NULL;
        assert_int_equal(nb_jvp(g, y, &x, &t, 1, &ty), NB_OK);
        for (int k = 0; k < 4; k++)
            tc_near(nb_tensor_get(ty, k), tv[want_arg[k]], 0);
        /* the average of a window with a NaN is NaN, the others are not */
        nb_tensor *av = nb_avg_pool2d(g, x, &o);
        tc_near(nb_tensor_get(av, 0), 7.0 / 4, 0);
        assert_true(isnan(nb_tensor_get(av, 2)) && !isnan(nb_tensor_get(av, 3)));

        /* padding is not a value: a window of -inf and padding gives -inf
         * at the real element */
        nb_tensor *m = from(g, (nb_dtype)dt, 4, (int64_t[]){1, 1, 2, 2},
                            (double[]){-INFINITY, -INFINITY, -INFINITY, -INFINITY});
        nb_pool2d_opts pad = {{2, 2}, {1, 1}, {1, 1}};
        nb_tensor *ym = nb_max_pool2d(g, m, &pad);
        assert_int_equal(nb_tensor_size(ym), 9);
        int64_t first[] = {0, 0, 1, 0, 0, 1, 2, 2, 3}; /* first real element of each window */
        for (int k = 0; k < 9; k++) {
            assert_true(isinf(nb_tensor_get(ym, k)) && nb_tensor_get(ym, k) < 0);
            assert_int_equal(nb_op_attrs(ym)->idx[k], first[k]);
        }
        /* average pooling counts the padding as zeros: the corner window of
         * [[1,2],[3,4]] holds 1 real element of 4 */
        nb_tensor *q = from(g, (nb_dtype)dt, 4, (int64_t[]){1, 1, 2, 2}, (double[]){1, 2, 3, 4});
        nb_tensor *aq = nb_avg_pool2d(g, q, &pad);
        double want_aq[] = {0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1};
        for (int k = 0; k < 9; k++)
            tc_near(nb_tensor_get(aq, k), want_aq[k], 0);
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }
}

/* Element i of x (f32 or f64) as its bits, widened. */
static uint64_t bits_at(nb_tensor *x, int64_t i)
{
    if (nb_tensor_dtype(x) == NB_F32) {
        uint32_t b;
        memcpy(&b, nb_tensor_f32(x) + i, sizeof b);
        return b;
    }
    uint64_t b;
    memcpy(&b, nb_tensor_f64(x) + i, sizeof b);
    return b;
}

/* 2x2 windows of column stride 2 without padding, in rows of at least 4
 * outputs (read where they lie, a row's outputs in blocks whose last one is
 * moved back to the row's end), and max_unpool2d over them when they do not
 * overlap, in rows of at least 8 outputs (the plane written in one sweep),
 * and over the shorter rows (zeros and sums): the naive rule's maxima and
 * argmax for values full of ties, -0 and +0, infinities and NaN; the
 * maximum the very bits of x at the argmax; the unpooled plane 0 + u at each
 * argmax (-0 becomes +0, NaN stays) and +0 everywhere else, rows and columns
 * outside every window included; in both dtypes, row strides 1 (windows
 * overlapping by rows), 2 and 3 (rows between windows). */
static void test_direct_windows(void **state)
{
    (void)state;
    static const int64_t planes[][2] = {{4, 8},  {5, 9},  {7, 15}, {6, 16},
                                        {9, 17}, {3, 34}, {5, 17}, {8, 19}};
    static const double pick[] = {-2, -1, -0.0, 0, 1, 2, -INFINITY, INFINITY, NAN};
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (size_t pl = 0; pl < COUNT(planes); pl++)
            for (int64_t sh = 1; sh <= 3; sh++) {
                int64_t h = planes[pl][0], w = planes[pl][1];
                if (h < 2)
                    continue;
                nb_pool2d_opts o = {{2, 2}, {sh, 2}, {0, 0}};
                nb_graph *g = nb_graph_new();
                /* the arena full of NaN first: nothing below is zero by chance */
                assert_non_null(nb_full(g, NB_F64, 1, (int64_t[]){1 << 16}, NAN));
                nb_graph_reset(g);
                int64_t shape[4] = {2, 3, h, w}, n = 6 * h * w;
                double *xv = malloc((size_t)n * sizeof *xv);
                assert_non_null(xv);
                uint64_t r = 12345 + (uint64_t)(pl * 7 + (size_t)sh);
                for (int64_t i = 0; i < n; i++) {
                    r = r * 6364136223846793005u + 1442695040888963407u;
                    xv[i] = pick[(r >> 33) % COUNT(pick)];
                }
                nb_tensor *x = from(g, (nb_dtype)dt, 4, shape, xv);
                nb_tensor *y = nb_max_pool2d(g, x, &o);
                assert_non_null(y);
                int64_t m = nb_tensor_size(y), OH, OW;
                assert_true(nb_tensor_shape(y)[3] >= 4);
                double *want = malloc((size_t)m * sizeof *want), *avg = malloc((size_t)m * 8);
                int64_t *want_arg = malloc((size_t)m * sizeof *want_arg);
                assert_true(want && avg && want_arg);
                naive_pool(x, &o, want, want_arg, avg, &OH, &OW);
                const nb_attrs *a = nb_op_attrs(y);
                for (int64_t k = 0; k < m; k++) {
                    if (a->idx[k] != want_arg[k])
                        fail_msg("dtype %d plane %lldx%lld stride %lld: output %lld argmax %lld, "
                                 "not %lld",
                                 dt, (long long)h, (long long)w, (long long)sh, (long long)k,
                                 (long long)a->idx[k], (long long)want_arg[k]);
                    int64_t plane = k / (OH * OW);
                    assert_true(bits_at(y, k) == bits_at(x, plane * h * w + a->idx[k]));
                }
                /* unpool u, u holding -0 and NaN too */
                double *uv = malloc((size_t)m * sizeof *uv);
                assert_non_null(uv);
                for (int64_t k = 0; k < m; k++)
                    uv[k] = k % 5 == 0 ? -0.0 : k % 7 == 0 ? NAN : 0.25 * (double)(k % 9) - 1;
                nb_tensor *u = from(g, (nb_dtype)dt, 4, nb_tensor_shape(y), uv);
                nb_tensor *d = nb_max_unpool2d(g, u, y);
                nb_tensor *ref = nb_zeros(g, (nb_dtype)dt, 4, shape);
                assert_non_null(d);
                assert_non_null(ref);
                for (int64_t k = 0; k < m; k++) { /* the scatter: zeros, then each u added */
                    int64_t e = k / (OH * OW) * h * w + a->idx[k];
                    if (dt == NB_F32)
                        nb_tensor_f32(ref)[e] += nb_tensor_f32(u)[k];
                    else
                        nb_tensor_f64(ref)[e] += nb_tensor_f64(u)[k];
                }
                for (int64_t e = 0; e < n; e++)
                    if (bits_at(d, e) != bits_at(ref, e))
                        fail_msg("dtype %d plane %lldx%lld stride %lld: unpooled element %lld "
                                 "differs",
                                 dt, (long long)h, (long long)w, (long long)sh, (long long)e);
                assert_int_equal(nb_graph_status(g), NB_OK);
                free(xv);
                free(uv);
                free(want);
                free(avg);
                free(want_arg);
                nb_graph_free(g);
            }
}

/* Overlapping windows that pick the same element add their gradients; the
 * gradient of average pooling spreads each output over its window. */
static void test_grad_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_set_requires_grad(
        from(g, NB_F64, 4, (int64_t[]){1, 1, 1, 5}, (double[]){0, 9, 1, 2, 8}), true);
    nb_pool2d_opts o = {{1, 3}, {1, 1}, {0, 1}};
    nb_tensor *y = nb_max_pool2d(g, x, &o); /* windows [p,0,9] [0,9,1] [9,1,2] [1,2,8] [2,8,p] */
    assert_int_equal(nb_tensor_size(y), 5);
    nb_tensor *seed = from(g, NB_F64, 4, (int64_t[]){1, 1, 1, 5}, (double[]){1, 2, 4, 8, 16});
    assert_int_equal(nb_backward_seed(g, y, seed), NB_OK);
    double want[] = {0, 7, 0, 0, 24};
    for (int k = 0; k < 5; k++)
        tc_near(nb_tensor_get(nb_tensor_grad(x), k), want[k], 0);

    nb_tensor *z = nb_tensor_set_requires_grad(
        from(g, NB_F64, 4, (int64_t[]){1, 1, 2, 3}, (double[]){1, 2, 3, 4, 5, 6}), true);
    nb_pool2d_opts o2 = {{2, 2}, {1, 1}, {0, 0}};
    nb_tensor *az = nb_avg_pool2d(g, z, &o2); /* [1,1,1,2] */
    assert_int_equal(
        nb_backward_seed(g, az, from(g, NB_F64, 4, (int64_t[]){1, 1, 1, 2}, (double[]){4, 8})),
        NB_OK);
    double want_z[] = {1, 3, 2, 1, 3, 2};
    for (int k = 0; k < 6; k++)
        tc_near(nb_tensor_get(nb_tensor_grad(z), k), want_z[k], 0);

    /* x gathered at its own argmax is max pooling again: both inputs of
     * max_gather2d and max_unpool2d need a gradient here, and the argmax
     * input gets none */
    nb_tensor *w = nb_tensor_set_requires_grad(
        from(g, NB_F64, 4, (int64_t[]){1, 1, 1, 5}, (double[]){0, 9, 1, 2, 8}), true);
    nb_tensor *yw = nb_max_pool2d(g, w, &o);
    nb_tensor *again = nb_max_gather2d(g, w, yw);
    nb_tensor *back = nb_max_unpool2d(g, yw, yw);
    nb_tensor *dw = NULL, *dw2 = NULL;
    assert_int_equal(nb_grad(g, again, seed, &w, 1, &dw, false), NB_OK);
    for (int k = 0; k < 5; k++) {
        tc_near(nb_tensor_get(again, k), nb_tensor_get(y, k), 0);
        tc_near(nb_tensor_get(dw, k), want[k], 0);
    }
    /* back = u scattered to the argmax, u = yw itself: its gradient is
     * max_unpool2d(gather(seed)) through yw */
    nb_tensor *ones = nb_ones(g, NB_F64, 4, (int64_t[]){1, 1, 1, 5});
    assert_int_equal(nb_grad(g, back, ones, &w, 1, &dw2, false), NB_OK);
    double want_back[] = {0, 3, 0, 0, 2};
    for (int k = 0; k < 5; k++)
        tc_near(nb_tensor_get(dw2, k), want_back[k], 0);
    nb_graph_free(g);
}

/* ---------------------------------------------------- gradient checks */

static nb_tensor *max_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_max_pool2d(g, in[0], &((const pool_case *)ctx)->o);
}

static nb_tensor *avg_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_avg_pool2d(g, in[0], &((const pool_case *)ctx)->o);
}

/* max_unpool2d(u, max_pool2d(c)), differentiated in u (c is a constant) */
static nb_tensor *max_unpool_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_max_unpool2d(g, in[0], nb_max_pool2d(g, in[1], &((const pool_case *)ctx)->o));
}

/* max_gather2d(v, max_pool2d(c)), differentiated in v */
static nb_tensor *max_gather_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    return nb_max_gather2d(g, in[0], nb_max_pool2d(g, in[1], &((const pool_case *)ctx)->o));
}

static nb_tensor *avg_unpool_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const pool_case *c = ctx;
    return nb_avg_unpool2d(g, in[0], &c->o, c->h, c->w);
}

/* the same through nb_gradcheck's signature */
static nb_tensor *max_check_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n;
    return max_fn(g, x, ctx);
}

static nb_tensor *avg_check_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    (void)n;
    return avg_fn(g, x, ctx);
}

static void expect_gradcheck(nb_check_fn f, pool_case *c, nb_tensor *x, const char *what)
{
    nb_check_result r;
    nb_check_opts o = nb_check_defaults();
    assert_int_equal(nb_gradcheck(f, c, &x, 1, &o, &r), NB_OK);
    if (!r.pass || !r.reverse_ok || !r.forward_ok) {
        nb_check_print(&r, stderr);
        fail_msg("%s: %lldx%lld kernel %lldx%lld stride %lldx%lld padding %lldx%lld fails", what,
                 (long long)c->h, (long long)c->w, (long long)c->o.kernel[0],
                 (long long)c->o.kernel[1], (long long)c->o.stride[0], (long long)c->o.stride[1],
                 (long long)c->o.padding[0], (long long)c->o.padding[1]);
    }
}

static void test_gradcheck(void **state)
{
    (void)state;
    pool_case cases[256];
    int n = make_cases(cases, (int)COUNT(cases));
    for (int c = 0; c < n; c++) {
        pool_case *pc = &cases[c];
        tc_shape in = {4, {2, 2, pc->h, pc->w}};
        int64_t oh = (pc->h + 2 * pc->o.padding[0] - pc->o.kernel[0]) / pc->o.stride[0] + 1;
        int64_t ow = (pc->w + 2 * pc->o.padding[1] - pc->o.kernel[1]) / pc->o.stride[1] + 1;
        tc_shape out = {4, {2, 2, oh, ow}};
        tc_opts o = {.seed = 200 + (uint64_t)c};
        /* reverse against central differences, forward against reverse,
         * f32 against f64 */
        tc_check("max_pool2d", max_fn, pc, 1, &in, &o);
        tc_check("avg_pool2d", avg_fn, pc, 1, &in, &o);
        tc_check("avg_unpool2d", avg_unpool_fn, pc, 1, &out, &o);
        tc_opts pair = o;
        pair.no_grad_mask = 2;
        tc_check("max_unpool2d", max_unpool_fn, pc, 2, (tc_shape[]){out, in}, &pair);
        tc_check("max_gather2d", max_gather_fn, pc, 2, (tc_shape[]){in, in}, &pair);

        /* both modes against the numerical Jacobian */
        nb_graph *g = nb_graph_new();
        nb_tensor *x = random_tensor(g, NB_F64, 4, in.dims, 300 + (uint64_t)c);
        expect_gradcheck(max_check_fn, pc, x, "max_pool2d");
        expect_gradcheck(avg_check_fn, pc, x, "avg_pool2d");
        nb_graph_free(g);
    }
}

typedef struct pool1d_case {
    int64_t k, s, p;
} pool1d_case;

static nb_tensor *max1d_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const pool1d_case *c = ctx;
    return nb_max_pool1d(g, in[0], c->k, c->s, c->p);
}

static nb_tensor *avg1d_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const pool1d_case *c = ctx;
    return nb_avg_pool1d(g, in[0], c->k, c->s, c->p);
}

static void test_1d_grad(void **state)
{
    (void)state;
    static const pool1d_case cases[] = {{1, 1, 0}, {2, 2, 1}, {3, 1, 1}, {3, 2, 0}, {2, 3, 0}};
    static const tc_shape shapes[] = {{3, {2, 3, 7}}, {3, {1, 2, 6}}};
    for (size_t c = 0; c < COUNT(cases); c++)
        for (size_t s = 0; s < COUNT(shapes); s++) {
            tc_opts o = {.seed = 400 + c * 2 + s};
            tc_check("max_pool1d", max1d_fn, (void *)&cases[c], 1, &shapes[s], &o);
            tc_check("avg_pool1d", avg1d_fn, (void *)&cases[c], 1, &shapes[s], &o);
        }
}

/* ------------------------------------------------------- second order */

typedef nb_tensor *(*pool_fn)(nb_graph *, nb_tensor *, const nb_pool2d_opts *);

/* d/dx sum(pool(x)²) at x, values only */
static nb_tensor *grad_at(nb_graph *g, pool_fn pool, const nb_pool2d_opts *o, nb_tensor *x,
                          bool create)
{
    nb_tensor *y = nb_sum(g, nb_square(g, pool(g, x, o)), NULL, 0, false), *dx = NULL;
    assert_int_equal(nb_grad(g, y, NULL, &x, 1, &dx, create), NB_OK);
    return dx;
}

/* The Hessian-vector product H·v of sum(pool(x)²), as the gradient of
 * <∇f(x), v> through the recorded backward pass, equals the central
 * difference (∇f(x + εv) - ∇f(x - εv)) / 2ε, for max and average pooling,
 * with overlapping and padded windows. */
static void test_hessian_vector(void **state)
{
    (void)state;
    static const nb_pool2d_opts opts[] = {
        {{2, 2}, {2, 2}, {0, 0}}, {{3, 3}, {1, 2}, {1, 1}}, {{3, 2}, {2, 1}, {1, 0}}};
    static const pool_fn pools[] = {nb_max_pool2d, nb_avg_pool2d};
    int64_t shape[4] = {2, 2, 5, 6};
    for (size_t k = 0; k < COUNT(opts); k++)
        for (size_t p = 0; p < COUNT(pools); p++) {
            nb_graph *g = nb_graph_new();
            nb_tensor *x =
                nb_tensor_set_requires_grad(random_tensor(g, NB_F64, 4, shape, 20 + k), true);
            nb_tensor *v = random_tensor(g, NB_F64, 4, shape, 40 + k);
            nb_tensor *dx = grad_at(g, pools[p], &opts[k], x, true);
            nb_tensor *dv = nb_sum(g, nb_mul(g, dx, v), NULL, 0, false), *hv = NULL;
            assert_int_equal(nb_grad(g, dv, NULL, &x, 1, &hv, false), NB_OK);
            double eps = 1e-6;
            nb_tensor *xp = nb_zeros(g, NB_F64, 4, shape), *xm = nb_zeros(g, NB_F64, 4, shape);
            for (int64_t e = 0; e < nb_tensor_size(x); e++) {
                nb_tensor_set(xp, e, nb_tensor_get(x, e) + eps * nb_tensor_get(v, e));
                nb_tensor_set(xm, e, nb_tensor_get(x, e) - eps * nb_tensor_get(v, e));
            }
            nb_tensor_set_requires_grad(xp, true);
            nb_tensor_set_requires_grad(xm, true);
            nb_tensor *gp = grad_at(g, pools[p], &opts[k], xp, false);
            nb_tensor *gm = grad_at(g, pools[p], &opts[k], xm, false);
            double worst = 0;
            for (int64_t e = 0; e < nb_tensor_size(x); e++) {
                double fd = (nb_tensor_get(gp, e) - nb_tensor_get(gm, e)) / (2 * eps);
                worst = fmax(worst, fabs(fd - nb_tensor_get(hv, e)));
            }
            if (!(worst < 1e-6))
                fail_msg("%s opts %zu: H·v differs from finite differences by %g",
                         p ? "avg" : "max", k, worst);
            /* and it is not zero: the test would catch a missing rule */
            assert_true(tc_dot(hv, hv) > 1e-3);
            nb_graph_free(g);
        }
}

/* ------------------------------------------- forward against reverse */

/* For y = avg_pool2d(x): <J u, v> from a forward sweep equals <u, Jᵀ v>
 * from a reverse sweep, and both equal the adjoint pair's
 * <avg_pool2d(u), v> = <u, avg_unpool2d(v)>; likewise for the
 * max_gather2d / max_unpool2d pair. */
static void test_dot_products(void **state)
{
    (void)state;
    pool_case cases[256];
    int n = make_cases(cases, (int)COUNT(cases));
    for (int c = 0; c < n; c++) {
        const nb_pool2d_opts *o = &cases[c].o;
        nb_graph *g = nb_graph_new();
        int64_t shape[4] = {2, 3, cases[c].h, cases[c].w};
        nb_tensor *x =
            nb_tensor_set_requires_grad(random_tensor(g, NB_F64, 4, shape, 60 + c), true);
        nb_tensor *u = random_tensor(g, NB_F64, 4, shape, 61 + c);
        nb_tensor *y = nb_avg_pool2d(g, x, o);
        nb_tensor *v = random_tensor(g, NB_F64, 4, nb_tensor_shape(y), 62 + c);
        nb_tensor *ju = NULL, *jtv = NULL;
        assert_int_equal(nb_jvp(g, y, &x, &u, 1, &ju), NB_OK);
        assert_int_equal(nb_grad(g, y, v, &x, 1, &jtv, false), NB_OK);
        double lhs = tc_dot(ju, v), rhs = tc_dot(u, jtv);
        double adj = tc_dot(u, nb_avg_unpool2d(g, v, o, cases[c].h, cases[c].w));
        double direct = tc_dot(nb_avg_pool2d(g, u, o), v);
        double scale = fmax(1, fabs(lhs));
        if (!(fabs(lhs - rhs) <= 1e-12 * scale && fabs(adj - rhs) <= 1e-12 * scale &&
              fabs(direct - lhs) <= 1e-12 * scale))
            fail_msg("case %d: <Ju,v> %.17g, <u,J'v> %.17g, adjoint %.17g, direct %.17g", c, lhs,
                     rhs, adj, direct);

        nb_tensor *m = nb_max_pool2d(g, x, o);
        double gather = tc_dot(nb_max_gather2d(g, u, m), v);
        double unpool = tc_dot(u, nb_max_unpool2d(g, v, m));
        tc_near(gather, unpool, 1e-12 * fmax(1, fabs(gather)));
        nb_graph_free(g);
    }
}

/* --------------------------------------------------------------- threads */

/* Pooling and its gradients on 1 and 2 threads, bit for bit (the tensors
 * are large enough to be split). */
static void test_threads_identical(void **state)
{
    (void)state;
    static const nb_pool2d_opts opts[] = {{{2, 2}, {2, 2}, {0, 0}}, {{3, 3}, {1, 1}, {1, 1}}};
    /* many planes, and one large plane (fewer planes than threads) */
    static const int64_t shapes[][4] = {{4, 8, 33, 35}, {1, 1, 190, 200}};
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (size_t k = 0; k < 2 * COUNT(opts); k++) {
            const nb_pool2d_opts *o = &opts[k % COUNT(opts)];
            const int64_t *shape = shapes[k / COUNT(opts)];
            nb_tensor *res[2][6];
            nb_graph *gs[2];
            for (int t = 0; t < 2; t++) {
                nb_graph *g = gs[t] = nb_graph_new();
                nb_graph_set_threads(g, t + 1);
                nb_tensor *x =
                    nb_tensor_set_requires_grad(random_tensor(g, (nb_dtype)dt, 4, shape, 7), true);
                nb_tensor *mx = nb_max_pool2d(g, x, o);
                nb_tensor *av = nb_avg_pool2d(g, x, o);
                nb_tensor *seed = random_tensor(g, (nb_dtype)dt, 4, nb_tensor_shape(mx), 8);
                nb_tensor *loss =
                    nb_add(g, nb_sum(g, nb_mul(g, mx, seed), NULL, 0, false),
                           nb_sum(g, nb_mul(g, av, nb_square(g, av)), NULL, 0, false));
                nb_tensor *dx = NULL;
                assert_int_equal(nb_grad(g, loss, NULL, &x, 1, &dx, false), NB_OK);
                res[t][0] = mx;
                res[t][1] = av;
                res[t][2] = dx;
                res[t][3] = nb_max_gather2d(g, x, mx);
                res[t][4] = nb_avg_unpool2d(g, seed, o, shape[2], shape[3]);
                res[t][5] = nb_zeros(g, NB_F64, 1, (int64_t[]){nb_op_attrs(mx)->n_idx});
                assert_non_null(res[t][5]);
                for (int64_t e = 0; e < nb_op_attrs(mx)->n_idx; e++)
                    nb_tensor_set(res[t][5], e, (double)nb_op_attrs(mx)->idx[e]);
            }
            for (int r = 0; r < 6; r++)
                if (!same_bits(res[0][r], res[1][r]))
                    fail_msg("dtype %d opts %zu result %d differs between 1 and 2 threads", dt, k,
                             r);
            nb_graph_free(gs[0]);
            nb_graph_free(gs[1]);
        }
}

/* ---------------------------------------------------------- out of memory */

/* Every allocation failing in turn while a max pooling is built: x (720 KB)
 * and the result (180 KB) fit in the graph's first 1 MB block, the argmax
 * (360 KB) needs a block of its own, and so do the kernel's tables after
 * it; when either fails the op gives NB_ERR_NOMEM under its name, and
 * nothing leaks. */
static void test_out_of_memory(void **state)
{
    (void)state;
    int pool_failures = 0;
    for (long fail = 1; fail < 20; fail++) {
        tc_counting c = {.fail_at = fail};
        nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
        if (!g)
            continue;
        nb_tensor *x = nb_zeros(g, NB_F32, 4, (int64_t[]){1, 1, 360, 500});
        nb_tensor *y = x ? nb_max_pool2d(g, x, &(nb_pool2d_opts){{2, 2}, {2, 2}, {0, 0}}) : NULL;
        if (x && !y) {
            assert_int_equal(nb_graph_status(g), NB_ERR_NOMEM);
            assert_string_equal(nb_graph_error(g)->where, "max_pool2d");
            pool_failures++;
        }
        nb_graph_free(g);
        assert_int_equal(c.live, 0);
    }
    assert_int_equal(pool_failures, 2);

    /* the 1-D form fails under the op that ran out of memory */
    int failures_1d = 0;
    for (long fail = 1; fail < 20; fail++) {
        tc_counting c = {.fail_at = fail};
        nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
        if (!g)
            continue;
        nb_tensor *x = nb_zeros(g, NB_F32, 3, (int64_t[]){1, 1, 180000});
        nb_tensor *y = x ? nb_max_pool1d(g, x, 2, 2, 0) : NULL;
        if (x && !y) {
            assert_int_equal(nb_graph_status(g), NB_ERR_NOMEM);
            failures_1d++;
        }
        nb_graph_free(g);
        assert_int_equal(c.live, 0);
    }
    assert_true(failures_1d >= 2);
}

/* ---------------------------------------------------------------- errors */

/* op failed with code under its name, the message naming the op and
 * `shape`, and nothing was recorded (no evaluation counted). */
static void expect_error(nb_graph *g, nb_tensor *r, nb_status code, const char *op,
                         const char *shape, uint64_t evals)
{
    assert_null(r);
    if (nb_graph_status(g) != code)
        fail_msg("%s: status %d, expected %d (%s)", op, nb_graph_status(g), code,
                 nb_graph_error(g)->msg);
    assert_string_equal(nb_graph_error(g)->where, op);
    const char *msg = nb_graph_error(g)->msg;
    if (!strstr(msg, op) || !strstr(msg, shape))
        fail_msg("message '%s' does not name %s and %s", msg, op, shape);
    assert_int_equal(nb_graph_evals(g), evals);
    nb_graph_clear_error(g);
}

/* Windows that do not fit x [2,3,4,5], the error and a part of its message. */
static const struct {
    nb_pool2d_opts o;
    nb_status code;
    const char *said;
} bad_windows[] = {
    /* kernel larger than the padded input: 7 > 4 + 2·1 on H, 6 > 5 on W */
    {{{7, 2}, {1, 1}, {1, 1}}, NB_ERR_SHAPE, "[2,3,4,5]"},
    {{{2, 6}, {1, 1}, {0, 0}}, NB_ERR_SHAPE, "padded input 4x5"},
    /* stride < 1 */
    {{{2, 2}, {0, 1}, {0, 0}}, NB_ERR_ARG, "stride 0x1"},
    {{{2, 2}, {1, -2}, {0, 0}}, NB_ERR_ARG, "[2,3,4,5]"},
    /* kernel < 1 */
    {{{0, 2}, {1, 1}, {0, 0}}, NB_ERR_ARG, "kernel 0x2"},
    /* negative padding, padding more than half the kernel */
    {{{2, 2}, {1, 1}, {-1, 0}}, NB_ERR_ARG, "padding -1x0"},
    {{{3, 3}, {1, 1}, {1, 2}}, NB_ERR_ARG, "half the kernel 3x3 on axis W"},
    {{{1, 1}, {1, 1}, {1, 0}}, NB_ERR_ARG, "[2,3,4,5]"},
};

static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(g, NB_F64, 4, (int64_t[]){2, 3, 4, 5});
    nb_tensor *x3 = nb_zeros(g, NB_F64, 3, (int64_t[]){2, 3, 5});
    uint64_t ev = nb_graph_evals(g);
    static const pool_fn pools[] = {nb_max_pool2d, nb_avg_pool2d};
    static const char *const names[] = {"max_pool2d", "avg_pool2d"};
    for (int p = 0; p < 2; p++) {
        const char *op = names[p];
        for (size_t k = 0; k < COUNT(bad_windows); k++)
            expect_error(g, pools[p](g, x, &bad_windows[k].o), bad_windows[k].code, op,
                         bad_windows[k].said, ev);
        /* rank other than 4 */
        expect_error(g, pools[p](g, x3, &(nb_pool2d_opts){{2, 2}, {2, 2}, {0, 0}}), NB_ERR_SHAPE,
                     op, "[2,3,5] has rank 3, not 4", ev);
        /* an empty plane */
        nb_tensor *e = nb_zeros(g, NB_F64, 4, (int64_t[]){1, 1, 0, 3});
        ev = nb_graph_evals(g);
        expect_error(g, pools[p](g, e, &(nb_pool2d_opts){{1, 1}, {1, 1}, {0, 0}}), NB_ERR_SHAPE, op,
                     "[1,1,0,3]", ev);
        /* a padded plane beyond the kernels' 32-bit offsets (an empty batch:
         * nothing is allocated) */
        nb_tensor *huge = nb_zeros(g, NB_F64, 4, (int64_t[]){0, 1, 50000, 42948});
        ev = nb_graph_evals(g);
        expect_error(g, pools[p](g, huge, &(nb_pool2d_opts){{2, 2}, {2, 2}, {1, 0}}), NB_ERR_SHAPE,
                     op, "padded plane 50002x42948 of input [0,1,50000,42948] has more than", ev);
        assert_non_null(pools[p](g, huge, &(nb_pool2d_opts){{2, 2}, {2, 2}, {0, 0}}));
        ev = nb_graph_evals(g);
        /* NULL options; a NULL input is a quiet NULL */
        expect_error(g, pools[p](g, x, NULL), NB_ERR_NULL, op, "[2,3,4,5]", ev);
        assert_null(pools[p](g, NULL, &(nb_pool2d_opts){{2, 2}, {2, 2}, {0, 0}}));
        assert_int_equal(nb_graph_status(g), NB_OK);
    }
    /* the 1-D forms check under their own names */
    typedef nb_tensor *(*pool1_fn)(nb_graph *, nb_tensor *, int64_t, int64_t, int64_t);
    static const pool1_fn pools1[] = {nb_max_pool1d, nb_avg_pool1d};
    static const char *const names1[] = {"max_pool1d", "avg_pool1d"};
    for (int p = 0; p < 2; p++) {
        const char *op = names1[p];
        expect_error(g, pools1[p](g, x3, 8, 1, 1), NB_ERR_SHAPE, op,
                     "kernel 8 is larger than the padded input 7", ev);
        expect_error(g, pools1[p](g, x3, 2, 0, 0), NB_ERR_ARG, op, "stride 0", ev);
        expect_error(g, pools1[p](g, x3, 2, 1, -1), NB_ERR_ARG, op, "padding -1", ev);
        expect_error(g, pools1[p](g, x3, 3, 1, 2), NB_ERR_ARG, op, "on axis L", ev);
        expect_error(g, pools1[p](g, x, 2, 1, 0), NB_ERR_SHAPE, op, "[2,3,4,5] has rank 4, not 3",
                     ev);
        assert_null(pools1[p](g, NULL, 2, 1, 0));
        assert_int_equal(nb_graph_status(g), NB_OK);
    }

    /* avg_unpool2d: the window checked against [N,C,h,w], the input's size
     * against what pooling [h,w] gives */
    nb_pool2d_opts o = {{2, 2}, {2, 2}, {0, 0}};
    nb_tensor *u = nb_zeros(g, NB_F64, 4, (int64_t[]){2, 3, 2, 2});
    ev = nb_graph_evals(g);
    expect_error(g, nb_avg_unpool2d(g, u, &o, 4, 6), NB_ERR_SHAPE, "avg_unpool2d",
                 "[2,3,2,2] is not what pooling [2,3,4,6] gives ([2,3,2,3])", ev);
    expect_error(g, nb_avg_unpool2d(g, u, &o, 6, 4), NB_ERR_SHAPE, "avg_unpool2d",
                 "gives ([2,3,3,2])", ev);
    expect_error(g, nb_avg_unpool2d(g, u, &o, 1, 4), NB_ERR_SHAPE, "avg_unpool2d", "[2,3,1,4]", ev);
    /* a window so large that H + 2·padding passes INT64_MAX */
    expect_error(
        g,
        nb_avg_unpool2d(g, u, &(nb_pool2d_opts){{INT64_MAX, 1}, {1, 1}, {INT64_MAX / 2, 0}}, 2, 2),
        NB_ERR_SHAPE, "avg_unpool2d", "padded plane 9223372036854775807x2", ev);
    assert_null(nb_avg_unpool2d(NULL, u, &o, 4, 4));
    assert_null(nb_avg_unpool2d(g, NULL, &o, 4, 4));
    expect_error(g, nb_avg_unpool2d(g, u, &(nb_pool2d_opts){{2, 2}, {0, 2}, {0, 0}}, 4, 4),
                 NB_ERR_ARG, "avg_unpool2d", "stride 0x2", ev);
    expect_error(g, nb_avg_unpool2d(g, x3, &o, 4, 4), NB_ERR_SHAPE, "avg_unpool2d", "[2,3,5]", ev);
    expect_error(g, nb_avg_unpool2d(g, u, NULL, 4, 4), NB_ERR_NULL, "avg_unpool2d", "[2,3,2,2]",
                 ev);
    assert_non_null(nb_avg_unpool2d(g, u, &o, 5, 5)); /* floor: 5 pools to 2 */
    ev = nb_graph_evals(g);

    /* max_unpool2d and max_gather2d need a max_pool2d result that kept its
     * argmax, and inputs of the matching shape and dtype */
    nb_tensor *y = nb_max_pool2d(g, x, &o); /* [2,3,2,2] */
    nb_tensor *ya = nb_avg_pool2d(g, x, &o);
    ev = nb_graph_evals(g);
    static const char *const pair_names[] = {"max_unpool2d", "max_gather2d"};
    for (int p = 0; p < 2; p++) {
        const char *op = pair_names[p];
        nb_tensor *(*fn)(nb_graph *, nb_tensor *, nb_tensor *) =
            p == 0 ? nb_max_unpool2d : nb_max_gather2d;
        nb_tensor *right = p == 0 ? u : x, *wrong = p == 0 ? x : u;
        expect_error(g, fn(g, right, ya), NB_ERR_ARG, op, "made by avg_pool2d", ev);
        expect_error(g, fn(g, right, x), NB_ERR_ARG, op, "a leaf", ev);
        expect_error(g, fn(g, wrong, y), NB_ERR_SHAPE, op, "[2,3,2,2]", ev);
        expect_error(g, fn(g, nb_zeros(g, NB_F32, 4, nb_tensor_shape(right)), y), NB_ERR_DTYPE, op,
                     "different dtypes", ev);
        /* values only: the argmax is kept all the same */
        nb_graph_set_recording(g, false);
        nb_tensor *y_values = nb_max_pool2d(g, x, &o);
        assert_int_equal(nb_op_attrs(y_values)->n_idx, nb_tensor_size(y_values));
        assert_true(same_bits(fn(g, right, y_values), fn(g, right, y)));
        nb_graph_set_recording(g, true);
        ev = nb_graph_evals(g);
        assert_null(fn(g, NULL, y));
        assert_null(fn(g, right, NULL));
        assert_int_equal(nb_graph_status(g), NB_OK);
    }

    /* an index list given with the attributes is the caller's: the argmax
     * goes to the node's own array */
    nb_attrs given = {0};
    int64_t mine[3] = {7, 7, 7};
    given.ints[0] = given.ints[1] = given.ints[2] = given.ints[3] = 2;
    given.idx = mine;
    given.n_idx = 3;
    nb_tensor *ya2 = nb_apply(g, nb_op_find("max_pool2d"), &x, 1, &given);
    assert_non_null(ya2);
    assert_int_equal(nb_op_attrs(ya2)->n_idx, nb_tensor_size(ya2));
    assert_true(nb_op_attrs(ya2)->idx != mine && mine[0] == 7 && mine[2] == 7);
    assert_memory_equal(nb_op_attrs(ya2)->idx, nb_op_attrs(y)->idx,
                        (size_t)nb_tensor_size(y) * sizeof(int64_t));
    ev = nb_graph_evals(g);

    /* attributes given directly through nb_apply are checked the same way */
    nb_attrs bad = {0};
    bad.ints[0] = bad.ints[1] = 2; /* stride 0 */
    expect_error(g, nb_apply(g, nb_op_find("max_pool2d"), &x, 1, &bad), NB_ERR_ARG, "max_pool2d",
                 "stride 0x0", ev);
    expect_error(g, nb_apply(g, nb_op_find("avg_unpool2d"), &u, 1, &bad), NB_ERR_ARG,
                 "avg_unpool2d", "stride 0x0", ev);
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_1d_values),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_ties_nan),
        cmocka_unit_test(test_direct_windows),
        cmocka_unit_test(test_grad_values),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_1d_grad),
        cmocka_unit_test(test_hessian_vector),
        cmocka_unit_test(test_dot_products),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
