/* Shared by the training benchmarks (B1, B2, B9, B10): a training step and
 * an epoch of mini-batch training with softmax cross-entropy, a run's
 * parts, timed steps, and test accuracy. Header-only. */
#ifndef NABLA_BENCH_TRAIN_H
#define NABLA_BENCH_TRAIN_H

#include "bench.h"

/* One training step on @p ld's next batch: zero the gradients, forward,
 * mean softmax cross-entropy, backward, optimizer step, reset the graph.
 * False (nothing done) at the epoch's end; exits on an error. */
static inline bool bench_train_step(nb_layer *net, nb_model *m, nb_optim *opt, nb_loader *ld,
                                    nb_graph *g)
{
    nb_batch b;
    if (!nb_loader_next(g, ld, &b))
        return false;
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
    return true;
}

/* One epoch over @p ld (reshuffled from @p rng), a bench_train_step per
 * batch. Returns the number of steps; exits on an error. */
static inline int64_t bench_train_epoch(nb_layer *net, nb_model *m, nb_optim *opt, nb_loader *ld,
                                        nb_graph *g, nb_rng *rng)
{
    int64_t steps = 0;
    if (nb_loader_start(ld, rng) != NB_OK)
        bench_check(NULL, NULL, "loader start");
    while (bench_train_step(net, m, opt, ld, g))
        steps++;
    return steps;
}

/* What a training run holds: the model, its network, the optimizer, the
 * graph, the loader, and the generators of the initial weights and of the
 * shuffles. */
typedef struct bench_run {
    nb_model *m;
    nb_layer *net;
    nb_optim *opt;
    nb_graph *g;
    nb_loader *ld;
    nb_rng init_rng, shuffle_rng;
} bench_run;

/* A run of a workload with its own network (B9, B10): both generators
 * seeded 0, a model and an empty sequential network that @p build fills
 * (drawing from r->init_rng), Adam with lr 1e-3 (the other settings
 * default), batches of 128 reshuffled every epoch, and the graph @p g
 * (NULL: a new one) with @p threads threads. Exits on an error. */
static inline void bench_run_new(bench_run *r, const nb_dataset *train, int threads, nb_graph *g,
                                 void (*build)(bench_run *r))
{
    nb_rng_seed(&r->init_rng, 0);
    nb_rng_seed(&r->shuffle_rng, 0);
    r->m = nb_model_new();
    r->net = NULL;
    if (!r->m || nb_sequential_new("", &r->net) != NB_OK)
        bench_check(NULL, NULL, "network");
    build(r);
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 1e-3;
    r->opt = nb_optim_new(&oo);
    r->ld = NULL;
    if (!r->opt || nb_loader_new(train, 128, true, false, &r->ld) != NB_OK)
        bench_check(NULL, NULL, "optimizer / loader");
    r->g = g ? g : nb_graph_new();
    bench_check(r->g, r->g, "graph");
    bench_set_threads(r->g, threads);
    nb_optim_set_threads(r->opt, threads);
}

static inline void bench_run_free(bench_run *r)
{
    nb_graph_free(r->g);
    nb_loader_free(r->ld);
    nb_optim_free(r->opt);
    nb_layer_free(r->net);
    nb_model_free(r->m);
}

/* Time @p warmup + @p n training steps from the start of an epoch;
 * @p before (may be NULL) is called with the step's index before each.
 * Returns the median seconds of the last @p n (at most 1000) steps. */
static inline double bench_time_steps(bench_run *r, int warmup, int n,
                                      void (*before)(int i, void *ud), void *ud)
{
    double t[1000];
    if (n < 1 || n > 1000 || nb_loader_start(r->ld, &r->shuffle_rng) != NB_OK)
        bench_check(NULL, NULL, "loader start");
    for (int i = 0; i < warmup + n; i++) {
        if (before)
            before(i, ud);
        double t0 = bench_now();
        if (!bench_train_step(r->net, r->m, r->opt, r->ld, r->g))
            bench_check(NULL, NULL, "enough batches");
        if (i >= warmup)
            t[i - warmup] = bench_now() - t0;
    }
    return bench_median(t, n);
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

/* Train @p r 3 epochs at its thread count and print the line of
 * @p workload (B9, B10): the median and each epoch's seconds, and test_acc
 * on @p test after them. */
static inline void bench_three_epochs(bench_run *r, const nb_dataset *test, const char *workload)
{
    double times[3];
    for (int e = 0; e < 3; e++) {
        double t0 = bench_now();
        bench_train_epoch(r->net, r->m, r->opt, r->ld, r->g, &r->shuffle_rng);
        times[e] = bench_now() - t0;
    }
    double acc = bench_accuracy(r->net, test, r->g);
    printf("{\"workload\": \"%s\", \"impl\": \"nabla\", \"threads\": %d, \"epochs\": 3, "
           "\"epoch_s\": %.3f, \"epoch_s_all\": [%.3f, %.3f, %.3f], \"test_acc\": %.4f}\n",
           workload, nb_graph_threads(r->g),
           bench_median((double[]){times[0], times[1], times[2]}, 3), times[0], times[1], times[2],
           acc);
    fflush(stdout);
}

/* A data set, or exit with the loader's message. */
static inline void bench_data_check(nb_status st, const nb_error *err, const char *what)
{
    if (st != NB_OK) {
        fprintf(stderr, "bench: loading %s failed: %s\n", what, err ? err->msg : nb_status_str(st));
        exit(1);
    }
}

/* Fashion-MNIST's training and test sets with pixels / 255, or exit. */
static inline void bench_fashion(nb_dataset **train, nb_dataset **test)
{
    nb_error err;
    bench_data_check(nb_dataset_fashion_mnist(NULL, true, NULL, train, &err), &err,
                     "Fashion-MNIST (train)");
    bench_data_check(nb_dataset_fashion_mnist(NULL, false, NULL, test, &err), &err,
                     "Fashion-MNIST (test)");
    bench_data_check(nb_dataset_scale(*train, 255), NULL, "scaling");
    bench_data_check(nb_dataset_scale(*test, 255), NULL, "scaling");
}

#endif
