/* Line charts as SVG: a frame, "nice" ticks on both axes fitted to the
 * data, a light grid, one polyline per series, marked points and a legend
 * sized by its text. Text is XML-escaped. And the writing of picture files
 * (charts, DOT graphs). */

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "../io/file.h"
#include "svg.h"

/* The plot area, the margins above and below it, the fonts' sizes and a
 * legend row's height, in pixels. */
enum { PW = 420, PH = 310, TOP = 40, BOTTOM = 50, FONT = 12, TITLE_FONT = 15, ROW = 18 };
/* A character's width in ems: generous for a sans-serif font (its digits
 * are about 0.64 em wide), so that text sized by it is never clipped. */
#define SVG_CHAR_EM 0.65
/* Most ticks an axis gets (a guard: the fit gives about five). */
#define SVG_MAX_TICKS 64

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

/* The width @p s takes at font size @p size, estimated generously: the
 * characters put_text writes (UTF-8 sequences count once) times
 * SVG_CHAR_EM ems. */
static double text_width(const char *s, double size)
{
    int n = 0;
    for (; s && *s; s++)
        n += (unsigned char)*s >= 0x20 && ((unsigned char)*s & 0xC0) != 0x80;
    return SVG_CHAR_EM * size * n;
}

static double clamp_finite(double v)
{
    return v > DBL_MAX ? DBL_MAX : v < -DBL_MAX ? -DBL_MAX : v;
}

/* A step of 1, 2 or 5 times a power of ten giving about five ticks over a
 * span of 2 * half (half, not the span, so that spans beyond DBL_MAX
 * work). */
static double nice_step(double half)
{
    double raw = half / 2.5, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* The exponents of ten a log axis can reach with nonzero ends. */
enum { SVG_EXP_MIN = -323, SVG_EXP_MAX = 308 };

static void fit_log(svg_axis *a, double min, double max)
{
    double e0 = fmax(floor(log10(min)), SVG_EXP_MIN), e1 = fmin(ceil(log10(max)), SVG_EXP_MAX);
    if (e1 <= e0) { /* within one power of ten: the decades either side */
        e0 = fmax(e0 - 1, SVG_EXP_MIN);
        e1 = fmin(e0 + 2, SVG_EXP_MAX);
    }
    /* a label every k decades, k = 1, 2, 5, 10, ...: at most eight */
    double k = 1;
    for (int i = 0; (e1 - e0) / k > 8; i++)
        k *= i % 3 == 1 ? 2.5 : 2;
    double k0 = ceil(e0 / k), k1 = floor(e1 / k);
    a->lo = pow(10, e0);
    a->hi = pow(10, e1);
    a->first = pow(10, k0 * k);
    a->step = pow(10, k);
    a->n_ticks = (int)(k1 - k0 + 1);
}

/* Is the tick @p t enclosing the data's end @p d within 5 % of the data's
 * span, 2 * @p half, of it? */
static bool tick_close(double d, double t, double half)
{
    return isfinite(t) && fabs(t / 2 - d / 2) <= 0.05 * half;
}

void svg_axis_fit(svg_axis *a, double min, double max, bool log)
{
    memset(a, 0, sizeof *a);
    a->log = log;
    if (!(min <= max) || !isfinite(min) || !isfinite(max) || (log && !(min > 0))) {
        min = log ? 1 : 0; /* no data */
        max = log ? 10 : 1;
    }
    if (log) {
        fit_log(a, min, max);
        return;
    }
    double half = max / 2 - min / 2;
    bool constant = !(half > 0.5e-12 * fmax(fabs(min), fabs(max)));
    if (constant) { /* ±10 % of the value around it, ±1 around 0 */
        double c = min / 2 + max / 2, d = c != 0 ? fabs(c) / 10 : 1;
        min = clamp_finite(c - d);
        max = clamp_finite(c + d);
        half = max / 2 - min / 2;
    }
    /* the enclosing ticks where they are close, else a small pad; the next
     * smaller step when its ticks enclose the data more closely (-5..5 by
     * ones rather than -6..6 by twos) */
    double s = nice_step(half), m = s / pow(10, floor(log10(s) + 1e-9));
    double s2 = s * (m > 4.5 ? 0.4 : 0.5), steps[2] = {s, s2};
    int best = 0, best_fits = -1;
    for (int k = 0; k < 2 && !constant; k++) {
        int fits = tick_close(min, floor(min / steps[k]) * steps[k], half) +
                   tick_close(max, ceil(max / steps[k]) * steps[k], half);
        if (fits > best_fits && (k == 0 || half / steps[k] <= 5)) {
            best = k;
            best_fits = fits;
        }
    }
    s = steps[best];
    double t0 = floor(min / s) * s, t1 = ceil(max / s) * s;
    double pad = constant ? 0 : 0.04 * half; /* a constant's ends are set above */
    a->lo = !constant && tick_close(min, t0, half) ? t0 : clamp_finite(min - pad);
    a->hi = !constant && tick_close(max, t1, half) ? t1 : clamp_finite(max + pad);
    double k0 = ceil(a->lo / s - 1e-9), k1 = floor(a->hi / s + 1e-9);
    a->first = k0 * s;
    a->step = s;
    a->n_ticks = (int)fmax(0, fmin(k1 - k0 + 1, SVG_MAX_TICKS));
}

/* Where v lies on the axis: 0 at lo, 1 at hi. */
static double axis_frac(const svg_axis *a, double v)
{
    if (a->log)
        return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v / 2 - a->lo / 2) / (a->hi / 2 - a->lo / 2);
}

