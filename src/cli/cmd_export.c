/* nabla export: a trained MLP or convolutional network as a standalone C
 * file (its weights as static arrays and its forward pass in evaluation
 * mode), and conversion between nabla checkpoints and safetensors files. */

#include <errno.h>
#include <stdarg.h>
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
    "                             (T float or double, as the model), evaluation mode;\n"
    "                             nabla_cnn_forward for a network with convolution or\n"
    "                             pooling (x one image, [C, H, W] row-major)\n"
    "  --safetensors OUT          the tensors and metadata as a safetensors file\n"
    "  --ckpt OUT                 the tensors and metadata as a nabla checkpoint\n"
    "  --act NAME                 hidden activation when the file's metadata has no\n"
    "                             act= entry (one of: identity, sigmoid, tanh, relu, ...)\n"
    "The activation's settings (alpha, beta, lower, upper, pieces), the output\n"
    "activation (out_act) and batch norm's bn_eps come from the description\n"
    "(docs/nn.md lists its keys), else the defaults. The conversions copy the\n"
    "tensors and metadata as they are. At least one output is required. --c\n"
    "emits linear, maxout, conv2d (any stride, padding, dilation and groups),\n"
    "max_pool2d and avg_pool2d layers, each followed by at most a batch norm\n"
    "(of flat rows) and then an activation, with dropout, flatten and reshapes\n"
    "to CxHxW images or flat rows anywhere, and names the first layer of any\n"
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

/* ---------------------------------------------------- the network's plan */

/* What one step of the forward pass computes. */
typedef enum step_kind {
    STEP_DENSE,    /* a linear or maxout layer */
    STEP_CONV,     /* a conv2d layer */
    STEP_MAX_POOL, /* a max_pool2d layer */
    STEP_AVG_POOL, /* an avg_pool2d layer */
} step_kind;

typedef struct layer_plan {
    step_kind kind;
    int64_t n_in, n_out;                       /* a sample's elements in and out (n_out after
                                                  maxout) */
    int64_t cols;                              /* the weight's columns (n_out·pieces for maxout) */
    int64_t pieces;                            /* maxout, else 1 */
    nb_tensor *w, *b;                          /* b may be NULL (no bias) */
    nb_tensor *bn_w, *bn_b, *bn_mean, *bn_var; /* batch norm, or all NULL */
    double bn_eps;
    nb_act act;           /* after this layer (and its batch norm) */
    nb_act_opts ao;       /* its settings */
    nb_tensor *act_param; /* PReLU α or learned swish β: one per output, one for all, or one
                             per element of the last axis */
    int64_t in[3], out[3];                    /* conv and pooling: the images [C, H, W] */
    int64_t kernel[2], stride[2], padding[2]; /* conv and pooling: the window */
    int64_t dilation[2], groups;              /* conv */
} layer_plan;

typedef struct plan {
    nb_dtype dtype;
    int n_layers;
    layer_plan *layers;
    int64_t max_width;
    nb_tensor *in_mean, *in_std; /* input normalisation (f64 [n_in]) or NULL */
    bool cnn;                    /* a convolution or pooling among the steps */
} plan;

/* The C export cannot emit layer @p l (@p fmt: "" or the reason): an error. */
static int cannot_emit(const nb_layer_info *l, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cli_error("export",
                     "--c: cannot emit layer '%s' (%s)%s%s; the C export emits linear, maxout, "
                     "conv2d, max_pool2d and avg_pool2d layers, each followed by at most a batch "
                     "norm (of flat rows) and then an activation (dropout, flatten and reshapes "
                     "to CxHxW or flat rows anywhere)",
                     l->name, l->kind_name, *why ? ": " : "", why);
}

/* What goes from one layer to the next, per sample: rank 0 the network's
 * input (not known yet), 1 a row of d[0] values, 3 an image [C, H, W]. */
typedef struct flow {
    int rank;
    int64_t d[3];
} flow;

static int64_t flow_size(const flow *s)
{
    return s->rank == 3 ? s->d[0] * s->d[1] * s->d[2] : s->d[0];
}

/* "8x8x1", or "flat rows" */
static const char *flow_str(const flow *s, char *buf, size_t cap)
{
    if (s->rank == 3)
        snprintf(buf, cap, "a %lldx%lldx%lld image", (long long)s->d[0], (long long)s->d[1],
                 (long long)s->d[2]);
    else
        snprintf(buf, cap, "rows of %lld", (long long)s->d[0]);
    return buf;
}

