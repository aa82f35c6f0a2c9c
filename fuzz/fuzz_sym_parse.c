/* libFuzzer target for the symbolic module: parse arbitrary bytes (with
 * their explicit length); on success differentiate, simplify, print, read
 * the text back and evaluate; on failure check the error is well formed.
 * The bytes are also recorded as written (nb_sym_record), which must fail
 * with the same parse error or succeed when they parse.
 * Any crash, leak, sanitizer report or broken invariant is a finding. */

#include "nabla.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double eval_all(nb_sym *s, const nb_expr *e, int n, const char *const *names)
{
    double values[8], out = NAN;
    for (int i = 0; i < n && i < 8; i++)
        values[i] = 0.75 + 0.125 * i;
    nb_sym_eval(s, e, n < 8 ? n : 8, names, values, &out);
    return out;
}

/* Record the bytes with the variables names[0..n) bound to scalars: a
 * parse error must be @p parsed's (NULL when the text parsed), and text
 * that parsed is recorded when every variable has a value. */
static void record(const uint8_t *data, size_t size, const nb_error *parsed, int n,
                   const char *const *names)
{
    nb_sym *s = nb_sym_new();
    nb_graph *g = nb_graph_new();
    nb_tensor *values[8];
    bool ok = s && g;
    for (int i = 0; ok && i < n && i < 8; i++)
        ok = (values[i] = nb_scalar(g, NB_F64, 0.75 + 0.125 * i)) != NULL;
    if (ok) {
        nb_tensor *y = nb_sym_record(g, s, (const char *)data, size, n < 8 ? n : 8, names, values);
        const nb_error *err = nb_sym_error(s);
        if (parsed && parsed->status == NB_ERR_PARSE &&
            (y || err->status != NB_ERR_PARSE || strcmp(err->msg, parsed->msg) != 0 ||
             err->offset != parsed->offset || err->line != parsed->line ||
             err->column != parsed->column))
            __builtin_trap();
        if (!parsed && n <= 8 && !y && err->status != NB_ERR_NOMEM &&
            nb_graph_status(g) != NB_ERR_NOMEM)
            __builtin_trap();
    }
    nb_graph_free(g);
    nb_sym_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_sym *s = nb_sym_new();
    if (!s)
        return 0;
    const nb_expr *e = nb_sym_parse(s, (const char *)data, size);
    if (!e) {
        record(data, size, nb_sym_error(s), 0, NULL);
        /* a failure always says why, and a parse error says where */
        if (nb_sym_status(s) == NB_OK || nb_sym_error(s)->msg[0] == '\0')
            __builtin_trap();
        if (nb_sym_status(s) == NB_ERR_PARSE &&
            (nb_sym_error(s)->offset < 0 || (uint64_t)nb_sym_error(s)->offset > size ||
             nb_sym_error(s)->line < 1 || nb_sym_error(s)->column < 1 ||
             nb_sym_error(s)->column > nb_sym_error(s)->offset + 1))
            __builtin_trap();
        nb_sym_free(s);
        return 0;
    }
    const char *names[8];
    int n = nb_sym_vars(s, e, names, 8);
    if (n < 0)
        __builtin_trap();
    double value = eval_all(s, e, n, names);
    record(data, size, NULL, n, names);

    /* the printed text reads back to the same node (unless it nests too
     * deeply to parse), so to the same value */
    const char *text = nb_sym_str(s, e);
    if (text) {
        size_t len = strlen(text);
        char *copy = (char *)malloc(len + 1);
        if (copy) {
            memcpy(copy, text, len + 1);
            const nb_expr *back = nb_sym_parse(s, copy, len);
            if (back) {
                if (back != e)
                    __builtin_trap();
                double again = eval_all(s, back, n, names);
                bool same = (isnan(value) && isnan(again)) || value == again ||
                            fabs(value - again) <= 1e-9 * fmax(1, fabs(value));
                if (!same)
                    __builtin_trap();
            } else if (nb_sym_status(s) != NB_ERR_PARSE) {
                __builtin_trap();
            }
            free(copy);
        }
    }

    /* derivatives in each variable, their sizes and text */
    for (int i = 0; i < n && i < 8; i++) {
        const nb_expr *d = nb_sym_diff(s, e, names[i]);
        if (!d)
            continue;
        if (nb_sym_dag_size(s, d) < 1 || nb_sym_tree_size(d) < 1)
            __builtin_trap();
        (void)nb_sym_str(s, d);
        (void)eval_all(s, d, n, names);
    }
    (void)nb_sym_simplify(s, e);
    nb_sym_free(s);
    return 0;
}
