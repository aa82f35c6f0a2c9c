/* nabla gradcheck: run the built-in gradcheck suite (every primitive on
 * random inputs and broadcast shapes) and print a table; with --model,
 * check a saved model's network against its parameters. */

#include <string.h>

#include "cli.h"
#include "data_sets.h"
#include "model_file.h"

static const char *gradcheck_usage =
    "usage: nabla gradcheck [--op NAME] [--fast] [--seed S] [--verbose] [--json]\n"
    "       nabla gradcheck --model FILE [--batch N] [--data SET] [--seed S]\n"
    "                       [--max-entries K] [--json]\n"
    "\n"
    "Checks the reverse-mode and forward-mode derivatives of every built-in op\n"
    "against central differences (f64), on several shape combinations each,\n"
    "then the composites of nn.h: every activation and every loss.\n"
    "\n"
    "  --op NAME   only the cases of this op or composite (e.g. add, gelu, mse)\n"
    "  --fast      fast mode: compare v^T J u for random u, v\n"
    "  --seed S    seed of the random inputs (default 1)\n"
    "  --verbose   print the full report of every case, composites included\n"
    "              (to stderr with --json)\n"
    "  --json      one JSON object per case (\"cause\": agree, mismatch, kink,\n"
    "              roundoff, not-deterministic, rule-error or zero)\n"
    "\n"
    "With --model, checks the network of a model saved by nabla train (a\n"
    "checkpoint or .safetensors file, read as nabla eval reads it) against\n"
    "every trainable parameter: f = sum(w * net(x)) for fixed random weights w,\n"
    "the network in evaluation mode on a batch x, reverse mode per entry and\n"
    "forward mode per parameter against central differences, in f64 (an f32\n"
    "network is checked on an f64 twin built from its description).\n"
    "\n"
    "  --model FILE     the model to check\n"
    "  --batch N        rows of x (default 8)\n"
    "  --data SET       x: the first N rows of the test part of SET (digits,\n"
    "                   fashion-mnist, a .csv or IDX path, split and standardised\n"
    "                   as nabla eval does, a regression model's target columns\n"
    "                   left out); without it, N rows drawn from N(0, 1), the\n"
    "                   scale of standardised features\n"
    "  --seed S         seed of those rows and of the weights w (default 1)\n"
    "  --max-entries K  check at most K entries of each parameter, drawn at\n"
    "                   random (default 0: all)\n"
    "  --json           one JSON object (\"pass\", \"warning\", \"cause\",\n"
    "                   \"worst_param\", \"worst_index\", ...)\n"
    "\n"
    "Exit status 1 when a case fails; with --model, when the model fails or\n"
    "every entry of its Jacobian is zero (a warning, not a pass).\n";

static const char *const causes[] = {
    "agree", "mismatch", "kink", "roundoff", "not-deterministic", "rule-error", "zero"};

static const char *cause_name(nb_check_cause c)
{
    return (unsigned)c < sizeof causes / sizeof *causes ? causes[c] : "?";
}

/* Composites of nn.h checked like primitives: every activation (with its
 * learned parameter where it has one) and every loss. */
typedef struct composite {
    const char *name;
    int act; /* an nb_act, or -1 for a loss */
    int loss;
    int n;
    double lo, hi;
} composite;

enum { LOSS_MSE = 1, LOSS_BCE, LOSS_BCE_LOGITS, LOSS_CE, LOSS_CE_SOFT, LOSS_L2, LOSS_L1 };

