/* The layered DAG layout of the teaching pictures (white box,
 * src/teach/layout.h): the crossing count against a brute-force count;
 * on every graph laid out, boxes apart, layers along the edges, polylines
 * left to right that pass beside every box, and the reported crossings
 * equal to the crossings of the drawn polylines; the notes' logistic
 * graph; graphs whose given order has crossings against their optimum;
 * an input used twice, parallel edges, several sinks, lone nodes; a
 * random 200-node DAG, the same twice; every bad input and every failed
 * allocation. */

#include "tc.h"

#include "../src/teach/layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof *(a))
#define EPS 1e-9

/* ------------------------------------------------------------ helpers */

static int64_t brute_crossings(int m, const int *up, const int *lo)
{
    int64_t c = 0;
    for (int i = 0; i < m; i++)
        for (int j = i + 1; j < m; j++)
            c += (up[i] < up[j] && lo[i] > lo[j]) || (up[i] > up[j] && lo[i] < lo[j]);
    return c;
}

static int64_t crossings_of(int m, const int *up, const int *lo, int nu, int nl)
{
    int *buf = malloc(nbt_crossings_work(m, nu, nl) * sizeof *buf);
    assert_non_null(buf);
    int64_t c = nbt_crossings(m, up, lo, nu, nl, buf);
    free(buf);
    return c;
}

typedef struct seg {
    nbt_point a, b;
    int edge;
} seg;

static double orient(nbt_point a, nbt_point b, nbt_point c)
{
    return (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x);
}

/* Do the segments cross at a point inside both (not at an end)? */
static bool proper_cross(seg s, seg t)
{
    double o1 = orient(s.a, s.b, t.a), o2 = orient(s.a, s.b, t.b);
    double o3 = orient(t.a, t.b, s.a), o4 = orient(t.a, t.b, s.b);
    return ((o1 > 0 && o2 < 0) || (o1 < 0 && o2 > 0)) && ((o3 > 0 && o4 < 0) || (o3 < 0 && o4 > 0));
}

/* Does segment p-q enter the inside of the box (the box shrunk by EPS)? */
static bool enters_box(nbt_point p, nbt_point q, nbt_point c, double w, double h)
{
    double x0 = c.x - w / 2 + EPS, x1 = c.x + w / 2 - EPS;
    double y0 = c.y - h / 2 + EPS, y1 = c.y + h / 2 - EPS;
    if (x0 >= x1 || y0 >= y1)
        return false;
    double t0 = 0, t1 = 1, d[2] = {q.x - p.x, q.y - p.y};
    double lo[2] = {x0 - p.x, y0 - p.y}, hi[2] = {x1 - p.x, y1 - p.y};
    for (int k = 0; k < 2; k++) {
        if (d[k] == 0) {
            if (lo[k] >= 0 || hi[k] <= 0)
                return false;
            continue;
        }
        double a = lo[k] / d[k], b = hi[k] / d[k];
        if (a > b) {
            double t = a;
            a = b;
            b = t;
        }
        t0 = a > t0 ? a : t0;
        t1 = b < t1 ? b : t1;
    }
    return t0 < t1;
}

/* Every promise of layout.h on one layout of nodes[0..n) with node gap
 * gap; returns the crossings of the drawn polylines (equal to the ones
 * reported). */
