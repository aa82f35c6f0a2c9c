/* Elementwise ops: unary maths, ReLU and its gradient, broadcasting binary
 * arithmetic, comparisons and where. Each kernel is written once for both dtypes (<tgmath.h> picks
 * the float or double function from the element type). At the end, the
 * elementwise compositions: scale, add_scalar, square, comparisons with a
 * scalar, clamp and log_sigmoid. */

#include <tgmath.h>

#include "kernels.h"

/* ------------------------------------------------------------ shape rules */

nb_status nbo_unary_shape(nb_graph *g, nb_tensor *out)
{
    (void)g;
    const nb_tensor *x = out->inputs[0];
    out->dtype = x->dtype;
    out->rank = x->rank;
    memcpy(out->shape, x->shape, (size_t)x->rank * sizeof *x->shape);
    return NB_OK;
}

/* Kept out of line: the message buffers would cost every call a big frame. */
static NB_NOINLINE nb_status dtype_error(nb_graph *g, const nb_tensor *out, int first, int i)
{
    char b0[160], b1[160];
    return nbc_error(g, NB_ERR_DTYPE, out->op->name, "%s%s and %s%s: dtypes differ",
                     nb_dtype_name(out->inputs[first]->dtype),
                     nbc_shp(out->inputs[first], b0, sizeof b0),
                     nb_dtype_name(out->inputs[i]->dtype), nbc_shp(out->inputs[i], b1, sizeof b1));
}

static nb_status same_dtype(nb_graph *g, const nb_tensor *out, int first, int n)
{
    for (int i = first + 1; i < n; i++)
        if (out->inputs[i]->dtype != out->inputs[first]->dtype)
            return dtype_error(g, out, first, i);
    return NB_OK;
}

nb_status nbo_binary_shape(nb_graph *g, nb_tensor *out)
{
    if (same_dtype(g, out, 0, 2) != NB_OK)
        return NB_ERR_DTYPE;
    out->dtype = out->inputs[0]->dtype;
    return nbk_broadcast_shape(g, out->op->name, out->inputs, 2, &out->rank, out->shape);
}

nb_status nbo_where_shape(nb_graph *g, nb_tensor *out)
{
    /* the mask may be of either dtype; a and b must agree */
    if (same_dtype(g, out, 1, 3) != NB_OK)
        return NB_ERR_DTYPE;
    out->dtype = out->inputs[1]->dtype;
    return nbk_broadcast_shape(g, out->op->name, out->inputs, 3, &out->rank, out->shape);
}

/* ----------------------------------------------------------------- driver */

/* ------------------------------------------------------------ unary ops */

#define UNARY_BODY(T, EXPR)                                                                        \
    do {                                                                                           \
        T *o = out->data;                                                                          \
        const T *in = out->inputs[0]->data;                                                        \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            T *po = o + r * p->inner;                                                              \
            const T *px = in + r * p->inner;                                                       \
            NBK_SIMD                                                                               \
            for (int64_t j = j0; j < j1; j++) {                                                    \
                T x = px[j];                                                                       \
                po[j] = (EXPR);                                                                    \
            }                                                                                      \
        }                                                                                          \
    } while (0)

