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
 *     L    = loss(out, target)           the batch's labels or float targets:
 *                                        softmax cross-entropy (mean) for
 *                                        labels, MSE for targets by default
 *          + ½λ₂ Σ‖W‖²_F + λ₁ Σ|W|       when asked, over the chosen parameters
 *     backward(L); optimizer step
 *
 * Data sets hold class labels or float targets [N, K] (data.h). For
 * labels the evaluation reports accuracy; for targets (regression) it
 * reports RMSE and MAE instead: RMSE = sqrt(Σ (out − y)² / (N·K)) and
 * MAE = Σ |out − y| / (N·K), over every target value of the N samples,
 * in the targets' own units.
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
 * Data parallelism: with nb_train_opts.comm (nb_dist_train_comm of
 * nabla/dist.h, under `mpirun -np P`) every rank runs the same trainer on
 * its share of each global batch (its loader sharded with
 * nb_loader_set_shard). Before the first step the ranks compare their
 * models and settings (data sets by size and CRC-32, batch, shuffling rng
 * state, optimizer, loss, completed epochs) and fail together, naming the
 * first difference; then they take rank 0's tensors. Each step, a rank's
 * mean-loss gradient is weighted by its share b_r/B of the global batch
 * and the gradients are summed over the ranks, so each rank takes the step
 * one process would take on the whole batch (in exact arithmetic; batch
 * norm normalises each share by its own statistics). The loss, accuracy
 * and errors of the report are the global batch's. Before each epoch's
 * evaluation the ranks' non-trainable tensors (batch-norm running
 * statistics) are averaged; each rank evaluates a share of the samples and
 * the sums are added. The shuffling rng must stay the same on every rank:
 * give the layers (dropout) an rng of their own, seeded per rank; it is
 * compared at the start of each epoch. A failure on one rank (an error of
 * its own, a loss that is not finite) stops every rank at the same step,
 * without the step. fit, nb_trainer_evaluate and the callbacks' return
 * values are collective: every rank calls them alike.
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
 * A loss of class labels: a scalar tensor of @p g computed from the
 * network's output and the @p n labels of the batch (int64, valid during
 * the call). It should be a mean over the batch: evaluation weights it by
 * the batch size. It is called with recording on in training and off in
 * evaluation; return NULL (with the error recorded in @p g) on failure.
 * @p ud is the options' loss_ud. Data sets with float targets need an
 * nb_target_loss_fn instead.
 */
typedef nb_tensor *(*nb_loss_fn)(nb_graph *g, nb_tensor *output, const int64_t *labels, int64_t n,
                                 void *ud);

/**
 * A loss of the batch's target tensor: a scalar tensor of @p g computed
 * from the network's output [B, ...] and @p target, a tensor of @p g in the
 * output's dtype: the batch's float targets [B, K] for a data set with
 * targets, or for a labelled data set its labels as one-hot rows [B, C]
 * with C the output's width (what nb_softmax_cross_entropy_soft and
 * nb_bce_with_logits take). A mean over the batch, as nb_loss_fn; @p ud is
 * the options' loss_ud. E.g. nb_huber_loss(g, output, target, 0.5,
 * NB_REDUCE_MEAN).
 */
typedef nb_tensor *(*nb_target_loss_fn)(nb_graph *g, nb_tensor *output, nb_tensor *target,
                                        void *ud);

/** The built-in losses of the trainer (nb_train_opts.loss_kind), each a
 *  mean over the batch. */
typedef enum nb_loss_kind {
    NB_LOSS_DEFAULT = 0,       /**< "default": cross-entropy for labels, MSE for targets */
    NB_LOSS_CROSS_ENTROPY = 1, /**< "cross-entropy": nb_softmax_cross_entropy of logits
                                    [B, C] against the labels (classification) */
    NB_LOSS_MSE = 2,           /**< "mse": nb_mse_loss of the output [B, K] against the
                                    targets [B, K] (regression) */
    NB_LOSS_L1 = 3,            /**< "l1": nb_l1_loss, mean absolute error (regression) */
    NB_LOSS_HUBER = 4,         /**< "huber": nb_huber_loss with huber_delta (regression) */
} nb_loss_kind;

