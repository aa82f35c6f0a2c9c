/* Descriptions: a network as metadata text (nb_layer_describe), checked
 * (nb_layer_description_check) and built again (nb_layer_from_description).
 * The one architecture is the MLP of nb_mlp_new; docs/nn.md lists its keys.
 * Both directions share the table of activation settings below, so a key
 * written is a key read. */

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>

#include "nabla/meta.h"

#include "layers_text.h"

/* Longest sizes= value, in bytes (its NUL excluded). */
#define SIZES_MAX_LEN 4095
/* Longest prefix nb_mlp_new takes, in bytes. */
#define PREFIX_MAX_LEN 80

/* What an MLP description says besides its sizes. */
typedef struct mlp_desc {
    nb_act act, out_act;
    nb_act_opts ao; /* the hidden activation's settings */
    bool batch_norm, bias;
    double bn_eps, bn_momentum, dropout;
    nb_dtype dtype;
} mlp_desc;

/* The settings of the activations, as keys, and which activations have each. */
enum { K_ALPHA = 1, K_BETA = 2, K_LOWER = 4, K_UPPER = 8, K_PIECES = 16 };
static const struct {
    const char *key;
    unsigned bit;
    const char *acts; /* for the sentence about a key that does not apply */
} SETTINGS[] = {
    {"alpha", K_ALPHA, "leaky-relu, elu or prelu"},
    {"beta", K_BETA, "swish or swish-learned"},
    {"lower", K_LOWER, "rrelu"},
    {"upper", K_UPPER, "rrelu"},
    {"pieces", K_PIECES, "maxout"},
};
enum { N_SETTINGS = sizeof SETTINGS / sizeof *SETTINGS };

static unsigned act_keys(nb_act act)
{
    switch (act) {
    case NB_ACT_LEAKY_RELU:
    case NB_ACT_ELU:
    case NB_ACT_PRELU: return K_ALPHA;
    case NB_ACT_SWISH:
    case NB_ACT_SWISH_LEARNED: return K_BETA;
    case NB_ACT_RRELU: return K_LOWER | K_UPPER;
    case NB_ACT_MAXOUT: return K_PIECES;
    default: return 0;
    }
}

/* The setting of @p o that SETTINGS[i] names (pieces as a double). */
static double setting(const nb_act_opts *o, int i)
{
    const double v[N_SETTINGS] = {o->alpha, o->beta, o->lower, o->upper, (double)o->pieces};
    return v[i];
}

/* Whether @p a and @p b agree on the settings activation @p act has. */
static bool same_settings(nb_act act, const nb_act_opts *a, const nb_act_opts *b)
{
    for (int i = 0; i < N_SETTINGS; i++)
        if ((act_keys(act) & SETTINGS[i].bit) && setting(a, i) != setting(b, i))
            return false;
    return true;
}

/* ================================================ network -> description */

static const char *const DESCRIBE = "nb_layer_describe";

/* One linear (or maxout) layer of an MLP and the layers after it (kind 0:
 * absent). */
typedef struct block {
    nb_layer_info fc, bn, act, drop;
} block;

/* "<prefix>.<base><i>" or "<base><i>": the name nb_mlp_new gives. */
static void mlp_name(char *buf, size_t n, const char *prefix, const char *base, int i)
{
    if (*prefix)
        snprintf(buf, n, "%s.%s%d", prefix, base, i);
    else
        snprintf(buf, n, "%s%d", base, i);
}

/* Name @p l must have as layer @p base<i> (under @p prefix). */
static nb_status check_name(const nb_layer_info *l, const char *prefix, const char *base, int i,
                            nb_error *err)
{
    char want[128];
    mlp_name(want, sizeof want, prefix, base, i);
    if (strcmp(l->name, want))
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                            "layer '%s' is not named as nb_mlp_new names it ('%s')", l->name, want);
    return NB_OK;
}

/* Layer @p l joins block @p b (number @p i) as its batch norm, activation
 * or dropout, which come once each and in that order. */
