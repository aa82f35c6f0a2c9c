/* The layer protocol: a program's own layer (nb_layer_def) works as the
 * library's do, in sequences, the trainer, evaluation, descriptions and
 * checkpoints; a layer that misbehaves is named; the settings text and
 * the library's definitions. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nabla/ckpt.h"

/* ------------------------------------------------------- a user's layer */

/* y = x * scale + shift over the last axis, [features] each. */
typedef struct scale_shift {
    int64_t features;
    nb_tensor *scale, *shift;
} scale_shift;

static nb_tensor *ss_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    scale_shift *s = nb_layer_state(l);
    const int64_t *shape = nb_tensor_shape(x);
    if (nb_tensor_rank(x) != 2 || shape[1] != s->features) {
        nb_graph_fail(g, NB_ERR_SHAPE, nb_layer_name(l), "input has %lld features, not %lld",
                      (long long)(nb_tensor_rank(x) ? shape[nb_tensor_rank(x) - 1] : 0),
                      (long long)s->features);
        return NULL;
    }
    return nb_add(g, nb_mul(g, x, s->scale), s->shift);
}

static int64_t ss_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const scale_shift *)nb_layer_state(l))->features;
}

static nb_status ss_describe(const nb_layer *l, char *out, size_t cap)
{
    const scale_shift *s = nb_layer_state(l);
    return nb_layer_setting_put(out, cap, "features", "%lld", (long long)s->features);
}

/* The parameters of a scale_shift layer of @p n features, in @p m. */
static nb_status ss_init(nb_layer *l, nb_model *m, int64_t n, nb_dtype dt)
{
    scale_shift *s = nb_layer_state(l);
    nb_status st = nb_layer_add_param(l, m, "scale", dt, 1, &n, &s->scale);
    if (st == NB_OK)
        st = nb_layer_add_param(l, m, "shift", dt, 1, &n, &s->shift);
    if (st != NB_OK)
        return st;
    for (int64_t i = 0; i < n; i++)
        nb_tensor_set(s->scale, i, 1);
    s->features = n;
    return NB_OK;
}

static nb_status ss_build(nb_layer *l, nb_model *m, const char *settings, const nb_layer_opts *o,
                          nb_error *err)
{
    int64_t n;
    if (nb_layer_setting_get_i64(settings, "features", &n) != NB_OK || n < 1)
        return nb_error_set(err, NB_ERR_PARSE, "scale_shift", "features= is not a count");
    return ss_init(l, m, n, o->dtype);
}

static const nb_layer_def scale_shift_def = {
    .kind = "scale_shift",
    .state_size = sizeof(scale_shift),
    .forward = ss_forward,
    .out_width = ss_width,
    .describe = ss_describe,
    .build = ss_build,
};

static nb_layer *ss_new(nb_model *m, const char *name, int64_t n, nb_dtype dt)
{
    nb_layer *l = NULL;
    assert_int_equal(nb_layer_new(&scale_shift_def, name, NULL, &l), NB_OK);
    assert_int_equal(ss_init(l, m, n, dt), NB_OK);
    return l;
}