/** The name of a loss kind ("mse"), or "?" when unknown. Static. */
NB_API const char *nb_loss_kind_name(nb_loss_kind k);
/** The loss kind named @p name ("default", "cross-entropy", "mse", "l1",
 *  "huber"). NB_ERR_NULL, NB_ERR_NOTFOUND. */
NB_API nb_status nb_loss_kind_from_name(const char *name, nb_loss_kind *out);

/** What early stopping watches. */
typedef enum nb_monitor {
    NB_MONITOR_VAL_ACC = 0,  /**< validation accuracy, higher is better */
    NB_MONITOR_VAL_LOSS = 1, /**< validation loss, lower is better */
} nb_monitor;

/** Everything known about an epoch when it ends. Values that were not
 *  measured are NAN: the accuracies for a data set with targets, RMSE and
 *  MAE for labels. Pointers are valid during the callback only. */
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
    double train_rmse;    /**< targets: RMSE on the training batches as they were seen */
    double val_rmse;      /**< targets: validation RMSE */
    double val_mae;       /**< targets: validation MAE */
    double test_rmse;     /**< targets: test RMSE */
    double test_mae;      /**< targets: test MAE */
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

/**
 * The collective operations a data-parallel trainer needs, over the
 * processes ("ranks") of one run: nabla/dist.h fills one over MPI
 * (nb_dist_train_comm), and a program may fill one over another transport.
 * Every rank runs the same trainer on its share of each global batch (its
 * loader sharded with nb_loader_set_shard(ld, rank, size)). Each function
 * is collective: every rank calls it, in the same order, with the same
 * model layout; on failure it returns a status and fills @p err (which is
 * never NULL), and the run cannot continue. @p ud is the struct's ud.
 */
typedef struct nb_train_comm {
    int rank; /**< this process, 0 .. size - 1 */
    int size; /**< processes of the run, >= 1 */
    void *ud; /**< passed to every function */
    /** Fail on every rank when the ranks differ in the model's tensors
     *  (names, dtypes, shapes, order) or in @p settings (text, one
     *  key=value per line); the error names the first rank that differs
     *  from rank 0 and what differs. */
    nb_status (*check)(void *ud, const nb_model *m, const char *settings, nb_error *err);
    /** Copy every tensor of @p m (parameters and buffers) from rank 0. */
    nb_status (*broadcast)(void *ud, nb_model *m, nb_error *err);
    /** Replace each trainable parameter's gradient by Σ_r weight_r · grad_r
     *  over the ranks (@p weight: this rank's share of the global batch). */
    nb_status (*grads)(void *ud, nb_model *m, double weight, nb_error *err);
    /** Replace each non-trainable tensor (batch-norm running statistics) by
     *  its mean over the ranks. */
    nb_status (*buffers)(void *ud, nb_model *m, nb_error *err);
    /** Sum @p n doubles over the ranks, in place. */
    nb_status (*sum)(void *ud, double *values, int n, nb_error *err);
} nb_train_comm;

/** Options of a trainer. Start from nb_train_defaults() and change fields. */
typedef struct nb_train_opts {
    int epochs;  /**< epochs to train (10); nb_trainer_fit stops there */
    nb_rng *rng; /**< shuffles the loader each epoch (required when it shuffles); not owned */
    int threads; /**< threads of the trainer's graph and of its optimizer's update (1; the
                      trainer sets them with nb_optim_set_threads); results depend only on
                      seed and this */
    const nb_dataset *val; /**< validation set evaluated after each epoch (NULL: none); not owned */
    const nb_dataset *test; /**< test set evaluated after each epoch (NULL: none); not owned */
    int64_t eval_batch;     /**< batch size of evaluation (256) */
    nb_loss_fn loss;        /**< a loss of labels of your own (NULL: none) */
    void *loss_ud;          /**< passed to loss or target_loss */
    nb_target_loss_fn target_loss; /**< a loss of the target tensor of your own (NULL: none);
                                        excludes @p loss */
    nb_loss_kind loss_kind;        /**< the built-in loss when neither loss nor target_loss is set
                                        (NB_LOSS_DEFAULT): a classification loss needs a labelled
                                        data set, a regression loss one with targets */
    double huber_delta;            /**< δ of NB_LOSS_HUBER (1) */
    double l2;                  /**< λ₂ of the penalty ½λ₂ Σ‖W‖²_F (0: none) */
    double l1;                  /**< λ₁ of the penalty λ₁ Σ|W| (0: none) */
    const char *penalty_suffix; /**< penalised parameters: trainable ones whose names end
                                     in this (".weight"; "" for all) */
    int patience;               /**< early stopping: stop after this many epochs without
                                     improvement (0: off); needs @p val */
    nb_monitor monitor;         /**< early stopping: what is watched (validation accuracy;
                                     a data set with targets has none: watch the loss) */
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
    /** Data-parallel training (NULL: this process alone). The struct is
     *  copied; what it points to must outlive the trainer. With it, fit
     *  and the evaluations are collective (see "Data parallelism"). */
    const nb_train_comm *comm;
} nb_train_opts;

