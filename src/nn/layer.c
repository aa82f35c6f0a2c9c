/* The layer protocol: a layer is an nb_layer_def (its kind's forward,
 * output width, description and build) with a name, the parameters it
 * added, its sublayers and its state. The library's layers (layers.c) and
 * a program's are made, run, walked and freed here alike. */

#include "nn_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

bool nbn_name_ok(const char *name)
{
    size_t n = strlen(name);
    return n > 0 && n < NBN_NAME_MAX && !strpbrk(name, " =\n\r\t");
}

bool nbn_kind_ok(const char *kind)
{
    if (!*kind || strlen(kind) > 63)
        return false;
    for (const char *p = kind; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

nb_status nbn_layer_make(nb_alloc_fn alloc, void *ud, const nb_layer_def *def, const char *name,
                         nb_rng *rng, nb_layer **out)
{
    if (!out)
        return NB_ERR_NULL;
    *out = NULL;
    if (!def || !def->forward || !def->kind || !name)
        return NB_ERR_NULL;
    /* a sequence may be nameless: the network of nb_mlp_new without prefix */
    if (!nbn_kind_ok(def->kind) || strlen(name) >= NBN_NAME_MAX ||
        (*name && !nbn_name_ok(name)) || def->state_size > ((size_t)1 << 30))
        return NB_ERR_ARG;
    nb_layer *l = alloc(ud, NULL, 0, sizeof *l);
    if (!l)
        return NB_ERR_NOMEM;
    memset(l, 0, sizeof *l);
    if (def->state_size) {
        l->state = alloc(ud, NULL, 0, def->state_size);
        if (!l->state) {
            alloc(ud, l, sizeof *l, 0);
            return NB_ERR_NOMEM;
        }
        memset(l->state, 0, def->state_size);
    }
    l->def = def;
    l->alloc = alloc;
    l->ud = ud;
    l->rng = rng;
    memcpy(l->name, name, strlen(name) + 1);
    *out = l;
    return NB_OK;
}

nb_status nbn_model_layer(nb_model *m, const nb_layer_def *def, const char *name, nb_rng *rng,
                          nb_layer **out)
{
    if (out)
        *out = NULL;
    if (!m)
        return NB_ERR_NULL;
    void *ud;
    nb_alloc_fn alloc = nbc_model_allocator(m, &ud);
    return nbn_layer_make(alloc, ud, def, name, rng, out);
}

nb_status nb_layer_new(const nb_layer_def *def, const char *name, const nb_layer_opts *o,
                       nb_layer **out)
{
    if (out)
        *out = NULL;
    if (name && !*name && def && def != &nbn_sequential_def)
        return out ? NB_ERR_ARG : NB_ERR_NULL;
    return nbn_layer_make(nb_default_alloc, NULL, def, name, o ? o->rng : NULL, out);
}

void nb_layer_free(nb_layer *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n_items; i++)
        nb_layer_free(l->items[i]);
    if (l->def->release)
        l->def->release(l);
    if (l->items)
        l->alloc(l->ud, l->items, (size_t)l->cap_items * sizeof *l->items, 0);
    if (l->params)
        l->alloc(l->ud, l->params, (size_t)l->cap_params * sizeof *l->params, 0);
    if (l->state)
        l->alloc(l->ud, l->state, l->def->state_size, 0);
    l->alloc(l->ud, l, sizeof *l, 0);
}

void *nb_layer_state(const nb_layer *l)
{
    return l ? l->state : NULL;
}

const nb_layer_def *nb_layer_get_def(const nb_layer *l)
{
    return l ? l->def : NULL;
}

nb_rng *nb_layer_rng(const nb_layer *l)
{
    return l ? l->rng : NULL;
}

/* Room for one more pointer in *list (of *n used, *cap held). */
static bool grow(nb_layer *l, void ***list, int n, int *cap)
{
    if (n < *cap)
        return true;
    int c = *cap ? 2 * *cap : 4;
    if (c > 1 << 20)
        return false;
    void **p = l->alloc(l->ud, *list, (size_t)*cap * sizeof *p, (size_t)c * sizeof *p);
    if (!p)
        return false;
    *list = p;
    *cap = c;
    return true;
}

nb_status nb_layer_add_param(nb_layer *l, nb_model *m, const char *suffix, nb_dtype dt, int rank,
                             const int64_t *shape, nb_tensor **out)
{
    if (out)
        *out = NULL;
    if (!l || !m || !suffix || (rank > 0 && !shape))
        return NB_ERR_NULL;
    if (dt != NB_F32 && dt != NB_F64)
        return NB_ERR_DTYPE;
    if (!*suffix || strpbrk(suffix, " =\n\r\t") || rank < 0 || rank > NB_MAX_RANK)
        return NB_ERR_ARG;
    char name[NBN_NAME_MAX + 64];
    int k = snprintf(name, sizeof name, "%s.%s", l->name, suffix);
    if (k < 0 || (size_t)k >= sizeof name)
        return NB_ERR_ARG;
    int64_t count = 1;
    for (int i = 0; i < rank; i++)
        if (shape[i] < 0 || nbc_mul_overflows(count, shape[i], &count))
            return NB_ERR_ARG;
    if (nb_model_get(m, name))
        return NB_ERR_EXISTS;
    if (l->bytes) {
        int64_t bytes = count * (int64_t)nb_dtype_size(dt);
        if (count > INT64_MAX / 8 || (l->max_bytes > 0 && bytes > l->max_bytes - *l->bytes))
            return NB_ERR_ARG;
        *l->bytes += bytes;
    }
    if (!grow(l, (void ***)&l->params, l->n_params, &l->cap_params))
        return NB_ERR_NOMEM;
    nb_tensor *t = NULL;
    nb_status st = nb_model_add(m, name, dt, rank, shape, &t);
    if (st != NB_OK)
        return st;
    l->params[l->n_params++] = t;
    if (out)
        *out = t;
    return NB_OK;
}

int nb_layer_param_count(const nb_layer *l)
{
    return l ? l->n_params : 0;
}

nb_tensor *nb_layer_param(const nb_layer *l, int i)
{
    return l && i >= 0 && i < l->n_params ? l->params[i] : NULL;
}

nb_status nb_layer_add_child(nb_layer *parent, nb_layer *child)
{
    if (!parent || !child) {
        nb_layer_free(child);
        return NB_ERR_NULL;
    }
    if (parent == child)
        return NB_ERR_ARG;
    if (!grow(parent, (void ***)&parent->items, parent->n_items, &parent->cap_items)) {
        nb_layer_free(child);
        return parent->cap_items >= 1 << 20 ? NB_ERR_ARG : NB_ERR_NOMEM;
    }
    parent->items[parent->n_items++] = child;
    return NB_OK;
}

nb_status nb_sequential_add(nb_layer *seq, nb_layer *layer)
{
    if (seq && layer && seq->def != &nbn_sequential_def) {
        nb_layer_free(layer);
        return NB_ERR_ARG;
    }
    return nb_layer_add_child(seq, layer);
}

static const nb_layer_def *const BUILTIN[] = {
    &nbn_linear_def,    &nbn_maxout_def,     &nbn_activation_def, &nbn_dropout_def,
    &nbn_batch_norm_def, &nbn_sequential_def, &nbn_rnn_defs[0],    &nbn_rnn_defs[1],
    &nbn_rnn_defs[2],   &nbn_rnn_defs[3],    &nbn_rnn_defs[4],    &nbn_rnn_defs[5],
    &nbn_reshape_def,   &nbn_gcn_def,        &nbn_layer_norm_def, &nbn_embedding_def,
    &nbn_conv2d_def,    &nbn_max_pool2d_def, &nbn_avg_pool2d_def, &nbn_flatten_def,
};

const nb_layer_def *nb_layer_builtin(const char *kind)
{
    for (size_t i = 0; kind && i < sizeof BUILTIN / sizeof *BUILTIN; i++)
        if (!strcmp(BUILTIN[i]->kind, kind))
            return BUILTIN[i];
    return NULL;
}

/* ------------------------------------------------------------- forward */

nb_tensor *nb_layer_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    if (!l) {
        nbc_error(g, NB_ERR_NULL, "layer_forward", "layer is NULL");
        return NULL;
    }
    if (!x || !g)
        return NULL;
    nb_tensor *y = l->def->forward(g, l, x, training);
    char sx[96], sy[96];
    if (!y && nb_graph_status(g) != NB_OK)
        return NULL;
    if (!y) {
        nbc_error_named(g, NB_ERR_ARG, l->name, l->name,
                        "the %s layer returned no tensor for input %s and recorded no error",
                        l->def->kind, nbc_shp(x, sx, sizeof sx));
        return NULL;
    }
    if (l->def->out_width) {
        int64_t want = l->def->out_width(l, x->rank > 0 ? x->shape[x->rank - 1] : 1);
        if (want >= 0 && (y->rank == 0 || y->shape[y->rank - 1] != want)) {
            nbc_error_named(g, NB_ERR_SHAPE, l->name, l->name,
                            "the %s layer returned %s for input %s; its width is %lld",
                            l->def->kind, nbc_shp(y, sy, sizeof sy), nbc_shp(x, sx, sizeof sx),
                            (long long)want);
            return NULL;
        }
    }
    return y;
}

