/* Data-parallel training over MPI: joining the run, the collectives the
 * trainer needs (check, broadcast, gradient and buffer averages, sums,
 * votes), each a non-blocking MPI operation waited for with a deadline,
 * and the naming of the ranks that stopped answering. */

#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dist_internal.h"

/* Tag of the "still here" messages ranks exchange after a timeout. */
enum { PING_TAG = 7 };
/* Seconds the ranks that timed out listen for each other's messages. */
#define PING_WINDOW 2.0

struct nb_dist {
    MPI_Comm comm; /* the collectives (a duplicate; errors returned) */
    MPI_Comm ping; /* "still here" messages after a timeout */
    int rank, size;
    bool initialised; /* nb_dist_init started MPI: nb_dist_free finalises it */
    bool broken;      /* a collective failed: the communicators are not used again */
    double timeout;   /* seconds; 0: wait forever */
    nb_alloc_fn alloc;
    void *ud;
    void *buf[2];     /* a flat buffer per dtype (NB_F32, NB_F64) */
    size_t cap[2];    /* its bytes */
    long double *ext; /* buffers averaged in extended precision */
    size_t ext_cap;   /* its bytes */
    nb_error err;
};

static MPI_Datatype type_of(nb_dtype dt)
{
    return dt == NB_F64 ? MPI_DOUBLE : MPI_FLOAT;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_for(double seconds)
{
    struct timespec ts = {0, (long)(seconds * 1e9)};
    nanosleep(&ts, NULL);
}

NBX_PRINTF(4, 5)
static nb_status fail(nb_dist *d, nb_status st, const char *where, const char *fmt, ...)
{
    nb_error_set(&d->err, st, where, "%s", "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err.msg, sizeof d->err.msg, fmt, ap);
    va_end(ap);
    return st;
}

/* MPI returned @p code while doing @p what: the communicator is given up. */
static nb_status mpi_fail(nb_dist *d, int code, const char *where, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, s, &n) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", code);
    d->broken = true;
    return fail(d, NB_ERR_COMM, where, "%s: MPI failed on rank %d: %s", what, d->rank, s);
}

/* A collective waited @p waited seconds, or another rank said it gave up:
 * every rank still running says so to the others and listens for theirs a
 * moment; those not heard from are named. */
static nb_status timed_out(nb_dist *d, const char *where, const char *what, double waited)
{
    static const int here = 1;
    d->broken = true;
    for (int j = 0; j < d->size; j++) {
        MPI_Request r;
        if (j != d->rank && MPI_Isend(&here, 1, MPI_INT, j, PING_TAG, d->ping, &r) == MPI_SUCCESS)
            MPI_Request_free(&r);
    }
    unsigned char *heard = d->alloc(d->ud, NULL, 0, (size_t)d->size);
    if (!heard)
        return fail(d, NB_ERR_COMM, where,
                    "%s: rank %d waited %.0f s for the other ranks (one has died or hangs)", what,
                    d->rank, waited);
    memset(heard, 0, (size_t)d->size);
    heard[d->rank] = 1;
    int missing = d->size - 1;
    for (double t0 = now_seconds(); missing > 0 && now_seconds() - t0 < PING_WINDOW;) {
        int flag = 0, v;
        MPI_Status s;
        if (MPI_Iprobe(MPI_ANY_SOURCE, PING_TAG, d->ping, &flag, &s) != MPI_SUCCESS)
            break;
        if (!flag) {
            pause_for(1e-3);
            continue;
        }
        if (MPI_Recv(&v, 1, MPI_INT, s.MPI_SOURCE, PING_TAG, d->ping, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS)
            break;
        if (!heard[s.MPI_SOURCE]) {
            heard[s.MPI_SOURCE] = 1;
            missing--;
        }
    }
    char list[160] = "";
    int listed = 0, first = -1;
    for (int j = 0; j < d->size; j++) {
        if (heard[j])
            continue;
        if (first < 0)
            first = j;
        size_t len = strlen(list);
        if (listed < 8)
            snprintf(list + len, sizeof list - len, "%s%d", listed ? ", " : "", j);
        else if (listed == 8)
            snprintf(list + len, sizeof list - len, ", ...");
        listed++;
    }
    d->alloc(d->ud, heard, (size_t)d->size, 0);
    if (missing == 0)
        return fail(d, NB_ERR_COMM, where,
                    "%s: rank %d waited %.0f s; every rank answers, but the operation did not "
                    "complete (the ranks called different collectives?)",
                    what, d->rank, waited);
    nb_status st = fail(d, NB_ERR_COMM, where,
                        "%s: no answer from rank%s %s (%s died or hangs); rank %d gave up after "
                        "%.0f s",
                        what, missing > 1 ? "s" : "", list, missing > 1 ? "they have" : "it has",
                        d->rank, waited);
    snprintf(d->err.name, sizeof d->err.name, "rank %d", first);
    return st;
}

/* Wait for @p rq, at most the timeout, watching for another rank's
 * message that it gave up. */
static nb_status wait_for(nb_dist *d, MPI_Request *rq, const char *where, const char *what)
{
    if (d->timeout <= 0) {
        int e = MPI_Wait(rq, MPI_STATUS_IGNORE);
        return e == MPI_SUCCESS ? NB_OK : mpi_fail(d, e, where, what);
    }
    double t0 = now_seconds(), probed = t0;
    for (long spins = 0;; spins++) {
        int done = 0;
        int e = MPI_Test(rq, &done, MPI_STATUS_IGNORE);
        if (e != MPI_SUCCESS)
            return mpi_fail(d, e, where, what);
        if (done)
            return NB_OK;
        if (spins < 256)
            continue; /* the usual case: the others are a moment away */
        double t = now_seconds(), waited = t - t0;
        if (waited > d->timeout)
            return timed_out(d, where, what, waited);
        if (t - probed > 0.05) {
            int flag = 0;
            probed = t;
            if (MPI_Iprobe(MPI_ANY_SOURCE, PING_TAG, d->ping, &flag, MPI_STATUS_IGNORE) ==
                    MPI_SUCCESS &&
                flag)
                return timed_out(d, where, what, waited);
        }
        /* leave the core to ranks still computing (oversubscribed runs) */
        if (waited > 2e-3)
            pause_for(waited > 0.1 ? 1e-3 : 5e-5);
    }
}

/* The run can still communicate. */
static nb_status usable(nb_dist *d, const char *where)
{
    if (d->broken)
        return fail(d, NB_ERR_COMM, where,
                    "an earlier collective failed (%s); the run cannot continue", d->err.msg);
    return NB_OK;
}

/* The start of a public collective on the model @p m: the error cleared,
 * the model there, the run still usable. */
static nb_status begin(nb_dist *d, const nb_model *m, const char *where)
{
    nb_error_clear(&d->err);
    if (!m)
        return fail(d, NB_ERR_NULL, where, "no model");
    return usable(d, where);
}

/* One collective over @p count values of @p type (@p elem bytes each), in
 * pieces of at most INT_MAX values: with @p root < 0 their reduction by
 * @p op over the ranks, in place; otherwise rank root's values to every
 * rank. */
static nb_status collective(nb_dist *d, void *buf, size_t count, MPI_Datatype type, size_t elem,
                            MPI_Op op, int root, const char *where, const char *what)
{
    char *p = buf;
    while (count > 0) {
        int n = count > INT_MAX ? INT_MAX : (int)count;
        MPI_Request rq;
        int e = root < 0 ? MPI_Iallreduce(MPI_IN_PLACE, p, n, type, op, d->comm, &rq)
                         : MPI_Ibcast(p, n, type, root, d->comm, &rq);
        if (e != MPI_SUCCESS)
            return mpi_fail(d, e, where, what);
        nb_status st = wait_for(d, &rq, where, what);
        if (st != NB_OK)
            return st;
        p += (size_t)n * elem;
        count -= (size_t)n;
    }
    return NB_OK;
}

/* The flat buffer of dtype @p k holds at least @p bytes (grown, never
 * shrunk: after the first call for a model, no allocation). */
static bool ensure(nb_dist *d, int k, size_t bytes)
{
    if (bytes <= d->cap[k])
        return true;
    void *b = d->alloc(d->ud, NULL, 0, bytes);
    if (!b)
        return false;
    if (d->buf[k])
        d->alloc(d->ud, d->buf[k], d->cap[k], 0);
    d->buf[k] = b;
    d->cap[k] = bytes;
    return true;
}

/* ---------------------------------------------------------- public API */

bool nb_dist_available(void)
{
    return true;
}

nb_status nb_dist_init(const nb_dist_opts *o, nb_dist **out, nb_error *err)
{
    static const char where[] = "nb_dist_init";
    nb_error_clear(err);
    if (!out)
        return nb_error_set(err, NB_ERR_NULL, where, "no place for the result (out is NULL)");
    *out = NULL;
    nb_dist_opts opts = o ? *o : nb_dist_defaults();
    if (!(opts.timeout >= 0) || opts.timeout > 1e9)
        return nb_error_set(err, NB_ERR_ARG, where,
                            "timeout = %g s: it must be a number of seconds >= 0 (0: wait forever)",
                            opts.timeout);
    nb_alloc_fn alloc = opts.alloc ? opts.alloc : nb_default_alloc;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized)
        return nb_error_set(err, NB_ERR_UNSUPPORTED, where,
                            "MPI was already finalised in this process; it cannot start again");
    bool started = false;
    if (!inited) {
        int provided = 0;
        int e = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (e != MPI_SUCCESS)
            return nb_error_set(err, NB_ERR_COMM, where, "MPI_Init_thread failed (error %d)", e);
        started = true;
    }
    nb_dist *d = alloc(opts.alloc_ud, NULL, 0, sizeof *d);
    if (!d) {
        if (started)
            MPI_Finalize();
        return nb_error_set(err, NB_ERR_NOMEM, where, "out of memory");
    }
    *d = (nb_dist){.initialised = started,
                   .timeout = opts.timeout,
                   .alloc = alloc,
                   .ud = opts.alloc_ud,
                   .comm = MPI_COMM_NULL,
                   .ping = MPI_COMM_NULL};
    nb_error_clear(&d->err);
    MPI_Comm base = opts.comm ? *(const MPI_Comm *)opts.comm : MPI_COMM_WORLD;
    int e = MPI_Comm_dup(base, &d->comm);
    if (e == MPI_SUCCESS)
        e = MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
    if (e == MPI_SUCCESS)
        e = MPI_Comm_dup(d->comm, &d->ping);
    if (e == MPI_SUCCESS)
        e = MPI_Comm_rank(d->comm, &d->rank);
    if (e == MPI_SUCCESS)
        e = MPI_Comm_size(d->comm, &d->size);
    if (e != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING];
        int n = 0;
        if (MPI_Error_string(e, s, &n) != MPI_SUCCESS)
            snprintf(s, sizeof s, "MPI error %d", e);
        nb_error_set(err, NB_ERR_COMM, where, "cannot set up the communicator: %s", s);
        d->broken = true;
        nb_dist_free(d);
        return NB_ERR_COMM;
    }
    *out = d;
    return NB_OK;
}

