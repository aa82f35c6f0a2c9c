/* The training helper: epochs over a loader, evaluation, early stopping
 * with restoration of the best tensors, callbacks, gradient norms. */

#include "../nn/nn_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "nabla/autodiff.h"
#include "nabla/train.h"

/* The loss a trainer or an evaluation uses: a function of labels, one of
 * the target tensor, or a built-in kind. */
typedef struct loss_spec {
    nb_loss_fn fn;
    nb_target_loss_fn target_fn;
    void *ud;
    nb_loss_kind kind;
    double delta;
} loss_spec;

struct nb_trainer {
    nb_model *m;
    nb_layer *net;
    nb_optim *opt;
    nb_train_opts o;
    loss_spec ls;
    nb_alloc_fn alloc;
    void *ud;
    nb_graph *g;
    int epoch; /* completed */

    /* early stopping */
    int best_epoch; /* 0: none yet */
    double best;
    int bad_epochs;
    bool stopped_early;
    void *snapshot; /* every tensor of the model, in model order */
    size_t snapshot_cap, snapshot_bytes;
    int snapshot_count;

    /* per-layer gradient norms */
    nb_param_norm *norms;  /* one batch's */
    nb_param_norm *report; /* the epoch's means */
    double *norm_sum;
    int n_norms, norms_cap;

    /* penalised parameters */
    nb_tensor **pen;
    int n_pen, pen_cap;

    /* data parallelism (o.comm): the collectives, copied */
    nb_train_comm comm;
    bool dist;

    nb_error err; /* the last failed call's error */
};

/* ------------------------------------------------------------- helpers */

static void *tr_alloc(nb_trainer *t, size_t n)
{
    return t->alloc(t->ud, NULL, 0, n);
}

static void tr_free(nb_trainer *t, void *p, size_t n)
{
    if (p)
        t->alloc(t->ud, p, n, 0);
}

NB_PRINTF(3, 4)
static nb_status fail(nb_trainer *t, nb_status st, const char *fmt, ...)
{
    nb_error_set(&t->err, st, NULL, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err.msg, sizeof t->err.msg, fmt, ap);
    va_end(ap);
    return st;
}

/* The result @p st of the public function @p where: its error (every
 * failure goes through fail), when there is one, is placed there. */
static nb_status placed(nb_trainer *t, nb_status st, const char *where)
{
    if (st != NB_OK)
        snprintf(t->err.where, sizeof t->err.where, "%s", where);
    return st;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Status of a graph that returned NULL: its error, or NB_ERR_ARG when an
 * op returned NULL without one (it should not happen). */
static nb_status graph_status(const nb_graph *g)
{
    nb_status st = nb_graph_status(g);
    return st != NB_OK ? st : NB_ERR_ARG;
}

/* Correct predictions among n rows of out [n, C] (arg-max, first on
 * ties), or -1 when out is not [n, C]. */
static int64_t count_correct(const nb_tensor *out, const int64_t *labels, int64_t n)
{
    double acc;
    if (n < 1 || nb_accuracy(out, labels, n, &acc) != NB_OK)
        return -1;
    return llround(acc * (double)n);
}

/* ---------------------------------------------------------------- losses */

static const char *const LOSS_NAMES[] = {
    [NB_LOSS_DEFAULT] = "default", [NB_LOSS_CROSS_ENTROPY] = "cross-entropy",
    [NB_LOSS_MSE] = "mse",         [NB_LOSS_L1] = "l1",
    [NB_LOSS_HUBER] = "huber",
};
_Static_assert(sizeof LOSS_NAMES / sizeof *LOSS_NAMES == NB_LOSS_HUBER + 1, "a name per loss");

const char *nb_loss_kind_name(nb_loss_kind k)
{
    return (unsigned)k <= NB_LOSS_HUBER ? LOSS_NAMES[k] : "?";
}

nb_status nb_loss_kind_from_name(const char *name, nb_loss_kind *out)
{
    if (!name || !out)
        return NB_ERR_NULL;
    for (int k = 0; k <= NB_LOSS_HUBER; k++)
        if (!strcmp(name, LOSS_NAMES[k])) {
            *out = (nb_loss_kind)k;
            return NB_OK;
        }
    return NB_ERR_NOTFOUND;
}

static loss_spec spec_of(const nb_train_opts *o)
{
    return (loss_spec){o->loss, o->target_loss, o->loss_ud, o->loss_kind, o->huber_delta};
}

/* The built-in kind used on a data set with (or without) targets. */
static nb_loss_kind kind_for(const loss_spec *ls, bool targets)
{
    if (ls->kind != NB_LOSS_DEFAULT)
        return ls->kind;
    return targets ? NB_LOSS_MSE : NB_LOSS_CROSS_ENTROPY;
}

/* The built-in cross-entropy is used (no loss function of the user's). */
static bool default_ce(const loss_spec *ls, bool targets)
{
    return !ls->fn && !ls->target_fn && kind_for(ls, targets) == NB_LOSS_CROSS_ENTROPY;
}

/* Whether the loss can be computed on @p ds: a loss of labels or
 * cross-entropy needs labels, a regression loss targets. The reason into
 * why[0..n) when not. */
static bool loss_fits(const loss_spec *ls, const nb_dataset *ds, char *why, size_t n)
{
    int64_t k = nb_dataset_targets(ds);
    if (ls->target_fn)
        return true;
    if (ls->fn && k > 0)
        snprintf(why, n,
                 "the loss function (loss) takes class labels, and the data set has %lld float "
                 "targets per sample (use target_loss or a regression loss_kind)",
                 (long long)k);
    else if (ls->fn)
        return true;
    else if (kind_for(ls, k > 0) == NB_LOSS_CROSS_ENTROPY && k > 0)
        snprintf(why, n,
                 "softmax cross-entropy needs class labels, and the data set has %lld float "
                 "targets per sample (choose a regression loss: mse, l1 or huber)",
                 (long long)k);
    else if (kind_for(ls, k > 0) != NB_LOSS_CROSS_ENTROPY && k == 0)
        snprintf(why, n,
                 "the %s loss needs float targets, and the data set has class labels (%lld "
                 "classes)",
                 nb_loss_kind_name(ls->kind), (long long)nb_dataset_classes(ds));
    else
        return true;
    return false;
}

/* Labels as the one-hot rows [n, C] a loss of the target tensor gets, C
 * the width of @p out [n, C]. */
static nb_tensor *label_targets(nb_graph *g, const nb_tensor *out, const int64_t *labels, int64_t n,
                                const char *op)
{
    char s[96];
    if (nb_tensor_rank(out) != 2 || nb_tensor_dim(out, 0) != n) {
        nbc_error(g, NB_ERR_SHAPE, op,
                  "target_loss: the labels of %lld samples are given as one-hot rows [%lld, C] "
                  "of the output's width C, but the network outputs %s",
                  (long long)n, (long long)n, nbc_shp(out, s, sizeof s));
        return NULL;
    }
    int64_t c = nb_tensor_dim(out, 1);
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c) {
            nbc_error(g, NB_ERR_ARG, op,
                      "target_loss: label %lld of sample %lld is outside the %lld columns of "
                      "the output %s",
                      (long long)labels[i], (long long)i, (long long)c, nbc_shp(out, s, sizeof s));
            return NULL;
        }
    return nb_one_hot(g, nb_tensor_dtype(out), labels, n, c);
}

/* Loss of one batch of @p n samples with @p labels or targets @p y: a
 * function of the user's, or a built-in kind reduced by @p r. */
