/* Winograd F(2x2, 3x3): the three convolution ops of a 3x3 kernel with
 * stride and dilation 1 and one group, in 16 products of C or O channels
 * instead of 36 (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016). docs/conv.md has the formulas.
 *
 * Each output is cut into 2x2 tiles; tile (ty, tx) reads the 4x4 patch of
 * the padded input at rows 2·ty − ph .. + 3 and columns 2·tx − pw .. + 3
 * (zeros outside the input). In 1-D, with the patch d (4), the kernel g (3)
 * and a tile of the output's gradient e (2),
 *   y  = Aᵀ[(G g) ⊙ (Bᵀ d)]           the 2 outputs of the tile
 *   dg = Gᵀ[(A e) ⊙ (Bᵀ d)]           the tile's share of the kernel's gradient
 *   Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G  = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1]      Aᵀ = [1 1 1 0; 0 1 -1 -1]
 * and in 2-D each matrix acts on both axes (U = G g Gᵀ, V = Bᵀ d B, ...).
 * The sums over channels and tiles are products of the built-in GEMM,
 * one for each of the 16 positions ξ of a transformed 4x4 tile:
 *   conv2d            M[ξ] (O x T) = U[ξ] (O x C) · V[ξ] (C x T), y = Aᵀ M A
 *   conv_transpose2d  conv2d of the gradient (padding 2 − p) with the kernel
 *                     turned by 180° and its channels swapped: U'[ξ] (C x O)
 *   weight_grad       dU[ξ] (O x C) = Σ E[ξ] (O x T) · V[ξ]ᵀ, E = A e Aᵀ,
 *                     then dw = Gᵀ dU G
 * where T counts the tiles of a block of whole samples (about WINO_TILES).
 * Blocks run in parallel on the graph's threads (one after the other with
 * the threads inside each product when there are fewer blocks than
 * threads); the weight gradient sums the batch in CONV_CHUNKS fixed runs
 * of samples, then the runs in order, so every element is summed in one
 * order whatever the thread count. The numbers differ from the patch
 * matrix's (conv.c) by rounding: the transforms add and halve. */

#include "conv.h"
#include "gemm.h"

/* Tiles in a block of products (whole samples, at least one): the block's
 * transformed patches and products are then about the size of L2 (1.4 MB
 * for B9's second convolution; 128 tiles timed the same). */
#define WINO_TILES 256
/* Fewer channels make products too thin to gain (B9's first convolution,
 * one input channel, keeps its 9-row patch matrix). */
#define WINO_MIN_CHANNELS 8
/* Most elements of a block's scratch or of the transformed kernel. */
#define WINO_MAX_SCRATCH ((double)(1 << 26))

/* ------------------------------------------------------------ the plan */

/* One op as Winograd products: planes read (x, or the gradient for
 * conv_transpose2d) [n, ci, hi, wi] with padding (ph, pw); planes written
 * [n, co, ho, wo] (for the weight gradient: the output's gradient, read). */
typedef struct wino_run {
    conv_kind kind;
    nb_dtype dt;
    size_t es;
    int64_t n, ci, hi, wi, ph, pw, co, ho, wo;
    int64_t th, tw, tiles; /* tiles per column, per row, per sample (rows of tw + 1) */
    int64_t per, jobs;     /* samples per block; blocks (or the weight gradient's runs) */
    const char *x;         /* the planes read */
    const char *gy;        /* weight_grad: the output's gradient */
    const char *u;         /* conv2d, conv_transpose2d: the transformed kernel [16][co][ci] */
    char *y;          /* the planes written; weight_grad: the runs' sums dU [jobs][16][co][ci] */
    const char *bias; /* conv2d's bias [co], or NULL */
    bool relu;
    int gemm_threads;
    char *work; /* per task: V, M (or E), the transforms' rows, the GEMM's scratch */
    size_t v_bytes, m_bytes, buf_bytes, per_task;
} wino_run;

