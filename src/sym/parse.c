/* The parser: recursive descent over an explicit-length byte string.
 *   expr  := term (('+' | '-') term)*
 *   term  := unary (('*' | '/') unary)*
 *   unary := '-' unary | power
 *   power := primary ('^' unary)?          (right-associative)
 *   primary := number | name | name '(' expr (',' expr)* ')' | '(' expr ')'
 * Recursion is bounded by NB_SYM_MAX_NESTING; every error names the byte
 * offset and the token there.
 * One grammar walk, three builders (the build_* functions below): it
 * builds the pool's canonical expression (nb_sym_parse), records each
 * operator as written in a graph (nb_sym_record), or only checks.
 * Canonical products have one spelling the printer can write: -a is
 * (-1)*a, a / b is a*b^(-1) (a*b^(-c) for b^c with a constant c), and the
 * constant factors of a product are multiplied into one coefficient as
 * nb_sym_eval would multiply them (-(-t) is t, -(2*x) and -2*x are
 * (-2)*x, 1*x is x). */

#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_NUMBER 400

typedef enum tok_kind { T_END, T_NUM, T_NAME, T_PUNCT } tok_kind;

/* What the grammar walk builds. */
typedef enum build_mode {
    BUILD_CHECK, /* nothing: the text is only checked */
    BUILD_EXPR,  /* the canonical expression in the pool */
    BUILD_GRAPH, /* a graph, one primitive per operator as written */
} build_mode;

/* A built value: a const nb_expr * (BUILD_EXPR), an nb_tensor *
 * (BUILD_GRAPH) or &checked (BUILD_CHECK); NULL after an error. */
typedef const void *built;
static const char checked;

typedef struct parser {
    nb_sym *s;
    build_mode mode;
    const nbs_binding *bind; /* BUILD_GRAPH: the graph and the variables */
    nb_tensor *literal;      /* BUILD_GRAPH: the tensor of the last number read */
    const char *text;
    size_t len;
    size_t pos; /* next byte to scan */
    int depth;
    bool failed;
    /* the current token */
    tok_kind kind;
    size_t start, end;
    double value;
} parser;

static const struct {
    const char *name;
    nb_sym_kind kind;
    int arity;
} functions[] = {
    {"sin", NB_SYM_SIN, 1},   {"cos", NB_SYM_COS, 1},   {"tan", NB_SYM_TAN, 1},
    {"exp", NB_SYM_EXP, 1},   {"ln", NB_SYM_LN, 1},     {"log", NB_SYM_LN, 1},
    {"sqrt", NB_SYM_SQRT, 1}, {"tanh", NB_SYM_TANH, 1}, {"sigmoid", NB_SYM_SIGMOID, 1},
    {"abs", NB_SYM_ABS, 1},   {"erf", NB_SYM_ERF, 1},   {"sign", NB_SYM_SIGN, 1},
    {"pow", NB_SYM_POW, 2},   {"max", NB_SYM_MAX, 2},   {"min", NB_SYM_MIN, 2},
};

