/* nabla diff: one formula differentiated four ways side by side — reverse
 * mode, forward mode, central differences and the symbolic derivative. */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "svg.h"

static const char *diff_usage =
    "usage: nabla diff EXPR --at x=1,y=2 [--wrt x,y] [--json] [--dot FILE]\n"
    "                       [--sweep FILE]\n"
    "\n"
    "Value and gradient of EXPR at the point, by reverse mode, forward mode,\n"
    "central differences and the symbolic derivative (printed), with the\n"
    "size of the recorded tape and of the symbolic expressions.\n"
    "\n"
    "  --at LIST    a value for every variable: name=value,...\n"
    "  --wrt LIST   the variables to differentiate by (default: all)\n"
    "  --json       one JSON object per variable\n"
    "  --dot FILE   the recorded graph, with values and gradients, as Graphviz DOT\n"
    "  --sweep FILE the error of central and forward differences against\n"
    "               reverse mode for steps h = (1e-1 ... 1e-16) * max(1, |x|),\n"
    "               4 a decade: a table, and a log-log chart as SVG in FILE\n"
    "               with the step of the numerical column, cbrt(eps)*max(1, |x|),\n"
    "               marked; an error of exactly 0 is drawn at a floor the legend\n"
    "               names. One variable (--wrt NAME when f has several); with\n"
    "               --json, its object gets \"step\", \"sweep_h\",\n"
    "               \"sweep_central\" and \"sweep_forward\"\n"
    "\n"
    "A variable of --at or --wrt that EXPR does not use has derivative 0 (it\n"
    "is reported as such).\n"
    "\n"
    "Exit status: 0 when the four agree for every variable (reverse, forward\n"
    "and symbolic within 1e-9, central differences within 1e-6, relative to\n"
    "max(1, |value|)); 1 when they do not, with a line naming the method that\n"
    "disagrees; 3 when they agree but f has a kink (one-sided slopes differ)\n"
    "or a jump at the point, so that it has no derivative there: a line says\n"
    "so and the analytic columns show the ops' convention; 2 for bad\n"
    "arguments.\n"
    "\n"
    "EXPR: numbers, variables, + - * / ^, sin cos tan exp ln log sqrt tanh\n"
    "sigmoid abs erf sign, pow(a,b) max(a,b) min(a,b).\n";

static nb_tensor *rebuild(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    cli_expr *x = ctx;
    return nb_sym_to_graph(g, x->s, x->e, n, x->names, in);
}

typedef struct diff_row {
    int var;
    double reverse, forward, numerical, symbolic;
    const char *text; /* the derivative, printed (owned here) */
    int64_t dag;
    double tree;
    const char *verdict; /* agree, unused, disagree, kink, jump */
    char why[320];       /* the line that explains a verdict other than agree */
    double left, right;  /* one-sided slopes (NaN unless computed) */
} diff_row;

enum { REV, FWD, NUM, SYM, N_METHODS };
static const char *const method_names[N_METHODS] = {"reverse", "forward", "numerical", "symbolic"};
#define DIFF_EXACT_TOL 1e-9 /* reverse, forward and symbolic among themselves */
#define DIFF_NUM_TOL 1e-6   /* central differences against the others */

/* a and b within tol relative to max(1, |a|, |b|), plus @p slack (the
 * round-off a difference quotient can carry); equal infinities and two NaNs
 * agree. */
static bool close_to(double a, double b, double tol, double slack)
{
    if (a == b || (isnan(a) && isnan(b)))
        return true;
    return fabs(a - b) <= tol * fmax(1, fmax(fabs(a), fabs(b))) + slack;
}

/* What rounding can put into a value of f near @p a, @p b, @p c: a few
 * units in the last place of the largest (as the gradient checker bounds
 * it). A difference quotient over a step h carries up to 2u/h of it. */
static double roundoff(double a, double b, double c)
{
    double big = fmax(fabs(a), fmax(fabs(b), fabs(c)));
    return isfinite(big) ? 8 * DBL_EPSILON * big : 0;
}

/* The step of the central differences of the numerical column at value v
 * (nb_numerical_jacobian's default, nabla/check.h). */
