/* Graph convolution (Kipf & Welling, 2017): H' = Â·H·W + b with Â the
 * normalised adjacency with self-loops, D^-1/2 (A + I) D^-1/2, of a fixed
 * undirected graph. Built from primitives: the rows of H·W are gathered
 * along every directed edge (and every node's loop), scaled by
 * 1/√(deg_i·deg_j), and summed into their target nodes with scatter_add,
 * so Â is never formed and gradients of any order follow from the ops. */

#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct gcn {
    int64_t n_in, n_out, n_nodes, n_edges; /* n_edges: the graph's undirected edges */
    int64_t *pairs;                        /* [2·n_edges] as given */
    int64_t n_msg;                         /* 2·n_edges + n_nodes messages */
    int64_t *src, *dst;                    /* [n_msg] */
    double *norm;                          /* [n_msg] */
    nb_tensor *weight, *bias;
} gcn;

/* Bytes of the copy of the edges (one entry at least). */
static size_t pairs_bytes(int64_t n_edges)
{
    return (size_t)(n_edges > 0 ? 2 * n_edges : 1) * sizeof(int64_t);
}

static void gcn_release(nb_layer *l)
{
    gcn *c = l->state;
    if (c->pairs)
        l->alloc(l->ud, c->pairs, pairs_bytes(c->n_edges), 0);
    if (c->src)
        l->alloc(l->ud, c->src, (size_t)c->n_msg * sizeof *c->src, 0);
    if (c->dst)
        l->alloc(l->ud, c->dst, (size_t)c->n_msg * sizeof *c->dst, 0);
    if (c->norm)
        l->alloc(l->ud, c->norm, (size_t)c->n_msg * sizeof *c->norm, 0);
    c->pairs = c->src = c->dst = NULL;
    c->norm = NULL;
}

/* Why @p edges cannot be a simple undirected graph on @p n nodes ("" when
 * it can): a node out of range, a loop, an edge given twice. */
static const char *edges_problem(int64_t n, const int64_t *edges, int64_t n_edges, char *why,
                                 size_t cap, int64_t *deg)
{
    for (int64_t i = 0; i < n; i++)
        deg[i] = 1; /* the loop each node gets */
    for (int64_t e = 0; e < n_edges; e++) {
        int64_t a = edges[2 * e], b = edges[2 * e + 1];
        if (a < 0 || a >= n || b < 0 || b >= n) {
            snprintf(why, cap, "edge %lld (%lld, %lld) names a node outside 0..%lld",
                     (long long)e, (long long)a, (long long)b, (long long)(n - 1));
            return why;
        }
        if (a == b) {
            snprintf(why, cap, "edge %lld (%lld, %lld) is a loop (the layer adds every node's)",
                     (long long)e, (long long)a, (long long)b);
            return why;
        }
        deg[a]++;
        deg[b]++;
    }
    return "";
}

/* Sort key of an undirected edge. */
static int cmp_pair(const void *x, const void *y)
{
    const int64_t *p = x, *q = y;
    int64_t a0 = p[0] < p[1] ? p[0] : p[1], a1 = p[0] < p[1] ? p[1] : p[0];
    int64_t b0 = q[0] < q[1] ? q[0] : q[1], b1 = q[0] < q[1] ? q[1] : q[0];
    return a0 != b0 ? (a0 > b0) - (a0 < b0) : (a1 > b1) - (a1 < b1);
}