/* ------------------------------------------------------------ walking */

nb_layer_kind nb_layer_get_kind(const nb_layer *l)
{
    if (!l)
        return (nb_layer_kind)0;
    const nb_layer_def *d = l->def;
    return d == &nbn_linear_def       ? NB_LAYER_LINEAR
           : d == &nbn_maxout_def     ? NB_LAYER_MAXOUT
           : d == &nbn_activation_def ? NB_LAYER_ACTIVATION
           : d == &nbn_dropout_def    ? NB_LAYER_DROPOUT
           : d == &nbn_batch_norm_def ? NB_LAYER_BATCH_NORM
           : d == &nbn_sequential_def ? NB_LAYER_SEQUENTIAL
                                      : NB_LAYER_OTHER;
}

const char *nb_layer_name(const nb_layer *l)
{
    return l ? l->name : "";
}

int nb_layer_count(const nb_layer *l)
{
    return l ? l->n_items : 0;
}

nb_layer *nb_layer_at(const nb_layer *l, int i)
{
    return i >= 0 && i < nb_layer_count(l) ? l->items[i] : NULL;
}

nb_layer *nb_layer_find(const nb_layer *l, const char *name)
{
    if (!l || !name)
        return NULL;
    if (strcmp(l->name, name) == 0)
        return (nb_layer *)l;
    for (int i = 0; i < l->n_items; i++) {
        nb_layer *found = nb_layer_find(l->items[i], name);
        if (found)
            return found;
    }
    return NULL;
}

