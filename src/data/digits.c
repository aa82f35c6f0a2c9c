/* The built-in digits data set, decoded from src/data/digits_data.c. */

#include "data_internal.h"

/* Value of a pixel character "0123456789ABCDEFG"[v]. */
static int pixel_value(char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

nb_status nb_dataset_digits(const nb_data_opts *opts, nb_dataset **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    nb_status st = nbd_check_opts(opts);
    if (st != NB_OK)
        return st;
    nb_data_opts o = opts ? *opts : (nb_data_opts){0};
    if (o.n_classes != 0 && o.n_classes != 10)
        return NB_ERR_ARG;
    nb_dataset *ds;
    st = nbd_dataset_alloc(nbd_mem_of(opts), o.dtype, o.label_type, NBD_DIGITS_ROWS, 64, 0, &ds);
    if (st != NB_OK)
        return st;
    ds->n_classes = 10;
    ds->height = 8;
    ds->width = 8;
    for (int64_t i = 0; i < NBD_DIGITS_ROWS; i++) {
        const char *row = nbd_digits_rows[i];
        for (int j = 0; j < 64; j++) {
            int v = pixel_value(row[j]);
            if (o.dtype == NB_F32)
                ((float *)ds->features)[i * 64 + j] = (float)v;
            else
                ((double *)ds->features)[i * 64 + j] = v;
        }
        nbd_set_label(ds, i, row[64] - '0');
    }
    *out = ds;
    return NB_OK;
}
