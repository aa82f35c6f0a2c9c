/* nb_check_model: a network checked against its model's parameters (see
 * nabla/modelcheck.h). The network reads its parameters from the model, so
 * entries are moved in place, one at a time, and put back bit for bit; the
 * whole model is copied first and put back last, whatever happens. An f32
 * network is checked on an f64 twin built from its description. The
 * numerics (step, round-off bound, judgement, kinks) are nb_gradcheck's
 * (src/check/check_internal.h). */

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../check/check_internal.h"
#include "nabla/autodiff.h"
#include "nabla/meta.h"
#include "nabla/modelcheck.h"

static const char *const WHERE = "nb_check_model";

/* The seeds of the tangents and of the entries drawn, after the weights'. */
#define TANGENT_SEED UINT64_C(0x9e3779b97f4a7c15)
#define DRAW_SEED UINT64_C(0xd1b54a32d192ed03)

nb_model_check_opts nb_model_check_defaults(void)
{
    return (nb_model_check_opts){.check = nb_check_defaults(), .twin = true};
}

/* A parameter under check. */
typedef struct mparam {
    nb_tensor *own;   /* the model's */
    nb_tensor *twin;  /* the f64 twin's (NULL: none) */
    nb_tensor *t;     /* the one evaluated: own or twin */
    const char *name; /* as the model names it */
    int64_t n;
    double *grad;        /* reverse mode of the network evaluated, every entry */
    double *u;           /* the tangent of forward mode: 0 where not checked */
    double *own_grad;    /* reverse mode of the network itself, while a twin stands in */
    size_t bytes;        /* of grad, u and own_grad */
    bool *checked;       /* the entries compared */
    double fwd, own_fwd; /* forward mode along u */
} mparam;

/* A direction's numerical side, summed over its entries. */
typedef struct direction {
    double num, lo, hi; /* u·num, and its range with kinks at either side */
    double abs_u, abs_un, roundoff;
    bool kink;
} direction;

typedef struct mc {
    nb_alloc_fn alloc;
    void *ud;
    nb_check_opts o;
    int64_t max_entries;
    nb_model_check_result *r;
    nb_graph *g;
    nb_layer *net, *tnet; /* the network, its f64 twin (NULL: none) */
    nb_model *tm;         /* the twin's model */
    bool on_twin;         /* the twin is what is evaluated */
    nb_dtype xdt, ydt;    /* the network's input and output dtypes */
    nb_dtype twin_ydt;    /* the twin's output dtype */
    int xrank;
    int64_t xshape[NB_MAX_RANK], xn;
    double *x; /* x's values */
    int64_t ny;
    double *w, *y0; /* the weights; the output at the point */
    double f0, s0;  /* f and Σ|w⊙y| at the point */
    int np;
    mparam *p;
    /* the model as it was */
    unsigned char *saved;
    size_t saved_bytes;
    int n_saved;
    /* the verdict as it is built */
    nbg_class worst_class;
    double worst_ratio, worst_dir_ratio;
    bool all_zero, nondet;
} mc;

static void *mc_alloc(mc *c, size_t n)
{
    return c->alloc(c->ud, NULL, 0, n ? n : 1);
}

static void mc_free(mc *c, void *p, size_t n)
{
    if (p)
        c->alloc(c->ud, p, n ? n : 1, 0);
}

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* The check stops: status @p st and the sentence, where = nb_check_model. */
static nb_status fail(mc *c, nb_status st, const char *fmt, ...) PRINTF_LIKE(3, 4);
static nb_status fail(mc *c, nb_status st, const char *fmt, ...)
{
    nb_error_set(&c->r->error, st, WHERE, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->r->error.msg, sizeof c->r->error.msg, fmt, ap);
    va_end(ap);
    return st;
}

static nb_status out_of_memory(mc *c)
{
    return fail(c, NB_ERR_NOMEM, "out of memory");
}

static size_t tensor_bytes(const nb_tensor *t)
{
    return (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
}

/* ------------------------------------------------- the model, kept */

static nb_status snapshot(mc *c, nb_model *m)
{
    size_t bytes = 0;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        bytes += tensor_bytes(t) * (nb_tensor_grad(t) ? 2 : 1);
    c->saved = mc_alloc(c, bytes);
    if (!c->saved)
        return out_of_memory(c);
    c->saved_bytes = bytes;
    unsigned char *at = c->saved;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t), c->n_saved++) {
        memcpy(at, nb_tensor_data(t), tensor_bytes(t));
        at += tensor_bytes(t);
        if (nb_tensor_grad(t)) {
            memcpy(at, nb_tensor_data(nb_tensor_grad(t)), tensor_bytes(t));
            at += tensor_bytes(t);
        }
    }
    return NB_OK;
}

/* Put every value and gradient of @p m back as snapshot found it. */
static void restore(mc *c, nb_model *m)
{
    unsigned char *at = c->saved, *end = c->saved + c->saved_bytes;
    int k = 0;
    for (nb_tensor *t = nb_model_next(m, NULL); t && k < c->n_saved; t = nb_model_next(m, t), k++) {
        size_t b = tensor_bytes(t) * (nb_tensor_grad(t) ? 2 : 1);
        if ((size_t)(end - at) < b)
            break; /* the model changed shape under the check: leave the rest */
        memcpy(nb_tensor_data(t), at, tensor_bytes(t));
        at += tensor_bytes(t);
        if (nb_tensor_grad(t)) {
            memcpy(nb_tensor_data(nb_tensor_grad(t)), at, tensor_bytes(t));
            at += tensor_bytes(t);
        }
    }
}

