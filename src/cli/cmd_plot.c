/* nabla plot activations: every activation and its derivative (by reverse
 * mode) as SVG charts, the course notes' figures. */

#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "svg.h"

static const char *plot_usage =
    "usage: nabla plot activations --out DIR [--from A] [--to B]\n"
    "\n"
    "Writes DIR/NAME.svg for every activation: the function and its derivative\n"
    "(computed by reverse mode) on [A, B] (default [-5, 5]). DIR must exist.\n";

enum { POINTS = 401 };

/* f and f' of one activation on xs; 0 or -1 with the graph's error. */
static int curve(nb_graph *g, nb_act act, const double *xs, double *f, double *df)
{
    nb_graph_reset(g);
    int64_t shape[1] = {POINTS};
    nb_tensor *x = nb_tensor_set_requires_grad(nb_tensor_from(g, NB_F64, 1, shape, xs), true);
    nb_act_opts o = nb_act_defaults(act);
    nb_tensor *param = NULL;
    if (nb_act_has_param(act)) /* PReLU's α, learned swish's β at their initial values */
        param = nb_tensor_set_requires_grad(
            nb_scalar(g, NB_F64, act == NB_ACT_PRELU ? o.alpha : o.beta), true);
    nb_tensor *y = nb_activate(g, act, x, &o, param, NULL, false);
    if (!y)
        return -1;
    for (int i = 0; i < POINTS; i++)
        f[i] = nb_tensor_get(y, i);
    if (!nb_tensor_requires_grad(y)) { /* binary step: no gradient by definition */
        memset(df, 0, POINTS * sizeof *df);
        return 0;
    }
    if (nb_backward_seed(g, y, nb_ones(g, NB_F64, 1, shape)) != NB_OK)
        return -1;
    for (int i = 0; i < POINTS; i++)
        df[i] = nb_tensor_get(nb_tensor_grad(x), i);
    return 0;
}

int cmd_plot(int argc, char **argv)
{
    const char *out = NULL, *pos[1];
    double from = -5, to = 5;
    int n_pos = 0;
    const cli_opt opts[] = {
        {"--out", CLI_STR, &out, 0, 0},
        {"--from", CLI_REAL, &from, -1e6, 1e6},
        {"--to", CLI_REAL, &to, -1e6, 1e6},
    };
    int rc = cli_parse("plot", plot_usage, argc, argv, 2, opts, 3, pos, 1, &n_pos);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (n_pos != 1 || strcmp(pos[0], "activations") != 0)
        return cli_error("plot", "what to plot: 'activations' (see nabla plot --help)");
    if (!out)
        return cli_error("plot", "--out DIR is required");
    struct stat st;
    if (stat(out, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error("plot", "--out %s is not a directory", CLI_Q(out));
    if (!(from < to))
        return cli_error("plot", "--from must be below --to");

    double xs[POINTS], f[POINTS], df[POINTS];
    for (int i = 0; i < POINTS; i++)
        xs[i] = from + (to - from) * i / (POINTS - 1);
    nb_graph *g = nb_graph_new();
    if (!g)
        return cli_error("plot", "out of memory");
    int written = 0;
    for (int a = 0; a < NB_ACT_COUNT; a++) {
        nb_act act = (nb_act)a;
        if (act == NB_ACT_MAXOUT)
            continue; /* a max over k inputs: no single-input curve */
        if (curve(g, act, xs, f, df) != 0) {
            cli_error("plot", "%s: %s", nb_act_name(act), nb_graph_error(g)->msg);
            nb_graph_free(g);
            return 1;
        }
        char path[4096], title[96], dname[64];
        snprintf(path, sizeof path, "%s/%s.svg", out, nb_act_name(act));
        snprintf(title, sizeof title, "%s and its derivative", nb_act_name(act));
        snprintf(dname, sizeof dname, "d/dx %s", nb_act_name(act));
        svg_series s[2] = {{nb_act_name(act), POINTS, xs, f, false}, {dname, POINTS, xs, df, true}};
        char why[512];
        if (svg_chart_file(path, title, "x", "", s, 2, why, sizeof why) != 0) {
            cli_error("plot", "%s", why);
            nb_graph_free(g);
            return 2;
        }
        printf("%s\n", path);
        written++;
    }
    nb_graph_free(g);
    fprintf(stderr, "nabla plot: %d charts written to %s\n", written, out);
    return 0;
}
