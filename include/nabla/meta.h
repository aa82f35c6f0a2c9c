/**
 * @file meta.h
 * @brief Metadata text: "key=value" lines that say what a file holds (a
 *        model's description, an optimizer's settings and counters, a
 *        random generator's state). Files store it as opaque text; the
 *        parts that write it give it meaning.
 *
 * The rules (nb_meta_check): at most NB_META_MAX bytes of UTF-8 without
 * control characters except the '\n' that ends each line (the last line's
 * is optional); every line "key=value" with a non-empty key (the first '='
 * splits; the value may be empty and may hold '='); no key twice; at most
 * NB_META_MAX_ENTRIES lines.
 */
#ifndef NABLA_META_H
#define NABLA_META_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Most bytes of metadata text a file may hold. */
#define NB_META_MAX 65536
/** Most key=value entries in metadata text. */
#define NB_META_MAX_ENTRIES 1024

/**
 * Check metadata text against the rules above. NB_OK, NB_ERR_NULL, or
 * NB_ERR_PARSE; on failure @p err (may be NULL) gets where "nb_meta_check",
 * the byte offset of the problem and a sentence naming it; on success it
 * is cleared.
 */
NB_API nb_status nb_meta_check(const char *meta, nb_error *err);

/**
 * The value of @p key in metadata text @p meta, copied NUL-terminated into
 * out[0..cap). NB_OK, NB_ERR_NOTFOUND (no such key), NB_ERR_ARG (it does
 * not fit), NB_ERR_NULL.
 */
NB_API nb_status nb_meta_get(const char *meta, const char *key, char *out, size_t cap);

/** The value of @p key as a decimal integer. NB_OK, NB_ERR_NOTFOUND,
 *  NB_ERR_PARSE (not an integer, or out of range), NB_ERR_NULL. */
NB_API nb_status nb_meta_get_i64(const char *meta, const char *key, int64_t *out);
/** The value of @p key as a number (strtod's syntax; "%.17g" round-trips).
 *  NB_OK, NB_ERR_NOTFOUND, NB_ERR_PARSE, NB_ERR_NULL. */
NB_API nb_status nb_meta_get_f64(const char *meta, const char *key, double *out);

/**
 * Append the line "key=value" (the value given as printf format) to the
 * NUL-terminated text in buf[0..cap), starting a new line when the text
 * does not end with one. NB_ERR_ARG when @p key is empty or holds '=' or
 * '\n', the value holds '\n', or it does not fit (buf is then as it was);
 * NB_ERR_EXISTS when the text already has @p key; NB_ERR_NULL.
 */
NB_API nb_status nb_meta_put(char *buf, size_t cap, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/**
 * Append the state of @p r to metadata text: "rng.state=" its four 64-bit
 * words as 16 lowercase hex digits each, separated by ',', and
 * "rng.spare=" the bits of the kept normal deviate as 16 hex digits, or ""
 * when it keeps none. Errors as nb_meta_put, and NB_ERR_NULL.
 */
NB_API nb_status nb_rng_save(const nb_rng *r, char *buf, size_t cap);

/**
 * Set @p r to the state nb_rng_save wrote into @p meta. Everything is
 * checked first; on error @p r is unchanged. Errors: NB_ERR_NULL,
 * NB_ERR_NOTFOUND (no rng.state or rng.spare line), NB_ERR_PARSE (not the
 * form above, or the all-zero state, which xoshiro256** cannot leave).
 */
NB_API nb_status nb_rng_load(nb_rng *r, const char *meta, nb_error *err);

#ifdef __cplusplus
}
#endif
#endif
