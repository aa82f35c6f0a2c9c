/* Checkpoints: nb_model_save writes a model's tensors, an optimizer's state
 * and an RNG's state in the little-endian format of docs/optim.md through
 * a temporary file renamed into place; nb_model_load reads a whole file,
 * checks all of it and only then changes anything. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include "file.h"
#include "io_internal.h"
#include "nabla/ckpt.h"
#include "../optim/optim_internal.h"

#define MAGIC "NABLACKP"
#define HEADER_SIZE 28
#define TRAILER_SIZE 4
#define FLAG_OPTIM 1u
#define FLAG_RNG 2u
#define FLAG_META 4u
#define NAME_MAX_LEN 65535u
#define RNG_BYTES (4 * 8 + 8 + 1)

/* ----------------------------------------------------------------- errors */

static nb_status ck_error(nb_ckpt_error *err, nb_status code, int64_t offset, const char *name,
                          size_t name_len, const char *fmt, ...) NB_PRINTF(6, 7);
static nb_status ck_error(nb_ckpt_error *err, nb_status code, int64_t offset, const char *name,
                          size_t name_len, const char *fmt, ...)
{
    if (!err)
        return code;
    err->status = code;
    err->offset = offset;
    err->name[0] = '\0';
    if (name) {
        size_t n = name_len < sizeof err->name - 1 ? name_len : sizeof err->name - 1;
        memcpy(err->name, name, n);
        err->name[n] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

/* ------------------------------------------------------- little-endian bytes */

static uint32_t crc(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib takes uInt lengths */
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ------------------------------------------------------------------ nbio_writer */

static void w_uint(nbio_writer *w, uint64_t v, int n)
{
    unsigned char b[8];
    nbio_le_put(b, v, n);
    nbio_bytes(w, b, (size_t)n);
}

static void w_data(nbio_writer *w, nb_dtype dt, const void *data, int64_t n)
{
    if (dt == NB_F32) {
        const float *x = data;
        for (int64_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            w_uint(w, u, 4);
        }
    } else {
        const double *x = data;
        for (int64_t i = 0; i < n; i++) {
            uint64_t u;
            memcpy(&u, &x[i], 8);
            w_uint(w, u, 8);
        }
    }
}

/* ------------------------------------------------------------------- save */

static bool state_matches(const nbopt_state *s, const nb_tensor *p)
{
    if (!p || s->dtype != nb_tensor_dtype(p) || s->rank != nb_tensor_rank(p))
        return false;
    const int64_t *shape = nb_tensor_shape(p);
    for (int i = 0; i < s->rank; i++)
        if (s->shape[i] != shape[i])
            return false;
    return true;
}

static uint64_t tensor_bytes(const nb_tensor *t)
{
    return (uint64_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
}

/* Size of the payload that save will write. */
static uint64_t payload_size(const nb_model *m, const nb_optim *opt, const nb_rng *rng,
                             size_t meta_len)
{
    uint64_t p = 4;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t))
        p += 2 + strlen(nb_tensor_name(t)) + 4 + 8 * (uint64_t)nb_tensor_rank(t) + tensor_bytes(t);
    if (opt) {
        p += 4 + 4 + 8 + 8 + 4;
        for (const nbopt_state *s = opt->states; s; s = s->hh.next) {
            const nb_tensor *t = nb_model_get(m, s->key);
            if (state_matches(s, t))
                p += 2 + (s->key_size - 1) + 8 + (uint64_t)s->n_slots * tensor_bytes(t);
        }
    }
    if (rng)
        p += RNG_BYTES;
    if (meta_len > 0)
        p += 4 + meta_len;
    return p;
}

static void write_all(nbio_writer *w, const nb_model *m, const nb_optim *opt, const nb_rng *rng,
                      const char *meta, size_t meta_len, uint64_t payload)
{
    unsigned char h[HEADER_SIZE];
    memcpy(h, MAGIC, 8);
    nbio_le_put(h + 8, NB_CKPT_VERSION, 4);
    nbio_le_put(h + 12, (opt ? FLAG_OPTIM : 0) | (rng ? FLAG_RNG : 0) | (meta_len ? FLAG_META : 0),
                4);
    nbio_le_put(h + 16, payload, 8);
    nbio_le_put(h + 24, crc(h, 24), 4);
    nbio_bytes(w, h, sizeof h);

    w->crc_on = true;
    w->crc_mark = w->used;
    w->crc = crc32(0L, Z_NULL, 0);
    w_uint(w, (uint64_t)nb_model_count(m), 4);
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t)) {
        const char *name = nb_tensor_name(t);
        size_t len = strlen(name);
        w_uint(w, len, 2);
        nbio_bytes(w, name, len);
        unsigned char d[4] = {(unsigned char)nb_tensor_dtype(t), (unsigned char)nb_tensor_rank(t),
                              nb_tensor_needs_grad(t) ? 1 : 0, 0};
        nbio_bytes(w, d, 4);
        for (int i = 0; i < nb_tensor_rank(t); i++)
            w_uint(w, (uint64_t)nb_tensor_shape(t)[i], 8);
        w_data(w, nb_tensor_dtype(t), nb_tensor_data(t), nb_tensor_size(t));
    }
    if (opt) {
        uint32_t n_states = 0;
        for (const nbopt_state *s = opt->states; s; s = s->hh.next)
            n_states += state_matches(s, nb_model_get(m, s->key));
        w_uint(w, (uint64_t)opt->opts.kind, 4);
        w_uint(w, (uint64_t)nbopt_slots(opt->opts.kind), 4);
        w_uint(w, (uint64_t)opt->step, 8);
        w_uint(w, (uint64_t)opt->sched_pos, 8);
        w_uint(w, n_states, 4);
        for (const nbopt_state *s = opt->states; s; s = s->hh.next) {
            if (!state_matches(s, nb_model_get(m, s->key)))
                continue;
            w_uint(w, s->key_size - 1, 2);
            nbio_bytes(w, s->key, s->key_size - 1);
            w_uint(w, (uint64_t)s->step, 8);
            for (int k = 0; k < s->n_slots; k++)
                w_data(w, s->dtype, nbopt_slot(s, k), s->size);
        }
    }
    if (rng) {
        for (int i = 0; i < 4; i++)
            w_uint(w, rng->s[i], 8);
        uint64_t u;
        memcpy(&u, &rng->spare, 8);
        w_uint(w, u, 8);
        w_uint(w, rng->has_spare ? 1 : 0, 1);
    }
    if (meta_len > 0) {
        w_uint(w, meta_len, 4);
        nbio_bytes(w, meta, meta_len);
    }
    nbio_flush(w);
    w->crc_on = false;
    w_uint(w, (uint32_t)w->crc, 4);
    nbio_flush(w);
}

