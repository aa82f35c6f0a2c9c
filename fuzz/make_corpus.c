/* Writes the seed corpora of the file-format fuzz targets with the library
 * itself: checkpoints and safetensors files saved by nb_model_save and
 * nb_model_save_safetensors, and a few crafted ones (with their CRC-32s
 * made right) that no writer of the library makes; IDX pairs and CSV
 * tables in the forms the readers accept, each plain and gzip-compressed.
 * Run from the source root:
 *     ./build/fuzz/fuzz_make_corpus fuzz/corpus
 * The models match the fixed models of fuzz_ckpt.c and fuzz_safetensors.c. */

#include <math.h>

#include "fuzz_common.h"

static const char *root;

static void fail(const char *what, const char *msg)
{
    fprintf(stderr, "make_corpus: %s: %s\n", what, msg);
    exit(1);
}

static void check(nb_status st, const char *what)
{
    if (st != NB_OK)
        fail(what, nb_status_str(st));
}

static const char *path_of(const char *target, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    return path;
}

static void write_bytes(const char *target, const char *name, const void *p, size_t n)
{
    const char *path = path_of(target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        fail(path, "cannot write");
}

/* ---------------------------------------------------------------- models */

/* The targets' MLP (fz_mlp_model) with values and gradients. */
static nb_model *mlp(nb_dtype dt2)
{
    nb_model *m = fz_mlp_model(dt2);
    int64_t k = 0;
    for (nb_tensor *p = nb_model_next(m, NULL); p; p = nb_model_next(m, p))
        for (int64_t i = 0; i < nb_tensor_size(p); i++, k++) {
            check(nb_tensor_set(p, i, 0.25 * (double)(k % 7) - 0.5), "set");
            check(nb_tensor_set(nb_tensor_grad(p), i, 0.125 * (double)(k % 5) - 0.25), "grad");
        }
    return m;
}

/* Tensors of unusual shapes: a scalar, an empty [0, 3], rank 4. */
static nb_model *odd_model(void)
{
    static const int64_t z[] = {0, 3}, r4[] = {1, 2, 1, 2};
    nb_model *m = nb_model_new();
    if (!m)
        fail("model", "out of memory");
    check(nb_model_add(m, "scalar", NB_F64, 0, NULL, NULL), "model");
    check(nb_model_add(m, "empty", NB_F32, 2, z, NULL), "model");
    check(nb_model_add(m, "block.0/w", NB_F32, 4, r4, NULL), "model");
    check(nb_tensor_set(nb_model_get(m, "scalar"), 0, 3.5), "set");
    check(nb_tensor_set(nb_model_get(m, "block.0/w"), 3, -1.0), "set");
    return m;
}

static char meta[1024];

/* The description of the targets' MLP (3-4-2, ReLU). */
static void mlp_meta(void)
{
    static const int64_t sizes[] = {3, 4, 2};
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.init = NB_INIT_ZEROS;
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    if (!m)
        fail("model", "out of memory");
    check(nb_mlp_new(m, NULL, sizes, 3, &o, &net), "nb_mlp_new");
    check(nb_layer_describe(net, meta, sizeof meta, NULL), "nb_layer_describe");
    nb_layer_free(net);
    nb_model_free(m);
}

/* ------------------------------------------------------- crafted files */

/* A file of the given header (JSON text) and data, the header padded with
 * spaces to a multiple of 8 bytes as nabla's writer pads it, and with its
 * CRC-32s made right when it has the entries (fz_fix_crcs): for what no
 * writer of the library makes. */
static void craft(const char *target, const char *name, const char *header, const void *data,
                  size_t data_len)
{
    size_t n = strlen(header), padded = n + (8 - (8 + n) % 8) % 8;
    uint8_t *buf = malloc(8 + padded + data_len);
    if (!buf)
        fail(name, "out of memory");
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, n);
    memset(buf + 8 + n, ' ', padded - n);
    if (data_len)
        memcpy(buf + 8 + padded, data, data_len);
    if (strstr(header, "\"nabla.crc32.data\":\"") && !fz_fix_crcs(buf, 8 + padded + data_len))
        fail(name, "the CRC-32 entries were not found");
    write_bytes(target, name, buf, 8 + padded + data_len);
    free(buf);
}

