/* A layered DAG layout (Sugiyama's scheme): layers, virtual points on long
 * edges, crossing reduction, coordinates. See layout.h. */

#include "layout.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WHERE "nbt_layout_run"
#define MAX_SIZE 1e6           /* largest box size or option, px */
#define ORDER_SWEEPS 24        /* most barycenter sweeps */
#define ORDER_PATIENCE 4       /* sweeps without a better order before stopping */
#define TRANSPOSE_ROUNDS 6     /* most rounds of adjacent swaps after a sweep */
#define SIFT_ROUNDS 8          /* most rounds of sifting every item */
#define RANDOM_STARTS 8        /* most starts from shuffled orders, after two others */
#define ORDER_BUDGET (1 << 18) /* starts stop before order_work x starts passes this */
#define SIFT_BUDGET (1 << 22)  /* no sifting when order_work passes this */
#define PLACE_PASSES 8         /* down-and-up passes that fit y to one side */
#define PLACE_BOTH_PASSES 4    /* then passes that fit y to both sides */
#define WEIGHT_REAL 1.0        /* pull of a box towards its neighbours */
#define WEIGHT_CHAIN                                                                               \
    4.0                   /* of an item with one edge each side (virtual points among              \
                             them): chains and long edges run straight */
#define WEIGHT_ALONE 0.25 /* of an item without neighbours on that side: stay */

/* Scratch memory: blocks in a list, freed together. */
typedef union scratch_head {
    struct {
        union scratch_head *next;
        size_t size;
    } h;
    max_align_t align;
} scratch_head;

/* Items are the n boxes (0..n-1) and the virtual points of long edges
 * (n..n_items-1). Edge e (node to, input slot) runs through the items
 * from, n + e_seg[e] - e, ..., n + e_seg[e + 1] - e - 2, to: its segments
 * are e_seg[e] .. e_seg[e + 1] - 1, segment s joining seg_up[s] (left) to
 * seg_lo[s] (the next column). */
typedef struct work {
    nb_alloc_fn alloc;
    void *ud;
    scratch_head *blocks;
    bool oom;
    const nbt_node *nodes;
    int n, n_edges, n_segs, n_items, n_layers;
    double layer_gap, node_gap, edge_gap, margin;
    int *lay;                       /* [n_items] column */
    int *e_from, *e_to, *e_slot;    /* [n_edges] */
    int *e_seg;                     /* [n_edges + 1] */
    int *seg_up, *seg_lo, *seg_e;   /* [n_segs] */
    int *in_start, *in_list;        /* segments ending at each item (CSR) */
    int *out_start, *out_list;      /* segments leaving each item (CSR) */
    int *lay_start, *lay_items;     /* the items of each column, in order (CSR) */
    int *gap_start, *gap_list;      /* segments by their left column (CSR) */
    int *pos, *best_pos, *keep_pos; /* [n_items] place in the column */
    int *stack, *cursor, *fill;     /* [n_items] x 2, [n_layers] for the depth-first order */
    unsigned char *seen;            /* [n_items] */
    int max_layer, max_gap, max_deg;
    int64_t order_work; /* segments + sum over columns of items x segment ends */
    int *cross_up, *cross_lo, *cross_work;
    int64_t *delta;          /* [max_layer] */
    struct sort_key *keys;   /* [max(max_layer, max_deg)] */
    double *off_up, *off_lo; /* [n_segs] y of a segment's ends from its items' centres */
    double *y;               /* [n_items] */
    double *sep, *target, *weight, *blk_sum, *blk_w; /* [max_layer] */
    int *blk_end;                                    /* [max_layer] */
    double *colx, *colw; /* [n_layers] left side and width of each column */
} work;

typedef struct sort_key {
    double key;
    int tie, item;
} sort_key;

static int cmp_key(const void *pa, const void *pb)
{
    const sort_key *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    if (a->tie != b->tie)
        return a->tie < b->tie ? -1 : 1;
    return (a->item > b->item) - (a->item < b->item);
}

/* count * size bytes of scratch, or NULL (and w->oom). The caps on nodes
 * and segments keep every count far below an overflow of size_t. */
static void *scratch(work *w, size_t count, size_t size)
{
    size_t bytes = sizeof(scratch_head) + (count ? count : 1) * size;
    scratch_head *b = w->alloc(w->ud, NULL, 0, bytes);
    if (!b) {
        w->oom = true;
        return NULL;
    }
    b->h.next = w->blocks;
    b->h.size = bytes;
    w->blocks = b;
    return b + 1;
}

static void scratch_free(work *w)
{
    while (w->blocks) {
        scratch_head *next = w->blocks->h.next;
        w->alloc(w->ud, w->blocks, w->blocks->h.size, 0);
        w->blocks = next;
    }
}

static nb_status nomem(nb_error *err, int n)
{
    return nb_error_set(err, NB_ERR_NOMEM, WHERE, "out of memory laying out %d nodes", n);
}

/* ------------------------------------------------------------ crossings */

size_t nbt_crossings_work(int n_seg, int n_upper, int n_lower)
{
    size_t big = (size_t)(n_upper > n_lower ? n_upper : n_lower);
    return 2 * (size_t)n_seg + big + 1 + (size_t)n_lower + 1;
}

