/* The trace drawn: the graph laid out by layout.c as SVG (a still picture
 * of one sweep, for slides), and an HTML page that steps through the
 * evaluation and both sweeps (the same SVG inline, numbers filled in by a
 * small script from the trace embedded as JSON). */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "trace.h"

#define CHAR_W 7.8 /* px per character of the 13 px monospace font */
#define LINE_H 17.0
#define PAD 8.0

/* ------------------------------------------------------------- text */

static void put_xml(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

/* characters (not bytes) of UTF-8 text */
static int text_len(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* numbers of a node, short: "0.5", "[0.29, -0.6]", "[0.29, -0.6, …] (6)" */
static void short_nums(char *buf, size_t n, const double *v, int m)
{
    char b[40];
    if (m == 1) {
        snprintf(buf, n, "%s", nbt_num(b, sizeof b, v[0], 6));
        return;
    }
    size_t len = (size_t)snprintf(buf, n, "[");
    int shown = m < 3 ? m : 3;
    for (int i = 0; i < shown && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "",
                                nbt_num(b, sizeof b, v[i], 4));
    if (len < n)
        snprintf(buf + len, n - len, m > shown ? ", \u2026] (%d)" : "]", m);
}

/* the first line of a node's box: "h2 = h1 + b", "w", "1" */
static void title_of(const nb_trace *tr, int k, char *buf, size_t n)
{
    const nbt_tnode *nd = &tr->nodes[k];
    if (nd->kind == NBT_OP)
        snprintf(buf, n, "%s = %s", nd->label, nd->text);
    else
        snprintf(buf, n, "%s", nd->label);
}

/* ----------------------------------------------------------- layout */

static double box_lines(const nbt_tnode *nd)
{
    return nd->kind == NBT_CONST ? 1 : 3;
}

/* widest text a box shows in any mode */
static double box_width(const nb_trace *tr, int k)
{
    const nbt_tnode *nd = &tr->nodes[k];
    char b[256];
    title_of(tr, k, b, sizeof b);
    int w = text_len(b);
    if (nd->kind != NBT_CONST) {
        short_nums(b, sizeof b, tr->value + tr->off[k], nd->m);
        w = w > text_len(b) + 2 ? w : text_len(b) + 2;
        /* "ḡ = " or "ṫ = " and numbers of the same length class */
        w = w > text_len(b) + 6 ? w : text_len(b) + 6;
        if (nd->m > 1)
            w = w > 24 ? w : 24;
        else
            w = w > 13 ? w : 13;
    }
    return w * CHAR_W + 2 * PAD;
}

static nb_status lay_out(const nb_trace *tr, nbt_layout *l, nb_error *err, const char *where)
{
    if (tr->n > NB_TRACE_MAX_DRAWN)
        return nb_error_set(err, NB_ERR_ARG, where,
                            "%s: the graph has %d tensors, more than a picture can show "
                            "readably (%d); draw it with nb_graph_dot (nabla trace --dot) instead",
                            where, tr->n, NB_TRACE_MAX_DRAWN);
    nbt_node *nodes = calloc((size_t)tr->n, sizeof *nodes);
    if (!nodes)
        return nb_error_set(err, NB_ERR_NOMEM, where, "%s: out of memory", where);
    for (int k = 0; k < tr->n; k++) {
        nodes[k].n_in = tr->nodes[k].n_in;
        nodes[k].in = tr->nodes[k].in;
        nodes[k].w = box_width(tr, k);
        nodes[k].h = box_lines(&tr->nodes[k]) * LINE_H + PAD;
        nodes[k].pin_left = tr->nodes[k].kind == NBT_INPUT;
    }
    nbt_layout_opts o = {.layer_gap = 44, .node_gap = 20, .margin = 12};
    nb_status rc = nbt_layout_run(nodes, tr->n, &o, l, err);
    free(nodes);
    return rc;
}

/* ------------------------------------------------------------- SVG */

static const char *svg_style =
    "text{font:13px monospace;fill:#1b1b1b}"
    ".box{fill:#fff;stroke:#555;stroke-width:1.2}"
    ".input .box{fill:#e8f1fb;stroke:#2b6cb0}"
    ".const .box{fill:#f3f3f3;stroke:#aaa}"
    ".const text{fill:#777}"
    ".edge{fill:none;stroke:#888;stroke-width:1.3}"
    ".local{font-size:11px;fill:#666}"
    ".val{fill:#333}"
    ".tan{fill:#1f5fbf}"
    ".adj{fill:#b8321f}"
    ".cur .box{stroke:#d97706;stroke-width:3}"
    ".cur.edge,.edge.cur{stroke:#d97706;stroke-width:3}"
    ".done .box{fill:#fffbea}"
    ".off{opacity:.25}";

/* where an edge's label goes: the middle of its first piece */
static nbt_point edge_mid(const nbt_layout *l, int e)
{
    const nbt_point *p = l->pts + l->edges[e].first_pt;
    nbt_point m = {(p[0].x + p[1].x) / 2, (p[0].y + p[1].y) / 2 - 3};
    return m;
}

typedef struct view {
    int mode; /* 0 values, 1 forward, 2 reverse */
    int sweep;
    bool page; /* ids and empty number lines for the page's script */
} view;

static void svg_picture(const nb_trace *tr, const nbt_layout *l, FILE *f, const view *v)
{
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"graph\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" role=\"img\">\n",
            l->width, l->height, l->width, l->height);
    fprintf(f, "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" "
               "markerUnits=\"userSpaceOnUse\" markerWidth=\"9\" markerHeight=\"9\" orient=\"auto\"><path d=\"M0,0L8,4L0,8z\" "
               "fill=\"#888\"/></marker></defs>\n");
    if (!v->page)
        fprintf(f, "<style>%s</style>\n", svg_style);
    char b[320], nums[256];
    for (int e = 0; e < l->n_edges; e++) {
        const nbt_edge *ed = &l->edges[e];
        fprintf(f, "<polyline class=\"edge\" id=\"e%d\" marker-end=\"url(#arrow)\" points=\"", e);
        for (int i = 0; i < ed->n_pts; i++) {
            nbt_point p = l->pts[ed->first_pt + i];
            fprintf(f, "%s%.1f,%.1f", i ? " " : "", p.x, p.y);
        }
        fprintf(f, "\"/>\n");
        const nbt_tnode *to = &tr->nodes[ed->to], *from = &tr->nodes[ed->from];
        bool show = v->page || (v->mode != 0 && to->active && from->active);
        if (!show)
            continue;
        nbt_point m = edge_mid(l, e);
        fprintf(f, "<text class=\"local\" id=\"l%d\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", e,
                m.x, m.y);
        if (!v->page && to->m == 1 && from->m == 1) {
            nbt_num(b, sizeof b, to->jac[ed->slot][0], 4);
            put_xml(f, b);
        } else if (!v->page) {
            fputs("J", f);
        }
        fprintf(f, "</text>\n");
    }
    for (int k = 0; k < tr->n; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        double w = box_width(tr, k), h = box_lines(nd) * LINE_H + PAD;
        double x = l->centre[k].x - w / 2, y = l->centre[k].y - h / 2;
        fprintf(f, "<g class=\"node %s\" id=\"n%d\"><rect class=\"box\" x=\"%.1f\" y=\"%.1f\" "
                   "width=\"%.1f\" height=\"%.1f\" rx=\"6\"/>\n",
                nd->kind == NBT_INPUT ? "input" : nd->kind == NBT_CONST ? "const" : "op", k, x, y, w,
                h);
        title_of(tr, k, b, sizeof b);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + PAD, y + PAD / 2 + LINE_H - 4);
        put_xml(f, b);
        fprintf(f, "</text>\n");
        if (nd->kind != NBT_CONST) {
            short_nums(nums, sizeof nums, tr->value + tr->off[k], nd->m);
            fprintf(f, "<text class=\"val\" id=\"v%d\" x=\"%.1f\" y=\"%.1f\">", k, x + PAD,
                    y + PAD / 2 + 2 * LINE_H - 4);
            if (!v->page) {
                fputs("= ", f);
                put_xml(f, nums);
            }
            fprintf(f, "</text>\n<text class=\"%s\" id=\"d%d\" x=\"%.1f\" y=\"%.1f\">",
                    v->mode == 1 ? "tan" : "adj", k, x + PAD, y + PAD / 2 + 3 * LINE_H - 4);
            if (!v->page && v->mode == 1 && nd->active) {
                short_nums(nums, sizeof nums,
                           tr->tangent + (size_t)v->sweep * (size_t)tr->total + tr->off[k], nd->m);
                fputs("\u1e6b = ", f);
                put_xml(f, nums);
            } else if (!v->page && v->mode == 2 && nd->active) {
                short_nums(nums, sizeof nums, tr->adjoint + tr->off[k], nd->m);
                fputs("\u1e21 = ", f);
                put_xml(f, nums);
            }
            fprintf(f, "</text>\n");
        }
        fprintf(f, "</g>\n");
    }
    fprintf(f, "</svg>\n");
}