static double central_step(double v)
{
    return cbrt(DBL_EPSILON) * fmax(1, fabs(v));
}

/* f at the point with variable i moved by dx (NaN when it cannot be evaluated). */
static double f_at(cli_expr *x, int i, double dx)
{
    double v[CLI_MAX_VARS], out = NAN;
    memcpy(v, x->values, sizeof v);
    v[i] += dx;
    if (nb_sym_eval(x->s, x->e, x->n, x->names, v, &out) != NB_OK)
        return NAN;
    return out;
}

/* The verdict of a row: is the point a kink or a jump of f in this
 * variable (then there is no derivative to agree on), and otherwise do the
 * four methods agree, and if not, which one disagrees. */
static void judge(cli_expr *x, double value, diff_row *r)
{
    r->left = r->right = NAN;
    const char *name = x->names[r->var];
    if (r->var >= x->n_used) {
        r->verdict = "unused";
        snprintf(r->why, sizeof r->why, "df/d%s = 0: f does not use %s", name, name);
        return;
    }
    /* one-sided slopes at a sixteenth of the step of the central
     * differences (hc) and at a sixteenth of that: a kink keeps their gap, a
     * jump keeps f(x+h) - f(x-h), a smooth f shrinks both sixteenfold; each
     * beyond what rounding in f can make of them */
    double hc = central_step(x->values[r->var]), h = hc / 16, h2 = h / 16;
    double fm = f_at(x, r->var, -h), fp = f_at(x, r->var, h);
    double fm2 = f_at(x, r->var, -h2), fp2 = f_at(x, r->var, h2);
    double u = roundoff(value, fm, fp);

    double v[N_METHODS] = {r->reverse, r->forward, r->numerical, r->symbolic};
    bool agree[N_METHODS][N_METHODS];
    bool all = true;
    for (int a = 0; a < N_METHODS; a++)
        for (int b = 0; b < N_METHODS; b++) {
            bool num = a == NUM || b == NUM;
            agree[a][b] =
                close_to(v[a], v[b], num ? DIFF_NUM_TOL : DIFF_EXACT_TOL, num ? 2 * u / hc : 0);
            all = all && agree[a][b];
        }
    r->verdict = "agree";
    bool exact_agree = agree[REV][FWD] && agree[REV][SYM] && agree[FWD][SYM];
    if (exact_agree && isfinite(value) && isfinite(fm) && isfinite(fp) && isfinite(fm2) &&
        isfinite(fp2)) {
        r->left = (value - fm) / h;
        r->right = (fp - value) / h;
        double gap = fabs(r->right - r->left), gap2 = fabs((fp2 - value) / h2 - (value - fm2) / h2);
        double jump = fabs(fp - fm), jump2 = fabs(fp2 - fm2);
        if (jump > DIFF_NUM_TOL * fmax(1, fabs(value)) + 2 * u && jump2 > 0.5 * jump) {
            r->verdict = "jump";
            snprintf(r->why, sizeof r->why,
                     "df/d%s: f jumps at %s = %.17g (within %.2g: from %.17g to %.17g): no "
                     "derivative here; reverse, forward and symbolic give %.17g by the ops' "
                     "convention",
                     name, name, x->values[r->var], h2, fm2, fp2, r->reverse);
            return;
        }
        if (gap > DIFF_NUM_TOL * fmax(1, fmax(fabs(r->left), fabs(r->right))) + 4 * u / h &&
            gap2 > 0.5 * gap) {
            r->verdict = "kink";
            snprintf(r->why, sizeof r->why,
                     "df/d%s: kink at %s = %.17g (within %.2g): slope %.17g from the left, "
                     "%.17g from the right; no derivative here; reverse, forward and symbolic "
                     "give %.17g by the ops' convention",
                     name, name, x->values[r->var], h2, r->left, r->right, r->reverse);
            return;
        }
    }

    if (all)
        return;
    /* the method the other three agree with each other against */
    r->verdict = "disagree";
    for (int m = 0; m < N_METHODS; m++) {
        bool others = true;
        for (int a = 0; a < N_METHODS; a++)
            for (int b = 0; b < N_METHODS; b++)
                others = others && (a == m || b == m || agree[a][b]);
        if (others) {
            int ref = m == REV ? FWD : REV;
            snprintf(r->why, sizeof r->why,
                     "df/d%s: %s gives %.17g, the other three %.17g: %s disagrees beyond %g "
                     "(relative)",
                     name, method_names[m], v[m], v[ref], method_names[m],
                     m == NUM || ref == NUM ? DIFF_NUM_TOL : DIFF_EXACT_TOL);
            return;
        }
    }
    snprintf(r->why, sizeof r->why,
             "df/d%s: the methods disagree: reverse %.17g, forward %.17g, numerical %.17g, "
             "symbolic %.17g",
             name, v[REV], v[FWD], v[NUM], v[SYM]);
}

