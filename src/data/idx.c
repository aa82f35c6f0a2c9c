/* IDX loader (the MNIST file format): a big-endian header - two zero
 * bytes, an element type, the number of dimensions, one 32-bit size per
 * dimension - then the elements. Only unsigned bytes (type 0x08), which is
 * what MNIST and Fashion-MNIST use. */

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "data_internal.h"

/* Largest element count accepted for one file (2^34 bytes = 16 GiB). */
#define IDX_MAX_ELEMS ((uint64_t)1 << 34)

typedef struct idx_file {
    const unsigned char *data; /* the elements */
    int ndim;
    uint32_t dims[3];
    uint64_t count; /* product of dims */
} idx_file;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *type_name(unsigned t)
{
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return "unknown";
}

/* Check the header of @p what (@p len bytes at @p p): element type 0x08,
 * a number of dimensions in [min_dim, max_dim], sizes >= 1, and exactly
 * the announced number of element bytes after the header. */
static nb_status parse_idx(const unsigned char *p, size_t len, const char *what, int min_dim,
                           int max_dim, idx_file *f, nb_error *err)
{
    if (len < 4)
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)len,
                        "%s: %zu bytes: too short for an IDX header (4-byte magic)", what, len);
    if (p[0] != 0 || p[1] != 0)
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, 0,
                        "%s: bad magic %02x %02x %02x %02x at byte 0: an IDX file starts with "
                        "00 00",
                        what, p[0], p[1], p[2], p[3]);
    if (p[2] != 0x08)
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, 2,
                        "%s: element type 0x%02x (%s) at byte 2: only 0x08 (unsigned byte) is "
                        "supported",
                        what, p[2], type_name(p[2]));
    int ndim = p[3];
    if (ndim < min_dim || ndim > max_dim) {
        if (min_dim == max_dim)
            return nbd_fail(err, NB_ERR_PARSE, 0, 0, 3,
                            "%s: %d dimensions at byte 3 (magic 00 00 08 %02x): expected %d", what,
                            ndim, ndim, min_dim);
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, 3,
                        "%s: %d dimensions at byte 3 (magic 00 00 08 %02x): expected %d to %d",
                        what, ndim, ndim, min_dim, max_dim);
    }
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < hdr)
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)len,
                        "%s: truncated header: %zu bytes, the %d dimension sizes need %zu", what,
                        len, ndim, hdr);
    uint64_t count = 1;
    for (int d = 0; d < ndim; d++) {
        uint32_t n = be32(p + 4 + 4 * d);
        if (n == 0)
            return nbd_fail(err, NB_ERR_PARSE, 0, 0, 4 + 4 * d,
                            "%s: dimension %d has size 0 (byte %d)", what, d, 4 + 4 * d);
        if (count > IDX_MAX_ELEMS / n) /* checked before multiplying: no overflow */
            return nbd_fail(err, NB_ERR_PARSE, 0, 0, 4 + 4 * d,
                            "%s: dimensions announce more than %llu elements (byte %d)", what,
                            (unsigned long long)IDX_MAX_ELEMS, 4 + 4 * d);
        count *= n;
        f->dims[d] = n;
    }
    size_t have = len - hdr;
    if (have < count)
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)len,
                        "%s: truncated: the header announces %llu data bytes, the file ends "
                        "after %zu (at byte %zu)",
                        what, (unsigned long long)count, have, len);
    if (have > count)
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)(hdr + count),
                        "%s: %zu unexpected bytes after the %llu data bytes the header "
                        "announces (from byte %llu)",
                        what, have - (size_t)count, (unsigned long long)count,
                        (unsigned long long)(hdr + count));
    f->data = p + hdr;
    f->ndim = ndim;
    f->count = count;
    return NB_OK;
}

/* Decompress @p buf when it is gzip; *plain, *plain_len point to the bytes
 * to parse (the input itself or a new block of *cap bytes to free). */
