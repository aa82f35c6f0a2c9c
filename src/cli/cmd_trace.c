/* nabla trace: the forward (tangent) sweep and the reverse (adjoint) sweep
 * of a formula written out step by step, one row per local derivative, as
 * the course notes do for σ(wx+b). */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "svg.h"

static const char *trace_usage =
    "usage: nabla trace EXPR --at x=1,w=0,b=0 [--json] [--dot FILE]\n"
    "\n"
    "Records EXPR at the point and prints: the evaluation trace (one row per\n"
    "primitive op), the forward-mode sweep for each input (tangents), and the\n"
    "reverse-mode sweep (one row per 'g_in += local derivative x g_out').\n"
    "\n"
    "  --at LIST    a value for every variable: name=value,...\n"
    "  --json       one JSON object per row\n"
    "  --dot FILE   the recorded graph as Graphviz DOT\n"
    "\n"
    "Example (the course notes' logistic unit):\n"
    "  nabla trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0\n";

#define NODES_MAX 4096

typedef struct node_info {
    nb_tensor *t;
    char label[40];
    int n_in;
    int in[3];       /* indices of the inputs in the node list */
    double local[3]; /* d node / d input */
} node_info;

/* d out / d input i of one scalar op at its recorded inputs: the op applied
 * again on fresh leaves in a scratch graph, then one reverse sweep. */
static int local_derivatives(nb_graph *scratch, nb_tensor *node, double *local)
{
    int n = nb_op_n_inputs(node);
    nb_tensor *in[3];
    nb_graph_reset(scratch);
    for (int i = 0; i < n; i++) {
        in[i] = nb_tensor_set_requires_grad(
            nb_scalar(scratch, NB_F64, nb_tensor_item(nb_op_input(node, i))), true);
        local[i] = 0;
    }
    nb_tensor *y = nb_apply(scratch, nb_op_find(nb_tensor_op_name(node)), in, n, nb_op_attrs(node));
    if (!y)
        return -1;
    if (!nb_tensor_requires_grad(y))
        return 0; /* comparisons, sign: zero derivatives */
    nb_tensor *d[3];
    if (nb_grad(scratch, y, NULL, in, n, d, false) != NB_OK)
        return -1;
    for (int i = 0; i < n; i++)
        local[i] = nb_tensor_item(d[i]);
    return 0;
}

static void json_row_start(const char *sweep)
{
    printf("{\"sweep\": \"%s\"", sweep);
}

