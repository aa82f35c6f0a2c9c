/* B2 mlp-fashion: train a 784-256-128-10 ReLU MLP (He-uniform, f32) on
 * Fashion-MNIST (pixels / 255) with mean softmax cross-entropy and Adam
 * (lr 1e-3, betas .9/.999, eps 1e-8), batch 128, reshuffled every epoch.
 *
 *   b2_fashion            one epoch at 1 thread and one at 2 threads, each
 *                         from the same initial model; test_acc after it
 *   b2_fashion --full     also 10 epochs at 1 thread, test_acc after them
 *   b2_fashion --trainer  one epoch through nb_trainer with its per-step
 *                         finite check on and off, alternately, 5 times
 *                         each: the check's cost (median epoch_s ratio)
 *   b2_fashion --scaling [B]  batch 32..1024 (or only B) on the first
 *                         16384 training images: time per sample and
 *                         memory (one batch size per process gives a clean
 *                         peak RSS: bench/run --scaling does that)
 *   b2_fashion --phases [S]  where a step's time goes, at 1 and at 2
 *                         threads: 3 blocks of S steps (default 150) after
 *                         20 warm-up, each phase's ms per step (median of
 *                         the blocks) and share of the step, from the
 *                         graph's profile (nb_graph_set_profile) and clocks
 *                         around the calls; a plain (unprofiled) block of S
 *                         steps after each profiled one gives the step time
 *                         without the profile's clocks
 *
 * epoch_s is the wall time of one epoch with the data already in memory.
 * gflops_epoch = the epoch's matmul work (forward, and the backward
 * products: dW of every layer, dX of all but the first) divided by epoch_s:
 * the rate the epoch would run at if it did nothing but matmul, a lower
 * bound on the matmul rate inside the epoch. */

#include "train.h"

static const int64_t sizes[4] = {784, 256, 128, 10};

/* Matmul FLOPs of one training step on a batch of @p b samples. */
static double step_flops(int64_t b)
{
    double fwd = 0, first = 2.0 * (double)b * (double)(sizes[0] * sizes[1]);
    for (int i = 0; i < 3; i++)
        fwd += 2.0 * (double)b * (double)(sizes[i] * sizes[i + 1]);
    return 3.0 * fwd - first; /* forward + dW + dX (no dX for the input) */
}

static void run_new(bench_run *r, const nb_dataset *train, int64_t batch, int threads)
{
    nb_rng_seed(&r->init_rng, 0);
    nb_rng_seed(&r->shuffle_rng, 0);
    r->m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &r->init_rng;
    r->net = NULL;
    if (!r->m || nb_mlp_new(r->m, NULL, sizes, 4, &o, &r->net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 1e-3;
    oo.beta1 = 0.9;
    oo.beta2 = 0.999;
    oo.eps = 1e-8;
    r->opt = nb_optim_new(&oo);
    r->ld = NULL;
    if (!r->opt || nb_loader_new(train, batch, true, false, &r->ld) != NB_OK)
        bench_check(NULL, NULL, "optimizer / loader");
    r->g = nb_graph_new();
    bench_check(r->g, r->g, "graph");
    bench_set_threads(r->g, threads);
    nb_optim_set_threads(r->opt, threads);
}

static void train_and_report(const nb_dataset *train, const nb_dataset *test, int threads,
                             int epochs)
{
    bench_run r;
    run_new(&r, train, 128, threads);
    double times[16], flops = 0;
    int64_t n = nb_dataset_count(train);
    for (int64_t i = 0; i < n; i += 128)
        flops += step_flops(n - i < 128 ? n - i : 128);
    for (int e = 0; e < epochs; e++) {
        double t0 = bench_now();
        bench_train_epoch(r.net, r.m, r.opt, r.ld, r.g, &r.shuffle_rng);
        times[e] = bench_now() - t0;
    }
    double acc = bench_accuracy(r.net, test, r.g);
    char all[400] = "", *p = all;
    for (int e = 0; e < epochs; e++)
        p += snprintf(p, sizeof all - (size_t)(p - all), "%s%.4f", e ? ", " : "", times[e]);
    double sorted[16];
    memcpy(sorted, times, sizeof sorted);
    double med = bench_median(sorted, epochs);
    printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"threads\": %d, \"epochs\": %d, "
           "\"epoch_s\": %.4f, \"epoch_s_all\": [%s], \"test_acc\": %.4f, \"matmul_gflop\": %.2f, "
           "\"gflops_epoch\": %.2f, \"matmul\": \"%s\", \"blas_core\": \"%s\", "
           "\"peak_rss_mb\": %.1f}\n",
           threads, epochs, med, all, acc, flops / 1e9, flops / med / 1e9, nb_graph_matmul_name(r.g),
           bench_blas_core(), bench_peak_mb());
    fflush(stdout);
    bench_run_free(&r);
}

/* Cost as the batch grows: train on the same 16384 images with each batch
 * size (one pass, fresh model), time per sample and peak memory. */
static void scaling(const nb_dataset *train_all, int64_t only)
{
    const int64_t samples = 16384;
    nb_dataset *sub = NULL;
    bench_data_check(nb_dataset_slice(train_all, 0, samples, &sub), NULL, "slice");
    for (int64_t batch = 32; batch <= 1024; batch *= 2) {
        if (only > 0 && batch != only)
            continue;
        bench_run r;
        run_new(&r, sub, batch, 1);
        double rss0 = bench_rss_mb();
        bench_reset_peak();
        double t0 = bench_now();
        int64_t steps = bench_train_epoch(r.net, r.m, r.opt, r.ld, r.g, &r.shuffle_rng);
        double t = bench_now() - t0;
        double peak = bench_peak_mb();
        /* one more step, kept in the graph, to see the arena a step needs */
        nb_batch b;
        nb_loader_start(r.ld, &r.shuffle_rng);
        nb_loader_next(r.g, r.ld, &b);
        nb_tensor *loss = nb_softmax_cross_entropy(r.g, nb_layer_forward(r.g, r.net, b.x, true),
                                                   b.labels, b.size, NB_REDUCE_MEAN);
        bench_check(r.g, loss, "forward");
        nb_backward(r.g, loss);
        double graph_mb = (double)nb_graph_bytes(r.g) / (1024.0 * 1024.0);
        printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"scaling\", \"threads\": 1, "
               "\"batch\": %lld, \"samples\": %lld, \"steps\": %lld, \"s\": %.4f, "
               "\"us_per_sample\": %.3f, \"us_per_step\": %.1f, \"epoch_s_est\": %.3f, "
               "\"gflops\": %.2f, \"peak_rss_mb\": %.1f, \"peak_over_base_mb\": %.1f, "
               "\"graph_mb\": %.2f}\n",
               (long long)batch, (long long)samples, (long long)steps, t, 1e6 * t / (double)samples,
               1e6 * t / (double)steps, t / (double)samples * 60000.0,
               step_flops(batch) * (double)steps / t / 1e9, peak, peak - rss0, graph_mb);
        fflush(stdout);
        bench_run_free(&r);
    }
    nb_dataset_free(sub);
}

