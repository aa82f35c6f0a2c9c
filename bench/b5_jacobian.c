/* B5 jacobian-modes: the full Jacobian of f(x) = tanh(W x), W a fixed
 * m x n matrix with N(0, 1/n) entries, x ~ N(0, 1), f64, built by
 * nb_jacobian in forward mode (one JVP per input) and in reverse mode (one
 * VJP per output), for (n, m) = (1000, 1), (1, 1000), (100, 100).
 * One timed call = reset the graph, record f, build the Jacobian (as a
 * call of torch.autograd.functional.jacobian evaluates f too). fwd_ms and
 * rev_ms are medians over >= 3 calls and >= 0.3 s; *_evals are the
 * primitive evaluations a call made (nb_graph_evals), which follow n for
 * forward mode and m for reverse mode. Every Jacobian is checked against
 * the analytic one, (1 - tanh(Wx)^2)_i W_ij. */

#include <math.h>

#include "bench.h"

typedef struct problem {
    int64_t n, m;
    double *W, *x, *J; /* J: analytic, m x n */
} problem;

/* Record f and its Jacobian by @p mode; returns the [m,1,n,1] Jacobian. */
static nb_tensor *jacobian(nb_graph *g, const problem *p, nb_jacobian_mode mode)
{
    nb_graph_reset(g);
    nb_tensor *W = nb_tensor_from(g, NB_F64, 2, (int64_t[]){p->m, p->n}, p->W);
    nb_tensor *x = nb_tensor_from(g, NB_F64, 2, (int64_t[]){p->n, 1}, p->x);
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *y = nb_tanh(g, nb_matmul(g, W, x, false, false));
    nb_tensor *J = nb_jacobian(g, y, x, mode);
    bench_check(g, J, "jacobian");
    return J;
}

static double max_err(nb_tensor *J, const problem *p)
{
    const double *j = nb_tensor_f64(J);
    double e = 0;
    for (int64_t i = 0; i < p->m * p->n; i++)
        e = fmax(e, fabs(j[i] - p->J[i]));
    return e;
}

/* Median ms of >= 3 calls and >= 0.3 s; *evals gets one call's evaluations. */
static double time_ms(nb_graph *g, const problem *p, nb_jacobian_mode mode, uint64_t *evals,
                      double *err)
{
    double ts[4096], total = 0;
    int k = 0;
    while ((k < 3 || total < 0.3) && k < 4096) {
        double t0 = bench_now();
        nb_tensor *J = jacobian(g, p, mode);
        ts[k] = bench_now() - t0;
        total += ts[k++];
        *evals = nb_graph_evals(g);
        *err = max_err(J, p);
    }
    return 1e3 * bench_median(ts, k);
}

int main(void)
{
    const int64_t cases[3][2] = {{1000, 1}, {1, 1000}, {100, 100}};
    nb_rng rng;
    nb_rng_seed(&rng, 0);
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    bench_set_threads(g, 1);
    for (int c = 0; c < 3; c++) {
        problem p = {cases[c][0], cases[c][1], NULL, NULL, NULL};
        p.W = malloc((size_t)(p.m * p.n) * sizeof(double));
        p.x = malloc((size_t)p.n * sizeof(double));
        p.J = malloc((size_t)(p.m * p.n) * sizeof(double));
        if (!p.W || !p.x || !p.J)
            bench_check(NULL, NULL, "allocation");
        for (int64_t i = 0; i < p.m * p.n; i++)
            p.W[i] = nb_rng_normal(&rng) / sqrt((double)p.n);
        for (int64_t i = 0; i < p.n; i++)
            p.x[i] = nb_rng_normal(&rng);
        for (int64_t i = 0; i < p.m; i++) {
            double s = 0;
            for (int64_t j = 0; j < p.n; j++)
                s += p.W[i * p.n + j] * p.x[j];
            double d = 1 - tanh(s) * tanh(s);
            for (int64_t j = 0; j < p.n; j++)
                p.J[i * p.n + j] = d * p.W[i * p.n + j];
        }
        jacobian(g, &p, NB_JACOBIAN_REVERSE); /* warm-up */
        uint64_t fe = 0, re = 0;
        double ferr = 0, rerr = 0;
        double rev = time_ms(g, &p, NB_JACOBIAN_REVERSE, &re, &rerr);
        double fwd = time_ms(g, &p, NB_JACOBIAN_FORWARD, &fe, &ferr);
        printf(
            "{\"workload\": \"B5\", \"impl\": \"nabla\", \"threads\": 1, \"n\": %lld, \"m\": %lld, "
            "\"fwd_ms\": %.4f, \"rev_ms\": %.4f, \"fwd_evals\": %llu, \"rev_evals\": %llu, "
            "\"max_abs_err\": %.3g}\n",
            (long long)p.n, (long long)p.m, fwd, rev, (unsigned long long)fe,
            (unsigned long long)re, fmax(ferr, rerr));
        fflush(stdout);
        free(p.W);
        free(p.x);
        free(p.J);
    }
    nb_graph_free(g);
    return 0;
}
