/* The library's layers: linear, maxout, activation, dropout, batch norm
 * and sequences, each an nb_layer_def (layer.c runs them as it runs a
 * program's), and the MLP builder. A layer keeps pointers to its
 * parameters (owned by the model) and records primitive ops when run. */

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const nb_layer_opts default_opts = {0};

/* Add the parameters "<layer>.<suffix_i>" with the given shapes; all names
 * are checked first so a taken name adds nothing. */
static nb_status add_params(nb_layer *l, nb_model *m, nb_dtype dt, int n,
                            const char *const *suffix, const int *rank, const int64_t (*shape)[2],
                            nb_tensor **out)
{
    nb_status st = nbn_names_free(l->name, m, suffix, n);
    if (st != NB_OK)
        return st;
    for (int i = 0; i < n && st == NB_OK; i++)
        st = nb_layer_add_param(l, m, suffix[i], dt, rank[i], shape[i], &out[i]);
    return st;
}

static nb_status check_dtype(nb_dtype dt)
{
    return dt == NB_F32 || dt == NB_F64 ? NB_OK : NB_ERR_DTYPE;
}

/* x's dtype matches the layer's parameters; records an error otherwise. */
static bool fits_dtype(nb_graph *g, const nb_layer *l, const nb_tensor *x, const nb_tensor *p)
{
    if (p && x->dtype != p->dtype) {
        nbc_error(g, NB_ERR_DTYPE, l->name, "input is %s but the parameters are %s",
                  nb_dtype_name(x->dtype), nb_dtype_name(p->dtype));
        return false;
    }
    return true;
}

/* ------------------------------------------------------ linear, maxout */

typedef struct affine {
    int64_t n_in, n_out, pieces;
    nb_tensor *weight, *bias;
} affine;

/* The parameters of a linear map to n_out·pieces values into layer @p l. */
static nb_status affine_init(nb_layer *l, nb_model *m, int64_t n_in, int64_t n_out,
                             int64_t pieces, nb_init fallback, const nb_layer_opts *o)
{
    if (check_dtype(o->dtype) != NB_OK)
        return NB_ERR_DTYPE;
    int64_t width;
    if (n_in < 1 || n_out < 1 || pieces < 1 || nbc_mul_overflows(n_out, pieces, &width) ||
        nbc_mul_overflows(n_in, width, &(int64_t){0}))
        return NB_ERR_ARG;
    nb_init init;
    nb_status init_st = nbn_pick_init(o, fallback, &init);
    if (init_st != NB_OK)
        return init_st;
    affine *a = l->state;
    const char *suffix[2] = {"weight", "bias"};
    int rank[2] = {2, 1};
    int64_t shape[2][2] = {{n_in, width}, {width, 0}};
    nb_tensor *ps[2] = {NULL, NULL};
    nb_status st = add_params(l, m, o->dtype, o->no_bias ? 1 : 2, suffix, rank,
                              (const int64_t(*)[2])shape, ps);
    if (st == NB_OK)
        st = nb_init_tensor_fans(ps[0], init, o->init_scale, n_in, width, o->rng);
    if (st != NB_OK)
        return st;
    *a = (affine){n_in, n_out, pieces, ps[0], ps[1]};
    return NB_OK;
}

static nb_status affine_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out,
                            int64_t pieces, nb_init fallback, const nb_layer_opts *o,
                            nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    if (!o)
        o = &default_opts;
    nb_layer *l = NULL; /* affine_init checks the sizes, dtype and init */
    nb_status st = nbn_model_layer(m, pieces > 1 ? &nbn_maxout_def : &nbn_linear_def, name,
                                     o->rng, &l);
    if (st == NB_OK)
        st = affine_init(l, m, n_in, n_out, pieces, fallback, o);
    return nbn_finish(l, st, out);
}

nb_status nb_linear_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out,
                        const nb_layer_opts *o, nb_layer **out)
{
    return affine_new(m, name, n_in, n_out, 1, NB_INIT_XAVIER_UNIFORM, o, out);
}

nb_status nb_maxout_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out, int64_t k,
                        const nb_layer_opts *o, nb_layer **out)
{
    if (k < 2) {
        if (out)
            *out = NULL;
        return out ? NB_ERR_ARG : NB_ERR_NULL;
    }
    return affine_new(m, name, n_in, n_out, k, NB_INIT_HE_UNIFORM, o, out);
}

/* x·W + b, then act (a linear layer's maps are one fused op; a maxout's
 * pieces take their maximum) */
