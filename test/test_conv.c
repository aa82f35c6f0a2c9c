/* Convolution: conv2d, conv_transpose2d and conv2d_weight_grad against a
 * direct convolution written from the formula, gradient checks of all
 * three in both modes over every combination of stride, padding,
 * dilation, groups and odd/even sizes, the adjoint (dot-product) identities,
 * a Hessian-vector product through a small convolutional network against
 * differences of its gradient, thread-count independence, conv1d, and the
 * errors the shape rules record. */

#include "tc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/gemm.h"

/* One convolution's sizes and settings. */
typedef struct conv_case {
    int64_t n, c, h, w, o, kh, kw;
    nb_conv_opts opts;
} conv_case;

/* x [n,c,h,w], w [o, c/groups, kh, kw] */
static conv_case make_case(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t kh,
                           int64_t kw, nb_conv_opts opts)
{
    return (conv_case){.n = n, .c = c, .h = h, .w = w, .o = o, .kh = kh, .kw = kw, .opts = opts};
}

/* stride, padding and dilation of the height, then of the width, and groups */
static nb_conv_opts axes(int64_t sh, int64_t ph, int64_t dh, int64_t sw, int64_t pw, int64_t dw,
                         int64_t groups)
{
    return (nb_conv_opts){{sh, sw}, {ph, pw}, {dh, dw}, groups};
}

static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

static int64_t case_oh(const conv_case *k)
{
    return out_len(k->h, k->kh, k->opts.stride[0], k->opts.padding[0], k->opts.dilation[0]);
}
static int64_t case_ow(const conv_case *k)
{
    return out_len(k->w, k->kw, k->opts.stride[1], k->opts.padding[1], k->opts.dilation[1]);
}

static void shape_x(const conv_case *k, int64_t *s)
{
    s[0] = k->n, s[1] = k->c, s[2] = k->h, s[3] = k->w;
}
static void shape_w(const conv_case *k, int64_t *s)
{
    s[0] = k->o, s[1] = k->c / k->opts.groups, s[2] = k->kh, s[3] = k->kw;
}
static void shape_y(const conv_case *k, int64_t *s)
{
    s[0] = k->n, s[1] = k->o, s[2] = case_oh(k), s[3] = case_ow(k);
}

/*
 * The direct convolution, from the formula, in double: calls visit(x index,
 * w index, y index) for every product x·w that adds into y. The three ops
 * are the three ways of summing these products.
 */
typedef struct triple {
    int64_t x, w, y;
} triple;

static int64_t triples(const conv_case *k, triple *out)
{
    int64_t G = k->opts.groups, cg = k->c / G, og = k->o / G, oh = case_oh(k), ow = case_ow(k);
    int64_t count = 0;
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t o = 0; o < k->o; o++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++)
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t a = 0; a < k->kh; a++)
                            for (int64_t b = 0; b < k->kw; b++) {
                                int64_t ih = i * k->opts.stride[0] - k->opts.padding[0] +
                                             a * k->opts.dilation[0];
                                int64_t iw = j * k->opts.stride[1] - k->opts.padding[1] +
                                             b * k->opts.dilation[1];
                                if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w)
                                    continue;
                                int64_t ci = (o / og) * cg + c;
                                if (out)
                                    out[count] = (triple){((n * k->c + ci) * k->h + ih) * k->w + iw,
                                                          ((o * cg + c) * k->kh + a) * k->kw + b,
                                                          ((n * k->o + o) * oh + i) * ow + j};
                                count++;
                            }
    return count;
}

static triple *naive_products(const conv_case *k, int64_t *count)
{
    *count = triples(k, NULL);
    triple *t = malloc((size_t)(*count + 1) * sizeof *t);
    assert_non_null(t);
    triples(k, t);
    return t;
}

static nb_tensor *random_tensor(nb_graph *g, nb_rng *rng, nb_dtype dt, const int64_t *shape)
{
    nb_tensor *t = nb_rand_uniform(g, rng, dt, 4, shape, -1, 1);
    assert_non_null(t);
    return t;
}

/* The same values in another dtype. */
static nb_tensor *as_dtype(nb_graph *g, nb_tensor *t, nb_dtype dt)
{
    nb_tensor *c = nb_zeros(g, dt, nb_tensor_rank(t), nb_tensor_shape(t));
    for (int64_t e = 0; e < nb_tensor_size(t); e++)
        nb_tensor_set(c, e, nb_tensor_get(t, e));
    return c;
}

/* got within tol of the direct sums want, relative to the sums of the
 * products' magnitudes (scale, at least 1): the bound of rounding in any
 * order of summation, and in the Winograd transforms */
static void expect_values(const char *what, const conv_case *k, const nb_tensor *got,
                          const double *want, const double *scale, int64_t size, double tol)
{
    assert_non_null(got);
    assert_int_equal(nb_tensor_size(got), size);
    for (int64_t e = 0; e < size; e++)
        if (!(fabs(nb_tensor_get(got, e) - want[e]) <= tol * fmax(1.0, scale[e])))
            fail_msg("%s %s n%lld c%lld %lldx%lld o%lld k%lldx%lld s%lld,%lld p%lld,%lld "
                     "d%lld,%lld g%lld: element %lld is %.17g, direct %.17g",
                     what, nb_dtype_name(nb_tensor_dtype(got)), (long long)k->n, (long long)k->c,
                     (long long)k->h, (long long)k->w, (long long)k->o, (long long)k->kh,
                     (long long)k->kw, (long long)k->opts.stride[0], (long long)k->opts.stride[1],
                     (long long)k->opts.padding[0], (long long)k->opts.padding[1],
                     (long long)k->opts.dilation[0], (long long)k->opts.dilation[1],
                     (long long)k->opts.groups, (long long)e, nb_tensor_get(got, e), want[e]);
}

/* All three ops on random operands, both dtypes, against the direct sums. */
static void check_values(const conv_case *k, uint64_t seed)
{
    int64_t sx[4], sw[4], sy[4];
    shape_x(k, sx), shape_w(k, sw), shape_y(k, sy);
    int64_t nx = sx[0] * sx[1] * sx[2] * sx[3], nw = sw[0] * sw[1] * sw[2] * sw[3],
            ny = sy[0] * sy[1] * sy[2] * sy[3];
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_tensor *x = random_tensor(g, &rng, NB_F64, sx), *w = random_tensor(g, &rng, NB_F64, sw),
              *gy = random_tensor(g, &rng, NB_F64, sy);
    int64_t count;
    triple *t = naive_products(k, &count);
    /* the sums, then (at + size) the sums of the products' magnitudes */
    double *y = calloc((size_t)(2 * ny), sizeof *y), *dx = calloc((size_t)(2 * nx), sizeof *dx),
           *dw = calloc((size_t)(2 * nw), sizeof *dw);
    const double *px = nb_tensor_f64(x), *pw = nb_tensor_f64(w), *pg = nb_tensor_f64(gy);
    for (int64_t e = 0; e < count; e++) {
        y[t[e].y] += px[t[e].x] * pw[t[e].w];
        dx[t[e].x] += pg[t[e].y] * pw[t[e].w];
        dw[t[e].w] += pg[t[e].y] * px[t[e].x];
        y[ny + t[e].y] += fabs(px[t[e].x] * pw[t[e].w]);
        dx[nx + t[e].x] += fabs(pg[t[e].y] * pw[t[e].w]);
        dw[nw + t[e].w] += fabs(pg[t[e].y] * px[t[e].x]);
    }
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F32 : NB_F64;
        double tol = d ? 1e-5 : 1e-12;
        nb_tensor *xd = as_dtype(g, x, dt), *wd = as_dtype(g, w, dt), *gd = as_dtype(g, gy, dt);
        expect_values("conv2d", k, nb_conv2d(g, xd, wd, &k->opts), y, y + ny, ny, tol);
        expect_values("conv_transpose2d", k, nb_conv_transpose2d(g, gd, wd, k->h, k->w, &k->opts),
                      dx, dx + nx, nx, tol);
        expect_values("conv2d_weight_grad", k,
                      nb_conv2d_weight_grad(g, xd, gd, k->kh, k->kw, &k->opts), dw, dw + nw, nw,
                      tol);
    }
    free(t), free(y), free(dx), free(dw);
    nb_graph_free(g);
}