static bool is_kind(const nb_layer *l, const char *kind)
{
    return nb_layer_get_def(l) == nb_layer_builtin(kind);
}

/* A reshape's shape (its "shape=AxBxC" setting) into @p s; false when it
 * is not of rank 1 or 3 (s->rank then holds its rank). */
static bool reshape_flow(const nb_layer *l, flow *s, char *text, size_t cap)
{
    char settings[256];
    settings[0] = text[0] = '\0';
    nb_layer_get_def(l)->describe(l, settings, sizeof settings);
    nb_layer_setting_get(settings, "shape", text, cap);
    s->rank = 1;
    for (const char *p = text; *p; p++)
        s->rank += *p == 'x';
    if (s->rank != 1 && s->rank != 3)
        return false;
    char *end = text;
    for (int i = 0; i < s->rank; i++)
        s->d[i] = strtoll(end + (i > 0), &end, 10);
    return true;
}

/* The output side of a window of @p k taps spaced @p dil apart over @p n
 * inputs padded by @p pad, at stride @p stride; 0 when it does not fit. */
static int64_t window_out(int64_t n, int64_t k, int64_t stride, int64_t pad, int64_t dil)
{
    int64_t room = n + 2 * pad - dil * (k - 1) - 1;
    return room < 0 ? 0 : room / stride + 1;
}

/* 0 when the emitted code's int indices reach every element of step @p p
 * (inputs, outputs and weights), else an error naming layer @p l */
static int int_sized(const nb_layer_info *l, const layer_plan *p)
{
    if (p->n_in > INT32_MAX || p->n_out > INT32_MAX || p->cols > INT32_MAX ||
        (p->w && nb_tensor_size(p->w) > INT32_MAX))
        return cannot_emit(l,
                           "%lld elements in and %lld out, more than the C code's int indices "
                           "reach",
                           (long long)p->n_in, (long long)p->n_out);
    return 0;
}

/* A convolution or pooling step on the image @p s, which becomes its
 * output; refused when the window does not fit or the sizes pass int. */
static int image_step(const nb_layer_info *l, layer_plan *p, flow *s)
{
    char what[96];
    if (s->rank != 3)
        return cannot_emit(l, "on %s, not a CxHxW image (a reshape to one first)",
                           s->rank ? flow_str(s, what, sizeof what) : "the flat input rows");
    int64_t c = s->d[0];
    if (p->kind == STEP_CONV && c != l->n_in)
        return cannot_emit(l, "takes %lld channels but gets %s", (long long)l->n_in,
                           flow_str(s, what, sizeof what));
    memcpy(p->in, s->d, sizeof p->in);
    p->out[0] = p->kind == STEP_CONV ? l->n_out : c;
    for (int a = 0; a < 2; a++) {
        p->out[1 + a] =
            window_out(s->d[1 + a], p->kernel[a], p->stride[a], p->padding[a], p->dilation[a]);
        if (p->out[1 + a] == 0)
            return cannot_emit(l, "its %lldx%lld window does not fit %s", (long long)p->kernel[0],
                               (long long)p->kernel[1], flow_str(s, what, sizeof what));
    }
    memcpy(s->d, p->out, sizeof s->d);
    p->n_in = p->in[0] * p->in[1] * p->in[2];
    p->n_out = flow_size(s);
    p->cols = p->n_out;
    return int_sized(l, p);
}

/* The step layer @p item is (@p l its info), or -1 when it is none. */
static int step_of(const nb_layer *item, const nb_layer_info *l)
{
    return l->kind == NB_LAYER_LINEAR || l->kind == NB_LAYER_MAXOUT ? STEP_DENSE
           : is_kind(item, "conv2d")                                ? STEP_CONV
           : is_kind(item, "max_pool2d")                            ? STEP_MAX_POOL
           : is_kind(item, "avg_pool2d")                            ? STEP_AVG_POOL
                                                                    : -1;
}

/* A layer with weights or a window (step @p kind): the next step of the
 * plan. */