#define DEFINE_UNARY_FWD(NAME, EXPR)                                                               \
    static void NAME##_rows(const nbk_plan *p, nb_tensor *out, int64_t r0, int64_t r1, int64_t j0, \
                            int64_t j1)                                                            \
    {                                                                                              \
        if (out->dtype == NB_F32)                                                                  \
            UNARY_BODY(float, EXPR);                                                               \
        else                                                                                       \
            UNARY_BODY(double, EXPR);                                                              \
    }                                                                                              \
    nb_status nbo_##NAME##_fwd(nb_graph *g, nb_tensor *out)                                        \
    {                                                                                              \
        if (out->size == 1) { /* a scalar: no row plan */                                          \
            if (out->dtype == NB_F32) {                                                            \
                float x = *(const float *)out->inputs[0]->data;                                    \
                *(float *)out->data = (EXPR);                                                      \
            } else {                                                                               \
                double x = *(const double *)out->inputs[0]->data;                                  \
                *(double *)out->data = (EXPR);                                                     \
            }                                                                                      \
            return NB_OK;                                                                          \
        }                                                                                          \
        nbk_run_rows(g, out, 1, NAME##_rows);                                                      \
        return NB_OK;                                                                              \
    }                                                                                              \
    nb_tensor *nb_##NAME(nb_graph *g, nb_tensor *x)                                                \
    {                                                                                              \
        return nbo_apply(g, &nbo_table[NB_OP_##NAME##_ID], &x, 1, NULL);                           \
    }

/* Each differentiable unary op has one rule `NAME_d(g, out, v)` = f'(x)·v,
 * used both as the VJP (v = incoming gradient) and the JVP (v = tangent). */
#define DEFINE_UNARY_RULES(NAME)                                                                   \
    nb_tensor *nbo_##NAME##_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)                 \
    {                                                                                              \
        (void)i;                                                                                   \
        return NAME##_d(g, out, gr);                                                               \
    }                                                                                              \
    nb_tensor *nbo_##NAME##_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)                  \
    {                                                                                              \
        return NAME##_d(g, out, t[0]);                                                             \
    }

#define NB_OP_neg_ID NB_OP_NEG
#define NB_OP_exp_ID NB_OP_EXP
#define NB_OP_log_ID NB_OP_LOG
#define NB_OP_log1p_ID NB_OP_LOG1P
#define NB_OP_expm1_ID NB_OP_EXPM1
#define NB_OP_sqrt_ID NB_OP_SQRT
#define NB_OP_abs_ID NB_OP_ABS
#define NB_OP_sin_ID NB_OP_SIN
#define NB_OP_cos_ID NB_OP_COS
#define NB_OP_tanh_ID NB_OP_TANH
#define NB_OP_sigmoid_ID NB_OP_SIGMOID
#define NB_OP_erf_ID NB_OP_ERF
#define NB_OP_sign_ID NB_OP_SIGN
#define NB_OP_step_ID NB_OP_STEP
#define NB_OP_relu_ID NB_OP_RELU
#define NB_OP_stop_gradient_ID NB_OP_STOP_GRADIENT

DEFINE_UNARY_FWD(neg, -x)
DEFINE_UNARY_FWD(exp, exp(x))
DEFINE_UNARY_FWD(log, log(x))
DEFINE_UNARY_FWD(log1p, log1p(x))
DEFINE_UNARY_FWD(expm1, expm1(x))
DEFINE_UNARY_FWD(sqrt, sqrt(x))
DEFINE_UNARY_FWD(abs, fabs(x))
DEFINE_UNARY_FWD(sin, sin(x))
DEFINE_UNARY_FWD(cos, cos(x))
DEFINE_UNARY_FWD(tanh, tanh(x))
DEFINE_UNARY_FWD(sigmoid, NBO_SIGMOID(x))
DEFINE_UNARY_FWD(erf, erf(x))
DEFINE_UNARY_FWD(sign, (x > 0) - (x < 0))
DEFINE_UNARY_FWD(step, x > 0)
/* +0 where x <= 0 (-0 included), x elsewhere: a NaN passes unchanged */
DEFINE_UNARY_FWD(relu, x <= 0 ? 0 : x)
DEFINE_UNARY_FWD(stop_gradient, x)

/* d(-x) = -v */
static nb_tensor *neg_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    (void)out;
    return nb_neg(g, v);
}
/* d(e^x) = v·y */
static nb_tensor *exp_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_mul(g, v, out);
}
/* d(ln x) = v/x */
static nb_tensor *log_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_div(g, v, out->inputs[0]);
}
/* d(ln(1+x)) = v/(1+x) */
static nb_tensor *log1p_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_div(g, v, nb_add_scalar(g, out->inputs[0], 1.0));
}
/* d(e^x - 1) = v·(y+1) */
static nb_tensor *expm1_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_mul(g, v, nb_add_scalar(g, out, 1.0));
}
/* d(sqrt x) = v/(2y) */
static nb_tensor *sqrt_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_div(g, v, nb_scale(g, out, 2.0));
}
/* d|x| = v·sign(x) */
static nb_tensor *abs_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_mul(g, v, nb_sign(g, out->inputs[0]));
}
/* d(sin x) = v·cos x */
static nb_tensor *sin_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_mul(g, v, nb_cos(g, out->inputs[0]));
}
/* d(cos x) = -v·sin x */
static nb_tensor *cos_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_neg(g, nb_mul(g, v, nb_sin(g, out->inputs[0])));
}
/* d(tanh x) = v·(1 - y²) */
static nb_tensor *tanh_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_mul(g, v, nb_sub(g, nbk_const(g, out, 1.0), nb_square(g, out)));
}
/* d σ(x) = v·σ(x)·σ(-x): σ(-x) rather than 1 - y, which would lose the
 * derivative's relative accuracy for large x (it is e^-x there) */
