/* A trained network read back from a file's metadata and tensors. */

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../io/file.h"
#include "model_file.h"

/* ------------------------------------------------ what the file holds */

/* One tensor of a file, as listed. */
typedef struct listed {
    char *name;
    nb_dtype dtype;
    int rank;
    int64_t rows, cols; /* a matrix's shape */
} listed;

/* The tensors of a file and their bytes. */
typedef struct listing {
    listed *t;
    size_t n, cap;
    double bytes; /* in double: no overflow */
} listing;

static nb_status list_tensor(void *ud, const char *name, nb_dtype dt, int rank,
                             const int64_t *shape)
{
    listing *L = ud;
    double bytes = (double)nb_dtype_size(dt);
    for (int i = 0; i < rank; i++)
        bytes *= (double)shape[i];
    L->bytes += bytes;
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 16;
        listed *t = realloc(L->t, cap * sizeof *t);
        if (!t)
            return NB_ERR_NOMEM;
        L->t = t;
        L->cap = cap;
    }
    listed *e = &L->t[L->n];
    e->name = strdup(name);
    if (!e->name)
        return NB_ERR_NOMEM;
    e->dtype = dt;
    e->rank = rank;
    e->rows = rank == 2 ? shape[0] : 0;
    e->cols = rank == 2 ? shape[1] : 0;
    L->n++;
    return NB_OK;
}

static void listing_free(listing *L)
{
    for (size_t i = 0; i < L->n; i++)
        free(L->t[i].name);
    free(L->t);
}

/* The tensor "<prefix><base><i>.<suffix>" (i < 0: "<prefix><base>"), or NULL. */
static const listed *find(const listing *L, const char *prefix, const char *base, int i,
                          const char *suffix)
{
    char name[512];
    if (i < 0)
        snprintf(name, sizeof name, "%s%s", prefix, base);
    else
        snprintf(name, sizeof name, "%s%s%d.%s", prefix, base, i, suffix);
    for (size_t k = 0; k < L->n; k++)
        if (!strcmp(L->t[k].name, name))
            return &L->t[k];
    return NULL;
}

/* The prefix of the names: whatever comes before the first "fc1.weight"
 * that starts a name or follows a '.'; "" when there is none. */
static int find_prefix(const listing *L, char *prefix, size_t cap)
{
    prefix[0] = '\0';
    for (size_t k = 0; k < L->n; k++) {
        const char *name = L->t[k].name;
        size_t len = strlen(name);
        if (len >= 10 && !strcmp(name + len - 10, "fc1.weight") &&
            (len == 10 || name[len - 11] == '.')) {
            if (len - 10 >= cap)
                return -1;
            memcpy(prefix, name, len - 10);
            prefix[len - 10] = '\0';
            return 0;
        }
    }
    return 0;
}

/* ------------------------------------------------- the description */

/* Append ",<v>" (or "<v>" first) to the list in buf[0..cap); false when
 * it does not fit. */
static bool append_size(char *buf, size_t cap, int64_t v)
{
    size_t len = strlen(buf);
    int k = snprintf(buf + len, cap - len, "%s%lld", len ? "," : "", (long long)v);
    return k >= 0 && (size_t)k < cap - len;
}

/* The description of a file whose metadata has none (no arch=): its MLP
 * read from the tensors <prefix>fc1.weight, fc2.weight, ... (sizes, the
 * dtype of fc1.weight, batch norm when bn1.weight is there, biases when
 * fc1.bias is, maxout pieces from the widths) and added to the metadata in
 * @p desc, whose own keys (act=, alpha=, ...) stay. Returns 0, or 2 after
 * an error. */
