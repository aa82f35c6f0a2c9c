/* The trace of a small graph (nabla/teach.h): labels, the sweeps' numbers
 * against nb_grad and nb_jvp, the table and JSON writers, and every
 * refusal. */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/teach/trace.h"
#include "tc.h"

static nb_tensor *input(nb_graph *g, const char *name, double v)
{
    return nb_tensor_set_name(nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, v), true), name);
}

/* the notes' f(x; w, b) = 1/(exp(-(w*x + b)) + 1), op by op as written */
static nb_tensor *logistic(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b)
{
    nb_tensor *h2 = nb_add(g, nb_mul(g, w, x), b);
    nb_tensor *h5 = nb_add(g, nb_exp(g, nb_neg(g, h2)), nb_scalar(g, NB_F64, 1));
    return nb_div(g, nb_scalar(g, NB_F64, 1), h5);
}

/* the notes' example traced on x = 1, w = 0, b = 0 in a new graph *g */
static nb_trace *notes_trace(nb_graph **g)
{
    *g = nb_graph_new();
    nb_tensor *xs[3] = {input(*g, "x", 1), input(*g, "w", 0), input(*g, "b", 0)};
    nb_tensor *y = logistic(*g, xs[0], xs[1], xs[2]);
    nb_error err;
    nb_trace *tr = nb_trace_new(*g, y, xs, 3, &err);
    assert_non_null(tr);
    assert_int_equal(err.status, NB_OK);
    return tr;
}

/* the whole text a writer puts in a file */
static char *written(nb_status (*write)(const nb_trace *, FILE *, nb_error *), const nb_trace *tr)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    nb_error err;
    assert_int_equal(write(tr, f, &err), NB_OK);
    assert_int_equal(err.status, NB_OK);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static int node_of(const nb_trace *tr, const char *label)
{
    for (int k = 0; k < nb_trace_nodes(tr); k++)
        if (!strcmp(nb_trace_label(tr, k), label))
            return k;
    return -1;
}

static void test_notes_example(void **state)
{
    (void)state;
    nb_graph *g;
    nb_trace *tr = notes_trace(&g);
    assert_int_equal(nb_trace_sweeps(tr), 3);
    /* x, w, b, the constant 1 (once or twice), h1..h6 */
    const char *texts[] = {"w*x", "h1 + b", "-h2", "exp(h3)", "h4 + 1", "1/h5"};
    const double values[] = {0, 0, 0, 1, 2, 0.5};
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof name, "h%d", i + 1);
        int k = node_of(tr, name);
        assert_true(k >= 0);
        assert_string_equal(tr->nodes[k].text, texts[i]);
        assert_true(tr->value[tr->off[k]] == values[i]);
    }
    assert_int_equal(node_of(tr, "h7"), -1);
    assert_null(nb_trace_label(tr, -1));
    assert_null(nb_trace_label(tr, nb_trace_nodes(tr)));
    /* the reverse sweep: the notes' chain, and 8 steps (constants get none) */
    assert_int_equal(tr->n_steps, 8);
    assert_true(tr->steps[0].contrib[0] == -0.25);
    assert_true(tr->adjoint[tr->off[node_of(tr, "w")]] == 0.25);
    assert_true(tr->adjoint[tr->off[node_of(tr, "b")]] == 0.25);
    assert_true(tr->adjoint[tr->off[node_of(tr, "x")]] == 0);
    /* forward sweep 2 seeds w; its tangent reaches the output as 0.25 */
    assert_true(tr->tangent[1 * tr->total + tr->off[tr->n - 1]] == 0.25);

    char *table = written(nb_trace_print, tr);
    assert_non_null(strstr(table, "  h3   = -h2              = 0\n")); /* not -0 */
    assert_non_null(strstr(table, "forward mode, sweep 2 of 3: the tangent of w"));
    assert_non_null(strstr(table, "dh1/dw = \u2202h1/\u2202w\u00b7dw/dw + \u2202h1/\u2202x\u00b7dx/dw"
                                  " = 1\u00b71 + 0\u00b70 = 1\n"));
    assert_non_null(strstr(table, "dh6/dw = \u2202h6/\u2202h5\u00b7dh5/dw = (-0.25)\u00b7(-1) = 0.25"));
    assert_non_null(strstr(table, "g_h2 += \u2202h3/\u2202h2\u00b7g_h3"));
    assert_non_null(strstr(table, "(-1)\u00b7(-0.25)"));
    assert_non_null(strstr(table, "df/dw = 0.25"));
    assert_null(strstr(table, "-0 "));
    assert_null(strstr(table, "-0\n"));
    free(table);

    char *json = written(nb_trace_json, tr);
    assert_non_null(strstr(json, "{\"sweep\": \"eval\", \"node\": \"h3\", \"op\": \"neg\", \"text\": "
                                 "\"-h2\", \"inputs\": [\"h2\"], \"value\": 0}\n"));
    assert_non_null(strstr(json, "\"sweep\": \"reverse\", \"to\": \"w\", \"from\": \"h1\", "
                                 "\"local\": 1, \"adjoint_from\": 0.25, \"contribution\": 0.25, "
                                 "\"adjoint_to\": 0.25}"));
    free(json);
    nb_trace_free(tr);
    nb_graph_free(g);
}

