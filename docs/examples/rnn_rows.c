/* A recurrent network (docs/models.md, "A recurrent network"): each digits
 * image read as 8 rows of 8 pixels by an LSTM of 32 units, its last hidden
 * state into a linear layer of 10, trained with nb_trainer; then the same
 * step by hand with the cell, to show what the layer unrolls. */

#include <stdio.h>

#include "nabla.h"

int main(void)
{
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_dataset *all, *train, *test;
    if (nb_dataset_digits(NULL, &all) != NB_OK || nb_dataset_scale(all, 16) != NB_OK ||
        nb_dataset_split(all, NULL, 1500, 0, &train, NULL, &test) != NB_OK)
        return 1;

    /* --- the network --- */
    nb_model *m = nb_model_new();
    nb_rnn_opts ro = nb_rnn_defaults(); /* PyTorch's init, the last step out */
    ro.layer.rng = &rng;
    nb_layer_opts lo = {.rng = &rng};
    nb_layer *net, *l;
    nb_sequential_new("", &net);
    nb_reshape_layer_new("rows", 2, (const int64_t[]){8, 8}, &l); /* [N, 64] -> [N, 8, 8] */
    nb_sequential_add(net, l);
    nb_rnn_new(m, "lstm", NB_RNN_LSTM, 8, 32, &ro, &l); /* lstm.weight_ih_l0 [128, 8], ... */
    nb_sequential_add(net, l);
    nb_linear_new(m, "out", 32, 10, &lo, &l);
    nb_sequential_add(net, l);
    /* --- end of the network --- */

    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(&oo);
    nb_loader *ld;
    nb_loader_new(train, 32, true, false, &ld);
    nb_train_opts to = nb_train_defaults();
    to.epochs = 15;
    to.rng = &rng;
    nb_trainer *t;
    nb_trainer_new(m, net, opt, &to, &t);
    if (nb_trainer_fit(t, ld) != NB_OK) {
        fprintf(stderr, "%s\n", nb_trainer_error(t)->msg);
        return 1;
    }
    double acc;
    nb_trainer_evaluate(t, test, &acc, NULL);
    printf("LSTM over the rows of digits: test accuracy %.3f\n", acc);

    /* one step by hand: a cell with the layer's weights gives its first state */
    nb_model *mc = nb_model_new();
    nb_layer *cell;
    nb_rnn_cell_new(mc, "cell", NB_RNN_LSTM, 8, 32, &ro, &cell);
    nb_rnn_info li, ci;
    nb_rnn_get_info(nb_layer_find(net, "lstm"), &li);
    nb_rnn_get_info(cell, &ci);
    nb_tensor *from[4] = {li.weight_ih, li.weight_hh, li.bias_ih, li.bias_hh};
    nb_tensor *to_[4] = {ci.weight_ih, ci.weight_hh, ci.bias_ih, ci.bias_hh};
    for (int i = 0; i < 4; i++)
        for (int64_t k = 0; k < nb_tensor_size(from[i]); k++)
            nb_tensor_set(to_[i], k, nb_tensor_get(from[i], k));
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_rand_uniform(g, &rng, NB_F32, 3, (int64_t[]){2, 1, 8}, 0, 1);
    nb_tensor *c = NULL;
    nb_tensor *h = nb_rnn_cell_step(g, cell, nb_select(g, x, 1, 0), NULL, NULL, &c);
    nb_rnn_opts one = ro;
    nb_model *m1 = nb_model_new();
    nb_layer *seq1;
    nb_rnn_new(m1, "lstm", NB_RNN_LSTM, 8, 32, &one, &seq1);
    for (nb_tensor *p = nb_model_next(m1, NULL); p; p = nb_model_next(m1, p))
        for (int64_t k = 0; k < nb_tensor_size(p); k++)
            nb_tensor_set(p, k, nb_tensor_get(nb_model_get(m, nb_tensor_name(p)), k));
    nb_tensor *h1 = nb_layer_forward(g, seq1, x, false);
    int same = h && h1;
    for (int64_t k = 0; same && k < nb_tensor_size(h); k++)
        same = nb_tensor_get(h, k) == nb_tensor_get(h1, k);
    printf("one step of the cell %s one step of the layer\n", same ? "equals" : "differs from");

    nb_graph_free(g);
    nb_layer_free(seq1);
    nb_model_free(m1);
    nb_layer_free(cell);
    nb_model_free(mc);
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(all);
    nb_dataset_free(train);
    nb_dataset_free(test);
    return acc > 0.85 && same ? 0 : 1;
}
