/* Internal definitions shared by the library's source files. Not installed. */
#ifndef NABLA_INTERNAL_H
#define NABLA_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nabla/tensor.h"

#if defined(__GNUC__)
#define NB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define NB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define NB_NOINLINE __attribute__((noinline, cold))
#else
#define NB_NOINLINE
#define NB_PRINTF(a, b)
#define NB_UNLIKELY(x) (x)
#endif

/* Under AddressSanitizer, memory the arena does not hand out (the cut-off
 * tail of a tensor's shape array) is poisoned, so a read past a tensor's
 * rank is reported. */
#if defined(__SANITIZE_ADDRESS__)
#define NBC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NBC_ASAN 1
#endif
#endif
#ifdef NBC_ASAN
#include <sanitizer/asan_interface.h>
#define NBC_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define NBC_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define NBC_POISON(p, n) ((void)(p), (void)(n))
#define NBC_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* A loop function compiled for AVX-512 and AVX2 as well as the x86-64
 * baseline, the version picked when the program starts. Every lane computes
 * what the scalar code does (IEEE operations; ISO C mode leaves fused
 * multiply-add contraction off), so results do not depend on the CPU.
 * Off under ThreadSanitizer (meson.build defines NB_NO_TARGET_CLONES): its
 * instrumented ifunc resolvers would run before its runtime starts. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(NB_NO_TARGET_CLONES) && !defined(__SANITIZE_THREAD__)
#define NBC_WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
/* The same without AVX-512, for loops that run faster on 256-bit vectors
 * (gathers on the CPUs measured) */
#define NBC_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NBC_WIDE_CLONES
#define NBC_AVX2_CLONES
#endif

/* Alignment of tensor data in the arena (cache line, enough for AVX-512). */
#define NB_ALIGN 64

/* ------------------------------------------------------------ op records */

/* A node points to its op's definition (nb_op_def) and holds its attributes
 * (nb_attrs); both are declared with the ops (include/nabla/op.h), and the
 * core only stores the pointers. */
typedef struct nb_op_def nb_op_def;
typedef struct nb_attrs nb_attrs;
typedef nb_op_def nbo_def;

/* --------------------------------------------------------------- tensors */

enum {
    NB_T_REQUIRES_GRAD = 1u << 0, /* gradients flow to or through this tensor */
    NB_T_PARAM = 1u << 1,         /* owned by a model, not a graph */
    NB_T_LINKED = 1u << 2,        /* on its graph's list of recorded nodes (prev) */
    NB_T_SCALAR = 1u << 3,        /* one-element op with a numeric VJP (ops/scalar.h) */
    NB_T_ZERO = 1u << 8,          /* a zero tangent made by forward mode (never a user's) */
    NB_T_ADJ_OWNED = 1u << 9,     /* reverse sweep: adj is a buffer made for this tensor
                                     alone, which later gradients may be added into */
};

/* A tensor of a graph is allocated only up to shape[rank - 1]
 * (NBC_TENSOR_BYTES): code reads shape[i] only for i < rank. */
struct nb_tensor {
    nb_dtype dtype;
    int rank;
    unsigned flags;
    int n_inputs;
    int64_t size;
    void *data;
    const char *name;
    nb_graph *graph; /* owning graph; NULL for parameters */
    nb_tensor *grad; /* accumulated gradient of a leaf or parameter */
    /* the record: which op made this tensor from which inputs */
    const nbo_def *op; /* NULL for leaves and parameters */
    nb_tensor **inputs;
    nb_attrs *attrs; /* never NULL: nbo_no_attrs when the op has none */
    /* per-sweep scratch, valid only inside one sweep */
    uint64_t mark;              /* nbc_next_sweep() of the sort that last visited it */
    nb_tensor *adj;             /* reverse: gradient flowing into this tensor, or
                                   nba_scalar_adj: the value is in sadj */
    double sadj;                /* reverse: a one-element gradient held as a number */
    uint64_t adj_sweep;         /* the reverse sweep that last set adj */
    nb_tensor *tan;             /* forward: tangent of this tensor */
    nb_tensor *prev;            /* NB_T_LINKED: the node recorded before this one */
    int64_t shape[NB_MAX_RANK]; /* last: only rank entries are allocated */
};