/* tensors: W [2,2], x [2,1]: f = sum(tanh(W x)) * 0.5; an input used twice */
static void test_tensor_graph(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *W = nb_tensor_set_requires_grad(
        nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 2}, (double[]){0.5, -1, 2, 0.25}), true);
    nb_tensor *x = nb_tensor_set_requires_grad(
        nb_tensor_from(g, NB_F64, 2, (int64_t[]){2, 1}, (double[]){0.3, -0.7}), true);
    nb_tensor_set_name(W, "W");
    nb_tensor *h = nb_tanh(g, nb_matmul(g, W, x, false, false));
    nb_tensor *y = nb_sum(g, nb_mul(g, h, h), NULL, 0, false);
    assert_non_null(y);
    nb_tensor *xs[2] = {W, x};
    nb_error err;
    nb_trace *tr = nb_trace_new(g, y, xs, 2, &err);
    assert_non_null(tr);
    assert_int_equal(nb_trace_sweeps(tr), 6); /* 4 + 2 input elements */
    assert_int_equal(node_of(tr, "x2"), 1);   /* unnamed inputs by position */
    /* adjoints equal nb_grad's */
    nb_tensor *d[2];
    assert_int_equal(nb_grad(g, y, NULL, xs, 2, d, false), NB_OK);
    for (int l = 0; l < 4; l++)
        tc_near(tr->adjoint[tr->off[node_of(tr, "W")] + l], nb_tensor_get(d[0], l), 1e-15);
    for (int l = 0; l < 2; l++)
        tc_near(tr->adjoint[tr->off[node_of(tr, "x2")] + l], nb_tensor_get(d[1], l), 1e-15);
    /* h = tanh(...) feeds mul twice: two steps into it, summed */
    int hk = node_of(tr, "h2"), into_h = 0;
    for (int s = 0; s < tr->n_steps; s++)
        into_h += tr->steps[s].to == hk;
    assert_int_equal(into_h, 2);
    char *table = written(nb_trace_print, tr);
    assert_non_null(strstr(table, "h1   = matmul(W, x2)"));
    assert_non_null(strstr(table, "the tangent of W[3]"));
    assert_non_null(strstr(table, "J(h1, W)\u00b7dW/dW[0]"));
    assert_non_null(strstr(table, "g_W += J(h1, W)^T\u00b7g_h1"));
    free(table);
    char *json = written(nb_trace_json, tr);
    assert_non_null(strstr(json, "\"wrt\": \"x2[1]\""));
    free(json);
    nb_trace_free(tr);

    /* f32: the same numbers within f32's precision; an intermediate as input */
    nb_graph_reset(g);
    nb_tensor *a = nb_tensor_set_requires_grad(nb_scalar(g, NB_F32, 0.7), true);
    nb_tensor *mid = nb_sin(g, a);
    nb_tensor *z = nb_mul(g, mid, nb_exp(g, a));
    tr = nb_trace_new(g, z, &mid, 1, &err); /* a reaches z through exp too: a constant here */
    assert_non_null(tr);
    assert_string_equal(nb_trace_label(tr, 0), "0.7"); /* a: a constant of this trace */
    assert_int_equal(nb_trace_sweeps(tr), 1);
    tc_near(tr->adjoint[tr->off[node_of(tr, "x1")]], exp(0.7), 1e-6);
    nb_trace_free(tr);
    nb_graph_free(g);
}

/* a constant feeds an op whose local derivative in it is infinite (d 0^a /
 * d 0): no tangent flows from a constant, so the forward sweeps stay finite,
 * as nb_jvp's do */
static void test_constant_with_infinite_local(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *xs[2] = {input(g, "x", 0.5), input(g, "a", 0.75)};
    nb_tensor *y = nb_add(g, nb_mul(g, xs[0], nb_pow(g, nb_scalar(g, NB_F64, 0), xs[1])), xs[0]);
    nb_error err;
    nb_trace *tr = nb_trace_new(g, y, xs, 2, &err);
    assert_non_null(tr);
    assert_true(tr->tangent[tr->off[tr->n - 1]] == 1); /* dy/dx = 0^a + 1 = 1 */
    nb_trace_free(tr);
    nb_graph_free(g);
}

