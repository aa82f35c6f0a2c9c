/**
 * @file train.h
 * @brief The training helper: epochs over a loader, evaluation on
 *        validation and test sets, early stopping that restores the best
 *        parameters, per-epoch and per-batch callbacks, per-layer gradient
 *        norms.
 *
 * An nb_trainer ties a model (nb_model), the network that reads it
 * (nb_layer) and an optimizer (nb_optim) to a graph of its own. One
 * training step, for every batch of the loader:
 *
 *     reset the graph; x = the batch; zero the gradients;
 *     out  = forward(net, x, training = true)
 *     L    = loss(out, labels)           softmax cross-entropy (mean) by default
 *          + ½λ₂ Σ‖W‖²_F + λ₁ Σ|W|       when asked, over the chosen parameters
 *     backward(L); optimizer step
 *
 * After each epoch the validation and test sets are evaluated in
 * evaluation mode (dropout off, batch-norm running statistics) with
 * recording off, in batches; a per-epoch schedule is advanced; the epoch
 * callback receives an nb_epoch_report; early stopping decides.
 *
 * Reproducibility: the trainer draws random numbers only from the rng of
 * its options (the loader's shuffles and augmentation). Use the same rng
 * for the layers (initialisation, dropout masks) and save it with the
 * checkpoint (nb_ckpt_opts.rng): then a run resumed from a checkpoint taken
 * between epochs continues bit-identically, and two runs with the same
 * seed and thread count give the same parameters.
 *
 * @code
 * nb_train_opts o = nb_train_defaults();
 * o.epochs = 30; o.rng = &rng; o.val = val; o.patience = 5;
 * o.on_epoch = print_epoch;                 // bool print_epoch(void *, const nb_epoch_report *)
 * nb_trainer *t = NULL;
 * if (nb_trainer_new(model, net, opt, &o, &t) != NB_OK) ...
 * if (nb_trainer_fit(t, loader) != NB_OK) puts(nb_trainer_error(t)->msg);
 * double acc, loss;
 * nb_trainer_evaluate(t, test, &acc, &loss);
 * nb_trainer_free(t);
 * @endcode
 */
#ifndef NABLA_TRAIN_H
#define NABLA_TRAIN_H

#include "ckpt.h"
#include "data.h"
#include "nn.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A training loop with its graph, buffers and early-stopping state. Opaque. */
typedef struct nb_trainer nb_trainer;

/**
 * A loss: a scalar tensor of @p g computed from the network's output and
 * the @p n labels of the batch (int64, valid during the call). It should
 * be a mean over the batch: evaluation weights it by the batch size. It is
 * called with recording on in training and off in evaluation; return NULL
 * (with the error recorded in @p g) on failure. @p ud is the options'
 * loss_ud.
 */
typedef nb_tensor *(*nb_loss_fn)(nb_graph *g, nb_tensor *output, const int64_t *labels, int64_t n,
                                 void *ud);

/** What early stopping watches. */
typedef enum nb_monitor {
    NB_MONITOR_VAL_ACC = 0,  /**< validation accuracy, higher is better */
    NB_MONITOR_VAL_LOSS = 1, /**< validation loss, lower is better */
} nb_monitor;

/** Everything known about an epoch when it ends. Values that were not
 *  measured are NAN. Pointers are valid during the callback only. */
typedef struct nb_epoch_report {
    int epoch;            /**< 1, 2, ... (counts epochs since nb_trainer_set_epoch's base) */
    int epochs;           /**< total asked for (nb_train_opts.epochs) */
    int64_t batches;      /**< training steps in this epoch */
    double loss;          /**< training loss (without penalty), mean over the batches */
    double penalty;       /**< L2 + L1 penalty, mean over the batches (0 when none) */
    double train_acc;     /**< accuracy on the training batches as they were seen (training mode) */
    double val_loss;      /**< mean loss over the validation samples */
    double val_acc;       /**< validation accuracy */
    double test_loss;     /**< mean loss over the test samples */
    double test_acc;      /**< test accuracy */
    double seconds;       /**< wall time of the epoch, evaluation included */
    double train_seconds; /**< wall time of the training steps alone */
    double lr;            /**< learning rate of the epoch's first step */
    double grad_norm_mean; /**< global gradient norm ‖g‖ (all trainable parameters), mean over
                              batches */
    double grad_norm_max;  /**< its largest value over the batches */
    /** Per-layer gradient norms: for every weight matrix (as nb_grad_norms
     *  lists them, input layer first) the mean over the epoch's batches of
     *  ‖∂L/∂W‖_F. Names are owned by the model. NULL and 0 when turned off. */
    const nb_param_norm *layer_norms;
    int n_layer_norms;
    bool improved;  /**< early stopping: this epoch is the best so far */
    int best_epoch; /**< early stopping: best epoch so far (0 when not tracked) */
    double best;    /**< early stopping: monitored value of the best epoch (NAN when not tracked) */
    int bad_epochs; /**< early stopping: epochs since the best one */
} nb_epoch_report;

