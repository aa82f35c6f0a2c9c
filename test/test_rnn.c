/* Recurrent layers: outputs and gradients against PyTorch's nn.RNN,
 * nn.GRU, nn.LSTM and their cells (fixtures written by
 * test/fixtures/make_rnn_fixtures.py, weights under PyTorch's names) to
 * 1e-10 in f64; reverse and forward mode against finite differences;
 * truncated back-propagation through time; descriptions; bad input. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *top;

/* The largest |a - b| over n entries of two tensors. */
static double max_diff(const nb_tensor *a, const nb_tensor *b)
{
    assert_int_equal(nb_tensor_size(a), nb_tensor_size(b));
    double worst = 0;
    for (int64_t i = 0; i < nb_tensor_size(a); i++) {
        double d = fabs(nb_tensor_get(a, i) - nb_tensor_get(b, i));
        worst = d > worst || isnan(d) ? d : worst;
    }
    return worst;
}

/* A fixture's tensors (read as safetensors) and what they say. */
typedef struct fixture {
    nb_model *file;
    nb_rnn_kind kind;
    bool cell;
    nb_act act;
    int64_t n_in, hidden;
} fixture;

static void fixture_read(fixture *f, const char *name, nb_rnn_kind kind, bool cell)
{
    char path[512], meta[1024];
    snprintf(path, sizeof path, "%s/test/fixtures/%s.safetensors", top, name);
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_error e;
    if (nb_safetensors_read(path, &f->file, &fo, &e) != NB_OK)
        fail_msg("%s: %s", path, e.msg);
    char key[128], act[16] = "tanh";
    nb_meta_get(meta, "act", act, sizeof act);
    f->act = strcmp(act, "relu") ? NB_ACT_TANH : NB_ACT_RELU;
    f->kind = kind;
    f->cell = cell;
    snprintf(key, sizeof key, "%s.weight_ih%s", name, cell ? "" : "_l0");
    nb_tensor *w = nb_model_get(f->file, key);
    assert_non_null(w);
    int64_t g = kind == NB_RNN_LSTM ? 4 : kind == NB_RNN_GRU ? 3 : 1;
    f->hidden = nb_tensor_shape(w)[0] / g;
    f->n_in = nb_tensor_shape(w)[1];
}

/* A leaf of @p g holding the file's tensor @p name, needing a gradient. */
static nb_tensor *leaf(nb_graph *g, const fixture *f, const char *name)
{
    nb_tensor *t = nb_model_get(f->file, name);
    assert_non_null(t);
    nb_tensor *x = nb_tensor_from(g, NB_F64, nb_tensor_rank(t), nb_tensor_shape(t),
                                  nb_tensor_data(t));
    assert_non_null(x);
    nb_tensor_set_requires_grad(x, true);
    return x;
}

/* The layer of fixture @p name with the file's weights, in a new model. */
static nb_layer *layer_of(const fixture *f, const char *name, nb_model *m, bool all_steps)
{
    nb_rnn_opts o = nb_rnn_defaults();
    o.layer.dtype = NB_F64;
    o.layer.init = NB_INIT_ZEROS;
    o.all_steps = all_steps;
    o.act = f->act;
    nb_layer *l = NULL;
    nb_status st = f->cell ? nb_rnn_cell_new(m, name, f->kind, f->n_in, f->hidden, &o, &l)
                           : nb_rnn_new(m, name, f->kind, f->n_in, f->hidden, &o, &l);
    assert_int_equal(st, NB_OK);
    assert_int_equal(nb_model_count(m), 4);
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        nb_tensor *q = nb_model_get(f->file, nb_tensor_name(p));
        if (!q)
            fail_msg("the fixture has no %s", nb_tensor_name(p));
        assert_int_equal(nb_tensor_rank(p), nb_tensor_rank(q));
        assert_memory_equal(nb_tensor_shape(p), nb_tensor_shape(q),
                            (size_t)nb_tensor_rank(p) * sizeof(int64_t));
        memcpy(nb_tensor_data(p), nb_tensor_data(q), (size_t)nb_tensor_size(p) * 8);
    }
    return l;
}

