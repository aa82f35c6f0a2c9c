/**
 * @file check.h
 * @brief Numerical differentiation and gradient checking: the reference
 *        that derivative rules are tested against. See docs/gradcheck.md.
 *
 * A function under test is a callback that builds a graph from its input
 * tensors and returns the output. The checker calls it many times on fresh
 * graphs of its own, so the callback must depend only on its inputs, on
 * @p ctx and on the RNG given in the options (replayed for every call).
 */
#ifndef NABLA_CHECK_H
#define NABLA_CHECK_H

#include <stdio.h>

#include "op.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The function under test: build it in @p g from @p inputs (n of them,
 *  leaves of g) and return its output, or NULL with g's error recorded. */
typedef nb_tensor *(*nb_check_fn)(nb_graph *g, nb_tensor *const *inputs, int n, void *ctx);

/** Options; start from nb_check_defaults() and change what you need. */
typedef struct nb_check_opts {
    double atol;     /**< an entry passes when |analytic - numerical| <= */
    double rtol;     /**< atol + rtol·|numerical| (defaults 1e-5, 1e-3) */
    double eps;      /**< finite-difference step; 0: cbrt(machine eps)·max(1,|x|) */
    bool richardson; /**< Richardson extrapolation of central differences */
    unsigned wrt;    /**< bit i: check input i; 0: all inputs */
    bool fast;       /**< compare vᵀJu only, for random u and v */
    bool shadow;     /**< re-run f32 functions in f64 (default true) */
    bool kinks;      /**< accept analytic values between one-sided differences
                          where those disagree (default true) */
    bool localise;   /**< on failure, re-check each recorded op alone (default true) */
    bool sweep;      /**< on failure, tabulate the error against the step */
    nb_rng *rng;     /**< state the function draws from; restored before every
                          evaluation and left as it was found */
    uint64_t seed;   /**< for fast mode's u, v and nb_gradcheck_op's inputs */
    double lo, hi;   /**< nb_gradcheck_op's random inputs (default [-2, 2]) */
    bool replay;     /**< full mode: evaluate moved points by re-running the
                          recorded ops that depend on the moved input, and
                          forward-mode columns by re-running one recorded
                          tangent sweep, where that reproduces the function
                          and nb_jvp bit for bit (default true) */
} nb_check_opts;

/** The defaults above. */
NB_API nb_check_opts nb_check_defaults(void);

/** One Jacobian entry as the checker saw it. */
typedef struct nb_check_entry {
    int input;           /**< which input (-1: none) */
    char input_name[32]; /**< its label, or "input N" */
    int64_t in_index;    /**< flat index in that input (fast mode: -1) */
    int64_t out_index;   /**< flat index in the output (fast mode: -1) */
    double reverse, forward, numerical;
    double left, right;      /**< one-sided differences */
    double abs_err, rel_err; /**< of the worse of reverse and forward */
    double roundoff;         /**< bound on the round-off error of the numerical value,
                                  from the machine epsilon of the evaluation dtype and
                                  the magnitude of f near the point */
} nb_check_entry;

/** Why a check reached its verdict: exactly one cause per verdict. */
typedef enum nb_check_cause {
    NB_CHECK_AGREE = 0,    /**< passed: every entry within tolerance, or an accepted kink */
    NB_CHECK_MISMATCH = 1, /**< an analytic derivative differs from the numerical one by
                                more than the tolerance plus the differences' round-off */
    NB_CHECK_KINK = 2,     /**< the only disagreements are at kinks, and kink acceptance
                                (opts.kinks) is off */
    NB_CHECK_ROUNDOFF = 3, /**< the only disagreements lie within the round-off of the
                                finite differences (f32 without shadowing, typically): at
                                this tolerance the derivatives cannot be judged */
    NB_CHECK_NOT_DETERMINISTIC = 4, /**< f returns different values at the same point (random
                                         draws outside opts.rng, say): nothing was judged */
    NB_CHECK_RULE_ERROR = 5,        /**< a derivative rule recorded an error (see detail) */
    NB_CHECK_ZERO = 6, /**< a warning, never a pass: every entry of the Jacobian is exactly
                            zero, so nothing checked depends on the inputs given
                            (nb_check_model's; nb_gradcheck does not give it) */
} nb_check_cause;

/** A sentence naming the cause, e.g. "not deterministic: f returns
 *  different values at the same point". Static storage. */
NB_API const char *nb_check_cause_str(nb_check_cause c);

/** Sizes of the step sweep table. */
#define NB_CHECK_SWEEP_MAX 16

