/* The dataset type: allocation, accessors, slices and splits,
 * normalisation, and the error and memory helpers of src/data. */

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../io/file.h"
#include "data_internal.h"

/* ------------------------------------------------------------- helpers */

nbd_mem nbd_mem_of(const nb_data_opts *opts)
{
    nbd_mem m = {nb_default_alloc, NULL};
    if (opts && opts->alloc) {
        m.fn = opts->alloc;
        m.ud = opts->alloc_ud;
    }
    return m;
}

void *nbd_alloc(nbd_mem m, size_t size)
{
    if (size == 0)
        return NULL;
    return m.fn(m.ud, NULL, 0, size);
}

void nbd_free(nbd_mem m, void *p, size_t size)
{
    if (p)
        m.fn(m.ud, p, size, 0);
}

bool nbd_mul(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

nb_status nbd_fail(nb_error *err, nb_status st, int64_t line, int64_t column, int64_t offset,
                   const char *fmt, ...)
{
    if (!err)
        return st;
    nb_error_set(err, st, NULL, "%s", "");
    err->line = line;
    err->column = column;
    err->offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return st;
}

void nbd_prefix(nb_error *err, const char *path)
{
    if (!err || !path)
        return;
    char m[sizeof err->msg];
    size_t cap = sizeof m - 1, k = 0;
    for (const char *s = path; *s && k < cap; s++)
        m[k++] = *s;
    for (const char *s = ": "; *s && k < cap; s++)
        m[k++] = *s;
    for (const char *s = err->msg; *s && k < cap; s++)
        m[k++] = *s;
    m[k] = '\0';
    memcpy(err->msg, m, k + 1);
}

nb_status nbd_placed(nb_error *err, nb_status st, const char *where)
{
    if (err && st != NB_OK)
        snprintf(err->where, sizeof err->where, "%s", where);
    return st;
}

nb_status nbd_read_file(nbd_mem mem, const char *path, void **buf, size_t *len, nb_error *err)
{
    char why[sizeof err->msg];
    nb_status st = nbio_read_all(path, mem.fn, mem.ud, buf, len, why, sizeof why);
    return st == NB_OK ? NB_OK : nbd_fail(err, st, 0, 0, -1, "%s", why);
}

nb_status nbd_check_opts(const nb_data_opts *opts)
{
    if (!opts)
        return NB_OK;
    if (opts->dtype != NB_F32 && opts->dtype != NB_F64)
        return NB_ERR_DTYPE;
    if (opts->label_type != NB_LABEL_I32 && opts->label_type != NB_LABEL_I64)
        return NB_ERR_ARG;
    if (opts->n_classes < 0 || opts->n_classes > INT32_MAX)
        return NB_ERR_ARG;
    return NB_OK;
}

size_t nbd_label_bytes(nb_label_type lt)
{
    return lt == NB_LABEL_I64 ? sizeof(int64_t) : sizeof(int32_t);
}

size_t nbd_row_bytes(const nb_dataset *ds)
{
    return (size_t)ds->n_features * nb_dtype_size(ds->dtype);
}

size_t nbd_target_row_bytes(const nb_dataset *ds)
{
    return (size_t)ds->n_targets * nb_dtype_size(ds->dtype);
}

/* Bytes of the feature, label and target blocks of @p ds. */
static size_t feature_bytes(const nb_dataset *ds)
{
    return (size_t)ds->n * nbd_row_bytes(ds);
}

static size_t label_block_bytes(const nb_dataset *ds)
{
    return ds->n_targets > 0 ? 0 : (size_t)ds->n * nbd_label_bytes(ds->label_type);
}

static size_t target_block_bytes(const nb_dataset *ds)
{
    return (size_t)ds->n * nbd_target_row_bytes(ds);
}

nb_status nbd_dataset_alloc(nbd_mem mem, nb_dtype dt, nb_label_type lt, int64_t n,
                            int64_t n_features, int64_t n_targets, nb_dataset **out)
{
    *out = NULL;
    size_t fb, rowb, tb = 0, trowb;
    if (n < 0 || n_features < 1 || n_targets < 0 || (uint64_t)n > SIZE_MAX ||
        (uint64_t)n_features > SIZE_MAX || (uint64_t)n_targets > SIZE_MAX ||
        !nbd_mul((size_t)n_features, nb_dtype_size(dt), &rowb) || !nbd_mul((size_t)n, rowb, &fb) ||
        !nbd_mul((size_t)n_targets, nb_dtype_size(dt), &trowb) || !nbd_mul((size_t)n, trowb, &tb) ||
        (uint64_t)n > SIZE_MAX / sizeof(int64_t) || fb > (size_t)PTRDIFF_MAX ||
        tb > (size_t)PTRDIFF_MAX)
        return NB_ERR_ARG;
    nb_dataset *ds = nbd_alloc(mem, sizeof *ds);
    if (!ds)
        return NB_ERR_NOMEM;
    memset(ds, 0, sizeof *ds);
    ds->mem = mem;
    ds->n = n;
    ds->n_features = n_features;
    ds->dtype = dt;
    ds->label_type = lt;
    ds->n_targets = n_targets;
    if (n > 0) {
        ds->features = nbd_alloc(mem, fb);
        if (ds->features && n_targets > 0)
            ds->targets = nbd_alloc(mem, tb);
        else if (ds->features)
            ds->labels = nbd_alloc(mem, label_block_bytes(ds));
        if (!ds->labels && !ds->targets) {
            nb_dataset_free(ds);
            return NB_ERR_NOMEM;
        }
    }
    *out = ds;
    return NB_OK;
}

void nb_dataset_free(nb_dataset *ds)
{
    if (!ds)
        return;
    nbd_mem mem = ds->mem;
    nbd_free(mem, ds->features, feature_bytes(ds));
    nbd_free(mem, ds->labels, label_block_bytes(ds));
    nbd_free(mem, ds->targets, target_block_bytes(ds));
    nbd_free(mem, ds, sizeof *ds);
}

void nbd_set_label(nb_dataset *ds, int64_t i, int64_t v)
{
    if (ds->label_type == NB_LABEL_I64)
        ((int64_t *)ds->labels)[i] = v;
    else
        ((int32_t *)ds->labels)[i] = (int32_t)v;
}

nb_status nb_dataset_from(const nb_data_opts *opts, int64_t n, int64_t n_features,
                          const void *features, const int64_t *labels, nb_dataset **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    nb_status st = nbd_check_opts(opts);
    if (st != NB_OK)
        return st;
    nb_data_opts o = opts ? *opts : (nb_data_opts){0};
    int64_t max_label = -1;
    for (int64_t i = 0; labels && i < n; i++) {
        if (labels[i] < 0 || (o.n_classes > 0 && labels[i] >= o.n_classes) ||
            labels[i] >= INT32_MAX)
            return NB_ERR_ARG;
        if (labels[i] > max_label)
            max_label = labels[i];
    }
    nb_dataset *ds;
    st = nbd_dataset_alloc(nbd_mem_of(opts), o.dtype, o.label_type, n, n_features, 0, &ds);
    if (st != NB_OK)
        return st;
    ds->n_classes = o.n_classes > 0 ? o.n_classes : (max_label >= 0 ? max_label + 1 : 1);
    if (n > 0) {
        if (features)
            memcpy(ds->features, features, feature_bytes(ds));
        else
            memset(ds->features, 0, feature_bytes(ds));
        for (int64_t i = 0; i < n; i++)
            nbd_set_label(ds, i, labels ? labels[i] : 0);
    }
    *out = ds;
    return NB_OK;
}

/* True when @p v (n values of dtype @p dt) are all finite. */
static bool all_finite(nb_dtype dt, const void *v, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        if (!isfinite(dt == NB_F32 ? (double)((const float *)v)[k] : ((const double *)v)[k]))
            return false;
    return true;
}

nb_status nb_dataset_from_targets(const nb_data_opts *opts, int64_t n, int64_t n_features,
                                  const void *features, int64_t n_targets, const void *targets,
                                  nb_dataset **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    nb_status st = nbd_check_opts(opts);
    if (st != NB_OK)
        return st;
    if (n_targets < 1 || (opts && opts->n_classes != 0))
        return NB_ERR_ARG;
    nb_data_opts o = opts ? *opts : (nb_data_opts){0};
    nb_dataset *ds;
    st = nbd_dataset_alloc(nbd_mem_of(opts), o.dtype, o.label_type, n, n_features, n_targets, &ds);
    if (st != NB_OK)
        return st;
    if (targets && !all_finite(ds->dtype, targets, n * n_targets)) {
        nb_dataset_free(ds);
        return NB_ERR_ARG;
    }
    if (n > 0) {
        if (features)
            memcpy(ds->features, features, feature_bytes(ds));
        else
            memset(ds->features, 0, feature_bytes(ds));
        if (targets)
            memcpy(ds->targets, targets, target_block_bytes(ds));
        else
            memset(ds->targets, 0, target_block_bytes(ds));
    }
    *out = ds;
    return NB_OK;
}

/* ----------------------------------------------------------- accessors */

int64_t nb_dataset_count(const nb_dataset *ds)
{
    return ds ? ds->n : 0;
}

int64_t nb_dataset_features(const nb_dataset *ds)
{
    return ds ? ds->n_features : 0;
}

int64_t nb_dataset_classes(const nb_dataset *ds)
{
    return ds ? ds->n_classes : 0;
}

int64_t nb_dataset_targets(const nb_dataset *ds)
{
    return ds ? ds->n_targets : 0;
}

nb_dtype nb_dataset_dtype(const nb_dataset *ds)
{
    return ds ? ds->dtype : NB_F32;
}

nb_label_type nb_dataset_label_type(const nb_dataset *ds)
{
    return ds ? ds->label_type : NB_LABEL_I32;
}

void nb_dataset_image_shape(const nb_dataset *ds, int64_t *channels, int64_t *height,
                            int64_t *width)
{
    int64_t h = ds ? ds->height : 0, w = ds ? ds->width : 0;
    if (height)
        *height = h;
    if (width)
        *width = w;
    if (channels)
        *channels = (h > 0 && w > 0) ? ds->n_features / (h * w) : 0;
}

nb_status nb_dataset_set_image_shape(nb_dataset *ds, int64_t height, int64_t width)
{
    if (!ds)
        return NB_ERR_NULL;
    if (height == 0 && width == 0) {
        ds->height = ds->width = 0;
        return NB_OK;
    }
    if (height < 1 || width < 1 || height > ds->n_features || width > ds->n_features ||
        ds->n_features % (height * width) != 0)
        return NB_ERR_SHAPE;
    ds->height = height;
    ds->width = width;
    return NB_OK;
}

const void *nb_dataset_feature_data(const nb_dataset *ds)
{
    return ds ? ds->features : NULL;
}

const void *nb_dataset_label_data(const nb_dataset *ds)
{
    return ds ? ds->labels : NULL;
}

const void *nb_dataset_target_data(const nb_dataset *ds)
{
    return ds ? ds->targets : NULL;
}

double nb_dataset_get(const nb_dataset *ds, int64_t i, int64_t j)
{
    if (!ds || i < 0 || i >= ds->n || j < 0 || j >= ds->n_features)
        return NAN;
    int64_t k = i * ds->n_features + j;
    return ds->dtype == NB_F32 ? (double)((const float *)ds->features)[k]
                               : ((const double *)ds->features)[k];
}

double nb_dataset_target(const nb_dataset *ds, int64_t i, int64_t k)
{
    if (!ds || i < 0 || i >= ds->n || k < 0 || k >= ds->n_targets)
        return NAN;
    int64_t e = i * ds->n_targets + k;
    return ds->dtype == NB_F32 ? (double)((const float *)ds->targets)[e]
                               : ((const double *)ds->targets)[e];
}

int64_t nb_dataset_label(const nb_dataset *ds, int64_t i)
{
    if (!ds || i < 0 || i >= ds->n || !ds->labels)
        return -1;
    return ds->label_type == NB_LABEL_I64 ? ((const int64_t *)ds->labels)[i]
                                          : ((const int32_t *)ds->labels)[i];
}

/* --------------------------------------------------------------- splits */

/* A new data set of @p ds's kind holding the rows idx[0..n) (or the rows
 * start.. when idx is NULL). Indices must already be checked. */
static nb_status gather(const nb_dataset *ds, const int64_t *idx, int64_t start, int64_t n,
                        nb_dataset **out)
{
    nb_dataset *r;
    nb_status st =
        nbd_dataset_alloc(ds->mem, ds->dtype, ds->label_type, n, ds->n_features, ds->n_targets, &r);
    if (st != NB_OK)
        return st;
    r->n_classes = ds->n_classes;
    r->height = ds->height;
    r->width = ds->width;
    size_t rb = nbd_row_bytes(ds), lb = nbd_label_bytes(ds->label_type);
    size_t tb = nbd_target_row_bytes(ds);
    for (int64_t k = 0; k < n; k++) {
        int64_t i = idx ? idx[k] : start + k;
        memcpy((char *)r->features + (size_t)k * rb, (const char *)ds->features + (size_t)i * rb,
               rb);
        if (ds->n_targets > 0) /* the targets travel with their row */
            memcpy((char *)r->targets + (size_t)k * tb, (const char *)ds->targets + (size_t)i * tb,
                   tb);
        else
            memcpy((char *)r->labels + (size_t)k * lb, (const char *)ds->labels + (size_t)i * lb,
                   lb);
    }
    *out = r;
    return NB_OK;
}

nb_status nb_dataset_slice(const nb_dataset *ds, int64_t start, int64_t count, nb_dataset **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    if (!ds)
        return NB_ERR_NULL;
    if (start < 0 || count < 0 || start > ds->n || count > ds->n - start)
        return NB_ERR_ARG;
    return gather(ds, NULL, start, count, out);
}

nb_status nb_dataset_subset(const nb_dataset *ds, const int64_t *idx, int64_t n, nb_dataset **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    if (!ds || (!idx && n > 0))
        return NB_ERR_NULL;
    if (n < 0)
        return NB_ERR_ARG;
    for (int64_t k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= ds->n)
            return NB_ERR_ARG;
    return gather(ds, idx, 0, n, out);
}

nb_status nb_dataset_split(const nb_dataset *ds, nb_rng *rng, int64_t n_train, int64_t n_val,
                           nb_dataset **train, nb_dataset **val, nb_dataset **test)
{
    nb_dataset **outs[3] = {train, val, test};
    for (int k = 0; k < 3; k++)
        if (outs[k])
            *outs[k] = NULL;
    if (!ds)
        return NB_ERR_NULL;
    if (n_train < 0 || n_val < 0 || n_train > ds->n || n_val > ds->n - n_train)
        return NB_ERR_ARG;
    int64_t *perm = NULL;
    size_t perm_bytes = (size_t)ds->n * sizeof *perm;
    if (rng && ds->n > 0) {
        perm = nbd_alloc(ds->mem, perm_bytes);
        if (!perm)
            return NB_ERR_NOMEM;
        for (int64_t i = 0; i < ds->n; i++)
            perm[i] = i;
        for (int64_t i = ds->n - 1; i > 0; i--) {
            int64_t j = (int64_t)nb_rng_below(rng, (uint64_t)i + 1);
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    }
    int64_t starts[3] = {0, n_train, n_train + n_val};
    int64_t counts[3] = {n_train, n_val, ds->n - n_train - n_val};
    nb_dataset *made[3] = {NULL, NULL, NULL};
    nb_status st = NB_OK;
    for (int k = 0; k < 3 && st == NB_OK; k++)
        if (outs[k])
            st = gather(ds, perm ? perm + starts[k] : NULL, starts[k], counts[k], &made[k]);
    nbd_free(ds->mem, perm, perm_bytes);
    for (int k = 0; k < 3; k++) {
        if (st != NB_OK)
            nb_dataset_free(made[k]);
        else if (outs[k])
            *outs[k] = made[k];
    }
    return st;
}

/* -------------------------------------------------------- normalisation */

nb_status nb_dataset_scale(nb_dataset *ds, double max)
{
    if (!ds)
        return NB_ERR_NULL;
    if (!(max > 0) || !isfinite(max))
        return NB_ERR_ARG;
    int64_t total = ds->n * ds->n_features;
    if (ds->dtype == NB_F32) {
        float *x = ds->features;
        for (int64_t k = 0; k < total; k++)
            x[k] = (float)((double)x[k] / max);
    } else {
        double *x = ds->features;
        for (int64_t k = 0; k < total; k++)
            x[k] /= max;
    }
    return NB_OK;
}

nb_status nb_dataset_mean_std(const nb_dataset *ds, double *mean, double *std)
{
    if (!ds)
        return NB_ERR_NULL;
    if (ds->n == 0)
        return NB_ERR_ARG;
    int64_t F = ds->n_features;
    /* two passes per feature (mean, then squared deviations): exact enough
     * for any data set that fits in memory */
    for (int64_t j = 0; j < F; j++) {
        double s = 0;
        for (int64_t i = 0; i < ds->n; i++)
            s += nb_dataset_get(ds, i, j);
        double mu = s / (double)ds->n;
        double q = 0;
        for (int64_t i = 0; i < ds->n; i++) {
            double d = nb_dataset_get(ds, i, j) - mu;
            q += d * d;
        }
        if (mean)
            mean[j] = mu;
        if (std)
            std[j] = sqrt(q / (double)ds->n);
    }
    return NB_OK;
}

nb_status nb_dataset_standardize(nb_dataset *ds, const double *mean, const double *std)
{
    if (!ds || !mean || !std)
        return NB_ERR_NULL;
    int64_t F = ds->n_features;
    for (int64_t j = 0; j < F; j++)
        if (!isfinite(mean[j]) || !isfinite(std[j]) || std[j] < 0)
            return NB_ERR_ARG;
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t j = 0; j < F; j++) {
            double s = std[j] < 1e-12 ? 1.0 : std[j];
            int64_t k = i * F + j;
            if (ds->dtype == NB_F32) {
                float *x = ds->features;
                x[k] = (float)(((double)x[k] - mean[j]) / s);
            } else {
                double *x = ds->features;
                x[k] = (x[k] - mean[j]) / s;
            }
        }
    return NB_OK;
}
