/* nabla train --layers for convolutional networks: the list's elements
 * (conv<O>k<K>[s<S>][p<P>], pool<K>, avgpool<K>, fc<N>) read and built
 * into layers, each checked against the images it receives. */

#include "cnn_spec.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define ELEMENTS_MAX 32

typedef enum elem_kind { EL_CONV, EL_POOL, EL_AVGPOOL, EL_FC } elem_kind;

typedef struct elem {
    elem_kind kind;
    int64_t size;            /* conv: output channels; pool: window; fc: units */
    int64_t k, s, p;         /* conv: kernel, stride, padding */
    const char *text;        /* the element in the list */
    size_t len;
} elem;

bool cli_cnn_listed(const char *list)
{
    for (const char *p = list; *p; p++)
        if ((p == list || p[-1] == ',') && isalpha((unsigned char)*p))
            return true;
    return false;
}

/* A whole number from @p lo to @p hi at *p (advanced past it); false when
 * there is none or it is out of range. */
static bool number(const char **p, const char *end, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v = 0;
    const char *q = *p;
    while (q < end && *q >= '0' && *q <= '9' && v <= hi)
        v = 10 * v + (*q++ - '0');
    if (q == *p || v < lo || v > hi)
        return false;
    *p = q;
    *out = v;
    return true;
}

static bool starts(const char **p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - *p) < n || strncmp(*p, word, n) != 0)
        return false;
    *p += n;
    return true;
}

/* One element text[0..len) into @p e; false when it is not one. */
static bool parse_elem(const char *text, size_t len, elem *e)
{
    const char *p = text, *end = text + len;
    *e = (elem){.text = text, .len = len, .s = 1};
    bool ok;
    if (starts(&p, end, "conv")) {
        e->kind = EL_CONV;
        ok = number(&p, end, 1, 100000, &e->size) && starts(&p, end, "k") &&
             number(&p, end, 1, 64, &e->k);
        if (ok && starts(&p, end, "s"))
            ok = number(&p, end, 1, 64, &e->s);
        if (ok && starts(&p, end, "p"))
            ok = number(&p, end, 0, 64, &e->p);
    } else if (starts(&p, end, "avgpool")) {
        e->kind = EL_AVGPOOL;
        ok = number(&p, end, 1, 64, &e->size);
    } else if (starts(&p, end, "pool")) {
        e->kind = EL_POOL;
        ok = number(&p, end, 1, 64, &e->size);
    } else {
        e->kind = EL_FC;
        starts(&p, end, "fc");
        ok = number(&p, end, 1, 100000, &e->size);
    }
    return ok && p == end;
}

/* Add @p l to @p seq and run it on *x (the output so far, in a graph that
 * records nothing): *x becomes its output. 0, or 2 after an error quoting
 * element @p e. */
static int add_run(nb_layer *seq, nb_status st, nb_layer *l, nb_graph *g, nb_tensor **x,
                   const elem *e)
{
    if (st != NB_OK || nb_sequential_add(seq, l) != NB_OK)
        return e ? cli_error("train", "--layers: cannot build '%s': %s", CLI_QN(e->text, e->len),
                             nb_status_str(st == NB_OK ? NB_ERR_NOMEM : st))
                 : cli_error("train", "cannot build the network: %s",
                             nb_status_str(st == NB_OK ? NB_ERR_NOMEM : st));
    char sx[96];
    const int64_t *shape = nb_tensor_shape(*x);
    sx[0] = '\0'; /* a sample's shape: the batch axis left out */
    for (int i = 1, k = 0; i < nb_tensor_rank(*x); i++)
        k += snprintf(sx + k, sizeof sx - (size_t)k, "%s%lld", i > 1 ? "x" : "",
                      (long long)shape[i]);
    nb_tensor *y = nb_layer_forward(g, l, *x, false);
    if (!y)
        return e ? cli_error("train", "--layers: '%s' does not fit the maps of %s that reach it: %s",
                             CLI_QN(e->text, e->len), sx, nb_graph_error(g)->msg)
                 : cli_error("train", "cannot build the network: %s", nb_graph_error(g)->msg);
    *x = y;
    return 0;
}