/* an op whose forward rule disagrees with its reverse rule is caught */
static nb_status sq_fwd(nb_graph *g, nb_tensor *out)
{
    (void)g;
    nb_tensor *x = nb_op_input(out, 0);
    for (int64_t i = 0; i < nb_tensor_size(out); i++)
        nb_tensor_set(out, i, nb_tensor_get(x, i) * nb_tensor_get(x, i));
    return NB_OK;
}

static nb_tensor *sq_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad)
{
    return nb_mul(g, grad, nb_scale(g, nb_op_input(out, i), 2.0));
}

static nb_tensor *sq_jvp_wrong(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_mul(g, t[0], nb_scale(g, nb_op_input(out, 0), 3.0));
}

static void test_disagreeing_rules(void **state)
{
    (void)state;
    int id = -1;
    nb_op_def d = {"t_teach_bad_square", 1, nb_op_like_input, sq_fwd, sq_vjp, sq_jvp_wrong};
    assert_int_equal(nb_op_register(&d, &id), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = input(g, "x", 1.5);
    nb_tensor *y = nb_apply(g, id, &x, 1, NULL);
    nb_error err;
    assert_null(nb_trace_new(g, y, &x, 1, &err));
    assert_int_equal(err.status, NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "forward sweep 1 gives 3, nb_jvp 4.5"));
    nb_graph_free(g);
}

static void test_refusals(void **state)
{
    (void)state;
    nb_graph *g = nb_graph_new();
    nb_tensor *x = input(g, "x", 1), *y = nb_sin(g, x);
    nb_error err;
    nb_tensor *two[2] = {x, x};
    struct {
        nb_graph *g;
        nb_tensor *y;
        nb_tensor *const *xs;
        int n;
        nb_status code;
        const char *msg;
    } bad[] = {
        {NULL, y, &x, 1, NB_ERR_NULL, "the graph is NULL"},
        {g, NULL, &x, 1, NB_ERR_NULL, "y is NULL"},
        {g, y, NULL, 1, NB_ERR_NULL, "xs is NULL"},
        {g, y, &x, 0, NB_ERR_ARG, "n = 0; give at least one input"},
        {g, y, two, 2, NB_ERR_ARG, "xs[0] and xs[1] are the same tensor"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(nb_trace_new(bad[i].g, bad[i].y, bad[i].xs, bad[i].n, &err));
        assert_int_equal(err.status, bad[i].code);
        assert_non_null(strstr(err.msg, bad[i].msg));
    }
    nb_tensor *null_in[1] = {NULL};
    assert_null(nb_trace_new(g, y, null_in, 1, &err));
    assert_non_null(strstr(err.msg, "xs[0] is NULL"));
    nb_trace *ok = nb_trace_new(g, y, &x, 1, NULL); /* no error to fill: fine */
    assert_non_null(ok);
    nb_trace_free(ok);
    assert_null(nb_trace_new(g, y, null_in, 1, NULL));

    /* a vector output */
    nb_tensor *v = nb_tensor_set_requires_grad(nb_zeros(g, NB_F64, 1, (int64_t[]){3}), true);
    nb_tensor *vy = nb_sin(g, v);
    assert_null(nb_trace_new(g, vy, &v, 1, &err));
    assert_int_equal(err.status, NB_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "y has shape [3]; a trace follows one scalar output"));
    /* too many input elements: one sweep each */
    nb_tensor *big = nb_tensor_set_requires_grad(nb_zeros(g, NB_F64, 1, (int64_t[]){300}), true);
    nb_tensor *by = nb_sum(g, big, NULL, 0, false);
    assert_null(nb_trace_new(g, by, &big, 1, &err));
    assert_non_null(strstr(err.msg, "the inputs have 300 elements, so 300 forward sweeps"));
    /* a tensor too large inside the graph */
    nb_tensor *wide = nb_broadcast_to(g, x, 1, (int64_t[]){300});
    nb_tensor *wy = nb_sum(g, wide, NULL, 0, false);
    assert_null(nb_trace_new(g, wy, &x, 1, &err));
    assert_int_equal(err.status, NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "a tensor of shape [300] (300 elements) is larger than a trace"));
    /* a graph error */
    nb_graph *other = nb_graph_new();
    nb_tensor *ox = input(other, "x", 1);
    assert_null(nb_trace_new(g, nb_sin(other, ox), &ox, 1, &err));
    assert_int_not_equal(err.status, NB_OK);
    nb_graph_free(other);

    /* writers: NULLs and a full disk */
    nb_trace *tr = nb_trace_new(g, y, &x, 1, &err);
    assert_non_null(tr);
    assert_int_equal(nb_trace_print(NULL, stdout, &err), NB_ERR_NULL);
    assert_int_equal(nb_trace_print(tr, NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_trace_json(NULL, stdout, &err), NB_ERR_NULL);
    assert_int_equal(nb_trace_json(tr, NULL, &err), NB_ERR_NULL);
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        assert_int_equal(nb_trace_print(tr, full, &err), NB_ERR_IO);
        assert_non_null(strstr(err.msg, "writing the trace failed"));
        clearerr(full);
        assert_int_equal(nb_trace_json(tr, full, &err), NB_ERR_IO);
        fclose(full);
    }
    nb_trace_free(tr);
    nb_trace_free(NULL);
    assert_int_equal(nb_trace_nodes(NULL), 0);
    assert_int_equal(nb_trace_sweeps(NULL), 0);
    nb_graph_free(g);
}

