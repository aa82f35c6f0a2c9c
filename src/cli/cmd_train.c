/* nabla train: an MLP on a data set from the command line, with the
 * training helper; progress bar, JSON lines, plots and checkpoints. */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "data_sets.h"
#include "model_file.h"
#include "svg.h"

static const char *train_usage =
    "usage: nabla train [options]\n"
    "\n"
    "Trains a multilayer perceptron (softmax cross-entropy) and reports loss and\n"
    "accuracy every epoch.\n"
    "\n"
    "  --data SET          digits (built in, default), fashion-mnist (Debian's\n"
    "                      dataset-fashion-mnist), or a path: a .csv file (label in\n"
    "                      the last column) or an IDX images file (the labels file\n"
    "                      is found by replacing 'images-idx3' with 'labels-idx1')\n"
    "  --layers LIST       hidden layer sizes (default 128,64)\n"
    "  --act NAME          hidden activation (default relu)\n"
    "  --opt NAME          sgd, momentum, nesterov, adam, adamw (default sgd)\n"
    "  --lr X              learning rate (default 0.05 for sgd/momentum/nesterov,\n"
    "                      0.001 for adam/adamw)\n"
    "  --schedule NAME     constant, step (x0.1 every third of the epochs) or cosine\n"
    "  --epochs N          epochs (default 30)\n"
    "  --batch N           mini-batch size (default 32)\n"
    "  --dropout P         dropout after each hidden activation (default 0)\n"
    "  --batchnorm         batch normalisation after each hidden layer\n"
    "  --weight-decay X    weight decay (decoupled for adamw)\n"
    "  --l2 X              L2 penalty 0.5*X*sum ||W||^2 over the weights\n"
    "  --early-stop N      stop after N epochs without a better validation\n"
    "                      accuracy (a tenth of the training set is held out)\n"
    "                      and keep the best epoch's parameters\n"
    "  --seed N            random seed (default 1)\n"
    "  --threads N         threads (default 1; results depend on seed and threads)\n"
    "  --save FILE         checkpoint after every epoch (model, optimizer, RNG);\n"
    "                      FILE.safetensors: the weights and metadata only\n"
    "  --resume FILE       continue a run saved with --save (same options)\n"
    "  --load FILE         start from the parameters of a checkpoint or a\n"
    "                      .safetensors file\n"
    "  --plot FILE.svg     loss and accuracy curves\n"
    "  --json              one JSON object per epoch instead of the table\n"
    "  --grad-norms        per-layer gradient norms each epoch, input layer first\n"
    "                      (shows vanishing gradients in deep sigmoid networks)\n";

typedef struct train_run {
    bool json, tty, norms;
    const char *save;
    nb_model *m;
    nb_optim *opt;
    nb_rng *rng;
    const char *meta;
    int epochs;
    int done;      /* epochs finished, counting a resumed run's earlier ones */
    double *curve; /* epoch, loss, train_acc, val_acc, test_acc per epoch */
    int failed;
} train_run;

/* A checkpoint (model, optimizer, RNG), or weights and metadata only for a
 * .safetensors path. */
static nb_status save_model(const train_run *r, nb_ckpt_error *err)
{
    nb_ckpt_opts co = {0};
    co.meta = r->meta;
    size_t n = strlen(r->save);
    if (n > 12 && !strcmp(r->save + n - 12, ".safetensors"))
        return nb_model_save_safetensors(r->m, r->save, &co, err);
    co.rng = r->rng;
    return nb_model_save(r->m, r->opt, r->save, &co, err);
}

static void on_batch(void *ud, int epoch, int64_t batch, int64_t n_batches, double loss)
{
    const train_run *r = ud;
    if (!r->tty || r->json)
        return;
    int width = 30, done = (int)((batch + 1) * width / n_batches);
    fprintf(stderr, "\r  epoch %3d [%.*s%*s] loss %.4f", epoch, done,
            "##############################", width - done, "", loss);
    if (batch + 1 == n_batches)
        fprintf(stderr, "\r%70s\r", "");
}

