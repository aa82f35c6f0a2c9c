/* Numerical differentiation and the gradient checker.
 *
 * One check evaluates the function on a graph of its own many times: once
 * recorded, to get the analytic Jacobian by reverse mode (a VJP per output
 * element) and by forward mode (a JVP per input element), and twice per
 * input element with the element moved by ±h for central differences.
 * Moved points and forward-mode columns are replayed from the recording
 * where that reproduces f (see "replay" below). Fast mode replaces the
 * Jacobians by the scalar vᵀJu. Around the core:
 * the f64 shadow, kink acceptance from one-sided differences, the step
 * sweep, and localisation of a failure to one recorded op. */

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../autodiff/sweep.h"
#include "../ops/table.h"
#include "check_internal.h"

/* Inputs the checker takes at most (one bit each in wrt). */
#define MAX_INPUTS 32
/* Jacobian entries a full check may hold (five doubles each). */
#define MAX_ENTRIES (INT64_C(1) << 22)

typedef struct ck {
    nb_check_fn f;
    void *ctx;
    int n;
    nb_check_opts o;
    nb_dtype dt; /* dtype the function is evaluated in */
    int rank[MAX_INPUTS];
    int64_t shape[MAX_INPUTS][NB_MAX_RANK];
    int64_t size[MAX_INPUTS];
    double *x[MAX_INPUTS]; /* input values (owned) */
    char name[MAX_INPUTS][32];
    unsigned wrt;
    int64_t col0[MAX_INPUTS]; /* first Jacobian column of each checked input */
    int64_t k;                /* columns: elements of the checked inputs */
    int64_t m;                /* rows: output elements */
    nb_graph *g;
    nb_rng rng_saved;
    int64_t evals;
    nb_tensor *leaves[MAX_INPUTS];
    uint64_t ops; /* op evaluations of the latest call of f */
    /* replay: the recorded graph of f re-run kernel by kernel */
    bool replay; /* num is live and reproduces f */
    struct rplan {
        nb_tensor **node; /* ops to re-run, inputs before users */
        unsigned *dep;    /* per op: the leaves it depends on (bits) */
        int64_t n;
        nb_tensor *out;
    } num;          /* f's recorded ops that depend on its inputs */
    unsigned stale; /* inputs whose dependents hold values of a moved point */
    int64_t replays;
    /* f gave two values at the same point: output nondet_k, a then b */
    bool nondet;
    int64_t nondet_k;
    double nondet_a, nondet_b;
} ck;

nb_check_opts nb_check_defaults(void)
{
    return (nb_check_opts){
        .atol = 1e-5,
        .rtol = 1e-3,
        .shadow = true,
        .kinks = true,
        .localise = true,
        .seed = 1,
        .lo = -2,
        .hi = 2,
        .replay = true,
    };
}

const char *nb_check_cause_str(nb_check_cause c)
{
    switch (c) {
    case NB_CHECK_AGREE: return "the derivatives agree with the numerical derivative";
    case NB_CHECK_MISMATCH: return "a derivative disagrees with the numerical derivative";
    case NB_CHECK_KINK:
        return "kinks: the derivatives disagree only at kinks, and kink acceptance is off";
    case NB_CHECK_ROUNDOFF:
        return "round-off: the disagreements lie within the round-off of the finite "
               "differences, so this tolerance cannot be judged";
    case NB_CHECK_NOT_DETERMINISTIC:
        return "not deterministic: f returns different values at the same point";
    case NB_CHECK_RULE_ERROR: return "a derivative rule failed";
    case NB_CHECK_ZERO:
        return "nothing you checked depends on the inputs you gave: every entry of the Jacobian "
               "is exactly zero";
    }
    return "unknown cause";
}

static nb_status fail(nb_check_result *r, nb_status st, const char *fmt, const char *detail)
{
    nb_error_set(&r->error, st, NULL, "%s", "");
    snprintf(r->error.msg, sizeof r->error.msg, fmt, detail ? detail : "");
    return st;
}

/* A result with nothing in it yet. */
static void result_clear(nb_check_result *r)
{
    memset(r, 0, sizeof *r);
    nb_error_clear(&r->error);
}

static void ck_free(ck *c)
{
    for (int i = 0; i < c->n; i++)
        free(c->x[i]);
    free(c->num.node);
    free(c->num.dep);
    nb_graph_free(c->g);
}

/* Build the function on fresh leaves holding xv; NULL with r->error set. */
static nb_tensor *build(ck *c, double *const *xv, bool grad, nb_check_result *r)
{
    c->replay = false; /* the recorded graph goes */
    nb_graph_reset(c->g);
    for (int i = 0; i < c->n; i++) {
        nb_tensor *t = nb_zeros(c->g, c->dt, c->rank[i], c->shape[i]);
        if (!t)
            break;
        for (int64_t j = 0; j < c->size[i]; j++)
            nb_tensor_set(t, j, xv[i][j]);
        nb_tensor_set_name(t, c->name[i]);
        nb_tensor_set_requires_grad(t, grad && (c->wrt >> i & 1));
        c->leaves[i] = t;
    }
    if (c->o.rng)
        *c->o.rng = c->rng_saved;
    nb_tensor *y = NULL;
    if (nb_graph_status(c->g) == NB_OK) {
        y = c->f(c->g, c->leaves, c->n, c->ctx);
        c->evals++;
        c->ops = nb_graph_evals(c->g);
    }
    if (!y) {
        const nb_error *e = nb_graph_error(c->g);
        if (e->status != NB_OK) {
            nb_error_set(&r->error, NB_ERR_ARG, e->where, "the function failed: %.*s",
                         (int)sizeof e->msg - 32, e->msg);
            memcpy(r->error.name, e->name, sizeof e->name);
        } else {
            nb_error_set(&r->error, NB_ERR_ARG, NULL,
                         "the function returned NULL without recording an error");
        }
        return NULL;
    }
    if (nb_tensor_size(y) != c->m && c->m >= 0) {
        nb_error_set(&r->error, NB_ERR_ARG, NULL,
                     "the function's output changed size between evaluations (%lld, then %lld)",
                     (long long)c->m, (long long)nb_tensor_size(y));
        return NULL;
    }
    return y;
}

/* Evaluate at xv into out[m]. */
static nb_status eval(ck *c, double *const *xv, double *out, nb_check_result *r)
{
    nb_tensor *y = build(c, xv, false, r);
    if (!y)
        return NB_ERR_ARG;
    for (int64_t k = 0; k < c->m; k++)
        out[k] = nb_tensor_get(y, k);
    return NB_OK;
}

/* ---------------------------------------------------------------- replay
 *
 * Central differences move one input element at a time, and most of f's
 * ops do not depend on that input. Once f has been recorded, a moved point
 * is evaluated by re-running the kernels of the recorded ops that depend on
 * the moved input, in recorded order, on the recorded tensors: no call of f,
 * no graph building, no allocation. This reproduces f only when f builds
 * the same ops from its inputs near the point (no branching on values in C,
 * no values copied out of the graph and back in, no random draws outside
 * opts.rng), so the replay is judged first against two calls of f at
 * random points x ± h·u (the same ops, bit-identical outputs) and at x;
 * otherwise, and whenever opts.replay is off, every point is a call of f. */

typedef struct node_slot {
    const nb_tensor *t;
    int64_t p;
} node_slot;

static int slot_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const node_slot *)a)->t, y = (uintptr_t)((const node_slot *)b)->t;
    return x < y ? -1 : x > y;
}

/* The nodes out depends on, inputs before users, and for each the leaves
 * it depends on (bit q: leaves[q]). */
typedef struct depmap {
    nb_tensor **order; /* in g's arena */
    int64_t n;
    unsigned *dep;
    node_slot *slots; /* order sorted by address, for lookups */
} depmap;

static void depmap_free(depmap *d)
{
    free(d->dep);
    free(d->slots);
    memset(d, 0, sizeof *d);
}

/* Position of t in d's order, or -1. */
static int64_t depmap_find(const depmap *d, const nb_tensor *t)
{
    node_slot key = {t, 0};
    const node_slot *hit = bsearch(&key, d->slots, (size_t)d->n, sizeof *d->slots, slot_cmp);
    return hit ? hit->p : -1;
}

