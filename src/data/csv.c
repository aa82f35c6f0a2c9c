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
    int64_t *role; /* with targets, per column: target k >= 0, or feature j as -1 - j */
    int64_t first; /* line of the first row (the header when there is one) */
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
    int64_t line = c->first = s.line;
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
                        "line %lld, column 1: only one column: a %s and at least one feature "
                        "are needed",
                        (long long)line, c->o.n_targets > 0 ? "target" : "label");
    if (c->o.n_targets > 0)
        return NB_OK; /* no label column: the targets are placed by place_targets */
    int64_t lc = c->o.label_column < 0 ? n + c->o.label_column : c->o.label_column;
    if (lc < 0 || lc >= n)
        return nbd_fail(err, NB_ERR_ARG, line, 0, -1,
                        "line %lld: label column %d is outside the %lld columns", (long long)line,
                        c->o.label_column, (long long)n);
    c->label_col = lc;
    return NB_OK;
}

/* Column @p k (0-based) of the header line, quoted into q[0..cap). */
static const char *header_name(const csv_ctx *c, int64_t k, char *q, size_t cap)
{
    scan s = {c->buf, c->buf + c->len, 1, c->o.delimiter, c->o.max_field, c->fb, 0};
    while (s.p < s.end && skip_blank_line(&s))
        ;
    int term = END_DELIM;
    for (int64_t col = 0; col <= k && term == END_DELIM; col++)
        if (read_field(&s, col + 1, &term, NULL) != NB_OK)
            break;
    return quote(s.fb, s.flen, q, cap);
}

/* The 0-based number of the header column named @p name into *col; an
 * error naming the header's columns when there is none. */
static nb_status column_named(const csv_ctx *c, const char *name, int64_t *col, nb_error *err)
{
    char q[200];
    if (!c->header)
        return nbd_fail(err, NB_ERR_ARG, c->first, 0, -1,
                        "line %lld: target column \"%s\" is named, but the table has no header "
                        "row (give its 0-based number)",
                        (long long)c->first, quote(name, strlen(name), q, sizeof q));
    scan s = {c->buf, c->buf + c->len, 1, c->o.delimiter, c->o.max_field, c->fb, 0};
    while (s.p < s.end && skip_blank_line(&s))
        ;
    int term = END_DELIM;
    char names[300] = "";
    size_t used = 0;
    for (int64_t k = 0; term == END_DELIM; k++) {
        nb_status st = read_field(&s, k + 1, &term, err);
        if (st != NB_OK)
            return st;
        if (s.flen == strlen(name) && !memcmp(s.fb, name, s.flen)) {
            *col = k;
            return NB_OK;
        }
        /* the header's columns for the message, "..." when they do not fit */
        quote(s.fb, s.flen, q, sizeof q);
        if (used + strlen(q) + 7 < sizeof names)
            used +=
                (size_t)snprintf(names + used, sizeof names - used, "%s\"%s\"", k ? ", " : "", q);
        else if (used + 5 < sizeof names && !strstr(names, "..."))
            used += (size_t)snprintf(names + used, sizeof names - used, ", ...");
    }
    return nbd_fail(err, NB_ERR_ARG, c->first, 0, -1,
                    "line %lld: no column named \"%s\" in the header (its columns: %s)",
                    (long long)c->first, quote(name, strlen(name), q, sizeof q), names);
}

/* With targets: the role of every column (c->role, allocated from @p mem):
 * the target columns, by number or by header name, each once, and the
 * features in order. */
static nb_status place_targets(csv_ctx *c, nbd_mem mem, nb_error *err)
{
    int64_t n = c->ncols, K = c->o.n_targets;
    c->role = nbd_alloc(mem, (size_t)n * sizeof *c->role);
    if (!c->role)
        return nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "out of memory");
    for (int64_t j = 0; j < n; j++)
        c->role[j] = -1;
    if (K >= n)
        return nbd_fail(err, NB_ERR_ARG, c->first, 0, -1,
                        "line %lld: %lld target columns leave no feature among the %lld columns",
                        (long long)c->first, (long long)K, (long long)n);
    char q[200];
    for (int64_t k = 0; k < K; k++) {
        int64_t col = 0;
        const char *name = c->o.target_names ? c->o.target_names[k] : NULL;
        if (name) {
            nb_status st = column_named(c, name, &col, err);
            if (st != NB_OK)
                return st;
        } else if (c->o.target_columns) {
            int64_t given = c->o.target_columns[k];
            col = given < 0 ? n + given : given;
            if (col < 0 || col >= n)
                return nbd_fail(err, NB_ERR_ARG, c->first, 0, -1,
                                "line %lld: target column index %lld is outside the %lld "
                                "columns (0 .. %lld, or negative from the end)",
                                (long long)c->first, (long long)given, (long long)n,
                                (long long)n - 1);
        } else {
            return nbd_fail(err, NB_ERR_NULL, 0, 0, -1,
                            "target %lld has no name (target_names) and no column number "
                            "(target_columns)",
                            (long long)k);
        }
        if (c->role[col] >= 0)
            return nbd_fail(err, NB_ERR_ARG, c->first, col + 1, -1,
                            "line %lld: column index %lld%s%s%s is given as a target twice",
                            (long long)c->first, (long long)col, c->header ? " (\"" : "",
                            c->header ? header_name(c, col, q, sizeof q) : "",
                            c->header ? "\")" : "");
        c->role[col] = k;
    }
    for (int64_t j = 0, f = 0; j < n; j++)
        if (c->role[j] < 0)
            c->role[j] = -1 - f++;
    return NB_OK;
}