static nb_status join_block(block *b, const nb_layer_info *l, const char *prefix, int i,
                            nb_error *err)
{
    static const char *const base[] = {"bn", "act", "drop"};
    nb_layer_info *slot[] = {&b->bn, &b->act, &b->drop};
    int role = l->kind == NB_LAYER_BATCH_NORM   ? 0
               : l->kind == NB_LAYER_ACTIVATION ? 1
               : l->kind == NB_LAYER_DROPOUT    ? 2
                                                : -1;
    if (role < 0)
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, l->name,
            "layer '%s' is a sequence inside the network; nb_mlp_new builds one flat "
            "sequence",
            l->name);
    for (int later = role; later < 3; later++)
        if (slot[later]->kind)
            return nbc_error_at(
                err, NB_ERR_ARG, DESCRIBE, -1, l->name,
                "layer '%s' comes after '%s'; nb_mlp_new puts batch norm, activation and "
                "dropout once each, in that order, after a linear layer",
                l->name, slot[later]->name);
    nb_status st = check_name(l, prefix, base[role], i, err);
    if (st == NB_OK)
        *slot[role] = *l;
    return st;
}

/* What hidden layer 1 (or the only layer, when @p n == 1) says. */
static void first_block(const block *b, int n, mlp_desc *d)
{
    *d = (mlp_desc){.act = NB_ACT_IDENTITY,
                    .out_act = NB_ACT_IDENTITY,
                    .ao = nb_act_defaults(NB_ACT_IDENTITY),
                    .bias = b->fc.bias != NULL,
                    .bn_eps = 1e-5,
                    .bn_momentum = 0.1,
                    .dtype = nb_tensor_dtype(b->fc.weight)};
    if (n == 1)
        return;
    d->act = b->fc.kind == NB_LAYER_MAXOUT ? NB_ACT_MAXOUT
             : b->act.kind                 ? b->act.act
                                           : NB_ACT_IDENTITY;
    d->ao = b->act.kind ? b->act.act_opts : nb_act_defaults(d->act);
    if (d->act == NB_ACT_MAXOUT)
        d->ao.pieces = b->fc.pieces;
    d->batch_norm = b->bn.kind != 0;
    d->bn_eps = b->bn.kind ? b->bn.eps : d->bn_eps;
    d->bn_momentum = b->bn.kind ? b->bn.momentum : d->bn_momentum;
    d->dropout = b->drop.kind ? b->drop.p : 0;
}

/* The last block: a linear layer and, maybe, an output activation as
 * nb_mlp_new makes it (no parameter, the width kept, its defaults). */
static nb_status check_last(const block *b, const mlp_desc *d, nb_error *err)
{
    if (b->fc.kind == NB_LAYER_MAXOUT || b->bn.kind || b->drop.kind)
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, b->fc.name,
            "the last layer '%s' is %s; nb_mlp_new ends with a linear layer and an output "
            "activation only",
            b->fc.name,
            b->fc.kind == NB_LAYER_MAXOUT ? "maxout"
            : b->bn.kind                  ? "followed by batch norm"
                                          : "followed by dropout");
    nb_act_opts defaults = nb_act_defaults(d->out_act);
    if (b->act.kind &&
        (nb_act_has_param(d->out_act) || d->out_act == NB_ACT_MAXOUT ||
         d->out_act == NB_ACT_IDENTITY || !same_settings(d->out_act, &b->act.act_opts, &defaults)))
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, b->act.name,
            "the output activation '%s' (%s) is not one nb_mlp_new makes: it has no "
            "learned parameter, keeps the width, is not the identity and keeps its "
            "default settings",
            b->act.name, nb_act_name(d->out_act));
    return NB_OK;
}

