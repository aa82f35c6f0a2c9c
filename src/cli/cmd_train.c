/* nabla train: an MLP on a data set from the command line, with the
 * training helper: classification of labels, or regression of a CSV's
 * target columns; progress bar, JSON lines, plots and checkpoints. */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/file.h" /* the output files, checked before the run */
#include "cli.h"
#include "data_sets.h"
#include "cnn_spec.h"
#include "model_file.h"
#include "svg.h"

static const char *train_usage_start =
    "usage: nabla train [options]\n"
    "\n"
    "Trains a multilayer perceptron and reports loss and accuracy every epoch:\n"
    "softmax cross-entropy on class labels, or with --target a regression on the\n"
    "float target columns of a CSV file, reporting RMSE and MAE instead of accuracy.\n"
    "\n"
    "  --data SET          digits (built in, default), fashion-mnist (Debian's\n"
    "                      dataset-fashion-mnist), or a path: a .csv file (label in\n"
    "                      the last column; features standardised, the mean and\n"
    "                      std saved with the model) or an IDX images file (the\n"
    "                      labels file is found by replacing 'images-idx3' with\n"
    "                      'labels-idx1'); a path is shuffled with --seed and\n"
    "                      split 80/20 into training and test rows (digits: its\n"
    "                      first 1500 rows train, the last 297 test); a warning\n"
    "                      says when the test or validation part lacks some of\n"
    "                      the classes\n"
    "  --target COLS       regression on a .csv: the target column, a header name\n"
    "                      or a 0-based index (a whole number; negative from the\n"
    "                      end), or several separated by commas; the others are\n"
    "                      the features. Targets are used as they are\n"
    "  --loss NAME         cross-entropy (labels; the default), or with --target\n"
    "                      mse (the default), l1 or huber\n"
    "  --huber-delta X     delta of --loss huber (default 1)\n"
    "  --model NAME        mlp (the default), or a recurrent network over each\n"
    "                      sample's rows: rnn, gru or lstm (one layer, its last\n"
    "                      hidden state into a linear output layer)\n"
    "  --hidden N          units of the recurrent layer (default 128)\n"
    "  --steps T           steps of a sample for a recurrent model: images are\n"
    "                      read row by row (digits 8 steps of 8, Fashion-MNIST\n"
    "                      28 of 28); a .csv row of F values is T steps of F/T\n"
    "                      (default: F steps of 1)\n"
    "  --layers LIST       hidden layer sizes, whole numbers 1..100000 separated by\n"
    "                      commas, at most 16 (default 128,64; --model mlp); or a\n"
    "                      convolutional network over the images (digits 1x8x8,\n"
    "                      Fashion-MNIST 1x28x28): conv<O>k<K>[s<S>][p<P>] (O\n"
    "                      channels up to 100000, KxK kernel, stride S, padding\n"
    "                      P; K, S 1..64, P 0..64), pool<K> (max, KxK, stride K;\n"
    "                      K 1..64), avgpool<K>, then fc<N> (N up to 100000), e.g.\n"
    "                      conv32k3p1,pool2,conv64k3p1,pool2,fc128; --act after\n"
    "                      each conv and fc, a linear output layer last\n"
    "  --act NAME          hidden activation (default relu): identity, sigmoid,\n"
    "                      tanh, hard-sigmoid, hard-tanh, relu, leaky-relu, prelu,\n"
    "                      rrelu, elu, softplus, softsign, swish, swish-learned,\n"
    "                      gelu, gelu-sigmoid, gelu-tanh, maxout, step\n"
    "  --pieces K          pieces of each maxout unit (--act maxout; default 2)\n";
/* (two literals: each under the 4095 bytes C requires compilers to take) */
static const char *train_usage_more =
    "  --opt NAME          sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad\n"
    "                      (default sgd; the others' options are PyTorch's defaults)\n"
    "  --lr X              learning rate (default 0.05 for sgd/momentum/nesterov,\n"
    "                      0.001 for adam/adamw/rmsprop, 0.01 for adagrad)\n"
    "  --schedule NAME     constant, step (x0.1 every third of the epochs) or cosine\n"
    "  --epochs N          epochs (default 30)\n"
    "  --batch N           mini-batch size (default 32)\n"
    "  --dropout P         dropout after each hidden activation (default 0)\n"
    "  --batchnorm         batch normalisation after each hidden layer\n"
    "  --weight-decay X    weight decay (decoupled for adamw)\n"
    "  --l2 X              L2 penalty 0.5*X*sum ||W||^2 over the weights\n"
    "  --early-stop N      stop after N epochs without a better validation\n"
    "                      accuracy (validation loss with --target; a tenth of\n"
    "                      the training set, drawn with --seed, is held out)\n"
    "                      and keep the best epoch's parameters\n"
    "  --seed N            random seed of the split, the initial weights and the\n"
    "                      batches (default 1)\n"
    "  --threads N         threads (default 1; results depend on seed and threads)\n"
    "  --save FILE         checkpoint after every epoch (model, optimizer, RNG);\n"
    "                      FILE.safetensors: the weights and metadata only\n"
    "  --resume FILE       continue a run saved with --save (same options: the\n"
    "                      saved network, seed and optimizer are checked; its step\n"
    "                      count must be whole epochs below --epochs)\n"
    "  --load FILE         start from the parameters of a checkpoint or a\n"
    "                      .safetensors file\n"
    "  --plot FILE.svg     loss and accuracy curves (RMSE with --target)\n"
    "  --json              one JSON object per epoch instead of the table (with\n"
    "                      --target test_rmse, test_mae, ... for test_acc, ...)\n"
    "  --grad-norms        per-layer gradient norms each epoch, input layer first\n"
    "                      (shows vanishing gradients in deep sigmoid networks)\n"
    "  --dist-timeout S    under mpirun: seconds to wait for the slowest rank before\n"
    "                      stopping with an error naming it (default 60; 0: forever)\n"
    "\n"
    "Under mpirun (mpirun -np P nabla train ...) the P processes train one model\n"
    "data-parallel: each takes its share of every batch of --batch samples, their\n"
    "gradients are averaged after each step, and only rank 0 prints and writes\n"
    "--save and --plot (docs/distributed.md).\n";