/* ------------------------------------------------------------ settings */

static bool key_ok(const char *key)
{
    if (!*key)
        return false;
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-.", *p))
            return false;
    return true;
}

nb_status nb_layer_setting_put(char *out, size_t cap, const char *key, const char *fmt, ...)
{
    if (!out || !key || !fmt)
        return NB_ERR_NULL;
    size_t used = strnlen(out, cap);
    if (used >= cap || !key_ok(key))
        return NB_ERR_ARG;
    int k = snprintf(out + used, cap - used, "%s%s=", used ? " " : "", key);
    if (k < 0 || (size_t)k >= cap - used) {
        out[used] = '\0';
        return NB_ERR_ARG;
    }
    size_t at = used + (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    int v = vsnprintf(out + at, cap - at, fmt, ap);
    va_end(ap);
    if (v < 0 || (size_t)v >= cap - at || strpbrk(out + at, " =\n\r\t")) {
        out[used] = '\0';
        return NB_ERR_ARG;
    }
    return NB_OK;
}

/* Where the value of @p key begins in @p settings (NULL: not there). */
static const char *find_value(const char *settings, const char *key, size_t *len)
{
    size_t n = strlen(key);
    for (const char *p = settings; *p;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ' ');
        if (!end)
            end = p + strlen(p);
        if ((size_t)(end - p) > n && !strncmp(p, key, n) && p[n] == '=') {
            *len = (size_t)(end - p) - n - 1;
            return p + n + 1;
        }
        p = end;
    }
    return NULL;
}