int cmd_trace(int argc, char **argv)
{
    const char *at = NULL, *dot = NULL, *pos[1];
    bool json = false;
    int n_pos = 0;
    const cli_opt opts[] = {
        {"--at", CLI_STR, &at, 0, 0},
        {"--json", CLI_FLAG, &json, 0, 0},
        {"--dot", CLI_STR, &dot, 0, 0},
    };
    int rc = cli_parse("trace", trace_usage, argc, argv, 2, opts, 3, pos, 1, &n_pos);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (n_pos != 1)
        return cli_error("trace", "give one expression (see nabla trace --help)");
    cli_expr x;
    rc = cli_expr_open("trace", pos[0], at, &x);
    if (rc != 0) {
        cli_expr_close(&x);
        return rc;
    }
    nb_graph *g = nb_graph_new(), *scratch = nb_graph_new();
    nb_tensor *leaves[CLI_MAX_VARS], *nodes[NODES_MAX];
    node_info *info = calloc(NODES_MAX, sizeof *info);
    double *tan = calloc(NODES_MAX, sizeof *tan), *adj = calloc(NODES_MAX, sizeof *adj);
    rc = 1;
    if (!g || !scratch || !info || !tan || !adj) {
        cli_error("trace", "out of memory");
        goto done;
    }
    nb_tensor *y = cli_expr_build("trace", &x, g, leaves);
    if (!y)
        goto done;
    int64_t n = nb_graph_nodes(g, y, nodes, NODES_MAX);
    if (n < 0 || n > NODES_MAX) {
        cli_error("trace", n < 0 ? "%s" : "the formula records more than 4096 tensors%s",
                  n < 0 ? nb_graph_error(g)->msg : "");
        goto done;
    }

    /* labels: variables by name, constants by value, ops h1, h2, ... */
    int h = 0;
    for (int64_t k = 0; k < n; k++) {
        node_info *ni = &info[k];
        nb_tensor *t = nodes[k];
        ni->t = t;
        const char *op = nb_tensor_op_name(t);
        if (nb_op_find(op) < 0) { /* a leaf: a variable or a constant */
            const char *name = nb_tensor_name(t);
            if (name && *name)
                snprintf(ni->label, sizeof ni->label, "%s", name);
            else
                snprintf(ni->label, sizeof ni->label, "%.6g", nb_tensor_item(t));
            continue;
        }
        snprintf(ni->label, sizeof ni->label, "h%d", ++h);
        ni->n_in = nb_op_n_inputs(t);
        if (ni->n_in > 3) {
            cli_error("trace", "op %s has %d inputs; trace handles up to 3", op, ni->n_in);
            goto done;
        }
        for (int i = 0; i < ni->n_in; i++) {
            nb_tensor *in = nb_op_input(t, i);
            ni->in[i] = -1;
            for (int64_t j = 0; j < k; j++)
                if (nodes[j] == in)
                    ni->in[i] = (int)j;
        }
        if (local_derivatives(scratch, t, ni->local) != 0) {
            cli_error("trace", "local derivative of %s: %s", op, nb_graph_error(scratch)->msg);
            goto done;
        }
    }

    /* the evaluation trace */
    if (!json) {
        const char *ftext = nb_sym_str(x.s, x.e);
        printf("f = %s   at ", ftext ? ftext : pos[0]);
        for (int i = 0; i < x.n; i++)
            printf("%s%s = %g", i ? ", " : "", x.names[i], x.values[i]);
        printf("\n\nevaluation trace\n");
    }
    for (int64_t k = 0; k < n; k++) {
        node_info *ni = &info[k];
        if (ni->n_in == 0)
            continue;
        double v = nb_tensor_item(ni->t);
        if (json) {
            json_row_start("eval");
            cli_json_str_field("node", ni->label);
            cli_json_str_field("op", nb_tensor_op_name(ni->t));
            printf(", \"inputs\": [");
            for (int i = 0; i < ni->n_in; i++) {
                printf(i ? ", " : "");
                cli_json_str(stdout, info[ni->in[i]].label);
            }
            printf("], \"value\": ");
            cli_json_num(stdout, v);
            printf("}\n");
        } else {
            char call[160];
            int len = snprintf(call, sizeof call, "%s(", nb_tensor_op_name(ni->t));
            for (int i = 0; i < ni->n_in; i++)
                len += snprintf(call + len, sizeof call - (size_t)len, "%s%s", i ? ", " : "",
                                info[ni->in[i]].label);
            snprintf(call + len, sizeof call - (size_t)len, ")");
            printf("  %-5s = %-24s = %.10g\n", ni->label, call, v);
        }
    }

    /* forward mode: one sweep per variable */
    for (int v = 0; v < x.n; v++) {
        if (!json)
            printf("\nforward mode, tangent of %s (d%s = 1, other inputs 0)\n", x.names[v],
                   x.names[v]);
        for (int64_t k = 0; k < n; k++) {
            node_info *ni = &info[k];
            if (ni->n_in == 0) {
                tan[k] = ni->t == leaves[v] ? 1.0 : 0.0;
                continue;
            }
            double sum = 0;
            char terms[256] = "";
            int len = 0;
            for (int i = 0; i < ni->n_in; i++) {
                double ti = tan[ni->in[i]];
                sum += ni->local[i] * ti;
                len += snprintf(terms + len, sizeof terms - (size_t)len, "%s%.6g x %.6g",
                                i ? " + " : "", ni->local[i], ti);
            }
            tan[k] = sum;
            if (json) {
                json_row_start("forward");
                cli_json_str_field("wrt", x.names[v]);
                cli_json_str_field("node", ni->label);
                printf(", \"locals\": [");
                for (int i = 0; i < ni->n_in; i++) {
                    printf(i ? ", " : "");
                    cli_json_num(stdout, ni->local[i]);
                }
                printf("], \"tangent\": ");
                cli_json_num(stdout, sum);
                printf("}\n");
            } else {
                printf("  d%-4s = %-40s = %.10g\n", ni->label, terms, sum);
            }
        }
        if (!json)
            printf("  df/d%s = %.10g\n", x.names[v], tan[n - 1]);
    }

    /* reverse mode: one sweep, adjoints from the output back */
    if (!json)
        printf("\nreverse mode (g_v = df/dv, accumulated from the output back)\n  g_%s = 1\n",
               info[n - 1].label);
    for (int64_t k = 0; k < n; k++)
        adj[k] = k == n - 1 ? 1.0 : 0.0;
    for (int64_t k = n - 1; k >= 0; k--) {
        node_info *ni = &info[k];
        for (int i = 0; i < ni->n_in; i++) {
            int j = ni->in[i];
            if (!nb_tensor_requires_grad(info[j].t))
                continue; /* constants receive nothing */
            double add = ni->local[i] * adj[k];
            adj[j] += add;
            if (json) {
                json_row_start("reverse");
                cli_json_str_field("to", info[j].label);
                cli_json_str_field("from", ni->label);
                cli_json_num_field("local", ni->local[i]);
                cli_json_num_field("adjoint_from", adj[k]);
                cli_json_num_field("adjoint_to", adj[j]);
                printf("}\n");
            } else {
                char lhs[200];
                snprintf(lhs, sizeof lhs, "g_%s += d%s/d%s x g_%s", info[j].label, ni->label,
                         info[j].label, ni->label);
                printf("  %-28s = %.6g x %.6g   -> g_%s = %.10g\n", lhs, ni->local[i], adj[k],
                       info[j].label, adj[j]);
            }
        }
    }

    /* the library's own sweeps must agree with the table */
    if (nb_backward(g, y) != NB_OK && nb_tensor_requires_grad(y)) {
        cli_error("trace", "reverse mode: %s", nb_graph_error(g)->msg);
        goto done;
    }
    if (!json)
        printf("\ngradient:");
    for (int v = 0; v < x.n; v++) {
        int64_t k = 0;
        while (k < n && info[k].t != leaves[v])
            k++;
        double mine = k < n ? adj[k] : 0.0;
        nb_tensor *gr = nb_tensor_grad(leaves[v]);
        double lib = gr ? nb_tensor_item(gr) : 0.0;
        if (fabs(mine - lib) > 1e-12 * fmax(1, fabs(lib))) {
            cli_error("trace", "the table's df/d%s = %.17g differs from nb_backward's %.17g",
                      x.names[v], mine, lib);
            goto done;
        }
        if (!json)
            printf("  df/d%s = %.10g", x.names[v], mine);
    }
    if (!json)
        printf("   (nb_backward agrees)\n");
    if (dot) {
        char why[512];
        if (svg_dot_file(dot, g, y, why, sizeof why) != 0) {
            cli_error("trace", "%s", why);
            rc = 2;
            goto done;
        }
    }
    rc = 0;
done:
    free(info);
    free(tan);
    free(adj);
    nb_graph_free(g);
    nb_graph_free(scratch);
    cli_expr_close(&x);
    return rc;
}