nb_status nb_trace_svg(const nb_trace *tr, FILE *f, nb_trace_mode mode, int sweep, nb_error *err)
{
    nb_error_clear(err);
    if (!tr || !f)
        return nb_error_set(err, NB_ERR_NULL, "nb_trace_svg", "nb_trace_svg: %s is NULL",
                            !tr ? "the trace" : "the file");
    if (mode != NB_TRACE_VALUES && mode != NB_TRACE_FORWARD && mode != NB_TRACE_REVERSE)
        return nb_error_set(err, NB_ERR_ARG, "nb_trace_svg", "nb_trace_svg: mode %d is not one of "
                            "nb_trace_mode's values", (int)mode);
    if (mode == NB_TRACE_FORWARD && (sweep < 0 || sweep >= tr->sweeps))
        return nb_error_set(err, NB_ERR_ARG, "nb_trace_svg",
                            "nb_trace_svg: forward sweep %d is not in 0..%d", sweep,
                            tr->sweeps - 1);
    nbt_layout l;
    nb_status rc = lay_out(tr, &l, err, "nb_trace_svg");
    if (rc != NB_OK)
        return rc;
    view v = {(int)mode, sweep, false};
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    svg_picture(tr, &l, f, &v);
    nbt_layout_free(&l);
    return nbt_finish(f, err, "nb_trace_svg");
}