static bool depmap_make(nb_graph *g, nb_tensor *out, nb_tensor *const *leaves, int n_leaves,
                        depmap *d)
{
    memset(d, 0, sizeof *d);
    d->order = nba_topo(g, out, false, &d->n, "gradcheck");
    if (!d->order) {
        nb_graph_clear_error(g);
        return false;
    }
    d->slots = malloc((size_t)(d->n + 1) * sizeof *d->slots);
    d->dep = malloc((size_t)(d->n + 1) * sizeof *d->dep);
    bool ok = d->slots && d->dep;
    for (int64_t p = 0; ok && p < d->n; p++)
        d->slots[p] = (node_slot){d->order[p], p};
    if (ok)
        qsort(d->slots, (size_t)d->n, sizeof *d->slots, slot_cmp);
    for (int64_t p = 0; ok && p < d->n; p++) {
        const nb_tensor *t = d->order[p];
        d->dep[p] = 0;
        if (!t->op) {
            for (int q = 0; q < n_leaves; q++)
                if (t == leaves[q])
                    d->dep[p] |= 1u << q;
            continue;
        }
        for (int q = 0; ok && q < t->n_inputs; q++) {
            int64_t at = depmap_find(d, t->inputs[q]);
            ok = at >= 0 && at < p; /* inputs come first */
            if (ok)
                d->dep[p] |= d->dep[at];
        }
    }
    if (!ok)
        depmap_free(d);
    return ok;
}

/* The ops of a depmap that depend on some leaf: what a replay re-runs. */
typedef struct rplan rplan;

static void rplan_free(rplan *pl)
{
    free(pl->node);
    free(pl->dep);
    memset(pl, 0, sizeof *pl);
}

static bool rplan_make(const depmap *d, nb_tensor *out, rplan *pl)
{
    rplan_free(pl);
    pl->node = malloc((size_t)(d->n + 1) * sizeof *pl->node);
    pl->dep = malloc((size_t)(d->n + 1) * sizeof *pl->dep);
    if (!pl->node || !pl->dep) {
        rplan_free(pl);
        return false;
    }
    for (int64_t p = 0; p < d->n; p++)
        if (d->dep[p] && d->order[p]->op && d->order[p]->n_inputs > 0) {
            pl->node[pl->n] = d->order[p];
            pl->dep[pl->n++] = d->dep[p];
        }
    pl->out = out;
    return true;
}

/* Re-run the kernels of the plan's ops that depend on the leaves in mask. */
static bool rplan_run(nb_graph *g, const rplan *pl, unsigned mask)
{
    for (int64_t p = 0; p < pl->n; p++) {
        if (!(pl->dep[p] & mask))
            continue;
        nb_tensor *t = pl->node[p];
        if (t->op->forward(g, t) != NB_OK) {
            nb_graph_clear_error(g);
            return false;
        }
    }
    return true;
}

/* Re-run the recorded ops of f that depend on the inputs in mask. */
static bool rerun(ck *c, unsigned mask)
{
    if (!rplan_run(c->g, &c->num, mask))
        return c->replay = false;
    return true;
}

/* f where input i's element j is c->x[i][j] (the rest as recorded), by
 * replay, into out[m]. */
static bool replay_at(ck *c, int i, int64_t j, double *out)
{
    unsigned bit = 1u << i;
    nb_tensor_set(c->leaves[i], j, c->x[i][j]);
    if (!rerun(c, bit | c->stale))
        return false;
    c->stale = bit; /* the next element of another input first restores these */
    for (int64_t k = 0; k < c->m; k++)
        out[k] = nb_tensor_get(c->num.out, k);
    c->evals++;
    c->replays++;
    return true;
}

/* Replay at xv (every input moved), into out; false on a kernel failure.
 * For judging the replay: not counted as an evaluation. */
static bool replay_all(ck *c, double *const *xv, double *out)
{
    unsigned all = 0;
    for (int i = 0; i < c->n; i++) {
        all |= 1u << i;
        for (int64_t j = 0; j < c->size[i]; j++)
            nb_tensor_set(c->leaves[i], j, xv[i][j]);
    }
    if (!rerun(c, all))
        return false;
    c->stale = 0;
    for (int64_t k = 0; k < c->m; k++)
        out[k] = nb_tensor_get(c->num.out, k);
    return true;
}

static bool same_values(const double *a, const double *b, int64_t m)
{
    for (int64_t k = 0; k < m; k++)
        if (!(a[k] == b[k] || (isnan(a[k]) && isnan(b[k]))))
            return false;
    return true;
}

/* f at the current point c->x, moved from the recorded one in input i's
 * element j only: by replay when it is live, else by a call. */
static nb_status eval_moved(ck *c, int i, int64_t j, double *out, nb_check_result *r)
{
    if (c->replay && replay_at(c, i, j, out))
        return NB_OK;
    return eval(c, c->x, out, r);
}

double nbg_eps(nb_dtype dt)
{
    return dt == NB_F32 ? FLT_EPSILON : DBL_EPSILON;
}

double nbg_step(nb_dtype dt, double eps, double v)
{
    if (eps > 0)
        return eps;
    return cbrt(nbg_eps(dt)) * fmax(1.0, fabs(v));
}

double nbg_in_dtype(nb_dtype dt, double v)
{
    return dt == NB_F32 ? (double)(float)v : v;
}

/* The default step for value v in the evaluation dtype. */
static double step_for(const ck *c, double v)
{
    return nbg_step(c->dt, c->o.eps, v);
}

/* v rounded to the evaluation dtype. */
static double in_dtype(const ck *c, double v)
{
    return nbg_in_dtype(c->dt, v);
}

/* Central (and one-sided) differences of every output for input i element
 * j with step h: cen, left, right get m values. Scratch: fp, fm (m each).
 * f0 is f at the unmoved point. */
static nb_status diff_at(ck *c, int i, int64_t j, double h, const double *f0, double *cen,
                         double *left, double *right, double *fp, double *fm, nb_check_result *r)
{
    double x0 = c->x[i][j];
    double xp = in_dtype(c, x0 + h), xm = in_dtype(c, x0 - h);
    double hp = xp - x0, hm = x0 - xm;
    if (hp <= 0 || hm <= 0) {
        nb_error_set(&r->error, NB_ERR_ARG, NULL, "step %g vanishes next to %s[%lld] = %g in %s", h,
                     c->name[i], (long long)j, x0, nb_dtype_name(c->dt));
        return NB_ERR_ARG;
    }
    nb_status st;
    c->x[i][j] = xp;
    st = eval_moved(c, i, j, fp, r);
    c->x[i][j] = xm;
    if (st == NB_OK)
        st = eval_moved(c, i, j, fm, r);
    c->x[i][j] = x0;
    if (c->replay)
        nb_tensor_set(c->leaves[i], j, x0);
    if (st != NB_OK)
        return st;
    for (int64_t k = 0; k < c->m; k++) {
        cen[k] = (fp[k] - fm[k]) / (hp + hm);
        if (left)
            left[k] = (f0[k] - fm[k]) / hm;
        if (right)
            right[k] = (fp[k] - f0[k]) / hp;
    }
    return NB_OK;
}

/* Bound u[k] on the round-off error of f's values near the point, from f0
 * and f at the moved points fp, fm. A one-sided difference with step s is
 * then off by at most 2u/s, the gap between the two sides by 4u/s, and a
 * central difference by u/s. */
static void value_roundoff(const ck *c, const double *f0, const double *fp, const double *fm,
                           double *u)
{
    double e = nbg_eps(c->dt);
    for (int64_t k = 0; k < c->m; k++)
        u[k] = NBG_ROUNDOFF_EPS * e * fmax(fabs(f0[k]), fmax(fabs(fp[k]), fabs(fm[k])));
}

/* Numerical derivatives at (i, j): num (central or Richardson), left,
 * right, and u (may be NULL) the round-off bound of f's values there
 * (value_roundoff); *h_out the step. */
static nb_status numeric_col(ck *c, int i, int64_t j, const double *f0, double *num, double *left,
                             double *right, double *s1, double *s2, double *s3, double *u,
                             double *h_out, nb_check_result *r)
{
    double h = step_for(c, c->x[i][j]);
    if (h_out)
        *h_out = h;
    nb_status st = diff_at(c, i, j, h, f0, num, left, right, s1, s2, r);
    if (st == NB_OK && u)
        value_roundoff(c, f0, s1, s2, u);
    if (st != NB_OK || !c->o.richardson)
        return st;
    /* D = (4 C(h) - C(2h)) / 3 cancels the h^2 term of the error */
    st = diff_at(c, i, j, 2 * h, f0, s3, NULL, NULL, s1, s2, r);
    if (st != NB_OK)
        return st;
    for (int64_t k = 0; k < c->m; k++)
        num[k] = (4 * num[k] - s3[k]) / 3;
    return NB_OK;
}

