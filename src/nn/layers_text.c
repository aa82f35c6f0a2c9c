/* Descriptions of any network ("arch=layers"): one line per layer,
 * "layer.<path>=<kind> name=<name> <its settings>", a sequence's layers
 * numbered below its own path ("layer.2.1", ...). Each kind writes and
 * reads its own settings (nb_layer_def's describe and build); this file
 * walks the network and the text. docs/nn.md ("Descriptions") has the
 * form. */

#include "nn_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "nabla/meta.h"

#include "layers_text.h"

/* Deepest nesting of sequences a description may hold. */
#define DEPTH_MAX 16
/* Most layers a description may hold (each is a metadata line). */
#define LAYERS_MAX 1000
/* Longest key: "layer." and DEPTH_MAX numbers of up to 4 digits. */
#define KEY_MAX (6 + DEPTH_MAX * 5 + 1)

static const char *const DESCRIBE = "nb_layer_describe";
static const char *const CHECK = "nb_layer_description_check";
static const char *const BUILD = "nb_layer_from_description";

/* ================================================ network -> description */

typedef struct writer {
    char *out;
    size_t cap;
    int dtype; /* of the parameters seen so far; -1: none yet */
    int count; /* layers written */
    char *line; /* room for one line's value */
    nb_error *err;
} writer;

static nb_status too_long(writer *w, const nb_layer *l)
{
    return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                        "the description does not fit in %zu bytes (at layer '%s')", w->cap,
                        l->name);
}

/* The layers of sequence @p seq, numbered under @p path. */
static nb_status put_items(writer *w, const nb_layer *seq, const char *path, int depth);

static nb_status put_layer(writer *w, const nb_layer *l, const char *key, int depth)
{
    const nb_layer_def *d = l->def;
    if (!d->describe || !d->build)
        return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "layer '%s' is a %s layer, whose definition %s", l->name, d->kind,
                            !d->describe ? "cannot describe it (no describe)"
                                         : "cannot build it again (no build)");
    if (!nbn_name_ok(l->name))
        return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "layer '%s' has a name a description cannot hold (empty, or with a "
                            "space, '=' or line break)",
                            l->name);
    if (++w->count > LAYERS_MAX || depth > DEPTH_MAX)
        return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "the network has more than %d layers or %d levels of sequences",
                            LAYERS_MAX, DEPTH_MAX);
    for (int i = 0; i < l->n_params; i++) {
        int dt = (int)l->params[i]->dtype;
        if (w->dtype >= 0 && dt != w->dtype)
            return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, nb_tensor_name(l->params[i]),
                                "the network mixes dtypes (%s has %s, others %s); a description "
                                "holds one",
                                nb_tensor_name(l->params[i]), nb_dtype_name((nb_dtype)dt),
                                nb_dtype_name((nb_dtype)w->dtype));
        w->dtype = dt;
    }
    size_t cap = (size_t)NB_META_MAX + 1;
    int k = snprintf(w->line, cap, "%s name=%s", d->kind, l->name);
    if (k < 0 || (size_t)k >= cap)
        return too_long(w, l);
    char *settings = w->line + k;
    *settings = '\0';
    char *own = settings + 1; /* the kind's settings, after a space */
    *own = '\0';
    nb_status st = d->describe(l, own, cap - (size_t)k - 1);
    if (st != NB_OK)
        return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "layer '%s' (%s) could not describe itself: %s", l->name, d->kind,
                            nb_status_str(st));
    char probe[2];
    if (nb_layer_setting_get(own, "name", probe, 0) != NB_ERR_NOTFOUND ||
        nb_layer_setting_get(own, "layers", probe, 0) != NB_ERR_NOTFOUND)
        return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "layer '%s' (%s) described itself with a setting name= or layers=, "
                            "which descriptions keep for their own",
                            l->name, d->kind);
    *settings = *own ? ' ' : '\0';
    bool seq = d == &nbn_sequential_def;
    if (seq) {
        size_t used = strlen(w->line);
        k = snprintf(w->line + used, cap - used, " layers=%d", l->n_items);
        if (k < 0 || (size_t)k >= cap - used)
            return too_long(w, l);
    }
    if (nb_meta_check(w->line, NULL) != NB_OK || strchr(w->line, '\n'))
        return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "layer '%s' (%s) described itself with text a description cannot "
                            "hold",
                            l->name, d->kind);
    if (nb_meta_put(w->out, w->cap, key, "%s", w->line) != NB_OK)
        return too_long(w, l);
    return seq ? put_items(w, l, key, depth + 1) : NB_OK;
}

