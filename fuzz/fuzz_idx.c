/* libFuzzer target for IDX files, plain and gzip (src/data/idx.c,
 * src/data/gzip.c). An input is a pair of files: a 4-byte little-endian
 * length n, then n bytes of the images file (fewer when the input ends
 * first), then the labels file (fuzz/make_corpus.c writes the seeds). The
 * pair is loaded with two sets of options; unless a file already is gzip,
 * the pair is also compressed here and loaded again, which must give the
 * same result (the same data set, or the same error at the same offset).
 * An allocation failure at any point gives NB_ERR_NOMEM and leaks nothing. */

#include "fuzz_common.h"

static nb_status load(const uint8_t *img, size_t img_len, const uint8_t *lab, size_t lab_len,
                      const nb_data_opts *o, bool plain, nb_dataset **ds, nb_error *err)
{
    nb_status st = nb_dataset_load_idx_mem(img, img_len, lab, lab_len, o, ds, err);
    fz_check_data_error(st, err, 0);
    /* a plain file's error points inside it (the larger of the two) */
    if (st != NB_OK && plain)
        FZ_CHECK(err->offset <= (int64_t)(img_len > lab_len ? img_len : lab_len));
    FZ_CHECK((st == NB_OK) == (*ds != NULL));
    if (*ds)
        fz_walk_dataset(*ds);
    return st;
}

typedef struct pair {
    const uint8_t *img, *lab;
    size_t img_len, lab_len;
} pair;

/* The pair loaded with default options through @p a, then freed. */
static nb_status load_hooked(void *ctx, fz_alloc *a)
{
    const pair *p = ctx;
    nb_data_opts o = {.alloc = fz_alloc_fn, .alloc_ud = a};
    nb_dataset *ds = NULL;
    nb_error err;
    nb_status st = nb_dataset_load_idx_mem(p->img, p->img_len, p->lab, p->lab_len, &o, &ds, &err);
    fz_check_data_error(st, &err, 0);
    FZ_CHECK((st == NB_OK) == (ds != NULL));
    nb_dataset_free(ds);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t n =
        (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
    const uint8_t *img = data + 4, *lab;
    size_t rest = size - 4;
    size_t img_len = n < rest ? n : rest, lab_len = rest - img_len;
    lab = img + img_len;
    bool plain = !fz_is_gzip(img, img_len) && !fz_is_gzip(lab, lab_len);

    nb_error err, err_wide, err_gz;
    nb_dataset *ds = NULL, *wide = NULL, *gz = NULL;
    nb_status st = load(img, img_len, lab, lab_len, NULL, plain, &ds, &err);

    nb_data_opts o = {.dtype = NB_F64, .label_type = NB_LABEL_I64, .n_classes = 10};
    nb_status st2 = load(img, img_len, lab, lab_len, &o, plain, &wide, &err_wide);
    if (st2 == NB_OK)
        FZ_CHECK(st == NB_OK && nb_dataset_classes(wide) == 10);

    if (plain) {
        size_t zi_len, zl_len;
        unsigned char *zi = fz_gzip(img, img_len, &zi_len), *zl = fz_gzip(lab, lab_len, &zl_len);
        if (zi && zl) {
            nb_status st3 = load(zi, zi_len, zl, zl_len, NULL, false, &gz, &err_gz);
            FZ_CHECK(st3 == st);
            if (st == NB_OK)
                FZ_CHECK(fz_same_dataset(ds, gz));
            else
                FZ_CHECK(err_gz.offset == err.offset);
        }
        free(zi);
        free(zl);
    }
    pair p = {img, lab, img_len, lab_len};
    fz_check_oom(load_hooked, &p, data, size);
    nb_dataset_free(ds);
    nb_dataset_free(wide);
    nb_dataset_free(gz);
    return 0;
}