static void fill_entry(const ck *c, nb_check_entry *e, int i, int64_t j, int64_t k)
{
    memset(e, 0, sizeof *e);
    e->input = i;
    snprintf(e->input_name, sizeof e->input_name, "%s", i >= 0 ? c->name[i] : "");
    e->in_index = j;
    e->out_index = k;
}

/* An entry with what both modes and the differences said about it. */
static void judged_entry(const ck *c, nb_check_entry *e, int i, int64_t j, int64_t k, double rev,
                         double fwd, double num, double left, double right, double abs_err,
                         double roundoff)
{
    fill_entry(c, e, i, j, k);
    e->reverse = rev;
    e->forward = fwd;
    e->numerical = num;
    e->left = left;
    e->right = right;
    e->abs_err = abs_err;
    e->rel_err = abs_err / fmax(fabs(num), DBL_MIN);
    e->roundoff = roundoff;
}

/* A derivative rule failed inside a sweep: remember the first message
 * (the graph's sentence starts with the op). */
static void rule_failed(ck *c, nb_check_result *r, const char *mode)
{
    if (r->detail[0])
        return;
    snprintf(r->detail, sizeof r->detail, "%s mode failed: %.*s", mode, (int)sizeof r->detail - 32,
             nb_graph_error(c->g)->msg);
}

/* ------------------------------------------------------------ full mode */

/* Values of t (in c's evaluation dtype) from v. */
static void put_values(nb_tensor *t, const double *v, int64_t n)
{
    if (nb_tensor_dtype(t) == NB_F64)
        memcpy(nb_tensor_f64(t), v, (size_t)n * sizeof *v);
    else
        for (int64_t j = 0; j < n; j++)
            nb_tensor_set(t, j, v[j]);
}

/*
 * Forward-mode columns of input i (leaf x of f's recording y, d its depmap)
 * into jf, by one tangent sweep recorded from the ops' JVP rules with the
 * tangent T of x a leaf, then, for each element j, T = e_j and a replay of
 * the recorded tangent ops that depend on T (the tangents of the inputs
 * that do not depend on x are zeros, so their share is computed once).
 * The sweep follows nb_jvp's (only x has a tangent; ops without a tangent
 * rule, or whose inputs have none, have none). The replay is used only
 * when it gives nb_jvp's tangent exactly at a random T and at the last
 * element's one-hot (the sweep is recorded at the first's); false
 * otherwise, and on any error, so the caller runs nb_jvp per column, which
 * reports it.
 */
static bool forward_replayed(ck *c, nb_tensor *y, const depmap *d, int i, double *jf)
{
    nb_graph *g = c->g;
    nb_tensor *x = c->leaves[i];
    unsigned bit = 1u << i;
    int64_t nx = c->size[i], m = c->m;
    if (nx == 0)
        return true;
    int n_probes = nx > 1 ? 2 : 1;
    nbc_arena_pos pos = nbc_arena_tell(&g->arena);
    nb_tensor **tan = calloc((size_t)d->n + 1, sizeof *tan);
    double *u = malloc((size_t)(2 * nx + 3 * m + 1) * sizeof *u), *want = u + 2 * nx,
           *got = want + 2 * m;
    bool ok = tan && u;

    /* nb_jvp at the probe tangents first: its nodes go before the sweep is
     * recorded, which reuses their memory */
    nb_rng rng;
    nb_rng_seed(&rng, c->o.seed + 7919 * (uint64_t)(i + 1));
    for (int pr = 0; ok && pr < n_probes; pr++) {
        double *up = u + pr * nx;
        for (int64_t j = 0; j < nx; j++)
            up[j] = pr == 0 ? in_dtype(c, nb_rng_uniform(&rng) - 0.5) : (double)(j == nx - 1);
        nb_tensor *U = nb_zeros(g, c->dt, c->rank[i], c->shape[i]), *res = NULL;
        ok = U != NULL;
        if (ok) {
            put_values(U, up, nx);
            ok = nb_jvp(g, y, &x, &U, 1, &res) == NB_OK;
        }
        for (int64_t k = 0; ok && k < m; k++)
            want[pr * m + k] = nb_tensor_get(res, k);
        nbc_arena_release(&g->arena, pos);
    }

    /* the sweep, recorded */
    bool was_recording = nb_graph_recording(g);
    nb_graph_set_recording(g, true);
    nb_tensor *T = ok ? nb_zeros(g, c->dt, c->rank[i], c->shape[i]) : NULL;
    ok = ok && T;
    if (ok)
        nb_tensor_set(T, 0, 1.0);
    for (int64_t p = 0; ok && p < d->n; p++) {
        nb_tensor *node = d->order[p];
        if (node == x) {
            tan[p] = T;
            continue;
        }
        if (!(d->dep[p] & bit) || !node->op || node->n_inputs == 0 || !node->op->jvp)
            continue;
        nb_tensor *stack[8], **tans = stack;
        if (node->n_inputs > 8)
            ok = (tans = malloc((size_t)node->n_inputs * sizeof *tans)) != NULL;
        bool any = false;
        for (int q = 0; ok && q < node->n_inputs; q++) {
            int64_t at = depmap_find(d, node->inputs[q]);
            tans[q] = at >= 0 ? tan[at] : NULL;
            any |= tans[q] != NULL;
        }
        for (int q = 0; ok && any && q < node->n_inputs; q++)
            if (!tans[q])
                ok = (tans[q] = nba_zeros_like(g, node->inputs[q])) != NULL;
        nb_tensor *t = ok && any ? node->op->jvp(g, node, tans) : NULL;
        if (tans != stack)
            free(tans);
        if (nb_graph_status(g) != NB_OK ||
            (t && (t->dtype != node->dtype || !nbc_same_shape(t, node))))
            ok = false;
        tan[p] = t;
    }
    nb_graph_set_recording(g, was_recording);
    int64_t at = ok ? depmap_find(d, y) : -1;
    nb_tensor *yt = at >= 0 ? tan[at] : NULL; /* NULL: zero, as nb_jvp */
    rplan tp = {0};
    if (ok && yt) {
        depmap td;
        ok = depmap_make(g, yt, &T, 1, &td);
        ok = ok && rplan_make(&td, yt, &tp);
        depmap_free(&td);
    }

    /* judged at the probes */
    for (int pr = 0; ok && pr < n_probes; pr++) {
        if (yt) {
            put_values(T, u + pr * nx, nx);
            ok = rplan_run(g, &tp, 1);
        }
        for (int64_t k = 0; ok && k < m; k++)
            got[k] = yt ? nb_tensor_get(yt, k) : 0.0;
        ok = ok && same_values(got, want + pr * m, m);
    }

    /* the columns */
    if (ok && yt)
        memset(nb_tensor_data(T), 0, (size_t)nx * nb_dtype_size(c->dt));
    for (int64_t j = 0; ok && j < nx; j++) {
        if (yt) {
            if (j > 0)
                nb_tensor_set(T, j - 1, 0.0);
            nb_tensor_set(T, j, 1.0);
            ok = rplan_run(g, &tp, 1);
        }
        for (int64_t k = 0; ok && k < m; k++)
            jf[k * c->k + c->col0[i] + j] = yt ? nb_tensor_get(yt, k) : 0.0;
    }
    rplan_free(&tp);
    free(tan);
    free(u);
    nb_graph_clear_error(g);
    nbc_arena_release(&g->arena, pos);
    return ok;
}

/* Analytic Jacobians jr, jf (m x k, row-major) from y, f recorded at the
 * current point; with its depmap d (may be NULL) forward mode replays a
 * recorded tangent sweep per input where it can. */