static nb_status put_items(writer *w, const nb_layer *seq, const char *path, int depth)
{
    for (int i = 0; i < seq->n_items; i++) {
        char key[KEY_MAX + 8];
        int k = snprintf(key, sizeof key, "%s.%d", path, i + 1);
        if (k < 0 || (size_t)k >= sizeof key)
            return nbc_error_at(w->err, NB_ERR_ARG, DESCRIBE, -1, seq->name,
                                "the network has more than %d levels of sequences", DEPTH_MAX);
        nb_status st = put_layer(w, seq->items[i], key, depth);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

nb_status nbn_describe_layers(const nb_layer *net, char *out, size_t cap, nb_error *err)
{
    nb_error_clear(err);
    char *line = malloc((size_t)NB_META_MAX + 1);
    if (!line)
        return nbc_error_at(err, NB_ERR_NOMEM, DESCRIBE, -1, "", "out of memory");
    writer w = {out, cap, -1, 0, line, err};
    out[0] = '\0';
    bool seq = net->def == &nbn_sequential_def;
    nb_status st = nb_meta_put(out, cap, "arch", "layers");
    if (st == NB_OK)
        st = nb_meta_put(out, cap, "layers", "%d", seq ? net->n_items : 1);
    if (st == NB_OK && !seq) /* the network is that one layer, not a sequence of it */
        st = nb_meta_put(out, cap, "lone", "1");
    size_t dtype_at = strlen(out);
    if (st == NB_OK) /* the dtype is known once every layer is seen */
        st = nb_meta_put(out, cap, "dtype", "f32");
    if (st != NB_OK)
        st = too_long(&w, net);
    else if (seq)
        st = put_items(&w, net, "layer", 1);
    else
        st = put_layer(&w, net, "layer.1", 1);
    if (st == NB_OK && w.dtype == NB_F64)
        memcpy(out + dtype_at + strlen("\ndtype="), "f64", 3);
    free(line);
    if (st != NB_OK && cap > 0)
        out[0] = '\0';
    return st;
}

/* ================================================ description -> network */

/* The value of line @p key into buf (NB_META_MAX + 1 bytes): "<kind>
 * name=<name> <settings>", split into its kind, name and settings. */
typedef struct entry {
    char kind[64], name[NBN_NAME_MAX];
    const char *settings; /* inside buf */
    int n_items;          /* a sequence's layers= */
} entry;

static nb_status read_entry(const char *desc, const char *key, char *buf, entry *e,
                            const char *where, nb_error *err)
{
    nb_status st = nb_meta_get(desc, key, buf, (size_t)NB_META_MAX + 1);
    if (st == NB_ERR_NOTFOUND)
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, key,
                            "the description has no %s= (its sequence says it holds that layer)",
                            key);
    const char *sp = strchr(buf, ' ');
    size_t n = sp ? (size_t)(sp - buf) : strlen(buf);
    if (n == 0 || n >= sizeof e->kind)
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, key,
                            "%s= does not begin with a kind of layer", key);
    memcpy(e->kind, buf, n);
    e->kind[n] = '\0';
    e->settings = sp ? sp + 1 : buf + n;
    if (!nbn_kind_ok(e->kind))
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, key,
                            "%s=: '%s' is not a kind of layer (letters, digits, '_', '-')", key,
                            e->kind);
    st = nb_layer_setting_get(e->settings, "name", e->name, sizeof e->name);
    if (st != NB_OK || !nbn_name_ok(e->name))
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, key,
                            "%s= has no name= of 1 to %d bytes", key, NBN_NAME_MAX - 1);
    e->n_items = 0;
    if (!strcmp(e->kind, "sequential")) {
        int64_t k;
        if (nb_layer_setting_get_i64(e->settings, "layers", &k) != NB_OK || k < 0 ||
            k > LAYERS_MAX)
            return nbc_error_at(err, NB_ERR_PARSE, where, -1, key,
                                "%s= is a sequence without layers= (0 to %d)", key, LAYERS_MAX);
        e->n_items = (int)k;
    }
    return NB_OK;
}

