/* log_softmax along one axis as one primitive, and its VJP as another: a
 * softmax cross-entropy records one node for the normalisation and one for
 * its gradient, where the composition recorded seven and a dozen.
 *
 * Attributes of both: ints[0] = the axis (normalised by the shape rule).
 *
 * log_softmax(x) = s − ln Σ e^s, s = x − max(x), along the axis. The kernel
 * computes the very numbers of that composition of nb_max, nb_sub, nb_exp,
 * nb_sum, nb_log and nb_sub, bit for bit: the maximum and the sum are
 * nb_max's and nb_sum's own (reduce.c), in their order, and every other
 * step is the same IEEE operation on the same operands. A last axis (the
 * rows of [N, C] logits) is done a row at a time, each row read once while
 * it is in cache; another axis goes through the reductions' own walk.
 *
 * log_softmax_backward(gy, y) = gy − e^y·Σ gy along the axis is the VJP of
 * log_softmax with y its result; its sum is nb_sum's. Its own rules are
 * written with primitives, so the backward pass can be differentiated
 * again. */

#include <tgmath.h>

#include "kernels.h"

static int lsm_axis(const nb_tensor *out)
{
    return (int)out->attrs->ints[0];
}

/* ------------------------------------------------------------ shape rule */

/* log_softmax(x) and log_softmax_backward(gy, y): the result is shaped as
 * the last input; gy must match y. */
nb_status nbo_log_softmax_shape(nb_graph *g, nb_tensor *out)
{
    const char *name = out->op->name;
    const nb_tensor *x = out->inputs[out->n_inputs - 1];
    char b0[160], b1[160];
    if (out->n_inputs == 2) {
        const nb_tensor *gy = out->inputs[0];
        if (gy->dtype != x->dtype)
            return nbc_error(g, NB_ERR_DTYPE, name, "gradient %s%s and result %s%s: dtypes differ",
                             nb_dtype_name(gy->dtype), nbc_shp(gy, b0, sizeof b0),
                             nb_dtype_name(x->dtype), nbc_shp(x, b1, sizeof b1));
        if (!nbc_same_shape(gy, x))
            return nbc_error(g, NB_ERR_SHAPE, name, "gradient %s and result %s: shapes differ",
                             nbc_shp(gy, b0, sizeof b0), nbc_shp(x, b1, sizeof b1));
    }
    int axis = nbk_check_axis(g, name, x, out->attrs->ints[0], x->rank);
    if (axis < 0)
        return NB_ERR_ARG;
    if (x->shape[axis] == 0)
        return nbc_error(g, NB_ERR_SHAPE, name,
                         "cannot normalise axis %d of %s: it has size 0 and the maximum of no "
                         "elements is undefined",
                         axis, nbc_shp(x, b0, sizeof b0));
    out->attrs->ints[0] = axis;
    out->dtype = x->dtype;
    out->rank = x->rank;
    memcpy(out->shape, x->shape, (size_t)x->rank * sizeof *x->shape);
    return NB_OK;
}

/* --------------------------------------------------------------- kernels */

/* What a kernel pass runs over: rows along a last axis, or lines of the
 * `inner` contiguous elements that follow one position of another axis. */
enum lsm_phase {
    LSM_ROWS,      /* log_softmax of whole rows (inner == 1) */
    LSM_BACK_ROWS, /* its VJP, the same way */
    LSM_EXP,       /* lines: y = e^(x − m) */
    LSM_LOG,       /* slices: s = ln s */
    LSM_OUT,       /* lines: y = (x − m) − s */
    LSM_BACK,      /* lines: dx = gy − e^y·s */
};

typedef struct lsm_job {
    nb_dtype dtype;
    int phase;
    int64_t n;                 /* rows, lines or slices of this pass */
    int64_t outer, len, inner; /* x as [outer, len, inner], len along the axis */
    const void *a, *b;         /* x; or gy and y */
    void *dst;                 /* the result */
    const void *m;             /* per slice: the maximum (forward, lines) */
    void *s;                   /* per slice: the log-sum (forward) or Σ gy (backward) */
} lsm_job;

