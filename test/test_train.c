/* The training helper: the digits benchmark configuration (B1) reaching
 * its accuracy, the per-epoch and per-batch callbacks, early stopping that
 * restores the best epoch's tensors, evaluation, penalties and custom
 * losses, per-layer gradient norms, determinism, bit-identical resume
 * through checkpoints, no allocation after the first epoch, bad input. */

#include "tc.h"

#include "../src/optim/optim_internal.h" /* white box: a schedule at its limit */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- helpers */

/* A training set-up on the digits: model, network, optimizer, data. */
typedef struct rig {
    nb_rng rng;
    nb_model *m;
    nb_layer *net;
    nb_optim *opt;
    nb_dataset *all, *train, *val, *test;
    nb_loader *ld;
    nb_trainer *t;
} rig;

typedef struct rig_opts {
    uint64_t seed;
    const int64_t *sizes;
    int n_sizes;
    nb_act act;
    bool batch_norm;
    double dropout;
    nb_optim_opts optim;
    int64_t n_train, n_val; /* the rest of the 1797 rows is the test set */
    int64_t batch;
    nb_augment *augment;
    tc_counting *count; /* allocation hook for everything, or NULL */
} rig_opts;

static void rig_data(rig *r, const rig_opts *ro)
{
    nb_data_opts d = {0};
    if (ro->count)
        d.alloc = tc_counting_alloc, d.alloc_ud = ro->count;
    assert_int_equal(nb_dataset_digits(&d, &r->all), NB_OK);
    assert_int_equal(nb_dataset_scale(r->all, 16), NB_OK);
    assert_int_equal(nb_dataset_split(r->all, NULL, ro->n_train, ro->n_val, &r->train,
                                      ro->n_val ? &r->val : NULL, &r->test),
                     NB_OK);
}

static void rig_build(rig *r, const rig_opts *ro)
{
    memset(r, 0, sizeof *r);
    nb_rng_seed(&r->rng, ro->seed);
    rig_data(r, ro);
    r->m = ro->count ? nb_model_new_alloc(tc_counting_alloc, ro->count) : nb_model_new();
    assert_non_null(r->m);
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &r->rng;
    mo.layer.init = NB_INIT_HE_UNIFORM;
    mo.act = ro->act;
    if (ro->act != NB_ACT_RELU)
        mo.layer.init = NB_INIT_AUTO;
    mo.batch_norm = ro->batch_norm;
    mo.dropout = ro->dropout;
    assert_int_equal(nb_mlp_new(r->m, NULL, ro->sizes, ro->n_sizes, &mo, &r->net), NB_OK);
    r->opt = ro->count ? nb_optim_new_alloc(&ro->optim, tc_counting_alloc, ro->count)
                       : nb_optim_new(&ro->optim);
    assert_non_null(r->opt);
    assert_int_equal(nb_loader_new(r->train, ro->batch, true, false, &r->ld), NB_OK);
    if (ro->augment)
        assert_int_equal(nb_loader_set_augment(r->ld, ro->augment, &r->rng), NB_OK);
}

static void rig_free(rig *r)
{
    nb_trainer_free(r->t);
    nb_loader_free(r->ld);
    nb_layer_free(r->net);
    nb_optim_free(r->opt);
    nb_model_free(r->m);
    nb_dataset_free(r->train);
    nb_dataset_free(r->val);
    nb_dataset_free(r->test);
    nb_dataset_free(r->all);
    memset(r, 0, sizeof *r);
}