/* A digits network with the user's layer between two linear ones. */
static nb_layer *digits_net(nb_model *m, nb_rng *rng)
{
    nb_layer_opts o = {.rng = rng, .init = NB_INIT_HE_UNIFORM};
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc1", 64, 24, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_sequential_add(net, ss_new(m, "ss", 24, NB_F32)), NB_OK);
    assert_int_equal(nb_act_layer_new(m, "act", NB_ACT_RELU, NULL, 24, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_linear_new(m, "fc2", 24, 10, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    return net;
}

/* The user's layer trains with the library's trainer (its parameters
 * move), evaluates, describes itself, is saved in a checkpoint, and a
 * network built again from the description with its definition gives the
 * same outputs; without the definition the build names the kind. */
static void test_user_layer_everywhere(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    nb_dataset *all, *train, *test;
    nb_data_opts d = {0};
    assert_int_equal(nb_dataset_digits(&d, &all), NB_OK);
    assert_int_equal(nb_dataset_scale(all, 16), NB_OK);
    assert_int_equal(nb_dataset_split(all, NULL, 1500, 0, &train, NULL, &test), NB_OK);
    nb_model *m = nb_model_new();
    nb_layer *net = digits_net(m, &rng);
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(&oo);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(train, 32, true, false, &ld), NB_OK);
    nb_train_opts to = nb_train_defaults();
    to.epochs = 3;
    to.rng = &rng;
    nb_trainer *t = NULL;
    assert_int_equal(nb_trainer_new(m, net, opt, &to, &t), NB_OK);
    if (nb_trainer_fit(t, ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(t)->msg);
    double acc = 0;
    assert_int_equal(nb_trainer_evaluate(t, test, &acc, NULL), NB_OK);
    assert_true(acc > 0.85);
    nb_tensor *scale = nb_model_get(m, "ss.scale");
    double moved = 0;
    for (int64_t i = 0; i < 24; i++)
        moved += fabs(nb_tensor_get(scale, i) - 1);
    assert_true(moved > 0.01); /* gradients reached the user's parameters */

    /* described, saved, built again with the definition, loaded */
    static char desc[NB_META_MAX + 1];
    nb_error e;
    assert_int_equal(nb_layer_describe(net, desc, sizeof desc, &e), NB_OK);
    assert_non_null(strstr(desc, "\nlayer.2=scale_shift name=ss features=24\n"));
    char path[] = "/tmp/nabla-layerdef-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    nb_ckpt_opts co = {.meta = desc};
    assert_int_equal(nb_model_save(m, opt, path, &co, &e), NB_OK);

    static char meta[NB_META_MAX + 1];
    assert_int_equal(nb_ckpt_read_meta(path, meta, sizeof meta, &e), NB_OK);
    nb_model *m2 = nb_model_new();
    nb_layer *net2 = NULL;
    nb_layer_opts lo = {.init = NB_INIT_ZEROS};
    /* without the definition: the kind is named */
    assert_int_equal(nb_layer_from_description(m2, NULL, meta, &lo, &net2, &e), NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "layer 'ss' is of kind 'scale_shift'"));
    assert_string_equal(e.name, "ss");
    nb_model_free(m2);
    m2 = nb_model_new();
    const nb_layer_def *defs[] = {&scale_shift_def};
    lo.defs = defs;
    lo.n_defs = 1;
    assert_int_equal(nb_layer_from_description(m2, NULL, meta, &lo, &net2, &e), NB_OK);
    nb_optim *opt2 = nb_optim_new(&oo);
    assert_int_equal(nb_model_load(m2, opt2, path, NULL, &e), NB_OK);
    nb_graph *g = nb_graph_new();
    double acc2 = 0;
    assert_int_equal(nb_evaluate(g, net2, test, 100, &acc2, NULL), NB_OK);
    assert_true(acc2 == acc);
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F32, 2, (int64_t[]){5, 64}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, net, x, false), *y2 = nb_layer_forward(g, net2, x, false);
    assert_non_null(y2);
    assert_memory_equal(nb_tensor_data(y), nb_tensor_data(y2), 50 * sizeof(float));
    char again[4096];
    assert_int_equal(nb_layer_describe(net2, again, sizeof again, &e), NB_OK);
    assert_string_equal(again, desc);

    /* the user's layer finds a bad input itself: its sentence, named */
    nb_graph_reset(g);
    nb_tensor *narrow = nb_zeros(g, NB_F32, 2, (int64_t[]){2, 5});
    assert_null(nb_layer_forward(g, nb_layer_find(net2, "ss"), narrow, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_string_equal(nb_graph_error(g)->where, "ss");
    assert_string_equal(nb_graph_error(g)->msg, "ss: input has 5 features, not 24");

    unlink(path);
    nb_graph_free(g);
    nb_layer_free(net2);
    nb_model_free(m2);
    nb_optim_free(opt2);
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
}

/* ------------------------------------------------- layers that misbehave */

static nb_tensor *null_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)g, (void)l, (void)x, (void)training;
    return NULL;
}

static nb_tensor *same_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)g, (void)l, (void)training;
    return x;
}

static int64_t plus_one(const nb_layer *l, int64_t w)
{
    (void)l;
    return w + 1;
}

/* A layer that returns nothing and records nothing, or a tensor other than
 * the width it says, is an error naming the layer, its kind and the
 * shapes; a sequence stops at it; the model does not change. */
