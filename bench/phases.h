/* Where a training step's time goes (the benchmarks' --phases): the
 * graph's profile (nb_graph_set_profile) and clocks around the calls of
 * bench_train_step, split into phases. Header-only. */
#ifndef NABLA_BENCH_PHASES_H
#define NABLA_BENCH_PHASES_H

#include "train.h"

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

static inline void snap(nb_graph *g, prof_snap *s)
{
    s->n = nb_graph_profile(g, s->e, MAX_PROF_OPS);
    if (s->n > MAX_PROF_OPS)
        bench_check(NULL, NULL, "profile (too many ops)");
}

static inline bool is_product(const char *op)
{
    static const char *const names[] = {"matmul", "linear", "gemm", "conv"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strstr(op, names[i]))
            return true;
    return false;
}

/* Entry i of b's profile minus the same op in a (entries are in order of
 * first use, so a's entry i, when it exists, is the same op). */
static inline nb_op_profile since(const prof_snap *a, const prof_snap *b, int i)
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
static inline bool phased_step(bench_run *r, double t[PH_COUNT])
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
static inline void next_step(bench_run *r, double t[PH_COUNT], bool profiled)
{
    for (int tries = 0; tries < 2; tries++) {
        if (profiled ? phased_step(r, t) : bench_train_step(r->net, r->m, r->opt, r->ld, r->g))
            return;
        if (nb_loader_start(r->ld, &r->shuffle_rng) != NB_OK)
            bench_check(NULL, NULL, "loader start");
    }
    bench_check(NULL, NULL, "a step");
}

/* Print where a step of @p r (at its graph's thread count) goes: 20
 * warm-up steps, then 3 blocks of @p steps profiled steps, each followed
 * by as many plain ones; a JSON line per phase and per op (workload
 * @p workload), a table on stderr. Frees nothing. */
static inline void bench_phases(bench_run *r, const char *workload, int steps)
{
    enum { BLOCKS = 3 };
    int threads = nb_graph_threads(r->g);
    if (nb_graph_set_profile(r->g, true) != NB_OK ||
        nb_loader_start(r->ld, &r->shuffle_rng) != NB_OK)
        bench_check(NULL, NULL, "profile / loader start");
    double dummy[PH_COUNT] = {0};
    for (int i = 0; i < 20; i++)
        next_step(r, dummy, true);
    nb_graph_profile_clear(r->g);
    double ms[PH_COUNT][BLOCKS], step_ms[BLOCKS], plain_ms[BLOCKS];
    for (int k = 0; k < BLOCKS; k++) {
        double t[PH_COUNT] = {0}, sum = 0;
        nb_graph_set_profile(r->g, true);
        for (int i = 0; i < steps; i++)
            next_step(r, t, true);
        for (int p = 0; p < PH_COUNT; p++) {
            ms[p][k] = 1e3 * t[p] / steps;
            sum += ms[p][k];
        }
        step_ms[k] = sum;
        nb_graph_set_profile(r->g, false);
        double t0 = bench_now();
        for (int i = 0; i < steps; i++)
            next_step(r, NULL, false);
        plain_ms[k] = 1e3 * (bench_now() - t0) / steps;
    }
    double step = bench_median(step_ms, BLOCKS), plain = bench_median(plain_ms, BLOCKS);
    double med[PH_COUNT];
    for (int p = 0; p < PH_COUNT; p++) {
        med[p] = bench_median(ms[p], BLOCKS);
        printf("{\"workload\": \"%s\", \"impl\": \"nabla\", \"mode\": \"phases\", "
               "\"threads\": %d, \"phase\": \"%s\", \"ms_per_step\": %.4f, \"share\": %.4f}\n",
               workload, threads, phase_names[p], med[p], med[p] / step);
    }
    printf("{\"workload\": \"%s\", \"impl\": \"nabla\", \"mode\": \"phases\", \"threads\": %d, "
           "\"phase\": \"step\", \"ms_per_step\": %.4f, \"share\": 1, \"plain_ms_per_step\": %.4f, "
           "\"steps\": %d, \"blocks\": %d, \"matmul\": \"%s\", \"blas_core\": \"%s\"}\n",
           workload, threads, step, plain, steps, BLOCKS, nb_graph_matmul_name(r->g),
           bench_blas_core());
    /* per op, over all profiled steps */
    nb_op_profile ops[MAX_PROF_OPS];
    int n = nb_graph_profile(r->g, ops, MAX_PROF_OPS);
    double per = 1e3 / (double)(BLOCKS * steps);
    for (int i = 0; i < n && i < MAX_PROF_OPS; i++)
        printf("{\"workload\": \"%s\", \"impl\": \"nabla\", \"mode\": \"phases-op\", "
               "\"threads\": %d, \"op\": \"%s\", \"fwd_per_step\": %.2f, \"fwd_ms\": %.4f, "
               "\"bwd_per_step\": %.2f, \"bwd_ms\": %.4f}\n",
               workload, threads, ops[i].op, (double)ops[i].fwd_count / (BLOCKS * steps),
               ops[i].fwd_s * per, (double)ops[i].bwd_count / (BLOCKS * steps), ops[i].bwd_s * per);
    fflush(stdout);
    fprintf(stderr, "%s step at %d thread%s (%s): %.3f ms profiled, %.3f ms plain\n", workload,
            threads, threads > 1 ? "s" : "", nb_graph_matmul_name(r->g), step, plain);
    fprintf(stderr, "  %-16s %9s %7s\n", "phase", "ms/step", "share");
    for (int p = 0; p < PH_COUNT; p++)
        fprintf(stderr, "  %-16s %9.3f %6.1f%%\n", phase_names[p], med[p], 100 * med[p] / step);
}

#endif
