/* Pooling over the last two axes of NCHW tensors: max_pool2d, avg_pool2d,
 * and the primitives their derivative rules are made of, so that the
 * backward pass can itself be differentiated:
 *
 *   max_pool2d(x)       y = max over each window; the argmax is saved in the node
 *   max_unpool2d(u, y)  u scattered (added) to y's argmax positions, x-shaped
 *   max_gather2d(v, y)  v's entries at y's argmax positions, y-shaped
 *   avg_pool2d(x)       y = mean over each window (padding counts as zeros)
 *   avg_unpool2d(u)     the adjoint of avg_pool2d: u spread over each window
 *
 * Rules: d max_pool2d = max_unpool2d(g, y), t_y = max_gather2d(t, y);
 * max_unpool2d and max_gather2d are each other's adjoints (and linear in
 * their first input; the argmax is piecewise constant, so the second input
 * gets no gradient); d avg_pool2d = avg_unpool2d(g), and the other way round.
 * The 1-D forms run these ops on [N,C,1,L].
 *
 * Attributes (nb_attrs.ints):
 *   [0,1] kernel (KH, KW), [2,3] stride, [4,5] padding, [6,7] the input's
 *   H and W (set by the shape rule of the pools; given to avg_unpool2d).
 *   max_pool2d: idx/n_idx the argmax, written by the kernel: for each output
 *   element the flat index h·W + w of its maximum within its own [H,W]
 *   plane (kept whether or not the graph records, so that max_unpool2d can
 *   be used in inference too).
 *
 * Every kernel works plane by plane (one (n, c) pair), ranges of planes in
 * parallel over the graph's threads; inside a plane one vectorised loop per
 * window element runs over all outputs (see "kernels" below), except for
 * 2x2 windows of stride 2, read where they lie (direct_max). Each element
 * is computed in one fixed order whatever the thread count. */

#include "kernels.h"

enum { A_KH, A_KW, A_SH, A_SW, A_PH, A_PW, A_H, A_W };

/* The geometry of one pooling: the large plane h x w, the small plane
 * oh x ow, window, stride and padding; planes = N·C. */
typedef struct pool_geom {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, ph, pw;
} pool_geom;

/* ------------------------------------------------------------ checks */

/* Most elements of a padded plane: the kernels' offsets are 32-bit. */
#define NBO_POOL_MAX_PLANE ((int64_t)INT32_MAX)

/* "3x2" (or "3" for one axis) of n sizes into buf. */
static const char *dims_str(const int64_t *v, int n, char *buf, size_t size)
{
    if (n == 1)
        snprintf(buf, size, "%lld", (long long)v[0]);
    else
        snprintf(buf, size, "%lldx%lld", (long long)v[0], (long long)v[1]);
    return buf;
}

/* Check a pooling of an input whose n spatial sizes are sp (described as
 * `shape` in messages) with window k, stride s and padding p per axis:
 * sizes at least 1, padding at most half the window (PyTorch's rule, which
 * keeps a real element in every window), the window no larger than the
 * padded input, the padded plane no larger than NBO_POOL_MAX_PLANE.
 * Records the error under op. */
static nb_status pool_check(nb_graph *g, const char *op, const char *shape, const int64_t *sp,
                            int n, const int64_t *k, const int64_t *s, const int64_t *p)
{
    static const char *const axis_2d[] = {"H", "W"};
    char a[48], b[48], c[48];
    for (int d = 0; d < n; d++) {
        if (k[d] < 1)
            return nbc_error(g, NB_ERR_ARG, op, "kernel %s of input %s must be at least 1 per axis",
                             dims_str(k, n, a, sizeof a), shape);
        if (s[d] < 1)
            return nbc_error(g, NB_ERR_ARG, op, "stride %s of input %s must be at least 1 per axis",
                             dims_str(s, n, a, sizeof a), shape);
        if (p[d] < 0)
            return nbc_error(g, NB_ERR_ARG, op, "padding %s of input %s must not be negative",
                             dims_str(p, n, a, sizeof a), shape);
    }
    for (int d = 0; d < n; d++) {
        const char *ax = n == 1 ? "L" : axis_2d[d];
        if (p[d] > k[d] / 2)
            return nbc_error(g, NB_ERR_ARG, op,
                             "padding %s of input %s is more than half the kernel %s on axis %s "
                             "(at most %lld there)",
                             dims_str(p, n, a, sizeof a), shape, dims_str(k, n, b, sizeof b), ax,
                             (long long)(k[d] / 2));
        if (sp[d] < 1)
            return nbc_error(g, NB_ERR_SHAPE, op, "input %s has no elements on axis %s to pool",
                             shape, ax);
    }
    int64_t padded[2]; /* sp + 2p, at most INT64_MAX */
    for (int d = 0; d < n; d++)
        padded[d] = sp[d] > INT64_MAX - 2 * p[d] ? INT64_MAX : sp[d] + 2 * p[d];
    for (int d = 0; d < n; d++)
        if (k[d] - 2 * p[d] > sp[d]) /* k <= sp + 2p, without overflow */
            return nbc_error(g, NB_ERR_SHAPE, op,
                             "kernel %s is larger than the padded input %s (input %s, padding %s)",
                             dims_str(k, n, a, sizeof a), dims_str(padded, n, b, sizeof b), shape,
                             dims_str(p, n, c, sizeof c));
    if (padded[0] > NBO_POOL_MAX_PLANE / (n == 2 ? padded[1] : 1))
        return nbc_error(g, NB_ERR_SHAPE, op,
                         "the padded plane %s of input %s has more than %lld elements, the most "
                         "pooling takes",
                         dims_str(padded, n, a, sizeof a), shape, (long long)NBO_POOL_MAX_PLANE);
    return NB_OK;
}

