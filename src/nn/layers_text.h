/* Descriptions of any network ("arch=layers", layers_text.c), for
 * describe.c, which also reads and writes the MLP's ("arch=mlp"). */
#ifndef NABLA_LAYERS_TEXT_H
#define NABLA_LAYERS_TEXT_H

#include "nn_internal.h"

/* @p net as "arch=layers" text into out[0..cap) (cap > 0). */
nb_status nbn_describe_layers(const nb_layer *net, char *out, size_t cap, nb_error *err);
/* Check the form of "arch=layers" text @p desc (its layer lines, their
 * kinds' names, nesting); the kinds' settings are checked when built. */
nb_status nbn_check_layers(const char *desc, nb_error *err);
/* Build "arch=layers" text @p desc into @p m, as nb_layer_from_description. */
nb_status nbn_build_layers(nb_model *m, const char *prefix, const char *desc,
                           const nb_layer_opts *o, nb_layer **out, nb_error *err);

#endif
