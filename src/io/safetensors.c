/* safetensors files: an 8-byte little-endian header length, a JSON header,
 * raw little-endian data. The reader parses exactly the JSON the format
 * uses (objects, arrays, strings, non-negative integers) by the schema, so
 * nesting is bounded by it, and checks the whole file before it changes
 * anything; the writer goes through a temporary file renamed into place. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "../core/internal.h"
#include "file.h"
#include "io_internal.h"
#include "nabla/safetensors.h"

#define NAME_MAX_LEN 65535u
#define META_KEY "__metadata__"
/* The CRC-32s every file nabla writes carries in its metadata: of the data,
 * and of the 8-byte length and the header with this value read as
 * "00000000". They are the files' own; a caller's metadata may not use the
 * prefix, and a load does not return them. */
#define CRC_PREFIX "nabla.crc32."
#define CRC_HEADER_KEY CRC_PREFIX "header"
#define CRC_DATA_KEY CRC_PREFIX "data"

/* ----------------------------------------------------------------- errors */

/* Errors of this file name the format as where they happened. */
#define st_error(err, code, offset, name, ...)                                                      \
    nbc_error_at((err), (code), "safetensors", (offset), (name), __VA_ARGS__)

/* zlib's crc32 over any number of bytes. */
static unsigned long crc_bytes(unsigned long crc, const unsigned char *p, size_t n)
{
    while (n > 0) {
        uInt k = n > (1u << 30) ? 1u << 30 : (uInt)n;
        crc = crc32(crc, p, k);
        p += k;
        n -= k;
    }
    return crc;
}

/* ================================================================ writing */

/* A growing text buffer through the allocation hook. */
typedef struct text {
    char *p;
    size_t len, cap;
    bool failed;
    nb_alloc_fn alloc;
    void *ud;
} text;