static void test_misbehaving_layers(void **state)
{
    (void)state;
    const nb_layer_def nothing = {.kind = "nothing", .forward = null_forward};
    const nb_layer_def wrong = {.kind = "wrong-width", .forward = same_forward,
                                .out_width = plus_one};
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_ones(g, NB_F64, 2, (int64_t[]){3, 4});
    nb_layer *l = NULL;
    assert_int_equal(nb_layer_new(&nothing, "void", NULL, &l), NB_OK);
    assert_null(nb_layer_forward(g, l, x, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    assert_string_equal(nb_graph_error(g)->msg,
                        "void: the nothing layer returned no tensor for input [3,4] and recorded "
                        "no error");
    assert_string_equal(nb_graph_error(g)->name, "void");
    nb_layer_free(l);

    nb_graph_clear_error(g);
    nb_model *m = nb_model_new();
    nb_layer *seq = NULL, *fc = NULL;
    assert_int_equal(nb_sequential_new("net", &seq), NB_OK);
    assert_int_equal(nb_layer_new(&wrong, "odd", NULL, &l), NB_OK);
    assert_int_equal(nb_sequential_add(seq, l), NB_OK);
    nb_layer_opts o = {.dtype = NB_F64, .init = NB_INIT_ZEROS};
    assert_int_equal(nb_linear_new(m, "fc", 5, 2, &o, &fc), NB_OK);
    assert_int_equal(nb_sequential_add(seq, fc), NB_OK);
    assert_null(nb_layer_forward(g, seq, x, false));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_string_equal(nb_graph_error(g)->msg,
                        "odd: the wrong-width layer returned [3,4] for input [3,4]; its width is 5");
    assert_int_equal(nb_model_count(m), 2);
    assert_true(nb_tensor_get(nb_model_get(m, "fc.weight"), 0) == 0);

    /* an error recorded before a layer runs stays the first */
    nb_graph_fail(g, NB_ERR_ARG, "mine", "first");
    assert_string_equal(nb_graph_error(g)->msg, "odd: the wrong-width layer returned [3,4] for "
                                                "input [3,4]; its width is 5");
    nb_graph_clear_error(g);
    assert_int_equal(nb_graph_fail(g, NB_ERR_ARG, "mine", "value %d", 7), NB_ERR_ARG);
    assert_string_equal(nb_graph_error(g)->msg, "mine: value 7");
    assert_string_equal(nb_graph_error(g)->where, "mine");
    assert_int_equal(nb_graph_fail(NULL, NB_ERR_SHAPE, "x", "y"), NB_ERR_SHAPE);

    /* NULLs */
    nb_graph_clear_error(g);
    assert_null(nb_layer_forward(g, NULL, x, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    assert_null(nb_layer_forward(NULL, seq, x, true));
    assert_null(nb_layer_forward(g, seq, NULL, true));
    nb_layer_free(seq);
    nb_model_free(m);
    nb_graph_free(g);
}

/* nb_layer_new, nb_layer_add_param and nb_layer_add_child refuse what
 * they cannot take, and leave the model as it was. */
static void test_protocol_errors(void **state)
{
    (void)state;
    nb_layer *l = (nb_layer *)&l;
    const nb_layer_def no_forward = {.kind = "k"};
    const nb_layer_def bad_kind = {.kind = "a b", .forward = same_forward};
    const nb_layer_def no_kind = {.forward = same_forward};
    const nb_layer_def ok = {.kind = "ok", .forward = same_forward, .state_size = 16};
    const nb_layer_def huge = {.kind = "huge", .forward = same_forward, .state_size = (size_t)1 << 40};
    assert_int_equal(nb_layer_new(NULL, "x", NULL, &l), NB_ERR_NULL);
    assert_null(l);
    assert_int_equal(nb_layer_new(&no_forward, "x", NULL, &l), NB_ERR_NULL);
    assert_int_equal(nb_layer_new(&no_kind, "x", NULL, &l), NB_ERR_NULL);
    assert_int_equal(nb_layer_new(&bad_kind, "x", NULL, &l), NB_ERR_ARG);
    assert_int_equal(nb_layer_new(&huge, "x", NULL, &l), NB_ERR_ARG);
    assert_int_equal(nb_layer_new(&ok, NULL, NULL, &l), NB_ERR_NULL);
    assert_int_equal(nb_layer_new(&ok, "", NULL, &l), NB_ERR_ARG);
    assert_int_equal(nb_layer_new(&ok, "a b", NULL, &l), NB_ERR_ARG);
    assert_int_equal(nb_layer_new(&ok, "a=b", NULL, &l), NB_ERR_ARG);
    char long_name[200];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(nb_layer_new(&ok, long_name, NULL, &l), NB_ERR_ARG);
    assert_int_equal(nb_layer_new(&ok, "x", NULL, NULL), NB_ERR_NULL);

    nb_rng rng;
    nb_layer_opts o = {.rng = &rng};
    assert_int_equal(nb_layer_new(&ok, "blk", &o, &l), NB_OK);
    assert_ptr_equal(nb_layer_rng(l), &rng);
    assert_ptr_equal(nb_layer_get_def(l), &ok);
    assert_int_equal(nb_layer_get_kind(l), NB_LAYER_OTHER);
    unsigned char *st = nb_layer_state(l);
    for (int i = 0; i < 16; i++)
        assert_int_equal(st[i], 0);
    nb_layer_info info;
    assert_int_equal(nb_layer_get_info(l, &info), NB_OK);
    assert_string_equal(info.kind_name, "ok");
    assert_int_equal(info.kind, NB_LAYER_OTHER);

    nb_model *m = nb_model_new();
    nb_tensor *t = NULL;
    int64_t two = 2, neg = -1;
    assert_int_equal(nb_layer_add_param(l, m, "w", NB_F64, 1, &two, &t), NB_OK);
    assert_string_equal(nb_tensor_name(t), "blk.w");
    assert_int_equal(nb_layer_add_param(l, m, "w", NB_F64, 1, &two, &t), NB_ERR_EXISTS);
    assert_null(t);
    assert_int_equal(nb_layer_add_param(l, m, "v", (nb_dtype)9, 1, &two, &t), NB_ERR_DTYPE);
    assert_int_equal(nb_layer_add_param(l, m, "a b", NB_F64, 1, &two, &t), NB_ERR_ARG);
    assert_int_equal(nb_layer_add_param(l, m, "", NB_F64, 1, &two, &t), NB_ERR_ARG);
    assert_int_equal(nb_layer_add_param(l, m, "v", NB_F64, 1, &neg, &t), NB_ERR_ARG);
    assert_int_equal(nb_layer_add_param(l, m, "v", NB_F64, NB_MAX_RANK + 1, &two, &t), NB_ERR_ARG);
    assert_int_equal(nb_layer_add_param(l, m, "v", NB_F64, 1, NULL, &t), NB_ERR_NULL);
    assert_int_equal(nb_layer_add_param(NULL, m, "v", NB_F64, 1, &two, &t), NB_ERR_NULL);
    assert_int_equal(nb_layer_add_param(l, NULL, "v", NB_F64, 1, &two, &t), NB_ERR_NULL);
    assert_int_equal(nb_layer_add_param(l, m, long_name, NB_F64, 1, &two, &t), NB_ERR_ARG);
    assert_int_equal(nb_model_count(m), 1);
    assert_int_equal(nb_layer_param_count(l), 1);
    assert_ptr_equal(nb_layer_param(l, 0), nb_model_get(m, "blk.w"));
    assert_null(nb_layer_param(l, 1));
    assert_null(nb_layer_param(l, -1));
    assert_int_equal(nb_layer_param_count(NULL), 0);

    /* sublayers: owned, found, freed with it */
    nb_layer *child = NULL;
    assert_int_equal(nb_layer_new(&ok, "child", NULL, &child), NB_OK);
    assert_int_equal(nb_layer_add_child(l, child), NB_OK);
    assert_int_equal(nb_layer_count(l), 1);
    assert_ptr_equal(nb_layer_at(l, 0), child);
    assert_ptr_equal(nb_layer_find(l, "child"), child);
    assert_int_equal(nb_layer_add_child(l, l), NB_ERR_ARG);
    assert_int_equal(nb_layer_add_child(NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_layer_new(&ok, "lost", NULL, &child), NB_OK);
    assert_int_equal(nb_layer_add_child(NULL, child), NB_ERR_NULL); /* freed */
    /* only a sequence takes layers through nb_sequential_add */
    assert_int_equal(nb_layer_new(&ok, "other", NULL, &child), NB_OK);
    assert_int_equal(nb_sequential_add(l, child), NB_ERR_ARG); /* freed */
    nb_layer_free(l);

    /* every allocation of a layer failing: NB_ERR_NOMEM, nothing leaked */
    for (long k = 1; k <= 2; k++) {
        tc_counting c = {0};
        nb_model *cm = nb_model_new_alloc(tc_counting_alloc, &c);
        assert_non_null(cm);
        nb_layer *fc = NULL;
        nb_layer_opts lo = {.init = NB_INIT_ZEROS};
        c.fail_at = c.calls + k;
        assert_int_equal(nb_linear_new(cm, "fc", 2, 2, &lo, &fc), NB_ERR_NOMEM);
        nb_model_free(cm);
        assert_int_equal(c.live, 0);
    }
    nb_model_free(m);
}

/* ------------------------------------------------------------ settings */

static void test_settings_text(void **state)
{
    (void)state;
    char s[64] = "";
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "in", "%d", 784), NB_OK);
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "eps", "%.17g", 1e-5), NB_OK);
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "act", "%s", "relu"), NB_OK);
    assert_string_equal(s, "in=784 eps=1.0000000000000001e-05 act=relu");
    /* refused, text unchanged: bad keys, values with a space or '=', too long */
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "a b", "1"), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "", "1"), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "k", "%s", "x y"), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "k", "%s", "x=y"), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_put(s, sizeof s, "long", "%040d", 1), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_put(s, 44, "k", "1"), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_put(NULL, 8, "k", "1"), NB_ERR_NULL);
    assert_string_equal(s, "in=784 eps=1.0000000000000001e-05 act=relu");

    char v[16];
    int64_t i;
    double f;
    assert_int_equal(nb_layer_setting_get(s, "act", v, sizeof v), NB_OK);
    assert_string_equal(v, "relu");
    assert_int_equal(nb_layer_setting_get(s, "ac", v, sizeof v), NB_ERR_NOTFOUND);
    assert_int_equal(nb_layer_setting_get(s, "act", v, 4), NB_ERR_ARG);
    assert_int_equal(nb_layer_setting_get(NULL, "act", v, 4), NB_ERR_NULL);
    assert_int_equal(nb_layer_setting_get_i64(s, "in", &i), NB_OK);
    assert_int_equal(i, 784);
    assert_int_equal(nb_layer_setting_get_f64(s, "eps", &f), NB_OK);
    assert_true(f == 1e-5);
    assert_int_equal(nb_layer_setting_get_i64(s, "act", &i), NB_ERR_PARSE);
    assert_int_equal(nb_layer_setting_get_i64(s, "eps", &i), NB_ERR_PARSE);
    assert_int_equal(nb_layer_setting_get_f64(s, "act", &f), NB_ERR_PARSE);
    assert_int_equal(nb_layer_setting_get_i64(s, "none", &i), NB_ERR_NOTFOUND);
    assert_int_equal(nb_layer_setting_get_f64(s, "none", &f), NB_ERR_NOTFOUND);
    assert_int_equal(nb_layer_setting_get_i64(s, "in", NULL), NB_ERR_NULL);
    assert_int_equal(nb_layer_setting_get_f64(s, "in", NULL), NB_ERR_NULL);
    assert_int_equal(nb_layer_setting_get_f64("x=inf", "x", &f), NB_ERR_PARSE);
    assert_int_equal(nb_layer_setting_get_i64("x=99999999999999999999", "x", &i), NB_ERR_PARSE);
    assert_int_equal(nb_layer_setting_get_i64("x=", "x", &i), NB_ERR_PARSE);
    char longv[80] = "x=";
    memset(longv + 2, '7', 70);
    assert_int_equal(nb_layer_setting_get_i64(longv, "x", &i), NB_ERR_PARSE);
}

