/**
 * @file ops.h
 * @brief Primitive ops. Each records one node in the graph @p g (the first
 *        argument) and returns it, or returns NULL.
 *
 * Error convention (all ops): an input that is NULL makes the op return NULL
 * quietly, so a whole expression can be built and checked once at the end.
 * Any other failure - shapes or dtypes that do not fit, bad arguments, out
 * of memory, a NaN/Inf in check-finite mode - records the graph's first
 * error (nb_graph_status / nb_graph_error: op name, shapes and a sentence)
 * and returns NULL. Binary elementwise ops broadcast as NumPy does; their
 * inputs must have the same dtype (use nb_cast). Inputs may be tensors of
 * @p g or parameters of a model, never tensors of another graph.
 *
 * Gradient notation in the comments: g is the gradient arriving at the
 * result, da/db what flows to the inputs (summed back to each input's
 * shape after broadcasting); t_a, t_b are tangents in forward mode.
 */
#ifndef NABLA_OPS_H
#define NABLA_OPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------- elementwise unary */
NB_API nb_tensor *nb_neg(nb_graph *g, nb_tensor *x);   /**< -x;        dx = -g */
NB_API nb_tensor *nb_exp(nb_graph *g, nb_tensor *x);   /**< e^x;       dx = g*y */
NB_API nb_tensor *nb_log(nb_graph *g, nb_tensor *x);   /**< ln x;      dx = g/x */
NB_API nb_tensor *nb_log1p(nb_graph *g, nb_tensor *x); /**< ln(1+x);   dx = g/(1+x) */
NB_API nb_tensor *nb_expm1(nb_graph *g, nb_tensor *x); /**< e^x - 1;   dx = g*(y+1) */
NB_API nb_tensor *nb_sqrt(nb_graph *g, nb_tensor *x);  /**< sqrt x;    dx = g/(2y) */
NB_API nb_tensor *nb_abs(nb_graph *g, nb_tensor *x);   /**< |x|;       dx = g*sign(x) (0 at 0) */
NB_API nb_tensor *nb_sin(nb_graph *g, nb_tensor *x);   /**< sin x;     dx = g*cos x */
NB_API nb_tensor *nb_cos(nb_graph *g, nb_tensor *x);   /**< cos x;     dx = -g*sin x */
NB_API nb_tensor *nb_tanh(nb_graph *g, nb_tensor *x);  /**< tanh x;    dx = g*(1-y^2) */
/** σ(x) = 1/(1+e^-x), computed as e/(1+e) for x < 0 and 1/(1+e) for x >= 0 with
 *  e = e^-|x|: no overflow, full relative accuracy in both tails; dx = g*y*σ(-x). */
NB_API nb_tensor *nb_sigmoid(nb_graph *g, nb_tensor *x);
NB_API nb_tensor *nb_erf(nb_graph *g, nb_tensor *x);   /**< erf x;     dx = g*2/sqrt(pi)*e^(-x^2) */
NB_API nb_tensor *nb_sign(nb_graph *g, nb_tensor *x);  /**< -1, 0, 1;  no gradient (dx = 0) */
NB_API nb_tensor *nb_step(nb_graph *g, nb_tensor *x);  /**< 1 if x>0 else 0; no gradient (dx = 0) */
/** ReLU(x) = max(0, x): x where x > 0, +0 where x <= 0 (-0 included), NaN
 *  stays NaN; dx = relu_mask(g, x) = g·1(x > 0) (0 at the kink). */
NB_API nb_tensor *nb_relu(nb_graph *g, nb_tensor *x);
/** ReLU's gradient in one pass: @p grad where @p x > 0 (and where x is NaN),
 *  +0 where x <= 0; @p grad and @p x of one shape and dtype (NB_ERR_SHAPE,
 *  NB_ERR_DTYPE). Linear in grad: d grad = relu_mask(g, x); x gets none. */
NB_API nb_tensor *nb_relu_mask(nb_graph *g, nb_tensor *grad, nb_tensor *x);

