/* Graph convolution: the layer's output is D^-1/2 (A + I) D^-1/2 X W + b
 * formed densely; reverse and forward mode against finite differences;
 * descriptions with the graph; bad graphs and inputs named. Layer norm
 * and embeddings, the other layers the model road adds, likewise. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* A five-node graph: a triangle 0-1-2, a tail 2-3, and 4 alone. */
static const int64_t EDGES[] = {0, 1, 1, 2, 2, 0, 3, 2};
enum { NODES = 5, N_EDGES = 4 };

static nb_layer *small_gcn(nb_model *m, nb_rng *rng)
{
    nb_layer_opts o = {.rng = rng, .dtype = NB_F64, .init = NB_INIT_XAVIER_NORMAL};
    nb_layer *l = NULL;
    nb_error e;
    assert_int_equal(nb_gcn_new(m, "g", 3, 2, NODES, EDGES, N_EDGES, &o, &l, &e), NB_OK);
    nb_tensor *b = nb_model_get(m, "g.bias");
    assert_non_null(b);
    nb_tensor_set(b, 0, 0.25);
    nb_tensor_set(b, 1, -0.5);
    return l;
}

static void test_against_dense(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    nb_model *m = nb_model_new();
    nb_layer *l = small_gcn(m, &rng);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){NODES, 3}, 0, 1);
    nb_tensor *y = nb_layer_forward(g, l, x, false);
    assert_non_null(y);
    /* Â densely */
    double a[NODES][NODES] = {{0}}, deg[NODES];
    for (int i = 0; i < NODES; i++)
        a[i][i] = 1;
    for (int e = 0; e < N_EDGES; e++)
        a[EDGES[2 * e]][EDGES[2 * e + 1]] = a[EDGES[2 * e + 1]][EDGES[2 * e]] = 1;
    for (int i = 0; i < NODES; i++) {
        deg[i] = 0;
        for (int j = 0; j < NODES; j++)
            deg[i] += a[i][j];
    }
    nb_tensor *w = nb_model_get(m, "g.weight"), *b = nb_model_get(m, "g.bias");
    double worst = 0;
    for (int i = 0; i < NODES; i++)
        for (int c = 0; c < 2; c++) {
            double want = nb_tensor_get(b, c);
            for (int j = 0; j < NODES; j++) {
                double xw = 0;
                for (int k = 0; k < 3; k++)
                    xw += nb_tensor_get(x, j * 3 + k) * nb_tensor_get(w, k * 2 + c);
                want += a[i][j] / sqrt(deg[i] * deg[j]) * xw;
            }
            worst = fmax(worst, fabs(want - nb_tensor_get(y, i * 2 + c)));
        }
    assert_true(worst < 1e-14);
    /* node 4 has only its loop: its row is x_4 W + b */
    nb_graph_free(g);
    nb_layer_free(l);
    nb_model_free(m);
}

typedef struct ctx {
    nb_layer *l;
} ctx;

static nb_tensor *run(nb_graph *g, nb_tensor *const *in, int n, void *c)
{
    (void)n;
    return nb_layer_forward(g, ((ctx *)c)->l, in[0], true);
}

static void test_gradcheck(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 4);
    nb_model *m = nb_model_new();
    ctx c = {small_gcn(m, &rng)};
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 2, (int64_t[]){NODES, 3}, 0, 1);
    nb_check_result r;
    assert_int_equal(nb_gradcheck(run, &c, &x, 1, NULL, &r), NB_OK);
    assert_true(r.pass);
    /* and the parameters receive gradients: W's by the chain rule */
    nb_tensor *loss = nb_sum(g, nb_square(g, nb_layer_forward(g, c.l, x, true)), NULL, 0, false);
    nb_model_zero_grad(m);
    assert_int_equal(nb_backward(g, loss), NB_OK);
    double s = 0;
    nb_tensor *gw = nb_tensor_grad(nb_model_get(m, "g.weight"));
    for (int64_t i = 0; i < 6; i++)
        s += fabs(nb_tensor_get(gw, i));
    assert_true(s > 0);
    nb_graph_free(g);
    nb_layer_free(c.l);
    nb_model_free(m);
}

