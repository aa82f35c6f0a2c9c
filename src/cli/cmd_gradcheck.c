/* nabla gradcheck: run the built-in gradcheck suite (every primitive on
 * random inputs and broadcast shapes) and print a table. */

#include <string.h>

#include "cli.h"

static const char *gradcheck_usage =
    "usage: nabla gradcheck [--op NAME] [--fast] [--seed S] [--verbose] [--json]\n"
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
    "              roundoff, not-deterministic or rule-error)\n"
    "\n"
    "Exit status 1 when a case fails.\n";

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
    static const char *const causes[] = {"agree",    "mismatch",          "kink",
                                         "roundoff", "not-deterministic", "rule-error"};
    cli_json_str(stdout,
                 (unsigned)r->cause < sizeof causes / sizeof *causes ? causes[r->cause] : "?");
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

int cmd_gradcheck(int argc, char **argv)
{
    const char *only = NULL;
    bool fast = false, json = false, verbose = false;
    long seed = 1;
    const cli_opt opts[] = {
        {"--op", CLI_STR, &only, 0, 0},          {"--fast", CLI_FLAG, &fast, 0, 0},
        {"--seed", CLI_INT, &seed, 0, 1e9},      {"--json", CLI_FLAG, &json, 0, 0},
        {"--verbose", CLI_FLAG, &verbose, 0, 0},
    };
    int rc = cli_parse("gradcheck", gradcheck_usage, argc, argv, 2, opts, 5, NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
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
