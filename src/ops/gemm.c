/* The built-in GEMM behind nb_matmul (gemm.h): blocking and packing in
 * portable C, micro-kernels in portable C and, on x86-64 with GCC or
 * Clang, in AVX2+FMA and AVX-512 intrinsics chosen at run time. */

#include "gemm.h"
#include "kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define GEMM_X86 1
#include <immintrin.h>
#define GEMM_AVX2 __attribute__((target("avx2,fma")))
#define GEMM_AVX512 __attribute__((target("avx512f")))
#else
#define GEMM_X86 0
#endif

#if defined(__clang__)
#define GEMM_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define GEMM_UNROLL _Pragma("GCC unroll 32")
#else
#define GEMM_UNROLL
#endif

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int64_t round_up(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

/*
 * Blocking after Goto and van de Geijn. For each KC-deep slice of k, a
 * KC x NC block of op(B) is packed into NR-column panels (L2/L3) and an
 * MC x KC block of op(A) into MR-row panels (L2); the micro-kernel multiplies one
 * MR-row panel by one NR-column panel, the MR x NR sums held in registers,
 * streaming both panels from L1. Panels are zero-padded to whole MR/NR so
 * the micro-kernel always runs its full tile; a tile that sticks out of C,
 * or a C written transposed, goes through a small buffer. The first k-slice
 * stores into C, later ones add.
 *
 * The problem is seen through strides (gemm_view), so C = op(A)·op(B) can
 * also be computed as C^T = op(B)^T·op(A)^T when that wastes less of the
 * tiles on padding (a C of 128 x 10 in 6 x 16 tiles covers 132 x 16
 * cells, its transpose 12 x 128).
 *
 * Threads take runs of MC-row blocks of C; each packs its own copy of the
 * op(B) block, which costs k*n copies per thread but no barriers.
 */
#define GEMM_KC 384    /* most k per slice (256 to 512 time alike on the B2 shapes) */
#define GEMM_MC 192    /* most rows of op(A) per block: 192 x 384 floats, 288 KiB of L2 */
#define GEMM_NC 2048   /* most columns of op(B) per block: 384 x 2048 floats, 3 MiB */
#define GEMM_TILE 4096 /* bytes of the largest MR x NR tile */

/* op(A)(i,q) = a[i*rs_a + q*cs_a], op(B)(q,j) = b[q*rs_b + j*cs_b],
 * C(i,j) = c[i*rs_c + j*cs_c]; strides in elements. */
typedef struct gemm_view {
    int64_t m, n, k;
    const void *a, *b;
    void *c;
    int64_t rs_a, cs_a, rs_b, cs_b, rs_c, cs_c;
} gemm_view;

/* C[MR x NR] (row stride ldc) = or += panel ap (kc x MR) times bp (kc x NR) */
typedef void gemm_micro_fn(int64_t kc, const void *restrict ap, const void *restrict bp,
                           void *restrict c, int64_t ldc, bool add);
/* Pack rows [i0,i0+rows) x k [p0,p0+kc) of op(A), rows <= MR, as one MR-row
 * panel; or k [p0,p0+kc) x columns [i0,i0+rows) of op(B), as one NR-column
 * panel. Zero-padded. */
typedef void gemm_pack_fn(void *restrict dst, const gemm_view *v, int64_t i0, int64_t rows,
                          int64_t p0, int64_t kc);

typedef struct gemm_kernel {
    int mr, nr;
    gemm_micro_fn *micro;
    gemm_pack_fn *pack_a, *pack_b;
} gemm_kernel;

/* ---------------------------------------------------------------- packing */

/* pack_a for element type T and MR rows; TR(dst, ldd, src, lds, rows,
 * cols) is a transpose that returns true, or NO_TRANSPOSE for plain loops */
#define NO_TRANSPOSE(dst, ldd, src, lds, rows, cols) false
#define DEFINE_PACK_A(T, SUF, MR, TR)                                                              \
    static void pack_a_##SUF(void *restrict dst_, const gemm_view *v, int64_t i0, int64_t rows,    \
                             int64_t p0, int64_t kc)                                               \
    {                                                                                              \
        T *restrict dst = dst_;                                                                    \
        const T *a = (const T *)v->a + i0 * v->rs_a + p0 * v->cs_a;                                \
        int64_t rs = v->rs_a, cs = v->cs_a;                                                        \
        if (rows == MR && cs == 1) { /* MR rows, each contiguous along k */                        \
            if (!TR(dst, MR, a, rs, MR, kc))                                                       \
                for (int64_t q = 0; q < kc; q++, dst += MR)                                        \
                    GEMM_UNROLL                                                                    \
            for (int ii = 0; ii < MR; ii++)                                                        \
                dst[ii] = a[ii * rs + q];                                                          \
        } else if (rows == MR && rs == 1) { /* each column of MR contiguous */                     \
            for (int64_t q = 0; q < kc; q++, dst += MR)                                            \
                GEMM_UNROLL                                                                        \
            for (int ii = 0; ii < MR; ii++)                                                        \
                dst[ii] = a[q * cs + ii];                                                          \
        } else {                                                                                   \
            for (int64_t q = 0; q < kc; q++, dst += MR) {                                          \
                for (int64_t ii = 0; ii < rows; ii++)                                              \
                    dst[ii] = a[ii * rs + q * cs];                                                 \
                for (int64_t ii = rows; ii < MR; ii++)                                             \
                    dst[ii] = 0;                                                                   \
            }                                                                                      \
        }                                                                                          \
    }

