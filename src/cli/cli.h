/* Shared by the nabla command's subcommands: option parsing, timing, JSON. */
#ifndef NABLA_CLI_H
#define NABLA_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "nabla.h"

/* One option of a subcommand: "--name VALUE" (or a bare "--name" for flags). */
typedef enum cli_kind { CLI_FLAG, CLI_INT, CLI_REAL, CLI_STR } cli_kind;

typedef struct cli_opt {
    const char *name; /* with the dashes: "--seed" */
    cli_kind kind;
    void *dst;     /* bool, long, double or const char * */
    double lo, hi; /* range of CLI_INT and CLI_REAL values */
} cli_opt;

/* Most options a subcommand takes. */
#define CLI_MAX_OPTS 64

/* Parse argv[first..argc) against opts (at most CLI_MAX_OPTS). Positional
 * arguments go to pos (at most max_pos of them; *n_pos gets their number;
 * pos may be NULL when none are taken). An option given twice is an error.
 * Returns 0 to go on, 1 when --help was printed (exit 0), 2 on an error
 * already printed as one line on stderr (exit 2). */
int cli_parse(const char *cmd, const char *usage, int argc, char **argv, int first,
              const cli_opt *opts, int n_opts, const char **pos, int max_pos, int *n_pos);

/* A one-line error on stderr: "nabla CMD: ...". Returns 2. */
int cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Hold error lines instead of printing them (on), e.g. on the ranks of a
 * data-parallel run other than rank 0, whose errors are mostly rank 0's
 * too; the first held line is printed by cli_release_error, after
 * @p prefix ("rank 1: "), and forgotten. Warnings are not printed while
 * errors are held. */
void cli_hold_errors(bool on);
bool cli_holding_errors(void);
void cli_release_error(const char *prefix);

/* Error lines quote at most this many bytes of a user's argument. */
#define CLI_QUOTE_MAX 80

/* @p s itself when it has at most CLI_QUOTE_MAX bytes, otherwise its first
 * bytes (not cutting a UTF-8 sequence) and "..." in buf, which holds
 * CLI_QUOTE_MAX + 1 bytes. For quoting an argument in an error line;
 * CLI_Q(s) brings its own buffer, valid until the end of the statement's
 * enclosing block. */
const char *cli_quote(const char *s, char *buf);
#define CLI_Q(s) cli_quote((s), (char[CLI_QUOTE_MAX + 1]){0})
/* The same for the @p n bytes at @p s (no NUL needed): always in buf. */
const char *cli_quote_n(const char *s, size_t n, char *buf);
#define CLI_QN(s, n) cli_quote_n((s), (n), (char[CLI_QUOTE_MAX + 1]){0})

/* Threads of the BLAS library's matmuls (OpenBLAS; nothing otherwise). Its
 * default, every core, fights the command's own threads and makes results
 * depend on the machine; the command sets it from --threads (1 otherwise). */
void cli_set_blas_threads(int n);

/* Wall-clock seconds. */
double cli_now(void);

/* JSON helpers: a string with escapes, and a number (null when not finite). */
void cli_json_str(FILE *f, const char *s);
void cli_json_num(FILE *f, double v);
/* `, "key": value` on stdout: the fields after the first of a JSON line. */
void cli_json_num_field(const char *key, double v);
void cli_json_str_field(const char *key, const char *s);

/* Subcommands. */
int cmd_demo(int argc, char **argv);
int cmd_modes(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_trace(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif
