/* Convolution, NCHW: conv2d, its input gradient conv_transpose2d (a
 * transposed convolution) and its weight gradient conv2d_weight_grad (a
 * correlation of the input with the result's gradient), with stride,
 * padding and dilation per axis and groups; nb_conv1d is conv2d with H = 1.
 * docs/conv.md has the formulas.
 *
 * The three ops are bilinear, and the derivatives of each are written with
 * the three, so a backward graph can be differentiated again:
 *   y  = conv2d(x, w)             dx = conv_transpose2d(g, w)  dw = weight_grad(x, g)
 *   x' = conv_transpose2d(y, w)   dy = conv2d(g, w)            dw = weight_grad(g, y)
 *   w' = weight_grad(x, y)        dx = conv_transpose2d(y, g)  dy = conv2d(x, g)
 * and each JVP is the op applied to (t_a, b) plus the op applied to (a, t_b).
 *
 * Kernels: 3x3 kernels of stride 1 with enough channels run as Winograd
 * F(2x2, 3x3) products (winograd.c, nbo_wino_applies). Otherwise, for
 * each sample n and group G the op is one product of the
 * built-in GEMM (gemm.c) with the group's patch matrix col (im2col, in
 * arena scratch): K = C/groups·KH·KW rows (c, kh, kw), P = OH·OW columns
 * (oh, ow), Og = O/groups:
 *   conv2d            Y[n,G] (Og x P) = W_G (Og x K) · col(x[n,G]) (K x P)
 *   conv_transpose2d  col (K x P) = W_Gᵀ · Y[n,G], added into x[n,G] (col2im)
 *   weight_grad       W_G (Og x K) += Y[n,G] · col(x[n,G])ᵀ, summed over n
 * A 1x1 kernel with stride 1 and no padding needs no patch matrix: x[n,G]
 * is its own. The (n, G) products run in parallel on the graph's threads,
 * or, when there are fewer of them than threads, one after the other with
 * the threads inside the GEMM. The weight gradient sums the batch in
 * CONV_CHUNKS fixed runs of samples, then the runs in order. Either way each
 * element is summed in one order whatever the thread count, so results are
 * bit-identical on any number of threads.
 *
 * attrs: ints[0..1] stride (height, width), [2..3] padding, [4..5]
 * dilation, [6] groups, [7..8] the result's spatial size: (H, W) for
 * conv_transpose2d, (KH, KW) for conv2d_weight_grad; [9] conv2d's
 * activation (nb_linear_act).
 *
 * conv2d may also take a bias b [O] as a third input and apply a ReLU
 * (nb_conv2d_fused): both are applied as each product writes its tile
 * (the GEMM's epilogue, one bias per row of Y[n,G]), with the numbers of
 * relu(conv2d(x, w) + b reshaped to [O,1,1]). Its rules start from
 * g_z = relu_mask(g, y) (made once per node, nbo_vjp_pre), and
 * db = g_z summed to [O,1,1], reshaped to [O], as the add's rule sums it.
 */

#include <stdio.h>

#include "conv.h"
#include "gemm.h"

enum { A_STRIDE = 0, A_PAD = 2, A_DIL = 4, A_GROUPS = 6, A_SIZE = 7, A_ACT = 9 };

#define CONV_BIAS(out) ((out)->n_inputs > 2 ? (out)->inputs[2] : NULL)
#define CONV_ACT(out) ((nb_linear_act)(out)->attrs->ints[A_ACT])

/* ------------------------------------------------------------ shape rules */

/* The operands' names and layouts in messages, by [spatial - 1][kind]. */
static const char *const operand_name[3][2] = {{"x", "w"}, {"y", "w"}, {"x", "gy"}};
static const char *const operand_layout[2][3] = {
    {"[N,C,L] and [O,C/groups,K]", "[N,O,OL] and [O,C/groups,K]", "[N,C,L] and [N,O,OL]"},
    {"[N,C,H,W] and [O,C/groups,KH,KW]", "[N,O,OH,OW] and [O,C/groups,KH,KW]",
     "[N,C,H,W] and [N,O,OH,OW]"},
};

/* "op: x [1,3,8,8], w [8,3,3,3]: <what>" (dtypes shown for NB_ERR_DTYPE);
 * formatted only when there is an error. */
static NB_NOINLINE NB_PRINTF(7, 8) nb_status
    conv_error(nb_graph *g, nb_status code, const char *op, conv_kind kind, const nb_tensor *a,
               const nb_tensor *b, const char *fmt, ...)
{
    char sa[168], sb[168], what[256];
    nbc_shp(a, sa, sizeof sa);
    nbc_shp(b, sb, sizeof sb);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    bool dt = code == NB_ERR_DTYPE;
    return nbc_error(g, code, op, "%s %s%s, %s %s%s: %s", operand_name[kind][0],
                     dt ? nb_dtype_name(a->dtype) : "", sa, operand_name[kind][1],
                     dt ? nb_dtype_name(b->dtype) : "", sb, what);
}

/* The spatial sizes of an operand: its last two axes, or 1 and its last
 * axis for a 1-D operand [N,C,L]. */
static void spatial_of(const nb_tensor *t, int64_t *h, int64_t *w)
{
    *h = t->rank == 4 ? t->shape[2] : 1;
    *w = t->shape[t->rank - 1];
}