/* The library's kinds by name; a linear layer's parameters in its list. */
static void test_builtin_defs(void **state)
{
    (void)state;
    static const char *const kinds[] = {"linear",  "maxout",   "activation", "dropout",
                                        "batch_norm", "sequential", "reshape", "rnn",
                                        "gru",     "lstm",     "rnn_cell",   "gru_cell",
                                        "lstm_cell", "gcn",    "layer_norm", "embedding"};
    for (int i = 0; i < 16; i++) {
        const nb_layer_def *d = nb_layer_builtin(kinds[i]);
        assert_non_null(d);
        assert_string_equal(d->kind, kinds[i]);
        assert_non_null(d->forward);
        assert_non_null(d->describe);
        assert_non_null(d->build);
    }
    assert_null(nb_layer_builtin("lstm?"));
    assert_null(nb_layer_builtin(NULL));
    nb_model *m = nb_model_new();
    nb_layer *l = NULL;
    nb_layer_opts o = {.init = NB_INIT_ZEROS};
    assert_int_equal(nb_linear_new(m, "fc", 3, 2, &o, &l), NB_OK);
    assert_ptr_equal(nb_layer_get_def(l), nb_layer_builtin("linear"));
    assert_int_equal(nb_layer_param_count(l), 2);
    assert_ptr_equal(nb_layer_param(l, 0), nb_model_get(m, "fc.weight"));
    assert_ptr_equal(nb_layer_param(l, 1), nb_model_get(m, "fc.bias"));
    nb_layer_free(l);
    nb_model_free(m);
}