static int64_t check_layout(const nbt_node *nd, int n, const nbt_layout *l, double gap)
{
    assert_int_equal(l->n, n);
    assert_true(l->n_layers >= 1);
    assert_int_equal(l->layer[n - 1], l->n_layers - 1);
    int ne = 0;
    for (int v = 0; v < n; v++) {
        assert_int_equal(l->first_edge[v], ne);
        ne += nd[v].n_in;
        assert_true(l->layer[v] >= 0 && l->layer[v] < l->n_layers);
        for (int i = 0; i < nd[v].n_in; i++)
            assert_true(l->layer[nd[v].in[i]] < l->layer[v]);
        nbt_point c = l->centre[v];
        assert_true(c.x - nd[v].w / 2 >= -EPS && c.x + nd[v].w / 2 <= l->width + EPS);
        assert_true(c.y - nd[v].h / 2 >= -EPS && c.y + nd[v].h / 2 <= l->height + EPS);
    }
    assert_int_equal(l->n_edges, ne);
    /* boxes apart; a column's boxes node_gap apart, ranked top down */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double dx = fabs(l->centre[i].x - l->centre[j].x);
            double dy = fabs(l->centre[i].y - l->centre[j].y);
            assert_false(dx < (nd[i].w + nd[j].w) / 2 && dy < (nd[i].h + nd[j].h) / 2);
            if (l->layer[i] != l->layer[j]) {
                assert_true(dx > 0);
                continue;
            }
            assert_true(dy >= (nd[i].h + nd[j].h) / 2 + gap - 1e-6);
            assert_int_equal(l->rank[i] < l->rank[j], l->centre[i].y < l->centre[j].y);
        }
    /* polylines */
    int total = 0;
    for (int e = 0; e < l->n_edges; e++)
        total += l->edges[e].n_pts - 1;
    seg *segs = malloc((size_t)(total ? total : 1) * sizeof *segs);
    assert_non_null(segs);
    int ns = 0, next_pt = 0;
    for (int v = 0; v < n; v++)
        for (int i = 0; i < nd[v].n_in; i++) {
            int e = l->first_edge[v] + i, u = nd[v].in[i];
            const nbt_edge *ed = &l->edges[e];
            assert_int_equal(ed->from, u);
            assert_int_equal(ed->to, v);
            assert_int_equal(ed->slot, i);
            assert_int_equal(ed->first_pt, next_pt);
            assert_true(ed->n_pts >= 2);
            next_pt += ed->n_pts;
            assert_true(next_pt <= l->n_pts);
            const nbt_point *p = l->pts + ed->first_pt;
            nbt_point a = p[0], b = p[ed->n_pts - 1];
            tc_near(a.x, l->centre[u].x + nd[u].w / 2, EPS);
            assert_true(fabs(a.y - l->centre[u].y) <= nd[u].h / 2 + EPS);
            tc_near(b.x, l->centre[v].x - nd[v].w / 2, EPS);
            assert_true(fabs(b.y - l->centre[v].y) <= nd[v].h / 2 + EPS);
            for (int k = 0; k < ed->n_pts; k++) {
                assert_true(p[k].x >= 0 && p[k].x <= l->width && p[k].y >= 0 &&
                            p[k].y <= l->height);
                if (k > 0) {
                    assert_true(p[k].x > p[k - 1].x);
                    segs[ns++] = (seg){p[k - 1], p[k], e};
                }
                /* no point inside a box; no piece through one */
                for (int o = 0; o < n; o++) {
                    if (o != u && o != v)
                        assert_false(fabs(p[k].x - l->centre[o].x) < nd[o].w / 2 - EPS &&
                                     fabs(p[k].y - l->centre[o].y) < nd[o].h / 2 - EPS);
                    if (k > 0)
                        assert_false(enters_box(p[k - 1], p[k], l->centre[o], nd[o].w, nd[o].h));
                }
            }
        }
    assert_int_equal(next_pt, l->n_pts);
    int64_t drawn = 0;
    for (int i = 0; i < ns; i++)
        for (int j = i + 1; j < ns; j++)
            if (segs[i].edge != segs[j].edge && segs[i].a.x < segs[j].b.x &&
                segs[j].a.x < segs[i].b.x)
                drawn += proper_cross(segs[i], segs[j]);
    free(segs);
    assert_int_equal(drawn, l->n_crossings);
    return drawn;
}

/* Lay out, check every promise, return the crossings. */
static int64_t lay_out(const nbt_node *nd, int n, nbt_layout *l)
{
    nb_error err;
    nb_status st = nbt_layout_run(nd, n, NULL, l, &err);
    if (st != NB_OK)
        fail_msg("layout failed: %s", err.msg);
    assert_int_equal(err.status, NB_OK);
    return check_layout(nd, n, l, 24);
}

/* A box of the usual size, its inputs given. */
static nbt_node box(int n_in, const int *in)
{
    return (nbt_node){n_in, in, 60, 30, false};
}

static nbt_node input(void)
{
    return (nbt_node){0, NULL, 40, 30, true};
}

/* ------------------------------------------------------------ crossings */

