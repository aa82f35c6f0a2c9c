/* Matrix product and cast: gradient checks in every transpose combination,
 * exact values, the built-in GEMM kernel against a naive loop (it is
 * compiled and tested even when matmul itself goes through BLAS), and the
 * errors the shape rules record. */

#include "tc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ops/gemm.h"

/* ------------------------------------------------------- gradient checks */

typedef struct flags {
    bool ta, tb;
} flags;

static nb_tensor *matmul_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    const flags *f = ctx;
    return nb_matmul(g, in[0], in[1], f->ta, f->tb);
}

/* Shapes of a and b for op(a) [.., m, k] and op(b) [.., k, n]; batch_a /
 * batch_b 0 means no batch axis. */
static void operand_shapes(tc_shape *s, flags f, int64_t batch_a, int64_t batch_b, int64_t m,
                           int64_t k, int64_t n)
{
    int ra = batch_a ? 3 : 2, rb = batch_b ? 3 : 2;
    s[0] = (tc_shape){ra, {0}};
    s[1] = (tc_shape){rb, {0}};
    if (batch_a)
        s[0].dims[0] = batch_a;
    if (batch_b)
        s[1].dims[0] = batch_b;
    s[0].dims[ra - 2] = f.ta ? k : m;
    s[0].dims[ra - 1] = f.ta ? m : k;
    s[1].dims[rb - 2] = f.tb ? n : k;
    s[1].dims[rb - 1] = f.tb ? k : n;
}

static const flags all_flags[4] = {{false, false}, {false, true}, {true, false}, {true, true}};

static void check_matmul(const char *what, int64_t batch_a, int64_t batch_b)
{
    for (int c = 0; c < 4; c++) {
        flags f = all_flags[c];
        tc_shape s[2];
        operand_shapes(s, f, batch_a, batch_b, 3, 5, 4);
        char label[96];
        snprintf(label, sizeof label, "%s trans_a=%d trans_b=%d", what, f.ta, f.tb);
        tc_opts o = {.seed = 40 + (uint64_t)c};
        tc_check(label, matmul_fn, &f, 2, s, &o);
    }
}

static void test_grad_2d(void **state)
{
    (void)state;
    check_matmul("matmul [3,5]x[5,4]", 0, 0);
}

static void test_grad_batched(void **state)
{
    (void)state;
    check_matmul("matmul [2,3,5]x[2,5,4]", 2, 2);
}

static void test_grad_shared_b(void **state)
{
    (void)state;
    check_matmul("matmul [3,3,5]x[5,4]", 3, 0);
}

/* A product inside a longer expression, with one operand used twice:
 * the gradients of both uses add up. */
static nb_tensor *chain_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    nb_tensor *h = nb_tanh(g, nb_matmul(g, in[0], in[1], false, false)); /* [3,4] */
    return nb_matmul(g, h, in[1], false, true);                          /* [3,5] */
}

static void test_grad_chain(void **state)
{
    (void)state;
    tc_shape s[2] = {{2, {3, 5}}, {2, {5, 4}}};
    tc_check("tanh(x W) W^T", chain_fn, NULL, 2, s, NULL);
}

/* ------------------------------------------------------------ exact values */