/* Can v be drawn on the axis (finite; positive on a log axis)? */
static bool axis_has(const svg_axis *a, double v)
{
    return isfinite(v) && (!a->log || v > 0);
}

/* Tick i's value, and its label in buf. */
static double axis_tick(const svg_axis *a, int i, char *buf, size_t n)
{
    if (a->log) {
        double e = round(log10(a->first)) + i * round(log10(a->step));
        snprintf(buf, n, "%g", pow(10, e));
        return pow(10, e);
    }
    double v = (round(a->first / a->step) + i) * a->step;
    if (fabs(v) < a->step * 1e-9)
        v = 0.0;
    /* enough significant digits to tell neighbouring ticks apart */
    double big = fmax(fabs(a->lo), fabs(a->hi)) / a->step;
    int digits = (int)fmin(17, fmax(1, ceil(log10(fmax(big, 1))) + 1));
    snprintf(buf, n, "%.*g", digits, v);
    return v;
}

/* The data's extent on two axes: every drawable point of the series and
 * the marks. */
static void data_range(const svg_series *s, int n_series, const svg_opts *o, double *x0, double *x1,
                       double *y0, double *y1)
{
    svg_axis lx = {.log = o->log_x}, ly = {.log = o->log_y}; /* to ask axis_has */
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (int i = 0; i < s[k].n; i++)
            if (axis_has(&lx, s[k].x[i]) && axis_has(&ly, s[k].y[i])) {
                *x0 = fmin(*x0, s[k].x[i]);
                *x1 = fmax(*x1, s[k].x[i]);
                *y0 = fmin(*y0, s[k].y[i]);
                *y1 = fmax(*y1, s[k].y[i]);
            }
    for (int k = 0; k < o->n_marks; k++) {
        if (axis_has(&lx, o->marks[k].x)) {
            *x0 = fmin(*x0, o->marks[k].x);
            *x1 = fmax(*x1, o->marks[k].x);
        }
        if (axis_has(&lx, o->marks[k].x) && axis_has(&ly, o->marks[k].y)) {
            *y0 = fmin(*y0, o->marks[k].y);
            *y1 = fmax(*y1, o->marks[k].y);
        }
    }
}

/* The widest label of an axis's ticks. */
static double ticks_width(const svg_axis *a)
{
    double w = 0;
    char buf[64];
    for (int i = 0; i < a->n_ticks; i++) {
        axis_tick(a, i, buf, sizeof buf);
        w = fmax(w, text_width(buf, FONT));
    }
    return w;
}

