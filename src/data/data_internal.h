/* Internal definitions shared by the data set sources (src/data). */
#ifndef NABLA_DATA_INTERNAL_H
#define NABLA_DATA_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include "nabla/data.h"

#if defined(__GNUC__)
#define NBD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NBD_PRINTF(a, b)
#endif

/* An allocation hook with its user data. */
typedef struct nbd_mem {
    nb_alloc_fn fn;
    void *ud;
} nbd_mem;

struct nb_dataset {
    nbd_mem mem;
    int64_t n;          /* samples */
    int64_t n_features; /* values per sample */
    int64_t n_classes;
    int64_t height, width; /* 0, 0: not images */
    nb_dtype dtype;
    nb_label_type label_type;
    int64_t n_targets; /* K float targets per sample; 0: labels */
    void *features;    /* n * n_features elements; NULL when n == 0 */
    void *labels;      /* n elements; NULL when n == 0 or n_targets > 0 */
    void *targets;     /* n * n_targets elements (of dtype); NULL when n == 0 or n_targets == 0 */
};

/* The hook of @p opts (malloc when NULL or unset). */
nbd_mem nbd_mem_of(const nb_data_opts *opts);
/* Allocate @p size bytes (> 0) / free a block of @p size bytes. */
void *nbd_alloc(nbd_mem m, size_t size);
void nbd_free(nbd_mem m, void *p, size_t size);
/* a * b into *out; false when it overflows size_t. */
bool nbd_mul(size_t a, size_t b, size_t *out);

/* Check dtype and label type of @p opts (NULL: defaults). */
nb_status nbd_check_opts(const nb_data_opts *opts);
/* A data set with @p n samples of @p n_features values and either a label
 * (@p n_targets 0) or @p n_targets float targets each, data uninitialised,
 * n_classes and image shape 0. NB_ERR_ARG on bad sizes or size overflow,
 * NB_ERR_NOMEM. */
nb_status nbd_dataset_alloc(nbd_mem mem, nb_dtype dt, nb_label_type lt, int64_t n,
                            int64_t n_features, int64_t n_targets, nb_dataset **out);
/* Store label @p v of sample @p i / feature value. */
void nbd_set_label(nb_dataset *ds, int64_t i, int64_t v);
/* Bytes of one sample's features, of its targets, of one label. */
size_t nbd_row_bytes(const nb_dataset *ds);
size_t nbd_target_row_bytes(const nb_dataset *ds);
size_t nbd_label_bytes(nb_label_type lt);

/* Fill @p err (may be NULL; where is left to nbd_placed) and return @p st. */
nb_status nbd_fail(nb_error *err, nb_status st, int64_t line, int64_t column, int64_t offset,
                   const char *fmt, ...) NBD_PRINTF(6, 7);
/* Put "path: " in front of err->msg (cut to fit). */
void nbd_prefix(nb_error *err, const char *path);
/* The result @p st of the public function @p where: a failure is placed
 * there (err->where). Returns st. */
nb_status nbd_placed(nb_error *err, nb_status st, const char *where);

/* Read the whole file at @p path through @p mem into *buf (*len bytes;
 * *buf NULL when the file is empty), by nbio_read_all (src/io/file.h): a
 * path that is not a regular file is refused. NB_ERR_IO / NB_ERR_NOMEM
 * into err. */
nb_status nbd_read_file(nbd_mem mem, const char *path, void **buf, size_t *len, nb_error *err);

/* True when @p buf starts with the gzip magic 1f 8b. */
bool nbd_is_gzip(const void *buf, size_t len);
/* Decompress the whole gzip stream @p buf into a new block *out of *out_len
 * bytes (*out_cap bytes allocated, to pass to nbd_free), refusing output
 * larger than @p max_out. @p what names the input in messages.
 * NB_ERR_PARSE (corrupt, truncated, too large) / NB_ERR_NOMEM into err. */
nb_status nbd_gunzip(nbd_mem mem, const void *buf, size_t len, size_t max_out, const char *what,
                     void **out, size_t *out_len, size_t *out_cap, nb_error *err);

/* Rows of the built-in digits data set (src/data/digits_data.c): 64 pixel
 * characters '0'..'9','A'..'G' (values 0..16) and the label '0'..'9'. */
#define NBD_DIGITS_ROWS 1797
extern const char nbd_digits_rows[NBD_DIGITS_ROWS][66];

#endif