/* What nb_model_save writes, for nbio_save. */
typedef struct save_job {
    const nb_model *m;
    const nb_optim *opt;
    const nb_rng *rng;
    const char *meta;
    size_t meta_len;
} save_job;

static void fill(nbio_writer *w, const void *ud)
{
    const save_job *j = ud;
    write_all(w, j->m, j->opt, j->rng, j->meta, j->meta_len,
              payload_size(j->m, j->opt, j->rng, j->meta_len));
}

nb_status nb_model_save(const nb_model *m, const nb_optim *opt, const char *path,
                        const nb_ckpt_opts *o, nb_ckpt_error *err)
{
    nbio_err_clear(err);
    if (!m || !path)
        return ck_error(err, NB_ERR_NULL, -1, NULL, 0, "save: %s is NULL",
                        !m ? "the model" : "the path");
    nb_ckpt_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    size_t meta_len = o->meta ? strnlen(o->meta, (size_t)NB_META_MAX + 1) : 0;
    if (meta_len > 0) {
        size_t at;
        char why[200];
        if (!nbc_meta_check(o->meta, meta_len, &at, why, sizeof why))
            return ck_error(err, NB_ERR_ARG, -1, NULL, 0, "save: %s", why);
    }
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t)) {
        size_t len = strlen(nb_tensor_name(t));
        if (len > NAME_MAX_LEN)
            return ck_error(err, NB_ERR_ARG, -1, nb_tensor_name(t), len,
                            "save: tensor name of %zu bytes is longer than %u", len, NAME_MAX_LEN);
    }

    save_job job = {m, opt, o->rng, o->meta, meta_len};
    char why[512];
    nb_status st = nbio_save(path, o, fill, &job, why, sizeof why);
    return st == NB_OK ? NB_OK : ck_error(err, st, -1, NULL, 0, "save: %s", why);
}

/* ------------------------------------------------------------------- load */

typedef struct reader {
    const unsigned char *buf;
    size_t pos, end; /* offsets in the whole file */
} reader;

/* Take n bytes; NULL when fewer remain. */
static const unsigned char *r_take(reader *r, uint64_t n)
{
    if (n > r->end - r->pos)
        return NULL;
    const unsigned char *p = r->buf + r->pos;
    r->pos += (size_t)n;
    return p;
}

typedef struct rec {
    const char *name; /* not NUL-terminated */
    size_t name_len;
    size_t offset; /* of the record */
    nb_dtype dtype;
    int rank;
    int64_t shape[NB_MAX_RANK];
    int64_t size;
    size_t data; /* offset of the data */
    nb_tensor *param;
} rec;