/* Bytes of a graph tensor of the given rank. */
#define NBC_TENSOR_BYTES(rank) (offsetof(nb_tensor, shape) + (size_t)(rank) * sizeof(int64_t))
/* Element data up to this many bytes lives in the node's own block. */
#define NBC_SMALL_DATA 48

/* ----------------------------------------------------------------- arena */

typedef struct nbc_chunk {
    struct nbc_chunk *next;
    char *base;  /* first NB_ALIGN boundary after the header */
    size_t size; /* usable bytes after the header */
    size_t used;
} nbc_chunk;

typedef struct nbc_arena {
    nb_alloc_fn alloc;
    void *ud;
    nbc_chunk *first;
    nbc_chunk *cur;
    size_t chunk_size;
    size_t total;
    /* the owner's newest recorded node: saved with every position and
     * restored on release, so released nodes drop off the owner's list */
    void *last_node;
    uint64_t epoch; /* bumped when memory is taken back (reset, release) */
} nbc_arena;

void nbc_arena_init(nbc_arena *a, nb_alloc_fn alloc, void *ud, size_t chunk_size);
/* Bump-allocate n bytes aligned to NB_ALIGN; NULL when out of memory. */
/* n bytes at a multiple of align (a power of two, at most NB_ALIGN): the
 * current chunk inline, the rest (later chunks, a new one) out of line. */
void *nbc_arena_alloc_slow(nbc_arena *a, size_t n, size_t align);
static inline void *nbc_arena_alloc(nbc_arena *a, size_t n, size_t align)
{
    nbc_chunk *c = a->cur;
    if (c && n > 0) {
        size_t off = (c->used + align - 1) & ~(align - 1);
        if (off <= c->size && c->size - off >= n) {
            c->used = off + n;
            NBC_UNPOISON(c->base + off, n);
            return c->base + off;
        }
    }
    return nbc_arena_alloc_slow(a, n, align);
}
void nbc_arena_reset(nbc_arena *a);
/* Give back the tail of p (allocated with old_n bytes) beyond new_n when p
 * is the latest allocation; otherwise nothing changes. */
void nbc_arena_shrink(nbc_arena *a, void *p, size_t old_n, size_t new_n);
/* A position in the arena; releasing it frees everything allocated since. */
typedef struct nbc_arena_pos {
    nbc_chunk *chunk;
    size_t used;
    void *last_node;
} nbc_arena_pos;
nbc_arena_pos nbc_arena_tell(const nbc_arena *a);
void nbc_arena_release(nbc_arena *a, nbc_arena_pos pos);
void nbc_arena_free(nbc_arena *a);

/* ----------------------------------------------------------------- graph */

typedef struct nbc_prof_entry nbc_prof_entry;

struct nb_graph {
    nbc_arena arena;
    bool recording;
    bool check_finite;
    bool profile; /* per-op timing on (nb_graph_set_profile) */
    int threads;
    nb_matmul_kernel matmul;
    uint64_t evals;
    uint64_t last_reverse; /* mark of the latest reverse sweep */
    /* constants made by ops (nbc_const), reused while the arena holds them */
    nb_tensor *consts[8];
    uint64_t consts_epoch;
    /* the first error: written only when one is recorded, its status read
     * by every sweep (first, next to the fields above) */
    nb_error err;
    /* per-op timing (core/profile.c), in order of first use; kept by reset */
    nbc_prof_entry *prof;
    int n_prof, cap_prof;
};

/* Per-op timing: which list a time goes to. */
enum { NBC_PROF_FWD = 0, NBC_PROF_BWD = 1 };
/* Monotonic clock in nanoseconds. */
uint64_t nbc_now_ns(void);
/* Add one evaluation of @p ns nanoseconds to op's entry (keyed by its
 * definition, shown as @p name, which must outlive the graph) in @p phase.
 * Out of memory for a new entry records NB_ERR_NOMEM in g. */
