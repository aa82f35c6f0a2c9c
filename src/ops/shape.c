/* Shape ops: reshape, permute (and transpose), slice and its adjoint
 * unslice, concat and stack, gather and its adjoint scatter_add, one_hot;
 * and the compositions split, squeeze, unsqueeze and select.
 *
 * Most of these only move elements, so their kernels work on bytes with
 * the element size as a parameter (one kernel for both dtypes); the two
 * that do arithmetic (scatter_add accumulates, one_hot writes ones) are a
 * macro body instantiated for float and double. Every derivative rule is
 * the op's adjoint, written with the public ops:
 *   reshape <-> reshape back, permute <-> inverse permute,
 *   slice <-> unslice, gather <-> scatter_add, concat -> slices,
 *   stack -> selects.
 *
 * Attributes (nb_attrs) per op, as the shape rules leave them:
 *   reshape      ints[0..rank) requested sizes (-1 allowed), ints[NB_MAX_RANK] rank
 *   permute      ints[0..rank) perm, normalised to 0..rank-1
 *   slice        ints[0] axis, [1] start, [2] stop, [3] step
 *                (normalised, 0 <= start <= stop <= len)
 *   unslice      ints[0] axis, [1] size, [2] start, [3] step (normalised)
 *   concat       ints[0] axis (normalised)
 *   stack        ints[0] axis of the result (normalised)
 *   gather       ints[0] axis (normalised); idx/n_idx as given (may be negative)
 *   scatter_add  ints[0] axis (normalised), [1] size; idx/n_idx as given
 *   one_hot      ints[0] depth, [1] dtype; idx/n_idx the labels
 */

#include "kernels.h"

enum { A_AXIS = 0 };

/* ---------------------------------------------------------------- helpers */

/* Elements before and after axis: t viewed as [outer, len(axis), inner]. */
static void split_at(const nb_tensor *t, int axis, int64_t *outer, int64_t *inner)
{
    int64_t o = 1, in = 1;
    for (int d = 0; d < axis; d++)
        o *= t->shape[d];
    for (int d = axis + 1; d < t->rank; d++)
        in *= t->shape[d];
    *outer = o;
    *inner = in;
}

/* Give out x's dtype and shape but with n on axis, and check that the
 * result's size is representable. */
static nb_status like_but_axis(nb_graph *g, nb_tensor *out, const nb_tensor *x, int axis, int64_t n)
{
    out->dtype = x->dtype;
    out->rank = x->rank;
    memcpy(out->shape, x->shape, (size_t)x->rank * sizeof *x->shape);
    out->shape[axis] = n;
    return nbc_check_desc(g, out->dtype, out->rank, out->shape, out->op->name);
}

/* Normalise an axis of out's first input, recording an error when it is
 * out of range. */
static int check_axis(nb_graph *g, const nb_tensor *out, const nb_tensor *x, int64_t axis)
{
    return nbk_check_axis(g, out->op->name, x, axis, x->rank);
}

/* An index into an axis of length len, negative counting from the end;
 * the caller has checked that it lies in [-len, len). */
static inline int64_t wrap(int64_t i, int64_t len)
{
    return i < 0 ? i + len : i;
}

/* Check every index against an axis of length len. */
static nb_status check_indices(nb_graph *g, const nb_tensor *out, const char *what,
                               const int64_t *idx, int64_t n, int64_t len, const nb_tensor *x,
                               int axis)
{
    for (int64_t k = 0; k < n; k++) {
        if (idx[k] < -len || idx[k] >= len) {
            char b[160];
            return nbc_error(g, NB_ERR_ARG, out->op->name,
                             "%s[%lld] = %lld is out of range for axis %d of length %lld "
                             "(input %s)",
                             what, (long long)k, (long long)idx[k], axis, (long long)len,
                             nbc_shp(x, b, sizeof b));
        }
    }
    return NB_OK;
}

/* Run STMT with ES a compile-time constant for the usual element sizes, so
 * that memcpy of one element compiles to a move. */
#define WITH_ELEM_SIZE(bytes, STMT)                                                                \
    do {                                                                                           \
        switch (bytes) {                                                                           \
        case 4: {                                                                                  \
            enum { ES = 4 };                                                                       \
            STMT;                                                                                  \
        } break;                                                                                   \
        case 8: {                                                                                  \
            enum { ES = 8 };                                                                       \
            STMT;                                                                                  \
        } break;                                                                                   \
        default: {                                                                                 \
            const size_t ES = (bytes);                                                             \
            STMT;                                                                                  \
        } break;                                                                                   \
        }                                                                                          \
    } while (0)

/* Copy count blocks of `bytes` bytes; block k goes from src + k*src_step to
 * dst + k*dst_step (steps in bytes). */
static void copy_blocks(char *dst, int64_t dst_step, const char *src, int64_t src_step,
                        int64_t count, size_t bytes)
{
    WITH_ELEM_SIZE(bytes, for (int64_t k = 0; k < count; k++)
                              memcpy(dst + k * dst_step, src + k * src_step, ES));
}

/* ---------------------------------------------------------------- reshape */

/* "[3,4] to [5,-1]: <reason>", formatted only when there is an error. */
static NB_NOINLINE nb_status reshape_error(nb_graph *g, const nb_tensor *out, nb_status code,
                                           const char *fmt, ...)
{
    char bx[160], bw[160], what[200];
    nb_shape_str((int)out->attrs->ints[NB_MAX_RANK], out->attrs->ints, bw, sizeof bw);
    nbc_shp(out->inputs[0], bx, sizeof bx);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nbc_error(g, code, out->op->name, "%s to %s: %s", bx, bw, what);
}

