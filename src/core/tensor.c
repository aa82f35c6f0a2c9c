/* Tensors: creation in a graph's arena, accessors, printing. */

#include <math.h>
#include <stdio.h>

#include "internal.h"

bool nbc_mul_overflows(int64_t a, int64_t b, int64_t *out)
{
    if (a < 0 || b < 0)
        return true;
    if (a != 0 && b > INT64_MAX / a)
        return true;
    *out = a * b;
    return false;
}

bool nbc_count_axis(int64_t *count, int64_t dim)
{
    return !nbc_mul_overflows(*count, dim, count) && *count <= NBC_MAX_ELEMS;
}

const char *nb_shape_str(int rank, const int64_t *shape, char *buf, size_t n)
{
    if (!buf || n == 0)
        return "";
    size_t used = 0;
    buf[0] = '\0';
    int w = snprintf(buf, n, "[");
    used = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < rank && shape && used < n; i++) {
        w = snprintf(buf + used, n - used, i ? ",%lld" : "%lld", (long long)shape[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

const char *nbc_shp(const nb_tensor *t, char *buf, size_t n)
{
    return nb_shape_str(t->rank, t->shape, buf, n);
}

nb_status nbc_check_desc(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, const char *op)
{
    if (dt != NB_F32 && dt != NB_F64)
        return nbc_error(g, NB_ERR_DTYPE, op, "unknown dtype %d (use NB_F32 or NB_F64)", (int)dt);
    if (rank < 0 || rank > NB_MAX_RANK)
        return nbc_error(g, NB_ERR_RANK, op, "rank %d is outside 0..%d", rank, NB_MAX_RANK);
    if (rank > 0 && !shape)
        return nbc_error(g, NB_ERR_NULL, op, "shape is NULL for rank %d", rank);
    int64_t size = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return nbc_error(g, NB_ERR_ARG, op, "size %lld of axis %d is negative",
                             (long long)shape[i], i);
        if (!nbc_count_axis(&size, shape[i]))
            return nbc_error(g, NB_ERR_ARG, op, "element count overflows");
    }
    return NB_OK;
}

nb_status nbc_tensor_alloc_data(nb_graph *g, nb_tensor *t, const char *op)
{
    int64_t size = 1;
    for (int i = 0; i < t->rank; i++)
        size *= t->shape[i];
    t->size = size;
    t->data = nbc_alloc_data(g, (size_t)size * nb_dtype_size(t->dtype), op);
    return t->data ? NB_OK : NB_ERR_NOMEM;
}

static void tensor_init(nb_tensor *t, nb_graph *g, nb_dtype dt, int rank, const int64_t *shape)
{
    memset(t, 0, NBC_TENSOR_BYTES(rank));
    t->dtype = dt;
    t->rank = rank;
    t->graph = g;
    for (int i = 0; i < rank; i++)
        t->shape[i] = shape[i];
}

nb_tensor *nbc_tensor_new(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, const char *op)
{
    if (!g)
        return NULL;
    if (nbc_check_desc(g, dt, rank, shape, op) != NB_OK)
        return NULL;
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        size *= shape[i];
    void *tail, *data;
    nb_tensor *t = nbc_node_alloc(g, rank, 0, (size_t)size * nbc_dtype_size(dt), &tail, &data, op);
    if (!t)
        return NULL;
    tensor_init(t, g, dt, rank, shape);
    t->size = size;
    t->data = data;
    return t;
}

void nbc_fill(nb_tensor *t, double v)
{
    if (t->dtype == NB_F32) {
        float *p = t->data;
        float fv = (float)v;
        for (int64_t i = 0; i < t->size; i++)
            p[i] = fv;
    } else {
        double *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            p[i] = v;
    }
}

bool nbc_all_finite(const nb_tensor *t)
{
    if (t->dtype == NB_F32) {
        const float *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (!isfinite(p[i]))
                return false;
    } else {
        const double *p = t->data;
        for (int64_t i = 0; i < t->size; i++)
            if (!isfinite(p[i]))
                return false;
    }
    return true;
}

#define SUM_SQUARES(T)                                                                             \
    do {                                                                                           \
        const T *x = t->data;                                                                      \
        int64_t n = t->size, i = 0;                                                                \
        for (; i + 8 <= n; i += 8)                                                                 \
            for (int l = 0; l < 8; l++)                                                            \
                s[l] += (double)x[i + l] * (double)x[i + l];                                       \
        for (int l = 0; i < n; i++, l++)                                                           \
            s[l] += (double)x[i] * (double)x[i];                                                   \
    } while (0)

NBC_WIDE_CLONES double nbc_sum_squares(const nb_tensor *t)
{
    double s[8] = {0};
    if (t && t->dtype == NB_F32)
        SUM_SQUARES(float);
    else if (t)
        SUM_SQUARES(double);
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

int64_t nbc_first_nonfinite(const nb_tensor *t)
{
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(nb_tensor_get(t, i)))
            return i;
    return -1;
}

const char *nbc_nonfinite_at(const nb_tensor *t, int64_t k, char *buf, size_t n)
{
    double v = nb_tensor_get(t, k);
    int64_t idx[NB_MAX_RANK];
    for (int d = t->rank - 1; d >= 0; d--) {
        idx[d] = t->shape[d] > 0 ? k % t->shape[d] : 0;
        k = t->shape[d] > 0 ? k / t->shape[d] : 0;
    }
    int w = snprintf(buf, n, "%s at [", isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf");
    for (int d = 0; d < t->rank && w >= 0 && (size_t)w < n; d++)
        w += snprintf(buf + w, n - (size_t)w, d ? ",%lld" : "%lld", (long long)idx[d]);
    if (w >= 0 && (size_t)w < n)
        snprintf(buf + w, n - (size_t)w, "]");
    return buf;
}

nb_tensor *nb_full(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, double value)
{
    nb_tensor *t = nbc_tensor_new(g, dt, rank, shape, "full");
    if (t)
        nbc_fill(t, value);
    return t;
}

nb_tensor *nb_zeros(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape)
{
    nb_tensor *t = nbc_tensor_new(g, dt, rank, shape, "zeros");
    if (t)
        memset(t->data, 0, (size_t)t->size * nb_dtype_size(dt));
    return t;
}

nb_tensor *nb_ones(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape)
{
    nb_tensor *t = nbc_tensor_new(g, dt, rank, shape, "ones");
    if (t)
        nbc_fill(t, 1.0);
    return t;
}

nb_tensor *nb_scalar(nb_graph *g, nb_dtype dt, double value)
{
    nb_tensor *t = nbc_tensor_new(g, dt, 0, NULL, "scalar");
    if (t)
        nbc_fill(t, value);
    return t;
}

nb_tensor *nbc_const(nb_graph *g, nb_dtype dt, double v)
{
    if (!g)
        return NULL;
    union {
        float f;
        double d;
        unsigned char b[8];
    } val = {0};
    size_t n;
    if (dt == NB_F32) {
        val.f = (float)v;
        n = sizeof val.f;
    } else {
        val.d = v;
        n = sizeof val.d;
    }
    uint64_t h = 0;
    memcpy(&h, val.b, n);
    h ^= h >> 29 ^ h >> 41 ^ (uint64_t)dt;
    size_t slot = (size_t)(h % 8);
    if (g->consts_epoch != g->arena.epoch) {
        memset(g->consts, 0, sizeof g->consts);
        g->consts_epoch = g->arena.epoch;
    }
    nb_tensor *t = g->consts[slot];
    /* the value is compared as stored, so a changed constant is not reused */
    if (t && t->dtype == dt && !(t->flags & NB_T_REQUIRES_GRAD) && memcmp(t->data, val.b, n) == 0)
        return t;
    t = nb_scalar(g, dt, v);
    if (t)
        g->consts[slot] = t;
    return t;
}

nb_tensor *nb_tensor_from(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape,
                          const void *data)
{
    if (!g)
        return NULL;
    if (!data) {
        nbc_error(g, NB_ERR_NULL, "tensor_from", "data is NULL");
        return NULL;
    }
    nb_tensor *t = nbc_tensor_new(g, dt, rank, shape, "tensor_from");
    if (t)
        memcpy(t->data, data, (size_t)t->size * nb_dtype_size(dt));
    return t;
}

static nb_tensor *rand_fill(nb_graph *g, nb_rng *rng, nb_dtype dt, int rank, const int64_t *shape,
                            double a, double b, bool normal, const char *op)
{
    if (!g)
        return NULL;
    if (!rng) {
        nbc_error(g, NB_ERR_NULL, op, "rng is NULL");
        return NULL;
    }
    if (!isfinite(a) || !isfinite(b) || (normal && b < 0) || (!normal && b < a)) {
        nbc_error(g, NB_ERR_ARG, op, "bad parameters %g, %g", a, b);
        return NULL;
    }
    nb_tensor *t = nbc_tensor_new(g, dt, rank, shape, op);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < t->size; i++) {
        double v = normal ? a + b * nb_rng_normal(rng) : a + (b - a) * nb_rng_uniform(rng);
        if (dt == NB_F32)
            ((float *)t->data)[i] = (float)v;
        else
            ((double *)t->data)[i] = v;
    }
    return t;
}

nb_tensor *nb_rand_uniform(nb_graph *g, nb_rng *rng, nb_dtype dt, int rank, const int64_t *shape,
                           double lo, double hi)
{
    return rand_fill(g, rng, dt, rank, shape, lo, hi, false, "rand_uniform");
}

nb_tensor *nb_rand_normal(nb_graph *g, nb_rng *rng, nb_dtype dt, int rank, const int64_t *shape,
                          double mean, double std)
{
    return rand_fill(g, rng, dt, rank, shape, mean, std, true, "rand_normal");
}

/* -------------------------------------------------------------- accessors */

nb_dtype nb_tensor_dtype(const nb_tensor *t)
{
    return t ? t->dtype : NB_F32;
}

int nb_tensor_rank(const nb_tensor *t)
{
    return t ? t->rank : -1;
}

const int64_t *nb_tensor_shape(const nb_tensor *t)
{
    return t ? t->shape : NULL;
}

int64_t nb_tensor_dim(const nb_tensor *t, int axis)
{
    if (!t)
        return -1;
    if (axis < 0)
        axis += t->rank;
    if (axis < 0 || axis >= t->rank)
        return -1;
    return t->shape[axis];
}

int64_t nb_tensor_size(const nb_tensor *t)
{
    return t ? t->size : 0;
}

void *nb_tensor_data(nb_tensor *t)
{
    return t ? t->data : NULL;
}

float *nb_tensor_f32(nb_tensor *t)
{
    return t && t->dtype == NB_F32 ? t->data : NULL;
}

double *nb_tensor_f64(nb_tensor *t)
{
    return t && t->dtype == NB_F64 ? t->data : NULL;
}

double nb_tensor_get(const nb_tensor *t, int64_t i)
{
    if (!t || i < 0 || i >= t->size)
        return NAN;
    return t->dtype == NB_F32 ? (double)((const float *)t->data)[i] : ((const double *)t->data)[i];
}

nb_status nb_tensor_set(nb_tensor *t, int64_t i, double v)
{
    if (!t)
        return NB_ERR_NULL;
    if (i < 0 || i >= t->size)
        return NB_ERR_ARG;
    if (t->dtype == NB_F32)
        ((float *)t->data)[i] = (float)v;
    else
        ((double *)t->data)[i] = v;
    return NB_OK;
}

double nb_tensor_item(const nb_tensor *t)
{
    return t && t->size == 1 ? nb_tensor_get(t, 0) : NAN;
}

nb_tensor *nb_tensor_grad(const nb_tensor *t)
{
    return t ? t->grad : NULL;
}

nb_tensor *nb_tensor_set_requires_grad(nb_tensor *t, bool on)
{
    if (!t)
        return NULL;
    if (on)
        t->flags |= NB_T_REQUIRES_GRAD;
    else
        t->flags &= ~(unsigned)NB_T_REQUIRES_GRAD;
    return t;
}

bool nb_tensor_requires_grad(const nb_tensor *t)
{
    return t && (t->flags & NB_T_REQUIRES_GRAD);
}

nb_tensor *nb_tensor_set_name(nb_tensor *t, const char *name)
{
    if (!t || !name || !t->graph) /* parameters are named by their model */
        return t;
    size_t n = strlen(name) + 1;
    char *copy = nbc_alloc(t->graph, n, "set_name");
    if (copy) {
        memcpy(copy, name, n);
        t->name = copy;
    }
    return t;
}

const char *nb_tensor_name(const nb_tensor *t)
{
    return t && t->name ? t->name : "";
}

static void print_rec(const nb_tensor *t, FILE *f, int axis, int64_t *offset, int64_t *left)
{
    if (axis == t->rank) {
        if (*left == 0)
            return;
        fprintf(f, "%.6g", nb_tensor_get(t, *offset));
        (*offset)++;
        (*left)--;
        return;
    }
    fputc('[', f);
    for (int64_t i = 0; i < t->shape[axis]; i++) {
        if (*left == 0) {
            fputs("...", f);
            break;
        }
        if (i)
            fputs(axis == t->rank - 1 ? ", " : ",\n ", f);
        print_rec(t, f, axis + 1, offset, left);
    }
    fputc(']', f);
}

void nb_tensor_print(const nb_tensor *t, FILE *f, int64_t max_elems)
{
    if (!f)
        return;
    if (!t) {
        fputs("(null tensor)\n", f);
        return;
    }
    char buf[160];
    fprintf(f, "%s%s%s%s = ", t->name ? t->name : "", t->name ? " " : "", nb_dtype_name(t->dtype),
            nbc_shp(t, buf, sizeof buf));
    int64_t offset = 0;
    int64_t left = max_elems > 0 ? max_elems : t->size;
    print_rec(t, f, 0, &offset, &left);
    fputc('\n', f);
}
