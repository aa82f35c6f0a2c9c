/* libFuzzer target for checkpoints (src/train/ckpt.c over the safetensors
 * reader, src/io/safetensors.c): the input is the file.
 *  - nb_ckpt_read_meta and nb_ckpt_list check it without a model and agree.
 *  - A checkpoint that lists is a safetensors file that lists with its
 *    CRC-32s required; its metadata holds nabla.format=checkpoint and
 *    nabla.version=2, the caller's lines nb_ckpt_list returns and the
 *    checkpoint's own; its tensors are those nb_ckpt_list gives and the
 *    optimizer's "<param>/t" and "<param>/<slot>" for each parameter with
 *    a count (the slots the file's options keep).
 *  - A model built from the listing loads it; with a generator, which the
 *    load sets when the file holds one (else NB_ERR_NOTFOUND); with an
 *    optimizer of each kind: the file's kind loads (its step count, a state
 *    per count, options nb_optim_opts_from_meta reads) and takes a
 *    step, another kind is refused with NB_ERR_ARG, and a file without
 *    optimizer state with NB_ERR_NOTFOUND.
 *  - What was loaded, saved with nb_model_save and loaded again is the
 *    same, and saving that gives the same bytes.
 *  - It is also loaded into a fixed model (the one the seed corpus was
 *    saved from, fuzz/make_corpus.c). A failed load changes nothing.
 *  - An allocation failure at any point gives NB_ERR_NOMEM and leaks
 *    nothing (fz_check_oom).
 * The input is read as it is and again with its CRC-32s made right
 * (fz_fix_crcs), so mutations reach the JSON header's deeper checks and
 * the checkpoint's metadata, optimizer and generator checks. */

#include "fuzz_common.h"

static char meta[NB_META_MAX + 1], meta2[NB_META_MAX + 1], all[NB_META_MAX + 1];

/* What the file's metadata says it holds besides the model. */
typedef struct held {
    int kind;     /* the nb_optim_kind of its optimizer state, or -1 */
    int64_t step; /* optim.step */
    int params;   /* tensors "P/t" of a tensor P of the file */
    int slots;    /* state tensors per parameter */
    bool rng;     /* rng.state */
} held;

static held what_is_held(const char *text, const nb_model *file)
{
    held h = {.kind = -1};
    char v[32];
    if (nb_meta_get(text, "optim.kind", v, sizeof v) == NB_OK) {
        nb_optim_kind k;
        FZ_CHECK(nb_optim_kind_from_name(v, &k) == NB_OK);
        h.kind = (int)k;
        FZ_CHECK(nb_meta_get_i64(text, "optim.step", &h.step) == NB_OK && h.step >= 0);
        nb_optim_opts o; /* the slots the file's options keep */
        FZ_CHECK(nb_optim_opts_from_meta(text, &o, NULL) == NB_OK && o.kind == k);
        while (nb_optim_opts_slot_name(&o, h.slots))
            h.slots++;
    }
    for (nb_tensor *t = h.kind >= 0 ? nb_model_next(file, NULL) : NULL; t;
         t = nb_model_next(file, t)) {
        static char owner[1 << 16];
        const char *name = nb_tensor_name(t);
        size_t len = strlen(name);
        if (len > 2 && len < sizeof owner && !strcmp(name + len - 2, "/t")) {
            memcpy(owner, name, len - 2);
            owner[len - 2] = '\0';
            h.params += nb_model_get(file, owner) != NULL;
        }
    }
    h.rng = nb_meta_get(text, "rng.state", NULL, 0) != NB_ERR_NOTFOUND;
    return h;
}

/* The caller's lines of the metadata text @p text (those not beginning with
 * "nabla.", "optim." or "rng.") equal @p caller. */
static bool caller_lines_are(const char *text, const char *caller)
{
    static char buf[NB_META_MAX + 1];
    size_t used = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (strncmp(p, "nabla.", 6) && strncmp(p, "optim.", 6) && strncmp(p, "rng.", 4)) {
            if (used)
                buf[used++] = '\n';
            memcpy(buf + used, p, len);
            used += len;
        }
        p += len + (nl != NULL);
    }
    buf[used] = '\0';
    return strcmp(buf, caller) == 0;
}

static bool same_rng(const nb_rng *a, const nb_rng *b)
{
    return memcmp(a->s, b->s, sizeof a->s) == 0 && a->has_spare == b->has_spare &&
           (!a->has_spare || memcmp(&a->spare, &b->spare, sizeof a->spare) == 0);
}

