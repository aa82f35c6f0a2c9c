/* Layers: linear, maxout, activation, dropout, batch norm, sequences and
 * the MLP builder. A layer keeps pointers to its parameters (owned by the
 * model) and records primitive ops when run. */

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

#define NAME_MAX_LEN 96

struct nb_layer {
    nb_layer_kind kind;
    char name[NAME_MAX_LEN];
    nb_alloc_fn alloc;
    void *ud;
    nb_rng *rng;
    /* linear, maxout */
    nb_tensor *weight, *bias;
    int64_t n_in, n_out, pieces;
    /* activation */
    nb_act act;
    nb_act_opts act_opts;
    nb_tensor *param;
    /* dropout */
    double p;
    /* batch norm (weight = γ, bias = β) */
    nb_tensor *running_mean, *running_var;
    double eps, momentum;
    /* sequence */
    nb_layer **items;
    int n_items, cap_items;
};

static const nb_layer_opts default_opts = {0};

static nb_status layer_alloc(nb_alloc_fn alloc, void *ud, nb_layer_kind kind, const char *name,
                             nb_layer **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    if (!name)
        return NB_ERR_NULL;
    if (strlen(name) >= NAME_MAX_LEN)
        return NB_ERR_ARG;
    nb_layer *l = alloc(ud, NULL, 0, sizeof *l);
    if (!l)
        return NB_ERR_NOMEM;
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->alloc = alloc;
    l->ud = ud;
    memcpy(l->name, name, strlen(name) + 1);
    *out = l;
    return NB_OK;
}

static nb_status model_layer_alloc(nb_model *m, nb_layer_kind kind, const char *name,
                                   nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m)
        return NB_ERR_NULL;
    void *ud;
    nb_alloc_fn alloc = nbc_model_allocator(m, &ud);
    return layer_alloc(alloc, ud, kind, name, out);
}

void nb_layer_free(nb_layer *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n_items; i++)
        nb_layer_free(l->items[i]);
    if (l->items)
        l->alloc(l->ud, l->items, (size_t)l->cap_items * sizeof *l->items, 0);
    l->alloc(l->ud, l, sizeof *l, 0);
}

/* "<layer>.<suffix>" into buf; NB_ERR_ARG when it does not fit. */
static nb_status param_name(char *buf, size_t n, const char *layer, const char *suffix)
{
    int k = snprintf(buf, n, "%s.%s", layer, suffix);
    return k < 0 || (size_t)k >= n ? NB_ERR_ARG : NB_OK;
}

/* Add the parameters "<layer>.<suffix_i>" with the given shapes; all names
 * are checked first so a taken name adds nothing. */
