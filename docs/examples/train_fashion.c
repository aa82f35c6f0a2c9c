/* Train an MLP on Fashion-MNIST with the training helper (docs/training.md).
 *
 *   train_fashion [--b2] [--epochs N] [--threads N] [--seed S] [--val N]
 *                 [--patience P] [--dir DIR]
 *
 * Default: 784-256-128-10 ReLU with batch normalisation and dropout 0.2,
 * AdamW (lr 1e-3, weight decay 1e-4) with a cosine schedule over the
 * epochs, batch 128, random horizontal flips, 30 epochs.
 * --b2: the reference configuration B2 of the benchmark workloads
 * (784-256-128-10 ReLU, Adam 1e-3, batch 128, nothing else), 10 epochs.
 * --val N holds N random training images out for validation (needed by
 * --patience, early stopping on validation accuracy).
 * Pixels are scaled to [0, 1]. Prints one line per epoch and a summary. */

#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool print_epoch(void *ud, const nb_epoch_report *r)
{
    (void)ud;
    printf("epoch %2d/%d  loss %.4f  train %.4f", r->epoch, r->epochs, r->loss, r->train_acc);
    if (r->val_acc == r->val_acc)
        printf("  val %.4f", r->val_acc);
    printf("  test %.4f  lr %.2e  |g| %.3f  %.1f s\n", r->test_acc, r->lr, r->grad_norm_mean,
           r->seconds);
    fflush(stdout);
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: train_fashion [--b2] [--epochs N] [--threads N] [--seed S] "
                    "[--val N] [--patience P] [--dir DIR]\n");
    return 2;
}

int main(int argc, char **argv)
{
    bool b2 = false;
    int epochs = -1, threads = 1, patience = 0;
    long long seed = 1, n_val = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--b2") == 0)
            b2 = true;
        else if (strcmp(a, "--epochs") == 0 && v)
            epochs = atoi(v), i++;
        else if (strcmp(a, "--threads") == 0 && v)
            threads = atoi(v), i++;
        else if (strcmp(a, "--seed") == 0 && v)
            seed = atoll(v), i++;
        else if (strcmp(a, "--val") == 0 && v)
            n_val = atoll(v), i++;
        else if (strcmp(a, "--patience") == 0 && v)
            patience = atoi(v), i++;
        else if (strcmp(a, "--dir") == 0 && v)
            dir = v, i++;
        else
            return usage();
    }
    if (epochs < 0)
        epochs = b2 ? 10 : 30;

    nb_error derr;
    nb_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
    if (nb_dataset_fashion_mnist(dir, true, NULL, &all, &derr) != NB_OK ||
        nb_dataset_fashion_mnist(dir, false, NULL, &test, &derr) != NB_OK) {
        fprintf(stderr, "train_fashion: %s\n", derr.msg);
        nb_dataset_free(all);
        return 1;
    }
    nb_dataset_scale(all, 255);
    nb_dataset_scale(test, 255);

    nb_rng rng;
    nb_rng_seed(&rng, (uint64_t)seed);
    int64_t n_all = nb_dataset_count(all);
    if (n_val < 0 || n_val >= n_all ||
        nb_dataset_split(all, n_val ? &rng : NULL, n_all - n_val, n_val, &train,
                         n_val ? &val : NULL, NULL) != NB_OK) {
        fprintf(stderr, "train_fashion: bad --val %lld\n", n_val);
        return 1;
    }

    nb_model *m = nb_model_new();
    nb_mlp_opts mo = nb_mlp_defaults(); /* ReLU, He-uniform */
    mo.layer.rng = &rng;
    if (!b2) {
        mo.batch_norm = true;
        mo.dropout = 0.2;
    }
    nb_layer *net = NULL;
    nb_status st = nb_mlp_new(m, NULL, (int64_t[]){784, 256, 128, 10}, 4, &mo, &net);
    if (st != NB_OK) {
        fprintf(stderr, "train_fashion: %s\n", nb_status_str(st));
        return 1;
    }

    nb_optim_opts oo = nb_optim_defaults(b2 ? NB_OPTIM_ADAM : NB_OPTIM_ADAMW);
    oo.lr = 1e-3;
    if (!b2) {
        oo.weight_decay = 1e-4;
        oo.schedule.kind = NB_SCHED_COSINE;
        oo.schedule.period = epochs;
        oo.schedule.per_epoch = true;
    }
    nb_optim *opt = nb_optim_new(&oo);

    nb_loader *ld = NULL;
    nb_loader_new(train, 128, true, false, &ld);
    if (!b2)
        nb_loader_set_augment(ld, &(nb_augment){.flip_prob = 0.5}, &rng);

    nb_train_opts to = nb_train_defaults();
    to.epochs = epochs;
    to.rng = &rng;
    to.threads = threads;
    to.val = val;
    to.test = test;
    to.patience = patience;
    to.layer_norms = false;
    to.on_epoch = print_epoch;
    nb_trainer *t = NULL;
    if ((st = nb_trainer_new(m, net, opt, &to, &t)) != NB_OK) {
        fprintf(stderr, "train_fashion: %s\n", nb_status_str(st));
        return 1;
    }
    printf("Fashion-MNIST, %s, %lld training images%s, %d epochs, %d thread(s), seed %lld\n",
           b2 ? "B2 (784-256-128-10 ReLU, Adam 1e-3, batch 128)"
              : "784-256-128-10 ReLU + batch norm + dropout 0.2, AdamW 1e-3 wd 1e-4, cosine, "
                "flips, batch 128",
           (long long)nb_dataset_count(train), n_val ? " (rest: validation)" : "", epochs, threads,
           seed);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st = nb_trainer_fit(t, ld);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = 0;
    if (st != NB_OK) {
        fprintf(stderr, "train_fashion: %s\n", nb_trainer_error(t)->msg);
        rc = 1;
    } else {
        double acc = 0, loss = 0;
        nb_trainer_evaluate(t, test, &acc, &loss);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        printf("test accuracy %.4f (loss %.4f) after %d epochs%s, %.1f s\n", acc, loss,
               nb_trainer_epoch(t),
               nb_trainer_stopped_early(t) ? " (stopped early; best validation epoch restored)"
                                           : "",
               secs);
    }
    nb_trainer_free(t);
    nb_loader_free(ld);
    nb_optim_free(opt);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(train);
    nb_dataset_free(val);
    nb_dataset_free(test);
    nb_dataset_free(all);
    return rc;
}