/* Every combination the gradient checks run: stride 1-2, padding 0-2,
 * dilation 1-2, groups 1, 2 and C (= 4), odd and even sizes (5x5 input with
 * a 2x3 kernel, 6x4 with 3x2; a 1x1 kernel with stride 1 and no padding is
 * added as the case that needs no patch matrix). */
#define N_COMBOS (2 * 3 * 2 * 3 * 2 + 2)

static conv_case combo(int i)
{
    static const int64_t groups[3] = {1, 2, 4};
    conv_case k = {.n = 2, .c = 4, .o = 4, .opts = nb_conv_defaults()};
    if (i >= N_COMBOS - 2) { /* pointwise, one group and two */
        k.h = 3, k.w = 4, k.kh = k.kw = 1;
        k.opts.groups = i == N_COMBOS - 1 ? 2 : 1;
        return k;
    }
    bool odd = i % 2;
    i /= 2;
    k.opts.groups = groups[i % 3];
    i /= 3;
    k.opts.dilation[0] = k.opts.dilation[1] = 1 + i % 2;
    i /= 2;
    k.opts.padding[0] = k.opts.padding[1] = i % 3;
    i /= 3;
    k.opts.stride[0] = k.opts.stride[1] = 1 + i % 2;
    k.h = odd ? 5 : 6, k.w = odd ? 5 : 4, k.kh = odd ? 2 : 3, k.kw = odd ? 3 : 2;
    return k;
}

static void test_values(void **state)
{
    (void)state;
    for (int i = 0; i < N_COMBOS; i++) {
        conv_case k = combo(i);
        check_values(&k, 100 + (uint64_t)i);
    }
    /* unequal settings per axis, more channels per group, a batch of 3 */
    conv_case k = make_case(3, 6, 9, 7, 9, 3, 4, axes(2, 1, 1, 1, 2, 2, 3));
    check_values(&k, 7);
    /* one sample and one group: the products run with threads inside */
    k = make_case(1, 3, 8, 8, 5, 3, 3, nb_conv_defaults());
    check_values(&k, 8);
    /* taps that lie wholly in the padding (rows and columns) */
    k = make_case(2, 2, 2, 2, 2, 3, 3, axes(1, 2, 2, 2, 2, 2, 1));
    check_values(&k, 10);
    /* a batch of 11: the weight gradient sums runs of 1 and 2 samples */
    k = make_case(11, 2, 4, 5, 4, 2, 2, axes(1, 1, 1, 2, 0, 1, 2));
    check_values(&k, 9);
    /* a 9 x 8 kernel: more taps than the patch loops keep worked out */
    k = make_case(2, 2, 11, 10, 3, 9, 8, axes(1, 1, 1, 1, 1, 1, 1));
    check_values(&k, 11);
}

/* 3x3 kernels of stride 1 with 8 channels or more run as Winograd
 * F(2x2, 3x3) products (src/ops/winograd.c): padding 0-3 (conv_transpose2d
 * takes them up to 2, then the patch matrix), planes of odd and even
 * sizes (tiles cut by the edge), channels that are not multiples of the
 * kernel's tiles, a batch that ends in a short block (a block is about 256
 * tiles of whole samples: 42 samples of 2x2 tiles make blocks of 64, 64,
 * 64 ... and 42 - 3·... samples), and the weight gradient's runs of
 * samples. */
static void test_winograd_values(void **state)
{
    (void)state;
    static const int64_t sizes[4][2] = {{4, 4}, {5, 7}, {8, 6}, {9, 9}};
    for (int p = 0; p < 4; p++)
        for (int z = 0; z < 4; z++) {
            conv_case k = make_case(1 + z % 3, 8 + z, sizes[z][0] + 2 - p, sizes[z][1] + 2 - p,
                                    8 + 3 * (z % 2), 3, 3, axes(1, p, 1, 1, p, 1, 1));
            check_values(&k, 400 + (uint64_t)(p * 4 + z));
        }
    /* unequal padding per axis, a batch in several blocks and runs */
    conv_case k = make_case(42, 9, 4, 5, 10, 3, 3, axes(1, 1, 1, 1, 0, 1, 1));
    check_values(&k, 420);
    /* one large plane: blocks of one sample, more tiles than a block's */
    k = make_case(2, 8, 40, 36, 8, 3, 3, axes(1, 1, 1, 1, 1, 1, 1));
    check_values(&k, 421);
}

/* ------------------------------------------------------- gradient checks */

typedef struct check_ctx {
    conv_case k;
    int op; /* 0 conv2d, 1 conv_transpose2d, 2 conv2d_weight_grad */
} check_ctx;

static nb_tensor *conv_fn(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const check_ctx *c = ctx;
    if (c->op == 0)
        return nb_conv2d(g, in[0], in[1], &c->k.opts);
    if (c->op == 1)
        return nb_conv_transpose2d(g, in[0], in[1], c->k.h, c->k.w, &c->k.opts);
    return nb_conv2d_weight_grad(g, in[0], in[1], c->k.kh, c->k.kw, &c->k.opts);
}

static const char *const op_names[3] = {"conv2d", "conv_transpose2d", "conv2d_weight_grad"};

/* nb_gradcheck of f at in, in full mode and in fast mode: both pass */
static void check_both_modes(const char *label, nb_check_fn f, void *ctx, nb_tensor *const *in,
                             int n, uint64_t seed)
{
    for (int fast = 0; fast < 2; fast++) {
        nb_check_opts o = nb_check_defaults();
        o.fast = fast;
        o.seed = seed;
        nb_check_result r;
        if (nb_gradcheck(f, ctx, in, n, &o, &r) != NB_OK)
            fail_msg("%s: %s", label, r.error.msg);
        if (!r.pass) {
            fprintf(stderr, "%s (%s mode):\n", label, fast ? "fast" : "full");
            nb_check_print(&r, stderr);
        }
        assert_true(r.pass);
        assert_true(r.reverse_ok && r.forward_ok);
        assert_true(r.n_entries > 0);
    }
}

static void gradcheck_case(const conv_case *k, int op, uint64_t seed)
{
    int64_t s[3][4];
    shape_x(k, s[0]), shape_w(k, s[1]), shape_y(k, s[2]);
    /* the operands: (x, w), (y, w), (x, y) */
    const int64_t *shapes[2] = {s[op == 1 ? 2 : 0], s[op == 2 ? 2 : 1]};
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_tensor *in[2] = {random_tensor(g, &rng, NB_F64, shapes[0]),
                        random_tensor(g, &rng, NB_F64, shapes[1])};
    check_ctx c = {*k, op};
    char label[160];
    snprintf(label, sizeof label, "%s s%lld p%lld d%lld g%lld %lldx%lld k%lldx%lld", op_names[op],
             (long long)k->opts.stride[0], (long long)k->opts.padding[0],
             (long long)k->opts.dilation[0], (long long)k->opts.groups, (long long)k->h,
             (long long)k->w, (long long)k->kh, (long long)k->kw);
    check_both_modes(label, conv_fn, &c, in, 2, seed);
    nb_graph_free(g);
}

static void gradcheck_all(int op)
{
    for (int i = 0; i < N_COMBOS; i++) {
        conv_case k = combo(i);
        gradcheck_case(&k, op, 200 + (uint64_t)i);
    }
    /* Winograd products (8 channels, 3x3, stride 1): padding 1 on an odd
     * plane, padding 0 on an even one */
    conv_case w1 = make_case(1, 8, 5, 7, 8, 3, 3, axes(1, 1, 1, 1, 1, 1, 1));
    conv_case w0 = make_case(2, 8, 6, 6, 9, 3, 3, nb_conv_defaults());
    gradcheck_case(&w1, op, 260);
    gradcheck_case(&w0, op, 261);
}

static void test_gradcheck_conv2d(void **state)
{
    (void)state;
    gradcheck_all(0);
}