#define CRCS "\"nabla.crc32.data\":\"00000000\",\"nabla.crc32.header\":\"00000000\""

/* The checkpoint @p from of the corpus with every metadata line whose key
 * begins with one of @p keys given @p value (NULL: without those lines),
 * and every update count "P/t" set to @p count (NAN: as it is), saved as
 * @p name (a file nb_model_save would not write). */
static void edited_ckpt(const char *from, const char *name, const char *const *keys, int n_keys,
                        const char *value, double count)
{
    static char text[NB_META_MAX + 1], out[NB_META_MAX + 1];
    nb_file_opts ro = {.meta_out = text, .meta_cap = sizeof text};
    nb_model *all = NULL;
    nb_error err;
    char from_path[4096];
    snprintf(from_path, sizeof from_path, "%s", path_of("ckpt", from));
    if (nb_safetensors_read(from_path, &all, &ro, &err) != NB_OK)
        fail(from, err.msg);
    size_t used = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        bool hit = false;
        for (int k = 0; k < n_keys; k++)
            hit |= !strncmp(p, keys[k], strlen(keys[k]));
        int w = hit && !value ? 0
                : hit ? snprintf(out + used, sizeof out - used, "%s%.*s=%s", used ? "\n" : "",
                                 (int)(eq - p), p, value)
                      : snprintf(out + used, sizeof out - used, "%s%.*s", used ? "\n" : "",
                                 (int)len, p);
        if (w < 0 || (size_t)w >= sizeof out - used)
            fail(name, "metadata too long");
        used += (size_t)w;
        p += len + (nl != NULL);
    }
    for (nb_tensor *t = isnan(count) ? NULL : nb_model_next(all, NULL); t;
         t = nb_model_next(all, t)) {
        const char *tn = nb_tensor_name(t);
        if (strlen(tn) > 2 && !strcmp(tn + strlen(tn) - 2, "/t"))
            nb_tensor_set(t, 0, count);
    }
    nb_file_opts so = {.meta = out};
    const nb_model *stores[] = {all};
    if (nb_safetensors_save(path_of("ckpt", name), stores, 1, &so, &err) != NB_OK)
        fail(name, err.msg);
    nb_model_free(all);
}

/* ----------------------------------------------------------- checkpoints */

static void save_ckpt(const char *name, const nb_model *m, const nb_optim *opt, nb_rng *rng,
                      const char *text)
{
    nb_ckpt_opts o = {.rng = rng, .meta = text};
    nb_error err;
    if (nb_model_save(m, opt, path_of("ckpt", name), &o, &err) != NB_OK)
        fail(name, err.msg);
}

/* Files no writer of the library makes: counts at their largest,
 * optimizer lines without their kind, a shape the readers must refuse,
 * optimizer state kept for another parameter's state, and a checkpoint of
 * nabla's first format (refused by name). */