/* The step sweep: h = (1e-1 ... 1e-16) * max(1, |x|), SWEEP_PER_DECADE
 * steps a decade (scaled as central_step is). */
enum { SWEEP_PER_DECADE = 4, SWEEP_N = 15 * SWEEP_PER_DECADE + 1 };

typedef struct diff_sweep {
    double h[SWEEP_N], central[SWEEP_N], forward[SWEEP_N]; /* |quotient - exact| */
    double step, step_err; /* the numerical column's step and its error */
    double floor;          /* where an error of 0 is drawn on the log axis */
    bool zeros;            /* some error is exactly 0 */
} diff_sweep;

/* The errors of central and forward differences in variable @p var against
 * @p exact (reverse mode) for every step of the sweep; @p numerical is the
 * numerical column, central differences at central_step. */
static void sweep_errors(cli_expr *x, int var, double exact, double numerical, diff_sweep *w)
{
    double f0 = f_at(x, var, 0), least = INFINITY, scale = fmax(1, fabs(x->values[var]));
    w->zeros = false;
    for (int j = 0; j < SWEEP_N; j++) {
        double h = pow(10, -1 - (double)j / SWEEP_PER_DECADE) * scale;
        double fp = f_at(x, var, h), fm = f_at(x, var, -h);
        w->h[j] = h;
        w->central[j] = fabs((fp - fm) / (2 * h) - exact);
        w->forward[j] = fabs((fp - f0) / h - exact);
        for (int k = 0; k < 2; k++) {
            double e = k ? w->forward[j] : w->central[j];
            w->zeros = w->zeros || e == 0;
            if (e > 0)
                least = fmin(least, e);
        }
    }
    w->step = central_step(x->values[var]);
    w->step_err = fabs(numerical - exact);
    w->zeros = w->zeros || w->step_err == 0;
    if (w->step_err > 0)
        least = fmin(least, w->step_err);
    /* a decade below the least error (or below eps when none is above 0) */
    if (!isfinite(least))
        least = DBL_EPSILON * fmax(1, fabs(exact));
    w->floor = pow(10, floor(log10(least)) - 1);
}

/* The sweep as a log-log chart in @p path: 0, or 2 with the error printed. */
static int sweep_chart(const char *path, const diff_sweep *w, const char *f, const char *var,
                       double at)
{
    double c[SWEEP_N], fw[SWEEP_N]; /* errors of 0 at the floor */
    for (int j = 0; j < SWEEP_N; j++) {
        c[j] = w->central[j] == 0 ? w->floor : w->central[j];
        fw[j] = w->forward[j] == 0 ? w->floor : w->forward[j];
    }
    char title[160], mark[96], note[64], why[512];
    snprintf(title, sizeof title, "d/d%s of %s at %s = %g: error against the step", var, CLI_Q(f),
             var, at);
    snprintf(mark, sizeof mark, "nabla's step h = %.3g", w->step);
    snprintf(note, sizeof note, "an error of 0 is drawn at %g", w->floor);
    svg_series s[2] = {{"central differences", SWEEP_N, w->h, c, false},
                       {"forward differences", SWEEP_N, w->h, fw, true}};
    svg_mark m = {w->step, w->step_err == 0 ? w->floor : w->step_err, mark};
    svg_opts o = {
        .log_x = true, .log_y = true, .marks = &m, .n_marks = 1, .note = w->zeros ? note : NULL};
    if (svg_plot_file(path, title, "step h", "|difference quotient - reverse mode|", s, 2, &o, why,
                      sizeof why) != 0)
        return cli_error("diff", "%s", why);
    return 0;
}