static void test_gradcheck_transpose(void **state)
{
    (void)state;
    gradcheck_all(1);
}

static void test_gradcheck_weight_grad(void **state)
{
    (void)state;
    gradcheck_all(2);
}

/* ------------------------------------------- forward against reverse */

/* <conv2d(x, w), gy> = <x, conv_transpose2d(gy, w)> = <w, weight_grad(x, gy)>,
 * and forward mode's tangent of conv2d against reverse mode's gradients */
static void test_dot_products(void **state)
{
    (void)state;
    for (int i = 0; i < N_COMBOS; i++) {
        conv_case k = combo(i);
        k.n = 3, k.h += 4, k.w += 5; /* larger than the gradient checks' */
        int64_t sx[4], sw[4], sy[4];
        shape_x(&k, sx), shape_w(&k, sw), shape_y(&k, sy);
        nb_graph *g = nb_graph_new();
        nb_rng rng;
        nb_rng_seed(&rng, 300 + (uint64_t)i);
        nb_tensor *x = random_tensor(g, &rng, NB_F64, sx), *w = random_tensor(g, &rng, NB_F64, sw),
                  *gy = random_tensor(g, &rng, NB_F64, sy);
        nb_tensor_set_requires_grad(x, true);
        nb_tensor_set_requires_grad(w, true);
        nb_tensor *y = nb_conv2d(g, x, w, &k.opts);
        double lhs = tc_dot(y, gy);
        double via_x = tc_dot(x, nb_conv_transpose2d(g, gy, w, k.h, k.w, &k.opts));
        double via_w = tc_dot(w, nb_conv2d_weight_grad(g, x, gy, k.kh, k.kw, &k.opts));
        double tol = 1e-12 * fmax(1.0, fabs(lhs));
        tc_near(via_x, lhs, tol);
        tc_near(via_w, lhs, tol);

        /* <J (u, v), gy> = <u, dx> + <v, dw> */
        nb_tensor *u = random_tensor(g, &rng, NB_F64, sx), *v = random_tensor(g, &rng, NB_F64, sw);
        nb_tensor *xs[2] = {x, w}, *ts[2] = {u, v}, *grads[2], *ty;
        assert_int_equal(nb_jvp(g, y, xs, ts, 2, &ty), NB_OK);
        assert_int_equal(nb_grad(g, y, gy, xs, 2, grads, false), NB_OK);
        double fwd = tc_dot(ty, gy), rev = tc_dot(u, grads[0]) + tc_dot(v, grads[1]);
        tc_near(fwd, rev, 1e-12 * fmax(1.0, fabs(rev)));
        nb_graph_free(g);
    }
}

/* ------------------------------------------------------ second order */

/* loss = sum(conv(tanh(conv(x, w1)), w2)) */
static nb_tensor *net(nb_graph *g, nb_tensor *x, nb_tensor *w1, nb_tensor *w2)
{
    nb_conv_opts o1 = nb_conv_defaults(), o2 = nb_conv_defaults();
    o1.padding[0] = o1.padding[1] = 1;
    o1.stride[1] = 2;
    o2.dilation[0] = 2;
    o2.groups = 2;
    nb_tensor *h = nb_tanh(g, nb_conv2d(g, x, w1, &o1));
    return nb_sum(g, nb_conv2d(g, h, w2, &o2), NULL, 0, false);
}

/* The gradient of the net at x + e·u, w1 + e·v1, w2 + e·v2, into grads (f64 arrays). */
static void net_grad(nb_tensor *const *p, nb_tensor *const *dir, double e, double **grads)
{
    nb_graph *g = nb_graph_new();
    nb_tensor *q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = nb_zeros(g, NB_F64, 4, nb_tensor_shape(p[i]));
        for (int64_t k = 0; k < nb_tensor_size(p[i]); k++)
            nb_tensor_set(q[i], k, nb_tensor_get(p[i], k) + e * nb_tensor_get(dir[i], k));
        nb_tensor_set_requires_grad(q[i], true);
    }
    nb_tensor *gr[3];
    assert_int_equal(nb_grad(g, net(g, q[0], q[1], q[2]), NULL, q, 3, gr, false), NB_OK);
    for (int i = 0; i < 3; i++)
        memcpy(grads[i], nb_tensor_f64(gr[i]), (size_t)nb_tensor_size(gr[i]) * sizeof(double));
    nb_graph_free(g);
}

/* H·v by reverse over reverse (nb_grad with create_graph, the backward
 * pass made of conv_transpose2d and conv2d_weight_grad, differentiated
 * again) against central differences of the gradient along v. */
static void test_hessian_vector(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    int64_t shapes[3][4] = {{2, 3, 6, 7}, {4, 3, 3, 3}, {2, 2, 2, 2}};
    nb_tensor *p[3], *v[3];
    for (int i = 0; i < 3; i++) {
        p[i] = nb_tensor_set_requires_grad(random_tensor(g, &rng, NB_F64, shapes[i]), true);
        v[i] = random_tensor(g, &rng, NB_F64, shapes[i]);
    }
    nb_tensor *gr[3], *hv[3];
    assert_int_equal(nb_grad(g, net(g, p[0], p[1], p[2]), NULL, p, 3, gr, true), NB_OK);
    nb_tensor *gv = NULL;
    for (int i = 0; i < 3; i++) {
        nb_tensor *t = nb_sum(g, nb_mul(g, gr[i], v[i]), NULL, 0, false);
        gv = gv ? nb_add(g, gv, t) : t;
    }
    assert_int_equal(nb_grad(g, gv, NULL, p, 3, hv, false), NB_OK);

    double *plus[3], *minus[3];
    for (int i = 0; i < 3; i++) {
        plus[i] = malloc((size_t)nb_tensor_size(p[i]) * sizeof(double));
        minus[i] = malloc((size_t)nb_tensor_size(p[i]) * sizeof(double));
    }
    double e = 1e-5;
    net_grad(p, v, e, plus);
    net_grad(p, v, -e, minus);
    double worst = 0, norm = 0;
    for (int i = 0; i < 3; i++)
        for (int64_t k = 0; k < nb_tensor_size(p[i]); k++) {
            double num = (plus[i][k] - minus[i][k]) / (2 * e);
            worst = fmax(worst, fabs(num - nb_tensor_get(hv[i], k)));
            norm = fmax(norm, fabs(num));
        }
    if (!(worst <= 1e-6 * fmax(1.0, norm)))
        fail_msg("H·v differs from differences of the gradient by %g (largest entry %g)", worst,
                 norm);
    assert_true(norm > 1e-3); /* the check means something */
    for (int i = 0; i < 3; i++)
        free(plus[i]), free(minus[i]);
    nb_graph_free(g);
}

/* The gradient's own gradient check: the backward pass of conv2d,
 * differentiated in both modes (second derivatives of a conv net). The
 * checker also calls it with recording off and on inputs without
 * gradients: both are turned on here for the inner gradient. */
static nb_tensor *grad_fn(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    (void)n, (void)ctx;
    bool recording = nb_graph_recording(g);
    nb_graph_set_recording(g, true);
    nb_tensor *gr[2] = {NULL, NULL};
    nb_tensor *xs[2] = {in[0], in[1]};
    for (int i = 0; i < 2; i++)
        if (!nb_tensor_requires_grad(xs[i]))
            nb_tensor_set_requires_grad(xs[i], true);
    nb_tensor *loss = nb_sum(g, nb_tanh(g, net(g, in[0], in[1], in[2])), NULL, 0, false);
    if (loss && nb_grad(g, loss, NULL, xs, 2, gr, true) != NB_OK)
        gr[0] = gr[1] = NULL;
    nb_tensor *y = nb_add(g, nb_sum(g, nb_square(g, gr[0]), NULL, 0, false),
                          nb_sum(g, nb_square(g, gr[1]), NULL, 0, false));
    nb_graph_set_recording(g, recording);
    return y;
}