/* Read what the operands a, b and the settings say of the convolution;
 * the output's spatial size of a conv2d (oh, ow) is left for conv_check. */
static void conv_read(conv_geom *q, conv_kind kind, const nb_tensor *a, const nb_tensor *b,
                      const int64_t *ints)
{
    q->sh = ints[A_STRIDE], q->sw = ints[A_STRIDE + 1];
    q->ph = ints[A_PAD], q->pw = ints[A_PAD + 1];
    q->dh = ints[A_DIL], q->dw = ints[A_DIL + 1];
    q->groups = ints[A_GROUPS];
    q->oh = q->ow = 0;
    const nb_tensor *x = kind == CONV_INPUT_GRAD ? NULL : a;
    const nb_tensor *w = kind == CONV_WEIGHT_GRAD ? NULL : b;
    const nb_tensor *y = kind == CONV_FWD ? NULL : kind == CONV_INPUT_GRAD ? a : b;
    if (x) {
        q->n = x->shape[0], q->c = x->shape[1];
        spatial_of(x, &q->h, &q->w);
    } else { /* x is the result of conv_transpose2d (-1 channels: too many) */
        q->n = y->shape[0];
        if (nbc_mul_overflows(w->shape[1], q->groups, &q->c))
            q->c = -1;
        q->h = ints[A_SIZE], q->w = ints[A_SIZE + 1];
    }
    if (w) {
        q->o = w->shape[0];
        spatial_of(w, &q->kh, &q->kw);
    } else { /* w is the result of conv2d_weight_grad */
        q->o = y->shape[1];
        q->kh = ints[A_SIZE], q->kw = ints[A_SIZE + 1];
    }
    if (y)
        spatial_of(y, &q->oh, &q->ow);
}

/* "3x5" of a pair of settings, or "5" in 1-D (only the width counts) */
static const char *pair_str(char *buf, size_t n, int spatial, int64_t h, int64_t w)
{
    if (spatial == 1)
        snprintf(buf, n, "%lld", (long long)w);
    else
        snprintf(buf, n, "%lldx%lld", (long long)h, (long long)w);
    return buf;
}

/* Output length along one axis of input length `in` (padding p each side)
 * for a kernel of k taps spaced d apart, at stride s; -1 when the kernel
 * does not fit in the padded input. Arguments are checked: in >= 0, k, s,
 * d >= 1, 0 <= p <= NBC_MAX_ELEMS. */
static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    int64_t span;
    if (nbc_mul_overflows(d, k - 1, &span))
        return -1;
    int64_t padded = in + 2 * p;
    if (span >= padded)
        return -1;
    return (padded - span - 1) / s + 1;
}

/*
 * Check the operands a, b of a convolution of kind `kind` with settings
 * `ints` (the attrs layout) over `spatial` axes: 2, or 1 for conv1d, whose
 * operands are [N,C,L] and [O,C/groups,K] and whose settings are those of
 * the width (ints[] of the height: stride 1, padding 0, dilation 1).
 * Fills *q, or records an error under `op` naming both operands.
 */