/* --------------------------------------- elementwise binary, broadcasting */
NB_API nb_tensor *nb_add(nb_graph *g, nb_tensor *a, nb_tensor *b); /**< a+b; da = g, db = g */
NB_API nb_tensor *nb_sub(nb_graph *g, nb_tensor *a, nb_tensor *b); /**< a-b; da = g, db = -g */
NB_API nb_tensor *nb_mul(nb_graph *g, nb_tensor *a, nb_tensor *b); /**< a*b; da = g*b, db = g*a */
NB_API nb_tensor *nb_div(nb_graph *g, nb_tensor *a,
                         nb_tensor *b); /**< a/b; da = g/b, db = -g*y/b */
/** a^b; da = g*b*a^(b-1), db = g*y*ln a (taken as 0 where a == 0). */
NB_API nb_tensor *nb_pow(nb_graph *g, nb_tensor *a, nb_tensor *b);
/** max(a,b); the gradient goes to the larger input, split in halves at ties. */
NB_API nb_tensor *nb_maximum(nb_graph *g, nb_tensor *a, nb_tensor *b);
/** min(a,b); the gradient goes to the smaller input, split in halves at ties. */
NB_API nb_tensor *nb_minimum(nb_graph *g, nb_tensor *a, nb_tensor *b);
/** Comparisons: 1 where true, 0 where false, in the inputs' dtype. No gradient. */
NB_API nb_tensor *nb_gt(nb_graph *g, nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_ge(nb_graph *g, nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_lt(nb_graph *g, nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_le(nb_graph *g, nb_tensor *a, nb_tensor *b);
NB_API nb_tensor *nb_eq(nb_graph *g, nb_tensor *a, nb_tensor *b);
/** mask != 0 ? a : b, all three broadcast together; da = where(mask,g,0),
 *  db = where(mask,0,g); the mask gets no gradient. */
NB_API nb_tensor *nb_where(nb_graph *g, nb_tensor *mask, nb_tensor *a, nb_tensor *b);

/* ------------------------------------------------------------ reductions */
/** Sum over the @p n_axes axes listed in @p axes (negative counts from the
 *  end; NULL or 0 axes: all axes). @p keepdims keeps reduced axes as size 1.
 *  dx = broadcast_to(g, shape(x)). */
NB_API nb_tensor *nb_sum(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims);
/** Mean over axes (as nb_sum); dx = broadcast_to(g, shape(x)) / count.
 *  The mean over zero elements is NaN. */
NB_API nb_tensor *nb_mean(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims);
/** Maximum over axes (as nb_sum). The gradient goes to the arg-max; where
 *  several elements tie for the maximum it is split equally among them.
 *  Reducing an axis of size 0 is an error (NB_ERR_SHAPE). */
NB_API nb_tensor *nb_max(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims);
/** Minimum over axes (as nb_sum), the mirror of nb_max: the gradient goes to
 *  the arg-min, split equally among ties; a NaN in a slice makes its minimum
 *  NaN. Reducing an axis of size 0 is an error (NB_ERR_SHAPE). */
NB_API nb_tensor *nb_min(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims);
/** Index of the maximum along @p axis (dropped from the result), as a
 *  number of x's dtype: 0, 1, 2, ... exactly (read one with nb_tensor_get
 *  and cast it to int64_t for nb_gather or nb_one_hot). The first index wins
 *  a tie, and a NaN counts as the maximum (the first NaN wins), as in
 *  nb_max. No gradient (like the comparisons). Errors: axis out of range or
 *  a rank-0 x (NB_ERR_ARG), an axis of size 0 (NB_ERR_SHAPE), an f32 axis
 *  longer than 2^24, whose indices f32 cannot hold exactly (NB_ERR_ARG). */
NB_API nb_tensor *nb_argmax(nb_graph *g, nb_tensor *x, int axis);
/** log Σ e^x over @p axis, computed as m + log Σ e^(x-m) with m the slice's
 *  maximum (held constant: the value does not depend on it), so that large
 *  x do not overflow. A slice of -inf gives -inf, an empty axis -inf.
 *  dx = g·softmax(x) along the axis. Errors: axis out of range (NB_ERR_ARG). */
NB_API nb_tensor *nb_logsumexp(nb_graph *g, nb_tensor *x, int axis, bool keepdims);
/** Variance over @p axis as PyTorch's torch.var(x, axis, correction=c):
 *  Σ (x - mean)² / max(0, n - c) with n the axis length; c = 1 is the
 *  unbiased (sample) variance, c = 0 the population variance. n - c <= 0
 *  divides by 0 (NaN for one element with c = 1, as in PyTorch).
 *  dx = g·2(x - mean)/(n - c). Errors: axis out of range, or @p correction
 *  negative or not finite (NB_ERR_ARG). */
NB_API nb_tensor *nb_var(nb_graph *g, nb_tensor *x, int axis, bool keepdims, double correction);
/** Single-axis forms of nb_sum, nb_mean, nb_max and nb_min: the same op
 *  over the one axis @p axis (negative counts from the end). */
NB_API nb_tensor *nb_sum_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims);
NB_API nb_tensor *nb_mean_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims);
NB_API nb_tensor *nb_max_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims);
NB_API nb_tensor *nb_min_axis(nb_graph *g, nb_tensor *x, int axis, bool keepdims);
/** Sum @p x down to @p shape (the inverse of broadcasting: leading axes are
 *  summed away, axes of size 1 in @p shape are summed with keepdims).
 *  dx = broadcast_to(g, shape(x)). */