typedef struct srec { /* optimizer state of one tensor */
    size_t offset;
    const rec *tensor;
    int64_t step;
    size_t data;
} srec;

typedef struct loader {
    nb_model *m;
    nb_optim *opt;
    nb_ckpt_error *err;
    nb_alloc_fn alloc;
    void *aud;
    reader r;
    char name[NAME_MAX_LEN + 1]; /* scratch: a NUL-terminated name */
    rec *recs;
    uint32_t n_recs;
    rec **by_param; /* recs sorted by their parameter's address */
    size_t recs_bytes, by_param_bytes, srecs_bytes;
    srec *srecs;
    uint32_t n_srecs;
    uint32_t flags;
    uint32_t kind;
    int64_t step, sched_pos;
    nb_rng rng;
    size_t meta_at, meta_len;  /* the metadata text in the file (meta_len 0: none) */
    nb_tensor_info_fn list_fn; /* listing without a model (m NULL) */
    void *list_ud;
} loader;

#define TRUNCATED(L, what)                                                                         \
    ck_error((L)->err, NB_ERR_PARSE, (int64_t)(L)->r.pos, NULL, 0,                                 \
             "load: payload ends inside %s at offset %zu", (what), (L)->r.pos)

static int cmp_param(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(rec *const *)a)->param, y = (uintptr_t)(*(rec *const *)b)->param;
    return x < y ? -1 : x > y;
}

/* Without a model (listing a file): records sorted by name. */
static int cmp_name(const void *a, const void *b)
{
    const rec *x = *(rec *const *)a, *y = *(rec *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static const rec *find_rec_name(const loader *L, const char *name, size_t len)
{
    rec key = {.name = name, .name_len = len};
    const rec *kp = &key;
    rec *const *hit = bsearch(&kp, L->by_param, L->n_recs, sizeof *L->by_param, cmp_name);
    return hit ? *hit : NULL;
}

static const rec *find_rec(const loader *L, const nb_tensor *p)
{
    size_t lo = 0, hi = L->n_recs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uintptr_t x = (uintptr_t)L->by_param[mid]->param;
        if (x == (uintptr_t)p)
            return L->by_param[mid];
        if (x < (uintptr_t)p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Read a name (u16 length, bytes) into L->name. */
static nb_status read_name(loader *L, const char **name, size_t *len, const char *what)
{
    size_t at = L->r.pos;
    const unsigned char *p = r_take(&L->r, 2);
    if (!p)
        return TRUNCATED(L, what);
    size_t n = (size_t)nbio_le_get(p, 2);
    if (n == 0)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, NULL, 0,
                        "load: %s at offset %zu has an empty name", what, at);
    const unsigned char *s = r_take(&L->r, n);
    if (!s)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, NULL, 0,
                        "load: name of %s at offset %zu is %zu bytes, past the payload's end", what,
                        at, n);
    if (memchr(s, '\0', n))
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, NULL, 0,
                        "load: name of %s at offset %zu holds a NUL byte", what, at);
    memcpy(L->name, s, n);
    L->name[n] = '\0';
    *name = (const char *)s;
    *len = n;
    return NB_OK;
}

static nb_status parse_header(loader *L, size_t file_size)
{
    const unsigned char *h = L->r.buf;
    if (file_size < HEADER_SIZE)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)file_size, NULL, 0,
                        "load: the file is %zu bytes, shorter than the %d-byte header", file_size,
                        HEADER_SIZE);
    if (memcmp(h, MAGIC, 8) != 0)
        return ck_error(L->err, NB_ERR_PARSE, 0, NULL, 0,
                        "load: not a nabla checkpoint (the first 8 bytes are not \"%s\")", MAGIC);
    uint32_t stored = (uint32_t)nbio_le_get(h + 24, 4), computed = crc(h, 24);
    if (stored != computed)
        return ck_error(L->err, NB_ERR_PARSE, 24, NULL, 0,
                        "load: the header failed its CRC-32 check (stored 0x%08x, computed "
                        "0x%08x): the file is damaged",
                        (unsigned)stored, (unsigned)computed);
    uint32_t version = (uint32_t)nbio_le_get(h + 8, 4);
    if (version != NB_CKPT_VERSION)
        return ck_error(L->err, NB_ERR_PARSE, 8, NULL, 0,
                        "load: format version %u is not supported (this library reads %d)",
                        (unsigned)version, NB_CKPT_VERSION);
    L->flags = (uint32_t)nbio_le_get(h + 12, 4);
    if (L->flags & ~(FLAG_OPTIM | FLAG_RNG | FLAG_META))
        return ck_error(L->err, NB_ERR_PARSE, 12, NULL, 0, "load: unknown flags 0x%08x",
                        (unsigned)L->flags);
    uint64_t payload = nbio_le_get(h + 16, 8);
    uint64_t room = file_size - HEADER_SIZE;
    if (room < TRAILER_SIZE || payload > room - TRAILER_SIZE)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)file_size, NULL, 0,
                        "load: the file is truncated: the header announces %llu payload bytes "
                        "and a 4-byte CRC, the file has %llu bytes after the header",
                        (unsigned long long)payload, (unsigned long long)room);
    if (payload < room - TRAILER_SIZE)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)(HEADER_SIZE + payload + TRAILER_SIZE), NULL,
                        0, "load: %llu unexpected bytes after the end of the checkpoint",
                        (unsigned long long)(room - TRAILER_SIZE - payload));
    size_t end = HEADER_SIZE + (size_t)payload;
    stored = (uint32_t)nbio_le_get(h + end, 4);
    computed = crc(h + HEADER_SIZE, (size_t)payload);
    if (stored != computed)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)end, NULL, 0,
                        "load: the payload (every section after the header) failed its CRC-32 "
                        "check (stored 0x%08x at offset %zu, computed 0x%08x): the file is "
                        "damaged",
                        (unsigned)stored, end, (unsigned)computed);
    L->r.pos = HEADER_SIZE;
    L->r.end = end;
    return NB_OK;
}

