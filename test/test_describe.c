/* Descriptions of networks: nb_layer_describe, nb_layer_description_check
 * and nb_layer_from_description. Every activation, with and without batch
 * norm, in f32 and f64, goes round the trip (the rebuilt network has the
 * same parameters, computes the same and describes itself with the same
 * text); the keys nabla has always written are still written and read;
 * every bad key is refused with its name; networks nb_mlp_new cannot build
 * are refused with a sentence naming the layer. */

#include "tc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* --------------------------------------------------------------- helpers */

/* Describe @p net into out, failing the test with the message otherwise. */
static void describe(const nb_layer *net, char *out, size_t cap)
{
    nb_error e;
    if (nb_layer_describe(net, out, cap, &e) != NB_OK)
        fail_msg("nb_layer_describe: %s", e.msg);
    assert_int_equal(e.status, NB_OK);
    assert_int_equal(nb_meta_check(out, NULL), NB_OK);
}

/* The forward pass of @p net in evaluation mode on a fixed input, as doubles. */
static void forward(nb_layer *net, nb_dtype dt, int64_t n_in, double *y, int64_t n_out)
{
    nb_graph *g = nb_graph_new();
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    nb_tensor *x = nb_rand_normal(g, &rng, dt, 2, (int64_t[]){4, n_in}, 0, 2);
    nb_tensor *out = nb_layer_forward(g, net, x, false);
    if (!out)
        fail_msg("forward: %s", nb_graph_error(g)->msg);
    assert_int_equal(nb_tensor_size(out), 4 * n_out);
    for (int64_t i = 0; i < 4 * n_out; i++)
        y[i] = nb_tensor_get(out, i);
    nb_graph_free(g);
}

/* Build with @p o under @p prefix, describe, build again from the
 * description in another model, describe that: the same text, the same
 * parameters (names, dtypes, shapes; as many bytes as the check says) and,
 * with the values copied, the same outputs. The description into desc. */
static void round_trip(const nb_mlp_opts *o, const char *prefix, const int64_t *sizes, int n,
                       char *desc, size_t cap)
{
    nb_model *m = nb_model_new(), *m2 = nb_model_new();
    nb_layer *net = NULL, *net2 = NULL;
    assert_int_equal(nb_mlp_new(m, prefix, sizes, n, o, &net), NB_OK);
    char again[1024];
    describe(net, desc, cap);
    nb_error e;
    int64_t bytes = -1;
    if (nb_layer_description_check(desc, &bytes, &e) != NB_OK)
        fail_msg("check of '%s': %s", desc, e.msg);
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    nb_layer_opts lo = {.init = NB_INIT_AUTO, .rng = &rng};
    if (nb_layer_from_description(m2, prefix, desc, &lo, &net2, &e) != NB_OK)
        fail_msg("from '%s': %s", desc, e.msg);
    describe(net2, again, sizeof again);
    assert_string_equal(again, desc);

    assert_int_equal(nb_model_count(m2), nb_model_count(m));
    int64_t total = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        nb_tensor *q = nb_model_get(m2, nb_tensor_name(p));
        if (!q)
            fail_msg("'%s' is missing from the rebuilt model (%s)", nb_tensor_name(p), desc);
        assert_int_equal(nb_tensor_dtype(q), nb_tensor_dtype(p));
        assert_int_equal(nb_tensor_rank(q), nb_tensor_rank(p));
        assert_memory_equal(nb_tensor_shape(q), nb_tensor_shape(p),
                            sizeof(int64_t) * (size_t)nb_tensor_rank(p));
        assert_int_equal(nb_tensor_requires_grad(q), nb_tensor_requires_grad(p));
        size_t size = (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
        memcpy(nb_tensor_data(q), nb_tensor_data(p), size);
        total += (int64_t)size;
    }
    assert_int_equal(total, bytes);
    int64_t n_out = sizes[n - 1];
    double *y = malloc(sizeof *y * 8 * (size_t)n_out);
    forward(net, o->layer.dtype, sizes[0], y, n_out);
    forward(net2, o->layer.dtype, sizes[0], y + 4 * n_out, n_out);
    assert_memory_equal(y, y + 4 * n_out, sizeof *y * 4 * (size_t)n_out);
    free(y);
    nb_layer_free(net);
    nb_layer_free(net2);
    nb_model_free(m);
    nb_model_free(m2);
}

/* ----------------------------------------------------------- round trips */

