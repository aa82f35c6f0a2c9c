/* nabla demo: the worked examples of the course notes by both modes, then
 * a network trained on the built-in digits, checked and plotted. */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "svg.h"

static const char *demo_usage =
    "usage: nabla demo [--seed N] [--epochs N] [--plot FILE.svg]\n"
    "\n"
    "The course notes' worked examples by reverse and forward mode, then a\n"
    "64-128-64-10 ReLU network trained on the built-in digits data set, a\n"
    "gradcheck of the trained network as it is (nb_check_model), and the loss\n"
    "curve as SVG.\n"
    "\n"
    "  --seed N     random seed for initial weights and batch order (default 1)\n"
    "  --epochs N   training epochs (default 20)\n"
    "  --plot FILE  where to write the curves (default nabla-demo-loss.svg)\n";

/* f(x,y,z) = (x+y)·z at (-2,5,-4) and σ(wx+b) at x=1, w=0, b=0. */
static int worked_examples(void)
{
    nb_graph *g = nb_graph_new();
    if (!g)
        return 1;
    nb_tensor *x =
        nb_tensor_set_name(nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, -2), true), "x");
    nb_tensor *y =
        nb_tensor_set_name(nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 5), true), "y");
    nb_tensor *z =
        nb_tensor_set_name(nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, -4), true), "z");
    nb_tensor *f = nb_mul(g, nb_add(g, x, y), z);
    if (!f || nb_backward(g, f) != NB_OK) {
        fprintf(stderr, "nabla: %s\n", nb_graph_error(g)->msg);
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
    nb_tensor *w = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 0), true);
    nb_tensor *b = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 0), true);
    nb_tensor *s =
        nb_div(g, nb_scalar(g, NB_F64, 1),
               nb_add_scalar(g, nb_exp(g, nb_neg(g, nb_add(g, nb_mul(g, w, in), b))), 1));
    nb_tensor *ws[2] = {w, b};
    nb_tensor *one = nb_scalar(g, NB_F64, 1), *zero = nb_scalar(g, NB_F64, 0);
    nb_tensor *tw[2] = {one, zero}, *tb[2] = {zero, one}, *dw = NULL, *db = NULL;
    if (!s || nb_backward(g, s) != NB_OK || nb_jvp(g, s, ws, tw, 2, &dw) != NB_OK ||
        nb_jvp(g, s, ws, tb, 2, &db) != NB_OK) {
        fprintf(stderr, "nabla: %s\n", nb_graph_error(g)->msg);
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

/* A progress bar on a terminal, a plain line now and then otherwise. */
static void progress(bool tty, int epoch, int epochs, double loss, double acc)
{
    if (tty) {
        int width = 30, done = epoch * width / epochs;
        printf("\r  [%.*s%*s] epoch %2d/%d  loss %.4f  test %5.1f%%", done,
               "##############################", width - done, "", epoch, epochs, loss, 100 * acc);
        if (epoch == epochs)
            printf("\n");
        fflush(stdout);
    } else if (epoch == 1 || epoch % 5 == 0 || epoch == epochs) {
        printf("  epoch %2d/%d  loss %.4f  test accuracy %5.1f%%\n", epoch, epochs, loss,
               100 * acc);
    }
}

/* Test accuracy of net on a whole data set (one batch, values only). */
static double accuracy_on(nb_graph *g, nb_layer *net, nb_loader *all)
{
    nb_batch b;
    double acc = NAN;
    nb_graph_set_recording(g, false);
    if (nb_loader_start(all, NULL) == NB_OK && nb_loader_next(g, all, &b)) {
        nb_tensor *logits = nb_layer_forward(g, net, b.x, false);
        if (!logits || nb_accuracy(logits, b.labels, b.size, &acc) != NB_OK)
            acc = NAN;
    }
    nb_graph_reset(g);
    nb_graph_set_recording(g, true);
    return acc;
}

/* The gradcheck of the trained model: the network as it is, on 8 test
 * images, against every one of its parameters (64 entries of each, drawn
 * at random, and a random direction per parameter in forward mode), on
 * an f64 twin of the f32 network (nb_check_model). */
static int check_model(nb_layer *net, nb_model *m, const nb_batch *b)
{
    nb_graph *g = nb_graph_new();
    nb_tensor *x = g ? nb_tensor_from(g, NB_F32, 2, (int64_t[]){8, 64}, b->features) : NULL;
    nb_model_check_opts o = nb_model_check_defaults();
    o.max_entries = 64;
    nb_model_check_result r;
    nb_status st = x ? nb_check_model(net, m, x, &o, &r) : NB_ERR_NOMEM;
    nb_graph_free(g);
    if (st != NB_OK) {
        cli_error("demo", "gradcheck: %s", x ? r.error.msg : "out of memory");
        return 1;
    }
    printf("gradcheck of the trained network on 8 test images, against its %lld parameters "
           "(%lld entries drawn, %s)\n"
           "  worst entry %s[%lld]: reverse %.12g  numerical %.12g  -> %s\n",
           (long long)r.n_total, (long long)r.n_entries,
           r.twin ? "on an f64 twin" : nb_dtype_name(r.dtype), r.worst.param,
           (long long)r.worst.index, r.worst.analytic, r.worst.numerical,
           r.warning ? "WARNING" : r.pass ? "PASSED" : "FAILED");
    return r.pass ? 0 : 1;
}

/* 64-128-64-10 ReLU network on the built-in digits: SGD 0.05, batch 32. */
static int train_digits(uint64_t seed, int epochs, const char *plot)
{
    nb_dataset *digits = NULL, *train = NULL, *test = NULL;
    nb_model *m = nb_model_new();
    nb_graph *g = nb_graph_new();
    nb_layer *net = NULL;
    nb_optim *opt = NULL;
    nb_loader *loader = NULL, *all = NULL;
    double *curve = malloc(3 * (size_t)epochs * sizeof *curve);
    int rc = 1;
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    nb_mlp_opts mo = nb_mlp_defaults();
    mo.layer.rng = &rng;
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_SGD);
    oo.lr = 0.05;
    if (!m || !g || !curve || nb_dataset_digits(NULL, &digits) != NB_OK ||
        nb_dataset_scale(digits, 16.0) != NB_OK ||
        nb_dataset_slice(digits, 0, 1500, &train) != NB_OK ||
        nb_dataset_slice(digits, 1500, 297, &test) != NB_OK ||
        nb_mlp_new(m, NULL, (int64_t[]){64, 128, 64, 10}, 4, &mo, &net) != NB_OK ||
        !(opt = nb_optim_new(&oo)) || nb_loader_new(train, 32, true, false, &loader) != NB_OK ||
        nb_loader_new(test, 297, false, false, &all) != NB_OK) {
        cli_error("demo", "cannot set up the digits network (out of memory?)");
        goto done;
    }
    printf("training a 64-128-64-10 ReLU network on the built-in digits (1500 train, 297 "
           "test images; SGD 0.05, batch 32)\n");
    bool tty = isatty(fileno(stdout));
    double start = cli_now(), acc = 0;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        nb_batch b;
        double total = 0;
        int steps = 0;
        nb_loader_start(loader, &rng);
        while (nb_loader_next(g, loader, &b)) {
            nb_model_zero_grad(m);
            nb_tensor *logits = nb_layer_forward(g, net, b.x, true);
            nb_tensor *loss = nb_softmax_cross_entropy(g, logits, b.labels, b.size, NB_REDUCE_MEAN);
            if (!loss || nb_backward(g, loss) != NB_OK || nb_optim_step(opt, m) != NB_OK) {
                cli_error("demo", "training step failed: %s", nb_graph_error(g)->msg);
                goto done;
            }
            total += nb_tensor_item(loss);
            steps++;
            nb_graph_reset(g);
        }
        acc = accuracy_on(g, net, all);
        curve[epoch - 1] = epoch;
        curve[epochs + epoch - 1] = total / steps;
        curve[2 * epochs + epoch - 1] = acc;
        progress(tty, epoch, epochs, total / steps, acc);
    }
    printf("%d epochs in %.2f s; test accuracy %.1f%%\n", epochs, cli_now() - start, 100 * acc);

    nb_batch b;
    nb_loader_start(all, NULL);
    if (!nb_loader_next(NULL, all, &b) || check_model(net, m, &b) != 0)
        goto done;
    rc = 0;
    if (plot) {
        svg_series s[2] = {{"training loss", epochs, curve, curve + epochs, false},
                           {"test accuracy", epochs, curve, curve + 2 * epochs, true}};
        char why[512];
        if (svg_chart_file(plot, "nabla demo: digits, 64-128-64-10 ReLU", "epoch",
                           "loss / accuracy", s, 2, why, sizeof why)) {
            cli_error("demo", "%s", why);
            rc = 2;
        } else {
            printf("loss curve written to %s\n", plot);
        }
    }
done:
    free(curve);
    nb_loader_free(all);
    nb_loader_free(loader);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_graph_free(g);
    nb_model_free(m);
    nb_dataset_free(test);
    nb_dataset_free(train);
    nb_dataset_free(digits);
    return rc;
}

int cmd_demo(int argc, char **argv)
{
    long seed = 1, epochs = 20;
    const char *plot = "nabla-demo-loss.svg";
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
    return train_digits((uint64_t)seed, (int)epochs, plot);
}