nb_status nbo_reshape_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    const int64_t *want = out->attrs->ints;
    int rank = (int)out->attrs->ints[NB_MAX_RANK];
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < rank; d++) {
        if (want[d] == -1) {
            if (infer >= 0)
                return reshape_error(g, out, NB_ERR_ARG,
                                     "only one size may be -1 (axes %d and %d are)", infer, d);
            infer = d;
            continue;
        }
        if (want[d] < 0)
            return reshape_error(g, out, NB_ERR_ARG, "size %lld of axis %d is negative",
                                 (long long)want[d], d);
        if (nbc_mul_overflows(known, want[d], &known))
            return reshape_error(g, out, NB_ERR_SHAPE, "element count overflows");
    }
    out->dtype = x->dtype;
    out->rank = rank;
    for (int d = 0; d < rank; d++)
        out->shape[d] = want[d];
    if (infer >= 0) {
        if (known == 0 || x->size % known != 0)
            return reshape_error(g, out, NB_ERR_SHAPE,
                                 "%lld elements do not fill the other axes (the -1 cannot be "
                                 "inferred)",
                                 (long long)x->size);
        out->shape[infer] = x->size / known;
    } else if (known != x->size) {
        return reshape_error(g, out, NB_ERR_SHAPE, "%lld elements cannot become %lld",
                             (long long)x->size, (long long)known);
    }
    return NB_OK;
}

nb_status nbo_reshape_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    if (out->size > 0)
        memcpy(out->data, x->data, (size_t)out->size * nb_dtype_size(out->dtype));
    return NB_OK;
}

/* d reshape(x) = reshape(g, shape(x)) */
nb_tensor *nbo_reshape_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const nb_tensor *x = out->inputs[0];
    return nb_reshape(g, gr, x->rank, x->shape);
}
nb_tensor *nbo_reshape_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_reshape(g, t[0], out->rank, out->shape);
}

nb_tensor *nb_reshape(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape)
{
    if (!g)
        return NULL;
    if (rank < 0 || rank > NB_MAX_RANK) {
        nbc_error(g, NB_ERR_RANK, "reshape", "rank %d is outside 0..%d", rank, NB_MAX_RANK);
        return NULL;
    }
    if (rank > 0 && !shape) {
        nbc_error(g, NB_ERR_NULL, "reshape", "shape is NULL for rank %d", rank);
        return NULL;
    }
    nb_attrs a = {0};
    for (int d = 0; d < rank; d++)
        a.ints[d] = shape[d];
    a.ints[NB_MAX_RANK] = rank;
    return nbo_apply(g, &nbo_table[NB_OP_RESHAPE], &x, 1, &a);
}

/* ---------------------------------------------------------------- permute */

nb_status nbo_permute_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int64_t *perm = out->attrs->ints, given[NB_MAX_RANK];
    memcpy(given, perm, sizeof given);
    bool seen[NB_MAX_RANK] = {false};
    for (int i = 0; i < x->rank; i++) {
        int64_t p = perm[i] < 0 ? perm[i] + x->rank : perm[i];
        if (p < 0 || p >= x->rank || seen[p]) {
            char bx[160], bp[160];
            nb_shape_str(x->rank, given, bp, sizeof bp);
            return nbc_error(
                g, NB_ERR_ARG, out->op->name,
                "perm %s is not a permutation of the %d axes of %s (entry %d = %lld %s)", bp,
                x->rank, nbc_shp(x, bx, sizeof bx), i, (long long)perm[i],
                p < 0 || p >= x->rank ? "is out of range" : "repeats an axis");
        }
        seen[p] = true;
        perm[i] = p;
    }
    out->dtype = x->dtype;
    out->rank = x->rank;
    for (int i = 0; i < x->rank; i++)
        out->shape[i] = x->shape[perm[i]];
    return NB_OK;
}

/* Side of the square tiles of the blocked 2-D transpose (32 x 32 elements
 * of 8 bytes = 8 KiB: both tiles stay in L1). */
#define TILE 32

/* One band of a blocked transpose: rows a in [a0, a1) of an A x B plane
 * where element (a, b) is read at src[a + b*src_b] and written at
 * dst[a*dst_a + b] (element units). */
static void transpose_band(char *dst, int64_t dst_a, const char *src, int64_t src_b, int64_t a0,
                           int64_t a1, int64_t B, size_t bytes)
{
    WITH_ELEM_SIZE(bytes, {
        for (int64_t b0 = 0; b0 < B; b0 += TILE) {
            int64_t b1 = b0 + TILE < B ? b0 + TILE : B;
            for (int64_t a = a0; a < a1; a++) {
                char *po = dst + (size_t)(a * dst_a) * ES;
                const char *px = src + (size_t)a * ES;
                for (int64_t b = b0; b < b1; b++)
                    memcpy(po + (size_t)b * ES, px + (size_t)(b * src_b) * ES, ES);
            }
        }
    });
}

/* A permutation done as blocked 2-D transposes: the merged axes (sizes n,
 * strides is in x and os in out, r of them), q the one contiguous in x; a
 * job is one band of TILE rows of one plane. */
typedef struct transpose_plan {
    int r, q;
    const int64_t *n, *is, *os;
    int64_t bands; /* per plane */
    char *o;
    const char *px;
    size_t es;
    int64_t jobs; /* in all */
} transpose_plan;