int64_t nbt_crossings(int n_seg, const int *upper, const int *lower, int n_upper, int n_lower,
                      int *buf)
{
    int big = n_upper > n_lower ? n_upper : n_lower;
    int *by_lower = buf, *by_both = buf + n_seg, *count = by_both + n_seg;
    int *tree = count + big + 1; /* Fenwick tree over lower places, 1-based */
    /* counting sort by lower, then stably by upper: order (upper, lower) */
    memset(count, 0, ((size_t)n_lower + 1) * sizeof *count);
    for (int i = 0; i < n_seg; i++)
        count[lower[i] + 1]++;
    for (int k = 0; k < n_lower; k++)
        count[k + 1] += count[k];
    for (int i = 0; i < n_seg; i++)
        by_lower[count[lower[i]]++] = i;
    memset(count, 0, ((size_t)n_upper + 1) * sizeof *count);
    for (int i = 0; i < n_seg; i++)
        count[upper[i] + 1]++;
    for (int k = 0; k < n_upper; k++)
        count[k + 1] += count[k];
    for (int j = 0; j < n_seg; j++)
        by_both[count[upper[by_lower[j]]]++] = by_lower[j];
    /* in that order, a segment crosses every earlier one that ends lower */
    memset(tree, 0, ((size_t)n_lower + 1) * sizeof *tree);
    int64_t crossings = 0;
    for (int j = 0; j < n_seg; j++) {
        int lo = lower[by_both[j]];
        int64_t not_below = 0;
        for (int k = lo + 1; k > 0; k -= k & -k)
            not_below += tree[k];
        crossings += j - not_below;
        for (int k = lo + 1; k <= n_lower; k += k & -k)
            tree[k]++;
    }
    return crossings;
}

/* ------------------------------------------------------------ checks */

static nb_status check_size(double v, double lo, const char *what, nb_error *err)
{
    if (isfinite(v) && (v == 0 || (v >= lo && v <= MAX_SIZE)))
        return NB_OK;
    return nb_error_set(err, NB_ERR_ARG, WHERE,
                        "option %s is %g (expected 0 for the default, or %g to %g px)", what, v, lo,
                        MAX_SIZE);
}

static nb_status read_opts(work *w, const nbt_layout_opts *o, nb_error *err)
{
    static const nbt_layout_opts none = {0};
    if (!o)
        o = &none;
    nb_status st;
    if ((st = check_size(o->layer_gap, 1, "layer_gap", err)) ||
        (st = check_size(o->node_gap, 1, "node_gap", err)) ||
        (st = check_size(o->edge_gap, 1, "edge_gap", err)) ||
        (st = check_size(o->margin, 1, "margin", err)))
        return st;
    w->layer_gap = o->layer_gap ? o->layer_gap : 48;
    w->node_gap = o->node_gap ? o->node_gap : 24;
    w->edge_gap = o->edge_gap ? o->edge_gap : 8;
    w->margin = o->margin ? o->margin : 16;
    w->alloc = o->alloc ? o->alloc : nb_default_alloc;
    w->ud = o->alloc ? o->ud : NULL;
    return NB_OK;
}

static nb_status check_nodes(work *w, nb_error *err)
{
    int64_t n_edges = 0;
    for (int v = 0; v < w->n; v++) {
        const nbt_node *d = &w->nodes[v];
        if (d->n_in < 0)
            return nb_error_set(err, NB_ERR_ARG, WHERE, "node %d: n_in is %d (expected >= 0)", v,
                                d->n_in);
        if (d->n_in > 0 && !d->in)
            return nb_error_set(err, NB_ERR_NULL, WHERE, "node %d: in is NULL with n_in %d", v,
                                d->n_in);
        for (int i = 0; i < d->n_in; i++)
            if (d->in[i] < 0 || d->in[i] >= v) {
                char expected[48] = "node 0 has no earlier node";
                if (v > 0)
                    snprintf(expected, sizeof expected, "expected 0..%d", v - 1);
                return nb_error_set(err, NB_ERR_ARG, WHERE,
                                    "node %d: input %d (slot %d) is not an earlier node (nodes "
                                    "come in topological order: %s)",
                                    v, d->in[i], i, expected);
            }
        if (!(d->w >= 0 && d->w <= MAX_SIZE && d->h >= 0 && d->h <= MAX_SIZE))
            return nb_error_set(err, NB_ERR_ARG, WHERE,
                                "node %d: box size %g x %g (expected 0 to %g px)", v, d->w, d->h,
                                MAX_SIZE);
        n_edges += d->n_in;
        if (n_edges > NBT_LAYOUT_MAX_SEGMENTS)
            return nb_error_set(err, NB_ERR_ARG, WHERE,
                                "more than %d edges up to node %d: too many to lay out",
                                NBT_LAYOUT_MAX_SEGMENTS, v);
    }
    w->n_edges = (int)n_edges;
    return NB_OK;
}

/* ------------------------------------------------------------ layers */

/* Columns of the nodes (w->lay[0..n)): the longest path from a source;
 * the last node in the last column; a source not pinned just left of its
 * first consumer. Then the edges and their segments. */
