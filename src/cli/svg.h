/* Line charts as standalone SVG, written directly (no library), and the
 * files of the pictures the commands write (charts and DOT graphs). */
#ifndef NABLA_CLI_SVG_H
#define NABLA_CLI_SVG_H

#include <stdbool.h>
#include <stdio.h>

#include "nabla.h"

/* One line of a chart: n points (x[i], y[i]); non-finite points, and on a
 * log axis points at or below 0, break the line. */
typedef struct svg_series {
    const char *name;
    int n;
    const double *x, *y;
    bool dashed;
} svg_series;

/* A marked point: a dashed vertical line at x, a dot at (x, y) when y can
 * be drawn, and @p label in the legend beside a dot. */
typedef struct svg_mark {
    double x, y;
    const char *label;
} svg_mark;

/* How a chart is drawn beyond its series; zero-initialised: linear axes,
 * no marks, no note. */
typedef struct svg_opts {
    bool log_x, log_y;     /* decades instead of a linear scale */
    const svg_mark *marks; /* n_marks of them */
    int n_marks;
    const char *note; /* a last line of the legend (e.g. how 0 is drawn) */
} svg_opts;

/* One axis fitted to the data: it runs from lo to hi, and its ticks are at
 * first, first + step, ... (n_ticks of them); on a log axis first and step
 * are powers of ten: ticks at 10^(e0), 10^(e0 + k), ... with e0 =
 * log10(first), k = log10(step) decades. */
typedef struct svg_axis {
    double lo, hi, first, step;
    int n_ticks;
    bool log;
} svg_axis;

/* Fit an axis to data in [min, max] (finite, min <= max; on a log axis
 * positive): ticks 1, 2 or 5 times a power of ten, about five of them; the
 * ends are the ticks enclosing the data when those lie within 5 % of the
 * data's span of it, else the data's ends padded by 2 % of the span. A
 * constant (or a span below 1e-12 of the values) gets ±10 % of the value
 * around it (±1 around 0); a log axis runs between the enclosing powers of
 * ten (at least one decade). min > max (no data): the axis [0, 1]. Ends
 * are finite even for data near ±DBL_MAX. */
void svg_axis_fit(svg_axis *a, double min, double max, bool log);

/* Write a chart with axes, ticks, grid and legend to f. The canvas grows
 * to hold the legend (sized by its longest line), the tick labels and the
 * title: no text is clipped. @p o may be NULL. Returns 0, or -1 when
 * writing failed. */
int svg_plot(FILE *f, const char *title, const char *xlabel, const char *ylabel,
             const svg_series *s, int n_series, const svg_opts *o);

/* svg_plot with linear axes and no marks. */
int svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
              const svg_series *s, int n_series);

/* svg_plot into a file, created or replaced as src/io/file.h describes.
 * Returns 0, or -1 with a sentence naming the path in why[0..n). */
int svg_plot_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                  const svg_series *s, int n_series, const svg_opts *o, char *why, size_t n);

/* svg_chart into a file, as svg_plot_file. */
int svg_chart_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const svg_series *s, int n_series, char *why, size_t n);

/* The graph of @p y drawn in Graphviz's DOT language (nb_graph_dot) into a
 * file, as svg_chart_file writes its chart. */
int svg_dot_file(const char *path, nb_graph *g, nb_tensor *y, char *why, size_t n);

#endif