/* ------------------------------------------------- descriptions, built */

/* A description's bound on bytes is kept before anything is allocated;
 * its form is checked (layers named, kinds spelled, nesting); every
 * allocation of a build failing in turn gives NB_ERR_NOMEM and leaks
 * nothing. */
static void test_layer_descriptions(void **state)
{
    (void)state;
    const char *big = "arch=layers\nlayers=1\ndtype=f64\n"
                      "layer.1=linear name=fc in=100000 out=100000 bias=1";
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_error e;
    int64_t bytes = 0;
    assert_int_equal(nb_layer_description_check(big, &bytes, &e), NB_OK);
    assert_int_equal(bytes, -1);
    nb_layer_opts lo = {.init = NB_INIT_ZEROS, .max_bytes = 1 << 20};
    assert_int_equal(nb_layer_from_description(m, NULL, big, &lo, &net, &e), NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "layer 'fc' (linear): its parameters could not be added"));
    assert_int_equal(nb_model_count(m), 0);

    const struct {
        const char *desc, *name, *says;
        nb_status st;
    } bad[] = {
        {"arch=layers\ndtype=f32", "layers", "needs layers=", NB_ERR_PARSE},
        {"arch=layers\nlayers=1001\ndtype=f32", "layers", "needs layers=", NB_ERR_PARSE},
        {"arch=layers\nlayers=1", "dtype", "dtype=f32 or dtype=f64", NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f16", "dtype", "dtype=f32 or dtype=f64", NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f32", "layer.1", "has no layer.1=", NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f32\nlayer.1=", "layer.1", "kind of layer", NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f32\nlayer.1=li$ear name=a", "layer.1", "not a kind",
         NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f32\nlayer.1=linear in=2", "layer.1", "no name=",
         NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f32\nlayer.1=sequential name=s", "layer.1",
         "without layers=", NB_ERR_PARSE},
        {"arch=layers\nlayers=1\ndtype=f32\nlayer.1=sequential name=s layers=1", "layer.1.1",
         "has no layer.1.1=", NB_ERR_PARSE},
        {"arch=layers\nlayers=2\nlone=1\ndtype=f32\nlayer.1=dropout name=d p=0\n"
         "layer.2=dropout name=e p=0",
         "lone", "lone= is 1", NB_ERR_PARSE},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        nb_status st = nb_layer_description_check(bad[k].desc, &bytes, &e);
        if (st != bad[k].st || strcmp(e.name, bad[k].name) || !strstr(e.msg, bad[k].says))
            fail_msg("case %zu: %s '%s' '%s'", k, nb_status_str(st), e.name, e.msg);
        assert_int_equal(nb_layer_from_description(m, NULL, bad[k].desc, &lo, &net, &e),
                         bad[k].st);
        assert_string_equal(e.where, "nb_layer_from_description");
    }
    /* sequences nested 17 deep */
    char deep[4096] = "arch=layers\nlayers=1\ndtype=f32\n";
    char key[256] = "layer";
    for (int d = 1; d <= 17; d++) {
        strcat(key, ".1");
        snprintf(deep + strlen(deep), sizeof deep - strlen(deep), "%s=sequential name=s%d layers=1\n",
                 key, d);
    }
    assert_int_equal(nb_layer_description_check(deep, &bytes, &e), NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "more than 16 deep"));
    /* the kinds' own settings, read when built */
    const struct {
        const char *layer, *says;
    } settings[] = {
        {"linear name=fc in=0 out=2 bias=1", "in= is not valid"},
        {"linear name=fc out=2 bias=1", "in= is missing"},
        {"linear name=fc in=2 out=2 bias=2", "bias= is not valid"},
        {"maxout name=fc in=2 out=2 bias=1", "pieces= is missing"},
        {"activation name=a act=sine", "act= is missing or not one of"},
        {"activation name=a act=prelu alpha=0.25", "features= is missing"},
        {"activation name=a act=rrelu lower=0.5 upper=0.25", "the settings of rrelu are not valid"},
        {"dropout name=d p=1", "p= is not valid"},
        {"batch_norm name=b features=2 eps=0 momentum=0.1", "eps= is not valid"},
        {"batch_norm name=b features=2 eps=1e-5 momentum=2", "momentum= is not valid"},
    };
    for (size_t k = 0; k < sizeof settings / sizeof *settings; k++) {
        char desc[256];
        snprintf(desc, sizeof desc, "arch=layers\nlayers=1\ndtype=f32\nlayer.1=%s",
                 settings[k].layer);
        nb_model *mk = nb_model_new();
        nb_status st = nb_layer_from_description(mk, NULL, desc, &lo, &net, &e);
        if (st == NB_OK || !strstr(e.msg, settings[k].says))
            fail_msg("case %zu: %s '%s'", k, nb_status_str(st), e.msg);
        assert_null(net);
        nb_model_free(mk);
    }
    /* a dropout layer built without a generator */
    assert_int_equal(nb_layer_from_description(
                         m, NULL, "arch=layers\nlayers=1\ndtype=f32\nlayer.1=dropout name=d p=0.5",
                         &lo, &net, &e),
                     NB_ERR_NULL);
    assert_non_null(strstr(e.msg, "needs a generator"));
    /* a random initialisation without one */
    nb_layer_opts rnd = {.init = NB_INIT_HE_UNIFORM};
    assert_int_equal(nb_layer_from_description(
                         m, NULL, "arch=layers\nlayers=1\ndtype=f32\nlayer.1=dropout name=d p=0",
                         &rnd, &net, &e),
                     NB_ERR_NULL);

    /* every allocation of a layers build failing in turn */
    const char *desc = "arch=layers\nlayers=2\ndtype=f32\n"
                       "layer.1=linear name=fc in=3 out=4 bias=1\n"
                       "layer.2=sequential name=inner layers=2\n"
                       "layer.2.1=batch_norm name=bn features=4 eps=1e-05 momentum=0.1\n"
                       "layer.2.2=activation name=p act=prelu alpha=0.25 features=4";
    tc_counting probe = {0};
    nb_model *pm = nb_model_new_alloc(tc_counting_alloc, &probe);
    assert_int_equal(nb_layer_from_description(pm, "pre", desc, NULL, &net, &e), NB_OK);
    assert_non_null(nb_model_get(pm, "pre.bn.running_var"));
    char again[1024];
    assert_int_equal(nb_layer_describe(net, again, sizeof again, &e), NB_OK);
    assert_non_null(strstr(again, "layer.2.2=activation name=pre.p act=prelu"));
    nb_layer_free(net);
    nb_model_free(pm);
    assert_int_equal(probe.live, 0);
    for (long n = 1; n <= probe.calls; n++) {
        tc_counting c = {.fail_at = n};
        nb_model *cm = nb_model_new_alloc(tc_counting_alloc, &c);
        nb_status st =
            cm ? nb_layer_from_description(cm, "pre", desc, NULL, &net, &e) : NB_ERR_NOMEM;
        if (st != NB_ERR_NOMEM)
            fail_msg("allocation %ld of %ld failed but the result was %s", n, probe.calls,
                     nb_status_str(st));
        nb_model_free(cm);
        assert_int_equal(c.live, 0);
    }
    nb_model_free(m);
}