static nb_tensor *affine_act(nb_graph *g, nb_layer *l, nb_tensor *x, nb_linear_act act)
{
    const affine *a = l->state;
    char sx[96], sw[96];
    if (x->rank < 2 || x->rank > 3 || x->shape[x->rank - 1] != a->n_in) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s does not fit weight %s",
                  nbc_shp(x, sx, sizeof sx), nbc_shp(a->weight, sw, sizeof sw));
        return NULL;
    }
    if (!fits_dtype(g, l, x, a->weight))
        return NULL;
    if (a->pieces == 1)
        return nb_linear(g, x, a->weight, a->bias, act);
    nb_tensor *y = nb_matmul(g, x, a->weight, false, false);
    if (a->bias)
        y = nb_add(g, y, a->bias);
    return nb_maxout(g, y, a->pieces);
}

static nb_tensor *affine_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    return affine_act(g, l, x, NB_LINEAR_IDENTITY);
}

static int64_t affine_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const affine *)l->state)->n_out;
}

static nb_status affine_describe(const nb_layer *l, char *out, size_t cap)
{
    const affine *a = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "in", "%lld", (long long)a->n_in);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "out", "%lld", (long long)a->n_out);
    if (st == NB_OK && a->pieces > 1)
        st = nb_layer_setting_put(out, cap, "pieces", "%lld", (long long)a->pieces);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "bias", "%d", a->bias ? 1 : 0);
    return st;
}

/* A setting that must be there and a number from @p lo to @p hi. */
static nb_status need_f64(const nb_layer *l, const char *settings, const char *key, double lo,
                          double hi, double *out, nb_error *err)
{
    nb_status st = nb_layer_setting_get_f64(settings, key, out);
    if (st == NB_OK && *out >= lo && *out <= hi)
        return NB_OK;
    return nbc_error_at(err, st == NB_OK ? NB_ERR_ARG : st, "nb_layer_from_description", -1,
                        l->name, "layer '%s' (%s): %s= is %s (a number from %g to %g)", l->name,
                        l->def->kind, key, st == NB_ERR_NOTFOUND ? "missing" : "not valid", lo,
                        hi);
}

/* Why a layer's parameters could not be added, as a sentence in @p err. */
static nb_status param_error(const nb_layer *l, nb_status st, nb_error *err)
{
    return nbc_error_at(err, st, "nb_layer_from_description", -1, l->name,
                        "layer '%s' (%s): its parameters could not be added: %s", l->name,
                        l->def->kind,
                        st == NB_ERR_EXISTS ? "a name is taken"
                        : st == NB_ERR_ARG  ? "sizes too large, or past the bound on bytes"
                                            : nb_status_str(st));
}

static nb_status affine_build(nb_layer *l, nb_model *m, const char *settings,
                              const nb_layer_opts *o, nb_error *err)
{
    bool maxout = l->def == &nbn_maxout_def;
    int64_t n_in, n_out, pieces = 1, bias;
    nb_status st = nbn_need_i64(l, settings, "in", 1, INT32_MAX, &n_in, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "out", 1, INT32_MAX, &n_out, err);
    if (st == NB_OK && maxout)
        st = nbn_need_i64(l, settings, "pieces", 2, 1 << 16, &pieces, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "bias", 0, 1, &bias, err);
    if (st != NB_OK)
        return st;
    nb_layer_opts lo = *o;
    lo.no_bias = !bias;
    st = affine_init(l, m, n_in, n_out, pieces,
                     maxout ? NB_INIT_HE_UNIFORM : NB_INIT_XAVIER_UNIFORM, &lo);
    return st == NB_OK ? NB_OK : param_error(l, st, err);
}

const nb_layer_def nbn_linear_def = {
    .kind = "linear",
    .state_size = sizeof(affine),
    .forward = affine_forward,
    .out_width = affine_width,
    .describe = affine_describe,
    .build = affine_build,
};

const nb_layer_def nbn_maxout_def = {
    .kind = "maxout",
    .state_size = sizeof(affine),
    .forward = affine_forward,
    .out_width = affine_width,
    .describe = affine_describe,
    .build = affine_build,
};

/* ---------------------------------------------------------- activation */

typedef struct activation {
    nb_act act;
    nb_act_opts opts;
    nb_tensor *param; /* PReLU α or learned swish β */
} activation;

/* Whether @p ao is valid for @p act (NB_OK or NB_ERR_ARG). */
static nb_status act_opts_check(nb_act act, const nb_act_opts *ao)
{
    if ((int)act < 0 || act >= NB_ACT_COUNT)
        return NB_ERR_ARG;
    if (act == NB_ACT_MAXOUT && ao->pieces < 1)
        return NB_ERR_ARG;
    if (act == NB_ACT_RRELU && !(ao->lower >= 0 && ao->lower <= ao->upper && isfinite(ao->upper)))
        return NB_ERR_ARG;
    return NB_OK;
}