static nb_status conv_check(nb_graph *g, const char *op, conv_kind kind, const nb_tensor *a,
                            const nb_tensor *b, const int64_t *ints, int spatial, conv_geom *q)
{
    const char *na = operand_name[kind][0], *nb = operand_name[kind][1];
    int rank = spatial + 2;
    if (a->rank != rank || b->rank != rank)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b, "%s and %s must have rank %d (%s)", na,
                          nb, rank, operand_layout[spatial - 1][kind]);
    if (a->dtype != b->dtype)
        return conv_error(g, NB_ERR_DTYPE, op, kind, a, b, "dtypes differ");
    conv_read(q, kind, a, b, ints);
    char s1[48], s2[48], s3[48], s4[48];
    if (q->sh < 1 || q->sw < 1)
        return conv_error(g, NB_ERR_ARG, op, kind, a, b, "stride %s must be at least 1",
                          pair_str(s1, sizeof s1, spatial, q->sh, q->sw));
    if (q->dh < 1 || q->dw < 1)
        return conv_error(g, NB_ERR_ARG, op, kind, a, b, "dilation %s must be at least 1",
                          pair_str(s1, sizeof s1, spatial, q->dh, q->dw));
    if (q->ph < 0 || q->pw < 0 || q->ph > NBC_MAX_ELEMS || q->pw > NBC_MAX_ELEMS)
        return conv_error(g, NB_ERR_ARG, op, kind, a, b, "padding %s must be 0 or more%s",
                          pair_str(s1, sizeof s1, spatial, q->ph, q->pw),
                          q->ph < 0 || q->pw < 0 ? "" : " (and not that large)");
    if (q->groups < 1)
        return conv_error(g, NB_ERR_ARG, op, kind, a, b, "groups %lld must be at least 1",
                          (long long)q->groups);
    if (kind == CONV_INPUT_GRAD &&
        (q->h < 0 || q->w < 0 || q->h > NBC_MAX_ELEMS || q->w > NBC_MAX_ELEMS || q->c < 0))
        return conv_error(g, NB_ERR_ARG, op, kind, a, b,
                          "result size %s with %lld groups is out of range",
                          pair_str(s1, sizeof s1, spatial, q->h, q->w), (long long)q->groups);
    if (q->kh < 1 || q->kw < 1) /* an argument of weight_grad, w's shape otherwise */
        return conv_error(g, kind == CONV_WEIGHT_GRAD ? NB_ERR_ARG : NB_ERR_SHAPE, op, kind, a, b,
                          "kernel size %s must be at least 1",
                          pair_str(s1, sizeof s1, spatial, q->kh, q->kw));

    /* channels and batch */
    if (kind == CONV_INPUT_GRAD && a->shape[1] != q->o)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b,
                          "%s has %lld channels but %s has %lld output channels", na,
                          (long long)a->shape[1], nb, (long long)q->o);
    if (kind == CONV_WEIGHT_GRAD && b->shape[0] != q->n)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b, "batch sizes %lld and %lld differ",
                          (long long)q->n, (long long)b->shape[0]);
    if (q->c % q->groups != 0)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b,
                          "%lld input channels do not divide into %lld groups", (long long)q->c,
                          (long long)q->groups);
    if (q->o % q->groups != 0)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b,
                          "%lld output channels do not divide into %lld groups", (long long)q->o,
                          (long long)q->groups);
    if (kind == CONV_FWD && b->shape[1] != q->c / q->groups)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b,
                          "w has %lld input channels per group but x has %lld channels in %lld "
                          "groups (%lld each)",
                          (long long)b->shape[1], (long long)q->c, (long long)q->groups,
                          (long long)(q->c / q->groups));

    /* the kernel fits in the padded input, and the output is as given */
    int64_t oh = out_len(q->h, q->kh, q->sh, q->ph, q->dh);
    int64_t ow = out_len(q->w, q->kw, q->sw, q->pw, q->dw);
    if (oh < 0 || ow < 0)
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b,
                          "kernel %s (dilation %s) is larger than the padded input %s "
                          "(padding %s)",
                          pair_str(s1, sizeof s1, spatial, q->kh, q->kw),
                          pair_str(s2, sizeof s2, spatial, q->dh, q->dw),
                          pair_str(s3, sizeof s3, spatial, q->h, q->w),
                          pair_str(s4, sizeof s4, spatial, q->ph, q->pw));
    if (kind != CONV_FWD && (oh != q->oh || ow != q->ow))
        return conv_error(g, NB_ERR_SHAPE, op, kind, a, b,
                          "an input of %s convolved with a kernel of %s gives an output of %s, "
                          "not %s",
                          pair_str(s1, sizeof s1, spatial, q->h, q->w),
                          pair_str(s2, sizeof s2, spatial, q->kh, q->kw),
                          pair_str(s3, sizeof s3, spatial, oh, ow),
                          pair_str(s4, sizeof s4, spatial, q->oh, q->ow));
    q->oh = oh, q->ow = ow;
    return NB_OK;
}

/* Which of the three rows node out was recorded with. */
static conv_kind kind_of(const nb_tensor *out)
{
    return out->op == &nbo_table[NB_OP_CONV2D]             ? CONV_FWD
           : out->op == &nbo_table[NB_OP_CONV_TRANSPOSE2D] ? CONV_INPUT_GRAD
                                                           : CONV_WEIGHT_GRAD;
}

/* The shape rule of the three rows: the result is y, x or w of the
 * convolution. */
nb_status nbo_conv_shape(nb_graph *g, nb_tensor *out)
{
    conv_kind kind = kind_of(out);
    if (out->n_inputs < 2 || out->n_inputs > 3) /* conv2d's arity is open: (x, w) or (x, w, b) */
        return nbc_error(g, NB_ERR_ARG, out->op->name, "takes 2 or 3 inputs (x, w, b), got %d",
                         out->n_inputs);
    const nb_tensor *a = out->inputs[0], *b = out->inputs[1], *bias = CONV_BIAS(out);
    conv_geom q;
    nb_status st = conv_check(g, out->op->name, kind, a, b, out->attrs->ints, 2, &q);
    if (st != NB_OK)
        return st;
    nb_linear_act act = CONV_ACT(out);
    if (act != NB_LINEAR_IDENTITY && act != NB_LINEAR_RELU)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "unknown activation %d", (int)act);
    if (bias && bias->dtype != a->dtype)
        return conv_error(g, NB_ERR_DTYPE, out->op->name, kind, a, b, "the bias is %s",
                          nb_dtype_name(bias->dtype));
    if (bias && (bias->rank != 1 || bias->shape[0] != q.o)) {
        char sb[168];
        return conv_error(g, NB_ERR_SHAPE, out->op->name, kind, a, b,
                          "the bias %s must be [%lld], one per output channel",
                          nbc_shp(bias, sb, sizeof sb), (long long)q.o);
    }
    int64_t shape[3][4] = {
        {q.n, q.o, q.oh, q.ow}, {q.n, q.c, q.h, q.w}, {q.o, q.c / q.groups, q.kh, q.kw}};
    return nb_op_set_result(g, out, a->dtype, 4, shape[kind]);
}

/* ---------------------------------------------------------------- kernels */

