/* Softmax cross-entropy with integer labels as one primitive (softmax_xent)
 * and its VJP as another (softmax_xent_backward): the loss has the very bits
 * of the composition nb_softmax_cross_entropy recorded before (one_hot,
 * log_softmax, mul, sum over the classes, neg, mean or sum) in f32 and f64,
 * and so has its gradient; derivatives of both ops
 * are checked against central differences, forward mode against reverse
 * mode, and Hessian-vector products against the composition's; bad input
 * gives errors that name the op. */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tc.h"

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* What nb_softmax_cross_entropy recorded before the primitive. */
static nb_tensor *old_ce(nb_graph *g, nb_tensor *z, const int64_t *labels, nb_reduction r)
{
    int axis = 1;
    int64_t n = nb_tensor_shape(z)[0], c = nb_tensor_shape(z)[1];
    nb_tensor *onehot = nb_one_hot(g, nb_tensor_dtype(z), labels, n, c);
    nb_tensor *logp = nb_log_softmax(g, z, axis);
    nb_tensor *per_row = nb_neg(g, nb_sum(g, nb_mul(g, onehot, logp), &axis, 1, false));
    return r == NB_REDUCE_MEAN ? nb_mean(g, per_row, NULL, 0, false)
                               : nb_sum(g, per_row, NULL, 0, false);
}

static void fill_labels(int64_t *labels, int64_t n, int64_t c, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++)
        labels[i] = (int64_t)((uint64_t)i * 2654435761u + seed) % c;
}

/* Either op recorded through the registry, as a user would. */
static nb_tensor *apply_xent(nb_graph *g, const char *op, nb_tensor *const *in, int n,
                             const int64_t *labels, int64_t n_labels, int64_t reduction)
{
    nb_attrs a = {0};
    a.ints[0] = reduction;
    a.idx = labels;
    a.n_idx = n_labels;
    return nb_apply(g, nb_op_find(op), in, n, &a);
}

/* ---------------------------------------------------------- bit identity */

/* The loss and its gradient bit for bit against the composition, for N in {1, 7, 32, 129, 1000}, C
 * in {1, 3, 10, 37}, f32 and f64, mean and sum, on 1 and 4 threads. */
static void test_bit_identical(void **state)
{
    (void)state;
    static const int64_t ns[] = {1, 7, 32, 129, 1000}, cs[] = {1, 3, 10, 37};
    static int64_t labels[1000];
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (size_t a = 0; a < COUNT(ns); a++)
            for (size_t b = 0; b < COUNT(cs); b++)
                for (int r = NB_REDUCE_MEAN; r <= NB_REDUCE_SUM; r++)
                    for (int threads = 1; threads <= 4; threads += 3) {
                        int64_t shape[] = {ns[a], cs[b]};
                        fill_labels(labels, ns[a], cs[b], a * 7 + b);
                        nb_graph *g = nb_graph_new();
                        nb_graph_set_threads(g, threads);
                        nb_rng rng;
                        nb_rng_seed(&rng, 5 + a * 11 + b);
                        nb_tensor *z = nb_tensor_set_requires_grad(
                            nb_rand_uniform(g, &rng, (nb_dtype)dt, 2, shape, -30, 30), true);
                        nb_tensor *now = nb_softmax_cross_entropy(g, z, labels, ns[a], r);
                        nb_tensor *old = old_ce(g, z, labels, r);
                        assert_non_null(now);
                        assert_string_equal(nb_tensor_op_name(now), "softmax_xent");
                        double vn = nb_tensor_get(now, 0), vo = nb_tensor_get(old, 0);
                        size_t es = nb_dtype_size((nb_dtype)dt);
                        if (memcmp(nb_tensor_data(now), nb_tensor_data(old), es) != 0)
                            fail_msg("%s N=%lld C=%lld r=%d threads %d: %.17g, composition %.17g",
                                     dt == NB_F32 ? "f32" : "f64", (long long)ns[a],
                                     (long long)cs[b], r, threads, vn, vo);
                        nb_tensor *dn = NULL, *dold = NULL;
                        assert_int_equal(nb_grad(g, now, NULL, &z, 1, &dn, false), NB_OK);
                        assert_int_equal(nb_grad(g, old, NULL, &z, 1, &dold, false), NB_OK);
                        assert_string_equal(nb_tensor_op_name(dn), "softmax_xent_backward");
                        for (int64_t i = 0; i < nb_tensor_size(dn); i++)
                            if (memcmp((const char *)nb_tensor_data(dn) + i * es,
                                       (const char *)nb_tensor_data(dold) + i * es, es) != 0)
                                fail_msg("gradient %lld: %.17g, composition %.17g", (long long)i,
                                         nb_tensor_get(dn, i), nb_tensor_get(dold, i));
                        assert_int_equal(nb_graph_status(g), NB_OK);
                        nb_graph_free(g);
                    }
}

