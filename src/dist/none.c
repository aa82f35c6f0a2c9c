/* The dist module of a build without MPI: every function says so. */

#include "dist_internal.h"

static const char no_mpi[] =
    "this nabla was built without MPI: install an MPI library (Debian: libopenmpi-dev "
    "openmpi-bin) and build with meson setup -Dmpi=enabled";

bool nb_dist_available(void)
{
    return false;
}

nb_status nb_dist_init(const nb_dist_opts *o, nb_dist **out, nb_error *err)
{
    (void)o;
    if (out)
        *out = NULL;
    return nb_error_set(err, NB_ERR_UNSUPPORTED, "nb_dist_init", "%s", no_mpi);
}

/* No nb_dist exists in this build: every function gets NULL. */
void nb_dist_free(nb_dist *d)
{
    (void)d;
}

void nb_dist_abort(nb_dist *d, int code)
{
    (void)d, (void)code;
}

bool nb_dist_ok(const nb_dist *d)
{
    (void)d;
    return false;
}

int nb_dist_rank(const nb_dist *d)
{
    (void)d;
    return 0;
}

int nb_dist_size(const nb_dist *d)
{
    (void)d;
    return 1;
}

const nb_error *nb_dist_error(const nb_dist *d)
{
    static const nb_error none = {.status = NB_ERR_NULL, .offset = -1, .msg = "no nb_dist"};
    (void)d;
    return &none;
}

nb_status nb_dist_check(nb_dist *d, const nb_model *m, const char *settings)
{
    (void)d, (void)m, (void)settings;
    return NB_ERR_NULL;
}

nb_status nb_dist_broadcast(nb_dist *d, nb_model *m)
{
    (void)d, (void)m;
    return NB_ERR_NULL;
}

nb_status nb_dist_average_grads(nb_dist *d, nb_model *m, double weight)
{
    (void)d, (void)m, (void)weight;
    return NB_ERR_NULL;
}

nb_status nb_dist_average_buffers(nb_dist *d, nb_model *m)
{
    (void)d, (void)m;
    return NB_ERR_NULL;
}

nb_status nb_dist_sum(nb_dist *d, double *values, int n)
{
    (void)d, (void)values, (void)n;
    return NB_ERR_NULL;
}

nb_status nb_dist_vote(nb_dist *d, bool ok, int *first_failed)
{
    (void)d, (void)ok, (void)first_failed;
    return NB_ERR_NULL;
}

nb_status nb_dist_train_comm(nb_dist *d, nb_train_comm *out)
{
    (void)d, (void)out;
    return NB_ERR_NULL;
}