static nb_status analytic(ck *c, nb_tensor *y, const depmap *d, double *jr, double *jf,
                          nb_check_result *r)
{
    nb_tensor *xs[MAX_INPUTS], *outs[MAX_INPUTS];
    int nw = 0, which[MAX_INPUTS];
    for (int i = 0; i < c->n; i++)
        if (c->wrt >> i & 1) {
            which[nw] = i;
            xs[nw++] = c->leaves[i];
        }
    nb_graph *g = c->g;

    /* reverse: one VJP per output element */
    r->reverse_ok = true;
    if (!nb_tensor_requires_grad(y)) {
        memset(jr, 0, (size_t)(c->m * c->k) * sizeof *jr);
    } else {
        for (int64_t k = 0; k < c->m; k++) {
            nbc_arena_pos pos = nbc_arena_tell(&g->arena);
            nb_tensor *seed =
                nb_zeros(g, nb_tensor_dtype(y), nb_tensor_rank(y), nb_tensor_shape(y));
            if (seed)
                nb_tensor_set(seed, k, 1.0);
            if (!seed || nb_grad(g, y, seed, xs, nw, outs, false) != NB_OK) {
                rule_failed(c, r, "reverse");
                r->reverse_ok = false;
                for (int64_t q = 0; q < c->m * c->k; q++)
                    jr[q] = NAN;
                nb_graph_clear_error(g);
                break;
            }
            for (int w = 0; w < nw; w++)
                for (int64_t j = 0; j < c->size[which[w]]; j++)
                    jr[k * c->k + c->col0[which[w]] + j] = nb_tensor_get(outs[w], j);
            nbc_arena_release(&g->arena, pos);
        }
    }

    /* forward: one JVP per input element. Only the input that element
     * belongs to gets a tangent (the others' are zero), so the sweep skips
     * the ops that do not depend on it. */
    r->forward_ok = true;
    for (int w = 0; w < nw && r->forward_ok; w++) {
        int i = which[w];
        if (d && forward_replayed(c, y, d, i, jf))
            continue;
        for (int64_t j = 0; j < c->size[i]; j++) {
            nbc_arena_pos pos = nbc_arena_tell(&g->arena);
            nb_tensor *yt = NULL;
            nb_tensor *tan = nb_zeros(g, c->dt, c->rank[i], c->shape[i]);
            bool ok = tan != NULL;
            if (ok) {
                nb_tensor_set(tan, j, 1.0);
                ok = nb_jvp(g, y, &xs[w], &tan, 1, &yt) == NB_OK;
            }
            if (!ok) {
                rule_failed(c, r, "forward");
                r->forward_ok = false;
                for (int64_t q = 0; q < c->m * c->k; q++)
                    jf[q] = NAN;
                nb_graph_clear_error(g);
                break;
            }
            for (int64_t k = 0; k < c->m; k++)
                jf[k * c->k + c->col0[i] + j] = nb_tensor_get(yt, k);
            nbc_arena_release(&g->arena, pos);
        }
    }
    return NB_OK;
}

nbg_class nbg_judge(double a, double num, double left, double right, bool kink, double roundoff,
                    const nb_check_opts *o, double *abs_err, double *ratio)
{
    double tol = o->atol + o->rtol * fabs(num);
    double err = fabs(a - num);
    *abs_err = isnan(err) ? INFINITY : err;
    if (err <= tol) {
        *ratio = tol > 0 ? err / tol : 0;
        return NBG_OK;
    }
    *ratio = tol > 0 ? *abs_err / tol : INFINITY;
    if (kink && isfinite(a) && a >= fmin(left, right) - tol && a <= fmax(left, right) + tol) {
        if (!o->kinks)
            return NBG_KINK_REFUSED;
        *ratio = -1;
        return NBG_KINK;
    }
    return err <= tol + roundoff ? NBG_ROUNDOFF : NBG_MISMATCH;
}

nb_check_cause nbg_cause(nbg_class worst)
{
    switch (worst) {
    case NBG_OK:
    case NBG_KINK: return NB_CHECK_AGREE;
    case NBG_ROUNDOFF: return NB_CHECK_ROUNDOFF;
    case NBG_KINK_REFUSED: return NB_CHECK_KINK;
    case NBG_MISMATCH: break;
    }
    return NB_CHECK_MISMATCH;
}

bool nbg_kink_gap(double left, double right, double num, double u, double h, const nb_check_opts *o)
{
    return fabs(left - right) > o->atol + o->rtol * fabs(num) + 4 * u / h;
}

bool nbg_kink_stays(double left, double right, double left16, double right16, double u16,
                    double h16)
{
    return fabs(left16 - right16) > 0.5 * fabs(left - right) + 4 * u16 / h16;
}

/* Which entries of column (i, j) are kinks: left and right differ by more
 * than the tolerance, and still by more than half as much at h/16 (on a
 * smooth function the gap is h·f'' and shrinks with h); both beyond what
 * round-off can make of the gap (4u/step, u the values' round-off bound
 * at step h, and the same at h/16). In f32 the round-off of the gap at
 * h/16 is 16 times that at h, and without this margin it alone passes
 * for a kink. */
static nb_status find_kinks(ck *c, int i, int64_t j, const double *f0, const double *num,
                            const double *left, const double *right, const double *u, double h,
                            bool *kink, double *s, nb_check_result *r)
{
    bool any = false;
    for (int64_t k = 0; k < c->m; k++) {
        kink[k] = nbg_kink_gap(left[k], right[k], num[k], u[k], h, &c->o);
        any |= kink[k];
    }
    if (!any)
        return NB_OK;
    size_t m = (size_t)c->m;
    double h16 = h / 16;
    nb_status st = diff_at(c, i, j, h16, f0, s, s + m, s + 2 * m, s + 3 * m, s + 4 * m, r);
    if (st != NB_OK)
        return st;
    double *u16 = s + 3 * m; /* over f(x + h/16), no longer needed */
    value_roundoff(c, f0, s + 3 * m, s + 4 * m, u16);
    for (int64_t k = 0; k < c->m; k++)
        kink[k] = kink[k] && nbg_kink_stays(left[k], right[k], s[m + k], s[2 * m + k], u16[k], h16);
    return NB_OK;
}

/* Output k of f was a at x and is b at x again: false, with the
 * difference noted in c, when they differ. */
static bool same_output(ck *c, int64_t k, double a, double b)
{
    if (same_values(&a, &b, 1))
        return true;
    c->nondet = true;
    c->nondet_k = k;
    c->nondet_a = a;
    c->nondet_b = b;
    return false;
}

/* f gave f0 at x, and now again (m values) there. */
static bool same_again(ck *c, const double *f0, const double *again)
{
    for (int64_t k = 0; k < c->m; k++)
        if (!same_output(c, k, f0[k], again[k]))
            return false;
    return true;
}

/* The verdict when f is not deterministic: nothing can be judged. */
static void not_deterministic(const ck *c, nb_check_result *r)
{
    r->pass = r->reverse_ok = r->forward_ok = false;
    r->cause = NB_CHECK_NOT_DETERMINISTIC;
    snprintf(r->detail, sizeof r->detail,
             "output[%lld] was %.17g, then %.17g at the same point; if f draws random numbers, "
             "give their generator in opts.rng",
             (long long)c->nondet_k, c->nondet_a, c->nondet_b);
}

/* One more call of f at x: when it does not give f0 again, the verdict is
 * that f is not deterministic (a kink or a failure may be its doing). */
static void recheck_determinism(ck *c, const double *f0, double *scratch, nb_check_result *r)
{
    nb_check_result ignored;
    if (eval(c, c->x, scratch, &ignored) == NB_OK && !same_again(c, f0, scratch))
        not_deterministic(c, r);
}

/* Record f at x and compute its Jacobians. With opts.replay, first call f
 * at x ± h·u for a random u over the checked inputs (each element moved by
 * half to all of its step, either way); the replay of moved points goes
 * live when it reproduces both calls (the same ops, the same outputs bit
 * for bit) and f0 = f(x). */
