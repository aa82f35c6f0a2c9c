/* The built-in gradcheck suite: every primitive of the op table on random
 * f64 inputs, several shape combinations each, broadcasting included.
 * Ops whose result carries no gradient by design are checked inside a
 * function where they act as constants (one_hot, stop_gradient, argmax), or as
 * masks (comparisons feed where; sign and step must have a zero Jacobian
 * away from 0, which central differences confirm). */

#include <stdio.h>
#include <string.h>

#include "nabla/check.h"
#include "nabla/ops.h"

#define F(name) static nb_tensor *name(nb_graph *g, nb_tensor *const *x, int n, void *ctx)
#define UNUSED (void)n, (void)ctx

F(f_neg)
{
    UNUSED;
    return nb_neg(g, x[0]);
}
F(f_exp)
{
    UNUSED;
    return nb_exp(g, x[0]);
}
F(f_log)
{
    UNUSED;
    return nb_log(g, x[0]);
}
F(f_log1p)
{
    UNUSED;
    return nb_log1p(g, x[0]);
}
F(f_expm1)
{
    UNUSED;
    return nb_expm1(g, x[0]);
}
F(f_sqrt)
{
    UNUSED;
    return nb_sqrt(g, x[0]);
}
F(f_abs)
{
    UNUSED;
    return nb_abs(g, x[0]);
}
F(f_sin)
{
    UNUSED;
    return nb_sin(g, x[0]);
}
F(f_cos)
{
    UNUSED;
    return nb_cos(g, x[0]);
}
F(f_tanh)
{
    UNUSED;
    return nb_tanh(g, x[0]);
}
F(f_sigmoid)
{
    UNUSED;
    return nb_sigmoid(g, x[0]);
}
F(f_erf)
{
    UNUSED;
    return nb_erf(g, x[0]);
}
F(f_relu)
{
    UNUSED;
    return nb_relu(g, x[0]);
}
/* relu_mask(g, x) with respect to both: linear in g, zero in x away from 0 */
F(f_relu_mask)
{
    UNUSED;
    return nb_relu_mask(g, x[0], x[1]);
}
F(f_sign)
{
    UNUSED;
    return nb_mul(g, nb_sign(g, x[0]), x[0]);
}
F(f_step)
{
    UNUSED;
    return nb_mul(g, nb_step(g, x[0]), x[0]);
}
F(f_add)
{
    UNUSED;
    return nb_add(g, x[0], x[1]);
}
F(f_sub)
{
    UNUSED;
    return nb_sub(g, x[0], x[1]);
}
F(f_mul)
{
    UNUSED;
    return nb_mul(g, x[0], x[1]);
}
F(f_div)
{
    UNUSED;
    return nb_div(g, x[0], x[1]);
}
F(f_pow)
{
    UNUSED;
    return nb_pow(g, x[0], x[1]);
}
F(f_maximum)
{
    UNUSED;
    return nb_maximum(g, x[0], x[1]);
}
F(f_minimum)
{
    UNUSED;
    return nb_minimum(g, x[0], x[1]);
}
/* a comparison used as a mask: its own Jacobian is zero, the product's is
 * the mask itself */