static nb_tensor *sigmoid_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    return nb_mul(g, v, nb_mul(g, out, nb_sigmoid(g, nb_neg(g, out->inputs[0]))));
}
/* d(erf x) = v·(2/√π)·e^(-x²) */
static nb_tensor *erf_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    nb_tensor *x = out->inputs[0];
    nb_tensor *e = nb_exp(g, nb_neg(g, nb_square(g, x)));
    return nb_mul(g, v, nb_scale(g, e, 1.12837916709551257390)); /* 2/sqrt(pi) */
}

/* d relu(x) = relu_mask(v, x) = v·1(x > 0) */
static nb_tensor *relu_d(nb_graph *g, nb_tensor *out, nb_tensor *v)
{
    if (nbo_masked_unpool(v, out)) /* already masked (table.h) */
        return v;
    return nb_relu_mask(g, v, out->inputs[0]);
}

DEFINE_UNARY_RULES(neg)
DEFINE_UNARY_RULES(exp)
DEFINE_UNARY_RULES(log)
DEFINE_UNARY_RULES(log1p)
DEFINE_UNARY_RULES(expm1)
DEFINE_UNARY_RULES(sqrt)
DEFINE_UNARY_RULES(abs)
DEFINE_UNARY_RULES(sin)
DEFINE_UNARY_RULES(cos)
DEFINE_UNARY_RULES(tanh)
DEFINE_UNARY_RULES(sigmoid)
DEFINE_UNARY_RULES(erf)
DEFINE_UNARY_RULES(relu)

/* ------------------------------------------------------------ binary ops */

#define BINARY_BODY(T, EXPR)                                                                       \
    do {                                                                                           \
        T *o = out->data;                                                                          \
        const T *a = out->inputs[0]->data, *b = out->inputs[1]->data;                              \
        int64_t idx[NB_MAX_RANK], off[3];                                                          \
        nbk_plan_index(p, r0, idx);                                                                \
        nbk_plan_offsets(p, r0, off);                                                              \
        int64_t sa = p->stride[0][p->rank - 1], sb = p->stride[1][p->rank - 1];                    \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            T *po = o + r * p->inner;                                                              \
            const T *pa = a + off[0], *pb = b + off[1];                                            \
            if (sa && sb) {                                                                        \
                NBK_SIMD                                                                           \
                for (int64_t j = j0; j < j1; j++) {                                                \
                    T x = pa[j], y = pb[j];                                                        \
                    po[j] = (EXPR);                                                                \
                }                                                                                  \
            } else if (sa) {                                                                       \
                T y = pb[0];                                                                       \
                NBK_SIMD                                                                           \
                for (int64_t j = j0; j < j1; j++) {                                                \
                    T x = pa[j];                                                                   \
                    po[j] = (EXPR);                                                                \
                }                                                                                  \
            } else if (sb) {                                                                       \
                T x = pa[0];                                                                       \
                NBK_SIMD                                                                           \
                for (int64_t j = j0; j < j1; j++) {                                                \
                    T y = pb[j];                                                                   \
                    po[j] = (EXPR);                                                                \
                }                                                                                  \
            } else {                                                                               \
                T x = pa[0], y = pb[0];                                                            \
                for (int64_t j = j0; j < j1; j++)                                                  \
                    po[j] = (EXPR);                                                                \
            }                                                                                      \
            nbk_plan_next(p, idx, off);                                                            \
        }                                                                                          \
    } while (0)

