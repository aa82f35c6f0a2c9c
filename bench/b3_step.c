/* B3 step-overhead: per-step cost of a tiny model. A 2-16-16-1 tanh MLP
 * (He-uniform weights as the reference, f32), MSE loss, batch 1, SGD lr
 * 0.01; 256 fixed random samples x ~ N(0,1)^2, target x0*x1, sample i % 256
 * at step i; 500 warm-up steps, then 20000 timed steps. A step is: input
 * tensor, forward, loss, zero_grad, backward, optimizer step, graph reset. */

#include "bench.h"

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 20000, warmup = 500;
    if (steps < 1) {
        fprintf(stderr, "usage: b3_step [steps >= 1]\n");
        return 2;
    }
    nb_rng rng;
    nb_rng_seed(&rng, 0);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.act = NB_ACT_TANH;
    o.layer.init = NB_INIT_HE_UNIFORM;
    o.layer.rng = &rng;
    nb_layer *net = NULL;
    if (!m || nb_mlp_new(m, NULL, (int64_t[]){2, 16, 16, 1}, 4, &o, &net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_SGD);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(&oo);
    nb_graph *g = nb_graph_new();
    bench_check(g, opt, "optimizer");
    bench_check(g, g, "graph");
    bench_set_threads(g, 1);

    float X[256][2], Y[256];
    for (int i = 0; i < 256; i++) {
        X[i][0] = (float)nb_rng_normal(&rng);
        X[i][1] = (float)nb_rng_normal(&rng);
        Y[i] = X[i][0] * X[i][1];
    }
    const int64_t xs[2] = {1, 2}, ys[2] = {1, 1};
    double last_loss = 0, t0 = 0;
    for (int i = 0; i < warmup + steps; i++) {
        if (i == warmup)
            t0 = bench_now();
        int k = i % 256;
        nb_tensor *x = nb_tensor_from(g, NB_F32, 2, xs, X[k]);
        nb_tensor *y = nb_tensor_from(g, NB_F32, 2, ys, &Y[k]);
        nb_tensor *loss = nb_mse_loss(g, nb_layer_forward(g, net, x, true), y, NB_REDUCE_MEAN);
        bench_check(g, loss, "forward");
        nb_model_zero_grad(m);
        if (nb_backward(g, loss) != NB_OK)
            bench_check(g, NULL, "backward");
        if (nb_optim_step(opt, m) != NB_OK)
            bench_check(NULL, NULL, "optimizer step");
        last_loss = nb_tensor_item(loss);
        nb_graph_reset(g);
    }
    double t = bench_now() - t0;
    printf("{\"workload\": \"B3\", \"impl\": \"nabla\", \"threads\": 1, \"steps\": %d, "
           "\"us_per_step\": %.3f, \"last_loss\": %.6g}\n",
           steps, 1e6 * t / steps, last_loss);
    nb_graph_free(g);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    return 0;
}
