/* B10 lstm-rows: each Fashion-MNIST image (pixels / 255) as 28 steps of 28
 * features, one LSTM layer of 128 units (PyTorch's gates and init), its
 * last hidden state -> linear 128 -> 10, mean softmax cross-entropy, Adam
 * lr 1e-3, batch 128, f32.
 *
 *   b10_lstm          ms_per_batch: the median of 60 training batches after
 *                     5 warm-up batches, at 1 thread and at 2
 *   b10_lstm --full   also 3 epochs at 1 thread, test_acc after them
 *
 * The network is nabla's layers: reshape [N, 784] -> [N, 28, 28], nb_rnn
 * (NB_RNN_LSTM), linear. */

#include "train.h"

typedef struct run {
    nb_model *m;
    nb_layer *net;
    nb_optim *opt;
    nb_graph *g;
    nb_loader *ld;
    nb_rng init_rng, shuffle_rng;
} run;

static void run_new(run *r, const nb_dataset *train, int threads)
{
    nb_rng_seed(&r->init_rng, 0);
    nb_rng_seed(&r->shuffle_rng, 0);
    r->m = nb_model_new();
    nb_layer *l = NULL;
    nb_rnn_opts ro = nb_rnn_defaults();
    ro.layer.rng = &r->init_rng;
    nb_layer_opts lo = {.rng = &r->init_rng};
    if (!r->m || nb_sequential_new("", &r->net) != NB_OK ||
        nb_reshape_layer_new("rows", 2, (const int64_t[]){28, 28}, &l) != NB_OK ||
        nb_sequential_add(r->net, l) != NB_OK ||
        nb_rnn_new(r->m, "lstm", NB_RNN_LSTM, 28, 128, &ro, &l) != NB_OK ||
        nb_sequential_add(r->net, l) != NB_OK ||
        nb_linear_new(r->m, "out", 128, 10, &lo, &l) != NB_OK ||
        nb_sequential_add(r->net, l) != NB_OK)
        bench_check(NULL, NULL, "network");
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 1e-3;
    r->opt = nb_optim_new(&oo);
    r->ld = NULL;
    if (!r->opt || nb_loader_new(train, 128, true, false, &r->ld) != NB_OK)
        bench_check(NULL, NULL, "optimizer / loader");
    r->g = nb_graph_new();
    bench_check(r->g, r->g, "graph");
    bench_set_threads(r->g, threads);
}

static void run_free(run *r)
{
    nb_graph_free(r->g);
    nb_loader_free(r->ld);
    nb_optim_free(r->opt);
    nb_layer_free(r->net);
    nb_model_free(r->m);
}

/* One training step on the loader's next batch; false at the epoch's end. */
static bool step(run *r)
{
    nb_batch b;
    if (!nb_loader_next(r->g, r->ld, &b))
        return false;
    nb_model_zero_grad(r->m);
    nb_tensor *logits = nb_layer_forward(r->g, r->net, b.x, true);
    nb_tensor *loss = nb_softmax_cross_entropy(r->g, logits, b.labels, b.size, NB_REDUCE_MEAN);
    bench_check(r->g, loss, "forward");
    if (nb_backward(r->g, loss) != NB_OK)
        bench_check(r->g, NULL, "backward");
    if (nb_optim_step(r->opt, r->m) != NB_OK) {
        fprintf(stderr, "b10_lstm: optimizer step failed: %s\n", nb_optim_error(r->opt)->msg);
        exit(1);
    }
    nb_graph_reset(r->g);
    return true;
}

static void time_batches(const nb_dataset *train, int threads)
{
    enum { WARMUP = 5, BATCHES = 60 };
    run r;
    run_new(&r, train, threads);
    if (nb_loader_start(r.ld, &r.shuffle_rng) != NB_OK)
        bench_check(NULL, NULL, "loader start");
    double t[BATCHES];
    for (int i = 0; i < WARMUP + BATCHES; i++) {
        double t0 = bench_now();
        if (!step(&r))
            bench_check(NULL, NULL, "enough batches");
        if (i >= WARMUP)
            t[i - WARMUP] = bench_now() - t0;
    }
    double med = bench_median(t, BATCHES);
    printf("{\"workload\": \"B10\", \"impl\": \"nabla\", \"threads\": %d, \"batch\": 128, "
           "\"batches\": %d, \"ms_per_batch\": %.3f, \"epoch_s_est\": %.2f, \"matmul\": \"%s\", "
           "\"graph_mb\": %.2f, \"peak_rss_mb\": %.1f}\n",
           threads, BATCHES, med * 1e3, med * (60000.0 / 128.0), nb_graph_matmul_name(r.g),
           (double)nb_graph_bytes(r.g) / (1024.0 * 1024.0), bench_peak_mb());
    fflush(stdout);
    run_free(&r);
}

static void full(const nb_dataset *train, const nb_dataset *test)
{
    run r;
    run_new(&r, train, 1);
    double times[3];
    for (int e = 0; e < 3; e++) {
        double t0 = bench_now();
        if (nb_loader_start(r.ld, &r.shuffle_rng) != NB_OK)
            bench_check(NULL, NULL, "loader start");
        while (step(&r))
            ;
        times[e] = bench_now() - t0;
    }
    double acc = bench_accuracy(r.net, test, r.g);
    printf("{\"workload\": \"B10\", \"impl\": \"nabla\", \"threads\": 1, \"epochs\": 3, "
           "\"epoch_s\": %.3f, \"epoch_s_all\": [%.3f, %.3f, %.3f], \"test_acc\": %.4f}\n",
           bench_median((double[]){times[0], times[1], times[2]}, 3), times[0], times[1],
           times[2], acc);
    run_free(&r);
}

int main(int argc, char **argv)
{
    nb_dataset *train = NULL, *test = NULL;
    nb_error err;
    bench_data_check(nb_dataset_fashion_mnist(NULL, true, NULL, &train, &err), &err,
                     "Fashion-MNIST (train)");
    bench_data_check(nb_dataset_fashion_mnist(NULL, false, NULL, &test, &err), &err,
                     "Fashion-MNIST (test)");
    bench_data_check(nb_dataset_scale(train, 255), NULL, "scaling");
    bench_data_check(nb_dataset_scale(test, 255), NULL, "scaling");
    time_batches(train, 1);
    time_batches(train, 2);
    if (bench_flag(argc, argv, "--full"))
        full(train, test);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