/* pack_b for element type T and NR columns, TR as for pack_a */
#define DEFINE_PACK_B(T, SUF, NR, TR)                                                              \
    static void pack_b_##SUF(void *restrict dst_, const gemm_view *v, int64_t j0, int64_t cols,    \
                             int64_t p0, int64_t kc)                                               \
    {                                                                                              \
        T *restrict dst = dst_;                                                                    \
        const T *b = (const T *)v->b + p0 * v->rs_b + j0 * v->cs_b;                                \
        int64_t rs = v->rs_b, cs = v->cs_b;                                                        \
        if (cols == NR && cs == 1) { /* rows of NR contiguous */                                   \
            for (int64_t q = 0; q < kc; q++, dst += NR)                                            \
                GEMM_UNROLL                                                                        \
            for (int jj = 0; jj < NR; jj++)                                                        \
                dst[jj] = b[q * rs + jj];                                                          \
        } else if (cols == NR && rs == 1) { /* NR columns, each contiguous along k */              \
            if (!TR(dst, NR, b, cs, NR, kc))                                                       \
                for (int64_t q = 0; q < kc; q++, dst += NR)                                        \
                    GEMM_UNROLL                                                                    \
            for (int jj = 0; jj < NR; jj++)                                                        \
                dst[jj] = b[jj * cs + q];                                                          \
        } else {                                                                                   \
            for (int64_t q = 0; q < kc; q++, dst += NR) {                                          \
                for (int64_t jj = 0; jj < cols; jj++)                                              \
                    dst[jj] = b[q * rs + jj * cs];                                                 \
                for (int64_t jj = cols; jj < NR; jj++)                                             \
                    dst[jj] = 0;                                                                   \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_PACK_A(float, f32_4, 4, NO_TRANSPOSE)
DEFINE_PACK_B(float, f32_16, 16, NO_TRANSPOSE)
DEFINE_PACK_A(double, f64_4, 4, NO_TRANSPOSE)
DEFINE_PACK_B(double, f64_4, 4, NO_TRANSPOSE)

#if GEMM_X86
/*
 * Transposes for packing on x86 (both families run AVX2): dst[c*ldd + r]
 * = src[r*lds + c] for r < rows, c < cols, in 8 x 8 blocks of floats or
 * 4 x 4 blocks of doubles held in registers (loads along rows, stores along
 * columns), a 4-row block of floats, and scalar loops for what is left.
 */
GEMM_AVX2 static inline __attribute__((always_inline)) void transpose8_f32(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) { /* rows 4i..4i+3 of columns (c, c+4) */
        s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(s[c], s[c + 4], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(s[c], s[c + 4], 0x31);
    }
}

GEMM_AVX2 static bool transpose_f32(float *restrict dst, int64_t ldd, const float *restrict src,
                                    int64_t lds, int rows, int64_t cols)
{
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        int r = 0;
        for (; r + 8 <= rows; r += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = _mm256_loadu_ps(src + (r + i) * lds + c);
            transpose8_f32(v);
            for (int i = 0; i < 8; i++)
                _mm256_storeu_ps(dst + (c + i) * ldd + r, v[i]);
        }
        if (r + 4 <= rows) { /* rows 4..7 of the block are zero, not stored */
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = i < 4 ? _mm256_loadu_ps(src + (r + i) * lds + c) : _mm256_setzero_ps();
            transpose8_f32(v);
            for (int i = 0; i < 8; i++)
                _mm_storeu_ps(dst + (c + i) * ldd + r, _mm256_castps256_ps128(v[i]));
            r += 4;
        }
        for (; r < rows; r++)
            for (int i = 0; i < 8; i++)
                dst[(c + i) * ldd + r] = src[r * lds + c + i];
    }
    for (; c < cols; c++)
        for (int r = 0; r < rows; r++)
            dst[c * ldd + r] = src[r * lds + c];
    return true;
}

GEMM_AVX2 static bool transpose_f64(double *restrict dst, int64_t ldd, const double *restrict src,
                                    int64_t lds, int rows, int64_t cols)
{
    int64_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            __m256d v0 = _mm256_loadu_pd(src + r * lds + c);
            __m256d v1 = _mm256_loadu_pd(src + (r + 1) * lds + c);
            __m256d v2 = _mm256_loadu_pd(src + (r + 2) * lds + c);
            __m256d v3 = _mm256_loadu_pd(src + (r + 3) * lds + c);
            __m256d t0 = _mm256_unpacklo_pd(v0, v1), t1 = _mm256_unpackhi_pd(v0, v1);
            __m256d t2 = _mm256_unpacklo_pd(v2, v3), t3 = _mm256_unpackhi_pd(v2, v3);
            _mm256_storeu_pd(dst + c * ldd + r, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_storeu_pd(dst + (c + 1) * ldd + r, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_storeu_pd(dst + (c + 2) * ldd + r, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_storeu_pd(dst + (c + 3) * ldd + r, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
        for (; r < rows; r++)
            for (int i = 0; i < 4; i++)
                dst[(c + i) * ldd + r] = src[r * lds + c + i];
    }
    for (; c < cols; c++)
        for (int r = 0; r < rows; r++)
            dst[c * ldd + r] = src[r * lds + c];
    return true;
}

DEFINE_PACK_A(float, f32_6, 6, transpose_f32)
DEFINE_PACK_B(float, f32_16x, 16, transpose_f32)
DEFINE_PACK_A(double, f64_6, 6, transpose_f64)
DEFINE_PACK_B(double, f64_8, 8, transpose_f64)
DEFINE_PACK_A(float, f32_12, 12, transpose_f32)
DEFINE_PACK_B(float, f32_32, 32, transpose_f32)
DEFINE_PACK_A(double, f64_12, 12, transpose_f64)
DEFINE_PACK_B(double, f64_16, 16, transpose_f64)
#endif

/* ------------------------------------------------------- portable kernel */

/*
 * MR x NR chosen by timing on the x86-64 baseline (16 SSE registers):
 * 4 x 16 floats and 4 x 4 doubles. The loops over the tile must be fully
 * unrolled for the sums to live in registers; -O2 does not do that by
 * itself, hence GEMM_UNROLL.
 */
#define DEFINE_MICRO_C(T, SUF, MR, NR)                                                             \
    static void micro_##SUF(int64_t kc, const void *restrict ap_, const void *restrict bp_,        \
                            void *restrict c_, int64_t ldc, bool add)                              \
    {                                                                                              \
        const T *restrict ap = ap_, *restrict bp = bp_;                                            \
        T *restrict c = c_;                                                                        \
        T acc[MR][NR];                                                                             \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++)                                                               \
            GEMM_UNROLL                                                                            \
        for (int j = 0; j < NR; j++)                                                               \
            acc[i][j] = 0;                                                                         \
        for (int64_t q = 0; q < kc; q++, ap += MR, bp += NR) {                                     \
            GEMM_UNROLL                                                                            \
            for (int i = 0; i < MR; i++) {                                                         \
                T a_iq = ap[i];                                                                    \
                GEMM_UNROLL                                                                        \
                for (int j = 0; j < NR; j++)                                                       \
                    acc[i][j] += a_iq * bp[j];                                                     \
            }                                                                                      \
        }                                                                                          \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++)                                                               \
            GEMM_UNROLL                                                                            \
        for (int j = 0; j < NR; j++)                                                               \
            c[i * ldc + j] = add ? c[i * ldc + j] + acc[i][j] : acc[i][j];                         \
    }

DEFINE_MICRO_C(float, f32_c, 4, 16)
DEFINE_MICRO_C(double, f64_c, 4, 4)

/* ------------------------------------------------------------ x86 kernels */

#if GEMM_X86
/*
 * The same loop in intrinsics: per step of k, NV vectors of the B panel
 * are loaded, each of the MR entries of the A panel is broadcast, and
 * MR x NV fused multiply-adds update the sums, which stay in registers
 * (MR*NV of the 16 ymm or 32 zmm registers).
 */
#define DEFINE_MICRO_SIMD(SUF, TARGET, T, V, W, MR, NV, LOAD, SET1, FMA, ADD, STORE, ZERO)         \
    TARGET static void micro_##SUF(int64_t kc, const void *restrict ap_, const void *restrict bp_, \
                                   void *restrict c_, int64_t ldc, bool add)                       \
    {                                                                                              \
        const T *restrict ap = ap_, *restrict bp = bp_;                                            \
        T *restrict c = c_;                                                                        \
        V acc[MR][NV];                                                                             \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++)                                                               \
            GEMM_UNROLL                                                                            \
        for (int h = 0; h < NV; h++)                                                               \
            acc[i][h] = ZERO();                                                                    \
        for (int64_t q = 0; q < kc; q++, ap += MR, bp += NV * W) {                                 \
            V bv[NV];                                                                              \
            GEMM_UNROLL                                                                            \
            for (int h = 0; h < NV; h++)                                                           \
                bv[h] = LOAD(bp + h * W);                                                          \
            GEMM_UNROLL                                                                            \
            for (int i = 0; i < MR; i++) {                                                         \
                V a_iq = SET1(ap[i]);                                                              \
                GEMM_UNROLL                                                                        \
                for (int h = 0; h < NV; h++)                                                       \
                    acc[i][h] = FMA(a_iq, bv[h], acc[i][h]);                                       \
            }                                                                                      \
        }                                                                                          \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++)                                                               \
            GEMM_UNROLL                                                                            \
        for (int h = 0; h < NV; h++) {                                                             \
            T *ci = c + i * ldc + h * W;                                                           \
            STORE(ci, add ? ADD(LOAD(ci), acc[i][h]) : acc[i][h]);                                 \
        }                                                                                          \
    }