/* The graph's messages into @p c (checked: a simple undirected graph). */
static nb_status gcn_graph(nb_layer *l, gcn *c, int64_t n, const int64_t *edges, int64_t n_edges,
                           char *why, size_t cap)
{
    nb_alloc_fn alloc = l->alloc;
    void *ud = l->ud;
    if (n < 1 || n > ((int64_t)1 << 40) || n_edges < 0 || n_edges > ((int64_t)1 << 40)) {
        snprintf(why, cap, "%lld nodes and %lld edges: a graph needs 1 or more nodes",
                 (long long)n, (long long)n_edges);
        return NB_ERR_ARG;
    }
    int64_t *deg = alloc(ud, NULL, 0, (size_t)n * sizeof *deg);
    int64_t *sorted = alloc(ud, NULL, 0, (size_t)(2 * n_edges + 1) * sizeof *sorted);
    c->n_edges = n_edges;
    c->n_msg = 2 * n_edges + n;
    c->pairs = alloc(ud, NULL, 0, pairs_bytes(n_edges));
    c->src = alloc(ud, NULL, 0, (size_t)c->n_msg * sizeof *c->src);
    c->dst = alloc(ud, NULL, 0, (size_t)c->n_msg * sizeof *c->dst);
    c->norm = alloc(ud, NULL, 0, (size_t)c->n_msg * sizeof *c->norm);
    nb_status st = NB_OK;
    if (!deg || !sorted || !c->pairs || !c->src || !c->dst || !c->norm) {
        st = NB_ERR_NOMEM;
        snprintf(why, cap, "out of memory");
    } else if (*edges_problem(n, edges, n_edges, why, cap, deg)) {
        st = NB_ERR_ARG;
    } else if (n_edges > 0) {
        memcpy(sorted, edges, (size_t)(2 * n_edges) * sizeof *sorted);
        qsort(sorted, (size_t)n_edges, 2 * sizeof *sorted, cmp_pair);
        for (int64_t e = 1; e < n_edges && st == NB_OK; e++)
            if (!cmp_pair(sorted + 2 * e, sorted + 2 * (e - 1))) {
                snprintf(why, cap, "the edge (%lld, %lld) is given twice",
                         (long long)sorted[2 * e], (long long)sorted[2 * e + 1]);
                st = NB_ERR_ARG;
            }
    }
    if (st == NB_OK) {
        if (n_edges > 0)
            memcpy(c->pairs, edges, (size_t)(2 * n_edges) * sizeof *c->pairs);
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++, k++) {
            c->src[k] = c->dst[k] = i;
            c->norm[k] = 1 / (double)deg[i];
        }
        for (int64_t e = 0; e < n_edges; e++) {
            int64_t a = edges[2 * e], b = edges[2 * e + 1];
            double w = 1 / sqrt((double)deg[a] * (double)deg[b]);
            c->src[k] = a, c->dst[k] = b, c->norm[k++] = w;
            c->src[k] = b, c->dst[k] = a, c->norm[k++] = w;
        }
        c->n_nodes = n;
    }
    if (deg)
        alloc(ud, deg, (size_t)n * sizeof *deg, 0);
    if (sorted)
        alloc(ud, sorted, (size_t)(2 * n_edges + 1) * sizeof *sorted, 0);
    return st;
}

/* The weight [n_in, n_out] (o->init, Xavier-uniform by default) and bias. */
static nb_status gcn_params(nb_layer *l, gcn *c, nb_model *m, int64_t n_in, int64_t n_out,
                            const nb_layer_opts *o)
{
    if (n_in < 1 || n_out < 1 || n_in > INT32_MAX || n_out > INT32_MAX)
        return NB_ERR_ARG;
    nb_init init;
    nb_status st = nbn_weight_bias_ready(l, m, o, NB_INIT_XAVIER_UNIFORM, &init);
    if (st != NB_OK)
        return st;
    st = nb_layer_add_param(l, m, "weight", o->dtype, 2, (const int64_t[]){n_in, n_out},
                                      &c->weight);
    if (st == NB_OK && !o->no_bias)
        st = nb_layer_add_param(l, m, "bias", o->dtype, 1, &n_out, &c->bias);
    if (st == NB_OK)
        st = nb_init_tensor_fans(c->weight, init, o->init_scale, n_in, n_out, o->rng);
    c->n_in = n_in;
    c->n_out = n_out;
    return st;
}

