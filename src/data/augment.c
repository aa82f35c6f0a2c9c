/* Image augmentation of a batch: flips, shifts, crops with padding and
 * Gaussian noise, in place on the loader's copy of the samples. Images are
 * channels x height x width, channel-major, one per sample. */

#include <math.h>

#include "../core/internal.h" /* nbc_error */
#include "data_internal.h"

static double load(const void *x, nb_dtype dt, int64_t k)
{
    return dt == NB_F32 ? (double)((const float *)x)[k] : ((const double *)x)[k];
}

static void store(void *x, nb_dtype dt, int64_t k, double v)
{
    if (dt == NB_F32)
        ((float *)x)[k] = (float)v;
    else
        ((double *)x)[k] = v;
}

/* NB_OK when @p b holds images. */
static nb_status check_images(const nb_batch *b)
{
    if (!b)
        return NB_ERR_NULL;
    if (b->size > 0 && !b->features)
        return NB_ERR_NULL;
    if (b->height < 1 || b->width < 1 || b->channels < 1 ||
        b->channels * b->height * b->width != b->n_features)
        return NB_ERR_SHAPE;
    if (b->dtype != NB_F32 && b->dtype != NB_F64)
        return NB_ERR_DTYPE;
    return NB_OK;
}

/* Flip image @p i of @p b left-right. */
static void flip_one(nb_batch *b, int64_t i)
{
    int64_t H = b->height, W = b->width;
    for (int64_t c = 0; c < b->channels; c++)
        for (int64_t y = 0; y < H; y++) {
            int64_t row = i * b->n_features + (c * H + y) * W;
            for (int64_t x = 0; x < W / 2; x++) {
                double l = load(b->features, b->dtype, row + x);
                double r = load(b->features, b->dtype, row + W - 1 - x);
                store(b->features, b->dtype, row + x, r);
                store(b->features, b->dtype, row + W - 1 - x, l);
            }
        }
}

/* out(y,x) = in(y-dy, x-dx) for image @p i, in place: rows and columns are
 * visited so that every source is read before it is overwritten. */
static void shift_one(nb_batch *b, int64_t i, int64_t dy, int64_t dx, double fill)
{
    int64_t H = b->height, W = b->width;
    for (int64_t c = 0; c < b->channels; c++) {
        int64_t base = i * b->n_features + c * H * W;
        for (int64_t ky = 0; ky < H; ky++) {
            int64_t y = dy > 0 ? H - 1 - ky : ky;
            for (int64_t kx = 0; kx < W; kx++) {
                int64_t x = dx > 0 ? W - 1 - kx : kx;
                int64_t sy = y - dy, sx = x - dx;
                double v = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                               ? load(b->features, b->dtype, base + sy * W + sx)
                               : fill;
                store(b->features, b->dtype, base + y * W + x, v);
            }
        }
    }
}

nb_status nb_batch_flip(nb_batch *b, nb_rng *rng, double p)
{
    nb_status st = check_images(b);
    if (st != NB_OK)
        return st;
    if (!(p >= 0 && p <= 1))
        return NB_ERR_ARG;
    if (p < 1 && !rng)
        return NB_ERR_NULL;
    for (int64_t i = 0; i < b->size; i++)
        if (p >= 1 || nb_rng_uniform(rng) < p)
            flip_one(b, i);
    return NB_OK;
}

nb_status nb_batch_shift(nb_batch *b, int64_t dy, int64_t dx, double fill)
{
    nb_status st = check_images(b);
    if (st != NB_OK)
        return st;
    /* a shift by the whole image or more leaves only fill */
    if (dy > b->height)
        dy = b->height;
    if (dy < -b->height)
        dy = -b->height;
    if (dx > b->width)
        dx = b->width;
    if (dx < -b->width)
        dx = -b->width;
    for (int64_t i = 0; i < b->size; i++)
        shift_one(b, i, dy, dx, fill);
    return NB_OK;
}

nb_status nb_batch_random_shift(nb_batch *b, nb_rng *rng, int s, double fill)
{
    nb_status st = check_images(b);
    if (st != NB_OK)
        return st;
    if (!rng)
        return NB_ERR_NULL;
    if (s < 0)
        return NB_ERR_ARG;
    for (int64_t i = 0; i < b->size; i++) {
        int64_t dy = (int64_t)nb_rng_below(rng, 2 * (uint64_t)s + 1) - s;
        int64_t dx = (int64_t)nb_rng_below(rng, 2 * (uint64_t)s + 1) - s;
        shift_one(b, i, dy, dx, fill);
    }
    return NB_OK;
}

nb_status nb_batch_random_crop(nb_batch *b, nb_rng *rng, int pad, double fill)
{
    nb_status st = check_images(b);
    if (st != NB_OK)
        return st;
    if (!rng)
        return NB_ERR_NULL;
    if (pad < 0)
        return NB_ERR_ARG;
    for (int64_t i = 0; i < b->size; i++) {
        /* window corner in the padded image; the pixel at (y, x) of the
         * crop is padded(y + oy, x + ox) = in(y + oy - pad, x + ox - pad) */
        int64_t oy = (int64_t)nb_rng_below(rng, 2 * (uint64_t)pad + 1);
        int64_t ox = (int64_t)nb_rng_below(rng, 2 * (uint64_t)pad + 1);
        shift_one(b, i, pad - oy, pad - ox, fill);
    }
    return NB_OK;
}

nb_status nb_batch_noise(nb_batch *b, nb_rng *rng, double std)
{
    if (!b || !rng || (b->size > 0 && !b->features))
        return NB_ERR_NULL;
    if (!(std >= 0) || !isfinite(std))
        return NB_ERR_ARG;
    int64_t total = b->size * b->n_features;
    for (int64_t k = 0; k < total; k++)
        store(b->features, b->dtype, k, load(b->features, b->dtype, k) + std * nb_rng_normal(rng));
    return NB_OK;
}

nb_tensor *nb_batch_tensor(nb_graph *g, nb_batch *b)
{
    if (!g)
        return NULL;
    if (!b) {
        nb_tensor_from(g, NB_F32, 0, NULL, NULL); /* records NB_ERR_NULL */
        return NULL;
    }
    int64_t shape[2] = {b->size, b->n_features};
    b->x = nb_tensor_from(g, b->dtype, 2, shape, b->features);
    return b->x;
}

nb_tensor *nb_batch_target_tensor(nb_graph *g, nb_batch *b)
{
    if (!g)
        return NULL;
    if (!b) {
        nbc_error(g, NB_ERR_NULL, "batch_target_tensor", "no batch");
        return NULL;
    }
    if (!b->targets || b->n_targets < 1) {
        nbc_error(g, NB_ERR_ARG, "batch_target_tensor",
                  "the batch of %lld samples has class labels, not float targets",
                  (long long)b->size);
        return NULL;
    }
    int64_t shape[2] = {b->size, b->n_targets};
    b->y = nb_tensor_from(g, b->dtype, 2, shape, b->targets);
    return b->y;
}
