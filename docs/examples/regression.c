/* The regression example of docs/training.md ("Regression"): a network
 * learns y = sin(2·x0) + 0.5·x1² − x2 + noise from 400 samples with the
 * Huber loss, and reports RMSE and MAE on held-out samples against a
 * baseline that always predicts the training mean. The build compiles it
 * and the test suite runs it.
 *
 *   regression                  train and report (exit status 1 unless the
 *                               network beats the baseline threefold)
 *   regression --write-csv F    write the samples as a CSV table x0,x1,x2,y
 *                               (docs/examples/curve.csv is this file)
 *   regression --check-csv F    exit status 1 unless F is that table */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nabla.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        nb_status st_ = (call);                                                                    \
        if (st_ != NB_OK) {                                                                        \
            fprintf(stderr, "%s failed: %s\n", #call, nb_status_str(st_));                         \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

enum { N = 400, F = 3 };

/* The samples, drawn from seed 7: x uniform in [-1, 1]^3, noise N(0, 0.05²). */
static void make_samples(double x[N][F], double y[N])
{
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < F; j++)
            x[i][j] = 2 * nb_rng_uniform(&rng) - 1;
        y[i] = sin(2 * x[i][0]) + 0.5 * x[i][1] * x[i][1] - x[i][2] + 0.05 * nb_rng_normal(&rng);
    }
}

/* The table as text: a header and one row per sample, six decimals. */
static char *csv_text(double x[N][F], double y[N])
{
    size_t cap = 64 + (size_t)N * 64, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    len += (size_t)snprintf(text, cap, "x0,x1,x2,y\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len, "%.6f,%.6f,%.6f,%.6f\n", x[i][0], x[i][1],
                                x[i][2], y[i]);
    return text;
}

/* --write-csv / --check-csv: the shipped table is what this program writes. */
static int csv_mode(const char *mode, const char *path, double x[N][F], double y[N])
{
    char *text = csv_text(x, y);
    FILE *f = fopen(path, strcmp(mode, "--write-csv") ? "rb" : "wb");
    int rc = 1;
    if (text && f && !strcmp(mode, "--write-csv")) {
        rc = fputs(text, f) < 0;
    } else if (text && f) {
        size_t len = strlen(text);
        char *got = malloc(len + 2);
        size_t n = got ? fread(got, 1, len + 1, f) : 0;
        rc = !(got && n == len && !memcmp(got, text, len));
        if (rc)
            fprintf(stderr, "%s is not the table this program writes (--write-csv)\n", path);
        free(got);
    } else {
        fprintf(stderr, "cannot open %s\n", path);
    }
    if (f && fclose(f) != 0)
        rc = 1;
    free(text);
    return rc;
}

static bool print_epoch(void *ud, const nb_epoch_report *r)
{
    (void)ud;
    if (r->epoch % 20 == 0)
        printf("epoch %3d  loss %.4f  val RMSE %.4f  val MAE %.4f\n", r->epoch, r->loss,
               r->val_rmse, r->val_mae);
    return true;
}

int main(int argc, char **argv)
{
    static double x[N][F], y[N];
    make_samples(x, y);
    if (argc == 3 && (!strcmp(argv[1], "--write-csv") || !strcmp(argv[1], "--check-csv")))
        return csv_mode(argv[1], argv[2], x, y);
    if (argc != 1) {
        fprintf(stderr, "usage: regression [--write-csv FILE | --check-csv FILE]\n");
        return 2;
    }

    /* 1. A data set with one float target per sample instead of a label;
     *    a random 300 / 50 / 50 split keeps each target with its row. */
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_data_opts d = {.dtype = NB_F64};
    nb_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
    CHECK(nb_dataset_from_targets(&d, N, F, x, 1, y, &all));
    CHECK(nb_dataset_split(all, &rng, 300, 50, &train, &val, &test));

    /* 2. A 3-32-32-1 tanh network: one output column per target. */
    nb_model *model = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.act = NB_ACT_TANH;
    mo.layer.init = NB_INIT_AUTO; /* Xavier for tanh */
    mo.layer.dtype = NB_F64;
    mo.layer.rng = &rng;
    nb_layer *net = NULL;
    CHECK(nb_mlp_new(model, NULL, (int64_t[]){F, 32, 32, 1}, 4, &mo, &net));
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(&oo);

    /* 3. The trainer with the Huber loss (δ = 0.5): the loader's batches
     *    carry their targets as a [B, 1] tensor b.y, which the loss gets. */
    nb_loader *loader = NULL;
    CHECK(nb_loader_new(train, 25, true, false, &loader));
    nb_train_opts to = nb_train_defaults();
    to.epochs = 100;
    to.rng = &rng;
    to.val = val;
    to.loss_kind = NB_LOSS_HUBER;
    to.huber_delta = 0.5;
    to.patience = 20;                 /* early stopping ...          */
    to.monitor = NB_MONITOR_VAL_LOSS; /* ... on the validation loss  */
    to.on_epoch = print_epoch;
    nb_trainer *t = NULL;
    CHECK(nb_trainer_new(model, net, opt, &to, &t));
    if (nb_trainer_fit(t, loader) != NB_OK) {
        fprintf(stderr, "%s\n", nb_trainer_error(t)->msg);
        return 1;
    }

    /* 4. RMSE and MAE on the test samples, and the baseline's. */
    double rmse, mae, mean = 0, base_sq = 0, base_abs = 0;
    CHECK(nb_trainer_evaluate_regression(t, test, &rmse, &mae, NULL));
    for (int64_t i = 0; i < nb_dataset_count(train); i++)
        mean += nb_dataset_target(train, i, 0) / (double)nb_dataset_count(train);
    for (int64_t i = 0; i < nb_dataset_count(test); i++) {
        double e = nb_dataset_target(test, i, 0) - mean;
        base_sq += e * e / (double)nb_dataset_count(test);
        base_abs += fabs(e) / (double)nb_dataset_count(test);
    }
    printf("test RMSE %.4f, MAE %.4f (predicting the mean: RMSE %.4f, MAE %.4f)\n", rmse, mae,
           sqrt(base_sq), base_abs);
    int rc = rmse < sqrt(base_sq) / 3 ? 0 : 1;

    nb_trainer_free(t);
    nb_loader_free(loader);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(model);
    nb_dataset_free(train);
    nb_dataset_free(val);
    nb_dataset_free(test);
    nb_dataset_free(all);
    return rc;
}
