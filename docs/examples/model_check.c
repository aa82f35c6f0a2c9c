/* Checking a whole model (docs/gradcheck.md, "Checking a whole model"): a
 * network holding a layer of the program's own is checked against every
 * parameter of its model, in f64 on a twin of the f32 network; the same
 * layer with a gradient bug is caught and its parameter named; a network
 * of dead units gets a warning, not a pass. The suite runs this program
 * and checks that the page shows its code and its output. */

#include <stdio.h>
#include <string.h>

#include "nabla.h"

/* A tanh with a learned amplitude per feature: y = α ⊙ tanh(x). */
typedef struct scaled_tanh {
    int64_t n;
    nb_tensor *alpha;
} scaled_tanh;

static nb_tensor *scaled_tanh_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    scaled_tanh *s = nb_layer_state(l);
    return (void)training, nb_mul(g, s->alpha, nb_tanh(g, x));
}

/* --- the bug --- */
static nb_tensor *scaled_tanh_buggy_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    scaled_tanh *s = nb_layer_state(l);
    nb_tensor *alpha = nb_stop_gradient(g, s->alpha); /* the same value, no gradient */
    return (void)training, nb_mul(g, alpha, nb_tanh(g, x));
}
/* --- end of the bug --- */

static nb_status scaled_tanh_describe(const nb_layer *l, char *out, size_t cap)
{
    const scaled_tanh *s = nb_layer_state(l);
    return nb_layer_setting_put(out, cap, "n", "%lld", (long long)s->n);
}

static nb_status scaled_tanh_build(nb_layer *l, nb_model *m, const char *settings,
                                   const nb_layer_opts *o, nb_error *err)
{
    scaled_tanh *s = nb_layer_state(l);
    if (nb_layer_setting_get_i64(settings, "n", &s->n) != NB_OK || s->n < 1)
        return nb_error_set(err, NB_ERR_PARSE, nb_layer_name(l), "n= is not a width");
    return nb_layer_add_param(l, m, "alpha", o->dtype, 1, &s->n, &s->alpha);
}

static const nb_layer_def scaled_tanh_def = {
    .kind = "scaled_tanh",
    .state_size = sizeof(scaled_tanh),
    .forward = scaled_tanh_forward,
    .describe = scaled_tanh_describe,
    .build = scaled_tanh_build,
};

static const nb_layer_def scaled_tanh_buggy_def = {
    .kind = "scaled_tanh_buggy",
    .state_size = sizeof(scaled_tanh),
    .forward = scaled_tanh_buggy_forward,
    .describe = scaled_tanh_describe,
    .build = scaled_tanh_build,
};

/* fc1 (8 -> 6), the layer "amp", fc2 (6 -> 3); f32, random values. */
static nb_layer *network(nb_model *m, nb_rng *rng, bool bug)
{
    nb_layer_opts o = {.rng = rng};
    nb_layer *net, *l;
    nb_error err;
    nb_sequential_new("", &net);
    nb_linear_new(m, "fc1", 8, 6, &o, &l), nb_sequential_add(net, l);
    nb_layer_new(bug ? &scaled_tanh_buggy_def : &scaled_tanh_def, "amp", &o, &l);
    scaled_tanh_build(l, m, "n=6", &o, &err);
    nb_sequential_add(net, l);
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
    const nb_layer_def *defs[] = {&scaled_tanh_def, &scaled_tanh_buggy_def};
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
        printf("== %s\n", bug ? "alpha's gradient forgotten" : "the network as written");
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
                   !strcmp(r[1].worst.param, "amp.alpha") && r[2].warning && !r[2].pass;
    return failed || !as_said;
}