static void crafted_ckpts(void)
{
    /* the step count and schedule position at 2^63 - 1, each parameter's
     * update count at 2^53 (the largest a file may hold) */
    static const char *const counts[] = {"optim.step=", "optim.sched_pos="};
    edited_ckpt("adam.ckpt", "optim_step_int64_max.ckpt", counts, 2, "9223372036854775807",
                0x1p53);
    /* optimizer lines and state tensors, but no optim.kind (found by fuzz_ckpt) */
    static const char *const kind[] = {"optim.kind="};
    edited_ckpt("nesterov.ckpt", "optim_lines_without_kind.ckpt", kind, 1, NULL, NAN);
    /* [1, 2^61, 0]: no elements, but its leading sizes pass the element bound */
    craft("ckpt", "shape_no_elements_past_bound.ckpt",
          "{\"__metadata__\":{\"nabla.format\":\"checkpoint\",\"nabla.version\":\"2\"," CRCS "},"
          "\"w\":{\"dtype\":\"F32\",\"shape\":[1,2305843009213693952,0],"
          "\"data_offsets\":[0,0]}}",
          NULL, 0);
    /* "w/m" is both adam state of "w" and a parameter with state of its own */
    unsigned char data[36] = {0};
    const double one = 1.0; /* the counts w/t and w/m/t */
    memcpy(data, &one, 8);
    memcpy(data + 8, &one, 8);
    craft("ckpt", "state_of_state.ckpt",
          "{\"__metadata__\":{\"nabla.format\":\"checkpoint\",\"nabla.version\":\"2\","
          "\"optim.kind\":\"adam\",\"optim.lr\":\"0.001\",\"optim.momentum\":\"0\","
          "\"optim.beta1\":\"0.9\",\"optim.beta2\":\"0.999\",\"optim.eps\":\"1e-08\","
          "\"optim.weight_decay\":\"0\",\"optim.clip_norm\":\"0\",\"optim.schedule\":\"constant\","
          "\"optim.step_size\":\"1\",\"optim.gamma\":\"1\",\"optim.period\":\"1\","
          "\"optim.min_lr\":\"0\",\"optim.per_epoch\":\"0\",\"optim.step\":\"1\","
          "\"optim.sched_pos\":\"1\"," CRCS "},"
          "\"w/t\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
          "\"w/m/t\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[8,16]},"
          "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]},"
          "\"w/m\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[20,24]},"
          "\"w/v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]},"
          "\"w/m/m\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[28,32]},"
          "\"w/m/v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}",
          data, sizeof data);
    /* the first format's magic, version 1, no flags, a payload size */
    static const unsigned char first[] = {'N', 'A', 'B', 'L', 'A', 'C', 'K', 'P', 1, 0, 0, 0,
                                          0,   0,   0,   0,   4,   0,   0,   0,   0, 0, 0, 0};
    write_bytes("ckpt", "first_format.ckpt", first, sizeof first);
}

static void ckpt_corpus(void)
{
    nb_model *m = mlp(NB_F32);
    nb_rng rng;
    nb_rng_seed(&rng, 7);
    save_ckpt("rng_no_spare.ckpt", m, NULL, &rng, NULL);
    (void)nb_rng_normal(&rng); /* a spare normal deviate in the state */
    save_ckpt("plain.ckpt", m, NULL, NULL, NULL);
    save_ckpt("meta.ckpt", m, NULL, NULL, meta);
    save_ckpt("rng.ckpt", m, NULL, &rng, NULL);
    /* each kind with its defaults, then an RMSprop with momentum and
     * centered (three slots) and an Adagrad with its options set */
    for (int k = NB_OPTIM_SGD; k <= NB_OPTIM_ADAGRAD + 2; k++) {
        nb_optim_opts oo = nb_optim_defaults(k <= NB_OPTIM_ADAGRAD      ? (nb_optim_kind)k
                                             : k == NB_OPTIM_ADAGRAD + 1 ? NB_OPTIM_RMSPROP
                                                                         : NB_OPTIM_ADAGRAD);
        if (k == NB_OPTIM_ADAM) { /* a schedule with a position */
            oo.schedule.kind = NB_SCHED_COSINE;
            oo.schedule.period = 10;
            oo.schedule.per_epoch = true;
        }
        if (k > NB_OPTIM_ADAGRAD) {
            oo.momentum = 0.9;
            oo.centered = true;
            oo.lr_decay = 0.01;
            oo.initial_accumulator_value = 0.1;
        }
        nb_optim *opt = nb_optim_new(&oo);
        if (!opt)
            fail("optim", "out of memory");
        for (int s = 0; s < 2; s++)
            check(nb_optim_step(opt, m), "step");
        check(nb_optim_next_epoch(opt), "next_epoch");
        char name[64];
        snprintf(name, sizeof name, "%s%s.ckpt", nb_optim_kind_name(oo.kind),
                 k <= NB_OPTIM_ADAGRAD ? "" : "_options");
        save_ckpt(name, m, opt, NULL, NULL);
        if (k == NB_OPTIM_ADAM)
            save_ckpt("adam_rng_meta.ckpt", m, opt, &rng, meta);
        nb_optim_free(opt);
    }
    /* adamw state for the first layer only: the second was added after a step */
    nb_model *first = nb_model_new(), *whole = mlp(NB_F32);
    if (!first)
        fail("model", "out of memory");
    for (nb_tensor *p = nb_model_next(whole, NULL); p; p = nb_model_next(whole, p))
        if (!strncmp(nb_tensor_name(p), "fc1.", 4)) {
            nb_tensor *q;
            check(nb_model_add(first, nb_tensor_name(p), NB_F32, nb_tensor_rank(p),
                               nb_tensor_shape(p), &q),
                  "model");
            for (int64_t i = 0; i < nb_tensor_size(p); i++)
                check(nb_tensor_set(nb_tensor_grad(q), i, 0.5), "grad");
        }
    nb_optim_opts oo = nb_optim_defaults(NB_OPTIM_ADAMW);
    nb_optim *opt = nb_optim_new(&oo);
    if (!opt)
        fail("optim", "out of memory");
    check(nb_optim_step(opt, first), "step");
    save_ckpt("adamw_partial.ckpt", whole, opt, &rng, NULL);
    nb_optim_free(opt);
    nb_model_free(first);
    nb_model_free(whole);
    nb_model_free(m);

    m = mlp(NB_F64);
    save_ckpt("f64.ckpt", m, NULL, NULL, NULL);
    nb_model_free(m);
    m = odd_model();
    save_ckpt("odd.ckpt", m, NULL, NULL, "note=shapes\nempty=");
    nb_model_free(m);
    m = nb_model_new();
    save_ckpt("empty.ckpt", m, NULL, NULL, NULL);
    nb_model_free(m);
    crafted_ckpts();
}

