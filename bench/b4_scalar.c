/* B4 scalar-graph: the extended Rosenbrock function of n scalar (0-d)
 * variables built op by op, then its gradient; the graph is rebuilt every
 * evaluation. ns_per_op = wall time / primitive ops recorded. */

#include "bench.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    int evals = argc > 2 ? atoi(argv[2]) : 20;
    if (n < 2 || evals < 1) {
        fprintf(stderr, "usage: b4_scalar [n >= 2] [evals >= 1]\n");
        return 2;
    }
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    nb_tensor **x = malloc((size_t)n * sizeof *x);
    double *xv = malloc((size_t)n * sizeof *xv), *grad = malloc((size_t)n * sizeof *grad);
    if (!x || !xv || !grad)
        return 1;
    for (int i = 0; i < n; i++)
        xv[i] = 0.5 + 0.25 * (i % 3);
    uint64_t ops = 0;
    double check = 0;
    double t0 = bench_now();
    for (int e = 0; e < evals; e++) {
        nb_graph_reset(g);
        for (int i = 0; i < n; i++)
            x[i] = nb_tensor_requires_grad(nb_scalar(g, NB_F64, xv[i]), true);
        nb_tensor *f = nb_scalar(g, NB_F64, 0.0);
        nb_tensor *hundred = nb_scalar(g, NB_F64, 100.0), *one = nb_scalar(g, NB_F64, 1.0);
        for (int i = 0; i + 1 < n; i++) {
            /* 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 */
            nb_tensor *a = nb_sub(g, x[i + 1], nb_mul(g, x[i], x[i]));
            nb_tensor *b = nb_sub(g, one, x[i]);
            nb_tensor *term = nb_add(g, nb_mul(g, hundred, nb_mul(g, a, a)), nb_mul(g, b, b));
            f = nb_add(g, f, term);
        }
        uint64_t fwd_ops = nb_graph_evals(g);
        bench_check(g, f, "forward");
        if (nb_backward(g, f) != NB_OK)
            bench_check(g, NULL, "backward");
        ops += fwd_ops;
        for (int i = 0; i < n; i++)
            grad[i] = nb_tensor_item(nb_tensor_grad(x[i]));
        check = grad[0] + nb_tensor_item(f);
    }
    double t = bench_now() - t0;
    printf("{\"workload\": \"B4\", \"impl\": \"nabla\", \"threads\": 1, \"n\": %d, \"evals\": %d, "
           "\"ops\": %llu, \"ns_per_op\": %.2f, \"us_per_eval\": %.1f, \"check\": %.6g}\n",
           n, evals, (unsigned long long)(ops / (uint64_t)evals), 1e9 * t / (double)ops,
           1e6 * t / evals, check);
    free(x);
    free(xv);
    free(grad);
    nb_graph_free(g);
    return 0;
}
