/* nb_check_model: a whole network checked against its model's parameters,
 * built-in layers and a program's own, in f64 (on a twin for f32
 * networks); a wrong layer fails by its parameter's full name; a Jacobian
 * of zeros is a warning; bad input is refused; and the model is the same,
 * bit for bit, after every call. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------- the model, compared */

/* Every value and gradient of a model, copied. */
typedef struct kept {
    unsigned char *bytes;
    size_t n;
} kept;

static size_t tensor_bytes(const nb_tensor *t)
{
    return (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
}

static kept keep(nb_model *m)
{
    kept k = {0};
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        k.n += 2 * tensor_bytes(t);
    k.bytes = malloc(k.n + 1);
    assert_non_null(k.bytes);
    size_t at = 0;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t)) {
        memcpy(k.bytes + at, nb_tensor_data(t), tensor_bytes(t));
        memcpy(k.bytes + at + tensor_bytes(t), nb_tensor_data(nb_tensor_grad(t)), tensor_bytes(t));
        at += 2 * tensor_bytes(t);
    }
    return k;
}

/* The model holds what @p k kept, bit for bit; frees k. */
static void same_model(nb_model *m, kept k, const char *when)
{
    kept now = keep(m);
    if (now.n != k.n || memcmp(now.bytes, k.bytes, k.n) != 0)
        fail_msg("the model changed (%s)", when);
    free(now.bytes);
    free(k.bytes);
}

/* Every parameter's values drawn from [-1, 1], and gradients set to a
 * pattern the check must leave alone. */
static void fill_model(nb_model *m, uint64_t seed)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        for (int64_t i = 0; i < nb_tensor_size(t); i++) {
            nb_tensor_set(t, i, 2 * nb_rng_uniform(&rng) - 1);
            nb_tensor_set(nb_tensor_grad(t), i, 0.25 * (double)(i % 7) - 0.5);
        }
}

/* A batch [n, f] of dtype dt drawn from N(0, 1) in graph g. */
static nb_tensor *batch(nb_graph *g, nb_dtype dt, int64_t n, int64_t f, uint64_t seed)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_tensor *x = nb_rand_normal(g, &rng, dt, 2, (int64_t[]){n, f}, 0, 1);
    assert_non_null(x);
    return x;
}

static bool mentions(const char *text, const char *what)
{
    return strstr(text, what) != NULL;
}

/* The printed report of @p r (static storage). */
static const char *report(const nb_model_check_result *r)
{
    static char text[8192];
    FILE *f = fmemopen(text, sizeof text, "w");
    assert_non_null(f);
    nb_model_check_print(r, f);
    fclose(f);
    return text;
}

/* Check and require a verdict (not an error). */
static nb_model_check_result check(nb_layer *net, nb_model *m, nb_tensor *x,
                                   const nb_model_check_opts *o)
{
    nb_model_check_result r;
    nb_status st = nb_check_model(net, m, x, o, &r);
    if (st != NB_OK)
        fail_msg("nb_check_model: %s (%s)", r.error.msg, nb_status_str(st));
    return r;
}

/* ---------------------------------------------------- a user's layers */

/* A gate y = x ⊙ tanh(gain) + bias over the last axis, describable
 * when made with gate_def; kind "opaque_gate" is the same layer without
 * describe or build. */
typedef struct gate {
    int64_t width;
    nb_tensor *gain, *bias;
} gate;

static nb_tensor *gate_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    gate *s = nb_layer_state(l);
    return nb_add(g, nb_mul(g, x, nb_tanh(g, s->gain)), s->bias);
}

static nb_status gate_describe(const nb_layer *l, char *out, size_t cap)
{
    return nb_layer_setting_put(out, cap, "width", "%lld",
                                (long long)((const gate *)nb_layer_state(l))->width);
}

static nb_status gate_init(nb_layer *l, nb_model *m, int64_t n, nb_dtype dt)
{
    gate *s = nb_layer_state(l);
    s->width = n;
    nb_status st = nb_layer_add_param(l, m, "gain", dt, 1, &n, &s->gain);
    return st == NB_OK ? nb_layer_add_param(l, m, "bias", dt, 1, &n, &s->bias) : st;
}

static nb_status gate_build(nb_layer *l, nb_model *m, const char *settings, const nb_layer_opts *o,
                            nb_error *err)
{
    int64_t n;
    return nb_layer_setting_get_i64(settings, "width", &n) != NB_OK || n < 1
               ? nb_error_set(err, NB_ERR_PARSE, nb_layer_name(l), "width= is not a width")
               : gate_init(l, m, n, o->dtype);
}

static const nb_layer_def gate_def = {
    .kind = "gate",
    .state_size = sizeof(gate),
    .forward = gate_forward,
    .describe = gate_describe,
    .build = gate_build,
};

static const nb_layer_def opaque_def = {
    .kind = "opaque_gate",
    .state_size = sizeof(gate),
    .forward = gate_forward,
};

static nb_layer *gate_new(const nb_layer_def *def, nb_model *m, const char *name, int64_t n,
                          nb_dtype dt)
{
    nb_layer *l = NULL;
    assert_int_equal(nb_layer_new(def, name, NULL, &l), NB_OK);
    assert_int_equal(gate_init(l, m, n, dt), NB_OK);
    return l;
}

/* A linear map whose value is y = x·W but whose gradient is wrong: W
 * enters as 2W − stop_gradient(W) (twice the gradient), or, with
 * "stopped", as stop_gradient(W) alone (no gradient). */
