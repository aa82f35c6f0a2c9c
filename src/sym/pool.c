/* The expression pool: memory, errors, and hash-consing (uthash: key = kind
 * and operands -> node), so that structurally equal expressions are one
 * node. Nodes live in chunks that are freed with the pool. */

#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define NBS_CHUNK (64 * 1024)

nb_sym *nb_sym_new_alloc(nb_alloc_fn alloc, void *ud)
{
    if (!alloc)
        return NULL;
    nb_sym *s = alloc(ud, NULL, 0, sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->alloc = alloc;
    s->ud = ud;
    nb_error_clear(&s->err);
    return s;
}

nb_sym *nb_sym_new(void)
{
    return nb_sym_new_alloc(nb_default_alloc, NULL);
}

void nb_sym_free(nb_sym *s)
{
    if (!s)
        return;
    HASH_CLEAR(hh, s->table);
    nbs_chunk *c = s->chunks;
    while (c) {
        nbs_chunk *next = c->next;
        s->alloc(s->ud, c, c->size, 0);
        c = next;
    }
    if (s->text)
        s->alloc(s->ud, s->text, s->text_cap, 0);
    if (s->keybuf)
        s->alloc(s->ud, s->keybuf, s->keybuf_cap, 0);
    s->alloc(s->ud, s, sizeof *s, 0);
}

nb_status nbs_error(nb_sym *s, nb_status code, int64_t offset, const char *fmt, ...)
{
    nb_error_set(&s->err, code, s->call, "%s", "");
    s->err.offset = offset;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err.msg, sizeof s->err.msg, fmt, ap);
    va_end(ap);
    return code;
}

nb_status nbs_unknown_var(nb_sym *s, const char *name)
{
    nbs_error(s, NB_ERR_NOTFOUND, -1, "unknown variable '%s'", name);
    snprintf(s->err.name, sizeof s->err.name, "%s", name);
    return NB_ERR_NOTFOUND;
}

void nbs_clear(nb_sym *s, const char *call)
{
    nb_error_clear(&s->err);
    s->call = call;
}

nb_status nb_sym_status(const nb_sym *s)
{
    return s ? s->err.status : NB_ERR_NULL;
}

const nb_error *nb_sym_error(const nb_sym *s)
{
    static const nb_error no_pool = {.status = NB_ERR_NULL, .offset = -1, .msg = "no pool"};
    return s ? &s->err : &no_pool;
}

int64_t nb_sym_node_count(const nb_sym *s)
{
    return s ? s->n_nodes : 0;
}

uint64_t nbs_new_epoch(nb_sym *s)
{
    return ++s->epoch;
}

void *nbs_alloc(nb_sym *s, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    nbs_chunk *c = s->chunks;
    size_t head = (sizeof(nbs_chunk) + 15) & ~(size_t)15;
    if (!c || c->size - c->used < n) {
        if (n > SIZE_MAX / 2 - head) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (a node of %zu bytes)", n);
            return NULL;
        }
        size_t size = head + (n > NBS_CHUNK ? n : NBS_CHUNK);
        c = s->alloc(s->ud, NULL, 0, size);
        if (!c) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (a chunk of %zu bytes)", size);
            return NULL;
        }
        c->size = size;
        c->used = head;
        c->next = s->chunks;
        s->chunks = c;
    }
    void *p = (char *)c + c->used;
    c->used += n;
    return p;
}

/* ------------------------------------------------------------ kinds */

static const struct {
    const char *name;
    int arity; /* -1: two or more */
} kinds[NB_SYM_KIND_COUNT] = {
    [NB_SYM_NUM] = {"num", 0},         [NB_SYM_VAR] = {"var", 0},   [NB_SYM_ADD] = {"+", -1},
    [NB_SYM_MUL] = {"*", -1},          [NB_SYM_POW] = {"^", 2},     [NB_SYM_SIN] = {"sin", 1},
    [NB_SYM_COS] = {"cos", 1},         [NB_SYM_TAN] = {"tan", 1},   [NB_SYM_EXP] = {"exp", 1},
    [NB_SYM_LN] = {"ln", 1},           [NB_SYM_SQRT] = {"sqrt", 1}, [NB_SYM_TANH] = {"tanh", 1},
    [NB_SYM_SIGMOID] = {"sigmoid", 1}, [NB_SYM_ABS] = {"abs", 1},   [NB_SYM_ERF] = {"erf", 1},
    [NB_SYM_SIGN] = {"sign", 1},       [NB_SYM_MAX] = {"max", 2},   [NB_SYM_MIN] = {"min", 2},
};
_Static_assert(sizeof kinds / sizeof kinds[0] == NB_SYM_KIND_COUNT, "one entry per kind");

