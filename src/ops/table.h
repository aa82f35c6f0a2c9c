/* The built-in op table: one entry per primitive (see table.c). */
#ifndef NABLA_OPS_TABLE_H
#define NABLA_OPS_TABLE_H

#include <math.h>

#include "../core/internal.h"
#include "nabla/op.h"
#include "nabla/ops.h"

/* ------------------------------------------------------------- op engine */

/* Record and run one op: check inputs (NULL -> quiet NULL), set the node,
 * run the shape rule, allocate, run the kernel, count it, check finiteness.
 * @p attrs may be NULL. */
nb_tensor *nbo_apply(nb_graph *g, const nbo_def *def, nb_tensor *const *in, int n,
                     const nb_attrs *attrs);

/* The attributes of ops recorded without any (all zero, read-only). */
extern const nb_attrs nbo_no_attrs;

/* The built-in op table, indexed by enum nbo_id (src/ops/table.h). */
extern const nbo_def nbo_table[];

enum nbo_id {
    NB_OP_NEG,
    NB_OP_EXP,
    NB_OP_LOG,
    NB_OP_LOG1P,
    NB_OP_EXPM1,
    NB_OP_SQRT,
    NB_OP_ABS,
    NB_OP_SIN,
    NB_OP_COS,
    NB_OP_TANH,
    NB_OP_SIGMOID,
    NB_OP_ERF,
    NB_OP_SIGN,
    NB_OP_STEP,
    NB_OP_RELU,
    NB_OP_RELU_MASK,
    NB_OP_ADD,
    NB_OP_SUB,
    NB_OP_MUL,
    NB_OP_DIV,
    NB_OP_POW,
    NB_OP_MAXIMUM,
    NB_OP_MINIMUM,
    NB_OP_GT,
    NB_OP_GE,
    NB_OP_LT,
    NB_OP_LE,
    NB_OP_EQ,
    NB_OP_WHERE,
    NB_OP_SUM,
    NB_OP_MEAN,
    NB_OP_MAX,
    NB_OP_MIN,
    NB_OP_ARGMAX,
    NB_OP_LOG_SOFTMAX,
    NB_OP_LOG_SOFTMAX_BACKWARD,
    NB_OP_SOFTMAX_XENT,
    NB_OP_SOFTMAX_XENT_BACKWARD,
    NB_OP_SUM_TO,
    NB_OP_BROADCAST_TO,
    NB_OP_RESHAPE,
    NB_OP_PERMUTE,
    NB_OP_SLICE,
    NB_OP_UNSLICE,
    NB_OP_CONCAT,
    NB_OP_STACK,
    NB_OP_GATHER,
    NB_OP_SCATTER_ADD,
    NB_OP_ONE_HOT,
    NB_OP_MATMUL,
    NB_OP_CAST,
    NB_OP_STOP_GRADIENT,
    NB_OP_CONV2D,
    NB_OP_CONV_TRANSPOSE2D,
    NB_OP_CONV2D_WEIGHT_GRAD,
    NB_OP_MAX_POOL2D,
    NB_OP_AVG_POOL2D,
    NB_OP_MAX_UNPOOL2D,
    NB_OP_MAX_GATHER2D,
    NB_OP_AVG_UNPOOL2D,
    NB_OP_LINEAR,
    NB_OP_COUNT
};

/* σ(x) = 1/(1+e^-x) = e^x/(1+e^x), with e = e^-|x| <= 1: 1/(1+e) for x >= 0
 * and e/(1+e) for x < 0. Nothing overflows, and for x < 0 no 1 - (something
 * near 1) cancels, so the result keeps its relative accuracy down to the
 * smallest normal number (σ(-700) in f64, σ(-87) in f32) and NaN stays NaN.
 * The sigmoid kernel, and the sweep's one-element rule (ops/scalar.h). */
#define NBO_SIGMOID_FN(NAME, T)                                                                    \
    static inline T NAME(T x)                                                                      \
    {                                                                                              \
        T e = (T)exp(-fabs((double)x));                                                            \
        return (x >= 0 ? (T)1 : e) / ((T)1 + e);                                                   \
    }
