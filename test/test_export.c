/* nabla export, run as a user would (the path of the nabla binary is
 * argv[1]): MLPs of every activation, with and without batch norm, in f32
 * and f64, exported to C, compiled with the system's C compiler together
 * with a small driver, run, and their outputs compared with the library's
 * forward pass; conversions between checkpoints and safetensors files
 * compared bit for bit; bad input refused with one line and status 2. */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tc.h"

static const char *nabla;
static char dir[64];
static bool have_cc;

typedef tc_run_result run_result;

/* "nabla export ARGS" */
static run_result *export(const char *args)
{
    char cmd[1536];
    snprintf(cmd, sizeof cmd, "'%s' export %s", nabla, args);
    return tc_run(cmd);
}

/* One line on stderr, "nabla export: ...", holding @p what; status 2. */
static void refused(run_result *r, const char *what)
{
    if (r->status != 2 || strncmp(r->err, "nabla export: ", 14) != 0 || !strstr(r->err, what))
        fail_msg("status %d, stderr '%s' (want 2 and '%s')", r->status, r->err, what);
    assert_int_equal(strchr(r->err, '\n') - r->err, (long)strlen(r->err) - 1);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static const char *path_in(const char *name)
{
    static char p[16][128];
    static int k;
    k = (k + 1) % 16;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* ------------------------------------------------------------- models */

typedef struct config {
    nb_dtype dtype;
    nb_act act, out_act;
    bool batch_norm;
    int n_sizes;
    int64_t sizes[5];
    nb_act_opts ao;
    bool custom_ao;
    const char *prefix; /* names "<prefix>.fc1.weight", ... */
} config;

typedef struct net {
    nb_model *m;
    nb_layer *layer;
    char meta[1024];
} net;

/* nb_mlp_new, then every tensor set to random values (running variances
 * positive) so that biases, batch norm and learned slopes all matter. */
static void net_make(net *n, const config *c, uint64_t seed)
{
    nb_rng r;
    nb_rng_seed(&r, seed);
    n->m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.dtype = c->dtype;
    o.layer.rng = &r;
    o.act = c->act;
    o.out_act = c->out_act;
    o.batch_norm = c->batch_norm;
    o.dropout = 0.25; /* evaluation mode: no effect */
    if (c->custom_ao)
        o.act_opts = &c->ao;
    assert_int_equal(nb_mlp_new(n->m, c->prefix, c->sizes, c->n_sizes, &o, &n->layer), NB_OK);
    for (nb_tensor *p = nb_model_next(n->m, NULL); p; p = nb_model_next(n->m, p)) {
        bool var = strstr(nb_tensor_name(p), "running_var") != NULL;
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            nb_tensor_set(p, i, var ? 0.5 + 1.5 * nb_rng_uniform(&r) : 0.8 * nb_rng_normal(&r));
    }
    assert_int_equal(nb_layer_describe(n->layer, n->meta, sizeof n->meta, NULL), NB_OK);
}

static void net_free(net *n)
{
    nb_layer_free(n->layer);
    nb_model_free(n->m);
}

enum { ROWS = 9 };

/* Inputs: random, one row of zeros, one of large values, one with a NaN
 * (which the exported code carries through as the library does). */
static void inputs(double *x, int64_t n_in, uint64_t seed)
{
    nb_rng r;
    nb_rng_seed(&r, seed);
    for (int64_t i = 0; i < ROWS * n_in; i++)
        x[i] = 2 * nb_rng_normal(&r);
    for (int64_t i = 0; i < n_in; i++) {
        x[i] = 0;
        x[n_in + i] = (i % 2 ? -9 : 7.5);
    }
    x[2 * n_in] = NAN;
}

/* The library's forward pass of @p layer in evaluation mode on ROWS rows
 * of @p n_in values, as doubles. */
static void layer_forward(nb_layer *layer, nb_dtype dt, int64_t n_in, int64_t n_out,
                          const double *x, double *y)
{
    nb_graph *g = nb_graph_new();
    nb_tensor *X = nb_zeros(g, dt, 2, (int64_t[]){ROWS, n_in});
    for (int64_t i = 0; i < ROWS * n_in; i++)
        nb_tensor_set(X, i, x[i]);
    nb_tensor *Y = nb_layer_forward(g, layer, X, false);
    if (!Y)
        fail_msg("%s", nb_graph_error(g)->msg);
    assert_int_equal(nb_tensor_size(Y), ROWS * n_out);
    for (int64_t i = 0; i < ROWS * n_out; i++)
        y[i] = nb_tensor_get(Y, i);
    nb_graph_free(g);
}

static void library_forward(net *n, const config *c, const double *x, double *y)
{
    layer_forward(n->layer, c->dtype, c->sizes[0], c->sizes[c->n_sizes - 1], x, y);
}

/* Compile @p c_file with a driver and run its nabla_<pfx>_forward on ROWS
 * rows of x; outputs into y. */
static void run_compiled(const char *c_file, const char *pfx, nb_dtype dt, int64_t n_in,
                         int64_t n_out, const double *x, double *y)
{
    const char *T = dt == NB_F32 ? "float" : "double";
    const char *drv = path_in("driver.c"), *in = path_in("in.txt"), *exe = path_in("mlp");
    FILE *f = fopen(drv, "w");
    assert_non_null(f);
    fprintf(f,
            "#include <stdio.h>\n"
            "int nabla_%s_forward(const %s *x, %s *logits);\n"
            "int main(void)\n{\n"
            "    %s x[%lld], y[%lld];\n"
            "    for (;;) {\n"
            "        for (int i = 0; i < %lld; i++) {\n"
            "            double v;\n"
            "            if (scanf(\"%%la\", &v) != 1)\n"
            "                return 0;\n"
            "            x[i] = (%s)v;\n"
            "        }\n"
            "        if (nabla_%s_forward(x, y) != 0)\n"
            "            return 1;\n"
            "        for (int j = 0; j < %lld; j++)\n"
            "            printf(\"%%a\\n\", (double)y[j]);\n"
            "    }\n}\n",
            pfx, T, T, T, (long long)n_in, (long long)n_out, (long long)n_in, T, pfx,
            (long long)n_out);
    fclose(f);
    f = fopen(in, "w");
    assert_non_null(f);
    for (int64_t i = 0; i < ROWS * n_in; i++)
        fprintf(f, "%a\n", dt == NB_F32 ? (double)(float)x[i] : x[i]);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -pedantic -Wall -Wextra -Werror -O1 -ffp-contract=off -o '%s' '%s' "
             "'%s' -lm",
             exe, c_file, drv);
    run_result *r = tc_run(cmd);
    if (r->status != 0)
        fail_msg("compiling %s failed: %s", c_file, r->err);
    snprintf(cmd, sizeof cmd, "'%s' < '%s'", exe, in);
    r = tc_run(cmd);
    assert_int_equal(r->status, 0);
    char *p = r->out;
    for (int64_t i = 0; i < ROWS * n_out; i++) {
        char *end;
        y[i] = strtod(p, &end);
        assert_true(end != p);
        p = end;
    }
}

/* The MLP of @p c compiled from @p c_file, run on x. */
static void compiled_forward(const char *c_file, const config *c, const double *x, double *y)
{
    run_compiled(c_file, "mlp", c->dtype, c->sizes[0], c->sizes[c->n_sizes - 1], x, y);
}

/* Largest |a - b| / max(1, |b|) (NaN where only one is NaN: infinite). */
static double worst_rel(const double *a, const double *b, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) {
            if (isnan(a[i]) != isnan(b[i]))
                return INFINITY;
            continue;
        }
        double e = a[i] == b[i] ? 0 : fabs(a[i] - b[i]) / fmax(1, fabs(b[i]));
        worst = fmax(worst, e);
    }
    return worst;
}

