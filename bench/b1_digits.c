/* B1 mlp-digits: train a 64-128-64-10 ReLU MLP (He-uniform, f32) on the
 * digits data (features / 16, first 1500 rows train, last 297 test) with
 * mean softmax cross-entropy and plain SGD lr 0.05, batch 32, 30 epochs,
 * reshuffled every epoch, 1 thread. train_s = wall time of the 30 epochs
 * with the data already in memory; test_acc after them.
 *
 *   b1_digits [--epochs N]   the run (N epochs, default 30)
 *   b1_digits --phases [S]   where a step's time goes, at 1 thread
 *                            (bench/phases.h; 3 blocks of S steps,
 *                            default 500) */

#include "phases.h"

/* The B1 network, SGD and loader over @p train, 1 thread, both generators
 * seeded 0. Exits on an error. */
static void run_new(bench_run *r, const nb_dataset *train)
{
    nb_rng_seed(&r->init_rng, 0);
    nb_rng_seed(&r->shuffle_rng, 0);
    r->m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults(); /* ReLU, He-uniform for ReLU, f32 */
    o.layer.rng = &r->init_rng;
    r->net = NULL;
    if (!r->m || nb_mlp_new(r->m, NULL, (int64_t[]){64, 128, 64, 10}, 4, &o, &r->net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_SGD);
    oo.lr = 0.05;
    r->opt = nb_optim_new(&oo);
    r->ld = NULL;
    if (!r->opt || nb_loader_new(train, 32, true, false, &r->ld) != NB_OK)
        bench_check(NULL, NULL, "optimizer / loader");
    r->g = nb_graph_new();
    bench_check(r->g, r->g, "graph");
    bench_set_threads(r->g, 1);
}

int main(int argc, char **argv)
{
    int epochs = 30;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--epochs") == 0)
            epochs = atoi(argv[i + 1]);
    nb_dataset *all = NULL, *train = NULL, *test = NULL;
    bench_data_check(nb_dataset_digits(NULL, &all), NULL, "digits");
    bench_data_check(nb_dataset_scale(all, 16.0), NULL, "digits scale");
    bench_data_check(nb_dataset_split(all, NULL, 1500, 0, &train, NULL, &test), NULL, "split");

    bench_run r;
    run_new(&r, train);
    if (bench_flag(argc, argv, "--phases")) {
        int steps = argc > 2 ? atoi(argv[argc - 1]) : 500;
        bench_phases(&r, "B1", steps > 0 ? steps : 500);
    } else {
        double t0 = bench_now();
        for (int e = 0; e < epochs; e++)
            bench_train_epoch(r.net, r.m, r.opt, r.ld, r.g, &r.shuffle_rng);
        double train_s = bench_now() - t0;
        double acc = bench_accuracy(r.net, test, r.g);
        printf(
            "{\"workload\": \"B1\", \"impl\": \"nabla\", \"threads\": 1, \"epochs\": %d, "
            "\"train_s\": %.4f, \"test_acc\": %.4f, \"matmul\": \"%s\", \"peak_rss_mb\": %.1f}\n",
            epochs, train_s, acc, nb_graph_matmul_name(r.g), bench_peak_mb());
    }
    bench_run_free(&r);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
