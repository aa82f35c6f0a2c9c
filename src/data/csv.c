/* CSV loader: a field scanner over a memory buffer, then two passes (check
 * and count, then fill), so a bad table allocates nothing but the scratch
 * field buffer and the result is built in one go. */

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

#define DEFAULT_MAX_FIELD 256
#define LIMIT_MAX_FIELD (1u << 20)

/* How a field ended. */
enum { END_DELIM, END_LINE, END_INPUT };

typedef struct scan {
    const char *p, *end;
    int64_t line; /* line of the next character, 1-based */
    char delim;
    size_t max_field;
    char *fb; /* max_field + 1 bytes: the current field, NUL-terminated */
    size_t flen;
} scan;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Write @p s (@p n bytes) into @p out as a short printable quotation. */
static const char *quote(const char *s, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 40) {
            k += (size_t)snprintf(out + k, cap - k, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[k++] = (char)c;
        else
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
    }
    out[k] = '\0';
    return out;
}

/* Read the field at s->p into s->fb (blanks around an unquoted field
 * dropped, quotes of a quoted field removed, "" inside it read as ").
 * @p col is the field's 1-based column for messages. */
static nb_status read_field(scan *s, int64_t col, int *term, nb_error *err)
{
    int64_t line = s->line;
    s->flen = 0;
    while (s->p < s->end && is_blank(*s->p))
        s->p++;
    bool quoted = s->p < s->end && *s->p == '"';
    if (quoted) {
        s->p++;
        for (;;) {
            if (s->p >= s->end)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: quoted field is not closed before "
                                "the end of the input",
                                (long long)line, (long long)col);
            char c = *s->p++;
            if (c == '"') {
                if (s->p < s->end && *s->p == '"')
                    s->p++; /* "" is one quote */
                else
                    break;
            }
            if (c == '\n')
                s->line++;
            if (s->flen == s->max_field)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: field longer than %zu bytes",
                                (long long)line, (long long)col, s->max_field);
            s->fb[s->flen++] = c;
        }
        while (s->p < s->end && is_blank(*s->p))
            s->p++;
        if (s->p < s->end && *s->p != s->delim && *s->p != '\n') {
            char q[64];
            return nbd_fail(err, NB_ERR_PARSE, s->line, col, -1,
                            "line %lld, column %lld: unexpected \"%s\" after a closing quote",
                            (long long)s->line, (long long)col, quote(s->p, 1, q, sizeof q));
        }
    } else {
        size_t blanks = 0; /* trailing blanks, dropped at the end */
        while (s->p < s->end && *s->p != s->delim && *s->p != '\n') {
            char c = *s->p++;
            if (s->flen == s->max_field)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: field longer than %zu bytes",
                                (long long)line, (long long)col, s->max_field);
            s->fb[s->flen++] = c;
            blanks = is_blank(c) ? blanks + 1 : 0;
        }
        s->flen -= blanks;
    }
    s->fb[s->flen] = '\0';
    if (s->p >= s->end) {
        *term = END_INPUT;
    } else if (*s->p == '\n') {
        s->p++;
        s->line++;
        *term = END_LINE;
    } else {
        s->p++;
        *term = END_DELIM;
    }
    return NB_OK;
}

/* The whole field as a number: false when empty or not entirely a number
 * (strtod syntax). *range set when it overflows a double. */
static bool to_number(const scan *s, double *v, bool *range)
{
    if (s->flen == 0 || strlen(s->fb) != s->flen)
        return false;
    char *endp;
    errno = 0;
    *v = strtod(s->fb, &endp);
    *range = errno == ERANGE && fabs(*v) > 1.0;
    return endp == s->fb + s->flen;
}

/* Skip the rest of a blank line: true (and s->p moved past it) when the
 * line at s->p holds only blanks. */
static bool skip_blank_line(scan *s)
{
    const char *q = s->p;
    while (q < s->end && is_blank(*q))
        q++;
    if (q < s->end && *q != '\n')
        return false;
    if (q < s->end) {
        q++;
        s->line++;
    }
    s->p = q;
    return true;
}

typedef struct csv_ctx {
    const char *buf;
    size_t len;
    nb_csv_opts o;
    char *fb;
    int64_t ncols;     /* fields per line */
    int64_t label_col; /* 0-based */
    bool header;
} csv_ctx;

/* Look at the first non-blank line: number of fields and whether it is a
 * header. */
