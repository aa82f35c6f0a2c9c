/* libFuzzer target for model descriptions: arbitrary bytes as metadata text
 * (NUL-terminated). nb_layer_description_check accepts it or says why; a
 * description of at most 16 MiB of tensors is built by
 * nb_layer_from_description, whose tensors must take the bytes the check
 * gave, and described again: the description of the network built from
 * that description is the same text (the round trip). A layer-by-layer
 * description (arch=layers; the check gives -1 bytes) is built with a
 * bound of 16 MiB, which its kinds' settings may fail, saying why; when it
 * builds, the same round trip holds. Any crash, leak, sanitizer report or
 * broken invariant is a finding. */

#include "fuzz_common.h"

/* The network of @p desc (valid) in a fresh model, and its description into out. */
static nb_model *build(const char *desc, nb_layer **net, char *out, size_t cap, int64_t *bytes)
{
    static nb_rng rng; /* dropout layers need one; nothing is drawn */
    nb_layer_opts lo = {.init = NB_INIT_ZEROS, .rng = &rng, .max_bytes = 16 * 1024 * 1024};
    nb_model *m = nb_model_new();
    nb_error e;
    FZ_CHECK(m != NULL);
    /* an MLP description names no tensor, so a prefix changes nothing in
     * it; a layer-by-layer one holds its names, which a prefix would grow */
    nb_status st = nb_layer_from_description(m, *bytes == -1 ? NULL : "p", desc, &lo, net, &e);
    if (st != NB_OK) { /* only a layer-by-layer description's kinds may refuse */
        FZ_CHECK(*bytes == -1 && e.status == st && e.msg[0] != '\0' && *net == NULL);
        nb_model_free(m);
        return NULL;
    }
    *bytes = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        *bytes += nb_tensor_size(p) * (int64_t)nb_dtype_size(nb_tensor_dtype(p));
    FZ_CHECK(nb_layer_describe(*net, out, cap, &e) == NB_OK);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *meta = malloc(size + 1);
    if (!meta)
        return 0;
    memcpy(meta, data, size);
    meta[size] = '\0';
    nb_error e;
    int64_t bytes = -1;
    nb_status st = nb_layer_description_check(meta, &bytes, &e);
    FZ_CHECK(st == NB_OK ? bytes >= -1 : e.status == st && e.msg[0] != '\0');
    if (st == NB_OK && bytes <= 16 * 1024 * 1024) {
        /* numbers written back with 17 digits may make the text longer */
        static char once[1 << 20], twice[1 << 20];
        nb_layer *net = NULL, *net2 = NULL;
        int64_t built = bytes, built2 = -1;
        nb_model *m = build(meta, &net, once, sizeof once, &built);
        if (!m) {
            free(meta);
            return 0;
        }
        FZ_CHECK(bytes == -1 || built == bytes);
        nb_model *m2 = build(once, &net2, twice, sizeof twice, &built2);
        FZ_CHECK(m2 && built2 == built && strcmp(once, twice) == 0);
        nb_layer_free(net);
        nb_layer_free(net2);
        nb_model_free(m);
        nb_model_free(m2);
    }
    free(meta);
    return 0;
}