static void test_round_trip_every_activation(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    const int64_t sizes[] = {5, 6, 4, 3};
    int seen_dropout = 0, seen_no_bias = 0;
    for (int a = 0; a < NB_ACT_COUNT; a++)
        for (int bn = 0; bn < 2; bn++)
            for (int d = 0; d < 2; d++) {
                nb_act_opts ao = nb_act_defaults((nb_act)a);
                ao.alpha = 0.3, ao.beta = 1.7, ao.lower = 0.05, ao.upper = 0.45, ao.pieces = 3;
                nb_mlp_opts o = nb_mlp_defaults();
                o.layer.rng = &rng;
                o.layer.dtype = d ? NB_F64 : NB_F32;
                o.layer.no_bias = (a + bn) % 4 == 1;
                o.act = (nb_act)a;
                o.act_opts = &ao;
                nb_act out = (nb_act)((a + 5) % NB_ACT_COUNT);
                o.out_act = nb_act_has_param(out) || out == NB_ACT_MAXOUT ? NB_ACT_IDENTITY : out;
                o.batch_norm = bn;
                o.bn_eps = 1e-3;
                o.bn_momentum = 0.25;
                o.dropout = (a + d) % 3 == 0 ? 0.3 : 0;
                seen_dropout += o.dropout > 0;
                seen_no_bias += o.layer.no_bias;
                char desc[1024];
                round_trip(&o, a % 2 ? "model.mlp" : NULL, sizes, 4, desc, sizeof desc);
                /* the description says what was asked */
                char v[64];
                assert_int_equal(nb_meta_get(desc, "act", v, sizeof v), NB_OK);
                assert_string_equal(v, nb_act_name((nb_act)a));
                assert_int_equal(nb_meta_get(desc, "dtype", v, sizeof v), NB_OK);
                assert_string_equal(v, d ? "f64" : "f32");
                assert_int_equal(nb_meta_get(desc, "batchnorm", v, sizeof v), NB_OK);
                assert_string_equal(v, bn ? "1" : "0");
                assert_int_equal(nb_meta_get(desc, "bn_momentum", v, sizeof v),
                                 bn ? NB_OK : NB_ERR_NOTFOUND);
                assert_int_equal(nb_meta_get(desc, "dropout", v, sizeof v),
                                 o.dropout > 0 ? NB_OK : NB_ERR_NOTFOUND);
                assert_int_equal(nb_meta_get(desc, "bias", v, sizeof v),
                                 o.layer.no_bias ? NB_OK : NB_ERR_NOTFOUND);
                if (a == NB_ACT_MAXOUT) {
                    assert_int_equal(nb_meta_get(desc, "pieces", v, sizeof v), NB_OK);
                    assert_string_equal(v, "3");
                }
            }
    assert_true(seen_dropout > 0 && seen_no_bias > 0);

    /* one layer: no hidden activation to describe */
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    o.act = NB_ACT_TANH;
    o.out_act = NB_ACT_SIGMOID;
    char desc[1024];
    round_trip(&o, NULL, (int64_t[]){7, 2}, 2, desc, sizeof desc);
    assert_string_equal(desc, "arch=mlp\nsizes=7,2\nact=identity\nout_act=sigmoid\nbatchnorm=0\n"
                              "dtype=f32");
}

/* The keys nabla has always written, in the same order and form; texts
 * written before bn_momentum existed still build (momentum 0.1). */
static void test_compatible_keys(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    o.layer.dtype = NB_F64;
    o.act = NB_ACT_LEAKY_RELU;
    o.batch_norm = true;
    char desc[1024];
    round_trip(&o, NULL, (int64_t[]){64, 32, 10}, 3, desc, sizeof desc);
    assert_string_equal(desc, "arch=mlp\nsizes=64,32,10\nact=leaky-relu\nout_act=identity\n"
                              "batchnorm=1\ndtype=f64\nbn_eps=1.0000000000000001e-05\n"
                              "bn_momentum=0.10000000000000001\nalpha=0.01");

    static const struct {
        const char *old, *now;
    } texts[] = {
        {"arch=mlp\nsizes=5,6,4,3\nact=rrelu\nout_act=sigmoid\nbatchnorm=1\ndtype=f64\n"
         "bn_eps=1.0000000000000001e-05\nlower=0.125\nupper=0.33333333333333331",
         "arch=mlp\nsizes=5,6,4,3\nact=rrelu\nout_act=sigmoid\nbatchnorm=1\ndtype=f64\n"
         "bn_eps=1.0000000000000001e-05\nbn_momentum=0.10000000000000001\nlower=0.125\n"
         "upper=0.33333333333333331"},
        {"arch=mlp\nsizes=64,8,10\nact=maxout\nout_act=identity\nbatchnorm=0\ndtype=f32\npieces=3",
         "arch=mlp\nsizes=64,8,10\nact=maxout\nout_act=identity\nbatchnorm=0\ndtype=f32\npieces=3"},
        /* other metadata keys are not the description's; names in any case */
        {"seed=4\narch=mlp\nsizes=3,4,2\nact=ReLU\ninput_norm=standardize",
         "arch=mlp\nsizes=3,4,2\nact=relu\nout_act=identity\nbatchnorm=0\ndtype=f32"},
    };
    for (size_t i = 0; i < COUNT(texts); i++) {
        nb_model *m = nb_model_new();
        nb_layer *net = NULL;
        nb_error e;
        if (nb_layer_from_description(m, NULL, texts[i].old, NULL, &net, &e) != NB_OK)
            fail_msg("'%s': %s", texts[i].old, e.msg);
        describe(net, desc, sizeof desc);
        assert_string_equal(desc, texts[i].now);
        for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
            if (!strstr(nb_tensor_name(p), "running_var") && !strstr(nb_tensor_name(p), "bn"))
                for (int64_t k = 0; k < nb_tensor_size(p); k++)
                    assert_true(nb_tensor_get(p, k) == 0); /* o NULL: zeros */
        nb_layer_free(net);
        nb_model_free(m);
    }
}

