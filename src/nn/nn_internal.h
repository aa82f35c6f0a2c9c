/* Helpers shared by the files of src/nn (prefix nbn_). Not installed. */
#ifndef NABLA_NN_INTERNAL_H
#define NABLA_NN_INTERNAL_H

#include "../core/internal.h"
#include "nabla/nn.h"

/* Longest layer name, its NUL included. */
#define NBN_NAME_MAX 96

/* A layer: its definition, name, generator, the parameters it added, its
 * sublayers and its state (def->state_size bytes). */
struct nb_layer {
    const nb_layer_def *def;
    char name[NBN_NAME_MAX];
    nb_alloc_fn alloc;
    void *ud;
    nb_rng *rng;
    nb_tensor **params;
    int n_params, cap_params;
    nb_layer **items;
    int n_items, cap_items;
    void *state;
    /* nb_layer_from_description's bound on parameter bytes (0: none), and
     * what the layer and those built before it have added */
    int64_t max_bytes, *bytes;
};

/* A new layer of @p def through the allocation hook (nb_layer_new's
 * checks). */
nb_status nbn_layer_make(nb_alloc_fn alloc, void *ud, const nb_layer_def *def, const char *name,
                         nb_rng *rng, nb_layer **out);
/* The same through @p m's allocation hook (a layer whose parameters live
 * in @p m). */
nb_status nbn_model_layer(nb_model *m, const nb_layer_def *def, const char *name, nb_rng *rng,
                          nb_layer **out);
/* A constructor's end: @p l into *out when @p st is NB_OK, else @p l freed
 * (NULL accepted). Returns @p st. */
nb_status nbn_finish(nb_layer *l, nb_status st, nb_layer **out);
/* The setting @p key of @p settings, an integer from @p lo to @p hi, into
 * *out; otherwise an error in @p err naming the layer, its kind and the
 * key (for a kind's build). */
nb_status nbn_need_i64(const nb_layer *l, const char *settings, const char *key, int64_t lo,
                       int64_t hi, int64_t *out, nb_error *err);
/* NB_OK when none of "<prefix>.<suffix[i]>" (i < n) is a parameter of @p m
 * yet, NB_ERR_EXISTS otherwise, NB_ERR_ARG for a name too long: checked
 * before a layer adds any, so a taken name adds nothing. */
nb_status nbn_names_free(const char *prefix, const nb_model *m, const char *const *suffix, int n);
/* The initialisation o->init asks for (@p fallback for NB_INIT_AUTO) into
 * *init: NB_ERR_ARG for an unknown one, NB_ERR_NULL for a random one
 * without o->rng. */
nb_status nbn_pick_init(const nb_layer_opts *o, nb_init fallback, nb_init *init);
/* nbn_pick_init, then the names "<layer>.weight" and (unless o->no_bias)
 * "<layer>.bias" free in @p m (nbn_names_free) */
nb_status nbn_weight_bias_ready(const nb_layer *l, const nb_model *m, const nb_layer_opts *o,
                                nb_init fallback, nb_init *init);
/* Whether @p name can name a layer (length, no space, '=' or line break). */
bool nbn_name_ok(const char *name);
/* Whether @p kind can name a kind (letters, digits, '_', '-'). */
bool nbn_kind_ok(const char *kind);

/* The library's definitions. */
extern const nb_layer_def nbn_linear_def, nbn_maxout_def, nbn_activation_def, nbn_dropout_def,
    nbn_batch_norm_def, nbn_sequential_def, nbn_reshape_def, nbn_gcn_def, nbn_layer_norm_def,
    nbn_embedding_def, nbn_conv2d_def, nbn_max_pool2d_def, nbn_avg_pool2d_def, nbn_flatten_def;
/* rnn, gru, lstm, rnn_cell, gru_cell, lstm_cell (rnn.c) */
extern const nb_layer_def nbn_rnn_defs[6];

/* conv2d and pooling layers' fields of nb_layer_info (conv_layers.c). */
void nbn_conv_info(const nb_layer *l, nb_layer_info *out);
/* A conv2d layer's map with activation @p act (nb_conv2d_fused), after the
 * checks of its forward; NULL with the error recorded in g. */
nb_tensor *nbn_conv_forward_act(nb_graph *g, nb_layer *l, nb_tensor *x, nb_linear_act act);

/* A rank-0 constant of x's dtype (NULL when x is NULL). */
nb_tensor *nbn_const(nb_graph *g, const nb_tensor *x, double v);
/* Sum or mean of every element of x as a rank-0 tensor. */
nb_tensor *nbn_reduce_all(nb_graph *g, nb_tensor *x, nb_reduction r, const char *op);

#endif
