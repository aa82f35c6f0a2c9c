/**
 * @file optim.h
 * @brief Optimizers (SGD, momentum, Nesterov, Adam, AdamW, RMSprop,
 *        Adagrad), gradient clipping by global norm and learning-rate
 *        schedules.
 *
 * An optimizer updates the parameters of an nb_model from their gradients.
 * It keeps its state (velocities, moment estimates, a step count) per
 * parameter name, created the first time it meets a parameter, so
 * parameters added to the model later get fresh state. After the first
 * step on a model, steps make no allocation.
 *
 * A parameter takes part in a step when it requires a gradient
 * (nb_tensor_requires_grad) and has a gradient buffer. Updates are done in the
 * parameter's dtype: f32 parameters keep f32 state and f32 arithmetic,
 * f64 parameters f64; scalar hyperparameters are rounded to that dtype.
 *
 * Notation (docs/optim.md has the full text): w a parameter, g its
 * gradient (after clipping), t = 1, 2, ... the parameter's own update
 * count, lr the scheduled learning rate of the step, wd the weight decay.
 *
 * @code
 * nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAM);
 * o.lr = 1e-3;
 * nb_optim *opt = nb_optim_new(&o);
 * for (...) {                      // one training step
 *     nb_model_zero_grad(model);
 *     loss = ...; nb_backward(g, loss);
 *     nb_optim_step(opt, model);
 *     nb_graph_reset(g);
 * }
 * nb_optim_free(opt);
 * @endcode
 */
#ifndef NABLA_OPTIM_H
#define NABLA_OPTIM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An optimizer with its per-parameter state. Opaque. */
typedef struct nb_optim nb_optim;

/** Update rules. Values are stable (they are stored in checkpoints). */
typedef enum nb_optim_kind {
    NB_OPTIM_SGD = 0,      /**< d = g + wd·w;  w -= lr·d */
    NB_OPTIM_MOMENTUM = 1, /**< d = g + wd·w;  v = μ·v + d;  w -= lr·v */
    NB_OPTIM_NESTEROV = 2, /**< d = g + wd·w;  v = μ·v + d;  w -= lr·(d + μ·v) */
    NB_OPTIM_ADAM = 3,     /**< d = g + wd·w (L2, coupled); Adam on d */
    NB_OPTIM_ADAMW = 4,    /**< w -= lr·wd·w (decoupled); Adam on g */
    NB_OPTIM_RMSPROP = 5,  /**< d = g + wd·w;  s = α·s + (1-α)·d²;  w -= lr·d/(sqrt(s) + eps)
                                (with momentum and centered as PyTorch's RMSprop) */
    NB_OPTIM_ADAGRAD = 6,  /**< d = g + wd·w;  s += d²;
                                w -= lr/(1 + (t-1)·lr_decay) · d/(sqrt(s) + eps) */
} nb_optim_kind;

/** Learning-rate schedules. Values are stable. */
typedef enum nb_sched_kind {
    NB_SCHED_CONSTANT = 0, /**< lr(t) = lr */
    NB_SCHED_STEP = 1,     /**< lr(t) = lr · gamma^floor(t / step_size) */
    NB_SCHED_COSINE = 2,   /**< lr(t) = min_lr + (lr - min_lr)·(1 + cos(π·min(t,T)/T))/2 */
} nb_sched_kind;

/**
 * A learning-rate schedule: the learning rate at position t = 0, 1, 2, ...
 * The position counts optimizer steps, or epochs when @c per_epoch is set
 * (then nb_optim_next_epoch() advances it).
 */
typedef struct nb_schedule {
    nb_sched_kind kind;
    int64_t step_size; /**< NB_SCHED_STEP: positions per decay (>= 1) */
    double gamma;      /**< NB_SCHED_STEP: factor per decay, in (0, 1] */
    int64_t period;    /**< NB_SCHED_COSINE: T, positions from lr to min_lr (>= 1) */
    double min_lr;     /**< NB_SCHED_COSINE: floor reached at t >= T (0 <= min_lr <= lr) */
    bool per_epoch;    /**< position advanced by nb_optim_next_epoch, not by steps */
} nb_schedule;

