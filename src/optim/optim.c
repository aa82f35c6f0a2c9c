/* Optimizers: SGD, momentum, Nesterov, Adam, AdamW, RMSprop, Adagrad;
 * clipping by global norm; learning-rate schedules. State lives per parameter name in a
 * uthash table whose every allocation goes through the optimizer's hook.
 * The update kernels are written once for both dtypes (UPDATE_KERNEL). */

#include <math.h>
#include <stdio.h>
#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "../core/internal.h"

/* uthash allocates through the optimizer in scope (every caller names it
 * `o`) and reports a failed allocation instead of exiting. */
#define HASH_NONFATAL_OOM 1
#define uthash_malloc(sz) o->alloc(o->ud, NULL, 0, (sz))
#define uthash_free(ptr, sz) o->alloc(o->ud, (ptr), (sz), 0)
#define uthash_nonfatal_oom(obj) (oom = 1)

#include "optim_internal.h"

/* Coefficients of one parameter's update, computed in double and rounded
 * to the parameter's dtype by the kernel. */
typedef struct coefs {
    double lr, wd, mu, clip, beta1, beta2, eps, alpha;
    double step_size; /* Adam: lr / (1 - beta1^t); Adagrad: lr / (1 + (t-1)*lr_decay) */
    double bc2_sqrt;  /* Adam: sqrt(1 - beta2^t) */
    double decay;     /* AdamW: 1 - lr*wd */
} coefs;

/* One parameter's update in a step: the parameter, its state arrays by
 * slot name, its coefficients, and where its elements start in the step's
 * run of all parameters' elements (which the threads share out). */
typedef struct nbopt_job {
    nb_tensor *p;
    void *slot[NBOPT_MAX_SLOTS];
    coefs c;
    int64_t start;
} nbopt_job;

/* ---------------------------------------------------------------- options */

nb_optim_opts nb_optim_defaults(nb_optim_kind kind)
{
    nb_optim_opts o;
    memset(&o, 0, sizeof o);
    o.kind = kind;
    o.lr = (kind == NB_OPTIM_ADAM || kind == NB_OPTIM_ADAMW) ? 1e-3 : 0.01;
    o.momentum = (kind == NB_OPTIM_MOMENTUM || kind == NB_OPTIM_NESTEROV) ? 0.9 : 0.0;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = kind == NB_OPTIM_ADAGRAD ? 1e-10 : 1e-8;
    o.weight_decay = kind == NB_OPTIM_ADAMW ? 0.01 : 0.0;
    o.clip_norm = 0.0;
    o.alpha = 0.99;
    o.centered = false;
    o.lr_decay = 0.0;
    o.initial_accumulator_value = 0.0;
    o.schedule.kind = NB_SCHED_CONSTANT;
    o.schedule.step_size = 1;
    o.schedule.gamma = 1.0;
    o.schedule.period = 1;
    o.schedule.min_lr = 0.0;
    o.schedule.per_epoch = false;
    return o;
}

static nb_status bad(char *msg, size_t n, const char *fmt, ...) NB_PRINTF(3, 4);
static nb_status bad(char *msg, size_t n, const char *fmt, ...)
{
    if (msg && n > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, n, fmt, ap);
        va_end(ap);
    }
    return NB_ERR_ARG;
}

static bool in_unit(double x) /* 0 <= x < 1 */
{
    return x >= 0.0 && x < 1.0;
}