static bool on_epoch(void *ud, const nb_epoch_report *e)
{
    train_run *r = ud;
    r->done = e->epoch; /* counts from the start of the run, resumed ones included */
    int k = r->done - 1;
    if (k < r->epochs) {
        double *c = r->curve;
        c[k] = r->done;
        c[r->epochs + k] = e->loss;
        c[2 * r->epochs + k] = e->train_acc;
        c[3 * r->epochs + k] = e->val_acc;
        c[4 * r->epochs + k] = e->test_acc;
    }
    if (r->json) {
        printf("{\"epoch\": %d, \"loss\": ", r->done);
        cli_json_num(stdout, e->loss);
        cli_json_num_field("train_acc", e->train_acc);
        cli_json_num_field("val_acc", e->val_acc);
        cli_json_num_field("test_acc", e->test_acc);
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
    } else {
        printf("  epoch %3d  loss %.4f  train %5.1f%%", r->done, e->loss, 100 * e->train_acc);
        if (!isnan(e->val_acc))
            printf("  val %5.1f%%", 100 * e->val_acc);
        if (!isnan(e->test_acc))
            printf("  test %5.1f%%", 100 * e->test_acc);
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
    if (r->save) {
        nb_ckpt_error err;
        if (save_model(r, &err) != NB_OK) {
            cli_error("train", "cannot save %s: %s", r->save, err.msg);
            r->failed = 1;
            return false;
        }
    }
    return true;
}

static int parse_sizes(const char *list, int64_t *sizes, int cap, int *n)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (end == tok || *end || v < 1 || v > 100000 || *n >= cap)
            return -1;
        sizes[(*n)++] = v;
    }
    return *n > 0 ? 0 : -1;
}

