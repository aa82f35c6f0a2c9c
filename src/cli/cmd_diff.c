/* nabla diff: one formula differentiated four ways side by side — reverse
 * mode, forward mode, central differences and the symbolic derivative. */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "svg.h"

static const char *diff_usage =
    "usage: nabla diff EXPR --at x=1,y=2 [--wrt x,y] [--json] [--dot FILE]\n"
    "\n"
    "Value and gradient of EXPR at the point, by reverse mode, forward mode,\n"
    "central differences and the symbolic derivative (printed), with the\n"
    "size of the recorded tape and of the symbolic expressions.\n"
    "\n"
    "  --at LIST    a value for every variable: name=value,...\n"
    "  --wrt LIST   the variables to differentiate by (default: all)\n"
    "  --json       one JSON object per variable\n"
    "  --dot FILE   the recorded graph, with values and gradients, as Graphviz DOT\n"
    "\n"
    "EXPR: numbers, variables, + - * / ^, sin cos tan exp ln log sqrt tanh\n"
    "sigmoid abs erf sign, pow(a,b) max(a,b) min(a,b).\n";

static nb_tensor *rebuild(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    cli_expr *x = ctx;
    return nb_sym_to_graph(x->s, x->e, g, n, x->names, in);
}

typedef struct diff_row {
    int var;
    double reverse, forward, numerical, symbolic;
    const char *text; /* the derivative, printed (owned here) */
    int64_t dag;
    double tree;
} diff_row;

int cmd_diff(int argc, char **argv)
{
    const char *at = NULL, *wrt = NULL, *dot = NULL, *pos[1];
    bool json = false;
    int n_pos = 0;
    const cli_opt opts[] = {
        {"--at", CLI_STR, &at, 0, 0},
        {"--wrt", CLI_STR, &wrt, 0, 0},
        {"--json", CLI_FLAG, &json, 0, 0},
        {"--dot", CLI_STR, &dot, 0, 0},
    };
    int rc = cli_parse("diff", diff_usage, argc, argv, 2, opts, 4, pos, 1, &n_pos);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (n_pos != 1)
        return cli_error("diff", "give one expression (see nabla diff --help)");
    cli_expr x;
    rc = cli_expr_open("diff", pos[0], at, &x);
    if (rc != 0) {
        cli_expr_close(&x);
        return rc;
    }

    /* which variables */
    bool want[CLI_MAX_VARS] = {0};
    if (!wrt) {
        for (int i = 0; i < x.n; i++)
            want[i] = true;
    } else {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", wrt);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            int i = cli_expr_var(&x, tok);
            if (i < 0) {
                cli_expr_close(&x);
                return cli_error("diff", "--wrt: '%s' is not a variable of the expression", tok);
            }
            want[i] = true;
        }
    }

    nb_graph *g = nb_graph_new();
    nb_tensor *leaves[CLI_MAX_VARS];
    diff_row rows[CLI_MAX_VARS];
    int n_rows = 0;
    rc = 1;
    if (!g) {
        cli_error("diff", "out of memory");
        goto done;
    }
    nb_tensor *y = cli_expr_build("diff", &x, g, leaves);
    if (!y)
        goto done;
    uint64_t tape = nb_graph_evals(g);
    double value = nb_tensor_item(y);
    bool has_grad = nb_tensor_needs_grad(y);
    if (has_grad && nb_backward(g, y) != NB_OK) {
        cli_error("diff", "reverse mode: %s", nb_graph_errmsg(g));
        goto done;
    }
    for (int i = 0; i < x.n; i++) {
        if (!want[i])
            continue;
        diff_row *r = &rows[n_rows++];
        memset(r, 0, sizeof *r);
        r->var = i;
        nb_tensor *gr = nb_tensor_grad(leaves[i]);
        r->reverse = gr ? nb_tensor_item(gr) : 0.0;
        nb_tensor *t[CLI_MAX_VARS], *yt = NULL;
        for (int k = 0; k < x.n; k++)
            t[k] = nb_scalar(g, NB_F64, k == i);
        if (nb_jvp(g, y, leaves, t, x.n, &yt) != NB_OK) {
            cli_error("diff", "forward mode: %s", nb_graph_errmsg(g));
            goto done;
        }
        r->forward = nb_tensor_item(yt);
        nb_tensor *jac = nb_numerical_jacobian(g, rebuild, &x, leaves, x.n, i, NULL);
        r->numerical = jac ? nb_tensor_item(jac) : NAN;
        nb_graph_clear_error(g);
        const nb_expr *d = nb_sym_diff(x.s, x.e, x.names[i]);
        if (!d) {
            cli_error("diff", "symbolic: %s", nb_sym_errmsg(x.s));
            goto done;
        }
        nb_sym_eval(x.s, d, x.n, x.names, x.values, &r->symbolic);
        r->dag = nb_sym_dag_size(x.s, d);
        r->tree = nb_sym_tree_size(d);
        const char *text = nb_sym_str(x.s, d);
        r->text = strdup(text ? text : "(too long to print)");
    }

    if (json) {
        for (int k = 0; k < n_rows; k++) {
            const diff_row *r = &rows[k];
            printf("{\"wrt\": ");
            cli_json_str(stdout, x.names[r->var]);
            cli_json_num_field("value", value);
            cli_json_num_field("reverse", r->reverse);
            cli_json_num_field("forward", r->forward);
            cli_json_num_field("numerical", r->numerical);
            cli_json_num_field("symbolic", r->symbolic);
            cli_json_str_field("derivative", r->text);
            printf(", \"tape_ops\": %llu, \"dag_nodes\": %lld, \"tree_nodes\": %.0f}\n",
                   (unsigned long long)tape, (long long)r->dag, r->tree);
        }
    } else {
        const char *ftext = nb_sym_str(x.s, x.e);
        printf("f = %s\nat ", ftext ? ftext : pos[0]);
        for (int i = 0; i < x.n; i++)
            printf("%s%s = %.17g", i ? ", " : "", x.names[i], x.values[i]);
        printf("%s\n\nvalue %.17g\n", x.n ? "" : "(no variables)", value);
        printf("recorded tape: %llu primitive ops; symbolic f: %lld distinct nodes (%.0f as a "
               "tree)\n\n",
               (unsigned long long)tape, (long long)nb_sym_dag_size(x.s, x.e),
               nb_sym_tree_size(x.e));
        if (n_rows > 0) {
            printf("%-8s %-24s %-24s %-24s %-24s\n", "wrt", "reverse", "forward", "numerical",
                   "symbolic");
            for (int k = 0; k < n_rows; k++)
                printf("%-8s %-24.17g %-24.17g %-24.17g %-24.17g\n", x.names[rows[k].var],
                       rows[k].reverse, rows[k].forward, rows[k].numerical, rows[k].symbolic);
            printf("\n");
            for (int k = 0; k < n_rows; k++)
                printf("df/d%s = %s\n    (%lld distinct nodes, %.0f as a tree)\n",
                       x.names[rows[k].var], rows[k].text, (long long)rows[k].dag, rows[k].tree);
        }
    }
    if (dot) {
        char why[512];
        if (svg_dot_file(dot, g, y, why, sizeof why) != 0) {
            cli_error("diff", "%s", why);
            rc = 2;
            goto done;
        }
    }
    rc = 0;
done:
    for (int k = 0; k < n_rows; k++)
        free((void *)rows[k].text);
    nb_graph_free(g);
    cli_expr_close(&x);
    return rc;
}