static nb_status add_params(nb_model *m, const char *layer, nb_dtype dt, int n,
                            const char *const *suffix, const int *rank, const int64_t (*shape)[2],
                            nb_tensor **out)
{
    char buf[NAME_MAX_LEN + 32];
    for (int i = 0; i < n; i++) {
        if (param_name(buf, sizeof buf, layer, suffix[i]) != NB_OK)
            return NB_ERR_ARG;
        if (nb_model_get(m, buf))
            return NB_ERR_EXISTS;
    }
    for (int i = 0; i < n; i++) {
        param_name(buf, sizeof buf, layer, suffix[i]);
        nb_status st = nb_model_add(m, buf, dt, rank[i], shape[i], &out[i]);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

static nb_status check_dtype(nb_dtype dt)
{
    return dt == NB_F32 || dt == NB_F64 ? NB_OK : NB_ERR_DTYPE;
}

/* Linear map to n_out·pieces values (pieces = 1: a linear layer). */
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
    if (check_dtype(o->dtype) != NB_OK)
        return NB_ERR_DTYPE;
    int64_t width;
    if (n_in < 1 || n_out < 1 || pieces < 1 || nbc_mul_overflows(n_out, pieces, &width) ||
        nbc_mul_overflows(n_in, width, &(int64_t){0}))
        return NB_ERR_ARG;
    nb_init init = o->init == NB_INIT_AUTO ? fallback : o->init;
    if ((int)init <= NB_INIT_AUTO || init >= NB_INIT_COUNT)
        return NB_ERR_ARG;
    if (init >= NB_INIT_SMALL_NORMAL && !o->rng)
        return NB_ERR_NULL;

    nb_layer *l = NULL;
    nb_status st = model_layer_alloc(m, pieces > 1 ? NB_LAYER_MAXOUT : NB_LAYER_LINEAR, name, &l);
    if (st != NB_OK)
        return st;
    const char *suffix[2] = {"weight", "bias"};
    int rank[2] = {2, 1};
    int64_t shape[2][2] = {{n_in, width}, {width, 0}};
    nb_tensor *ps[2] = {NULL, NULL};
    st = add_params(m, name, o->dtype, o->no_bias ? 1 : 2, suffix, rank, (const int64_t(*)[2])shape,
                    ps);
    if (st == NB_OK)
        st = nb_init_tensor_fans(ps[0], init, o->init_scale, n_in, width, o->rng);
    if (st != NB_OK) {
        nb_layer_free(l);
        return st;
    }
    l->weight = ps[0];
    l->bias = ps[1];
    l->n_in = n_in;
    l->n_out = n_out;
    l->pieces = pieces;
    l->rng = o->rng;
    *out = l;
    return NB_OK;
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
    if (act == NB_ACT_MAXOUT && ao.pieces < 1)
        return NB_ERR_ARG;
    if (act == NB_ACT_RRELU && !(ao.lower >= 0 && ao.lower <= ao.upper && isfinite(ao.upper)))
        return NB_ERR_ARG;
    if (nb_act_has_param(act) && (n_features < 1 || check_dtype(o->dtype) != NB_OK))
        return n_features < 1 ? NB_ERR_ARG : NB_ERR_DTYPE;
    nb_layer *l = NULL;
    nb_status st = model_layer_alloc(m, NB_LAYER_ACTIVATION, name, &l);
    if (st != NB_OK)
        return st;
    if (nb_act_has_param(act)) {
        const char *suffix[1] = {act == NB_ACT_PRELU ? "alpha" : "beta"};
        int rank[1] = {1};
        int64_t shape[1][2] = {{n_features, 0}};
        st = add_params(m, name, o->dtype, 1, suffix, rank, (const int64_t(*)[2])shape, &l->param);
        if (st != NB_OK) {
            nb_layer_free(l);
            return st;
        }
        nbc_fill(l->param, act == NB_ACT_PRELU ? ao.alpha : ao.beta);
    }
    l->act = act;
    l->act_opts = ao;
    l->rng = o->rng;
    *out = l;
    return NB_OK;
}

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
    nb_status st = layer_alloc(alloc, ud, NB_LAYER_DROPOUT, name, out);
    if (st == NB_OK) {
        (*out)->p = p;
        (*out)->rng = o->rng;
    }
    return st;
}

nb_status nb_dropout_new(const char *name, double p, const nb_layer_opts *o, nb_layer **out)
{
    return dropout_make(nb_default_alloc, NULL, name, p, o, out);
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
    if (n_features < 1 || !(eps > 0) || !isfinite(eps) || !(momentum >= 0 && momentum <= 1))
        return NB_ERR_ARG;
    nb_layer *l = NULL;
    nb_status st = model_layer_alloc(m, NB_LAYER_BATCH_NORM, name, &l);
    if (st != NB_OK)
        return st;
    const char *suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    int rank[4] = {1, 1, 1, 1};
    int64_t shape[4][2] = {{n_features, 0}, {n_features, 0}, {n_features, 0}, {n_features, 0}};
    nb_tensor *ps[4] = {NULL, NULL, NULL, NULL};
    st = add_params(m, name, o->dtype, 4, suffix, rank, (const int64_t(*)[2])shape, ps);
    if (st != NB_OK) {
        nb_layer_free(l);
        return st;
    }
    nbc_fill(ps[0], 1);
    nbc_fill(ps[3], 1);
    nb_tensor_set_requires_grad(ps[2], false); /* buffers: saved, not trained */
    nb_tensor_set_requires_grad(ps[3], false);
    l->weight = ps[0];
    l->bias = ps[1];
    l->running_mean = ps[2];
    l->running_var = ps[3];
    l->n_in = l->n_out = n_features;
    l->eps = eps;
    l->momentum = momentum;
    *out = l;
    return NB_OK;
}

