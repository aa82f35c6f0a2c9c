/* Layers of convolutional networks (conv2d, max and average pooling,
 * flatten): what they compute against the ops, their parameters and
 * initialisation, a whole CNN checked with nb_check_model (its f64 twin
 * built from the description), descriptions read back, and bad input. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nabla/modelcheck.h"

static nb_conv_opts conv_opts(int64_t s, int64_t p, int64_t d, int64_t groups)
{
    nb_conv_opts o = nb_conv_defaults();
    o.stride[0] = o.stride[1] = s;
    o.padding[0] = o.padding[1] = p;
    o.dilation[0] = o.dilation[1] = d;
    o.groups = groups;
    return o;
}

static const nb_pool2d_opts POOL2 = {{2, 2}, {2, 2}, {0, 0}};

/* y = conv2d(x, W) + b[o] at every position, W and b the layer's own. */
static void test_conv_layer_values(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_layer *l = NULL;
    nb_layer_opts o = {.rng = &rng, .dtype = NB_F64};
    nb_conv_opts co = conv_opts(2, 1, 1, 2);
    assert_int_equal(nb_conv2d_new(m, "c", 4, 6, 3, 2, &co, &o, &l), NB_OK);
    nb_tensor *w = nb_model_get(m, "c.weight"), *b = nb_model_get(m, "c.bias");
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(nb_tensor_rank(w), 4);
    const int64_t *ws = nb_tensor_shape(w);
    assert_true(ws[0] == 6 && ws[1] == 2 && ws[2] == 3 && ws[3] == 2);
    assert_int_equal(nb_tensor_size(b), 6);
    /* He-uniform over fan_in = C/groups·KH·KW = 12: |w| <= √(6/12), and
     * not all zero; the bias starts at zero */
    double most = 0;
    for (int64_t i = 0; i < nb_tensor_size(w); i++)
        most = fmax(most, fabs(nb_tensor_get(w, i)));
    assert_true(most > 0.1 && most <= sqrt(0.5));
    for (int64_t i = 0; i < 6; i++) {
        assert_true(nb_tensor_get(b, i) == 0);
        nb_tensor_set(b, i, 0.5 * (double)i - 1);
    }
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 4, (int64_t[]){2, 4, 5, 6}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, l, x, true);
    nb_tensor *ref = nb_conv2d(g, x, w, &co);
    assert_non_null(y);
    assert_non_null(ref);
    assert_int_equal(nb_tensor_size(y), nb_tensor_size(ref));
    const int64_t *ys = nb_tensor_shape(y);
    assert_true(ys[0] == 2 && ys[1] == 6 && ys[2] == 3 && ys[3] == 4);
    int64_t plane = ys[2] * ys[3];
    for (int64_t i = 0; i < nb_tensor_size(y); i++)
        assert_true(nb_tensor_get(y, i) ==
                    nb_tensor_get(ref, i) + nb_tensor_get(b, (i / plane) % 6));
    /* what the layer says it is */
    nb_layer_info info;
    assert_int_equal(nb_layer_get_info(l, &info), NB_OK);
    assert_string_equal(info.kind_name, "conv2d");
    assert_int_equal(info.kind, NB_LAYER_OTHER);
    assert_true(info.n_in == 4 && info.n_out == 6 && info.kernel[0] == 3 && info.kernel[1] == 2);
    assert_true(info.conv.stride[1] == 2 && info.conv.padding[0] == 1 && info.conv.groups == 2);
    assert_ptr_equal(info.weight, w);
    assert_ptr_equal(info.bias, b);
    nb_graph_free(g);
    nb_layer_free(l);

    /* no bias; defaults for NULL settings */
    o.no_bias = true;
    assert_int_equal(nb_conv2d_new(m, "d", 1, 2, 3, 3, NULL, &o, &l), NB_OK);
    assert_null(nb_model_get(m, "d.bias"));
    assert_int_equal(nb_layer_param_count(l), 1);
    nb_layer_get_info(l, &info);
    assert_true(info.conv.stride[0] == 1 && info.conv.groups == 1 && !info.bias);
    nb_layer_free(l);
    nb_model_free(m);
}

