/* Metadata text: "key=value" lines, checked, looked up and built; and
 * UTF-8, which metadata and names in files must be. */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "nabla/meta.h"

size_t nbc_utf8_seq(const unsigned char *s, size_t n)
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

bool nbc_meta_check(const char *text, size_t len, size_t *at, char *why, size_t n)
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
            size_t k = nbc_utf8_seq(s + l.end, len - l.end);
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

nb_status nb_meta_check(const char *meta, nb_error *err)
{
    nb_error_clear(err);
    if (!meta)
        return nb_error_set(err, NB_ERR_NULL, "nb_meta_check", "the metadata is NULL");
    size_t at;
    char why[sizeof err->msg];
    size_t len = strnlen(meta, (size_t)NB_META_MAX + 1);
    if (nbc_meta_check(meta, len, &at, why, sizeof why))
        return NB_OK;
    nb_error_set(err, NB_ERR_PARSE, "nb_meta_check", "%s", why);
    if (err)
        err->offset = (int64_t)at;
    return NB_ERR_PARSE;
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

nb_status nb_meta_put(char *buf, size_t cap, const char *key, const char *fmt, ...)
{
    if (!buf || !key || !fmt)
        return NB_ERR_NULL;
    size_t used = strnlen(buf, cap);
    if (used == cap)
        return NB_ERR_ARG;
    size_t key_len = strlen(key);
    if (key_len == 0 || strchr(key, '=') || strchr(key, '\n'))
        return NB_ERR_ARG;
    char probe[1];
    if (nb_meta_get(buf, key, probe, 0) != NB_ERR_NOTFOUND)
        return NB_ERR_EXISTS;
    size_t start = used;
    int k =
        snprintf(buf + used, cap - used, "%s%s=", used && buf[used - 1] != '\n' ? "\n" : "", key);
    if (k < 0 || (size_t)k >= cap - used) {
        buf[start] = '\0';
        return NB_ERR_ARG;
    }
    used += (size_t)k;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(buf + used, cap - used, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - used || memchr(buf + used, '\n', (size_t)k)) {
        buf[start] = '\0';
        return NB_ERR_ARG;
    }
    return NB_OK;
}

/* The value of key into v[0..n) for a number: one too long to be a
 * number does not parse. */
static nb_status number_text(const char *meta, const char *key, void *out, char *v, size_t n)
{
    if (!out)
        return NB_ERR_NULL;
    nb_status s = nb_meta_get(meta, key, v, n);
    return s == NB_ERR_ARG ? NB_ERR_PARSE : s;
}

nb_status nb_meta_get_i64(const char *meta, const char *key, int64_t *out)
{
    char v[32];
    nb_status s = number_text(meta, key, out, v, sizeof v);
    if (s != NB_OK)
        return s;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || (v[0] != '-' && (v[0] < '0' || v[0] > '9')))
        return NB_ERR_PARSE;
    *out = (int64_t)x;
    return NB_OK;
}

nb_status nb_meta_get_f64(const char *meta, const char *key, double *out)
{
    char v[64];
    nb_status s = number_text(meta, key, out, v, sizeof v);
    if (s != NB_OK)
        return s;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || (errno == ERANGE && isinf(x)) || v[0] == ' ')
        return NB_ERR_PARSE;
    *out = x;
    return NB_OK;
}

/* 16 lowercase hex digits at s into *out. */
static bool hex64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

nb_status nb_rng_save(const nb_rng *r, char *buf, size_t cap)
{
    if (!r || !buf)
        return NB_ERR_NULL;
    size_t len0 = strnlen(buf, cap);
    nb_status st = nb_meta_put(buf, cap, "rng.state", "%016llx,%016llx,%016llx,%016llx",
                               (unsigned long long)r->s[0], (unsigned long long)r->s[1],
                               (unsigned long long)r->s[2], (unsigned long long)r->s[3]);
    uint64_t bits;
    memcpy(&bits, &r->spare, sizeof bits);
    if (st == NB_OK && r->has_spare)
        st = nb_meta_put(buf, cap, "rng.spare", "%016llx", (unsigned long long)bits);
    else if (st == NB_OK)
        st = nb_meta_put(buf, cap, "rng.spare", "%s", "");
    if (st != NB_OK && len0 < cap)
        buf[len0] = '\0';
    return st;
}

nb_status nb_rng_load(nb_rng *r, const char *meta, nb_error *err)
{
    nb_error_clear(err);
    if (!r || !meta)
        return nb_error_set(err, NB_ERR_NULL, "nb_rng_load", "%s is NULL",
                            !r ? "the generator" : "the metadata");
    char v[80], sp[24];
    nb_status st = nb_meta_get(meta, "rng.state", v, sizeof v);
    nb_status st2 = nb_meta_get(meta, "rng.spare", sp, sizeof sp);
    if (st == NB_ERR_NOTFOUND || st2 == NB_ERR_NOTFOUND)
        return nb_error_set(err, NB_ERR_NOTFOUND, "nb_rng_load",
                            "the metadata holds no random generator (RNG) state (%s missing)",
                            st == NB_ERR_NOTFOUND ? "rng.state" : "rng.spare");
    nb_rng x = {{0}, 0.0, false};
    bool ok = st == NB_OK && strlen(v) == 4 * 16 + 3;
    for (int i = 0; ok && i < 4; i++)
        ok = hex64(v + 17 * i, &x.s[i]) && (i == 3 || v[17 * i + 16] == ',');
    if (!ok || (x.s[0] | x.s[1] | x.s[2] | x.s[3]) == 0)
        return nb_error_set(err, NB_ERR_PARSE, "nb_rng_load",
                            "rng.state is not four 16-digit lowercase hex words separated by ',' "
                            "(and not all zero)");
    uint64_t bits = 0;
    if (st2 != NB_OK || (sp[0] && (strlen(sp) != 16 || !hex64(sp, &bits))))
        return nb_error_set(err, NB_ERR_PARSE, "nb_rng_load",
                            "rng.spare is not empty or 16 lowercase hex digits");
    x.has_spare = sp[0] != '\0';
    memcpy(&x.spare, &bits, sizeof bits);
    *r = x;
    return NB_OK;
}
