/* Activations, each a composition of primitive ops written so that no
 * intermediate overflows (see docs/nn.md for the formulas), except
 * log-softmax, which is a primitive of its own (ops/softmax.c). */

#include "nn_internal.h"

#include "../ops/table.h"

#include <ctype.h>
#include <math.h>

nb_tensor *nbn_const(nb_graph *g, const nb_tensor *x, double v)
{
    return x ? nbc_const(g, x->dtype, v) : NULL;
}

/* where(x > 0, x, slope·x) for a constant or tensor slope. */
static nb_tensor *leaky(nb_graph *g, nb_tensor *x, nb_tensor *slope)
{
    return nb_where(g, nb_gt(g, x, nbn_const(g, x, 0)), x, nb_mul(g, slope, x));
}

nb_tensor *nb_hard_sigmoid(nb_graph *g, nb_tensor *x)
{
    return nb_clamp(g, nb_add_scalar(g, nb_scale(g, x, 0.25), 0.5), 0, 1);
}

nb_tensor *nb_hard_tanh(nb_graph *g, nb_tensor *x)
{
    return nb_clamp(g, x, -1, 1);
}

nb_tensor *nb_leaky_relu(nb_graph *g, nb_tensor *x, double gamma)
{
    return leaky(g, x, nbn_const(g, x, gamma));
}

nb_tensor *nb_prelu(nb_graph *g, nb_tensor *x, nb_tensor *alpha)
{
    return leaky(g, x, alpha);
}

nb_tensor *nb_rrelu(nb_graph *g, nb_tensor *x, double lower, double upper, nb_rng *rng,
                    bool training)
{
    if (!x)
        return NULL;
    if (!(lower >= 0 && lower <= upper && isfinite(upper))) {
        nbc_error(g, NB_ERR_ARG, "rrelu", "bounds [%g, %g] need 0 <= lower <= upper", lower, upper);
        return NULL;
    }
    if (!training)
        return leaky(g, x, nbn_const(g, x, 0.5 * (lower + upper)));
    if (!rng) {
        nbc_error(g, NB_ERR_NULL, "rrelu", "training mode needs an rng");
        return NULL;
    }
    /* one slope per element, a constant of this step */
    return leaky(g, x, nb_rand_uniform(g, rng, x->dtype, x->rank, x->shape, lower, upper));
}

/* ELU: where(x > 0, x, α·expm1(min(x, 0))) */
nb_tensor *nb_elu(nb_graph *g, nb_tensor *x, double alpha)
{
    nb_tensor *zero = nbn_const(g, x, 0);
    nb_tensor *pos = nb_gt(g, x, zero);
    nb_tensor *neg_part = nb_where(g, pos, zero, x); /* min(x, 0), derivative 1(x <= 0) */
    return nb_where(g, pos, x, nb_scale(g, nb_expm1(g, neg_part), alpha));
}

/* softplus(x) = p + ln(1 + e^(n − p)), p = max(x, 0), n = x − p = min(x, 0),
 * so n − p = −|x| <= 0 and nothing overflows; the derivative is
 * 1(x>0) + (1(x<=0) − 1(x>0))·σ(−|x|) = σ(x), also 1/2 at 0. */
nb_tensor *nb_softplus(nb_graph *g, nb_tensor *x)
{
    nb_tensor *p = nb_relu(g, x);
    nb_tensor *n = nb_sub(g, x, p);
    return nb_add(g, p, nb_log1p(g, nb_exp(g, nb_sub(g, n, p))));
}

nb_tensor *nb_softsign(nb_graph *g, nb_tensor *x)
{
    return nb_div(g, x, nb_add_scalar(g, nb_abs(g, x), 1));
}

nb_tensor *nb_swish(nb_graph *g, nb_tensor *x, double beta)
{
    return nb_mul(g, x, nb_sigmoid(g, nb_scale(g, x, beta)));
}

nb_tensor *nb_swish_param(nb_graph *g, nb_tensor *x, nb_tensor *beta)
{
    return nb_mul(g, x, nb_sigmoid(g, nb_mul(g, beta, x)));
}

/* 0.5·x·(1 + erf(x/√2)) */
nb_tensor *nb_gelu(nb_graph *g, nb_tensor *x)
{
    nb_tensor *cdf = nb_add_scalar(g, nb_erf(g, nb_scale(g, x, 0.70710678118654752440)), 1);
    return nb_mul(g, nb_scale(g, x, 0.5), cdf);
}

nb_tensor *nb_gelu_sigmoid(nb_graph *g, nb_tensor *x)
{
    return nb_swish(g, x, 1.702);
}