typedef struct train_run {
    bool json, tty, norms;
    bool regression; /* float targets: RMSE and MAE instead of accuracy */
    const char *save;
    nb_model *m;
    nb_optim *opt;
    nb_rng *rng;
    const char *meta;
    int epochs;    /* epochs this run can train: the curve's capacity */
    int done;      /* epochs finished, counting a resumed run's earlier ones */
    int n_curve;   /* epochs of this run in the curve */
    double *curve; /* epoch, loss, train_acc, val_acc, test_acc per epoch */
    int failed;
    bool quiet; /* a rank of a data-parallel run other than 0: prints and writes nothing */
} train_run;

/* A checkpoint (model, optimizer, RNG), or weights and metadata only for a
 * .safetensors path. */
static nb_status save_model(const train_run *r, nb_error *err)
{
    nb_ckpt_opts co = {0};
    co.meta = r->meta;
    size_t n = strlen(r->save);
    if (n > 12 && !strcmp(r->save + n - 12, ".safetensors"))
        return nb_model_save_safetensors(r->m, r->save, &(nb_file_opts){.meta = r->meta}, err);
    co.rng = r->rng;
    return nb_model_save(r->m, r->opt, r->save, &co, err);
}

/* The progress bar of batch 1 .. n_batches, on a terminal only. */
static void on_batch(void *ud, int epoch, int64_t batch, int64_t n_batches, double loss)
{
    const train_run *r = ud;
    if (!r->tty || r->json || n_batches < 1)
        return;
    enum { WIDTH = 30 };
    int done = batch < 0 ? 0 : batch >= n_batches ? WIDTH : (int)(batch * WIDTH / n_batches);
    fprintf(stderr, "\r  epoch %3d [%.*s%*s] loss %.4f", epoch, done,
            "##############################", WIDTH - done, "", loss);
}

/* Erase the progress bar's line before a summary or an error takes it. */
static void clear_bar(const train_run *r)
{
    if (r->tty && !r->json)
        fputs("\r\033[K", stderr);
}

static bool on_epoch(void *ud, const nb_epoch_report *e)
{
    train_run *r = ud;
    clear_bar(r);
    r->done = e->epoch; /* counts from the start of the run, resumed ones included */
    int k = r->n_curve;
    if (k < r->epochs) {
        double *c = r->curve;
        c[k] = r->done;
        c[r->epochs + k] = e->loss;
        c[2 * r->epochs + k] = r->regression ? e->train_rmse : e->train_acc;
        c[3 * r->epochs + k] = r->regression ? e->val_rmse : e->val_acc;
        c[4 * r->epochs + k] = r->regression ? e->test_rmse : e->test_acc;
        r->n_curve++;
    }
    if (r->json) {
        printf("{\"epoch\": %d, \"loss\": ", r->done);
        cli_json_num(stdout, e->loss);
        if (r->regression) {
            cli_json_num_field("train_rmse", e->train_rmse);
            cli_json_num_field("val_rmse", e->val_rmse);
            cli_json_num_field("val_mae", e->val_mae);
            cli_json_num_field("test_rmse", e->test_rmse);
            cli_json_num_field("test_mae", e->test_mae);
        } else {
            cli_json_num_field("train_acc", e->train_acc);
            cli_json_num_field("val_acc", e->val_acc);
            cli_json_num_field("test_acc", e->test_acc);
        }
        cli_json_num_field("seconds", e->seconds);
        cli_json_num_field("lr", e->lr);
        if (r->norms) {
            printf(", \"grad_norms\": [");
            for (int i = 0; i < e->n_layer_norms; i++) {
                printf(i ? ", " : "");
                cli_json_num(stdout, e->layer_norms[i].norm);
            }
            printf("]");
        }
        printf("}\n");
    } else if (r->regression) {
        printf("  epoch %3d  loss %.4f  train RMSE %.4f", r->done, e->loss, e->train_rmse);
        if (!isnan(e->val_rmse))
            printf("  val RMSE %.4f", e->val_rmse);
        if (!isnan(e->test_rmse))
            printf("  test RMSE %.4f MAE %.4f", e->test_rmse, e->test_mae);
    } else {
        printf("  epoch %3d  loss %.4f  train %5.1f%%", r->done, e->loss, 100 * e->train_acc);
        if (!isnan(e->val_acc))
            printf("  val %5.1f%%", 100 * e->val_acc);
        if (!isnan(e->test_acc))
            printf("  test %5.1f%%", 100 * e->test_acc);
    }
    if (!r->json) {
        printf("  %.2f s%s\n", e->seconds, e->improved ? "  *" : "");
        if (r->norms && e->n_layer_norms > 0) {
            printf("      |dL/dW| input to output:");
            for (int i = 0; i < e->n_layer_norms; i++)
                printf(" %.3g", e->layer_norms[i].norm);
            printf("  (first/last %.3g)\n",
                   e->layer_norms[0].norm / e->layer_norms[e->n_layer_norms - 1].norm);
        }
    }
    fflush(stdout);
    if (r->save && !r->quiet) {
        nb_error err;
        if (save_model(r, &err) != NB_OK) {
            cli_error("train", "cannot save %s: %s", CLI_Q(r->save), err.msg);
            r->failed = 1;
            return false;
        }
    }
    return true;
}