/* The output columns j whose input column j·s + off lies in [0, w): [lo, hi). */
static void col_range(int64_t ow, int64_t s, int64_t off, int64_t w, int64_t *lo, int64_t *hi)
{
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = w - off <= 0 ? 0 : (w - off + s - 1) / s;
    *lo = l < ow ? l : ow;
    *hi = h < *lo ? *lo : h < ow ? h : ow;
}

/* Tap t = (a, b) of the kernel: output (i, j) reads input row i·sh + top and
 * column j·sw + off, inside the input for rows [ilo, ihi) and columns
 * [lo, hi). */
typedef struct conv_tap {
    int64_t top, off, ilo, ihi, lo, hi;
} conv_tap;

static conv_tap tap_of(const conv_geom *q, int64_t t)
{
    conv_tap k = {.top = t / q->kw * q->dh - q->ph, .off = t % q->kw * q->dw - q->pw};
    col_range(q->oh, q->sh, k.top, q->h, &k.ilo, &k.ihi);
    col_range(q->ow, q->sw, k.off, q->w, &k.lo, &k.hi);
    return k;
}

/* The taps of kernels up to 8 x 8 are worked out once per call of im2col or
 * col2im, not once per channel: each takes six integer divisions, and
 * B9's second convolution ran them 288 times a sample (3.5 % of its step) */
#define CONV_TAPS_KEPT 64

static void taps_of(const conv_geom *q, int64_t taps, conv_tap *kept)
{
    for (int64_t t = 0; t < taps && taps <= CONV_TAPS_KEPT; t++)
        kept[t] = tap_of(q, t);
}

/*
 * Between one sample's group of input planes xg (C/groups planes of h x w)
 * and its patch matrix col (K x P): im2col writes col[(c,a,b)][(i,j)] =
 * xg[c][i·sh − ph + a·dh][j·sw − pw + b·dw], 0 where that lies in the
 * padding; col2im is its adjoint, xg = 0 then xg[...] += col[...] over the
 * same pairs, in the same order every time.
 */
#define DEFINE_PATCHES(T, SUF)                                                                     \
    static void im2col_##SUF(const conv_geom *q, const T *restrict xg, T *restrict col)            \
    {                                                                                              \
        int64_t P = q->oh * q->ow, ow = q->ow, taps = q->kh * q->kw;                               \
        conv_tap kept[CONV_TAPS_KEPT];                                                             \
        taps_of(q, taps, kept);                                                                    \
        for (int64_t c = 0; c < q->c / q->groups; c++)                                             \
            for (int64_t t = 0; t < taps; t++, col += P) {                                         \
                conv_tap k = taps <= CONV_TAPS_KEPT ? kept[t] : tap_of(q, t);                      \
                const T *plane = xg + c * q->h * q->w;                                             \
                memset(col, 0, (size_t)(k.ilo * ow) * sizeof(T));                                  \
                memset(col + k.ihi * ow, 0, (size_t)((q->oh - k.ihi) * ow) * sizeof(T));           \
                if (q->sh == 1 && q->sw == 1 && ow == q->w && k.off == 0) {                        \
                    /* the rows are one run of x */                                                \
                    memcpy(col + k.ilo * ow, plane + (k.ilo + k.top) * q->w,                       \
                           (size_t)((k.ihi - k.ilo) * ow) * sizeof(T));                            \
                    continue;                                                                      \
                }                                                                                  \
                for (int64_t i = k.ilo; i < k.ihi; i++) {                                          \
                    T *restrict cr = col + i * ow;                                                 \
                    const T *restrict row = plane + (i * q->sh + k.top) * q->w;                    \
                    for (int64_t j = 0; j < k.lo; j++)                                             \
                        cr[j] = 0;                                                                 \
                    if (q->sw == 1)                                                                \
                        for (int64_t j = k.lo; j < k.hi; j++)                                      \
                            cr[j] = row[j + k.off];                                                \
                    else                                                                           \
                        for (int64_t j = k.lo; j < k.hi; j++)                                      \
                            cr[j] = row[j * q->sw + k.off];                                        \
                    for (int64_t j = k.hi; j < ow; j++)                                            \
                        cr[j] = 0;                                                                 \
                }                                                                                  \
            }                                                                                      \
    }                                                                                              \
    static void col2im_##SUF(const conv_geom *q, const T *restrict col, T *restrict xg)            \
    {                                                                                              \
        int64_t P = q->oh * q->ow, ow = q->ow, taps = q->kh * q->kw;                               \
        memset(xg, 0, (size_t)(q->c / q->groups * q->h * q->w) * sizeof(T));                       \
        conv_tap kept[CONV_TAPS_KEPT];                                                             \
        taps_of(q, taps, kept);                                                                    \
        for (int64_t c = 0; c < q->c / q->groups; c++)                                             \
            for (int64_t t = 0; t < taps; t++, col += P) {                                         \
                conv_tap k = taps <= CONV_TAPS_KEPT ? kept[t] : tap_of(q, t);                      \
                T *plane = xg + c * q->h * q->w;                                                   \
                for (int64_t i = k.ilo; i < k.ihi; i++) {                                          \
                    const T *restrict cr = col + i * ow;                                           \
                    T *restrict row = plane + (i * q->sh + k.top) * q->w;                          \
                    if (q->sw == 1)                                                                \
                        for (int64_t j = k.lo; j < k.hi; j++)                                      \
                            row[j + k.off] += cr[j];                                               \
                    else                                                                           \
                        for (int64_t j = k.lo; j < k.hi; j++)                                      \
                            row[j * q->sw + k.off] += cr[j];                                       \
                }                                                                                  \
            }                                                                                      \
    }

