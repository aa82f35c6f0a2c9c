/* The line charts of the nabla command (src/cli/svg.c): axes fitted to the
 * data, no text outside the canvas or the legend box, and the step sweep
 * of `nabla diff --sweep`. argv[1] is the nabla binary. */

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/cli/svg.h"
#include "tc.h"

static const char *nabla;

/* A character's width in ems that no sans-serif font's average exceeds
 * (digits are about 0.64 em wide): text measured by it is not clipped. */
#define CHAR_EM 0.65

/* ------------------------------------------------------- axis fitting */

/* Is s 1, 2 or 5 times a power of ten? */
static bool nice(double s)
{
    double m = s / pow(10, floor(log10(s)));
    return fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9 || fabs(m - 10) < 1e-9;
}

/* The properties every linear fit of [min, max] has: the data inside, the
 * ends within one tick and within 5 % of the span of the data, nice ticks
 * inside the axis, about five of them. */
static void check_linear(double min, double max)
{
    svg_axis a;
    svg_axis_fit(&a, min, max, false);
    if (!(a.lo <= min && a.hi >= max && isfinite(a.lo) && isfinite(a.hi)))
        fail_msg("[%g, %g]: axis [%g, %g] does not hold the data", min, max, a.lo, a.hi);
    double span = max - min;
    if (min - a.lo > fmin(a.step, 0.05 * span) * (1 + 1e-9) ||
        a.hi - max > fmin(a.step, 0.05 * span) * (1 + 1e-9))
        fail_msg("[%g, %g]: axis [%g, %g] (step %g) runs past the data", min, max, a.lo, a.hi,
                 a.step);
    if (!nice(a.step) || a.n_ticks < 3 || a.n_ticks > 13)
        fail_msg("[%g, %g]: %d ticks of %g", min, max, a.n_ticks, a.step);
    for (int i = 0; i < a.n_ticks; i++) {
        double t = a.first + i * a.step;
        double slack = 1e-9 * a.step + 8 * DBL_EPSILON * fabs(t); /* rounding of t */
        if (t < a.lo - slack || t > a.hi + slack ||
            fabs(t - round(t / a.step) * a.step) > 1e-6 * a.step + slack)
            fail_msg("[%g, %g]: tick %g outside [%g, %g] or off the step %g", min, max, t, a.lo,
                     a.hi, a.step);
    }
}

static void test_axis_linear(void **state)
{
    (void)state;
    svg_axis a;
    /* data on ticks: the axis is the data's range */
    svg_axis_fit(&a, -5, 5, false);
    assert_true(a.lo == -5 && a.hi == 5);
    svg_axis_fit(&a, 0, 1, false);
    assert_true(a.lo == 0 && a.hi == 1);
    check_linear(0.05, 2.3);
    check_linear(-1234, -17);
    check_linear(1e-13, 2e-13); /* tiny, not taken for a constant */
    check_linear(1e-300, 3e-300);
    check_linear(-0.2, 1);
    check_linear(1e6, 1e6 + 3);
    /* many ranges at random */
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    for (int k = 0; k < 20000; k++) {
        double c = (nb_rng_uniform(&rng) * 20 - 10) * pow(10, floor(nb_rng_uniform(&rng) * 12) - 6);
        double span = pow(10, nb_rng_uniform(&rng) * 12 - 6);
        check_linear(c, c + span);
    }
    /* huge ranges keep finite ends */
    svg_axis_fit(&a, -1e308, 1.7e308, false);
    assert_true(isfinite(a.lo) && isfinite(a.hi) && a.lo <= -1e308 && a.hi >= 1.7e308);
    assert_true(a.n_ticks >= 2 && isfinite(a.step));
    svg_axis_fit(&a, -DBL_MAX, DBL_MAX, false);
    assert_true(a.lo == -DBL_MAX && a.hi == DBL_MAX && a.n_ticks >= 2);
    /* a constant: ±10 % around it, ±1 around 0 */
    svg_axis_fit(&a, 3, 3, false);
    tc_near(a.lo, 2.7, 1e-12);
    tc_near(a.hi, 3.3, 1e-12);
    svg_axis_fit(&a, 0, 0, false);
    assert_true(a.lo == -1 && a.hi == 1);
    svg_axis_fit(&a, -2e-200, -2e-200, false);
    assert_true(a.lo < -2e-200 && a.hi > -2e-200 && a.hi - a.lo < 1e-200);
    svg_axis_fit(&a, 1e6, 1e6 + 1e-7, false); /* 1e-13 of the value: a constant */
    assert_true(a.lo < 1e6 && a.hi > 1e6 + 1e-7 && a.n_ticks >= 3);
    svg_axis_fit(&a, DBL_MAX, DBL_MAX, false);
    assert_true(isfinite(a.lo) && a.hi == DBL_MAX);
    /* no data */
    svg_axis_fit(&a, INFINITY, -INFINITY, false);
    assert_true(a.lo == 0 && a.hi == 1);
    svg_axis_fit(&a, NAN, 1, false);
    assert_true(a.lo == 0 && a.hi == 1);
}

