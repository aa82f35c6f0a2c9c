/**
 * @file op.h
 * @brief Writing new ops: the definition every primitive is made of, a
 *        registry for user-defined ones, and the accessors an op's rules
 *        use. docs/gradcheck.md walks through a complete example.
 *
 * An op is a row of five things: a name and arity, a shape rule, a forward
 * kernel that handles both NB_F32 and NB_F64 results, a VJP rule and a JVP
 * rule. The rules are written with the public primitives of ops.h, so they
 * are recorded like any other computation when a caller asks for higher
 * derivatives. The built-in primitives are rows of exactly this type.
 */
#ifndef NABLA_OP_H
#define NABLA_OP_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Attributes an op keeps in its node besides its inputs: small integers
 * (axes, sizes, flags), one real number, and an index list. Which fields an
 * op uses is up to the op; unused ones are zero. The index list is copied
 * into the graph when the op is recorded, so the caller's array need not
 * outlive the call. @c saved is what a built-in kernel keeps in the node
 * for the op's rules (in the graph's memory, e.g. softmax_xent's row
 * statistics): recording always starts it at NULL, whatever the caller
 * passed.
 */
typedef struct nb_attrs {
    int64_t ints[2 * NB_MAX_RANK];
    double real;
    const int64_t *idx;
    int64_t n_idx;
    void *saved;
} nb_attrs;

/**
 * One op. @p out is the node being recorded: its inputs and attributes are
 * read with nb_op_input / nb_op_attrs.
 *  - shape:   set the result's dtype and shape with nb_op_set_result, or
 *             record an error with nb_op_error and return it;
 *  - forward: fill nb_tensor_data(out) (allocated, uninitialised) from the
 *             inputs; it must handle both dtypes (nb_tensor_dtype(out));
 *  - vjp:     the gradient for input @p i given @p grad_out, the gradient
 *             arriving at out, built from primitives; it must have input i's
 *             shape (a broadcasting op sums its axes back with nb_sum_to(g,
 *             d, nb_tensor_rank(in), nb_tensor_shape(in))). NULL with no
 *             error recorded means zero;
 *  - jvp:     the tangent of out given one tangent per input (zeros for
 *             inputs that have none), built from primitives; NULL with no
 *             error recorded means zero.
 * vjp and jvp NULL: the result carries no gradient (like comparisons).
 */
typedef struct nb_op_def {
    const char *name;
    int arity; /**< number of inputs; -1: one or more */
    nb_status (*shape)(nb_graph *g, nb_tensor *out);
    nb_status (*forward)(nb_graph *g, nb_tensor *out);
    nb_tensor *(*vjp)(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
    nb_tensor *(*jvp)(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
} nb_op_def;

/** Longest op name (bytes, without the terminating NUL). */
#define NB_OP_NAME_MAX 31
/** How many ops can be registered in one process. */
#define NB_MAX_USER_OPS 256

/**
 * Register a new op for the whole process and store its id in @p id. The
 * definition is copied (the name too). Ids of built-in ops come first; a
 * registered op keeps its id until the process ends. Thread-safe.
 * Errors: NB_ERR_NULL (def, id, name, shape or forward missing), NB_ERR_ARG
 * (empty or over-long name, arity < -1, jvp given without vjp or the other
 * way round), NB_ERR_EXISTS (the name is taken, built-in names included),
 * NB_ERR_NOMEM (NB_MAX_USER_OPS already registered).
 */
NB_API nb_status nb_op_register(const nb_op_def *def, int *id);
/** The id of the op named @p name (built-in or registered), or -1. */
NB_API int nb_op_find(const char *name);
/** Number of op ids in use: built-ins plus registered ops (ids 0..count-1). */
NB_API int nb_op_count(void);
/** Name of op @p id, or NULL for an unknown id. */
NB_API const char *nb_op_name(int id);
/** The definition of op @p id (library-owned, do not free), or NULL. */
NB_API const nb_op_def *nb_op_get(int id);
/** Name of the op that produced @p t ("leaf" for inputs and parameters). */
NB_API const char *nb_tensor_op_name(const nb_tensor *t);
/** True when op @p id has derivative rules. */
NB_API bool nb_op_differentiable(int id);

/**
 * Record op @p id applied to @p inputs with @p attrs (may be NULL) in @p g,
 * exactly as the built-in constructors do. Same conventions as ops.h: a NULL
 * input gives NULL quietly, other failures record the graph's error.
 * Unknown ids record NB_ERR_ARG.
 */
NB_API nb_tensor *nb_apply(nb_graph *g, int id, nb_tensor *const *inputs, int n,
                           const nb_attrs *attrs);

/* ---------------------------------------------- for writing an op's rules */

/** Number of inputs of the node @p out. */
NB_API int nb_op_n_inputs(const nb_tensor *out);
/** Input @p i of node @p out (NULL if out of range). */
NB_API nb_tensor *nb_op_input(const nb_tensor *out, int i);
/** Attributes recorded with node @p out. */
NB_API const nb_attrs *nb_op_attrs(const nb_tensor *out);
/** Shape rule helper: set the result's dtype and shape. Checks rank and
 *  size (records NB_ERR_RANK / NB_ERR_SHAPE under the op's name). */
NB_API nb_status nb_op_set_result(nb_graph *g, nb_tensor *out, nb_dtype dt, int rank,
                                  const int64_t *shape);
/** Shape rule helper: the result has input 0's dtype and shape. */
NB_API nb_status nb_op_like_input(nb_graph *g, nb_tensor *out);
/** Shape rule helper: all inputs of one dtype, result of their NumPy
 *  broadcast shape (or a recorded error naming the shapes). */
NB_API nb_status nb_op_broadcast_result(nb_graph *g, nb_tensor *out);
/** Forward helper: the flat index into input @p i of the result element at
 *  flat index @p k under broadcasting (O(rank); the built-in kernels use
 *  faster row plans). */
NB_API int64_t nb_op_bcast_index(const nb_tensor *out, int i, int64_t k);
/** Record an error under the op's name (printf format); returns @p code. */
NB_API nb_status nb_op_error(nb_graph *g, nb_status code, const char *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
