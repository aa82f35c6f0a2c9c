/* B1 mlp-digits: train a 64-128-64-10 ReLU MLP (He-uniform, f32) on the
 * digits data (features / 16, first 1500 rows train, last 297 test) with
 * mean softmax cross-entropy and plain SGD lr 0.05, batch 32, 30 epochs,
 * reshuffled every epoch, 1 thread. train_s = wall time of the 30 epochs
 * with the data already in memory; test_acc after them. */

#include "train.h"

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

    nb_rng init_rng, shuffle_rng;
    nb_rng_seed(&init_rng, 0);
    nb_rng_seed(&shuffle_rng, 0);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults(); /* ReLU, He-uniform for ReLU, f32 */
    o.layer.rng = &init_rng;
    nb_layer *net = NULL;
    if (!m || nb_mlp_new(m, NULL, (int64_t[]){64, 128, 64, 10}, 4, &o, &net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_SGD);
    oo.lr = 0.05;
    nb_optim *opt = nb_optim_new(&oo);
    nb_loader *ld = NULL;
    if (!opt || nb_loader_new(train, 32, true, false, &ld) != NB_OK)
        bench_check(NULL, NULL, "optimizer / loader");
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    bench_set_threads(g, 1);

    double t0 = bench_now();
    for (int e = 0; e < epochs; e++)
        bench_train_epoch(net, m, opt, ld, g, &shuffle_rng);
    double train_s = bench_now() - t0;
    double acc = bench_accuracy(net, test, g);
    printf("{\"workload\": \"B1\", \"impl\": \"nabla\", \"threads\": 1, \"epochs\": %d, "
           "\"train_s\": %.4f, \"test_acc\": %.4f, \"matmul\": \"%s\", \"peak_rss_mb\": %.1f}\n",
           epochs, train_s, acc, nb_graph_matmul_name(g), bench_peak_mb());

    nb_graph_free(g);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