/* Hidden block @p b (number @p i) against what hidden layer 1 says. */
static nb_status check_hidden(const block *b, int i, const mlp_desc *d, nb_error *err)
{
    const char *name = b->fc.name;
    bool maxout = b->fc.kind == NB_LAYER_MAXOUT;
    nb_act act = maxout ? NB_ACT_MAXOUT : b->act.kind ? b->act.act : NB_ACT_IDENTITY;
    nb_act_opts ao = b->act.kind ? b->act.act_opts : d->ao;
    if (maxout)
        ao.pieces = b->fc.pieces;
    if (maxout && b->act.kind)
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, b->act.name,
                            "'%s' follows a maxout layer; nb_mlp_new puts no activation after one",
                            b->act.name);
    if (b->act.kind && (act == NB_ACT_IDENTITY || act == NB_ACT_MAXOUT))
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, b->act.name,
            "'%s' is an activation layer of %s; nb_mlp_new makes %s", b->act.name, nb_act_name(act),
            act == NB_ACT_MAXOUT ? "maxout hidden layers as maxout layers" : "none");
    if (act != d->act || !same_settings(act, &ao, &d->ao))
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, name,
                            "hidden layer %d has the activation %s, hidden layer 1 %s (or other "
                            "settings); nb_mlp_new gives all hidden layers the same",
                            i, nb_act_name(act), nb_act_name(d->act));
    bool bn_differs = (b->bn.kind != 0) != d->batch_norm;
    if (bn_differs || (b->drop.kind != 0) != (d->dropout > 0)) {
        bool has = bn_differs ? b->bn.kind != 0 : b->drop.kind != 0;
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, name,
            "hidden layer %d has %s%s and hidden layer 1 %s; nb_mlp_new gives all hidden "
            "layers the same",
            i, has ? "" : "no ", bn_differs ? "batch norm" : "dropout", has ? "has none" : "has");
    }
    if (b->bn.kind && (b->bn.eps != d->bn_eps || b->bn.momentum != d->bn_momentum))
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, b->bn.name,
            "batch norm '%s' has eps %g and momentum %g, hidden layer 1's %g and %g; "
            "nb_mlp_new gives all the same",
            b->bn.name, b->bn.eps, b->bn.momentum, d->bn_eps, d->bn_momentum);
    if (b->drop.kind && b->drop.p != d->dropout)
        return nbc_error_at(
            err, NB_ERR_ARG, DESCRIBE, -1, b->drop.name,
            "dropout '%s' drops %g, hidden layer 1's %g; nb_mlp_new gives all the same",
            b->drop.name, b->drop.p, d->dropout);
    const nb_layer_info *with_width[2] = {b->bn.kind ? &b->bn : NULL,
                                          b->act.param ? &b->act : NULL};
    for (int k = 0; k < 2; k++)
        if (with_width[k] && with_width[k]->n_out != b->fc.n_out)
            return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, with_width[k]->name,
                                "layer '%s' has %lld features but '%s' gives %lld",
                                with_width[k]->name, (long long)with_width[k]->n_out, name,
                                (long long)b->fc.n_out);
    return NB_OK;
}

/* Block @p b against what block 1 says: biases and dtype alike, then the
 * rules of its place. */
static nb_status check_block(const block *b, int i, int n, const mlp_desc *d, nb_error *err)
{
    if ((b->fc.bias != NULL) != d->bias)
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, b->fc.name,
                            "layer '%s' has %s bias and the first layer %s; nb_mlp_new gives every "
                            "layer one or none",
                            b->fc.name, b->fc.bias ? "a" : "no", d->bias ? "one" : "none");
    const nb_tensor *ts[] = {b->fc.weight, b->bn.weight, b->act.param};
    for (int k = 0; k < 3; k++)
        if (ts[k] && nb_tensor_dtype(ts[k]) != d->dtype)
            return nbc_error_at(
                err, NB_ERR_ARG, DESCRIBE, -1, nb_tensor_name(ts[k]),
                "parameter '%s' is %s and the first weight %s; nb_mlp_new gives all one "
                "dtype",
                nb_tensor_name(ts[k]), nb_dtype_name(nb_tensor_dtype(ts[k])),
                nb_dtype_name(d->dtype));
    return i == n ? check_last(b, d, err) : check_hidden(b, i, d, err);
}

/* Append ",<v>" (or "<v>" first) to the sizes= value in buf[0..cap). */
static bool append_size(char *buf, size_t cap, int64_t v)
{
    size_t len = strlen(buf);
    int k = snprintf(buf + len, cap - len, "%s%lld", len ? "," : "", (long long)v);
    return k >= 0 && (size_t)k < cap - len;
}

/* Block @p b, number @p i of @p n, is complete: block 1 sets @p d, every
 * block is checked against it, its widths go to @p sizes. */
static nb_status end_block(const block *b, int i, int n, mlp_desc *d, char *sizes, size_t cap,
                           nb_error *err)
{
    if (i == 1)
        first_block(b, n, d);
    if (i == n)
        d->out_act = b->act.kind ? b->act.act : NB_ACT_IDENTITY;
    nb_status st = check_block(b, i, n, d, err);
    if (st != NB_OK)
        return st;
    if ((i == 1 && !append_size(sizes, cap, b->fc.n_in)) || !append_size(sizes, cap, b->fc.n_out))
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, b->fc.name,
                            "the sizes up to '%s' take more than the %d bytes of a sizes= value",
                            b->fc.name, SIZES_MAX_LEN);
    return NB_OK;
}

