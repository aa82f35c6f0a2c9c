/* The optimizer's state as named tensors and metadata text: what a
 * checkpoint stores and what a resumed run loads back. For each parameter
 * P with state, the tensors "P/t" (its update count, an f64 scalar) and
 * "P/<slot>" (slot names by kind); for the optimizer, its kind, options,
 * step count and schedule position as "optim.*" lines, so the text does
 * not grow with the model. Loading checks everything before it replaces
 * anything. */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/meta.h"
#include "optim_internal.h"

/* The update count's tensor: "P/" T_NAME. Counts are stored exactly up to
 * 2^53, the integers an f64 holds. */
#define T_NAME "t"
#define T_MAX 9007199254740992.0

static const char *const kind_names[] = {"sgd",   "momentum", "nesterov", "adam",
                                         "adamw", "rmsprop",  "adagrad"};
static const char *const sched_names[] = {"constant", "step", "cosine"};

/* The state tensors each kind may keep, by index (nbopt_slots says which
 * a parameter has under given options). */
static const char *const slot_names[][NBOPT_MAX_SLOTS] = {
    [NB_OPTIM_SGD] = {NULL},
    [NB_OPTIM_MOMENTUM] = {"velocity"},
    [NB_OPTIM_NESTEROV] = {"velocity"},
    [NB_OPTIM_ADAM] = {"m", "v"},
    [NB_OPTIM_ADAMW] = {"m", "v"},
    [NB_OPTIM_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
    [NB_OPTIM_ADAGRAD] = {"sum"},
};

const char *nb_optim_kind_name(nb_optim_kind kind)
{
    return (unsigned)kind < sizeof kind_names / sizeof *kind_names ? kind_names[kind] : NULL;
}

nb_status nb_optim_kind_from_name(const char *name, nb_optim_kind *out)
{
    if (!name || !out)
        return NB_ERR_NULL;
    for (size_t i = 0; i < sizeof kind_names / sizeof *kind_names; i++)
        if (!strcmp(name, kind_names[i])) {
            *out = (nb_optim_kind)i;
            return NB_OK;
        }
    return NB_ERR_NOTFOUND;
}

const char *nb_optim_kind_names(void)
{
    return "sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad";
}

const char *nb_optim_slot_name(nb_optim_kind kind, int i)
{
    if (i < 0 || i >= NBOPT_MAX_SLOTS || !nb_optim_kind_name(kind))
        return NULL;
    return slot_names[kind][i];
}

const char *nb_optim_opts_slot_name(const nb_optim_opts *o, int i)
{
    if (!o || !nb_optim_kind_name(o->kind))
        return NULL;
    int ids[NBOPT_MAX_SLOTS];
    int n = nbopt_slots(o, ids);
    return i >= 0 && i < n ? slot_names[o->kind][ids[i]] : NULL;
}

/* When a parameter of @p kind keeps slot @p name only under some options:
 * which (for messages); NULL otherwise. */
static const char *slot_condition(nb_optim_kind kind, const char *name)
{
    if (kind != NB_OPTIM_RMSPROP)
        return NULL;
    return !strcmp(name, "momentum_buffer") ? "momentum > 0"
           : !strcmp(name, "grad_avg")      ? "centered"
                                            : NULL;
}

/* "<param>/<suffix>" in a block through the optimizer's hook (NULL when
 * out of memory); free with name_free. */
static char *name_new(const nb_optim *o, const char *param, const char *suffix, size_t *size)
{
    *size = strlen(param) + 1 + strlen(suffix) + 1;
    char *p = o->alloc(o->ud, NULL, 0, *size);
    if (p)
        snprintf(p, *size, "%s/%s", param, suffix);
    return p;
}

static void name_free(const nb_optim *o, char *p, size_t size)
{
    if (p)
        o->alloc(o->ud, p, size, 0);
}

/* The suffix of state tensor k of a parameter: its count's for k < 0,
 * else the k-th slot's. */
static const char *suffix(const nb_optim *o, int k)
{
    return k < 0 ? T_NAME : nb_optim_opts_slot_name(&o->opts, k);
}

/* ------------------------------------------------------------------ save */

static bool fits(const nbopt_state *s, const nb_tensor *p)
{
    if (!p || nb_tensor_dtype(p) != s->dtype || nb_tensor_rank(p) != s->rank)
        return false;
    for (int i = 0; i < s->rank; i++)
        if (nb_tensor_shape(p)[i] != s->shape[i])
            return false;
    return true;
}

/* Append a line to meta, turning a failure into an error naming the key. */
static nb_status put(nb_error *err, char *meta, size_t cap, const char *key, const char *fmt, ...)
    NB_PRINTF(5, 6);
static nb_status put(nb_error *err, char *meta, size_t cap, const char *key, const char *fmt, ...)
{
    char value[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    nb_status st = nb_meta_put(meta, cap, key, "%s", value);
    if (st == NB_OK)
        return NB_OK;
    nb_status code = st == NB_ERR_EXISTS ? NB_ERR_EXISTS : NB_ERR_ARG;
    nb_error_set(err, code, "nb_optim_state_save",
                 code == NB_ERR_EXISTS ? "the metadata already has the key '%.200s'"
                                       : "the metadata line '%.200s' does not fit in %zu bytes",
                 key, cap);
    if (err)
        snprintf(err->name, sizeof err->name, "%s", key);
    return code;
}

static nb_status put_options(nb_error *err, char *meta, size_t cap, const nb_optim *o)
{
    const nb_optim_opts *p = &o->opts;
    const nb_schedule *s = &p->schedule;
    nb_status st = put(err, meta, cap, "optim.kind", "%s", nb_optim_kind_name(p->kind));
#define PUT(key, ...)                                                                              \
    if (st == NB_OK)                                                                               \
    st = put(err, meta, cap, key, __VA_ARGS__)
    PUT("optim.lr", "%.17g", p->lr);
    PUT("optim.momentum", "%.17g", p->momentum);
    PUT("optim.beta1", "%.17g", p->beta1);
    PUT("optim.beta2", "%.17g", p->beta2);
    PUT("optim.eps", "%.17g", p->eps);
    PUT("optim.weight_decay", "%.17g", p->weight_decay);
    PUT("optim.clip_norm", "%.17g", p->clip_norm);
    if (p->kind == NB_OPTIM_RMSPROP) { /* the other kinds' lines are as they were */
        PUT("optim.alpha", "%.17g", p->alpha);
        PUT("optim.centered", "%d", p->centered ? 1 : 0);
    }
    if (p->kind == NB_OPTIM_ADAGRAD) {
        PUT("optim.lr_decay", "%.17g", p->lr_decay);
        PUT("optim.initial_accumulator_value", "%.17g", p->initial_accumulator_value);
    }
    PUT("optim.schedule", "%s",
        (unsigned)s->kind < sizeof sched_names / sizeof *sched_names ? sched_names[s->kind] : "?");
    PUT("optim.step_size", "%lld", (long long)s->step_size);
    PUT("optim.gamma", "%.17g", s->gamma);
    PUT("optim.period", "%lld", (long long)s->period);
    PUT("optim.min_lr", "%.17g", s->min_lr);
    PUT("optim.per_epoch", "%d", s->per_epoch ? 1 : 0);
    PUT("optim.step", "%lld", (long long)o->step);
    PUT("optim.sched_pos", "%lld", (long long)o->sched_pos);
#undef PUT
    return st;
}

nb_status nb_optim_state_save(const nb_optim *o, const nb_model *m, nb_model *store, char *meta,
                              size_t cap, nb_error *err)
{
    nb_error_clear(err);
    if (!o || !m || !store || !meta)
        return nb_error_set(err, NB_ERR_NULL, "nb_optim_state_save", "%s is NULL",
                            !o       ? "the optimizer"
                            : !m     ? "the model"
                            : !store ? "the store"
                                     : "the metadata buffer");
    size_t len0 = strnlen(meta, cap);
    if (len0 == cap)
        return nb_error_set(err, NB_ERR_ARG, "nb_optim_state_save",
                            "the metadata buffer of %zu bytes holds no terminating NUL", cap);
    /* check every name and count first, so a refusal adds nothing */
    int ids[NBOPT_MAX_SLOTS];
    int n_slots = nbopt_slots(&o->opts, ids);
    for (const nbopt_state *s = o->states; s; s = s->hh.next) {
        if (!fits(s, nb_model_get(m, s->key)))
            continue;
        if (s->step > ((int64_t)1 << 53))
            return nbc_error_at(err, NB_ERR_ARG, "nb_optim_state_save", -1, s->key,
                                "the update count %lld of '%.200s' is above 2^53 and cannot be "
                                "stored exactly",
                                (long long)s->step, s->key);
        for (int k = -1; k < n_slots; k++) {
            size_t size;
            char *name = name_new(o, s->key, suffix(o, k), &size);
            bool taken = name && nb_model_get(store, name);
            name_free(o, name, size);
            if (!name)
                return nb_error_set(err, NB_ERR_NOMEM, "nb_optim_state_save", "out of memory");
            if (taken)
                return nbc_error_at(err, NB_ERR_EXISTS, "nb_optim_state_save", -1, s->key,
                                    "the state tensor '%.200s/%s' is already in the store", s->key,
                                    suffix(o, k));
        }
    }
    nb_status st = put_options(err, meta, cap, o);
    for (const nbopt_state *s = o->states; st == NB_OK && s; s = s->hh.next) {
        if (!fits(s, nb_model_get(m, s->key)))
            continue;
        for (int k = -1; st == NB_OK && k < n_slots; k++) {
            size_t size;
            char *name = name_new(o, s->key, suffix(o, k), &size);
            nb_tensor *t = NULL;
            st = !name    ? NB_ERR_NOMEM
                 : k < 0 ? nb_model_add(store, name, NB_F64, 0, NULL, &t)
                          : nb_model_add(store, name, s->dtype, s->rank, s->shape, &t);
            if (st != NB_OK)
                nb_error_set(err, st, "nb_optim_state_save", "adding '%.200s/%s' to the store: %s",
                             s->key, suffix(o, k), nb_status_str(st));
            else if (k < 0)
                *nb_tensor_f64(t) = (double)s->step;
            else if (s->size > 0) /* a slot of no elements has no block */
                memcpy(nb_tensor_data(t), nbopt_slot(s, k),
                       (size_t)s->size * nb_dtype_size(s->dtype));
            name_free(o, name, size);
        }
    }
    if (st != NB_OK)
        meta[len0] = '\0'; /* the lines written so far go; tensors added stay (see the header) */
    return st;
}

/* ------------------------------------------------------------------ load */

#define bad_key(err, code, key, ...)                                                               \
    nbc_error_at((err), (code), "nb_optim_state_load", -1, (key), __VA_ARGS__)

/* An integer metadata value in [0, INT64_MAX]. */
static nb_status get_count(const char *meta, const char *key, int64_t *out, nb_error *err)
{
    nb_status st = nb_meta_get_i64(meta, key, out);
    if (st == NB_ERR_NOTFOUND)
        return bad_key(err, NB_ERR_NOTFOUND, key, "the metadata has no '%.200s'", key);
    if (st != NB_OK || *out < 0)
        return bad_key(err, NB_ERR_PARSE, key,
                       "the metadata's '%.200s' is not a count (an integer from 0 to %lld)", key,
                       (long long)INT64_MAX);
    return NB_OK;
}

static nb_status get_real(const char *meta, const char *key, double *out, nb_error *err)
{
    nb_status st = nb_meta_get_f64(meta, key, out);
    if (st == NB_ERR_NOTFOUND)
        return bad_key(err, NB_ERR_NOTFOUND, key, "the metadata has no '%.200s'", key);
    if (st != NB_OK)
        return bad_key(err, NB_ERR_PARSE, key, "the metadata's '%.200s' is not a number", key);
    return NB_OK;
}

/* A metadata value 0 or 1. */
static nb_status get_flag(const char *meta, const char *key, bool *out, nb_error *err)
{
    int64_t v = 0;
    nb_status st = get_count(meta, key, &v, err);
    if (st == NB_OK && v > 1)
        st = bad_key(err, NB_ERR_PARSE, key, "the metadata's '%.200s' is not 0 or 1", key);
    if (st == NB_OK)
        *out = v == 1;
    return st;
}

static nb_status opts_from_meta(const char *meta, nb_optim_opts *out, nb_error *err)
{
    if (!meta || !out)
        return nb_error_set(err, NB_ERR_NULL, "nb_optim_opts_from_meta", "%s is NULL",
                            !meta ? "the metadata" : "the options");
    char name[32];
    nb_status st = nb_meta_get(meta, "optim.kind", name, sizeof name);
    nb_optim_kind kind = NB_OPTIM_SGD;
    if (st == NB_ERR_NOTFOUND)
        return bad_key(err, NB_ERR_NOTFOUND, "optim.kind", "the metadata holds no optimizer");
    if (st != NB_OK || nb_optim_kind_from_name(name, &kind) != NB_OK)
        return bad_key(err, NB_ERR_PARSE, "optim.kind",
                       "the metadata's optim.kind is not an optimizer (%s)", nb_optim_kind_names());
    nb_optim_opts o = nb_optim_defaults(kind);
    st = nb_meta_get(meta, "optim.schedule", name, sizeof name);
    int sched = -1;
    for (size_t i = 0; st == NB_OK && i < sizeof sched_names / sizeof *sched_names; i++)
        if (!strcmp(name, sched_names[i]))
            sched = (int)i;
    if (sched < 0)
        return bad_key(err, st == NB_ERR_NOTFOUND ? NB_ERR_NOTFOUND : NB_ERR_PARSE,
                       "optim.schedule",
                       "the metadata's optim.schedule is missing or not constant, step or cosine");
    o.schedule.kind = (nb_sched_kind)sched;
    st = get_real(meta, "optim.lr", &o.lr, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.momentum", &o.momentum, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.beta1", &o.beta1, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.beta2", &o.beta2, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.eps", &o.eps, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.weight_decay", &o.weight_decay, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.clip_norm", &o.clip_norm, err);
    if (st == NB_OK)
        st = get_count(meta, "optim.step_size", &o.schedule.step_size, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.gamma", &o.schedule.gamma, err);
    if (st == NB_OK)
        st = get_count(meta, "optim.period", &o.schedule.period, err);
    if (st == NB_OK)
        st = get_real(meta, "optim.min_lr", &o.schedule.min_lr, err);
    if (st == NB_OK)
        st = get_flag(meta, "optim.per_epoch", &o.schedule.per_epoch, err);
    if (st == NB_OK && kind == NB_OPTIM_RMSPROP) {
        st = get_real(meta, "optim.alpha", &o.alpha, err);
        if (st == NB_OK)
            st = get_flag(meta, "optim.centered", &o.centered, err);
    }
    if (st == NB_OK && kind == NB_OPTIM_ADAGRAD) {
        st = get_real(meta, "optim.lr_decay", &o.lr_decay, err);
        if (st == NB_OK)
            st = get_real(meta, "optim.initial_accumulator_value", &o.initial_accumulator_value,
                          err);
    }
    if (st != NB_OK)
        return st;
    char why[sizeof err->msg];
    if (nb_optim_opts_check(&o, why, sizeof why) != NB_OK)
        return nb_error_set(err, NB_ERR_ARG, "nb_optim_opts_from_meta",
                            "the optimizer options in the metadata are not valid: %s", why);
    *out = o;
    return NB_OK;
}

nb_status nb_optim_opts_from_meta(const char *meta, nb_optim_opts *out, nb_error *err)
{
    nb_error_clear(err);
    nb_status st = opts_from_meta(meta, out, err);
    if (st != NB_OK && err) /* the key readers say nb_optim_state_load */
        snprintf(err->where, sizeof err->where, "nb_optim_opts_from_meta");
    return st;
}

/* Free the first k states of a list of n and the list. */
static void free_list(nb_optim *o, nbopt_state **list, int k, int n)
{
    for (int i = 0; i < k; i++)
        nbopt_state_free(o, list[i]);
    if (list)
        o->alloc(o->ud, list, (size_t)n * sizeof *list, 0);
}

nb_status nb_optim_state_load(nb_optim *o, const nb_model *m, const nb_model *store,
                              const char *meta, nb_error *err)
{
    nb_error_clear(err);
    if (!o || !m || !store || !meta)
        return nb_error_set(err, NB_ERR_NULL, "nb_optim_state_load", "%s is NULL",
                            !o       ? "the optimizer"
                            : !m     ? "the model"
                            : !store ? "the store"
                                     : "the metadata");
    nb_error bad;
    if (nb_meta_check(meta, &bad) != NB_OK)
        return nbc_error_at(err, NB_ERR_PARSE, "nb_optim_state_load", bad.offset, NULL, "%s",
                            bad.msg);
    char kind[32];
    nb_status st = nb_meta_get(meta, "optim.kind", kind, sizeof kind);
    if (st == NB_ERR_NOTFOUND)
        return bad_key(err, NB_ERR_NOTFOUND, "optim.kind", "the metadata holds no optimizer state");
    if (st != NB_OK || strcmp(kind, nb_optim_kind_name(o->opts.kind)))
        return bad_key(err, NB_ERR_ARG, "optim.kind",
                       "the state is of a %.20s optimizer; this one is %s",
                       st == NB_OK ? kind : "(unreadable)", nb_optim_kind_name(o->opts.kind));
    int64_t step, pos;
    st = get_count(meta, "optim.step", &step, err);
    if (st == NB_OK)
        st = get_count(meta, "optim.sched_pos", &pos, err);
    if (st != NB_OK)
        return st;

    /* the parameters with state: those of m with a tensor P/t in the store
     * (one that is itself a tensor of m is m's own, not state) */
    int ids[NBOPT_MAX_SLOTS];
    int n = 0, n_slots = nbopt_slots(&o->opts, ids);
    for (nb_tensor *w = nb_model_next(m, NULL); st == NB_OK && w; w = nb_model_next(m, w)) {
        size_t size;
        char *name = name_new(o, nb_tensor_name(w), T_NAME, &size);
        if (!name)
            return nb_error_set(err, NB_ERR_NOMEM, "nb_optim_state_load", "out of memory");
        n += nb_model_get(store, name) && !nb_model_get(m, name);
        name_free(o, name, size);
    }
    nbopt_state **list = NULL;
    if (n > 0) {
        list = o->alloc(o->ud, NULL, 0, (size_t)n * sizeof *list);
        if (!list)
            return nb_error_set(err, NB_ERR_NOMEM, "nb_optim_state_load", "out of memory");
        memset(list, 0, (size_t)n * sizeof *list);
    }
    int k = 0;
    for (nb_tensor *w = nb_model_next(m, NULL); st == NB_OK && w; w = nb_model_next(m, w)) {
        const char *param = nb_tensor_name(w);
        size_t size;
        char *name = name_new(o, param, T_NAME, &size);
        if (!name) {
            st = nb_error_set(err, NB_ERR_NOMEM, "nb_optim_state_load", "out of memory");
            break;
        }
        const nb_tensor *tt = nb_model_get(m, name) ? NULL : nb_model_get(store, name);
        double t = 0;
        if (tt && (nb_tensor_dtype(tt) != NB_F64 || nb_tensor_rank(tt) != 0))
            st = bad_key(err, NB_ERR_SHAPE, name,
                         "the update count '%.300s' must be an f64 scalar, not %s of rank %d",
                         name, nb_dtype_name(nb_tensor_dtype(tt)), nb_tensor_rank(tt));
        else if (tt && !((t = nb_tensor_item(tt)) >= 0 && t <= T_MAX && t == floor(t)))
            st = bad_key(err, NB_ERR_PARSE, name,
                         "the update count '%.300s' is %.17g, not a whole number from 0 to 2^53",
                         name, t);
        name_free(o, name, size);
        if (!tt || st != NB_OK)
            continue;
        /* every slot has the parameter's dtype and shape */
        const nb_tensor *slot[NBOPT_MAX_SLOTS] = {0};
        for (int i = 0; st == NB_OK && i < n_slots; i++) {
            name = name_new(o, param, suffix(o, i), &size);
            if (!name) {
                st = nb_error_set(err, NB_ERR_NOMEM, "nb_optim_state_load", "out of memory");
                break;
            }
            slot[i] = nb_model_get(store, name);
            char a[96], b[96];
            const char *cond = slot_condition(o->opts.kind, suffix(o, i));
            if (!slot[i])
                st = bad_key(err, NB_ERR_NOTFOUND, name,
                             "the state tensor '%.300s' is missing%s%s%s", name,
                             cond ? " (kept only when " : "", cond ? cond : "",
                             cond ? ": was the state saved with other options?)" : "");
            else if (nb_tensor_dtype(slot[i]) != nb_tensor_dtype(w) ||
                     nb_tensor_rank(slot[i]) != nb_tensor_rank(w) ||
                     memcmp(nb_tensor_shape(slot[i]), nb_tensor_shape(w),
                            (size_t)nb_tensor_rank(w) * sizeof(int64_t)))
                st = bad_key(err,
                             nb_tensor_dtype(slot[i]) != nb_tensor_dtype(w) ? NB_ERR_DTYPE
                                                                            : NB_ERR_SHAPE,
                             name, "the state tensor '%.300s' is %s%s; the parameter is %s%s",
                             name, nb_dtype_name(nb_tensor_dtype(slot[i])),
                             nb_shape_str(nb_tensor_rank(slot[i]), nb_tensor_shape(slot[i]), a,
                                          sizeof a),
                             nb_dtype_name(nb_tensor_dtype(w)),
                             nb_shape_str(nb_tensor_rank(w), nb_tensor_shape(w), b, sizeof b));
            name_free(o, name, size);
        }
        if (st != NB_OK)
            break;
        nb_dtype dt = nb_tensor_dtype(w);
        list[k] = nbopt_state_new(o, param, dt, nb_tensor_rank(w), nb_tensor_shape(w));
        if (!list[k]) {
            st = nb_error_set(err, NB_ERR_NOMEM, "nb_optim_state_load", "out of memory");
            break;
        }
        list[k]->step = (int64_t)t;
        for (int i = 0; i < n_slots && list[k]->size > 0; i++)
            memcpy(nbopt_slot(list[k], i), nb_tensor_data((nb_tensor *)slot[i]),
                   (size_t)list[k]->size * nb_dtype_size(dt));
        k++;
    }
    if (st == NB_OK) {
        st = nbopt_install(o, list, n, step, pos);
        if (st != NB_OK)
            nb_error_set(err, st, "nb_optim_state_load", "out of memory");
    }
    if (st == NB_OK) {
        if (list)
            o->alloc(o->ud, list, (size_t)n * sizeof *list, 0);
        return NB_OK;
    }
    free_list(o, list, k, n);
    return st;
}
