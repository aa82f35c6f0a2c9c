/* Test support: derivative checks shared by the op tests (cmocka). */
#ifndef NABLA_TEST_TC_H
#define NABLA_TEST_TC_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nabla.h"

/* A shape for tc_check: rank and sizes. */
typedef struct tc_shape {
    int rank;
    int64_t dims[NB_MAX_RANK];
} tc_shape;

/* Builds the function under test from its inputs (already in g). */
typedef nb_tensor *(*tc_fn)(nb_graph *g, nb_tensor *const *in, void *ctx);

/* Options of tc_check; zero-initialised fields take the defaults. */
typedef struct tc_opts {
    double lo, hi;         /* inputs drawn uniformly from [lo, hi] (default [-2, 2]) */
    uint64_t seed;         /* RNG seed (default 1) */
    double rel_tol;        /* reverse vs central differences (default 1e-6) */
    double dot_tol;        /* <J u, v> vs <u, J^T v> (default 1e-10) */
    double f32_tol;        /* f32 vs f64 values and gradients (default 2e-3) */
    unsigned no_grad_mask; /* bit i set: input i gets no gradient check (e.g. a mask) */
    bool integer_inputs;   /* round inputs to integers (indices, masks) */
} tc_opts;

/*
 * Check one function in f64 on random inputs of the given shapes:
 *  1. reverse mode: the VJP with a random seed v equals central differences
 *     of <v, f(x)> for every input element, within rel_tol (relative to
 *     max(1, |value|));
 *  2. forward mode ties to reverse mode: <J u, v> = <u, J^T v> for random
 *     tangents u, within dot_tol relative;
 *  3. the f32 kernels: f evaluated on the same inputs cast to f32 agrees
 *     with f64 (values and reverse gradients) within f32_tol relative.
 * Fails the running cmocka test with a message naming @p label, the input,
 * the element and both values.
 */
void tc_check(const char *label, tc_fn f, void *ctx, int n_in, const tc_shape *shapes,
              const tc_opts *opts);

/* <a, b>, the sum of the products of their elements in f64 (the sizes must
 * be equal). */
double tc_dot(const nb_tensor *a, const nb_tensor *b);

/* Assert |a - b| <= tol (absolute), with a message. */
#define tc_near(a, b, tol) tc_near_((a), (b), (tol), #a, __FILE__, __LINE__)
void tc_near_(double a, double b, double tol, const char *what, const char *file, int line);

/* What a shell command printed and how it ended. */
typedef struct tc_run_result {
    int status; /* exit status, -1 when it did not exit normally */
    char out[1 << 16];
    char err[4096];
} tc_run_result;

/* Run @p cmd through the shell, capturing stdout and stderr (through a
 * temporary file). The result is static: valid until the next call. */
tc_run_result *tc_run(const char *cmd);

/* The whole file @p rel (a path relative to @p top, the top of the source
 * tree), NUL-terminated, malloc'd; fails the running test when it cannot be
 * opened. */
char *tc_slurp(const char *top, const char *rel);

/* An allocation hook (nb_alloc_fn) that counts, and can fail the Nth call:
 * pass a tc_counting as its user data. */
typedef struct tc_counting {
    long calls;   /* allocations and resizes (new_size > 0) so far */
    long fail_at; /* fail the call with this number (1-based); 0 never */
    long live;    /* blocks not yet freed */
} tc_counting;

void *tc_counting_alloc(void *ud, void *ptr, size_t old_size, size_t new_size);

/* Forward mode against reverse mode for y(x): <J u, v> = <u, Jᵀ v> to
 * 1e-12 (relative above 1), and the product is not trivially zero. */
void tc_adjoint(nb_graph *g, nb_tensor *y, nb_tensor *x, nb_tensor *u, nb_tensor *v);

/* The op under tc_oom_sweep: its result from x on g, NULL when it fails. */
typedef nb_tensor *(*tc_oom_fn)(nb_graph *g, nb_tensor *x, void *ctx);

/* Out of memory inside an op: on a graph whose allocator fails the next
 * chunk the arena asks for, after x (f64, of the given shape) and a filler
 * of 1 + 97·shift elements, fn runs until it fails (at most 64 times), for
 * shift = 0, 1, … (at most 400): shifting what comes before moves the
 * failing boundary over each of the op's allocations in turn. Every failure
 * must be a clean NB_ERR_NOMEM under @p where with nothing leaked. Returns
 * which of msgs[0..n_msgs) (bit k) some failure's message contained; it
 * stops once all have. */
unsigned tc_oom_sweep(tc_oom_fn fn, void *ctx, int rank, const int64_t *shape, const char *where,
                      const char *const *msgs, int n_msgs);

/* nb_tensor_info_fn adding each listed tensor to the nb_model @p ud. */
nb_status tc_add_listed(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape);

#endif