static void test_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    /* [[1,2,3],[4,5,6]] x [[7,8],[9,10],[11,12]] = [[58,64],[139,154]] */
    double a[] = {1, 2, 3, 4, 5, 6}, b[] = {7, 8, 9, 10, 11, 12};
    double at[] = {1, 4, 2, 5, 3, 6}, bt[] = {7, 9, 11, 8, 10, 12}; /* the transposes */
    double want[] = {58, 64, 139, 154};
    nb_tensor *ta =
        nb_tensor_set_requires_grad(nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 3}, a), true);
    nb_tensor *tb =
        nb_tensor_set_requires_grad(nb_tensor_from(g, NB_F64, 2, (int64_t[]){3, 2}, b), true);
    nb_tensor *tat = nb_tensor_from(g, NB_F64, 2, (int64_t[]){3, 2}, at);
    nb_tensor *tbt = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 3}, bt);
    nb_tensor *ys[4] = {nb_matmul(g, ta, tb, false, false), nb_matmul(g, tat, tb, true, false),
                        nb_matmul(g, ta, tbt, false, true), nb_matmul(g, tat, tbt, true, true)};
    for (int c = 0; c < 4; c++) {
        assert_non_null(ys[c]);
        assert_int_equal(nb_tensor_rank(ys[c]), 2);
        assert_int_equal(nb_tensor_dim(ys[c], 0), 2);
        assert_int_equal(nb_tensor_dim(ys[c], 1), 2);
        for (int i = 0; i < 4; i++)
            tc_near(nb_tensor_get(ys[c], i), want[i], 0);
    }
    /* with a seed of ones: dA = 1·B^T (row sums of B), dB = A^T·1 (column sums of A) */
    nb_tensor *seed = nb_ones(g, NB_F64, 2, (int64_t[]){2, 2});
    assert_int_equal(nb_backward_seed(g, ys[0], seed), NB_OK);
    double da[] = {15, 19, 23, 15, 19, 23}, db[] = {5, 5, 7, 7, 9, 9};
    for (int i = 0; i < 6; i++) {
        tc_near(nb_tensor_get(nb_tensor_grad(ta), i), da[i], 0);
        tc_near(nb_tensor_get(nb_tensor_grad(tb), i), db[i], 0);
    }

    /* batched, f32: batch i is A·(i+1)B */
    float a3[12], b3[12];
    for (int i = 0; i < 6; i++) {
        a3[i] = a3[6 + i] = (float)a[i];
        b3[i] = (float)b[i];
        b3[6 + i] = (float)(2 * b[i]);
    }
    nb_tensor *y3 = nb_matmul(g, nb_tensor_from(g, NB_F32, 3, (int64_t[]){2, 2, 3}, a3),
                              nb_tensor_from(g, NB_F32, 3, (int64_t[]){2, 3, 2}, b3), false, false);
    assert_non_null(y3);
    assert_int_equal(nb_tensor_dtype(y3), NB_F32);
    for (int i = 0; i < 4; i++) {
        tc_near(nb_tensor_get(y3, i), want[i], 0);
        tc_near(nb_tensor_get(y3, 4 + i), 2 * want[i], 0);
    }
    /* shared b: [2,2,3] x [3,2] */
    nb_tensor *ys3 = nb_matmul(g, nb_tensor_from(g, NB_F32, 3, (int64_t[]){2, 2, 3}, a3),
                               nb_tensor_from(g, NB_F32, 2, (int64_t[]){3, 2}, b3), false, false);
    assert_non_null(ys3);
    assert_int_equal(nb_tensor_rank(ys3), 3);
    for (int i = 0; i < 8; i++)
        tc_near(nb_tensor_get(ys3, i), want[i % 4], 0);

    /* empty inner size: a sum of nothing is 0 */
    nb_tensor *z = nb_matmul(g, nb_zeros(g, NB_F64, 2, (int64_t[]){2, 0}),
                             nb_zeros(g, NB_F64, 2, (int64_t[]){0, 3}), false, false);
    assert_non_null(z);
    assert_int_equal(nb_tensor_size(z), 6);
    for (int i = 0; i < 6; i++)
        tc_near(nb_tensor_get(z, i), 0, 0);
    nb_graph_free(g);
}

/* ------------------------------------------------ the built-in kernel */

/* C = op(A)·op(B) by the definition, in double. */
static void naive(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const double *a, int64_t lda,
                  const double *b, int64_t ldb, double *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t p = 0; p < k; p++)
                s +=
                    (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = s;
        }
}

/* Compare one result of the built-in kernel (in c, dtype dt) with the
 * naive one, and check that C's padding (the marker) is untouched. */
static void compare_builtin(const char *isa, nb_dtype dt, bool ta, bool tb, int64_t m, int64_t n,
                            int64_t k, const void *c, int64_t ldc, const double *want)
{
    size_t es = nb_dtype_size(dt);
    double tol = (dt == NB_F32 ? 1e-6 : 1e-14) * (double)(k + 1);
    unsigned char marker[8];
    memset(marker, 0x7f, sizeof marker);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            size_t e = (size_t)(i * ldc + j);
            if (j >= n) {
                if (memcmp((const char *)c + e * es, marker, es) != 0)
                    fail_msg("gemm %s %s ta=%d tb=%d %lldx%lldx%lld: padding of C at (%lld,%lld) "
                             "overwritten",
                             isa, nb_dtype_name(dt), ta, tb, (long long)m, (long long)n,
                             (long long)k, (long long)i, (long long)j);
                continue;
            }
            double got = dt == NB_F32 ? ((const float *)c)[e] : ((const double *)c)[e];
            if (!(fabs(got - want[e]) <= tol * fmax(1.0, fabs(want[e]))))
                fail_msg("gemm %s %s ta=%d tb=%d %lldx%lldx%lld: C(%lld,%lld) = %.17g, naive %.17g",
                         isa, nb_dtype_name(dt), ta, tb, (long long)m, (long long)n, (long long)k,
                         (long long)i, (long long)j, got, want[e]);
        }
}

static const char *const isa_names[NBK_GEMM_ISA_COUNT] = {"portable", "avx2", "avx512"};

/* Limits that make the kernel use every thread on any product and share
 * out C in its every way: runs taken one after another (with a whole operand
 * packed per thread when needed) or one run per thread. */
static const nbk_gemm_limits all_threads[2] = {{.thread_work = 0, .cache_bytes = 1e12},
                                               {.thread_work = 0, .cache_bytes = 0}};