void nb_dist_free(nb_dist *d)
{
    if (!d)
        return;
    if (!d->broken) {
        if (d->ping != MPI_COMM_NULL)
            MPI_Comm_free(&d->ping);
        if (d->comm != MPI_COMM_NULL)
            MPI_Comm_free(&d->comm);
    }
    for (int k = 0; k < 2; k++)
        if (d->buf[k])
            d->alloc(d->ud, d->buf[k], d->cap[k], 0);
    if (d->ext)
        d->alloc(d->ud, d->ext, d->ext_cap, 0);
    bool finalise = d->initialised && !d->broken;
    d->alloc(d->ud, d, sizeof *d, 0);
    if (finalise)
        MPI_Finalize();
}

void nb_dist_abort(nb_dist *d, int code)
{
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (d && inited && !finalized)
        MPI_Abort(d->comm != MPI_COMM_NULL ? d->comm : MPI_COMM_WORLD, code);
}

bool nb_dist_ok(const nb_dist *d)
{
    return d && !d->broken;
}

int nb_dist_rank(const nb_dist *d)
{
    return d ? d->rank : 0;
}

int nb_dist_size(const nb_dist *d)
{
    return d ? d->size : 1;
}

const nb_error *nb_dist_error(const nb_dist *d)
{
    static const nb_error none = {.status = NB_ERR_NULL, .offset = -1, .msg = "no nb_dist"};
    return d ? &d->err : &none;
}

