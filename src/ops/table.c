/* The primitive table: one row per op, indexed by enum nbo_id. Adding an op
 * is one row here, its kernels and rules, and its gradcheck test. Ops
 * whose result carries no gradient (comparisons, sign, step, one_hot,
 * stop_gradient) have no vjp/jvp. */

#include "table.h"

const nbo_def nbo_table[] = {
    [NB_OP_NEG] = {"neg", 1, nbo_unary_shape, nbo_neg_fwd, nbo_neg_vjp, nbo_neg_jvp},
    [NB_OP_EXP] = {"exp", 1, nbo_unary_shape, nbo_exp_fwd, nbo_exp_vjp, nbo_exp_jvp},
    [NB_OP_LOG] = {"log", 1, nbo_unary_shape, nbo_log_fwd, nbo_log_vjp, nbo_log_jvp},
    [NB_OP_LOG1P] = {"log1p", 1, nbo_unary_shape, nbo_log1p_fwd, nbo_log1p_vjp, nbo_log1p_jvp},
    [NB_OP_EXPM1] = {"expm1", 1, nbo_unary_shape, nbo_expm1_fwd, nbo_expm1_vjp, nbo_expm1_jvp},
    [NB_OP_SQRT] = {"sqrt", 1, nbo_unary_shape, nbo_sqrt_fwd, nbo_sqrt_vjp, nbo_sqrt_jvp},
    [NB_OP_ABS] = {"abs", 1, nbo_unary_shape, nbo_abs_fwd, nbo_abs_vjp, nbo_abs_jvp},
    [NB_OP_SIN] = {"sin", 1, nbo_unary_shape, nbo_sin_fwd, nbo_sin_vjp, nbo_sin_jvp},
    [NB_OP_COS] = {"cos", 1, nbo_unary_shape, nbo_cos_fwd, nbo_cos_vjp, nbo_cos_jvp},
    [NB_OP_TANH] = {"tanh", 1, nbo_unary_shape, nbo_tanh_fwd, nbo_tanh_vjp, nbo_tanh_jvp},
    [NB_OP_ERF] = {"erf", 1, nbo_unary_shape, nbo_erf_fwd, nbo_erf_vjp, nbo_erf_jvp},
    [NB_OP_SIGN] = {"sign", 1, nbo_unary_shape, nbo_sign_fwd, NULL, NULL},
    [NB_OP_STEP] = {"step", 1, nbo_unary_shape, nbo_step_fwd, NULL, NULL},
    [NB_OP_ADD] = {"add", 2, nbo_binary_shape, nbo_add_fwd, nbo_add_vjp, nbo_add_jvp},
    [NB_OP_SUB] = {"sub", 2, nbo_binary_shape, nbo_sub_fwd, nbo_sub_vjp, nbo_sub_jvp},
    [NB_OP_MUL] = {"mul", 2, nbo_binary_shape, nbo_mul_fwd, nbo_mul_vjp, nbo_mul_jvp},
    [NB_OP_DIV] = {"div", 2, nbo_binary_shape, nbo_div_fwd, nbo_div_vjp, nbo_div_jvp},
    [NB_OP_POW] = {"pow", 2, nbo_binary_shape, nbo_pow_fwd, nbo_pow_vjp, nbo_pow_jvp},
    [NB_OP_MAXIMUM] = {"maximum", 2, nbo_binary_shape, nbo_maximum_fwd, nbo_maximum_vjp, nbo_maximum_jvp},
    [NB_OP_MINIMUM] = {"minimum", 2, nbo_binary_shape, nbo_minimum_fwd, nbo_minimum_vjp, nbo_minimum_jvp},
    [NB_OP_GT] = {"gt", 2, nbo_binary_shape, nbo_gt_fwd, NULL, NULL},
    [NB_OP_GE] = {"ge", 2, nbo_binary_shape, nbo_ge_fwd, NULL, NULL},
    [NB_OP_LT] = {"lt", 2, nbo_binary_shape, nbo_lt_fwd, NULL, NULL},
    [NB_OP_LE] = {"le", 2, nbo_binary_shape, nbo_le_fwd, NULL, NULL},
    [NB_OP_EQ] = {"eq", 2, nbo_binary_shape, nbo_eq_fwd, NULL, NULL},
    [NB_OP_WHERE] = {"where", 3, nbo_where_shape, nbo_where_fwd, nbo_where_vjp, nbo_where_jvp},
    [NB_OP_SUM] = {"sum", 1, nbo_reduce_shape, nbo_sum_fwd, nbo_sum_vjp, nbo_sum_jvp},
    [NB_OP_MEAN] = {"mean", 1, nbo_reduce_shape, nbo_mean_fwd, nbo_mean_vjp, nbo_mean_jvp},
    [NB_OP_MAX] = {"max", 1, nbo_reduce_shape, nbo_max_fwd, nbo_max_vjp, nbo_max_jvp},
    [NB_OP_SUM_TO] = {"sum_to", 1, nbo_sum_to_shape, nbo_sum_to_fwd, nbo_sum_to_vjp, nbo_sum_to_jvp},
    [NB_OP_BROADCAST_TO] = {"broadcast_to", 1, nbo_broadcast_to_shape, nbo_broadcast_to_fwd, nbo_broadcast_to_vjp, nbo_broadcast_to_jvp},
    [NB_OP_RESHAPE] = {"reshape", 1, nbo_reshape_shape, nbo_reshape_fwd, nbo_reshape_vjp, nbo_reshape_jvp},
    [NB_OP_PERMUTE] = {"permute", 1, nbo_permute_shape, nbo_permute_fwd, nbo_permute_vjp, nbo_permute_jvp},
    [NB_OP_SLICE] = {"slice", 1, nbo_slice_shape, nbo_slice_fwd, nbo_slice_vjp, nbo_slice_jvp},
    [NB_OP_UNSLICE] = {"unslice", 1, nbo_unslice_shape, nbo_unslice_fwd, nbo_unslice_vjp, nbo_unslice_jvp},
    [NB_OP_CONCAT] = {"concat", -1, nbo_concat_shape, nbo_concat_fwd, nbo_concat_vjp, nbo_concat_jvp},
    [NB_OP_GATHER] = {"gather", 1, nbo_gather_shape, nbo_gather_fwd, nbo_gather_vjp, nbo_gather_jvp},
    [NB_OP_SCATTER_ADD] = {"scatter_add", 1, nbo_scatter_add_shape, nbo_scatter_add_fwd, nbo_scatter_add_vjp, nbo_scatter_add_jvp},
    [NB_OP_ONE_HOT] = {"one_hot", 0, nbo_one_hot_shape, nbo_one_hot_fwd, NULL, NULL},
    [NB_OP_MATMUL] = {"matmul", 2, nbo_matmul_shape, nbo_matmul_fwd, nbo_matmul_vjp, nbo_matmul_jvp},
    [NB_OP_CAST] = {"cast", 1, nbo_cast_shape, nbo_cast_fwd, nbo_cast_vjp, nbo_cast_jvp},
    [NB_OP_STOP_GRADIENT] = {"stop_gradient", 1, nbo_unary_shape, nbo_stop_gradient_fwd, NULL, NULL},
};

_Static_assert(sizeof nbo_table / sizeof nbo_table[0] == NB_OP_COUNT,
               "every op needs exactly one row in nbo_table");
