/* Mini-batches over a data set: an order per epoch (shuffled from an
 * explicit rng or not), a batch copy (features with labels or targets)
 * allocated once, optional augmentation, and the [B, F] (and [B, K])
 * tensors made in the caller's graph. */

#include <math.h>
#include <string.h>

#include "data_internal.h"

struct nb_loader {
    const nb_dataset *ds;
    nbd_mem mem;
    int64_t batch_size; /* as asked */
    int64_t cap;        /* rows the batch copy holds: min(batch_size, n), at least 1 */
    bool shuffle, drop_last;
    int64_t *order; /* n row numbers: this epoch's order */
    int64_t pos;    /* next position in order */
    void *features; /* batch_size * n_features */
    int64_t *labels;
    void *targets; /* cap * n_targets, of a data set with targets */
    bool augment_on;
    nb_augment aug;
    nb_rng *aug_rng;
    int shard_rank, shard_size; /* this rank's share of each global batch (0 of 1: all) */
};

/* Byte sizes of the loader's blocks. */
static size_t order_bytes(const nb_loader *ld)
{
    return (size_t)ld->ds->n * sizeof(int64_t);
}

static size_t batch_bytes(const nb_loader *ld)
{
    return (size_t)ld->cap * nbd_row_bytes(ld->ds);
}

static size_t label_bytes(const nb_loader *ld)
{
    return (size_t)ld->cap * sizeof(int64_t);
}

static size_t target_bytes(const nb_loader *ld)
{
    return (size_t)ld->cap * nbd_target_row_bytes(ld->ds);
}

void nb_loader_free(nb_loader *ld)
{
    if (!ld)
        return;
    nbd_free(ld->mem, ld->order, order_bytes(ld));
    nbd_free(ld->mem, ld->features, batch_bytes(ld));
    nbd_free(ld->mem, ld->labels, label_bytes(ld));
    nbd_free(ld->mem, ld->targets, target_bytes(ld));
    nbd_free(ld->mem, ld, sizeof *ld);
}

nb_status nb_loader_new(const nb_dataset *ds, int64_t batch_size, bool shuffle, bool drop_last,
                        nb_loader **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    if (!ds)
        return NB_ERR_NULL;
    if (batch_size < 1)
        return NB_ERR_ARG;
    /* a batch is never larger than the data set */
    int64_t bs = batch_size < ds->n ? batch_size : (ds->n > 0 ? ds->n : 1);
    size_t bb, tb;
    if (!nbd_mul((size_t)bs, nbd_row_bytes(ds), &bb) ||
        !nbd_mul((size_t)bs, nbd_target_row_bytes(ds), &tb))
        return NB_ERR_ARG;
    nb_loader *ld = nbd_alloc(ds->mem, sizeof *ld);
    if (!ld)
        return NB_ERR_NOMEM;
    memset(ld, 0, sizeof *ld);
    ld->ds = ds;
    ld->mem = ds->mem;
    ld->batch_size = batch_size;
    ld->cap = bs;
    ld->shuffle = shuffle;
    ld->drop_last = drop_last;
    ld->shard_size = 1;
    bool ok = (ld->features = nbd_alloc(ld->mem, batch_bytes(ld))) != NULL &&
              (ld->labels = nbd_alloc(ld->mem, label_bytes(ld))) != NULL &&
              (ds->n_targets == 0 || (ld->targets = nbd_alloc(ld->mem, tb)) != NULL) &&
              (ds->n == 0 || (ld->order = nbd_alloc(ld->mem, order_bytes(ld))) != NULL);
    if (!ok) {
        nb_loader_free(ld);
        return NB_ERR_NOMEM;
    }
    for (int64_t i = 0; i < ds->n; i++)
        ld->order[i] = i;
    *out = ld;
    return NB_OK;
}

nb_status nb_loader_start(nb_loader *ld, nb_rng *rng)
{
    if (!ld)
        return NB_ERR_NULL;
    if (ld->shuffle && !rng)
        return NB_ERR_NULL;
    ld->pos = 0;
    int64_t n = ld->ds->n;
    for (int64_t i = 0; i < n; i++)
        ld->order[i] = i;
    if (ld->shuffle)
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)nb_rng_below(rng, (uint64_t)i + 1);
            int64_t t = ld->order[i];
            ld->order[i] = ld->order[j];
            ld->order[j] = t;
        }
    return NB_OK;
}