/* Read the network @p net (a sequence as nb_mlp_new builds) into @p d and
 * its sizes= value into sizes[0..cap), checking every layer. */
static nb_status read_mlp(const nb_layer *net, mlp_desc *d, char *sizes, size_t cap, nb_error *err)
{
    nb_layer_info seq;
    nb_layer_get_info(net, &seq);
    if (seq.kind != NB_LAYER_SEQUENTIAL || seq.n_items == 0)
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, seq.name,
                            "'%s' is %s, not a sequence of layers as nb_mlp_new builds", seq.name,
                            seq.kind == NB_LAYER_SEQUENTIAL ? "an empty sequence" : "a lone layer");
    const char *prefix = seq.name;
    int n = 0, i = 0; /* linear layers in all, and so far */
    for (int k = 0; k < seq.n_items; k++) {
        nb_layer_kind kind = nb_layer_get_kind(nb_layer_at(net, k));
        n += kind == NB_LAYER_LINEAR || kind == NB_LAYER_MAXOUT;
    }
    block b = {0};
    sizes[0] = '\0';
    nb_status st = NB_OK;
    for (int k = 0; k < seq.n_items && st == NB_OK; k++) {
        nb_layer_info l;
        nb_layer_get_info(nb_layer_at(net, k), &l);
        if (l.kind != NB_LAYER_LINEAR && l.kind != NB_LAYER_MAXOUT) {
            st = i > 0
                     ? join_block(&b, &l, prefix, i, err)
                     : nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, l.name,
                                    "the network starts with '%s'; nb_mlp_new starts with a linear "
                                    "layer",
                                    l.name);
            continue;
        }
        if (i > 0)
            st = end_block(&b, i, n, d, sizes, cap, err);
        if (st == NB_OK)
            st = check_name(&l, prefix, "fc", i + 1, err);
        if (st == NB_OK && i > 0 && b.fc.n_out != l.n_in)
            st = nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, l.name,
                              "layer '%s' takes %lld inputs but '%s' gives %lld", l.name,
                              (long long)l.n_in, b.fc.name, (long long)b.fc.n_out);
        b = (block){.fc = l};
        i++;
    }
    return st == NB_OK ? end_block(&b, i, n, d, sizes, cap, err) : st;
}

/* The keys after sizes=, in the order nabla has always written them. */
static nb_status put_keys(char *out, size_t cap, const mlp_desc *d)
{
    nb_status st = nb_meta_put(out, cap, "act", "%s", nb_act_name(d->act));
    if (st == NB_OK)
        st = nb_meta_put(out, cap, "out_act", "%s", nb_act_name(d->out_act));
    if (st == NB_OK)
        st = nb_meta_put(out, cap, "batchnorm", "%d", d->batch_norm ? 1 : 0);
    if (st == NB_OK)
        st = nb_meta_put(out, cap, "dtype", "%s", nb_dtype_name(d->dtype));
    if (st == NB_OK && d->batch_norm)
        st = nb_meta_put(out, cap, "bn_eps", "%.17g", d->bn_eps);
    if (st == NB_OK && d->batch_norm)
        st = nb_meta_put(out, cap, "bn_momentum", "%.17g", d->bn_momentum);
    for (int i = 0; i < N_SETTINGS && st == NB_OK; i++) {
        if (!(act_keys(d->act) & SETTINGS[i].bit))
            continue;
        if (SETTINGS[i].bit == K_PIECES)
            st = nb_meta_put(out, cap, "pieces", "%lld", (long long)d->ao.pieces);
        else
            st = nb_meta_put(out, cap, SETTINGS[i].key, "%.17g", setting(&d->ao, i));
    }
    if (st == NB_OK && d->dropout > 0)
        st = nb_meta_put(out, cap, "dropout", "%.17g", d->dropout);
    if (st == NB_OK && !d->bias)
        st = nb_meta_put(out, cap, "bias", "0");
    return st;
}

