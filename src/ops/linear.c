/* The fused linear map y = act(x·W + b): one matrix product whose bias and
 * activation are applied as the product writes its result (the GEMM's
 * epilogue), where matmul, add and relu would make three passes and two
 * intermediates. The numbers are those of the three ops: the product as
 * nb_matmul(x, W, 0, 0) computes it, then the add, then the relu.
 *
 * inputs: x [M,K] or [B,M,K], W [K,N], and b [N] (optional);
 * attrs: ints[0] = the activation (nb_linear_act). */

#include "gemm.h"
#include "kernels.h"

#define X(out) ((out)->inputs[0])
#define W(out) ((out)->inputs[1])
#define BIAS(out) ((out)->n_inputs > 2 ? (out)->inputs[2] : NULL)
#define ACT(out) ((nb_linear_act)(out)->attrs->ints[0])

static NB_NOINLINE nb_status linear_error(nb_graph *g, const nb_tensor *out, nb_status code,
                                          const char *what)
{
    const nb_tensor *b = BIAS(out);
    char sx[168], sw[168], sb[168] = "none";
    nbc_shp(X(out), sx, sizeof sx);
    nbc_shp(W(out), sw, sizeof sw);
    if (b)
        nbc_shp(b, sb, sizeof sb);
    return nbc_error(g, code, out->op->name, "x %s%s, W %s%s, b %s%s: %s",
                     nb_dtype_name(X(out)->dtype), sx, nb_dtype_name(W(out)->dtype), sw,
                     b ? nb_dtype_name(b->dtype) : "", sb, what);
}

nb_status nbo_linear_shape(nb_graph *g, nb_tensor *out)
{
    if (out->n_inputs < 2 || out->n_inputs > 3)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "takes 2 or 3 inputs (x, W, b), got %d",
                         out->n_inputs);
    const nb_tensor *x = X(out), *w = W(out), *b = BIAS(out);
    nb_linear_act act = ACT(out);
    if (act != NB_LINEAR_IDENTITY && act != NB_LINEAR_RELU)
        return nbc_error(g, NB_ERR_ARG, out->op->name, "unknown activation %d", (int)act);
    if (x->rank < 2 || x->rank > 3 || w->rank != 2)
        return linear_error(g, out, NB_ERR_SHAPE, "x must be [M,K] or [B,M,K] and W [K,N]");
    if (x->dtype != w->dtype || (b && b->dtype != x->dtype))
        return linear_error(g, out, NB_ERR_DTYPE, "dtypes differ");
    if (x->shape[x->rank - 1] != w->shape[0])
        return linear_error(g, out, NB_ERR_SHAPE, "inner sizes differ");
    if (b && (b->rank != 1 || b->shape[0] != w->shape[1]))
        return linear_error(g, out, NB_ERR_SHAPE, "b must be [N], N the columns of W");
    out->dtype = x->dtype;
    out->rank = x->rank;
    for (int i = 0; i < x->rank - 1; i++)
        out->shape[i] = x->shape[i];
    out->shape[x->rank - 1] = w->shape[1];
    return nbc_check_desc(g, out->dtype, out->rank, out->shape, out->op->name);
}

/* x's rows as one [R,K] matrix times W, as nb_matmul runs a shared W */
nb_status nbo_linear_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = X(out), *w = W(out), *b = BIAS(out);
    if (out->size == 0)
        return NB_OK;
    int64_t k = w->shape[0], n = w->shape[1];
    nbk_gemm p = {
        .dtype = out->dtype,
        .m = out->size / n,
        .n = n,
        .k = k,
        .a = x->data,
        .lda = k,
        .b = w->data,
        .ldb = n,
        .c = out->data,
        .ldc = n,
        .bias = b ? b->data : NULL,
        .relu = ACT(out) == NB_LINEAR_RELU,
    };
    return nbo_gemm_run(g, &p, 1, 0, 0, 0, out->op->name);
}

nb_tensor *nb_linear(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b, nb_linear_act act)
{
    nb_tensor *in[3] = {x, w, b};
    nb_attrs attrs = {.ints = {act}};
    return nbo_apply(g, &nbo_table[NB_OP_LINEAR], in, b ? 3 : 2, &attrs);
}

/* ---------------------------------------------------------- derivatives */

