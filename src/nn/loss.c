/* Losses, penalties and accuracy, written with primitive ops. */

#include "nn_internal.h"

#include "../ops/table.h"

#include <math.h>

nb_tensor *nbn_reduce_all(nb_graph *g, nb_tensor *x, nb_reduction r, const char *op)
{
    if (!x)
        return NULL;
    if (r == NB_REDUCE_MEAN)
        return nb_mean(g, x, NULL, 0, false);
    if (r == NB_REDUCE_SUM)
        return nb_sum(g, x, NULL, 0, false);
    nbc_error(g, NB_ERR_ARG, op, "unknown reduction %d", (int)r);
    return NULL;
}

/* Both present with equal shapes and dtypes; records an error otherwise. */
static bool same_shape(nb_graph *g, const nb_tensor *a, const nb_tensor *b, const char *op,
                       const char *what_a, const char *what_b)
{
    if (!a || !b)
        return false;
    if (!nbc_same_shape(a, b)) {
        char sa[96], sb[96];
        nbc_error(g, a->dtype != b->dtype ? NB_ERR_DTYPE : NB_ERR_SHAPE, op,
                  "%s %s %s and %s %s %s differ", what_a, nb_dtype_name(a->dtype),
                  nbc_shp(a, sa, sizeof sa), what_b, nb_dtype_name(b->dtype),
                  nbc_shp(b, sb, sizeof sb));
        return false;
    }
    return true;
}

nb_tensor *nb_mse_loss(nb_graph *g, nb_tensor *pred, nb_tensor *target, nb_reduction r)
{
    if (!same_shape(g, pred, target, "mse_loss", "prediction", "target"))
        return NULL;
    return nbn_reduce_all(g, nb_square(g, nb_sub(g, pred, target)), r, "mse_loss");
}

/* reduce(|pred − target|) */
nb_tensor *nb_l1_loss(nb_graph *g, nb_tensor *pred, nb_tensor *target, nb_reduction r)
{
    if (!same_shape(g, pred, target, "l1_loss", "prediction", "target"))
        return NULL;
    return nbn_reduce_all(g, nb_abs(g, nb_sub(g, pred, target)), r, "l1_loss");
}

/* d = pred − target: ½d² where |d| < δ, δ(|d| − ½δ) elsewhere (PyTorch's
 * HuberLoss); the mask is a constant, so d/dd = d inside, δ·sign(d) outside */
nb_tensor *nb_huber_loss(nb_graph *g, nb_tensor *pred, nb_tensor *target, double delta,
                         nb_reduction r)
{
    static const char op[] = "huber_loss";
    if (!same_shape(g, pred, target, op, "prediction", "target"))
        return NULL;
    if (!(delta > 0) || !isfinite(delta)) {
        nbc_error(g, NB_ERR_ARG, op, "delta = %g: it must be finite and > 0", delta);
        return NULL;
    }
    nb_tensor *d = nb_sub(g, pred, target);
    nb_tensor *a = nb_abs(g, d);
    nb_tensor *inside = nb_scale(g, nb_square(g, d), 0.5);
    nb_tensor *outside = nb_scale(g, nb_add_scalar(g, a, -0.5 * delta), delta);
    nb_tensor *l = nb_where(g, nb_lt_scalar(g, a, delta), inside, outside);
    return nbn_reduce_all(g, l, r, op);
}

/* −[t·ln p + (1−t)·ln(1−p)], p clamped to [eps, 1−eps] */
nb_tensor *nb_bce_loss(nb_graph *g, nb_tensor *prob, nb_tensor *target, nb_reduction r)
{
    if (!same_shape(g, prob, target, "bce_loss", "probabilities", "target"))
        return NULL;
    double eps = prob->dtype == NB_F32 ? 1e-7 : 1e-12;
    nb_tensor *p = nb_clamp(g, prob, eps, 1 - eps);
    nb_tensor *one = nbn_const(g, prob, 1);
    nb_tensor *ll = nb_add(g, nb_mul(g, target, nb_log(g, p)),
                           nb_mul(g, nb_sub(g, one, target), nb_log(g, nb_sub(g, one, p))));
    return nbn_reduce_all(g, nb_neg(g, ll), r, "bce_loss");
}

/* softplus(z) − t·z */
nb_tensor *nb_bce_with_logits(nb_graph *g, nb_tensor *logits, nb_tensor *target, nb_reduction r)
{
    if (!same_shape(g, logits, target, "bce_with_logits", "logits", "target"))
        return NULL;
    nb_tensor *l = nb_sub(g, nb_softplus(g, logits), nb_mul(g, target, logits));
    return nbn_reduce_all(g, l, r, "bce_with_logits");
}