/* -------------------------------------------------- evaluations */

/* Evaluate the twin (true) or the network itself (false). */
static void use_twin(mc *c, bool twin)
{
    c->on_twin = twin;
    for (int i = 0; i < c->np; i++)
        c->p[i].t = twin ? c->p[i].twin : c->p[i].own;
}

/* The dtypes of x and of the output of what is evaluated. */
static nb_dtype x_dtype(const mc *c)
{
    return c->on_twin ? NB_F64 : c->xdt;
}

static nb_dtype y_dtype(const mc *c)
{
    return c->on_twin ? c->twin_ydt : c->ydt;
}

/* The network on x (recording when @p record), its output in *y. On
 * failure r->error holds the graph's error, told as happening @p at. */
static nb_status run_net(mc *c, bool record, const char *at, nb_tensor **y)
{
    nb_graph_reset(c->g);
    nb_graph_set_recording(c->g, record);
    nb_tensor *x = nb_zeros(c->g, x_dtype(c), c->xrank, c->xshape);
    float *x32 = nb_tensor_f32(x);
    double *x64 = nb_tensor_f64(x);
    for (int64_t i = 0; x && i < c->xn; i++)
        if (x32)
            x32[i] = (float)c->x[i];
        else
            x64[i] = c->x[i];
    *y = x ? nb_layer_forward(c->g, c->on_twin ? c->tnet : c->net, x, false) : NULL;
    c->r->evals++;
    if (*y && (c->ny < 0 || nb_tensor_size(*y) == c->ny))
        return NB_OK; /* the first run fixes ny */
    const nb_error *e = nb_graph_error(c->g);
    nb_error *out = &c->r->error;
    if (*y)
        return nb_error_set(out, NB_ERR_ARG, WHERE,
                            "the network's output changed size %s (%lld elements, then %lld)", at,
                            (long long)c->ny, (long long)nb_tensor_size(*y));
    if (e->status == NB_ERR_NOMEM)
        return out_of_memory(c);
    nb_status st = e->status != NB_OK ? e->status : NB_ERR_ARG;
    nb_error_set(out, st, e->where[0] ? e->where : WHERE, "the network failed %s: %.*s", at,
                 (int)sizeof out->msg - 96, e->msg[0] ? e->msg : "no error recorded");
    memcpy(out->name, e->name, sizeof out->name);
    return st;
}

/* f = Σ w⊙y and s = Σ |w⊙y| (what f's round-off scales with). */
static void weigh(const mc *c, const nb_tensor *y, double *f, double *s)
{
    double sum = 0, mag = 0;
    for (int64_t k = 0; k < c->ny; k++) {
        double t = c->w[k] * nb_tensor_get(y, k);
        sum += t;
        mag += fabs(t);
    }
    *f = sum;
    *s = mag;
}

/* Whether the output y is y0 again, bit for bit; notes it otherwise. */
static bool same_output(mc *c, const nb_tensor *y)
{
    for (int64_t k = 0; k < c->ny; k++) {
        double v = nb_tensor_get(y, k);
        if (v != c->y0[k] && !(isnan(v) && isnan(c->y0[k]))) {
            c->nondet = true;
            snprintf(c->r->detail, sizeof c->r->detail,
                     "output[%lld] of the network was %.17g, then %.17g at the same point: the "
                     "network draws random numbers or keeps state in evaluation mode",
                     (long long)k, c->y0[k], v);
            return false;
        }
    }
    return true;
}

/* ----------------------------------------------------- the twin */

/* Why there is no twin: the network is checked in its own dtype. */
static nb_status no_twin(mc *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static nb_status no_twin(mc *c, const char *fmt, ...)
{
    c->r->twin_failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->r->note, sizeof c->r->note, fmt, ap);
    va_end(ap);
    return NB_OK;
}

/* Make dtype=f32 of description @p desc dtype=f64 (a line of its own). */
static bool to_f64(char *desc)
{
    for (char *p = desc; p; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (!strncmp(p, "dtype=f32", 9) && (p[9] == '\n' || p[9] == '\0')) {
            memcpy(p + 6, "f64", 3);
            return true;
        }
    }
    return false;
}

/* The twin's tensors take the model's values (and trainability) by name;
 * every trainable parameter of @p m must have its twin. */
