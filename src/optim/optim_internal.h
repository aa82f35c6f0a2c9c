/* Internals of nb_optim shared by the optimizer (optim.c) and checkpoints
 * (ckpt.c). Not installed. */
#ifndef NABLA_OPTIM_INTERNAL_H
#define NABLA_OPTIM_INTERNAL_H

#include "../core/internal.h"
#include "nabla/optim.h"

#include <uthash.h>

/* Most state tensors a parameter has (a centered RMSprop with momentum:
 * square_avg, momentum_buffer, grad_avg). */
#define NBOPT_MAX_SLOTS 3

/* The state of one parameter: its name, the shape it was made for, how
 * many updates it has had, and NBOPT_MAX_SLOTS or fewer arrays of the
 * parameter's dtype and size, kept in one block. */
typedef struct nbopt_state {
    char *key;
    size_t key_size;
    nb_dtype dtype;
    int rank;
    int64_t shape[NB_MAX_RANK];
    int64_t size;
    int64_t step;
    int n_slots;
    void *block; /* n_slots * size elements, or NULL when that is 0 */
    size_t block_bytes;
    UT_hash_handle hh;
} nbopt_state;

struct nb_optim {
    nb_alloc_fn alloc;
    void *ud;
    nb_optim_opts opts;
    int64_t step;      /* successful steps */
    int64_t sched_pos; /* schedule position */
    double last_norm;
    nbopt_state *states;    /* uthash by name, in order of creation */
    nb_error err;           /* the last failed call's error */
    int threads;            /* threads of the update (nb_optim_set_threads), >= 1 */
    struct nbopt_job *jobs; /* one step's parameters (optim.c), kept between steps */
    int jobs_cap;
};

/* Number of state arrays a parameter has under options @p o (0 to
 * NBOPT_MAX_SLOTS), in the order they are kept, and in ids[] the index of
 * each among its kind's names (nb_optim_slot_name(o->kind, ids[i])). */
int nbopt_slots(const nb_optim_opts *o, int ids[NBOPT_MAX_SLOTS]);
/* Slot @p i of state @p s (NULL when it has none). */
void *nbopt_slot(const nbopt_state *s, int i);
/* A fresh state (step 0; slots zero, Adagrad's sum its
 * initial_accumulator_value) for a parameter named @p name with
 * the given dtype and shape, not yet in any table; NULL when out of memory. */
nbopt_state *nbopt_state_new(nb_optim *o, const char *name, nb_dtype dt, int rank,
                             const int64_t *shape);
void nbopt_state_free(nb_optim *o, nbopt_state *s);
/* Replace all of o's state by the @p n states in @p list (in that order),
 * and set its step count and schedule position. On success o owns them
 * and the old states are freed; on NB_ERR_NOMEM nothing has changed and
 * the caller still owns the list. */
nb_status nbopt_install(nb_optim *o, nbopt_state **list, int n, int64_t step, int64_t sched_pos);
/* Record o's error and return @p code. The sentence starts with the
 * function's name and ": " ("optim_step: no model (NULL)"); that name
 * becomes the error's where. */
nb_status nbopt_error(nb_optim *o, nb_status code, const char *fmt, ...) NB_PRINTF(3, 4);

#endif
