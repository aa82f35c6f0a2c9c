/* TEMPORARY STUBS: replace every function here with the real one. */
#include "kernels.h"

nb_status nbo_matmul_shape(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_status nbo_matmul_fwd(nb_graph *g, nb_tensor *out) { return nbc_error(g, NB_ERR_ARG, out->op->name, "not implemented"); }
nb_tensor *nbo_matmul_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *grad_out) { (void)out; (void)i; (void)grad_out; nbc_error(g, NB_ERR_ARG, "matmul", "not implemented"); return NULL; }
nb_tensor *nbo_matmul_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t) { (void)out; (void)t; nbc_error(g, NB_ERR_ARG, "matmul", "not implemented"); return NULL; }
nb_tensor *nb_matmul(nb_graph *g, nb_tensor *a, nb_tensor *b, bool trans_a, bool trans_b) { nbc_error(g, NB_ERR_ARG, "matmul", "not implemented"); return NULL; }
