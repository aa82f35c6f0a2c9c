/* Optimizers: each update rule against its formula (hand-computed values
 * and an independent reference over several steps), minimising a
 * quadratic, weight decay versus an L2 penalty, clipping, schedules,
 * lazily made state, bad input and allocation failure. */

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "tc.h"

#include "../src/optim/optim_internal.h" /* white box: counts at their limit */

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- helpers */

static nb_tensor *add_param(nb_model *m, const char *name, nb_dtype dt, int n, const double *v)
{
    nb_tensor *p = NULL;
    assert_int_equal(nb_model_add(m, name, dt, 1, (int64_t[]){n}, &p), NB_OK);
    for (int i = 0; i < n; i++)
        nb_tensor_set(p, i, v ? v[i] : 0.0);
    return p;
}

static void set_grad(nb_tensor *p, const double *g)
{
    for (int64_t i = 0; i < nb_tensor_size(p); i++)
        nb_tensor_set(nb_tensor_grad(p), i, g[i]);
}

static nb_optim *make(nb_optim_kind kind, double lr)
{
    nb_optim_opts o = nb_optim_defaults(kind);
    o.lr = lr;
    nb_optim *opt = nb_optim_new(&o);
    assert_non_null(opt);
    return opt;
}

/* --------------------------------------------- hand-computed single cases */

/* SGD, lr 0.1, w = [1, -2], g = [0.5, 1]: w1 = [0.95, -2.1], w2 = [0.9, -2.2]. */
static void test_sgd_by_hand(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F64, 2, (double[]){1, -2});
    nb_optim *opt = make(NB_OPTIM_SGD, 0.1);
    set_grad(w, (double[]){0.5, 1});
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    tc_near(nb_tensor_get(w, 0), 0.95, 1e-15);
    tc_near(nb_tensor_get(w, 1), -2.1, 1e-15);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    tc_near(nb_tensor_get(w, 0), 0.9, 1e-15);
    tc_near(nb_tensor_get(w, 1), -2.2, 1e-15);
    /* the gradient is read, not changed */
    tc_near(nb_tensor_get(nb_tensor_grad(w), 0), 0.5, 0);
    assert_int_equal(nb_optim_steps(opt), 2);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* Momentum 0.9, lr 0.1, w = 1, g = 1 each step:
 * v = 1, 1.9, 2.71; w = 0.9, 0.71, 0.439.
 * Nesterov: v = 1, 1.9; w = 1 - 0.1(1 + 0.9) = 0.81, 0.81 - 0.1(1 + 1.71) = 0.539. */
static void test_momentum_nesterov_by_hand(void **state)
{
    (void)state;
    const double want_m[3] = {0.9, 0.71, 0.439}, want_n[2] = {0.81, 0.539};
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F64, 1, (double[]){1});
    set_grad(w, (double[]){1});
    nb_optim *opt = make(NB_OPTIM_MOMENTUM, 0.1);
    for (int t = 0; t < 3; t++) {
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        tc_near(nb_tensor_get(w, 0), want_m[t], 1e-14);
    }
    nb_optim_free(opt);
    nb_tensor_set(w, 0, 1);
    opt = make(NB_OPTIM_NESTEROV, 0.1);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        tc_near(nb_tensor_get(w, 0), want_n[t], 1e-14);
    }
    nb_optim_free(opt);
    nb_model_free(m);
}

/* Adam with a constant gradient 2: m̂ = 2 and v̂ = 4 at every step (bias
 * correction undoes the decay exactly), so each step subtracts
 * lr·2/(2 + eps). AdamW with wd 0.1 also multiplies w by 1 - lr·wd first. */
static void test_adam_adamw_by_hand(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F64, 1, (double[]){1});
    set_grad(w, (double[]){2});
    nb_optim *opt = make(NB_OPTIM_ADAM, 0.1);
    double want = 1;
    for (int t = 0; t < 4; t++) {
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        want -= 0.1 * 2 / (2 + 1e-8);
        tc_near(nb_tensor_get(w, 0), want, 1e-13);
    }
    nb_optim_free(opt);

    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAMW);
    o.lr = 0.1;
    o.weight_decay = 0.1;
    opt = nb_optim_new(&o);
    nb_tensor_set(w, 0, 1);
    want = 1;
    for (int t = 0; t < 4; t++) {
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        want = want * (1 - 0.1 * 0.1) - 0.1 * 2 / (2 + 1e-8);
        tc_near(nb_tensor_get(w, 0), want, 1e-13);
    }
    nb_optim_free(opt);
    nb_model_free(m);
}

/* Subnormal numbers are read and written as zero inside an update (x86 is
 * 5-6 times slower on them), and the thread's floating-point mode is as it
 * was afterwards. */
static void test_subnormals_flushed(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F32, 1, (double[]){1});
    nb_tensor *gr = nb_tensor_grad(w);
    nb_tensor_set(gr, 0, 1e-20); /* its square, 1e-40, is subnormal in f32 */
    nb_optim *opt = make(NB_OPTIM_ADAM, 0.1);
#if defined(__SSE2__)
    unsigned before = _mm_getcsr();
#endif
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
#if defined(__SSE2__)
    assert_int_equal(_mm_getcsr() & 0xFFC0u, before & 0xFFC0u); /* the mode bits, not flags */
#endif
    nb_model *store = nb_model_new();
    char meta[4096];
    assert_int_equal(nb_optim_state_save(opt, m, store, meta, sizeof meta, NULL), NB_OK);
    char name[64];
    snprintf(name, sizeof name, "w/%s", nb_optim_slot_name(NB_OPTIM_ADAM, 1));
    nb_tensor *v = nb_model_get(store, name);
    assert_non_null(v);
    assert_true(nb_tensor_get(v, 0) == 0); /* (1 - beta2) * 1e-40 flushed */
    snprintf(name, sizeof name, "w/%s", nb_optim_slot_name(NB_OPTIM_ADAM, 0));
    tc_near(nb_tensor_get(nb_model_get(store, name), 0), 1e-21, 1e-27); /* m is normal */
    nb_model_free(store);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* ------------------------------------ several steps against a reference */

typedef struct ref {
    double w[3], v[3], s[3], a[3];
    int t;
} ref;

/* The update rules as docs/optim.md writes them (RMSprop and Adagrad as
 * PyTorch's documentation does), coded independently. */
static void ref_step(ref *r, const nb_optim_opts *o, const double *g, double lr)
{
    r->t++;
    for (int i = 0; i < 3; i++) {
        double d = g[i];
        if (r->t == 1 && o->kind == NB_OPTIM_ADAGRAD)
            r->s[i] = o->initial_accumulator_value;
        switch (o->kind) {
        case NB_OPTIM_SGD: r->w[i] -= lr * (d + o->weight_decay * r->w[i]); break;
        case NB_OPTIM_MOMENTUM:
            d += o->weight_decay * r->w[i];
            r->v[i] = o->momentum * r->v[i] + d;
            r->w[i] -= lr * r->v[i];
            break;
        case NB_OPTIM_NESTEROV:
            d += o->weight_decay * r->w[i];
            r->v[i] = o->momentum * r->v[i] + d;
            r->w[i] -= lr * (d + o->momentum * r->v[i]);
            break;
        case NB_OPTIM_ADAM:
        case NB_OPTIM_ADAMW: {
            if (o->kind == NB_OPTIM_ADAM)
                d += o->weight_decay * r->w[i];
            else
                r->w[i] -= lr * o->weight_decay * r->w[i];
            r->v[i] = o->beta1 * r->v[i] + (1 - o->beta1) * d;
            r->s[i] = o->beta2 * r->s[i] + (1 - o->beta2) * d * d;
            double mhat = r->v[i] / (1 - pow(o->beta1, r->t));
            double shat = r->s[i] / (1 - pow(o->beta2, r->t));
            r->w[i] -= lr * mhat / (sqrt(shat) + o->eps);
            break;
        }
        case NB_OPTIM_RMSPROP: { /* s square_avg, v momentum_buffer, a grad_avg */
            d += o->weight_decay * r->w[i];
            r->s[i] = o->alpha * r->s[i] + (1 - o->alpha) * d * d;
            double var = r->s[i];
            if (o->centered) {
                r->a[i] = o->alpha * r->a[i] + (1 - o->alpha) * d;
                var -= r->a[i] * r->a[i];
            }
            double step = d / (sqrt(var) + o->eps);
            if (o->momentum > 0) {
                r->v[i] = o->momentum * r->v[i] + step;
                step = r->v[i];
            }
            r->w[i] -= lr * step;
            break;
        }
        case NB_OPTIM_ADAGRAD: { /* s sum */
            double clr = lr / (1 + (r->t - 1) * o->lr_decay);
            d += o->weight_decay * r->w[i];
            r->s[i] += d * d;
            r->w[i] -= clr * d / (sqrt(r->s[i]) + o->eps);
            break;
        }
        }
    }
}

/* Gradient of 0.5·Σ a_i (w_i - c_i)² + 0.1·Σ sin(3 w_i): varies every step. */
static void quad_grad(const double *w, double *g)
{
    static const double a[3] = {1, 3, 0.5}, c[3] = {0.5, -1, 2};
    for (int i = 0; i < 3; i++)
        g[i] = a[i] * (w[i] - c[i]) + 0.3 * cos(3 * w[i]);
}

static void test_rules_match_reference(void **state)
{
    (void)state;
    for (int kind = NB_OPTIM_SGD; kind <= NB_OPTIM_ADAGRAD; kind++) {
        for (int wd = 0; wd < 2; wd++) {
            nb_optim_opts o = nb_optim_defaults((nb_optim_kind)kind);
            o.lr = 0.05;
            o.weight_decay = wd ? 0.2 : 0.0;
            o.beta1 = 0.8;
            o.beta2 = 0.95;
            o.eps = 1e-6;
            o.schedule.kind = NB_SCHED_STEP; /* lr changes on the way */
            o.schedule.step_size = 3;
            o.schedule.gamma = 0.5;
            nb_model *m = nb_model_new();
            ref r = {.w = {2, 0, -1}};
            nb_tensor *w = add_param(m, "w", NB_F64, 3, r.w);
            nb_optim *opt = nb_optim_new(&o);
            for (int t = 0; t < 8; t++) {
                double g[3], lr = nb_optim_lr(opt);
                quad_grad(r.w, g);
                set_grad(w, g);
                tc_near(lr, 0.05 * pow(0.5, t / 3), 1e-17);
                assert_int_equal(nb_optim_step(opt, m), NB_OK);
                ref_step(&r, &o, g, lr);
                for (int i = 0; i < 3; i++)
                    if (fabs(nb_tensor_get(w, i) - r.w[i]) > 1e-14)
                        fail_msg("kind %d wd %d step %d w[%d]: %.17g, formula %.17g", kind, wd, t,
                                 i, nb_tensor_get(w, i), r.w[i]);
            }
            nb_optim_free(opt);
            nb_model_free(m);
        }
    }
}