/** Called after every epoch; return false to stop training after it. */
typedef bool (*nb_epoch_fn)(void *ud, const nb_epoch_report *r);
/** Called after every training step: @p batch = 1 .. @p n_batches of
 *  epoch @p epoch, with the batch's loss (without penalty). */
typedef void (*nb_batch_fn)(void *ud, int epoch, int64_t batch, int64_t n_batches, double loss);

/** Options of a trainer. Start from nb_train_defaults() and change fields. */
typedef struct nb_train_opts {
    int epochs;  /**< epochs to train (10); nb_trainer_fit stops there */
    nb_rng *rng; /**< shuffles the loader each epoch (required when it shuffles); not owned */
    int threads; /**< threads of the trainer's graph (1); results depend only on seed and this */
    const nb_dataset *val; /**< validation set evaluated after each epoch (NULL: none); not owned */
    const nb_dataset *test; /**< test set evaluated after each epoch (NULL: none); not owned */
    int64_t eval_batch;     /**< batch size of evaluation (256) */
    nb_loss_fn loss;        /**< NULL: softmax cross-entropy on integer labels, mean */
    void *loss_ud;
    double l2;                  /**< λ₂ of the penalty ½λ₂ Σ‖W‖²_F (0: none) */
    double l1;                  /**< λ₁ of the penalty λ₁ Σ|W| (0: none) */
    const char *penalty_suffix; /**< penalised parameters: trainable ones whose names end
                                     in this (".weight"; "" for all) */
    int patience;               /**< early stopping: stop after this many epochs without
                                     improvement (0: off); needs @p val */
    nb_monitor monitor;         /**< early stopping: what is watched (validation accuracy) */
    double min_delta;           /**< early stopping: an improvement must exceed this (0) */
    bool restore_best;          /**< early stopping: put the best epoch's tensors back when fit
                                     ends (true) */
    bool layer_norms;           /**< per-layer gradient norms in the report (true) */
    nb_epoch_fn on_epoch;       /**< NULL: none */
    nb_batch_fn on_batch;       /**< NULL: none */
    void *cb_ud;                /**< passed to both callbacks */
    bool check_finite;          /**< stop at a step whose loss or any gradient is NaN or infinite,
                                     before the optimizer step, and name where the backward pass
                                     made it (true); false: no check, the step is taken */
    nb_alloc_fn alloc; /**< the trainer's allocations, its graph's included (NULL: malloc) */
    void *alloc_ud;
} nb_train_opts;

/** 10 epochs, 1 thread, eval batch 256, default loss, no penalty
 *  (suffix ".weight"), no early stopping (monitor validation accuracy,
 *  restore_best true), layer norms on, finite check on, no callbacks,
 *  malloc. */
NB_API nb_train_opts nb_train_defaults(void);

/**
 * New trainer for the network @p net whose parameters live in @p m,
 * updated by @p opt (all three not owned: they must outlive the trainer).
 * The options are copied (the datasets and rng they point to are not).
 * Errors (written to *out = NULL): NB_ERR_NULL (m, net, opt, o or out),
 * NB_ERR_ARG (epochs < 0, threads < 0, eval_batch < 1, negative or
 * non-finite l1, l2 or min_delta, patience < 0 or > 0 without a validation
 * set, unknown monitor), NB_ERR_NOMEM. nb_train_opts_check says why.
 */
NB_API nb_status nb_trainer_new(nb_model *m, nb_layer *net, nb_optim *opt, const nb_train_opts *o,
                                nb_trainer **out);
/** Check options as nb_trainer_new does. On failure @p err (may be NULL)
 *  gets where "nb_train_opts_check", name = the field ("patience") and a
 *  sentence naming its value ("patience = -1: it must be >= 0"); on
 *  success it is cleared. */
NB_API nb_status nb_train_opts_check(const nb_train_opts *o, nb_error *err);
/** Free the trainer (not the model, network, optimizer or datasets).
 *  NULL is accepted. */
NB_API void nb_trainer_free(nb_trainer *t);