NBO_SIGMOID_FN(nbo_sigmoid_f32, float)
NBO_SIGMOID_FN(nbo_sigmoid_f64, double)
#define NBO_SIGMOID(x) _Generic((x), float : nbo_sigmoid_f32, default : nbo_sigmoid_f64)(x)

/* shape rules shared by families of ops */
nb_status nbo_binary_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_broadcast_to_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_cast_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_concat_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_gather_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_matmul_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_one_hot_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_permute_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_reduce_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_argmax_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_reshape_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_scatter_add_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_slice_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_stack_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_sum_to_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_unary_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_unslice_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_where_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_relu_mask_shape(nb_graph *g, nb_tensor *out);

/* kernels and derivative rules */
nb_status nbo_neg_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_neg_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_neg_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_exp_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_exp_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_exp_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_log_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_log_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_log_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_log1p_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_log1p_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_log1p_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_expm1_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_expm1_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_expm1_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sqrt_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_sqrt_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_sqrt_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_abs_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_abs_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_abs_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sin_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_sin_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_sin_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_cos_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_cos_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_cos_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_tanh_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_tanh_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_tanh_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sigmoid_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_sigmoid_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_sigmoid_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_erf_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_erf_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_erf_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sign_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_step_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_relu_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_relu_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_relu_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_relu_mask_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_relu_mask_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_relu_mask_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_add_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_add_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_add_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sub_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_sub_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_sub_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_mul_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_mul_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_mul_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_div_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_div_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_div_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_pow_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_pow_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_pow_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_maximum_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_maximum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_maximum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_minimum_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_minimum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_minimum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_gt_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_ge_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_lt_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_le_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_eq_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_where_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_where_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_where_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sum_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_sum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_sum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_mean_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_mean_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_mean_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_max_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_max_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_max_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_min_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_min_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_min_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_argmax_fwd(nb_graph *g, nb_tensor *out);
/* log_softmax along one axis and its VJP as primitives (softmax.c); the
 * constructors take an axis already checked against x (nn's
 * nb_log_softmax checks it) and record NB_ERR_ARG for one out of range */
nb_tensor *nbo_log_softmax(nb_graph *g, nb_tensor *x, int axis);
nb_tensor *nbo_log_softmax_backward(nb_graph *g, nb_tensor *gy, nb_tensor *y, int axis);
nb_status nbo_log_softmax_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_log_softmax_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_log_softmax_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_log_softmax_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_log_softmax_backward_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_log_softmax_backward_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_log_softmax_backward_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
/* softmax cross-entropy of [N, C] logits with N integer labels as one
 * primitive and its VJP as another (softmax.c): reduction 0 = mean, 1 = sum
 * (nb_reduction's values); the backward takes the forward's attributes and
 * its node y (NULL: the backward recomputes the row statistics y saved) */
nb_tensor *nbo_softmax_xent(nb_graph *g, nb_tensor *z, const int64_t *labels, int64_t n,
                            int reduction);
nb_tensor *nbo_softmax_xent_backward(nb_graph *g, nb_tensor *z, nb_tensor *gr, nb_tensor *y,
                                     const nb_attrs *attrs);
nb_status nbo_softmax_xent_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_softmax_xent_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_softmax_xent_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_softmax_xent_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_softmax_xent_backward_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_softmax_xent_backward_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_softmax_xent_backward_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_sum_to_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_sum_to_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_sum_to_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_broadcast_to_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_broadcast_to_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_broadcast_to_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_reshape_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_reshape_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_reshape_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_permute_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_permute_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_permute_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_slice_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_slice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_slice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_unslice_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_unslice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_unslice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_concat_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_concat_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_concat_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_stack_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_stack_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_stack_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_gather_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_gather_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_gather_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_scatter_add_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_scatter_add_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_scatter_add_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_one_hot_fwd(nb_graph *g, nb_tensor *out);
nb_status nbo_matmul_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_matmul_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_matmul_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_cast_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_cast_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_cast_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_stop_gradient_fwd(nb_graph *g, nb_tensor *out);
/* convolution (conv.c): three bilinear ops sharing a shape rule, a kernel
 * and a JVP rule */