F(f_gt)
{
    UNUSED;
    return nb_mul(g, nb_gt(g, x[0], x[1]), nb_add(g, x[0], x[1]));
}
F(f_ge)
{
    UNUSED;
    return nb_mul(g, nb_ge(g, x[0], x[1]), nb_add(g, x[0], x[1]));
}
F(f_lt)
{
    UNUSED;
    return nb_mul(g, nb_lt(g, x[0], x[1]), nb_add(g, x[0], x[1]));
}
F(f_le)
{
    UNUSED;
    return nb_mul(g, nb_le(g, x[0], x[1]), nb_add(g, x[0], x[1]));
}
F(f_eq)
{
    UNUSED;
    return nb_mul(g, nb_eq(g, x[0], x[0]), nb_mul(g, x[0], x[1]));
}
F(f_where)
{
    UNUSED;
    nb_tensor *zero = nb_scalar(g, nb_tensor_dtype(x[0]), 0.0);
    return nb_where(g, nb_gt(g, x[0], zero), x[1], x[2]);
}
F(f_sum_all)
{
    UNUSED;
    return nb_sum(g, x[0], NULL, 0, false);
}
F(f_sum_ax1)
{
    UNUSED;
    int ax[] = {1};
    return nb_sum(g, x[0], ax, 1, true);
}
F(f_sum_ax0)
{
    UNUSED;
    int ax[] = {0, -1};
    return nb_sum(g, x[0], ax, 2, false);
}
F(f_mean_all)
{
    UNUSED;
    return nb_mean(g, x[0], NULL, 0, false);
}
F(f_mean_ax1)
{
    UNUSED;
    int ax[] = {-1};
    return nb_mean(g, x[0], ax, 1, false);
}
F(f_max_all)
{
    UNUSED;
    return nb_max(g, x[0], NULL, 0, false);
}
F(f_max_ax0)
{
    UNUSED;
    int ax[] = {0};
    return nb_max(g, x[0], ax, 1, true);
}
F(f_min_all)
{
    UNUSED;
    return nb_min(g, x[0], NULL, 0, false);
}
F(f_min_ax1)
{
    UNUSED;
    int ax[] = {-1};
    return nb_min(g, x[0], ax, 1, true);
}
/* argmax as a constant factor: the Jacobian is that of max, times the index
 * of the maximum plus one (no kinks away from ties) */
F(f_argmax)
{
    UNUSED;
    int axis = 1;
    return nb_mul(g, nb_add_scalar(g, nb_argmax(g, x[0], axis), 1.0),
                  nb_max(g, x[0], &axis, 1, false));
}
F(f_sum_to_row)
{
    UNUSED;
    int64_t s[] = {4};
    return nb_sum_to(g, x[0], 1, s);
}
F(f_sum_to_col)
{
    UNUSED;
    int64_t s[] = {3, 1};
    return nb_sum_to(g, x[0], 2, s);
}
F(f_bcast_row)
{
    UNUSED;
    int64_t s[] = {3, 4};
    return nb_broadcast_to(g, x[0], 2, s);
}
F(f_bcast_col)
{
    UNUSED;
    int64_t s[] = {2, 3, 4};
    return nb_broadcast_to(g, x[0], 3, s);
}
F(f_reshape)
{
    UNUSED;
    int64_t s[] = {2, -1};
    return nb_reshape(g, x[0], 2, s);
}
F(f_reshape_flat)
{
    UNUSED;
    int64_t s[] = {-1};
    return nb_reshape(g, x[0], 1, s);
}
F(f_permute)
{
    UNUSED;
    int p[] = {2, 0, 1};
    return nb_permute(g, x[0], p);
}
F(f_transpose)
{
    UNUSED;
    return nb_transpose(g, x[0]);
}
F(f_slice)
{
    UNUSED;
    return nb_slice(g, x[0], 1, 1, 4, 2);
}
F(f_slice_neg)
{
    UNUSED;
    return nb_slice(g, x[0], 0, -2, 100, 1);
}
F(f_unslice)
{
    UNUSED;
    return nb_unslice(g, x[0], 1, 7, 1, 3);
}
F(f_concat)
{
    UNUSED;
    return nb_concat(g, x, 2, 1);
}
F(f_concat3)
{
    UNUSED;
    return nb_concat(g, x, 3, 0);
}
F(f_stack)
{
    UNUSED;
    return nb_stack(g, x, 2, 1);
}
F(f_stack3)
{
    UNUSED;
    return nb_stack(g, x, 3, -1);
}
F(f_gather)
{
    UNUSED;
    int64_t idx[] = {2, 0, 2, 1};
    return nb_gather(g, x[0], 0, idx, 4);
}
F(f_gather_ax1)
{
    UNUSED;
    int64_t idx[] = {3, 3, 0};
    return nb_gather(g, x[0], -1, idx, 3);
}
F(f_scatter_add)
{
    UNUSED;
    int64_t idx[] = {1, 4, 1};
    return nb_scatter_add(g, x[0], 0, idx, 3, 5);
}
F(f_one_hot)
{
    UNUSED;
    int64_t labels[] = {2, 0, 1, 4};
    return nb_mul(g, nb_one_hot(g, nb_tensor_dtype(x[0]), labels, 4, 5), x[0]);
}
F(f_matmul)
{
    UNUSED;
    return nb_matmul(g, x[0], x[1], false, false);
}
F(f_matmul_ta)
{
    UNUSED;
    return nb_matmul(g, x[0], x[1], true, false);
}
F(f_matmul_tb)
{
    UNUSED;
    return nb_matmul(g, x[0], x[1], false, true);
}
/* the fused linear map, with and without its bias and its ReLU */
F(f_linear_relu)
{
    UNUSED;
    return nb_linear(g, x[0], x[1], x[2], NB_LINEAR_RELU);
}
F(f_linear)
{
    UNUSED;
    return nb_linear(g, x[0], x[1], x[2], NB_LINEAR_IDENTITY);
}
F(f_linear_relu_nobias)
{
    UNUSED;
    return nb_linear(g, x[0], x[1], NULL, NB_LINEAR_RELU);
}
F(f_matmul_batch)
{
    UNUSED;
    return nb_matmul(g, x[0], x[1], true, true);
}
/* stride 2x1, padding 1x0, dilation 1x2, two groups: x [2,4,5,6], w [4,2,3,2],
 * y [2,4,3,4] */