static void test_gradcheck_second_order(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 12);
    int64_t shapes[3][4] = {{1, 3, 4, 5}, {4, 3, 3, 3}, {2, 2, 2, 2}};
    nb_tensor *in[3];
    for (int i = 0; i < 3; i++)
        in[i] = random_tensor(g, &rng, NB_F64, shapes[i]);
    check_both_modes("second order", grad_fn, NULL, in, 3, 12);
    nb_graph_free(g);
}

/* ------------------------------------------------------------- threads */

/* Each op on 1 and on 2 threads gives the same bits, f32 and f64, with
 * the products in parallel (a batch of 10, whose weight gradient sums
 * runs of samples) and with threads inside one product (a batch of 1). */
static void test_threads(void **state)
{
    (void)state;
    conv_case cases[2] = {
        make_case(10, 8, 20, 21, 16, 3, 3, axes(1, 1, 1, 1, 1, 1, 1)),
        make_case(1, 32, 33, 32, 32, 3, 3, axes(1, 1, 2, 2, 0, 1, 1)),
    };
    for (int c = 0; c < 2; c++)
        for (int d = 0; d < 2; d++) {
            nb_dtype dt = d ? NB_F32 : NB_F64;
            const conv_case *k = &cases[c];
            int64_t sx[4], sw[4], sy[4];
            shape_x(k, sx), shape_w(k, sw), shape_y(k, sy);
            nb_tensor *res[2][3];
            nb_graph *gs[2];
            for (int t = 0; t < 2; t++) {
                nb_graph *g = gs[t] = nb_graph_new();
                nb_graph_set_threads(g, t + 1);
                nb_rng rng;
                nb_rng_seed(&rng, 21);
                nb_tensor *x = random_tensor(g, &rng, dt, sx), *w = random_tensor(g, &rng, dt, sw),
                          *gy = random_tensor(g, &rng, dt, sy);
                res[t][0] = nb_conv2d(g, x, w, &k->opts);
                res[t][1] = nb_conv_transpose2d(g, gy, w, k->h, k->w, &k->opts);
                res[t][2] = nb_conv2d_weight_grad(g, x, gy, k->kh, k->kw, &k->opts);
            }
            for (int op = 0; op < 3; op++) {
                assert_non_null(res[0][op]);
                assert_non_null(res[1][op]);
                size_t bytes = (size_t)nb_tensor_size(res[0][op]) * nb_dtype_size(dt);
                if (memcmp(nb_tensor_data(res[0][op]), nb_tensor_data(res[1][op]), bytes) != 0)
                    fail_msg("%s %s case %d: 1 and 2 threads differ", op_names[op],
                             nb_dtype_name(dt), c);
            }
            nb_graph_free(gs[0]);
            nb_graph_free(gs[1]);
        }
}

/* ------------------------------------------------------------------ 1-D */

static nb_tensor *conv1d_fn(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const int64_t *s = ctx; /* stride, padding, dilation, groups */
    return nb_conv1d(g, in[0], in[1], s[0], s[1], s[2], s[3]);
}

/* conv1d equals conv2d of the same numbers with H = 1, and checks in both modes */
static void test_conv1d(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 31);
    int64_t settings[4] = {2, 1, 2, 2};
    int64_t sx[3] = {2, 4, 11}, sw[3] = {6, 2, 3};
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F64, 3, sx, -1, 1);
    nb_tensor *w = nb_rand_uniform(g, &rng, NB_F64, 3, sw, -1, 1);
    nb_tensor *y = conv1d_fn(g, (nb_tensor *[]){x, w}, 2, settings);
    assert_non_null(y);
    /* OL = (11 + 2 - 2*2 - 1)/2 + 1 = 5 */
    assert_int_equal(nb_tensor_rank(y), 3);
    assert_int_equal(nb_tensor_dim(y, 0), 2);
    assert_int_equal(nb_tensor_dim(y, 1), 6);
    assert_int_equal(nb_tensor_dim(y, 2), 5);
    conv_case k = make_case(2, 4, 1, 11, 6, 1, 3, axes(1, 0, 1, 2, 1, 2, 2));
    int64_t count;
    triple *t = naive_products(&k, &count);
    double want[60] = {0}, scale[60] = {0};
    for (int64_t e = 0; e < count; e++) {
        double xw = nb_tensor_get(x, t[e].x) * nb_tensor_get(w, t[e].w);
        want[t[e].y] += xw;
        scale[t[e].y] += fabs(xw);
    }
    free(t);
    expect_values("conv1d", &k, y, want, scale, 60, 1e-12);
    check_both_modes("conv1d", conv1d_fn, settings, (nb_tensor *[]){x, w}, 2, 31);
    nb_graph_free(g);
}

/* ------------------------------------------------------------- memory */

/* One step: a conv net forward and the gradients of its three inputs, in
 * g. Its first layer's patch matrices (144 x 2048 floats) are larger than
 * an arena chunk (1 MiB), so each is a block of its own. */
static nb_status conv_step(nb_graph *g)
{
    nb_rng rng;
    nb_rng_seed(&rng, 41);
    int64_t sx[4] = {1, 16, 64, 64}, s1[4] = {4, 16, 3, 3}, s2[4] = {2, 2, 2, 2};
    nb_tensor *p[3] = {nb_rand_uniform(g, &rng, NB_F32, 4, sx, -1, 1),
                       nb_rand_uniform(g, &rng, NB_F32, 4, s1, -1, 1),
                       nb_rand_uniform(g, &rng, NB_F32, 4, s2, -1, 1)};
    for (int i = 0; i < 3; i++)
        nb_tensor_set_requires_grad(p[i], true);
    nb_tensor *gr[3];
    nb_tensor *loss = p[0] && p[1] && p[2] ? net(g, p[0], p[1], p[2]) : NULL;
    return loss ? nb_grad(g, loss, NULL, p, 3, gr, false) : nb_graph_status(g);
}

/* After the first step a repeated step allocates nothing (scratch comes
 * from the arena and goes back to it), and a failing allocation anywhere in
 * a step is a recorded NB_ERR_NOMEM, never a crash. */
/* conv2d of 16 channels into 16 (Winograd products, scratch larger than
 * the arena's chunk) and its two gradients */
static nb_status wino_step(nb_graph *g)
{
    nb_rng rng;
    nb_rng_seed(&rng, 42);
    int64_t sx[4] = {2, 16, 48, 48}, sw[4] = {16, 16, 3, 3};
    nb_tensor *p[2] = {nb_rand_uniform(g, &rng, NB_F64, 4, sx, -1, 1),
                       nb_rand_uniform(g, &rng, NB_F64, 4, sw, -1, 1)};
    if (!p[0] || !p[1])
        return nb_graph_status(g);
    nb_tensor_set_requires_grad(p[0], true);
    nb_tensor_set_requires_grad(p[1], true);
    nb_conv_opts o = nb_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    nb_tensor *y = nb_conv2d(g, p[0], p[1], &o), *gr[2];
    nb_tensor *loss = y ? nb_sum(g, nb_mul(g, y, y), NULL, 0, false) : NULL;
    return loss ? nb_grad(g, loss, NULL, p, 2, gr, false) : nb_graph_status(g);
}

/* Run step on graphs whose k-th allocation fails, k = 1, 2, ... until one
 * runs through: each failure is NB_ERR_NOMEM and leaks nothing. Whether
 * one of them was recorded by op `where`. */
static bool each_allocation_fails(nb_status (*step)(nb_graph *g), const char *where)
{
    bool seen = false;
    for (long k = 1;; k++) {
        tc_counting f = {.fail_at = k};
        nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &f);
        if (!g)
            continue;
        nb_status st = step(g);
        bool failed = f.calls >= k;
        seen |= failed && strcmp(nb_graph_error(g)->where, where) == 0;
        nb_graph_free(g);
        assert_int_equal(f.live, 0);
        if (!failed) {
            assert_int_equal(st, NB_OK);
            return seen;
        }
        assert_int_equal(st, NB_ERR_NOMEM);
    }
}