static nb_status first_line(csv_ctx *c, nb_error *err)
{
    scan s = {c->buf, c->buf + c->len, 1, c->o.delimiter, c->o.max_field, c->fb, 0};
    while (s.p < s.end && skip_blank_line(&s))
        ;
    if (s.p >= s.end)
        return nbd_fail(err, NB_ERR_PARSE, s.line, 0, -1, "line %lld: empty input: no rows",
                        (long long)s.line);
    int64_t line = s.line;
    int64_t n = 0;
    bool all_numbers = true;
    int term = END_DELIM;
    while (term == END_DELIM) {
        nb_status st = read_field(&s, n + 1, &term, err);
        if (st != NB_OK)
            return st;
        double v;
        bool range;
        if (!to_number(&s, &v, &range))
            all_numbers = false;
        n++;
    }
    c->ncols = n;
    c->header =
        c->o.header == NB_CSV_HEADER_PRESENT || (c->o.header == NB_CSV_HEADER_AUTO && !all_numbers);
    if (n < 2)
        return nbd_fail(err, NB_ERR_PARSE, line, 1, -1,
                        "line %lld, column 1: only one column: a label and at least one feature "
                        "are needed",
                        (long long)line);
    int64_t lc = c->o.label_column < 0 ? n + c->o.label_column : c->o.label_column;
    if (lc < 0 || lc >= n)
        return nbd_fail(err, NB_ERR_ARG, line, 0, -1,
                        "line %lld: label column %d is outside the %lld columns", (long long)line,
                        c->o.label_column, (long long)n);
    c->label_col = lc;
    return NB_OK;
}

/* One pass over the data rows. With @p ds NULL: check every field, count
 * the rows into *rows and find the largest label. With @p ds: store them. */
static nb_status pass(const csv_ctx *c, nb_dataset *ds, int64_t *rows, int64_t *max_label,
                      nb_error *err)
{
    scan s = {c->buf, c->buf + c->len, 1, c->o.delimiter, c->o.max_field, c->fb, 0};
    bool skip_header = c->header;
    int64_t r = 0, F = c->ncols - 1;
    *max_label = -1;
    char q[200];
    while (s.p < s.end) {
        if (skip_blank_line(&s))
            continue;
        int64_t line = s.line;
        int term = END_DELIM;
        int64_t col = 0;
        while (term == END_DELIM) {
            if (col == c->ncols && !skip_header)
                return nbd_fail(err, NB_ERR_PARSE, line, col + 1, -1,
                                "line %lld, column %lld: more than the %lld fields of the "
                                "first row",
                                (long long)line, (long long)col + 1, (long long)c->ncols);
            nb_status st = read_field(&s, col + 1, &term, err);
            if (st != NB_OK)
                return st;
            col++;
            if (skip_header)
                continue;
            double v = 0;
            bool range;
            bool num = to_number(&s, &v, &range);
            const char *what = quote(s.fb, s.flen, q, sizeof q);
            if (s.flen == 0)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: empty field", (long long)line,
                                (long long)col);
            if (!num)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: \"%s\" is not a number", (long long)line,
                                (long long)col, what);
            if (col - 1 == c->label_col) {
                int64_t cap = c->o.data.n_classes > 0 ? c->o.data.n_classes : INT32_MAX;
                if (!(v >= 0) || v != floor(v) || v >= (double)cap)
                    return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                    "line %lld, column %lld: label \"%s\" is not an integer in "
                                    "[0, %lld)",
                                    (long long)line, (long long)col, what, (long long)cap);
                int64_t lab = (int64_t)v;
                if (lab > *max_label)
                    *max_label = lab;
                if (ds)
                    nbd_set_label(ds, r, lab);
                continue;
            }
            if (range)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: \"%s\" is out of the range of a double",
                                (long long)line, (long long)col, what);
            if (!isfinite(v) && !c->o.allow_nonfinite)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: \"%s\" is not finite (NaN and "
                                "infinities are not allowed)",
                                (long long)line, (long long)col, what);
            if (c->o.data.dtype == NB_F32 && isfinite(v) && fabs(v) > FLT_MAX)
                return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                "line %lld, column %lld: \"%s\" is out of the f32 range",
                                (long long)line, (long long)col, what);
            if (ds) {
                int64_t j = col - 1 < c->label_col ? col - 1 : col - 2;
                if (ds->dtype == NB_F32)
                    ((float *)ds->features)[r * F + j] = (float)v;
                else
                    ((double *)ds->features)[r * F + j] = v;
            }
        }
        if (skip_header) {
            skip_header = false;
            continue;
        }
        if (col < c->ncols)
            return nbd_fail(err, NB_ERR_PARSE, line, col + 1, -1,
                            "line %lld, column %lld: row has %lld fields, the first row has %lld",
                            (long long)line, (long long)col + 1, (long long)col,
                            (long long)c->ncols);
        r++;
    }
    if (r == 0)
        return nbd_fail(err, NB_ERR_PARSE, s.line, 0, -1, "line %lld: no data rows",
                        (long long)s.line);
    *rows = r;
    return NB_OK;
}

