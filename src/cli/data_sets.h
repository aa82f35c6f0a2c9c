/* Data sets named on the command line (nabla train, nabla eval). */
#ifndef NABLA_CLI_DATA_SETS_H
#define NABLA_CLI_DATA_SETS_H

#include "cli.h"

typedef struct cli_data {
    char name[128];
    nb_dataset *all;   /* what was loaded (CSV, IDX) or the training part */
    nb_dataset *train; /* owned views and copies */
    nb_dataset *val;   /* NULL unless asked for */
    nb_dataset *test;  /* NULL when the source has none */
    nb_dataset *extra[4];
    double *mean, *std; /* the standardisation applied to every part (owned),
                         * NULL when none was */
    int64_t n_features;
    int64_t n_targets; /* float targets per sample (--target), 0: labels */
} cli_data;

/* Statistics to standardise features with: x_j <- (x_j - mean_j) / std_j. */
typedef struct cli_norm {
    const double *mean, *std;
    int64_t n;
} cli_norm;

/* Open @p spec: "digits" (first 1500 rows train, last 297 test, pixels /16),
 * "fashion-mnist" (Debian's files, pixels /255), or a path: a .csv[.gz] file
 * (label in the last column, features standardised by the training part:
 * d->mean, d->std, constant features with std 1)
 * or an IDX images file with its labels file beside it; a path is split
 * 80/20 into train and test at random, drawn from @p rng (in file order
 * when it is NULL). With @p want_val a tenth of the training part, drawn
 * from @p rng, is held out for validation. A validation or test part that
 * holds fewer classes than the data gives a warning on stderr. Returns 0,
 * or 2 after a one-line error (then @p d holds nothing). Close with
 * cli_data_close (also after an error). */
int cli_data_open(const char *cmd, const char *spec, bool want_val, nb_rng *rng, cli_data *d);
/* The same, with the features of every part standardised by @p norm (a
 * model's stored statistics) instead of a CSV's own training part; @p norm
 * NULL: as cli_data_open. d->mean and d->std record what was applied. */
int cli_data_open_norm(const char *cmd, const char *spec, bool want_val, nb_rng *rng,
                       const cli_norm *norm, cli_data *d);
/* The same with float targets instead of labels: @p target (NULL: labels)
 * lists the target columns of a .csv file, separated by commas, each a
 * header name or, when it is a whole number (optionally negative), a 0-based
 * column index (negative from the end); the other columns are the features.
 * Any other data set, and a list that is not of this form, is an error. */
int cli_data_open_target(const char *cmd, const char *spec, const char *target, bool want_val,
                         nb_rng *rng, const cli_norm *norm, cli_data *d);
void cli_data_close(cli_data *d);

/* The number of columns listed in a --target list (0 for NULL). */
int cli_target_count(const char *target);

#endif