void nbc_prof_add(nb_graph *g, const nbo_def *op, const char *name, int phase, uint64_t ns);
/* Free the table (nb_graph_free). */
void nbc_prof_free(nb_graph *g);

/* A sweep mark never handed out before in this process (marks of different
 * graphs never collide, so a parameter's stale mark cannot match). */
uint64_t nbc_next_sweep(void);

/* Record the graph's first error (later ones are ignored): where = op, name
 * = the tensor concerned (may be NULL), msg = "op: " and the sentence;
 * returns code. nbc_error(g, code, op, fmt, ...) leaves name empty. */
nb_status nbc_error_named(nb_graph *g, nb_status code, const char *op, const char *name,
                          const char *fmt, ...) NB_PRINTF(5, 6);
#define nbc_error(g, code, op, ...) nbc_error_named((g), (code), (op), NULL, __VA_ARGS__)
nb_status nbc_verror(nb_graph *g, nb_status code, const char *op, const char *name, const char *fmt,
                     va_list ap) NB_PRINTF(5, 0);
/* Arena allocation recording NB_ERR_NOMEM (with op as the op name) on failure. */
void *nbc_alloc_failed(nb_graph *g, size_t n, const char *op);
static inline void *nbc_alloc(nb_graph *g, size_t n, const char *op)
{
    void *p = nbc_arena_alloc(&g->arena, n, 16);
    return p ? p : nbc_alloc_failed(g, n, op);
}
/* The same for tensor data: NB_ALIGN-aligned from 64 bytes on (vector
 * loads), 16-aligned below (a scalar needs no cache line of its own). */
static inline void *nbc_alloc_data(nb_graph *g, size_t n, const char *op)
{
    void *p = nbc_arena_alloc(&g->arena, n, n >= NB_ALIGN ? NB_ALIGN : 16);
    return p ? p : nbc_alloc_failed(g, n, op);
}
/* Checked multiplication of element counts; false on overflow. */
bool nbc_mul_overflows(int64_t a, int64_t b, int64_t *out);
/* Largest element count of a tensor, and of every prefix of its shape: its
 * bytes, gradient and scratch copies stay addressable. */
#define NBC_MAX_ELEMS ((int64_t)(SIZE_MAX / 16))
/* *count <- *count * dim for the next axis of a shape; false when dim is
 * negative or the count passes NBC_MAX_ELEMS. The one rule for a shape:
 * tensors of graphs and models and the file readers all apply it, so a
 * file that reads can be loaded into a model. */
bool nbc_count_axis(int64_t *count, int64_t dim);

/* A fresh tensor of g with the given description and uninitialised data
 * (NULL and an error recorded on failure; @p op names the caller). */
nb_tensor *nbc_tensor_new(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, const char *op);
/* A 0-d constant for use as an op input inside the library (nb_scale's
 * factor, a rule's 1): the graph reuses the ones it made recently with the
 * same dtype and value, so a loop of x*0.5 adds one constant, not one per
 * step. Callers must treat it as read-only. */
nb_tensor *nbc_const(nb_graph *g, nb_dtype dt, double v);
/* n rounded up to a multiple of 16 (the arena's alignment of blocks). */
static inline size_t nbc_round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}
/* A tensor of the given rank (uninitialised) in one arena block with @p extra
 * bytes after it from a 16-byte boundary (*tail) and, when they are at most
 * NBC_SMALL_DATA, its @p data_bytes of elements (else those are a block of
 * their own); *data points at the elements. NULL with an error recorded
 * when out of memory. Under AddressSanitizer the tensor keeps its full size
 * with the unused shape entries poisoned. */