/* C (m x n, row stride ldc, dtype dt) filled with the marker, and with a
 * copy of c0 (m x ldc values) where it is a product's output when acc */
static void fill_c(void *c, const double *c0, nb_dtype dt, int64_t m, int64_t n, int64_t ldc,
                   bool acc)
{
    size_t es = nb_dtype_size(dt);
    memset(c, 0x7f, (size_t)(m * ldc) * es);
    for (int64_t e = 0; acc && e < m * ldc; e++)
        if (e % ldc < n) {
            if (dt == NB_F32)
                ((float *)c)[e] = (float)c0[e];
            else
                ((double *)c)[e] = c0[e];
        }
}

/* Run the built-in kernel for one case in dtype dt with row strides padded
 * by `pad`, C overwritten or (acc) added to, with every micro-kernel family
 * this CPU runs, on 1 and 3 threads (and on 3 with all_threads), and
 * compare with the naive loop; all runs must agree bit for bit. */
static void check_builtin(nb_dtype dt, bool ta, bool tb, bool acc, int64_t m, int64_t n, int64_t k,
                          int64_t pad, uint64_t seed)
{
    int64_t rows_a = ta ? k : m, cols_a = ta ? m : k;
    int64_t rows_b = tb ? n : k, cols_b = tb ? k : n;
    int64_t lda = cols_a + pad, ldb = cols_b + pad, ldc = n + pad;
    size_t na = (size_t)(rows_a * lda), nbe = (size_t)(rows_b * ldb), nc = (size_t)(m * ldc);
    size_t es = nb_dtype_size(dt);
    double *a = malloc(na * sizeof *a), *b = malloc(nbe * sizeof *b),
           *want = malloc(nc * sizeof *want), *c0 = malloc(nc * sizeof *c0);
    void *a_dt = malloc(na * es), *b_dt = malloc(nbe * es), *c1 = malloc(nc * es),
         *c3 = malloc(nc * es);
    assert_true(a && b && want && c0 && a_dt && b_dt && c1 && c3);
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (size_t i = 0; i < na; i++) {
        a[i] = nb_rng_uniform(&rng) * 2 - 1;
        if (dt == NB_F32)
            a[i] = ((float *)a_dt)[i] = (float)a[i];
        else
            ((double *)a_dt)[i] = a[i];
    }
    for (size_t i = 0; i < nbe; i++) {
        b[i] = nb_rng_uniform(&rng) * 2 - 1;
        if (dt == NB_F32)
            b[i] = ((float *)b_dt)[i] = (float)b[i];
        else
            ((double *)b_dt)[i] = b[i];
    }
    naive(ta, tb, m, n, k, a, lda, b, ldb, want, ldc);
    for (size_t e = 0; e < nc; e++) {
        c0[e] = nb_rng_uniform(&rng) * 2 - 1;
        if (dt == NB_F32)
            c0[e] = (float)c0[e];
        if (acc)
            want[e] += c0[e];
    }

    nbk_gemm p = {.dtype = dt,
                  .trans_a = ta,
                  .trans_b = tb,
                  .accumulate = acc,
                  .m = m,
                  .n = n,
                  .k = k,
                  .a = a_dt,
                  .lda = lda,
                  .b = b_dt,
                  .ldb = ldb,
                  .ldc = ldc};
    /* scratch sized from the sizes alone, as the convolutions do, exactly
     * (the sanitizers catch a byte too few) */
    nbk_gemm sizes = {.dtype = dt, .trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k};
    size_t ws_bytes = 0;
    for (int l = -1; l < 2; l++) {
        size_t bytes = nbk_gemm_workspace_limits(&sizes, 3, l < 0 ? NULL : &all_threads[l]);
        ws_bytes = bytes > ws_bytes ? bytes : ws_bytes;
    }
    void *ws = malloc(ws_bytes);
    assert_non_null(ws);
    for (int isa = 0; isa <= (int)nbk_gemm_best_isa(); isa++) {
        /* C's padding must stay untouched: fill it with a marker */
        fill_c(c1, c0, dt, m, n, ldc, acc);
        p.c = c1;
        nbk_gemm_builtin_isa(&p, ws, 1, (nbk_gemm_isa)isa);
        compare_builtin(isa_names[isa], dt, ta, tb, m, n, k, c1, ldc, want);
        for (int l = -1; l < 2; l++) {
            fill_c(c3, c0, dt, m, n, ldc, acc);
            p.c = c3;
            nbk_gemm_builtin_limits(&p, ws, 3, (nbk_gemm_isa)isa, l < 0 ? NULL : &all_threads[l]);
            if (memcmp(c1, c3, nc * es) != 0)
                fail_msg("gemm %s %s %lldx%lldx%lld: 1 and 3 threads differ (limits %d)",
                         isa_names[isa], nb_dtype_name(dt), (long long)m, (long long)n,
                         (long long)k, l);
        }
    }
    free(ws);
    free(a), free(b), free(want), free(c0), free(a_dt), free(b_dt), free(c1), free(c3);
}