static nb_tensor *batch_loss(nb_graph *g, const loss_spec *ls, nb_tensor *out,
                             const int64_t *labels, nb_tensor *y, int64_t n, nb_reduction r,
                             const char *op)
{
    if (ls->fn)
        return ls->fn(g, out, labels, n, ls->ud);
    if (ls->target_fn) {
        nb_tensor *target = y ? y : label_targets(g, out, labels, n, op);
        return target ? ls->target_fn(g, out, target, ls->ud) : NULL;
    }
    switch (kind_for(ls, y != NULL)) {
    case NB_LOSS_MSE: return nb_mse_loss(g, out, y, r);
    case NB_LOSS_L1: return nb_l1_loss(g, out, y, r);
    case NB_LOSS_HUBER: return nb_huber_loss(g, out, y, ls->delta, r);
    default: return nb_softmax_cross_entropy(g, out, labels, n, r);
    }
}

/* Check that @p loss is a scalar; records an error in g otherwise. */
static bool scalar_loss(nb_graph *g, const nb_tensor *loss, const char *op)
{
    if (!loss) {
        if (nb_graph_status(g) == NB_OK)
            nbc_error(g, NB_ERR_NULL, op, "the loss function returned NULL");
        return false;
    }
    if (nb_tensor_size(loss) != 1) {
        char s[96];
        nbc_error(g, NB_ERR_SHAPE, op, "the loss is %s %s; a single value is needed",
                  nb_dtype_name(nb_tensor_dtype(loss)), nbc_shp(loss, s, sizeof s));
        return false;
    }
    return true;
}

/* Squared and absolute errors of @p out against the targets @p y, added to
 * sq and ab; false (nothing added) when out is not y's shape. */
static bool add_errors(const nb_tensor *out, const nb_tensor *y, double *sq, double *ab)
{
    if (!out || !y || nb_tensor_rank(out) != 2 || nb_tensor_dim(out, 0) != nb_tensor_dim(y, 0) ||
        nb_tensor_dim(out, 1) != nb_tensor_dim(y, 1))
        return false;
    for (int64_t e = 0; e < nb_tensor_size(y); e++) {
        double d = nb_tensor_get(out, e) - nb_tensor_get(y, e);
        *sq += d * d;
        *ab += fabs(d);
    }
    return true;
}

/* ----------------------------------------------------------- evaluation */

/* What an evaluation measured (NAN: not measured). */
typedef struct eval_result {
    double acc, loss, rmse, mae;
} eval_result;

/* What an evaluation adds up over samples: the measures of eval_result
 * before they are divided by the samples. */
typedef struct eval_sums {
    double loss, sq, ab;
    int64_t correct;
    bool acc_known, err_known;
} eval_sums;

/* Evaluation of net on the samples [first, end) of ds in batches with loss
 * @p ls, into sums; errors recorded in g (op @p op). The loss must fit the
 * data set (loss_fits). */
static nb_status eval_rows(nb_graph *g, nb_layer *net, const nb_dataset *ds, int64_t first,
                           int64_t end, int64_t batch_size, const loss_spec *ls, const char *op,
                           eval_sums *sums)
{
    int64_t nf = nb_dataset_features(ds);
    int64_t classes = nb_dataset_classes(ds), K = nb_dataset_targets(ds);
    nb_dtype dt = nb_dataset_dtype(ds);
    const char *features = nb_dataset_feature_data(ds), *targets = nb_dataset_target_data(ds);
    size_t row_bytes = (size_t)nf * nb_dtype_size(dt), target_bytes = (size_t)K * nb_dtype_size(dt);
    bool recording = nb_graph_recording(g);
    bool summed = default_ce(ls, K > 0); /* the built-in cross-entropy: a sum per batch */
    bool builtin = !ls->fn && !ls->target_fn;
    nb_status st = NB_OK;
    double loss_sum = 0, sq = 0, ab = 0;
    int64_t correct = 0;
    bool acc_known = K == 0, err_known = K > 0;

    nb_graph_set_recording(g, false);
    for (int64_t i = first; i < end; i += batch_size) {
        int64_t b = end - i < batch_size ? end - i : batch_size;
        nb_graph_reset(g);
        nb_tensor *x =
            nb_tensor_from(g, dt, 2, (int64_t[]){b, nf}, features + (size_t)i * row_bytes);
        nb_tensor *y = NULL;
        int64_t *labels = NULL;
        if (K > 0)
            y = nb_tensor_from(g, dt, 2, (int64_t[]){b, K}, targets + (size_t)i * target_bytes);
        else
            labels = nbc_alloc(g, (size_t)b * sizeof *labels, op);
        if (!x || (!y && !labels)) {
            st = graph_status(g);
            break;
        }
        for (int64_t k = 0; labels && k < b; k++)
            labels[k] = nb_dataset_label(ds, i + k);
        nb_tensor *out = nb_layer_forward(g, net, x, false);
        if (!out) {
            st = graph_status(g);
            break;
        }
        char s[96];
        if (summed && (nb_tensor_rank(out) != 2 || nb_tensor_dim(out, 0) != b ||
                       nb_tensor_dim(out, 1) < classes)) {
            st = nbc_error(g, NB_ERR_SHAPE, op,
                           "the network outputs %s for %lld samples; [%lld, C] with C >= %lld "
                           "classes is needed",
                           nbc_shp(out, s, sizeof s), (long long)b, (long long)b,
                           (long long)classes);
            break;
        }
        if (builtin && K > 0 &&
            (nb_tensor_rank(out) != 2 || nb_tensor_dim(out, 0) != b ||
             nb_tensor_dim(out, 1) != K)) {
            st = nbc_error(g, NB_ERR_SHAPE, op,
                           "the network outputs %s for %lld samples of %lld targets each; "
                           "[%lld, %lld] is needed",
                           nbc_shp(out, s, sizeof s), (long long)b, (long long)K, (long long)b,
                           (long long)K);
            break;
        }
        nb_tensor *loss =
            batch_loss(g, ls, out, labels, y, b, summed ? NB_REDUCE_SUM : NB_REDUCE_MEAN, op);
        if (!scalar_loss(g, loss, op)) {
            st = graph_status(g);
            break;
        }
        loss_sum += summed ? nb_tensor_item(loss) : nb_tensor_item(loss) * (double)b;
        if (K > 0) {
            err_known = err_known && add_errors(out, y, &sq, &ab);
            continue;
        }
        int64_t c = count_correct(out, labels, b);
        if (c < 0)
            acc_known = false;
        else
            correct += c;
    }
    nb_graph_set_recording(g, recording);
    *sums = (eval_sums){loss_sum, sq, ab, correct, acc_known, err_known};
    return st;
}

/* The measures of an evaluation of all the samples of @p ds from its sums. */
static void eval_finish(const nb_dataset *ds, const eval_sums *s, eval_result *res)
{
    int64_t n = nb_dataset_count(ds), K = nb_dataset_targets(ds);
    double values = (double)n * (double)(K > 0 ? K : 1);
    res->acc = s->acc_known ? (double)s->correct / (double)n : NAN;
    res->loss = s->loss / (double)n;
    res->rmse = s->err_known ? sqrt(s->sq / values) : NAN;
    res->mae = s->err_known ? s->ab / values : NAN;
}

/* Evaluation of net on all of ds (eval_rows, then eval_finish). */
static nb_status eval_impl(nb_graph *g, nb_layer *net, const nb_dataset *ds, int64_t batch_size,
                           const loss_spec *ls, const char *op, eval_result *res)
{
    eval_sums sums;
    nb_status st = eval_rows(g, net, ds, 0, nb_dataset_count(ds), batch_size, ls, op, &sums);
    if (st == NB_OK)
        eval_finish(ds, &sums, res);
    return st;
}

/* The checks nb_evaluate and nb_evaluate_regression share; @p targets:
 * the data set must have targets (else labels). */