/* A small CNN of every kind: image reshape, conv, ReLU, max pool, conv,
 * average pool, flatten, linear. */
static nb_layer *small_cnn(nb_model *m, nb_rng *rng, nb_dtype dt)
{
    nb_layer_opts o = {.rng = rng, .dtype = dt};
    nb_conv_opts c1 = conv_opts(1, 1, 1, 1), c2 = conv_opts(1, 0, 2, 2);
    nb_pool2d_opts avg = {{2, 2}, {1, 1}, {1, 1}};
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
#define ADD(call)                                                                                  \
    do {                                                                                           \
        assert_int_equal(call, NB_OK);                                                             \
        assert_int_equal(nb_sequential_add(net, l), NB_OK);                                       \
    } while (0)
    ADD(nb_reshape_layer_new("image", 3, (const int64_t[]){1, 8, 7}, &l));
    ADD(nb_conv2d_new(m, "conv1", 1, 4, 3, 3, &c1, &o, &l));
    ADD(nb_act_layer_new(m, "act1", NB_ACT_TANH, NULL, 0, &o, &l));
    ADD(nb_max_pool2d_new("pool1", &POOL2, &l));
    ADD(nb_conv2d_new(m, "conv2", 4, 4, 2, 1, &c2, &o, &l));
    ADD(nb_avg_pool2d_new("pool2", &avg, &l));
    ADD(nb_flatten_new("flatten", &l));
    ADD(nb_linear_new(m, "fc", 4 * 3 * 4, 3, &o, &l));
#undef ADD
    return net;
}

static void test_whole_cnn(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    nb_model *m = nb_model_new();
    nb_layer *net = small_cnn(m, &rng, NB_F32);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F32, 2, (int64_t[]){3, 56}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, net, x, true);
    assert_non_null(y);
    assert_true(nb_tensor_shape(y)[0] == 3 && nb_tensor_shape(y)[1] == 3);
    /* the sequence's widths: 56 pixels in, 3 out (past the flatten) */
    nb_layer_info info;
    nb_layer_get_info(net, &info);
    assert_int_equal(info.n_in, 56);
    assert_int_equal(info.n_out, 3);
    nb_layer_get_info(nb_layer_find(net, "pool2"), &info);
    assert_string_equal(info.kind_name, "avg_pool2d");
    assert_true(info.pool.kernel[0] == 2 && info.pool.stride[0] == 1 && info.pool.padding[1] == 1);

    /* every parameter's derivative, on the network's f64 twin (built from
     * its description): the description holds all of the forward pass */
    nb_model_check_result r;
    assert_int_equal(nb_check_model(net, m, x, NULL, &r), NB_OK);
    if (!r.pass)
        nb_model_check_print(&r, stderr);
    assert_true(r.pass);
    assert_true(r.twin);
    assert_int_equal(r.n_params, 6);
    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
}