/* Jobs [j0, j1) of plan p. */
static void transpose_jobs(const transpose_plan *p, int64_t j0, int64_t j1)
{
    int64_t A = p->n[p->q], B = p->n[p->r - 1];
    for (int64_t job = j0; job < j1; job++) {
        int64_t plane = job / p->bands, band = job % p->bands;
        int64_t off_x = 0, off_o = 0, rem = plane;
        for (int d = p->r - 2; d >= 0; d--) {
            if (d == p->q)
                continue;
            int64_t k = rem % p->n[d];
            rem /= p->n[d];
            off_x += k * p->is[d];
            off_o += k * p->os[d];
        }
        int64_t a0 = band * TILE, a1 = a0 + TILE < A ? a0 + TILE : A;
        transpose_band(p->o + (size_t)off_o * p->es, p->os[p->q], p->px + (size_t)off_x * p->es,
                       p->is[p->r - 1], a0, a1, B, p->es);
    }
}

static void transpose_task(void *ctx, int t, int T)
{
    const transpose_plan *p = ctx;
    transpose_jobs(p, p->jobs * t / T, p->jobs * (t + 1) / T);
}

nb_status nbo_permute_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    const int64_t *perm = out->attrs->ints;
    size_t es = nb_dtype_size(out->dtype);
    if (out->size == 0)
        return NB_OK;

    /* Output axes with their strides in x, after dropping axes of size 1
     * and merging neighbours that stay neighbours in x. */
    int64_t xstride[NB_MAX_RANK];
    for (int64_t s = 1, d = x->rank - 1; d >= 0; d--) {
        xstride[d] = s;
        s *= x->shape[d];
    }
    int r = 0;
    int64_t n[NB_MAX_RANK], is[NB_MAX_RANK];
    for (int i = 0; i < out->rank; i++) {
        int64_t size = out->shape[i], st = xstride[perm[i]];
        if (size == 1)
            continue;
        if (r > 0 && is[r - 1] == st * size) {
            n[r - 1] *= size;
            is[r - 1] = st;
            continue;
        }
        n[r] = size;
        is[r] = st;
        r++;
    }
    if (r <= 1) { /* the identity on the remaining axis */
        memcpy(out->data, x->data, (size_t)out->size * es);
        return NB_OK;
    }
    int64_t os[NB_MAX_RANK]; /* output strides of the merged axes */
    for (int64_t s = 1, d = r - 1; d >= 0; d--) {
        os[d] = s;
        s *= n[d];
    }
    char *o = out->data;
    const char *px = x->data;

    if (is[r - 1] == 1) {
        /* the innermost output axis is contiguous in x: copy runs */
        int64_t run = n[r - 1], rows = out->size / run;
        for (int64_t row = 0; row < rows; row++) {
            int64_t off = 0, rem = row;
            for (int d = r - 2; d >= 0; d--) {
                off += (rem % n[d]) * is[d];
                rem /= n[d];
            }
            memcpy(o + (size_t)(row * run) * es, px + (size_t)off * es, (size_t)run * es);
        }
        return NB_OK;
    }

    /* A blocked 2-D transpose of the plane made of axis q (contiguous in
     * x) and the last axis (contiguous in out), for every index of the
     * other axes. Axis q exists: x's innermost axis of size > 1 has stride
     * 1 and a merge never moves it out of the inner position. */
    int q = 0;
    while (q < r && is[q] != 1)
        q++;
    if (q >= r - 1)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "internal: no contiguous axis");
    transpose_plan tp = {.r = r, .q = q, .n = n, .is = is, .os = os, .o = o, .px = px, .es = es};
    tp.bands = (n[q] + TILE - 1) / TILE;
    tp.jobs = out->size / (n[q] * n[r - 1]) * tp.bands;
    nbc_parallel(nbc_threads_for(g, out->size), transpose_task, &tp);
    return NB_OK;
}

/* d permute(x, p) = permute(g, p^-1) */
nb_tensor *nbo_permute_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    int inv[NB_MAX_RANK];
    for (int d = 0; d < out->rank; d++)
        inv[out->attrs->ints[d]] = d;
    return nb_permute(g, gr, inv);
}
nb_tensor *nbo_permute_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    int perm[NB_MAX_RANK];
    for (int d = 0; d < out->rank; d++)
        perm[d] = (int)out->attrs->ints[d];
    return nb_permute(g, t[0], perm);
}

nb_tensor *nb_permute(nb_graph *g, nb_tensor *x, const int *perm)
{
    if (!g || !x)
        return NULL;
    if (x->rank > 0 && !perm) {
        nbc_error(g, NB_ERR_NULL, "permute", "perm is NULL for an input of rank %d", x->rank);
        return NULL;
    }
    nb_attrs a = {0};
    for (int d = 0; d < x->rank; d++)
        a.ints[d] = perm[d];
    return nbo_apply(g, &nbo_table[NB_OP_PERMUTE], &x, 1, &a);
}

nb_tensor *nb_transpose(nb_graph *g, nb_tensor *x)
{
    if (!g || !x)
        return NULL;
    if (x->rank < 2) {
        char b[160];
        nbc_error(g, NB_ERR_RANK, "transpose", "needs rank >= 2, got %s (rank %d)",
                  nbc_shp(x, b, sizeof b), x->rank);
        return NULL;
    }
    int perm[NB_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        perm[d] = d;
    perm[x->rank - 2] = x->rank - 1;
    perm[x->rank - 1] = x->rank - 2;
    return nb_permute(g, x, perm);
}

/* ------------------------------------------------------------------ slice */

enum { S_START = 1, S_STOP = 2, S_STEP = 3 };

/* Number of positions start, start+step, ... below stop. */
static int64_t count_steps(int64_t start, int64_t stop, int64_t step)
{
    return stop > start ? (stop - start - 1) / step + 1 : 0;
}

static int64_t clamp_bound(int64_t v, int64_t len)
{
    if (v < 0)
        v = v < -len ? 0 : v + len;
    return v > len ? len : v;
}

nb_status nbo_slice_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int64_t *a = out->attrs->ints;
    int axis = check_axis(g, out, x, a[A_AXIS]);
    if (axis < 0)
        return NB_ERR_ARG;
    if (a[S_STEP] < 1) {
        char b[160];
        return nbc_error(g, NB_ERR_ARG, out->op->name, "step %lld of axis %d of %s must be >= 1",
                         (long long)a[S_STEP], axis, nbc_shp(x, b, sizeof b));
    }
    int64_t len = x->shape[axis];
    a[A_AXIS] = axis;
    a[S_START] = clamp_bound(a[S_START], len);
    a[S_STOP] = clamp_bound(a[S_STOP], len);
    if (a[S_STOP] < a[S_START])
        a[S_STOP] = a[S_START];
    return like_but_axis(g, out, x, axis, count_steps(a[S_START], a[S_STOP], a[S_STEP]));
}