static nb_status parse_tensors(loader *L)
{
    const unsigned char *p = r_take(&L->r, 4);
    if (!p)
        return TRUNCATED(L, "the tensor count");
    uint64_t n = nbio_le_get(p, 4);
    /* a record takes at least 7 bytes: bounds the allocation by the file */
    if (n > (L->r.end - L->r.pos) / 7)
        return ck_error(L->err, NB_ERR_PARSE, HEADER_SIZE, NULL, 0,
                        "load: tensor count %llu cannot fit in the %zu payload bytes",
                        (unsigned long long)n, L->r.end - HEADER_SIZE);
    if (n > 0) {
        L->recs_bytes = (size_t)n * sizeof *L->recs;
        L->by_param_bytes = (size_t)n * sizeof *L->by_param;
        L->recs = L->alloc(L->aud, NULL, 0, L->recs_bytes);
        L->by_param = L->alloc(L->aud, NULL, 0, L->by_param_bytes);
        if (!L->recs || !L->by_param)
            return ck_error(L->err, NB_ERR_NOMEM, -1, NULL, 0, "load: out of memory");
    }
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        rec *t = &L->recs[i];
        memset(t, 0, sizeof *t);
        t->offset = L->r.pos;
        nb_status st = read_name(L, &t->name, &t->name_len, "a tensor record");
        if (st != NB_OK)
            return st;
        L->n_recs = i + 1;
        const unsigned char *d = r_take(&L->r, 4);
        if (!d)
            return TRUNCATED(L, "a tensor's description");
        size_t at = L->r.pos - 4;
        if (d[0] != NB_F32 && d[0] != NB_F64)
            return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, t->name, t->name_len,
                            "load: tensor '%s': dtype code %u at offset %zu is not 0 (f32) or "
                            "1 (f64)",
                            L->name, d[0], at);
        if (d[1] > NB_MAX_RANK)
            return ck_error(L->err, NB_ERR_PARSE, (int64_t)at + 1, t->name, t->name_len,
                            "load: tensor '%s': rank %u at offset %zu exceeds %d", L->name, d[1],
                            at + 1, NB_MAX_RANK);
        if (d[2] > 1 || d[3] != 0)
            return ck_error(L->err, NB_ERR_PARSE, (int64_t)at + 2, t->name, t->name_len,
                            "load: tensor '%s': reserved bits set at offset %zu", L->name, at + 2);
        t->dtype = (nb_dtype)d[0];
        t->rank = d[1];
        t->size = 1;
        for (int k = 0; k < t->rank; k++) {
            at = L->r.pos;
            const unsigned char *s = r_take(&L->r, 8);
            if (!s)
                return TRUNCATED(L, "a tensor's shape");
            uint64_t dim = nbio_le_get(s, 8);
            if (dim > (uint64_t)INT64_MAX || !nbc_count_axis(&t->size, (int64_t)dim))
                return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, t->name, t->name_len,
                                "load: tensor '%s': size %llu of axis %d at offset %zu overflows",
                                L->name, (unsigned long long)dim, k, at);
            t->shape[k] = (int64_t)dim;
        }
        uint64_t bytes;
        at = L->r.pos;
        if ((uint64_t)t->size > UINT64_MAX / 8 ||
            (bytes = (uint64_t)t->size * nb_dtype_size(t->dtype)) > L->r.end - L->r.pos)
            return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, t->name, t->name_len,
                            "load: tensor '%s': %lld elements at offset %zu do not fit in the "
                            "%zu bytes left in the payload",
                            L->name, (long long)t->size, at, L->r.end - L->r.pos);
        t->data = L->r.pos;
        L->r.pos += (size_t)bytes;

        L->by_param[i] = t;
        if (!L->m)
            continue;
        /* against the model */
        char a[96], b[96];
        t->param = nb_model_get(L->m, L->name);
        if (!t->param)
            return ck_error(L->err, NB_ERR_NOTFOUND, (int64_t)t->offset, t->name, t->name_len,
                            "load: tensor '%s' (offset %zu) is not in the model", L->name,
                            t->offset);
        if (nb_tensor_dtype(t->param) != t->dtype)
            return ck_error(L->err, NB_ERR_DTYPE, (int64_t)t->offset, t->name, t->name_len,
                            "load: tensor '%s' (offset %zu) is %s in the file, %s in the model",
                            L->name, t->offset, nb_dtype_name(t->dtype),
                            nb_dtype_name(nb_tensor_dtype(t->param)));
        bool same = nb_tensor_rank(t->param) == t->rank;
        for (int k = 0; same && k < t->rank; k++)
            same = nb_tensor_shape(t->param)[k] == t->shape[k];
        if (!same)
            return ck_error(
                L->err, NB_ERR_SHAPE, (int64_t)t->offset, t->name, t->name_len,
                "load: tensor '%s' (offset %zu) has shape %s in the file, %s in the "
                "model",
                L->name, t->offset, nb_shape_str(t->rank, t->shape, a, sizeof a),
                nb_shape_str(nb_tensor_rank(t->param), nb_tensor_shape(t->param), b, sizeof b));
    }
    /* unique names, and every tensor of the model present */
    if (L->n_recs > 1)
        qsort(L->by_param, L->n_recs, sizeof *L->by_param, L->m ? cmp_param : cmp_name);
    for (uint32_t i = 1; i < L->n_recs; i++)
        if (L->m ? L->by_param[i]->param == L->by_param[i - 1]->param
                 : cmp_name(&L->by_param[i], &L->by_param[i - 1]) == 0) {
            const rec *x = L->by_param[i - 1], *y = L->by_param[i];
            if (x->offset > y->offset) {
                const rec *z = x;
                x = y;
                y = z;
            }
            return ck_error(L->err, NB_ERR_EXISTS, (int64_t)y->offset, y->name, y->name_len,
                            "load: tensor '%.*s' appears twice (offsets %zu and %zu)",
                            (int)(y->name_len < 200 ? y->name_len : 200), y->name, x->offset,
                            y->offset);
        }
    for (nb_tensor *t = L->m ? nb_model_next(L->m, NULL) : NULL; t; t = nb_model_next(L->m, t))
        if (!find_rec(L, t))
            return ck_error(L->err, NB_ERR_NOTFOUND, -1, nb_tensor_name(t),
                            strlen(nb_tensor_name(t)),
                            "load: the model's tensor '%s' is not in "
                            "the file",
                            nb_tensor_name(t));
    return NB_OK;
}