static const nb_conv_opts conv_case_opts = {{2, 1}, {1, 0}, {1, 2}, 2};
F(f_conv2d)
{
    UNUSED;
    return nb_conv2d(g, x[0], x[1], &conv_case_opts);
}
F(f_conv_transpose2d)
{
    UNUSED;
    return nb_conv_transpose2d(g, x[0], x[1], 5, 6, &conv_case_opts);
}
F(f_conv2d_weight_grad)
{
    UNUSED;
    return nb_conv2d_weight_grad(g, x[0], x[1], 3, 2, &conv_case_opts);
}
/* log_softmax and its VJP recorded through the registry, as a user would;
 * log_softmax_backward(gy, y) is checked for any y, not only a result of
 * log_softmax, in both inputs */
static nb_tensor *along(nb_graph *g, const char *op, nb_tensor *const *in, int n, int axis)
{
    nb_attrs a = {0};
    a.ints[0] = axis;
    return nb_apply(g, nb_op_find(op), in, n, &a);
}
F(f_log_softmax_last)
{
    UNUSED;
    return along(g, "log_softmax", x, 1, -1);
}
F(f_log_softmax_ax0)
{
    UNUSED;
    return along(g, "log_softmax", x, 1, 0);
}
F(f_log_softmax_ax1)
{
    UNUSED;
    return along(g, "log_softmax", x, 1, 1);
}
F(f_log_softmax_backward_last)
{
    UNUSED;
    return along(g, "log_softmax_backward", x, 2, -1);
}
F(f_log_softmax_backward_ax1)
{
    UNUSED;
    return along(g, "log_softmax_backward", x, 2, 1);
}
/* softmax cross-entropy with labels 2, 0, 3 (mean) and its VJP (sum), in
 * z and in the upstream gradient g */
static const int64_t xent_labels[3] = {2, 0, 3};
static nb_tensor *xent(nb_graph *g, const char *op, nb_tensor *const *in, int n, int reduction)
{
    nb_attrs a = {0};
    a.ints[0] = reduction;
    a.idx = xent_labels;
    a.n_idx = 3;
    return nb_apply(g, nb_op_find(op), in, n, &a);
}
F(f_softmax_xent)
{
    UNUSED;
    return xent(g, "softmax_xent", x, 1, 0);
}
F(f_softmax_xent_backward)
{
    UNUSED;
    return xent(g, "softmax_xent_backward", x, 2, 1);
}
/* the backward given the forward's node, whose saved row statistics it reads */
F(f_softmax_xent_backward_saved)
{
    UNUSED;
    nb_tensor *in[3] = {x[0], x[1], xent(g, "softmax_xent", x, 1, 1)};
    return xent(g, "softmax_xent_backward", in, 3, 1);
}
F(f_cast)
{
    UNUSED;
    nb_dtype other = nb_tensor_dtype(x[0]) == NB_F64 ? NB_F32 : NB_F64;
    return nb_cast(g, nb_cast(g, x[0], other), nb_tensor_dtype(x[0]));
}
/* y = x * stop_gradient(c), checked with respect to x only: stop_gradient
 * passes c's value and acts as a constant */