static nb_status assign_layers(work *w, nb_error *err)
{
    int n = w->n;
    int *first_use = scratch(w, (size_t)n, sizeof(int));
    w->e_from = scratch(w, (size_t)w->n_edges, sizeof(int));
    w->e_to = scratch(w, (size_t)w->n_edges, sizeof(int));
    w->e_slot = scratch(w, (size_t)w->n_edges, sizeof(int));
    w->e_seg = scratch(w, (size_t)w->n_edges + 1, sizeof(int));
    int *lay = scratch(w, (size_t)n, sizeof(int));
    if (w->oom)
        return nomem(err, n);
    int top = 0, e = 0;
    for (int v = 0; v < n; v++) {
        lay[v] = 0;
        first_use[v] = INT_MAX;
        for (int i = 0; i < w->nodes[v].n_in; i++, e++) {
            int u = w->nodes[v].in[i];
            if (lay[u] + 1 > lay[v])
                lay[v] = lay[u] + 1;
            w->e_from[e] = u;
            w->e_to[e] = v;
            w->e_slot[e] = i;
        }
        if (lay[v] > top)
            top = lay[v];
    }
    lay[n - 1] = top; /* nothing uses the last node */
    for (e = 0; e < w->n_edges; e++)
        if (lay[w->e_to[e]] < first_use[w->e_from[e]])
            first_use[w->e_from[e]] = lay[w->e_to[e]];
    for (int v = 0; v < n; v++)
        if (w->nodes[v].n_in == 0 && !w->nodes[v].pin_left && first_use[v] != INT_MAX)
            lay[v] = first_use[v] - 1;
    int64_t segs = 0;
    for (e = 0; e < w->n_edges; e++) {
        w->e_seg[e] = (int)segs;
        segs += lay[w->e_to[e]] - lay[w->e_from[e]];
        if (segs > NBT_LAYOUT_MAX_SEGMENTS)
            return nb_error_set(err, NB_ERR_ARG, WHERE,
                                "the edges into nodes up to %d pass more than %d columns in all: "
                                "too many to lay out",
                                w->e_to[e], NBT_LAYOUT_MAX_SEGMENTS);
    }
    w->e_seg[w->n_edges] = (int)segs;
    w->n_segs = (int)segs;
    w->n_items = n + w->n_segs - w->n_edges;
    w->n_layers = top + 1;
    w->lay = scratch(w, (size_t)w->n_items, sizeof(int));
    if (w->oom)
        return nomem(err, n);
    memcpy(w->lay, lay, (size_t)n * sizeof *lay);
    return NB_OK;
}

/* ------------------------------------------------------------ structure */

/* CSR: start[k] .. start[k + 1] - 1 index list for key k of each of m
 * entries (keys[j], in entry order). */
static void csr(int n_keys, int m, const int *keys, int *start, int *list)
{
    memset(start, 0, ((size_t)n_keys + 1) * sizeof *start);
    for (int j = 0; j < m; j++)
        start[keys[j] + 1]++;
    for (int k = 0; k < n_keys; k++)
        start[k + 1] += start[k];
    for (int j = 0; j < m; j++)
        list[start[keys[j]]++] = j;
    for (int k = n_keys; k > 0; k--)
        start[k] = start[k - 1];
    start[0] = 0;
}

