/* An expression from the command line with its point: shared by nabla diff
 * and nabla trace. */
#ifndef NABLA_CLI_EXPR_H
#define NABLA_CLI_EXPR_H

#include "cli.h"

#define CLI_MAX_VARS 32

typedef struct cli_expr {
    nb_sym *s;
    const nb_expr *e;
    int n; /* variables, in name order */
    const char *names[CLI_MAX_VARS];
    double values[CLI_MAX_VARS];
    int n_used;                   /* names[0..n_used) are the expression's */
    bool given[CLI_MAX_VARS];     /* a value came from the point */
    char extra[CLI_MAX_VARS][64]; /* names of the variables it does not use */
} cli_expr;

/* Parse @p text and the point @p at ("x=1,y=2", every variable once).
 * Returns 0, or 2 after printing a one-line error. Free with
 * cli_expr_close (also after an error). */
int cli_expr_open(const char *cmd, const char *text, const char *at, cli_expr *x);
/* The same; with @p unused_ok a name of the point that the expression does
 * not use is added as a variable (after its own) instead of refused. */
int cli_expr_open_ex(const char *cmd, const char *text, const char *at, bool unused_ok,
                     cli_expr *x);
/* Add variable @p name, which the expression does not use, with value 0:
 * its index, or -1 after a one-line error (not a name, too many). */
int cli_expr_add_unused(const char *cmd, const char *what, cli_expr *x, const char *name);
void cli_expr_close(cli_expr *x);

/* Build the expression in g on f64 scalar leaves (named, needing gradients)
 * stored in leaves[0..n). NULL with g's or the pool's error printed. */
nb_tensor *cli_expr_build(const char *cmd, cli_expr *x, nb_graph *g, nb_tensor **leaves);

/* The same, but @p text (the expression's text) recorded as written
 * (nb_sym_record): one primitive per operator, operands in order. */
nb_tensor *cli_expr_record(const char *cmd, cli_expr *x, const char *text, nb_graph *g,
                           nb_tensor **leaves);

/* The index of variable @p name, or -1. */
int cli_expr_var(const cli_expr *x, const char *name);

#endif