/* Output size of one axis (checked by pool_check). */
static int64_t pooled_len(int64_t len, int64_t k, int64_t s, int64_t p)
{
    return (len - (k - 2 * p)) / s + 1;
}

/* The rank error of the pools: "max_pool2d: input [3,4] has rank 2, not 4 ([N,C,H,W])". */
static nb_status rank_error(nb_graph *g, const char *op, const nb_tensor *x, int want)
{
    char b[160];
    return nbc_error(g, NB_ERR_SHAPE, op, "input %s has rank %d, not %d (%s)",
                     nbc_shp(x, b, sizeof b), x->rank, want, want == 4 ? "[N,C,H,W]" : "[N,C,L]");
}

/* The geometry of pooling [N,C,h,w] with the window of attrs a. */
static pool_geom geom_of(const nb_attrs *a, int64_t planes, int64_t h, int64_t w)
{
    pool_geom p = {.planes = planes, .h = h, .w = w};
    p.kh = a->ints[A_KH], p.kw = a->ints[A_KW];
    p.sh = a->ints[A_SH], p.sw = a->ints[A_SW];
    p.ph = a->ints[A_PH], p.pw = a->ints[A_PW];
    p.oh = pooled_len(h, p.kh, p.sh, p.ph);
    p.ow = pooled_len(w, p.kw, p.sw, p.pw);
    return p;
}

/* max_pool2d and avg_pool2d: [N,C,H,W] -> [N,C,OH,OW]. */
nb_status nbo_pool_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    nb_attrs *a = out->attrs;
    const char *op = out->op->name;
    if (x->rank != 4)
        return rank_error(g, op, x, 4);
    char b[160];
    if (pool_check(g, op, nbc_shp(x, b, sizeof b), x->shape + 2, 2, a->ints + A_KH, a->ints + A_SH,
                   a->ints + A_PH) != NB_OK)
        return g->err.status;
    a->ints[A_H] = x->shape[2];
    a->ints[A_W] = x->shape[3];
    pool_geom p = geom_of(a, 0, x->shape[2], x->shape[3]);
    int64_t shape[4] = {x->shape[0], x->shape[1], p.oh, p.ow};
    return nb_op_set_result(g, out, x->dtype, 4, shape);
}

/* avg_unpool2d: [N,C,OH,OW] -> [N,C,H,W] with H, W in the attributes; OH
 * and OW must be what pooling [H,W] gives. */
nb_status nbo_avg_unpool2d_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *y = out->inputs[0];
    const nb_attrs *a = out->attrs;
    const char *op = out->op->name;
    if (y->rank != 4)
        return rank_error(g, op, y, 4);
    char b[160], target[64];
    const int64_t *sp = a->ints + A_H;
    snprintf(target, sizeof target, "[%lld,%lld,%lld,%lld]", (long long)y->shape[0],
             (long long)y->shape[1], (long long)sp[0], (long long)sp[1]);
    if (pool_check(g, op, target, sp, 2, a->ints + A_KH, a->ints + A_SH, a->ints + A_PH) != NB_OK)
        return g->err.status;
    pool_geom p = geom_of(a, 0, sp[0], sp[1]);
    if (y->shape[2] != p.oh || y->shape[3] != p.ow)
        return nbc_error(g, NB_ERR_SHAPE, op,
                         "input %s is not what pooling %s gives ([%lld,%lld,%lld,%lld])",
                         nbc_shp(y, b, sizeof b), target, (long long)y->shape[0],
                         (long long)y->shape[1], (long long)p.oh, (long long)p.ow);
    int64_t shape[4] = {y->shape[0], y->shape[1], sp[0], sp[1]};
    return nb_op_set_result(g, out, y->dtype, 4, shape);
}

/* The input shape of the max_pool2d result y. */
static void pooled_input_shape(const nb_tensor *y, int64_t *shape)
{
    shape[0] = y->shape[0];
    shape[1] = y->shape[1];
    shape[2] = y->attrs->ints[A_H];
    shape[3] = y->attrs->ints[A_W];
}

/* max_unpool2d(u, y) and max_gather2d(v, y): y a max_pool2d result (which
 * always keeps its argmax), the first input of y's dtype and of y's shape
 * (unpool) or of the shape y was pooled from (gather); the result the
 * other of the two. */
