/* Matrix product: its shape rule, its forward kernel (CBLAS when the build
 * has it, otherwise the built-in blocked GEMM of gemm.c, which every build
 * compiles and tests), and derivative rules written with nb_matmul itself.
 *
 * attrs: ints[0] = trans_a, ints[1] = trans_b. */

#include <limits.h>

#include "gemm.h"
#include "kernels.h"

#ifdef NB_HAVE_CBLAS
#include <cblas.h>
#endif

/* ------------------------------------------------------------ shape rule */

#define A(out) ((out)->inputs[0])
#define B(out) ((out)->inputs[1])
#define TRANS_A(out) ((out)->attrs->ints[0] != 0)
#define TRANS_B(out) ((out)->attrs->ints[1] != 0)

/* "[3,4]" or, for a transposed operand, "[4,3]^T" */
static const char *operand_str(const nb_tensor *t, bool trans, char *buf, size_t n)
{
    nbc_shp(t, buf, n);
    if (trans) {
        size_t len = strlen(buf);
        if (len + 3 <= n)
            memcpy(buf + len, "^T", 3);
    }
    return buf;
}

/* The shape rule's errors, out of line: formatting the operands costs more
 * than the whole rule, so it happens only when there is an error. */
static NB_NOINLINE nb_status matmul_error(nb_graph *g, const nb_tensor *out, nb_status code,
                                          const char *fmt, long long x, long long y)
{
    const nb_tensor *a = A(out), *b = B(out);
    char sa[168], sb[168], what[200];
    operand_str(a, TRANS_A(out), sa, sizeof sa);
    operand_str(b, TRANS_B(out), sb, sizeof sb);
    if (code == NB_ERR_DTYPE)
        return nbc_error(g, code, out->op->name, "%s%s x %s%s: dtypes differ",
                         nb_dtype_name(a->dtype), sa, nb_dtype_name(b->dtype), sb);
    snprintf(what, sizeof what, fmt, x, y);
    return nbc_error(g, code, out->op->name, "%s x %s: %s", sa, sb, what);
}

nb_status nbo_matmul_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *a = A(out), *b = B(out);
    bool ta = TRANS_A(out), tb = TRANS_B(out);
    if (!((a->rank == 2 && b->rank == 2) || (a->rank == 3 && (b->rank == 2 || b->rank == 3))))
        return matmul_error(g, out, NB_ERR_SHAPE,
                            "ranks %lld and %lld do not fit: [M,K]x[K,N], [B,M,K]x[B,K,N] "
                            "or [B,M,K]x[K,N]",
                            a->rank, b->rank);
    if (a->dtype != b->dtype)
        return matmul_error(g, out, NB_ERR_DTYPE, "", 0, 0);
    if (a->rank == 3 && b->rank == 3 && a->shape[0] != b->shape[0])
        return matmul_error(g, out, NB_ERR_SHAPE, "batch sizes %lld and %lld differ", a->shape[0],
                            b->shape[0]);
    int ra = a->rank, rb = b->rank;
    int64_t m = a->shape[ra - (ta ? 1 : 2)], k_a = a->shape[ra - (ta ? 2 : 1)];
    int64_t k_b = b->shape[rb - (tb ? 1 : 2)], n = b->shape[rb - (tb ? 2 : 1)];
    if (k_a != k_b)
        return matmul_error(g, out, NB_ERR_SHAPE, "inner sizes %lld and %lld differ", k_a, k_b);

    out->dtype = a->dtype;
    out->rank = ra;
    if (ra == 3)
        out->shape[0] = a->shape[0];
    out->shape[ra - 2] = m;
    out->shape[ra - 1] = n;
    return nbc_check_desc(g, out->dtype, out->rank, out->shape, out->op->name);
}

/* --------------------------------------------------------------- forward */

/* C = op(A)·op(B) by the definition, for products too small for blocking. */
/* columns the small-product loop sums in registers at a time */
#define SMALL_W 16