/* The first line of @p a whose key @p b lacks or holds another value
 * (skipping the checkpoint's own nabla., optim. and rng. lines): its key
 * into key[0..n), the values into va and vb ("" when absent). */
static bool first_difference(const char *a, const char *b, char *key, size_t n, char *va,
                             char *vb, size_t vn)
{
    for (const char *p = a; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq && strncmp(p, "nabla.", 6) && strncmp(p, "optim.", 6) && strncmp(p, "rng.", 4)) {
            snprintf(key, n, "%.*s", (int)(eq - p), p);
            snprintf(va, vn, "%.*s", (int)(len - (size_t)(eq - p) - 1), eq + 1);
            if (nb_meta_get(b, key, vb, vn) != NB_OK)
                vb[0] = '\0';
            if (strcmp(va, vb))
                return true;
        }
        p = end ? end + 1 : p + len;
    }
    return false;
}

/* --resume continues a run with the network, data split and optimizer
 * options it was saved with (a checkpoint keeps them all): @p desc is the
 * description this run would save. One that differs is named. */
static int same_options(const char *path, const char *desc, const nb_optim_opts *now)
{
    static char meta[NB_META_MAX + 1];
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_error err;
    nb_optim_opts was;
    if (nb_safetensors_list(path, NULL, NULL, &fo, &err) != NB_OK ||
        nb_optim_opts_from_meta(meta, &was, &err) != NB_OK)
        return cli_error("train", "--resume %s: %s", CLI_Q(path), err.msg);
    char key[128], saved[256], given[256];
    if (first_difference(meta, desc, key, sizeof key, saved, given, sizeof saved) ||
        first_difference(desc, meta, key, sizeof key, given, saved, sizeof saved))
        return cli_error("train",
                         "--resume %s: the run was saved with %s=%s, this one has %s=%s (resume "
                         "with the options of the saved run)",
                         CLI_Q(path), key, saved[0] ? saved : "(none)", key,
                         given[0] ? given : "(none)");
    static const char *const scheds[] = {"constant", "step", "cosine"};
    if (was.kind != now->kind || was.schedule.kind != now->schedule.kind)
        return cli_error("train",
                         "--resume %s: the run was saved with --opt %s --schedule %s, this one "
                         "has --opt %s --schedule %s (resume with the options of the saved run)",
                         CLI_Q(path), nb_optim_kind_name(was.kind), scheds[was.schedule.kind],
                         nb_optim_kind_name(now->kind), scheds[now->schedule.kind]);
    bool mom = now->kind == NB_OPTIM_MOMENTUM || now->kind == NB_OPTIM_NESTEROV ||
               now->kind == NB_OPTIM_RMSPROP;
    bool adam = now->kind == NB_OPTIM_ADAM || now->kind == NB_OPTIM_ADAMW;
    bool rms = now->kind == NB_OPTIM_RMSPROP, ada = now->kind == NB_OPTIM_ADAGRAD;
    bool step = now->schedule.kind == NB_SCHED_STEP, cosine = now->schedule.kind == NB_SCHED_COSINE;
    const struct {
        bool applies;
        const char *what;
        double saved, given;
    } f[] = {
        {true, "--lr", was.lr, now->lr},
        {true, "--weight-decay", was.weight_decay, now->weight_decay},
        {step, "--epochs (the step schedule's step size)", (double)was.schedule.step_size,
         (double)now->schedule.step_size},
        {step, "the step schedule's gamma", was.schedule.gamma, now->schedule.gamma},
        {cosine, "--epochs (the cosine schedule's period)", (double)was.schedule.period,
         (double)now->schedule.period},
        {cosine, "the cosine schedule's floor", was.schedule.min_lr, now->schedule.min_lr},
        {!!now->schedule.kind, "the schedule's unit (epochs)", was.schedule.per_epoch,
         now->schedule.per_epoch},
        {mom, "the momentum", was.momentum, now->momentum},
        {adam, "beta1", was.beta1, now->beta1},
        {adam, "beta2", was.beta2, now->beta2},
        {adam || rms || ada, "eps", was.eps, now->eps},
        {rms, "alpha", was.alpha, now->alpha},
        {rms, "centered", was.centered, now->centered},
        {ada, "lr_decay", was.lr_decay, now->lr_decay},
        {ada, "initial_accumulator_value", was.initial_accumulator_value,
         now->initial_accumulator_value},
        {true, "the clipping norm", was.clip_norm, now->clip_norm},
    };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        if (f[i].applies && f[i].saved != f[i].given)
            return cli_error("train",
                             "--resume %s: the run was saved with %s %.17g, this one has %.17g "
                             "(resume with the options of the saved run)",
                             CLI_Q(path), f[i].what, f[i].saved, f[i].given);
    return 0;
}

/* The epochs done by the run saved in @p path: its optimizer's step count
 * over the batches of an epoch, a whole number below --epochs that the
 * schedule's position (one per epoch) confirms. Returns 0, or 2 after an
 * error. */
