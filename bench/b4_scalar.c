/* B4 scalar-graph: the extended Rosenbrock function of n scalar (0-d, f64)
 * variables, f = sum_i 100(x_{i+1} - x_i^2)^2 + (1 - x_i)^2, built op by op,
 * then its gradient by nb_backward; the graph is rebuilt (after
 * nb_graph_reset) every evaluation. x = (-1.2, 1, -1.2, 1, ...).
 * ns_per_op = wall time / primitive ops recorded by the forward pass
 * (8 per term); one untimed warm-up evaluation first.
 *
 *   b4_scalar               n = 10000 and n = 1000, 20 evaluations each
 *   b4_scalar N [EVALS]     one size
 *   b4_scalar --scaling [N] n = 10^3 .. 10^6 (or only N): time per op and
 *                           memory (one size per process gives a clean peak
 *                           RSS: bench/run --scaling does that) */

#include <math.h>

#include "bench.h"

typedef struct problem {
    int n;
    nb_tensor **x;
    double *xv, *grad;
} problem;

/* One evaluation: build f and its gradient. Returns the forward op count. */
static uint64_t evaluate(nb_graph *g, problem *p)
{
    int n = p->n;
    nb_graph_reset(g);
    for (int i = 0; i < n; i++)
        p->x[i] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, p->xv[i]), true);
    nb_tensor *f = nb_scalar(g, NB_F64, 0.0);
    nb_tensor *hundred = nb_scalar(g, NB_F64, 100.0), *one = nb_scalar(g, NB_F64, 1.0);
    uint64_t e0 = nb_graph_evals(g);
    for (int i = 0; i + 1 < n; i++) {
        nb_tensor *a = nb_sub(g, p->x[i + 1], nb_mul(g, p->x[i], p->x[i]));
        nb_tensor *b = nb_sub(g, one, p->x[i]);
        nb_tensor *term = nb_add(g, nb_mul(g, hundred, nb_mul(g, a, a)), nb_mul(g, b, b));
        f = nb_add(g, f, term);
    }
    uint64_t ops = nb_graph_evals(g) - e0;
    bench_check(g, f, "forward");
    if (nb_backward(g, f) != NB_OK)
        bench_check(g, NULL, "backward");
    for (int i = 0; i < n; i++)
        p->grad[i] = nb_tensor_item(nb_tensor_grad(p->x[i]));
    return ops;
}

/* max |grad - analytic| / max |analytic| */
static double grad_rel_err(const problem *p)
{
    double err = 0, gmax = 0;
    for (int i = 0; i < p->n; i++) {
        double gi = 0;
        const double *x = p->xv;
        if (i + 1 < p->n)
            gi += -400 * (x[i + 1] - x[i] * x[i]) * x[i] - 2 * (1 - x[i]);
        if (i > 0)
            gi += 200 * (x[i] - x[i - 1] * x[i - 1]);
        err = fmax(err, fabs(gi - p->grad[i]));
        gmax = fmax(gmax, fabs(gi));
    }
    return err / gmax;
}

static void run(int n, int evals, int scaling)
{
    problem p = {n, malloc((size_t)n * sizeof(nb_tensor *)), malloc((size_t)n * sizeof(double)),
                 malloc((size_t)n * sizeof(double))};
    if (!p.x || !p.xv || !p.grad)
        bench_check(NULL, NULL, "allocation");
    for (int i = 0; i < n; i++)
        p.xv[i] = i % 2 == 0 ? -1.2 : 1.0;
    double rss0 = bench_rss_mb();
    bench_reset_peak();
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    bench_set_threads(g, 1);
    double tw = bench_now();
    uint64_t ops = evaluate(g, &p); /* warm-up: the arena grows to its size here */
    tw = bench_now() - tw;
    double peak = bench_peak_mb();
    double graph_mb = (double)nb_graph_bytes(g) / (1024.0 * 1024.0);
    double t0 = bench_now();
    for (int e = 0; e < evals; e++)
        evaluate(g, &p);
    double t = bench_now() - t0;
    printf(
        "{\"workload\": \"B4\", \"impl\": \"nabla\", %s\"threads\": 1, \"n\": %d, \"evals\": %d, "
        "\"ops\": %llu, \"ns_per_op\": %.2f, \"us_per_eval\": %.1f, \"first_eval_us\": %.1f, "
        "\"grad_rel_err\": %.3g, \"peak_rss_mb\": %.1f, \"peak_over_base_mb\": %.1f, "
        "\"graph_mb\": %.2f, \"graph_bytes_per_op\": %.1f}\n",
        scaling ? "\"mode\": \"scaling\", " : "", n, evals, (unsigned long long)ops,
        1e9 * t / ((double)ops * evals), 1e6 * t / evals, 1e6 * tw, grad_rel_err(&p), peak,
        peak - rss0, graph_mb, (double)nb_graph_bytes(g) / (double)ops);
    fflush(stdout);
    nb_graph_free(g);
    free(p.x);
    free(p.xv);
    free(p.grad);
}

int main(int argc, char **argv)
{
    if (bench_flag(argc, argv, "--scaling")) {
        int only = argc > 2 ? atoi(argv[argc - 1]) : 0;
        for (int n = 1000; n <= 1000000; n *= 10)
            if (only <= 0 || n == only)
                run(n, n >= 100000 ? 1 : 100000 / n, 1);
        return 0;
    }
    if (argc > 1) {
        int n = atoi(argv[1]), evals = argc > 2 ? atoi(argv[2]) : 20;
        if (n < 2 || evals < 1) {
            fprintf(stderr, "usage: b4_scalar [n >= 2 [evals >= 1]] | --scaling\n");
            return 2;
        }
        run(n, evals, 0);
        return 0;
    }
    run(10000, 20, 0);
    run(1000, 20, 0);
    return 0;
}
