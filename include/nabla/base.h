/**
 * @file base.h
 * @brief Shared vocabulary of nabla: export macro, dtypes, status codes,
 *        the allocation hook and the explicit random number generator.
 */
#ifndef NABLA_BASE_H
#define NABLA_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(NB_BUILDING) && defined(__GNUC__)
#define NB_API __attribute__((visibility("default")))
#else
#define NB_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Largest tensor rank. */
#define NB_MAX_RANK 8

/** Element types. f32 is for training, f64 for checking. */
typedef enum nb_dtype {
    NB_F32 = 0,
    NB_F64 = 1,
} nb_dtype;

/** Result codes of functions that are not ops. Values are stable. */
typedef enum nb_status {
    NB_OK = 0,            /**< success */
    NB_ERR_NOMEM = 1,     /**< an allocation failed */
    NB_ERR_SHAPE = 2,     /**< shapes do not fit the operation */
    NB_ERR_DTYPE = 3,     /**< dtypes differ or are not supported */
    NB_ERR_RANK = 4,      /**< rank outside 0..NB_MAX_RANK */
    NB_ERR_ARG = 5,       /**< an argument is out of range */
    NB_ERR_NULL = 6,      /**< a required pointer was NULL */
    NB_ERR_NONFINITE = 7, /**< NaN or Inf met in check-finite mode */
    NB_ERR_GRAPH = 8,     /**< tensors of different graphs, or not recorded */
    NB_ERR_IO = 9,        /**< reading or writing a file failed */
    NB_ERR_PARSE = 10,    /**< malformed text or file contents */
    NB_ERR_EXISTS = 11,   /**< a name is already taken */
    NB_ERR_NOTFOUND = 12, /**< a name is not known */
    NB_ERR_UNSUPPORTED = 13, /**< this build lacks the feature (e.g. MPI: nabla/dist.h) */
    NB_ERR_COMM = 14,        /**< processes of a distributed run disagree, fail or stop
                                  answering */
} nb_status;

/** A short English sentence for a status code ("out of memory" ...). Never NULL. */
NB_API const char *nb_status_str(nb_status s);

/**
 * What went wrong, in one shape for every part of nabla. Objects that keep
 * an error (a graph, an optimizer, a trainer, a symbolic pool) give it with
 * nb_graph_error(g), nb_optim_error(o), nb_trainer_error(t),
 * nb_sym_error(s) (a static NB_ERR_NULL error for a NULL object);
 * functions without such an object (data set loaders, option and metadata
 * checks) fill an nb_error the caller passes (it may be NULL). msg reads
 * on its own: it repeats the op, file or line where the part that failed
 * names them, so printing msg is enough. A cleared error (no error, as
 * those functions leave it after success) has status NB_OK, where, name and
 * msg "", offset -1, line and column 0.
 */
typedef struct nb_error {
    nb_status status; /**< NB_OK, or the error */
    char where[64];   /**< the op or function that failed ("" if none) */
    int64_t offset;   /**< byte offset in the input (file, text) of the problem; -1 if none */
    int64_t line;     /**< 1-based line in text input (CSV, expressions); 0 if none */
    int64_t column;   /**< 1-based column in that line; 0 if none */
    char name[128];   /**< the tensor, parameter, variable or key concerned ("" if none; cut
                           if longer) */
    char msg[512];    /**< a sentence: what, where, expected and found */
} nb_error;

/** Reset @p e to "no error" (NULL is accepted). */
NB_API void nb_error_clear(nb_error *e);

/**
 * Record an error in @p e (NULL is accepted; then only @p code is
 * returned): status @p code, where @p where (may be NULL), the sentence
 * given as printf format; offset -1, line and column 0 and name "" (set
 * them afterwards when they apply). Returns @p code.
 */
NB_API nb_status nb_error_set(nb_error *e, nb_status code, const char *where, const char *fmt,
                              ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/** Name of a dtype: "f32" or "f64" ("?" for an unknown value). */
NB_API const char *nb_dtype_name(nb_dtype dt);

/** Size in bytes of one element of @p dt (0 for an unknown value). */
NB_API size_t nb_dtype_size(nb_dtype dt);

/**
 * Allocation hook, in the style of Lua's lua_Alloc.
 * - new_size > 0: return a block of new_size bytes (ptr NULL: fresh block;
 *   otherwise resize ptr, whose size is old_size), or NULL on failure.
 * - new_size == 0: free ptr (which may be NULL) and return NULL.
 * Blocks need only malloc's alignment.
 */
typedef void *(*nb_alloc_fn)(void *ud, void *ptr, size_t old_size, size_t new_size);

/** The default hook: the C library's malloc, realloc and free. */
NB_API void *nb_default_alloc(void *ud, void *ptr, size_t old_size, size_t new_size);

/**
 * Random number generator state (xoshiro256**). There is no global RNG:
 * every function that draws random numbers takes one of these.
 * The same seed gives the same stream on every machine.
 */
typedef struct nb_rng {
    uint64_t s[4];
    double spare; /**< second normal deviate of the last Box-Muller pair */
    bool has_spare;
} nb_rng;

/** Seed @p r (any seed, 0 included, gives a valid state). */
NB_API void nb_rng_seed(nb_rng *r, uint64_t seed);
/** Next 64 random bits. */
NB_API uint64_t nb_rng_u64(nb_rng *r);
/** Uniform double in [0, 1) with 53 random bits. */
NB_API double nb_rng_uniform(nb_rng *r);
/** Standard normal deviate (Box-Muller). */
NB_API double nb_rng_normal(nb_rng *r);
/** Uniform integer in [0, n) without modulo bias; 0 when n == 0. */
NB_API uint64_t nb_rng_below(nb_rng *r, uint64_t n);

#ifdef __cplusplus
}
#endif
#endif
