/* Opening files: every file the library and the nabla command read or
 * write goes through these functions, so each path is treated one way.
 * Not installed.
 *
 * Reading: the file is opened without blocking (a FIFO with no writer does
 * not hang the caller), fstat'ed, and refused unless it is a regular file;
 * the sentence names the path and what it is ("is a directory", "is a
 * FIFO", ...). A file that cannot be opened gives errno's text.
 *
 * Writing (nbio_out_open ... nbio_out_commit):
 * - a regular file, or a path where nothing exists yet, is replaced
 *   atomically: the bytes go to a new temporary file in the same
 *   directory, named "<name>.nabla-tmp-XXXXXX" (six letters or digits),
 *   which is flushed, fsynced, renamed over the file, and the directory
 *   fsynced. A failure at any point removes the temporary and leaves the
 *   file as it was. The temporary is locked (flock) until it is renamed.
 *   After a successful replacement, temporaries of the same file left by
 *   an earlier save that was killed (regular files named exactly so, that
 *   no save holds locked, last modified before this save began) are
 *   removed.
 * - replacing makes a new file: a name that was a hard link to another
 *   no longer shares its contents, and a read-only (0444) file is replaced
 *   as the directory allows. A name so long that the temporary's would
 *   pass NAME_MAX (about 238 bytes here) cannot be saved to.
 * - a symbolic link is followed (to any depth, a dangling one included):
 *   the file it points to is replaced, in its own directory, and the link
 *   stays a link.
 * - an existing file keeps its permission bits and, as far as the process
 *   may set them, its owner and its group (a user who may not give the
 *   file to its owner still keeps its group when a member of it); a new
 *   file gets 0666 less the umask.
 * - a character device (/dev/null, a terminal) is written in place, as is a
 *   FIFO that has a reader; a FIFO with no reader is refused at once rather
 *   than waited on; the file opened must be the one examined (a path
 *   swapped for another file meanwhile is refused). Neither is replaced by
 *   a regular file. A FIFO whose reader goes away while it is written
 *   raises SIGPIPE, as any write to it does: the library changes no signal
 *   handling.
 * - a directory, a block device or a socket is refused. */
#ifndef NABLA_IO_FILE_H
#define NABLA_IO_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nabla/base.h"

/* Open @p path for reading (binary). Returns NULL and writes a sentence to
 * why[0..n) (why may be NULL when n is 0) when it cannot be opened or is
 * not a regular file; otherwise the stream, and its size in bytes into
 * *size unless size is NULL. */
FILE *nbio_open_read(const char *path, uint64_t *size, char *why, size_t n);

/* Read the whole regular file at @p path into a block from @p alloc (NULL:
 * nb_default_alloc) of *len bytes, to be freed with alloc(ud, *buf, *len,
 * 0); an empty file gives *buf NULL and *len 0. NB_ERR_IO (cannot open,
 * not a regular file, a read error, or the file changing size while read)
 * or NB_ERR_NOMEM, with a sentence naming @p path in why[0..n). */
nb_status nbio_read_all(const char *path, nb_alloc_fn alloc, void *ud, void **buf, size_t *len,
                        char *why, size_t n);

/* A file being written: see the comment at the top for what is done with
 * each kind of path. */
typedef struct nbio_out nbio_out;

/* Start writing @p path (which must stay valid until the commit). The
 * state is allocated through @p alloc (NULL: nb_default_alloc). Returns
 * NB_OK with *out set, or NB_ERR_NOMEM / NB_ERR_IO with a sentence naming
 * the path in why[0..n) ("P is a directory, ...", "cannot create the
 * temporary file T: reason"). */
nb_status nbio_out_open(const char *path, nb_alloc_fn alloc, void *ud, nbio_out **out, char *why,
                        size_t n);

/* The stream to write to. */
FILE *nbio_out_file(const nbio_out *o);

/* Finish writing and free @p o (NULL: NB_OK). When @p write_errno is not 0
 * (the caller's writing failed) or flushing, syncing or renaming fails, the
 * temporary file is removed and the target left as it was; the sentence
 * in why[0..n) says so ("writing T failed: reason; P is unchanged").
 * Returns NB_OK or NB_ERR_IO. */
nb_status nbio_out_commit(nbio_out *o, int write_errno, char *why, size_t n);

/* Whether @p path could be written now, without writing it: what
 * nbio_out_open refuses is refused with the same sentence, and a temporary
 * is created beside a regular or new file and removed again. A character
 * device or a FIFO is not opened (NB_OK). For a command that writes its
 * file only after a long run. */
nb_status nbio_out_check(const char *path, char *why, size_t n);

#endif