/* Every tensor of two models bit for bit equal (same names, same order). */
static bool same_tensors(const nb_model *a, const nb_model *b)
{
    const nb_tensor *p = nb_model_next(a, NULL), *q = nb_model_next(b, NULL);
    for (; p && q; p = nb_model_next(a, p), q = nb_model_next(b, q)) {
        size_t n = (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
        if (strcmp(nb_tensor_name(p), nb_tensor_name(q)) != 0 ||
            nb_tensor_size(p) != nb_tensor_size(q) ||
            memcmp(nb_tensor_data((nb_tensor *)p), nb_tensor_data((nb_tensor *)q), n) != 0)
            return false;
    }
    return !p && !q;
}

/* All of a model's tensors as one byte array (caller frees). */
static unsigned char *model_bytes(const nb_model *m, size_t *len)
{
    size_t n = 0;
    for (const nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        n += (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
    unsigned char *buf = malloc(n ? n : 1), *at = buf;
    assert_non_null(buf);
    for (const nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        size_t k = (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
        memcpy(at, nb_tensor_data((nb_tensor *)p), k);
        at += k;
    }
    *len = n;
    return buf;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Reports of a run, kept by the epoch callback. */
enum { MAX_EPOCHS = 64 };
typedef struct trlog {
    int n;
    nb_epoch_report r[MAX_EPOCHS];
    int n_norms[MAX_EPOCHS];
    double norms[MAX_EPOCHS][8];
    char norm_names[8][32];
    int stop_after; /* return false at this epoch (0: never) */
    unsigned char *params[MAX_EPOCHS];
    size_t params_len;
    const nb_model *m; /* when set: copy the tensors after every epoch */
    long batch_calls;
    int64_t last_batch, last_total;
    int bad_batch_order;
    tc_counting *count;
    long calls_at[MAX_EPOCHS];
} trlog;

static bool on_epoch(void *ud, const nb_epoch_report *r)
{
    trlog *l = ud;
    if (l->n >= MAX_EPOCHS)
        return false;
    l->r[l->n] = *r;
    l->n_norms[l->n] = r->n_layer_norms;
    for (int i = 0; i < r->n_layer_norms && i < 8; i++) {
        l->norms[l->n][i] = r->layer_norms[i].norm;
        snprintf(l->norm_names[i], sizeof l->norm_names[i], "%s", r->layer_norms[i].name);
    }
    l->r[l->n].layer_norms = NULL;
    if (l->m)
        l->params[l->n] = model_bytes(l->m, &l->params_len);
    if (l->count)
        l->calls_at[l->n] = l->count->calls;
    l->n++;
    return !(l->stop_after && r->epoch == l->stop_after);
}

static void on_batch(void *ud, int epoch, int64_t batch, int64_t n_batches, double loss)
{
    trlog *l = ud;
    (void)epoch;
    if (batch != l->last_batch + 1 && !(batch == 1 && l->last_batch == l->last_total))
        l->bad_batch_order++;
    if (!isfinite(loss))
        l->bad_batch_order++;
    l->batch_calls++;
    l->last_batch = batch;
    l->last_total = n_batches;
}

static void log_free(trlog *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->params[i]);
}

/* ---------------------------------------------------------- digits (B1) */

/* ../shared/bench-ref/WORKLOADS.md B1: features / 16, train = first 1500
 * rows, test = last 297; 64-128-64-10 ReLU, He-uniform, softmax
 * cross-entropy (mean), SGD lr 0.05 without momentum, batch 32 shuffled
 * each epoch, 30 epochs, f32, 1 thread. */
static void test_digits_b1(void **state)
{
    (void)state;
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    so.lr = 0.05;
    rig_opts ro = {.seed = 1,
                   .sizes = (int64_t[]){64, 128, 64, 10},
                   .n_sizes = 4,
                   .act = NB_ACT_RELU,
                   .optim = so,
                   .n_train = 1500,
                   .batch = 32};
    rig r;
    rig_build(&r, &ro);
    assert_int_equal(nb_dataset_count(r.test), 297);

    trlog l = {0};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 30;
    o.rng = &r.rng;
    o.threads = 1;
    o.test = r.test;
    o.on_epoch = on_epoch;
    o.on_batch = on_batch;
    o.cb_ud = &l;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    double t0 = wall();
    if (nb_trainer_fit(r.t, r.ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(r.t)->msg);
    double secs = wall() - t0;
    double acc = NAN, loss = NAN;
    assert_int_equal(nb_trainer_evaluate(r.t, r.test, &acc, &loss), NB_OK);
    printf("digits B1: test accuracy %.4f, test loss %.4f, train loss %.4f, %.2f s "
           "(30 epochs, evaluation each epoch included)\n",
           acc, loss, l.r[29].loss, secs);
    assert_true(acc >= 0.89);

    /* every epoch reported, with sensible values */
    assert_int_equal(l.n, 30);
    assert_int_equal(nb_trainer_epoch(r.t), 30);
    assert_int_equal(nb_optim_steps(r.opt), 30 * 47);
    assert_int_equal(l.batch_calls, 30 * 47);
    assert_int_equal(l.bad_batch_order, 0);
    double secs_sum = 0;
    for (int e = 0; e < 30; e++) {
        const nb_epoch_report *p = &l.r[e];
        assert_int_equal(p->epoch, e + 1);
        assert_int_equal(p->epochs, 30);
        assert_int_equal(p->batches, 47);
        assert_true(isfinite(p->loss) && p->loss > 0);
        assert_true(p->penalty == 0);
        assert_true(p->train_acc >= 0 && p->train_acc <= 1);
        assert_true(isnan(p->val_acc) && isnan(p->val_loss));
        assert_true(p->test_acc >= 0 && p->test_acc <= 1 && isfinite(p->test_loss));
        assert_true(p->seconds > 0 && p->train_seconds > 0 && p->train_seconds <= p->seconds);
        tc_near(p->lr, 0.05, 0);
        assert_true(p->grad_norm_mean > 0 && p->grad_norm_max >= p->grad_norm_mean);
        assert_int_equal(l.n_norms[e], 3);
        for (int i = 0; i < 3; i++)
            assert_true(isfinite(l.norms[e][i]) && l.norms[e][i] > 0);
        assert_int_equal(p->best_epoch, 0); /* no validation set: nothing tracked */
        secs_sum += p->seconds;
    }
    assert_string_equal(l.norm_names[0], "fc1.weight");
    assert_string_equal(l.norm_names[2], "fc3.weight");
    assert_true(secs_sum <= secs * 1.01 + 1e-3);
    /* the loss goes down: each third of the run below the one before */
    double thirds[3] = {0};
    for (int e = 0; e < 30; e++)
        thirds[e / 10] += l.r[e].loss;
    assert_true(thirds[1] < thirds[0] && thirds[2] < thirds[1]);
    assert_true(l.r[29].loss < 0.25 * l.r[0].loss);
    assert_true(l.r[29].train_acc > l.r[0].train_acc);
    /* the last report's test figures are the evaluation's */
    tc_near(l.r[29].test_acc, acc, 0);
    tc_near(l.r[29].test_loss, loss, 1e-12);
    rig_free(&r);
}

/* ------------------------------------------------------ early stopping */

static void run_early_stopping(nb_monitor monitor, int patience, double min_delta)
{
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_ADAM);
    so.lr = 3e-3;
    rig_opts ro = {.seed = 5,
                   .sizes = (int64_t[]){64, 64, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .batch_norm = true, /* running statistics must come back too */
                   .optim = so,
                   .n_train = 600,
                   .n_val = 300,
                   .batch = 32};
    rig r;
    rig_build(&r, &ro);
    trlog l = {.m = r.m};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 60;
    o.rng = &r.rng;
    o.val = r.val;
    o.patience = patience;
    o.monitor = monitor;
    o.min_delta = min_delta;
    o.on_epoch = on_epoch;
    o.cb_ud = &l;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    if (nb_trainer_fit(r.t, r.ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(r.t)->msg);

    /* it stopped: patience epochs after the best one */
    assert_true(nb_trainer_stopped_early(r.t));
    assert_true(l.n < 60);
    int best = nb_trainer_best_epoch(r.t);
    assert_int_equal(l.n, best + patience);
    assert_int_equal(nb_trainer_epoch(r.t), l.n);
    /* the best epoch is the first at which the monitored value was best,
     * each improvement beating the previous best by more than min_delta */
    bool by_acc = monitor == NB_MONITOR_VAL_ACC;
    double run_best = NAN;
    int run_best_epoch = 0;
    for (int e = 0; e < l.n; e++) {
        double v = by_acc ? l.r[e].val_acc : l.r[e].val_loss;
        bool better = e == 0 || (by_acc ? v > run_best + min_delta : v < run_best - min_delta);
        assert_int_equal(l.r[e].improved, better);
        if (better)
            run_best = v, run_best_epoch = e + 1;
        assert_int_equal(l.r[e].best_epoch, run_best_epoch);
        assert_int_equal(l.r[e].bad_epochs, e + 1 - run_best_epoch);
        tc_near(l.r[e].best, run_best, 0);
    }
    assert_int_equal(best, run_best_epoch);
    assert_true(best < l.n); /* the last epochs were worse: something to restore */

    /* the model holds exactly the tensors it had after the best epoch,
     * batch-norm running statistics included, not those of the last */
    size_t len;
    unsigned char *now = model_bytes(r.m, &len);
    assert_int_equal(len, l.params_len);
    assert_memory_equal(now, l.params[best - 1], len);
    assert_memory_not_equal(now, l.params[l.n - 1], len);
    nb_tensor *rm = nb_model_get(r.m, "bn1.running_mean");
    assert_non_null(rm);
    free(now);
    /* and evaluates as the best epoch did */
    double acc, loss;
    assert_int_equal(nb_trainer_evaluate(r.t, r.val, &acc, &loss), NB_OK);
    tc_near(acc, l.r[best - 1].val_acc, 0);
    tc_near(loss, l.r[best - 1].val_loss, 1e-12);
    log_free(&l);
    rig_free(&r);
}

static void test_early_stopping_acc(void **state)
{
    (void)state;
    run_early_stopping(NB_MONITOR_VAL_ACC, 3, 0);
}

static void test_early_stopping_loss(void **state)
{
    (void)state;
    run_early_stopping(NB_MONITOR_VAL_LOSS, 2, 1e-3);
}

/* Without restore_best the last epoch's tensors stay; a callback that
 * returns false stops training after its epoch. */
static void test_stop_by_callback_and_no_restore(void **state)
{
    (void)state;
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    so.lr = 0.05;
    rig_opts ro = {.seed = 2,
                   .sizes = (int64_t[]){64, 32, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .optim = so,
                   .n_train = 400,
                   .n_val = 200,
                   .batch = 50};
    rig r;
    rig_build(&r, &ro);
    trlog l = {.m = r.m, .stop_after = 4};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 20;
    o.rng = &r.rng;
    o.val = r.val;
    o.test = r.test;
    o.patience = 100;
    o.restore_best = false;
    o.on_epoch = on_epoch;
    o.on_batch = on_batch;
    o.cb_ud = &l;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    assert_int_equal(nb_trainer_fit(r.t, r.ld), NB_OK);
    assert_int_equal(l.n, 4);
    assert_int_equal(nb_trainer_epoch(r.t), 4);
    assert_false(nb_trainer_stopped_early(r.t));
    assert_int_equal(l.batch_calls, 4 * 8);
    assert_int_equal(l.last_total, 8);
    assert_int_equal(l.bad_batch_order, 0);
    size_t len;
    unsigned char *now = model_bytes(r.m, &len);
    assert_memory_equal(now, l.params[3], len); /* the last epoch's */
    free(now);
    for (int e = 0; e < 4; e++) {
        assert_true(l.r[e].val_acc >= 0 && l.r[e].val_acc <= 1);
        assert_true(l.r[e].test_acc >= 0 && l.r[e].test_acc <= 1);
        assert_true(isfinite(l.r[e].val_loss) && isfinite(l.r[e].test_loss));
    }
    assert_true(l.r[3].val_acc > l.r[0].val_acc && l.r[3].val_loss < l.r[0].val_loss);
    /* the last report matches an evaluation now */
    double acc, loss;
    assert_int_equal(nb_trainer_evaluate(r.t, r.val, &acc, &loss), NB_OK);
    tc_near(acc, l.r[3].val_acc, 0);
    tc_near(loss, l.r[3].val_loss, 1e-12);

    /* fit again continues up to the epoch count where it left off */
    l.stop_after = 6;
    assert_int_equal(nb_trainer_fit(r.t, r.ld), NB_OK);
    assert_int_equal(l.n, 6);
    assert_int_equal(l.r[4].epoch, 5);
    log_free(&l);
    rig_free(&r);
}

/* ---------------------------------------------------------- evaluation */

static void test_evaluate(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    nb_dataset *all = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &all), NB_OK);
    assert_int_equal(nb_dataset_scale(all, 16), NB_OK);
    nb_model *m = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    mo.batch_norm = true;
    mo.dropout = 0.5; /* evaluation mode: no effect */
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, (int64_t[]){64, 20, 10}, 3, &mo, &net), NB_OK);
    nb_tensor *rv = nb_model_get(m, "bn1.running_var");
    for (int64_t i = 0; i < nb_tensor_size(rv); i++)
        nb_tensor_set(rv, i, 0.5 + 0.1 * (double)i);

    /* reference: the whole set at once */
    nb_graph *g = nb_graph_new();
    int64_t n = nb_dataset_count(all);
    int64_t *labels = malloc((size_t)n * sizeof *labels);
    for (int64_t i = 0; i < n; i++)
        labels[i] = nb_dataset_label(all, i);
    nb_tensor *x = nb_tensor_from(g, NB_F32, 2, (int64_t[]){n, 64}, nb_dataset_feature_data(all));
    nb_tensor *out = nb_layer_forward(g, net, x, false);
    nb_tensor *ce = nb_softmax_cross_entropy(g, out, labels, n, NB_REDUCE_MEAN);
    double ref_acc, ref_loss = nb_tensor_item(ce);
    assert_int_equal(nb_accuracy(out, labels, n, &ref_acc), NB_OK);
    nb_graph_reset(g);

    /* batches that do not divide the count, recording restored */
    int64_t sizes[3] = {7, 256, 5000};
    for (int k = 0; k < 3; k++) {
        double acc = -1, loss = -1;
        assert_true(nb_graph_recording(g));
        assert_int_equal(nb_evaluate(g, net, all, sizes[k], &acc, &loss), NB_OK);
        assert_true(nb_graph_recording(g));
        tc_near(acc, ref_acc, 0);
        tc_near(loss, ref_loss, 1e-5 * fabs(ref_loss));
    }
    assert_true(ref_acc < 0.5); /* untrained: the check is not trivial */
    /* NULL outputs are allowed */
    assert_int_equal(nb_evaluate(g, net, all, 100, NULL, NULL), NB_OK);

    /* bad input */
    assert_int_equal(nb_evaluate(NULL, net, all, 10, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_evaluate(g, NULL, all, 10, NULL, NULL), NB_ERR_NULL);
    assert_string_equal(nb_graph_error(g)->msg, "evaluate: no network");
    nb_graph_reset(g);
    assert_int_equal(nb_evaluate(g, net, NULL, 10, NULL, NULL), NB_ERR_NULL);
    nb_graph_reset(g);
    assert_int_equal(nb_evaluate(g, net, all, 0, NULL, NULL), NB_ERR_ARG);
    assert_string_equal(nb_graph_error(g)->msg, "evaluate: batch size 0: it must be >= 1");
    nb_graph_reset(g);
    nb_dataset *empty = NULL;
    assert_int_equal(nb_dataset_from(NULL, 0, 64, NULL, NULL, &empty), NB_OK);
    assert_int_equal(nb_evaluate(g, net, empty, 10, NULL, NULL), NB_ERR_ARG);
    assert_string_equal(nb_graph_error(g)->msg, "evaluate: the data set is empty");
    nb_graph_reset(g);
    /* more classes than outputs */
    nb_dataset *twelve = NULL;
    int64_t lab12[2] = {11, 0};
    assert_int_equal(nb_dataset_from(&(nb_data_opts){.n_classes = 12}, 2, 64, NULL, lab12, &twelve),
                     NB_OK);
    assert_int_equal(nb_evaluate(g, net, twelve, 10, NULL, NULL), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "[2,10] for 2 samples"));
    nb_graph_reset(g);
    /* wrong width */
    nb_dataset *narrow = NULL;
    assert_int_equal(nb_dataset_from(NULL, 3, 5, NULL, (int64_t[]){0, 1, 2}, &narrow), NB_OK);
    assert_int_equal(nb_evaluate(g, net, narrow, 10, NULL, NULL), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "fc1"));

    nb_dataset_free(narrow);
    nb_dataset_free(twelve);
    nb_dataset_free(empty);
    free(labels);
    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
}

/* ------------------------------------------- custom loss and penalties */

/* Mean squared error against one-hot targets made from the labels. */
static nb_tensor *onehot_mse(nb_graph *g, nb_tensor *out, const int64_t *labels, int64_t n,
                             void *ud)
{
    int *calls = ud;
    (*calls)++;
    int64_t c = nb_tensor_dim(out, 1);
    nb_tensor *t = nb_zeros(g, nb_tensor_dtype(out), 2, (int64_t[]){n, c});
    if (!t)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        nb_tensor_set(t, i * c + labels[i], 1.0);
    return nb_mse_loss(g, out, t, NB_REDUCE_MEAN);
}

static void test_custom_loss(void **state)
{
    (void)state;
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_MOMENTUM);
    so.lr = 0.1;
    rig_opts ro = {.seed = 3,
                   .sizes = (int64_t[]){64, 32, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_TANH,
                   .optim = so,
                   .n_train = 1000,
                   .n_val = 300,
                   .batch = 20};
    rig r;
    rig_build(&r, &ro);
    int calls = 0;
    trlog l = {0};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 8;
    o.rng = &r.rng;
    o.val = r.val;
    o.loss = onehot_mse;
    o.loss_ud = &calls;
    o.on_epoch = on_epoch;
    o.cb_ud = &l;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    if (nb_trainer_fit(r.t, r.ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(r.t)->msg);
    /* 50 training batches and 2 validation batches per epoch */
    assert_int_equal(calls, 8 * (50 + 2));
    assert_true(l.r[7].loss < 0.5 * l.r[0].loss);
    assert_true(l.r[7].val_acc > 0.85);
    /* the validation loss is the mean MSE over the samples */
    double acc, loss;
    assert_int_equal(nb_trainer_evaluate(r.t, r.val, &acc, &loss), NB_OK);
    assert_true(loss > 0 && loss < 0.1);
    tc_near(acc, l.r[7].val_acc, 0);
    rig_free(&r);
}

/* The trainer's L2 penalty over every parameter with plain SGD follows
 * the same trajectory as weight decay (f64): the penalty is wired into
 * the loss that is differentiated. Its reported value is ½λΣ‖W‖². */
static void run_penalty(double l2, double wd, const char *suffix, nb_model **out_m, double *penalty)
{
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    nb_dataset *all = NULL, *train = NULL;
    assert_int_equal(nb_dataset_digits(&(nb_data_opts){.dtype = NB_F64}, &all), NB_OK);
    assert_int_equal(nb_dataset_scale(all, 16), NB_OK);
    assert_int_equal(nb_dataset_slice(all, 0, 200, &train), NB_OK);
    nb_model *m = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    mo.layer.dtype = NB_F64;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, (int64_t[]){64, 16, 10}, 3, &mo, &net), NB_OK);
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    so.lr = 0.2;
    so.weight_decay = wd;
    nb_optim *opt = nb_optim_new(&so);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(train, 25, true, false, &ld), NB_OK);
    trlog l = {0};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 3;
    o.rng = &rng;
    o.l2 = l2;
    o.penalty_suffix = suffix;
    o.on_epoch = on_epoch;
    o.cb_ud = &l;
    nb_trainer *t = NULL;
    assert_int_equal(nb_trainer_new(m, net, opt, &o, &t), NB_OK);
    if (nb_trainer_fit(t, ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(t)->msg);
    *penalty = l.r[2].penalty;
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_dataset_free(train);
    nb_dataset_free(all);
    *out_m = m;
}

static void test_penalty(void **state)
{
    (void)state;
    nb_model *a, *b, *c, *d;
    double pa, pb, pc, pd;
    run_penalty(0.05, 0, "", &a, &pa);   /* L2 penalty on everything */
    run_penalty(0, 0.05, NULL, &b, &pb); /* weight decay */
    run_penalty(0, 0, NULL, &c, &pc);    /* neither */
    run_penalty(0.05, 0, NULL, &d, &pd); /* penalty on the weights only */
    assert_true(pb == 0 && pc == 0);
    assert_true(pa > pd && pd > 0);
    double max_ab = 0, max_ac = 0;
    for (nb_tensor *p = nb_model_next(a, NULL), *q = nb_model_next(b, NULL),
                   *r = nb_model_next(c, NULL);
         p; p = nb_model_next(a, p), q = nb_model_next(b, q), r = nb_model_next(c, r))
        for (int64_t i = 0; i < nb_tensor_size(p); i++) {
            max_ab = fmax(max_ab, fabs(nb_tensor_get(p, i) - nb_tensor_get(q, i)));
            max_ac = fmax(max_ac, fabs(nb_tensor_get(p, i) - nb_tensor_get(r, i)));
        }
    assert_true(max_ab < 1e-12);
    assert_true(max_ac > 1e-3);
    /* the weights-only penalty leaves the biases out of it: its model
     * differs from the all-parameters one */
    assert_false(same_tensors(a, d));
    nb_model_free(a);
    nb_model_free(b);
    nb_model_free(c);
    nb_model_free(d);
}

/* --------------------------------------------------- gradient norms */

/* The per-layer norms of the report show vanishing gradients: a deep
 * sigmoid network's first-layer gradient is tiny next to its last's; a
 * ReLU network of the same shape keeps them comparable. */
static void norms_ratio(nb_act act, double *ratio, int *count)
{
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    so.lr = 0.01;
    int64_t sizes[9] = {64, 32, 32, 32, 32, 32, 32, 32, 10};
    rig_opts ro = {.seed = 21,
                   .sizes = sizes,
                   .n_sizes = 9,
                   .act = act,
                   .optim = so,
                   .n_train = 500,
                   .batch = 50};
    rig r;
    rig_build(&r, &ro);
    trlog l = {0};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 1;
    o.rng = &r.rng;
    o.on_epoch = on_epoch;
    o.cb_ud = &l;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    assert_int_equal(nb_trainer_fit(r.t, r.ld), NB_OK);
    *count = l.n_norms[0];
    *ratio = l.norms[0][0] / l.norms[0][l.n_norms[0] - 1];
    printf("%-8s", nb_act_name(act));
    for (int i = 0; i < l.n_norms[0]; i++)
        printf(" %.1e", l.norms[0][i]);
    printf("   first/last %.2g\n", *ratio);
    rig_free(&r);
}

static void test_layer_norms(void **state)
{
    (void)state;
    double sig, relu;
    int n_sig, n_relu;
    norms_ratio(NB_ACT_SIGMOID, &sig, &n_sig);
    norms_ratio(NB_ACT_RELU, &relu, &n_relu);
    assert_int_equal(n_sig, 8);
    assert_int_equal(n_relu, 8);
    assert_true(sig < 1e-3);
    assert_true(relu > 0.05);
}

/* ------------------------------------------------------- determinism */

static unsigned char *train_threads(int threads, size_t *len)
{
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_ADAM);
    so.lr = 1e-3;
    rig_opts ro = {.seed = 8,
                   .sizes = (int64_t[]){64, 256, 256, 10},
                   .n_sizes = 4,
                   .act = NB_ACT_RELU,
                   .dropout = 0.2,
                   .optim = so,
                   .n_train = 512,
                   .n_val = 200,
                   .batch = 128};
    rig r;
    rig_build(&r, &ro);
    nb_train_opts o = nb_train_defaults();
    o.epochs = 2;
    o.rng = &r.rng;
    o.threads = threads;
    o.val = r.val;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    assert_int_equal(nb_graph_threads(nb_trainer_graph(r.t)), threads);
    assert_int_equal(nb_optim_threads(r.opt), threads);
    assert_int_equal(nb_trainer_fit(r.t, r.ld), NB_OK);
    unsigned char *bytes = model_bytes(r.m, len);
    rig_free(&r);
    return bytes;
}

