/* nabla eval: accuracy and loss of a saved model on a data set. */

#include <string.h>

#include "cli.h"
#include "data_sets.h"
#include "model_file.h"

static const char *eval_usage =
    "usage: nabla eval --load FILE [--data SET] [--seed N] [--json]\n"
    "\n"
    "Accuracy and mean softmax cross-entropy of a model saved by nabla train\n"
    "(a checkpoint or .safetensors file; the architecture is read from its\n"
    "metadata) on the test part of SET\n"
    "(digits, fashion-mnist, a .csv or IDX path, as nabla train reads them;\n"
    "default digits). A .csv or IDX path is split at random as nabla train\n"
    "splits it: give the --seed the model was trained with (default 1).\n";

int cmd_eval(int argc, char **argv)
{
    const char *load = NULL, *data = "digits";
    bool json = false;
    long seed = 1;
    const cli_opt opts[] = {
        {"--load", CLI_STR, &load, 0, 0},
        {"--data", CLI_STR, &data, 0, 0},
        {"--seed", CLI_INT, &seed, 0, 2147483647},
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
    nb_rng_seed(&rng, (uint64_t)seed);
    rc = cli_model_open("eval", load, &cm);
    if (rc == 0)
        rc = cli_data_open("eval", data, false, &rng, &d);
    if (rc == 0 && nb_dataset_features(d.test) != cm.sizes[0]) {
        rc = cli_error("eval", "%s takes %lld features, %s has %lld", load, (long long)cm.sizes[0],
                       data, (long long)nb_dataset_features(d.test));
    }
    if (rc == 0) {
        nb_graph *g = nb_graph_new();
        double acc = 0, loss = 0;
        double t0 = cli_now();
        nb_status st = g ? nb_evaluate(cm.net, g, d.test, 256, &acc, &loss) : NB_ERR_NOMEM;
        if (st != NB_OK) {
            rc = cli_error("eval", "evaluation failed: %s",
                           g && nb_graph_errmsg(g)[0] ? nb_graph_errmsg(g) : nb_status_str(st));
        } else if (json) {
            printf("{\"data\": ");
            cli_json_str(stdout, data);
            printf(", \"samples\": %lld, \"test_acc\": ", (long long)nb_dataset_count(d.test));
            cli_json_num(stdout, acc);
            cli_json_num_field("test_loss", loss);
            cli_json_num_field("seconds", cli_now() - t0);
            printf("}\n");
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