/* Check the entries under @p path (a sequence of @p n layers). */
static nb_status check_items(const char *desc, const char *path, int n, int depth, int *count,
                             char *buf, nb_error *err)
{
    if (depth > DEPTH_MAX)
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, path,
                            "the description nests sequences more than %d deep", DEPTH_MAX);
    for (int i = 1; i <= n; i++) {
        char key[KEY_MAX + 8];
        snprintf(key, sizeof key, "%s.%d", path, i);
        entry e;
        nb_status st = read_entry(desc, key, buf, &e, CHECK, err);
        if (st == NB_OK && ++*count > LAYERS_MAX)
            st = nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key,
                              "the description has more than %d layers", LAYERS_MAX);
        if (st == NB_OK && e.n_items > 0)
            st = check_items(desc, key, e.n_items, depth + 1, count, buf, err);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

/* The top of a layers description: its number of layers, dtype, and
 * whether the network is its one layer (lone=1) rather than a sequence. */
static nb_status read_top(const char *desc, int *n, nb_dtype *dt, bool *lone, const char *where,
                          nb_error *err)
{
    int64_t k;
    if (nb_meta_get_i64(desc, "layers", &k) != NB_OK || k < 0 || k > LAYERS_MAX)
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, "layers",
                            "arch=layers needs layers= (0 to %d)", LAYERS_MAX);
    *n = (int)k;
    char v[8];
    if (nb_meta_get(desc, "dtype", v, sizeof v) != NB_OK ||
        (strcmp(v, "f32") && strcmp(v, "f64")))
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, "dtype",
                            "arch=layers needs dtype=f32 or dtype=f64");
    *dt = strcmp(v, "f64") ? NB_F32 : NB_F64;
    *lone = nb_meta_get(desc, "lone", NULL, 0) != NB_ERR_NOTFOUND;
    if (*lone && (nb_meta_get_i64(desc, "lone", &k) != NB_OK || k != 1 || *n != 1))
        return nbc_error_at(err, NB_ERR_PARSE, where, -1, "lone",
                            "lone= is 1 with layers=1 (the network is its one layer), or absent");
    return NB_OK;
}

nb_status nbn_check_layers(const char *desc, nb_error *err)
{
    int n = 0, count = 0;
    nb_dtype dt = NB_F32;
    bool lone = false;
    nb_status st = read_top(desc, &n, &dt, &lone, CHECK, err);
    if (st != NB_OK)
        return st;
    char *buf = malloc((size_t)NB_META_MAX + 1);
    if (!buf)
        return nbc_error_at(err, NB_ERR_NOMEM, CHECK, -1, "", "out of memory");
    st = check_items(desc, "layer", n, 1, &count, buf, err);
    free(buf);
    return st;
}

typedef struct builder {
    nb_model *m;
    const char *prefix;
    const char *desc;
    nb_layer_opts o;
    int64_t bytes;
    char *buf;
    nb_error *err;
} builder;

static const nb_layer_def *find_def(const builder *b, const char *kind)
{
    for (int i = 0; i < b->o.n_defs; i++)
        if (b->o.defs && b->o.defs[i] && b->o.defs[i]->kind && !strcmp(b->o.defs[i]->kind, kind))
            return b->o.defs[i];
    return nb_layer_builtin(kind);
}

static nb_status build_items(builder *b, nb_layer *seq, const char *path, int n);

