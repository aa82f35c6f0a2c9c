/* Reductions: sum, mean, max and min over a set of axes, argmax over one
 * axis, the broadcasting pair sum_to / broadcast_to (each the adjoint of the
 * other), and the reductions composed of these (logsumexp, var, the
 * single-axis helpers).
 *
 * Attributes:
 *   sum, mean, max, min:     ints[0] = bitmask of reduced axes of the input,
 *                            ints[1] = keepdims (0 or 1).
 *   argmax:                  ints[0] = the axis (normalised by the shape rule).
 *   sum_to, broadcast_to:    ints[0..rank) = target shape,
 *                            ints[NB_MAX_RANK] = target rank.
 *
 * Every reduction runs through one engine: the input's axes are coalesced
 * (size-1 axes dropped, neighbours that are both reduced or both kept
 * merged), then either the innermost axis is reduced (each output is a
 * pairwise reduction of contiguous rows) or it is kept (whole rows of the
 * input are combined into a row of the output, a loop that vectorises).
 * Each output element is always computed by one thread in one fixed order,
 * or - for a single long row - by a fixed pairwise tree whose leaves may run
 * on several threads; either way the result is bit-identical for every
 * thread count. */

#include "kernels.h"

/* ------------------------------------------------------------ the plan */

typedef enum red_kind { RED_SUM, RED_MAX, RED_MIN } red_kind;

/* How to walk a reduction of x after coalescing its axes. */
typedef struct red_plan {
    int rank; /* coalesced axes, rank >= 1 */
    int64_t size[NB_MAX_RANK];
    int64_t stride[NB_MAX_RANK]; /* element strides in x */
    bool reduced[NB_MAX_RANK];
    int n_kept; /* kept axes, outer to inner */
    int kept[NB_MAX_RANK];
    int n_red;            /* reduced axes, outer to inner; when the */
    int red[NB_MAX_RANK]; /* innermost axis is reduced it is not listed */
    int64_t n_red_iter;   /* product of the listed reduced sizes */
    int64_t n_out;        /* output elements */
} red_plan;

/* Plan a reduction of a non-empty x over the axes in mask. */
static void red_plan_make(red_plan *p, const nb_tensor *x, uint64_t mask)
{
    int r = 0;
    for (int d = 0; d < x->rank; d++) {
        int64_t n = x->shape[d];
        bool red = (mask >> d) & 1u;
        if (n == 1)
            continue;
        if (r > 0 && p->reduced[r - 1] == red) {
            p->size[r - 1] *= n;
            continue;
        }
        p->size[r] = n;
        p->reduced[r] = red;
        r++;
    }
    if (r == 0) { /* one element: a copy */
        p->size[0] = 1;
        p->reduced[0] = false;
        r = 1;
    }
    p->rank = r;
    p->stride[r - 1] = 1;
    for (int d = r - 2; d >= 0; d--)
        p->stride[d] = p->stride[d + 1] * p->size[d + 1];
    bool inner_reduced = p->reduced[r - 1];
    p->n_kept = p->n_red = 0;
    p->n_red_iter = p->n_out = 1;
    for (int d = 0; d < r; d++) {
        if (!p->reduced[d]) {
            p->kept[p->n_kept++] = d;
            p->n_out *= p->size[d];
        } else if (!(inner_reduced && d == r - 1)) {
            p->red[p->n_red++] = d;
            p->n_red_iter *= p->size[d];
        }
    }
}

/* Offset in x of output position o over the first n kept axes. */
static int64_t kept_offset(const red_plan *p, int n, int64_t o)
{
    int64_t off = 0;
    for (int k = n - 1; k >= 0; k--) {
        int d = p->kept[k];
        off += (o % p->size[d]) * p->stride[d];
        o /= p->size[d];
    }
    return off;
}

/* Odometer over the listed reduced axes: off is the current offset in x. */
typedef struct red_odo {
    int64_t idx[NB_MAX_RANK];
    int64_t off;
} red_odo;

static void odo_next(const red_plan *p, red_odo *o)
{
    for (int k = p->n_red - 1; k >= 0; k--) {
        int d = p->red[k];
        o->off += p->stride[d];
        if (++o->idx[k] < p->size[d])
            return;
        o->off -= p->stride[d] * p->size[d];
        o->idx[k] = 0;
    }
}

/* -------------------------------------------------------------- kernels */

#define COMBINE_SUM(a, v) ((a) + (v))
/* NaN wins: once the accumulator is NaN it stays NaN */
#define COMBINE_MAX(a, v) (((v) > (a) || (v) != (v)) ? (v) : (a))
#define COMBINE_MIN(a, v) (((v) < (a) || (v) != (v)) ? (v) : (a))

/* Leaves of the pairwise tree hold at most this many elements. Max (and
 * min) is exact, so its leaves are long: the tree only fixes the order (which of
 * -0/+0 or of two NaNs wins), and merging leaves costs unpredictable
 * branches. */
#define RED_BLOCK 128
#define RED_MAX_BLOCK 8192
/* At most this many leaves of a long row are reduced in parallel. */
#define RED_MAX_SEGS 64
/* Output columns combined per pass when whole rows are reduced (fits L1). */
#define RED_COLS 2048

/* Split of a pairwise node of more than BLOCK elements: the left part. */
static int64_t red_split(int64_t n)
{
    int64_t n2 = n / 2;
    return n2 - n2 % 8;
}

