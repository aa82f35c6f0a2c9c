/* Helpers shared by the libFuzzer targets (header only, so a target is one
 * source file). A broken invariant is reported on stderr and aborts, which
 * libFuzzer records as a crash with the input that caused it. */
#ifndef NABLA_FUZZ_COMMON_H
#define NABLA_FUZZ_COMMON_H

#include "nabla.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char fz_path[4096];

static inline void fz_remove_temp(void)
{
    if (fz_path[0])
        unlink(fz_path);
}

/* The path of this process's temporary file (made once, removed at exit)
 * after writing data[0..size) to it, for readers that take a path. It is
 * in $TMPDIR, else in /dev/shm (memory: a disk's file system makes the
 * rewriting of every input ten times slower), else in /tmp. */
static inline const char *fz_temp_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    if (fd < 0) {
        const char *dir = getenv("TMPDIR");
        if (!dir || !*dir)
            dir = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fz_path, sizeof fz_path, "%s/nabla-fuzz-XXXXXX", dir);
        fd = mkstemp(fz_path);
        if (fd < 0) {
            perror(fz_path);
            abort();
        }
        atexit(fz_remove_temp);
    }
    FZ_CHECK(ftruncate(fd, 0) == 0);
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, (off_t)done);
        FZ_CHECK(n > 0);
        done += (size_t)n;
    }
    return fz_path;
}

/* A failure's report: the status returned, a message, NUL-terminated. */
static inline void fz_check_report(nb_status st, nb_status reported, const char *msg, size_t cap)
{
    if (st == NB_OK) {
        FZ_CHECK(reported == NB_OK && msg[0] == '\0');
        return;
    }
    FZ_CHECK(reported == st);
    FZ_CHECK(msg[0] != '\0');
    FZ_CHECK(memchr(msg, '\0', cap) != NULL);
}

/* A failed checkpoint or safetensors read says why, with the same status,
 * and points inside the file (or nowhere). */
static inline void fz_check_ckpt_error(nb_status st, const nb_error *err, size_t size)
{
    fz_check_report(st, err->status, err->msg, sizeof err->msg);
    if (st == NB_OK)
        return;
    FZ_CHECK(memchr(err->name, '\0', sizeof err->name) != NULL);
    FZ_CHECK(err->offset >= -1 && err->offset <= (int64_t)size);
}

/* A failed data-set load says why, with the same status; @p size bounds
 * the offset when the input is not compressed (0: not checked). */
static inline void fz_check_data_error(nb_status st, const nb_error *err, size_t size)
{
    fz_check_report(st, err->status, err->msg, sizeof err->msg);
    if (st == NB_OK)
        return;
    FZ_CHECK(err->line >= 0 && err->column >= 0 && err->offset >= -1);
    if (size > 0)
        FZ_CHECK(err->offset <= (int64_t)size);
}

/* nb_tensor_info_fn adding each listed tensor to the model @p ud. */
static inline nb_status fz_add_tensor(void *ud, const char *name, nb_dtype dt, int rank,
                                      const int64_t *shape)
{
    return nb_model_add(ud, name, dt, rank, shape, NULL);
}

/* The model of the seed corpora (fuzz/make_corpus.c): an MLP 3-4-2 named
 * as nb_mlp_new names it, fc1 in f32 and fc2 in @p fc2, values 0. */
static inline nb_model *fz_mlp_model(nb_dtype fc2)
{
    static const int64_t w1[] = {3, 4}, b1[] = {4}, w2[] = {4, 2}, b2[] = {2};
    nb_model *m = nb_model_new();
    FZ_CHECK(m != NULL);
    FZ_CHECK(nb_model_add(m, "fc1.weight", NB_F32, 2, w1, NULL) == NB_OK);
    FZ_CHECK(nb_model_add(m, "fc1.bias", NB_F32, 1, b1, NULL) == NB_OK);
    FZ_CHECK(nb_model_add(m, "fc2.weight", fc2, 2, w2, NULL) == NB_OK);
    FZ_CHECK(nb_model_add(m, "fc2.bias", fc2, 1, b2, NULL) == NB_OK);
    return m;
}

/* Read every value of a model (so the sanitizers see any bad storage). */
static inline void fz_walk_model(const nb_model *m)
{
    volatile double sink = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            sink += nb_tensor_get(p, i);
    (void)sink;
}

/* Read every value and label of a data set (so the sanitizers see any
 * out-of-bounds or uninitialised storage) and check the labels' range. */
static inline void fz_walk_dataset(const nb_dataset *ds)
{
    int64_t n = nb_dataset_count(ds), f = nb_dataset_features(ds), k = nb_dataset_classes(ds);
    FZ_CHECK(n >= 0 && f >= 1 && k >= 1);
    volatile double sink = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t label = nb_dataset_label(ds, i);
        FZ_CHECK(label >= 0 && label < k);
        for (int64_t j = 0; j < f; j++)
            sink += nb_dataset_get(ds, i, j);
    }
    (void)sink;
}