/* RMSprop and Adagrad with every option they take, against the reference
 * in f64 over ten steps of a changing gradient, with a step schedule and
 * clipping: each weight within 1e-15 of the reference, relatively. */
static void test_rmsprop_adagrad_reference(void **state)
{
    (void)state;
    const struct {
        nb_optim_kind kind;
        double momentum, alpha, lr_decay, init, wd, clip;
        bool centered;
    } cases[] = {
        {NB_OPTIM_RMSPROP, 0, 0.99, 0, 0, 0, 0, false},
        {NB_OPTIM_RMSPROP, 0.9, 0.9, 0, 0, 0.1, 0, false},
        {NB_OPTIM_RMSPROP, 0, 0.95, 0, 0, 0, 1.5, true},
        {NB_OPTIM_RMSPROP, 0.5, 0.8, 0, 0, 0.2, 0.5, true},
        {NB_OPTIM_ADAGRAD, 0, 0.99, 0, 0, 0, 0, false},
        {NB_OPTIM_ADAGRAD, 0, 0.99, 0.3, 0.1, 0.2, 0, false},
        {NB_OPTIM_ADAGRAD, 0, 0.99, 0.05, 2, 0, 0.5, false},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_optim_opts o = nb_optim_defaults(cases[k].kind);
        o.lr = 0.05;
        o.momentum = cases[k].momentum;
        o.alpha = cases[k].alpha;
        o.centered = cases[k].centered;
        o.lr_decay = cases[k].lr_decay;
        o.initial_accumulator_value = cases[k].init;
        o.weight_decay = cases[k].wd;
        o.clip_norm = cases[k].clip;
        o.schedule.kind = NB_SCHED_STEP;
        o.schedule.step_size = 3;
        o.schedule.gamma = 0.5;
        nb_model *m = nb_model_new();
        ref r = {.w = {2, 0.25, -1}};
        nb_tensor *w = add_param(m, "w", NB_F64, 3, r.w);
        nb_optim *opt = nb_optim_new(&o);
        assert_non_null(opt);
        for (int t = 0; t < 10; t++) {
            double g[3], lr = nb_optim_lr(opt);
            quad_grad(r.w, g);
            set_grad(w, g);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
            double norm = sqrt(g[0] * g[0] + g[1] * g[1] + g[2] * g[2]);
            double c = o.clip_norm > 0 && norm > o.clip_norm ? o.clip_norm / norm : 1;
            for (int i = 0; i < 3; i++)
                g[i] *= c;
            ref_step(&r, &o, g, lr);
            for (int i = 0; i < 3; i++) {
                double got = nb_tensor_get(w, i), rel = fabs(got - r.w[i]) / fabs(r.w[i]);
                if (!(rel <= 1e-15))
                    fail_msg("case %zu step %d w[%d]: %.17g, reference %.17g", k, t, i, got,
                             r.w[i]);
            }
        }
        nb_optim_free(opt);
        nb_model_free(m);
    }
}

/* By hand, with a constant gradient g = 2 from w = 1 (lr 0.01, eps 1e-8):
 * RMSprop's s after t steps is 4·(1 - α^t), so the first step is
 * lr·2/(2·sqrt(1 - α) + eps) = 0.1 (α = 0.99); centered, the variance is
 * 4·(1 - α^t)·α^t. Adagrad's sum after t steps is s0 + 4t, each step
 * lr/(1 + (t-1)·lr_decay) · 2/(sqrt(s0 + 4t) + eps). */
static void test_rmsprop_adagrad_by_hand(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F64, 1, (double[]){1});
    set_grad(w, (double[]){2});
    for (int variant = 0; variant < 3; variant++) { /* plain, momentum 0.9, centered */
        nb_optim_opts o = nb_optim_defaults(NB_OPTIM_RMSPROP);
        assert_true(o.lr == 0.01 && o.alpha == 0.99 && o.eps == 1e-8 && o.momentum == 0 &&
                    !o.centered && o.weight_decay == 0);
        o.momentum = variant == 1 ? 0.9 : 0;
        o.centered = variant == 2;
        nb_optim *opt = nb_optim_new(&o);
        nb_tensor_set(w, 0, 1);
        double want = 1, buf = 0;
        for (int t = 1; t <= 4; t++) {
            double at = pow(0.99, t);
            double var = variant == 2 ? 4 * (1 - at) * at : 4 * (1 - at);
            double step = 2 / (sqrt(var) + 1e-8);
            buf = 0.9 * buf + step;
            want -= 0.01 * (variant == 1 ? buf : step);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
            tc_near(nb_tensor_get(w, 0), want, 1e-15);
            if (t == 1)
                tc_near(nb_tensor_get(w, 0), variant == 2 ? 1 - 0.02 / sqrt(0.0396) : 0.9, 1e-8);
        }
        nb_optim_free(opt);
    }
    for (int variant = 0; variant < 3; variant++) { /* plain, lr_decay 0.5, sum from 1 */
        nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAGRAD);
        assert_true(o.lr == 0.01 && o.eps == 1e-10 && o.lr_decay == 0 &&
                    o.initial_accumulator_value == 0);
        o.lr = 0.1;
        o.lr_decay = variant == 1 ? 0.5 : 0;
        o.initial_accumulator_value = variant == 2 ? 1 : 0;
        nb_optim *opt = nb_optim_new(&o);
        nb_tensor_set(w, 0, 1);
        double want = 1;
        for (int t = 1; t <= 4; t++) {
            double s0 = o.initial_accumulator_value;
            want -= 0.1 / (1 + (t - 1) * o.lr_decay) * 2 / (sqrt(s0 + 4 * t) + 1e-10);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
            tc_near(nb_tensor_get(w, 0), want, 1e-15);
        }
        if (variant == 0) /* lr·Σ 1/sqrt(t) */
            tc_near(nb_tensor_get(w, 0), 1 - 0.1 * (1 + 1 / sqrt(2) + 1 / sqrt(3) + 0.5), 1e-10);
        nb_optim_free(opt);
    }
    nb_model_free(m);
}

/* Centered RMSprop divides by sqrt(s - ḡ²), which is positive in exact
 * arithmetic but, with a constant gradient, rounds below zero once α^t is
 * below the rounding error (α 0.5, g 0.7: from step 54 on). It is taken as
 * 0 there (the step is lr·g/eps), where the square root would make the
 * weight NaN. */
static void test_rmsprop_centered_rounding(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F64, 1, (double[]){1});
    set_grad(w, (double[]){0.7});
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_RMSPROP);
    o.alpha = 0.5;
    o.centered = true;
    o.lr = 1e-9;
    nb_optim *opt = nb_optim_new(&o);
    double s = 0, a = 0;
    int below = 0;
    for (int t = 1; t <= 60; t++) {
        s = 0.5 * s + 0.5 * 0.7 * 0.7; /* as the step computes them */
        a = 0.5 * a + 0.5 * 0.7;
        double before = nb_tensor_get(w, 0);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        assert_true(isfinite(nb_tensor_get(w, 0)));
        if (s - a * a < 0) {
            below++;
            tc_near(before - nb_tensor_get(w, 0), 1e-9 * (0.7 / 1e-8), 1e-15);
        }
    }
    assert_true(below > 0);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* f32 parameters are updated in f32: SGD matches float arithmetic bit for
 * bit, Adam stays within f32 rounding of the f64 formula. */
static void test_f32_updates(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = add_param(m, "w", NB_F32, 3, (double[]){2, 0, -1});
    nb_optim *opt = make(NB_OPTIM_SGD, 0.1);
    float wf[3] = {2, 0, -1};
    for (int t = 0; t < 5; t++) {
        double g[3], wd[3] = {wf[0], wf[1], wf[2]};
        quad_grad(wd, g);
        float gf[3] = {(float)g[0], (float)g[1], (float)g[2]};
        set_grad(w, (double[]){gf[0], gf[1], gf[2]});
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        for (int i = 0; i < 3; i++) {
            wf[i] -= 0.1f * (1.0f * gf[i] + 0.0f * wf[i]);
            assert_true(nb_tensor_f32(w)[i] == wf[i]);
        }
    }
    nb_optim_free(opt);

    /* Adam, RMSprop (centered, with momentum) and Adagrad (from a sum of 0.1) */
    for (int k = 0; k < 3; k++) {
        nb_optim_kind kinds[3] = {NB_OPTIM_ADAM, NB_OPTIM_RMSPROP, NB_OPTIM_ADAGRAD};
        nb_optim_opts o = nb_optim_defaults(kinds[k]);
        o.lr = 0.05;
        o.momentum = kinds[k] == NB_OPTIM_RMSPROP ? 0.5 : 0;
        o.centered = true;
        o.initial_accumulator_value = 0.1;
        opt = nb_optim_new(&o);
        ref r = {.w = {2, 0, -1}};
        for (int i = 0; i < 3; i++)
            nb_tensor_set(w, i, r.w[i]);
        for (int t = 0; t < 10; t++) {
            double g[3];
            quad_grad(r.w, g);
            set_grad(w, g);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
            ref_step(&r, &o, g, 0.05);
            for (int i = 0; i < 3; i++)
                tc_near(nb_tensor_get(w, i), r.w[i], 1e-5);
        }
        nb_optim_free(opt);
    }
    nb_model_free(m);
}

/* ------------------------------------------- minimising a quadratic graph */

