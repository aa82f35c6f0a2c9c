/**
 * @file dist.h
 * @brief Data-parallel training over MPI: P processes ("ranks") each take
 *        a share of every global batch, and their gradients are averaged
 *        after each backward pass, so P ranks train as one process on the
 *        whole batch would.
 *
 * The header is always there; the functions work when nabla was built with
 * MPI (meson -Dmpi=auto finds one, e.g. Debian's libopenmpi-dev;
 * nb_dist_available() says so). Without it nb_dist_init fails with
 * NB_ERR_UNSUPPORTED and a sentence saying how to build with MPI.
 *
 * A training loop of your own, started with `mpirun -np 2 ./train`:
 *
 * @code
 * nb_dist *d = NULL;
 * nb_error err;
 * if (nb_dist_init(NULL, &d, &err) != NB_OK) { puts(err.msg); return 1; }
 * int rank = nb_dist_rank(d), size = nb_dist_size(d);
 * // the same model, data and seed on every rank; the loader takes this
 * // rank's share of each global batch of 256 drawn from the same order
 * nb_loader_set_shard(loader, rank, size);
 * if (nb_dist_check(d, model, "seed=1\nbatch=256") != NB_OK ||
 *     nb_dist_broadcast(d, model) != NB_OK) ...
 * nb_loader_start(loader, &shuffle_rng);          // same rng state on every rank
 * while (nb_loader_next(g, loader, &b)) {
 *     nb_model_zero_grad(model);
 *     if (b.size > 0) { loss = ...mean over the b.size rows...; nb_backward(g, loss); }
 *     // this rank's share of the global batch weighs its mean-loss gradient
 *     nb_dist_average_grads(d, model, (double)b.size / (double)b.global_size);
 *     nb_optim_step(opt, model);                  // the same step on every rank
 *     nb_graph_reset(g);
 * }
 * nb_dist_free(d);                                // finalises MPI when init started it
 * @endcode
 *
 * The trainer does all of this given nb_dist_train_comm(d) in
 * nb_train_opts.comm (see nabla/train.h), and `mpirun -np P nabla train`
 * uses it (docs/distributed.md).
 *
 * Collectives: every function taking an nb_dist except the accessors and
 * nb_dist_abort is collective: every rank calls it, in the same order.
 * Each waits at most opts.timeout seconds for the other ranks; when one
 * has died or hangs, the others fail with NB_ERR_COMM and a sentence
 * naming the ranks that did not answer (the run cannot continue: end it
 * with nb_dist_abort). MPI's own errors are returned, not fatal (the
 * communicator's error handler is MPI_ERRORS_RETURN), as NB_ERR_COMM with
 * MPI's error string. After a step's allocations are made (the first call
 * for a model), averaging gradients allocates nothing.
 *
 * Errors are kept by the object (nb_dist_error), as a graph keeps its own.
 */
#ifndef NABLA_DIST_H
#define NABLA_DIST_H

#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A process's place in a data-parallel run: its communicator (a
 *  duplicate of the one given, errors returned), buffers and last error.
 *  Opaque. */
typedef struct nb_dist nb_dist;

/** Options of nb_dist_init. Start from nb_dist_defaults(). */
typedef struct nb_dist_opts {
    /** A pointer to the MPI_Comm to train over (duplicated, so the
     *  caller's communicator and its error handler are left alone);
     *  NULL: MPI_COMM_WORLD. */
    const void *comm;
    /** Seconds a collective waits for the slowest rank before it fails
     *  naming the ranks that did not answer (60); 0: wait forever. */
    double timeout;
    nb_alloc_fn alloc; /**< the buffers' allocations (NULL: malloc) */
    void *alloc_ud;
} nb_dist_opts;

/** Timeout 60 s, MPI_COMM_WORLD, malloc. */
NB_API nb_dist_opts nb_dist_defaults(void);

/** True when this build has MPI (the functions below work). */
NB_API bool nb_dist_available(void);

/**
 * The size of the run an MPI launcher (mpirun, mpiexec, srun) announced in
 * the environment of this process, and in *@p rank (may be NULL) this
 * process's rank; 0 (rank 0) when the process was not started by one.
 * Reads Open MPI's OMPI_COMM_WORLD_SIZE / _RANK, PMIx's PMIX_RANK with
 * OMPI's size, and PMI_SIZE / PMI_RANK (MPICH, Slurm). Works in every
 * build and before MPI is initialised, e.g. to refuse `mpirun -np 2` of a
 * build without MPI, or to keep all but rank 0 quiet.
 */
NB_API int nb_dist_env(int *rank);

/**
 * Join the run: initialise MPI from the environment the launcher set up
 * (MPI_Init_thread, FUNNELED) unless the program has already done so
 * (then attach to it), duplicate the communicator, set the duplicate's
 * error handler to return errors. A single process not started by a
 * launcher is a run of size 1.
 * Errors (written to *out = NULL, and to @p err, which may be NULL):
 * NB_ERR_NULL (out), NB_ERR_ARG (a negative or non-finite timeout),
 * NB_ERR_UNSUPPORTED (built without MPI, or MPI already finalised),
 * NB_ERR_COMM (MPI failed, with its error string), NB_ERR_NOMEM.
 */
