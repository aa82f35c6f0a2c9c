/* nabla demo: the worked examples of the course notes by both modes, then
 * a small network trained on a spiral. */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "svg.h"

static const char *demo_usage =
    "usage: nabla demo [--seed N] [--epochs N] [--plot FILE.svg]\n"
    "\n"
    "  --seed N     random seed for data and initial weights (default 1)\n"
    "  --epochs N   full-batch gradient steps of the spiral network (default 600)\n"
    "  --plot FILE  write the loss and accuracy curves as SVG\n";

/* f(x,y,z) = (x+y)·z at (-2,5,-4) and σ(wx+b) at x=1, w=0, b=0. */
static int worked_examples(void)
{
    nb_graph *g = nb_graph_new();
    if (!g)
        return 1;
    nb_tensor *x = nb_tensor_set_name(nb_tensor_requires_grad(nb_scalar(g, NB_F64, -2), true), "x");
    nb_tensor *y = nb_tensor_set_name(nb_tensor_requires_grad(nb_scalar(g, NB_F64, 5), true), "y");
    nb_tensor *z = nb_tensor_set_name(nb_tensor_requires_grad(nb_scalar(g, NB_F64, -4), true), "z");
    nb_tensor *f = nb_mul(g, nb_add(g, x, y), z);
    if (!f || nb_backward(g, f) != NB_OK) {
        fprintf(stderr, "nabla: %s\n", nb_graph_errmsg(g));
        nb_graph_free(g);
        return 1;
    }
    printf("f(x,y,z) = (x+y)*z at (-2, 5, -4) = %g\n", nb_tensor_item(f));
    printf("  reverse mode (one sweep):   df/dx = %g  df/dy = %g  df/dz = %g\n",
           nb_tensor_item(nb_tensor_grad(x)), nb_tensor_item(nb_tensor_grad(y)),
           nb_tensor_item(nb_tensor_grad(z)));
    nb_tensor *xs[3] = {x, y, z};
    printf("  forward mode (three sweeps):");
    for (int i = 0; i < 3; i++) {
        nb_tensor *t[3], *df = NULL;
        for (int k = 0; k < 3; k++)
            t[k] = nb_scalar(g, NB_F64, k == i);
        if (nb_jvp(g, f, xs, t, 3, &df) != NB_OK)
            break;
        printf(" df/d%s = %g ", nb_tensor_name(xs[i]), nb_tensor_item(df));
    }
    printf("\n");
    nb_graph_reset(g);

    nb_tensor *in = nb_scalar(g, NB_F64, 1);
    nb_tensor *w = nb_tensor_requires_grad(nb_scalar(g, NB_F64, 0), true);
    nb_tensor *b = nb_tensor_requires_grad(nb_scalar(g, NB_F64, 0), true);
    nb_tensor *s =
        nb_div(g, nb_scalar(g, NB_F64, 1),
               nb_add_scalar(g, nb_exp(g, nb_neg(g, nb_add(g, nb_mul(g, w, in), b))), 1));
    nb_tensor *ws[2] = {w, b};
    nb_tensor *one = nb_scalar(g, NB_F64, 1), *zero = nb_scalar(g, NB_F64, 0);
    nb_tensor *tw[2] = {one, zero}, *tb[2] = {zero, one}, *dw = NULL, *db = NULL;
    if (!s || nb_backward(g, s) != NB_OK || nb_jvp(g, s, ws, tw, 2, &dw) != NB_OK ||
        nb_jvp(g, s, ws, tb, 2, &db) != NB_OK) {
        fprintf(stderr, "nabla: %s\n", nb_graph_errmsg(g));
        nb_graph_free(g);
        return 1;
    }
    printf("f(x;w,b) = 1/(exp(-(wx+b))+1) at x=1, w=0, b=0 = %g\n", nb_tensor_item(s));
    printf("  reverse mode: df/dw = %g  df/db = %g\n", nb_tensor_item(nb_tensor_grad(w)),
           nb_tensor_item(nb_tensor_grad(b)));
    printf("  forward mode: df/dw = %g  df/db = %g\n\n", nb_tensor_item(dw), nb_tensor_item(db));
    nb_graph_free(g);
    return 0;
}

enum { N_PER_CLASS = 100, N_CLASSES = 3, N_POINTS = N_PER_CLASS * N_CLASSES, HIDDEN = 32 };

/* Three interleaved spiral arms in the plane, with a little noise. */
static void make_spiral(nb_rng *rng, float *X, int64_t *labels)
{
    for (int c = 0; c < N_CLASSES; c++)
        for (int i = 0; i < N_PER_CLASS; i++) {
            int k = c * N_PER_CLASS + i;
            double r = (double)i / N_PER_CLASS;
            double t = c * 4.0 + 4.0 * r + 0.2 * nb_rng_normal(rng);
            X[2 * k] = (float)(r * sin(t));
            X[2 * k + 1] = (float)(r * cos(t));
            labels[k] = c;
        }
}

/* Mean softmax cross-entropy of logits [N,C] against one-hot targets,
 * written with primitives: logsumexp with the max subtracted. */
static nb_tensor *cross_entropy(nb_graph *g, nb_tensor *logits, nb_tensor *onehot)
{
    int axis = 1;
    nb_tensor *m = nb_stop_gradient(g, nb_max(g, logits, &axis, 1, true));
    nb_tensor *shifted = nb_sub(g, logits, m);
    nb_tensor *lse = nb_log(g, nb_sum(g, nb_exp(g, shifted), &axis, 1, true));
    nb_tensor *logp = nb_sub(g, shifted, lse);
    nb_tensor *picked = nb_sum(g, nb_mul(g, logp, onehot), &axis, 1, false);
    return nb_neg(g, nb_mean(g, picked, NULL, 0, false));
}

