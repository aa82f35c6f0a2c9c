/* B11 data-parallel: the B2 MLP (784-256-128-10 ReLU, He-uniform, f32,
 * Adam lr 1e-3) trained on Fashion-MNIST (pixels / 255) by P processes
 * through nabla/dist.h, started by an MPI launcher:
 *
 *   mpirun -np P b11_dist              (or alone: P = 1)
 *   mpirun -np P b11_dist --allreduce  the step's parts timed apart
 *
 * Every step takes a global batch of 256 distinct training images from a
 * fixed sequence of draws (seed 0, the same on every rank); rank r of P
 * takes the rows [256·r/P, 256·(r+1)/P) of it, 1 thread per process. A
 * step is zero-grad, forward, mean softmax cross-entropy, backward,
 * nb_dist_average_grads (weight: the share's size over 256; skipped for
 * P = 1, which runs as a plain process), optimizer step, graph reset.
 *
 * Default mode (rank 0 prints):
 *   ms_per_step   median of 100 steps after 5 warm-up steps, timed on
 *                 rank 0 (which waits for the slowest rank in the
 *                 all-reduce), as ddp_ref.py times its rank 0
 *   max_rel_param_diff_20  (P > 1) parameters after the first 20 steps,
 *                 against one process (rank 0 trains it alone afterwards
 *                 from the same initial weights and the same batches):
 *                 max |a - b| / max(1e-3, |a|), a = one process's; also
 *                 for SGD (lr 0.05) in f32 and f64, and Adam in f64
 * --allreduce:
 *   allreduce_ms  median over 100 calls of nb_dist_average_grads alone
 *                 (pack, MPI_Allreduce, unpack of the 235k gradients),
 *                 each after a barrier, on rank 0
 *   compute_ms    median of 100 steps without the all-reduce (this rank's
 *                 share only), each after a barrier, on rank 0
 *   These are the two terms of the cost model in docs/distributed.md. */

#include <math.h>

#include "train.h"

#include "nabla/dist.h"

#define GLOBAL 256
#define WARMUP 5
#define TIMED 100
#define SNAP 20 /* the parameters are compared after this many steps */

static const int64_t sizes[4] = {784, 256, 128, 10};

/* A model being trained: network, optimizer, graph, and this rank's share
 * of a batch as the program gathers it. */
typedef struct b11_run {
    nb_model *m;
    nb_layer *net;
    nb_optim *opt;
    nb_graph *g;
    nb_dtype dt;
    void *x;         /* the share's rows, in dt */
    int64_t *labels; /* the share's labels */
} b11_run;

static void die_dist(nb_dist *d, const char *what)
{
    fprintf(stderr, "b11_dist: %s: %s\n", what, nb_dist_error(d)->msg);
    nb_dist_abort(d, 1);
    exit(1);
}

/* The B2 model (initial weights from seed 0) in @p dt, and Adam (lr 1e-3)
 * or SGD (lr 0.05), with room for a share of up to GLOBAL rows. */