/* The activation's state and its parameter (when it has one) in @p l. */
static nb_status activation_init(nb_layer *l, nb_model *m, nb_act act, const nb_act_opts *ao,
                                 int64_t n_features, nb_dtype dt)
{
    activation *a = l->state;
    if (nb_act_has_param(act)) {
        const char *suffix[1] = {act == NB_ACT_PRELU ? "alpha" : "beta"};
        int rank[1] = {1};
        int64_t shape[1][2] = {{n_features, 0}};
        nb_status st = add_params(l, m, dt, 1, suffix, rank, (const int64_t(*)[2])shape, &a->param);
        if (st != NB_OK)
            return st;
        nbc_fill(a->param, act == NB_ACT_PRELU ? ao->alpha : ao->beta);
    }
    a->act = act;
    a->opts = *ao;
    return NB_OK;
}

nb_status nb_act_layer_new(nb_model *m, const char *name, nb_act act, const nb_act_opts *act_o,
                           int64_t n_features, const nb_layer_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    if (!o)
        o = &default_opts;
    if ((int)act < 0 || act >= NB_ACT_COUNT)
        return NB_ERR_ARG;
    nb_act_opts ao = act_o ? *act_o : nb_act_defaults(act);
    if (act_opts_check(act, &ao) != NB_OK)
        return NB_ERR_ARG;
    if (nb_act_has_param(act) && (n_features < 1 || check_dtype(o->dtype) != NB_OK))
        return n_features < 1 ? NB_ERR_ARG : NB_ERR_DTYPE;
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, &nbn_activation_def, name, o->rng, &l);
    if (st == NB_OK)
        st = activation_init(l, m, act, &ao, n_features, o->dtype);
    return nbn_finish(l, st, out);
}

static nb_tensor *activation_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    activation *a = l->state;
    if (!fits_dtype(g, l, x, a->param))
        return NULL;
    return nb_activate(g, a->act, x, &a->opts, a->param, l->rng, training);
}

static int64_t activation_width(const nb_layer *l, int64_t w)
{
    const activation *a = l->state;
    return a->act == NB_ACT_MAXOUT && w >= 0 ? w / a->opts.pieces : w;
}

/* The settings of the activations, as keys, and which activations have each. */
static const struct {
    const char *key;
    nb_act acts[3];
} ACT_SETTINGS[] = {
    {"alpha", {NB_ACT_LEAKY_RELU, NB_ACT_ELU, NB_ACT_PRELU}},
    {"beta", {NB_ACT_SWISH, NB_ACT_SWISH_LEARNED, NB_ACT_SWISH}},
    {"lower", {NB_ACT_RRELU, NB_ACT_RRELU, NB_ACT_RRELU}},
    {"upper", {NB_ACT_RRELU, NB_ACT_RRELU, NB_ACT_RRELU}},
};

static double *act_setting(nb_act_opts *o, int i)
{
    double *v[] = {&o->alpha, &o->beta, &o->lower, &o->upper};
    return v[i];
}

static bool has_setting(nb_act act, int i)
{
    for (int k = 0; k < 3; k++)
        if (ACT_SETTINGS[i].acts[k] == act)
            return true;
    return false;
}

static nb_status activation_describe(const nb_layer *l, char *out, size_t cap)
{
    const activation *a = l->state;
    nb_act_opts o = a->opts;
    nb_status st = nb_layer_setting_put(out, cap, "act", "%s", nb_act_name(a->act));
    for (int i = 0; i < 4 && st == NB_OK; i++)
        if (has_setting(a->act, i))
            st = nb_layer_setting_put(out, cap, ACT_SETTINGS[i].key, "%.17g", *act_setting(&o, i));
    if (st == NB_OK && a->act == NB_ACT_MAXOUT)
        st = nb_layer_setting_put(out, cap, "pieces", "%lld", (long long)a->opts.pieces);
    if (st == NB_OK && a->param)
        st = nb_layer_setting_put(out, cap, "features", "%lld", (long long)a->param->size);
    return st;
}