static nb_status fill_twin(mc *c, nb_model *m)
{
    for (nb_tensor *t = nb_model_next(c->tm, NULL); t; t = nb_model_next(c->tm, t)) {
        nb_tensor *mine = nb_model_get(m, nb_tensor_name(t));
        bool fits = mine && nb_tensor_rank(mine) == nb_tensor_rank(t) &&
                    !memcmp(nb_tensor_shape(mine), nb_tensor_shape(t),
                            (size_t)nb_tensor_rank(t) * sizeof(int64_t));
        if (!fits) {
            char shape[96];
            nb_shape_str(nb_tensor_rank(t), nb_tensor_shape(t), shape, sizeof shape);
            return no_twin(c,
                           "the f64 twin built from the network's description holds %s%s, "
                           "which the model does not",
                           nb_tensor_name(t), shape);
        }
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            nb_tensor_set(t, i, nb_tensor_get(mine, i));
        nb_tensor_set_requires_grad(t, nb_tensor_requires_grad(mine));
    }
    for (int i = 0; i < c->np; i++) {
        c->p[i].twin = nb_model_get(c->tm, c->p[i].name);
        if (!c->p[i].twin)
            return no_twin(c,
                           "parameter '%s' is not one the network's layers register, so the f64 "
                           "twin does not hold it",
                           c->p[i].name);
    }
    return NB_OK;
}

/* The f64 twin of @p net in c->tm, c->tnet, or a note saying why there is
 * none (NB_OK either way); NB_ERR_NOMEM. */
static nb_status make_twin(mc *c, nb_layer *net, nb_model *m, const nb_model_check_opts *o)
{
    size_t cap = (size_t)NB_META_MAX + 1;
    char *desc = mc_alloc(c, cap);
    if (!desc)
        return out_of_memory(c);
    nb_error err;
    nb_status st = nb_layer_describe(net, desc, cap, &err);
    if (st == NB_ERR_NOMEM) {
        st = out_of_memory(c);
    } else if (st != NB_OK) {
        st =
            no_twin(c, "the network cannot be described, so no f64 twin can be built: %s", err.msg);
    } else if (!to_f64(desc)) {
        st = no_twin(c, "the network's description has no line dtype=f32");
    } else {
        char arch[16] = "";
        nb_meta_get(desc, "arch", arch, sizeof arch);
        nb_rng rng; /* dropout and RReLU keep one; evaluation does not draw */
        nb_rng_seed(&rng, 1);
        nb_layer_opts lo = {
            .init = NB_INIT_ZEROS, .rng = &rng, .defs = o->defs, .n_defs = o->n_defs};
        const char *prefix = strcmp(arch, "mlp") ? NULL : nb_layer_name(net);
        c->tm = nb_model_new_alloc(c->alloc, c->ud);
        st = !c->tm ? NB_ERR_NOMEM
                    : nb_layer_from_description(c->tm, prefix, desc, &lo, &c->tnet, &err);
        if (st == NB_ERR_NOMEM)
            st = out_of_memory(c);
        else if (st != NB_OK)
            st = no_twin(
                c, "the f64 twin cannot be built from the network's description: %s%s", err.msg,
                strstr(err.msg, "nb_layer_opts.defs") ? " (nb_model_check_opts.defs)" : "");
        else
            st = fill_twin(c, m);
    }
    mc_free(c, desc, cap);
    return st;
}

/* The twin computes what the network computes at x (y0), up to f32
 * rounding: else a description left something out, and there is no twin. */
static nb_status twin_agrees(mc *c)
{
    nb_tensor *y;
    use_twin(c, true);
    nb_status st = run_net(c, false, "on x", &y);
    if (st == NB_ERR_NOMEM)
        return st;
    if (st != NB_OK) {
        no_twin(c, "its f64 twin, built from the network's description, %s",
                c->r->error.msg + strlen("the network ")); /* "failed on x: ..." */
        nb_error_clear(&c->r->error);
        return NB_OK;
    }
    c->twin_ydt = nb_tensor_dtype(y);
    double scale = 1;
    for (int64_t k = 0; k < c->ny; k++)
        scale = fmax(scale, fabs(c->y0[k]));
    for (int64_t k = 0; k < c->ny; k++) {
        double v = nb_tensor_get(y, k);
        if (!(fabs(v - c->y0[k]) <= 1e-3 * scale))
            return no_twin(c,
                           "the f64 twin built from the network's description does not compute "
                           "what the network computes (output[%lld] is %.9g, the twin's %.9g)",
                           (long long)k, c->y0[k], v);
    }
    return NB_OK;
}

/* |a − b| is more than f32 rounding makes of values of size scale. */
static bool differ(double a, double b, double scale)
{
    return !(fabs(a - b) <= 1e-3 * fabs(b) + 1e-4 * scale);
}

/* The twin's derivatives (grad, fwd) are the network's own (own_grad,
 * own_fwd) up to f32 rounding: else its description leaves out something
 * that changes them (a stop_gradient, say), and there is no twin. */