DEFINE_PATCHES(float, f32)
DEFINE_PATCHES(double, f64)

static void im2col(const conv_geom *q, nb_dtype dt, const void *xg, void *col)
{
    if (dt == NB_F32)
        im2col_f32(q, xg, col);
    else
        im2col_f64(q, xg, col);
}
static void col2im(const conv_geom *q, nb_dtype dt, const void *col, void *xg)
{
    if (dt == NB_F32)
        col2im_f32(q, col, xg);
    else
        col2im_f64(q, col, xg);
}

/* One lowered op: its geometry, its operands' data, and its products. */
typedef struct conv_run {
    conv_geom q;
    conv_kind kind;
    nb_dtype dt;
    size_t es;
    const char *a, *b; /* the op's inputs' data */
    const char *bias;  /* conv2d's bias [O], or NULL */
    bool relu;         /* conv2d's ReLU */
    char *out;         /* its result's */
    char *partial;     /* weight_grad: the sums of runs 1.. of samples */
    bool direct;       /* no patch matrix: x[n,G] is its own */
    int64_t cg, og, K, P, chunks;
    int gemm_threads;
} conv_run;

/* Byte offset of sample n's group G of a tensor [n, groups·per, plane...] */
static size_t group_at(const conv_run *r, int64_t n, int64_t channels, int64_t G, int64_t per,
                       int64_t plane)
{
    return (size_t)((n * channels + G * per) * plane) * r->es;
}

/* conv2d, sample n, group G: Y[n,G] = W_G · col(x[n,G]) */
static void fwd_job(const conv_run *r, int64_t n, int64_t G, char *col, void *ws)
{
    const conv_geom *q = &r->q;
    const char *xg = r->a + group_at(r, n, q->c, G, r->cg, q->h * q->w);
    if (!r->direct) {
        im2col(q, r->dt, xg, col);
        xg = col;
    }
    nbk_gemm p = {.dtype = r->dt,
                  .m = r->og,
                  .n = r->P,
                  .k = r->K,
                  .a = r->b + (size_t)(G * r->og * r->K) * r->es,
                  .lda = r->K,
                  .b = xg,
                  .ldb = r->P,
                  .c = r->out + group_at(r, n, q->o, G, r->og, r->P),
                  .ldc = r->P,
                  .bias = r->bias ? r->bias + (size_t)(G * r->og) * r->es : NULL,
                  .bias_rows = true,
                  .relu = r->relu};
    nbk_gemm_builtin(&p, ws, r->gemm_threads);
}

/* conv_transpose2d, sample n, group G: x[n,G] = col2im(W_Gᵀ · Y[n,G]) */
static void input_grad_job(const conv_run *r, int64_t n, int64_t G, char *col, void *ws)
{
    const conv_geom *q = &r->q;
    char *xg = r->out + group_at(r, n, q->c, G, r->cg, q->h * q->w);
    nbk_gemm p = {.dtype = r->dt,
                  .trans_a = true,
                  .m = r->K,
                  .n = r->P,
                  .k = r->og,
                  .a = r->b + (size_t)(G * r->og * r->K) * r->es,
                  .lda = r->K,
                  .b = r->a + group_at(r, n, q->o, G, r->og, r->P),
                  .ldb = r->P,
                  .c = r->direct ? xg : col,
                  .ldc = r->P};
    nbk_gemm_builtin(&p, ws, r->gemm_threads);
    if (!r->direct)
        col2im(q, r->dt, col, xg);
}

/* conv2d_weight_grad, run of samples `chunk`, group G:
 * W_G = Σ over the run's samples n of Y[n,G] · col(x[n,G])ᵀ, into the
 * result for run 0 and into its partial sum for the others */
static void weight_grad_job(const conv_run *r, int64_t chunk, int64_t G, char *col, void *ws)
{
    const conv_geom *q = &r->q;
    char *sum = chunk == 0 ? r->out : r->partial + (size_t)((chunk - 1) * q->o * r->K) * r->es;
    int64_t n0 = q->n * chunk / r->chunks, n1 = q->n * (chunk + 1) / r->chunks;
    for (int64_t n = n0; n < n1; n++) {
        const char *xg = r->a + group_at(r, n, q->c, G, r->cg, q->h * q->w);
        if (!r->direct) {
            im2col(q, r->dt, xg, col);
            xg = col;
        }
        nbk_gemm p = {.dtype = r->dt,
                      .trans_b = true,
                      .accumulate = n > n0,
                      .m = r->og,
                      .n = r->K,
                      .k = r->P,
                      .a = r->b + group_at(r, n, q->o, G, r->og, r->P),
                      .lda = r->P,
                      .b = xg,
                      .ldb = r->P,
                      .c = sum + (size_t)(G * r->og * r->K) * r->es,
                      .ldc = r->K};
        nbk_gemm_builtin(&p, ws, r->gemm_threads);
    }
}