static nb_status schedule_check(const nb_schedule *s, double lr, char *msg, size_t n)
{
    switch (s->kind) {
    case NB_SCHED_CONSTANT: return NB_OK;
    case NB_SCHED_STEP:
        if (s->step_size < 1)
            return bad(msg, n, "schedule.step_size = %lld: must be >= 1", (long long)s->step_size);
        if (!(s->gamma > 0.0 && s->gamma <= 1.0))
            return bad(msg, n, "schedule.gamma = %g: must lie in (0, 1]", s->gamma);
        return NB_OK;
    case NB_SCHED_COSINE:
        if (s->period < 1)
            return bad(msg, n, "schedule.period = %lld: must be >= 1", (long long)s->period);
        if (!(s->min_lr >= 0.0 && s->min_lr <= lr))
            return bad(msg, n, "schedule.min_lr = %g: must lie in [0, lr] = [0, %g]", s->min_lr,
                       lr);
        return NB_OK;
    }
    return bad(msg, n, "schedule.kind = %d: not a schedule (0 constant, 1 step, 2 cosine)",
               (int)s->kind);
}

nb_status nb_optim_opts_check(const nb_optim_opts *o, char *msg, size_t n)
{
    if (msg && n > 0)
        msg[0] = '\0';
    if (!o) {
        if (msg && n > 0)
            snprintf(msg, n, "no options (NULL)");
        return NB_ERR_NULL;
    }
    if ((unsigned)o->kind > (unsigned)NB_OPTIM_ADAGRAD)
        return bad(msg, n,
                   "kind = %d: not an optimizer (0 sgd, 1 momentum, 2 nesterov, 3 adam, 4 adamw, "
                   "5 rmsprop, 6 adagrad)",
                   (int)o->kind);
    if (!(isfinite(o->lr) && o->lr >= 0.0))
        return bad(msg, n, "lr = %g: the learning rate must be finite and >= 0", o->lr);
    if (!in_unit(o->momentum))
        return bad(msg, n, "momentum = %g: must lie in [0, 1)", o->momentum);
    if (!in_unit(o->beta1))
        return bad(msg, n, "beta1 = %g: must lie in [0, 1)", o->beta1);
    if (!in_unit(o->beta2))
        return bad(msg, n, "beta2 = %g: must lie in [0, 1)", o->beta2);
    if (!(isfinite(o->eps) && o->eps > 0.0))
        return bad(msg, n, "eps = %g: must be finite and > 0", o->eps);
    if (!(isfinite(o->weight_decay) && o->weight_decay >= 0.0))
        return bad(msg, n, "weight_decay = %g: must be finite and >= 0", o->weight_decay);
    if (!(isfinite(o->clip_norm) && o->clip_norm >= 0.0))
        return bad(msg, n, "clip_norm = %g: must be finite and >= 0 (0 turns clipping off)",
                   o->clip_norm);
    if (!in_unit(o->alpha))
        return bad(msg, n, "alpha = %g: RMSprop's smoothing constant must lie in [0, 1)", o->alpha);
    if (!(isfinite(o->lr_decay) && o->lr_decay >= 0.0))
        return bad(msg, n, "lr_decay = %g: must be finite and >= 0", o->lr_decay);
    if (!(isfinite(o->initial_accumulator_value) && o->initial_accumulator_value >= 0.0))
        return bad(msg, n, "initial_accumulator_value = %g: must be finite and >= 0",
                   o->initial_accumulator_value);
    return schedule_check(&o->schedule, o->lr, msg, n);
}

double nb_schedule_lr(const nb_schedule *s, double lr, int64_t t)
{
    if (!s || schedule_check(s, lr, NULL, 0) != NB_OK || !isfinite(lr))
        return NAN;
    if (t < 0)
        t = 0;
    switch (s->kind) {
    case NB_SCHED_CONSTANT: return lr;
    case NB_SCHED_STEP: return lr * pow(s->gamma, (double)(t / s->step_size));
    case NB_SCHED_COSINE: {
        int64_t tc = t < s->period ? t : s->period;
        double pi = 3.14159265358979323846;
        return s->min_lr +
               (lr - s->min_lr) * 0.5 * (1.0 + cos(pi * (double)tc / (double)s->period));
    }
    }
    return NAN;
}

/* ------------------------------------------------------------------ state */

