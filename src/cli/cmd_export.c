/* nabla export: a trained MLP as a standalone C file (its weights as static
 * arrays and its forward pass in evaluation mode), and conversion between
 * nabla checkpoints and safetensors files. */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../io/file.h" /* reading and atomically replacing files */
#include "cli.h"
#include "model_file.h"

static const char *export_usage =
    "usage: nabla export --load FILE [--c OUT.c] [--safetensors OUT.safetensors]\n"
    "                    [--ckpt OUT.ckpt] [--act NAME]\n"
    "\n"
    "Reads a nabla checkpoint or a safetensors file (told apart by their first\n"
    "bytes) holding an MLP as nb_mlp_new builds it (fc1.weight [n_in, n_out],\n"
    "fc1.bias, bn1.*, act1.*, ..., fc<L>.*) and writes:\n"
    "  --c OUT.c                  a C11 file that needs only <math.h>, with the\n"
    "                             weights as static arrays and\n"
    "                             int nabla_mlp_forward(const T *x, T *logits)\n"
    "                             (T float or double, as the model), evaluation mode\n"
    "  --safetensors OUT          the tensors and metadata as a safetensors file\n"
    "  --ckpt OUT                 the tensors and metadata as a nabla checkpoint\n"
    "  --act NAME                 hidden activation when the file's metadata has no\n"
    "                             act= entry (one of: identity, sigmoid, tanh, relu, ...)\n"
    "The activation options (alpha, beta, lower, upper, pieces), the output\n"
    "activation (out_act) and bn_eps come from the metadata (nb_mlp_meta), else\n"
    "the defaults. At least one output is required.\n";

/* ----------------------------------------------------------- loading */

typedef struct loaded {
    nb_model *m;
    char meta[NB_META_MAX + 1];
    bool safetensors;
} loaded;

static nb_status add_tensor(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape)
{
    return nb_model_add(ud, name, dt, rank, shape, NULL);
}

/* A checkpoint, or any other safetensors file. */
static int load_any(const char *path, loaded *L)
{
    char why[512];
    FILE *f = nbio_open_read(path, NULL, why, sizeof why);
    if (!f)
        return cli_error("export", "%s", why);
    fclose(f);
    L->safetensors = cli_is_safetensors(path);
    L->m = nb_model_new();
    if (!L->m)
        return cli_error("export", "out of memory");
    nb_ckpt_opts o;
    memset(&o, 0, sizeof o);
    o.meta_out = L->meta;
    o.meta_cap = sizeof L->meta;
    nb_file_opts fo = {.meta_out = L->meta, .meta_cap = sizeof L->meta};
    nb_error err;
    nb_status st = L->safetensors ? nb_safetensors_list(path, add_tensor, L->m, &fo, &err)
                                  : nb_ckpt_list(path, add_tensor, L->m, &o, &err);
    if (st == NB_OK)
        st = L->safetensors ? nb_model_load_safetensors(L->m, path, NULL, &err)
                            : nb_model_load(L->m, NULL, path, NULL, &err);
    if (st != NB_OK)
        return cli_error("export", "%s (%s file): %s", CLI_Q(path),
                         L->safetensors ? "safetensors" : "checkpoint", err.msg);
    return 0;
}

/* ------------------------------------------------------ the MLP's plan */

enum { MAX_LAYERS = 256 };

typedef struct layer_plan {
    int64_t n_in, n_out;                       /* n_out after maxout */
    int64_t cols;                              /* the weight's columns (n_out·pieces for maxout) */
    nb_tensor *w, *b;                          /* b may be NULL (no bias) */
    nb_tensor *bn_w, *bn_b, *bn_mean, *bn_var; /* all or none */
    nb_act act;                                /* after this layer (and its batch norm) */
    nb_tensor *act_param;                      /* PReLU α or learned swish β, [n_out] */
    int64_t pieces;                            /* maxout (hidden layers only), else 1 */
} layer_plan;

typedef struct plan {
    nb_dtype dtype;
    int n_layers;
    layer_plan layers[MAX_LAYERS];
    nb_act_opts ao;
    double bn_eps;
    int64_t max_width;
    nb_tensor *in_mean, *in_std; /* input normalisation (f64 [n_in]) or NULL */
} plan;