static nb_status argmax_pair_shape(nb_graph *g, nb_tensor *out, bool unpool)
{
    const nb_tensor *u = out->inputs[0], *y = out->inputs[1];
    const char *op = out->op->name;
    char b[160], c[160];
    if (y->op != &nbo_table[NB_OP_MAX_POOL2D])
        return nbc_error(g, NB_ERR_ARG, op,
                         "second input %s is not a result of max_pool2d (it is made by %s)",
                         nbc_shp(y, b, sizeof b), y->op ? y->op->name : "no op: a leaf");
    if (u->dtype != y->dtype)
        return nbc_error(g, NB_ERR_DTYPE, op, "inputs %s and %s have different dtypes",
                         nbc_shp(u, b, sizeof b), nbc_shp(y, c, sizeof c));
    int64_t large[4];
    pooled_input_shape(y, large);
    const int64_t *want = unpool ? y->shape : large;
    bool same = u->rank == 4;
    for (int d = 0; d < 4 && same; d++)
        same = u->shape[d] == want[d];
    if (!same)
        return nbc_error(g, NB_ERR_SHAPE, op,
                         "input %s does not have the shape [%lld,%lld,%lld,%lld] that goes with "
                         "max_pool2d result %s",
                         nbc_shp(u, b, sizeof b), (long long)want[0], (long long)want[1],
                         (long long)want[2], (long long)want[3], nbc_shp(y, c, sizeof c));
    return nb_op_set_result(g, out, y->dtype, 4, unpool ? large : y->shape);
}

nb_status nbo_max_unpool2d_shape(nb_graph *g, nb_tensor *out)
{
    return argmax_pair_shape(g, out, true);
}

nb_status nbo_max_gather2d_shape(nb_graph *g, nb_tensor *out)
{
    return argmax_pair_shape(g, out, false);
}

/* ----------------------------------------------------------- kernels */

/* Pooling kernels read and write planes through tables shared by all of
 * them: for output k (row-major over OH x OW), off[k] is where its window
 * starts in the plane the kernel reads, and real[k] the flat index h·W + w
 * of that start in x's own plane (negative where the window starts in the
 * padding). Window element (kh, kw) of output k is then off[k] + kh·RW + kw
 * and real[k] + kh·W + kw, RW being the row length of the plane read. So
 * every loop runs over all outputs of a plane at once, with gathered loads,
 * however small the plane: the short rows of a CNN's feature maps do not
 * cut the vectors short. With padding, each plane is first copied into the
 * middle of a padded plane (RW = W + 2·PW) whose border holds -inf (max),
 * or zeros (the averages); max pooling also needs first[k], the index in
 * x's plane of the first element of window k inside the input, which is
 * real[k] where there is no padding. Offsets are int32: the padded plane
 * has fewer than 2^31 elements (checked by the shape rules). */
typedef struct pool_plan {
    pool_geom geo;
    int64_t n;         /* outputs per plane, OH·OW */
    bool padded;       /* through a padded copy of each plane */
    int64_t rw, rsize; /* row length and size of the plane read */
    int32_t *off, *real, *first;
    char *bufs; /* per thread: a padded plane, then n elements (share) */
    size_t buf_bytes, share_bytes;
} pool_plan;

/* One op's work: src planes in, dst planes out (either may be the large
 * one), and the argmax of a max pooling (for the ops that use one). */
typedef struct pool_job {
    const pool_plan *plan;
    const void *src;
    void *dst;
    int64_t *arg;
} pool_job;

/* Make the plan of pooling [planes, h, w] with the window of attributes a
 * for nt threads, its tables and buffers in g's arena (the caller releases
 * them); NB_ERR_NOMEM recorded under op on failure. */
static nb_status plan_make(nb_graph *g, const char *op, pool_plan *pl, const nb_attrs *a,
                           int64_t planes, int64_t h, int64_t w, size_t elem, int nt)
{
    pool_geom p = geom_of(a, planes, h, w);
    pl->geo = p;
    pl->n = p.oh * p.ow;
    pl->padded = p.ph > 0 || p.pw > 0;
    pl->rw = w + 2 * p.pw;
    pl->rsize = (h + 2 * p.ph) * pl->rw;
    size_t table = nbc_round16((size_t)pl->n * sizeof(int32_t));
    pl->share_bytes = nbc_round16((size_t)pl->n * elem);
    pl->buf_bytes = (pl->padded ? nbc_round16((size_t)pl->rsize * elem) : 0) + pl->share_bytes;
    char *mem = nbc_alloc(g, 3 * table + (size_t)nt * pl->buf_bytes, op);
    if (!mem)
        return NB_ERR_NOMEM;
    pl->off = (int32_t *)mem;
    pl->real = (int32_t *)(mem + table);
    pl->first = pl->padded ? (int32_t *)(mem + 2 * table) : pl->real;
    pl->bufs = mem + 3 * table;
    for (int64_t i = 0, k = 0; i < p.oh; i++) {
        int64_t top = i * p.sh - p.ph, first_row = top > 0 ? top : 0;
        for (int64_t j = 0; j < p.ow; j++, k++) {
            int64_t left = j * p.sw - p.pw, first_col = left > 0 ? left : 0;
            pl->off[k] = (int32_t)(i * p.sh * pl->rw + j * p.sw);
            pl->real[k] = (int32_t)(top * w + left);
            pl->first[k] = (int32_t)(first_row * w + first_col);
        }
    }
    return NB_OK;
}

/* The plane read for plane `plane` of x: x's own, or its copy in the middle
 * of this thread's padded plane (whose border the caller filled). */
#define PLANE_READ(T, pl, x, buf)                                                                  \
    do {                                                                                           \
        if ((pl)->padded) {                                                                        \
            const pool_geom *q_ = &(pl)->geo;                                                      \
            for (int64_t r_ = 0; r_ < q_->h; r_++)                                                 \
                memcpy((buf) + (r_ + q_->ph) * (pl)->rw + q_->pw, (x) + r_ * q_->w,                \
                       (size_t)q_->w * sizeof(T));                                                 \
            (x) = (buf);                                                                           \
        }                                                                                          \
    } while (0)

