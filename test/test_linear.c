/* The fused linear map nb_linear, y = act(x·W + b): the GEMM's epilogue
 * against the add and relu it replaces (bit for bit, every micro-kernel
 * family, plan and thread count), the op against matmul + add + relu
 * (values and gradients bit for bit, on every matmul kernel), its
 * gradient checks, the reverse sweep making the gradient through the
 * activation once, the errors of its shape rule, and the linear layers
 * and MLPs that run on it. */

#include "tc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/gemm.h"

/* ------------------------------------------------------- the epilogue */

/* c (m x n, row stride ldc) = relu(c + bias) in dtype dt, as the add and
 * relu kernels compute it (bias or relu may be absent); the bias is one
 * per column, or with rows one per row */
static void reference_epilogue(nb_dtype dt, void *c, int64_t m, int64_t n, int64_t ldc,
                               const void *bias, bool rows, bool relu)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t at = rows ? i : j;
            if (dt == NB_F32) {
                float *e = (float *)c + i * ldc + j, v = *e;
                if (bias)
                    v = v + ((const float *)bias)[at];
                *e = relu && v <= 0 ? 0 : v;
            } else {
                double *e = (double *)c + i * ldc + j, v = *e;
                if (bias)
                    v = v + ((const double *)bias)[at];
                *e = relu && v <= 0 ? 0 : v;
            }
        }
}

static void fill_uniform(nb_rng *rng, nb_dtype dt, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        double v = nb_rng_uniform(rng) * 2 - 1;
        if (dt == NB_F32)
            ((float *)p)[i] = (float)v;
        else
            ((double *)p)[i] = v;
    }
}

/* Limits that put every thread to work and share out C both ways. */
static const nbk_gemm_limits all_threads[2] = {{.thread_work = 0, .cache_bytes = 1e12},
                                               {.thread_work = 0, .cache_bytes = 0}};

/* One product with each epilogue (bias of the columns or of the rows,
 * relu, both), every family, on 1 and 3 threads: C must equal the product
 * without the epilogue followed by the reference, bit for bit, and C's row
 * padding must stay untouched. */
