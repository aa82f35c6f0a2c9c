/* Layers of convolutional networks: a 2-D convolution with its bias, max
 * and average pooling, and flattening, each an nb_layer_def over the
 * primitives nb_conv2d, nb_max_pool2d and nb_avg_pool2d (NCHW). */

#include "nn_internal.h"

#include <stdio.h>

static const char *const BUILD = "nb_layer_from_description";

/* out = ⌊(in + 2·pad − span) / stride⌋ + 1 where span ≤ in + 2·pad, or −1
 * when the window does not fit (the op then names the shapes). */
static int64_t window_out(int64_t in, int64_t pad, int64_t span, int64_t stride)
{
    int64_t room = in + 2 * pad - span;
    return in < 1 || room < 0 ? -1 : room / stride + 1;
}

/* ----------------------------------------------------------- conv2d */

typedef struct conv_layer {
    int64_t c_in, c_out, kernel[2];
    nb_conv_opts o;
    nb_tensor *weight, *bias;
} conv_layer;

/* Whether the sizes and settings make a convolution (NB_OK or NB_ERR_ARG). */
static nb_status conv_check(int64_t c_in, int64_t c_out, const int64_t k[2],
                            const nb_conv_opts *co)
{
    const int64_t big = INT32_MAX;
    bool ok = c_in >= 1 && c_out >= 1 && c_in <= big && c_out <= big && co->groups >= 1 &&
              c_in % co->groups == 0 && c_out % co->groups == 0;
    for (int a = 0; a < 2; a++)
        ok = ok && k[a] >= 1 && k[a] <= 1 << 16 && co->stride[a] >= 1 && co->stride[a] <= big &&
             co->padding[a] >= 0 && co->padding[a] <= big && co->dilation[a] >= 1 &&
             co->dilation[a] <= 1 << 16;
    int64_t n = 0;
    return ok && !nbc_mul_overflows(c_out, c_in / co->groups * k[0] * k[1], &n) ? NB_OK
                                                                                : NB_ERR_ARG;
}

static nb_status conv_init(nb_layer *l, nb_model *m, int64_t c_in, int64_t c_out,
                           const int64_t k[2], const nb_conv_opts *co, const nb_layer_opts *o)
{
    if (o->dtype != NB_F32 && o->dtype != NB_F64)
        return NB_ERR_DTYPE;
    if (conv_check(c_in, c_out, k, co) != NB_OK)
        return NB_ERR_ARG;
    nb_init init;
    nb_status st = nbn_weight_bias_ready(l, m, o, NB_INIT_HE_UNIFORM, &init);
    if (st != NB_OK)
        return st;
    conv_layer *c = l->state;
    int64_t cg = c_in / co->groups, shape[4] = {c_out, cg, k[0], k[1]};
    st = nb_layer_add_param(l, m, "weight", o->dtype, 4, shape, &c->weight);
    if (st == NB_OK && !o->no_bias)
        st = nb_layer_add_param(l, m, "bias", o->dtype, 1, &c_out, &c->bias);
    /* fans as PyTorch counts them for a convolution: the taps one output
     * sees (C/groups·KH·KW) and the taps one input feeds (O/groups·KH·KW) */
    if (st == NB_OK)
        st = nb_init_tensor_fans(c->weight, init, o->init_scale, cg * k[0] * k[1],
                                 c_out / co->groups * k[0] * k[1], o->rng);
    if (st != NB_OK)
        return st;
    c->c_in = c_in;
    c->c_out = c_out;
    c->kernel[0] = k[0];
    c->kernel[1] = k[1];
    c->o = *co;
    return NB_OK;
}

nb_status nb_conv2d_new(nb_model *m, const char *name, int64_t c_in, int64_t c_out, int64_t kh,
                        int64_t kw, const nb_conv_opts *co, const nb_layer_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    nb_conv_opts def_co = nb_conv_defaults();
    nb_layer_opts def_o = {0};
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, &nbn_conv2d_def, name, o ? o->rng : NULL, &l);
    if (st == NB_OK)
        st = conv_init(l, m, c_in, c_out, (const int64_t[]){kh, kw}, co ? co : &def_co,
                       o ? o : &def_o);
    return nbn_finish(l, st, out);
}

