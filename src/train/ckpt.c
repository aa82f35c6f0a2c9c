/* Checkpoints: a model's tensors, an optimizer's state and a generator's
 * state in one safetensors file. The file format is io's; the optimizer
 * and the generator give and take their state as named tensors and
 * metadata text; this file puts them together and checks that everything
 * fits before anything changes. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "nabla/ckpt.h"

#define FORMAT "checkpoint"

/* Metadata keys the checkpoint's parts own; a caller's may not begin so. */
static const char *const reserved[] = {"nabla.", "optim.", "rng."};

static bool is_reserved(const char *line)
{
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (!strncmp(line, reserved[i], strlen(reserved[i])))
            return true;
    return false;
}

#define ck_error(err, code, where, name, ...) nbc_error_at((err), (code), (where), -1, (name), __VA_ARGS__)

/* @p st of a part's function called by @p where, its error told as
 * @p where's (the caller's function is the one the user called). */
static nb_status within(nb_status st, const char *where, nb_error *err)
{
    if (st != NB_OK && err)
        snprintf(err->where, sizeof err->where, "%s", where);
    return st;
}

/* A buffer of metadata text through the allocation hook. */
typedef struct text {
    char *p;
    size_t cap;
    nb_alloc_fn alloc;
    void *ud;
} text;

static bool text_new(text *t, nb_alloc_fn alloc, void *ud)
{
    t->alloc = alloc;
    t->ud = ud;
    t->cap = (size_t)NB_META_MAX + 1;
    t->p = alloc(ud, NULL, 0, t->cap);
    if (t->p)
        t->p[0] = '\0';
    return t->p != NULL;
}

static void text_free(text *t)
{
    if (t->p)
        t->alloc(t->ud, t->p, t->cap, 0);
}

/* The suffix ("t" or the name of a slot kept under options @p opts) that
 * makes @p name the optimizer state "P/<suffix>" of a tensor P of
 * @p owners whose count P/t is in @p counts, or NULL; in @p buf, "P/t".
 * @p buf has room for the name and 3 bytes more. */
static const char *state_suffix(const nb_model *owners, const nb_model *counts,
                                const nb_optim_opts *opts, const char *name, char *buf)
{
    const char *slash = strrchr(name, '/');
    if (!slash || slash == name)
        return NULL;
    const char *suffix = NULL;
    if (!strcmp(slash + 1, "t"))
        suffix = "t";
    for (int i = 0; !suffix && nb_optim_opts_slot_name(opts, i); i++)
        if (!strcmp(slash + 1, nb_optim_opts_slot_name(opts, i)))
            suffix = nb_optim_opts_slot_name(opts, i);
    size_t len = (size_t)(slash - name);
    memcpy(buf, name, len);
    buf[len] = '\0';
    if (!suffix || !nb_model_get(owners, buf))
        return NULL;
    memcpy(buf + len, "/t", 3);
    return nb_model_get(counts, buf) ? suffix : NULL;
}

/* Room for the longest name of @p m and 3 bytes more, through the hook. */
static char *name_buffer(const nb_model *m, nb_alloc_fn alloc, void *ud, size_t *size)
{
    size_t longest = 0;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        if (strlen(nb_tensor_name(t)) > longest)
            longest = strlen(nb_tensor_name(t));
    *size = longest + 4;
    return alloc(ud, NULL, 0, *size);
}

/* =================================================================== save */