/* out += the partial sums of runs 1.., in order */
#define ADD_PARTIALS(T)                                                                            \
    do {                                                                                           \
        T *o = (T *)r->out;                                                                        \
        const T *s = (const T *)r->partial;                                                        \
        for (int64_t c = 1; c < r->chunks; c++, s += size)                                         \
            for (int64_t e = 0; e < size; e++)                                                     \
                o[e] += s[e];                                                                      \
    } while (0)

static void add_partials(const conv_run *r, int64_t size)
{
    if (r->dt == NB_F32)
        ADD_PARTIALS(float);
    else
        ADD_PARTIALS(double);
}

typedef void conv_job_fn(const conv_run *r, int64_t s, int64_t G, char *col, void *ws);

typedef struct conv_team {
    const conv_run *r;
    conv_job_fn *job;
    int64_t jobs, groups;
    char *work; /* per task: a patch matrix, then the GEMM's scratch */
    size_t per_task, col_bytes;
} conv_team;

/* Task t of n: a contiguous range of the (sample or chunk, group) jobs */
static void conv_task(void *ctx, int t, int n)
{
    const conv_team *c = ctx;
    char *mine = c->work + (size_t)t * c->per_task;
    for (int64_t k = c->jobs * t / n; k < c->jobs * (t + 1) / n; k++)
        c->job(c->r, k / c->groups, k % c->groups, mine, mine + c->col_bytes);
}

/* The kernel of the three rows: the op's (s, G) products, s a sample or
 * (weight_grad) a run of samples, on the graph's threads when there are
 * enough of them, else one after the other with the threads inside each
 * product. Scratch from the arena, given back at the end. */
nb_status nbo_conv_fwd(nb_graph *g, nb_tensor *out)
{
    conv_kind kind = kind_of(out);
    conv_run r = {.kind = kind, .dt = out->dtype, .es = nb_dtype_size(out->dtype)};
    const nb_tensor *a = out->inputs[0], *b = out->inputs[1];
    conv_read(&r.q, kind, a, b, out->attrs->ints);
    conv_geom *q = &r.q;
    if (kind == CONV_FWD)
        q->oh = out->shape[2], q->ow = out->shape[3];
    if (out->size == 0)
        return NB_OK;
    r.a = a->data, r.b = b->data, r.out = out->data;
    if (kind == CONV_FWD) {
        r.bias = CONV_BIAS(out) ? CONV_BIAS(out)->data : NULL;
        r.relu = CONV_ACT(out) == NB_LINEAR_RELU;
    }
    r.cg = q->c / q->groups, r.og = q->o / q->groups;
    r.K = r.cg * q->kh * q->kw, r.P = q->oh * q->ow;
    r.direct = q->kh == 1 && q->kw == 1 && q->sh == 1 && q->sw == 1 && q->ph == 0 && q->pw == 0;
    int64_t outer = kind == CONV_WEIGHT_GRAD ? (q->n < CONV_CHUNKS ? q->n : CONV_CHUNKS) : q->n;
    r.chunks = outer;
    if (outer == 0 || r.K == 0 || r.og == 0) { /* empty sums (a batch of 0, no channels) */
        nbc_fill(out, 0.0);
        if (r.bias || r.relu) /* conv2d's epilogue on the zeros, a plane at a time */
            for (int64_t n = 0; n < q->n; n++) {
                nbk_gemm e = {.dtype = r.dt,
                              .m = q->o,
                              .n = r.P,
                              .c = r.out + group_at(&r, n, q->o, 0, 0, r.P),
                              .ldc = r.P,
                              .bias = r.bias,
                              .bias_rows = true,
                              .relu = r.relu};
                nbk_gemm_epilogue(&e);
            }
        return NB_OK;
    }
    int64_t jobs = outer * q->groups;

    /* threads for the whole op (as matmul's: about 10^6 multiply-adds) */
    double work = (double)q->n * (double)q->o * (double)r.P * (double)r.K / 32.0;
    int nt = nbc_threads_for(g, work > 1e18 ? (int64_t)1e18 : (int64_t)work);
    if (nbo_wino_applies(q, kind))
        return nbo_wino_run(g, out, kind, q, r.bias, r.relu, nt);
    int team = jobs >= nt ? nt : 1;
    r.gemm_threads = team > 1 ? 1 : nt;

    nbk_gemm shape = {.dtype = r.dt, .m = r.og, .n = r.P, .k = r.K};
    if (kind == CONV_INPUT_GRAD)
        shape = (nbk_gemm){.dtype = r.dt, .trans_a = true, .m = r.K, .n = r.P, .k = r.og};
    else if (kind == CONV_WEIGHT_GRAD)
        shape = (nbk_gemm){.dtype = r.dt, .trans_b = true, .m = r.og, .n = r.K, .k = r.P};
    /* elements of a patch matrix, of the partial sums, and of all scratch
     * (per thread: a patch matrix and the GEMM's packing buffers) */
    int64_t col_elems = 0, partial_elems = 0, total;
    size_t ws_bytes = nbc_round16(nbk_gemm_workspace(&shape, r.gemm_threads));
    int64_t ws_elems = (int64_t)((ws_bytes + NB_ALIGN) / r.es) + 1; /* with col's rounding */
    if ((!r.direct && (nbc_mul_overflows(r.K, r.P, &col_elems) || col_elems > NBC_MAX_ELEMS)) ||
        (kind == CONV_WEIGHT_GRAD && (nbc_mul_overflows(r.chunks - 1, out->size, &partial_elems) ||
                                      partial_elems > NBC_MAX_ELEMS)) ||
        nbc_mul_overflows(team, col_elems + ws_elems, &total) ||
        total > NBC_MAX_ELEMS - partial_elems)
        return nbc_error(g, NB_ERR_NOMEM, out->op->name,
                         "scratch of %lld x %lld elements is too large", (long long)r.K,
                         (long long)r.P);
    size_t col_bytes = (size_t)col_elems * r.es, per_thread;
    col_bytes = (col_bytes + NB_ALIGN - 1) / NB_ALIGN * NB_ALIGN; /* each thread's on a line */
    per_thread = col_bytes + ws_bytes;
    size_t partial_bytes = (size_t)partial_elems * r.es;

    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    char *scratch =
        nbc_alloc(g, partial_bytes + (size_t)team * per_thread + NB_ALIGN, out->op->name);
    if (!scratch)
        return NB_ERR_NOMEM;
    r.partial = scratch;
    char *work_area = scratch + partial_bytes;
    work_area += (NB_ALIGN - (uintptr_t)work_area % NB_ALIGN) % NB_ALIGN;

    conv_job_fn *job = kind == CONV_FWD          ? fwd_job
                       : kind == CONV_INPUT_GRAD ? input_grad_job
                                                 : weight_grad_job;
    conv_team ct = {&r, job, jobs, q->groups, work_area, per_thread, col_bytes};
    nbc_parallel(team, conv_task, &ct);
    if (kind == CONV_WEIGHT_GRAD && r.chunks > 1)
        add_partials(&r, out->size);
    nbc_arena_release(&g->arena, pos);
    return NB_OK;
}