/* One epoch of the B2 workload through nb_trainer (no evaluation), its
 * check of each step's loss and gradient norm on or off: the epoch's
 * seconds. */
static double trainer_epoch(const nb_dataset *train, bool check_finite)
{
    bench_run r;
    run_new(&r, train, 128, 1);
    nb_train_opts to = nb_train_defaults();
    to.epochs = 1;
    to.rng = &r.shuffle_rng;
    to.check_finite = check_finite;
    nb_trainer *t = NULL;
    if (nb_trainer_new(r.m, r.net, r.opt, &to, &t) != NB_OK)
        bench_check(NULL, NULL, "trainer");
    double t0 = bench_now();
    if (nb_trainer_fit(t, r.ld) != NB_OK) {
        fprintf(stderr, "b2_fashion: %s\n", nb_trainer_error(t)->msg);
        exit(1);
    }
    double s = bench_now() - t0;
    nb_trainer_free(t);
    bench_run_free(&r);
    return s;
}

/* The trainer's per-step finite check: epochs with it on and off,
 * alternating so that drift in the machine's speed hits both alike. */
static void trainer_check_cost(const nb_dataset *train)
{
    enum { RUNS = 5 };
    double on[RUNS], off[RUNS];
    for (int k = 0; k < RUNS; k++) {
        if (k % 2) {
            on[k] = trainer_epoch(train, true);
            off[k] = trainer_epoch(train, false);
        } else {
            off[k] = trainer_epoch(train, false);
            on[k] = trainer_epoch(train, true);
        }
    }
    double m_on = bench_median(on, RUNS), m_off = bench_median(off, RUNS);
    printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"trainer\", \"threads\": 1, "
           "\"runs\": %d, \"epoch_s_check_on\": %.4f, \"epoch_s_check_off\": %.4f, "
           "\"ratio\": %.4f}\n",
           RUNS, m_on, m_off, m_on / m_off);
}

/* ------------------------------------------------------------ --phases */

/* The phases of a step. Forward and backward time is split by op: products
 * (ops whose name names a product: matmul, linear, gemm, conv) apart from
 * the rest (elementwise, reductions); "graph" is what the calls took beyond
 * their ops (layer code; the sweep's bookkeeping and the summing of the
 * parameters' gradients). The loss is its forward call and the rules of
 * the ops it evaluated. */