/* conv2d(x, W) + b, then act: one op (nb_conv2d_fused) */
nb_tensor *nbn_conv_forward_act(nb_graph *g, nb_layer *l, nb_tensor *x, nb_linear_act act)
{
    const conv_layer *c = l->state;
    char sx[96], sw[96];
    if (x->rank != 4 || x->shape[1] != c->c_in) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s is not [N, %lld, H, W] for weight %s",
                  nbc_shp(x, sx, sizeof sx), (long long)c->c_in,
                  nbc_shp(c->weight, sw, sizeof sw));
        return NULL;
    }
    if (x->dtype != c->weight->dtype) {
        nbc_error(g, NB_ERR_DTYPE, l->name, "input is %s but the parameters are %s",
                  nb_dtype_name(x->dtype), nb_dtype_name(c->weight->dtype));
        return NULL;
    }
    return nb_conv2d_fused(g, x, c->weight, c->bias, &c->o, act);
}

static nb_tensor *conv_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    return nbn_conv_forward_act(g, l, x, NB_LINEAR_IDENTITY);
}

static int64_t conv_width(const nb_layer *l, int64_t w)
{
    const conv_layer *c = l->state;
    return window_out(w, c->o.padding[1], c->o.dilation[1] * (c->kernel[1] - 1) + 1,
                      c->o.stride[1]);
}

/* " key=<a>x<b>" appended, unless @p st already failed. */
static nb_status put_pair(nb_status st, char *out, size_t cap, const char *key, const int64_t v[2])
{
    return st != NB_OK ? st
                       : nb_layer_setting_put(out, cap, key, "%lldx%lld", (long long)v[0],
                                              (long long)v[1]);
}

static nb_status conv_describe(const nb_layer *l, char *out, size_t cap)
{
    const conv_layer *c = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "in", "%lld", (long long)c->c_in);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "out", "%lld", (long long)c->c_out);
    st = put_pair(st, out, cap, "kernel", c->kernel);
    st = put_pair(st, out, cap, "stride", c->o.stride);
    st = put_pair(st, out, cap, "padding", c->o.padding);
    st = put_pair(st, out, cap, "dilation", c->o.dilation);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "groups", "%lld", (long long)c->o.groups);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "bias", "%d", c->bias ? 1 : 0);
    return st;
}

/* The setting @p key of the form "<a>x<b>" (whole numbers from @p lo to
 * 2^31 − 1) into v[0], v[1]. */
static nb_status need_pair(const nb_layer *l, const char *settings, const char *key, int64_t lo,
                           int64_t v[2], nb_error *err)
{
    char buf[64];
    nb_status st = nb_layer_setting_get(settings, key, buf, sizeof buf);
    long long a = -1, b = -1;
    int used = 0;
    if (st == NB_OK && (sscanf(buf, "%lld x %lld%n", &a, &b, &used) != 2 || buf[used] ||
                        buf[0] == '-' || a < lo || b < lo || a > INT32_MAX || b > INT32_MAX))
        st = NB_ERR_PARSE;
    if (st == NB_OK) {
        v[0] = a;
        v[1] = b;
        return NB_OK;
    }
    return nbc_error_at(err, st == NB_ERR_NOTFOUND ? st : NB_ERR_ARG, BUILD, -1, l->name,
                        "layer '%s' (%s): %s= is %s (two whole numbers >= %lld like 3x3)",
                        l->name, l->def->kind, key, st == NB_ERR_NOTFOUND ? "missing" : "not valid",
                        (long long)lo);
}