static void test_description(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 6);
    nb_model *m = nb_model_new();
    nb_layer *seq = NULL, *l = small_gcn(m, &rng), *alone = NULL;
    assert_int_equal(nb_sequential_new("", &seq), NB_OK);
    assert_int_equal(nb_sequential_add(seq, l), NB_OK);
    nb_layer_opts o = {.rng = &rng, .dtype = NB_F64, .no_bias = true};
    assert_int_equal(nb_gcn_new(m, "h", 2, 2, 3, NULL, 0, &o, &alone, NULL), NB_OK);
    assert_int_equal(nb_sequential_add(seq, alone), NB_OK);
    char desc[1024], again[1024];
    nb_error e;
    assert_int_equal(nb_layer_describe(seq, desc, sizeof desc, &e), NB_OK);
    assert_non_null(strstr(desc, "layer.1=gcn name=g in=3 out=2 bias=1 nodes=5 "
                                 "edges=0-1,1-2,2-0,3-2\n"));
    assert_non_null(strstr(desc, "layer.2=gcn name=h in=2 out=2 bias=0 nodes=3 edges=-"));
    nb_model *m2 = nb_model_new();
    nb_layer *back = NULL;
    assert_int_equal(nb_layer_from_description(m2, NULL, desc, NULL, &back, &e), NB_OK);
    assert_int_equal(nb_layer_describe(back, again, sizeof again, &e), NB_OK);
    assert_string_equal(desc, again);
    nb_layer_free(back);
    /* too small a buffer for the edges */
    assert_int_equal(nb_layer_describe(seq, desc, 120, &e), NB_ERR_ARG);

    const char *bad[][2] = {
        {"in=3 out=2 bias=1 nodes=5", "edges= is missing"},
        {"in=3 out=2 bias=1 nodes=5 edges=0-1,", "edges= is missing or not pairs"},
        {"in=3 out=2 bias=1 nodes=5 edges=0+1", "edges= is missing or not pairs"},
        {"in=3 out=2 bias=1 nodes=5 edges=0-9", "names a node outside 0..4"},
        {"in=3 out=2 bias=1 nodes=5 edges=1-1", "is a loop"},
        {"in=3 out=2 bias=1 nodes=5 edges=0-1,1-0", "the edge (1, 0) is given twice"},
        {"in=3 out=2 bias=1 edges=0-1", "nodes= are required"},
        {"in=0 out=2 bias=1 nodes=5 edges=0-1", "its parameters could not be added"},
        {"in=3 out=2 bias=1 nodes=100000000 edges=0-1", "past the bound on bytes"},
    };
    nb_layer_opts bound = {.init = NB_INIT_ZEROS, .max_bytes = 1 << 20};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char d[512];
        snprintf(d, sizeof d, "arch=layers\nlayers=1\ndtype=f64\nlayer.1=gcn name=x %s", bad[k][0]);
        nb_model *mk = nb_model_new();
        if (nb_layer_from_description(mk, NULL, d, &bound, &back, &e) == NB_OK ||
            !strstr(e.msg, bad[k][1]))
            fail_msg("case %zu: %s", k, e.msg);
        assert_int_equal(nb_model_count(mk), 0);
        nb_model_free(mk);
    }
    nb_layer_free(seq);
    nb_model_free(m);
    nb_model_free(m2);
}