static nb_status svg_reverse(const nb_trace *tr, FILE *f, nb_error *err)
{
    return nb_trace_svg(tr, f, NB_TRACE_REVERSE, 0, err);
}

static nb_status svg_forward_w(const nb_trace *tr, FILE *f, nb_error *err)
{
    return nb_trace_svg(tr, f, NB_TRACE_FORWARD, 1, err);
}

static nb_status html_page(const nb_trace *tr, FILE *f, nb_error *err)
{
    return nb_trace_html(tr, f, "f = <1/(exp(-(w*x+b))+1)> & more", err);
}

/* the pictures: what they hold, and every refusal */
static void test_pictures(void **state)
{
    (void)state;
    nb_graph *g;
    nb_trace *tr = notes_trace(&g);
    nb_error err;
    char *svg = written(svg_reverse, tr);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(svg, ">h3 = -h2</text>"));
    assert_non_null(strstr(svg, ">\u1e21 = 0.25</text>")); /* g_w */
    assert_null(strstr(svg, "\u1e6b"));                   /* no tangents in reverse */
    free(svg);
    svg = written(svg_forward_w, tr);
    assert_non_null(strstr(svg, ">\u1e6b = 1</text>")); /* the seed dw/dw */
    assert_non_null(strstr(svg, ">-0.25</text>"));       /* the edge h5 -> h6 */
    free(svg);
    char *page = written(html_page, tr);
    assert_non_null(strstr(page, "default-src 'none'"));
    assert_non_null(strstr(page, "<title>f = &lt;1/(exp(-(w*x+b))+1)&gt; &amp; more</title>"));
    assert_non_null(strstr(page, "\"title\":\"f = \\u003c1/(exp(-(w*x+b))+1)\\u003e \\u0026 more\""));
    assert_non_null(strstr(page, "\"rows\":{\"eval\":[\"evaluation trace\",\"  h1   = w*x"));
    assert_non_null(strstr(page, "\"cost\":{\"ops\":6,\"sweeps\":3,\"forward\":18,\"reverse\":6}"));
    assert_null(strstr(page, "</script><")); /* the data closes its element once */
    free(page);

    assert_int_equal(nb_trace_svg(tr, stdout, (nb_trace_mode)7, 0, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "mode 7 is not one of nb_trace_mode's values"));
    assert_int_equal(nb_trace_svg(tr, stdout, NB_TRACE_FORWARD, 3, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "forward sweep 3 is not in 0..2"));
    assert_int_equal(nb_trace_svg(NULL, stdout, NB_TRACE_VALUES, 0, &err), NB_ERR_NULL);
    assert_int_equal(nb_trace_svg(tr, NULL, NB_TRACE_VALUES, 0, &err), NB_ERR_NULL);
    assert_int_equal(nb_trace_html(NULL, stdout, NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_trace_html(tr, NULL, NULL, &err), NB_ERR_NULL);
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        assert_int_equal(nb_trace_svg(tr, full, NB_TRACE_VALUES, 0, &err), NB_ERR_IO);
        clearerr(full);
        assert_int_equal(nb_trace_html(tr, full, NULL, &err), NB_ERR_IO);
        fclose(full);
    }
    nb_trace_free(tr);

    /* too large to draw: 1 + 2 * 120 tensors */
    nb_graph_reset(g);
    nb_tensor *x = input(g, "x", 0.5), *acc = x;
    for (int i = 0; i < 120; i++)
        acc = nb_add(g, nb_sin(g, acc), x);
    tr = nb_trace_new(g, acc, &x, 1, &err);
    assert_non_null(tr);
    assert_int_equal(nb_trace_html(tr, stdout, NULL, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "241 tensors, more than a picture can show readably (200); "
                                    "draw it with nb_graph_dot (nabla trace --dot) instead"));
    assert_int_equal(nb_trace_svg(tr, stdout, NB_TRACE_VALUES, 0, &err), NB_ERR_ARG);
    nb_trace_free(tr);
    nb_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notes_example),
        cmocka_unit_test(test_tensor_graph),
        cmocka_unit_test(test_disagreeing_rules),
        cmocka_unit_test(test_constant_with_infinite_local),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_pictures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
