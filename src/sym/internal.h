/* Internals of the symbolic module (prefix nbs_): the node layout, the pool,
 * hash-consing and the simplifying constructors shared by its files. */
#ifndef NABLA_SYM_INTERNAL_H
#define NABLA_SYM_INTERNAL_H

#include "nabla/sym.h"

#include <stdarg.h>
#include <string.h>

/* Longest variable or function name the parser accepts, in bytes. */
#define NBS_MAX_NAME 256

/* uthash allocates through the pool in scope (every caller names it `s`)
 * and reports a failed allocation instead of exiting. */
#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz) s->alloc(s->ud, NULL, 0, (sz))
#define uthash_free(ptr, sz) s->alloc(s->ud, (ptr), (sz), 0)
#define uthash_nonfatal_oom(obj) (oom = 1)
#include <uthash.h>

struct nb_expr {
    UT_hash_handle hh;
    nb_sym_kind kind;
    int n_args;
    uint64_t id;          /* creation order in the pool: the canonical order */
    double value;         /* NB_SYM_NUM */
    const char *name;     /* NB_SYM_VAR (NUL-terminated, inside the key) */
    const nb_expr **args; /* n_args operands */
    int depth;            /* 1 + deepest operand */
    double tree;          /* size as a tree */
    const unsigned char *key;
    size_t key_len;
    /* scratch of one walk at a time, valid when mark == the walk's epoch */
    uint64_t mark;
    union {
        double num;
        const nb_expr *expr;
        nb_tensor *tensor;
    } memo;
};

typedef struct nbs_chunk {
    struct nbs_chunk *next;
    size_t size, used;
} nbs_chunk;

struct nb_sym {
    nb_alloc_fn alloc;
    void *ud;
    nb_expr *table; /* uthash of every node by key */
    nbs_chunk *chunks;
    uint64_t next_id;
    uint64_t epoch; /* stamp of the current walk */
    int64_t n_nodes;
    nb_error err;     /* the last fallible call's error */
    const char *call; /* that call's name, the error's where */
    char *text; /* nb_sym_str's buffer */
    size_t text_cap;
    unsigned char *keybuf; /* scratch for building keys */
    size_t keybuf_cap;
};

/* Record an error (code, offset or -1, printf message) of the current call;
 * returns code. */
nb_status nbs_error(nb_sym *s, nb_status code, int64_t offset, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* NB_ERR_NOTFOUND for a variable without a value; the error's name is it. */
nb_status nbs_unknown_var(nb_sym *s, const char *name);
/* Start the public call @p call (its name): no error. */
void nbs_clear(nb_sym *s, const char *call);
/* Bump allocation that lives until the pool is freed (NULL + error on failure). */
void *nbs_alloc(nb_sym *s, size_t n);
/* A fresh walk stamp. */
uint64_t nbs_new_epoch(nb_sym *s);

/* Hash-consed nodes exactly as given (operands of commutative kinds sorted). */
const nb_expr *nbs_num(nb_sym *s, double v);
const nb_expr *nbs_var(nb_sym *s, const char *name, size_t len);
const nb_expr *nbs_make(nb_sym *s, nb_sym_kind kind, const nb_expr *const *args, int n);
const nb_expr *nbs_make1(nb_sym *s, nb_sym_kind kind, const nb_expr *a);
const nb_expr *nbs_make2(nb_sym *s, nb_sym_kind kind, const nb_expr *a, const nb_expr *b);
/* Flattening sum/product of n terms as written (no collecting). */
const nb_expr *nbs_flat(nb_sym *s, nb_sym_kind kind, const nb_expr *const *args, int n);
bool nbs_commutative(nb_sym_kind kind);
int nbs_arity(nb_sym_kind kind); /* -1: two or more */
const char *nbs_kind_name(nb_sym_kind kind);
/* Canonical total order of nodes. */
int nbs_cmp(const nb_expr *a, const nb_expr *b);
bool nbs_is_num(const nb_expr *e, double v);

/* Simplifying constructors (simplify.c): results are in simplified form
 * when their operands are. NULL with the pool's error on failure. */
const nb_expr *nbs_add(nb_sym *s, const nb_expr *const *args, int n);
const nb_expr *nbs_mul(nb_sym *s, const nb_expr *const *args, int n);
const nb_expr *nbs_add2(nb_sym *s, const nb_expr *a, const nb_expr *b);
const nb_expr *nbs_mul2(nb_sym *s, const nb_expr *a, const nb_expr *b);
const nb_expr *nbs_pow(nb_sym *s, const nb_expr *b, const nb_expr *e);
const nb_expr *nbs_fn(nb_sym *s, nb_sym_kind kind, const nb_expr *a);
const nb_expr *nbs_fn2(nb_sym *s, nb_sym_kind kind, const nb_expr *a, const nb_expr *b);
/* Any node rebuilt with the simplifying constructors from new operands. */
const nb_expr *nbs_rebuild(nb_sym *s, const nb_expr *e, const nb_expr *const *args);
/* The simplified form of @p e (not NULL) within the current call. */
const nb_expr *nbs_simplify(nb_sym *s, const nb_expr *e);

/* Graphs of nabla primitives (graph.c). The variables of a graph-building
 * call, bound to tensors of one dtype. */
typedef struct nbs_binding {
    nb_graph *g;
    nb_dtype dt; /* the values' dtype, f64 when there are none */
    int n;
    const char *const *names;
    nb_tensor *const *values;
} nbs_binding;
/* Check the arguments of the call @p what ("to_graph") and bind them;
 * @p have says whether its @p need ("an expression") was given. */
bool nbs_bind(nb_sym *s, nbs_binding *b, const char *what, const char *need, bool have, nb_graph *g,
              int n, const char *const *names, nb_tensor *const *values);
/* The tensor bound to the @p len bytes of @p name; NULL when unbound. */
nb_tensor *nbs_graph_var(const nbs_binding *b, const char *name, size_t len);
/* Operators that are written but are not kinds: a - b, a / b, -a. */
enum { NBS_SUB = NB_SYM_KIND_COUNT, NBS_DIV, NBS_NEG };
/* The primitive of a kind (a function, NB_SYM_ADD, NB_SYM_MUL, NB_SYM_POW as
 * nb_pow; tan is sin/cos) or of NBS_SUB, NBS_DIV, NBS_NEG, applied to @p a
 * (and @p b for two operands). NULL with the graph's error on failure. */
nb_tensor *nbs_graph_apply(nb_graph *g, int op, nb_tensor *a, nb_tensor *b);
/* @p r, or NULL with NB_ERR_GRAPH ("building @p what in the graph failed:
 * <the graph's error>") unless the pool holds an error already. */
nb_tensor *nbs_graph_built(nb_sym *s, const nbs_binding *b, nb_tensor *r, const char *what);

/* Scalar semantics shared by folding and evaluation (eval.c). */
double nbs_apply_num(nb_sym_kind kind, const double *x, int n);

#endif