/*
 * The kernels of one reduction and one element type T:
 *  NAME_row:      pairwise reduction of a contiguous row (8 lanes in a leaf,
 *                 halves above BLOCK), the fixed order every path uses;
 *  NAME_row_par:  the same tree with its top levels' leaves on nt threads;
 *  NAME_rows4:    NAME_row of 4 rows of one length at once, each with the
 *                 very operations of NAME_row, interleaved: a leaf's 8 lanes
 *                 are one chain of dependent adds, four rows' are four
 *                 independent ones, which keep the adder busy;
 *  NAME_inner:    outputs [o0,o1) when the innermost axis is reduced;
 *  NAME_outer:    output rows [r0,r1), columns [j0,j1) when it is kept:
 *                 input rows are combined in chunks of RED_BLOCK (a two-level
 *                 cascade, so a long f32 column sum does not drift), one
 *                 block of RED_COLS columns at a time; compiled for AVX-512
 *                 and AVX2 too (a bias's gradient, the column sums of a
 *                 32 x 128 gradient, took 0.5 us on the baseline's SSE).
 */
#define DEFINE_REDUCE(NAME, T, COMBINE, BLOCK)                                                     \
    static T NAME##_row(const T *x, int64_t n)                                                     \
    {                                                                                              \
        if (n > (BLOCK)) {                                                                         \
            int64_t n2 = red_split(n);                                                             \
            T a = NAME##_row(x, n2), b = NAME##_row(x + n2, n - n2);                               \
            return COMBINE(a, b);                                                                  \
        }                                                                                          \
        T acc = x[0];                                                                              \
        int64_t i = 1;                                                                             \
        if (n >= 8) {                                                                              \
            T l[8];                                                                                \
            for (int k = 0; k < 8; k++)                                                            \
                l[k] = x[k];                                                                       \
            for (i = 8; i + 8 <= n; i += 8) {                                                      \
                NBK_PRAGMA(omp simd)                                                               \
                for (int k = 0; k < 8; k++)                                                        \
                    l[k] = COMBINE(l[k], x[i + k]);                                                \
            }                                                                                      \
            T a01 = COMBINE(l[0], l[1]), a23 = COMBINE(l[2], l[3]);                                \
            T a45 = COMBINE(l[4], l[5]), a67 = COMBINE(l[6], l[7]);                                \
            T a03 = COMBINE(a01, a23), a47 = COMBINE(a45, a67);                                    \
            acc = COMBINE(a03, a47);                                                               \
        }                                                                                          \
        for (; i < n; i++)                                                                         \
            acc = COMBINE(acc, x[i]);                                                              \
        return acc;                                                                                \
    }                                                                                              \
                                                                                                   \
    static void NAME##_rows4(const T *const *x, int64_t n, T *out)                                 \
    {                                                                                              \
        if (n > (BLOCK)) {                                                                         \
            int64_t n2 = red_split(n);                                                             \
            const T *right[4] = {x[0] + n2, x[1] + n2, x[2] + n2, x[3] + n2};                      \
            T a[4], b[4];                                                                          \
            NAME##_rows4(x, n2, a);                                                                \
            NAME##_rows4(right, n - n2, b);                                                        \
            for (int k = 0; k < 4; k++)                                                            \
                out[k] = COMBINE(a[k], b[k]);                                                      \
            return;                                                                                \
        }                                                                                          \
        T acc[4];                                                                                  \
        int64_t i = 1;                                                                             \
        for (int k = 0; k < 4; k++)                                                                \
            acc[k] = x[k][0];                                                                      \
        if (n >= 8) {                                                                              \
            T l[4][8];                                                                             \
            for (int k = 0; k < 4; k++)                                                            \
                for (int q = 0; q < 8; q++)                                                        \
                    l[k][q] = x[k][q];                                                             \
            for (i = 8; i + 8 <= n; i += 8)                                                        \
                for (int k = 0; k < 4; k++) {                                                      \
                    NBK_PRAGMA(omp simd)                                                           \
                    for (int q = 0; q < 8; q++)                                                    \
                        l[k][q] = COMBINE(l[k][q], x[k][i + q]);                                   \
                }                                                                                  \
            for (int k = 0; k < 4; k++) {                                                          \
                T a01 = COMBINE(l[k][0], l[k][1]), a23 = COMBINE(l[k][2], l[k][3]);                \
                T a45 = COMBINE(l[k][4], l[k][5]), a67 = COMBINE(l[k][6], l[k][7]);                \
                T a03 = COMBINE(a01, a23), a47 = COMBINE(a45, a67);                                \
                acc[k] = COMBINE(a03, a47);                                                        \
            }                                                                                      \
        }                                                                                          \
        for (; i < n; i++)                                                                         \
            for (int k = 0; k < 4; k++)                                                            \
                acc[k] = COMBINE(acc[k], x[k][i]);                                                 \
        for (int k = 0; k < 4; k++)                                                                \
            out[k] = acc[k];                                                                       \
    }                                                                                              \
                                                                                                   \
    typedef struct NAME##_segs {                                                                   \
        const T *x;                                                                                \
        const int64_t *off, *len;                                                                  \
        T *part;                                                                                   \
        int n_seg;                                                                                 \
    } NAME##_segs;                                                                                 \
                                                                                                   \
    static void NAME##_segs_task(void *ctx, int t, int nt)                                         \
    {                                                                                              \
        NAME##_segs *j = ctx;                                                                      \
        for (int s = j->n_seg * t / nt; s < j->n_seg * (t + 1) / nt; s++)                          \
            j->part[s] = NAME##_row(j->x + j->off[s], j->len[s]);                                  \
    }                                                                                              \
                                                                                                   \
    static T NAME##_row_par(const T *x, int64_t n, int nt)                                         \
    {                                                                                              \
        int64_t off[RED_MAX_SEGS], len[RED_MAX_SEGS];                                              \
        T part[RED_MAX_SEGS];                                                                      \
        int n_seg = 1;                                                                             \
        off[0] = 0;                                                                                \
        len[0] = n;                                                                                \
        while (n_seg < 2 * nt && 2 * n_seg <= RED_MAX_SEGS) {                                      \
            bool splits = true;                                                                    \
            for (int s = 0; s < n_seg; s++)                                                        \
                splits &= len[s] > (BLOCK);                                                        \
            if (!splits)                                                                           \
                break;                                                                             \
            for (int s = n_seg - 1; s >= 0; s--) {                                                 \
                int64_t n2 = red_split(len[s]);                                                    \
                off[2 * s] = off[s];                                                               \
                off[2 * s + 1] = off[s] + n2;                                                      \
                len[2 * s + 1] = len[s] - n2;                                                      \
                len[2 * s] = n2;                                                                   \
            }                                                                                      \
            n_seg *= 2;                                                                            \
        }                                                                                          \
        NAME##_segs j = {x, off, len, part, n_seg};                                                \
        nbc_parallel(n_seg < nt ? n_seg : nt, NAME##_segs_task, &j);                               \
        for (; n_seg > 1; n_seg /= 2)                                                              \
            for (int s = 0; s < n_seg / 2; s++)                                                    \
                part[s] = COMBINE(part[2 * s], part[2 * s + 1]);                                   \
        return part[0];                                                                            \
    }                                                                                              \
                                                                                                   \
    static void NAME##_inner(const red_plan *p, const void *xv, void *ov, int64_t o0, int64_t o1,  \
                             int row_nt)                                                           \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *out = ov;                                                                               \
        int64_t m = p->size[p->rank - 1];                                                          \
        for (int64_t o = o0; o < o1; o++) {                                                        \
            const T *base = x + kept_offset(p, p->n_kept, o);                                      \
            red_odo it = {{0}, 0};                                                                 \
            T acc = 0;                                                                             \
            int64_t r = 0;                                                                         \
            for (; row_nt <= 1 && r + 4 <= p->n_red_iter; r += 4) {                                \
                const T *rows[4];                                                                  \
                T v[4];                                                                            \
                for (int k = 0; k < 4; k++) {                                                      \
                    rows[k] = base + it.off;                                                       \
                    odo_next(p, &it);                                                              \
                }                                                                                  \
                NAME##_rows4(rows, m, v);                                                          \
                for (int k = 0; k < 4; k++)                                                        \
                    acc = r + k == 0 ? v[k] : COMBINE(acc, v[k]);                                  \
            }                                                                                      \
            for (; r < p->n_red_iter; r++) {                                                       \
                T v = row_nt > 1 ? NAME##_row_par(base + it.off, m, row_nt)                        \
                                 : NAME##_row(base + it.off, m);                                   \
                acc = r == 0 ? v : COMBINE(acc, v);                                                \
                odo_next(p, &it);                                                                  \
            }                                                                                      \
            out[o] = acc;                                                                          \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    NBC_WIDE_CLONES static void NAME##_outer(const red_plan *p, const void *xv, void *ov,          \
                                             int64_t r0, int64_t r1, int64_t j0, int64_t j1)       \
    {                                                                                              \
        const T *x = xv;                                                                           \
        T *out = ov;                                                                               \
        int64_t f = p->size[p->rank - 1];                                                          \
        T chunk[RED_COLS];                                                                         \
        for (int64_t row = r0; row < r1; row++) {                                                  \
            const T *base = x + kept_offset(p, p->n_kept - 1, row);                                \
            T *restrict po = out + row * f;                                                        \
            for (int64_t jb = j0; jb < j1; jb += RED_COLS) {                                       \
                int64_t je = j1 - jb > RED_COLS ? jb + RED_COLS : j1;                              \
                red_odo it = {{0}, 0};                                                             \
                for (int64_t c0 = 0; c0 < p->n_red_iter; c0 += RED_BLOCK) {                        \
                    int64_t c1 = p->n_red_iter - c0 > RED_BLOCK ? c0 + RED_BLOCK : p->n_red_iter;  \
                    T *restrict acc = c0 == 0 ? po + jb : chunk;                                   \
                    const T *restrict px = base + it.off + jb;                                     \
                    NBK_PRAGMA(omp simd)                                                           \
                    for (int64_t j = 0; j < je - jb; j++)                                          \
                        acc[j] = px[j];                                                            \
                    for (int64_t r = c0 + 1; r < c1; r++) {                                        \
                        odo_next(p, &it);                                                          \
                        px = base + it.off + jb;                                                   \
                        NBK_PRAGMA(omp simd)                                                       \
                        for (int64_t j = 0; j < je - jb; j++)                                      \
                            acc[j] = COMBINE(acc[j], px[j]);                                       \
                    }                                                                              \
                    odo_next(p, &it);                                                              \
                    if (c0 > 0) {                                                                  \
                        NBK_PRAGMA(omp simd)                                                       \
                        for (int64_t j = jb; j < je; j++)                                          \
                            po[j] = COMBINE(po[j], chunk[j - jb]);                                 \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

DEFINE_REDUCE(sum_f32, float, COMBINE_SUM, RED_BLOCK)
DEFINE_REDUCE(sum_f64, double, COMBINE_SUM, RED_BLOCK)
DEFINE_REDUCE(max_f32, float, COMBINE_MAX, RED_MAX_BLOCK)
DEFINE_REDUCE(max_f64, double, COMBINE_MAX, RED_MAX_BLOCK)
DEFINE_REDUCE(min_f32, float, COMBINE_MIN, RED_MAX_BLOCK)
DEFINE_REDUCE(min_f64, double, COMBINE_MIN, RED_MAX_BLOCK)

typedef struct red_kernels {
    void (*inner)(const red_plan *p, const void *x, void *out, int64_t o0, int64_t o1, int row_nt);
    void (*outer)(const red_plan *p, const void *x, void *out, int64_t r0, int64_t r1, int64_t j0,
                  int64_t j1);
} red_kernels;

static const red_kernels red_table[3][2] = {
    [RED_SUM] =
        {[NB_F32] = {sum_f32_inner, sum_f32_outer}, [NB_F64] = {sum_f64_inner, sum_f64_outer}},
    [RED_MAX] =
        {[NB_F32] = {max_f32_inner, max_f32_outer}, [NB_F64] = {max_f64_inner, max_f64_outer}},
    [RED_MIN] =
        {[NB_F32] = {min_f32_inner, min_f32_outer}, [NB_F64] = {min_f64_inner, min_f64_outer}},
};

/* Element-type helpers: fill, divide in place, and broadcast rows. */
#define DEFINE_TYPED(SUF, T)                                                                       \
    static void div_##SUF(nb_tensor *t, double d)                                                  \
    {                                                                                              \
        T *p = t->data, dv = (T)d;                                                                 \
        for (int64_t i = 0; i < t->size; i++)                                                      \
            p[i] = p[i] / dv;                                                                      \
    }                                                                                              \
    static void bcast_##SUF(const nbk_plan *p, nb_tensor *out, int64_t r0, int64_t r1, int64_t j0, \
                            int64_t j1)                                                            \
    {                                                                                              \
        T *o = out->data;                                                                          \
        const T *x = out->inputs[0]->data;                                                         \
        int64_t idx[NB_MAX_RANK], off[1];                                                          \
        nbk_plan_index(p, r0, idx);                                                                \
        nbk_plan_offsets(p, r0, off);                                                              \
        int64_t s = p->stride[0][p->rank - 1];                                                     \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            T *restrict po = o + r * p->inner;                                                     \
            const T *restrict px = x + off[0];                                                     \
            if (s == 1) {                                                                          \
                NBK_PRAGMA(omp simd)                                                               \
                for (int64_t j = j0; j < j1; j++)                                                  \
                    po[j] = px[j];                                                                 \
            } else if (s == 0) {                                                                   \
                T v = px[0];                                                                       \
                NBK_PRAGMA(omp simd)                                                               \
                for (int64_t j = j0; j < j1; j++)                                                  \
                    po[j] = v;                                                                     \
            } else {                                                                               \
                for (int64_t j = j0; j < j1; j++)                                                  \
                    po[j] = px[j * s];                                                             \
            }                                                                                      \
            nbk_plan_next(p, idx, off);                                                            \
        }                                                                                          \
    }

DEFINE_TYPED(f32, float)
DEFINE_TYPED(f64, double)

/* ------------------------------------------------------------- drivers */

typedef struct red_job {
    const red_plan *p;
    const red_kernels *k;
    const void *x;
    void *out;
} red_job;

/* Task t of T when the innermost axis is reduced: a share of the outputs */
static void red_inner_task(void *ctx, int t, int T)
{
    const red_job *j = ctx;
    int64_t n = j->p->n_out;
    j->k->inner(j->p, j->x, j->out, n * t / T, n * (t + 1) / T, 1);
}

/* Task t of T when it is kept: a share of the rows of outputs, or of every
 * row's columns when there are fewer rows than tasks */
static void red_outer_task(void *ctx, int t, int T)
{
    const red_job *j = ctx;
    int64_t f = j->p->size[j->p->rank - 1], rows = j->p->n_out / f;
    if (rows >= T)
        j->k->outer(j->p, j->x, j->out, rows * t / T, rows * (t + 1) / T, 0, f);
    else
        for (int64_t r = 0; r < rows; r++)
            j->k->outer(j->p, j->x, j->out, r, r + 1, f * t / T, f * (t + 1) / T);
}

/* dst = reduction of data (non-empty, of x's dtype and shape) over the axes
 * in mask. */
static void reduce_data(nb_graph *g, const nb_tensor *x, const void *data, uint64_t mask,
                        red_kind kind, void *dst)
{
    red_plan p;
    red_plan_make(&p, x, mask);
    const red_kernels *k = &red_table[kind][x->dtype];
    int nt = nbc_threads_for(g, x->size);
    red_job j = {&p, k, data, dst};

    if (p.reduced[p.rank - 1]) {
        if (nt == 1 || p.n_out < nt) {
            /* few outputs: one at a time, long rows split over threads */
            k->inner(&p, data, dst, 0, p.n_out, nbc_threads_for(g, p.size[p.rank - 1]));
            return;
        }
        nbc_parallel(nt, red_inner_task, &j);
        return;
    }
    nbc_parallel(nt, red_outer_task, &j);
}

/* out = reduction of out->inputs[0] over the axes in mask. */
static void reduce_run(nb_graph *g, nb_tensor *out, uint64_t mask, red_kind kind)
{
    const nb_tensor *x = out->inputs[0];
    if (x->size == 0) { /* sum of nothing; max and min never get here with work to do */
        nbc_fill(out, 0.0);
        return;
    }
    reduce_data(g, x, x->data, mask, kind, out->data);
}

/* ------------------------------------------------ for kernels of other ops */

void nbk_reduce_into(nb_graph *g, const nb_tensor *x, const void *data, uint64_t mask, bool max,
                     void *dst)
{
    reduce_data(g, x, data, mask, max ? RED_MAX : RED_SUM, dst);
}

float nbk_sum_row_f32(const float *x, int64_t n)
{
    return sum_f32_row(x, n);
}

double nbk_sum_row_f64(const double *x, int64_t n)
{
    return sum_f64_row(x, n);
}

/* Rows up to this long take the short path of nbk_max_row. */
#define RED_SHORT_MAX 16

/* The maximum of a row, the bits of max_row's. A short row is scanned in
 * two plain chains of comparisons (no branch per element: the tree's
 * combining steps are branches whose outcome depends on the data): with no
 * NaN in the row and a maximum other than zero, every element equal to the
 * maximum has its bits, so any order finds max_row's result. A NaN (which
 * NaN wins) or a zero maximum (+0 or −0) is decided by the tree's order. */
#define DEFINE_MAX_ROW(SUF, T)                                                                     \
    T nbk_max_row_##SUF(const T *x, int64_t n)                                                     \
    {                                                                                              \
        if (n > RED_SHORT_MAX)                                                                     \
            return max_##SUF##_row(x, n);                                                          \
        T m0 = x[0], m1 = x[0];                                                                    \
        bool nan = false;                                                                          \
        int64_t i = 0;                                                                             \
        for (; i + 2 <= n; i += 2) {                                                               \
            m0 = x[i] > m0 ? x[i] : m0;                                                            \
            m1 = x[i + 1] > m1 ? x[i + 1] : m1;                                                    \
            nan |= (x[i] != x[i]) | (x[i + 1] != x[i + 1]);                                        \
        }                                                                                          \
        if (i < n) {                                                                               \
            m0 = x[i] > m0 ? x[i] : m0;                                                            \
            nan |= x[i] != x[i];                                                                   \
        }                                                                                          \
        T m = m1 > m0 ? m1 : m0;                                                                   \
        return nan || m == 0 ? max_##SUF##_row(x, n) : m;                                          \
    }

DEFINE_MAX_ROW(f32, float)
DEFINE_MAX_ROW(f64, double)

/* ---------------------------------------------------------- shape rules */

static uint64_t axes_mask(const nb_tensor *out)
{
    return (uint64_t)out->attrs->ints[0];
}

static bool keepdims(const nb_tensor *out)
{
    return out->attrs->ints[1] != 0;
}

/* Number of input elements that fold into one output element. */
static int64_t reduced_count(const nb_tensor *x, uint64_t mask)
{
    int64_t n = 1;
    for (int d = 0; d < x->rank; d++)
        if ((mask >> d) & 1u)
            n *= x->shape[d];
    return n;
}

/* x's shape with the reduced axes set to 1. */
static void keep_shape(const nb_tensor *x, uint64_t mask, int64_t *shape)
{
    for (int d = 0; d < x->rank; d++)
        shape[d] = (mask >> d) & 1u ? 1 : x->shape[d];
}

nb_status nbo_reduce_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    uint64_t mask = axes_mask(out);
    char b[160];
    if (mask >> x->rank)
        return nbc_error(g, NB_ERR_ARG, out->op->name,
                         "axis mask 0x%llx names axes beyond the rank of %s",
                         (unsigned long long)mask, nbc_shp(x, b, sizeof b));
    bool is_max = out->op == &nbo_table[NB_OP_MAX];
    if (is_max || out->op == &nbo_table[NB_OP_MIN])
        for (int d = 0; d < x->rank; d++)
            if (((mask >> d) & 1u) && x->shape[d] == 0)
                return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                                 "cannot reduce axis %d of %s: it has size 0 and the "
                                 "%s of no elements is undefined",
                                 d, nbc_shp(x, b, sizeof b), is_max ? "maximum" : "minimum");
    out->dtype = x->dtype;
    out->rank = 0;
    for (int d = 0; d < x->rank; d++) {
        if (!((mask >> d) & 1u))
            out->shape[out->rank++] = x->shape[d];
        else if (keepdims(out))
            out->shape[out->rank++] = 1;
    }
    return NB_OK;
}

/* The target shape of sum_to / broadcast_to, as "[...]" in buf. */
static const char *target_str(const nb_tensor *out, char *buf, size_t n)
{
    return nb_shape_str((int)out->attrs->ints[NB_MAX_RANK], out->attrs->ints, buf, n);
}

static void set_target(nb_tensor *out)
{
    out->dtype = out->inputs[0]->dtype;
    out->rank = (int)out->attrs->ints[NB_MAX_RANK];
    for (int d = 0; d < out->rank; d++)
        out->shape[d] = out->attrs->ints[d];
}

/* sum_to: the target broadcasts to x's shape (it is x's shape with leading
 * axes dropped and some axes set to 1). */
nb_status nbo_sum_to_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int rank = (int)out->attrs->ints[NB_MAX_RANK];
    const int64_t *s = out->attrs->ints;
    char bx[160], bt[160];
    if (rank > x->rank)
        return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                         "cannot sum %s to %s: the target has more axes (%d > %d)",
                         nbc_shp(x, bx, sizeof bx), target_str(out, bt, sizeof bt), rank, x->rank);
    int lead = x->rank - rank;
    for (int d = 0; d < rank; d++)
        if (s[d] != 1 && s[d] != x->shape[lead + d])
            return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                             "cannot sum %s to %s: target axis %d has size %lld, "
                             "which must be 1 or %lld",
                             nbc_shp(x, bx, sizeof bx), target_str(out, bt, sizeof bt), d,
                             (long long)s[d], (long long)x->shape[lead + d]);
    set_target(out);
    return NB_OK;
}