static nb_status activation_build(nb_layer *l, nb_model *m, const char *settings,
                                  const nb_layer_opts *o, nb_error *err)
{
    static const char *const where = "nb_layer_from_description";
    char name[32];
    nb_act act;
    if (nb_layer_setting_get(settings, "act", name, sizeof name) != NB_OK ||
        nb_act_from_name(name, &act) != NB_OK)
        return nbc_error_at(err, NB_ERR_ARG, where, -1, l->name,
                            "layer '%s' (activation): act= is missing or not one of %s", l->name,
                            nb_act_names());
    nb_act_opts ao = nb_act_defaults(act);
    nb_status st = NB_OK;
    for (int i = 0; i < 4 && st == NB_OK; i++)
        if (has_setting(act, i))
            st = need_f64(l, settings, ACT_SETTINGS[i].key, -1e300, 1e300, act_setting(&ao, i),
                          err);
    if (st == NB_OK && act == NB_ACT_MAXOUT)
        st = nbn_need_i64(l, settings, "pieces", 1, 1 << 16, &ao.pieces, err);
    int64_t features = 0;
    if (st == NB_OK && nb_act_has_param(act))
        st = nbn_need_i64(l, settings, "features", 1, INT32_MAX, &features, err);
    if (st != NB_OK)
        return st;
    if (act_opts_check(act, &ao) != NB_OK)
        return nbc_error_at(err, NB_ERR_ARG, where, -1, l->name,
                            "layer '%s' (activation): the settings of %s are not valid", l->name,
                            nb_act_name(act));
    st = activation_init(l, m, act, &ao, features, o->dtype);
    return st == NB_OK ? NB_OK : param_error(l, st, err);
}

const nb_layer_def nbn_activation_def = {
    .kind = "activation",
    .state_size = sizeof(activation),
    .forward = activation_forward,
    .out_width = activation_width,
    .describe = activation_describe,
    .build = activation_build,
};

/* ------------------------------------------------------------- dropout */

typedef struct dropout {
    double p;
} dropout;

static nb_status dropout_make(nb_alloc_fn alloc, void *ud, const char *name, double p,
                              const nb_layer_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!name || !out)
        return NB_ERR_NULL;
    if (!(p >= 0 && p < 1))
        return NB_ERR_ARG;
    if (!o || !o->rng)
        return NB_ERR_NULL;
    nb_status st = nbn_layer_make(alloc, ud, &nbn_dropout_def, name, o->rng, out);
    if (st == NB_OK)
        ((dropout *)(*out)->state)->p = p;
    return st;
}

nb_status nb_dropout_new(const char *name, double p, const nb_layer_opts *o, nb_layer **out)
{
    return dropout_make(nb_default_alloc, NULL, name, p, o, out);
}

/* Inverted dropout: x·m/(1−p), m ~ Bernoulli(1−p) per element. */
static nb_tensor *dropout_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    double p = ((const dropout *)l->state)->p;
    if (!training || p == 0)
        return x;
    nb_tensor *mask = nbc_tensor_new(g, x->dtype, x->rank, x->shape, l->name);
    if (!mask)
        return NULL;
    double keep = 1 - p, scale = 1 / keep;
    for (int64_t i = 0; i < mask->size; i++)
        nb_tensor_set(mask, i, nb_rng_uniform(l->rng) < keep ? scale : 0);
    return nb_mul(g, x, mask);
}

static nb_status dropout_describe(const nb_layer *l, char *out, size_t cap)
{
    return nb_layer_setting_put(out, cap, "p", "%.17g", ((const dropout *)l->state)->p);
}

static nb_status dropout_build(nb_layer *l, nb_model *m, const char *settings,
                               const nb_layer_opts *o, nb_error *err)
{
    (void)m;
    double p;
    nb_status st = need_f64(l, settings, "p", 0, 0.999999999, &p, err);
    if (st != NB_OK)
        return st;
    if (!o->rng)
        return nbc_error_at(err, NB_ERR_NULL, "nb_layer_from_description", -1, l->name,
                            "layer '%s' (dropout) needs a generator (nb_layer_opts.rng)", l->name);
    ((dropout *)l->state)->p = p;
    return NB_OK;
}

const nb_layer_def nbn_dropout_def = {
    .kind = "dropout",
    .state_size = sizeof(dropout),
    .forward = dropout_forward,
    .describe = dropout_describe,
    .build = dropout_build,
};

/* ---------------------------------------------------------- batch norm */

typedef struct batch_norm {
    int64_t n;
    double eps, momentum;
    nb_tensor *weight, *bias, *running_mean, *running_var;
} batch_norm;