nb_status nb_dist_check(nb_dist *d, const nb_model *m, const char *settings)
{
    static const char where[] = "nb_dist_check";
    if (!d)
        return NB_ERR_NULL;
    nb_status st = begin(d, m, where);
    if (st != NB_OK)
        return st;
    size_t len = 0;
    char *text = nbx_layout_text(m, settings, d->alloc, d->ud, &len);
    /* every rank takes part even without memory for its text: the others
     * would wait for it */
    uint64_t mine[3] = {text ? nbx_hash(text, len) : 0, (uint64_t)len, text ? 0 : 1};
    size_t all_bytes = (size_t)d->size * sizeof mine;
    uint64_t *all = d->alloc(d->ud, NULL, 0, all_bytes);
    uint64_t failed = (text && all) ? 0 : 1;
    st = collective(d, &failed, 1, MPI_UINT64_T, sizeof failed, MPI_SUM, -1, where,
                    "comparing the ranks' models");
    if (st == NB_OK && failed)
        st = fail(d, NB_ERR_NOMEM, where,
                  "out of memory for the models' descriptions on %llu rank%s",
                  (unsigned long long)failed, failed > 1 ? "s" : "");
    MPI_Request rq;
    if (st == NB_OK) {
        int e = MPI_Iallgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, d->comm, &rq);
        st = e != MPI_SUCCESS ? mpi_fail(d, e, where, "comparing the ranks' models")
                              : wait_for(d, &rq, where, "comparing the ranks' models");
    }
    int differs = -1;
    for (int j = 1; st == NB_OK && j < d->size && differs < 0; j++)
        if (all[3 * j] != all[0] || all[3 * j + 1] != all[1])
            differs = j;
    if (st == NB_OK && differs > 0) {
        /* rank 0 and the first rank that differs show their texts to all */
        size_t a_len = (size_t)all[1], b_len = (size_t)all[3 * differs + 1];
        char *a = d->alloc(d->ud, NULL, 0, a_len + 1), *b = d->alloc(d->ud, NULL, 0, b_len + 1);
        uint64_t short_of = a && b ? 0 : 1;
        st = collective(d, &short_of, 1, MPI_UINT64_T, sizeof short_of, MPI_SUM, -1, where,
                        "comparing the ranks' models");
        if (st == NB_OK && short_of)
            st = fail(d, NB_ERR_NOMEM, where, "out of memory comparing the models");
        if (st == NB_OK && d->rank == 0)
            memcpy(a, text, a_len);
        if (st == NB_OK && d->rank == differs)
            memcpy(b, text, b_len);
        if (st == NB_OK)
            st = collective(d, a, a_len, MPI_CHAR, 1, MPI_OP_NULL, 0, where,
                            "comparing the ranks' models");
        if (st == NB_OK)
            st = collective(d, b, b_len, MPI_CHAR, 1, MPI_OP_NULL, differs, where,
                            "comparing the ranks' models");
        if (st == NB_OK) {
            char name[128];
            nbx_difference(a, a_len, b, b_len, differs, d->err.msg, sizeof d->err.msg, name,
                           sizeof name);
            snprintf(d->err.name, sizeof d->err.name, "%s", name);
            d->err.status = st = NB_ERR_COMM;
            snprintf(d->err.where, sizeof d->err.where, "%s", where);
        }
        if (a)
            d->alloc(d->ud, a, a_len + 1, 0);
        if (b)
            d->alloc(d->ud, b, b_len + 1, 0);
    }
    if (all)
        d->alloc(d->ud, all, all_bytes, 0);
    if (text)
        d->alloc(d->ud, text, len + 1, 0);
    return st;
}