static void test_memory(void **state)
{
    (void)state;
    tc_counting c = {0};
    nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
    assert_non_null(g);
    assert_int_equal(conv_step(g), NB_OK);
    long after_first = c.calls;
    for (int step = 0; step < 3; step++) {
        nb_graph_reset(g);
        assert_int_equal(conv_step(g), NB_OK);
    }
    assert_int_equal(c.calls, after_first);
    nb_graph_free(g);
    assert_int_equal(c.live, 0);

    /* every allocation of a step fails in turn; one of them is a patch
     * matrix of conv2d's, or (8 channels or more) its Winograd scratch (the
     * gradients' scratch then reuses what the arena gave back) */
    assert_true(each_allocation_fails(conv_step, "conv2d"));
    assert_true(each_allocation_fails(wino_step, "conv2d"));
}

/* ---------------------------------------------------- the GEMM's sums */

/* accumulate adds the product to C; without it C is overwritten */
static void test_gemm_accumulate(void **state)
{
    (void)state;
    double a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12}; /* [2,3] x [3,2] */
    double c[4] = {100, 200, 300, 400}, want[4] = {58, 64, 139, 154};
    nbk_gemm p = {.dtype = NB_F64,
                  .m = 2,
                  .n = 2,
                  .k = 3,
                  .a = a,
                  .lda = 3,
                  .b = b,
                  .ldb = 2,
                  .c = c,
                  .ldc = 2};
    void *ws = malloc(nbk_gemm_workspace(&p, 1));
    assert_non_null(ws);
    nbk_gemm_builtin(&p, ws, 1);
    for (int i = 0; i < 4; i++)
        tc_near(c[i], want[i], 0);
    p.accumulate = true;
    nbk_gemm_builtin(&p, ws, 1);
    for (int i = 0; i < 4; i++)
        tc_near(c[i], 2 * want[i], 0);
    /* an empty sum adds nothing */
    p.k = 0;
    nbk_gemm_builtin(&p, ws, 1);
    for (int i = 0; i < 4; i++)
        tc_near(c[i], 2 * want[i], 0);
    free(ws);
}

/* ------------------------------------------------------------------ errors */

/* The op returns NULL, records `code` under `op` with a message naming
 * both shapes (and `detail`), and runs nothing. */
#define expect_error(...) expect_error_(__LINE__, __VA_ARGS__)
static void expect_error_(int line, nb_graph *g, nb_tensor *r, nb_status code, const char *op,
                          const char *sa, const char *sb, const char *detail, uint64_t evals)
{
    const char *msg = nb_graph_error(g)->msg;
    if (r || nb_graph_status(g) != code)
        fail_msg("line %d: %s: got %s, status %d (want %d), message '%s'", line, op,
                 r ? "a tensor" : "NULL", (int)nb_graph_status(g), (int)code, msg);
    assert_string_equal(nb_graph_error(g)->where, op);
    if (strncmp(msg, op, strlen(op)) != 0 || !strstr(msg, sa) || !strstr(msg, sb) ||
        !strstr(msg, detail))
        fail_msg("message '%s' should name %s, %s, %s and say '%s'", msg, op, sa, sb, detail);
    assert_int_equal(nb_graph_evals(g), evals); /* nothing recorded or run */
    nb_graph_clear_error(g);
}

static nb_tensor *zeros4(nb_graph *g, nb_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return nb_zeros(g, dt, 4, (int64_t[]){a, b, c, d});
}