static int add_step(plan *P, const nb_layer_info *l, step_kind kind, flow *s)
{
    layer_plan *p = &P->layers[P->n_layers];
    *p = (layer_plan){.pieces = 1, .act = NB_ACT_IDENTITY, .groups = 1, .dilation = {1, 1}};
    char what[96];
    p->kind = kind;
    if (kind == STEP_DENSE) {
        if (s->rank == 3)
            return cannot_emit(l, "on %s (a flatten before it)", flow_str(s, what, sizeof what));
        if (s->rank == 1 && s->d[0] != l->n_in)
            return cannot_emit(l, "takes %lld inputs but gets %s", (long long)l->n_in,
                               flow_str(s, what, sizeof what));
        p->n_in = l->n_in;
        p->n_out = l->n_out;
        p->cols = l->n_out * l->pieces;
        p->pieces = l->pieces;
        p->w = l->weight;
        p->b = l->bias;
        *s = (flow){1, {l->n_out}};
        if (int_sized(l, p))
            return -1;
    } else {
        memcpy(p->kernel, l->kernel, sizeof p->kernel);
        if (p->kind == STEP_CONV) {
            memcpy(p->stride, l->conv.stride, sizeof p->stride);
            memcpy(p->padding, l->conv.padding, sizeof p->padding);
            memcpy(p->dilation, l->conv.dilation, sizeof p->dilation);
            p->groups = l->conv.groups;
            p->w = l->weight;
            p->b = l->bias;
        } else {
            memcpy(p->stride, l->pool.stride, sizeof p->stride);
            memcpy(p->padding, l->pool.padding, sizeof p->padding);
        }
        int rc = image_step(l, p, s);
        if (rc)
            return rc;
        P->cnn = true;
    }
    if (p->w)
        P->dtype = nb_tensor_dtype(p->w);
    int64_t wide = p->cols > p->n_in ? p->cols : p->n_in;
    P->max_width = wide > P->max_width ? wide : P->max_width;
    P->n_layers++;
    return 0;
}

/* Batch norm or an activation after the last step, in @p stage (1 batch
 * norm, 2 activation seen after it), on @p s. */
static int add_after(plan *P, const nb_layer_info *l, const flow *s, int *stage)
{
    char what[96];
    if (P->n_layers == 0)
        return cannot_emit(l, "before the first linear, maxout, conv2d or pooling layer");
    int want = l->kind == NB_LAYER_BATCH_NORM ? 1 : 2;
    if (*stage >= want)
        return cannot_emit(l, "out of order");
    if (l->kind == NB_LAYER_ACTIVATION && l->act == NB_ACT_MAXOUT)
        return cannot_emit(l, "a maxout activation (write a maxout layer instead)");
    *stage = want;
    layer_plan *p = &P->layers[P->n_layers - 1];
    if (l->kind == NB_LAYER_BATCH_NORM) {
        if (s->rank != 1 || s->d[0] != l->n_in)
            return cannot_emit(l, "normalises rows of %lld features but gets %s",
                               (long long)l->n_in, flow_str(s, what, sizeof what));
        p->bn_w = l->weight;
        p->bn_b = l->bias;
        p->bn_mean = l->running_mean;
        p->bn_var = l->running_var;
        p->bn_eps = l->eps;
    } else {
        int64_t n = l->param ? nb_tensor_size(l->param) : 1, last = s->d[s->rank - 1];
        if (n != 1 && n != last)
            return cannot_emit(l,
                               "its %lld parameters are neither one nor one per element of "
                               "the last axis of %s",
                               (long long)n, flow_str(s, what, sizeof what));
        p->act = l->act;
        p->ao = l->act_opts;
        p->act_param = l->param;
    }
    return 0;
}

/* The plan of the network @p cm holds, as nb_layer_from_description built
 * it: one entry per linear, maxout, conv2d or pooling layer, with the
 * batch norm and the activation that follow it (dropout is the identity in
 * evaluation mode; flatten and reshapes only say how the values are read).
 * Any other network is refused, naming the first layer it cannot emit. */
