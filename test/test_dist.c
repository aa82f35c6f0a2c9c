/* Data-parallel training over MPI (nabla/dist.h), run by every rank of
 * `mpirun -np P test_dist --mpi` (P = 2, 3: the meson tests dist-np2 and
 * dist-np3), and alone (the test dist: one rank, and the build without
 * MPI's refusals). Every rank runs every test; a test's collectives are
 * called in the same order on all of them.
 *
 * Equivalence: P ranks each taking their share of every global batch of
 * 256 digits (uneven shares when P = 3, an empty one in a short last
 * batch) train as one process on the whole batches does: after 20 SGD
 * steps the largest relative difference of a parameter is at most 1e-5 in
 * f32 and 1e-12 in f64 (rounding only: the sums are split differently). */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tc.h"

#ifdef NB_TEST_HAVE_MPI
#include <mpi.h>
#endif

static nb_dist *D;  /* the run, shared by the tests */
static int RANK, P; /* this rank and the ranks */

/* ------------------------------------------------------------- helpers */

/* Digits scaled to [0, 1] in @p dt, its first @p n rows (all when 0). */
static nb_dataset *digits(nb_dtype dt, int64_t n)
{
    nb_dataset *all = NULL, *part = NULL;
    assert_int_equal(nb_dataset_digits(&(nb_data_opts){.dtype = dt}, &all), NB_OK);
    assert_int_equal(nb_dataset_scale(all, 16), NB_OK);
    if (n == 0)
        return all;
    assert_int_equal(nb_dataset_slice(all, 0, n, &part), NB_OK);
    nb_dataset_free(all);
    return part;
}

/* A 64-32-16-10 MLP in @p dt, weights drawn from @p seed. */
static nb_layer *mlp(nb_model *m, nb_dtype dt, uint64_t seed, nb_rng *rng, bool bn)
{
    nb_rng_seed(rng, seed);
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = rng;
    mo.layer.dtype = dt;
    mo.batch_norm = bn;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, (const int64_t[]){64, 32, 16, 10}, 4, &mo, &net), NB_OK);
    return net;
}

/* Largest |a - b| / max(1e-3, |a|) over the tensors of two models of one
 * layout (the measure of the reference program ddp_ref.py). */
static double max_rel_diff(const nb_model *a, const nb_model *b)
{
    double worst = 0;
    const nb_tensor *q = nb_model_next(b, NULL);
    for (const nb_tensor *p = nb_model_next(a, NULL); p; p = nb_model_next(a, p)) {
        assert_non_null(q);
        assert_int_equal(nb_tensor_size(p), nb_tensor_size(q));
        for (int64_t i = 0; i < nb_tensor_size(p); i++) {
            double x = nb_tensor_get(p, i), y = nb_tensor_get(q, i);
            double r = fabs(x - y) / fmax(1e-3, fabs(x));
            if (r > worst || isnan(r))
                worst = isnan(r) ? INFINITY : r;
        }
        q = nb_model_next(b, q);
    }
    return worst;
}

/* @p steps optimizer steps over global batches of @p batch from @p ds in
 * the order drawn from seed 3, this rank taking share @p rank of @p size
 * (0 of 1 with d NULL: one process, the whole batches). The shares'
 * mean-loss gradients are weighted by their size and averaged. */
static void train_steps(nb_dist *d, int rank, int size, nb_model *m, nb_layer *net,
                        const nb_dataset *ds, nb_optim_kind kind, int steps, int64_t batch)
{
    nb_optim_opts oo = nb_optim_defaults(kind);
    oo.lr = kind == NB_OPTIM_SGD ? 0.1 : 1e-3;
    nb_optim *opt = nb_optim_new(&oo);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(ds, batch, true, false, &ld), NB_OK);
    assert_int_equal(nb_loader_set_shard(ld, rank, size), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    if (d)
        assert_int_equal(nb_dist_broadcast(d, m), NB_OK);
    int done = 0;
    bool empty_seen = false;
    while (done < steps) {
        assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
        nb_batch b;
        while (done < steps && nb_loader_next(g, ld, &b)) {
            nb_model_zero_grad(m);
            if (b.size > 0) {
                nb_tensor *out = nb_layer_forward(g, net, b.x, true);
                nb_tensor *loss =
                    nb_softmax_cross_entropy(g, out, b.labels, b.size, NB_REDUCE_MEAN);
                assert_non_null(loss);
                assert_int_equal(nb_backward(g, loss), NB_OK);
            } else {
                empty_seen = true;
            }
            if (d)
                assert_int_equal(
                    nb_dist_average_grads(d, m, (double)b.size / (double)b.global_size), NB_OK);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
            nb_graph_reset(g);
            done++;
        }
    }
    /* 770 rows: global batches 256, 256, 256, 2: with 3 ranks one share of
     * the last is empty */
    if (d && size == 3 && nb_dataset_count(ds) == 770 && steps >= 4)
        assert_true(rank != 0 || empty_seen);
    nb_graph_free(g);
    nb_loader_free(ld);
    nb_optim_free(opt);
}