static void test_crossings_count(void **state)
{
    (void)state;
    /* two segments: crossing, parallel, sharing an end */
    int up[] = {0, 1}, lo[] = {1, 0};
    assert_int_equal(crossings_of(2, up, lo, 2, 2), 1);
    int lo2[] = {0, 1};
    assert_int_equal(crossings_of(2, up, lo2, 2, 2), 0);
    int up3[] = {0, 0, 1}, lo3[] = {1, 0, 0};
    assert_int_equal(crossings_of(3, up3, lo3, 2, 2), 1);
    /* complete bipartite K(3,3): C(3,2)^2 in any order */
    int ku[9], kl[9];
    for (int i = 0; i < 9; i++)
        ku[i] = i / 3, kl[i] = (i * 2) % 3;
    assert_int_equal(crossings_of(9, ku, kl, 3, 3), 9);
    assert_int_equal(crossings_of(0, NULL, NULL, 0, 0), 0);
    /* random sets, repeated segments and ties included */
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int trial = 0; trial < 200; trial++) {
        int nu = 1 + (int)nb_rng_below(&rng, 9), nl = 1 + (int)nb_rng_below(&rng, 9);
        int m = (int)nb_rng_below(&rng, 40);
        int u[40], d[40];
        for (int i = 0; i < m; i++) {
            u[i] = (int)nb_rng_below(&rng, (uint64_t)nu);
            d[i] = (int)nb_rng_below(&rng, (uint64_t)nl);
        }
        assert_int_equal(crossings_of(m, u, d, nu, nl), brute_crossings(m, u, d));
    }
}

/* ------------------------------------------------------------ graphs */

/* f(x; w, b) = 1/(exp(-(w x + b)) + 1) as the notes draw it. */
static void test_logistic(void **state)
{
    (void)state;
    enum { X, W, B, H1, H2, ONE, H3, H4, H5, H6, N };
    static const int h1[] = {W, X}, h2[] = {H1, B}, h3[] = {H2}, h4[] = {H3}, h5[] = {H4, ONE},
                     h6[] = {ONE, H5};
    nbt_node nd[N] = {[X] = input(),     [W] = input(),        [B] = input(),     [H1] = box(2, h1),
                      [H2] = box(2, h2), [ONE] = box(0, NULL), [H3] = box(1, h3), [H4] = box(1, h4),
                      [H5] = box(2, h5), [H6] = box(2, h6)};
    nbt_layout l;
    assert_int_equal(lay_out(nd, N, &l), 0);
    assert_int_equal(l.layer[X], 0);
    assert_int_equal(l.layer[W], 0);
    assert_int_equal(l.layer[B], 0);
    assert_int_equal(l.layer[H1], 1);
    const int chain[] = {H1, H2, H3, H4, H5, H6};
    for (size_t k = 1; k < COUNT(chain); k++)
        assert_true(l.layer[chain[k]] > l.layer[chain[k - 1]]);
    assert_int_equal(l.layer[H6], l.n_layers - 1);
    /* the constant sits just left of its first use, not in column 0 */
    assert_int_equal(l.layer[ONE], l.layer[H5] - 1);
    /* h3 = neg(h2) and h4 = exp(h3) run level with h2 */
    tc_near(l.centre[H3].y, l.centre[H2].y, 1e-6);
    tc_near(l.centre[H4].y, l.centre[H3].y, 1e-6);
    assert_true(l.width > 0 && l.height > 0);
    nbt_layout_free(&l);
    assert_null(l.centre);
    nbt_layout_free(&l); /* a zeroed layout */
    nbt_layout_free(NULL);
}

/* Crossings of the given order (boxes by index in each column) of a
 * two-column graph: sources 0..ns-1, then the rest. */
static int64_t given_order_crossings(const nbt_node *nd, int ns, int n)
{
    int up[64], lo[64], m = 0;
    for (int v = ns; v < n; v++)
        for (int i = 0; i < nd[v].n_in; i++, m++)
            up[m] = nd[v].in[i], lo[m] = v - ns;
    return crossings_of(m, up, lo, ns, n - ns);
}

/* The next permutation of p[0..n) in lexicographic order; false after
 * the last. */
static bool next_permutation(int *p, int n)
{
    int k = n - 2;
    while (k >= 0 && p[k] >= p[k + 1])
        k--;
    if (k < 0)
        return false;
    int j = n - 1;
    while (p[j] <= p[k])
        j--;
    int t = p[k];
    p[k] = p[j], p[j] = t;
    for (int a = k + 1, b = n - 1; a < b; a++, b--)
        t = p[a], p[a] = p[b], p[b] = t;
    return true;
}