/* ------------------------------------------------------------ HTML */

#include "nabla_trace_page.h" /* nbt_page_style, nbt_page_script (embed.py) */

static void put_lines(FILE *f, const char *const *lines)
{
    for (; *lines; lines++)
        fputs(*lines, f);
}

/* Nothing on the page may be fetched: the policy lets the browser load
 * nothing but the page's own inline style and script. */
static const char *nbt_page_head =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";

static const char *nbt_page_controls =
    "<div id=\"controls\"><button id=\"b-eval\">evaluate</button>"
    "<button id=\"b-forward\">forward mode</button><select id=\"wrt\"></select>"
    "<button id=\"b-reverse\">reverse mode</button>"
    "<button id=\"b-prev\">&#8592; step</button><button id=\"b-next\">step &#8594;</button>"
    "<span>keys: <kbd>&#8592;</kbd> <kbd>&#8594;</kbd> step, <kbd>e</kbd> <kbd>f</kbd> "
    "<kbd>r</kbd> mode, <kbd>&#8593;</kbd> <kbd>&#8595;</kbd> input</span></div>\n"
    "<p id=\"status\"></p><p id=\"cost\"></p>\n";

/* the lines a printer writes, as a JSON array of strings (blank lines left out) */
static nb_status rows_json(FILE *f, void (*print)(const nb_trace *, FILE *, int),
                           const nb_trace *tr, int arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return NB_ERR_NOMEM;
    print(tr, m, arg);
    if (fclose(m) != 0) {
        free(buf);
        return NB_ERR_NOMEM;
    }
    fputc('[', f);
    bool first = true;
    for (char *line = buf, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (!*line)
            continue;
        fprintf(f, first ? "" : ",");
        first = false;
        nbt_json_str(f, line);
        if (!end)
            break;
    }
    fputc(']', f);
    free(buf);
    return NB_OK;
}