static nb_status batch_norm_init(nb_layer *l, nb_model *m, int64_t n_features, double eps,
                                 double momentum, nb_dtype dt)
{
    const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    int rank[4] = {1, 1, 1, 1};
    int64_t shape[4][2] = {{n_features, 0}, {n_features, 0}, {n_features, 0}, {n_features, 0}};
    nb_tensor *ps[4] = {NULL, NULL, NULL, NULL};
    nb_status st = add_params(l, m, dt, 4, suffix, rank, (const int64_t(*)[2])shape, ps);
    if (st != NB_OK)
        return st;
    nbc_fill(ps[0], 1);
    nbc_fill(ps[3], 1);
    nb_tensor_set_requires_grad(ps[2], false); /* buffers: saved, not trained */
    nb_tensor_set_requires_grad(ps[3], false);
    *(batch_norm *)l->state = (batch_norm){n_features, eps, momentum, ps[0], ps[1], ps[2], ps[3]};
    return NB_OK;
}

static bool batch_norm_settings_ok(int64_t n_features, double eps, double momentum)
{
    return n_features >= 1 && eps > 0 && isfinite(eps) && momentum >= 0 && momentum <= 1;
}

nb_status nb_batch_norm_new(nb_model *m, const char *name, int64_t n_features, double eps,
                            double momentum, const nb_layer_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    if (!o)
        o = &default_opts;
    if (check_dtype(o->dtype) != NB_OK)
        return NB_ERR_DTYPE;
    if (!batch_norm_settings_ok(n_features, eps, momentum))
        return NB_ERR_ARG;
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, &nbn_batch_norm_def, name, o->rng, &l);
    if (st == NB_OK)
        st = batch_norm_init(l, m, n_features, eps, momentum, o->dtype);
    return nbn_finish(l, st, out);
}

/* Move a running buffer towards a batch statistic (in the buffer's dtype). */
static void running_update(nb_tensor *r, const nb_tensor *stat, double momentum, double factor)
{
    for (int64_t i = 0; i < r->size; i++) {
        double v =
            (1 - momentum) * nb_tensor_get(r, i) + momentum * factor * nb_tensor_get(stat, i);
        nb_tensor_set(r, i, v);
    }
}

static nb_tensor *batch_norm_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    const batch_norm *b = l->state;
    char sx[96];
    if (x->rank != 2 || x->shape[1] != b->n) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s must be [N, %lld]", nbc_shp(x, sx, sizeof sx),
                  (long long)b->n);
        return NULL;
    }
    if (!fits_dtype(g, l, x, b->weight))
        return NULL;
    nb_tensor *mean, *var;
    if (training) {
        int64_t n = x->shape[0];
        if (n < 2) {
            nbc_error(g, NB_ERR_SHAPE, l->name,
                      "training mode needs a batch of at least 2 rows, got %s",
                      nbc_shp(x, sx, sizeof sx));
            return NULL;
        }
        int axis = 0;
        mean = nb_mean(g, x, &axis, 1, true);
        var = nb_mean(g, nb_square(g, nb_sub(g, x, mean)), &axis, 1, true);
        if (!var)
            return NULL;
        running_update(b->running_mean, mean, b->momentum, 1);
        running_update(b->running_var, var, b->momentum, (double)n / (double)(n - 1));
    } else {
        mean = b->running_mean;
        var = b->running_var;
    }
    nb_tensor *xhat = nb_div(g, nb_sub(g, x, mean), nb_sqrt(g, nb_add_scalar(g, var, b->eps)));
    return nb_add(g, nb_mul(g, xhat, b->weight), b->bias);
}

static int64_t batch_norm_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const batch_norm *)l->state)->n;
}

static nb_status batch_norm_describe(const nb_layer *l, char *out, size_t cap)
{
    const batch_norm *b = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "features", "%lld", (long long)b->n);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "eps", "%.17g", b->eps);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "momentum", "%.17g", b->momentum);
    return st;
}

static nb_status batch_norm_build(nb_layer *l, nb_model *m, const char *settings,
                                  const nb_layer_opts *o, nb_error *err)
{
    int64_t n;
    double eps, momentum;
    nb_status st = nbn_need_i64(l, settings, "features", 1, INT32_MAX, &n, err);
    if (st == NB_OK)
        st = need_f64(l, settings, "eps", 1e-300, 1e300, &eps, err);
    if (st == NB_OK)
        st = need_f64(l, settings, "momentum", 0, 1, &momentum, err);
    if (st != NB_OK)
        return st;
    st = batch_norm_init(l, m, n, eps, momentum, o->dtype);
    return st == NB_OK ? NB_OK : param_error(l, st, err);
}

const nb_layer_def nbn_batch_norm_def = {
    .kind = "batch_norm",
    .state_size = sizeof(batch_norm),
    .forward = batch_norm_forward,
    .out_width = batch_norm_width,
    .describe = batch_norm_describe,
    .build = batch_norm_build,
};

/* ------------------------------------------------------------ sequence */

nb_status nb_sequential_new(const char *name, nb_layer **out)
{
    return nbn_layer_make(nb_default_alloc, NULL, &nbn_sequential_def, name, NULL, out);
}

