/* P2 stream, nabla's side: a = b + s*c over 2^24 f32 elements through nb
 * ops (nb_scale then nb_add: two kernels and a temporary, as a program
 * writes it), at 1 and 2 threads (nb_graph_set_threads). b and c are model
 * parameters; every call records into a graph with recording off and
 * resets it. GB/s counts 12 bytes per element (read b, c; write a) as
 * blas_peak.c does, so the temporary's traffic is extra work nabla does.
 * 7 trials of >= 0.1 s after a warm-up; best ("gbytes_s") and median. */

#include "bench.h"

#define TRIALS 7

int main(void)
{
    const int64_t n = (int64_t)1 << 24;
    nb_model *mod = nb_model_new();
    nb_tensor *B = NULL, *C = NULL;
    if (!mod || nb_model_add(mod, "b", NB_F32, 1, &n, &B) != NB_OK ||
        nb_model_add(mod, "c", NB_F32, 1, &n, &C) != NB_OK)
        bench_check(NULL, NULL, "parameters");
    float *b = nb_tensor_f32(B), *c = nb_tensor_f32(C);
    for (int64_t i = 0; i < n; i++) {
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    for (int threads = 1; threads <= 2; threads++) {
        nb_graph *g = nb_graph_new();
        bench_check(g, g, "graph");
        nb_graph_set_recording(g, false);
        bench_set_threads(g, threads);
        double r[TRIALS], check = 0;
        for (int t = -1; t < TRIALS; t++) {
            long reps = 0;
            double t0 = bench_now(), el;
            do {
                nb_graph_reset(g);
                nb_tensor *a = nb_add(g, B, nb_scale(g, C, 3.0));
                bench_check(g, a, "triad");
                check = nb_tensor_get(a, n - 1);
                reps++;
            } while ((el = bench_now() - t0) < 0.1);
            if (t >= 0)
                r[t] = 12.0 * (double)n * (double)reps / el / 1e9;
        }
        double best = 0;
        for (int t = 0; t < TRIALS; t++)
            best = best > r[t] ? best : r[t];
        printf("{\"workload\": \"P2\", \"impl\": \"nabla\", \"threads\": %d, \"n\": %lld, "
               "\"gbytes_s\": %.2f, \"gbytes_s_median\": %.2f, \"check\": %.1f}\n",
               threads, (long long)n, best, bench_median(r, TRIALS), check);
        fflush(stdout);
        nb_graph_free(g);
    }
    nb_model_free(mod);
    return 0;
}