NB_API nb_tensor *nb_sum_to(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape);
/** Broadcast @p x to @p shape by NumPy rules (materialised).
 *  dx = sum_to(g, shape(x)). */
NB_API nb_tensor *nb_broadcast_to(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape);

/* ----------------------------------------------------------------- shape */
/** Same elements, new shape; one size may be -1 (inferred). dx = reshape(g). */
NB_API nb_tensor *nb_reshape(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape);
/** Axes reordered: result axis i is input axis perm[i] (materialised).
 *  @p perm has rank(x) entries, a permutation of 0..rank-1; negative
 *  entries count from the end. dx = permute(g, inverse(perm)). */
NB_API nb_tensor *nb_permute(nb_graph *g, nb_tensor *x, const int *perm);
/** Swap the last two axes (rank >= 2), materialised. */
NB_API nb_tensor *nb_transpose(nb_graph *g, nb_tensor *x);
/** Elements start, start+step, ... < stop along @p axis. start/stop may be
 *  negative (from the end) and are clamped as in Python; step >= 1.
 *  dx = unslice(g) (zeros elsewhere). */
NB_API nb_tensor *nb_slice(nb_graph *g, nb_tensor *x, int axis, int64_t start, int64_t stop,
                           int64_t step);
/** The adjoint of nb_slice: a tensor whose @p axis has length @p size, zeros
 *  except that positions start, start+step, ... hold @p x in order:
 *  with m the length of x's @p axis, start + (m-1)*step < size is required
 *  (start may be negative, counting from the end; step >= 1).
 *  dx = slice(g). */
NB_API nb_tensor *nb_unslice(nb_graph *g, nb_tensor *x, int axis, int64_t size, int64_t start,
                             int64_t step);
/** Join @p n tensors along @p axis (other sizes and dtypes equal).
 *  dx_i = slice of g. */
NB_API nb_tensor *nb_concat(nb_graph *g, nb_tensor *const *xs, int n, int axis);
/** Join @p n tensors of one shape and dtype along a new axis @p axis of the
 *  result (0..rank, negative counts from the end of the result: -1 appends
 *  it). dx_i = select(g, axis, i). */
NB_API nb_tensor *nb_stack(nb_graph *g, nb_tensor *const *xs, int n, int axis);
/**
 * Cut @p x along @p axis into @p n consecutive pieces, the inverse of
 * nb_concat: piece i has sizes[i] entries on the axis (the sizes must add up
 * to its length), or with @p sizes NULL length/n each (the length must
 * divide by n). The pieces are slices, written to outs[0..n).
 * @returns NB_OK with every piece made; otherwise the recorded error with
 * every outs[i] NULL (NB_ERR_NULL and nothing recorded for a NULL x, as for
 * every op). Errors: n < 1, axis out of range or a negative size
 * (NB_ERR_ARG), outs NULL (NB_ERR_NULL), sizes that do not add up to the
 * length or a length that does not divide (NB_ERR_SHAPE).
 */
NB_API nb_status nb_split(nb_graph *g, nb_tensor *x, int axis, const int64_t *sizes, int n,
                          nb_tensor **outs);
/** Drop @p axis, which must have size 1 (NB_ERR_SHAPE otherwise); a reshape. */
NB_API nb_tensor *nb_squeeze(nb_graph *g, nb_tensor *x, int axis);
/** Insert an axis of size 1 at @p axis of the result (0..rank, negative
 *  counts from the end of the result: -1 appends it); a reshape. */