NB_API nb_status nb_dist_init(const nb_dist_opts *o, nb_dist **out, nb_error *err);

/**
 * Leave the run: free the communicators and buffers, and finalise MPI when
 * nb_dist_init initialised it (not after a failed collective: a rank that
 * stopped answering would make MPI_Finalize wait for it). NULL is
 * accepted.
 */
NB_API void nb_dist_free(nb_dist *d);

/** End every rank of the run at once (MPI_Abort) with exit code @p code:
 *  after NB_ERR_COMM, or when this rank cannot go on alone. Does not
 *  return when MPI is running; returns at once for NULL or without MPI. */
NB_API void nb_dist_abort(nb_dist *d, int code);

/** False once a collective has failed (a rank died or hangs, MPI failed):
 *  the run cannot go on, and nb_dist_free will not finalise MPI; end the
 *  run with nb_dist_abort. True otherwise, a difference found by
 *  nb_dist_check included (false for NULL). */
NB_API bool nb_dist_ok(const nb_dist *d);
/** This process's rank, 0 .. size - 1 (0 for NULL). */
NB_API int nb_dist_rank(const nb_dist *d);
/** The number of ranks (1 for NULL). */
NB_API int nb_dist_size(const nb_dist *d);
/** The error of the last failed call, owned by @p d: where = the
 *  function, name = the tensor or setting that differs, msg = the
 *  sentence. For NULL a static error with status NB_ERR_NULL. */
NB_API const nb_error *nb_dist_error(const nb_dist *d);

/**
 * Check that every rank holds the same model layout (each tensor's name,
 * dtype, shape and whether it is trainable, in the model's order) and the
 * same @p settings (text of key=value lines, e.g. "seed=1\nbatch=256";
 * NULL for none). On a difference every rank fails with NB_ERR_COMM and
 * the same sentence, naming the first rank that differs from rank 0 and
 * the first line that differs, e.g. "rank 1 differs from rank 0: rank 0
 * has tensor fc1.weight f32 [64,64] trainable, rank 1 has tensor
 * fc1.weight f32 [32,64] trainable" (name = fc1.weight).
 * Errors: NB_ERR_NULL, NB_ERR_NOMEM, NB_ERR_COMM.
 */
NB_API nb_status nb_dist_check(nb_dist *d, const nb_model *m, const char *settings);

/** Copy every tensor of @p m (trainable parameters and buffers) from rank
 *  0 to the other ranks. The layouts must agree (nb_dist_check).
 *  Errors: NB_ERR_NULL, NB_ERR_NOMEM, NB_ERR_COMM. */
NB_API nb_status nb_dist_broadcast(nb_dist *d, nb_model *m);

/**
 * Average the gradients: each trainable parameter's gradient g becomes
 * Σ_r w_r · g_r over the ranks, where @p weight is this rank's w_r. For a
 * mean loss over the b_r samples of this rank's share of a global batch of
 * B samples, w_r = b_r / B makes the result the gradient of the global
 * batch's mean loss (in exact arithmetic); 1/size when the shares are
 * equal. One MPI_Allreduce per dtype over a flat buffer (in place), the
 * gradients scaled while packed; the buffer is allocated on the first call
 * for a model, so steps allocate nothing.
 * Errors: NB_ERR_NULL, NB_ERR_ARG (weight not finite), NB_ERR_NOMEM,
 * NB_ERR_COMM.
 */
NB_API nb_status nb_dist_average_grads(nb_dist *d, nb_model *m, double weight);

/** Replace every non-trainable tensor of @p m (batch-norm running
 *  statistics; frozen parameters too) by its mean over the ranks, summed
 *  in extended precision so that equal values stay exactly equal.
 *  Errors: NB_ERR_NULL, NB_ERR_NOMEM, NB_ERR_COMM. */
NB_API nb_status nb_dist_average_buffers(nb_dist *d, nb_model *m);

/** Sum @p n doubles over the ranks, in place (losses, counts).
 *  Errors: NB_ERR_NULL, NB_ERR_ARG (n < 0), NB_ERR_COMM. */
NB_API nb_status nb_dist_sum(nb_dist *d, double *values, int n);

/**
 * A vote: every rank says whether it is ready (@p ok); *@p first_failed
 * (may be NULL) gets the lowest rank that is not, or -1 when all are.
 * Lets ranks that failed on their own (a file one rank cannot read) stop
 * together with the others instead of leaving them waiting.
 * Errors: NB_ERR_NULL, NB_ERR_COMM.
 */
NB_API nb_status nb_dist_vote(nb_dist *d, bool ok, int *first_failed);

/** Fill @p out with the trainer's collectives over @p d (nb_train_opts.comm);
 *  @p d must outlive the trainers that use it. NB_ERR_NULL. */
NB_API nb_status nb_dist_train_comm(nb_dist *d, nb_train_comm *out);

#ifdef __cplusplus
}
#endif
#endif