/* Tiles of a plane of n rows: ceil(n / 2). */
static int64_t tiles_of(int64_t n)
{
    return (n + 1) / 2;
}

bool nbo_wino_applies(const conv_geom *q, conv_kind kind)
{
    if (q->kh != 3 || q->kw != 3 || q->sh != 1 || q->sw != 1 || q->dh != 1 || q->dw != 1 ||
        q->groups != 1 || q->c < WINO_MIN_CHANNELS || q->o < WINO_MIN_CHANNELS)
        return false;
    if (kind == CONV_INPUT_GRAD && (q->ph > 2 || q->pw > 2))
        return false;
    /* the tiled side: the output (conv2d, weight_grad) or the input */
    int64_t h = kind == CONV_INPUT_GRAD ? q->h : q->oh, w = kind == CONV_INPUT_GRAD ? q->w : q->ow;
    if (h < 4 || w < 4)
        return false;
    double tiles = (double)tiles_of(h) * (double)(tiles_of(w) + 1);
    double block = tiles >= WINO_TILES ? tiles : tiles * (double)(int64_t)(WINO_TILES / tiles);
    return 16.0 * (double)(q->c + q->o) * block <= WINO_MAX_SCRATCH &&
           16.0 * (double)q->c * (double)q->o * (CONV_CHUNKS + 1) <= WINO_MAX_SCRATCH;
}

/* -------------------------------------------------------- the transforms */

/*
 * Tiles are laid out in rows of half = tw + 1 (one more than a row has):
 * tile (ty, tx) of a sample is at ty·half + tx, and each row ends in a
 * spare tile that the products compute and the output ignores (12 % more
 * columns for B9's 14 x 14 planes). In exchange every transform is one loop
 * over the tiles of a plane that reads and writes whole vectors:
 *
 * split_rows: the even and odd columns of the first two padded rows of
 *   each of `trows` tile rows: ev[i][ty·half + k] = X(2·ty + i − ph, 2·k −
 *   pw) and od[i][...] = X(2·ty + i − ph, 2·k + 1 − pw) for i = 0, 1, X zero
 *   outside the plane (one more zero at the end of each, for the spare
 *   tile's read). Rows 2 and 3 of tile row ty are rows 0 and 1 of tile row
 *   ty + 1, so each padded row is split once (the input transform takes one
 *   tile row more), and a tile's 4x4 patch is ev/od[i] at t and t + 1, and
 *   at t + half and t + half + 1.
 * input_tf: V[ξ][t] = (Bᵀ d B)[ξ] of each tile's patch d (ξ = 4·row +
 *   column), into rows `step` apart.
 * grad_tf: E[ξ][t] = (A e Aᵀ)[ξ] of each 2x2 tile e of the output's
 *   gradient (zeros past its edge: the spare tiles' E is 0).
 * output_tf: each 2x2 tile of y = Aᵀ M A, then its bias and ReLU (x <= 0 ?
 *   0 : x, as the separate add and relu ops compute them), written where it
 *   lies in y.
 * kernel_tf: U = G g Gᵀ of each 3x3 kernel, stored at [ξ][o][c] (conv2d)
 *   or turned and at [ξ][c][o] (conv_transpose2d).
 * kernel_grad_tf: dw = Gᵀ dU G of the sum of the runs' dU, in order.
 */
/* 16 rows `step` apart from v, each its own restrict pointer: stores to
 * them do not alias, so the loops over tiles are vectorised */
#define WINO_ROWS(T, v, step)                                                                      \
    T *restrict r0 = v, *restrict r1 = v + step, *restrict r2 = v + 2 * step,                      \
                *restrict r3 = v + 3 * step, *restrict r4 = v + 4 * step,                          \
                *restrict r5 = v + 5 * step, *restrict r6 = v + 6 * step,                          \
                *restrict r7 = v + 7 * step, *restrict r8 = v + 8 * step,                          \
                *restrict r9 = v + 9 * step, *restrict r10 = v + 10 * step,                        \
                *restrict r11 = v + 11 * step, *restrict r12 = v + 12 * step,                      \
                *restrict r13 = v + 13 * step, *restrict r14 = v + 14 * step,                      \
                *restrict r15 = v + 15 * step;