static void test_axis_log(void **state)
{
    (void)state;
    svg_axis a;
    svg_axis_fit(&a, 2e-12, 0.05, true);
    assert_true(a.log && a.lo == 1e-12 && a.hi == 0.1);
    assert_true(a.n_ticks >= 3 && a.n_ticks <= 9);
    svg_axis_fit(&a, 1e-16, 0.1, true); /* on decades: the data's range */
    assert_true(a.lo == 1e-16 && a.hi == 0.1);
    svg_axis_fit(&a, 5, 5, true);
    assert_true(a.lo == 1 && a.hi == 10);
    svg_axis_fit(&a, 100, 100, true); /* a decade either side */
    assert_true(a.lo == 10 && a.hi == 1000);
    svg_axis_fit(&a, 4.9e-324, 1e308, true);
    assert_true(a.lo > 0 && isfinite(a.hi) && a.n_ticks >= 2 && a.n_ticks <= 9);
    svg_axis_fit(&a, 0, 1, true); /* no positive data */
    assert_true(a.lo == 1 && a.hi == 10);
    /* within one decade of the data */
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    for (int k = 0; k < 2000; k++) {
        double lo = pow(10, nb_rng_uniform(&rng) * 40 - 20),
               hi = lo * pow(10, nb_rng_uniform(&rng) * 20);
        svg_axis_fit(&a, lo, hi, true);
        if (!(a.lo <= lo && a.lo > lo / 10 * (1 - 1e-12) && a.hi >= hi &&
              a.hi < hi * 10 * (1 + 1e-12)))
            fail_msg("[%g, %g]: log axis [%g, %g]", lo, hi, a.lo, a.hi);
    }
}

/* --------------------------------------------------- reading an SVG */

/* The whole file, NUL-terminated, malloc'd. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *s = malloc(1 << 20);
    assert_non_null(s);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* The number of attribute @p name in the tag starting at @p tag (NAN when
 * the tag has none). */
static double attr(const char *tag, const char *name)
{
    const char *end = strchr(tag, '>');
    char pat[32];
    snprintf(pat, sizeof pat, " %s=\"", name);
    const char *p = strstr(tag, pat);
    return p && p < end ? strtod(p + strlen(pat), NULL) : NAN;
}

static bool has_attr(const char *tag, const char *name)
{
    const char *end = strchr(tag, '>');
    char pat[32];
    snprintf(pat, sizeof pat, " %s=\"", name);
    const char *p = strstr(tag, pat);
    return p && p < end;
}

/* Characters of a text element's content (an entity counts once, a UTF-8
 * sequence once). */
static int text_chars(const char *content)
{
    int n = 0;
    for (const char *p = content; *p && *p != '<'; p++) {
        if (*p == '&') {
            p = strchr(p, ';');
            assert_non_null(p);
        } else if (((unsigned char)*p & 0xC0) == 0x80) {
            continue;
        }
        n++;
    }
    return n;
}

typedef struct box {
    double x0, y0, x1, y1;
} box;