/* t (may be NULL) as part of the plan. */
static nb_tensor *mark_used(nb_model *m, bool *used, nb_tensor *t)
{
    if (t) {
        int k = 0;
        for (nb_tensor *p = nb_model_next(m, NULL); p && p != t; p = nb_model_next(m, p))
            k++;
        used[k] = true;
    }
    return t;
}

static nb_tensor *take(nb_model *m, bool *used, const char *prefix, const char *base, int i,
                       const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s%s%d.%s", prefix, base, i, suffix);
    return mark_used(m, used, nb_model_get(m, name));
}

static bool is_vec(const nb_tensor *t, int64_t n, nb_dtype dt)
{
    return t && nb_tensor_rank(t) == 1 && nb_tensor_shape(t)[0] == n && nb_tensor_dtype(t) == dt;
}

static int make_plan(const loaded *L, const char *act_opt, plan *P)
{
    nb_model *m = L->m;
    cli_mlp_desc desc;
    char why[512];
    if (cli_mlp_desc_read(L->meta, &desc, why, sizeof why) != 0)
        return cli_error("export", "%s", why);
    if (desc.has_arch && !desc.is_mlp)
        return cli_error("export", "the metadata's arch= is not mlp; only MLPs can be exported");

    /* the prefix: whatever comes before "fc1.weight" */
    const char *prefix_src = NULL;
    size_t prefix_len = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        const char *name = nb_tensor_name(p);
        size_t len = strlen(name);
        if (len >= 10 && !strcmp(name + len - 10, "fc1.weight") &&
            (len == 10 || name[len - 11] == '.')) {
            prefix_src = name;
            prefix_len = len - 10;
            break;
        }
    }
    if (!prefix_src)
        return cli_error("export", "no tensor named fc1.weight: not an MLP made by nb_mlp_new");
    char prefix[256];
    if (prefix_len >= sizeof prefix)
        return cli_error("export", "the name prefix is too long");
    memcpy(prefix, prefix_src, prefix_len);
    prefix[prefix_len] = '\0';

    int n_tensors = nb_model_count(m);
    bool *used = calloc((size_t)n_tensors + 1, sizeof *used);
    if (!used)
        return cli_error("export", "out of memory");
    int rc = 0;
    memset(P, 0, sizeof *P);

    /* the hidden activation and its options */
    nb_act act = desc.act, out_act = desc.out_act;
    bool have_act = desc.has_act;
    if (act_opt) {
        nb_act a2;
        if (nb_act_from_name(act_opt, &a2) != NB_OK)
            rc = cli_error("export", "--act %s is not an activation (%s)", CLI_Q(act_opt),
                           nb_act_names());
        else if (have_act && a2 != act)
            rc = cli_error("export", "--act %s disagrees with the file's act=%s", CLI_Q(act_opt),
                           nb_act_name(act));
        act = a2;
        have_act = true;
    }
    P->ao = cli_mlp_desc_act_opts(&desc, act);
    P->bn_eps = desc.bn_eps;
    int64_t pieces = desc.opts_given & 16u ? desc.given.pieces : 0;
    int bn_meta = desc.batch_norm;

    /* the linear layers fc1, fc2, ... */
    nb_dtype dt = nb_tensor_dtype(nb_model_get(m, prefix_src));
    P->dtype = dt;
    int n = 0;
    while (!rc) {
        nb_tensor *w = take(m, used, prefix, "fc", n + 1, "weight");
        if (!w)
            break;
        if (n == MAX_LAYERS) {
            rc = cli_error("export", "more than %d layers", MAX_LAYERS);
            break;
        }
        layer_plan *l = &P->layers[n++];
        if (nb_tensor_rank(w) != 2 || nb_tensor_dtype(w) != dt) {
            rc = cli_error("export", "%s must be a matrix of %s", nb_tensor_name(w),
                           nb_dtype_name(dt));
            break;
        }
        l->n_in = nb_tensor_shape(w)[0];
        l->cols = nb_tensor_shape(w)[1];
        l->w = w;
        l->b = take(m, used, prefix, "fc", n, "bias");
        if (l->b && !is_vec(l->b, l->cols, dt))
            rc = cli_error("export", "%s does not fit %s", nb_tensor_name(l->b), nb_tensor_name(w));
    }
    P->n_layers = n;
    if (!rc && (!have_act && n > 1))
        rc = cli_error("export",
                       "the file's metadata names no hidden activation (act=): give --act NAME");

    for (int i = 0; i < n && !rc; i++) {
        layer_plan *l = &P->layers[i];
        bool last = i == n - 1;
        l->pieces = 1;
        l->act = last ? out_act : act;
        if (!last && act == NB_ACT_MAXOUT) {
            int64_t next_in = P->layers[i + 1].n_in;
            if (next_in < 1 || l->cols % next_in != 0 || (pieces && l->cols != next_in * pieces)) {
                rc = cli_error("export",
                               "%s: %lld columns do not make maxout groups for %lld "
                               "inputs of the next layer",
                               nb_tensor_name(l->w), (long long)l->cols, (long long)next_in);
                break;
            }
            l->pieces = l->cols / next_in;
            l->act = NB_ACT_IDENTITY; /* the maxout is the activation */
        }
        l->n_out = l->cols / l->pieces;
        if (!last && P->layers[i + 1].n_in != l->n_out) {
            rc = cli_error("export", "%s gives %lld values, %s takes %lld", nb_tensor_name(l->w),
                           (long long)l->n_out, nb_tensor_name(P->layers[i + 1].w),
                           (long long)P->layers[i + 1].n_in);
            break;
        }
        if (!last) {
            l->bn_w = take(m, used, prefix, "bn", i + 1, "weight");
            l->bn_b = take(m, used, prefix, "bn", i + 1, "bias");
            l->bn_mean = take(m, used, prefix, "bn", i + 1, "running_mean");
            l->bn_var = take(m, used, prefix, "bn", i + 1, "running_var");
            bool any = l->bn_w || l->bn_b || l->bn_mean || l->bn_var;
            bool all = is_vec(l->bn_w, l->n_out, dt) && is_vec(l->bn_b, l->n_out, dt) &&
                       is_vec(l->bn_mean, l->n_out, dt) && is_vec(l->bn_var, l->n_out, dt);
            if (bn_meta == 1 && !any)
                rc = cli_error("export",
                               "the metadata says batchnorm=1 but the file has no %sbn%d.* "
                               "tensors: refusing to export without them",
                               prefix, i + 1);
            else if (bn_meta == 0 && any)
                rc = cli_error("export",
                               "the metadata says batchnorm=0 but the file has %sbn%d.* tensors",
                               prefix, i + 1);
            else if (any && !all)
                rc = cli_error("export",
                               "batch norm %sbn%d needs weight, bias, running_mean and "
                               "running_var of [%lld] %s",
                               prefix, i + 1, (long long)l->n_out, nb_dtype_name(dt));
            if (!any)
                l->bn_w = l->bn_b = l->bn_mean = l->bn_var = NULL;
        }
        if (!rc && nb_act_has_param(l->act)) {
            l->act_param =
                take(m, used, prefix, "act", i + 1, l->act == NB_ACT_PRELU ? "alpha" : "beta");
            if (!is_vec(l->act_param, l->n_out, dt))
                rc = cli_error("export", "%s needs its parameter %sact%d.%s of [%lld] %s",
                               nb_act_name(l->act), prefix, i + 1,
                               l->act == NB_ACT_PRELU ? "alpha" : "beta", (long long)l->n_out,
                               nb_dtype_name(dt));
        }
        if (l->cols > P->max_width)
            P->max_width = l->cols;
        if (l->n_in > P->max_width)
            P->max_width = l->n_in;
    }
    if (!rc && desc.n_sizes > 0) { /* the metadata describes these tensors */
        bool same = desc.n_sizes == n + 1;
        for (int i = 0; same && i < n; i++)
            same = desc.sizes[i] == P->layers[i].n_in && desc.sizes[i + 1] == P->layers[i].n_out;
        if (!same)
            rc = cli_error("export", "the metadata's sizes= does not match the layers of %sfc<i>",
                           prefix);
    }
    if (!rc && desc.has_dtype && desc.dtype != dt)
        rc = cli_error("export", "the metadata says dtype=%s but %s is %s",
                       nb_dtype_name(desc.dtype), prefix_src, nb_dtype_name(dt));
    if (!rc &&
        cli_model_norm(m, prefix, P->layers[0].n_in, &P->in_mean, &P->in_std, why, sizeof why) != 0)
        rc = cli_error("export", "%s", why);
    if (!rc && desc.input_norm && !P->in_mean)
        rc = cli_error("export",
                       "the metadata says input_norm=standardize but the file has no "
                       "%s%s and %s%s",
                       prefix, CLI_INPUT_MEAN, prefix, CLI_INPUT_STD);
    mark_used(m, used, P->in_mean);
    mark_used(m, used, P->in_std);
    if (!rc) {
        int k = 0;
        for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p), k++)
            if (!used[k]) {
                rc = cli_error("export",
                               "tensor '%s' is not part of an MLP that nabla export understands "
                               "(fc<i>, bn<i>, act<i>, input.mean/std)",
                               nb_tensor_name(p));
                break;
            }
    }
    free(used);
    return rc;
}