static nb_status count_tensor(void *ud, const char *name, nb_dtype dt, int rank,
                              const int64_t *shape)
{
    (void)name, (void)dt, (void)rank, (void)shape;
    ++*(int *)ud;
    return NB_OK;
}

/* Load into a model that holds exactly the file's listed tensors, which
 * @p ref (n bytes) holds the values of, in every way. */
static void load_listed(const char *path, nb_model *m, size_t size, const held *h,
                        const unsigned char *ref, size_t n)
{
    nb_error err;
    size_t k;
    fz_scramble(m);
    unsigned char *before = fz_model_bytes(m, &k);
    nb_rng rng, rng0;
    nb_rng_seed(&rng, 1);
    rng0 = rng;
    nb_ckpt_opts o = {.rng = &rng};
    nb_status st = nb_model_load(m, NULL, path, &o, &err);
    fz_check_ckpt_error(st, &err, size);
    FZ_CHECK(st == (h->rng ? NB_OK : NB_ERR_NOTFOUND));
    if (st == NB_OK) {
        FZ_CHECK(fz_model_is(m, ref, n));
        (void)nb_rng_normal(&rng);
    } else {
        FZ_CHECK(fz_model_is(m, before, k) && same_rng(&rng, &rng0));
    }
    free(before);

    for (int kind = NB_OPTIM_SGD; kind <= NB_OPTIM_ADAGRAD; kind++) {
        nb_optim_opts oo = nb_optim_defaults((nb_optim_kind)kind);
        nb_optim *opt = nb_optim_new(&oo);
        FZ_CHECK(opt != NULL);
        fz_scramble(m);
        before = fz_model_bytes(m, &k);
        st = nb_model_load(m, opt, path, NULL, &err);
        fz_check_ckpt_error(st, &err, size);
        FZ_CHECK(st == (h->kind < 0 ? NB_ERR_NOTFOUND : h->kind == kind ? NB_OK : NB_ERR_ARG));
        if (st == NB_OK) {
            FZ_CHECK(fz_model_is(m, ref, n));
            FZ_CHECK(nb_optim_steps(opt) == h->step);
            FZ_CHECK(nb_optim_state_count(opt) == h->params);
            nb_optim_opts saved;
            FZ_CHECK(nb_optim_opts_from_meta(all, &saved, &err) == NB_OK);
            FZ_CHECK(saved.kind == (nb_optim_kind)kind);
            nb_model_zero_grad(m);
            (void)nb_optim_step(opt, m);
            fz_walk_model(m);
        } else {
            FZ_CHECK(fz_model_is(m, before, k));
            FZ_CHECK(nb_optim_steps(opt) == 0 && nb_optim_state_count(opt) == 0);
        }
        free(before);
        nb_optim_free(opt);
    }
}

/* Everything the file holds, loaded into a new model (built from the
 * listing), optimizer (with the saved options) and generator. */
typedef struct loaded {
    nb_model *m;
    nb_optim *opt;
    nb_rng rng;
    nb_ckpt_opts o;
} loaded;

static nb_status load_everything(loaded *l, const char *path, const held *h, char *text, size_t cap,
                                 nb_error *err)
{
    memset(l, 0, sizeof *l);
    l->m = nb_model_new();
    FZ_CHECK(l->m != NULL);
    nb_rng_seed(&l->rng, 2);
    l->o = (nb_ckpt_opts){.rng = h->rng ? &l->rng : NULL, .meta_out = text, .meta_cap = cap};
    nb_status st = nb_ckpt_list(path, fz_add_tensor, l->m, &l->o, err);
    if (st == NB_OK && h->kind >= 0) {
        nb_optim_opts oo;
        FZ_CHECK(nb_optim_opts_from_meta(all, &oo, err) == NB_OK);
        l->opt = nb_optim_new(&oo);
        FZ_CHECK(l->opt != NULL);
    }
    if (st == NB_OK)
        st = nb_model_load(l->m, l->opt, path, &l->o, err);
    return st;
}

static void loaded_free(loaded *l)
{
    nb_model_free(l->m);
    nb_optim_free(l->opt);
}