static const char *kind_name(uint32_t k)
{
    static const char *const names[] = {"sgd", "momentum", "nesterov", "adam", "adamw"};
    return k < 5 ? names[k] : "?";
}

static nb_status parse_optim(loader *L)
{
    size_t at = L->r.pos;
    const unsigned char *p = r_take(&L->r, 28);
    if (!p)
        return TRUNCATED(L, "the optimizer section's header");
    L->kind = (uint32_t)nbio_le_get(p, 4);
    uint32_t slots = (uint32_t)nbio_le_get(p + 4, 4);
    uint64_t step = nbio_le_get(p + 8, 8), pos = nbio_le_get(p + 16, 8);
    uint64_t n = nbio_le_get(p + 24, 4);
    if (L->kind > NB_OPTIM_ADAMW)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, NULL, 0,
                        "load: optimizer kind %u at offset %zu is not known", (unsigned)L->kind,
                        at);
    if (slots != (uint32_t)nbopt_slots((nb_optim_kind)L->kind))
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at + 4, NULL, 0,
                        "load: %u state arrays per parameter at offset %zu; %s keeps %d",
                        (unsigned)slots, at + 4, kind_name(L->kind),
                        nbopt_slots((nb_optim_kind)L->kind));
    if (step > (uint64_t)INT64_MAX || pos > (uint64_t)INT64_MAX)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at + (step > (uint64_t)INT64_MAX ? 8 : 16),
                        NULL, 0,
                        "load: optimizer step count or schedule position at offset %zu "
                        "is out of range",
                        at + 8);
    L->step = (int64_t)step;
    L->sched_pos = (int64_t)pos;
    if (n > L->n_recs)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at + 24, NULL, 0,
                        "load: %llu optimizer states at offset %zu for %u tensors",
                        (unsigned long long)n, at + 24, (unsigned)L->n_recs);
    if (n > 0) {
        L->srecs_bytes = (size_t)n * sizeof *L->srecs;
        L->srecs = L->alloc(L->aud, NULL, 0, L->srecs_bytes);
        if (!L->srecs)
            return ck_error(L->err, NB_ERR_NOMEM, -1, NULL, 0, "load: out of memory");
    }
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        srec *s = &L->srecs[i];
        s->offset = L->r.pos;
        const char *name;
        size_t len;
        nb_status st = read_name(L, &name, &len, "an optimizer state");
        if (st != NB_OK)
            return st;
        if (L->m) {
            nb_tensor *param = nb_model_get(L->m, L->name);
            s->tensor = param ? find_rec(L, param) : NULL;
        } else {
            s->tensor = find_rec_name(L, name, len);
        }
        if (!s->tensor)
            return ck_error(L->err, NB_ERR_NOTFOUND, (int64_t)s->offset, name, len,
                            "load: optimizer state '%s' (offset %zu) names no tensor of the file",
                            L->name, s->offset);
        for (uint32_t k = 0; k < i; k++)
            if (L->srecs[k].tensor == s->tensor)
                return ck_error(L->err, NB_ERR_EXISTS, (int64_t)s->offset, name, len,
                                "load: optimizer state '%s' appears twice (offsets %zu and %zu)",
                                L->name, L->srecs[k].offset, s->offset);
        L->n_srecs = i + 1;
        at = L->r.pos;
        const unsigned char *q = r_take(&L->r, 8);
        if (!q)
            return TRUNCATED(L, "an optimizer state's step count");
        uint64_t t = nbio_le_get(q, 8);
        if (t > (uint64_t)INT64_MAX)
            return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, name, len,
                            "load: optimizer state '%s': step count at offset %zu is out of "
                            "range",
                            L->name, at);
        s->step = (int64_t)t;
        uint64_t bytes =
            (uint64_t)slots * (uint64_t)s->tensor->size * nb_dtype_size(s->tensor->dtype);
        at = L->r.pos;
        if (bytes > L->r.end - L->r.pos)
            return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, name, len,
                            "load: optimizer state '%s': %llu bytes at offset %zu do not fit in "
                            "the %zu bytes left in the payload",
                            L->name, (unsigned long long)bytes, at, L->r.end - L->r.pos);
        s->data = L->r.pos;
        L->r.pos += (size_t)bytes;
    }
    return NB_OK;
}