/* ---------------------------------------------------------- writing C */

typedef struct emitter {
    FILE *f;
    const char *T; /* "float" or "double" */
    bool f32;
} emitter;

/* A constant of the computation (a double, to be cast to T as nabla does). */
static void emit_const(emitter *E, double v)
{
    if (isnan(v))
        fputs("NAN", E->f);
    else if (isinf(v))
        fputs(v > 0 ? "INFINITY" : "-INFINITY", E->f);
    else
        fprintf(E->f, "%a", v);
}

/* An element of a tensor as an exact C constant of type T. */
static void emit_num(emitter *E, double v)
{
    if (isnan(v))
        fputs("NAN", E->f);
    else if (isinf(v))
        fputs(v > 0 ? "INFINITY" : "-INFINITY", E->f);
    else
        fprintf(E->f, E->f32 ? "%af" : "%a", v);
}

static void emit_array(emitter *E, const char *cname, nb_tensor *t)
{
    int64_t n = nb_tensor_size(t);
    char shape[96];
    fprintf(E->f, "/* %s %s */\nstatic const %s %s[%lld] = {", nb_tensor_name(t),
            nb_shape_str(nb_tensor_rank(t), nb_tensor_shape(t), shape, sizeof shape), E->T, cname,
            (long long)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        fputs(i % 6 == 0 ? "\n    " : " ", E->f);
        emit_num(E, nb_tensor_get(t, i));
        fputc(',', E->f);
    }
    if (n == 0)
        fputs("0", E->f);
    fputs("\n};\n\n", E->f);
}

