/* The tutorial's program (docs/tutorial.md): a first model in C with nabla.
 * Trains a 64-32-10 ReLU network on the built-in digits data set and prints
 * the test accuracy. The build compiles it and the test suite runs it, so
 * the tutorial cannot rot. */

#include <stdio.h>

#include <nabla.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        nb_status st_ = (call);                                                                    \
        if (st_ != NB_OK) {                                                                        \
            fprintf(stderr, "%s failed: %s\n", #call, nb_status_str(st_));                         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    /* 1. Data: 1797 8x8 images of digits, pixels 0..16, built into nabla.
     *    Scale to [0, 1]; the first 1500 rows train, the last 297 test. */
    nb_dataset *digits = NULL, *train = NULL, *test = NULL;
    CHECK(nb_dataset_digits(NULL, &digits));
    CHECK(nb_dataset_scale(digits, 16.0));
    CHECK(nb_dataset_slice(digits, 0, 1500, &train));
    CHECK(nb_dataset_slice(digits, 1500, 297, &test));

    /* 2. The model: named parameters in an nb_model, layers built on it. */
    nb_rng rng;
    nb_rng_seed(&rng, 42); /* every random choice comes from here */
    nb_model *model = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults(); /* ReLU, He-uniform init, f32 */
    mo.layer.rng = &rng;
    nb_layer *net = NULL;
    CHECK(nb_mlp_new(model, NULL, (int64_t[]){64, 32, 10}, 3, &mo, &net));

    /* 3. The optimizer: plain SGD, learning rate 0.1. */
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_SGD);
    oo.lr = 0.1;
    nb_optim *opt = nb_optim_new(&oo);

    /* 4. Training: a graph per step, reset after it (no malloc after the
     *    first step), mini-batches of 32 in a new order every epoch. */
    nb_graph *g = nb_graph_new();
    nb_loader *loader = NULL;
    CHECK(nb_loader_new(train, 32, true, false, &loader));
    for (int epoch = 1; epoch <= 20; epoch++) {
        CHECK(nb_loader_start(loader, &rng));
        double total = 0;
        int steps = 0;
        nb_batch b;
        while (nb_loader_next(g, loader, &b)) {
            nb_model_zero_grad(model);
            nb_tensor *logits = nb_layer_forward(g, net, b.x, true);
            nb_tensor *loss =
                nb_softmax_cross_entropy(g, logits, b.labels, b.size, NB_REDUCE_MEAN);
            if (!loss || nb_backward(g, loss) != NB_OK) {
                fprintf(stderr, "step failed: %s\n", nb_graph_error(g)->msg);
                return 1;
            }
            total += nb_tensor_item(loss);
            steps++;
            CHECK(nb_optim_step(opt, model));
            nb_graph_reset(g);
        }
        if (epoch % 5 == 0)
            printf("epoch %2d  mean loss %.4f\n", epoch, total / steps);
    }

    /* 5. Evaluation: the whole test set in one batch, values only. */
    nb_graph_set_recording(g, false);
    nb_loader *all = NULL;
    CHECK(nb_loader_new(test, 297, false, false, &all));
    CHECK(nb_loader_start(all, NULL));
    nb_batch b;
    double accuracy = 0;
    if (!nb_loader_next(g, all, &b))
        return 1;
    nb_tensor *logits = nb_layer_forward(g, net, b.x, false);
    CHECK(nb_accuracy(logits, b.labels, b.size, &accuracy));
    printf("test accuracy %.3f\n", accuracy);

    nb_loader_free(all);
    nb_loader_free(loader);
    nb_graph_free(g);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(model);
    nb_dataset_free(test);
    nb_dataset_free(train);
    nb_dataset_free(digits);
    return accuracy > 0.85 ? 0 : 1;
}