#define DEFINE_BINARY_FWD(NAME, ID, EXPR)                                                          \
    static void NAME##_rows(const nbk_plan *p, nb_tensor *out, int64_t r0, int64_t r1, int64_t j0, \
                            int64_t j1)                                                            \
    {                                                                                              \
        if (out->dtype == NB_F32)                                                                  \
            BINARY_BODY(float, EXPR);                                                              \
        else                                                                                       \
            BINARY_BODY(double, EXPR);                                                             \
    }                                                                                              \
    nb_status nbo_##NAME##_fwd(nb_graph *g, nb_tensor *out)                                        \
    {                                                                                              \
        if (out->size == 1) { /* scalars: no row plan */                                           \
            if (out->dtype == NB_F32) {                                                            \
                float x = *(const float *)out->inputs[0]->data;                                    \
                float y = *(const float *)out->inputs[1]->data;                                    \
                *(float *)out->data = (EXPR);                                                      \
            } else {                                                                               \
                double x = *(const double *)out->inputs[0]->data;                                  \
                double y = *(const double *)out->inputs[1]->data;                                  \
                *(double *)out->data = (EXPR);                                                     \
            }                                                                                      \
            return NB_OK;                                                                          \
        }                                                                                          \
        nbk_run_rows(g, out, 2, NAME##_rows);                                                      \
        return NB_OK;                                                                              \
    }                                                                                              \
    nb_tensor *nb_##NAME(nb_graph *g, nb_tensor *a, nb_tensor *b)                                  \
    {                                                                                              \
        nb_tensor *in[2] = {a, b};                                                                 \
        return nbo_apply(g, &nbo_table[ID], in, 2, NULL);                                          \
    }

DEFINE_BINARY_FWD(add, NB_OP_ADD, x + y)
DEFINE_BINARY_FWD(sub, NB_OP_SUB, x - y)
DEFINE_BINARY_FWD(mul, NB_OP_MUL, x *y)
DEFINE_BINARY_FWD(div, NB_OP_DIV, x / y)
DEFINE_BINARY_FWD(pow, NB_OP_POW, pow(x, y))
DEFINE_BINARY_FWD(maximum, NB_OP_MAXIMUM, (x > y || x != x) ? x : y)
DEFINE_BINARY_FWD(minimum, NB_OP_MINIMUM, (x < y || x != x) ? x : y)
DEFINE_BINARY_FWD(gt, NB_OP_GT, x > y)
DEFINE_BINARY_FWD(ge, NB_OP_GE, x >= y)
DEFINE_BINARY_FWD(lt, NB_OP_LT, x < y)
DEFINE_BINARY_FWD(le, NB_OP_LE, x <= y)
DEFINE_BINARY_FWD(eq, NB_OP_EQ, x == y)

#define A(out) ((out)->inputs[0])
#define B(out) ((out)->inputs[1])

/* A tangent that forward mode knows to be zero: its term can be left out
 * (NULL = zero is also how rules report one). */
#define ZERO_TAN(t) (!(t) || ((t)->flags & NB_T_ZERO))

/* t (shaped like an input of out) broadcast to out's shape. */
static nb_tensor *tan_to_out(nb_graph *g, nb_tensor *out, nb_tensor *t)
{
    return nbc_same_shape(t, out) ? t : nb_broadcast_to(g, t, out->rank, out->shape);
}

/* d(a+b): da = g, db = g */
nb_tensor *nbo_add_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbk_unbroadcast(g, gr, out->inputs[i]);
}
nb_tensor *nbo_add_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : tan_to_out(g, out, t[0]);
    if (ZERO_TAN(t[0]))
        return tan_to_out(g, out, t[1]);
    return nb_add(g, t[0], t[1]);
}