/* The fewest crossings over every order of both columns (brute force). */
static int64_t optimum_crossings(const nbt_node *nd, int ns, int n)
{
    int pu[8], pl[8], nt = n - ns;
    for (int i = 0; i < ns; i++)
        pu[i] = i;
    int64_t best = INT64_MAX;
    for (;;) {
        for (int i = 0; i < nt; i++)
            pl[i] = i;
        for (;;) {
            int up[64], lo[64], m = 0;
            for (int v = ns; v < n; v++)
                for (int i = 0; i < nd[v].n_in; i++, m++)
                    up[m] = pu[nd[v].in[i]], lo[m] = pl[v - ns];
            int64_t c = brute_crossings(m, up, lo);
            best = c < best ? c : best;
            if (!next_permutation(pl, nt))
                break;
        }
        if (!next_permutation(pu, ns))
            break;
    }
    return best;
}

static void test_order_reaches_optimum(void **state)
{
    (void)state;
    nbt_layout l;
    /* swapped pair: c uses b, d uses a */
    {
        static const int c[] = {1}, d[] = {0};
        nbt_node nd[] = {input(), input(), box(1, c), box(1, d)};
        assert_int_equal(given_order_crossings(nd, 2, 4), 1);
        assert_int_equal(lay_out(nd, 4, &l), 0);
        nbt_layout_free(&l);
    }
    /* a ladder in shuffled order: a path, so no crossing is needed */
    {
        static const int t0[] = {3, 4}, t1[] = {0, 1}, t2[] = {4, 5}, t3[] = {1, 2}, t4[] = {2, 3};
        nbt_node nd[] = {input(),    input(),    input(),    input(),    input(),   input(),
                         box(2, t0), box(2, t1), box(2, t2), box(2, t3), box(2, t4)};
        assert_true(given_order_crossings(nd, 6, 11) > 0);
        assert_int_equal(lay_out(nd, 11, &l), 0);
        nbt_layout_free(&l);
    }
    /* complete bipartite: K(2,2) crosses once, K(3,3) nine times, in any order */
    {
        static const int ab[] = {0, 1}, abc[] = {0, 1, 2};
        nbt_node k22[] = {input(), input(), box(2, ab), box(2, ab)};
        assert_int_equal(lay_out(k22, 4, &l), 1);
        nbt_layout_free(&l);
        nbt_node k33[] = {input(), input(), input(), box(3, abc), box(3, abc), box(3, abc)};
        assert_int_equal(lay_out(k33, 6, &l), 9);
        nbt_layout_free(&l);
    }
    /* random two-column graphs: the optimum, found by trying every order */
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    int at_optimum = 0, trials = 100;
    for (int trial = 0; trial < trials; trial++) {
        enum { NS = 5, NT = 5 };
        int in[NT][3];
        nbt_node nd[NS + NT];
        for (int v = 0; v < NS; v++)
            nd[v] = input();
        for (int t = 0; t < NT; t++) {
            int k = 1 + (int)nb_rng_below(&rng, 3);
            for (int i = 0; i < k; i++)
                in[t][i] = (int)nb_rng_below(&rng, NS);
            nd[NS + t] = box(k, in[t]);
        }
        int64_t given = given_order_crossings(nd, NS, NS + NT);
        int64_t best = optimum_crossings(nd, NS, NS + NT);
        int64_t got = lay_out(nd, NS + NT, &l);
        nbt_layout_free(&l);
        assert_true(got >= best);
        assert_true(got <= given);
        at_optimum += got == best;
    }
    print_message("random 5+5 graphs at the optimum: %d of %d\n", at_optimum, trials);
    assert_true(at_optimum >= trials * 95 / 100);
}

