/**
 * @file nabla.h
 * @brief nabla: reverse-mode automatic differentiation in C11.
 *
 * A worked example, the course notes' f(x,y,z) = (x+y)·z at (-2, 5, -4):
 *
 * @code
 * nb_graph *g = nb_graph_new();
 * nb_tensor *x = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, -2), true);
 * nb_tensor *y = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, 5), true);
 * nb_tensor *z = nb_tensor_set_requires_grad(nb_scalar(g, NB_F64, -4), true);
 * nb_tensor *f = nb_mul(g, nb_add(g, x, y), z);      // records two ops
 * if (!f || nb_backward(g, f) != NB_OK)              // one reverse sweep
 *     fprintf(stderr, "%s\n", nb_graph_error(g)->msg);
 * printf("df/dx=%g df/dy=%g df/dz=%g\n",             // -4 -4 3
 *        nb_tensor_item(nb_tensor_grad(x)), nb_tensor_item(nb_tensor_grad(y)),
 *        nb_tensor_item(nb_tensor_grad(z)));
 * nb_graph_free(g);
 * @endcode
 *
 * Headers: base.h (dtypes, status, allocation hook, RNG), tensor.h (graph,
 * tensor, model), ops.h (primitives), autodiff.h (reverse and forward mode),
 * op.h (writing and registering new ops), check.h (numerical derivatives and
 * gradient checking), sym.h (symbolic differentiation), teach.h (the trace
 * of a small graph for teaching: tables and pictures), nn.h (activations,
 * initialisation, layers, losses: compositions of ops), optim.h
 * (optimizers), ckpt.h (checkpoints), data.h (data sets and batches),
 * train.h (the training loop), dist.h (data-parallel training over MPI).
 *
 * A function (or callback) that takes a graph takes it first, as the ops
 * do: nb_layer_forward(g, net, x, training), nb_loader_next(g, loader, &b).
 */
#ifndef NABLA_H
#define NABLA_H

#include "nabla/base.h"
#include "nabla/tensor.h"
#include "nabla/meta.h"
#include "nabla/ops.h"
#include "nabla/autodiff.h"
#include "nabla/op.h"
#include "nabla/check.h"
#include "nabla/data.h"
#include "nabla/optim.h"
#include "nabla/ckpt.h"
#include "nabla/sym.h"
#include "nabla/teach.h"
#include "nabla/nn.h"
#include "nabla/train.h"
#include "nabla/modelcheck.h"
#include "nabla/safetensors.h"
#include "nabla/dist.h"

#endif
