/* Whole-buffer gzip decompression with zlib, every allocation (zlib's own
 * included) through the caller's hook. */

#include <string.h>

#include <zlib.h>

#include "data_internal.h"

bool nbd_is_gzip(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    return buf && len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

/* zlib's allocator does not pass the size to free, so each block carries
 * its size in a header (16 bytes keeps malloc's alignment). */
#define ZHDR 16

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    const nbd_mem *m = opaque;
    size_t n;
    if (!nbd_mul(items, size, &n) || n > SIZE_MAX - ZHDR)
        return Z_NULL;
    unsigned char *p = nbd_alloc(*m, n + ZHDR);
    if (!p)
        return Z_NULL;
    memcpy(p, &n, sizeof n);
    return p + ZHDR;
}

static void z_free(voidpf opaque, voidpf addr)
{
    const nbd_mem *m = opaque;
    if (!addr)
        return;
    unsigned char *p = (unsigned char *)addr - ZHDR;
    size_t n;
    memcpy(&n, p, sizeof n);
    nbd_free(*m, p, n + ZHDR);
}

nb_status nbd_gunzip(nbd_mem mem, const void *buf, size_t len, size_t max_out, const char *what,
                     void **out, size_t *out_len, size_t *out_cap, nb_error *err)
{
    *out = NULL;
    *out_len = 0;
    *out_cap = 0;
    const unsigned char *in = buf;
    /* first guess of the size: the trailer's ISIZE (size mod 2^32) */
    size_t cap = 1 << 16;
    if (len >= 18) {
        uint32_t isize = (uint32_t)in[len - 4] | (uint32_t)in[len - 3] << 8 |
                         (uint32_t)in[len - 2] << 16 | (uint32_t)in[len - 1] << 24;
        cap = (size_t)isize + 1; /* room to see the end of the stream */
    }
    if (cap > max_out)
        cap = max_out > 0 ? max_out : 1;
    unsigned char *dst = nbd_alloc(mem, cap);
    if (!dst)
        return nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "%s: out of memory decompressing gzip", what);

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    zs.opaque = &mem;
    int zr = inflateInit2(&zs, 16 + MAX_WBITS); /* gzip wrapper only */
    if (zr != Z_OK) {
        nbd_free(mem, dst, cap);
        if (zr == Z_MEM_ERROR)
            return nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "%s: out of memory decompressing gzip",
                            what);
        return nbd_fail(err, NB_ERR_PARSE, 0, 0, -1, "%s: cannot start gzip decompression", what);
    }
    size_t done = 0, consumed = 0;
    nb_status st = NB_OK;
    for (;;) {
        if (done == cap) {
            if (cap >= max_out) {
                st = nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)consumed,
                              "%s: gzip data decompresses to more than %zu bytes", what, max_out);
                break;
            }
            size_t ncap = cap > max_out / 2 ? max_out : cap * 2;
            unsigned char *nd = mem.fn(mem.ud, dst, cap, ncap);
            if (!nd) {
                st = nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "%s: out of memory decompressing gzip",
                              what);
                break;
            }
            dst = nd;
            cap = ncap;
        }
        size_t in_chunk = len - consumed > UINT_MAX ? UINT_MAX : len - consumed;
        size_t out_chunk = cap - done > UINT_MAX ? UINT_MAX : cap - done;
        zs.next_in = (Bytef *)(uintptr_t)(in + consumed);
        zs.avail_in = (uInt)in_chunk;
        zs.next_out = dst + done;
        zs.avail_out = (uInt)out_chunk;
        zr = inflate(&zs, Z_NO_FLUSH);
        consumed += in_chunk - zs.avail_in;
        done += out_chunk - zs.avail_out;
        if (zr == Z_STREAM_END) {
            if (consumed != len)
                st = nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)consumed,
                              "%s: %zu bytes of unexpected data after the end of the gzip "
                              "stream (compressed byte %zu)",
                              what, len - consumed, consumed);
            break;
        }
        if (zr == Z_MEM_ERROR) {
            st =
                nbd_fail(err, NB_ERR_NOMEM, 0, 0, -1, "%s: out of memory decompressing gzip", what);
            break;
        }
        if (zr == Z_DATA_ERROR || zr == Z_NEED_DICT || zr == Z_STREAM_ERROR) {
            st = nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)consumed,
                          "%s: corrupt gzip data near compressed byte %zu: %s", what, consumed,
                          zs.msg ? zs.msg : "invalid stream");
            break;
        }
        if (consumed == len && zs.avail_out > 0) {
            /* all input used, room left, no end of stream: cut short */
            st = nbd_fail(err, NB_ERR_PARSE, 0, 0, (int64_t)consumed,
                          "%s: truncated gzip stream: it ends after %zu compressed bytes "
                          "(%zu bytes decompressed) without its end marker",
                          what, len, done);
            break;
        }
    }
    inflateEnd(&zs);
    if (st != NB_OK) {
        nbd_free(mem, dst, cap);
        return st;
    }
    *out = dst;
    *out_len = done;
    *out_cap = cap;
    return NB_OK;
}