int nbs_arity(nb_sym_kind kind)
{
    return kinds[kind].arity;
}

const char *nbs_kind_name(nb_sym_kind kind)
{
    return kinds[kind].name;
}

bool nbs_commutative(nb_sym_kind kind)
{
    return kind == NB_SYM_ADD || kind == NB_SYM_MUL || kind == NB_SYM_MAX || kind == NB_SYM_MIN;
}

bool nbs_is_num(const nb_expr *e, double v)
{
    return e->kind == NB_SYM_NUM && e->value == v;
}

/* Numbers (by value), then variables (by name), then the rest (by age). */
int nbs_cmp(const nb_expr *a, const nb_expr *b)
{
    int ra = a->kind == NB_SYM_NUM ? 0 : a->kind == NB_SYM_VAR ? 1 : 2;
    int rb = b->kind == NB_SYM_NUM ? 0 : b->kind == NB_SYM_VAR ? 1 : 2;
    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (ra == 0)
        return a->value < b->value ? -1 : a->value > b->value;
    if (ra == 1)
        return strcmp(a->name, b->name);
    return a->id < b->id ? -1 : a->id > b->id;
}

static int cmp_ptr(const void *pa, const void *pb)
{
    return nbs_cmp(*(const nb_expr *const *)pa, *(const nb_expr *const *)pb);
}

/* ------------------------------------------------------- hash-consing */

/* A key is the kind in its first KEY_HEAD bytes (so that what follows is
 * aligned for pointers and doubles), then the value, name or operands. */
#define KEY_HEAD 8

static unsigned char *key_space(nb_sym *s, size_t n)
{
    if (n > s->keybuf_cap) {
        size_t cap = n < 256 ? 256 : n;
        unsigned char *p = s->alloc(s->ud, s->keybuf, s->keybuf_cap, cap);
        if (!p) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (a key of %zu bytes)", n);
            return NULL;
        }
        s->keybuf = p;
        s->keybuf_cap = cap;
    }
    return s->keybuf;
}

/* Find the node with this key, or make it from the template. */
static const nb_expr *intern(nb_sym *s, const nb_expr *tmpl, size_t key_len)
{
    nb_expr *found = NULL;
    HASH_FIND(hh, s->table, s->keybuf, key_len, found);
    if (found)
        return found;
    size_t n_args = (size_t)tmpl->n_args;
    nb_expr *e = nbs_alloc(s, sizeof *e + n_args * sizeof(nb_expr *) + key_len + 1);
    if (!e)
        return NULL;
    *e = *tmpl;
    e->args = (const nb_expr **)(e + 1);
    if (n_args)
        memcpy(e->args, tmpl->args, n_args * sizeof(nb_expr *));
    unsigned char *key = (unsigned char *)(e->args + n_args);
    memcpy(key, s->keybuf, key_len);
    key[key_len] = '\0';
    e->key = key;
    e->key_len = key_len;
    if (e->kind == NB_SYM_VAR)
        e->name = (const char *)key + KEY_HEAD;
    e->id = s->next_id++;
    e->mark = 0;
    int oom = 0;
    HASH_ADD_KEYPTR(hh, s->table, e->key, e->key_len, e);
    if (oom) {
        nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (hash table)");
        return NULL;
    }
    s->n_nodes++;
    return e;
}

const nb_expr *nbs_num(nb_sym *s, double v)
{
    if (!isfinite(v)) {
        nbs_error(s, NB_ERR_ARG, -1, "constant %g is not finite", v);
        return NULL;
    }
    if (v == 0)
        v = 0; /* -0 and 0 are one constant */
    unsigned char *k = key_space(s, KEY_HEAD + sizeof v);
    if (!k)
        return NULL;
    memset(k, 0, KEY_HEAD);
    k[0] = NB_SYM_NUM;
    memcpy(k + KEY_HEAD, &v, sizeof v);
    nb_expr t = {.kind = NB_SYM_NUM, .value = v, .depth = 1, .tree = 1};
    return intern(s, &t, KEY_HEAD + sizeof v);
}

