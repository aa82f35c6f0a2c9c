/* The matrix kernel behind nb_matmul: a cache-blocked, register-blocked
 * GEMM for both dtypes (src/ops/gemm.c), with SIMD micro-kernels picked by
 * what the CPU supports. It is what matmul runs when the build has no
 * CBLAS, and is compiled (and unit-tested) in every build. Not installed. */
#ifndef NABLA_OPS_GEMM_H
#define NABLA_OPS_GEMM_H

#include "../core/internal.h"

/* One row-major product C = op(A)·op(B), C overwritten (or, with
 * accumulate, C += op(A)·op(B)), then its epilogue: each element of C
 * gets bias[j] (bias[i] with bias_rows) added (when bias is not NULL) and
 * then, with relu, becomes
 * relu's value (x <= 0 ? 0 : x), each in the dtype's arithmetic, as
 * separate add and relu ops would do it. op(A) is [m,k] and
 * op(B) is [k,n]; op(X) is X, or X transposed when its flag is set, as
 * BLAS does: A is stored [m,k] (or [k,m] with trans_a) with row stride lda,
 * B is stored [k,n] (or [n,k] with trans_b) with row stride ldb, C is
 * [m,n] with row stride ldc. A, B and C must not overlap. */
typedef struct nbk_gemm {
    nb_dtype dtype;
    bool trans_a, trans_b;
    bool accumulate; /* add the product to C instead of overwriting it */
    int64_t m, n, k;
    const void *a;
    int64_t lda;
    const void *b;
    int64_t ldb;
    void *c;
    int64_t ldc;
    const void *bias; /* [n] added to every row of C after the product, or NULL */
    bool bias_rows;   /* bias is [m], one per row of C, added along the row */
    bool relu;        /* then C = relu(C) */
} nbk_gemm;

/* The epilogue of @p p (bias, relu) applied to all of C: for products a
 * kernel other than nbk_gemm_builtin computed (which applies it to each
 * tile as it finishes it). Does nothing when p has no epilogue. */
void nbk_gemm_epilogue(const nbk_gemm *p);

/* Run @p batch products p, p + step, ... (steps in bytes; 0 for an operand
 * shared by the batch) on the kernel nb_matmul picks for @p g (CBLAS, the
 * built-in kernel, or a plain loop for tiny products), each with p's
 * epilogue. @p op names the op in an out-of-memory error. */
nb_status nbo_gemm_run(nb_graph *g, nbk_gemm *p, int64_t batch, size_t step_a, size_t step_b,
                       size_t step_c, const char *op);

/* C += op(A)·op(B) (one product, no epilogue) when nbo_gemm_run would run
 * it on the built-in kernel: then *done is set. The sums are those of the
 * product into a fresh C followed by an add into C whenever C starts at
 * zero or k fits one slice of the kernel (each k-slice's sum is added to
 * C in turn). Otherwise nothing is done (CBLAS or a tiny product; the
 * caller takes its usual route). NB_ERR_NOMEM for the kernel's scratch. */
nb_status nbo_gemm_add_into(nb_graph *g, nbk_gemm *p, const char *op, bool *done);

/* The micro-kernel families, slowest first: portable C (any CPU), AVX2
 * with FMA and AVX-512F (x86-64 built with GCC or Clang). */
typedef enum nbk_gemm_isa {
    NBK_GEMM_PORTABLE = 0,
    NBK_GEMM_AVX2 = 1,
    NBK_GEMM_AVX512 = 2,
    NBK_GEMM_ISA_COUNT
} nbk_gemm_isa;

/* The fastest family this CPU runs (and this build has). */
nbk_gemm_isa nbk_gemm_best_isa(void);

/* Bytes of scratch nbk_gemm_builtin needs for @p p on up to @p threads
 * threads, with any micro-kernel family: it depends on p's dtype and sizes
 * only, not on its pointers and strides (any alignment is fine: the kernel
 * aligns it itself). */
size_t nbk_gemm_workspace(const nbk_gemm *p, int threads);

/* C = op(A)·op(B) with the built-in kernel, on up to @p threads of the
 * library's workers (nbc_parallel): fewer for a product too small to keep
 * them busy for the time handing work over takes; they share out runs of
 * rows or of columns of C. @p
 * workspace holds at least nbk_gemm_workspace(p, threads) bytes. The result
 * is bit-identical for every thread count: each element is summed over k
 * in the same order. */
void nbk_gemm_builtin(const nbk_gemm *p, void *workspace, int threads);

/* nbk_gemm_builtin with the micro-kernels of family @p isa, or of the best
 * family when the CPU does not run @p isa. Results differ between families
 * by rounding only (FMA or not, the order of the sums over k). */
void nbk_gemm_builtin_isa(const nbk_gemm *p, void *workspace, int threads, nbk_gemm_isa isa);

/* The sizes at which the kernel changes how it works (measured; tests lower
 * them to reach every way with small products). */
typedef struct nbk_gemm_limits {
    double thread_work;  /* multiply-adds worth one more thread (with 16-lane SIMD; half as
                            many with 8 lanes) */
    double cache_bytes;  /* most bytes of op(A) or op(B) a thread packs whole */
} nbk_gemm_limits;

/* The defaults, for the library's workers (nbc_parallel), which spin a
 * while after each job before they sleep. */
extern const nbk_gemm_limits nbk_gemm_limits_default;

/* nbk_gemm_builtin_isa and nbk_gemm_workspace with limits @p lim (NULL:
 * the defaults); the result is the same bit for bit whatever the limits. */
void nbk_gemm_builtin_limits(const nbk_gemm *p, void *workspace, int threads, nbk_gemm_isa isa,
                             const nbk_gemm_limits *lim);
size_t nbk_gemm_workspace_limits(const nbk_gemm *p, int threads, const nbk_gemm_limits *lim);

/* How nbk_gemm_builtin_limits would compute @p p (for tests). */
typedef struct nbk_gemm_info {
    int threads;      /* threads it runs on */
    bool transposed;  /* computes C^T = op(B)^T·op(A)^T */
    bool narrow;      /* with the one-vector tile */
    bool a_in_place;  /* reads whole panels of op(A) without packing them */
    bool b_in_place;  /* reads whole panels of op(B) without packing them */
    int mr;           /* rows of its tile */
    bool split_n;     /* threads take columns of C (of C^T when transposed), else rows */
    bool dynamic;     /* threads take runs one after another, else one run each */
    int64_t run;      /* the most rows or columns in a run */
} nbk_gemm_info;

nbk_gemm_info nbk_gemm_plan_info(const nbk_gemm *p, int threads, nbk_gemm_isa isa,
                                 const nbk_gemm_limits *lim);

#endif