F(f_stop_gradient)
{
    UNUSED;
    return nb_mul(g, x[0], nb_stop_gradient(g, x[1]));
}
/* pooling: 3x3 windows, stride 2, padding 1 on [1,2,5,6] give [1,2,3,3] */
static const nb_pool2d_opts pool_3s2p1 = {{3, 3}, {2, 2}, {1, 1}};
F(f_max_pool2d)
{
    UNUSED;
    return nb_max_pool2d(g, x[0], &pool_3s2p1);
}
F(f_max_pool2d_2x2)
{
    UNUSED;
    return nb_max_pool2d(g, x[0], &(nb_pool2d_opts){{2, 2}, {2, 2}, {0, 0}});
}
F(f_avg_pool2d)
{
    UNUSED;
    return nb_avg_pool2d(g, x[0], &(nb_pool2d_opts){{3, 2}, {1, 2}, {1, 0}});
}
/* max_unpool2d(u, max_pool2d(c)) and max_gather2d(v, max_pool2d(c)),
 * checked with respect to u and v: the argmax of c is a constant */
F(f_max_unpool2d)
{
    UNUSED;
    return nb_max_unpool2d(g, x[0], nb_max_pool2d(g, x[1], &pool_3s2p1));
}
F(f_max_gather2d)
{
    UNUSED;
    return nb_max_gather2d(g, x[0], nb_max_pool2d(g, x[1], &pool_3s2p1));
}
F(f_avg_unpool2d)
{
    UNUSED;
    return nb_avg_unpool2d(g, x[0], &pool_3s2p1, 5, 6);
}
#undef F
#undef UNUSED

/* shape helpers: n inputs, their ranks, their sizes */
#define CASE(op, what, n, r0, r1, r2, s0, s1, s2, lo, hi, fn)                                      \
    {                                                                                              \
        op, what, n, {r0, r1, r2}, {s0, s1, s2}, lo, hi, 0, 0, fn                                  \
    }
#define SH(...)                                                                                    \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }

static const nb_check_case cases[] = {
    /* unary: a matrix, a vector and a scalar */
    CASE("neg", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_neg),
    CASE("neg", "[]", 1, 0, 0, 0, SH(0), SH(0), SH(0), -2, 2, f_neg),
    CASE("exp", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_exp),
    CASE("exp", "[5]", 1, 1, 0, 0, SH(5), SH(0), SH(0), -2, 2, f_exp),
    CASE("log", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), 0.2, 3, f_log),
    CASE("log", "[]", 1, 0, 0, 0, SH(0), SH(0), SH(0), 0.2, 3, f_log),
    CASE("log1p", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -0.5, 3, f_log1p),
    CASE("expm1", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_expm1),
    CASE("sqrt", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), 0.2, 3, f_sqrt),
    CASE("abs", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_abs),
    CASE("sin", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -3, 3, f_sin),
    CASE("cos", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -3, 3, f_cos),
    CASE("tanh", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_tanh),
    CASE("sigmoid", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -4, 4, f_sigmoid),
    CASE("erf", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_erf),
    CASE("sign", "sign(x)*x [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_sign),
    CASE("step", "step(x)*x [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_step),
    CASE("relu", "[3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_relu),
    CASE("relu", "[2,3,4]", 1, 3, 0, 0, SH(2, 3, 4), SH(0), SH(0), -2, 2, f_relu),
    CASE("relu", "[]", 1, 0, 0, 0, SH(0), SH(0), SH(0), -2, 2, f_relu),
    CASE("relu_mask", "[3,4],[3,4]", 2, 2, 2, 0, SH(3, 4), SH(3, 4), SH(0), -2, 2, f_relu_mask),
    CASE("relu_mask", "[2,3,4],[2,3,4]", 2, 3, 3, 0, SH(2, 3, 4), SH(2, 3, 4), SH(0), -2, 2,
         f_relu_mask),
    CASE("relu_mask", "[],[]", 2, 0, 0, 0, SH(0), SH(0), SH(0), -2, 2, f_relu_mask),
    /* binary: NumPy broadcasting in three ways each */
    CASE("add", "[3,4]+[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_add),
    CASE("add", "[3,1]+[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_add),
    CASE("add", "[]+[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), -2, 2, f_add),
    CASE("sub", "[3,4]-[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_sub),
    CASE("sub", "[3,1]-[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_sub),
    CASE("sub", "[]-[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), -2, 2, f_sub),
    CASE("mul", "[3,4]*[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_mul),
    CASE("mul", "[3,1]*[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_mul),
    CASE("mul", "[]*[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), -2, 2, f_mul),
    CASE("div", "[3,4]/[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), 0.5, 2, f_div),
    CASE("div", "[3,1]/[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), 0.5, 2, f_div),
    CASE("div", "[]/[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), 0.5, 2, f_div),
    CASE("pow", "[3,4]^[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), 0.5, 2, f_pow),
    CASE("pow", "[3,1]^[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), 0.5, 2, f_pow),
    CASE("pow", "[]^[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), 0.5, 2, f_pow),
    CASE("maximum", "[3,4],[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_maximum),
    CASE("maximum", "[3,1],[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_maximum),
    CASE("maximum", "[],[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), -2, 2, f_maximum),
    CASE("minimum", "[3,4],[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_minimum),
    CASE("minimum", "[3,1],[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_minimum),
    CASE("minimum", "[],[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), -2, 2, f_minimum),
    CASE("gt", "(a>b)*(a+b) [3,4],[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_gt),
    CASE("ge", "(a>=b)*(a+b) [3,1],[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_ge),
    CASE("lt", "(a<b)*(a+b) [],[2,3]", 2, 0, 2, 0, SH(0), SH(2, 3), SH(0), -2, 2, f_lt),
    CASE("le", "(a<=b)*(a+b) [3,4],[4]", 2, 2, 1, 0, SH(3, 4), SH(4), SH(0), -2, 2, f_le),
    CASE("eq", "(a==a)*a*b [3,1],[1,4]", 2, 2, 2, 0, SH(3, 1), SH(1, 4), SH(0), -2, 2, f_eq),
    CASE("where", "[3,4],[4],[3,1]", 3, 2, 1, 2, SH(3, 4), SH(4), SH(3, 1), -2, 2, f_where),
    CASE("where", "[4],[2,4],[]", 3, 1, 2, 0, SH(4), SH(2, 4), SH(0), -2, 2, f_where),
    /* reductions */
    CASE("sum", "all of [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_sum_all),
    CASE("sum", "axis 1 keepdims", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_sum_ax1),
    CASE("sum", "axes 0,-1 of [2,3,4]", 1, 3, 0, 0, SH(2, 3, 4), SH(0), SH(0), -2, 2, f_sum_ax0),
    CASE("mean", "all of [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_mean_all),
    CASE("mean", "axis -1", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_mean_ax1),
    CASE("max", "all of [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_max_all),
    CASE("max", "axis 0 keepdims", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_max_ax0),
    CASE("min", "all of [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_min_all),
    CASE("min", "axis -1 keepdims", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_min_ax1),
    CASE("argmax", "(argmax(x,1)+1)*max(x,1) [3,4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2,
         f_argmax),
    CASE("log_softmax", "[3,4] axis -1", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -3, 3,
         f_log_softmax_last),
    CASE("log_softmax", "[4,3] axis 0", 1, 2, 0, 0, SH(4, 3), SH(0), SH(0), -3, 3,
         f_log_softmax_ax0),
    CASE("log_softmax", "[2,3,4] axis 1", 1, 3, 0, 0, SH(2, 3, 4), SH(0), SH(0), -3, 3,
         f_log_softmax_ax1),
    CASE("log_softmax_backward", "g,y [3,4] axis -1", 2, 2, 2, 0, SH(3, 4), SH(3, 4), SH(0), -2, 2,
         f_log_softmax_backward_last),
    CASE("log_softmax_backward", "g,y [2,3,4] axis 1", 2, 3, 3, 0, SH(2, 3, 4), SH(2, 3, 4), SH(0),
         -2, 2, f_log_softmax_backward_ax1),
    CASE("softmax_xent", "[3,4] labels 2,0,3 mean", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -3, 3,
         f_softmax_xent),
    CASE("softmax_xent_backward", "z [3,4], g [] labels 2,0,3 sum", 2, 2, 0, 0, SH(3, 4), SH(0),
         SH(0), -2, 2, f_softmax_xent_backward),
    CASE("softmax_xent_backward", "z [3,4], g [], its softmax_xent y, labels 2,0,3 sum", 2, 2, 0, 0,
         SH(3, 4), SH(0), SH(0), -2, 2, f_softmax_xent_backward_saved),
    CASE("sum_to", "[3,4]->[4]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_sum_to_row),
    CASE("sum_to", "[3,4]->[3,1]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_sum_to_col),
    CASE("broadcast_to", "[4]->[3,4]", 1, 1, 0, 0, SH(4), SH(0), SH(0), -2, 2, f_bcast_row),
    CASE("broadcast_to", "[3,1]->[2,3,4]", 1, 2, 0, 0, SH(3, 1), SH(0), SH(0), -2, 2, f_bcast_col),
    /* shape */
    CASE("reshape", "[3,4]->[2,6]", 1, 2, 0, 0, SH(3, 4), SH(0), SH(0), -2, 2, f_reshape),
    CASE("reshape", "[2,3,2]->[12]", 1, 3, 0, 0, SH(2, 3, 2), SH(0), SH(0), -2, 2, f_reshape_flat),
    CASE("permute", "[2,3,4] (2,0,1)", 1, 3, 0, 0, SH(2, 3, 4), SH(0), SH(0), -2, 2, f_permute),
    CASE("permute", "transpose [3,5]", 1, 2, 0, 0, SH(3, 5), SH(0), SH(0), -2, 2, f_transpose),
    CASE("slice", "[3,5] axis 1 1:4:2", 1, 2, 0, 0, SH(3, 5), SH(0), SH(0), -2, 2, f_slice),
    CASE("slice", "[4,2] axis 0 -2:", 1, 2, 0, 0, SH(4, 2), SH(0), SH(0), -2, 2, f_slice_neg),
    CASE("unslice", "[2,2] -> [2,7] at 1,4", 1, 2, 0, 0, SH(2, 2), SH(0), SH(0), -2, 2, f_unslice),
    CASE("concat", "[2,3]|[2,2] axis 1", 2, 2, 2, 0, SH(2, 3), SH(2, 2), SH(0), -2, 2, f_concat),
    CASE("concat", "[1,3]|[2,3]|[1,3] axis 0", 3, 2, 2, 2, SH(1, 3), SH(2, 3), SH(1, 3), -2, 2,
         f_concat3),
    CASE("stack", "[2,3],[2,3] axis 1", 2, 2, 2, 0, SH(2, 3), SH(2, 3), SH(0), -2, 2, f_stack),
    CASE("stack", "[3],[3],[3] axis -1", 3, 1, 1, 1, SH(3), SH(3), SH(3), -2, 2, f_stack3),
    CASE("gather", "[3,2] rows 2,0,2,1", 1, 2, 0, 0, SH(3, 2), SH(0), SH(0), -2, 2, f_gather),
    CASE("gather", "[2,4] columns 3,3,0", 1, 2, 0, 0, SH(2, 4), SH(0), SH(0), -2, 2, f_gather_ax1),
    CASE("scatter_add", "[3,2] to 5 rows", 1, 2, 0, 0, SH(3, 2), SH(0), SH(0), -2, 2,
         f_scatter_add),
    CASE("one_hot", "one_hot(4 labels, 5) * [5]", 1, 1, 0, 0, SH(5), SH(0), SH(0), -2, 2,
         f_one_hot),
    /* linear algebra */
    CASE("matmul", "[3,4]@[4,5]", 2, 2, 2, 0, SH(3, 4), SH(4, 5), SH(0), -2, 2, f_matmul),
    CASE("matmul", "[4,3]^T@[4,2]", 2, 2, 2, 0, SH(4, 3), SH(4, 2), SH(0), -2, 2, f_matmul_ta),
    CASE("matmul", "[2,3]@[5,3]^T", 2, 2, 2, 0, SH(2, 3), SH(5, 3), SH(0), -2, 2, f_matmul_tb),
    CASE("matmul", "batched [2,4,3]^T@[2,5,4]^T", 2, 3, 3, 0, SH(2, 4, 3), SH(2, 5, 4), SH(0), -2,
         2, f_matmul_batch),
    CASE("linear", "relu([3,4]@[4,5]+[5])", 3, 2, 2, 1, SH(3, 4), SH(4, 5), SH(5), -2, 2,
         f_linear_relu),
    CASE("linear", "[2,3,4]@[4,5]+[5]", 3, 3, 2, 1, SH(2, 3, 4), SH(4, 5), SH(5), -2, 2, f_linear),
    CASE("linear", "relu([2,3,4]@[4,5]), no bias", 2, 3, 2, 0, SH(2, 3, 4), SH(4, 5), SH(0), -2, 2,
         f_linear_relu_nobias),
    /* convolution */
    CASE("conv2d", "[2,4,5,6]*[4,2,3,2] s2x1 p1x0 d1x2 g2", 2, 4, 4, 0, SH(2, 4, 5, 6),
         SH(4, 2, 3, 2), SH(0), -2, 2, f_conv2d),
    CASE("conv_transpose2d", "[2,4,3,4],[4,2,3,2] -> 5x6, s2x1 p1x0 d1x2 g2", 2, 4, 4, 0,
         SH(2, 4, 3, 4), SH(4, 2, 3, 2), SH(0), -2, 2, f_conv_transpose2d),
    CASE("conv2d_weight_grad", "[2,4,5,6],[2,4,3,4] -> 3x2, s2x1 p1x0 d1x2 g2", 2, 4, 4, 0,
         SH(2, 4, 5, 6), SH(2, 4, 3, 4), SH(0), -2, 2, f_conv2d_weight_grad),
    /* pooling */
    CASE("max_pool2d", "[1,2,5,6] 3x3 stride 2 padding 1", 1, 4, 0, 0, SH(1, 2, 5, 6), SH(0), SH(0),
         -2, 2, f_max_pool2d),
    CASE("max_pool2d", "[2,1,4,5] 2x2 stride 2", 1, 4, 0, 0, SH(2, 1, 4, 5), SH(0), SH(0), -2, 2,
         f_max_pool2d_2x2),
    CASE("avg_pool2d", "[1,2,5,4] 3x2 stride 1x2 padding 1x0", 1, 4, 0, 0, SH(1, 2, 5, 4), SH(0),
         SH(0), -2, 2, f_avg_pool2d),
    CASE("avg_unpool2d", "[1,2,3,3] to [1,2,5,6]", 1, 4, 0, 0, SH(1, 2, 3, 3), SH(0), SH(0), -2, 2,
         f_avg_unpool2d),
    {"max_unpool2d",
     "u [1,2,3,3] to the argmax of c [1,2,5,6], wrt u",
     2,
     {4, 4},
     {{1, 2, 3, 3}, {1, 2, 5, 6}},
     -2,
     2,
     1,
     0,
     f_max_unpool2d},
    {"max_gather2d",
     "v [1,2,5,6] at the argmax of c [1,2,5,6], wrt v",
     2,
     {4, 4},
     {{1, 2, 5, 6}, {1, 2, 5, 6}},
     -2,
     2,
     1,
     0,
     f_max_gather2d},
    /* misc */
    {"cast", "f64->f32->f64 [3,4]", 1, {2}, {{3, 4}}, -2, 2, 0, 1e-2, f_cast},
    {"stop_gradient",
     "x*stop_gradient(c), wrt x",
     2,
     {2, 1},
     {{3, 4}, {4}},
     -2,
     2,
     1,
     0,
     f_stop_gradient},
};

const nb_check_case *nb_check_builtin_cases(int *n)
{
    if (n)
        *n = (int)(sizeof cases / sizeof *cases);
    return cases;
}

nb_status nb_check_run_case(const nb_check_case *c, const nb_check_opts *o, nb_check_result *r)
{
    if (!r)
        return NB_ERR_NULL;
    nb_check_opts opts = o ? *o : nb_check_defaults();
    if (!c) {
        memset(r, 0, sizeof *r);
        return nb_error_set(&r->error, NB_ERR_NULL, "nb_check_run_case", "no case given");
    }
    if (c->wrt)
        opts.wrt = c->wrt;
    if (c->eps > 0)
        opts.eps = c->eps;
    nb_graph *g = nb_graph_new();
    if (!g)
        return NB_ERR_NOMEM;
    nb_rng rng;
    nb_rng_seed(&rng, opts.seed);
    nb_tensor *in[3] = {0};
    for (int i = 0; i < c->n && i < 3; i++) {
        in[i] = nb_rand_uniform(g, &rng, NB_F64, c->ranks[i], c->shapes[i], c->lo, c->hi);
        char name[2] = {(char)('a' + i), 0};
        nb_tensor_set_name(in[i], name);
    }
    nb_status st = nb_gradcheck(c->fn, NULL, in, c->n, &opts, r);
    nb_graph_free(g);
    return st;
}