static void test_bad_input(void **state)
{
    (void)state;
    nb_model *m = nb_model_new();
    nb_layer *l = NULL;
    nb_error e;
    nb_layer_opts o = {.init = NB_INIT_ZEROS};
    const struct {
        int64_t nodes;
        int64_t edges[4];
        int n;
        const char *says;
    } bad[] = {
        {3, {0, 3}, 1, "edge 0 (0, 3) names a node outside 0..2"},
        {3, {0, -1}, 1, "names a node outside"},
        {3, {2, 2}, 1, "edge 0 (2, 2) is a loop"},
        {3, {0, 1, 1, 0}, 2, "the edge (1, 0) is given twice"},
        {0, {0}, 0, "a graph needs 1 or more nodes"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        assert_int_equal(nb_gcn_new(m, "g", 2, 2, bad[k].nodes, bad[k].edges, bad[k].n, &o, &l, &e),
                         NB_ERR_ARG);
        if (!strstr(e.msg, bad[k].says))
            fail_msg("case %zu: %s", k, e.msg);
        assert_string_equal(e.name, "g");
        assert_null(l);
        assert_int_equal(nb_model_count(m), 0);
    }
    assert_int_equal(nb_gcn_new(m, "g", 0, 2, 3, NULL, 0, &o, &l, &e), NB_ERR_ARG);
    assert_int_equal(nb_gcn_new(m, "g", 2, 2, 3, NULL, 1, &o, &l, &e), NB_ERR_NULL);
    assert_int_equal(nb_gcn_new(NULL, "g", 2, 2, 3, NULL, 0, &o, &l, &e), NB_ERR_NULL);
    nb_layer_opts f16 = {.dtype = (nb_dtype)7};
    assert_int_equal(nb_gcn_new(m, "g", 2, 2, 3, NULL, 0, &f16, &l, &e), NB_ERR_DTYPE);
    assert_int_equal(nb_gcn_new(m, "g", 2, 2, 3, (const int64_t[]){0, 1}, 1, &o, &l, &e), NB_OK);
    nb_layer *l2 = NULL;
    assert_int_equal(nb_gcn_new(m, "g", 2, 2, 3, NULL, 0, &o, &l2, &e), NB_ERR_EXISTS);

    nb_graph *g = nb_graph_new();
    assert_null(nb_layer_forward(g, l, nb_zeros(g, NB_F32, 2, (int64_t[]){4, 2}), false));
    assert_string_equal(nb_graph_error(g)->msg, "g: input [4,2] must be [3 nodes, 2 features]");
    nb_graph_clear_error(g);
    assert_null(nb_layer_forward(g, l, nb_zeros(g, NB_F64, 2, (int64_t[]){3, 2}), false));
    assert_string_equal(nb_graph_error(g)->msg, "g: input is f64 but the parameters are f32");

    /* every allocation failing in turn: out of memory, nothing leaked */
    for (long k = 1; k < 12; k++) {
        tc_counting c = {0};
        nb_model *cm = nb_model_new_alloc(tc_counting_alloc, &c);
        c.fail_at = c.calls + k;
        nb_layer *cl = NULL;
        nb_status st = nb_gcn_new(cm, "g", 2, 2, 3, (const int64_t[]){0, 1, 1, 2}, 2, &o, &cl, &e);
        if (st == NB_OK)
            nb_layer_free(cl);
        else
            assert_int_equal(st, NB_ERR_NOMEM);
        nb_model_free(cm);
        assert_int_equal(c.live, 0);
    }
    nb_graph_free(g);
    nb_layer_free(l);
    nb_model_free(m);
}

/* Layer norm: each row's mean 0 and variance 1 before γ, β, the formula
 * to 1e-14, the gradient against finite differences; an embedding gives
 * its rows, adds gradients into the rows used (twice for an index given
 * twice), and names an index that is not one. */
static void test_layer_norm_and_embedding(void **state)
{
    (void)state;
    nb_rng rng;
    nb_rng_seed(&rng, 8);
    nb_model *m = nb_model_new();
    nb_layer_opts o = {.dtype = NB_F64, .rng = &rng};
    nb_layer *ln = NULL, *emb = NULL;
    assert_int_equal(nb_layer_norm_new(m, "ln", 4, 1e-5, &o, &ln), NB_OK);
    nb_tensor_set(nb_model_get(m, "ln.weight"), 1, 2.0);
    nb_tensor_set(nb_model_get(m, "ln.bias"), 2, -1.0);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_normal(g, &rng, NB_F64, 3, (int64_t[]){2, 3, 4}, 1, 3);
    nb_tensor *y = nb_layer_forward(g, ln, x, true);
    assert_non_null(y);
    double worst = 0;
    for (int r = 0; r < 6; r++) {
        double mu = 0, var = 0;
        for (int j = 0; j < 4; j++)
            mu += nb_tensor_get(x, r * 4 + j) / 4;
        for (int j = 0; j < 4; j++)
            var += pow(nb_tensor_get(x, r * 4 + j) - mu, 2) / 4;
        for (int j = 0; j < 4; j++) {
            double want = (nb_tensor_get(x, r * 4 + j) - mu) / sqrt(var + 1e-5) *
                              (j == 1 ? 2.0 : 1.0) +
                          (j == 2 ? -1.0 : 0.0);
            worst = fmax(worst, fabs(want - nb_tensor_get(y, r * 4 + j)));
        }
    }
    assert_true(worst < 1e-14);
    ctx c = {ln};
    nb_check_result r;
    assert_int_equal(nb_gradcheck(run, &c, &x, 1, NULL, &r), NB_OK);
    assert_true(r.pass);
    assert_null(nb_layer_forward(g, ln, nb_zeros(g, NB_F64, 2, (int64_t[]){2, 5}), true));
    assert_string_equal(nb_graph_error(g)->msg, "ln: input [2,5] must end in 4 features");
    nb_graph_clear_error(g);

    assert_int_equal(nb_embedding_new(m, "emb", 5, 3, &o, &emb), NB_OK);
    nb_tensor *w = nb_model_get(m, "emb.weight");
    double s = 0;
    for (int i = 0; i < 15; i++)
        s += nb_tensor_get(w, i) * nb_tensor_get(w, i);
    assert_true(s > 1 && s < 60); /* drawn from N(0, 1), not zeros */
    nb_tensor *ids = nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 2}, (double[]){4, 0, 4, 2});
    nb_tensor *e = nb_layer_forward(g, emb, ids, true);
    assert_non_null(e);
    assert_memory_equal(nb_tensor_shape(e), ((int64_t[]){2, 2, 3}), 3 * sizeof(int64_t));
    for (int k = 0; k < 3; k++) {
        assert_true(nb_tensor_get(e, k) == nb_tensor_get(w, 12 + k));
        assert_true(nb_tensor_get(e, 9 + k) == nb_tensor_get(w, 6 + k));
    }
    nb_model_zero_grad(m);
    assert_int_equal(nb_backward(g, nb_sum(g, e, NULL, 0, false)), NB_OK);
    nb_tensor *gw = nb_tensor_grad(w);
    double want_rows[5] = {1, 0, 1, 0, 2};
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 3; k++)
            assert_true(nb_tensor_get(gw, i * 3 + k) == want_rows[i]);
    const double bad_ids[] = {5, -1, 1.5, NAN};
    for (int k = 0; k < 4; k++) {
        nb_graph_clear_error(g);
        nb_tensor *b = nb_tensor_from(g, NB_F64, 1, (int64_t[]){2}, (double[]){0, bad_ids[k]});
        assert_null(nb_layer_forward(g, emb, b, true));
        assert_non_null(strstr(nb_graph_error(g)->msg, "input entry 1 is"));
        assert_non_null(strstr(nb_graph_error(g)->msg, "not an index from 0 to 4"));
    }

    /* described and built again */
    nb_layer *seq = NULL;
    assert_int_equal(nb_sequential_new("", &seq), NB_OK);
    assert_int_equal(nb_sequential_add(seq, emb), NB_OK);
    assert_int_equal(nb_sequential_add(seq, ln), NB_OK);
    char desc[512], again[512];
    nb_error err;
    assert_int_equal(nb_layer_describe(seq, desc, sizeof desc, &err), NB_OK);
    assert_non_null(strstr(desc, "layer.1=embedding name=emb num=5 dim=3\n"));
    assert_non_null(strstr(desc, "layer.2=layer_norm name=ln features=4 eps=1.0000000000000001e-05"));
    nb_model *m2 = nb_model_new();
    nb_layer *back = NULL;
    assert_int_equal(nb_layer_from_description(m2, NULL, desc, NULL, &back, &err), NB_OK);
    assert_int_equal(nb_layer_describe(back, again, sizeof again, &err), NB_OK);
    assert_string_equal(desc, again);
    const char *bad[] = {"layer.1=embedding name=e num=0 dim=3", "layer.1=embedding name=e dim=3",
                         "layer.1=layer_norm name=l features=4 eps=0",
                         "layer.1=layer_norm name=l eps=1e-5"};
    for (int k = 0; k < 4; k++) {
        char d[256];
        snprintf(d, sizeof d, "arch=layers\nlayers=1\ndtype=f64\n%s", bad[k]);
        nb_model *mk = nb_model_new();
        nb_layer *bl = NULL;
        assert_int_equal(nb_layer_from_description(mk, NULL, d, NULL, &bl, &err), NB_ERR_ARG);
        assert_non_null(strstr(err.msg, "are required"));
        nb_model_free(mk);
    }
    /* constructors refuse what they cannot build, adding nothing */
    nb_layer *x_l = NULL;
    int before = nb_model_count(m);
    assert_int_equal(nb_layer_norm_new(m, "ln", 4, 1e-5, &o, &x_l), NB_ERR_EXISTS);
    assert_int_equal(nb_layer_norm_new(m, "l2", 0, 1e-5, &o, &x_l), NB_ERR_ARG);
    assert_int_equal(nb_layer_norm_new(m, "l2", 4, 0, &o, &x_l), NB_ERR_ARG);
    assert_int_equal(nb_layer_norm_new(NULL, "l2", 4, 1e-5, &o, &x_l), NB_ERR_NULL);
    assert_int_equal(nb_embedding_new(m, "emb", 5, 3, &o, &x_l), NB_ERR_EXISTS);
    assert_int_equal(nb_embedding_new(m, "e2", 0, 3, &o, &x_l), NB_ERR_ARG);
    nb_layer_opts no_rng = {.dtype = NB_F64};
    assert_int_equal(nb_embedding_new(m, "e2", 5, 3, &no_rng, &x_l), NB_ERR_NULL);
    nb_layer_opts f16 = {.dtype = (nb_dtype)9};
    assert_int_equal(nb_embedding_new(m, "e2", 5, 3, &f16, &x_l), NB_ERR_DTYPE);
    assert_int_equal(nb_layer_norm_new(m, "l2", 4, 1e-5, &f16, &x_l), NB_ERR_DTYPE);
    assert_int_equal(nb_model_count(m), before);
    nb_layer_free(back);
    nb_model_free(m2);
    nb_layer_free(seq);
    nb_graph_free(g);
    nb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_dense),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_description),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_layer_norm_and_embedding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