static int find_function(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++)
        if (strlen(functions[i].name) == n && memcmp(functions[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2;
        cp = p[0] & 0x1F;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        len = 3;
        cp = p[0] & 0x0F;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* The current token quoted for a message: 'x', '+', end of input. */
static const char *describe(const parser *p, char *buf, size_t n)
{
    if (p->kind == T_END)
        return "end of input";
    size_t len = p->end - p->start, k = 0;
    if (len > 32)
        len = 32;
    buf[k++] = '\'';
    for (size_t i = 0; i < len && k + 6 < n; i++) {
        unsigned char c = (unsigned char)p->text[p->start + i];
        if (c >= 0x20 && c < 0x7F)
            buf[k++] = (char)c;
        else
            k += (size_t)snprintf(buf + k, n - k, "\\x%02x", c);
    }
    if (p->end - p->start > len && k + 4 < n) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k++] = '\'';
    buf[k] = '\0';
    return buf;
}

/* "<what> at <offset> near <token>" at the current token. */
static built fail(parser *p, const char *what)
{
    char tok[64];
    if (!p->failed)
        nbs_error(p->s, NB_ERR_PARSE, (int64_t)p->start, "%s at %zu near %s", what, p->start,
                  describe(p, tok, sizeof tok));
    p->failed = true;
    return NULL;
}

static bool fail_at(parser *p, size_t offset, const char *fmt, const char *arg)
{
    char what[160];
    snprintf(what, sizeof what, fmt, arg);
    nbs_error(p->s, NB_ERR_PARSE, (int64_t)offset, "%s at %zu", what, offset);
    p->failed = true;
    return false;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool scan_number(parser *p)
{
    const char *t = p->text;
    size_t i = p->pos, n = p->len, digits = 0;
    while (i < n && is_digit(t[i]))
        i++, digits++;
    if (i < n && t[i] == '.') {
        i++;
        while (i < n && is_digit(t[i]))
            i++, digits++;
    }
    if (digits == 0)
        return fail_at(p, p->pos, "malformed number%s", "");
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (t[j] == '+' || t[j] == '-'))
            j++;
        if (j >= n || !is_digit(t[j])) {
            char num[48];
            size_t m = j - p->pos < sizeof num - 1 ? j - p->pos : sizeof num - 1;
            memcpy(num, t + p->pos, m);
            num[m] = '\0';
            return fail_at(p, p->pos, "malformed number '%s' (exponent without digits)", num);
        }
        i = j;
        while (i < n && is_digit(t[i]))
            i++;
    }
    size_t m = i - p->pos;
    char buf[MAX_NUMBER + 1];
    if (m > MAX_NUMBER)
        return fail_at(p, p->pos, "number longer than %s bytes", "400");
    memcpy(buf, t + p->pos, m);
    buf[m] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if ((size_t)(end - buf) != m)
        return fail_at(p, p->pos, "number '%.40s' not understood", buf);
    if (!isfinite(v)) {
        char what[80];
        snprintf(what, sizeof what, "%.40s%s", buf, m > 40 ? "..." : "");
        return fail_at(p, p->pos, "number '%s' overflows a double", what);
    }
    p->kind = T_NUM;
    p->value = v;
    p->end = i;
    return true;
}

/* Scan the next token into p->kind/start/end/value. */
static bool next(parser *p)
{
    const char *t = p->text;
    while (p->pos < p->len &&
           (t[p->pos] == ' ' || t[p->pos] == '\t' || t[p->pos] == '\n' || t[p->pos] == '\r'))
        p->pos++;
    p->start = p->pos;
    if (p->pos >= p->len) {
        p->kind = T_END;
        p->end = p->pos;
        return true;
    }
    char c = t[p->pos];
    if (is_digit(c) || (c == '.' && p->pos + 1 < p->len && is_digit(t[p->pos + 1]))) {
        if (!scan_number(p))
            return false;
    } else if (is_alpha(c)) {
        size_t i = p->pos;
        while (i < p->len && (is_alpha(t[i]) || is_digit(t[i])))
            i++;
        if (i - p->pos > NBS_MAX_NAME)
            return fail_at(p, p->pos, "name longer than %s bytes", "256");
        p->kind = T_NAME;
        p->end = i;
    } else if (strchr("+-*/^(),", c) && c != '\0') {
        p->kind = T_PUNCT;
        p->end = p->pos + 1;
    } else {
        unsigned char u = (unsigned char)c;
        size_t m = utf8_len((const unsigned char *)t + p->pos, p->len - p->pos);
        char what[48];
        if (u == 0)
            return fail_at(p, p->pos, "unexpected NUL byte%s", "");
        if (m == 0) {
            snprintf(what, sizeof what, "invalid UTF-8 byte 0x%02x", u);
            return fail_at(p, p->pos, "%s", what);
        }
        if (u < 0x20 || u == 0x7F) {
            snprintf(what, sizeof what, "unexpected control byte 0x%02x", u);
            return fail_at(p, p->pos, "%s", what);
        }
        memcpy(what, t + p->pos, m);
        what[m] = '\0';
        return fail_at(p, p->pos, "unexpected character '%s'", what);
    }
    p->pos = p->end;
    return true;
}

static bool is_punct(const parser *p, char c)
{
    return p->kind == T_PUNCT && p->text[p->start] == c;
}

static built expr(parser *p);
static built unary(parser *p);

/* Operands gathered for one flat sum or product. */
typedef struct operands {
    const nb_expr **at;
    size_t n, cap;
} operands;

static bool push(parser *p, operands *l, const nb_expr *e)
{
    nb_sym *s = p->s;
    if (!e)
        return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        const nb_expr **q = s->alloc(s->ud, l->at, l->cap * sizeof *q, cap * sizeof *q);
        if (!q) {
            nbs_error(s, NB_ERR_NOMEM, -1, "out of memory (%zu operands)", cap);
            p->failed = true;
            return false;
        }
        l->at = q;
        l->cap = cap;
    }
    l->at[l->n++] = e;
    return true;
}