static nb_tensor *composite_fn(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
{
    const composite *c = ctx;
    (void)n;
    static const int64_t labels[3] = {2, 0, 3};
    if (c->act >= 0)
        return nb_activate(g, (nb_act)c->act, x[0], NULL, c->n > 1 ? x[1] : NULL, NULL, false);
    switch (c->loss) {
    case LOSS_MSE: return nb_mse_loss(g, x[0], x[1], NB_REDUCE_MEAN);
    case LOSS_BCE: return nb_bce_loss(g, x[0], x[1], NB_REDUCE_MEAN);
    case LOSS_BCE_LOGITS: return nb_bce_with_logits(g, x[0], x[1], NB_REDUCE_SUM);
    case LOSS_CE: return nb_softmax_cross_entropy(g, x[0], labels, 3, NB_REDUCE_MEAN);
    case LOSS_CE_SOFT:
        return nb_softmax_cross_entropy_soft(g, x[0], nb_softmax(g, x[1], -1), NB_REDUCE_MEAN);
    case LOSS_L2: return nb_l2_penalty(g, x, 2, 0.3);
    default: return nb_l1_penalty(g, x, 2, 0.3);
    }
}

/* One case as a JSON object on stdout: the verdict and its cause. */
static void json_line(const char *op, const char *what, bool ok, const nb_check_result *r,
                      double ms)
{
    printf("{\"op\": ");
    cli_json_str(stdout, op);
    cli_json_str_field("case", what);
    printf(", \"pass\": %s, \"reverse_ok\": %s, \"forward_ok\": %s, \"cause\": ",
           ok ? "true" : "false", r->reverse_ok ? "true" : "false",
           r->forward_ok ? "true" : "false");
    cli_json_str(stdout, cause_name(r->cause));
    printf(", \"entries\": %lld, \"kinks\": %lld, \"max_abs_err\": ", (long long)r->n_entries,
           (long long)r->n_kinks);
    cli_json_num(stdout, r->worst.abs_err);
    cli_json_num_field("ms", ms);
    printf("}\n");
}

static int run_composites(const char *only, const nb_check_opts *o, bool json, bool verbose,
                          int *run)
{
    composite list[NB_ACT_COUNT + 8];
    int n = 0;
    for (int a = 0; a < NB_ACT_COUNT; a++)
        list[n++] =
            (composite){nb_act_name((nb_act)a), a, 0, nb_act_has_param((nb_act)a) ? 2 : 1, -2, 2};
    list[n++] = (composite){"mse", -1, LOSS_MSE, 2, -2, 2};
    list[n++] = (composite){"bce", -1, LOSS_BCE, 2, 0.05, 0.95};
    list[n++] = (composite){"bce-logits", -1, LOSS_BCE_LOGITS, 2, -2, 2};
    list[n++] = (composite){"softmax-ce", -1, LOSS_CE, 1, -2, 2};
    list[n++] = (composite){"softmax-ce-soft", -1, LOSS_CE_SOFT, 2, -2, 2};
    list[n++] = (composite){"l2-penalty", -1, LOSS_L2, 2, -2, 2};
    list[n++] = (composite){"l1-penalty", -1, LOSS_L1, 2, -2, 2};
    int failed = 0;
    nb_graph *g = nb_graph_new();
    for (int k = 0; k < n && g; k++) {
        const composite *c = &list[k];
        if (only && strcmp(only, c->name) != 0)
            continue;
        nb_graph_reset(g);
        nb_rng rng;
        nb_rng_seed(&rng, o->seed);
        /* x [3,4]; a learned parameter per feature [4], or a second [3,4] */
        int64_t s34[2] = {3, 4}, s4[1] = {4};
        nb_tensor *in[2] = {nb_rand_uniform(g, &rng, NB_F64, 2, s34, c->lo, c->hi), NULL};
        if (c->n > 1)
            in[1] = c->act >= 0 ? nb_rand_uniform(g, &rng, NB_F64, 1, s4, 0.1, 0.9)
                                : nb_rand_uniform(g, &rng, NB_F64, 2, s34, c->lo, c->hi);
        nb_check_result r;
        double c0 = cli_now();
        nb_status st = nb_gradcheck(composite_fn, (void *)c, in, c->n, o, &r);
        double ms = 1e3 * (cli_now() - c0);
        bool ok = st == NB_OK && r.pass;
        (*run)++;
        failed += !ok;
        if (json) {
            json_line(c->name, "composite", ok, &r, ms);
        } else {
            printf("%-14s %-30s %8lld %6lld %10.2e  %s\n", c->name,
                   c->n > 1 ? (c->act >= 0 ? "[3,4], param [4]" : "[3,4], [3,4]") : "[3,4]",
                   (long long)r.n_entries, (long long)r.n_kinks, r.worst.abs_err,
                   st != NB_OK ? "ERROR"
                   : r.pass    ? "ok"
                               : "FAIL");
        }
        if (verbose || (!ok && !json))
            nb_check_print(&r, json ? stderr : stdout);
    }
    nb_graph_free(g);
    return failed;
}

/* ------------------------------------------------------ --model */

typedef struct model_args {
    const char *path, *data;
    long batch, seed, max_entries;
    bool json;
} model_args;

/* x: the first rows of the test part of a->data, split with the seed the
 * model was trained with and standardised with its statistics, without the
 * target columns of a regression model (as nabla eval does), or rows drawn
 * from N(0, 1). @p what says which. Returns 0, or 2 after an error. */
static int model_batch(const model_args *a, const cli_model *cm, nb_graph *g, nb_dtype dt,
                       nb_tensor **x, char *what, size_t cap)
{
    if (!a->data) {
        nb_rng rng;
        nb_rng_seed(&rng, (uint64_t)a->seed);
        *x = nb_rand_normal(g, &rng, dt, 2, (int64_t[]){a->batch, cm->n_in}, 0, 1);
        snprintf(what, cap, "%ld rows drawn from N(0, 1) (seed %ld)", a->batch, a->seed);
        return *x ? 0 : cli_error("gradcheck", "out of memory");
    }
    int64_t split = 1; /* when the file records no seed= */
    nb_status st = nb_meta_get_i64(cm->meta, "seed", &split);
    if ((st != NB_OK && st != NB_ERR_NOTFOUND) || split < 0 || split > 2147483647)
        return cli_error("gradcheck",
                         "%s: the metadata's seed= is not a whole number from 0 to "
                         "2147483647",
                         CLI_Q(a->path));
    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)split);
    cli_norm norm = {cm->mean ? nb_tensor_data(cm->mean) : NULL,
                     cm->std ? nb_tensor_data(cm->std) : NULL, cm->n_in};
    char task[32] = "", target[1024] = "";
    bool regression =
        nb_meta_get(cm->meta, "task", task, sizeof task) == NB_OK && !strcmp(task, "regression");
    if (regression && nb_meta_get(cm->meta, "target", target, sizeof target) != NB_OK)
        return cli_error("gradcheck", "%s: a regression model without its target columns (target=)",
                         CLI_Q(a->path));
    cli_data d;
    const cli_norm *by = cm->mean ? &norm : NULL;
    int rc = regression ? cli_data_open_target("gradcheck", a->data, target, false, &rng, by, &d)
                        : cli_data_open_norm("gradcheck", a->data, false, &rng, by, &d);
    if (rc != 0)
        return rc;
    const nb_dataset *part = d.test ? d.test : d.train;
    int64_t n = nb_dataset_count(part) < a->batch ? nb_dataset_count(part) : a->batch;
    if (nb_dataset_features(part) != cm->n_in)
        rc = cli_error("gradcheck", "%s takes %lld features, %s has %lld", CLI_Q(a->path),
                       (long long)cm->n_in, CLI_Q(a->data), (long long)nb_dataset_features(part));
    else if (!(*x = nb_zeros(g, dt, 2, (int64_t[]){n, cm->n_in})))
        rc = cli_error("gradcheck", "out of memory");
    for (int64_t i = 0; rc == 0 && i < n; i++)
        for (int64_t j = 0; j < cm->n_in; j++)
            nb_tensor_set(*x, i * cm->n_in + j, nb_dataset_get(part, i, j));
    snprintf(what, cap, "the first %lld rows of the %s part of %s", (long long)n,
             d.test ? "test" : "training", a->data);
    cli_data_close(&d);
    return rc;
}