static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = zeros4(g, NB_F64, 2, 4, 5, 5), *w = zeros4(g, NB_F64, 6, 2, 3, 3);
    nb_tensor *y = zeros4(g, NB_F64, 2, 6, 5, 5);
    nb_conv_opts ok = axes(1, 1, 1, 1, 1, 1, 2);
    uint64_t ev = nb_graph_evals(g);
    const char *X = "[2,4,5,5]", *W = "[6,2,3,3]", *Y = "[2,6,5,5]";

    /* rank */
    nb_tensor *x3 = nb_zeros(g, NB_F64, 3, (int64_t[]){2, 4, 5});
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv2d(g, x3, w, &ok), NB_ERR_SHAPE, "conv2d", "[2,4,5]", W, "rank 4", ev);
    expect_error(g, nb_conv_transpose2d(g, y, x3, 5, 5, &ok), NB_ERR_SHAPE, "conv_transpose2d", Y,
                 "[2,4,5]", "rank 4", ev);
    expect_error(g, nb_conv2d_weight_grad(g, x, x3, 3, 3, &ok), NB_ERR_SHAPE, "conv2d_weight_grad",
                 X, "[2,4,5]", "rank 4", ev);
    /* dtypes */
    nb_tensor *w32 = zeros4(g, NB_F32, 6, 2, 3, 3);
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv2d(g, x, w32, &ok), NB_ERR_DTYPE, "conv2d", "f64[2,4,5,5]",
                 "f32[6,2,3,3]", "dtypes differ", ev);
    /* settings */
    nb_conv_opts bad = ok;
    bad.stride[1] = 0;
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_ARG, "conv2d", X, W,
                 "stride 1x0 must be at least 1", ev);
    bad = ok, bad.dilation[0] = -1;
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_ARG, "conv2d", X, W,
                 "dilation -1x1 must be at least 1", ev);
    bad = ok, bad.padding[0] = -2;
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_ARG, "conv2d", X, W,
                 "padding -2x1 must be 0 or more", ev);
    bad = ok, bad.padding[1] = INT64_MAX;
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_ARG, "conv2d", X, W, "not that large", ev);
    bad = ok, bad.groups = 0;
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_ARG, "conv2d", X, W,
                 "groups 0 must be at least 1", ev);
    nb_conv_opts zeroed = {{0, 0}, {0, 0}, {0, 0}, 0}; /* not the defaults */
    expect_error(g, nb_conv2d(g, x, w, &zeroed), NB_ERR_ARG, "conv2d", X, W, "stride 0x0", ev);
    /* channels */
    expect_error(g, nb_conv2d(g, x, w, &(nb_conv_opts){{1, 1}, {1, 1}, {1, 1}, 3}), NB_ERR_SHAPE,
                 "conv2d", X, W, "4 input channels do not divide into 3 groups", ev);
    nb_tensor *w5 = zeros4(g, NB_F64, 5, 2, 3, 3);
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv2d(g, x, w5, &ok), NB_ERR_SHAPE, "conv2d", X, "[5,2,3,3]",
                 "5 output channels do not divide into 2 groups", ev);
    expect_error(g, nb_conv2d(g, x, w, NULL), NB_ERR_SHAPE, "conv2d", X, W,
                 "w has 2 input channels per group but x has 4 channels in 1 groups", ev);
    /* the kernel larger than the padded input */
    nb_tensor *big = zeros4(g, NB_F64, 6, 2, 8, 3);
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv2d(g, x, big, &ok), NB_ERR_SHAPE, "conv2d", X, "[6,2,8,3]",
                 "kernel 8x3 (dilation 1x1) is larger than the padded input 5x5 (padding 1x1)", ev);
    bad = axes(1, 0, 3, 1, 0, 3, 2);
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_SHAPE, "conv2d", X, W,
                 "kernel 3x3 (dilation 3x3) is larger than the padded input 5x5 (padding 0x0)", ev);
    bad = axes(1, 0, INT64_MAX / 2, 1, 0, INT64_MAX, 2); /* d·(K−1) near 2^63, and past it */
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_SHAPE, "conv2d", X, W, "is larger", ev);
    bad = axes(1, 0, 1, 1, 0, INT64_MAX, 2);
    expect_error(g, nb_conv2d(g, x, w, &bad), NB_ERR_SHAPE, "conv2d", X, W, "is larger", ev);
    nb_tensor *w0 = zeros4(g, NB_F64, 6, 2, 3, 0);
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv2d(g, x, w0, &ok), NB_ERR_SHAPE, "conv2d", X, "[6,2,3,0]",
                 "kernel size 3x0 must be at least 1", ev);

    /* conv_transpose2d: channels, the result's size */
    expect_error(g, nb_conv_transpose2d(g, x, w, 5, 5, &ok), NB_ERR_SHAPE, "conv_transpose2d", X, W,
                 "y has 4 channels but w has 6 output channels", ev);
    expect_error(g, nb_conv_transpose2d(g, y, w, 6, 5, &ok), NB_ERR_SHAPE, "conv_transpose2d", Y, W,
                 "an input of 6x5 convolved with a kernel of 3x3 gives an output of 6x5, not "
                 "5x5",
                 ev);
    expect_error(g, nb_conv_transpose2d(g, y, w, -1, 5, &ok), NB_ERR_ARG, "conv_transpose2d", Y, W,
                 "result size -1x5", ev);
    expect_error(g, nb_conv_transpose2d(g, y, w, 5, INT64_MAX, &ok), NB_ERR_ARG, "conv_transpose2d",
                 Y, W, "is out of range", ev);
    bad = ok, bad.groups = INT64_MAX / 2 + 1; /* 2 channels per group: 2^63 channels */
    expect_error(g, nb_conv_transpose2d(g, y, w, 5, 5, &bad), NB_ERR_ARG, "conv_transpose2d", Y, W,
                 "out of range", ev);
    expect_error(g, nb_conv_transpose2d(g, y, w, 0, 5, &ok), NB_ERR_SHAPE, "conv_transpose2d", Y, W,
                 "larger than the padded input 0x5", ev);
    /* conv2d_weight_grad: batch, kernel size, output size */
    nb_tensor *y1 = zeros4(g, NB_F64, 1, 6, 5, 5);
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv2d_weight_grad(g, x, y1, 3, 3, &ok), NB_ERR_SHAPE, "conv2d_weight_grad",
                 X, "[1,6,5,5]", "batch sizes 2 and 1 differ", ev);
    expect_error(g, nb_conv2d_weight_grad(g, x, y, 0, 3, &ok), NB_ERR_ARG, "conv2d_weight_grad", X,
                 Y, "kernel size 0x3 must be at least 1", ev);
    expect_error(g, nb_conv2d_weight_grad(g, x, y, 2, 3, &ok), NB_ERR_SHAPE, "conv2d_weight_grad",
                 X, Y, "gives an output of 6x5, not 5x5", ev);
    expect_error(g,
                 nb_conv2d_weight_grad(g, x, y, 3, 3, &(nb_conv_opts){{1, 1}, {1, 1}, {1, 1}, 4}),
                 NB_ERR_SHAPE, "conv2d_weight_grad", X, Y,
                 "6 output channels do not divide into 4 groups", ev);

    /* conv1d: its own name, 3-D shapes, 1-D settings; nothing recorded */
    nb_tensor *x1 = nb_zeros(g, NB_F64, 3, (int64_t[]){2, 4, 5});
    nb_tensor *w1 = nb_zeros(g, NB_F64, 3, (int64_t[]){6, 2, 3});
    nb_tensor_set_requires_grad(x1, true);
    ev = nb_graph_evals(g);
    expect_error(g, nb_conv1d(g, x1, w, 1, 0, 1, 2), NB_ERR_SHAPE, "conv1d", "[2,4,5]", W,
                 "x and w must have rank 3 ([N,C,L] and [O,C/groups,K])", ev);
    expect_error(g, nb_conv1d(g, x1, w1, 0, 0, 1, 2), NB_ERR_ARG, "conv1d", "[2,4,5]", "[6,2,3]",
                 "stride 0 must be at least 1", ev);
    expect_error(g, nb_conv1d(g, x1, w1, 1, -1, 1, 2), NB_ERR_ARG, "conv1d", "[2,4,5]", "[6,2,3]",
                 "padding -1 must be 0 or more", ev);
    expect_error(g, nb_conv1d(g, x1, w1, 1, 0, 3, 2), NB_ERR_SHAPE, "conv1d", "[2,4,5]", "[6,2,3]",
                 "kernel 3 (dilation 3) is larger than the padded input 5 (padding 0)", ev);
    expect_error(g, nb_conv1d(g, x1, w1, 1, 0, 1, 3), NB_ERR_SHAPE, "conv1d", "[2,4,5]", "[6,2,3]",
                 "4 input channels do not divide into 3 groups", ev);
    /* nothing was linked for a gradient: x1 has none to get */
    nb_tensor *ok1 = nb_conv1d(g, x1, w1, 1, 0, 1, 2);
    assert_non_null(ok1);
    assert_int_equal(nb_tensor_dim(ok1, 2), 3);

    /* a NULL input: NULL quietly */
    assert_null(nb_conv2d(g, NULL, w, NULL));
    assert_null(nb_conv1d(g, x1, NULL, 1, 0, 1, 1));
    assert_null(nb_conv_transpose2d(g, y, NULL, 5, 5, NULL));
    assert_null(nb_conv2d_weight_grad(g, NULL, y, 3, 3, NULL));
    assert_null(nb_conv1d(NULL, x1, w1, 1, 0, 1, 1));
    assert_null(nb_conv2d(NULL, x, w, NULL));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* ------------------------------------------------ conv2d with bias, ReLU */

/* act(conv2d(x, w) + b) as the separate ops compute it */
static nb_tensor *unfused(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                          const nb_conv_opts *o, nb_linear_act act)
{
    nb_tensor *y = nb_conv2d(g, x, w, o);
    if (b)
        y = nb_add(g, y, nb_reshape(g, b, 3, (int64_t[]){nb_tensor_shape(b)[0], 1, 1}));
    return act == NB_LINEAR_RELU ? nb_relu(g, y) : y;
}

static bool same_bits(nb_tensor *a, nb_tensor *b)
{
    return a && b && nb_tensor_size(a) == nb_tensor_size(b) &&
           memcmp(nb_tensor_data(a), nb_tensor_data(b),
                  (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a))) == 0;
}

/* The fused op against the separate ops, bit for bit: the result and the
 * gradients of x, w and b (of Σ r·y, r random), with and without a bias,
 * ReLU and identity, f32 and f64, on 1 and 2 threads, over every
 * combination of the settings. */
/* conv2d_fused against conv2d + add + relu, values and gradients, bit for
 * bit: variant v picks the dtype (bit 0), the ReLU (bit 1) and no bias
 * (bit 2) */
static void fused_same_bits(const conv_case *k, int v, int threads, uint64_t seed, int label)
{
    nb_dtype dt = v & 1 ? NB_F64 : NB_F32;
    nb_linear_act act = v & 2 ? NB_LINEAR_RELU : NB_LINEAR_IDENTITY;
    bool with_bias = !(v & 4);
    int64_t sx[4], sw[4], sy[4];
    shape_x(k, sx), shape_w(k, sw), shape_y(k, sy);
    nb_graph *g = nb_graph_new();
    nb_graph_set_threads(g, threads);
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_tensor *x = as_dtype(g, random_tensor(g, &rng, NB_F64, sx), dt);
    nb_tensor *w = as_dtype(g, random_tensor(g, &rng, NB_F64, sw), dt);
    nb_tensor *r = as_dtype(g, random_tensor(g, &rng, NB_F64, sy), dt);
    nb_tensor *b = nb_rand_uniform(g, &rng, dt, 1, (int64_t[]){k->o}, -1, 1);
    nb_tensor *in[3] = {x, w, b};
    for (int j = 0; j < 3; j++)
        nb_tensor_set_requires_grad(in[j], true);
    nb_tensor *yf = nb_conv2d_fused(g, x, w, with_bias ? b : NULL, &k->opts, act);
    nb_tensor *yu = unfused(g, x, w, with_bias ? b : NULL, &k->opts, act);
    assert_non_null(yf);
    assert_true(same_bits(yf, yu));
    int n = with_bias ? 3 : 2;
    nb_tensor *gf[3], *gu[3];
    assert_int_equal(nb_grad(g, nb_sum(g, nb_mul(g, yf, r), NULL, 0, false), NULL, in, n, gf, false),
                     NB_OK);
    assert_int_equal(nb_grad(g, nb_sum(g, nb_mul(g, yu, r), NULL, 0, false), NULL, in, n, gu, false),
                     NB_OK);
    for (int j = 0; j < n; j++)
        if (!same_bits(gf[j], gu[j]))
            fail_msg("case %d variant %d: the gradient of input %d differs", label, v, j);
    nb_graph_free(g);
}

