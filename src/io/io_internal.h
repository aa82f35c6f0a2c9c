/* Internals shared by the file formats (checkpoints, safetensors) and the
 * metadata helpers. Not installed. */
#ifndef NABLA_IO_INTERNAL_H
#define NABLA_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/internal.h"
#include "nabla/safetensors.h"

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

/* Write a file of the formats: @p fill writes everything through the
 * writer it is given (whose write function is o->write, fwrite when NULL),
 * into a file opened by nbio_out_open (file.h) and committed when fill is
 * done, with the writer's buffer from o->alloc. NB_OK, or NB_ERR_NOMEM /
 * NB_ERR_IO with a sentence in why[0..n) ("out of memory", "writing T
 * failed: reason; P is unchanged"); on error @p path is as it was. */
nb_status nbio_save(const char *path, const nb_file_opts *o,
                    void (*fill)(nbio_writer *w, const void *ud), const void *ud, char *why,
                    size_t n);

#endif