static nb_status twin_derivatives_agree(mc *c, bool own_reverse_ok, bool own_forward_ok)
{
    nb_model_check_result *r = c->r;
    if (own_reverse_ok != r->reverse_ok || own_forward_ok != r->forward_ok)
        return no_twin(c, "%s mode fails in the %s",
                       own_reverse_ok != r->reverse_ok ? "reverse" : "forward",
                       own_reverse_ok && own_forward_ok ? "f64 twin, not in the network"
                                                        : "network, not in its f64 twin");
    double gs = 0, fs = 0;
    for (int i = 0; i < c->np; i++) {
        fs = fmax(fs, fabs(c->p[i].fwd));
        for (int64_t j = 0; j < c->p[i].n; j++)
            gs = fmax(gs, fabs(c->p[i].grad[j]));
    }
    static const char *const other =
        "the f64 twin built from the network's description has other derivatives than the "
        "network (%s mode %s '%s'%s: %.6g in the network, %.6g in the twin); the description "
        "leaves out something its forward pass does";
    for (int i = 0; i < c->np; i++) {
        const mparam *pp = &c->p[i];
        for (int64_t j = 0; r->reverse_ok && j < pp->n; j++)
            if (differ(pp->own_grad[j], pp->grad[j], gs)) {
                char at[32];
                snprintf(at, sizeof at, "[%lld]", (long long)j);
                return no_twin(c, other, "reverse", "at", pp->name, at, pp->own_grad[j],
                               pp->grad[j]);
            }
        if (r->forward_ok && differ(pp->own_fwd, pp->fwd, fs))
            return no_twin(c, other, "forward", "along", pp->name, "", pp->own_fwd, pp->fwd);
    }
    return NB_OK;
}

/* ------------------------------------------------------ numerics */

/* One entry's differences at step h: central, one-sided, and the round-off
 * bound of f's values there. */
typedef struct diffs {
    double cen, left, right, u;
} diffs;

static nb_status diff_at(mc *c, mparam *pp, int64_t j, double h, diffs *d)
{
    nb_tensor *t = pp->t;
    nb_dtype dt = nb_tensor_dtype(t);
    size_t size = nb_dtype_size(dt);
    unsigned char *at = (unsigned char *)nb_tensor_data(t) + (size_t)j * size, bits[8];
    memcpy(bits, at, size);
    double x0 = nb_tensor_get(t, j);
    double xp = nbg_in_dtype(dt, x0 + h), xm = nbg_in_dtype(dt, x0 - h);
    double hp = xp - x0, hm = x0 - xm;
    char where[NB_MODEL_CHECK_NAME_MAX + 64];
    snprintf(where, sizeof where, "with %.*s[%lld] moved", NB_MODEL_CHECK_NAME_MAX - 1, pp->name,
             (long long)j);
    if (!(hp > 0) || !(hm > 0)) {
        nb_error_set(&c->r->error, NB_ERR_ARG, WHERE,
                     "step %g vanishes next to %s[%lld] = %g in %s", h, pp->name, (long long)j, x0,
                     nb_dtype_name(dt));
        return NB_ERR_ARG;
    }
    double fp = 0, fm = 0, sp = 0, sm = 0;
    nb_tensor *y;
    nb_tensor_set(t, j, xp);
    nb_status st = run_net(c, false, where, &y);
    if (st == NB_OK) {
        weigh(c, y, &fp, &sp);
        nb_tensor_set(t, j, xm);
        st = run_net(c, false, where, &y);
    }
    if (st == NB_OK)
        weigh(c, y, &fm, &sm);
    memcpy(at, bits, size); /* the value as it was, bit for bit */
    if (st != NB_OK)
        return st == NB_ERR_NOMEM ? st : (c->r->error.status = NB_ERR_ARG);
    d->cen = (fp - fm) / (hp + hm);
    d->left = (c->f0 - fm) / hm;
    d->right = (fp - c->f0) / hp;
    d->u = NBG_ROUNDOFF_EPS * nbg_eps(y_dtype(c)) * fmax(c->s0, fmax(sp, sm));
    return NB_OK;
}

static void fill_entry(nb_model_check_entry *e, const char *name, int64_t index, double analytic,
                       double num, double left, double right, double abs_err, double roundoff)
{
    memset(e, 0, sizeof *e);
    snprintf(e->param, sizeof e->param, "%s", name);
    e->index = index;
    e->analytic = analytic;
    e->numerical = num;
    e->left = left;
    e->right = right;
    e->abs_err = abs_err;
    e->rel_err = abs_err / fmax(fabs(num), DBL_MIN);
    e->roundoff = roundoff;
}

/* Entry j of parameter pp: its differences, kink or not, judged against
 * reverse mode; its share of the parameter's direction in *dir. */