DEFINE_MICRO_SIMD(f32_avx2, GEMM_AVX2, float, __m256, 8, 6, 2, _mm256_loadu_ps, _mm256_set1_ps,
                  _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, _mm256_setzero_ps)
DEFINE_MICRO_SIMD(f64_avx2, GEMM_AVX2, double, __m256d, 4, 6, 2, _mm256_loadu_pd, _mm256_set1_pd,
                  _mm256_fmadd_pd, _mm256_add_pd, _mm256_storeu_pd, _mm256_setzero_pd)
DEFINE_MICRO_SIMD(f32_avx512, GEMM_AVX512, float, __m512, 16, 12, 2, _mm512_loadu_ps,
                  _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps,
                  _mm512_setzero_ps)
DEFINE_MICRO_SIMD(f64_avx512, GEMM_AVX512, double, __m512d, 8, 12, 2, _mm512_loadu_pd,
                  _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_storeu_pd,
                  _mm512_setzero_pd)
#endif

/* The kernels by [isa][dtype == NB_F64]. */
static const gemm_kernel gemm_kernels[NBK_GEMM_ISA_COUNT][2] = {
    [NBK_GEMM_PORTABLE] = {{4, 16, micro_f32_c, pack_a_f32_4, pack_b_f32_16},
                           {4, 4, micro_f64_c, pack_a_f64_4, pack_b_f64_4}},
#if GEMM_X86
    [NBK_GEMM_AVX2] = {{6, 16, micro_f32_avx2, pack_a_f32_6, pack_b_f32_16x},
                       {6, 8, micro_f64_avx2, pack_a_f64_6, pack_b_f64_8}},
    [NBK_GEMM_AVX512] = {{12, 32, micro_f32_avx512, pack_a_f32_12, pack_b_f32_32},
                         {12, 16, micro_f64_avx512, pack_a_f64_12, pack_b_f64_16}},
#endif
};