NB_API nb_tensor *nb_unsqueeze(nb_graph *g, nb_tensor *x, int axis);
/** Entry @p index of @p axis, that axis dropped (PyTorch's select; x[..., i,
 *  ...]). A negative index counts from the end; out of range is NB_ERR_ARG.
 *  dx = g at that entry, zeros elsewhere (a slice and a reshape). */
NB_API nb_tensor *nb_select(nb_graph *g, nb_tensor *x, int axis, int64_t index);
/** Pick entries idx[0..n_idx) along @p axis (NumPy take / index_select): the
 *  result has n_idx entries on that axis. Indices may repeat and may be
 *  negative (from the end); out of range is NB_ERR_ARG. The indices are
 *  copied. dx = scatter_add(g). */
NB_API nb_tensor *nb_gather(nb_graph *g, nb_tensor *x, int axis, const int64_t *idx, int64_t n_idx);
/** The adjoint of nb_gather: a tensor whose @p axis has length @p size,
 *  where entry idx[k] accumulates x's entry k along that axis.
 *  dx = gather(g). */
NB_API nb_tensor *nb_scatter_add(nb_graph *g, nb_tensor *x, int axis, const int64_t *idx,
                                 int64_t n_idx, int64_t size);
/** One-hot rows: result [n, depth] with a 1 at (i, labels[i]). Labels must
 *  lie in [0, depth) (NB_ERR_ARG otherwise). A constant: no gradient. */
NB_API nb_tensor *nb_one_hot(nb_graph *g, nb_dtype dt, const int64_t *labels, int64_t n,
                             int64_t depth);

/* ----------------------------------------------------------- linear algebra */
/**
 * Matrix product op(a)·op(b), op(x) = x or its transpose (last two axes)
 * by the flags, as BLAS does. Shapes: [M,K]x[K,N] -> [M,N]; batched
 * [B,M,K]x[B,K,N] -> [B,M,N]; [B,M,K]x[K,N] -> [B,M,N] (b shared).
 * Through CBLAS when the build has it, a cache-blocked kernel otherwise.
 * da = g·op(b)^T, db = op(a)^T·g (transposed back when a flag is set).
 */
NB_API nb_tensor *nb_matmul(nb_graph *g, nb_tensor *a, nb_tensor *b, bool trans_a, bool trans_b);

/** The activation nb_linear applies to its product. */
typedef enum nb_linear_act {
    NB_LINEAR_IDENTITY = 0, /**< none: y = x·W + b */
    NB_LINEAR_RELU = 1,     /**< y = relu(x·W + b) */
} nb_linear_act;

/**
 * The linear map of a layer, y = act(x·W + b), as one op: the bias and the
 * activation are applied as the product writes its result, with the numbers
 * of nb_relu(nb_add(nb_matmul(x, W, 0, 0), b)) (or without the relu).
 * Shapes: x [M,K] or [B,M,K], W [K,N], b [N] or NULL -> [M,N] or [B,M,N].
 * With g_z = relu_mask(g, y) (ReLU) or g (identity): dx = g_z·Wᵀ,
 * dW = xᵀ·g_z (x's rows stacked), db = g_z summed to [N].
 * Errors: NB_ERR_SHAPE, NB_ERR_DTYPE, NB_ERR_ARG (an unknown act).
 */
NB_API nb_tensor *nb_linear(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                            nb_linear_act act);

/* ------------------------------------------------------------ convolution */
/**
 * Settings of a 2-D convolution, per spatial axis (index 0: height, 1:
 * width): stride >= 1; padding >= 0 (zeros on both sides); dilation >= 1
 * (the spacing of the kernel's taps); groups >= 1 (the channels of x and of
 * the result split into that many groups, each convolved with its own).
 * Start from nb_conv_defaults(): a zeroed struct has stride 0, an error.
 */
typedef struct nb_conv_opts {
    int64_t stride[2];
    int64_t padding[2];
    int64_t dilation[2];
    int64_t groups;
} nb_conv_opts;

/** Stride 1, padding 0, dilation 1, one group. */
NB_API nb_conv_opts nb_conv_defaults(void);