static void test_builtin_kernel(void **state)
{
    (void)state;
    /* m x n x k: single element, odd sizes below one register tile and one
     * block, sizes crossing the MC (192), KC (384) and NC (2048) blocks,
     * narrow products (128 x 10, 4100 x 2: C^T crosses NC), an op(A) read
     * in place next to C wider than that takes (600 columns) */
    static const int64_t sizes[][3] = {{1, 1, 1},      {7, 13, 5},   {67, 129, 33}, {3, 1, 17},
                                       {130, 19, 300}, {2, 4100, 3}, {261, 37, 9},  {13, 40, 800},
                                       {128, 10, 128}, {4100, 2, 3}, {200, 35, 390}, {40, 600, 70}};
    uint64_t seed = 1;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int c = 0; c < 4; c++)
            for (int dt = NB_F32; dt <= NB_F64; dt++)
                check_builtin((nb_dtype)dt, all_flags[c].ta, all_flags[c].tb, (s + c) % 3 == 1,
                              sizes[s][0], sizes[s][1], sizes[s][2], s % 2 ? 3 : 0, seed++);
}

/* Random shapes with every size from 1 to 33 in each of m, n and k (edge
 * tiles of every width in both orientations), random transposes, row
 * strides, dtypes and accumulation, every micro-kernel family. */
static void test_builtin_random(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 2024);
    for (int64_t size = 1; size <= 33; size++)
        for (int dim = 0; dim < 3; dim++) {
            int64_t mnk[3];
            for (int d = 0; d < 3; d++)
                mnk[d] = d == dim ? size : 1 + (int64_t)(nb_rng_uniform(&rng) * 40);
            int c = (int)(nb_rng_uniform(&rng) * 4) & 3;
            nb_dtype dt = nb_rng_uniform(&rng) < 0.5 ? NB_F32 : NB_F64;
            int64_t pad = (int64_t)(nb_rng_uniform(&rng) * 3);
            bool acc = nb_rng_uniform(&rng) < 0.3;
            check_builtin(dt, all_flags[c].ta, all_flags[c].tb, acc, mnk[0], mnk[1], mnk[2], pad,
                          (uint64_t)(100 + size * 3 + dim));
        }
}

/* A product of floats at x whose operands and result are stored row-major
 * without padding (for plans only: x is never read) */
static nbk_gemm packed_product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float *x)
{
    return (nbk_gemm){.dtype = NB_F32,
                      .trans_a = ta,
                      .trans_b = tb,
                      .m = m,
                      .n = n,
                      .k = k,
                      .a = x,
                      .lda = ta ? m : k,
                      .b = x,
                      .ldb = tb ? k : n,
                      .c = x,
                      .ldc = n};
}

/* How the kernel computes products it was timed on (a change of these is a
 * change of speed, never of results). */