static void check_epilogue(nb_dtype dt, bool ta, bool tb, bool acc, int64_t m, int64_t n, int64_t k,
                           int64_t pad, uint64_t seed)
{
    size_t es = nb_dtype_size(dt);
    int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    size_t na = (size_t)((ta ? k : m) * lda), nbe = (size_t)((tb ? n : k) * ldb),
           nc = (size_t)(m * ldc);
    int64_t nbias = m > n ? m : n;
    void *a = malloc(na * es), *b = malloc(nbe * es), *bias = malloc((size_t)nbias * es),
         *c0 = malloc(nc * es), *want = malloc(nc * es), *got = malloc(nc * es);
    assert_true(a && b && bias && c0 && want && got);
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    fill_uniform(&rng, dt, a, na);
    fill_uniform(&rng, dt, b, nbe);
    fill_uniform(&rng, dt, bias, (size_t)nbias);
    fill_uniform(&rng, dt, c0, nc); /* what accumulate adds to; the padding too */
    /* op(A)(0,0) NaN: C's first row is NaN, which relu keeps */
    if (m > 1) {
        if (dt == NB_F32)
            ((float *)a)[0] = NAN;
        else
            ((double *)a)[0] = NAN;
    }
    nbk_gemm p = {.dtype = dt,
                  .trans_a = ta,
                  .trans_b = tb,
                  .accumulate = acc,
                  .m = m,
                  .n = n,
                  .k = k,
                  .a = a,
                  .lda = lda,
                  .b = b,
                  .ldb = ldb,
                  .ldc = ldc};
    size_t ws_bytes = nbk_gemm_workspace(&p, 3);
    for (int l = 0; l < 2; l++) {
        size_t bytes = nbk_gemm_workspace_limits(&p, 3, &all_threads[l]);
        ws_bytes = bytes > ws_bytes ? bytes : ws_bytes;
    }
    void *ws = malloc(ws_bytes);
    assert_non_null(ws);
    for (int isa = 0; isa <= (int)nbk_gemm_best_isa(); isa++)
        for (int e = 1; e < 6; e++) { /* bias, relu, both; row bias, and with relu */
            const void *eb = e & 1 || e > 3 ? bias : NULL;
            bool relu = e & 2 || e == 5, rows = e > 3;
            nbk_gemm plain = p;
            memcpy(want, c0, nc * es);
            plain.c = want;
            nbk_gemm_builtin_isa(&plain, ws, 1, (nbk_gemm_isa)isa);
            reference_epilogue(dt, want, m, n, ldc, eb, rows, relu);
            nbk_gemm q = p;
            q.bias = eb;
            q.bias_rows = rows;
            q.relu = relu;
            q.c = got;
            for (int run = 0; run < 3; run++) {
                memcpy(got, c0, nc * es);
                if (run == 0)
                    nbk_gemm_builtin_isa(&q, ws, 1, (nbk_gemm_isa)isa);
                else
                    nbk_gemm_builtin_limits(&q, ws, 3, (nbk_gemm_isa)isa, &all_threads[run - 1]);
                if (memcmp(got, want, nc * es) != 0)
                    fail_msg(
                        "epilogue %d, family %d, %s ta=%d tb=%d acc=%d %lldx%lldx%lld, run %d: "
                        "not the product followed by the add and the relu",
                        e, isa, nb_dtype_name(dt), ta, tb, acc, (long long)m, (long long)n,
                        (long long)k, run);
            }
            /* and the whole-matrix epilogue other kernels use */
            memcpy(got, c0, nc * es);
            plain.c = got;
            nbk_gemm_builtin_isa(&plain, ws, 1, (nbk_gemm_isa)isa);
            q.c = got;
            nbk_gemm_epilogue(&q);
            assert_memory_equal(got, want, nc * es);
        }
    free(ws);
    free(a), free(b), free(bias), free(c0), free(want), free(got);
}

static void test_epilogue_kernel(void **state)
{
    (void)state;
    /* one element, edge tiles, k in several slices (800, 390), the
     * transposed plans of narrow products (128 x 10, 4100 x 2), wide ones */
    static const int64_t sizes[][3] = {{1, 1, 1},     {7, 13, 5},     {67, 129, 33},
                                       {13, 40, 800}, {128, 10, 128}, {4100, 2, 3},
                                       {2, 300, 3},   {200, 35, 390}, {40, 600, 70}};
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int c = 0; c < 4; c++) {
            nb_dtype dt = (s + (size_t)c) % 2 ? NB_F64 : NB_F32;
            check_epilogue(dt, c & 1, c & 2, (s + (size_t)c) % 3 == 1, sizes[s][0], sizes[s][1],
                           sizes[s][2], s % 2 ? 3 : 0, seed++);
        }
    /* an empty sum: C is the epilogue of zeros (or of C itself when added to) */
    float c[4] = {1, -2, 3, -4}, bias[2] = {-1, 0.5f}, a[1] = {0}, b[1] = {0};
    nbk_gemm p = {.dtype = NB_F32,
                  .m = 2,
                  .n = 2,
                  .k = 0,
                  .a = a,
                  .lda = 1,
                  .b = b,
                  .ldb = 2,
                  .c = c,
                  .ldc = 2,
                  .bias = bias,
                  .relu = true};
    nbk_gemm_builtin(&p, NULL, 1);
    tc_near(c[0], 0, 0), tc_near(c[1], 0.5, 0), tc_near(c[2], 0, 0), tc_near(c[3], 0.5, 0);
    c[0] = 3, c[1] = -2;
    p.accumulate = true;
    p.relu = false;
    nbk_gemm_builtin(&p, NULL, 1);
    tc_near(c[0], 2, 0), tc_near(c[1], -1.5, 0);
}

/* ------------------------------------------------------------- the op */

