/* Describing an MLP as metadata text. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn_internal.h"

/* Append to buf; false once it no longer fits. */
static bool put(char *buf, size_t cap, size_t *used, const char *fmt, ...) NB_PRINTF(4, 5);
static bool put(char *buf, size_t cap, size_t *used, const char *fmt, ...)
{
    if (*used >= cap)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - *used) {
        *used = cap;
        return false;
    }
    *used += (size_t)k;
    return true;
}

nb_status nb_mlp_meta(const int64_t *sizes, int n_sizes, const nb_mlp_opts *o, char *out,
                      size_t cap)
{
    if (!sizes || !o || !out)
        return NB_ERR_NULL;
    if (n_sizes < 2 || (int)o->act < 0 || o->act >= NB_ACT_COUNT || (int)o->out_act < 0 ||
        o->out_act >= NB_ACT_COUNT)
        return NB_ERR_ARG;
    nb_act_opts ao = o->act_opts ? *o->act_opts : nb_act_defaults(o->act);
    size_t used = 0;
    bool ok = put(out, cap, &used, "arch=mlp\nsizes=");
    for (int i = 0; i < n_sizes && ok; i++)
        ok = put(out, cap, &used, "%s%lld", i ? "," : "", (long long)sizes[i]);
    ok = ok &&
         put(out, cap, &used, "\nact=%s\nout_act=%s\nbatchnorm=%d\ndtype=%s", nb_act_name(o->act),
             nb_act_name(o->out_act), o->batch_norm ? 1 : 0, nb_dtype_name(o->layer.dtype));
    if (ok && o->batch_norm)
        ok = put(out, cap, &used, "\nbn_eps=%.17g", o->bn_eps);
    switch (o->act) {
    case NB_ACT_LEAKY_RELU:
    case NB_ACT_ELU:
    case NB_ACT_PRELU: ok = ok && put(out, cap, &used, "\nalpha=%.17g", ao.alpha); break;
    case NB_ACT_SWISH:
    case NB_ACT_SWISH_LEARNED: ok = ok && put(out, cap, &used, "\nbeta=%.17g", ao.beta); break;
    case NB_ACT_RRELU:
        ok = ok && put(out, cap, &used, "\nlower=%.17g\nupper=%.17g", ao.lower, ao.upper);
        break;
    case NB_ACT_MAXOUT:
        ok = ok && put(out, cap, &used, "\npieces=%lld", (long long)ao.pieces);
        break;
    default: break;
    }
    return ok ? NB_OK : NB_ERR_ARG;
}
