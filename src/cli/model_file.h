/* A trained MLP read back from a checkpoint: nabla eval (and export). */
#ifndef NABLA_CLI_MODEL_FILE_H
#define NABLA_CLI_MODEL_FILE_H

#include <stdbool.h>

#include "cli.h"

typedef struct cli_model {
    nb_model *m;
    nb_layer *net;
    int64_t sizes[32];
    int n_sizes;
    nb_mlp_opts opts;
    nb_act_opts act_opts;
    char meta[2048];
} cli_model;

/* Rebuild the MLP that the metadata of checkpoint @p path describes and
 * load its tensors. Returns 0, or 2 after a one-line error. Close with
 * cli_model_close (also after an error). */
int cli_model_open(const char *cmd, const char *path, cli_model *cm);
void cli_model_close(cli_model *cm);

/* True when @p path is not a nabla checkpoint (read as safetensors). */
bool cli_is_safetensors(const char *path);
/* Load the tensors of a checkpoint or safetensors file into @p m. */
nb_status cli_model_load(nb_model *m, const char *path, nb_ckpt_error *err);

#endif
