/* Option parsing, timing and JSON output for the nabla command. */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Errors held instead of printed (cli_hold_errors): the first one. */
static bool holding;
static char held_cmd[32], held_msg[1024];

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (holding) {
        if (!held_msg[0]) {
            snprintf(held_cmd, sizeof held_cmd, "%s", cmd);
            vsnprintf(held_msg, sizeof held_msg, fmt, ap);
        }
    } else {
        fprintf(stderr, "nabla %s: ", cmd);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    return 2;
}

void cli_hold_errors(bool on)
{
    holding = on;
    held_msg[0] = '\0';
}

bool cli_holding_errors(void)
{
    return holding;
}

void cli_release_error(const char *prefix)
{
    if (held_msg[0])
        fprintf(stderr, "nabla %s: %s%s\n", held_cmd, prefix, held_msg);
    held_msg[0] = '\0';
}

const char *cli_quote_n(const char *s, size_t n, char *buf)
{
    size_t cut = n;
    if (n > CLI_QUOTE_MAX) {
        cut = CLI_QUOTE_MAX - 3;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80) /* inside a UTF-8 sequence */
            cut--;
    }
    memcpy(buf, s, cut);
    memcpy(buf + cut, n > CLI_QUOTE_MAX ? "..." : "", n > CLI_QUOTE_MAX ? 4 : 1);
    return buf;
}

const char *cli_quote(const char *s, char *buf)
{
    size_t n = strlen(s);
    return n <= CLI_QUOTE_MAX ? s : cli_quote_n(s, n, buf);
}

static int parse_value(const char *cmd, const cli_opt *o, const char *s)
{
    char *end;
    errno = 0;
    if (o->kind == CLI_STR) {
        *(const char **)o->dst = s;
        return 0;
    }
    if (o->kind == CLI_INT) {
        long v = strtol(s, &end, 10);
        if (end == s || *end || errno || v < o->lo || v > o->hi)
            return cli_error(cmd, "%s needs a whole number from %.0f to %.0f, not '%s'", o->name,
                             o->lo, o->hi, CLI_Q(s));
        *(long *)o->dst = v;
        return 0;
    }
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v) || v < o->lo || v > o->hi)
        return cli_error(cmd, "%s needs a number from %g to %g, not '%s'", o->name, o->lo, o->hi,
                         CLI_Q(s));
    *(double *)o->dst = v;
    return 0;
}

int cli_parse(const char *cmd, const char *usage, int argc, char **argv, int first,
              const cli_opt *opts, int n_opts, const char **pos, int max_pos, int *n_pos)
{
    bool seen[CLI_MAX_OPTS] = {false};
    if (n_opts > CLI_MAX_OPTS)
        return cli_error(cmd, "takes %d options, more than the parser's %d", n_opts, CLI_MAX_OPTS);
    int np = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 1;
        }
        if (a[0] == '-' && a[1] == '-') {
            const cli_opt *o = NULL;
            for (int k = 0; k < n_opts && !o; k++)
                if (!strcmp(opts[k].name, a))
                    o = &opts[k];
            if (!o)
                return cli_error(cmd, "unknown option '%s' (see nabla %s --help)", CLI_Q(a), cmd);
            if (seen[o - opts])
                return cli_error(cmd, "%s is given twice (give each option once)", o->name);
            seen[o - opts] = true;
            if (o->kind == CLI_FLAG) {
                *(bool *)o->dst = true;
                continue;
            }
            if (i + 1 >= argc)
                return cli_error(cmd, "%s needs a value", a);
            if (parse_value(cmd, o, argv[++i]) != 0)
                return 2;
            continue;
        }
        if (np >= max_pos)
            return cli_error(cmd, "unexpected argument '%s' (see nabla %s --help)", CLI_Q(a), cmd);
        pos[np++] = a;
    }
    if (n_pos)
        *n_pos = np;
    return 0;
}

double cli_now(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void cli_json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

void cli_json_num_field(const char *key, double v)
{
    printf(", \"%s\": ", key);
    cli_json_num(stdout, v);
}

void cli_json_str_field(const char *key, const char *s)
{
    printf(", \"%s\": ", key);
    cli_json_str(stdout, s);
}

/* OpenBLAS's control, declared weak: non-NULL only when the library that
 * does the matmuls is OpenBLAS. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

void cli_set_blas_threads(int n)
{
    if (openblas_set_num_threads)
        openblas_set_num_threads(n < 1 ? 1 : n);
}