static void model_json(const model_args *a, const nb_tensor *x, const nb_model_check_result *r,
                       double ms)
{
    printf("{\"model\": ");
    cli_json_str(stdout, a->path);
    printf(", \"rows\": %lld, \"pass\": %s, \"warning\": %s, \"reverse_ok\": %s, "
           "\"forward_ok\": %s",
           (long long)nb_tensor_dim(x, 0), r->pass ? "true" : "false",
           r->warning ? "true" : "false", r->reverse_ok ? "true" : "false",
           r->forward_ok ? "true" : "false");
    cli_json_str_field("cause", cause_name(r->cause));
    cli_json_str_field("dtype", nb_dtype_name(r->dtype));
    printf(", \"twin\": %s", r->twin ? "true" : "false");
    cli_json_str_field("note", r->note);
    printf(", \"params\": %d, \"entries\": %lld, \"total\": %lld, \"kinks\": %lld", r->n_params,
           (long long)r->n_entries, (long long)r->n_total, (long long)r->n_kinks);
    cli_json_str_field("worst_param", r->worst.param);
    printf(", \"worst_index\": %lld", (long long)r->worst.index);
    cli_json_num_field("max_abs_err", r->worst.abs_err);
    cli_json_str_field("worst_direction", r->worst_forward.param);
    cli_json_num_field("direction_abs_err", r->worst_forward.abs_err);
    printf(", \"evals\": %lld", (long long)r->evals);
    cli_json_num_field("ms", ms);
    printf("}\n");
}

static int run_model(const model_args *a)
{
    cli_model cm;
    nb_graph *g = NULL;
    nb_tensor *x = NULL;
    char what[512];
    int rc = cli_model_open("gradcheck", a->path, NULL, &cm);
    if (rc == 0 && !(g = nb_graph_new()))
        rc = cli_error("gradcheck", "out of memory");
    nb_dtype dt = NB_F32; /* the dtype of the network's parameters */
    for (nb_tensor *t = rc ? NULL : nb_model_next(cm.m, NULL); t; t = nb_model_next(cm.m, t))
        if (nb_tensor_requires_grad(t)) {
            dt = nb_tensor_dtype(t);
            break;
        }
    if (rc == 0)
        rc = model_batch(a, &cm, g, dt, &x, what, sizeof what);
    if (rc == 0) {
        nb_model_check_opts o = nb_model_check_defaults();
        o.check.seed = (uint64_t)a->seed;
        o.max_entries = a->max_entries;
        nb_model_check_result r;
        double t0 = cli_now();
        nb_status st = nb_check_model(cm.net, cm.m, x, &o, &r);
        double ms = 1e3 * (cli_now() - t0);
        if (st != NB_OK) {
            rc = cli_error("gradcheck", "cannot check %s: %s", CLI_Q(a->path), r.error.msg);
        } else if (a->json) {
            model_json(a, x, &r, ms);
        } else {
            printf("%s on %s\n", a->path, what);
            nb_model_check_print(&r, stdout);
        }
        if (rc == 0)
            rc = r.pass ? 0 : 1;
    }
    nb_graph_free(g);
    cli_model_close(&cm);
    return rc;
}

int cmd_gradcheck(int argc, char **argv)
{
    const char *only = NULL;
    bool fast = false, json = false, verbose = false;
    long seed = 1;
    model_args ma = {.batch = -1, .max_entries = -1};
    const cli_opt opts[] = {
        {"--op", CLI_STR, &only, 0, 0},
        {"--fast", CLI_FLAG, &fast, 0, 0},
        {"--seed", CLI_INT, &seed, 0, 1e9},
        {"--json", CLI_FLAG, &json, 0, 0},
        {"--verbose", CLI_FLAG, &verbose, 0, 0},
        {"--model", CLI_STR, &ma.path, 0, 0},
        {"--batch", CLI_INT, &ma.batch, 1, 1e6},
        {"--data", CLI_STR, &ma.data, 0, 0},
        {"--max-entries", CLI_INT, &ma.max_entries, 0, 1e12},
    };
    int rc = cli_parse("gradcheck", gradcheck_usage, argc, argv, 2, opts,
                       (int)(sizeof opts / sizeof *opts), NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    const char *suite_only = only ? "--op" : fast ? "--fast" : verbose ? "--verbose" : NULL;
    const char *model_only = ma.batch >= 0         ? "--batch"
                             : ma.data             ? "--data"
                             : ma.max_entries >= 0 ? "--max-entries"
                                                   : NULL;
    if (ma.path && suite_only)
        return cli_error("gradcheck", "%s checks the built-in ops, not a model: drop it or --model",
                         suite_only);
    if (!ma.path && model_only)
        return cli_error("gradcheck", "%s goes with --model FILE", model_only);
    if (ma.path) {
        ma.batch = ma.batch < 0 ? 8 : ma.batch;
        ma.max_entries = ma.max_entries < 0 ? 0 : ma.max_entries;
        ma.seed = seed;
        ma.json = json;
        return run_model(&ma);
    }
    nb_act act_kind;
    char wrapped[64];
    snprintf(wrapped, sizeof wrapped, ",%s,", only ? only : "");
    bool is_composite =
        only && (nb_act_from_name(only, &act_kind) == NB_OK ||
                 strstr(",mse,bce,bce-logits,softmax-ce,softmax-ce-soft,l2-penalty,l1-penalty,",
                        wrapped) != NULL);
    if (only && nb_op_find(only) < 0 && !is_composite)
        return cli_error("gradcheck", "unknown op '%s'", CLI_Q(only));

    int n;
    const nb_check_case *cases = nb_check_builtin_cases(&n);
    nb_check_opts o = nb_check_defaults();
    o.fast = fast;
    o.seed = (uint64_t)seed;
    int run = 0, failed = 0;
    double t0 = cli_now();
    if (!json)
        printf("%-14s %-30s %8s %6s %10s  %s\n", "op", "case", "entries", "kinks", "max err",
               "verdict");
    for (int i = 0; i < n; i++) {
        if (only && strcmp(cases[i].op, only) != 0)
            continue;
        nb_check_result r;
        double c0 = cli_now();
        nb_status st = nb_check_run_case(&cases[i], &o, &r);
        double ms = 1e3 * (cli_now() - c0);
        bool ok = st == NB_OK && r.pass;
        run++;
        failed += !ok;
        const char *verdict = st != NB_OK ? "ERROR" : r.pass ? "ok" : "FAIL";
        if (json) {
            json_line(cases[i].op, cases[i].what, ok, &r, ms);
        } else {
            printf("%-14s %-30s %8lld %6lld %10.2e  %s\n", cases[i].op, cases[i].what,
                   (long long)r.n_entries, (long long)r.n_kinks, r.worst.abs_err, verdict);
        }
        if (verbose || (!ok && !json))
            nb_check_print(&r, json ? stderr : stdout);
    }
    if (!only || is_composite) {
        if (!json && !only)
            printf("\ncomposites (nn.h activations and losses)\n");
        failed += run_composites(only && is_composite ? only : NULL, &o, json, verbose, &run);
    }
    if (!json)
        printf("\n%d case%s, %d failed, %.0f ms (%s mode)\n", run, run == 1 ? "" : "s", failed,
               1e3 * (cli_now() - t0), fast ? "fast" : "full");
    return failed ? 1 : 0;
}