static nb_status record(ck *c, const double *f0, double *jr, double *jf, nb_check_result *r)
{
    size_t m = (size_t)c->m;
    uint64_t ops0 = c->ops;
    double *fu = NULL;
    double *xu[2][MAX_INPUTS] = {{0}};
    bool ok = c->o.replay && (fu = malloc((3 * m + 1) * sizeof *fu)) != NULL;
    for (int i = 0; i < c->n && ok; i++)
        for (int s = 0; s < 2 && ok; s++)
            ok = (xu[s][i] = malloc((size_t)(c->size[i] + 1) * sizeof(double))) != NULL;
    if (ok) {
        nb_rng rng;
        nb_rng_seed(&rng, c->o.seed ^ UINT64_C(0x9e3779b97f4a7c15));
        for (int i = 0; i < c->n; i++)
            for (int64_t j = 0; j < c->size[i]; j++) {
                double x0 = c->x[i][j], h = 0;
                if (c->wrt >> i & 1) {
                    h = step_for(c, x0) * (0.5 + 0.5 * nb_rng_uniform(&rng));
                    h = nb_rng_uniform(&rng) < 0.5 ? -h : h;
                }
                xu[0][i][j] = in_dtype(c, x0 + h);
                xu[1][i][j] = in_dtype(c, x0 - h);
            }
    }
    /* failures of f at the probes are not the check's: no replay then */
    nb_check_result scratch;
    for (int s = 0; s < 2 && ok; s++)
        ok = eval(c, xu[s], fu + s * m, &scratch) == NB_OK && c->ops == ops0;

    nb_status st = NB_ERR_ARG;
    nb_tensor *y = build(c, c->x, true, r);
    if (y) { /* f at x once more: the same values, or nothing can be judged */
        for (int64_t k = 0; k < c->m && same_output(c, k, f0[k], nb_tensor_get(y, k)); k++)
            ;
        if (c->nondet)
            y = NULL, st = NB_OK;
    }
    depmap d = {0};
    bool have_d = y && c->o.replay && depmap_make(c->g, y, c->leaves, c->n, &d);
    if (y)
        st = analytic(c, y, have_d ? &d : NULL, jr, jf, r);
    if (st == NB_OK && ok && have_d && c->ops == ops0 && rplan_make(&d, y, &c->num)) {
        c->replay = true;
        for (int s = 0; s < 2 && c->replay; s++)
            if (!replay_all(c, xu[s], fu + 2 * m) || !same_values(fu + 2 * m, fu + s * m, c->m))
                c->replay = false;
        if (c->replay && (!replay_all(c, c->x, fu + 2 * m) || !same_values(fu + 2 * m, f0, c->m)))
            c->replay = false;
    }
    depmap_free(&d);
    free(fu);
    for (int i = 0; i < c->n; i++) {
        free(xu[0][i]);
        free(xu[1][i]);
    }
    return st;
}

static nb_status full_check(ck *c, nb_check_result *r)
{
    if (c->k > 0 && c->m > MAX_ENTRIES / c->k) {
        char what[96];
        snprintf(what, sizeof what, "%lld x %lld", (long long)c->m, (long long)c->k);
        return fail(r, NB_ERR_ARG,
                    "the Jacobian (%s entries) is too large for a full check: "
                    "use fast mode",
                    what);
    }
    size_t mk = (size_t)(c->m * c->k), m = (size_t)c->m;
    double *jr = malloc((mk ? mk : 1) * sizeof *jr), *jf = malloc((mk ? mk : 1) * sizeof *jf);
    double *f0 = malloc(m * 13 * sizeof *f0 + 1);
    bool *kink = malloc(m + 1);
    nb_status st = NB_OK;
    if (!jr || !jf || !f0 || !kink) {
        st = fail(r, NB_ERR_NOMEM, "out of memory for the Jacobians%s", NULL);
        goto out;
    }
    double *num = f0 + m, *left = f0 + 2 * m, *right = f0 + 3 * m, *s1 = f0 + 4 * m,
           *s2 = f0 + 5 * m, *s3 = f0 + 6 * m, *s5 = f0 + 7 * m, *u = f0 + 12 * m;
    r->kinks_accepted = c->o.kinks;
    if (eval(c, c->x, f0, r) != NB_OK || record(c, f0, jr, jf, r) != NB_OK) {
        st = r->error.status = NB_ERR_ARG;
        goto out;
    }
    if (c->nondet) {
        not_deterministic(c, r);
        goto out;
    }
    r->n_entries = (int64_t)mk;
    double worst = -INFINITY;
    nbg_class worst_class = NBG_OK;
    bool rev_fail = false, fwd_fail = false;
    for (int i = 0; i < c->n; i++) {
        if (!(c->wrt >> i & 1))
            continue;
        for (int64_t j = 0; j < c->size[i]; j++) {
            double h;
            if (numeric_col(c, i, j, f0, num, left, right, s1, s2, s3, u, &h, r) != NB_OK ||
                find_kinks(c, i, j, f0, num, left, right, u, h, kink, s5, r) != NB_OK) {
                st = r->error.status = NB_ERR_ARG;
                goto out;
            }
            for (int64_t k = 0; k < c->m; k++) {
                int64_t q = k * c->k + c->col0[i] + j;
                double roundoff = u[k] / h * (c->o.richardson ? 1.5 : 1.0);
                double er, ef, qr, qf;
                nbg_class cr =
                    nbg_judge(jr[q], num[k], left[k], right[k], kink[k], roundoff, &c->o, &er, &qr);
                nbg_class cf =
                    nbg_judge(jf[q], num[k], left[k], right[k], kink[k], roundoff, &c->o, &ef, &qf);
                rev_fail |= cr > NBG_KINK;
                fwd_fail |= cf > NBG_KINK;
                worst_class = cr > worst_class ? cr : worst_class;
                worst_class = cf > worst_class ? cf : worst_class;
                if (kink[k]) {
                    if (r->n_kinks++ == 0)
                        judged_entry(c, &r->kink, i, j, k, jr[q], jf[q], num[k], left[k], right[k],
                                     fmax(er, ef), roundoff);
                }
                double qq = fmax(qr, qf);
                if (qq > worst) {
                    worst = qq;
                    judged_entry(c, &r->worst, i, j, k, jr[q], jf[q], num[k], left[k], right[k],
                                 fmax(er, ef), roundoff);
                }
            }
        }
    }
    r->reverse_ok = r->reverse_ok && !rev_fail;
    r->forward_ok = r->forward_ok && !fwd_fail;
    r->pass = r->reverse_ok && r->forward_ok;
    r->cause = r->pass        ? NB_CHECK_AGREE
               : r->detail[0] ? NB_CHECK_RULE_ERROR
                              : nbg_cause(worst_class);
    if (!r->pass || r->n_kinks > 0)
        recheck_determinism(c, f0, num, r);
out:
    free(jr);
    free(jf);
    free(f0);
    free(kink);
    return st;
}

/* ------------------------------------------------------------ fast mode */

