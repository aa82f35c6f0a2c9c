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
 * Every kernel works plane by plane (one (n, c) pair), planes in parallel
 * over the graph's threads; inside a plane each output row is built by
 * loops over the kernel's rows and columns whose innermost loop runs along
 * contiguous output columns (vectorised; strides 1 and 2 have loops of
 * their own). Each element is computed in one fixed order whatever the
 * thread count. */

#include "kernels.h"

enum { A_KH, A_KW, A_SH, A_SW, A_PH, A_PW, A_H, A_W };

/* The geometry of one pooling: the large plane h x w, the small plane
 * oh x ow, window, stride and padding; planes = N·C. Window columns
 * [kw0, kw1) are the ones some window has inside the input. */
typedef struct pool_geom {
    int64_t planes, h, w, oh, ow;
    int64_t kh, kw, sh, sw, ph, pw;
    int64_t kw0, kw1;
} pool_geom;

/* One op's work: src planes in, dst planes out (either may be the large
 * one), and the argmax planes of a max pooling (of the ops that use one). */
typedef struct pool_job {
    pool_geom geo;
    const void *src;
    void *dst;
    int64_t *arg;
} pool_job;

/* ------------------------------------------------------------ checks */

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
 * padded input. Records the error under op. */
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
    for (int d = 0; d < n; d++) {
        if (k[d] - 2 * p[d] > sp[d]) { /* k <= sp + 2p, without overflow */
            int64_t padded[2];         /* sp + 2p, at most INT64_MAX */
            for (int e = 0; e < n; e++)
                padded[e] = sp[e] > INT64_MAX - 2 * p[e] ? INT64_MAX : sp[e] + 2 * p[e];
            return nbc_error(g, NB_ERR_SHAPE, op,
                             "kernel %s is larger than the padded input %s (input %s, padding %s)",
                             dims_str(k, n, a, sizeof a), dims_str(padded, n, b, sizeof b), shape,
                             dims_str(p, n, c, sizeof c));
        }
    }
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
    return nbc_error(g, NB_ERR_RANK, op, "input %s has rank %d, not %d (%s)",
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
    /* input column ow·sw - pw + kw, at least kw - pw and at most
     * (ow-1)·sw - pw + kw: bounds that keep a huge padded window cheap */
    int64_t first = p.pw - (p.ow - 1) * p.sw;
    p.kw0 = first > 0 ? first : 0;
    p.kw1 = p.kw < w + p.pw ? p.kw : w + p.pw;
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

/* Output columns [*lo, *hi) whose window column kw lies inside the input:
 * 0 <= ow·sw - pw + kw < w. */
static inline void col_range(const pool_geom *p, int64_t kw, int64_t *lo, int64_t *hi)
{
    int64_t first = p->pw - kw, last = p->w - 1 + p->pw - kw; /* bounds of ow·sw */
    *lo = first > 0 ? (first + p->sw - 1) / p->sw : 0;
    int64_t end = last < 0 ? 0 : last / p->sw + 1;
    *hi = end < p->ow ? end : p->ow;
}

/* Window rows [*k0, *k1) of output row oh that lie inside the input; *top
 * is the input row of window row 0 (negative in the padding). */
static inline void row_range(const pool_geom *p, int64_t oh, int64_t *top, int64_t *k0, int64_t *k1)
{
    *top = oh * p->sh - p->ph;
    *k0 = *top < 0 ? -*top : 0;
    *k1 = p->h - *top < p->kh ? p->h - *top : p->kh;
}

/* Run LOOP(S) with S the column stride, a constant for strides 1 and 2 so
 * that those loops read contiguous (or pairwise) columns. */
#define WITH_STRIDE(sw, LOOP)                                                                      \
    do {                                                                                           \
        if ((sw) == 1) {                                                                           \
            LOOP(1)                                                                                \
        } else if ((sw) == 2) {                                                                    \
            LOOP(2)                                                                                \
        } else {                                                                                   \
            LOOP(sw)                                                                               \
        }                                                                                          \
    } while (0)

/* v takes the place of the maximum m: larger, or the first NaN */
#define POOL_TAKES(v, m) ((v) > (m) || ((v) != (v) && (m) == (m)))

/*
 * The plane kernels of one element type T (job j, plane `plane`):
 *  max_SFX:        y = the maximum of each window, scanned row by row, left
 *                  to right: a later element replaces the maximum only when
 *                  larger, or when it is the window's first NaN; the
 *                  position of the winner goes to the argmax;
 *  avg_SFX:        y = the sum of each window's elements inside the input,
 *                  in the same order, divided by the window's size;
 *  avg_unpool_SFX: the adjoint: every u added to each element of its window,
 *                  outputs in order, then the plane divided by the size;
 *  max_unpool_SFX: u added at its argmax, in output order;
 *  max_gather_SFX: v read at the argmax.
 */
#define DEFINE_POOL_KERNELS(T, SFX)                                                                \
    NBC_WIDE_CLONES static void max_##SFX(const pool_job *j, int64_t plane)                        \
    {                                                                                              \
        typedef T elem; /* for the loops below */                                                  \
        const pool_geom *p = &j->geo;                                                              \
        const T *x = (const T *)j->src + plane * p->h * p->w;                                      \
        T *y = (T *)j->dst + plane * p->oh * p->ow;                                                \
        int64_t *arg = j->arg + plane * p->oh * p->ow;                                             \
        for (int64_t oh = 0; oh < p->oh; oh++) {                                                   \
            T *restrict yr = y + oh * p->ow;                                                       \
            int64_t *restrict ar = arg + oh * p->ow;                                               \
            int64_t top, k0, k1;                                                                   \
            row_range(p, oh, &top, &k0, &k1);                                                      \
            /* start from each window's first element inside the input */                          \
            for (int64_t ow = 0; ow < p->ow; ow++) {                                               \
                int64_t left = ow * p->sw - p->pw, at = (top + k0) * p->w + (left > 0 ? left : 0); \
                yr[ow] = x[at];                                                                    \
                ar[ow] = at;                                                                       \
            }                                                                                      \
            for (int64_t kh = k0; kh < k1; kh++) {                                                 \
                int64_t row = (top + kh) * p->w;                                                   \
                const T *restrict xr = x + row;                                                    \
                for (int64_t kw = p->kw0; kw < p->kw1; kw++) {                                     \
                    int64_t lo, hi, off = kw - p->pw;                                              \
                    col_range(p, kw, &lo, &hi);                                                    \
                    WITH_STRIDE(p->sw, MAX_LOOP);                                                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    NBC_WIDE_CLONES static void avg_##SFX(const pool_job *j, int64_t plane)                        \
    {                                                                                              \
        const pool_geom *p = &j->geo;                                                              \
        const T *x = (const T *)j->src + plane * p->h * p->w;                                      \
        T *y = (T *)j->dst + plane * p->oh * p->ow;                                                \
        T size = (T)p->kh * (T)p->kw;                                                              \
        for (int64_t oh = 0; oh < p->oh; oh++) {                                                   \
            T *restrict yr = y + oh * p->ow;                                                       \
            int64_t top, k0, k1;                                                                   \
            row_range(p, oh, &top, &k0, &k1);                                                      \
            for (int64_t ow = 0; ow < p->ow; ow++)                                                 \
                yr[ow] = 0;                                                                        \
            for (int64_t kh = k0; kh < k1; kh++) {                                                 \
                const T *restrict xr = x + (top + kh) * p->w;                                      \
                for (int64_t kw = p->kw0; kw < p->kw1; kw++) {                                     \
                    int64_t lo, hi, off = kw - p->pw;                                              \
                    col_range(p, kw, &lo, &hi);                                                    \
                    WITH_STRIDE(p->sw, SUM_LOOP);                                                  \
                }                                                                                  \
            }                                                                                      \
            for (int64_t ow = 0; ow < p->ow; ow++)                                                 \
                yr[ow] /= size;                                                                    \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    NBC_WIDE_CLONES static void avg_unpool_##SFX(const pool_job *j, int64_t plane)                 \
    {                                                                                              \
        const pool_geom *p = &j->geo;                                                              \
        const T *u = (const T *)j->src + plane * p->oh * p->ow;                                    \
        T *dx = (T *)j->dst + plane * p->h * p->w;                                                 \
        T size = (T)p->kh * (T)p->kw;                                                              \
        for (int64_t e = 0; e < p->h * p->w; e++)                                                  \
            dx[e] = 0;                                                                             \
        for (int64_t oh = 0; oh < p->oh; oh++) {                                                   \
            const T *restrict ur = u + oh * p->ow;                                                 \
            int64_t top, k0, k1;                                                                   \
            row_range(p, oh, &top, &k0, &k1);                                                      \
            for (int64_t kh = k0; kh < k1; kh++) {                                                 \
                T *restrict xr = dx + (top + kh) * p->w;                                           \
                for (int64_t kw = p->kw0; kw < p->kw1; kw++) {                                     \
                    int64_t lo, hi, off = kw - p->pw;                                              \
                    col_range(p, kw, &lo, &hi);                                                    \
                    WITH_STRIDE(p->sw, SPREAD_LOOP);                                               \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int64_t e = 0; e < p->h * p->w; e++)                                                  \
            dx[e] /= size;                                                                         \
    }                                                                                              \
                                                                                                   \
    static void max_unpool_##SFX(const pool_job *j, int64_t plane)                                 \
    {                                                                                              \
        const pool_geom *p = &j->geo;                                                              \
        int64_t n = p->oh * p->ow;                                                                 \
        const T *u = (const T *)j->src + plane * n;                                                \
        const int64_t *arg = j->arg + plane * n;                                                   \
        T *dx = (T *)j->dst + plane * p->h * p->w;                                                 \
        for (int64_t e = 0; e < p->h * p->w; e++)                                                  \
            dx[e] = 0;                                                                             \
        for (int64_t k = 0; k < n; k++)                                                            \
            dx[arg[k]] += u[k];                                                                    \
    }                                                                                              \
                                                                                                   \
    static void max_gather_##SFX(const pool_job *j, int64_t plane)                                 \
    {                                                                                              \
        const pool_geom *p = &j->geo;                                                              \
        int64_t n = p->oh * p->ow;                                                                 \
        const T *v = (const T *)j->src + plane * p->h * p->w;                                      \
        const int64_t *arg = j->arg + plane * n;                                                   \
        T *y = (T *)j->dst + plane * n;                                                            \
        for (int64_t k = 0; k < n; k++)                                                            \
            y[k] = v[arg[k]];                                                                      \
    }

/* The innermost loops, over output columns [lo, hi) for window column kw
 * (input column ow·S + off) of one window row. */
#define MAX_LOOP(S)                                                                                \
    NBK_PRAGMA(omp simd)                                                                           \
    for (int64_t ow = lo; ow < hi; ow++) {                                                         \
        elem v = xr[ow * (S) + off], m = yr[ow];                                                   \
        bool take = POOL_TAKES(v, m);                                                              \
        yr[ow] = take ? v : m;                                                                     \
        ar[ow] = take ? row + ow * (S) + off : ar[ow];                                             \
    }
#define SUM_LOOP(S)                                                                                \
    NBK_PRAGMA(omp simd)                                                                           \
    for (int64_t ow = lo; ow < hi; ow++)                                                           \
        yr[ow] += xr[ow * (S) + off];
#define SPREAD_LOOP(S)                                                                             \
    NBK_PRAGMA(omp simd)                                                                           \
    for (int64_t ow = lo; ow < hi; ow++)                                                           \
        xr[ow * (S) + off] += ur[ow];

DEFINE_POOL_KERNELS(float, f32)
DEFINE_POOL_KERNELS(double, f64)

typedef void (*pool_plane_fn)(const pool_job *j, int64_t plane);

/* Run fn over every plane, on the graph's threads when the op moves at
 * least `work` elements worth it. */
static void run_planes(nb_graph *g, const pool_job *j, pool_plane_fn fn, int64_t work)
{
    int nt = nbc_threads_for(g, work);
    (void)nt;
    NBK_PRAGMA(omp parallel for num_threads(nt) if (nt > 1) schedule(static))
    for (int64_t k = 0; k < j->geo.planes; k++)
        fn(j, k);
}

/* The job of node out (input 0 to out) whose large plane is `large`'s,
 * with the window of attributes a. */
static pool_job job_of(const nb_tensor *out, const nb_attrs *a, const nb_tensor *large)
{
    pool_job j = {.src = out->inputs[0]->data, .dst = out->data};
    j.geo = geom_of(a, large->shape[0] * large->shape[1], large->shape[2], large->shape[3]);
    return j;
}

nb_status nbo_max_pool2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    nb_attrs *a = out->attrs;
    pool_job j = job_of(out, a, x);
    if (out->size > 0) {
        /* kept in the node; a replay of the op writes the same array again */
        if (!a->idx || a->n_idx != out->size) {
            int64_t *arg = nbc_alloc(g, (size_t)out->size * sizeof *arg, out->op->name);
            if (!arg)
                return NB_ERR_NOMEM;
            a->idx = arg;
            a->n_idx = out->size;
        }
        j.arg = (int64_t *)a->idx; /* the node's own copy (nbo_apply made it) */
    } else {
        a->idx = NULL;
        a->n_idx = 0;
    }
    run_planes(g, &j, out->dtype == NB_F32 ? max_f32 : max_f64, x->size + out->size);
    return NB_OK;
}

nb_status nbo_avg_pool2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    pool_job j = job_of(out, out->attrs, x);
    run_planes(g, &j, out->dtype == NB_F32 ? avg_f32 : avg_f64, x->size + out->size);
    return NB_OK;
}

nb_status nbo_avg_unpool2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *u = out->inputs[0];
    pool_job j = job_of(out, out->attrs, out);
    run_planes(g, &j, out->dtype == NB_F32 ? avg_unpool_f32 : avg_unpool_f64, u->size + out->size);
    return NB_OK;
}

nb_status nbo_max_unpool2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *u = out->inputs[0], *y = out->inputs[1];
    pool_job j = job_of(out, y->attrs, out);
    j.arg = (int64_t *)y->attrs->idx;
    run_planes(g, &j, out->dtype == NB_F32 ? max_unpool_f32 : max_unpool_f64, u->size + out->size);
    return NB_OK;
}

nb_status nbo_max_gather2d_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *v = out->inputs[0], *y = out->inputs[1];
    pool_job j = job_of(out, y->attrs, v);
    j.arg = (int64_t *)y->attrs->idx;
    run_planes(g, &j, out->dtype == NB_F32 ? max_gather_f32 : max_gather_f64, v->size + out->size);
    return NB_OK;
}

/* ------------------------------------------------------ derivative rules */

/* d max_pool2d = max_unpool2d(g, y): g goes to each window's argmax */
nb_tensor *nbo_max_pool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nb_max_unpool2d(g, gr, out);
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