nb_status nb_layer_describe(const nb_layer *net, char *out, size_t cap, nb_error *err)
{
    nb_error_clear(err);
    if (out && cap > 0)
        out[0] = '\0';
    if (!net || !out)
        return nbc_error_at(err, NB_ERR_NULL, DESCRIBE, -1, "", "%s is NULL",
                            net ? "out" : "the network");
    if (cap == 0)
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, nb_layer_name(net),
                            "the description of '%s' does not fit in 0 bytes", nb_layer_name(net));
    mlp_desc d;
    char sizes[SIZES_MAX_LEN + 1];
    nb_status st = read_mlp(net, &d, sizes, sizeof sizes, NULL);
    if (st != NB_OK) /* not a network as nb_mlp_new builds: layer by layer */
        return nbn_describe_layers(net, out, cap, err);
    st = nb_meta_put(out, cap, "arch", "mlp");
    if (st == NB_OK)
        st = nb_meta_put(out, cap, "sizes", "%s", sizes);
    if (st == NB_OK)
        st = put_keys(out, cap, &d);
    if (st != NB_OK) {
        if (cap > 0)
            out[0] = '\0';
        return nbc_error_at(err, NB_ERR_ARG, DESCRIBE, -1, nb_layer_name(net),
                            "the description of '%s' does not fit in %zu bytes", nb_layer_name(net),
                            cap);
    }
    return NB_OK;
}

/* ================================================ description -> network */

static const char *const CHECK = "nb_layer_description_check";

/* The value of @p key into buf[0..cap); *found says whether it is there.
 * A required key that is missing, or a value too long, is an error. */
static nb_status get_text(const char *desc, const char *key, char *buf, size_t cap, bool required,
                          bool *found, nb_error *err)
{
    nb_status st = nb_meta_get(desc, key, buf, cap);
    *found = st == NB_OK;
    if (st == NB_ERR_NOTFOUND && !required)
        return NB_OK;
    if (st == NB_ERR_NOTFOUND)
        return nbc_error_at(err, NB_ERR_PARSE, CHECK, -1, key,
                            "the description has no %s= (it is required)", key);
    if (st != NB_OK)
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key, "%s= is longer than %zu bytes", key,
                            cap - 1);
    return NB_OK;
}

/* @p key's value, one of the two @p names, into *index (unchanged when
 * the key is absent). */
static nb_status get_choice(const char *desc, const char *key, const char *const names[2],
                            int *index, nb_error *err)
{
    char buf[64];
    bool found;
    nb_status st = get_text(desc, key, buf, sizeof buf, false, &found, err);
    if (st != NB_OK || !found)
        return st;
    for (int i = 0; i < 2; i++)
        if (!strcmp(buf, names[i])) {
            *index = i;
            return NB_OK;
        }
    return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key, "%s=%s is not %s or %s", key, buf,
                        names[0], names[1]);
}

/* An activation under @p key into *act (unchanged when absent and not
 * required). */
static nb_status get_act(const char *desc, const char *key, bool required, nb_act *act,
                         nb_error *err)
{
    char buf[64];
    bool found;
    nb_status st = get_text(desc, key, buf, sizeof buf, required, &found, err);
    if (st != NB_OK || !found)
        return st;
    if (nb_act_from_name(buf, act) != NB_OK)
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key, "%s=%s is not an activation (%s)", key,
                            buf, nb_act_names());
    return NB_OK;
}

/* A finite number under @p key into *v; *found says whether it is there. */
static nb_status get_number(const char *desc, const char *key, double *v, bool *found,
                            nb_error *err)
{
    char buf[64];
    nb_status st = get_text(desc, key, buf, sizeof buf, false, found, err);
    if (st != NB_OK || !*found)
        return st;
    if (nb_meta_get_f64(desc, key, v) != NB_OK)
        return nbc_error_at(err, NB_ERR_PARSE, CHECK, -1, key, "%s=%s is not a number", key, buf);
    if (!isfinite(*v))
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key, "%s=%s is not finite", key, buf);
    return NB_OK;
}

/* The hidden activation's settings: only the keys @p d->act has, each in
 * the range nb_act_layer_new and nb_maxout_new accept. */
