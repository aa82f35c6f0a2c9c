/* Layer normalisation and embeddings, as PyTorch's nn.LayerNorm (over the
 * last axis) and nn.Embedding define them, composed of ops. */

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* --------------------------------------------------------- layer norm */

typedef struct layer_norm {
    int64_t n;
    double eps;
    nb_tensor *weight, *bias;
} layer_norm;

static nb_status layer_norm_init(nb_layer *l, nb_model *m, int64_t n, double eps, nb_dtype dt)
{
    if (n < 1 || n > INT32_MAX || !(eps > 0) || !isfinite(eps))
        return NB_ERR_ARG;
    static const char *const sfx[2] = {"weight", "bias"};
    nb_status st = nbn_names_free(l->name, m, sfx, 2);
    if (st != NB_OK)
        return st;
    layer_norm *ln = l->state;
    st = nb_layer_add_param(l, m, "weight", dt, 1, &n, &ln->weight);
    if (st == NB_OK)
        st = nb_layer_add_param(l, m, "bias", dt, 1, &n, &ln->bias);
    if (st != NB_OK)
        return st;
    nbc_fill(ln->weight, 1);
    ln->n = n;
    ln->eps = eps;
    return NB_OK;
}

nb_status nb_layer_norm_new(nb_model *m, const char *name, int64_t n_features, double eps,
                            const nb_layer_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    nb_layer_opts def = {0};
    if (!o)
        o = &def;
    if (o->dtype != NB_F32 && o->dtype != NB_F64)
        return NB_ERR_DTYPE;
    if (n_features < 1 || !(eps > 0) || !isfinite(eps))
        return NB_ERR_ARG;
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, &nbn_layer_norm_def, name, o->rng, &l);
    if (st == NB_OK)
        st = layer_norm_init(l, m, n_features, eps, o->dtype);
    return nbn_finish(l, st, out);
}

/* y = γ ⊙ (x − μ) / √(σ² + eps) + β, μ and σ² (biased) over the last axis */
static nb_tensor *layer_norm_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const layer_norm *ln = l->state;
    char sx[96];
    if (x->rank < 1 || x->shape[x->rank - 1] != ln->n) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s must end in %lld features",
                  nbc_shp(x, sx, sizeof sx), (long long)ln->n);
        return NULL;
    }
    if (x->dtype != ln->weight->dtype) {
        nbc_error(g, NB_ERR_DTYPE, l->name, "input is %s but the parameters are %s",
                  nb_dtype_name(x->dtype), nb_dtype_name(ln->weight->dtype));
        return NULL;
    }
    nb_tensor *d = nb_sub(g, x, nb_mean_axis(g, x, -1, true));
    nb_tensor *var = nb_mean_axis(g, nb_square(g, d), -1, true);
    nb_tensor *xhat = nb_div(g, d, nb_sqrt(g, nb_add_scalar(g, var, ln->eps)));
    return nb_add(g, nb_mul(g, xhat, ln->weight), ln->bias);
}

static int64_t layer_norm_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const layer_norm *)l->state)->n;
}

static nb_status layer_norm_describe(const nb_layer *l, char *out, size_t cap)
{
    const layer_norm *ln = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "features", "%lld", (long long)ln->n);
    return st == NB_OK ? nb_layer_setting_put(out, cap, "eps", "%.17g", ln->eps) : st;
}

static nb_status layer_norm_build(nb_layer *l, nb_model *m, const char *settings,
                                  const nb_layer_opts *o, nb_error *err)
{
    int64_t n;
    double eps;
    if (nb_layer_setting_get_i64(settings, "features", &n) != NB_OK ||
        nb_layer_setting_get_f64(settings, "eps", &eps) != NB_OK || n < 1 || !(eps > 0))
        return nbc_error_at(err, NB_ERR_ARG, "nb_layer_from_description", -1, l->name,
                            "layer '%s' (layer_norm): features= (>= 1) and eps= (> 0) are "
                            "required",
                            l->name);
    nb_status st = layer_norm_init(l, m, n, eps, o->dtype);
    return st == NB_OK ? NB_OK
                       : nbc_error_at(err, st, "nb_layer_from_description", -1, l->name,
                                      "layer '%s' (layer_norm): its parameters could not be "
                                      "added: %s",
                                      l->name, nb_status_str(st));
}

const nb_layer_def nbn_layer_norm_def = {
    .kind = "layer_norm",
    .state_size = sizeof(layer_norm),
    .forward = layer_norm_forward,
    .out_width = layer_norm_width,
    .describe = layer_norm_describe,
    .build = layer_norm_build,
};

/* ---------------------------------------------------------- embedding */