/* ------------------------------------------------------- bad descriptions */

static void test_bad_descriptions(void **state)
{
    (void)state;
    char long_sizes[5000], long_act[200], buf[6000];
    memset(long_sizes, '1', sizeof long_sizes - 1);
    long_sizes[sizeof long_sizes - 1] = '\0';
    memset(long_act, 'r', sizeof long_act - 1);
    long_act[sizeof long_act - 1] = '\0';
#define B "arch=mlp\nact=relu\n"
    const struct {
        const char *desc;
        nb_status st;
        const char *key, *says;
    } cases[] = {
        {"", NB_ERR_PARSE, "arch", "no arch="},
        {"arch=mlp\narch=mlp", NB_ERR_PARSE, "", "appears twice"},
        {"arch=mlp\nno equals sign", NB_ERR_PARSE, "", "line"},
        {"arch=cnn\nact=relu\nsizes=4,3", NB_ERR_ARG, "arch", "arch=cnn is not an architecture"},
        {"arch=mlp\nsizes=4,3", NB_ERR_PARSE, "act", "no act="},
        {"arch=mlp\nact=relu", NB_ERR_PARSE, "sizes", "no sizes="},
        {B "sizes=4,,3", NB_ERR_PARSE, "sizes", "sizes=4,,3 is not a list of whole numbers"},
        {B "sizes=4,5,", NB_ERR_PARSE, "sizes", "sizes=4,5, is not"},
        {B "sizes=", NB_ERR_PARSE, "sizes", "is not a list"},
        {B "sizes=4 ,3", NB_ERR_PARSE, "sizes", "is not a list"},
        {B "sizes=-4,3", NB_ERR_PARSE, "sizes", "is not a list"},
        {B "sizes=4", NB_ERR_ARG, "sizes", "fewer than two"},
        {B "sizes=4,0,3", NB_ERR_ARG, "sizes", "size 2 is 0"},
        {B "sizes=99999999999999999999,3", NB_ERR_ARG, "sizes", "size 1 is too large"},
        {B "sizes=4611686018427387904,4611686018427387904", NB_ERR_ARG, "sizes", "2^63 bytes"},
        {B "sizes=3,4611686018427387904,2", NB_ERR_ARG, "sizes", "2^63 bytes"},
        {"arch=mlp\nact=sine\nsizes=4,3", NB_ERR_ARG, "act", "act=sine is not an activation"},
        {B "sizes=4,3\nout_act=prelu", NB_ERR_ARG, "out_act", "has a learned parameter"},
        {B "sizes=4,3\nout_act=maxout", NB_ERR_ARG, "out_act", "changes the width"},
        {B "sizes=4,3\nout_act=cosine", NB_ERR_ARG, "out_act", "out_act=cosine is not"},
        {B "sizes=4,3\nbatchnorm=2", NB_ERR_ARG, "batchnorm", "batchnorm=2 is not 0 or 1"},
        {B "sizes=4,3\nbias=yes", NB_ERR_ARG, "bias", "bias=yes is not 0 or 1"},
        {B "sizes=4,3\ndtype=f16", NB_ERR_ARG, "dtype", "dtype=f16 is not f32 or f64"},
        {B "sizes=4,3\nalpha=0.2", NB_ERR_ARG, "alpha", "applies to act=leaky-relu, elu or prelu"},
        {B "sizes=4,3\npieces=2", NB_ERR_ARG, "pieces", "applies to act=maxout only, not act=relu"},
        {B "sizes=4,3\nbeta=2", NB_ERR_ARG, "beta", "applies to act=swish"},
        {"arch=mlp\nact=maxout\nsizes=4,3\npieces=1", NB_ERR_ARG, "pieces", "at least 2"},
        {"arch=mlp\nact=maxout\nsizes=4,3\npieces=2.5", NB_ERR_PARSE, "pieces", "not a whole"},
        {"arch=mlp\nact=maxout\nsizes=4,3\npieces=99999999999999999999", NB_ERR_PARSE, "pieces",
         "not a whole number"},
        {"arch=mlp\nact=elu\nsizes=4,3\nalpha=abc", NB_ERR_PARSE, "alpha",
         "alpha=abc is not a number"},
        {"arch=mlp\nact=elu\nsizes=4,3\nalpha=inf", NB_ERR_ARG, "alpha", "alpha=inf is not finite"},
        {"arch=mlp\nact=swish\nsizes=4,3\nbeta=nan", NB_ERR_ARG, "beta", "beta=nan is not finite"},
        {"arch=mlp\nact=rrelu\nsizes=4,3\nlower=-1", NB_ERR_ARG, "lower", "0 <= lower <= upper"},
        {"arch=mlp\nact=rrelu\nsizes=4,3\nlower=0.5\nupper=0.2", NB_ERR_ARG, "upper", "lower=0.5"},
        {B "sizes=4,3\nbn_eps=0.1", NB_ERR_ARG, "bn_eps", "applies only with batchnorm=1"},
        {B "sizes=4,3\nbn_momentum=0.1", NB_ERR_ARG, "bn_momentum", "only with batchnorm=1"},
        {B "sizes=4,3\nbatchnorm=1\nbn_eps=0", NB_ERR_ARG, "bn_eps", "bn_eps=0 must be > 0"},
        {B "sizes=4,3\nbatchnorm=1\nbn_momentum=1.5", NB_ERR_ARG, "bn_momentum", "not in [0, 1]"},
        {B "sizes=4,3\nbatchnorm=1\nbn_momentum=-0.1", NB_ERR_ARG, "bn_momentum", "not in [0, 1]"},
        {B "sizes=4,3\ndropout=1", NB_ERR_ARG, "dropout", "dropout=1 is not in [0, 1)"},
        {B "sizes=4,3\ndropout=-0.5", NB_ERR_ARG, "dropout", "not in [0, 1)"},
        {B "sizes=4,3\ndropout=half", NB_ERR_PARSE, "dropout", "dropout=half is not a number"},
        {NULL, NB_ERR_ARG, "sizes", "sizes= is longer than 4095 bytes"},
        {NULL, NB_ERR_ARG, "act", "act= is longer than 63 bytes"},
    };
#undef B
    for (size_t i = 0; i < COUNT(cases); i++) {
        const char *desc = cases[i].desc;
        if (!desc && !strcmp(cases[i].key, "sizes"))
            snprintf(buf, sizeof buf, "arch=mlp\nact=relu\nsizes=%s", long_sizes);
        else if (!desc)
            snprintf(buf, sizeof buf, "arch=mlp\nact=%s\nsizes=4,3", long_act);
        if (!desc)
            desc = buf;
        nb_error e;
        int64_t bytes = -7;
        nb_status st = nb_layer_description_check(desc, &bytes, &e);
        if (st != cases[i].st || e.status != st || strcmp(e.name, cases[i].key) ||
            !strstr(e.msg, cases[i].says) || strcmp(e.where, "nb_layer_description_check"))
            fail_msg("'%s': %s, key '%s', '%s' (want %s, key '%s', '%s')", desc, nb_status_str(st),
                     e.name, e.msg, nb_status_str(cases[i].st), cases[i].key, cases[i].says);
        assert_int_equal(bytes, -7); /* untouched */
        /* the builder refuses it alike and adds nothing */
        nb_model *m = nb_model_new();
        nb_layer *net = (nb_layer *)&bytes;
        nb_error e2;
        assert_int_equal(nb_layer_from_description(m, "p", desc, NULL, &net, &e2), st);
        assert_null(net);
        assert_string_equal(e2.msg, e.msg);
        assert_string_equal(e2.name, e.name);
        assert_string_equal(e2.where, "nb_layer_from_description");
        assert_int_equal(nb_model_count(m), 0);
        assert_int_equal(nb_layer_description_check(desc, NULL, NULL), st); /* err NULL */
        nb_model_free(m);
    }
}