typedef struct wrong {
    nb_tensor *w;
    bool stopped;
} wrong;

static nb_tensor *wrong_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    wrong *s = nb_layer_state(l);
    nb_tensor *w = s->stopped ? nb_stop_gradient(g, s->w)
                              : nb_sub(g, nb_scale(g, s->w, 2), nb_stop_gradient(g, s->w));
    return nb_matmul(g, x, w, false, false);
}

static int64_t wrong_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return nb_tensor_dim(((const wrong *)nb_layer_state(l))->w, 1);
}

static const nb_layer_def wrong_def = {
    .kind = "wrong_linear",
    .state_size = sizeof(wrong),
    .forward = wrong_forward,
    .out_width = wrong_width,
};

static nb_layer *wrong_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out, bool stopped)
{
    nb_layer *l = NULL;
    assert_int_equal(nb_layer_new(&wrong_def, name, NULL, &l), NB_OK);
    wrong *s = nb_layer_state(l);
    s->stopped = stopped;
    assert_int_equal(nb_layer_add_param(l, m, "weight", NB_F64, 2, (int64_t[]){n_in, n_out}, &s->w),
                     NB_OK);
    return l;
}

/* A layer with a parameter it ignores: y = −x. */
static nb_tensor *ignore_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)l, (void)training;
    return nb_neg(g, x);
}

static const nb_layer_def ignore_def = {
    .kind = "ignore",
    .state_size = sizeof(gate),
    .forward = ignore_forward,
};

/* A layer that fails when its first gain is not what it was: fine at the
 * point, failing at every moved point of that entry. */
static nb_tensor *fragile_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    gate *s = nb_layer_state(l);
    if (nb_tensor_get(s->gain, 0) != 0.5) {
        nb_graph_fail(g, NB_ERR_ARG, nb_layer_name(l), "gain[0] must stay 0.5");
        return NULL;
    }
    return gate_forward(g, l, x, training);
}

static const nb_layer_def fragile_def = {
    .kind = "fragile",
    .state_size = sizeof(gate),
    .forward = fragile_forward,
};

/* A gate that keeps the first gain[0] rows of its output (rounded, at
 * least none): its output's size follows a parameter's value. */
static nb_tensor *rows_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    gate *s = nb_layer_state(l);
    int64_t keep = (int64_t)floor(nb_tensor_get(s->gain, 0) + 0.5);
    return nb_slice(g, gate_forward(g, l, x, training), 0, 0, keep > 0 ? keep : 0, 1);
}

static const nb_layer_def rows_def = {
    .kind = "rows",
    .state_size = sizeof(gate),
    .forward = rows_forward,
};

/* A layer that keeps state in evaluation mode, in the model: each run
 * adds its count of runs so far, and counts one more. */
typedef struct counter {
    nb_tensor *w, *runs;
} counter;

static nb_tensor *counter_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    counter *s = nb_layer_state(l);
    double runs = nb_tensor_get(s->runs, 0);
    nb_tensor_set(s->runs, 0, runs + 1);
    return nb_add_scalar(g, nb_mul(g, x, s->w), 0.001 * runs);
}

static const nb_layer_def counter_def = {
    .kind = "counter",
    .state_size = sizeof(counter),
    .forward = counter_forward,
};

/* ------------------------------------------------------- a user's ops */

/* y = 2x with a right VJP and a tangent rule that is wrong (3t), or one
 * whose VJP or JVP records an error. */
enum { WRONG_TANGENT, FAILING_VJP, FAILING_JVP, N_USER_OPS };

static nb_status twice_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    nb_tensor *x = nb_op_input(out, 0);
    for (int64_t k = 0; k < nb_tensor_size(out); k++)
        nb_tensor_set(out, k, 2 * nb_tensor_get(x, k));
    return NB_OK;
}

static nb_tensor *twice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    (void)out, (void)i;
    return nb_scale(g, grad, 2);
}

static nb_tensor *twice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    (void)out;
    return nb_scale(g, t[0], 2);
}

static nb_tensor *twice_jvp_wrong(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    (void)out;
    return nb_scale(g, t[0], 3);
}

static nb_tensor *vjp_fails(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    (void)out, (void)i, (void)grad;
    nb_op_error(g, NB_ERR_ARG, "twice_bad_vjp", "this rule always fails");
    return NULL;
}

static nb_tensor *jvp_fails(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    (void)out, (void)t;
    nb_op_error(g, NB_ERR_ARG, "twice_bad_jvp", "this rule always fails");
    return NULL;
}

/* The id of user op @p which, registered on first use. */
static int user_op(int which)
{
    static int ids[N_USER_OPS] = {-1, -1, -1};
    static const nb_op_def defs[N_USER_OPS] = {
        {"twice_wrong_jvp", 1, nb_op_like_input, twice_fwd, twice_vjp, twice_jvp_wrong},
        {"twice_bad_vjp", 1, nb_op_like_input, twice_fwd, vjp_fails, twice_jvp},
        {"twice_bad_jvp", 1, nb_op_like_input, twice_fwd, twice_vjp, jvp_fails},
    };
    if (ids[which] < 0)
        assert_int_equal(nb_op_register(&defs[which], &ids[which]), NB_OK);
    return ids[which];
}

/* A gate whose gain goes through user op @p op, halved: y = x ⊙ tanh(gain)
 * + bias in value, with that op's rules in the derivatives. */
typedef struct ruled {
    gate s; /* first: gate_init and gate_describe read it */
    int op;
} ruled;

