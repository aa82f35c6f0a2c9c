/* Training steps after the first make no allocation through the C library:
 * the graph's arena is reused, and no kernel asks the OpenMP runtime for
 * something it allocates (a parallel region with a team of one thread
 * allocates a team each time). The program counts every malloc, calloc,
 * realloc and aligned allocation by replacing glibc's (so the counts cover
 * the library, the OpenMP runtime and OpenBLAS); where it cannot (other C
 * libraries, sanitizers) the tests are skipped. */

#include "tc.h"

#include <errno.h>
#include <stdlib.h>
#include <stdatomic.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) ||                         \
    __has_feature(thread_sanitizer)
#define ALLOCS_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOCS_SANITIZED 1
#endif

#if defined(__GLIBC__) && !defined(ALLOCS_SANITIZED)
#define ALLOCS_COUNTING 1
#include <malloc.h>
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static atomic_long n_allocs;

static void counted(void)
{
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
}

void *malloc(size_t n)
{
    counted();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    counted();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    counted();
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

void *memalign(size_t align, size_t n)
{
    counted();
    return __libc_memalign(align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    counted();
    return __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    counted();
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
#endif

/* Skips the test where allocations are not counted (before it allocates
 * anything: a skip leaves the test at once). */
static void need_counting(void)
{
#ifndef ALLOCS_COUNTING
    skip();
#endif
}

/* Allocations so far. */
static long allocs(void)
{
#ifdef ALLOCS_COUNTING
    return atomic_load(&n_allocs);
#else
    return 0;
#endif
}

/* ------------------------------------------------------------ the ops */

/* One step over the ops that run their own parallel loops (the pools and
 * their derivatives, the casts, a permutation through the blocked
 * transpose), on [N,C,H,W] f32 input, backward included. */
static void ops_step(nb_graph *g, nb_rng *rng, const int64_t *shape)
{
    const nb_pool2d_opts pool = {{2, 2}, {2, 2}, {0, 0}}, padded = {{3, 3}, {2, 2}, {1, 1}};
    nb_tensor *x =
        nb_tensor_set_requires_grad(nb_rand_uniform(g, rng, NB_F32, 4, shape, -1, 1), true);
    nb_tensor *m = nb_max_pool2d(g, x, &pool);
    nb_tensor *mp = nb_max_pool2d(g, x, &padded);
    nb_tensor *a = nb_avg_pool2d(g, x, &padded);
    nb_tensor *t = nb_permute(g, nb_cast(g, x, NB_F64), (const int[]){0, 2, 3, 1});
    nb_tensor *loss =
        nb_add(g, nb_add(g, nb_sum(g, m, NULL, 0, false), nb_sum(g, mp, NULL, 0, false)),
               nb_add(g, nb_sum(g, a, NULL, 0, false),
                      nb_cast(g, nb_sum(g, nb_square(g, t), NULL, 0, false), NB_F32)));
    assert_non_null(loss);
    assert_int_equal(nb_backward(g, loss), NB_OK);
    assert_non_null(nb_tensor_grad(x));
    nb_graph_reset(g);
}

/* Steps 2 and 3 of the ops allocate nothing, at 1 and 2 threads, on
 * tensors large enough for 2 threads and on small ones (one thread even
 * when the graph has two). */
static void test_ops_no_allocs(void **state)
{
    (void)state;
    need_counting();
    static const int64_t shapes[2][4] = {{4, 8, 32, 32}, {2, 3, 6, 5}};
    for (int threads = 1; threads <= 2; threads++) {
        for (int s = 0; s < 2; s++) {
            nb_rng rng;
            nb_rng_seed(&rng, 1);
            nb_graph *g = nb_graph_new();
            assert_non_null(g);
            nb_graph_set_threads(g, threads);
            ops_step(g, &rng, shapes[s]);
            long before = allocs();
            ops_step(g, &rng, shapes[s]);
            ops_step(g, &rng, shapes[s]);
            long made = allocs() - before;
            if (made != 0)
                fprintf(stderr, "%d thread(s), input %d: %ld allocations\n", threads, s, made);
            assert_int_equal(made, 0);
            nb_graph_free(g);
        }
    }
}

/* ------------------------------------------------- a training step */

/* A small CNN of the layers: conv 3x3 padding 1, ReLU, max-pool 2x2,
 * conv, ReLU, max-pool, flatten, linear, ReLU, linear. */
static nb_layer *small_cnn(nb_model *m, nb_rng *rng)
{
    nb_layer *net = NULL, *l = NULL;
    nb_layer_opts lo = {.rng = rng, .init = NB_INIT_HE_UNIFORM};
    nb_conv_opts co = nb_conv_defaults();
    co.padding[0] = co.padding[1] = 1;
    const nb_pool2d_opts po = {{2, 2}, {2, 2}, {0, 0}};
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
#define ADD(call)                                                                                  \
    do {                                                                                           \
        assert_int_equal(call, NB_OK);                                                             \
        assert_int_equal(nb_sequential_add(net, l), NB_OK);                                        \
    } while (0)
    ADD(nb_conv2d_new(m, "conv1", 1, 8, 3, 3, &co, &lo, &l));
    ADD(nb_act_layer_new(m, "relu1", NB_ACT_RELU, NULL, 0, NULL, &l));
    ADD(nb_max_pool2d_new("pool1", &po, &l));
    ADD(nb_conv2d_new(m, "conv2", 8, 16, 3, 3, &co, &lo, &l));
    ADD(nb_act_layer_new(m, "relu2", NB_ACT_RELU, NULL, 0, NULL, &l));
    ADD(nb_max_pool2d_new("pool2", &po, &l));
    ADD(nb_flatten_new("flatten", &l));
    ADD(nb_linear_new(m, "fc1", 16 * 4 * 4, 32, &lo, &l));
    ADD(nb_act_layer_new(m, "relu3", NB_ACT_RELU, NULL, 0, NULL, &l));
    ADD(nb_linear_new(m, "out", 32, 10, &lo, &l));
#undef ADD
    return net;
}

/* Zero-grad, forward, softmax cross-entropy, backward, Adam, reset. */
static void train_step(nb_graph *g, nb_layer *net, nb_model *m, nb_optim *opt, nb_rng *rng)
{
    enum { N = 32 };
    int64_t labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = i % 10;
    nb_model_zero_grad(m);
    nb_tensor *x = nb_rand_uniform(g, rng, NB_F32, 4, (const int64_t[]){N, 1, 16, 16}, 0, 1);
    nb_tensor *logits = nb_layer_forward(g, net, x, true);
    nb_tensor *loss = nb_softmax_cross_entropy(g, logits, labels, N, NB_REDUCE_MEAN);
    assert_non_null(loss);
    assert_int_equal(nb_backward(g, loss), NB_OK);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    nb_graph_reset(g);
}

/* Steps 2 to 4 of training a CNN with Adam allocate nothing, at 1 and 2
 * threads. */
static void test_train_no_allocs(void **state)
{
    (void)state;
    need_counting();
    for (int threads = 1; threads <= 2; threads++) {
        nb_rng rng;
        nb_rng_seed(&rng, 2);
        nb_model *m = nb_model_new();
        assert_non_null(m);
        nb_layer *net = small_cnn(m, &rng);
        nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
        nb_optim *opt = nb_optim_new(&oo);
        nb_graph *g = nb_graph_new();
        assert_non_null(opt);
        assert_non_null(g);
        nb_graph_set_threads(g, threads);
        train_step(g, net, m, opt, &rng);
        long before = allocs();
        for (int i = 0; i < 3; i++)
            train_step(g, net, m, opt, &rng);
        long made = allocs() - before;
        if (made != 0)
            fprintf(stderr, "%d thread(s): %ld allocations in 3 steps\n", threads, made);
        assert_int_equal(made, 0);
        nb_graph_free(g);
        nb_optim_free(opt);
        nb_layer_free(net);
        nb_model_free(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_no_allocs),
        cmocka_unit_test(test_train_no_allocs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