static int guess_description(const char *cmd, const listing *L, const char *prefix, char *desc,
                             size_t cap)
{
    const listed *fc1 = find(L, prefix, "fc", 1, "weight");
    if (!fc1)
        return cli_error(cmd, "the file has no model description (arch=) and no tensor named "
                              "fc1.weight: not an MLP that nb_mlp_new builds");
    int n = 0;
    char sizes[2048] = "";
    const listed *w = fc1, *last = fc1;
    for (; w; w = find(L, prefix, "fc", ++n + 1, "weight")) {
        if (w->rank != 2)
            return cli_error(cmd, "%s is not a matrix", w->name);
        if (!append_size(sizes, sizeof sizes, w->rows))
            return cli_error(cmd, "the layers fc1, fc2, ... are too many to describe");
        last = w;
    }
    if (!append_size(sizes, sizeof sizes, last->cols))
        return cli_error(cmd, "the layers fc1, fc2, ... are too many to describe");
    char act[64] = "identity";
    nb_act kind = NB_ACT_IDENTITY;
    if (nb_meta_get(desc, "act", act, sizeof act) == NB_ERR_NOTFOUND && n > 1)
        return cli_error(cmd, "the file's metadata names no hidden activation (act=; nabla export "
                              "takes --act NAME)");
    nb_act_from_name(act, &kind); /* an unknown one is refused with the description */
    const listed *fc2 = find(L, prefix, "fc", 2, "weight");
    /* one key after another (the file's own keys stay: NB_ERR_EXISTS) */
    nb_status st = nb_meta_put(desc, cap, "arch", "mlp");
    if (st == NB_OK || st == NB_ERR_EXISTS)
        st = nb_meta_put(desc, cap, "sizes", "%s", sizes);
    if (st == NB_OK || st == NB_ERR_EXISTS)
        st = nb_meta_put(desc, cap, "act", "%s", act);
    if (st == NB_OK || st == NB_ERR_EXISTS)
        st = nb_meta_put(desc, cap, "batchnorm", "%d", find(L, prefix, "bn", 1, "weight") != NULL);
    if (st == NB_OK || st == NB_ERR_EXISTS)
        st = nb_meta_put(desc, cap, "dtype", "%s", nb_dtype_name(fc1->dtype));
    if ((st == NB_OK || st == NB_ERR_EXISTS) && !find(L, prefix, "fc", 1, "bias"))
        st = nb_meta_put(desc, cap, "bias", "0");
    if ((st == NB_OK || st == NB_ERR_EXISTS) && kind == NB_ACT_MAXOUT && fc2 && fc2->rows > 0)
        st = nb_meta_put(desc, cap, "pieces", "%lld", (long long)(fc1->cols / fc2->rows));
    if (st != NB_OK && st != NB_ERR_EXISTS)
        return cli_error(cmd, "the file's metadata leaves no room for a description");
    return 0;
}

/* The description the network is built from into desc[0..cap): the file's
 * metadata, with act= from @p act when it names none (it must agree when
 * it does), completed from the tensors when it has no arch=. Returns 0, or
 * 2 after an error. */
static int description(const char *cmd, const cli_model *cm, const listing *L, const char *act,
                       char *desc, size_t cap)
{
    snprintf(desc, cap, "%s", cm->meta);
    if (act) {
        nb_act want, have;
        char text[64];
        if (nb_act_from_name(act, &want) != NB_OK)
            return cli_error(cmd, "--act %s is not an activation (%s)", CLI_Q(act), nb_act_names());
        if (nb_meta_get(desc, "act", text, sizeof text) == NB_OK &&
            (nb_act_from_name(text, &have) != NB_OK || have != want))
            return cli_error(cmd, "--act %s disagrees with the file's act=%s", CLI_Q(act),
                             CLI_Q(text));
        if (nb_meta_put(desc, cap, "act", "%s", nb_act_name(want)) == NB_ERR_ARG)
            return cli_error(cmd, "the file's metadata leaves no room for act=");
    }
    char arch[8];
    if (nb_meta_get(desc, "arch", arch, sizeof arch) == NB_ERR_NOTFOUND)
        return guess_description(cmd, L, cm->prefix, desc, cap);
    return 0;
}

/* -------------------------------------------- input normalisation */