nb_status nb_layer_setting_get(const char *settings, const char *key, char *buf, size_t cap)
{
    if (!settings || !key || !buf)
        return NB_ERR_NULL;
    size_t len;
    const char *v = find_value(settings, key, &len);
    if (!v)
        return NB_ERR_NOTFOUND;
    if (len >= cap)
        return NB_ERR_ARG;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return NB_OK;
}

/* The value of @p key as an integer (@p i) or a finite double (@p f). */
static nb_status setting_number(const char *settings, const char *key, int64_t *i, double *f)
{
    char buf[64];
    nb_status st = nb_layer_setting_get(settings, key, buf, sizeof buf);
    if (st != NB_OK || (!i && !f))
        return st == NB_ERR_ARG ? NB_ERR_PARSE : st != NB_OK ? st : NB_ERR_NULL;
    char *end;
    errno = 0;
    long long n = i ? strtoll(buf, &end, 10) : 0;
    double v = f ? strtod(buf, &end) : 0;
    if (!*buf || *end || errno || isspace((unsigned char)*buf) || !isfinite(v))
        return NB_ERR_PARSE;
    if (i)
        *i = n;
    else
        *f = v;
    return NB_OK;
}

nb_status nb_layer_setting_get_i64(const char *settings, const char *key, int64_t *out)
{
    return setting_number(settings, key, out, NULL);
}

nb_status nb_layer_setting_get_f64(const char *settings, const char *key, double *out)
{
    return setting_number(settings, key, NULL, out);
}

nb_status nbn_need_i64(const nb_layer *l, const char *settings, const char *key, int64_t lo,
                       int64_t hi, int64_t *out, nb_error *err)
{
    nb_status st = nb_layer_setting_get_i64(settings, key, out);
    if (st == NB_OK && *out >= lo && *out <= hi)
        return NB_OK;
    return nbc_error_at(err, st == NB_OK ? NB_ERR_ARG : st, "nb_layer_from_description", -1,
                        l->name, "layer '%s' (%s): %s= is %s (an integer from %lld to %lld)",
                        l->name, l->def->kind, key, st == NB_ERR_NOTFOUND ? "missing" : "not valid",
                        (long long)lo, (long long)hi);
}

nb_status nbn_names_free(const char *prefix, const nb_model *m, const char *const *suffix, int n)
{
    char full[NBN_NAME_MAX + 64];
    for (int i = 0; i < n; i++) {
        int k = snprintf(full, sizeof full, "%s.%s", prefix, suffix[i]);
        if (k < 0 || (size_t)k >= sizeof full)
            return NB_ERR_ARG;
        if (nb_model_get(m, full))
            return NB_ERR_EXISTS;
    }
    return NB_OK;
}

nb_status nbn_pick_init(const nb_layer_opts *o, nb_init fallback, nb_init *init)
{
    *init = o->init == NB_INIT_AUTO ? fallback : o->init;
    if ((int)*init <= NB_INIT_AUTO || *init >= NB_INIT_COUNT)
        return NB_ERR_ARG;
    if (*init >= NB_INIT_SMALL_NORMAL && !o->rng)
        return NB_ERR_NULL;
    return NB_OK;
}

nb_status nbn_weight_bias_ready(const nb_layer *l, const nb_model *m, const nb_layer_opts *o,
                                nb_init fallback, nb_init *init)
{
    static const char *const sfx[2] = {"weight", "bias"};
    nb_status st = nbn_pick_init(o, fallback, init);
    return st != NB_OK ? st : nbn_names_free(l->name, m, sfx, o->no_bias ? 1 : 2);
}

nb_status nbn_finish(nb_layer *l, nb_status st, nb_layer **out)
{
    if (st != NB_OK) {
        nb_layer_free(l);
        return st;
    }
    *out = l;
    return NB_OK;
}