int nbopt_slots(const nb_optim_opts *o, int ids[NBOPT_MAX_SLOTS])
{
    int n = 0;
    switch (o->kind) {
    case NB_OPTIM_SGD: break;
    case NB_OPTIM_MOMENTUM:
    case NB_OPTIM_NESTEROV:
    case NB_OPTIM_ADAGRAD: ids[n++] = 0; break;
    case NB_OPTIM_ADAM:
    case NB_OPTIM_ADAMW:
        ids[n++] = 0;
        ids[n++] = 1;
        break;
    case NB_OPTIM_RMSPROP: /* square_avg; momentum_buffer, grad_avg when used */
        ids[n++] = 0;
        if (o->momentum > 0.0)
            ids[n++] = 1;
        if (o->centered)
            ids[n++] = 2;
        break;
    }
    return n;
}

void *nbopt_slot(const nbopt_state *s, int i)
{
    if (!s->block || i < 0 || i >= s->n_slots)
        return NULL;
    return (char *)s->block + (size_t)i * ((size_t)s->size * nb_dtype_size(s->dtype));
}

nb_status nbopt_error(nb_optim *o, nb_status code, const char *fmt, ...)
{
    nb_error *e = &o->err;
    nb_error_clear(e);
    e->status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    size_t n = strspn(e->msg, "abcdefghijklmnopqrstuvwxyz_");
    if (n > 0 && n < sizeof e->where && e->msg[n] == ':') {
        memcpy(e->where, e->msg, n);
        e->where[n] = '\0';
    }
    return code;
}

void nbopt_state_free(nb_optim *o, nbopt_state *s)
{
    if (!s)
        return;
    if (s->block)
        o->alloc(o->ud, s->block, s->block_bytes, 0);
    if (s->key)
        o->alloc(o->ud, s->key, s->key_size, 0);
    o->alloc(o->ud, s, sizeof *s, 0);
}

nbopt_state *nbopt_state_new(nb_optim *o, const char *name, nb_dtype dt, int rank,
                             const int64_t *shape)
{
    int ids[NBOPT_MAX_SLOTS];
    int n_slots = nbopt_slots(&o->opts, ids);
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        if (nbc_mul_overflows(size, shape[i], &size))
            return NULL;
    size_t elem = nb_dtype_size(dt);
    if (elem == 0 || size < 0 || (uint64_t)size > SIZE_MAX / (elem * NBOPT_MAX_SLOTS))
        return NULL;
    nbopt_state *s = o->alloc(o->ud, NULL, 0, sizeof *s);
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->dtype = dt;
    s->rank = rank;
    for (int i = 0; i < rank; i++)
        s->shape[i] = shape[i];
    s->size = size;
    s->n_slots = n_slots;
    s->key_size = strlen(name) + 1;
    s->key = o->alloc(o->ud, NULL, 0, s->key_size);
    if (!s->key) {
        nbopt_state_free(o, s);
        return NULL;
    }
    memcpy(s->key, name, s->key_size);
    size_t bytes = (size_t)n_slots * (size_t)size * elem;
    if (bytes > 0) {
        s->block = o->alloc(o->ud, NULL, 0, bytes);
        if (!s->block) {
            nbopt_state_free(o, s);
            return NULL;
        }
        s->block_bytes = bytes;
        memset(s->block, 0, bytes);
    }
    double init = o->opts.initial_accumulator_value;
    if (o->opts.kind == NB_OPTIM_ADAGRAD && init != 0.0) { /* the sum starts there */
        if (dt == NB_F32)
            for (int64_t i = 0; i < size; i++)
                ((float *)s->block)[i] = (float)init;
        else
            for (int64_t i = 0; i < size; i++)
                ((double *)s->block)[i] = init;
    }
    return s;
}

static void free_table(nb_optim *o, nbopt_state **head)
{
    nbopt_state *s, *tmp;
    HASH_ITER(hh, *head, s, tmp)
    {
        HASH_DEL(*head, s);
        nbopt_state_free(o, s);
    }
}