/* Output and every gradient agree with PyTorch's to 1e-10. */
static void against_pytorch(const char *name, nb_rnn_kind kind, bool cell)
{
    fixture f;
    fixture_read(&f, name, kind, cell);
    nb_model *m = nb_model_new();
    nb_layer *l = layer_of(&f, name, m, true);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = leaf(g, &f, "x");
    nb_tensor *y = nb_layer_forward(g, l, x, true);
    if (!y)
        fail_msg("%s: %s", name, nb_graph_error(g)->msg);
    double dy = max_diff(y, nb_model_get(f.file, "y"));
    nb_tensor *w = leaf(g, &f, "w");
    nb_tensor *loss = nb_sum(g, nb_mul(g, y, w), NULL, 0, false);
    nb_model_zero_grad(m);
    assert_int_equal(nb_backward(g, loss), NB_OK);
    double dg = max_diff(nb_tensor_grad(x), nb_model_get(f.file, "grad/x"));
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        char key[160];
        snprintf(key, sizeof key, "grad/%s", nb_tensor_name(p));
        double d = max_diff(nb_tensor_grad(p), nb_model_get(f.file, key));
        dg = d > dg ? d : dg;
    }
    printf("%-10s output %.2e, gradients %.2e from PyTorch's\n", name, dy, dg);
    assert_true(dy <= 1e-10);
    assert_true(dg <= 1e-10);

    /* the last step alone is the all-steps output's last step */
    if (!cell) {
        nb_model *m2 = nb_model_new();
        nb_layer *last = layer_of(&f, name, m2, false);
        nb_tensor *h = nb_layer_forward(g, last, x, false);
        int64_t T = nb_tensor_shape(x)[1];
        nb_tensor *yT =
            nb_reshape(g, nb_slice(g, y, 1, T - 1, T, 1), 2, (int64_t[]){3, f.hidden});
        assert_true(max_diff(h, yT) == 0);
        nb_layer_free(last);
        nb_model_free(m2);
    }
    nb_graph_free(g);
    nb_layer_free(l);
    nb_model_free(m);
    nb_model_free(f.file);
}

static void test_against_pytorch(void **state)
{
    (void)state;
    against_pytorch("rnn_tanh", NB_RNN_ELMAN, false);
    against_pytorch("rnn_relu", NB_RNN_ELMAN, false);
    against_pytorch("gru", NB_RNN_GRU, false);
    against_pytorch("lstm", NB_RNN_LSTM, false);
    against_pytorch("rnn_cell", NB_RNN_ELMAN, true);
    against_pytorch("gru_cell", NB_RNN_GRU, true);
    against_pytorch("lstm_cell", NB_RNN_LSTM, true);
}

/* ------------------------------------------------------- gradient checks */

typedef struct ctx {
    nb_layer *l;
} ctx;

static nb_tensor *run_layer(nb_graph *g, nb_tensor *const *in, int n, void *c)
{
    (void)n;
    return nb_layer_forward(g, ((ctx *)c)->l, in[0], true);
}

/* An LSTM step: h and c both outputs of the function (their sum). */
static nb_tensor *run_step(nb_graph *g, nb_tensor *const *in, int n, void *c)
{
    (void)n;
    nb_tensor *c2 = NULL;
    nb_tensor *h = nb_rnn_cell_step(g, ((ctx *)c)->l, in[0], in[1], in[2], &c2);
    return h ? nb_add(g, h, c2) : NULL;
}

/* Reverse and forward mode against central differences, in f64, with
 * respect to the input (every kind, all steps or the last) and an LSTM
 * cell's state. (Truncation gives on purpose not the derivative: see
 * test_truncation.) */