int64_t nb_loader_batches(const nb_loader *ld)
{
    if (!ld)
        return 0;
    int64_t n = ld->ds->n, b = ld->batch_size;
    return ld->drop_last ? n / b : (n + b - 1) / b;
}

const nb_dataset *nb_loader_dataset(const nb_loader *ld)
{
    return ld ? ld->ds : NULL;
}

int64_t nb_loader_batch_size(const nb_loader *ld)
{
    return ld ? ld->batch_size : 0;
}

nb_status nb_loader_set_shard(nb_loader *ld, int rank, int size)
{
    if (!ld)
        return NB_ERR_NULL;
    if (size < 1 || rank < 0 || rank >= size)
        return NB_ERR_ARG;
    ld->shard_rank = rank;
    ld->shard_size = size;
    return NB_OK;
}

void nb_loader_shard(const nb_loader *ld, int *rank, int *size)
{
    if (rank)
        *rank = ld ? ld->shard_rank : 0;
    if (size)
        *size = ld ? ld->shard_size : 1;
}

nb_status nb_loader_set_augment(nb_loader *ld, const nb_augment *aug, nb_rng *rng)
{
    if (!ld)
        return NB_ERR_NULL;
    if (!aug) {
        ld->augment_on = false;
        return NB_OK;
    }
    if (!rng)
        return NB_ERR_NULL;
    if (!(aug->flip_prob >= 0 && aug->flip_prob <= 1) || aug->max_shift < 0 || aug->crop_pad < 0 ||
        !(aug->noise_std >= 0) || !isfinite(aug->noise_std) || !isfinite(aug->fill))
        return NB_ERR_ARG;
    bool spatial = aug->flip_prob > 0 || aug->max_shift > 0 || aug->crop_pad > 0;
    if (spatial && (ld->ds->height < 1 || ld->ds->width < 1))
        return NB_ERR_SHAPE;
    ld->aug = *aug;
    ld->aug_rng = rng;
    ld->augment_on = true;
    return NB_OK;
}

bool nb_loader_next(nb_graph *g, nb_loader *ld, nb_batch *b)
{
    if (!ld || !b)
        return false;
    const nb_dataset *ds = ld->ds;
    int64_t left = ds->n - ld->pos;
    int64_t global = left < ld->cap ? left : ld->cap;
    memset(b, 0, sizeof *b);
    if (global <= 0 || (ld->drop_last && global < ld->batch_size))
        return false;
    /* this rank's rows of the global batch: [G·r/P, G·(r+1)/P) */
    int64_t lo = global * ld->shard_rank / ld->shard_size;
    int64_t B = global * (ld->shard_rank + 1) / ld->shard_size - lo;
    size_t rb = nbd_row_bytes(ds), tb = nbd_target_row_bytes(ds);
    const int64_t *idx = ld->order + ld->pos + lo;
    for (int64_t k = 0; k < B; k++) {
        memcpy((char *)ld->features + (size_t)k * rb,
               (const char *)ds->features + (size_t)idx[k] * rb, rb);
        if (ds->n_targets > 0)
            memcpy((char *)ld->targets + (size_t)k * tb,
                   (const char *)ds->targets + (size_t)idx[k] * tb, tb);
        else
            ld->labels[k] = nb_dataset_label(ds, idx[k]);
    }
    ld->pos += global;
    b->size = B;
    b->global_size = global;
    b->n_features = ds->n_features;
    nb_dataset_image_shape(ds, &b->channels, &b->height, &b->width);
    b->dtype = ds->dtype;
    b->features = ld->features;
    b->labels = ds->n_targets > 0 ? NULL : ld->labels;
    b->indices = idx;
    b->n_targets = ds->n_targets;
    b->targets = ds->n_targets > 0 ? ld->targets : NULL;
    if (ld->augment_on && B > 0) {
        const nb_augment *a = &ld->aug;
        if (a->crop_pad > 0)
            nb_batch_random_crop(b, ld->aug_rng, a->crop_pad, a->fill);
        if (a->max_shift > 0)
            nb_batch_random_shift(b, ld->aug_rng, a->max_shift, a->fill);
        if (a->flip_prob > 0)
            nb_batch_flip(b, ld->aug_rng, a->flip_prob);
        if (a->noise_std > 0)
            nb_batch_noise(b, ld->aug_rng, a->noise_std);
    }
    if (g && B > 0 && nb_batch_tensor(g, b) && b->targets)
        nb_batch_target_tensor(g, b);
    return true;
}