/* Whether @p l is a ReLU activation layer. */
static bool is_relu_layer(const nb_layer *l)
{
    return l->def == &nbn_activation_def && ((const activation *)l->state)->act == NB_ACT_RELU;
}

/* A linear or conv2d layer followed by a ReLU layer runs as one op
 * (nb_linear, nb_conv2d_fused with their activation): the same numbers,
 * without the intermediates. */
static nb_tensor *sequential_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    for (int i = 0; i < l->n_items && x; i++) {
        nb_layer *item = l->items[i];
        bool relu_next = i + 1 < l->n_items && is_relu_layer(l->items[i + 1]);
        if (relu_next && (item->def == &nbn_linear_def || item->def == &nbn_conv2d_def)) {
            x = item->def == &nbn_linear_def ? affine_act(g, item, x, NB_LINEAR_RELU)
                                             : nbn_conv_forward_act(g, item, x, NB_LINEAR_RELU);
            i++;
            continue;
        }
        x = nb_layer_forward(g, item, x, training);
    }
    return x;
}

/* The width of what @p l gives for an input of width @p w. */
static int64_t sequential_width(const nb_layer *l, int64_t w)
{
    for (int i = 0; i < l->n_items; i++)
        if (l->items[i]->def->out_width)
            w = l->items[i]->def->out_width(l->items[i], w);
    return w;
}

static nb_status sequential_describe(const nb_layer *l, char *out, size_t cap)
{
    (void)l, (void)out, (void)cap;
    return NB_OK; /* its layers are described one by one */
}

static nb_status sequential_build(nb_layer *l, nb_model *m, const char *settings,
                                  const nb_layer_opts *o, nb_error *err)
{
    (void)l, (void)m, (void)settings, (void)o, (void)err;
    return NB_OK; /* its layers are built one by one */
}

const nb_layer_def nbn_sequential_def = {
    .kind = "sequential",
    .forward = sequential_forward,
    .out_width = sequential_width,
    .describe = sequential_describe,
    .build = sequential_build,
};

/* ------------------------------------------------------------- reshape */

typedef struct reshape {
    int rank; /* of a sample */
    int64_t shape[NB_MAX_RANK - 1];
} reshape;

static int64_t shape_count(const reshape *r)
{
    int64_t n = 1;
    for (int i = 0; i < r->rank; i++)
        n *= r->shape[i];
    return n;
}

nb_status nb_reshape_layer_new(const char *name, int rank, const int64_t *shape, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!name || !out || (rank > 0 && !shape))
        return NB_ERR_NULL;
    if (rank < 1 || rank > NB_MAX_RANK - 1)
        return NB_ERR_ARG;
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        if (shape[i] < 1 || nbc_mul_overflows(n, shape[i], &n))
            return NB_ERR_ARG;
    nb_status st = nbn_layer_make(nb_default_alloc, NULL, &nbn_reshape_def, name, NULL, out);
    if (st == NB_OK) {
        reshape *r = (*out)->state;
        r->rank = rank;
        memcpy(r->shape, shape, (size_t)rank * sizeof *shape);
    }
    return st;
}

/* [N, ...] to [N, shape...]: each sample's elements in the new shape. */
static nb_tensor *reshape_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const reshape *r = l->state;
    char sx[96];
    int64_t per = x->rank >= 1 && x->shape[0] > 0 ? x->size / x->shape[0] : -1;
    if (x->rank < 1 || per != shape_count(r)) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s does not hold %lld elements per sample",
                  nbc_shp(x, sx, sizeof sx), (long long)shape_count(r));
        return NULL;
    }
    int64_t shape[NB_MAX_RANK] = {x->shape[0]};
    memcpy(shape + 1, r->shape, (size_t)r->rank * sizeof *shape);
    return nb_reshape(g, x, r->rank + 1, shape);
}

static int64_t reshape_width(const nb_layer *l, int64_t w)
{
    (void)w;
    const reshape *r = l->state;
    return r->shape[r->rank - 1];
}

static nb_status reshape_describe(const nb_layer *l, char *out, size_t cap)
{
    const reshape *r = l->state;
    char v[NB_MAX_RANK * 21] = "";
    size_t n = 0;
    for (int i = 0; i < r->rank; i++)
        n += (size_t)snprintf(v + n, sizeof v - n, "%s%lld", i ? "x" : "", (long long)r->shape[i]);
    return nb_layer_setting_put(out, cap, "shape", "%s", v);
}