/* The extent of the text element at @p tag, estimated generously. */
static box text_box(const char *tag)
{
    double x = attr(tag, "x"), y = attr(tag, "y"), size = attr(tag, "font-size");
    if (isnan(size))
        size = 12; /* the <svg> element's */
    const char *content = strchr(tag, '>') + 1;
    double w = CHAR_EM * size * text_chars(content);
    const char *anchor = strstr(tag, "text-anchor=\"");
    double x0 = x;
    if (anchor && anchor < content && !strncmp(anchor + 13, "middle", 6))
        x0 = x - w / 2;
    else if (anchor && anchor < content && !strncmp(anchor + 13, "end", 3))
        x0 = x - w;
    return (box){x0, y - size, x0 + w, y + 0.3 * size};
}

static bool inside(box in, box out)
{
    return in.x0 >= out.x0 - 1e-6 && in.x1 <= out.x1 + 1e-6 && in.y0 >= out.y0 - 1e-6 &&
           in.y1 <= out.y1 + 1e-6;
}

/* Every text of the chart in @p path lies in the canvas, and every text of
 * its legend in the legend's box. */
static void check_texts(const char *path)
{
    char *svg = slurp(path);
    const char *root = strstr(svg, "<svg ");
    assert_non_null(root);
    const char *vb = strstr(root, "viewBox=\"");
    assert_non_null(vb);
    double w, h;
    assert_int_equal(sscanf(vb, "viewBox=\"0 0 %lf %lf\"", &w, &h), 2);
    box canvas = {0, 0, w, h};
    const char *legend = strstr(svg, "<g id=\"legend\">"), *legend_end = NULL;
    box lb = canvas;
    if (legend) {
        legend_end = strstr(legend, "</g>");
        const char *r = strstr(legend, "<rect ");
        assert_non_null(r);
        lb = (box){attr(r, "x"), attr(r, "y"), attr(r, "x") + attr(r, "width"),
                   attr(r, "y") + attr(r, "height")};
        assert_true(inside(lb, canvas));
    }
    int n_legend = 0;
    for (const char *t = strstr(svg, "<text "); t; t = strstr(t + 1, "<text ")) {
        if (has_attr(t, "transform"))
            continue; /* the y label, turned */
        box b = text_box(t);
        const char *content = strchr(t, '>') + 1;
        int len = (int)strcspn(content, "<");
        if (!inside(b, canvas))
            fail_msg("%s: \"%.*s\" spans x %.1f..%.1f, y %.1f..%.1f, outside the canvas %gx%g",
                     path, len, content, b.x0, b.x1, b.y0, b.y1, w, h);
        if (legend && t > legend && t < legend_end) {
            n_legend++;
            if (!inside(b, lb))
                fail_msg("%s: legend text \"%.*s\" spans x %.1f..%.1f, outside its box "
                         "%.1f..%.1f",
                         path, len, content, b.x0, b.x1, lb.x0, lb.x1);
        }
    }
    if (!legend)
        fail_msg("%s: no legend box", path);
    assert_true(n_legend >= 2);
    free(svg);
}

/* The plot frame of a chart, and the extent of its polylines' points. */
static void frame_and_data(const char *svg, box *frame, box *data)
{
    const char *f = strstr(svg, "fill=\"none\" stroke=\"black\"");
    assert_non_null(f);
    while (f > svg && strncmp(f, "<rect ", 6) != 0)
        f--;
    *frame = (box){attr(f, "x"), attr(f, "y"), attr(f, "x") + attr(f, "width"),
                   attr(f, "y") + attr(f, "height")};
    *data = (box){INFINITY, INFINITY, -INFINITY, -INFINITY};
    for (const char *p = strstr(svg, "<polyline "); p; p = strstr(p + 1, "<polyline ")) {
        const char *q = strstr(p, "points=\"") + 8;
        double x, y;
        int used;
        while (sscanf(q, "%lf,%lf %n", &x, &y, &used) == 2) {
            data->x0 = fmin(data->x0, x);
            data->x1 = fmax(data->x1, x);
            data->y0 = fmin(data->y0, y);
            data->y1 = fmax(data->y1, y);
            q += used;
        }
    }
}