static nb_status check_entry(mc *c, mparam *pp, int64_t j, direction *dir)
{
    nb_model_check_result *r = c->r;
    double h = nbg_step(nb_tensor_dtype(pp->t), c->o.eps, nb_tensor_get(pp->t, j));
    diffs d, more;
    nb_status st = diff_at(c, pp, j, h, &d);
    double num = d.cen;
    if (st == NB_OK && c->o.richardson) { /* (4 C(h) - C(2h)) / 3 */
        st = diff_at(c, pp, j, 2 * h, &more);
        num = (4 * num - more.cen) / 3;
    }
    bool kink = false;
    if (st == NB_OK && nbg_kink_gap(d.left, d.right, num, d.u, h, &c->o)) {
        st = diff_at(c, pp, j, h / 16, &more);
        kink =
            st == NB_OK && nbg_kink_stays(d.left, d.right, more.left, more.right, more.u, h / 16);
    }
    if (st != NB_OK)
        return st;
    double roundoff = d.u / h * (c->o.richardson ? 1.5 : 1.0), err, ratio;
    double a = pp->grad[j];
    nbg_class cl = nbg_judge(a, num, d.left, d.right, kink, roundoff, &c->o, &err, &ratio);
    c->worst_class = cl > c->worst_class ? cl : c->worst_class;
    r->reverse_ok = r->reverse_ok && cl <= NBG_KINK;
    r->n_entries++;
    c->all_zero = c->all_zero && a == 0 && num == 0 && d.left == 0 && d.right == 0;
    if (kink && r->n_kinks++ == 0)
        fill_entry(&r->kink, pp->name, j, a, num, d.left, d.right, err, roundoff);
    if (ratio > c->worst_ratio) {
        c->worst_ratio = ratio;
        fill_entry(&r->worst, pp->name, j, a, num, d.left, d.right, err, roundoff);
    }
    double u = pp->u[j];
    dir->num += u * num;
    dir->lo += kink ? fmin(u * d.left, u * d.right) : u * num;
    dir->hi += kink ? fmax(u * d.left, u * d.right) : u * num;
    dir->abs_u += fabs(u);
    dir->abs_un += fabs(u * num);
    dir->roundoff += fabs(u) * roundoff;
    dir->kink |= kink;
    return NB_OK;
}

/* Forward mode along pp's tangent against the differences summed along
 * it, with the per-entry tolerances summed (as nb_gradcheck's fast mode). */
static void check_direction(mc *c, const mparam *pp, const direction *dir)
{
    nb_model_check_result *r = c->r;
    nb_check_opts o = c->o;
    o.atol = c->o.atol * dir->abs_u;
    o.rtol = c->o.rtol * (dir->abs_un > 0 && fabs(dir->num) > 0 ? dir->abs_un / fabs(dir->num) : 1);
    double err, ratio;
    nbg_class cl =
        nbg_judge(pp->fwd, dir->num, dir->lo, dir->hi, dir->kink, dir->roundoff, &o, &err, &ratio);
    c->worst_class = cl > c->worst_class ? cl : c->worst_class;
    r->forward_ok = r->forward_ok && cl <= NBG_KINK;
    c->all_zero = c->all_zero && pp->fwd == 0;
    if (ratio > c->worst_dir_ratio) {
        c->worst_dir_ratio = ratio;
        fill_entry(&r->worst_forward, pp->name, -1, pp->fwd, dir->num, dir->lo, dir->hi, err,
                   dir->roundoff);
    }
}

/* -------------------------------------------------- analytic side */

/* A rule failed in a sweep: that mode fails, with the graph's sentence. */
static nb_status rule_failed(mc *c, const char *mode, bool *ok)
{
    const nb_error *e = nb_graph_error(c->g);
    if (e->status == NB_ERR_NOMEM)
        return out_of_memory(c);
    *ok = false;
    if (!c->r->detail[0])
        snprintf(c->r->detail, sizeof c->r->detail, "%s mode failed: %.*s", mode,
                 (int)sizeof c->r->detail - 32, e->msg);
    nb_graph_clear_error(c->g);
    return NB_OK;
}

/* Reverse mode (one sweep seeded with w) and forward mode (a sweep per
 * parameter along its tangent) on a recorded run at the point. */
static nb_status analytic(mc *c)
{
    nb_model_check_result *r = c->r;
    r->reverse_ok = r->forward_ok = true;
    r->detail[0] = '\0';
    nb_tensor *y;
    nb_status st = run_net(c, true, "on x", &y);
    if (st != NB_OK || !same_output(c, y))
        return st;
    nb_graph *g = c->g;
    size_t n_ptr = (size_t)c->np * sizeof(nb_tensor *);
    nb_tensor **xs = mc_alloc(c, 2 * n_ptr), **outs = xs ? xs + c->np : NULL;
    if (!xs)
        return out_of_memory(c);
    for (int i = 0; i < c->np; i++)
        xs[i] = c->p[i].t;
    nb_tensor *seed = nb_zeros(g, y_dtype(c), nb_tensor_rank(y), nb_tensor_shape(y));
    for (int64_t k = 0; seed && k < c->ny; k++)
        nb_tensor_set(seed, k, c->w[k]);
    if (!seed)
        st = rule_failed(c, "reverse", &r->reverse_ok);
    else if (nb_tensor_requires_grad(y) && nb_grad(g, y, seed, xs, c->np, outs, false) != NB_OK)
        st = rule_failed(c, "reverse", &r->reverse_ok);
    for (int i = 0; i < c->np; i++)
        for (int64_t j = 0; j < c->p[i].n; j++)
            c->p[i].grad[j] = !r->reverse_ok               ? NAN
                              : nb_tensor_requires_grad(y) ? nb_tensor_get(outs[i], j)
                                                           : 0.0;
    for (int i = 0; st == NB_OK && r->forward_ok && i < c->np; i++) {
        mparam *pp = &c->p[i];
        nb_tensor *t = pp->t,
                  *tan = nb_zeros(g, nb_tensor_dtype(t), nb_tensor_rank(t), nb_tensor_shape(t)),
                  *yt = NULL;
        for (int64_t j = 0; tan && j < pp->n; j++)
            nb_tensor_set(tan, j, pp->u[j]);
        if (!tan || nb_jvp(g, y, &t, &tan, 1, &yt) != NB_OK) {
            st = rule_failed(c, "forward", &r->forward_ok);
            break;
        }
        double s;
        weigh(c, yt, &pp->fwd, &s);
    }
    for (int i = 0; !r->forward_ok && i < c->np; i++)
        c->p[i].fwd = NAN;
    mc_free(c, xs, 2 * n_ptr);
    return st;
}