static int make_plan(const cli_model *cm, plan *P)
{
    nb_layer_info seq;
    nb_layer_get_info(cm->net, &seq);
    memset(P, 0, sizeof *P);
    P->dtype = NB_F32; /* the weights' (without any: f32, as the data sets are) */
    if (seq.kind != NB_LAYER_SEQUENTIAL)
        return cannot_emit(&seq, "a lone layer, not a sequence");
    P->layers = calloc((size_t)seq.n_items, sizeof *P->layers);
    if (!P->layers)
        return cli_error("export", "out of memory");
    P->in_mean = cm->mean;
    P->in_std = cm->std;
    int stage = 0; /* after a step: 1 batch norm, 2 activation seen */
    flow s = {0};
    for (int k = 0; k < seq.n_items; k++) {
        const nb_layer *item = nb_layer_at(cm->net, k);
        nb_layer_info l;
        nb_layer_get_info(item, &l);
        int rc = 0, kind = step_of(item, &l);
        char text[256], what[96];
        if (kind >= 0) {
            rc = add_step(P, &l, (step_kind)kind, &s);
            stage = 0;
        } else if (l.kind == NB_LAYER_DROPOUT) { /* the identity in evaluation mode */
        } else if (is_kind(item, "flatten")) {
            if (s.rank == 3)
                s = (flow){1, {flow_size(&s)}};
        } else if (is_kind(item, "reshape")) {
            flow r;
            if (!reshape_flow(item, &r, text, sizeof text))
                rc = cannot_emit(&l,
                                 "a reshape to %s, of rank %d (only CxHxW images and flat "
                                 "rows are emitted)",
                                 text, r.rank);
            else if (s.rank && flow_size(&r) != flow_size(&s))
                rc = cannot_emit(&l, "%lld values per sample, but gets %s",
                                 (long long)flow_size(&r), flow_str(&s, what, sizeof what));
            s = r;
        } else if (l.kind == NB_LAYER_BATCH_NORM || l.kind == NB_LAYER_ACTIVATION) {
            rc = add_after(P, &l, &s, &stage);
        } else {
            rc = cannot_emit(&l, "");
        }
        if (rc)
            return rc;
    }
    if (P->n_layers == 0)
        return cannot_emit(&seq, "no linear, maxout, conv2d or pooling layer");
    return 0;
}

/* ---------------------------------------------------------- writing C */

typedef struct emitter {
    FILE *f;
    const char *T; /* "float" or "double" */
    bool f32;
    const char *pfx; /* of the names: "mlp" or "cnn" */
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
    case NB_ACT_SIGMOID: fprintf(f, "%s_sigmoid(v)", E->pfx); break;
    case NB_ACT_TANH: fprintf(f, "(%s)tanh(v)", T); break;
    case NB_ACT_HARD_SIGMOID:
        fprintf(f, "%s_clamp(v * (%s)0.25 + (%s)0.5, (%s)0, (%s)1)", E->pfx, T, T, T, T);
        break;
    case NB_ACT_HARD_TANH: fprintf(f, "%s_clamp(v, (%s)-1, (%s)1)", E->pfx, T, T); break;
    case NB_ACT_RELU: fprintf(f, "(v <= 0 ? (%s)0 : v)", T); break;
    case NB_ACT_LEAKY_RELU:
    case NB_ACT_RRELU:
        fprintf(f, "(v > 0 ? v : (%s)", T);
        emit_const(E, act == NB_ACT_RRELU ? 0.5 * (o->lower + o->upper) : o->alpha);
        fputs(" * v)", f);
        break;
    case NB_ACT_PRELU: fprintf(f, "(v > 0 ? v : %s * v)", param); break;
    case NB_ACT_ELU:
        fprintf(f, "(v > 0 ? v : (%s)expm1(v) * (%s)", T, T);
        emit_const(E, o->alpha);
        fputs(")", f);
        break;
    case NB_ACT_SOFTPLUS: fprintf(f, "%s_softplus(v)", E->pfx); break;
    case NB_ACT_SOFTSIGN: fprintf(f, "v / ((%s)fabs(v) + (%s)1)", T, T); break;
    case NB_ACT_SWISH:
    case NB_ACT_GELU_SIGMOID:
        fprintf(f, "v * %s_sigmoid(v * (%s)", E->pfx, T);
        emit_const(E, act == NB_ACT_SWISH ? o->beta : 1.702);
        fputs(")", f);
        break;
    case NB_ACT_SWISH_LEARNED: fprintf(f, "v * %s_sigmoid(%s * v)", E->pfx, param); break;
    case NB_ACT_GELU:
        fprintf(f, "v * (%s)0.5 * ((%s)erf(v * (%s)0.70710678118654752440) + (%s)1)", T, T, T, T);
        break;
    case NB_ACT_GELU_TANH: fprintf(f, "%s_gelu_tanh(v)", E->pfx); break;
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
    const char *T = E->T, *pfx = E->pfx;
    FILE *f = E->f;
    /* as nabla computes them: sigma(x) with e = e^-|x| as 1/(1+e) or e/(1+e)
     * (accurate in both tails), softplus without overflow, the tanh form
     * of GELU */
    if (sig)
        fprintf(f,
                "static %s %s_sigmoid(%s x)\n{\n    %s e = (%s)exp(-(%s)fabs(x));\n    "
                "return (x >= 0 ? (%s)1 : e) / ((%s)1 + e);\n}\n\n",
                T, pfx, T, T, T, T, T, T);
    if (clamp)
        fprintf(f,
                "static %s %s_clamp(%s x, %s lo, %s hi)\n{\n    "
                "return x >= hi ? hi : x <= lo ? lo : x;\n}\n\n",
                T, pfx, T, T, T);
    if (softplus)
        fprintf(f,
                "static %s %s_softplus(%s x)\n{\n    %s p = x > 0 ? x : (%s)0, n = x - p;\n    "
                "return p + (%s)log1p((%s)exp(n - p));\n}\n\n",
                T, pfx, T, T, T, T, T);
    if (gelu_tanh)
        fprintf(f,
                "static %s %s_gelu_tanh(%s x)\n{\n    %s cube = x * x * x;\n    %s inner = "
                "(x + cube * (%s)0.044715) * (%s)0.79788456080286535588;\n    return x * "
                "(%s)0.5 * ((%s)tanh(inner) + (%s)1);\n}\n\n",
                T, pfx, T, T, T, T, T, T, T, T);
}