nb_status nbo_slice_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    const int64_t *a = out->attrs->ints;
    int axis = (int)a[A_AXIS];
    int64_t outer, inner, len = x->shape[axis], m = out->shape[axis];
    split_at(x, axis, &outer, &inner);
    size_t row = (size_t)inner * nb_dtype_size(x->dtype);
    char *o = out->data;
    const char *px = x->data;
    for (int64_t k = 0; k < outer && m > 0; k++) {
        char *dst = o + (size_t)(k * m) * row;
        const char *src = px + (size_t)(k * len + a[S_START]) * row;
        if (a[S_STEP] == 1 || m == 1) /* m >= 2 implies step < len: no overflow */
            memcpy(dst, src, (size_t)m * row);
        else
            copy_blocks(dst, (int64_t)row, src, a[S_STEP] * (int64_t)row, m, row);
    }
    return NB_OK;
}

/* d slice(x) = unslice(g): g at the sliced positions, zeros elsewhere */
nb_tensor *nbo_slice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const int64_t *a = out->attrs->ints;
    const nb_tensor *x = out->inputs[0];
    return nb_unslice(g, gr, (int)a[A_AXIS], x->shape[a[A_AXIS]], a[S_START], a[S_STEP]);
}
/* acc[at the positions out took from x] += gr, elementwise in the dtype */
#define ADD_REGION(T)                                                                              \
    do {                                                                                           \
        T *d = acc->data;                                                                          \
        const T *s = gr->data;                                                                     \
        for (int64_t k = 0; k < outer; k++)                                                        \
            for (int64_t j = 0; j < m; j++) {                                                      \
                T *dst = d + (k * len + a[S_START] + j * a[S_STEP]) * inner;                       \
                const T *src = s + (k * m + j) * inner;                                            \
                for (int64_t e = 0; e < inner; e++)                                                \
                    dst[e] += src[e];                                                              \
            }                                                                                      \
    } while (0)

bool nbo_has_vjp_into(const nbo_def *op)
{
    return op == &nbo_table[NB_OP_SLICE];
}

bool nbo_vjp_into(const nb_tensor *out, int i, const nb_tensor *gr, nb_tensor *acc)
{
    (void)i;
    if (!nbo_has_vjp_into(out->op))
        return false;
    const nb_tensor *x = out->inputs[0];
    const int64_t *a = out->attrs->ints;
    int axis = (int)a[A_AXIS];
    int64_t outer, inner, len = x->shape[axis], m = out->shape[axis];
    split_at(x, axis, &outer, &inner);
    if (acc->dtype == NB_F32)
        ADD_REGION(float);
    else
        ADD_REGION(double);
    return true;
}

nb_tensor *nbo_slice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    const int64_t *a = out->attrs->ints;
    return nb_slice(g, t[0], (int)a[A_AXIS], a[S_START], a[S_STOP], a[S_STEP]);
}

nb_tensor *nb_slice(nb_graph *g, nb_tensor *x, int axis, int64_t start, int64_t stop, int64_t step)
{
    nb_attrs a = {0};
    a.ints[A_AXIS] = axis;
    a.ints[S_START] = start;
    a.ints[S_STOP] = stop;
    a.ints[S_STEP] = step;
    return nbo_apply(g, &nbo_table[NB_OP_SLICE], &x, 1, &a);
}

/* ---------------------------------------------------------------- unslice */

enum { U_SIZE = 1, U_START = 2, U_STEP = 3 };

nb_status nbo_unslice_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int64_t *a = out->attrs->ints;
    char b[160];
    int axis = check_axis(g, out, x, a[A_AXIS]);
    if (axis < 0)
        return NB_ERR_ARG;
    int64_t size = a[U_SIZE], start = a[U_START], step = a[U_STEP], m = x->shape[axis];
    if (size < 0)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "size %lld for axis %d of %s is negative",
                         (long long)size, axis, nbc_shp(x, b, sizeof b));
    if (step < 1)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "step %lld for axis %d of %s must be >= 1",
                         (long long)step, axis, nbc_shp(x, b, sizeof b));
    if (start < 0 && start >= -size)
        start += size;
    if (start < 0 || start > size || (m > 0 && start == size))
        return nbc_error(g, NB_ERR_ARG, out->op->name,
                         "start %lld is out of range for an axis of length %lld (input %s)",
                         (long long)a[U_START], (long long)size, nbc_shp(x, b, sizeof b));
    int64_t fit = count_steps(start, size, step);
    if (m > fit)
        return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                         "input %s has %lld entries on axis %d, but positions %lld, %lld+%lld, "
                         "... below %lld hold only %lld",
                         nbc_shp(x, b, sizeof b), (long long)m, axis, (long long)start,
                         (long long)start, (long long)step, (long long)size, (long long)fit);
    a[A_AXIS] = axis;
    a[U_START] = start;
    return like_but_axis(g, out, x, axis, size);
}

