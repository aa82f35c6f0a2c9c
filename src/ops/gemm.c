/* The built-in GEMM behind nb_matmul (gemm.h): blocking and packing in
 * portable C, micro-kernels in portable C and, on x86-64 with GCC or
 * Clang, in AVX2+FMA and AVX-512 intrinsics chosen at run time. */

#include "gemm.h"
#include "kernels.h"

#include <stdatomic.h>
#include <stdlib.h>

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
 * stores into C, later ones add. When the rows of op(A) are contiguous
 * along k (or its columns are) and C is not wide, whole MR-row panels are
 * read in place (micro_rows, or micro with op(A)'s stride) instead of
 * packed: each would be used by few NR-column panels.
 * Likewise whole NR-column panels of op(B) when its rows are contiguous and
 * C is short (the micro-kernels take B's row stride): a small layer's
 * product, 32x64x128, then packs nothing and went from 5.1 to 3.6 us.
 *
 * The problem is seen through strides (gemm_view), so C = op(A)·op(B) can
 * also be computed as C^T = op(B)^T·op(A)^T, and each SIMD family has a
 * one-vector tile besides its two-vector one, for a narrow C (and AVX-512
 * an 8-row one, so that C of 32 or 128 rows is whole tiles). gemm_plan_for
 * picks the orientation and tile with a cost model (part_cost): the tiles'
 * cells, padding included, plus the packing and the writing of C^T tiles
 * (a C of 128 x 10 costs 132 x 32 cells in 12 x 32 tiles, 132 x 16 in
 * 12 x 16 ones, 12 x 128 as C^T, which packs all of op(A) through
 * transposes).
 *
 * Every choice here is of who computes which element of C and through which
 * tile: each element is still the sum over k of the same products in the
 * same order (the slices of k fixed by k alone), so the result is the same
 * bit for bit whatever the plan and the thread count.
 *
 * Threads share out C by runs of row panels or of column panels, whichever
 * packs less twice (see gemm_run).
 */
#define GEMM_KC 384    /* most k per slice (256 to 512 time alike on the B2 shapes) */
#define GEMM_MC 192    /* most rows of op(A) per block: 192 x 384 floats, 288 KiB of L2 */
#define GEMM_NC 2048   /* most columns of op(B) per block: 384 x 2048 floats, 3 MiB */
#define GEMM_TILE 4096 /* bytes of the largest MR x NR tile */
#define GEMM_AROWS_N 512 /* most columns of C for which op(A) is read in place */
#define GEMM_UNITS 4   /* runs per thread when threads take runs one after another */
#define GEMM_BROWS_M 64 /* most rows of C for which op(B) is read in place */

/* The time of a cell of the narrow (one-vector) and short (8-row) tiles in
 * cells of the widest (gemm_kernel.cell_cost) */
#define COST_NARROW 1.1
#define COST_SHORT 1.0

/* op(A)(i,q) = a[i*rs_a + q*cs_a], op(B)(q,j) = b[q*rs_b + j*cs_b],
 * C(i,j) = c[i*rs_c + j*cs_c]; strides in elements. */
typedef struct gemm_view {
    int64_t m, n, k;
    const void *a, *b;
    void *c;
    int64_t rs_a, cs_a, rs_b, cs_b, rs_c, cs_c;
} gemm_view;

/* The epilogue (nbk_gemm) of one whole tile, applied as the micro-kernel
 * stores it: col the bias of the tile's NR columns, or row that of its MR
 * rows, or neither; then relu */
typedef struct gemm_epi {
    const void *col, *row;
    bool relu;
} gemm_epi;

/* C[MR x NR] (row stride ldc) = or += panel ap (kc x MR, row stride astep:
 * MR for a packed panel, op(A)'s stride along k when its columns are read
 * in place) times bp (kc x NR, row stride ldb: NR for a packed panel, op(B)'s
 * own when read in place), then the epilogue epi unless it is NULL */
typedef void gemm_micro_fn(int64_t kc, const void *restrict ap, int64_t astep,
                           const void *restrict bp, int64_t ldb, void *restrict c, int64_t ldc,
                           bool add, const gemm_epi *epi);
/* Pack rows [i0,i0+rows) x k [p0,p0+kc) of op(A), rows <= MR, as one MR-row
 * panel; or k [p0,p0+kc) x columns [i0,i0+rows) of op(B), as one NR-column
 * panel. Zero-padded. */
typedef void gemm_pack_fn(void *restrict dst, const gemm_view *v, int64_t i0, int64_t rows,
                          int64_t p0, int64_t kc);

/* gemm_micro_fn with A read in place: MR rows at ap + i*lda, each
 * contiguous along k */
typedef void gemm_micro_rows_fn(int64_t kc, const void *restrict ap, int64_t lda,
                                const void *restrict bp, int64_t ldb, void *restrict c, int64_t ldc,
                                bool add, const gemm_epi *epi);

/* C(i,j) = (or +=) tile[i*ldt + j], i < mr, j < nr, for a C stored by
 * columns: C(i,j) at c[i + j*ldc] */
typedef void gemm_tile_fn(const void *tile, int64_t ldt, void *c, int64_t ldc, int64_t mr,
                          int64_t nr, bool add);

typedef struct gemm_kernel {
    int mr, nr;
    int lanes; /* elements of a SIMD vector (nr is 1 or 2 vectors) */
    gemm_micro_fn *micro;
    gemm_pack_fn *pack_a, *pack_b;
    gemm_micro_rows_fn *micro_rows; /* or NULL */
    gemm_tile_fn *tile_to_ct;       /* a tile into C^T, or NULL */
    double cell_cost;               /* time of a cell of its tiles, in the widest tile's */
} gemm_kernel;

/* ---------------------------------------------------------------- packing */

/* pack_a for element type T and MR rows; TR(dst, ldd, src, lds, rows, pad,
 * cols) is a transpose that returns true, or NO_TRANSPOSE for plain loops */
#define NO_TRANSPOSE(dst, ldd, src, lds, rows, pad, cols) false
#define DEFINE_PACK_A(T, SUF, MR, TR)                                                              \
    static void pack_a_##SUF(void *restrict dst_, const gemm_view *v, int64_t i0, int64_t rows,    \
                             int64_t p0, int64_t kc)                                               \
    {                                                                                              \
        T *restrict dst = dst_;                                                                    \
        const T *a = (const T *)v->a + i0 * v->rs_a + p0 * v->cs_a;                                \
        int64_t rs = v->rs_a, cs = v->cs_a;                                                        \
        if (rows == MR && cs == 1) { /* MR rows, each contiguous along k */                        \
            if (!TR(dst, MR, a, rs, MR, MR, kc))                                                       \
                for (int64_t q = 0; q < kc; q++, dst += MR)                                        \
                    GEMM_UNROLL                                                                    \
            for (int ii = 0; ii < MR; ii++)                                                        \
                dst[ii] = a[ii * rs + q];                                                          \
        } else if (cs == 1 && TR(dst, MR, a, rs, (int)rows, MR, kc)) { /* fewer rows */            \
        } else if (rows == MR && rs == 1) { /* each column of MR contiguous */                     \
            for (int64_t q = 0; q < kc; q++, dst += MR)                                            \
                GEMM_UNROLL                                                                        \
            for (int ii = 0; ii < MR; ii++)                                                        \
                dst[ii] = a[q * cs + ii];                                                          \
        } else {                                                                                   \
            for (int64_t q = 0; q < kc; q++, dst += MR)                                            \
                GEMM_UNROLL                                                                        \
            for (int ii = 0; ii < MR; ii++)                                                        \
                dst[ii] = ii < rows ? a[ii * rs + q * cs] : 0;                                     \
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
            if (!TR(dst, NR, b, cs, NR, NR, kc))                                                       \
                for (int64_t q = 0; q < kc; q++, dst += NR)                                        \
                    GEMM_UNROLL                                                                    \
            for (int jj = 0; jj < NR; jj++)                                                        \
                dst[jj] = b[jj * cs + q];                                                          \
        } else if (rs == 1 && TR(dst, NR, b, cs, (int)cols, NR, kc)) { /* fewer columns */         \
        } else {                                                                                   \
            for (int64_t q = 0; q < kc; q++, dst += NR)                                            \
                GEMM_UNROLL                                                                        \
            for (int jj = 0; jj < NR; jj++)                                                        \
                dst[jj] = jj < cols ? b[q * rs + jj * cs] : 0;                                     \
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

/* dst[c*ldd + r] = (or, with add, +=) src[r*lds + c] for r < rows, and 0
 * for rows <= r < pad (no add then); add is a constant where this is
 * inlined */
GEMM_AVX2 static inline __attribute__((always_inline)) void
transpose_f32_to(float *restrict dst, int64_t ldd, const float *restrict src, int64_t lds, int rows,
                 int pad, int64_t cols, bool add)
{
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
        int r = 0;
        for (; r + 8 <= pad; r += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = r + i < rows ? _mm256_loadu_ps(src + (r + i) * lds + c) : _mm256_setzero_ps();
            transpose8_f32(v);
            for (int i = 0; i < 8; i++) {
                float *d = dst + (c + i) * ldd + r;
                _mm256_storeu_ps(d, add ? _mm256_add_ps(_mm256_loadu_ps(d), v[i]) : v[i]);
            }
        }
        if (r + 4 <= pad) { /* rows 4..7 of the block are zero, not stored */
            __m256 v[8];
            for (int i = 0; i < 8; i++)
                v[i] = i < 4 && r + i < rows ? _mm256_loadu_ps(src + (r + i) * lds + c)
                                             : _mm256_setzero_ps();
            transpose8_f32(v);
            for (int i = 0; i < 8; i++) {
                float *d = dst + (c + i) * ldd + r;
                __m128 h = _mm256_castps256_ps128(v[i]);
                _mm_storeu_ps(d, add ? _mm_add_ps(_mm_loadu_ps(d), h) : h);
            }
            r += 4;
        }
        for (; r < pad; r++)
            for (int i = 0; i < 8; i++) {
                float *d = dst + (c + i) * ldd + r, x = r < rows ? src[r * lds + c + i] : 0;
                *d = add ? *d + x : x;
            }
    }
    for (; c < cols; c++)
        for (int r = 0; r < pad; r++) {
            float *d = dst + c * ldd + r, x = r < rows ? src[r * lds + c] : 0;
            *d = add ? *d + x : x;
        }
}

GEMM_AVX2 static inline __attribute__((always_inline)) void
transpose_f64_to(double *restrict dst, int64_t ldd, const double *restrict src, int64_t lds,
                 int rows, int pad, int64_t cols, bool add)
{
    int64_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        int r = 0;
        for (; r + 4 <= pad; r += 4) {
            __m256d v[4];
            for (int i = 0; i < 4; i++)
                v[i] = r + i < rows ? _mm256_loadu_pd(src + (r + i) * lds + c) : _mm256_setzero_pd();
            __m256d t0 = _mm256_unpacklo_pd(v[0], v[1]), t1 = _mm256_unpackhi_pd(v[0], v[1]);
            __m256d t2 = _mm256_unpacklo_pd(v[2], v[3]), t3 = _mm256_unpackhi_pd(v[2], v[3]);
            v[0] = _mm256_permute2f128_pd(t0, t2, 0x20), v[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
            v[2] = _mm256_permute2f128_pd(t0, t2, 0x31), v[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
            for (int i = 0; i < 4; i++) {
                double *d = dst + (c + i) * ldd + r;
                _mm256_storeu_pd(d, add ? _mm256_add_pd(_mm256_loadu_pd(d), v[i]) : v[i]);
            }
        }
        for (; r < pad; r++)
            for (int i = 0; i < 4; i++) {
                double *d = dst + (c + i) * ldd + r, x = r < rows ? src[r * lds + c + i] : 0;
                *d = add ? *d + x : x;
            }
    }
    for (; c < cols; c++)
        for (int r = 0; r < pad; r++) {
            double *d = dst + c * ldd + r, x = r < rows ? src[r * lds + c] : 0;
            *d = add ? *d + x : x;
        }
}

/* The transposes of packing (TR of DEFINE_PACK_A/B): rows of the source
 * into a panel of pad columns, zero-padded */
GEMM_AVX2 static bool transpose_f32(float *restrict dst, int64_t ldd, const float *restrict src,
                                    int64_t lds, int rows, int pad, int64_t cols)
{
    transpose_f32_to(dst, ldd, src, lds, rows, pad, cols, false);
    return true;
}

GEMM_AVX2 static bool transpose_f64(double *restrict dst, int64_t ldd, const double *restrict src,
                                    int64_t lds, int rows, int pad, int64_t cols)
{
    transpose_f64_to(dst, ldd, src, lds, rows, pad, cols, false);
    return true;
}

/* A tile (mr x nr, row stride ldt) into a C stored by columns (C(i,j) at
 * c[i + j*ldc]), = or += */
GEMM_AVX2 static void tile_to_ct_f32(const void *tile, int64_t ldt, void *c, int64_t ldc,
                                     int64_t mr, int64_t nr, bool add)
{
    if (add)
        transpose_f32_to(c, ldc, tile, ldt, (int)mr, (int)mr, nr, true);
    else
        transpose_f32_to(c, ldc, tile, ldt, (int)mr, (int)mr, nr, false);
}

GEMM_AVX2 static void tile_to_ct_f64(const void *tile, int64_t ldt, void *c, int64_t ldc,
                                     int64_t mr, int64_t nr, bool add)
{
    if (add)
        transpose_f64_to(c, ldc, tile, ldt, (int)mr, (int)mr, nr, true);
    else
        transpose_f64_to(c, ldc, tile, ldt, (int)mr, (int)mr, nr, false);
}

DEFINE_PACK_A(float, f32_6, 6, transpose_f32)
DEFINE_PACK_B(float, f32_16x, 16, transpose_f32)
DEFINE_PACK_A(double, f64_6, 6, transpose_f64)
DEFINE_PACK_B(double, f64_8, 8, transpose_f64)
DEFINE_PACK_A(float, f32_12, 12, transpose_f32)
DEFINE_PACK_B(float, f32_32, 32, transpose_f32)
DEFINE_PACK_A(double, f64_12, 12, transpose_f64)
DEFINE_PACK_B(double, f64_16, 16, transpose_f64)
DEFINE_PACK_B(float, f32_8, 8, transpose_f32)
DEFINE_PACK_B(double, f64_4x, 4, transpose_f64)
DEFINE_PACK_A(float, f32_8, 8, transpose_f32)
DEFINE_PACK_A(double, f64_8, 8, transpose_f64)
#endif

/* ------------------------------------------------------- portable kernel */

/*
 * MR x NR chosen by timing on the x86-64 baseline (16 SSE registers):
 * 4 x 16 floats and 4 x 4 doubles. The loops over the tile must be fully
 * unrolled for the sums to live in registers; -O2 does not do that by
 * itself, hence GEMM_UNROLL.
 */
#define DEFINE_MICRO_C(T, SUF, MR, NR)                                                             \
    static void micro_##SUF(int64_t kc, const void *restrict ap_, int64_t astep,                   \
                            const void *restrict bp_, int64_t ldb, void *restrict c_, int64_t ldc, \
                            bool add, const gemm_epi *epi)                                         \
    {                                                                                              \
        const T *restrict ap = ap_, *restrict bp = bp_;                                            \
        T *restrict c = c_;                                                                        \
        T acc[MR][NR];                                                                             \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++)                                                               \
            GEMM_UNROLL                                                                            \
        for (int j = 0; j < NR; j++)                                                               \
            acc[i][j] = 0;                                                                         \
        for (int64_t q = 0; q < kc; q++, ap += astep, bp += ldb) {                                 \
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
        for (int j = 0; j < NR; j++) {                                                             \
            T x = add ? c[i * ldc + j] + acc[i][j] : acc[i][j];                                    \
            if (epi && epi->col)                                                                   \
                x += ((const T *)epi->col)[j];                                                     \
            if (epi && epi->row)                                                                   \
                x += ((const T *)epi->row)[i];                                                     \
            c[i * ldc + j] = epi && epi->relu && x <= 0 ? 0 : x;                                   \
        }                                                                                          \
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
#define MICRO_SIMD_BODY(T, V, W, MR, NV, LOAD, SET1, FMA, ADD, STORE, ZERO, RELU, A_IQ, A_NEXT)    \
    const T *restrict bp = bp_;                                                                    \
    T *restrict c = c_;                                                                            \
    V acc[MR][NV];                                                                                 \
    GEMM_UNROLL                                                                                    \
    for (int i = 0; i < MR; i++)                                                                   \
        GEMM_UNROLL                                                                                \
    for (int h = 0; h < NV; h++)                                                                   \
        acc[i][h] = ZERO();                                                                        \
    for (int64_t q = 0; q < kc; q++, A_NEXT, bp += ldb) {                                          \
        V bv[NV];                                                                                  \
        GEMM_UNROLL                                                                                \
        for (int h = 0; h < NV; h++)                                                               \
            bv[h] = LOAD(bp + h * W);                                                              \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++) {                                                             \
            V a_iq = SET1(A_IQ);                                                                   \
            GEMM_UNROLL                                                                            \
            for (int h = 0; h < NV; h++)                                                           \
                acc[i][h] = FMA(a_iq, bv[h], acc[i][h]);                                           \
        }                                                                                          \
    }                                                                                              \
    if (!epi) {                                                                                    \
        GEMM_UNROLL                                                                                \
        for (int i = 0; i < MR; i++)                                                               \
            GEMM_UNROLL                                                                            \
        for (int h = 0; h < NV; h++) {                                                             \
            T *ci = c + i * ldc + h * W;                                                           \
            STORE(ci, add ? ADD(LOAD(ci), acc[i][h]) : acc[i][h]);                                 \
        }                                                                                          \
        return;                                                                                    \
    }                                                                                              \
    /* the epilogue as separate add and relu ops compute it */                                     \
    const T *col = epi->col, *row = epi->row;                                                      \
    GEMM_UNROLL                                                                                    \
    for (int i = 0; i < MR; i++)                                                                   \
        GEMM_UNROLL                                                                                \
    for (int h = 0; h < NV; h++) {                                                                 \
        T *ci = c + i * ldc + h * W;                                                               \
        V x = add ? ADD(LOAD(ci), acc[i][h]) : acc[i][h];                                          \
        if (col)                                                                                   \
            x = ADD(x, LOAD(col + h * W));                                                         \
        if (row)                                                                                   \
            x = ADD(x, SET1(row[i]));                                                              \
        STORE(ci, epi->relu ? RELU(x) : x);                                                        \
    }

/* micro_SUF reads a packed A panel, or MR columns of A in place (each
 * contiguous, astep apart); micro_SUF_rows reads MR rows of A in place, row
 * i at ap + i*lda, contiguous along k */
#define DEFINE_MICRO_SIMD(SUF, TARGET, MR, NV, ...) DEFINE_MICRO_SIMD_(SUF, TARGET, MR, NV, __VA_ARGS__)
#define DEFINE_MICRO_SIMD_(SUF, TARGET, MR, NV, T, V, W, LOAD, SET1, FMA, ADD, STORE, ZERO, RELU)  \
    TARGET static void micro_##SUF(int64_t kc, const void *restrict ap_, int64_t astep,            \
                                   const void *restrict bp_, int64_t ldb, void *restrict c_,       \
                                   int64_t ldc, bool add, const gemm_epi *epi)                     \
    {                                                                                              \
        const T *restrict ap = ap_;                                                                \
        MICRO_SIMD_BODY(T, V, W, MR, NV, LOAD, SET1, FMA, ADD, STORE, ZERO, RELU, ap[i],           \
                        ap += astep)                                                               \
    }                                                                                              \
    TARGET static void micro_##SUF##_rows(                                                         \
        int64_t kc, const void *restrict ap_, int64_t lda, const void *restrict bp_, int64_t ldb,  \
        void *restrict c_, int64_t ldc, bool add, const gemm_epi *epi)                             \
    {                                                                                              \
        /* rows 0..5 from ap, 6..11 from ap6 (the panel has them all): two                         \
         * bases and five offsets stay in registers, one offset per row                            \
         * does not */                                                                             \
        _Static_assert(MR <= 12, "rows 0..11 only");                                               \
        const T *restrict ap = ap_, *restrict ap6 = MR > 6 ? ap + 6 * lda : ap;                    \
        MICRO_SIMD_BODY(T, V, W, MR, NV, LOAD, SET1, FMA, ADD, STORE, ZERO, RELU,                  \
                        (i < 6 ? ap : ap6)[(i % 6) * lda], (ap++, ap6++))                          \
    }

