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

/* The network: reshape, LSTM, linear. */
static void build(bench_run *r)
{
    nb_layer *l = NULL;
    nb_rnn_opts ro = nb_rnn_defaults();
    ro.layer.rng = &r->init_rng;
    nb_layer_opts lo = {.rng = &r->init_rng};
    if (nb_reshape_layer_new("rows", 2, (const int64_t[]){28, 28}, &l) != NB_OK ||
        nb_sequential_add(r->net, l) != NB_OK ||
        nb_rnn_new(r->m, "lstm", NB_RNN_LSTM, 28, 128, &ro, &l) != NB_OK ||
        nb_sequential_add(r->net, l) != NB_OK ||
        nb_linear_new(r->m, "out", 128, 10, &lo, &l) != NB_OK ||
        nb_sequential_add(r->net, l) != NB_OK)
        bench_check(NULL, NULL, "network");
}

static void time_batches(const nb_dataset *train, int threads)
{
    enum { WARMUP = 5, BATCHES = 60 };
    bench_run r;
    bench_run_new(&r, train, threads, NULL, build);
    double med = bench_time_steps(&r, WARMUP, BATCHES, NULL, NULL);
    printf("{\"workload\": \"B10\", \"impl\": \"nabla\", \"threads\": %d, \"batch\": 128, "
           "\"batches\": %d, \"ms_per_batch\": %.3f, \"epoch_s_est\": %.2f, \"matmul\": \"%s\", "
           "\"graph_mb\": %.2f, \"peak_rss_mb\": %.1f}\n",
           threads, BATCHES, med * 1e3, med * (60000.0 / 128.0), nb_graph_matmul_name(r.g),
           (double)nb_graph_bytes(r.g) / (1024.0 * 1024.0), bench_peak_mb());
    fflush(stdout);
    bench_run_free(&r);
}

static void full(const nb_dataset *train, const nb_dataset *test)
{
    bench_run r;
    bench_run_new(&r, train, 1, NULL, build);
    bench_three_epochs(&r, test, "B10");
    bench_run_free(&r);
}

int main(int argc, char **argv)
{
    nb_dataset *train = NULL, *test = NULL;
    bench_fashion(&train, &test);
    time_batches(train, 1);
    time_batches(train, 2);
    if (bench_flag(argc, argv, "--full"))
        full(train, test);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