static nb_status load_plain(const void *buf, size_t len, const nb_csv_opts *o, nb_dataset **out,
                            nb_error *err)
{
    nbd_mem mem = nbd_mem_of(&o->data);
    csv_ctx c = {buf, len, *o, NULL, 0, 0, false};
    c.fb = nbd_alloc(mem, o->max_field + 1);
    if (!c.fb)
        return nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "out of memory");
    nb_dataset *ds = NULL;
    int64_t rows = 0, max_label = -1;
    nb_status st = first_line(&c, err);
    if (st == NB_OK)
        st = pass(&c, NULL, &rows, &max_label, err);
    if (st == NB_OK) {
        st = nbd_dataset_alloc(mem, o->data.dtype, o->data.label_type, rows, c.ncols - 1, &ds);
        if (st == NB_ERR_NOMEM)
            nbd_fail(err, st, 0, 0, -1, "out of memory for %lld rows of %lld features",
                     (long long)rows, (long long)c.ncols - 1);
        else if (st != NB_OK)
            nbd_fail(err, st, 0, 0, -1, "%lld rows of %lld features is too large", (long long)rows,
                     (long long)c.ncols - 1);
    }
    if (st == NB_OK)
        st = pass(&c, ds, &rows, &max_label, err);
    if (st == NB_OK) {
        ds->n_classes = o->data.n_classes > 0 ? o->data.n_classes : max_label + 1;
        if ((o->image_height || o->image_width) &&
            nb_dataset_set_image_shape(ds, o->image_height, o->image_width) != NB_OK)
            st = nbd_fail(
                err, NB_ERR_ARG, 0, 0, -1, "image shape %lldx%lld does not fit %lld features",
                (long long)o->image_height, (long long)o->image_width, (long long)ds->n_features);
    }
    nbd_free(mem, c.fb, o->max_field + 1);
    if (st != NB_OK) {
        nb_dataset_free(ds);
        return st;
    }
    *out = ds;
    return NB_OK;
}

static nb_status load_csv_mem(const void *buf, size_t len, const nb_csv_opts *opts,
                              nb_dataset **out, nb_error *err)
{
    nb_error_clear(err);
    if (!out)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "no place for the result (out is NULL)");
    *out = NULL;
    if (!buf && len > 0)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "buffer is NULL");
    nb_csv_opts o = opts ? *opts : (nb_csv_opts){0};
    nb_status st = nbd_check_opts(&o.data);
    if (st != NB_OK)
        return nbd_fail(err, st, 0, 0, -1, "bad dtype, label type or number of classes");
    if (o.delimiter == 0)
        o.delimiter = ',';
    if (o.delimiter == '"' || o.delimiter == '\n' || o.delimiter == '\r')
        return nbd_fail(err, NB_ERR_ARG, 0, 0, -1, "delimiter cannot be a quote or line end");
    if (o.header != NB_CSV_HEADER_AUTO && o.header != NB_CSV_HEADER_NONE &&
        o.header != NB_CSV_HEADER_PRESENT)
        return nbd_fail(err, NB_ERR_ARG, 0, 0, -1, "bad header setting %d", (int)o.header);
    if (o.max_field == 0)
        o.max_field = DEFAULT_MAX_FIELD;
    if (o.max_field > LIMIT_MAX_FIELD)
        return nbd_fail(err, NB_ERR_ARG, 0, 0, -1, "max_field above %u bytes", LIMIT_MAX_FIELD);
    if (!nbd_is_gzip(buf, len))
        return load_plain(buf, len, &o, out, err);
    nbd_mem mem = nbd_mem_of(&o.data);
    void *plain;
    size_t plain_len, plain_cap;
    size_t max_out = len > (SIZE_MAX - 4096) / 1100 ? SIZE_MAX : len * 1100 + 4096;
    st = nbd_gunzip(mem, buf, len, max_out, "csv", &plain, &plain_len, &plain_cap, err);
    if (st != NB_OK)
        return st;
    st = load_plain(plain, plain_len, &o, out, err);
    nbd_free(mem, plain, plain_cap);
    return st;
}

nb_status nb_dataset_load_csv_mem(const void *buf, size_t len, const nb_csv_opts *opts,
                                  nb_dataset **out, nb_error *err)
{
    return nbd_placed(err, load_csv_mem(buf, len, opts, out, err), "nb_dataset_load_csv_mem");
}

static nb_status load_csv(const char *path, const nb_csv_opts *opts, nb_dataset **out,
                          nb_error *err)
{
    nb_error_clear(err);
    if (!out)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "no place for the result (out is NULL)");
    *out = NULL;
    if (!path)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1, "path is NULL");
    nbd_mem mem = nbd_mem_of(opts ? &opts->data : NULL);
    void *buf;
    size_t len;
    nb_status st = nbd_read_file(mem, path, &buf, &len, err);
    if (st != NB_OK)
        return st;
    st = nb_dataset_load_csv_mem(buf, len, opts, out, err);
    nbd_free(mem, buf, len);
    if (st != NB_OK)
        nbd_prefix(err, path); /* name the file in front of the message */
    return st;
}

nb_status nb_dataset_load_csv(const char *path, const nb_csv_opts *opts, nb_dataset **out,
                              nb_error *err)
{
    return nbd_placed(err, load_csv(path, opts, out, err), "nb_dataset_load_csv");
}