/* broadcast_to: x broadcasts to the target by NumPy rules. */
nb_status nbo_broadcast_to_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int rank = (int)out->attrs->ints[NB_MAX_RANK];
    const int64_t *s = out->attrs->ints;
    char bx[160], bt[160];
    if (rank < x->rank)
        return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                         "cannot broadcast %s to %s: the target has fewer axes (%d < %d)",
                         nbc_shp(x, bx, sizeof bx), target_str(out, bt, sizeof bt), rank, x->rank);
    int lead = rank - x->rank;
    for (int d = 0; d < x->rank; d++)
        if (x->shape[d] != 1 && x->shape[d] != s[lead + d])
            return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                             "cannot broadcast %s to %s: axis %d has size %lld, "
                             "target %lld (only size 1 stretches)",
                             nbc_shp(x, bx, sizeof bx), target_str(out, bt, sizeof bt), d,
                             (long long)x->shape[d], (long long)s[lead + d]);
    set_target(out);
    return NB_OK;
}

/* -------------------------------------------------------- forward kernels */

nb_status nbo_sum_fwd(nb_graph *g, nb_tensor *out)
{
    reduce_run(g, out, axes_mask(out), RED_SUM);
    return NB_OK;
}

nb_status nbo_mean_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    reduce_run(g, out, axes_mask(out), RED_SUM);
    double count = (double)reduced_count(x, axes_mask(out)); /* 0: 0/0 = NaN */
    if (out->dtype == NB_F32)
        div_f32(out, count);
    else
        div_f64(out, count);
    return NB_OK;
}