/* The elementwise expression of an activation of v (a T variable), in the
 * library's own formulas and order of operations (src/nn/act.c). */
static void emit_act_expr(emitter *E, nb_act act, const nb_act_opts *o, const char *param)
{
    FILE *f = E->f;
    const char *T = E->T;
    switch (act) {
    case NB_ACT_IDENTITY: fputs("v", f); break;
    case NB_ACT_SIGMOID: fprintf(f, "mlp_sigmoid(v)"); break;
    case NB_ACT_TANH: fprintf(f, "(%s)tanh(v)", T); break;
    case NB_ACT_HARD_SIGMOID:
        fprintf(f, "mlp_clamp(v * (%s)0.25 + (%s)0.5, (%s)0, (%s)1)", T, T, T, T);
        break;
    case NB_ACT_HARD_TANH: fprintf(f, "mlp_clamp(v, (%s)-1, (%s)1)", T, T); break;
    case NB_ACT_RELU: fprintf(f, "(v <= 0 ? (%s)0 : v)", T); break;
    case NB_ACT_LEAKY_RELU:
    case NB_ACT_RRELU:
        fprintf(f, "(v > 0 ? v : (%s)", T);
        emit_const(E, act == NB_ACT_RRELU ? 0.5 * (o->lower + o->upper) : o->alpha);
        fputs(" * v)", f);
        break;
    case NB_ACT_PRELU: fprintf(f, "(v > 0 ? v : %s[j] * v)", param); break;
    case NB_ACT_ELU:
        fprintf(f, "(v > 0 ? v : (%s)expm1(v) * (%s)", T, T);
        emit_const(E, o->alpha);
        fputs(")", f);
        break;
    case NB_ACT_SOFTPLUS: fputs("mlp_softplus(v)", f); break;
    case NB_ACT_SOFTSIGN: fprintf(f, "v / ((%s)fabs(v) + (%s)1)", T, T); break;
    case NB_ACT_SWISH:
    case NB_ACT_GELU_SIGMOID:
        fprintf(f, "v * mlp_sigmoid(v * (%s)", T);
        emit_const(E, act == NB_ACT_SWISH ? o->beta : 1.702);
        fputs(")", f);
        break;
    case NB_ACT_SWISH_LEARNED: fprintf(f, "v * mlp_sigmoid(%s[j] * v)", param); break;
    case NB_ACT_GELU:
        fprintf(f, "v * (%s)0.5 * ((%s)erf(v * (%s)0.70710678118654752440) + (%s)1)", T, T, T, T);
        break;
    case NB_ACT_GELU_TANH: fputs("mlp_gelu_tanh(v)", f); break;
    case NB_ACT_STEP: fprintf(f, "(v > 0 ? (%s)1 : (%s)0)", T, T); break;
    default: fputs("v", f); break; /* maxout is handled by the layer */
    }
}