static nb_status reshape_build(nb_layer *l, nb_model *m, const char *settings,
                               const nb_layer_opts *o, nb_error *err)
{
    (void)m, (void)o;
    reshape *r = l->state;
    char v[256];
    bool ok = nb_layer_setting_get(settings, "shape", v, sizeof v) == NB_OK;
    r->rank = 0;
    int64_t n = 1;
    for (const char *p = v; ok && *p;) {
        char *end;
        long long d = strtoll(p, &end, 10);
        ok = end != p && d >= 1 && d <= INT32_MAX && r->rank < NB_MAX_RANK - 1 &&
             (*end == 'x' || !*end) && !nbc_mul_overflows(n, d, &n) && !(*end == 'x' && !end[1]);
        if (ok)
            r->shape[r->rank++] = d;
        p = *end ? end + 1 : end;
    }
    if (!ok || r->rank == 0)
        return nbc_error_at(err, NB_ERR_ARG, "nb_layer_from_description", -1, l->name,
                            "layer '%s' (reshape): shape= is missing or not sizes like 28x28",
                            l->name);
    return NB_OK;
}

const nb_layer_def nbn_reshape_def = {
    .kind = "reshape",
    .state_size = sizeof(reshape),
    .forward = reshape_forward,
    .out_width = reshape_width,
    .describe = reshape_describe,
    .build = reshape_build,
};

/* ---------------------------------------------------------------- info */

nb_status nb_layer_get_info(const nb_layer *l, nb_layer_info *out)
{
    if (!l || !out)
        return NB_ERR_NULL;
    *out = (nb_layer_info){
        .kind = nb_layer_get_kind(l),
        .kind_name = l->def->kind,
        .name = l->name,
        .n_items = l->n_items,
    };
    const nb_layer_def *d = l->def;
    if (d == &nbn_linear_def || d == &nbn_maxout_def) {
        const affine *a = l->state;
        out->n_in = a->n_in;
        out->n_out = a->n_out;
        out->pieces = a->pieces;
        out->weight = a->weight;
        out->bias = a->bias;
    } else if (d == &nbn_activation_def) {
        const activation *a = l->state;
        out->act = a->act;
        out->act_opts = a->opts;
        out->param = a->param;
        if (a->param)
            out->n_in = out->n_out = a->param->size;
    } else if (d == &nbn_dropout_def) {
        out->p = ((const dropout *)l->state)->p;
    } else if (d == &nbn_batch_norm_def) {
        const batch_norm *b = l->state;
        out->n_in = out->n_out = b->n;
        out->eps = b->eps;
        out->momentum = b->momentum;
        out->weight = b->weight;
        out->bias = b->bias;
        out->running_mean = b->running_mean;
        out->running_var = b->running_var;
    } else if (d == &nbn_reshape_def) {
        const reshape *r = l->state;
        out->n_in = shape_count(r);
        out->n_out = r->shape[r->rank - 1];
    } else if (d >= nbn_rnn_defs && d < nbn_rnn_defs + 6) {
        nb_rnn_info ri;
        nb_rnn_get_info(l, &ri);
        out->n_in = ri.n_in;
        out->n_out = ri.hidden;
        out->weight = ri.weight_ih;
        out->bias = ri.bias_ih;
    } else if (d == &nbn_conv2d_def || d == &nbn_max_pool2d_def || d == &nbn_avg_pool2d_def) {
        nbn_conv_info(l, out);
    } else if (d == &nbn_sequential_def && l->n_items > 0) {
        nb_layer_info first;
        nb_layer_get_info(l->items[0], &first);
        out->n_in = first.n_in;
        out->n_out = sequential_width(l, first.n_in);
    }
    return NB_OK;
}

/* ---------------------------------------------------------------- MLP */

nb_mlp_opts nb_mlp_defaults(void)
{
    return (nb_mlp_opts){
        .layer = {.dtype = NB_F32, .init = NB_INIT_AUTO},
        .act = NB_ACT_RELU,
        .act_opts = NULL,
        .out_act = NB_ACT_IDENTITY,
        .bn_eps = 1e-5,
        .bn_momentum = 0.1,
    };
}

static bool relu_family(nb_act act)
{
    switch (act) {
    case NB_ACT_RELU:
    case NB_ACT_LEAKY_RELU:
    case NB_ACT_PRELU:
    case NB_ACT_RRELU:
    case NB_ACT_ELU:
    case NB_ACT_MAXOUT:
    case NB_ACT_SWISH:
    case NB_ACT_SWISH_LEARNED:
    case NB_ACT_GELU:
    case NB_ACT_GELU_SIGMOID:
    case NB_ACT_GELU_TANH:
    case NB_ACT_SOFTPLUS: return true;
    default: return false;
    }
}

