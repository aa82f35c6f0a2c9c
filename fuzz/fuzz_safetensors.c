/* libFuzzer target for safetensors files (src/io/safetensors.c): the input
 * is the file. nb_safetensors_list checks it without a model; a model
 * built from the listing must then load it, with the same metadata. The
 * file is also loaded into a fixed model (the one the seed corpus was saved
 * from, fuzz/make_corpus.c) and into an empty one. An allocation failure
 * at any point gives NB_ERR_NOMEM and leaks nothing. */

#include "fuzz_common.h"

static char meta[NB_META_MAX + 1], meta2[NB_META_MAX + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static nb_model *fixed, *empty;
    if (!fixed) {
        fixed = fz_mlp_model(NB_F64);
        empty = nb_model_new();
        FZ_CHECK(empty != NULL);
    }
    const char *path = fz_temp_file(data, size);

    nb_error err;
    nb_model *m = nb_model_new();
    FZ_CHECK(m != NULL);
    nb_file_opts o = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_status st = nb_safetensors_list(path, fz_add_tensor, m, &o, &err);
    fz_check_ckpt_error(st, &err, size);
    if (st == NB_OK) {
        FZ_CHECK(memchr(meta, '\0', sizeof meta) != NULL);
        FZ_CHECK(meta[0] == '\0' || nb_meta_check(meta, NULL) == NB_OK);
        /* a model built from the listing loads the file, metadata alike */
        nb_file_opts o2 = {.meta_out = meta2, .meta_cap = sizeof meta2};
        st = nb_model_load_safetensors(m, path, &o2, &err);
        fz_check_ckpt_error(st, &err, size);
        FZ_CHECK(st == NB_OK);
        FZ_CHECK(strcmp(meta, meta2) == 0);
        fz_walk_model(m);
        /* and without asking for the metadata */
        st = nb_model_load_safetensors(m, path, NULL, &err);
        FZ_CHECK(st == NB_OK);
    }
    nb_model_free(m);

    nb_model *others[] = {fixed, empty};
    for (int i = 0; i < 2; i++) {
        st = nb_model_load_safetensors(others[i], path, &o, &err);
        fz_check_ckpt_error(st, &err, size);
        fz_walk_model(others[i]);
    }
    fz_format f = {nb_safetensors_list, nb_model_load_safetensors, path, size, fixed};
    fz_check_oom(fz_list_and_load, &f, data, size);
    return 0;
}