/* ------------------------------------------------------------ derivatives */

typedef struct xent_ctx {
    int64_t labels[8];
    int64_t n;
    nb_reduction r;
} xent_ctx;

static nb_tensor *f_loss(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const xent_ctx *c = ctx;
    return nb_softmax_cross_entropy(g, in[0], c->labels, c->n, c->r);
}

static nb_tensor *f_backward(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const xent_ctx *c = ctx;
    return apply_xent(g, "softmax_xent_backward", in, 2, c->labels, c->n, c->r);
}

/* The backward given the forward's node, whose saved row statistics it
 * reads (a replay re-runs the forward first, which writes them again). */
static nb_tensor *f_backward_saved(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const xent_ctx *c = ctx;
    nb_tensor *y = apply_xent(g, "softmax_xent", in, 1, c->labels, c->n, c->r);
    nb_tensor *three[3] = {in[0], in[1], y};
    return apply_xent(g, "softmax_xent_backward", three, 3, c->labels, c->n, c->r);
}

/* f64 central differences, <J u, v> = <u, Jᵀ v> and the f32 kernels
 * (tc_check): the loss in z, its backward in z and in g, mean and sum, one
 * class and several. */
static void test_gradcheck(void **state)
{
    (void)state;
    static const tc_shape shapes[] = {{2, {5, 4}}, {2, {1, 1}}, {2, {3, 7}}, {2, {8, 2}}};
    for (size_t k = 0; k < COUNT(shapes); k++)
        for (int r = NB_REDUCE_MEAN; r <= NB_REDUCE_SUM; r++) {
            xent_ctx c = {.n = shapes[k].dims[0], .r = (nb_reduction)r};
            fill_labels(c.labels, c.n, shapes[k].dims[1], k);
            char label[64];
            snprintf(label, sizeof label, "softmax_xent case %zu r %d", k, r);
            tc_check(label, f_loss, &c, 1, &shapes[k],
                     &(tc_opts){.lo = -4, .hi = 4, .seed = 3 + k});
            tc_shape two[2] = {shapes[k], {0, {0}}};
            snprintf(label, sizeof label, "softmax_xent_backward case %zu r %d", k, r);
            tc_check(label, f_backward, &c, 2, two, &(tc_opts){.lo = -3, .hi = 3, .seed = 9 + k});
            snprintf(label, sizeof label, "softmax_xent_backward saved case %zu r %d", k, r);
            tc_check(label, f_backward_saved, &c, 2, two,
                     &(tc_opts){.lo = -3, .hi = 3, .seed = 21 + k});
        }
}

/* Forward mode through the backward with a tangent on one input only (the
 * other's is a known zero): <J_i u, v> = <u, J_iᵀ v> for each input. */
