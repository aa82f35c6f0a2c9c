/* The parts of the dist module that need no MPI: options, the launcher's
 * environment, and the layout text ranks compare before training. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist_internal.h"

nb_dist_opts nb_dist_defaults(void)
{
    return (nb_dist_opts){.timeout = 60};
}

/* A whole number >= 0 from the environment variable @p name, or -1. */
static long env_number(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return -1;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < 0 || x > 1 << 24 ? -1 : x;
}

int nb_dist_env(int *rank)
{
    /* Open MPI (mpirun), then PMI (MPICH's hydra, Slurm's srun) */
    static const char *const names[][2] = {
        {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
        {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK"},
        {"PMI_SIZE", "PMI_RANK"},
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        long size = env_number(names[i][0]), r = env_number(names[i][1]);
        if (size >= 1 && r >= 0 && r < size) {
            if (rank)
                *rank = (int)r;
            return (int)size;
        }
    }
    if (rank)
        *rank = 0;
    return 0;
}

uint64_t nbx_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

/* Append the printf-formatted text to buf[*len..cap), growing it; false
 * when out of memory. */
NBX_PRINTF(6, 7)
static bool append(char **buf, size_t *len, size_t *cap, nb_alloc_fn alloc, void *ud,
                   const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (k < 0)
            return false;
        if ((size_t)k < *cap - *len) {
            *len += (size_t)k;
            return true;
        }
        size_t grown = 2 * *cap + (size_t)k;
        char *b = alloc(ud, *buf, *cap, grown);
        if (!b)
            return false;
        *buf = b;
        *cap = grown;
    }
}

char *nbx_layout_text(const nb_model *m, const char *settings, nb_alloc_fn alloc, void *ud,
                      size_t *len)
{
    size_t cap = 1024;
    char *buf = alloc(ud, NULL, 0, cap);
    *len = 0;
    if (!buf)
        return NULL;
    buf[0] = '\0';
    bool ok = true;
    for (nb_tensor *p = nb_model_next(m, NULL); p && ok; p = nb_model_next(m, p)) {
        int64_t shape[NB_MAX_RANK];
        int rank = nb_tensor_rank(p);
        for (int k = 0; k < rank; k++)
            shape[k] = nb_tensor_dim(p, k);
        char s[NB_MAX_RANK * 21 + 3];
        nb_shape_str(rank, shape, s, sizeof s);
        ok = append(&buf, len, &cap, alloc, ud, "tensor %s %s %s %s\n", nb_tensor_name(p),
                    nb_dtype_name(nb_tensor_dtype(p)), s,
                    nb_tensor_requires_grad(p) ? "trainable" : "buffer");
    }
    for (const char *s = settings; ok && s && *s;) {
        size_t n = strcspn(s, "\n");
        if (n > 0)
            ok = append(&buf, len, &cap, alloc, ud, "%.*s\n", (int)n, s);
        s += n + (s[n] == '\n');
    }
    if (!ok) {
        alloc(ud, buf, cap, 0);
        return NULL;
    }
    /* the caller frees len + 1 bytes: shrink to that */
    char *fit = alloc(ud, buf, cap, *len + 1);
    if (!fit) {
        alloc(ud, buf, cap, 0);
        return NULL;
    }
    return fit;
}

/* The line of t[0..n) starting at *pos, as (start, length); its length is
 * 0 at the end. */
static size_t line_at(const char *t, size_t n, size_t pos, const char **start)
{
    *start = t + pos;
    size_t k = 0;
    while (pos + k < n && t[pos + k] != '\n')
        k++;
    return k;
}

/* The name a line is about: the tensor's name, or a setting's key. */
static void line_name(const char *line, size_t n, char *name, size_t name_n)
{
    if (n > 7 && !strncmp(line, "tensor ", 7)) {
        const char *s = line + 7, *e = memchr(s, ' ', n - 7);
        snprintf(name, name_n, "%.*s", (int)(e ? (size_t)(e - s) : n - 7), s);
        return;
    }
    const char *eq = memchr(line, '=', n);
    snprintf(name, name_n, "%.*s", (int)(eq ? (size_t)(eq - line) : n), line);
}

void nbx_difference(const char *a, size_t a_len, const char *b, size_t b_len, int rank, char *msg,
                    size_t n, char *name, size_t name_n)
{
    size_t pa = 0, pb = 0;
    int tensors = 0;
    for (;;) {
        const char *la, *lb;
        size_t na = line_at(a, a_len, pa, &la), nb = line_at(b, b_len, pb, &lb);
        bool end_a = pa >= a_len, end_b = pb >= b_len;
        if (end_a && end_b)
            break;
        if (end_a || end_b || na != nb || memcmp(la, lb, na)) {
            line_name(end_a ? lb : la, end_a ? nb : na, name, name_n);
            snprintf(msg, n, "rank %d differs from rank 0: rank 0 has %.*s, rank %d has %.*s", rank,
                     end_a ? 7 : (int)na, end_a ? "nothing" : la, rank, end_b ? 7 : (int)nb,
                     end_b ? "nothing" : lb);
            const char *other = end_a ? lb : la;
            if ((end_a || end_b) && !strncmp(other, "tensor ", 7))
                snprintf(msg + strlen(msg), n - strlen(msg), " (after %d tensor%s)", tensors,
                         tensors == 1 ? "" : "s");
            return;
        }
        tensors += na > 7 && !strncmp(la, "tensor ", 7);
        pa += na + 1;
        pb += nb + 1;
    }
    snprintf(msg, n, "rank %d differs from rank 0 (the texts are equal)", rank);
    name[0] = '\0';
}