static nb_status parse_rng(loader *L)
{
    size_t at = L->r.pos;
    const unsigned char *p = r_take(&L->r, RNG_BYTES);
    if (!p)
        return TRUNCATED(L, "the RNG section");
    for (int i = 0; i < 4; i++)
        L->rng.s[i] = nbio_le_get(p + 8 * i, 8);
    uint64_t u = nbio_le_get(p + 32, 8);
    memcpy(&L->rng.spare, &u, 8);
    if (p[40] > 1)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at + 40, NULL, 0,
                        "load: RNG flag byte %u at offset %zu is not 0 or 1", p[40], at + 40);
    L->rng.has_spare = p[40] == 1;
    if ((L->rng.s[0] | L->rng.s[1] | L->rng.s[2] | L->rng.s[3]) == 0)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, NULL, 0,
                        "load: RNG state at offset %zu is all zeros (not a valid state)", at);
    return NB_OK;
}

static nb_status parse_meta(loader *L)
{
    size_t at = L->r.pos;
    const unsigned char *p = r_take(&L->r, 4);
    if (!p)
        return TRUNCATED(L, "the metadata section");
    uint64_t n = nbio_le_get(p, 4);
    if (n == 0 || n > NB_META_MAX || n > L->r.end - L->r.pos)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)at, NULL, 0,
                        "load: metadata length %llu at offset %zu is not in 1..%d or runs past "
                        "the payload's end",
                        (unsigned long long)n, at, NB_META_MAX);
    L->meta_at = L->r.pos;
    L->meta_len = (size_t)n;
    L->r.pos += (size_t)n;
    size_t bad;
    char why[200];
    if (!nbc_meta_check((const char *)L->r.buf + L->meta_at, L->meta_len, &bad, why, sizeof why))
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)(L->meta_at + bad), NULL, 0,
                        "load: %s (metadata starts at offset %zu)", why, L->meta_at);
    return NB_OK;
}