/* Export @p n to C, compile and run it on x (ROWS rows) into got, and run
 * the library's forward pass on x into want. */
static void run_both(net *n, const config *c, const double *x, double *want, double *got)
{
    const char *ckpt = path_in("m.ckpt"), *src = path_in("mlp.c");
    nb_ckpt_opts co = {.meta = n->meta};
    assert_int_equal(nb_model_save(n->m, NULL, ckpt, &co, NULL), NB_OK);
    unlink(src);
    char args[512];
    snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, src);
    run_result *r = export(args);
    if (r->status != 0)
        fail_msg("%s (%s): %s", nb_act_name(c->act), nb_dtype_name(c->dtype), r->err);
    assert_non_null(strstr(r->out, "wrote"));
    library_forward(n, c, x, want);
    compiled_forward(src, c, x, got);
}

/* Export @p c's model to C, compile, run, compare with the library. */
static double check_config(const config *c, uint64_t seed)
{
    net n;
    net_make(&n, c, seed);
    int64_t n_in = c->sizes[0], n_out = c->sizes[c->n_sizes - 1];
    double *x = malloc(sizeof *x * ROWS * (size_t)n_in);
    double *want = malloc(sizeof *want * ROWS * (size_t)n_out);
    double *got = malloc(sizeof *got * ROWS * (size_t)n_out);
    inputs(x, n_in, seed + 100);
    if (c->dtype == NB_F32)
        for (int64_t i = 0; i < ROWS * n_in; i++)
            x[i] = (float)x[i];
    run_both(&n, c, x, want, got);
    double e = worst_rel(got, want, ROWS * n_out);
    /* f64: rounding of a few sums in another order; f32 the same in float */
    double tol = c->dtype == NB_F64 ? 1e-13 : 1e-5;
    if (!(e <= tol))
        fail_msg("%s%s (%s): exported C differs from the library by %g (relative)",
                 nb_act_name(c->act), c->batch_norm ? " + batch norm" : "", nb_dtype_name(c->dtype),
                 e);
    free(x);
    free(want);
    free(got);
    net_free(&n);
    return e;
}

/* ------------------------------------------------------------- tests */

static void test_every_activation_f64(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    for (int a = 0; a < NB_ACT_COUNT; a++) {
        config c = {.dtype = NB_F64,
                    .act = (nb_act)a,
                    .out_act = NB_ACT_IDENTITY,
                    .batch_norm = a % 2 == 0,
                    .n_sizes = 4,
                    .sizes = {5, 6, 4, 3}};
        if (a == NB_ACT_MAXOUT) {
            c.ao = nb_act_defaults(NB_ACT_MAXOUT);
            c.ao.pieces = 3;
            c.custom_ao = true;
        }
        if (a == NB_ACT_LEAKY_RELU || a == NB_ACT_ELU || a == NB_ACT_SWISH || a == NB_ACT_RRELU) {
            c.ao = nb_act_defaults((nb_act)a);
            c.ao.alpha = 0.3, c.ao.beta = 1.7, c.ao.lower = 0.05, c.ao.upper = 0.45;
            c.custom_ao = true;
        }
        check_config(&c, 10 + (uint64_t)a);
    }
}

/* The exported sigmoid keeps its relative accuracy in both tails, as the
 * library's does: a 1-1 network y = σ(x) at x far below and above 0. */
static void test_sigmoid_tails(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    for (int d = 0; d < 2; d++) {
        config c = {.dtype = d ? NB_F64 : NB_F32,
                    .act = NB_ACT_IDENTITY,
                    .out_act = NB_ACT_SIGMOID,
                    .n_sizes = 2,
                    .sizes = {1, 1}};
        net n;
        net_make(&n, &c, 3);
        for (nb_tensor *p = nb_model_next(n.m, NULL); p; p = nb_model_next(n.m, p))
            nb_tensor_set(p, 0, strstr(nb_tensor_name(p), "weight") ? 1 : 0);
        const double x[ROWS] = {-80, -40, -30, -20, -5, 0, 5, 20, d ? -700 : -87};
        double want[ROWS], got[ROWS];
        run_both(&n, &c, x, want, got);
        for (int i = 0; i < ROWS; i++) {
            double ref = 1 / (1 + exp(-x[i]));
            if (c.dtype == NB_F32)
                ref = (float)ref;
            /* library and exported code both within a few ulps of σ */
            double tol = (c.dtype == NB_F32 ? 0x1p-24 : 0x1p-53) * 4;
            if (!(ref > 0 && fabs(want[i] - ref) <= tol * ref && fabs(got[i] - ref) <= tol * ref))
                fail_msg("%s sigmoid(%g): library %a, exported %a, reference %a",
                         nb_dtype_name(c.dtype), x[i], want[i], got[i], ref);
        }
        net_free(&n);
    }
}

