/**
 * @file teach.h
 * @brief The trace of a small recorded graph, for teaching forward and
 * reverse mode: the evaluation node by node, one forward sweep per input
 * element (tangents), the reverse sweep (adjoints accumulated edge by edge),
 * printed as a table, written as JSON, and drawn (SVG, or an HTML page
 * that steps through the sweeps).
 *
 * @code
 * nb_tensor *x = nb_tensor_set_name(nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 1), true), "x");
 * nb_tensor *y = nb_mul(g, nb_sin(g, x), x);
 * nb_error err;
 * nb_trace *tr = nb_trace_new(g, y, &x, 1, &err);
 * if (!tr)
 *     fprintf(stderr, "%s\n", err.msg);
 * nb_trace_print(tr, stdout, NULL);
 * nb_trace_free(tr);
 * @endcode
 *
 * Nodes are named as the course notes name them: inputs by their tensor
 * names (x1, x2, ... for unnamed ones), op results h1, h2, ... in
 * evaluation order, scalar constants by their value and other constants
 * c1, c2, .... Every op node is re-evaluated on fresh f64 leaves to get its
 * local derivatives (the Jacobian of each input edge), and the sweeps are
 * then run from those by plain arithmetic, so each number the table shows
 * is a local derivative times an upstream number; the results are checked
 * against the library's own nb_grad and nb_jvp on the graph, and a
 * disagreement is an error.
 */
#ifndef NABLA_TEACH_H
#define NABLA_TEACH_H

#include <stdio.h>

#include "nabla/autodiff.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The largest graph a trace follows (tensors, leaves included). */
#define NB_TRACE_MAX_NODES 4096
/** The largest tensor in a traced graph (elements). */
#define NB_TRACE_MAX_NUMEL 256
/** The most input elements, and so forward sweeps, a trace runs. */
#define NB_TRACE_MAX_SWEEPS 256
/** The largest graph the pictures draw (tensors); larger ones are refused
 *  with a message that suggests nb_graph_dot. */
#define NB_TRACE_MAX_DRAWN 200

typedef struct nb_trace nb_trace;

/**
 * Trace the graph of the one-element tensor @p y with respect to the inputs
 * @p xs[0..n) (tensors of @p g that y depends on or not; leaves or
 * intermediates are both fine, an intermediate input is then treated as a
 * leaf). Returns NULL with @p err filled (it may be NULL): NB_ERR_NULL,
 * NB_ERR_SHAPE (y has more than one element), NB_ERR_ARG (n < 1, an input
 * listed twice, more than NB_TRACE_MAX_SWEEPS input elements, a tensor
 * larger than NB_TRACE_MAX_NUMEL, more than NB_TRACE_MAX_NODES tensors),
 * NB_ERR_NOMEM, the graph's own errors, and NB_ERR_INTERNAL when the
 * trace's numbers disagree with nb_grad or nb_jvp (a derivative rule that
 * is wrong). The graph is not changed (no gradients accumulate).
 */
NB_API nb_trace *nb_trace_new(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, int n,
                              nb_error *err);
NB_API void nb_trace_free(nb_trace *tr);

/** Tensors the trace holds (leaves, constants and op results). */
NB_API int nb_trace_nodes(const nb_trace *tr);
/** The name of node @p k ("h3", "x", "1"), or NULL out of range. */
NB_API const char *nb_trace_label(const nb_trace *tr, int k);
/** Forward sweeps the trace ran: one per input element. */
NB_API int nb_trace_sweeps(const nb_trace *tr);

/**
 * Print the trace as a table: the evaluation trace (one row per op, the
 * op written as in the formula: h1 = w*x, h3 = -h2), each forward sweep
 * (rows `dh1/dw = ∂h1/∂w·dw/dw + ∂h1/∂x·dx/dw = 1·1 + 0·0 = 1`), and the
 * reverse sweep (rows `ḡ_b += ∂h2/∂b·ḡ_h2`), then the gradient. Numbers
 * are printed with up to 10 significant digits and never as -0. Errors:
 * NB_ERR_NULL, NB_ERR_IO (a write failed), in @p err (may be NULL).
 */
NB_API nb_status nb_trace_print(const nb_trace *tr, FILE *f, nb_error *err);

/**
 * The same rows as JSON, one object a line: {"sweep": "eval", "node",
 * "op", "inputs", "value"}, {"sweep": "forward", "wrt", "node", "locals",
 * "tangent"}, {"sweep": "reverse", "to", "from", "local", "adjoint_from",
 * "adjoint_to"}; numbers with 17 significant digits, tensors as flat
 * arrays (row-major). Errors as nb_trace_print.
 */
NB_API nb_status nb_trace_json(const nb_trace *tr, FILE *f, nb_error *err);

/** What a picture shows beside the values. */
typedef enum nb_trace_mode {
    NB_TRACE_VALUES = 0,  /**< the evaluation: values only */
    NB_TRACE_FORWARD = 1, /**< one forward sweep: tangents, local derivatives on the edges */
    NB_TRACE_REVERSE = 2, /**< the reverse sweep: adjoints, local derivatives on the edges */
} nb_trace_mode;

/**
 * Draw the graph as a standalone SVG picture (for slides): laid out left
 * to right by nabla itself (no Graphviz), one box per tensor named as in the
 * table, with its op as written and its value, and in @p mode
 * NB_TRACE_FORWARD the tangents of forward sweep @p sweep (0-based, in
 * input order) or in NB_TRACE_REVERSE the adjoints; the edges carry their
 * local derivatives. Errors (in @p err, may be NULL): NB_ERR_NULL,
 * NB_ERR_ARG (a mode or sweep out of range; a graph of more than
 * NB_TRACE_MAX_DRAWN tensors, with a message that suggests nb_graph_dot),
 * NB_ERR_NOMEM, NB_ERR_IO.
 */
NB_API nb_status nb_trace_svg(const nb_trace *tr, FILE *f, nb_trace_mode mode, int sweep,
                              nb_error *err);

/**
 * Write one self-contained HTML page (inline SVG, style and script; a
 * content security policy that lets it load nothing else) that steps
 * through the evaluation node by node, a forward sweep for a chosen input
 * (each node's tangent, each edge's local derivative) and the reverse sweep
 * edge by edge (adjoint += local · upstream, fan-out sums shown), beside the
 * table nb_trace_print prints with the current row marked, and the cost of
 * each mode. The step is in the URL (`#mode=reverse&step=7`,
 * `#mode=forward&wrt=w&step=3`); the arrow keys step. @p title may be NULL.
 * Errors as nb_trace_svg.
 */
NB_API nb_status nb_trace_html(const nb_trace *tr, FILE *f, const char *title, nb_error *err);

#ifdef __cplusplus
}
#endif
#endif