static nb_tensor *ruled_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    ruled *h = nb_layer_state(l);
    nb_tensor *gain = nb_scale(g, nb_apply(g, h->op, &h->s.gain, 1, NULL), 0.5);
    return nb_add(g, nb_mul(g, x, nb_tanh(g, gain)), h->s.bias);
}

static const nb_layer_def ruled_def = {
    .kind = "ruled",
    .state_size = sizeof(ruled),
    .forward = ruled_forward,
};

/* A gate with something its description leaves out, a variant in its
 * state (HIDDEN_STOP: gain has no gradient; HIDDEN_FACTOR: y is doubled;
 * HIDDEN_TANGENT: gain goes through the op with a wrong tangent rule);
 * and a gate that makes an f32 constant, so it fails on f64 inputs. */
enum { HIDDEN_STOP = 1, HIDDEN_FACTOR, HIDDEN_TANGENT };

typedef struct hidden {
    gate s; /* first: gate_init and gate_describe read it */
    int variant;
} hidden;

static nb_tensor *hidden_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    hidden *h = nb_layer_state(l);
    nb_tensor *gain =
        h->variant == HIDDEN_STOP ? nb_stop_gradient(g, h->s.gain)
        : h->variant == HIDDEN_TANGENT
            ? nb_scale(g, nb_apply(g, user_op(WRONG_TANGENT), &h->s.gain, 1, NULL), 0.5)
            : h->s.gain;
    nb_tensor *y = nb_add(g, nb_mul(g, x, nb_tanh(g, gain)), h->s.bias);
    return h->variant == HIDDEN_FACTOR ? nb_scale(g, y, 2) : y;
}

static nb_status hidden_build(nb_layer *l, nb_model *m, const char *settings,
                              const nb_layer_opts *o, nb_error *err)
{
    ((hidden *)nb_layer_state(l))->variant = 0; /* what the description cannot say */
    return gate_build(l, m, settings, o, err);
}

static const nb_layer_def hidden_def = {
    .kind = "hidden",
    .state_size = sizeof(hidden),
    .forward = hidden_forward,
    .describe = gate_describe,
    .build = hidden_build,
};

static nb_tensor *f32_only_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    return nb_mul(g, gate_forward(g, l, x, training), nb_scalar(g, NB_F32, 1));
}

static const nb_layer_def f32_only_def = {
    .kind = "f32_only",
    .state_size = sizeof(gate),
    .forward = f32_only_forward,
    .describe = gate_describe,
    .build = gate_build,
};

/* ------------------------------------------------------- the networks */

/* An MLP 5-7-6-3 with batch norm (running statistics away from 0 and 1)
 * and dropout, under @p prefix. */
static nb_layer *mlp(nb_model *m, const char *prefix, nb_dtype dt, nb_act act, nb_rng *rng)
{
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.dtype = dt;
    o.layer.rng = rng;
    o.act = act;
    o.batch_norm = true;
    o.dropout = 0.3;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, prefix, (int64_t[]){5, 7, 6, 3}, 4, &o, &net), NB_OK);
    fill_model(m, 11);
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        if (strstr(nb_tensor_name(t), "running_var"))
            for (int64_t i = 0; i < nb_tensor_size(t); i++)
                nb_tensor_set(t, i, 0.5 + nb_tensor_get(t, i) * nb_tensor_get(t, i));
    return net;
}

