/* Data sets named on the command line. */

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "data_sets.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Keep a data set so cli_data_close frees it. */
static nb_dataset *keep(cli_data *d, nb_dataset *ds)
{
    for (int i = 0; i < 4; i++)
        if (!d->extra[i]) {
            d->extra[i] = ds;
            return ds;
        }
    return ds;
}

/* Two parts of ds: n_first samples and the rest, drawn at random from rng
 * (in file order when rng is NULL). */
static nb_status cut(cli_data *d, nb_dataset *ds, nb_rng *rng, int64_t n_first, nb_dataset **first,
                     nb_dataset **second)
{
    nb_dataset *a = NULL, *b = NULL;
    nb_status st = nb_dataset_split(ds, rng, n_first, 0, &a, NULL, &b);
    if (st != NB_OK) {
        nb_dataset_free(a);
        nb_dataset_free(b);
        return st;
    }
    *first = keep(d, a);
    *second = keep(d, b);
    return NB_OK;
}

static int load_error(const char *cmd, const char *what, nb_status st, const nb_error *e)
{
    if (e && e->msg[0])
        return cli_error(cmd, "%s", e->msg);
    return cli_error(cmd, "cannot load %s: %s", CLI_Q(what), nb_status_str(st));
}

/* Standardise the training and test parts (copies) by @p norm, or by the
 * statistics of @p train when norm is NULL; record them in d. */
static int standardize(const char *cmd, const char *spec, cli_data *d, nb_dataset *train,
                       const cli_norm *norm)
{
    int64_t F = nb_dataset_features(d->all);
    if (norm && norm->n != F)
        return cli_error(cmd, "--data %s has %lld features; the model standardises %lld",
                         CLI_Q(spec), (long long)F, (long long)norm->n);
    d->mean = malloc(sizeof *d->mean * (size_t)(F > 0 ? F : 1));
    d->std = malloc(sizeof *d->std * (size_t)(F > 0 ? F : 1));
    if (!d->mean || !d->std)
        return cli_error(cmd, "out of memory");
    d->n_features = F;
    if (norm) {
        memcpy(d->mean, norm->mean, sizeof *d->mean * (size_t)F);
        memcpy(d->std, norm->std, sizeof *d->std * (size_t)F);
    } else {
        nb_status st = nb_dataset_mean_std(train, d->mean, d->std);
        if (st != NB_OK)
            return load_error(cmd, spec, st, NULL);
        for (int64_t j = 0; j < F; j++) /* the divisor used: constant features keep 1 */
            d->std[j] = d->std[j] < 1e-12 ? 1.0 : d->std[j];
    }
    nb_status st = nb_dataset_standardize(train, d->mean, d->std);
    if (st == NB_OK)
        st = nb_dataset_standardize(d->test, d->mean, d->std);
    return st == NB_OK ? 0 : load_error(cmd, spec, st, NULL);
}

/* The number of classes that the labels of ds take, using seen[0..k). */
static int64_t classes_held(const nb_dataset *ds, bool *seen, int64_t k)
{
    int64_t held = 0;
    memset(seen, 0, (size_t)k * sizeof *seen);
    for (int64_t i = 0; i < nb_dataset_count(ds); i++) {
        int64_t c = nb_dataset_label(ds, i);
        if (c >= 0 && c < k && !seen[c]) {
            seen[c] = true;
            held++;
        }
    }
    return held;
}

/* A warning on stderr for each of the validation and test parts that holds
 * fewer classes than the data: its accuracy says little then. */
static void warn_missing_classes(const char *cmd, const cli_data *d)
{
    int64_t k = nb_dataset_classes(d->all);
    if (cli_holding_errors())
        return; /* another rank of the run says it */
    bool *seen = k > 0 ? calloc((size_t)k, sizeof *seen) : NULL;
    if (!seen)
        return; /* a warning only: skipped when there is no memory for it */
    int64_t all = classes_held(d->all, seen, k);
    const char *names[2] = {"validation", "test"};
    const nb_dataset *parts[2] = {d->val, d->test};
    for (int i = 0; i < 2; i++) {
        if (!parts[i])
            continue;
        int64_t held = classes_held(parts[i], seen, k);
        if (held < all)
            fprintf(stderr,
                    "nabla %s: warning: the %s part (%lld samples) holds %lld of the %lld "
                    "classes of %s\n",
                    cmd, names[i], (long long)nb_dataset_count(parts[i]), (long long)held,
                    (long long)all, CLI_Q(d->name));
    }
    free(seen);
}

/* Most target columns a --target list may name. */
enum { MAX_TARGETS = 64 };

int cli_target_count(const char *target)
{
    if (!target)
        return 0;
    int n = 1;
    for (const char *p = target; *p; p++)
        n += *p == ',';
    return n;
}

/* True when s[0..len) is a whole number, optionally negative, that fits
 * an int: *v gets it. */
static bool column_number(const char *s, size_t len, int *v)
{
    char buf[16];
    size_t digits = len - (len > 0 && s[0] == '-');
    if (digits == 0 || len >= sizeof buf || strspn(s + (len - digits), "0123456789") != digits)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    errno = 0;
    long x = strtol(buf, NULL, 10);
    if (errno || x < INT_MIN || x > INT_MAX)
        return false;
    *v = (int)x;
    return true;
}

/* Load the CSV file @p spec with the targets of the list @p target (see
 * cli_data_open_target) into d->all. */
