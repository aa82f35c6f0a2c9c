/* B9 cnn-fashion: a small CNN on Fashion-MNIST images [N, 1, 28, 28]
 * (pixels / 255): conv 3x3 1 -> 32 padding 1, ReLU, max-pool 2x2; conv 3x3
 * 32 -> 64 padding 1, ReLU, max-pool 2x2; flatten 3136; linear 128, ReLU;
 * linear 10; mean softmax cross-entropy, Adam lr 1e-3, batch 128, f32.
 *
 *   b9_cnn          ms_per_batch: the median of 60 training batches after 5
 *                   warm-up batches, at 1 thread and at 2; then the
 *                   convolutions' rate on the step's shapes ("mode": "conv")
 *   b9_cnn --full   also 3 epochs at 1 thread, test_acc after them
 *   b9_cnn --phases [S]  where a step's time goes, at 1 and at 2 threads
 *                   (bench/phases.h; 3 blocks of S steps, default 20)
 *
 * The network is nabla's layers: reshape [N, 784] -> [N, 1, 28, 28],
 * nb_conv2d_new (He-uniform, zero bias), ReLU, nb_max_pool2d_new, twice;
 * nb_flatten_new, linear (He-uniform) with ReLU, linear.
 *
 * Memory: "step_peak_mb" is the growth of the process's resident set over
 * the timed batches (peak RSS during them minus RSS before the first one,
 * with the model, optimizer and data already in memory): what training
 * steps need on top of the data. "peak_rss_mb" is the process's peak RSS
 * during them (all of it: the data sets are 220 MB). "graph_mb" is the
 * graph's arena.
 *
 * Allocations after the first step: "graph_allocs_after_first" counts the
 * graph's allocations (through its nb_alloc_fn) in batches 2..65, and
 * "mallocs_after_first" every malloc, calloc, realloc and aligned
 * allocation of the process in them (this program replaces the C library's
 * allocation functions with counting ones where it can: glibc without
 * sanitizers; -1 elsewhere).
 *
 * The convolutions' rate ("mode": "conv", one line per thread count): the
 * five convolution products of a step on the step's shapes, timed alone
 * (recording off) as p1_matmul times a matmul: 7 trials after a warm-up,
 * each repeating the five products for >= 0.1 s; "gflops" is the best
 * trial. FLOPs of a product: 2·N·O·C/groups·KH·KW·OH·OW. The products: both
 * convolutions' forward (nb_conv2d) and weight gradients
 * (nb_conv2d_weight_grad), and the second's input gradient
 * (nb_conv_transpose2d); the first convolution's input (the images) needs
 * no gradient and the backward pass computes none. "p1_gflops" is P1's
 * figure measured in the same process: nb_matmul 1024^3 with the graph's
 * kernel (best of 7 trials). */

#include <errno.h>
#include <stdatomic.h>

#include "phases.h"

/* ------------------------------------------------ counting allocations */

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) ||                         \
    __has_feature(thread_sanitizer)
#define B9_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define B9_SANITIZED 1
#endif

#if defined(__GLIBC__) && !defined(B9_SANITIZED)
/* glibc lets a program replace malloc and its relatives (the library's
 * calls come here too); these count and hand over to glibc's own. */
#define B9_COUNTING 1
#include <malloc.h>
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static atomic_long b9_mallocs;

static void b9_count(void)
{
    atomic_fetch_add_explicit(&b9_mallocs, 1, memory_order_relaxed);
}

void *malloc(size_t n)
{
    b9_count();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    b9_count();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    b9_count();
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    b9_count();
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    b9_count();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    b9_count();
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
#endif

/* Every allocation the process made so far (-1 when not counted). */
static long b9_malloc_calls(void)
{
#ifdef B9_COUNTING
    return atomic_load(&b9_mallocs);
#else
    return -1;
#endif
}

/* The graph's allocation hook: the default one, counted. */
static void *counting_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    if (new_size)
        ++*(long *)ud;
    return nb_default_alloc(NULL, ptr, old_size, new_size);
}

/* --------------------------------------------------------- the network */