nb_status nbo_max_fwd(nb_graph *g, nb_tensor *out)
{
    reduce_run(g, out, axes_mask(out), RED_MAX);
    return NB_OK;
}

nb_status nbo_min_fwd(nb_graph *g, nb_tensor *out)
{
    reduce_run(g, out, axes_mask(out), RED_MIN);
    return NB_OK;
}

nb_status nbo_sum_to_fwd(nb_graph *g, nb_tensor *out)
{
    /* reduce the leading axes and those the target holds as 1 */
    const nb_tensor *x = out->inputs[0];
    int lead = x->rank - out->rank;
    uint64_t mask = 0;
    for (int d = 0; d < x->rank; d++)
        if (d < lead || out->shape[d - lead] == 1)
            mask |= 1u << d;
    reduce_run(g, out, mask, RED_SUM);
    return NB_OK;
}

nb_status nbo_broadcast_to_fwd(nb_graph *g, nb_tensor *out)
{
    nbk_run_rows(g, out, 1, out->dtype == NB_F32 ? bcast_f32 : bcast_f64);
    return NB_OK;
}

/* ------------------------------------------------------ derivative rules */

/* t (shaped like the result of the reduction out) with its reduced axes
 * back as size 1, so that it broadcasts against the input. A reshape is
 * needed only when keepdims was off and some reduced axis follows a kept
 * one: when the reduced axes are a leading prefix, right-aligned
 * broadcasting already lines t up with the input. */