nb_status nbo_unslice_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    const int64_t *a = out->attrs->ints;
    int axis = (int)a[A_AXIS];
    int64_t outer, inner, size = a[U_SIZE], m = x->shape[axis];
    split_at(x, axis, &outer, &inner);
    size_t row = (size_t)inner * nb_dtype_size(x->dtype);
    char *o = out->data;
    const char *px = x->data;
    memset(o, 0, (size_t)out->size * nb_dtype_size(out->dtype));
    for (int64_t k = 0; k < outer && m > 0; k++) {
        char *dst = o + (size_t)(k * size + a[U_START]) * row;
        const char *src = px + (size_t)(k * m) * row;
        if (a[U_STEP] == 1 || m == 1) /* m >= 2 implies step < size */
            memcpy(dst, src, (size_t)m * row);
        else
            copy_blocks(dst, a[U_STEP] * (int64_t)row, src, (int64_t)row, m, row);
    }
    return NB_OK;
}

/* d unslice(x) = slice(g) at the positions x was placed */
nb_tensor *nbo_unslice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const int64_t *a = out->attrs->ints;
    int64_t m = out->inputs[0]->shape[a[A_AXIS]];
    int64_t stop = m > 0 ? a[U_START] + (m - 1) * a[U_STEP] + 1 : a[U_START];
    return nb_slice(g, gr, (int)a[A_AXIS], a[U_START], stop, a[U_STEP]);
}
nb_tensor *nbo_unslice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    const int64_t *a = out->attrs->ints;
    return nb_unslice(g, t[0], (int)a[A_AXIS], a[U_SIZE], a[U_START], a[U_STEP]);
}

nb_tensor *nb_unslice(nb_graph *g, nb_tensor *x, int axis, int64_t size, int64_t start,
                      int64_t step)
{
    nb_attrs a = {0};
    a.ints[A_AXIS] = axis;
    a.ints[U_SIZE] = size;
    a.ints[U_START] = start;
    a.ints[U_STEP] = step;
    return nbo_apply(g, &nbo_table[NB_OP_UNSLICE], &x, 1, &a);
}

/* ----------------------------------------------------------------- concat */

nb_status nbo_concat_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x0 = out->inputs[0];
    int axis = check_axis(g, out, x0, out->attrs->ints[A_AXIS]);
    if (axis < 0)
        return NB_ERR_ARG;
    int64_t total = 0;
    for (int i = 0; i < out->n_inputs; i++) {
        const nb_tensor *x = out->inputs[i];
        char b0[160], b1[160];
        if (x->dtype != x0->dtype)
            return nbc_error(g, NB_ERR_DTYPE, out->op->name,
                             "input 0 is %s%s but input %d is %s%s: dtypes differ",
                             nb_dtype_name(x0->dtype), nbc_shp(x0, b0, sizeof b0), i,
                             nb_dtype_name(x->dtype), nbc_shp(x, b1, sizeof b1));
        bool fits = x->rank == x0->rank;
        for (int d = 0; fits && d < x->rank; d++)
            if (d != axis && x->shape[d] != x0->shape[d])
                fits = false;
        if (!fits)
            return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                             "input 0 %s and input %d %s differ on an axis other than %d",
                             nbc_shp(x0, b0, sizeof b0), i, nbc_shp(x, b1, sizeof b1), axis);
        if (x->shape[axis] > INT64_MAX - total)
            return nbc_error(g, NB_ERR_ARG, out->op->name, "joined length overflows");
        total += x->shape[axis];
    }
    out->attrs->ints[A_AXIS] = axis;
    return like_but_axis(g, out, x0, axis, total);
}

/* The inputs laid side by side along the result's axis: viewing the result
 * as [outer, total, inner], input i fills len_i entries of the middle axis
 * (its own length on the axis for concat, 1 for stack) for every outer
 * index. */
static void join_fwd(nb_tensor *out, bool stacked)
{
    int axis = (int)out->attrs->ints[A_AXIS];
    int64_t outer, inner, total = out->shape[axis];
    split_at(out, axis, &outer, &inner);
    size_t row = (size_t)inner * nb_dtype_size(out->dtype);
    char *o = out->data;
    for (int64_t k = 0; k < outer && row > 0; k++) {
        int64_t at = 0;
        for (int i = 0; i < out->n_inputs; i++) {
            const nb_tensor *x = out->inputs[i];
            int64_t len = stacked ? 1 : x->shape[axis];
            if (len > 0)
                memcpy(o + (size_t)(k * total + at) * row,
                       (const char *)x->data + (size_t)(k * len) * row, (size_t)len * row);
            at += len;
        }
    }
}

nb_status nbo_concat_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    join_fwd(out, false);
    return NB_OK;
}

/* d concat(x_0, ..., x_n-1) / dx_i = slice of g along the axis where x_i sits */
nb_tensor *nbo_concat_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    int axis = (int)out->attrs->ints[A_AXIS];
    int64_t at = 0;
    for (int j = 0; j < i; j++)
        at += out->inputs[j]->shape[axis];
    return nb_slice(g, gr, axis, at, at + out->inputs[i]->shape[axis], 1);
}
nb_tensor *nbo_concat_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_concat(g, t, out->n_inputs, (int)out->attrs->ints[A_AXIS]);
}