/* Copy the metadata text to o->meta_out when asked; check the room first. */
static nb_status meta_room(loader *L, const nb_ckpt_opts *o)
{
    if (o->meta_out && o->meta_cap < L->meta_len + 1)
        return ck_error(L->err, NB_ERR_ARG, (int64_t)L->meta_at, NULL, 0,
                        "load: the metadata is %zu bytes; meta_out holds %zu (needs %zu)",
                        L->meta_len, o->meta_cap, L->meta_len + 1);
    return NB_OK;
}

static void meta_copy(const loader *L, const nb_ckpt_opts *o)
{
    if (o->meta_out) {
        memcpy(o->meta_out, L->r.buf + L->meta_at, L->meta_len);
        o->meta_out[L->meta_len] = '\0';
    }
}

static void read_data(const unsigned char *p, nb_dtype dt, void *out, int64_t n)
{
    if (dt == NB_F32) {
        float *x = out;
        for (int64_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)nbio_le_get(p + 4 * i, 4);
            memcpy(&x[i], &u, 4);
        }
    } else {
        double *x = out;
        for (int64_t i = 0; i < n; i++) {
            uint64_t u = nbio_le_get(p + 8 * i, 8);
            memcpy(&x[i], &u, 8);
        }
    }
}

static nb_status load_checked(loader *L, const nb_ckpt_opts *o, size_t file_size)
{
    nb_status st = parse_header(L, file_size);
    if (st == NB_OK)
        st = parse_tensors(L);
    if (st == NB_OK && (L->flags & FLAG_OPTIM))
        st = parse_optim(L);
    if (st == NB_OK && (L->flags & FLAG_RNG))
        st = parse_rng(L);
    if (st == NB_OK && (L->flags & FLAG_META))
        st = parse_meta(L);
    if (st != NB_OK)
        return st;
    if (L->r.pos != L->r.end)
        return ck_error(L->err, NB_ERR_PARSE, (int64_t)L->r.pos, NULL, 0,
                        "load: %zu unexpected bytes at offset %zu before the payload's end",
                        L->r.end - L->r.pos, L->r.pos);
    if (L->opt && !(L->flags & FLAG_OPTIM))
        return ck_error(L->err, NB_ERR_NOTFOUND, 12, NULL, 0,
                        "load: an optimizer was given but the file holds no optimizer state");
    if (L->opt && L->kind != (uint32_t)L->opt->opts.kind)
        return ck_error(L->err, NB_ERR_ARG, -1, NULL, 0,
                        "load: the file holds %s optimizer state, the optimizer given is %s",
                        kind_name(L->kind), kind_name((uint32_t)L->opt->opts.kind));
    if (!L->m) { /* listing: the whole file is checked */
        st = meta_room(L, o);
        for (uint32_t i = 0; i < L->n_recs && st == NB_OK && L->list_fn; i++) {
            const rec *t = &L->recs[i];
            memcpy(L->name, t->name, t->name_len);
            L->name[t->name_len] = '\0';
            st = L->list_fn(L->list_ud, L->name, t->dtype, t->rank, t->shape);
            if (st != NB_OK)
                return ck_error(L->err, st, (int64_t)t->offset, t->name, t->name_len,
                                "list: stopped at tensor '%s' (offset %zu): %s", L->name, t->offset,
                                nb_status_str(st));
        }
        if (st == NB_OK)
            meta_copy(L, o);
        return st;
    }
    if (o->rng && !(L->flags & FLAG_RNG))
        return ck_error(L->err, NB_ERR_NOTFOUND, 12, NULL, 0,
                        "load: an RNG was given but the file holds no RNG state");
    st = meta_room(L, o);
    if (st != NB_OK)
        return st;

    /* the only step that can still fail: making the optimizer's new state */
    if (L->opt) {
        nbopt_state **list = NULL;
        size_t list_bytes = (size_t)L->n_srecs * sizeof *list;
        if (L->n_srecs > 0) {
            list = L->alloc(L->aud, NULL, 0, list_bytes);
            if (!list)
                return ck_error(L->err, NB_ERR_NOMEM, -1, NULL, 0, "load: out of memory");
            memset(list, 0, list_bytes);
        }
        for (uint32_t i = 0; i < L->n_srecs && st == NB_OK; i++) {
            const rec *t = L->srecs[i].tensor;
            list[i] =
                nbopt_state_new(L->opt, nb_tensor_name(t->param), t->dtype, t->rank, t->shape);
            if (!list[i]) {
                st = ck_error(L->err, NB_ERR_NOMEM, -1, NULL, 0, "load: out of memory");
                break;
            }
            list[i]->step = L->srecs[i].step;
            size_t bytes = (size_t)t->size * nb_dtype_size(t->dtype);
            for (int k = 0; k < list[i]->n_slots; k++)
                read_data(L->r.buf + L->srecs[i].data + (size_t)k * bytes, t->dtype,
                          nbopt_slot(list[i], k), t->size);
        }
        if (st == NB_OK &&
            nbopt_install(L->opt, list, (int)L->n_srecs, L->step, L->sched_pos) != NB_OK)
            st = ck_error(L->err, NB_ERR_NOMEM, -1, NULL, 0, "load: out of memory");
        if (st != NB_OK)
            for (uint32_t i = 0; i < L->n_srecs; i++)
                nbopt_state_free(L->opt, list[i]);
        if (list)
            L->alloc(L->aud, list, list_bytes, 0);
        if (st != NB_OK)
            return st;
    }
    /* commit: nothing below can fail */
    for (uint32_t i = 0; i < L->n_recs; i++) {
        rec *t = &L->recs[i];
        read_data(L->r.buf + t->data, t->dtype, nb_tensor_data(t->param), t->size);
    }
    if (o->rng)
        *o->rng = L->rng;
    meta_copy(L, o);
    return NB_OK;
}