/* The data of a linear chart fill its frame: each extreme point lies within
 * 5 % of the frame (and a pixel of rounding) of its edge. */
static void check_fitted(const char *path)
{
    char *svg = slurp(path);
    box fr, d;
    frame_and_data(svg, &fr, &d);
    double tx = 0.05 * (fr.x1 - fr.x0) + 1, ty = 0.05 * (fr.y1 - fr.y0) + 1;
    if (d.x0 - fr.x0 > tx || fr.x1 - d.x1 > tx || d.y0 - fr.y0 > ty || fr.y1 - d.y1 > ty)
        fail_msg("%s: the data span x %.1f..%.1f, y %.1f..%.1f in a frame x %.1f..%.1f, y "
                 "%.1f..%.1f: the axes run past the data",
                 path, d.x0, d.x1, d.y0, d.y1, fr.x0, fr.x1, fr.y0, fr.y1);
    if (d.x0 < fr.x0 - 1 || d.x1 > fr.x1 + 1 || d.y0 < fr.y0 - 1 || d.y1 > fr.y1 + 1)
        fail_msg("%s: the data leave the frame", path);
    free(svg);
}

static bool have_xmllint(void)
{
    static int have = -1;
    if (have < 0) {
        have = system("command -v xmllint >/dev/null 2>&1") == 0;
        if (!have)
            fprintf(stderr, "test_svg: xmllint not found: SVGs not validated\n");
    }
    return have;
}

static void check_xml(const char *path)
{
    if (!have_xmllint())
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
    if (system(cmd) != 0)
        fail_msg("%s is not well-formed XML", path);
}

static tc_run_result *run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", nabla, args);
    return tc_run(cmd);
}

/* ------------------------------------------------------------ charts */

/* nabla plot activations: legends (the longest name is "d/dx
 * swish-learned") and every other text in the canvas, axes on the data. */
static void test_plot_activations(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-svg-XXXXXX", cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "plot activations --out %s", dir);
    tc_run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    char paths[64][256];
    int n = 0;
    for (char *p = r->out, *e; (e = strchr(p, '\n')) && n < 64; p = e + 1)
        snprintf(paths[n++], sizeof paths[0], "%.*s", (int)(e - p), p);
    assert_true(n >= 17);
    bool swish = false;
    for (int k = 0; k < n; k++) {
        swish = swish || strstr(paths[k], "swish-learned") != NULL;
        if (!strstr(paths[k], "binary-step")) /* a jump: its data reach the frame anyway */
            check_fitted(paths[k]);
        check_texts(paths[k]);
        check_xml(paths[k]);
        remove(paths[k]);
    }
    assert_true(swish);
    rmdir(dir);
}

/* Charts of awkward data: NaN and infinite points, a single point, a
 * constant, long names, huge values, a log axis with zeros; each
 * well-formed, with finite coordinates and every text inside. */
static void test_awkward_charts(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-svg-XXXXXX", path[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/c.svg", dir);
    double x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {NAN, 2, INFINITY, -3, 4, 5};
    double one[1] = {7}, c[6] = {2, 2, 2, 2, 2, 2}, huge[6] = {-1e308, 1e308, 0, 1, 2, 1.7e308};
    double pos[6] = {0, 1e-3, 1e-2, 0, 1, 10};
    double wide[6] = {5e-324, 1e-100, 1, 1e100, 1e300, DBL_MAX};
    const char *long_name = "a series name long enough to need a wide legend, ünïcödé";
    svg_series sets[][2] = {
        {{"undefined points", 6, x, y, false}, {long_name, 1, one, one, true}},
        {{"constant", 6, x, c, false}, {"one point", 1, one, one, true}},
        {{"huge", 6, x, huge, false}, {"x huge", 6, huge, x, true}},
        {{"log, zeros", 6, x, pos, false}, {"<&\"> escaped", 6, pos, x, true}},
        {{"all decades", 6, wide, wide, false}, {"and some", 6, pos, wide, true}},
    };
    svg_mark m = {3, 1e-2, "a mark"};
    char why[512];
    for (int k = 0; k < 5; k++) {
        svg_opts o = {
            .log_x = k == 4, .log_y = k >= 3, .marks = &m, .n_marks = 1, .note = "a note"};
        if (svg_plot_file(path, "a chart", "x", "y", sets[k], 2, &o, why, sizeof why) != 0)
            fail_msg("%s", why);
        check_xml(path);
        check_texts(path);
        char *svg = slurp(path);
        if (strstr(svg, "nan") || strstr(svg, "inf"))
            fail_msg("chart %d: a coordinate is not a plain finite number:\n%s", k, svg);
        free(svg);
    }
    /* an unwritable path */
    svg_series s = {"s", 6, x, c, false};
    assert_int_equal(svg_plot_file(dir, "t", "x", "y", &s, 1, NULL, why, sizeof why), -1);
    assert_non_null(strstr(why, dir));
    remove(path);
    rmdir(dir);
}