static nb_tensor *as_keepdims(nb_graph *g, const nb_tensor *out, nb_tensor *t)
{
    const nb_tensor *x = out->inputs[0];
    uint64_t mask = axes_mask(out);
    if (keepdims(out) || (mask & (mask + 1)) == 0)
        return t;
    int64_t shape[NB_MAX_RANK];
    keep_shape(x, mask, shape);
    return nb_reshape(g, t, x->rank, shape);
}

/* The same reduction (axes, keepdims) as out, with op id, applied to t. */
static nb_tensor *reduce_like(nb_graph *g, const nb_tensor *out, int op, nb_tensor *t)
{
    return nbo_apply(g, &nbo_table[op], &t, 1, out->attrs);
}

/* d sum = broadcast_to(g, shape(x)) */
nb_tensor *nbo_sum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const nb_tensor *x = out->inputs[0];
    return nb_broadcast_to(g, as_keepdims(g, out, gr), x->rank, x->shape);
}
nb_tensor *nbo_sum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return reduce_like(g, out, NB_OP_SUM, t[0]);
}

/* d mean = broadcast_to(g / count, shape(x)) */
nb_tensor *nbo_mean_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const nb_tensor *x = out->inputs[0];
    double count = (double)reduced_count(x, axes_mask(out));
    nb_tensor *scaled = nb_div(g, gr, nbk_const(g, out, count));
    return nb_broadcast_to(g, as_keepdims(g, out, scaled), x->rank, x->shape);
}
nb_tensor *nbo_mean_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return reduce_like(g, out, NB_OP_MEAN, t[0]);
}