const nb_expr *nbs_var(nb_sym *s, const char *name, size_t len)
{
    unsigned char *k = key_space(s, KEY_HEAD + len);
    if (!k)
        return NULL;
    memset(k, 0, KEY_HEAD);
    k[0] = NB_SYM_VAR;
    memcpy(k + KEY_HEAD, name, len);
    nb_expr t = {.kind = NB_SYM_VAR, .value = NAN, .depth = 1, .tree = 1};
    return intern(s, &t, KEY_HEAD + len);
}

const nb_expr *nbs_make(nb_sym *s, nb_sym_kind kind, const nb_expr *const *args, int n)
{
    if (n < 1 || (size_t)n > (SIZE_MAX - KEY_HEAD) / sizeof(nb_expr *) / 2) {
        nbs_error(s, NB_ERR_ARG, -1, "%s: %d operands", nbs_kind_name(kind), n);
        return NULL;
    }
    nb_expr t = {.kind = kind, .n_args = n, .value = NAN, .tree = 1};
    int depth = 0;
    for (int i = 0; i < n; i++) {
        if (args[i]->depth > depth)
            depth = args[i]->depth;
        t.tree += args[i]->tree;
    }
    if (depth + 1 > NB_SYM_MAX_DEPTH) {
        nbs_error(s, NB_ERR_ARG, -1, "expression deeper than %d levels", NB_SYM_MAX_DEPTH);
        return NULL;
    }
    t.depth = depth + 1;
    size_t len = KEY_HEAD + (size_t)n * sizeof(nb_expr *);
    unsigned char *k = key_space(s, len);
    if (!k)
        return NULL;
    memset(k, 0, KEY_HEAD);
    k[0] = (unsigned char)kind;
    /* the key is the operands themselves (sorted for commutative kinds) */
    const nb_expr **ops = (const nb_expr **)(void *)(k + KEY_HEAD);
    memcpy(ops, args, (size_t)n * sizeof *ops);
    if (nbs_commutative(kind) && n > 1)
        qsort(ops, (size_t)n, sizeof *ops, cmp_ptr);
    t.args = ops; /* copied into the node by intern */
    return intern(s, &t, len);
}

const nb_expr *nbs_make1(nb_sym *s, nb_sym_kind kind, const nb_expr *a)
{
    if (!a)
        return NULL;
    return nbs_make(s, kind, &a, 1);
}

const nb_expr *nbs_make2(nb_sym *s, nb_sym_kind kind, const nb_expr *a, const nb_expr *b)
{
    if (!a || !b)
        return NULL;
    const nb_expr *ab[2] = {a, b};
    return nbs_make(s, kind, ab, 2);
}

const nb_expr *nbs_flat(nb_sym *s, nb_sym_kind kind, const nb_expr *const *args, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!args[i])
            return NULL;
        total += args[i]->kind == kind ? (size_t)args[i]->n_args : 1;
    }
    if (total == 0)
        return nbs_num(s, kind == NB_SYM_MUL ? 1 : 0);
    if (total == 1 && n == 1)
        return args[0];
    if (total > (size_t)INT32_MAX / 2) {
        nbs_error(s, NB_ERR_ARG, -1, "%s of %zu operands", nbs_kind_name(kind), total);
        return NULL;
    }
    const nb_expr **all = s->alloc(s->ud, NULL, 0, total * sizeof *all);
    if (!all) {
        nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (%zu operands)", total);
        return NULL;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        if (args[i]->kind == kind)
            for (int j = 0; j < args[i]->n_args; j++)
                all[k++] = args[i]->args[j];
        else
            all[k++] = args[i];
    }
    const nb_expr *e = nbs_make(s, kind, all, (int)total);
    s->alloc(s->ud, all, total * sizeof *all, 0);
    return e;
}

/* ----------------------------------------------------------- public */

const nb_expr *nb_sym_num(nb_sym *s, double v)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_num");
    return nbs_num(s, v);
}

static bool is_ident(const char *name, size_t *len)
{
    size_t n = 0;
    if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
          name[0] == '_'))
        return false;
    while ((name[n] >= 'a' && name[n] <= 'z') || (name[n] >= 'A' && name[n] <= 'Z') ||
           (name[n] >= '0' && name[n] <= '9') || name[n] == '_')
        n++;
    *len = n;
    return name[n] == '\0';
}