static nb_status conv_build(nb_layer *l, nb_model *m, const char *settings,
                            const nb_layer_opts *o, nb_error *err)
{
    int64_t c_in, c_out, k[2], bias;
    nb_conv_opts co = nb_conv_defaults();
    nb_status st = nbn_need_i64(l, settings, "in", 1, INT32_MAX, &c_in, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "out", 1, INT32_MAX, &c_out, err);
    if (st == NB_OK)
        st = need_pair(l, settings, "kernel", 1, k, err);
    if (st == NB_OK)
        st = need_pair(l, settings, "stride", 1, co.stride, err);
    if (st == NB_OK)
        st = need_pair(l, settings, "padding", 0, co.padding, err);
    if (st == NB_OK)
        st = need_pair(l, settings, "dilation", 1, co.dilation, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "groups", 1, INT32_MAX, &co.groups, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "bias", 0, 1, &bias, err);
    if (st != NB_OK)
        return st;
    nb_layer_opts lo = *o;
    lo.no_bias = !bias;
    st = conv_init(l, m, c_in, c_out, k, &co, &lo);
    if (st == NB_OK)
        return NB_OK;
    return nbc_error_at(err, st, BUILD, -1, l->name,
                        "layer '%s' (conv2d): %s", l->name,
                        st == NB_ERR_ARG      ? "sizes that make no convolution (channels not "
                                                "divisible by groups, or too large), or past "
                                                "the bound on bytes"
                        : st == NB_ERR_EXISTS ? "its parameters could not be added: a name is "
                                                "taken"
                                              : nb_status_str(st));
}

const nb_layer_def nbn_conv2d_def = {
    .kind = "conv2d",
    .state_size = sizeof(conv_layer),
    .forward = conv_forward,
    .out_width = conv_width,
    .describe = conv_describe,
    .build = conv_build,
};

/* ---------------------------------------------------------- pooling */

typedef struct pool_layer {
    nb_pool2d_opts o;
} pool_layer;

static nb_status pool_check(const nb_pool2d_opts *po)
{
    for (int a = 0; a < 2; a++)
        if (po->kernel[a] < 1 || po->kernel[a] > 1 << 16 || po->stride[a] < 1 ||
            po->stride[a] > INT32_MAX || po->padding[a] < 0 || po->padding[a] > po->kernel[a] / 2)
            return NB_ERR_ARG;
    return NB_OK;
}

static nb_status pool_new(const nb_layer_def *def, const char *name, const nb_pool2d_opts *po,
                          nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!name || !po || !out)
        return NB_ERR_NULL;
    if (pool_check(po) != NB_OK)
        return NB_ERR_ARG;
    nb_status st = nbn_layer_make(nb_default_alloc, NULL, def, name, NULL, out);
    if (st == NB_OK)
        ((pool_layer *)(*out)->state)->o = *po;
    return st;
}

nb_status nb_max_pool2d_new(const char *name, const nb_pool2d_opts *po, nb_layer **out)
{
    return pool_new(&nbn_max_pool2d_def, name, po, out);
}

nb_status nb_avg_pool2d_new(const char *name, const nb_pool2d_opts *po, nb_layer **out)
{
    return pool_new(&nbn_avg_pool2d_def, name, po, out);
}

static nb_tensor *pool_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const pool_layer *p = l->state;
    return l->def == &nbn_max_pool2d_def ? nb_max_pool2d(g, x, &p->o) : nb_avg_pool2d(g, x, &p->o);
}

static int64_t pool_width(const nb_layer *l, int64_t w)
{
    const nb_pool2d_opts *o = &((const pool_layer *)l->state)->o;
    return window_out(w, o->padding[1], o->kernel[1], o->stride[1]);
}

static nb_status pool_describe(const nb_layer *l, char *out, size_t cap)
{
    const nb_pool2d_opts *o = &((const pool_layer *)l->state)->o;
    nb_status st = put_pair(NB_OK, out, cap, "kernel", o->kernel);
    st = put_pair(st, out, cap, "stride", o->stride);
    return put_pair(st, out, cap, "padding", o->padding);
}