nbk_gemm_isa nbk_gemm_best_isa(void)
{
#if GEMM_X86
    /* reads what the CPU (and OS) support, found once at start-up */
    if (__builtin_cpu_supports("avx512f"))
        return NBK_GEMM_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return NBK_GEMM_AVX2;
#endif
    return NBK_GEMM_PORTABLE;
}

/* ----------------------------------------------------------------- driver */

typedef struct gemm_plan {
    const gemm_kernel *kern;
    gemm_view v;        /* the product as computed (maybe transposed) */
    bool accumulate;    /* C += the product */
    int64_t mc, kc, nc; /* block sizes */
    size_t a_bytes;     /* a packed MC x KC block of op(A) */
    size_t b_bytes;     /* a packed KC x NC block of op(B) */
} gemm_plan;

/* Cells of the tiles covering an m x n C */
static double tiled_area(int64_t m, int64_t n, const gemm_kernel *kr)
{
    return (double)round_up(m, kr->mr) * (double)round_up(n, kr->nr);
}

static gemm_plan gemm_plan_for(const nbk_gemm *p, int threads, nbk_gemm_isa isa)
{
    gemm_plan pl;
    const gemm_kernel *kr = &gemm_kernels[isa][p->dtype == NB_F64];
    size_t elem = nb_dtype_size(p->dtype);
    int64_t m = p->m > 0 ? p->m : 1, n = p->n > 0 ? p->n : 1, k = p->k > 0 ? p->k : 1;
    pl.kern = kr;
    pl.accumulate = p->accumulate;
    pl.v = (gemm_view){.m = p->m,
                       .n = p->n,
                       .k = p->k,
                       .a = p->a,
                       .b = p->b,
                       .c = p->c,
                       .rs_a = p->trans_a ? 1 : p->lda,
                       .cs_a = p->trans_a ? p->lda : 1,
                       .rs_b = p->trans_b ? 1 : p->ldb,
                       .cs_b = p->trans_b ? p->ldb : 1,
                       .rs_c = p->ldc,
                       .cs_c = 1};
    /* C^T = op(B)^T·op(A)^T when its tiles waste clearly less */
    if (tiled_area(n, m, kr) * 8 < tiled_area(m, n, kr) * 7) {
        gemm_view t = pl.v;
        pl.v = (gemm_view){.m = t.n,
                           .n = t.m,
                           .k = t.k,
                           .a = t.b,
                           .b = t.a,
                           .c = t.c,
                           .rs_a = t.cs_b,
                           .cs_a = t.rs_b,
                           .rs_b = t.cs_a,
                           .cs_b = t.rs_a,
                           .rs_c = t.cs_c,
                           .cs_c = t.rs_c};
        int64_t swap = m;
        m = n, n = swap;
    }
    /* k in equal slices of at most KC (784 = 2 x 392, not 384 + 384 + 16);
     * the slices fix the order of each sum, so they do not depend on the
     * thread count */
    int64_t slices = (k + GEMM_KC - 1) / GEMM_KC;
    pl.kc = (k + slices - 1) / slices;
    /* rows per block: MC, or fewer so that every thread gets a block */
    int64_t rows = (m + threads - 1) / threads;
    pl.mc = min64(GEMM_MC / kr->mr * kr->mr, round_up(rows, kr->mr));
    pl.nc = min64(GEMM_NC, round_up(n, kr->nr));
    pl.a_bytes = (size_t)round_up(pl.mc * pl.kc * (int64_t)elem, NB_ALIGN);
    pl.b_bytes = (size_t)round_up(pl.kc * pl.nc * (int64_t)elem, NB_ALIGN);
    return pl;
}