/* x*x next to x and three columns away: two polylines each, apart. */
static void test_input_used_twice(void **state)
{
    (void)state;
    static const int sq[] = {0, 0}, c1[] = {0}, c2[] = {2}, c3[] = {3}, y[] = {0, 4, 0};
    nbt_node nd[] = {input(), box(2, sq), box(1, c1), box(1, c2), box(1, c3), box(3, y)};
    nbt_layout l;
    assert_int_equal(lay_out(nd, 6, &l), 0);
    /* node, and the two slots that use node 0 */
    const int twice[][3] = {{1, 0, 1}, {5, 0, 2}};
    for (size_t k = 0; k < COUNT(twice); k++) {
        const nbt_edge *a = &l.edges[l.first_edge[twice[k][0]] + twice[k][1]];
        const nbt_edge *b = &l.edges[l.first_edge[twice[k][0]] + twice[k][2]];
        assert_int_equal(a->from, 0);
        assert_int_equal(b->from, 0);
        assert_int_equal(a->n_pts, b->n_pts);
        for (int i = 0; i < a->n_pts; i++) {
            nbt_point p = l.pts[a->first_pt + i], q = l.pts[b->first_pt + i];
            tc_near(p.x, q.x, EPS);
            assert_true(fabs(p.y - q.y) >= 1); /* distinct lines all along */
        }
    }
    /* the long pair passes the three middle columns */
    assert_int_equal(l.layer[5] - l.layer[0], 4);
    nbt_layout_free(&l);
}

/* Parallel edges, several sinks, lone nodes, one node, boxes of size 0. */
static void test_odd_shapes(void **state)
{
    (void)state;
    nbt_layout l;
    static const int p[] = {0, 1, 0, 1, 0}, s1[] = {2}, s2[] = {2, 0};
    nbt_node nd[] = {input(), box(0, NULL), box(5, p), box(1, s1), box(0, NULL), box(2, s2)};
    lay_out(nd, 6, &l);
    /* the lone node 4 (no inputs, no uses) stays in column 0; source 1,
     * not pinned, beside its use */
    assert_int_equal(l.layer[4], 0);
    assert_int_equal(l.layer[1], l.layer[2] - 1);
    /* the five ends on node 2's side are spread inside the box */
    for (int i = 0; i < 5; i++) {
        const nbt_edge *e = &l.edges[l.first_edge[2] + i];
        for (int j = 0; j < i; j++) {
            const nbt_edge *f = &l.edges[l.first_edge[2] + j];
            assert_true(fabs(l.pts[e->first_pt + e->n_pts - 1].y -
                             l.pts[f->first_pt + f->n_pts - 1].y) > 1);
        }
    }
    nbt_layout_free(&l);

    nbt_node one[] = {box(0, NULL)};
    lay_out(one, 1, &l);
    assert_int_equal(l.n_layers, 1);
    assert_int_equal(l.n_edges, 0);
    assert_null(l.edges);
    tc_near(l.width, 16 + 60 + 16, EPS);
    tc_near(l.height, 16 + 30 + 16, EPS);
    nbt_layout_free(&l);

    /* all boxes of size 0: points; lone last node moves to the last column */
    static const int z1[] = {0}, z2[] = {1, 0};
    nbt_node zero[] = {
        {0, NULL, 0, 0, true}, {1, z1, 0, 0, false}, {2, z2, 0, 0, false}, {0, NULL, 0, 0, false}};
    lay_out(zero, 4, &l);
    assert_int_equal(l.layer[3], l.n_layers - 1);
    nbt_layout_free(&l);

    /* options: wider gaps give a larger picture with the same order */
    nbt_layout wide;
    nbt_layout_opts o = {.layer_gap = 100, .node_gap = 50, .edge_gap = 4, .margin = 5};
    nb_error err;
    assert_int_equal(nbt_layout_run(nd, 6, &o, &wide, &err), NB_OK);
    check_layout(nd, 6, &wide, 50);
    lay_out(nd, 6, &l);
    assert_true(wide.width > l.width);
    for (int v = 0; v < 6; v++)
        assert_int_equal(wide.rank[v], l.rank[v]);
    tc_near(wide.width - l.width, (l.n_layers - 1) * (100 - 48) + 2 * (5 - 16), 1e-6);
    nbt_layout_free(&wide);
    nbt_layout_free(&l);
}

/* A random DAG: mostly near inputs, some far (long edges). */
static nbt_node *random_dag(int n, uint64_t seed, int **in_out)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nbt_node *nd = calloc((size_t)n, sizeof *nd);
    int *in = calloc((size_t)n * 3, sizeof *in);
    assert_true(nd && in);
    for (int v = 0; v < n; v++) {
        int k = v == 0 ? 0 : (int)nb_rng_below(&rng, 4);
        for (int i = 0; i < k; i++) {
            uint64_t near = (uint64_t)(v < 6 ? v : 6);
            in[3 * v + i] = nb_rng_uniform(&rng) < 0.8 ? v - 1 - (int)nb_rng_below(&rng, near)
                                                       : (int)nb_rng_below(&rng, (uint64_t)v);
        }
        nd[v] = (nbt_node){k, in + 3 * v, 30 + (double)nb_rng_below(&rng, 50),
                           16 + (double)nb_rng_below(&rng, 20), nb_rng_below(&rng, 2) == 0};
    }
    *in_out = in;
    return nd;
}