static void test_gradcheck(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    for (int kind = 0; kind < 3; kind++)
        for (int variant = 0; variant < 2; variant++) {
            nb_model *m = nb_model_new();
            nb_rnn_opts o = nb_rnn_defaults();
            o.layer.dtype = NB_F64;
            o.layer.rng = &rng;
            o.all_steps = variant == 0;
            nb_layer *l = NULL;
            assert_int_equal(nb_rnn_new(m, "r", (nb_rnn_kind)kind, 3, 4, &o, &l), NB_OK);
            nb_graph *g = nb_graph_new();
            nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 3, (int64_t[]){2, 4, 3}, 0, 1);
            ctx c = {l};
            nb_check_result r;
            assert_int_equal(nb_gradcheck(run_layer, &c, &x, 1, NULL, &r), NB_OK);
            if (!r.pass)
                nb_check_print(&r, stdout);
            assert_true(r.pass);
            nb_graph_free(g);
            nb_layer_free(l);
            nb_model_free(m);
        }
    nb_model *m = nb_model_new();
    nb_rnn_opts o = nb_rnn_defaults();
    o.layer.dtype = NB_F64;
    o.layer.rng = &rng;
    nb_layer *cell = NULL;
    assert_int_equal(nb_rnn_cell_new(m, "c", NB_RNN_LSTM, 3, 4, &o, &cell), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_tensor *in[3] = {nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 3}, 0, 1),
                        nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 4}, 0, 1),
                        nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){2, 4}, 0, 1)};
    ctx c = {cell};
    nb_check_result r;
    assert_int_equal(nb_gradcheck(run_step, &c, in, 3, NULL, &r), NB_OK);
    assert_true(r.pass);
    nb_graph_free(g);
    nb_layer_free(cell);
    nb_model_free(m);
}

/* Truncation cuts the gradient and nothing else: the outputs are the
 * same, the last state does not depend on the first step's input when the
 * cut lies between them, and the steps after the last cut get the same
 * gradient as without truncation. */
static void test_truncation(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    nb_rnn_opts o = nb_rnn_defaults();
    o.layer.dtype = NB_F64;
    o.layer.rng = &rng;
    nb_model *m = nb_model_new();
    nb_layer *full = NULL, *cut = NULL;
    assert_int_equal(nb_rnn_new(m, "full", NB_RNN_LSTM, 3, 4, &o, &full), NB_OK);
    o.truncate = 2;
    assert_int_equal(nb_rnn_new(m, "cut", NB_RNN_LSTM, 3, 4, &o, &cut), NB_OK);
    nb_rnn_info fi, ci;
    nb_rnn_get_info(full, &fi);
    nb_rnn_get_info(cut, &ci);
    assert_int_equal(ci.truncate, 2);
    nb_tensor *pf[4] = {fi.weight_ih, fi.weight_hh, fi.bias_ih, fi.bias_hh};
    nb_tensor *pc[4] = {ci.weight_ih, ci.weight_hh, ci.bias_ih, ci.bias_hh};
    for (int i = 0; i < 4; i++)
        memcpy(nb_tensor_data(pc[i]), nb_tensor_data(pf[i]), (size_t)nb_tensor_size(pf[i]) * 8);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 3, (int64_t[]){2, 5, 3}, 0, 1);
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *gx[2];
    nb_tensor *y[2];
    for (int k = 0; k < 2; k++) {
        y[k] = nb_layer_forward(g, k ? cut : full, x, true);
        nb_tensor *dx = NULL;
        assert_int_equal(nb_grad(g, nb_sum(g, y[k], NULL, 0, false), NULL, &x, 1, &dx, false), NB_OK);
        gx[k] = dx;
    }
    assert_true(max_diff(y[0], y[1]) == 0);
    /* steps 0..3 are cut off from the last state (cuts before steps 2 and 4) */
    double early = 0, late = 0, early_full = 0;
    for (int64_t n = 0; n < 2; n++)
        for (int64_t t = 0; t < 5; t++)
            for (int64_t j = 0; j < 3; j++) {
                int64_t i = (n * 5 + t) * 3 + j;
                double a = nb_tensor_get(gx[1], i), b = nb_tensor_get(gx[0], i);
                if (t < 4) {
                    early = fmax(early, fabs(a));
                    early_full = fmax(early_full, fabs(b));
                } else {
                    late = fmax(late, fabs(a - b));
                }
            }
    assert_true(early == 0);
    assert_true(early_full > 1e-3);
    assert_true(late == 0);
    nb_graph_free(g);
    nb_layer_free(full);
    nb_layer_free(cut);
    nb_model_free(m);
}

