/* Buffered writing with an optional running CRC-32, and the writing of a
 * whole file, shared by the file formats. */

#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "file.h"
#include "io_internal.h"

size_t nbio_default_write(void *ud, FILE *f, const void *data, size_t n)
{
    (void)ud;
    return fwrite(data, 1, n, f);
}

void nbio_flush(nbio_writer *w)
{
    if (w->crc_on && w->used > w->crc_mark)
        w->crc = crc32(w->crc, w->buf + w->crc_mark, (uInt)(w->used - w->crc_mark));
    w->crc_mark = 0;
    if (!w->failed && w->used > 0) {
        errno = 0;
        if (w->write(w->ud, w->f, w->buf, w->used) != w->used) {
            w->failed = true;
            w->err_no = errno ? errno : EIO;
        }
    }
    w->used = 0;
}

void nbio_bytes(nbio_writer *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        if (w->used == NBIO_WRITE_BUF)
            nbio_flush(w);
        size_t k = NBIO_WRITE_BUF - w->used < n ? NBIO_WRITE_BUF - w->used : n;
        memcpy(w->buf + w->used, p, k);
        w->used += k;
        p += k;
        n -= k;
    }
}

nb_status nbio_save(const char *path, const nb_file_opts *o,
                    void (*fill)(nbio_writer *w, const void *ud), const void *ud, char *why,
                    size_t n)
{
    nb_alloc_fn alloc = o->alloc ? o->alloc : nb_default_alloc;
    void *aud = o->alloc ? o->alloc_ud : NULL;
    nbio_out *out = NULL;
    nb_status st = nbio_out_open(path, alloc, aud, &out, why, n);
    if (st != NB_OK)
        return st;
    nbio_writer w = {.f = nbio_out_file(out),
                     .write = o->write ? o->write : nbio_default_write,
                     .ud = o->write_ud,
                     .buf = alloc(aud, NULL, 0, NBIO_WRITE_BUF)};
    if (!w.buf) {
        nbio_out_commit(out, ENOMEM, why, n); /* removes the temporary */
        snprintf(why, n, "out of memory");
        return NB_ERR_NOMEM;
    }
    fill(&w, ud);
    alloc(aud, w.buf, NBIO_WRITE_BUF, 0);
    return nbio_out_commit(out, w.failed ? w.err_no : 0, why, n);
}