/** Optimizer options. Start from nb_optim_defaults() and change fields. */
typedef struct nb_optim_opts {
    nb_optim_kind kind;
    double lr;           /**< base learning rate, finite and >= 0 */
    double momentum;     /**< μ of MOMENTUM, NESTEROV and RMSPROP (0: none), in [0, 1) */
    double beta1;        /**< Adam(W) first-moment decay, in [0, 1) */
    double beta2;        /**< Adam(W) second-moment decay, in [0, 1) */
    double eps;          /**< Adam(W), RMSprop, Adagrad denominator term, finite and > 0 */
    double weight_decay; /**< wd, finite and >= 0 (coupled except for AdamW) */
    double clip_norm;    /**< > 0: scale gradients so their global norm is at most this; 0: off */
    double alpha;        /**< RMSprop smoothing constant α of the squared gradients, in [0, 1) */
    bool centered;       /**< RMSprop: divide by sqrt(s - ḡ²), ḡ the gradients' running mean */
    double lr_decay;     /**< Adagrad: rate lr/(1 + (t-1)·lr_decay), finite and >= 0 */
    double initial_accumulator_value; /**< Adagrad: s of a new parameter, finite and >= 0 */
    nb_schedule schedule;
} nb_optim_opts;

/**
 * Defaults for @p kind (as PyTorch's): lr 0.01, except 1e-3 for Adam and
 * AdamW; momentum 0.9 for MOMENTUM and NESTEROV (0 otherwise); beta1 0.9,
 * beta2 0.999; eps 1e-8, except 1e-10 for Adagrad; weight_decay 0, except
 * 0.01 for AdamW; alpha 0.99, not centered; lr_decay 0,
 * initial_accumulator_value 0; no clipping; constant schedule (step_size
 * 1, gamma 1, period 1, min_lr 0).
 */
NB_API nb_optim_opts nb_optim_defaults(nb_optim_kind kind);

/**
 * Check options. Returns NB_OK, NB_ERR_NULL, or NB_ERR_ARG with a sentence
 * naming the field and its value ("lr = -0.1: the learning rate must be
 * finite and >= 0") written to @p msg (always NUL-terminated when
 * @p msg_size > 0; @p msg may be NULL).
 */
NB_API nb_status nb_optim_opts_check(const nb_optim_opts *opts, char *msg, size_t msg_size);

/** New optimizer using malloc. NULL when @p opts is NULL or invalid (see
 *  nb_optim_opts_check for why) or out of memory. The options are copied. */
NB_API nb_optim *nb_optim_new(const nb_optim_opts *opts);
/** As nb_optim_new, every allocation through @p alloc with @p ud. */
NB_API nb_optim *nb_optim_new_alloc(const nb_optim_opts *opts, nb_alloc_fn alloc, void *ud);
/** Free the optimizer and its state. NULL is accepted. */
NB_API void nb_optim_free(nb_optim *opt);

/**
 * One update of every parameter of @p m that needs a gradient, with the
 * learning rate the schedule gives at the current position; then the step
 * count (and, unless the schedule is per epoch, the position) advance.
 * Gradients are read, not changed (clipping scales them on the fly).
 * Errors, after which no parameter has changed: NB_ERR_NULL; NB_ERR_NOMEM
 * (creating state for a parameter met for the first time); NB_ERR_SHAPE
 * (the state kept under a name has another shape or dtype than the model's
 * parameter of that name); NB_ERR_NONFINITE (clipping is on and the
 * global gradient norm is NaN or infinite); NB_ERR_ARG (a step count or
 * the schedule position, e.g. loaded from a file, is INT64_MAX and cannot
 * count one more). nb_optim_error() says more.
 */
NB_API nb_status nb_optim_step(nb_optim *opt, nb_model *m);

/** Threads of the update in nb_optim_step (1 by default; values < 1 mean
 *  1). Every element's update depends on that element only, so results are
 *  identical for every thread count. A step with fewer than 32768
 *  parameter elements runs on the caller alone. NULL is ignored. */
