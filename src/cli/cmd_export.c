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
    "bytes) holding a network: built from the description in its metadata\n"
    "(arch=mlp or arch=layers with the library's kinds of layers), or, when\n"
    "it has none, read as an MLP from the names nb_mlp_new gives (fc1.weight\n"
    "[n_in, n_out], fc1.bias, bn1.*, act1.*, ..., fc<L>.*), and writes:\n"
    "  --c OUT.c                  a C11 file that needs only <math.h>, with the\n"
    "                             weights as static arrays and\n"
    "                             int nabla_mlp_forward(const T *x, T *logits)\n"
    "                             (T float or double, as the model), evaluation mode\n"
    "  --safetensors OUT          the tensors and metadata as a safetensors file\n"
    "  --ckpt OUT                 the tensors and metadata as a nabla checkpoint\n"
    "  --act NAME                 hidden activation when the file's metadata has no\n"
    "                             act= entry (one of: identity, sigmoid, tanh, relu, ...)\n"
    "The activation's settings (alpha, beta, lower, upper, pieces), the output\n"
    "activation (out_act) and batch norm's bn_eps come from the description\n"
    "(docs/nn.md lists its keys), else the defaults. The conversions copy the\n"
    "tensors and metadata as they are. At least one output is required. --c\n"
    "emits linear and maxout layers, each followed by at most a batch norm and\n"
    "then an activation (dropout anywhere), and names the first layer of any\n"
    "other network it cannot emit.\n";

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

typedef struct layer_plan {
    int64_t n_in, n_out;                       /* n_out after maxout */
    int64_t cols;                              /* the weight's columns (n_out·pieces for maxout) */
    int64_t pieces;                            /* maxout, else 1 */
    nb_tensor *w, *b;                          /* b may be NULL (no bias) */
    nb_tensor *bn_w, *bn_b, *bn_mean, *bn_var; /* batch norm, or all NULL */
    double bn_eps;
    nb_act act;           /* after this layer (and its batch norm) */
    nb_act_opts ao;       /* its settings */
    nb_tensor *act_param; /* PReLU α or learned swish β, [n_out] */
} layer_plan;

typedef struct plan {
    nb_dtype dtype;
    int n_layers;
    layer_plan *layers;
    int64_t max_width;
    nb_tensor *in_mean, *in_std; /* input normalisation (f64 [n_in]) or NULL */
} plan;

/* The C export cannot emit layer @p l (@p why: "" or the reason): an error. */
static int cannot_emit(const nb_layer_info *l, const char *why)
{
    return cli_error("export",
                     "--c: cannot emit layer '%s' (%s)%s%s; the C export emits linear and maxout "
                     "layers, each followed by at most a batch norm and then an activation "
                     "(dropout anywhere)",
                     l->name, l->kind_name, *why ? ": " : "", why);
}

/* The plan of the network @p cm holds, as nb_layer_from_description built
 * it: one entry per linear or maxout layer, with the batch norm and the
 * activation that follow it (dropout is the identity in evaluation mode).
 * Any other network is refused, naming the first layer it cannot emit. */
static int make_plan(const cli_model *cm, plan *P)
{
    nb_layer_info seq;
    nb_layer_get_info(cm->net, &seq);
    memset(P, 0, sizeof *P);
    if (seq.kind != NB_LAYER_SEQUENTIAL)
        return cannot_emit(&seq, "a lone layer, not a sequence");
    P->layers = calloc((size_t)seq.n_items, sizeof *P->layers);
    if (!P->layers)
        return cli_error("export", "out of memory");
    P->in_mean = cm->mean;
    P->in_std = cm->std;
    int stage = 0; /* after a linear layer: 1 batch norm, 2 activation seen */
    for (int k = 0; k < seq.n_items; k++) {
        nb_layer_info l;
        nb_layer_get_info(nb_layer_at(cm->net, k), &l);
        if (l.kind == NB_LAYER_LINEAR || l.kind == NB_LAYER_MAXOUT) {
            P->layers[P->n_layers++] = (layer_plan){.n_in = l.n_in,
                                                    .n_out = l.n_out,
                                                    .cols = l.n_out * l.pieces,
                                                    .pieces = l.pieces,
                                                    .w = l.weight,
                                                    .b = l.bias,
                                                    .act = NB_ACT_IDENTITY};
            P->dtype = nb_tensor_dtype(l.weight);
            int64_t wide = l.n_out * l.pieces > l.n_in ? l.n_out * l.pieces : l.n_in;
            P->max_width = wide > P->max_width ? wide : P->max_width;
            stage = 0;
            continue;
        }
        if (l.kind == NB_LAYER_DROPOUT) /* the identity in evaluation mode */
            continue;
        if (l.kind != NB_LAYER_BATCH_NORM && l.kind != NB_LAYER_ACTIVATION)
            return cannot_emit(&l, "");
        if (P->n_layers == 0)
            return cannot_emit(&l, "before the first linear layer");
        int want = l.kind == NB_LAYER_BATCH_NORM ? 1 : 2;
        if (stage >= want)
            return cannot_emit(&l, "out of order");
        if (l.kind == NB_LAYER_ACTIVATION && l.act == NB_ACT_MAXOUT)
            return cannot_emit(&l, "a maxout activation (write a maxout layer instead)");
        stage = want;
        layer_plan *p = &P->layers[P->n_layers - 1];
        if (l.kind == NB_LAYER_BATCH_NORM) {
            p->bn_w = l.weight;
            p->bn_b = l.bias;
            p->bn_mean = l.running_mean;
            p->bn_var = l.running_var;
            p->bn_eps = l.eps;
        } else {
            p->act = l.act;
            p->ao = l.act_opts;
            p->act_param = l.param;
        }
    }
    if (P->n_layers == 0)
        return cannot_emit(&seq, "a network without a linear layer");
    return 0;
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

static int write_c(const plan *P, const char *meta, const char *src, const char *out)
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
    if (meta[0]) {
        fputs(" *\n * The model's metadata:\n", f);
        for (const char *p = meta; *p;) {
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
                emit_const(&E, l->bn_eps);
                fprintf(f, ");\n        v = v * bn%d_weight[j] + bn%d_bias[j];\n", i + 1, i + 1);
            }
            fputs("        v = ", f);
            snprintf(name, sizeof name, "act%d_param", i + 1);
            emit_act_expr(&E, l->act, &l->ao, name);
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

    if (c_out) { /* the network its description gives, with the file's tensors */
        cli_model *cm = malloc(sizeof *cm);
        plan P = {0};
        rc = cm ? cli_model_open("export", load, act, cm) : cli_error("export", "out of memory");
        if (!rc)
            rc = make_plan(cm, &P);
        if (!rc)
            rc = write_c(&P, cm->meta, load, c_out);
        free(P.layers);
        if (cm)
            cli_model_close(cm);
        free(cm);
    }
    loaded *L = NULL; /* conversions: the file's tensors and metadata as they are */
    if (!rc && (st_out || ck_out)) {
        L = calloc(1, sizeof *L);
        rc = L ? load_any(load, L) : cli_error("export", "out of memory");
    }
    nb_ckpt_opts o;
    memset(&o, 0, sizeof o);
    o.meta = L ? L->meta : NULL;
    nb_error err;
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
    if (L)
        nb_model_free(L->m);
    free(L);
    return rc;
}
