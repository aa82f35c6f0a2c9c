/**
 * @file safetensors.h
 * @brief Models to and from the safetensors format, the plain
 *        header-plus-raw-data format PyTorch users exchange weights in.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes
 * of UTF-8 JSON, then the raw little-endian tensor data:
 *
 *     {"__metadata__": {"format": "pt"},
 *      "fc1.weight": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 48]}, ...}
 *
 * data_offsets are [begin, end) byte offsets into the data that follows the
 * header. nabla reads and writes the dtypes F32 and F64 (a file holding
 * F16, BF16 or integer tensors is refused with NB_ERR_DTYPE). The
 * "__metadata__" object (string values only) is nabla's key=value metadata
 * text (see nb_meta_check): each line "k=v" is the entry "k": "v".
 *
 * The header is untrusted input and is checked as strictly as nabla's own
 * checkpoints: its length against the file and against
 * NB_SAFETENSORS_HEADER_MAX; the JSON (objects, arrays, strings with
 * escapes, non-negative integers and nothing else; well-formed UTF-8, no
 * NUL, no key twice, no field missing or unknown); every tensor's byte
 * count against its shape and dtype; and the data regions, which must tile
 * the data exactly (no overlap, no gap, nothing past the end of the file).
 * Errors fill nb_ckpt_error with the byte offset in the file and the tensor
 * concerned. Loading checks everything before it changes any tensor: a bad
 * file changes nothing.
 *
 * nabla's linear layers keep their weight as [n_in, n_out] (y = x·W + b);
 * PyTorch's nn.Linear keeps [out, in] (y = x·Wᵀ + b). A file written by
 * one is read by the other with the weights' meaning transposed:
 * docs/interop.md shows how to convert.
 */
#ifndef NABLA_SAFETENSORS_H
#define NABLA_SAFETENSORS_H

#include "ckpt.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest JSON header accepted, in bytes (100 MB). */
#define NB_SAFETENSORS_HEADER_MAX 100000000u

/**
 * Save every tensor of @p m to @p path in safetensors form, in the model's
 * order, with o->meta (if any) as "__metadata__", atomically (temporary
 * file, fflush, fsync, rename), as nb_model_save does. The header is padded
 * with spaces so the data starts at a multiple of 8 bytes. o->write and
 * o->alloc are used as by nb_model_save; o->rng must be NULL (the format
 * holds no RNG state). @p o and @p err may be NULL. Errors: NB_ERR_NULL,
 * NB_ERR_ARG (a name that is empty, not UTF-8, "__metadata__" or longer
 * than 65535 bytes; bad metadata; o->rng given), NB_ERR_NOMEM, NB_ERR_IO.
 * On error the file at @p path is as it was.
 */
NB_API nb_status nb_model_save_safetensors(const nb_model *m, const char *path,
                                           const nb_ckpt_opts *o, nb_ckpt_error *err);

/**
 * Load @p path into @p m: the file must hold exactly the tensors of @p m,
 * by name, with the same dtypes and shapes (in any order). o->meta_out (if
 * given) receives the metadata as key=value text; o->alloc is used for
 * every buffer. Errors: NB_ERR_NULL, NB_ERR_IO, NB_ERR_PARSE (any flaw of
 * the header or the layout of the data), NB_ERR_DTYPE (a dtype other than
 * F32/F64, or not the model's), NB_ERR_SHAPE, NB_ERR_NOTFOUND (a name on
 * one side only), NB_ERR_EXISTS (a name twice), NB_ERR_ARG (meta_out too
 * small, or metadata that is not key=value text: a key holding '=', a
 * control character), NB_ERR_NOMEM. On error nothing has changed.
 */
NB_API nb_status nb_model_load_safetensors(nb_model *m, const char *path, const nb_ckpt_opts *o,
                                           nb_ckpt_error *err);

/**
 * Check the safetensors file at @p path as nb_model_load_safetensors does,
 * without a model, then call @p fn (may be NULL) for each tensor in the
 * header's order and write the metadata to o->meta_out when given. Used to
 * build a model that fits a file (nb_model_add each tensor, then load).
 * Errors as nb_model_load_safetensors, or @p fn's.
 */
NB_API nb_status nb_safetensors_list(const char *path, nb_tensor_info_fn fn, void *ud,
                                     const nb_ckpt_opts *o, nb_ckpt_error *err);

#ifdef __cplusplus
}
#endif
#endif