/* Half the width of an axis's first (@p last false) or last tick label. */
static double tick_half(const svg_axis *a, bool last)
{
    char buf[64] = "";
    if (a->n_ticks > 0)
        axis_tick(a, last ? a->n_ticks - 1 : 0, buf, sizeof buf);
    return text_width(buf, FONT) / 2;
}

/* The points of series k as polylines, broken where a point cannot be
 * drawn. */
static void put_series(FILE *f, const svg_series *s, const char *colour, const svg_axis *ax,
                       const svg_axis *ay, double left)
{
    bool open = false;
    for (int i = 0; i < s->n; i++) {
        bool ok = axis_has(ax, s->x[i]) && axis_has(ay, s->y[i]);
        if (ok && !open) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"",
                    colour, s->dashed ? " stroke-dasharray=\"6 4\"" : "");
            open = true;
        }
        if (ok)
            fprintf(f, "%.2f,%.2f ", left + axis_frac(ax, s->x[i]) * PW,
                    TOP + (1 - axis_frac(ay, s->y[i])) * PH);
        if (open && (!ok || i == s->n - 1)) {
            fputs("\"/>\n", f);
            open = false;
        }
    }
}

int svg_plot(FILE *f, const char *title, const char *xlabel, const char *ylabel,
             const svg_series *s, int n_series, const svg_opts *o)
{
    const svg_opts none = {0};
    if (!o)
        o = &none;
    double x0, x1, y0, y1;
    data_range(s, n_series, o, &x0, &x1, &y0, &y1);
    svg_axis ax, ay;
    svg_axis_fit(&ax, x0, x1, o->log_x);
    svg_axis_fit(&ay, y0, y1, o->log_y);

    /* the canvas: tick labels left of the plot, the legend right of it,
     * each as wide as its text */
    double left = (ylabel && *ylabel ? 30 : 8) + ticks_width(&ay) + 8;
    left = ceil(fmax(left, tick_half(&ax, false) + 4));
    double right = left + PW, gap = ceil(fmax(16, tick_half(&ax, true) + 6));
    int rows = n_series + o->n_marks + (o->note && *o->note);
    double text_w = 0;
    for (int k = 0; k < n_series; k++)
        text_w = fmax(text_w, text_width(s[k].name, FONT));
    for (int k = 0; k < o->n_marks; k++)
        text_w = fmax(text_w, text_width(o->marks[k].label, FONT));
    double bx = right + gap, bw = ceil(8 + 24 + 8 + text_w + 8), bh = ROW * rows + 8;
    double w = rows ? bx + bw + 10 : right + gap;
    if (o->note && *o->note) { /* a line of its own, from the box's left edge */
        w = fmax(w, bx + 8 + text_width(o->note, FONT) + 18);
        bw = w - 10 - bx;
    }
    w = ceil(fmax(w, text_width(title, TITLE_FONT) + 20));
    double h = fmax(TOP + PH + BOTTOM, TOP + bh + 10);

    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"%d\">\n"
            "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n",
            w, h, w, h, FONT, w, h);
    fprintf(f, "<text x=\"%.1f\" y=\"24\" font-size=\"%d\" text-anchor=\"middle\">", w / 2,
            TITLE_FONT);
    put_text(f, title);
    fputs("</text>\n", f);
    /* grid and ticks; a log axis gets a grid line every decade (at its
     * ticks when it spans more decades than SVG_MAX_TICKS) */
    char buf[64];
    for (int i = 0; i < ax.n_ticks; i++) {
        double px = left + axis_frac(&ax, axis_tick(&ax, i, buf, sizeof buf)) * PW;
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", px,
                TOP + PH + 16, buf);
    }
    for (int i = 0; i < ay.n_ticks; i++) {
        double py = TOP + (1 - axis_frac(&ay, axis_tick(&ay, i, buf, sizeof buf))) * PH;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 6, py + 4,
                buf);
    }
    for (int axis = 0; axis < 2; axis++) {
        const svg_axis *a = axis ? &ay : &ax;
        double e0 = log10(a->lo), e1 = log10(a->hi);
        bool decades = a->log && e1 - e0 < SVG_MAX_TICKS;
        int n = decades ? (int)round(e1 - e0) + 1 : a->n_ticks;
        for (int i = 0; i < n; i++) {
            double t = decades ? (round(e0) + i - e0) / (e1 - e0)
                               : axis_frac(a, axis_tick(a, i, buf, sizeof buf));
            if (axis)
                fprintf(f,
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                        "stroke=\"#e0e0e0\"/>\n",
                        left, TOP + (1 - t) * PH, right, TOP + (1 - t) * PH);
            else
                fprintf(f,
                        "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                        "stroke=\"#e0e0e0\"/>\n",
                        left + t * PW, TOP, left + t * PW, TOP + PH);
        }
    }
    fprintf(f,
            "<rect x=\"%.0f\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"black\"/>\n",
            left, TOP, PW, PH);
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", left + PW / 2.0, TOP + PH + 38);
    put_text(f, xlabel);
    fprintf(f,
            "</text>\n<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 16 %.0f)\">",
            TOP + PH / 2.0, TOP + PH / 2.0);
    put_text(f, ylabel);
    fputs("</text>\n", f);

    /* series, marks, legend */
    for (int k = 0; k < n_series; k++)
        put_series(f, &s[k], colours[k % (int)(sizeof colours / sizeof *colours)], &ax, &ay, left);
    for (int k = 0; k < o->n_marks; k++) {
        const svg_mark *m = &o->marks[k];
        if (!axis_has(&ax, m->x))
            continue;
        double px = left + axis_frac(&ax, m->x) * PW;
        fprintf(f,
                "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#555\" "
                "stroke-dasharray=\"2 3\"/>\n",
                px, TOP, px, TOP + PH);
        if (axis_has(&ay, m->y))
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4\" fill=\"black\"/>\n", px,
                    TOP + (1 - axis_frac(&ay, m->y)) * PH);
    }
    if (rows) {
        fprintf(f,
                "<g id=\"legend\">\n<rect x=\"%.0f\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" "
                "fill=\"white\" stroke=\"#bbb\"/>\n",
                bx, TOP, bw, bh);
        for (int r = 0; r < rows; r++) {
            double ly = TOP + 4 + ROW * r + ROW / 2.0;
            const char *text;
            if (r < n_series) {
                fprintf(f,
                        "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"%s\" "
                        "stroke-width=\"2\"%s/>\n",
                        bx + 8, ly, bx + 32, ly,
                        colours[r % (int)(sizeof colours / sizeof *colours)],
                        s[r].dashed ? " stroke-dasharray=\"6 4\"" : "");
                text = s[r].name;
            } else if (r < n_series + o->n_marks) {
                fprintf(f, "<circle cx=\"%.0f\" cy=\"%.1f\" r=\"4\" fill=\"black\"/>\n", bx + 20,
                        ly);
                text = o->marks[r - n_series].label;
            } else {
                text = o->note;
            }
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">", r < n_series + o->n_marks ? bx + 40 : bx + 8,
                    ly + 4);
            put_text(f, text);
            fputs("</text>\n", f);
        }
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
    return ferror(f) ? -1 : 0;
}

int svg_chart(FILE *f, const char *title, const char *xlabel, const char *ylabel,
              const svg_series *s, int n_series)
{
    return svg_plot(f, title, xlabel, ylabel, s, n_series, NULL);
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

int svg_plot_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                  const svg_series *s, int n_series, const svg_opts *o, char *why, size_t n)
{
    nbio_out *out = picture_open(path, why, n);
    if (!out)
        return -1;
    int rc = svg_plot(nbio_out_file(out), title, xlabel, ylabel, s, n_series, o);
    return picture_close(out, rc == 0, why, n);
}

int svg_chart_file(const char *path, const char *title, const char *xlabel, const char *ylabel,
                   const svg_series *s, int n_series, char *why, size_t n)
{
    return svg_plot_file(path, title, xlabel, ylabel, s, n_series, NULL, why, n);
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
