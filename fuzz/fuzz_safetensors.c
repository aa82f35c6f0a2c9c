/* libFuzzer target for safetensors files (src/io/safetensors.c): the input
 * is the file. nb_safetensors_list checks it without a model (a file that
 * lists with the CRC-32s required lists without); a model built from the
 * listing must then load it, with the same metadata, and nb_safetensors_read
 * reads the same tensors. What was loaded, saved and loaded again is the
 * same, and saving that gives the same bytes. The file is also loaded into a
 * fixed model (the one the seed corpus was saved from, fuzz/make_corpus.c)
 * and into an empty one; a failed load changes nothing. An allocation
 * failure at any point gives NB_ERR_NOMEM and leaks nothing. The input is
 * read as it is and again with its CRC-32s made right (fz_fix_crcs), so
 * mutations reach the header's deeper checks. */

#include "fuzz_common.h"

static char meta[NB_META_MAX + 1], meta2[NB_META_MAX + 1];

/* Save @p m with @p text to save path @p k, and read that back into a new
 * model from its listing: the same tensors and metadata. */
static nb_model *save_and_read(const nb_model *m, const char *text, int k)
{
    nb_error err;
    nb_file_opts o = {.meta = text};
    nb_status st = nb_model_save_safetensors(m, fz_save_path(k), &o, &err);
    fz_check_report(st, err.status, err.msg, sizeof err.msg);
    FZ_CHECK(st == NB_OK);
    nb_model *back = nb_model_new();
    FZ_CHECK(back != NULL);
    nb_file_opts ro = {.meta_out = meta2, .meta_cap = sizeof meta2, .require_crc = true};
    FZ_CHECK(nb_safetensors_list(fz_save_path(k), fz_add_tensor, back, &ro, &err) == NB_OK);
    FZ_CHECK(nb_model_load_safetensors(back, fz_save_path(k), &ro, &err) == NB_OK);
    FZ_CHECK(strcmp(meta2, text) == 0);
    FZ_CHECK(fz_same_models(m, back));
    return back;
}

static void check_file(const uint8_t *data, size_t size)
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
    nb_file_opts req = {.meta_out = meta2, .meta_cap = sizeof meta2, .require_crc = true};
    nb_status st_req = nb_safetensors_list(path, NULL, NULL, &req, &err);
    fz_check_ckpt_error(st_req, &err, size);
    FZ_CHECK(st_req == NB_OK ? st == NB_OK : st != NB_OK || st_req == NB_ERR_PARSE);
    if (st == NB_OK) {
        FZ_CHECK(memchr(meta, '\0', sizeof meta) != NULL);
        FZ_CHECK(meta[0] == '\0' || nb_meta_check(meta, NULL) == NB_OK);
        /* a model built from the listing loads the file, metadata alike */
        fz_scramble(m);
        nb_file_opts o2 = {.meta_out = meta2, .meta_cap = sizeof meta2};
        st = nb_model_load_safetensors(m, path, &o2, &err);
        fz_check_ckpt_error(st, &err, size);
        FZ_CHECK(st == NB_OK);
        FZ_CHECK(strcmp(meta, meta2) == 0);
        fz_walk_model(m);
        size_t n;
        unsigned char *ref = fz_model_bytes(m, &n);
        /* and without asking for the metadata */
        fz_scramble(m);
        st = nb_model_load_safetensors(m, path, NULL, &err);
        FZ_CHECK(st == NB_OK && fz_model_is(m, ref, n));
        free(ref);
        /* a new store of the same tensors */
        nb_model *r = NULL;
        FZ_CHECK(nb_safetensors_read(path, &r, NULL, &err) == NB_OK);
        FZ_CHECK(fz_same_models(m, r));
        nb_model_free(r);
        /* saved and read back; saved again: the same bytes */
        nb_model *a = save_and_read(m, meta, 0);
        nb_model *b = save_and_read(a, meta, 1);
        size_t n0, n1;
        unsigned char *f0 = fz_slurp(fz_save_path(0), &n0), *f1 = fz_slurp(fz_save_path(1), &n1);
        FZ_CHECK(n0 == n1 && memcmp(f0, f1, n0) == 0);
        free(f0);
        free(f1);
        nb_model_free(a);
        nb_model_free(b);
    }
    nb_model_free(m);

    nb_model *others[] = {fixed, empty};
    for (int i = 0; i < 2; i++) {
        size_t k;
        unsigned char *before = fz_model_bytes(others[i], &k);
        st = nb_model_load_safetensors(others[i], path, &o, &err);
        fz_check_ckpt_error(st, &err, size);
        FZ_CHECK(st == NB_OK || fz_model_is(others[i], before, k));
        free(before);
        fz_walk_model(others[i]);
    }
    fz_format f = {.ckpt = false, .kind = -1, .path = path, .size = size, .fixed = fixed};
    fz_check_oom(fz_list_and_load, &f, data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_as_is_and_fixed(check_file, data, size);
    return 0;
}