/* ----------------------------------------------------- the check */

/* Buffers of every parameter, its tangent (in the parameter's dtype) and
 * the entries it checks, drawn from the seed. */
static nb_status prepare_params(mc *c)
{
    nb_rng tangents, draws;
    nb_rng_seed(&tangents, c->o.seed ^ TANGENT_SEED);
    nb_rng_seed(&draws, c->o.seed ^ DRAW_SEED);
    for (int i = 0; i < c->np; i++) {
        mparam *pp = &c->p[i];
        size_t n = (size_t)pp->n;
        pp->bytes = (c->tnet ? 3 : 2) * n * sizeof(double);
        pp->grad = mc_alloc(c, pp->bytes);
        pp->checked = mc_alloc(c, n);
        if (!pp->grad || !pp->checked)
            return out_of_memory(c);
        pp->u = pp->grad + n;
        pp->own_grad = c->tnet ? pp->u + n : NULL;
        int64_t k = c->max_entries;
        bool all = k == 0 || pp->n <= k;
        memset(pp->checked, all, n);
        /* Floyd's draw of k entries out of n */
        for (int64_t j = pp->n - k; !all && j < pp->n; j++) {
            int64_t pick = (int64_t)nb_rng_below(&draws, (uint64_t)j + 1);
            pp->checked[pp->checked[pick] ? j : pick] = true;
        }
        nb_dtype dt = nb_tensor_dtype(pp->own);
        for (int64_t j = 0; j < pp->n; j++)
            pp->u[j] = pp->checked[j] ? nbg_in_dtype(dt, nb_rng_normal(&tangents)) : 0.0;
    }
    return NB_OK;
}

/* f at the point, for what is evaluated: y0, f0, s0. */
static nb_status at_point(mc *c)
{
    nb_tensor *y;
    nb_status st = run_net(c, false, "on x", &y);
    if (st != NB_OK)
        return st;
    for (int64_t k = 0; k < c->ny; k++)
        c->y0[k] = nb_tensor_get(y, k);
    weigh(c, y, &c->f0, &c->s0);
    c->r->value = c->f0;
    return NB_OK;
}

/* f at the point and its derivatives, of the twin (when @p twin) or of
 * the network itself. */
static nb_status derivatives(mc *c, bool twin)
{
    use_twin(c, twin);
    nb_status st = at_point(c);
    return st == NB_OK ? analytic(c) : st;
}

/* The derivatives of what is checked: the twin's when they are the
 * network's own up to f32 rounding, else the network's. */
static nb_status choose(mc *c)
{
    nb_model_check_result *r = c->r;
    if (!c->tnet || r->twin_failed)
        return derivatives(c, false);
    nb_status st = derivatives(c, false);
    if (st != NB_OK || c->nondet)
        return st;
    bool rev = r->reverse_ok, fwd = r->forward_ok;
    for (int i = 0; i < c->np; i++) {
        memcpy(c->p[i].own_grad, c->p[i].grad, (size_t)c->p[i].n * sizeof(double));
        c->p[i].own_fwd = c->p[i].fwd;
    }
    st = derivatives(c, true);
    if (st == NB_OK && c->nondet) {
        c->nondet = false;
        no_twin(c, "its f64 twin, built from the network's description, is not deterministic");
    } else if (st == NB_OK) {
        st = twin_derivatives_agree(c, rev, fwd);
    }
    return st == NB_OK && r->twin_failed ? derivatives(c, false) : st;
}

/* The verdict from what the comparisons found. */
static void verdict(mc *c)
{
    nb_model_check_result *r = c->r;
    if (c->nondet) {
        r->pass = r->reverse_ok = r->forward_ok = false;
        r->cause = NB_CHECK_NOT_DETERMINISTIC;
        return;
    }
    if (c->all_zero && r->reverse_ok && r->forward_ok) {
        r->warning = true;
        r->pass = false;
        r->cause = NB_CHECK_ZERO;
        return;
    }
    r->pass = r->reverse_ok && r->forward_ok;
    r->cause = r->pass        ? NB_CHECK_AGREE
               : r->detail[0] ? NB_CHECK_RULE_ERROR
                              : nbg_cause(c->worst_class);
}

static nb_status run_check(mc *c)
{
    nb_status st = prepare_params(c);
    if (st == NB_OK)
        st = choose(c);
    c->r->twin = c->on_twin;
    c->r->dtype = x_dtype(c);
    for (int i = 0; st == NB_OK && !c->nondet && i < c->np; i++) {
        mparam *pp = &c->p[i];
        direction dir = {0};
        for (int64_t j = 0; st == NB_OK && j < pp->n; j++)
            if (pp->checked[j])
                st = check_entry(c, pp, j, &dir);
        if (st == NB_OK && c->r->forward_ok)
            check_direction(c, pp, &dir);
    }
    /* the point once more: the same output, or nothing can be judged */
    nb_tensor *y;
    if (st == NB_OK && !c->nondet && (st = run_net(c, false, "on x", &y)) == NB_OK)
        same_output(c, y);
    if (st == NB_OK)
        verdict(c);
    return st;
}