/* d(a-b): da = g, db = -g */
nb_tensor *nbo_sub_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbk_unbroadcast(g, i == 0 ? gr : nb_neg(g, gr), out->inputs[i]);
}
nb_tensor *nbo_sub_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : tan_to_out(g, out, t[0]);
    if (ZERO_TAN(t[0]))
        return tan_to_out(g, out, nb_neg(g, t[1]));
    return nb_sub(g, t[0], t[1]);
}

/* d(a·b): da = g·b, db = g·a */
nb_tensor *nbo_mul_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbk_unbroadcast(g, nb_mul(g, gr, out->inputs[1 - i]), out->inputs[i]);
}
nb_tensor *nbo_mul_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : nb_mul(g, t[0], B(out));
    if (ZERO_TAN(t[0]))
        return nb_mul(g, A(out), t[1]);
    return nb_add(g, nb_mul(g, t[0], B(out)), nb_mul(g, A(out), t[1]));
}

/* d(a/b): da = g/b, db = -g·y/b */
nb_tensor *nbo_div_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    if (i == 0)
        return nbk_unbroadcast(g, nb_div(g, gr, B(out)), A(out));
    return nbk_unbroadcast(g, nb_neg(g, nb_mul(g, gr, nb_div(g, out, B(out)))), B(out));
}
nb_tensor *nbo_div_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    /* (ta - y·tb) / b */
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : nb_div(g, t[0], B(out));
    if (ZERO_TAN(t[0]))
        return nb_div(g, nb_neg(g, nb_mul(g, out, t[1])), B(out));
    return nb_div(g, nb_sub(g, t[0], nb_mul(g, out, t[1])), B(out));
}

/* d(a^b): da = g·b·a^(b-1); db = g·y·ln a, taken as 0 where a == 0 */
static nb_tensor *pow_da(nb_graph *g, nb_tensor *out)
{
    return nb_mul(g, B(out), nb_pow(g, A(out), nb_add_scalar(g, B(out), -1.0)));
}
static nb_tensor *pow_db(nb_graph *g, nb_tensor *out)
{
    nb_tensor *zero = nbk_const(g, out, 0.0);
    nb_tensor *a_is_0 = nb_eq(g, A(out), zero);
    nb_tensor *safe_a = nb_where(g, a_is_0, nbk_const(g, out, 1.0), A(out));
    return nb_where(g, a_is_0, zero, nb_mul(g, out, nb_log(g, safe_a)));
}
nb_tensor *nbo_pow_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    nb_tensor *d = i == 0 ? pow_da(g, out) : pow_db(g, out);
    return nbk_unbroadcast(g, nb_mul(g, gr, d), out->inputs[i]);
}
nb_tensor *nbo_pow_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : nb_mul(g, t[0], pow_da(g, out));
    if (ZERO_TAN(t[0]))
        return nb_mul(g, t[1], pow_db(g, out));
    return nb_add(g, nb_mul(g, t[0], pow_da(g, out)), nb_mul(g, t[1], pow_db(g, out)));
}

/* Share of the gradient that input `i` of maximum/minimum receives: 1 where
 * it wins (`wins` compares it against the other), 1/2 at ties, 0 elsewhere. */
static nb_tensor *extremum_share(nb_graph *g, nb_tensor *out, int i,
                                 nb_tensor *(*wins)(nb_graph *, nb_tensor *, nb_tensor *))
{
    nb_tensor *mine = out->inputs[i], *other = out->inputs[1 - i];
    return nb_add(g, wins(g, mine, other), nb_scale(g, nb_eq(g, mine, other), 0.5));
}

/* d max(a,b): the larger input gets g, halves at ties */
nb_tensor *nbo_maximum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbk_unbroadcast(g, nb_mul(g, gr, extremum_share(g, out, i, nb_gt)), out->inputs[i]);
}
nb_tensor *nbo_maximum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : nb_mul(g, t[0], extremum_share(g, out, 0, nb_gt));
    if (ZERO_TAN(t[0]))
        return nb_mul(g, t[1], extremum_share(g, out, 1, nb_gt));
    return nb_add(g, nb_mul(g, t[0], extremum_share(g, out, 0, nb_gt)),
                  nb_mul(g, t[1], extremum_share(g, out, 1, nb_gt)));
}