static nb_status build(work *w, nb_error *err)
{
    int n = w->n, ni = w->n_items, ns = w->n_segs, nl = w->n_layers;
    w->seg_up = scratch(w, (size_t)ns, sizeof(int));
    w->seg_lo = scratch(w, (size_t)ns, sizeof(int));
    w->seg_e = scratch(w, (size_t)ns, sizeof(int));
    w->in_start = scratch(w, (size_t)ni + 1, sizeof(int));
    w->in_list = scratch(w, (size_t)ns, sizeof(int));
    w->out_start = scratch(w, (size_t)ni + 1, sizeof(int));
    w->out_list = scratch(w, (size_t)ns, sizeof(int));
    w->lay_start = scratch(w, (size_t)nl + 1, sizeof(int));
    w->lay_items = scratch(w, (size_t)ni, sizeof(int));
    w->gap_start = scratch(w, (size_t)nl + 1, sizeof(int));
    w->gap_list = scratch(w, (size_t)ns, sizeof(int));
    w->pos = scratch(w, (size_t)ni, sizeof(int));
    w->best_pos = scratch(w, (size_t)ni, sizeof(int));
    w->keep_pos = scratch(w, (size_t)ni, sizeof(int));
    w->stack = scratch(w, (size_t)ni, sizeof(int));
    w->cursor = scratch(w, (size_t)ni, sizeof(int));
    w->fill = scratch(w, (size_t)nl, sizeof(int));
    w->seen = scratch(w, (size_t)ni, 1);
    int *seg_col = scratch(w, (size_t)ns, sizeof(int));
    if (w->oom)
        return nomem(err, n);
    for (int e = 0; e < w->n_edges; e++) {
        int first = w->e_seg[e], span = w->e_seg[e + 1] - first;
        int virt = n + first - e; /* its first virtual point */
        for (int k = 0; k < span; k++) {
            int s = first + k;
            w->seg_up[s] = k == 0 ? w->e_from[e] : virt + k - 1;
            w->seg_lo[s] = k == span - 1 ? w->e_to[e] : virt + k;
            w->seg_e[s] = e;
            seg_col[s] = w->lay[w->e_from[e]] + k;
            if (k > 0)
                w->lay[w->seg_up[s]] = seg_col[s];
        }
    }
    csr(ni, ns, w->seg_lo, w->in_start, w->in_list);
    csr(ni, ns, w->seg_up, w->out_start, w->out_list);
    csr(nl, ni, w->lay, w->lay_start, w->lay_items);
    csr(nl, ns, seg_col, w->gap_start, w->gap_list);
    /* the first order: boxes by index, then virtual points by edge */
    w->max_layer = w->max_gap = w->max_deg = 0;
    w->order_work = ns;
    for (int l = 0; l < nl; l++) {
        int size = w->lay_start[l + 1] - w->lay_start[l];
        int gap = w->gap_start[l + 1] - w->gap_start[l];
        w->max_layer = size > w->max_layer ? size : w->max_layer;
        w->max_gap = gap > w->max_gap ? gap : w->max_gap;
        int64_t ends = 0;
        for (int k = 0; k < size; k++) {
            int v = w->lay_items[w->lay_start[l] + k];
            w->pos[v] = k;
            ends += w->in_start[v + 1] - w->in_start[v] + w->out_start[v + 1] - w->out_start[v];
        }
        w->order_work += size * ends;
    }
    for (int v = 0; v < ni; v++) {
        int deg = w->in_start[v + 1] - w->in_start[v];
        int out = w->out_start[v + 1] - w->out_start[v];
        deg = out > deg ? out : deg;
        w->max_deg = deg > w->max_deg ? deg : w->max_deg;
    }
    int keys = w->max_layer > w->max_deg ? w->max_layer : w->max_deg;
    w->cross_up = scratch(w, (size_t)w->max_gap, sizeof(int));
    w->cross_lo = scratch(w, (size_t)w->max_gap, sizeof(int));
    w->cross_work =
        scratch(w, nbt_crossings_work(w->max_gap, w->max_layer, w->max_layer), sizeof(int));
    w->keys = scratch(w, (size_t)keys, sizeof(sort_key));
    w->delta = scratch(w, (size_t)w->max_layer, sizeof(int64_t));
    if (w->oom)
        return nomem(err, n);
    return NB_OK;
}

/* ------------------------------------------------------------ order */

static int64_t count_crossings(work *w)
{
    int64_t total = 0;
    for (int l = 0; l + 1 < w->n_layers; l++) {
        int k = 0;
        for (int j = w->gap_start[l]; j < w->gap_start[l + 1]; j++, k++) {
            w->cross_up[k] = w->pos[w->seg_up[w->gap_list[j]]];
            w->cross_lo[k] = w->pos[w->seg_lo[w->gap_list[j]]];
        }
        total += nbt_crossings(k, w->cross_up, w->cross_lo, w->lay_start[l + 1] - w->lay_start[l],
                               w->lay_start[l + 2] - w->lay_start[l + 1], w->cross_work);
    }
    return total;
}

/* Sort column l by the mean place of each item's neighbours in the column
 * before (from_left) or after; an item without such neighbours keys on
 * its own place. */
static void reorder(work *w, int l, bool from_left)
{
    int start = w->lay_start[l], size = w->lay_start[l + 1] - start;
    const int *st = from_left ? w->in_start : w->out_start;
    const int *list = from_left ? w->in_list : w->out_list;
    const int *other = from_left ? w->seg_up : w->seg_lo;
    for (int k = 0; k < size; k++) {
        int v = w->lay_items[start + k];
        double sum = 0;
        for (int j = st[v]; j < st[v + 1]; j++)
            sum += w->pos[other[list[j]]];
        int deg = st[v + 1] - st[v];
        w->keys[k] = (sort_key){deg ? sum / deg : w->pos[v], w->pos[v], v};
    }
    qsort(w->keys, (size_t)size, sizeof *w->keys, cmp_key);
    for (int k = 0; k < size; k++) {
        w->lay_items[start + k] = w->keys[k].item;
        w->pos[w->keys[k].item] = k;
    }
}

/* Crossings among the segments of a and b (a just above b) on one side:
 * *above counts them with a above b, *below with b above a. */
static void pair_crossings(const work *w, int a, int b, const int *st, const int *list,
                           const int *other, int64_t *above, int64_t *below)
{
    for (int i = st[a]; i < st[a + 1]; i++)
        for (int j = st[b]; j < st[b + 1]; j++) {
            int pa = w->pos[other[list[i]]], pb = w->pos[other[list[j]]];
            *above += pa > pb;
            *below += pa < pb;
        }
}

/* Swap neighbours in a column while that removes crossings. */
static void transpose(work *w)
{
    for (int round = 0; round < TRANSPOSE_ROUNDS; round++) {
        bool better = false;
        for (int l = 0; l < w->n_layers; l++)
            for (int k = w->lay_start[l]; k + 1 < w->lay_start[l + 1]; k++) {
                int a = w->lay_items[k], b = w->lay_items[k + 1];
                int64_t above = 0, below = 0;
                pair_crossings(w, a, b, w->in_start, w->in_list, w->seg_up, &above, &below);
                pair_crossings(w, a, b, w->out_start, w->out_list, w->seg_lo, &above, &below);
                if (below < above) {
                    w->lay_items[k] = b;
                    w->lay_items[k + 1] = a;
                    w->pos[a]++;
                    w->pos[b]--;
                    better = true;
                }
            }
        if (!better)
            break;
    }
}