NB_API void nb_optim_set_threads(nb_optim *opt, int n);
/** Threads set by nb_optim_set_threads (1 for NULL). */
NB_API int nb_optim_threads(const nb_optim *opt);

/** The error of the last failed call on @p opt (status NB_OK and msg "" if
 *  none): where = the call ("optim_step", "next_epoch"), msg = that name and
 *  a sentence. For NULL a static error with status NB_ERR_NULL and msg "no
 *  optimizer". Owned by the optimizer. */
NB_API const nb_error *nb_optim_error(const nb_optim *opt);
/** The options in use (owned by the optimizer; NULL for NULL). */
NB_API const nb_optim_opts *nb_optim_options(const nb_optim *opt);
/** Successful steps so far (0 for NULL). */
NB_API int64_t nb_optim_steps(const nb_optim *opt);
/** Current schedule position (0 for NULL). */
NB_API int64_t nb_optim_sched_pos(const nb_optim *opt);
/** Advance the schedule position by one (for per-epoch schedules; with a
 *  per-step schedule it skips a position). NB_ERR_NULL for NULL, NB_ERR_ARG
 *  when the position is INT64_MAX. */
NB_API nb_status nb_optim_next_epoch(nb_optim *opt);
/** Learning rate the next step will use (NAN for NULL). */
NB_API double nb_optim_lr(const nb_optim *opt);
/** Global gradient norm seen by the last step (before clipping); 0 before
 *  the first step or when clipping is off. */
NB_API double nb_optim_last_grad_norm(const nb_optim *opt);
/** Number of parameters that have state (0 for NULL). */
NB_API int nb_optim_state_count(const nb_optim *opt);

/* ------------------------------------------------ state as named tensors */

/** Name of an optimizer kind: "sgd", "momentum", "nesterov", "adam",
 *  "adamw", "rmsprop", "adagrad" (NULL for an unknown value). */
NB_API const char *nb_optim_kind_name(nb_optim_kind kind);
/** The kind called @p name. NB_OK, NB_ERR_NOTFOUND, NB_ERR_NULL. */
NB_API nb_status nb_optim_kind_from_name(const char *name, nb_optim_kind *out);
/** Every kind's name, in order, separated by ", " (for messages). */
NB_API const char *nb_optim_kind_names(void);
/** Name of the @p i-th state tensor that an optimizer of @p kind may keep
 *  per parameter: "velocity" for MOMENTUM and NESTEROV; "m" and "v" (first
 *  and second moments) for ADAM and ADAMW; "square_avg", "momentum_buffer"
 *  and "grad_avg" for RMSPROP; "sum" for ADAGRAD; NULL beyond (SGD keeps
 *  none). The names are PyTorch's where PyTorch has the state. */
NB_API const char *nb_optim_slot_name(nb_optim_kind kind, int i);
/** Name of the @p i-th state tensor a parameter has under options @p o:
 *  the names of nb_optim_slot_name for o->kind, except that RMSprop keeps
 *  "momentum_buffer" only when o->momentum > 0 and "grad_avg" only when
 *  o->centered; NULL beyond, and for NULL or an unknown kind. */
NB_API const char *nb_optim_opts_slot_name(const nb_optim_opts *o, int i);

/**
 * The optimizer's state as named tensors and metadata text, for the
 * parameters of @p m it holds state for (state kept under a name @p m does
 * not hold, or for another dtype or shape, is left out). For each such
 * parameter P, the tensors "P/<slot>" (nb_optim_opts_slot_name) and "P/t"
 * (an F64 scalar: the updates P has had) are added to @p store as copies. The
 * optimizer's own lines are appended to the metadata text in meta[0..cap)
 * (NUL-terminated; it may hold lines already): optim.kind, its options
 * (optim.lr, optim.momentum, optim.beta1, optim.beta2, optim.eps,
 * optim.weight_decay, optim.clip_norm; optim.alpha and optim.centered for
 * RMSprop; optim.lr_decay and optim.initial_accumulator_value for
 * Adagrad; optim.schedule, optim.step_size, optim.gamma, optim.period,
 * optim.min_lr, optim.per_epoch; doubles with 17 digits), optim.step and
 * optim.sched_pos; their length does not depend on the model. Errors (the
 * optimizer is never changed; on error meta is as it was, and @p store may
 * hold some of the tensors): NB_ERR_NULL;
 * NB_ERR_ARG (a count past 2^53, which "P/t" cannot hold exactly, or
 * more text than @p cap holds); NB_ERR_EXISTS (@p store or
 * the text already holds a name); NB_ERR_NOMEM.
 */
