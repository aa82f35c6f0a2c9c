/* Buffered writing with an optional running CRC-32, shared by the file
 * formats. */

#include <errno.h>
#include <string.h>
#include <zlib.h>

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