static void test_random_dag(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        int *in;
        nbt_node *nd = random_dag(200, seed, &in);
        nbt_layout a, b;
        lay_out(nd, 200, &a);
        assert_int_equal(nbt_layout_run(nd, 200, NULL, &b, NULL), NB_OK);
        /* same input, same output */
        assert_int_equal(a.n_pts, b.n_pts);
        assert_int_equal(a.n_crossings, b.n_crossings);
        assert_memory_equal(a.centre, b.centre, 200 * sizeof *a.centre);
        assert_memory_equal(a.layer, b.layer, 3 * 200 * sizeof *a.layer);
        assert_memory_equal(a.edges, b.edges, (size_t)a.n_edges * sizeof *a.edges);
        assert_memory_equal(a.pts, b.pts, (size_t)a.n_pts * sizeof *a.pts);
        assert_true(a.width == b.width && a.height == b.height);
        nbt_layout_free(&a);
        nbt_layout_free(&b);
        free(nd);
        free(in);
    }
}

/* The largest graph taken: a chain of NBT_LAYOUT_MAX nodes. */
static void test_largest(void **state)
{
    (void)state;
    int n = NBT_LAYOUT_MAX;
    nbt_node *nd = calloc((size_t)n, sizeof *nd);
    int *in = calloc((size_t)n, sizeof *in);
    assert_true(nd && in);
    for (int v = 0; v < n; v++) {
        in[v] = v - 1;
        nd[v] = (nbt_node){v > 0, in + v, 10, 10, false};
    }
    nbt_layout l;
    assert_int_equal(nbt_layout_run(nd, n, NULL, &l, NULL), NB_OK);
    assert_int_equal(l.n_layers, n);
    assert_int_equal(l.n_crossings, 0);
    for (int v = 1; v < n; v++)
        tc_near(l.centre[v].y, l.centre[0].y, 1e-9);
    nbt_layout_free(&l);
    free(nd);
    free(in);
}

/* ------------------------------------------------------------ bad input */

static void expect_error(const nbt_node *nd, int n, const nbt_layout_opts *o, nb_status want,
                         const char *says)
{
    nbt_layout l;
    memset(&l, 0xab, sizeof l);
    nb_error err;
    nb_status st = nbt_layout_run(nd, n, o, &l, &err);
    assert_int_equal(st, want);
    assert_int_equal(err.status, want);
    assert_string_equal(err.where, "nbt_layout_run");
    if (!strstr(err.msg, says))
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, says);
    nbt_layout zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&l, &zero, sizeof l);
    /* without an error record, the same status */
    memset(&l, 0xab, sizeof l);
    assert_int_equal(nbt_layout_run(nd, n, o, &l, NULL), want);
    nbt_layout_free(&l);
}