nb_status nbopt_install(nb_optim *o, nbopt_state **list, int n, int64_t step, int64_t sched_pos)
{
    nbopt_state *head = NULL;
    for (int i = 0; i < n; i++) {
        int oom = 0;
        HASH_ADD_KEYPTR(hh, head, list[i]->key, list[i]->key_size - 1, list[i]);
        if (oom) {
            /* take the items back out without freeing them: the caller owns them */
            nbopt_state *s, *tmp;
            HASH_ITER(hh, head, s, tmp)
            {
                HASH_DEL(head, s);
            }
            return NB_ERR_NOMEM;
        }
    }
    free_table(o, &o->states);
    o->states = head;
    o->step = step;
    o->sched_pos = sched_pos;
    return NB_OK;
}

/* -------------------------------------------------------------- lifetime */

nb_optim *nb_optim_new_alloc(const nb_optim_opts *opts, nb_alloc_fn alloc, void *ud)
{
    if (!alloc || nb_optim_opts_check(opts, NULL, 0) != NB_OK)
        return NULL;
    nb_optim *o = alloc(ud, NULL, 0, sizeof *o);
    if (!o)
        return NULL;
    memset(o, 0, sizeof *o);
    nb_error_clear(&o->err);
    o->alloc = alloc;
    o->ud = ud;
    o->opts = *opts;
    o->threads = 1;
    return o;
}

nb_optim *nb_optim_new(const nb_optim_opts *opts)
{
    return nb_optim_new_alloc(opts, nb_default_alloc, NULL);
}

void nb_optim_free(nb_optim *o)
{
    if (!o)
        return;
    free_table(o, &o->states);
    o->alloc(o->ud, o->jobs, (size_t)o->jobs_cap * sizeof *o->jobs, 0);
    o->alloc(o->ud, o, sizeof *o, 0);
}

/* ------------------------------------------------------------- accessors */

void nb_optim_set_threads(nb_optim *o, int n)
{
    if (o)
        o->threads = n < 1 ? 1 : n;
}

int nb_optim_threads(const nb_optim *o)
{
    return o ? o->threads : 1;
}

const nb_error *nb_optim_error(const nb_optim *o)
{
    static const nb_error no_optim = {.status = NB_ERR_NULL, .offset = -1, .msg = "no optimizer"};
    return o ? &o->err : &no_optim;
}

const nb_optim_opts *nb_optim_options(const nb_optim *o)
{
    return o ? &o->opts : NULL;
}

int64_t nb_optim_steps(const nb_optim *o)
{
    return o ? o->step : 0;
}

int64_t nb_optim_sched_pos(const nb_optim *o)
{
    return o ? o->sched_pos : 0;
}

nb_status nb_optim_next_epoch(nb_optim *o)
{
    if (!o)
        return NB_ERR_NULL;
    if (o->sched_pos == INT64_MAX)
        return nbopt_error(o, NB_ERR_ARG, "next_epoch: the schedule position is at its limit");
    o->sched_pos++;
    return NB_OK;
}

double nb_optim_lr(const nb_optim *o)
{
    return o ? nb_schedule_lr(&o->opts.schedule, o->opts.lr, o->sched_pos) : NAN;
}

double nb_optim_last_grad_norm(const nb_optim *o)
{
    return o ? o->last_norm : 0.0;
}

int nb_optim_state_count(const nb_optim *o)
{
    return o ? (int)HASH_COUNT(o->states) : 0;
}

/* --------------------------------------------------------- gradient norm */

static bool trainable(const nb_tensor *p)
{
    return nb_tensor_requires_grad(p) && nb_tensor_grad(p) != NULL;
}

double nb_grad_norm(const nb_model *m)
{
    double sum = 0.0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (!trainable(p))
            continue;
        sum += nbc_sum_squares(p->grad);
    }
    return sqrt(sum);
}