/* The network itself on x: its output's size and dtype, finite, in y0. */
static nb_status first_run(mc *c)
{
    c->ny = -1;
    nb_tensor *y;
    nb_status st = run_net(c, false, "on x", &y);
    if (st != NB_OK)
        return st;
    c->ny = nb_tensor_size(y);
    c->ydt = nb_tensor_dtype(y);
    if (c->ny == 0)
        return fail(c, NB_ERR_ARG, "the network's output at x is empty: nothing to check");
    c->w = mc_alloc(c, 2 * (size_t)c->ny * sizeof *c->w);
    if (!c->w)
        return out_of_memory(c);
    c->y0 = c->w + c->ny;
    for (int64_t k = 0; k < c->ny; k++) {
        c->y0[k] = nb_tensor_get(y, k);
        if (!isfinite(c->y0[k]))
            return fail(c, NB_ERR_NONFINITE,
                        "the network's output at x is not finite (%g at output[%lld]): nothing "
                        "can be checked",
                        c->y0[k], (long long)k);
    }
    /* the weights w, in the network's output dtype (the twin's takes them as they are) */
    nb_rng rng;
    nb_rng_seed(&rng, c->o.seed);
    for (int64_t k = 0; k < c->ny; k++)
        c->w[k] = nbg_in_dtype(c->ydt, nb_rng_normal(&rng));
    return NB_OK;
}

static nb_status check_args(const nb_model_check_opts *o, nb_layer *net, nb_model *m,
                            const nb_tensor *x, mc *c)
{
    if (!net || !m || !x)
        return fail(c, NB_ERR_NULL, "%s is NULL", !net ? "the network" : !m ? "the model" : "x");
    const nb_check_opts *k = &o->check;
    if (!(k->atol >= 0) || !(k->rtol >= 0) || !(k->eps >= 0) || (k->atol == 0 && k->rtol == 0))
        return fail(c, NB_ERR_ARG, "tolerances and eps must be >= 0, and atol or rtol > 0");
    if (o->max_entries < 0 || o->n_defs < 0)
        return fail(c, NB_ERR_ARG, "%s is negative", o->max_entries < 0 ? "max_entries" : "n_defs");
    if (o->n_defs > 0 && !o->defs)
        return fail(c, NB_ERR_NULL, "n_defs is %d but defs is NULL", o->n_defs);
    if (nb_tensor_size(x) == 0)
        return fail(c, NB_ERR_ARG, "x is empty: no sample to check the network on");
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        c->np += nb_tensor_requires_grad(t);
    if (c->np == 0)
        return fail(c, NB_ERR_ARG,
                    "the model has no trainable parameters (nb_tensor_requires_grad): nothing "
                    "to check");
    return NB_OK;
}

/* x's values and shape, copied. */
static nb_status take_input(mc *c, const nb_tensor *x)
{
    c->xdt = nb_tensor_dtype(x);
    c->xrank = nb_tensor_rank(x);
    memcpy(c->xshape, nb_tensor_shape(x), (size_t)c->xrank * sizeof *c->xshape);
    c->xn = nb_tensor_size(x);
    c->x = mc_alloc(c, (size_t)c->xn * sizeof *c->x);
    if (!c->x)
        return out_of_memory(c);
    for (int64_t i = 0; i < c->xn; i++)
        c->x[i] = nb_tensor_get(x, i);
    return NB_OK;
}

static nb_status check_model(nb_layer *net, nb_model *m, const nb_tensor *x,
                             const nb_model_check_opts *o, mc *c)
{
    nb_model_check_result *r = c->r;
    nb_status st = check_args(o, net, m, x, c);
    if (st != NB_OK)
        return st;
    c->p = mc_alloc(c, (size_t)c->np * sizeof *c->p);
    if (c->p)
        memset(c->p, 0, (size_t)c->np * sizeof *c->p);
    c->g = nb_graph_new_alloc(c->alloc, c->ud);
    if (!c->p || !c->g)
        return out_of_memory(c);
    int i = 0;
    bool any_f32 = false;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t)) {
        if (!nb_tensor_requires_grad(t))
            continue;
        c->p[i++] = (mparam){.t = t, .own = t, .name = nb_tensor_name(t), .n = nb_tensor_size(t)};
        r->n_total += nb_tensor_size(t);
        any_f32 |= nb_tensor_dtype(t) == NB_F32;
    }
    r->n_params = c->np;
    c->net = net;
    /* the network as it is on x: what fails here is the caller's input */
    if ((st = snapshot(c, m)) != NB_OK || (st = take_input(c, x)) != NB_OK ||
        (st = first_run(c)) != NB_OK)
        return st;
    if (any_f32 && !o->twin)
        no_twin(c, "the f64 twin is turned off (opts.twin)");
    else if (any_f32 && (st = make_twin(c, net, m, o)) == NB_OK && c->tnet && !r->twin_failed)
        st = twin_agrees(c);
    use_twin(c, false);
    return st == NB_OK ? run_check(c) : st;
}

