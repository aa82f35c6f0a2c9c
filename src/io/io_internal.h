/* Internals shared by the file formats (checkpoints, safetensors) and the
 * metadata helpers. Not installed. */
#ifndef NABLA_IO_INTERNAL_H
#define NABLA_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nabla/ckpt.h"

/* Length of the well-formed UTF-8 sequence at s (of n bytes): 1..4, or 0
 * when it is malformed (overlong, a surrogate, above U+10FFFF, cut short). */
size_t nbio_utf8_seq(const unsigned char *s, size_t n);

/* Check metadata text of len bytes against the rules of nb_meta_check. On
 * failure returns false, sets *at to the byte offset of the problem and
 * writes a sentence to why[0..n). */
bool nbio_meta_check(const char *text, size_t len, size_t *at, char *why, size_t n);

/* Little-endian integers of n bytes (the file formats are little-endian
 * whatever the machine). */
static inline void nbio_le_put(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t nbio_le_get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reset an error report to "no error" (err may be NULL). */
static inline void nbio_err_clear(nb_ckpt_error *err)
{
    if (err) {
        err->status = NB_OK;
        err->offset = -1;
        err->name[0] = '\0';
        err->msg[0] = '\0';
    }
}

/* Buffered writing through a caller's write function (tests make it fail
 * part-way), with an optional running CRC-32 over what is written while
 * crc_on is set (bytes of buf before crc_mark are outside it). */
#define NBIO_WRITE_BUF 65536

typedef struct nbio_writer {
    FILE *f;
    size_t (*write)(void *ud, FILE *f, const void *data, size_t n);
    void *ud;
    unsigned char *buf; /* NBIO_WRITE_BUF bytes */
    size_t used;
    size_t crc_mark;
    bool crc_on;
    unsigned long crc;
    bool failed;
    int err_no;
} nbio_writer;

/* fwrite, the default write function. */
size_t nbio_default_write(void *ud, FILE *f, const void *data, size_t n);
/* Write out the buffer (updating the CRC); a failure sets failed and err_no. */
void nbio_flush(nbio_writer *w);
/* Append n bytes, flushing whenever the buffer is full. */
void nbio_bytes(nbio_writer *w, const void *data, size_t n);

/* Atomic replacement of a file: nbio_tmp_open creates a new temporary file
 * beside @p path (mode 0644) and writes its name to tmp, which must hold
 * strlen(path) + 8 bytes; NULL with errno set on failure. nbio_tmp_commit
 * then flushes, fsyncs and closes f and renames tmp over path, or, when
 * @p write_errno is not 0 (the writing failed) or any of that fails,
 * closes f and removes tmp, leaving path as it was. Returns 0 or the errno
 * value of the failure (write_errno when given). */
FILE *nbio_tmp_open(const char *path, char *tmp);
int nbio_tmp_commit(FILE *f, const char *tmp, const char *path, int write_errno);

/* Best effort: fsync the directory holding path, so a rename is durable. */
void nbio_sync_dir(const char *path);

#endif
