/* Recurrent layers from primitives: Elman RNN, GRU and LSTM cells with
 * PyTorch's gate layout and weight names, and the layers that unroll them
 * over a [N, T, F] input (back-propagation through time, optionally
 * truncated). Every step is ordinary ops, so gradients of any order and
 * forward mode follow from the ops' rules. */

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

/* The settings and parameters of a recurrent layer or cell. */
typedef struct rnn {
    nb_rnn_kind kind;
    int64_t n_in, hidden;
    bool bias, all_steps, cell;
    int64_t truncate;
    nb_act act; /* Elman's nonlinearity */
    nb_tensor *w_ih, *w_hh, *b_ih, *b_hh;
} rnn;

static const char *const KIND_NAME[] = {"rnn", "gru", "lstm"};

/* Gates stacked in the weights: Elman 1, GRU 3 (r, z, n), LSTM 4 (i, f, g, o). */
static int64_t gates(nb_rnn_kind k)
{
    return k == NB_RNN_LSTM ? 4 : k == NB_RNN_GRU ? 3 : 1;
}

nb_rnn_opts nb_rnn_defaults(void)
{
    return (nb_rnn_opts){.layer = {.dtype = NB_F32, .init = NB_INIT_AUTO}, .act = NB_ACT_TANH};
}

/* ------------------------------------------------------------- building */

/* The parameters of @p r (kind, sizes, bias set) in @p l, filled as @p o says. */
static nb_status rnn_params(nb_layer *l, nb_model *m, rnn *r, const nb_layer_opts *o)
{
    int64_t gh = gates(r->kind) * r->hidden;
    const char *sfx = r->cell ? "" : "_l0";
    char name[4][32];
    snprintf(name[0], sizeof name[0], "weight_ih%s", sfx);
    snprintf(name[1], sizeof name[1], "weight_hh%s", sfx);
    snprintf(name[2], sizeof name[2], "bias_ih%s", sfx);
    snprintf(name[3], sizeof name[3], "bias_hh%s", sfx);
    int64_t shape[4][2] = {{gh, r->n_in}, {gh, r->hidden}, {gh, 0}, {gh, 0}};
    nb_tensor **p[4] = {&r->w_ih, &r->w_hh, &r->b_ih, &r->b_hh};
    /* every name free first, so a taken one adds nothing */
    const char *const taken[4] = {name[0], name[1], name[2], name[3]};
    nb_status free_st = nbn_names_free(nb_layer_name(l), m, taken, r->bias ? 4 : 2);
    if (free_st != NB_OK)
        return free_st;
    for (int i = 0; i < (r->bias ? 4 : 2); i++) {
        nb_status st = nb_layer_add_param(l, m, name[i], o->dtype, i < 2 ? 2 : 1, shape[i], p[i]);
        if (st != NB_OK)
            return st;
    }
    /* PyTorch's U(±1/√hidden) for every weight and bias, or o->init for the
     * weights (fans: the input and hidden widths, the stacked gates) */
    double k = 1 / sqrt((double)r->hidden);
    for (int i = 0; i < (r->bias ? 4 : 2); i++) {
        nb_tensor *t = *p[i];
        if (o->init == NB_INIT_AUTO) {
            for (int64_t j = 0; j < nb_tensor_size(t); j++)
                nb_tensor_set(t, j, -k + 2 * k * nb_rng_uniform(o->rng));
        } else if (i < 2) {
            nb_status st = nb_init_tensor_fans(t, o->init, o->init_scale, i ? r->hidden : r->n_in,
                                               gh, o->rng);
            if (st != NB_OK)
                return st;
        }
    }
    return NB_OK;
}

static const nb_layer_def *def_of(nb_rnn_kind kind, bool cell);