nb_status nb_clip_grad_norm(nb_model *m, double max_norm, double *norm_out)
{
    if (norm_out)
        *norm_out = 0.0;
    if (!m)
        return NB_ERR_NULL;
    if (!(isfinite(max_norm) && max_norm > 0.0))
        return NB_ERR_ARG;
    double norm = nb_grad_norm(m);
    if (norm_out)
        *norm_out = norm;
    if (!isfinite(norm))
        return NB_ERR_NONFINITE;
    if (norm <= max_norm)
        return NB_OK;
    double scale = max_norm / norm;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (!trainable(p))
            continue;
        nb_tensor *gr = p->grad;
        if (gr->dtype == NB_F32) {
            float *x = gr->data, s = (float)scale;
            for (int64_t i = 0; i < gr->size; i++)
                x[i] *= s;
        } else {
            double *x = gr->data;
            for (int64_t i = 0; i < gr->size; i++)
                x[i] *= scale;
        }
    }
    return NB_OK;
}

/* ---------------------------------------------------------------- update */

/* Compiled for AVX-512 and AVX2 too (NBC_WIDE_CLONES): Adam's square roots
 * and divisions are most of a step's optimizer time. */
/* One kernel per dtype T: w the parameter, gr its gradient, s0/s1/s2 its
 * state by slot name (nb_optim_slot_name(kind, i); NULL when not kept), n
 * elements. RMSprop's variants (momentum, centered) are loops of their own,
 * so that none tests per element. */
#define UPDATE_KERNEL(T, SFX, SQRT)                                                                \
    NBC_WIDE_CLONES static void update_##SFX(nb_optim_kind kind, const coefs *c, int64_t n, T *w,  \
                                             const T *gr, T *s0, T *s1, T *s2)                     \
    {                                                                                              \
        const T lr = (T)c->lr, wd = (T)c->wd, mu = (T)c->mu, clip = (T)c->clip;                    \
        const T b1 = (T)c->beta1, b2 = (T)c->beta2, eps = (T)c->eps;                               \
        const T one_b1 = (T)(1.0 - c->beta1), one_b2 = (T)(1.0 - c->beta2);                        \
        const T alpha = (T)c->alpha, one_alpha = (T)(1.0 - c->alpha);                              \
        const T step_size = (T)c->step_size, bc2_inv = (T)(1.0 / c->bc2_sqrt),                     \
                decay = (T)c->decay;                                                               \
        switch (kind) {                                                                            \
        case NB_OPTIM_SGD:                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T d = clip * gr[i] + wd * w[i];                                                    \
                w[i] -= lr * d;                                                                    \
            }                                                                                      \
            break;                                                                                 \
        case NB_OPTIM_MOMENTUM:                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T d = clip * gr[i] + wd * w[i];                                                    \
                s0[i] = mu * s0[i] + d;                                                            \
                w[i] -= lr * s0[i];                                                                \
            }                                                                                      \
            break;                                                                                 \
        case NB_OPTIM_NESTEROV:                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T d = clip * gr[i] + wd * w[i];                                                    \
                s0[i] = mu * s0[i] + d;                                                            \
                w[i] -= lr * (d + mu * s0[i]);                                                     \
            }                                                                                      \
            break;                                                                                 \
        case NB_OPTIM_ADAM: /* two loops, not a test per element: both vectorise */                \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T d = clip * gr[i] + wd * w[i];                                                    \
                s0[i] = b1 * s0[i] + one_b1 * d;                                                   \
                s1[i] = b2 * s1[i] + one_b2 * d * d;                                               \
                w[i] -= step_size * s0[i] / (SQRT(s1[i]) * bc2_inv + eps);                         \
            }                                                                                      \
            break;                                                                                 \
        case NB_OPTIM_ADAMW:                                                                       \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T d = clip * gr[i];                                                                \
                w[i] *= decay;                                                                     \
                s0[i] = b1 * s0[i] + one_b1 * d;                                                   \
                s1[i] = b2 * s1[i] + one_b2 * d * d;                                               \
                w[i] -= step_size * s0[i] / (SQRT(s1[i]) * bc2_inv + eps);                         \
            }                                                                                      \
            break;                                                                                 \
        case NB_OPTIM_RMSPROP: /* s0 square_avg, s1 momentum_buffer, s2 grad_avg */                \
            if (!s2 && !s1)                                                                        \
                for (int64_t i = 0; i < n; i++) {                                                  \
                    T d = clip * gr[i] + wd * w[i];                                                \
                    s0[i] = alpha * s0[i] + one_alpha * d * d;                                     \
                    w[i] -= lr * (d / (SQRT(s0[i]) + eps));                                        \
                }                                                                                  \
            else if (!s2)                                                                          \
                for (int64_t i = 0; i < n; i++) {                                                  \
                    T d = clip * gr[i] + wd * w[i];                                                \
                    s0[i] = alpha * s0[i] + one_alpha * d * d;                                     \
                    s1[i] = mu * s1[i] + d / (SQRT(s0[i]) + eps);                                  \
                    w[i] -= lr * s1[i];                                                            \
                }                                                                                  \
            else /* centered: s - avg^2 >= 0 but for rounding, which gives 0 */                    \
                for (int64_t i = 0; i < n; i++) {                                                  \
                    T d = clip * gr[i] + wd * w[i];                                                \
                    s0[i] = alpha * s0[i] + one_alpha * d * d;                                     \
                    s2[i] = alpha * s2[i] + one_alpha * d;                                         \
                    T var = s0[i] - s2[i] * s2[i];                                                 \
                    T q = d / (SQRT(var < 0 ? (T)0 : var) + eps);                                  \
                    if (s1) {                                                                      \
                        s1[i] = mu * s1[i] + q;                                                    \
                        q = s1[i];                                                                 \
                    }                                                                              \
                    w[i] -= lr * q;                                                                \
                }                                                                                  \
            break;                                                                                 \
        case NB_OPTIM_ADAGRAD: /* s0 sum */                                                        \
            for (int64_t i = 0; i < n; i++) {                                                      \
                T d = clip * gr[i] + wd * w[i];                                                    \
                s0[i] += d * d;                                                                    \
                w[i] -= step_size * (d / (SQRT(s0[i]) + eps));                                     \
            }                                                                                      \
            break;                                                                                 \
        }                                                                                          \
    }

