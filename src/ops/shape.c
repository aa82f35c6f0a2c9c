/* TEMPORARY STUBS: replace every function here with the real one. */
#include "kernels.h"

nb_status nbo_reshape_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_permute_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_slice_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_unslice_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_concat_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_gather_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_scatter_add_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_one_hot_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_reshape_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_reshape_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "reshape", "not implemented"); return NULL; }
nb_tensor *nbo_reshape_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "reshape", "not implemented"); return NULL; }
nb_status nbo_permute_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_permute_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "permute", "not implemented"); return NULL; }
nb_tensor *nbo_permute_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "permute", "not implemented"); return NULL; }
nb_status nbo_slice_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_slice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "slice", "not implemented"); return NULL; }
nb_tensor *nbo_slice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "slice", "not implemented"); return NULL; }
nb_status nbo_unslice_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_unslice_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "unslice", "not implemented"); return NULL; }
nb_tensor *nbo_unslice_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "unslice", "not implemented"); return NULL; }
nb_status nbo_concat_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_concat_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "concat", "not implemented"); return NULL; }
nb_tensor *nbo_concat_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "concat", "not implemented"); return NULL; }
nb_status nbo_gather_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_gather_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "gather", "not implemented"); return NULL; }
nb_tensor *nbo_gather_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "gather", "not implemented"); return NULL; }
nb_status nbo_scatter_add_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_scatter_add_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "scatter_add", "not implemented"); return NULL; }
nb_tensor *nbo_scatter_add_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "scatter_add", "not implemented"); return NULL; }
nb_status nbo_one_hot_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nb_reshape(nb_graph *g, nb_tensor *x, int rank, const int64_t *shape) { nbc_error(g, NB_ERR_ARG, "reshape", "not implemented"); return NULL; }
nb_tensor *nb_permute(nb_graph *g, nb_tensor *x, const int *perm) { nbc_error(g, NB_ERR_ARG, "permute", "not implemented"); return NULL; }
nb_tensor *nb_slice(nb_graph *g, nb_tensor *x, int axis, int64_t start, int64_t stop,
                           int64_t step) { nbc_error(g, NB_ERR_ARG, "slice", "not implemented"); return NULL; }
nb_tensor *nb_unslice(nb_graph *g, nb_tensor *x, int axis, int64_t size, int64_t start,
                             int64_t step) { nbc_error(g, NB_ERR_ARG, "unslice", "not implemented"); return NULL; }
nb_tensor *nb_concat(nb_graph *g, nb_tensor *const *xs, int n, int axis) { nbc_error(g, NB_ERR_ARG, "concat", "not implemented"); return NULL; }
nb_tensor *nb_gather(nb_graph *g, nb_tensor *x, int axis, const int64_t *idx,
                            int64_t n_idx) { nbc_error(g, NB_ERR_ARG, "gather", "not implemented"); return NULL; }
nb_tensor *nb_scatter_add(nb_graph *g, nb_tensor *x, int axis, const int64_t *idx,
                                 int64_t n_idx, int64_t size) { nbc_error(g, NB_ERR_ARG, "scatter_add", "not implemented"); return NULL; }
nb_tensor *nb_one_hot(nb_graph *g, nb_dtype dt, const int64_t *labels, int64_t n,
                             int64_t depth) { nbc_error(g, NB_ERR_ARG, "one_hot", "not implemented"); return NULL; }
nb_tensor *nb_transpose(nb_graph *g, nb_tensor *x) { nbc_error(g, NB_ERR_ARG, "transpose", "not implemented"); return NULL; }