static void test_backward_one_tangent(void **state)
{
    (void)state;
    int64_t shape[] = {4, 5}, labels[] = {4, 0, 2, 2};
    for (int r = NB_REDUCE_MEAN; r <= NB_REDUCE_SUM; r++)
        for (int i = 0; i < 2; i++) {
            nb_graph *g = nb_graph_new();
            nb_rng rng;
            nb_rng_seed(&rng, 17 + (uint64_t)(r * 2 + i));
            nb_tensor *in[2] = {nb_rand_uniform(g, &rng, NB_F64, 2, shape, -2, 2),
                                nb_rand_uniform(g, &rng, NB_F64, 0, NULL, 0.5, 2)};
            for (int k = 0; k < 2; k++)
                nb_tensor_set_requires_grad(in[k], true);
            nb_tensor *u = nb_rand_uniform(g, &rng, NB_F64, nb_tensor_rank(in[i]),
                                           nb_tensor_shape(in[i]), -1, 1);
            nb_tensor *v = nb_rand_uniform(g, &rng, NB_F64, 2, shape, -1, 1);
            nb_tensor *y = apply_xent(g, "softmax_xent_backward", in, 2, labels, 4, r);
            tc_adjoint(g, y, in[i], u, v);
            nb_graph_free(g);
        }
}

/* ----------------------------------------------------------- second order */

static double max_abs_diff(const nb_tensor *a, const nb_tensor *b)
{
    double d = 0;
    for (int64_t i = 0; i < nb_tensor_size(a); i++)
        d = fmax(d, fabs(nb_tensor_get(a, i) - nb_tensor_get(b, i)));
    return d;
}

/* The Hessian-vector products of nb_softmax_cross_entropy, reverse over
 * reverse and forward over reverse, equal the composition's to 1e-12 in
 * f64, mean and sum; so does a third derivative. */
static void test_second_order(void **state)
{
    (void)state;
    int64_t shape[] = {9, 6}, labels[9];
    fill_labels(labels, 9, 6, 1);
    for (int r = NB_REDUCE_MEAN; r <= NB_REDUCE_SUM; r++) {
        nb_graph *g = nb_graph_new();
        nb_rng rng;
        nb_rng_seed(&rng, 99 + (uint64_t)r);
        nb_tensor *z =
            nb_tensor_set_requires_grad(nb_rand_uniform(g, &rng, NB_F64, 2, shape, -4, 4), true);
        nb_tensor *v = nb_rand_uniform(g, &rng, NB_F64, 2, shape, -1, 1);
        nb_tensor *loss[2] = {nb_softmax_cross_entropy(g, z, labels, 9, r),
                              old_ce(g, z, labels, r)};
        nb_tensor *dz[2], *hv[2], *hv_fwd[2], *d3[2];
        for (int k = 0; k < 2; k++) {
            assert_int_equal(nb_grad(g, loss[k], NULL, &z, 1, &dz[k], true), NB_OK);
            nb_tensor *dot = nb_sum(g, nb_mul(g, dz[k], v), NULL, 0, false);
            assert_int_equal(nb_grad(g, dot, NULL, &z, 1, &hv[k], true), NB_OK);
            assert_int_equal(nb_jvp(g, dz[k], &z, &v, 1, &hv_fwd[k]), NB_OK);
            nb_tensor *s = nb_sum(g, nb_mul(g, hv[k], v), NULL, 0, false);
            assert_int_equal(nb_grad(g, s, NULL, &z, 1, &d3[k], false), NB_OK);
        }
        assert_string_equal(nb_tensor_op_name(dz[0]), "softmax_xent_backward");
        assert_true(max_abs_diff(dz[0], dz[1]) <= 1e-15);
        assert_true(max_abs_diff(hv[0], hv[1]) <= 1e-12);
        assert_true(max_abs_diff(hv_fwd[0], hv[1]) <= 1e-12);
        assert_true(max_abs_diff(d3[0], d3[1]) <= 1e-12);
        assert_true(max_abs_diff(hv[0], nb_zeros(g, NB_F64, 2, shape)) > 1e-3);
        /* forward mode of the loss itself: <∇L, v> */
        nb_tensor *jv = NULL;
        assert_int_equal(nb_jvp(g, loss[0], &z, &v, 1, &jv), NB_OK);
        tc_near(nb_tensor_get(jv, 0), tc_dot(dz[1], v), 1e-13);
        assert_int_equal(nb_graph_status(g), NB_OK);
        nb_graph_free(g);
    }
}