/* 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) */
nb_tensor *nb_gelu_tanh(nb_graph *g, nb_tensor *x)
{
    nb_tensor *cube = nb_mul(g, nb_square(g, x), x);
    nb_tensor *inner = nb_scale(g, nb_add(g, x, nb_scale(g, cube, 0.044715)),
                                0.79788456080286535588 /* sqrt(2/pi) */);
    return nb_mul(g, nb_scale(g, x, 0.5), nb_add_scalar(g, nb_tanh(g, inner), 1));
}

nb_tensor *nb_maxout(nb_graph *g, nb_tensor *x, int64_t k)
{
    if (!x)
        return NULL;
    char buf[96];
    if (x->rank < 1 || x->rank >= NB_MAX_RANK || k < 1 || x->shape[x->rank - 1] % k != 0) {
        nbc_error(g, NB_ERR_SHAPE, "maxout",
                  "input %s: the last axis must split into groups of %lld pieces",
                  nbc_shp(x, buf, sizeof buf), (long long)k);
        return NULL;
    }
    int64_t shape[NB_MAX_RANK];
    for (int i = 0; i < x->rank - 1; i++)
        shape[i] = x->shape[i];
    shape[x->rank - 1] = x->shape[x->rank - 1] / k;
    shape[x->rank] = k;
    int axis = -1;
    return nb_max(g, nb_reshape(g, x, x->rank + 1, shape), &axis, 1, false);
}

static bool check_axis(nb_graph *g, const nb_tensor *x, int axis, const char *op)
{
    char buf[96];
    if (x->rank == 0 || axis < -x->rank || axis >= x->rank) {
        nbc_error(g, NB_ERR_ARG, op, "axis %d out of range for %s", axis,
                  nbc_shp(x, buf, sizeof buf));
        return false;
    }
    return true;
}

/* x − max(x) along axis, the max a constant */
static nb_tensor *shift_by_max(nb_graph *g, nb_tensor *x, int axis)
{
    return nb_sub(g, x, nb_stop_gradient(g, nb_max(g, x, &axis, 1, true)));
}

nb_tensor *nb_softmax(nb_graph *g, nb_tensor *x, int axis)
{
    if (!x || !check_axis(g, x, axis, "softmax"))
        return NULL;
    nb_tensor *e = nb_exp(g, shift_by_max(g, x, axis));
    return nb_div(g, e, nb_sum(g, e, &axis, 1, true));
}

/* one primitive (ops/softmax.c): the numbers of (x − m) − log(sum(exp(x − m)))
 * with m = stop_gradient(max(x)), bit for bit */
nb_tensor *nb_log_softmax(nb_graph *g, nb_tensor *x, int axis)
{
    if (!x || !check_axis(g, x, axis, "log_softmax"))
        return NULL;
    return nbo_log_softmax(g, x, axis);
}

/* ------------------------------------------------------------ by kind */

typedef struct act_info {
    const char *name;
    const char *alias[2];
} act_info;

static const act_info act_table[] = {
    [NB_ACT_IDENTITY] = {"identity", {"linear", "none"}},
    [NB_ACT_SIGMOID] = {"sigmoid", {"logistic", NULL}},
    [NB_ACT_TANH] = {"tanh", {NULL, NULL}},
    [NB_ACT_HARD_SIGMOID] = {"hard-sigmoid", {"hard-logistic", NULL}},
    [NB_ACT_HARD_TANH] = {"hard-tanh", {NULL, NULL}},
    [NB_ACT_RELU] = {"relu", {NULL, NULL}},
    [NB_ACT_LEAKY_RELU] = {"leaky-relu", {"lrelu", NULL}},
    [NB_ACT_PRELU] = {"prelu", {NULL, NULL}},
    [NB_ACT_RRELU] = {"rrelu", {NULL, NULL}},
    [NB_ACT_ELU] = {"elu", {NULL, NULL}},
    [NB_ACT_SOFTPLUS] = {"softplus", {NULL, NULL}},
    [NB_ACT_SOFTSIGN] = {"softsign", {NULL, NULL}},
    [NB_ACT_SWISH] = {"swish", {"silu", NULL}},
    [NB_ACT_SWISH_LEARNED] = {"swish-learned", {NULL, NULL}},
    [NB_ACT_GELU] = {"gelu", {NULL, NULL}},
    [NB_ACT_GELU_SIGMOID] = {"gelu-sigmoid", {NULL, NULL}},
    [NB_ACT_GELU_TANH] = {"gelu-tanh", {NULL, NULL}},
    [NB_ACT_MAXOUT] = {"maxout", {NULL, NULL}},
    [NB_ACT_STEP] = {"step", {"binary-step", NULL}},
};
_Static_assert(sizeof act_table / sizeof act_table[0] == NB_ACT_COUNT, "one name per activation");

