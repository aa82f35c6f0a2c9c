/* TEMPORARY STUBS: replace every function here with the real one. */
#include "kernels.h"

nb_status nbo_reduce_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_sum_to_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_broadcast_to_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_sum_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_sum_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "sum", "not implemented"); return NULL; }
nb_tensor *nbo_sum_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "sum", "not implemented"); return NULL; }
nb_status nbo_mean_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_mean_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "mean", "not implemented"); return NULL; }
nb_tensor *nbo_mean_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "mean", "not implemented"); return NULL; }
nb_status nbo_max_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_max_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "max", "not implemented"); return NULL; }
nb_tensor *nbo_max_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "max", "not implemented"); return NULL; }
nb_status nbo_sum_to_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_sum_to_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "sum_to", "not implemented"); return NULL; }
nb_tensor *nbo_sum_to_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "sum_to", "not implemented"); return NULL; }
nb_status nbo_broadcast_to_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_broadcast_to_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "broadcast_to", "not implemented"); return NULL; }
nb_tensor *nbo_broadcast_to_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "broadcast_to", "not implemented"); return NULL; }
nb_tensor *nb_sum(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims) { nbc_error(g, NB_ERR_ARG, "sum", "not implemented"); return NULL; }
nb_tensor *nb_mean(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims) { nbc_error(g, NB_ERR_ARG, "mean", "not implemented"); return NULL; }
nb_tensor *nb_max(nb_graph *g, nb_tensor *x, const int *axes, int n_axes, bool keepdims) { nbc_error(g, NB_ERR_ARG, "max", "not implemented"); return NULL; }
nb_tensor *nb_sum_to(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape) { nbc_error(g, NB_ERR_ARG, "sum_to", "not implemented"); return NULL; }
nb_tensor *nb_broadcast_to(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape) { nbc_error(g, NB_ERR_ARG, "broadcast_to", "not implemented"); return NULL; }
