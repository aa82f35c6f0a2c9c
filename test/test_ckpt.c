/* Checkpoints: exact round trips, every damaged or truncated file refused
 * with the model untouched, failed saves that keep the old file, resuming
 * bit-identically, mismatches named, crafted files, allocation failure. */

#include "tc.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------- fixtures */

typedef struct dir {
    char path[64];
    char file[96];
} dir;

static int setup_dir(void **state)
{
    dir *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    strcpy(d->path, "/tmp/nabla-ckpt-XXXXXX");
    if (!mkdtemp(d->path)) {
        free(d);
        return -1;
    }
    snprintf(d->file, sizeof d->file, "%s/model.ckpt", d->path);
    *state = d;
    return 0;
}

static int teardown_dir(void **state)
{
    dir *d = *state;
    DIR *dd = opendir(d->path);
    if (dd) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(dd)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", d->path, e->d_name);
                unlink(p);
            }
        closedir(dd);
    }
    rmdir(d->path);
    free(d);
    return 0;
}

/* Same generator state (fields compared: the struct has padding). */
static bool same_rng(const nb_rng *a, const nb_rng *b)
{
    return memcmp(a->s, b->s, sizeof a->s) == 0 && a->has_spare == b->has_spare &&
           (!a->has_spare || memcmp(&a->spare, &b->spare, sizeof a->spare) == 0);
}

static int count_files(const char *path)
{
    DIR *dd = opendir(path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(dd);
    return n;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)size + 1);
    assert_int_equal(fread(b, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return b;
}

static void spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A model of every kind of tensor: f32 and f64, ranks 0 to 3, one empty,
 * values from @p seed (special values included when @p specials). */
static nb_model *make_model(uint64_t seed, bool specials)
{
    nb_model *m = nb_model_new();
    nb_rng r;
    nb_rng_seed(&r, seed);
    struct {
        const char *name;
        nb_dtype dt;
        int rank;
        int64_t shape[3];
    } spec[] = {
        {"fc1.weight", NB_F32, 2, {3, 4}}, {"fc1.bias", NB_F32, 1, {4}},
        {"scale", NB_F64, 0, {0}},         {"cube", NB_F64, 3, {2, 1, 3}},
        {"empty", NB_F32, 2, {0, 5}},      {"bn.running_mean", NB_F32, 1, {4}},
    };
    for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
        nb_tensor *p = NULL;
        assert_int_equal(nb_model_add(m, spec[k].name, spec[k].dt, spec[k].rank, spec[k].shape, &p),
                         NB_OK);
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            nb_tensor_set(p, i, nb_rng_normal(&r));
    }
    if (specials) {
        nb_tensor *c = nb_model_get(m, "cube");
        nb_tensor_set(c, 0, -0.0);
        nb_tensor_set(c, 1, INFINITY);
        nb_tensor_set(c, 2, NAN);
        nb_tensor_set(c, 3, 4.9e-324);
        nb_tensor_f32(nb_model_get(m, "fc1.bias"))[0] = 1e-45f;
    }
    return m;
}

static void grads_from(nb_model *m, uint64_t seed)
{
    nb_rng r;
    nb_rng_seed(&r, seed);
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            nb_tensor_set(nb_tensor_grad(p), i, nb_rng_normal(&r));
}

static size_t bytes_of(nb_tensor *p)
{
    return (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p));
}

/* Bitwise equality of two models' tensors (same names in the same order). */
static bool same_models(nb_model *a, nb_model *b)
{
    if (nb_model_count(a) != nb_model_count(b))
        return false;
    for (nb_tensor *p = nb_model_next(a, NULL), *q = nb_model_next(b, NULL); p;
         p = nb_model_next(a, p), q = nb_model_next(b, q)) {
        if (strcmp(nb_tensor_name(p), nb_tensor_name(q)) || bytes_of(p) != bytes_of(q) ||
            memcmp(nb_tensor_data(p), nb_tensor_data(q), bytes_of(p)))
            return false;
    }
    return true;
}

static nb_optim *adam(void)
{
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_ADAM);
    o.schedule.kind = NB_SCHED_COSINE;
    o.schedule.period = 10;
    nb_optim *opt = nb_optim_new(&o);
    assert_non_null(opt);
    return opt;
}

/* ----------------------------------------------------------- round trip */

static void test_round_trip_exact(void **state)
{
    dir *d = *state;
    nb_model *m = make_model(1, true);
    nb_optim *opt = adam();
    for (int t = 0; t < 3; t++) {
        grads_from(m, 10 + (uint64_t)t);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
    }
    nb_optim_next_epoch(opt);
    nb_rng rng;
    nb_rng_seed(&rng, 77);
    (void)nb_rng_normal(&rng); /* leaves a spare normal deviate */
    nb_ckpt_opts co = {.rng = &rng};
    nb_error err;
    assert_int_equal(nb_model_save(m, opt, d->file, &co, &err), NB_OK);
    assert_int_equal(err.status, NB_OK);
    assert_int_equal(count_files(d->path), 1); /* no temporary left */

    nb_model *m2 = make_model(2, false);
    nb_optim *opt2 = adam();
    nb_rng rng2;
    nb_rng_seed(&rng2, 5);
    nb_ckpt_opts co2 = {.rng = &rng2};
    assert_false(same_models(m, m2));
    if (nb_model_load(m2, opt2, d->file, &co2, &err) != NB_OK)
        fail_msg("%s", err.msg);
    assert_true(same_models(m, m2));
    assert_int_equal(nb_optim_steps(opt2), 3);
    assert_int_equal(nb_optim_sched_pos(opt2), 4);
    assert_int_equal(nb_optim_state_count(opt2), nb_optim_state_count(opt));
    assert_true(rng.has_spare);
    assert_true(same_rng(&rng, &rng2));
    tc_near(nb_rng_normal(&rng2), nb_rng_normal(&rng), 0);
    /* the optimizer state came back too: the next steps agree bit for bit */
    for (int t = 0; t < 3; t++) {
        nb_tensor *c = nb_model_get(m, "cube"), *c2 = nb_model_get(m2, "cube");
        nb_tensor_set(c, 1, 1.0), nb_tensor_set(c, 2, 2.0); /* make the values finite */
        nb_tensor_set(c2, 1, 1.0), nb_tensor_set(c2, 2, 2.0);
        grads_from(m, 20 + (uint64_t)t);
        grads_from(m2, 20 + (uint64_t)t);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        assert_int_equal(nb_optim_step(opt2, m2), NB_OK);
        assert_true(same_models(m, m2));
    }
    /* a model alone, loaded without optimizer or RNG, also round-trips */
    assert_int_equal(nb_model_save(m, NULL, d->file, NULL, NULL), NB_OK);
    nb_model *m3 = make_model(3, false);
    assert_int_equal(nb_model_load(m3, NULL, d->file, NULL, &err), NB_OK);
    assert_true(same_models(m, m3));
    nb_model_free(m3);
    nb_model_free(m2);
    nb_model_free(m);
    nb_optim_free(opt2);
    nb_optim_free(opt);
}

/* ------------------------------------------------------- damaged files */

#define SMALL_META "arch=mlp\nsizes=2,1\nact=relu\nnote=\xce\xbb = 0.5"

/* A small model, optimizer, RNG and metadata saved; returns the file's bytes. */
static unsigned char *small_file(const dir *d, size_t *n)
{
    nb_model *m = nb_model_new();
    nb_tensor *w = NULL, *b = NULL;
    assert_int_equal(nb_model_add(m, "w", NB_F32, 1, (int64_t[]){2}, &w), NB_OK);
    assert_int_equal(nb_model_add(m, "b", NB_F64, 0, NULL, &b), NB_OK);
    nb_tensor_set(w, 0, 1.5), nb_tensor_set(w, 1, -2), nb_tensor_set(b, 0, 0.25);
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_MOMENTUM);
    nb_optim *opt = nb_optim_new(&o);
    nb_tensor_set(nb_tensor_grad(w), 0, 1);
    nb_tensor_set(nb_tensor_grad(b), 0, -1);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    nb_rng r;
    nb_rng_seed(&r, 3);
    nb_ckpt_opts co = {.rng = &r, .meta = SMALL_META};
    assert_int_equal(nb_model_save(m, opt, d->file, &co, NULL), NB_OK);
    nb_optim_free(opt);
    nb_model_free(m);
    return slurp(d->file, n);
}

/* The first place of the text s in b[0..n), or NULL. */
static const unsigned char *find(const unsigned char *b, size_t n, const char *s)
{
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(b + i, s, k))
            return b + i;
    return NULL;
}