/* v takes the place of the maximum m: larger, or the first NaN */
#define POOL_TAKES(v, m) ((v) > (m) || ((v) != (v) && (m) == (m)))

/*
 * The plane kernels of one element type T, for planes [p0, p1) of job j on
 * one thread:
 *  max_SFX:        y = the maximum of each window and its argmax: windows
 *                  are scanned row by row, left to right, a later element
 *                  replacing the maximum only when larger, or when it is the
 *                  window's first NaN; starting from -inf at the window's
 *                  first element inside the input, which the padding (-inf)
 *                  never replaces;
 *  avg_SFX:        y = the sum of each window, in the same order (padding
 *                  adds zeros), divided by the window's size;
 *  avg_unpool_SFX: the adjoint: every u, divided by the window's size, added
 *                  to each element of its window, window element by window
 *                  element (for one of them, the outputs touch distinct
 *                  elements);
 *  max_unpool_SFX: u added at its argmax, in output order;
 *  max_gather_SFX: v read at the argmax;
 *  max_direct_SFX, max_unpool_direct_SFX: max_SFX and max_unpool_SFX for
 *                  the windows of direct_max (below), with the same numbers.
 * The first three are compiled for AVX2 as well as the baseline: their
 * gathers run faster on 256-bit vectors than on AVX-512's.
 */
