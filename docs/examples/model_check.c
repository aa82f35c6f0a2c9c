/* Checking a whole model (docs/gradcheck.md, "Checking a whole model"): a
 * network holding a layer of the program's own is checked against every
 * parameter of its model, in f64 on a twin of the f32 network; the same
 * layer with a gradient bug is caught and its parameter named; a network
 * of dead units gets a warning, not a pass. The suite runs this program
 * and checks that the page shows its code and its output. */

#include <stdio.h>
#include <string.h>

#include "nabla.h"

/* A per-feature scale and shift, y = x·γ + β (docs/nn.md's affine1). */
typedef struct affine1 {
    int64_t n;
    nb_tensor *gamma, *beta;
} affine1;

static nb_tensor *affine1_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    affine1 *a = nb_layer_state(l);
    return (void)training, nb_add(g, nb_mul(g, x, a->gamma), a->beta);
}

/* --- the bug --- */
static nb_tensor *affine1_buggy_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    affine1 *a = nb_layer_state(l);
    nb_tensor *gamma = nb_stop_gradient(g, a->gamma); /* the same value, no gradient */
    return (void)training, nb_add(g, nb_mul(g, x, gamma), a->beta);
}
/* --- end of the bug --- */

static nb_status affine1_describe(const nb_layer *l, char *out, size_t cap)
{
    return nb_layer_setting_put(out, cap, "n", "%lld",
                                (long long)((const affine1 *)nb_layer_state(l))->n);
}

static nb_status affine1_build(nb_layer *l, nb_model *m, const char *settings,
                               const nb_layer_opts *o, nb_error *err)
{
    affine1 *a = nb_layer_state(l);
    if (nb_layer_setting_get_i64(settings, "n", &a->n) != NB_OK || a->n < 1)
        return nb_error_set(err, NB_ERR_PARSE, nb_layer_name(l), "n= is not a width");
    nb_status st = nb_layer_add_param(l, m, "gamma", o->dtype, 1, &a->n, &a->gamma);
    return st == NB_OK ? nb_layer_add_param(l, m, "beta", o->dtype, 1, &a->n, &a->beta) : st;
}

static const nb_layer_def affine1_def = {
    .kind = "affine1",
    .state_size = sizeof(affine1),
    .forward = affine1_forward,
    .describe = affine1_describe,
    .build = affine1_build,
};

static const nb_layer_def affine1_buggy_def = {
    .kind = "affine1_buggy",
    .state_size = sizeof(affine1),
    .forward = affine1_buggy_forward,
    .describe = affine1_describe,
    .build = affine1_build,
};

/* fc1 (8 -> 6), the layer "scale", tanh, fc2 (6 -> 3); f32, random values. */
static nb_layer *network(nb_model *m, nb_rng *rng, bool bug)
{
    nb_layer_opts o = {.rng = rng};
    nb_layer *net, *l;
    nb_error err;
    nb_sequential_new("", &net);
    nb_linear_new(m, "fc1", 8, 6, &o, &l), nb_sequential_add(net, l);
    nb_layer_new(bug ? &affine1_buggy_def : &affine1_def, "scale", &o, &l);
    affine1_build(l, m, "n=6", &o, &err);
    nb_sequential_add(net, l);
    nb_act_layer_new(m, "act", NB_ACT_TANH, NULL, 6, &o, &l), nb_sequential_add(net, l);
    nb_linear_new(m, "fc2", 6, 3, &o, &l), nb_sequential_add(net, l);
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            nb_tensor_set(t, i, 2 * nb_rng_uniform(rng) - 1);
    return net;
}

/* Check @p net on @p x and print the report; the result in *r. */
static int check(nb_layer *net, nb_model *m, nb_tensor *x, nb_model_check_result *r)
{
    /* --- the check --- */
    const nb_layer_def *defs[] = {&affine1_def, &affine1_buggy_def};
    nb_model_check_opts o = nb_model_check_defaults();
    o.defs = defs; /* the f64 twin is built from the network's description */
    o.n_defs = 2;
    if (nb_check_model(net, m, x, &o, r) != NB_OK) {
        fprintf(stderr, "%s\n", r->error.msg);
        return 1;
    }
    nb_model_check_print(r, stdout);
    /* --- end of the check --- */
    return 0;
}

int main(void)
{
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F32, 2, (int64_t[]){4, 8}, 0, 1); /* 4 rows */
    nb_model_check_result r[3];
    int failed = 0;
    for (int bug = 0; bug < 2; bug++) {
        nb_model *m = nb_model_new();
        nb_rng_seed(&rng, 2);
        nb_layer *net = network(m, &rng, bug);
        printf("== %s\n", bug ? "gamma's gradient forgotten" : "the network as written");
        failed |= check(net, m, x, &r[bug]);
        nb_layer_free(net);
        nb_model_free(m);
    }

    /* dead units: every weight 0 behind ReLU, no biases */
    nb_model *m = nb_model_new();
    nb_layer *net;
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.init = NB_INIT_ZEROS;
    mo.layer.no_bias = true;
    nb_mlp_new(m, NULL, (int64_t[]){8, 6, 3}, 3, &mo, &net);
    printf("== dead units\n");
    failed |= check(net, m, x, &r[2]);
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
    /* what the page says: a pass, a failure named, a warning */
    bool as_said = r[0].pass && r[0].twin && !r[1].pass && r[1].twin &&
                   !strcmp(r[1].worst.param, "scale.gamma") && r[2].warning && !r[2].pass;
    return failed || !as_said;
}