#define DEFINE_LSM(SUF, T)                                                                         \
    static void lsm_##SUF(const lsm_job *j, int64_t r0, int64_t r1)                                \
    {                                                                                              \
        const T *a = j->a, *b = j->b, *m = j->m;                                                   \
        T *o = j->dst, *s = j->s;                                                                  \
        int64_t len = j->len, in = j->inner;                                                       \
        switch (j->phase) {                                                                        \
        case LSM_ROWS:                                                                             \
            for (int64_t r = r0; r < r1; r++) {                                                    \
                const T *x = a + r * len;                                                          \
                T *y = o + r * len;                                                                \
                T mx = nbk_max_row_##SUF(x, len);                                                  \
                for (int64_t i = 0; i < len; i++)                                                  \
                    y[i] = exp(x[i] - mx);                                                         \
                T ls = log(nbk_sum_row_##SUF(y, len));                                             \
                NBK_SIMD                                                                           \
                for (int64_t i = 0; i < len; i++)                                                  \
                    y[i] = (x[i] - mx) - ls;                                                       \
            }                                                                                      \
            break;                                                                                 \
        case LSM_BACK_ROWS:                                                                        \
            for (int64_t r = r0; r < r1; r++) {                                                    \
                const T *gy = a + r * len, *y = b + r * len;                                       \
                T *dx = o + r * len;                                                               \
                T sg = nbk_sum_row_##SUF(gy, len);                                                 \
                for (int64_t i = 0; i < len; i++)                                                  \
                    dx[i] = gy[i] - exp(y[i]) * sg;                                                \
            }                                                                                      \
            break;                                                                                 \
        case LSM_LOG:                                                                              \
            for (int64_t r = r0; r < r1; r++)                                                      \
                s[r] = log(s[r]);                                                                  \
            break;                                                                                 \
        default: /* lines of in elements; slice values start at (r / len)·in */                   \
            for (int64_t r = r0; r < r1; r++) {                                                    \
                const T *x = a + r * in, *y = b ? b + r * in : NULL;                               \
                const T *ms = m ? m + r / len * in : NULL, *ss = s + r / len * in;                 \
                T *po = o + r * in;                                                                \
                if (j->phase == LSM_EXP) {                                                         \
                    for (int64_t i = 0; i < in; i++)                                               \
                        po[i] = exp(x[i] - ms[i]);                                                 \
                } else if (j->phase == LSM_OUT) {                                                  \
                    NBK_SIMD                                                                       \
                    for (int64_t i = 0; i < in; i++)                                               \
                        po[i] = (x[i] - ms[i]) - ss[i];                                            \
                } else {                                                                           \
                    for (int64_t i = 0; i < in; i++)                                               \
                        po[i] = x[i] - exp(y[i]) * ss[i];                                          \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_LSM(f32, float)
DEFINE_LSM(f64, double)

static void lsm_task(void *ctx, int t, int nt)
{
    const lsm_job *j = ctx;
    int64_t r0 = j->n * t / nt, r1 = j->n * (t + 1) / nt;
    if (j->dtype == NB_F32)
        lsm_f32(j, r0, r1);
    else
        lsm_f64(j, r0, r1);
}

/* One pass of @p n rows, lines or slices, split over the graph's threads
 * when the tensor is large enough: every element is computed the same way
 * whatever the split. */
static void lsm_pass(nb_graph *g, lsm_job *j, int phase, int64_t n, int64_t size)
{
    j->phase = phase;
    j->n = n;
    int nt = nbc_threads_for(g, size);
    if (nt > n)
        nt = (int)n;
    if (nt <= 1)
        lsm_task(j, 0, 1);
    else
        nbc_parallel(nt, lsm_task, j);
}

/* The job of node out, whose last input x is split around the axis. */
static lsm_job lsm_job_of(const nb_tensor *out)
{
    const nb_tensor *x = out->inputs[out->n_inputs - 1];
    int axis = lsm_axis(out);
    lsm_job j = {.dtype = out->dtype, .outer = 1, .len = x->shape[axis], .inner = 1};
    for (int d = 0; d < axis; d++)
        j.outer *= x->shape[d];
    for (int d = axis + 1; d < x->rank; d++)
        j.inner *= x->shape[d];
    j.a = out->inputs[0]->data;
    j.b = out->n_inputs == 2 ? x->data : NULL;
    j.dst = out->data;
    return j;
}

/* Both ops' kernels: a last axis row by row; another axis in passes over
 * whole tensors with per-slice buffers, the reductions walking it their
 * own way. */
static nb_status lsm_run(nb_graph *g, nb_tensor *out, bool backward)
{
    if (out->size == 0)
        return NB_OK;
    lsm_job j = lsm_job_of(out);
    if (j.inner == 1) {
        lsm_pass(g, &j, backward ? LSM_BACK_ROWS : LSM_ROWS, j.outer, out->size);
        return NB_OK;
    }
    const nb_tensor *first = out->inputs[0]; /* x, or gy */
    uint64_t mask = (uint64_t)1 << lsm_axis(out);
    int64_t slices = j.outer * j.inner, lines = j.outer * j.len;
    size_t bytes = (size_t)slices * nbc_dtype_size(out->dtype);
    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    void *s = nbc_alloc(g, bytes, out->op->name);
    void *m = backward || !s ? NULL : nbc_alloc(g, bytes, out->op->name);
    if (!s || (!backward && !m))
        return g->err.status;
    j.m = m;
    j.s = s;
    if (backward) {
        nbk_reduce_into(g, first, first->data, mask, false, s); /* Σ gy */
        lsm_pass(g, &j, LSM_BACK, lines, out->size);
    } else { /* the composition's steps over whole tensors */
        nbk_reduce_into(g, first, first->data, mask, true, m);
        lsm_pass(g, &j, LSM_EXP, lines, out->size);
        nbk_reduce_into(g, first, out->data, mask, false, s);
        lsm_pass(g, &j, LSM_LOG, slices, slices);
        lsm_pass(g, &j, LSM_OUT, lines, out->size);
    }
    nbc_arena_release(&g->arena, pos);
    return NB_OK;
}

nb_status nbo_log_softmax_fwd(nb_graph *g, nb_tensor *out)
{
    return lsm_run(g, out, false);
}

nb_status nbo_log_softmax_backward_fwd(nb_graph *g, nb_tensor *out)
{
    return lsm_run(g, out, true);
}

/* ------------------------------------------------------ derivative rules */

static bool zero_tangent(const nb_tensor *t)
{
    return !t || (t->flags & NB_T_ZERO);
}

/* t − Σ_axis(e^y·t): the JVP of log_softmax (y its result), and the VJP in
 * gy of its backward, which is the transpose of gy ↦ gy − e^y·Σ gy. */
static nb_tensor *centre(nb_graph *g, nb_tensor *y, nb_tensor *t, int axis)
{
    return nb_sub(g, t, nb_sum(g, nb_mul(g, nb_exp(g, y), t), &axis, 1, true));
}

/* v·e^y·Σ_axis gy: the backward's derivative in y (with a minus) applied
 * to v. */
static nb_tensor *scaled(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    int axis = lsm_axis(out);
    nb_tensor *gy = out->inputs[0], *y = out->inputs[1];
    return nb_mul(g, nb_mul(g, v, nb_exp(g, y)), nb_sum(g, gy, &axis, 1, true));
}

/* d log_softmax = log_softmax_backward(g, y) = g − e^y·Σ g */
nb_tensor *nbo_log_softmax_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nbo_log_softmax_backward(g, gr, out, lsm_axis(out));
}
/* t_y = t − Σ(e^y·t) */
nb_tensor *nbo_log_softmax_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return centre(g, out, t[0], lsm_axis(out));
}

/* d gy = u − Σ(u·e^y), d y = −u·e^y·Σ gy */
nb_tensor *nbo_log_softmax_backward_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *u)
{
    if (i == 0)
        return centre(g, out->inputs[1], u, lsm_axis(out));
    return nb_neg(g, scaled(g, out, u));
}
/* t_dx = (t_gy − e^y·Σ t_gy) − t_y·e^y·Σ gy */
nb_tensor *nbo_log_softmax_backward_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    nb_tensor *d_gy = zero_tangent(t[0])
                          ? NULL
                          : nbo_log_softmax_backward(g, t[0], out->inputs[1], lsm_axis(out));
    if (zero_tangent(t[1]))
        return d_gy;
    nb_tensor *d_y = scaled(g, out, t[1]);
    return d_gy ? nb_sub(g, d_gy, d_y) : nb_neg(g, d_y);
}

/* ----------------------------------------------------------- constructors */

static nb_tensor *lsm_apply(nb_graph *g, int op, nb_tensor *const *in, int n, int axis)
{
    nb_attrs a = {0};
    a.ints[0] = axis;
    return nbo_apply(g, &nbo_table[op], in, n, &a);
}

nb_tensor *nbo_log_softmax(nb_graph *g, nb_tensor *x, int axis)
{
    return lsm_apply(g, NB_OP_LOG_SOFTMAX, &x, 1, axis);
}

nb_tensor *nbo_log_softmax_backward(nb_graph *g, nb_tensor *gy, nb_tensor *y, int axis)
{
    nb_tensor *in[2] = {gy, y};
    return lsm_apply(g, NB_OP_LOG_SOFTMAX_BACKWARD, in, 2, axis);
}

/* ------------------------------------------- softmax cross-entropy */

/* softmax_xent(z) with integer labels, z [N, C] logits: the scalar
 * −Σ_i log_softmax(z_i)[l_i], summed (ints[0] = 1) or divided by N
 * (ints[0] = 0, the mean); the labels are attrs.idx[0..N). Its value is
 * that of the composition −mean/sum(Σ_c one_hot ⊙ log_softmax(z)), bit for
 * bit: each row's log-probability is computed as the log_softmax kernel
 * computes it, a one-hot row sums to it exactly, and the N negated values
 * are reduced with nb_sum's row reduction, then divided by N as nb_mean
 * divides.
 *
 * softmax_xent_backward(z, g[, y]) = (softmax(z) − one_hot(l))·g·w,
 * w = 1/N or 1, is its VJP (the same attributes); softmax(z) =
 * e^log_softmax(z) from the same row arithmetic, and g·w = g/N as nb_mean's
 * VJP divides, so the gradient has the composition's bits too: e^y·s off
 * the label, e^y·s − s on it, which is gy − e^y·Σ gy with gy = −s·one_hot.
 *
 * What the forward saves: attrs.saved of a softmax_xent node holds 2N
 * values of its dtype, each row's maximum m_i and log-sum ls_i =
 * ln Σ e^(z_i − m_i) as its kernel computed them (kept whether or not the
 * graph records; a replay of the kernel writes the same array again). The
 * VJP records the backward with that node as a third input y, whose
 * statistics turn each element's gradient into one exp, e^((z − m) − ls),
 * the very operand the log_softmax kernel's result is. Given two inputs
 * (nb_apply), or a y made while the graph did not record (which keeps no
 * record that its input is this z), the backward recomputes them: max,
 * e^(z − m), sum and log per row, the same bits at one more exp per
 * element. y must be a softmax_xent node, of the same z when it has a
 * record (the statistics depend on z alone, not on the labels or the
 * reduction); it gets no gradient. */

enum { XENT_MEAN = 0, XENT_SUM = 1 }; /* ints[0]: nb_reduction's values */

static bool xent_mean(const nb_tensor *out)
{
    return out->attrs->ints[0] == XENT_MEAN;
}

/* softmax_xent(z) and softmax_xent_backward(z, g[, y]): z [N, C] with N
 * labels in [0, C), g a scalar of z's dtype, y the softmax_xent of z. */
nb_status nbo_softmax_xent_shape(nb_graph *g, nb_tensor *out)
{
    const char *name = out->op->name;
    const nb_tensor *z = out->inputs[0];
    const nb_attrs *a = out->attrs;
    char b0[160], b1[160];
    bool backward = out->op == &nbo_table[NB_OP_SOFTMAX_XENT_BACKWARD];
    if (backward && out->n_inputs != 2 && out->n_inputs != 3)
        return nbc_error(g, NB_ERR_ARG, name, "takes 2 or 3 inputs (z, g[, y]), got %d",
                         out->n_inputs);
    if (z->rank != 2 || z->shape[1] < 1)
        return nbc_error(g, NB_ERR_SHAPE, name, "logits %s must be [N, C] with C >= 1",
                         nbc_shp(z, b0, sizeof b0));
    if (a->ints[0] != XENT_MEAN && a->ints[0] != XENT_SUM)
        return nbc_error(g, NB_ERR_ARG, name, "reduction %lld: it must be %d (mean) or %d (sum)",
                         (long long)a->ints[0], XENT_MEAN, XENT_SUM);
    if (a->n_idx != z->shape[0])
        return nbc_error(g, NB_ERR_SHAPE, name, "logits %s but %lld labels",
                         nbc_shp(z, b0, sizeof b0), (long long)a->n_idx);
    for (int64_t i = 0; i < a->n_idx; i++)
        if (a->idx[i] < 0 || a->idx[i] >= z->shape[1])
            return nbc_error(g, NB_ERR_ARG, name, "label %lld of sample %lld is outside [0, %lld)",
                             (long long)a->idx[i], (long long)i, (long long)z->shape[1]);
    if (backward) {
        const nb_tensor *gr = out->inputs[1];
        if (gr->dtype != z->dtype || gr->rank != 0)
            return nbc_error(g, gr->dtype != z->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE, name,
                             "gradient %s%s must be a scalar of the logits' dtype %s",
                             nb_dtype_name(gr->dtype), nbc_shp(gr, b1, sizeof b1),
                             nb_dtype_name(z->dtype));
        const nb_tensor *y = out->n_inputs == 3 ? out->inputs[2] : NULL;
        if (y &&
            (y->op != &nbo_table[NB_OP_SOFTMAX_XENT] || (y->n_inputs == 1 && y->inputs[0] != z)))
            return nbc_error(g, NB_ERR_ARG, name,
                             "input 2 (made by %s) must be the softmax_xent of input 0, whose row "
                             "statistics it saves",
                             y->op ? y->op->name : "leaf");
        out->rank = 2;
        memcpy(out->shape, z->shape, 2 * sizeof *z->shape);
    } else {
        out->rank = 0;
    }
    out->dtype = z->dtype;
    return NB_OK;
}

typedef struct xent_job {
    nb_dtype dtype;
    bool backward;
    int64_t n, c;
    const int64_t *labels;
    const void *z;
    void *dst;     /* forward: the N negated log-probabilities; backward: dz */
    void *scratch; /* forward: C elements per thread */
    void *stats;   /* per row m, ls: the forward writes them; the backward reads
                      them, or recomputes them where NULL */
    double s;      /* backward: g·w, as the dtype's value */
} xent_job;

/* Per row: its maximum m and log-sum ls as the log_softmax kernel computes
 * them (e a scratch row, left holding e^(x − m)); the forward stores them
 * and −log_softmax(x)[l], the backward e^((x − m) − ls)·s − [i = l]·s. */
#define DEFINE_XENT(SUF, T)                                                                        \
    static void xent_##SUF(const xent_job *j, int64_t r0, int64_t r1, int t)                       \
    {                                                                                              \
        int64_t len = j->c;                                                                        \
        T s = (T)j->s, *st = j->stats;                                                             \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            const T *x = (const T *)j->z + r * len;                                                \
            int64_t l = j->labels[r];                                                              \
            T *e = j->backward ? (T *)j->dst + r * len : (T *)j->scratch + t * len;                \
            T mx, ls;                                                                              \
            if (j->backward && st) {                                                               \
                mx = st[2 * r];                                                                    \
                ls = st[2 * r + 1];                                                                \
            } else {                                                                               \
                mx = nbk_max_row_##SUF(x, len);                                                    \
                for (int64_t i = 0; i < len; i++)                                                  \
                    e[i] = exp(x[i] - mx);                                                         \
                ls = log(nbk_sum_row_##SUF(e, len));                                               \
            }                                                                                      \
            if (!j->backward) {                                                                    \
                st[2 * r] = mx;                                                                    \
                st[2 * r + 1] = ls;                                                                \
                ((T *)j->dst)[r] = -((x[l] - mx) - ls);                                            \
                continue;                                                                          \
            }                                                                                      \
            for (int64_t i = 0; i < len; i++)                                                      \
                e[i] = exp((x[i] - mx) - ls) * s;                                                  \
            e[l] = e[l] - s;                                                                       \
        }                                                                                          \
    }

DEFINE_XENT(f32, float)
DEFINE_XENT(f64, double)

static void xent_task(void *ctx, int t, int nt)
{
    const xent_job *j = ctx;
    int64_t r0 = j->n * t / nt, r1 = j->n * (t + 1) / nt;
    if (j->dtype == NB_F32)
        xent_f32(j, r0, r1, t);
    else
        xent_f64(j, r0, r1, t);
}

static nb_status xent_run(nb_graph *g, nb_tensor *out, bool backward)
{
    const nb_tensor *z = out->inputs[0];
    int64_t n = z->shape[0], c = z->shape[1];
    size_t es = nbc_dtype_size(out->dtype);
    bool mean = xent_mean(out);
    xent_job j = {.dtype = out->dtype,
                  .backward = backward,
                  .n = n,
                  .c = c,
                  .labels = out->attrs->idx,
                  .z = z->data};
    int nt = nbc_threads_for(g, z->size);
    if (nt > n)
        nt = (int)n;
    if (nt < 1)
        nt = 1;
    if (backward) {
        if (n == 0)
            return NB_OK;
        double gv = nb_tensor_get(out->inputs[1], 0);
        /* s = g / N as nb_mean's VJP divides, in the dtype */
        if (out->dtype == NB_F32)
            j.s = mean ? (float)gv / (float)n : (float)gv;
        else
            j.s = mean ? gv / (double)n : gv;
        j.dst = out->data;
        const nb_tensor *y = out->n_inputs == 3 ? out->inputs[2] : NULL;
        j.stats = y && y->n_inputs == 1 ? y->attrs->saved : NULL; /* of this z */
    } else if (n > 0) { /* kept in the node; a replay writes the same array again */
        if (!out->attrs->saved)
            out->attrs->saved = nbc_alloc(g, (size_t)(2 * n) * es, out->op->name);
        if (!out->attrs->saved)
            return g->err.status;
        j.stats = out->attrs->saved;
    }
    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    if (!backward) {
        j.dst = nbc_alloc(g, (size_t)(n + (int64_t)nt * c) * es, out->op->name);
        if (!j.dst)
            return g->err.status;
        j.scratch = (char *)j.dst + (size_t)n * es;
    }
    if (nt <= 1)
        xent_task(&j, 0, 1);
    else
        nbc_parallel(nt, xent_task, &j);
    if (!backward) { /* nb_sum of the [N] values (0 for none), then nb_mean's division */
        if (out->dtype == NB_F32) {
            float v = n > 0 ? nbk_sum_row_f32(j.dst, n) : 0;
            *(float *)out->data = mean ? v / (float)(double)n : v;
        } else {
            double v = n > 0 ? nbk_sum_row_f64(j.dst, n) : 0;
            *(double *)out->data = mean ? v / (double)n : v;
        }
    }
    nbc_arena_release(&g->arena, pos);
    return NB_OK;
}

nb_status nbo_softmax_xent_fwd(nb_graph *g, nb_tensor *out)
{
    return xent_run(g, out, false);
}

nb_status nbo_softmax_xent_backward_fwd(nb_graph *g, nb_tensor *out)
{
    return xent_run(g, out, true);
}

/* w = 1/N (mean) or 1 (sum) */
static double xent_w(const nb_tensor *out)
{
    return xent_mean(out) ? 1.0 / (double)out->inputs[0]->shape[0] : 1.0;
}

/* p = e^log_softmax(z) along the rows */
static nb_tensor *xent_p(nb_graph *g, const nb_tensor *out)
{
    return nb_exp(g, nbo_log_softmax(g, out->inputs[0], 1));
}

/* p − one_hot(labels) */
static nb_tensor *xent_p_minus_onehot(nb_graph *g, const nb_tensor *out, nb_tensor *p)
{
    const nb_tensor *z = out->inputs[0];
    nb_tensor *oh = nb_one_hot(g, z->dtype, out->attrs->idx, out->attrs->n_idx, z->shape[1]);
    return nb_sub(g, p, oh);
}

/* d softmax_xent = softmax_xent_backward(z, g, y): y = out brings the
 * row statistics its kernel saved */
nb_tensor *nbo_softmax_xent_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nbo_softmax_xent_backward(g, out->inputs[0], gr, out, out->attrs);
}
/* t_out = w·Σ((p − one_hot)⊙t_z) */
nb_tensor *nbo_softmax_xent_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    nb_tensor *d = xent_p_minus_onehot(g, out, xent_p(g, out));
    return nb_scale(g, nb_sum(g, nb_mul(g, d, t[0]), NULL, 0, false), xent_w(out));
}