static nb_status eval_args(nb_graph *g, const nb_layer *net, const nb_dataset *ds,
                           int64_t batch_size, bool targets, const char *op)
{
    if (!net || !ds)
        return nbc_error(g, NB_ERR_NULL, op, "no %s", !net ? "network" : "data set");
    if (batch_size < 1)
        return nbc_error(g, NB_ERR_ARG, op, "batch size %lld: it must be >= 1",
                         (long long)batch_size);
    if (nb_dataset_count(ds) < 1)
        return nbc_error(g, NB_ERR_ARG, op, "the data set is empty");
    int64_t k = nb_dataset_targets(ds);
    if (targets && k == 0)
        return nbc_error(g, NB_ERR_ARG, op,
                         "the data set has class labels (%lld classes): nb_evaluate reports "
                         "their accuracy",
                         (long long)nb_dataset_classes(ds));
    if (!targets && k > 0)
        return nbc_error(g, NB_ERR_ARG, op,
                         "the data set has %lld float targets per sample: "
                         "nb_evaluate_regression reports RMSE and MAE",
                         (long long)k);
    return NB_OK;
}

nb_status nb_evaluate(nb_graph *g, nb_layer *net, const nb_dataset *ds, int64_t batch_size,
                      double *acc, double *loss)
{
    if (!g)
        return NB_ERR_NULL;
    nb_status st = eval_args(g, net, ds, batch_size, false, "evaluate");
    if (st != NB_OK)
        return st;
    const loss_spec ce = {.kind = NB_LOSS_CROSS_ENTROPY};
    eval_result r;
    st = eval_impl(g, net, ds, batch_size, &ce, "evaluate", &r);
    if (st == NB_OK && acc)
        *acc = r.acc;
    if (st == NB_OK && loss)
        *loss = r.loss;
    return st;
}

nb_status nb_evaluate_regression(nb_graph *g, nb_layer *net, const nb_dataset *ds,
                                 int64_t batch_size, double *rmse, double *mae)
{
    static const char op[] = "evaluate_regression";
    if (!g)
        return NB_ERR_NULL;
    nb_status st = eval_args(g, net, ds, batch_size, true, op);
    if (st != NB_OK)
        return st;
    const loss_spec mse = {.kind = NB_LOSS_MSE};
    eval_result r;
    st = eval_impl(g, net, ds, batch_size, &mse, op, &r);
    if (st == NB_OK && rmse)
        *rmse = r.rmse;
    if (st == NB_OK && mae)
        *mae = r.mae;
    return st;
}

/* -------------------------------------------------------------- options */

nb_train_opts nb_train_defaults(void)
{
    return (nb_train_opts){
        .epochs = 10,
        .threads = 1,
        .eval_batch = 256,
        .penalty_suffix = ".weight",
        .monitor = NB_MONITOR_VAL_ACC,
        .restore_best = true,
        .layer_norms = true,
        .check_finite = true,
        .huber_delta = 1.0,
    };
}