#define DEFINE_POOL_KERNELS(T, SFX)                                                                \
    NBC_AVX2_CLONES static void max_##SFX(const pool_job *j, int64_t p0, int64_t p1, char *bufv)   \
    {                                                                                              \
        const pool_plan *pl = j->plan;                                                             \
        const pool_geom *p = &pl->geo;                                                             \
        const int32_t *restrict off = pl->off, *restrict real = pl->real;                          \
        T *buf = (T *)bufv;                                                                        \
        for (int64_t e = 0; pl->padded && e < pl->rsize; e++)                                      \
            buf[e] = (T)-INFINITY;                                                                 \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *x = (const T *)j->src + plane * p->h * p->w;                                  \
            T *restrict y = (T *)j->dst + plane * pl->n;                                           \
            int64_t *restrict arg = j->arg + plane * pl->n;                                        \
            PLANE_READ(T, pl, x, buf);                                                             \
            NBK_PRAGMA(omp simd)                                                                   \
            for (int64_t k = 0; k < pl->n; k++) {                                                  \
                y[k] = (T)-INFINITY;                                                               \
                arg[k] = pl->first[k];                                                             \
            }                                                                                      \
            for (int64_t kh = 0; kh < p->kh; kh++)                                                 \
                for (int64_t kw = 0; kw < p->kw; kw++) {                                           \
                    int64_t d = kh * pl->rw + kw, dr = kh * p->w + kw;                             \
                    NBK_PRAGMA(omp simd)                                                           \
                    for (int64_t k = 0; k < pl->n; k++) {                                          \
                        T v = x[off[k] + d], m = y[k];                                             \
                        bool take = POOL_TAKES(v, m);                                              \
                        y[k] = take ? v : m;                                                       \
                        arg[k] = take ? real[k] + dr : arg[k];                                     \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    NBC_AVX2_CLONES static void avg_##SFX(const pool_job *j, int64_t p0, int64_t p1, char *bufv)   \
    {                                                                                              \
        const pool_plan *pl = j->plan;                                                             \
        const pool_geom *p = &pl->geo;                                                             \
        const int32_t *restrict off = pl->off;                                                     \
        T *buf = (T *)bufv, size = (T)p->kh * (T)p->kw;                                            \
        for (int64_t e = 0; pl->padded && e < pl->rsize; e++)                                      \
            buf[e] = 0;                                                                            \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *x = (const T *)j->src + plane * p->h * p->w;                                  \
            T *restrict y = (T *)j->dst + plane * pl->n;                                           \
            PLANE_READ(T, pl, x, buf);                                                             \
            for (int64_t k = 0; k < pl->n; k++)                                                    \
                y[k] = 0;                                                                          \
            for (int64_t kh = 0; kh < p->kh; kh++)                                                 \
                for (int64_t kw = 0; kw < p->kw; kw++) {                                           \
                    int64_t d = kh * pl->rw + kw;                                                  \
                    NBK_PRAGMA(omp simd)                                                           \
                    for (int64_t k = 0; k < pl->n; k++)                                            \
                        y[k] += x[off[k] + d];                                                     \
                }                                                                                  \
            NBK_PRAGMA(omp simd)                                                                   \
            for (int64_t k = 0; k < pl->n; k++)                                                    \
                y[k] /= size;                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    NBC_AVX2_CLONES static void avg_unpool_##SFX(const pool_job *j, int64_t p0, int64_t p1,        \
                                                 char *bufv)                                       \
    {                                                                                              \
        const pool_plan *pl = j->plan;                                                             \
        const pool_geom *p = &pl->geo;                                                             \
        const int32_t *restrict off = pl->off;                                                     \
        T size = (T)p->kh * (T)p->kw;                                                              \
        T *restrict share = (T *)(bufv + pl->buf_bytes - pl->share_bytes);                         \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *restrict u = (const T *)j->src + plane * pl->n;                               \
            T *dx = (T *)j->dst + plane * p->h * p->w;                                             \
            T *acc = pl->padded ? (T *)bufv : dx; /* the plane written, padded or not */           \
            NBK_PRAGMA(omp simd)                                                                   \
            for (int64_t k = 0; k < pl->n; k++)                                                    \
                share[k] = u[k] / size;                                                            \
            for (int64_t e = 0; e < pl->rsize; e++)                                                \
                acc[e] = 0;                                                                        \
            for (int64_t kh = 0; kh < p->kh; kh++)                                                 \
                for (int64_t kw = 0; kw < p->kw; kw++) {                                           \
                    int64_t d = kh * pl->rw + kw;                                                  \
                    NBK_PRAGMA(omp simd)                                                           \
                    for (int64_t k = 0; k < pl->n; k++)                                            \
                        acc[off[k] + d] += share[k];                                               \
                }                                                                                  \
            for (int64_t r = 0; pl->padded && r < p->h; r++)                                       \
                memcpy(dx + r * p->w, acc + (r + p->ph) * pl->rw + p->pw,                          \
                       (size_t)p->w * sizeof(T));                                                  \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static void max_unpool_##SFX(const pool_job *j, int64_t p0, int64_t p1, char *bufv)            \
    {                                                                                              \
        (void)bufv;                                                                                \
        const pool_geom *p = &j->plan->geo;                                                        \
        int64_t n = j->plan->n;                                                                    \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *u = (const T *)j->src + plane * n;                                            \
            const int64_t *arg = j->arg + plane * n;                                               \
            T *dx = (T *)j->dst + plane * p->h * p->w;                                             \
            for (int64_t e = 0; e < p->h * p->w; e++)                                              \
                dx[e] = 0;                                                                         \
            for (int64_t k = 0; k < n; k++)                                                        \
                dx[arg[k]] += u[k];                                                                \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static void max_gather_##SFX(const pool_job *j, int64_t p0, int64_t p1, char *bufv)            \
    {                                                                                              \
        (void)bufv;                                                                                \
        const pool_geom *p = &j->plan->geo;                                                        \
        int64_t n = j->plan->n;                                                                    \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *v = (const T *)j->src + plane * p->h * p->w;                                  \
            const int64_t *arg = j->arg + plane * n;                                               \
            T *y = (T *)j->dst + plane * n;                                                        \
            for (int64_t k = 0; k < n; k++)                                                        \
                y[k] = v[arg[k]];                                                                  \
        }                                                                                          \
    }

DEFINE_POOL_KERNELS(float, f32)
DEFINE_POOL_KERNELS(double, f64)

/* Max pooling reads the plane where it lies, without tables, for 2x2
 * windows of column stride 2 without padding (every window starts inside
 * the plane; any row stride) in rows of at least 4 outputs (fewer would
 * leave the vectors short): the most common pooling of CNNs. */
static bool direct_max(const pool_geom *p)
{
    return p->kh == 2 && p->kw == 2 && p->sw == 2 && p->ph == 0 && p->pw == 0 && p->ow >= 4;
}

/* ... and max_unpool too when the windows do not overlap either, so that
 * every element of the plane lies in at most one window (the one of its
 * row / SH and column / SW), in rows of at least 8 outputs (on shorter ones
 * zeroing the plane and adding u at the argmax was faster). */
static bool direct_unpool(const pool_geom *p)
{
    return direct_max(p) && p->kh <= p->sh && p->ow >= 8;
}

/* Window element (R, C) of output q of a row, in max_SFX's scan: it
 * replaces the maximum m only when larger, or when it is the first NaN; a
 * is the argmax (32-bit: a plane has fewer than 2^31 elements). */
#define MAX_DIRECT_STEP(T, R, C)                                                                   \
    do {                                                                                           \
        T v_ = r##R[2 * q + (C)];                                                                  \
        bool take_ = POOL_TAKES(v_, m);                                                            \
        m = take_ ? v_ : m;                                                                        \
        a = take_ ? start + (int32_t)((R)*w + (C)) : a;                                            \
    } while (0)

/* One plane of max pooling for direct_max windows, output row by output
 * row, in blocks of BLK outputs (a constant: whole vectors), the last block
 * of a row moved back to end at the row's end (its first outputs are
 * computed twice, to the same numbers; rows have at least BLK outputs):
 * one loop over a block scans each 2x2 window row by row, left to right,
 * as max_SFX does, so each output gets the same numbers. */
#define MAX_DIRECT_PLANE(T, BLK)                                                                   \
    do {                                                                                           \
        const int64_t w = p->w, ow = p->ow, step = p->sh * p->w;                                   \
        for (int64_t i = 0; i < p->oh; i++) {                                                      \
            for (int64_t j0 = 0; j0 < ow; j0 += (BLK)) {                                           \
                int64_t jb = j0 + (BLK) <= ow ? j0 : ow - (BLK);                                   \
                const T *restrict r0 = x + i * step + 2 * jb, *restrict r1 = r0 + w;               \
                T *restrict yr = y + i * ow + jb;                                                  \
                int64_t *restrict ar = arg + i * ow + jb;                                          \
                int32_t top = (int32_t)(i * step + 2 * jb);                                        \
                NBK_PRAGMA(omp simd)                                                               \
                for (int q = 0; q < (BLK); q++) {                                                  \
                    int32_t start = top + 2 * q, a = start;                                        \
                    T m = (T)-INFINITY;                                                            \
                    MAX_DIRECT_STEP(T, 0, 0);                                                      \
                    MAX_DIRECT_STEP(T, 0, 1);                                                      \
                    MAX_DIRECT_STEP(T, 1, 0);                                                      \
                    MAX_DIRECT_STEP(T, 1, 1);                                                      \
                    yr[q] = m;                                                                     \
                    ar[q] = a;                                                                     \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Element (R, C) of the window of output q of a row for max_unpool: 0 + u
 * (what adding u to a zero gives, -0 included) where it is the argmax, +0
 * elsewhere. */
#define UNPOOL_DIRECT_STEP(R, C) d##R[2 * q + (C)] = at == (R)*w + (C) ? v : 0

/* One plane of max_unpool for direct_unpool windows, in one sweep: the two
 * rows of the windows of each output row written in blocks of BLK outputs
 * as MAX_DIRECT_PLANE reads them, every other element of the plane +0: the
 * numbers of max_unpool_SFX's zeros and sums. */
#define MAX_UNPOOL_DIRECT_PLANE(T, BLK)                                                            \
    do {                                                                                           \
        const int64_t w = p->w, ow = p->ow, step = p->sh * p->w;                                   \
        for (int64_t i = 0; i < p->oh; i++) {                                                      \
            T *row = dx + i * step;                                                                \
            for (int64_t j0 = 0; j0 < ow; j0 += (BLK)) {                                           \
                int64_t jb = j0 + (BLK) <= ow ? j0 : ow - (BLK);                                   \
                T *restrict d0 = row + 2 * jb, *restrict d1 = d0 + w;                              \
                const T *restrict ur = u + i * ow + jb;                                            \
                const int64_t *restrict ar = arg + i * ow + jb;                                    \
                int64_t top = i * step + 2 * jb;                                                   \
                NBK_PRAGMA(omp simd)                                                               \
                for (int q = 0; q < (BLK); q++) {                                                  \
                    int64_t at = ar[q] - top - 2 * q; /* where in its window */                    \
                    T v = (T)0 + ur[q];                                                            \
                    UNPOOL_DIRECT_STEP(0, 0);                                                      \
                    UNPOOL_DIRECT_STEP(0, 1);                                                      \
                    UNPOOL_DIRECT_STEP(1, 0);                                                      \
                    UNPOOL_DIRECT_STEP(1, 1);                                                      \
                }                                                                                  \
            }                                                                                      \
            for (int64_t r = 0; r < 2; r++) /* the columns right of the windows */                 \
                for (int64_t c = 2 * ow; c < w; c++)                                               \
                    row[r * w + c] = 0;                                                            \
            int64_t next = (i + 1) * step < p->h * w ? step : p->h * w - i * step;                 \
            for (int64_t e = 2 * w; e < next; e++) /* rows between windows, inside the plane */    \
                row[e] = 0;                                                                        \
        }                                                                                          \
        for (int64_t e = p->oh * step; e < p->h * w; e++) /* rows below the last */                \
            dx[e] = 0;                                                                             \
    } while (0)

#define DEFINE_DIRECT_KERNELS(T, SFX)                                                              \
    NBC_AVX2_CLONES static void max_direct_##SFX(const pool_job *j, int64_t p0, int64_t p1,        \
                                                 char *bufv)                                       \
    {                                                                                              \
        (void)bufv;                                                                                \
        const pool_geom *p = &j->plan->geo;                                                        \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *x = (const T *)j->src + plane * p->h * p->w;                                  \
            T *y = (T *)j->dst + plane * j->plan->n;                                               \
            int64_t *arg = j->arg + plane * j->plan->n;                                            \
            if (p->ow >= 8)                                                                        \
                MAX_DIRECT_PLANE(T, 8);                                                            \
            else                                                                                   \
                MAX_DIRECT_PLANE(T, 4);                                                            \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    NBC_AVX2_CLONES static void max_unpool_direct_##SFX(const pool_job *j, int64_t p0, int64_t p1, \
                                                        char *bufv)                                \
    {                                                                                              \
        (void)bufv;                                                                                \
        const pool_geom *p = &j->plan->geo;                                                        \
        for (int64_t plane = p0; plane < p1; plane++) {                                            \
            const T *u = (const T *)j->src + plane * j->plan->n;                                   \
            const int64_t *arg = j->arg + plane * j->plan->n;                                      \
            T *dx = (T *)j->dst + plane * p->h * p->w;                                             \
            MAX_UNPOOL_DIRECT_PLANE(T, 8);                                                         \
        }                                                                                          \
    }

DEFINE_DIRECT_KERNELS(float, f32)
DEFINE_DIRECT_KERNELS(double, f64)

typedef void (*pool_planes_fn)(const pool_job *j, int64_t p0, int64_t p1, char *buf);

typedef struct planes_job {
    const pool_job *job;
    pool_planes_fn fn;
    int64_t planes;
} planes_job;

/* Task t of nt: a contiguous range of planes, with padded plane t */
static void planes_task(void *ctx, int t, int nt)
{
    const planes_job *j = ctx;
    const pool_plan *pl = j->job->plan;
    j->fn(j->job, j->planes * t / nt, j->planes * (t + 1) / nt,
          pl->bufs + (size_t)t * pl->buf_bytes);
}

/* Run an op's kernel (f32 or f64, by out's dtype) from its input 0 into
 * out, over the N·C planes of `large` (x's shape) with the window of
 * attributes a and the argmax arg (NULL for the ops without one): each
 * thread takes a contiguous range of planes and a padded plane of its own.
 * NB_ERR_NOMEM when the tables do not fit. */
static nb_status run_planes(nb_graph *g, nb_tensor *out, const nb_attrs *a, const nb_tensor *large,
                            const int64_t *arg, pool_planes_fn f32, pool_planes_fn f64)
{
    const nb_tensor *in = out->inputs[0];
    int64_t planes = large->shape[0] * large->shape[1];
    if (planes == 0)
        return NB_OK;
    int nt = nbc_threads_for(g, in->size + out->size);
    if (nt > planes)
        nt = (int)planes;
    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    pool_plan pl;
    if (plan_make(g, out->op->name, &pl, a, planes, large->shape[2], large->shape[3],
                  nbc_dtype_size(out->dtype), nt) != NB_OK)
        return NB_ERR_NOMEM;
    pool_job j = {&pl, in->data, out->data, (int64_t *)arg};
    pool_planes_fn fn = out->dtype == NB_F32 ? f32 : f64;
    planes_job pj = {&j, fn, planes};
    nbc_parallel(nt, planes_task, &pj);
    nbc_arena_release(&g->arena, pos);
    return NB_OK;
}

nb_status nbo_max_pool2d_fwd(nb_graph *g, nb_tensor *out)
{
    nb_attrs *a = out->attrs;
    if (out->size > 0) {
        /* kept in the node; a replay of the op writes the same array again */
        if (!a->idx || a->n_idx != out->size) {
            int64_t *arg = nbc_alloc(g, (size_t)out->size * sizeof *arg, out->op->name);
            if (!arg)
                return NB_ERR_NOMEM;
            a->idx = arg; /* written below: the node's own array */
            a->n_idx = out->size;
        }
    } else {
        a->idx = NULL;
        a->n_idx = 0;
    }
    pool_geom p = geom_of(a, 0, a->ints[A_H], a->ints[A_W]);
    if (direct_max(&p))
        return run_planes(g, out, a, out->inputs[0], a->idx, max_direct_f32, max_direct_f64);
    return run_planes(g, out, a, out->inputs[0], a->idx, max_f32, max_f64);
}

nb_status nbo_avg_pool2d_fwd(nb_graph *g, nb_tensor *out)
{
    return run_planes(g, out, out->attrs, out->inputs[0], NULL, avg_f32, avg_f64);
}

nb_status nbo_avg_unpool2d_fwd(nb_graph *g, nb_tensor *out)
{
    return run_planes(g, out, out->attrs, out, NULL, avg_unpool_f32, avg_unpool_f64);
}

/* max_unpool2d and max_gather2d: the window and argmax of input 1 */
nb_status nbo_max_unpool2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *y = out->inputs[1];
    pool_geom p = geom_of(y->attrs, 0, y->attrs->ints[A_H], y->attrs->ints[A_W]);
    if (direct_unpool(&p))
        return run_planes(g, out, y->attrs, out, y->attrs->idx, max_unpool_direct_f32,
                          max_unpool_direct_f64);
    return run_planes(g, out, y->attrs, out, y->attrs->idx, max_unpool_f32, max_unpool_f64);
}

nb_status nbo_max_gather2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *y = out->inputs[1];
    return run_planes(g, out, y->attrs, out->inputs[0], y->attrs->idx, max_gather_f32,
                      max_gather_f64);
}

/* ------------------------------------------------------ derivative rules */

/* d max_pool2d = max_unpool2d(g, y): g goes to each window's argmax; masked
 * by ReLU's rule first when x is a ReLU's result (table.h) */
nb_tensor *nbo_max_pool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    if (nbo_relu_result(out->inputs[0]))
        gr = nb_relu_mask(g, gr, out);
    return nb_max_unpool2d(g, gr, out);
}

/* A linear map's result (rank 2 or 3) is never max_pool2d's input */
bool nbo_relu_result(const nb_tensor *y)
{
    return y->op == &nbo_table[NB_OP_RELU] || nbo_conv2d_relu(y);
}

bool nbo_masked_unpool(const nb_tensor *d, const nb_tensor *y)
{
    const nb_tensor *p = d->op == &nbo_table[NB_OP_MAX_UNPOOL2D] ? d->inputs[1] : NULL;
    const nb_tensor *u = p ? d->inputs[0] : NULL;
    return p && p->op == &nbo_table[NB_OP_MAX_POOL2D] && p->inputs[0] == y &&
           u->op == &nbo_table[NB_OP_RELU_MASK] && u->inputs[1] == p;
}
/* t_y = t at the argmax */
nb_tensor *nbo_max_pool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_max_gather2d(g, t[0], out);
}

/* d max_unpool2d(u, y) = max_gather2d(g, y) for u; none for y (the argmax
 * is piecewise constant) */
nb_tensor *nbo_max_unpool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return i == 0 ? nb_max_gather2d(g, gr, out->inputs[1]) : NULL;
}
nb_tensor *nbo_max_unpool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_max_unpool2d(g, t[0], out->inputs[1]);
}

/* d max_gather2d(v, y) = max_unpool2d(g, y) for v; none for y */
nb_tensor *nbo_max_gather2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return i == 0 ? nb_max_unpool2d(g, gr, out->inputs[1]) : NULL;
}
nb_tensor *nbo_max_gather2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_max_gather2d(g, t[0], out->inputs[1]);
}

