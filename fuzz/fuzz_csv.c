/* libFuzzer target for CSV tables (src/data/csv.c, and src/data/gzip.c for
 * compressed ones): the input is the file, loaded with four sets of
 * options (the last declares 2x2 images). Unless it already is gzip, it is
 * also compressed here and loaded again with the defaults, which must give
 * the same result (the same data set, or the same error at the same line,
 * column and offset). An allocation failure at any point gives
 * NB_ERR_NOMEM and leaks nothing. */

#include "fuzz_common.h"

static const nb_csv_opts option_sets[] = {
    {0},
    {.data = {.dtype = NB_F64, .label_type = NB_LABEL_I64},
     .header = NB_CSV_HEADER_PRESENT,
     .label_column = -1,
     .allow_nonfinite = true},
    {.data = {.n_classes = 10},
     .delimiter = ';',
     .header = NB_CSV_HEADER_NONE,
     .label_column = 1,
     .max_field = 16},
    {.delimiter = '\t', .label_column = -2, .image_height = 2, .image_width = 2},
};

typedef struct input {
    const uint8_t *data;
    size_t size;
} input;

/* The table loaded with default options through @p a, then freed. */
static nb_status load_hooked(void *ctx, fz_alloc *a)
{
    const input *in = ctx;
    nb_csv_opts o = {.data = {.alloc = fz_alloc_fn, .alloc_ud = a}};
    nb_dataset *ds = NULL;
    nb_error err;
    nb_status st = nb_dataset_load_csv_mem(in->data, in->size, &o, &ds, &err);
    fz_check_data_error(st, &err, 0);
    FZ_CHECK((st == NB_OK) == (ds != NULL));
    nb_dataset_free(ds);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool plain = !fz_is_gzip(data, size);
    nb_dataset *first = NULL;
    nb_error first_err;
    for (size_t i = 0; i < sizeof option_sets / sizeof *option_sets; i++) {
        nb_dataset *ds = NULL;
        nb_error err;
        nb_status st = nb_dataset_load_csv_mem(data, size, &option_sets[i], &ds, &err);
        fz_check_data_error(st, &err, plain ? size : 0);
        FZ_CHECK((st == NB_OK) == (ds != NULL));
        if (ds)
            fz_walk_dataset(ds);
        if (i == 0) {
            first = ds;
            first_err = err;
        } else {
            nb_dataset_free(ds);
        }
    }
    if (plain) {
        size_t gz_len;
        unsigned char *gz = fz_gzip(data, size, &gz_len);
        if (gz) {
            nb_dataset *ds = NULL;
            nb_error err;
            nb_status st = nb_dataset_load_csv_mem(gz, gz_len, NULL, &ds, &err);
            fz_check_data_error(st, &err, 0);
            FZ_CHECK(st == first_err.status);
            if (st == NB_OK)
                FZ_CHECK(fz_same_dataset(first, ds));
            else
                FZ_CHECK(err.line == first_err.line && err.column == first_err.column &&
                         err.offset == first_err.offset);
            nb_dataset_free(ds);
            free(gz);
        }
    }
    nb_dataset_free(first);
    input in = {data, size};
    fz_check_oom(load_hooked, &in, data, size);
    return 0;
}
