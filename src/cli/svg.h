/* Line charts as standalone SVG, written directly (no library). */
#ifndef NABLA_CLI_SVG_H
#define NABLA_CLI_SVG_H

#include <stdbool.h>
#include <stdio.h>

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

/* The same into a file (created or replaced); -1 with errno set on failure. */
int svg_chart_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const svg_series *s, int n_series);

#endif