/* f(w) = 0.5·Σ a (w - c)², built with ops; every optimizer reaches c. */
static void test_minimise_quadratic(void **state)
{
    (void)state;
    const double a[4] = {1, 4, 0.25, 2}, c[4] = {1, -2, 3, 0.5};
    for (int kind = NB_OPTIM_SGD; kind <= NB_OPTIM_ADAGRAD; kind++) {
        nb_optim_opts o = nb_optim_defaults((nb_optim_kind)kind);
        o.lr = kind == NB_OPTIM_ADAGRAD   ? 1
               : kind == NB_OPTIM_RMSPROP ? 0.01
               : kind >= NB_OPTIM_ADAM    ? 0.05
                                          : 0.1;
        o.weight_decay = 0;
        nb_optim *opt = nb_optim_new(&o);
        nb_model *m = nb_model_new();
        nb_tensor *w = NULL;
        assert_int_equal(nb_model_add(m, "w", NB_F64, 1, (int64_t[]){4}, &w), NB_OK);
        nb_graph *g = nb_graph_new();
        double first = 0, last = 0;
        for (int t = 0; t < 1500; t++) {
            nb_tensor *A = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, a);
            nb_tensor *C = nb_tensor_from(g, NB_F64, 1, (int64_t[]){4}, c);
            nb_tensor *f = nb_scale(
                g, nb_sum(g, nb_mul(g, A, nb_square(g, nb_sub(g, w, C))), NULL, 0, false), 0.5);
            assert_non_null(f);
            if (t == 0)
                first = nb_tensor_item(f);
            last = nb_tensor_item(f);
            nb_model_zero_grad(m);
            assert_int_equal(nb_backward(g, f), NB_OK);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
            nb_graph_reset(g);
        }
        assert_true(last < 1e-3 * first);
        for (int i = 0; i < 4; i++)
            if (fabs(nb_tensor_get(w, i) - c[i]) > 1e-3)
                fail_msg("kind %d: w[%d] = %g, minimum at %g", kind, i, nb_tensor_get(w, i), c[i]);
        nb_graph_free(g);
        nb_model_free(m);
        nb_optim_free(opt);
    }
}

/* ----------------------------------------- weight decay versus L2 penalty */

static const double XS[15] = {0.5, -1, 2, 1, 0.3, -0.7, -1.2, 0.8, 0.1, 0.4, 0.4, -2, 1.5, 0, 1};
static const double YS[10] = {1, 0, -1, 2, 0.5, 0.5, 2, -1, 0, 1};

/* loss = mean((X W - Y)²) [+ 0.5·lambda·Σ W²], gradients into the model. */
static void loss_backward(nb_graph *g, nb_tensor *W, double lambda)
{
    nb_tensor *X = nb_tensor_from(g, NB_F64, 2, (int64_t[]){5, 3}, XS);
    nb_tensor *Y = nb_tensor_from(g, NB_F64, 2, (int64_t[]){5, 2}, YS);
    nb_tensor *r = nb_sub(g, nb_matmul(g, X, W, false, false), Y);
    nb_tensor *loss = nb_mean(g, nb_mul(g, r, r), NULL, 0, false);
    if (lambda > 0)
        loss =
            nb_add(g, loss, nb_scale(g, nb_sum(g, nb_mul(g, W, W), NULL, 0, false), 0.5 * lambda));
    assert_non_null(loss);
    assert_int_equal(nb_backward(g, loss), NB_OK);
}

/* Run `steps` steps of @p kind on W (3x2) with decay wd in the optimizer
 * and an L2 penalty lambda in the loss; the trajectory goes to traj. */
static void trajectory(nb_optim_kind kind, double wd, double lambda, int steps, double *traj)
{
    nb_optim_opts o = nb_optim_defaults(kind);
    o.lr = 0.05;
    o.weight_decay = wd;
    nb_optim *opt = nb_optim_new(&o);
    nb_model *m = nb_model_new();
    nb_tensor *W = NULL;
    assert_int_equal(nb_model_add(m, "W", NB_F64, 2, (int64_t[]){3, 2}, &W), NB_OK);
    for (int i = 0; i < 6; i++)
        nb_tensor_set(W, i, 0.3 * i - 0.8);
    nb_graph *g = nb_graph_new();
    for (int t = 0; t < steps; t++) {
        nb_model_zero_grad(m);
        loss_backward(g, W, lambda);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        nb_graph_reset(g);
        memcpy(traj + 6 * t, nb_tensor_f64(W), 6 * sizeof(double));
    }
    nb_graph_free(g);
    nb_model_free(m);
    nb_optim_free(opt);
}

/* The course notes' claim: under plain SGD, weight decay w and an L2
 * penalty lambda = w give the same trajectory; under Adam they do not:
 * Adam divides the penalty's gradient by sqrt(v̂) like the rest, while
 * weight decay proper (AdamW) shrinks w by lr·w·W outside that scaling. */
static void test_weight_decay_vs_l2(void **state)
{
    (void)state;
    enum { STEPS = 40 };
    const double lam = 0.3;
    double a[6 * STEPS], b[6 * STEPS];
    trajectory(NB_OPTIM_SGD, lam, 0, STEPS, a);
    trajectory(NB_OPTIM_SGD, 0, lam, STEPS, b);
    double sgd_gap = 0;
    for (int i = 0; i < 6 * STEPS; i++)
        sgd_gap = fmax(sgd_gap, fabs(a[i] - b[i]));
    assert_true(sgd_gap <= 1e-14);

    trajectory(NB_OPTIM_ADAM, lam, 0, STEPS, a);
    trajectory(NB_OPTIM_ADAM, 0, lam, STEPS, b);
    double adam_same = 0;
    for (int i = 0; i < 6 * STEPS; i++)
        adam_same = fmax(adam_same, fabs(a[i] - b[i]));
    /* Adam's weight_decay option is coupled: it is the L2 penalty... */
    assert_true(adam_same <= 1e-13);
    /* ...while true weight decay under Adam (AdamW, decoupled) is not */
    trajectory(NB_OPTIM_ADAMW, lam, 0, STEPS, a);
    double adamw_gap = 0;
    for (int i = 0; i < 6 * STEPS; i++)
        adamw_gap = fmax(adamw_gap, fabs(a[i] - b[i]));
    assert_true(adamw_gap > 1e-3);

    /* RMSprop's and Adagrad's weight_decay are coupled too, as PyTorch's */
    for (int k = NB_OPTIM_RMSPROP; k <= NB_OPTIM_ADAGRAD; k++) {
        trajectory((nb_optim_kind)k, lam, 0, STEPS, a);
        trajectory((nb_optim_kind)k, 0, lam, STEPS, b);
        double gap = 0, moved = 0;
        for (int i = 0; i < 6 * STEPS; i++) {
            gap = fmax(gap, fabs(a[i] - b[i]));
            moved = fmax(moved, fabs(a[i] - (0.3 * (i % 6) - 0.8)));
        }
        assert_true(gap <= 1e-13);
        assert_true(moved > 0.1);
    }
}

/* AdamW on a real loss, step by step against its update formula, with the
 * gradient read from the model before each step. */
static void test_adamw_formula_on_loss(void **state)
{
    (void)state;
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAMW);
    o.lr = 0.02;
    o.weight_decay = 0.5;
    nb_optim *opt = nb_optim_new(&o);
    nb_model *m = nb_model_new();
    nb_tensor *W = NULL;
    assert_int_equal(nb_model_add(m, "W", NB_F64, 2, (int64_t[]){3, 2}, &W), NB_OK);
    double w[6], mm[6] = {0}, vv[6] = {0};
    for (int i = 0; i < 6; i++) {
        w[i] = 0.3 * i - 0.8;
        nb_tensor_set(W, i, w[i]);
    }
    nb_graph *g = nb_graph_new();
    for (int t = 1; t <= 15; t++) {
        nb_model_zero_grad(m);
        loss_backward(g, W, 0);
        const double *gr = nb_tensor_f64(nb_tensor_grad(W));
        for (int i = 0; i < 6; i++) {
            w[i] -= o.lr * o.weight_decay * w[i];
            mm[i] = o.beta1 * mm[i] + (1 - o.beta1) * gr[i];
            vv[i] = o.beta2 * vv[i] + (1 - o.beta2) * gr[i] * gr[i];
            double mh = mm[i] / (1 - pow(o.beta1, t)), vh = vv[i] / (1 - pow(o.beta2, t));
            w[i] -= o.lr * mh / (sqrt(vh) + o.eps);
        }
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        for (int i = 0; i < 6; i++)
            tc_near(nb_tensor_get(W, i), w[i], 1e-14);
        nb_graph_reset(g);
    }
    nb_graph_free(g);
    nb_model_free(m);
    nb_optim_free(opt);
}

/* -------------------------------------------------------------- clipping */

static void test_clip_grad_norm(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *a = add_param(m, "a", NB_F64, 2, NULL);
    nb_tensor *b = add_param(m, "b", NB_F32, 3, NULL);
    set_grad(a, (double[]){3, 0});
    set_grad(b, (double[]){0, 4, 12}); /* global norm 13 */
    tc_near(nb_grad_norm(m), 13, 1e-12);
    double norm = 0;
    assert_int_equal(nb_clip_grad_norm(m, 2.5, &norm), NB_OK);
    tc_near(norm, 13, 1e-12);
    tc_near(nb_grad_norm(m), 2.5, 1e-6); /* b is f32 */
    tc_near(nb_tensor_get(nb_tensor_grad(a), 0), 3 * 2.5 / 13, 1e-15);
    tc_near(nb_tensor_get(nb_tensor_grad(b), 2), 12 * 2.5 / 13, 1e-6);
    /* below the bound: unchanged */
    assert_int_equal(nb_clip_grad_norm(m, 100, &norm), NB_OK);
    tc_near(norm, 2.5, 1e-6);
    tc_near(nb_tensor_get(nb_tensor_grad(a), 0), 3 * 2.5 / 13, 1e-15);
    /* f64 only: the norm after clipping is the bound to rounding */
    nb_model *m2 = nb_model_new();
    nb_tensor *c = add_param(m2, "c", NB_F64, 3, NULL);
    set_grad(c, (double[]){1e3, -2e3, 7});
    assert_int_equal(nb_clip_grad_norm(m2, 0.75, NULL), NB_OK);
    tc_near(nb_grad_norm(m2), 0.75, 1e-15);
    /* bad input */
    assert_int_equal(nb_clip_grad_norm(NULL, 1, NULL), NB_ERR_NULL);
    assert_int_equal(nb_clip_grad_norm(m2, 0, NULL), NB_ERR_ARG);
    assert_int_equal(nb_clip_grad_norm(m2, NAN, NULL), NB_ERR_ARG);
    double before = nb_tensor_get(nb_tensor_grad(c), 2);
    nb_tensor_set(nb_tensor_grad(c), 1, INFINITY);
    assert_int_equal(nb_clip_grad_norm(m2, 1, &norm), NB_ERR_NONFINITE);
    assert_true(isinf(norm));
    tc_near(nb_tensor_get(nb_tensor_grad(c), 2), before, 0);
    nb_model_free(m2);
    nb_model_free(m);
}