/* y = act(x·W + b) both fused and as matmul, add and relu */
static nb_tensor *linear_composed(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                                  nb_linear_act act)
{
    nb_tensor *y = nb_matmul(g, x, w, false, false);
    if (b)
        y = nb_add(g, y, b);
    return act == NB_LINEAR_RELU ? nb_relu(g, y) : y;
}

static nb_tensor *leaf(nb_graph *g, nb_rng *rng, nb_dtype dt, int rank, const int64_t *shape)
{
    nb_tensor *t = nb_rand_uniform(g, rng, dt, rank, shape, -1, 1);
    assert_non_null(t);
    nb_tensor_set_requires_grad(t, true);
    return t;
}

static void assert_same_tensor(nb_tensor *a, nb_tensor *b, const char *what)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(nb_tensor_size(a), nb_tensor_size(b));
    if (memcmp(nb_tensor_data(a), nb_tensor_data(b),
               (size_t)nb_tensor_size(a) * nb_dtype_size(nb_tensor_dtype(a))) != 0)
        fail_msg("%s: fused and composed differ", what);
}

/* The op's value and the gradients of x, W and b against the composition,
 * bit for bit: small and large products, rank 2 and 3, with and without
 * bias and ReLU, both dtypes, each matmul kernel, 1 and 2 threads. */
static void test_matches_composition(void **state)
{
    (void)state;
    static const int64_t sizes[][4] = {
        {1, 3, 4, 5}, {2, 3, 4, 5}, {1, 130, 300, 37}, {2, 33, 129, 67}, {1, 128, 10, 1}};
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int v = 0; v < 12; v++) {
            nb_dtype dt = v % 2 ? NB_F64 : NB_F32;
            nb_linear_act act = (v / 2) % 2 ? NB_LINEAR_RELU : NB_LINEAR_IDENTITY;
            bool bias = (v / 4) % 2 == 0; /* with every kernel */
            nb_graph *g = nb_graph_new();
            nb_graph_set_matmul(g, (nb_matmul_kernel)(v % 3));
            nb_graph_set_threads(g, v % 4 < 2 ? 1 : 2);
            int64_t B = sizes[s][0], M = sizes[s][1], K = sizes[s][2], N = sizes[s][3];
            int rank = B > 1 ? 3 : 2;
            int64_t xs[3] = {B, M, K}, ws[2] = {K, N}, bs[1] = {N};
            nb_tensor *x = leaf(g, &rng, dt, rank, rank == 3 ? xs : xs + 1);
            nb_tensor *w = leaf(g, &rng, dt, 2, ws);
            nb_tensor *b = bias ? leaf(g, &rng, dt, 1, bs) : NULL;
            nb_tensor *in[3] = {x, w, b}, *fused[3] = {0}, *composed[3] = {0};
            nb_tensor *y1 = nb_linear(g, x, w, b, act), *y2 = linear_composed(g, x, w, b, act);
            assert_same_tensor(y1, y2, "value");
            assert_string_equal(nb_tensor_op_name(y1), "linear");
            nb_tensor *seed =
                nb_rand_uniform(g, &rng, dt, nb_tensor_rank(y1), nb_tensor_shape(y1), -1, 1);
            assert_int_equal(nb_grad(g, y1, seed, in, bias ? 3 : 2, fused, false), NB_OK);
            assert_int_equal(nb_grad(g, y2, seed, in, bias ? 3 : 2, composed, false), NB_OK);
            for (int i = 0; i < (bias ? 3 : 2); i++)
                assert_same_tensor(fused[i], composed[i], "gradient");
            nb_graph_free(g);
        }
}

/* f64 gradient checks (reverse against central differences, forward tied
 * to reverse, f32 against f64) with the bias broadcast over rows and over
 * a batch */
static nb_tensor *linear_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const nb_linear_act *act = ctx;
    return nb_linear(g, in[0], in[1], in[2], *act);
}

static nb_tensor *linear_nobias_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    return nb_linear(g, in[0], in[1], NULL, NB_LINEAR_RELU);
}

