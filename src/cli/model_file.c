/* A trained MLP read back from a checkpoint's metadata and tensors. */

#include <stdlib.h>
#include <string.h>

#include "../io/file.h"
#include "model_file.h"

/* A number-valued key of the metadata, when present. */
static bool meta_real(const char *meta, const char *key, double *out)
{
    char buf[64], *end;
    if (nb_meta_get(meta, key, buf, sizeof buf) != NB_OK)
        return false;
    double v = strtod(buf, &end);
    if (end == buf || *end)
        return false;
    *out = v;
    return true;
}

static nb_status no_tensor(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape)
{
    (void)ud, (void)name, (void)dt, (void)rank, (void)shape;
    return NB_OK;
}

bool cli_is_safetensors(const char *path)
{
    FILE *f = nbio_open_read(path, NULL, NULL, 0); /* the loader says what is wrong */
    char magic[8] = {0};
    size_t got = f ? fread(magic, 1, sizeof magic, f) : 0;
    if (f)
        fclose(f);
    return f && !(got == 8 && memcmp(magic, "NABLACKP", 8) == 0);
}

nb_status cli_model_load(nb_model *m, const char *path, nb_ckpt_error *err)
{
    return cli_is_safetensors(path) ? nb_model_load_safetensors(m, path, NULL, err)
                                    : nb_model_load(m, NULL, path, NULL, err);
}

int cli_model_open(const char *cmd, const char *path, cli_model *cm)
{
    memset(cm, 0, sizeof *cm);
    nb_ckpt_error err = {0};
    nb_ckpt_opts o = {0};
    o.meta_out = cm->meta;
    o.meta_cap = sizeof cm->meta;
    nb_status st = cli_is_safetensors(path)
                       ? nb_safetensors_list(path, no_tensor, NULL, &o, &err)
                       : nb_ckpt_read_meta(path, cm->meta, sizeof cm->meta, &err);
    if (st != NB_OK)
        return cli_error(cmd, "cannot read %s: %s", path, err.msg);
    char buf[512];
    if (nb_meta_get(cm->meta, "arch", buf, sizeof buf) != NB_OK || strcmp(buf, "mlp") != 0)
        return cli_error(cmd,
                         "%s does not say it holds an MLP (no arch=mlp in its metadata; "
                         "was it written by nabla train?)",
                         path);
    if (nb_meta_get(cm->meta, "sizes", buf, sizeof buf) != NB_OK)
        return cli_error(cmd, "%s: the metadata has no sizes", path);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (end == tok || *end || v < 1 || cm->n_sizes >= 32)
            return cli_error(cmd, "%s: bad sizes in the metadata", path);
        cm->sizes[cm->n_sizes++] = v;
    }
    if (cm->n_sizes < 2)
        return cli_error(cmd, "%s: the metadata names fewer than two layer sizes", path);
    cm->opts = nb_mlp_defaults();
    if (nb_meta_get(cm->meta, "act", buf, sizeof buf) != NB_OK ||
        nb_act_from_name(buf, &cm->opts.act) != NB_OK)
        return cli_error(cmd, "%s: unknown or missing activation in the metadata", path);
    if (nb_meta_get(cm->meta, "out_act", buf, sizeof buf) == NB_OK &&
        nb_act_from_name(buf, &cm->opts.out_act) != NB_OK)
        return cli_error(cmd, "%s: unknown output activation '%s'", path, buf);
    double v;
    cm->opts.batch_norm = meta_real(cm->meta, "batchnorm", &v) && v != 0;
    if (meta_real(cm->meta, "bn_eps", &v))
        cm->opts.bn_eps = v;
    if (nb_meta_get(cm->meta, "dtype", buf, sizeof buf) == NB_OK)
        cm->opts.layer.dtype = !strcmp(buf, "f64") ? NB_F64 : NB_F32;
    cm->act_opts = nb_act_defaults(cm->opts.act);
    meta_real(cm->meta, "alpha", &cm->act_opts.alpha);
    meta_real(cm->meta, "beta", &cm->act_opts.beta);
    meta_real(cm->meta, "lower", &cm->act_opts.lower);
    meta_real(cm->meta, "upper", &cm->act_opts.upper);
    cm->opts.act_opts = &cm->act_opts;
    cm->opts.layer.init = NB_INIT_ZEROS; /* overwritten by the load below */
    cm->m = nb_model_new();
    if (!cm->m || nb_mlp_new(cm->m, NULL, cm->sizes, cm->n_sizes, &cm->opts, &cm->net) != NB_OK)
        return cli_error(cmd, "%s: cannot build the network its metadata describes", path);
    if (cli_model_load(cm->m, path, &err) != NB_OK)
        return cli_error(cmd, "cannot load %s: %s", path, err.msg);
    return 0;
}

void cli_model_close(cli_model *cm)
{
    nb_layer_free(cm->net);
    nb_model_free(cm->m);
    memset(cm, 0, sizeof *cm);
}