/* relu's value x <= 0 ? +0 : x (NaN stays) in each family's vectors */
#define RELU_AVX2_PS(x) _mm256_andnot_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LE_OQ), x)
#define RELU_AVX2_PD(x) _mm256_andnot_pd(_mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LE_OQ), x)
#define RELU_AVX512_PS(x)                                                                          \
    _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLE_UQ), x)
#define RELU_AVX512_PD(x)                                                                          \
    _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_NLE_UQ), x)

/* element type, vector type and width, and intrinsics of each family */
#define SIMD_AVX2_F32                                                                              \
    float, __m256, 8, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,             \
        _mm256_storeu_ps, _mm256_setzero_ps, RELU_AVX2_PS
#define SIMD_AVX2_F64                                                                              \
    double, __m256d, 4, _mm256_loadu_pd, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd,           \
        _mm256_storeu_pd, _mm256_setzero_pd, RELU_AVX2_PD
#define SIMD_AVX512_F32                                                                            \
    float, __m512, 16, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,            \
        _mm512_storeu_ps, _mm512_setzero_ps, RELU_AVX512_PS
#define SIMD_AVX512_F64                                                                            \
    double, __m512d, 8, _mm512_loadu_pd, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd,           \
        _mm512_storeu_pd, _mm512_setzero_pd, RELU_AVX512_PD