/* Record concat or stack (op) of the n tensors xs along axis. */
static nb_tensor *join(nb_graph *g, int op, nb_tensor *const *xs, int n, int axis)
{
    if (!g)
        return NULL;
    const char *name = nbo_table[op].name;
    if (n < 1) {
        nbc_error(g, NB_ERR_ARG, name, "needs at least one input, got n = %d", n);
        return NULL;
    }
    if (!xs) {
        nbc_error(g, NB_ERR_NULL, name, "xs is NULL for n = %d inputs", n);
        return NULL;
    }
    nb_attrs a = {0};
    a.ints[A_AXIS] = axis;
    return nbo_apply(g, &nbo_table[op], xs, n, &a);
}

nb_tensor *nb_concat(nb_graph *g, nb_tensor *const *xs, int n, int axis)
{
    return join(g, NB_OP_CONCAT, xs, n, axis);
}

/* ------------------------------------------------------------------ stack */

nb_status nbo_stack_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x0 = out->inputs[0];
    char b0[160], b1[160];
    if (x0->rank >= NB_MAX_RANK)
        return nbc_error(g, NB_ERR_RANK, out->op->name,
                         "inputs %s have rank %d: the result would exceed rank %d",
                         nbc_shp(x0, b0, sizeof b0), x0->rank, NB_MAX_RANK);
    int axis = nbk_check_axis(g, out->op->name, x0, out->attrs->ints[A_AXIS], x0->rank + 1);
    if (axis < 0)
        return NB_ERR_ARG;
    for (int i = 1; i < out->n_inputs; i++) {
        const nb_tensor *x = out->inputs[i];
        if (x->dtype != x0->dtype)
            return nbc_error(g, NB_ERR_DTYPE, out->op->name,
                             "input 0 is %s%s but input %d is %s%s: dtypes differ",
                             nb_dtype_name(x0->dtype), nbc_shp(x0, b0, sizeof b0), i,
                             nb_dtype_name(x->dtype), nbc_shp(x, b1, sizeof b1));
        if (!nbc_same_shape(x, x0))
            return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                             "input 0 %s and input %d %s differ: stacked tensors have one shape",
                             nbc_shp(x0, b0, sizeof b0), i, nbc_shp(x, b1, sizeof b1));
    }
    out->attrs->ints[A_AXIS] = axis;
    out->dtype = x0->dtype;
    out->rank = x0->rank + 1;
    for (int d = 0, k = 0; d < out->rank; d++)
        out->shape[d] = d == axis ? out->n_inputs : x0->shape[k++];
    return nbc_check_desc(g, out->dtype, out->rank, out->shape, out->op->name);
}

nb_status nbo_stack_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    join_fwd(out, true);
    return NB_OK;
}

/* d stack(x_0, ..., x_n-1) / dx_i = select(g, axis, i) */
nb_tensor *nbo_stack_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nb_select(g, gr, (int)out->attrs->ints[A_AXIS], i);
}
nb_tensor *nbo_stack_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_stack(g, t, out->n_inputs, (int)out->attrs->ints[A_AXIS]);
}

nb_tensor *nb_stack(nb_graph *g, nb_tensor *const *xs, int n, int axis)
{
    return join(g, NB_OP_STACK, xs, n, axis);
}

/* ------------------------------------------------------ gather, scatter_add */

/* Index lists are copied into the arena by nbo_apply: refuse what cannot be. */
static bool check_index_list(nb_graph *g, const char *op, const char *what, const int64_t *idx,
                             int64_t n)
{
    if (n < 0) {
        nbc_error(g, NB_ERR_ARG, op, "number of %s %lld is negative", what, (long long)n);
        return false;
    }
    if (n > 0 && !idx) {
        nbc_error(g, NB_ERR_NULL, op, "%s is NULL for a count of %lld", what, (long long)n);
        return false;
    }
    if ((uint64_t)n > SIZE_MAX / (4 * sizeof(int64_t))) {
        nbc_error(g, NB_ERR_ARG, op, "%lld %s are too many", (long long)n, what);
        return false;
    }
    return true;
}

nb_status nbo_gather_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int axis = check_axis(g, out, x, out->attrs->ints[A_AXIS]);
    if (axis < 0)
        return NB_ERR_ARG;
    if (check_indices(g, out, "idx", out->attrs->idx, out->attrs->n_idx, x->shape[axis], x, axis) !=
        NB_OK)
        return NB_ERR_ARG;
    out->attrs->ints[A_AXIS] = axis;
    return like_but_axis(g, out, x, axis, out->attrs->n_idx);
}

nb_status nbo_gather_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    int axis = (int)out->attrs->ints[A_AXIS];
    const int64_t *idx = out->attrs->idx;
    int64_t outer, inner, len = x->shape[axis], n = out->attrs->n_idx;
    split_at(x, axis, &outer, &inner);
    size_t row = (size_t)inner * nb_dtype_size(x->dtype);
    char *o = out->data;
    const char *px = x->data;
    if (row == 0)
        return NB_OK;
    WITH_ELEM_SIZE(row, for (int64_t k = 0; k < outer; k++) for (int64_t j = 0; j < n; j++)
                            memcpy(o + (size_t)(k * n + j) * ES,
                                   px + (size_t)(k * len + wrap(idx[j], len)) * ES, ES));
    return NB_OK;
}

/* d gather(x, idx) = scatter_add(g, idx): repeated indices add up */
nb_tensor *nbo_gather_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    int axis = (int)out->attrs->ints[A_AXIS];
    return nb_scatter_add(g, gr, axis, out->attrs->idx, out->attrs->n_idx,
                          out->inputs[0]->shape[axis]);
}
nb_tensor *nbo_gather_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_gather(g, t[0], (int)out->attrs->ints[A_AXIS], out->attrs->idx, out->attrs->n_idx);
}