static void test_deterministic(void **state)
{
    (void)state;
    size_t n1, n1b, n2, n2b;
    unsigned char *a = train_threads(1, &n1), *b = train_threads(1, &n1b);
    unsigned char *c = train_threads(2, &n2), *d = train_threads(2, &n2b);
    assert_int_equal(n1, n1b);
    assert_memory_equal(a, b, n1);
    assert_int_equal(n2, n2b);
    assert_memory_equal(c, d, n2);
    /* the graph promises the same results for every thread count */
    assert_memory_equal(a, c, n1);
    free(a);
    free(b);
    free(c);
    free(d);
}

/* ------------------------------------------------------------ resume */

/* Dropout, batch norm, augmentation, Adam with a per-epoch cosine
 * schedule and an L2 penalty: every kind of state a run carries. */
static void resume_rig(rig *r, uint64_t seed)
{
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_ADAM);
    so.lr = 2e-3;
    so.clip_norm = 5;
    so.schedule.kind = NB_SCHED_COSINE;
    so.schedule.period = 4;
    so.schedule.per_epoch = true;
    static nb_augment aug = {.max_shift = 1, .noise_std = 0.05};
    rig_opts ro = {.seed = seed,
                   .sizes = (int64_t[]){64, 48, 24, 10},
                   .n_sizes = 4,
                   .act = NB_ACT_RELU,
                   .batch_norm = true,
                   .dropout = 0.25,
                   .optim = so,
                   .n_train = 600,
                   .n_val = 200,
                   .batch = 40,
                   .augment = &aug};
    rig_build(r, &ro);
}

