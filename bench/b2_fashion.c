/* B2 mlp-fashion: train a 784-256-128-10 ReLU MLP (He-uniform, f32) on
 * Fashion-MNIST (pixels / 255) with mean softmax cross-entropy and Adam
 * (lr 1e-3, betas .9/.999, eps 1e-8), batch 128, reshuffled every epoch.
 *
 *   b2_fashion            one epoch at 1 thread and one at 2 threads, each
 *                         from the same initial model; test_acc after it
 *   b2_fashion --full     also 10 epochs at 1 thread, test_acc after them
 *   b2_fashion --trainer  one epoch through nb_trainer with its per-step
 *                         finite check on and off, alternately, 5 times
 *                         each: the check's cost (median epoch_s ratio)
 *   b2_fashion --scaling [B]  batch 32..1024 (or only B) on the first
 *                         16384 training images: time per sample and
 *                         memory (one batch size per process gives a clean
 *                         peak RSS: bench/run --scaling does that)
 *   b2_fashion --phases [S]  where a step's time goes, at 1 and at 2
 *                         threads: 3 blocks of S steps (default 150) after
 *                         20 warm-up, each phase's ms per step (median of
 *                         the blocks) and share of the step, from the
 *                         graph's profile (nb_graph_set_profile) and clocks
 *                         around the calls; a plain (unprofiled) block of S
 *                         steps after each profiled one gives the step time
 *                         without the profile's clocks
 *
 * epoch_s is the wall time of one epoch with the data already in memory.
 * gflops_epoch = the epoch's matmul work (forward, and the backward
 * products: dW of every layer, dX of all but the first) divided by epoch_s:
 * the rate the epoch would run at if it did nothing but matmul, a lower
 * bound on the matmul rate inside the epoch. */

#include "phases.h"

static const int64_t sizes[4] = {784, 256, 128, 10};

/* Matmul FLOPs of one training step on a batch of @p b samples. */
static double step_flops(int64_t b)
{
    double fwd = 0, first = 2.0 * (double)b * (double)(sizes[0] * sizes[1]);
    for (int i = 0; i < 3; i++)
        fwd += 2.0 * (double)b * (double)(sizes[i] * sizes[i + 1]);
    return 3.0 * fwd - first; /* forward + dW + dX (no dX for the input) */
}

static void run_new(bench_run *r, const nb_dataset *train, int64_t batch, int threads)
{
    nb_rng_seed(&r->init_rng, 0);
    nb_rng_seed(&r->shuffle_rng, 0);
    r->m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &r->init_rng;
    r->net = NULL;
    if (!r->m || nb_mlp_new(r->m, NULL, sizes, 4, &o, &r->net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 1e-3;
    oo.beta1 = 0.9;
    oo.beta2 = 0.999;
    oo.eps = 1e-8;
    r->opt = nb_optim_new(&oo);
    r->ld = NULL;
    if (!r->opt || nb_loader_new(train, batch, true, false, &r->ld) != NB_OK)
        bench_check(NULL, NULL, "optimizer / loader");
    r->g = nb_graph_new();
    bench_check(r->g, r->g, "graph");
    bench_set_threads(r->g, threads);
    nb_optim_set_threads(r->opt, threads);
}

static void train_and_report(const nb_dataset *train, const nb_dataset *test, int threads,
                             int epochs)
{
    bench_run r;
    run_new(&r, train, 128, threads);
    double times[16], flops = 0;
    int64_t n = nb_dataset_count(train);
    for (int64_t i = 0; i < n; i += 128)
        flops += step_flops(n - i < 128 ? n - i : 128);
    for (int e = 0; e < epochs; e++) {
        double t0 = bench_now();
        bench_train_epoch(r.net, r.m, r.opt, r.ld, r.g, &r.shuffle_rng);
        times[e] = bench_now() - t0;
    }
    double acc = bench_accuracy(r.net, test, r.g);
    char all[400] = "", *p = all;
    for (int e = 0; e < epochs; e++)
        p += snprintf(p, sizeof all - (size_t)(p - all), "%s%.4f", e ? ", " : "", times[e]);
    double sorted[16];
    memcpy(sorted, times, sizeof sorted);
    double med = bench_median(sorted, epochs);
    printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"threads\": %d, \"epochs\": %d, "
           "\"epoch_s\": %.4f, \"epoch_s_all\": [%s], \"test_acc\": %.4f, \"matmul_gflop\": %.2f, "
           "\"gflops_epoch\": %.2f, \"matmul\": \"%s\", \"blas_core\": \"%s\", "
           "\"peak_rss_mb\": %.1f}\n",
           threads, epochs, med, all, acc, flops / 1e9, flops / med / 1e9,
           nb_graph_matmul_name(r.g), bench_blas_core(), bench_peak_mb());
    fflush(stdout);
    bench_run_free(&r);
}

/* Cost as the batch grows: train on the same 16384 images with each batch
 * size (one pass, fresh model), time per sample and peak memory. */
static void scaling(const nb_dataset *train_all, int64_t only)
{
    const int64_t samples = 16384;
    nb_dataset *sub = NULL;
    bench_data_check(nb_dataset_slice(train_all, 0, samples, &sub), NULL, "slice");
    for (int64_t batch = 32; batch <= 1024; batch *= 2) {
        if (only > 0 && batch != only)
            continue;
        bench_run r;
        run_new(&r, sub, batch, 1);
        double rss0 = bench_rss_mb();
        bench_reset_peak();
        double t0 = bench_now();
        int64_t steps = bench_train_epoch(r.net, r.m, r.opt, r.ld, r.g, &r.shuffle_rng);
        double t = bench_now() - t0;
        double peak = bench_peak_mb();
        /* one more step, kept in the graph, to see the arena a step needs */
        nb_batch b;
        nb_loader_start(r.ld, &r.shuffle_rng);
        nb_loader_next(r.g, r.ld, &b);
        nb_tensor *loss = nb_softmax_cross_entropy(r.g, nb_layer_forward(r.g, r.net, b.x, true),
                                                   b.labels, b.size, NB_REDUCE_MEAN);
        bench_check(r.g, loss, "forward");
        nb_backward(r.g, loss);
        double graph_mb = (double)nb_graph_bytes(r.g) / (1024.0 * 1024.0);
        printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"scaling\", \"threads\": 1, "
               "\"batch\": %lld, \"samples\": %lld, \"steps\": %lld, \"s\": %.4f, "
               "\"us_per_sample\": %.3f, \"us_per_step\": %.1f, \"epoch_s_est\": %.3f, "
               "\"gflops\": %.2f, \"peak_rss_mb\": %.1f, \"peak_over_base_mb\": %.1f, "
               "\"graph_mb\": %.2f}\n",
               (long long)batch, (long long)samples, (long long)steps, t, 1e6 * t / (double)samples,
               1e6 * t / (double)steps, t / (double)samples * 60000.0,
               step_flops(batch) * (double)steps / t / 1e9, peak, peak - rss0, graph_mb);
        fflush(stdout);
        bench_run_free(&r);
    }
    nb_dataset_free(sub);
}