static bool act_valid(nb_act act)
{
    return (int)act >= 0 && act < NB_ACT_COUNT;
}

const char *nb_act_name(nb_act act)
{
    return act_valid(act) ? act_table[act].name : "?";
}

const char *nb_act_names(void)
{
    return "identity, sigmoid, tanh, hard-sigmoid, hard-tanh, relu, leaky-relu, prelu, rrelu, "
           "elu, softplus, softsign, swish, swish-learned, gelu, gelu-sigmoid, gelu-tanh, "
           "maxout, step";
}

/* Case-insensitive comparison where '_' equals '-'. */
static bool name_eq(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = *a == '_' ? '-' : tolower((unsigned char)*a);
        int cb = *b == '_' ? '-' : tolower((unsigned char)*b);
        if (ca != cb)
            return false;
        if (!ca)
            return true;
    }
}

nb_status nb_act_from_name(const char *name, nb_act *out)
{
    if (!name || !out)
        return NB_ERR_NULL;
    for (int k = 0; k < NB_ACT_COUNT; k++) {
        const act_info *a = &act_table[k];
        if (name_eq(name, a->name) || (a->alias[0] && name_eq(name, a->alias[0])) ||
            (a->alias[1] && name_eq(name, a->alias[1]))) {
            *out = (nb_act)k;
            return NB_OK;
        }
    }
    return NB_ERR_NOTFOUND;
}

bool nb_act_has_param(nb_act act)
{
    return act == NB_ACT_PRELU || act == NB_ACT_SWISH_LEARNED;
}

nb_act_opts nb_act_defaults(nb_act act)
{
    nb_act_opts o = {.alpha = 0, .beta = 1, .lower = 1.0 / 8, .upper = 1.0 / 3, .pieces = 2};
    switch (act) {
    case NB_ACT_LEAKY_RELU: o.alpha = 0.01; break;
    case NB_ACT_ELU: o.alpha = 1; break;
    case NB_ACT_PRELU: o.alpha = 0.25; break;
    default: break;
    }
    return o;
}

nb_tensor *nb_activate(nb_graph *g, nb_act act, nb_tensor *x, const nb_act_opts *o,
                       nb_tensor *param, nb_rng *rng, bool training)
{
    if (!act_valid(act)) {
        nbc_error(g, NB_ERR_ARG, "activate", "unknown activation %d", (int)act);
        return NULL;
    }
    nb_act_opts d = o ? *o : nb_act_defaults(act);
    if (nb_act_has_param(act) != (param != NULL)) {
        nbc_error(g, NB_ERR_ARG, "activate", "%s %s", nb_act_name(act),
                  param ? "takes no parameter tensor" : "needs its parameter tensor");
        return NULL;
    }
    switch (act) {
    case NB_ACT_IDENTITY: return x;
    case NB_ACT_SIGMOID: return nb_sigmoid(g, x);
    case NB_ACT_TANH: return nb_tanh(g, x);
    case NB_ACT_HARD_SIGMOID: return nb_hard_sigmoid(g, x);
    case NB_ACT_HARD_TANH: return nb_hard_tanh(g, x);
    case NB_ACT_RELU: return nb_relu(g, x);
    case NB_ACT_LEAKY_RELU: return nb_leaky_relu(g, x, d.alpha);
    case NB_ACT_PRELU: return nb_prelu(g, x, param);
    case NB_ACT_RRELU: return nb_rrelu(g, x, d.lower, d.upper, rng, training);
    case NB_ACT_ELU: return nb_elu(g, x, d.alpha);
    case NB_ACT_SOFTPLUS: return nb_softplus(g, x);
    case NB_ACT_SOFTSIGN: return nb_softsign(g, x);
    case NB_ACT_SWISH: return nb_swish(g, x, d.beta);
    case NB_ACT_SWISH_LEARNED: return nb_swish_param(g, x, param);
    case NB_ACT_GELU: return nb_gelu(g, x);
    case NB_ACT_GELU_SIGMOID: return nb_gelu_sigmoid(g, x);
    case NB_ACT_GELU_TANH: return nb_gelu_tanh(g, x);
    case NB_ACT_MAXOUT: return nb_maxout(g, x, d.pieces);
    case NB_ACT_STEP: return nb_step(g, x);
    case NB_ACT_COUNT: break;
    }
    return NULL;
}
