/* Two graphs in two threads never interfere: the same training steps of a
 * small MLP (matmuls large enough for the built-in kernel to use the
 * graph's threads, elementwise ops, reductions, softmax cross-entropy,
 * backward, Adam) run in two threads at once, each with its own model,
 * graph and optimizer, give bit for bit the parameters and losses of the
 * same steps run alone on one thread. Built with -Db_sanitize=thread this is
 * also the ThreadSanitizer test of the library. */

#include "tc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { N = 256, IN = 64, HID = 128, OUT = 10, STEPS = 3 };

typedef struct job {
    uint64_t seed;
    int threads;        /* the graph's thread count */
    nb_status status;   /* NB_OK when every step ran */
    double loss[STEPS]; /* the loss of each step */
    double *params;     /* every parameter after the last step, in order */
    int64_t n_params;
} job;

/* One step: logits = swish(relu(X W1 + b1)) W2 + b2, loss = softmax
 * cross-entropy + L2 penalty; backward; Adam. */
static nb_status step(nb_graph *g, nb_model *m, nb_optim *opt, nb_tensor *X, const int64_t *labels,
                      double *loss_out)
{
    nb_tensor *W1 = nb_model_get(m, "W1"), *b1 = nb_model_get(m, "b1");
    nb_tensor *W2 = nb_model_get(m, "W2"), *b2 = nb_model_get(m, "b2");
    nb_tensor *h = nb_relu(g, nb_add(g, nb_matmul(g, X, W1, false, false), b1));
    h = nb_swish(g, h, 1.0);
    nb_tensor *logits = nb_add(g, nb_matmul(g, h, W2, false, false), b2);
    nb_tensor *ws[2] = {W1, W2};
    nb_tensor *loss = nb_add(g, nb_softmax_cross_entropy(g, logits, labels, N, NB_REDUCE_MEAN),
                             nb_l2_penalty(g, ws, 2, 1e-4));
    if (!loss)
        return nb_graph_status(g);
    *loss_out = nb_tensor_item(loss);
    nb_model_zero_grad(m);
    nb_status st = nb_backward(g, loss);
    if (st == NB_OK)
        st = nb_optim_step(opt, m);
    nb_graph_reset(g);
    return st;
}

static void *run_job(void *arg)
{
    job *j = arg;
    j->status = NB_ERR_NOMEM;
    nb_rng rng;
    nb_rng_seed(&rng, j->seed);
    nb_model *m = nb_model_new();
    nb_graph *g = nb_graph_new();
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    nb_optim *opt = nb_optim_new(&oo);
    int64_t *labels = malloc(N * sizeof *labels);
    if (!m || !g || !opt || !labels)
        goto done;
    /* the built-in kernel: its results do not depend on the thread count */
    nb_graph_set_matmul(g, NB_MATMUL_BUILTIN);
    nb_graph_set_threads(g, j->threads);
    const struct {
        const char *name;
        int rank;
        int64_t shape[2];
    } ps[] = {{"W1", 2, {IN, HID}}, {"b1", 1, {HID}}, {"W2", 2, {HID, OUT}}, {"b2", 1, {OUT}}};
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
        nb_tensor *p = NULL;
        if ((j->status = nb_model_add(m, ps[k].name, NB_F32, ps[k].rank, ps[k].shape, &p)) !=
                NB_OK ||
            (j->status = nb_init_tensor(p, NB_INIT_XAVIER_UNIFORM, 0, &rng)) != NB_OK)
            goto done;
    }
    for (int i = 0; i < N; i++)
        labels[i] = (int64_t)(nb_rng_u64(&rng) % OUT);
    for (int s = 0; s < STEPS; s++) {
        /* the data is a constant: made again after each reset */
        nb_rng data = rng;
        nb_tensor *X = nb_rand_normal(g, &data, NB_F32, 2, (int64_t[]){N, IN}, 0, 1);
        if (!X || (j->status = step(g, m, opt, X, labels, &j->loss[s])) != NB_OK)
            goto done;
    }
    j->n_params = nb_model_numel(m);
    j->params = malloc((size_t)j->n_params * sizeof *j->params);
    if (!j->params) {
        j->status = NB_ERR_NOMEM;
        goto done;
    }
    int64_t at = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            j->params[at++] = nb_tensor_get(p, i);
    j->status = NB_OK;
done:
    free(labels);
    nb_optim_free(opt);
    nb_graph_free(g);
    nb_model_free(m);
    return NULL;
}

static void same_results(const job *a, const job *b)
{
    assert_int_equal(a->status, NB_OK);
    assert_int_equal(b->status, NB_OK);
    assert_memory_equal(a->loss, b->loss, sizeof a->loss);
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, (size_t)a->n_params * sizeof *a->params);
}

/* Two threads, each running its own graph with 1 or 2 threads of its own,
 * against the same jobs run one after the other on one thread. */
static void test_two_graphs_two_threads(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 2; threads++) {
        job alone[2] = {{.seed = 5, .threads = 1}, {.seed = 6, .threads = 1}};
        job both[2] = {{.seed = 5, .threads = threads}, {.seed = 6, .threads = threads}};
        run_job(&alone[0]);
        run_job(&alone[1]);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, run_job, &both[i]), 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        for (int i = 0; i < 2; i++)
            same_results(&alone[i], &both[i]);
        /* the two jobs differ, and training changed the loss */
        assert_true(alone[0].loss[0] != alone[1].loss[0]);
        assert_true(alone[0].loss[STEPS - 1] != alone[0].loss[0]);
        for (int i = 0; i < 2; i++) {
            free(alone[i].params);
            free(both[i].params);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_graphs_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