/* The ops an LSTM step records (docs/models.md counts them): the 17 its
 * equations name — x·W_ihᵀ and its bias (2), h·W_hhᵀ and the sum (2), the
 * four gates cut out (4) and their σ, σ, tanh, σ (4), c' = f⊙c + i⊙g (3),
 * h' = o⊙tanh(c') (2) — and the step's input taken from [N, T, F]
 * (nb_select: a slice and a reshape): 19, for every step after the first. */
static void test_ops_per_step(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    nb_model *m = nb_model_new();
    nb_rnn_opts o = nb_rnn_defaults();
    o.layer.rng = &rng;
    nb_layer *l = NULL;
    assert_int_equal(nb_rnn_new(m, "lstm", NB_RNN_LSTM, 3, 4, &o, &l), NB_OK);
    int64_t nodes[3];
    for (int k = 0; k < 3; k++) {
        nb_graph *g = nb_graph_new();
        nb_tensor *x = nb_zeros(g, NB_F32, 3, (int64_t[]){2, 3 + k, 3});
        nb_tensor *y = nb_layer_forward(g, l, x, true);
        nodes[k] = nb_graph_nodes(g, y, NULL, 0);
        nb_graph_free(g);
    }
    assert_int_equal(nodes[1] - nodes[0], 19);
    assert_int_equal(nodes[2] - nodes[1], 19);
    nb_layer_free(l);
    nb_model_free(m);
}

/* ---------------------------------------------------------- networks */

/* An LSTM over rows and a linear head, described and built again: the
 * same parameters and outputs; the description says what the layer is. */
