/* B8 symbolic: size of a symbolic derivative. f_0 = x*y,
 * f_{k+1} = sin(f_k)*f_k + x, built with nb_sym_apply in a fresh pool;
 * d f_d / dx by nb_sym_diff (which simplifies) for d = 5, 10, 20.
 * nodes_out = distinct nodes of the derivative's DAG (nb_sym_dag_size),
 * nodes_in the same for f_d, tree_ops its size written out as a tree.
 * ms = the nb_sym_diff call alone, median of >= 3 calls, each in a new
 * pool (so nothing is cached between calls). */

#include "bench.h"

static const nb_expr *build(nb_sym *s, int d)
{
    const nb_expr *x = nb_sym_var(s, "x"), *y = nb_sym_var(s, "y");
    const nb_expr *f = nb_sym_apply(s, NB_SYM_MUL, (const nb_expr *[]){x, y}, 2);
    for (int k = 0; k < d && f; k++) {
        const nb_expr *sf = nb_sym_apply(s, NB_SYM_SIN, &f, 1);
        const nb_expr *p = nb_sym_apply(s, NB_SYM_MUL, (const nb_expr *[]){sf, f}, 2);
        f = nb_sym_apply(s, NB_SYM_ADD, (const nb_expr *[]){p, x}, 2);
    }
    return f;
}

int main(int argc, char **argv)
{
    int depths[16] = {5, 10, 20}, nd = 3;
    if (argc > 1) { /* b8_sym 5,10,30 */
        nd = 0;
        for (char *p = argv[1]; *p && nd < 16;) {
            depths[nd++] = (int)strtol(p, &p, 10);
            if (*p == ',')
                p++;
            else if (*p)
                break;
        }
    }
    for (int i = 0; i < nd; i++) {
        int d = depths[i];
        double ts[64], total = 0;
        int k = 0;
        int64_t nodes_in = 0, nodes_out = 0;
        double tree = 0;
        while ((k < 3 || total < 0.2) && k < 64) {
            nb_sym *s = nb_sym_new();
            if (!s)
                bench_check(NULL, NULL, "pool");
            const nb_expr *f = build(s, d);
            if (!f) {
                fprintf(stderr, "bench: building f_%d failed: %s\n", d, nb_sym_error(s)->msg);
                return 1;
            }
            double t0 = bench_now();
            const nb_expr *df = nb_sym_diff(s, f, "x");
            ts[k] = bench_now() - t0;
            if (!df) {
                fprintf(stderr, "bench: d f_%d/dx failed: %s\n", d, nb_sym_error(s)->msg);
                return 1;
            }
            total += ts[k++];
            nodes_in = nb_sym_dag_size(s, f);
            nodes_out = nb_sym_dag_size(s, df);
            tree = nb_sym_tree_size(df);
            nb_sym_free(s);
        }
        printf("{\"workload\": \"B8\", \"impl\": \"nabla\", \"d\": %d, \"ms\": %.4f, "
               "\"nodes_in\": %lld, \"nodes_out\": %lld, \"tree_ops\": %.6g, \"calls\": %d}\n",
               d, 1e3 * bench_median(ts, k), (long long)nodes_in, (long long)nodes_out, tree, k);
        fflush(stdout);
    }
    return 0;
}
