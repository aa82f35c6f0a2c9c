/* P1 sgemm-peak, nabla's side: nb_matmul GFLOP/s (f32, C = A·B, row-major)
 * on the B2 layer shapes 128x784x256, 128x256x128, 128x128x10 (m x k x n)
 * and 1024^3, at 1 and 2 threads, through a graph as a program uses it:
 * A and B are model parameters, every call records C in a graph with
 * recording off and resets the graph. As blas_peak.c: 7 trials (after a
 * warm-up), each repeating the call for >= 0.1 s; "gflops" is the best
 * trial, "gflops_median" the median. "matmul" names the kernel the library
 * was built with ("cblas": OpenBLAS, whose kernel set is "blas_core";
 * "builtin": the library's own blocked kernel). check_rel_err spot-checks
 * 64 entries against a double-precision dot product.
 *
 * --conv: the products of B9's layers instead (per sample, the GEMMs the
 * convolutions run on their patch matrices; the linear layers' on the
 * batch), each with its transposes, in lines with "mode": "conv" and the
 * product's name (bench/run's table leaves them out). --mlp: the same for
 * B1's products (batch 32, 1 thread), "mode": "mlp". */

#include <math.h>

#include "bench.h"

#define TRIALS 7

/* C [M,N] = op(A) op(B), op(A) [M,K] and op(B) [K,N]; name: a --conv or
 * --mlp product, mode that flag's name */
static void peak(int M, int K, int N, bool ta, bool tb, int threads, const char *mode,
                 const char *name)
{
    nb_model *mod = nb_model_new();
    nb_tensor *A = NULL, *B = NULL;
    if (!mod ||
        nb_model_add(mod, "A", NB_F32, 2, ta ? (int64_t[]){K, M} : (int64_t[]){M, K}, &A) !=
            NB_OK ||
        nb_model_add(mod, "B", NB_F32, 2, tb ? (int64_t[]){N, K} : (int64_t[]){K, N}, &B) != NB_OK)
        bench_check(NULL, NULL, "parameters");
    float *a = nb_tensor_f32(A), *b = nb_tensor_f32(B);
    for (long i = 0; i < (long)M * K; i++)
        a[i] = (float)(i % 97) * 0.01f;
    for (long i = 0; i < (long)K * N; i++)
        b[i] = (float)(i % 89) * 0.01f;
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    nb_graph_set_recording(g, false);
    bench_set_threads(g, threads);
    /* this program measures one kernel: CBLAS, or (p1_matmul_builtin) the
     * built-in one, whatever NB_MATMUL_AUTO would pick */
    nb_graph_set_matmul(g, strcmp(BENCH_MATMUL, "cblas") == 0 ? NB_MATMUL_CBLAS : NB_MATMUL_BUILTIN);
    double r[TRIALS], flop = 2.0 * M * N * K;
    for (int t = -1; t < TRIALS; t++) {
        long reps = 0;
        double t0 = bench_now(), el;
        do {
            nb_graph_reset(g);
            bench_check(g, nb_matmul(g, A, B, ta, tb), "matmul");
            reps++;
        } while ((el = bench_now() - t0) < 0.1);
        if (t >= 0)
            r[t] = flop * (double)reps / el / 1e9;
    }
    nb_graph_reset(g);
    nb_tensor *C = nb_matmul(g, A, B, ta, tb);
    bench_check(g, C, "matmul");
    const float *c = nb_tensor_f32(C);
    double err = 0;
    for (int s = 0; s < 64; s++) {
        int i = (s * 37) % M, j = (s * 53) % N;
        double ref = 0;
        for (int k = 0; k < K; k++)
            ref += (double)a[ta ? (long)k * M + i : (long)i * K + k] *
                   b[tb ? (long)j * K + k : (long)k * N + j];
        err = fmax(err, fabs((c[(long)i * N + j] - ref) / (ref != 0 ? ref : 1)));
    }
    double best = 0, sorted[TRIALS];
    for (int t = 0; t < TRIALS; t++)
        best = fmax(best, r[t]);
    memcpy(sorted, r, sizeof sorted);
    char conv[96] = "";
    if (name)
        snprintf(conv, sizeof conv,
                 "\"mode\": \"%s\", \"product\": \"%s\", \"ta\": %d, \"tb\": %d, ", mode, name, ta,
                 tb);
    printf("{\"workload\": \"P1\", %s\"impl\": \"nabla\", \"matmul\": \"%s\", \"blas_core\": \"%s\", "
           "\"threads\": %d, \"m\": %d, \"k\": %d, \"n\": %d, \"gflops\": %.1f, "
           "\"gflops_median\": %.1f, \"check_rel_err\": %.1e}\n",
           conv, BENCH_MATMUL, strcmp(BENCH_MATMUL, "cblas") == 0 ? bench_blas_core() : "none",
           threads, M, K, N, best, bench_median(sorted, TRIALS), err);
    fflush(stdout);
    nb_graph_free(g);
    nb_model_free(mod);
}