/* Layers a description cannot hold: a kind without describe or build, a
 * name with a space, settings that use its own keys. */
static nb_status claims_name(const nb_layer *l, char *out, size_t cap)
{
    (void)l;
    return nb_layer_setting_put(out, cap, "name", "x");
}

static nb_status no_build(nb_layer *l, nb_model *m, const char *settings, const nb_layer_opts *o,
                          nb_error *err)
{
    (void)l, (void)m, (void)settings, (void)o, (void)err;
    return NB_OK;
}

static void test_undescribable(void **state)
{
    (void)state;
    const nb_layer_def silent = {.kind = "silent", .forward = same_forward};
    const nb_layer_def claims = {
        .kind = "claims", .forward = same_forward, .describe = claims_name, .build = no_build};
    const nb_layer_def *defs[] = {&silent, &claims};
    const char *says[] = {"whose definition cannot describe it", "name= or layers="};
    for (int k = 0; k < 2; k++) {
        nb_layer *seq = NULL, *l = NULL;
        assert_int_equal(nb_sequential_new("", &seq), NB_OK);
        assert_int_equal(nb_layer_new(defs[k], "it", NULL, &l), NB_OK);
        assert_int_equal(nb_sequential_add(seq, l), NB_OK);
        char out[256] = "junk";
        nb_error e;
        assert_int_equal(nb_layer_describe(seq, out, sizeof out, &e), NB_ERR_ARG);
        assert_non_null(strstr(e.msg, says[k]));
        assert_string_equal(e.name, "it");
        assert_string_equal(out, "");
        nb_layer_free(seq);
    }
    /* a sequence's own name may hold what a layer's may not */
    nb_layer *seq = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("outer", &seq), NB_OK);
    assert_int_equal(nb_sequential_new("in ner", &l), NB_ERR_ARG);
    assert_int_equal(nb_layer_new(&claims, "it", NULL, &l), NB_OK);
    assert_int_equal(nb_sequential_add(seq, l), NB_OK);
    /* a kind the library does not know cannot be built without its definition */
    const char *desc = "arch=layers\nlayers=1\ndtype=f32\nlayer.1=claims name=it";
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_error e;
    nb_layer_opts lo = {.init = NB_INIT_ZEROS, .defs = defs, .n_defs = 2};
    assert_int_equal(nb_layer_from_description(m, NULL, desc, &lo, &net, &e), NB_OK);
    assert_ptr_equal(nb_layer_get_def(nb_layer_at(net, 0)), &claims);
    nb_layer_free(net);
    const nb_layer_def *only_silent[] = {&silent};
    lo.defs = only_silent;
    lo.n_defs = 1;
    assert_int_equal(
        nb_layer_from_description(
            m, NULL, "arch=layers\nlayers=1\ndtype=f32\nlayer.1=silent name=it", &lo, &net, &e),
        NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "cannot be built from a description (no build)"));
    nb_model_free(m);
    nb_layer_free(seq);
}

