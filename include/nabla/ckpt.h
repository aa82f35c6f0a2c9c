/**
 * @file ckpt.h
 * @brief Checkpoints: save and load every tensor of an nb_model, with the
 *        state of an nb_optim and of an nb_rng when given, so training
 *        resumes bit-identically.
 *
 * The format (docs/optim.md has it byte by byte) is little-endian and
 * versioned: a magic, a header with its own CRC-32, a payload of named
 * tensors (dtype, shape, data) and optional optimizer and RNG sections,
 * and a CRC-32 of the payload. Every tensor of the model is saved, the
 * trainable parameters and the non-trainable ones alike (running
 * statistics, for instance).
 *
 * An optional metadata section of "key=value" text lines (nb_ckpt_opts'
 * meta, meta_out) says what model a file holds; files without it load as
 * before. nb_ckpt_list and nb_ckpt_read_meta check a file without a model.
 *
 * Saving writes a temporary file ("path.nabla-tmp-XXXXXX") in the same
 * directory, flushes and fsyncs it and renames it over @p path, so a
 * failure or crash part-way leaves the previous file intact; the next
 * successful save removes temporaries a killed one left. A symbolic link
 * is followed and its target replaced; an existing file keeps its mode; a
 * character device (/dev/null) or a FIFO being read is written in place;
 * a directory, a block device, a socket or a FIFO with no reader is
 * refused (docs/optim.md, "Files"). Loading refuses anything but a
 * regular file, without blocking on a FIFO; it reads the whole file, checks
 * everything - header, sizes against the file size, CRCs, names (unique,
 * present in the model), dtypes, shapes against the model, the optimizer
 * kind - and only then changes the model, optimizer and RNG; a bad file
 * changes nothing and the error says what is wrong and where.
 */
#ifndef NABLA_CKPT_H
#define NABLA_CKPT_H

#include <stdio.h>

#include "meta.h"
#include "nn.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Current format version written by nb_model_save. */
#define NB_CKPT_VERSION 1

/** What went wrong in a save or load. */
typedef struct nb_ckpt_error {
    nb_status status; /**< NB_OK, or the error code */
    int64_t offset;   /**< byte offset in the file where the problem lies; -1 if none */
    char name[128];   /**< tensor concerned ("" if none; truncated if longer) */
    char msg[512];    /**< a sentence: what, where, expected and found */
} nb_ckpt_error;

/** Options of save and load; a NULL pointer or zeroed fields mean the defaults. */
typedef struct nb_ckpt_opts {
    /** Save: writes @p n bytes of @p data to @p f and returns how many were
     *  written (fewer means failure). Default: fwrite. Tests use it to make
     *  a save fail part-way. */
    size_t (*write)(void *ud, FILE *f, const void *data, size_t n);
    void *write_ud;
    /** Allocation hook for the buffers of save and load (default malloc). */
    nb_alloc_fn alloc;
    void *alloc_ud;
    /** Save: store this generator's state. Load: restore it (the file must
     *  hold one). NULL: none saved; a stored one is ignored on load. */
    nb_rng *rng;
    /** Save: metadata text stored with the tensors, "key=value" lines
     *  separated by '\n' (nb_meta_check gives the rules; nb_mlp_meta writes
     *  the usual keys). NULL or "": none. */
    const char *meta;
    /** Load: receives the file's metadata text, NUL-terminated ("" when the
     *  file has none). It must hold the text and its NUL (NB_META_MAX + 1
     *  bytes always do); otherwise the load fails with NB_ERR_ARG and changes
     *  nothing. NULL: not wanted. */
    char *meta_out;
    size_t meta_cap; /**< size of meta_out in bytes */
} nb_ckpt_opts;

/**
 * Save every tensor of @p m, and the state of @p opt unless it is NULL
 * (step count, schedule position, per-parameter state), to @p path
 * atomically (temporary file, fflush, fsync, rename; see the top of this
 * file for links, devices and FIFOs). Optimizer state kept
 * under a name the model does not hold (or for another shape) is not saved.
 * @p o and @p err may be NULL. Errors: NB_ERR_NULL, NB_ERR_ARG (a name
 * longer than 65535 bytes), NB_ERR_NOMEM, NB_ERR_IO (with errno's text;
 * @p path is a directory, a block device, a socket or a FIFO with no
 * reader). On error the file at @p path is as it was.
 */
NB_API nb_status nb_model_save(const nb_model *m, const nb_optim *opt, const char *path,
                               const nb_ckpt_opts *o, nb_ckpt_error *err);

/**
 * Load @p path into @p m (and @p opt unless NULL). The file must hold
 * exactly the tensors of @p m, by name, with the same dtypes and shapes;
 * when @p opt is given the file must hold optimizer state of the same kind,
 * which replaces @p opt's state, step count and schedule position (its
 * options stay). Errors: NB_ERR_NULL, NB_ERR_IO (cannot read), NB_ERR_PARSE
 * (not a checkpoint, unsupported version, bad CRC, truncated, sizes that do
 * not fit), NB_ERR_NOTFOUND (a name missing on one side), NB_ERR_EXISTS
 * (a name twice), NB_ERR_DTYPE / NB_ERR_SHAPE (does not match the model),
 * NB_ERR_ARG (optimizer kind differs), NB_ERR_NOMEM. On error nothing has
 * changed; @p err says what and where.
 */
NB_API nb_status nb_model_load(nb_model *m, nb_optim *opt, const char *path, const nb_ckpt_opts *o,
                               nb_ckpt_error *err);

/**
 * Called once per tensor of a file, in file order, by nb_ckpt_list and
 * nb_safetensors_list: its name (NUL-terminated, valid for the call only),
 * dtype and shape. Anything but NB_OK stops the listing and is returned.
 */
typedef nb_status (*nb_tensor_info_fn)(void *ud, const char *name, nb_dtype dtype, int rank,
                                       const int64_t *shape);

/**
 * Check the checkpoint at @p path as nb_model_load does, without a model
 * (header, CRCs, every record and section, no name twice, optimizer state
 * naming tensors of the file), then call @p fn (may be NULL) for each of
 * its tensors and write its metadata to o->meta_out when given. Used to
 * build a model that fits a file. @p o may be NULL (o->rng is ignored).
 * Errors as nb_model_load (NB_ERR_EXISTS for a name twice), or @p fn's.
 */
NB_API nb_status nb_ckpt_list(const char *path, nb_tensor_info_fn fn, void *ud,
                              const nb_ckpt_opts *o, nb_ckpt_error *err);

/**
 * The metadata text of the checkpoint at @p path into buf[0..cap),
 * NUL-terminated ("" when none), after checking the whole file as
 * nb_ckpt_list does. NB_ERR_ARG when it does not fit.
 */
NB_API nb_status nb_ckpt_read_meta(const char *path, char *buf, size_t cap, nb_ckpt_error *err);

/* ============================================================ metadata */

/**
 * Describe an MLP built by nb_mlp_new(m, NULL, sizes, n_sizes, o, ...) as
 * metadata text in out[0..cap): "arch=mlp", "sizes=64,128,10",
 * "act=relu", "out_act=identity", "batchnorm=0|1", "dtype=f32|f64", and
 * when they apply "bn_eps", "alpha", "beta", "lower", "upper", "pieces"
 * (doubles printed with 17 digits). `nabla export` reads these keys.
 * NB_ERR_NULL, NB_ERR_ARG (bad sizes or activation, or it does not fit).
 */
NB_API nb_status nb_mlp_meta(const int64_t *sizes, int n_sizes, const nb_mlp_opts *o, char *out,
                             size_t cap);

#ifdef __cplusplus
}
#endif
#endif