static void test_fused_same_bits(void **state)
{
    (void)state;
    for (int i = 0; i < N_COMBOS; i++)
        for (int v = 0; v < 8; v++) {
            conv_case k = combo(i);
            fused_same_bits(&k, v, 1 + i % 2, 300 + (uint64_t)(i * 8 + v), i);
        }
    /* Winograd products: the bias and ReLU applied in the output transform */
    conv_case k = make_case(3, 8, 7, 6, 9, 3, 3, axes(1, 1, 1, 1, 1, 1, 1));
    for (int v = 0; v < 8; v++)
        for (int t = 1; t <= 2; t++)
            fused_same_bits(&k, v, t, 900 + (uint64_t)v, N_COMBOS);
}

/* max_pool2d(relu(conv2d(x, w) + b)) with 3x3 windows of stride 2 (the
 * ReLU fused, or a relu op when ctx is non-NULL) */
static nb_tensor *relu_pool_fn(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const nb_pool2d_opts po = {{3, 3}, {2, 2}, {1, 1}};
    nb_conv_opts o = nb_conv_defaults();
    o.padding[0] = o.padding[1] = 1;
    nb_tensor *y = ctx ? nb_relu(g, nb_conv2d_fused(g, in[0], in[1], in[2], &o, NB_LINEAR_IDENTITY))
                       : nb_conv2d_fused(g, in[0], in[1], in[2], &o, NB_LINEAR_RELU);
    return nb_max_pool2d(g, y, &po);
}

/* ReLU before max pooling (ops/table.h): the pooling's rule masks the small
 * gradient and ReLU's rule then hands it on unmasked. The gradients of x, w
 * and b must have the bits of the same graph with a reshape between the
 * ReLU and the pooling (which hides the pattern): the fused conv2d's ReLU
 * and a relu op, f32 and f64, windows that do not and that do overlap (3x3
 * of stride 2 with padding: argmaxes shared by several windows), on 1 and 2
 * threads. With the gradient recorded, the weight gradient's g_z is the
 * unpooling itself, not a relu_mask of it. */
static void test_relu_pool_rule(void **state)
{
    (void)state;
    const nb_pool2d_opts pools[2] = {{{2, 2}, {2, 2}, {0, 0}}, {{3, 3}, {2, 2}, {1, 1}}};
    conv_case k = make_case(2, 3, 8, 8, 4, 3, 3, axes(1, 1, 1, 1, 1, 1, 1));
    int64_t sx[4], sw[4];
    shape_x(&k, sx), shape_w(&k, sw);
    for (int v = 0; v < 16; v++) {
        nb_dtype dt = v & 1 ? NB_F64 : NB_F32;
        bool relu_op = v & 2, record = v & 8;
        const nb_pool2d_opts *po = &pools[(v >> 2) & 1];
        nb_graph *g = nb_graph_new();
        nb_graph_set_threads(g, 1 + v % 2);
        nb_rng rng;
        nb_rng_seed(&rng, 700 + (uint64_t)v);
        nb_tensor *x = as_dtype(g, random_tensor(g, &rng, NB_F64, sx), dt);
        nb_tensor *w = as_dtype(g, random_tensor(g, &rng, NB_F64, sw), dt);
        nb_tensor *b = nb_rand_uniform(g, &rng, dt, 1, (int64_t[]){k.o}, -1, 1);
        nb_tensor *in[3] = {x, w, b};
        for (int j = 0; j < 3; j++)
            nb_tensor_set_requires_grad(in[j], true);
        nb_tensor *y = relu_op
                           ? nb_relu(g, nb_conv2d_fused(g, x, w, b, &k.opts, NB_LINEAR_IDENTITY))
                           : nb_conv2d_fused(g, x, w, b, &k.opts, NB_LINEAR_RELU);
        assert_non_null(y);
        nb_tensor *hidden = nb_reshape(g, y, 4, nb_tensor_shape(y));
        nb_tensor *p = nb_max_pool2d(g, y, po), *ph = nb_max_pool2d(g, hidden, po);
        nb_tensor *r = nb_rand_uniform(g, &rng, dt, 4, nb_tensor_shape(p), -1, 1);
        nb_tensor *gp[3], *gh[3];
        assert_int_equal(
            nb_grad(g, nb_sum(g, nb_mul(g, p, r), NULL, 0, false), NULL, in, 3, gp, record), NB_OK);
        assert_int_equal(
            nb_grad(g, nb_sum(g, nb_mul(g, ph, r), NULL, 0, false), NULL, in, 3, gh, record),
            NB_OK);
        for (int j = 0; j < 3; j++)
            if (!same_bits(gp[j], gh[j]))
                fail_msg("variant %d: the gradient of input %d differs", v, j);
        if (record) { /* dw = weight_grad(x, g_z) */
            assert_string_equal(nb_tensor_op_name(nb_op_input(gp[1], 1)), "max_unpool2d");
            assert_string_equal(nb_tensor_op_name(nb_op_input(gh[1], 1)), "relu_mask");
        }
        if (dt == NB_F64 && !record) /* and its gradients pass the checks */
            check_both_modes("relu before max pooling", relu_pool_fn, relu_op ? &k : NULL, in, 3,
                             800 + (uint64_t)v);
        nb_graph_free(g);
    }
}

typedef struct fused_ctx {
    conv_case k;
    nb_linear_act act;
} fused_ctx;

static nb_tensor *fused_fn(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    const fused_ctx *c = ctx;
    return nb_conv2d_fused(g, in[0], in[1], n > 2 ? in[2] : NULL, &c->k.opts, c->act);
}

/* Gradient checks of the fused op in both modes (its VJP and JVP in x, w
 * and b) over every combination, with ReLU and a bias, and without
 * either on a few. */
static void test_gradcheck_fused(void **state)
{
    (void)state;
    for (int i = 0; i < N_COMBOS; i++) {
        conv_case k = combo(i);
        int64_t sx[4], sw[4];
        shape_x(&k, sx), shape_w(&k, sw);
        nb_graph *g = nb_graph_new();
        nb_rng rng;
        nb_rng_seed(&rng, 400 + (uint64_t)i);
        nb_tensor *in[3] = {random_tensor(g, &rng, NB_F64, sx), random_tensor(g, &rng, NB_F64, sw),
                            nb_rand_uniform(g, &rng, NB_F64, 1, (int64_t[]){k.o}, -1, 1)};
        fused_ctx c = {k, i % 7 == 3 ? NB_LINEAR_IDENTITY : NB_LINEAR_RELU};
        char label[64];
        snprintf(label, sizeof label, "conv2d_fused combo %d", i);
        check_both_modes(label, fused_fn, &c, in, i % 5 == 4 ? 2 : 3, 400 + (uint64_t)i);
        nb_graph_free(g);
    }
}

/* The second derivatives through the fused op: the gradient of
 * Σ tanh(fused(x, w, b))'s squared gradients, checked in both modes, and
 * its Hessian-vector product equal to the separate ops' to rounding. */
static nb_tensor *fused_grad_fn(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    (void)n;
    const fused_ctx *c = ctx;
    bool recording = nb_graph_recording(g);
    nb_graph_set_recording(g, true);
    nb_tensor *xs[3] = {in[0], in[1], in[2]}, *gr[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++)
        if (!nb_tensor_requires_grad(xs[i]))
            nb_tensor_set_requires_grad(xs[i], true);
    nb_tensor *y = nb_conv2d_fused(g, in[0], in[1], in[2], &c->k.opts, c->act);
    nb_tensor *loss = nb_sum(g, nb_tanh(g, y), NULL, 0, false);
    if (loss && nb_grad(g, loss, NULL, xs, 3, gr, true) != NB_OK)
        gr[0] = NULL;
    nb_tensor *out = NULL;
    for (int i = 0; i < 3 && gr[0]; i++) {
        nb_tensor *t = nb_sum(g, nb_square(g, gr[i]), NULL, 0, false);
        out = out ? nb_add(g, out, t) : t;
    }
    nb_graph_set_recording(g, recording);
    return out;
}