static nb_status page_data(const nb_trace *tr, const nbt_layout *l, FILE *f, const char *title)
{
    fprintf(f, "{\"title\":");
    nbt_json_str(f, title ? title : "");
    fprintf(f, ",\"nodes\":[");
    char b[320];
    for (int k = 0; k < tr->n; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        fprintf(f, "%s\n{\"label\":", k ? "," : "");
        nbt_json_str(f, nd->label);
        fprintf(f, ",\"kind\":\"%s\",\"text\":",
                nd->kind == NBT_INPUT ? "input" : nd->kind == NBT_CONST ? "const" : "op");
        title_of(tr, k, b, sizeof b);
        nbt_json_str(f, b);
        fprintf(f, ",\"active\":%s,\"m\":%d,\"value\":", nd->active ? "true" : "false", nd->m);
        nbt_json_nums(f, tr->value + tr->off[k], nd->m, false);
        fprintf(f, ",\"in\":[");
        for (int i = 0; i < nd->n_in; i++)
            fprintf(f, "%s%d", i ? "," : "", nd->in[i]);
        fprintf(f, "],\"edges\":[");
        for (int i = 0; i < nd->n_in; i++)
            fprintf(f, "%s%d", i ? "," : "", l->first_edge[k] + i);
        fprintf(f, "],\"jac\":[");
        for (int i = 0; i < nd->n_in; i++) {
            fprintf(f, i ? "," : "");
            if (nd->active && tr->nodes[nd->in[i]].active)
                nbt_json_nums(f, nd->jac[i], nd->m * tr->nodes[nd->in[i]].m, false);
            else
                fprintf(f, "null");
        }
        fprintf(f, "],\"adjoint\":");
        nbt_json_nums(f, tr->adjoint + tr->off[k], nd->m, false);
        fprintf(f, ",\"tangent\":[");
        for (int s = 0; s < tr->sweeps; s++) {
            fprintf(f, s ? "," : "");
            nbt_json_nums(f, tr->tangent + (size_t)s * (size_t)tr->total + tr->off[k], nd->m,
                          false);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "],\n\"sweeps\":[");
    for (int s = 0; s < tr->sweeps; s++) {
        fprintf(f, s ? "," : "");
        nbt_json_str(f, nbt_sweep_name(tr, s, b, sizeof b));
    }
    fprintf(f, "],\n\"steps\":[");
    for (int s = 0; s < tr->n_steps; s++) {
        const nbt_step *st = &tr->steps[s];
        fprintf(f, "%s\n{\"from\":%d,\"to\":%d,\"slot\":%d,\"edge\":%d,\"contrib\":", s ? "," : "",
                st->from, st->to, st->slot, l->first_edge[st->from] + st->slot);
        nbt_json_nums(f, st->contrib, tr->nodes[st->to].m, false);
        fprintf(f, ",\"after\":");
        nbt_json_nums(f, st->after, tr->nodes[st->to].m, false);
        fprintf(f, "}");
    }
    fprintf(f, "],\n\"rows\":{\"eval\":");
    nb_status rc = rows_json(f, nbt_print_eval, tr, 0);
    fprintf(f, ",\"forward\":[");
    for (int s = 0; s < tr->sweeps && rc == NB_OK; s++) {
        fprintf(f, s ? "," : "");
        rc = rows_json(f, nbt_print_forward, tr, s);
    }
    fprintf(f, "],\"reverse\":");
    if (rc == NB_OK)
        rc = rows_json(f, nbt_print_reverse, tr, 0);
    fprintf(f, "},\n\"cost\":{\"ops\":%lld,\"sweeps\":%d,\"forward\":%lld,\"reverse\":%lld}}",
            (long long)tr->n_ops, tr->sweeps, (long long)tr->rules_forward,
            (long long)tr->rules_reverse);
    return rc;
}

nb_status nb_trace_html(const nb_trace *tr, FILE *f, const char *title, nb_error *err)
{
    nb_error_clear(err);
    if (!tr || !f)
        return nb_error_set(err, NB_ERR_NULL, "nb_trace_html", "nb_trace_html: %s is NULL",
                            !tr ? "the trace" : "the file");
    nbt_layout l;
    nb_status rc = lay_out(tr, &l, err, "nb_trace_html");
    if (rc != NB_OK)
        return rc;
    fprintf(f, "%s", nbt_page_head);
    fprintf(f, "<title>");
    put_xml(f, title && *title ? title : "nabla trace");
    fprintf(f, "</title>\n<style>%s", svg_style);
    put_lines(f, nbt_page_style);
    fprintf(f, "</style>\n</head>\n<body>\n<h1>");
    put_xml(f, title && *title ? title : "nabla trace");
    fprintf(f, "</h1>\n%s", nbt_page_controls);
    fprintf(f, "<div id=\"main\"><div id=\"picture\">\n");
    view v = {0, 0, true};
    svg_picture(tr, &l, f, &v);
    fprintf(f, "</div>\n<div id=\"side\"><table id=\"table\"></table></div></div>\n");
    fprintf(f, "<script type=\"application/json\" id=\"trace-data\">");
    rc = page_data(tr, &l, f, title);
    fprintf(f, "</script>\n<script>\n");
    put_lines(f, nbt_page_script);
    fprintf(f, "</script>\n</body>\n</html>\n");
    nbt_layout_free(&l);
    if (rc != NB_OK)
        return nb_error_set(err, rc, "nb_trace_html", "nb_trace_html: out of memory");
    return nbt_finish(f, err, "nb_trace_html");
}