static inline nb_tensor *nbc_node_alloc(nb_graph *g, int rank, size_t extra, size_t data_bytes,
                                        void **tail, void **data, const char *op)
{
#ifdef NBC_ASAN
    size_t nb = sizeof(nb_tensor);
#else
    size_t nb = nbc_round16(NBC_TENSOR_BYTES(rank));
#endif
    bool small = data_bytes > 0 && data_bytes <= NBC_SMALL_DATA;
    char *p = nbc_alloc(g, nb + extra + (small ? nbc_round16(data_bytes) : 0), op);
    if (!p)
        return NULL;
    NBC_POISON(p + NBC_TENSOR_BYTES(rank), nb - NBC_TENSOR_BYTES(rank));
    *tail = p + nb;
    *data = small ? p + nb + extra : nbc_alloc_data(g, data_bytes, op);
    return *data ? (nb_tensor *)p : NULL;
}
/* Bytes of one element. */
static inline size_t nbc_dtype_size(nb_dtype dt)
{
    return dt == NB_F32 ? 4 : 8;
}
/* Validate a dtype/rank/shape triple, recording an error under @p op. */
nb_status nbc_check_desc(nb_graph *g, nb_dtype dt, int rank, const int64_t *shape, const char *op);
/* Allocate out's data for its (already set) dtype and shape. */
nb_status nbc_tensor_alloc_data(nb_graph *g, nb_tensor *t, const char *op);
/* Same dtype, rank and sizes. */
static inline bool nbc_same_shape(const nb_tensor *a, const nb_tensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}
/* "[2,3]" of a tensor into buf. */
const char *nbc_shp(const nb_tensor *t, char *buf, size_t n);
/* Set every element of t to v. */
void nbc_fill(nb_tensor *t, double v);
/* True when every element is finite. */
bool nbc_all_finite(const nb_tensor *t);
/* Σ x² over t's elements (NULL: 0), in double: eight partial sums, element
 * i into sum i mod 8, added pairwise at the end (a fixed order, so the
 * same bits every time; vectorised, where one running sum waits for each
 * addition). */
double nbc_sum_squares(const nb_tensor *t);
/* Flat index of the first element that is NaN or Inf, or -1. */
int64_t nbc_first_nonfinite(const nb_tensor *t);
/* "NaN at [0,2]" / "Inf at [3]" / "-Inf at []" of t's element k into buf. */
const char *nbc_nonfinite_at(const nb_tensor *t, int64_t k, char *buf, size_t n);

/* The allocation hook of a model (and its user data in *ud), so code that
 * builds on a model allocates through the same hook. */
nb_alloc_fn nbc_model_allocator(const nb_model *m, void **ud);

/* nb_error_set with the byte offset (-1: none) and the name (NULL: none)
 * of the problem as well. */
nb_status nbc_error_at(nb_error *e, nb_status code, const char *where, int64_t offset,
                       const char *name, const char *fmt, ...) NB_PRINTF(6, 7);

/* Length of the well-formed UTF-8 sequence at s (of n bytes): 1..4, or 0
 * when it is malformed (overlong, a surrogate, above U+10FFFF, cut short). */
size_t nbc_utf8_seq(const unsigned char *s, size_t n);

/* Check metadata text of len bytes against the rules of nb_meta_check. On
 * failure returns false, sets *at to the byte offset of the problem and
 * writes a sentence to why[0..n). */
bool nbc_meta_check(const char *text, size_t len, size_t *at, char *why, size_t n);

/* Threads for a loop over n elements: 1 below the parallel threshold. */
int nbc_threads_for(const nb_graph *g, int64_t n);

/* One task of a parallel job: task t of n. */
typedef void nbc_task_fn(void *ctx, int t, int n);

/* Run fn(ctx, t, n) once for each t in 0..n-1, on the process's worker
 * threads and the calling one (src/core/workers.c), and return when all
 * have run. Tasks may run on any thread, in any order, at the same time
 * (all of them on the caller when the team is busy or cannot start), so
 * what a task computes must depend on t and n only. Allocates only when it
 * starts workers, on the first jobs that need them. */
void nbc_parallel(int n, nbc_task_fn *fn, void *ctx);

/* Workers started so far in this process (for tests). */
int nbc_workers_started(void);

#endif