/**
 * Train from the current epoch up to opts.epochs over @p train (a loader
 * of the training set, which must outlive the call). Before the first
 * step, one row of the training set (and of each evaluation set) is run
 * through the network in evaluation mode without recording, so a network
 * that does not fit the data fails at once: input width, and with the
 * default loss an output that is not [N, C] with C the training set's
 * number of classes (evaluation sets: at most C). Each epoch then trains,
 * evaluates, advances a per-epoch schedule, reports, and applies early
 * stopping. When early stopping is on and restore_best is set, the
 * tensors of the best epoch (every tensor of the model, non-trainable ones
 * such as batch-norm running statistics included) are put back when fit
 * returns NB_OK, however it ended (patience, last epoch, callback).
 * Optimizer state is not restored.
 *
 * Errors (nb_trainer_error says what, with epoch and batch in the
 * sentence, the parameter in name for a non-finite gradient):
 * NB_ERR_NULL (t or train, or no rng for a shuffling loader),
 * NB_ERR_SHAPE / NB_ERR_DTYPE (network and data do not fit, e.g.
 * "the network outputs 5 columns but the training set has 10 classes"),
 * NB_ERR_ARG (a dataset is empty; evaluation sets differ from the
 * training set in features), NB_ERR_NONFINITE (with opts.check_finite:
 * the loss or a gradient became NaN or infinite; the step is not taken,
 * and the message names the parameter and element and, re-running the
 * step's backward pass in check-finite mode, the op whose derivative rule
 * produced it, e.g. "epoch 1, batch 3: the gradient of 'fc1.weight' holds
 * NaN at [0,2] (sqrt: reverse rule for input 'h' gives Inf at [1]); no step
 * taken"), and any error of the graph or the optimizer. After an error the
 * parameters and the optimizer state hold the last completed step.
 * The check costs one test per step: the global gradient norm is computed
 * for the report anyway, and is finite exactly when every gradient is
 * (gradients are scanned only when it is not).
 * Allocation: after the first epoch, training makes no allocation (the
 * graph's arena, the optimizer's state and the loader's buffers are reused).
 */
NB_API nb_status nb_trainer_fit(nb_trainer *t, nb_loader *train);

/** Epochs completed (0 for a new trainer or NULL). */
NB_API int nb_trainer_epoch(const nb_trainer *t);
/** Set the count of completed epochs, e.g. to 2 after loading a checkpoint
 *  taken after epoch 2: fit then runs epochs 3 .. opts.epochs. Early
 *  stopping starts afresh. NB_ERR_NULL, NB_ERR_ARG (negative or more than
 *  opts.epochs). */
NB_API nb_status nb_trainer_set_epoch(nb_trainer *t, int epoch);
/** True when the last fit was stopped by early stopping. */
NB_API bool nb_trainer_stopped_early(const nb_trainer *t);
/** Best epoch of early stopping (0 when none). */
NB_API int nb_trainer_best_epoch(const nb_trainer *t);
/** The error of the last failed call (nb_trainer_fit, nb_trainer_evaluate,
 *  nb_trainer_set_epoch): where = that function, name = the parameter when
 *  a gradient was not finite, msg = the sentence (status NB_OK and msg ""
 *  when the last fit or evaluation succeeded). For NULL a static error with
 *  status NB_ERR_NULL and msg "no trainer". Owned by the trainer. */
NB_API const nb_error *nb_trainer_error(const nb_trainer *t);
/** The trainer's graph (owned by the trainer), e.g. to read its size. */
NB_API nb_graph *nb_trainer_graph(const nb_trainer *t);

/**
 * Accuracy and mean loss of the trainer's network on @p ds with the
 * trainer's loss, in evaluation mode, batched (opts.eval_batch), without
 * recording. @p acc and @p loss may be NULL. Errors as nb_evaluate.
 */
NB_API nb_status nb_trainer_evaluate(nb_trainer *t, const nb_dataset *ds, double *acc,
                                     double *loss);

/**
 * Accuracy (fraction of samples whose output's arg-max is the label) and
 * mean softmax cross-entropy of @p net on @p ds, in evaluation mode, in
 * batches of @p batch_size rows, with recording off. @p g is reset before
 * each batch and its recording setting is restored at the end; the output
 * of the last batch stays in it. @p acc and @p loss may be NULL.
 * Errors, recorded in @p g as "evaluate: ..." when g is given: NB_ERR_NULL
 * (g, net or ds), NB_ERR_ARG (empty data set, batch_size < 1),
 * NB_ERR_SHAPE (the output is not [N, C], or the data set's classes do
 * not fit C), and any error of the network's forward pass.
 */
NB_API nb_status nb_evaluate(nb_graph *g, nb_layer *net, const nb_dataset *ds, int64_t batch_size,
                             double *acc, double *loss);

#ifdef __cplusplus
}
#endif
#endif