/* Pack the tensors of @p m of dtype @p dt that @p pick selects (their
 * values, or with @p grads their gradients times @p scale) into the flat
 * buffer, or unpack them (@p back). Returns the values counted. */
static size_t pack(nb_dist *d, nb_model *m, nb_dtype dt, bool grads, bool back, double scale)
{
    size_t at = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        if (nb_tensor_dtype(p) != dt || (grads && !nb_tensor_requires_grad(p)))
            continue;
        nb_tensor *t = grads ? nb_tensor_grad(p) : p;
        size_t n = (size_t)nb_tensor_size(p);
        if (!t) { /* (every parameter of a model has a gradient) */
            at += n;
            continue;
        }
        if (dt == NB_F32) {
            float *x = nb_tensor_f32(t), *b = (float *)d->buf[dt] + at;
            if (back)
                memcpy(x, b, n * sizeof *x);
            else if (scale == 1)
                memcpy(b, x, n * sizeof *x);
            else
                for (size_t i = 0; i < n; i++)
                    b[i] = (float)(scale * x[i]);
        } else {
            double *x = nb_tensor_f64(t), *b = (double *)d->buf[dt] + at;
            if (back)
                memcpy(x, b, n * sizeof *x);
            else if (scale == 1)
                memcpy(b, x, n * sizeof *x);
            else
                for (size_t i = 0; i < n; i++)
                    b[i] = scale * x[i];
        }
        at += n;
    }
    return at;
}