static nb_status run_loader(nb_model *m, nb_optim *opt, const char *path, const nb_ckpt_opts *o,
                            nb_tensor_info_fn fn, void *ud, nb_ckpt_error *err)
{
    nb_ckpt_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    nb_alloc_fn alloc = o->alloc ? o->alloc : nb_default_alloc;
    void *aud = o->alloc ? o->alloc_ud : NULL;
    loader *L = alloc(aud, NULL, 0, sizeof *L);
    if (!L)
        return ck_error(err, NB_ERR_NOMEM, -1, NULL, 0, "load: out of memory");
    memset(L, 0, sizeof *L);
    L->m = m;
    L->opt = opt;
    L->err = err;
    L->alloc = alloc;
    L->aud = aud;
    L->list_fn = fn;
    L->list_ud = ud;

    void *buf = NULL;
    size_t size = 0;
    char why[512];
    nb_status st = nbio_read_all(path, alloc, aud, &buf, &size, why, sizeof why);
    if (st != NB_OK) {
        ck_error(err, st, -1, NULL, 0, "load: %s", why);
    } else {
        L->r.buf = buf;
        L->r.end = size;
        st = load_checked(L, o, size);
    }
    if (buf)
        alloc(aud, buf, size, 0);
    if (L->recs)
        alloc(aud, L->recs, L->recs_bytes, 0);
    if (L->by_param)
        alloc(aud, L->by_param, L->by_param_bytes, 0);
    if (L->srecs)
        alloc(aud, L->srecs, L->srecs_bytes, 0);
    alloc(aud, L, sizeof *L, 0);
    return st;
}

nb_status nb_model_load(nb_model *m, nb_optim *opt, const char *path, const nb_ckpt_opts *o,
                        nb_ckpt_error *err)
{
    nbio_err_clear(err);
    if (!m || !path)
        return ck_error(err, NB_ERR_NULL, -1, NULL, 0, "load: %s is NULL",
                        !m ? "the model" : "the path");
    return run_loader(m, opt, path, o, NULL, NULL, err);
}

nb_status nb_ckpt_list(const char *path, nb_tensor_info_fn fn, void *ud, const nb_ckpt_opts *o,
                       nb_ckpt_error *err)
{
    nbio_err_clear(err);
    if (!path)
        return ck_error(err, NB_ERR_NULL, -1, NULL, 0, "list: the path is NULL");
    nb_ckpt_opts lo;
    memset(&lo, 0, sizeof lo);
    if (o)
        lo = *o;
    lo.rng = NULL;
    return run_loader(NULL, NULL, path, &lo, fn, ud, err);
}

nb_status nb_ckpt_read_meta(const char *path, char *buf, size_t cap, nb_ckpt_error *err)
{
    nbio_err_clear(err);
    if (!path || !buf)
        return ck_error(err, NB_ERR_NULL, -1, NULL, 0, "read_meta: %s is NULL",
                        !path ? "the path" : "the buffer");
    nb_ckpt_opts o;
    memset(&o, 0, sizeof o);
    o.meta_out = buf;
    o.meta_cap = cap;
    return nb_ckpt_list(path, NULL, NULL, &o, err);
}
