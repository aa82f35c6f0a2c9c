/* Metadata text ("key=value" lines) shared by checkpoints and safetensors
 * files: checking, looking a key up, describing an MLP; and UTF-8. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/internal.h"
#include "io_internal.h"

size_t nbio_utf8_seq(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0; /* a continuation byte, 0xc0/0xc1 (overlong) or beyond U+10FFFF */
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* One line of metadata: [start, end) with the '=' at eq. */
typedef struct meta_line {
    size_t start, eq, end;
} meta_line;

bool nbio_meta_check(const char *text, size_t len, size_t *at, char *why, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    if (len > NB_META_MAX) {
        *at = NB_META_MAX;
        snprintf(why, n, "metadata of %zu bytes is longer than %d", len, NB_META_MAX);
        return false;
    }
    static const size_t none = (size_t)-1;
    size_t n_lines = 0;
    size_t pos = 0;
    while (pos < len) {
        meta_line l = {pos, none, pos};
        while (l.end < len && s[l.end] != '\n') {
            unsigned char c = s[l.end];
            if (c < 0x20 || c == 0x7f) {
                *at = l.end;
                snprintf(why, n, "metadata byte 0x%02x at offset %zu is a control character", c,
                         l.end);
                return false;
            }
            size_t k = nbio_utf8_seq(s + l.end, len - l.end);
            if (k == 0) {
                *at = l.end;
                snprintf(why, n, "metadata at offset %zu is not valid UTF-8", l.end);
                return false;
            }
            if (c == '=' && l.eq == none)
                l.eq = l.end;
            l.end += k;
        }
        if (l.eq == none || l.eq == l.start) {
            *at = l.start;
            snprintf(why, n, "metadata line at offset %zu is not key=value with a non-empty key",
                     l.start);
            return false;
        }
        if (++n_lines > NB_META_MAX_ENTRIES) {
            *at = l.start;
            snprintf(why, n, "metadata has more than %d entries", NB_META_MAX_ENTRIES);
            return false;
        }
        /* duplicate keys: compare with every earlier line (bounded: at most
         * NB_META_MAX_ENTRIES lines of a text of at most NB_META_MAX bytes) */
        size_t key_len = l.eq - l.start;
        for (size_t p = 0; p < l.start;) {
            size_t e = p;
            while (s[e] != '=')
                e++;
            if (e - p == key_len && memcmp(s + p, s + l.start, key_len) == 0) {
                *at = l.start;
                snprintf(why, n, "metadata key '%.*s' appears twice (offsets %zu and %zu)",
                         (int)(key_len < 64 ? key_len : 64), text + l.start, p, l.start);
                return false;
            }
            while (s[e] != '\n')
                e++;
            p = e + 1;
        }
        pos = l.end + 1; /* past the '\n'; a final '\n' ends the text */
    }
    return true;
}

nb_status nb_meta_check(const char *meta, char *why, size_t n)
{
    char scratch[1];
    if (!why || n == 0) {
        why = scratch;
        n = sizeof scratch;
    }
    why[0] = '\0';
    if (!meta) {
        snprintf(why, n, "the metadata is NULL");
        return NB_ERR_NULL;
    }
    size_t at;
    size_t len = strnlen(meta, (size_t)NB_META_MAX + 1);
    return nbio_meta_check(meta, len, &at, why, n) ? NB_OK : NB_ERR_PARSE;
}

nb_status nb_meta_get(const char *meta, const char *key, char *out, size_t cap)
{
    if (!meta || !key || (!out && cap > 0))
        return NB_ERR_NULL;
    size_t key_len = strlen(key);
    for (const char *p = meta; *p;) {
        const char *end = strchr(p, '\n');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (eq && (size_t)(eq - p) == key_len && memcmp(p, key, key_len) == 0) {
            size_t n = (size_t)(end - eq - 1);
            if (n + 1 > cap)
                return NB_ERR_ARG;
            memcpy(out, eq + 1, n);
            out[n] = '\0';
            return NB_OK;
        }
        p = *end ? end + 1 : end;
    }
    return NB_ERR_NOTFOUND;
}

/* Append to buf; false once it no longer fits. */
static bool put(char *buf, size_t cap, size_t *used, const char *fmt, ...) NB_PRINTF(4, 5);
static bool put(char *buf, size_t cap, size_t *used, const char *fmt, ...)
{
    if (*used >= cap)
        return false;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - *used) {
        *used = cap;
        return false;
    }
    *used += (size_t)k;
    return true;
}

nb_status nb_mlp_meta(const int64_t *sizes, int n_sizes, const nb_mlp_opts *o, char *out,
                      size_t cap)
{
    if (!sizes || !o || !out)
        return NB_ERR_NULL;
    if (n_sizes < 2 || (int)o->act < 0 || o->act >= NB_ACT_COUNT || (int)o->out_act < 0 ||
        o->out_act >= NB_ACT_COUNT)
        return NB_ERR_ARG;
    nb_act_opts ao = o->act_opts ? *o->act_opts : nb_act_defaults(o->act);
    size_t used = 0;
    bool ok = put(out, cap, &used, "arch=mlp\nsizes=");
    for (int i = 0; i < n_sizes && ok; i++)
        ok = put(out, cap, &used, "%s%lld", i ? "," : "", (long long)sizes[i]);
    ok = ok &&
         put(out, cap, &used, "\nact=%s\nout_act=%s\nbatchnorm=%d\ndtype=%s", nb_act_name(o->act),
             nb_act_name(o->out_act), o->batch_norm ? 1 : 0, nb_dtype_name(o->layer.dtype));
    if (ok && o->batch_norm)
        ok = put(out, cap, &used, "\nbn_eps=%.17g", o->bn_eps);
    switch (o->act) {
    case NB_ACT_LEAKY_RELU:
    case NB_ACT_ELU:
    case NB_ACT_PRELU: ok = ok && put(out, cap, &used, "\nalpha=%.17g", ao.alpha); break;
    case NB_ACT_SWISH:
    case NB_ACT_SWISH_LEARNED: ok = ok && put(out, cap, &used, "\nbeta=%.17g", ao.beta); break;
    case NB_ACT_RRELU:
        ok = ok && put(out, cap, &used, "\nlower=%.17g\nupper=%.17g", ao.lower, ao.upper);
        break;
    case NB_ACT_MAXOUT:
        ok = ok && put(out, cap, &used, "\npieces=%lld", (long long)ao.pieces);
        break;
    default: break;
    }
    return ok ? NB_OK : NB_ERR_ARG;
}