/* ------------------------------------------------------- diff --sweep */

/* The sweep's table in r->out: h, central and forward errors. */
static int sweep_rows(const char *out, double *h, double *cen, double *fwd)
{
    const char *p = strstr(out, "\nh          central    forward");
    assert_non_null(p);
    p = strchr(p + 1, '\n') + 1;
    int n = 0;
    while (sscanf(p, "%lf %lf %lf", &h[n], &cen[n], &fwd[n]) == 3) {
        n++;
        p = strchr(p, '\n') + 1;
    }
    return n;
}

static void test_diff_sweep(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-sweep-XXXXXX", path[256], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sweep.svg", dir);
    snprintf(cmd, sizeof cmd, "diff 'sin(x)' --at x=1 --sweep %s", path);
    tc_run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    double h[128], cen[128], fwd[128];
    int n = sweep_rows(r->out, h, cen, fwd);
    assert_int_equal(n, 61);
    tc_near(h[0], 0.1, 1e-12);
    tc_near(h[n - 1] / 1e-16, 1, 1e-2);
    int best = 0, best_f = 0;
    for (int j = 0; j < n; j++) {
        best = cen[j] < cen[best] ? j : best;
        best_f = fwd[j] < fwd[best_f] ? j : best_f;
    }
    /* the V: an interior minimum, both ends orders of magnitude above it */
    if (!(h[best] <= 1e-3 && h[best] >= 1e-8))
        fail_msg("central differences are best at h = %g", h[best]);
    assert_true(cen[0] > 1000 * cen[best] && cen[n - 1] > 1000 * cen[best]);
    assert_true(fwd[best_f] > 100 * cen[best]); /* forward: h, not h^2 */
    assert_true(h[best_f] < h[best] && h[best_f] >= 1e-10);
    /* truncation: central falls like h^2 at large h, forward like h */
    tc_near(log10(cen[0] / cen[4]), 2, 0.05);
    tc_near(log10(fwd[0] / fwd[4]), 1, 0.05);
    /* the marked step is the numerical column's */
    double step = NAN;
    const char *s = strstr(r->out, "nabla's step h = ");
    assert_non_null(s);
    step = strtod(s + 17, NULL);
    tc_near(step / cbrt(DBL_EPSILON), 1, 1e-2);
    check_xml(path);
    check_texts(path);
    char *svg = slurp(path);
    assert_non_null(strstr(svg, "<circle "));
    assert_non_null(strstr(svg, "nabla's step h = 6.06e-06"));
    free(svg);

    /* JSON: the same sweep */
    snprintf(cmd, sizeof cmd, "diff 'sin(x)' --at x=1 --sweep %s --json", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    const char *c = strstr(r->out, "\"sweep_central\": [");
    assert_non_null(c);
    c += 18;
    for (int j = 0; j < n; j++) {
        char *end;
        double v = strtod(c, &end);
        if (fabs(v - cen[j]) > 1e-3 * cen[j])
            fail_msg("JSON sweep_central[%d] = %g, the table %g", j, v, cen[j]);
        c = end + strspn(end, ", ");
    }
    assert_int_equal(*c, ']');
    assert_non_null(strstr(r->out, "\"step\": "));

    /* steps scale with |x| as nabla's own does: the same V at x = 1000 */
    snprintf(cmd, sizeof cmd, "diff 'sin(x/1000)' --at x=1000 --sweep %s", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_int_equal(sweep_rows(r->out, h, cen, fwd), n);
    tc_near(h[0], 100, 1e-9);
    best = 0;
    for (int j = 0; j < n; j++)
        best = cen[j] < cen[best] ? j : best;
    assert_true(h[best] <= 1 && h[best] >= 1e-5);
    assert_true(cen[0] > 1000 * cen[best] && cen[n - 1] > 1000 * cen[best]);
    assert_non_null(strstr(r->out, "nabla's step h = 0.00606"));
    /* where no error is a number (sqrt(x - h) at 0): none is least */
    snprintf(cmd, sizeof cmd, "diff 'sqrt(x)' --at x=0 --sweep %s", path);
    r = run(cmd);
    assert_int_equal(r->status, 1); /* numerical is NaN, the others inf */
    assert_non_null(strstr(r->out, "least error: central none, forward inf at h = 0.1"));
    check_xml(path);

    /* errors of 0 (central differences of x^2 at 0) are drawn at a floor
     * the legend names */
    snprintf(cmd, sizeof cmd, "diff 'x^2' --at x=0 --sweep %s", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    n = sweep_rows(r->out, h, cen, fwd);
    int zeros = 0;
    for (int j = 0; j < n; j++)
        zeros += cen[j] == 0;
    assert_true(zeros > 0);
    svg = slurp(path);
    assert_non_null(strstr(svg, "an error of 0 is drawn at "));
    free(svg);
    check_texts(path);
    check_xml(path);

    /* points where f is undefined (ln at x - h < 0) break the line */
    snprintf(cmd, sizeof cmd, "diff 'ln(x)' --at x=0.05 --sweep %s --json", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "\"sweep_central\": [null"));
    check_xml(path);
    check_texts(path);
    remove(path);
    rmdir(dir);
}

/* Bad input to --sweep: one line naming what is wrong, exit 2, no file
 * left behind and an existing one intact. */
static void test_diff_sweep_errors(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-sweep-XXXXXX", path[256], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/keep.svg", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("mine\n", f);
    fclose(f);

    /* a directory */
    snprintf(cmd, sizeof cmd, "diff 'sin(x)' --at x=1 --sweep %s", dir);
    tc_run_result *r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, dir));
    assert_string_equal(r->out, "");
    /* a directory that does not exist */
    r = run("diff 'sin(x)' --at x=1 --sweep /nonexistent-dir/s.svg");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "/nonexistent-dir/s.svg"));
    /* a bad expression: the message without --sweep */
    r = run("diff 'sin(x' --at x=1");
    char want[4096];
    snprintf(want, sizeof want, "%s", r->err);
    int want_status = r->status;
    snprintf(cmd, sizeof cmd, "diff 'sin(x' --at x=1 --sweep %s", path);
    r = run(cmd);
    assert_int_equal(r->status, want_status);
    assert_string_equal(r->err, want);
    /* two variables and no --wrt */
    snprintf(cmd, sizeof cmd, "diff 'x*y' --at x=1,y=2 --sweep %s", path);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "--sweep: one variable at a time"));
    assert_non_null(strstr(r->err, "--wrt"));
    /* the file given is left as it was */
    char *kept = slurp(path);
    assert_string_equal(kept, "mine\n");
    free(kept);
    /* --wrt picks the variable */
    snprintf(cmd, sizeof cmd, "diff 'x*y' --at x=1,y=2 --wrt y --sweep %s", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "step sweep of df/dy"));
    remove(path);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_svg PATH-OF-NABLA\n");
        return 2;
    }
    nabla = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_axis_linear),      cmocka_unit_test(test_axis_log),
        cmocka_unit_test(test_plot_activations), cmocka_unit_test(test_awkward_charts),
        cmocka_unit_test(test_diff_sweep),       cmocka_unit_test(test_diff_sweep_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