/* The builder's own errors: NULL arguments, the prefix, the generator a
 * description or an initialisation needs, names taken, memory. */
static void test_build_errors(void **state)
{
    (void)state;
    const char *desc = "arch=mlp\nsizes=4,5,3\nact=tanh\nbatchnorm=1";
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_error e;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    assert_int_equal(nb_layer_from_description(NULL, NULL, desc, NULL, &net, &e), NB_ERR_NULL);
    assert_non_null(strstr(e.msg, "the model is NULL"));
    assert_int_equal(nb_layer_from_description(m, NULL, NULL, NULL, &net, &e), NB_ERR_NULL);
    assert_non_null(strstr(e.msg, "the description is NULL"));
    assert_int_equal(nb_layer_from_description(m, NULL, desc, NULL, NULL, &e), NB_ERR_NULL);
    assert_int_equal(nb_layer_description_check(NULL, NULL, &e), NB_ERR_NULL);
    char prefix[100];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    assert_int_equal(nb_layer_from_description(m, prefix, desc, NULL, &net, &e), NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "prefix is longer than 80 bytes"));
    assert_int_equal(nb_layer_from_description(m, "x",
                                               "arch=mlp\nsizes=4,5,3\nact=relu\n"
                                               "dropout=0.5",
                                               NULL, &net, &e),
                     NB_ERR_NULL);
    assert_string_equal(e.name, "dropout");
    assert_non_null(strstr(e.msg, "draws its masks from a generator"));
    nb_layer_opts lo = {.init = NB_INIT_HE_NORMAL};
    assert_int_equal(nb_layer_from_description(m, "x", desc, &lo, &net, &e), NB_ERR_NULL);
    assert_non_null(strstr(e.msg, "random initialisation"));
    assert_int_equal(nb_model_count(m), 0);
    assert_null(net);

    /* with a generator: a random initialisation (o's dtype and no_bias do
     * not override the description) */
    lo = (nb_layer_opts){.init = NB_INIT_AUTO, .rng = &rng, .dtype = NB_F64, .no_bias = true};
    assert_int_equal(nb_layer_from_description(m, "x", desc, &lo, &net, &e), NB_OK);
    assert_int_equal(e.status, NB_OK);
    assert_string_equal(e.msg, "");
    nb_tensor *w = nb_model_get(m, "x.fc1.weight");
    assert_non_null(w);
    assert_non_null(nb_model_get(m, "x.fc1.bias"));
    assert_int_equal(nb_tensor_dtype(w), NB_F32);
    assert_true(nb_tensor_get(w, 0) != 0);
    /* the same names again */
    nb_layer *dup = NULL;
    assert_int_equal(nb_layer_from_description(m, "x", desc, &lo, &dup, &e), NB_ERR_EXISTS);
    assert_non_null(strstr(e.msg, "already holds a parameter of the network under the prefix x"));
    assert_null(dup);
    nb_layer_free(net);
    nb_model_free(m);

    /* every allocation of a build failing in turn: out of memory, no leak */
    tc_counting probe = {0};
    m = nb_model_new_alloc(tc_counting_alloc, &probe);
    assert_int_equal(nb_layer_from_description(m, NULL, desc, NULL, &net, NULL), NB_OK);
    nb_layer_free(net);
    nb_model_free(m);
    assert_int_equal(probe.live, 0);
    for (long n = 1; n <= probe.calls; n++) {
        tc_counting c = {.fail_at = n};
        m = nb_model_new_alloc(tc_counting_alloc, &c);
        nb_status st = m ? nb_layer_from_description(m, NULL, desc, NULL, &net, &e) : NB_ERR_NOMEM;
        if (st != NB_ERR_NOMEM)
            fail_msg("allocation %ld of %ld failed but the result was %s", n, probe.calls,
                     nb_status_str(st));
        assert_non_null(m ? strstr(e.msg, "out of memory") : "");
        nb_model_free(m);
        assert_int_equal(c.live, 0);
    }
}