NB_API nb_status nb_optim_state_save(const nb_optim *opt, const nb_model *m, nb_model *store,
                                     char *meta, size_t cap, nb_error *err);

/**
 * Replace @p opt's state, step count and schedule position by those that
 * nb_optim_state_save wrote: the tensors of @p store (others it holds are
 * ignored) and the metadata text @p meta. Its options stay (see
 * nb_optim_opts_from_meta for those). The new state is for the parameters
 * P of @p m that have a count "P/t" in @p store (a tensor of @p m named so
 * is a parameter, not a count), with "P/<slot>" of P's dtype and shape for
 * each slot @p opt keeps under its options (nb_optim_opts_slot_name: an
 * RMSprop with momentum needs "P/momentum_buffer", which one saved without
 * momentum does not write).
 * Everything is checked before anything changes; on error @p opt is as it
 * was. Errors: NB_ERR_NULL; NB_ERR_PARSE (metadata that is not key=value
 * text, optim.step or optim.sched_pos not an integer from 0 to INT64_MAX,
 * or a count "P/t" not a whole number from 0 to 2^53); NB_ERR_NOTFOUND (a
 * line or a slot tensor missing); NB_ERR_ARG (the state is of another kind
 * of optimizer); NB_ERR_DTYPE / NB_ERR_SHAPE (a slot does not fit its
 * parameter, a count not an F64 scalar); NB_ERR_NOMEM. err->name names the
 * key or tensor concerned.
 */
NB_API nb_status nb_optim_state_load(nb_optim *opt, const nb_model *m, const nb_model *store,
                                     const char *meta, nb_error *err);

/**
 * The options nb_optim_state_save wrote into metadata text, to make an
 * optimizer like the one that was saved. Errors: NB_ERR_NULL,
 * NB_ERR_NOTFOUND (no optimizer in @p meta, or a line missing),
 * NB_ERR_PARSE (a value that does not parse), NB_ERR_ARG (values that
 * nb_optim_opts_check refuses); *out is unchanged on error.
 */
NB_API nb_status nb_optim_opts_from_meta(const char *meta, nb_optim_opts *out, nb_error *err);

/**
 * Learning rate of schedule @p s with base rate @p lr at position @p t
 * (t < 0 is taken as 0). NAN when @p s is NULL or invalid.
 *   constant: lr
 *   step:     lr · gamma^floor(t / step_size)
 *   cosine:   min_lr + (lr - min_lr) · (1 + cos(π · min(t, T) / T)) / 2
 */
NB_API double nb_schedule_lr(const nb_schedule *s, double lr, int64_t t);

/** Global gradient norm sqrt(Σ_p Σ_i g_pi²) over the parameters of @p m
 *  that need a gradient, accumulated in double (0 for NULL): each
 *  parameter's sum in eight partial sums (element i into sum i mod 8)
 *  added in a fixed order, so the same gradients give the same bits. */
NB_API double nb_grad_norm(const nb_model *m);

/**
 * Clip gradients by global norm: when the norm n = nb_grad_norm(m) exceeds
 * @p max_norm, multiply every gradient by max_norm / n in place, so the
 * new norm is max_norm (up to rounding). @p norm_out (may be NULL)
 * receives n. Errors: NB_ERR_NULL, NB_ERR_ARG (max_norm not finite or
 * <= 0), NB_ERR_NONFINITE (n is NaN or infinite; nothing is changed).
 */
NB_API nb_status nb_clip_grad_norm(nb_model *m, double max_norm, double *norm_out);

#ifdef __cplusplus
}
#endif
#endif
