/* Shared by the training benchmarks (B1, B2): one epoch of mini-batch
 * training with softmax cross-entropy, and test accuracy. Header-only. */
#ifndef NABLA_BENCH_TRAIN_H
#define NABLA_BENCH_TRAIN_H

#include "bench.h"

/* One epoch over @p ld (reshuffled from @p rng): for each batch, zero the
 * gradients, forward, mean softmax cross-entropy, backward, optimizer step,
 * reset the graph. Returns the number of steps; exits on an error. */
static inline int64_t bench_train_epoch(nb_layer *net, nb_model *m, nb_optim *opt, nb_loader *ld,
                                        nb_graph *g, nb_rng *rng)
{
    nb_batch b;
    int64_t steps = 0;
    if (nb_loader_start(ld, rng) != NB_OK)
        bench_check(NULL, NULL, "loader start");
    while (nb_loader_next(g, ld, &b)) {
        nb_model_zero_grad(m);
        nb_tensor *logits = nb_layer_forward(g, net, b.x, true);
        nb_tensor *loss = nb_softmax_cross_entropy(g, logits, b.labels, b.size, NB_REDUCE_MEAN);
        bench_check(g, loss, "forward");
        if (nb_backward(g, loss) != NB_OK)
            bench_check(g, NULL, "backward");
        if (nb_optim_step(opt, m) != NB_OK) {
            fprintf(stderr, "bench: optimizer step failed: %s\n", nb_optim_error(opt)->msg);
            exit(1);
        }
        nb_graph_reset(g);
        steps++;
    }
    return steps;
}

/* Fraction of @p ds classified correctly by @p net (evaluation mode, no
 * recording), in chunks of 2000 samples. */
static inline double bench_accuracy(nb_layer *net, const nb_dataset *ds, nb_graph *g)
{
    int64_t n = nb_dataset_count(ds), f = nb_dataset_features(ds), correct = 0;
    const float *x = nb_dataset_feature_data(ds);
    int64_t *labels = malloc((size_t)(n > 0 ? n : 1) * sizeof *labels);
    if (!labels || nb_dataset_dtype(ds) != NB_F32)
        bench_check(NULL, NULL, "accuracy setup");
    for (int64_t i = 0; i < n; i++)
        labels[i] = nb_dataset_label(ds, i);
    bool rec = nb_graph_recording(g);
    nb_graph_set_recording(g, false);
    for (int64_t s = 0; s < n; s += 2000) {
        int64_t k = n - s < 2000 ? n - s : 2000;
        nb_tensor *xt = nb_tensor_from(g, NB_F32, 2, (int64_t[]){k, f}, x + s * f);
        nb_tensor *logits = nb_layer_forward(g, net, xt, false);
        double acc = 0;
        bench_check(g, logits, "accuracy forward");
        if (nb_accuracy(logits, labels + s, k, &acc) != NB_OK)
            bench_check(NULL, NULL, "accuracy");
        correct += (int64_t)(acc * (double)k + 0.5);
        nb_graph_reset(g);
    }
    nb_graph_set_recording(g, rec);
    free(labels);
    return n > 0 ? (double)correct / (double)n : 0.0;
}

/* A data set, or exit with the loader's message. */
static inline void bench_data_check(nb_status st, const nb_error *err, const char *what)
{
    if (st != NB_OK) {
        fprintf(stderr, "bench: loading %s failed: %s\n", what, err ? err->msg : nb_status_str(st));
        exit(1);
    }
}

#endif