static void test_bad_input(void **state)
{
    (void)state;
    static const int ok_in[] = {0}, self[] = {1}, later[] = {2}, neg[] = {-1};
    nbt_node good[] = {input(), box(1, ok_in)};
    nb_error err;
    assert_int_equal(nbt_layout_run(good, 2, NULL, NULL, &err), NB_ERR_NULL);
    assert_non_null(strstr(err.msg, "(out) is NULL"));
    expect_error(NULL, 2, NULL, NB_ERR_NULL, "nodes are NULL");
    expect_error(good, 0, NULL, NB_ERR_ARG, "0 nodes (a layout takes 1 to 5000)");
    expect_error(good, -3, NULL, NB_ERR_ARG, "-3 nodes");
    expect_error(good, NBT_LAYOUT_MAX + 1, NULL, NB_ERR_ARG, "5001 nodes");

    nbt_node bad[2] = {input(), box(1, ok_in)};
    bad[1].n_in = -1;
    expect_error(bad, 2, NULL, NB_ERR_ARG, "node 1: n_in is -1");
    bad[1] = box(1, NULL);
    expect_error(bad, 2, NULL, NB_ERR_NULL, "node 1: in is NULL with n_in 1");
    bad[1] = box(1, self);
    expect_error(bad, 2, NULL, NB_ERR_ARG,
                 "node 1: input 1 (slot 0) is not an earlier node (nodes come in topological "
                 "order: expected 0..0)");
    bad[1] = box(1, later);
    expect_error(bad, 2, NULL, NB_ERR_ARG, "input 2 (slot 0) is not an earlier node");
    bad[1] = box(1, neg);
    expect_error(bad, 2, NULL, NB_ERR_ARG, "input -1 (slot 0)");
    bad[0] = box(1, ok_in);
    expect_error(bad, 2, NULL, NB_ERR_ARG,
                 "node 0: input 0 (slot 0) is not an earlier node "
                 "(nodes come in topological order: node 0 has no "
                 "earlier node)");
    const double sizes[][2] = {{-1, 10}, {10, -0.5}, {NAN, 10}, {10, INFINITY}, {2e6, 10}};
    for (size_t k = 0; k < COUNT(sizes); k++) {
        bad[0] = input();
        bad[1] = box(1, ok_in);
        bad[1].w = sizes[k][0];
        bad[1].h = sizes[k][1];
        expect_error(bad, 2, NULL, NB_ERR_ARG, "node 1: box size");
    }
    const double vals[] = {-1, 0.5, NAN, INFINITY, 2e6};
    const char *names[] = {"layer_gap", "node_gap", "edge_gap", "margin"};
    for (size_t k = 0; k < COUNT(vals); k++)
        for (int f = 0; f < 4; f++) {
            nbt_layout_opts o = {0};
            double *field[] = {&o.layer_gap, &o.node_gap, &o.edge_gap, &o.margin};
            *field[f] = vals[k];
            char says[64];
            snprintf(says, sizeof says, "option %s is", names[f]);
            expect_error(good, 2, &o, NB_ERR_ARG, says);
        }

    /* too many edges, and edges that pass too many columns */
    int big = NBT_LAYOUT_MAX_SEGMENTS + 1;
    int *many = calloc((size_t)big, sizeof *many);
    assert_non_null(many);
    nbt_node fan[] = {input(), box(big, many)};
    expect_error(fan, 2, NULL, NB_ERR_ARG, "more than 2000000 edges up to node 1");
    free(many);
    int n = 2100;
    nbt_node *nd = calloc((size_t)n, sizeof *nd);
    int *in = calloc(2 * (size_t)n, sizeof *in);
    assert_true(nd && in);
    nd[0] = input();
    for (int v = 1; v < n; v++) {
        in[2 * v] = v - 1; /* a chain, and every node also uses node 0 */
        nd[v] = box(v > 1 ? 2 : 1, in + 2 * v);
    }
    expect_error(nd, n, NULL, NB_ERR_ARG, "pass more than 2000000 columns in all");
    free(nd);
    free(in);
}

/* Every allocation that fails gives NB_ERR_NOMEM, a zeroed layout and no
 * leak. */
static void test_alloc_failure(void **state)
{
    (void)state;
    int *in;
    nbt_node *nd = random_dag(40, 5, &in);
    tc_counting c = {0};
    nbt_layout_opts o = {.alloc = tc_counting_alloc, .ud = &c};
    nbt_layout l;
    assert_int_equal(nbt_layout_run(nd, 40, &o, &l, NULL), NB_OK);
    check_layout(nd, 40, &l, 24);
    long calls = c.calls;
    assert_true(calls > 10);
    assert_int_equal(c.live, 1); /* the layout is one block */
    nbt_layout_free(&l);
    assert_int_equal(c.live, 0);
    nbt_layout zero;
    memset(&zero, 0, sizeof zero);
    for (long k = 1; k <= calls; k++) {
        c = (tc_counting){.fail_at = k};
        nb_error err;
        memset(&l, 0xab, sizeof l);
        assert_int_equal(nbt_layout_run(nd, 40, &o, &l, &err), NB_ERR_NOMEM);
        assert_string_equal(err.msg, "out of memory laying out 40 nodes");
        assert_memory_equal(&l, &zero, sizeof l);
        assert_int_equal(c.live, 0);
    }
    free(nd);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crossings_count),
        cmocka_unit_test(test_logistic),
        cmocka_unit_test(test_order_reaches_optimum),
        cmocka_unit_test(test_input_used_twice),
        cmocka_unit_test(test_odd_shapes),
        cmocka_unit_test(test_random_dag),
        cmocka_unit_test(test_largest),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