typedef struct saver {
    trlog l;
    const char *path;
    rig *r;
    int save_at;
    nb_status saved;
} saver;

static bool save_and_stop(void *ud, const nb_epoch_report *rep)
{
    saver *s = ud;
    on_epoch(&s->l, rep);
    if (rep->epoch != s->save_at)
        return true;
    nb_error err;
    s->saved = nb_model_save(s->r->m, s->r->opt, s->path, &(nb_ckpt_opts){.rng = &s->r->rng}, &err);
    return false; /* interrupted */
}

static nb_train_opts resume_opts(rig *r)
{
    nb_train_opts o = nb_train_defaults();
    o.epochs = 4;
    o.rng = &r->rng;
    o.val = r->val;
    o.l2 = 1e-4;
    return o;
}

static void test_resume(void **state)
{
    (void)state;
    char path[] = "/tmp/nabla_train_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    /* four epochs straight */
    rig full;
    resume_rig(&full, 11);
    trlog lf = {0};
    nb_train_opts o = resume_opts(&full);
    o.on_epoch = on_epoch;
    o.cb_ud = &lf;
    assert_int_equal(nb_trainer_new(full.m, full.net, full.opt, &o, &full.t), NB_OK);
    if (nb_trainer_fit(full.t, full.ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(full.t)->msg);
    assert_int_equal(lf.n, 4);

    /* two epochs, a checkpoint from the epoch callback, interrupted */
    rig first;
    resume_rig(&first, 11);
    saver s = {.path = path, .r = &first, .save_at = 2, .saved = NB_ERR_ARG};
    o = resume_opts(&first);
    o.on_epoch = save_and_stop;
    o.cb_ud = &s;
    assert_int_equal(nb_trainer_new(first.m, first.net, first.opt, &o, &first.t), NB_OK);
    assert_int_equal(nb_trainer_fit(first.t, first.ld), NB_OK);
    assert_int_equal(s.saved, NB_OK);
    assert_int_equal(nb_trainer_epoch(first.t), 2);
    rig_free(&first);

    /* fresh objects (another seed: everything must come from the file) */
    rig second;
    resume_rig(&second, 99);
    assert_false(same_tensors(second.m, full.m));
    nb_error err;
    if (nb_model_load(second.m, second.opt, path, &(nb_ckpt_opts){.rng = &second.rng}, &err) !=
        NB_OK)
        fail_msg("%s", err.msg);
    trlog ls = {0};
    o = resume_opts(&second);
    o.on_epoch = on_epoch;
    o.cb_ud = &ls;
    assert_int_equal(nb_trainer_new(second.m, second.net, second.opt, &o, &second.t), NB_OK);
    assert_int_equal(nb_trainer_set_epoch(second.t, 2), NB_OK);
    if (nb_trainer_fit(second.t, second.ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(second.t)->msg);

    assert_int_equal(ls.n, 2);
    assert_true(same_tensors(second.m, full.m));
    assert_int_equal(nb_optim_steps(second.opt), nb_optim_steps(full.opt));
    assert_int_equal(nb_optim_sched_pos(second.opt), 4);
    assert_memory_equal(second.rng.s, full.rng.s, sizeof full.rng.s); /* fields, not padding */
    assert_int_equal(second.rng.has_spare, full.rng.has_spare);
    assert_true(second.rng.spare == full.rng.spare);
    for (int e = 0; e < 2; e++) {
        assert_int_equal(ls.r[e].epoch, e + 3);
        assert_true(ls.r[e].loss == lf.r[e + 2].loss);
        assert_true(ls.r[e].val_acc == lf.r[e + 2].val_acc);
        assert_true(ls.r[e].lr == lf.r[e + 2].lr);
    }
    assert_true(lf.r[3].lr < lf.r[0].lr); /* the schedule moved */
    rig_free(&second);
    rig_free(&full);
    remove(path);
}

/* ------------------------------------------------------- allocation */

/* Every allocation (data, model, optimizer, trainer and its graph) goes
 * through one tc_counting hook: after the first epoch there are none. */
static void test_no_alloc_after_first_epoch(void **state)
{
    (void)state;
    tc_counting c = {0};
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_ADAMW);
    static nb_augment aug = {.max_shift = 1, .noise_std = 0.05};
    rig_opts ro = {.seed = 6,
                   .sizes = (int64_t[]){64, 32, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .batch_norm = true,
                   .dropout = 0.1,
                   .optim = so,
                   .n_train = 500,
                   .n_val = 200,
                   .batch = 32,
                   .augment = &aug,
                   .count = &c};
    rig r;
    rig_build(&r, &ro);
    trlog l = {.count = &c};
    nb_train_opts o = nb_train_defaults();
    o.epochs = 5;
    o.rng = &r.rng;
    o.val = r.val;
    o.test = r.test;
    o.l2 = 1e-4;
    o.patience = 5;
    o.on_epoch = on_epoch;
    o.cb_ud = &l;
    o.alloc = tc_counting_alloc;
    o.alloc_ud = &c;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    assert_int_equal(nb_trainer_fit(r.t, r.ld), NB_OK);
    assert_int_equal(l.n, 5);
    assert_true(l.calls_at[0] > 0);
    for (int e = 1; e < 5; e++)
        assert_int_equal(l.calls_at[e], l.calls_at[0]);
    int improved = 0;
    for (int e = 1; e < 5; e++)
        improved += l.r[e].improved;
    printf("allocations: %ld in all by the end of epoch 1, none after (%d later improvements "
           "copied)\n",
           l.calls_at[0], improved);
    rig_free(&r);
    assert_int_equal(c.live, 0);
}

/* Each allocation of the trainer (its struct, graph, buffers) failed in
 * turn: NB_ERR_NOMEM from new or fit, nothing leaked. */
static void test_alloc_failures(void **state)
{
    (void)state;
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    rig_opts ro = {.seed = 6,
                   .sizes = (int64_t[]){64, 16, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .optim = so,
                   .n_train = 100,
                   .n_val = 50,
                   .batch = 50};
    int failures = 0;
    for (long k = 1;; k++) {
        rig r;
        rig_build(&r, &ro);
        tc_counting c = {.fail_at = k};
        nb_train_opts o = nb_train_defaults();
        o.epochs = 2;
        o.rng = &r.rng;
        o.val = r.val;
        o.l2 = 1e-3;
        o.patience = 1;
        o.alloc = tc_counting_alloc;
        o.alloc_ud = &c;
        nb_status st = nb_trainer_new(r.m, r.net, r.opt, &o, &r.t);
        if (st == NB_OK)
            st = nb_trainer_fit(r.t, r.ld);
        bool hit = c.calls >= k;
        if (hit) {
            assert_int_equal(st, NB_ERR_NOMEM);
            if (r.t)
                assert_true(strlen(nb_trainer_error(r.t)->msg) > 0);
            failures++;
        } else {
            assert_int_equal(st, NB_OK);
        }
        rig_free(&r);
        assert_int_equal(c.live, 0);
        if (!hit)
            break;
    }
    assert_true(failures >= 4);
}

/* ------------------------------------------------------------ regression */

/* A regression rig: 400 samples of 3 features uniform in [-1, 1] and two
 * targets y0 = x0 − 2·x1 + 0.5 and y1 = sin(2·x2) + x0·x1 (plus noise of
 * sd 0.01), split 300 / 50 / 50; a 3-32-2 tanh MLP; Adam; batches of 20. */
static void reg_build(rig *r, uint64_t seed, tc_counting *count)
{
    memset(r, 0, sizeof *r);
    nb_rng_seed(&r->rng, seed);
    enum { N = 400 };
    static float x[N * 3], y[N * 2];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 3; j++)
            x[3 * i + j] = (float)(2 * nb_rng_uniform(&r->rng) - 1);
        y[2 * i] = x[3 * i] - 2 * x[3 * i + 1] + 0.5f + 0.01f * (float)nb_rng_normal(&r->rng);
        y[2 * i + 1] = (float)sin(2 * x[3 * i + 2]) + x[3 * i] * x[3 * i + 1] +
                       0.01f * (float)nb_rng_normal(&r->rng);
    }
    nb_data_opts d = {0};
    if (count)
        d.alloc = tc_counting_alloc, d.alloc_ud = count;
    assert_int_equal(nb_dataset_from_targets(&d, N, 3, x, 2, y, &r->all), NB_OK);
    assert_int_equal(nb_dataset_split(r->all, &r->rng, 300, 50, &r->train, &r->val, &r->test),
                     NB_OK);
    r->m = count ? nb_model_new_alloc(tc_counting_alloc, count) : nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &r->rng;
    mo.layer.init = NB_INIT_AUTO;
    mo.act = NB_ACT_TANH;
    assert_int_equal(nb_mlp_new(r->m, NULL, (int64_t[]){3, 32, 2}, 3, &mo, &r->net), NB_OK);
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_ADAM);
    so.lr = 0.01;
    r->opt = count ? nb_optim_new_alloc(&so, tc_counting_alloc, count) : nb_optim_new(&so);
    assert_non_null(r->opt);
    assert_int_equal(nb_loader_new(r->train, 20, true, false, &r->ld), NB_OK);
}