static void test_gradcheck(void **state)
{
    (void)state;
    for (int a = 0; a < 2; a++) {
        nb_linear_act act = a ? NB_LINEAR_RELU : NB_LINEAR_IDENTITY;
        tc_shape s2[3] = {{2, {4, 3}}, {2, {3, 5}}, {1, {5}}};
        tc_check(a ? "linear relu [4,3]" : "linear [4,3]", linear_fn, &act, 3, s2,
                 &(tc_opts){.seed = 11});
        tc_shape s3[3] = {{3, {2, 4, 3}}, {2, {3, 5}}, {1, {5}}};
        tc_check(a ? "linear relu [2,4,3]" : "linear [2,4,3]", linear_fn, &act, 3, s3,
                 &(tc_opts){.seed = 12});
    }
    tc_shape s[2] = {{2, {4, 3}}, {2, {3, 5}}};
    tc_check("linear relu, no bias", linear_nobias_fn, NULL, 2, s, &(tc_opts){.seed = 13});
}

/* Second derivatives: the gradient recorded (create_graph) and
 * differentiated again equals the composition's. */
static void test_second_order(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    int64_t xs[2] = {3, 4}, ws[2] = {4, 2}, bs[1] = {2};
    nb_tensor *x = leaf(g, &rng, NB_F64, 2, xs), *w = leaf(g, &rng, NB_F64, 2, ws),
              *b = leaf(g, &rng, NB_F64, 1, bs);
    nb_tensor *got[2];
    for (int k = 0; k < 2; k++) {
        /* f = Σ tanh(act(x·W + b)), then Σ (df/dx)² differentiated by W */
        nb_tensor *y =
            k ? linear_composed(g, x, w, b, NB_LINEAR_RELU) : nb_linear(g, x, w, b, NB_LINEAR_RELU);
        nb_tensor *f = nb_sum(g, nb_tanh(g, y), NULL, 0, false), *dx = NULL;
        assert_int_equal(nb_grad(g, f, NULL, &x, 1, &dx, true), NB_OK);
        nb_tensor *h = nb_sum(g, nb_mul(g, dx, dx), NULL, 0, false);
        assert_int_equal(nb_grad(g, h, NULL, &w, 1, &got[k], false), NB_OK);
    }
    for (int64_t i = 0; i < nb_tensor_size(got[0]); i++)
        tc_near(nb_tensor_get(got[0], i), nb_tensor_get(got[1], i), 1e-12);
    nb_graph_free(g);
}

/* The reverse sweep masks the gradient once for all three inputs, and the
 * op's own rule (what nb_op_get gives) agrees with the sweep. */
static void test_vjp_once(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    int64_t xs[2] = {6, 5}, ws[2] = {5, 4}, bs[1] = {4};
    nb_tensor *x = leaf(g, &rng, NB_F64, 2, xs), *w = leaf(g, &rng, NB_F64, 2, ws),
              *b = leaf(g, &rng, NB_F64, 1, bs);
    nb_tensor *y = nb_linear(g, x, w, b, NB_LINEAR_RELU);
    nb_tensor *seed = nb_rand_uniform(g, &rng, NB_F64, 2, nb_tensor_shape(y), -1, 1);
    nb_tensor *in[3] = {x, w, b}, *swept[3];
    uint64_t before = nb_graph_evals(g);
    assert_int_equal(nb_grad(g, y, seed, in, 3, swept, false), NB_OK);
    /* relu_mask, two matmuls and sum_to: no mask per input */
    assert_int_equal(nb_graph_evals(g) - before, 4);
    const nb_op_def *def = nb_op_get(nb_op_find("linear"));
    assert_non_null(def);
    for (int i = 0; i < 3; i++)
        assert_same_tensor(def->vjp(g, y, i, seed), swept[i], "the op's rule and the sweep");
    nb_graph_free(g);
}

/* ------------------------------------------------------------- errors */