nb_init nb_act_default_init(nb_act act)
{
    return relu_family(act) ? NB_INIT_HE_UNIFORM : NB_INIT_XAVIER_UNIFORM;
}

/* "<prefix>.<base><i>" or "<base><i>" */
static nb_status layer_name(char *buf, size_t n, const char *prefix, const char *base, int i)
{
    int k = prefix && *prefix ? snprintf(buf, n, "%s.%s%d", prefix, base, i)
                              : snprintf(buf, n, "%s%d", base, i);
    return k < 0 || (size_t)k >= n ? NB_ERR_ARG : NB_OK;
}

nb_status nb_mlp_new(nb_model *m, const char *prefix, const int64_t *sizes, int n_sizes,
                     const nb_mlp_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !sizes || !o || !out)
        return NB_ERR_NULL;
    if (n_sizes < 2)
        return NB_ERR_ARG;
    for (int i = 0; i < n_sizes; i++)
        if (sizes[i] < 1)
            return NB_ERR_ARG;
    if ((int)o->act < 0 || o->act >= NB_ACT_COUNT || (int)o->out_act < 0 ||
        o->out_act >= NB_ACT_COUNT || nb_act_has_param(o->out_act) || o->out_act == NB_ACT_MAXOUT ||
        !(o->dropout >= 0 && o->dropout < 1))
        return NB_ERR_ARG;
    if (prefix && strlen(prefix) > NBN_NAME_MAX - 16)
        return NB_ERR_ARG;
    nb_act_opts ao = o->act_opts ? *o->act_opts : nb_act_defaults(o->act);
    nb_layer_opts lo = o->layer;
    nb_init hidden_init = lo.init;
    if (hidden_init == NB_INIT_AUTO)
        hidden_init = nb_act_default_init(o->act);

    nb_layer *seq = NULL;
    nb_status st = nbn_model_layer(m, &nbn_sequential_def, prefix ? prefix : "", NULL, &seq);
    if (st != NB_OK)
        return st;
    char name[NBN_NAME_MAX];
    for (int i = 1; i < n_sizes && st == NB_OK; i++) {
        bool last = i == n_sizes - 1;
        nb_layer *l = NULL;
        lo.init = hidden_init;
        st = layer_name(name, sizeof name, prefix, "fc", i);
        if (st == NB_OK) {
            if (!last && o->act == NB_ACT_MAXOUT)
                st = nb_maxout_new(m, name, sizes[i - 1], sizes[i], ao.pieces, &lo, &l);
            else
                st = nb_linear_new(m, name, sizes[i - 1], sizes[i], &lo, &l);
        }
        if (st == NB_OK)
            st = nb_sequential_add(seq, l);
        nb_act act = last ? o->out_act : o->act;
        if (st == NB_OK && !last && o->batch_norm) {
            st = layer_name(name, sizeof name, prefix, "bn", i);
            if (st == NB_OK)
                st = nb_batch_norm_new(m, name, sizes[i], o->bn_eps, o->bn_momentum, &lo, &l);
            if (st == NB_OK)
                st = nb_sequential_add(seq, l);
        }
        if (st == NB_OK && act != NB_ACT_IDENTITY && !(act == NB_ACT_MAXOUT && !last)) {
            st = layer_name(name, sizeof name, prefix, "act", i);
            if (st == NB_OK)
                st = nb_act_layer_new(m, name, act, last ? NULL : &ao, sizes[i], &lo, &l);
            if (st == NB_OK)
                st = nb_sequential_add(seq, l);
        }
        if (st == NB_OK && !last && o->dropout > 0) {
            st = layer_name(name, sizeof name, prefix, "drop", i);
            if (st == NB_OK)
                st = dropout_make(seq->alloc, seq->ud, name, o->dropout, &lo, &l);
            if (st == NB_OK)
                st = nb_sequential_add(seq, l);
        }
    }
    if (st != NB_OK) {
        nb_layer_free(seq);
        return st;
    }
    *out = seq;
    return NB_OK;
}

/* ------------------------------------------------------- gradient norms */

int nb_grad_norms(const nb_model *m, nb_param_norm *out, int cap)
{
    if (!m || (!out && cap > 0))
        return -1;
    int count = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        const char *name = nb_tensor_name(p);
        size_t len = strlen(name);
        if (!nb_tensor_requires_grad(p) || p->rank < 2 || len < 7 ||
            strcmp(name + len - 7, ".weight") != 0)
            continue;
        if (count < cap) {
            out[count] = (nb_param_norm){name, sqrt(nbc_sum_squares(nb_tensor_grad(p)))};
        }
        count++;
    }
    return count;
}