/* The global norm against a plain running sum, for every length of the
 * vector loop's tail (1..19 elements) and a long random vector, f32 and
 * f64; the order of the partial sums is fixed, so repeated calls give the
 * same bits. */
static void test_grad_norm_sums(void **state)
{
    (void)state;
    nb_rng r;
    nb_rng_seed(&r, 4);
    for (int dt = 0; dt < 2; dt++)
        for (int n = 1; n <= 20; n++) {
            int len = n == 20 ? 100003 : n;
            nb_model *m = nb_model_new();
            nb_tensor *p = NULL;
            assert_int_equal(nb_model_add(m, "p", dt ? NB_F64 : NB_F32, 1, (int64_t[]){len}, &p),
                             NB_OK);
            double plain = 0;
            for (int64_t i = 0; i < len; i++) {
                nb_tensor_set(nb_tensor_grad(p), i, nb_rng_normal(&r) * (double)(1 + i % 7));
                double v = nb_tensor_get(nb_tensor_grad(p), i);
                plain += v * v;
            }
            double norm = nb_grad_norm(m);
            tc_near(norm, sqrt(plain), 1e-13 * sqrt(plain));
            assert_true(nb_grad_norm(m) == norm);
            nb_model_free(m);
        }
}

/* With clip_norm set, the step moves by lr · g · (bound/‖g‖), leaves the
 * gradient buffers as they were, and refuses a non-finite norm. */
static void test_optim_clips(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *a = add_param(m, "a", NB_F64, 2, NULL);
    set_grad(a, (double[]){3, 4});
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_SGD);
    o.lr = 1;
    o.clip_norm = 1;
    nb_optim *opt = nb_optim_new(&o);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    tc_near(nb_tensor_get(a, 0), -0.6, 1e-15);
    tc_near(nb_tensor_get(a, 1), -0.8, 1e-15);
    tc_near(nb_optim_last_grad_norm(opt), 5, 1e-15);
    tc_near(nb_tensor_get(nb_tensor_grad(a), 0), 3, 0);
    /* a non-finite norm: refused, nothing moves */
    double a0 = nb_tensor_get(a, 0);
    set_grad(a, (double[]){NAN, 1});
    assert_int_equal(nb_optim_step(opt, m), NB_ERR_NONFINITE);
    assert_non_null(strstr(nb_optim_error(opt)->msg, "norm"));
    tc_near(nb_tensor_get(a, 0), a0, 0);
    assert_int_equal(nb_optim_steps(opt), 1);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* ------------------------------------------------------------- schedules */

static void test_schedules(void **state)
{
    (void)state;
    nb_schedule s = nb_optim_defaults(NB_OPTIM_SGD).schedule;
    tc_near(nb_schedule_lr(&s, 0.3, 0), 0.3, 0);
    tc_near(nb_schedule_lr(&s, 0.3, 1000), 0.3, 0);

    s.kind = NB_SCHED_STEP;
    s.step_size = 3;
    s.gamma = 0.5;
    const double want_step[8] = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25};
    for (int t = 0; t < 8; t++)
        tc_near(nb_schedule_lr(&s, 1, t), want_step[t], 1e-16);
    tc_near(nb_schedule_lr(&s, 1, -5), 1, 0);

    s.kind = NB_SCHED_COSINE;
    s.period = 4;
    s.min_lr = 0.1;
    tc_near(nb_schedule_lr(&s, 1, 0), 1, 1e-16);
    tc_near(nb_schedule_lr(&s, 1, 1), 0.1 + 0.9 * (1 + sqrt(0.5)) / 2, 1e-15);
    tc_near(nb_schedule_lr(&s, 1, 2), 0.55, 1e-15);
    tc_near(nb_schedule_lr(&s, 1, 3), 0.1 + 0.9 * (1 - sqrt(0.5)) / 2, 1e-15);
    tc_near(nb_schedule_lr(&s, 1, 4), 0.1, 1e-16);
    tc_near(nb_schedule_lr(&s, 1, 50), 0.1, 1e-16);
    assert_true(isnan(nb_schedule_lr(NULL, 1, 0)));
    s.period = 0;
    assert_true(isnan(nb_schedule_lr(&s, 1, 0)));

    /* the optimizer follows it: per step, or per epoch */
    nb_model *m = nb_model_new();
    nb_tensor *a = add_param(m, "a", NB_F64, 1, NULL);
    set_grad(a, (double[]){1});
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_SGD);
    o.lr = 1;
    o.schedule.kind = NB_SCHED_COSINE;
    o.schedule.period = 4;
    o.schedule.min_lr = 0.1;
    nb_optim *opt = nb_optim_new(&o);
    double moved = 0;
    for (int t = 0; t < 6; t++) {
        tc_near(nb_optim_lr(opt), nb_schedule_lr(&o.schedule, 1, t), 0);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        moved += nb_schedule_lr(&o.schedule, 1, t);
        tc_near(nb_tensor_get(a, 0), -moved, 1e-15);
    }
    assert_int_equal(nb_optim_sched_pos(opt), 6);
    nb_optim_free(opt);

    o.schedule.per_epoch = true;
    opt = nb_optim_new(&o);
    for (int epoch = 0; epoch < 3; epoch++) {
        for (int t = 0; t < 2; t++) {
            tc_near(nb_optim_lr(opt), nb_schedule_lr(&o.schedule, 1, epoch), 0);
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
        }
        assert_int_equal(nb_optim_next_epoch(opt), NB_OK);
    }
    assert_int_equal(nb_optim_sched_pos(opt), 3);
    assert_int_equal(nb_optim_steps(opt), 6);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* ------------------------------------------------------ state per name */

/* A parameter added after some steps gets fresh state (Adam's first step
 * moves it by lr·sign(g)); state is kept per name. */
static void test_lazy_state(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *a = add_param(m, "a", NB_F64, 1, NULL);
    nb_optim *opt = make(NB_OPTIM_ADAM, 0.1);
    for (int t = 0; t < 3; t++) {
        set_grad(a, (double[]){1.0 + t});
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
    }
    assert_int_equal(nb_optim_state_count(opt), 1);
    nb_tensor *b = add_param(m, "b", NB_F64, 2, (double[]){1, 1});
    set_grad(b, (double[]){-3, 5});
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    assert_int_equal(nb_optim_state_count(opt), 2);
    tc_near(nb_tensor_get(b, 0), 1 + 0.1 * 3 / (3 + 1e-8), 1e-14);
    tc_near(nb_tensor_get(b, 1), 1 - 0.1 * 5 / (5 + 1e-8), 1e-14);

    /* the same name with another shape in another model is refused and
     * nothing changes */
    nb_model *m2 = nb_model_new();
    nb_tensor *a2 = add_param(m2, "a", NB_F64, 3, (double[]){7, 8, 9});
    set_grad(a2, (double[]){1, 1, 1});
    assert_int_equal(nb_optim_step(opt, m2), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_optim_error(opt)->msg, "'a'"));
    assert_non_null(strstr(nb_optim_error(opt)->msg, "[3]"));
    tc_near(nb_tensor_get(a2, 0), 7, 0);
    assert_int_equal(nb_optim_steps(opt), 4);
    nb_model_free(m2);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* ---------------------------------------------------------- bad input */

/* A parameter marked non-trainable gets no gradient and is never moved,
 * weight decay included; the trainable one next to it is. */
static void test_non_trainable(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_tensor *w = NULL, *stat = NULL;
    int64_t s3[] = {3};
    assert_int_equal(nb_model_add(m, "w", NB_F64, 1, s3, &w), NB_OK);
    assert_int_equal(nb_model_add(m, "stat", NB_F64, 1, s3, &stat), NB_OK);
    for (int i = 0; i < 3; i++) {
        nb_tensor_set(w, i, 1.0 + i);
        nb_tensor_set(stat, i, 5.0);
    }
    nb_tensor_set_requires_grad(stat, false);
    assert_false(nb_tensor_requires_grad(stat));
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAMW);
    o.weight_decay = 0.1;
    nb_optim *opt = nb_optim_new(&o);
    nb_graph *g = nb_graph_new();
    for (int step = 0; step < 3; step++) {
        nb_model_zero_grad(m);
        nb_tensor *loss = nb_sum(g, nb_mul(g, w, stat), NULL, 0, false);
        assert_int_equal(nb_backward(g, loss), NB_OK);
        nb_tensor *gs = nb_tensor_grad(stat); /* the model may keep a zero buffer */
        for (int i = 0; gs && i < 3; i++)
            assert_true(nb_tensor_get(gs, i) == 0.0);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        nb_graph_reset(g);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(nb_tensor_get(stat, i) == 5.0);
        assert_true(nb_tensor_get(w, i) < 1.0 + i);
    }
    nb_graph_free(g);
    nb_optim_free(opt);
    nb_model_free(m);
}

static void test_bad_options(void **state)
{
    (void)state;
    char msg[200];
    /* each field spoiled in turn names itself in the message */
    for (int k = 0; k < 21; k++) {
        nb_optim_opts o = nb_optim_defaults(k < 14 ? NB_OPTIM_ADAM : NB_OPTIM_RMSPROP);
        const char *field = NULL;
        switch (k) {
        case 0: o.lr = -0.1, field = "lr"; break;
        case 1: o.lr = NAN, field = "lr"; break;
        case 2: o.momentum = 1, field = "momentum"; break;
        case 3: o.beta1 = -0.1, field = "beta1"; break;
        case 4: o.beta2 = 1, field = "beta2"; break;
        case 5: o.eps = 0, field = "eps"; break;
        case 6: o.weight_decay = -1, field = "weight_decay"; break;
        case 7: o.clip_norm = -1, field = "clip_norm"; break;
        case 8: o.kind = (nb_optim_kind)9, field = "kind"; break;
        case 9: o.schedule.kind = (nb_sched_kind)7, field = "schedule.kind"; break;
        case 10:
            o.schedule.kind = NB_SCHED_STEP, o.schedule.step_size = 0, field = "step_size";
            break;
        case 11: o.schedule.kind = NB_SCHED_STEP, o.schedule.gamma = 0, field = "gamma"; break;
        case 12: o.schedule.kind = NB_SCHED_COSINE, o.schedule.period = 0, field = "period"; break;
        case 13: o.schedule.kind = NB_SCHED_COSINE, o.schedule.min_lr = 1, field = "min_lr"; break;
        case 14: o.alpha = 1, field = "alpha = 1"; break;
        case 15: o.alpha = -0.5, field = "alpha = -0.5"; break;
        case 16: o.alpha = NAN, field = "alpha"; break;
        case 17: o.lr_decay = -1, field = "lr_decay = -1"; break;
        case 18: o.lr_decay = INFINITY, field = "lr_decay"; break;
        case 19: o.initial_accumulator_value = -0.1, field = "initial_accumulator_value"; break;
        case 20: o.kind = (nb_optim_kind)7, field = "6 adagrad"; break;
        }
        assert_int_equal(nb_optim_opts_check(&o, msg, sizeof msg), NB_ERR_ARG);
        if (!strstr(msg, field))
            fail_msg("case %d: message \"%s\" does not name %s", k, msg, field);
        assert_null(nb_optim_new(&o));
    }
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_NESTEROV);
    assert_int_equal(nb_optim_opts_check(&o, msg, sizeof msg), NB_OK);
    assert_string_equal(msg, "");
    assert_int_equal(nb_optim_opts_check(NULL, msg, sizeof msg), NB_ERR_NULL);
    assert_int_equal(nb_optim_opts_check(&o, NULL, 0), NB_OK);
    assert_null(nb_optim_new(NULL));
    assert_null(nb_optim_new_alloc(&o, NULL, NULL));
}