/* ------------------------------------------------------------ constructors */

nb_conv_opts nb_conv_defaults(void)
{
    return (nb_conv_opts){.stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1}, .groups = 1};
}

/* Record op `id` on (a, b) with the settings o (NULL: the defaults) and
 * the result's spatial size (s0, s1) where the op has one. */
static nb_tensor *conv_apply(nb_graph *g, int id, nb_tensor *a, nb_tensor *b, const nb_conv_opts *o,
                             int64_t s0, int64_t s1)
{
    nb_conv_opts d = nb_conv_defaults();
    if (!o)
        o = &d;
    nb_attrs at = {.ints = {o->stride[0], o->stride[1], o->padding[0], o->padding[1],
                            o->dilation[0], o->dilation[1], o->groups, s0, s1}};
    nb_tensor *in[2] = {a, b};
    return nbo_apply(g, &nbo_table[id], in, 2, &at);
}

nb_tensor *nb_conv2d(nb_graph *g, nb_tensor *x, nb_tensor *w, const nb_conv_opts *o)
{
    return conv_apply(g, NB_OP_CONV2D, x, w, o, 0, 0);
}

nb_tensor *nb_conv2d_fused(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                           const nb_conv_opts *o, nb_linear_act act)
{
    nb_conv_opts d = nb_conv_defaults();
    if (!o)
        o = &d;
    nb_attrs at = {.ints = {o->stride[0], o->stride[1], o->padding[0], o->padding[1],
                            o->dilation[0], o->dilation[1], o->groups, 0, 0, act}};
    nb_tensor *in[3] = {x, w, b};
    return nbo_apply(g, &nbo_table[NB_OP_CONV2D], in, b ? 3 : 2, &at);
}

nb_tensor *nb_conv_transpose2d(nb_graph *g, nb_tensor *y, nb_tensor *w, int64_t h, int64_t w_out,
                               const nb_conv_opts *o)
{
    return conv_apply(g, NB_OP_CONV_TRANSPOSE2D, y, w, o, h, w_out);
}

nb_tensor *nb_conv2d_weight_grad(nb_graph *g, nb_tensor *x, nb_tensor *gy, int64_t kh, int64_t kw,
                                 const nb_conv_opts *o)
{
    return conv_apply(g, NB_OP_CONV2D_WEIGHT_GRAD, x, gy, o, kh, kw);
}

/* conv2d of x [N,C,1,L] and w [O,C/groups,1,K], checked first as the 1-D
 * op so that its errors name conv1d and the operands as given, and
 * nothing is recorded when they do not fit */
nb_tensor *nb_conv1d(nb_graph *g, nb_tensor *x, nb_tensor *w, int64_t stride, int64_t padding,
                     int64_t dilation, int64_t groups)
{
    if (!g || !x || !w)
        return NULL;
    nb_conv_opts o = {.stride = {1, stride},
                      .padding = {0, padding},
                      .dilation = {1, dilation},
                      .groups = groups};
    int64_t ints[9] = {1, stride, 0, padding, 1, dilation, groups, 0, 0};
    conv_geom q;
    if (conv_check(g, "conv1d", CONV_FWD, x, w, ints, 1, &q) != NB_OK)
        return NULL;
    nb_tensor *x4 = nb_reshape(g, x, 4, (int64_t[]){q.n, q.c, 1, q.w});
    nb_tensor *w4 = nb_reshape(g, w, 4, (int64_t[]){q.o, q.c / q.groups, 1, q.kw});
    return nb_reshape(g, nb_conv2d(g, x4, w4, &o), 3, (int64_t[]){q.n, q.o, q.ow});
}