/* d avg_pool2d = avg_unpool2d(g) (same window, x's H and W); t_y = avg_pool2d(t) */
nb_tensor *nbo_avg_pool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nbo_apply(g, &nbo_table[NB_OP_AVG_UNPOOL2D], &gr, 1, out->attrs);
}
nb_tensor *nbo_avg_pool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nbo_apply(g, &nbo_table[NB_OP_AVG_POOL2D], &t[0], 1, out->attrs);
}

/* d avg_unpool2d = avg_pool2d(g); t_y = avg_unpool2d(t) */
nb_tensor *nbo_avg_unpool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nbo_apply(g, &nbo_table[NB_OP_AVG_POOL2D], &gr, 1, out->attrs);
}
nb_tensor *nbo_avg_unpool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nbo_apply(g, &nbo_table[NB_OP_AVG_UNPOOL2D], &t[0], 1, out->attrs);
}

/* ----------------------------------------------------------- constructors */

/* The attributes of a 2-D window. */
static nb_attrs window_attrs(const nb_pool2d_opts *o)
{
    nb_attrs a = {0};
    for (int d = 0; d < 2; d++) {
        a.ints[A_KH + d] = o->kernel[d];
        a.ints[A_SH + d] = o->stride[d];
        a.ints[A_PH + d] = o->padding[d];
    }
    return a;
}

