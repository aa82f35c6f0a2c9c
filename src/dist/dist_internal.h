/* Internal definitions shared by the sources of the dist module: what is
 * the same with and without MPI (the environment, the layout text the
 * ranks compare and the sentence naming a difference). Not installed. */
#ifndef NABLA_DIST_INTERNAL_H
#define NABLA_DIST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nabla/dist.h"

#if defined(__GNUC__)
#define NBX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NBX_PRINTF(a, b)
#endif

/* The text the ranks compare: one line per tensor of @p m in the model's
 * order ("tensor fc1.weight f32 [64,64] trainable") then the lines of
 * @p settings (NULL: none), into a block from @p alloc; its length (the
 * NUL excluded) in *len. NULL when out of memory. */
char *nbx_layout_text(const nb_model *m, const char *settings, nb_alloc_fn alloc, void *ud,
                      size_t *len);

/* 64-bit FNV-1a of n bytes. */
uint64_t nbx_hash(const void *p, size_t n);

/* The sentence saying how the text @p b of rank @p rank differs from the
 * text @p a of rank 0 (their first differing line), into msg[0..n), and
 * the tensor name or setting key of that line into name[0..name_n). */
void nbx_difference(const char *a, size_t a_len, const char *b, size_t b_len, int rank, char *msg,
                    size_t n, char *name, size_t name_n);

#endif