/* Add the layer *l, made by a constructor that returned @p st, to the net
 * (l is read here, after the constructor has run). */
static void add(bench_run *r, nb_status st, nb_layer *const *l, const char *what)
{
    if (st != NB_OK || nb_sequential_add(r->net, *l) != NB_OK) {
        fprintf(stderr, "b9_cnn: layer %s: %s\n", what, nb_status_str(st));
        exit(1);
    }
}

static void build(bench_run *r)
{
    nb_layer *l = NULL;
    nb_layer_opts lo = {.rng = &r->init_rng, .init = NB_INIT_HE_UNIFORM};
    nb_conv_opts co = nb_conv_defaults();
    co.padding[0] = co.padding[1] = 1;
    const nb_pool2d_opts po = {{2, 2}, {2, 2}, {0, 0}};
    add(r, nb_reshape_layer_new("image", 3, (const int64_t[]){1, 28, 28}, &l), &l, "image");
    add(r, nb_conv2d_new(r->m, "conv1", 1, 32, 3, 3, &co, &lo, &l), &l, "conv1");
    add(r, nb_act_layer_new(r->m, "relu1", NB_ACT_RELU, NULL, 0, NULL, &l), &l, "relu1");
    add(r, nb_max_pool2d_new("pool1", &po, &l), &l, "pool1");
    add(r, nb_conv2d_new(r->m, "conv2", 32, 64, 3, 3, &co, &lo, &l), &l, "conv2");
    add(r, nb_act_layer_new(r->m, "relu2", NB_ACT_RELU, NULL, 0, NULL, &l), &l, "relu2");
    add(r, nb_max_pool2d_new("pool2", &po, &l), &l, "pool2");
    add(r, nb_flatten_new("flatten", &l), &l, "flatten");
    add(r, nb_linear_new(r->m, "fc1", 64 * 7 * 7, 128, &lo, &l), &l, "fc1");
    add(r, nb_act_layer_new(r->m, "relu3", NB_ACT_RELU, NULL, 0, NULL, &l), &l, "relu3");
    add(r, nb_linear_new(r->m, "out", 128, 10, &lo, &l), &l, "out");
}

/* What the timed steps are watched for: RSS before them, and the counts of
 * allocations (the graph's, the process's) before the second step. */
typedef struct watch {
    const long *graph_allocs;
    double rss0;
    long graph_allocs1, mallocs1;
} watch;

static void before_step(int i, void *ud)
{
    watch *w = ud;
    if (i == 0) {
        w->rss0 = bench_rss_mb();
        bench_reset_peak();
    } else if (i == 1) {
        w->graph_allocs1 = *w->graph_allocs;
        w->mallocs1 = b9_malloc_calls();
    }
}

static void time_batches(const nb_dataset *train, int threads)
{
    enum { WARMUP = 5, BATCHES = 60 };
    long graph_allocs = 0;
    nb_graph *g = nb_graph_new_alloc(counting_alloc, &graph_allocs);
    bench_check(g, g, "graph");
    bench_run r;
    bench_run_new(&r, train, threads, g, build);
    watch w = {.graph_allocs = &graph_allocs};
    double med = bench_time_steps(&r, WARMUP, BATCHES, before_step, &w);
    long mallocs = b9_malloc_calls() < 0 ? -1 : b9_malloc_calls() - w.mallocs1;
    double peak = bench_peak_mb(); /* reading /proc allocates: after the count */
    printf("{\"workload\": \"B9\", \"impl\": \"nabla\", \"threads\": %d, \"batch\": 128, "
           "\"batches\": %d, \"ms_per_batch\": %.3f, \"epoch_s_est\": %.2f, \"matmul\": \"%s\", "
           "\"graph_mb\": %.2f, \"step_peak_mb\": %.1f, \"peak_rss_mb\": %.1f, "
           "\"graph_allocs_after_first\": %ld, \"mallocs_after_first\": %ld}\n",
           threads, BATCHES, med * 1e3, med * (60000.0 / 128.0), nb_graph_matmul_name(r.g),
           (double)nb_graph_bytes(r.g) / (1024.0 * 1024.0), peak - w.rss0, peak,
           graph_allocs - w.graph_allocs1, mallocs);
    fflush(stdout);
    bench_run_free(&r);
}