/* A reshape layer: each sample's elements in the new shape, described as
 * "shape=AxB"; a sample of another size is named. */
static void test_reshape_layer(void **state)
{
    (void)state;
    nb_layer *l = NULL;
    assert_int_equal(nb_reshape_layer_new("rows", 2, (const int64_t[]){2, 3}, &l), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_ones(g, NB_F32, 2, (int64_t[]){4, 6});
    nb_tensor *y = nb_layer_forward(g, l, x, false);
    assert_non_null(y);
    assert_int_equal(nb_tensor_rank(y), 3);
    assert_memory_equal(nb_tensor_shape(y), ((int64_t[]){4, 2, 3}), 3 * sizeof(int64_t));
    assert_null(nb_layer_forward(g, l, nb_ones(g, NB_F32, 2, (int64_t[]){4, 5}), false));
    assert_string_equal(nb_graph_error(g)->msg,
                        "rows: input [4,5] does not hold 6 elements per sample");
    nb_layer *seq = NULL;
    assert_int_equal(nb_sequential_new("", &seq), NB_OK);
    assert_int_equal(nb_sequential_add(seq, l), NB_OK);
    char desc[256];
    nb_error e;
    assert_int_equal(nb_layer_describe(seq, desc, sizeof desc, &e), NB_OK);
    assert_non_null(strstr(desc, "layer.1=reshape name=rows shape=2x3"));
    nb_model *m = nb_model_new();
    nb_layer *back = NULL;
    assert_int_equal(nb_layer_from_description(m, NULL, desc, NULL, &back, &e), NB_OK);
    char again[256];
    assert_int_equal(nb_layer_describe(back, again, sizeof again, &e), NB_OK);
    assert_string_equal(desc, again);
    nb_layer_free(back);
    const char *bad[] = {"shape=", "shape=2x", "shape=0x3", "shape=2y3", "shape=x3",
                         "shape=1x1x1x1x1x1x1x1x1", "size=2x3"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char d[256];
        snprintf(d, sizeof d, "arch=layers\nlayers=1\ndtype=f32\nlayer.1=reshape name=r %s",
                 bad[k]);
        if (nb_layer_from_description(m, NULL, d, NULL, &back, &e) != NB_ERR_ARG)
            fail_msg("'%s' built", bad[k]);
        assert_non_null(strstr(e.msg, "shape= is missing or not sizes like 28x28"));
    }
    assert_int_equal(nb_reshape_layer_new("r", 0, (const int64_t[]){2}, &l), NB_ERR_ARG);
    assert_int_equal(nb_reshape_layer_new("r", 1, (const int64_t[]){0}, &l), NB_ERR_ARG);
    assert_int_equal(nb_reshape_layer_new("r", 1, NULL, &l), NB_ERR_NULL);
    assert_int_equal(nb_reshape_layer_new(NULL, 1, (const int64_t[]){2}, &l), NB_ERR_NULL);
    assert_int_equal(nb_reshape_layer_new("r", NB_MAX_RANK, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1}, &l),
                     NB_ERR_ARG);
    nb_model_free(m);
    nb_layer_free(seq);
    nb_graph_free(g);
}