int cmd_train(int argc, char **argv)
{
    const char *data = "digits", *layers = "128,64", *act_name = "relu", *opt_name = "sgd",
               *sched_name = "constant", *save = NULL, *resume = NULL, *load = NULL, *plot = NULL;
    double lr = -1, dropout = 0, wd = 0, l2 = 0;
    long epochs = 30, batch = 32, early = 0, seed = 1, threads = 1;
    bool batchnorm = false, json = false, norms = false;
    const cli_opt opts[] = {
        {"--data", CLI_STR, &data, 0, 0},
        {"--layers", CLI_STR, &layers, 0, 0},
        {"--act", CLI_STR, &act_name, 0, 0},
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
    };
    int rc = cli_parse("train", train_usage, argc, argv, 2, opts, (int)(sizeof opts / sizeof *opts),
                       NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;

    /* options that need no data to be checked */
    int64_t sizes[18];
    int n_hidden;
    if (parse_sizes(layers, sizes + 1, 16, &n_hidden) != 0)
        return cli_error("train", "--layers: expected up to 16 sizes like 128,64, not '%s'",
                         layers);
    nb_act act;
    if (nb_act_from_name(act_name, &act) != NB_OK || act == NB_ACT_MAXOUT)
        return cli_error("train",
                         "--act: unknown activation '%s' (one of %s; maxout has its own "
                         "layer)",
                         act_name, nb_act_names());
    static const char *opt_names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    int kind = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(opt_name, opt_names[i]))
            kind = i;
    if (kind < 0)
        return cli_error("train",
                         "--opt: unknown optimizer '%s' (sgd, momentum, nesterov, adam, "
                         "adamw)",
                         opt_name);
    nb_sched_kind sched = !strcmp(sched_name, "constant") ? NB_SCHED_CONSTANT
                          : !strcmp(sched_name, "step")   ? NB_SCHED_STEP
                          : !strcmp(sched_name, "cosine") ? NB_SCHED_COSINE
                                                          : (nb_sched_kind)-1;
    if ((int)sched < 0)
        return cli_error("train", "--schedule: unknown schedule '%s' (constant, step, cosine)",
                         sched_name);
    if (resume && load)
        return cli_error("train", "--resume and --load exclude each other");
    if (plot && access(".", F_OK) != 0)
        return cli_error("train", "--plot: the current directory is not accessible");

    cli_set_blas_threads((int)threads);
    cli_data d;
    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    rc = cli_data_open("train", data, early > 0, &rng, &d);
    if (rc != 0)
        return rc;

    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_optim *opt = NULL;
    nb_loader *loader = NULL;
    nb_trainer *t = NULL;
    train_run run = {0};
    char meta[1024] = "";
    rc = 1;
    sizes[0] = nb_dataset_features(d.train);
    sizes[n_hidden + 1] = nb_dataset_classes(d.train);
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    mo.act = act;
    mo.batch_norm = batchnorm;
    mo.dropout = dropout;
    if (!m || nb_mlp_new(m, NULL, sizes, n_hidden + 2, &mo, &net) != NB_OK) {
        cli_error("train", "cannot build the network");
        goto done;
    }
    nb_mlp_meta(sizes, n_hidden + 2, &mo, meta, sizeof meta);
    nb_optim_opts oo = nb_optim_defaults((nb_optim_kind)kind);
    oo.lr = lr >= 0 ? lr : kind >= NB_OPTIM_ADAM ? 1e-3 : 0.05;
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
    if (!opt || nb_loader_new(d.train, batch, true, false, &loader) != NB_OK) {
        cli_error("train", "out of memory");
        goto done;
    }
    const char *from = resume ? resume : load;
    if (from) {
        nb_ckpt_opts co = {0};
        co.rng = resume ? &rng : NULL;
        nb_ckpt_error err;
        nb_status ls = resume || !cli_is_safetensors(from)
                           ? nb_model_load(m, resume ? opt : NULL, from, &co, &err)
                           : nb_model_load_safetensors(m, from, NULL, &err);
        if (ls != NB_OK) {
            cli_error("train", "cannot load %s: %s", from, err.msg);
            rc = 2;
            goto done;
        }
    }
    run = (train_run){.json = json,
                      .norms = norms,
                      .tty = isatty(fileno(stderr)) && !json,
                      .save = save,
                      .m = m,
                      .opt = opt,
                      .rng = &rng,
                      .meta = meta,
                      .epochs = (int)epochs,
                      .curve = calloc(5 * (size_t)epochs, sizeof(double))};
    int64_t per_epoch = nb_loader_batches(loader);
    int base = resume ? (int)(nb_optim_steps(opt) / (per_epoch > 0 ? per_epoch : 1)) : 0;
    run.done = base;
    nb_train_opts to = nb_train_defaults();
    to.epochs = (int)epochs; /* the total: a resumed run trains the rest */
    to.rng = &rng;
    to.threads = (int)threads;
    to.val = d.val;
    to.test = d.test;
    to.l2 = l2;
    to.patience = (int)early;
    to.on_epoch = on_epoch;
    to.on_batch = on_batch;
    to.cb_ud = &run;
    if (!run.curve) {
        cli_error("train", "out of memory");
        goto done;
    }
    if (base >= to.epochs) {
        cli_error("train", "%s already holds %d epochs (--epochs %ld)", resume, base, epochs);
        rc = 2;
        goto done;
    }
    if (nb_train_opts_check(&to, why, sizeof why) != NB_OK) {
        cli_error("train", "%s", why);
        rc = 2;
        goto done;
    }
    if (nb_trainer_new(m, net, opt, &to, &t) != NB_OK) {
        cli_error("train", "cannot set up training (out of memory?)");
        goto done;
    }
    nb_trainer_set_epoch(t, base);
    char arch[256];
    int len = 0;
    for (int i = 0; i < n_hidden + 2; i++)
        len += snprintf(arch + len, sizeof arch - (size_t)len, "%s%lld", i ? "-" : "",
                        (long long)sizes[i]);
    snprintf(arch + len, sizeof arch - (size_t)len, " %s%s", nb_act_name(act),
             batchnorm ? " batchnorm" : "");
    if (!json)
        printf("training a %s network on %s: %lld train, %lld validation, %lld test samples; "
               "%s, lr %g, batch %ld\n",
               arch, d.name, (long long)nb_dataset_count(d.train),
               (long long)(d.val ? nb_dataset_count(d.val) : 0),
               (long long)(d.test ? nb_dataset_count(d.test) : 0), opt_name, oo.lr, batch);
    double t0 = cli_now();
    nb_status st = nb_trainer_fit(t, loader);
    if (st != NB_OK && !run.failed) {
        cli_error("train", "%s", nb_trainer_errmsg(t));
        goto done;
    }
    if (run.failed)
        goto done;
    double acc = NAN, loss = NAN;
    if (d.test)
        nb_trainer_evaluate(t, d.test, &acc, &loss);
    if (!json) {
        printf("%d epochs in %.1f s", run.done - base, cli_now() - t0);
        if (nb_trainer_stopped_early(t))
            printf(" (stopped early; parameters of epoch %d kept)",
                   nb_trainer_best_epoch(t) + base);
        if (d.test)
            printf("; test accuracy %.2f%%, test loss %.4f", 100 * acc, loss);
        printf("\n");
    }
    if (save && nb_trainer_stopped_early(t)) { /* the kept parameters, not the last epoch's */
        nb_ckpt_error err;
        if (save_model(&run, &err) != NB_OK) {
            cli_error("train", "cannot save %s: %s", save, err.msg);
            goto done;
        }
    }
    if (plot) {
        int n = run.done - base; /* the epochs of this run */
        double *c = run.curve + base;
        svg_series s[4] = {{"training loss", n, c, c + run.epochs, false},
                           {"train accuracy", n, c, c + 2 * run.epochs, true},
                           {"validation accuracy", n, c, c + 3 * run.epochs, true},
                           {"test accuracy", n, c, c + 4 * run.epochs, true}};
        if (svg_chart_file(plot, "nabla train", "epoch", "loss / accuracy", s, 4, why,
                           sizeof why) != 0) {
            cli_error("train", "%s", why);
            rc = 2;
            goto done;
        }
    }
    rc = 0;
done:
    free(run.curve);
    nb_trainer_free(t);
    nb_loader_free(loader);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    cli_data_close(&d);
    return rc;
}