/* C (mr x nr, strides rs, cs) = or += the first rows and columns of a
 * tile of T with row stride ldt */
#define TILE_TO_C(T)                                                                               \
    do {                                                                                           \
        const T *t = tile;                                                                         \
        T *cc = c;                                                                                 \
        for (int64_t i = 0; i < mr; i++)                                                           \
            for (int64_t j = 0; j < nr; j++) {                                                     \
                T *e = cc + i * rs + j * cs;                                                       \
                *e = add ? *e + t[i * ldt + j] : t[i * ldt + j];                                   \
            }                                                                                      \
    } while (0)

static void tile_to_c(bool f64, const void *tile, int64_t ldt, void *c, int64_t rs, int64_t cs,
                      int64_t mr, int64_t nr, bool add)
{
    if (f64)
        TILE_TO_C(double);
    else
        TILE_TO_C(float);
}

/* Thread tid's share of the product, of a team of team threads: a run of
 * blocks of rows of C, with its own packed blocks of op(A) and op(B) in
 * the tid-th slot of work. The threads share nothing they write, so they
 * never wait for each other: on a busy machine a thread that is not
 * running holds up only the end of the product. */
static void gemm_run(const gemm_plan *pl, bool f64, char *work, int tid, int team)
{
    const gemm_view *v = &pl->v;
    const gemm_kernel *kr = pl->kern;
    int64_t mr_max = kr->mr, nr_max = kr->nr, es = f64 ? 8 : 4;
    _Alignas(64) char tile[GEMM_TILE];
    char *c = v->c;
    char *bpack = work + (size_t)tid * (pl->a_bytes + pl->b_bytes), *apack = bpack + pl->b_bytes;
    int64_t m_blocks = (v->m + pl->mc - 1) / pl->mc;
    int64_t ib_first = m_blocks * tid / team, ib_end = m_blocks * (tid + 1) / team;
    if (ib_first == ib_end)
        return;
    for (int64_t jc = 0; jc < v->n; jc += pl->nc) {
        int64_t nc = min64(pl->nc, v->n - jc);
        int64_t n_panels = (nc + nr_max - 1) / nr_max;
        for (int64_t pc = 0; pc < v->k; pc += pl->kc) {
            int64_t kc = min64(pl->kc, v->k - pc);
            bool add = pc > 0 || pl->accumulate;
            for (int64_t jp = 0; jp < n_panels; jp++)
                kr->pack_b(bpack + jp * kc * nr_max * es, v, jc + jp * nr_max,
                           min64(nr_max, nc - jp * nr_max), pc, kc);
            for (int64_t ib = ib_first; ib < ib_end; ib++) {
                int64_t i0 = ib * pl->mc, mc = min64(pl->mc, v->m - i0);
                for (int64_t ir = 0; ir < mc; ir += mr_max)
                    kr->pack_a(apack + ir * kc * es, v, i0 + ir, min64(mr_max, mc - ir), pc, kc);
                for (int64_t jr = 0; jr < nc; jr += nr_max) {
                    const char *bp = bpack + jr * kc * es;
                    int64_t nr = min64(nr_max, nc - jr);
                    for (int64_t ir = 0; ir < mc; ir += mr_max) {
                        const char *ap = apack + ir * kc * es;
                        int64_t mr = min64(mr_max, mc - ir);
                        char *cij = c + ((i0 + ir) * v->rs_c + (jc + jr) * v->cs_c) * es;
                        if (mr == mr_max && nr == nr_max && v->cs_c == 1) {
                            kr->micro(kc, ap, bp, cij, v->rs_c, add);
                        } else {
                            kr->micro(kc, ap, bp, tile, nr_max, false);
                            tile_to_c(f64, tile, nr_max, cij, v->rs_c, v->cs_c, mr, nr, add);
                        }
                    }
                }
            }
        }
    }
}