static nb_status rnn_make(nb_model *m, const char *name, nb_rnn_kind kind, bool cell, int64_t n_in,
                          int64_t hidden, const nb_rnn_opts *o, nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m || !name || !out)
        return NB_ERR_NULL;
    nb_rnn_opts def = nb_rnn_defaults();
    if (!o)
        o = &def;
    if (o->layer.dtype != NB_F32 && o->layer.dtype != NB_F64)
        return NB_ERR_DTYPE;
    if ((int)kind < 0 || kind > NB_RNN_LSTM || n_in < 1 || hidden < 1 || n_in > INT32_MAX ||
        hidden > INT32_MAX / 4 || o->truncate < 0 ||
        (kind == NB_RNN_ELMAN && o->act != NB_ACT_TANH && o->act != NB_ACT_RELU))
        return NB_ERR_ARG;
    nb_init init = o->layer.init;
    if ((int)init < NB_INIT_AUTO || init >= NB_INIT_COUNT)
        return NB_ERR_ARG;
    if ((init == NB_INIT_AUTO || init >= NB_INIT_SMALL_NORMAL) && !o->layer.rng)
        return NB_ERR_NULL;
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, def_of(kind, cell), name, o->layer.rng, &l);
    if (st != NB_OK)
        return st;
    rnn *r = l->state;
    *r = (rnn){.kind = kind,
               .n_in = n_in,
               .hidden = hidden,
               .bias = !o->layer.no_bias,
               .all_steps = o->all_steps && !cell,
               .cell = cell,
               .truncate = cell ? 0 : o->truncate,
               .act = kind == NB_RNN_ELMAN ? o->act : NB_ACT_TANH};
    st = rnn_params(l, m, r, &o->layer);
    return nbn_finish(l, st, out);
}

nb_status nb_rnn_new(nb_model *m, const char *name, nb_rnn_kind kind, int64_t n_in, int64_t hidden,
                     const nb_rnn_opts *o, nb_layer **out)
{
    return rnn_make(m, name, kind, false, n_in, hidden, o, out);
}

nb_status nb_rnn_cell_new(nb_model *m, const char *name, nb_rnn_kind kind, int64_t n_in,
                          int64_t hidden, const nb_rnn_opts *o, nb_layer **out)
{
    return rnn_make(m, name, kind, true, n_in, hidden, o, out);
}

/* ----------------------------------------------------------------- steps */

/* One step from the input's projection @p xp ([N, G·H]: x·W_ihᵀ with the
 * biases that can be added there) and the state h (NULL: zeros), c (LSTM;
 * NULL: zeros). The new cell state goes to *c_out (LSTM). */
static nb_tensor *step(nb_graph *g, const rnn *r, nb_tensor *xp, nb_tensor *h, nb_tensor *c,
                       nb_tensor **c_out)
{
    int64_t H = r->hidden;
    /* h·W_hhᵀ (+ b_hh for the GRU, whose candidate needs it apart) */
    nb_tensor *hp = h ? nb_matmul(g, h, r->w_hh, false, true) : NULL;
    if (r->kind == NB_RNN_GRU && r->b_hh) /* from a zero state: b_hh alone */
        hp = hp ? nb_add(g, hp, r->b_hh) : r->b_hh;
    switch (r->kind) {
    case NB_RNN_ELMAN: {
        nb_tensor *a = hp ? nb_add(g, xp, hp) : xp;
        return r->act == NB_ACT_RELU ? nb_relu(g, a) : nb_tanh(g, a);
    }
    case NB_RNN_GRU: {
        /* r, z = σ(x_rz + h_rz); n = tanh(x_n + r ⊙ h_n); h' = n + z ⊙ (h − n) */
        nb_tensor *xrz = nb_slice(g, xp, -1, 0, 2 * H, 1);
        nb_tensor *rz = nb_sigmoid(g, hp ? nb_add(g, xrz, nb_slice(g, hp, -1, 0, 2 * H, 1)) : xrz);
        nb_tensor *rg = nb_slice(g, rz, -1, 0, H, 1), *z = nb_slice(g, rz, -1, H, 2 * H, 1);
        nb_tensor *xn = nb_slice(g, xp, -1, 2 * H, 3 * H, 1);
        nb_tensor *hn = hp ? nb_slice(g, hp, -1, 2 * H, 3 * H, 1) : NULL;
        nb_tensor *n = nb_tanh(g, hn ? nb_add(g, xn, nb_mul(g, rg, hn)) : xn);
        return h ? nb_add(g, n, nb_mul(g, z, nb_sub(g, h, n))) : nb_sub(g, n, nb_mul(g, z, n));
    }
    case NB_RNN_LSTM: {
        /* i, f, o = σ(.), g = tanh(.); c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c') */
        nb_tensor *a = hp ? nb_add(g, xp, hp) : xp;
        nb_tensor *i = nb_sigmoid(g, nb_slice(g, a, -1, 0, H, 1));
        nb_tensor *gg = nb_tanh(g, nb_slice(g, a, -1, 2 * H, 3 * H, 1));
        nb_tensor *o = nb_sigmoid(g, nb_slice(g, a, -1, 3 * H, 4 * H, 1));
        nb_tensor *ig = nb_mul(g, i, gg);
        nb_tensor *c2 = ig;
        if (c) {
            nb_tensor *f = nb_sigmoid(g, nb_slice(g, a, -1, H, 2 * H, 1));
            c2 = nb_add(g, nb_mul(g, f, c), ig);
        }
        *c_out = c2;
        return nb_mul(g, o, nb_tanh(g, c2));
    }
    }
    return NULL;
}

