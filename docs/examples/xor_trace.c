/* The trace of a small tensor graph recorded from C: the course notes' XOR
 * network (W = [[1,1],[1,1]], c = [0,-1], w = [1,-2], b = 0, ReLU) on the
 * input x = [1, 0], whose output is 1. nb_trace_new follows its 9 parameter
 * elements (9 forward sweeps, 1 reverse sweep); the table goes to stdout,
 * and with a path argument the step-through page is written there.
 *
 *   xor_trace [page.html]
 */

#include <stdio.h>

#include "nabla.h"

static nb_tensor *param(nb_graph *g, const char *name, int rank, const int64_t *shape,
                        const double *v)
{
    nb_tensor *t = nb_tensor_from(g, NB_F64, rank, shape, v);
    return nb_tensor_set_name(nb_tensor_set_requires_grad(t, true), name);
}

int main(int argc, char **argv)
{
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_tensor_from(g, NB_F64, 2, (int64_t[]){1, 2}, (double[]){1, 0});
    nb_tensor_set_name(x, "x");
    nb_tensor *W = param(g, "W", 2, (int64_t[]){2, 2}, (double[]){1, 1, 1, 1});
    nb_tensor *c = param(g, "c", 1, (int64_t[]){2}, (double[]){0, -1});
    nb_tensor *w = param(g, "w", 2, (int64_t[]){2, 1}, (double[]){1, -2});
    nb_tensor *b = param(g, "b", 0, NULL, (double[]){0});
    nb_tensor *h = nb_relu(g, nb_add(g, nb_matmul(g, x, W, false, false), c));
    nb_tensor *y = nb_add(g, nb_matmul(g, h, w, false, false), b);

    nb_tensor *params[4] = {W, c, w, b};
    nb_error err;
    nb_trace *tr = nb_trace_new(g, y, params, 4, &err);
    if (!tr) {
        fprintf(stderr, "xor_trace: %s\n", err.msg);
        nb_graph_free(g);
        return 1;
    }
    int rc = nb_trace_print(tr, stdout, &err) == NB_OK ? 0 : 1;
    if (rc == 0 && argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f || nb_trace_html(tr, f, "XOR: y = relu(x W + c) w + b at x = [1, 0]", &err) != NB_OK)
            rc = 1;
        if (f && fclose(f) != 0)
            rc = 1;
        if (rc)
            fprintf(stderr, "xor_trace: %s: %s\n", argv[1], f ? err.msg : "cannot open");
    }
    /* the cost docs/teaching.md quotes: 9 forward sweeps, 1 reverse */
    if (nb_trace_sweeps(tr) != 9) {
        fprintf(stderr, "xor_trace: %d forward sweeps, not 9\n", nb_trace_sweeps(tr));
        rc = 1;
    }
    /* the notes' network answers 1 for [1, 0] */
    if (nb_tensor_item(y) != 1) {
        fprintf(stderr, "xor_trace: y = %g, not 1\n", nb_tensor_item(y));
        rc = 1;
    }
    nb_trace_free(tr);
    nb_graph_free(g);
    return rc;
}