/* Crossings between the segments of a and b with a above b (*above) and
 * with b above a (*below), on both sides. */
static void pair_both(const work *w, int a, int b, int64_t *above, int64_t *below)
{
    *above = *below = 0;
    pair_crossings(w, a, b, w->in_start, w->in_list, w->seg_up, above, below);
    pair_crossings(w, a, b, w->out_start, w->out_list, w->seg_lo, above, below);
}

/* Sifting: move item v to the place in its column where its edges cross
 * the fewest others (the first such place; only if fewer than now).
 * Returns whether it moved. */
static bool sift(work *w, int v)
{
    int l = w->lay[v], start = w->lay_start[l], size = w->lay_start[l + 1] - start;
    int cur = w->pos[v];
    int64_t cost = 0; /* v above every other item */
    for (int q = 0; q + 1 < size; q++) {
        int u = w->lay_items[start + q + (q >= cur)];
        int64_t above, below;
        pair_both(w, v, u, &above, &below);
        cost += above;
        w->delta[q] = below - above;
    }
    int64_t best = cost, now = cur == 0 ? cost : 0;
    int best_p = 0;
    for (int p = 1; p < size; p++) {
        cost += w->delta[p - 1];
        if (cost < best)
            best = cost, best_p = p;
        if (p == cur)
            now = cost;
    }
    if (best >= now)
        return false;
    int step = best_p < cur ? -1 : 1;
    for (int k = cur; k != best_p; k += step) {
        int u = w->lay_items[start + k + step];
        w->lay_items[start + k] = u;
        w->pos[u] = k;
    }
    w->lay_items[start + best_p] = v;
    w->pos[v] = best_p;
    return true;
}

/* Take the order pos (copied) and the columns' item lists that match. */
static void set_order(work *w, const int *pos)
{
    if (pos != w->pos)
        memcpy(w->pos, pos, (size_t)w->n_items * sizeof *w->pos);
    for (int v = 0; v < w->n_items; v++)
        w->lay_items[w->lay_start[w->lay[v]] + w->pos[v]] = v;
}

/* The k-th neighbour of item v (its right ones, then its left ones), or
 * -1 past the last. */
static int neighbour(const work *w, int v, int k)
{
    int n_out = w->out_start[v + 1] - w->out_start[v];
    if (k < n_out)
        return w->seg_lo[w->out_list[w->out_start[v] + k]];
    k -= n_out;
    if (k < w->in_start[v + 1] - w->in_start[v])
        return w->seg_up[w->in_list[w->in_start[v] + k]];
    return -1;
}

/* A second first order: depth first over the edges both ways, from each
 * item not yet met in turn, each column filled in the order met; a path
 * of edges comes out untangled. */
static void depth_first_order(work *w)
{
    memset(w->fill, 0, (size_t)w->n_layers * sizeof *w->fill);
    memset(w->seen, 0, (size_t)w->n_items);
    for (int root = 0; root < w->n_items; root++) {
        if (w->seen[root])
            continue;
        int depth = 0;
        w->seen[root] = 1;
        w->pos[root] = w->fill[w->lay[root]]++;
        w->stack[0] = root;
        w->cursor[0] = 0;
        while (depth >= 0) {
            int u = neighbour(w, w->stack[depth], w->cursor[depth]++);
            if (u < 0) {
                depth--;
            } else if (!w->seen[u]) {
                w->seen[u] = 1;
                w->pos[u] = w->fill[w->lay[u]]++;
                w->stack[++depth] = u;
                w->cursor[depth] = 0;
            }
        }
    }
    set_order(w, w->pos);
}

/* A third: breadth first, the same way. */
static void breadth_first_order(work *w)
{
    memset(w->fill, 0, (size_t)w->n_layers * sizeof *w->fill);
    memset(w->seen, 0, (size_t)w->n_items);
    for (int root = 0; root < w->n_items; root++) {
        if (w->seen[root])
            continue;
        int head = 0, tail = 0;
        w->seen[root] = 1;
        w->stack[tail++] = root;
        while (head < tail) {
            int v = w->stack[head++];
            w->pos[v] = w->fill[w->lay[v]]++;
            for (int k = 0, u; (u = neighbour(w, v, k)) >= 0; k++)
                if (!w->seen[u])
                    w->seen[u] = 1, w->stack[tail++] = u;
        }
    }
    set_order(w, w->pos);
}

static void random_order(work *w, nb_rng *rng)
{
    for (int l = 0; l < w->n_layers; l++) {
        int start = w->lay_start[l], size = w->lay_start[l + 1] - start;
        for (int k = size - 1; k > 0; k--) {
            int j = (int)nb_rng_below(rng, (uint64_t)k + 1);
            int t = w->lay_items[start + k];
            w->lay_items[start + k] = w->lay_items[start + j];
            w->lay_items[start + j] = t;
        }
        for (int k = 0; k < size; k++)
            w->pos[w->lay_items[start + k]] = k;
    }
}