/* Share of the result that each input element receives: 1/k where it is
 * one of the k elements equal to the maximum (minimum) of its slice, 0
 * elsewhere. */
static nb_tensor *extremum_share(nb_graph *g, nb_tensor *out)
{
    nb_tensor *x = out->inputs[0];
    nb_tensor *is_max = nb_eq(g, x, as_keepdims(g, out, out));
    nb_attrs keep = *out->attrs;
    keep.ints[1] = 1;
    nb_tensor *ties = nbo_apply(g, &nbo_table[NB_OP_SUM], &is_max, 1, &keep);
    return nb_div(g, is_max, ties);
}

/* d max = g at the arg-max, split equally among ties: g·share */
nb_tensor *nbo_max_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nb_mul(g, extremum_share(g, out), as_keepdims(g, out, gr));
}
/* t_y = sum(t·share) over the reduced axes */
nb_tensor *nbo_max_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return reduce_like(g, out, NB_OP_SUM, nb_mul(g, t[0], extremum_share(g, out)));
}

/* d min, t_y: as max, with the share of the arg-min */
nb_tensor *nbo_min_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbo_max_vjp(g, out, i, gr);
}
nb_tensor *nbo_min_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nbo_max_jvp(g, out, t);
}

/* d sum_to = broadcast_to(g, shape(x)) */
nb_tensor *nbo_sum_to_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const nb_tensor *x = out->inputs[0];
    return nb_broadcast_to(g, gr, x->rank, x->shape);
}
nb_tensor *nbo_sum_to_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_sum_to(g, t[0], out->rank, out->shape);
}