/* The weights of every step, then the input statistics. */
static void emit_arrays(emitter *E, const plan *P)
{
    char name[64];
    for (int i = 0; i < P->n_layers; i++) {
        const layer_plan *l = &P->layers[i];
        if (l->w) {
            snprintf(name, sizeof name, "w%d", i + 1);
            emit_array(E, name, l->w);
        }
        if (l->b) {
            snprintf(name, sizeof name, "b%d", i + 1);
            emit_array(E, name, l->b);
        }
        if (l->bn_w) {
            snprintf(name, sizeof name, "bn%d_weight", i + 1);
            emit_array(E, name, l->bn_w);
            snprintf(name, sizeof name, "bn%d_bias", i + 1);
            emit_array(E, name, l->bn_b);
            snprintf(name, sizeof name, "bn%d_mean", i + 1);
            emit_array(E, name, l->bn_mean);
            snprintf(name, sizeof name, "bn%d_var", i + 1);
            emit_array(E, name, l->bn_var);
        }
        if (l->act_param) {
            snprintf(name, sizeof name, "act%d_param", i + 1);
            emit_array(E, name, l->act_param);
        }
    }
    if (P->in_mean) { /* kept in double: the normalisation nabla applied to the data */
        emitter D = {E->f, "double", false, E->pfx};
        emit_array(&D, "in_mean", P->in_mean);
        emit_array(&D, "in_std", P->in_std);
    }
}

/* Step @p k, a linear or maxout layer: in.W + b into @p dst (the maxima of
 * the pieces through @p z). Returns where its output is. */
static const char *emit_dense(emitter *E, const layer_plan *l, int k, bool is_last, const char *dst,
                              const char *z)
{
    FILE *f = E->f;
    const char *T = E->T;
    fprintf(f, "\n    /* layer %d: %lld -> %lld", k, (long long)l->n_in, (long long)l->n_out);
    if (l->pieces > 1)
        fprintf(f, ", maxout of %lld pieces", (long long)l->pieces);
    if (l->bn_w)
        fputs(", batch norm", f);
    if (l->act != NB_ACT_IDENTITY)
        fprintf(f, ", %s", nb_act_name(l->act));
    fputs(" */\n", f);
    /* z = in.W + b */
    fprintf(f, "    for (int j = 0; j < %lld; j++) {\n        %s s = 0;\n", (long long)l->cols, T);
    fprintf(f,
            "        for (int i = 0; i < %lld; i++)\n            s += in[i] * w%d[i * %lld + "
            "j];\n",
            (long long)l->n_in, k, (long long)l->cols);
    if (l->b)
        fprintf(f, "        s = s + b%d[j];\n", k);
    fprintf(f, "        %s[j] = s;\n    }\n", l->pieces > 1 ? z : dst);
    if (l->pieces == 1)
        return dst;
    /* maximum of each group of consecutive pieces, in place; a NaN piece
       wins, as in the library */
    fprintf(f,
            "    for (int j = 0; j < %lld; j++) {\n        %s m = %s[j * %lld];\n"
            "        for (int k = 1; k < %lld; k++) {\n"
            "            %s p = %s[j * %lld + k];\n"
            "            m = p > m || p != p ? p : m;\n        }\n"
            "        %s[j] = m;\n    }\n",
            (long long)l->n_out, T, z, (long long)l->pieces, (long long)l->pieces, T, z,
            (long long)l->pieces, z);
    if (!is_last)
        return z;
    fprintf(f, "    for (int j = 0; j < %lld; j++)\n        logits[j] = %s[j];\n",
            (long long)l->n_out, z);
    return "logits";
}

