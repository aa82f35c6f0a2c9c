/* Op ids and user-defined ops: ids 0..NB_OP_COUNT-1 are the built-in table,
 * registered ops follow. The registry is append-only and process-wide: an
 * entry is written completely under the lock before the count that makes it
 * visible is published, so readers need no lock. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "kernels.h"

typedef struct user_op {
    nbo_def def; /* what nodes point to: shape is shape_checked */
    nb_status (*user_shape)(nb_graph *g, nb_tensor *out);
    char name[NB_OP_NAME_MAX + 1];
} user_op;

static user_op users[NB_MAX_USER_OPS];
static atomic_int n_users;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* A user's shape rule, then a check of what it set: a bad rank or size must
 * not reach the allocator. */
static nb_status shape_checked(nb_graph *g, nb_tensor *out)
{
    const user_op *u = (const user_op *)out->op; /* def is the first member */
    nb_status st = u->user_shape(g, out);
    if (st != NB_OK)
        return g->err.status != NB_OK ? g->err.status
                                      : nbc_error(g, st, u->name, "shape rule failed");
    if (out->dtype != NB_F32 && out->dtype != NB_F64)
        return nbc_error(g, NB_ERR_DTYPE, u->name,
                         "shape rule left no valid dtype (call nb_op_set_result)");
    return nbc_check_desc(g, out->dtype, out->rank, out->shape, u->name);
}

nb_status nb_op_register(const nb_op_def *def, int *id)
{
    if (!def || !id || !def->name || !def->shape || !def->forward)
        return NB_ERR_NULL;
    size_t len = strlen(def->name);
    if (len == 0 || len > NB_OP_NAME_MAX || def->arity < -1 || !def->vjp != !def->jvp)
        return NB_ERR_ARG;
    pthread_mutex_lock(&lock);
    nb_status st = NB_OK;
    int n = atomic_load(&n_users);
    if (nb_op_find(def->name) >= 0) {
        st = NB_ERR_EXISTS;
    } else if (n == NB_MAX_USER_OPS) {
        st = NB_ERR_NOMEM;
    } else {
        user_op *u = &users[n];
        memcpy(u->name, def->name, len + 1);
        u->def = *def;
        u->def.name = u->name;
        u->user_shape = def->shape;
        u->def.shape = shape_checked;
        atomic_store(&n_users, n + 1);
        *id = NB_OP_COUNT + n;
    }
    pthread_mutex_unlock(&lock);
    return st;
}

int nb_op_count(void)
{
    return NB_OP_COUNT + atomic_load(&n_users);
}

const nb_op_def *nb_op_get(int id)
{
    if (id >= 0 && id < NB_OP_COUNT)
        return &nbo_table[id];
    if (id >= NB_OP_COUNT && id < nb_op_count())
        return &users[id - NB_OP_COUNT].def;
    return NULL;
}

int nb_op_find(const char *name)
{
    if (!name)
        return -1;
    int n = nb_op_count();
    for (int id = 0; id < n; id++)
        if (!strcmp(nb_op_get(id)->name, name))
            return id;
    return -1;
}

const char *nb_op_name(int id)
{
    const nb_op_def *d = nb_op_get(id);
    return d ? d->name : NULL;
}

bool nb_op_differentiable(int id)
{
    const nb_op_def *d = nb_op_get(id);
    return d && d->vjp;
}

nb_tensor *nb_apply(nb_graph *g, int id, nb_tensor *const *inputs, int n, const nb_attrs *attrs)
{
    if (!g)
        return NULL;
    const nb_op_def *d = nb_op_get(id);
    if (!d) {
        nbc_error(g, NB_ERR_ARG, "apply", "unknown op id %d (ids are 0..%d)", id,
                  nb_op_count() - 1);
        return NULL;
    }
    if (n < 0 || (n > 0 && !inputs)) {
        nbc_error(g, n < 0 ? NB_ERR_ARG : NB_ERR_NULL, d->name, "needs an inputs array (n = %d)",
                  n);
        return NULL;
    }
    if (attrs && attrs->n_idx < 0) {
        nbc_error(g, NB_ERR_ARG, d->name, "attrs.n_idx is negative");
        return NULL;
    }
    if (attrs && attrs->n_idx > 0 && !attrs->idx) {
        nbc_error(g, NB_ERR_NULL, d->name, "attrs.idx is NULL with n_idx = %lld",
                  (long long)attrs->n_idx);
        return NULL;
    }
    return nbo_apply(g, d, inputs, n, attrs);
}