typedef struct embedding {
    int64_t num, dim;
    nb_tensor *weight;
} embedding;

static nb_status embedding_init(nb_layer *l, nb_model *m, int64_t num, int64_t dim,
                                const nb_layer_opts *o)
{
    if (num < 1 || dim < 1 || num > INT32_MAX || dim > INT32_MAX)
        return NB_ERR_ARG;
    nb_init init;
    nb_status init_st = nbn_pick_init(o, NB_INIT_SMALL_NORMAL, &init);
    if (init_st != NB_OK)
        return init_st;
    embedding *e = l->state;
    nb_status st = nb_layer_add_param(l, m, "weight", o->dtype, 2, (const int64_t[]){num, dim},
                                      &e->weight);
    if (st != NB_OK)
        return st;
    /* PyTorch's N(0, 1) by default: σ = 1 for the small-normal kind */
    double scale = o->init == NB_INIT_AUTO ? 1 : o->init_scale;
    st = nb_init_tensor_fans(e->weight, init, scale, num, dim, o->rng);
    e->num = num;
    e->dim = dim;
    return st;
}

nb_status nb_embedding_new(nb_model *m, const char *name, int64_t num, int64_t dim,
                           const nb_layer_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    nb_layer_opts def = {0};
    if (!o)
        o = &def;
    if (o->dtype != NB_F32 && o->dtype != NB_F64)
        return NB_ERR_DTYPE;
    if (num < 1 || dim < 1)
        return NB_ERR_ARG;
    static const char *const sfx[1] = {"weight"};
    nb_status free_st = nbn_names_free(name, m, sfx, 1);
    if (free_st != NB_OK)
        return free_st;
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, &nbn_embedding_def, name, o->rng, &l);
    if (st == NB_OK)
        st = embedding_init(l, m, num, dim, o);
    return nbn_finish(l, st, out);
}

/* Rows of the table for the indices x holds (whole numbers 0..num-1):
 * [..., dim] after x's shape. */
static nb_tensor *embedding_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const embedding *e = l->state;
    char sx[96];
    if (x->rank < 1 || x->rank > NB_MAX_RANK - 1) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s must hold indices of rank 1 to %d",
                  nbc_shp(x, sx, sizeof sx), NB_MAX_RANK - 1);
        return NULL;
    }
    int64_t *idx = nbc_alloc(g, (size_t)(x->size > 0 ? x->size : 1) * sizeof *idx, l->name);
    if (!idx)
        return NULL;
    for (int64_t i = 0; i < x->size; i++) {
        double v = nb_tensor_get(x, i);
        if (!(v >= 0 && v < (double)e->num && v == floor(v))) {
            nbc_error(g, NB_ERR_ARG, l->name,
                      "input entry %lld is %g, not an index from 0 to %lld (the table's rows)",
                      (long long)i, v, (long long)(e->num - 1));
            return NULL;
        }
        idx[i] = (int64_t)v;
    }
    int64_t shape[NB_MAX_RANK];
    memcpy(shape, x->shape, (size_t)x->rank * sizeof *shape);
    shape[x->rank] = e->dim;
    return nb_reshape(g, nb_gather(g, e->weight, 0, idx, x->size), x->rank + 1, shape);
}

static int64_t embedding_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const embedding *)l->state)->dim;
}

static nb_status embedding_describe(const nb_layer *l, char *out, size_t cap)
{
    const embedding *e = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "num", "%lld", (long long)e->num);
    return st == NB_OK ? nb_layer_setting_put(out, cap, "dim", "%lld", (long long)e->dim) : st;
}

static nb_status embedding_build(nb_layer *l, nb_model *m, const char *settings,
                                 const nb_layer_opts *o, nb_error *err)
{
    int64_t num, dim;
    if (nb_layer_setting_get_i64(settings, "num", &num) != NB_OK ||
        nb_layer_setting_get_i64(settings, "dim", &dim) != NB_OK || num < 1 || dim < 1)
        return nbc_error_at(err, NB_ERR_ARG, "nb_layer_from_description", -1, l->name,
                            "layer '%s' (embedding): num= and dim= (>= 1) are required",
                            l->name);
    nb_status st = embedding_init(l, m, num, dim, o);
    return st == NB_OK ? NB_OK
                       : nbc_error_at(err, st, "nb_layer_from_description", -1, l->name,
                                      "layer '%s' (embedding): its parameters could not be "
                                      "added: %s",
                                      l->name, nb_status_str(st));
}

const nb_layer_def nbn_embedding_def = {
    .kind = "embedding",
    .state_size = sizeof(embedding),
    .forward = embedding_forward,
    .out_width = embedding_width,
    .describe = embedding_describe,
    .build = embedding_build,
};