static void test_description(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    nb_model *m = nb_model_new();
    nb_rnn_opts o = nb_rnn_defaults();
    o.layer.rng = &rng;
    o.truncate = 3;
    nb_layer *net = NULL, *l = NULL;
    assert_int_equal(nb_sequential_new("", &net), NB_OK);
    assert_int_equal(nb_rnn_new(m, "lstm", NB_RNN_LSTM, 8, 16, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    nb_layer_opts lo = {.rng = &rng};
    assert_int_equal(nb_linear_new(m, "fc", 16, 10, &lo, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    o.act = NB_ACT_RELU;
    o.layer.no_bias = true;
    assert_int_equal(nb_rnn_cell_new(m, "cell", NB_RNN_ELMAN, 10, 10, &o, &l), NB_OK);
    assert_int_equal(nb_sequential_add(net, l), NB_OK);
    char desc[2048], again[2048];
    nb_error e;
    assert_int_equal(nb_layer_describe(net, desc, sizeof desc, &e), NB_OK);
    assert_non_null(strstr(desc, "layer.1=lstm name=lstm in=8 hidden=16 bias=1 all_steps=0 "
                                 "truncate=3\n"));
    assert_non_null(strstr(desc, "layer.3=rnn_cell name=cell in=10 hidden=10 bias=0 act=relu"));
    nb_model *m2 = nb_model_new();
    nb_layer *net2 = NULL;
    nb_layer_opts zero = {.init = NB_INIT_ZEROS};
    assert_int_equal(nb_layer_from_description(m2, NULL, desc, &zero, &net2, &e), NB_OK);
    assert_int_equal(nb_layer_describe(net2, again, sizeof again, &e), NB_OK);
    assert_string_equal(desc, again);
    assert_int_equal(nb_model_count(m2), nb_model_count(m));
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        nb_tensor *q = nb_model_get(m2, nb_tensor_name(p));
        assert_non_null(q);
        memcpy(nb_tensor_data(q), nb_tensor_data(p), (size_t)nb_tensor_size(p) * 4);
    }
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F32, 3, (int64_t[]){4, 6, 8}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, net, x, false), *y2 = nb_layer_forward(g, net2, x, false);
    assert_non_null(y);
    assert_true(max_diff(y, y2) == 0);
    int64_t want[2] = {4, 10};
    assert_memory_equal(nb_tensor_shape(y), want, sizeof want);

    /* bad settings in a description */
    const char *bad[] = {
        "layer.1=lstm name=l in=0 hidden=4 bias=1 all_steps=0 truncate=0",
        "layer.1=lstm name=l in=2 hidden=4 bias=1 all_steps=2 truncate=0",
        "layer.1=gru name=l in=2 hidden=4 bias=1 all_steps=0",
        "layer.1=rnn name=l in=2 hidden=4 bias=1 all_steps=0 truncate=0 act=sigmoid",
        "layer.1=lstm_cell name=l in=2 bias=1",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char d[512];
        snprintf(d, sizeof d, "arch=layers\nlayers=1\ndtype=f32\n%s", bad[k]);
        nb_model *mk = nb_model_new();
        nb_layer *n = NULL;
        if (nb_layer_from_description(mk, NULL, d, &zero, &n, &e) == NB_OK)
            fail_msg("case %zu built", k);
        assert_string_equal(e.name, "l");
        nb_model_free(mk);
    }
    nb_graph_free(g);
    nb_layer_free(net);
    nb_layer_free(net2);
    nb_model_free(m);
    nb_model_free(m2);
}

/* ------------------------------------------------------------ bad input */

static void test_bad_input(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_model *m = nb_model_new();
    nb_rnn_opts o = nb_rnn_defaults();
    o.layer.rng = &rng;
    nb_layer *l = NULL, *cell = NULL, *gru = NULL;
    assert_int_equal(nb_rnn_new(m, "lstm", NB_RNN_LSTM, 3, 4, &o, &l), NB_OK);
    assert_int_equal(nb_rnn_cell_new(m, "cell", NB_RNN_LSTM, 3, 4, &o, &cell), NB_OK);
    assert_int_equal(nb_rnn_cell_new(m, "gcell", NB_RNN_GRU, 3, 4, &o, &gru), NB_OK);
    int before = nb_model_count(m);

    /* constructors */
    nb_layer *x_l = NULL;
    assert_int_equal(nb_rnn_new(m, "lstm", NB_RNN_LSTM, 3, 4, &o, &x_l), NB_ERR_EXISTS);
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 0, 4, &o, &x_l), NB_ERR_ARG);
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 3, 0, &o, &x_l), NB_ERR_ARG);
    assert_int_equal(nb_rnn_new(m, "a", (nb_rnn_kind)7, 3, 4, &o, &x_l), NB_ERR_ARG);
    assert_int_equal(nb_rnn_new(NULL, "a", NB_RNN_LSTM, 3, 4, &o, &x_l), NB_ERR_NULL);
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 3, 4, &o, NULL), NB_ERR_NULL);
    nb_rnn_opts bad = o;
    bad.truncate = -1;
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 3, 4, &bad, &x_l), NB_ERR_ARG);
    bad = o;
    bad.act = NB_ACT_SIGMOID;
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_ELMAN, 3, 4, &bad, &x_l), NB_ERR_ARG);
    bad = o;
    bad.layer.dtype = (nb_dtype)5;
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 3, 4, &bad, &x_l), NB_ERR_DTYPE);
    bad = o;
    bad.layer.rng = NULL;
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 3, 4, &bad, &x_l), NB_ERR_NULL);
    bad.layer.init = NB_INIT_COUNT;
    assert_int_equal(nb_rnn_new(m, "a", NB_RNN_LSTM, 3, 4, &bad, &x_l), NB_ERR_ARG);
    assert_null(x_l);
    assert_int_equal(nb_model_count(m), before);

    /* inputs of the wrong rank, width or dtype; states of the wrong shape */
    nb_graph *g = nb_graph_new();
    struct {
        nb_tensor *x;
        const char *says;
    } cases[] = {
        {nb_zeros(g, NB_F32, 2, (int64_t[]){2, 3}), "lstm: input [2,3] must be [N, T, 3] (lstm over T >= 1 steps)"},
        {nb_zeros(g, NB_F32, 3, (int64_t[]){2, 5, 4}), "input [2,5,4] must be [N, T, 3]"},
        {nb_zeros(g, NB_F32, 3, (int64_t[]){2, 0, 3}), "input [2,0,3] must be [N, T, 3]"},
        {nb_zeros(g, NB_F64, 3, (int64_t[]){2, 5, 3}), "lstm: input is f64 but the parameters are f32"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_graph_clear_error(g);
        assert_null(nb_layer_forward(g, l, cases[k].x, true));
        if (!strstr(nb_graph_error(g)->msg, cases[k].says))
            fail_msg("case %zu: %s", k, nb_graph_error(g)->msg);
    }
    nb_tensor *x = nb_zeros(g, NB_F32, 2, (int64_t[]){2, 3});
    nb_tensor *h = nb_zeros(g, NB_F32, 2, (int64_t[]){2, 5});
    nb_tensor *c_out = NULL;
    nb_graph_clear_error(g);
    assert_null(nb_rnn_cell_step(g, cell, x, h, NULL, &c_out));
    assert_non_null(strstr(nb_graph_error(g)->msg, "cell: state h [2,5] (f32) must be [2, 4] f32"));
    nb_graph_clear_error(g);
    assert_null(nb_rnn_cell_step(g, cell, x, NULL, h, &c_out));
    assert_non_null(strstr(nb_graph_error(g)->msg, "state c [2,5]"));
    nb_graph_clear_error(g);
    assert_null(nb_rnn_cell_step(g, cell, x, NULL, NULL, NULL));
    assert_non_null(strstr(nb_graph_error(g)->msg, "c_out is NULL"));
    nb_graph_clear_error(g);
    assert_null(nb_rnn_cell_step(g, l, x, NULL, NULL, &c_out));
    assert_non_null(strstr(nb_graph_error(g)->msg, "layer 'lstm' is not a recurrent cell"));
    nb_graph_clear_error(g);
    assert_null(nb_rnn_cell_step(g, NULL, x, NULL, NULL, &c_out));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    assert_null(nb_rnn_cell_step(NULL, cell, x, NULL, NULL, &c_out));
    /* a GRU cell gives no c */
    nb_graph_clear_error(g);
    c_out = x;
    assert_non_null(nb_rnn_cell_step(g, gru, x, NULL, NULL, &c_out));
    assert_null(c_out);
    assert_non_null(nb_rnn_cell_step(g, gru, x, NULL, NULL, NULL));

    nb_rnn_info info;
    assert_int_equal(nb_rnn_get_info(cell, &info), NB_OK);
    assert_true(info.cell);
    assert_int_equal(info.hidden, 4);
    assert_int_equal(nb_rnn_get_info(NULL, &info), NB_ERR_NULL);
    nb_layer *fc = NULL;
    nb_layer_opts lo = {.rng = &rng};
    assert_int_equal(nb_linear_new(m, "fc", 2, 2, &lo, &fc), NB_OK);
    assert_int_equal(nb_rnn_get_info(fc, &info), NB_ERR_ARG);
    assert_string_equal(nb_rnn_kind_name(NB_RNN_GRU), "gru");
    assert_string_equal(nb_rnn_kind_name((nb_rnn_kind)9), "?");
    nb_layer_free(fc);
    nb_graph_free(g);
    nb_layer_free(l);
    nb_layer_free(cell);
    nb_layer_free(gru);
    nb_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_rnn SOURCE-ROOT\n");
        return 2;
    }
    top = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_pytorch), cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_truncation),      cmocka_unit_test(test_description),
        cmocka_unit_test(test_bad_input),       cmocka_unit_test(test_ops_per_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
