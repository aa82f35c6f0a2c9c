/* A layer of your own (docs/models.md, "Your own layers"): a per-feature scale
 * and shift, y = x·γ + β, written against the layer protocol and then used
 * as the library's layers are: in a sequence, trained by nb_trainer,
 * evaluated, described, and built again from its description. */

#include <stdio.h>
#include <string.h>

#include "nabla.h"

/* --- the layer: its settings, forward, width, description and build --- */
typedef struct affine1 {
    int64_t n;
    nb_tensor *gamma, *beta;
} affine1;

static nb_tensor *affine1_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    affine1 *a = nb_layer_state(l); /* the same in training and evaluation */
    return (void)training, nb_add(g, nb_mul(g, x, a->gamma), a->beta); /* errors go to g */
}

static int64_t affine1_width(const nb_layer *l, int64_t w)
{
    return (void)w, ((const affine1 *)nb_layer_state(l))->n;
}

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
    if (st == NB_OK)
        st = nb_layer_add_param(l, m, "beta", o->dtype, 1, &a->n, &a->beta);
    for (int64_t i = 0; st == NB_OK && i < a->n; i++)
        nb_tensor_set(a->gamma, i, 1); /* starts as the identity */
    return st;
}

static const nb_layer_def affine1_def = {
    .kind = "affine1",
    .state_size = sizeof(affine1),
    .forward = affine1_forward,
    .out_width = affine1_width,
    .describe = affine1_describe,
    .build = affine1_build,
};
/* --- end of the layer --- */

int main(void)
{
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_dataset *all, *train, *test;
    if (nb_dataset_digits(NULL, &all) != NB_OK || nb_dataset_scale(all, 16) != NB_OK ||
        nb_dataset_split(all, NULL, 1500, 0, &train, NULL, &test) != NB_OK)
        return 1;

    /* fc1 -> affine1 -> relu -> fc2: the user's layer between the library's */
    nb_model *m = nb_model_new();
    nb_layer_opts o = {.rng = &rng};
    nb_layer *net, *l;
    nb_error err;
    nb_sequential_new("", &net);
    nb_linear_new(m, "fc1", 64, 32, &o, &l), nb_sequential_add(net, l);
    nb_layer_new(&affine1_def, "scale", &o, &l);
    if (affine1_build(l, m, "n=32", &o, &err) != NB_OK)
        return 1;
    nb_sequential_add(net, l);
    nb_act_layer_new(m, "act", NB_ACT_RELU, NULL, 32, &o, &l), nb_sequential_add(net, l);
    nb_linear_new(m, "fc2", 32, 10, &o, &l), nb_sequential_add(net, l);

    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.005;
    nb_optim *opt = nb_optim_new(&oo);
    nb_loader *ld;
    nb_loader_new(train, 32, true, false, &ld);
    nb_train_opts to = nb_train_defaults();
    to.epochs = 10;
    to.rng = &rng;
    nb_trainer *t;
    nb_trainer_new(m, net, opt, &to, &t);
    if (nb_trainer_fit(t, ld) != NB_OK) {
        fprintf(stderr, "%s\n", nb_trainer_error(t)->msg);
        return 1;
    }
    double acc;
    nb_trainer_evaluate(t, test, &acc, NULL);
    printf("test accuracy %.3f\n", acc);

    /* the network describes itself, and is built again from that text */
    static char desc[NB_META_MAX + 1];
    if (nb_layer_describe(net, desc, sizeof desc, &err) != NB_OK)
        return 1;
    printf("%s\n", strstr(desc, "layer.2="));
    const nb_layer_def *defs[] = {&affine1_def};
    nb_layer_opts lo = {.init = NB_INIT_ZEROS, .defs = defs, .n_defs = 1};
    nb_model *m2 = nb_model_new();
    nb_layer *again;
    if (nb_layer_from_description(m2, NULL, desc, &lo, &again, &err) != NB_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("built again: %d parameters\n", nb_model_count(m2));

    nb_layer_free(again);
    nb_model_free(m2);
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return acc > 0.85 ? 0 : 1;
}