static void test_builtin_plan(void **state)
{
    (void)state;
    float x[1];
    for (int isa = 0; isa <= (int)nbk_gemm_best_isa(); isa++) {
        nbk_gemm p = {.dtype = NB_F32, .a = x, .b = x, .c = x};
        /* a thread that takes tens of microseconds to wake, as OpenMP's
         * sleeping ones did */
        const nbk_gemm_limits slow = {.thread_work = 6e6, .cache_bytes = 2 << 20}, *passive = &slow;
        /* 1024^3 on 2 threads: half the rows each, give or take a panel
         * (runs of whole 192-row blocks gave one thread 576) */
        p.m = p.n = p.k = p.lda = p.ldb = p.ldc = 1024;
        nbk_gemm_info in = nbk_gemm_plan_info(&p, 2, (nbk_gemm_isa)isa, passive);
        assert_int_equal(in.threads, 2);
        assert_true(in.dynamic || in.run <= 512 + 12);
        /* too small to pay for waking a sleeping thread: 128x256x128; not
         * so with the library's workers, which spin a while, whatever
         * OpenMP's wait policy (main sets OMP_WAIT_POLICY=PASSIVE) */
        p.m = 128, p.k = 256, p.n = 128, p.lda = 256, p.ldb = p.ldc = 128;
        if (isa != NBK_GEMM_PORTABLE) /* which takes 4 times as long */
            assert_int_equal(nbk_gemm_plan_info(&p, 2, (nbk_gemm_isa)isa, passive).threads, 1);
        assert_int_equal(nbk_gemm_plan_info(&p, 2, (nbk_gemm_isa)isa, NULL).threads, 2);
        /* ... but 128x784x256 is: threads take columns, op(A) not packed
         * by each of them, and runs one after another */
        p.k = 784, p.n = 256, p.lda = 784, p.ldb = p.ldc = 256;
        in = nbk_gemm_plan_info(&p, 2, (nbk_gemm_isa)isa, passive);
        assert_int_equal(in.threads, 2);
        if (isa != NBK_GEMM_PORTABLE)
            assert_true(in.a_in_place && in.split_n && in.dynamic);
        if (isa == NBK_GEMM_PORTABLE)
            continue;
        /* 128x128x10: C not transposed (as C^T, all of op(A) is packed
         * through transposes), with AVX-512 in 12 x 16 tiles (12 x 32 ones
         * would be two thirds padding) */
        p.k = 128, p.n = 10, p.lda = 128, p.ldb = p.ldc = 10;
        in = nbk_gemm_plan_info(&p, 1, (nbk_gemm_isa)isa, NULL);
        assert_true(!in.transposed && in.a_in_place);
        assert_true(in.narrow == (isa == NBK_GEMM_AVX512));
        /* a convolution's weight gradient, 64 x 196 times (288 x 196)^T:
         * C^T, whose op(A) is read in place */
        p = packed_product(false, true, 64, 288, 196, x);
        in = nbk_gemm_plan_info(&p, 1, (nbk_gemm_isa)isa, NULL);
        assert_true(in.transposed && in.a_in_place);
        /* a small network's layer at batch 32, 32x64x128: both operands
         * read in place, nothing packed, with AVX-512 in 8-row tiles (32
         * rows in whole tiles, not 36 of 12-row ones) */
        p = packed_product(false, false, 32, 128, 64, x);
        in = nbk_gemm_plan_info(&p, 1, (nbk_gemm_isa)isa, NULL);
        assert_true(!in.transposed && in.a_in_place && in.b_in_place);
        assert_int_equal(in.mr, isa == NBK_GEMM_AVX512 ? 8 : 6);
        /* with 128 rows op(B)'s panels are packed: each serves 16 tiles */
        p.m = 128;
        in = nbk_gemm_plan_info(&p, 1, (nbk_gemm_isa)isa, NULL);
        assert_true(!in.transposed && in.a_in_place && !in.b_in_place);
        /* that layer's weight gradient, x^T·g for x [32,64]: op(A)'s
         * columns are x's rows, read in place too */
        p = packed_product(true, false, 64, 128, 32, x);
        in = nbk_gemm_plan_info(&p, 1, (nbk_gemm_isa)isa, NULL);
        assert_true(!in.transposed && in.a_in_place && in.b_in_place);
    }
}

static void test_builtin_degenerate(void **state)
{
    (void)state;
    /* k = 0 zeroes C; m = 0 or n = 0 touch nothing */
    double c[6] = {1, 2, 3, 4, 5, 6}, a[1] = {0}, b[1] = {0};
    nbk_gemm p = {.dtype = NB_F64,
                  .m = 2,
                  .n = 3,
                  .k = 0,
                  .a = a,
                  .lda = 1,
                  .b = b,
                  .ldb = 3,
                  .c = c,
                  .ldc = 3};
    void *ws = malloc(nbk_gemm_workspace(&p, 1));
    assert_non_null(ws);
    nbk_gemm_builtin(&p, ws, 1);
    for (int i = 0; i < 6; i++)
        tc_near(c[i], 0, 0);
    c[0] = 9;
    p.k = 1, p.m = 0;
    nbk_gemm_builtin(&p, ws, 1);
    p.m = 2, p.n = 0;
    nbk_gemm_builtin(&p, ws, 1);
    tc_near(c[0], 9, 0);
    free(ws);
    /* a family out of range is the best one; fewer than 1 thread is 1 */
    p.n = 3;
    assert_int_equal(nbk_gemm_workspace_limits(&p, 0, NULL), nbk_gemm_workspace(&p, 1));
    nbk_gemm_info in = nbk_gemm_plan_info(&p, 0, NBK_GEMM_ISA_COUNT, NULL);
    assert_int_equal(in.threads, 1);
}

/* nb_matmul itself (BLAS or built-in) on a graph with several threads,
 * against the naive loop, batched and shared. */
static void test_op_threads(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_graph_set_threads(g, 3);
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    const int64_t B = 2, M = 67, K = 129, N = 33;
    for (int c = 0; c < 4; c++) {
        flags f = all_flags[c];
        for (int shared = 0; shared < 2; shared++) {
            tc_shape s[2];
            operand_shapes(s, f, B, shared ? 0 : B, M, K, N);
            nb_tensor *a = nb_rand_uniform(g, &rng, NB_F64, s[0].rank, s[0].dims, -1, 1);
            nb_tensor *b = nb_rand_uniform(g, &rng, NB_F64, s[1].rank, s[1].dims, -1, 1);
            nb_tensor *y = nb_matmul(g, a, b, f.ta, f.tb);
            assert_non_null(y);
            assert_int_equal(nb_tensor_rank(y), 3);
            double *want = malloc((size_t)(M * N) * sizeof *want);
            assert_non_null(want);
            for (int64_t i = 0; i < B; i++) {
                const double *ai = nb_tensor_f64(a) + i * M * K;
                const double *bi = nb_tensor_f64(b) + (shared ? 0 : i * K * N);
                naive(f.ta, f.tb, M, N, K, ai, f.ta ? M : K, bi, f.tb ? K : N, want, N);
                for (int64_t e = 0; e < M * N; e++)
                    tc_near(nb_tensor_get(y, i * M * N + e), want[e], 1e-12);
            }
            free(want);
        }
    }
    nb_graph_free(g);
}