static const nb_expr *finish(parser *p, operands *l, nb_sym_kind kind, bool ok)
{
    const nb_expr *r = NULL;
    if (ok)
        r = l->n == 1 ? l->at[0] : nbs_flat(p->s, kind, l->at, (int)l->n);
    if (l->at)
        p->s->alloc(p->s->ud, l->at, l->cap * sizeof *l->at, 0);
    if (!r)
        p->failed = true;
    return r;
}

/* Push a factor of a product, flattening a product into its factors. */
static bool push_factor(parser *p, operands *l, const nb_expr *e)
{
    if (!e || e->kind != NB_SYM_MUL)
        return push(p, l, e);
    for (int i = 0; i < e->n_args; i++)
        if (!push(p, l, e->args[i]))
            return false;
    return true;
}

static int cmp_expr(const void *pa, const void *pb)
{
    return nbs_cmp(*(const nb_expr *const *)pa, *(const nb_expr *const *)pb);
}

/* The product of the factors in l (flat), its constant factors multiplied
 * into one coefficient: in the canonical order (by value) and left to
 * right, as nb_sym_eval multiplies them, so the value is unchanged. A
 * coefficient of 1 is left out. Constants whose product overflows or
 * underflows to 0 stay apart, all of them. Frees l. */
static const nb_expr *product(parser *p, operands *l, bool ok)
{
    if (ok && l->n > 1) {
        size_t n_num = 0;
        for (size_t i = 0; i < l->n; i++)
            if (l->at[i]->kind == NB_SYM_NUM) {
                const nb_expr *t = l->at[n_num];
                l->at[n_num++] = l->at[i];
                l->at[i] = t;
            }
        qsort(l->at, n_num, sizeof *l->at, cmp_expr);
        double coef = 1;
        bool zero = false;
        for (size_t i = 0; i < n_num; i++) {
            coef *= l->at[i]->value;
            zero = zero || l->at[i]->value == 0;
        }
        if (n_num > 0 && isfinite(coef) && (coef != 0 || zero)) {
            size_t keep = coef != 1 || n_num == l->n ? 1 : 0;
            if (keep)
                l->at[0] = nbs_num(p->s, coef);
            memmove(l->at + keep, l->at + n_num, (l->n - n_num) * sizeof *l->at);
            l->n = l->n - n_num + keep;
            ok = !keep || l->at[0];
        }
    }
    return finish(p, l, NB_SYM_MUL, ok);
}

/* -e: the product (-1)*e with its constants folded (-2 is the number -2,
 * -(2*x) is (-2)*x, -(-x) is x). */
