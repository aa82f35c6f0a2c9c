/* Convolutional networks named on the command line: nabla train --layers
 * conv32k3p1,pool2,conv64k3p1,pool2,fc128. */
#ifndef NABLA_CLI_CNN_SPEC_H
#define NABLA_CLI_CNN_SPEC_H

#include <stdbool.h>

#include "cli.h"

/* Whether a --layers list describes a convolutional network (an element
 * starts with a letter) rather than the hidden sizes of an MLP. */
bool cli_cnn_listed(const char *list);

/* The network @p list describes, over images of @p ch x @p h x @p w
 * (rows of ch·h·w values): a sequence "" of reshape "image", then for each
 * element in order conv2d "conv<i>" and activation "act<j>"; max_pool2d
 * or avg_pool2d "pool<i>"; before the first fc a flatten "flatten", then
 * linear "fc<i>", activation "act<j>" and, when @p dropout > 0, dropout
 * "drop<j>"; last (after a flatten if none came) linear "fc<k>" to
 * @p n_out. @p act must be an activation without parameters. Parameters
 * go to @p m, drawn from @p rng. Sizes that do not fit the images (a
 * kernel larger than what reaches it) are found by running the network
 * once on a blank image. Returns 0, or 2 after a one-line error for
 * nabla train quoting the element at fault. */
int cli_cnn_build(const char *list, int64_t ch, int64_t h, int64_t w, nb_act act,
                  const nb_act_opts *ao, double dropout, int64_t n_out, nb_model *m, nb_rng *rng,
                  nb_layer **out);

#endif