/* One pass over the data rows. With @p ds NULL: check every field, count
 * the rows into *rows and find the largest label. With @p ds: store them. */
static nb_status pass(const csv_ctx *c, nb_dataset *ds, int64_t *rows, int64_t *max_label,
                      nb_error *err)
{
    scan s = {c->buf, c->buf + c->len, 1, c->o.delimiter, c->o.max_field, c->fb, 0};
    bool skip_header = c->header;
    int64_t r = 0, F = c->ncols - (c->role ? c->o.n_targets : 1);
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
                                "line %lld, column %lld: %s\"%s\" is not a number", (long long)line,
                                (long long)col, c->role && c->role[col - 1] >= 0 ? "target " : "",
                                what);
            int64_t role = c->role ? c->role[col - 1] : -1;
            if (role >= 0) { /* a target value */
                if (range || !isfinite(v) || (c->o.data.dtype == NB_F32 && fabs(v) > FLT_MAX))
                    return nbd_fail(err, NB_ERR_PARSE, line, col, -1,
                                    "line %lld, column %lld: target \"%s\" is not a finite "
                                    "number%s",
                                    (long long)line, (long long)col, what,
                                    c->o.data.dtype == NB_F32 ? " in the f32 range" : "");
                if (ds && ds->dtype == NB_F32)
                    ((float *)ds->targets)[r * c->o.n_targets + role] = (float)v;
                else if (ds)
                    ((double *)ds->targets)[r * c->o.n_targets + role] = v;
                continue;
            }
            if (!c->role && col - 1 == c->label_col) {
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
                int64_t j = c->role ? -1 - role : col - 1 < c->label_col ? col - 1 : col - 2;
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
    csv_ctx c = {buf, len, *o, NULL, 0, 0, false, NULL, 0};
    c.fb = nbd_alloc(mem, o->max_field + 1);
    if (!c.fb)
        return nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "out of memory");
    nb_dataset *ds = NULL;
    int64_t rows = 0, max_label = -1;
    nb_status st = first_line(&c, err);
    if (st == NB_OK && o->n_targets > 0)
        st = place_targets(&c, mem, err);
    if (st == NB_OK)
        st = pass(&c, NULL, &rows, &max_label, err);
    int64_t K = o->n_targets, F = c.ncols - (K > 0 ? K : 1);
    if (st == NB_OK) {
        st = nbd_dataset_alloc(mem, o->data.dtype, o->data.label_type, rows, F, K, &ds);
        if (st == NB_ERR_NOMEM)
            nbd_fail(err, st, 0, 0, -1, "out of memory for %lld rows of %lld features",
                     (long long)rows, (long long)F);
        else if (st != NB_OK)
            nbd_fail(err, st, 0, 0, -1, "%lld rows of %lld features is too large", (long long)rows,
                     (long long)F);
    }
    if (st == NB_OK)
        st = pass(&c, ds, &rows, &max_label, err);
    if (st == NB_OK) {
        ds->n_classes = K > 0 ? 0 : o->data.n_classes > 0 ? o->data.n_classes : max_label + 1;
        if ((o->image_height || o->image_width) &&
            nb_dataset_set_image_shape(ds, o->image_height, o->image_width) != NB_OK)
            st = nbd_fail(
                err, NB_ERR_ARG, 0, 0, -1, "image shape %lldx%lld does not fit %lld features",
                (long long)o->image_height, (long long)o->image_width, (long long)ds->n_features);
    }
    nbd_free(mem, c.fb, o->max_field + 1);
    nbd_free(mem, c.role, (size_t)c.ncols * sizeof *c.role);
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
    if (o.n_targets < 0)
        return nbd_fail(err, NB_ERR_ARG, 0, 0, -1, "n_targets = %lld: it must be >= 0",
                        (long long)o.n_targets);
    if (o.n_targets > 0 && !o.target_columns && !o.target_names)
        return nbd_fail(err, NB_ERR_NULL, 0, 0, -1,
                        "n_targets = %lld but neither target_columns nor target_names is given",
                        (long long)o.n_targets);
    if (o.n_targets > 0 && o.data.n_classes > 0)
        return nbd_fail(err, NB_ERR_ARG, 0, 0, -1,
                        "n_classes = %lld applies to labels, and the table has targets",
                        (long long)o.data.n_classes);
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
