/* nabla gradcheck: run the built-in gradcheck suite (every primitive on
 * random inputs and broadcast shapes) and print a table. */

#include <string.h>

#include "cli.h"

static const char *gradcheck_usage =
    "usage: nabla gradcheck [--op NAME] [--fast] [--seed S] [--verbose] [--json]\n"
    "\n"
    "Checks the reverse-mode and forward-mode derivatives of every built-in op\n"
    "against central differences (f64), on several shape combinations each.\n"
    "\n"
    "  --op NAME   only the cases of this op\n"
    "  --fast      fast mode: compare v^T J u for random u, v\n"
    "  --seed S    seed of the random inputs (default 1)\n"
    "  --verbose   print the full report of every case\n"
    "  --json      one JSON object per case\n"
    "\n"
    "Exit status 1 when a case fails.\n";

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
    if (only && nb_op_find(only) < 0)
        return cli_error("gradcheck", "unknown op '%s'", only);

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
            printf("{\"op\": ");
            cli_json_str(stdout, cases[i].op);
            printf(", \"case\": ");
            cli_json_str(stdout, cases[i].what);
            printf(", \"pass\": %s, \"reverse_ok\": %s, \"forward_ok\": %s, \"entries\": %lld, "
                   "\"kinks\": %lld, \"max_abs_err\": ",
                   ok ? "true" : "false", r.reverse_ok ? "true" : "false",
                   r.forward_ok ? "true" : "false", (long long)r.n_entries, (long long)r.n_kinks);
            cli_json_num(stdout, r.worst.abs_err);
            printf(", \"ms\": ");
            cli_json_num(stdout, ms);
            printf("}\n");
        } else {
            printf("%-14s %-30s %8lld %6lld %10.2e  %s\n", cases[i].op, cases[i].what,
                   (long long)r.n_entries, (long long)r.n_kinks, r.worst.abs_err, verdict);
        }
        if (verbose || (!ok && !json))
            nb_check_print(&r, json ? stderr : stdout);
    }
    if (!json)
        printf("\n%d case%s, %d failed, %.0f ms (%s mode)\n", run, run == 1 ? "" : "s", failed,
               1e3 * (cli_now() - t0), fast ? "fast" : "full");
    return failed ? 1 : 0;
}
