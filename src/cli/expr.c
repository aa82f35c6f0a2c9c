/* Expressions and points given on the command line. */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

int cli_expr_var(const cli_expr *x, const char *name)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->names[i], name))
            return i;
    return -1;
}

int cli_expr_add_unused(const char *cmd, const char *what, cli_expr *x, const char *name)
{
    bool ok =
        (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_';
    for (const char *p = name; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '_';
    if (!ok || strlen(name) >= sizeof x->extra[0]) {
        cli_error(cmd, "%s: '%s' is not a variable name", what, CLI_Q(name));
        return -1;
    }
    if (x->n == CLI_MAX_VARS) {
        cli_error(cmd, "%s: at most %d variables are supported", what, CLI_MAX_VARS);
        return -1;
    }
    int i = x->n++;
    memcpy(x->extra[i], name, strlen(name) + 1);
    x->names[i] = x->extra[i];
    x->values[i] = 0;
    return i;
}

int cli_expr_open(const char *cmd, const char *text, const char *at, cli_expr *x)
{
    return cli_expr_open_ex(cmd, text, at, false, x);
}

int cli_expr_open_ex(const char *cmd, const char *text, const char *at, bool unused_ok, cli_expr *x)
{
    memset(x, 0, sizeof *x);
    x->s = nb_sym_new();
    if (!x->s)
        return cli_error(cmd, "out of memory");
    x->e = nb_sym_parse(x->s, text, strlen(text));
    if (!x->e)
        return cli_error(cmd, "%s", nb_sym_error(x->s)->msg);
    int n = nb_sym_vars(x->s, x->e, x->names, CLI_MAX_VARS);
    if (n < 0)
        return cli_error(cmd, "%s", nb_sym_error(x->s)->msg);
    if (n > CLI_MAX_VARS)
        return cli_error(cmd, "the expression has %d variables; at most %d are supported", n,
                         CLI_MAX_VARS);
    x->n = x->n_used = n;
    bool *given = x->given;
    /* "name=value" pairs separated by commas */
    const char *p = at ? at : "";
    while (*p) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end || eq == p)
            return cli_error(cmd, "--at: expected name=value at '%s'",
                             CLI_QN(p, (size_t)(end - p)));
        char name[64];
        size_t len = (size_t)(eq - p);
        if (len >= sizeof name)
            return cli_error(cmd, "--at: name too long at '%s'", CLI_QN(p, (size_t)(end - p)));
        memcpy(name, p, len);
        name[len] = '\0';
        char num[64], *stop;
        size_t nlen = (size_t)(end - eq - 1);
        if (nlen == 0 || nlen >= sizeof num)
            return cli_error(cmd, "--at: '%s' needs a number", name);
        memcpy(num, eq + 1, nlen);
        num[nlen] = '\0';
        errno = 0;
        double v = strtod(num, &stop);
        if (stop == num || *stop || errno || !isfinite(v))
            return cli_error(cmd, "--at: '%s' is not a finite number (for %s)", num, name);
        int i = cli_expr_var(x, name);
        if (i < 0 && !unused_ok)
            return cli_error(cmd, "--at: '%s' is not a variable of the expression", CLI_Q(name));
        if (i < 0 && (i = cli_expr_add_unused(cmd, "--at", x, name)) < 0)
            return 2;
        if (given[i])
            return cli_error(cmd, "--at: '%s' is given twice", CLI_Q(name));
        given[i] = true;
        x->values[i] = v;
        p = *end ? end + 1 : end;
    }
    for (int i = 0; i < n; i++) /* the expression's variables */
        if (!given[i])
            return cli_error(cmd, "--at: no value for '%s' (give every variable, e.g. %s=1)",
                             x->names[i], x->names[i]);
    return 0;
}

void cli_expr_close(cli_expr *x)
{
    nb_sym_free(x->s);
    x->s = NULL;
}

/* the variables as named f64 scalar leaves that need gradients */
static void make_leaves(cli_expr *x, nb_graph *g, nb_tensor **leaves)
{
    for (int i = 0; i < x->n; i++) {
        leaves[i] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, x->values[i]), true);
        nb_tensor_set_name(leaves[i], x->names[i]);
    }
}

static nb_tensor *built(const char *cmd, cli_expr *x, nb_graph *g, nb_tensor *y)
{
    if (!y) {
        if (nb_graph_status(g) != NB_OK)
            cli_error(cmd, "%s: %s", nb_graph_error(g)->where, nb_graph_error(g)->msg);
        else
            cli_error(cmd, "%s", nb_sym_error(x->s)->msg);
    }
    return y;
}

nb_tensor *cli_expr_build(const char *cmd, cli_expr *x, nb_graph *g, nb_tensor **leaves)
{
    make_leaves(x, g, leaves);
    return built(cmd, x, g, nb_sym_to_graph(g, x->s, x->e, x->n, x->names, leaves));
}

nb_tensor *cli_expr_record(const char *cmd, cli_expr *x, const char *text, nb_graph *g,
                           nb_tensor **leaves)
{
    make_leaves(x, g, leaves);
    return built(cmd, x, g, nb_sym_record(g, x->s, text, strlen(text), x->n, x->names, leaves));
}