#define WINO_STORE(t, w)                                                                           \
    r0[t] = w[0], r1[t] = w[1], r2[t] = w[2], r3[t] = w[3], r4[t] = w[4], r5[t] = w[5],            \
    r6[t] = w[6], r7[t] = w[7], r8[t] = w[8], r9[t] = w[9], r10[t] = w[10], r11[t] = w[11],        \
    r12[t] = w[12], r13[t] = w[13], r14[t] = w[14], r15[t] = w[15];

#define DEFINE_WINO(T, SUF)                                                                        \
    NBC_WIDE_CLONES static void split_rows_##SUF(const wino_run *r, const T *restrict xp,          \
                                                 int64_t hi, int64_t wi,                           \
                                 int64_t ph, int64_t pw, int64_t trows, T *restrict ev,            \
                                 T *restrict od)                                                   \
    {                                                                                              \
        int64_t half = r->tw + 1, len = trows * half + 1;                                          \
        /* columns 2k − pw and 2k − pw + 1 both inside the plane for k0 <= k < k1 */               \
        int64_t k1 = (wi + pw) / 2 < half ? (wi + pw) / 2 : half, k0 = (pw + 1) / 2;               \
        k0 = k0 < k1 ? k0 : k1;                                                                    \
        for (int i = 0; i < 2; i++) {                                                              \
            T *restrict e = ev + i * len, *restrict o = od + i * len;                              \
            for (int64_t ty = 0; ty < trows; ty++, e += half, o += half) {                         \
                int64_t row = 2 * ty + i - ph;                                                     \
                if (row < 0 || row >= hi) {                                                        \
                    for (int64_t k = 0; k < half; k++)                                             \
                        e[k] = o[k] = 0;                                                           \
                    continue;                                                                      \
                }                                                                                  \
                const T *restrict xr = xp + row * wi;                                              \
                for (int64_t k = 0; k < k0; k++) { /* the left edge */                             \
                    int64_t c = 2 * k - pw;                                                        \
                    e[k] = c >= 0 && c < wi ? xr[c] : 0;                                           \
                    o[k] = c + 1 >= 0 && c + 1 < wi ? xr[c + 1] : 0;                               \
                }                                                                                  \
                NBK_PRAGMA(omp simd)                                                               \
                for (int64_t k = k0; k < k1; k++) { /* the inside, without checks */               \
                    e[k] = xr[2 * k - pw];                                                         \
                    o[k] = xr[2 * k - pw + 1];                                                     \
                }                                                                                  \
                for (int64_t k = k1; k < half; k++) { /* the right edge */                         \
                    int64_t c = 2 * k - pw;                                                        \
                    e[k] = c >= 0 && c < wi ? xr[c] : 0;                                           \
                    o[k] = c + 1 >= 0 && c + 1 < wi ? xr[c + 1] : 0;                               \
                }                                                                                  \
            }                                                                                      \
            e[0] = o[0] = 0;                                                                       \
        }                                                                                          \
    }                                                                                              \
    NBC_WIDE_CLONES static void input_tf_##SUF(const T *restrict ev, const T *restrict od,         \
                                               int64_t len, int64_t half, int64_t nv,              \
                                               T *restrict v, int64_t step)                        \
    {                                                                                              \
        /* rows 2 and 3 of tile row ty are rows 0 and 1 of tile row ty + 1 */                      \
        const T *restrict e0 = ev, *restrict e1 = ev + len, *restrict e2 = ev + half,              \
                          *restrict e3 = ev + len + half;                                          \
        const T *restrict o0 = od, *restrict o1 = od + len, *restrict o2 = od + half,              \
                          *restrict o3 = od + len + half;                                          \
        WINO_ROWS(T, v, step)                                                                      \
        NBK_PRAGMA(omp simd)                                                                       \
        for (int64_t t = 0; t < nv; t++) {                                                         \
            T b[4][4];                                                                             \
            /* Bᵀ down the columns: d[i][j] is (e or o)_i[t], then at t + 1 */                   \
            b[0][0] = e0[t] - e2[t], b[1][0] = e1[t] + e2[t];                                      \
            b[2][0] = e2[t] - e1[t], b[3][0] = e1[t] - e3[t];                                      \
            b[0][1] = o0[t] - o2[t], b[1][1] = o1[t] + o2[t];                                      \
            b[2][1] = o2[t] - o1[t], b[3][1] = o1[t] - o3[t];                                      \
            b[0][2] = e0[t + 1] - e2[t + 1], b[1][2] = e1[t + 1] + e2[t + 1];                      \
            b[2][2] = e2[t + 1] - e1[t + 1], b[3][2] = e1[t + 1] - e3[t + 1];                      \
            b[0][3] = o0[t + 1] - o2[t + 1], b[1][3] = o1[t + 1] + o2[t + 1];                      \
            b[2][3] = o2[t + 1] - o1[t + 1], b[3][3] = o1[t + 1] - o3[t + 1];                      \
            T w[16]; /* then B along the rows */                                                   \
            for (int i = 0; i < 4; i++) {                                                          \
                w[4 * i + 0] = b[i][0] - b[i][2];                                                  \
                w[4 * i + 1] = b[i][1] + b[i][2];                                                  \
                w[4 * i + 2] = b[i][2] - b[i][1];                                                  \
                w[4 * i + 3] = b[i][1] - b[i][3];                                                  \
            }                                                                                      \
            WINO_STORE(t, w)                                                                       \
        }                                                                                          \
    }                                                                                              \
    NBC_WIDE_CLONES static void grad_tf_##SUF(const T *restrict ev, const T *restrict od,          \
                                              int64_t len, int64_t nv, T *restrict v,              \
                                              int64_t step)                                        \
    {                                                                                              \
        const T *restrict g00 = ev, *restrict g01 = od, *restrict g10 = ev + len,                  \
                          *restrict g11 = od + len;                                                \
        WINO_ROWS(T, v, step)                                                                      \
        NBK_PRAGMA(omp simd)                                                                       \
        for (int64_t t = 0; t < nv; t++) {                                                         \
            T a[4][2], w[16];                                                                      \
            a[0][0] = g00[t], a[1][0] = g00[t] + g10[t], a[2][0] = g00[t] - g10[t];                \
            a[3][0] = -g10[t];                                                                     \
            a[0][1] = g01[t], a[1][1] = g01[t] + g11[t], a[2][1] = g01[t] - g11[t];                \
            a[3][1] = -g11[t];                                                                     \
            for (int i = 0; i < 4; i++) {                                                          \
                w[4 * i + 0] = a[i][0];                                                            \
                w[4 * i + 1] = a[i][0] + a[i][1];                                                  \
                w[4 * i + 2] = a[i][0] - a[i][1];                                                  \
                w[4 * i + 3] = -a[i][1];                                                           \
            }                                                                                      \
            WINO_STORE(t, w)                                                                       \
        }                                                                                          \
    }                                                                                              \
    /* out[i][2·t + j]: the tile's output (i, j), its bias added, its ReLU;                        \
     * out[i] + 2·half·ty then holds row 2·ty + i of y */                                          \
    NBC_WIDE_CLONES static void output_tf_##SUF(const T *restrict m, int64_t step, int64_t nv,     \
                                                T *restrict out, const T *bias, bool relu)         \
    {                                                                                              \
        T b = bias ? *bias : 0;                                                                    \
        T *restrict q0 = out, *restrict q1 = out + 2 * nv;                                         \
        NBK_PRAGMA(omp simd)                                                                       \
        for (int64_t t = 0; t < nv; t++) {                                                         \
            T a[2][4];                                                                             \
            for (int j = 0; j < 4; j++) {                                                          \
                T m0 = m[j * step + t], m1 = m[(4 + j) * step + t];                                \
                T m2 = m[(8 + j) * step + t], m3 = m[(12 + j) * step + t];                         \
                a[0][j] = m0 + m1 + m2;                                                            \
                a[1][j] = m1 - m2 - m3;                                                            \
            }                                                                                      \
            q0[2 * t] = a[0][0] + a[0][1] + a[0][2];                                               \
            q0[2 * t + 1] = a[0][1] - a[0][2] - a[0][3];                                           \
            q1[2 * t] = a[1][0] + a[1][1] + a[1][2];                                               \
            q1[2 * t + 1] = a[1][1] - a[1][2] - a[1][3];                                           \
        }                                                                                          \
        for (int64_t e = 0; bias && e < 4 * nv; e++)                                               \
            out[e] += b;                                                                           \
        for (int64_t e = 0; relu && e < 4 * nv; e++)                                               \
            out[e] = out[e] <= 0 ? 0 : out[e];                                                     \
    }                                                                                              \
    static void put_tiles_##SUF(const wino_run *r, const T *restrict out, int64_t nv,              \
                                T *restrict yp)                                                    \
    {                                                                                              \
        int64_t half = r->tw + 1, ho = r->ho, wo = r->wo;                                          \
        for (int64_t ty = 0; ty < r->th; ty++)                                                     \
            for (int i = 0; i < 2 && 2 * ty + i < ho; i++)                                         \
                memcpy(yp + (2 * ty + i) * wo, out + 2 * i * nv + 2 * half * ty,                   \
                       (size_t)wo * sizeof(T));                                                    \
    }                                                                                              \
    static void kernel_tf_##SUF(const wino_run *r, const T *restrict w, T *restrict u)             \
    {                                                                                              \
        /* w is [O][C][3][3]; conv2d: co = O, ci = C; conv_transpose2d: co = C, ci = O */          \
        bool turned = r->kind == CONV_INPUT_GRAD;                                                  \
        int64_t nw = turned ? r->ci : r->co, cw = turned ? r->co : r->ci;                          \
        int64_t step = r->co * r->ci;                                                              \
        for (int64_t o = 0; o < nw; o++)                                                           \
            for (int64_t c = 0; c < cw; c++) {                                                     \
                const T *restrict k = w + (o * cw + c) * 9;                                        \
                T g[3][3], t[4][3];                                                                \
                for (int i = 0; i < 3; i++)                                                        \
                    for (int j = 0; j < 3; j++)                                                    \
                        g[i][j] = turned ? k[(2 - i) * 3 + 2 - j] : k[i * 3 + j];                  \
                for (int j = 0; j < 3; j++) {                                                      \
                    t[0][j] = g[0][j];                                                             \
                    t[1][j] = (g[0][j] + g[1][j] + g[2][j]) * (T)0.5;                              \
                    t[2][j] = (g[0][j] - g[1][j] + g[2][j]) * (T)0.5;                              \
                    t[3][j] = g[2][j];                                                             \
                }                                                                                  \
                T *restrict uk = u + (turned ? c * r->ci + o : o * r->ci + c);                     \
                for (int i = 0; i < 4; i++) {                                                      \
                    uk[(4 * i + 0) * step] = t[i][0];                                              \
                    uk[(4 * i + 1) * step] = (t[i][0] + t[i][1] + t[i][2]) * (T)0.5;               \
                    uk[(4 * i + 2) * step] = (t[i][0] - t[i][1] + t[i][2]) * (T)0.5;               \
                    uk[(4 * i + 3) * step] = t[i][2];                                              \
                }                                                                                  \
            }                                                                                      \
    }                                                                                              \
    static void kernel_grad_tf_##SUF(const wino_run *r, T *restrict du, T *restrict w)             \
    {                                                                                              \
        int64_t step = r->co * r->ci, size = 16 * step;                                            \
        for (int64_t c = 1; c < r->jobs; c++) /* the runs' sums, in order */                       \
            for (int64_t e = 0; e < size; e++)                                                     \
                du[e] += du[c * size + e];                                                         \
        for (int64_t k = 0; k < step; k++) { /* k = o·C + c, as w's [O][C] */                     \
            T d[4][4], t[3][4];                                                                    \
            for (int i = 0; i < 4; i++)                                                            \
                for (int j = 0; j < 4; j++)                                                        \
                    d[i][j] = du[(4 * i + j) * step + k];                                          \
            for (int j = 0; j < 4; j++) {                                                          \
                T h = (d[1][j] + d[2][j]) * (T)0.5;                                                \
                t[0][j] = d[0][j] + h;                                                             \
                t[1][j] = (d[1][j] - d[2][j]) * (T)0.5;                                            \
                t[2][j] = h + d[3][j];                                                             \
            }                                                                                      \
            for (int i = 0; i < 3; i++) {                                                          \
                T h = (t[i][1] + t[i][2]) * (T)0.5;                                                \
                w[k * 9 + i * 3 + 0] = t[i][0] + h;                                                \
                w[k * 9 + i * 3 + 1] = (t[i][1] - t[i][2]) * (T)0.5;                               \
                w[k * 9 + i * 3 + 2] = h + t[i][3];                                                \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* the block's planes s0..s1 of `planes` channels into rows step apart */                      \
    static void input_block_##SUF(const wino_run *r, const T *x, int64_t channels, int64_t hi,     \
                                  int64_t wi, int64_t ph, int64_t pw, int64_t s0, int64_t s1,      \
                                  bool grad, T *restrict v, T *restrict buf)                       \
    {                                                                                              \
        int64_t half = r->tw + 1, nv = r->th * half, trows = grad ? r->th : r->th + 1;             \
        int64_t len = trows * half + 1;                                                            \
        int64_t step = channels * (s1 - s0) * nv;                                                  \
        T *ev = buf, *od = buf + 2 * len;                                                          \
        for (int64_t s = s0; s < s1; s++)                                                          \
            for (int64_t c = 0; c < channels; c++) {                                               \
                const T *xp = x + (s * channels + c) * hi * wi;                                    \
                T *vc = v + (c * (s1 - s0) + (s - s0)) * nv;                                       \
                split_rows_##SUF(r, xp, hi, wi, ph, pw, trows, ev, od);                     \
                if (grad)                                                                          \
                    grad_tf_##SUF(ev, od, len, nv, vc, step);                                      \
                else                                                                               \
                    input_tf_##SUF(ev, od, len, half, nv, vc, step);                                     \
            }                                                                                      \
    }                                                                                              \
    static void output_block_##SUF(const wino_run *r, int64_t s0, int64_t s1, const T *m,          \
                                   T *restrict buf)                                                \
    {                                                                                              \
        int64_t nv = r->th * (r->tw + 1), step = r->co * (s1 - s0) * nv;                           \
        const T *bias = (const T *)r->bias;                                                        \
        for (int64_t s = s0; s < s1; s++)                                                          \
            for (int64_t o = 0; o < r->co; o++) {                                                  \
                output_tf_##SUF(m + (o * (s1 - s0) + (s - s0)) * nv, step, nv, buf,                \
                                bias ? bias + o : NULL, r->relu);                                  \
                put_tiles_##SUF(r, buf, nv, (T *)r->y + (s * r->co + o) * r->ho * r->wo);          \
            }                                                                                      \
    }

DEFINE_WINO(float, f32)
DEFINE_WINO(double, f64)

#define BY_DTYPE(r, fn, ...)                                                                       \
    do {                                                                                           \
        if ((r)->dt == NB_F32)                                                                     \
            fn##_f32(__VA_ARGS__);                                                                 \
        else                                                                                       \
            fn##_f64(__VA_ARGS__);                                                                 \
    } while (0)

/* ------------------------------------------------------------- the jobs */

/* conv2d or conv_transpose2d, block b: its samples' transformed patches V,
 * the 16 products M[ξ] = U[ξ]·V[ξ], and the output's tiles from M */
static void block_job(const wino_run *r, int64_t b, char *mine)
{
    int64_t s0 = b * r->per, s1 = s0 + r->per < r->n ? s0 + r->per : r->n,
            nt = (s1 - s0) * r->tiles;
    char *v = mine, *m = v + r->v_bytes, *buf = m + r->m_bytes, *ws = buf + r->buf_bytes;
    BY_DTYPE(r, input_block, r, (const void *)r->x, r->ci, r->hi, r->wi, r->ph, r->pw, s0, s1,
             false, (void *)v, (void *)buf);
    for (int xi = 0; xi < 16; xi++) {
        nbk_gemm p = {.dtype = r->dt,
                      .m = r->co,
                      .n = nt,
                      .k = r->ci,
                      .a = r->u + (size_t)(xi * r->co * r->ci) * r->es,
                      .lda = r->ci,
                      .b = v + (size_t)(xi * r->ci * nt) * r->es,
                      .ldb = nt,
                      .c = m + (size_t)(xi * r->co * nt) * r->es,
                      .ldc = nt};
        nbk_gemm_builtin(&p, ws, r->gemm_threads);
    }
    BY_DTYPE(r, output_block, r, s0, s1, (const void *)m, (void *)buf);
}

/* conv2d_weight_grad, run c of the batch: dU_c[ξ] = Σ over its blocks of
 * E[ξ]·V[ξ]ᵀ */
static void run_job(const wino_run *r, int64_t c, char *mine)
{
    int64_t n0 = r->n * c / r->jobs, n1 = r->n * (c + 1) / r->jobs;
    char *v = mine, *e = v + r->v_bytes, *buf = e + r->m_bytes, *ws = buf + r->buf_bytes;
    char *du = r->y + (size_t)(c * 16 * r->co * r->ci) * r->es;
    for (int64_t s0 = n0; s0 < n1; s0 += r->per) {
        int64_t s1 = s0 + r->per < n1 ? s0 + r->per : n1, nt = (s1 - s0) * r->tiles;
        BY_DTYPE(r, input_block, r, (const void *)r->x, r->ci, r->hi, r->wi, r->ph, r->pw, s0, s1,
                 false, (void *)v, (void *)buf);
        BY_DTYPE(r, input_block, r, (const void *)r->gy, r->co, r->ho, r->wo, 0, 0, s0, s1, true,
                 (void *)e, (void *)buf);
        for (int xi = 0; xi < 16; xi++) {
            nbk_gemm p = {.dtype = r->dt,
                          .trans_b = true,
                          .accumulate = s0 > n0,
                          .m = r->co,
                          .n = r->ci,
                          .k = nt,
                          .a = e + (size_t)(xi * r->co * nt) * r->es,
                          .lda = nt,
                          .b = v + (size_t)(xi * r->ci * nt) * r->es,
                          .ldb = nt,
                          .c = du + (size_t)(xi * r->co * r->ci) * r->es,
                          .ldc = r->ci};
            nbk_gemm_builtin(&p, ws, r->gemm_threads);
        }
    }
}

/* Task t of n: a contiguous range of the jobs */
static void wino_task(void *ctx, int t, int n)
{
    const wino_run *r = ctx;
    char *mine = r->work + (size_t)t * r->per_task;
    for (int64_t j = r->jobs * t / n; j < r->jobs * (t + 1) / n; j++) {
        if (r->kind == CONV_WEIGHT_GRAD)
            run_job(r, j, mine);
        else
            block_job(r, j, mine);
    }
}

/* Bytes of n elements of size es, rounded up to whole cache lines. */
static size_t lines(int64_t n, size_t es)
{
    return ((size_t)n * es + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN;
}

nb_status nbo_wino_run(nb_graph *g, nb_tensor *out, conv_kind kind, const conv_geom *q,
                       const void *bias, bool relu, int threads)
{
    const nb_tensor *a = out->inputs[0], *b = out->inputs[1];
    wino_run r = {.kind = kind,
                  .dt = out->dtype,
                  .es = nb_dtype_size(out->dtype),
                  .n = q->n,
                  .bias = bias,
                  .relu = relu};
    if (kind == CONV_INPUT_GRAD) /* conv2d of the gradient [n,o,oh,ow] into x [n,c,h,w] */
        r.ci = q->o, r.hi = q->oh, r.wi = q->ow, r.ph = 2 - q->ph, r.pw = 2 - q->pw, r.co = q->c,
        r.ho = q->h, r.wo = q->w;
    else /* x [n,c,h,w] into y [n,o,oh,ow], or (weight_grad) against its gradient */
        r.ci = q->c, r.hi = q->h, r.wi = q->w, r.ph = q->ph, r.pw = q->pw, r.co = q->o,
        r.ho = q->oh, r.wo = q->ow;
    r.th = tiles_of(r.ho), r.tw = tiles_of(r.wo), r.tiles = r.th * (r.tw + 1);
    r.per = r.tiles >= WINO_TILES ? 1 : WINO_TILES / r.tiles;
    if (r.per > r.n)
        r.per = r.n;
    int64_t nt = r.per * r.tiles, kernel = 16 * r.co * r.ci;
    r.jobs = kind == CONV_WEIGHT_GRAD ? (r.n < CONV_CHUNKS ? r.n : CONV_CHUNKS)
                                      : (r.n + r.per - 1) / r.per;
    int team = r.jobs >= threads ? threads : 1;
    r.gemm_threads = team > 1 ? 1 : threads;

    nbk_gemm shape = {.dtype = r.dt, .m = r.co, .n = nt, .k = r.ci};
    if (kind == CONV_WEIGHT_GRAD)
        shape = (nbk_gemm){.dtype = r.dt, .trans_b = true, .m = r.co, .n = r.ci, .k = nt};
    r.v_bytes = lines(16 * r.ci * nt, r.es);
    r.m_bytes = lines(16 * r.co * nt, r.es);
    /* split_rows' four rows of tiles + 1 + half each, which also hold
     * output_tf's four outputs a tile */
    r.buf_bytes = lines(4 * (r.tiles + r.tw + 2), r.es);
    r.per_task =
        r.v_bytes + r.m_bytes + r.buf_bytes + lines(1, nbk_gemm_workspace(&shape, r.gemm_threads));
    /* the transformed kernel (conv2d, conv_transpose2d) or the runs' sums */
    size_t shared = lines(kind == CONV_WEIGHT_GRAD ? r.jobs * kernel : kernel, r.es);

    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    char *scratch = nbc_alloc(g, shared + (size_t)team * r.per_task + NB_ALIGN, out->op->name);
    if (!scratch)
        return NB_ERR_NOMEM;
    scratch += (NB_ALIGN - (uintptr_t)scratch % NB_ALIGN) % NB_ALIGN;
    r.work = scratch + shared;
    r.x = a->data;
    if (kind == CONV_WEIGHT_GRAD) {
        r.gy = b->data;
        r.y = scratch;
    } else {
        r.u = scratch;
        r.y = out->data;
        BY_DTYPE(&r, kernel_tf, &r, b->data, (void *)scratch);
    }
    nbc_parallel(team, wino_task, &r);
    if (kind == CONV_WEIGHT_GRAD)
        BY_DTYPE(&r, kernel_grad_tf, &r, (void *)scratch, out->data);
    nbc_arena_release(&g->arena, pos);
    return NB_OK;
}
