/* libFuzzer target for checkpoint files (src/io/ckpt.c): the input is the
 * file. nb_ckpt_read_meta and nb_ckpt_list check it without a model; a
 * model built from the listing must then load it, with the RNG state and
 * with an optimizer of each kind where the file holds them, and the loaded
 * optimizer takes a step. The file is also loaded into a fixed model (the
 * one the seed corpus was saved from, fuzz/make_corpus.c), which a file of
 * other names or shapes must leave unchanged. An allocation failure at
 * any point gives NB_ERR_NOMEM and leaks nothing. The input is read as it
 * is and again with its size field and checksums made right. */

#include "fuzz_common.h"

static char meta[NB_META_MAX + 1];

/* Load into a model that holds exactly the file's tensors. */
static void load_listed(const char *path, nb_model *m, size_t size)
{
    nb_error err;
    nb_ckpt_opts o = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_status st = nb_model_load(m, NULL, path, &o, &err);
    fz_check_ckpt_error(st, &err, size);
    FZ_CHECK(st == NB_OK); /* the listing checked the whole file */
    fz_walk_model(m);

    nb_rng rng;
    nb_rng_seed(&rng, 1);
    o.rng = &rng;
    st = nb_model_load(m, NULL, path, &o, &err);
    fz_check_ckpt_error(st, &err, size);
    FZ_CHECK(st == NB_OK || st == NB_ERR_NOTFOUND); /* no RNG state in the file */
    if (st == NB_OK)
        (void)nb_rng_normal(&rng);

    for (int k = NB_OPTIM_SGD; k <= NB_OPTIM_ADAMW; k++) {
        nb_optim_opts oo = nb_optim_defaults((nb_optim_kind)k);
        nb_optim *opt = nb_optim_new(&oo);
        FZ_CHECK(opt != NULL);
        st = nb_model_load(m, opt, path, NULL, &err);
        fz_check_ckpt_error(st, &err, size);
        /* no optimizer state, or of another kind */
        FZ_CHECK(st == NB_OK || st == NB_ERR_NOTFOUND || st == NB_ERR_ARG);
        if (st == NB_OK) {
            FZ_CHECK(nb_optim_steps(opt) >= 0);
            nb_model_zero_grad(m);
            (void)nb_optim_step(opt, m);
            fz_walk_model(m);
        }
        nb_optim_free(opt);
    }
}

/* nb_model_load without an optimizer, as fz_format's load. */
static nb_status load_model(nb_model *m, const char *path, const nb_ckpt_opts *o,
                            nb_error *err)
{
    return nb_model_load(m, NULL, path, o, err);
}

/* Every way of reading the file @p data[0..size). */
static void read_all_ways(const uint8_t *data, size_t size)
{
    static nb_model *fixed;
    if (!fixed)
        fixed = fz_mlp_model(NB_F32);
    const char *path = fz_temp_file(data, size);

    nb_error err;
    nb_status st_meta = nb_ckpt_read_meta(path, meta, sizeof meta, &err);
    fz_check_ckpt_error(st_meta, &err, size);
    if (st_meta == NB_OK) {
        FZ_CHECK(memchr(meta, '\0', sizeof meta) != NULL);
        FZ_CHECK(meta[0] == '\0' || nb_meta_check(meta, NULL) == NB_OK);
    }

    nb_model *m = nb_model_new();
    FZ_CHECK(m != NULL);
    nb_ckpt_opts o = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_status st = nb_ckpt_list(path, fz_add_tensor, m, &o, &err);
    fz_check_ckpt_error(st, &err, size);
    FZ_CHECK((st == NB_OK) == (st_meta == NB_OK));
    if (st == NB_OK)
        load_listed(path, m, size);
    nb_model_free(m);

    st = nb_model_load(fixed, NULL, path, NULL, &err);
    fz_check_ckpt_error(st, &err, size);
    fz_walk_model(fixed);

    fz_format f = {nb_ckpt_list, load_model, path, size, fixed};
    fz_check_oom(fz_list_and_load, &f, data, size);
}

/* Layout of the header (docs/optim.md): magic, version, flags, payload
 * size at 16, its CRC-32 at 24; the payload from 28, then its CRC-32. */
#define HEADER 28

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_all_ways(data, size);
    /* A mutated file almost always fails its checksums; the same bytes
     * with the payload size and both CRCs made right reach the parser of
     * the records and sections. */
    if (size < HEADER + 4 || memcmp(data, "NABLACKP", 8) != 0)
        return 0;
    uint8_t *fixed = malloc(size);
    FZ_CHECK(fixed != NULL);
    memcpy(fixed, data, size);
    size_t payload = size - HEADER - 4;
    put_le(fixed + 16, payload, 8);
    put_le(fixed + 24, crc32(0L, fixed, 24), 4);
    put_le(fixed + HEADER + payload, crc32(0L, fixed + HEADER, (uInt)payload), 4);
    if (memcmp(fixed, data, size) != 0)
        read_all_ways(fixed, size);
    free(fixed);
    return 0;
}