const nb_expr *nb_sym_var(nb_sym *s, const char *name)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_var");
    size_t len;
    if (!name) {
        nbs_error(s, NB_ERR_NULL, -1, "variable name is NULL");
        return NULL;
    }
    if (!is_ident(name, &len)) {
        nbs_error(s, NB_ERR_ARG, -1, "'%.40s' is not an identifier", name);
        return NULL;
    }
    return nbs_var(s, name, len);
}

const nb_expr *nb_sym_apply(nb_sym *s, nb_sym_kind kind, const nb_expr *const *args, int n)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_apply");
    if ((int)kind <= NB_SYM_VAR || kind >= NB_SYM_KIND_COUNT) {
        nbs_error(s, NB_ERR_ARG, -1, "apply: kind %d is not an operation", (int)kind);
        return NULL;
    }
    int arity = nbs_arity(kind);
    if ((arity < 0 && n < 2) || (arity >= 0 && n != arity)) {
        nbs_error(s, NB_ERR_ARG, -1, "apply: %s takes %s%d operands, not %d", nbs_kind_name(kind),
                  arity < 0 ? "at least " : "", arity < 0 ? 2 : arity, n);
        return NULL;
    }
    if (!args) {
        nbs_error(s, NB_ERR_NULL, -1, "apply: args is NULL");
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!args[i]) {
            nbs_error(s, NB_ERR_NULL, -1, "apply: args[%d] is NULL", i);
            return NULL;
        }
    return nbs_make(s, kind, args, n);
}

nb_sym_kind nb_expr_kind(const nb_expr *e)
{
    return e ? e->kind : NB_SYM_KIND_COUNT;
}

double nb_expr_value(const nb_expr *e)
{
    return e && e->kind == NB_SYM_NUM ? e->value : NAN;
}

const char *nb_expr_name(const nb_expr *e)
{
    return e && e->kind == NB_SYM_VAR ? e->name : "";
}

int nb_expr_arity(const nb_expr *e)
{
    return e ? e->n_args : 0;
}

const nb_expr *nb_expr_arg(const nb_expr *e, int i)
{
    return e && i >= 0 && i < e->n_args ? e->args[i] : NULL;
}

double nb_sym_tree_size(const nb_expr *e)
{
    return e ? e->tree : 0;
}

/* Visit every node once (depth-first, operands first). */
static int64_t walk(const nb_expr *e, uint64_t epoch, const nb_expr **vars, int cap, int *n_vars)
{
    nb_expr *m = (nb_expr *)e; /* the mark is scratch, not part of the value */
    if (m->mark == epoch)
        return 0;
    m->mark = epoch;
    int64_t count = 1;
    for (int i = 0; i < e->n_args; i++)
        count += walk(e->args[i], epoch, vars, cap, n_vars);
    if (e->kind == NB_SYM_VAR) {
        if (*n_vars < cap && vars)
            vars[*n_vars] = e;
        (*n_vars)++;
    }
    return count;
}

int64_t nb_sym_dag_size(nb_sym *s, const nb_expr *e)
{
    if (!s || !e)
        return -1;
    int n_vars = 0;
    return walk(e, nbs_new_epoch(s), NULL, 0, &n_vars);
}

static int cmp_name(const void *pa, const void *pb)
{
    return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

int nb_sym_vars(nb_sym *s, const nb_expr *e, const char **names, int cap)
{
    if (!s)
        return -1;
    nbs_clear(s, "nb_sym_vars");
    if (!e || (cap > 0 && !names)) {
        nbs_error(s, NB_ERR_NULL, -1, "vars: %s is NULL", e ? "names" : "expression");
        return -1;
    }
    int n_vars = 0;
    walk(e, nbs_new_epoch(s), NULL, 0, &n_vars);
    if (n_vars == 0)
        return 0;
    const nb_expr **all = s->alloc(s->ud, NULL, 0, (size_t)n_vars * sizeof *all);
    if (!all) {
        nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (%d variables)", n_vars);
        return -1;
    }
    int got = 0;
    walk(e, nbs_new_epoch(s), all, n_vars, &got);
    const char **sorted = (const char **)all;
    for (int i = 0; i < n_vars; i++)
        sorted[i] = all[i]->name;
    qsort(sorted, (size_t)n_vars, sizeof *sorted, cmp_name);
    for (int i = 0; i < n_vars && i < cap; i++)
        names[i] = sorted[i];
    s->alloc(s->ud, all, (size_t)n_vars * sizeof *all, 0);
    return n_vars;
}
