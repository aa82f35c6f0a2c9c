/* A trained MLP read back from a file's metadata and tensors. */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../io/file.h"
#include "model_file.h"

/* A sentence into why; returns -1. */
static int why_set(char *why, size_t why_len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int why_set(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The value of @p key into buf: 1 found, 0 absent, -1 (with why) too long. */
static int meta_text(const char *meta, const char *key, char *buf, size_t cap, char *why,
                     size_t why_len)
{
    nb_status st = nb_meta_get(meta, key, buf, cap);
    if (st == NB_ERR_NOTFOUND)
        return 0;
    if (st != NB_OK)
        return why_set(why, why_len, "metadata %s= is longer than %zu bytes", key, cap - 1);
    return 1;
}

/* A finite number under @p key: 1 found, 0 absent, -1 (with why) bad. */
static int meta_number(const char *meta, const char *key, double *out, char *why, size_t why_len)
{
    char buf[64], *end;
    int k = meta_text(meta, key, buf, sizeof buf, why, why_len);
    if (k <= 0)
        return k;
    errno = 0;
    double v = strtod(buf, &end);
    if (end == buf || *end || errno || !isfinite(v))
        return why_set(why, why_len, "metadata %s=%s is not a finite number", key, buf);
    *out = v;
    return 1;
}

/* An activation under @p key: 1 found, 0 absent, -1 (with why) unknown. */
static int meta_act(const char *meta, const char *key, nb_act *out, char *why, size_t why_len)
{
    char buf[64];
    int k = meta_text(meta, key, buf, sizeof buf, why, why_len);
    if (k <= 0)
        return k;
    if (nb_act_from_name(buf, out) != NB_OK)
        return why_set(why, why_len, "metadata %s=%s is not an activation (%s)", key, buf,
                       nb_act_names());
    return 1;
}

/* "64,128,10": whole numbers >= 1, no empty entries, at most CLI_MAX_SIZES. */
static int meta_sizes(const char *meta, cli_mlp_desc *d, char *why, size_t why_len)
{
    char buf[1024];
    int k = meta_text(meta, "sizes", buf, sizeof buf, why, why_len);
    if (k <= 0)
        return k;
    const char *p = buf;
    for (;;) {
        int64_t v = 0;
        const char *start = p;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (v > (INT64_MAX - 9) / 10)
                return why_set(why, why_len, "metadata sizes=%s: a size is too large", buf);
            v = 10 * v + (*p - '0');
        }
        if (p == start || v < 1 || (*p && *p != ','))
            return why_set(why, why_len,
                           "metadata sizes=%s is not a list of whole numbers >= 1 like 64,128,10",
                           buf);
        if (d->n_sizes == CLI_MAX_SIZES)
            return why_set(why, why_len, "metadata sizes=%s names more than %d sizes", buf,
                           CLI_MAX_SIZES);
        d->sizes[d->n_sizes++] = v;
        if (!*p++)
            break;
    }
    if (d->n_sizes < 2)
        return why_set(why, why_len, "metadata sizes=%s names fewer than two layer sizes", buf);
    return 1;
}

int cli_mlp_desc_read(const char *meta, cli_mlp_desc *d, char *why, size_t why_len)
{
    memset(d, 0, sizeof *d);
    d->batch_norm = -1;
    d->bn_eps = 1e-5;
    d->out_act = NB_ACT_IDENTITY;
    d->dtype = NB_F32;
    char buf[64];
    int k = meta_text(meta, "arch", buf, sizeof buf, why, why_len);
    if (k < 0)
        return -1;
    d->has_arch = k == 1;
    d->is_mlp = k == 1 && !strcmp(buf, "mlp");
    if (meta_sizes(meta, d, why, why_len) < 0)
        return -1;
    k = meta_act(meta, "act", &d->act, why, why_len);
    if (k < 0)
        return -1;
    d->has_act = k == 1;
    if (meta_act(meta, "out_act", &d->out_act, why, why_len) < 0)
        return -1;
    if (nb_act_has_param(d->out_act) || d->out_act == NB_ACT_MAXOUT)
        return why_set(why, why_len, "metadata out_act=%s is not an output activation",
                       nb_act_name(d->out_act));
    static const char *const keys[4] = {"alpha", "beta", "lower", "upper"};
    double *dst[4] = {&d->given.alpha, &d->given.beta, &d->given.lower, &d->given.upper};
    double v;
    for (int i = 0; i < 4; i++) {
        k = meta_number(meta, keys[i], dst[i], why, why_len);
        if (k < 0)
            return -1;
        d->opts_given |= (unsigned)k << i;
    }
    k = meta_number(meta, "pieces", &v, why, why_len);
    if (k < 0)
        return -1;
    if (k == 1 && !(v >= 1 && v <= 1e9 && v == floor(v)))
        return why_set(why, why_len, "metadata pieces=%g must be a whole number >= 1", v);
    if (k == 1) {
        d->given.pieces = (int64_t)v;
        d->opts_given |= 1u << 4;
    }
    d->act_opts = cli_mlp_desc_act_opts(d, d->has_act ? d->act : NB_ACT_IDENTITY);
    k = meta_text(meta, "batchnorm", buf, sizeof buf, why, why_len);
    if (k < 0)
        return -1;
    if (k == 1 && strcmp(buf, "0") && strcmp(buf, "1"))
        return why_set(why, why_len, "metadata batchnorm=%s is not 0 or 1", buf);
    if (k == 1)
        d->batch_norm = buf[0] == '1';
    k = meta_number(meta, "bn_eps", &d->bn_eps, why, why_len);
    if (k < 0)
        return -1;
    if (!(d->bn_eps > 0))
        return why_set(why, why_len, "metadata bn_eps=%g must be > 0", d->bn_eps);
    k = meta_text(meta, "dtype", buf, sizeof buf, why, why_len);
    if (k < 0)
        return -1;
    if (k == 1 && strcmp(buf, "f32") && strcmp(buf, "f64"))
        return why_set(why, why_len, "metadata dtype=%s is not f32 or f64", buf);
    d->has_dtype = k == 1;
    d->dtype = k == 1 && buf[1] == '6' ? NB_F64 : NB_F32;
    k = meta_text(meta, "input_norm", buf, sizeof buf, why, why_len);
    if (k < 0)
        return -1;
    if (k == 1 && strcmp(buf, "standardize"))
        return why_set(why, why_len, "metadata input_norm=%s is not 'standardize'", buf);
    d->input_norm = k == 1;
    return 0;
}

nb_act_opts cli_mlp_desc_act_opts(const cli_mlp_desc *d, nb_act act)
{
    nb_act_opts o = nb_act_defaults(act);
    if (d->opts_given & 1u)
        o.alpha = d->given.alpha;
    if (d->opts_given & 2u)
        o.beta = d->given.beta;
    if (d->opts_given & 4u)
        o.lower = d->given.lower;
    if (d->opts_given & 8u)
        o.upper = d->given.upper;
    if (d->opts_given & 16u)
        o.pieces = d->given.pieces;
    return o;
}

/* Bytes of the largest tensors the description needs (weights, biases,
 * batch norm, input normalisation): a lower bound of what a file holding
 * the model must hold. In double: no overflow. */
static double desc_bytes(const cli_mlp_desc *d)
{
    double size = (double)nb_dtype_size(d->dtype), total = 0;
    for (int i = 1; i < d->n_sizes; i++) {
        bool hidden = i < d->n_sizes - 1;
        double cols = (double)d->sizes[i];
        if (hidden && d->act == NB_ACT_MAXOUT)
            cols *= (double)d->act_opts.pieces;
        total += ((double)d->sizes[i - 1] + 1) * cols * size;
        if (hidden && d->batch_norm == 1)
            total += 4 * (double)d->sizes[i] * size;
    }
    if (d->input_norm)
        total += 2 * (double)d->sizes[0] * (double)sizeof(double);
    return total;
}

int cli_model_from_meta(const char *meta, double max_bytes, cli_model *cm, char *why,
                        size_t why_len)
{
    cm->m = NULL;
    cm->net = NULL;
    cm->mean = cm->std = NULL;
    cli_mlp_desc *d = &cm->desc;
    if (cli_mlp_desc_read(meta, d, why, why_len) != 0)
        return -1;
    if (!d->is_mlp)
        return why_set(why, why_len,
                       "the metadata does not say arch=mlp (was the file written by nabla train?)");
    if (d->n_sizes == 0)
        return why_set(why, why_len, "the metadata has no sizes=");
    if (!d->has_act)
        return why_set(why, why_len, "the metadata has no hidden activation (act=)");
    double need = desc_bytes(d);
    if (need > max_bytes)
        return why_set(why, why_len,
                       "the metadata describes a network of at least %.0f bytes of tensors, "
                       "more than the %.0f bytes there are",
                       need, max_bytes);
    cm->opts = nb_mlp_defaults();
    cm->opts.act = d->act;
    cm->opts.out_act = d->out_act;
    cm->opts.act_opts = &d->act_opts;
    cm->opts.batch_norm = d->batch_norm == 1;
    cm->opts.bn_eps = d->bn_eps;
    cm->opts.layer.dtype = d->dtype;
    cm->opts.layer.init = NB_INIT_ZEROS; /* overwritten by a load */
    cm->m = nb_model_new();
    if (!cm->m)
        return why_set(why, why_len, "out of memory");
    nb_status st = nb_mlp_new(cm->m, NULL, d->sizes, d->n_sizes, &cm->opts, &cm->net);
    if (st == NB_OK && d->input_norm) {
        st = cli_model_add_norm(cm->m, d->sizes[0], NULL, NULL);
        cm->mean = nb_model_get(cm->m, CLI_INPUT_MEAN);
        cm->std = nb_model_get(cm->m, CLI_INPUT_STD);
    }
    if (st != NB_OK)
        return why_set(why, why_len, "cannot build the network the metadata describes: %s",
                       nb_status_str(st));
    return 0;
}

nb_status cli_model_add_norm(nb_model *m, int64_t n_in, const double *mean, const double *std)
{
    const char *names[2] = {CLI_INPUT_MEAN, CLI_INPUT_STD};
    const double *values[2] = {mean, std};
    for (int k = 0; k < 2; k++) {
        nb_tensor *t = nb_model_get(m, names[k]);
        if (!t) {
            nb_status st = nb_model_add(m, names[k], NB_F64, 1, &n_in, &t);
            if (st != NB_OK)
                return st;
            nb_tensor_set_requires_grad(t, false); /* saved, not trained */
        }
        for (int64_t j = 0; values[k] && j < n_in; j++)
            nb_tensor_set(t, j, values[k][j]);
    }
    return NB_OK;
}

int cli_model_norm(const nb_model *m, const char *prefix, int64_t n_in, nb_tensor **mean,
                   nb_tensor **std, char *why, size_t why_len)
{
    char names[2][320];
    snprintf(names[0], sizeof names[0], "%s%s", prefix, CLI_INPUT_MEAN);
    snprintf(names[1], sizeof names[1], "%s%s", prefix, CLI_INPUT_STD);
    nb_tensor *t[2] = {nb_model_get(m, names[0]), nb_model_get(m, names[1])};
    *mean = *std = NULL;
    if (!t[0] && !t[1])
        return 0;
    for (int k = 0; k < 2; k++) {
        if (!t[k])
            return why_set(why, why_len, "%s without %s", names[1 - k], names[k]);
        if (nb_tensor_dtype(t[k]) != NB_F64 || nb_tensor_rank(t[k]) != 1 ||
            nb_tensor_shape(t[k])[0] != n_in)
            return why_set(why, why_len, "%s must be f64 [%lld], one value per input", names[k],
                           (long long)n_in);
        for (int64_t j = 0; j < n_in; j++) {
            double v = nb_tensor_get(t[k], j);
            if (!isfinite(v) || (k == 1 && v < 1e-12))
                return why_set(why, why_len, "%s[%lld] = %g is not %s", names[k], (long long)j, v,
                               k ? "a usable scale (finite, >= 1e-12)" : "finite");
        }
    }
    *mean = t[0];
    *std = t[1];
    return 0;
}

/* Adds up the bytes of a file's tensors. */
static nb_status count_bytes(void *ud, const char *name, nb_dtype dt, int rank,
                             const int64_t *shape)
{
    (void)name;
    double n = (double)nb_dtype_size(dt);
    for (int i = 0; i < rank; i++)
        n *= (double)shape[i];
    *(double *)ud += n;
    return NB_OK;
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

int cli_model_open(const char *cmd, const char *path, cli_model *cm)
{
    memset(cm, 0, sizeof *cm);
    nb_error err = {0};
    nb_ckpt_opts o = {0};
    o.meta_out = cm->meta;
    o.meta_cap = sizeof cm->meta;
    nb_file_opts fo = {.meta_out = cm->meta, .meta_cap = sizeof cm->meta};
    double bytes = 0;
    nb_status st = cli_is_safetensors(path)
                       ? nb_safetensors_list(path, count_bytes, &bytes, &fo, &err)
                       : nb_ckpt_list(path, count_bytes, &bytes, &o, &err);
    if (st != NB_OK)
        return cli_error(cmd, "cannot read %s: %s", CLI_Q(path), err.msg);
    char why[512];
    if (cli_model_from_meta(cm->meta, bytes, cm, why, sizeof why) != 0)
        return cli_error(cmd, "%s: %s", CLI_Q(path), why);
    if (cli_model_load(cm->m, path, &err) != NB_OK)
        return cli_error(cmd, "cannot load %s: %s", CLI_Q(path), err.msg);
    if (cm->mean &&
        cli_model_norm(cm->m, "", cm->desc.sizes[0], &cm->mean, &cm->std, why, sizeof why) != 0)
        return cli_error(cmd, "%s: %s", CLI_Q(path), why);
    return 0;
}

void cli_model_close(cli_model *cm)
{
    nb_layer_free(cm->net);
    nb_model_free(cm->m);
    cm->m = NULL;
    cm->net = NULL;
    cm->mean = cm->std = NULL;
}