static void t_bytes(text *t, const void *s, size_t n)
{
    if (t->failed)
        return;
    if (n > t->cap - t->len) {
        size_t cap = t->cap ? t->cap : 256;
        while (n > cap - t->len) {
            if (cap > SIZE_MAX / 2) {
                t->failed = true;
                return;
            }
            cap *= 2;
        }
        char *q = t->alloc(t->ud, t->p, t->cap, cap);
        if (!q) {
            t->failed = true;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void t_str(text *t, const char *s)
{
    t_bytes(t, s, strlen(s));
}

/* A JSON string of n bytes of UTF-8 (checked by the caller). */
static void t_json(text *t, const char *s, size_t n)
{
    t_bytes(t, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            t_bytes(t, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            t_bytes(t, esc, 6);
        } else {
            t_bytes(t, &s[i], 1);
        }
    }
    t_bytes(t, "\"", 1);
}

static bool utf8_ok(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = nbc_utf8_seq(u + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* The header JSON of the stores' tensors with the metadata and the CRC-32
 * entries (the header's as "00000000", at *crc_at in t), padded with spaces
 * so that the data starts at a multiple of 8. */
static void header_json(text *t, const nb_model *const *stores, int n_stores, const char *meta,
                        size_t meta_len, unsigned long data_crc, size_t *crc_at)
{
    t_str(t, "{\"" META_KEY "\":{");
    for (size_t pos = 0; pos < meta_len;) {
        const char *line = meta + pos;
        const char *nl = memchr(line, '\n', meta_len - pos);
        size_t len = nl ? (size_t)(nl - line) : meta_len - pos;
        const char *eq = memchr(line, '=', len);
        t_json(t, line, (size_t)(eq - line));
        t_str(t, ":");
        t_json(t, eq + 1, len - (size_t)(eq - line) - 1);
        t_str(t, ",");
        pos += len + 1;
    }
    char num[96];
    snprintf(num, sizeof num, "\"" CRC_DATA_KEY "\":\"%08lx\",\"" CRC_HEADER_KEY "\":\"", data_crc);
    t_str(t, num);
    *crc_at = t->len;
    t_str(t, "00000000\"}");
    uint64_t offset = 0;
    for (int s = 0; s < n_stores; s++)
        for (nb_tensor *p = nb_model_next(stores[s], NULL); p; p = nb_model_next(stores[s], p)) {
            const char *name = nb_tensor_name(p);
            t_str(t, ",");
            t_json(t, name, strlen(name));
            t_str(t, nb_tensor_dtype(p) == NB_F32 ? ":{\"dtype\":\"F32\",\"shape\":["
                                                  : ":{\"dtype\":\"F64\",\"shape\":[");
            for (int k = 0; k < nb_tensor_rank(p); k++) {
                snprintf(num, sizeof num, "%s%lld", k ? "," : "", (long long)nb_tensor_shape(p)[k]);
                t_str(t, num);
            }
            uint64_t bytes = (uint64_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
            snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                     (unsigned long long)(offset + bytes));
            t_str(t, num);
            offset += bytes;
        }
    t_str(t, "}");
    while (!t->failed && (8 + t->len) % 8 != 0)
        t_str(t, " ");
}

/* The tensors' data, little-endian, in the stores' order. */
static void write_data(nbio_writer *w, const nb_model *const *stores, int n_stores)
{
    unsigned char b[8];
    for (int s = 0; s < n_stores; s++)
        for (nb_tensor *p = nb_model_next(stores[s], NULL); p; p = nb_model_next(stores[s], p)) {
            int64_t n = nb_tensor_size(p);
            if (nb_tensor_dtype(p) == NB_F32) {
                const float *x = nb_tensor_f32(p);
                for (int64_t i = 0; i < n; i++) {
                    uint32_t u;
                    memcpy(&u, &x[i], 4);
                    nbio_le_put(b, u, 4);
                    nbio_bytes(w, b, 4);
                }
            } else {
                const double *x = nb_tensor_f64(p);
                for (int64_t i = 0; i < n; i++) {
                    uint64_t u;
                    memcpy(&u, &x[i], 8);
                    nbio_le_put(b, u, 8);
                    nbio_bytes(w, b, 8);
                }
            }
        }
    nbio_flush(w);
}

static size_t discard(void *ud, FILE *f, const void *data, size_t n)
{
    (void)ud, (void)f, (void)data;
    return n;
}

/* The CRC-32 of the data the stores will write (a pass through a writer
 * that keeps nothing); false when out of memory. */
static bool data_crc(const nb_model *const *stores, int n_stores, nb_alloc_fn alloc, void *aud,
                     unsigned long *crc)
{
    nbio_writer w = {.write = discard,
                     .buf = alloc(aud, NULL, 0, NBIO_WRITE_BUF),
                     .crc_on = true,
                     .crc = crc32(0, NULL, 0)};
    if (!w.buf)
        return false;
    write_data(&w, stores, n_stores);
    alloc(aud, w.buf, NBIO_WRITE_BUF, 0);
    *crc = w.crc;
    return true;
}

static void write_file(nbio_writer *w, const nb_model *const *stores, int n_stores,
                       const text *header)
{
    unsigned char b[8];
    nbio_le_put(b, header->len, 8);
    nbio_bytes(w, b, 8);
    nbio_bytes(w, header->p, header->len);
    write_data(w, stores, n_stores);
}

/* What nb_safetensors_save writes, for nbio_save. */
typedef struct save_job {
    const nb_model *const *stores;
    int n_stores;
    const text *header;
} save_job;

static void fill(nbio_writer *w, const void *ud)
{
    const save_job *j = ud;
    write_file(w, j->stores, j->n_stores, j->header);
}

nb_status nb_safetensors_save(const char *path, const nb_model *const *stores, int n_stores,
                              const nb_file_opts *o, nb_error *err)
{
    nb_error_clear(err);
    if (!path || (!stores && n_stores > 0))
        return st_error(err, NB_ERR_NULL, -1, NULL, "save: %s is NULL",
                        !path ? "the path" : "the list of stores");
    if (n_stores < 0)
        return st_error(err, NB_ERR_ARG, -1, NULL, "save: %d stores", n_stores);
    for (int i = 0; i < n_stores; i++)
        if (!stores[i])
            return st_error(err, NB_ERR_NULL, -1, NULL, "save: store %d of %d is NULL", i,
                            n_stores);
    nb_file_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    nb_alloc_fn alloc = o->alloc ? o->alloc : nb_default_alloc;
    void *aud = o->alloc ? o->alloc_ud : NULL;

    size_t meta_len = o->meta ? strnlen(o->meta, (size_t)NB_META_MAX + 1) : 0;
    if (meta_len > 0) {
        size_t at;
        char why[200];
        if (!nbc_meta_check(o->meta, meta_len, &at, why, sizeof why))
            return st_error(err, NB_ERR_ARG, -1, NULL, "save: %s", why);
        if (meta_len > 0 && o->meta[meta_len - 1] == '\n')
            meta_len--; /* a final line break ends the last line */
        for (const char *p = o->meta; p < o->meta + meta_len;) {
            if (!strncmp(p, CRC_PREFIX, strlen(CRC_PREFIX)))
                return st_error(err, NB_ERR_ARG, (int64_t)(p - o->meta), NULL,
                                "save: the metadata key '%.60s' begins with \"" CRC_PREFIX
                                "\", which the file format keeps for its CRC-32s",
                                p);
            const char *nl = memchr(p, '\n', (size_t)(o->meta + meta_len - p));
            p = nl ? nl + 1 : o->meta + meta_len;
        }
    }
    for (int i = 0; i < n_stores; i++)
        for (nb_tensor *p = nb_model_next(stores[i], NULL); p; p = nb_model_next(stores[i], p)) {
            const char *name = nb_tensor_name(p);
            size_t len = strlen(name);
            if (len == 0 || len > NAME_MAX_LEN || !utf8_ok(name, len) || !strcmp(name, META_KEY))
                return st_error(err, NB_ERR_ARG, -1, name,
                                "save: tensor name '%s' cannot be stored (it must be 1 to %u "
                                "bytes of UTF-8 and not \"" META_KEY "\")",
                                name, NAME_MAX_LEN);
            for (int j = 0; j < i; j++)
                if (nb_model_get(stores[j], name))
                    return st_error(err, NB_ERR_EXISTS, -1, name,
                                    "save: tensor name '%s' is in store %d and in store %d", name,
                                    j, i);
        }

    unsigned long dcrc = 0;
    if (!data_crc(stores, n_stores, alloc, aud, &dcrc))
        return st_error(err, NB_ERR_NOMEM, -1, NULL, "save: out of memory");
    text header = {.alloc = alloc, .ud = aud};
    size_t crc_at = 0;
    header_json(&header, stores, n_stores, o->meta ? o->meta : "", meta_len, dcrc, &crc_at);
    if (!header.failed) {
        unsigned char b[8];
        nbio_le_put(b, header.len, 8);
        unsigned long hcrc = crc_bytes(crc32(0, b, 8), (const unsigned char *)header.p, header.len);
        char hex[9];
        snprintf(hex, sizeof hex, "%08lx", hcrc);
        memcpy(header.p + crc_at, hex, 8);
    }
    save_job job = {stores, n_stores, &header};
    char why[512] = "out of memory";
    nb_status st = header.failed ? NB_ERR_NOMEM : nbio_save(path, o, fill, &job, why, sizeof why);
    if (st != NB_OK)
        st_error(err, st, -1, NULL, "save: %s", why);
    if (header.p)
        alloc(aud, header.p, header.cap, 0);
    return st;
}

nb_status nb_model_save_safetensors(const nb_model *m, const char *path, const nb_file_opts *o,
                                    nb_error *err)
{
    if (!m) {
        nb_error_clear(err);
        return st_error(err, NB_ERR_NULL, -1, NULL, "save: the model is NULL");
    }
    return nb_safetensors_save(path, &m, 1, o, err);
}

/* ================================================================ reading */

typedef struct entry {
    const char *name; /* decoded, NUL-terminated (in the loader's string store) */
    size_t at;        /* offset in the file of the name's opening quote */
    nb_dtype dtype;
    int rank;
    int64_t shape[NB_MAX_RANK];
    uint64_t begin, end; /* data_offsets */
    nb_tensor *param;
} entry;

typedef struct loader {
    nb_error *err;
    nb_alloc_fn alloc;
    void *aud;
    unsigned char *file;
    size_t size;
    const unsigned char *s; /* the header: s[0..n), at file offset 8 */
    size_t n, pos;
    char *strs; /* decoded strings, n + 1 bytes (a string never grows when decoded) */
    size_t strs_used;
    entry *ents;
    size_t n_ents, ents_cap;
    entry **order; /* by name, then by data offset (never NULL once the header is parsed) */
    size_t order_bytes;
    char *meta; /* metadata as key=value text */
    size_t meta_len, meta_cap;
    size_t meta_bad; /* offset of the first entry not representable as key=value text, or 0 */
    char meta_why[120];
    /* the metadata's keys (decoded, kept in strs) and where each starts, to
     * find one twice by sorting */
    struct mkey {
        const char *key;
        size_t at;
    } *mkeys;
    size_t n_mkeys, mkeys_cap;
    /* the CRC-32 entries: value, and for the header's where its 8 digits are */
    bool has_hcrc, has_dcrc;
    unsigned long hcrc, dcrc;
    size_t hcrc_at; /* in the header s[] */
} loader;

#define AT(L) ((int64_t)(8 + (L)->pos))

static nb_status bad(loader *L, const char *name, const char *fmt, ...) NB_PRINTF(3, 4);
static nb_status bad(loader *L, const char *name, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_error(L->err, NB_ERR_PARSE, AT(L), name, "load: header byte %lld: %s",
                    (long long)AT(L), msg);
}

static void ws(loader *L)
{
    while (L->pos < L->n && (L->s[L->pos] == ' ' || L->s[L->pos] == '\t' || L->s[L->pos] == '\n' ||
                             L->s[L->pos] == '\r'))
        L->pos++;
}

/* What is at the current position, for messages. */
static const char *seen(loader *L, char *buf, size_t n)
{
    if (L->pos >= L->n)
        return "the end of the header";
    unsigned char c = L->s[L->pos];
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

static nb_status expect(loader *L, char c, const char *what, const char *name)
{
    ws(L);
    if (L->pos < L->n && L->s[L->pos] == (unsigned char)c) {
        L->pos++;
        return NB_OK;
    }
    char buf[16];
    return bad(L, name, "expected %s, found %s", what, seen(L, buf, sizeof buf));
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s[pos..]. */
static bool hex4(loader *L, size_t pos, uint32_t *out)
{
    if (L->n - pos < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(L->s[pos + (size_t)i]);
        if (h < 0)
            return false;
        v = v << 4 | (uint32_t)h;
    }
    *out = v;
    return true;
}

/* A JSON string, decoded into the string store: *out NUL-terminated, *len bytes. */
static nb_status string(loader *L, const char **out, size_t *len, const char *what,
                        const char *name)
{
    ws(L);
    if (L->pos >= L->n || L->s[L->pos] != '"') {
        char buf[16];
        return bad(L, name, "expected %s (a string), found %s", what, seen(L, buf, sizeof buf));
    }
    size_t start = L->pos++;
    char *d = L->strs + L->strs_used;
    size_t k = 0;
    for (;;) {
        if (L->pos >= L->n) {
            L->pos = start;
            return bad(L, name, "%s: the string is not closed", what);
        }
        unsigned char c = L->s[L->pos];
        if (c == '"') {
            L->pos++;
            break;
        }
        if (c < 0x20)
            return bad(L, name, "%s: control byte 0x%02x inside a string (escape it)", what, c);
        if (c != '\\') {
            size_t q = nbc_utf8_seq(L->s + L->pos, L->n - L->pos);
            if (q == 0)
                return bad(L, name, "%s: the string is not valid UTF-8", what);
            memcpy(d + k, L->s + L->pos, q);
            k += q;
            L->pos += q;
            continue;
        }
        if (L->pos + 1 >= L->n)
            return bad(L, name, "%s: the string ends inside an escape", what);
        unsigned char e = L->s[L->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char val[] = "\"\\/\b\f\n\r\t";
            d[k++] = val[simple - "\"\\/bfnrt"];
            L->pos += 2;
            continue;
        }
        if (e != 'u')
            return bad(L, name, "%s: unknown escape '\\%c'", what, e >= 0x20 && e < 0x7f ? e : '?');
        uint32_t cp;
        if (!hex4(L, L->pos + 2, &cp))
            return bad(L, name, "%s: \\u must be followed by four hex digits", what);
        size_t used = 6;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return bad(L, name, "%s: \\u%04x is a lone low surrogate", what, (unsigned)cp);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (L->n - L->pos < 12 || L->s[L->pos + 6] != '\\' || L->s[L->pos + 7] != 'u' ||
                !hex4(L, L->pos + 8, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return bad(L, name, "%s: \\u%04x is a high surrogate without its low half", what,
                           (unsigned)cp);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            used = 12;
        }
        if (cp == 0)
            return bad(L, name, "%s: \\u0000 (a NUL character) is not allowed", what);
        /* UTF-8: never longer than the escape it came from */
        if (cp < 0x80) {
            d[k++] = (char)cp;
        } else if (cp < 0x800) {
            d[k++] = (char)(0xc0 | cp >> 6);
            d[k++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            d[k++] = (char)(0xe0 | cp >> 12);
            d[k++] = (char)(0x80 | (cp >> 6 & 0x3f));
            d[k++] = (char)(0x80 | (cp & 0x3f));
        } else {
            d[k++] = (char)(0xf0 | cp >> 18);
            d[k++] = (char)(0x80 | (cp >> 12 & 0x3f));
            d[k++] = (char)(0x80 | (cp >> 6 & 0x3f));
            d[k++] = (char)(0x80 | (cp & 0x3f));
        }
        L->pos += used;
    }
    d[k] = '\0';
    L->strs_used += k + 1;
    *out = d;
    *len = k;
    return NB_OK;
}

/* A non-negative JSON integer without sign, fraction, exponent or leading zeros. */
static nb_status number(loader *L, uint64_t *out, const char *what, const char *name)
{
    ws(L);
    if (L->pos < L->n && L->s[L->pos] == '-')
        return bad(L, name, "%s: negative numbers are not allowed", what);
    if (L->pos >= L->n || L->s[L->pos] < '0' || L->s[L->pos] > '9') {
        char buf[16];
        return bad(L, name, "%s: expected a non-negative integer, found %s", what,
                   seen(L, buf, sizeof buf));
    }
    size_t start = L->pos;
    uint64_t v = 0;
    while (L->pos < L->n && L->s[L->pos] >= '0' && L->s[L->pos] <= '9') {
        unsigned d = L->s[L->pos] - '0';
        if (v > (UINT64_MAX - d) / 10) {
            L->pos = start;
            return bad(L, name, "%s: the number does not fit in 64 bits", what);
        }
        v = v * 10 + d;
        L->pos++;
    }
    if (L->pos - start > 1 && L->s[start] == '0') {
        L->pos = start;
        return bad(L, name, "%s: numbers must not have leading zeros", what);
    }
    if (L->pos < L->n && (L->s[L->pos] == '.' || L->s[L->pos] == 'e' || L->s[L->pos] == 'E'))
        return bad(L, name, "%s: expected an integer, found a fraction or exponent", what);
    *out = v;
    return NB_OK;
}

/* ',' (true: another element follows) or the closing bracket (false). */
static nb_status next_or_close(loader *L, char close, bool *more, const char *what,
                               const char *name)
{
    ws(L);
    if (L->pos < L->n && L->s[L->pos] == ',') {
        L->pos++;
        *more = true;
        return NB_OK;
    }
    if (L->pos < L->n && L->s[L->pos] == (unsigned char)close) {
        L->pos++;
        *more = false;
        return NB_OK;
    }
    char buf[16];
    return bad(L, name, "%s: expected ',' or '%c', found %s", what, close,
               seen(L, buf, sizeof buf));
}

static bool is_known_dtype(const char *s)
{
    static const char *const others[] = {
        "F16",  "BF16", "F8_E4M3", "F8_E5M2",     "F8_E8M0",     "F6_E2M3",  "F6_E3M2", "F4",
        "I8",   "I16",  "I32",     "I64",         "U8",          "U16",      "U32",     "U64",
        "BOOL", "C64",  "C128",    "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E4M3FN"};
    for (size_t i = 0; i < sizeof others / sizeof *others; i++)
        if (!strcmp(s, others[i]))
            return true;
    return false;
}

static nb_status dtype_field(loader *L, entry *e)
{
    size_t at = L->pos, len;
    const char *s;
    nb_status st = string(L, &s, &len, "dtype", e->name);
    if (st != NB_OK)
        return st;
    if (!strcmp(s, "F32")) {
        e->dtype = NB_F32;
    } else if (!strcmp(s, "F64")) {
        e->dtype = NB_F64;
    } else {
        L->pos = at;
        ws(L);
        if (is_known_dtype(s))
            return st_error(L->err, NB_ERR_DTYPE, AT(L), e->name,
                            "load: tensor '%s' (header byte %lld) has dtype %s; nabla reads F32 "
                            "and F64 only (convert the file first)",
                            e->name, (long long)AT(L), s);
        return bad(L, e->name, "tensor '%s': unknown dtype \"%.40s\"", e->name, s);
    }
    return NB_OK;
}

static nb_status shape_field(loader *L, entry *e)
{
    nb_status st = expect(L, '[', "'[' opening the shape", e->name);
    if (st != NB_OK)
        return st;
    ws(L);
    e->rank = 0;
    if (L->pos < L->n && L->s[L->pos] == ']') {
        L->pos++;
        return NB_OK;
    }
    int64_t size = 1;
    for (bool more = true; more;) {
        if (e->rank == NB_MAX_RANK)
            return bad(L, e->name, "tensor '%s': more than %d axes", e->name, NB_MAX_RANK);
        uint64_t d;
        size_t at = L->pos;
        st = number(L, &d, "shape", e->name);
        if (st != NB_OK)
            return st;
        if (d > (uint64_t)INT64_MAX || !nbc_count_axis(&size, (int64_t)d)) {
            L->pos = at;
            ws(L);
            return bad(L, e->name, "tensor '%s': the shape's element count overflows", e->name);
        }
        e->shape[e->rank++] = (int64_t)d;
        st = next_or_close(L, ']', &more, "shape", e->name);
        if (st != NB_OK)
            return st;
    }
    return NB_OK;
}

static nb_status offsets_field(loader *L, entry *e)
{
    nb_status st = expect(L, '[', "'[' opening data_offsets", e->name);
    if (st == NB_OK)
        st = number(L, &e->begin, "data_offsets", e->name);
    if (st == NB_OK)
        st = expect(L, ',', "',' between the two data_offsets", e->name);
    if (st == NB_OK)
        st = number(L, &e->end, "data_offsets", e->name);
    if (st == NB_OK)
        st = expect(L, ']', "']': data_offsets holds exactly two numbers", e->name);
    if (st == NB_OK && e->begin > e->end)
        return bad(L, e->name, "tensor '%s': data_offsets [%llu, %llu] end before they begin",
                   e->name, (unsigned long long)e->begin, (unsigned long long)e->end);
    return st;
}

static nb_status tensor_object(loader *L, entry *e)
{
    nb_status st = expect(L, '{', "'{' opening the tensor's description", e->name);
    if (st != NB_OK)
        return st;
    bool have[3] = {false, false, false};
    static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
    ws(L);
    if (L->pos < L->n && L->s[L->pos] == '}')
        return bad(L, e->name,
                   "tensor '%s': the description is empty (needs dtype, shape and "
                   "data_offsets)",
                   e->name);
    for (bool more = true; more;) {
        const char *key;
        size_t len, at = L->pos;
        st = string(L, &key, &len, "a field name", e->name);
        if (st != NB_OK)
            return st;
        L->strs_used -= len + 1; /* field names need not be kept */
        int f = -1;
        for (int k = 0; k < 3; k++)
            if (!strcmp(key, fields[k]))
                f = k;
        if (f < 0 || have[f]) {
            L->pos = at;
            ws(L);
            return bad(L, e->name, "tensor '%s': %s field \"%.40s\"", e->name,
                       f < 0 ? "unknown" : "repeated", key);
        }
        have[f] = true;
        st = expect(L, ':', "':'", e->name);
        if (st == NB_OK)
            st = f == 0 ? dtype_field(L, e) : f == 1 ? shape_field(L, e) : offsets_field(L, e);
        if (st == NB_OK)
            st = next_or_close(L, '}', &more, "tensor description", e->name);
        if (st != NB_OK)
            return st;
    }
    for (int k = 0; k < 3; k++)
        if (!have[k])
            return bad(L, e->name, "tensor '%s': the field \"%s\" is missing", e->name, fields[k]);
    return NB_OK;
}

static void meta_append(loader *L, const char *s, size_t n)
{
    memcpy(L->meta + L->meta_len, s, n);
    L->meta_len += n;
}

static int by_key(const void *a, const void *b)
{
    const struct mkey *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

static nb_status metadata_object(loader *L)
{
    nb_status st = expect(L, '{', "'{' opening " META_KEY, NULL);
    if (st != NB_OK)
        return st;
    ws(L);
    if (L->pos < L->n && L->s[L->pos] == '}') {
        L->pos++;
        return NB_OK;
    }
    for (bool more = true; more;) {
        const char *key, *val;
        size_t klen, vlen, at = L->pos, vat = 0;
        st = string(L, &key, &klen, META_KEY " key", NULL);
        if (st == NB_OK)
            st = expect(L, ':', "':'", NULL);
        if (st == NB_OK) {
            ws(L);
            if (L->pos < L->n && L->s[L->pos] != '"')
                return bad(L, NULL, META_KEY " value of \"%.40s\" is not a string", key);
            vat = L->pos + 1;
            st = string(L, &val, &vlen, META_KEY " value", NULL);
        }
        if (st != NB_OK)
            return st;
        if (L->n_mkeys == L->mkeys_cap) {
            size_t cap = L->mkeys_cap ? 2 * L->mkeys_cap : 16;
            struct mkey *q = L->alloc(L->aud, L->mkeys, L->mkeys_cap * sizeof *q, cap * sizeof *q);
            if (!q)
                return st_error(L->err, NB_ERR_NOMEM, -1, NULL, "load: out of memory");
            L->mkeys = q;
            L->mkeys_cap = cap;
        }
        L->mkeys[L->n_mkeys++] = (struct mkey){key, at};
        L->strs_used -= vlen + 1; /* the value's decoded copy need not be kept; the key's is */
        bool is_h = !strcmp(key, CRC_HEADER_KEY), is_d = !strcmp(key, CRC_DATA_KEY);
        if (!is_h && !is_d && !strncmp(key, CRC_PREFIX, strlen(CRC_PREFIX))) {
            /* the prefix is the CRC-32s' (a save refuses it): a damaged name */
            L->pos = at;
            ws(L);
            return bad(L, NULL,
                       "the key \"%.40s\" begins with \"" CRC_PREFIX
                       "\", which only " CRC_HEADER_KEY " and " CRC_DATA_KEY
                       " may: the file is damaged",
                       key);
        }
        if (is_h || is_d) {
            unsigned long v = 0;
            bool ok = vlen == 8 && L->pos - vat == 9; /* 8 digits, no escapes */
            for (size_t i = 0; ok && i < 8; i++) {
                int h = hexval((unsigned char)val[i]);
                ok = h >= 0 && !(val[i] >= 'A' && val[i] <= 'F');
                v = v << 4 | (unsigned long)(h & 15);
            }
            if (!ok || (is_h ? L->has_hcrc : L->has_dcrc)) {
                L->pos = at;
                ws(L);
                return bad(L, NULL, "%s must appear once, as 8 lowercase hex digits", key);
            }
            if (is_h) {
                L->has_hcrc = true, L->hcrc = v, L->hcrc_at = vat;
            } else {
                L->has_dcrc = true, L->dcrc = v;
            }
            st = next_or_close(L, '}', &more, META_KEY, NULL);
            if (st != NB_OK)
                return st;
            continue;
        }
        if (!L->meta_bad) {
            const char *why = NULL;
            if (klen == 0)
                why = "an empty key";
            else if (memchr(key, '=', klen))
                why = "a key holding '='";
            for (size_t i = 0; !why && i < klen + vlen; i++) {
                unsigned char c = (unsigned char)(i < klen ? key[i] : val[i - klen]);
                if (c < 0x20 || c == 0x7f)
                    why = "a control character";
            }
            if (why) {
                L->meta_bad = 8 + at;
                snprintf(L->meta_why, sizeof L->meta_why, "%s (\"%.40s\")", why, key);
            }
        }
        /* "key=value\n": never longer than the JSON it came from */
        if (!L->meta_bad) {
            meta_append(L, key, klen);
            meta_append(L, "=", 1);
            meta_append(L, val, vlen);
            meta_append(L, "\n", 1);
        }
        st = next_or_close(L, '}', &more, META_KEY, NULL);
        if (st != NB_OK)
            return st;
    }
    /* a key twice, found by sorting (a scan of the keys before each one
     * would take quadratic time on a header of many keys) */
    if (L->n_mkeys > 1)
        qsort(L->mkeys, L->n_mkeys, sizeof *L->mkeys, by_key);
    for (size_t i = 1; i < L->n_mkeys; i++)
        if (!strcmp(L->mkeys[i].key, L->mkeys[i - 1].key)) {
            size_t a = L->mkeys[i - 1].at, b = L->mkeys[i].at;
            L->pos = a > b ? a : b;
            ws(L);
            return bad(L, NULL, META_KEY " key \"%.40s\" appears twice", L->mkeys[i].key);
        }
    return NB_OK;
}

/* A new zeroed entry; NULL (and the error) when out of memory. */
static entry *add_entry(loader *L)
{
    if (L->n_ents == L->ents_cap) {
        size_t cap = L->ents_cap ? 2 * L->ents_cap : 16;
        entry *q = L->alloc(L->aud, L->ents, L->ents_cap * sizeof *L->ents, cap * sizeof *q);
        if (!q) {
            st_error(L->err, NB_ERR_NOMEM, -1, NULL, "load: out of memory");
            return NULL;
        }
        L->ents = q;
        L->ents_cap = cap;
    }
    entry *e = &L->ents[L->n_ents++];
    memset(e, 0, sizeof *e);
    return e;
}

static nb_status parse_header(loader *L)
{
    if (L->n == 0 || L->s[0] != '{')
        return bad(L, NULL, "the header must start with '{'");
    L->pos = 1;
    ws(L);
    bool seen_meta = false;
    if (L->pos < L->n && L->s[L->pos] == '}') {
        L->pos++;
    } else {
        for (bool more = true; more;) {
            ws(L);
            size_t at = L->pos;
            const char *key;
            size_t len;
            nb_status st = string(L, &key, &len, "a tensor name", NULL);
            if (st != NB_OK)
                return st;
            if (!strcmp(key, META_KEY)) {
                if (seen_meta) {
                    L->pos = at;
                    return bad(L, NULL, META_KEY " appears twice");
                }
                seen_meta = true;
                L->strs_used -= len + 1;
                st = expect(L, ':', "':'", NULL);
                if (st == NB_OK)
                    st = metadata_object(L);
            } else {
                if (len == 0 || len > NAME_MAX_LEN) {
                    L->pos = at;
                    return bad(L, NULL, "a tensor name must be 1 to %u bytes long", NAME_MAX_LEN);
                }
                entry *e = add_entry(L);
                if (!e)
                    return NB_ERR_NOMEM;
                e->name = key;
                e->at = 8 + at;
                st = expect(L, ':', "':'", key);
                if (st == NB_OK)
                    st = tensor_object(L, e);
            }
            if (st == NB_OK)
                st = next_or_close(L, '}', &more, "the header", NULL);
            if (st != NB_OK)
                return st;
        }
    }
    ws(L);
    if (L->pos != L->n)
        return bad(L, NULL,
                   "unexpected bytes after the header's closing '}' (only spaces may pad "
                   "it)");
    return NB_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(entry *const *)a)->name, (*(entry *const *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* Names unique, byte counts right, data regions tiling [0, data size). */
static nb_status check_layout(loader *L)
{
    size_t data_at = 8 + L->n;
    uint64_t data = L->size - data_at;
    for (size_t i = 0; i < L->n_ents; i++) {
        entry *e = &L->ents[i];
        int64_t count = 1;
        for (int k = 0; k < e->rank; k++)
            count *= e->shape[k]; /* checked for overflow by shape_field */
        uint64_t bytes = (uint64_t)count, esize = nb_dtype_size(e->dtype);
        if (bytes > UINT64_MAX / esize || (bytes *= esize) != e->end - e->begin) {
            char sh[96];
            return st_error(L->err, NB_ERR_PARSE, (int64_t)e->at, e->name,
                            "load: tensor '%s' (header byte %zu): shape %s of %s needs %llu "
                            "bytes, data_offsets [%llu, %llu] give %llu",
                            e->name, e->at, nb_shape_str(e->rank, e->shape, sh, sizeof sh),
                            e->dtype == NB_F32 ? "F32" : "F64",
                            (unsigned long long)(bytes <= UINT64_MAX / esize ? bytes : 0),
                            (unsigned long long)e->begin, (unsigned long long)e->end,
                            (unsigned long long)(e->end - e->begin));
        }
        if (e->end > data)
            return st_error(L->err, NB_ERR_PARSE, (int64_t)e->at, e->name,
                            "load: tensor '%s' (header byte %zu): data_offsets [%llu, %llu] run "
                            "past the end of the file (%llu data bytes from offset %zu)",
                            e->name, e->at, (unsigned long long)e->begin,
                            (unsigned long long)e->end, (unsigned long long)data, data_at);
        L->order[i] = e;
    }
    if (L->n_ents > 1)
        qsort(L->order, L->n_ents, sizeof *L->order, by_name);
    for (size_t i = 1; i < L->n_ents; i++)
        if (!strcmp(L->order[i]->name, L->order[i - 1]->name)) {
            const entry *x = L->order[i - 1], *y = L->order[i];
            size_t a = x->at < y->at ? x->at : y->at, b = x->at < y->at ? y->at : x->at;
            return st_error(L->err, NB_ERR_EXISTS, (int64_t)b, y->name,
                            "load: tensor '%s' appears twice (header bytes %zu and %zu)", y->name,
                            a, b);
        }
    entry **sorted = L->order + L->n_ents; /* second half: by offset */
    memcpy(sorted, L->order, L->n_ents * sizeof *sorted);
    if (L->n_ents > 1)
        qsort(sorted, L->n_ents, sizeof *sorted, by_offset);
    uint64_t covered = 0;
    const entry *prev = NULL;
    for (size_t i = 0; i < L->n_ents; i++) {
        const entry *e = sorted[i];
        if (e->begin < covered)
            return st_error(L->err, NB_ERR_PARSE, (int64_t)e->at, e->name,
                            "load: the data of tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) "
                            "overlap",
                            prev->name, (unsigned long long)prev->begin,
                            (unsigned long long)prev->end, e->name, (unsigned long long)e->begin,
                            (unsigned long long)e->end);
        if (e->begin > covered)
            return st_error(L->err, NB_ERR_PARSE, (int64_t)(data_at + covered), e->name,
                            "load: data bytes [%llu, %llu) before tensor '%s' belong to no tensor",
                            (unsigned long long)covered, (unsigned long long)e->begin, e->name);
        covered = e->end;
        prev = e;
    }
    if (covered != data)
        return st_error(L->err, NB_ERR_PARSE, (int64_t)(data_at + covered), NULL,
                        "load: %llu data bytes at the end of the file (offset %llu) belong to no "
                        "tensor",
                        (unsigned long long)(data - covered),
                        (unsigned long long)(data_at + covered));
    return NB_OK;
}

static entry *find_entry(loader *L, const char *name)
{
    entry key = {.name = name};
    entry *kp = &key;
    entry **hit = bsearch(&kp, L->order, L->n_ents, sizeof *L->order, by_name);
    return hit ? *hit : NULL;
}

static nb_status match_model(loader *L, nb_model *m)
{
    char a[96], b[96];
    for (size_t i = 0; i < L->n_ents; i++) {
        entry *e = &L->ents[i];
        e->param = nb_model_get(m, e->name);
        if (!e->param)
            return st_error(L->err, NB_ERR_NOTFOUND, (int64_t)e->at, e->name,
                            "load: tensor '%s' (header byte %zu) is not in the model", e->name,
                            e->at);
        if (nb_tensor_dtype(e->param) != e->dtype)
            return st_error(L->err, NB_ERR_DTYPE, (int64_t)e->at, e->name,
                            "load: tensor '%s' (header byte %zu) is %s in the file, %s in the "
                            "model",
                            e->name, e->at, e->dtype == NB_F32 ? "F32" : "F64",
                            nb_dtype_name(nb_tensor_dtype(e->param)));
        bool same = nb_tensor_rank(e->param) == e->rank;
        for (int k = 0; same && k < e->rank; k++)
            same = nb_tensor_shape(e->param)[k] == e->shape[k];
        if (!same)
            return st_error(
                L->err, NB_ERR_SHAPE, (int64_t)e->at, e->name,
                "load: tensor '%s' (header byte %zu) has shape %s in the file, %s in the model",
                e->name, e->at, nb_shape_str(e->rank, e->shape, a, sizeof a),
                nb_shape_str(nb_tensor_rank(e->param), nb_tensor_shape(e->param), b, sizeof b));
    }
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        if (!find_entry(L, nb_tensor_name(p)))
            return st_error(L->err, NB_ERR_NOTFOUND, -1, nb_tensor_name(p),
                            "load: the model's tensor '%s' is not in the file", nb_tensor_name(p));
    return NB_OK;
}

static nb_status read_file(loader *L, const char *path)
{
    void *b = NULL;
    char why[512];
    nb_status st = nbio_read_all(path, L->alloc, L->aud, &b, &L->size, why, sizeof why);
    if (st != NB_OK)
        return st_error(L->err, st, -1, NULL, "load: %s", why);
    L->file = b;
    return NB_OK;
}

/* The CRC-32s, when the file has them (required: it must). */
static nb_status check_crcs(loader *L, bool required)
{
    /* one without the other is a damaged name of the other */
    if ((required || L->has_hcrc || L->has_dcrc) && !(L->has_hcrc && L->has_dcrc))
        return st_error(L->err, NB_ERR_PARSE, 8, NULL,
                        "load: the header has %s " CRC_HEADER_KEY " and %s " CRC_DATA_KEY
                        " in " META_KEY " (a file nabla writes has both): %s",
                        L->has_hcrc ? "a" : "no", L->has_dcrc ? "a" : "no",
                        L->has_hcrc || L->has_dcrc ? "the file is damaged"
                                                   : "not a file nabla wrote, or a damaged one");
    if (L->has_hcrc) {
        unsigned long c = crc_bytes(crc32(0, L->file, 8), L->s, L->hcrc_at);
        c = crc32(c, (const unsigned char *)"00000000", 8);
        c = crc_bytes(c, L->s + L->hcrc_at + 8, L->n - L->hcrc_at - 8);
        if (c != L->hcrc)
            return st_error(L->err, NB_ERR_PARSE, 0, NULL,
                            "load: the header (bytes 0..%zu) has CRC-32 %08lx, but " CRC_HEADER_KEY
                            " (byte %zu) says %08lx: the file is damaged",
                            L->n + 7, c, 8 + L->hcrc_at, L->hcrc);
    }
    if (L->has_dcrc) {
        unsigned long c = crc_bytes(crc32(0, NULL, 0), L->file + 8 + L->n, L->size - 8 - L->n);
        if (c != L->dcrc)
            return st_error(L->err, NB_ERR_PARSE, (int64_t)(8 + L->n), NULL,
                            "load: the data (bytes %zu..%zu) has CRC-32 %08lx, but " CRC_DATA_KEY
                            " says %08lx: the file is damaged",
                            8 + L->n, L->size - 1, c, L->dcrc);
    }
    return NB_OK;
}

/* Read and check the whole file (everything but the model). */
static nb_status load_checked(loader *L, const char *path, bool require_crc)
{
    nb_status st = read_file(L, path);
    if (st != NB_OK)
        return st;
    if (L->size < 8)
        return st_error(L->err, NB_ERR_PARSE, (int64_t)L->size, NULL,
                        "load: the file is %zu bytes, shorter than the 8-byte header length",
                        L->size);
    uint64_t n = nbio_le_get(L->file, 8);
    if (!memcmp(L->file, "NABLACKP", 8))
        return st_error(L->err, NB_ERR_PARSE, 0, NULL,
                        "load: the file is a checkpoint of nabla's first format (magic NABLACKP), "
                        "which this version no longer reads: load it with the version that wrote "
                        "it and save it again, or train again");
    if (n > NB_SAFETENSORS_HEADER_MAX)
        return st_error(L->err, NB_ERR_PARSE, 0, NULL,
                        "load: header length %llu (bytes 0..7) is above the limit of %u bytes: "
                        "not a safetensors file, or a damaged one",
                        (unsigned long long)n, NB_SAFETENSORS_HEADER_MAX);
    if (n > L->size - 8)
        return st_error(L->err, NB_ERR_PARSE, 0, NULL,
                        "load: header length %llu (bytes 0..7) runs past the end of the %zu-byte "
                        "file",
                        (unsigned long long)n, L->size);
    L->s = L->file + 8;
    L->n = (size_t)n;
    L->strs = L->alloc(L->aud, NULL, 0, L->n + 1);
    L->meta_cap = L->n + 2;
    L->meta = L->alloc(L->aud, NULL, 0, L->meta_cap);
    if (!L->strs || !L->meta)
        return st_error(L->err, NB_ERR_NOMEM, -1, NULL, "load: out of memory");
    st = parse_header(L);
    if (st != NB_OK)
        return st;
    /* room for two orders of the entries; a file of no tensors gets a
     * block too, so the sorting and searching never see a NULL array */
    L->order_bytes = (L->n_ents > 0 ? 2 * L->n_ents : 1) * sizeof *L->order;
    L->order = L->alloc(L->aud, NULL, 0, L->order_bytes);
    if (!L->order)
        return st_error(L->err, NB_ERR_NOMEM, -1, NULL, "load: out of memory");
    st = check_layout(L);
    return st == NB_OK ? check_crcs(L, require_crc) : st;
}

/* The metadata into o->meta_out (checked before anything changes). */
static nb_status meta_room(loader *L, const nb_file_opts *o)
{
    if (!o->meta_out)
        return NB_OK;
    if (L->meta_bad)
        return st_error(L->err, NB_ERR_ARG, (int64_t)L->meta_bad, NULL,
                        "load: " META_KEY " at byte %zu holds %s, which key=value metadata "
                        "cannot represent",
                        L->meta_bad, L->meta_why);
    if (L->meta_len > 0)
        L->meta_len--; /* no final '\n' */
    if (L->meta_len > NB_META_MAX)
        return st_error(L->err, NB_ERR_ARG, -1, NULL,
                        "load: the metadata is %zu bytes of text, more than %d", L->meta_len,
                        NB_META_MAX);
    size_t at;
    char why[200];
    if (!nbc_meta_check(L->meta, L->meta_len, &at, why, sizeof why))
        return st_error(L->err, NB_ERR_ARG, -1, NULL, "load: " META_KEY ": %s", why);
    if (o->meta_cap < L->meta_len + 1)
        return st_error(L->err, NB_ERR_ARG, -1, NULL,
                        "load: the metadata is %zu bytes; meta_out holds %zu (needs %zu)",
                        L->meta_len, o->meta_cap, L->meta_len + 1);
    return NB_OK;
}

static void commit(loader *L)
{
    const unsigned char *data = L->file + 8 + L->n;
    for (size_t i = 0; i < L->n_ents; i++) {
        entry *e = &L->ents[i];
        const unsigned char *p = data + e->begin;
        int64_t count = nb_tensor_size(e->param);
        if (e->dtype == NB_F32) {
            float *x = nb_tensor_f32(e->param);
            for (int64_t k = 0; k < count; k++) {
                uint32_t u = (uint32_t)nbio_le_get(p + 4 * k, 4);
                memcpy(&x[k], &u, 4);
            }
        } else {
            double *x = nb_tensor_f64(e->param);
            for (int64_t k = 0; k < count; k++) {
                uint64_t u = nbio_le_get(p + 8 * k, 8);
                memcpy(&x[k], &u, 8);
            }
        }
    }
}

/* A new store holding a tensor for every entry (the entries' params). */
static nb_status make_store(loader *L, nb_model **out)
{
    nb_model *m = nb_model_new_alloc(L->alloc, L->aud);
    nb_status st = m ? NB_OK : NB_ERR_NOMEM;
    for (size_t i = 0; st == NB_OK && i < L->n_ents; i++) {
        entry *e = &L->ents[i];
        st = nb_model_add(m, e->name, e->dtype, e->rank, e->shape, &e->param);
    }
    if (st != NB_OK) {
        nb_model_free(m);
        return st_error(L->err, st, -1, NULL, "load: making the store: %s", nb_status_str(st));
    }
    *out = m;
    return NB_OK;
}

static nb_status run(nb_model *m, nb_model **fresh, const char *path, nb_tensor_info_fn fn,
                     void *ud, const nb_file_opts *o, nb_error *err)
{
    nb_file_opts def;
    memset(&def, 0, sizeof def);
    if (!o)
        o = &def;
    loader L;
    memset(&L, 0, sizeof L);
    L.err = err;
    L.alloc = o->alloc ? o->alloc : nb_default_alloc;
    L.aud = o->alloc ? o->alloc_ud : NULL;
    nb_status st = load_checked(&L, path, o->require_crc);
    if (st == NB_OK && m)
        st = match_model(&L, m);
    if (st == NB_OK)
        st = meta_room(&L, o);
    for (size_t i = 0; st == NB_OK && fn && i < L.n_ents; i++) {
        const entry *e = &L.ents[i];
        st = fn(ud, e->name, e->dtype, e->rank, e->shape);
        if (st != NB_OK)
            st_error(err, st, (int64_t)e->at, e->name,
                     "list: stopped at tensor '%s' (header byte %zu): %s", e->name, e->at,
                     nb_status_str(st));
    }
    if (st == NB_OK && fresh)
        st = make_store(&L, fresh);
    if (st == NB_OK) {
        if (m || fresh)
            commit(&L);
        if (o->meta_out) {
            memcpy(o->meta_out, L.meta, L.meta_len);
            o->meta_out[L.meta_len] = '\0';
        }
    }
    if (L.file)
        L.alloc(L.aud, L.file, L.size, 0);
    if (L.strs)
        L.alloc(L.aud, L.strs, L.n + 1, 0);
    if (L.meta)
        L.alloc(L.aud, L.meta, L.meta_cap, 0);
    if (L.ents)
        L.alloc(L.aud, L.ents, L.ents_cap * sizeof *L.ents, 0);
    if (L.order)
        L.alloc(L.aud, L.order, L.order_bytes, 0);
    if (L.mkeys)
        L.alloc(L.aud, L.mkeys, L.mkeys_cap * sizeof *L.mkeys, 0);
    return st;
}

nb_status nb_model_load_safetensors(nb_model *m, const char *path, const nb_file_opts *o,
                                    nb_error *err)
{
    nb_error_clear(err);
    if (!m || !path)
        return st_error(err, NB_ERR_NULL, -1, NULL, "load: %s is NULL",
                        !m ? "the model" : "the path");
    return run(m, NULL, path, NULL, NULL, o, err);
}

nb_status nb_safetensors_read(const char *path, nb_model **out, const nb_file_opts *o,
                              nb_error *err)
{
    nb_error_clear(err);
    if (out)
        *out = NULL;
    if (!out || !path)
        return st_error(err, NB_ERR_NULL, -1, NULL, "read: %s is NULL",
                        !out ? "the output pointer" : "the path");
    return run(NULL, out, path, NULL, NULL, o, err);
}

nb_status nb_safetensors_list(const char *path, nb_tensor_info_fn fn, void *ud,
                              const nb_file_opts *o, nb_error *err)
{
    nb_error_clear(err);
    if (!path)
        return st_error(err, NB_ERR_NULL, -1, NULL, "list: the path is NULL");
    return run(NULL, NULL, path, fn, ud, o, err);
}
