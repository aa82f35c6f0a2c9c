/* B7 deep-chain: a very deep graph. A one-element f32 tensor y = [0.5]
 * through 10^6 sequential steps y = y*0.999999 + 1e-6*sin(y) (4 primitive
 * ops per step: scale, sin, scale, add), then nb_backward. ns_per_node =
 * (forward + backward) / recorded ops; peak_rss_mb = the process's peak
 * resident memory, reset just before (as the reference does), so it counts
 * the graph and the sweep. Must not crash (no recursion over the chain). */

#include "bench.h"

int main(int argc, char **argv)
{
    long steps = argc > 1 ? atol(argv[1]) : 1000000;
    if (steps < 1) {
        fprintf(stderr, "usage: b7_deep [steps >= 1]\n");
        return 2;
    }
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    bench_set_threads(g, 1);
    bench_reset_peak();
    double rss_before = bench_rss_mb();
    nb_tensor *y0 = nb_tensor_set_requires_grad(nb_full(g, NB_F32, 1, (int64_t[]){1}, 0.5), true);
    nb_tensor *y = y0;
    uint64_t e0 = nb_graph_evals(g);
    double t0 = bench_now();
    for (long i = 0; i < steps; i++)
        y = nb_add(g, nb_scale(g, y, 0.999999), nb_scale(g, nb_sin(g, y), 1e-6));
    double t1 = bench_now();
    bench_check(g, y, "forward");
    uint64_t nodes = nb_graph_evals(g) - e0;
    if (nb_backward(g, y) != NB_OK)
        bench_check(g, NULL, "backward");
    double t2 = bench_now();
    double peak = bench_peak_mb(), graph_mb = (double)nb_graph_bytes(g) / (1024.0 * 1024.0);
    double grad = nb_tensor_item(nb_tensor_grad(y0)), value = nb_tensor_item(y);
    nb_graph_free(g);
    double t3 = bench_now();
    printf("{\"workload\": \"B7\", \"impl\": \"nabla\", \"threads\": 1, \"steps\": %ld, "
           "\"nodes\": %llu, \"fwd_s\": %.4f, \"bwd_s\": %.4f, \"free_s\": %.4f, "
           "\"ns_per_node\": %.2f, \"peak_rss_mb\": %.1f, \"rss_before_mb\": %.1f, "
           "\"graph_mb\": %.1f, \"bytes_per_node\": %.1f, \"grad\": %.6g, \"value\": %.6g}\n",
           steps, (unsigned long long)nodes, t1 - t0, t2 - t1, t3 - t2,
           1e9 * (t2 - t0) / (double)nodes, peak, rss_before, graph_mb,
           graph_mb * 1024.0 * 1024.0 / (double)nodes, grad, value);
    return 0;
}