/* The helper functions the activations of P call, and only those (so the
 * file compiles without unused-function warnings). */
static void emit_helpers(emitter *E, const plan *P)
{
    bool sig = false, clamp = false, softplus = false, gelu_tanh = false;
    for (int i = 0; i < P->n_layers; i++) {
        nb_act a = P->layers[i].act;
        sig |= a == NB_ACT_SIGMOID || a == NB_ACT_SWISH || a == NB_ACT_SWISH_LEARNED ||
               a == NB_ACT_GELU_SIGMOID;
        clamp |= a == NB_ACT_HARD_SIGMOID || a == NB_ACT_HARD_TANH;
        softplus |= a == NB_ACT_SOFTPLUS;
        gelu_tanh |= a == NB_ACT_GELU_TANH;
    }
    const char *T = E->T;
    FILE *f = E->f;
    /* as nabla computes them: sigma(x) with e = e^-|x| as 1/(1+e) or e/(1+e)
     * (accurate in both tails), softplus without overflow, the tanh form
     * of GELU */
    if (sig)
        fprintf(f,
                "static %s mlp_sigmoid(%s x)\n{\n    %s e = (%s)exp(-(%s)fabs(x));\n    "
                "return (x >= 0 ? (%s)1 : e) / ((%s)1 + e);\n}\n\n",
                T, T, T, T, T, T, T);
    if (clamp)
        fprintf(f,
                "static %s mlp_clamp(%s x, %s lo, %s hi)\n{\n    "
                "return x >= hi ? hi : x <= lo ? lo : x;\n}\n\n",
                T, T, T, T);
    if (softplus)
        fprintf(f,
                "static %s mlp_softplus(%s x)\n{\n    %s p = x > 0 ? x : (%s)0, n = x - p;\n    "
                "return p + (%s)log1p((%s)exp(n - p));\n}\n\n",
                T, T, T, T, T, T);
    if (gelu_tanh)
        fprintf(f,
                "static %s mlp_gelu_tanh(%s x)\n{\n    %s cube = x * x * x;\n    %s inner = "
                "(x + cube * (%s)0.044715) * (%s)0.79788456080286535588;\n    return x * "
                "(%s)0.5 * ((%s)tanh(inner) + (%s)1);\n}\n\n",
                T, T, T, T, T, T, T, T, T);
}