nb_status nb_sequential_new(const char *name, nb_layer **out)
{
    return layer_alloc(nb_default_alloc, NULL, NB_LAYER_SEQUENTIAL, name, out);
}

nb_status nb_sequential_add(nb_layer *seq, nb_layer *layer)
{
    if (!seq || !layer) {
        nb_layer_free(layer);
        return NB_ERR_NULL;
    }
    if (seq->kind != NB_LAYER_SEQUENTIAL || seq == layer) {
        if (seq != layer)
            nb_layer_free(layer);
        return NB_ERR_ARG;
    }
    if (seq->n_items == seq->cap_items) {
        int cap = seq->cap_items ? 2 * seq->cap_items : 4;
        if (cap > 1 << 20) {
            nb_layer_free(layer);
            return NB_ERR_ARG;
        }
        nb_layer **items = seq->alloc(seq->ud, seq->items, (size_t)seq->cap_items * sizeof *items,
                                      (size_t)cap * sizeof *items);
        if (!items) {
            nb_layer_free(layer);
            return NB_ERR_NOMEM;
        }
        seq->items = items;
        seq->cap_items = cap;
    }
    seq->items[seq->n_items++] = layer;
    return NB_OK;
}

/* ------------------------------------------------------------- forward */

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

static nb_tensor *affine_forward(nb_layer *l, nb_graph *g, nb_tensor *x)
{
    char sx[96], sw[96];
    if (x->rank < 2 || x->rank > 3 || x->shape[x->rank - 1] != l->n_in) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s does not fit weight %s",
                  nbc_shp(x, sx, sizeof sx), nbc_shp(l->weight, sw, sizeof sw));
        return NULL;
    }
    if (!fits_dtype(g, l, x, l->weight))
        return NULL;
    nb_tensor *y = nb_matmul(g, x, l->weight, false, false);
    if (l->bias)
        y = nb_add(g, y, l->bias);
    return l->pieces > 1 ? nb_maxout(g, y, l->pieces) : y;
}

/* Inverted dropout: x·m/(1−p), m ~ Bernoulli(1−p) per element. */
static nb_tensor *dropout_forward(nb_layer *l, nb_graph *g, nb_tensor *x, bool training)
{
    if (!training || l->p == 0)
        return x;
    nb_tensor *mask = nbc_tensor_new(g, x->dtype, x->rank, x->shape, l->name);
    if (!mask)
        return NULL;
    double keep = 1 - l->p, scale = 1 / keep;
    for (int64_t i = 0; i < mask->size; i++)
        nb_tensor_set(mask, i, nb_rng_uniform(l->rng) < keep ? scale : 0);
    return nb_mul(g, x, mask);
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

static nb_tensor *batch_norm_forward(nb_layer *l, nb_graph *g, nb_tensor *x, bool training)
{
    char sx[96];
    if (x->rank != 2 || x->shape[1] != l->n_in) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s must be [N, %lld]", nbc_shp(x, sx, sizeof sx),
                  (long long)l->n_in);
        return NULL;
    }
    if (!fits_dtype(g, l, x, l->weight))
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
        running_update(l->running_mean, mean, l->momentum, 1);
        running_update(l->running_var, var, l->momentum, (double)n / (double)(n - 1));
    } else {
        mean = l->running_mean;
        var = l->running_var;
    }
    nb_tensor *xhat = nb_div(g, nb_sub(g, x, mean), nb_sqrt(g, nb_add_scalar(g, var, l->eps)));
    return nb_add(g, nb_mul(g, xhat, l->weight), l->bias);
}

nb_tensor *nb_layer_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    if (!l) {
        nbc_error(g, NB_ERR_NULL, "layer_forward", "layer is NULL");
        return NULL;
    }
    if (!x || !g)
        return NULL;
    switch (l->kind) {
    case NB_LAYER_LINEAR:
    case NB_LAYER_MAXOUT: return affine_forward(l, g, x);
    case NB_LAYER_ACTIVATION:
        if (!fits_dtype(g, l, x, l->param))
            return NULL;
        return nb_activate(g, l->act, x, &l->act_opts, l->param, l->rng, training);
    case NB_LAYER_DROPOUT: return dropout_forward(l, g, x, training);
    case NB_LAYER_BATCH_NORM: return batch_norm_forward(l, g, x, training);
    case NB_LAYER_SEQUENTIAL:
        for (int i = 0; i < l->n_items && x; i++)
            x = nb_layer_forward(g, l->items[i], x, training);
        return x;
    }
    return NULL;
}

