/**
 * @file autodiff.h
 * @brief Reverse mode (gradients, vector-Jacobian products), forward mode
 *        (tangents, Jacobian-vector products) and full Jacobians, all over
 *        the graph recorded by the ops.
 */
#ifndef NABLA_AUTODIFF_H
#define NABLA_AUTODIFF_H

#include <stdio.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Backpropagate from the one-element tensor @p y with seed 1: every leaf
 * and parameter that needs a gradient and that @p y depends on gets
 * dy/dleaf added to its gradient (nb_tensor_grad). Gradients of graph
 * leaves live until the graph is reset; those of parameters in the model.
 * A linear op's weight gradient is accumulated straight into the
 * parameter's gradient by the product (docs/autodiff.md).
 * Errors: NB_ERR_NULL, NB_ERR_SHAPE (y has more than one element: use
 * nb_backward_seed), NB_ERR_GRAPH (y is not of g), NB_ERR_NOMEM, and any
 * error a derivative rule records; also recorded in the graph.
 */
NB_API nb_status nb_backward(nb_graph *g, nb_tensor *y);
/** As nb_backward with the seed @p seed (same shape and dtype as y): adds
 *  seed^T · dy/dleaf, a vector-Jacobian product. */
NB_API nb_status nb_backward_seed(nb_graph *g, nb_tensor *y, nb_tensor *seed);

/**
 * Functional gradients: out[i] = d<seed, y>/d xs[i] for i < n, as new tensors
 * of @p g (zeros where y does not depend on xs[i]); nothing is accumulated.
 * @p seed may be NULL when y has one element. With @p create_graph the
 * backward pass is itself recorded, so out[i] can be differentiated again
 * (Hessian-vector products, second derivatives).
 * xs[i] may be any recorded tensor, leaves or intermediates.
 */
NB_API nb_status nb_grad(nb_graph *g, nb_tensor *y, nb_tensor *seed, nb_tensor *const *xs, int n,
                         nb_tensor **out, bool create_graph);

/**
 * Forward mode: walk the recorded graph of @p y in creation order with each
 * op's tangent rule, starting from tangents[i] at xs[i] (same shape and
 * dtype), and store dy = J·t in @p y_tangent (a new tensor of @p g; zeros
 * when y does not depend on any xs[i]). Inputs not listed have tangent 0.
 */
NB_API nb_status nb_jvp(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, nb_tensor *const *tangents,
                        int n, nb_tensor **y_tangent);

/** How nb_jacobian builds a Jacobian. */
typedef enum nb_jacobian_mode {
    /** The cheaper of the two: forward when x has fewer elements than y,
     *  reverse otherwise. */
    NB_JACOBIAN_AUTO = 0,
    NB_JACOBIAN_FORWARD = 1, /**< column by column: one forward sweep per element of x */
    NB_JACOBIAN_REVERSE = 2, /**< row by row: one reverse sweep per element of y */
} nb_jacobian_mode;

/**
 * Full Jacobian dy/dx as a tensor of shape shape(y) ++ shape(x) in y's dtype,
 * built in @p mode. Read nb_graph_evals before and after to see the cost of
 * each mode. Records an error and returns NULL on failure: NB_ERR_ARG (a
 * @p mode that is not one of nb_jacobian_mode's values), NB_ERR_NULL,
 * NB_ERR_GRAPH (y or x not of g), NB_ERR_RANK (the Jacobian's rank would
 * exceed NB_MAX_RANK), and any error of the sweeps.
 */
NB_API nb_tensor *nb_jacobian(nb_graph *g, nb_tensor *y, nb_tensor *x, nb_jacobian_mode mode);

/**
 * The recorded graph of @p y in evaluation order (every tensor before the
 * ops that use it; leaves and constants included, y last): up to @p cap
 * tensors go to @p out. Returns how many there are (may exceed @p cap), or
 * -1 with g's error recorded. Read each node with nb_tensor_op_name,
 * nb_op_n_inputs, nb_op_input and nb_op_attrs (op.h) — for teaching tools
 * and tracers.
 */
NB_API int64_t nb_graph_nodes(nb_graph *g, nb_tensor *y, nb_tensor **out, int64_t cap);

/**
 * Write the recorded graph of @p y as Graphviz DOT text to @p f: one box per
 * tensor (label, op, dtype, shape, value — all numbers up to four elements,
 * else min/mean/max — and gradient: a leaf's accumulated one, or what the
 * latest reverse sweep left in an intermediate), one edge per input,
 * numbered by input position. Leaves are shaded; tensors that carry no
 * gradient are grey. Render with `dot -Tsvg`. Errors: NB_ERR_NULL,
 * NB_ERR_GRAPH, NB_ERR_IO (a write failed), also recorded in g.
 */
NB_API nb_status nb_graph_dot(nb_graph *g, nb_tensor *y, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
