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
    if (!fz_path[0])
        return;
    unlink(fz_path);
    char p[sizeof fz_path + 8];
    for (int k = 0; k < 4; k++) { /* fz_save_path's */
        snprintf(p, sizeof p, "%s.%d", fz_path, k);
        unlink(p);
    }
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

/* A model file read through an allocation hook (fz_check_oom's reader is
 * fz_list_and_load with a pointer to one of these): listed into a new
 * model, which then loads it (a checkpoint with an optimizer of the kind
 * it holds state of, and a generator when it holds one), then loaded into
 * a fixed model. Every buffer, model and optimizer goes through the hook. */
typedef struct fz_format {
    bool ckpt; /* a checkpoint (nb_ckpt_list, nb_model_load), else a safetensors
                  file (nb_safetensors_list, nb_model_load_safetensors) */
    int kind;  /* checkpoint: the nb_optim_kind it holds state of, or -1 */
    bool rng;  /* checkpoint: it holds a generator's state */
    const char *path;
    size_t size;     /* of the file */
    nb_model *fixed; /* loaded into after a successful listing */
} fz_format;

static inline nb_status fz_list_and_load(void *ctx, fz_alloc *a)
{
    static char meta[NB_META_MAX + 1];
    const fz_format *f = ctx;
    nb_error err;
    nb_model *m = nb_model_new_alloc(fz_alloc_fn, a);
    if (!m)
        return NB_ERR_NOMEM;
    nb_status st;
    if (f->ckpt) {
        nb_ckpt_opts o = {
            .alloc = fz_alloc_fn, .alloc_ud = a, .meta_out = meta, .meta_cap = sizeof meta};
        st = nb_ckpt_list(f->path, fz_add_tensor, m, &o, &err);
        fz_check_ckpt_error(st, &err, f->size);
        nb_optim *opt = NULL;
        if (st == NB_OK && f->kind >= 0) {
            nb_optim_opts oo = nb_optim_defaults((nb_optim_kind)f->kind);
            opt = nb_optim_new_alloc(&oo, fz_alloc_fn, a);
            if (!opt)
                st = NB_ERR_NOMEM;
        }
        nb_rng rng;
        nb_rng_seed(&rng, 1);
        o.rng = f->rng ? &rng : NULL;
        if (st == NB_OK) {
            st = nb_model_load(m, opt, f->path, &o, &err);
            fz_check_ckpt_error(st, &err, f->size);
        }
        nb_optim_free(opt);
        o.rng = NULL;
        if (st == NB_OK) {
            st = nb_model_load(f->fixed, NULL, f->path, &o, &err);
            fz_check_ckpt_error(st, &err, f->size);
        }
    } else {
        nb_file_opts o = {
            .alloc = fz_alloc_fn, .alloc_ud = a, .meta_out = meta, .meta_cap = sizeof meta};
        st = nb_safetensors_list(f->path, fz_add_tensor, m, &o, &err);
        fz_check_ckpt_error(st, &err, f->size);
        if (st == NB_OK) {
            st = nb_model_load_safetensors(m, f->path, &o, &err);
            fz_check_ckpt_error(st, &err, f->size);
        }
        if (st == NB_OK) {
            st = nb_model_load_safetensors(f->fixed, f->path, &o, &err);
            fz_check_ckpt_error(st, &err, f->size);
        }
    }
    nb_model_free(m);
    return st;
}

/* Every value of a model, in order, as bytes (*n of them; free the block),
 * to check that a failed load changed nothing. */
