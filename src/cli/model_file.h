/* A trained MLP read back from a file's metadata and tensors: the one
 * reader of model metadata for nabla eval, export and train. */
#ifndef NABLA_CLI_MODEL_FILE_H
#define NABLA_CLI_MODEL_FILE_H

#include <stdbool.h>

#include "cli.h"

/* Most layer sizes (input, hidden..., output) a model file may describe. */
#define CLI_MAX_SIZES 32

/* Names of the input normalisation tensors (f64, one value per input):
 * the network takes (x - mean) / std of a raw row x. */
#define CLI_INPUT_MEAN "input.mean"
#define CLI_INPUT_STD "input.std"

/* What a file's metadata (nb_mlp_meta's keys) says about its model. Keys
 * that are absent keep the defaults noted here. */
typedef struct cli_mlp_desc {
    bool has_arch, is_mlp; /* arch=, and whether it is "mlp" */
    int n_sizes;           /* sizes= (0: absent) */
    int64_t sizes[CLI_MAX_SIZES];
    bool has_act;         /* act= */
    nb_act act, out_act;  /* out_act default identity */
    nb_act_opts act_opts; /* cli_mlp_desc_act_opts(d, act) */
    unsigned opts_given;  /* bit i: alpha, beta, lower, upper,
                           * pieces (i = 0..4) was in the metadata */
    nb_act_opts given;    /* those values */
    int batch_norm;       /* batchnorm=: -1 absent, 0, 1 */
    double bn_eps;        /* bn_eps= (1e-5) */
    bool has_dtype;       /* dtype= */
    nb_dtype dtype;       /* f32 when absent */
    bool input_norm;      /* input_norm=standardize: the file holds
                           * CLI_INPUT_MEAN and CLI_INPUT_STD */
} cli_mlp_desc;

/* Read the model keys of metadata text @p meta into @p d, checking each
 * value (numbers finite, sizes whole and positive, names known, pieces a
 * whole number >= 1, bn_eps > 0, out_act usable as an output activation).
 * Returns 0, or -1 with a sentence naming the key in why[0..why_len). */
int cli_mlp_desc_read(const char *meta, cli_mlp_desc *d, char *why, size_t why_len);

/* nb_act_defaults(@p act) with the options the metadata gave. */
nb_act_opts cli_mlp_desc_act_opts(const cli_mlp_desc *d, nb_act act);

typedef struct cli_model {
    nb_model *m;
    nb_layer *net;
    cli_mlp_desc desc;
    nb_mlp_opts opts;
    nb_tensor *mean, *std; /* the input normalisation, or NULL */
    char meta[NB_META_MAX + 1];
} cli_model;

/* Build, with zero weights, the MLP that metadata @p meta describes (it must
 * say arch=mlp, sizes= and act=): nb_mlp_new's layers and, with
 * input_norm=standardize, the input normalisation tensors. @p max_bytes
 * bounds the tensor bytes the description may need (a file's tensor bytes:
 * a description of a larger model is refused before anything is allocated).
 * Returns 0, or non-zero with a sentence in why. Free with cli_model_close
 * (also after an error). */
int cli_model_from_meta(const char *meta, double max_bytes, cli_model *cm, char *why,
                        size_t why_len);

/* Rebuild the MLP that the metadata of checkpoint or safetensors file
 * @p path describes (cli_model_from_meta) and load its tensors. Returns 0,
 * or 2 after a one-line error. Close with cli_model_close (also after an
 * error). */
int cli_model_open(const char *cmd, const char *path, cli_model *cm);
void cli_model_close(cli_model *cm);

/* Add the input normalisation tensors (f64 [n_in], not trained) to @p m
 * unless it holds them, and set them from @p mean and @p std when those are
 * not NULL. NB_OK or the error of nb_model_add. */
nb_status cli_model_add_norm(nb_model *m, int64_t n_in, const double *mean, const double *std);

/* The input normalisation tensors "<prefix>input.mean" and ".std" of @p m:
 * both absent (0, *mean = *std = NULL) or both f64 [n_in] with finite means
 * and scales >= 1e-12 (0). Otherwise -1 with a sentence in why. */
int cli_model_norm(const nb_model *m, const char *prefix, int64_t n_in, nb_tensor **mean,
                   nb_tensor **std, char *why, size_t why_len);

/* Whether the checkpoint or safetensors file @p path holds the input
 * normalisation tensors (*has). 0, or -1 when it cannot be read (err). */
int cli_file_has_norm(const char *path, bool *has, nb_error *err);

/* True when @p path is not a nabla checkpoint (read as safetensors). */
bool cli_is_safetensors(const char *path);
/* Load the tensors of a checkpoint or safetensors file into @p m. */
nb_status cli_model_load(nb_model *m, const char *path, nb_error *err);

#endif