int cli_cnn_build(const char *list, int64_t ch, int64_t h, int64_t w, nb_act act,
                  const nb_act_opts *ao, double dropout, int64_t n_out, nb_model *m, nb_rng *rng,
                  nb_layer **out)
{
    *out = NULL;
    elem els[ELEMENTS_MAX];
    int n = 0;
    bool fc_seen = false;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0)
            return cli_error("train",
                             "--layers: element %d of '%s' is empty (a list like "
                             "conv32k3p1,pool2,fc128)",
                             n + 1, CLI_Q(list));
        if (n == ELEMENTS_MAX)
            return cli_error("train", "--layers: more than %d layers", ELEMENTS_MAX);
        if (!parse_elem(p, len, &els[n]))
            return cli_error("train",
                             "--layers: '%s' is not a layer (conv<O>k<K>[s<S>][p<P>], pool<K>, "
                             "avgpool<K> or fc<N>; see --help)",
                             CLI_QN(p, len));
        if (els[n].kind == EL_FC)
            fc_seen = true;
        else if (fc_seen)
            return cli_error("train",
                             "--layers: '%s' follows a fully connected layer; convolutions and "
                             "pooling come first",
                             CLI_QN(p, len));
        n++;
        p += len;
        if (!*p)
            break;
    }
    if (h < 1 || w < 1)
        return cli_error("train",
                         "--layers %s: a convolutional network needs images (digits, "
                         "fashion-mnist or an IDX file); this data has rows of plain features",
                         CLI_Q(list));

    nb_graph *g = nb_graph_new();
    nb_layer *seq = NULL, *l = NULL;
    /* convolutions: He-uniform (NB_INIT_AUTO); linear layers as an MLP's */
    nb_layer_opts lo = {.rng = rng}, fc_o = {.rng = rng, .init = nb_act_default_init(act)};
    int rc = 2;
    if (!g || nb_sequential_new("", &seq) != NB_OK) {
        cli_error("train", "out of memory");
        goto done;
    }
    nb_graph_set_recording(g, false);
    nb_tensor *x = nb_zeros(g, NB_F32, 2, (const int64_t[]){1, ch * h * w});
    nb_status st = nb_reshape_layer_new("image", 3, (const int64_t[]){ch, h, w}, &l);
    if (!x || add_run(seq, st, l, g, &x, NULL) != 0)
        goto done;
    int n_conv = 0, n_pool = 0, n_act = 0, n_fc = 0;
    bool flat = false;
    char name[32];
    for (int i = 0; i <= n; i++) {
        const elem *e = i < n ? &els[i] : NULL;
        if ((!e || e->kind == EL_FC) && !flat) {
            flat = true;
            st = nb_flatten_new("flatten", &l);
            if (add_run(seq, st, l, g, &x, e) != 0)
                goto done;
        }
        int64_t width = nb_tensor_shape(x)[nb_tensor_rank(x) - 1];
        if (!e) { /* the output layer */
            snprintf(name, sizeof name, "fc%d", ++n_fc);
            st = nb_linear_new(m, name, width, n_out, &fc_o, &l);
            if (add_run(seq, st, l, g, &x, NULL) != 0)
                goto done;
            break;
        }
        if (e->kind == EL_CONV) {
            nb_conv_opts co = nb_conv_defaults();
            co.stride[0] = co.stride[1] = e->s;
            co.padding[0] = co.padding[1] = e->p;
            snprintf(name, sizeof name, "conv%d", ++n_conv);
            st = nb_conv2d_new(m, name, nb_tensor_shape(x)[1], e->size, e->k, e->k, &co, &lo, &l);
            if (add_run(seq, st, l, g, &x, e) != 0)
                goto done;
        } else if (e->kind == EL_POOL || e->kind == EL_AVGPOOL) {
            nb_pool2d_opts po = {{e->size, e->size}, {e->size, e->size}, {0, 0}};
            snprintf(name, sizeof name, "pool%d", ++n_pool);
            st = e->kind == EL_POOL ? nb_max_pool2d_new(name, &po, &l)
                                              : nb_avg_pool2d_new(name, &po, &l);
            if (add_run(seq, st, l, g, &x, e) != 0)
                goto done;
            continue; /* no activation after pooling */
        } else {
            snprintf(name, sizeof name, "fc%d", ++n_fc);
            st = nb_linear_new(m, name, width, e->size, &fc_o, &l);
            if (add_run(seq, st, l, g, &x, e) != 0)
                goto done;
        }
        snprintf(name, sizeof name, "act%d", ++n_act);
        st = nb_act_layer_new(m, name, act, ao, 0, &lo, &l);
        if (add_run(seq, st, l, g, &x, e) != 0)
            goto done;
        if (e->kind == EL_FC && dropout > 0) {
            snprintf(name, sizeof name, "drop%d", n_act);
            st = nb_dropout_new(name, dropout, &lo, &l);
            if (add_run(seq, st, l, g, &x, e) != 0)
                goto done;
        }
    }
    *out = seq;
    seq = NULL;
    rc = 0;
done:
    nb_layer_free(seq);
    nb_graph_free(g);
    return rc;
}