static nb_tensor *pool2d(nb_graph *g, int op, nb_tensor *x, const nb_pool2d_opts *o)
{
    if (!g || !x)
        return NULL;
    if (!o) {
        char b[160];
        nbc_error(g, NB_ERR_NULL, nbo_table[op].name, "options are NULL (input %s)",
                  nbc_shp(x, b, sizeof b));
        return NULL;
    }
    nb_attrs a = window_attrs(o);
    return nbo_apply(g, &nbo_table[op], &x, 1, &a);
}

nb_tensor *nb_max_pool2d(nb_graph *g, nb_tensor *x, const nb_pool2d_opts *o)
{
    return pool2d(g, NB_OP_MAX_POOL2D, x, o);
}

nb_tensor *nb_avg_pool2d(nb_graph *g, nb_tensor *x, const nb_pool2d_opts *o)
{
    return pool2d(g, NB_OP_AVG_POOL2D, x, o);
}

nb_tensor *nb_avg_unpool2d(nb_graph *g, nb_tensor *u, const nb_pool2d_opts *o, int64_t h, int64_t w)
{
    if (!g || !u)
        return NULL;
    if (!o) {
        char b[160];
        nbc_error(g, NB_ERR_NULL, "avg_unpool2d", "options are NULL (input %s)",
                  nbc_shp(u, b, sizeof b));
        return NULL;
    }
    nb_attrs a = window_attrs(o);
    a.ints[A_H] = h;
    a.ints[A_W] = w;
    return nbo_apply(g, &nbo_table[NB_OP_AVG_UNPOOL2D], &u, 1, &a);
}