/* One node forward, one backward. */
static void test_one_node(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    int64_t shape[] = {32, 10}, labels[32];
    fill_labels(labels, 32, 10, 0);
    nb_tensor *z = nb_tensor_set_requires_grad(nb_zeros(g, NB_F32, 2, shape), true);
    nb_tensor *loss = nb_softmax_cross_entropy(g, z, labels, 32, NB_REDUCE_MEAN);
    assert_int_equal(nb_graph_nodes(g, loss, NULL, 0), 2); /* z and the loss */
    nb_tensor *dz = NULL;
    assert_int_equal(nb_grad(g, loss, NULL, &z, 1, &dz, false), NB_OK);
    assert_string_equal(nb_tensor_op_name(dz), "softmax_xent_backward");
    for (int64_t i = 0; i < 320; i++) /* (softmax − onehot)/N */
        tc_near(nb_tensor_get(dz, i), (0.1 - (i % 10 == labels[i / 10])) / 32, 1e-8);
    nb_graph_free(g);
}

/* ------------------------------------------------------ saved statistics */

/* The forward keeps each row's maximum and log-sum in its node; the VJP
 * records the backward with that node as input 2, and its gradient has the
 * bits of the backward that recomputes them (two inputs), f32 and f64,
 * mean and sum, recording or not. */
static void test_saved_stats(void **state)
{
    (void)state;
    int64_t shape[] = {33, 10}, labels[33];
    fill_labels(labels, 33, 10, 4);
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (int r = NB_REDUCE_MEAN; r <= NB_REDUCE_SUM; r++) {
            nb_graph *g = nb_graph_new();
            nb_rng rng;
            nb_rng_seed(&rng, 40 + (uint64_t)(dt * 2 + r));
            nb_tensor *z = nb_tensor_set_requires_grad(
                nb_rand_uniform(g, &rng, (nb_dtype)dt, 2, shape, -20, 20), true);
            nb_tensor *loss = nb_softmax_cross_entropy(g, z, labels, 33, r);
            const void *saved = nb_op_attrs(loss)->saved;
            assert_non_null(saved);
            for (int64_t i = 0; i < 33; i++) { /* m exactly, ls = ln Σ e^(z − m) */
                double m = nb_tensor_get(z, i * 10), se = 0;
                for (int64_t k = 1; k < 10; k++)
                    m = fmax(m, nb_tensor_get(z, i * 10 + k));
                for (int64_t k = 0; k < 10; k++)
                    se += exp(nb_tensor_get(z, i * 10 + k) - m);
                double sm =
                    dt == NB_F32 ? ((const float *)saved)[2 * i] : ((const double *)saved)[2 * i];
                double sl = dt == NB_F32 ? ((const float *)saved)[2 * i + 1]
                                         : ((const double *)saved)[2 * i + 1];
                assert_true(sm == m);
                tc_near(sl, log(se), 1e-5);
            }
            nb_tensor *dz = NULL, *dz_rec = NULL;
            assert_int_equal(nb_grad(g, loss, NULL, &z, 1, &dz, false), NB_OK);
            assert_int_equal(nb_grad(g, loss, NULL, &z, 1, &dz_rec, true), NB_OK);
            assert_int_equal(nb_op_n_inputs(dz_rec), 3);
            assert_ptr_equal(nb_op_input(dz_rec, 2), loss);
            nb_tensor *two[2] = {z, nb_scalar(g, (nb_dtype)dt, 1)};
            nb_tensor *re = apply_xent(g, "softmax_xent_backward", two, 2, labels, 33, r);
            assert_non_null(re);
            size_t bytes = (size_t)nb_tensor_size(dz) * nb_dtype_size((nb_dtype)dt);
            assert_memory_equal(nb_tensor_data(dz), nb_tensor_data(re), bytes);
            assert_memory_equal(nb_tensor_data(dz_rec), nb_tensor_data(re), bytes);
            /* not recording: the forward saves them all the same; a backward
             * given that node, which has no record of z, recomputes them */
            nb_graph_set_recording(g, false);
            nb_tensor *plain = nb_softmax_cross_entropy(g, z, labels, 33, r);
            assert_non_null(nb_op_attrs(plain)->saved);
            assert_memory_equal(nb_op_attrs(plain)->saved, saved,
                                2 * 33 * nb_dtype_size((nb_dtype)dt));
            nb_tensor *three[3] = {z, two[1], plain};
            nb_tensor *re3 = apply_xent(g, "softmax_xent_backward", three, 3, labels, 33, r);
            assert_non_null(re3);
            assert_memory_equal(nb_tensor_data(re3), nb_tensor_data(re), bytes);
            assert_int_equal(nb_graph_status(g), NB_OK);
            nb_graph_free(g);
        }
}

