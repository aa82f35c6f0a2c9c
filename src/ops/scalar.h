/* One-element gradients as plain numbers: the reverse sweep's shortcut for
 * ops whose inputs and result all have one element, used when no graph of
 * the gradient is wanted. Each rule is the op's VJP rule (src/ops) evaluated
 * in the op's dtype one operation at a time, in the same order, so the
 * numbers are bit for bit the ones the rule's graph would hold. The ops own
 * them, beside their VJP rules: nbo_apply marks the nodes that qualify
 * (NB_T_SCALAR), and the reverse sweep (src/autodiff) calls nbo_scalar_vjp. */
#ifndef NABLA_OPS_SCALAR_H
#define NABLA_OPS_SCALAR_H

#include <math.h>

#include "table.h"

/* True when op is a built-in op with a rule below. */
static inline bool nbo_has_scalar_rule(const nbo_def *op)
{
    static const bool has[NB_OP_COUNT] = {
        [NB_OP_NEG] = true,   [NB_OP_EXP] = true,  [NB_OP_LOG] = true,     [NB_OP_LOG1P] = true,
        [NB_OP_EXPM1] = true, [NB_OP_SQRT] = true, [NB_OP_ABS] = true,     [NB_OP_SIN] = true,
        [NB_OP_COS] = true,   [NB_OP_TANH] = true, [NB_OP_SIGMOID] = true, [NB_OP_ADD] = true,
        [NB_OP_SUB] = true,   [NB_OP_MUL] = true,  [NB_OP_DIV] = true,
    };
    return op >= nbo_table && op < nbo_table + NB_OP_COUNT && has[op - nbo_table];
}

/* d[i] = the gradient for input i given g, the gradient of the result. T is
 * the dtype's C type; a transcendental is taken in double and rounded to T,
 * as the kernels do. */
#define SCALAR_RULES(T)                                                                            \
    do {                                                                                           \
        T g = (T)gout, y = *(const T *)node->data;                                                 \
        T a = *(const T *)node->inputs[0]->data;                                                   \
        T b = node->n_inputs > 1 ? *(const T *)node->inputs[1]->data : (T)0;                       \
        switch (id) {                                                                              \
        case NB_OP_NEG: /* -v */ d[0] = -g; break;                                                 \
        case NB_OP_EXP: /* v·y */ d[0] = g * y; break;                                             \
        case NB_OP_LOG: /* v/x */ d[0] = g / a; break;                                             \
        case NB_OP_LOG1P: /* v/(x+1) */ d[0] = g / (a + (T)1); break;                              \
        case NB_OP_EXPM1: /* v·(y+1) */ d[0] = g * (y + (T)1); break;                              \
        case NB_OP_SQRT: /* v/(2y) */ d[0] = g / (y * (T)2); break;                                \
        case NB_OP_ABS: /* v·sign(x) */ d[0] = g * (T)((a > 0) - (a < 0)); break;                  \
        case NB_OP_SIN: /* v·cos x */ d[0] = g * (T)cos(a); break;                                 \
        case NB_OP_COS: /* -(v·sin x) */ d[0] = -(g * (T)sin(a)); break;                           \
        case NB_OP_TANH: /* v·(1 - y·y) */ d[0] = g * ((T)1 - y * y); break;                       \
        case NB_OP_SIGMOID: /* v·(y·σ(-x)) */ d[0] = g * (y * NBO_SIGMOID(-a)); break;             \
        case NB_OP_ADD: /* g, g */                                                                 \
            d[0] = g;                                                                              \
            d[1] = g;                                                                              \
            break;                                                                                 \
        case NB_OP_SUB: /* g, -g */                                                                \
            d[0] = g;                                                                              \
            d[1] = -g;                                                                             \
            break;                                                                                 \
        case NB_OP_MUL: /* g·b, g·a */                                                           \
            d[0] = g * b;                                                                          \
            d[1] = g * a;                                                                          \
            break;                                                                                 \
        case NB_OP_DIV: /* g/b, -(g·(y/b)) */                                                     \
            d[0] = g / b;                                                                          \
            d[1] = -(g * (y / b));                                                                 \
            break;                                                                                 \
        default: break;                                                                            \
        }                                                                                          \
    } while (0)

/* d[i] = the gradient for input i of node (NB_T_SCALAR: its op has a rule,
 * it and its inputs have one element of one dtype) given gout, the gradient
 * of its result; a float result stored in d is exact. */
static inline void nbo_scalar_vjp(const nb_tensor *node, double gout, double d[2])
{
    int id = (int)(node->op - nbo_table);
    if (node->dtype == NB_F32)
        SCALAR_RULES(float);
    else
        SCALAR_RULES(double);
}

#endif