static nb_status fast_check(ck *c, nb_check_result *r, bool *kink_seen)
{
    nb_rng rng;
    nb_rng_seed(&rng, c->o.seed);
    size_t m = (size_t)c->m;
    double *v = malloc((5 * m + 1) * sizeof *v);
    double *u[MAX_INPUTS] = {0}, *xp[MAX_INPUTS] = {0}, *xm[MAX_INPUTS] = {0};
    nb_status st = NB_OK;
    bool ok = v != NULL;
    for (int i = 0; i < c->n && ok; i++) {
        size_t s = (size_t)c->size[i] + 1;
        u[i] = calloc(s, sizeof *u[i]);
        xp[i] = malloc(s * sizeof *xp[i]);
        xm[i] = malloc(s * sizeof *xm[i]);
        ok = u[i] && xp[i] && xm[i];
    }
    if (!ok) {
        st = fail(r, NB_ERR_NOMEM, "out of memory%s", NULL);
        goto out;
    }
    double *f0 = v + m, *fp = v + 2 * m, *fm = v + 3 * m, *yt = v + 4 * m;
    double xmax = 0;
    for (int64_t k = 0; k < c->m; k++)
        v[k] = nb_rng_normal(&rng);
    for (int i = 0; i < c->n; i++)
        for (int64_t j = 0; j < c->size[i]; j++) {
            u[i][j] = (c->wrt >> i & 1) ? nb_rng_normal(&rng) : 0.0;
            if (c->wrt >> i & 1)
                xmax = fmax(xmax, fabs(c->x[i][j]));
        }

    /* analytic: one VJP with seed v, one JVP with tangents u */
    if (eval(c, c->x, f0, r) != NB_OK) {
        st = r->error.status = NB_ERR_ARG;
        goto out;
    }
    nb_tensor *y = build(c, c->x, true, r);
    if (!y) {
        st = r->error.status = NB_ERR_ARG;
        goto out;
    }
    for (int64_t k = 0; k < c->m && same_output(c, k, f0[k], nb_tensor_get(y, k)); k++)
        ;
    if (c->nondet) {
        not_deterministic(c, r);
        goto out;
    }
    nb_graph *g = c->g;
    nb_tensor *xs[MAX_INPUTS], *outs[MAX_INPUTS], *tans[MAX_INPUTS];
    int nw = 0, which[MAX_INPUTS];
    for (int i = 0; i < c->n; i++)
        if (c->wrt >> i & 1) {
            which[nw] = i;
            xs[nw++] = c->leaves[i];
        }
    double s_rev = 0, s_fwd = 0;
    r->reverse_ok = r->forward_ok = true;
    if (nb_tensor_requires_grad(y)) {
        nb_tensor *seed = nb_zeros(g, nb_tensor_dtype(y), nb_tensor_rank(y), nb_tensor_shape(y));
        if (seed)
            for (int64_t k = 0; k < c->m; k++)
                nb_tensor_set(seed, k, v[k]);
        if (!seed || nb_grad(g, y, seed, xs, nw, outs, false) != NB_OK) {
            rule_failed(c, r, "reverse");
            r->reverse_ok = false;
            nb_graph_clear_error(g);
        } else {
            for (int w = 0; w < nw; w++)
                for (int64_t j = 0; j < c->size[which[w]]; j++)
                    s_rev += u[which[w]][j] * nb_tensor_get(outs[w], j);
        }
    }
    bool tok = true;
    for (int w = 0; w < nw && tok; w++) {
        int i = which[w];
        tans[w] = nb_zeros(g, c->dt, c->rank[i], c->shape[i]);
        tok = tans[w] != NULL;
        for (int64_t j = 0; tok && j < c->size[i]; j++)
            nb_tensor_set(tans[w], j, u[i][j]);
    }
    nb_tensor *ytan = NULL;
    if (!tok || nb_jvp(g, y, xs, tans, nw, &ytan) != NB_OK) {
        rule_failed(c, r, "forward");
        r->forward_ok = false;
        nb_graph_clear_error(g);
    } else {
        for (int64_t k = 0; k < c->m; k++) {
            yt[k] = nb_tensor_get(ytan, k);
            s_fwd += v[k] * yt[k];
        }
    }

    /* numerical: directional differences along u */
    double h = c->o.eps > 0 ? c->o.eps : cbrt(nbg_eps(c->dt)) * fmax(1.0, xmax);
    for (int i = 0; i < c->n; i++)
        for (int64_t j = 0; j < c->size[i]; j++) {
            xp[i][j] = in_dtype(c, c->x[i][j] + h * u[i][j]);
            xm[i][j] = in_dtype(c, c->x[i][j] - h * u[i][j]);
        }
    if (eval(c, xp, fp, r) != NB_OK || eval(c, xm, fm, r) != NB_OK) {
        st = r->error.status = NB_ERR_ARG;
        goto out;
    }
    double s_num = 0, s_left = 0, s_right = 0, scale = 0, unorm = 0, vnorm = 0, roundoff = 0;
    value_roundoff(c, f0, fp, fm, yt); /* yt is no longer needed */
    for (int64_t k = 0; k < c->m; k++) {
        double d = (fp[k] - fm[k]) / (2 * h);
        s_num += v[k] * d;
        s_left += v[k] * (f0[k] - fm[k]) / h;
        s_right += v[k] * (fp[k] - f0[k]) / h;
        scale += fabs(v[k] * d);
        vnorm += fabs(v[k]);
        roundoff += fabs(v[k]) * yt[k] / h;
    }
    for (int i = 0; i < c->n; i++)
        for (int64_t j = 0; j < c->size[i]; j++)
            unorm += fabs(u[i][j]);
    nb_check_opts o = c->o;
    /* the per-entry tolerance summed over |v_k| |u_j| */
    o.atol = c->o.atol * vnorm * unorm;
    o.rtol = c->o.rtol * (scale > 0 && fabs(s_num) > 0 ? scale / fabs(s_num) : 1);
    double er, ef, qr, qf;
    nbg_class cr = nbg_judge(s_rev, s_num, s_left, s_right, false, roundoff, &o, &er, &qr);
    nbg_class cf = nbg_judge(s_fwd, s_num, s_left, s_right, false, roundoff, &o, &ef, &qf);
    double tol = o.atol + o.rtol * fabs(s_num);
    *kink_seen = fabs(s_left - s_right) > tol + 4 * roundoff;
    r->reverse_ok = r->reverse_ok && cr == NBG_OK;
    r->forward_ok = r->forward_ok && cf == NBG_OK;
    r->pass = r->reverse_ok && r->forward_ok;
    r->cause = r->pass        ? NB_CHECK_AGREE
               : r->detail[0] ? NB_CHECK_RULE_ERROR
                              : nbg_cause(cr > cf ? cr : cf);
    r->n_entries = 1;
    fill_entry(c, &r->worst, -1, -1, -1);
    r->worst.reverse = s_rev;
    r->worst.forward = s_fwd;
    r->worst.numerical = s_num;
    r->worst.left = s_left;
    r->worst.right = s_right;
    r->worst.abs_err = fmax(fabs(s_rev - s_num), fabs(s_fwd - s_num));
    r->worst.rel_err = r->worst.abs_err / fmax(fabs(s_num), DBL_MIN);
    r->worst.roundoff = roundoff;
    if (!r->pass || *kink_seen)
        recheck_determinism(c, f0, fp, r);
out:
    free(v);
    for (int i = 0; i < c->n; i++) {
        free(u[i]);
        free(xp[i]);
        free(xm[i]);
    }
    return st;
}

/* ------------------------------------------------------------ step sweep */

static void step_sweep(ck *c, nb_check_result *r)
{
    const nb_check_entry *e = &r->worst;
    if (e->input < 0 || e->in_index < 0)
        return;
    double a = isfinite(e->reverse) ? e->reverse : e->forward;
    size_t m = (size_t)c->m;
    double *buf = malloc((5 * m + 1) * sizeof *buf);
    if (!buf)
        return;
    double *f0 = buf, *cen = buf + m, *fp = buf + 2 * m, *fm = buf + 3 * m;
    int lowest = c->dt == NB_F32 ? 7 : 12;
    nb_check_result scratch; /* sweep failures do not change the verdict */
    memset(&scratch, 0, sizeof scratch);
    if (eval(c, c->x, f0, &scratch) == NB_OK) {
        for (int p = 1; p <= lowest && r->n_sweep < NB_CHECK_SWEEP_MAX; p++) {
            double h = pow(10.0, -p) * fmax(1.0, fabs(c->x[e->input][e->in_index]));
            if (diff_at(c, e->input, e->in_index, h, f0, cen, NULL, NULL, fp, fm, &scratch) !=
                NB_OK)
                break;
            r->sweep_h[r->n_sweep] = h;
            r->sweep_err[r->n_sweep++] = fabs(cen[e->out_index] - a);
        }
    }
    free(buf);
}

/* ---------------------------------------------------------- localisation */

typedef struct local_ctx {
    const nbo_def *def;
    const nb_attrs *attrs;
} local_ctx;

static nb_tensor *apply_recorded(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    const local_ctx *l = ctx;
    return nbo_apply(g, l->def, in, n, l->attrs);
}

static nb_status run(ck *c, nb_check_result *r, int depth);

/* Set up a check of f at the given input values (copied). */
static nb_status setup(ck *c, nb_check_fn f, void *ctx, int n, const nb_check_opts *o,
                       nb_check_result *r)
{
    memset(c, 0, sizeof *c);
    c->f = f;
    c->ctx = ctx;
    c->n = n;
    c->o = *o;
    c->m = -1;
    c->g = nb_graph_new();
    if (!c->g)
        return fail(r, NB_ERR_NOMEM, "out of memory%s", NULL);
    if (o->rng)
        c->rng_saved = *o->rng;
    return NB_OK;
}

/* Re-check every differentiable op that y's gradients pass through, alone
 * on its recorded inputs, in evaluation order; name the first that fails. */