nb_tensor *nb_max_unpool2d(nb_graph *g, nb_tensor *u, nb_tensor *y)
{
    nb_tensor *in[2] = {u, y};
    return nbo_apply(g, &nbo_table[NB_OP_MAX_UNPOOL2D], in, 2, NULL);
}

nb_tensor *nb_max_gather2d(nb_graph *g, nb_tensor *v, nb_tensor *y)
{
    nb_tensor *in[2] = {v, y};
    return nbo_apply(g, &nbo_table[NB_OP_MAX_GATHER2D], in, 2, NULL);
}

/* 1-D pooling: the 2-D op on [N,C,1,L] with a 1 x kernel window, between
 * two reshapes; the arguments are checked here, under the 1-D name. */
static nb_tensor *pool1d(nb_graph *g, int op, const char *name, nb_tensor *x, int64_t kernel,
                         int64_t stride, int64_t padding)
{
    if (!g || !x)
        return NULL;
    if (x->rank != 3) {
        rank_error(g, name, x, 3);
        return NULL;
    }
    char b[160];
    if (pool_check(g, name, nbc_shp(x, b, sizeof b), x->shape + 2, 1, &kernel, &stride, &padding) !=
        NB_OK)
        return NULL;
    nb_pool2d_opts o = {{1, kernel}, {1, stride}, {0, padding}};
    int64_t planes[4] = {x->shape[0], x->shape[1], 1, x->shape[2]};
    nb_tensor *y = pool2d(g, op, nb_reshape(g, x, 4, planes), &o);
    if (!y)
        return NULL;
    return nb_reshape(g, y, 3, (int64_t[]){y->shape[0], y->shape[1], y->shape[3]});
}

nb_tensor *nb_max_pool1d(nb_graph *g, nb_tensor *x, int64_t kernel, int64_t stride, int64_t padding)
{
    return pool1d(g, NB_OP_MAX_POOL2D, "max_pool1d", x, kernel, stride, padding);
}

nb_tensor *nb_avg_pool1d(nb_graph *g, nb_tensor *x, int64_t kernel, int64_t stride, int64_t padding)
{
    return pool1d(g, NB_OP_AVG_POOL2D, "avg_pool1d", x, kernel, stride, padding);
}