nb_status nb_model_save(const nb_model *m, const nb_optim *opt, const char *path,
                        const nb_ckpt_opts *o, nb_error *err)
{
    static const char *const where = "nb_model_save";
    nb_error_clear(err);
    if (!m || !path)
        return ck_error(err, NB_ERR_NULL, where, NULL, "save: %s is NULL",
                        !m ? "the model" : "the path");
    nb_ckpt_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    nb_alloc_fn alloc = o->alloc ? o->alloc : nb_default_alloc;
    void *aud = o->alloc ? o->alloc_ud : NULL;

    const char *user = o->meta ? o->meta : "";
    nb_error bad;
    if (nb_meta_check(user, &bad) != NB_OK)
        return ck_error(err, NB_ERR_ARG, where, NULL, "save: %s", bad.msg);
    for (const char *p = user; *p;) {
        if (is_reserved(p)) {
            const char *eq = strchr(p, '=');
            return ck_error(err, NB_ERR_ARG, where, NULL,
                            "save: the metadata key '%.*s' begins with \"nabla.\", \"optim.\" or "
                            "\"rng.\", which a checkpoint keeps for its own lines",
                            (int)(eq - p < 60 ? eq - p : 60), p);
        }
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p + strlen(p);
    }

    text meta;
    if (!text_new(&meta, alloc, aud))
        return ck_error(err, NB_ERR_NOMEM, where, NULL, "save: out of memory");
    nb_model *state = NULL;
    nb_status st = NB_OK;
    size_t ulen = strlen(user);
    memcpy(meta.p, user, ulen + 1);
    if (nb_meta_put(meta.p, meta.cap, "nabla.format", FORMAT) != NB_OK ||
        nb_meta_put(meta.p, meta.cap, "nabla.version", "%d", NB_CKPT_VERSION) != NB_OK)
        st = ck_error(err, NB_ERR_ARG, where, NULL, "save: the metadata does not fit in %d bytes",
                      NB_META_MAX);
    if (st == NB_OK && opt) {
        state = nb_model_new_alloc(alloc, aud);
        st = state ? within(nb_optim_state_save(opt, m, state, meta.p, meta.cap, err), where, err)
                   : ck_error(err, NB_ERR_NOMEM, where, NULL, "save: out of memory");
    }
    if (st == NB_OK && opt) {
        /* a model tensor named like the state saved ("P/t", "P/<slot>" of
         * a tensor P with a count) would be read back as state */
        size_t size;
        char *buf = name_buffer(m, alloc, aud, &size);
        if (!buf)
            st = ck_error(err, NB_ERR_NOMEM, where, NULL, "save: out of memory");
        for (nb_tensor *t = buf ? nb_model_next(m, NULL) : NULL; t && st == NB_OK;
             t = nb_model_next(m, t))
            if (state_suffix(m, state, nb_optim_options(opt), nb_tensor_name(t), buf)) {
                buf[strlen(buf) - 2] = '\0'; /* "P/t" to "P" */
                st = ck_error(err, NB_ERR_ARG, where, nb_tensor_name(t),
                              "save: the model's tensor '%.200s' is named like the optimizer's "
                              "state of '%.200s' (\"<param>/t\" or \"<param>/<slot>\"); rename "
                              "it or save without the optimizer",
                              nb_tensor_name(t), buf);
            }
        if (buf)
            alloc(aud, buf, size, 0);
    }
    if (st == NB_OK && o->rng && nb_rng_save(o->rng, meta.p, meta.cap) != NB_OK)
        st = ck_error(err, NB_ERR_ARG, where, NULL, "save: the metadata does not fit in %d bytes",
                      NB_META_MAX);
    if (st == NB_OK) {
        nb_file_opts fo = {.write = o->write,
                           .write_ud = o->write_ud,
                           .alloc = o->alloc,
                           .alloc_ud = o->alloc_ud,
                           .meta = meta.p};
        const nb_model *stores[2] = {m, state};
        /* no name twice: state is "P/..." of a tensor P of m, and no
         * tensor of m is named so (checked above) */
        st = nb_safetensors_save(path, stores, state ? 2 : 1, &fo, err);
    }
    nb_model_free(state);
    text_free(&meta);
    return st;
}

/* =================================================================== load */

/* A checkpoint read and checked, not yet applied. */
typedef struct ckpt {
    nb_model *file; /* every tensor of the file */
    text meta;      /* all of its metadata */
    nb_optim_opts opts; /* the options of its optimizer state (when has_optim) */
    bool has_optim;
    char *buf; /* room for any name of the file and 3 bytes more */
    size_t buf_size;
} ckpt;

/* Whether tensor @p name of the file is optimizer state. */
static bool is_state(const ckpt *c, const char *name)
{
    return c->has_optim && state_suffix(c->file, c->file, &c->opts, name, c->buf);
}

static void ckpt_free(ckpt *c)
{
    if (c->buf)
        c->meta.alloc(c->meta.ud, c->buf, c->buf_size, 0);
    nb_model_free(c->file);
    text_free(&c->meta);
}

/* The metadata's @p key is a count (an integer from 0 to INT64_MAX), as
 * loading the optimizer's state requires. */
static nb_status count_line(const char *meta, const char *key, const char *where, nb_error *err)
{
    int64_t v;
    nb_status st = nb_meta_get_i64(meta, key, &v);
    if (st == NB_ERR_NOTFOUND)
        return ck_error(err, NB_ERR_NOTFOUND, where, key, "load: the metadata has no '%.200s'",
                        key);
    if (st != NB_OK || v < 0)
        return ck_error(err, NB_ERR_PARSE, where, key,
                        "load: the metadata's '%.200s' is not a count (an integer from 0 to %lld)",
                        key, (long long)INT64_MAX);
    return NB_OK;
}