/* ------------------------------------------------ helpers for op authors */

int nb_op_n_inputs(const nb_tensor *out)
{
    return out ? out->n_inputs : 0;
}

nb_tensor *nb_op_input(const nb_tensor *out, int i)
{
    return out && i >= 0 && i < out->n_inputs ? out->inputs[i] : NULL;
}

const nb_attrs *nb_op_attrs(const nb_tensor *out)
{
    return out ? out->attrs : NULL;
}

nb_status nb_op_set_result(nb_graph *g, nb_tensor *out, nb_dtype dt, int rank, const int64_t *shape)
{
    const char *name = out && out->op ? out->op->name : "op";
    if (!g || !out || (rank > 0 && !shape))
        return g ? nbc_error(g, NB_ERR_NULL, name, "set_result needs out and shape") : NB_ERR_NULL;
    if (nbc_check_desc(g, dt, rank, shape, name) != NB_OK)
        return g->err.status;
    out->dtype = dt;
    out->rank = rank;
    memset(out->shape, 0, sizeof out->shape);
    if (rank > 0)
        memcpy(out->shape, shape, (size_t)rank * sizeof *shape);
    return NB_OK;
}

nb_status nb_op_like_input(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = nb_op_input(out, 0);
    if (!g || !x)
        return g ? nbc_error(g, NB_ERR_ARG, out && out->op ? out->op->name : "op",
                             "like_input needs an input")
                 : NB_ERR_NULL;
    return nb_op_set_result(g, out, x->dtype, x->rank, x->shape);
}

nb_status nb_op_broadcast_result(nb_graph *g, nb_tensor *out)
{
    if (!g || !out)
        return NB_ERR_NULL;
    const char *name = out->op ? out->op->name : "op";
    for (int i = 1; i < out->n_inputs; i++) {
        if (out->inputs[i]->dtype != out->inputs[0]->dtype) {
            char b0[160], b1[160];
            return nbc_error(
                g, NB_ERR_DTYPE, name, "inputs %s%s and %s%s: dtypes differ",
                nb_dtype_name(out->inputs[0]->dtype), nbc_shp(out->inputs[0], b0, sizeof b0),
                nb_dtype_name(out->inputs[i]->dtype), nbc_shp(out->inputs[i], b1, sizeof b1));
        }
    }
    if (out->n_inputs == 0)
        return nbc_error(g, NB_ERR_ARG, name, "broadcast result needs at least one input");
    out->dtype = out->inputs[0]->dtype;
    return nbk_broadcast_shape(g, name, out->inputs, out->n_inputs, &out->rank, out->shape);
}

int64_t nb_op_bcast_index(const nb_tensor *out, int i, int64_t k)
{
    const nb_tensor *x = nb_op_input(out, i);
    if (!x)
        return -1;
    int64_t idx = 0, stride = 1;
    for (int d = out->rank - 1, dx = x->rank - 1; d >= 0 && dx >= 0; d--, dx--) {
        int64_t c = k % out->shape[d];
        k /= out->shape[d];
        if (x->shape[dx] != 1)
            idx += c * stride;
        stride *= x->shape[dx];
    }
    return idx;
}

nb_status nb_op_error(nb_graph *g, nb_status code, const char *op, const char *fmt, ...)
{
    if (!fmt)
        return nbc_error(g, code, op ? op : "op", "%s", "");
    va_list ap;
    va_start(ap, fmt);
    nbc_verror(g, code, op ? op : "op", NULL, fmt, ap);
    va_end(ap);
    return code;
}

const char *nb_tensor_op_name(const nb_tensor *t)
{
    return t && t->op ? t->op->name : "leaf";
}
