/**
 * @file modelcheck.h
 * @brief Gradient checking of a whole network against the parameters of
 *        its model: built-in layers and a program's own alike, in f64.
 *        See docs/gradcheck.md ("Checking a whole model").
 *
 * nb_gradcheck checks a function of the tensors it is given, through
 * copies of them. A network reads its parameters from its model (its
 * layers hold pointers to them), so it cannot be checked that way without
 * rewriting it. nb_check_model checks the network as it is:
 *
 *     f(θ) = Σ w ⊙ net(x)      the network in evaluation mode on the batch x,
 *                              w fixed random weights (standard normal,
 *                              drawn from a generator seeded with
 *                              opts.check.seed), θ every trainable parameter
 *
 * The analytic gradient ∂f/∂θ comes from one reverse sweep (nb_grad with
 * the seed w: nothing is accumulated in the parameters' gradients); forward
 * mode gives, per parameter, the directional derivative along a random
 * tangent (nb_jvp); both are compared with central differences taken by
 * moving each entry of the parameters in place and putting it back.
 *
 * @code
 * nb_model_check_result r;
 * if (nb_check_model(net, m, x, NULL, &r) != NB_OK) puts(r.error.msg);
 * else nb_model_check_print(&r, stdout);   // PASSED / FAILED / WARNING
 * @endcode
 */
#ifndef NABLA_MODELCHECK_H
#define NABLA_MODELCHECK_H

#include <stdio.h>

#include "check.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options of nb_check_model; start from nb_model_check_defaults(). */
typedef struct nb_model_check_opts {
    /** Tolerances and step as nb_gradcheck takes them: atol, rtol, eps,
     *  richardson, kinks, and seed (the weights w, the tangents, the
     *  entries drawn); the other fields are not used. */
    nb_check_opts check;
    /** Check a network of f32 parameters on an f64 twin (default true):
     *  the network is described (nb_layer_describe), built again in f64
     *  (nb_layer_from_description with @p defs) in a model of the check's
     *  own, and given the parameters' values by name; it stands in for
     *  the network only when it gives the network's outputs and
     *  derivatives at x up to f32 rounding. When it cannot be made (a
     *  layer that cannot describe itself, a kind not in @p defs) or does
     *  not agree (a description that leaves out part of a forward pass),
     *  the network is checked in its own dtype and result.note says why. */
    bool twin;
    /** The program's own kinds of layers, for the twin (NULL when none). */
    const nb_layer_def *const *defs;
    int n_defs;
    /** Per parameter, check at most this many entries, drawn at random
     *  (seeded); 0 (the default): every entry. */
    int64_t max_entries;
    /** The check's allocations: its graph, the twin and its buffers
     *  (NULL: malloc). */
    nb_alloc_fn alloc;
    void *alloc_ud;
} nb_model_check_opts;

/** nb_check_defaults() (atol 1e-5, rtol 1e-3, kinks accepted, seed 1),
 *  the twin on, every entry, malloc. */
NB_API nb_model_check_opts nb_model_check_defaults(void);

/** Bytes of a parameter name the result holds (its NUL included): every
 *  name a layer gives (under 160 bytes) fits whole. */
#define NB_MODEL_CHECK_NAME_MAX 256

/** One comparison: an entry of a parameter (index >= 0), or a
 *  directional derivative over a whole parameter (index -1). */
typedef struct nb_model_check_entry {
    char param[NB_MODEL_CHECK_NAME_MAX]; /**< the parameter's full name ("" when none) */
    int64_t index;                       /**< flat index in it; -1: along a random tangent */
    double analytic;    /**< reverse mode (an entry) or forward mode (a direction) */
    double numerical;   /**< central difference (Richardson's when asked) */
    double left, right; /**< one-sided differences */
    double abs_err, rel_err;
    double roundoff; /**< bound on the round-off error of the numerical value */
} nb_model_check_entry;