/* The least error of a sweep and its step, as "%.3g at h = %.3g" ("none"
 * when no error is a number). */
static void sweep_least(const diff_sweep *w, const double *err, char *buf, size_t n)
{
    int best = -1;
    for (int j = 0; j < SWEEP_N; j++)
        if (!isnan(err[j]) && (best < 0 || err[j] < err[best]))
            best = j;
    if (best < 0)
        snprintf(buf, n, "none");
    else
        snprintf(buf, n, "%.3g at h = %.3g", err[best], w->h[best]);
}

/* The sweep as a table. */
static void sweep_print(const diff_sweep *w, const char *var, double exact, const char *path)
{
    printf("\nstep sweep of df/d%s against reverse mode (%.17g):\n%-10s %-10s %-10s\n", var, exact,
           "h", "central", "forward");
    for (int j = 0; j < SWEEP_N; j++)
        printf("%-10.2e %-10.3e %-10.3e\n", w->h[j], w->central[j], w->forward[j]);
    char bc[64], bf[64];
    sweep_least(w, w->central, bc, sizeof bc);
    sweep_least(w, w->forward, bf, sizeof bf);
    printf("nabla's step h = %.3g (cbrt(eps)*max(1, |%s|)): central error %.3g\n"
           "least error: central %s, forward %s\nchart written to %s\n",
           w->step, var, w->step_err, bc, bf, path);
}

