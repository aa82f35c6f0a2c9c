/* nabla eval: accuracy and loss of a saved classifier, or RMSE and MAE of
 * a saved regression model, on a data set. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "data_sets.h"
#include "model_file.h"

static const char *eval_usage =
    "usage: nabla eval --load FILE [--data SET] [--target COLS] [--seed N] [--json]\n"
    "\n"
    "Accuracy and mean softmax cross-entropy of a model saved by nabla train\n"
    "(a checkpoint or .safetensors file; the architecture is read from its\n"
    "metadata) on the test part of SET; for a regression model (trained with\n"
    "--target: task=regression in its metadata) the RMSE and MAE over its\n"
    "target columns (target= in its metadata; --target COLS names others, as\n"
    "nabla train takes them, as many as the model predicts)\n"
    "(digits, fashion-mnist, a .csv or IDX path, as nabla train reads them;\n"
    "default digits). A model trained on a .csv file holds the mean and\n"
    "standard deviation of its training features (input.mean, input.std):\n"
    "the rows of SET are standardised with those, not with their own.\n"
    "A .csv or IDX path is split at random as nabla train splits it, with the\n"
    "seed the model was trained with (seed= in its metadata; --seed N to\n"
    "choose another, 1 when the file records none). --json keys: test_acc and\n"
    "test_loss, or for a regression model test_rmse and test_mae.\n";

/* The regression settings of a model's metadata: task=regression, its
 * target list (or @p given) into target[0..cap) and its number of targets.
 * *regression false for a classifier. Returns 0, or 2 after an error. */