/* fc1 (5 -> 4) -> a user's layer -> tanh -> fc2 (4 -> 3). */
static nb_layer *with_user_layer(nb_model *m, const nb_layer_def *def, nb_dtype dt, nb_rng *rng)
{
    nb_layer_opts o = {.dtype = dt, .rng = rng};
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc1", 5, 4, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_sequential_add(net, gate_new(def, m, "user", 4, dt)), NB_OK);
    assert_int_equal(nb_act_layer_new(m, "act", NB_ACT_TANH, NULL, 4, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc2", 4, 3, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    fill_model(m, 5);
    return net;
}

/* ---------------------------------------------------------- the tests */

/* MLPs of the library, f64 and f32 (on its twin), with batch norm in
 * evaluation mode and dropout: every parameter, every entry, passes; the
 * model is unchanged; the same seed gives the same result. */
static void test_mlp(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    for (int k = 0; k < 2; k++) {
        nb_dtype dt = k ? NB_F32 : NB_F64;
        nb_rng rng;
        nb_rng_seed(&rng, 3);
        nb_model *m = nb_model_new();
        nb_layer *net = mlp(m, k ? "net" : NULL, dt, NB_ACT_TANH, &rng);
        nb_tensor *x = batch(g, dt, 6, 5, 2);
        kept before = keep(m);
        nb_model_check_result r = check(net, m, x, NULL);
        same_model(m, before, "after a check that passed");
        if (!r.pass)
            fail_msg("%s", report(&r));
        assert_true(r.reverse_ok && r.forward_ok && !r.warning);
        assert_int_equal(r.cause, NB_CHECK_AGREE);
        assert_int_equal(r.dtype, NB_F64); /* in f64 either way */
        assert_int_equal(r.twin, dt == NB_F32);
        assert_false(r.twin_failed);
        /* fc1..3 weight and bias, bn1..2 weight and bias: not the buffers */
        assert_int_equal(r.n_params, 10);
        assert_int_equal(r.n_total, 5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3 + 2 * (7 + 6));
        assert_int_equal(r.n_entries, r.n_total);
        assert_int_equal(r.n_kinks, 0);
        assert_true(r.worst.abs_err < 1e-7 && r.worst_forward.abs_err < 1e-7);
        assert_true(r.evals >= 2 * r.n_entries);
        assert_true(mentions(r.worst.param, k ? "net.fc" : "fc") ||
                    mentions(r.worst.param, k ? "net.bn" : "bn"));
        assert_true(mentions(report(&r), "model check PASSED"));
        assert_true(
            mentions(report(&r), k ? "an f64 twin of the f32 network" : "evaluated in f64"));
        nb_model_check_result again = check(net, m, x, NULL);
        assert_memory_equal(&again, &r, sizeof r);
        nb_layer_free(net);
        nb_model_free(m);
    }
    nb_graph_free(g);
}

/* The library's other kinds pass too: a recurrent network (LSTM, then
 * layer norm and a linear layer) in f32 on its twin, a GRU over all steps
 * in f64, an embedding table. */
static void test_library_layers(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    for (int k = 0; k < 3; k++) {
        nb_rng rng;
        nb_rng_seed(&rng, 5);
        nb_model *m = nb_model_new();
        nb_layer *net = NULL, *l = NULL;
        assert_int_equal(nb_sequential_new("seq", &net), NB_OK);
        nb_rnn_opts ro = nb_rnn_defaults();
        ro.layer.rng = &rng;
        ro.layer.dtype = k == 0 ? NB_F32 : NB_F64;
        nb_layer_opts lo = ro.layer;
        nb_tensor *x = NULL;
        if (k < 2) { /* [N, T, F] = [3, 4, 2] */
            ro.all_steps = k == 1;
            assert_int_equal(nb_rnn_new(m, "rnn", k ? NB_RNN_GRU : NB_RNN_LSTM, 2, 4, &ro, &l),
                             NB_OK);
            assert_int_equal(nb_sequential_add(net, l), NB_OK);
            assert_int_equal(nb_layer_norm_new(m, "norm", 4, 1e-5, &lo, &l), NB_OK);
            assert_int_equal(nb_sequential_add(net, l), NB_OK);
            nb_rng_seed(&rng, 6);
            x = nb_rand_normal(g, &rng, lo.dtype, 3, (int64_t[]){3, 4, 2}, 0, 1);
        } else { /* indices [N, 3] into a table of 6 vectors of 4 */
            assert_int_equal(nb_embedding_new(m, "embed", 6, 4, &lo, &l), NB_OK);
            assert_int_equal(nb_sequential_add(net, l), NB_OK);
            x = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 3}, (double[]){0, 5, 2, 2, 1, 3});
        }
        assert_int_equal(nb_linear_new(m, "out", 4, 3, &lo, &l), NB_OK);
        assert_int_equal(nb_sequential_add(net, l), NB_OK);
        fill_model(m, 21);
        kept before = keep(m);
        nb_model_check_result r = check(net, m, x, NULL);
        same_model(m, before, "after a library network's check");
        if (!r.pass || r.dtype != NB_F64 || r.twin != (k == 0))
            fail_msg("network %d: %s", k, report(&r));
        nb_layer_free(net);
        nb_model_free(m);
    }
    nb_graph_free(g);
}

/* A network holding a program's own layer passes, on the twin when the
 * check is given the layer's definition; without it, or for a layer that
 * cannot describe itself, the f32 network is checked in f32 and the
 * result says so. In f64 no twin is needed. */