/* The biases added to the input's projection: b_ih, and b_hh too except
 * for the GRU (NULL: none). */
static nb_tensor *input_bias(nb_graph *g, const rnn *r)
{
    if (!r->b_ih)
        return NULL;
    return r->kind == NB_RNN_GRU ? r->b_ih : nb_add(g, r->b_ih, r->b_hh);
}

/* Whether @p x (rank @p rank, last axis n_in, of the weights' dtype) fits. */
static bool fits(nb_graph *g, const nb_layer *l, const rnn *r, const nb_tensor *x, int rank)
{
    char sx[96];
    if (x->rank != rank || x->shape[rank - 1] != r->n_in || (rank == 3 && x->shape[1] < 1)) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s must be %s%lld] (%s %s)",
                  nbc_shp(x, sx, sizeof sx), rank == 3 ? "[N, T, " : "[N, ", (long long)r->n_in,
                  l->def->kind, rank == 3 ? "over T >= 1 steps" : "step");
        return false;
    }
    if (x->dtype != r->w_ih->dtype) {
        nbc_error(g, NB_ERR_DTYPE, l->name, "input is %s but the parameters are %s",
                  nb_dtype_name(x->dtype), nb_dtype_name(r->w_ih->dtype));
        return false;
    }
    return true;
}

/* Whether state @p s (NULL allowed) is [N, H] of the weights' dtype. */
static bool fits_state(nb_graph *g, const nb_layer *l, const rnn *r, const nb_tensor *s,
                       int64_t n, const char *what)
{
    char ss[96];
    if (s && (s->rank != 2 || s->shape[0] != n || s->shape[1] != r->hidden ||
              s->dtype != r->w_ih->dtype)) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "%s %s (%s) must be [%lld, %lld] %s", what,
                  nbc_shp(s, ss, sizeof ss), nb_dtype_name(s->dtype), (long long)n,
                  (long long)r->hidden, nb_dtype_name(r->w_ih->dtype));
        return false;
    }
    return true;
}