static void test_fused_second_order(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 13);
    conv_case k = make_case(2, 2, 5, 4, 3, 3, 2, axes(1, 1, 1, 2, 1, 1, 1));
    int64_t sx[4], sw[4];
    shape_x(&k, sx), shape_w(&k, sw);
    nb_tensor *in[3] = {random_tensor(g, &rng, NB_F64, sx), random_tensor(g, &rng, NB_F64, sw),
                        nb_rand_uniform(g, &rng, NB_F64, 1, (int64_t[]){3}, -1, 1)};
    for (int a = 0; a < 2; a++) {
        fused_ctx c = {k, a ? NB_LINEAR_RELU : NB_LINEAR_IDENTITY};
        check_both_modes("conv2d_fused, second order", fused_grad_fn, &c, in, 3, 13);
    }
    /* H·v of Σ tanh(y): the fused op's against the separate ops' */
    nb_tensor *p[3], *v[3];
    for (int i = 0; i < 3; i++) {
        p[i] = nb_tensor_set_requires_grad(in[i], true);
        v[i] =
            nb_rand_uniform(g, &rng, NB_F64, nb_tensor_rank(in[i]), nb_tensor_shape(in[i]), -1, 1);
    }
    double *hvs[2][3];
    for (int f = 0; f < 2; f++) {
        nb_tensor *y = f ? nb_conv2d_fused(g, p[0], p[1], p[2], &k.opts, NB_LINEAR_RELU)
                         : unfused(g, p[0], p[1], p[2], &k.opts, NB_LINEAR_RELU);
        nb_tensor *gr[3], *hv[3], *gv = NULL;
        assert_int_equal(nb_grad(g, nb_sum(g, nb_tanh(g, y), NULL, 0, false), NULL, p, 3, gr, true),
                         NB_OK);
        for (int i = 0; i < 3; i++) {
            nb_tensor *t = nb_sum(g, nb_mul(g, gr[i], v[i]), NULL, 0, false);
            gv = gv ? nb_add(g, gv, t) : t;
        }
        assert_int_equal(nb_grad(g, gv, NULL, p, 3, hv, false), NB_OK);
        for (int i = 0; i < 3; i++)
            hvs[f][i] = nb_tensor_f64(hv[i]);
    }
    double norm = 0;
    for (int i = 0; i < 3; i++)
        for (int64_t e = 0; e < nb_tensor_size(p[i]); e++) {
            tc_near(hvs[1][i][e], hvs[0][i][e], 1e-12 * (1 + fabs(hvs[0][i][e])));
            norm = fmax(norm, fabs(hvs[0][i][e]));
        }
    assert_true(norm > 1e-3);
    nb_graph_free(g);
}

/* A bias of the wrong shape or dtype and an unknown activation: errors
 * naming conv2d and the operands; nothing recorded. An empty sum gets the
 * bias and the ReLU. */
static void test_fused_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = zeros4(g, NB_F64, 2, 4, 5, 5), *w = zeros4(g, NB_F64, 3, 4, 3, 3);
    nb_tensor *b4 = nb_zeros(g, NB_F64, 1, (int64_t[]){4});
    nb_tensor *b2d = nb_zeros(g, NB_F64, 2, (int64_t[]){3, 1});
    nb_tensor *b32 = nb_zeros(g, NB_F32, 1, (int64_t[]){3});
    nb_tensor *b = nb_zeros(g, NB_F64, 1, (int64_t[]){3});
    uint64_t ev = nb_graph_evals(g);
    const char *X = "[2,4,5,5]", *W = "[3,4,3,3]";
    expect_error(g, nb_conv2d_fused(g, x, w, b4, NULL, NB_LINEAR_RELU), NB_ERR_SHAPE, "conv2d", X,
                 W, "the bias [4] must be [3], one per output channel", ev);
    expect_error(g, nb_conv2d_fused(g, x, w, b2d, NULL, NB_LINEAR_RELU), NB_ERR_SHAPE, "conv2d", X,
                 W, "the bias [3,1] must be [3]", ev);
    expect_error(g, nb_conv2d_fused(g, x, w, b32, NULL, NB_LINEAR_RELU), NB_ERR_DTYPE, "conv2d",
                 "f64[2,4,5,5]", W, "the bias is f32", ev);
    expect_error(g, nb_conv2d_fused(g, x, w, b, NULL, (nb_linear_act)7), NB_ERR_ARG, "conv2d", "",
                 "", "unknown activation 7", ev);
    assert_non_null(nb_conv2d_fused(g, x, w, b, NULL, NB_LINEAR_RELU));
    nb_tensor_set(b, 1, -2), nb_tensor_set(b, 2, 5);
    nb_tensor *e = nb_conv2d_fused(g, zeros4(g, NB_F64, 2, 0, 5, 5), zeros4(g, NB_F64, 3, 0, 3, 3),
                                   b, NULL, NB_LINEAR_RELU);
    assert_non_null(e); /* [2,3,3,3]: relu(0 + b[o]) */
    for (int64_t k = 0; k < nb_tensor_size(e); k++)
        assert_true(nb_tensor_get(e, k) == (k / 9 % 3 == 2 ? 5 : 0));
    nb_graph_free(g);
}

/* Sizes of zero: empty results, and empty sums that are zero */
static void test_empty(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_conv_opts o = nb_conv_defaults();
    /* no channels: y is all zeros */
    nb_tensor *y = nb_conv2d(g, zeros4(g, NB_F32, 2, 0, 4, 4), zeros4(g, NB_F32, 3, 0, 2, 2), &o);
    assert_non_null(y);
    assert_int_equal(nb_tensor_size(y), 2 * 3 * 3 * 3);
    for (int64_t e = 0; e < nb_tensor_size(y); e++)
        assert_true(nb_tensor_get(y, e) == 0);
    /* an empty batch: an empty result */
    y = nb_conv2d(g, zeros4(g, NB_F32, 0, 2, 4, 4), zeros4(g, NB_F32, 3, 2, 2, 2), &o);
    assert_non_null(y);
    assert_int_equal(nb_tensor_size(y), 0);
    assert_int_equal(nb_tensor_dim(y, 1), 3);
    /* an empty batch: the weight gradient is a sum of nothing */
    nb_tensor *full = nb_full(g, NB_F64, 4, (int64_t[]){0, 2, 3, 3}, 1);
    nb_tensor *dw = nb_conv2d_weight_grad(g, full, zeros4(g, NB_F64, 0, 3, 2, 2), 2, 2, &o);
    assert_non_null(dw);
    assert_int_equal(nb_tensor_size(dw), 3 * 2 * 2 * 2);
    for (int64_t e = 0; e < nb_tensor_size(dw); e++)
        assert_true(nb_tensor_get(dw, e) == 0);
    /* no output channels: the input gradient is a sum of nothing */
    nb_tensor *dx = nb_conv_transpose2d(g, zeros4(g, NB_F64, 1, 0, 3, 3),
                                        zeros4(g, NB_F64, 0, 2, 2, 2), 4, 4, &o);
    assert_non_null(dx);
    assert_int_equal(nb_tensor_size(dx), 1 * 2 * 4 * 4);
    for (int64_t e = 0; e < nb_tensor_size(dx); e++)
        assert_true(nb_tensor_get(dx, e) == 0);
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_winograd_values),
        cmocka_unit_test(test_gradcheck_conv2d),
        cmocka_unit_test(test_gradcheck_transpose),
        cmocka_unit_test(test_gradcheck_weight_grad),
        cmocka_unit_test(test_dot_products),
        cmocka_unit_test(test_hessian_vector),
        cmocka_unit_test(test_gradcheck_second_order),
        cmocka_unit_test(test_fused_same_bits),
        cmocka_unit_test(test_gradcheck_fused),
        cmocka_unit_test(test_fused_second_order),
        cmocka_unit_test(test_fused_errors),
        cmocka_unit_test(test_relu_pool_rule),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_gemm_accumulate),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