static nb_train_opts reg_opts(rig *r, trlog *l)
{
    nb_train_opts o = nb_train_defaults();
    o.epochs = 40;
    o.rng = &r->rng;
    o.val = r->val;
    o.test = r->test;
    o.on_epoch = on_epoch;
    o.cb_ud = l;
    return o;
}

/* RMSE and MAE of the network on @p ds, computed here row by row. */
static void reg_errors_by_hand(nb_layer *net, const nb_dataset *ds, double *rmse, double *mae)
{
    nb_graph *g = nb_graph_new();
    nb_graph_set_recording(g, false);
    int64_t n = nb_dataset_count(ds), K = nb_dataset_targets(ds), F = nb_dataset_features(ds);
    double sq = 0, ab = 0;
    for (int64_t i = 0; i < n; i++) {
        nb_graph_reset(g);
        nb_tensor *x = nb_zeros(g, NB_F32, 2, (int64_t[]){1, F});
        for (int64_t j = 0; j < F; j++)
            nb_tensor_set(x, j, nb_dataset_get(ds, i, j));
        nb_tensor *out = nb_layer_forward(g, net, x, false);
        assert_non_null(out);
        for (int64_t k = 0; k < K; k++) {
            double d = nb_tensor_get(out, k) - nb_dataset_target(ds, i, k);
            sq += d * d;
            ab += fabs(d);
        }
    }
    *rmse = sqrt(sq / (double)(n * K));
    *mae = ab / (double)(n * K);
    nb_graph_free(g);
}

/* Two outputs learned from float targets with the default loss (MSE):
 * RMSE and MAE each epoch, accuracy not measured; the trainer's figures
 * are those of nb_evaluate_regression and of a computation by hand. */
static void test_regression_fit(void **state)
{
    (void)state;
    rig r;
    reg_build(&r, 11, NULL);
    trlog l = {0};
    nb_train_opts o = reg_opts(&r, &l);
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    if (nb_trainer_fit(r.t, r.ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(r.t)->msg);
    assert_int_equal(l.n, 40);
    const nb_epoch_report *first = &l.r[0], *last = &l.r[39];
    assert_true(isnan(last->train_acc) && isnan(last->val_acc) && isnan(last->test_acc));
    assert_true(last->test_rmse < 0.3 * first->test_rmse);
    assert_true(last->test_rmse < 0.15);
    assert_true(last->val_mae <= last->val_rmse && last->val_mae > 0);
    assert_true(isfinite(last->train_rmse));
    /* the loss is the MSE: the square of the RMSE */
    tc_near(last->test_loss, last->test_rmse * last->test_rmse, 1e-6);
    double rmse, mae, loss, hr, hm;
    assert_int_equal(nb_trainer_evaluate_regression(r.t, r.test, &rmse, &mae, &loss), NB_OK);
    tc_near(rmse, last->test_rmse, 0);
    tc_near(mae, last->test_mae, 0);
    tc_near(loss, last->test_loss, 0);
    reg_errors_by_hand(r.net, r.test, &hr, &hm);
    tc_near(rmse, hr, 1e-6); /* f32 outputs: batch sizes round differently */
    tc_near(mae, hm, 1e-6);
    nb_graph *g = nb_graph_new();
    double er, em;
    assert_int_equal(nb_evaluate_regression(g, r.net, r.test, 7, &er, &em), NB_OK);
    tc_near(er, hr, 1e-6);
    tc_near(em, hm, 1e-6);
    assert_int_equal(nb_evaluate_regression(g, r.net, r.test, 7, NULL, NULL), NB_OK);
    /* accuracy is not defined for targets */
    double acc;
    assert_int_equal(nb_trainer_evaluate(r.t, r.test, &acc, &loss), NB_OK);
    assert_true(isnan(acc));
    tc_near(loss, last->test_loss, 0);
    /* the wrong evaluation for the data set says which one fits */
    assert_int_equal(nb_evaluate(g, r.net, r.test, 8, &acc, &loss), NB_ERR_ARG);
    assert_non_null(strstr(nb_graph_error(g)->msg,
                           "evaluate: the data set has 2 float targets per sample: "
                           "nb_evaluate_regression reports RMSE and MAE"));
    nb_graph_clear_error(g);
    nb_dataset *digits = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &digits), NB_OK);
    assert_int_equal(nb_evaluate_regression(g, r.net, digits, 8, &er, &em), NB_ERR_ARG);
    assert_non_null(strstr(nb_graph_error(g)->msg, "evaluate_regression: the data set has class "
                                                   "labels (10 classes): nb_evaluate"));
    nb_graph_clear_error(g);
    assert_int_equal(nb_evaluate_regression(g, NULL, r.test, 8, &er, &em), NB_ERR_NULL);
    assert_int_equal(nb_evaluate_regression(NULL, r.net, r.test, 8, &er, &em), NB_ERR_NULL);
    nb_graph_clear_error(g);
    assert_int_equal(nb_evaluate_regression(g, r.net, r.test, 0, &er, &em), NB_ERR_ARG);
    nb_graph_clear_error(g);
    assert_int_equal(nb_trainer_evaluate_regression(r.t, digits, &er, &em, NULL), NB_ERR_ARG);
    assert_non_null(strstr(nb_trainer_error(r.t)->msg, "class labels (10 classes), no targets"));
    assert_string_equal(nb_trainer_error(r.t)->where, "nb_trainer_evaluate_regression");
    assert_int_equal(nb_trainer_evaluate_regression(NULL, r.test, &er, &em, NULL), NB_ERR_NULL);
    /* the default loss is cross-entropy on labels: the 2 outputs do not
     * cover the 10 classes */
    nb_dataset *labelled = NULL;
    assert_int_equal(nb_dataset_from(NULL, 5, 3, NULL, (int64_t[]){0, 9, 1, 2, 3}, &labelled),
                     NB_OK);
    assert_int_equal(nb_trainer_evaluate(r.t, labelled, &acc, &loss), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_trainer_error(r.t)->msg,
                           "evaluate: the network outputs [5,2] for 5 samples; [5, C] with C >= "
                           "10 classes is needed"));
    nb_dataset_free(labelled);
    /* a network whose output is not [N, K] */
    nb_dataset *three = NULL;
    assert_int_equal(nb_dataset_from_targets(NULL, 5, 3, NULL, 3, NULL, &three), NB_OK);
    assert_int_equal(nb_evaluate_regression(g, r.net, three, 2, &er, &em), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg,
                           "evaluate_regression: the network outputs [2,2] for 2 samples of 3 "
                           "targets each; [2, 3] is needed"));
    nb_dataset_free(three);
    nb_dataset_free(digits);
    nb_graph_free(g);
    rig_free(&r);
}

/* L1 and Huber by kind, and Huber as a loss of the target tensor: the
 * same run bit for bit; each trains. */
static nb_tensor *huber_half(nb_graph *g, nb_tensor *out, nb_tensor *target, void *ud)
{
    (*(int *)ud)++;
    return nb_huber_loss(g, out, target, 0.5, NB_REDUCE_MEAN);
}

static void test_regression_losses(void **state)
{
    (void)state;
    unsigned char *bytes[3];
    size_t len[3];
    int calls = 0;
    for (int k = 0; k < 3; k++) {
        rig r;
        reg_build(&r, 12, NULL);
        trlog l = {0};
        nb_train_opts o = reg_opts(&r, &l);
        o.epochs = 10;
        if (k == 0) {
            o.loss_kind = NB_LOSS_L1;
        } else if (k == 1) {
            o.loss_kind = NB_LOSS_HUBER;
            o.huber_delta = 0.5;
        } else {
            o.target_loss = huber_half;
            o.loss_ud = &calls;
        }
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
        if (nb_trainer_fit(r.t, r.ld) != NB_OK)
            fail_msg("%s", nb_trainer_error(r.t)->msg);
        assert_true(l.r[9].loss < 0.5 * l.r[0].loss);
        assert_true(l.r[9].test_rmse < l.r[0].test_rmse);
        if (k == 0) /* the L1 loss is the MAE */
            tc_near(l.r[9].test_loss, l.r[9].test_mae, 1e-6);
        bytes[k] = model_bytes(r.m, &len[k]);
        rig_free(&r);
    }
    /* 15 training batches, 1 validation and 1 test batch per epoch */
    assert_int_equal(calls, 10 * (15 + 2));
    assert_int_equal(len[1], len[2]);
    assert_memory_equal(bytes[1], bytes[2], len[1]);
    assert_true(memcmp(bytes[0], bytes[1], len[0]) != 0);
    for (int k = 0; k < 3; k++)
        free(bytes[k]);
}

/* Labels given to a loss of the target tensor arrive as one-hot rows:
 * soft cross-entropy on them trains exactly as the built-in cross-entropy. */
static nb_tensor *soft_ce(nb_graph *g, nb_tensor *out, nb_tensor *target, void *ud)
{
    (void)ud;
    return nb_softmax_cross_entropy_soft(g, out, target, NB_REDUCE_MEAN);
}