static void test_null_handles(void **state)
{
    (void)state;
    nb_optim_free(NULL);
    assert_int_equal(nb_optim_step(NULL, NULL), NB_ERR_NULL);
    nb_optim *opt = make(NB_OPTIM_SGD, 0.1);
    assert_int_equal(nb_optim_step(opt, NULL), NB_ERR_NULL);
    assert_non_null(strstr(nb_optim_error(opt)->msg, "model"));
    assert_int_equal(nb_optim_error(opt)->status, NB_ERR_NULL);
    assert_string_equal(nb_optim_error(opt)->where, "optim_step");
    assert_true(nb_optim_error(opt)->offset == -1);
    assert_string_equal(nb_optim_error(NULL)->msg, "no optimizer");
    assert_int_equal(nb_optim_error(NULL)->status, NB_ERR_NULL);
    assert_null(nb_optim_options(NULL));
    assert_int_equal(nb_optim_steps(NULL), 0);
    assert_int_equal(nb_optim_sched_pos(NULL), 0);
    assert_int_equal(nb_optim_next_epoch(NULL), NB_ERR_NULL);
    assert_true(isnan(nb_optim_lr(NULL)));
    assert_int_equal(nb_optim_state_count(NULL), 0);
    tc_near(nb_grad_norm(NULL), 0, 0);
    /* an empty model is a valid no-op */
    nb_model *m = nb_model_new();
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    assert_int_equal(nb_optim_options(opt)->kind, NB_OPTIM_SGD);
    nb_model_free(m);
    nb_optim_free(opt);
}

/* -------------------------------------------------------- allocation */

static void fill_model(nb_model *m)
{
    static const char *names[4] = {"l1.w", "l1.b", "l2.w", "l2.b"};
    for (int k = 0; k < 4; k++) {
        nb_tensor *p = NULL;
        assert_int_equal(
            nb_model_add(m, names[k], k < 2 ? NB_F32 : NB_F64, 2, (int64_t[]){k + 1, 3}, &p),
            NB_OK);
        for (int64_t i = 0; i < nb_tensor_size(p); i++) {
            nb_tensor_set(p, i, 0.1 * (double)(i + k));
            nb_tensor_set(nb_tensor_grad(p), i, sin((double)(i * 7 + k)));
        }
    }
}

/* Step counts and the schedule position near INT64_MAX (as a checkpoint
 * may hold them): refused with NB_ERR_ARG before anything changes, never
 * an overflow. */