static void test_f32_and_output_activations(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    const config cases[] = {
        {.dtype = NB_F32,
         .act = NB_ACT_RELU,
         .out_act = NB_ACT_IDENTITY,
         .batch_norm = true,
         .n_sizes = 4,
         .sizes = {8, 16, 12, 10}},
        {.dtype = NB_F32,
         .act = NB_ACT_TANH,
         .out_act = NB_ACT_SIGMOID,
         .batch_norm = false,
         .n_sizes = 3,
         .sizes = {5, 7, 4}},
        {.dtype = NB_F32,
         .act = NB_ACT_PRELU,
         .out_act = NB_ACT_IDENTITY,
         .batch_norm = true,
         .n_sizes = 3,
         .sizes = {4, 6, 3}},
        {.dtype = NB_F32,
         .act = NB_ACT_GELU_TANH,
         .out_act = NB_ACT_SOFTPLUS,
         .batch_norm = true,
         .n_sizes = 3,
         .sizes = {4, 6, 3}},
        {.dtype = NB_F32,
         .act = NB_ACT_SWISH_LEARNED,
         .out_act = NB_ACT_IDENTITY,
         .batch_norm = false,
         .n_sizes = 3,
         .sizes = {4, 6, 3}},
        {.dtype = NB_F32,
         .act = NB_ACT_MAXOUT,
         .out_act = NB_ACT_IDENTITY,
         .batch_norm = true,
         .n_sizes = 3,
         .sizes = {4, 6, 3}},
        {.dtype = NB_F32,
         .act = NB_ACT_SOFTSIGN,
         .out_act = NB_ACT_IDENTITY,
         .batch_norm = true,
         .n_sizes = 3,
         .sizes = {4, 6, 3},
         .prefix = "model.mlp"},
        {.dtype = NB_F64,
         .act = NB_ACT_SIGMOID,
         .out_act = NB_ACT_TANH,
         .batch_norm = false,
         .n_sizes = 2,
         .sizes = {6, 3}}, /* one layer */
        {.dtype = NB_F64,
         .act = NB_ACT_RELU,
         .out_act = NB_ACT_HARD_SIGMOID,
         .batch_norm = true,
         .n_sizes = 5,
         .sizes = {3, 4, 5, 4, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_config(&cases[i], 50 + i);
}

/* Same bits, same names, same metadata. */
static void same_models(nb_model *a, nb_model *b)
{
    assert_int_equal(nb_model_count(a), nb_model_count(b));
    for (nb_tensor *p = nb_model_next(a, NULL); p; p = nb_model_next(a, p)) {
        nb_tensor *q = nb_model_get(b, nb_tensor_name(p));
        assert_non_null(q);
        assert_int_equal(nb_tensor_size(p), nb_tensor_size(q));
        assert_memory_equal(nb_tensor_data(p), nb_tensor_data(q),
                            (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
    }
}

static void test_conversions(void **state)
{
    (void)state;
    config c = {.dtype = NB_F32,
                .act = NB_ACT_ELU,
                .out_act = NB_ACT_IDENTITY,
                .batch_norm = true,
                .n_sizes = 4,
                .sizes = {5, 6, 4, 3}};
    net n, fresh;
    net_make(&n, &c, 7);
    const char *ckpt = path_in("c.ckpt"), *st = path_in("c.safetensors"),
               *back = path_in("back.ckpt");
    nb_ckpt_opts co = {.meta = n.meta};
    assert_int_equal(nb_model_save(n.m, NULL, ckpt, &co, NULL), NB_OK);
    char args[512];
    snprintf(args, sizeof args, "--load '%s' --safetensors '%s'", ckpt, st);
    run_result *r = export(args);
    if (r->status != 0)
        fail_msg("%s", r->err);

    /* the safetensors file holds the same tensors and metadata */
    net_make(&fresh, &c, 8);
    char meta[1024];
    nb_file_opts lo = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_error err;
    assert_int_equal(nb_model_load_safetensors(fresh.m, st, &lo, &err), NB_OK);
    same_models(n.m, fresh.m);
    assert_string_equal(meta, n.meta);
    net_free(&fresh);

    /* and back to a checkpoint */
    snprintf(args, sizeof args, "--load '%s' --ckpt '%s'", st, back);
    r = export(args);
    assert_int_equal(r->status, 0);
    net_make(&fresh, &c, 9);
    nb_ckpt_opts clo = {.meta_out = meta, .meta_cap = sizeof meta};
    assert_int_equal(nb_model_load(fresh.m, NULL, back, &clo, &err), NB_OK);
    same_models(n.m, fresh.m);
    assert_string_equal(meta, n.meta);
    net_free(&fresh);

    /* C from the safetensors file computes what C from the checkpoint does */
    if (have_cc) {
        const char *c1 = path_in("from_ckpt.c"), *c2 = path_in("from_st.c");
        snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, c1);
        assert_int_equal(export(args)->status, 0);
        snprintf(args, sizeof args, "--load '%s' --c '%s'", st, c2);
        assert_int_equal(export(args)->status, 0);
        double x[ROWS * 5], y1[ROWS * 3], y2[ROWS * 3], want[ROWS * 3];
        inputs(x, 5, 3);
        for (int i = 0; i < ROWS * 5; i++)
            x[i] = (float)x[i];
        compiled_forward(c1, &c, x, y1);
        compiled_forward(c2, &c, x, y2);
        assert_memory_equal(y1, y2, sizeof y1);
        library_forward(&n, &c, x, want);
        assert_true(worst_rel(y1, want, ROWS * 3) <= 1e-6);
    }
    net_free(&n);
}

static nb_status list_name(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape)
{
    int *found = ud;
    if (!strcmp(name, "input.mean") || !strcmp(name, "input.std"))
        *found += dt == NB_F64 && rank == 1 && shape[0] == 4;
    return NB_OK;
}

/* A model trained by nabla train on a CSV with large offsets and scales:
 * the exported C takes raw rows (it applies the stored standardisation) and
 * computes what the library computes on the rows standardised as training
 * did; the safetensors file carries the statistics. */
static void test_csv_standardisation(void **state)
{
    (void)state;
    const char *csv = path_in("raw.csv"), *ckpt = path_in("raw.ckpt"), *src = path_in("raw.c"),
               *st = path_in("raw.safetensors");
    enum { N_IN = 4, N_OUT = 3 };
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    nb_rng r;
    nb_rng_seed(&r, 21);
    double raw[ROWS * N_IN];
    for (int i = 0; i < 200; i++) {
        int k = i % 3;
        double x[N_IN];
        for (int j = 0; j < N_IN; j++)
            x[j] = 5e4 * (j + 1) + 2e3 * (j + 1) * (3.0 * k + nb_rng_normal(&r));
        fprintf(f, "%.17g,%.17g,%.17g,%.17g,%d\n", x[0], x[1], x[2], x[3], k);
        for (int j = 0; j < N_IN && i < ROWS; j++)
            raw[i * N_IN + j] = (float)x[j];
    }
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' train --data '%s' --layers 6 --epochs 3 --save '%s'", nabla,
             csv, ckpt);
    run_result *rr = tc_run(cmd);
    if (rr->status != 0)
        fail_msg("train: %s", rr->err);
    char args[512];
    snprintf(args, sizeof args, "--load '%s' --safetensors '%s'", ckpt, st);
    assert_int_equal(export(args)->status, 0);
    int found = 0;
    char meta[1024];
    nb_file_opts lo = {.meta_out = meta, .meta_cap = sizeof meta};
    assert_int_equal(nb_safetensors_list(st, list_name, &found, &lo, NULL), NB_OK);
    assert_int_equal(found, 2);
    assert_non_null(strstr(meta, "input_norm=standardize"));

    /* the library on standardised rows */
    config c = {.dtype = NB_F32,
                .act = NB_ACT_RELU,
                .out_act = NB_ACT_IDENTITY,
                .n_sizes = 3,
                .sizes = {N_IN, 6, N_OUT}};
    net n = {0};
    n.m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.init = NB_INIT_ZEROS;
    assert_int_equal(nb_mlp_new(n.m, NULL, c.sizes, 3, &o, &n.layer), NB_OK);
    nb_tensor *mean, *sd;
    int64_t n_in = N_IN;
    assert_int_equal(nb_model_add(n.m, "input.mean", NB_F64, 1, &n_in, &mean), NB_OK);
    assert_int_equal(nb_model_add(n.m, "input.std", NB_F64, 1, &n_in, &sd), NB_OK);
    nb_error err;
    if (nb_model_load(n.m, NULL, ckpt, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    double x[ROWS * N_IN], want[ROWS * N_OUT], got[ROWS * N_OUT];
    for (int i = 0; i < ROWS * N_IN; i++)
        x[i] = (float)((raw[i] - nb_tensor_get(mean, i % N_IN)) / nb_tensor_get(sd, i % N_IN));
    library_forward(&n, &c, x, want);
    if (have_cc) {
        snprintf(args, sizeof args, "--load '%s' --c '%s'", st, src);
        assert_int_equal(export(args)->status, 0);
        compiled_forward(src, &c, raw, got);
        double e = worst_rel(got, want, ROWS * N_OUT);
        if (!(e <= 1e-5))
            fail_msg("exported C on raw rows differs from the library by %g", e);
    }

    /* statistics that cannot be applied are refused, and so are missing ones */
    nb_tensor_set(sd, 1, 0);
    nb_ckpt_opts co = {.meta = meta};
    assert_int_equal(nb_model_save(n.m, NULL, ckpt, &co, NULL), NB_OK);
    snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, src);
    refused(export(args), "input.std[1] = 0 is not a usable scale");
    net_free(&n);
    net_make(&n, &c, 4);
    strcat(n.meta, "\ninput_norm=standardize");
    co.meta = n.meta;
    assert_int_equal(nb_model_save(n.m, NULL, ckpt, &co, NULL), NB_OK);
    refused(export(args), "the model's tensor 'input.mean' is not in the file");
    net_free(&n);
}

/* ---------------------------------------------------------------- CNNs */

/* A network built layer by layer in a sequence named "" (as nabla train
 * names its networks), then its tensors set at random. */
typedef struct cnn {
    nb_model *m;
    nb_layer *seq;
    nb_rng rng;
    nb_layer_opts o;
    char meta[4096];
} cnn;

static void cnn_begin(cnn *c, nb_dtype dt, uint64_t seed)
{
    c->m = nb_model_new();
    nb_rng_seed(&c->rng, seed);
    c->o = (nb_layer_opts){.rng = &c->rng, .dtype = dt};
    assert_int_equal(nb_sequential_new("", &c->seq), NB_OK);
}

/* The layer a constructor made into *l (status @p st), appended. */
static void cnn_add(cnn *c, nb_status st, nb_layer **l)
{
    assert_int_equal(st, NB_OK);
    assert_int_equal(nb_sequential_add(c->seq, *l), NB_OK);
}

static void cnn_reshape(cnn *c, int64_t ch, int64_t h, int64_t w)
{
    nb_layer *l = NULL;
    cnn_add(c, nb_reshape_layer_new("image", 3, (int64_t[]){ch, h, w}, &l), &l);
}

/* conv2d @p name, c_in -> c_out, kernel kh x kw; stride, padding and
 * dilation as {height, width}. */
static void cnn_conv(cnn *c, const char *name, int64_t c_in, int64_t c_out, int64_t kh, int64_t kw,
                     const int64_t s[2], const int64_t p[2], const int64_t d[2], int64_t groups)
{
    nb_conv_opts co = {{s[0], s[1]}, {p[0], p[1]}, {d[0], d[1]}, groups};
    nb_layer *l = NULL;
    cnn_add(c, nb_conv2d_new(c->m, name, c_in, c_out, kh, kw, &co, &c->o, &l), &l);
}

static void cnn_pool(cnn *c, bool max, const char *name, int64_t kh, int64_t kw, const int64_t s[2],
                     const int64_t p[2])
{
    nb_pool2d_opts po = {{kh, kw}, {s[0], s[1]}, {p[0], p[1]}};
    nb_layer *l = NULL;
    cnn_add(c, max ? nb_max_pool2d_new(name, &po, &l) : nb_avg_pool2d_new(name, &po, &l), &l);
}

static void cnn_act(cnn *c, const char *name, nb_act act, int64_t n_features)
{
    nb_layer *l = NULL;
    nb_act_opts ao = nb_act_defaults(act);
    ao.pieces = 2;
    cnn_add(c, nb_act_layer_new(c->m, name, act, &ao, n_features, &c->o, &l), &l);
}

static void cnn_flatten(cnn *c)
{
    nb_layer *l = NULL;
    cnn_add(c, nb_flatten_new("flatten", &l), &l);
}

static void cnn_linear(cnn *c, const char *name, int64_t n_in, int64_t n_out)
{
    nb_layer *l = NULL;
    cnn_add(c, nb_linear_new(c->m, name, n_in, n_out, &c->o, &l), &l);
}

/* Every tensor random (running variances positive), the description in
 * c->meta, and the model saved to @p path with it. */
static void cnn_save(cnn *c, const char *path)
{
    for (nb_tensor *p = nb_model_next(c->m, NULL); p; p = nb_model_next(c->m, p)) {
        bool var = strstr(nb_tensor_name(p), "running_var") != NULL;
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            nb_tensor_set(p, i,
                          var ? 0.5 + 1.5 * nb_rng_uniform(&c->rng) : 0.6 * nb_rng_normal(&c->rng));
    }
    nb_error e;
    if (nb_layer_describe(c->seq, c->meta, sizeof c->meta, &e) != NB_OK)
        fail_msg("%s", e.msg);
    nb_ckpt_opts co = {.meta = c->meta};
    assert_int_equal(nb_model_save(c->m, NULL, path, &co, &e), NB_OK);
}

static void cnn_free(cnn *c)
{
    nb_layer_free(c->seq);
    nb_model_free(c->m);
}

/* Export @p c to C, compile and run it (nabla_cnn_forward, or
 * nabla_mlp_forward for a network without convolution or pooling) on ROWS
 * rows of @p n_in inputs, and compare its @p n_out outputs with the
 * library's forward pass; returns the C file's text (static storage, until
 * the next call). */
static const char *check_cnn(cnn *c, nb_dtype dt, int64_t n_in, int64_t n_out, uint64_t seed)
{
    const char *ckpt = path_in("cnn.ckpt"), *src = path_in("cnn.c");
    cnn_save(c, ckpt);
    unlink(src);
    char args[512];
    snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, src);
    run_result *r = export(args);
    if (r->status != 0)
        fail_msg("export: %s", r->err);
    double *x = malloc(sizeof *x * ROWS * (size_t)n_in);
    double *want = malloc(sizeof *want * ROWS * (size_t)n_out);
    double *got = malloc(sizeof *got * ROWS * (size_t)n_out);
    assert_true(x && want && got);
    inputs(x, n_in, seed);
    for (int64_t i = 0; dt == NB_F32 && i < ROWS * n_in; i++)
        x[i] = (float)x[i];
    static char text[1 << 22];
    FILE *f = fopen(src, "r");
    assert_non_null(f);
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    layer_forward(c->seq, dt, n_in, n_out, x, want);
    run_compiled(src, strstr(text, "nabla_cnn_forward") ? "cnn" : "mlp", dt, n_in, n_out, x, got);
    /* sums of products in another order (the library's GEMM blocks them):
       errors of the size of the terms' rounding, so measured against the
       largest output */
    double scale = 1;
    for (int64_t i = 0; i < ROWS * n_out; i++)
        scale = isfinite(want[i]) ? fmax(scale, fabs(want[i])) : scale;
    for (int64_t i = 0; i < ROWS * n_out; i++) {
        got[i] /= scale;
        want[i] /= scale;
    }
    double e = worst_rel(got, want, ROWS * n_out);
    if (!(e <= (dt == NB_F64 ? 1e-13 : 1e-5)))
        fail_msg("exported C differs from the library by %g (relative to the largest output)", e);
    free(x);
    free(want);
    free(got);
    return text;
}

static const int64_t ONE[2] = {1, 1}, TWO[2] = {2, 2}, NONE[2] = {0, 0};

/* The network nabla train builds for --layers conv8k3p1,pool2,fc16 on
 * digits (with dropout), in f32 and f64. */
static void test_cnn_digits(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        cnn c;
        cnn_begin(&c, dt, 1 + (uint64_t)d);
        cnn_reshape(&c, 1, 8, 8);
        cnn_conv(&c, "conv1", 1, 8, 3, 3, ONE, ONE, ONE, 1);
        cnn_act(&c, "act1", NB_ACT_RELU, 0);
        cnn_pool(&c, true, "pool2", 2, 2, TWO, NONE);
        cnn_flatten(&c);
        cnn_linear(&c, "fc3", 128, 16);
        cnn_act(&c, "act2", NB_ACT_RELU, 0);
        nb_layer *l = NULL;
        cnn_add(&c, nb_dropout_new("drop2", 0.5, &c.o, &l), &l);
        cnn_linear(&c, "fc4", 16, 10);
        const char *text = check_cnn(&c, dt, 64, 10, 20);
        /* its own names; the image's shape said; buffers on the stack */
        assert_non_null(strstr(text, "#define NABLA_CNN_INPUTS 64\n"));
        assert_non_null(strstr(text, "#define NABLA_CNN_OUTPUTS 10\n"));
        assert_non_null(strstr(text, "x is one 1x8x8 image"));
        assert_non_null(strstr(text, "/* layer 1: conv2d 1x8x8 -> 8x8x8, kernel 3x3, stride 1x1, "
                                     "padding 1x1, relu */"));
        assert_null(strstr(text, "static float h") ? "static" : strstr(text, "static double h"));
        cnn_free(&c);
    }
}

/* Strides, padding, dilation and groups that differ per axis; depthwise
 * convolution without bias; average pooling with padding; batch norm and
 * activations with parameters after flatten, in both dtypes. */
static void test_cnn_settings(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        cnn c;
        cnn_begin(&c, dt, 5 + (uint64_t)d);
        cnn_reshape(&c, 4, 9, 7);
        /* [6, 4, 6] */
        cnn_conv(&c, "conv1", 4, 6, 3, 2, (int64_t[]){2, 1}, (int64_t[]){1, 0}, (int64_t[]){2, 1},
                 2);
        cnn_act(&c, "act1", NB_ACT_TANH, 0);
        /* [6, 2, 3] */
        cnn_pool(&c, false, "pool2", 3, 3, TWO, ONE);
        c.o.no_bias = true; /* depthwise, [6, 2, 3] */
        cnn_conv(&c, "conv3", 6, 6, 1, 1, ONE, NONE, ONE, 6);
        c.o.no_bias = false;
        cnn_act(&c, "act3", NB_ACT_ELU, 0);
        /* [6, 2, 4] */
        cnn_pool(&c, true, "pool4", 3, 2, ONE, ONE);
        cnn_flatten(&c);
        nb_layer *l = NULL;
        cnn_add(&c, nb_batch_norm_new(c.m, "bn4", 48, 1e-5, 0.1, &c.o, &l), &l);
        cnn_linear(&c, "fc5", 48, 5);
        cnn_add(&c, nb_batch_norm_new(c.m, "bn5", 5, 1e-5, 0.1, &c.o, &l), &l);
        cnn_act(&c, "act5", NB_ACT_PRELU, 5);
        cnn_linear(&c, "fc6", 5, 3);
        cnn_act(&c, "act6", NB_ACT_SIGMOID, 0);
        const char *text = check_cnn(&c, dt, 4 * 9 * 7, 3, 30);
        assert_non_null(strstr(text, "conv2d 4x9x7 -> 6x4x6, kernel 3x2, stride 2x1, padding "
                                     "1x0, dilation 2x1, 2 groups, tanh"));
        assert_non_null(strstr(text, "avg_pool2d 6x4x6 -> 6x2x3, kernel 3x3, stride 2x2, "
                                     "padding 1x1"));
        assert_non_null(strstr(text, "max_pool2d 6x2x3 -> 6x2x4, kernel 3x2, stride 1x1, "
                                     "padding 1x1, batch norm */"));
        cnn_free(&c);
    }
}

/* A network without a linear layer, ending in a pooling; activations
 * with one parameter per column of an image (PReLU) and one for all
 * (learned swish). */
static void test_cnn_fully_convolutional(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    cnn c;
    cnn_begin(&c, NB_F64, 9);
    cnn_reshape(&c, 2, 6, 5);
    cnn_conv(&c, "conv1", 2, 3, 2, 2, ONE, ONE, TWO, 1); /* [3, 6, 5] */
    cnn_act(&c, "act1", NB_ACT_PRELU, 5);
    cnn_pool(&c, false, "pool2", 2, 2, ONE, ONE); /* [3, 7, 6] */
    cnn_act(&c, "act2", NB_ACT_SWISH_LEARNED, 1);
    cnn_conv(&c, "conv3", 3, 2, 3, 3, TWO, NONE, ONE, 1); /* [2, 3, 2] */
    cnn_pool(&c, true, "pool4", 3, 3, ONE, ONE);          /* [2, 3, 2] */
    cnn_flatten(&c);
    const char *text = check_cnn(&c, NB_F64, 60, 12, 40);
    assert_non_null(strstr(text, "act1_param[j % 5]"));
    assert_non_null(strstr(text, "act2_param[0]"));
    cnn_free(&c);

    /* flatten and reshapes only say how the values are read: a flatten
       first, a reshape to a row, an image again after a linear layer */
    cnn_begin(&c, NB_F64, 12);
    cnn_flatten(&c);
    cnn_reshape(&c, 3, 4, 5);
    cnn_pool(&c, false, "pool1", 2, 2, TWO, NONE); /* [3, 2, 2] */
    cnn_flatten(&c);
    nb_layer *l = NULL;
    cnn_add(&c, nb_reshape_layer_new("row", 1, (int64_t[]){12}, &l), &l);
    cnn_linear(&c, "fc2", 12, 4);
    cnn_add(&c, nb_reshape_layer_new("square", 3, (int64_t[]){1, 2, 2}, &l), &l);
    cnn_pool(&c, false, "pool3", 2, 2, ONE, ONE); /* [1, 3, 3] */
    check_cnn(&c, NB_F64, 60, 9, 42);
    cnn_free(&c);

    /* without a convolution or pooling, an MLP as before */
    cnn_begin(&c, NB_F32, 13);
    cnn_reshape(&c, 1, 3, 3);
    cnn_flatten(&c);
    cnn_linear(&c, "fc1", 9, 2);
    text = check_cnn(&c, NB_F32, 9, 2, 43);
    assert_non_null(strstr(text, "a multi-layer perceptron's forward"));
    cnn_free(&c);

    /* pooling only: no weights, in f32 as the data sets are */
    cnn_begin(&c, NB_F32, 10);
    cnn_reshape(&c, 2, 5, 5);
    cnn_pool(&c, false, "pool1", 2, 2, ONE, ONE); /* [2, 6, 6] */
    cnn_pool(&c, true, "pool2", 3, 3, TWO, ONE);  /* [2, 3, 3] */
    text = check_cnn(&c, NB_F32, 50, 18, 41);
    assert_non_null(strstr(text, "int nabla_cnn_forward(const float *x, float *logits)"));
    cnn_free(&c);
}

/* Intermediate results of more than 1 MiB are static, not on the stack,
 * and the file says the function is not reentrant. */
static void test_cnn_large_buffers(void **state)
{
    (void)state;
    if (!have_cc)
        skip();
    cnn c;
    cnn_begin(&c, NB_F64, 11);
    cnn_reshape(&c, 1, 128, 128);
    cnn_conv(&c, "conv1", 1, 8, 3, 3, ONE, ONE, ONE, 1); /* [8, 128, 128]: 1 MiB of doubles */
    cnn_act(&c, "act1", NB_ACT_RELU, 0);
    cnn_pool(&c, true, "pool2", 4, 4, (int64_t[]){4, 4}, NONE);
    cnn_flatten(&c);
    cnn_linear(&c, "fc3", 8 * 32 * 32, 2);
    const char *text = check_cnn(&c, NB_F64, 128 * 128, 2, 50);
    assert_non_null(strstr(text, "    static double h[2][131072];\n"));
    assert_non_null(strstr(text, "take 2097152 bytes of static storage"));
    cnn_free(&c);
}

/* Convolutional networks the C export cannot emit, each refused naming
 * the layer and why, with nothing written. */
static void test_cnn_it_cannot_emit(void **state)
{
    (void)state;
    const char *ckpt = path_in("bad_cnn.ckpt"), *out = path_in("bad_cnn.c");
    const char *says[] = {
        "cannot emit layer 'conv1' (conv2d): on the flat input rows, not a CxHxW image",
        "cannot emit layer 'fc2' (linear): on a 2x2x2 image (a flatten before it)",
        "cannot emit layer 'bn2' (batch_norm): normalises rows of 2 features but gets a 2x2x2 "
        "image",
        "cannot emit layer 'conv1' (conv2d): takes 2 channels but gets a 3x4x4 image",
        "cannot emit layer 'conv1' (conv2d): its 3x3 window does not fit a 1x2x2 image",
        "cannot emit layer 'act1' (activation): a maxout activation",
        "cannot emit layer 'act1' (activation): its 3 parameters are neither one nor one per "
        "element of the last axis of a 2x4x4 image",
        "cannot emit layer 'rows' (reshape): a reshape to 8x8, of rank 2",
        "cannot emit layer 'again' (reshape): 18 values per sample, but gets rows of 16",
        "cannot emit layer 'fc1' (linear): takes 10 inputs but gets rows of 16",
        "cannot emit layer 'pool1' (max_pool2d): 2500000000 elements in and 625000000 out, "
        "more than the C code's int indices reach",
        "cannot emit layer '' (sequential): no linear, maxout, conv2d or pooling layer",
        "cannot emit layer 'act0' (activation): before the first linear, maxout, conv2d or "
        "pooling layer",
        "cannot emit layer 'pool1' (avg_pool2d): on rows of 16, not a CxHxW image",
        "cannot emit layer 'conv1' (conv2d): its 1x3 window does not fit a 1x4x2 image",
        "cannot emit layer 'bn2' (batch_norm): normalises rows of 5 features but gets rows of 8",
    };
    for (int k = 0; k < (int)(sizeof says / sizeof *says); k++) {
        cnn c;
        nb_layer *l = NULL;
        cnn_begin(&c, NB_F32, 1);
        switch (k) {
        case 0: cnn_conv(&c, "conv1", 1, 2, 3, 3, ONE, ONE, ONE, 1); break;
        case 1:
        case 2:
            cnn_reshape(&c, 1, 4, 4);
            cnn_conv(&c, "conv1", 1, 2, 3, 3, ONE, NONE, ONE, 1);
            if (k == 1)
                cnn_linear(&c, "fc2", 8, 3);
            else
                cnn_add(&c, nb_batch_norm_new(c.m, "bn2", 2, 1e-5, 0.1, &c.o, &l), &l);
            break;
        case 3:
            cnn_reshape(&c, 3, 4, 4);
            cnn_conv(&c, "conv1", 2, 2, 3, 3, ONE, NONE, ONE, 1);
            break;
        case 4:
            cnn_reshape(&c, 1, 2, 2);
            cnn_conv(&c, "conv1", 1, 2, 3, 3, ONE, NONE, ONE, 1);
            break;
        case 5:
        case 6:
            cnn_reshape(&c, 1, 4, 4);
            cnn_conv(&c, "conv1", 1, 2, 1, 1, ONE, NONE, ONE, 1);
            cnn_act(&c, "act1", k == 5 ? NB_ACT_MAXOUT : NB_ACT_PRELU, 3);
            break;
        case 7:
            cnn_add(&c, nb_reshape_layer_new("rows", 2, (int64_t[]){8, 8}, &l), &l);
            cnn_linear(&c, "fc1", 8, 2);
            break;
        case 8:
        case 9:
            cnn_reshape(&c, 1, 4, 4);
            cnn_flatten(&c);
            if (k == 8)
                cnn_add(&c, nb_reshape_layer_new("again", 3, (int64_t[]){2, 3, 3}, &l), &l);
            else
                cnn_linear(&c, "fc1", 10, 2);
            break;
        case 10:
            cnn_reshape(&c, 1, 50000, 50000);
            cnn_pool(&c, true, "pool1", 2, 2, TWO, NONE);
            break;
        case 11:
            cnn_reshape(&c, 1, 4, 4);
            cnn_flatten(&c);
            break;
        case 12:
            cnn_reshape(&c, 1, 4, 4);
            cnn_act(&c, "act0", NB_ACT_RELU, 0);
            cnn_conv(&c, "conv1", 1, 2, 3, 3, ONE, ONE, ONE, 1);
            break;
        case 13:
            cnn_reshape(&c, 1, 4, 4);
            cnn_flatten(&c);
            cnn_pool(&c, false, "pool1", 2, 2, TWO, NONE);
            break;
        case 14: /* dilation 2 makes the width's 3 taps span 5 columns */
            cnn_reshape(&c, 1, 4, 2);
            cnn_conv(&c, "conv1", 1, 2, 1, 3, ONE, NONE, (int64_t[]){1, 2}, 1);
            break;
        case 15:
            cnn_reshape(&c, 1, 4, 4);
            cnn_conv(&c, "conv1", 1, 2, 3, 3, ONE, NONE, ONE, 1);
            cnn_flatten(&c);
            cnn_add(&c, nb_batch_norm_new(c.m, "bn2", 5, 1e-5, 0.1, &c.o, &l), &l);
            break;
        }
        cnn_save(&c, ckpt);
        char args[512];
        snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, out);
        refused(export(args), says[k]);
        assert_false(exists(out));
        cnn_free(&c);
    }
    unlink(ckpt);
}