/* Batch norm and the activation after step @p k, in place in @p dst. */
static void emit_after(emitter *E, const layer_plan *l, int k, const char *dst)
{
    if (!l->bn_w && l->act == NB_ACT_IDENTITY)
        return;
    FILE *f = E->f;
    const char *T = E->T;
    fprintf(f, "    for (int j = 0; j < %lld; j++) {\n        %s v = %s[j];\n", (long long)l->n_out,
            T, dst);
    if (l->bn_w) {
        fprintf(f, "        v = (v - bn%d_mean[j]) / (%s)sqrt(bn%d_var[j] + (%s)", k, T, k, T);
        emit_const(E, l->bn_eps);
        fprintf(f, ");\n        v = v * bn%d_weight[j] + bn%d_bias[j];\n", k, k);
    }
    fputs("        v = ", f);
    /* a parameter per output, one for all, or one per element of the last
       axis of an image */
    char param[64];
    int64_t n = l->act_param ? nb_tensor_size(l->act_param) : 0;
    if (n == l->n_out)
        snprintf(param, sizeof param, "act%d_param[j]", k);
    else if (n == 1)
        snprintf(param, sizeof param, "act%d_param[0]", k);
    else
        snprintf(param, sizeof param, "act%d_param[j %% %lld]", k, (long long)n);
    emit_act_expr(E, l->act, &l->ao, param);
    fprintf(f, ";\n        %s[j] = v;\n    }\n", dst);
}

/* "i * 2 - 1 + ka * 2": the input row (or column) of output @p o and tap
 * @p t of a window at @p stride, @p pad and dilation @p dil. */
static void emit_coord(FILE *f, const char *o, int64_t stride, int64_t pad, const char *t,
                       int64_t dil)
{
    fputs(o, f);
    if (stride != 1)
        fprintf(f, " * %lld", (long long)stride);
    if (pad)
        fprintf(f, " - %lld", (long long)pad);
    fprintf(f, " + %s", t);
    if (dil != 1)
        fprintf(f, " * %lld", (long long)dil);
}

/* The window's loops over taps (ka, kb) at input row r and column q,
 * opened at the indentation of 16 spaces; "cond" gets the test that
 * (r, q) is inside the input ("" when no padding reaches it). */
static void emit_taps(FILE *f, const layer_plan *l, const char *ind, char *cond, size_t cap)
{
    fprintf(f, "%sfor (int ka = 0; ka < %lld; ka++) {\n%s    const int r = ", ind,
            (long long)l->kernel[0], ind);
    emit_coord(f, "i", l->stride[0], l->padding[0], "ka", l->dilation[0]);
    fprintf(f, ";\n%s    for (int kb = 0; kb < %lld; kb++) {\n%s        const int q = ", ind,
            (long long)l->kernel[1], ind);
    emit_coord(f, "j", l->stride[1], l->padding[1], "kb", l->dilation[1]);
    fputs(";\n", f);
    int n = 0;
    cond[0] = '\0';
    if (l->padding[0])
        n += snprintf(cond + n, cap - (size_t)n, "r >= 0 && r < %lld", (long long)l->in[1]);
    if (l->padding[1])
        snprintf(cond + n, cap - (size_t)n, "%sq >= 0 && q < %lld", n ? " && " : "",
                 (long long)l->in[2]);
}

/* The loops over a step's outputs (o or c, i, j) and the comment. */
static void emit_window_head(emitter *E, const layer_plan *l, int k, const char *what)
{
    FILE *f = E->f;
    fprintf(f, "\n    /* layer %d: %s %lldx%lldx%lld -> %lldx%lldx%lld, kernel %lldx%lld", k, what,
            (long long)l->in[0], (long long)l->in[1], (long long)l->in[2], (long long)l->out[0],
            (long long)l->out[1], (long long)l->out[2], (long long)l->kernel[0],
            (long long)l->kernel[1]);
    fprintf(f, ", stride %lldx%lld", (long long)l->stride[0], (long long)l->stride[1]);
    if (l->padding[0] || l->padding[1])
        fprintf(f, ", padding %lldx%lld", (long long)l->padding[0], (long long)l->padding[1]);
    if (l->dilation[0] != 1 || l->dilation[1] != 1)
        fprintf(f, ", dilation %lldx%lld", (long long)l->dilation[0], (long long)l->dilation[1]);
    if (l->groups > 1)
        fprintf(f, ", %lld groups", (long long)l->groups);
    if (l->bn_w)
        fputs(", batch norm", f);
    if (l->act != NB_ACT_IDENTITY)
        fprintf(f, ", %s", nb_act_name(l->act));
    fputs(" */\n", f);
}