static void test_counts_at_limit(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    assert_non_null(m);
    fill_model(m);
    nb_optim *opt = make(NB_OPTIM_ADAM, 0.1);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    double before = nb_tensor_get(nb_model_get(m, "l1.w"), 0);

    opt->step = INT64_MAX;
    assert_int_equal(nb_optim_step(opt, m), NB_ERR_ARG);
    assert_non_null(strstr(nb_optim_error(opt)->msg, "at its limit"));
    assert_true(nb_optim_steps(opt) == INT64_MAX);
    opt->step = 1;

    opt->states->step = INT64_MAX; /* one parameter's own count */
    assert_int_equal(nb_optim_step(opt, m), NB_ERR_ARG);
    assert_non_null(strstr(nb_optim_error(opt)->msg, opt->states->key));
    opt->states->step = 1;

    opt->sched_pos = INT64_MAX; /* a per-step schedule advances it each step */
    assert_int_equal(nb_optim_step(opt, m), NB_ERR_ARG);
    assert_int_equal(nb_optim_next_epoch(opt), NB_ERR_ARG);
    assert_non_null(strstr(nb_optim_error(opt)->msg, "schedule position"));
    assert_string_equal(nb_optim_error(opt)->where, "next_epoch");
    assert_true(nb_optim_sched_pos(opt) == INT64_MAX);
    assert_true(nb_tensor_get(nb_model_get(m, "l1.w"), 0) == before);

    opt->sched_pos = INT64_MAX - 1;
    assert_int_equal(nb_optim_next_epoch(opt), NB_OK);
    opt->sched_pos = 1;
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    assert_true(nb_optim_steps(opt) == 2);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* After the first step no step allocates; failing each allocation of the
 * first step in turn gives NB_ERR_NOMEM with every parameter unchanged,
 * and the next step then gives what an untroubled run gives. */
static void test_alloc_failure_every_allocation(void **state)
{
    (void)state;
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAM);
    o.clip_norm = 1;
    tc_counting probe = {0};
    nb_model *ref_m = nb_model_new();
    fill_model(ref_m);
    nb_optim *ref_opt = nb_optim_new_alloc(&o, tc_counting_alloc, &probe);
    long before = probe.calls;
    assert_int_equal(nb_optim_step(ref_opt, ref_m), NB_OK);
    long n_allocs = probe.calls - before;
    assert_true(n_allocs >= 4 * 2); /* key and block per parameter, and the table */
    for (int t = 0; t < 5; t++)
        assert_int_equal(nb_optim_step(ref_opt, ref_m), NB_OK);
    assert_int_equal(probe.calls - before, n_allocs); /* no allocation after the first step */

    for (long k = 1; k <= n_allocs; k++) {
        tc_counting c = {0};
        nb_model *m = nb_model_new();
        fill_model(m);
        nb_model *orig = nb_model_new();
        fill_model(orig);
        nb_optim *opt = nb_optim_new_alloc(&o, tc_counting_alloc, &c);
        assert_non_null(opt);
        c.fail_at = c.calls + k;
        assert_int_equal(nb_optim_step(opt, m), NB_ERR_NOMEM);
        assert_non_null(strstr(nb_optim_error(opt)->msg, "out of memory"));
        for (nb_tensor *p = nb_model_next(m, NULL), *q = nb_model_next(orig, NULL); p;
             p = nb_model_next(m, p), q = nb_model_next(orig, q))
            assert_memory_equal(nb_tensor_data(p), nb_tensor_data(q),
                                (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
        assert_int_equal(nb_optim_steps(opt), 0);
        /* recovery: six steps equal the reference's six */
        for (int t = 0; t < 6; t++)
            assert_int_equal(nb_optim_step(opt, m), NB_OK);
        for (nb_tensor *p = nb_model_next(m, NULL), *q = nb_model_next(ref_m, NULL); p;
             p = nb_model_next(m, p), q = nb_model_next(ref_m, q))
            assert_memory_equal(nb_tensor_data(p), nb_tensor_data(q),
                                (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
        nb_optim_free(opt);
        assert_int_equal(c.live, 0);
        nb_model_free(m);
        nb_model_free(orig);
    }
    /* creation itself fails cleanly */
    tc_counting c = {.fail_at = 1};
    assert_null(nb_optim_new_alloc(&o, tc_counting_alloc, &c));
    nb_optim_free(ref_opt);
    assert_int_equal(probe.live, 0);
    nb_model_free(ref_m);
}

/* ------------------------------------------------ state as named tensors */

/* A model of two parameters (f32 [2,3], f64 [3]) with gradients from seed. */
static nb_model *state_model(uint64_t seed)
{
    nb_model *m = nb_model_new();
    nb_tensor *w = NULL, *b = NULL;
    assert_int_equal(nb_model_add(m, "layer.w", NB_F32, 2, (int64_t[]){2, 3}, &w), NB_OK);
    assert_int_equal(nb_model_add(m, "layer.b", NB_F64, 1, (int64_t[]){3}, &b), NB_OK);
    nb_rng r;
    nb_rng_seed(&r, seed);
    for (int64_t i = 0; i < 6; i++) {
        nb_tensor_set(w, i, nb_rng_normal(&r));
        nb_tensor_set(nb_tensor_grad(w), i, nb_rng_normal(&r));
    }
    for (int64_t i = 0; i < 3; i++) {
        nb_tensor_set(b, i, nb_rng_normal(&r));
        nb_tensor_set(nb_tensor_grad(b), i, nb_rng_normal(&r));
    }
    return m;
}

static bool same_params(nb_model *a, nb_model *b)
{
    for (nb_tensor *p = nb_model_next(a, NULL); p; p = nb_model_next(a, p)) {
        nb_tensor *q = nb_model_get(b, nb_tensor_name(p));
        if (!q || memcmp(nb_tensor_data(p), nb_tensor_data(q),
                         (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p))))
            return false;
    }
    return true;
}

/* The options of round-trip case @p k: each kind's defaults, then RMSprop
 * with momentum, centered, and both, and Adagrad with its options set. The
 * slots they keep into @p slots, NULL-terminated. */
static nb_optim_opts variant(int k, const char **slots)
{
    static const char *const names[][4] = {
        {NULL},
        {"velocity", NULL},
        {"velocity", NULL},
        {"m", "v", NULL},
        {"m", "v", NULL},
        {"square_avg", NULL},
        {"sum", NULL},
        {"square_avg", "momentum_buffer", NULL},
        {"square_avg", "grad_avg", NULL},
        {"square_avg", "momentum_buffer", "grad_avg", NULL},
        {"sum", NULL},
    };
    nb_optim_opts o = nb_optim_defaults(k <= NB_OPTIM_ADAGRAD ? (nb_optim_kind)k
                                        : k < 10              ? NB_OPTIM_RMSPROP
                                                              : NB_OPTIM_ADAGRAD);
    if (k == 7 || k == 9)
        o.momentum = k == 7 ? 0.9 : 0.3, o.alpha = 0.9;
    o.centered = k == 8 || k == 9;
    if (k == 10)
        o.lr_decay = 0.25, o.initial_accumulator_value = 0.5, o.eps = 1e-3;
    memcpy(slots, names[k], sizeof names[k]);
    return o;
}

/* The update shared out over threads: every kind and variant, f32 and f64
 * parameters whose sizes do not divide the threads' runs evenly, give the
 * same bits on 1, 2 and 3 threads over steps with changing gradients;
 * subnormal moments are flushed in every run (the moment below lies in
 * the second thread's run). */
static void test_threads_same_bits(void **state)
{
    (void)state;
    static const int64_t sizes[] = {40000, 17, 30001, 9000};
    for (int k = 0; k <= 10; k++) {
        const char *slots[4];
        nb_optim_opts o = variant(k, slots);
        nb_model *ms[3];
        nb_optim *opts[3];
        for (int r = 0; r < 3; r++) {
            ms[r] = nb_model_new();
            for (int i = 0; i < 4; i++) {
                char name[16];
                snprintf(name, sizeof name, "p%d", i);
                nb_tensor *p = NULL;
                assert_int_equal(nb_model_add(ms[r], name, i == 3 ? NB_F64 : NB_F32, 1,
                                              (int64_t[]){sizes[i]}, &p),
                                 NB_OK);
                nb_rng g;
                nb_rng_seed(&g, (uint64_t)i);
                for (int64_t j = 0; j < sizes[i]; j++)
                    nb_tensor_set(p, j, nb_rng_normal(&g));
            }
            opts[r] = nb_optim_new(&o);
            assert_non_null(opts[r]);
            nb_optim_set_threads(opts[r], r + 1);
            assert_int_equal(nb_optim_threads(opts[r]), r + 1);
        }
        for (int t = 0; t < 3; t++) {
            for (int r = 0; r < 3; r++) {
                nb_rng g;
                nb_rng_seed(&g, (uint64_t)(100 + t));
                for (nb_tensor *p = nb_model_next(ms[r], NULL); p; p = nb_model_next(ms[r], p))
                    for (int64_t j = 0; j < nb_tensor_size(p); j++)
                        nb_tensor_set(nb_tensor_grad(p), j, nb_rng_normal(&g));
                /* p2's element 100 (element 40117 of the step): its square is subnormal */
                nb_tensor_set(nb_tensor_grad(nb_model_get(ms[r], "p2")), 100, 1e-20);
                assert_int_equal(nb_optim_step(opts[r], ms[r]), NB_OK);
            }
            for (int r = 1; r < 3; r++)
                assert_true(same_params(ms[0], ms[r]));
        }
        if (k == NB_OPTIM_ADAM) {
            nb_model *store = nb_model_new();
            char meta[4096];
            assert_int_equal(nb_optim_state_save(opts[1], ms[1], store, meta, sizeof meta, NULL),
                             NB_OK);
            assert_true(nb_tensor_get(nb_model_get(store, "p2/v"), 100) == 0);
            nb_model_free(store);
        }
        for (int r = 0; r < 3; r++) {
            nb_optim_free(opts[r]);
            nb_model_free(ms[r]);
        }
    }
    assert_true(nbc_workers_started() >= 1);
    nb_optim_set_threads(NULL, 4); /* ignored */
    assert_int_equal(nb_optim_threads(NULL), 1);
    nb_optim *o = make(NB_OPTIM_SGD, 0.1);
    assert_int_equal(nb_optim_threads(o), 1);
    nb_optim_set_threads(o, 0);
    assert_int_equal(nb_optim_threads(o), 1);
    nb_optim_free(o);
}

/* Every kind, and RMSprop's and Adagrad's options: state saved after some
 * steps and loaded into a fresh optimizer continues bit-identically; the
 * options come back from the metadata, which has the new kinds' lines
 * only for them. */
static void test_state_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k <= 10; k++) {
        const char *slots[4];
        nb_optim_opts o = variant(k, slots);
        o.schedule.kind = NB_SCHED_STEP;
        o.schedule.step_size = 2;
        o.schedule.gamma = 0.5;
        nb_model *m = state_model(1), *m2 = state_model(1);
        nb_optim *a = nb_optim_new(&o);
        for (int i = 0; i < 3; i++)
            assert_int_equal(nb_optim_step(a, m), NB_OK);
        nb_model *store = nb_model_new();
        char meta[4096] = "";
        nb_error err;
        assert_int_equal(nb_optim_state_save(a, m, store, meta, sizeof meta, &err), NB_OK);
        int n_slots = 0;
        for (; slots[n_slots]; n_slots++) {
            char name[64];
            snprintf(name, sizeof name, "layer.w/%s", slots[n_slots]);
            assert_non_null(nb_model_get(store, name));
            assert_string_equal(nb_optim_opts_slot_name(&o, n_slots), slots[n_slots]);
        }
        assert_null(nb_optim_opts_slot_name(&o, n_slots));
        assert_int_equal(nb_model_count(store), 2 * (1 + n_slots));
        assert_int_equal(nb_meta_check(meta, NULL), NB_OK);
        assert_true(!strstr(meta, "optim.alpha=") == (o.kind != NB_OPTIM_RMSPROP));
        assert_true(!strstr(meta, "optim.centered=") == (o.kind != NB_OPTIM_RMSPROP));
        assert_true(!strstr(meta, "optim.lr_decay=") == (o.kind != NB_OPTIM_ADAGRAD));
        assert_true(!strstr(meta, "optim.initial_accumulator_value=") ==
                    (o.kind != NB_OPTIM_ADAGRAD));
        nb_tensor *t = nb_model_get(store, "layer.w/t");
        assert_non_null(t);
        assert_int_equal(nb_tensor_dtype(t), NB_F64);
        assert_int_equal(nb_tensor_rank(t), 0);
        assert_true(nb_tensor_item(t) == 3);
        assert_null(strstr(meta, "layer.w")); /* the text does not grow with the model */
        nb_optim_opts back;
        assert_int_equal(nb_optim_opts_from_meta(meta, &back, &err), NB_OK);
        assert_true(memcmp(&back, &o, sizeof o) == 0);

        nb_optim *b = nb_optim_new(&back);
        for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
            memcpy(nb_tensor_data(nb_model_get(m2, nb_tensor_name(p))), nb_tensor_data(p),
                   (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
        assert_int_equal(nb_optim_state_load(b, m2, store, meta, &err), NB_OK);
        assert_int_equal(nb_optim_steps(b), 3);
        assert_int_equal(nb_optim_sched_pos(b), 3);
        assert_true(nb_optim_lr(a) == nb_optim_lr(b));
        for (int i = 0; i < 2; i++) {
            assert_int_equal(nb_optim_step(a, m), NB_OK);
            assert_int_equal(nb_optim_step(b, m2), NB_OK);
        }
        assert_true(same_params(m, m2));
        nb_optim_free(a);
        nb_optim_free(b);
        nb_model_free(store);
        nb_model_free(m);
        nb_model_free(m2);
    }
    assert_string_equal(nb_optim_kind_name(NB_OPTIM_NESTEROV), "nesterov");
    assert_null(nb_optim_kind_name((nb_optim_kind)9));
    nb_optim_kind kind;
    assert_int_equal(nb_optim_kind_from_name("adamw", &kind), NB_OK);
    assert_int_equal(kind, NB_OPTIM_ADAMW);
    assert_int_equal(nb_optim_kind_from_name("lion", &kind), NB_ERR_NOTFOUND);
    assert_int_equal(nb_optim_kind_from_name(NULL, &kind), NB_ERR_NULL);
    assert_int_equal(nb_optim_kind_from_name("rmsprop", &kind), NB_OK);
    assert_int_equal(kind, NB_OPTIM_RMSPROP);
    assert_int_equal(nb_optim_kind_from_name("adagrad", &kind), NB_OK);
    assert_int_equal(kind, NB_OPTIM_ADAGRAD);
    for (int k = NB_OPTIM_SGD; k <= NB_OPTIM_ADAGRAD; k++)
        assert_non_null(strstr(nb_optim_kind_names(), nb_optim_kind_name((nb_optim_kind)k)));
    assert_null(nb_optim_kind_name((nb_optim_kind)7));
    assert_string_equal(nb_optim_slot_name(NB_OPTIM_MOMENTUM, 0), "velocity");
    assert_string_equal(nb_optim_slot_name(NB_OPTIM_ADAM, 1), "v");
    assert_null(nb_optim_slot_name(NB_OPTIM_SGD, 0));
    assert_null(nb_optim_slot_name(NB_OPTIM_ADAM, 2));
    assert_null(nb_optim_slot_name((nb_optim_kind)9, 0));
    /* RMSprop may keep three, whatever its options; Adagrad one */
    assert_string_equal(nb_optim_slot_name(NB_OPTIM_RMSPROP, 0), "square_avg");
    assert_string_equal(nb_optim_slot_name(NB_OPTIM_RMSPROP, 1), "momentum_buffer");
    assert_string_equal(nb_optim_slot_name(NB_OPTIM_RMSPROP, 2), "grad_avg");
    assert_null(nb_optim_slot_name(NB_OPTIM_RMSPROP, 3));
    assert_null(nb_optim_slot_name(NB_OPTIM_RMSPROP, -1));
    assert_string_equal(nb_optim_slot_name(NB_OPTIM_ADAGRAD, 0), "sum");
    assert_null(nb_optim_slot_name(NB_OPTIM_ADAGRAD, 1));
    nb_optim_opts bad_kind = nb_optim_defaults(NB_OPTIM_SGD);
    bad_kind.kind = (nb_optim_kind)9;
    assert_null(nb_optim_opts_slot_name(&bad_kind, 0));
    assert_null(nb_optim_opts_slot_name(NULL, 0));
    nb_optim_opts rms = nb_optim_defaults(NB_OPTIM_RMSPROP);
    assert_string_equal(nb_optim_opts_slot_name(&rms, 0), "square_avg");
    assert_null(nb_optim_opts_slot_name(&rms, 1));
    assert_null(nb_optim_opts_slot_name(&rms, -1));
}

/* Saving: state the model does not hold is left out; names that cannot
 * be keys, a name already in the store, a text that does not fit are
 * refused with the metadata as it was. */
static void test_state_save_refusals(void **state)
{
    (void)state;
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAM);
    nb_optim *a = nb_optim_new(&o);
    nb_model *m = state_model(2);
    assert_int_equal(nb_optim_step(a, m), NB_OK);
    nb_error err;
    char meta[4096] = "x=1";
    nb_model *store = nb_model_new();

    /* a model holding only one of the two, the other in another shape */
    nb_model *one = nb_model_new();
    nb_model_add(one, "layer.w", NB_F32, 2, (int64_t[]){2, 3}, NULL);
    nb_model_add(one, "layer.b", NB_F64, 1, (int64_t[]){4}, NULL);
    assert_int_equal(nb_optim_state_save(a, one, store, meta, sizeof meta, &err), NB_OK);
    assert_int_equal(nb_model_count(store), 3);
    assert_non_null(nb_model_get(store, "layer.w/t"));
    assert_non_null(nb_model_get(store, "layer.w/m"));
    assert_null(nb_model_get(store, "layer.b/m"));
    assert_null(nb_model_get(store, "layer.b/t"));
    assert_true(strncmp(meta, "x=1\noptim.kind=adam\n", 20) == 0);

    /* the store already holds the names */
    strcpy(meta, "x=1");
    assert_int_equal(nb_optim_state_save(a, m, store, meta, sizeof meta, &err), NB_ERR_EXISTS);
    assert_string_equal(err.name, "layer.w");
    assert_string_equal(meta, "x=1");
    nb_model_free(store);
    store = nb_model_new();
    /* too little room */
    assert_int_equal(nb_optim_state_save(a, m, store, meta, 64, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "does not fit"));
    assert_string_equal(meta, "x=1");
    assert_int_equal(nb_optim_state_save(a, m, store, meta, 3, &err), NB_ERR_ARG);
    assert_int_equal(nb_optim_state_save(NULL, m, store, meta, sizeof meta, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_state_save(a, NULL, store, meta, sizeof meta, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_state_save(a, m, NULL, meta, sizeof meta, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_state_save(a, m, store, NULL, 0, NULL), NB_ERR_NULL);

    /* an update count above 2^53 cannot be stored exactly: refused */
    nb_model *odd = nb_model_new(), *st = nb_model_new();
    nb_tensor *p = NULL, *t = NULL;
    nb_model_add(odd, "a=b", NB_F32, 0, NULL, &p);
    nb_tensor_set(nb_tensor_grad(p), 0, 1);
    nb_model_add(st, "a=b/t", NB_F64, 0, NULL, &t);
    nb_model_add(st, "a=b/m", NB_F32, 0, NULL, NULL);
    nb_model_add(st, "a=b/v", NB_F32, 0, NULL, NULL);
    nb_tensor_set(t, 0, 9007199254740992.0); /* 2^53 */
    nb_optim *c = nb_optim_new(&o);
    assert_int_equal(nb_optim_state_save(a, m, store, meta, sizeof meta, &err), NB_OK);
    assert_int_equal(nb_optim_state_load(c, odd, st, meta, &err), NB_OK);
    nb_model_free(store);
    store = nb_model_new();
    strcpy(meta, "x=1");
    assert_int_equal(nb_optim_state_save(c, odd, store, meta, sizeof meta, &err), NB_OK);
    assert_true(nb_tensor_item(nb_model_get(store, "a=b/t")) == 9007199254740992.0);
    nb_model_free(store);
    store = nb_model_new();
    strcpy(meta, "x=1");
    assert_int_equal(nb_optim_step(c, odd), NB_OK);
    assert_int_equal(nb_optim_state_save(c, odd, store, meta, sizeof meta, &err), NB_ERR_ARG);
    assert_string_equal(err.name, "a=b");
    assert_non_null(strstr(err.msg, "2^53"));
    assert_string_equal(meta, "x=1");
    assert_int_equal(nb_model_count(store), 0);
    nb_model_free(st);

    nb_optim_free(c);
    nb_model_free(odd);
    nb_model_free(one);
    nb_model_free(store);
    nb_model_free(m);
    nb_optim_free(a);
}

/* Loading: every flaw named, the optimizer unchanged. */
static void test_state_load_refusals(void **state)
{
    (void)state;
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_MOMENTUM);
    nb_optim *a = nb_optim_new(&o);
    nb_model *m = state_model(3);
    assert_int_equal(nb_optim_step(a, m), NB_OK);
    nb_model *store = nb_model_new();
    char good[4096] = "";
    nb_error err;
    assert_int_equal(nb_optim_state_save(a, m, store, good, sizeof good, &err), NB_OK);

    nb_optim *b = nb_optim_new(&o);
    char meta[4096];
    struct {
        const char *from, *to; /* replace the first `from` in good by `to` */
        nb_status status;
        const char *name;
    } cases[] = {
        {"optim.kind=momentum", "optim.kind=adam", NB_ERR_ARG, "optim.kind"},
        {"optim.kind=momentum", "optim.kinds=momentum", NB_ERR_NOTFOUND, "optim.kind"},
        {"optim.step=1", "optim.step=-1", NB_ERR_PARSE, "optim.step"},
        {"optim.step=1", "optim.steps=1", NB_ERR_NOTFOUND, "optim.step"},
        {"optim.sched_pos=1", "optim.sched_pos=1.5", NB_ERR_PARSE, "optim.sched_pos"},
        {"optim.kind=momentum", "optim.kind=momentum\nbad line", NB_ERR_PARSE, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *at = strstr(good, cases[i].from);
        assert_non_null(at);
        snprintf(meta, sizeof meta, "%.*s%s%s", (int)(at - good), good, cases[i].to,
                 at + strlen(cases[i].from));
        nb_status st = nb_optim_state_load(b, m, store, meta, &err);
        if (st != cases[i].status || strcmp(err.name, cases[i].name))
            fail_msg("case %zu: status %d name '%s' (%s)", i, st, err.name, err.msg);
        assert_int_equal(nb_optim_steps(b), 0);
        assert_int_equal(nb_optim_state_count(b), 0);
    }
    /* counts that are not whole numbers from 0 to 2^53, or not f64 scalars */
    const double bad_t[] = {-1, 0.5, 9007199254740994.0, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_t / sizeof *bad_t; i++) {
        nb_tensor_set(nb_model_get(store, "layer.b/t"), 0, bad_t[i]);
        assert_int_equal(nb_optim_state_load(b, m, store, good, &err), NB_ERR_PARSE);
        assert_string_equal(err.name, "layer.b/t");
        assert_non_null(strstr(err.msg, "2^53"));
        assert_int_equal(nb_optim_state_count(b), 0);
    }
    nb_tensor_set(nb_model_get(store, "layer.b/t"), 0, 1);
    nb_model *s1 = nb_model_new();
    nb_model_add(s1, "layer.w/t", NB_F32, 0, NULL, NULL);
    assert_int_equal(nb_optim_state_load(b, m, s1, good, &err), NB_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "f64 scalar"));
    nb_model_free(s1);
    /* no counts: the optimizer's step and options, no per-parameter state */
    nb_model *none = nb_model_new();
    nb_optim *c0 = nb_optim_new(&o);
    assert_int_equal(nb_optim_state_load(c0, m, none, good, &err), NB_OK);
    assert_int_equal(nb_optim_steps(c0), 1);
    assert_int_equal(nb_optim_state_count(c0), 0);
    nb_optim_free(c0);
    nb_model_free(none);
    /* a state tensor missing, of another dtype, of another shape */
    nb_model *s2 = nb_model_new();
    nb_model *s3 = nb_model_new();
    for (int k = 0; k < 2; k++) {
        nb_model *s = k ? s3 : s2;
        nb_model_add(s, "layer.w/t", NB_F64, 0, NULL, NULL);
        nb_model_add(s, "layer.b/t", NB_F64, 0, NULL, NULL);
        nb_tensor_set(nb_model_get(s, "layer.w/t"), 0, 1);
        nb_tensor_set(nb_model_get(s, "layer.b/t"), 0, 1);
    }
    nb_model_add(s2, "layer.w/velocity", NB_F32, 2, (int64_t[]){2, 3}, NULL);
    assert_int_equal(nb_optim_state_load(b, m, s2, good, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "layer.b/velocity");
    nb_model_add(s2, "layer.b/velocity", NB_F32, 1, (int64_t[]){3}, NULL);
    assert_int_equal(nb_optim_state_load(b, m, s2, good, &err), NB_ERR_DTYPE);
    nb_model_add(s3, "layer.w/velocity", NB_F32, 2, (int64_t[]){3, 2}, NULL);
    nb_model_add(s3, "layer.b/velocity", NB_F64, 1, (int64_t[]){3}, NULL);
    assert_int_equal(nb_optim_state_load(b, m, s3, good, &err), NB_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "[3,2]"));
    assert_int_equal(nb_optim_state_count(b), 0);
    assert_int_equal(nb_optim_state_load(NULL, m, store, good, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_state_load(b, NULL, store, good, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_state_load(b, m, NULL, good, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_state_load(b, m, store, NULL, NULL), NB_ERR_NULL);

    /* every allocation of a load failing in turn leaves the optimizer as it was */
    for (long k = 1;; k++) {
        tc_counting c = {0};
        nb_optim *d = nb_optim_new_alloc(&o, tc_counting_alloc, &c);
        c.fail_at = c.calls + k;
        nb_status st = nb_optim_state_load(d, m, store, good, &err);
        if (st == NB_OK) {
            assert_int_equal(nb_optim_steps(d), 1);
            nb_optim_free(d);
            assert_int_equal(c.live, 0);
            break;
        }
        assert_int_equal(st, NB_ERR_NOMEM);
        assert_int_equal(nb_optim_state_count(d), 0);
        nb_optim_free(d);
        assert_int_equal(c.live, 0);
    }

    /* options that do not read back */
    nb_optim_opts back;
    const char *bad_opts[][2] = {
        {"optim.kind=momentum", "optim.kind=x"},
        {"optim.kind=momentum", "optim.kin=momentum"},
        {"optim.schedule=constant", "optim.schedule=linear"},
        {"optim.lr=0.01", "optim.lr=fast"},
        {"optim.lr=0.01", "optim.lr=-1"},
        {"optim.per_epoch=0", "optim.per_epoch=2"},
        {"optim.period=1", "optim.period=x"},
        {"optim.momentum=0.9", "optim.momentu=0.9"},
    };
    for (size_t i = 0; i < sizeof bad_opts / sizeof *bad_opts; i++) {
        const char *at = strstr(good, bad_opts[i][0]);
        assert_non_null(at);
        snprintf(meta, sizeof meta, "%.*s%s%s", (int)(at - good), good, bad_opts[i][1],
                 at + strlen(bad_opts[i][0]));
        memset(&back, 0x5a, sizeof back);
        nb_optim_opts before = back;
        nb_status st = nb_optim_opts_from_meta(meta, &back, &err);
        if (st == NB_OK)
            fail_msg("options case %zu read back", i);
        assert_true(memcmp(&back, &before, sizeof back) == 0);
        assert_true(strlen(err.msg) > 10);
        assert_string_equal(err.where, "nb_optim_opts_from_meta");
    }
    assert_int_equal(nb_optim_opts_from_meta(NULL, &back, &err), NB_ERR_NULL);
    assert_int_equal(nb_optim_opts_from_meta(good, NULL, NULL), NB_ERR_NULL);

    nb_model_free(s2);
    nb_model_free(s3);
    nb_optim_free(b);
    nb_model_free(store);
    nb_model_free(m);
    nb_optim_free(a);
}

/* RMSprop's and Adagrad's state: their option lines are required and
 * checked; an RMSprop with momentum (or centered) refuses state saved
 * without, naming the tensor it lacks, while one without takes state saved
 * with (leaving the slot it does not keep); Adagrad's sum of a new
 * parameter starts at initial_accumulator_value. */
static void test_state_new_kinds(void **state)
{
    (void)state;
    nb_error err;
    char meta[4096], good[2][4096];
    nb_model *m = state_model(4);
    nb_model *store[2];
    for (int k = 0; k < 2; k++) {
        const char *slots[4];
        nb_optim_opts o = variant(k ? 10 : 5, slots); /* plain RMSprop; Adagrad with options */
        nb_optim *a = nb_optim_new(&o);
        assert_int_equal(nb_optim_step(a, m), NB_OK);
        store[k] = nb_model_new();
        good[k][0] = '\0';
        assert_int_equal(nb_optim_state_save(a, m, store[k], good[k], sizeof good[k], &err), NB_OK);
        nb_optim_free(a);
    }
    /* options that do not read back */
    const struct {
        int which;
        const char *from, *to, *name;
        nb_status status;
    } bad[] = {
        {0, "optim.alpha=0.98999999999999999", "optim.alpha=x", "optim.alpha", NB_ERR_PARSE},
        {0, "optim.alpha=0.98999999999999999", "optim.alphas=0.99", "optim.alpha", NB_ERR_NOTFOUND},
        {0, "optim.alpha=0.98999999999999999", "optim.alpha=1", "", NB_ERR_ARG},
        {0, "optim.centered=0", "optim.centered=2", "optim.centered", NB_ERR_PARSE},
        {0, "optim.centered=0", "optim.centred=0", "optim.centered", NB_ERR_NOTFOUND},
        {1, "optim.lr_decay=0.25", "optim.lr_decay=-1", "", NB_ERR_ARG},
        {1, "optim.lr_decay=0.25", "optim.lr_decay=", "optim.lr_decay", NB_ERR_PARSE},
        {1, "optim.initial_accumulator_value=0.5", "optim.initial_accumulator_value=-0.5", "",
         NB_ERR_ARG},
        {1, "optim.initial_accumulator_value=0.5", "", "optim.initial_accumulator_value",
         NB_ERR_NOTFOUND},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *g = good[bad[i].which], *at = strstr(g, bad[i].from);
        assert_non_null(at);
        snprintf(meta, sizeof meta, "%.*s%s%s", (int)(at - g), g, bad[i].to,
                 at + strlen(bad[i].from));
        nb_optim_opts back = nb_optim_defaults(NB_OPTIM_SGD), before = back;
        nb_status st = nb_optim_opts_from_meta(meta, &back, &err);
        if (st != bad[i].status || strcmp(err.name, bad[i].name))
            fail_msg("case %zu: status %d name '%s' (%s)", i, st, err.name, err.msg);
        assert_true(memcmp(&back, &before, sizeof back) == 0);
        assert_string_equal(err.where, "nb_optim_opts_from_meta");
    }
    nb_optim_opts back;
    assert_int_equal(nb_optim_opts_from_meta(good[1], &back, &err), NB_OK);
    assert_true(back.lr_decay == 0.25 && back.initial_accumulator_value == 0.5 && back.eps == 1e-3);

    /* an RMSprop with momentum, or centered, needs the slot it keeps */
    for (int k = 7; k <= 9; k++) {
        const char *slots[4];
        nb_optim_opts o = variant(k, slots);
        nb_optim *b = nb_optim_new(&o);
        assert_int_equal(nb_optim_state_load(b, m, store[0], good[0], &err), NB_ERR_NOTFOUND);
        assert_string_equal(err.name, k == 8 ? "layer.w/grad_avg" : "layer.w/momentum_buffer");
        assert_non_null(strstr(err.msg, k == 8 ? "when centered" : "when momentum > 0"));
        assert_int_equal(nb_optim_state_count(b), 0);
        assert_int_equal(nb_optim_steps(b), 0);
        /* and its own state loads into a plain RMSprop, which keeps square_avg */
        assert_int_equal(nb_optim_step(b, m), NB_OK);
        nb_model *s2 = nb_model_new(), *s3 = nb_model_new();
        char m2[4096] = "", m3[4096] = "";
        assert_int_equal(nb_optim_state_save(b, m, s2, m2, sizeof m2, &err), NB_OK);
        nb_optim_opts plain = nb_optim_defaults(NB_OPTIM_RMSPROP);
        nb_optim *c = nb_optim_new(&plain);
        assert_int_equal(nb_optim_state_load(c, m, s2, m2, &err), NB_OK);
        assert_int_equal(nb_optim_state_save(c, m, s3, m3, sizeof m3, &err), NB_OK);
        assert_int_equal(nb_model_count(s3), 4);
        nb_tensor *x = nb_model_get(s2, "layer.b/square_avg"),
                  *y = nb_model_get(s3, "layer.b/square_avg");
        assert_memory_equal(nb_tensor_data(x), nb_tensor_data(y), 3 * sizeof(double));
        nb_optim_free(c);
        nb_model_free(s2);
        nb_model_free(s3);
        nb_optim_free(b);
    }

    /* Adagrad's sum after one step: initial_accumulator_value + d², in the
     * parameter's dtype */
    nb_tensor *gb = nb_tensor_grad(nb_model_get(m, "layer.b"));
    nb_tensor *gw = nb_tensor_grad(nb_model_get(m, "layer.w"));
    nb_tensor *sb = nb_model_get(store[1], "layer.b/sum"),
              *sw = nb_model_get(store[1], "layer.w/sum");
    for (int i = 0; i < 3; i++) {
        double g = nb_tensor_f64(gb)[i];
        assert_true(nb_tensor_f64(sb)[i] == 0.5 + g * g);
    }
    for (int i = 0; i < 6; i++) {
        float g = nb_tensor_f32(gw)[i];
        assert_true(nb_tensor_f32(sw)[i] == 0.5f + g * g);
    }
    for (int k = 0; k < 2; k++)
        nb_model_free(store[k]);
    nb_model_free(m);
}

/* The generator's state through metadata, with and without a kept normal
 * deviate, continues the same stream; malformed text is refused. */
static void test_rng_state_text(void **state)
{
    (void)state;
    for (int spare = 0; spare < 2; spare++) {
        nb_rng r, q;
        nb_rng_seed(&r, 42);
        if (spare)
            (void)nb_rng_normal(&r);
        char buf[256] = "";
        assert_int_equal(nb_rng_save(&r, buf, sizeof buf), NB_OK);
        nb_rng_seed(&q, 1);
        assert_int_equal(nb_rng_load(&q, buf, NULL), NB_OK);
        assert_int_equal(q.has_spare, spare);
        for (int i = 0; i < 5; i++) {
            double x = nb_rng_normal(&r), y = nb_rng_normal(&q);
            assert_memory_equal(&x, &y, sizeof x);
        }
    }
    nb_rng r, before;
    nb_rng_seed(&r, 5);
    before = r;
    nb_error err;
    const char *bad[] = {
        "rng.spare=",
        "rng.state=0000000000000001,0000000000000002,0000000000000003,0000000000000004",
        "rng.state=1,2,3,4\nrng.spare=",
        "rng.state=000000000000000G,0000000000000002,0000000000000003,0000000000000004\nrng.spare=",
        "rng.state=0000000000000001;0000000000000002,0000000000000003,0000000000000004\nrng.spare=",
        "rng.state=0000000000000001,0000000000000002,0000000000000003,0000000000000004\nrng.spare=1",
        "rng.state=0000000000000001,0000000000000002,0000000000000003,0000000000000004\n"
        "rng.spare=3ff000000000000X",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_not_equal(nb_rng_load(&r, bad[i], &err), NB_OK);
        assert_true(memcmp(r.s, before.s, sizeof r.s) == 0);
        assert_non_null(strstr(err.msg, "rng"));
    }
    assert_int_equal(nb_rng_load(NULL, "", &err), NB_ERR_NULL);
    assert_int_equal(nb_rng_save(NULL, NULL, 0), NB_ERR_NULL);
    char small[40] = "a=1";
    assert_int_equal(nb_rng_save(&r, small, sizeof small), NB_ERR_ARG);
    assert_string_equal(small, "a=1");
    char twice[512] = "";
    assert_int_equal(nb_rng_save(&r, twice, sizeof twice), NB_OK);
    assert_int_equal(nb_rng_save(&r, twice, sizeof twice), NB_ERR_EXISTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_by_hand),
        cmocka_unit_test(test_momentum_nesterov_by_hand),
        cmocka_unit_test(test_adam_adamw_by_hand),
        cmocka_unit_test(test_subnormals_flushed),
        cmocka_unit_test(test_rules_match_reference),
        cmocka_unit_test(test_rmsprop_adagrad_reference),
        cmocka_unit_test(test_rmsprop_adagrad_by_hand),
        cmocka_unit_test(test_rmsprop_centered_rounding),
        cmocka_unit_test(test_f32_updates),
        cmocka_unit_test(test_minimise_quadratic),
        cmocka_unit_test(test_weight_decay_vs_l2),
        cmocka_unit_test(test_adamw_formula_on_loss),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_grad_norm_sums),
        cmocka_unit_test(test_optim_clips),
        cmocka_unit_test(test_counts_at_limit),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_lazy_state),
        cmocka_unit_test(test_non_trainable),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_alloc_failure_every_allocation),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_state_save_refusals),
        cmocka_unit_test(test_state_load_refusals),
        cmocka_unit_test(test_state_new_kinds),
        cmocka_unit_test(test_rng_state_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