/* An option out of range: the error names the field. */
NB_PRINTF(4, 5)
static nb_status opts_fail(nb_error *err, nb_status st, const char *field, const char *fmt, ...)
{
    if (!err)
        return st;
    nb_error_set(err, st, "nb_train_opts_check", "%s", "");
    snprintf(err->name, sizeof err->name, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return st;
}

nb_status nb_train_opts_check(const nb_train_opts *o, nb_error *err)
{
    nb_error_clear(err);
    if (!o)
        return opts_fail(err, NB_ERR_NULL, "", "no options");
    if (o->epochs < 0)
        return opts_fail(err, NB_ERR_ARG, "epochs", "epochs = %d: it must be >= 0", o->epochs);
    if (o->threads < 0)
        return opts_fail(err, NB_ERR_ARG, "threads", "threads = %d: it must be >= 0", o->threads);
    if (o->eval_batch < 1)
        return opts_fail(err, NB_ERR_ARG, "eval_batch", "eval_batch = %lld: it must be >= 1",
                         (long long)o->eval_batch);
    if (!isfinite(o->l2) || o->l2 < 0)
        return opts_fail(err, NB_ERR_ARG, "l2", "l2 = %g: it must be finite and >= 0", o->l2);
    if (!isfinite(o->l1) || o->l1 < 0)
        return opts_fail(err, NB_ERR_ARG, "l1", "l1 = %g: it must be finite and >= 0", o->l1);
    if (o->patience < 0)
        return opts_fail(err, NB_ERR_ARG, "patience", "patience = %d: it must be >= 0",
                         o->patience);
    if (o->patience > 0 && !o->val)
        return opts_fail(err, NB_ERR_ARG, "patience",
                         "patience = %d: early stopping needs a validation set (val)", o->patience);
    if (o->monitor != NB_MONITOR_VAL_ACC && o->monitor != NB_MONITOR_VAL_LOSS)
        return opts_fail(err, NB_ERR_ARG, "monitor", "monitor = %d: unknown", (int)o->monitor);
    if (!isfinite(o->min_delta) || o->min_delta < 0)
        return opts_fail(err, NB_ERR_ARG, "min_delta", "min_delta = %g: it must be finite and >= 0",
                         o->min_delta);
    if ((unsigned)o->loss_kind > NB_LOSS_HUBER)
        return opts_fail(err, NB_ERR_ARG, "loss_kind", "loss_kind = %d: unknown",
                         (int)o->loss_kind);
    if (o->loss && o->target_loss)
        return opts_fail(err, NB_ERR_ARG, "target_loss",
                         "both loss and target_loss are set: choose one");
    if ((o->loss || o->target_loss) && o->loss_kind != NB_LOSS_DEFAULT)
        return opts_fail(err, NB_ERR_ARG, "loss_kind",
                         "loss_kind = %s and a loss function of your own (%s): choose one",
                         nb_loss_kind_name(o->loss_kind), o->loss ? "loss" : "target_loss");
    if (o->loss_kind == NB_LOSS_HUBER && (!(o->huber_delta > 0) || !isfinite(o->huber_delta)))
        return opts_fail(err, NB_ERR_ARG, "huber_delta",
                         "huber_delta = %g: it must be finite and > 0", o->huber_delta);
    const nb_train_comm *c = o->comm;
    if (c && (c->size < 1 || c->rank < 0 || c->rank >= c->size))
        return opts_fail(err, NB_ERR_ARG, "comm", "comm: rank %d of %d: it must lie in 0 .. size-1",
                         c->rank, c->size);
    if (c && (!c->check || !c->broadcast || !c->grads || !c->buffers || !c->sum))
        return opts_fail(err, NB_ERR_ARG, "comm",
                         "comm: a collective is missing (check, broadcast, grads, buffers and sum "
                         "are all needed)");
    return NB_OK;
}

/* ------------------------------------------------------------- trainer */

nb_status nb_trainer_new(nb_model *m, nb_layer *net, nb_optim *opt, const nb_train_opts *o,
                         nb_trainer **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    if (!m || !net || !opt || !o)
        return NB_ERR_NULL;
    nb_status st = nb_train_opts_check(o, NULL);
    if (st != NB_OK)
        return st;
    nb_alloc_fn alloc = o->alloc ? o->alloc : nb_default_alloc;
    nb_trainer *t = alloc(o->alloc_ud, NULL, 0, sizeof *t);
    if (!t)
        return NB_ERR_NOMEM;
    *t = (nb_trainer){.m = m,
                      .net = net,
                      .opt = opt,
                      .o = *o,
                      .ls = spec_of(o),
                      .alloc = alloc,
                      .ud = o->alloc_ud};
    nb_error_clear(&t->err);
    if (!t->o.penalty_suffix)
        t->o.penalty_suffix = ".weight";
    if (o->comm) {
        t->comm = *o->comm;
        t->dist = true;
        t->o.comm = &t->comm;
    }
    t->g = nb_graph_new_alloc(alloc, o->alloc_ud);
    if (!t->g) {
        alloc(o->alloc_ud, t, sizeof *t, 0);
        return NB_ERR_NOMEM;
    }
    nb_graph_set_threads(t->g, o->threads);
    nb_optim_set_threads(opt, o->threads);
    t->best = NAN;
    *out = t;
    return NB_OK;
}

static void free_norms(nb_trainer *t)
{
    size_t cap = (size_t)t->norms_cap;
    tr_free(t, t->norms, cap * sizeof *t->norms);
    tr_free(t, t->report, cap * sizeof *t->report);
    tr_free(t, t->norm_sum, cap * sizeof *t->norm_sum);
    t->norms = t->report = NULL;
    t->norm_sum = NULL;
    t->norms_cap = t->n_norms = 0;
}

void nb_trainer_free(nb_trainer *t)
{
    if (!t)
        return;
    free_norms(t);
    tr_free(t, t->pen, (size_t)t->pen_cap * sizeof *t->pen);
    tr_free(t, t->snapshot, t->snapshot_cap);
    nb_graph_free(t->g);
    t->alloc(t->ud, t, sizeof *t, 0);
}

int nb_trainer_epoch(const nb_trainer *t)
{
    return t ? t->epoch : 0;
}

static void reset_early_stopping(nb_trainer *t)
{
    t->best_epoch = 0;
    t->best = NAN;
    t->bad_epochs = 0;
    t->stopped_early = false;
}

nb_status nb_trainer_set_epoch(nb_trainer *t, int epoch)
{
    if (!t)
        return NB_ERR_NULL;
    if (epoch < 0 || epoch > t->o.epochs)
        return placed(t,
                      fail(t, NB_ERR_ARG,
                           "set_epoch: epoch %d: it must lie in 0 .. %d (opts.epochs)", epoch,
                           t->o.epochs),
                      "nb_trainer_set_epoch");
    t->epoch = epoch;
    reset_early_stopping(t);
    return NB_OK;
}

bool nb_trainer_stopped_early(const nb_trainer *t)
{
    return t && t->stopped_early;
}

int nb_trainer_best_epoch(const nb_trainer *t)
{
    return t ? t->best_epoch : 0;
}

const nb_error *nb_trainer_error(const nb_trainer *t)
{
    static const nb_error no_trainer = {.status = NB_ERR_NULL, .offset = -1, .msg = "no trainer"};
    return t ? &t->err : &no_trainer;
}

nb_graph *nb_trainer_graph(const nb_trainer *t)
{
    return t ? t->g : NULL;
}

/* The sums the ranks of a data-parallel run add up after each step and
 * each evaluation: this rank's part of each. */
enum {
    S_LOSS,        /* a step: Σ_r (b_r / B) · loss_r, the global batch's mean loss; an
                      evaluation: the loss summed over the samples */
    S_CORRECT,     /* correct predictions */
    S_SAMPLES,     /* samples */
    S_SQ,          /* targets: squared errors */
    S_AB,          /* targets: absolute errors */
    S_VALUES,      /* targets: the values they are over */
    S_ACC_UNKNOWN, /* ranks that could not count correct predictions */
    S_ERR_UNKNOWN, /* ranks that could not measure the errors */
    S_FAILED,      /* ranks that failed */
    S_FAILED_RANK, /* Σ (rank + 1) over them */
    S_N
};

/* Add this rank's sums @p v, and whether it failed (@p local, its error
 * then in t->err), to the other ranks'. When one rank failed every rank
 * returns an error: its own, or one naming the rank that failed. @p what
 * begins the sentence ("epoch 2, batch 5"). */
static nb_status dist_sum(nb_trainer *t, double *v, nb_status local, const char *what)
{
    v[S_FAILED] = local != NB_OK;
    v[S_FAILED_RANK] = local != NB_OK ? t->comm.rank + 1 : 0;
    nb_error e;
    nb_error_clear(&e);
    nb_status st = t->comm.sum(t->comm.ud, v, S_N, &e);
    if (st != NB_OK)
        return fail(t, st, "%s: %s", what, e.msg);
    if (local != NB_OK)
        return local;
    int failed = (int)v[S_FAILED];
    if (failed == 1)
        return fail(t, NB_ERR_COMM, "%s: rank %d failed (it reports why)", what,
                    (int)v[S_FAILED_RANK] - 1);
    if (failed > 1)
        return fail(t, NB_ERR_COMM, "%s: %d ranks failed (each reports why)", what, failed);
    return NB_OK;
}

/* Data parallelism: the ranks' non-trainable tensors (batch-norm running
 * statistics) become their mean, before each evaluation. */
static nb_status dist_buffers(nb_trainer *t, const char *what)
{
    nb_error e;
    nb_error_clear(&e);
    nb_status st = t->dist ? t->comm.buffers(t->comm.ud, t->m, &e) : NB_OK;
    return st == NB_OK ? st : fail(t, st, "%s: %s", what, e.msg);
}

/* The trainer's evaluation of @p ds; an error's sentence begins with
 * @p what ("epoch 2, test set: "). With data parallelism each rank
 * evaluates its share of the samples and the sums are added up. */
static nb_status tr_eval(nb_trainer *t, const nb_dataset *ds, const char *what, eval_result *r)
{
    if (!t->dist) {
        nb_status st = eval_impl(t->g, t->net, ds, t->o.eval_batch, &t->ls, "evaluate", r);
        return st == NB_OK ? st : fail(t, st, "%s%s", what, nb_graph_error(t->g)->msg);
    }
    nb_status st;
    int64_t n = nb_dataset_count(ds), rank = t->comm.rank, size = t->comm.size;
    eval_sums es;
    nb_status local = eval_rows(t->g, t->net, ds, n * rank / size, n * (rank + 1) / size,
                                t->o.eval_batch, &t->ls, "evaluate", &es);
    if (local != NB_OK)
        fail(t, local, "%s%s", what, nb_graph_error(t->g)->msg);
    double v[S_N] = {
        [S_LOSS] = es.loss, [S_CORRECT] = (double)es.correct, [S_SQ] = es.sq,
        [S_AB] = es.ab,     [S_ACC_UNKNOWN] = !es.acc_known,  [S_ERR_UNKNOWN] = !es.err_known};
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%.*s", (int)strcspn(what, ":"), *what ? what : "evaluate");
    if ((st = dist_sum(t, v, local, prefix)) != NB_OK)
        return st;
    es = (eval_sums){v[S_LOSS],
                     v[S_SQ],
                     v[S_AB],
                     (int64_t)v[S_CORRECT],
                     v[S_ACC_UNKNOWN] == 0,
                     v[S_ERR_UNKNOWN] == 0};
    eval_finish(ds, &es, r);
    return NB_OK;
}

/* Evaluate @p ds with the trainer's loss; @p targets: it must have them. */
static nb_status trainer_evaluate(nb_trainer *t, const nb_dataset *ds, bool targets, eval_result *r)
{
    nb_error_clear(&t->err);
    if (!ds)
        return fail(t, NB_ERR_NULL, "evaluate: no data set");
    if (nb_dataset_count(ds) < 1)
        return fail(t, NB_ERR_ARG, "evaluate: the data set is empty");
    if (targets && nb_dataset_targets(ds) == 0)
        return fail(t, NB_ERR_ARG,
                    "evaluate: the data set has class labels (%lld classes), no targets to "
                    "measure RMSE and MAE on",
                    (long long)nb_dataset_classes(ds));
    char why[256];
    if (!loss_fits(&t->ls, ds, why, sizeof why))
        return fail(t, NB_ERR_ARG, "evaluate: %s", why);
    nb_status st = dist_buffers(t, "evaluate");
    return st == NB_OK ? tr_eval(t, ds, "", r) : st;
}

nb_status nb_trainer_evaluate(nb_trainer *t, const nb_dataset *ds, double *acc, double *loss)
{
    if (!t)
        return NB_ERR_NULL;
    eval_result r;
    nb_status st = placed(t, trainer_evaluate(t, ds, false, &r), "nb_trainer_evaluate");
    if (st == NB_OK && acc)
        *acc = r.acc;
    if (st == NB_OK && loss)
        *loss = r.loss;
    return st;
}

nb_status nb_trainer_evaluate_regression(nb_trainer *t, const nb_dataset *ds, double *rmse,
                                         double *mae, double *loss)
{
    if (!t)
        return NB_ERR_NULL;
    eval_result r;
    nb_status st = placed(t, trainer_evaluate(t, ds, true, &r), "nb_trainer_evaluate_regression");
    if (st == NB_OK && rmse)
        *rmse = r.rmse;
    if (st == NB_OK && mae)
        *mae = r.mae;
    if (st == NB_OK && loss)
        *loss = r.loss;
    return st;
}

/* ------------------------------------------------------------ snapshots */

/* Copy every tensor of the model into the snapshot buffer (grown when the
 * model is larger than the buffer). */
static nb_status snapshot_take(nb_trainer *t)
{
    size_t bytes = 0;
    int count = 0;
    for (nb_tensor *p = nb_model_next(t->m, NULL); p; p = nb_model_next(t->m, p), count++)
        bytes += (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
    if (bytes > t->snapshot_cap) {
        void *buf = tr_alloc(t, bytes);
        if (!buf)
            return fail(t, NB_ERR_NOMEM,
                        "early stopping: out of memory copying %zu bytes of "
                        "parameters",
                        bytes);
        tr_free(t, t->snapshot, t->snapshot_cap);
        t->snapshot = buf;
        t->snapshot_cap = bytes;
    }
    char *at = t->snapshot;
    for (nb_tensor *p = nb_model_next(t->m, NULL); p; p = nb_model_next(t->m, p)) {
        size_t n = (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
        if (n)
            memcpy(at, nb_tensor_data(p), n);
        at += n;
    }
    t->snapshot_bytes = bytes;
    t->snapshot_count = count;
    return NB_OK;
}

static nb_status snapshot_restore(nb_trainer *t)
{
    size_t bytes = 0;
    int count = 0;
    for (nb_tensor *p = nb_model_next(t->m, NULL); p; p = nb_model_next(t->m, p), count++)
        bytes += (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
    if (bytes != t->snapshot_bytes || count != t->snapshot_count)
        return fail(t, NB_ERR_SHAPE,
                    "early stopping: the model changed since epoch %d (%d tensors, %zu bytes "
                    "then; %d, %zu now): the best parameters were not restored",
                    t->best_epoch, t->snapshot_count, t->snapshot_bytes, count, bytes);
    const char *at = t->snapshot;
    for (nb_tensor *p = nb_model_next(t->m, NULL); p; p = nb_model_next(t->m, p)) {
        size_t n = (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
        if (n)
            memcpy(nb_tensor_data(p), at, n);
        at += n;
    }
    return NB_OK;
}

/* ---------------------------------------------------------------- fit */

/* Buffers sized by the model: per-layer norms and penalised parameters. */
static nb_status prepare_buffers(nb_trainer *t)
{
    if (t->o.layer_norms) {
        int n = nb_grad_norms(t->m, NULL, 0);
        if (n > t->norms_cap) {
            free_norms(t);
            t->norms = tr_alloc(t, (size_t)n * sizeof *t->norms);
            t->report = tr_alloc(t, (size_t)n * sizeof *t->report);
            t->norm_sum = tr_alloc(t, (size_t)n * sizeof *t->norm_sum);
            t->norms_cap = n;
            if (!t->norms || !t->report || !t->norm_sum) {
                free_norms(t);
                return fail(t, NB_ERR_NOMEM, "out of memory for %d gradient norms", n);
            }
        }
        t->n_norms = n;
    }
    t->n_pen = 0;
    if (t->o.l2 > 0 || t->o.l1 > 0) {
        int n = nb_params_matching(t->m, t->o.penalty_suffix, NULL, 0);
        if (n < 1)
            return fail(t, NB_ERR_ARG,
                        "penalty (l2 = %g, l1 = %g): no trainable parameter name ends in \"%s\"",
                        t->o.l2, t->o.l1, t->o.penalty_suffix);
        if (n > t->pen_cap) {
            nb_tensor **pen = tr_alloc(t, (size_t)n * sizeof *pen);
            if (!pen)
                return fail(t, NB_ERR_NOMEM, "out of memory for %d penalised parameters", n);
            tr_free(t, t->pen, (size_t)t->pen_cap * sizeof *t->pen);
            t->pen = pen;
            t->pen_cap = n;
        }
        t->n_pen = nb_params_matching(t->m, t->o.penalty_suffix, t->pen, t->pen_cap);
    }
    return NB_OK;
}

/* Run the first row of @p ds through the network in evaluation mode,
 * without recording, and check the output against the classes. @p exact:
 * the output width must equal the classes (training set) rather than
 * cover them. */
static nb_status probe(nb_trainer *t, const nb_dataset *ds, const char *what, bool exact,
                       int64_t *width)
{
    nb_graph *g = t->g;
    nb_graph_reset(g);
    bool recording = nb_graph_recording(g);
    nb_graph_set_recording(g, false);
    nb_tensor *x =
        nb_tensor_from(g, nb_dataset_dtype(ds), 2, (int64_t[]){1, nb_dataset_features(ds)},
                       nb_dataset_feature_data(ds));
    nb_tensor *out = nb_layer_forward(g, t->net, x, false);
    nb_graph_set_recording(g, recording);
    if (!out)
        return fail(t, graph_status(g), "%s: %s", what, nb_graph_error(g)->msg);
    if (t->ls.fn || t->ls.target_fn)
        return NB_OK;
    int64_t classes = nb_dataset_classes(ds), k = nb_dataset_targets(ds);
    char s[96];
    if (k > 0) { /* a regression loss: one output column per target */
        if (nb_tensor_rank(out) != 2 || nb_tensor_dim(out, 0) != 1 || nb_tensor_dim(out, 1) != k)
            return fail(t, NB_ERR_SHAPE,
                        "%s: the network turns 1 sample into %s, and the %s loss needs [1, %lld] "
                        "for the %lld targets per sample",
                        what, nbc_shp(out, s, sizeof s), nb_loss_kind_name(kind_for(&t->ls, true)),
                        (long long)k, (long long)k);
        return NB_OK;
    }
    if (nb_tensor_rank(out) != 2 || nb_tensor_dim(out, 0) != 1)
        return fail(t, NB_ERR_SHAPE,
                    "%s: the network turns 1 sample into %s; the default loss needs [1, C]", what,
                    nbc_shp(out, s, sizeof s));
    int64_t c = nb_tensor_dim(out, 1);
    if (exact ? c != classes : c < classes)
        return fail(t, NB_ERR_SHAPE,
                    "%s: the network outputs %lld columns but the %s has %lld "
                    "classes",
                    what, (long long)c, what, (long long)classes);
    if (width)
        *width = c;
    return NB_OK;
}

static nb_status check_data(nb_trainer *t, const nb_dataset *train)
{
    const nb_dataset *sets[2] = {t->o.val, t->o.test};
    const char *names[2] = {"validation set", "test set"};
    if (nb_dataset_count(train) < 1)
        return fail(t, NB_ERR_ARG, "training set: it is empty");
    char why[256];
    if (!loss_fits(&t->ls, train, why, sizeof why))
        return fail(t, NB_ERR_ARG, "training set: %s", why);
    if (nb_dataset_targets(train) > 0 && t->o.patience > 0 && t->o.monitor == NB_MONITOR_VAL_ACC)
        return fail(t, NB_ERR_ARG,
                    "early stopping watches the validation accuracy (monitor), and the data has "
                    "float targets: watch the loss (NB_MONITOR_VAL_LOSS)");
    nb_status st = probe(t, train, "training set", true, NULL);
    if (st != NB_OK)
        return st;
    for (int k = 0; k < 2; k++) {
        const nb_dataset *ds = sets[k];
        if (!ds)
            continue;
        if (nb_dataset_count(ds) < 1)
            return fail(t, NB_ERR_ARG, "%s: it is empty", names[k]);
        if (nb_dataset_features(ds) != nb_dataset_features(train))
            return fail(t, NB_ERR_ARG, "%s: %lld features per sample, the training set has %lld",
                        names[k], (long long)nb_dataset_features(ds),
                        (long long)nb_dataset_features(train));
        if (nb_dataset_targets(ds) != nb_dataset_targets(train))
            return fail(
                t, NB_ERR_ARG, "%s: %lld float targets per sample, the training set has %lld%s",
                names[k], (long long)nb_dataset_targets(ds), (long long)nb_dataset_targets(train),
                nb_dataset_targets(ds) == 0 || nb_dataset_targets(train) == 0 ? " (0: class labels)"
                                                                              : "");
        if (!t->o.loss && nb_dataset_classes(ds) > nb_dataset_classes(train))
            return fail(t, NB_ERR_SHAPE, "%s: %lld classes, more than the %lld of the training set",
                        names[k], (long long)nb_dataset_classes(ds),
                        (long long)nb_dataset_classes(train));
        st = probe(t, ds, names[k], false, NULL);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

/* One training step on the next batch; false at the end of the epoch
 * (*st NB_OK) or on error (*st set). */
typedef struct epoch_acc {
    int64_t batches, samples, correct;
    bool acc_known;
    double loss_sum, penalty_sum, norm_sum, norm_max;
    bool err_known; /* targets: the squared errors of every batch were added */
    double sq, ab;  /* targets: sums of squared and absolute errors */
    int64_t values; /* targets: values they are over */
} epoch_acc;

/* The gradient norm of the step is not finite: when some gradient holds
 * NaN or Inf (not merely squares too large to add up), say which parameter
 * and element, and where the backward pass made it, by running it again on
 * the recorded step in check-finite mode. NB_OK when every gradient is
 * finite. */
static nb_status nonfinite_grad(nb_trainer *t, nb_tensor *total, int epoch, long long bi)
{
    nb_tensor *bad = NULL;
    int64_t k = -1;
    for (nb_tensor *p = nb_model_next(t->m, NULL); p && k < 0; p = nb_model_next(t->m, p))
        if (nb_tensor_requires_grad(p) && nb_tensor_grad(p) &&
            (k = nbc_first_nonfinite(nb_tensor_grad(p))) >= 0)
            bad = p;
    if (!bad)
        return NB_OK;
    char where[96];
    nbc_nonfinite_at(nb_tensor_grad(bad), k, where, sizeof where);
    nb_graph *g = t->g;
    bool was_checking = g->check_finite;
    nb_model_zero_grad(t->m);
    nb_graph_set_check_finite(g, true);
    nb_status st = nb_backward(g, total);
    nb_graph_set_check_finite(g, was_checking);
    nb_model_zero_grad(t->m);
    const char *name = nb_tensor_name(bad);
    if (st == NB_ERR_NONFINITE)
        fail(t, NB_ERR_NONFINITE,
             "epoch %d, batch %lld: the gradient of '%s' holds %s (%s); "
             "no step taken",
             epoch, bi, name ? name : "?", where, nb_graph_error(g)->msg);
    else
        fail(t, NB_ERR_NONFINITE,
             "epoch %d, batch %lld: the gradient of '%s' holds %s; no step "
             "taken",
             epoch, bi, name ? name : "?", where);
    snprintf(t->err.name, sizeof t->err.name, "%s", name ? name : "");
    nb_graph_clear_error(g);
    return NB_ERR_NONFINITE;
}

/* What the recorded part of a step made. */
typedef struct step_vals {
    nb_tensor *out, *loss, *total, *l2, *l1;
} step_vals;

/* Forward pass and loss of batch @p b, and the total with the penalty,
 * recorded in the trainer's graph. An empty share of a global batch (data
 * parallelism) has no loss: its total is the penalty alone (or NULL). */
static nb_status step_loss(nb_trainer *t, const nb_batch *b, int epoch, long long bi, step_vals *v)
{
    nb_graph *g = t->g;
    *v = (step_vals){0};
    if (b->size > 0) {
        if (!b->x || (b->targets && !b->y))
            return fail(t, graph_status(g), "epoch %d, batch %lld: %s", epoch, bi,
                        nb_graph_error(g)->msg);
        v->out = nb_layer_forward(g, t->net, b->x, true);
        v->loss = v->out ? batch_loss(g, &t->ls, v->out, b->labels, b->y, b->size, NB_REDUCE_MEAN,
                                      "train")
                         : NULL;
        if (!scalar_loss(g, v->loss, "train"))
            return fail(t, graph_status(g), "epoch %d, batch %lld: %s", epoch, bi,
                        nb_graph_error(g)->msg);
    }
    nb_tensor *total = v->loss;
    if (t->o.l2 > 0) {
        v->l2 = nb_l2_penalty(g, t->pen, t->n_pen, t->o.l2);
        total = total ? nb_add(g, total, v->l2) : v->l2;
    }
    if (t->o.l1 > 0) {
        v->l1 = nb_l1_penalty(g, t->pen, t->n_pen, t->o.l1);
        total = total ? nb_add(g, total, v->l1) : v->l1;
    }
    if ((t->o.l2 > 0 || t->o.l1 > 0) && !total)
        return fail(t, graph_status(g), "epoch %d, batch %lld: penalty: %s", epoch, bi,
                    nb_graph_error(g)->msg);
    v->total = total;
    return NB_OK;
}

/* The loss @p tv of a step is not finite: no step. */
static nb_status diverged(nb_trainer *t, int epoch, long long bi, double tv)
{
    return fail(t, NB_ERR_NONFINITE,
                "epoch %d, batch %lld: the loss is %g (diverged: try a smaller learning "
                "rate); no step taken",
                epoch, bi, tv);
}

/* Backward pass of a data-parallel step, then the ranks' sums and the
 * average of their gradients, each rank's weighted by its share of the
 * global batch. The global batch's loss into *lv. */
static nb_status dist_backward(nb_trainer *t, const nb_batch *b, const step_vals *v,
                               nb_status local, int epoch, long long bi, double *sums)
{
    char what[64];
    snprintf(what, sizeof what, "epoch %d, batch %lld", epoch, bi);
    double w = b->global_size > 0 ? (double)b->size / (double)b->global_size : 0;
    for (int k = 0; k < S_N; k++)
        sums[k] = 0;
    if (local == NB_OK && v->loss) {
        nb_status s = nb_backward(t->g, v->total);
        if (s != NB_OK)
            local = fail(t, s, "%s: backward: %s", what, nb_graph_error(t->g)->msg);
    }
    if (local == NB_OK && v->loss) {
        sums[S_LOSS] = w * nb_tensor_item(v->loss);
        sums[S_SAMPLES] = (double)b->size;
        if (b->y) {
            sums[S_ERR_UNKNOWN] = !add_errors(v->out, b->y, &sums[S_SQ], &sums[S_AB]);
            sums[S_VALUES] = (double)(b->size * b->n_targets);
        } else {
            int64_t c = count_correct(v->out, b->labels, b->size);
            sums[S_ACC_UNKNOWN] = c < 0;
            sums[S_CORRECT] = c < 0 ? 0 : (double)c;
        }
    }
    nb_status st = dist_sum(t, sums, local, what);
    if (st != NB_OK)
        return st;
    double pen = (v->l2 ? nb_tensor_item(v->l2) : 0) + (v->l1 ? nb_tensor_item(v->l1) : 0);
    if (t->o.check_finite && !isfinite(sums[S_LOSS] + pen))
        return diverged(t, epoch, bi, sums[S_LOSS] + pen);
    nb_error e;
    nb_error_clear(&e);
    st = t->comm.grads(t->comm.ud, t->m, w, &e);
    if (st != NB_OK)
        return fail(t, st, "%s: %s", what, e.msg);
    return NB_OK;
}

static bool train_step(nb_trainer *t, nb_loader *ld, int epoch, epoch_acc *a, nb_status *st)
{
    nb_graph *g = t->g;
    nb_batch b;
    *st = NB_OK;
    nb_graph_reset(g);
    if (!nb_loader_next(g, ld, &b))
        return false;
    long long bi = (long long)a->batches + 1;
    nb_model_zero_grad(t->m);
    step_vals v;
    nb_status s = step_loss(t, &b, epoch, bi, &v);
    double sums[S_N];
    double lv = v.loss ? nb_tensor_item(v.loss) : 0;
    if (t->dist) {
        if ((*st = dist_backward(t, &b, &v, s, epoch, bi, sums)) != NB_OK)
            return false;
        lv = sums[S_LOSS];
    } else {
        if ((*st = s) != NB_OK)
            return false;
        double tv = nb_tensor_item(v.total);
        if (t->o.check_finite && !isfinite(tv)) {
            *st = diverged(t, epoch, bi, tv);
            return false;
        }
        s = nb_backward(g, v.total);
        if (s != NB_OK) {
            *st =
                fail(t, s, "epoch %d, batch %lld: backward: %s", epoch, bi, nb_graph_error(g)->msg);
            return false;
        }
    }
    double gn = nb_grad_norm(t->m);
    if (t->o.check_finite && !isfinite(gn) &&
        (*st = nonfinite_grad(t, v.total, epoch, bi)) != NB_OK)
        return false;
    a->norm_sum += gn;
    if (gn > a->norm_max || a->batches == 0)
        a->norm_max = gn;
    if (t->o.layer_norms && t->n_norms > 0) {
        nb_grad_norms(t->m, t->norms, t->n_norms);
        for (int i = 0; i < t->n_norms; i++)
            t->norm_sum[i] += t->norms[i].norm;
    }
    s = nb_optim_step(t->opt, t->m);
    if (s != NB_OK) {
        *st = fail(t, s, "epoch %d, batch %lld: optimizer: %s", epoch, bi,
                   nb_optim_error(t->opt)->msg);
        return false;
    }
    a->batches++;
    a->loss_sum += lv;
    a->penalty_sum += (v.l2 ? nb_tensor_item(v.l2) : 0) + (v.l1 ? nb_tensor_item(v.l1) : 0);
    if (t->dist) {
        a->samples += (int64_t)sums[S_SAMPLES];
        a->correct += (int64_t)sums[S_CORRECT];
        a->acc_known = a->acc_known && sums[S_ACC_UNKNOWN] == 0;
        a->err_known = a->err_known && sums[S_ERR_UNKNOWN] == 0;
        a->sq += sums[S_SQ];
        a->ab += sums[S_AB];
        a->values += (int64_t)sums[S_VALUES];
    } else if (b.y) {
        a->samples += b.size;
        a->err_known = a->err_known && add_errors(v.out, b.y, &a->sq, &a->ab);
        a->values += b.size * b.n_targets;
    } else {
        a->samples += b.size;
        int64_t c = count_correct(v.out, b.labels, b.size);
        if (c < 0)
            a->acc_known = false;
        else
            a->correct += c;
    }
    if (t->o.on_batch)
        t->o.on_batch(t->o.cb_ud, epoch, a->batches, nb_loader_batches(ld), lv);
    return true;
}

/* Evaluate @p ds into @p r (all NAN when ds is NULL). */
static nb_status eval_set(nb_trainer *t, const nb_dataset *ds, const char *what, int epoch,
                          eval_result *r)
{
    *r = (eval_result){NAN, NAN, NAN, NAN};
    if (!ds)
        return NB_OK;
    char prefix[96];
    snprintf(prefix, sizeof prefix, "epoch %d, %s: ", epoch, what);
    return tr_eval(t, ds, prefix, r);
}

/* Early stopping bookkeeping after an epoch; fills the report's fields. */
static nb_status early_stopping(nb_trainer *t, nb_epoch_report *r)
{
    if (!t->o.val)
        return NB_OK;
    bool by_acc = t->o.monitor == NB_MONITOR_VAL_ACC;
    double v = by_acc ? r->val_acc : r->val_loss;
    bool improved;
    if (t->best_epoch == 0)
        improved = !isnan(v);
    else
        improved = by_acc ? v > t->best + t->o.min_delta : v < t->best - t->o.min_delta;
    if (improved) {
        if (t->o.patience > 0 && t->o.restore_best) {
            nb_status st = snapshot_take(t);
            if (st != NB_OK)
                return st;
        }
        t->best = v;
        t->best_epoch = r->epoch;
        t->bad_epochs = 0;
    } else {
        t->bad_epochs++;
    }
    r->improved = improved;
    r->best_epoch = t->best_epoch;
    r->best = t->best;
    r->bad_epochs = t->bad_epochs;
    return NB_OK;
}

/* ------------------------------------------------- data parallelism */

/* zlib's CRC-32 of n bytes, in pieces its length type takes. */
static uint32_t crc_of(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *s = p;
    while (n > 0) {
        uInt k = n > (1u << 30) ? 1u << 30 : (uInt)n;
        crc = (uint32_t)crc32(crc, s, k);
        s += k;
        n -= k;
    }
    return crc;
}

/* A line describing the data set @p ds (its sizes and a CRC-32 of its
 * contents) into buf[*len..cap). */
static void describe_set(char *buf, size_t *len, size_t cap, const char *key, const nb_dataset *ds)
{
    size_t k = 0;
    if (!ds) {
        k = (size_t)snprintf(buf + *len, cap - *len, "%s=none\n", key);
    } else {
        int64_t n = nb_dataset_count(ds), f = nb_dataset_features(ds), tg = nb_dataset_targets(ds);
        size_t es = nb_dtype_size(nb_dataset_dtype(ds));
        uint32_t crc = crc_of(0, nb_dataset_feature_data(ds), (size_t)(n * f) * es);
        if (tg > 0)
            crc = crc_of(crc, nb_dataset_target_data(ds), (size_t)(n * tg) * es);
        else
            crc = crc_of(crc, nb_dataset_label_data(ds),
                         (size_t)n * (nb_dataset_label_type(ds) == NB_LABEL_I64 ? 8 : 4));
        k = (size_t)snprintf(buf + *len, cap - *len,
                             "%s=%lld samples of %lld %s features, %lld %s, CRC-32 %08lx\n", key,
                             (long long)n, (long long)f, nb_dtype_name(nb_dataset_dtype(ds)),
                             (long long)(tg > 0 ? tg : nb_dataset_classes(ds)),
                             tg > 0 ? "targets" : "classes", (unsigned long)crc);
    }
    *len = *len + k < cap ? *len + k : cap - 1;
}

/* The state of the shuffling rng as text. */
static void rng_text(const nb_rng *rng, char *buf, size_t n)
{
    if (!rng)
        snprintf(buf, n, "none");
    else
        snprintf(buf, n, "%016llx%016llx%016llx%016llx", (unsigned long long)rng->s[0],
                 (unsigned long long)rng->s[1], (unsigned long long)rng->s[2],
                 (unsigned long long)rng->s[3]);
}

/* Before the first step of a data-parallel fit: the ranks compare their
 * models and settings (data, batches, shuffling rng, optimizer, loss, how
 * far training is, whether this rank's setup @p local succeeded), and take
 * rank 0's tensors. */
static nb_status dist_start(nb_trainer *t, nb_loader *train, nb_status local)
{
    char set[4096], rng[80];
    size_t len = 0, cap = sizeof set;
    int sr = 0, sp = 1;
    nb_loader_shard(train, &sr, &sp);
    bool shard_ok = sr == t->comm.rank && sp == t->comm.size;
    const nb_optim_opts *oo = nb_optim_options(t->opt);
    rng_text(t->o.rng, rng, sizeof rng);
    len += (size_t)snprintf(set, cap, "setup=%s\n", local == NB_OK ? "ok" : t->err.msg);
    describe_set(set, &len, cap, "training set", nb_loader_dataset(train));
    describe_set(set, &len, cap, "validation set", t->o.val);
    describe_set(set, &len, cap, "test set", t->o.test);
    len += (size_t)snprintf(
        set + len, cap - len,
        "global batch=%lld samples, %lld per epoch\nloader shard=%s\nshuffling rng=%s\n"
        "epochs=%d of %d done\noptimizer=%s, lr %.17g, %lld steps done\nloss=%s%s\n"
        "penalty=l2 %.17g, l1 %.17g\n",
        (long long)nb_loader_batch_size(train), (long long)nb_loader_batches(train),
        shard_ok ? "this rank's" : "not this rank's (nb_loader_set_shard(loader, rank, size))", rng,
        t->epoch, t->o.epochs, oo ? nb_optim_kind_name(oo->kind) : "?", oo ? oo->lr : 0,
        (long long)nb_optim_steps(t->opt), nb_loss_kind_name(t->ls.kind),
        t->ls.fn || t->ls.target_fn ? " (a function of the program's)" : "", t->o.l2, t->o.l1);
    nb_error e;
    nb_error_clear(&e);
    nb_status st = t->comm.check(t->comm.ud, t->m, set, &e);
    if (st != NB_OK) {
        fail(t, st, "the ranks differ before training: %s", e.msg);
        snprintf(t->err.name, sizeof t->err.name, "%s", e.name);
        return st;
    }
    if (local != NB_OK)
        return local;
    if (!shard_ok)
        return fail(t, NB_ERR_ARG,
                    "the training loader takes share %d of %d, and this process is rank %d of %d: "
                    "nb_loader_set_shard(loader, rank, size) is needed",
                    sr, sp, t->comm.rank, t->comm.size);
    st = t->comm.broadcast(t->comm.ud, t->m, &e);
    return st == NB_OK ? st : fail(t, st, "taking rank 0's tensors: %s", e.msg);
}

/* At the start of each epoch of a data-parallel fit: the ranks' shuffling
 * rngs must still agree, or their shares would overlap (a layer that drew
 * from the same rng, e.g. dropout, makes them drift). */
static nb_status dist_epoch(nb_trainer *t, int epoch)
{
    char set[128], rng[80];
    rng_text(t->o.rng, rng, sizeof rng);
    snprintf(set, sizeof set, "epoch=%d\nshuffling rng=%s\n", epoch, rng);
    nb_error e;
    nb_error_clear(&e);
    nb_status st = t->comm.check(t->comm.ud, t->m, set, &e);
    if (st == NB_OK)
        return st;
    fail(t, st,
         "epoch %d: %s (the ranks' shuffling rngs must stay equal: give dropout and other "
         "layers an rng of their own, seeded per rank)",
         epoch, e.msg);
    snprintf(t->err.name, sizeof t->err.name, "%s", e.name);
    return st;
}

/* Whether every rank goes on after an epoch (each one's callback said so). */
static nb_status dist_go_on(nb_trainer *t, int epoch, bool *go_on)
{
    double v[S_N] = {[S_CORRECT] = *go_on ? 0 : 1};
    char what[32];
    snprintf(what, sizeof what, "epoch %d", epoch);
    nb_status st = dist_sum(t, v, NB_OK, what);
    if (st == NB_OK)
        *go_on = v[S_CORRECT] == 0;
    return st;
}

static nb_status fit(nb_trainer *t, nb_loader *train)
{
    nb_error_clear(&t->err);
    t->stopped_early = false;
    if (!train)
        return fail(t, NB_ERR_NULL, "fit: no training loader");
    if (t->epoch >= t->o.epochs)
        return NB_OK;
    nb_status st = check_data(t, nb_loader_dataset(train));
    if (st == NB_OK)
        st = prepare_buffers(t);
    if (t->dist)
        st = dist_start(t, train, st);
    if (st != NB_OK)
        return st;
    const nb_optim_opts *oo = nb_optim_options(t->opt);
    bool per_epoch_schedule = oo && oo->schedule.per_epoch;
    bool early = t->o.patience > 0;
    int last = t->epoch;

    while (t->epoch < t->o.epochs) {
        int epoch = t->epoch + 1;
        double t0 = now_seconds();
        if (t->dist && (st = dist_epoch(t, epoch)) != NB_OK)
            return st;
        if ((st = nb_loader_start(train, t->o.rng)) != NB_OK)
            return fail(t, st, "epoch %d: %s", epoch,
                        st == NB_ERR_NULL ? "the loader shuffles: nb_train_opts.rng is required"
                                          : nb_status_str(st));
        nb_epoch_report r = {
            .epoch = epoch, .epochs = t->o.epochs, .lr = nb_optim_lr(t->opt), .best = NAN};
        bool targets = nb_dataset_targets(nb_loader_dataset(train)) > 0;
        epoch_acc a = {.acc_known = !targets, .err_known = targets};
        for (int i = 0; i < t->n_norms; i++)
            t->norm_sum[i] = 0;
        while (train_step(t, train, epoch, &a, &st))
            ;
        if (st != NB_OK)
            return st;
        if (a.batches == 0)
            return fail(t, NB_ERR_ARG, "epoch %d: the loader gave no batch", epoch);
        double t1 = now_seconds();
        double nb = (double)a.batches;
        r.batches = a.batches;
        r.loss = a.loss_sum / nb;
        r.penalty = a.penalty_sum / nb;
        r.train_acc = a.acc_known ? (double)a.correct / (double)a.samples : NAN;
        r.train_rmse = a.err_known ? sqrt(a.sq / (double)a.values) : NAN;
        r.grad_norm_mean = a.norm_sum / nb;
        r.grad_norm_max = a.norm_max;
        if (t->o.layer_norms && t->n_norms > 0) {
            for (int i = 0; i < t->n_norms; i++)
                t->report[i] = (nb_param_norm){t->norms[i].name, t->norm_sum[i] / nb};
            r.layer_norms = t->report;
            r.n_layer_norms = t->n_norms;
        }
        eval_result ev, et;
        char what[32];
        snprintf(what, sizeof what, "epoch %d", epoch);
        st = dist_buffers(t, what);
        if (st == NB_OK)
            st = eval_set(t, t->o.val, "validation set", epoch, &ev);
        if (st == NB_OK)
            st = eval_set(t, t->o.test, "test set", epoch, &et);
        if (st != NB_OK)
            return st;
        r.val_acc = ev.acc, r.val_loss = ev.loss, r.val_rmse = ev.rmse, r.val_mae = ev.mae;
        r.test_acc = et.acc, r.test_loss = et.loss, r.test_rmse = et.rmse, r.test_mae = et.mae;
        if (per_epoch_schedule && (st = nb_optim_next_epoch(t->opt)) != NB_OK)
            return fail(t, st, "epoch %d: %s", epoch, nb_optim_error(t->opt)->msg);
        t->epoch = last = epoch;
        if ((st = early_stopping(t, &r)) != NB_OK)
            return st;
        r.train_seconds = t1 - t0;
        r.seconds = now_seconds() - t0;
        bool go_on = t->o.on_epoch ? t->o.on_epoch(t->o.cb_ud, &r) : true;
        if (t->dist && (st = dist_go_on(t, epoch, &go_on)) != NB_OK)
            return st;
        if (early && t->bad_epochs >= t->o.patience) {
            t->stopped_early = true;
            break;
        }
        if (!go_on)
            break;
    }
    if (early && t->o.restore_best && t->best_epoch > 0 && t->best_epoch != last)
        return snapshot_restore(t);
    return NB_OK;
}

nb_status nb_trainer_fit(nb_trainer *t, nb_loader *train)
{
    if (!t)
        return NB_ERR_NULL;
    return placed(t, fit(t, train), "nb_trainer_fit");
}