/* The lines of the checkpoint's own parts, checked whether or not the load
 * takes them, so that a file that lists loads into any optimizer of its kind
 * (that keeps no slot the file's options do not: an RMSprop with momentum
 * or centered needs state saved so) and any generator: optimizer lines only
 * with optim.kind, its options as nb_optim_opts_from_meta reads them (into
 * c->opts) and its counts; the generator's state as nb_rng_load reads it. */
static nb_status own_lines(ckpt *c, const char *where, nb_error *err)
{
    bool rng = false;
    for (const char *p = c->meta.p; *p;) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        if (!c->has_optim && !strncmp(p, "optim.", 6)) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(eq - p), p);
            return ck_error(err, NB_ERR_PARSE, where, key,
                            "load: the metadata has the optimizer line '%.200s' but no optim.kind",
                            key);
        }
        rng |= !strncmp(p, "rng.", 4);
        p = *end ? end + 1 : end;
    }
    if (c->has_optim) {
        nb_status st = within(nb_optim_opts_from_meta(c->meta.p, &c->opts, err), where, err);
        if (st == NB_ERR_ARG) { /* options no optimizer takes: the file is wrong */
            st = NB_ERR_PARSE;
            if (err)
                err->status = st;
        }
        if (st == NB_OK)
            st = count_line(c->meta.p, "optim.step", where, err);
        if (st == NB_OK)
            st = count_line(c->meta.p, "optim.sched_pos", where, err);
        if (st != NB_OK)
            return st;
    }
    nb_rng r;
    return rng ? within(nb_rng_load(&r, c->meta.p, err), where, err) : NB_OK;
}

/* Read, check the file and the format, and the optimizer state: every
 * count P/t of a tensor P of the file with P's slots beside it. */
static nb_status ckpt_read(ckpt *c, const char *path, const nb_ckpt_opts *o, const char *where,
                           nb_error *err)
{
    memset(c, 0, sizeof *c);
    nb_alloc_fn alloc = o->alloc ? o->alloc : nb_default_alloc;
    void *aud = o->alloc ? o->alloc_ud : NULL;
    if (!text_new(&c->meta, alloc, aud))
        return ck_error(err, NB_ERR_NOMEM, where, NULL, "load: out of memory");
    nb_file_opts fo = {.alloc = o->alloc,
                       .alloc_ud = o->alloc_ud,
                       .meta_out = c->meta.p,
                       .meta_cap = c->meta.cap,
                       .require_crc = true};
    nb_status st = nb_safetensors_read(path, &c->file, &fo, err);
    if (st != NB_OK)
        return st;
    char v[32];
    if (nb_meta_get(c->meta.p, "nabla.format", v, sizeof v) != NB_OK || strcmp(v, FORMAT))
        return ck_error(err, NB_ERR_PARSE, where, NULL,
                        "load: the file is a safetensors file but not a nabla checkpoint (its "
                        "metadata has no nabla.format=" FORMAT ")");
    int64_t version = 0;
    if (nb_meta_get_i64(c->meta.p, "nabla.version", &version) != NB_OK ||
        version != NB_CKPT_VERSION)
        return ck_error(err, NB_ERR_PARSE, where, "nabla.version",
                        "load: checkpoint version %lld is not supported (this version reads %d)",
                        (long long)version, NB_CKPT_VERSION);
    st = nb_meta_get(c->meta.p, "optim.kind", v, sizeof v);
    c->has_optim = st == NB_OK;
    nb_optim_kind kind;
    if (st != NB_ERR_NOTFOUND && (st != NB_OK || nb_optim_kind_from_name(v, &kind) != NB_OK))
        return ck_error(err, NB_ERR_PARSE, where, "optim.kind",
                        "load: optim.kind is not an optimizer (%s)", nb_optim_kind_names());
    st = own_lines(c, where, err);
    if (st != NB_OK)
        return st;
    c->buf = name_buffer(c->file, alloc, aud, &c->buf_size);
    if (!c->buf)
        return ck_error(err, NB_ERR_NOMEM, where, NULL, "load: out of memory");
    /* each count P/t is an f64 scalar, and P's slots are there with P's
     * dtype and shape */
    for (nb_tensor *t = c->has_optim ? nb_model_next(c->file, NULL) : NULL; t;
         t = nb_model_next(c->file, t)) {
        const char *name = nb_tensor_name(t);
        if (!is_state(c, name) || strcmp(strrchr(name, '/') + 1, "t"))
            continue;
        if (nb_tensor_dtype(t) != NB_F64 || nb_tensor_rank(t) != 0)
            return ck_error(err, NB_ERR_SHAPE, where, name,
                            "load: the update count '%.200s' must be an f64 scalar", name);
        double n = *(const double *)nb_tensor_data(t);
        if (!(n >= 0 && n <= 0x1p53 && n == (double)(int64_t)n))
            return ck_error(err, NB_ERR_PARSE, where, name,
                            "load: the update count '%.200s' is not a whole number from 0 to 2^53",
                            name);
        size_t len = strlen(name) - 2;
        memcpy(c->buf, name, len);
        c->buf[len] = '\0';
        nb_tensor *w = nb_model_get(c->file, c->buf);
        /* the state of a tensor that is state itself: a listing sets it
         * aside, so no model built from one could take its state */
        const char *of = nb_tensor_name(w);
        const char *kept = state_suffix(c->file, c->file, &c->opts, of, c->buf);
        if (kept) {
            c->buf[strlen(c->buf) - 2] = '\0'; /* "P/t" to "P" */
            return ck_error(err, NB_ERR_PARSE, where, of,
                            "load: optimizer state is kept for '%.200s', which is itself the "
                            "%s state of '%.200s'",
                            of, kept, c->buf);
        }
        for (int i = 0; nb_optim_opts_slot_name(&c->opts, i); i++) {
            size_t size = len + 2 + strlen(nb_optim_opts_slot_name(&c->opts, i));
            char *slot = alloc(aud, NULL, 0, size);
            if (!slot)
                return ck_error(err, NB_ERR_NOMEM, where, NULL, "load: out of memory");
            snprintf(slot, size, "%.*s/%s", (int)len, name, nb_optim_opts_slot_name(&c->opts, i));
            nb_tensor *s = nb_model_get(c->file, slot);
            st = !s ? ck_error(err, NB_ERR_NOTFOUND, where, slot,
                               "load: the optimizer state tensor '%.200s' is missing", slot)
                 : nb_tensor_dtype(s) != nb_tensor_dtype(w) ||
                         nb_tensor_rank(s) != nb_tensor_rank(w) ||
                         memcmp(nb_tensor_shape(s), nb_tensor_shape(w),
                                (size_t)nb_tensor_rank(w) * sizeof(int64_t))
                     ? ck_error(err, NB_ERR_SHAPE, where, slot,
                                "load: the optimizer state tensor '%.200s' differs in dtype or "
                                "shape from '%.200s'",
                                slot, nb_tensor_name(w))
                     : NB_OK;
            alloc(aud, slot, size, 0);
            if (st != NB_OK)
                return st;
        }
    }
    return NB_OK;
}