nb_tensor *nb_gather(nb_graph *g, nb_tensor *x, int axis, const int64_t *idx, int64_t n_idx)
{
    if (!g)
        return NULL;
    if (!check_index_list(g, "gather", "idx", idx, n_idx))
        return NULL;
    nb_attrs a = {0};
    a.ints[A_AXIS] = axis;
    a.idx = n_idx > 0 ? idx : NULL;
    a.n_idx = n_idx;
    return nbo_apply(g, &nbo_table[NB_OP_GATHER], &x, 1, &a);
}

enum { SC_SIZE = 1 };

nb_status nbo_scatter_add_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    char b[160];
    int axis = check_axis(g, out, x, out->attrs->ints[A_AXIS]);
    if (axis < 0)
        return NB_ERR_ARG;
    int64_t size = out->attrs->ints[SC_SIZE], n = out->attrs->n_idx;
    if (size < 0)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "size %lld for axis %d of %s is negative",
                         (long long)size, axis, nbc_shp(x, b, sizeof b));
    if (x->shape[axis] != n)
        return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                         "input %s has %lld entries on axis %d but %lld indices are given",
                         nbc_shp(x, b, sizeof b), (long long)x->shape[axis], axis, (long long)n);
    if (check_indices(g, out, "idx", out->attrs->idx, n, size, x, axis) != NB_OK)
        return NB_ERR_ARG;
    out->attrs->ints[A_AXIS] = axis;
    return like_but_axis(g, out, x, axis, size);
}

/* out[k, wrap(idx[j]), :] += x[k, j, :], in index order (deterministic). */
#define SCATTER_ADD_BODY(T)                                                                        \
    do {                                                                                           \
        T *o = out->data;                                                                          \
        const T *px = x->data;                                                                     \
        for (int64_t k = 0; k < outer; k++)                                                        \
            for (int64_t j = 0; j < n; j++) {                                                      \
                T *dst = o + (k * size + wrap(idx[j], size)) * inner;                              \
                const T *src = px + (k * n + j) * inner;                                           \
                for (int64_t e = 0; e < inner; e++)                                                \
                    dst[e] += src[e];                                                              \
            }                                                                                      \
    } while (0)

nb_status nbo_scatter_add_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    int axis = (int)out->attrs->ints[A_AXIS];
    const int64_t *idx = out->attrs->idx;
    int64_t outer, inner, size = out->shape[axis], n = out->attrs->n_idx;
    split_at(x, axis, &outer, &inner);
    memset(out->data, 0, (size_t)out->size * nb_dtype_size(out->dtype));
    if (out->dtype == NB_F32)
        SCATTER_ADD_BODY(float);
    else
        SCATTER_ADD_BODY(double);
    return NB_OK;
}

/* d scatter_add(x, idx) = gather(g, idx) */
nb_tensor *nbo_scatter_add_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nb_gather(g, gr, (int)out->attrs->ints[A_AXIS], out->attrs->idx, out->attrs->n_idx);
}
nb_tensor *nbo_scatter_add_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    int axis = (int)out->attrs->ints[A_AXIS];
    return nb_scatter_add(g, t[0], axis, out->attrs->idx, out->attrs->n_idx, out->shape[axis]);
}

nb_tensor *nb_scatter_add(nb_graph *g, nb_tensor *x, int axis, const int64_t *idx, int64_t n_idx,
                          int64_t size)
{
    if (!g)
        return NULL;
    if (!check_index_list(g, "scatter_add", "idx", idx, n_idx))
        return NULL;
    nb_attrs a = {0};
    a.ints[A_AXIS] = axis;
    a.ints[SC_SIZE] = size;
    a.idx = n_idx > 0 ? idx : NULL;
    a.n_idx = n_idx;
    return nbo_apply(g, &nbo_table[NB_OP_SCATTER_ADD], &x, 1, &a);
}

/* ---------------------------------------------------------------- one_hot */

enum { OH_DEPTH = 0, OH_DTYPE = 1 };

nb_status nbo_one_hot_shape(nb_graph *g, nb_tensor *out)
{
    int64_t n = out->attrs->n_idx, depth = out->attrs->ints[OH_DEPTH];
    const int64_t *labels = out->attrs->idx;
    out->dtype = (nb_dtype)out->attrs->ints[OH_DTYPE];
    out->rank = 2;
    out->shape[0] = n;
    out->shape[1] = depth;
    nb_status st = nbc_check_desc(g, out->dtype, 2, out->shape, out->op->name);
    if (st != NB_OK)
        return st;
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= depth)
            return nbc_error(g, NB_ERR_ARG, out->op->name,
                             "labels[%lld] = %lld is outside [0, %lld) for result [%lld,%lld]",
                             (long long)i, (long long)labels[i], (long long)depth, (long long)n,
                             (long long)depth);
    return NB_OK;
}

#define ONE_HOT_BODY(T)                                                                            \
    do {                                                                                           \
        T *o = out->data;                                                                          \
        for (int64_t i = 0; i < n; i++)                                                            \
            o[i * depth + labels[i]] = 1;                                                          \
    } while (0)

nb_status nbo_one_hot_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    int64_t n = out->attrs->n_idx, depth = out->attrs->ints[OH_DEPTH];
    const int64_t *labels = out->attrs->idx;
    memset(out->data, 0, (size_t)out->size * nb_dtype_size(out->dtype));
    if (out->dtype == NB_F32)
        ONE_HOT_BODY(float);
    else
        ONE_HOT_BODY(double);
    return NB_OK;
}