static void expect_error(nb_graph *g, nb_tensor *y, nb_status code, const char *part)
{
    assert_null(y);
    assert_int_equal(nb_graph_status(g), code);
    const char *msg = nb_graph_error(g)->msg;
    if (!strstr(msg, "linear") || !strstr(msg, part))
        fail_msg("message \"%s\" should name linear and \"%s\"", msg, part);
    nb_graph_clear_error(g);
}

static nb_tensor *zeros(nb_graph *g, nb_dtype dt, int rank, int64_t d0, int64_t d1, int64_t d2)
{
    int64_t shape[3] = {d0, d1, d2};
    return nb_zeros(g, dt, rank, shape);
}

static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = zeros(g, NB_F64, 2, 3, 4, 0), *w = zeros(g, NB_F64, 2, 4, 5, 0),
              *b = zeros(g, NB_F64, 1, 5, 0, 0);
    expect_error(g, nb_linear(g, x, zeros(g, NB_F64, 2, 3, 5, 0), b, NB_LINEAR_RELU), NB_ERR_SHAPE,
                 "x f64[3,4], W f64[3,5], b f64[5]: inner sizes differ");
    expect_error(g, nb_linear(g, zeros(g, NB_F64, 1, 4, 0, 0), w, b, NB_LINEAR_RELU), NB_ERR_SHAPE,
                 "x must be [M,K] or [B,M,K] and W [K,N]");
    expect_error(g, nb_linear(g, x, zeros(g, NB_F64, 3, 1, 4, 5), NULL, NB_LINEAR_IDENTITY),
                 NB_ERR_SHAPE, "b none");
    expect_error(g, nb_linear(g, x, w, zeros(g, NB_F64, 1, 4, 0, 0), NB_LINEAR_RELU), NB_ERR_SHAPE,
                 "b must be [N]");
    expect_error(g, nb_linear(g, x, w, zeros(g, NB_F64, 2, 1, 5, 0), NB_LINEAR_RELU), NB_ERR_SHAPE,
                 "b must be [N]");
    expect_error(g, nb_linear(g, zeros(g, NB_F32, 2, 3, 4, 0), w, b, NB_LINEAR_RELU), NB_ERR_DTYPE,
                 "dtypes differ");
    expect_error(g, nb_linear(g, x, w, zeros(g, NB_F32, 1, 5, 0, 0), NB_LINEAR_RELU), NB_ERR_DTYPE,
                 "b f32[5]");
    expect_error(g, nb_linear(g, x, w, b, (nb_linear_act)7), NB_ERR_ARG, "unknown activation 7");
    int id = nb_op_find("linear");
    nb_tensor *four[4] = {x, w, b, b};
    expect_error(g, nb_apply(g, id, four, 4, NULL), NB_ERR_ARG, "takes 2 or 3 inputs");
    expect_error(g, nb_apply(g, id, four, 1, NULL), NB_ERR_ARG, "got 1");
    /* a NULL input: NULL quietly; empty products are zeros through the epilogue */
    assert_null(nb_linear(g, NULL, w, b, NB_LINEAR_RELU));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_tensor *e = nb_linear(g, zeros(g, NB_F64, 2, 0, 4, 0), w, b, NB_LINEAR_RELU);
    assert_non_null(e);
    assert_int_equal(nb_tensor_size(e), 0);
    nb_tensor *b1 = nb_full(g, NB_F64, 1, (int64_t[]){5}, -1.5);
    nb_tensor *k0 = nb_linear(g, zeros(g, NB_F64, 2, 3, 0, 0), zeros(g, NB_F64, 2, 0, 5, 0), b1,
                              NB_LINEAR_IDENTITY);
    assert_non_null(k0);
    for (int64_t i = 0; i < 15; i++)
        tc_near(nb_tensor_get(k0, i), -1.5, 0);
    nb_graph_free(g);
}

/* --------------------------------------------------------- the layers */

/* An MLP's linear layers run as the fused op, a ReLU layer folded into the
 * one before it; the values and parameter gradients are those of the
 * layers' composition written out by hand. */