/* d min(a,b): the smaller input gets g, halves at ties */
nb_tensor *nbo_minimum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return nbk_unbroadcast(g, nb_mul(g, gr, extremum_share(g, out, i, nb_lt)), out->inputs[i]);
}
nb_tensor *nbo_minimum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]))
        return ZERO_TAN(t[0]) ? NULL : nb_mul(g, t[0], extremum_share(g, out, 0, nb_lt));
    if (ZERO_TAN(t[0]))
        return nb_mul(g, t[1], extremum_share(g, out, 1, nb_lt));
    return nb_add(g, nb_mul(g, t[0], extremum_share(g, out, 0, nb_lt)),
                  nb_mul(g, t[1], extremum_share(g, out, 1, nb_lt)));
}

/* ------------------------------------------------------------------ where */

/* The mask is read as M (float or double) and selects a or b; the common
 * layouts (contiguous, or one side a broadcast scalar) get loops of their
 * own. Those work on bits: the mask's (as UM, the unsigned integer of M's
 * size: anything but +0 and -0 is true, NaN included, as M != 0 says) and
 * the values' (as U, T's size), so that no branch depends on the mask,
 * whose signs are random in a ReLU's, and the result holds exactly the bits
 * ?: would pick. */
#define WHERE_LOOP(U, UM, A, B)                                                                    \
    for (int64_t j = j0; j < j1; j++) {                                                            \
        UM mb;                                                                                     \
        U x, y, z;                                                                                 \
        memcpy(&mb, pm + j, sizeof mb);                                                            \
        memcpy(&x, A, sizeof x);                                                                   \
        memcpy(&y, B, sizeof y);                                                                   \
        U pick = (U)0 - (U)((UM)(mb << 1) != 0); /* all ones where the mask is true */             \
        z = (x & pick) | (y & ~pick);                                                              \
        memcpy(po + j, &z, sizeof z);                                                              \
    }
#define WHERE_BODY(T, U, M, UM)                                                                    \
    do {                                                                                           \
        _Static_assert(sizeof(T) == sizeof(U) && sizeof(M) == sizeof(UM), "U, UM hold the bits");  \
        T *o = out->data;                                                                          \
        const M *mask = out->inputs[0]->data;                                                      \
        const T *a = out->inputs[1]->data, *b = out->inputs[2]->data;                              \
        int64_t idx[NB_MAX_RANK], off[3];                                                          \
        nbk_plan_index(p, r0, idx);                                                                \
        nbk_plan_offsets(p, r0, off);                                                              \
        int64_t sm = p->stride[0][p->rank - 1], sa = p->stride[1][p->rank - 1],                    \
                sb = p->stride[2][p->rank - 1];                                                    \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            T *restrict po = o + r * p->inner; /* a fresh result: no aliasing */                   \
            const M *restrict pm = mask + off[0];                                                  \
            const T *restrict pa = a + off[1], *restrict pb = b + off[2];                          \
            if (sm == 1 && sa == 1 && sb == 1) {                                                   \
                WHERE_LOOP(U, UM, pa + j, pb + j);                                                 \
            } else if (sm == 1 && sa == 1 && sb == 0) {                                            \
                WHERE_LOOP(U, UM, pa + j, pb);                                                     \
            } else if (sm == 1 && sa == 0 && sb == 1) {                                            \
                WHERE_LOOP(U, UM, pa, pb + j);                                                     \
            } else {                                                                               \
                for (int64_t j = j0; j < j1; j++)                                                  \
                    po[j] = pm[j * sm] != 0 ? pa[j * sa] : pb[j * sb];                             \
            }                                                                                      \
            nbk_plan_next(p, idx, off);                                                            \
        }                                                                                          \
    } while (0)