nb_status nbo_conv_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_conv_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_conv2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_conv2d_vjp_pre(nb_graph *g, nb_tensor *out, nb_tensor *grad_out);
nb_tensor *nbo_conv2d_vjp_post(nb_graph *g, nb_tensor *out, int i, nb_tensor *pre);
nb_tensor *nbo_conv_transpose2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_conv2d_weight_grad_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_conv_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
/* pooling (pool.c) */
nb_status nbo_pool_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_max_unpool2d_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_max_gather2d_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_avg_unpool2d_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_max_pool2d_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_max_pool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
/* ReLU before max pooling. When y is a ReLU's result (nbo_relu_result: a
 * relu op, or a conv2d with its ReLU) and p = max_pool2d(y),
 * the pooling's rule masks the pooled gradient first: d = max_unpool2d(
 * relu_mask(g, p), p), on the pooled size. ReLU's own rule, relu_mask(d, y),
 * then changes nothing, bit for bit (d is +0 off the argmax and wherever
 * p <= 0, and at the argmax y = p), so nbo_masked_unpool(d, y) tells it to
 * hand d on as it is: one pass over the small tensor instead of one over
 * the large one. */
bool nbo_relu_result(const nb_tensor *y);
bool nbo_masked_unpool(const nb_tensor *d, const nb_tensor *y);
bool nbo_conv2d_relu(const nb_tensor *out);
nb_tensor *nbo_max_pool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_avg_pool2d_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_avg_pool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_avg_pool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_max_unpool2d_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_max_unpool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_max_unpool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_max_gather2d_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_max_gather2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_max_gather2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
nb_status nbo_avg_unpool2d_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_avg_unpool2d_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_avg_unpool2d_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);
/* the fused linear map (linear.c) */
nb_status nbo_linear_shape(nb_graph *g, nb_tensor *out);
nb_status nbo_linear_fwd(nb_graph *g, nb_tensor *out);
nb_tensor *nbo_linear_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out);
nb_tensor *nbo_linear_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *tangents);

/* Ops whose VJP rules all start from one tensor made from the gradient of
 * the result (the fused linear map and conv2d: that gradient through their
 * activation).
 * The reverse sweep makes it once per node, pre = nbo_vjp_pre(g, node,
 * grad_out), and asks nbo_vjp_post(g, node, i, pre) for each input; the
 * op's vjp is the two in a row. */
bool nbo_has_vjp_pre(const nbo_def *op);
nb_tensor *nbo_vjp_pre(nb_graph *g, nb_tensor *out, nb_tensor *grad_out);
nb_tensor *nbo_vjp_post(nb_graph *g, nb_tensor *out, int i, nb_tensor *pre);
/* A parameter's gradient straight into its ->grad: for input @p i of
 * @p out, given @p pre (nbo_vjp_pre's), grad += the input's gradient, when
 * the op can (the fused linear map's weight, on the built-in kernel; see
 * nbo_gemm_add_into): then *done is set, and nothing is recorded. */
nb_status nbo_linear_vjp_into_grad(nb_graph *g, nb_tensor *out, nb_tensor *pre, nb_tensor *grad,
                                   bool *done);
static inline nb_status nbo_vjp_into_grad(nb_graph *g, nb_tensor *out, int i, nb_tensor *pre,
                                          nb_tensor *grad, bool *done)
{
    /* a tiny product (x·W of at most 4096 multiply-adds) takes the usual route */
    if (out->op != &nbo_table[NB_OP_LINEAR] || i != 1 ||
        (double)out->inputs[0]->size * (double)out->inputs[1]->shape[1] <= 4096) {
        *done = false;
        return NB_OK;
    }
    return nbo_linear_vjp_into_grad(g, out, pre, grad, done);
}

/* Reverse sweeps that record no graph: add the gradient of input @p i of
 * @p node, given @p grad (the gradient of its result), into @p acc (shaped
 * as that input, its gradient so far) in place, at the cost of the part
 * that is not zero. True when @p node's op has such a rule (a slice adds
 * @p grad at the positions it took, instead of a full-size unslice and a
 * full-size sum); false leaves @p acc alone. The numbers are those of the
 * op's VJP rule and a sum. */
bool nbo_vjp_into(const nb_tensor *node, int i, const nb_tensor *grad, nb_tensor *acc);
/* Whether @p op has such a rule. */
bool nbo_has_vjp_into(const nbo_def *op);

#endif
