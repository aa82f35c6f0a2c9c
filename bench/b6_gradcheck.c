/* B6 gradcheck: check every gradient of a small model. An 8-16-16-4 tanh
 * MLP (He-uniform weights as the reference, zero biases, f64) with mean
 * softmax cross-entropy on a fixed batch of 8: nb_gradcheck with the six
 * parameters (model tensors) as the inputs of the checked function, central
 * differences with eps 1e-6, atol 1e-5, rtol 1e-3 (the reference's
 * settings). nabla's check compares both the reverse-mode and the
 * forward-mode Jacobian with the numerical one (torch.autograd.gradcheck:
 * reverse only). check_ms = the nb_gradcheck call; max_abs_err = its worst
 * entry; evals = points evaluated, replays = those of them evaluated by
 * replaying the recorded graph (docs/gradcheck.md) instead of calling
 * loss_fn. fast_check_ms: the same check in fast mode (v^T J u only). */

#include "bench.h"

typedef struct ctx {
    const double *x; /* [8, 8] */
    const int64_t *labels;
} ctx;

/* loss(W1, b1, W2, b2, W3, b3) with the batch fixed in @p c */
static nb_tensor *loss_fn(nb_graph *g, nb_tensor *const *in, int n, void *c)
{
    const ctx *cx = c;
    nb_tensor *h = nb_tensor_from(g, NB_F64, 2, (int64_t[]){8, 8}, cx->x);
    for (int i = 0; i + 1 < n; i += 2) {
        h = nb_add(g, nb_matmul(g, h, in[i], false, false), in[i + 1]);
        if (i + 2 < n)
            h = nb_tanh(g, h);
    }
    return nb_softmax_cross_entropy(g, h, cx->labels, 8, NB_REDUCE_MEAN);
}

int main(void)
{
    nb_rng rng;
    nb_rng_seed(&rng, 0);
    nb_model *m = nb_model_new();
    nb_mlp_opts o = nb_mlp_defaults();
    o.act = NB_ACT_TANH;
    o.layer.dtype = NB_F64;
    o.layer.init = NB_INIT_HE_UNIFORM;
    o.layer.rng = &rng;
    nb_layer *net = NULL;
    if (!m || nb_mlp_new(m, NULL, (int64_t[]){8, 16, 16, 4}, 4, &o, &net) != NB_OK)
        bench_check(NULL, NULL, "mlp");
    nb_tensor *params[6];
    int np = 0;
    int64_t n_params = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p && np < 6; p = nb_model_next(m, p)) {
        params[np++] = p;
        n_params += nb_tensor_size(p);
    }
    if (np != 6)
        bench_check(NULL, NULL, "parameters");
    double x[64];
    int64_t labels[8];
    for (int i = 0; i < 64; i++)
        x[i] = nb_rng_normal(&rng);
    for (int i = 0; i < 8; i++)
        labels[i] = (int64_t)nb_rng_below(&rng, 4);
    ctx c = {x, labels};

    nb_check_opts co = nb_check_defaults();
    co.eps = 1e-6;
    co.atol = 1e-5;
    co.rtol = 1e-3;
    nb_check_result r;
    double t0 = bench_now();
    nb_status st = nb_gradcheck(loss_fn, &c, params, 6, &co, &r);
    double check_ms = 1e3 * (bench_now() - t0);
    if (st != NB_OK) {
        fprintf(stderr, "bench: gradcheck failed to run: %s\n", r.error.msg);
        return 1;
    }
    nb_check_result rf;
    co.fast = true;
    t0 = bench_now();
    st = nb_gradcheck(loss_fn, &c, params, 6, &co, &rf);
    double fast_ms = 1e3 * (bench_now() - t0);
    printf("{\"workload\": \"B6\", \"impl\": \"nabla\", \"threads\": 1, \"n_params\": %lld, "
           "\"check_ms\": %.3f, \"passed\": %s, \"max_abs_err\": %.3g, \"entries\": %lld, "
           "\"evals\": %lld, \"replays\": %lld, \"reverse_ok\": %s, \"forward_ok\": %s, "
           "\"fast_check_ms\": %.3f, "
           "\"fast_passed\": %s}\n",
           (long long)n_params, check_ms, r.pass ? "true" : "false", r.worst.abs_err,
           (long long)r.n_entries, (long long)r.evals, (long long)r.replays,
           r.reverse_ok ? "true" : "false", r.forward_ok ? "true" : "false", fast_ms,
           st == NB_OK && rf.pass ? "true" : "false");
    nb_layer_free(net);
    nb_model_free(m);
    return 0;
}
