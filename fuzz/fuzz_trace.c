/* libFuzzer target for the teaching trace: the bytes are a formula, recorded
 * as written (nb_sym_record) on scalar inputs that need gradients, then
 * traced (nb_trace_new) and written every way the trace is: the table,
 * JSON, the SVG pictures of all three modes and the step-through page.
 * A refusal must be a well-formed error; a trace whose sweeps disagree with
 * nb_grad or nb_jvp (NB_ERR_ARG from nb_trace_new's own check) is a finding,
 * as is any crash, leak or sanitizer report. */

#include "nabla.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void write_all(const nb_trace *tr, FILE *f)
{
    nb_error err;
    nb_status st[6] = {
        nb_trace_print(tr, f, &err),
        nb_trace_json(tr, f, &err),
        nb_trace_svg(tr, f, NB_TRACE_VALUES, 0, &err),
        nb_trace_svg(tr, f, NB_TRACE_FORWARD, nb_trace_sweeps(tr) - 1, &err),
        nb_trace_svg(tr, f, NB_TRACE_REVERSE, 0, &err),
        nb_trace_html(tr, f, "fuzz", &err),
    };
    bool drawable = nb_trace_nodes(tr) <= NB_TRACE_MAX_DRAWN;
    for (int i = 0; i < 6; i++)
        if (st[i] != NB_OK && !(i >= 2 && !drawable && st[i] == NB_ERR_ARG) && st[i] != NB_ERR_NOMEM)
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nb_sym *s = nb_sym_new();
    nb_graph *g = nb_graph_new();
    FILE *sink = fopen("/dev/null", "w");
    const nb_expr *e = s ? nb_sym_parse(s, (const char *)data, size) : NULL;
    const char *names[8];
    int n = e ? nb_sym_vars(s, e, names, 8) : -1;
    if (g && sink && n >= 1 && n <= 8) {
        nb_tensor *xs[8];
        for (int i = 0; i < n; i++) {
            xs[i] = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 0.5 + 0.25 * i), true);
            nb_tensor_set_name(xs[i], names[i]);
        }
        nb_tensor *y = nb_sym_record(g, s, (const char *)data, size, n, names, xs);
        if (y) {
            nb_error err;
            nb_trace *tr = nb_trace_new(g, y, xs, n, &err);
            if (!tr && (err.status == NB_OK || !err.msg[0]))
                __builtin_trap(); /* a refusal without a reason */
            if (!tr && err.status == NB_ERR_ARG && strstr(err.msg, "rules disagree"))
                __builtin_trap(); /* the sweeps and the library differ */
            if (tr)
                write_all(tr, sink);
            nb_trace_free(tr);
        }
    }
    if (sink)
        fclose(sink);
    nb_graph_free(g);
    nb_sym_free(s);
    return 0;
}