UPDATE_KERNEL(float, f32, sqrtf)
UPDATE_KERNEL(double, f64, sqrt)

static nbopt_state *find_state(const nb_optim *o, const char *name)
{
    nbopt_state *s = NULL;
    HASH_FIND_STR(o->states, name, s);
    return s;
}

static bool state_fits(const nbopt_state *s, const nb_tensor *p)
{
    if (s->dtype != p->dtype || s->rank != p->rank)
        return false;
    for (int i = 0; i < p->rank; i++)
        if (s->shape[i] != p->shape[i])
            return false;
    return true;
}

/* Elements of a step below which the update runs on the caller alone: a
 * worker's start-up is a few microseconds, an Adam update of 32768 floats
 * about 25 (B2, 235 146 parameters: 0.176 ms a step on one thread). */
#define UPDATE_PARALLEL_MIN 32768

typedef struct update_ctx {
    nb_optim_kind kind;
    const nbopt_job *jobs;
    int n_jobs;
    int64_t total;
} update_ctx;

/* Elements [lo, hi) of parameter @p p, its state arrays by slot name in
 * @p slot, with coefficients @p c. */
static inline void update_range(nb_optim_kind kind, const coefs *c, const nb_tensor *p,
                                void *const slot[NBOPT_MAX_SLOTS], int64_t lo, int64_t hi)
{
    size_t at = (size_t)lo * nb_dtype_size(p->dtype);
    char *w = (char *)p->data + at, *gr = (char *)p->grad->data + at, *s[NBOPT_MAX_SLOTS];
    for (int i = 0; i < NBOPT_MAX_SLOTS; i++)
        s[i] = slot[i] ? (char *)slot[i] + at : NULL;
    if (p->dtype == NB_F32)
        update_f32(kind, c, hi - lo, (float *)w, (const float *)gr, (float *)s[0], (float *)s[1],
                   (float *)s[2]);
    else
        update_f64(kind, c, hi - lo, (double *)w, (const double *)gr, (double *)s[0],
                   (double *)s[1], (double *)s[2]);
}