static inline unsigned char *fz_model_bytes(const nb_model *m, size_t *n)
{
    size_t total = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        total += (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
    unsigned char *b = malloc(total ? total : 1), *q = b;
    FZ_CHECK(b != NULL);
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        size_t k = (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
        memcpy(q, nb_tensor_data(p), k);
        q += k;
    }
    *n = total;
    return b;
}

/* Whether the values of @p m are the bytes b[0..n) (fz_model_bytes). */
static inline bool fz_model_is(const nb_model *m, const unsigned char *b, size_t n)
{
    size_t k;
    unsigned char *now = fz_model_bytes(m, &k);
    bool same = k == n && memcmp(now, b, n) == 0;
    free(now);
    return same;
}

/* Set every value of a model to a pattern no file of the corpus holds, so
 * that a load that writes anything shows. */
static inline void fz_scramble(nb_model *m)
{
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            FZ_CHECK(nb_tensor_set(p, i, -7.0 - 0.5 * (double)(i % 13)) == NB_OK);
}

/* Whether two models hold the same tensors by name: dtypes, shapes and
 * values by their bits (the order may differ). */
static inline bool fz_same_models(const nb_model *a, const nb_model *b)
{
    if (nb_model_count(a) != nb_model_count(b))
        return false;
    for (nb_tensor *p = nb_model_next(a, NULL); p; p = nb_model_next(a, p)) {
        nb_tensor *q = nb_model_get(b, nb_tensor_name(p));
        if (!q || nb_tensor_dtype(p) != nb_tensor_dtype(q) ||
            nb_tensor_rank(p) != nb_tensor_rank(q) ||
            memcmp(nb_tensor_shape(p), nb_tensor_shape(q),
                   (size_t)nb_tensor_rank(p) * sizeof(int64_t)) != 0 ||
            memcmp(nb_tensor_data(p), nb_tensor_data(q),
                   (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p))) != 0)
            return false;
    }
    return true;
}

/* The whole file at @p path in a new block (*n bytes; free it). */
static inline unsigned char *fz_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    FZ_CHECK(f != NULL);
    size_t cap = 4096, len = 0;
    unsigned char *b = malloc(cap);
    FZ_CHECK(b != NULL);
    for (size_t k; (k = fread(b + len, 1, cap - len, f)) > 0;) {
        len += k;
        if (len == cap) {
            b = realloc(b, cap *= 2);
            FZ_CHECK(b != NULL);
        }
    }
    FZ_CHECK(!ferror(f));
    fclose(f);
    *n = len;
    return b;
}

/* Where to save round trips: the temporary file's path with ".<k>" (k < 4),
 * removed at exit too. */
static inline const char *fz_save_path(int k)
{
    static char paths[4][4096 + 8];
    FZ_CHECK(fz_path[0] != '\0' && k >= 0 && k < 4);
    snprintf(paths[k], sizeof paths[k], "%s.%d", fz_path, k);
    return paths[k];
}

/* The 8 bytes after the first @p key in p[0..n), or NULL. */
static inline uint8_t *fz_after(uint8_t *p, size_t n, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + k + 8 <= n; i++)
        if (memcmp(p + i, key, k) == 0)
            return p + i + k;
    return NULL;
}

static inline void fz_put_hex(uint8_t *p, unsigned long v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)digits[(v >> (28 - 4 * i)) & 15];
}

/* Make the CRC-32s of the safetensors file p[0..size) right, as nabla's
 * writer would have: when the 8-byte header length N fits the file and the
 * header holds "nabla.crc32.data":" and "nabla.crc32.header":" with 8
 * bytes after each (the first of each), they become the CRC-32 of the
 * data (bytes [8+N, size)), then that of the length and the header with
 * the header's own 8 digits read as "00000000". A mutated file almost
 * always fails its CRC-32s; the same bytes with them right reach the
 * parser's and the checkpoint's deeper checks. Whether both were found. */
static inline bool fz_fix_crcs(uint8_t *p, size_t size)
{
    if (size < 8)
        return false;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | p[i];
    if (n > size - 8)
        return false;
    uint8_t *d = fz_after(p + 8, (size_t)n, "\"nabla.crc32.data\":\"");
    uint8_t *h = fz_after(p + 8, (size_t)n, "\"nabla.crc32.header\":\"");
    if (!d || !h || (d < h + 8 && h < d + 8))
        return false;
    fz_put_hex(d, crc32(0L, p + 8 + n, (uInt)(size - 8 - n)));
    memcpy(h, "00000000", 8);
    fz_put_hex(h, crc32(0L, p, (uInt)(8 + n)));
    return true;
}

/* Run @p check on data[0..size), then on a copy with its CRC-32s made
 * right (fz_fix_crcs) when that changes it: the file targets' way of
 * reading an input. */
static inline void fz_as_is_and_fixed(void (*check)(const uint8_t *, size_t), const uint8_t *data,
                                      size_t size)
{
    check(data, size);
    uint8_t *fixed = malloc(size ? size : 1);
    FZ_CHECK(fixed != NULL);
    memcpy(fixed, data, size);
    if (fz_fix_crcs(fixed, size) && memcmp(fixed, data, size) != 0)
        check(fixed, size);
    free(fixed);
}

#endif