/* attrs.saved is the kernel's: a caller's pointer is neither copied nor
 * written through. */
static void test_saved_not_callers(void **state)
{
    (void)state;
    double decoy[64];
    for (int k = 0; k < 64; k++)
        decoy[k] = 7;
    nb_graph *g = nb_graph_new();
    int64_t shape[] = {4, 3}, labels[] = {0, 2, 1, 1};
    nb_tensor *z = nb_full(g, NB_F64, 2, shape, 0.5);
    nb_attrs a = {0};
    a.idx = labels;
    a.n_idx = 4;
    a.saved = decoy;
    nb_tensor *loss = nb_apply(g, nb_op_find("softmax_xent"), &z, 1, &a);
    assert_non_null(loss);
    assert_true(nb_op_attrs(loss)->saved != (void *)decoy);
    for (int k = 0; k < 64; k++)
        assert_true(decoy[k] == 7);
    tc_near(nb_tensor_get(loss, 0), log(3.0), 1e-15);
    nb_graph_free(g);
}

/* ----------------------------------------------------------------- errors */

static void expect_error(nb_graph *g, const nb_tensor *t, nb_status st, const char *where,
                         const char *msg)
{
    assert_null(t);
    assert_int_equal(nb_graph_status(g), st);
    assert_string_equal(nb_graph_error(g)->where, where);
    if (!strstr(nb_graph_error(g)->msg, msg))
        fail_msg("error '%s' does not contain '%s'", nb_graph_error(g)->msg, msg);
}