static nb_status maybe_gunzip(nbd_mem mem, const void *buf, size_t len, const char *what,
                              const void **plain, size_t *plain_len, void **block, size_t *cap,
                              nb_error *err)
{
    *block = NULL;
    *cap = 0;
    if (!nbd_is_gzip(buf, len)) {
        *plain = buf;
        *plain_len = len;
        return NB_OK;
    }
    size_t max_out = len > (SIZE_MAX - 4096) / 1100 ? SIZE_MAX : len * 1100 + 4096;
    if (max_out > IDX_MAX_ELEMS + 64)
        max_out = IDX_MAX_ELEMS + 64;
    size_t n;
    nb_status st = nbd_gunzip(mem, buf, len, max_out, what, block, &n, cap, err);
    *plain = *block;
    *plain_len = n;
    return st;
}

static nb_status load_idx_mem(const void *images, size_t images_len, const void *labels,
                              size_t labels_len, const nb_data_opts *opts, nb_dataset **out,
                              nb_error *err)
{
    nb_error_clear(err);
    if (!out)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "no place for the result (out is NULL)");
    *out = NULL;
    if ((!images && images_len) || (!labels && labels_len))
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "buffer is NULL");
    nb_status st = nbd_check_opts(opts);
    if (st != NB_OK)
        return nbd_fail(err, st, 0, 0, -1, "bad dtype, label type or number of classes");
    nb_data_opts o = opts ? *opts : (nb_data_opts){0};
    nbd_mem mem = nbd_mem_of(opts);

    const void *img = NULL, *lab = NULL;
    size_t img_len = 0, lab_len = 0, img_cap = 0, lab_cap = 0;
    void *img_block = NULL, *lab_block = NULL;
    nb_dataset *ds = NULL;
    idx_file fi = {0}, fl = {0};
    st = maybe_gunzip(mem, labels, labels_len, "labels", &lab, &lab_len, &lab_block, &lab_cap, err);
    if (st == NB_OK)
        st = parse_idx(lab, lab_len, "labels", 1, 1, &fl, err);
    if (st == NB_OK)
        st = maybe_gunzip(mem, images, images_len, "images", &img, &img_len, &img_block, &img_cap,
                          err);
    if (st == NB_OK)
        st = parse_idx(img, img_len, "images", 2, 3, &fi, err);
    if (st == NB_OK && fi.dims[0] != fl.dims[0])
        st = nbd_fail(err, NB_ERR_PARSE, 0, 0, 4,
                      "images and labels differ in count: %u images, %u labels", fi.dims[0],
                      fl.dims[0]);
    int64_t max_label = -1;
    if (st == NB_OK) {
        int64_t cap = o.n_classes > 0 ? o.n_classes : 256;
        for (uint32_t i = 0; i < fl.dims[0]; i++) {
            int64_t v = fl.data[i];
            if (v >= cap) {
                st = nbd_fail(err, NB_ERR_PARSE, 0, 0, 8 + (int64_t)i,
                              "labels: label %lld of sample %u (byte %lld) is not below the "
                              "number of classes %lld",
                              (long long)v, i, 8 + (long long)i, (long long)cap);
                break;
            }
            if (v > max_label)
                max_label = v;
        }
    }
    if (st == NB_OK) {
        int64_t n = fi.dims[0];
        int64_t F = (int64_t)(fi.count / fi.dims[0]);
        st = nbd_dataset_alloc(mem, o.dtype, o.label_type, n, F, 0, &ds);
        if (st != NB_OK)
            nbd_fail(err, st, 0, 0, -1, "out of memory for %lld images of %lld pixels",
                     (long long)n, (long long)F);
    }
    if (st == NB_OK) {
        ds->n_classes = o.n_classes > 0 ? o.n_classes : max_label + 1;
        if (fi.ndim == 3) {
            ds->height = fi.dims[1];
            ds->width = fi.dims[2];
        }
        if (ds->dtype == NB_F32) {
            float *x = ds->features;
            for (uint64_t k = 0; k < fi.count; k++)
                x[k] = fi.data[k];
        } else {
            double *x = ds->features;
            for (uint64_t k = 0; k < fi.count; k++)
                x[k] = fi.data[k];
        }
        for (int64_t i = 0; i < ds->n; i++)
            nbd_set_label(ds, i, fl.data[i]);
    }
    nbd_free(mem, img_block, img_cap);
    nbd_free(mem, lab_block, lab_cap);
    if (st != NB_OK)
        return st;
    *out = ds;
    return NB_OK;
}