static void test_user_layer(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    const nb_layer_def *defs[] = {&gate_def};

    nb_model *m = nb_model_new();
    nb_layer *net = with_user_layer(m, &gate_def, NB_F32, &rng);
    nb_tensor *x = batch(g, NB_F32, 4, 5, 1);
    nb_model_check_opts o = nb_model_check_defaults();
    o.defs = defs;
    o.n_defs = 1;
    kept before = keep(m);
    nb_model_check_result r = check(net, m, x, &o);
    same_model(m, before, "after the twin's check");
    assert_true(r.pass && r.twin && !r.twin_failed);
    assert_int_equal(r.dtype, NB_F64);
    assert_int_equal(r.n_params, 6);

    /* without the definition: no twin, and why */
    before = keep(m);
    r = check(net, m, x, NULL);
    same_model(m, before, "after a check without the twin");
    assert_true(!r.twin && r.twin_failed);
    assert_int_equal(r.dtype, NB_F32);
    assert_true(mentions(r.note, "'gate'") && mentions(r.note, "nb_model_check_opts.defs"));
    assert_true(mentions(report(&r), "note: checked in the network's own dtype"));
    assert_true(mentions(report(&r), "evaluated in f32"));
    /* in f32, at f32's tolerances */
    o = nb_model_check_defaults();
    o.check.atol = o.check.rtol = 2e-2;
    r = check(net, m, x, &o);
    if (!r.pass)
        fail_msg("%s", report(&r));
    assert_int_equal(r.dtype, NB_F32);
    nb_layer_free(net);
    nb_model_free(m);

    /* a layer that cannot describe itself */
    m = nb_model_new();
    net = with_user_layer(m, &opaque_def, NB_F32, &rng);
    r = check(net, m, x, &o);
    assert_true(r.pass && !r.twin && r.twin_failed);
    assert_int_equal(r.dtype, NB_F32);
    assert_true(mentions(r.note, "cannot be described") && mentions(r.note, "user"));
    /* the twin turned off */
    o.twin = false;
    r = check(net, m, x, &o);
    assert_true(r.twin_failed && mentions(r.note, "turned off"));
    nb_layer_free(net);
    nb_model_free(m);

    /* in f64: checked as it is, at the default tolerances */
    m = nb_model_new();
    net = with_user_layer(m, &opaque_def, NB_F64, &rng);
    x = batch(g, NB_F64, 4, 5, 1);
    before = keep(m);
    r = check(net, m, x, NULL);
    same_model(m, before, "after an f64 check");
    assert_true(r.pass && !r.twin && !r.twin_failed);
    assert_int_equal(r.dtype, NB_F64);
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* The twin stands in for an f32 network only where it computes the same
 * values and derivatives; otherwise the network is checked as it is, and
 * the note says why: a description that leaves out a gradient path (the
 * bug is then found in f32) or a factor, a layer that cannot run in f64,
 * a twin that holds a tensor the model does not, a trainable parameter
 * the network does not register. */
static void test_twin_fallbacks(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = batch(g, NB_F32, 4, 5, 1);
    const nb_layer_def *defs[] = {&hidden_def, &f32_only_def};
    nb_model_check_opts o = nb_model_check_defaults();
    o.defs = defs;
    o.n_defs = 2;
    o.check.atol = o.check.rtol = 2e-2; /* f32's differences */
    static const struct {
        const nb_layer_def *def;
        int variant;
        const char *note;
        bool pass;
    } cases[] = {
        {&hidden_def, 0, "", true},
        {&hidden_def, HIDDEN_STOP,
         "has other derivatives than the network (reverse mode at 'user.gain'[", false},
        {&hidden_def, HIDDEN_FACTOR, "does not compute what the network computes (output[0] is",
         true},
        {&hidden_def, HIDDEN_TANGENT,
         "has other derivatives than the network (forward mode along 'user.gain': ", false},
        {&f32_only_def, 0,
         "its f64 twin, built from the network's description, failed on x: ", true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_rng rng;
        nb_rng_seed(&rng, 8);
        nb_model *m = nb_model_new();
        nb_layer *net = with_user_layer(m, cases[k].def, NB_F32, &rng);
        if (cases[k].variant)
            ((hidden *)nb_layer_state(nb_layer_find(net, "user")))->variant = cases[k].variant;
        kept before = keep(m);
        nb_model_check_result r = check(net, m, x, &o);
        same_model(m, before, "after a twin was refused");
        if (r.pass != cases[k].pass || !mentions(r.note, cases[k].note))
            fail_msg("case %zu: %s", k, report(&r));
        assert_int_equal(r.twin, k == 0);
        assert_int_equal(r.twin_failed, k != 0);
        assert_int_equal(r.dtype, k == 0 ? NB_F64 : NB_F32);
        if (!r.pass) /* the bug the twin did not have, found in f32 */
            assert_string_equal(r.reverse_ok ? r.worst_forward.param : r.worst.param, "user.gain");
        nb_layer_free(net);
        nb_model_free(m);
    }

    /* a network built in another model: the twin's tensors are not the
     * model's, and nothing checked moves f */
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    nb_model *other = nb_model_new(), *m = nb_model_new();
    nb_layer *net = with_user_layer(other, &hidden_def, NB_F32, &rng);
    nb_tensor *t;
    assert_int_equal(nb_model_add(m, "lonely", NB_F32, 1, (int64_t[]){3}, &t), NB_OK);
    nb_model_check_result r = check(net, m, x, &o);
    assert_true(r.twin_failed &&
                mentions(r.note, "holds fc1.weight[5,4], which the model does not"));
    assert_true(r.warning && !r.pass);
    assert_int_equal(r.n_params, 1);
    /* a trainable parameter the network does not register */
    assert_int_equal(nb_model_add(other, "extra", NB_F32, 1, (int64_t[]){2}, &t), NB_OK);
    r = check(net, other, x, &o);
    assert_true(r.twin_failed &&
                mentions(r.note, "parameter 'extra' is not one the network's layers register"));
    assert_true(r.pass);
    assert_int_equal(r.n_params, 7);
    nb_layer_free(net);
    nb_model_free(m);
    nb_model_free(other);
    nb_graph_free(g);
}

/* A layer whose gradient is wrong fails, naming its parameter in full
 * (longer than 32 bytes) and the entry; a layer with no gradient at all
 * fails the same way. */
static void test_wrong_layer(void **state)
{
    (void)state;
    static const char name[] = "encoder.block3.projection_without_a_gradient";
    for (int stopped = 0; stopped < 2; stopped++) {
        nb_graph *g = nb_graph_new();
        nb_rng rng;
        nb_rng_seed(&rng, 2);
        nb_model *m = nb_model_new();
        nb_layer_opts lo = {.dtype = NB_F64, .rng = &rng};
        nb_layer *net = NULL, *l = NULL;
        assert_int_equal(nb_sequential_new("", &net), NB_OK);
        assert_int_equal(nb_linear_new(m, "fc1", 5, 4, &lo, &l), NB_OK);
        assert_int_equal(nb_sequential_add(net, l), NB_OK);
        assert_int_equal(nb_sequential_add(net, wrong_new(m, name, 4, 3, stopped)), NB_OK);
        fill_model(m, 9);
        nb_tensor *x = batch(g, NB_F64, 4, 5, 3);
        kept before = keep(m);
        nb_model_check_result r = check(net, m, x, NULL);
        same_model(m, before, "after a check that failed");
        assert_false(r.pass);
        assert_false(r.warning);
        assert_int_equal(r.cause, NB_CHECK_MISMATCH);
        assert_false(r.reverse_ok);
        assert_false(r.forward_ok);
        char full[160];
        snprintf(full, sizeof full, "%s.weight", name);
        assert_true(strlen(full) > 32);
        assert_string_equal(r.worst.param, full);
        assert_string_equal(r.worst_forward.param, full);
        assert_true(r.worst.index >= 0 && r.worst.index < 12);
        /* twice the gradient, or none */
        if (stopped)
            assert_true(r.worst.analytic == 0 && fabs(r.worst.numerical) > 1e-3);
        else
            tc_near(r.worst.analytic, 2 * r.worst.numerical, 1e-6);
        const char *text = report(&r);
        assert_true(mentions(text, "model check FAILED") &&
                    mentions(text, nb_check_cause_str(NB_CHECK_MISMATCH)));
        char line[256];
        snprintf(line, sizeof line, "worst entry: '%s'[%lld]", full, (long long)r.worst.index);
        assert_true(mentions(text, line));
        nb_layer_free(net);
        nb_model_free(m);
        nb_graph_free(g);
    }
}

/* A derivative rule for a tangent that is wrong (the VJP is right): only
 * forward mode fails, and its worst direction names the parameter. */
static void test_wrong_tangent(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 6);
    nb_model *m = nb_model_new();
    nb_layer *net = with_user_layer(m, &ruled_def, NB_F64, &rng);
    ((ruled *)nb_layer_state(nb_layer_find(net, "user")))->op = user_op(WRONG_TANGENT);
    nb_tensor *x = batch(g, NB_F64, 4, 5, 7);
    nb_model_check_result r = check(net, m, x, NULL);
    assert_false(r.pass);
    assert_true(r.reverse_ok);
    assert_false(r.forward_ok);
    assert_int_equal(r.cause, NB_CHECK_MISMATCH);
    assert_string_equal(r.worst_forward.param, "user.gain");
    assert_int_equal(r.worst_forward.index, -1);
    tc_near(r.worst_forward.analytic, 1.5 * r.worst_forward.numerical, 1e-6);
    assert_true(mentions(report(&r), "worst direction: 'user.gain' along a random tangent"));
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* Nothing checked moves f: a warning, never a pass, with the sentence;
 * dead ReLU units (weights 0, bias −1) and a layer that ignores its
 * parameter. */
static void test_zero_jacobian(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = batch(g, NB_F64, 4, 5, 4);
    /* dead units: fc1 = 0·x − 1 < 0 everywhere, then ReLU, fc2 without bias */
    nb_model *m = nb_model_new();
    nb_layer_opts lo = {.dtype = NB_F64, .init = NB_INIT_ZEROS}, nb = lo;
    nb.no_bias = true;
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc1", 5, 4, &lo, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    for (int i = 0; i < 4; i++)
        nb_tensor_set(nb_model_get(m, "fc1.bias"), i, -1);
    assert_int_equal(nb_act_layer_new(m, "act", NB_ACT_RELU, NULL, 4, &lo, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc2", 4, 3, &nb, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    kept before = keep(m);
    nb_model_check_result r = check(net, m, x, NULL);
    same_model(m, before, "after a warning");
    assert_true(r.warning);
    assert_false(r.pass);
    assert_int_equal(r.cause, NB_CHECK_ZERO);
    assert_true(mentions(nb_check_cause_str(NB_CHECK_ZERO),
                         "nothing you checked depends on the inputs you gave"));
    const char *text = report(&r);
    assert_true(mentions(text, "model check WARNING: nothing you checked depends on the inputs "
                               "you gave"));
    assert_false(mentions(text, "PASSED"));
    /* one live unit is enough for a verdict */
    nb_tensor_set(nb_model_get(m, "fc1.bias"), 2, 1);
    r = check(net, m, x, NULL);
    assert_true(r.pass && !r.warning);
    nb_layer_free(net);
    nb_model_free(m);

    /* a layer that ignores its parameter */
    m = nb_model_new();
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_sequential_add(net, gate_new(&ignore_def, m, "ignored", 5, NB_F64)), NB_OK);
    fill_model(m, 1);
    r = check(net, m, x, NULL);
    assert_true(r.warning && !r.pass);
    assert_int_equal(r.n_params, 2);
    assert_int_equal(r.n_entries, 10);
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* A ReLU unit exactly at its kink: the entries that move it across are
 * kinks, accepted and counted; with acceptance off the check fails for
 * them. */
static void test_kinks(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_model *m = nb_model_new();
    nb_layer_opts lo = {.dtype = NB_F64, .init = NB_INIT_ZEROS};
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc1", 2, 2, &lo, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_act_layer_new(m, "act", NB_ACT_RELU, NULL, 2, &lo, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc2", 2, 1, &lo, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    /* x = [1, 2]: unit 0 gets 1·1 + 2·(−0.5) + 0 = 0 exactly, unit 1 gets 1 */
    nb_tensor *w1 = nb_model_get(m, "fc1.weight"), *w2 = nb_model_get(m, "fc2.weight");
    double v1[4] = {1, 0.5, -0.5, 0.25};
    for (int i = 0; i < 4; i++)
        nb_tensor_set(w1, i, v1[i]);
    nb_tensor_set(w2, 0, 1.5);
    nb_tensor_set(w2, 1, -0.7);
    nb_tensor *x = nb_tensor_from(g, NB_F64, 2, (int64_t[]){1, 2}, (double[]){1, 2});
    nb_model_check_result r = check(net, m, x, NULL);
    if (!r.pass)
        fail_msg("%s", report(&r));
    /* fc1.weight[0], [2] and fc1.bias[0] move unit 0 across its kink */
    assert_int_equal(r.n_kinks, 3);
    assert_string_equal(r.kink.param, "fc1.weight");
    assert_int_equal(r.kink.index, 0);
    assert_true(mentions(report(&r), "3 kinks accepted"));
    nb_model_check_opts o = nb_model_check_defaults();
    o.check.kinks = false;
    r = check(net, m, x, &o);
    assert_false(r.pass);
    assert_int_equal(r.cause, NB_CHECK_KINK);
    assert_true(mentions(report(&r), "kink acceptance is off"));
    /* Richardson's differences agree as well */
    o = nb_model_check_defaults();
    o.check.richardson = true;
    r = check(net, m, x, &o);
    assert_true(r.pass && r.n_kinks == 3);
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* max_entries: that many entries per parameter, drawn by the seed. */
static void test_max_entries(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_layer *net = mlp(m, NULL, NB_F64, NB_ACT_RELU, &rng);
    nb_tensor *x = batch(g, NB_F64, 6, 5, 2);
    nb_model_check_opts o = nb_model_check_defaults();
    o.max_entries = 4;
    nb_model_check_result r = check(net, m, x, &o);
    assert_true(r.pass);
    /* fc1.w 35, fc1.b 7, bn1 7+7, fc2.w 42, fc2.b 6, bn2 6+6, fc3.w 18, fc3.b 3 */
    assert_int_equal(r.n_entries, 9 * 4 + 3);
    assert_int_equal(r.n_total, 35 + 7 + 14 + 42 + 6 + 12 + 18 + 3);
    nb_model_check_result again = check(net, m, x, &o);
    assert_memory_equal(&again, &r, sizeof r);
    o.check.seed = 2;
    again = check(net, m, x, &o);
    assert_int_equal(again.n_entries, r.n_entries);
    assert_true(again.value != r.value); /* other weights w */
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* A network that changes between runs at the same point is not judged,
 * and what it changed in the model is put back. */
static void test_not_deterministic(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    assert_int_equal(nb_layer_new(&counter_def, "count", NULL, &net), NB_OK);
    counter *s = nb_layer_state(net);
    assert_int_equal(nb_layer_add_param(net, m, "w", NB_F64, 1, (int64_t[]){3}, &s->w), NB_OK);
    assert_int_equal(nb_layer_add_param(net, m, "runs", NB_F64, 0, NULL, &s->runs), NB_OK);
    fill_model(m, 2);
    nb_tensor_set_requires_grad(s->runs, false);
    nb_tensor *x = batch(g, NB_F64, 2, 3, 1);
    kept before = keep(m);
    nb_model_check_result r = check(net, m, x, NULL);
    same_model(m, before, "after a network that is not deterministic");
    assert_false(r.pass);
    assert_int_equal(r.cause, NB_CHECK_NOT_DETERMINISTIC);
    assert_true(mentions(r.detail, "at the same point"));
    assert_true(mentions(report(&r), "not deterministic"));
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* Bad input: a clear error, and the model as it was. */
static void test_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_layer *net = mlp(m, NULL, NB_F64, NB_ACT_TANH, &rng);
    nb_tensor *x = batch(g, NB_F64, 6, 5, 2);
    nb_model_check_result r;
    kept before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_check_model(NULL, m, x, NULL, &r), NB_ERR_NULL);
    assert_true(mentions(r.error.msg, "the network is NULL"));
    assert_string_equal(r.error.where, "nb_check_model");
    assert_false(r.pass);
    assert_int_equal(nb_check_model(net, NULL, x, NULL, &r), NB_ERR_NULL);
    assert_true(mentions(r.error.msg, "the model is NULL"));
    assert_int_equal(nb_check_model(net, m, NULL, NULL, &r), NB_ERR_NULL);
    assert_true(mentions(r.error.msg, "x is NULL"));
    nb_model_check_opts o = nb_model_check_defaults();
    o.check.atol = o.check.rtol = 0;
    assert_int_equal(nb_check_model(net, m, x, &o, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "atol or rtol > 0"));
    o = nb_model_check_defaults();
    o.check.eps = NAN;
    assert_int_equal(nb_check_model(net, m, x, &o, &r), NB_ERR_ARG);
    o = nb_model_check_defaults();
    o.max_entries = -1;
    assert_int_equal(nb_check_model(net, m, x, &o, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "max_entries is negative"));
    o = nb_model_check_defaults();
    o.n_defs = 1;
    assert_int_equal(nb_check_model(net, m, x, &o, &r), NB_ERR_NULL);
    assert_true(mentions(r.error.msg, "defs is NULL"));
    same_model(m, before, "after bad arguments");

    /* x of the wrong width, of the wrong dtype, empty, not finite */
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, batch(g, NB_F64, 6, 4, 1), NULL, &r), NB_ERR_SHAPE);
    assert_true(mentions(r.error.msg, "the network failed on x: ") && mentions(r.error.msg, "fc1"));
    assert_true(mentions(report(&r), "model check ERROR"));
    assert_int_equal(nb_check_model(net, m, batch(g, NB_F32, 6, 5, 1), NULL, &r), NB_ERR_DTYPE);
    assert_true(mentions(r.error.msg, "the network failed on x: "));
    nb_tensor *empty = nb_zeros(g, NB_F64, 2, (int64_t[]){0, 5});
    assert_int_equal(nb_check_model(net, m, empty, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "x is empty"));
    nb_tensor *bad = batch(g, NB_F64, 6, 5, 1);
    nb_tensor_set(bad, 7, NAN);
    assert_int_equal(nb_check_model(net, m, bad, NULL, &r), NB_ERR_NONFINITE);
    assert_true(mentions(r.error.msg, "not finite") && mentions(r.error.msg, "output["));
    same_model(m, before, "after bad inputs");

    /* no trainable parameter */
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        nb_tensor_set_requires_grad(t, false);
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "no trainable parameters"));
    same_model(m, before, "with nothing to check");
    nb_layer_free(net);
    nb_model_free(m);

    /* a network that fails on x, and one that fails at a moved point */
    m = nb_model_new();
    net = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_sequential_add(net, gate_new(&fragile_def, m, "frail", 5, NB_F64)), NB_OK);
    fill_model(m, 4);
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, NULL, &r), NB_ERR_ARG);
    assert_string_equal(r.error.where, "frail");
    assert_true(mentions(r.error.msg, "the network failed on x: frail: gain[0] must stay 0.5"));
    same_model(m, before, "after a forward that failed");
    nb_tensor_set(nb_model_get(m, "frail.gain"), 0, 0.5);
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "the network failed with frail.gain[0] moved"));
    same_model(m, before, "after a failure at a moved point");
    /* a step that vanishes next to the value it moves */
    o = nb_model_check_defaults();
    o.check.eps = 1e-30;
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, &o, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "step 1e-30 vanishes next to frail.gain[0] = 0.5 in f64"));
    same_model(m, before, "after a step that vanished");
    nb_layer_free(net);
    nb_model_free(m);

    /* an output of no element, and one whose size moves with a parameter */
    m = nb_model_new();
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_sequential_add(net, gate_new(&rows_def, m, "rows", 5, NB_F64)), NB_OK);
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "the network's output at x is empty"));
    same_model(m, before, "after an empty output");
    nb_tensor_set(nb_model_get(m, "rows.gain"), 0, 2.5 - 1e-9); /* a step up keeps 3 rows */
    before = keep(m);
    assert_int_equal(nb_check_model(net, m, x, NULL, &r), NB_ERR_ARG);
    assert_true(mentions(r.error.msg, "the network's output changed size with rows.gain[0] moved "
                                      "(10 elements, then 15)"));
    same_model(m, before, "after an output that changed size");
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