/* Load everything, save it, load that: the same; save again: the same bytes. */
static void round_trip(const char *path, const held *h)
{
    nb_error err;
    loaded a, b;
    FZ_CHECK(load_everything(&a, path, h, meta2, sizeof meta2, &err) == NB_OK);
    const char *p0 = fz_save_path(0), *p1 = fz_save_path(1);
    nb_ckpt_opts so = {.rng = a.o.rng, .meta = meta2};
    nb_status st = nb_model_save(a.m, a.opt, p0, &so, &err);
    fz_check_report(st, err.status, err.msg, sizeof err.msg);
    FZ_CHECK(st == NB_OK);
    FZ_CHECK(load_everything(&b, p0, h, meta, sizeof meta, &err) == NB_OK);
    FZ_CHECK(strcmp(meta, meta2) == 0);
    FZ_CHECK(fz_same_models(a.m, b.m));
    FZ_CHECK(!h->rng || same_rng(&a.rng, &b.rng));
    if (a.opt) {
        FZ_CHECK(nb_optim_steps(a.opt) == nb_optim_steps(b.opt));
        FZ_CHECK(nb_optim_sched_pos(a.opt) == nb_optim_sched_pos(b.opt));
        FZ_CHECK(nb_optim_state_count(a.opt) == nb_optim_state_count(b.opt));
    }
    so.rng = b.o.rng;
    FZ_CHECK(nb_model_save(b.m, b.opt, p1, &so, &err) == NB_OK);
    size_t n0, n1;
    unsigned char *f0 = fz_slurp(p0, &n0), *f1 = fz_slurp(p1, &n1);
    FZ_CHECK(n0 == n1 && memcmp(f0, f1, n0) == 0);
    free(f0);
    free(f1);
    loaded_free(&a);
    loaded_free(&b);
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
    nb_ckpt_opts o = {.meta_out = meta2, .meta_cap = sizeof meta2};
    nb_status st = nb_ckpt_list(path, fz_add_tensor, m, &o, &err);
    fz_check_ckpt_error(st, &err, size);
    FZ_CHECK((st == NB_OK) == (st_meta == NB_OK));

    /* a checkpoint is a safetensors file with its CRC-32s */
    int n_file = 0;
    nb_file_opts fo = {.meta_out = all, .meta_cap = sizeof all, .require_crc = true};
    nb_status st_file = nb_safetensors_list(path, count_tensor, &n_file, &fo, &err);
    fz_check_ckpt_error(st_file, &err, size);
    nb_model *file = NULL;
    if (st_file == NB_OK) {
        nb_file_opts ro = {.require_crc = true};
        nb_status st_read = nb_safetensors_read(path, &file, &ro, &err);
        fz_check_ckpt_error(st_read, &err, size);
        FZ_CHECK(st_read == NB_OK && nb_model_count(file) == n_file);
    }
    held h = {.kind = -1};
    if (st == NB_OK) {
        FZ_CHECK(strcmp(meta, meta2) == 0);
        FZ_CHECK(st_file == NB_OK);
        char v[16];
        FZ_CHECK(nb_meta_get(all, "nabla.format", v, sizeof v) == NB_OK &&
                 !strcmp(v, "checkpoint"));
        FZ_CHECK(nb_meta_get(all, "nabla.version", v, sizeof v) == NB_OK && !strcmp(v, "2"));
        FZ_CHECK(caller_lines_are(all, meta));
        h = what_is_held(all, file);
        FZ_CHECK(n_file == nb_model_count(m) + h.params * (h.slots + 1));

        nb_status st2 = nb_model_load(m, NULL, path, &o, &err);
        fz_check_ckpt_error(st2, &err, size);
        FZ_CHECK(st2 == NB_OK); /* the listing checked the whole file */
        FZ_CHECK(strcmp(meta, meta2) == 0);
        size_t n;
        unsigned char *ref = fz_model_bytes(m, &n);
        load_listed(path, m, size, &h, ref, n);
        free(ref);
        round_trip(path, &h);
    }
    nb_model_free(m);
    nb_model_free(file);

    size_t k;
    unsigned char *before = fz_model_bytes(fixed, &k);
    st = nb_model_load(fixed, NULL, path, NULL, &err);
    fz_check_ckpt_error(st, &err, size);
    FZ_CHECK(st == NB_OK || fz_model_is(fixed, before, k));
    free(before);

    fz_format f = {
        .ckpt = true, .kind = h.kind, .rng = h.rng, .path = path, .size = size, .fixed = fixed};
    fz_check_oom(fz_list_and_load, &f, data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_as_is_and_fixed(read_all_ways, data, size);
    return 0;
}
