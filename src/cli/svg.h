/* Line charts as standalone SVG, written directly (no library), and the
 * files of the pictures the commands write (charts and DOT graphs). */
#ifndef NABLA_CLI_SVG_H
#define NABLA_CLI_SVG_H

#include <stdbool.h>
#include <stdio.h>

#include "nabla.h"

/* One line of a chart: n points (x[i], y[i]); non-finite points break the
 * line. */
typedef struct svg_series {
    const char *name;
    int n;
    const double *x, *y;
    bool dashed;
} svg_series;

/* Write a chart with axes, ticks, grid and legend to f. Returns 0, or -1
 * when writing failed. */
int svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
              const svg_series *s, int n_series);

/* The same into a file, created or replaced as src/io/file.h describes.
 * Returns 0, or -1 with a sentence naming the path in why[0..n). */
int svg_chart_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const svg_series *s, int n_series, char *why, size_t n);

/* The graph of @p y drawn in Graphviz's DOT language (nb_graph_dot) into a
 * file, as svg_chart_file writes its chart. */
int svg_dot_file(const char *path, nb_graph *g, nb_tensor *y, char *why, size_t n);

#endif