static void where_rows(const nbk_plan *p, nb_tensor *out, int64_t r0, int64_t r1, int64_t j0,
                       int64_t j1)
{
    bool m32 = out->inputs[0]->dtype == NB_F32;
    if (out->dtype == NB_F32) {
        if (m32)
            WHERE_BODY(float, uint32_t, float, uint32_t);
        else
            WHERE_BODY(float, uint32_t, double, uint64_t);
    } else {
        if (m32)
            WHERE_BODY(double, uint64_t, float, uint32_t);
        else
            WHERE_BODY(double, uint64_t, double, uint64_t);
    }
}

nb_status nbo_where_fwd(nb_graph *g, nb_tensor *out)
{
    nbk_run_rows(g, out, 3, where_rows);
    return NB_OK;
}

nb_tensor *nb_where(nb_graph *g, nb_tensor *mask, nb_tensor *a, nb_tensor *b)
{
    nb_tensor *in[3] = {mask, a, b};
    return nbo_apply(g, &nbo_table[NB_OP_WHERE], in, 3, NULL);
}

/* d where(m,a,b): da = where(m,g,0), db = where(m,0,g); the mask gets none */
nb_tensor *nbo_where_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    if (i == 0)
        return NULL;
    nb_tensor *zero = nbk_const(g, out, 0.0);
    nb_tensor *m = out->inputs[0];
    nb_tensor *d = i == 1 ? nb_where(g, m, gr, zero) : nb_where(g, m, zero, gr);
    return nbk_unbroadcast(g, d, out->inputs[i]);
}
nb_tensor *nbo_where_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    if (ZERO_TAN(t[1]) && ZERO_TAN(t[2]))
        return NULL;
    return nb_where(g, out->inputs[0], t[1], t[2]);
}

/* -------------------------------------------------------------- relu_mask */

/* relu_mask(g, x) = x <= 0 ? +0 : g: ReLU's gradient in one pass, the
 * numbers of where(x <= 0, 0, g) (g passes where x is NaN). g and x have
 * one shape and dtype. */
static NB_NOINLINE nb_status relu_mask_shape_error(nb_graph *g, const nb_tensor *out)
{
    char b0[160], b1[160];
    return nbc_error(g, NB_ERR_SHAPE, out->op->name, "gradient %s and input %s differ in shape",
                     nbc_shp(out->inputs[0], b0, sizeof b0),
                     nbc_shp(out->inputs[1], b1, sizeof b1));
}

nb_status nbo_relu_mask_shape(nb_graph *g, nb_tensor *out)
{
    if (same_dtype(g, out, 0, 2) != NB_OK)
        return NB_ERR_DTYPE;
    if (!nbc_same_shape(out->inputs[0], out->inputs[1]))
        return relu_mask_shape_error(g, out);
    return nbo_unary_shape(g, out);
}

#define RELU_MASK_BODY(T)                                                                          \
    do {                                                                                           \
        T *o = out->data;                                                                          \
        const T *gv = out->inputs[0]->data, *xv = out->inputs[1]->data;                            \
        for (int64_t r = r0; r < r1; r++) {                                                        \
            T *restrict po = o + r * p->inner; /* a fresh result: no aliasing */                   \
            const T *restrict pg = gv + r * p->inner, *restrict px = xv + r * p->inner;            \
            for (int64_t j = j0; j < j1; j++) {                                                    \
                T gj = pg[j]; /* read whatever x is: the loop selects, without branches */         \
                po[j] = px[j] <= 0 ? 0 : gj;                                                       \
            }                                                                                      \
        }                                                                                          \
    } while (0)

/* Compiled for AVX-512 and AVX2 too: a selection per element, as fast as
 * the vectors are wide (the baseline's 4 floats took 1.5 us of a 64-128-64
 * network's 39 us training step at batch 32) */
NBC_WIDE_CLONES static void relu_mask_rows(const nbk_plan *p, nb_tensor *out, int64_t r0,
                                           int64_t r1, int64_t j0, int64_t j1)
{
    if (out->dtype == NB_F32)
        RELU_MASK_BODY(float);
    else
        RELU_MASK_BODY(double);
}