static void test_bad_input(void **state)
{
    (void)state;
    config c = {.dtype = NB_F64,
                .act = NB_ACT_RELU,
                .out_act = NB_ACT_IDENTITY,
                .batch_norm = true,
                .n_sizes = 3,
                .sizes = {4, 5, 3}};
    net n;
    net_make(&n, &c, 5);
    const char *ckpt = path_in("bad.ckpt"), *out = path_in("never.c");
    char args[512];

    refused(export(""), "--load FILE is required");
    refused(export("--load x"), "nothing to write");
    refused(export("--load"), "--load needs a value");
    refused(export("--bogus 1"), "unknown option");
    refused(export("positional"), "unexpected argument");
    run_result *r = export("--help");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "nabla_mlp_forward"));
    assert_non_null(strstr(r->out, "nabla_cnn_forward"));
    assert_non_null(strstr(r->out, "avg_pool2d"));
    snprintf(args, sizeof args, "--load '%s/none.ckpt' --c '%s'", dir, out);
    refused(export(args), "cannot open");

    /* a damaged checkpoint, and a file that is neither format */
    nb_ckpt_opts co = {.meta = n.meta};
    assert_int_equal(nb_model_save(n.m, NULL, ckpt, &co, NULL), NB_OK);
    FILE *f = fopen(ckpt, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, out);
    refused(export(args), "the file is damaged");
    f = fopen(ckpt, "wb");
    fputs("hello, world: not a model", f);
    fclose(f);
    refused(export(args), "safetensors file");

    /* no metadata: --act is needed, and then it works */
    assert_int_equal(nb_model_save(n.m, NULL, ckpt, NULL, NULL), NB_OK);
    refused(export(args), "names no hidden activation (act=; nabla export takes --act NAME)");
    snprintf(args, sizeof args, "--load '%s' --c '%s' --act sine", ckpt, out);
    refused(export(args), "not an activation");
    snprintf(args, sizeof args, "--load '%s' --c '%s' --act ReLU", ckpt, out);
    assert_int_equal(export(args)->status, 0);
    assert_true(exists(out));
    unlink(out);

    /* --act disagreeing with the metadata */
    assert_int_equal(nb_model_save(n.m, NULL, ckpt, &co, NULL), NB_OK);
    snprintf(args, sizeof args, "--load '%s' --c '%s' --act tanh", ckpt, out);
    refused(export(args), "disagrees");
    /* nowhere to write */
    snprintf(args, sizeof args, "--load '%s' --c '%s/no/such/dir/m.c'", ckpt, dir);
    refused(export(args), "cannot create the temporary file");

    /* metadata saying batch norm without its tensors */
    nb_model *plain = nb_model_new();
    nb_layer *pl = NULL;
    nb_rng r0;
    nb_rng_seed(&r0, 1);
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &r0;
    o.layer.dtype = NB_F64;
    assert_int_equal(nb_mlp_new(plain, NULL, c.sizes, 3, &o, &pl), NB_OK);
    co.meta = n.meta; /* batchnorm=1 */
    assert_int_equal(nb_model_save(plain, NULL, ckpt, &co, NULL), NB_OK);
    snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, out);
    refused(export(args), "describes a network of 504 bytes of tensors, more than the 344");
    /* a tensor that is not part of the MLP */
    char meta[256];
    assert_int_equal(nb_layer_describe(pl, meta, sizeof meta, NULL), NB_OK);
    co.meta = meta;
    assert_int_equal(nb_model_add(plain, "extra", NB_F64, 1, (int64_t[]){2}, NULL), NB_OK);
    assert_int_equal(nb_model_save(plain, NULL, ckpt, &co, NULL), NB_OK);
    refused(export(args), "tensor 'extra'");
    /* not an MLP at all */
    nb_model *other = nb_model_new();
    assert_int_equal(nb_model_add(other, "w", NB_F64, 1, (int64_t[]){2}, NULL), NB_OK);
    assert_int_equal(nb_model_save(other, NULL, ckpt, NULL, NULL), NB_OK);
    refused(export(args), "no tensor named fc1.weight");
    assert_false(exists(out));

    nb_layer_free(pl);
    nb_model_free(plain);
    nb_model_free(other);
    net_free(&n);
}