/* MR x two vectors, and MR x one vector for a narrow C */
DEFINE_MICRO_SIMD(f32_avx2, GEMM_AVX2, 6, 2, SIMD_AVX2_F32)
DEFINE_MICRO_SIMD(f64_avx2, GEMM_AVX2, 6, 2, SIMD_AVX2_F64)
DEFINE_MICRO_SIMD(f32_avx512, GEMM_AVX512, 12, 2, SIMD_AVX512_F32)
DEFINE_MICRO_SIMD(f64_avx512, GEMM_AVX512, 12, 2, SIMD_AVX512_F64)
DEFINE_MICRO_SIMD(f32_avx2_1, GEMM_AVX2, 12, 1, SIMD_AVX2_F32)
DEFINE_MICRO_SIMD(f64_avx2_1, GEMM_AVX2, 12, 1, SIMD_AVX2_F64)
DEFINE_MICRO_SIMD(f32_avx512_1, GEMM_AVX512, 12, 1, SIMD_AVX512_F32)
DEFINE_MICRO_SIMD(f64_avx512_1, GEMM_AVX512, 12, 1, SIMD_AVX512_F64)
/* 8 x two vectors: a C of 8, 16, 32 or 64 rows in whole tiles */
DEFINE_MICRO_SIMD(f32_avx512_8, GEMM_AVX512, 8, 2, SIMD_AVX512_F32)
DEFINE_MICRO_SIMD(f64_avx512_8, GEMM_AVX512, 8, 2, SIMD_AVX512_F64)
#endif