static int write_c(const plan *P, const loaded *L, const char *src, const char *out)
{
    nbio_out *o = NULL;
    char why[512];
    if (nbio_out_open(out, NULL, NULL, &o, why, sizeof why) != NB_OK)
        return cli_error("export", "%s", why);
    FILE *f = nbio_out_file(o); /* written beside out, renamed when complete */
    emitter E = {f, P->dtype == NB_F32 ? "float" : "double", P->dtype == NB_F32};
    const char *T = E.T;
    const layer_plan *first = &P->layers[0], *last = &P->layers[P->n_layers - 1];

    fprintf(f, "/* Generated by nabla export from %s: a multi-layer perceptron's forward\n", src);
    fprintf(f,
            " * pass in evaluation mode (dropout off, batch norm with its running\n"
            " * statistics). Standalone C11: needs only <math.h> (link with -lm).\n"
            " * Weights are [n_in, n_out] row-major, y = x.W + b; constants are written\n"
            " * as exact hexadecimal floating-point literals.\n *\n"
            " *   %s x[NABLA_MLP_INPUTS], logits[NABLA_MLP_OUTPUTS];\n"
            " *   nabla_mlp_forward(x, logits);\n",
            T);
    if (P->in_mean)
        fputs(" *\n * x is a raw row: it is standardised, (x - in_mean) / in_std, with the\n"
              " * statistics of the training data, as nabla train did.\n",
              f);
    if (L->meta[0]) {
        fputs(" *\n * The model's metadata:\n", f);
        for (const char *p = L->meta; *p;) {
            size_t n = strcspn(p, "\n");
            fputs(" *   ", f);
            for (size_t i = 0; i < n; i++) /* keep the comment closed */
                fputc(p[i] == '*' && p[i + 1] == '/' ? '+' : p[i], f);
            fputc('\n', f);
            p += n + (p[n] == '\n');
        }
    }
    fputs(" */\n#include <math.h>\n\n", f);
    fprintf(f, "#define NABLA_MLP_INPUTS %lld\n#define NABLA_MLP_OUTPUTS %lld\n\n",
            (long long)first->n_in, (long long)last->n_out);
    fprintf(f, "int nabla_mlp_forward(const %s *x, %s *logits);\n\n", T, T);
    char name[64];
    for (int i = 0; i < P->n_layers; i++) {
        const layer_plan *l = &P->layers[i];
        snprintf(name, sizeof name, "w%d", i + 1);
        emit_array(&E, name, l->w);
        if (l->b) {
            snprintf(name, sizeof name, "b%d", i + 1);
            emit_array(&E, name, l->b);
        }
        if (l->bn_w) {
            snprintf(name, sizeof name, "bn%d_weight", i + 1);
            emit_array(&E, name, l->bn_w);
            snprintf(name, sizeof name, "bn%d_bias", i + 1);
            emit_array(&E, name, l->bn_b);
            snprintf(name, sizeof name, "bn%d_mean", i + 1);
            emit_array(&E, name, l->bn_mean);
            snprintf(name, sizeof name, "bn%d_var", i + 1);
            emit_array(&E, name, l->bn_var);
        }
        if (l->act_param) {
            snprintf(name, sizeof name, "act%d_param", i + 1);
            emit_array(&E, name, l->act_param);
        }
    }
    if (P->in_mean) { /* kept in double: the normalisation nabla applied to the data */
        emitter D = {f, "double", false};
        emit_array(&D, "in_mean", P->in_mean);
        emit_array(&D, "in_std", P->in_std);
    }
    emit_helpers(&E, P);

    fprintf(f, "int nabla_mlp_forward(const %s *x, %s *logits)\n{\n", T, T);
    if (P->n_layers > 1 || last->pieces > 1)
        fprintf(f, "    %s h[2][%lld];\n", T, (long long)P->max_width);
    fprintf(f, "    const %s *in = x;\n", T);
    if (P->in_mean) {
        fprintf(f,
                "    %s xs[%lld]; /* the raw inputs standardised as in training */\n"
                "    for (int j = 0; j < %lld; j++)\n"
                "        xs[j] = (%s)(((double)x[j] - in_mean[j]) / in_std[j]);\n"
                "    in = xs;\n",
                T, (long long)first->n_in, (long long)first->n_in, T);
    }
    for (int i = 0; i < P->n_layers; i++) {
        const layer_plan *l = &P->layers[i];
        bool is_last = i == P->n_layers - 1;
        const char *dst = is_last && l->pieces == 1 ? "logits" : i % 2 ? "h[1]" : "h[0]";
        const char *z = i % 2 ? "h[1]" : "h[0]";
        fprintf(f, "\n    /* layer %d: %lld -> %lld", i + 1, (long long)l->n_in,
                (long long)l->n_out);
        if (l->pieces > 1)
            fprintf(f, ", maxout of %lld pieces", (long long)l->pieces);
        if (l->bn_w)
            fputs(", batch norm", f);
        if (l->act != NB_ACT_IDENTITY)
            fprintf(f, ", %s", nb_act_name(l->act));
        fputs(" */\n", f);
        /* z = in.W + b */
        fprintf(f, "    for (int j = 0; j < %lld; j++) {\n        %s s = 0;\n", (long long)l->cols,
                T);
        fprintf(f,
                "        for (int i = 0; i < %lld; i++)\n            s += in[i] * w%d[i * %lld + "
                "j];\n",
                (long long)l->n_in, i + 1, (long long)l->cols);
        if (l->b)
            fprintf(f, "        s = s + b%d[j];\n", i + 1);
        fprintf(f, "        %s[j] = s;\n    }\n", l->pieces > 1 ? z : dst);
        if (l->pieces > 1) { /* maximum of each group of consecutive pieces, in place; a
                                NaN piece wins, as in the library */
            fprintf(f,
                    "    for (int j = 0; j < %lld; j++) {\n        %s m = %s[j * %lld];\n"
                    "        for (int k = 1; k < %lld; k++) {\n"
                    "            %s p = %s[j * %lld + k];\n"
                    "            m = p > m || p != p ? p : m;\n        }\n"
                    "        %s[j] = m;\n    }\n",
                    (long long)l->n_out, T, z, (long long)l->pieces, (long long)l->pieces, T, z,
                    (long long)l->pieces, z);
            if (is_last) {
                fprintf(f, "    for (int j = 0; j < %lld; j++)\n        logits[j] = %s[j];\n",
                        (long long)l->n_out, z);
                dst = "logits";
            } else {
                dst = z;
            }
        }
        if (l->bn_w || l->act != NB_ACT_IDENTITY) {
            fprintf(f, "    for (int j = 0; j < %lld; j++) {\n        %s v = %s[j];\n",
                    (long long)l->n_out, T, dst);
            if (l->bn_w) {
                fprintf(f, "        v = (v - bn%d_mean[j]) / (%s)sqrt(bn%d_var[j] + (%s)", i + 1, T,
                        i + 1, T);
                emit_const(&E, P->bn_eps);
                fprintf(f, ");\n        v = v * bn%d_weight[j] + bn%d_bias[j];\n", i + 1, i + 1);
            }
            fputs("        v = ", f);
            snprintf(name, sizeof name, "act%d_param", i + 1);
            nb_act_opts out_o = nb_act_defaults(l->act);
            emit_act_expr(&E, l->act, is_last ? &out_o : &P->ao, name);
            fprintf(f, ";\n        %s[j] = v;\n    }\n", dst);
        }
        if (!is_last)
            fprintf(f, "    in = %s;\n", dst);
    }
    fputs("    return 0;\n}\n", f);

    if (nbio_out_commit(o, ferror(f) ? EIO : 0, why, sizeof why) != NB_OK)
        return cli_error("export", "%s", why);
    return 0;
}