static void test_target_loss_on_labels(void **state)
{
    (void)state;
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    rig_opts ro = {.seed = 8,
                   .sizes = (int64_t[]){64, 16, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .optim = so,
                   .n_train = 300,
                   .n_val = 100,
                   .batch = 25};
    unsigned char *bytes[2];
    size_t len[2];
    double val_loss[2], val_acc[2];
    for (int k = 0; k < 2; k++) {
        rig r;
        rig_build(&r, &ro);
        trlog l = {0};
        nb_train_opts o = nb_train_defaults();
        o.epochs = 3;
        o.rng = &r.rng;
        o.val = r.val;
        o.on_epoch = on_epoch;
        o.cb_ud = &l;
        o.target_loss = k ? soft_ce : NULL;
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
        if (nb_trainer_fit(r.t, r.ld) != NB_OK)
            fail_msg("%s", nb_trainer_error(r.t)->msg);
        bytes[k] = model_bytes(r.m, &len[k]);
        val_loss[k] = l.r[2].val_loss;
        val_acc[k] = l.r[2].val_acc;
        assert_true(isnan(l.r[2].val_rmse) && isnan(l.r[2].test_mae));
        rig_free(&r);
    }
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(bytes[0], bytes[1], len[0]);
    tc_near(val_acc[1], val_acc[0], 0);
    tc_near(val_loss[1], val_loss[0], 1e-6);
    free(bytes[0]);
    free(bytes[1]);
}

/* Same seed, same parameters; early stopping on the validation loss
 * restores the best epoch. */
static void test_regression_deterministic(void **state)
{
    (void)state;
    unsigned char *bytes[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        rig r;
        reg_build(&r, 13, NULL);
        trlog l = {.m = NULL};
        nb_train_opts o = reg_opts(&r, &l);
        o.epochs = 6;
        o.patience = 2;
        o.monitor = NB_MONITOR_VAL_LOSS;
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
        if (nb_trainer_fit(r.t, r.ld) != NB_OK)
            fail_msg("%s", nb_trainer_error(r.t)->msg);
        assert_true(nb_trainer_best_epoch(r.t) >= 1);
        bytes[k] = model_bytes(r.m, &len[k]);
        rig_free(&r);
    }
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(bytes[0], bytes[1], len[0]);
    free(bytes[0]);
    free(bytes[1]);
}

/* Losses and data that do not fit each other, and networks whose output
 * width is not the number of targets: an error at the start of fit naming
 * them, nothing trained. */
static nb_tensor *label_loss(nb_graph *g, nb_tensor *out, const int64_t *labels, int64_t n,
                             void *ud)
{
    (void)ud;
    return nb_softmax_cross_entropy(g, out, labels, n, NB_REDUCE_MEAN);
}

static nb_tensor *bad_target_loss(nb_graph *g, nb_tensor *out, nb_tensor *target, void *ud)
{
    (void)ud, (void)target;
    return nb_sum(g, out, (int[]){1}, 1, false); /* [N], not a scalar */
}

static void test_regression_bad_input(void **state)
{
    (void)state;
    rig r;
    reg_build(&r, 14, NULL);
    size_t n0;
    unsigned char *before = model_bytes(r.m, &n0);
    nb_dataset *digits = NULL, *labelled = NULL, *wide = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &digits), NB_OK);
    assert_int_equal(nb_dataset_from(NULL, 20, 3, NULL, NULL, &labelled), NB_OK);
    assert_int_equal(nb_dataset_from_targets(NULL, 20, 3, NULL, 1, NULL, &wide), NB_OK);
    nb_loader *digits_ld = NULL, *wide_ld = NULL;
    assert_int_equal(nb_loader_new(digits, 32, false, false, &digits_ld), NB_OK);
    assert_int_equal(nb_loader_new(wide, 4, false, false, &wide_ld), NB_OK);
    struct {
        nb_loss_kind kind;
        nb_loss_fn fn;
        nb_target_loss_fn tfn;
        const nb_dataset *val;
        nb_loader *ld;
        nb_monitor monitor;
        nb_status st;
        const char *msg;
    } cases[] = {
        {NB_LOSS_CROSS_ENTROPY, NULL, NULL, NULL, r.ld, NB_MONITOR_VAL_ACC, NB_ERR_ARG,
         "training set: softmax cross-entropy needs class labels, and the data set has 2 float "
         "targets per sample (choose a regression loss: mse, l1 or huber)"},
        {NB_LOSS_DEFAULT, label_loss, NULL, NULL, r.ld, NB_MONITOR_VAL_ACC, NB_ERR_ARG,
         "training set: the loss function (loss) takes class labels, and the data set has 2 "
         "float targets per sample"},
        {NB_LOSS_MSE, NULL, NULL, NULL, digits_ld, NB_MONITOR_VAL_ACC, NB_ERR_ARG,
         "training set: the mse loss needs float targets, and the data set has class labels "
         "(10 classes)"},
        {NB_LOSS_HUBER, NULL, NULL, NULL, digits_ld, NB_MONITOR_VAL_ACC, NB_ERR_ARG,
         "the huber loss needs float targets"},
        {NB_LOSS_DEFAULT, NULL, NULL, labelled, r.ld, NB_MONITOR_VAL_LOSS, NB_ERR_ARG,
         "validation set: 0 float targets per sample, the training set has 2 (0: class labels)"},
        {NB_LOSS_DEFAULT, NULL, NULL, wide, r.ld, NB_MONITOR_VAL_LOSS, NB_ERR_ARG,
         "validation set: 1 float targets per sample, the training set has 2"},
        {NB_LOSS_L1, NULL, NULL, NULL, wide_ld, NB_MONITOR_VAL_ACC, NB_ERR_SHAPE,
         "training set: the network turns 1 sample into [1,2], and the l1 loss needs [1, 1] for "
         "the 1 targets per sample"},
        {NB_LOSS_DEFAULT, NULL, NULL, r.val, r.ld, NB_MONITOR_VAL_ACC, NB_ERR_ARG,
         "early stopping watches the validation accuracy (monitor), and the data has float "
         "targets: watch the loss (NB_MONITOR_VAL_LOSS)"},
        {NB_LOSS_DEFAULT, NULL, bad_target_loss, NULL, r.ld, NB_MONITOR_VAL_ACC, NB_ERR_SHAPE,
         "epoch 1, batch 1: train: the loss is f32 [20]; a single value is needed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_train_opts o = nb_train_defaults();
        o.rng = &r.rng;
        o.loss_kind = cases[i].kind;
        o.loss = cases[i].fn;
        o.target_loss = cases[i].tfn;
        o.val = cases[i].val;
        o.monitor = cases[i].monitor;
        o.patience = cases[i].val ? 1 : 0;
        nb_trainer *t = NULL;
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &t), NB_OK);
        nb_status st = nb_trainer_fit(t, cases[i].ld);
        if (st != cases[i].st || !strstr(nb_trainer_error(t)->msg, cases[i].msg))
            fail_msg("case %zu: status %d, \"%s\"; expected %d, \"%s\"", i, (int)st,
                     nb_trainer_error(t)->msg, (int)cases[i].st, cases[i].msg);
        assert_string_equal(nb_trainer_error(t)->where, "nb_trainer_fit");
        nb_trainer_free(t);
        size_t n1;
        unsigned char *after = model_bytes(r.m, &n1);
        assert_memory_equal(before, after, n0); /* nothing trained */
        free(after);
    }
    /* options that cannot go together */
    struct {
        nb_train_opts o;
        const char *field, *msg;
    } opts[] = {
        {{.eval_batch = 1, .loss_kind = NB_LOSS_HUBER},
         "huber_delta",
         "huber_delta = 0: it must be finite and > 0"},
        {{.eval_batch = 1, .loss_kind = NB_LOSS_HUBER, .huber_delta = -1},
         "huber_delta",
         "huber_delta = -1"},
        {{.eval_batch = 1, .loss_kind = NB_LOSS_HUBER, .huber_delta = INFINITY},
         "huber_delta",
         "huber_delta = inf"},
        {{.eval_batch = 1, .loss_kind = (nb_loss_kind)9}, "loss_kind", "loss_kind = 9: unknown"},
        {{.eval_batch = 1, .loss = label_loss, .target_loss = soft_ce},
         "target_loss",
         "both loss and target_loss are set"},
        {{.eval_batch = 1, .loss_kind = NB_LOSS_MSE, .target_loss = soft_ce},
         "loss_kind",
         "loss_kind = mse and a loss function of your own (target_loss): choose one"},
    };
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        nb_error err;
        nb_trainer *t = (nb_trainer *)&err;
        assert_int_equal(nb_train_opts_check(&opts[i].o, &err), NB_ERR_ARG);
        assert_string_equal(err.name, opts[i].field);
        if (!strstr(err.msg, opts[i].msg))
            fail_msg("options %zu: \"%s\", expected \"%s\"", i, err.msg, opts[i].msg);
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &opts[i].o, &t), NB_ERR_ARG);
        assert_null(t);
    }
    /* names of the kinds */
    nb_loss_kind k;
    for (int i = 0; i <= NB_LOSS_HUBER; i++) {
        assert_int_equal(nb_loss_kind_from_name(nb_loss_kind_name((nb_loss_kind)i), &k), NB_OK);
        assert_int_equal(k, i);
    }
    assert_string_equal(nb_loss_kind_name(NB_LOSS_L1), "l1");
    assert_string_equal(nb_loss_kind_name((nb_loss_kind)-1), "?");
    assert_int_equal(nb_loss_kind_from_name("MSE", &k), NB_ERR_NOTFOUND);
    assert_int_equal(nb_loss_kind_from_name(NULL, &k), NB_ERR_NULL);
    assert_int_equal(nb_loss_kind_from_name("mse", NULL), NB_ERR_NULL);
    free(before);
    nb_loader_free(digits_ld);
    nb_loader_free(wide_ld);
    nb_dataset_free(digits);
    nb_dataset_free(labelled);
    nb_dataset_free(wide);
    rig_free(&r);
}