typedef struct target {
    nb_model *m, *orig;
    nb_optim *opt;
    nb_rng rng, rng_orig;
} target;

static void target_init(target *t)
{
    t->m = nb_model_new();
    t->orig = nb_model_new();
    nb_model *ms[2] = {t->m, t->orig};
    for (int k = 0; k < 2; k++) {
        nb_tensor *w = NULL, *b = NULL;
        nb_model_add(ms[k], "w", NB_F32, 1, (int64_t[]){2}, &w);
        nb_model_add(ms[k], "b", NB_F64, 0, NULL, &b);
        nb_tensor_set(w, 0, 9), nb_tensor_set(w, 1, 8), nb_tensor_set(b, 0, 7);
    }
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_MOMENTUM);
    t->opt = nb_optim_new(&o);
    nb_rng_seed(&t->rng, 99);
    t->rng_orig = t->rng;
}

/* The load failed and changed nothing. */
static void target_unchanged(target *t)
{
    assert_true(same_models(t->m, t->orig));
    assert_int_equal(nb_optim_steps(t->opt), 0);
    assert_int_equal(nb_optim_state_count(t->opt), 0);
    assert_true(same_rng(&t->rng, &t->rng_orig));
}

static void target_free(target *t)
{
    nb_model_free(t->m);
    nb_model_free(t->orig);
    nb_optim_free(t->opt);
}

static void test_every_byte_flip_detected(void **state)
{
    dir *d = *state;
    size_t n;
    unsigned char *good = small_file(d, &n);
    assert_true(n > 300 && n < 4096);
    target t;
    target_init(&t);
    char meta[128];
    nb_ckpt_opts co = {.rng = &t.rng, .meta_out = meta, .meta_cap = sizeof meta};
    nb_error err;
    /* the intact file loads, metadata and all */
    assert_int_equal(nb_model_load(t.m, t.opt, d->file, &co, &err), NB_OK);
    assert_string_equal(meta, SMALL_META);
    target_free(&t);

    const unsigned char flips[3] = {0xff, 0x01, 0x80};
    for (size_t i = 0; i < n; i++) {
        for (int f = 0; f < 3; f++) {
            good[i] ^= flips[f];
            spit(d->file, good, n);
            good[i] ^= flips[f];
            target_init(&t);
            co.rng = &t.rng;
            strcpy(meta, "untouched");
            nb_status st = nb_model_load(t.m, t.opt, d->file, &co, &err);
            if (st == NB_OK)
                fail_msg("byte %zu ^ 0x%02x was not detected", i, flips[f]);
            assert_string_equal(meta, "untouched");
            assert_int_equal(nb_ckpt_read_meta(d->file, meta, sizeof meta, NULL), st);
            assert_int_equal(err.status, st);
            assert_true(strlen(err.msg) > 10);
            assert_true(err.offset >= -1 && err.offset <= (int64_t)n);
            target_unchanged(&t);
            target_free(&t);
        }
    }
    free(good);
}

/* A CRC cannot say where a file is damaged: the error names the part
 * whose check failed (the header, with the length before it, or the data). */