/* 20 steps of P ranks against 20 steps of one process (which every rank
 * computes itself): the figure is printed by rank 0 and returned. */
static double equivalence(nb_dtype dt, nb_optim_kind kind, int64_t rows)
{
    nb_dataset *ds = digits(dt, rows);
    nb_rng rng;
    nb_model *one = nb_model_new(), *many = nb_model_new();
    nb_layer *n1 = mlp(one, dt, 11, &rng, false);
    /* each rank's own initial weights: the broadcast makes them rank 0's */
    nb_rng rng2;
    nb_layer *n2 = mlp(many, dt, (uint64_t)(11 + RANK), &rng2, false);
    train_steps(NULL, 0, 1, one, n1, ds, kind, 20, 256);
    train_steps(D, RANK, P, many, n2, ds, kind, 20, 256);
    double diff = max_rel_diff(one, many);
    if (RANK == 0)
        printf("# equivalence %s %s, %d ranks x 256/%d vs 1 x 256, %lld rows, 20 steps: largest "
               "relative parameter difference %.3g\n",
               nb_dtype_name(dt), nb_optim_kind_name(kind), P, P, (long long)nb_dataset_count(ds),
               diff);
    nb_layer_free(n1);
    nb_layer_free(n2);
    nb_model_free(one);
    nb_model_free(many);
    nb_dataset_free(ds);
    return diff;
}

/* ---------------------------------------------------------------- tests */