static int regression_of(const cli_model *cm, const char *path, const char *given, bool *regression,
                         char *target, size_t cap, int64_t *n_targets)
{
    char task[32] = "";
    nb_status st = nb_meta_get(cm->meta, "task", task, sizeof task);
    *regression = st == NB_OK && !strcmp(task, "regression");
    if (st != NB_ERR_NOTFOUND && !*regression)
        return cli_error("eval", "%s: the metadata's task=%s is not 'regression'", CLI_Q(path),
                         CLI_Q(task));
    if (!*regression)
        return given ? cli_error("eval",
                                 "%s is a classifier (its metadata has no task=regression): "
                                 "--target does not apply",
                                 CLI_Q(path))
                     : 0;
    if (nb_meta_get_i64(cm->meta, "targets", n_targets) != NB_OK || *n_targets < 1)
        return cli_error("eval", "%s: a regression model without a number of targets (targets=)",
                         CLI_Q(path));
    if (given) {
        snprintf(target, cap, "%s", given);
    } else if (nb_meta_get(cm->meta, "target", target, cap) != NB_OK || !target[0]) {
        return cli_error("eval",
                         "%s: a regression model without its target columns (target=): give "
                         "--target COLS",
                         CLI_Q(path));
    }
    if (cli_target_count(target) != *n_targets)
        return cli_error("eval", "%s predicts %lld target%s; --target %s names %d", CLI_Q(path),
                         (long long)*n_targets, *n_targets == 1 ? "" : "s", CLI_Q(target),
                         cli_target_count(target));
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    const char *load = NULL, *data = "digits", *target_opt = NULL;
    bool json = false;
    long seed = -1; /* the model's own */
    const cli_opt opts[] = {
        {"--load", CLI_STR, &load, 0, 0},         {"--data", CLI_STR, &data, 0, 0},
        {"--target", CLI_STR, &target_opt, 0, 0}, {"--seed", CLI_INT, &seed, 0, 2147483647},
        {"--json", CLI_FLAG, &json, 0, 0},
    };
    int rc = cli_parse("eval", eval_usage, argc, argv, 2, opts, (int)(sizeof opts / sizeof *opts),
                       NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (!load)
        return cli_error("eval", "--load CKPT is required");
    cli_model cm;
    cli_data d;
    memset(&d, 0, sizeof d);
    nb_rng rng; /* the split nabla train draws first from its seed */
    rc = cli_model_open("eval", load, NULL, &cm);
    bool regression = false;
    char target[1024] = "";
    int64_t n_targets = 0;
    if (rc == 0)
        rc = regression_of(&cm, load, target_opt, &regression, target, sizeof target, &n_targets);
    if (rc == 0 && seed < 0) { /* the seed nabla train split the data with */
        char text[32], *end;
        seed = 1;
        if (nb_meta_get(cm.meta, "seed", text, sizeof text) == NB_OK) {
            errno = 0;
            seed = strtol(text, &end, 10);
            if (end == text || *end || errno || seed < 0 || seed > 2147483647)
                rc = cli_error("eval",
                               "%s: the metadata's seed=%s is not a whole number from 0 to "
                               "2147483647 (give --seed)",
                               CLI_Q(load), CLI_Q(text));
        }
    }
    if (rc == 0)
        nb_rng_seed(&rng, (uint64_t)seed);
    size_t dl = strlen(data);
    if (rc == 0 && regression && !(dl > 4 && !strcmp(data + dl - 4, ".csv")) &&
        !(dl > 7 && !strcmp(data + dl - 7, ".csv.gz")))
        rc = cli_error("eval",
                       "%s is a regression model of the target %s of a CSV file: --data %s is "
                       "not a .csv file",
                       CLI_Q(load), CLI_Q(target), CLI_Q(data));
    if (rc == 0) { /* the model's input standardisation replaces the data's own */
        cli_norm norm = {NULL, NULL, cm.n_in};
        if (cm.mean) {
            norm.mean = nb_tensor_data(cm.mean);
            norm.std = nb_tensor_data(cm.std);
        }
        const cli_norm *by = cm.mean ? &norm : NULL;
        rc = regression ? cli_data_open_target("eval", data, target, false, &rng, by, &d)
                        : cli_data_open_norm("eval", data, false, &rng, by, &d);
    }
    if (rc == 0 && nb_dataset_features(d.test) != cm.n_in) {
        rc = cli_error("eval", "%s takes %lld features, %s has %lld", CLI_Q(load),
                       (long long)cm.n_in, CLI_Q(data), (long long)nb_dataset_features(d.test));
    }
    if (rc == 0) {
        nb_graph *g = nb_graph_new();
        double acc = 0, loss = 0, rmse = 0, mae = 0;
        double t0 = cli_now();
        nb_status st = !g           ? NB_ERR_NOMEM
                       : regression ? nb_evaluate_regression(g, cm.net, d.test, 256, &rmse, &mae)
                                    : nb_evaluate(g, cm.net, d.test, 256, &acc, &loss);
        if (st != NB_OK) {
            rc = cli_error("eval", "evaluation failed: %s",
                           g && nb_graph_error(g)->msg[0] ? nb_graph_error(g)->msg
                                                          : nb_status_str(st));
        } else if (json) {
            printf("{\"data\": ");
            cli_json_str(stdout, data);
            printf(", \"samples\": %lld", (long long)nb_dataset_count(d.test));
            if (regression) {
                cli_json_str_field("target", target);
                cli_json_num_field("test_rmse", rmse);
                cli_json_num_field("test_mae", mae);
            } else {
                cli_json_num_field("test_acc", acc);
                cli_json_num_field("test_loss", loss);
            }
            cli_json_num_field("seconds", cli_now() - t0);
            printf("}\n");
        } else if (regression) {
            printf("%s on %s, target %s (%lld test samples): RMSE %.4f, MAE %.4f\n", load, data,
                   target, (long long)nb_dataset_count(d.test), rmse, mae);
        } else {
            printf("%s on %s (%lld test samples): accuracy %.2f%%, loss %.4f\n", load, data,
                   (long long)nb_dataset_count(d.test), 100 * acc, loss);
        }
        nb_graph_free(g);
    }
    cli_data_close(&d);
    cli_model_close(&cm);
    return rc;
}