/**
 * 2-D convolution (a cross-correlation, as PyTorch's conv2d), NCHW: x
 * [N,C,H,W] and w [O,C/groups,KH,KW] give y [N,O,OH,OW] with
 *   y[n,o,i,j] = Σ_{c,a,b} x[n, G·C/groups + c, i·sh − ph + a·dh, j·sw − pw + b·dw]·w[o,c,a,b],
 * G = o / (O/groups) the group of o and x zero in the padding;
 * OH = ⌊(H + 2ph − dh(KH−1) − 1)/sh⌋ + 1, OW alike. @p o NULL: the defaults.
 * A bias is an ordinary broadcast add of a [O,1,1] tensor.
 * dx = conv_transpose2d(g, w, H, W), dw = conv2d_weight_grad(x, g, KH, KW);
 * t_y = conv2d(t_x, w) + conv2d(x, t_w).
 * Errors (the message names the op and both shapes): a rank other than 4
 * (NB_ERR_SHAPE); dtypes that differ (NB_ERR_DTYPE); stride or dilation < 1,
 * negative padding or groups < 1 (NB_ERR_ARG); C or O not divisible by
 * groups, w's channels not C/groups, a kernel side of 0, or a kernel larger
 * than the padded input (NB_ERR_SHAPE). Nothing is recorded then.
 */
NB_API nb_tensor *nb_conv2d(nb_graph *g, nb_tensor *x, nb_tensor *w, const nb_conv_opts *o);
/**
 * A convolution layer's map y = act(conv2d(x, w) + b) as one op (conv2d
 * with a third input): the bias and the activation are applied as each
 * product writes its result, with the numbers of
 * nb_relu(nb_add(nb_conv2d(x, w, o), b reshaped to [O,1,1])) (or without
 * the relu). b is [O] or NULL. With g_z = relu_mask(g, y) (ReLU) or g:
 * dx = conv_transpose2d(g_z, w, H, W), dw = conv2d_weight_grad(x, g_z,
 * KH, KW), db = g_z summed to [O]. Errors as nb_conv2d, and a bias that
 * is not [O] (NB_ERR_SHAPE) or of another dtype (NB_ERR_DTYPE), an
 * unknown act (NB_ERR_ARG).
 */
NB_API nb_tensor *nb_conv2d_fused(nb_graph *g, nb_tensor *x, nb_tensor *w, nb_tensor *b,
                                  const nb_conv_opts *o, nb_linear_act act);
/**
 * Transposed convolution, the adjoint of nb_conv2d in x (and the input
 * gradient of a convolution): y [N,O,OH,OW] and w [O,C/groups,KH,KW] give x
 * [N,C,H,W] (C = groups·w's dim 1) with <conv2d(x', w), y> = <x', x> for
 * every x'. H and W are given because with a stride several input sizes
 * have the same output size: conv2d of an H x W input must give OH x OW.
 * The same settings as the nb_conv2d it transposes. dy = conv2d(g, w),
 * dw = conv2d_weight_grad(g, y, KH, KW); t_x = conv_transpose2d(t_y, w) +
 * conv_transpose2d(y, t_w). Errors as nb_conv2d, and y's channels not w's
 * O, or H x W not giving OH x OW (NB_ERR_SHAPE), H or W negative
 * (NB_ERR_ARG).
 */
NB_API nb_tensor *nb_conv_transpose2d(nb_graph *g, nb_tensor *y, nb_tensor *w, int64_t h,
                                      int64_t w_out, const nb_conv_opts *o);
/**
 * Weight gradient of a convolution, the adjoint of nb_conv2d in w: x
 * [N,C,H,W] and gy [N,O,OH,OW] give dw [O,C/groups,KH,KW] with
 *   dw[o,c,a,b] = Σ_{n,i,j} gy[n,o,i,j]·x[n, G·C/groups + c, i·sh − ph + a·dh, j·sw − pw + b·dw].
 * dx = conv_transpose2d(gy, g, H, W), dgy = conv2d(x, g); t = the op of
 * (t_x, gy) plus the op of (x, t_gy). Errors as nb_conv2d, and batch sizes
 * that differ or H x W not giving OH x OW for this kernel (NB_ERR_SHAPE),
 * KH or KW < 1 (NB_ERR_ARG).
 */
NB_API nb_tensor *nb_conv2d_weight_grad(nb_graph *g, nb_tensor *x, nb_tensor *gy, int64_t kh,
                                        int64_t kw, const nb_conv_opts *o);