nb_status nb_gcn_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out, int64_t n_nodes,
                     const int64_t *edges, int64_t n_edges, const nb_layer_opts *o, nb_layer **out,
                     nb_error *err)
{
    static const char *const where = "nb_gcn_new";
    nb_error_clear(err);
    if (out)
        *out = NULL;
    if (!m || !name || !out || (n_edges > 0 && !edges))
        return nbc_error_at(err, NB_ERR_NULL, where, -1, name, "%s is NULL",
                            !m ? "the model" : !name ? "the name" : !out ? "out" : "edges");
    nb_layer_opts def = {0};
    if (!o)
        o = &def;
    if (o->dtype != NB_F32 && o->dtype != NB_F64)
        return nbc_error_at(err, NB_ERR_DTYPE, where, -1, name, "the dtype is not f32 or f64");
    nb_layer *l = NULL;
    nb_status st = nbn_model_layer(m, &nbn_gcn_def, name, o->rng, &l);
    if (st != NB_OK)
        return nbc_error_at(err, st, where, -1, name, "layer '%s': %s", name, nb_status_str(st));
    char why[200] = "";
    st = gcn_graph(l, l->state, n_nodes, edges, n_edges, why, sizeof why);
    if (st == NB_OK) {
        st = gcn_params(l, l->state, m, n_in, n_out, o);
        if (st != NB_OK)
            snprintf(why, sizeof why, "its parameters: %s (n_in %lld, n_out %lld)",
                     nb_status_str(st), (long long)n_in, (long long)n_out);
    }
    if (st != NB_OK) {
        nb_layer_free(l);
        return nbc_error_at(err, st, where, -1, name, "layer '%s': %s", name, why);
    }
    *out = l;
    return NB_OK;
}

static nb_tensor *gcn_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training)
{
    (void)training;
    const gcn *c = l->state;
    char sx[96];
    if (x->rank != 2 || x->shape[0] != c->n_nodes || x->shape[1] != c->n_in) {
        nbc_error(g, NB_ERR_SHAPE, l->name, "input %s must be [%lld nodes, %lld features]",
                  nbc_shp(x, sx, sizeof sx), (long long)c->n_nodes, (long long)c->n_in);
        return NULL;
    }
    if (x->dtype != c->weight->dtype) {
        nbc_error(g, NB_ERR_DTYPE, l->name, "input is %s but the parameters are %s",
                  nb_dtype_name(x->dtype), nb_dtype_name(c->weight->dtype));
        return NULL;
    }
    nb_tensor *norm = nbc_tensor_new(g, x->dtype, 2, (const int64_t[]){c->n_msg, 1}, l->name);
    if (!norm)
        return NULL;
    for (int64_t k = 0; k < c->n_msg; k++)
        nb_tensor_set(norm, k, c->norm[k]);
    nb_tensor *xw = nb_matmul(g, x, c->weight, false, false);
    nb_tensor *msg = nb_mul(g, nb_gather(g, xw, 0, c->src, c->n_msg), norm);
    nb_tensor *y = nb_scatter_add(g, msg, 0, c->dst, c->n_msg, c->n_nodes);
    return c->bias ? nb_add(g, y, c->bias) : y;
}

static int64_t gcn_width(const nb_layer *l, int64_t w)
{
    (void)w;
    return ((const gcn *)l->state)->n_out;
}

static nb_status gcn_describe(const nb_layer *l, char *out, size_t cap)
{
    const gcn *c = l->state;
    nb_status st = nb_layer_setting_put(out, cap, "in", "%lld", (long long)c->n_in);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "out", "%lld", (long long)c->n_out);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "bias", "%d", c->bias ? 1 : 0);
    if (st == NB_OK)
        st = nb_layer_setting_put(out, cap, "nodes", "%lld", (long long)c->n_nodes);
    if (st != NB_OK)
        return st;
    /* edges=a-b,c-d,... (or edges=- for none), written in place */
    size_t used = strlen(out);
    int k = snprintf(out + used, cap - used, " edges=%s", c->n_edges ? "" : "-");
    if (k < 0 || (size_t)k >= cap - used) {
        out[used] = '\0';
        return NB_ERR_ARG;
    }
    size_t at = used + (size_t)k;
    for (int64_t e = 0; e < c->n_edges; e++) {
        k = snprintf(out + at, cap - at, "%s%lld-%lld", e ? "," : "", (long long)c->pairs[2 * e],
                     (long long)c->pairs[2 * e + 1]);
        if (k < 0 || (size_t)k >= cap - at) {
            out[used] = '\0';
            return NB_ERR_ARG;
        }
        at += (size_t)k;
    }
    return NB_OK;
}