/** What a check found. */
typedef struct nb_check_result {
    nb_error error;    /**< status NB_OK when the check ran to a verdict;
                            otherwise what stopped it: where = the op that
                            failed when the function could not be evaluated
                            (as its graph recorded it), else the checker's
                            function ("nb_gradcheck"), and a sentence */
    char detail[512];  /**< with a verdict: a derivative rule's error when a
                            mode failed ("reverse mode failed: sqrt: ..."), or
                            the values that show f is not deterministic; ""
                            otherwise */
    bool pass;         /**< both modes agree with the numerical derivative */
    nb_check_cause cause;        /**< why: NB_CHECK_AGREE when pass, one failure cause otherwise */
    bool reverse_ok, forward_ok; /**< false also when nothing could be judged */
    bool fast;            /**< the verdict is fast mode's */
    bool full_detail;     /**< fast mode failed or met a kink and ran a full
                               check for the details (and the kink verdict) */
    bool shadow;          /**< an f32 function was evaluated in f64 */
    bool shadow_failed;   /**< shadowing was asked for but the function does
                               not run in f64; checked in f32 */
    double atol, rtol;    /**< tolerances used */
    int64_t n_entries;    /**< Jacobian entries compared (fast mode: 1) */
    int64_t n_kinks;      /**< entries found to be kinks (accepted only when kinks_accepted) */
    bool kinks_accepted;  /**< kink acceptance was on (opts.kinks) */
    nb_check_entry worst; /**< the entry with the largest error/tolerance ratio */
    nb_check_entry kink;  /**< the first kink, when n_kinks > 0 */
    int64_t evals;        /**< evaluations: calls of the function or replays (see replays) */
    /* localisation: the first recorded op whose own rule fails */
    bool localised;
    char culprit_op[NB_OP_NAME_MAX + 1];
    char culprit_label[32]; /**< its result's label, if any */
    int64_t culprit_node;   /**< its position in creation order among the
                                 recorded ops of the function */
    nb_check_entry culprit_entry;
    /* step sweep for the worst entry: error against the step size */
    int n_sweep;
    double sweep_h[NB_CHECK_SWEEP_MAX], sweep_err[NB_CHECK_SWEEP_MAX];
    int64_t replays; /**< of evals, those done by replaying the recorded
                          graph instead of calling the function */
} nb_check_result;

/**
 * Check @p f at @p inputs (tensors of any graph or parameters; their values
 * and gradients are not changed): the reverse-mode Jacobian (one VJP per
 * output element) and the forward-mode Jacobian (one JVP per input element)
 * against central differences; or, in fast mode, vᵀJu three ways at the cost
 * of one VJP, one JVP and two evaluations. @p o may be NULL (defaults).
 * Returns r->error.status: NB_OK when a verdict was reached (r->pass says
 * which); NB_ERR_NULL / NB_ERR_ARG / NB_ERR_DTYPE for bad arguments, and
 * NB_ERR_ARG when the function cannot be evaluated (r->error names the op
 * and holds the graph's sentence).
 */
NB_API nb_status nb_gradcheck(nb_check_fn f, void *ctx, nb_tensor *const *inputs, int n,
                              const nb_check_opts *o, nb_check_result *r);

/** Check op @p id alone on random inputs of the given shapes (uniform in
 *  [o->lo, o->hi], seeded by o->seed), f64, with @p attrs (may be NULL).
 *  shapes[i] has ranks[i] entries. Same result as nb_gradcheck. */
NB_API nb_status nb_gradcheck_op(int id, const nb_attrs *attrs, int n, const int *ranks,
                                 const int64_t *const *shapes, const nb_check_opts *o,
                                 nb_check_result *r);

/** Print @p r as a short report: verdict, worst entry, kinks, shadowing,
 *  localisation and the step sweep. */
NB_API void nb_check_print(const nb_check_result *r, FILE *f);

/**
 * Numerical Jacobian of @p f with respect to input @p wrt by central
 * differences (with o's eps and richardson), as a new f64 tensor of @p g
 * shaped shape(y) ++ shape(inputs[wrt]). NULL with g's error recorded on
 * failure.
 */
NB_API nb_tensor *nb_numerical_jacobian(nb_graph *g, nb_check_fn f, void *ctx,
                                        nb_tensor *const *inputs, int n, int wrt,
                                        const nb_check_opts *o);

/** One case of the built-in gradcheck suite. */
typedef struct nb_check_case {
    const char *op;   /**< the primitive it covers */
    const char *what; /**< shapes or variant, e.g. "[3,4]+[4]" */
    int n;            /**< inputs */
    int ranks[3];
    int64_t shapes[3][4];
    double lo, hi; /**< input range */
    unsigned wrt;  /**< inputs checked (0: all) */
    double eps;    /**< step (0: the default) */
    nb_check_fn fn;
} nb_check_case;

/** The built-in suite: every primitive on random inputs, several shape
 *  combinations each, broadcasting included. Library-owned; *n gets the
 *  number of cases. */
NB_API const nb_check_case *nb_check_builtin_cases(int *n);
/** Run case @p c (inputs drawn in f64 from [c->lo, c->hi] with o->seed). */
NB_API nb_status nb_check_run_case(const nb_check_case *c, const nb_check_opts *o,
                                   nb_check_result *r);

#ifdef __cplusplus
}
#endif
#endif