/* Every new kind of layer in one network trained by nb_trainer, all
 * allocations through one counting hook: after the first epoch (the
 * graph's arena grown, the optimizer's state made) none more. The digits'
 * pixels (whole numbers 0..16) are indices into an embedding, each image
 * 64 steps of 4 values through layer norm, an LSTM, the user's layer and
 * a linear output. */
typedef struct counts {
    tc_counting *c;
    long at[8];
    int n;
} counts;

static bool count_epoch(void *ud, const nb_epoch_report *r)
{
    (void)r;
    counts *k = ud;
    k->at[k->n++] = k->c->calls;
    return true;
}

static void test_no_alloc_after_first_epoch(void **state)
{
    (void)state;
    tc_counting c = {0};
    nb_rng rng;
    nb_rng_seed(&rng, 12);
    nb_data_opts d = {.alloc = tc_counting_alloc, .alloc_ud = &c};
    nb_dataset *all, *train, *test;
    assert_int_equal(nb_dataset_digits(&d, &all), NB_OK);
    assert_int_equal(nb_dataset_split(all, NULL, 256, 0, &train, NULL, &test), NB_OK);
    nb_model *m = nb_model_new_alloc(tc_counting_alloc, &c);
    nb_layer_opts o = {.rng = &rng};
    nb_rnn_opts ro = nb_rnn_defaults();
    ro.layer.rng = &rng;
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_embedding_new(m, "emb", 17, 4, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_layer_norm_new(m, "ln", 4, 1e-5, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_rnn_new(m, "lstm", NB_RNN_LSTM, 4, 8, &ro, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    assert_int_equal(nb_sequential_add(net, ss_new(m, "ss", 8, NB_F32)), NB_OK);
    assert_int_equal(nb_linear_new(m, "out", 8, 10, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    nb_optim *opt = nb_optim_new_alloc(&oo, tc_counting_alloc, &c);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(train, 32, true, false, &ld), NB_OK);
    counts k = {.c = &c};
    nb_train_opts to = nb_train_defaults();
    to.epochs = 3;
    to.rng = &rng;
    to.test = test;
    to.on_epoch = count_epoch;
    to.cb_ud = &k;
    to.alloc = tc_counting_alloc;
    to.alloc_ud = &c;
    nb_trainer *t = NULL;
    assert_int_equal(nb_trainer_new(m, net, opt, &to, &t), NB_OK);
    if (nb_trainer_fit(t, ld) != NB_OK)
        fail_msg("%s", nb_trainer_error(t)->msg);
    assert_int_equal(k.n, 3);
    assert_true(k.at[0] > 0);
    assert_int_equal(k.at[1], k.at[0]);
    assert_int_equal(k.at[2], k.at[0]);
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
    assert_int_equal(c.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_layer_everywhere), cmocka_unit_test(test_misbehaving_layers),
        cmocka_unit_test(test_protocol_errors),       cmocka_unit_test(test_settings_text),
        cmocka_unit_test(test_builtin_defs),          cmocka_unit_test(test_layer_descriptions),
        cmocka_unit_test(test_undescribable),         cmocka_unit_test(test_reshape_layer),
        cmocka_unit_test(test_no_alloc_after_first_epoch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