nb_layer_kind nb_layer_get_kind(const nb_layer *l)
{
    return l ? l->kind : (nb_layer_kind)0;
}

const char *nb_layer_name(const nb_layer *l)
{
    return l ? l->name : "";
}

int nb_layer_count(const nb_layer *l)
{
    return l && l->kind == NB_LAYER_SEQUENTIAL ? l->n_items : 0;
}

nb_layer *nb_layer_at(const nb_layer *l, int i)
{
    return i >= 0 && i < nb_layer_count(l) ? l->items[i] : NULL;
}

nb_layer *nb_layer_find(const nb_layer *l, const char *name)
{
    if (!l || !name)
        return NULL;
    if (strcmp(l->name, name) == 0)
        return (nb_layer *)l;
    for (int i = 0; i < nb_layer_count(l); i++) {
        nb_layer *found = nb_layer_find(l->items[i], name);
        if (found)
            return found;
    }
    return NULL;
}

/* The width of what @p l gives for an input of width @p w (0: unknown). */
static int64_t out_width(const nb_layer *l, int64_t w)
{
    switch (l->kind) {
    case NB_LAYER_LINEAR:
    case NB_LAYER_MAXOUT:
    case NB_LAYER_BATCH_NORM: return l->n_out;
    case NB_LAYER_ACTIVATION: return l->act == NB_ACT_MAXOUT ? w / l->act_opts.pieces : w;
    case NB_LAYER_SEQUENTIAL:
        for (int i = 0; i < l->n_items; i++)
            w = out_width(l->items[i], w);
        return w;
    case NB_LAYER_DROPOUT: break;
    }
    return w;
}

nb_status nb_layer_get_info(const nb_layer *l, nb_layer_info *out)
{
    if (!l || !out)
        return NB_ERR_NULL;
    *out = (nb_layer_info){
        .kind = l->kind,
        .name = l->name,
        .n_in = l->n_in,
        .n_out = l->n_out,
        .pieces = l->pieces,
        .act = l->act,
        .act_opts = l->act_opts,
        .p = l->p,
        .eps = l->eps,
        .momentum = l->momentum,
        .n_items = l->n_items,
        .weight = l->weight,
        .bias = l->bias,
        .running_mean = l->running_mean,
        .running_var = l->running_var,
        .param = l->param,
    };
    if (l->param)
        out->n_in = out->n_out = l->param->size;
    if (l->kind == NB_LAYER_SEQUENTIAL && l->n_items > 0) {
        nb_layer_info first;
        nb_layer_get_info(l->items[0], &first);
        out->n_in = first.n_in;
        out->n_out = out_width(l, first.n_in);
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
    if (prefix && strlen(prefix) > NAME_MAX_LEN - 16)
        return NB_ERR_ARG;
    nb_act_opts ao = o->act_opts ? *o->act_opts : nb_act_defaults(o->act);
    nb_layer_opts lo = o->layer;
    nb_init hidden_init = lo.init;
    if (hidden_init == NB_INIT_AUTO)
        hidden_init = relu_family(o->act) ? NB_INIT_HE_UNIFORM : NB_INIT_XAVIER_UNIFORM;

    nb_layer *seq = NULL;
    nb_status st = model_layer_alloc(m, NB_LAYER_SEQUENTIAL, prefix ? prefix : "", &seq);
    if (st != NB_OK)
        return st;
    char name[NAME_MAX_LEN];
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
            const nb_tensor *gr = nb_tensor_grad(p);
            double s = 0;
            for (int64_t i = 0; gr && i < gr->size; i++) {
                double v = nb_tensor_get(gr, i);
                s += v * v;
            }
            out[count] = (nb_param_norm){name, sqrt(s)};
        }
        count++;
    }
    return count;
}