/** 10 epochs, 1 thread, eval batch 256, default loss (huber_delta 1), no penalty
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
 * set, unknown monitor or loss kind, huber_delta not finite and > 0 with
 * NB_LOSS_HUBER, both loss and target_loss, either with a loss_kind),
 * NB_ERR_NOMEM. nb_train_opts_check says why.
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
 * that does not fit the data fails at once: input width, and with a
 * built-in loss an output that is not [N, C] with C the training set's
 * number of classes (evaluation sets: at most C), or for targets not
 * [N, K] with K the targets per sample (every set the same K); a loss that
 * does not fit the data (a regression loss on labels, cross-entropy or a
 * loss of labels on targets, training and evaluation sets of different
 * kinds, early stopping on accuracy for targets) fails the same way.
 * Each epoch then trains,
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
 * NB_ERR_ARG (the loss does not fit the data, e.g. "training set: the mse
 * loss needs float targets, and the data set has class labels"),
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
 * recording. @p acc and @p loss may be NULL; the accuracy is NAN for a
 * data set with targets. Errors as nb_evaluate.
 */
NB_API nb_status nb_trainer_evaluate(nb_trainer *t, const nb_dataset *ds, double *acc,
                                     double *loss);
/**
 * RMSE, MAE and mean loss (the trainer's) of the trainer's network on
 * @p ds, a data set with targets, as nb_trainer_evaluate. Any pointer may
 * be NULL. NB_ERR_ARG for a labelled data set; errors as nb_evaluate.
 */
NB_API nb_status nb_trainer_evaluate_regression(nb_trainer *t, const nb_dataset *ds, double *rmse,
                                                double *mae, double *loss);

/**
 * Accuracy (fraction of samples whose output's arg-max is the label) and
 * mean softmax cross-entropy of @p net on @p ds, in evaluation mode, in
 * batches of @p batch_size rows, with recording off. @p g is reset before
 * each batch and its recording setting is restored at the end; the output
 * of the last batch stays in it. @p acc and @p loss may be NULL.
 * Errors, recorded in @p g as "evaluate: ..." when g is given: NB_ERR_NULL
 * (g, net or ds), NB_ERR_ARG (empty data set, batch_size < 1, a data set
 * with targets: see nb_evaluate_regression), NB_ERR_SHAPE (the output is
 * not [N, C], or the data set's classes do not fit C), and any error of
 * the network's forward pass.
 */
NB_API nb_status nb_evaluate(nb_graph *g, nb_layer *net, const nb_dataset *ds, int64_t batch_size,
                             double *acc, double *loss);

/**
 * The regression sibling of nb_evaluate: RMSE = sqrt(Σ (out − y)² / (N·K))
 * and MAE = Σ |out − y| / (N·K) of @p net on @p ds, a data set with K
 * targets per sample, over all N·K target values, in evaluation mode, in
 * batches of @p batch_size rows, with recording off (@p g as nb_evaluate).
 * @p rmse and @p mae may be NULL. Errors, recorded in @p g as
 * "evaluate_regression: ...": NB_ERR_NULL, NB_ERR_ARG (empty data set,
 * batch_size < 1, a labelled data set), NB_ERR_SHAPE (the output is not
 * [N, K]), and any error of the network's forward pass.
 */
NB_API nb_status nb_evaluate_regression(nb_graph *g, nb_layer *net, const nb_dataset *ds,
                                        int64_t batch_size, double *rmse, double *mae);

#ifdef __cplusplus
}
#endif
#endif