static nb_status get_settings(const char *desc, mlp_desc *d, nb_error *err)
{
    d->ao = nb_act_defaults(d->act);
    double *dst[N_SETTINGS] = {&d->ao.alpha, &d->ao.beta, &d->ao.lower, &d->ao.upper, NULL};
    for (int i = 0; i < N_SETTINGS; i++) {
        const char *key = SETTINGS[i].key;
        char buf[64];
        bool found;
        double v = 0;
        nb_status st = dst[i] ? get_number(desc, key, &v, &found, err)
                              : get_text(desc, key, buf, sizeof buf, false, &found, err);
        if (st != NB_OK)
            return st;
        if (!found)
            continue;
        if (!(act_keys(d->act) & SETTINGS[i].bit))
            return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key,
                                "%s= applies to act=%s only, not act=%s", key, SETTINGS[i].acts,
                                nb_act_name(d->act));
        if (dst[i]) {
            *dst[i] = v;
            continue;
        }
        if (nb_meta_get_i64(desc, key, &d->ao.pieces) != NB_OK)
            return nbc_error_at(err, NB_ERR_PARSE, CHECK, -1, key,
                                "pieces=%s is not a whole number", buf);
        if (d->ao.pieces < 2)
            return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key,
                                "pieces=%s: maxout needs at least 2", buf);
    }
    if (d->act == NB_ACT_RRELU && !(d->ao.lower >= 0 && d->ao.lower <= d->ao.upper))
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, d->ao.lower < 0 ? "lower" : "upper",
                            "rrelu needs 0 <= lower <= upper, not lower=%g and upper=%g",
                            d->ao.lower, d->ao.upper);
    return NB_OK;
}

/* A number under @p key (bn_eps, bn_momentum) that applies only with
 * batchnorm=1, into *v (unchanged when absent). */
static nb_status get_bn_number(const char *desc, const char *key, const mlp_desc *d, double *v,
                               nb_error *err)
{
    bool found;
    nb_status st = get_number(desc, key, v, &found, err);
    if (st == NB_OK && found && !d->batch_norm)
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, key, "%s= applies only with batchnorm=1",
                            key);
    return st;
}

/* Read the next size of a sizes= list at *p (digits, then ',' and another
 * size, or the end): 0 with *v, 1 malformed, 2 too large. */
static int next_size(const char **p, int64_t *v)
{
    const char *s = *p;
    *v = 0;
    if (*s < '0' || *s > '9')
        return 1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (*v > (INT64_MAX - 9) / 10)
            return 2;
        *v = 10 * *v + (*s - '0');
    }
    if ((*s && *s != ',') || (*s == ',' && (s[1] < '0' || s[1] > '9')))
        return 1;
    *p = *s ? s + 1 : s;
    return 0;
}

/* Add to *elems the elements of the layer in -> out (hidden or the last)
 * as nb_mlp_new makes it; false on overflow. */
static bool add_layer(const mlp_desc *d, int64_t in, int64_t out, bool hidden, int64_t *elems)
{
    int64_t cols = out, part[3] = {0, 0, 0}; /* weight, bias, the rest */
    if (hidden && d->act == NB_ACT_MAXOUT && nbc_mul_overflows(out, d->ao.pieces, &cols))
        return false;
    part[1] = d->bias ? cols : 0;
    if (hidden) /* batch norm: 4 vectors; PReLU, learned swish: 1 */
        part[2] = (d->batch_norm ? 4 : 0) + (nb_act_has_param(d->act) ? 1 : 0);
    if (nbc_mul_overflows(in, cols, &part[0]) || nbc_mul_overflows(part[2], out, &part[2]))
        return false;
    for (int k = 0; k < 3; k++) {
        if (part[k] > INT64_MAX - *elems)
            return false;
        *elems += part[k];
    }
    return true;
}

/* sizes=: at least two whole numbers >= 1. Their count into *n, the bytes
 * of the network's tensors into *bytes and, when @p out is not NULL, the
 * sizes into out[0..*n). */