nb_tensor *nb_one_hot(nb_graph *g, nb_dtype dt, const int64_t *labels, int64_t n, int64_t depth)
{
    if (!g)
        return NULL;
    if (depth < 0) {
        nbc_error(g, NB_ERR_ARG, "one_hot", "depth %lld is negative (%lld labels)",
                  (long long)depth, (long long)n);
        return NULL;
    }
    if (!check_index_list(g, "one_hot", "labels", labels, n))
        return NULL;
    nb_attrs a = {0};
    a.ints[OH_DEPTH] = depth;
    a.ints[OH_DTYPE] = (int64_t)dt;
    a.idx = n > 0 ? labels : NULL;
    a.n_idx = n;
    return nbo_apply(g, &nbo_table[NB_OP_ONE_HOT], NULL, 0, &a);
}

/* ------------------------------------------------------------ compositions */

/* x's shape with the axis at `at` removed (drop) or a size-1 axis inserted
 * there, as a reshape. */
static nb_tensor *reshape_axis(nb_graph *g, nb_tensor *x, int at, bool drop)
{
    int64_t shape[NB_MAX_RANK];
    int rank = 0;
    for (int d = 0; d <= x->rank; d++) {
        if (d == at && !drop)
            shape[rank++] = 1;
        if (d < x->rank && !(d == at && drop))
            shape[rank++] = x->shape[d];
    }
    return nb_reshape(g, x, rank, shape);
}

nb_tensor *nb_squeeze(nb_graph *g, nb_tensor *x, int axis)
{
    if (!g || !x)
        return NULL;
    int a = nbk_check_axis(g, "squeeze", x, axis, x->rank);
    if (a < 0)
        return NULL;
    if (x->shape[a] != 1) {
        char b[160];
        nbc_error(g, NB_ERR_SHAPE, "squeeze", "axis %d of %s has size %lld, not 1", axis,
                  nbc_shp(x, b, sizeof b), (long long)x->shape[a]);
        return NULL;
    }
    return reshape_axis(g, x, a, true);
}

nb_tensor *nb_unsqueeze(nb_graph *g, nb_tensor *x, int axis)
{
    if (!g || !x)
        return NULL;
    if (x->rank >= NB_MAX_RANK) {
        char b[160];
        nbc_error(g, NB_ERR_RANK, "unsqueeze", "%s has rank %d: the result would exceed rank %d",
                  nbc_shp(x, b, sizeof b), x->rank, NB_MAX_RANK);
        return NULL;
    }
    int a = nbk_check_axis(g, "unsqueeze", x, axis, x->rank + 1);
    return a < 0 ? NULL : reshape_axis(g, x, a, false);
}

nb_tensor *nb_select(nb_graph *g, nb_tensor *x, int axis, int64_t index)
{
    if (!g || !x)
        return NULL;
    int a = nbk_check_axis(g, "select", x, axis, x->rank);
    if (a < 0)
        return NULL;
    int64_t len = x->shape[a];
    if (index < -len || index >= len) {
        char b[160];
        nbc_error(g, NB_ERR_ARG, "select",
                  "index %lld is out of range for axis %d of length %lld (input %s)",
                  (long long)index, a, (long long)len, nbc_shp(x, b, sizeof b));
        return NULL;
    }
    int64_t i = wrap(index, len);
    return reshape_axis(g, nb_slice(g, x, a, i, i + 1, 1), a, true);
}

/* Clear outs and say why: the graph's error, or NB_ERR_NULL for a quiet
 * NULL input. */
static nb_status split_failed(const nb_graph *g, nb_tensor **outs, int n)
{
    for (int i = 0; i < n; i++)
        outs[i] = NULL;
    nb_status st = nb_graph_status(g);
    return st != NB_OK ? st : NB_ERR_NULL;
}

nb_status nb_split(nb_graph *g, nb_tensor *x, int axis, const int64_t *sizes, int n,
                   nb_tensor **outs)
{
    if (!g)
        return NB_ERR_NULL;
    char b[160];
    if (n < 1)
        return nbc_error(g, NB_ERR_ARG, "split", "needs at least one piece, got n = %d", n);
    if (!outs)
        return nbc_error(g, NB_ERR_NULL, "split", "outs is NULL for n = %d pieces", n);
    if (!x)
        return split_failed(g, outs, n);
    int a = nbk_check_axis(g, "split", x, axis, x->rank);
    if (a < 0)
        return split_failed(g, outs, n);
    int64_t len = x->shape[a], total = 0;
    if (!sizes && len % n != 0) {
        nbc_error(g, NB_ERR_SHAPE, "split",
                  "axis %d of %s has length %lld, which does not split into %d equal pieces", a,
                  nbc_shp(x, b, sizeof b), (long long)len, n);
        return split_failed(g, outs, n);
    }
    for (int i = 0; sizes && i < n; i++) {
        if (sizes[i] < 0 || sizes[i] > len - total) {
            nbc_error(g, sizes[i] < 0 ? NB_ERR_ARG : NB_ERR_SHAPE, "split",
                      "sizes[%d] = %lld %s (axis %d of %s has length %lld)", i, (long long)sizes[i],
                      sizes[i] < 0 ? "is negative" : "goes past the end of the axis", a,
                      nbc_shp(x, b, sizeof b), (long long)len);
            return split_failed(g, outs, n);
        }
        total += sizes[i];
    }
    if (sizes && total != len) {
        nbc_error(g, NB_ERR_SHAPE, "split",
                  "sizes add up to %lld, but axis %d of %s has length %lld", (long long)total, a,
                  nbc_shp(x, b, sizeof b), (long long)len);
        return split_failed(g, outs, n);
    }
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        int64_t size = sizes ? sizes[i] : len / n;
        outs[i] = nb_slice(g, x, a, at, at + size, 1);
        if (!outs[i])
            return split_failed(g, outs, n);
        at += size;
    }
    return NB_OK;
}