/**
 * 1-D convolution: x [N,C,L] and w [O,C/groups,K] give y [N,O,OL],
 * OL = ⌊(L + 2·padding − dilation(K−1) − 1)/stride⌋ + 1. It is nb_conv2d
 * of x as [N,C,1,L] and w as [O,C/groups,1,K] (recorded as reshape,
 * conv2d, reshape), so its derivatives are conv2d's. Errors as nb_conv2d,
 * named conv1d, with rank 3 instead of 4; nothing is recorded then.
 */
NB_API nb_tensor *nb_conv1d(nb_graph *g, nb_tensor *x, nb_tensor *w, int64_t stride,
                            int64_t padding, int64_t dilation, int64_t groups);
/* --------------------------------------------------------------- pooling */
/**
 * The window of a 2-D pooling, per spatial axis ([0] = H, [1] = W):
 * @p kernel >= 1, @p stride >= 1 (PyTorch's default is stride = kernel),
 * 0 <= @p padding <= kernel/2 (PyTorch's rule: every window keeps an
 * element of the input). Output sizes: OH = (H + 2·padding[0] - kernel[0])
 * / stride[0] + 1 (rounded down), OW likewise. E.g. 2x2 windows, stride 2:
 * (nb_pool2d_opts){{2, 2}, {2, 2}, {0, 0}}.
 */
typedef struct nb_pool2d_opts {
    int64_t kernel[2];
    int64_t stride[2];
    int64_t padding[2];
} nb_pool2d_opts;

/**
 * Max pooling of x [N,C,H,W] (NCHW) to [N,C,OH,OW]: each output is the
 * maximum of its window; padding never wins (it counts as -inf). Ties: the
 * first maximum in scan order (window rows top to bottom, each left to
 * right) is the argmax, as in PyTorch; a NaN in the window makes the output
 * NaN and the first NaN is the argmax. The argmax is kept in the node:
 * nb_op_attrs(y)->idx holds, for each of the n_idx = size(y) outputs, the
 * flat index h·W + w of its maximum within its own [H,W] plane.
 * dx = max_unpool2d(g, y) (the whole gradient goes to the argmax, not split
 * among ties); t_y = max_gather2d(t, y).
 * Errors: @p o NULL (NB_ERR_NULL); kernel or stride < 1, padding < 0 or >
 * kernel/2 (NB_ERR_ARG); a rank other than 4, H or W of 0, a kernel larger
 * than the padded input, or a padded plane (H + 2·padding[0]) x (W +
 * 2·padding[1]) of 2^31 elements or more (NB_ERR_SHAPE). Nothing is
 * recorded.
 */
NB_API nb_tensor *nb_max_pool2d(nb_graph *g, nb_tensor *x, const nb_pool2d_opts *o);
/**
 * Average pooling of x [N,C,H,W] to [N,C,OH,OW]: the sum of each window
 * divided by kernel[0]·kernel[1], padding counting as zeros (PyTorch's
 * count_include_pad=True, its default). dx = avg_unpool2d(g, o, H, W);
 * t_y = avg_pool2d(t). Errors as nb_max_pool2d.
 */
NB_API nb_tensor *nb_avg_pool2d(nb_graph *g, nb_tensor *x, const nb_pool2d_opts *o);
/**
 * The adjoint of nb_avg_pool2d with window @p o from an [h,w] input: u
 * [N,C,OH,OW] -> [N,C,h,w], where each input element is the sum of the u
 * of the windows that hold it, divided by kernel[0]·kernel[1] (avg_pool2d's
 * gradient). dx = avg_pool2d(g, o); t_y = avg_unpool2d(t). Errors as
 * nb_avg_pool2d for the window and [N,C,h,w], and NB_ERR_SHAPE when [OH,OW]
 * is not what pooling [h,w] gives.
 */
NB_API nb_tensor *nb_avg_unpool2d(nb_graph *g, nb_tensor *u, const nb_pool2d_opts *o, int64_t h,
                                  int64_t w);