nb_status cli_model_add_norm(nb_model *m, const char *prefix, int64_t n_in, const double *mean,
                             const double *std)
{
    const char *names[2] = {CLI_INPUT_MEAN, CLI_INPUT_STD};
    const double *values[2] = {mean, std};
    for (int k = 0; k < 2; k++) {
        char name[320];
        snprintf(name, sizeof name, "%s%s", prefix, names[k]);
        nb_tensor *t = nb_model_get(m, name);
        if (!t) {
            nb_status st = nb_model_add(m, name, NB_F64, 1, &n_in, &t);
            if (st != NB_OK)
                return st;
            nb_tensor_set_requires_grad(t, false); /* saved, not trained */
        }
        for (int64_t j = 0; values[k] && j < n_in; j++)
            nb_tensor_set(t, j, values[k][j]);
    }
    return NB_OK;
}

/* The loaded input normalisation of @p cm: finite means, scales >= 1e-12.
 * Returns 0, or 2 after an error. */
static int check_norm(const char *cmd, const char *path, cli_model *cm)
{
    nb_tensor *t[2];
    const char *names[2] = {CLI_INPUT_MEAN, CLI_INPUT_STD};
    for (int k = 0; k < 2; k++) {
        char name[320];
        snprintf(name, sizeof name, "%s%s", cm->prefix, names[k]);
        t[k] = nb_model_get(cm->m, name);
        for (int64_t j = 0; j < cm->n_in; j++) {
            double v = nb_tensor_get(t[k], j);
            if (!isfinite(v) || (k == 1 && v < 1e-12))
                return cli_error(cmd, "%s: %s[%lld] = %g is not %s", CLI_Q(path), name,
                                 (long long)j, v,
                                 k ? "a usable scale (finite, >= 1e-12)" : "finite");
        }
    }
    cm->mean = t[0];
    cm->std = t[1];
    return 0;
}

/* Notes a tensor named CLI_INPUT_MEAN. */
static nb_status find_norm(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape)
{
    (void)dt, (void)rank, (void)shape;
    if (!strcmp(name, CLI_INPUT_MEAN))
        *(bool *)ud = true;
    return NB_OK;
}

int cli_file_has_norm(const char *path, bool *has, nb_error *err)
{
    *has = false;
    nb_status st = cli_is_safetensors(path) ? nb_safetensors_list(path, find_norm, has, NULL, err)
                                            : nb_ckpt_list(path, find_norm, has, NULL, err);
    return st == NB_OK ? 0 : -1;
}

/* ------------------------------------------------------------- files */

bool cli_is_safetensors(const char *path)
{
    /* a checkpoint is a safetensors file that says so in its metadata; a
     * file that does not read is left to the loader to explain */
    static char meta[NB_META_MAX + 1];
    nb_file_opts o = {.meta_out = meta, .meta_cap = sizeof meta};
    if (nb_safetensors_list(path, NULL, NULL, &o, NULL) != NB_OK)
        return true;
    char v[16];
    return !(nb_meta_get(meta, "nabla.format", v, sizeof v) == NB_OK && !strcmp(v, "checkpoint"));
}

nb_status cli_model_load(nb_model *m, const char *path, nb_error *err)
{
    return cli_is_safetensors(path) ? nb_model_load_safetensors(m, path, NULL, err)
                                    : nb_model_load(m, NULL, path, NULL, err);
}

/* Build the network of description @p desc and load @p path into it, with
 * the input normalisation when the file has it. Returns 0, or 2 after an
 * error. */