enum {
    PH_LOADER,
    PH_ZERO_GRAD,
    PH_FWD_PRODUCTS,
    PH_FWD_ELEMENTWISE,
    PH_FWD_GRAPH,
    PH_LOSS,
    PH_BWD_PRODUCTS,
    PH_BWD_ELEMENTWISE,
    PH_BWD_GRAPH,
    PH_OPTIMIZER,
    PH_RESET,
    PH_COUNT
};
static const char *const phase_names[PH_COUNT] = {
    "loader",       "zero_grad",       "fwd_products", "fwd_elementwise", "fwd_graph", "loss",
    "bwd_products", "bwd_elementwise", "bwd_graph",    "optimizer",       "reset",
};

enum { MAX_PROF_OPS = 64 };

typedef struct prof_snap {
    nb_op_profile e[MAX_PROF_OPS];
    int n;
} prof_snap;

static void snap(nb_graph *g, prof_snap *s)
{
    s->n = nb_graph_profile(g, s->e, MAX_PROF_OPS);
    if (s->n > MAX_PROF_OPS)
        bench_check(NULL, NULL, "profile (too many ops)");
}

static bool is_product(const char *op)
{
    static const char *const names[] = {"matmul", "linear", "gemm", "conv"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strstr(op, names[i]))
            return true;
    return false;
}

/* Entry i of b's profile minus the same op in a (entries are in order of
 * first use, so a's entry i, when it exists, is the same op). */
static nb_op_profile since(const prof_snap *a, const prof_snap *b, int i)
{
    nb_op_profile d = b->e[i];
    if (i < a->n) {
        d.fwd_count -= a->e[i].fwd_count;
        d.fwd_s -= a->e[i].fwd_s;
        d.bwd_count -= a->e[i].bwd_count;
        d.bwd_s -= a->e[i].bwd_s;
    }
    return d;
}

/* One training step (bench_train_step's) with each phase's seconds added
 * to t[]; false at the epoch's end. */
static bool phased_step(bench_run *r, double t[PH_COUNT])
{
    static prof_snap p0, p1, p2, p3;
    static bool in_loss[MAX_PROF_OPS];
    nb_graph *g = r->g;
    nb_batch b;
    double t0 = bench_now();
    if (!nb_loader_next(g, r->ld, &b))
        return false;
    double t1 = bench_now();
    nb_model_zero_grad(r->m);
    double t2 = bench_now();
    t[PH_LOADER] += t1 - t0;
    t[PH_ZERO_GRAD] += t2 - t1;

    snap(g, &p0);
    t0 = bench_now();
    nb_tensor *logits = nb_layer_forward(g, r->net, b.x, true);
    t1 = bench_now();
    snap(g, &p1);
    t2 = bench_now();
    nb_tensor *loss = nb_softmax_cross_entropy(g, logits, b.labels, b.size, NB_REDUCE_MEAN);
    double t3 = bench_now();
    bench_check(g, loss, "forward");
    snap(g, &p2);
    double t4 = bench_now();
    if (nb_backward(g, loss) != NB_OK)
        bench_check(g, NULL, "backward");
    double t5 = bench_now();
    snap(g, &p3);
    double fwd_ops = 0, bwd_ops = 0;
    for (int i = 0; i < p1.n; i++) {
        nb_op_profile d = since(&p0, &p1, i);
        t[is_product(d.op) ? PH_FWD_PRODUCTS : PH_FWD_ELEMENTWISE] += d.fwd_s;
        fwd_ops += d.fwd_s;
    }
    t[PH_FWD_GRAPH] += (t1 - t0) - fwd_ops;
    for (int i = 0; i < p2.n; i++) /* the ops the loss evaluated */
        in_loss[i] = since(&p1, &p2, i).fwd_count > 0;
    for (int i = p2.n; i < p3.n; i++)
        in_loss[i] = false;
    t[PH_LOSS] += t3 - t2;
    for (int i = 0; i < p3.n; i++) {
        nb_op_profile d = since(&p2, &p3, i);
        if (in_loss[i])
            t[PH_LOSS] += d.bwd_s;
        else
            t[is_product(d.op) ? PH_BWD_PRODUCTS : PH_BWD_ELEMENTWISE] += d.bwd_s;
        bwd_ops += d.bwd_s;
    }
    t[PH_BWD_GRAPH] += (t5 - t4) - bwd_ops;

    t0 = bench_now();
    if (nb_optim_step(r->opt, r->m) != NB_OK)
        bench_check(NULL, NULL, "optimizer step");
    t1 = bench_now();
    nb_graph_reset(g);
    t2 = bench_now();
    t[PH_OPTIMIZER] += t1 - t0;
    t[PH_RESET] += t2 - t1;
    return true;
}

/* The next step of r, starting a new epoch when one ends. */
static void next_step(bench_run *r, double t[PH_COUNT], bool profiled)
{
    for (int tries = 0; tries < 2; tries++) {
        if (profiled ? phased_step(r, t) : bench_train_step(r->net, r->m, r->opt, r->ld, r->g))
            return;
        if (nb_loader_start(r->ld, &r->shuffle_rng) != NB_OK)
            bench_check(NULL, NULL, "loader start");
    }
    bench_check(NULL, NULL, "a step");
}

