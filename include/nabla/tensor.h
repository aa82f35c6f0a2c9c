/**
 * @file tensor.h
 * @brief Graphs (arenas that own every node), tensors (graph nodes) and
 *        models (named parameters that live outside any graph).
 *
 * Ownership: a tensor made in a graph belongs to it and is freed, with its
 * data and gradient, by nb_graph_reset() or nb_graph_free(). A parameter
 * belongs to its nb_model. Never free a tensor yourself.
 */
#ifndef NABLA_TENSOR_H
#define NABLA_TENSOR_H

#include <stdio.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A computational graph: an arena of tensors and the record of the ops
 *  that produced them. Opaque. One graph must not be used by two threads
 *  at once; two graphs in two threads never interfere. */
typedef struct nb_graph nb_graph;

/** A tensor: dtype, shape (rank <= NB_MAX_RANK), contiguous row-major data,
 *  an optional gradient, and - when an op made it while the graph was
 *  recording - the op and its inputs. Opaque. */
typedef struct nb_tensor nb_tensor;

/** A store of named parameters with their gradients. Opaque. */
typedef struct nb_model nb_model;

/* ------------------------------------------------------------------ graph */

/** New empty graph using malloc. NULL when out of memory. */
NB_API nb_graph *nb_graph_new(void);
/** New empty graph whose every allocation goes through @p alloc (with @p ud).
 *  NULL when @p alloc is NULL or fails. */
NB_API nb_graph *nb_graph_new_alloc(nb_alloc_fn alloc, void *ud);
/** Free every tensor of the graph at once, keep its memory for reuse (a
 *  training loop that resets after each step makes no malloc after the
 *  first), clear the error. Gradients accumulated in model parameters stay.
 *  NULL is accepted. */
NB_API void nb_graph_reset(nb_graph *g);
/** Free the graph and all its tensors. NULL is accepted. */
NB_API void nb_graph_free(nb_graph *g);

/** First error recorded since creation or the last reset/clear (NB_OK if none). */
NB_API nb_status nb_graph_status(const nb_graph *g);
/** The first error: status, where = the op that recorded it ("matmul"),
 *  name = the tensor concerned when one is known (check-finite mode), and
 *  msg = the op and a sentence, e.g. "matmul: [3,4] x [5,2]: inner sizes 4
 *  and 5 differ" ("" when none). For NULL a static error with status
 *  NB_ERR_NULL and msg "no graph". Owned by the graph; valid until the next
 *  reset or clear. */
NB_API const nb_error *nb_graph_error(const nb_graph *g);
/** Forget the recorded error. */
NB_API void nb_graph_clear_error(nb_graph *g);
/** Record an error in @p g as the library's ops do, for code outside the
 *  library (a layer's forward, say): the first error recorded stays;
 *  where = @p where (NULL: ""), msg = "<where>: " and the sentence made
 *  with printf's @p fmt. Returns @p code. */
