/* Line charts as SVG: a frame, "nice" ticks on both axes, a light grid,
 * one polyline per series and a legend. Text is XML-escaped. And the
 * writing of picture files (charts, DOT graphs). */

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../io/file.h"
#include "svg.h"

enum { W = 640, H = 400, LEFT = 70, RIGHT = 150, TOP = 40, BOTTOM = 50 };

static const char *colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                "#9467bd", "#8c564b", "#e377c2", "#17becf"};

static void put_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, f);
        }
    }
}

/* A step of 1, 2 or 5 times a power of ten giving about five ticks. */
static double nice_step(double span)
{
    double raw = span / 5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

int svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
              const svg_series *s, int n_series)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].x[i]) && isfinite(s[k].y[i])) {
                x0 = fmin(x0, s[k].x[i]);
                x1 = fmax(x1, s[k].x[i]);
                y0 = fmin(y0, s[k].y[i]);
                y1 = fmax(y1, s[k].y[i]);
            }
    if (!(x0 <= x1)) { /* nothing to draw: an empty frame */
        x0 = y0 = 0;
        x1 = y1 = 1;
    }
    if (x1 - x0 < 1e-12 * fmax(1, fabs(x0))) {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if (y1 - y0 < 1e-12 * fmax(1, fabs(y0))) {
        y0 -= 0.5;
        y1 += 0.5;
    }
    double xs = nice_step(x1 - x0), ys = nice_step(y1 - y0);
    x0 = floor(x0 / xs) * xs;
    x1 = ceil(x1 / xs) * xs;
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    const double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
#define PX(v) (LEFT + ((v)-x0) / (x1 - x0) * pw)
#define PY(v) (TOP + (y1 - (v)) / (y1 - y0) * ph)

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
            W, H, W, H, W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">", W / 2);
    put_text(f, title);
    fputs("</text>\n", f);
    /* grid and ticks */
    for (double v = x0; v <= x1 + xs / 2; v += xs) {
        double px = PX(v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>\n", px,
                TOP, px, H - BOTTOM);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px,
                H - BOTTOM + 16, fabs(v) < xs * 1e-9 ? 0.0 : v);
    }
    for (double v = y0; v <= y1 + ys / 2; v += ys) {
        double py = PY(v);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>\n", LEFT,
                py, W - RIGHT, py);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 6, py + 4,
                fabs(v) < ys * 1e-9 ? 0.0 : v);
    }
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            LEFT, TOP, pw, ph);
    fprintf(f, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">", LEFT + pw / 2, H - 12);
    put_text(f, xlabel);
    fprintf(f,
            "</text>\n<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 16 %.0f)\">",
            TOP + ph / 2, TOP + ph / 2);
    put_text(f, ylabel);
    fputs("</text>\n", f);
    /* series and legend */
    for (int k = 0; k < n_series; k++) {
        const char *colour = colours[k % (int)(sizeof colours / sizeof *colours)];
        bool open = false;
        for (int i = 0; i < s[k].n; i++) {
            bool ok = isfinite(s[k].x[i]) && isfinite(s[k].y[i]);
            if (ok && !open) {
                fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                        colour, s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
                open = true;
            }
            if (ok)
                fprintf(f, "%.2f,%.2f ", PX(s[k].x[i]), PY(s[k].y[i]));
            if (open && (!ok || i == s[k].n - 1)) {
                fputs("\"/>\n", f);
                open = false;
            }
        }
        int ly = TOP + 10 + 20 * k;
        fprintf(f,
                "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                "stroke-width=\"2\"%s/>\n",
                W - RIGHT + 10, ly, W - RIGHT + 34, ly, colour,
                s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
        fprintf(f, "<text x=\"%d\" y=\"%d\">", W - RIGHT + 40, ly + 4);
        put_text(f, s[k].name);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
    return ferror(f) ? -1 : 0;
}

/* A picture file opened for writing, or NULL with a sentence in why. */
static nbio_out *picture_open(const char *path, char *why, size_t n)
{
    nbio_out *o = NULL;
    return nbio_out_open(path, NULL, NULL, &o, why, n) == NB_OK ? o : NULL;
}

/* Commit it when @p written, else remove what was written: 0, or -1 with a
 * sentence in why. */
static int picture_close(nbio_out *o, bool written, char *why, size_t n)
{
    return nbio_out_commit(o, written ? 0 : EIO, why, n) == NB_OK ? 0 : -1;
}

int svg_chart_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const svg_series *s, int n_series, char *why, size_t n)
{
    nbio_out *o = picture_open(path, why, n);
    if (!o)
        return -1;
    int rc = svg_chart(nbio_out_file(o), title, xlabel, ylabel, s, n_series);
    return picture_close(o, rc == 0, why, n);
}

int svg_dot_file(const char *path, nb_graph *g, nb_tensor *y, char *why, size_t n)
{
    nbio_out *o = picture_open(path, why, n);
    if (!o)
        return -1;
    FILE *f = nbio_out_file(o);
    nb_status st = nb_graph_dot(g, y, f);
    return picture_close(o, st == NB_OK && !ferror(f), why, n);
}
