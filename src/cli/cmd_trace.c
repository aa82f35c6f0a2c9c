/* nabla trace: the forward (tangent) sweep and the reverse (adjoint) sweep
 * of a formula written out step by step, one row per local derivative, as
 * the course notes do for σ(wx+b). */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../io/file.h"
#include "expr.h"
#include "svg.h"

static const char *trace_usage =
    "usage: nabla trace EXPR --at x=1,w=0,b=0 [--json] [--dot FILE] [--svg FILE\n"
    "                   [--show values|forward|reverse] [--wrt NAME]] [--html FILE]\n"
    "\n"
    "Records EXPR at the point and prints: the evaluation trace (one row per\n"
    "primitive op, h1, h2, ...), the forward-mode sweep for each input\n"
    "(tangents), and the reverse-mode sweep (one row per\n"
    "'g_in += local derivative x g_out').\n"
    "\n"
    "  --at LIST    a value for every variable: name=value,...\n"
    "  --json       one JSON object per row\n"
    "  --dot FILE   the recorded graph as Graphviz DOT\n"
    "  --svg FILE   the graph drawn by nabla as SVG, for slides: values, and\n"
    "               --show reverse (the default) adjoints, --show forward the\n"
    "               tangents of the sweep of --wrt NAME (default: the first\n"
    "               variable), --show values the values alone\n"
    "  --html FILE  one self-contained page that steps through the evaluation\n"
    "               and both sweeps (open it in a browser; the step is in the\n"
    "               URL, #mode=reverse&step=7; arrow keys step)\n"
    "Graphs of more than 200 tensors are not drawn (use --dot).\n"
    "\n"
    "Example (the course notes' logistic unit):\n"
    "  nabla trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0\n";

/* The formula as the user wrote it, runs of white space made one space. */
static void print_formula(FILE *f, const char *text)
{
    bool space = false;
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    for (; *text; text++) {
        bool ws = *text == ' ' || *text == '\t' || *text == '\n' || *text == '\r';
        if (!ws && space)
            fputc(' ', f);
        space = ws;
        if (!ws)
            fputc(*text, f);
    }
}

/* What --svg or --html draws. */
typedef struct picture {
    const nb_trace *tr;
    bool html;
    nb_trace_mode mode;
    int sweep;
    const char *title;
} picture;

/* Write the picture to @p path (created or replaced whole, as src/io/file.h
 * describes; nothing is left behind on failure): 0, or 2 after a message. */
static int write_picture(const char *path, const picture *p)
{
    char why[600];
    nbio_out *o = NULL;
    if (nbio_out_open(path, NULL, NULL, &o, why, sizeof why) != NB_OK)
        return cli_error("trace", "%s", why);
    nb_error err;
    FILE *f = nbio_out_file(o);
    nb_status st = p->html ? nb_trace_html(p->tr, f, p->title, &err)
                           : nb_trace_svg(p->tr, f, p->mode, p->sweep, &err);
    if (st != NB_OK) {
        nbio_out_commit(o, EIO, why, sizeof why); /* removes the partial file */
        return cli_error("trace", "%s", err.msg);
    }
    if (nbio_out_commit(o, 0, why, sizeof why) != NB_OK)
        return cli_error("trace", "%s", why);
    return 0;
}

int cmd_trace(int argc, char **argv)
{
    const char *at = NULL, *dot = NULL, *svg = NULL, *html = NULL, *show = NULL, *wrt = NULL;
    const char *pos[1];
    bool json = false;
    int n_pos = 0;
    const cli_opt opts[] = {
        {"--at", CLI_STR, &at, 0, 0},
        {"--json", CLI_FLAG, &json, 0, 0},
        {"--dot", CLI_STR, &dot, 0, 0},
        {"--svg", CLI_STR, &svg, 0, 0},
        {"--html", CLI_STR, &html, 0, 0},
        {"--show", CLI_STR, &show, 0, 0},
        {"--wrt", CLI_STR, &wrt, 0, 0},
    };
    int rc = cli_parse("trace", trace_usage, argc, argv, 2, opts, 7, pos, 1, &n_pos);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (n_pos != 1)
        return cli_error("trace", "give one expression (see nabla trace --help)");
    picture pic = {.mode = NB_TRACE_REVERSE};
    if (show && !svg)
        return cli_error("trace", "--show needs --svg");
    if (wrt && !(svg && show && !strcmp(show, "forward")))
        return cli_error("trace", "--wrt needs --svg FILE --show forward");
    if (show && !strcmp(show, "values"))
        pic.mode = NB_TRACE_VALUES;
    else if (show && !strcmp(show, "forward"))
        pic.mode = NB_TRACE_FORWARD;
    else if (show && strcmp(show, "reverse"))
        return cli_error("trace", "--show: '%s' is not values, forward or reverse", CLI_Q(show));
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
    nb_tensor *y = cli_expr_record("trace", &x, pos[0], g, leaves);
    if (!y)
        goto done;
    tr = nb_trace_new(g, y, leaves, x.n, &err);
    if (!tr) {
        cli_error("trace", "%s", err.msg);
        goto done;
    }
    if (wrt && (pic.sweep = cli_expr_var(&x, wrt)) < 0) {
        cli_error("trace", "--wrt: '%s' is not a variable of the expression", CLI_Q(wrt));
        rc = 2;
        goto done;
    }
    char *title = NULL;
    size_t title_len = 0;
    FILE *tf = open_memstream(&title, &title_len);
    if (!tf) {
        cli_error("trace", "out of memory");
        goto done;
    }
    fprintf(tf, "f = ");
    print_formula(tf, pos[0]);
    fprintf(tf, "   at ");
    for (int i = 0; i < x.n; i++)
        fprintf(tf, "%s%s = %g", i ? ", " : "", x.names[i], x.values[i] == 0 ? 0.0 : x.values[i]);
    if (fclose(tf) != 0) {
        free(title);
        cli_error("trace", "out of memory");
        goto done;
    }
    pic.tr = tr;
    pic.title = title;
    rc = svg ? write_picture(svg, &pic) : 0;
    pic.html = true;
    rc = rc == 0 && html ? write_picture(html, &pic) : rc;
    if (rc == 0 && !json)
        printf("%s\n\n", title);
    free(title);
    if (rc != 0)
        goto done;
    rc = 1;
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