/* The edges of "a-b,c-d,..." ("-": none) into a new array of the hook. */
static nb_status parse_edges(const nb_layer *l, const char *text, int64_t **edges, int64_t *n)
{
    *edges = NULL;
    *n = 0;
    if (!strcmp(text, "-"))
        return NB_OK;
    int64_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == ',';
    int64_t *e = l->alloc(l->ud, NULL, 0, (size_t)(2 * count) * sizeof *e);
    if (!e)
        return NB_ERR_NOMEM;
    const char *p = text;
    for (int64_t i = 0; i < count; i++) {
        char *end;
        long long a = strtoll(p, &end, 10);
        if (end == p || *end != '-' || a < 0) {
            l->alloc(l->ud, e, (size_t)(2 * count) * sizeof *e, 0);
            return NB_ERR_PARSE;
        }
        p = end + 1;
        long long b = strtoll(p, &end, 10);
        if (end == p || (*end != ',' && *end) || b < 0 || (*end == ',') != (i + 1 < count)) {
            l->alloc(l->ud, e, (size_t)(2 * count) * sizeof *e, 0);
            return NB_ERR_PARSE;
        }
        e[2 * i] = a, e[2 * i + 1] = b;
        p = *end ? end + 1 : end;
    }
    *edges = e;
    *n = count;
    return NB_OK;
}

static nb_status gcn_build(nb_layer *l, nb_model *m, const char *settings, const nb_layer_opts *o,
                           nb_error *err)
{
    static const char *const where = "nb_layer_from_description";
    int64_t n_in, n_out, bias, nodes, n_edges;
    if (nb_layer_setting_get_i64(settings, "in", &n_in) != NB_OK ||
        nb_layer_setting_get_i64(settings, "out", &n_out) != NB_OK ||
        nb_layer_setting_get_i64(settings, "bias", &bias) != NB_OK || bias < 0 || bias > 1 ||
        nb_layer_setting_get_i64(settings, "nodes", &nodes) != NB_OK)
        return nbc_error_at(err, NB_ERR_ARG, where, -1, l->name,
                            "layer '%s' (gcn): in=, out=, bias= (0 or 1) and nodes= are required",
                            l->name);
    size_t len;
    const char *v = strstr(settings, "edges=");
    len = v ? strcspn(v + 6, " ") : 0;
    char *text = v ? l->alloc(l->ud, NULL, 0, len + 1) : NULL;
    if (v && !text)
        return nbc_error_at(err, NB_ERR_NOMEM, where, -1, l->name, "out of memory");
    int64_t *edges = NULL;
    nb_status st = NB_ERR_PARSE;
    if (text) {
        memcpy(text, v + 6, len);
        text[len] = '\0';
        st = parse_edges(l, text, &edges, &n_edges);
        l->alloc(l->ud, text, len + 1, 0);
    }
    if (st != NB_OK)
        return nbc_error_at(err, st, where, -1, l->name,
                            "layer '%s' (gcn): edges= is missing or not pairs like 0-1,1-2",
                            l->name);
    char why[200] = "";
    /* the graph's own arrays count against the build's bound too */
    double need = (double)(2 * n_edges + nodes) * 24.0 + (double)nodes * 8.0;
    if (l->bytes && l->max_bytes > 0 && need > (double)(l->max_bytes - *l->bytes)) {
        snprintf(why, sizeof why, "a graph of %lld nodes and %lld edges takes %.0f bytes, past the "
                 "bound on bytes", (long long)nodes, (long long)n_edges, need);
        st = NB_ERR_ARG;
    } else {
        if (l->bytes)
            *l->bytes += (int64_t)need;
        st = gcn_graph(l, l->state, nodes, edges, n_edges, why, sizeof why);
    }
    if (edges)
        l->alloc(l->ud, edges, (size_t)(2 * n_edges) * sizeof *edges, 0);
    if (st == NB_OK) {
        nb_layer_opts lo = *o;
        lo.no_bias = !bias;
        st = gcn_params(l, l->state, m, n_in, n_out, &lo);
        if (st != NB_OK)
            snprintf(why, sizeof why, "its parameters could not be added: %s",
                     st == NB_ERR_ARG ? "sizes too large, or past the bound on bytes"
                                      : nb_status_str(st));
    }
    return st == NB_OK ? NB_OK
                       : nbc_error_at(err, st, where, -1, l->name, "layer '%s' (gcn): %s", l->name,
                                      why);
}

const nb_layer_def nbn_gcn_def = {
    .kind = "gcn",
    .state_size = sizeof(gcn),
    .forward = gcn_forward,
    .out_width = gcn_width,
    .describe = gcn_describe,
    .build = gcn_build,
    .release = gcn_release,
};