/* d broadcast_to = sum_to(g, shape(x)) */
nb_tensor *nbo_broadcast_to_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    const nb_tensor *x = out->inputs[0];
    return nb_sum_to(g, gr, x->rank, x->shape);
}
nb_tensor *nbo_broadcast_to_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_broadcast_to(g, t[0], out->rank, out->shape);
}

/* ----------------------------------------------------------------- argmax */

/* Indices in f32 are exact up to 2^24. */
#define ARGMAX_F32_MAX_LEN ((int64_t)1 << 24)

nb_status nbo_argmax_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    char b[160];
    int axis = nbk_check_axis(g, out->op->name, x, out->attrs->ints[0], x->rank);
    if (axis < 0)
        return NB_ERR_ARG;
    if (x->shape[axis] == 0)
        return nbc_error(g, NB_ERR_SHAPE, out->op->name,
                         "cannot reduce axis %d of %s: it has size 0 and the arg-max of no "
                         "elements is undefined",
                         axis, nbc_shp(x, b, sizeof b));
    if (x->dtype == NB_F32 && x->shape[axis] > ARGMAX_F32_MAX_LEN)
        return nbc_error(g, NB_ERR_ARG, out->op->name,
                         "axis %d of f32%s has %lld entries, but f32 holds indices exactly only "
                         "up to %lld (cast x to f64)",
                         axis, nbc_shp(x, b, sizeof b), (long long)x->shape[axis],
                         (long long)ARGMAX_F32_MAX_LEN);
    out->attrs->ints[0] = axis;
    out->dtype = x->dtype;
    out->rank = 0;
    for (int d = 0; d < x->rank; d++)
        if (d != axis)
            out->shape[out->rank++] = x->shape[d];
    return NB_OK;
}

/* out[k, j] = the first i with x[k, i, j] the maximum of x[k, :, j]; a NaN
 * counts as the maximum (the first NaN wins), as in max. */
#define ARGMAX_BODY(T)                                                                             \
    do {                                                                                           \
        T *o = out->data;                                                                          \
        const T *px = x->data;                                                                     \
        for (int64_t k = 0; k < outer; k++)                                                        \
            for (int64_t j = 0; j < inner; j++) {                                                  \
                const T *p = px + k * len * inner + j;                                             \
                int64_t best = 0;                                                                  \
                T v_best = p[0];                                                                   \
                for (int64_t i = 1; i < len && v_best == v_best; i++) {                            \
                    T v = p[i * inner];                                                            \
                    if (v > v_best || v != v) {                                                    \
                        best = i;                                                                  \
                        v_best = v;                                                                \
                    }                                                                              \
                }                                                                                  \
                o[k * inner + j] = (T)best;                                                        \
            }                                                                                      \
    } while (0)

nb_status nbo_argmax_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    int axis = (int)out->attrs->ints[0];
    int64_t outer = 1, inner = 1, len = x->shape[axis];
    for (int d = 0; d < axis; d++)
        outer *= x->shape[d];
    for (int d = axis + 1; d < x->rank; d++)
        inner *= x->shape[d];
    if (out->dtype == NB_F32)
        ARGMAX_BODY(float);
    else
        ARGMAX_BODY(double);
    return NB_OK;
}

nb_tensor *nb_argmax(nb_graph *g, nb_tensor *x, int axis)
{
    nb_attrs a = {0};
    a.ints[0] = axis;
    return nbo_apply(g, &nbo_table[NB_OP_ARGMAX], &x, 1, &a);
}

/* ----------------------------------------------------------- constructors */

static nb_tensor *reduce(nb_graph *g, int op, nb_tensor *x, const int *axes, int n_axes, bool keep)
{
    if (!g || !x)
        return NULL;
    const char *name = nbo_table[op].name;
    char b[160];
    if (n_axes < 0) {
        nbc_error(g, NB_ERR_ARG, name, "n_axes is %d for %s; it must be >= 0", n_axes,
                  nbc_shp(x, b, sizeof b));
        return NULL;
    }
    if (n_axes > 0 && !axes) {
        nbc_error(g, NB_ERR_NULL, name, "axes is NULL but n_axes is %d (reducing %s)", n_axes,
                  nbc_shp(x, b, sizeof b));
        return NULL;
    }
    uint64_t mask = n_axes == 0 ? (1u << x->rank) - 1 : 0;
    for (int k = 0; k < n_axes; k++) {
        int d = nbk_axis(axes[k], x->rank);
        if (d < 0) {
            nbc_error(g, NB_ERR_ARG, name, "axis %d is out of range for %s (rank %d)", axes[k],
                      nbc_shp(x, b, sizeof b), x->rank);
            return NULL;
        }
        if ((mask >> d) & 1u) {
            nbc_error(g, NB_ERR_ARG, name, "axis %d of %s is listed twice (as axis %d)", d,
                      nbc_shp(x, b, sizeof b), axes[k]);
            return NULL;
        }
        mask |= 1u << d;
    }
    nb_attrs a = {0};
    a.ints[0] = (int64_t)mask;
    a.ints[1] = keep;
    return nbo_apply(g, &nbo_table[op], &x, 1, &a);
}