nb_tensor *nb_rnn_cell_step(nb_graph *g, nb_layer *cell, nb_tensor *x, nb_tensor *h, nb_tensor *c,
                            nb_tensor **c_out)
{
    if (c_out)
        *c_out = NULL;
    if (!g)
        return NULL;
    const nb_layer_def *d = nb_layer_get_def(cell);
    if (!cell || !x || d < &nbn_rnn_defs[3] || d > &nbn_rnn_defs[5]) {
        nbc_error(g, cell && x ? NB_ERR_ARG : NB_ERR_NULL, "rnn_cell_step",
                  cell && x ? "layer '%s' is not a recurrent cell" : "%s is NULL",
                  cell && x ? cell->name : !cell ? "the cell" : "the input");
        return NULL;
    }
    const rnn *r = cell->state;
    if (r->kind == NB_RNN_LSTM && !c_out) {
        nbc_error(g, NB_ERR_NULL, cell->name, "an LSTM step gives its cell state: c_out is NULL");
        return NULL;
    }
    if (!fits(g, cell, r, x, 2) || !fits_state(g, cell, r, h, x->shape[0], "state h") ||
        (r->kind == NB_RNN_LSTM && !fits_state(g, cell, r, c, x->shape[0], "state c")))
        return NULL;
    nb_tensor *xp = nb_matmul(g, x, r->w_ih, false, true);
    nb_tensor *b = input_bias(g, r);
    if (b)
        xp = nb_add(g, xp, b);
    nb_tensor *dummy = NULL;
    return step(g, r, xp, h, r->kind == NB_RNN_LSTM ? c : NULL, c_out ? c_out : &dummy);
}

/* ---------------------------------------------------------------- layers */

static nb_tensor *cell_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    nb_tensor *c = NULL;
    return nb_rnn_cell_step(g, l, x, NULL, NULL, &c);
}

/* Unroll over the T steps of x [N, T, F]: each step's input projected by
 * its own product (slicing a projection of all steps instead would give
 * each step's gradient the size of all of them), then one cell step;
 * gradients cut every r->truncate steps when asked. */
static nb_tensor *seq_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const rnn *r = l->state;
    if (!fits(g, l, r, x, 3))
        return NULL;
    int64_t T = x->shape[1];
    nb_tensor *b = input_bias(g, r);
    nb_tensor *h = NULL, *c = NULL;
    nb_tensor **hs = NULL;
    if (r->all_steps) {
        hs = nbc_alloc(g, (size_t)T * sizeof *hs, l->name);
        if (!hs)
            return NULL;
    }
    for (int64_t t = 0; t < T && nb_graph_status(g) == NB_OK; t++) {
        if (r->truncate > 0 && t > 0 && t % r->truncate == 0) {
            h = nb_stop_gradient(g, h);
            c = c ? nb_stop_gradient(g, c) : NULL;
        }
        nb_tensor *x_t = nb_select(g, x, 1, t);
        nb_tensor *xp = nb_matmul(g, x_t, r->w_ih, false, true);
        if (b)
            xp = nb_add(g, xp, b);
        nb_tensor *c2 = NULL;
        h = step(g, r, xp, h, c, &c2);
        c = c2;
        if (hs)
            hs[t] = h;
    }
    if (nb_graph_status(g) != NB_OK)
        return NULL;
    return hs ? nb_stack(g, hs, (int)T, 1) : h;
}

static int64_t rnn_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const rnn *)l->state)->hidden;
}

static nb_status rnn_describe(const nb_layer *l, char *out, size_t cap)
{
    const rnn *r = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "in", "%lld", (long long)r->n_in);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "hidden", "%lld", (long long)r->hidden);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "bias", "%d", r->bias ? 1 : 0);
    if (st == NB_OK && r->kind == NB_RNN_ELMAN)
        st = nb_layer_setting_put(out, cap, "act", "%s", nb_act_name(r->act));
    if (st == NB_OK && !r->cell)
        st = nb_layer_setting_put(out, cap, "all_steps", "%d", r->all_steps ? 1 : 0);
    if (st == NB_OK && !r->cell)
        st = nb_layer_setting_put(out, cap, "truncate", "%lld", (long long)r->truncate);
    return st;
}