/* ----------------------------------------------------------- safetensors */

static void save_st(const char *name, const nb_model *m, const char *text)
{
    nb_file_opts o = {.meta = text};
    nb_error err;
    if (nb_model_save_safetensors(m, path_of("safetensors", name), &o, &err) != NB_OK)
        fail(name, err.msg);
}

static void safetensors_corpus(void)
{
    nb_model *m = mlp(NB_F64);
    save_st("plain.safetensors", m, NULL);
    save_st("meta.safetensors", m, meta);
    nb_model_free(m);
    m = mlp(NB_F32);
    save_st("f32.safetensors", m, NULL);
    nb_model_free(m);
    m = odd_model();
    save_st("odd.safetensors", m, "note=a \"quoted\" value\\with a backslash");
    nb_model_free(m);
    m = nb_model_new();
    save_st("empty.safetensors", m, NULL);
    nb_model_free(m);

    /* another writer's file: no CRC-32s, other spacing, tensors out of order */
    static const unsigned char data[12] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40};
    craft("safetensors", "no_crc.safetensors",
          "{\n  \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]},\n"
          "  \"a\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]},\n"
          "  \"__metadata__\": {\"format\": \"pt\"}\n}",
          data, sizeof data);
    /* escapes in names and metadata: \/, \", \u00e9, a surrogate pair */
    craft("safetensors", "escapes.safetensors",
          "{\"__metadata__\":{\"k\\u00e9y\":\"v\\ud83d\\ude00 \\\"q\\\"\",\"s\":\"a\\/b\"," CRCS
          "},\"a\\/b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          data, 4);
    /* metadata key=value text cannot hold (a DEL character): it lists only
     * when the metadata is not asked for */
    craft("safetensors", "meta_control_char.safetensors",
          "{\"__metadata__\":{\"k\":\"\x7f\"," CRCS "},"
          "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
          data, 4);
    /* a dtype nabla does not read */
    craft("safetensors", "f16.safetensors",
          "{\"__metadata__\":{" CRCS "},"
          "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
          data, 4);
    /* keys with the CRC-32s' prefix that are neither (found by fuzz_safetensors) */
    craft("safetensors", "crc_prefix_damaged_key.safetensors",
          "{\"__metadata__\":{\"nabla.crc32.head\":\"00000000\","
          "\"nabla.crc16.header\":\"071d608d\"}}",
          NULL, 0);
    craft("safetensors", "shape_no_elements_past_bound.safetensors",
          "{\"__metadata__\":{" CRCS "},"
          "\"w\":{\"dtype\":\"F64\",\"shape\":[1,2305843009213693952,0],"
          "\"data_offsets\":[0,0]}}",
          NULL, 0);
}

/* ------------------------------------------------------------------- IDX */

static size_t put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

/* An IDX file of n samples: images n x h x w (w == 0: n x h features) or
 * labels (h == 0). */
