/* Dtype conversion (cast). attrs: ints[0] = the target dtype. */

#include "kernels.h"

nb_status nbo_cast_shape(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    int64_t dt = out->attrs->ints[0];
    if (dt != NB_F32 && dt != NB_F64) {
        char buf[160];
        return nbc_error(g, NB_ERR_DTYPE, out->op->name,
                         "%s%s to unknown dtype %lld (NB_F32 or NB_F64)", nb_dtype_name(x->dtype),
                         nbc_shp(x, buf, sizeof buf), (long long)dt);
    }
    out->dtype = (nb_dtype)dt;
    out->rank = x->rank;
    memcpy(out->shape, x->shape, (size_t)x->rank * sizeof *x->shape);
    return NB_OK;
}

/* Elements [i0, i1) of out = cast(x), either way between the dtypes. */
static void cast_range(nb_tensor *out, const nb_tensor *x, int64_t i0, int64_t i1)
{
    if (out->dtype == NB_F32) {
        float *o = out->data;
        const double *in = x->data;
        for (int64_t i = i0; i < i1; i++)
            o[i] = (float)in[i];
    } else {
        double *o = out->data;
        const float *in = x->data;
        for (int64_t i = i0; i < i1; i++)
            o[i] = (double)in[i];
    }
}

static void cast_task(void *ctx, int t, int T)
{
    nb_tensor *out = ctx;
    cast_range(out, out->inputs[0], out->size * t / T, out->size * (t + 1) / T);
}

nb_status nbo_cast_fwd(nb_graph *g, nb_tensor *out)
{
    const nb_tensor *x = out->inputs[0];
    if (out->dtype == x->dtype) {
        memcpy(out->data, x->data, (size_t)out->size * nb_dtype_size(out->dtype));
        return NB_OK;
    }
    nbc_parallel(nbc_threads_for(g, out->size), cast_task, out);
    return NB_OK;
}

nb_tensor *nb_cast(nb_graph *g, nb_tensor *x, nb_dtype dt)
{
    nb_attrs attrs = {.ints = {(int64_t)dt}};
    return nbo_apply(g, &nbo_table[NB_OP_CAST], &x, 1, &attrs);
}

/* d cast(x) = cast(g, dtype(x)) */
nb_tensor *nbo_cast_vjp(nb_graph *g, nb_tensor *out, int i, nb_tensor *gr)
{
    (void)i;
    return nb_cast(g, gr, out->inputs[0]->dtype);
}

nb_tensor *nbo_cast_jvp(nb_graph *g, nb_tensor *out, nb_tensor *const *t)
{
    return nb_cast(g, t[0], out->dtype);
}