static const nb_expr *negate(parser *p, const nb_expr *e)
{
    if (!e)
        return NULL;
    operands l = {0};
    bool ok = push(p, &l, nbs_num(p->s, -1)) && push_factor(p, &l, e);
    return product(p, &l, ok);
}

/* a / b is a * b^(-1), and a / b^c with a constant c is a * b^(-c). */
static const nb_expr *reciprocal(parser *p, const nb_expr *f)
{
    if (!f)
        return NULL;
    if (f->kind == NB_SYM_POW && f->args[1]->kind == NB_SYM_NUM)
        return nbs_make2(p->s, NB_SYM_POW, f->args[0], nbs_num(p->s, -f->args[1]->value));
    return nbs_make2(p->s, NB_SYM_POW, f, nbs_num(p->s, -1));
}

/* ------------------------------------------------------- build points */

/* The number @p v: a node, or a scalar constant of the values' dtype. */
static built build_num(parser *p, double v)
{
    if (p->mode == BUILD_EXPR)
        return nbs_num(p->s, v);
    if (p->mode == BUILD_CHECK)
        return &checked;
    nb_tensor *t = nb_scalar(p->bind->g, p->bind->dt, v);
    p->literal = t;
    return nbs_graph_built(p->s, p->bind, t, nbs_kind_name(NB_SYM_NUM));
}

/* The variable named by the current token: a node, or its bound tensor. */
static built build_var(parser *p, size_t start, size_t end)
{
    if (p->mode == BUILD_EXPR)
        return nbs_var(p->s, p->text + start, end - start);
    if (p->mode == BUILD_CHECK)
        return &checked;
    nb_tensor *t = nbs_graph_var(p->bind, p->text + start, end - start);
    if (!t) {
        char name[NBS_MAX_NAME + 1];
        memcpy(name, p->text + start, end - start);
        name[end - start] = '\0';
        nbs_unknown_var(p->s, name);
    }
    return t;
}

/* @p op (a kind, NBS_SUB, NBS_DIV, NBS_NEG) of @p a (and @p b) in the graph. */
static built record(parser *p, int op, built a, built b)
{
    nb_tensor *r = nbs_graph_apply(p->bind->g, op, (nb_tensor *)a, (nb_tensor *)b);
    static const char *const written[] = {"-", "/", "unary -"};
    const char *what =
        op >= NB_SYM_KIND_COUNT ? written[op - NB_SYM_KIND_COUNT] : nbs_kind_name((nb_sym_kind)op);
    return nbs_graph_built(p->s, p->bind, r, what);
}

/* A function @p kind of one or two operands. */
static built build_call(parser *p, nb_sym_kind kind, built a, built b)
{
    if (p->mode == BUILD_EXPR)
        return nbs_arity(kind) == 1 ? nbs_make1(p->s, kind, a) : nbs_make2(p->s, kind, a, b);
    return p->mode == BUILD_CHECK ? &checked : record(p, (int)kind, a, b);
}

/* a ^ b. */
static built build_power(parser *p, built a, built b)
{
    if (p->mode == BUILD_EXPR)
        return nbs_make2(p->s, NB_SYM_POW, a, b);
    return p->mode == BUILD_CHECK ? &checked : record(p, NB_SYM_POW, a, b);
}

/* -a. A number written right after the minus (-2, not -(2) or -2^2) is
 * recorded as the constant -2 (0 for -0), as the canonical form has it. */
static built build_negation(parser *p, built a, bool number_follows)
{
    if (p->mode == BUILD_EXPR)
        return negate(p, a);
    if (p->mode == BUILD_CHECK || !a)
        return a;
    if (number_follows && a == p->literal) {
        double v = -nb_tensor_item(p->literal);
        nb_tensor_set(p->literal, 0, v == 0 ? 0 : v);
        return a;
    }
    return record(p, NBS_NEG, a, NULL);
}

/* One operand @p x of a sum (@p op '+' or '-') or a product ('*' or '/'),
 * @p first or joined to those before: gathered for the canonical flat node,
 * or recorded left to right into *acc. False after an error. */