/* ---------------------------------------------------------- describing */

/* A sequence "" of the given layers. */
static nb_layer *seq_of(nb_layer **layers, int n)
{
    nb_layer *s = NULL;
    assert_int_equal(nb_sequential_new("", &s), NB_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(nb_sequential_add(s, layers[i]), NB_OK);
    return s;
}

/* nb_layer_describe of @p net is refused with NB_ERR_ARG naming @p layer
 * and saying @p says; @p out is left "". */
static void refused(const nb_layer *net, const char *layer, const char *says);

/* A network nb_mlp_new does not build is described layer by layer
 * ("arch=layers"); the network built again from that text has the same
 * parameters (names, dtypes, shapes), runs to the same output on the
 * same values, and describes itself with the same text. */
static void layer_by_layer(nb_layer *net, nb_model *m)
{
    static char out[1 << 16], again[1 << 16];
    nb_error e;
    assert_int_equal(nb_layer_describe(net, out, sizeof out, &e), NB_OK);
    assert_true(!strncmp(out, "arch=layers\n", 12));
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_layer_opts lo = {.init = NB_INIT_ZEROS, .rng = &rng};
    nb_model *m2 = nb_model_new();
    nb_layer *net2 = NULL;
    if (nb_layer_from_description(m2, NULL, out, &lo, &net2, &e) != NB_OK)
        fail_msg("%s\n%s", e.msg, out);
    assert_int_equal(nb_layer_describe(net2, again, sizeof again, &e), NB_OK);
    assert_string_equal(out, again);
    assert_int_equal(nb_model_count(m2), nb_model_count(m));
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        nb_tensor *q = nb_model_get(m2, nb_tensor_name(p));
        assert_non_null(q);
        assert_int_equal(nb_tensor_dtype(q), nb_tensor_dtype(p));
        assert_int_equal(nb_tensor_size(q), nb_tensor_size(p));
        memcpy(nb_tensor_data(q), nb_tensor_data(p),
               (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
    }
    nb_layer_info info;
    nb_layer_get_info(net, &info);
    nb_graph *g = nb_graph_new();
    nb_dtype dt = nb_model_count(m) ? nb_tensor_dtype(nb_model_next(m, NULL)) : NB_F32;
    nb_tensor *x = nb_rand_normal(g, &rng, dt, 2, (int64_t[]){3, info.n_in ? info.n_in : 4}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, net, x, false);
    nb_tensor *y2 = nb_layer_forward(g, net2, x, false);
    assert_true((y == NULL) == (y2 == NULL));
    for (int64_t i = 0; y && i < nb_tensor_size(y); i++)
        assert_true(nb_tensor_get(y, i) == nb_tensor_get(y2, i));
    nb_graph_free(g);
    nb_layer_free(net2);
    nb_model_free(m2);
}

static void refused(const nb_layer *net, const char *layer, const char *says)
{
    char out[1024] = "junk";
    nb_error e;
    nb_status st = nb_layer_describe(net, out, sizeof out, &e);
    if (st != NB_ERR_ARG || strcmp(e.name, layer) || !strstr(e.msg, says))
        fail_msg("%s, layer '%s', '%s' (want NB_ERR_ARG, '%s', '%s')", nb_status_str(st), e.name,
                 e.msg, layer, says);
    assert_string_equal(e.where, "nb_layer_describe");
    assert_string_equal(out, "");
    assert_int_equal(nb_layer_describe(net, out, sizeof out, NULL), NB_ERR_ARG);
}

static void test_describe_refuses(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 6);
    nb_layer_opts o = {.rng = &rng}, o64 = {.rng = &rng, .dtype = NB_F64},
                  nobias = {.rng = &rng, .no_bias = true};
    nb_model *m = nb_model_new();
    nb_layer *l[6], *net;
    char out[1024];
    nb_error e;
    /* NULL */
    assert_int_equal(nb_layer_describe(NULL, out, sizeof out, &e), NB_ERR_NULL);
    assert_non_null(strstr(e.msg, "the network is NULL"));
    /* a lone layer; an empty sequence */
    assert_int_equal(nb_linear_new(m, "fc1", 4, 3, &o, &l[0]), NB_OK);
    assert_int_equal(nb_layer_describe(l[0], NULL, 0, &e), NB_ERR_NULL);
    layer_by_layer(l[0], m);
    nb_layer_free(l[0]);
    nb_model_free(m);
    m = nb_model_new();
    assert_int_equal(nb_sequential_new("s", &net), NB_OK);
    layer_by_layer(net, m);
    nb_layer_free(net);

    /* built by hand */
    nb_act_opts leaky = nb_act_defaults(NB_ACT_LEAKY_RELU);
    leaky.alpha = 0.2;
    /* each of these does one thing nb_mlp_new does not do */
    struct {
        const char *layer, *says;
    } want[] = {
        {"act1", "starts with 'act1'"},
        {"dense", "not named as nb_mlp_new names it ('fc1')"},
        {"bn1", "comes after 'act1'"},
        {"fc2", "takes 6 inputs but 'fc1' gives 5"},
        {"fc2", "hidden layer 2 has the activation tanh, hidden layer 1 relu"},
        {"fc2", "the last layer 'fc2' is maxout"},
        {"act2", "output activation 'act2' (prelu)"},
        {"act2", "output activation 'act2' (leaky-relu)"},
        {"fc2.weight", "is f64 and the first weight f32"},
        {"fc2", "has no bias and the first layer one"},
        {"inner", "is a sequence inside the network"},
        {"act1", "activation layer of identity"},
        {"act1", "follows a maxout layer"},
        {"fc2", "hidden layer 2 has no batch norm and hidden layer 1 has"},
        {"drop2", "dropout 'drop2' drops 0.25, hidden layer 1's 0.5"},
        {"bn1", "has 6 features but 'fc1' gives 5"},
        {"act1", "has 6 features but 'fc1' gives 5"},
        {"fc2", "the last layer 'fc2' is followed by dropout"},
        {"act1", "activation layer of maxout"},
        {"bn2", "batch norm 'bn2' has eps 0.001 and momentum 0.1, hidden layer 1's 1e-05 and 0.1"},
    };
    for (size_t k = 0; k < COUNT(want); k++) {
        nb_model_free(m);
        m = nb_model_new();
        int n = 0;
        switch (k) {
        case 0: nb_act_layer_new(m, "act1", NB_ACT_RELU, NULL, 4, &o, &l[n++]); break;
        case 1: nb_linear_new(m, "dense", 4, 3, &o, &l[n++]); break;
        case 2:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_act_layer_new(m, "act1", NB_ACT_RELU, NULL, 5, &o, &l[n++]);
            nb_batch_norm_new(m, "bn1", 5, 1e-5, 0.1, &o, &l[n++]);
            break;
        case 3:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 6, 3, &o, &l[n++]);
            break;
        case 4:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_act_layer_new(m, "act1", NB_ACT_RELU, NULL, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 5, &o, &l[n++]);
            nb_act_layer_new(m, "act2", NB_ACT_TANH, NULL, 5, &o, &l[n++]);
            nb_linear_new(m, "fc3", 5, 2, &o, &l[n++]);
            break;
        case 5:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_maxout_new(m, "fc2", 5, 3, 2, &o, &l[n++]);
            break;
        case 6:
        case 7:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 3, &o, &l[n++]);
            nb_act_layer_new(m, "act2", k == 6 ? NB_ACT_PRELU : NB_ACT_LEAKY_RELU,
                             k == 6 ? NULL : &leaky, 3, &o, &l[n++]);
            break;
        case 8:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 3, &o64, &l[n++]);
            break;
        case 9:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 3, &nobias, &l[n++]);
            break;
        case 10:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_sequential_new("inner", &l[n++]);
            break;
        case 11:
        case 18:
            nb_linear_new(m, "fc1", 4, 6, &o, &l[n++]);
            nb_act_layer_new(m, "act1", k == 11 ? NB_ACT_IDENTITY : NB_ACT_MAXOUT, NULL, 6, &o,
                             &l[n++]);
            nb_linear_new(m, "fc2", k == 11 ? 6 : 3, 2, &o, &l[n++]);
            break;
        case 12:
            nb_maxout_new(m, "fc1", 4, 5, 2, &o, &l[n++]);
            nb_act_layer_new(m, "act1", NB_ACT_RELU, NULL, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 2, &o, &l[n++]);
            break;
        case 13:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_batch_norm_new(m, "bn1", 5, 1e-5, 0.1, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 5, &o, &l[n++]);
            nb_linear_new(m, "fc3", 5, 2, &o, &l[n++]);
            break;
        case 14:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_dropout_new("drop1", 0.5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 5, &o, &l[n++]);
            nb_dropout_new("drop2", 0.25, &o, &l[n++]);
            nb_linear_new(m, "fc3", 5, 2, &o, &l[n++]);
            break;
        case 15:
        case 16:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            if (k == 15)
                nb_batch_norm_new(m, "bn1", 6, 1e-5, 0.1, &o, &l[n++]);
            else
                nb_act_layer_new(m, "act1", NB_ACT_PRELU, NULL, 6, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 2, &o, &l[n++]);
            break;
        case 17:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 2, &o, &l[n++]);
            nb_dropout_new("drop2", 0.5, &o, &l[n++]);
            break;
        case 19:
            nb_linear_new(m, "fc1", 4, 5, &o, &l[n++]);
            nb_batch_norm_new(m, "bn1", 5, 1e-5, 0.1, &o, &l[n++]);
            nb_linear_new(m, "fc2", 5, 5, &o, &l[n++]);
            nb_batch_norm_new(m, "bn2", 5, 1e-3, 0.1, &o, &l[n++]);
            nb_linear_new(m, "fc3", 5, 2, &o, &l[n++]);
            break;
        }
        for (int i = 0; i < n; i++)
            assert_non_null(l[i]);
        net = seq_of(l, n);
        if (k == 8) /* one description holds one dtype */
            refused(net, "fc2.weight", "mixes dtypes");
        else
            layer_by_layer(net, m);
        nb_layer_free(net);
    }

    /* too small a buffer: refused, out "" */
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    assert_int_equal(nb_mlp_new(m, "t", (int64_t[]){4, 5, 3}, 3, &mo, &net), NB_OK);
    assert_int_equal(nb_layer_describe(net, out, 20, &e), NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "does not fit in 20 bytes"));
    assert_string_equal(out, "");
    describe(net, out, sizeof out); /* and a large one is enough */
    nb_layer_free(net);
    /* more sizes than a sizes= value holds: 2049 layers of one unit */
    enum { N = 2050 };
    int64_t *ones = malloc(sizeof *ones * N);
    for (int i = 0; i < N; i++)
        ones[i] = 1;
    mo.act = NB_ACT_IDENTITY;
    assert_int_equal(nb_mlp_new(m, "big", ones, N, &mo, &net), NB_OK);
    char *huge = malloc(1 << 20);
    assert_int_equal(nb_layer_describe(net, huge, 1 << 20, &e), NB_ERR_ARG);
    assert_non_null(strstr(e.msg, "more than 1000 layers"));
    free(huge);
    nb_layer_free(net);
    assert_int_equal(nb_mlp_new(m, "fit", ones, N - 2, &mo, &net), NB_OK); /* 4095 bytes */
    char *big = malloc(8192);
    describe(net, big, 8192);
    nb_model *m2 = nb_model_new();
    nb_layer *net2 = NULL;
    assert_int_equal(nb_layer_from_description(m2, "fit", big, NULL, &net2, &e), NB_OK);
    assert_int_equal(nb_layer_count(net2), N - 3);
    nb_layer_free(net2);
    nb_model_free(m2);
    free(big);
    free(ones);
    nb_layer_free(net);
    nb_model_free(m);
}