/* The tiles a plan chooses from (gemm_plan_for): the widest, one of a
 * single vector for a narrow C, and one of fewer rows and two vectors for
 * a short C (AVX-512 only: AVX2's 16 registers hold no more than 6 x two
 * vectors of sums; the other families repeat their widest tile). */
enum { TILE_WIDE, TILE_NARROW, TILE_SHORT, TILE_KINDS };

/* The kernels by [isa][dtype == NB_F64][tile kind] */
// clang-format off
static const gemm_kernel gemm_kernels[NBK_GEMM_ISA_COUNT][2][TILE_KINDS] = {
#define PORTABLE_F32 {4, 16, 4, micro_f32_c, pack_a_f32_4, pack_b_f32_16, NULL, NULL, 1.0}
#define PORTABLE_F64 {4, 4, 2, micro_f64_c, pack_a_f64_4, pack_b_f64_4, NULL, NULL, 1.0}
    [NBK_GEMM_PORTABLE] = {{PORTABLE_F32, PORTABLE_F32, PORTABLE_F32},
                           {PORTABLE_F64, PORTABLE_F64, PORTABLE_F64}},
#if GEMM_X86
#define AVX2_F32 {6, 16, 8, micro_f32_avx2, pack_a_f32_6, pack_b_f32_16x, micro_f32_avx2_rows, tile_to_ct_f32, 1.0}
#define AVX2_F64 {6, 8, 4, micro_f64_avx2, pack_a_f64_6, pack_b_f64_8, micro_f64_avx2_rows, tile_to_ct_f64, 1.0}
    [NBK_GEMM_AVX2] = {{AVX2_F32,
                        {12, 8, 8, micro_f32_avx2_1, pack_a_f32_12, pack_b_f32_8,
                         micro_f32_avx2_1_rows, tile_to_ct_f32, COST_NARROW},
                        AVX2_F32},
                       {AVX2_F64,
                        {12, 4, 4, micro_f64_avx2_1, pack_a_f64_12, pack_b_f64_4x,
                         micro_f64_avx2_1_rows, tile_to_ct_f64, COST_NARROW},
                        AVX2_F64}},
    [NBK_GEMM_AVX512] = {{{12, 32, 16, micro_f32_avx512, pack_a_f32_12, pack_b_f32_32,
                           micro_f32_avx512_rows, tile_to_ct_f32, 1.0},
                          {12, 16, 16, micro_f32_avx512_1, pack_a_f32_12, pack_b_f32_16x,
                           micro_f32_avx512_1_rows, tile_to_ct_f32, COST_NARROW},
                          {8, 32, 16, micro_f32_avx512_8, pack_a_f32_8, pack_b_f32_32,
                           micro_f32_avx512_8_rows, tile_to_ct_f32, COST_SHORT}},
                         {{12, 16, 8, micro_f64_avx512, pack_a_f64_12, pack_b_f64_16,
                           micro_f64_avx512_rows, tile_to_ct_f64, 1.0},
                          {12, 8, 8, micro_f64_avx512_1, pack_a_f64_12, pack_b_f64_8,
                           micro_f64_avx512_1_rows, tile_to_ct_f64, COST_NARROW},
                          {8, 16, 8, micro_f64_avx512_8, pack_a_f64_8, pack_b_f64_16,
                           micro_f64_avx512_8_rows, tile_to_ct_f64, COST_SHORT}}},
#undef AVX2_F32
#undef AVX2_F64
#endif
#undef PORTABLE_F32
#undef PORTABLE_F64
};
// clang-format on

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
    bool transposed;    /* v is C^T = op(B)^T·op(A)^T */
    bool accumulate;    /* C += the product */
    const void *bias;   /* the epilogue (nbk_gemm): bias of C's columns, or NULL */
    bool bias_rows;     /* bias of C's rows instead */
    bool relu;          /* and relu */
    bool a_rows;        /* whole MR-row panels of op(A) read in place: */
    bool a_cols;        /* by columns (micro), else by rows (micro_rows) */
    bool b_rows;        /* whole NR-column panels of op(B) read in place */
    int threads;        /* threads the product is worth */
    bool split_n;       /* threads take runs of NR-column panels of C, else of MR-row panels */
    bool dynamic;       /* runs of `unit` panels taken one after another, else one run each */
    bool cache;         /* each thread packs all of op(A) (split_n) or op(B) once */
    int64_t unit;       /* panels per run when dynamic */
    int64_t mc, kc, nc; /* block sizes */
    size_t a_bytes;     /* a packed MC x KC block of op(A), or all of it */
    size_t b_bytes;     /* a packed KC x NC block of op(B), or all of it */
} gemm_plan;

/* The most elements of a side of `len` in whole panels of `unit` that one of
 * `threads` threads gets (panels shared out as part() does) */
static int64_t part_size(int64_t len, int64_t unit, int threads)
{
    int64_t panels = (len + unit - 1) / unit;
    return (panels + threads - 1) / threads * unit;
}

/* Thread tid's run [*lo, *hi) of a side of `len` in whole panels of `unit`,
 * of `team` threads (empty when there are fewer panels than threads) */
static void part(int64_t len, int64_t unit, int tid, int team, int64_t *lo, int64_t *hi)
{
    int64_t panels = (len + unit - 1) / unit;
    *lo = panels * tid / team * unit;
    *hi = min64(len, panels * (tid + 1) / team * unit);
}

/*
 * The cost model, in multiply-adds of the micro-kernel (tiles count whole,
 * padding included). Moving an element costs about this many multiply-adds
 * per SIMD lane (timed with AVX2 and AVX-512 kernels): packing by copying
 * contiguous runs, packing through transposes in registers (or writing a
 * tile into a C^T), and element by element.
 */
#define COST_COPY 0.6
#define COST_TRANSPOSE 1.0
#define COST_SCALAR 2.0

/* Cost of packing `len` rows of op(A) (or columns of op(B)) with strides
 * rs (between them) and cs (along k) */
static double pack_cost(const gemm_kernel *kr, int64_t rs, int64_t cs, double len, double k)
{
    double per = cs == 1 ? COST_TRANSPOSE : rs == 1 ? COST_COPY : COST_SCALAR;
    if (!kr->tile_to_ct) /* the portable family copies element by element */
        per = COST_SCALAR;
    return per * kr->lanes * len * k;
}

/* Cost of `rows` x `cols` of the C of view v with kernel kr: the tiles, the
 * packing of op(A) (of a last, partial panel only with a_rows) and op(B)
 * (likewise with b_rows), and the writing of C^T tiles */