/* From the current order: barycenter sweeps down and up with adjacent
 * swaps, back to the order with the fewest crossings met, then sifting.
 * Leaves that order; returns its crossings. */
static int64_t improve(work *w)
{
    size_t bytes = (size_t)w->n_items * sizeof *w->pos;
    int64_t best = count_crossings(w);
    memcpy(w->best_pos, w->pos, bytes);
    for (int sweep = 0, stall = 0; sweep < ORDER_SWEEPS && best > 0; sweep++) {
        if (sweep % 2 == 0)
            for (int l = 1; l < w->n_layers; l++)
                reorder(w, l, true);
        else
            for (int l = w->n_layers - 2; l >= 0; l--)
                reorder(w, l, false);
        transpose(w);
        int64_t c = count_crossings(w);
        if (c < best) {
            best = c;
            memcpy(w->best_pos, w->pos, bytes);
            stall = 0;
        } else if (++stall >= ORDER_PATIENCE) {
            break;
        }
    }
    set_order(w, w->best_pos);
    bool moved = best > 0 && w->order_work <= SIFT_BUDGET;
    for (int round = 0; moved && round < SIFT_ROUNDS; round++) {
        moved = false;
        for (int v = 0; v < w->n_items; v++)
            moved |= sift(w, v);
    }
    return count_crossings(w);
}

/* The better of two starts (the given order: boxes by index, virtual
 * points by edge; and depth first), each improved; returns its
 * crossings. */
static int64_t order(work *w)
{
    int64_t best = improve(w);
    memcpy(w->keep_pos, w->pos, (size_t)w->n_items * sizeof *w->pos);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    for (int start = 0; start < 2 + RANDOM_STARTS && best > 0; start++) {
        if ((start + 2) * w->order_work > ORDER_BUDGET)
            break;
        if (start == 0)
            depth_first_order(w);
        else if (start == 1)
            breadth_first_order(w);
        else
            random_order(w, &rng);
        int64_t c = improve(w);
        if (c < best) {
            best = c;
            memcpy(w->keep_pos, w->pos, (size_t)w->n_items * sizeof *w->pos);
        }
    }
    set_order(w, w->keep_pos);
    return best;
}

/* ------------------------------------------------------------ coordinates */

static double item_h(const work *w, int v)
{
    return v < w->n ? w->nodes[v].h : 0;
}

/* Least distance between the centres of items u (above) and v. */
static double separation(const work *w, int u, int v)
{
    double gu = u < w->n ? w->node_gap : w->edge_gap;
    double gv = v < w->n ? w->node_gap : w->edge_gap;
    return (item_h(w, u) + item_h(w, v)) / 2 + (gu + gv) / 2;
}

/* Where the edges meet each box: spread over its side, in the order of
 * the items at their other ends (then by slot), no more than edge_gap
 * apart and inside the box. Virtual points take edges at their centre. */
static void spread_ends(work *w, int v, const int *st, const int *list, const int *other,
                        double *off)
{
    int m = st[v + 1] - st[v];
    if (m == 0)
        return;
    double step = w->nodes[v].h / m < w->edge_gap ? w->nodes[v].h / m : w->edge_gap;
    for (int j = 0; j < m; j++) {
        int s = list[st[v] + j];
        w->keys[j] = (sort_key){w->pos[other[s]], w->e_slot[w->seg_e[s]], s};
    }
    qsort(w->keys, (size_t)m, sizeof *w->keys, cmp_key);
    for (int j = 0; j < m; j++)
        off[w->keys[j].item] = (j - (m - 1) / 2.0) * step;
}

/* Least squares: y of column l's items as near as their separations allow
 * to the mean y their neighbours ask for (left if side & 1, right if side
 * & 2), weighted; the isotonic regression of target - cumulative
 * separation, solved exactly by pooling adjacent violators. */
static void place_column(work *w, int l, int side)
{
    int start = w->lay_start[l], size = w->lay_start[l + 1] - start;
    double cum = 0;
    for (int k = 0; k < size; k++) {
        int v = w->lay_items[start + k];
        if (k > 0)
            cum += separation(w, w->lay_items[start + k - 1], v);
        w->sep[k] = cum;
        double sum = 0;
        int cnt = 0;
        if (side & 1)
            for (int j = w->in_start[v]; j < w->in_start[v + 1]; j++, cnt++) {
                int s = w->in_list[j];
                sum += w->y[w->seg_up[s]] + w->off_up[s] - w->off_lo[s];
            }
        if (side & 2)
            for (int j = w->out_start[v]; j < w->out_start[v + 1]; j++, cnt++) {
                int s = w->out_list[j];
                sum += w->y[w->seg_lo[s]] + w->off_lo[s] - w->off_up[s];
            }
        w->target[k] = (cnt ? sum / cnt : w->y[v]) - cum;
        bool chain =
            w->in_start[v + 1] - w->in_start[v] <= 1 && w->out_start[v + 1] - w->out_start[v] <= 1;
        w->weight[k] = !cnt ? WEIGHT_ALONE : chain ? WEIGHT_CHAIN : WEIGHT_REAL;
    }
    int nb = 0;
    for (int k = 0; k < size; k++) {
        w->blk_sum[nb] = w->weight[k] * w->target[k];
        w->blk_w[nb] = w->weight[k];
        w->blk_end[nb++] = k + 1;
        while (nb > 1 &&
               w->blk_sum[nb - 2] / w->blk_w[nb - 2] > w->blk_sum[nb - 1] / w->blk_w[nb - 1]) {
            w->blk_sum[nb - 2] += w->blk_sum[nb - 1];
            w->blk_w[nb - 2] += w->blk_w[nb - 1];
            w->blk_end[nb - 2] = w->blk_end[nb - 1];
            nb--;
        }
    }
    for (int b = 0, k = 0; b < nb; b++)
        for (; k < w->blk_end[b]; k++)
            w->y[w->lay_items[start + k]] = w->blk_sum[b] / w->blk_w[b] + w->sep[k];
}

