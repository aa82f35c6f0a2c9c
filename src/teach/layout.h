/* A layered layout of a small DAG for the teaching pictures (prefix nbt_):
 * pure geometry, no drawing. The graph flows left to right: every node is
 * a box in a column (a layer), every input an edge drawn as a polyline
 * from the right side of the input's box to the left side of the node's
 * box.
 *
 *  - Layers: the longest path from a source, then the last node (the
 *    output) moved to the rightmost column and every source not marked
 *    pin_left moved to just left of its first consumer (a constant sits
 *    beside its use, not in column 0).
 *  - An edge that spans several columns gets a virtual point in each
 *    column it passes, placed like a thin box, so it runs between boxes.
 *  - The order inside each column: from the given order (boxes by index),
 *    a depth-first and a breadth-first order and a few shuffled ones (a
 *    fixed seed; fewer starts on larger graphs), barycenter sweeps down
 *    and up with adjacent swaps, then sifting (each item moved to its best
 *    place); the order with the fewest edge crossings met is kept
 *    (crossings counted exactly, nbt_crossings).
 *  - y: each column placed as close as its separations allow to the mean
 *    height of its neighbours (an exact weighted least-squares fit per
 *    column, alternating directions; chains and long edges pull harder),
 *    then a box with a single input moved level with it where its column
 *    leaves room; x: columns as wide as their widest box, a gap apart. Edges leave and enter at
 * points spread over the box's side, in the order of the boxes at the other end, so edges that meet
 * at one box do not cross; two inputs from one node (x*x) are two polylines.
 *  - Every diagonal piece of an edge lies in the gap between two columns;
 *    inside a column an edge runs level, beside the boxes. So no edge
 *    passes through a box and x grows strictly along every polyline.
 *
 * Same input, same output (no randomness, every sort has a tie-break).
 * Time about O(sweeps * segments * log) for the order and O(passes *
 * segments) for y, where segments counts an edge once per column it
 * crosses. */
#ifndef NABLA_TEACH_LAYOUT_H
#define NABLA_TEACH_LAYOUT_H

#include "nabla/base.h"

/** Most nodes nbt_layout_run accepts. */
#define NBT_LAYOUT_MAX 5000
/** Most edge segments (an edge counts once per column gap it crosses). */
#define NBT_LAYOUT_MAX_SEGMENTS 2000000

/** One node: its inputs (earlier nodes) and its box size in px. */
typedef struct nbt_node {
    int n_in;      /**< number of inputs (>= 0) */
    const int *in; /**< n_in indices of earlier nodes (in[i] < own index); may repeat */
    double w, h;   /**< box width and height (finite, >= 0) */
    bool pin_left; /**< a source kept in column 0 (a graph input) instead of beside its
                        first consumer; ignored for nodes with inputs */
} nbt_node;

typedef struct nbt_point {
    double x, y;
} nbt_point;

/** One edge per (node, input slot): from the input node to the node. */
typedef struct nbt_edge {
    int from, to, slot;
    int first_pt, n_pts; /**< the polyline: pts[first_pt .. first_pt + n_pts), at least 2
                              points, x strictly increasing; the first on the right side of
                              from's box, the last on the left side of to's box */
} nbt_edge;

/** Options; zero-initialised fields take the defaults. */
typedef struct nbt_layout_opts {
    double layer_gap;  /**< horizontal gap between columns (default 48) */
    double node_gap;   /**< vertical gap between boxes of a column (default 24) */
    double edge_gap;   /**< distance between edge lines passing a column, and most distance
                            between the ends of edges on a box side (default 8) */
    double margin;     /**< around the picture (default 16) */
    nb_alloc_fn alloc; /**< allocation hook (default nb_default_alloc) */
    void *ud;          /**< its user data */
} nbt_layout_opts;

/** A finished layout. Coordinates in px, origin top left, y down. */
typedef struct nbt_layout {
    int n;                /**< nodes, as given */
    int n_layers;         /**< columns */
    nbt_point *centre;    /**< [n] box centres */
    int *layer;           /**< [n] column, 0 leftmost; the last node is in the last column */
    int *rank;            /**< [n] place among the nodes of its column, 0 at the top */
    int *first_edge;      /**< [n] the edges of node v are edges[first_edge[v] + slot] */
    int n_edges;          /**< sum of n_in */
    nbt_edge *edges;      /**< [n_edges] node by node, slot by slot */
    int n_pts;            /**< points of all polylines */
    nbt_point *pts;       /**< [n_pts] */
    int64_t n_crossings;  /**< pairs of edges that cross (between columns) */
    double width, height; /**< the picture: every box and point inside, margins included */
    /* private: the one block that holds the arrays */
    void *block_;
    size_t block_size_;
    nb_alloc_fn alloc_;
    void *ud_;
} nbt_layout;

/**
 * Lay out @p n nodes in topological order (every input is an earlier
 * node). @p opts may be NULL (defaults). On success fills @p out (free it
 * with nbt_layout_free) and returns NB_OK. On bad input returns
 * NB_ERR_NULL (nodes, out, or a node's in with n_in > 0, is NULL) or
 * NB_ERR_ARG (n outside 1..NBT_LAYOUT_MAX, n_in < 0, an input that is not
 * an earlier node, a box size or option that is negative or not finite,
 * more than NBT_LAYOUT_MAX_SEGMENTS edge segments), and NB_ERR_NOMEM when
 * an allocation fails; then @p err (may be NULL) says what and which node,
 * and *out is all zero (nbt_layout_free accepts it).
 */
nb_status nbt_layout_run(const nbt_node *nodes, int n, const nbt_layout_opts *opts, nbt_layout *out,
                         nb_error *err);

/** Free the arrays of @p l and zero it (NULL and a zeroed layout are accepted). */
void nbt_layout_free(nbt_layout *l);

/**
 * Crossings between two adjacent columns: segment i joins place upper[i]
 * (0 <= upper[i] < n_upper) of the left column to place lower[i] (0 <=
 * lower[i] < n_lower) of the right one; two segments cross when their
 * places are in strictly opposite order at the two ends (segments that
 * share an end do not cross). @p buf holds nbt_crossings_work(...) ints.
 * O(n_seg log n_lower + n_upper + n_lower).
 */
int64_t nbt_crossings(int n_seg, const int *upper, const int *lower, int n_upper, int n_lower,
                      int *buf);
/** Ints of work nbt_crossings needs. */
size_t nbt_crossings_work(int n_seg, int n_upper, int n_lower);

#endif