size_t nbk_gemm_workspace(const nbk_gemm *p, int threads)
{
    if (threads < 1)
        threads = 1;
    size_t most = 0;
    for (int isa = 0; isa <= (int)nbk_gemm_best_isa(); isa++) {
        gemm_plan pl = gemm_plan_for(p, threads, (nbk_gemm_isa)isa);
        size_t bytes = NB_ALIGN + (size_t)threads * (pl.a_bytes + pl.b_bytes);
        most = bytes > most ? bytes : most;
    }
    return most;
}

void nbk_gemm_builtin_isa(const nbk_gemm *p, void *workspace, int threads, nbk_gemm_isa isa)
{
    if (p->m <= 0 || p->n <= 0)
        return;
    size_t elem = nb_dtype_size(p->dtype);
    if (p->k <= 0) { /* an empty sum */
        if (p->accumulate)
            return;
        for (int64_t i = 0; i < p->m; i++)
            memset((char *)p->c + (size_t)(i * p->ldc) * elem, 0, (size_t)p->n * elem);
        return;
    }
    if (threads < 1)
        threads = 1;
    if ((int)isa < 0 || isa > nbk_gemm_best_isa())
        isa = nbk_gemm_best_isa();
    bool f64 = p->dtype == NB_F64;
    gemm_plan pl = gemm_plan_for(p, threads, isa);
    uintptr_t at = ((uintptr_t)workspace + NB_ALIGN - 1) & ~(uintptr_t)(NB_ALIGN - 1);
    if (threads == 1 || (pl.v.m + pl.mc - 1) / pl.mc == 1) {
        gemm_run(&pl, f64, (char *)at, 0, 1);
        return;
    }
    NBK_PRAGMA(omp parallel num_threads(threads))
    {
        NBK_THREAD(tid, team);
        gemm_run(&pl, f64, (char *)at, (int)tid, (int)team);
    }
}

void nbk_gemm_builtin(const nbk_gemm *p, void *workspace, int threads)
{
    nbk_gemm_builtin_isa(p, workspace, threads, nbk_gemm_best_isa());
}