/* A network's product, as --conv and --mlp list them */
typedef struct product {
    const char *name;
    int m, k, n;
    bool ta, tb;
} product;

static void run_products(const product *t, size_t n, int max_threads, const char *mode)
{
    for (int threads = 1; threads <= max_threads; threads++)
        for (size_t s = 0; s < n; s++)
            peak(t[s].m, t[s].k, t[s].n, t[s].ta, t[s].tb, threads, mode, t[s].name);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--conv") == 0) {
        /* B9 at batch 128: conv 3x3 1->32 pad 1 on 28x28 (K = 9, P = 784),
         * conv 3x3 32->64 pad 1 on 14x14 (K = 288, P = 196), linear
         * 3136->128 and 128->10; forward, input and weight gradients */
        static const product conv[] = {
            {"conv1 forward", 32, 9, 784, false, false},
            {"conv1 weight grad", 32, 784, 9, false, true},
            {"conv2 forward", 64, 288, 196, false, false},
            {"conv2 input grad", 288, 64, 196, true, false},
            {"conv2 weight grad", 64, 196, 288, false, true},
            /* the second convolution's Winograd products (16 of each per
             * block of 4 samples: 4 rows of 8 tiles, 224 columns) */
            {"conv2 winograd forward", 64, 32, 224, false, false},
            {"conv2 winograd input grad", 32, 64, 224, false, false},
            {"conv2 winograd weight grad", 64, 224, 32, false, true},
            {"fc1 forward", 128, 3136, 128, false, false},
            {"fc1 input grad", 128, 128, 3136, false, true},
            {"fc1 weight grad", 3136, 128, 128, true, false},
            {"fc2 forward", 128, 128, 10, false, false},
            {"fc2 input grad", 128, 10, 128, false, true},
            {"fc2 weight grad", 128, 128, 10, true, false},
        };
        run_products(conv, sizeof conv / sizeof *conv, 2, "conv");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--mlp") == 0) {
        /* B1 at batch 32: linear 64->128, 128->64, 64->10 (W [in,out]);
         * forward, input and weight gradients, 1 thread as B1 runs */
        static const product mlp[] = {
            {"fc1 forward", 32, 64, 128, false, false},
            {"fc1 weight grad", 64, 32, 128, true, false},
            {"fc2 forward", 32, 128, 64, false, false},
            {"fc2 input grad", 32, 64, 128, false, true},
            {"fc2 weight grad", 128, 32, 64, true, false},
            {"fc3 forward", 32, 64, 10, false, false},
            {"fc3 input grad", 32, 10, 64, false, true},
            {"fc3 weight grad", 64, 32, 10, true, false},
        };
        run_products(mlp, sizeof mlp / sizeof *mlp, 1, "mlp");
        return 0;
    }
    const int shapes[4][3] = {{128, 784, 256}, {128, 256, 128}, {128, 128, 10}, {1024, 1024, 1024}};
    for (int threads = 1; threads <= 2; threads++)
        for (int s = 0; s < 4; s++)
            peak(shapes[s][0], shapes[s][1], shapes[s][2], false, false, threads, NULL, NULL);
    return 0;
}