static int resumed_epochs(const char *path, const nb_optim *opt, int64_t per_epoch, long epochs,
                          int *base)
{
    int64_t steps = nb_optim_steps(opt), pos = nb_optim_sched_pos(opt);
    if (steps < 0 || per_epoch < 1 || steps % per_epoch != 0)
        return cli_error("train",
                         "--resume %s: %lld optimizer steps are not a whole number of epochs of "
                         "%lld batches (saved with other --data or --batch?)",
                         CLI_Q(path), (long long)steps, (long long)per_epoch);
    int64_t done = steps / per_epoch;
    if (done >= epochs)
        return cli_error("train", "--resume %s: the file already holds %lld epochs (--epochs %ld)",
                         CLI_Q(path), (long long)done, epochs);
    if (pos != done)
        return cli_error("train",
                         "--resume %s: %lld epochs of optimizer steps, but the schedule is at "
                         "position %lld (one per epoch)",
                         CLI_Q(path), (long long)done, (long long)pos);
    *base = (int)done;
    return 0;
}

/* The hidden sizes of --layers: whole numbers from 1 to 100000 separated
 * by commas, at most cap of them, nothing else (no empty element, sign or
 * space). Returns 0, or 2 after an error quoting the element at fault. */
static int parse_sizes(const char *list, int64_t *sizes, int cap, int *n)
{
    *n = 0;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ","), i = 0;
        int64_t v = 0;
        for (; i < len && p[i] >= '0' && p[i] <= '9' && v <= 100000; i++)
            v = 10 * v + (p[i] - '0');
        if (len == 0)
            return cli_error("train", "--layers: size %d of '%s' is empty (a list like 128,64)",
                             *n + 1, CLI_Q(list));
        if (i < len || v < 1 || v > 100000)
            return cli_error("train",
                             "--layers: '%s' is not a size (a whole number from 1 to 100000)",
                             CLI_QN(p, len));
        if (*n >= cap)
            return cli_error("train", "--layers: more than %d sizes", cap);
        sizes[(*n)++] = v;
        p += len;
        if (!*p)
            return 0;
    }
}

/* A recurrent network over each sample of @p d read as steps: reshape
 * [N, F] to [N, T, F/T] (images: their rows; otherwise @p steps, default
 * F steps of 1), a recurrent layer of @p hidden units, its last state
 * into a linear layer of @p n_out. Returns 0, or 2 after an error. */
static int recurrent_net(nb_model *m, const cli_data *d, nb_rnn_kind kind, long steps,
                         long hidden, int64_t n_out, nb_rng *rng, nb_layer **out)
{
    int64_t f = nb_dataset_features(d->train), ch = 0, h = 0, w = 0;
    nb_dataset_image_shape(d->train, &ch, &h, &w);
    int64_t t = steps ? steps : h > 0 ? h : f;
    if (h > 0 && steps && steps != h)
        return cli_error("train", "--steps %ld: the images of %s are read row by row (%lld steps)",
                         steps, CLI_Q(d->name), (long long)h);
    if (f % t != 0)
        return cli_error("train", "--steps %lld does not divide the %lld values of a sample",
                         (long long)t, (long long)f);
    nb_rnn_opts ro = nb_rnn_defaults();
    ro.layer.rng = rng;
    nb_layer_opts lo = {.rng = rng};
    nb_layer *l = NULL;
    if (!m || nb_sequential_new("", out) != NB_OK ||
        nb_reshape_layer_new("rows", 2, (const int64_t[]){t, f / t}, &l) != NB_OK ||
        nb_sequential_add(*out, l) != NB_OK ||
        nb_rnn_new(m, nb_rnn_kind_name(kind), kind, f / t, hidden, &ro, &l) != NB_OK ||
        nb_sequential_add(*out, l) != NB_OK ||
        nb_linear_new(m, "out", hidden, n_out, &lo, &l) != NB_OK ||
        nb_sequential_add(*out, l) != NB_OK)
        return cli_error("train", "cannot build the network");
    return 0;
}

/* Data parallelism: every rank says whether its setup went well (@p ok).
 * True when all did; otherwise false, and the lowest rank that failed has
 * said why (rank 0 prints its errors at once, the others hold theirs). */
static bool dist_ready(nb_dist *d, bool ok)
{
    int first = -1;
    if (nb_dist_vote(d, ok, &first) != NB_OK) {
        cli_error("train", "%s", nb_dist_error(d)->msg);
        first = nb_dist_rank(d);
    }
    if (first < 0)
        return true;
    if (first > 0 && first == nb_dist_rank(d)) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rank %d: ", first);
        cli_release_error(prefix);
    }
    return false;
}

/* The end of a rank's part in a data-parallel run with exit code @p rc: a
 * rank other than 0 says what rank 0 cannot (a collective failed because
 * a rank died or hangs; its own memory ran out: @p own); after a failed
 * collective the whole run is ended at once (MPI_Abort: finalising would
 * wait for the lost rank). */
static int dist_end(nb_dist *d, int rc, nb_status own)
{
    bool broken = !nb_dist_ok(d);
    int rank = nb_dist_rank(d);
    if (rank > 0 && (broken || own == NB_ERR_NOMEM)) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "rank %d: ", rank);
        cli_release_error(prefix);
    }
    fflush(stdout);
    fflush(stderr);
    if (broken)
        nb_dist_abort(d, rc ? rc : 1);
    nb_dist_free(d);
    return rc;
}

/* The seed of a rank's own rng (dropout masks, RReLU slopes) in a
 * data-parallel run from --seed, the rank and the epochs already done. */
static uint64_t rank_seed(long seed, int rank, int base)
{
    return (uint64_t)seed * 0x9E3779B97F4A7C15ull + ((uint64_t)(rank + 1) << 20) + (uint64_t)base;
}