/* A loss of the target tensor on labels: one-hot rows of the output's
 * width; an output that is not [N, C] or a label beyond C is an error. */
static void test_target_loss_label_errors(void **state)
{
    (void)state;
    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_from(NULL, 6, 3, NULL, (int64_t[]){0, 1, 2, 3, 0, 1}, &ds), NB_OK);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_model *m = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, NULL, (int64_t[]){3, 3}, 2, &mo, &net), NB_OK); /* 3 < 4 */
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    nb_optim *opt = nb_optim_new(&so);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(ds, 6, false, false, &ld), NB_OK);
    nb_train_opts o = nb_train_defaults();
    o.target_loss = soft_ce;
    nb_trainer *t = NULL;
    assert_int_equal(nb_trainer_new(m, net, opt, &o, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, ld), NB_ERR_ARG);
    assert_non_null(strstr(nb_trainer_error(t)->msg,
                           "target_loss: label 3 of sample 3 is outside the 3 columns of the "
                           "output [6,3]"));
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(ds);
}

/* Regression training allocates nothing after its first epoch either. */
static void test_regression_no_alloc_after_first_epoch(void **state)
{
    (void)state;
    tc_counting c = {0};
    rig r;
    reg_build(&r, 15, &c);
    trlog l = {.count = &c};
    nb_train_opts o = reg_opts(&r, &l);
    o.epochs = 4;
    o.loss_kind = NB_LOSS_HUBER;
    o.patience = 4;
    o.monitor = NB_MONITOR_VAL_LOSS;
    o.alloc = tc_counting_alloc;
    o.alloc_ud = &c;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
    assert_int_equal(nb_trainer_fit(r.t, r.ld), NB_OK);
    assert_int_equal(l.n, 4);
    assert_true(l.calls_at[0] > 0);
    for (int e = 1; e < 4; e++)
        assert_int_equal(l.calls_at[e], l.calls_at[0]);
    rig_free(&r);
    assert_int_equal(c.live, 0);
}

/* --------------------------------------------------------- bad input */

static nb_tensor *vector_loss(nb_graph *g, nb_tensor *out, const int64_t *labels, int64_t n,
                              void *ud)
{
    (void)ud, (void)labels, (void)n;
    return nb_sum(g, out, (int[]){1}, 1, false); /* [N], not a scalar */
}

static void test_bad_input(void **state)
{
    (void)state;
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    rig_opts ro = {.seed = 1,
                   .sizes = (int64_t[]){64, 16, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .optim = so,
                   .n_train = 200,
                   .n_val = 100,
                   .batch = 50};
    rig r;
    rig_build(&r, &ro);
    nb_train_opts o = nb_train_defaults();
    o.rng = &r.rng;
    o.epochs = 1;
    nb_trainer *t = (nb_trainer *)&r; /* must be overwritten with NULL */
    nb_error err;

    /* NULLs */
    assert_int_equal(nb_trainer_new(NULL, r.net, r.opt, &o, &t), NB_ERR_NULL);
    assert_null(t);
    assert_int_equal(nb_trainer_new(r.m, NULL, r.opt, &o, &t), NB_ERR_NULL);
    assert_int_equal(nb_trainer_new(r.m, r.net, NULL, &o, &t), NB_ERR_NULL);
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, NULL, &t), NB_ERR_NULL);
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, NULL), NB_ERR_NULL);
    assert_int_equal(nb_trainer_fit(NULL, r.ld), NB_ERR_NULL);
    assert_int_equal(nb_trainer_evaluate(NULL, r.val, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_trainer_set_epoch(NULL, 1), NB_ERR_NULL);
    assert_string_equal(nb_trainer_error(NULL)->msg, "no trainer");
    assert_int_equal(nb_trainer_error(NULL)->status, NB_ERR_NULL);
    assert_int_equal(nb_trainer_epoch(NULL), 0);
    assert_null(nb_trainer_graph(NULL));
    nb_trainer_free(NULL);

    /* options */
    struct {
        nb_train_opts o;
        const char *field, *msg;
    } bad[] = {
        {.o = {.epochs = -1, .eval_batch = 1}, "epochs", "epochs = -1: it must be >= 0"},
        {.o = {.threads = -2, .eval_batch = 1}, "threads", "threads = -2: it must be >= 0"},
        {.o = {.eval_batch = 0}, "eval_batch", "eval_batch = 0: it must be >= 1"},
        {.o = {.eval_batch = 1, .l2 = -1}, "l2", "l2 = -1: it must be finite and >= 0"},
        {.o = {.eval_batch = 1, .l1 = NAN}, "l1", "l1 = nan: it must be finite and >= 0"},
        {.o = {.eval_batch = 1, .patience = -1}, "patience", "patience = -1: it must be >= 0"},
        {.o = {.eval_batch = 1, .patience = 3},
         "patience",
         "patience = 3: early stopping needs a validation set (val)"},
        {.o = {.eval_batch = 1, .val = r.val, .monitor = (nb_monitor)7},
         "monitor",
         "monitor = 7: unknown"},
        {.o = {.eval_batch = 1, .min_delta = -0.5},
         "min_delta",
         "min_delta = -0.5: it must be finite and >= 0"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        assert_int_equal(nb_train_opts_check(&bad[k].o, &err), NB_ERR_ARG);
        assert_int_equal(err.status, NB_ERR_ARG);
        assert_string_equal(err.msg, bad[k].msg);
        assert_string_equal(err.name, bad[k].field);
        assert_string_equal(err.where, "nb_train_opts_check");
        assert_true(err.offset == -1);
        assert_int_equal(nb_train_opts_check(&bad[k].o, NULL), NB_ERR_ARG);
        t = (nb_trainer *)&r;
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &bad[k].o, &t), NB_ERR_ARG);
        assert_null(t);
    }
    assert_int_equal(nb_train_opts_check(NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_train_opts_check(&o, &err), NB_OK);
    assert_int_equal(err.status, NB_OK);
    assert_string_equal(err.msg, "");
    assert_int_equal(nb_train_opts_check(&o, NULL), NB_OK);

    /* a loader that shuffles needs the rng */
    o.rng = NULL;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &t), NB_OK);
    assert_int_equal(nb_trainer_error(t)->status, NB_OK);
    assert_true(nb_trainer_error(t)->offset == -1);
    assert_int_equal(nb_trainer_fit(t, NULL), NB_ERR_NULL);
    assert_string_equal(nb_trainer_error(t)->msg, "fit: no training loader");
    assert_int_equal(nb_trainer_error(t)->status, NB_ERR_NULL);
    assert_string_equal(nb_trainer_error(t)->where, "nb_trainer_fit");
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_NULL);
    assert_string_equal(nb_trainer_error(t)->msg,
                        "epoch 1: the loader shuffles: nb_train_opts.rng is required");
    assert_int_equal(nb_trainer_evaluate(t, NULL, NULL, NULL), NB_ERR_NULL);
    assert_string_equal(nb_trainer_error(t)->msg, "evaluate: no data set");
    assert_string_equal(nb_trainer_error(t)->where, "nb_trainer_evaluate");
    assert_int_equal(nb_trainer_set_epoch(t, -1), NB_ERR_ARG);
    assert_int_equal(nb_trainer_set_epoch(t, 2), NB_ERR_ARG); /* past opts.epochs = 1 */
    assert_string_equal(nb_trainer_error(t)->msg,
                        "set_epoch: epoch 2: it must lie in 0 .. 1 (opts.epochs)");
    assert_string_equal(nb_trainer_error(t)->where, "nb_trainer_set_epoch");
    assert_int_equal(nb_trainer_set_epoch(t, 1), NB_OK); /* all done: fit has nothing to do */
    assert_int_equal(nb_trainer_epoch(t), 1);
    nb_trainer_free(t);
    o.rng = &r.rng;

    /* classes vs output width: a network with 5 outputs on 10 classes */
    nb_layer *net5 = NULL;
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &r.rng;
    assert_int_equal(nb_mlp_new(r.m, "five", (int64_t[]){64, 5}, 2, &mo, &net5), NB_OK);
    assert_int_equal(nb_trainer_new(r.m, net5, r.opt, &o, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_SHAPE);
    assert_string_equal(nb_trainer_error(t)->msg,
                        "training set: the network outputs 5 columns but the training set has "
                        "10 classes");
    assert_int_equal(nb_trainer_epoch(t), 0);
    nb_trainer_free(t);
    nb_layer_free(net5);

    /* input width: a network for 10 features on 64 */
    nb_layer *net10 = NULL;
    assert_int_equal(nb_mlp_new(r.m, "ten", (int64_t[]){10, 10}, 2, &mo, &net10), NB_OK);
    assert_int_equal(nb_trainer_new(r.m, net10, r.opt, &o, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_trainer_error(t)->msg, "training set: ten.fc1: input [1,64]"));
    nb_trainer_free(t);
    nb_layer_free(net10);

    /* evaluation sets that do not fit the training set */
    nb_dataset *narrow = NULL, *twelve = NULL, *empty = NULL;
    assert_int_equal(nb_dataset_from(NULL, 3, 5, NULL, (int64_t[]){0, 1, 2}, &narrow), NB_OK);
    assert_int_equal(
        nb_dataset_from(&(nb_data_opts){.n_classes = 12}, 2, 64, NULL, (int64_t[]){11, 0}, &twelve),
        NB_OK);
    assert_int_equal(nb_dataset_from(NULL, 0, 64, NULL, NULL, &empty), NB_OK);
    struct {
        const nb_dataset *val, *test;
        nb_status st;
        const char *msg;
    } sets[] = {
        {narrow, NULL, NB_ERR_ARG,
         "validation set: 5 features per sample, the training set has 64"},
        {NULL, twelve, NB_ERR_SHAPE, "test set: 12 classes, more than the 10 of the training set"},
        {empty, NULL, NB_ERR_ARG, "validation set: it is empty"},
    };
    for (size_t k = 0; k < sizeof sets / sizeof *sets; k++) {
        nb_train_opts oo = o;
        oo.val = sets[k].val;
        oo.test = sets[k].test;
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &oo, &t), NB_OK);
        assert_int_equal(nb_trainer_fit(t, r.ld), sets[k].st);
        assert_string_equal(nb_trainer_error(t)->msg, sets[k].msg);
        assert_int_equal(nb_optim_steps(r.opt), 0); /* nothing trained */
        nb_trainer_free(t);
    }
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &t), NB_OK);
    assert_int_equal(nb_trainer_evaluate(t, empty, NULL, NULL), NB_ERR_ARG);
    assert_string_equal(nb_trainer_error(t)->msg, "evaluate: the data set is empty");
    nb_trainer_free(t);
    /* an empty training set */
    nb_loader *eld = NULL;
    assert_int_equal(nb_loader_new(empty, 10, false, false, &eld), NB_OK);
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, eld), NB_ERR_ARG);
    assert_string_equal(nb_trainer_error(t)->msg, "training set: it is empty");
    nb_trainer_free(t);
    nb_loader_free(eld);

    /* a loss that is not a scalar */
    nb_train_opts oo = o;
    oo.loss = vector_loss;
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &oo, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_SHAPE);
    assert_string_equal(nb_trainer_error(t)->msg,
                        "epoch 1, batch 1: train: the loss is f32 [50]; a single value is needed");
    nb_trainer_free(t);

    /* a penalty over nothing */
    oo = o;
    oo.l1 = 0.1;
    oo.penalty_suffix = ".nothing";
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &oo, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_ARG);
    assert_string_equal(nb_trainer_error(t)->msg,
                        "penalty (l2 = 0, l1 = 0.1): no trainable parameter name ends in "
                        "\".nothing\"");
    nb_trainer_free(t);
    assert_int_equal(nb_optim_steps(r.opt), 0);

    /* (trains one epoch) a per-epoch schedule that cannot advance (its position from a file at
     * INT64_MAX) stops fit with the optimizer's reason */
    assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &t), NB_OK);
    r.opt->opts.schedule.per_epoch = true;
    r.opt->sched_pos = INT64_MAX;
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_ARG);
    assert_string_equal(nb_trainer_error(t)->msg,
                        "epoch 1: next_epoch: the schedule position is at its limit");
    r.opt->opts.schedule.per_epoch = false;
    r.opt->sched_pos = 0;
    nb_trainer_free(t);

    /* divergence: the step with a non-finite loss is not taken */
    nb_optim_opts big = nb_optim_defaults(NB_OPTIM_SGD);
    big.lr = 1e30;
    nb_optim *opt = nb_optim_new(&big);
    oo = o;
    oo.epochs = 5;
    assert_int_equal(nb_trainer_new(r.m, r.net, opt, &oo, &t), NB_OK);
    assert_int_equal(nb_trainer_fit(t, r.ld), NB_ERR_NONFINITE);
    assert_non_null(strstr(nb_trainer_error(t)->msg, "diverged"));
    assert_true(nb_optim_steps(opt) >= 1);
    nb_trainer_free(t);
    nb_optim_free(opt);

    nb_dataset_free(narrow);
    nb_dataset_free(twelve);
    nb_dataset_free(empty);
    rig_free(&r);
}