static int load_targets(const char *cmd, const char *spec, const char *target, cli_data *d)
{
    int n = cli_target_count(target);
    if (n > MAX_TARGETS)
        return cli_error(cmd, "--target %s: more than %d columns", CLI_Q(target), MAX_TARGETS);
    char *copy = strdup(target);
    const char *names[MAX_TARGETS];
    int columns[MAX_TARGETS] = {0};
    if (!copy)
        return cli_error(cmd, "out of memory");
    char *p = copy;
    for (int k = 0; k < n; k++) {
        size_t len = strcspn(p, ",");
        if (len == 0) {
            free(copy);
            return cli_error(cmd,
                             "--target %s: column %d of the list is empty (a list like y or "
                             "y1,y2 or 3)",
                             CLI_Q(target), k + 1);
        }
        bool number = column_number(p, len, &columns[k]);
        names[k] = number ? NULL : p;
        p[len] = '\0';
        p += len + 1;
    }
    nb_csv_opts co = {0};
    co.n_targets = n;
    co.target_names = names;
    co.target_columns = columns;
    nb_error err = {0};
    nb_status st = nb_dataset_load_csv(spec, &co, &d->all, &err);
    free(copy);
    if (st != NB_OK)
        return load_error(cmd, spec, st, &err);
    d->n_targets = n;
    return 0;
}

static int open_data(const char *cmd, const char *spec, const char *target, bool want_val,
                     nb_rng *rng, const cli_norm *norm, cli_data *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", spec);
    nb_error err = {0};
    nb_status st;
    nb_dataset *train_part = NULL;
    bool csv = ends_with(spec, ".csv") || ends_with(spec, ".csv.gz");
    if (target && !csv)
        return cli_error(cmd,
                         "--target %s needs a .csv file; --data %s holds images with class "
                         "labels",
                         CLI_Q(target), CLI_Q(spec));
    if (!strcmp(spec, "digits")) {
        st = nb_dataset_digits(NULL, &d->all);
        if (st == NB_OK)
            st = nb_dataset_scale(d->all, 16.0);
        if (st == NB_OK)
            st = cut(d, d->all, NULL, 1500, &train_part, &d->test);
        if (st != NB_OK)
            return load_error(cmd, "digits", st, NULL);
    } else if (!strcmp(spec, "fashion-mnist")) {
        st = nb_dataset_fashion_mnist(NULL, true, NULL, &d->all, &err);
        if (st == NB_OK)
            st = nb_dataset_fashion_mnist(NULL, false, NULL, &d->test, &err);
        if (st == NB_OK)
            keep(d, d->test);
        if (st == NB_OK)
            st = nb_dataset_scale(d->all, 255.0);
        if (st == NB_OK)
            st = nb_dataset_scale(d->test, 255.0);
        if (st != NB_OK)
            return load_error(cmd, "fashion-mnist (install dataset-fashion-mnist)", st, &err);
        train_part = d->all;
    } else {
        if (target) {
            int rc = load_targets(cmd, spec, target, d);
            if (rc != 0)
                return rc;
            st = NB_OK;
        } else if (csv) {
            nb_csv_opts co = {0};
            co.label_column = -1;
            st = nb_dataset_load_csv(spec, &co, &d->all, &err);
        } else {
            /* IDX: the labels file beside the images file */
            char labels[4096];
            snprintf(labels, sizeof labels, "%s", spec);
            char *p = strstr(labels, "images-idx3");
            if (!p)
                return cli_error(cmd,
                                 "--data %s: not digits, fashion-mnist, a .csv file or an "
                                 "IDX images file (name containing 'images-idx3')",
                                 CLI_Q(spec));
            memcpy(p, "labels-idx1", 11);
            st = nb_dataset_load_idx(spec, labels, NULL, &d->all, &err);
            if (st == NB_OK)
                st = nb_dataset_scale(d->all, 255.0);
        }
        if (st != NB_OK)
            return load_error(cmd, spec, st, &err);
        int64_t n = nb_dataset_count(d->all);
        if (n < 5)
            return cli_error(cmd, "--data %s: %lld samples are too few to split", CLI_Q(spec),
                             (long long)n);
        st = cut(d, d->all, rng, n - n / 5, &train_part, &d->test);
        if (st != NB_OK)
            return load_error(cmd, spec, st, NULL);
    }
    /* a CSV's features are standardised by its training part, and any data
     * set's by the model's statistics when given */
    if (norm || csv) {
        int rc = standardize(cmd, spec, d, train_part, norm);
        if (rc != 0)
            return rc;
    }
    d->train = train_part;
    if (want_val) {
        int64_t n = nb_dataset_count(train_part);
        if (n < 10)
            return cli_error(cmd, "%lld training samples are too few to hold some out",
                             (long long)n);
        st = cut(d, train_part, rng, n - n / 10, &d->train, &d->val);
        if (st != NB_OK)
            return load_error(cmd, spec, st, NULL);
    }
    return 0;
}

int cli_data_open(const char *cmd, const char *spec, bool want_val, nb_rng *rng, cli_data *d)
{
    return cli_data_open_norm(cmd, spec, want_val, rng, NULL, d);
}

int cli_data_open_norm(const char *cmd, const char *spec, bool want_val, nb_rng *rng,
                       const cli_norm *norm, cli_data *d)
{
    return cli_data_open_target(cmd, spec, NULL, want_val, rng, norm, d);
}

int cli_data_open_target(const char *cmd, const char *spec, const char *target, bool want_val,
                         nb_rng *rng, const cli_norm *norm, cli_data *d)
{
    int rc = open_data(cmd, spec, target, want_val, rng, norm, d);
    if (rc != 0)
        cli_data_close(d);
    else
        warn_missing_classes(cmd, d);
    return rc;
}

void cli_data_close(cli_data *d)
{
    for (int i = 0; i < 4; i++)
        nb_dataset_free(d->extra[i]);
    nb_dataset_free(d->all);
    free(d->mean);
    free(d->std);
    memset(d, 0, sizeof *d);
}