/* Items of column l with a single input move level with it, as far as
 * their neighbours in the column leave room: chains and long edges run
 * straight. */
static void straighten(work *w, int l)
{
    int start = w->lay_start[l], end = w->lay_start[l + 1];
    for (int k = start; k < end; k++) {
        int v = w->lay_items[k];
        if (w->in_start[v + 1] - w->in_start[v] != 1)
            continue;
        int s = w->in_list[w->in_start[v]];
        double want = w->y[w->seg_up[s]] + w->off_up[s] - w->off_lo[s];
        if (k > start) {
            int u = w->lay_items[k - 1];
            double low = w->y[u] + separation(w, u, v);
            want = want < low ? low : want;
        }
        if (k + 1 < end) {
            int u = w->lay_items[k + 1];
            double high = w->y[u] - separation(w, v, u);
            want = want > high ? high : want;
        }
        w->y[v] = want;
    }
}

static nb_status coordinates(work *w, nb_error *err)
{
    int ni = w->n_items, ns = w->n_segs, nl = w->n_layers;
    size_t ml = (size_t)w->max_layer;
    w->off_up = scratch(w, (size_t)ns, sizeof(double));
    w->off_lo = scratch(w, (size_t)ns, sizeof(double));
    w->y = scratch(w, (size_t)ni, sizeof(double));
    w->sep = scratch(w, ml, sizeof(double));
    w->target = scratch(w, ml, sizeof(double));
    w->weight = scratch(w, ml, sizeof(double));
    w->blk_sum = scratch(w, ml, sizeof(double));
    w->blk_w = scratch(w, ml, sizeof(double));
    w->blk_end = scratch(w, ml, sizeof(int));
    w->colx = scratch(w, (size_t)nl, sizeof(double));
    w->colw = scratch(w, (size_t)nl, sizeof(double));
    if (w->oom)
        return nomem(err, w->n);
    memset(w->off_up, 0, (size_t)ns * sizeof *w->off_up);
    memset(w->off_lo, 0, (size_t)ns * sizeof *w->off_lo);
    for (int v = 0; v < w->n; v++) {
        spread_ends(w, v, w->in_start, w->in_list, w->seg_up, w->off_lo);
        spread_ends(w, v, w->out_start, w->out_list, w->seg_lo, w->off_up);
    }
    /* start: each column packed and centred on 0, then fitted */
    for (int l = 0; l < nl; l++) {
        for (int k = w->lay_start[l]; k < w->lay_start[l + 1]; k++)
            w->y[w->lay_items[k]] = 0;
        place_column(w, l, 0);
    }
    for (int pass = 0; pass < PLACE_PASSES; pass++) {
        for (int l = 1; l < nl; l++)
            place_column(w, l, 1);
        for (int l = nl - 2; l >= 0; l--)
            place_column(w, l, 2);
    }
    for (int pass = 0; pass < PLACE_BOTH_PASSES; pass++)
        for (int l = 0; l < nl; l++)
            place_column(w, l, 3);
    for (int l = 1; l < nl; l++)
        straighten(w, l);
    /* columns: as wide as their widest box */
    for (int l = 0; l < nl; l++)
        w->colw[l] = 0;
    for (int v = 0; v < w->n; v++)
        if (w->nodes[v].w > w->colw[w->lay[v]])
            w->colw[w->lay[v]] = w->nodes[v].w;
    double top = INFINITY;
    for (int v = 0; v < ni; v++)
        if (w->y[v] - item_h(w, v) / 2 < top)
            top = w->y[v] - item_h(w, v) / 2;
    for (int v = 0; v < ni; v++)
        w->y[v] += w->margin - top;
    w->colx[0] = w->margin;
    for (int l = 1; l < nl; l++)
        w->colx[l] = w->colx[l - 1] + w->colw[l - 1] + w->layer_gap;
    return NB_OK;
}

/* ------------------------------------------------------------ output */

static size_t align_up(size_t n)
{
    size_t a = sizeof(max_align_t);
    return (n + a - 1) / a * a;
}

