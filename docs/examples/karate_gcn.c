/* A graph network (docs/models.md, "Graph networks"): two graph-convolution
 * layers on Zachary's karate club, trained from one labelled member per
 * faction (the instructor, member 0, and the administrator, member 33),
 * then asked the faction of the 32 others.
 *
 *   karate_gcn [karate_club.txt]   (default: the file beside this one)
 *
 * Each member's input is its one-hot identity (34 features), as in Kipf
 * and Welling's example; what the network learns comes from the graph. */

#include <stdio.h>
#include <string.h>

#include "nabla.h"

enum { MEMBERS = 34, MAX_EDGES = 100 };

/* The friendships and factions of the file; the number of edges, or -1. */
static int64_t read_club(const char *path, int64_t *edges, int64_t *faction)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    int64_t n = 0;
    long a, b;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "edge %ld %ld", &a, &b) == 2 && n < MAX_EDGES) {
            edges[2 * n] = a, edges[2 * n + 1] = b;
            n++;
        } else if (sscanf(line, "club %ld %ld", &a, &b) == 2 && a >= 0 && a < MEMBERS) {
            faction[a] = b;
        }
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : SOURCE_DIR "/karate_club.txt";
    int64_t edges[2 * MAX_EDGES], faction[MEMBERS];
    int64_t n_edges = read_club(path, edges, faction);
    if (n_edges < 0) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }

    /* gcn 34 -> 16, relu, gcn 16 -> 2 over the club's graph */
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_layer_opts o = {.rng = &rng, .dtype = NB_F64};
    nb_layer *net, *l;
    nb_error err;
    nb_sequential_new("", &net);
    if (nb_gcn_new(m, "gcn1", MEMBERS, 16, MEMBERS, edges, n_edges, &o, &l, &err) != NB_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    nb_sequential_add(net, l);
    nb_act_layer_new(m, "act", NB_ACT_RELU, NULL, 16, &o, &l), nb_sequential_add(net, l);
    nb_gcn_new(m, "gcn2", 16, 2, MEMBERS, edges, n_edges, &o, &l, NULL);
    nb_sequential_add(net, l);

    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(&oo);
    nb_graph *g = nb_graph_new();
    const int64_t labelled[2] = {0, 33}, labels[2] = {faction[0], faction[33]};
    for (int epoch = 0; epoch < 200; epoch++) {
        nb_model_zero_grad(m);
        nb_tensor *x = nb_one_hot(g, NB_F64, (const int64_t[]){0,  1,  2,  3,  4,  5,  6,  7,  8,
                                                               9,  10, 11, 12, 13, 14, 15, 16, 17,
                                                               18, 19, 20, 21, 22, 23, 24, 25, 26,
                                                               27, 28, 29, 30, 31, 32, 33},
                                  MEMBERS, MEMBERS);
        nb_tensor *out = nb_layer_forward(g, net, x, true);
        /* the loss sees the two labelled members only */
        nb_tensor *seen = nb_gather(g, out, 0, labelled, 2);
        nb_tensor *loss = nb_softmax_cross_entropy(g, seen, labels, 2, NB_REDUCE_MEAN);
        if (!loss || nb_backward(g, loss) != NB_OK || nb_optim_step(opt, m) != NB_OK) {
            fprintf(stderr, "%s\n", nb_graph_error(g)->msg);
            return 1;
        }
        if (epoch < 199)
            nb_graph_reset(g);
        else { /* the factions of the 32 members the network was not told */
            int right = 0;
            for (int64_t i = 1; i < MEMBERS - 1; i++) {
                int64_t guess = nb_tensor_get(out, 2 * i + 1) > nb_tensor_get(out, 2 * i) ? 1 : 0;
                right += guess == faction[i];
            }
            printf("karate club: %d of 32 unlabelled members placed in their faction (%.1f%%)\n",
                   right, 100.0 * right / 32);
            nb_graph_free(g);
            nb_optim_free(opt);
            nb_layer_free(net);
            nb_model_free(m);
            return right >= 28 ? 0 : 1;
        }
    }
    return 1;
}
