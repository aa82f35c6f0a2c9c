/* A data-parallel training loop of one's own (docs/distributed.md):
 *
 *     mpirun -np 2 build/docs/examples/dist_loop
 *
 * Each rank loads the same digits, builds the same 64-128-10 network, and
 * takes its share of every global batch of 256; the gradients are averaged
 * after each backward pass, so every rank takes the step one process would
 * take on the whole batch. Rank 0 prints the loss of each epoch and the
 * test accuracy; the program fails (exit status 1) below 85%. */

#include <stdio.h>

#include <nabla.h>

int main(void)
{
    nb_dist *d = NULL;
    nb_error err;
    if (nb_dist_init(NULL, &d, &err) != NB_OK) {
        fprintf(stderr, "dist_loop: %s\n", err.msg);
        return 1;
    }
    int rank = nb_dist_rank(d), size = nb_dist_size(d);

    nb_dataset *all = NULL, *train = NULL, *test = NULL;
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_rng rng;
    nb_rng_seed(&rng, 1); /* the same seed on every rank */
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_SGD);
    oo.lr = 0.5;
    nb_optim *opt = nb_optim_new(&oo);
    nb_loader *ld = NULL;
    nb_graph *g = nb_graph_new();
    int rc = 1;
    if (nb_dataset_digits(NULL, &all) != NB_OK || nb_dataset_scale(all, 16) != NB_OK ||
        nb_dataset_split(all, NULL, 1500, 0, &train, NULL, &test) != NB_OK || !m || !opt || !g ||
        nb_mlp_new(m, NULL, (const int64_t[]){64, 128, 10}, 3, &mo, &net) != NB_OK ||
        nb_loader_new(train, 256, true, false, &ld) != NB_OK) {
        fprintf(stderr, "dist_loop: setup failed\n");
        goto done;
    }

    /* --- the loop --- */
    /* this rank's share of every global batch of 256 */
    nb_loader_set_shard(ld, rank, size);
    /* the same model and settings everywhere, then rank 0's weights */
    if (nb_dist_check(d, m, "seed=1\nbatch=256\n") != NB_OK || nb_dist_broadcast(d, m) != NB_OK) {
        fprintf(stderr, "dist_loop: %s\n", nb_dist_error(d)->msg);
        goto done;
    }
    for (int epoch = 1; epoch <= 10; epoch++) {
        nb_loader_start(ld, &rng); /* the same order on every rank */
        double loss_sum = 0;
        int64_t steps = 0;
        nb_batch b;
        while (nb_loader_next(g, ld, &b)) {
            nb_model_zero_grad(m);
            double share = (double)b.size / (double)b.global_size;
            if (b.size > 0) { /* a share may be empty in a short last batch */
                nb_tensor *out = nb_layer_forward(g, net, b.x, true);
                nb_tensor *loss =
                    nb_softmax_cross_entropy(g, out, b.labels, b.size, NB_REDUCE_MEAN);
                if (!loss || nb_backward(g, loss) != NB_OK) {
                    fprintf(stderr, "dist_loop: %s\n", nb_graph_error(g)->msg);
                    nb_dist_abort(d, 1); /* the others would wait for this rank */
                }
                loss_sum += share * nb_tensor_item(loss);
            }
            /* Σ over the ranks of share · gradient: the global batch's gradient */
            if (nb_dist_average_grads(d, m, share) != NB_OK) {
                fprintf(stderr, "dist_loop: %s\n", nb_dist_error(d)->msg);
                nb_dist_abort(d, 1);
            }
            nb_optim_step(opt, m); /* the same step on every rank */
            nb_graph_reset(g);
            steps++;
        }
        nb_dist_sum(d, &loss_sum, 1); /* the global batches' mean losses */
        if (rank == 0)
            printf("epoch %d: loss %.4f\n", epoch, loss_sum / (double)steps);
    }
    /* --- end of the loop --- */

    double acc = 0;
    if (nb_evaluate(g, net, test, 256, &acc, NULL) != NB_OK)
        goto done;
    if (rank == 0)
        printf("test accuracy %.1f%% (%d ranks)\n", 100 * acc, size);
    rc = acc >= 0.85 ? 0 : 1;
done:
    nb_graph_free(g);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
    nb_dist_free(d);
    return rc;
}