/* A derivative rule that records an error fails its mode, and the verdict
 * says which rule (on the twin of an f32 network too, where the network
 * fails alike). */
static void test_rule_errors(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    static const struct {
        int op;
        nb_dtype dt;
        bool reverse_ok;
        const char *detail;
    } cases[] = {
        {FAILING_VJP, NB_F64, false, "reverse mode failed: twice_bad_vjp: this rule always fails"},
        {FAILING_JVP, NB_F64, true, "forward mode failed: twice_bad_jvp: this rule always fails"},
        {FAILING_VJP, NB_F32, false, "reverse mode failed: twice_bad_vjp: this rule always fails"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_rng rng;
        nb_rng_seed(&rng, 6);
        nb_model *m = nb_model_new();
        nb_layer *net = with_user_layer(m, &ruled_def, cases[k].dt, &rng);
        ((ruled *)nb_layer_state(nb_layer_find(net, "user")))->op = user_op(cases[k].op);
        nb_tensor *x = batch(g, cases[k].dt, 4, 5, 7);
        kept before = keep(m);
        nb_model_check_result r = check(net, m, x, NULL);
        same_model(m, before, "after a rule failed");
        assert_false(r.pass);
        assert_int_equal(r.cause, NB_CHECK_RULE_ERROR);
        assert_int_equal(r.reverse_ok, cases[k].reverse_ok);
        assert_int_equal(r.forward_ok, !cases[k].reverse_ok);
        assert_string_equal(r.detail, cases[k].detail);
        assert_true(mentions(report(&r), cases[k].detail));
        nb_layer_free(net);
        nb_model_free(m);
    }
    nb_graph_free(g);
}

/* Every allocation of a check failing in turn: NB_ERR_NOMEM, nothing
 * leaked, the model as it was; then the check passes. */
static void test_out_of_memory(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_layer *net = mlp(m, "net", NB_F32, NB_ACT_TANH, &rng);
    nb_tensor *x = batch(g, NB_F32, 3, 5, 2);
    nb_model_check_opts o = nb_model_check_defaults();
    o.max_entries = 2;
    o.alloc = tc_counting_alloc;
    long failures = 0;
    for (long k = 1;; k++) {
        tc_counting c = {.fail_at = k};
        o.alloc_ud = &c;
        kept before = keep(m);
        nb_model_check_result r;
        nb_status st = nb_check_model(net, m, x, &o, &r);
        same_model(m, before, "after an allocation failed");
        assert_int_equal(c.live, 0);
        if (st == NB_OK) {
            assert_true(r.pass && r.twin);
            assert_true(c.calls < k); /* every allocation was reached */
            break;
        }
        if (st != NB_ERR_NOMEM)
            fail_msg("allocation %ld failing: %s", k, r.error.msg);
        assert_true(mentions(r.error.msg, "out of memory"));
        failures++;
    }
    assert_true(failures > 5);
    nb_layer_free(net);
    nb_model_free(m);
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_library_layers),
        cmocka_unit_test(test_user_layer),
        cmocka_unit_test(test_twin_fallbacks),
        cmocka_unit_test(test_wrong_layer),
        cmocka_unit_test(test_wrong_tangent),
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_zero_jacobian),
        cmocka_unit_test(test_kinks),
        cmocka_unit_test(test_max_entries),
        cmocka_unit_test(test_not_deterministic),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
