/* nabla eval: accuracy and loss of a saved model on a data set. */

#include <errno.h>
#include <stdlib.h>
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
    "default digits). A model trained on a .csv file holds the mean and\n"
    "standard deviation of its training features (input.mean, input.std):\n"
    "the rows of SET are standardised with those, not with their own.\n"
    "A .csv or IDX path is split at random as nabla train splits it, with the\n"
    "seed the model was trained with (seed= in its metadata; --seed N to\n"
    "choose another, 1 when the file records none).\n";

int cmd_eval(int argc, char **argv)
{
    const char *load = NULL, *data = "digits";
    bool json = false;
    long seed = -1; /* the model's own */
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
    rc = cli_model_open("eval", load, NULL, &cm);
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
    if (rc == 0) { /* the model's input standardisation replaces the data's own */
        cli_norm norm = {NULL, NULL, cm.n_in};
        if (cm.mean) {
            norm.mean = nb_tensor_data(cm.mean);
            norm.std = nb_tensor_data(cm.std);
        }
        rc = cli_data_open_norm("eval", data, false, &rng, cm.mean ? &norm : NULL, &d);
    }
    if (rc == 0 && nb_dataset_features(d.test) != cm.n_in) {
        rc = cli_error("eval", "%s takes %lld features, %s has %lld", CLI_Q(load),
                       (long long)cm.n_in, CLI_Q(data), (long long)nb_dataset_features(d.test));
    }
    if (rc == 0) {
        nb_graph *g = nb_graph_new();
        double acc = 0, loss = 0;
        double t0 = cli_now();
        nb_status st = g ? nb_evaluate(g, cm.net, d.test, 256, &acc, &loss) : NB_ERR_NOMEM;
        if (st != NB_OK) {
            rc = cli_error("eval", "evaluation failed: %s",
                           g && nb_graph_error(g)->msg[0] ? nb_graph_error(g)->msg
                                                          : nb_status_str(st));
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