static int build_and_load(const char *cmd, const char *path, const listing *L, const char *desc,
                          cli_model *cm)
{
    nb_error e;
    int64_t need;
    if (nb_layer_description_check(desc, &need, &e) != NB_OK)
        return cli_error(cmd, "%s: %s", CLI_Q(path), e.msg);
    if ((double)need > L->bytes)
        return cli_error(cmd,
                         "%s: the metadata describes a network of %lld bytes of tensors, more "
                         "than the %.0f bytes the file holds",
                         CLI_Q(path), (long long)need, L->bytes);
    char norm[64] = "";
    nb_status ns = nb_meta_get(cm->meta, "input_norm", norm, sizeof norm);
    if (ns != NB_ERR_NOTFOUND && (ns != NB_OK || strcmp(norm, "standardize")))
        return cli_error(cmd, "%s: the metadata's input_norm=%s is not 'standardize'", CLI_Q(path),
                         CLI_Q(norm));
    bool has_norm = ns == NB_OK || find(L, cm->prefix, CLI_INPUT_MEAN, -1, NULL) ||
                    find(L, cm->prefix, CLI_INPUT_STD, -1, NULL);
    cm->m = nb_model_new();
    if (!cm->m)
        return cli_error(cmd, "out of memory");
    nb_rng_seed(&cm->rng, 1);
    /* overwritten by the load; a description of more bytes than the file
     * holds is refused before they are allocated */
    nb_layer_opts lo = {.init = NB_INIT_ZEROS,
                        .rng = &cm->rng,
                        .max_bytes = L->bytes >= 0x1p62 ? INT64_MAX
                                     : L->bytes >= 1    ? (int64_t)L->bytes
                                                        : 1};
    char prefix[sizeof cm->prefix];
    snprintf(prefix, sizeof prefix, "%.*s", (int)strlen(cm->prefix) - (cm->prefix[0] != '\0'),
             cm->prefix); /* without its '.' */
    if (nb_layer_from_description(cm->m, prefix, desc, &lo, &cm->net, &e) != NB_OK)
        return cli_error(cmd, "%s: %s", CLI_Q(path), e.msg);
    nb_layer_info info;
    nb_layer_get_info(cm->net, &info);
    cm->n_in = info.n_in;
    if (has_norm && cli_model_add_norm(cm->m, cm->prefix, cm->n_in, NULL, NULL) != NB_OK)
        return cli_error(cmd, "out of memory");
    nb_error err;
    if (cli_model_load(cm->m, path, &err) != NB_OK)
        return cli_error(cmd, "cannot load %s into the network its metadata describes: %s",
                         CLI_Q(path), err.msg);
    return has_norm ? check_norm(cmd, path, cm) : 0;
}

int cli_model_open(const char *cmd, const char *path, const char *act, cli_model *cm)
{
    memset(cm, 0, sizeof *cm);
    nb_error err = {0};
    nb_ckpt_opts o = {0};
    o.meta_out = cm->meta;
    o.meta_cap = sizeof cm->meta;
    nb_file_opts fo = {.meta_out = cm->meta, .meta_cap = sizeof cm->meta};
    listing L = {0};
    bool st_file = cli_is_safetensors(path);
    nb_status st = st_file ? nb_safetensors_list(path, list_tensor, &L, &fo, &err)
                           : nb_ckpt_list(path, list_tensor, &L, &o, &err);
    char *desc = malloc(NB_META_MAX + 1);
    int rc = 0;
    if (st != NB_OK)
        rc = cli_error(cmd, "cannot read %s (%s file): %s", CLI_Q(path),
                       st_file ? "safetensors" : "checkpoint",
                       st == NB_ERR_NOMEM ? "out of memory" : err.msg);
    else if (!desc)
        rc = cli_error(cmd, "out of memory");
    else if (find_prefix(&L, cm->prefix, sizeof cm->prefix) != 0)
        rc = cli_error(cmd, "%s: the names' prefix is longer than %zu bytes", CLI_Q(path),
                       sizeof cm->prefix - 1);
    if (rc == 0)
        rc = description(cmd, cm, &L, act, desc, NB_META_MAX + 1);
    if (rc == 0)
        rc = build_and_load(cmd, path, &L, desc, cm);
    free(desc);
    listing_free(&L);
    return rc;
}

void cli_model_close(cli_model *cm)
{
    nb_layer_free(cm->net);
    nb_model_free(cm->m);
    cm->m = NULL;
    cm->net = NULL;
    cm->mean = cm->std = NULL;
}
