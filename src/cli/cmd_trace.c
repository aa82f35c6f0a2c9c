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

/* The formula as the user wrote it, runs of white space made one space. */
static void print_formula(const char *text)
{
    bool space = false;
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    for (; *text; text++) {
        bool ws = *text == ' ' || *text == '\t' || *text == '\n' || *text == '\r';
        if (!ws && space)
            putchar(' ');
        space = ws;
        if (!ws)
            putchar(*text);
    }
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
    nb_graph *g = nb_graph_new();
    nb_tensor *leaves[CLI_MAX_VARS];
    nb_trace *tr = NULL;
    nb_error err;
    rc = 1;
    if (!g) {
        cli_error("trace", "out of memory");
        goto done;
    }
    nb_tensor *y = cli_expr_build("trace", &x, g, leaves);
    if (!y)
        goto done;
    tr = nb_trace_new(g, y, leaves, x.n, &err);
    if (!tr) {
        cli_error("trace", "%s", err.msg);
        goto done;
    }
    if (!json) {
        printf("f = ");
        print_formula(pos[0]);
        printf("   at ");
        for (int i = 0; i < x.n; i++)
            printf("%s%s = %g", i ? ", " : "", x.names[i], x.values[i] == 0 ? 0.0 : x.values[i]);
        printf("\n\n");
    }
    if ((json ? nb_trace_json(tr, stdout, &err) : nb_trace_print(tr, stdout, &err)) != NB_OK) {
        cli_error("trace", "%s", err.msg);
        goto done;
    }
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
    nb_trace_free(tr);
    nb_graph_free(g);
    cli_expr_close(&x);
    return rc;
}