static bool fold(parser *p, operands *l, built *acc, char op, built x, bool first)
{
    if (!x)
        return false;
    bool sum = op == '+' || op == '-';
    if (p->mode == BUILD_EXPR) {
        if (op == '-')
            x = negate(p, x);
        else if (op == '/')
            x = reciprocal(p, x);
        return sum ? push(p, l, x) : push_factor(p, l, x);
    }
    if (first || p->mode == BUILD_CHECK) {
        *acc = x;
    } else {
        int kind = op == '+' ? NB_SYM_ADD : op == '-' ? NBS_SUB : op == '*' ? NB_SYM_MUL : NBS_DIV;
        *acc = record(p, kind, *acc, x);
    }
    return *acc != NULL;
}

/* The sum or product (@p kind) that fold gathered. */
static built fold_end(parser *p, operands *l, built acc, nb_sym_kind kind, bool ok)
{
    if (p->mode == BUILD_EXPR)
        return kind == NB_SYM_MUL ? product(p, l, ok) : finish(p, l, kind, ok);
    if (!ok)
        p->failed = true;
    return ok ? acc : NULL;
}

/* ---------------------------------------------------------- the grammar */

static built call(parser *p, size_t name_start, size_t name_end)
{
    int f = find_function(p->text + name_start, name_end - name_start);
    char name[NBS_MAX_NAME + 1];
    size_t n = name_end - name_start;
    memcpy(name, p->text + name_start, n);
    name[n] = '\0';
    if (f < 0) {
        fail_at(p, name_start, "unknown function '%.40s'", name);
        return NULL;
    }
    built args[2] = {NULL, NULL};
    int n_args = 0;
    if (!next(p)) /* past '(' */
        return NULL;
    for (;;) {
        built a = expr(p);
        if (!a)
            return NULL;
        if (n_args < 2)
            args[n_args] = a;
        n_args++;
        if (!is_punct(p, ','))
            break;
        if (!next(p))
            return NULL;
    }
    if (!is_punct(p, ')'))
        return fail(p, n_args < functions[f].arity ? "expected ','" : "expected ')'");
    if (n_args != functions[f].arity) {
        char what[96];
        snprintf(what, sizeof what, "%s takes %d argument%s, not %d", functions[f].name,
                 functions[f].arity, functions[f].arity == 1 ? "" : "s", n_args);
        return fail(p, what);
    }
    if (!next(p))
        return NULL;
    return build_call(p, functions[f].kind, args[0], args[1]);
}

static built primary(parser *p)
{
    if (p->kind == T_NUM) {
        built e = build_num(p, p->value);
        return e && next(p) ? e : NULL;
    }
    if (p->kind == T_NAME) {
        size_t start = p->start, end = p->end;
        if (!next(p))
            return NULL;
        if (is_punct(p, '('))
            return call(p, start, end);
        if (find_function(p->text + start, end - start) >= 0) {
            char what[NBS_MAX_NAME + 48];
            snprintf(what, sizeof what, "expected '(' after function '%.*s'", (int)(end - start),
                     p->text + start);
            return fail(p, what);
        }
        return build_var(p, start, end);
    }
    if (is_punct(p, '(')) {
        if (!next(p))
            return NULL;
        built e = expr(p);
        if (!e)
            return NULL;
        if (!is_punct(p, ')'))
            return fail(p, "expected ')'");
        return next(p) ? e : NULL;
    }
    if (is_punct(p, '*'))
        return fail(p, "expected an operand ('**' is not an operator: use '^')");
    return fail(p, "expected an operand");
}

static built unary(parser *p)
{
    if (p->depth >= NB_SYM_MAX_NESTING) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d", NB_SYM_MAX_NESTING);
        return fail(p, what);
    }
    p->depth++;
    built r;
    if (is_punct(p, '-')) {
        r = NULL;
        if (next(p)) {
            bool number_follows = p->kind == T_NUM;
            r = build_negation(p, unary(p), number_follows);
        }
    } else {
        r = primary(p);
        if (r && is_punct(p, '^')) {
            built ex = next(p) ? unary(p) : NULL;
            r = ex ? build_power(p, r, ex) : NULL;
        }
    }
    p->depth--;
    if (!r)
        p->failed = true;
    return r;
}