/* ------------------------------------------------------------------ errors */

static void expect_error(nb_graph *g, nb_tensor *y, nb_status code, const char *sa, const char *sb,
                         const char *exact)
{
    assert_null(y);
    assert_int_equal(nb_graph_status(g), code);
    const char *msg = nb_graph_error(g)->msg;
    if (!strstr(msg, "matmul") || !strstr(msg, sa) || !strstr(msg, sb))
        fail_msg("message \"%s\" should name matmul, %s and %s", msg, sa, sb);
    if (exact)
        assert_string_equal(msg, exact);
    assert_string_equal(nb_graph_error(g)->where, "matmul");
    nb_graph_clear_error(g);
}

static nb_tensor *zeros(nb_graph *g, nb_dtype dt, int rank, int64_t d0, int64_t d1, int64_t d2,
                        int64_t d3)
{
    int64_t shape[4] = {d0, d1, d2, d3};
    return nb_zeros(g, dt, rank, shape);
}

static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *y;

    y = nb_matmul(g, zeros(g, NB_F64, 2, 3, 4, 0, 0), zeros(g, NB_F64, 2, 5, 2, 0, 0), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[3,4]", "[5,2]",
                 "matmul: [3,4] x [5,2]: inner sizes 4 and 5 differ");
    y = nb_matmul(g, zeros(g, NB_F64, 2, 3, 4, 0, 0), zeros(g, NB_F64, 2, 4, 2, 0, 0), true, false);
    expect_error(g, y, NB_ERR_SHAPE, "[3,4]^T", "[4,2]",
                 "matmul: [3,4]^T x [4,2]: inner sizes 3 and 4 differ");
    y = nb_matmul(g, zeros(g, NB_F64, 2, 3, 4, 0, 0), zeros(g, NB_F64, 2, 2, 5, 0, 0), false, true);
    expect_error(g, y, NB_ERR_SHAPE, "[3,4]", "[2,5]^T", NULL);
    /* rank 1 and rank 4 operands, and a 2-D a with a batched b */
    y = nb_matmul(g, zeros(g, NB_F64, 1, 4, 0, 0, 0), zeros(g, NB_F64, 2, 4, 2, 0, 0), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[4]", "[4,2]", NULL);
    y = nb_matmul(g, zeros(g, NB_F64, 2, 3, 4, 0, 0), zeros(g, NB_F64, 1, 4, 0, 0, 0), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[3,4]", "[4]", NULL);
    y = nb_matmul(g, zeros(g, NB_F64, 4, 2, 2, 3, 4), zeros(g, NB_F64, 2, 4, 2, 0, 0), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[2,2,3,4]", "[4,2]", NULL);
    y = nb_matmul(g, zeros(g, NB_F64, 3, 2, 3, 4, 0), zeros(g, NB_F64, 4, 2, 2, 4, 5), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[2,3,4]", "[2,2,4,5]", NULL);
    y = nb_matmul(g, zeros(g, NB_F64, 2, 3, 4, 0, 0), zeros(g, NB_F64, 3, 2, 4, 5, 0), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[3,4]", "[2,4,5]", NULL);
    /* dtypes */
    y = nb_matmul(g, zeros(g, NB_F32, 2, 3, 4, 0, 0), zeros(g, NB_F64, 2, 4, 2, 0, 0), false,
                  false);
    expect_error(g, y, NB_ERR_DTYPE, "f32[3,4]", "f64[4,2]", NULL);
    /* batches */
    y = nb_matmul(g, zeros(g, NB_F64, 3, 2, 3, 4, 0), zeros(g, NB_F64, 3, 3, 4, 5, 0), false,
                  false);
    expect_error(g, y, NB_ERR_SHAPE, "[2,3,4]", "[3,4,5]",
                 "matmul: [2,3,4] x [3,4,5]: batch sizes 2 and 3 differ");
    /* a NULL input: NULL quietly, no error */
    y = nb_matmul(g, NULL, zeros(g, NB_F64, 2, 4, 2, 0, 0), false, false);
    assert_null(y);
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* -------------------------------------------------------------------- cast */

static nb_tensor *cast_same_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    nb_tensor *x = in[0];
    return nb_mul(g, nb_cast(g, x, nb_tensor_dtype(x)), x); /* a copy: y = x^2 */
}

/* x -> the other dtype -> back, times x */
static nb_tensor *cast_round_trip_fn(nb_graph *g, nb_tensor *const *in, void *ctx)
{
    (void)ctx;
    nb_tensor *x = in[0];
    nb_dtype dt = nb_tensor_dtype(x), other = dt == NB_F64 ? NB_F32 : NB_F64;
    return nb_mul(g, nb_cast(g, nb_cast(g, x, other), dt), x);
}

static void test_cast_grad(void **state)
{
    (void)state;
    tc_shape s = {2, {3, 4}};
    tc_check("cast to the same dtype", cast_same_fn, NULL, 1, &s, NULL);
    /* through f32 the function is rounded to ~1e-7, so central differences
     * (step ~1e-5) carry ~1e-2 noise: the tolerances say so */
    tc_opts o = {.rel_tol = 5e-2, .dot_tol = 1e-5};
    tc_check("cast f64 -> f32 -> f64", cast_round_trip_fn, NULL, 1, &s, &o);
}

static void test_cast_values(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    double xs[] = {0.1, -2.5, 1e-3, 3.0};
    nb_tensor *x =
        nb_tensor_set_requires_grad(nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, xs), true);
    nb_tensor *x32 = nb_cast(g, x, NB_F32);
    nb_tensor *back = nb_cast(g, x32, NB_F64);
    assert_non_null(back);
    assert_int_equal(nb_tensor_dtype(x32), NB_F32);
    assert_int_equal(nb_tensor_dtype(back), NB_F64);
    assert_int_equal(nb_tensor_rank(back), 1);
    for (int i = 0; i < 4; i++) {
        assert_true(nb_tensor_f32(x32)[i] == (float)xs[i]);
        assert_true(nb_tensor_f64(back)[i] == (double)(float)xs[i]);
    }
    /* a copy even for the same dtype */
    nb_tensor *copy = nb_cast(g, x, NB_F64);
    assert_non_null(copy);
    assert_ptr_not_equal(nb_tensor_data(copy), nb_tensor_data(x));
    assert_memory_equal(nb_tensor_data(copy), nb_tensor_data(x), sizeof xs);

    /* the gradient comes back through both casts in each dtype: with a seed
     * exactly representable in f32 it arrives unchanged */
    double w[] = {0.5, -1.25, 2, 0.75};
    nb_tensor *seed = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, w);
    assert_int_equal(nb_backward_seed(g, back, seed), NB_OK);
    nb_tensor *gx = nb_tensor_grad(x);
    assert_int_equal(nb_tensor_dtype(gx), NB_F64);
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(gx, i), w[i], 0);
    /* and the tangent forward */
    nb_tensor *tan = NULL;
    assert_int_equal(nb_jvp(g, back, &x, &seed, 1, &tan), NB_OK);
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(tan, i), w[i], 0);

    /* an unknown dtype is an error, NULL input a quiet NULL */
    assert_null(nb_cast(g, x, (nb_dtype)7));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "cast"));
    assert_non_null(strstr(nb_graph_error(g)->msg, "7"));
    nb_graph_clear_error(g);
    assert_null(nb_cast(g, NULL, NB_F32));
    assert_int_equal(nb_graph_status(g), NB_OK);
    nb_graph_free(g);
}