static double part_cost(const gemm_view *v, const gemm_kernel *kr, bool a_rows, bool b_rows,
                        double rows, double cols, int64_t slices)
{
    double k = (double)v->k, mr = kr->mr, nr = kr->nr;
    /* in floating point: divisions of int64_t take longer than the rest */
    double tiles_m = (double)(int64_t)((rows + mr - 1) / mr),
           tiles_n = (double)(int64_t)((cols + nr - 1) / nr);
    double cost = tiles_m * mr * tiles_n * nr * k * kr->cell_cost;
    double last = rows - (double)(int64_t)(rows / mr) * mr;
    double last_b = cols - (double)(int64_t)(cols / nr) * nr;
    cost += pack_cost(kr, v->rs_a, v->cs_a, a_rows ? last : rows, k);
    cost += pack_cost(kr, v->cs_b, v->rs_b, b_rows ? last_b : cols, k);
    if (v->rs_c == 1)
        cost += (kr->tile_to_ct ? COST_TRANSPOSE : COST_SCALAR) * kr->lanes * rows * cols *
                (double)slices;
    return cost;
}

/* The view of C^T = op(B)^T·op(A)^T */
static gemm_view transposed(const gemm_view *t)
{
    return (gemm_view){.m = t->n,
                       .n = t->m,
                       .k = t->k,
                       .a = t->b,
                       .b = t->a,
                       .c = t->c,
                       .rs_a = t->cs_b,
                       .cs_a = t->rs_b,
                       .rs_b = t->cs_a,
                       .cs_b = t->rs_a,
                       .rs_c = t->cs_c,
                       .cs_c = t->rs_c};
}

/* Read whole panels of op(A) in place? When its rows are contiguous along k
 * (micro_rows), or its columns are (micro, astep the stride along k), and
 * C is not wide: a packed panel pays off when many panels of op(B) use it
 * (for 1024 columns, in place and packed time alike). */
static bool use_a_rows(const gemm_view *v, const gemm_kernel *kr)
{
    return kr->micro_rows && v->cs_a == 1 && v->n <= GEMM_AROWS_N;
}

static bool use_a_cols(const gemm_view *v)
{
    return v->rs_a == 1 && v->cs_a != 1 && v->n <= GEMM_AROWS_N;
}

/* Read whole panels of op(B) in place? When its rows are contiguous and C
 * is short: a packed panel pays off when many panels of op(A) use it. */
static bool use_b_rows(const gemm_view *v)
{
    return v->cs_b == 1 && v->m <= GEMM_BROWS_M;
}

/* The library's workers (nbc_parallel) spin a while after each job, so
 * the products of a step find them awake: two threads beat one from about
 * 64x64x64 on a 2-core VM (OpenMP's sleeping team, OMP_WAIT_POLICY=PASSIVE,
 * took 25-60 us to wake: two threads paid only from about 12e6
 * multiply-adds with AVX-512 floats, 6e6 with AVX2). With these limits on
 * the workers, P1 at 2 threads against OpenBLAS (SkylakeX kernels, same
 * runs, load average 8-9 on the VM): 1.24 on 128x784x256, 1.41 on
 * 128x256x128, 1.10 on 128x128x10, 1.03 on 1024^3 (bench/README.md). A
 * thread packs an operand whole up to all of a 128 x 4096 op(A) of floats. */
const nbk_gemm_limits nbk_gemm_limits_default = {.thread_work = 2.5e5, .cache_bytes = 2 << 20};

static const nbk_gemm_limits *default_limits(void)
{
    return &nbk_gemm_limits_default;
}

static gemm_plan plan_compute(const nbk_gemm *p, int threads, nbk_gemm_isa isa,
                              const nbk_gemm_limits *lim)
{
    gemm_plan pl = {
        .accumulate = p->accumulate, .bias = p->bias, .bias_rows = p->bias_rows, .relu = p->relu};
    size_t elem = nb_dtype_size(p->dtype);
    int64_t k = p->k > 0 ? p->k : 1;
    gemm_view v = {.m = p->m > 0 ? p->m : 1,
                   .n = p->n > 0 ? p->n : 1,
                   .k = k,
                   .a = p->a,
                   .b = p->b,
                   .c = p->c,
                   .rs_a = p->trans_a ? 1 : p->lda,
                   .cs_a = p->trans_a ? p->lda : 1,
                   .rs_b = p->trans_b ? 1 : p->ldb,
                   .cs_b = p->trans_b ? p->ldb : 1,
                   .rs_c = p->ldc,
                   .cs_c = 1};
    /* k in equal slices of at most KC (784 = 2 x 392, not 384 + 384 + 16);
     * the slices fix the order of each sum, so they depend on nothing else */
    int64_t slices = (k + GEMM_KC - 1) / GEMM_KC;
    pl.kc = (k + slices - 1) / slices;

    /* C or C^T, with the two-vector or the one-vector tile: the cheapest */
    double best = 0;
    for (int t = 0; t < 2; t++)
        for (int w = 0; w < TILE_KINDS; w++) {
            const gemm_kernel *kr = &gemm_kernels[isa][p->dtype == NB_F64][w];
            gemm_view vt = t ? transposed(&v) : v;
            bool a_cols = use_a_cols(&vt), a_rows = use_a_rows(&vt, kr) || a_cols;
            bool b_rows = use_b_rows(&vt);
            double cost = part_cost(&vt, kr, a_rows, b_rows, (double)vt.m, (double)vt.n, slices);
            if ((t == 0 && w == 0) || cost < best) {
                best = cost;
                pl.kern = kr;
                pl.v = vt;
                pl.a_rows = a_rows;
                pl.a_cols = a_cols;
                pl.b_rows = b_rows;
                pl.transposed = t;
            }
        }
    const gemm_kernel *kr = pl.kern;
    int64_t m = pl.v.m, n = pl.v.n;
    pl.v.m = pl.transposed ? p->n : p->m, pl.v.n = pl.transposed ? p->m : p->n, pl.v.k = p->k;

    /* one thread per thread_work multiply-adds (of 16-lane vectors; as many
     * take half as long with 8 lanes), at most `threads` */
    double work = (double)m * (double)n * (double)k, per = lim->thread_work * kr->lanes / 16;
    pl.threads = threads;
    if (work < per * threads)
        pl.threads = work < per * 2 ? 1 : (int)(work / per);
    int64_t rows = round_up(m, kr->mr), cols = round_up(n, kr->nr);
    pl.split_n = pl.dynamic = pl.cache = false;
    pl.unit = 1;
    if (pl.threads > 1) {
        /* runs of row panels or of column panels of C, whichever costs the
         * busiest thread least: each thread packs all of op(A) (but what it
         * reads in place) when they split n, all of op(B) when they split m */
        double along_n = part_cost(&pl.v, kr, pl.a_rows, pl.b_rows, (double)m,
                                   (double)part_size(n, kr->nr, pl.threads), slices);
        double along_m = part_cost(&pl.v, kr, false, pl.b_rows,
                                   (double)part_size(m, kr->mr, pl.threads), (double)n, slices);
        pl.split_n = along_n < along_m;
        /* Short runs taken one after another when a thread needs no whole
         * operand (split along n, op(A) read in place) or can pack it once
         * into its scratch: the thread that starts first (waking another
         * takes tens of microseconds) or that is not held up by the
         * machine's other work takes more. Otherwise one run per thread. */
        int64_t whole = (pl.split_n ? rows : cols) * pl.kc * slices;
        pl.cache = !(pl.split_n && pl.a_rows) && (double)whole * (double)elem <= lim->cache_bytes;
        pl.dynamic = pl.cache || (pl.split_n && pl.a_rows);
        if (pl.cache && !pl.split_n) /* op(B) packed whole */
            pl.b_rows = false;
        int64_t panels = pl.split_n ? cols / kr->nr : rows / kr->mr;
        if (pl.dynamic)
            pl.unit = (panels + GEMM_UNITS * pl.threads - 1) / (GEMM_UNITS * pl.threads);
        if (pl.split_n)
            cols = pl.dynamic ? pl.unit * kr->nr : part_size(n, kr->nr, pl.threads);
        else
            rows = pl.dynamic ? pl.unit * kr->mr : part_size(m, kr->mr, pl.threads);
    }
    pl.mc = min64(GEMM_MC / kr->mr * kr->mr, rows);
    pl.nc = min64(GEMM_NC, cols);
    int64_t a_elems = pl.mc * pl.kc, b_elems = pl.kc * pl.nc;
    if (pl.cache && pl.split_n)
        a_elems = round_up(m, kr->mr) * pl.kc * slices;
    else if (pl.cache)
        b_elems = round_up(n, kr->nr) * pl.kc * slices;
    pl.a_bytes = (size_t)round_up(a_elems * (int64_t)elem, NB_ALIGN);
    pl.b_bytes = (size_t)round_up(b_elems * (int64_t)elem, NB_ALIGN);
    return pl;
}