/* nb_layer_get_info reports what each layer of an MLP is. */
static void test_layer_info(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    o.act = NB_ACT_PRELU;
    o.batch_norm = true;
    o.bn_eps = 1e-3;
    o.bn_momentum = 0.2;
    o.dropout = 0.1;
    o.out_act = NB_ACT_SIGMOID;
    nb_layer *net = NULL;
    assert_int_equal(nb_mlp_new(m, "p", (int64_t[]){4, 6, 3}, 3, &o, &net), NB_OK);
    nb_layer_info info;
    assert_int_equal(nb_layer_get_info(NULL, &info), NB_ERR_NULL);
    assert_int_equal(nb_layer_get_info(net, NULL), NB_ERR_NULL);
    assert_int_equal(nb_layer_get_info(net, &info), NB_OK);
    assert_int_equal(info.kind, NB_LAYER_SEQUENTIAL);
    assert_string_equal(info.name, "p");
    assert_int_equal(info.n_items, 6); /* fc1 bn1 act1 drop1 fc2 act2 */
    assert_int_equal(info.n_in, 4);
    assert_int_equal(info.n_out, 3);
    const struct {
        nb_layer_kind kind;
        const char *name;
        int64_t n_in, n_out, pieces;
    } want[] = {
        {NB_LAYER_LINEAR, "p.fc1", 4, 6, 1},      {NB_LAYER_BATCH_NORM, "p.bn1", 6, 6, 0},
        {NB_LAYER_ACTIVATION, "p.act1", 6, 6, 0}, {NB_LAYER_DROPOUT, "p.drop1", 0, 0, 0},
        {NB_LAYER_LINEAR, "p.fc2", 6, 3, 1},      {NB_LAYER_ACTIVATION, "p.act2", 0, 0, 0},
    };
    for (int i = 0; i < 6; i++) {
        assert_int_equal(nb_layer_get_info(nb_layer_at(net, i), &info), NB_OK);
        assert_int_equal(info.kind, want[i].kind);
        assert_string_equal(info.name, want[i].name);
        assert_int_equal(info.n_in, want[i].n_in);
        assert_int_equal(info.n_out, want[i].n_out);
        assert_int_equal(info.pieces, want[i].pieces);
    }
    nb_layer_get_info(nb_layer_at(net, 0), &info);
    assert_ptr_equal(info.weight, nb_model_get(m, "p.fc1.weight"));
    assert_ptr_equal(info.bias, nb_model_get(m, "p.fc1.bias"));
    nb_layer_get_info(nb_layer_at(net, 1), &info);
    assert_ptr_equal(info.running_var, nb_model_get(m, "p.bn1.running_var"));
    assert_ptr_equal(info.running_mean, nb_model_get(m, "p.bn1.running_mean"));
    assert_true(info.eps == 1e-3 && info.momentum == 0.2);
    nb_layer_get_info(nb_layer_at(net, 2), &info);
    assert_int_equal(info.act, NB_ACT_PRELU);
    assert_true(info.act_opts.alpha == 0.25);
    assert_ptr_equal(info.param, nb_model_get(m, "p.act1.alpha"));
    nb_layer_get_info(nb_layer_at(net, 3), &info);
    assert_true(info.p == 0.1);
    nb_layer_get_info(nb_layer_at(net, 5), &info);
    assert_int_equal(info.act, NB_ACT_SIGMOID);
    assert_null(info.param);
    nb_layer_free(net);

    /* a sequence's output width through a maxout activation; an empty one */
    nb_layer *l[3];
    nb_layer_opts lo = {.rng = &rng};
    nb_act_opts k3 = nb_act_defaults(NB_ACT_MAXOUT);
    k3.pieces = 3;
    assert_int_equal(nb_linear_new(m, "a", 2, 6, &lo, &l[0]), NB_OK);
    assert_int_equal(nb_act_layer_new(m, "b", NB_ACT_MAXOUT, &k3, 6, &lo, &l[1]), NB_OK);
    assert_int_equal(nb_dropout_new("c", 0.5, &lo, &l[2]), NB_OK);
    net = seq_of(l, 3);
    assert_int_equal(nb_layer_get_info(net, &info), NB_OK);
    assert_int_equal(info.n_in, 2);
    assert_int_equal(info.n_out, 2);
    nb_layer_free(net);
    assert_int_equal(nb_sequential_new("e", &net), NB_OK);
    assert_int_equal(nb_layer_get_info(net, &info), NB_OK);
    assert_int_equal(info.n_in + info.n_out + info.n_items, 0);
    nb_layer_free(net);
    nb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_activation),
        cmocka_unit_test(test_compatible_keys),
        cmocka_unit_test(test_bad_descriptions),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_describe_refuses),
        cmocka_unit_test(test_layer_info),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