/* Count the values to pack of dtype @p dt (gradients or all tensors). */
static size_t count_values(const nb_model *m, nb_dtype dt, bool grads)
{
    size_t n = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        if (nb_tensor_dtype(p) == dt && (!grads || nb_tensor_requires_grad(p)))
            n += (size_t)nb_tensor_size(p);
    return n;
}

/* Rank 0's tensors (or the gradients' weighted sum, @p grads) for every
 * tensor of @p m: one flat buffer per dtype. */
static nb_status flat_op(nb_dist *d, nb_model *m, bool grads, double weight, const char *where)
{
    for (int k = 0; k < 2; k++) {
        nb_dtype dt = (nb_dtype)k;
        size_t n = count_values(m, dt, grads), elem = nb_dtype_size(dt);
        if (n == 0)
            continue;
        if (!ensure(d, k, n * elem))
            return fail(d, NB_ERR_NOMEM, where, "out of memory for a buffer of %zu %s values", n,
                        nb_dtype_name(dt));
        nb_status st;
        if (grads) {
            pack(d, m, dt, true, false, weight);
            st = collective(d, d->buf[k], n, type_of(dt), elem, MPI_SUM, -1, where,
                            "averaging the gradients");
        } else {
            if (d->rank == 0)
                pack(d, m, dt, false, false, 1);
            st = collective(d, d->buf[k], n, type_of(dt), elem, MPI_OP_NULL, 0, where,
                            "broadcasting the model from rank 0");
        }
        if (st != NB_OK)
            return st;
        if (grads || d->rank != 0)
            pack(d, m, dt, grads, true, 1);
    }
    return NB_OK;
}

nb_status nb_dist_broadcast(nb_dist *d, nb_model *m)
{
    static const char where[] = "nb_dist_broadcast";
    if (!d)
        return NB_ERR_NULL;
    nb_status st = begin(d, m, where);
    return st != NB_OK ? st : flat_op(d, m, false, 1, where);
}

nb_status nb_dist_average_grads(nb_dist *d, nb_model *m, double weight)
{
    static const char where[] = "nb_dist_average_grads";
    if (!d)
        return NB_ERR_NULL;
    if (!(weight > -1e300 && weight < 1e300)) {
        nb_error_clear(&d->err);
        return fail(d, NB_ERR_ARG, where, "weight = %g: it must be finite", weight);
    }
    nb_status st = begin(d, m, where);
    return st != NB_OK ? st : flat_op(d, m, true, weight, where);
}

