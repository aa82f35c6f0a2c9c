/* Parameter initialisation: constant, small random, Xavier, He, LeCun. */

#include "nn_internal.h"

#include <math.h>

static const char *const init_names[] = {
    [NB_INIT_AUTO] = "auto",
    [NB_INIT_ZEROS] = "zeros",
    [NB_INIT_CONSTANT] = "constant",
    [NB_INIT_SMALL_NORMAL] = "small-normal",
    [NB_INIT_XAVIER_UNIFORM] = "xavier-uniform",
    [NB_INIT_XAVIER_NORMAL] = "xavier-normal",
    [NB_INIT_HE_UNIFORM] = "he-uniform",
    [NB_INIT_HE_NORMAL] = "he-normal",
    [NB_INIT_LECUN_UNIFORM] = "lecun-uniform",
    [NB_INIT_LECUN_NORMAL] = "lecun-normal",
};
_Static_assert(sizeof init_names / sizeof init_names[0] == NB_INIT_COUNT,
               "one name per initialisation");

const char *nb_init_name(nb_init kind)
{
    return (int)kind >= 0 && kind < NB_INIT_COUNT ? init_names[kind] : "?";
}

nb_status nb_init_from_name(const char *name, nb_init *out)
{
    if (!name || !out)
        return NB_ERR_NULL;
    for (int k = 0; k < NB_INIT_COUNT; k++) {
        const char *a = name, *b = init_names[k];
        for (;; a++, b++) {
            int ca = *a == '_' ? '-' : (*a >= 'A' && *a <= 'Z' ? *a - 'A' + 'a' : *a);
            if (ca != *b)
                break;
            if (!ca) {
                *out = (nb_init)k;
                return NB_OK;
            }
        }
    }
    return NB_ERR_NOTFOUND;
}

nb_status nb_init_tensor_fans(nb_tensor *t, nb_init kind, double scale, int64_t fan_in,
                              int64_t fan_out, nb_rng *rng)
{
    if (!t)
        return NB_ERR_NULL;
    bool uniform = false;
    double spread = 0; /* bound of U(-a, a) or σ of N(0, σ²) */
    switch (kind) {
    case NB_INIT_ZEROS: nbc_fill(t, 0); return NB_OK;
    case NB_INIT_CONSTANT: nbc_fill(t, scale); return NB_OK;
    case NB_INIT_SMALL_NORMAL: spread = scale != 0 ? scale : 0.01; break;
    case NB_INIT_XAVIER_UNIFORM:
    case NB_INIT_XAVIER_NORMAL:
        if (fan_in < 1 || fan_out < 1)
            return NB_ERR_ARG;
        uniform = kind == NB_INIT_XAVIER_UNIFORM;
        spread = sqrt((uniform ? 6.0 : 2.0) / ((double)fan_in + (double)fan_out));
        break;
    case NB_INIT_HE_UNIFORM:
    case NB_INIT_HE_NORMAL:
        if (fan_in < 1)
            return NB_ERR_ARG;
        uniform = kind == NB_INIT_HE_UNIFORM;
        spread = sqrt((uniform ? 6.0 : 2.0) / (double)fan_in);
        break;
    case NB_INIT_LECUN_UNIFORM:
    case NB_INIT_LECUN_NORMAL:
        if (fan_in < 1)
            return NB_ERR_ARG;
        uniform = kind == NB_INIT_LECUN_UNIFORM;
        spread = sqrt((uniform ? 3.0 : 1.0) / (double)fan_in);
        break;
    default: return NB_ERR_ARG;
    }
    if (!rng)
        return NB_ERR_NULL;
    for (int64_t i = 0; i < t->size; i++) {
        double v = uniform ? spread * (2 * nb_rng_uniform(rng) - 1) : spread * nb_rng_normal(rng);
        nb_tensor_set(t, i, v);
    }
    return NB_OK;
}

nb_status nb_init_tensor(nb_tensor *t, nb_init kind, double scale, nb_rng *rng)
{
    if (!t)
        return NB_ERR_NULL;
    int64_t fan_in = t->size, fan_out = t->size;
    if (t->rank >= 2) {
        fan_out = t->shape[t->rank - 1];
        fan_in = fan_out > 0 ? t->size / fan_out : 0;
    }
    return nb_init_tensor_fans(t, kind, scale, fan_in, fan_out, rng);
}