/* One epoch of the B2 workload through nb_trainer (no evaluation), its
 * check of each step's loss and gradient norm on or off: the epoch's
 * seconds. */
static double trainer_epoch(const nb_dataset *train, bool check_finite)
{
    bench_run r;
    run_new(&r, train, 128, 1);
    nb_train_opts to = nb_train_defaults();
    to.epochs = 1;
    to.rng = &r.shuffle_rng;
    to.check_finite = check_finite;
    nb_trainer *t = NULL;
    if (nb_trainer_new(r.m, r.net, r.opt, &to, &t) != NB_OK)
        bench_check(NULL, NULL, "trainer");
    double t0 = bench_now();
    if (nb_trainer_fit(t, r.ld) != NB_OK) {
        fprintf(stderr, "b2_fashion: %s\n", nb_trainer_error(t)->msg);
        exit(1);
    }
    double s = bench_now() - t0;
    nb_trainer_free(t);
    bench_run_free(&r);
    return s;
}

/* The trainer's per-step finite check: epochs with it on and off,
 * alternating so that drift in the machine's speed hits both alike. */
static void trainer_check_cost(const nb_dataset *train)
{
    enum { RUNS = 5 };
    double on[RUNS], off[RUNS];
    for (int k = 0; k < RUNS; k++) {
        if (k % 2) {
            on[k] = trainer_epoch(train, true);
            off[k] = trainer_epoch(train, false);
        } else {
            off[k] = trainer_epoch(train, false);
            on[k] = trainer_epoch(train, true);
        }
    }
    double m_on = bench_median(on, RUNS), m_off = bench_median(off, RUNS);
    printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"trainer\", \"threads\": 1, "
           "\"runs\": %d, \"epoch_s_check_on\": %.4f, \"epoch_s_check_off\": %.4f, "
           "\"ratio\": %.4f}\n",
           RUNS, m_on, m_off, m_on / m_off);
}

int main(int argc, char **argv)
{
    nb_dataset *train = NULL, *test = NULL;
    bench_fashion(&train, &test);

    if (bench_flag(argc, argv, "--trainer")) {
        trainer_check_cost(train);
    } else if (bench_flag(argc, argv, "--phases")) {
        int steps = argc > 2 ? atoi(argv[argc - 1]) : 150;
        for (int threads = 1; threads <= 2; threads++) {
            bench_run r;
            run_new(&r, train, 128, threads);
            bench_phases(&r, "B2", steps > 0 ? steps : 150);
            bench_run_free(&r);
        }
    } else if (bench_flag(argc, argv, "--scaling")) {
        scaling(train, argc > 2 ? atoll(argv[argc - 1]) : 0);
    } else {
        train_and_report(train, test, 1, 1);
        train_and_report(train, test, 2, 1);
        if (bench_flag(argc, argv, "--full"))
            train_and_report(train, test, 1, 10);
    }
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