/* A network described layer by layer ("arch=layers") exports when its
 * layers come as the C export emits them, and is refused otherwise,
 * naming the first layer it cannot emit and why. */
static void test_layers_it_cannot_emit(void **state)
{
    (void)state;
    const char *ckpt = path_in("layers.ckpt"), *out = path_in("layers.c");
    char args[512];
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_layer_opts o = {.rng = &rng, .dtype = NB_F64};
    nb_act_opts two = nb_act_defaults(NB_ACT_MAXOUT);
    two.pieces = 2;
    const char *says[] = {
        NULL, /* emitted: linear, dropout, activation, linear under other names */
        "cannot emit layer 'act0' (activation): before the first linear, maxout, conv2d or "
        "pooling layer",
        "cannot emit layer 'bn1' (batch_norm): out of order",
        "cannot emit layer 'inner' (sequential)",
        "cannot emit layer 'act1' (activation): a maxout activation",
        "cannot emit layer 'dense' (linear): a lone layer, not a sequence",
    };
    for (int k = 0; k < 6; k++) {
        nb_model *m = nb_model_new();
        nb_layer *nw = NULL, *l = NULL;
        assert_int_equal(nb_sequential_new("", &nw), NB_OK);
        switch (k) {
        case 0:
            nb_linear_new(m, "dense", 4, 5, &o, &l), nb_sequential_add(nw, l);
            nb_dropout_new("drop", 0.5, &o, &l), nb_sequential_add(nw, l);
            nb_act_layer_new(m, "relu", NB_ACT_RELU, NULL, 5, &o, &l), nb_sequential_add(nw, l);
            nb_linear_new(m, "out", 5, 2, &o, &l), nb_sequential_add(nw, l);
            break;
        case 1:
            nb_act_layer_new(m, "act0", NB_ACT_TANH, NULL, 4, &o, &l), nb_sequential_add(nw, l);
            nb_linear_new(m, "fc1", 4, 2, &o, &l), nb_sequential_add(nw, l);
            break;
        case 2:
            nb_linear_new(m, "fc1", 4, 5, &o, &l), nb_sequential_add(nw, l);
            nb_act_layer_new(m, "act1", NB_ACT_RELU, NULL, 5, &o, &l), nb_sequential_add(nw, l);
            nb_batch_norm_new(m, "bn1", 5, 1e-5, 0.1, &o, &l), nb_sequential_add(nw, l);
            break;
        case 3:
            nb_linear_new(m, "fc1", 4, 5, &o, &l), nb_sequential_add(nw, l);
            nb_sequential_new("inner", &l), nb_sequential_add(nw, l);
            break;
        case 4:
            nb_linear_new(m, "fc1", 4, 6, &o, &l), nb_sequential_add(nw, l);
            nb_act_layer_new(m, "act1", NB_ACT_MAXOUT, &two, 6, &o, &l), nb_sequential_add(nw, l);
            nb_linear_new(m, "fc2", 3, 2, &o, &l), nb_sequential_add(nw, l);
            break;
        case 5:
            nb_layer_free(nw);
            nb_linear_new(m, "dense", 4, 2, &o, &nw);
            break;
        }
        static char desc[NB_META_MAX + 1];
        nb_error e;
        assert_int_equal(nb_layer_describe(nw, desc, sizeof desc, &e), NB_OK);
        assert_true(!strncmp(desc, "arch=layers\n", 12));
        nb_ckpt_opts co = {.meta = desc};
        assert_int_equal(nb_model_save(m, NULL, ckpt, &co, &e), NB_OK);
        snprintf(args, sizeof args, "--load '%s' --c '%s'", ckpt, out);
        run_result *r = export(args);
        if (says[k]) {
            refused(r, says[k]);
            assert_false(exists(out));
        } else {
            if (r->status != 0)
                fail_msg("status %d: %s", r->status, r->err);
            assert_true(exists(out));
            unlink(out);
        }
        nb_layer_free(nw);
        nb_model_free(m);
    }
    unlink(ckpt);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/nabla-export-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_export PATH-TO-NABLA\n");
        return 2;
    }
    nabla = argv[1];
    have_cc = system("command -v cc >/dev/null 2>&1") == 0;
    if (!have_cc)
        printf("no C compiler (cc) found: the compiled-output checks are skipped\n");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_activation_f64),
        cmocka_unit_test(test_f32_and_output_activations),
        cmocka_unit_test(test_sigmoid_tails),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_layers_it_cannot_emit),
        cmocka_unit_test(test_csv_standardisation),
        cmocka_unit_test(test_cnn_digits),
        cmocka_unit_test(test_cnn_settings),
        cmocka_unit_test(test_cnn_fully_convolutional),
        cmocka_unit_test(test_cnn_large_buffers),
        cmocka_unit_test(test_cnn_it_cannot_emit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