/* ------------------------------------------- the convolutions' rate */

#define TRIALS 7

/* One of the products: x and w (or, for the weight gradient, x and the
 * output gradient gy) of a convolution. */
typedef struct conv_product {
    const char *name;
    int kind; /* 0: nb_conv2d, 1: nb_conv_transpose2d, 2: nb_conv2d_weight_grad */
    int conv; /* 0: the first convolution, 1: the second */
} conv_product;

/* Shapes of the step's convolutions: input [N, C, H, W], O outputs, 3x3. */
static const int64_t conv_shape[2][5] = {{128, 1, 28, 28, 32}, {128, 32, 14, 14, 64}};

static double product_flops(int conv)
{
    const int64_t *s = conv_shape[conv];
    return 2.0 * (double)(s[0] * s[4] * s[1] * 9 * s[2] * s[3]); /* OH = H, OW = W */
}

/* Best and median of TRIALS trials of fn(ctx) repeated for >= 0.1 s each,
 * in units of @p work per second. */
typedef void (*bench_fn)(nb_graph *g, void *ctx);
static void rate(nb_graph *g, bench_fn fn, void *ctx, double work, double *best, double *median)
{
    double r[TRIALS];
    for (int t = -1; t < TRIALS; t++) {
        long reps = 0;
        double t0 = bench_now(), el;
        do {
            nb_graph_reset(g);
            fn(g, ctx);
            reps++;
        } while ((el = bench_now() - t0) < 0.1);
        if (t >= 0)
            r[t] = work * (double)reps / el;
    }
    *best = 0;
    for (int t = 0; t < TRIALS; t++)
        *best = r[t] > *best ? r[t] : *best;
    *median = bench_median(r, TRIALS);
}

typedef struct conv_set {
    nb_tensor *x[2], *w[2], *gy[2];
    nb_conv_opts o;
    int only; /* -1: all five products, else the index of one */
} conv_set;

static const conv_product products[5] = {
    {"conv1_forward", 0, 0},    {"conv1_weight_grad", 2, 0}, {"conv2_forward", 0, 1},
    {"conv2_input_grad", 1, 1}, {"conv2_weight_grad", 2, 1},
};

static void run_products(nb_graph *g, void *ctx)
{
    conv_set *c = ctx;
    for (int i = 0; i < 5; i++) {
        if (c->only >= 0 && c->only != i)
            continue;
        int k = products[i].conv;
        const int64_t *s = conv_shape[k];
        nb_tensor *y = NULL;
        if (products[i].kind == 0)
            y = nb_conv2d(g, c->x[k], c->w[k], &c->o);
        else if (products[i].kind == 1)
            y = nb_conv_transpose2d(g, c->gy[k], c->w[k], s[2], s[3], &c->o);
        else
            y = nb_conv2d_weight_grad(g, c->x[k], c->gy[k], 3, 3, &c->o);
        bench_check(g, y, products[i].name);
    }
}

static void run_matmul(nb_graph *g, void *ctx)
{
    nb_tensor **ab = ctx;
    bench_check(g, nb_matmul(g, ab[0], ab[1], false, false), "matmul");
}