static nb_status pool_build(nb_layer *l, nb_model *m, const char *settings,
                            const nb_layer_opts *o, nb_error *err)
{
    (void)m, (void)o;
    nb_pool2d_opts po;
    nb_status st = need_pair(l, settings, "kernel", 1, po.kernel, err);
    if (st == NB_OK)
        st = need_pair(l, settings, "stride", 1, po.stride, err);
    if (st == NB_OK)
        st = need_pair(l, settings, "padding", 0, po.padding, err);
    if (st == NB_OK && pool_check(&po) != NB_OK)
        st = nbc_error_at(err, NB_ERR_ARG, BUILD, -1, l->name,
                          "layer '%s' (%s): a window of %lldx%lld with padding %lldx%lld "
                          "(padding is at most half the kernel)",
                          l->name, l->def->kind, (long long)po.kernel[0],
                          (long long)po.kernel[1], (long long)po.padding[0],
                          (long long)po.padding[1]);
    if (st == NB_OK)
        ((pool_layer *)l->state)->o = po;
    return st;
}

const nb_layer_def nbn_max_pool2d_def = {
    .kind = "max_pool2d",
    .state_size = sizeof(pool_layer),
    .forward = pool_forward,
    .out_width = pool_width,
    .describe = pool_describe,
    .build = pool_build,
};

const nb_layer_def nbn_avg_pool2d_def = {
    .kind = "avg_pool2d",
    .state_size = sizeof(pool_layer),
    .forward = pool_forward,
    .out_width = pool_width,
    .describe = pool_describe,
    .build = pool_build,
};

/* ---------------------------------------------------------- flatten */

nb_status nb_flatten_new(const char *name, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!name || !out)
        return NB_ERR_NULL;
    return nbn_layer_make(nb_default_alloc, NULL, &nbn_flatten_def, name, NULL, out);
}

/* [N, ...] to [N, the product of the rest] */
static nb_tensor *flatten_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    char sx[96];
    if (x->rank < 1) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s has no batch axis",
                  nbc_shp(x, sx, sizeof sx));
        return NULL;
    }
    int64_t per = 1;
    for (int i = 1; i < x->rank; i++)
        per *= x->shape[i];
    return nb_reshape(g, x, 2, (const int64_t[]){x->shape[0], per});
}

/* The width depends on every axis, not the last alone: not known here. */
static int64_t flatten_width(const nb_layer *l, int64_t w)
{
    (void)l, (void)w;
    return -1;
}

static nb_status flatten_describe(const nb_layer *l, char *out, size_t cap)
{
    (void)l, (void)out, (void)cap;
    return NB_OK;
}

static nb_status flatten_build(nb_layer *l, nb_model *m, const char *settings,
                               const nb_layer_opts *o, nb_error *err)
{
    (void)l, (void)m, (void)settings, (void)o, (void)err;
    return NB_OK;
}

const nb_layer_def nbn_flatten_def = {
    .kind = "flatten",
    .forward = flatten_forward,
    .out_width = flatten_width,
    .describe = flatten_describe,
    .build = flatten_build,
};

/* ------------------------------------------------------------- info */

void nbn_conv_info(const nb_layer *l, nb_layer_info *out)
{
    if (l->def == &nbn_conv2d_def) {
        const conv_layer *c = l->state;
        out->n_in = c->c_in;
        out->n_out = c->c_out;
        out->weight = c->weight;
        out->bias = c->bias;
        out->conv = c->o;
        out->kernel[0] = c->kernel[0];
        out->kernel[1] = c->kernel[1];
    } else if (l->def == &nbn_max_pool2d_def || l->def == &nbn_avg_pool2d_def) {
        const nb_pool2d_opts *o = &((const pool_layer *)l->state)->o;
        out->pool = *o;
        out->kernel[0] = o->kernel[0];
        out->kernel[1] = o->kernel[1];
    }
}
