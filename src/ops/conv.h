/* What the convolution kernels share (conv.c, winograd.c): the geometry of
 * one convolution and which of its three ops runs. Not installed. */
#ifndef NABLA_OPS_CONV_H
#define NABLA_OPS_CONV_H

#include "kernels.h"

/* Runs of samples a weight gradient sums separately (then in order). */
#define CONV_CHUNKS 8

/* Which op: conv2d (inputs x, w), conv_transpose2d (y, w; result x) or
 * conv2d_weight_grad (x, y; result w). */
typedef enum conv_kind { CONV_FWD, CONV_INPUT_GRAD, CONV_WEIGHT_GRAD } conv_kind;

/* One convolution: input x [n,c,h,w], weight [o, c/groups, kh, kw],
 * output y [n,o,oh,ow], and its settings. */
typedef struct conv_geom {
    int64_t n, c, h, w;
    int64_t o, kh, kw;
    int64_t oh, ow;
    int64_t sh, sw, ph, pw, dh, dw, groups;
} conv_geom;

/* Whether the op `kind` of convolution q runs as Winograd F(2x2, 3x3)
 * products (winograd.c): 3x3 kernels of stride and dilation 1, one group,
 * at least WINO_MIN_CHANNELS channels on each side, planes of at least
 * 4 x 4, and (conv_transpose2d) padding of at most 2. */
bool nbo_wino_applies(const conv_geom *q, conv_kind kind);

/* Compute node out, of kind `kind` and geometry q (as nbo_conv_fwd read
 * it; out is not empty), with Winograd products on up to `threads`
 * threads: conv2d with its bias and ReLU, if any. NB_ERR_NOMEM for its
 * scratch. The result is bit-identical for every thread count. */
nb_status nbo_wino_run(nb_graph *g, nb_tensor *out, conv_kind kind, const conv_geom *q,
                       const void *bias, bool relu, int threads);

#endif