/* Step @p k, a convolution: into @p dst, each output the sum over its
 * taps in (channel, row, column) order, padding as zeros, then + bias. */
static void emit_conv(emitter *E, const layer_plan *l, int k, const char *dst)
{
    FILE *f = E->f;
    const char *T = E->T;
    int64_t cg = l->in[0] / l->groups, og = l->out[0] / l->groups, plane = l->in[1] * l->in[2];
    emit_window_head(E, l, k, "conv2d");
    fprintf(f, "    for (int o = 0; o < %lld; o++) {\n", (long long)l->out[0]);
    fprintf(f, "        const %s *wo = w%d + o * %lld;\n", T, k,
            (long long)(cg * l->kernel[0] * l->kernel[1]));
    if (l->groups > 1) /* the channels of o's group */
        fprintf(f, "        const %s *xg = in + o / %lld * %lld;\n", T, (long long)og,
                (long long)(cg * plane));
    else
        fprintf(f, "        const %s *xg = in;\n", T);
    fprintf(f,
            "        for (int i = 0; i < %lld; i++)\n"
            "            for (int j = 0; j < %lld; j++) {\n"
            "                %s s = 0;\n"
            "                for (int c = 0; c < %lld; c++)\n",
            (long long)l->out[1], (long long)l->out[2], T, (long long)cg);
    char cond[96];
    emit_taps(f, l, "                    ", cond, sizeof cond);
    const char *ind = "                            ";
    if (cond[0])
        fprintf(f, "%s%s v = %s ? xg[(c * %lld + r) * %lld + q] : (%s)0;\n", ind, T, cond,
                (long long)l->in[1], (long long)l->in[2], T);
    else
        fprintf(f, "%s%s v = xg[(c * %lld + r) * %lld + q];\n", ind, T, (long long)l->in[1],
                (long long)l->in[2]);
    fprintf(f,
            "%ss += v * wo[(c * %lld + ka) * %lld + kb];\n"
            "                        }\n"
            "                    }\n",
            ind, (long long)l->kernel[0], (long long)l->kernel[1]);
    if (l->b)
        fprintf(f, "                s = s + b%d[o];\n", k);
    fprintf(f,
            "                %s[(o * %lld + i) * %lld + j] = s;\n"
            "            }\n"
            "    }\n",
            dst, (long long)l->out[1], (long long)l->out[2]);
}

/* Step @p k, a max or average pooling, into @p dst: each window scanned
 * row by row as the library scans it. */
static void emit_pool(emitter *E, const layer_plan *l, int k, const char *dst)
{
    FILE *f = E->f;
    const char *T = E->T;
    bool max = l->kind == STEP_MAX_POOL;
    emit_window_head(E, l, k, max ? "max_pool2d" : "avg_pool2d");
    fprintf(f,
            "    for (int c = 0; c < %lld; c++) {\n"
            "        const %s *xc = in + c * %lld;\n"
            "        for (int i = 0; i < %lld; i++)\n"
            "            for (int j = 0; j < %lld; j++) {\n",
            (long long)l->out[0], T, (long long)(l->in[1] * l->in[2]), (long long)l->out[1],
            (long long)l->out[2]);
    if (max)
        fprintf(f, "                %s m = (%s)-INFINITY;\n", T, T);
    else
        fprintf(f, "                %s s = 0;\n", T);
    char cond[96];
    emit_taps(f, l, "                ", cond, sizeof cond);
    const char *ind = "                        ";
    if (max) { /* padding never wins: the window's own elements only; the
                  first NaN stays */
        if (cond[0])
            fprintf(f, "%sif (!(%s))\n%s    continue;\n", ind, cond, ind);
        fprintf(f,
                "%s%s v = xc[r * %lld + q];\n"
                "%sm = v > m || (v != v && m == m) ? v : m;\n",
                ind, T, (long long)l->in[2], ind);
    } else if (cond[0]) { /* the padding adds zeros */
        fprintf(f, "%ss += %s ? xc[r * %lld + q] : (%s)0;\n", ind, cond, (long long)l->in[2], T);
    } else {
        fprintf(f, "%ss += xc[r * %lld + q];\n", ind, (long long)l->in[2]);
    }
    fputs("                    }\n"
          "                }\n",
          f);
    if (max)
        fprintf(f, "                %s[(c * %lld + i) * %lld + j] = m;\n", dst,
                (long long)l->out[1], (long long)l->out[2]);
    else
        fprintf(f, "                %s[(c * %lld + i) * %lld + j] = s / ((%s)%lld * (%s)%lld);\n",
                dst, (long long)l->out[1], (long long)l->out[2], T, (long long)l->kernel[0], T,
                (long long)l->kernel[1]);
    fputs("            }\n    }\n", f);
}

