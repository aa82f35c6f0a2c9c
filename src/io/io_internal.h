/* Internals shared by the file formats (checkpoints, safetensors) and the
 * metadata helpers. Not installed. */
#ifndef NABLA_IO_INTERNAL_H
#define NABLA_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nabla/ckpt.h"

/* Length of the well-formed UTF-8 sequence at s (of n bytes): 1..4, or 0
 * when it is malformed (overlong, a surrogate, above U+10FFFF, cut short). */
size_t nbio_utf8_seq(const unsigned char *s, size_t n);

/* Check metadata text of len bytes against the rules of nb_meta_check. On
 * failure returns false, sets *at to the byte offset of the problem and
 * writes a sentence to why[0..n). */
bool nbio_meta_check(const char *text, size_t len, size_t *at, char *why, size_t n);

/* Best effort: fsync the directory holding path, so a rename is durable. */
void nbio_sync_dir(const char *path);

#endif