nb_status nb_dist_average_buffers(nb_dist *d, nb_model *m)
{
    static const char where[] = "nb_dist_average_buffers";
    if (!d)
        return NB_ERR_NULL;
    nb_status st = begin(d, m, where);
    if (st != NB_OK)
        return st;
    size_t n = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        if (!nb_tensor_requires_grad(p))
            n += (size_t)nb_tensor_size(p);
    if (n == 0)
        return NB_OK;
    if (n * sizeof *d->ext > d->ext_cap) {
        long double *e = d->alloc(d->ud, NULL, 0, n * sizeof *e);
        if (!e)
            return fail(d, NB_ERR_NOMEM, where, "out of memory for %zu buffer values", n);
        if (d->ext)
            d->alloc(d->ud, d->ext, d->ext_cap, 0);
        d->ext = e;
        d->ext_cap = n * sizeof *e;
    }
    /* summed in extended precision: P equal values add up exactly, so
     * their mean is the value itself (statistics of the inputs) */
    size_t at = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        if (!nb_tensor_requires_grad(p))
            for (int64_t i = 0; i < nb_tensor_size(p); i++)
                d->ext[at++] = nb_tensor_get(p, i);
    st = collective(d, d->ext, n, MPI_LONG_DOUBLE, sizeof *d->ext, MPI_SUM, -1, where,
                    "averaging the buffers");
    if (st != NB_OK)
        return st;
    at = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        if (!nb_tensor_requires_grad(p))
            for (int64_t i = 0; i < nb_tensor_size(p); i++)
                nb_tensor_set(p, i, (double)(d->ext[at++] / d->size));
    return NB_OK;
}

nb_status nb_dist_sum(nb_dist *d, double *values, int n)
{
    static const char where[] = "nb_dist_sum";
    if (!d)
        return NB_ERR_NULL;
    nb_error_clear(&d->err);
    if (!values && n > 0)
        return fail(d, NB_ERR_NULL, where, "no values");
    if (n < 0)
        return fail(d, NB_ERR_ARG, where, "n = %d: it must be >= 0", n);
    nb_status st = usable(d, where);
    if (st != NB_OK || n == 0)
        return st;
    return collective(d, values, (size_t)n, MPI_DOUBLE, sizeof *values, MPI_SUM, -1, where,
                      "summing over the ranks");
}

nb_status nb_dist_vote(nb_dist *d, bool ok, int *first_failed)
{
    static const char where[] = "nb_dist_vote";
    if (!d)
        return NB_ERR_NULL;
    nb_error_clear(&d->err);
    nb_status st = usable(d, where);
    if (st != NB_OK)
        return st;
    int lowest = ok ? d->size : d->rank;
    st = collective(d, &lowest, 1, MPI_INT, sizeof lowest, MPI_MIN, -1, where, "the ranks' vote");
    if (st == NB_OK && first_failed)
        *first_failed = lowest < d->size ? lowest : -1;
    return st;
}

/* ----------------------------------------------- the trainer's collectives */

/* The result of a call on @p d, its error copied to @p err. */
static nb_status relay(nb_dist *d, nb_status st, nb_error *err)
{
    if (st != NB_OK && err)
        *err = d->err;
    return st;
}

static nb_status comm_check(void *ud, const nb_model *m, const char *settings, nb_error *err)
{
    return relay(ud, nb_dist_check(ud, m, settings), err);
}

static nb_status comm_broadcast(void *ud, nb_model *m, nb_error *err)
{
    return relay(ud, nb_dist_broadcast(ud, m), err);
}

static nb_status comm_grads(void *ud, nb_model *m, double weight, nb_error *err)
{
    return relay(ud, nb_dist_average_grads(ud, m, weight), err);
}

static nb_status comm_buffers(void *ud, nb_model *m, nb_error *err)
{
    return relay(ud, nb_dist_average_buffers(ud, m), err);
}

static nb_status comm_sum(void *ud, double *values, int n, nb_error *err)
{
    return relay(ud, nb_dist_sum(ud, values, n), err);
}

nb_status nb_dist_train_comm(nb_dist *d, nb_train_comm *out)
{
    if (!d || !out)
        return NB_ERR_NULL;
    *out = (nb_train_comm){.rank = d->rank,
                           .size = d->size,
                           .ud = d,
                           .check = comm_check,
                           .broadcast = comm_broadcast,
                           .grads = comm_grads,
                           .buffers = comm_buffers,
                           .sum = comm_sum};
    return NB_OK;
}