/** What nb_check_model found. */
typedef struct nb_model_check_result {
    nb_error error;                     /**< NB_OK when the check reached a verdict; otherwise
                                             what stopped it, where = "nb_check_model" or the
                                             op or layer that failed on x */
    char detail[512];                   /**< a derivative rule's error ("reverse mode failed:
                                             ..."), or the values that show the network is not
                                             deterministic; "" otherwise */
    bool pass;                          /**< every entry and direction agrees; never with warning */
    nb_check_cause cause;               /**< NB_CHECK_AGREE when pass; NB_CHECK_ZERO with warning */
    bool warning;                       /**< every entry of the Jacobian is exactly zero: nothing
                                             checked depends on the parameters (dead units, a
                                             network that ignores them); not a pass */
    bool reverse_ok, forward_ok;        /**< false also when nothing could be judged */
    nb_dtype dtype;                     /**< the dtype the network was evaluated in */
    bool twin;                          /**< f32 parameters, checked on an f64 twin */
    bool twin_failed;                   /**< f32 parameters, but no twin could be made (or the twin
                                             was turned off): checked in f32, see note */
    char note[512];                     /**< why there is no twin; "" otherwise */
    double atol, rtol;                  /**< tolerances used */
    int n_params;                       /**< trainable parameters checked */
    int64_t n_total;                    /**< their entries */
    int64_t n_entries;                  /**< entries compared (n_total unless max_entries) */
    int64_t n_kinks;                    /**< entries found to be kinks */
    bool kinks_accepted;                /**< kink acceptance was on */
    double value;                       /**< f at the parameters' values */
    nb_model_check_entry worst;         /**< the entry with the largest error/tolerance ratio */
    nb_model_check_entry worst_forward; /**< the worst direction (forward mode) */
    nb_model_check_entry kink;          /**< the first kink, when n_kinks > 0 */
    int64_t evals;                      /**< forward passes of the network */
} nb_model_check_result;

/**
 * Check the network @p net, whose parameters live in @p m, on the batch
 * @p x (a tensor of any graph, the input the network takes) against every
 * trainable parameter of @p m (nb_tensor_requires_grad), as the file
 * comment says. An entry passes when |analytic − numerical| <= atol +
 * rtol·|numerical|; where the one-sided differences disagree at the step
 * and at a sixteenth of it, the entry is a kink and an analytic value
 * between them passes (opts.check.kinks, counted); a direction passes with
 * the per-entry tolerances summed along it. When every entry of the
 * Jacobian (reverse, forward and numerical) is exactly zero the result is
 * a warning, never a pass. @p o may be NULL (defaults).
 *
 * Nothing of @p m changes: every value and gradient is as it was after the
 * check, bit for bit, whatever it returns.
 *
 * Returns r->error.status: NB_OK when a verdict was reached (r->pass,
 * r->warning); NB_ERR_NULL (net, m, x, r); NB_ERR_ARG (bad tolerances, a
 * negative max_entries or n_defs, an empty x, a model without trainable
 * parameters, a network that fails at a moved point); the status of the
 * network's forward pass on x when it fails (NB_ERR_SHAPE for an input of
 * the wrong width, NB_ERR_DTYPE, ...: where and name as the graph
 * recorded them, msg "the network failed on x: ..."); NB_ERR_NONFINITE
 * (the output at x is not finite); NB_ERR_NOMEM.
 */
NB_API nb_status nb_check_model(nb_layer *net, nb_model *m, const nb_tensor *x,
                                const nb_model_check_opts *o, nb_model_check_result *r);

/** Print @p r: the verdict (PASSED, FAILED with its cause, WARNING), the
 *  dtype and twin, counts, the worst entry by parameter name and index,
 *  the worst direction and the first kink. */
NB_API void nb_model_check_print(const nb_model_check_result *r, FILE *f);

#ifdef __cplusplus
}
#endif
#endif