static void test_mlp_fused(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    nb_layer *net = NULL;
    static const int64_t sizes[3] = {6, 5, 3};
    assert_int_equal(nb_mlp_new(m, NULL, sizes, 3, &o, &net), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F32, 2, (int64_t[]){4, 6}, -1, 1);
    nb_tensor *y = nb_layer_forward(g, net, x, true);
    assert_non_null(y);
    assert_string_equal(nb_tensor_op_name(y), "linear");
    nb_tensor *hidden = nb_op_input(y, 0);
    assert_string_equal(nb_tensor_op_name(hidden), "linear");
    assert_int_equal(nb_op_attrs(hidden)->ints[0], NB_LINEAR_RELU);
    assert_int_equal(nb_op_attrs(y)->ints[0], NB_LINEAR_IDENTITY);
    assert_int_equal(nb_backward(g, nb_sum(g, y, NULL, 0, false)), NB_OK);

    nb_tensor *p[4] = {nb_model_get(m, "fc1.weight"), nb_model_get(m, "fc1.bias"),
                       nb_model_get(m, "fc2.weight"), nb_model_get(m, "fc2.bias")};
    float *fused_grad[4];
    for (int i = 0; i < 4; i++) {
        assert_non_null(p[i]);
        size_t bytes = (size_t)nb_tensor_size(p[i]) * sizeof(float);
        fused_grad[i] = malloc(bytes);
        assert_non_null(fused_grad[i]);
        memcpy(fused_grad[i], nb_tensor_data(nb_tensor_grad(p[i])), bytes);
    }
    nb_model_zero_grad(m);
    nb_tensor *h = nb_relu(g, nb_add(g, nb_matmul(g, x, p[0], false, false), p[1]));
    nb_tensor *y2 = nb_add(g, nb_matmul(g, h, p[2], false, false), p[3]);
    assert_same_tensor(y, y2, "MLP output");
    assert_int_equal(nb_backward(g, nb_sum(g, y2, NULL, 0, false)), NB_OK);
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(fused_grad[i], nb_tensor_data(nb_tensor_grad(p[i])),
                            (size_t)nb_tensor_size(p[i]) * sizeof(float));
        free(fused_grad[i]);
    }
    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
}

/* nb_backward adds a linear layer's weight gradient straight into the
 * parameter's ->grad (the product accumulating into it): the same bits as
 * nb_grad's gradient added into a cleared buffer, for f32 and f64, x of
 * rank 2 and 3, 1 and 2 threads, the weight used by two ops (each use's
 * gradient added in the sweep's order, as into the sweep's own buffer); a
 * second backward pass without clearing adds to it (to rounding: each use's
 * gradient is added in turn, where the sum of the pass used to be); with
 * more rows than one slice of the product's k (a batch of 1000) the sum
 * agrees to rounding; nb_grad leaves ->grad alone, and the check-finite
 * sweep takes the usual route to the same numbers. */