/* ---------------------------------------------------------- derivatives */

/* op `id` on (a, b) with the settings of node `out` and the spatial size (s0, s1) */
static nb_tensor *conv_like(nb_graph *g, int id, const nb_tensor *out, nb_tensor *a, nb_tensor *b,
                            int64_t s0, int64_t s1)
{
    nb_attrs at = *out->attrs;
    at.ints[A_SIZE] = s0;
    at.ints[A_SIZE + 1] = s1;
    at.ints[A_ACT] = NB_LINEAR_IDENTITY; /* a rule's products have no bias or activation */
    nb_tensor *in[2] = {a, b};
    return nbo_apply(g, &nbo_table[id], in, 2, &at);
}

/* y = act(conv2d(x, w) + b): g_z = relu_mask(g, y) for ReLU, g itself
 * otherwise; every input's rule starts from it (nbo_vjp_pre) */
nb_tensor *nbo_conv2d_vjp_pre(nb_graph *g, nb_tensor *out, nb_tensor *gr)
{
    if (CONV_ACT(out) != NB_LINEAR_RELU || nbo_masked_unpool(gr, out))
        return gr; /* the identity, or a mask that would change nothing */
    return nb_relu_mask(g, gr, out);
}

bool nbo_conv2d_relu(const nb_tensor *out)
{
    return out->op == &nbo_table[NB_OP_CONV2D] && CONV_ACT(out) == NB_LINEAR_RELU;
}

/* dx = conv_transpose2d(g_z, w, H, W), dw = weight_grad(x, g_z, KH, KW),
 * db = g_z summed to [O,1,1] (as the add of a [O,1,1] bias sums it), as [O] */
nb_tensor *nbo_conv2d_vjp_post(nb_graph *g, nb_tensor *out, int i, nb_tensor *gz)
{
    nb_tensor *x = out->inputs[0], *w = out->inputs[1];
    if (i == 0)
        return conv_like(g, NB_OP_CONV_TRANSPOSE2D, out, gz, w, x->shape[2], x->shape[3]);
    if (i == 1)
        return conv_like(g, NB_OP_CONV2D_WEIGHT_GRAD, out, x, gz, w->shape[2], w->shape[3]);
    int64_t o = w->shape[0];
    return nb_reshape(g, nb_sum_to(g, gz, 3, (const int64_t[]){o, 1, 1}), 1, &o);
}

nb_tensor *nbo_conv2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbo_conv2d_vjp_post(g, out, i, nbo_conv2d_vjp_pre(g, out, gr));
}

/* x = conv_transpose2d(y, w): dy = conv2d(g, w), dw = weight_grad(g, y, KH, KW) */
nb_tensor *nbo_conv_transpose2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    nb_tensor *y = out->inputs[0], *w = out->inputs[1];
    if (i == 0)
        return conv_like(g, NB_OP_CONV2D, out, gr, w, 0, 0);
    return conv_like(g, NB_OP_CONV2D_WEIGHT_GRAD, out, gr, y, w->shape[2], w->shape[3]);
}

/* w = weight_grad(x, y): dx = conv_transpose2d(y, g, H, W), dy = conv2d(x, g) */
nb_tensor *nbo_conv2d_weight_grad_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    nb_tensor *x = out->inputs[0], *y = out->inputs[1];
    if (i == 0)
        return conv_like(g, NB_OP_CONV_TRANSPOSE2D, out, y, gr, x->shape[2], x->shape[3]);
    return conv_like(g, NB_OP_CONV2D, out, x, gr, 0, 0);
}

static bool no_tangent(const nb_tensor *t)
{
    return !t || (t->flags & NB_T_ZERO);
}

/* Each op is bilinear: d op(a, b) = op(t_a, b) + op(a, t_b), a term whose
 * tangent forward mode knows to be zero left out. conv2d's bias adds t_b
 * (as [O,1,1]) and its ReLU masks the sum: t_y = relu_mask(t_z, y). */
nb_tensor *nbo_conv_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    nb_attrs at = *out->attrs;
    at.ints[A_ACT] = NB_LINEAR_IDENTITY;
    bool za = no_tangent(t[0]), zb = no_tangent(t[1]);
    nb_tensor *ta[2] = {t[0], out->inputs[1]}, *tb[2] = {out->inputs[0], t[1]};
    nb_tensor *da = za ? NULL : nbo_apply(g, out->op, ta, 2, &at);
    nb_tensor *db = zb ? NULL : nbo_apply(g, out->op, tb, 2, &at);
    nb_tensor *tz = za || zb ? (za ? db : da) : nb_add(g, da, db);
    nb_tensor *bias = CONV_BIAS(out);
    if (bias && !no_tangent(t[2])) {
        nb_tensor *tbias = nb_reshape(g, t[2], 3, (const int64_t[]){bias->shape[0], 1, 1});
        tz = tz ? nb_add(g, tz, tbias) : nb_broadcast_to(g, tbias, out->rank, out->shape);
    }
    if (!tz || CONV_ACT(out) != NB_LINEAR_RELU)
        return tz;
    return nb_relu_mask(g, tz, out);
}