/* --------------------------------------------- matrix-vector products */

/* One product of a matrix and a vector (n = 1 or m = 1) against the naive
 * loop, batch by batch. */
static void check_matvec(nb_graph *g, nb_rng *rng, nb_dtype dt, flags f, int64_t batch_a,
                         int64_t batch_b, int64_t m, int64_t k, int64_t n)
{
    tc_shape s[2];
    operand_shapes(s, f, batch_a, batch_b, m, k, n);
    nb_tensor *a = nb_rand_normal(g, rng, dt, s[0].rank, s[0].dims, 0, 1);
    nb_tensor *b = nb_rand_normal(g, rng, dt, s[1].rank, s[1].dims, 0, 1);
    nb_tensor *c = nb_matmul(g, a, b, f.ta, f.tb);
    assert_non_null(c);
    int64_t batch = batch_a ? batch_a : 1, sa = m * k, sb = batch_b ? k * n : 0;
    double *ad = malloc((size_t)(batch * sa) * sizeof *ad);
    double *bd = malloc((size_t)(batch_b ? batch * sb : k * n) * sizeof *bd);
    double *want = malloc((size_t)(m * n) * sizeof *want);
    assert_non_null(ad);
    assert_non_null(bd);
    assert_non_null(want);
    for (int64_t i = 0; i < nb_tensor_size(a); i++)
        ad[i] = nb_tensor_get(a, i);
    for (int64_t i = 0; i < nb_tensor_size(b); i++)
        bd[i] = nb_tensor_get(b, i);
    double tol = dt == NB_F32 ? 1e-4 : 1e-12;
    for (int64_t q = 0; q < batch; q++) {
        naive(f.ta, f.tb, m, n, k, ad + q * sa, f.ta ? m : k, bd + q * sb, f.tb ? k : n, want, n);
        for (int64_t i = 0; i < m * n; i++)
            tc_near(nb_tensor_get(c, q * m * n + i), want[i], tol * sqrt((double)k));
    }
    free(ad);
    free(bd);
    free(want);
}