/**
 * Max unpooling at the argmax of @p y = nb_max_pool2d(x): u, shaped as y,
 * is added at the position of each window's maximum in a zero tensor of
 * x's shape (max_pool2d's gradient; overlapping windows that pick the same
 * element add up). dx_u = max_gather2d(g, y); y gets no gradient (the
 * argmax is piecewise constant); t_out = max_unpool2d(t_u, y).
 * Errors: y not made by nb_max_pool2d (NB_ERR_ARG); u of another shape
 * (NB_ERR_SHAPE) or dtype (NB_ERR_DTYPE).
 */
NB_API nb_tensor *nb_max_unpool2d(nb_graph *g, nb_tensor *u, nb_tensor *y);
/**
 * The entries of v, shaped as the x of @p y = nb_max_pool2d(x), at y's
 * argmax: a tensor shaped as y (max pooling's tangent, and the adjoint of
 * nb_max_unpool2d). dx_v = max_unpool2d(g, y); y gets no gradient;
 * t_out = max_gather2d(t_v, y). Errors as nb_max_unpool2d.
 */
NB_API nb_tensor *nb_max_gather2d(nb_graph *g, nb_tensor *v, nb_tensor *y);
/** 1-D max pooling of x [N,C,L] to [N,C,OL], OL = (L + 2·padding - kernel)
 *  / stride + 1: nb_max_pool2d on [N,C,1,L] with a 1 x kernel window,
 *  between two reshapes (their rules and the 2-D op's make its
 *  derivatives). Ties, NaN and errors as nb_max_pool2d, with rank 3 and the
 *  op name max_pool1d. */
NB_API nb_tensor *nb_max_pool1d(nb_graph *g, nb_tensor *x, int64_t kernel, int64_t stride,
                                int64_t padding);
/** 1-D average pooling of x [N,C,L], as nb_max_pool1d over nb_avg_pool2d
 *  (padding counts as zeros; op name avg_pool1d). */
NB_API nb_tensor *nb_avg_pool1d(nb_graph *g, nb_tensor *x, int64_t kernel, int64_t stride,
                                int64_t padding);

/* ------------------------------------------------------------------ misc */
/** Convert to @p dt (a copy even when equal). dx = cast(g, dtype(x)). */
NB_API nb_tensor *nb_cast(nb_graph *g, nb_tensor *x, nb_dtype dt);
/** Same values, cut from the graph: no gradient flows through (detach). */
NB_API nb_tensor *nb_stop_gradient(nb_graph *g, nb_tensor *x);

/* -------------------------------------- conveniences (compositions of ops) */
/** x * s with s a scalar of x's dtype. */
NB_API nb_tensor *nb_scale(nb_graph *g, nb_tensor *x, double s);
/** x + s with s a scalar of x's dtype. */
NB_API nb_tensor *nb_add_scalar(nb_graph *g, nb_tensor *x, double s);
/** x * x. */
NB_API nb_tensor *nb_square(nb_graph *g, nb_tensor *x);
/** Comparisons of x with s, a scalar rounded to x's dtype: 1 where true, 0
 *  where false, in x's dtype. No gradient (as nb_gt and the others). */
NB_API nb_tensor *nb_gt_scalar(nb_graph *g, nb_tensor *x, double s);
NB_API nb_tensor *nb_ge_scalar(nb_graph *g, nb_tensor *x, double s);
NB_API nb_tensor *nb_lt_scalar(nb_graph *g, nb_tensor *x, double s);
NB_API nb_tensor *nb_le_scalar(nb_graph *g, nb_tensor *x, double s);
NB_API nb_tensor *nb_eq_scalar(nb_graph *g, nb_tensor *x, double s);
/** x limited to [lo, hi] (±INFINITY for a one-sided bound); NaN stays NaN.
 *  dx = g where lo < x < hi, 0 elsewhere: at x = lo or x = hi exactly the
 *  gradient is 0 (a bound reached is saturated, as hard-tanh; PyTorch gives
 *  1 there). lo > hi or a NaN bound is NB_ERR_ARG. */
NB_API nb_tensor *nb_clamp(nb_graph *g, nb_tensor *x, double lo, double hi);
/** log σ(x) = -softplus(-x) = min(x,0) - ln(1 + e^-|x|): no overflow, full
 *  accuracy in both tails (x for x -> -inf, -e^-x for x -> +inf).
 *  dx = g·σ(-x). */
NB_API nb_tensor *nb_log_sigmoid(nb_graph *g, nb_tensor *x);

#ifdef __cplusplus
}
#endif
#endif