static void test_crc_failure_names_part(void **state)
{
    dir *d = *state;
    size_t n;
    unsigned char *good = small_file(d, &n);
    size_t data_at = 8 + (size_t)(good[0] | good[1] << 8 | good[2] << 16);
    const unsigned char *lr = find(good, n, "\"optim.lr\":\"0.0");
    const unsigned char *act = find(good, n, "\"act\":\"relu");
    assert_non_null(lr);
    assert_non_null(act);
    const struct {
        size_t at;
        const char *part;
    } cases[] = {
        {(size_t)(lr - good) + 15, "nabla.crc32.header"}, /* a digit of the learning rate */
        {(size_t)(act - good) + 7, "nabla.crc32.header"}, /* "relu" becomes "selu" */
        {data_at, "nabla.crc32.data"},
        {n - 1, "nabla.crc32.data"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        good[cases[k].at] ^= 0x01;
        spit(d->file, good, n);
        good[cases[k].at] ^= 0x01;
        char meta[128];
        nb_error err;
        assert_int_equal(nb_ckpt_read_meta(d->file, meta, sizeof meta, &err), NB_ERR_PARSE);
        if (!strstr(err.msg, cases[k].part) || !strstr(err.msg, "damaged"))
            fail_msg("byte %zu: '%s' does not say '%s'", cases[k].at, err.msg, cases[k].part);
    }
    free(good);
}

static void test_every_truncation_detected(void **state)
{
    dir *d = *state;
    size_t n;
    unsigned char *good = small_file(d, &n);
    for (size_t len = 0; len < n; len++) {
        spit(d->file, good, len);
        target t;
        target_init(&t);
        nb_ckpt_opts co = {.rng = &t.rng};
        nb_error err;
        nb_status st = nb_model_load(t.m, t.opt, d->file, &co, &err);
        if (st != NB_ERR_PARSE)
            fail_msg("truncated to %zu of %zu bytes: status %d (%s)", len, n, st, err.msg);
        target_unchanged(&t);
        target_free(&t);
    }
    /* and a byte too many */
    unsigned char *longer = malloc(n + 1);
    memcpy(longer, good, n);
    longer[n] = 0;
    spit(d->file, longer, n + 1);
    nb_model *m = nb_model_new();
    nb_error err;
    assert_int_equal(nb_model_load(m, NULL, d->file, NULL, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, "belong to no tensor"));
    assert_int_equal(err.offset, (int64_t)n);
    nb_model_free(m);
    free(longer);
    free(good);
}

/* ---------------------------------------------------- failing saves */

typedef struct budget {
    size_t left; /* bytes the writer may still write */
} budget;

static size_t failing_write(void *ud, FILE *f, const void *data, size_t n)
{
    budget *b = ud;
    size_t k = n < b->left ? n : b->left;
    b->left -= k;
    return fwrite(data, 1, k, f);
}

static void test_failed_save_keeps_old_file(void **state)
{
    dir *d = *state;
    nb_model *m = make_model(1, false);
    nb_optim *opt = adam();
    grads_from(m, 4);
    nb_optim_step(opt, m);
    assert_int_equal(nb_model_save(m, opt, d->file, NULL, NULL), NB_OK);
    size_t n_old;
    unsigned char *old = slurp(d->file, &n_old);

    nb_model *m2 = make_model(2, false); /* other values, same layout */
    const size_t cuts[] = {0, 1, 27, 28, 100, n_old / 2, n_old - 5, n_old - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        budget b = {cuts[k]};
        nb_ckpt_opts co = {.write = failing_write, .write_ud = &b};
        nb_error err;
        assert_int_equal(nb_model_save(m2, opt, d->file, &co, &err), NB_ERR_IO);
        assert_non_null(strstr(err.msg, "unchanged"));
        size_t n_now;
        unsigned char *now = slurp(d->file, &n_now);
        assert_int_equal(n_now, n_old);
        assert_memory_equal(now, old, n_old);
        free(now);
        assert_int_equal(count_files(d->path), 1); /* the temporary is gone */
    }
    /* the old file still loads and gives the first model */
    nb_model *m3 = make_model(3, false);
    assert_int_equal(nb_model_load(m3, NULL, d->file, NULL, NULL), NB_OK);
    assert_true(same_models(m3, m));
    /* a save into a directory that does not exist fails cleanly */
    nb_error err;
    assert_int_equal(nb_model_save(m, NULL, "/nonexistent-dir/x.ckpt", NULL, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, "temporary"));
    free(old);
    nb_model_free(m3);
    nb_model_free(m2);
    nb_model_free(m);
    nb_optim_free(opt);
}

/* ----------------------------------------------------------------- resume */

/* A small regression network trained on mini-batches drawn with rng:
 * y = tanh(x W1 + b1) W2, an optimizer of the given kind with clipping and
 * a per-epoch step schedule, and a running mean of the inputs kept in the
 * model. */
typedef struct run {
    nb_model *m;
    nb_optim *opt;
    nb_graph *g;
    nb_rng rng;
} run;

/* The optimizers a run is resumed with: every kind (Adam with the
 * defaults), and RMSprop and Adagrad with each of their options. */
static nb_optim_opts run_optim(int k)
{
    nb_optim_opts o = nb_optim_defaults(k <= NB_OPTIM_ADAGRAD       ? (nb_optim_kind)k
                                        : k == NB_OPTIM_ADAGRAD + 1 ? NB_OPTIM_RMSPROP
                                                                    : NB_OPTIM_ADAGRAD);
    if (k > NB_OPTIM_ADAGRAD) {
        o.momentum = 0.5;
        o.alpha = 0.9;
        o.centered = true;
        o.lr_decay = 0.01;
        o.initial_accumulator_value = 0.1;
        o.weight_decay = 0.01;
    }
    return o;
}
enum { RUN_OPTIMS = NB_OPTIM_ADAGRAD + 3 };

static void run_init(run *r, uint64_t seed, int optim)
{
    r->m = nb_model_new();
    r->g = nb_graph_new();
    nb_rng init;
    nb_rng_seed(&init, 1234); /* initial values: the same in every run */
    const char *names[4] = {"W1", "b1", "W2", "bn.running_mean"};
    const int64_t shapes[4][2] = {{3, 8}, {1, 8}, {8, 1}, {1, 3}};
    for (int k = 0; k < 4; k++) {
        nb_tensor *p = NULL;
        assert_int_equal(nb_model_add(r->m, names[k], NB_F32, 2, shapes[k], &p), NB_OK);
        for (int64_t i = 0; i < nb_tensor_size(p); i++)
            nb_tensor_set(p, i, k == 3 ? 0.0 : 0.5 * nb_rng_normal(&init));
    }
    nb_optim_opts o = run_optim(optim);
    o.lr = 0.01;
    o.clip_norm = 1.0;
    o.schedule.kind = NB_SCHED_STEP;
    o.schedule.step_size = 2;
    o.schedule.gamma = 0.7;
    o.schedule.per_epoch = true;
    r->opt = nb_optim_new(&o);
    nb_rng_seed(&r->rng, seed);
}

static void run_free(run *r)
{
    nb_graph_free(r->g);
    nb_model_free(r->m);
    nb_optim_free(r->opt);
}

enum { BATCH = 4, STEPS_PER_EPOCH = 5 };

static void run_steps(run *r, int from, int to)
{
    nb_graph *g = r->g;
    for (int step = from; step < to; step++) {
        float x[BATCH * 3], y[BATCH];
        for (int i = 0; i < BATCH; i++) {
            double u = nb_rng_normal(&r->rng), v = nb_rng_normal(&r->rng);
            double w = (double)nb_rng_below(&r->rng, 5);
            x[3 * i] = (float)u, x[3 * i + 1] = (float)v, x[3 * i + 2] = (float)w;
            y[i] = (float)(sin(u) + 0.5 * v * w);
        }
        nb_tensor *X = nb_tensor_from(g, NB_F32, 2, (int64_t[]){BATCH, 3}, x);
        nb_tensor *Y = nb_tensor_from(g, NB_F32, 2, (int64_t[]){BATCH, 1}, y);
        nb_tensor *h = nb_tanh(g, nb_add(g, nb_matmul(g, X, nb_model_get(r->m, "W1"), false, false),
                                         nb_model_get(r->m, "b1")));
        nb_tensor *out = nb_matmul(g, h, nb_model_get(r->m, "W2"), false, false);
        nb_tensor *loss = nb_mean(g, nb_square(g, nb_sub(g, out, Y)), NULL, 0, false);
        assert_non_null(loss);
        nb_model_zero_grad(r->m);
        assert_int_equal(nb_backward(g, loss), NB_OK);
        assert_int_equal(nb_optim_step(r->opt, r->m), NB_OK);
        /* running statistics, updated outside the optimizer */
        float *rm = nb_tensor_f32(nb_model_get(r->m, "bn.running_mean"));
        for (int j = 0; j < 3; j++) {
            float mean = 0;
            for (int i = 0; i < BATCH; i++)
                mean += x[3 * i + j] / BATCH;
            rm[j] = 0.9f * rm[j] + 0.1f * mean;
        }
        nb_graph_reset(g);
        if ((step + 1) % STEPS_PER_EPOCH == 0)
            nb_optim_next_epoch(r->opt);
    }
}

static void test_resume_bit_identical(void **state)
{
    dir *d = *state;
    enum { TOTAL = 40 };
    for (int optim = 0; optim < RUN_OPTIMS; optim++) {
        run full;
        run_init(&full, 42, optim);
        run_steps(&full, 0, TOTAL);

        for (int k = 1; k < TOTAL; k += 6) {
            run first;
            run_init(&first, 42, optim);
            run_steps(&first, 0, k);
            nb_ckpt_opts co = {.rng = &first.rng};
            nb_error err;
            assert_int_equal(nb_model_save(first.m, first.opt, d->file, &co, &err), NB_OK);
            run_free(&first);

            run second;
            run_init(&second, 7, optim); /* another seed: the checkpoint must restore it */
            co.rng = &second.rng;
            if (nb_model_load(second.m, second.opt, d->file, &co, &err) != NB_OK)
                fail_msg("%s", err.msg);
            run_steps(&second, k, TOTAL);
            if (!same_models(second.m, full.m))
                fail_msg("%s (case %d) resumed after %d of %d steps: parameters differ",
                         nb_optim_kind_name(run_optim(optim).kind), optim, k, TOTAL);
            assert_int_equal(nb_optim_steps(second.opt), TOTAL);
            assert_int_equal(nb_optim_sched_pos(second.opt), nb_optim_sched_pos(full.opt));
            run_free(&second);
        }
        run_free(&full);
    }
}

/* --------------------------------------------------------- mismatches */

static void test_mismatch_named(void **state)
{
    dir *d = *state;
    nb_model *m = make_model(1, false);
    nb_optim *opt = adam();
    grads_from(m, 1);
    nb_optim_step(opt, m);
    assert_int_equal(nb_model_save(m, opt, d->file, NULL, NULL), NB_OK);
    nb_error err;

    /* a model with one tensor fewer: the file's extra tensor is named */
    nb_model *fewer = nb_model_new();
    nb_model_add(fewer, "fc1.weight", NB_F32, 2, (int64_t[]){3, 4}, NULL);
    assert_int_equal(nb_model_load(fewer, NULL, d->file, NULL, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "fc1.bias");
    assert_non_null(strstr(err.msg, "not in the model"));
    nb_model_free(fewer);

    /* a model with one tensor more */
    nb_model *more = make_model(2, false);
    nb_model_add(more, "extra", NB_F64, 0, NULL, NULL);
    nb_model *more_orig = make_model(2, false);
    assert_int_equal(nb_model_load(more, NULL, d->file, NULL, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "extra");
    assert_non_null(strstr(err.msg, "not in the file"));
    nb_model_free(more);
    nb_model_free(more_orig);

    /* another shape, another dtype */
    nb_model *shape = nb_model_new();
    nb_model_add(shape, "fc1.weight", NB_F32, 2, (int64_t[]){4, 3}, NULL);
    assert_int_equal(nb_model_load(shape, NULL, d->file, NULL, &err), NB_ERR_SHAPE);
    assert_string_equal(err.name, "fc1.weight");
    assert_non_null(strstr(err.msg, "[3,4]"));
    assert_non_null(strstr(err.msg, "[4,3]"));
    nb_model_free(shape);
    nb_model *dtype = nb_model_new();
    nb_model_add(dtype, "fc1.weight", NB_F64, 2, (int64_t[]){3, 4}, NULL);
    assert_int_equal(nb_model_load(dtype, NULL, d->file, NULL, &err), NB_ERR_DTYPE);
    assert_non_null(strstr(err.msg, "f32"));
    nb_model_free(dtype);

    /* optimizer of another kind; optimizer or RNG asked for but absent */
    nb_model *m2 = make_model(2, false), *m2_orig = make_model(2, false);
    nb_optim_opts so = nb_optim_defaults(NB_OPTIM_SGD);
    nb_optim *sgd = nb_optim_new(&so);
    assert_non_null(sgd);
    assert_int_equal(nb_model_load(m2, sgd, d->file, NULL, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "adam"));
    assert_non_null(strstr(err.msg, "sgd"));
    nb_rng r;
    nb_rng_seed(&r, 1);
    assert_int_equal(nb_model_load(m2, NULL, d->file, &(nb_ckpt_opts){.rng = &r}, &err),
                     NB_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "RNG"));
    assert_int_equal(nb_model_save(m, NULL, d->file, NULL, NULL), NB_OK);
    nb_optim *opt2 = adam();
    assert_int_equal(nb_model_load(m2, opt2, d->file, NULL, &err), NB_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "no optimizer state"));
    assert_true(same_models(m2, m2_orig));

    /* NULLs and unreadable paths */
    assert_int_equal(nb_model_load(NULL, NULL, d->file, NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_model_load(m2, NULL, NULL, NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_model_save(NULL, NULL, d->file, NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_model_save(m2, NULL, NULL, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_model_load(m2, NULL, "/nonexistent/file", NULL, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/file"));
    assert_int_equal(nb_model_load(m2, NULL, d->path, NULL, &err), NB_ERR_IO);
    assert_true(same_models(m2, m2_orig));

    nb_optim_free(opt2);
    nb_optim_free(sgd);
    nb_model_free(m2);
    nb_model_free(m2_orig);
    nb_model_free(m);
    nb_optim_free(opt);
}

/* ------------------------------------------------------------- metadata */

typedef struct listing {
    int n;
    char names[8][32];
    nb_dtype dt[8];
    int rank[8];
    int64_t shape[8][NB_MAX_RANK];
    int stop_at; /* return NB_ERR_ARG at this call (1-based; 0: never) */
} listing;

static nb_status list_cb(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape)
{
    listing *l = ud;
    if (++l->n == l->stop_at)
        return NB_ERR_ARG;
    assert_true(l->n <= 8 && strlen(name) < 32);
    strcpy(l->names[l->n - 1], name);
    l->dt[l->n - 1] = dt;
    l->rank[l->n - 1] = rank;
    memcpy(l->shape[l->n - 1], shape, (size_t)rank * sizeof *shape);
    return NB_OK;
}

/* ----------------------------------------------------- crafted files */

/* An update count "P/t" of @p value in @p store. */
static void add_count(nb_model *store, const char *name, double value)
{
    assert_int_equal(nb_model_add(store, name, NB_F64, 0, NULL, NULL), NB_OK);
    nb_tensor_set(nb_model_get(store, name), 0, value);
}

/* Save the stores with this metadata as a safetensors file (correct
 * CRC-32s), then load it as a checkpoint into a fresh momentum target; on
 * failure nothing may have changed. */
static nb_status load_crafted(const dir *d, const char *meta, nb_model *const *stores, int n,
                              nb_error *err)
{
    nb_file_opts fo = {.meta = meta};
    assert_int_equal(nb_safetensors_save(d->file, (const nb_model *const *)stores, n, &fo, err),
                     NB_OK);
    target t;
    target_init(&t);
    nb_ckpt_opts co = {.rng = &t.rng};
    nb_status st = nb_model_load(t.m, t.opt, d->file, &co, err);
    if (st != NB_OK)
        target_unchanged(&t);
    target_free(&t);
    return st;
}

#define GOOD_OPTS                                                                                  \
    "optim.lr=0.01\noptim.momentum=0.9\noptim.beta1=0.9\n"                                         \
    "optim.beta2=0.999\noptim.eps=1e-08\noptim.weight_decay=0\noptim.clip_norm=0\n"                \
    "optim.schedule=constant\noptim.step_size=1\noptim.gamma=1\noptim.period=1\noptim.min_lr=0\n"  \
    "optim.per_epoch=0\n"
#define GOOD_OPTIM "optim.kind=momentum\n" GOOD_OPTS
#define GOOD_RNG                                                                                   \
    "rng.state=0000000000000001,0000000000000002,0000000000000003,0000000000000004\nrng.spare=\n"
#define HEAD "nabla.format=checkpoint\nnabla.version=2\n"

/* Checkpoints crafted with correct CRC-32s: every flaw of the format, the
 * optimizer's state or the generator's is named, and nothing changes. */
static void test_crafted_files(void **state)
{
    dir *d = *state;
    nb_error err;
    /* the model of target_init, and momentum state for both tensors */
    nb_model *model = nb_model_new(), *st = nb_model_new();
    nb_model_add(model, "w", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(model, "b", NB_F64, 0, NULL, NULL);
    nb_model_add(st, "w/velocity", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(st, "b/velocity", NB_F64, 0, NULL, NULL);
    add_count(st, "w/t", 3);
    add_count(st, "b/t", 2);
    nb_model *both[2] = {model, st};
    const char *good = HEAD GOOD_OPTIM "optim.step=3\noptim.sched_pos=3\n" GOOD_RNG;
    assert_int_equal(load_crafted(d, good, both, 2, &err), NB_OK);

    struct {
        const char *meta;
        int n_stores;
        nb_status status;
        const char *msg;
    } cases[] = {
        {"a=1", 2, NB_ERR_PARSE, "not a nabla checkpoint"},
        {"nabla.format=weights\n" GOOD_RNG, 2, NB_ERR_PARSE, "not a nabla checkpoint"},
        {"nabla.format=checkpoint\nnabla.version=1", 2, NB_ERR_PARSE, "version 1 is not"},
        {"nabla.format=checkpoint\nnabla.version=x", 2, NB_ERR_PARSE, "version"},
        {HEAD GOOD_RNG, 2, NB_ERR_NOTFOUND, "not in the model"},   /* state, no optimizer */
        {HEAD GOOD_RNG, 1, NB_ERR_NOTFOUND, "no optimizer state"}, /* asked for, absent */
        {HEAD "optim.kind=sgd\n" GOOD_OPTS "optim.step=1\noptim.sched_pos=1\n" GOOD_RNG, 1,
         NB_ERR_ARG, "sgd"}, /* another kind */
        {HEAD "optim.kind=lion\n" GOOD_RNG, 2, NB_ERR_PARSE, "optim.kind"},
        {HEAD GOOD_OPTIM "optim.step=3\noptim.sched_pos=3", 2, NB_ERR_NOTFOUND, "RNG"},
        {HEAD GOOD_OPTIM "optim.sched_pos=3\n" GOOD_RNG, 2, NB_ERR_NOTFOUND, "optim.step"},
        {HEAD GOOD_OPTIM "optim.step=-1\noptim.sched_pos=3\n" GOOD_RNG, 2, NB_ERR_PARSE,
         "optim.step"},
        {HEAD GOOD_OPTIM "optim.step=3\noptim.sched_pos=3\n"
                         "rng.state=0,0,0,0\nrng.spare=",
         2, NB_ERR_PARSE, "rng.state"},
        {HEAD GOOD_OPTIM "optim.step=3\noptim.sched_pos=3\n"
                         "rng.state=0000000000000000,0000000000000000,0000000000000000,"
                         "0000000000000000\nrng.spare=",
         2, NB_ERR_PARSE, "all zero"},
        {HEAD GOOD_OPTIM "optim.step=3\noptim.sched_pos=3\n"
                         "rng.state=0000000000000001,0000000000000002,0000000000000003,"
                         "0000000000000004\nrng.spare=12",
         2, NB_ERR_PARSE, "rng.spare"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_status got = load_crafted(d, cases[i].meta, both, cases[i].n_stores, &err);
        if (got != cases[i].status || !strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: status %d (%s), wanted %d and '%s'", i, got, err.msg,
                     cases[i].status, cases[i].msg);
    }

    /* state tensors of the wrong shape, or missing */
    nb_model *bad = nb_model_new();
    nb_model_add(bad, "w/velocity", NB_F32, 1, (int64_t[]){3}, NULL);
    nb_model_add(bad, "b/velocity", NB_F64, 0, NULL, NULL);
    add_count(bad, "w/t", 3);
    add_count(bad, "b/t", 2);
    nb_model *with_bad[2] = {model, bad};
    assert_int_equal(load_crafted(d, good, with_bad, 2, &err), NB_ERR_SHAPE);
    assert_string_equal(err.name, "w/velocity");
    nb_model *half = nb_model_new();
    nb_model_add(half, "w/velocity", NB_F32, 1, (int64_t[]){2}, NULL);
    add_count(half, "w/t", 3);
    add_count(half, "b/t", 2);
    nb_model *with_half[2] = {model, half};
    assert_int_equal(load_crafted(d, good, with_half, 2, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "b/velocity");
    assert_non_null(strstr(err.msg, "missing"));

    /* the update counts P/t: whole numbers from 0 to 2^53 in f64 scalars */
    const double bad_counts[] = {-1, 0.5, 0x1p53 + 2, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_counts / sizeof *bad_counts; i++) {
        nb_tensor_set(nb_model_get(st, "w/t"), 0, bad_counts[i]);
        assert_int_equal(load_crafted(d, good, both, 2, &err), NB_ERR_PARSE);
        assert_string_equal(err.name, "w/t");
        assert_non_null(strstr(err.msg, "2^53"));
        assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_PARSE);
    }
    nb_tensor_set(nb_model_get(st, "w/t"), 0, 0x1p53);
    assert_int_equal(load_crafted(d, good, both, 2, &err), NB_OK);
    nb_tensor_set(nb_model_get(st, "w/t"), 0, 3);
    nb_model *f32_count = nb_model_new();
    nb_model_add(f32_count, "w/velocity", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(f32_count, "b/velocity", NB_F64, 0, NULL, NULL);
    nb_model_add(f32_count, "w/t", NB_F32, 0, NULL, NULL);
    add_count(f32_count, "b/t", 2);
    nb_model *with_f32[2] = {model, f32_count};
    assert_int_equal(load_crafted(d, good, with_f32, 2, &err), NB_ERR_SHAPE);
    assert_string_equal(err.name, "w/t");
    assert_non_null(strstr(err.msg, "f64 scalar"));
    /* state without its count is no state: a tensor the model lacks */
    nb_model *uncounted = nb_model_new();
    nb_model_add(uncounted, "w/velocity", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(uncounted, "b/velocity", NB_F64, 0, NULL, NULL);
    add_count(uncounted, "w/t", 3);
    nb_model *with_uncounted[2] = {model, uncounted};
    assert_int_equal(load_crafted(d, good, with_uncounted, 2, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "b/velocity");
    assert_non_null(strstr(err.msg, "not in the model"));
    /* a count of no tensor of the file is no count either */
    add_count(uncounted, "b/t", 2);
    add_count(uncounted, "c/t", 1);
    assert_int_equal(load_crafted(d, good, with_uncounted, 2, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "c/t");

    /* a checkpoint without its CRC-32s (another writer's safetensors file) */
    FILE *f = fopen(d->file, "wb");
    const char *hdr =
        "{\"__metadata__\":{\"nabla.format\":\"checkpoint\",\"nabla.version\":\"2\"}}";
    unsigned char len[8] = {(unsigned char)strlen(hdr)};
    fwrite(len, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    fclose(f);
    nb_model *none = nb_model_new();
    assert_int_equal(nb_model_load(none, NULL, d->file, NULL, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, "no nabla.crc32.header"));
    assert_int_equal(nb_safetensors_list(d->file, NULL, NULL, NULL, &err), NB_OK);

    /* a file of the first format: refused, naming it */
    f = fopen(d->file, "wb");
    fwrite("NABLACKP\1\0\0\0\0\0\0\0\0\0\0\0", 1, 16, f);
    fclose(f);
    assert_int_equal(nb_model_load(none, NULL, d->file, NULL, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, "first format"));
    assert_non_null(strstr(err.msg, "NABLACKP"));
    assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, "first format"));

    nb_model_free(none);
    nb_model_free(uncounted);
    nb_model_free(f32_count);
    nb_model_free(half);
    nb_model_free(bad);
    nb_model_free(model);
    nb_model_free(st);
}

/* Optimizer state kept for a tensor that is itself state ("w/m", adam's m
 * of "w", with a count "w/m/t"): nb_ckpt_list would set "w/m" aside as
 * state, and a model built from the listing could not take the file with
 * an adam optimizer. The listing and the load refuse it, naming it. */
static void test_state_kept_for_state(void **state)
{
    dir *d = *state;
    nb_model *w = nb_model_new(), *st = nb_model_new();
    nb_model_add(w, "w", NB_F32, 1, (int64_t[]){2}, NULL);
    static const char *const names[] = {"w/m", "w/v", "w/m/m", "w/m/v"};
    for (int i = 0; i < 4; i++)
        nb_model_add(st, names[i], NB_F32, 1, (int64_t[]){2}, NULL);
    add_count(st, "w/t", 1);
    add_count(st, "w/m/t", 1);
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAM);
    nb_optim *opt = nb_optim_new(&oo);
    char meta[NB_META_MAX + 1] = HEAD;
    nb_model *scratch = nb_model_new();
    assert_int_equal(nb_optim_state_save(opt, w, scratch, meta, sizeof meta, NULL), NB_OK);
    nb_model *stores[2] = {w, st};
    nb_file_opts fo = {.meta = meta};
    assert_int_equal(nb_safetensors_save(d->file, (const nb_model *const *)stores, 2, &fo, NULL),
                     NB_OK);
    nb_error err;
    assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_PARSE);
    assert_string_equal(err.name, "w/m");
    assert_non_null(strstr(err.msg, "'w/m'"));
    assert_non_null(strstr(err.msg, "state of 'w'"));
    nb_tensor_set(nb_model_get(w, "w"), 0, 5.0);
    assert_int_equal(nb_model_load(w, opt, d->file, NULL, &err), NB_ERR_PARSE);
    assert_true(nb_tensor_get(nb_model_get(w, "w"), 0) == 5.0);
    assert_int_equal(nb_optim_state_count(opt), 0);
    /* without the count of "w/m", "w/m" is adam's m of "w" and the file loads */
    nb_model_free(st);
    st = nb_model_new();
    nb_model_add(st, "w/m", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(st, "w/v", NB_F32, 1, (int64_t[]){2}, NULL);
    add_count(st, "w/t", 1);
    stores[1] = st;
    assert_int_equal(nb_safetensors_save(d->file, (const nb_model *const *)stores, 2, &fo, NULL),
                     NB_OK);
    assert_int_equal(nb_model_load(w, opt, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_optim_state_count(opt), 1);
    nb_model_free(scratch);
    nb_model_free(st);
    nb_model_free(w);
    nb_optim_free(opt);
}

/* The checkpoint's own lines are checked by every listing and load, with
 * or without an optimizer or a generator to load them into: optimizer lines
 * without optim.kind, counts that are not counts, options an optimizer
 * cannot take, a generator's state that does not parse. Before, a listing
 * passed such a file and only a load into an optimizer or a generator
 * refused it (or, for the options, none did). */
static void test_own_lines_checked_by_list(void **state)
{
    dir *d = *state;
    nb_model *model = nb_model_new(), *st = nb_model_new();
    nb_model_add(model, "w", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(model, "b", NB_F64, 0, NULL, NULL);
    nb_model_add(st, "w/velocity", NB_F32, 1, (int64_t[]){2}, NULL);
    add_count(st, "w/t", -3);
    nb_model *both[2] = {model, st};
#define COUNTS "optim.step=3\noptim.sched_pos=3\n"
    struct {
        const char *meta;
        int n_stores;
        nb_status status;
        const char *name, *msg;
    } cases[] = {
        {HEAD "optim.step=1", 1, NB_ERR_PARSE, "optim.step", "no optim.kind"},
        {HEAD GOOD_OPTS COUNTS, 1, NB_ERR_PARSE, "optim.lr", "no optim.kind"},
        {HEAD GOOD_OPTIM "optim.step=x\noptim.sched_pos=3", 2, NB_ERR_PARSE, "optim.step",
         "not a count"},
        {HEAD GOOD_OPTIM "optim.step=3", 2, NB_ERR_NOTFOUND, "optim.sched_pos", "optim.sched_pos"},
        {HEAD GOOD_OPTIM COUNTS, 2, NB_ERR_PARSE, "w/t", "2^53"}, /* w/t = -3 */
        {HEAD "optim.kind=momentum\noptim.lr=-1\noptim.momentum=0.9\noptim.beta1=0.9\n"
              "optim.beta2=0.999\noptim.eps=1e-08\noptim.weight_decay=0\noptim.clip_norm=0\n"
              "optim.schedule=constant\noptim.step_size=1\noptim.gamma=1\noptim.period=1\n"
              "optim.min_lr=0\noptim.per_epoch=0\n" COUNTS,
         2, NB_ERR_PARSE, "", "not valid"},
        {HEAD "optim.kind=momentum\n" COUNTS, 2, NB_ERR_NOTFOUND, "optim.schedule",
         "optim.schedule"},
        {HEAD "rng.state=zz\nrng.spare=", 1, NB_ERR_PARSE, "", "rng.state"},
        {HEAD "rng.spare=", 1, NB_ERR_NOTFOUND, "", "rng.state missing"},
    };
#undef COUNTS
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_file_opts fo = {.meta = cases[i].meta};
        assert_int_equal(nb_safetensors_save(d->file, (const nb_model *const *)both,
                                             cases[i].n_stores, &fo, NULL),
                         NB_OK);
        nb_error err;
        nb_status got = nb_ckpt_list(d->file, NULL, NULL, NULL, &err);
        if (got != cases[i].status || strcmp(err.name, cases[i].name) ||
            !strstr(err.msg, cases[i].msg))
            fail_msg("case %zu: list: status %d, name '%s' (%s); wanted %d, '%s' and '%s'", i, got,
                     err.name, err.msg, cases[i].status, cases[i].name, cases[i].msg);
        assert_string_equal(err.where, "nb_ckpt_list"); /* the function called, not a part's */
        /* a load without optimizer or generator refuses it too, changing nothing */
        target t;
        target_init(&t);
        nb_model *plain = nb_model_new();
        nb_model_add(plain, "w", NB_F32, 1, (int64_t[]){2}, NULL);
        nb_model_add(plain, "b", NB_F64, 0, NULL, NULL);
        nb_tensor_set(nb_model_get(plain, "w"), 0, 9);
        nb_tensor_set(nb_model_get(plain, "w"), 1, 8);
        nb_tensor_set(nb_model_get(plain, "b"), 0, 7);
        nb_model *m = cases[i].n_stores == 1 ? plain : t.m;
        assert_int_equal(nb_model_load(m, NULL, d->file, NULL, &err), cases[i].status);
        assert_string_equal(err.where, "nb_model_load");
        assert_true(same_models(m, t.orig));
        nb_model_free(plain);
        target_free(&t);
    }
    nb_model_free(model);
    nb_model_free(st);
}

/* A checkpoint is a safetensors file: any reader lists it, optimizer state
 * included, and its model tensors load into a model that holds just them
 * once the state is set aside (nb_ckpt_list lists the model's only). */
static void test_readable_as_safetensors(void **state)
{
    dir *d = *state;
    nb_model *m = make_model(1, false);
    nb_optim *opt = adam();
    grads_from(m, 1);
    nb_optim_step(opt, m);
    assert_int_equal(nb_model_save(m, opt, d->file, NULL, NULL), NB_OK);
    nb_error err;
    nb_model *all = NULL;
    char meta[NB_META_MAX + 1];
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    assert_int_equal(nb_safetensors_read(d->file, &all, &fo, &err), NB_OK);
    assert_int_equal(nb_model_count(all), 4 * nb_model_count(m)); /* each with m, v and t */
    char v[32];
    assert_int_equal(nb_meta_get(meta, "optim.kind", v, sizeof v), NB_OK);
    assert_string_equal(v, "adam");
    assert_int_equal(nb_meta_get(meta, "nabla.crc32.data", v, sizeof v), NB_ERR_NOTFOUND);
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p)) {
        nb_tensor *q = nb_model_get(all, nb_tensor_name(p));
        assert_non_null(q);
        assert_memory_equal(nb_tensor_data(q), nb_tensor_data(p),
                            (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
        char name[256];
        snprintf(name, sizeof name, "%s/m", nb_tensor_name(p));
        assert_non_null(nb_model_get(all, name));
        snprintf(name, sizeof name, "%s/t", nb_tensor_name(p));
        assert_non_null(nb_model_get(all, name));
        assert_true(nb_tensor_get(nb_model_get(all, name), 0) == 1.0);
    }
    /* the options come back from the metadata */
    nb_optim_opts back;
    assert_int_equal(nb_optim_opts_from_meta(meta, &back, &err), NB_OK);
    assert_true(memcmp(&back, nb_optim_options(opt), sizeof back) == 0);
    listing l = {0};
    assert_int_equal(nb_ckpt_list(d->file, list_cb, &l, NULL, &err), NB_OK);
    assert_int_equal(l.n, nb_model_count(m));
    nb_model_free(all);
    nb_model_free(m);
    nb_optim_free(opt);
}

/* With an optimizer, a model tensor named like the state it saves ("P/t"
 * or "P/<slot>" of a parameter P it keeps state for) would be read back as
 * state: the save is refused, naming it, and the file stays as it was.
 * Without an optimizer, without state for P, or when no tensor P is in the
 * model, such names are plain names. */
static void test_names_like_state(void **state)
{
    dir *d = *state;
    nb_model *keep = make_model(1, false);
    assert_int_equal(nb_model_save(keep, NULL, d->file, NULL, NULL), NB_OK);
    size_t n0;
    unsigned char *before = slurp(d->file, &n0);
    static const char *const like[] = {"w/t", "w/m", "w/v"};
    nb_error err;
    for (int i = 0; i < 3; i++) {
        nb_model *m = nb_model_new();
        nb_model_add(m, "w", NB_F32, 1, (int64_t[]){2}, NULL);
        nb_model_add(m, like[i], NB_F32, 1, (int64_t[]){2}, NULL);
        nb_optim *opt = adam();
        grads_from(m, 1);
        assert_int_equal(nb_optim_step(opt, m), NB_OK);
        assert_int_equal(nb_model_save(m, opt, d->file, NULL, &err), NB_ERR_ARG);
        assert_string_equal(err.name, like[i]);
        assert_non_null(strstr(err.msg, "named like the optimizer's state of 'w'"));
        size_t n1;
        unsigned char *after = slurp(d->file, &n1);
        assert_true(n1 == n0 && memcmp(before, after, n0) == 0);
        free(after);
        /* without the optimizer it is a name like any other */
        assert_int_equal(nb_model_save(m, NULL, d->file, NULL, &err), NB_OK);
        nb_model *back = nb_model_new();
        nb_model_add(back, "w", NB_F32, 1, (int64_t[]){2}, NULL);
        nb_model_add(back, like[i], NB_F32, 1, (int64_t[]){2}, NULL);
        assert_int_equal(nb_model_load(back, NULL, d->file, NULL, &err), NB_OK);
        assert_true(same_models(m, back));
        nb_model_free(back);
        assert_int_equal(nb_model_save(keep, NULL, d->file, NULL, NULL), NB_OK);
        nb_optim_free(opt);
        nb_model_free(m);
    }
    /* an optimizer with no state for "w" (no step yet) saves none: no clash */
    {
        nb_model *m = nb_model_new(), *back = nb_model_new();
        for (int i = 0; i < 2; i++) {
            nb_model_add(i ? back : m, "w", NB_F32, 1, (int64_t[]){2}, NULL);
            nb_model_add(i ? back : m, "w/m", NB_F32, 1, (int64_t[]){2}, NULL);
        }
        nb_optim *opt = adam(), *opt2 = adam();
        assert_int_equal(nb_model_save(m, opt, d->file, NULL, &err), NB_OK);
        assert_int_equal(nb_model_load(back, opt2, d->file, NULL, &err), NB_OK);
        assert_int_equal(nb_optim_state_count(opt2), 0);
        nb_optim_free(opt);
        nb_optim_free(opt2);
        nb_model_free(m);
        nb_model_free(back);
    }
    assert_int_equal(nb_model_save(keep, NULL, d->file, NULL, NULL), NB_OK);
    /* "x/t" with no tensor "x": a parameter with state of its own */
    nb_model *m = nb_model_new(), *back = nb_model_new();
    nb_model_add(m, "x/t", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_model_add(back, "x/t", NB_F32, 1, (int64_t[]){2}, NULL);
    nb_optim *opt = adam(), *opt2 = adam();
    grads_from(m, 1);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    assert_int_equal(nb_model_save(m, opt, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_model_load(back, opt2, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_optim_state_count(opt2), 1);
    assert_true(same_models(m, back));
    nb_optim_free(opt);
    nb_optim_free(opt2);
    nb_model_free(m);
    nb_model_free(back);
    free(before);
    nb_model_free(keep);
}

/* An optimizer of @p kind with RMSprop's momentum and centered as given,
 * after one step on @p m. */
static nb_optim *stepped(nb_model *m, nb_optim_kind kind, double momentum, bool centered)
{
    nb_optim_opts o = nb_optim_defaults(kind);
    o.momentum = momentum;
    o.centered = centered;
    nb_optim *opt = nb_optim_new(&o);
    assert_non_null(opt);
    grads_from(m, 3);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    return opt;
}

/* Replace the first @p from of the checkpoint's metadata by @p to, keeping
 * its tensors, with its CRC-32s made right. */
static void edit_meta(const char *path, const char *from, const char *to)
{
    static char meta[NB_META_MAX + 1], out[NB_META_MAX + 1];
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_model *all = NULL;
    assert_int_equal(nb_safetensors_read(path, &all, &fo, NULL), NB_OK);
    const char *at = strstr(meta, from);
    assert_non_null(at);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - meta), meta, to, at + strlen(from));
    nb_file_opts so = {.meta = out};
    const nb_model *stores[1] = {all};
    assert_int_equal(nb_safetensors_save(path, stores, 1, &so, NULL), NB_OK);
    nb_model_free(all);
}

/* RMSprop's and Adagrad's state in files: PyTorch's names, the slots the
 * options keep (momentum_buffer with momentum, grad_avg when centered), an
 * RMSprop that needs a slot the file lacks refused and unchanged, the
 * file's own options deciding which tensors are state, the new option
 * lines required. */
static void test_rmsprop_adagrad_files(void **state)
{
    dir *d = *state;
    nb_error err;
    target t;
    target_init(&t); /* "w" f32 [2] and "b" f64 [] */
    nb_optim *full = stepped(t.m, NB_OPTIM_RMSPROP, 0.9, true);
    assert_int_equal(nb_model_save(t.m, full, d->file, NULL, &err), NB_OK);
    nb_model *all = NULL;
    assert_int_equal(nb_safetensors_read(d->file, &all, NULL, NULL), NB_OK);
    static const char *const names[] = {
        "w",          "b",   "w/t",          "w/square_avg",      "w/momentum_buffer",
        "w/grad_avg", "b/t", "b/square_avg", "b/momentum_buffer", "b/grad_avg"};
    assert_int_equal(nb_model_count(all), 10);
    for (int i = 0; i < 10; i++)
        assert_non_null(nb_model_get(all, names[i]));
    nb_model_free(all);
    listing l = {0};
    assert_int_equal(nb_ckpt_list(d->file, list_cb, &l, NULL, &err), NB_OK);
    assert_int_equal(l.n, 2);
    /* a plain RMSprop takes it (square_avg only) */
    nb_optim_opts plain = nb_optim_defaults(NB_OPTIM_RMSPROP);
    nb_optim *p = nb_optim_new(&plain);
    assert_int_equal(nb_model_load(t.m, p, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_optim_state_count(p), 2);
    nb_optim_free(p);

    /* state of a plain RMSprop: one with momentum refuses it, naming the
     * tensor, and nothing changes */
    nb_optim *q = stepped(t.m, NB_OPTIM_RMSPROP, 0, false);
    assert_int_equal(nb_model_save(t.m, q, d->file, NULL, &err), NB_OK);
    target u;
    target_init(&u);
    nb_optim_free(u.opt);
    nb_optim_opts mom = nb_optim_defaults(NB_OPTIM_RMSPROP);
    mom.momentum = 0.9;
    u.opt = nb_optim_new(&mom);
    assert_int_equal(nb_model_load(u.m, u.opt, d->file, NULL, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "w/momentum_buffer");
    assert_string_equal(err.where, "nb_model_load");
    assert_non_null(strstr(err.msg, "momentum > 0"));
    target_unchanged(&u);
    /* the same file saying it was saved with momentum lacks that slot */
    edit_meta(d->file, "optim.momentum=0\n", "optim.momentum=0.5\n");
    assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "w/momentum_buffer");
    assert_non_null(strstr(err.msg, "missing"));
    /* RMSprop's lines are required and checked */
    assert_int_equal(nb_model_save(t.m, q, d->file, NULL, &err), NB_OK);
    edit_meta(d->file, "optim.centered=0\n", "");
    assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "optim.centered");
    assert_int_equal(nb_model_save(t.m, q, d->file, NULL, &err), NB_OK);
    edit_meta(d->file, "optim.alpha=0.98999999999999999\n", "optim.alpha=1\n");
    assert_int_equal(nb_model_load(u.m, NULL, d->file, NULL, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, "alpha = 1"));
    target_unchanged(&u);

    /* "w/grad_avg" is a model tensor's name for an RMSprop that is not
     * centered, and refused as one for a centered RMSprop */
    nb_model *m = nb_model_new(), *back = nb_model_new();
    for (int i = 0; i < 2; i++) {
        nb_model_add(i ? back : m, "w", NB_F32, 1, (int64_t[]){2}, NULL);
        nb_model_add(i ? back : m, "w/grad_avg", NB_F32, 1, (int64_t[]){2}, NULL);
    }
    nb_optim *r = stepped(m, NB_OPTIM_RMSPROP, 0, false), *r2 = nb_optim_new(&plain);
    assert_int_equal(nb_model_save(m, r, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_model_load(back, r2, d->file, NULL, &err), NB_OK);
    assert_true(same_models(m, back));
    assert_int_equal(nb_optim_state_count(r2), 2);
    nb_optim *rc = stepped(m, NB_OPTIM_RMSPROP, 0, true);
    assert_int_equal(nb_model_save(m, rc, d->file, NULL, &err), NB_ERR_ARG);
    assert_string_equal(err.name, "w/grad_avg");

    /* Adagrad: its sum, its two lines */
    nb_optim *a = stepped(t.m, NB_OPTIM_ADAGRAD, 0, false);
    assert_int_equal(nb_model_save(t.m, a, d->file, NULL, &err), NB_OK);
    nb_optim_opts ao = nb_optim_defaults(NB_OPTIM_ADAGRAD);
    nb_optim *a2 = nb_optim_new(&ao);
    assert_int_equal(nb_model_load(u.m, a2, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_optim_state_count(a2), 2);
    all = NULL;
    assert_int_equal(nb_safetensors_read(d->file, &all, NULL, NULL), NB_OK);
    assert_non_null(nb_model_get(all, "w/sum"));
    assert_int_equal(nb_model_count(all), 6);
    nb_model_free(all);
    edit_meta(d->file, "optim.initial_accumulator_value=0\n", "");
    assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_NOTFOUND);
    assert_string_equal(err.name, "optim.initial_accumulator_value");
    assert_int_equal(nb_model_save(t.m, a, d->file, NULL, &err), NB_OK);
    edit_meta(d->file, "optim.lr_decay=0\n", "optim.lr_decay=-1\n");
    assert_int_equal(nb_ckpt_list(d->file, NULL, NULL, NULL, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, "lr_decay = -1"));

    nb_optim_free(a);
    nb_optim_free(a2);
    nb_optim_free(r);
    nb_optim_free(r2);
    nb_optim_free(rc);
    nb_model_free(m);
    nb_model_free(back);
    nb_optim_free(q);
    nb_optim_free(full);
    target_free(&u);
    target_free(&t);
}

/* The metadata does not grow with the model: a model of 5000 parameters
 * (each with its own update count) saves and loads with its Adam state.
 * With a line per parameter, saves failed past about 1000 parameters
 * ("more than 1024 entries"). */
static void test_many_parameters(void **state)
{
    dir *d = *state;
    enum { N = 5000 };
    nb_model *m = nb_model_new(), *m2 = nb_model_new();
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer%d.weight", i);
        assert_int_equal(nb_model_add(m, name, NB_F32, 1, (int64_t[]){2}, NULL), NB_OK);
        assert_int_equal(nb_model_add(m2, name, NB_F32, 1, (int64_t[]){2}, NULL), NB_OK);
    }
    nb_optim *opt = adam(), *opt2 = adam();
    grads_from(m, 3);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    nb_error err;
    assert_int_equal(nb_model_save(m, opt, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_model_load(m2, opt2, d->file, NULL, &err), NB_OK);
    assert_int_equal(nb_optim_state_count(opt2), N);
    assert_true(same_models(m, m2));
    /* the next step is the same in both */
    grads_from(m, 4);
    grads_from(m2, 4);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    assert_int_equal(nb_optim_step(opt2, m2), NB_OK);
    assert_true(same_models(m, m2));
    nb_optim_free(opt);
    nb_optim_free(opt2);
    nb_model_free(m);
    nb_model_free(m2);
}

/* Metadata saved and read back (by load, by nb_ckpt_read_meta, by
 * nb_ckpt_list with the tensors' descriptions); files without it read as
 * ""; a buffer too small or bad text refused with nothing changed. */
static void test_metadata(void **state)
{
    dir *d = *state;
    nb_model *m = make_model(1, false);
    /* a final line break ends the last line; a load gives the lines back without it */
    const char *meta = "arch=mlp\nsizes=3,4\nact=relu\nexpr=a=b+c\nempty=\nname=\xe2\x88\x87";
    nb_ckpt_opts co = {
        .meta = "arch=mlp\nsizes=3,4\nact=relu\nexpr=a=b+c\nempty=\nname=\xe2\x88\x87\n"};
    nb_error err;
    assert_int_equal(nb_model_save(m, NULL, d->file, &co, &err), NB_OK);

    nb_model *m2 = make_model(2, false);
    char out[256];
    memset(out, 'x', sizeof out);
    nb_ckpt_opts lo = {.meta_out = out, .meta_cap = sizeof out};
    assert_int_equal(nb_model_load(m2, NULL, d->file, &lo, &err), NB_OK);
    assert_string_equal(out, meta);
    assert_true(same_models(m, m2));
    char val[16];
    assert_int_equal(nb_meta_get(out, "sizes", val, sizeof val), NB_OK);
    assert_string_equal(val, "3,4");
    assert_int_equal(nb_meta_get(out, "expr", val, sizeof val), NB_OK);
    assert_string_equal(val, "a=b+c");
    assert_int_equal(nb_meta_get(out, "empty", val, sizeof val), NB_OK);
    assert_string_equal(val, "");
    assert_int_equal(nb_meta_get(out, "missing", val, sizeof val), NB_ERR_NOTFOUND);
    assert_int_equal(nb_meta_get(out, "act", val, 4), NB_ERR_ARG); /* "relu" + NUL */
    assert_int_equal(nb_meta_get(out, "act", val, 5), NB_OK);

    /* exactly room for the text and its NUL, and one byte less */
    size_t len = strlen(meta);
    memset(out, 'x', sizeof out);
    assert_int_equal(nb_ckpt_read_meta(d->file, out, len + 1, &err), NB_OK);
    assert_string_equal(out, meta);
    nb_model *m3 = make_model(3, false), *m3_orig = make_model(3, false);
    strcpy(out, "untouched");
    lo.meta_cap = len;
    assert_int_equal(nb_model_load(m3, NULL, d->file, &lo, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "meta_out"));
    assert_string_equal(out, "untouched");
    assert_true(same_models(m3, m3_orig));
    assert_int_equal(nb_ckpt_read_meta(d->file, out, len, &err), NB_ERR_ARG);

    /* the listing: every tensor in file order, as the model holds them */
    listing l = {0};
    assert_int_equal(nb_ckpt_list(d->file, list_cb, &l, NULL, &err), NB_OK);
    assert_int_equal(l.n, nb_model_count(m));
    int k = 0;
    for (nb_tensor *t = nb_model_next(m, NULL); t; t = nb_model_next(m, t), k++) {
        assert_string_equal(l.names[k], nb_tensor_name(t));
        assert_int_equal(l.dt[k], nb_tensor_dtype(t));
        assert_int_equal(l.rank[k], nb_tensor_rank(t));
        for (int a = 0; a < l.rank[k]; a++)
            assert_int_equal(l.shape[k][a], nb_tensor_shape(t)[a]);
    }
    listing stop = {.stop_at = 2};
    assert_int_equal(nb_ckpt_list(d->file, list_cb, &stop, NULL, &err), NB_ERR_ARG);
    assert_int_equal(stop.n, 2);
    assert_non_null(strstr(err.msg, "stopped"));

    /* a file saved without metadata reads as "" (old files load as before) */
    assert_int_equal(nb_model_save(m, NULL, d->file, NULL, &err), NB_OK);
    lo.meta_cap = 1;
    assert_int_equal(nb_model_load(m3, NULL, d->file, &lo, &err), NB_OK);
    assert_string_equal(out, "");
    co.meta = "";
    assert_int_equal(nb_model_save(m, NULL, d->file, &co, &err), NB_OK);
    size_t n_plain;
    unsigned char *plain = slurp(d->file, &n_plain);

    /* bad text is refused on save and the old file stays */
    const char *bad[] = {
        "novalue", "=value",     "a=1\n\nb=2", "a=1\nb=2\na=3", "a=tab\there",
        "a=\x01",  "a=\xff\xfe", "a=\xc0\x80", "a=1\r\n",       "a=\xed\xa0\x80",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        co.meta = bad[i];
        assert_int_equal(nb_model_save(m, NULL, d->file, &co, &err), NB_ERR_ARG);
        assert_non_null(strstr(err.msg, "metadata"));
        nb_error why;
        assert_int_equal(nb_meta_check(bad[i], &why), NB_ERR_PARSE);
        assert_true(strlen(why.msg) > 10);
    }
    /* the checkpoint's own keys are not the caller's */
    const char *reserved[] = {"nabla.format=x", "a=1\noptim.lr=1", "rng.state=1",
                              "nabla.crc32.data=0"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        co.meta = reserved[i];
        assert_int_equal(nb_model_save(m, NULL, d->file, &co, &err), NB_ERR_ARG);
        assert_non_null(strstr(err.msg, "keeps for its own lines"));
    }
    char *huge = malloc(NB_META_MAX + 8);
    memset(huge, 'a', NB_META_MAX + 7);
    huge[1] = '=';
    huge[NB_META_MAX + 7] = '\0';
    co.meta = huge;
    assert_int_equal(nb_model_save(m, NULL, d->file, &co, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "longer"));
    free(huge);
    assert_int_equal(nb_meta_check(NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_meta_check("a=1\nb=2\n", NULL), NB_OK);
    size_t n_now;
    unsigned char *now = slurp(d->file, &n_now);
    assert_int_equal(n_now, n_plain);
    assert_memory_equal(now, plain, n_plain);
    free(now);
    free(plain);

    nb_model_free(m);
    nb_model_free(m2);
    nb_model_free(m3);
    nb_model_free(m3_orig);
}

/* ------------------------------------------------------------ allocation */

/* Failing each allocation of a load in turn (the loader's buffers through
 * the options' hook, the optimizer's new state through its own) gives
 * NB_ERR_NOMEM and changes nothing; failing a save's keeps the old file. */
static void test_alloc_failure(void **state)
{
    dir *d = *state;
    nb_model *m = make_model(1, false);
    nb_optim *opt = adam();
    grads_from(m, 3);
    nb_optim_step(opt, m);
    assert_int_equal(nb_model_save(m, opt, d->file, NULL, NULL), NB_OK);

    tc_counting probe = {0};
    {
        nb_model *m2 = make_model(2, false);
        nb_optim_opts o = *nb_optim_options(opt);
        nb_optim *o2 = nb_optim_new_alloc(&o, tc_counting_alloc, &probe);
        nb_ckpt_opts co = {.alloc = tc_counting_alloc, .alloc_ud = &probe};
        long before = probe.calls;
        assert_int_equal(nb_model_load(m2, o2, d->file, &co, NULL), NB_OK);
        probe.calls -= before;
        nb_optim_free(o2);
        nb_model_free(m2);
    }
    assert_true(probe.calls >= 4);
    for (long k = 1; k <= probe.calls; k++) {
        tc_counting c = {0};
        nb_model *m2 = make_model(2, false), *orig = make_model(2, false);
        nb_optim_opts o = *nb_optim_options(opt);
        nb_optim *o2 = nb_optim_new_alloc(&o, tc_counting_alloc, &c);
        nb_ckpt_opts co = {.alloc = tc_counting_alloc, .alloc_ud = &c};
        c.fail_at = c.calls + k;
        nb_error err;
        assert_int_equal(nb_model_load(m2, o2, d->file, &co, &err), NB_ERR_NOMEM);
        assert_non_null(strstr(err.msg, "out of memory"));
        assert_true(same_models(m2, orig));
        assert_int_equal(nb_optim_steps(o2), 0);
        assert_int_equal(nb_optim_state_count(o2), 0);
        nb_optim_free(o2);
        assert_int_equal(c.live, 0);
        nb_model_free(m2);
        nb_model_free(orig);
    }
    size_t n_old;
    unsigned char *old = slurp(d->file, &n_old);
    for (long k = 1; k <= 2; k++) {
        tc_counting c = {.fail_at = k};
        nb_model *m2 = make_model(5, false);
        nb_ckpt_opts co = {.alloc = tc_counting_alloc, .alloc_ud = &c};
        assert_int_equal(nb_model_save(m2, NULL, d->file, &co, NULL), NB_ERR_NOMEM);
        assert_int_equal(c.live, 0);
        size_t n_now;
        unsigned char *now = slurp(d->file, &n_now);
        assert_int_equal(n_now, n_old);
        assert_memory_equal(now, old, n_old);
        free(now);
        nb_model_free(m2);
    }
    free(old);
    nb_model_free(m);
    nb_optim_free(opt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_exact, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_every_byte_flip_detected, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_every_truncation_detected, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_failed_save_keeps_old_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_resume_bit_identical, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_rmsprop_adagrad_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_mismatch_named, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_crafted_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_state_kept_for_state, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_own_lines_checked_by_list, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_readable_as_safetensors, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_many_parameters, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_names_like_state, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_alloc_failure, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_crc_failure_names_part, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_metadata, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