static void mc_release(mc *c)
{
    for (int i = 0; c->p && i < c->np; i++) {
        mc_free(c, c->p[i].grad, c->p[i].bytes);
        mc_free(c, c->p[i].checked, (size_t)c->p[i].n);
    }
    mc_free(c, c->p, (size_t)c->np * sizeof *c->p);
    mc_free(c, c->w, 2 * (size_t)(c->ny > 0 ? c->ny : 0) * sizeof *c->w);
    mc_free(c, c->x, (size_t)c->xn * sizeof *c->x);
    mc_free(c, c->saved, c->saved_bytes);
    nb_layer_free(c->tnet);
    nb_model_free(c->tm);
    nb_graph_free(c->g);
}

nb_status nb_check_model(nb_layer *net, nb_model *m, const nb_tensor *x,
                         const nb_model_check_opts *o, nb_model_check_result *r)
{
    if (!r)
        return NB_ERR_NULL;
    memset(r, 0, sizeof *r);
    nb_error_clear(&r->error);
    nb_model_check_opts defaults = nb_model_check_defaults();
    if (!o)
        o = &defaults;
    mc c = {.alloc = o->alloc ? o->alloc : nb_default_alloc,
            .ud = o->alloc_ud,
            .o = o->check,
            .max_entries = o->max_entries,
            .r = r,
            .worst_class = NBG_OK,
            .worst_ratio = -INFINITY,
            .worst_dir_ratio = -INFINITY,
            .all_zero = true};
    r->atol = o->check.atol;
    r->rtol = o->check.rtol;
    r->kinks_accepted = o->check.kinks;
    nb_status st = check_model(net, m, x, o, &c);
    if (c.saved)
        restore(&c, m);
    mc_release(&c);
    if (st != NB_OK) {
        r->pass = r->reverse_ok = r->forward_ok = false;
        r->error.status = st;
    }
    return st;
}

/* ------------------------------------------------------ the report */

static void print_entry(FILE *f, const nb_model_check_entry *e, const char *analytic)
{
    if (e->index >= 0)
        fprintf(f, "'%s'[%lld]\n", e->param, (long long)e->index);
    else
        fprintf(f, "'%s' along a random tangent\n", e->param);
    fprintf(f, "      %s %.10g  numerical %.10g\n", analytic, e->analytic, e->numerical);
    if (e->index >= 0)
        fprintf(f, "      one-sided: left %.10g  right %.10g\n", e->left, e->right);
    else if (e->left != e->right) /* kinks along the direction */
        fprintf(f, "      one-sided range: %.10g to %.10g\n", e->left, e->right);
    fprintf(f, "      abs err %.3g  rel err %.3g\n", e->abs_err, e->rel_err);
}

void nb_model_check_print(const nb_model_check_result *r, FILE *f)
{
    if (!r || !f)
        return;
    if (r->error.status != NB_OK) {
        fprintf(f, "model check ERROR (%s): %s\n", nb_status_str(r->error.status), r->error.msg);
        return;
    }
    fprintf(f, "model check %s", r->warning ? "WARNING" : r->pass ? "PASSED" : "FAILED");
    if (!r->pass)
        fprintf(f, ": %s", nb_check_cause_str(r->cause));
    fprintf(f, "\n  evaluated in %s%s\n", nb_dtype_name(r->dtype),
            r->twin ? " (an f64 twin of the f32 network)" : "");
    if (r->twin_failed)
        fprintf(f, "  note: checked in the network's own dtype: %s\n", r->note);
    fprintf(
        f,
        "  %d parameter%s, %lld of %lld entries, %lld evaluations; f = sum(w * net(x)) = %.10g\n",
        r->n_params, r->n_params == 1 ? "" : "s", (long long)r->n_entries, (long long)r->n_total,
        (long long)r->evals, r->value);
    if (r->detail[0])
        fprintf(f, "  %s\n", r->detail);
    if (r->cause == NB_CHECK_NOT_DETERMINISTIC || r->warning)
        return; /* nothing judged, or nothing to show */
    fprintf(f, "  reverse mode: %s   forward mode: %s   (atol %.3g, rtol %.3g)\n",
            r->reverse_ok ? "ok" : "FAIL", r->forward_ok ? "ok" : "FAIL", r->atol, r->rtol);
    if (r->n_entries > 0) {
        fprintf(f, "  worst entry: ");
        print_entry(f, &r->worst, "reverse");
    }
    if (r->worst_forward.param[0]) {
        fprintf(f, "  worst direction: ");
        print_entry(f, &r->worst_forward, "forward");
    }
    if (r->n_kinks > 0) {
        fprintf(f, "  %lld kink%s %s (one-sided differences disagree)\n", (long long)r->n_kinks,
                r->n_kinks == 1 ? "" : "s",
                r->kinks_accepted ? "accepted" : "found, not accepted: kink acceptance is off");
        fprintf(f, "  first kink: ");
        print_entry(f, &r->kink, "reverse");
    }
}