static void test_basics(void **state)
{
    (void)state;
    assert_true(nb_dist_available());
    int env_rank = -1;
    int env_size = nb_dist_env(&env_rank);
    if (env_size > 0) { /* started by mpirun: the environment agrees with MPI */
        assert_int_equal(env_size, P);
        assert_int_equal(env_rank, RANK);
    }
    assert_int_equal(nb_dist_error(D)->status, NB_OK);
    assert_true(nb_dist_ok(D));
    assert_false(nb_dist_ok(NULL));
    /* sums: 1 + 2 + ... + P, and a second value */
    double v[2] = {RANK + 1, 0.5};
    assert_int_equal(nb_dist_sum(D, v, 2), NB_OK);
    assert_true(v[0] == P * (P + 1) / 2.0);
    assert_true(v[1] == 0.5 * P);
    assert_int_equal(nb_dist_sum(D, NULL, 0), NB_OK);
    /* a vote names the lowest rank that is not ready */
    int first = 7;
    assert_int_equal(nb_dist_vote(D, true, &first), NB_OK);
    assert_int_equal(first, -1);
    assert_int_equal(nb_dist_vote(D, RANK != P - 1, &first), NB_OK);
    assert_int_equal(first, P - 1);
    assert_int_equal(nb_dist_vote(D, RANK == 0 && P > 1, NULL), NB_OK);
    /* bad arguments fail on the rank alone, before any communication */
    assert_int_equal(nb_dist_sum(D, v, -1), NB_ERR_ARG);
    assert_non_null(strstr(nb_dist_error(D)->msg, "n = -1"));
    assert_int_equal(nb_dist_sum(D, NULL, 1), NB_ERR_NULL);
    nb_model *m = nb_model_new();
    assert_int_equal(nb_dist_average_grads(D, m, NAN), NB_ERR_ARG);
    assert_non_null(strstr(nb_dist_error(D)->msg, "weight = nan"));
    assert_int_equal(nb_dist_average_grads(D, NULL, 1), NB_ERR_NULL);
    assert_int_equal(nb_dist_broadcast(D, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dist_average_buffers(D, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dist_check(D, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dist_check(NULL, m, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dist_sum(NULL, v, 1), NB_ERR_NULL);
    assert_int_equal(nb_dist_vote(NULL, true, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dist_broadcast(NULL, m), NB_ERR_NULL);
    assert_int_equal(nb_dist_average_grads(NULL, m, 1), NB_ERR_NULL);
    assert_int_equal(nb_dist_average_buffers(NULL, m), NB_ERR_NULL);
    nb_train_comm c;
    assert_int_equal(nb_dist_train_comm(NULL, &c), NB_ERR_NULL);
    assert_int_equal(nb_dist_train_comm(D, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dist_train_comm(D, &c), NB_OK);
    assert_int_equal(c.rank, RANK);
    assert_int_equal(c.size, P);
    assert_int_equal(nb_dist_rank(NULL), 0);
    assert_int_equal(nb_dist_size(NULL), 1);
    assert_int_equal(nb_dist_error(NULL)->status, NB_ERR_NULL);
    nb_dist_abort(NULL, 3); /* returns at once */
    nb_dist_free(NULL);
    /* an empty model: nothing to send, the calls still agree */
    assert_int_equal(nb_dist_check(D, m, ""), NB_OK);
    assert_int_equal(nb_dist_broadcast(D, m), NB_OK);
    assert_int_equal(nb_dist_average_grads(D, m, 1), NB_OK);
    assert_int_equal(nb_dist_average_buffers(D, m), NB_OK);
    nb_model_free(m);
    /* options are checked before MPI is touched */
    nb_dist *d = NULL;
    nb_error err;
    nb_dist_opts o = nb_dist_defaults();
    assert_true(o.timeout == 60);
    o.timeout = -1;
    assert_int_equal(nb_dist_init(&o, &d, &err), NB_ERR_ARG);
    assert_null(d);
    assert_non_null(strstr(err.msg, "timeout = -1"));
    o.timeout = NAN;
    assert_int_equal(nb_dist_init(&o, &d, &err), NB_ERR_ARG);
    assert_int_equal(nb_dist_init(NULL, NULL, &err), NB_ERR_NULL);
}

/* Rank 0's tensors reach every rank, parameters and buffers, both dtypes. */
static void test_broadcast(void **state)
{
    (void)state;
    nb_model *m = nb_model_new(), *ref = nb_model_new();
    nb_rng rng, rng0;
    nb_layer *net = mlp(m, NB_F32, (uint64_t)(100 + RANK), &rng, true);
    nb_layer *net0 = mlp(ref, NB_F32, 100, &rng0, true);
    nb_tensor *x = NULL, *x0 = NULL;
    assert_int_equal(nb_model_add(m, "extra", NB_F64, 1, (int64_t[]){3}, &x), NB_OK);
    assert_int_equal(nb_model_add(ref, "extra", NB_F64, 1, (int64_t[]){3}, &x0), NB_OK);
    nb_tensor_set_requires_grad(x, false);
    nb_tensor_set_requires_grad(x0, false);
    for (int i = 0; i < 3; i++) {
        nb_tensor_set(x, i, RANK * 10 + i + 0.25);
        nb_tensor_set(x0, i, i + 0.25);
    }
    nb_tensor_set(nb_model_get(m, "bn1.running_mean"), 0, RANK + 0.5);
    nb_tensor_set(nb_model_get(ref, "bn1.running_mean"), 0, 0.5);
    assert_int_equal(nb_dist_check(D, m, NULL), NB_OK);
    assert_int_equal(nb_dist_broadcast(D, m), NB_OK);
    assert_true(max_rel_diff(ref, m) == 0); /* bit for bit */
    nb_layer_free(net);
    nb_layer_free(net0);
    nb_model_free(m);
    nb_model_free(ref);
}

/* Buffers become their mean; equal values stay exactly equal (summed in
 * extended precision), f32 and f64; trainable tensors are left alone. */
static void test_average_buffers(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *a = NULL, *b = NULL, *w = NULL;
    assert_int_equal(nb_model_add(m, "a", NB_F32, 1, (int64_t[]){2}, &a), NB_OK);
    assert_int_equal(nb_model_add(m, "b", NB_F64, 1, (int64_t[]){2}, &b), NB_OK);
    assert_int_equal(nb_model_add(m, "w", NB_F32, 1, (int64_t[]){1}, &w), NB_OK);
    nb_tensor_set_requires_grad(a, false);
    nb_tensor_set_requires_grad(b, false);
    nb_tensor_set(a, 0, RANK + 1);
    nb_tensor_set(a, 1, 0.1f);
    nb_tensor_set(b, 0, RANK);
    nb_tensor_set(b, 1, 0.1);
    nb_tensor_set(w, 0, RANK);
    assert_int_equal(nb_dist_average_buffers(D, m), NB_OK);
    assert_true(nb_tensor_f32(a)[0] == (float)((P + 1) / 2.0));
    assert_true(nb_tensor_f32(a)[1] == 0.1f);
    assert_true(nb_tensor_f64(b)[0] == (P - 1) / 2.0);
    assert_true(nb_tensor_f64(b)[1] == 0.1);
    assert_true(nb_tensor_f32(w)[0] == (float)RANK); /* trainable: not a buffer */
    nb_model_free(m);
}

/* An allocation hook that counts. */
static int64_t allocations;
static void *counting_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    if (new_size > 0)
        allocations++;
    return nb_default_alloc(ud, ptr, old_size, new_size);
}

/* Gradients become Σ_r w_r g_r, in both dtypes, in place. */
static void test_average_grads(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *a = NULL, *b = NULL, *buf = NULL;
    assert_int_equal(nb_model_add(m, "a", NB_F32, 2, (int64_t[]){2, 3}, &a), NB_OK);
    assert_int_equal(nb_model_add(m, "buf", NB_F32, 1, (int64_t[]){2}, &buf), NB_OK);
    assert_int_equal(nb_model_add(m, "b", NB_F64, 1, (int64_t[]){4}, &b), NB_OK);
    nb_tensor_set_requires_grad(buf, false);
    for (int i = 0; i < 6; i++)
        nb_tensor_set(nb_tensor_grad(a), i, (RANK + 1) * (i + 1));
    for (int i = 0; i < 4; i++)
        nb_tensor_set(nb_tensor_grad(b), i, RANK == 0 ? 1.0 : 0.0);
    nb_tensor_set(buf, 0, 5);
    /* weights 1/P: the mean */
    assert_int_equal(nb_dist_average_grads(D, m, 1.0 / P), NB_OK);
    for (int i = 0; i < 6; i++)
        tc_near(nb_tensor_get(nb_tensor_grad(a), i), (i + 1) * (P + 1) / 2.0, 1e-5);
    for (int i = 0; i < 4; i++)
        tc_near(nb_tensor_get(nb_tensor_grad(b), i), 1.0 / P, 1e-15);
    assert_true(nb_tensor_get(buf, 0) == 5);
    /* weight 1 sums */
    assert_int_equal(nb_dist_average_grads(D, m, 1), NB_OK);
    tc_near(nb_tensor_get(nb_tensor_grad(b), 0), 1.0, 1e-15);
    /* the flat buffers are allocated by the first call only: steps
     * allocate nothing */
    nb_dist_opts o = nb_dist_defaults();
    o.alloc = counting_alloc;
    nb_dist *d = NULL;
    nb_error err;
    assert_int_equal(nb_dist_init(&o, &d, &err), NB_OK);
    int64_t at_start = allocations;
    assert_int_equal(nb_dist_average_grads(d, m, 1), NB_OK);
    int64_t after_first = allocations;
    assert_true(after_first == at_start + 2); /* one buffer per dtype */
    for (int k = 0; k < 5; k++)
        assert_int_equal(nb_dist_average_grads(d, m, 0.5), NB_OK);
    assert_true(allocations == after_first);
    nb_dist_free(d);
    nb_model_free(m);
}

static void test_equivalence_sgd_f32(void **state)
{
    (void)state;
    assert_true(equivalence(NB_F32, NB_OPTIM_SGD, 0) <= 1e-5);
}

static void test_equivalence_sgd_f64(void **state)
{
    (void)state;
    assert_true(equivalence(NB_F64, NB_OPTIM_SGD, 0) <= 1e-12);
    /* 770 rows: the last global batch of 2 leaves a share empty at P = 3 */
    assert_true(equivalence(NB_F64, NB_OPTIM_SGD, 770) <= 1e-12);
}

static void test_equivalence_adam(void **state)
{
    (void)state;
    /* Adam divides by √v: rounding differences of tiny gradients grow, as
     * they do for PyTorch DDP (5e-4 in ddp_ref.py); f64 stays tight */
    assert_true(equivalence(NB_F32, NB_OPTIM_ADAM, 0) <= 1e-3);
    assert_true(equivalence(NB_F64, NB_OPTIM_ADAM, 0) <= 1e-9);
}

/* The ranks' models differ: every rank fails with the same sentence,
 * naming the first rank that differs and what. */
static void test_mismatch(void **state)
{
    (void)state;
    if (P < 2)
        skip();
    nb_model *m = nb_model_new();
    nb_tensor *t = NULL;
    assert_int_equal(
        nb_model_add(m, "fc1.weight", NB_F32, 2, (int64_t[]){64, RANK == 1 ? 32 : 64}, &t), NB_OK);
    assert_int_equal(nb_dist_check(D, m, "seed=1"), NB_ERR_COMM);
    const nb_error *e = nb_dist_error(D);
    assert_string_equal(e->name, "fc1.weight");
    assert_string_equal(e->msg, "rank 1 differs from rank 0: rank 0 has tensor fc1.weight f32 "
                                "[64,64] trainable, rank 1 has tensor fc1.weight f32 [64,32] "
                                "trainable");
    nb_model_free(m);
    /* settings */
    m = nb_model_new();
    assert_int_equal(nb_model_add(m, "w", NB_F64, 1, (int64_t[]){2}, &t), NB_OK);
    char set[64];
    snprintf(set, sizeof set, "batch=256\nseed=%d\n", RANK == P - 1 ? 2 : 1);
    assert_int_equal(nb_dist_check(D, m, set), NB_ERR_COMM);
    char want[160];
    snprintf(want, sizeof want,
             "rank %d differs from rank 0: rank 0 has seed=1, rank %d has seed=2", P - 1, P - 1);
    assert_string_equal(nb_dist_error(D)->msg, want);
    assert_string_equal(nb_dist_error(D)->name, "seed");
    /* a tensor more on one rank */
    nb_tensor *extra = NULL;
    if (RANK == 1)
        assert_int_equal(nb_model_add(m, "extra", NB_F32, 0, NULL, &extra), NB_OK);
    assert_int_equal(nb_dist_check(D, m, NULL), NB_ERR_COMM);
    assert_string_equal(nb_dist_error(D)->msg,
                        "rank 1 differs from rank 0: rank 0 has nothing, rank 1 has tensor extra "
                        "f32 [] trainable (after 1 tensor)");
    /* the same model again: agreed (the communicator is still usable) */
    nb_model_free(m);
    m = nb_model_new();
    assert_int_equal(nb_model_add(m, "w", NB_F64, 1, (int64_t[]){2}, &t), NB_OK);
    assert_int_equal(nb_dist_check(D, m, "same=yes"), NB_OK);
    assert_true(nb_dist_ok(D)); /* a difference leaves the run usable */
    nb_model_free(m);
}

/* ---------------------------------------------------------- the trainer */

typedef struct fit_run {
    nb_model *m;
    nb_layer *net;
    nb_optim *opt;
    nb_loader *ld;
    nb_trainer *t;
    nb_rng init, shuffle;
    nb_epoch_report last;
    int epochs_seen;
    bool drift; /* rank 1 draws from the shuffling rng after epoch 1 */
} fit_run;

static bool keep_report(void *ud, const nb_epoch_report *r)
{
    fit_run *f = ud;
    if (f->drift && RANK == 1 && r->epoch == 1)
        nb_rng_u64(&f->shuffle);
    f->last = *r;
    f->last.layer_norms = NULL;
    f->epochs_seen++;
    return true;
}

/* A trainer of a 64-32-16-10 MLP on @p train over loader batches of
 * @p batch; with @p comm the loader takes this rank's shares. */
static void fit_setup(fit_run *f, nb_dtype dt, const nb_dataset *train, const nb_dataset *test,
                      int64_t batch, const nb_train_comm *comm, uint64_t init_seed, bool bn)
{
    memset(f, 0, sizeof *f);
    f->m = nb_model_new();
    f->net = mlp(f->m, dt, init_seed, &f->init, bn);
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_MOMENTUM);
    oo.lr = 0.05;
    f->opt = nb_optim_new(&oo);
    assert_int_equal(nb_loader_new(train, batch, true, false, &f->ld), NB_OK);
    if (comm)
        assert_int_equal(nb_loader_set_shard(f->ld, comm->rank, comm->size), NB_OK);
    nb_rng_seed(&f->shuffle, 21);
    nb_train_opts o = nb_train_defaults();
    o.epochs = 3;
    o.rng = &f->shuffle;
    o.test = test;
    o.eval_batch = 100;
    o.l2 = 1e-4;
    o.on_epoch = keep_report;
    o.cb_ud = f;
    o.comm = comm;
    assert_int_equal(nb_trainer_new(f->m, f->net, f->opt, &o, &f->t), NB_OK);
}

static void fit_free(fit_run *f)
{
    nb_trainer_free(f->t);
    nb_loader_free(f->ld);
    nb_optim_free(f->opt);
    nb_layer_free(f->net);
    nb_model_free(f->m);
}

/* nb_trainer_fit with the ranks' collectives trains as one process: the
 * same parameters (f64: to rounding), the same epoch report (loss,
 * training and test accuracy, the test accuracy measured on shares). */
static void test_trainer_equivalence(void **state)
{
    (void)state;
    nb_dataset *all = digits(NB_F64, 0), *train = NULL, *test = NULL;
    assert_int_equal(nb_dataset_split(all, NULL, 1000, 0, &train, NULL, &test), NB_OK);
    nb_train_comm comm;
    assert_int_equal(nb_dist_train_comm(D, &comm), NB_OK);
    fit_run one, many;
    fit_setup(&one, NB_F64, train, test, 96, NULL, 5, false);
    fit_setup(&many, NB_F64, train, test, 96, &comm, (uint64_t)(5 + RANK), false);
    assert_int_equal(nb_trainer_fit(one.t, one.ld), NB_OK);
    assert_int_equal(nb_trainer_fit(many.t, many.ld), NB_OK);
    double d = max_rel_diff(one.m, many.m);
    if (RANK == 0)
        printf("# trainer, f64, momentum, %d ranks, 3 epochs of batches of 96: largest relative "
               "parameter difference %.3g\n",
               P, d);
    assert_true(d <= 1e-11);
    assert_int_equal(many.epochs_seen, 3);
    assert_int_equal(many.last.batches, one.last.batches);
    tc_near(many.last.loss, one.last.loss, 1e-12);
    tc_near(many.last.penalty, one.last.penalty, 1e-12);
    assert_true(many.last.train_acc == one.last.train_acc);
    assert_true(many.last.test_acc == one.last.test_acc);
    tc_near(many.last.test_loss, one.last.test_loss, 1e-12);
    tc_near(many.last.grad_norm_mean, one.last.grad_norm_mean, 1e-9);
    /* nb_trainer_evaluate on shares, too */
    double acc1, loss1, acc2, loss2;
    assert_int_equal(nb_trainer_evaluate(one.t, test, &acc1, &loss1), NB_OK);
    assert_int_equal(nb_trainer_evaluate(many.t, test, &acc2, &loss2), NB_OK);
    assert_true(acc1 == acc2);
    tc_near(loss1, loss2, 1e-12);
    fit_free(&one);
    fit_free(&many);
    nb_dataset_free(train);
    nb_dataset_free(test);
    nb_dataset_free(all);
}

/* Batch norm: each rank normalises its share by its own statistics, and
 * the running statistics are averaged before each evaluation, so every
 * rank holds the same ones after fit. */
static void test_trainer_batch_norm(void **state)
{
    (void)state;
    nb_dataset *all = digits(NB_F32, 600);
    nb_train_comm comm;
    assert_int_equal(nb_dist_train_comm(D, &comm), NB_OK);
    fit_run f;
    fit_setup(&f, NB_F32, all, all, 64, &comm, 9, true);
    assert_int_equal(nb_trainer_fit(f.t, f.ld), NB_OK);
    /* every tensor, the running statistics included, is the same on all
     * ranks: a check with the values as settings agrees */
    char set[8192];
    size_t len = 0;
    for (nb_tensor *p = nb_model_next(f.m, NULL); p; p = nb_model_next(f.m, p))
        if (!nb_tensor_requires_grad(p))
            for (int64_t i = 0; i < nb_tensor_size(p) && len < sizeof set - 64; i++)
                len += (size_t)snprintf(set + len, sizeof set - len, "%s.%lld=%a\n",
                                        nb_tensor_name(p), (long long)i, nb_tensor_get(p, i));
    assert_true(len > 100);
    assert_int_equal(nb_dist_check(D, f.m, set), NB_OK);
    assert_true(f.last.test_acc > 0.5);
    fit_free(&f);
    nb_dataset_free(all);
}

/* Ranks whose settings differ are stopped before the first step, with the
 * difference named; an rng that drifts between epochs too. */
static void test_trainer_mismatch(void **state)
{
    (void)state;
    if (P < 2)
        skip();
    nb_dataset *all = digits(NB_F32, 300);
    nb_train_comm comm;
    assert_int_equal(nb_dist_train_comm(D, &comm), NB_OK);
    fit_run f;
    /* another shuffling seed on the last rank */
    fit_setup(&f, NB_F32, all, NULL, 64, &comm, 1, false);
    if (RANK == P - 1)
        nb_rng_seed(&f.shuffle, 22);
    assert_int_equal(nb_trainer_fit(f.t, f.ld), NB_ERR_COMM);
    const nb_error *e = nb_trainer_error(f.t);
    assert_string_equal(e->name, "shuffling rng");
    assert_non_null(strstr(e->msg, "the ranks differ before training: rank "));
    assert_non_null(strstr(e->msg, "has shuffling rng="));
    assert_string_equal(e->where, "nb_trainer_fit");
    fit_free(&f);
    /* the loader not sharded: every rank says so */
    fit_setup(&f, NB_F32, all, NULL, 64, &comm, 1, false);
    assert_int_equal(nb_loader_set_shard(f.ld, 0, 1), NB_OK);
    assert_int_equal(nb_trainer_fit(f.t, f.ld), NB_ERR_ARG);
    assert_non_null(strstr(nb_trainer_error(f.t)->msg, "the training loader takes share 0 of 1"));
    assert_non_null(strstr(nb_trainer_error(f.t)->msg, "nb_loader_set_shard(loader, rank, size)"));
    fit_free(&f);
    /* another data set on rank 1 (same sizes, other contents) */
    nb_dataset *other = digits(NB_F32, 600), *shifted = NULL;
    assert_int_equal(nb_dataset_slice(other, 300, 300, &shifted), NB_OK);
    fit_setup(&f, NB_F32, RANK == 1 ? shifted : all, NULL, 64, &comm, 1, false);
    assert_int_equal(nb_trainer_fit(f.t, f.ld), NB_ERR_COMM);
    assert_string_equal(nb_trainer_error(f.t)->name, "training set");
    assert_non_null(strstr(nb_trainer_error(f.t)->msg, "CRC-32"));
    fit_free(&f);
    nb_dataset_free(shifted);
    nb_dataset_free(other);
    /* the shuffling rng drifts on one rank after epoch 1 (a layer drawing
     * from it): epoch 2 stops on every rank */
    fit_setup(&f, NB_F32, all, NULL, 64, &comm, 1, false);
    f.drift = true;
    assert_int_equal(nb_trainer_fit(f.t, f.ld), NB_ERR_COMM);
    assert_int_equal(f.epochs_seen, 1);
    assert_non_null(strstr(nb_trainer_error(f.t)->msg, "epoch 2: rank 1 differs from rank 0"));
    assert_non_null(strstr(nb_trainer_error(f.t)->msg, "an rng of their own"));
    fit_free(&f);
    nb_dataset_free(all);
}

/* A loss of the program's that fails (or is not finite) on one rank only:
 * every rank stops at that step, none takes it. */
static int fail_rank = -1, fail_step = -1, calls;
static bool fail_nan;

static nb_tensor *flaky_loss(nb_graph *g, nb_tensor *out, const int64_t *labels, int64_t n,
                             void *ud)
{
    (void)ud;
    nb_tensor *l = nb_softmax_cross_entropy(g, out, labels, n, NB_REDUCE_MEAN);
    if (nb_graph_recording(g) && RANK == fail_rank && ++calls == fail_step)
        return fail_nan ? nb_mul(g, l, nb_scalar(g, nb_tensor_dtype(l), NAN)) : NULL;
    return l;
}

static void test_trainer_failure_agreed(void **state)
{
    (void)state;
    if (P < 2)
        skip();
    nb_dataset *all = digits(NB_F32, 640);
    nb_train_comm comm;
    assert_int_equal(nb_dist_train_comm(D, &comm), NB_OK);
    for (int nan = 0; nan < 2; nan++) {
        fit_run f;
        fit_setup(&f, NB_F32, all, NULL, 64, &comm, 1, false);
        nb_trainer_free(f.t);
        nb_train_opts o = nb_train_defaults();
        o.rng = &f.shuffle;
        o.comm = &comm;
        o.loss = flaky_loss;
        assert_int_equal(nb_trainer_new(f.m, f.net, f.opt, &o, &f.t), NB_OK);
        fail_rank = 1, fail_step = 3, calls = 0, fail_nan = nan;
        nb_status st = nb_trainer_fit(f.t, f.ld);
        const char *msg = nb_trainer_error(f.t)->msg;
        if (nan) { /* agreed: the global loss is NaN, on every rank */
            assert_int_equal(st, NB_ERR_NONFINITE);
            assert_non_null(strstr(msg, "epoch 1, batch 3: the loss is nan"));
        } else if (RANK == 1) {
            assert_int_equal(st, NB_ERR_NULL);
            assert_non_null(strstr(msg, "epoch 1, batch 3: "));
            assert_non_null(strstr(msg, "the loss function returned NULL"));
        } else {
            assert_int_equal(st, NB_ERR_COMM);
            assert_string_equal(msg, "epoch 1, batch 3: rank 1 failed (it reports why)");
        }
        assert_int_equal(nb_optim_steps(f.opt), 2); /* the third step was not taken */
        fail_rank = -1;
        fit_free(&f);
    }
    nb_dataset_free(all);
}

/* Options of a trainer's collectives are checked. */
static void test_trainer_comm_opts(void **state)
{
    (void)state;
    nb_train_comm c;
    assert_int_equal(nb_dist_train_comm(D, &c), NB_OK);
    nb_train_opts o = nb_train_defaults();
    o.comm = &c;
    nb_error err;
    assert_int_equal(nb_train_opts_check(&o, &err), NB_OK);
    c.rank = c.size;
    assert_int_equal(nb_train_opts_check(&o, &err), NB_ERR_ARG);
    assert_string_equal(err.name, "comm");
    assert_non_null(strstr(err.msg, "it must lie in 0 .. size-1"));
    c.rank = 0;
    c.sum = NULL;
    assert_int_equal(nb_train_opts_check(&o, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "a collective is missing"));
}

/* A rank that stops answering: the others give up after the timeout,
 * naming it, and their communicator is not used again; the stuck rank
 * joins late, and the run's other communicator still works. */
static void test_timeout_names_rank(void **state)
{
    (void)state;
    if (P < 2)
        skip();
    nb_dist_opts o = nb_dist_defaults();
    o.timeout = 1;
    nb_dist *d = NULL;
    nb_error err;
    assert_int_equal(nb_dist_init(&o, &d, &err), NB_OK); /* attaches: MPI is running */
    double v = 1;
    if (RANK == 1) {
        sleep(4); /* past the others' timeout and their listening */
        assert_int_equal(nb_dist_sum(d, &v, 1), NB_OK); /* completes the others' sum */
    } else {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        assert_int_equal(nb_dist_sum(d, &v, 1), NB_ERR_COMM);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        assert_true(s >= 1 && s < 8);
        const nb_error *e = nb_dist_error(d);
        assert_non_null(strstr(e->msg, "summing over the ranks: no answer from rank 1 (it has "
                                       "died or hangs)"));
        assert_string_equal(e->name, "rank 1");
        /* broken: later calls fail at once */
        assert_false(nb_dist_ok(d));
        assert_int_equal(nb_dist_sum(d, &v, 1), NB_ERR_COMM);
        assert_non_null(strstr(nb_dist_error(d)->msg, "an earlier collective failed"));
    }
    nb_dist_free(d);
    assert_int_equal(nb_dist_vote(D, true, NULL), NB_OK);
}

#ifdef NB_TEST_HAVE_MPI
/* A program's own MPI: nb_dist_init attaches to a communicator it gives
 * (here the even and the odd ranks apart), and MPI's errors come back as
 * NB_ERR_COMM with MPI's error string. */
static void test_attach_comm(void **state)
{
    (void)state;
    MPI_Comm half;
    assert_int_equal(MPI_Comm_split(MPI_COMM_WORLD, RANK % 2, RANK, &half), MPI_SUCCESS);
    nb_dist_opts o = nb_dist_defaults();
    o.comm = &half;
    nb_dist *d = NULL;
    nb_error err;
    assert_int_equal(nb_dist_init(&o, &d, &err), NB_OK);
    assert_int_equal(nb_dist_size(d), (P + 1 - RANK % 2) / 2);
    assert_int_equal(nb_dist_rank(d), RANK / 2);
    double v = RANK;
    assert_int_equal(nb_dist_sum(d, &v, 1), NB_OK);
    double want = 0;
    for (int r = RANK % 2; r < P; r += 2)
        want += r;
    assert_true(v == want);
    nb_dist_free(d); /* MPI stays up: the program started it */
    MPI_Comm_free(&half);
    /* a communicator MPI refuses: an error, not an abort */
    MPI_Errhandler was;
    MPI_Comm_get_errhandler(MPI_COMM_WORLD, &was);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm none = MPI_COMM_NULL;
    o.comm = &none;
    assert_int_equal(nb_dist_init(&o, &d, &err), NB_ERR_COMM);
    assert_null(d);
    assert_non_null(strstr(err.msg, "cannot set up the communicator: "));
    assert_non_null(strstr(err.msg, "MPI_ERR_COMM"));
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, was);
    MPI_Errhandler_free(&was);
}
#endif

int main(int argc, char **argv)
{
    bool need_mpi = argc > 1 && !strcmp(argv[1], "--mpi");
    if (argc > 2 && !strcmp(argv[1], "--skip")) { /* the build has MPI but cannot run it here */
        printf("skipped: %s\n", argv[2]);
        return 77;
    }
    if (!nb_dist_available()) {
        /* the build without MPI: the header's functions refuse clearly */
        nb_dist *d = (nb_dist *)1;
        nb_error err;
        int rc = 0;
        if (nb_dist_init(NULL, &d, &err) != NB_ERR_UNSUPPORTED || d ||
            !strstr(err.msg, "built without MPI") || !strstr(err.msg, "-Dmpi=enabled") ||
            nb_dist_sum(NULL, NULL, 0) != NB_ERR_NULL || nb_dist_size(NULL) != 1 ||
            nb_dist_ok(NULL) || nb_dist_train_comm(NULL, NULL) != NB_ERR_NULL) {
            fprintf(stderr, "the build without MPI does not refuse as documented: %s\n", err.msg);
            rc = 1;
        }
        if (need_mpi && rc == 0) {
            printf("skipped: this build has no MPI (meson setup -Dmpi=enabled with "
                   "libopenmpi-dev)\n");
            return 77; /* meson: skipped */
        }
        printf("%s\n", rc ? "FAILED" : "the build without MPI refuses as documented");
        return rc;
    }
    nb_error err;
    nb_dist_opts o = nb_dist_defaults();
    o.timeout = 30; /* a test that fails on one rank only must not hang the others */
    if (nb_dist_init(&o, &D, &err) != NB_OK) {
        fprintf(stderr, "nb_dist_init: %s\n", err.msg);
        return 1;
    }
    RANK = nb_dist_rank(D);
    P = nb_dist_size(D);
    if (need_mpi && P < 2)
        fprintf(stderr, "warning: --mpi given but the run has one rank\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_average_buffers),
        cmocka_unit_test(test_average_grads),
        cmocka_unit_test(test_equivalence_sgd_f32),
        cmocka_unit_test(test_equivalence_sgd_f64),
        cmocka_unit_test(test_equivalence_adam),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_trainer_comm_opts),
        cmocka_unit_test(test_trainer_equivalence),
        cmocka_unit_test(test_trainer_batch_norm),
        cmocka_unit_test(test_trainer_mismatch),
        cmocka_unit_test(test_trainer_failure_agreed),
        cmocka_unit_test(test_timeout_names_rank),
#ifdef NB_TEST_HAVE_MPI
        cmocka_unit_test(test_attach_comm),
#endif
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    nb_dist_free(D); /* MPI_Finalize: nb_dist_init started MPI */
    /* MPI cannot start twice in a process */
    nb_dist *again = NULL;
    if (nb_dist_init(NULL, &again, &err) != NB_ERR_UNSUPPORTED || again ||
        !strstr(err.msg, "already finalised")) {
        fprintf(stderr, "nb_dist_init after MPI_Finalize: %s\n", err.msg);
        rc = 1;
    }
    nb_dist_abort(again, 1); /* returns: nothing to end */
    return rc;
}