static void test_description(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    nb_model *m = nb_model_new();
    nb_layer *net = small_cnn(m, &rng, NB_F64), *back = NULL;
    char desc[2048], again[2048];
    nb_error e;
    assert_int_equal(nb_layer_describe(net, desc, sizeof desc, &e), NB_OK);
    assert_non_null(strstr(desc, "=conv2d name=conv2 in=4 out=4 kernel=2x1 stride=1x1 "
                                 "padding=0x0 dilation=2x2 groups=2 bias=1\n"));
    assert_non_null(strstr(desc, "=max_pool2d name=pool1 kernel=2x2 stride=2x2 padding=0x0\n"));
    assert_non_null(strstr(desc, "=avg_pool2d name=pool2 kernel=2x2 stride=1x1 padding=1x1\n"));
    assert_non_null(strstr(desc, "=flatten name=flatten\n"));
    /* every shorter buffer is refused, whichever setting it ends in */
    for (size_t cap = 1; cap <= strlen(desc); cap++)
        assert_int_equal(nb_layer_describe(net, again, cap, &e), NB_ERR_ARG);
    nb_model *m2 = nb_model_new();
    nb_layer_opts zeros = {.init = NB_INIT_ZEROS};
    assert_int_equal(nb_layer_from_description(m2, NULL, desc, &zeros, &back, &e), NB_OK);
    assert_int_equal(nb_layer_describe(back, again, sizeof again, &e), NB_OK);
    assert_string_equal(desc, again);
    /* the same parameters give the same outputs */
    assert_int_equal(nb_model_count(m2), nb_model_count(m));
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        nb_tensor *q = nb_model_get(m2, nb_tensor_name(p));
        assert_non_null(q);
        assert_int_equal(nb_tensor_size(p), nb_tensor_size(q));
        memcpy(nb_tensor_data(q), nb_tensor_data(p), (size_t)nb_tensor_size(p) * sizeof(double));
    }
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 56}, 0, 1);
    nb_tensor *y1 = nb_layer_forward(g, net, x, false), *y2 = nb_layer_forward(g, back, x, false);
    assert_non_null(y1);
    assert_non_null(y2);
    for (int64_t i = 0; i < nb_tensor_size(y1); i++)
        assert_true(nb_tensor_get(y1, i) == nb_tensor_get(y2, i));
    nb_graph_free(g);
    nb_layer_free(back);

    /* settings a description may not hold */
    const char *bad[][2] = {
        {"conv2d name=c out=2 kernel=3x3 stride=1x1 padding=0x0 dilation=1x1 groups=1 bias=1",
         "in= is missing"},
        {"conv2d name=c in=2 out=2 stride=1x1 padding=0x0 dilation=1x1 groups=1 bias=1",
         "kernel= is missing"},
        {"conv2d name=c in=2 out=2 kernel=3 stride=1x1 padding=0x0 dilation=1x1 groups=1 bias=1",
         "kernel= is not valid"},
        {"conv2d name=c in=2 out=2 kernel=3x3x3 stride=1x1 padding=0x0 dilation=1x1 groups=1 "
         "bias=1",
         "kernel= is not valid"},
        {"conv2d name=c in=2 out=2 kernel=3x3 stride=0x1 padding=0x0 dilation=1x1 groups=1 bias=1",
         "stride= is not valid"},
        {"conv2d name=c in=2 out=2 kernel=3x3 stride=1x1 padding=-1x0 dilation=1x1 groups=1 "
         "bias=1",
         "padding= is not valid"},
        {"conv2d name=c in=2 out=2 kernel=3x3 stride=1x1 padding=0x0 dilation=1x1 groups=1",
         "bias= is missing"},
        {"conv2d name=c in=3 out=2 kernel=3x3 stride=1x1 padding=0x0 dilation=1x1 groups=2 bias=1",
         "channels not divisible by groups"},
        {"conv2d name=c in=2000 out=2000 kernel=300x300 stride=1x1 padding=0x0 dilation=1x1 "
         "groups=1 bias=1",
         "past the bound on bytes"},
        {"max_pool2d name=p kernel=2x2 stride=2x2", "padding= is missing"},
        {"max_pool2d name=p kernel=2x2 stride=2x2 padding=2x0", "padding is at most half"},
        {"avg_pool2d name=p kernel=0x2 stride=2x2 padding=0x0", "kernel= is not valid"},
    };
    nb_layer_opts bound = {.init = NB_INIT_ZEROS, .max_bytes = 1 << 20};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char d[512];
        snprintf(d, sizeof d, "arch=layers\nlayers=1\ndtype=f64\nlayer.1=%s", bad[k][0]);
        nb_model *mk = nb_model_new();
        if (nb_layer_from_description(mk, NULL, d, &bound, &back, &e) == NB_OK ||
            !strstr(e.msg, bad[k][1]))
            fail_msg("case %zu: %s", k, e.msg);
        assert_int_equal(nb_model_count(mk), 0);
        nb_model_free(mk);
    }
    nb_layer_free(net);
    nb_model_free(m);
    nb_model_free(m2);
}