static nb_status get_sizes(const char *desc, const mlp_desc *d, int *n, int64_t *bytes,
                           int64_t *out, nb_error *err)
{
    char buf[SIZES_MAX_LEN + 1];
    bool found;
    nb_status st = get_text(desc, "sizes", buf, sizeof buf, true, &found, err);
    if (st != NB_OK)
        return st;
    int64_t prev = 0, cur = 0, elems = 0;
    bool fits = true;
    *n = 0;
    for (const char *p = buf; *p || *n == 0;) {
        int64_t v;
        int bad = next_size(&p, &v);
        if (bad == 1)
            return nbc_error_at(err, NB_ERR_PARSE, CHECK, -1, "sizes",
                                "sizes=%s is not a list of whole numbers like 64,128,10", buf);
        if (bad == 2 || v < 1)
            return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "sizes", "sizes=%s: size %d is %s", buf,
                                *n + 1, bad == 2 ? "too large" : "0 (sizes are at least 1)");
        if (*n >= 2) /* the layer prev -> cur is hidden: another follows */
            fits = fits && add_layer(d, prev, cur, true, &elems);
        prev = cur;
        cur = v;
        if (out)
            out[*n] = v;
        ++*n;
    }
    if (*n < 2)
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "sizes",
                            "sizes=%s names fewer than two sizes (input, hidden..., output)", buf);
    fits = fits && add_layer(d, prev, cur, false, &elems) &&
           !nbc_mul_overflows(elems, (int64_t)nb_dtype_size(d->dtype), bytes);
    if (!fits)
        return nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "sizes",
                            "sizes=%s describe a network of 2^63 bytes of tensors or more", buf);
    return NB_OK;
}

/* Everything the description says: @p d, the number of sizes *n, the bytes
 * of the network's tensors *bytes, and the sizes into out[0..*n) when out
 * is not NULL. */
static nb_status read_desc(const char *desc, mlp_desc *d, int *n, int64_t *bytes, int64_t *out,
                           nb_error *err)
{
    if (!desc)
        return nbc_error_at(err, NB_ERR_NULL, CHECK, -1, "", "the description is NULL");
    nb_status st = nb_meta_check(desc, err);
    if (st != NB_OK) {
        if (err)
            snprintf(err->where, sizeof err->where, "%s", CHECK);
        return st;
    }
    static const char *const bits[2] = {"0", "1"}, *const dtypes[2] = {"f32", "f64"};
    *d = (mlp_desc){.out_act = NB_ACT_IDENTITY, .bn_eps = 1e-5, .bn_momentum = 0.1};
    char arch[64];
    bool found;
    int bn = 0, bias = 1, dt = 0;
    st = get_text(desc, "arch", arch, sizeof arch, true, &found, err);
    if (st == NB_OK && strcmp(arch, "mlp"))
        st = nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "arch",
                          "arch=%s is not an architecture nabla builds (mlp, layers)", arch);
    if (st == NB_OK)
        st = get_act(desc, "act", true, &d->act, err);
    if (st == NB_OK)
        st = get_act(desc, "out_act", false, &d->out_act, err);
    if (st == NB_OK && (nb_act_has_param(d->out_act) || d->out_act == NB_ACT_MAXOUT))
        st = nbc_error_at(
            err, NB_ERR_ARG, CHECK, -1, "out_act",
            "out_act=%s cannot follow the last layer (it %s)", nb_act_name(d->out_act),
            d->out_act == NB_ACT_MAXOUT ? "changes the width" : "has a learned parameter");
    if (st == NB_OK)
        st = get_choice(desc, "batchnorm", bits, &bn, err);
    if (st == NB_OK)
        st = get_choice(desc, "bias", bits, &bias, err);
    if (st == NB_OK)
        st = get_choice(desc, "dtype", dtypes, &dt, err);
    d->batch_norm = bn == 1;
    d->bias = bias == 1;
    d->dtype = dt ? NB_F64 : NB_F32;
    if (st == NB_OK)
        st = get_settings(desc, d, err);
    if (st == NB_OK)
        st = get_bn_number(desc, "bn_eps", d, &d->bn_eps, err);
    if (st == NB_OK && !(d->bn_eps > 0))
        st = nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "bn_eps", "bn_eps=%g must be > 0", d->bn_eps);
    if (st == NB_OK)
        st = get_bn_number(desc, "bn_momentum", d, &d->bn_momentum, err);
    if (st == NB_OK && !(d->bn_momentum >= 0 && d->bn_momentum <= 1))
        st = nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "bn_momentum",
                          "bn_momentum=%g is not in [0, 1]", d->bn_momentum);
    if (st == NB_OK)
        st = get_number(desc, "dropout", &d->dropout, &found, err);
    if (st == NB_OK && !(d->dropout >= 0 && d->dropout < 1))
        st = nbc_error_at(err, NB_ERR_ARG, CHECK, -1, "dropout", "dropout=%g is not in [0, 1)",
                          d->dropout);
    if (st == NB_OK) /* last: the bytes depend on all the rest */
        st = get_sizes(desc, d, n, bytes, out, err);
    return st;
}