static void run_new(b11_run *r, nb_dtype dt, int kind)
{
    nb_rng init;
    nb_rng_seed(&init, 0);
    r->dt = dt;
    r->m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &init;
    o.layer.dtype = dt;
    r->net = NULL;
    if (!r->m || nb_mlp_new(r->m, NULL, sizes, 4, &o, &r->net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_optim_opts oo = nb_optim_defaults(kind);
    oo.lr = kind == NB_OPTIM_ADAM ? 1e-3 : 0.05;
    r->opt = nb_optim_new(&oo);
    r->g = nb_graph_new();
    size_t esz = dt == NB_F64 ? sizeof(double) : sizeof(float);
    r->x = malloc((size_t)GLOBAL * (size_t)sizes[0] * esz);
    r->labels = malloc(GLOBAL * sizeof *r->labels);
    if (!r->opt || !r->x || !r->labels)
        bench_check(NULL, NULL, "optimizer / buffers");
    bench_check(r->g, r->g, "graph");
    bench_set_threads(r->g, 1);
}

static void run_free(b11_run *r)
{
    free(r->x);
    free(r->labels);
    nb_graph_free(r->g);
    nb_optim_free(r->opt);
    nb_layer_free(r->net);
    nb_model_free(r->m);
}

/* Draws: @p steps global batches of GLOBAL distinct indices of n, each the
 * first GLOBAL entries of a partial Fisher-Yates shuffle from seed 0. */
static int64_t *draw_batches(int64_t n, int steps)
{
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    int64_t *out = malloc((size_t)steps * GLOBAL * sizeof *out);
    if (!perm || !out)
        bench_check(NULL, NULL, "index draws");
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    nb_rng rng;
    nb_rng_seed(&rng, 0);
    for (int s = 0; s < steps; s++)
        for (int64_t j = 0; j < GLOBAL; j++) {
            int64_t k = j + (int64_t)nb_rng_below(&rng, (uint64_t)(n - j));
            int64_t t = perm[j];
            perm[j] = perm[k];
            perm[k] = t;
            out[(int64_t)s * GLOBAL + j] = perm[j];
        }
    free(perm);
    return out;
}

/* One step on the share [lo, hi) of the global batch @p idx; the gradients
 * are averaged over @p d's ranks unless @p d is NULL (one process). */
static void step(b11_run *r, const nb_dataset *ds, const int64_t *idx, int64_t lo, int64_t hi,
                 nb_dist *d)
{
    const float *src = nb_dataset_feature_data(ds);
    int64_t f = sizes[0], b = hi - lo;
    for (int64_t i = 0; i < b; i++) {
        const float *row = src + idx[lo + i] * f;
        if (r->dt == NB_F64)
            for (int64_t j = 0; j < f; j++)
                ((double *)r->x)[i * f + j] = row[j];
        else
            memcpy((float *)r->x + i * f, row, (size_t)f * sizeof(float));
        r->labels[i] = nb_dataset_label(ds, idx[lo + i]);
    }
    nb_model_zero_grad(r->m);
    if (b > 0) {
        nb_tensor *x = nb_tensor_from(r->g, r->dt, 2, (int64_t[]){b, f}, r->x);
        nb_tensor *logits = nb_layer_forward(r->g, r->net, x, true);
        nb_tensor *loss = nb_softmax_cross_entropy(r->g, logits, r->labels, b, NB_REDUCE_MEAN);
        bench_check(r->g, loss, "forward");
        if (nb_backward(r->g, loss) != NB_OK)
            bench_check(r->g, NULL, "backward");
    }
    if (d && nb_dist_average_grads(d, r->m, (double)b / GLOBAL) != NB_OK)
        die_dist(d, "averaging the gradients");
    if (nb_optim_step(r->opt, r->m) != NB_OK) {
        fprintf(stderr, "b11_dist: optimizer step failed: %s\n", nb_optim_error(r->opt)->msg);
        exit(1);
    }
    nb_graph_reset(r->g);
}

/* Largest |a - b| / max(1e-3, |a|) over two models of one layout (the
 * measure of ddp_ref.py, a = one process). */
static double max_rel_diff(const nb_model *a, const nb_model *b)
{
    double worst = 0;
    const nb_tensor *q = nb_model_next(b, NULL);
    for (const nb_tensor *p = nb_model_next(a, NULL); p && q; p = nb_model_next(a, p)) {
        for (int64_t i = 0; i < nb_tensor_size(p); i++) {
            double x = nb_tensor_get(p, i), y = nb_tensor_get(q, i);
            double rel = fabs(x - y) / fmax(1e-3, fabs(x));
            worst = isnan(rel) ? INFINITY : fmax(worst, rel);
        }
        q = nb_model_next(b, q);
    }
    return worst;
}

/* run_new, with the same initial weights on every rank, checked. */
static void start(b11_run *r, nb_dist *d, nb_dtype dt, int kind)
{
    run_new(r, dt, kind);
    if (nb_dist_check(d, r->m, "workload=B11\nbatch=256\nseed=0\n") != NB_OK ||
        nb_dist_broadcast(d, r->m) != NB_OK)
        die_dist(d, "start");
}

/* SNAP steps of @p dt / @p kind over the ranks of @p d, then (rank 0) the
 * same steps in one process: their largest relative difference. */
static double equivalence(const nb_dataset *ds, const int64_t *idx, nb_dist *d, nb_dtype dt,
                          int kind)
{
    int rank = nb_dist_rank(d), size = nb_dist_size(d);
    b11_run many, one;
    start(&many, d, dt, kind);
    for (int s = 0; s < SNAP; s++)
        step(&many, ds, idx + (int64_t)s * GLOBAL, GLOBAL * rank / size, GLOBAL * (rank + 1) / size,
             d);
    double diff = 0;
    if (rank == 0) {
        run_new(&one, dt, kind);
        for (int s = 0; s < SNAP; s++)
            step(&one, ds, idx + (int64_t)s * GLOBAL, 0, GLOBAL, NULL);
        diff = max_rel_diff(one.m, many.m);
        run_free(&one);
    }
    run_free(&many);
    return diff;
}

/* A barrier: a sum of one double over the ranks. */
static void barrier(nb_dist *d)
{
    double one = 1;
    if (nb_dist_sum(d, &one, 1) != NB_OK)
        die_dist(d, "barrier");
}

/* WARMUP + TIMED steps of this rank's shares, the gradients averaged over
 * @p d's ranks when @p average, each step after a barrier when @p sync:
 * the median ms of the last TIMED. */
static double median_step_ms(b11_run *r, const nb_dataset *ds, const int64_t *idx, nb_dist *d,
                             bool average, bool sync)
{
    int rank = nb_dist_rank(d), size = nb_dist_size(d);
    int64_t lo = GLOBAL * rank / size, hi = GLOBAL * (rank + 1) / size;
    double t[TIMED];
    for (int s = 0; s < WARMUP + TIMED; s++) {
        if (sync)
            barrier(d);
        double t0 = bench_now();
        step(r, ds, idx + (int64_t)s * GLOBAL, lo, hi, average ? d : NULL);
        if (s >= WARMUP)
            t[s - WARMUP] = bench_now() - t0;
    }
    return 1e3 * bench_median(t, TIMED);
}

/* Default mode: the timed steps, then the equivalence figures. */
static void timed(const nb_dataset *ds, const int64_t *idx, nb_dist *d)
{
    int rank = nb_dist_rank(d), size = nb_dist_size(d);
    b11_run r;
    start(&r, d, NB_F32, NB_OPTIM_ADAM);
    double ms = median_step_ms(&r, ds, idx, d, size > 1, false);
    if (rank == 0) {
        printf("{\"workload\": \"B11\", \"impl\": \"nabla\", \"procs\": %d, \"global_batch\": %d, "
               "\"ms_per_step\": %.4f, \"images_per_s\": %.1f, \"matmul\": \"%s\", "
               "\"blas_core\": \"%s\"}\n",
               size, GLOBAL, ms, GLOBAL / ms * 1e3, nb_graph_matmul_name(r.g), bench_blas_core());
        fflush(stdout);
    }
    run_free(&r);
    if (size == 1)
        return;
    double adam = equivalence(ds, idx, d, NB_F32, NB_OPTIM_ADAM);
    double sgd32 = equivalence(ds, idx, d, NB_F32, NB_OPTIM_SGD);
    double sgd64 = equivalence(ds, idx, d, NB_F64, NB_OPTIM_SGD);
    double adam64 = equivalence(ds, idx, d, NB_F64, NB_OPTIM_ADAM);
    if (rank == 0)
        printf(
            "{\"workload\": \"B11\", \"impl\": \"nabla\", \"procs\": %d, "
            "\"max_rel_param_diff_20\": %.3g, \"max_rel_param_diff_20_sgd_f32\": %.3g, "
            "\"max_rel_param_diff_20_sgd_f64\": %.3g, \"max_rel_param_diff_20_adam_f64\": %.3g}\n",
            size, adam, sgd32, sgd64, adam64);
}

/* --allreduce: the all-reduce of the gradients and the rest of a step,
 * timed apart (each after a barrier, so that the ranks start together). */
static void parts(const nb_dataset *ds, const int64_t *idx, nb_dist *d)
{
    int rank = nb_dist_rank(d), size = nb_dist_size(d);
    int64_t lo = GLOBAL * rank / size, hi = GLOBAL * (rank + 1) / size;
    b11_run r;
    start(&r, d, NB_F32, NB_OPTIM_ADAM);
    double c = median_step_ms(&r, ds, idx, d, false, true), red[TIMED];
    /* gradients of one more share, averaged over and over (their values
     * stay finite: each call averages equal-weighted copies) */
    step(&r, ds, idx, lo, hi, NULL); /* leaves the gradients allocated */
    for (int s = 0; s < WARMUP + TIMED; s++) {
        barrier(d);
        double t0 = bench_now();
        if (nb_dist_average_grads(d, r.m, 1.0 / size) != NB_OK)
            die_dist(d, "averaging the gradients");
        if (s >= WARMUP)
            red[s - WARMUP] = bench_now() - t0;
    }
    double params = (double)nb_model_numel(r.m);
    run_free(&r);
    double a = 1e3 * bench_median(red, TIMED);
    if (rank == 0)
        printf(
            "{\"workload\": \"B11\", \"impl\": \"nabla\", \"mode\": \"allreduce\", \"procs\": %d, "
            "\"params\": %.0f, \"param_bytes\": %.0f, \"bytes_per_rank_ring\": %.0f, "
            "\"allreduce_ms\": %.4f, \"compute_ms\": %.4f}\n",
            size, params, 4 * params, 2.0 * (size - 1) / size * 4 * params, a, c);
}

int main(int argc, char **argv)
{
    nb_dist *d = NULL;
    nb_error err;
    if (nb_dist_init(NULL, &d, &err) != NB_OK) {
        fprintf(stderr, "b11_dist: %s\n", err.msg);
        return 1;
    }
    nb_dataset *train = NULL, *test = NULL;
    bench_fashion(&train, &test);
    int64_t *idx = draw_batches(nb_dataset_count(train), WARMUP + TIMED);
    if (bench_flag(argc, argv, "--allreduce"))
        parts(train, idx, d);
    else
        timed(train, idx, d);
    free(idx);
    nb_dataset_free(train);
    nb_dataset_free(test);
    nb_dist_free(d);
    return 0;
}