/* Training moves the loss down: the layers' gradients reach the
 * parameters through pooling and flattening. */
static void test_training_step(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    nb_model *m = nb_model_new();
    nb_layer *net = small_cnn(m, &rng, NB_F64);
    nb_graph *g = nb_graph_new();
    int64_t labels[6] = {0, 1, 2, 0, 1, 2};
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(&oo);
    double first = 0, last = 0;
    for (int step = 0; step < 40; step++) {
        nb_rng data; /* the same six samples every step */
        nb_rng_seed(&data, 99);
        nb_tensor *x = nb_rand_normal(g, &data, NB_F64, 2, (int64_t[]){6, 56}, 0, 1);
        nb_model_zero_grad(m);
        nb_tensor *loss = nb_softmax_cross_entropy(g, nb_layer_forward(g, net, x, true), labels, 6,
                                                   NB_REDUCE_MEAN);
        assert_non_null(loss);
        assert_int_equal(nb_backward(g, loss), NB_OK);
        double v = nb_tensor_get(loss, 0);
        if (step == 0)
            first = v;
        last = v;
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        nb_graph_reset(g);
    }
    assert_true(last < 0.5 * first);
    nb_optim_free(opt);
    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
}

static void test_errors(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_model *m = nb_model_new();
    nb_layer *l = (nb_layer *)&rng; /* must be set to NULL on error */
    nb_layer_opts o = {.rng = &rng};
    nb_conv_opts co = nb_conv_defaults();
    assert_int_equal(nb_conv2d_new(NULL, "c", 1, 1, 3, 3, NULL, &o, &l), NB_ERR_NULL);
    assert_null(l);
    assert_int_equal(nb_conv2d_new(m, NULL, 1, 1, 3, 3, NULL, &o, &l), NB_ERR_NULL);
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, NULL, &o, NULL), NB_ERR_NULL);
    assert_int_equal(nb_conv2d_new(m, "c", 0, 1, 3, 3, NULL, &o, &l), NB_ERR_ARG);
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 0, 3, NULL, &o, &l), NB_ERR_ARG);
    co.groups = 2;
    assert_int_equal(nb_conv2d_new(m, "c", 3, 2, 3, 3, &co, &o, &l), NB_ERR_ARG);
    co = nb_conv_defaults();
    co.stride[1] = 0;
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, &co, &o, &l), NB_ERR_ARG);
    co = nb_conv_defaults();
    co.padding[0] = -1;
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, &co, &o, &l), NB_ERR_ARG);
    co = nb_conv_defaults();
    co.dilation[0] = 0;
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, &co, &o, &l), NB_ERR_ARG);
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, NULL, &(nb_layer_opts){.dtype = (nb_dtype)7},
                                   &l),
                     NB_ERR_DTYPE);
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, NULL, NULL, &l), NB_ERR_NULL); /* no rng */
    assert_int_equal(nb_conv2d_new(m, "c", 1, 1, 3, 3, NULL,
                                   &(nb_layer_opts){.init = NB_INIT_COUNT}, &l),
                     NB_ERR_ARG);
    assert_int_equal(nb_model_count(m), 0);
    assert_int_equal(nb_conv2d_new(m, "c", 1, 2, 3, 3, NULL, &o, &l), NB_OK);
    nb_layer *dup = NULL;
    assert_int_equal(nb_conv2d_new(m, "c", 1, 2, 3, 3, NULL, &o, &dup), NB_ERR_EXISTS);
    assert_int_equal(nb_model_count(m), 2);

    /* inputs the layer does not take: named with both shapes */
    nb_graph *g = nb_graph_new();
    nb_tensor *x3 = nb_zeros(g, NB_F32, 3, (int64_t[]){1, 5, 5});
    assert_null(nb_layer_forward(g, l, x3, true));
    assert_non_null(strstr(nb_graph_error(g)->msg, "input [1,5,5] is not [N, 1, H, W] for weight "
                                                   "[2,1,3,3]"));
    nb_graph_reset(g);
    nb_tensor *x2c = nb_zeros(g, NB_F32, 4, (int64_t[]){1, 2, 5, 5});
    assert_null(nb_layer_forward(g, l, x2c, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    nb_graph_reset(g);
    nb_tensor *xd = nb_zeros(g, NB_F64, 4, (int64_t[]){1, 1, 5, 5});
    assert_null(nb_layer_forward(g, l, xd, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_DTYPE);
    nb_graph_reset(g);
    nb_tensor *small = nb_zeros(g, NB_F32, 4, (int64_t[]){1, 1, 2, 5});
    assert_null(nb_layer_forward(g, l, small, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "[1,1,2,5]"));
    nb_graph_reset(g);

    /* pooling layers */
    nb_layer *p = (nb_layer *)&rng;
    assert_int_equal(nb_max_pool2d_new(NULL, &POOL2, &p), NB_ERR_NULL);
    assert_null(p);
    assert_int_equal(nb_max_pool2d_new("p", NULL, &p), NB_ERR_NULL);
    assert_int_equal(nb_avg_pool2d_new("p", &POOL2, NULL), NB_ERR_NULL);
    nb_pool2d_opts bad = POOL2;
    bad.stride[0] = 0;
    assert_int_equal(nb_max_pool2d_new("p", &bad, &p), NB_ERR_ARG);
    bad = POOL2;
    bad.padding[1] = 2;
    assert_int_equal(nb_avg_pool2d_new("p", &bad, &p), NB_ERR_ARG);
    bad = POOL2;
    bad.kernel[0] = 0;
    assert_int_equal(nb_avg_pool2d_new("p", &bad, &p), NB_ERR_ARG);
    assert_int_equal(nb_max_pool2d_new("bad name", &POOL2, &p), NB_ERR_ARG);
    assert_int_equal(nb_max_pool2d_new("p", &POOL2, &p), NB_OK);
    nb_tensor *one = nb_zeros(g, NB_F32, 4, (int64_t[]){1, 1, 1, 4});
    assert_null(nb_layer_forward(g, p, one, true));
    assert_int_equal(nb_graph_status(g), NB_ERR_SHAPE);
    assert_non_null(strstr(nb_graph_error(g)->msg, "max_pool2d"));
    nb_layer_free(p);
    nb_graph_reset(g);

    /* flatten */
    nb_layer *f = (nb_layer *)&rng;
    assert_int_equal(nb_flatten_new(NULL, &f), NB_ERR_NULL);
    assert_null(f);
    assert_int_equal(nb_flatten_new("f", NULL), NB_ERR_NULL);
    assert_int_equal(nb_flatten_new("f", &f), NB_OK);
    nb_tensor *s = nb_scalar(g, NB_F32, 1);
    assert_null(nb_layer_forward(g, f, s, true));
    assert_non_null(strstr(nb_graph_error(g)->msg, "has no batch axis"));
    nb_graph_reset(g);
    nb_tensor *img = nb_zeros(g, NB_F32, 4, (int64_t[]){2, 3, 4, 5});
    nb_tensor *flat = nb_layer_forward(g, f, img, true);
    assert_non_null(flat);
    assert_true(nb_tensor_rank(flat) == 2 && nb_tensor_shape(flat)[1] == 60);
    nb_layer_free(f);
    nb_graph_free(g);
    nb_layer_free(l);
    nb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_layer_values),
        cmocka_unit_test(test_whole_cnn),
        cmocka_unit_test(test_description),
        cmocka_unit_test(test_training_step),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
