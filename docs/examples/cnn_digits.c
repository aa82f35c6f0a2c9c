/* A convolutional network (docs/models.md, "A convolutional network"):
 * digits as 1x8x8 images through conv 3x3 (8 maps), ReLU, 2x2 max
 * pooling, a linear layer of 32 and one of 10, trained with nb_trainer;
 * then the network checked against finite differences (nb_check_model). */

#include <stdio.h>

#include "nabla.h"
#include "nabla/modelcheck.h"

int main(void)
{
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_dataset *all, *train, *test;
    if (nb_dataset_digits(NULL, &all) != NB_OK || nb_dataset_scale(all, 16) != NB_OK ||
        nb_dataset_split(all, NULL, 1500, 0, &train, NULL, &test) != NB_OK)
        return 1;

    /* --- the network --- */
    nb_model *m = nb_model_new();
    nb_layer_opts lo = {.rng = &rng};              /* convolutions: He-uniform */
    nb_layer_opts fo = {.rng = &rng, .init = NB_INIT_HE_UNIFORM};
    nb_conv_opts same = nb_conv_defaults();
    same.padding[0] = same.padding[1] = 1;         /* 3x3 keeps 8x8 */
    nb_pool2d_opts half = {{2, 2}, {2, 2}, {0, 0}}; /* 8x8 -> 4x4 */
    nb_layer *net, *l;
    nb_sequential_new("", &net);
    nb_reshape_layer_new("image", 3, (const int64_t[]){1, 8, 8}, &l); /* [N, 64] -> [N, 1, 8, 8] */
    nb_sequential_add(net, l);
    nb_conv2d_new(m, "conv1", 1, 8, 3, 3, &same, &lo, &l); /* conv1.weight [8, 1, 3, 3] */
    nb_sequential_add(net, l);
    nb_act_layer_new(m, "act1", NB_ACT_RELU, NULL, 0, &lo, &l);
    nb_sequential_add(net, l);
    nb_max_pool2d_new("pool1", &half, &l);
    nb_sequential_add(net, l);
    nb_flatten_new("flatten", &l); /* [N, 8, 4, 4] -> [N, 128] */
    nb_sequential_add(net, l);
    nb_linear_new(m, "fc1", 128, 32, &fo, &l);
    nb_sequential_add(net, l);
    nb_act_layer_new(m, "act2", NB_ACT_RELU, NULL, 0, &lo, &l);
    nb_sequential_add(net, l);
    nb_linear_new(m, "fc2", 32, 10, &fo, &l);
    nb_sequential_add(net, l);
    /* --- end of the network --- */

    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.01;
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
    printf("CNN on digits: test accuracy %.3f\n", acc);

    /* every parameter's gradient against finite differences, on 4 test images */
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_from(g, NB_F32, 2, (const int64_t[]){4, 64},
                                  nb_dataset_feature_data(test));
    nb_model_check_result r;
    nb_check_model(net, m, x, NULL, &r);
    printf("model check: %s (%lld entries)\n", r.pass ? "PASSED" : "FAILED",
           (long long)r.n_entries);
    int ok = acc > 0.9 && r.pass;

    nb_graph_free(g);
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(test);
    nb_dataset_free(train);
    nb_dataset_free(all);
    return ok ? 0 : 1;
}