/* Matrix times vector and vector times matrix, in every transpose
 * combination, both dtypes, with and without batches, small (the plain
 * loop) and large (their own path when matmul goes through BLAS). */
static void test_matvec(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    const nb_dtype dts[2] = {NB_F32, NB_F64};
    for (int d = 0; d < 2; d++)
        for (int c = 0; c < 4; c++) {
            flags f = all_flags[c];
            check_matvec(g, &rng, dts[d], f, 0, 0, 150, 60, 1); /* [m,k]·[k,1] */
            check_matvec(g, &rng, dts[d], f, 0, 0, 1, 60, 150); /* [1,k]·[k,n] */
            check_matvec(g, &rng, dts[d], f, 0, 0, 1, 5000, 1); /* a dot product */
            check_matvec(g, &rng, dts[d], f, 0, 0, 7, 9, 1);    /* small products */
            check_matvec(g, &rng, dts[d], f, 0, 0, 1, 9, 7);
            check_matvec(g, &rng, dts[d], f, 2, 0, 7, 9, 1);
            check_matvec(g, &rng, dts[d], f, 3, 3, 70, 40, 1); /* batched */
            check_matvec(g, &rng, dts[d], f, 3, 3, 1, 40, 70); /* batched */
            check_matvec(g, &rng, dts[d], f, 3, 0, 70, 40, 1); /* shared b */
            check_matvec(g, &rng, dts[d], f, 3, 0, 1, 40, 70); /* shared b */
            assert_int_equal(nb_graph_status(g), NB_OK);
        }
    nb_graph_free(g);
}

/* Every kernel choice computes the same products (to rounding), and the
 * name says which kernel runs: CBLAS only when it was asked for (or, by
 * default, when the CPU has no SIMD micro-kernel), built-in otherwise. */
static void test_kernel_choice(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    const nb_matmul_kernel kinds[3] = {NB_MATMUL_AUTO, NB_MATMUL_BUILTIN, NB_MATMUL_CBLAS};
    const nb_dtype dts[2] = {NB_F32, NB_F64};
    for (int k = 0; k < 3; k++) {
        nb_graph_set_matmul(g, kinds[k]);
        const char *name = nb_graph_matmul_name(g);
        if (kinds[k] == NB_MATMUL_BUILTIN)
            assert_true(strncmp(name, "builtin", 7) == 0);
#ifdef NB_TEST_HAVE_CBLAS
        if (kinds[k] == NB_MATMUL_CBLAS)
            assert_string_equal(name, "cblas");
#endif
        for (int d = 0; d < 2; d++)
            for (int c = 0; c < 4; c++) {
                flags f = all_flags[c];
                check_matvec(g, &rng, dts[d], f, 0, 0, 70, 90, 50);
                check_matvec(g, &rng, dts[d], f, 2, 2, 33, 65, 17);
                check_matvec(g, &rng, dts[d], f, 3, 0, 40, 30, 20);
                check_matvec(g, &rng, dts[d], f, 0, 0, 150, 60, 1);
                assert_int_equal(nb_graph_status(g), NB_OK);
                nb_graph_reset(g);
            }
    }
    nb_graph_set_matmul(g, (nb_matmul_kernel)42); /* unknown: the default */
    nb_graph_set_matmul(NULL, NB_MATMUL_CBLAS);   /* no graph: nothing */
    nb_graph *fresh = nb_graph_new();
    assert_string_equal(nb_graph_matmul_name(g), nb_graph_matmul_name(fresh));
    assert_string_equal(nb_graph_matmul_name(NULL), nb_graph_matmul_name(fresh));
    nb_graph_free(fresh);
    nb_graph_free(g);
}

int main(void)
{
    /* the setting bench/run times with: the kernel's plans must not depend on it */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_choice),
        cmocka_unit_test(test_values),         cmocka_unit_test(test_builtin_kernel),
        cmocka_unit_test(test_builtin_random), cmocka_unit_test(test_builtin_plan),
        cmocka_unit_test(test_builtin_degenerate),
        cmocka_unit_test(test_op_threads),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_grad_2d),        cmocka_unit_test(test_grad_batched),
        cmocka_unit_test(test_grad_chain),     cmocka_unit_test(test_grad_shared_b),
        cmocka_unit_test(test_cast_values),    cmocka_unit_test(test_cast_grad),
        cmocka_unit_test(test_matvec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