static void test_backward_into_grad(void **state)
{
    (void)state;
    for (int v = 0; v < 8; v++) {
        nb_dtype dt = v & 1 ? NB_F64 : NB_F32;
        bool rank3 = v & 2, big = v & 4;
        int64_t rows = big ? 1000 : 24, k = 40, n = 33;
        nb_model *m = nb_model_new();
        nb_tensor *w = NULL, *b = NULL;
        assert_int_equal(nb_model_add(m, "w", dt, 2, (int64_t[]){k, n}, &w), NB_OK);
        assert_int_equal(nb_model_add(m, "b", dt, 1, (int64_t[]){n}, &b), NB_OK);
        nb_rng rng;
        nb_rng_seed(&rng, 60 + (uint64_t)v);
        for (int64_t e = 0; e < k * n; e++)
            nb_tensor_set(w, e, nb_rng_uniform(&rng) - 0.5);
        nb_graph *g = nb_graph_new();
        nb_graph_set_threads(g, 1 + v % 2);
        nb_tensor *x = rank3 ? nb_rand_uniform(g, &rng, dt, 3, (int64_t[]){2, rows / 2, k}, -1, 1)
                             : nb_rand_uniform(g, &rng, dt, 2, (int64_t[]){rows, k}, -1, 1);
        nb_tensor *r = nb_rand_uniform(g, &rng, dt, 2, (int64_t[]){rows, n}, -1, 1);
        /* the loss: Σ r·relu(x·W + b) + Σ (x·W)² / 8 (W used twice) */
        nb_tensor *x2 = nb_reshape(g, x, 2, (int64_t[]){rows, k});
        nb_tensor *y = nb_linear(g, x2, w, b, NB_LINEAR_RELU);
        nb_tensor *z = rank3 ? nb_reshape(g, nb_linear(g, x, w, NULL, NB_LINEAR_IDENTITY), 2,
                                          (int64_t[]){rows, n})
                             : nb_linear(g, x, w, NULL, NB_LINEAR_IDENTITY);
        nb_tensor *loss = nb_add(g, nb_sum(g, nb_mul(g, r, y), NULL, 0, false),
                                 nb_scale(g, nb_sum(g, nb_square(g, z), NULL, 0, false), 0.125));
        assert_non_null(loss);
        nb_tensor *gw = NULL;
        assert_int_equal(nb_grad(g, loss, NULL, &w, 1, &gw, false), NB_OK);
        nb_tensor *grad = nb_tensor_grad(w);
        size_t bytes = (size_t)(k * n) * nb_dtype_size(dt);
        char *zero = calloc(1, bytes);
        assert_memory_equal(nb_tensor_data(grad), zero, bytes); /* nb_grad: ->grad untouched */
        assert_int_equal(nb_backward(g, loss), NB_OK);
        /* 0 + dW_relu + dW_square, as the sweep adds two gradients of a leaf */
        nb_tensor *twice = nb_add(g, gw, gw);
        if (!big)
            assert_memory_equal(nb_tensor_data(grad), nb_tensor_data(gw), bytes);
        for (int64_t e = 0; e < k * n; e++)
            tc_near(nb_tensor_get(grad, e), nb_tensor_get(gw, e),
                    (dt == NB_F32 ? 1e-5 : 1e-13) * (1 + fabs(nb_tensor_get(gw, e))));
        assert_int_equal(nb_backward(g, loss), NB_OK); /* no clearing: twice the gradient */
        for (int64_t e = 0; e < k * n; e++)
            tc_near(nb_tensor_get(grad, e), nb_tensor_get(twice, e),
                    (dt == NB_F32 ? 1e-5 : 1e-13) * (1 + fabs(nb_tensor_get(twice, e))));
        if (!big) { /* exactly (gw + d_square) + d_relu: the later op's use is visited first */
            nb_tensor *parts[2], *t1 = nb_sum(g, nb_mul(g, r, y), NULL, 0, false);
            nb_tensor *t2 = nb_scale(g, nb_sum(g, nb_square(g, z), NULL, 0, false), 0.125);
            assert_int_equal(nb_grad(g, t1, NULL, &w, 1, &parts[0], false), NB_OK);
            assert_int_equal(nb_grad(g, t2, NULL, &w, 1, &parts[1], false), NB_OK);
            nb_tensor *expect = nb_add(g, nb_add(g, gw, parts[1]), parts[0]);
            assert_memory_equal(nb_tensor_data(grad), nb_tensor_data(expect), bytes);
        }
        /* the check-finite sweep (the usual route) gives the same numbers */
        nb_model_zero_grad(m);
        nb_graph_set_check_finite(g, true);
        assert_int_equal(nb_backward(g, loss), NB_OK);
        if (!big)
            assert_memory_equal(nb_tensor_data(grad), nb_tensor_data(gw), bytes);
        free(zero);
        nb_graph_free(g);
        nb_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epilogue_kernel), cmocka_unit_test(test_matches_composition),
        cmocka_unit_test(test_gradcheck),       cmocka_unit_test(test_second_order),
        cmocka_unit_test(test_vjp_once),        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_mlp_fused),       cmocka_unit_test(test_backward_into_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