/* Whether @p desc is metadata text whose arch= is "layers". */
static bool layers_arch(const char *desc)
{
    char arch[16];
    return desc && nb_meta_check(desc, NULL) == NB_OK &&
           nb_meta_get(desc, "arch", arch, sizeof arch) == NB_OK && !strcmp(arch, "layers");
}

nb_status nb_layer_description_check(const char *desc, int64_t *bytes, nb_error *err)
{
    nb_error_clear(err);
    if (layers_arch(desc)) {
        nb_status st = nbn_check_layers(desc, err);
        if (st == NB_OK && bytes)
            *bytes = -1; /* known once each kind has read its settings */
        return st;
    }
    mlp_desc d;
    int n;
    int64_t b;
    nb_status st = read_desc(desc, &d, &n, &b, NULL, err);
    if (st == NB_OK && bytes)
        *bytes = b;
    return st;
}

static const char *const BUILD = "nb_layer_from_description";

nb_status nb_layer_from_description(nb_model *m, const char *prefix, const char *desc,
                                    const nb_layer_opts *o, nb_layer **out, nb_error *err)
{
    nb_error_clear(err);
    if (out)
        *out = NULL;
    if (!m || !desc || !out)
        return nbc_error_at(err, NB_ERR_NULL, BUILD, -1, "", "%s is NULL",
                            !m      ? "the model"
                            : !desc ? "the description"
                                    : "out");
    if (prefix && strlen(prefix) > PREFIX_MAX_LEN)
        return nbc_error_at(err, NB_ERR_ARG, BUILD, -1, "", "the prefix is longer than %d bytes",
                            PREFIX_MAX_LEN);
    if (layers_arch(desc)) {
        nb_status st = nbn_check_layers(desc, err);
        if (st == NB_OK)
            st = nbn_build_layers(m, prefix, desc, o, out, err);
        if (st != NB_OK && err)
            snprintf(err->where, sizeof err->where, "%s", BUILD);
        return st;
    }
    mlp_desc d;
    int n;
    int64_t bytes;
    nb_status st = read_desc(desc, &d, &n, &bytes, NULL, err);
    if (st != NB_OK) {
        if (err)
            snprintf(err->where, sizeof err->where, "%s", BUILD);
        return st;
    }
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer = o ? *o : (nb_layer_opts){.init = NB_INIT_ZEROS};
    mo.layer.dtype = d.dtype;
    mo.layer.no_bias = !d.bias;
    mo.act = d.act;
    mo.act_opts = &d.ao;
    mo.out_act = d.out_act;
    mo.batch_norm = d.batch_norm;
    mo.bn_eps = d.bn_eps;
    mo.bn_momentum = d.bn_momentum;
    mo.dropout = d.dropout;
    if (d.dropout > 0 && !mo.layer.rng)
        return nbc_error_at(
            err, NB_ERR_NULL, BUILD, -1, "dropout",
            "dropout=%g draws its masks from a generator: give one in the layer options",
            d.dropout);
    if ((mo.layer.init == NB_INIT_AUTO || mo.layer.init >= NB_INIT_SMALL_NORMAL) && !mo.layer.rng)
        return nbc_error_at(err, NB_ERR_NULL, BUILD, -1, "",
                            "a random initialisation draws from a generator: give one in the layer "
                            "options");
    void *ud;
    nb_alloc_fn alloc = nbc_model_allocator(m, &ud);
    int64_t *sizes = alloc(ud, NULL, 0, sizeof *sizes * (size_t)n);
    if (!sizes)
        return nbc_error_at(err, NB_ERR_NOMEM, BUILD, -1, "", "out of memory");
    read_desc(desc, &d, &n, &bytes, sizes, NULL); /* checked above: fills sizes */
    st = nb_mlp_new(m, prefix, sizes, n, &mo, out);
    alloc(ud, sizes, sizeof *sizes * (size_t)n, 0);
    if (st == NB_ERR_EXISTS)
        return nbc_error_at(err, st, BUILD, -1, "",
                            "the model already holds a parameter of the network%s%s",
                            prefix && *prefix ? " under the prefix " : "", prefix ? prefix : "");
    if (st != NB_OK)
        return nbc_error_at(err, st, BUILD, -1, "", "cannot build the network: %s",
                            nb_status_str(st));
    return NB_OK;
}