nb_status nbo_relu_mask_fwd(nb_graph *g, nb_tensor *out)
{
    nbk_run_rows(g, out, 2, relu_mask_rows);
    return NB_OK;
}

nb_tensor *nb_relu_mask(nb_graph *g, nb_tensor *grad, nb_tensor *x)
{
    nb_tensor *in[2] = {grad, x};
    return nbo_apply(g, &nbo_table[NB_OP_RELU_MASK], in, 2, NULL);
}

/* relu_mask is linear in g and piecewise constant in x: dg = relu_mask(g', x),
 * none for x; t_y = relu_mask(t_g, x) */
nb_tensor *nbo_relu_mask_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    return i == 0 ? nb_relu_mask(g, gr, out->inputs[1]) : NULL;
}
nb_tensor *nbo_relu_mask_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return ZERO_TAN(t[0]) ? NULL : nb_relu_mask(g, t[0], out->inputs[1]);
}

/* ------------------------------------------ conveniences over primitives */

nb_tensor *nb_scale(nb_graph *g, nb_tensor *x, double s)
{
    if (!x)
        return NULL;
    return nb_mul(g, x, nbc_const(g, x->dtype, s));
}

nb_tensor *nb_add_scalar(nb_graph *g, nb_tensor *x, double s)
{
    if (!x)
        return NULL;
    return nb_add(g, x, nbc_const(g, x->dtype, s));
}

nb_tensor *nb_square(nb_graph *g, nb_tensor *x)
{
    return nb_mul(g, x, x);
}

/* x compared with s, a scalar of x's dtype: 0/1 in x's dtype, no gradient */
#define DEFINE_COMPARE_SCALAR(NAME)                                                                \
    nb_tensor *nb_##NAME##_scalar(nb_graph *g, nb_tensor *x, double s)                             \
    {                                                                                              \
        if (!x)                                                                                    \
            return NULL;                                                                           \
        return nb_##NAME(g, x, nbc_const(g, x->dtype, s));                                         \
    }
DEFINE_COMPARE_SCALAR(gt)
DEFINE_COMPARE_SCALAR(ge)
DEFINE_COMPARE_SCALAR(lt)
DEFINE_COMPARE_SCALAR(le)
DEFINE_COMPARE_SCALAR(eq)

/* where(x >= hi, hi, where(x <= lo, lo, x)): a bound reached is the outer
 * side of the kink (value the bound, derivative 0), and NaN stays NaN */
nb_tensor *nb_clamp(nb_graph *g, nb_tensor *x, double lo, double hi)
{
    if (!g || !x)
        return NULL;
    if (!(lo <= hi)) {
        char b[160];
        nbc_error(g, NB_ERR_ARG, "clamp", "bounds [%g, %g] for %s need lo <= hi (and no NaN)", lo,
                  hi, nbc_shp(x, b, sizeof b));
        return NULL;
    }
    nb_tensor *lo_t = nbk_const(g, x, lo), *hi_t = nbk_const(g, x, hi);
    return nb_where(g, nb_ge(g, x, hi_t), hi_t, nb_where(g, nb_le(g, x, lo_t), lo_t, x));
}

/* log σ(x) = -softplus(-x) = min(x, 0) - ln(1 + e^-|x|): e^-|x| <= 1, so
 * nothing overflows, and neither tail cancels (x -> -inf gives x, x -> +inf
 * gives -e^-x). The derivative is the sum of two terms that never cancel:
 * 1(x < 0) + σ(-|x|)·sign(x), which is σ(-x) on both sides and ½ at 0 (the
 * tie of minimum there gives ½, sign(0) = 0). */
nb_tensor *nb_log_sigmoid(nb_graph *g, nb_tensor *x)
{
    if (!x)
        return NULL;
    nb_tensor *neg_abs = nb_neg(g, nb_abs(g, x));
    return nb_sub(g, nb_minimum(g, x, nbk_const(g, x, 0.0)), nb_log1p(g, nb_exp(g, neg_abs)));
}