int cmd_train(int argc, char **argv)
{
    static const char default_layers[] = "128,64", default_act[] = "relu";
    /* under mpirun: rank 0 speaks for the run, the others print nothing
     * (their errors are held: most are rank 0's too) */
    int rank = 0, ranks = nb_dist_env(&rank);
    if (ranks > 1 && rank > 0) {
        if (!freopen("/dev/null", "w", stdout))
            fclose(stdout);
        cli_hold_errors(true);
    }
    const char *data = "digits", *layers = default_layers, *act_name = default_act,
               *opt_name = "sgd", *sched_name = "constant", *save = NULL, *resume = NULL,
               *load = NULL, *plot = NULL, *target = NULL, *loss_name = NULL, *model = "mlp";
    double lr = -1, dropout = 0, wd = 0, l2 = 0, huber_delta = 0, dist_timeout = 60;
    long epochs = 30, batch = 32, early = 0, seed = 1, threads = 1, pieces = 0, hidden = 0,
         steps = 0;
    bool batchnorm = false, json = false, norms = false;
    const cli_opt opts[] = {
        {"--data", CLI_STR, &data, 0, 0},
        {"--target", CLI_STR, &target, 0, 0},
        {"--loss", CLI_STR, &loss_name, 0, 0},
        {"--huber-delta", CLI_REAL, &huber_delta, 1e-12, 1e12},
        {"--model", CLI_STR, &model, 0, 0},
        {"--hidden", CLI_INT, &hidden, 1, 100000},
        {"--steps", CLI_INT, &steps, 1, 1000000},
        {"--layers", CLI_STR, &layers, 0, 0},
        {"--act", CLI_STR, &act_name, 0, 0},
        {"--pieces", CLI_INT, &pieces, 2, 64},
        {"--opt", CLI_STR, &opt_name, 0, 0},
        {"--lr", CLI_REAL, &lr, 0, 100},
        {"--schedule", CLI_STR, &sched_name, 0, 0},
        {"--epochs", CLI_INT, &epochs, 1, 100000},
        {"--batch", CLI_INT, &batch, 1, 1000000},
        {"--dropout", CLI_REAL, &dropout, 0, 0.99},
        {"--batchnorm", CLI_FLAG, &batchnorm, 0, 0},
        {"--weight-decay", CLI_REAL, &wd, 0, 10},
        {"--l2", CLI_REAL, &l2, 0, 10},
        {"--early-stop", CLI_INT, &early, 0, 100000},
        {"--seed", CLI_INT, &seed, 0, 2147483647},
        {"--threads", CLI_INT, &threads, 1, 256},
        {"--save", CLI_STR, &save, 0, 0},
        {"--resume", CLI_STR, &resume, 0, 0},
        {"--load", CLI_STR, &load, 0, 0},
        {"--plot", CLI_STR, &plot, 0, 0},
        {"--json", CLI_FLAG, &json, 0, 0},
        {"--grad-norms", CLI_FLAG, &norms, 0, 0},
        {"--dist-timeout", CLI_REAL, &dist_timeout, 0, 1e6},
    };
    char train_usage[8192];
    snprintf(train_usage, sizeof train_usage, "%s%s", train_usage_start, train_usage_more);
    int rc = cli_parse("train", train_usage, argc, argv, 2, opts, (int)(sizeof opts / sizeof *opts),
                       NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;

    /* options that need no data to be checked */
    static const char *const models[] = {"mlp", "rnn", "gru", "lstm"};
    int model_k = -1;
    for (int k = 0; k < 4; k++)
        if (!strcmp(model, models[k]))
            model_k = k;
    if (model_k < 0)
        return cli_error("train", "--model: unknown model '%s' (mlp, rnn, gru, lstm)",
                         CLI_Q(model));
    bool recurrent = model_k > 0;
    if (!recurrent && (hidden || steps))
        return cli_error("train", "--%s applies to --model rnn, gru or lstm",
                         hidden ? "hidden" : "steps");
    if (recurrent && (layers != default_layers || act_name != default_act || pieces ||
                      batchnorm || dropout > 0))
        return cli_error("train", "--%s applies to --model mlp",
                         layers != default_layers ? "layers"
                         : act_name != default_act ? "act"
                         : pieces                  ? "pieces"
                         : batchnorm               ? "batchnorm"
                                                   : "dropout");
    if (!hidden)
        hidden = 128;
    int64_t sizes[18];
    int n_hidden = 0;
    bool cnn = cli_cnn_listed(layers); /* elements checked when the images are known */
    if (!cnn && parse_sizes(layers, sizes + 1, 16, &n_hidden) != 0)
        return 2;
    nb_act act;
    if (nb_act_from_name(act_name, &act) != NB_OK)
        return cli_error("train", "--act: unknown activation '%s' (one of %s)", CLI_Q(act_name),
                         nb_act_names());
    if (pieces && act != NB_ACT_MAXOUT)
        return cli_error("train", "--pieces applies to --act maxout only");
    if (cnn && (nb_act_has_param(act) || act == NB_ACT_MAXOUT))
        return cli_error("train",
                         "--act %s works on the last axis of its input; the feature maps of a "
                         "convolutional network take an activation of each value alone",
                         nb_act_name(act));
    if (cnn && batchnorm)
        return cli_error("train", "--batchnorm normalises features of rows; a convolutional "
                                  "--layers list has no batch normalisation of its maps");
    nb_act_opts ao = nb_act_defaults(act);
    if (pieces)
        ao.pieces = pieces;
    nb_optim_kind kind;
    if (nb_optim_kind_from_name(opt_name, &kind) != NB_OK)
        return cli_error("train", "--opt: unknown optimizer '%s' (%s)", CLI_Q(opt_name),
                         nb_optim_kind_names());
    nb_sched_kind sched = !strcmp(sched_name, "constant") ? NB_SCHED_CONSTANT
                          : !strcmp(sched_name, "step")   ? NB_SCHED_STEP
                          : !strcmp(sched_name, "cosine") ? NB_SCHED_COSINE
                                                          : (nb_sched_kind)-1;
    if ((int)sched < 0)
        return cli_error("train", "--schedule: unknown schedule '%s' (constant, step, cosine)",
                         CLI_Q(sched_name));
    if (resume && load)
        return cli_error("train", "--resume and --load exclude each other");
    nb_loss_kind loss_kind = target ? NB_LOSS_MSE : NB_LOSS_CROSS_ENTROPY;
    if (loss_name &&
        (nb_loss_kind_from_name(loss_name, &loss_kind) != NB_OK || loss_kind == NB_LOSS_DEFAULT))
        return cli_error("train", "--loss: unknown loss '%s' (cross-entropy, mse, l1, huber)",
                         CLI_Q(loss_name));
    if (!target && loss_kind != NB_LOSS_CROSS_ENTROPY)
        return cli_error("train",
                         "--loss %s is a regression loss: it needs float targets, --target COL "
                         "of a .csv file (--data %s has class labels)",
                         loss_name, CLI_Q(data));
    if (target && loss_kind == NB_LOSS_CROSS_ENTROPY)
        return cli_error("train",
                         "--loss cross-entropy needs class labels; --target %s makes a "
                         "regression (--loss mse, l1 or huber)",
                         CLI_Q(target));
    if (huber_delta > 0 && loss_kind != NB_LOSS_HUBER)
        return cli_error("train", "--huber-delta applies to --loss huber only");
    if (huber_delta == 0)
        huber_delta = 1;
    /* data parallelism: the processes mpirun started join one run */
    nb_dist *dist = NULL;
    if (ranks > 1 && !nb_dist_available())
        return cli_error("train",
                         "started by mpirun as %d processes, but this nabla was built without MPI: "
                         "each would train alone and write the same files (build with meson "
                         "setup -Dmpi=enabled)",
                         ranks);
    if (ranks > 1) {
        nb_dist_opts dopt = nb_dist_defaults();
        dopt.timeout = dist_timeout;
        nb_error derr;
        if (nb_dist_init(&dopt, &dist, &derr) != NB_OK) {
            cli_error("train", "cannot join the run of %d processes: %s", ranks, derr.msg);
            char prefix[32];
            snprintf(prefix, sizeof prefix, "rank %d: ", rank);
            cli_release_error(prefix);
            return 1;
        }
        rank = nb_dist_rank(dist);
        ranks = nb_dist_size(dist);
    }
    /* the files written after the run (by rank 0): refused now, not after it */
    const char *outputs[2][2] = {{"--save", save}, {"--plot", plot}};
    for (int i = 0; i < 2 && rank == 0 && rc == 0; i++) {
        char why[512];
        if (outputs[i][1] && nbio_out_check(outputs[i][1], why, sizeof why) != NB_OK)
            rc = cli_error("train", "%s: %s", outputs[i][0], why);
    }
    if (dist && !dist_ready(dist, rc == 0))
        rc = rc ? rc : 1;
    if (rc != 0) {
        nb_dist_free(dist);
        return rc;
    }

    cli_set_blas_threads((int)threads);
    cli_data d;
    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    rc = target ? cli_data_open_target("train", data, target, early > 0, &rng, NULL, &d)
                : cli_data_open("train", data, early > 0, &rng, &d);
    if (rc != 0) {
        cli_data_close(&d);
        if (dist)
            dist_ready(dist, false);
        nb_dist_free(dist);
        return rc;
    }

    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_optim *opt = NULL;
    nb_loader *loader = NULL;
    nb_trainer *t = NULL;
    train_run run = {0};
    bool voted = false;       /* data parallelism: the ranks agreed the setup went well */
    nb_status fit_st = NB_OK; /* how training (and the last evaluation) ended */
    /* the order of the batches: the rng of the split and the initial
     * weights, the same on every rank; under mpirun a copy of it, and each
     * rank's layers (dropout) draw from their own */
    nb_rng shuffle, *order = &rng;
    char meta[4096] = "";
    rc = 1;
    sizes[0] = nb_dataset_features(d.train);
    sizes[n_hidden + 1] = target ? d.n_targets : nb_dataset_classes(d.train);
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    mo.act = act;
    mo.act_opts = &ao;
    mo.batch_norm = batchnorm;
    mo.dropout = dropout;
    if (recurrent) {
        rc = recurrent_net(m, &d, (nb_rnn_kind)(model_k - 1), steps, hidden,
                           sizes[n_hidden + 1], &rng, &net);
        if (rc != 0)
            goto done;
        rc = 1;
    } else if (cnn) {
        int64_t ch = 0, h = 0, w = 0;
        nb_dataset_image_shape(d.train, &ch, &h, &w);
        rc = !m ? cli_error("train", "out of memory")
                : cli_cnn_build(layers, ch, h, w, act, &ao, dropout, sizes[n_hidden + 1], m, &rng,
                                &net);
        if (rc != 0)
            goto done;
        rc = 1;
    } else if (!m || nb_mlp_new(m, NULL, sizes, n_hidden + 2, &mo, &net) != NB_OK) {
        cli_error("train", "cannot build the network");
        goto done;
    }
    if (dist) { /* the initial weights are drawn: the batches' order from here on */
        shuffle = rng;
        order = &shuffle;
    }
    /* the network's description, the standardisation of the inputs (which
     * travels with the model) and the seed the data was split with (nabla
     * eval splits the same way) */
    nb_error derr;
    nb_status ds = nb_layer_describe(net, meta, sizeof meta, &derr);
    if (ds == NB_OK && d.mean)
        ds = nb_meta_put(meta, sizeof meta, "input_norm", "standardize");
    if (ds == NB_OK)
        ds = nb_meta_put(meta, sizeof meta, "seed", "%ld", seed);
    /* a regression model says so, with its targets and loss (nabla eval
     * loads the same columns) */
    if (ds == NB_OK && target)
        ds = nb_meta_put(meta, sizeof meta, "task", "regression");
    if (ds == NB_OK && target)
        ds = nb_meta_put(meta, sizeof meta, "target", "%s", target);
    if (ds == NB_OK && target)
        ds = nb_meta_put(meta, sizeof meta, "targets", "%lld", (long long)d.n_targets);
    if (ds == NB_OK && target)
        ds = nb_meta_put(meta, sizeof meta, "loss", "%s", nb_loss_kind_name(loss_kind));
    if (ds == NB_OK && loss_kind == NB_LOSS_HUBER)
        ds = nb_meta_put(meta, sizeof meta, "huber_delta", "%.17g", huber_delta);
    if (ds != NB_OK) {
        cli_error("train", "cannot describe the network: %s",
                  derr.status ? derr.msg : nb_status_str(ds));
        goto done;
    }
    nb_optim_opts oo = nb_optim_defaults((nb_optim_kind)kind);
    oo.lr = lr >= 0 ? lr : kind == NB_OPTIM_ADAGRAD ? 0.01 : kind >= NB_OPTIM_ADAM ? 1e-3 : 0.05;
    oo.weight_decay = wd;
    oo.schedule.kind = sched;
    oo.schedule.per_epoch = true;
    oo.schedule.step_size = epochs / 3 > 0 ? epochs / 3 : 1;
    oo.schedule.gamma = 0.1;
    oo.schedule.period = epochs;
    char why[256];
    if (nb_optim_opts_check(&oo, why, sizeof why) != NB_OK) {
        cli_error("train", "%s", why);
        rc = 2;
        goto done;
    }
    opt = nb_optim_new(&oo);
    if (!opt || nb_loader_new(d.train, batch, true, false, &loader) != NB_OK ||
        (dist && nb_loader_set_shard(loader, rank, ranks) != NB_OK)) {
        cli_error("train", "out of memory");
        goto done;
    }
    const char *from = resume ? resume : load;
    bool from_norm = false; /* the file holds a standardisation (its own run's) */
    nb_error err;
    if (from && cli_file_has_norm(from, &from_norm, &err) != 0) {
        cli_error("train", "cannot load %s: %s", CLI_Q(from), err.msg);
        rc = 2;
        goto done;
    }
    if (from_norm && !d.mean) {
        cli_error("train",
                  "%s was trained on standardised CSV features; --data %s is not a CSV file",
                  CLI_Q(from), CLI_Q(data));
        rc = 2;
        goto done;
    }
    /* the file's statistics are loaded, then replaced by this run's (its
     * data was standardised with them) */
    if (from_norm && cli_model_add_norm(m, "", sizes[0], NULL, NULL) != NB_OK) {
        cli_error("train", "out of memory");
        goto done;
    }
    if (resume && same_options(resume, meta, &oo) != 0) {
        rc = 2;
        goto done;
    }
    if (from) {
        nb_ckpt_opts co = {0};
        co.rng = resume ? order : NULL;
        nb_status ls = resume || !cli_is_safetensors(from)
                           ? nb_model_load(m, resume ? opt : NULL, from, &co, &err)
                           : nb_model_load_safetensors(m, from, NULL, &err);
        if (ls != NB_OK) {
            cli_error("train", "cannot load %s: %s", CLI_Q(from), err.msg);
            rc = 2;
            goto done;
        }
    }
    if (d.mean && cli_model_add_norm(m, "", sizes[0], d.mean, d.std) != NB_OK) {
        cli_error("train", "out of memory");
        goto done;
    }
    int64_t per_epoch = nb_loader_batches(loader);
    int base = 0;
    if (resume && resumed_epochs(resume, opt, per_epoch, epochs, &base) != 0) {
        rc = 2;
        goto done;
    }
    if (dist) /* masks of its own, new ones after a resumption */
        nb_rng_seed(&rng, rank_seed(seed, rank, base));
    run = (train_run){.json = json,
                      .norms = norms,
                      .regression = target != NULL,
                      .tty = isatty(fileno(stderr)) && !json && rank == 0,
                      .quiet = rank > 0,
                      .save = save,
                      .m = m,
                      .opt = opt,
                      .rng = order,
                      .meta = meta,
                      .epochs = (int)epochs - base,
                      .done = base,
                      .curve = calloc(5 * (size_t)(epochs - base), sizeof(double))};
    nb_train_opts to = nb_train_defaults();
    to.epochs = (int)epochs; /* the total: a resumed run trains the rest */
    to.rng = order;
    to.threads = (int)threads;
    nb_train_comm comm;
    if (dist && nb_dist_train_comm(dist, &comm) == NB_OK)
        to.comm = &comm;
    to.val = d.val;
    to.test = d.test;
    to.l2 = l2;
    to.loss_kind = loss_kind;
    to.huber_delta = huber_delta;
    to.patience = (int)early;
    if (target)
        to.monitor = NB_MONITOR_VAL_LOSS; /* targets have no accuracy */
    to.on_epoch = on_epoch;
    to.on_batch = on_batch;
    to.cb_ud = &run;
    if (!run.curve) {
        cli_error("train", "out of memory");
        goto done;
    }
    nb_error opts_err;
    if (nb_train_opts_check(&to, &opts_err) != NB_OK) {
        cli_error("train", "%s", opts_err.msg);
        rc = 2;
        goto done;
    }
    if (nb_trainer_new(m, net, opt, &to, &t) != NB_OK) {
        cli_error("train", "cannot set up training (out of memory?)");
        goto done;
    }
    if (nb_trainer_set_epoch(t, base) != NB_OK) {
        cli_error("train", "%s", nb_trainer_error(t)->msg);
        goto done;
    }
    voted = true;
    if (dist && !dist_ready(dist, true))
        goto done;
    char arch[256];
    int len = 0;
    if (recurrent) { /* "lstm (28 steps of 28, 128 units) -> 10" */
        nb_layer_info rows;
        nb_layer_get_info(nb_layer_at(net, 0), &rows);
        snprintf(arch, sizeof arch, "%s %s (%lld steps of %lld, %ld units) -> %lld",
                 model_k == 2 ? "a" : "an", model,
                 (long long)(rows.n_in / rows.n_out), (long long)rows.n_out, hidden,
                 (long long)sizes[n_hidden + 1]);
    } else if (cnn) { /* "a 1x8x8 conv8k3p1,pool2,fc16 -> 10 relu convolutional" */
        int64_t ch = 0, h = 0, w = 0;
        nb_dataset_image_shape(d.train, &ch, &h, &w);
        snprintf(arch, sizeof arch, "a %lldx%lldx%lld %.120s -> %lld %s convolutional",
                 (long long)ch, (long long)h, (long long)w, layers,
                 (long long)sizes[n_hidden + 1], nb_act_name(act));
    } else {
        len = snprintf(arch, sizeof arch, "a ");
        for (int i = 0; i < n_hidden + 2; i++)
            len += snprintf(arch + len, sizeof arch - (size_t)len, "%s%lld", i ? "-" : "",
                            (long long)sizes[i]);
        snprintf(arch + len, sizeof arch - (size_t)len, " %s%s", nb_act_name(act),
                 batchnorm ? " batchnorm" : "");
    }
    if (!json)
        printf("training %s network on %s: %lld train, %lld validation, %lld test samples; "
               "%s, lr %g, batch %ld%s\n",
               arch, d.name, (long long)nb_dataset_count(d.train),
               (long long)(d.val ? nb_dataset_count(d.val) : 0),
               (long long)(d.test ? nb_dataset_count(d.test) : 0), opt_name, oo.lr, batch,
               dist ? " shared by the ranks" : "");
    if (!json && dist)
        printf("data-parallel over %d ranks (MPI): each takes its share of every batch\n", ranks);
    double t0 = cli_now();
    nb_status st = fit_st = nb_trainer_fit(t, loader);
    clear_bar(&run);
    if (st != NB_OK && !run.failed) {
        cli_error("train", "%s", nb_trainer_error(t)->msg);
        goto done;
    }
    if (run.failed)
        goto done;
    double acc = NAN, loss = NAN, rmse = NAN, mae = NAN;
    nb_status es = NB_OK;
    if (d.test)
        es = target ? nb_trainer_evaluate_regression(t, d.test, &rmse, &mae, &loss)
                    : nb_trainer_evaluate(t, d.test, &acc, &loss);
    if (es != NB_OK) {
        cli_error("train", "test set: %s", nb_trainer_error(t)->msg);
        fit_st = es;
        goto done;
    }
    if (!json) {
        printf("%d epochs in %.1f s", run.done - base, cli_now() - t0);
        if (nb_trainer_stopped_early(t))
            printf(" (stopped early; parameters of epoch %d kept)", nb_trainer_best_epoch(t));
        if (d.test && target)
            printf("; test RMSE %.4f, MAE %.4f, test loss %.4f", rmse, mae, loss);
        else if (d.test)
            printf("; test accuracy %.2f%%, test loss %.4f", 100 * acc, loss);
        printf("\n");
    }
    if (save && !run.quiet && nb_trainer_stopped_early(t)) { /* the kept parameters */
        if (save_model(&run, &err) != NB_OK) {
            cli_error("train", "cannot save %s: %s", CLI_Q(save), err.msg);
            goto done;
        }
    }
    if (plot && !run.quiet) {
        int n = run.n_curve; /* the epochs of this run */
        double *c = run.curve;
        const char *what = target ? "RMSE" : "accuracy";
        char names[3][32];
        for (int i = 0; i < 3; i++)
            snprintf(names[i], sizeof names[i], "%s %s",
                     (const char *[]){"train", "validation", "test"}[i], what);
        svg_series s[4] = {{"training loss", n, c, c + run.epochs, false},
                           {names[0], n, c, c + 2 * run.epochs, true},
                           {names[1], n, c, c + 3 * run.epochs, true},
                           {names[2], n, c, c + 4 * run.epochs, true}};
        if (svg_chart_file(plot, "nabla train", "epoch", target ? "loss / RMSE" : "loss / accuracy",
                           s, 4, why, sizeof why) != 0) {
            cli_error("train", "%s", why);
            rc = 2;
            goto done;
        }
    }
    rc = 0;
done:
    if (dist && !voted && !dist_ready(dist, false))
        rc = rc ? rc : 1;
    free(run.curve);
    nb_trainer_free(t);
    nb_loader_free(loader);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    cli_data_close(&d);
    return dist ? dist_end(dist, rc, fit_st) : rc;
}