static void localise(ck *c, nb_check_result *r)
{
    nb_check_result scratch;
    nb_tensor *y = build(c, c->x, true, &scratch);
    if (!y || !nb_tensor_requires_grad(y))
        return;
    int64_t n_order;
    nb_tensor **order = nba_topo(c->g, y, true, &n_order, "gradcheck");
    if (!order)
        return;
    int64_t index = 0;
    for (int64_t p = 0; p < n_order; p++) {
        nb_tensor *node = order[p];
        if (!node->op)
            continue;
        index++;
        if (!node->op->vjp || node->n_inputs > MAX_INPUTS)
            continue;
        local_ctx l = {node->op, node->attrs};
        ck lc;
        nb_check_result lr;
        memset(&lr, 0, sizeof lr);
        nb_check_opts lo = c->o;
        lo.localise = lo.sweep = lo.shadow = false;
        lo.rng = NULL;
        if (setup(&lc, apply_recorded, &l, node->n_inputs, &lo, &lr) != NB_OK)
            return;
        bool ok = true;
        for (int i = 0; i < node->n_inputs && ok; i++) {
            nb_tensor *in = node->inputs[i];
            lc.rank[i] = in->rank;
            memcpy(lc.shape[i], in->shape, (size_t)in->rank * sizeof *in->shape);
            lc.size[i] = in->size;
            lc.x[i] = malloc((size_t)(in->size + 1) * sizeof(double));
            ok = lc.x[i] != NULL;
            for (int64_t j = 0; ok && j < in->size; j++)
                lc.x[i][j] = nb_tensor_get(in, j);
            if (in->name && *in->name)
                snprintf(lc.name[i], sizeof lc.name[i], "%s", in->name);
            else
                snprintf(lc.name[i], sizeof lc.name[i], "input %d (%s)", i,
                         in->op ? in->op->name : "leaf");
            if (in->flags & NB_T_REQUIRES_GRAD)
                lc.wrt |= 1u << i;
        }
        lc.dt = NB_F64;
        nb_status st = ok ? run(&lc, &lr, 1) : NB_ERR_NOMEM;
        ck_free(&lc);
        if (st == NB_OK && !lr.pass) {
            r->localised = true;
            snprintf(r->culprit_op, sizeof r->culprit_op, "%s", node->op->name);
            snprintf(r->culprit_label, sizeof r->culprit_label, "%s", node->name ? node->name : "");
            r->culprit_node = index;
            r->culprit_entry = lr.worst;
            return;
        }
    }
}

/* Causes that put the blame on derivative rules (so on some op). */
static bool blames_rules(nb_check_cause cause)
{
    return cause == NB_CHECK_MISMATCH || cause == NB_CHECK_KINK || cause == NB_CHECK_RULE_ERROR;
}

/* The check proper on a set-up context. depth 1: a local re-check. */
static nb_status run(ck *c, nb_check_result *r, int depth)
{
    nb_error_clear(&r->error);
    r->atol = c->o.atol;
    r->rtol = c->o.rtol;
    if (c->wrt == 0)
        return fail(r, NB_ERR_ARG, "no input is selected for checking%s", NULL);
    c->k = 0;
    for (int i = 0; i < c->n; i++) {
        c->col0[i] = c->k;
        if (c->wrt >> i & 1)
            c->k += c->size[i];
    }
    /* one evaluation fixes the output size */
    nb_tensor *y = build(c, c->x, false, r);
    if (!y)
        return r->error.status = NB_ERR_ARG;
    c->m = nb_tensor_size(y);

    nb_status st;
    bool big = c->k > 0 && c->m > MAX_ENTRIES / c->k;
    if (c->o.fast || (depth > 0 && big)) {
        bool kink = false;
        st = fast_check(c, r, &kink);
        r->fast = true;
        if (st == NB_OK && !r->pass && !big && r->cause != NB_CHECK_NOT_DETERMINISTIC) {
            /* details of the failure, and the verdict where fast mode
             * cannot judge: a kink along u, or f not deterministic */
            nb_check_result full = *r;
            full.detail[0] = '\0';
            if (full_check(c, &full) == NB_OK) {
                bool use_full = kink || full.cause == NB_CHECK_NOT_DETERMINISTIC;
                bool pass = use_full ? full.pass : r->pass;
                bool rok = use_full ? full.reverse_ok : r->reverse_ok;
                bool fok = use_full ? full.forward_ok : r->forward_ok;
                nb_check_cause cause = use_full ? full.cause : r->cause;
                char detail[sizeof r->detail];
                memcpy(detail, r->detail, sizeof detail);
                *r = full;
                if (detail[0] && cause != NB_CHECK_NOT_DETERMINISTIC)
                    memcpy(r->detail, detail, sizeof detail);
                r->pass = pass;
                r->cause = cause;
                r->reverse_ok = rok;
                r->forward_ok = fok;
                r->fast = true;
                r->full_detail = true;
            }
        }
    } else {
        st = full_check(c, r);
    }
    if (st != NB_OK)
        return st;
    /* a failure of the derivatives is localised; round-off and a function
     * that is not deterministic are no op's fault */
    if (depth == 0 && c->o.localise && blames_rules(r->cause))
        localise(c, r);
    if (depth == 0 && c->o.sweep && r->cause != NB_CHECK_NOT_DETERMINISTIC)
        step_sweep(c, r);
    return NB_OK;
}

/* A failure of the checker itself (not of an op) is placed at @p where. */
static nb_status placed(nb_check_result *r, nb_status st, const char *where)
{
    if (r && st != NB_OK && !r->error.where[0])
        snprintf(r->error.where, sizeof r->error.where, "%s", where);
    return st;
}

static nb_status gradcheck(nb_check_fn f, void *ctx, nb_tensor *const *inputs, int n,
                           const nb_check_opts *o, nb_check_result *r)
{
    if (!r)
        return NB_ERR_NULL;
    result_clear(r);
    nb_check_opts defaults = nb_check_defaults();
    if (!o)
        o = &defaults;
    if (!f)
        return fail(r, NB_ERR_NULL, "no function to check (f is NULL)%s", NULL);
    if (n < 1 || n > MAX_INPUTS) {
        char what[32];
        snprintf(what, sizeof what, "%d", n);
        return fail(r, NB_ERR_ARG, "the function needs 1 to 32 inputs, got %s", what);
    }
    if (!inputs)
        return fail(r, NB_ERR_NULL, "inputs is NULL%s", NULL);
    if (!(o->atol >= 0) || !(o->rtol >= 0) || !(o->eps >= 0) || (o->atol == 0 && o->rtol == 0))
        return fail(r, NB_ERR_ARG, "tolerances and eps must be >= 0, and atol or rtol > 0%s", NULL);
    for (int i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof what, "%d", i);
        if (!inputs[i])
            return fail(r, NB_ERR_NULL, "input %s is NULL", what);
        if (nb_tensor_dtype(inputs[i]) != nb_tensor_dtype(inputs[0])) {
            snprintf(what, sizeof what, "%d is %s, input 0 is %s", i,
                     nb_dtype_name(nb_tensor_dtype(inputs[i])),
                     nb_dtype_name(nb_tensor_dtype(inputs[0])));
            return fail(r, NB_ERR_DTYPE, "inputs must share one dtype: input %s", what);
        }
    }
    unsigned all = n == 32 ? ~0u : (1u << n) - 1;
    unsigned wrt = o->wrt ? o->wrt & all : all;
    if (wrt == 0)
        return fail(r, NB_ERR_ARG, "wrt selects none of the inputs%s", NULL);

    nb_dtype dt = nb_tensor_dtype(inputs[0]);
    bool try_shadow = dt == NB_F32 && o->shadow;
    for (int attempt = 0; attempt < 2; attempt++) {
        ck c;
        if (setup(&c, f, ctx, n, o, r) != NB_OK)
            return r->error.status;
        c.wrt = wrt;
        c.dt = try_shadow ? NB_F64 : dt;
        bool ok = true;
        for (int i = 0; i < n && ok; i++) {
            const nb_tensor *t = inputs[i];
            c.rank[i] = nb_tensor_rank(t);
            memcpy(c.shape[i], nb_tensor_shape(t), (size_t)c.rank[i] * sizeof(int64_t));
            c.size[i] = nb_tensor_size(t);
            c.x[i] = malloc((size_t)(c.size[i] + 1) * sizeof(double));
            ok = c.x[i] != NULL;
            for (int64_t j = 0; ok && j < c.size[i]; j++)
                c.x[i][j] = nb_tensor_get(t, j);
            const char *name = nb_tensor_name(t);
            if (name && *name)
                snprintf(c.name[i], sizeof c.name[i], "%s", name);
            else
                snprintf(c.name[i], sizeof c.name[i], "input %d", i);
        }
        nb_status st = ok ? run(&c, r, 0) : fail(r, NB_ERR_NOMEM, "out of memory%s", NULL);
        ck_free(&c);
        if (o->rng)
            *o->rng = c.rng_saved;
        if (try_shadow && st != NB_OK && st != NB_ERR_NOMEM) {
            /* the function does not run in f64: check it as it is */
            try_shadow = false;
            result_clear(r);
            r->shadow_failed = true;
            continue;
        }
        r->shadow = try_shadow;
        r->evals = c.evals;
        r->replays = c.replays;
        return st;
    }
    return r->error.status;
}

nb_status nb_gradcheck(nb_check_fn f, void *ctx, nb_tensor *const *inputs, int n,
                       const nb_check_opts *o, nb_check_result *r)
{
    return placed(r, gradcheck(f, ctx, inputs, n, o, r), "nb_gradcheck");
}

/* ------------------------------------------------- single ops, numerics */

typedef struct op_ctx {
    int id;
    const nb_attrs *attrs;
} op_ctx;

static nb_tensor *apply_op(nb_graph *g, nb_tensor *const *in, int n, void *ctx)
{
    const op_ctx *oc = ctx;
    return nb_apply(g, oc->id, in, n, oc->attrs);
}

/* Random f64 leaves of the given shapes in g, uniform in [lo, hi]. */
static bool random_inputs(nb_graph *g, int n, const int *ranks, const int64_t *const *shapes,
                          double lo, double hi, uint64_t seed, nb_tensor **in)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        in[i] = nb_rand_uniform(g, &rng, NB_F64, ranks[i], shapes[i], lo, hi);
        if (!in[i])
            return false;
        char name[16];
        snprintf(name, sizeof name, "%c", 'a' + i);
        nb_tensor_set_name(in[i], name);
    }
    return true;
}

static nb_status gradcheck_op(int id, const nb_attrs *attrs, int n, const int *ranks,
                              const int64_t *const *shapes, const nb_check_opts *o,
                              nb_check_result *r)
{
    if (!r)
        return NB_ERR_NULL;
    result_clear(r);
    nb_check_opts defaults = nb_check_defaults();
    if (!o)
        o = &defaults;
    if (!nb_op_get(id)) {
        char what[32];
        snprintf(what, sizeof what, "%d", id);
        return fail(r, NB_ERR_ARG, "unknown op id %s", what);
    }
    if (n < 1 || n > MAX_INPUTS)
        return fail(r, NB_ERR_ARG, "n must be 1..32%s", NULL);
    if (!ranks || !shapes)
        return fail(r, NB_ERR_NULL, "ranks and shapes are required%s", NULL);
    for (int i = 0; i < n; i++)
        if (ranks[i] < 0 || ranks[i] > NB_MAX_RANK || (ranks[i] > 0 && !shapes[i]))
            return fail(r, NB_ERR_ARG, "a rank is out of 0..8 or a shape is NULL%s", NULL);
    nb_graph *g = nb_graph_new();
    if (!g)
        return fail(r, NB_ERR_NOMEM, "out of memory%s", NULL);
    nb_tensor *in[MAX_INPUTS];
    nb_status st;
    if (!random_inputs(g, n, ranks, shapes, o->lo, o->hi, o->seed, in)) {
        st = nb_error_set(&r->error, nb_graph_status(g), NULL, "cannot make the inputs: %.*s",
                          (int)sizeof r->error.msg - 32, nb_graph_error(g)->msg);
    } else {
        op_ctx oc = {id, attrs};
        st = nb_gradcheck(apply_op, &oc, in, n, o, r);
    }
    nb_graph_free(g);
    return st;
}

nb_status nb_gradcheck_op(int id, const nb_attrs *attrs, int n, const int *ranks,
                          const int64_t *const *shapes, const nb_check_opts *o, nb_check_result *r)
{
    return placed(r, gradcheck_op(id, attrs, n, ranks, shapes, o, r), "nb_gradcheck_op");
}

nb_tensor *nb_numerical_jacobian(nb_graph *g, nb_check_fn f, void *ctx, nb_tensor *const *inputs,
                                 int n, int wrt, const nb_check_opts *o)
{
    if (!g)
        return NULL;
    nb_check_opts defaults = nb_check_defaults();
    if (!o)
        o = &defaults;
    if (!f || !inputs || n < 1 || n > MAX_INPUTS || wrt < 0 || wrt >= n) {
        nbc_error(g, !f || !inputs ? NB_ERR_NULL : NB_ERR_ARG, "numerical_jacobian",
                  "need a function, 1..32 inputs and 0 <= wrt < n (n = %d, wrt = %d)", n, wrt);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!inputs[i]) {
            nbc_error(g, NB_ERR_NULL, "numerical_jacobian", "input %d is NULL", i);
            return NULL;
        }
    nb_check_result r;
    result_clear(&r);
    ck c;
    if (setup(&c, f, ctx, n, o, &r) != NB_OK) {
        nbc_error(g, NB_ERR_NOMEM, "numerical_jacobian", "out of memory");
        return NULL;
    }
    c.dt = nb_tensor_dtype(inputs[0]);
    c.wrt = 1u << wrt;
    nb_tensor *jac = NULL;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        c.rank[i] = nb_tensor_rank(inputs[i]);
        memcpy(c.shape[i], nb_tensor_shape(inputs[i]), (size_t)c.rank[i] * sizeof(int64_t));
        c.size[i] = nb_tensor_size(inputs[i]);
        c.x[i] = malloc((size_t)(c.size[i] + 1) * sizeof(double));
        ok = c.x[i] != NULL;
        for (int64_t j = 0; ok && j < c.size[i]; j++)
            c.x[i][j] = nb_tensor_get(inputs[i], j);
        snprintf(c.name[i], sizeof c.name[i], "input %d", i);
    }
    nb_tensor *y = ok ? build(&c, c.x, false, &r) : NULL;
    double *buf = NULL;
    if (y) {
        c.m = nb_tensor_size(y);
        int rank = nb_tensor_rank(y) + c.rank[wrt];
        int64_t shape[2 * NB_MAX_RANK];
        memcpy(shape, nb_tensor_shape(y), (size_t)nb_tensor_rank(y) * sizeof *shape);
        memcpy(shape + nb_tensor_rank(y), c.shape[wrt], (size_t)c.rank[wrt] * sizeof *shape);
        if (rank > NB_MAX_RANK) {
            nbc_error(g, NB_ERR_RANK, "numerical_jacobian",
                      "the Jacobian would have rank %d (at most %d)", rank, NB_MAX_RANK);
        } else {
            jac = nb_zeros(g, NB_F64, rank, shape);
            buf = malloc((size_t)(7 * c.m + 1) * sizeof *buf);
        }
    } else {
        nbc_error(g, ok ? NB_ERR_ARG : NB_ERR_NOMEM, "numerical_jacobian", "%s",
                  ok ? r.error.msg : "out of memory");
    }
    if (jac && !buf) {
        nbc_error(g, NB_ERR_NOMEM, "numerical_jacobian", "out of memory");
        jac = NULL;
    }
    size_t m = (size_t)c.m;
    if (jac && eval(&c, c.x, buf, &r) != NB_OK) {
        nbc_error(g, NB_ERR_ARG, "numerical_jacobian", "%s", r.error.msg);
        jac = NULL;
    }
    for (int64_t j = 0; jac && j < c.size[wrt]; j++) {
        if (numeric_col(&c, wrt, j, buf, buf + m, buf + 2 * m, buf + 3 * m, buf + 4 * m,
                        buf + 5 * m, buf + 6 * m, NULL, NULL, &r) != NB_OK) {
            nbc_error(g, NB_ERR_ARG, "numerical_jacobian", "%s", r.error.msg);
            jac = NULL;
            break;
        }
        double *jd = nb_tensor_f64(jac);
        for (int64_t k = 0; k < c.m; k++)
            jd[k * c.size[wrt] + j] = buf[m + (size_t)k];
    }
    free(buf);
    ck_free(&c);
    if (o->rng)
        *o->rng = c.rng_saved;
    return jac;
}