static void test_errors(void **state)
{
    (void)state;
    static const char ce[] = "softmax_cross_entropy", fw[] = "softmax_xent",
                      bw[] = "softmax_xent_backward";
    int64_t s34[] = {3, 4}, s234[] = {2, 3, 4}, s30[] = {3, 0}, s3[] = {3};
    int64_t ok[] = {0, 3, 1}, bad[] = {0, 4, 1}, neg[] = {0, -1, 1};
    nb_graph *g;
#define FRESH() (g ? nb_graph_free(g) : (void)0, g = nb_graph_new())
    g = NULL;
    FRESH();
    nb_tensor *z = nb_zeros(g, NB_F64, 2, s34);
    /* nb_softmax_cross_entropy's own checks, unchanged */
    expect_error(g, nb_softmax_cross_entropy(g, z, bad, 3, NB_REDUCE_MEAN), NB_ERR_ARG, ce,
                 "label 4 of sample 1 is outside [0, 4)");
    FRESH();
    z = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, nb_softmax_cross_entropy(g, z, ok, 2, NB_REDUCE_SUM), NB_ERR_SHAPE, ce,
                 "logits [3,4] but 2 labels");
    FRESH();
    z = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, nb_softmax_cross_entropy(g, z, NULL, 3, NB_REDUCE_MEAN), NB_ERR_NULL, ce,
                 "labels is NULL");
    FRESH();
    expect_error(g,
                 nb_softmax_cross_entropy(g, nb_zeros(g, NB_F64, 3, s234), ok, 2, NB_REDUCE_MEAN),
                 NB_ERR_SHAPE, ce, "must be [N, C] with C >= 1");
    FRESH();
    expect_error(g, nb_softmax_cross_entropy(g, nb_zeros(g, NB_F64, 2, s30), ok, 3, NB_REDUCE_MEAN),
                 NB_ERR_SHAPE, ce, "must be [N, C] with C >= 1");
    FRESH();
    z = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, nb_softmax_cross_entropy(g, z, ok, 3, (nb_reduction)7), NB_ERR_ARG, ce,
                 "unknown reduction 7");

    /* the ops recorded directly */
    FRESH();
    z = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, apply_xent(g, fw, &z, 1, neg, 3, 0), NB_ERR_ARG, fw,
                 "label -1 of sample 1 is outside [0, 4)");
    FRESH();
    z = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, apply_xent(g, fw, &z, 1, ok, 2, 1), NB_ERR_SHAPE, fw,
                 "logits [3,4] but 2 labels");
    FRESH();
    z = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, apply_xent(g, fw, &z, 1, ok, 3, 2), NB_ERR_ARG, fw, "reduction 2");
    FRESH();
    z = nb_zeros(g, NB_F64, 1, s3);
    expect_error(g, apply_xent(g, fw, &z, 1, ok, 3, 0), NB_ERR_SHAPE, fw,
                 "logits [3] must be [N, C]");
    FRESH();
    nb_tensor *in[2] = {nb_zeros(g, NB_F64, 2, s34), nb_zeros(g, NB_F64, 1, s3)};
    expect_error(g, apply_xent(g, bw, in, 2, ok, 3, 0), NB_ERR_SHAPE, bw,
                 "gradient f64[3] must be a scalar");
    FRESH();
    in[0] = nb_zeros(g, NB_F64, 2, s34);
    in[1] = nb_scalar(g, NB_F32, 1);
    expect_error(g, apply_xent(g, bw, in, 2, ok, 3, 0), NB_ERR_DTYPE, bw,
                 "must be a scalar of the logits' dtype f64");
    FRESH();
    in[0] = nb_zeros(g, NB_F64, 2, s34);
    in[1] = nb_scalar(g, NB_F64, 1);
    expect_error(g, apply_xent(g, bw, in, 2, bad, 3, 1), NB_ERR_ARG, bw, "label 4 of sample 1");
    /* input 2 must be the recorded softmax_xent of input 0 */
    FRESH();
    nb_tensor *in3[4] = {nb_zeros(g, NB_F64, 2, s34), nb_scalar(g, NB_F64, 1), NULL, NULL};
    in3[2] = nb_zeros(g, NB_F64, 0, NULL);
    expect_error(g, apply_xent(g, bw, in3, 3, ok, 3, 0), NB_ERR_ARG, bw,
                 "input 2 (made by leaf) must be the softmax_xent of input 0");
    FRESH();
    in3[0] = nb_zeros(g, NB_F64, 2, s34);
    in3[1] = nb_scalar(g, NB_F64, 1);
    in3[2] = apply_xent(g, fw, (nb_tensor *[]){nb_zeros(g, NB_F64, 2, s34)}, 1, ok, 3, 0);
    assert_non_null(in3[2]);
    expect_error(g, apply_xent(g, bw, in3, 3, ok, 3, 0), NB_ERR_ARG, bw,
                 "input 2 (made by softmax_xent) must be the softmax_xent of input 0");
    FRESH();
    in3[0] = nb_zeros(g, NB_F64, 2, s34);
    in3[1] = nb_scalar(g, NB_F64, 1);
    in3[2] = nb_exp(g, in3[1]);
    expect_error(g, apply_xent(g, bw, in3, 3, ok, 3, 0), NB_ERR_ARG, bw,
                 "input 2 (made by exp) must be the softmax_xent of input 0");
    FRESH();
    in3[0] = nb_zeros(g, NB_F64, 2, s34);
    in3[1] = nb_scalar(g, NB_F64, 1);
    in3[2] = apply_xent(g, fw, in3, 1, ok, 3, 0);
    in3[3] = in3[1];
    expect_error(g, apply_xent(g, bw, in3, 4, ok, 3, 0), NB_ERR_ARG, bw,
                 "takes 2 or 3 inputs (z, g[, y]), got 4");
    FRESH();
    in3[0] = nb_zeros(g, NB_F64, 2, s34);
    expect_error(g, apply_xent(g, bw, in3, 1, ok, 3, 0), NB_ERR_ARG, bw,
                 "takes 2 or 3 inputs (z, g[, y]), got 1");
    nb_graph_free(g);