/* Softmax cross-entropy, plus from the third training step on a term
 * whose value is 0 and whose gradient is not finite: sqrt at 0 of the
 * output times 0. */
typedef struct poison {
    int calls;
    nb_model *m;
    void *before; /* the model's tensors after the last good step */
    size_t bytes;
} poison;

static nb_tensor *poisoned_loss(nb_graph *g, nb_tensor *out, const int64_t *labels, int64_t n,
                                void *ud)
{
    poison *p = ud;
    nb_tensor *ce = nb_softmax_cross_entropy(g, out, labels, n, NB_REDUCE_MEAN);
    if (!nb_graph_recording(g) || ++p->calls < 3)
        return ce;
    nb_tensor *h = nb_tensor_set_name(nb_scale(g, out, 0.0), "h");
    return nb_add(g, ce, nb_sum(g, nb_sqrt(g, h), NULL, 0, false));
}

/* Copy every tensor of the model, in order, into p->before. */
static void poison_snapshot(void *ud, int epoch, int64_t batch, int64_t n_batches, double loss)
{
    (void)epoch, (void)batch, (void)n_batches, (void)loss;
    poison *p = ud;
    char *at = p->before;
    for (nb_tensor *t = nb_model_next(p->m, NULL); t; t = nb_model_next(p->m, t)) {
        size_t n = (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
        assert_true(at + n <= (char *)p->before + p->bytes);
        memcpy(at, nb_tensor_data(t), n);
        at += n;
    }
}

/* A step whose gradients are not finite stops the trainer with where they
 * came from, before the optimizer writes NaN into the weights; with the
 * check off the step is taken. */
static void test_nonfinite_gradient(void **state)
{
    (void)state;
    rig_opts ro = {.seed = 5,
                   .sizes = (int64_t[]){64, 16, 10},
                   .n_sizes = 3,
                   .act = NB_ACT_RELU,
                   .optim = nb_optim_defaults(NB_OPTIM_ADAM),
                   .n_train = 200,
                   .batch = 20};
    for (int check = 1; check >= 0; check--) {
        rig r;
        rig_build(&r, &ro);
        poison p = {.m = r.m};
        for (nb_tensor *t = nb_model_next(r.m, NULL); t; t = nb_model_next(r.m, t))
            p.bytes += (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
        p.before = malloc(p.bytes);
        assert_non_null(p.before);
        nb_train_opts o = nb_train_defaults();
        assert_true(o.check_finite); /* on by default */
        o.check_finite = check;
        o.epochs = 1;
        o.rng = &r.rng;
        o.loss = poisoned_loss;
        o.loss_ud = &p;
        o.on_batch = poison_snapshot;
        o.cb_ud = &p;
        assert_int_equal(nb_trainer_new(r.m, r.net, r.opt, &o, &r.t), NB_OK);
        nb_status st = nb_trainer_fit(r.t, r.ld);
        bool any_nan = false;
        for (nb_tensor *t = nb_model_next(r.m, NULL); t; t = nb_model_next(r.m, t))
            for (int64_t k = 0; k < nb_tensor_size(t); k++)
                any_nan |= isnan(nb_tensor_get(t, k));
        if (check) {
            assert_int_equal(st, NB_ERR_NONFINITE);
            const char *msg = nb_trainer_error(r.t)->msg;
            assert_non_null(strstr(msg, "epoch 1, batch 3: the gradient of '"));
            assert_non_null(strstr(msg, "' holds NaN at ["));
            /* named by the rule that made it (Inf or -Inf: sqrt at +0 or -0) */
            assert_non_null(strstr(msg, "(sqrt: reverse rule for input 'h' gives "));
            assert_non_null(strstr(msg, "Inf at [0,0]); no step taken"));
            /* the parameter whose gradient is not finite is the error's name */
            const nb_error *e = nb_trainer_error(r.t);
            assert_int_equal(e->status, NB_ERR_NONFINITE);
            assert_string_equal(e->where, "nb_trainer_fit");
            assert_true(strlen(e->name) > 0);
            assert_non_null(strstr(msg, e->name));
            assert_non_null(nb_model_get(r.m, e->name));
            assert_null(strstr(msg, "div"));
            /* two steps taken, the weights bit for bit as after the second */
            assert_int_equal(nb_optim_steps(r.opt), 2);
            assert_false(any_nan);
            char *at = p.before;
            for (nb_tensor *t = nb_model_next(r.m, NULL); t; t = nb_model_next(r.m, t)) {
                size_t n = (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
                assert_memory_equal(at, nb_tensor_data(t), n);
                at += n;
            }
            /* the trainer's graph is left without check-finite mode or error */
            assert_int_equal(nb_graph_status(nb_trainer_graph(r.t)), NB_OK);
        } else {
            /* no check: every step is taken and NaN reaches the weights */
            assert_int_equal(st, NB_OK);
            assert_int_equal(nb_optim_steps(r.opt), 10);
            assert_true(any_nan);
        }
        free(p.before);
        rig_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits_b1),
        cmocka_unit_test(test_early_stopping_acc),
        cmocka_unit_test(test_early_stopping_loss),
        cmocka_unit_test(test_stop_by_callback_and_no_restore),
        cmocka_unit_test(test_evaluate),
        cmocka_unit_test(test_custom_loss),
        cmocka_unit_test(test_penalty),
        cmocka_unit_test(test_layer_norms),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_no_alloc_after_first_epoch),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_nonfinite_gradient),
        cmocka_unit_test(test_regression_fit),
        cmocka_unit_test(test_regression_losses),
        cmocka_unit_test(test_target_loss_on_labels),
        cmocka_unit_test(test_regression_deterministic),
        cmocka_unit_test(test_regression_bad_input),
        cmocka_unit_test(test_target_loss_label_errors),
        cmocka_unit_test(test_regression_no_alloc_after_first_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
