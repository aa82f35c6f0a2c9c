/* A trained network read back from a file: the network its metadata
 * describes, built by nb_layer_from_description, with the file's tensors
 * loaded into it. The one reader of model files for nabla eval and
 * export. */
#ifndef NABLA_CLI_MODEL_FILE_H
#define NABLA_CLI_MODEL_FILE_H

#include <stdbool.h>

#include "cli.h"

/* Names of the input normalisation tensors (f64, one value per input):
 * the network takes (x - mean) / std of a raw row x. */
#define CLI_INPUT_MEAN "input.mean"
#define CLI_INPUT_STD "input.std"

typedef struct cli_model {
    nb_model *m;
    nb_layer *net;
    int64_t n_in;               /* the network's input width */
    char prefix[128];           /* of every tensor name: "" or "<name>." */
    nb_tensor *mean, *std;      /* the input normalisation, or NULL */
    nb_rng rng;                 /* for dropout layers (unused in evaluation) */
    char meta[NB_META_MAX + 1]; /* the file's metadata */
} cli_model;

/* Open the checkpoint or safetensors file @p path: build the network its
 * metadata describes (nb_layer_from_description; a file whose metadata has
 * no arch= was written by another program, and its MLP is read from the
 * names and shapes of its tensors <prefix>fc1.weight, fc2.weight, ...),
 * with the input normalisation tensors when input_norm=standardize says
 * so or the file holds them, and load its tensors. @p act names the hidden
 * activation when the metadata has no act= (NULL: none; otherwise it must
 * agree with act=). A description of more tensor bytes than the file holds
 * is refused before anything is allocated. Returns 0, or 2 after a
 * one-line error for @p cmd. Close with cli_model_close (also after an
 * error). */
int cli_model_open(const char *cmd, const char *path, const char *act, cli_model *cm);
void cli_model_close(cli_model *cm);

/* Add the input normalisation tensors "<prefix>input.mean" and ".std"
 * (f64 [n_in], not trained) to @p m unless it holds them, and set them
 * from @p mean and @p std when those are not NULL. NB_OK or the error of
 * nb_model_add. */
nb_status cli_model_add_norm(nb_model *m, const char *prefix, int64_t n_in, const double *mean,
                             const double *std);

/* Whether the checkpoint or safetensors file @p path holds the input
 * normalisation tensors (*has). 0, or -1 when it cannot be read (err). */
int cli_file_has_norm(const char *path, bool *has, nb_error *err);

/* True when @p path is not a nabla checkpoint (read as safetensors). */
bool cli_is_safetensors(const char *path);
/* Load the tensors of a checkpoint or safetensors file into @p m. */
nb_status cli_model_load(nb_model *m, const char *path, nb_error *err);

#endif