static size_t idx_file(unsigned char *p, uint32_t n, uint32_t h, uint32_t w)
{
    int ndim = h == 0 ? 1 : w == 0 ? 2 : 3;
    size_t k = 0;
    p[k++] = 0;
    p[k++] = 0;
    p[k++] = 0x08;
    p[k++] = (unsigned char)ndim;
    k += put_be32(p + k, n);
    if (ndim >= 2)
        k += put_be32(p + k, h);
    if (ndim == 3)
        k += put_be32(p + k, w);
    size_t count = (size_t)n * (h ? h : 1) * (w ? w : 1);
    for (size_t i = 0; i < count; i++)
        p[k++] = (unsigned char)(h == 0 ? i % 10 : (i * 37) % 256);
    return k;
}

/* The target's input: length of the images file (LE), images, labels. */
static void idx_pair(const char *name, const unsigned char *img, size_t img_len,
                     const unsigned char *lab, size_t lab_len)
{
    unsigned char buf[4096];
    if (4 + img_len + lab_len > sizeof buf)
        fail(name, "too large");
    for (int i = 0; i < 4; i++)
        buf[i] = (unsigned char)(img_len >> (8 * i));
    memcpy(buf + 4, img, img_len);
    memcpy(buf + 4 + img_len, lab, lab_len);
    write_bytes("idx", name, buf, 4 + img_len + lab_len);
}

static void idx_corpus(void)
{
    unsigned char img[1024], lab[64];
    struct {
        const char *name;
        uint32_t n, h, w;
    } forms[] = {{"images3", 4, 3, 3}, {"images2", 5, 6, 0}, {"single", 1, 1, 1}};
    for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
        size_t img_len = idx_file(img, forms[f].n, forms[f].h, forms[f].w);
        size_t lab_len = idx_file(lab, forms[f].n, 0, 0);
        char name[64];
        snprintf(name, sizeof name, "%s.idx", forms[f].name);
        idx_pair(name, img, img_len, lab, lab_len);
        size_t zi_len, zl_len;
        unsigned char *zi = fz_gzip(img, img_len, &zi_len), *zl = fz_gzip(lab, lab_len, &zl_len);
        if (!zi || !zl)
            fail("gzip", "out of memory");
        snprintf(name, sizeof name, "%s_gz.idx", forms[f].name);
        idx_pair(name, zi, zi_len, zl, zl_len);
        snprintf(name, sizeof name, "%s_gz_images.idx", forms[f].name);
        idx_pair(name, zi, zi_len, lab, lab_len);
        free(zi);
        free(zl);
    }
}

/* ------------------------------------------------------------------- CSV */

static void csv_corpus(void)
{
    static const struct {
        const char *name, *text;
    } tables[] = {
        {"header.csv", "label,x1,x2,x3\n0,1.5,-2,3e-2\n1,0,0.25,4\n2,7,8,9\n"},
        {"no_header.csv", "1,0.5,0.25\n0,1,2\n1,-1,-2\n"},
        {"quoted_crlf.csv", "\"label\",\"a\",\"b\"\r\n\"3\",\" 1.0 \",\"2\"\r\n\r\n0,4,5\r\n"},
        {"label_last.csv", "a,b,label\n1e3,-0.5,1\nnan,inf,0\n2,3,1\n"},
        {"semicolon.csv", "0.5;3;1.25\n1;9;-2\n"},
        {"tabs_images.tsv", "1\t0.5\t0\t2\t3\n0\t4\t1\t5\t6\n"},
        {"wide.csv",
         "9,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1\n"},
    };
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        const char *t = tables[i].text;
        write_bytes("csv", tables[i].name, t, strlen(t));
    }
    size_t n;
    unsigned char *z = fz_gzip((const uint8_t *)tables[0].text, strlen(tables[0].text), &n);
    if (!z)
        fail("gzip", "out of memory");
    write_bytes("csv", "header.csv.gz", z, n);
    free(z);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr,
                "usage: %s CORPUS_DIR (fuzz/corpus: its ckpt, safetensors, idx and csv "
                "directories must exist)\n",
                argv[0]);
        return 2;
    }
    root = argv[1];
    mlp_meta();
    ckpt_corpus();
    safetensors_corpus();
    idx_corpus();
    csv_corpus();
    return 0;
}