/* What a plan depends on: everything of the product but where its operands
 * are (all fields set, padding zeroed, so that keys compare with memcmp) */
typedef struct plan_key {
    int64_t m, n, k, lda, ldb, ldc;
    double thread_work, cache_bytes;
    int dtype, threads, isa;
    unsigned char trans_a, trans_b, accumulate, bias, bias_rows, relu;
} plan_key;

/* The plans of each thread's recent products: a training step runs the
 * same few shapes again and again, and planning one (six tilings costed)
 * took 2.5 % of a small network's step. Sets of two chosen by a hash of the
 * key, the one used less recently replaced (an epoch's last, shorter batch
 * then does not push out a full batch's plan of the same set). */
#define PLAN_SETS 32
static _Thread_local struct {
    struct {
        bool used;
        plan_key key;
        gemm_plan plan;
    } way[2];
    int last; /* the way used last */
} plan_cache[PLAN_SETS];

static gemm_plan gemm_plan_for(const nbk_gemm *p, int threads, nbk_gemm_isa isa,
                               const nbk_gemm_limits *lim)
{
    plan_key key;
    memset(&key, 0, sizeof key);
    key.m = p->m, key.n = p->n, key.k = p->k, key.lda = p->lda, key.ldb = p->ldb, key.ldc = p->ldc;
    key.thread_work = lim->thread_work, key.cache_bytes = lim->cache_bytes;
    key.dtype = (int)p->dtype, key.threads = threads, key.isa = (int)isa;
    key.trans_a = p->trans_a, key.trans_b = p->trans_b, key.accumulate = p->accumulate;
    key.bias = p->bias != NULL, key.bias_rows = p->bias_rows, key.relu = p->relu;
    /* one multiply per field but the limits mixes them (hashing every byte
     * took longer than the plan): a convolution's products differ in
     * accumulate only, and must not share a set with a third shape */
    uint64_t words[7] = {(uint64_t)key.m,
                         (uint64_t)key.n,
                         (uint64_t)key.k,
                         (uint64_t)key.lda,
                         (uint64_t)key.ldb,
                         (uint64_t)key.ldc,
                         (uint64_t)(key.trans_a | key.trans_b << 1 | key.accumulate << 2 |
                                    key.bias << 3 | key.bias_rows << 4 | key.relu << 5 |
                                    key.dtype << 6 | key.isa << 8 | (unsigned)key.threads << 10)};
    uint64_t h = 0;
    for (int i = 0; i < 7; i++)
        h = (h + words[i]) * 0x9E3779B97F4A7C15u;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9u; /* splitmix64's finaliser */
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBu;
    unsigned set = (unsigned)((h ^ (h >> 31)) % PLAN_SETS);
    int w = 0;
    while (w < 2 && !(plan_cache[set].way[w].used &&
                      memcmp(&plan_cache[set].way[w].key, &key, sizeof key) == 0))
        w++;
    gemm_plan pl;
    if (w < 2) {
        pl = plan_cache[set].way[w].plan;
    } else {
        pl = plan_compute(p, threads, isa, lim);
        w = 1 - plan_cache[set].last;
        plan_cache[set].way[w].used = true;
        plan_cache[set].way[w].key = key;
        plan_cache[set].way[w].plan = pl;
    }
    plan_cache[set].last = w;
    /* this product's operands */
    pl.v.a = pl.transposed ? p->b : p->a;
    pl.v.b = pl.transposed ? p->a : p->b;
    pl.v.c = p->c;
    pl.bias = p->bias;
    return pl;
}

/* C (mr x nr, strides rs, cs) = or += the first rows and columns of a
 * tile of T with row stride ldt */
#define TILE_TO_C(T)                                                                               \
    do {                                                                                           \
        const T *t = tile;                                                                         \
        T *cc = c;                                                                                 \
        if (cs == 1 && add) /* rows of C contiguous: loops the compiler vectorizes */              \
            for (int64_t i = 0; i < mr; i++)                                                       \
                for (int64_t j = 0; j < nr; j++)                                                   \
                    cc[i * rs + j] += t[i * ldt + j];                                              \
        else if (cs == 1)                                                                          \
            for (int64_t i = 0; i < mr; i++)                                                       \
                for (int64_t j = 0; j < nr; j++)                                                   \
                    cc[i * rs + j] = t[i * ldt + j];                                               \
        else                                                                                       \
            for (int64_t i = 0; i < mr; i++)                                                       \
                for (int64_t j = 0; j < nr; j++) {                                                 \
                    T *e = cc + i * rs + j * cs;                                                   \
                    *e = add ? *e + t[i * ldt + j] : t[i * ldt + j];                               \
                }                                                                                  \
    } while (0)

static void tile_to_c(bool f64, const void *tile, int64_t ldt, void *c, int64_t rs, int64_t cs,
                      int64_t mr, int64_t nr, bool add)
{
    if (f64)
        TILE_TO_C(double);
    else
        TILE_TO_C(float);
}

/* The epilogue (nbk_gemm) on mr x nr elements of C (strides rs, cs), the
 * bias of element (i,j) at bias[i*bs_i + j*bs_j]: the add, then the relu,
 * each as its own op computes it */