nb_tensor *nb_sum(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims)
{
    return reduce(g, NB_OP_SUM, x, axes, n_axes, keepdims);
}

nb_tensor *nb_mean(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims)
{
    return reduce(g, NB_OP_MEAN, x, axes, n_axes, keepdims);
}

nb_tensor *nb_max(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims)
{
    return reduce(g, NB_OP_MAX, x, axes, n_axes, keepdims);
}

nb_tensor *nb_min(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims)
{
    return reduce(g, NB_OP_MIN, x, axes, n_axes, keepdims);
}

/* Check a target shape and apply op to x with it. */
static nb_tensor *to_shape(nb_graph *g, int op, nb_tensor *x, int rank, const int64_t *shape)
{
    if (!g || !x)
        return NULL;
    const char *name = nbo_table[op].name;
    char b[160];
    if (rank < 0 || rank > NB_MAX_RANK) {
        nbc_error(g, NB_ERR_RANK, name, "target rank %d for %s is outside 0..%d", rank,
                  nbc_shp(x, b, sizeof b), NB_MAX_RANK);
        return NULL;
    }
    if (rank > 0 && !shape) {
        nbc_error(g, NB_ERR_NULL, name, "target shape is NULL for rank %d (input %s)", rank,
                  nbc_shp(x, b, sizeof b));
        return NULL;
    }
    if (nbc_check_desc(g, x->dtype, rank, shape, name) != NB_OK)
        return NULL;
    nb_attrs a = {0};
    for (int d = 0; d < rank; d++)
        a.ints[d] = shape[d];
    a.ints[NB_MAX_RANK] = rank;
    return nbo_apply(g, &nbo_table[op], &x, 1, &a);
}

nb_tensor *nb_sum_to(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape)
{
    return to_shape(g, NB_OP_SUM_TO, x, rank, shape);
}

nb_tensor *nb_broadcast_to(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape)
{
    return to_shape(g, NB_OP_BROADCAST_TO, x, rank, shape);
}

/* ------------------------------------------------ compositions over one axis */

nb_tensor *nb_sum_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims)
{
    return nb_sum(g, x, &axis, 1, keepdims);
}

nb_tensor *nb_mean_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims)
{
    return nb_mean(g, x, &axis, 1, keepdims);
}

nb_tensor *nb_max_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims)
{
    return nb_max(g, x, &axis, 1, keepdims);
}

nb_tensor *nb_min_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims)
{
    return nb_min(g, x, &axis, 1, keepdims);
}

/* log Σ e^x = m + log Σ e^(x-m), m the slice's maximum held as a constant:
 * the value is the same for any m, so the derivatives with m fixed are the
 * true ones (the first is softmax(x)), at every order. A slice whose
 * maximum is ±inf or NaN is shifted by 0 instead, so that an all -inf
 * slice gives -inf and not NaN. An empty axis gives log 0 = -inf. */
nb_tensor *nb_logsumexp(nb_graph *g, nb_tensor *x, int axis, bool keepdims)
{
    if (!g || !x)
        return NULL;
    int a = nbk_check_axis(g, "logsumexp", x, axis, x->rank);
    if (a < 0)
        return NULL;
    if (x->shape[a] == 0)
        return nb_log(g, nb_sum(g, x, &a, 1, keepdims));
    nb_tensor *m = nb_stop_gradient(g, nb_max(g, x, &a, 1, true));
    nb_tensor *finite = nb_lt(g, nb_abs(g, m), nbk_const(g, x, INFINITY));
    m = nb_where(g, finite, m, nbk_const(g, x, 0.0));
    nb_tensor *y = nb_add(g, nb_log(g, nb_sum(g, nb_exp(g, nb_sub(g, x, m)), &a, 1, true)), m);
    return keepdims ? y : nb_squeeze(g, y, a);
}

/* Σ (x - mean x)² / max(0, n - correction), two passes: the deviations are
 * taken before they are squared, so no large squares cancel. */
nb_tensor *nb_var(nb_graph *g, nb_tensor *x, int axis, bool keepdims, double correction)
{
    if (!g || !x)
        return NULL;
    int a = nbk_check_axis(g, "var", x, axis, x->rank);
    if (a < 0)
        return NULL;
    if (!(correction >= 0 && correction <= (double)INT64_MAX)) {
        char b[160];
        nbc_error(g, NB_ERR_ARG, "var", "correction %g for %s must be a finite number >= 0",
                  correction, nbc_shp(x, b, sizeof b));
        return NULL;
    }
    nb_tensor *dev = nb_sub(g, x, nb_mean(g, x, &a, 1, true));
    nb_tensor *ss = nb_sum(g, nb_square(g, dev), &a, 1, keepdims);
    return nb_div(g, ss, nbk_const(g, x, fmax(0.0, (double)x->shape[a] - correction)));
}