static nb_status rnn_build(nb_layer *l, nb_model *m, const char *settings, const nb_layer_opts *o,
                           nb_error *err)
{
    rnn *r = l->state;
    const nb_layer_def *d = l->def;
    for (int k = 0; k < 3; k++)
        for (int c = 0; c < 2; c++)
            if (def_of((nb_rnn_kind)k, c) == d)
                r->kind = (nb_rnn_kind)k, r->cell = c;
    int64_t bias, all = 0;
    nb_status st = nbn_need_i64(l, settings, "in", 1, INT32_MAX, &r->n_in, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "hidden", 1, INT32_MAX / 4, &r->hidden, err);
    if (st == NB_OK)
        st = nbn_need_i64(l, settings, "bias", 0, 1, &bias, err);
    if (st == NB_OK && !r->cell)
        st = nbn_need_i64(l, settings, "all_steps", 0, 1, &all, err);
    if (st == NB_OK && !r->cell)
        st = nbn_need_i64(l, settings, "truncate", 0, INT32_MAX, &r->truncate, err);
    r->act = NB_ACT_TANH;
    if (st == NB_OK && r->kind == NB_RNN_ELMAN) {
        char a[16];
        if (nb_layer_setting_get(settings, "act", a, sizeof a) != NB_OK ||
            nb_act_from_name(a, &r->act) != NB_OK ||
            (r->act != NB_ACT_TANH && r->act != NB_ACT_RELU))
            st = nbc_error_at(err, NB_ERR_ARG, "nb_layer_from_description", -1, l->name,
                              "layer '%s' (%s): act= is missing or not tanh or relu", l->name,
                              d->kind);
    }
    if (st != NB_OK)
        return st;
    r->bias = bias == 1;
    r->all_steps = all == 1;
    nb_layer_opts lo = *o;
    if (lo.init == NB_INIT_AUTO && !lo.rng)
        lo.init = NB_INIT_ZEROS;
    st = rnn_params(l, m, r, &lo);
    if (st != NB_OK)
        return nbc_error_at(err, st, "nb_layer_from_description", -1, l->name,
                            "layer '%s' (%s): its parameters could not be added: %s", l->name,
                            d->kind,
                            st == NB_ERR_EXISTS ? "a name is taken"
                            : st == NB_ERR_ARG  ? "sizes too large, or past the bound on bytes"
                                                : nb_status_str(st));
    return NB_OK;
}

#define RNN_DEF(name_, forward_)                                                                   \
    {                                                                                              \
        .kind = name_, .state_size = sizeof(rnn), .forward = forward_, .out_width = rnn_width,     \
        .describe = rnn_describe, .build = rnn_build,                                              \
    }

const nb_layer_def nbn_rnn_defs[6] = {
    RNN_DEF("rnn", seq_forward),       RNN_DEF("gru", seq_forward),
    RNN_DEF("lstm", seq_forward),      RNN_DEF("rnn_cell", cell_forward),
    RNN_DEF("gru_cell", cell_forward), RNN_DEF("lstm_cell", cell_forward),
};

static const nb_layer_def *def_of(nb_rnn_kind kind, bool cell)
{
    return &nbn_rnn_defs[(cell ? 3 : 0) + (int)kind];
}

const char *nb_rnn_kind_name(nb_rnn_kind kind)
{
    return (int)kind >= 0 && kind <= NB_RNN_LSTM ? KIND_NAME[kind] : "?";
}

nb_status nb_rnn_get_info(const nb_layer *l, nb_rnn_info *out)
{
    if (!l || !out)
        return NB_ERR_NULL;
    const nb_layer_def *d = nb_layer_get_def(l);
    if (d < nbn_rnn_defs || d >= nbn_rnn_defs + 6)
        return NB_ERR_ARG;
    const rnn *r = l->state;
    *out = (nb_rnn_info){.kind = r->kind,
                         .cell = r->cell,
                         .n_in = r->n_in,
                         .hidden = r->hidden,
                         .bias = r->bias,
                         .all_steps = r->all_steps,
                         .truncate = r->truncate,
                         .act = r->act,
                         .weight_ih = r->w_ih,
                         .weight_hh = r->w_hh,
                         .bias_ih = r->b_ih,
                         .bias_hh = r->b_hh};
    return NB_OK;
}