/* Updates run with subnormal numbers read and written as zero: a moment
 * whose gradient stays 0 decays below the smallest normal float within
 * some 700 Adam steps, and x86 takes 5-6 times as long for arithmetic on
 * subnormals (B2's optimizer went from 0.2 to 1.3 ms a step past step
 * 700). Their share of an update is below a normal parameter's last bit,
 * so parameters of normal size come out the same. flush_on sets the
 * calling thread's mode and returns the old one for flush_off. */
static unsigned flush_on(void)
{
#if defined(__SSE2__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* flush to zero (bit 15), denormals are zero (bit 6) */
    return csr;
#else
    return 0;
#endif
}

static void flush_off(unsigned csr)
{
#if defined(__SSE2__)
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

/* Task t of n: the t-th of n runs of the step's elements (boundaries on
 * multiples of 64 elements, so no two threads write one cache line), with
 * subnormals flushed on the thread that runs it. */
static void update_task(void *ctx, int t, int n)
{
    const update_ctx *u = ctx;
    int64_t lo = 0, hi = u->total;
    if (n > 1) {
        lo = u->total / 64 * t / n * 64;
        hi = t == n - 1 ? u->total : u->total / 64 * (t + 1) / n * 64;
    }
    unsigned csr = flush_on();
    for (int k = 0; k < u->n_jobs && lo < hi; k++) {
        const nbopt_job *j = &u->jobs[k];
        int64_t end = j->start + j->p->size;
        if (end <= lo)
            continue;
        int64_t b = hi < end ? hi : end;
        update_range(u->kind, &j->c, j->p, j->slot, lo - j->start, b - j->start);
        lo = b;
    }
    flush_off(csr);
}

/* Room in o->jobs for @p n parameters (allocates only when the model has
 * more trainable parameters than at any step before). */
static bool reserve_jobs(nb_optim *o, int n)
{
    if (n <= o->jobs_cap)
        return true;
    nbopt_job *j = o->alloc(o->ud, o->jobs, (size_t)o->jobs_cap * sizeof *j, (size_t)n * sizeof *j);
    if (!j)
        return false;
    o->jobs = j;
    o->jobs_cap = n;
    return true;
}

nb_status nb_optim_step(nb_optim *o, nb_model *m)
{
    if (!o)
        return NB_ERR_NULL;
    nb_error_clear(&o->err);
    if (!m)
        return nbopt_error(o, NB_ERR_NULL, "optim_step: no model (NULL)");
    if (o->step == INT64_MAX || (!o->opts.schedule.per_epoch && o->sched_pos == INT64_MAX))
        return nbopt_error(o, NB_ERR_ARG,
                           "optim_step: the step count or schedule position is at its limit");

    /* 1. every parameter's state exists and fits (allocates only for
     *    parameters met for the first time; nothing is updated yet) */
    int n_trainable = 0;
    int64_t elems = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (!trainable(p))
            continue;
        n_trainable++;
        elems += p->size;
        nbopt_state *s = find_state(o, p->name);
        if (s) {
            if (s->step == INT64_MAX)
                return nbopt_error(o, NB_ERR_ARG,
                                   "optim_step: the step count of parameter '%s' is at its limit",
                                   p->name);
            if (!state_fits(s, p)) {
                char a[96], b[96];
                return nbopt_error(o, NB_ERR_SHAPE,
                                   "optim_step: parameter '%s' is %s%s but its optimizer state "
                                   "was made for %s%s",
                                   p->name, nb_dtype_name(p->dtype), nbc_shp(p, a, sizeof a),
                                   nb_dtype_name(s->dtype),
                                   nb_shape_str(s->rank, s->shape, b, sizeof b));
            }
            continue;
        }
        s = nbopt_state_new(o, p->name, p->dtype, p->rank, p->shape);
        int oom = s == NULL;
        if (s)
            HASH_ADD_KEYPTR(hh, o->states, s->key, s->key_size - 1, s);
        if (oom) {
            nbopt_state_free(o, s);
            return nbopt_error(o, NB_ERR_NOMEM,
                               "optim_step: out of memory making the state of parameter '%s'",
                               p->name);
        }
    }

    if (!reserve_jobs(o, n_trainable))
        return nbopt_error(o, NB_ERR_NOMEM, "optim_step: out of memory listing %d parameters",
                           n_trainable);

    /* 2. clipping by global norm */
    double clip = 1.0;
    o->last_norm = 0.0;
    if (o->opts.clip_norm > 0.0) {
        double norm = nb_grad_norm(m);
        o->last_norm = norm;
        if (!isfinite(norm))
            return nbopt_error(o, NB_ERR_NONFINITE,
                               "optim_step: the global gradient norm is %g; nothing was updated",
                               norm);
        if (norm > o->opts.clip_norm)
            clip = o->opts.clip_norm / norm;
    }

    /* 3. update: on the caller, parameter after parameter, or (threads, and
     *    enough elements) shared out over the workers by update_task */
    bool parallel = o->threads > 1 && elems >= UPDATE_PARALLEL_MIN;
    coefs c = {0};
    c.lr = nb_optim_lr(o);
    c.wd = o->opts.weight_decay;
    c.mu = o->opts.momentum;
    c.clip = clip;
    c.beta1 = o->opts.beta1;
    c.beta2 = o->opts.beta2;
    c.eps = o->opts.eps;
    c.alpha = o->opts.alpha;
    c.decay = 1.0 - c.lr * c.wd;
    int ids[NBOPT_MAX_SLOTS];
    int n_slots = nbopt_slots(&o->opts, ids);
    int n_jobs = 0;
    int64_t total = 0;
    unsigned csr = parallel ? 0 : flush_on();
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (!trainable(p))
            continue;
        nbopt_state *s = find_state(o, p->name);
        s->step++;
        if (o->opts.kind == NB_OPTIM_ADAM || o->opts.kind == NB_OPTIM_ADAMW) {
            double t = (double)s->step; /* bias corrections of the moments */
            c.step_size = c.lr / (1.0 - pow(c.beta1, t));
            c.bc2_sqrt = sqrt(1.0 - pow(c.beta2, t));
        } else if (o->opts.kind == NB_OPTIM_ADAGRAD) {
            c.step_size = c.lr / (1.0 + (double)(s->step - 1) * o->opts.lr_decay);
        }
        void *slot[NBOPT_MAX_SLOTS] = {NULL}; /* by slot name */
        for (int i = 0; i < n_slots; i++)
            slot[ids[i]] = nbopt_slot(s, i);
        if (!parallel) {
            update_range(o->opts.kind, &c, p, slot, 0, p->size);
            continue;
        }
        nbopt_job *j = &o->jobs[n_jobs++];
        *j = (nbopt_job){.p = p, .c = c, .start = total};
        memcpy(j->slot, slot, sizeof slot);
        total += p->size;
    }
    if (parallel) {
        update_ctx u = {.kind = o->opts.kind, .jobs = o->jobs, .n_jobs = n_jobs, .total = total};
        nbc_parallel(o->threads, update_task, &u);
    } else {
        flush_off(csr);
    }
    o->step++;
    if (!o->opts.schedule.per_epoch)
        o->sched_pos++;
    return NB_OK;
}