static void phases(const nb_dataset *train, int threads, int steps)
{
    enum { BLOCKS = 3 };
    bench_run r;
    run_new(&r, train, 128, threads);
    if (nb_graph_set_profile(r.g, true) != NB_OK || nb_loader_start(r.ld, &r.shuffle_rng) != NB_OK)
        bench_check(NULL, NULL, "profile / loader start");
    double dummy[PH_COUNT] = {0};
    for (int i = 0; i < 20; i++)
        next_step(&r, dummy, true);
    nb_graph_profile_clear(r.g);
    double ms[PH_COUNT][BLOCKS], step_ms[BLOCKS], plain_ms[BLOCKS];
    for (int k = 0; k < BLOCKS; k++) {
        double t[PH_COUNT] = {0}, sum = 0;
        nb_graph_set_profile(r.g, true);
        for (int i = 0; i < steps; i++)
            next_step(&r, t, true);
        for (int p = 0; p < PH_COUNT; p++) {
            ms[p][k] = 1e3 * t[p] / steps;
            sum += ms[p][k];
        }
        step_ms[k] = sum;
        nb_graph_set_profile(r.g, false);
        double t0 = bench_now();
        for (int i = 0; i < steps; i++)
            next_step(&r, NULL, false);
        plain_ms[k] = 1e3 * (bench_now() - t0) / steps;
    }
    double step = bench_median(step_ms, BLOCKS), plain = bench_median(plain_ms, BLOCKS);
    double med[PH_COUNT];
    for (int p = 0; p < PH_COUNT; p++) {
        med[p] = bench_median(ms[p], BLOCKS);
        printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"phases\", "
               "\"threads\": %d, \"phase\": \"%s\", \"ms_per_step\": %.4f, \"share\": %.4f}\n",
               threads, phase_names[p], med[p], med[p] / step);
    }
    printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"phases\", \"threads\": %d, "
           "\"phase\": \"step\", \"ms_per_step\": %.4f, \"share\": 1, \"plain_ms_per_step\": %.4f, "
           "\"steps\": %d, \"blocks\": %d, \"matmul\": \"%s\", \"blas_core\": \"%s\"}\n",
           threads, step, plain, steps, BLOCKS, nb_graph_matmul_name(r.g), bench_blas_core());
    /* per op, over all profiled steps */
    nb_op_profile ops[MAX_PROF_OPS];
    int n = nb_graph_profile(r.g, ops, MAX_PROF_OPS);
    double per = 1e3 / (double)(BLOCKS * steps);
    for (int i = 0; i < n && i < MAX_PROF_OPS; i++)
        printf("{\"workload\": \"B2\", \"impl\": \"nabla\", \"mode\": \"phases-op\", "
               "\"threads\": %d, \"op\": \"%s\", \"fwd_per_step\": %.2f, \"fwd_ms\": %.4f, "
               "\"bwd_per_step\": %.2f, \"bwd_ms\": %.4f}\n",
               threads, ops[i].op, (double)ops[i].fwd_count / (BLOCKS * steps), ops[i].fwd_s * per,
               (double)ops[i].bwd_count / (BLOCKS * steps), ops[i].bwd_s * per);
    fflush(stdout);
    fprintf(stderr, "B2 step at %d thread%s (%s): %.3f ms profiled, %.3f ms plain\n", threads,
            threads > 1 ? "s" : "", nb_graph_matmul_name(r.g), step, plain);
    fprintf(stderr, "  %-16s %9s %7s\n", "phase", "ms/step", "share");
    for (int p = 0; p < PH_COUNT; p++)
        fprintf(stderr, "  %-16s %9.3f %6.1f%%\n", phase_names[p], med[p], 100 * med[p] / step);
    bench_run_free(&r);
}

int main(int argc, char **argv)
{
    nb_dataset *train = NULL, *test = NULL;
    bench_fashion(&train, &test);

    if (bench_flag(argc, argv, "--trainer")) {
        trainer_check_cost(train);
    } else if (bench_flag(argc, argv, "--phases")) {
        int steps = argc > 2 ? atoi(argv[argc - 1]) : 150;
        phases(train, 1, steps > 0 ? steps : 150);
        phases(train, 2, steps > 0 ? steps : 150);
    } else if (bench_flag(argc, argv, "--scaling")) {
        scaling(train, argc > 2 ? atoll(argv[argc - 1]) : 0);
    } else {
        train_and_report(train, test, 1, 1);
        train_and_report(train, test, 2, 1);
        if (bench_flag(argc, argv, "--full"))
            train_and_report(train, test, 1, 10);
    }
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