#define GEMM_SMALL(T)                                                                              \
    do {                                                                                           \
        const T *a = p->a, *b = p->b;                                                              \
        T *c = p->c;                                                                               \
        /* element (i,l) of op(A) is a[i*ai + l*al] */                                             \
        int64_t ai = p->trans_a ? 1 : p->lda, al = p->trans_a ? p->lda : 1;                        \
        for (int64_t i = 0; i < p->m; i++) {                                                       \
            T *ci = c + i * p->ldc;                                                                \
            if (p->trans_b || p->n == 1) {                                                         \
                /* dot products with the columns of op(B) (rows of B, or the                       \
                 * one column): the sum stays in a register */                                     \
                int64_t bj_step = p->trans_b ? p->ldb : 1, bl = p->trans_b ? 1 : p->ldb;           \
                for (int64_t j = 0; j < p->n; j++) {                                               \
                    const T *bj = b + j * bj_step;                                                 \
                    T sum = 0;                                                                     \
                    for (int64_t l = 0; l < p->k; l++)                                             \
                        sum += a[i * ai + l * al] * bj[l * bl];                                    \
                    ci[j] = sum;                                                                   \
                }                                                                                  \
            } else { /* row i of C = sum over l of a(i,l) * row l of B: blocks of                  \
                      * SMALL_W columns summed in registers (a fixed-size local                    \
                      * row), the last few columns in C itself */                                  \
                int64_t j0 = 0;                                                                    \
                for (; j0 + SMALL_W <= p->n; j0 += SMALL_W) {                                      \
                    T acc[SMALL_W] = {0};                                                          \
                    for (int64_t l = 0; l < p->k; l++) {                                           \
                        T ail = a[i * ai + l * al];                                                \
                        const T *bl = b + l * p->ldb + j0;                                         \
                        for (int j = 0; j < SMALL_W; j++)                                          \
                            acc[j] += ail * bl[j];                                                 \
                    }                                                                              \
                    for (int j = 0; j < SMALL_W; j++)                                              \
                        ci[j0 + j] = acc[j];                                                       \
                }                                                                                  \
                T *restrict cr = ci;                                                               \
                for (int64_t j = j0; j < p->n; j++)                                                \
                    cr[j] = 0;                                                                     \
                for (int64_t l = 0; l < p->k; l++) {                                               \
                    T ail = a[i * ai + l * al];                                                    \
                    const T *restrict bl = b + l * p->ldb;                                         \
                    for (int64_t j = j0; j < p->n; j++)                                            \
                        cr[j] += ail * bl[j];                                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

NBC_WIDE_CLONES static void gemm_small(const nbk_gemm *p)
{
    if (p->dtype == NB_F32)
        GEMM_SMALL(float);
    else
        GEMM_SMALL(double);
}

static bool have_cblas(void)
{
#ifdef NB_HAVE_CBLAS
    return true;
#else
    return false;
#endif
}

/* CBLAS for this product? (the caller falls back to the built-in kernel
 * when CBLAS cannot take it) */
static bool use_cblas(const nb_graph *g, const nbk_gemm *p)
{
    if (!have_cblas() || g->matmul == NB_MATMUL_BUILTIN)
        return false;
    if (g->matmul == NB_MATMUL_CBLAS)
        return true;
    return p->m == 1 || p->n == 1 || nbk_gemm_best_isa() == NBK_GEMM_PORTABLE;
}

/* One product through CBLAS; false when the build has none or the sizes
 * do not fit its int. */
static bool gemm_blas(const nbk_gemm *p)
{
#ifdef NB_HAVE_CBLAS
    if (p->m > INT_MAX || p->n > INT_MAX || p->k > INT_MAX || p->lda > INT_MAX ||
        p->ldb > INT_MAX || p->ldc > INT_MAX)
        return false;
    enum CBLAS_TRANSPOSE ta = p->trans_a ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = p->trans_b ? CblasTrans : CblasNoTrans;
    /* a matrix times a vector: gemv reads the matrix once, where gemm
     * would first pack it */
    if (p->n == 1) { /* C[m,1] = op(A)·b, b strided */
        int ma = (int)(p->trans_a ? p->k : p->m), na = (int)(p->trans_a ? p->m : p->k);
        int incb = p->trans_b ? 1 : (int)p->ldb;
        if (p->dtype == NB_F32)
            cblas_sgemv(CblasRowMajor, ta, ma, na, 1.0f, p->a, (int)p->lda, p->b, incb, 0.0f, p->c,
                        (int)p->ldc);
        else
            cblas_dgemv(CblasRowMajor, ta, ma, na, 1.0, p->a, (int)p->lda, p->b, incb, 0.0, p->c,
                        (int)p->ldc);
        return true;
    }
    if (p->m == 1) { /* C[1,n]^T = op(B)^T·a^T, a strided */
        enum CBLAS_TRANSPOSE tbt = p->trans_b ? CblasNoTrans : CblasTrans;
        int mb = (int)(p->trans_b ? p->n : p->k), nb = (int)(p->trans_b ? p->k : p->n);
        int inca = p->trans_a ? (int)p->lda : 1;
        if (p->dtype == NB_F32)
            cblas_sgemv(CblasRowMajor, tbt, mb, nb, 1.0f, p->b, (int)p->ldb, p->a, inca, 0.0f, p->c,
                        1);
        else
            cblas_dgemv(CblasRowMajor, tbt, mb, nb, 1.0, p->b, (int)p->ldb, p->a, inca, 0.0, p->c,
                        1);
        return true;
    }
    if (p->dtype == NB_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)p->m, (int)p->n, (int)p->k, 1.0f, p->a, (int)p->lda,
                    p->b, (int)p->ldb, 0.0f, p->c, (int)p->ldc);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, (int)p->m, (int)p->n, (int)p->k, 1.0, p->a, (int)p->lda,
                    p->b, (int)p->ldb, 0.0, p->c, (int)p->ldc);
    return true;
#else
    (void)p;
    return false;
#endif
}

/*
 * A batch of products, each op(A_i)·op(B_i) with B_i = B for a shared b.
 * With CBLAS, OpenBLAS threads as it is configured (OPENBLAS_NUM_THREADS):
 * its thread count is process-wide, so a graph cannot set it without
 * affecting other graphs. The built-in kernel uses the graph's threads, and
 * its scratch comes from the arena and is given back at once.
 */
nb_status nbo_matmul_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *a = A(out), *b = B(out);
    bool ta = TRANS_A(out), tb = TRANS_B(out);
    int64_t m = out->shape[out->rank - 2], n = out->shape[out->rank - 1];
    int64_t k = a->shape[a->rank - (ta ? 2 : 1)];
    int64_t batch = out->rank == 3 ? out->shape[0] : 1;
    bool shared_b = b->rank < a->rank;
    if (out->size == 0)
        return NB_OK;
    if (k == 0) {
        nbc_fill(out, 0.0);
        return NB_OK;
    }
    nbk_gemm p = {
        .dtype = out->dtype,
        .trans_a = ta,
        .trans_b = tb,
        .m = m,
        .n = n,
        .k = k,
        .a = a->data,
        .lda = ta ? m : k,
        .b = b->data,
        .ldb = tb ? k : n,
        .c = out->data,
        .ldc = n,
    };
    if (shared_b && !ta) { /* the batch's rows of a are one [B*M,K] matrix */
        p.m = batch * m;
        batch = 1;
    }
    size_t elem = nb_dtype_size(out->dtype);
    size_t step_a = (size_t)(m * k) * elem, step_b = shared_b ? 0 : (size_t)(k * n) * elem,
           step_c = (size_t)(m * n) * elem;
    return nbo_gemm_run(g, &p, batch, step_a, step_b, step_c, out->op->name);
}

/* The batch on the built-in kernel, its scratch from the arena */
static nb_status run_builtin(nb_graph *g, nbk_gemm *p, int64_t batch, size_t step_a, size_t step_b,
                             size_t step_c, const char *op)
{
    /* many threads only for products worth waking a team for (~1 MFLOP) */
    double work = (double)p->m * (double)p->n * (double)p->k / 32.0;
    int threads = nbc_threads_for(g, work > 1e18 ? (int64_t)1e18 : (int64_t)work);
    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    void *ws = nbc_alloc(g, nbk_gemm_workspace(p, threads), op);
    if (!ws)
        return NB_ERR_NOMEM;
    for (int64_t i = 0; i < batch; i++) {
        nbk_gemm_builtin(p, ws, threads);
        p->a = (const char *)p->a + step_a;
        p->b = (const char *)p->b + step_b;
        p->c = (char *)p->c + step_c;
    }
    nbc_arena_release(&g->arena, pos);
    return NB_OK;
}

nb_status nbo_gemm_run(nb_graph *g, nbk_gemm *p, int64_t batch, size_t step_a, size_t step_b,
                       size_t step_c, const char *op)
{
    /* tiny products: a plain loop beats any library call's setup */
    if ((double)p->m * (double)p->n * (double)p->k <= 4096) {
        for (int64_t i = 0; i < batch; i++) {
            gemm_small(p);
            nbk_gemm_epilogue(p);
            p->a = (const char *)p->a + step_a;
            p->b = (const char *)p->b + step_b;
            p->c = (char *)p->c + step_c;
        }
        return NB_OK;
    }
    if (use_cblas(g, p) && gemm_blas(p)) {
        nbk_gemm_epilogue(p);
        for (int64_t i = 1; i < batch; i++) {
            p->a = (const char *)p->a + step_a;
            p->b = (const char *)p->b + step_b;
            p->c = (char *)p->c + step_c;
            gemm_blas(p);
            nbk_gemm_epilogue(p);
        }
        return NB_OK;
    }

    return run_builtin(g, p, batch, step_a, step_b, step_c, op);
}

nb_status nbo_gemm_add_into(nb_graph *g, nbk_gemm *p, const char *op, bool *done)
{
    *done = false;
    if ((double)p->m * (double)p->n * (double)p->k <= 4096 || use_cblas(g, p))
        return NB_OK; /* nbo_gemm_run would not run the built-in kernel */
    p->accumulate = true;
    nb_status st = run_builtin(g, p, 1, 0, 0, 0, op);
    *done = st == NB_OK;
    return st;
}

void nb_graph_set_matmul(nb_graph *g, nb_matmul_kernel k)
{
    if (g)
        g->matmul = k == NB_MATMUL_BUILTIN || k == NB_MATMUL_CBLAS ? k : NB_MATMUL_AUTO;
}

const char *nb_graph_matmul_name(const nb_graph *g)
{
    nb_matmul_kernel k = g ? g->matmul : NB_MATMUL_AUTO;
    nbk_gemm_isa isa = nbk_gemm_best_isa();
    if (have_cblas() && k != NB_MATMUL_BUILTIN &&
        (k == NB_MATMUL_CBLAS || isa == NBK_GEMM_PORTABLE))
        return "cblas";
    return isa == NBK_GEMM_AVX512 ? "builtin-avx512"
           : isa == NBK_GEMM_AVX2 ? "builtin-avx2"
                                  : "builtin";
}

nb_tensor *nb_matmul(nb_graph *g, nb_tensor *a, nb_tensor *b, bool trans_a, bool trans_b)
{
    nb_tensor *in[2] = {a, b};
    nb_attrs attrs = {.ints = {trans_a, trans_b}};
    return nbo_apply(g, &nbo_table[NB_OP_MATMUL], in, 2, &attrs);
}

/* ---------------------------------------------------------- derivatives */

/*
 * C = op(A)·op(B), G = dC. In terms of the operands as used,
 * d op(A) = G·op(B)^T and d op(B) = op(A)^T·G; undoing a transpose flag
 * transposes the result, so as stored:
 *   dA = G·op(B)^T  = matmul(G, B, 0, !tb)    (ta = 0)
 *   dA = op(B)·G^T  = matmul(B, G, tb, 1)     (ta = 1)
 *   dB = op(A)^T·G  = matmul(A, G, !ta, 0)    (tb = 0)
 *   dB = G^T·op(A)  = matmul(G, A, 1, ta)     (tb = 1)
 * The same hold batch by batch. With a shared b (a 3-D, b 2-D), dB sums
 * over the batch, which is one 2-D product of the batch's stacked rows;
 * dA with ta = 1 would be a 2-D x 3-D product, so it is taken as the
 * transpose of G·op(B)^T.
 */
static nb_tensor *matmul_da(nb_graph *g, nb_tensor *out, nb_tensor *gr)
{
    nb_tensor *a = A(out), *b = B(out);
    bool ta = TRANS_A(out), tb = TRANS_B(out);
    if (!ta)
        return nb_matmul(g, gr, b, false, !tb);
    if (b->rank < a->rank)
        return nb_transpose(g, nb_matmul(g, gr, b, false, !tb));
    return nb_matmul(g, b, gr, tb, true);
}

static nb_tensor *matmul_db(nb_graph *g, nb_tensor *out, nb_tensor *gr)
{
    nb_tensor *a = A(out), *b = B(out);
    bool ta = TRANS_A(out), tb = TRANS_B(out);
    if (b->rank < a->rank) {
        /* Σ_i over the batch is one 2-D product: stack the batch's rows of
         * op(A) and of G, op(A') = [B*M,K] and G' = [B*M,N], where A' is
         * A reshaped (ta = 0) or A permuted to [K,B,M] and reshaped (ta = 1) */
        int64_t rows = a->shape[0] * (ta ? a->shape[2] : a->shape[1]);
        int64_t k = ta ? a->shape[1] : a->shape[2];
        if (ta)
            a = nb_reshape(g, nb_permute(g, a, (const int[]){1, 0, 2}), 2, (int64_t[]){k, rows});
        else
            a = nb_reshape(g, a, 2, (int64_t[]){rows, k});
        gr = nb_reshape(g, gr, 2, (int64_t[]){rows, gr->shape[2]});
    }
    return tb ? nb_matmul(g, gr, a, true, ta) : nb_matmul(g, a, gr, !ta, false);
}

nb_tensor *nbo_matmul_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return i == 0 ? matmul_da(g, out, gr) : matmul_db(g, out, gr);
}

/* d(op(A)·op(B)) = op(tA)·op(B) + op(A)·op(tB) */
nb_tensor *nbo_matmul_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    bool ta = TRANS_A(out), tb = TRANS_B(out);
    /* a term whose tangent forward mode knows to be zero is left out */
    bool za = !t[0] || (t[0]->flags & NB_T_ZERO), zb = !t[1] || (t[1]->flags & NB_T_ZERO);
    if (zb)
        return za ? NULL : nb_matmul(g, t[0], B(out), ta, tb);
    if (za)
        return nb_matmul(g, A(out), t[1], ta, tb);
    return nb_add(g, nb_matmul(g, t[0], B(out), ta, tb), nb_matmul(g, A(out), t[1], ta, tb));
}
