/**
 * @file ckpt.h
 * @brief Checkpoints: every tensor of an nb_model, with the state of an
 *        nb_optim and of an nb_rng when given, in one safetensors file, so
 *        training resumes bit-identically.
 *
 * A checkpoint is a safetensors file (safetensors.h) that any safetensors
 * reader opens. It holds the model's tensors by name (the trainable
 * parameters and the others, running statistics for instance), the
 * optimizer's state tensors (nb_optim_state_save): for each parameter P
 * it keeps state for, its update count "P/t" (an F64 scalar) and its slots
 * "P/<slot>", and in "__metadata__":
 *  - "nabla.format=checkpoint" and "nabla.version=2";
 *  - the caller's metadata (nb_ckpt_opts' meta; a model's description,
 *    for instance), whose keys may not begin with "nabla.", "optim." or
 *    "rng.";
 *  - with an optimizer: its kind, options, step count and schedule
 *    position ("optim.*", nb_optim_state_save), as many lines for a model
 *    of any size;
 *  - with a generator: its state ("rng.state", "rng.spare", nb_rng_save);
 *  - the CRC-32s of the header and of the data ("nabla.crc32.*"), which
 *    a load requires, so that every single-byte change and every truncation
 *    is refused.
 * docs/optim.md has the layout byte by byte. Files of the first format
 * (the magic "NABLACKP") are refused with a message naming it.
 *
 * Saving is atomic as nb_safetensors_save's: a failure or crash part-way
 * leaves the previous file intact. Loading reads the whole file, checks
 * everything - the file's own checks, the format and version, names
 * (unique, every one either the model's or optimizer state), dtypes and
 * shapes against the model, the optimizer's kind and state, the
 * generator's state - and only then changes the model, optimizer and
 * generator; a bad file changes nothing and the error says what is wrong
 * and where.
 */
#ifndef NABLA_CKPT_H
#define NABLA_CKPT_H

#include "optim.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Format version written by nb_model_save ("nabla.version"). */
#define NB_CKPT_VERSION 2

/** Options of save and load; a NULL pointer or zeroed fields mean the
 *  defaults. The fields but rng are those of nb_file_opts. */
typedef struct nb_ckpt_opts {
    /** Save: writes @p n bytes of @p data to @p f and returns how many were
     *  written (fewer means failure). Default: fwrite. */
    size_t (*write)(void *ud, FILE *f, const void *data, size_t n);
    void *write_ud;
    /** Allocation hook for the buffers of save and load (default malloc). */
    nb_alloc_fn alloc;
    void *alloc_ud;
    /** Save: store this generator's state. Load: restore it (the file must
     *  hold one). NULL: none saved; a stored one is ignored on load. */
    nb_rng *rng;
    /** Save: the caller's metadata text, "key=value" lines (meta.h); keys
     *  may not begin with "nabla.", "optim." or "rng.". NULL or "": none. */
    const char *meta;
    /** Load: receives the caller's metadata text of the file (without the
     *  checkpoint's own lines), NUL-terminated ("" when none). It must hold
     *  the text and its NUL (NB_META_MAX + 1 bytes always do); otherwise the
     *  load fails with NB_ERR_ARG and changes nothing. NULL: not wanted. */
    char *meta_out;
    size_t meta_cap; /**< size of meta_out in bytes */
} nb_ckpt_opts;

/**
 * Save every tensor of @p m, and the state of @p opt unless it is NULL
 * (for the parameters of @p m: state kept under a name @p m does not hold,
 * or for another shape, is not saved), to @p path atomically. @p o and
 * @p err may be NULL. Errors: NB_ERR_NULL; NB_ERR_ARG (a name that cannot
 * be stored, a reserved metadata key, more metadata than NB_META_MAX
 * bytes, or, with @p opt, a model tensor named like the optimizer state
 * saved: "P/t" or "P/<slot>" of a parameter P it keeps state for);
 * NB_ERR_NOMEM; NB_ERR_IO (with errno's text; @p path
 * is a directory, a block device, a socket or a FIFO with no reader). On
 * error the file at @p path is as it was.
 */
NB_API nb_status nb_model_save(const nb_model *m, const nb_optim *opt, const char *path,
                               const nb_ckpt_opts *o, nb_error *err);

/**
 * Load @p path into @p m (and @p opt unless NULL). The file must hold
 * exactly the tensors of @p m, by name, with the same dtypes and shapes,
 * besides optimizer state; when @p opt is given the file must hold
 * optimizer state of the same kind, which replaces @p opt's state, step
 * count and schedule position (its options stay; nb_optim_opts_from_meta
 * reads the saved ones). Errors: NB_ERR_NULL, NB_ERR_IO (cannot read),
 * NB_ERR_PARSE (not a checkpoint, an unsupported version, a bad CRC,
 * truncated, sizes that do not fit), NB_ERR_NOTFOUND (a name missing on
 * one side; no optimizer or generator state when one is asked for),
 * NB_ERR_EXISTS (a name twice), NB_ERR_DTYPE / NB_ERR_SHAPE (does not
 * match the model), NB_ERR_ARG (optimizer kind differs; meta_out too
 * small), NB_ERR_NOMEM. On error nothing has changed; @p err says what and
 * where.
 */
NB_API nb_status nb_model_load(nb_model *m, nb_optim *opt, const char *path, const nb_ckpt_opts *o,
                               nb_error *err);

/**
 * Check the checkpoint at @p path as nb_model_load does, without a model
 * (the file, the format, its own metadata lines, the optimizer state:
 * counts "P/t" of tensors P of the file, with P's slots beside them in P's
 * dtype and shape), then call @p fn (may be NULL) for each of the
 * model's tensors in it (not the optimizer state) and write its caller's
 * metadata to o->meta_out when given. Used to build a model that fits a
 * file. @p o may be NULL (o->rng is ignored). Errors as nb_model_load, or
 * @p fn's.
 */
NB_API nb_status nb_ckpt_list(const char *path, nb_tensor_info_fn fn, void *ud,
                              const nb_ckpt_opts *o, nb_error *err);

/**
 * The caller's metadata text of the checkpoint at @p path into
 * buf[0..cap), NUL-terminated ("" when none), after checking the whole
 * file as nb_ckpt_list does. NB_ERR_ARG when it does not fit.
 */
NB_API nb_status nb_ckpt_read_meta(const char *path, char *buf, size_t cap, nb_error *err);

#ifdef __cplusplus
}
#endif
#endif