static void conv_rates(int threads)
{
    nb_model *mod = nb_model_new();
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    conv_set c = {.o = nb_conv_defaults(), .only = -1};
    c.o.padding[0] = c.o.padding[1] = 1;
    nb_tensor *ab[2] = {NULL, NULL};
    if (!mod)
        bench_check(NULL, NULL, "model");
    /* the operands live in a model, as parameters do, so that resetting the
     * graph between repetitions keeps them */
    for (int k = 0; k < 2; k++) {
        const int64_t *s = conv_shape[k];
        char nx[16], nw[16], ng[16];
        snprintf(nx, sizeof nx, "x%d", k);
        snprintf(nw, sizeof nw, "w%d", k);
        snprintf(ng, sizeof ng, "gy%d", k);
        if (nb_model_add(mod, nx, NB_F32, 4, s, &c.x[k]) != NB_OK ||
            nb_model_add(mod, nw, NB_F32, 4, (int64_t[]){s[4], s[1], 3, 3}, &c.w[k]) != NB_OK ||
            nb_model_add(mod, ng, NB_F32, 4, (int64_t[]){s[0], s[4], s[2], s[3]}, &c.gy[k]) !=
                NB_OK)
            bench_check(NULL, NULL, "convolution operands");
        nb_tensor *t[3] = {c.x[k], c.w[k], c.gy[k]};
        for (int j = 0; j < 3; j++) {
            float *d = nb_tensor_f32(t[j]);
            for (int64_t e = 0; e < nb_tensor_size(t[j]); e++)
                d[e] = (float)nb_rng_uniform(&rng) - 0.5f;
        }
    }
    if (nb_model_add(mod, "A", NB_F32, 2, (int64_t[]){1024, 1024}, &ab[0]) != NB_OK ||
        nb_model_add(mod, "B", NB_F32, 2, (int64_t[]){1024, 1024}, &ab[1]) != NB_OK)
        bench_check(NULL, NULL, "matmul operands");
    for (int j = 0; j < 2; j++) {
        float *d = nb_tensor_f32(ab[j]);
        for (int64_t e = 0; e < 1024 * 1024; e++)
            d[e] = (float)(e % (97 - 8 * j)) * 0.01f;
    }
    nb_graph *g = nb_graph_new();
    bench_check(g, g, "graph");
    nb_graph_set_recording(g, false);
    bench_set_threads(g, threads);

    double flops = 0, best, median, each[5];
    for (int i = 0; i < 5; i++)
        flops += product_flops(products[i].conv);
    for (int i = 0; i < 5; i++) {
        double b;
        c.only = i;
        rate(g, run_products, &c, product_flops(products[i].conv) / 1e9, &b, &each[i]);
    }
    c.only = -1;
    rate(g, run_products, &c, flops / 1e9, &best, &median);
    double p1_best, p1_median;
    rate(g, run_matmul, ab, 2.0 * 1024 * 1024 * 1024 / 1e9, &p1_best, &p1_median);
    printf("{\"workload\": \"B9\", \"impl\": \"nabla\", \"mode\": \"conv\", \"threads\": %d, "
           "\"matmul\": \"%s\", \"gflop_per_step\": %.4f, \"conv_ms_per_step\": %.3f, "
           "\"gflops\": %.1f, \"gflops_median\": %.1f, \"p1_gflops\": %.1f, "
           "\"gflops_vs_p1\": %.3f",
           threads, nb_graph_matmul_name(g), flops / 1e9, flops / 1e9 / median * 1e3, best, median,
           p1_best, best / p1_best);
    for (int i = 0; i < 5; i++)
        printf(", \"%s_gflops\": %.1f", products[i].name, each[i]);
    printf("}\n");
    fflush(stdout);
    nb_graph_free(g);
    nb_model_free(mod);
}

int main(int argc, char **argv)
{
    nb_dataset *train = NULL, *test = NULL;
    bench_fashion(&train, &test);
    if (bench_flag(argc, argv, "--phases")) {
        int steps = argc > 2 ? atoi(argv[argc - 1]) : 20;
        for (int threads = 1; threads <= 2; threads++) {
            bench_run r;
            bench_run_new(&r, train, threads, NULL, build);
            bench_phases(&r, "B9", steps > 0 ? steps : 20);
            bench_run_free(&r);
        }
        nb_dataset_free(train);
        nb_dataset_free(test);
        return 0;
    }
    time_batches(train, 1);
    time_batches(train, 2);
    conv_rates(1);
    conv_rates(2);
    if (bench_flag(argc, argv, "--full")) {
        bench_run r;
        bench_run_new(&r, train, 1, NULL, build);
        bench_three_epochs(&r, test, "B9");
        bench_run_free(&r);
    }
    nb_dataset_free(train);
    nb_dataset_free(test);
    return 0;
}