static nb_status build_entry(builder *b, const char *key, nb_layer **out)
{
    *out = NULL;
    entry e;
    nb_status st = read_entry(b->desc, key, b->buf, &e, BUILD, b->err);
    if (st != NB_OK)
        return st;
    const nb_layer_def *def = find_def(b, e.kind);
    if (!def)
        return nbc_error_at(b->err, NB_ERR_ARG, BUILD, -1, e.name,
                            "layer '%s' is of kind '%s', which is not the library's: give its "
                            "nb_layer_def in nb_layer_opts.defs",
                            e.name, e.kind);
    if (!def->build)
        return nbc_error_at(b->err, NB_ERR_ARG, BUILD, -1, e.name,
                            "layer '%s': kind '%s' cannot be built from a description (no build)",
                            e.name, e.kind);
    char name[NBN_NAME_MAX + 96];
    int k = b->prefix && *b->prefix ? snprintf(name, sizeof name, "%s.%s", b->prefix, e.name)
                                    : snprintf(name, sizeof name, "%s", e.name);
    if (k < 0 || (size_t)k >= NBN_NAME_MAX)
        return nbc_error_at(b->err, NB_ERR_ARG, BUILD, -1, e.name,
                            "layer '%s' with the prefix makes a name of %d bytes or more", e.name,
                            NBN_NAME_MAX);
    void *ud;
    nb_alloc_fn alloc = nbc_model_allocator(b->m, &ud);
    nb_layer *l = NULL;
    st = nbn_layer_make(alloc, ud, def, name, b->o.rng, &l);
    if (st != NB_OK)
        return nbc_error_at(b->err, st, BUILD, -1, e.name, "layer '%s': %s", e.name,
                            nb_status_str(st));
    l->max_bytes = b->o.max_bytes;
    l->bytes = &b->bytes;
    /* the settings the kind reads: all but name= (and a sequence's layers=),
     * which stay in b->buf; copy them, as the sequence's layers reuse it */
    size_t len = strlen(e.settings);
    char *settings = alloc(ud, NULL, 0, len + 1);
    if (!settings) {
        nb_layer_free(l);
        return nbc_error_at(b->err, NB_ERR_NOMEM, BUILD, -1, e.name, "out of memory");
    }
    memcpy(settings, e.settings, len + 1);
    nb_error_clear(b->err);
    st = def->build(l, b->m, settings, &b->o, b->err);
    alloc(ud, settings, len + 1, 0);
    if (st == NB_OK && def == &nbn_sequential_def)
        st = build_items(b, l, key, e.n_items);
    else if (st != NB_OK && b->err && b->err->status == NB_OK)
        nbc_error_at(b->err, st, BUILD, -1, e.name, "layer '%s' (%s) could not be built: %s",
                     e.name, e.kind, nb_status_str(st));
    l->bytes = NULL;
    return nbn_finish(l, st, out);
}

static nb_status build_items(builder *b, nb_layer *seq, const char *path, int n)
{
    for (int i = 1; i <= n; i++) {
        char key[KEY_MAX + 8];
        snprintf(key, sizeof key, "%s.%d", path, i);
        nb_layer *l;
        nb_status st = build_entry(b, key, &l);
        if (st == NB_OK)
            st = nb_layer_add_child(seq, l);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

nb_status nbn_build_layers(nb_model *m, const char *prefix, const char *desc,
                           const nb_layer_opts *o, nb_layer **out, nb_error *err)
{
    int n = 0;
    nb_dtype dt = NB_F32;
    bool lone = false;
    nb_status st = read_top(desc, &n, &dt, &lone, BUILD, err);
    if (st != NB_OK)
        return st;
    builder b = {m, prefix, desc, o ? *o : (nb_layer_opts){.init = NB_INIT_ZEROS}, 0, NULL, err};
    b.o.dtype = dt;
    b.o.no_bias = false; /* each layer says */
    if ((b.o.init == NB_INIT_AUTO || b.o.init >= NB_INIT_SMALL_NORMAL) && !b.o.rng)
        return nbc_error_at(err, NB_ERR_NULL, BUILD, -1, "",
                            "a random initialisation draws from a generator: give one in the layer "
                            "options");
    void *ud;
    nb_alloc_fn alloc = nbc_model_allocator(m, &ud);
    nb_layer *net = NULL;
    st = nbn_layer_make(alloc, ud, &nbn_sequential_def, prefix ? prefix : "", NULL, &net);
    if (st != NB_OK)
        return nbc_error_at(err, st, BUILD, -1, "", "cannot make the network: %s",
                            nb_status_str(st));
    b.buf = alloc(ud, NULL, 0, (size_t)NB_META_MAX + 1);
    st = b.buf ? build_items(&b, net, "layer", n)
               : nbc_error_at(err, NB_ERR_NOMEM, BUILD, -1, "", "out of memory");
    if (b.buf)
        alloc(ud, b.buf, (size_t)NB_META_MAX + 1, 0);
    if (st != NB_OK) {
        nb_layer_free(net);
        return st;
    }
    if (lone) { /* the one layer, out of the sequence that held it */
        *out = net->items[0];
        net->n_items = 0;
        nb_layer_free(net);
        return NB_OK;
    }
    *out = net;
    return NB_OK;
}
