/**
 * @file safetensors.h
 * @brief Named tensors to and from files in the safetensors format, the
 *        plain header-plus-raw-data format PyTorch users exchange weights
 *        in. nabla's checkpoints (ckpt.h) are such files too.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes
 * of UTF-8 JSON, then the raw little-endian tensor data:
 *
 *     {"__metadata__": {"arch": "mlp", ..., "nabla.crc32.data": "1c291ca3",
 *                       "nabla.crc32.header": "5e0b9d51"},
 *      "fc1.weight": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}, ...}
 *
 * data_offsets are [begin, end) byte offsets into the data that follows the
 * header. nabla reads and writes the dtypes F32 and F64 (a file holding
 * F16, BF16 or integer tensors is refused with NB_ERR_DTYPE). The
 * "__metadata__" object (string values only) is key=value metadata text
 * (meta.h): each line "k=v" is the entry "k": "v".
 *
 * Every file nabla writes carries two CRC-32s in its metadata (8 lowercase
 * hex digits each): "nabla.crc32.data" of the data, and
 * "nabla.crc32.header" of the 8 length bytes and the header as written,
 * with that entry's own 8 digits read as "00000000". A load checks them
 * when the file has them (files from other writers do not) and refuses the
 * file when they do not match; with require_crc it also refuses a file
 * without them. They are not part of the metadata a load returns, and a
 * caller's metadata may not use keys that begin with "nabla.crc32.".
 *
 * The header is untrusted input and is checked strictly: its length
 * against the file and against NB_SAFETENSORS_HEADER_MAX; the JSON
 * (objects, arrays, strings with escapes, non-negative integers and nothing
 * else; well-formed UTF-8, no NUL, no key twice, no field missing or
 * unknown); every tensor's byte count against its shape and dtype; and the
 * data regions, which must tile the data exactly (no overlap, no gap,
 * nothing past the end of the file). Errors fill an nb_error with the byte
 * offset in the file and the tensor concerned. Loading checks everything
 * before it changes any tensor: a bad file changes nothing.
 *
 * Saving writes a temporary file ("path.nabla-tmp-XXXXXX") in the same
 * directory, flushes and fsyncs it and renames it over @p path, so a
 * failure or crash part-way leaves the previous file intact; the next
 * successful save removes temporaries a killed one left. A symbolic link
 * is followed and its target replaced; an existing file keeps its mode; a
 * character device (/dev/null) or a FIFO being read is written in place;
 * a directory, a block device, a socket or a FIFO with no reader is
 * refused (docs/optim.md, "Files"). Loading refuses anything but a
 * regular file, without blocking on a FIFO.
 *
 * nabla's linear layers keep their weight as [n_in, n_out] (y = x·W + b);
 * PyTorch's nn.Linear keeps [out, in] (y = x·Wᵀ + b). A file written by
 * one is read by the other with the weights' meaning transposed:
 * docs/interop.md shows how to convert.
 */
#ifndef NABLA_SAFETENSORS_H
#define NABLA_SAFETENSORS_H

#include <stdio.h>

#include "meta.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest JSON header accepted, in bytes (100 MB). */
#define NB_SAFETENSORS_HEADER_MAX 100000000u

/** Options of saving and loading files; a NULL pointer or zeroed fields
 *  mean the defaults. */
typedef struct nb_file_opts {
    /** Save: writes @p n bytes of @p data to @p f and returns how many were
     *  written (fewer means failure). Default: fwrite. Tests use it to make
     *  a save fail part-way. */
    size_t (*write)(void *ud, FILE *f, const void *data, size_t n);
    void *write_ud;
    /** Allocation hook for the buffers of save and load (default malloc). */
    nb_alloc_fn alloc;
    void *alloc_ud;
    /** Save: metadata text stored with the tensors (meta.h gives the rules).
     *  NULL or "": none. */
    const char *meta;
    /** Load: receives the file's metadata text, NUL-terminated ("" when the
     *  file has none). It must hold the text and its NUL (NB_META_MAX + 1
     *  bytes always do); otherwise the load fails with NB_ERR_ARG and changes
     *  nothing. NULL: not wanted. */
    char *meta_out;
    size_t meta_cap; /**< size of meta_out in bytes */
    /** Load: refuse a file without nabla's CRC-32s. */
    bool require_crc;
} nb_file_opts;

/**
 * Called once per tensor of a file, in file order, by nb_safetensors_list
 * and nb_ckpt_list: its name (NUL-terminated, valid for the call only),
 * dtype and shape. Anything but NB_OK stops the listing and is returned.
 */
typedef nb_status (*nb_tensor_info_fn)(void *ud, const char *name, nb_dtype dtype, int rank,
                                       const int64_t *shape);

/**
 * Save every tensor of the @p n_stores stores to @p path, store after
 * store, each in its own order, with o->meta (if any) and the CRC-32s as
 * "__metadata__", atomically (see the top of this file). The header is
 * padded with spaces so the data starts at a multiple of 8 bytes. @p o and
 * @p err may be NULL. Errors: NB_ERR_NULL, NB_ERR_ARG (a name that is
 * empty, not UTF-8, "__metadata__" or longer than 65535 bytes; bad
 * metadata, or a key beginning with "nabla.crc32."), NB_ERR_EXISTS (a name
 * in two stores), NB_ERR_NOMEM, NB_ERR_IO. On error the file at @p path is
 * as it was.
 */
NB_API nb_status nb_safetensors_save(const char *path, const nb_model *const *stores,
                                     int n_stores, const nb_file_opts *o, nb_error *err);

/** nb_safetensors_save of the one store @p m. */
NB_API nb_status nb_model_save_safetensors(const nb_model *m, const char *path,
                                           const nb_file_opts *o, nb_error *err);

/**
 * Load @p path into @p m: the file must hold exactly the tensors of @p m,
 * by name, with the same dtypes and shapes (in any order). o->meta_out (if
 * given) receives the metadata as key=value text; o->alloc is used for
 * every buffer. Errors: NB_ERR_NULL, NB_ERR_IO, NB_ERR_PARSE (any flaw of
 * the header or the layout of the data, a CRC-32 that does not match),
 * NB_ERR_DTYPE (a dtype other than F32/F64, or not the model's),
 * NB_ERR_SHAPE, NB_ERR_NOTFOUND (a name on one side only), NB_ERR_EXISTS
 * (a name twice), NB_ERR_ARG (meta_out too small, or metadata that is not
 * key=value text: a key holding '=', a control character), NB_ERR_NOMEM.
 * On error nothing has changed.
 */
NB_API nb_status nb_model_load_safetensors(nb_model *m, const char *path, const nb_file_opts *o,
                                           nb_error *err);

/**
 * Read every tensor of @p path into a new store *out (allocated through
 * o->alloc; free it with nb_model_free), after the checks of
 * nb_model_load_safetensors. *out is NULL on error. Errors as
 * nb_model_load_safetensors, without those of matching a model.
 */
NB_API nb_status nb_safetensors_read(const char *path, nb_model **out, const nb_file_opts *o,
                                     nb_error *err);

/**
 * Check the safetensors file at @p path as nb_model_load_safetensors does,
 * without a model, then call @p fn (may be NULL) for each tensor in the
 * header's order and write the metadata to o->meta_out when given. Used to
 * build a model that fits a file (nb_model_add each tensor, then load).
 * Errors as nb_model_load_safetensors, or @p fn's.
 */
NB_API nb_status nb_safetensors_list(const char *path, nb_tensor_info_fn fn, void *ud,
                                     const nb_file_opts *o, nb_error *err);

#ifdef __cplusplus
}
#endif
#endif