int cmd_diff(int argc, char **argv)
{
    const char *at = NULL, *wrt = NULL, *dot = NULL, *sweep = NULL, *pos[1];
    bool json = false;
    int n_pos = 0;
    const cli_opt opts[] = {
        {"--at", CLI_STR, &at, 0, 0},
        {"--wrt", CLI_STR, &wrt, 0, 0},
        {"--json", CLI_FLAG, &json, 0, 0},
        {"--dot", CLI_STR, &dot, 0, 0},
        {"--sweep", CLI_STR, &sweep, 0, 0},
    };
    int rc = cli_parse("diff", diff_usage, argc, argv, 2, opts, 5, pos, 1, &n_pos);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (n_pos != 1)
        return cli_error("diff", "give one expression (see nabla diff --help)");
    cli_expr x;
    rc = cli_expr_open_ex("diff", pos[0], at, true, &x);
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
        char *list = strdup(wrt), *tok = list; /* any length, no element empty */
        if (!list) {
            cli_expr_close(&x);
            return cli_error("diff", "out of memory");
        }
        for (char *next; tok; tok = next) {
            next = strchr(tok, ',');
            if (next)
                *next++ = '\0';
            int i = *tok ? cli_expr_var(&x, tok) : -1;
            if (*tok && i < 0) /* not used by f: its derivative is 0 */
                i = cli_expr_add_unused("diff", "--wrt", &x, tok);
            else if (!*tok)
                cli_error("diff", "--wrt: an empty name in '%s'", CLI_Q(wrt));
            if (i < 0) {
                free(list);
                cli_expr_close(&x);
                return 2;
            }
            want[i] = true;
        }
        free(list);
    }

    int n_want = 0;
    for (int i = 0; i < x.n; i++)
        n_want += want[i];
    if (sweep && n_want != 1) {
        cli_expr_close(&x);
        return cli_error("diff", "--sweep: one variable at a time: give --wrt NAME (f has %d)",
                         n_want);
    }

    nb_graph *g = nb_graph_new();
    nb_tensor *leaves[CLI_MAX_VARS];
    diff_sweep sw;
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
    bool has_grad = nb_tensor_requires_grad(y);
    if (has_grad && nb_backward(g, y) != NB_OK) {
        cli_error("diff", "reverse mode: %s", nb_graph_error(g)->msg);
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
            cli_error("diff", "forward mode: %s", nb_graph_error(g)->msg);
            goto done;
        }
        r->forward = nb_tensor_item(yt);
        nb_tensor *jac = nb_numerical_jacobian(g, rebuild, &x, leaves, x.n, i, NULL);
        r->numerical = jac ? nb_tensor_item(jac) : NAN;
        nb_graph_clear_error(g);
        const nb_expr *d = nb_sym_diff(x.s, x.e, x.names[i]);
        if (!d) {
            cli_error("diff", "symbolic: %s", nb_sym_error(x.s)->msg);
            goto done;
        }
        nb_sym_eval(x.s, d, x.n, x.names, x.values, &r->symbolic);
        r->dag = nb_sym_dag_size(x.s, d);
        r->tree = nb_sym_tree_size(d);
        const char *text = nb_sym_str(x.s, d);
        r->text = strdup(text ? text : "(too long to print)");
        judge(&x, value, r);
    }

    if (sweep) {
        sweep_errors(&x, rows[0].var, rows[0].reverse, rows[0].numerical, &sw);
        const char *ftext = nb_sym_str(x.s, x.e);
        if (sweep_chart(sweep, &sw, ftext ? ftext : pos[0], x.names[rows[0].var],
                        x.values[rows[0].var]) != 0) {
            rc = 2;
            goto done;
        }
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
            cli_json_str_field("verdict", r->verdict);
            cli_json_num_field("left", r->left);
            cli_json_num_field("right", r->right);
            printf(", \"tape_ops\": %llu, \"dag_nodes\": %lld, \"tree_nodes\": %.0f",
                   (unsigned long long)tape, (long long)r->dag, r->tree);
            if (sweep) {
                cli_json_num_field("step", sw.step);
                const char *keys[3] = {"sweep_h", "sweep_central", "sweep_forward"};
                const double *vals[3] = {sw.h, sw.central, sw.forward};
                for (int a = 0; a < 3; a++) {
                    printf(", \"%s\": [", keys[a]);
                    for (int j = 0; j < SWEEP_N; j++) {
                        printf(j ? ", " : "");
                        cli_json_num(stdout, vals[a][j]);
                    }
                    printf("]");
                }
            }
            printf("}\n");
        }
    } else {
        const char *ftext = nb_sym_str(x.s, x.e);
        printf("f = %s\nat ", ftext ? ftext : pos[0]);
        int shown = 0;
        for (int i = 0; i < x.n; i++)
            if (x.given[i])
                printf("%s%s = %.17g", shown++ ? ", " : "", x.names[i], x.values[i]);
        printf("%s\n\nvalue %.17g\n", shown ? "" : "(no variables)", value);
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
            printf("\n");
            bool quiet = true;
            for (int k = 0; k < n_rows; k++)
                if (rows[k].why[0]) {
                    printf("%s\n", rows[k].why);
                    quiet = quiet && !strcmp(rows[k].verdict, "unused");
                }
            if (quiet)
                printf("all four agree (within %g, numerical within %g, relative)\n",
                       DIFF_EXACT_TOL, DIFF_NUM_TOL);
        }
        if (sweep)
            sweep_print(&sw, x.names[rows[0].var], rows[0].reverse, sweep);
    }
    /* disagreement first: it is 1 even where another variable has a kink */
    int verdict = 0;
    for (int k = 0; k < n_rows; k++) {
        if (!strcmp(rows[k].verdict, "disagree"))
            verdict = 1;
        else if (verdict == 0 &&
                 (!strcmp(rows[k].verdict, "kink") || !strcmp(rows[k].verdict, "jump")))
            verdict = 3;
    }
    if (json)
        for (int k = 0; k < n_rows; k++)
            if (rows[k].why[0] && strcmp(rows[k].verdict, "unused"))
                fprintf(stderr, "nabla diff: %s\n", rows[k].why);
    if (dot) {
        char why[512];
        if (svg_dot_file(dot, g, y, why, sizeof why) != 0) {
            cli_error("diff", "%s", why);
            rc = 2;
            goto done;
        }
    }
    rc = verdict;
done:
    for (int k = 0; k < n_rows; k++)
        free((void *)rows[k].text);
    nb_graph_free(g);
    cli_expr_close(&x);
    return rc;
}