static built term(parser *p)
{
    operands l = {0};
    built acc = NULL;
    bool ok = fold(p, &l, &acc, '*', unary(p), true);
    while (ok && (is_punct(p, '*') || is_punct(p, '/'))) {
        char op = p->text[p->start];
        ok = next(p) && fold(p, &l, &acc, op, unary(p), false);
    }
    return fold_end(p, &l, acc, NB_SYM_MUL, ok);
}

static built expr(parser *p)
{
    operands l = {0};
    built acc = NULL;
    bool ok = fold(p, &l, &acc, '+', term(p), true);
    while (ok && (is_punct(p, '+') || is_punct(p, '-'))) {
        char op = p->text[p->start];
        ok = next(p) && fold(p, &l, &acc, op, term(p), false);
    }
    return fold_end(p, &l, acc, NB_SYM_ADD, ok);
}

/* Line and column (1-based, in bytes) of the error's offset in the text. */
static void locate(nb_error *e, const char *text, size_t len)
{
    if (e->offset < 0 || (size_t)e->offset > len)
        return;
    size_t at = (size_t)e->offset, line_start = 0;
    e->line = 1;
    for (const char *nl = text; (nl = memchr(nl, '\n', at - (size_t)(nl - text))) != NULL; nl++) {
        e->line++;
        line_start = (size_t)(nl - text) + 1;
    }
    e->column = (int64_t)(at - line_start) + 1;
}

static built parse(parser *p)
{
    if (p->len > NB_SYM_MAX_INPUT) {
        nbs_error(p->s, NB_ERR_PARSE, NB_SYM_MAX_INPUT,
                  "input of %zu bytes is longer than %d at %d", p->len, NB_SYM_MAX_INPUT,
                  NB_SYM_MAX_INPUT);
        return NULL;
    }
    if (!next(p))
        return NULL;
    if (p->kind == T_END) {
        nbs_error(p->s, NB_ERR_PARSE, (int64_t)p->start, "empty expression at %zu", p->start);
        return NULL;
    }
    built e = expr(p);
    if (!e)
        return NULL;
    if (p->kind != T_END)
        return fail(p, is_punct(p, ')') ? "unmatched ')'" : "expected an operator");
    return e;
}

/* Walk @p text with the builder @p mode; a parse error is located. */
static built walk(nb_sym *s, const char *text, size_t len, build_mode mode, const nbs_binding *b)
{
    parser p = {.s = s, .mode = mode, .bind = b, .text = text ? text : "", .len = len};
    built r = parse(&p);
    if (!r)
        locate(&s->err, p.text, len);
    return r;
}

const nb_expr *nb_sym_parse(nb_sym *s, const char *text, size_t len)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_parse");
    if (!text && len > 0) {
        nbs_error(s, NB_ERR_NULL, -1, "parse: text is NULL");
        return NULL;
    }
    return walk(s, text, len, BUILD_EXPR, NULL);
}

/* The text is checked first, so that it gives the parse error
 * nb_sym_parse would give before anything is recorded. */
nb_tensor *nb_sym_record(nb_graph *g, nb_sym *s, const char *text, size_t len, int n,
                         const char *const *names, nb_tensor *const *values)
{
    if (!s)
        return NULL;
    nbs_clear(s, "nb_sym_record");
    nbs_binding b;
    if (!nbs_bind(s, &b, "record", "a text", text || len == 0, g, n, names, values) ||
        !walk(s, text, len, BUILD_CHECK, NULL))
        return NULL;
    return (nb_tensor *)walk(s, text, len, BUILD_GRAPH, &b);
}