/* z = x·W + b, y = act(z): the gradient of z, g_z = relu_mask(g, y) for
 * ReLU (y > 0 exactly where z > 0), g itself for the identity. Every
 * input's rule starts from it, so the reverse sweep makes it once per node
 * (nbo_vjp_pre) and the rules take it from there (nbo_vjp_post). */
static nb_tensor *linear_vjp_pre(nb_graph *g, nb_tensor *out, nb_tensor *gr)
{
    return ACT(out) == NB_LINEAR_RELU ? nb_relu_mask(g, gr, out) : gr;
}

/* dx = g_z·Wᵀ, dW = xᵀ·g_z (x's rows stacked), db = g_z summed to [N]: the
 * rules of matmul and add */
static nb_tensor *linear_vjp_post(nb_graph *g, nb_tensor *out, int i, nb_tensor *gz)
{
    nb_tensor *x = X(out), *w = W(out);
    if (i == 0)
        return nb_matmul(g, gz, w, false, true);
    if (i == 2)
        return nbk_unbroadcast(g, gz, BIAS(out));
    if (x->rank == 3) {
        int64_t rows = x->shape[0] * x->shape[1];
        x = nb_reshape(g, x, 2, (int64_t[]){rows, x->shape[2]});
        gz = nb_reshape(g, gz, 2, (int64_t[]){rows, gz->shape[2]});
    }
    return nb_matmul(g, x, gz, true, false);
}

nb_tensor *nbo_linear_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return linear_vjp_post(g, out, i, linear_vjp_pre(g, out, gr));
}

nb_status nbo_linear_vjp_into_grad(nb_graph *g, nb_tensor *out, nb_tensor *pre, nb_tensor *grad,
                                   bool *done)
{
    *done = false;
    const nb_tensor *x = X(out), *w = W(out);
    if (pre->dtype != grad->dtype)
        return NB_OK;
    int64_t k = w->shape[0], n = w->shape[1];
    nbk_gemm p = {.dtype = grad->dtype,
                  .trans_a = true, /* dW = xᵀ·g_z, x's rows stacked: nb_matmul(x, g_z, 1, 0) */
                  .m = k,
                  .n = n,
                  .k = x->size / k,
                  .a = x->data,
                  .lda = k,
                  .b = pre->data,
                  .ldb = n,
                  .c = grad->data,
                  .ldc = n};
    return nbo_gemm_add_into(g, &p, out->op->name, done);
}

/* The ops with a pre-rule: the fused linear map and conv2d (conv.c) */
bool nbo_has_vjp_pre(const nbo_def *op)
{
    return op == &nbo_table[NB_OP_LINEAR] || op == &nbo_table[NB_OP_CONV2D];
}

nb_tensor *nbo_vjp_pre(nb_graph *g, nb_tensor *out, nb_tensor *gr)
{
    return out->op == &nbo_table[NB_OP_CONV2D] ? nbo_conv2d_vjp_pre(g, out, gr)
                                               : linear_vjp_pre(g, out, gr);
}

nb_tensor *nbo_vjp_post(nb_graph *g, nb_tensor *out, int i, nb_tensor *pre)
{
    return out->op == &nbo_table[NB_OP_CONV2D] ? nbo_conv2d_vjp_post(g, out, i, pre)
                                               : linear_vjp_post(g, out, i, pre);
}

/* t_z = t_x·W + x·t_W + t_b, t_y = relu_mask(t_z, y) for ReLU */
nb_tensor *nbo_linear_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    nb_tensor *tz = NULL, *b = BIAS(out);
    if (t[0] && !(t[0]->flags & NB_T_ZERO))
        tz = nb_matmul(g, t[0], W(out), false, false);
    if (t[1] && !(t[1]->flags & NB_T_ZERO)) {
        nb_tensor *d = nb_matmul(g, X(out), t[1], false, false);
        tz = tz ? nb_add(g, tz, d) : d;
    }
    if (b && t[2] && !(t[2]->flags & NB_T_ZERO))
        tz = tz ? nb_add(g, tz, t[2]) : nb_broadcast_to(g, t[2], out->rank, out->shape);
    if (!tz)
        return NULL;
    return ACT(out) == NB_LINEAR_RELU ? nb_relu_mask(g, tz, out) : tz;
}
