/* nabla modes: the cost of a full Jacobian of f: R^n -> R^m by forward mode
 * (one tangent sweep per input) and by reverse mode (one adjoint sweep per
 * output), measured on f(x) = tanh(W x) with a fixed random W. */

#include <math.h>
#include <string.h>

#include "cli.h"

static const char *modes_usage =
    "usage: nabla modes [--n N] [--m M] [--seed S] [--json]\n"
    "\n"
    "Builds the full Jacobian of f(x) = tanh(W x), W a fixed random m x n\n"
    "matrix (f64), by forward mode and by reverse mode, and prints for each the\n"
    "sweeps, the primitive evaluations and the time.\n"
    "\n"
    "  --n N      inputs (default 100)\n"
    "  --m M      outputs (default 10)\n"
    "  --seed S   random seed of W and x (default 1)\n"
    "  --json     one JSON object per mode instead of the table\n";

typedef struct mode_run {
    const char *name;
    nb_jacobian_mode mode;
    int64_t sweeps;
    uint64_t evals;
    double ms;
    nb_tensor *jac;
} mode_run;

int cmd_modes(int argc, char **argv)
{
    long n = 100, m = 10, seed = 1;
    bool json = false;
    const cli_opt opts[] = {
        {"--n", CLI_INT, &n, 1, 100000},
        {"--m", CLI_INT, &m, 1, 100000},
        {"--seed", CLI_INT, &seed, 0, 2147483647},
        {"--json", CLI_FLAG, &json, 0, 0},
    };
    int rc = cli_parse("modes", modes_usage, argc, argv, 2, opts, 4, NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if ((double)n * (double)m > 4e7)
        return cli_error("modes",
                         "n*m = %.0f Jacobian entries is more than this demo holds "
                         "(4e7)",
                         (double)n * (double)m);

    nb_graph *g = nb_graph_new();
    if (!g)
        return cli_error("modes", "out of memory");
    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    int64_t ws[2] = {m, n}, xs[2] = {n, 1}, ys[1] = {m};
    nb_tensor *W = nb_rand_normal(g, &rng, NB_F64, 2, ws, 0, 1 / sqrt((double)n));
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F64, 1, xs, -1, 1);
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *y =
        nb_reshape(g, nb_tanh(g, nb_matmul(g, W, nb_reshape(g, x, 2, xs), false, false)), 1, ys);
    mode_run runs[2] = {{"forward", NB_JACOBIAN_FORWARD, n, 0, 0, NULL},
                        {"reverse", NB_JACOBIAN_REVERSE, m, 0, 0, NULL}};
    for (int k = 0; k < 2 && y; k++) {
        uint64_t e0 = nb_graph_evals(g);
        double t0 = cli_now();
        runs[k].jac = nb_jacobian(g, y, x, runs[k].mode);
        runs[k].ms = 1e3 * (cli_now() - t0);
        runs[k].evals = nb_graph_evals(g) - e0;
    }
    if (!y || !runs[0].jac || !runs[1].jac) {
        cli_error("modes", "%s", nb_graph_error(g)->msg);
        nb_graph_free(g);
        return 1;
    }
    double diff = 0;
    for (int64_t i = 0; i < m * n; i++)
        diff = fmax(diff, fabs(nb_tensor_get(runs[0].jac, i) - nb_tensor_get(runs[1].jac, i)));

    if (json) {
        for (int k = 0; k < 2; k++) {
            printf("{\"mode\": \"%s\", \"n\": %ld, \"m\": %ld, \"sweeps\": %lld, "
                   "\"evals\": %llu, \"ms\": ",
                   runs[k].name, n, m, (long long)runs[k].sweeps,
                   (unsigned long long)runs[k].evals);
            cli_json_num(stdout, runs[k].ms);
            cli_json_num_field("max_abs_diff", diff);
            printf("}\n");
        }
    } else {
        printf("Jacobian of f(x) = tanh(W x): R^%ld -> R^%ld (%ld x %ld entries, f64)\n\n", n, m, m,
               n);
        printf("  %-8s %10s %12s %10s\n", "mode", "sweeps", "evaluations", "ms");
        for (int k = 0; k < 2; k++)
            printf("  %-8s %10lld %12llu %10.3f\n", runs[k].name, (long long)runs[k].sweeps,
                   (unsigned long long)runs[k].evals, runs[k].ms);
        printf("\n  the two Jacobians agree to %.2g (largest difference)\n", diff);
        printf("  rule of thumb: forward mode costs one sweep per input (n = %ld), reverse\n"
               "  mode one per output (m = %ld), each a small multiple of one evaluation;\n"
               "  here %s mode is the cheaper one%s.\n",
               n, m,
               n < m   ? "forward"
               : n > m ? "reverse"
                       : "neither",
               m == 1 ? " (a gradient: one reverse sweep)" : "");
    }
    nb_graph_free(g);
    return 0;
}