#undef FRESH
}

/* N = 0: as the composition, the mean is NaN (0/0) and the sum 0; the
 * gradient is empty. */
static void test_empty(void **state)
{
    (void)state;
    int64_t s04[] = {0, 4};
    for (int dt = NB_F32; dt <= NB_F64; dt++)
        for (int r = NB_REDUCE_MEAN; r <= NB_REDUCE_SUM; r++) {
            nb_graph *g = nb_graph_new();
            nb_tensor *z = nb_tensor_set_requires_grad(nb_zeros(g, (nb_dtype)dt, 2, s04), true);
            nb_tensor *now = nb_softmax_cross_entropy(g, z, NULL, 0, r);
            nb_tensor *old = old_ce(g, z, NULL, r);
            assert_non_null(now);
            assert_string_equal(nb_tensor_op_name(now), "softmax_xent");
            double vn = nb_tensor_get(now, 0), vo = nb_tensor_get(old, 0);
            if (r == NB_REDUCE_MEAN) {
                assert_true(isnan(vn));
                assert_true(isnan(vo));
            } else {
                assert_true(vn == 0 && vo == 0 && !signbit(vn) && !signbit(vo));
            }
            nb_tensor *dz = NULL;
            assert_int_equal(nb_grad(g, now, NULL, &z, 1, &dz, false), NB_OK);
            assert_int_equal(nb_tensor_size(dz), 0);
            assert_int_equal(nb_graph_status(g), NB_OK);
            nb_graph_free(g);
        }
}

/* A row whose x − max(x) overflows to −∞: the composition's 0·(−∞) made
 * its loss NaN; the primitive's is the label's log-probability, here 0. */
static void test_overflow(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    int64_t shape[] = {1, 2}, label[] = {1};
    nb_tensor *z = nb_tensor_from(g, NB_F32, 2, shape, (float[]){-3e38f, 3e38f});
    assert_true(isnan(nb_tensor_get(old_ce(g, z, label, NB_REDUCE_SUM), 0)));
    nb_tensor *now = nb_softmax_cross_entropy(g, z, label, 1, NB_REDUCE_SUM);
    assert_true(nb_tensor_get(now, 0) == 0);
    nb_graph_free(g);
}

/* Out of memory for the forward kernel's row statistics (kept in the node)
 * and its buffer (N negated log-probabilities and a scratch row): the
 * allocation that needs a new arena chunk fails; shifting what comes before
 * moves that boundary over each of the op's allocations in turn. Every
 * failure is a clean NB_ERR_NOMEM under the op's name; at least one falls on
 * the statistics and one on the buffer. */
static nb_tensor *oom_loss(nb_graph *g, nb_tensor *z, void *ctx)
{
    return nb_softmax_cross_entropy(g, z, ctx, 4000, NB_REDUCE_MEAN);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    static int64_t labels[4000];
    int64_t shape[] = {4000, 3};
    fill_labels(labels, 4000, 3, 0);
    const char *msgs[] = {
        "out of memory allocating 32024 bytes", /* the buffer: (4000 + 3)·8 */
        "out of memory allocating 64000 bytes", /* the statistics: 2·4000·8 */
    };
    assert_int_equal(tc_oom_sweep(oom_loss, labels, 2, shape, "softmax_xent", msgs, 2), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bit_identical),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_backward_one_tangent),
        cmocka_unit_test(test_second_order),
        cmocka_unit_test(test_one_node),
        cmocka_unit_test(test_saved_stats),
        cmocka_unit_test(test_saved_not_callers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