/* −Σ_c t·log_softmax(z) per row, reduced over rows */
static nb_tensor *cross_entropy_rows(nb_graph *g, nb_tensor *logits, nb_tensor *target,
                                     nb_reduction r, const char *op)
{
    int axis = 1;
    nb_tensor *logp = nb_log_softmax(g, logits, axis);
    nb_tensor *per_row = nb_neg(g, nb_sum(g, nb_mul(g, target, logp), &axis, 1, false));
    return nbn_reduce_all(g, per_row, r, op);
}

static bool check_logits(nb_graph *g, const nb_tensor *logits, const char *op)
{
    if (logits->rank != 2 || logits->shape[1] < 1) {
        char buf[96];
        nbc_error(g, NB_ERR_SHAPE, op, "logits %s must be [N, C] with C >= 1",
                  nbc_shp(logits, buf, sizeof buf));
        return false;
    }
    return true;
}

nb_tensor *nb_softmax_cross_entropy(nb_graph *g, nb_tensor *logits, const int64_t *labels,
                                    int64_t n, nb_reduction r)
{
    static const char op[] = "softmax_cross_entropy";
    if (!logits)
        return NULL;
    if (!check_logits(g, logits, op))
        return NULL;
    if (!labels && n > 0) {
        nbc_error(g, NB_ERR_NULL, op, "labels is NULL");
        return NULL;
    }
    if (n != logits->shape[0]) {
        char buf[96];
        nbc_error(g, NB_ERR_SHAPE, op, "logits %s but %lld labels",
                  nbc_shp(logits, buf, sizeof buf), (long long)n);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= logits->shape[1]) {
            nbc_error(g, NB_ERR_ARG, op, "label %lld of sample %lld is outside [0, %lld)",
                      (long long)labels[i], (long long)i, (long long)logits->shape[1]);
            return NULL;
        }
    if (r == NB_REDUCE_MEAN || r == NB_REDUCE_SUM) /* one node, whose VJP is one node */
        return nbo_softmax_xent(g, logits, labels, n, (int)r);
    nb_tensor *onehot = nb_one_hot(g, logits->dtype, labels, n, logits->shape[1]);
    return cross_entropy_rows(g, logits, onehot, r, op);
}

nb_tensor *nb_softmax_cross_entropy_soft(nb_graph *g, nb_tensor *logits, nb_tensor *target,
                                         nb_reduction r)
{
    static const char op[] = "softmax_cross_entropy_soft";
    if (!logits || !target)
        return NULL;
    if (!check_logits(g, logits, op) || !same_shape(g, logits, target, op, "logits", "target"))
        return NULL;
    return cross_entropy_rows(g, logits, target, r, op);
}

/* λ·Σ_k f(W_k) with f = ½‖·‖² or ‖·‖₁ */
static nb_tensor *penalty(nb_graph *g, nb_tensor *const *params, int n, double lambda, bool l2,
                          const char *op)
{
    if (!params || n < 1) {
        nbc_error(g, params ? NB_ERR_ARG : NB_ERR_NULL, op, "needs at least one parameter");
        return NULL;
    }
    nb_tensor *total = NULL;
    for (int k = 0; k < n; k++) {
        if (!params[k])
            return NULL;
        nb_tensor *v = l2 ? nb_square(g, params[k]) : nb_abs(g, params[k]);
        nb_tensor *s = nb_sum(g, v, NULL, 0, false);
        total = total ? nb_add(g, total, s) : s;
    }
    return nb_scale(g, total, l2 ? 0.5 * lambda : lambda);
}

nb_tensor *nb_l2_penalty(nb_graph *g, nb_tensor *const *params, int n, double lambda)
{
    return penalty(g, params, n, lambda, true, "l2_penalty");
}

nb_tensor *nb_l1_penalty(nb_graph *g, nb_tensor *const *params, int n, double lambda)
{
    return penalty(g, params, n, lambda, false, "l1_penalty");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

int nb_params_matching(const nb_model *m, const char *suffix, nb_tensor **out, int cap)
{
    if (!m || (!out && cap > 0))
        return -1;
    int count = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (!nb_tensor_requires_grad(p) || (suffix && !ends_with(nb_tensor_name(p), suffix)))
            continue;
        if (count < cap)
            out[count] = p;
        count++;
    }
    return count;
}

nb_status nb_accuracy(const nb_tensor *logits, const int64_t *labels, int64_t n, double *out)
{
    if (!logits || !labels || !out)
        return NB_ERR_NULL;
    if (logits->rank != 2 || logits->shape[0] != n || logits->shape[1] < 1)
        return NB_ERR_SHAPE;
    if (n == 0)
        return NB_ERR_ARG;
    int64_t c = logits->shape[1], correct = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        double best_v = nb_tensor_get(logits, i * c);
        for (int64_t j = 1; j < c; j++) {
            double v = nb_tensor_get(logits, i * c + j);
            if (v > best_v)
                best = j, best_v = v;
        }
        correct += best == labels[i];
    }
    *out = (double)correct / (double)n;
    return NB_OK;
}