nb_status nb_dataset_load_idx_mem(const void *images, size_t images_len, const void *labels,
                                  size_t labels_len, const nb_data_opts *opts, nb_dataset **out,
                                  nb_error *err)
{
    return nbd_placed(err, load_idx_mem(images, images_len, labels, labels_len, opts, out, err),
                      "nb_dataset_load_idx_mem");
}

static nb_status load_idx(const char *images_path, const char *labels_path,
                          const nb_data_opts *opts, nb_dataset **out, nb_error *err)
{
    nb_error_clear(err);
    if (!out)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "no place for the result (out is NULL)");
    *out = NULL;
    if (!images_path || !labels_path)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "path is NULL");
    nb_status st = nbd_check_opts(opts);
    if (st != NB_OK)
        return nbd_fail(err, st, 0, 0, -1, "bad dtype, label type or number of classes");
    nbd_mem mem = nbd_mem_of(opts);
    void *ib = NULL, *lb = NULL;
    size_t il = 0, ll = 0;
    st = nbd_read_file(mem, labels_path, &lb, &ll, err);
    if (st == NB_OK)
        st = nbd_read_file(mem, images_path, &ib, &il, err);
    if (st == NB_OK) {
        st = nb_dataset_load_idx_mem(ib, il, lb, ll, opts, out, err);
        if (st != NB_OK && err) {
            /* say which file the message is about */
            if (strncmp(err->msg, "labels:", 7) == 0)
                nbd_prefix(err, labels_path);
            else if (strncmp(err->msg, "images:", 7) == 0)
                nbd_prefix(err, images_path);
        }
    }
    nbd_free(mem, ib, il);
    nbd_free(mem, lb, ll);
    return st;
}

nb_status nb_dataset_load_idx(const char *images_path, const char *labels_path,
                              const nb_data_opts *opts, nb_dataset **out, nb_error *err)
{
    return nbd_placed(err, load_idx(images_path, labels_path, opts, out, err),
                      "nb_dataset_load_idx");
}

/* Path of @p name in @p dir with or without ".gz": the first that exists. */
static bool find_file(const char *dir, const char *name, char *path, size_t cap)
{
    const char *sfx[2] = {".gz", ""};
    for (int k = 0; k < 2; k++) {
        int n = snprintf(path, cap, "%s/%s%s", dir, name, sfx[k]);
        if (n < 0 || (size_t)n >= cap)
            return false;
        struct stat sb; /* not opened here: reading it says what is wrong with it */
        if (stat(path, &sb) == 0)
            return true;
    }
    return false;
}

static nb_status fashion_mnist(const char *dir, bool train, const nb_data_opts *opts,
                               nb_dataset **out, nb_error *err)
{
    nb_error_clear(err);
    if (!out)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "no place for the result (out is NULL)");
    *out = NULL;
    if (!dir)
        dir = NB_FASHION_MNIST_DIR;
    const char *stem = train ? "train" : "t10k";
    char img[4096], lab[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", stem);
    if (!find_file(dir, name, img, sizeof img))
        return nbd_fail(err, NB_ERR_IO, 0, 0, -1,
                        "%s/%s[.gz] not found (Debian package dataset-fashion-mnist)", dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", stem);
    if (!find_file(dir, name, lab, sizeof lab))
        return nbd_fail(err, NB_ERR_IO, 0, 0, -1,
                        "%s/%s[.gz] not found (Debian package dataset-fashion-mnist)", dir, name);
    nb_data_opts o = opts ? *opts : (nb_data_opts){0};
    if (o.n_classes == 0)
        o.n_classes = 10; /* the ten clothing classes, whatever the file holds */
    return nb_dataset_load_idx(img, lab, &o, out, err);
}

nb_status nb_dataset_fashion_mnist(const char *dir, bool train, const nb_data_opts *opts,
                                   nb_dataset **out, nb_error *err)
{
    return nbd_placed(err, fashion_mnist(dir, train, opts, out, err), "nb_dataset_fashion_mnist");
}