/* The caller's lines of the metadata into o->meta_out; false when they do
 * not fit (checked before anything changes, written after). */
static size_t user_meta(const ckpt *c, char *out, size_t cap)
{
    size_t used = 0;
    for (const char *p = c->meta.p; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (!is_reserved(p)) {
            size_t sep = used > 0;
            if (out && used + sep + len < cap) {
                if (sep)
                    out[used] = '\n';
                memcpy(out + used + sep, p, len);
                out[used + sep + len] = '\0';
            }
            used += sep + len;
        }
        p = end ? end + 1 : p + len;
    }
    if (out && used == 0 && cap > 0)
        out[0] = '\0';
    return used;
}

static nb_status meta_fits(const ckpt *c, const nb_ckpt_opts *o, const char *where, nb_error *err)
{
    if (!o->meta_out)
        return NB_OK;
    size_t need = user_meta(c, NULL, 0) + 1;
    if (o->meta_cap < need)
        return ck_error(err, NB_ERR_ARG, where, NULL,
                        "load: the metadata is %zu bytes; meta_out holds %zu (needs %zu)", need - 1,
                        o->meta_cap, need);
    return NB_OK;
}

nb_status nb_model_load(nb_model *m, nb_optim *opt, const char *path, const nb_ckpt_opts *o,
                        nb_error *err)
{
    static const char *const where = "nb_model_load";
    nb_error_clear(err);
    if (!m || !path)
        return ck_error(err, NB_ERR_NULL, where, NULL, "load: %s is NULL",
                        !m ? "the model" : "the path");
    nb_ckpt_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    ckpt c;
    nb_status st = ckpt_read(&c, path, o, where, err);
    /* every tensor of the file is the model's or optimizer state ... */
    char a[96], b[96];
    for (nb_tensor *t = st == NB_OK ? nb_model_next(c.file, NULL) : NULL; t && st == NB_OK;
         t = nb_model_next(c.file, t)) {
        const char *name = nb_tensor_name(t);
        nb_tensor *p = nb_model_get(m, name);
        if (!p) {
            if (!is_state(&c, name))
                st = ck_error(err, NB_ERR_NOTFOUND, where, name,
                              "load: tensor '%.200s' of the file is not in the model", name);
        } else if (nb_tensor_dtype(p) != nb_tensor_dtype(t)) {
            st = ck_error(err, NB_ERR_DTYPE, where, name,
                          "load: tensor '%.200s' is %s in the file, %s in the model", name,
                          nb_dtype_name(nb_tensor_dtype(t)), nb_dtype_name(nb_tensor_dtype(p)));
        } else if (nb_tensor_rank(p) != nb_tensor_rank(t) ||
                   memcmp(nb_tensor_shape(p), nb_tensor_shape(t),
                          (size_t)nb_tensor_rank(t) * sizeof(int64_t))) {
            st = ck_error(err, NB_ERR_SHAPE, where, name,
                          "load: tensor '%.200s' has shape %s in the file, %s in the model", name,
                          nb_shape_str(nb_tensor_rank(t), nb_tensor_shape(t), a, sizeof a),
                          nb_shape_str(nb_tensor_rank(p), nb_tensor_shape(p), b, sizeof b));
        }
    }
    /* ... and every tensor of the model is in the file */
    for (nb_tensor *p = st == NB_OK ? nb_model_next(m, NULL) : NULL; p && st == NB_OK;
         p = nb_model_next(m, p))
        if (!nb_model_get(c.file, nb_tensor_name(p)))
            st =
                ck_error(err, NB_ERR_NOTFOUND, where, nb_tensor_name(p),
                         "load: the model's tensor '%.200s' is not in the file", nb_tensor_name(p));
    nb_rng rng = {{0}, 0.0, false};
    if (st == NB_OK && o->rng)
        st = within(nb_rng_load(&rng, c.meta.p, err), where, err);
    if (st == NB_OK)
        st = meta_fits(&c, o, where, err);
    if (st == NB_OK && opt && !c.has_optim)
        st = ck_error(err, NB_ERR_NOTFOUND, where, NULL,
                      "load: the checkpoint holds no optimizer state (it was saved without one)");
    /* the last step that can fail; it changes the optimizer only on success */
    if (st == NB_OK && opt)
        st = within(nb_optim_state_load(opt, m, c.file, c.meta.p, err), where, err);
    if (st == NB_OK) {
        for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
            memcpy(nb_tensor_data(p), nb_tensor_data(nb_model_get(c.file, nb_tensor_name(p))),
                   (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
        if (o->rng)
            *o->rng = rng;
        if (o->meta_out)
            user_meta(&c, o->meta_out, o->meta_cap);
    }
    ckpt_free(&c);
    return st;
}

nb_status nb_ckpt_list(const char *path, nb_tensor_info_fn fn, void *ud, const nb_ckpt_opts *o,
                       nb_error *err)
{
    static const char *const where = "nb_ckpt_list";
    nb_error_clear(err);
    if (!path)
        return ck_error(err, NB_ERR_NULL, where, NULL, "list: the path is NULL");
    nb_ckpt_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    ckpt c;
    nb_status st = ckpt_read(&c, path, o, where, err);
    if (st == NB_OK)
        st = meta_fits(&c, o, where, err);
    for (nb_tensor *t = st == NB_OK && fn ? nb_model_next(c.file, NULL) : NULL; t;
         t = nb_model_next(c.file, t)) {
        const char *name = nb_tensor_name(t);
        if (is_state(&c, name))
            continue;
        st = fn(ud, name, nb_tensor_dtype(t), nb_tensor_rank(t), nb_tensor_shape(t));
        if (st != NB_OK) {
            ck_error(err, st, where, name, "list: stopped at tensor '%.200s': %s", name,
                     nb_status_str(st));
            break;
        }
    }
    if (st == NB_OK && o->meta_out)
        user_meta(&c, o->meta_out, o->meta_cap);
    ckpt_free(&c);
    return st;
}

nb_status nb_ckpt_read_meta(const char *path, char *buf, size_t cap, nb_error *err)
{
    nb_error_clear(err);
    if (!buf)
        return ck_error(err, NB_ERR_NULL, "nb_ckpt_read_meta", NULL, "the buffer is NULL");
    nb_ckpt_opts o = {.meta_out = buf, .meta_cap = cap};
    return nb_ckpt_list(path, NULL, NULL, &o, err);
}