NB_API nb_status nb_graph_fail(nb_graph *g, nb_status code, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/** Recording on (the default): ops remember their inputs so gradients can
 *  flow. Off: ops compute values only and their results need no gradient. */
NB_API void nb_graph_set_recording(nb_graph *g, bool on);
NB_API bool nb_graph_recording(const nb_graph *g);
/** Check-finite mode: the first op whose result holds a NaN or Inf records
 *  NB_ERR_NONFINITE with its op name and tensor name, and returns NULL. In
 *  the backward pass each op's derivative rule is checked as a whole: the
 *  error names the op, the input and the element ("sqrt: reverse rule for
 *  input 'x' gives Inf at [1]"). Off by default. */
NB_API void nb_graph_set_check_finite(nb_graph *g, bool on);
/** Threads used by large kernels of this graph (1 by default; values < 1
 *  mean 1). Results are identical for every thread count. Matmuls that go
 *  to OpenBLAS run on OpenBLAS's own threads (process-wide:
 *  OPENBLAS_NUM_THREADS or openblas_set_num_threads), whose count can
 *  change the last bits of a product; pin it for bit-identical runs. */
NB_API void nb_graph_set_threads(nb_graph *g, int n);
NB_API int nb_graph_threads(const nb_graph *g);

/** Which code computes a graph's matrix products (nb_matmul and the
 *  matmuls of derivative rules). */
typedef enum nb_matmul_kernel {
    /** The default: the built-in kernel when this CPU runs one of its SIMD
     *  micro-kernels (AVX2 with FMA, or AVX-512; it then matches or beats
     *  OpenBLAS), otherwise CBLAS when the library was built with it;
     *  matrix-vector products go to CBLAS's gemv when the library has it. */
    NB_MATMUL_AUTO = 0,
    NB_MATMUL_BUILTIN = 1, /**< always the built-in kernel */
    NB_MATMUL_CBLAS = 2,   /**< CBLAS when the library has it, else built-in */
} nb_matmul_kernel;
/** Choose the matmul kernel of @p g (unknown values mean NB_MATMUL_AUTO).
 *  Kernels sum in different orders: results agree to rounding, not bits. */
NB_API void nb_graph_set_matmul(nb_graph *g, nb_matmul_kernel k);
/** What a large matrix product of @p g runs on: "cblas", "builtin-avx512",
 *  "builtin-avx2" or "builtin" (the portable C kernel). */
NB_API const char *nb_graph_matmul_name(const nb_graph *g);
/** Number of primitive op evaluations done in this graph since creation or
 *  the last reset (forward, and derivative rules run by the sweeps).
 *  Read it before and after a sweep to see what the sweep cost. */
NB_API uint64_t nb_graph_evals(const nb_graph *g);
/** Bytes of arena memory held by the graph (in use or kept for reuse). */
NB_API size_t nb_graph_bytes(const nb_graph *g);

/** Time spent in one op of a profiled graph (nb_graph_set_profile). */
typedef struct nb_op_profile {
    const char *op;     /**< the op's name (owned by the library; do not free) */
    uint64_t fwd_count; /**< evaluations outside reverse sweeps (forward mode's rules included) */
    double fwd_s;       /**< their wall time in seconds, recording the node included */
    uint64_t bwd_count; /**< nodes of this op whose derivative rule reverse sweeps ran */
    double bwd_s;       /**< wall time of those rules in seconds: the ops they call and the
                             summing of their results into the inputs' gradients */
} nb_op_profile;
/** Profiling on or off (off by default). While on, every op evaluation
 *  (nb_graph_evals' ops, timed as a whole) and every node's derivative
 *  rule in nb_backward / nb_grad is timed and counted under its op's name;
 *  ops a rule calls count as the rule's time, not as evaluations. Costs
 *  two clock reads per op while on, one test per op while off. Turning it
 *  on the first time allocates the table through the graph's hook; it is
 *  kept by nb_graph_reset and emptied by nb_graph_profile_clear. Errors:
 *  NB_ERR_NULL, NB_ERR_NOMEM (profiling stays off). A later op that needs
 *  more room in the table and cannot get it records NB_ERR_NOMEM in g. */
NB_API nb_status nb_graph_set_profile(nb_graph *g, bool on);
/** True while profiling is on (false for NULL). */
NB_API bool nb_graph_profiling(const nb_graph *g);
/** The profile so far: up to @p cap entries, one per op in order of first
 *  use, go to @p out (may be NULL when @p cap is 0). Returns how many ops
 *  there are (may exceed @p cap); 0 for NULL @p g or an empty profile. */
NB_API int nb_graph_profile(const nb_graph *g, nb_op_profile *out, int cap);
/** Empty the profile (profiling stays as it was). NULL is accepted. */
NB_API void nb_graph_profile_clear(nb_graph *g);

/* -------------------------------------------------------------- creating */

/** Tensor of zeros in @p g. @p shape has @p rank entries (may be NULL for
 *  rank 0); every size must be >= 0. Records NB_ERR_RANK / NB_ERR_ARG /
 *  NB_ERR_DTYPE / NB_ERR_NOMEM and returns NULL on failure. */
NB_API nb_tensor *nb_zeros(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape);
NB_API nb_tensor *nb_ones(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape);
NB_API nb_tensor *nb_full(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, double value);
/** Rank-0 tensor holding @p value. */
NB_API nb_tensor *nb_scalar(nb_graph *g, nb_dtype dt, double value);
/** Tensor whose elements are copied from @p data (float for NB_F32, double
 *  for NB_F64, row-major). @p data NULL records NB_ERR_NULL. */
NB_API nb_tensor *nb_tensor_from(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape,
                                 const void *data);
/** Elements drawn uniformly from [lo, hi) with @p rng. */
NB_API nb_tensor *nb_rand_uniform(nb_graph *g, nb_rng *rng, nb_dtype dt, int rank,
                                  const int64_t *shape, double lo, double hi);
/** Elements drawn from N(mean, std^2) with @p rng. */
NB_API nb_tensor *nb_rand_normal(nb_graph *g, nb_rng *rng, nb_dtype dt, int rank,
                                 const int64_t *shape, double mean, double std);

/* ------------------------------------------------------------- accessors */

NB_API nb_dtype nb_tensor_dtype(const nb_tensor *t);
/** Rank, 0..NB_MAX_RANK (-1 for NULL). */
NB_API int nb_tensor_rank(const nb_tensor *t);
/** The @p rank sizes. Owned by the tensor; do not free. */
NB_API const int64_t *nb_tensor_shape(const nb_tensor *t);
/** Size of axis @p axis (negative counts from the end); -1 when out of range. */
NB_API int64_t nb_tensor_dim(const nb_tensor *t, int axis);
/** Number of elements (1 for rank 0; 0 for NULL). */
NB_API int64_t nb_tensor_size(const nb_tensor *t);
/** Element storage (float* or double* by dtype). Writable; writing to a
 *  tensor that a recorded op has used changes what its gradient sees. */
NB_API void *nb_tensor_data(nb_tensor *t);
/** Typed views of the data; NULL when the dtype differs. */
NB_API float *nb_tensor_f32(nb_tensor *t);
NB_API double *nb_tensor_f64(nb_tensor *t);
/** Element @p i (flat, row-major) as a double; NAN when out of range. */
NB_API double nb_tensor_get(const nb_tensor *t, int64_t i);
/** Set element @p i; NB_ERR_ARG when out of range. */
NB_API nb_status nb_tensor_set(nb_tensor *t, int64_t i, double v);
/** The single value of a one-element tensor; NAN otherwise. */
NB_API double nb_tensor_item(const nb_tensor *t);
/** Accumulated gradient (same shape and dtype), or NULL if none yet. */
NB_API nb_tensor *nb_tensor_grad(const nb_tensor *t);
/** Mark a leaf as requiring a gradient (leaves made by nb_zeros etc. do
 *  not by default; parameters do). Turning it off for a model parameter
 *  makes it non-trainable: no gradient reaches it and optimizers skip it
 *  (batch statistics, frozen layers); checkpoints still save it. Returns
 *  @p t (NULL for NULL), so it chains around a constructor. */
NB_API nb_tensor *nb_tensor_set_requires_grad(nb_tensor *t, bool on);
/** True when gradients flow to or through @p t: a leaf marked with
 *  nb_tensor_set_requires_grad, a trainable parameter, or the result of a
 *  differentiable op recorded from such a tensor. False for NULL. */
NB_API bool nb_tensor_requires_grad(const nb_tensor *t);
/** Attach a label shown by printing, graph drawings and error messages.
 *  The text is copied (tensors of a graph: into its arena). */
NB_API nb_tensor *nb_tensor_set_name(nb_tensor *t, const char *name);
/** Label, or "" when none. */
NB_API const char *nb_tensor_name(const nb_tensor *t);
/** Write "name f64[2,3] = [[...],[...]]" to @p f (at most @p max_elems
 *  elements, then "..."; 0 means all). */
NB_API void nb_tensor_print(const nb_tensor *t, FILE *f, int64_t max_elems);
/** Write the shape as "[2,3]" into @p buf (always NUL-terminated). */
NB_API const char *nb_shape_str(int rank, const int64_t *shape, char *buf, size_t n);

/* ----------------------------------------------------------------- model */

/** New empty model (parameter store) using malloc; NULL when out of memory. */
NB_API nb_model *nb_model_new(void);
NB_API nb_model *nb_model_new_alloc(nb_alloc_fn alloc, void *ud);
/** Free the model with its parameters and gradients. NULL is accepted. */
NB_API void nb_model_free(nb_model *m);
/**
 * Add a parameter of zeros named @p name with a zeroed gradient buffer.
 * @p out receives the tensor (owned by the model). Errors: NB_ERR_NULL,
 * NB_ERR_EXISTS (name taken), NB_ERR_RANK, NB_ERR_ARG, NB_ERR_NOMEM.
 */
NB_API nb_status nb_model_add(nb_model *m, const char *name, nb_dtype dt, int rank,
                              const int64_t *shape, nb_tensor **out);
/** The parameter called @p name, or NULL. */
NB_API nb_tensor *nb_model_get(const nb_model *m, const char *name);
/** Number of parameters. */
NB_API int nb_model_count(const nb_model *m);
/** Parameters in the order they were added: pass NULL for the first, the
 *  previous one for the next; NULL at the end. */
NB_API nb_tensor *nb_model_next(const nb_model *m, const nb_tensor *prev);
/** Set every parameter's gradient to zero. */
NB_API void nb_model_zero_grad(nb_model *m);
/** Total number of scalar parameters. */
NB_API int64_t nb_model_numel(const nb_model *m);

#ifdef __cplusplus
}
#endif
#endif