/* The points of edge e into pts (NULL: only count them). */
static int edge_points(const work *w, int e, nbt_point *pts)
{
    int u = w->e_from[e], v = w->e_to[e], k = 0;
    int first = w->e_seg[e], last = w->e_seg[e + 1] - 1;
    int lu = w->lay[u], lv = w->lay[v];
    double cu = w->colx[lu] + w->colw[lu] / 2, cv = w->colx[lv] + w->colw[lv] / 2;
    double yu = w->y[u] + w->off_up[first], yv = w->y[v] + w->off_lo[last];
#define PUT(px, py)                                                                                \
    do {                                                                                           \
        if (pts)                                                                                   \
            pts[k] = (nbt_point){(px), (py)};                                                      \
        k++;                                                                                       \
    } while (0)
    PUT(cu + w->nodes[u].w / 2, yu);
    if (w->nodes[u].w < w->colw[lu])
        PUT(w->colx[lu] + w->colw[lu], yu);
    for (int s = first + 1; s <= last; s++) {
        int d = w->seg_up[s], l = w->lay[d];
        PUT(w->colx[l], w->y[d]);
        if (w->colw[l] > 0)
            PUT(w->colx[l] + w->colw[l], w->y[d]);
    }
    if (w->nodes[v].w < w->colw[lv])
        PUT(w->colx[lv], yv);
    PUT(cv - w->nodes[v].w / 2, yv);
#undef PUT
    return k;
}

static nb_status emit(work *w, int64_t crossings, nbt_layout *out, nb_error *err)
{
    int n = w->n, ne = w->n_edges, nl = w->n_layers;
    int64_t n_pts = 0;
    for (int e = 0; e < ne; e++)
        n_pts += edge_points(w, e, NULL);
    size_t off_centre = 0;
    size_t off_pts = align_up(off_centre + (size_t)n * sizeof(nbt_point));
    size_t off_edges = align_up(off_pts + (size_t)n_pts * sizeof(nbt_point));
    size_t off_ints = align_up(off_edges + (size_t)ne * sizeof(nbt_edge));
    size_t bytes = off_ints + 3 * (size_t)n * sizeof(int);
    char *block = w->alloc(w->ud, NULL, 0, bytes);
    if (!block)
        return nomem(err, n);
    out->n = n;
    out->n_layers = nl;
    out->centre = (nbt_point *)(block + off_centre);
    out->pts = n_pts ? (nbt_point *)(block + off_pts) : NULL;
    out->edges = ne ? (nbt_edge *)(block + off_edges) : NULL;
    out->layer = (int *)(block + off_ints);
    out->rank = out->layer + n;
    out->first_edge = out->rank + n;
    out->n_edges = ne;
    out->n_pts = (int)n_pts;
    out->n_crossings = crossings;
    out->block_ = block;
    out->block_size_ = bytes;
    out->alloc_ = w->alloc;
    out->ud_ = w->ud;
    double bottom = 0;
    for (int l = 0; l < nl; l++)
        for (int k = w->lay_start[l], rank = 0; k < w->lay_start[l + 1]; k++) {
            int v = w->lay_items[k];
            double low = w->y[v] + item_h(w, v) / 2;
            bottom = low > bottom ? low : bottom;
            if (v >= n)
                continue;
            out->layer[v] = l;
            out->rank[v] = rank++;
            out->centre[v] = (nbt_point){w->colx[l] + w->colw[l] / 2, w->y[v]};
        }
    for (int v = 0, e = 0; v < n; e += w->nodes[v].n_in, v++)
        out->first_edge[v] = e;
    for (int e = 0, p = 0; e < ne; e++) {
        int k = edge_points(w, e, out->pts + p);
        out->edges[e] = (nbt_edge){w->e_from[e], w->e_to[e], w->e_slot[e], p, k};
        p += k;
    }
    out->width = w->colx[nl - 1] + w->colw[nl - 1] + w->margin;
    out->height = bottom + w->margin;
    return NB_OK;
}

/* ------------------------------------------------------------ entry */

nb_status nbt_layout_run(const nbt_node *nodes, int n, const nbt_layout_opts *opts, nbt_layout *out,
                         nb_error *err)
{
    nb_error_clear(err);
    if (!out)
        return nb_error_set(err, NB_ERR_NULL, WHERE, "the layout to fill (out) is NULL");
    memset(out, 0, sizeof *out);
    if (!nodes)
        return nb_error_set(err, NB_ERR_NULL, WHERE, "the nodes are NULL");
    if (n < 1 || n > NBT_LAYOUT_MAX)
        return nb_error_set(err, NB_ERR_ARG, WHERE, "%d nodes (a layout takes 1 to %d)", n,
                            NBT_LAYOUT_MAX);
    work w = {0};
    w.nodes = nodes;
    w.n = n;
    nb_status st = read_opts(&w, opts, err);
    if (!st)
        st = check_nodes(&w, err);
    if (!st)
        st = assign_layers(&w, err);
    if (!st)
        st = build(&w, err);
    if (!st) {
        int64_t crossings = order(&w);
        st = coordinates(&w, err);
        if (!st)
            st = emit(&w, crossings, out, err);
    }
    scratch_free(&w);
    return st;
}

void nbt_layout_free(nbt_layout *l)
{
    if (!l)
        return;
    if (l->block_)
        l->alloc_(l->ud_, l->block_, l->block_size_, 0);
    memset(l, 0, sizeof *l);
}
