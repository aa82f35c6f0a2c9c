/* Status codes, dtype names, the one error shape and the graph's sticky
 * first error. */

#include <stdio.h>

#include "internal.h"

const char *nb_status_str(nb_status s)
{
    switch (s) {
    case NB_OK: return "ok";
    case NB_ERR_NOMEM: return "out of memory";
    case NB_ERR_SHAPE: return "shapes do not fit";
    case NB_ERR_DTYPE: return "dtypes do not fit";
    case NB_ERR_RANK: return "rank out of range";
    case NB_ERR_ARG: return "argument out of range";
    case NB_ERR_NULL: return "NULL argument";
    case NB_ERR_NONFINITE: return "non-finite value";
    case NB_ERR_GRAPH: return "tensor not of this graph or not recorded";
    case NB_ERR_IO: return "input/output error";
    case NB_ERR_PARSE: return "malformed input";
    case NB_ERR_EXISTS: return "name already exists";
    case NB_ERR_NOTFOUND: return "name not found";
    case NB_ERR_UNSUPPORTED: return "not supported by this build";
    case NB_ERR_COMM: return "communication between processes failed";
    }
    return "unknown status";
}

const char *nb_dtype_name(nb_dtype dt)
{
    switch (dt) {
    case NB_F32: return "f32";
    case NB_F64: return "f64";
    }
    return "?";
}

size_t nb_dtype_size(nb_dtype dt)
{
    switch (dt) {
    case NB_F32: return sizeof(float);
    case NB_F64: return sizeof(double);
    }
    return 0;
}

void nb_error_clear(nb_error *e)
{
    if (!e)
        return;
    e->status = NB_OK;
    e->where[0] = '\0';
    e->offset = -1;
    e->line = 0;
    e->column = 0;
    e->name[0] = '\0';
    e->msg[0] = '\0';
}

nb_status nb_error_set(nb_error *e, nb_status code, const char *where, const char *fmt, ...)
{
    if (!e)
        return code;
    nb_error_clear(e);
    e->status = code;
    snprintf(e->where, sizeof e->where, "%s", where ? where : "");
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

nb_status nbc_error_at(nb_error *e, nb_status code, const char *where, int64_t offset,
                       const char *name, const char *fmt, ...)
{
    if (!e)
        return code;
    nb_error_set(e, code, where, NULL);
    e->offset = offset;
    if (name)
        snprintf(e->name, sizeof e->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

nb_status nbc_verror(nb_graph *g, nb_status code, const char *op, const char *name, const char *fmt,
                     va_list ap)
{
    if (!g || g->err.status != NB_OK)
        return code;
    nb_error *e = &g->err;
    e->status = code;
    snprintf(e->where, sizeof e->where, "%s", op ? op : "");
    snprintf(e->name, sizeof e->name, "%s", name ? name : "");
    int n = 0;
    if (op && *op)
        n = snprintf(e->msg, sizeof e->msg, "%s: ", op);
    if (n < 0 || (size_t)n >= sizeof e->msg)
        n = 0;
    vsnprintf(e->msg + n, sizeof e->msg - (size_t)n, fmt, ap);
    return code;
}

nb_status nbc_error_named(nb_graph *g, nb_status code, const char *op, const char *name,
                          const char *fmt, ...)
{
    if (!g || g->err.status != NB_OK)
        return code;
    va_list ap;
    va_start(ap, fmt);
    nbc_verror(g, code, op, name, fmt, ap);
    va_end(ap);
    return code;
}

nb_status nb_graph_fail(nb_graph *g, nb_status code, const char *where, const char *fmt, ...)
{
    if (!g || g->err.status != NB_OK)
        return code;
    va_list ap;
    va_start(ap, fmt);
    nbc_verror(g, code, where, NULL, fmt ? fmt : "", ap);
    va_end(ap);
    return code;
}

nb_status nb_graph_status(const nb_graph *g)
{
    return g ? g->err.status : NB_ERR_NULL;
}

const nb_error *nb_graph_error(const nb_graph *g)
{
    static const nb_error no_graph = {.status = NB_ERR_NULL, .offset = -1, .msg = "no graph"};
    return g ? &g->err : &no_graph;
}

void nb_graph_clear_error(nb_graph *g)
{
    if (g)
        nb_error_clear(&g->err);
}