static int train_spiral(uint64_t seed, int epochs, const char *plot)
{
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    float X[2 * N_POINTS];
    int64_t labels[N_POINTS];
    make_spiral(&rng, X, labels);

    double *curve = NULL;
    nb_model *m = nb_model_new();
    nb_graph *g = nb_graph_new();
    nb_tensor *W1 = NULL, *b1 = NULL, *W2 = NULL, *b2 = NULL;
    int rc = 1;
    if (!m || !g || nb_model_add(m, "fc1.weight", NB_F32, 2, (int64_t[]){2, HIDDEN}, &W1) ||
        nb_model_add(m, "fc1.bias", NB_F32, 1, (int64_t[]){HIDDEN}, &b1) ||
        nb_model_add(m, "fc2.weight", NB_F32, 2, (int64_t[]){HIDDEN, N_CLASSES}, &W2) ||
        nb_model_add(m, "fc2.bias", NB_F32, 1, (int64_t[]){N_CLASSES}, &b2)) {
        fprintf(stderr, "nabla: out of memory\n");
        goto done;
    }
    /* Xavier-uniform weights: U(-a, a), a = sqrt(6/(n_in+n_out)) */
    nb_tensor *Ws[2] = {W1, W2};
    for (int k = 0; k < 2; k++) {
        double a = sqrt(6.0 / (double)(nb_tensor_dim(Ws[k], 0) + nb_tensor_dim(Ws[k], 1)));
        for (int64_t i = 0; i < nb_tensor_size(Ws[k]); i++)
            nb_tensor_set(Ws[k], i, a * (2 * nb_rng_uniform(&rng) - 1));
    }

    printf("training a 2-%d-%d tanh network on %d spiral points (full batch, SGD with momentum)\n",
           HIDDEN, N_CLASSES, N_POINTS);
    float velocity[2 * HIDDEN + HIDDEN + HIDDEN * N_CLASSES + N_CLASSES] = {0};
    const double lr = 0.5, mu = 0.9;
    double start = cli_now();
    double loss_value = 0, acc = 0;
    curve = malloc(3 * (size_t)epochs * sizeof *curve);
    if (!curve) {
        fprintf(stderr, "nabla: out of memory\n");
        goto done;
    }
    for (int epoch = 1; epoch <= epochs; epoch++) {
        nb_model_zero_grad(m);
        nb_tensor *x = nb_tensor_from(g, NB_F32, 2, (int64_t[]){N_POINTS, 2}, X);
        nb_tensor *t = nb_one_hot(g, NB_F32, labels, N_POINTS, N_CLASSES);
        nb_tensor *h = nb_tanh(g, nb_add(g, nb_matmul(g, x, W1, false, false), b1));
        nb_tensor *logits = nb_add(g, nb_matmul(g, h, W2, false, false), b2);
        nb_tensor *loss = cross_entropy(g, logits, t);
        if (!loss || nb_backward(g, loss) != NB_OK) {
            fprintf(stderr, "nabla: %s\n", nb_graph_errmsg(g));
            goto done;
        }
        loss_value = nb_tensor_item(loss);
        int correct = 0;
        for (int i = 0; i < N_POINTS; i++) {
            int best = 0;
            for (int c = 1; c < N_CLASSES; c++)
                if (nb_tensor_get(logits, i * N_CLASSES + c) >
                    nb_tensor_get(logits, i * N_CLASSES + best))
                    best = c;
            correct += best == labels[i];
        }
        acc = (double)correct / N_POINTS;
        curve[epoch - 1] = epoch;
        curve[epochs + epoch - 1] = loss_value;
        curve[2 * epochs + epoch - 1] = acc;
        /* SGD with momentum over every parameter of the model */
        int64_t off = 0;
        for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
            float *w = nb_tensor_f32(p);
            const float *gr = nb_tensor_f32(nb_tensor_grad(p));
            for (int64_t i = 0; i < nb_tensor_size(p); i++, off++) {
                velocity[off] = (float)(mu * velocity[off] - lr * gr[i]);
                w[i] += velocity[off];
            }
        }
        nb_graph_reset(g);
        if (epoch == 1 || epoch % 100 == 0 || epoch == epochs)
            printf("  epoch %4d  loss %.4f  train accuracy %5.1f%%\n", epoch, loss_value,
                   100 * acc);
    }
    printf("%d steps in %.2f s; final accuracy %.1f%%\n", epochs, cli_now() - start, 100 * acc);
    rc = 0;
    if (plot) {
        svg_series s[2] = {{"loss", epochs, curve, curve + epochs, false},
                           {"accuracy", epochs, curve, curve + 2 * epochs, true}};
        if (svg_chart_file(plot, "nabla demo: spiral network", "step", "loss / accuracy", s, 2)) {
            cli_error("demo", "cannot write %s: %s", plot, strerror(errno));
            rc = 2;
        } else
            printf("loss curve written to %s\n", plot);
    }
done:
    free(curve);
    nb_graph_free(g);
    nb_model_free(m);
    return rc;
}

int cmd_demo(int argc, char **argv)
{
    long seed = 1, epochs = 600;
    const char *plot = NULL;
    const cli_opt opts[] = {
        {"--seed", CLI_INT, &seed, 0, 2147483647},
        {"--epochs", CLI_INT, &epochs, 1, 1000000},
        {"--plot", CLI_STR, &plot, 0, 0},
    };
    int rc = cli_parse("demo", demo_usage, argc, argv, 2, opts, 3, NULL, 0, NULL);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (worked_examples() != 0)
        return 1;
    return train_spiral((uint64_t)seed, (int)epochs, plot);
}