/* Whether p[0..n) starts with the gzip magic (the readers then decompress). */
static inline bool fz_is_gzip(const uint8_t *p, size_t n)
{
    return n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* data[0..size) as a gzip stream in a new block (*out_len bytes; free it),
 * or NULL when out of memory. Compressing inside the target lets the
 * decompressing path see every input the plain path sees. */
static inline unsigned char *fz_gzip(const uint8_t *data, size_t size, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&zs, (uLong)size);
    unsigned char *out = malloc(cap);
    if (!out) {
        deflateEnd(&zs);
        return NULL;
    }
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)size;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zr = deflate(&zs, Z_FINISH);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    FZ_CHECK(zr == Z_STREAM_END);
    return out;
}

/* Whether the data sets hold the same samples (dtype, sizes, values by
 * their bits, labels). */
static inline bool fz_same_dataset(const nb_dataset *a, const nb_dataset *b)
{
    int64_t n = nb_dataset_count(a), f = nb_dataset_features(a);
    if (n != nb_dataset_count(b) || f != nb_dataset_features(b) ||
        nb_dataset_classes(a) != nb_dataset_classes(b) ||
        nb_dataset_dtype(a) != nb_dataset_dtype(b))
        return false;
    size_t bytes = (size_t)(n * f) * nb_dtype_size(nb_dataset_dtype(a));
    if (bytes && memcmp(nb_dataset_feature_data(a), nb_dataset_feature_data(b), bytes) != 0)
        return false;
    for (int64_t i = 0; i < n; i++)
        if (nb_dataset_label(a, i) != nb_dataset_label(b, i))
            return false;
    return true;
}

/* An allocation hook (nb_alloc_fn) that counts calls and live blocks and
 * fails call number fail_at (0: none), for the readers' out-of-memory
 * paths: a failure must give NB_ERR_NOMEM and leave nothing allocated. */
typedef struct fz_alloc {
    long calls, fail_at, live;
    bool failed; /* the failing call was reached */
} fz_alloc;

static inline void *fz_alloc_fn(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    fz_alloc *a = ud;
    (void)old_size;
    if (new_size == 0) {
        if (ptr)
            a->live--;
        free(ptr);
        return NULL;
    }
    if (++a->calls == a->fail_at) {
        a->failed = true;
        return NULL;
    }
    void *p = realloc(ptr, new_size);
    if (p && !ptr)
        a->live++;
    return p;
}

/* Which of @p calls allocations to fail for this input (1..calls; 0 when
 * there are none): a hash of the input, so a run is reproducible. */
static inline long fz_pick(const uint8_t *data, size_t size, long calls)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211u;
    return calls > 0 ? (long)(h % (uint64_t)calls) + 1 : 0;
}

/* A reader run with an allocation hook; it frees what it loaded. */
typedef nb_status (*fz_reader)(void *ctx, fz_alloc *a);

/* Run @p read once counting its allocations, then again failing one of
 * them (fz_pick): NB_ERR_NOMEM when the failing call is reached, the same
 * result as the first run otherwise, and nothing left allocated. */
static inline void fz_check_oom(fz_reader read, void *ctx, const uint8_t *data, size_t size)
{
    fz_alloc count = {0};
    nb_status st = read(ctx, &count);
    FZ_CHECK(count.live == 0);
    fz_alloc fail = {.fail_at = fz_pick(data, size, count.calls)};
    nb_status st2 = read(ctx, &fail);
    FZ_CHECK(fail.failed ? st2 == NB_ERR_NOMEM : st2 == st);
    FZ_CHECK(fail.live == 0);
}

/* A model file format read through an allocation hook (fz_check_oom's
 * reader is fz_list_and_load with a pointer to one of these). */
typedef struct fz_format {
    nb_status (*list)(const char *path, nb_tensor_info_fn fn, void *ud, const nb_ckpt_opts *o,
                      nb_error *err);
    nb_status (*load)(nb_model *m, const char *path, const nb_ckpt_opts *o, nb_error *err);
    const char *path;
    size_t size;     /* of the file */
    nb_model *fixed; /* loaded into after a successful listing */
} fz_format;

static inline nb_status fz_list_and_load(void *ctx, fz_alloc *a)
{
    static char meta[NB_META_MAX + 1];
    const fz_format *f = ctx;
    nb_error err;
    nb_ckpt_opts o = {
        .alloc = fz_alloc_fn, .alloc_ud = a, .meta_out = meta, .meta_cap = sizeof meta};
    nb_status st = f->list(f->path, NULL, NULL, &o, &err);
    fz_check_ckpt_error(st, &err, f->size);
    if (st == NB_OK) {
        st = f->load(f->fixed, f->path, &o, &err);
        fz_check_ckpt_error(st, &err, f->size);
    }
    return st;
}

#endif