static int write_c(const plan *P, const char *meta, const char *src, const char *out)
{
    nbio_out *o = NULL;
    char why[512];
    if (nbio_out_open(out, NULL, NULL, &o, why, sizeof why) != NB_OK)
        return cli_error("export", "%s", why);
    FILE *f = nbio_out_file(o); /* written beside out, renamed when complete */
    emitter E = {f, P->dtype == NB_F32 ? "float" : "double", P->dtype == NB_F32,
                 P->cnn ? "cnn" : "mlp"};
    const char *T = E.T, *pfx = E.pfx, *PFX = P->cnn ? "CNN" : "MLP";
    const layer_plan *first = &P->layers[0], *last = &P->layers[P->n_layers - 1];
    /* the two buffers between the steps: on the stack up to 1 MiB */
    int64_t scratch = 2 * P->max_width * (E.f32 ? 4 : 8);
    bool big = P->cnn && P->n_layers > 1 && scratch > (1 << 20);

    if (P->cnn)
        fprintf(f, "/* Generated by nabla export from %s: a convolutional network's forward\n",
                src);
    else
        fprintf(f, "/* Generated by nabla export from %s: a multi-layer perceptron's forward\n",
                src);
    fputs(" * pass in evaluation mode (dropout off, batch norm with its running\n"
          " * statistics). Standalone C11: needs only <math.h> (link with -lm).\n",
          f);
    if (P->cnn)
        fputs(" * Images are [C, H, W] row-major; a convolution is a cross-correlation\n"
              " * over zero padding with weights [O, C/groups, KH, KW] and bias [O];\n"
              " * max pooling ignores the padding, average pooling counts it as zeros.\n"
              " * A linear layer's weights are [n_in, n_out] row-major, y = x.W + b;\n"
              " * constants are written as exact hexadecimal floating-point literals.\n *\n",
              f);
    else
        fputs(" * Weights are [n_in, n_out] row-major, y = x.W + b; constants are written\n"
              " * as exact hexadecimal floating-point literals.\n *\n",
              f);
    fprintf(f,
            " *   %s x[NABLA_%s_INPUTS], logits[NABLA_%s_OUTPUTS];\n"
            " *   nabla_%s_forward(x, logits);\n",
            T, PFX, PFX, pfx);
    if (first->kind != STEP_DENSE)
        fprintf(f, " *\n * x is one %lldx%lldx%lld image (channels, rows, columns).\n",
                (long long)first->in[0], (long long)first->in[1], (long long)first->in[2]);
    if (big)
        fprintf(f,
                " * Its intermediate results take %lld bytes of static storage, so\n"
                " * nabla_%s_forward is not reentrant (one call at a time).\n",
                (long long)scratch, pfx);
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
    fprintf(f, "#define NABLA_%s_INPUTS %lld\n#define NABLA_%s_OUTPUTS %lld\n\n", PFX,
            (long long)first->n_in, PFX, (long long)last->n_out);
    fprintf(f, "int nabla_%s_forward(const %s *x, %s *logits);\n\n", pfx, T, T);
    emit_arrays(&E, P);
    emit_helpers(&E, P);

    fprintf(f, "int nabla_%s_forward(const %s *x, %s *logits)\n{\n", pfx, T, T);
    if (P->n_layers > 1 || last->pieces > 1)
        fprintf(f, "    %s%s h[2][%lld];\n", big ? "static " : "", T, (long long)P->max_width);
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
        if (l->kind == STEP_DENSE)
            dst = emit_dense(&E, l, i + 1, is_last, dst, z);
        else if (l->kind == STEP_CONV)
            emit_conv(&E, l, i + 1, dst);
        else
            emit_pool(&E, l, i + 1, dst);
        emit_after(&E, l, i + 1, dst);
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