#define EPILOGUE(T)                                                                                \
    do {                                                                                           \
        T *cc = c;                                                                                 \
        const T *b = bias;                                                                         \
        for (int64_t i = 0; i < mr; i++) {                                                         \
            T *restrict row = cc + i * rs;                                                         \
            const T *bi = b ? b + i * bs_i : NULL;                                                 \
            if (cs == 1 && bs_j <= 1) {                 /* a row of C contiguous: vectorized */    \
                T bias_i = bi && bs_j == 0 ? bi[0] : 0; /* one bias for the row */                 \
                for (int64_t j = 0; bi && bs_j == 1 && j < nr; j++)                                \
                    row[j] += bi[j];                                                               \
                for (int64_t j = 0; bi && bs_j == 0 && j < nr; j++)                                \
                    row[j] += bias_i;                                                              \
                for (int64_t j = 0; relu && j < nr; j++)                                           \
                    row[j] = row[j] <= 0 ? 0 : row[j];                                             \
            } else {                                                                               \
                for (int64_t j = 0; j < nr; j++) {                                                 \
                    T x = row[j * cs];                                                             \
                    if (bi)                                                                        \
                        x += bi[j * bs_j];                                                         \
                    row[j * cs] = relu && x <= 0 ? 0 : x;                                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Compiled for AVX-512 and AVX2 too: the loops of a tile's rows are most
 * of the time a product's epilogue takes, 4 floats at a time otherwise. */
NBC_WIDE_CLONES static void epilogue(bool f64, void *c, int64_t rs, int64_t cs, const void *bias,
                                     int64_t bs_i, int64_t bs_j, bool relu, int64_t mr, int64_t nr)
{
    if (f64)
        EPILOGUE(double);
    else
        EPILOGUE(float);
}

/* The same, compiled once: for a C so small that the call through the
 * clones' dispatch costs more than wider vectors save */
static void epilogue_small(bool f64, void *c, int64_t rs, int64_t cs, const void *bias,
                           int64_t bs_i, int64_t bs_j, bool relu, int64_t mr, int64_t nr)
{
    if (f64)
        EPILOGUE(double);
    else
        EPILOGUE(float);
}

void nbk_gemm_epilogue(const nbk_gemm *p)
{
    if (!p->bias && !p->relu)
        return;
    bool f64 = p->dtype == NB_F64;
    if (p->m * p->n <= 256)
        epilogue_small(f64, p->c, p->ldc, 1, p->bias, p->bias_rows, !p->bias_rows, p->relu, p->m,
                       p->n);
    else
        epilogue(f64, p->c, p->ldc, 1, p->bias, p->bias_rows, !p->bias_rows, p->relu, p->m, p->n);
}

/* The epilogue of plan pl for the micro-kernel on the whole tile at (i,j)
 * of its view (elements of es bytes): the bias goes by C's columns (or
 * rows, bias_rows), which are the view's rows (columns) when it is
 * transposed */
static gemm_epi tile_epi(const gemm_plan *pl, int64_t es, int64_t i, int64_t j)
{
    bool by_i = pl->transposed != pl->bias_rows; /* the bias goes along the view's rows */
    const char *bias = pl->bias ? (const char *)pl->bias + (by_i ? i : j) * es : NULL;
    return (gemm_epi){.col = by_i ? NULL : bias, .row = by_i ? bias : NULL, .relu = pl->relu};
}

/* The same on the mr x nr elements of C at (i,j) of its view, at cij, after
 * the kernel stored them (a tile that went through a buffer) */
static void tile_epilogue(const gemm_plan *pl, bool f64, void *cij, int64_t i, int64_t j,
                          int64_t mr, int64_t nr)
{
    const gemm_view *v = &pl->v;
    int64_t es = f64 ? 8 : 4;
    bool by_i = pl->transposed != pl->bias_rows; /* the bias goes along the view's rows */
    const char *bias = pl->bias ? (const char *)pl->bias + (by_i ? i : j) * es : NULL;
    epilogue(f64, cij, v->rs_c, v->cs_c, bias, by_i, !by_i, pl->relu, mr, nr);
}

/* Pack all of op(A) (a) or op(B) into dst, slice after slice of k, each
 * slice in the panels the blocks of gemm_block read */
static void pack_whole(const gemm_plan *pl, bool a, char *dst, int64_t es)
{
    const gemm_view *v = &pl->v;
    const gemm_kernel *kr = pl->kern;
    int64_t len = a ? v->m : v->n, w = a ? kr->mr : kr->nr;
    for (int64_t pc = 0; pc < v->k; pc += pl->kc) {
        int64_t kc = min64(pl->kc, v->k - pc);
        for (int64_t i = 0; i < len; i += w, dst += w * kc * es)
            (a ? kr->pack_a : kr->pack_b)(dst, v, i, min64(w, len - i), pc, kc);
    }
}

/* Rows [i_lo,i_hi) x columns [j_lo,j_hi) of C, blocked. Blocks of op(A)
 * and op(B) are packed into apack and bpack, or read from acache or bcache
 * where the whole matrix is packed (pack_whole). */
static void gemm_block(const gemm_plan *pl, bool f64, int64_t i_lo, int64_t i_hi, int64_t j_lo,
                       int64_t j_hi, char *apack, const char *acache, char *bpack,
                       const char *bcache)
{
    const gemm_view *v = &pl->v;
    const gemm_kernel *kr = pl->kern;
    int64_t mr_max = kr->mr, nr_max = kr->nr, es = f64 ? 8 : 4;
    int64_t rows = round_up(v->m, mr_max), cols = round_up(v->n, nr_max);
    _Alignas(64) char tile[GEMM_TILE];
    char *c = v->c;
    for (int64_t jc = j_lo; jc < j_hi; jc += pl->nc) {
        int64_t nc = min64(pl->nc, j_hi - jc);
        for (int64_t pc = 0; pc < v->k; pc += pl->kc) {
            int64_t kc = min64(pl->kc, v->k - pc);
            bool add = pc > 0 || pl->accumulate;
            bool last = pc + kc == v->k && (pl->bias || pl->relu); /* then the epilogue */
            const char *bblock = bpack;
            bool b_rows = pl->b_rows && !bcache;
            if (bcache) {
                bblock = bcache + (pc * cols + jc * kc) * es;
            } else {
                /* all panels, or (b_rows) only a last one of fewer columns */
                for (int64_t jr = b_rows ? nc / nr_max * nr_max : 0; jr < nc; jr += nr_max)
                    kr->pack_b(bpack + jr * kc * es, v, jc + jr, min64(nr_max, nc - jr), pc, kc);
            }
            for (int64_t i0 = i_lo; i0 < i_hi; i0 += pl->mc) {
                int64_t mc = min64(pl->mc, i_hi - i0);
                const char *ablock = apack;
                if (acache) {
                    ablock = acache + (pc * rows + i0 * kc) * es;
                } else {
                    /* all panels, or (a_rows) only a last one of fewer rows */
                    for (int64_t ir = pl->a_rows ? mc / mr_max * mr_max : 0; ir < mc; ir += mr_max)
                        kr->pack_a(apack + ir * kc * es, v, i0 + ir, min64(mr_max, mc - ir), pc,
                                   kc);
                }
                for (int64_t jr = 0; jr < nc; jr += nr_max) {
                    int64_t nr = min64(nr_max, nc - jr);
                    bool b_in_place = b_rows && nr == nr_max;
                    const char *bp = b_in_place ? (const char *)v->b + (pc * v->rs_b + jc + jr) * es
                                                : bblock + jr * kc * es;
                    int64_t ldb = b_in_place ? v->rs_b : nr_max;
                    for (int64_t ir = 0; ir < mc; ir += mr_max) {
                        const char *ap = ablock + ir * kc * es;
                        int64_t mr = min64(mr_max, mc - ir);
                        bool direct = mr == mr_max && nr == nr_max && v->cs_c == 1;
                        char *cij = c + ((i0 + ir) * v->rs_c + (jc + jr) * v->cs_c) * es;
                        char *dst = direct ? cij : tile;
                        int64_t ldd = direct ? v->rs_c : nr_max;
                        bool dst_add = direct && add;
                        /* a whole tile's epilogue as the kernel stores it */
                        gemm_epi epi_tile;
                        const gemm_epi *epi = NULL;
                        if (last && direct) {
                            epi_tile = tile_epi(pl, es, i0 + ir, jc + jr);
                            epi = &epi_tile;
                        }
                        const char *a_at =
                            (const char *)v->a + ((i0 + ir) * v->rs_a + pc * v->cs_a) * es;
                        if (pl->a_rows && !acache && mr == mr_max && pl->a_cols)
                            kr->micro(kc, a_at, v->cs_a, bp, ldb, dst, ldd, dst_add, epi);
                        else if (pl->a_rows && !acache && mr == mr_max)
                            kr->micro_rows(kc, a_at, v->rs_a, bp, ldb, dst, ldd, dst_add, epi);
                        else
                            kr->micro(kc, ap, mr_max, bp, ldb, dst, ldd, dst_add, epi);
                        if (!direct && v->rs_c == 1 && kr->tile_to_ct)
                            kr->tile_to_ct(tile, nr_max, cij, v->cs_c, mr, nr, add);
                        else if (!direct)
                            tile_to_c(f64, tile, nr_max, cij, v->rs_c, v->cs_c, mr, nr, add);
                        if (last && !direct)
                            tile_epilogue(pl, f64, cij, i0 + ir, jc + jr, mr, nr);
                    }
                }
            }
        }
    }
}

/* Thread tid's share of the product, of a team of team threads, with its
 * own packing buffers in the tid-th slot of work: one run of row or column
 * panels of C, or (dynamic) runs of pl->unit panels, the next one not yet
 * taken (*next counts them) until none is left. With cache, the thread
 * first packs all of op(A) or op(B), which every run needs. The threads
 * share nothing they write and never wait for each other: on a busy
 * machine a thread that is not running holds up at most the run it has. */
static void gemm_run(const gemm_plan *pl, bool f64, char *work, int tid, int team,
                     _Atomic int64_t *next)
{
    const gemm_view *v = &pl->v;
    int64_t es = f64 ? 8 : 4;
    int64_t w = pl->split_n ? pl->kern->nr : pl->kern->mr, len = pl->split_n ? v->n : v->m;
    char *apack = work + (size_t)tid * (pl->a_bytes + pl->b_bytes), *bpack = apack + pl->a_bytes;
    const char *acache = NULL, *bcache = NULL;
    for (bool first = true;; first = false) {
        int64_t lo, hi;
        if (pl->dynamic) {
            lo = atomic_fetch_add_explicit(next, 1, memory_order_relaxed) * pl->unit * w;
            if (lo >= len)
                return;
            hi = min64(len, lo + pl->unit * w);
        } else {
            if (!first)
                return;
            part(len, w, tid, team, &lo, &hi);
            if (lo >= hi)
                return;
        }
        if (first && pl->cache) {
            pack_whole(pl, pl->split_n, pl->split_n ? apack : bpack, es);
            *(pl->split_n ? &acache : &bcache) = pl->split_n ? apack : bpack;
        }
        if (pl->split_n)
            gemm_block(pl, f64, 0, v->m, lo, hi, apack, acache, bpack, bcache);
        else
            gemm_block(pl, f64, lo, hi, 0, v->n, apack, acache, bpack, bcache);
    }
}

typedef struct gemm_job {
    const gemm_plan *pl;
    bool f64;
    char *work;
    _Atomic int64_t next;
} gemm_job;

static void gemm_task(void *ctx, int t, int n)
{
    gemm_job *j = ctx;
    gemm_run(j->pl, j->f64, j->work, t, n, &j->next);
}

/* Scratch for any plan of p's sizes on up to `threads` threads, with any
 * family and whatever the strides (callers size it from the sizes alone):
 * per thread, a block of op(A) and one of op(B) in the widest tiles (12 x
 * 32), and what a thread may pack whole. */
size_t nbk_gemm_workspace_limits(const nbk_gemm *p, int threads, const nbk_gemm_limits *lim)
{
    if (threads < 1)
        threads = 1;
    lim = lim ? lim : default_limits();
    int64_t es = (int64_t)nb_dtype_size(p->dtype), k = p->k > 0 ? p->k : 1;
    int64_t side = p->m > p->n ? p->m : p->n;
    side = side > 0 ? side : 1;
    int64_t slices = (k + GEMM_KC - 1) / GEMM_KC, kc = (k + slices - 1) / slices;
    int64_t a = min64(GEMM_MC, round_up(side, 12)) * kc * es;
    int64_t b = kc * min64(GEMM_NC, round_up(side, 32)) * es;
    double whole = (double)round_up(side, 32) * (double)(kc * slices * es);
    int64_t cache = threads == 1 ? 0 : (int64_t)(whole < lim->cache_bytes ? whole : lim->cache_bytes);
    size_t per = (size_t)(round_up(a, NB_ALIGN) + round_up(b, NB_ALIGN) + round_up(cache, NB_ALIGN));
    return NB_ALIGN + (size_t)threads * per;
}

size_t nbk_gemm_workspace(const nbk_gemm *p, int threads)
{
    return nbk_gemm_workspace_limits(p, threads, NULL);
}

nbk_gemm_info nbk_gemm_plan_info(const nbk_gemm *p, int threads, nbk_gemm_isa isa,
                                 const nbk_gemm_limits *lim)
{
    if (threads < 1)
        threads = 1;
    if ((int)isa < 0 || isa > nbk_gemm_best_isa())
        isa = nbk_gemm_best_isa();
    gemm_plan pl = gemm_plan_for(p, threads, isa, lim ? lim : default_limits());
    int64_t w = pl.split_n ? pl.kern->nr : pl.kern->mr, len = pl.split_n ? pl.v.n : pl.v.m;
    return (nbk_gemm_info){.threads = pl.threads,
                           .transposed = pl.transposed,
                           .narrow = pl.kern->lanes == pl.kern->nr,
                           .a_in_place = pl.a_rows,
                           .b_in_place = pl.b_rows,
                           .mr = pl.kern->mr,
                           .split_n = pl.split_n,
                           .dynamic = pl.dynamic,
                           .run = pl.dynamic ? min64(len, pl.unit * w)
                                             : min64(len, part_size(len, w, pl.threads))};
}

void nbk_gemm_builtin_limits(const nbk_gemm *p, void *workspace, int threads, nbk_gemm_isa isa,
                             const nbk_gemm_limits *lim)
{
    if (p->m <= 0 || p->n <= 0)
        return;
    size_t elem = nb_dtype_size(p->dtype);
    if (p->k <= 0) { /* an empty sum */
        for (int64_t i = 0; i < p->m && !p->accumulate; i++)
            memset((char *)p->c + (size_t)(i * p->ldc) * elem, 0, (size_t)p->n * elem);
        nbk_gemm_epilogue(p);
        return;
    }
    if (threads < 1)
        threads = 1;
    if ((int)isa < 0 || isa > nbk_gemm_best_isa())
        isa = nbk_gemm_best_isa();
    bool f64 = p->dtype == NB_F64;
    gemm_plan pl = gemm_plan_for(p, threads, isa, lim ? lim : default_limits());
    uintptr_t at = ((uintptr_t)workspace + NB_ALIGN - 1) & ~(uintptr_t)(NB_ALIGN - 1);
    int64_t panels = pl.split_n ? (pl.v.n + pl.kern->nr - 1) / pl.kern->nr
                                : (pl.v.m + pl.kern->mr - 1) / pl.kern->mr;
    gemm_job job = {.pl = &pl, .f64 = f64, .work = (char *)at, .next = 0};
    if (pl.threads == 1 || panels == 1)
        gemm_task(&job, 0, 1);
    else
        nbc_parallel(pl.threads, gemm_task, &job);
}

void nbk_gemm_builtin_isa(const nbk_gemm *p, void *workspace, int threads, nbk_gemm_isa isa)
{
    nbk_gemm_builtin_limits(p, workspace, threads, isa, NULL);
}

void nbk_gemm_builtin(const nbk_gemm *p, void *workspace, int threads)
{
    nbk_gemm_builtin_limits(p, workspace, threads, nbk_gemm_best_isa(), NULL);
}