int cmd_export(int argc, char **argv)
{
    const char *load = NULL, *c_out = NULL, *st_out = NULL, *ck_out = NULL, *act = NULL;
    const cli_opt opts[] = {
        {"--load", CLI_STR, &load, 0, 0},
        {"--c", CLI_STR, &c_out, 0, 0},
        {"--safetensors", CLI_STR, &st_out, 0, 0},
        {"--ckpt", CLI_STR, &ck_out, 0, 0},
        {"--act", CLI_STR, &act, 0, 0},
    };
    int rc = cli_parse("export", export_usage, argc, argv, 2, opts, 5, NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (!load)
        return cli_error("export", "--load FILE is required");
    if (!c_out && !st_out && !ck_out)
        return cli_error("export", "nothing to write: give --c, --safetensors or --ckpt");

    loaded *L = calloc(1, sizeof *L);
    if (!L)
        return cli_error("export", "out of memory");
    rc = load_any(load, L);
    nb_ckpt_opts o;
    memset(&o, 0, sizeof o);
    o.meta = L->meta;
    nb_error err;
    if (!rc && c_out) {
        plan *P = malloc(sizeof *P);
        rc = P ? make_plan(L, act, P) : cli_error("export", "out of memory");
        if (!rc)
            rc = write_c(P, L, load, c_out);
        free(P);
    }
    if (!rc && st_out &&
        nb_model_save_safetensors(L->m, st_out, &(nb_file_opts){.meta = L->meta}, &err) != NB_OK)
        rc = cli_error("export", "%s", err.msg);
    if (!rc && ck_out && nb_model_save(L->m, NULL, ck_out, &o, &err) != NB_OK)
        rc = cli_error("export", "%s", err.msg);
    if (!rc) {
        if (c_out)
            printf("wrote %s\n", c_out);
        if (st_out)
            printf("wrote %s\n", st_out);
        if (ck_out)
            printf("wrote %s\n", ck_out);
    }
    nb_model_free(L->m);
    free(L);
    return rc;
}
