/* Status codes, dtype names and the graph's sticky first error. */

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

nb_status nbc_error(nb_graph *g, nb_status code, const char *op, const char *fmt, ...)
{
    if (!g || g->status != NB_OK)
        return code;
    g->status = code;
    snprintf(g->errop, sizeof g->errop, "%s", op ? op : "");
    int n = 0;
    if (op && *op)
        n = snprintf(g->errmsg, sizeof g->errmsg, "%s: ", op);
    if (n < 0)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->errmsg + n, sizeof g->errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

nb_status nb_graph_status(const nb_graph *g)
{
    return g ? g->status : NB_ERR_NULL;
}

const char *nb_graph_errmsg(const nb_graph *g)
{
    return g ? g->errmsg : "no graph";
}

const char *nb_graph_errop(const nb_graph *g)
{
    return g ? g->errop : "";
}

void nb_graph_clear_error(nb_graph *g)
{
    if (!g)
        return;
    g->status = NB_OK;
    g->errop[0] = '\0';
    g->errmsg[0] = '\0';
}