/* s·p⊙(u − Σ_rows(u⊙p)), s = g·w: the derivative in z applied to u (the
 * Hessian of the loss is symmetric, so it serves the VJP and the JVP) */
static nb_tensor *xent_hess(nb_graph *g, const nb_tensor *out, nb_tensor *p, nb_tensor *u)
{
    int axis = 1;
    nb_tensor *s = nb_scale(g, out->inputs[1], xent_w(out));
    nb_tensor *c = nb_sub(g, u, nb_sum(g, nb_mul(g, u, p), &axis, 1, true));
    return nb_mul(g, nb_mul(g, p, c), s);
}

/* d z = s·p⊙(u − Σ_rows(u⊙p)), d g = w·Σ(u⊙(p − one_hot)); y only
 * carries statistics of z: none */
nb_tensor *nbo_softmax_xent_backward_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *u)
{
    if (i == 2)
        return NULL;
    nb_tensor *p = xent_p(g, out);
    if (i == 0)
        return xent_hess(g, out, p, u);
    nb_tensor *d = xent_p_minus_onehot(g, out, p);
    return nb_scale(g, nb_sum(g, nb_mul(g, u, d), NULL, 0, false), xent_w(out));
}
/* t_dz = s·p⊙(t_z − Σ_rows(p⊙t_z)) + (p − one_hot)·w·t_g (none from y) */
nb_tensor *nbo_softmax_xent_backward_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    nb_tensor *p = xent_p(g, out);
    nb_tensor *d_z = zero_tangent(t[0]) ? NULL : xent_hess(g, out, p, t[0]);
    if (zero_tangent(t[1]))
        return d_z;
    nb_tensor *d_g = nb_mul(g, xent_p_minus_onehot(g, out, p), nb_scale(g, t[1], xent_w(out)));
    return d_z ? nb_add(g, d_z, d_g) : d_g;
}

static nb_tensor *xent_apply(nb_graph *g, int op, nb_tensor *const *in, int n,
                             const nb_attrs *attrs)
{
    nb_attrs a = *attrs;
    a.idx = a.n_idx > 0 ? a.idx : NULL;
    a.saved = NULL;
    return nbo_apply(g, &nbo_table[op], in, n, &a);
}

nb_tensor *nbo_softmax_xent(nb_graph *g, nb_tensor *z, const int64_t *labels, int64_t n,
                            int reduction)
{
    nb_attrs a = {0};
    a.ints[0] = reduction;
    a.idx = labels;
    a.n_idx = n;
    return xent_apply(g, NB_OP_SOFTMAX_XENT, &z, 1, &a);
}

nb_tensor *nbo_softmax_xent_backward(nb_graph *g, nb_tensor *z, nb_tensor *gr, nb_tensor *y,
                                     const nb_attrs *attrs)
{
    nb_tensor *in[3] = {z, gr, y};
    return xent_apply(g, NB_OP_SOFTMAX_XENT_BACKWARD, in, y ? 3 : 2, attrs);
}
