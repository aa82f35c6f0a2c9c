/* The trace's insides, shared by its writers (table, JSON, SVG, HTML). */
#ifndef NABLA_TEACH_TRACE_H
#define NABLA_TEACH_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "nabla/teach.h"

#define NBT_MAX_IN 8

enum nbt_kind { NBT_INPUT, NBT_CONST, NBT_OP };

typedef struct nbt_tnode {
    nb_tensor *t;
    enum nbt_kind kind;
    char label[48];
    char text[128];   /* the op as in a formula: "w*x", "-h2", "exp(h3)" */
    const char *op;   /* op nodes: the op's name */
    int input;        /* inputs: the index in xs */
    int rank;
    int64_t shape[NB_MAX_RANK];
    int m;            /* elements */
    int n_in;
    int *in;          /* the inputs' node indices */
    double **jac;     /* per input slot: m x m_in, row-major (active op nodes) */
    bool active;      /* depends on an input: has tangents and adjoints */
} nbt_tnode;

/* one edge's share of the reverse sweep: adjoint[to] += J^T adjoint[from] */
typedef struct nbt_step {
    int from, to, slot;
    double *contrib; /* m_to numbers */
    double *after;   /* adjoint[to] after the step */
} nbt_step;

struct nb_trace {
    int n;
    nbt_tnode *nodes;
    int64_t *off; /* where node k's numbers start in value, tangent rows, adjoint */
    int64_t total;
    double *value;
    double *jac_block;
    int n_inputs, sweeps;
    int *sweep_input, *sweep_elem; /* the input element each forward sweep seeds */
    double *tangent;               /* sweeps x total */
    double *adjoint;               /* total: the final adjoints */
    double *adj_mag, *fwd_mag;     /* sums of |terms| of the adjoints (total) and of each
                                      sweep's output tangent (sweeps): the rounding bound */
    int n_steps;
    nbt_step *steps; /* in the reverse sweep's order */
    double *step_nums;
    /* the cost: op nodes evaluated, tangent rules applied over all forward
     * sweeps, adjoint (VJP) rules applied by the reverse sweep */
    int64_t n_ops, rules_forward, rules_reverse;
};

/* v with up to @p digits significant digits, never "-0". */
const char *nbt_num(char *buf, size_t n, double v, int digits);

/* the input element sweep s seeds: "w", or "W[3]" for a larger input */
const char *nbt_sweep_name(const nb_trace *tr, int s, char *buf, size_t n);

/* numbers as JSON (17 digits, null where not finite): one number when
 * @p scalar, else an array */
void nbt_json_nums(FILE *f, const double *v, int m, bool scalar);
/* NB_ERR_IO in @p err when writing @p f failed (after a flush), else NB_OK */
nb_status nbt_finish(FILE *f, nb_error *err, const char *where);

/* @p s as a JSON string (< > & escaped too: safe inside an HTML script) */
void nbt_json_str(FILE *f, const char *s);

/* The table's sections, as nb_trace_print writes them (the page shows
 * them line by line): the evaluation (a heading, one line per op), forward
 * sweep @p s (a heading, one line per op that depends on an input, the
 * derivative), the reverse sweep (a heading, the seed, one line per step). */
void nbt_print_eval(const nb_trace *tr, FILE *f, int unused);
void nbt_print_forward(const nb_trace *tr, FILE *f, int s);
void nbt_print_reverse(const nb_trace *tr, FILE *f, int unused);

#endif
