/* Data sets: CSV and IDX loaders (good and malformed input, plain and
 * gzip), the built-in digits, splits, mini-batches, normalisation,
 * augmentation and allocation failure. */

#include "tc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

/* ------------------------------------------------------------- helpers */

/* @p len bytes of @p src gzip-compressed into a malloc'd block. */
static unsigned char *gzip_buf(const void *src, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

/* Write @p len bytes to @p name in a new temporary directory (@p dir);
 * the file's path goes to @p path. */
static void write_temp(char *dir, char *path, size_t cap, const char *name, const void *buf,
                       size_t len)
{
    if (!dir[0]) {
        strcpy(dir, "/tmp/nabla-test-data-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static nb_status load_csv(const char *text, const nb_csv_opts *o, nb_dataset **ds, nb_error *err)
{
    return nb_dataset_load_csv_mem(text, strlen(text), o, ds, err);
}

/* ---------------------------------------------------------------- CSV */

/* A header, a label column in the middle, CRLF, quotes, blanks and blank
 * lines: every value lands where it should, in f32/i32 and f64/i64. */
static void test_csv_round_trip(void **state)
{
    (void)state;
    const char *text = "x1, label ,x2\r\n"
                       "1.5,2,-3\r\n"
                       "\r\n"
                       " \"4e-1\" ,0, 7 \n"
                       "\n"
                       "-0.25,\"1\",1e3\n";
    for (int v = 0; v < 2; v++) {
        nb_csv_opts o = {0};
        o.label_column = 1;
        o.data.dtype = v ? NB_F64 : NB_F32;
        o.data.label_type = v ? NB_LABEL_I64 : NB_LABEL_I32;
        nb_dataset *ds = NULL;
        nb_error err;
        memset(&err, 'x', sizeof err); /* success clears every field */
        assert_int_equal(load_csv(text, &o, &ds, &err), NB_OK);
        assert_int_equal(err.status, NB_OK);
        assert_string_equal(err.msg, "");
        assert_string_equal(err.where, "");
        assert_string_equal(err.name, "");
        assert_true(err.offset == -1 && err.line == 0 && err.column == 0);
        assert_int_equal(nb_dataset_count(ds), 3);
        assert_int_equal(nb_dataset_features(ds), 2);
        assert_int_equal(nb_dataset_classes(ds), 3);
        assert_int_equal(nb_dataset_dtype(ds), o.data.dtype);
        assert_int_equal(nb_dataset_label_type(ds), o.data.label_type);
        double want[3][2] = {{1.5, -3}, {0.4, 7}, {-0.25, 1000}};
        int64_t labels[3] = {2, 0, 1};
        for (int i = 0; i < 3; i++) {
            assert_int_equal(nb_dataset_label(ds, i), labels[i]);
            for (int j = 0; j < 2; j++)
                tc_near(nb_dataset_get(ds, i, j), want[i][j], v ? 0 : 1e-7);
        }
        if (v)
            assert_int_equal(((const int64_t *)nb_dataset_label_data(ds))[0], 2);
        else
            assert_int_equal(((const int32_t *)nb_dataset_label_data(ds))[0], 2);
        nb_dataset_free(ds);
    }
}

/* Header detection, delimiter, a negative label column, n_classes, image
 * shape. */
static void test_csv_options(void **state)
{
    (void)state;
    nb_dataset *ds = NULL;
    nb_error err;
    /* all numbers: auto says no header */
    assert_int_equal(
        load_csv("1;2;3\n4;5;0\n", &(nb_csv_opts){.delimiter = ';', .label_column = -1}, &ds, &err),
        NB_OK);
    assert_int_equal(nb_dataset_count(ds), 2);
    assert_int_equal(nb_dataset_label(ds, 0), 3);
    assert_int_equal(nb_dataset_label(ds, 1), 0);
    tc_near(nb_dataset_get(ds, 1, 1), 5, 0);
    assert_int_equal(nb_dataset_classes(ds), 4);
    nb_dataset_free(ds);

    /* a forced header skips a numeric first line */
    nb_csv_opts o = {.header = NB_CSV_HEADER_PRESENT};
    assert_int_equal(load_csv("9,9\n1,2\n", &o, &ds, &err), NB_OK);
    assert_int_equal(nb_dataset_count(ds), 1);
    assert_int_equal(nb_dataset_label(ds, 0), 1);
    nb_dataset_free(ds);

    /* no header forced: a text first line is then an error at line 1 */
    o.header = NB_CSV_HEADER_NONE;
    assert_int_equal(load_csv("a,b\n1,2\n", &o, &ds, &err), NB_ERR_PARSE);
    assert_null(ds);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 1);

    /* n_classes given; image shape declared */
    nb_csv_opts oi = {.data.n_classes = 5, .image_height = 2, .image_width = 2};
    assert_int_equal(load_csv("1,1,2,3,4\n", &oi, &ds, &err), NB_OK);
    assert_int_equal(nb_dataset_classes(ds), 5);
    int64_t c, h, w;
    nb_dataset_image_shape(ds, &c, &h, &w);
    assert_int_equal(c, 1);
    assert_int_equal(h, 2);
    assert_int_equal(w, 2);
    nb_dataset_free(ds);
    oi.image_width = 3;
    assert_int_equal(load_csv("1,1,2,3,4\n", &oi, &ds, &err), NB_ERR_ARG);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "image shape"));

    /* non-finite values allowed on request */
    nb_csv_opts on = {.allow_nonfinite = true};
    assert_int_equal(load_csv("0,nan,inf,-inf\n", &on, &ds, &err), NB_OK);
    assert_true(isnan(nb_dataset_get(ds, 0, 0)));
    assert_true(isinf(nb_dataset_get(ds, 0, 1)));
    nb_dataset_free(ds);
}

typedef struct bad_csv {
    const char *text;
    nb_csv_opts opts;
    nb_status status;
    int64_t line, column;
    const char *says; /* a part of the message */
} bad_csv;

/* Malformed tables: the status, the line and column, and a sentence that
 * names the problem. */
static void test_csv_malformed(void **state)
{
    (void)state;
    static char huge[600];
    memset(huge, '1', sizeof huge - 1);
    memcpy(huge, "0,", 2);
#define NOOPT {.delimiter = 0}
    bad_csv cases[] = {
        {"", NOOPT, NB_ERR_PARSE, 1, 0, "empty"},
        {"\n  \n\r\n", NOOPT, NB_ERR_PARSE, 4, 0, "empty"},
        {"label,x\n", NOOPT, NB_ERR_PARSE, 2, 0, "no data rows"},
        {"0,1,2\n1,2\n", NOOPT, NB_ERR_PARSE, 2, 3, "row has 2 fields, the first row has 3"},
        {"0,1\n1,2\n1,2,3\n", NOOPT, NB_ERR_PARSE, 3, 3, "more than the 2 fields"},
        {"0,1\n1,abc\n", NOOPT, NB_ERR_PARSE, 2, 2, "\"abc\" is not a number"},
        {"0,1\n1,1.5x\n", NOOPT, NB_ERR_PARSE, 2, 2, "not a number"},
        {"0,1\n1,\n", NOOPT, NB_ERR_PARSE, 2, 2, "empty field"},
        {"0,1\n1,nan\n", NOOPT, NB_ERR_PARSE, 2, 2, "not finite"},
        {"0,1\n1,-inf\n", NOOPT, NB_ERR_PARSE, 2, 2, "not finite"},
        {"0,1\n1,1e999\n", NOOPT, NB_ERR_PARSE, 2, 2, "out of the range of a double"},
        {"0,1e39\n", NOOPT, NB_ERR_PARSE, 1, 2, "f32 range"},
        {"0,1\n2.5,1\n", NOOPT, NB_ERR_PARSE, 2, 1, "label \"2.5\" is not an integer"},
        {"0,1\n-1,1\n", NOOPT, NB_ERR_PARSE, 2, 1, "is not an integer in [0,"},
        {"0,1\n3,1\n", {.data.n_classes = 3}, NB_ERR_PARSE, 2, 1, "[0, 3)"},
        {"0,1\n1,\"2\n", NOOPT, NB_ERR_PARSE, 2, 2, "not closed"},
        {"0,1\n1,\"2\"x\n", NOOPT, NB_ERR_PARSE, 2, 2, "after a closing quote"},
        {"5\n6\n", NOOPT, NB_ERR_PARSE, 1, 1, "only one column"},
        {"0,1\n", {.label_column = 2}, NB_ERR_ARG, 1, 0, "label column 2"},
        {"0,1\n", {.label_column = -3}, NB_ERR_ARG, 1, 0, "label column -3"},
        {huge, NOOPT, NB_ERR_PARSE, 1, 2, "longer than 256 bytes"},
        {"0,1\n0,12345\n", {.max_field = 4}, NB_ERR_PARSE, 2, 2, "longer than 4 bytes"},
        {"0,1\n", {.header = (nb_csv_header)7}, NB_ERR_ARG, 0, 0, "header"},
        {"0,1\n", {.delimiter = '"'}, NB_ERR_ARG, 0, 0, "delimiter"},
        {"0,1\n", {.data.dtype = (nb_dtype)9}, NB_ERR_DTYPE, 0, 0, "dtype"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        nb_dataset *ds = (nb_dataset *)&cases[k]; /* must be set to NULL */
        nb_error err;
        nb_status st = load_csv(cases[k].text, &cases[k].opts, &ds, &err);
        if (st != cases[k].status || err.line != cases[k].line || err.column != cases[k].column ||
            !strstr(err.msg, cases[k].says))
            fail_msg("case %zu: status %d line %lld column %lld: \"%s\"", k, (int)st,
                     (long long)err.line, (long long)err.column, err.msg);
        assert_null(ds);
        assert_int_equal(err.status, st);
        assert_string_equal(err.where, "nb_dataset_load_csv_mem");
        assert_true(err.offset == -1); /* CSV errors are placed by line and column */
        /* the message starts with where it is */
        if (cases[k].column > 0) {
            char where[64];
            snprintf(where, sizeof where, "line %lld, column %lld:", (long long)cases[k].line,
                     (long long)cases[k].column);
            if (!strstr(err.msg, where))
                fail_msg("case %zu: \"%s\" does not start with \"%s\"", k, err.msg, where);
        }
    }
    /* a NUL byte inside a field */
    const char nul[] = "0,1\n1,2\0\n";
    nb_dataset *ds;
    nb_error err;
    assert_int_equal(nb_dataset_load_csv_mem(nul, sizeof nul - 1, NULL, &ds, &err), NB_ERR_PARSE);
    assert_int_equal(err.line, 2);
    assert_non_null(strstr(err.msg, "\\x00"));
    /* NULL arguments */
    assert_int_equal(nb_dataset_load_csv_mem("0,1", 3, NULL, NULL, &err), NB_ERR_NULL);
    assert_int_equal(nb_dataset_load_csv_mem(NULL, 3, NULL, &ds, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dataset_load_csv(NULL, NULL, &ds, &err), NB_ERR_NULL);
}

/* Every prefix of a table and random byte changes either load a table of
 * the right width or fail with a message; none crashes. */
static void test_csv_no_crash(void **state)
{
    (void)state;
    const char *text = "a,b,\"c\"\n0,1.5,-2\r\n1,\"3\",4e2\n\n2,5,6\n";
    size_t n = strlen(text);
    char buf[64];
    for (size_t len = 0; len <= n; len++) {
        nb_dataset *ds = NULL;
        nb_error err;
        nb_status st = nb_dataset_load_csv_mem(text, len, NULL, &ds, &err);
        if (st == NB_OK)
            assert_int_equal(nb_dataset_features(ds), 2);
        else
            assert_true(strlen(err.msg) > 0);
        nb_dataset_free(ds);
    }
    nb_rng rng;
    nb_rng_seed(&rng, 5);
    const char alphabet[] = "0123456789,.\"\n\r -+eEnaix\t;";
    int ok = 0, bad = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(buf, text, n);
        int edits = 1 + (int)nb_rng_below(&rng, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = nb_rng_below(&rng, n);
            buf[at] = (trial & 1) ? (char)nb_rng_below(&rng, 256)
                                  : alphabet[nb_rng_below(&rng, sizeof alphabet - 1)];
        }
        nb_dataset *ds = NULL;
        nb_error err;
        nb_status st = nb_dataset_load_csv_mem(buf, n, NULL, &ds, &err);
        if (st == NB_OK) {
            ok++;
            assert_true(nb_dataset_count(ds) >= 1);
            for (int64_t i = 0; i < nb_dataset_count(ds); i++)
                assert_true(nb_dataset_label(ds, i) < nb_dataset_classes(ds));
        } else {
            bad++;
            assert_true(strlen(err.msg) > 0);
            assert_null(ds);
        }
        nb_dataset_free(ds);
    }
    assert_true(ok > 0 && bad > 0);
}

/* From files: plain and gzip give the same table; a missing file names
 * its path. */
static void test_csv_files(void **state)
{
    (void)state;
    const char *text = "label,p\n3,0.5\n1,-2\n";
    size_t gz_len;
    unsigned char *gz = gzip_buf(text, strlen(text), &gz_len);
    char dir[64] = "", plain_path[128], gz_path[128];
    write_temp(dir, plain_path, sizeof plain_path, "t.csv", text, strlen(text));
    write_temp(dir, gz_path, sizeof gz_path, "t.csv.gz", gz, gz_len);
    const char *paths[2] = {plain_path, gz_path};
    for (int k = 0; k < 2; k++) {
        nb_dataset *ds = NULL;
        nb_error err;
        assert_int_equal(nb_dataset_load_csv(paths[k], NULL, &ds, &err), NB_OK);
        assert_int_equal(nb_dataset_count(ds), 2);
        assert_int_equal(nb_dataset_label(ds, 0), 3);
        tc_near(nb_dataset_get(ds, 1, 0), -2, 0);
        nb_dataset_free(ds);
    }
    /* a truncated gzip file */
    FILE *f = fopen(gz_path, "wb");
    fwrite(gz, 1, gz_len - 5, f);
    fclose(f);
    nb_dataset *ds = NULL;
    nb_error err;
    assert_int_equal(nb_dataset_load_csv(gz_path, NULL, &ds, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, gz_path));
    assert_non_null(strstr(err.msg, "truncated gzip"));
    assert_string_equal(err.where, "nb_dataset_load_csv");
    /* a bad value in a file: the loader, its line and column, the path first */
    const char *bad = "label,p\n3,0.5\n1,abc\n";
    write_temp(dir, plain_path, sizeof plain_path, "t.csv", bad, strlen(bad));
    assert_int_equal(nb_dataset_load_csv(plain_path, NULL, &ds, &err), NB_ERR_PARSE);
    assert_int_equal(err.status, NB_ERR_PARSE);
    assert_string_equal(err.where, "nb_dataset_load_csv");
    assert_int_equal(err.line, 3);
    assert_int_equal(err.column, 2);
    assert_true(err.offset == -1);
    assert_true(strncmp(err.msg, plain_path, strlen(plain_path)) == 0);
    assert_non_null(strstr(err.msg, ": line 3, column 2: \"abc\" is not a number"));
    remove(plain_path);
    remove(gz_path);
    rmdir(dir);
    assert_int_equal(nb_dataset_load_csv(plain_path, NULL, &ds, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, plain_path));
    assert_null(ds);
    free(gz);
}

/* ---------------------------------------------------------------- IDX */

/* An IDX file of unsigned bytes: header for @p ndim dims, then the data. */
static unsigned char *make_idx(int ndim, const uint32_t *dims, const unsigned char *data,
                               size_t *len)
{
    size_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= dims[d];
    *len = 4 + 4 * (size_t)ndim + count;
    unsigned char *p = malloc(*len);
    assert_non_null(p);
    p[0] = p[1] = 0;
    p[2] = 0x08;
    p[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) {
        p[4 + 4 * d] = (unsigned char)(dims[d] >> 24);
        p[5 + 4 * d] = (unsigned char)(dims[d] >> 16);
        p[6 + 4 * d] = (unsigned char)(dims[d] >> 8);
        p[7 + 4 * d] = (unsigned char)dims[d];
    }
    memcpy(p + 4 + 4 * ndim, data, count);
    return p;
}

/* Five 3x4 images with pixel (i, y, x) = 20i + 4y + x and labels 7-i. */
typedef struct idx_pair {
    unsigned char *img, *lab;
    size_t img_len, lab_len;
} idx_pair;

static idx_pair make_pair(void)
{
    unsigned char pix[60], lab[5];
    for (int i = 0; i < 5; i++) {
        lab[i] = (unsigned char)(7 - i);
        for (int k = 0; k < 12; k++)
            pix[i * 12 + k] = (unsigned char)(20 * i + k);
    }
    idx_pair p;
    p.img = make_idx(3, (uint32_t[]){5, 3, 4}, pix, &p.img_len);
    p.lab = make_idx(1, (uint32_t[]){5}, lab, &p.lab_len);
    return p;
}

static void free_pair(idx_pair *p)
{
    free(p->img);
    free(p->lab);
}

static void check_pair(const nb_dataset *ds)
{
    assert_int_equal(nb_dataset_count(ds), 5);
    assert_int_equal(nb_dataset_features(ds), 12);
    assert_int_equal(nb_dataset_classes(ds), 8);
    int64_t c, h, w;
    nb_dataset_image_shape(ds, &c, &h, &w);
    assert_int_equal(c, 1);
    assert_int_equal(h, 3);
    assert_int_equal(w, 4);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(nb_dataset_label(ds, i), 7 - i);
        for (int k = 0; k < 12; k++)
            tc_near(nb_dataset_get(ds, i, k), 20 * i + k, 0);
    }
}

/* Plain and gzip buffers (in every combination) and files load the same. */
static void test_idx_round_trip(void **state)
{
    (void)state;
    idx_pair p = make_pair();
    size_t gi_len, gl_len;
    unsigned char *gi = gzip_buf(p.img, p.img_len, &gi_len);
    unsigned char *gl = gzip_buf(p.lab, p.lab_len, &gl_len);
    for (int v = 0; v < 4; v++) {
        nb_dataset *ds = NULL;
        nb_error err;
        nb_data_opts o = {.dtype = (v & 1) ? NB_F64 : NB_F32};
        assert_int_equal(nb_dataset_load_idx_mem((v & 1) ? gi : p.img, (v & 1) ? gi_len : p.img_len,
                                                 (v & 2) ? gl : p.lab, (v & 2) ? gl_len : p.lab_len,
                                                 &o, &ds, &err),
                         NB_OK);
        check_pair(ds);
        nb_dataset_free(ds);
    }
    /* two dimensions: samples without an image shape */
    unsigned char flat[6] = {1, 2, 3, 4, 5, 6}, lab2[2] = {0, 1};
    size_t fl, ll;
    unsigned char *fi = make_idx(2, (uint32_t[]){2, 3}, flat, &fl);
    unsigned char *li = make_idx(1, (uint32_t[]){2}, lab2, &ll);
    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_load_idx_mem(fi, fl, li, ll, NULL, &ds, NULL), NB_OK);
    assert_int_equal(nb_dataset_features(ds), 3);
    int64_t h;
    nb_dataset_image_shape(ds, NULL, &h, NULL);
    assert_int_equal(h, 0);
    tc_near(nb_dataset_get(ds, 1, 2), 6, 0);
    nb_dataset_free(ds);
    free(fi);
    free(li);

    /* files, and the Fashion-MNIST helper on a directory laid out like
     * Debian's */
    char dir[] = "/tmp/nabla-test-idx-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char img_path[128], lab_path[128];
    snprintf(img_path, sizeof img_path, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(lab_path, sizeof lab_path, "%s/t10k-labels-idx1-ubyte", dir);
    FILE *f = fopen(img_path, "wb");
    fwrite(gi, 1, gi_len, f);
    fclose(f);
    f = fopen(lab_path, "wb");
    fwrite(p.lab, 1, p.lab_len, f);
    fclose(f);
    nb_error err;
    assert_int_equal(nb_dataset_load_idx(img_path, lab_path, NULL, &ds, &err), NB_OK);
    check_pair(ds);
    nb_dataset_free(ds);
    assert_int_equal(nb_dataset_fashion_mnist(dir, false, NULL, &ds, &err), NB_OK);
    assert_int_equal(nb_dataset_classes(ds), 10); /* the helper knows there are ten */
    assert_int_equal(nb_dataset_label(ds, 0), 7);
    assert_int_equal(nb_dataset_count(ds), 5);
    nb_dataset_free(ds);
    assert_int_equal(nb_dataset_fashion_mnist(dir, true, NULL, &ds, &err), NB_ERR_IO);
    assert_non_null(strstr(err.msg, "train-images-idx3-ubyte"));
    assert_string_equal(err.where, "nb_dataset_fashion_mnist");
    /* a bad labels file is named by its path */
    f = fopen(lab_path, "wb");
    fwrite(p.img, 1, p.img_len, f);
    fclose(f);
    assert_int_equal(nb_dataset_load_idx(img_path, lab_path, NULL, &ds, &err), NB_ERR_PARSE);
    assert_non_null(strstr(err.msg, lab_path));
    assert_string_equal(err.where, "nb_dataset_load_idx");
    assert_int_equal(err.offset, 3); /* the images file's 3 dimensions where labels have 1 */
    remove(img_path);
    remove(lab_path);
    rmdir(dir);
    assert_int_equal(nb_dataset_load_idx(img_path, lab_path, NULL, &ds, &err), NB_ERR_IO);
    assert_null(ds);
    free(gi);
    free(gl);
    free_pair(&p);
}

/* Malformed IDX: each error names the file, the byte offset and the
 * problem. */
static void test_idx_malformed(void **state)
{
    (void)state;
    idx_pair p = make_pair();
    unsigned char img[256], lab[64];
    struct {
        const char *what;
        int target; /* 0: images, 1: labels */
        size_t at;  /* byte to change (or new length when len_only) */
        int value;  /* new byte value; -1: truncate to at bytes; -2: append at bytes */
        int64_t n_classes;
        int64_t offset;
        const char *says;
    } cases[] = {
        {"bad magic", 0, 0, 0x42, 0, 0, "images: bad magic 42 00 08 03"},
        {"bad magic labels", 1, 1, 0x01, 0, 0, "labels: bad magic"},
        {"float elements", 0, 2, 0x0D, 0, 2, "element type 0x0d (float)"},
        {"labels with 3 dims", 1, 3, 3, 0, 3, "labels: 3 dimensions"},
        {"images with 1 dim", 0, 3, 1, 0, 3, "expected 2 to 3"},
        {"count too large", 0, 7, 6, 0, 76, "truncated: the header announces 72 data bytes"},
        {"count too small", 0, 7, 4, 0, 64, "unexpected bytes after the 48 data bytes"},
        {"zero size", 0, 11, 0, 0, 8, "dimension 1 has size 0"},
        {"huge sizes", 0, 8, 0xFF, 0, 8, "dimensions announce more than 17179869184 elements"},
        {"truncated data", 0, 50, -1, 0, 50, "truncated"},
        {"truncated header", 0, 9, -1, 0, 9, "truncated header"},
        {"short magic", 1, 3, -1, 0, 3, "too short"},
        {"extra data", 1, 3, -2, 0, 13, "3 unexpected bytes"},
        {"label counts differ", 1, 7, 4, 0, 4, "differ in count: 5 images, 4 labels"},
        {"label out of range", 1, 8, 9, 8, 8, "label 9 of sample 0 (byte 8)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        memcpy(img, p.img, p.img_len);
        memcpy(lab, p.lab, p.lab_len);
        size_t il = p.img_len, ll = p.lab_len;
        unsigned char *buf = cases[k].target ? lab : img;
        size_t *len = cases[k].target ? &ll : &il;
        if (cases[k].value == -1) {
            *len = cases[k].at;
        } else if (cases[k].value == -2) {
            memset(buf + *len, 0, cases[k].at);
            *len += cases[k].at;
        } else {
            buf[cases[k].at] = (unsigned char)cases[k].value;
            if (cases[k].at == 7 && cases[k].target == 1)
                ll--; /* 4 labels: the file stays consistent by itself */
        }
        nb_data_opts o = {.n_classes = cases[k].n_classes};
        nb_dataset *ds = NULL;
        nb_error err;
        nb_status st = nb_dataset_load_idx_mem(img, il, lab, ll, &o, &ds, &err);
        if (st != NB_ERR_PARSE || err.offset != cases[k].offset || !strstr(err.msg, cases[k].says))
            fail_msg("%s: status %d offset %lld: \"%s\"", cases[k].what, (int)st,
                     (long long)err.offset, err.msg);
        assert_null(ds);
        assert_int_equal(err.status, NB_ERR_PARSE);
        assert_string_equal(err.where, "nb_dataset_load_idx_mem");
        assert_true(err.line == 0 && err.column == 0); /* IDX errors are placed by offset */
    }
    /* a truncated gzip stream at every length, and a corrupted byte */
    size_t gz_len;
    unsigned char *gz = gzip_buf(p.img, p.img_len, &gz_len);
    for (size_t len = 0; len < gz_len; len++) {
        nb_dataset *ds = NULL;
        nb_error err;
        nb_status st = nb_dataset_load_idx_mem(gz, len, p.lab, p.lab_len, NULL, &ds, &err);
        assert_int_equal(st, NB_ERR_PARSE);
        assert_null(ds);
        if (len >= 20)
            assert_non_null(strstr(err.msg, "truncated gzip"));
    }
    int detected = 0;
    for (size_t at = 10; at < gz_len; at++) {
        unsigned char *copy = malloc(gz_len);
        memcpy(copy, gz, gz_len);
        copy[at] ^= 0x55;
        nb_dataset *ds = NULL;
        nb_error err;
        nb_status st = nb_dataset_load_idx_mem(copy, gz_len, p.lab, p.lab_len, NULL, &ds, &err);
        detected += st == NB_ERR_PARSE;
        assert_true(st == NB_ERR_PARSE); /* CRC-32 and ISIZE catch what inflate does not */
        assert_null(ds);
        free(copy);
    }
    assert_int_equal(detected, (int)(gz_len - 10));
    free(gz);
    free_pair(&p);
}

/* If Debian's Fashion-MNIST is installed, its test set loads (the tests do
 * not need it: without it this only checks the error). */
static void test_fashion_mnist_if_installed(void **state)
{
    (void)state;
    nb_dataset *ds = NULL;
    nb_error err;
    nb_status st = nb_dataset_fashion_mnist(NULL, false, NULL, &ds, &err);
    if (st == NB_ERR_IO) {
        assert_non_null(strstr(err.msg, "dataset-fashion-mnist"));
        return;
    }
    assert_int_equal(st, NB_OK);
    assert_int_equal(nb_dataset_count(ds), 10000);
    assert_int_equal(nb_dataset_features(ds), 784);
    assert_int_equal(nb_dataset_classes(ds), 10);
    int64_t counts[10] = {0};
    for (int64_t i = 0; i < 10000; i++)
        counts[nb_dataset_label(ds, i)]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], 1000);
    nb_dataset_free(ds);
}

/* ------------------------------------------------------------- digits */

/* 1797 rows, 64 features, 10 classes, 8x8 images; class counts and the
 * CRC-32 of all values as bytes are those of sklearn's digits.csv.gz
 * (src/data/gen_digits.py prints them from the CSV); a few known rows. */
static void test_digits(void **state)
{
    (void)state;
    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &ds), NB_OK);
    assert_int_equal(nb_dataset_count(ds), 1797);
    assert_int_equal(nb_dataset_features(ds), 64);
    assert_int_equal(nb_dataset_classes(ds), 10);
    int64_t c, h, w;
    nb_dataset_image_shape(ds, &c, &h, &w);
    assert_true(c == 1 && h == 8 && w == 8);
    const int64_t want_counts[10] = {178, 182, 177, 183, 181, 182, 181, 179, 174, 180};
    int64_t counts[10] = {0};
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int64_t i = 0; i < 1797; i++) {
        unsigned char row[65];
        for (int j = 0; j < 64; j++) {
            double v = nb_dataset_get(ds, i, j);
            assert_true(v >= 0 && v <= 16 && v == floor(v));
            row[j] = (unsigned char)v;
        }
        int64_t lab = nb_dataset_label(ds, i);
        assert_true(lab >= 0 && lab < 10);
        row[64] = (unsigned char)lab;
        counts[lab]++;
        crc = crc32(crc, row, 65);
    }
    for (int k = 0; k < 10; k++)
        assert_int_equal(counts[k], want_counts[k]);
    assert_int_equal(crc, 0xe7d89aa3u);
    /* rows 1, 1000 and 1797 of the CSV */
    const double first[8] = {0, 0, 5, 13, 9, 1, 0, 0};
    const double row1000[8] = {0, 0, 9, 15, 14, 2, 0, 0};
    const double last[8] = {0, 0, 10, 14, 8, 1, 0, 0};
    for (int j = 0; j < 8; j++) {
        tc_near(nb_dataset_get(ds, 0, j), first[j], 0);
        tc_near(nb_dataset_get(ds, 999, j), row1000[j], 0);
        tc_near(nb_dataset_get(ds, 1796, j), last[j], 0);
    }
    tc_near(nb_dataset_get(ds, 0, 10), 13, 0);
    tc_near(nb_dataset_get(ds, 1796, 63), 0, 0);
    tc_near(nb_dataset_get(ds, 1796, 57), 1, 0);
    assert_int_equal(nb_dataset_label(ds, 0), 0);
    assert_int_equal(nb_dataset_label(ds, 1), 1);
    assert_int_equal(nb_dataset_label(ds, 999), 3);
    assert_int_equal(nb_dataset_label(ds, 1796), 8);

    /* the f64 / int64 copy holds the same values */
    nb_dataset *d64 = NULL;
    nb_data_opts o = {.dtype = NB_F64, .label_type = NB_LABEL_I64};
    assert_int_equal(nb_dataset_digits(&o, &d64), NB_OK);
    for (int64_t i = 0; i < 1797; i += 7) {
        assert_int_equal(nb_dataset_label(d64, i), nb_dataset_label(ds, i));
        for (int j = 0; j < 64; j++)
            tc_near(nb_dataset_get(d64, i, j), nb_dataset_get(ds, i, j), 0);
    }
    nb_dataset_free(d64);
    nb_dataset_free(ds);
    assert_int_equal(nb_dataset_digits(&(nb_data_opts){.n_classes = 3}, &ds), NB_ERR_ARG);
    assert_null(ds);
    assert_int_equal(nb_dataset_digits(NULL, NULL), NB_ERR_NULL);
}

/* ------------------------------------------------------------- splits */

/* A data set whose feature 0 is the row number and label row % 3. */
static nb_dataset *numbered(int64_t n, int64_t F, nb_dtype dt)
{
    double *x = calloc((size_t)(n * F), sizeof *x);
    float *xf = calloc((size_t)(n * F), sizeof *xf);
    int64_t *y = calloc((size_t)n, sizeof *y);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < F; j++)
            x[i * F + j] = xf[i * F + j] = (float)(j == 0 ? i : 0.5 * j + i);
        y[i] = i % 3;
    }
    nb_dataset *ds = NULL;
    nb_data_opts o = {.dtype = dt};
    assert_int_equal(nb_dataset_from(&o, n, F, dt == NB_F32 ? (void *)xf : (void *)x, y, &ds),
                     NB_OK);
    free(x);
    free(xf);
    free(y);
    return ds;
}

static void test_splits(void **state)
{
    (void)state;
    nb_dataset *digits = NULL, *train = NULL, *val = NULL, *test = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &digits), NB_OK);
    /* the benchmark split: first 1500 rows, last 297 */
    assert_int_equal(nb_dataset_split(digits, NULL, 1500, 0, &train, &val, &test), NB_OK);
    assert_int_equal(nb_dataset_count(train), 1500);
    assert_int_equal(nb_dataset_count(val), 0);
    assert_int_equal(nb_dataset_count(test), 297);
    assert_int_equal(nb_dataset_classes(test), 10);
    int64_t h;
    nb_dataset_image_shape(test, NULL, &h, NULL);
    assert_int_equal(h, 8);
    for (int j = 0; j < 64; j++) {
        tc_near(nb_dataset_get(test, 0, j), nb_dataset_get(digits, 1500, j), 0);
        tc_near(nb_dataset_get(train, 1499, j), nb_dataset_get(digits, 1499, j), 0);
    }
    assert_int_equal(nb_dataset_label(test, 296), nb_dataset_label(digits, 1796));
    nb_dataset_free(train);
    nb_dataset_free(val);
    nb_dataset_free(test);
    nb_dataset *s = NULL;
    assert_int_equal(nb_dataset_slice(digits, 1500, 297, &s), NB_OK);
    assert_int_equal(nb_dataset_label(s, 296), 8);
    nb_dataset_free(s);
    assert_int_equal(nb_dataset_slice(digits, 1500, 298, &s), NB_ERR_ARG);
    assert_null(s);
    assert_int_equal(nb_dataset_subset(digits, (int64_t[]){5, 5, 0}, 3, &s), NB_OK);
    assert_int_equal(nb_dataset_label(s, 0), nb_dataset_label(digits, 5));
    assert_int_equal(nb_dataset_label(s, 2), 0);
    nb_dataset_free(s);
    assert_int_equal(nb_dataset_subset(digits, (int64_t[]){1797}, 1, &s), NB_ERR_ARG);
    nb_dataset_free(digits);

    /* random splits: a partition, reproducible by seed, different by seed */
    nb_dataset *ds = numbered(50, 3, NB_F64);
    int64_t seen[50];
    int64_t first_order[2][50];
    for (int seed = 1; seed <= 3; seed++) {
        nb_rng rng;
        nb_rng_seed(&rng, seed == 3 ? 1 : (uint64_t)seed);
        assert_int_equal(nb_dataset_split(ds, &rng, 30, 12, &train, &val, &test), NB_OK);
        assert_int_equal(nb_dataset_count(train), 30);
        assert_int_equal(nb_dataset_count(val), 12);
        assert_int_equal(nb_dataset_count(test), 8);
        memset(seen, 0, sizeof seen);
        nb_dataset *parts[3] = {train, val, test};
        int64_t k = 0;
        for (int p = 0; p < 3; p++)
            for (int64_t i = 0; i < nb_dataset_count(parts[p]); i++, k++) {
                int64_t row = (int64_t)nb_dataset_get(parts[p], i, 0);
                seen[row]++;
                assert_int_equal(nb_dataset_label(parts[p], i), row % 3);
                tc_near(nb_dataset_get(parts[p], i, 2), 1.0 + (double)row, 0);
                if (seed <= 2)
                    first_order[seed - 1][k] = row;
                else
                    assert_int_equal(row, first_order[0][k]); /* seed 1 again */
            }
        for (int i = 0; i < 50; i++)
            assert_int_equal(seen[i], 1);
        nb_dataset_free(train);
        nb_dataset_free(val);
        nb_dataset_free(test);
    }
    assert_memory_not_equal(first_order[0], first_order[1], sizeof first_order[0]);
    /* bad counts, NULL parts */
    assert_int_equal(nb_dataset_split(ds, NULL, 40, 11, &train, &val, &test), NB_ERR_ARG);
    assert_null(train);
    assert_int_equal(nb_dataset_split(ds, NULL, 40, 0, &train, NULL, NULL), NB_OK);
    assert_int_equal(nb_dataset_count(train), 40);
    nb_dataset_free(train);
    nb_dataset_free(ds);
}

/* ------------------------------------------------------------ loaders */

/* Every sample once per epoch, batch sizes, drop_last, labels and tensor
 * contents; shuffle differs by seed and repeats by seed. */
static void test_loader_epochs(void **state)
{
    (void)state;
    nb_dataset *ds = numbered(103, 4, NB_F32);
    nb_graph *g = nb_graph_new();
    int64_t orders[4][103]; /* no shuffle, seed 1, seed 2, seed 1 again */
    for (int variant = 0; variant < 5; variant++) {
        bool shuffle = variant >= 1 && variant <= 3, drop_last = variant == 4;
        nb_loader *ld = NULL;
        assert_int_equal(nb_loader_new(ds, 10, shuffle, drop_last, &ld), NB_OK);
        assert_int_equal(nb_loader_batches(ld), drop_last ? 10 : 11);
        nb_rng rng;
        nb_rng_seed(&rng, variant == 3 ? 1 : (uint64_t)variant); /* 3 repeats 1 */
        for (int epoch = 0; epoch < 2; epoch++) {
            assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
            int64_t seen[103] = {0}, k = 0, batches = 0;
            nb_batch b;
            while (nb_loader_next(g, ld, &b)) {
                batches++;
                assert_int_equal(b.size, (batches == 11) ? 3 : 10);
                assert_non_null(b.x);
                assert_int_equal(nb_tensor_dim(b.x, 0), b.size);
                assert_int_equal(nb_tensor_dim(b.x, 1), 4);
                for (int64_t i = 0; i < b.size; i++, k++) {
                    int64_t row = (int64_t)nb_tensor_get(b.x, i * 4);
                    assert_int_equal(row, b.indices[i]);
                    assert_int_equal(b.labels[i], row % 3);
                    tc_near(nb_tensor_get(b.x, i * 4 + 3), 1.5 + (double)row, 1e-5);
                    seen[row]++;
                    if (epoch == 0 && variant <= 3)
                        orders[variant][k] = row;
                    if (!shuffle)
                        assert_int_equal(row, k);
                }
                nb_graph_reset(g);
            }
            assert_int_equal(batches, nb_loader_batches(ld));
            for (int i = 0; i < 103; i++)
                assert_int_equal(seen[i], drop_last ? (i < 100) : 1);
            assert_false(nb_loader_next(g, ld, &b)); /* stays at the end */
        }
        nb_loader_free(ld);
    }
    /* seeds 1 and 2 differ, seed 1 repeats, and shuffling changes the order */
    assert_memory_not_equal(orders[1], orders[0], sizeof orders[0]);
    assert_memory_not_equal(orders[1], orders[2], sizeof orders[0]);
    assert_memory_equal(orders[1], orders[3], sizeof orders[0]);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(ds, 0, false, false, &ld), NB_ERR_ARG);
    assert_int_equal(nb_loader_new(NULL, 4, false, false, &ld), NB_ERR_NULL);
    assert_int_equal(nb_loader_new(ds, 500, true, false, &ld), NB_OK);
    assert_int_equal(nb_loader_start(ld, NULL), NB_ERR_NULL); /* shuffling needs an rng */
    assert_int_equal(nb_loader_batches(ld), 1);
    nb_loader_free(ld);
    nb_loader_free(NULL);
    nb_graph_free(g);
    nb_dataset_free(ds);
}

/* Shuffled orders: the same seed gives the same order, another seed another. */
static void test_loader_shuffle_seeds(void **state)
{
    (void)state;
    nb_dataset *ds = numbered(64, 1, NB_F64);
    int64_t order[3][64];
    uint64_t seeds[3] = {7, 8, 7};
    for (int s = 0; s < 3; s++) {
        nb_loader *ld = NULL;
        assert_int_equal(nb_loader_new(ds, 16, true, false, &ld), NB_OK);
        nb_rng rng;
        nb_rng_seed(&rng, seeds[s]);
        assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
        nb_batch b;
        int k = 0;
        while (nb_loader_next(NULL, ld, &b)) {
            assert_null(b.x);
            for (int64_t i = 0; i < b.size; i++)
                order[s][k++] = b.indices[i];
        }
        assert_int_equal(k, 64);
        nb_loader_free(ld);
    }
    assert_memory_equal(order[0], order[2], sizeof order[0]);
    assert_memory_not_equal(order[0], order[1], sizeof order[0]);
    int64_t identity[64];
    for (int i = 0; i < 64; i++)
        identity[i] = i;
    assert_memory_not_equal(order[0], identity, sizeof identity);
    nb_dataset_free(ds);
}

/* After the loader is made, epochs of batches allocate nothing outside the
 * graph, and the graph nothing after the first batch. */
/* Shards of every global batch: for P = 1, 2, 3, 4 ranks with the same
 * seed, the ranks' shares of each batch are disjoint, in order, and
 * together the batch one loader takes (uneven when P does not divide it;
 * empty when the last short batch has fewer rows than ranks). */
static void test_loader_shard(void **state)
{
    (void)state;
    nb_dataset *ds = numbered(102, 2, NB_F32); /* batches of 20: 5 of 20 and one of 2 */
    nb_graph *g = nb_graph_new();
    int64_t whole[102];
    for (int size = 1; size <= 4; size++) {
        int64_t got[102], at[6] = {0};
        int64_t n_got = 0;
        for (int rank = 0; rank < size; rank++) {
            nb_loader *ld = NULL;
            assert_int_equal(nb_loader_new(ds, 20, true, false, &ld), NB_OK);
            assert_int_equal(nb_loader_set_shard(ld, rank, size), NB_OK);
            int r = -1, p = -1;
            nb_loader_shard(ld, &r, &p);
            assert_int_equal(r, rank);
            assert_int_equal(p, size);
            assert_int_equal(nb_loader_batches(ld), 6); /* global batches */
            assert_int_equal(nb_loader_batch_size(ld), 20);
            nb_rng rng;
            nb_rng_seed(&rng, 5);
            assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
            nb_batch b;
            int batch = 0;
            while (nb_loader_next(g, ld, &b)) {
                int64_t global = batch < 5 ? 20 : 2;
                assert_int_equal(b.global_size, global);
                int64_t lo = global * rank / size, hi = global * (rank + 1) / size;
                assert_int_equal(b.size, hi - lo);
                if (b.size == 0) {
                    assert_null(b.x); /* an empty share: no tensor */
                } else {
                    assert_non_null(b.x);
                    assert_int_equal(nb_tensor_dim(b.x, 0), b.size);
                }
                /* the rank's rows sit at [lo, hi) of the global batch */
                for (int64_t i = 0; i < b.size; i++) {
                    int64_t row = (int64_t)nb_tensor_get(b.x, i * 2);
                    assert_int_equal(row, b.indices[i]);
                    assert_int_equal(b.labels[i], row % 3);
                    if (size == 1)
                        whole[batch * 20 + i] = row;
                    else
                        assert_int_equal(row, whole[batch * 20 + lo + i]);
                    got[n_got++] = row;
                }
                at[batch] += b.size;
                batch++;
                nb_graph_reset(g);
            }
            assert_int_equal(batch, 6);
            nb_loader_free(ld);
        }
        /* the shares add up to every batch, every row once */
        for (int k = 0; k < 6; k++)
            assert_int_equal(at[k], k < 5 ? 20 : 2);
        assert_int_equal(n_got, 102);
        int seen[102] = {0};
        for (int64_t i = 0; i < n_got; i++)
            seen[got[i]]++;
        for (int i = 0; i < 102; i++)
            assert_int_equal(seen[i], 1);
    }
    /* bad shards are refused and leave the loader as it was */
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(ds, 20, false, false, &ld), NB_OK);
    assert_int_equal(nb_loader_set_shard(ld, 1, 2), NB_OK);
    assert_int_equal(nb_loader_set_shard(ld, 2, 2), NB_ERR_ARG);
    assert_int_equal(nb_loader_set_shard(ld, -1, 2), NB_ERR_ARG);
    assert_int_equal(nb_loader_set_shard(ld, 0, 0), NB_ERR_ARG);
    assert_int_equal(nb_loader_set_shard(NULL, 0, 1), NB_ERR_NULL);
    int r = -1, p = -1;
    nb_loader_shard(ld, &r, &p);
    assert_int_equal(r, 1);
    assert_int_equal(p, 2);
    nb_loader_shard(NULL, &r, &p);
    assert_int_equal(r, 0);
    assert_int_equal(p, 1);
    nb_loader_shard(ld, NULL, NULL);
    assert_int_equal(nb_loader_batch_size(NULL), 0);
    /* drop_last drops the short global batch on every rank alike */
    nb_loader *dl = NULL;
    assert_int_equal(nb_loader_new(ds, 20, false, true, &dl), NB_OK);
    assert_int_equal(nb_loader_set_shard(dl, 2, 3), NB_OK);
    assert_int_equal(nb_loader_start(dl, NULL), NB_OK);
    nb_batch b;
    int batches = 0;
    while (nb_loader_next(NULL, dl, &b)) {
        assert_int_equal(b.size, 7); /* rows [13, 20) of 20 */
        assert_int_equal(b.indices[0], batches * 20 + 13);
        batches++;
    }
    assert_int_equal(batches, 5);
    nb_loader_free(dl);
    nb_loader_free(ld);
    nb_graph_free(g);
    nb_dataset_free(ds);
}

static void test_loader_no_malloc_per_batch(void **state)
{
    (void)state;
    tc_counting c = {0};
    nb_dataset *ds = NULL;
    nb_data_opts o = {.alloc = tc_counting_alloc, .alloc_ud = &c};
    assert_int_equal(nb_dataset_digits(&o, &ds), NB_OK);
    nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(ds, 32, true, false, &ld), NB_OK);
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    assert_int_equal(
        nb_loader_set_augment(
            ld, &(nb_augment){.flip_prob = 0.5, .max_shift = 1, .crop_pad = 1, .noise_std = 0.1},
            &rng),
        NB_OK);
    nb_batch b;
    assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
    assert_true(nb_loader_next(g, ld, &b));
    nb_graph_reset(g);
    long after_first = c.calls;
    for (int epoch = 0; epoch < 2; epoch++) {
        assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
        while (nb_loader_next(g, ld, &b)) {
            assert_non_null(b.x);
            nb_graph_reset(g);
        }
    }
    assert_int_equal(c.calls, after_first);
    nb_loader_free(ld);
    nb_graph_free(g);
    nb_dataset_free(ds);
    assert_int_equal(c.live, 0);
}

/* ------------------------------------------------------- normalisation */

static void test_normalisation(void **state)
{
    (void)state;
    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_digits(&(nb_data_opts){.dtype = NB_F64}, &ds), NB_OK);
    nb_dataset *train = NULL, *test = NULL;
    assert_int_equal(nb_dataset_split(ds, NULL, 1500, 0, &train, NULL, &test), NB_OK);
    nb_dataset *scaled = NULL;
    assert_int_equal(nb_dataset_slice(ds, 0, 1797, &scaled), NB_OK);
    assert_int_equal(nb_dataset_scale(scaled, 16), NB_OK);
    double lo = 1, hi = 0;
    for (int64_t i = 0; i < 1797; i++)
        for (int j = 0; j < 64; j++) {
            double v = nb_dataset_get(scaled, i, j);
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            tc_near(v, nb_dataset_get(ds, i, j) / 16, 1e-15);
        }
    tc_near(lo, 0, 0);
    tc_near(hi, 1, 0);
    assert_int_equal(nb_dataset_scale(scaled, 0), NB_ERR_ARG);
    assert_int_equal(nb_dataset_scale(scaled, INFINITY), NB_ERR_ARG);

    double mean[64], std[64];
    assert_int_equal(nb_dataset_mean_std(train, mean, std), NB_OK);
    tc_near(std[0], 0, 0); /* the corner pixel is always 0 */
    assert_int_equal(nb_dataset_standardize(train, mean, std), NB_OK);
    assert_int_equal(nb_dataset_standardize(test, mean, std), NB_OK);
    double m2[64], s2[64];
    assert_int_equal(nb_dataset_mean_std(train, m2, s2), NB_OK);
    for (int j = 0; j < 64; j++) {
        tc_near(m2[j], 0, 1e-12);
        tc_near(s2[j], std[j] < 1e-12 ? 0 : 1, 1e-12);
    }
    /* the test set used the training statistics */
    tc_near(nb_dataset_get(test, 5, 20), (nb_dataset_get(ds, 1505, 20) - mean[20]) / std[20],
            1e-12);
    nb_dataset *empty = NULL;
    assert_int_equal(nb_dataset_slice(ds, 3, 0, &empty), NB_OK);
    assert_int_equal(nb_dataset_mean_std(empty, mean, std), NB_ERR_ARG);
    nb_dataset_free(empty);
    nb_dataset_free(scaled);
    nb_dataset_free(train);
    nb_dataset_free(test);
    nb_dataset_free(ds);
}

/* -------------------------------------------------------- augmentation */

/* A batch of @p B images C x H x W with distinct pixel values. */
static nb_batch image_batch(double *buf, int64_t B, int64_t C, int64_t H, int64_t W)
{
    for (int64_t k = 0; k < B * C * H * W; k++)
        buf[k] = (double)k + 1;
    nb_batch b = {.size = B,
                  .n_features = C * H * W,
                  .channels = C,
                  .height = H,
                  .width = W,
                  .dtype = NB_F64,
                  .features = buf};
    return b;
}

static void test_augment_flip(void **state)
{
    (void)state;
    double buf[2 * 2 * 3 * 5], orig[2 * 2 * 3 * 5];
    nb_batch b = image_batch(buf, 2, 2, 3, 5);
    memcpy(orig, buf, sizeof buf);
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    assert_int_equal(nb_batch_flip(&b, &rng, 1.0), NB_OK);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 2; c++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 5; x++) {
                    int k = ((i * 2 + c) * 3 + y) * 5 + x;
                    int m = ((i * 2 + c) * 3 + y) * 5 + (4 - x);
                    tc_near(buf[k], orig[m], 0);
                }
    assert_int_equal(nb_batch_flip(&b, &rng, 1.0), NB_OK);
    assert_memory_equal(buf, orig, sizeof buf); /* flip twice = identity */
    assert_int_equal(nb_batch_flip(&b, &rng, 0.0), NB_OK);
    assert_memory_equal(buf, orig, sizeof buf);
    /* p = 0.5 over many images flips about half */
    double many[400 * 4];
    nb_batch m = image_batch(many, 400, 1, 2, 2);
    assert_int_equal(nb_batch_flip(&m, &rng, 0.5), NB_OK);
    int flipped = 0;
    for (int i = 0; i < 400; i++)
        flipped += many[i * 4] == (double)(i * 4 + 2);
    assert_true(flipped > 150 && flipped < 250);
    assert_int_equal(nb_batch_flip(&m, &rng, 1.5), NB_ERR_ARG);
    nb_batch flat = {.size = 1, .n_features = 4, .dtype = NB_F64, .features = many};
    assert_int_equal(nb_batch_flip(&flat, &rng, 1.0), NB_ERR_SHAPE);
}

static void test_augment_shift_crop(void **state)
{
    (void)state;
    double buf[4 * 5], orig[4 * 5];
    nb_batch b = image_batch(buf, 1, 1, 4, 5);
    memcpy(orig, buf, sizeof buf);
    /* down 1, left 2: out(y,x) = in(y-1, x+2) */
    assert_int_equal(nb_batch_shift(&b, 1, -2, -9), NB_OK);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 5; x++) {
            int sy = y - 1, sx = x + 2;
            double want = (sy >= 0 && sx < 5) ? orig[sy * 5 + sx] : -9;
            tc_near(buf[y * 5 + x], want, 0);
        }
    /* every direction against a copy-based reference */
    for (int dy = -4; dy <= 4; dy++)
        for (int dx = -5; dx <= 5; dx++) {
            memcpy(buf, orig, sizeof buf);
            assert_int_equal(nb_batch_shift(&b, dy, dx, 0), NB_OK);
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 5; x++) {
                    int sy = y - dy, sx = x - dx;
                    double want = (sy >= 0 && sy < 4 && sx >= 0 && sx < 5) ? orig[sy * 5 + sx] : 0;
                    tc_near(buf[y * 5 + x], want, 0);
                }
        }
    /* a random crop with padding is a shift within [-pad, pad]: find it */
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    int shifts_seen[5][5] = {{0}};
    for (int trial = 0; trial < 200; trial++) {
        memcpy(buf, orig, sizeof buf);
        assert_int_equal(nb_batch_random_crop(&b, &rng, 2, 0), NB_OK);
        int found = 0;
        for (int dy = -2; dy <= 2 && !found; dy++)
            for (int dx = -2; dx <= 2 && !found; dx++) {
                int same = 1;
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 5; x++) {
                        int sy = y - dy, sx = x - dx;
                        double want =
                            (sy >= 0 && sy < 4 && sx >= 0 && sx < 5) ? orig[sy * 5 + sx] : 0;
                        same &= buf[y * 5 + x] == want;
                    }
                if (same) {
                    found = 1;
                    shifts_seen[dy + 2][dx + 2]++;
                }
            }
        assert_true(found);
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++)
            assert_true(shifts_seen[i][j] > 0); /* every offset happens */
    /* pad 0 and shift 0 leave the image alone */
    memcpy(buf, orig, sizeof buf);
    assert_int_equal(nb_batch_random_crop(&b, &rng, 0, 0), NB_OK);
    assert_int_equal(nb_batch_random_shift(&b, &rng, 0, 0), NB_OK);
    assert_memory_equal(buf, orig, sizeof buf);
    /* the pixel sum is kept by a random shift when the border is empty */
    double img[6 * 6] = {0};
    img[2 * 6 + 3] = 5;
    nb_batch one = {.size = 1,
                    .n_features = 36,
                    .channels = 1,
                    .height = 6,
                    .width = 6,
                    .dtype = NB_F64,
                    .features = img};
    assert_int_equal(nb_batch_random_shift(&one, &rng, 2, 0), NB_OK);
    double sum = 0;
    for (int k = 0; k < 36; k++)
        sum += img[k];
    tc_near(sum, 5, 0);
    assert_int_equal(nb_batch_random_shift(&one, &rng, -1, 0), NB_ERR_ARG);
    assert_int_equal(nb_batch_random_crop(&one, NULL, 1, 0), NB_ERR_NULL);
}

/* Noise has the asked standard deviation and mean 0; augmentation through
 * a loader changes the batch copy, never the data set. */
static void test_augment_noise_and_loader(void **state)
{
    (void)state;
    enum { N = 40000 };
    float *buf = calloc(N, sizeof *buf);
    nb_batch b = {.size = 100, .n_features = N / 100, .dtype = NB_F32, .features = buf};
    nb_rng rng;
    nb_rng_seed(&rng, 9);
    assert_int_equal(nb_batch_noise(&b, &rng, 0.5), NB_OK);
    double s = 0, q = 0;
    for (int k = 0; k < N; k++) {
        s += buf[k];
        q += (double)buf[k] * buf[k];
    }
    double mean = s / N, sd = sqrt(q / N - mean * mean);
    tc_near(mean, 0, 4 * 0.5 / sqrt(N));
    tc_near(sd, 0.5, 0.5 * 0.02);
    assert_int_equal(nb_batch_noise(&b, &rng, -1), NB_ERR_ARG);
    assert_int_equal(nb_batch_noise(&b, &rng, NAN), NB_ERR_ARG);
    free(buf);

    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &ds), NB_OK);
    nb_dataset *copy = NULL;
    assert_int_equal(nb_dataset_slice(ds, 0, 1797, &copy), NB_OK);
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(ds, 100, false, false, &ld), NB_OK);
    nb_augment aug = {.flip_prob = 1, .noise_std = 0.25};
    assert_int_equal(nb_loader_set_augment(ld, &aug, &rng), NB_OK);
    nb_batch bb;
    assert_true(nb_loader_next(NULL, ld, &bb));
    /* the first image, flipped, plus noise */
    double d2 = 0;
    const float *xf = bb.features;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            double e = xf[y * 8 + x] - nb_dataset_get(ds, 0, y * 8 + 7 - x);
            d2 += e * e;
        }
    assert_true(sqrt(d2 / 64) > 0.1 && sqrt(d2 / 64) < 0.5);
    /* the data set is untouched */
    assert_memory_equal(nb_dataset_feature_data(ds), nb_dataset_feature_data(copy),
                        1797 * 64 * sizeof(float));
    /* augmentation off: batches are the samples again */
    assert_int_equal(nb_loader_set_augment(ld, NULL, NULL), NB_OK);
    assert_true(nb_loader_next(NULL, ld, &bb));
    for (int j = 0; j < 64; j++)
        tc_near(((const float *)bb.features)[j], nb_dataset_get(ds, 100, j), 0);
    assert_int_equal(nb_loader_set_augment(ld, &aug, NULL), NB_ERR_NULL);
    aug.noise_std = -1;
    assert_int_equal(nb_loader_set_augment(ld, &aug, &rng), NB_ERR_ARG);
    nb_loader_free(ld);
    /* flips need images */
    nb_dataset *flat = numbered(4, 3, NB_F32);
    assert_int_equal(nb_loader_new(flat, 2, false, false, &ld), NB_OK);
    assert_int_equal(nb_loader_set_augment(ld, &(nb_augment){.flip_prob = 1}, &rng), NB_ERR_SHAPE);
    assert_int_equal(nb_loader_set_augment(ld, &(nb_augment){.noise_std = 1}, &rng), NB_OK);
    nb_loader_free(ld);
    nb_dataset_free(flat);
    nb_dataset_free(copy);
    nb_dataset_free(ds);
}

/* ---------------------------------------------------- allocation failure */

typedef nb_status (*load_fn)(nb_data_opts *o, void *ctx);

/* Count the allocations of @p f, then fail each in turn: every failure
 * gives NB_ERR_NOMEM and frees all it took. */
static void fail_every_allocation(const char *what, load_fn f, void *ctx)
{
    tc_counting probe = {0};
    nb_data_opts o = {.alloc = tc_counting_alloc, .alloc_ud = &probe};
    assert_int_equal(f(&o, ctx), NB_OK);
    assert_int_equal(probe.live, 0);
    assert_true(probe.calls >= 2);
    for (long n = 1; n <= probe.calls; n++) {
        tc_counting c = {.fail_at = n};
        o.alloc_ud = &c;
        nb_status st = f(&o, ctx);
        if (st != NB_ERR_NOMEM || c.live != 0)
            fail_msg("%s: failing allocation %ld of %ld: status %d, %ld blocks left", what, n,
                     probe.calls, (int)st, c.live);
    }
}

static nb_status csv_load_free(nb_data_opts *o, void *ctx)
{
    const unsigned char *const *buf = ctx;
    size_t len = (size_t)(uintptr_t)buf[1];
    nb_csv_opts co = {.data = *o, .label_column = -1};
    nb_dataset *ds = NULL;
    nb_error err;
    nb_status st = nb_dataset_load_csv_mem(buf[0], len, &co, &ds, &err);
    if (st == NB_ERR_NOMEM)
        assert_non_null(strstr(err.msg, "out of memory"));
    if (st == NB_OK)
        assert_int_equal(nb_dataset_count(ds), 3);
    nb_dataset_free(ds);
    return st;
}

static nb_status csv_file_load_free(nb_data_opts *o, void *ctx)
{
    nb_csv_opts co = {.data = *o, .label_column = -1};
    nb_dataset *ds = NULL;
    nb_status st = nb_dataset_load_csv(ctx, &co, &ds, NULL);
    nb_dataset_free(ds);
    return st;
}

static nb_status idx_load_free(nb_data_opts *o, void *ctx)
{
    const idx_pair *p = ctx;
    nb_dataset *ds = NULL;
    nb_status st = nb_dataset_load_idx_mem(p->img, p->img_len, p->lab, p->lab_len, o, &ds, NULL);
    nb_dataset_free(ds);
    return st;
}

static nb_status digits_split_loader(nb_data_opts *o, void *ctx)
{
    (void)ctx;
    nb_dataset *ds = NULL, *train = NULL, *test = NULL;
    nb_loader *ld = NULL;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_status st = nb_dataset_digits(o, &ds);
    if (st == NB_OK)
        st = nb_dataset_split(ds, &rng, 1000, 0, &train, NULL, &test);
    if (st == NB_OK)
        st = nb_loader_new(train, 64, true, true, &ld);
    nb_loader_free(ld);
    nb_dataset_free(train);
    nb_dataset_free(test);
    nb_dataset_free(ds);
    return st;
}

/* ------------------------------------------------------------ targets */

/* A regression data set: sample i has features (i, -i) and targets
 * (10i, 10i + 1), so any row shows whether its targets came with it. */
static nb_dataset *aligned_targets(nb_dtype dt, int64_t n)
{
    double *x = malloc((size_t)n * 2 * sizeof *x), *y = malloc((size_t)n * 2 * sizeof *y);
    float *xf = malloc((size_t)n * 2 * sizeof *xf), *yf = malloc((size_t)n * 2 * sizeof *yf);
    assert_true(x && y && xf && yf);
    for (int64_t i = 0; i < n; i++) {
        x[2 * i] = (double)i, x[2 * i + 1] = -(double)i;
        y[2 * i] = 10.0 * (double)i, y[2 * i + 1] = 10.0 * (double)i + 1;
        for (int k = 0; k < 2; k++)
            xf[2 * i + k] = (float)x[2 * i + k], yf[2 * i + k] = (float)y[2 * i + k];
    }
    nb_dataset *ds = NULL;
    nb_data_opts o = {.dtype = dt};
    bool f32 = dt == NB_F32;
    assert_int_equal(
        nb_dataset_from_targets(&o, n, 2, f32 ? (void *)xf : x, 2, f32 ? (void *)yf : y, &ds),
        NB_OK);
    free(x), free(y), free(xf), free(yf);
    return ds;
}

/* Row @p i of the features (its first value) and targets of @p ds belong
 * together. */
static void assert_row_aligned(double x0, double y0, double y1)
{
    tc_near(y0, 10 * x0, 0);
    tc_near(y1, 10 * x0 + 1, 0);
}

static void test_dataset_targets(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        nb_dtype dt = d ? NB_F64 : NB_F32;
        nb_dataset *ds = aligned_targets(dt, 50);
        assert_int_equal(nb_dataset_targets(ds), 2);
        assert_int_equal(nb_dataset_classes(ds), 0);
        assert_null(nb_dataset_label_data(ds));
        assert_non_null(nb_dataset_target_data(ds));
        assert_int_equal(nb_dataset_label(ds, 3), -1);
        tc_near(nb_dataset_target(ds, 3, 1), 31, 0);
        assert_true(isnan(nb_dataset_target(ds, 3, 2)));
        assert_true(isnan(nb_dataset_target(ds, 50, 0)));
        assert_true(isnan(nb_dataset_target(NULL, 0, 0)));

        /* a random split, a subset and a slice keep each row's targets */
        nb_rng rng;
        nb_rng_seed(&rng, 4);
        nb_dataset *tr = NULL, *va = NULL, *te = NULL, *sub = NULL, *sl = NULL;
        assert_int_equal(nb_dataset_split(ds, &rng, 30, 10, &tr, &va, &te), NB_OK);
        assert_int_equal(nb_dataset_subset(ds, (int64_t[]){7, 7, 2}, 3, &sub), NB_OK);
        assert_int_equal(nb_dataset_slice(ds, 40, 10, &sl), NB_OK);
        nb_dataset *parts[5] = {tr, va, te, sub, sl};
        bool moved = false;
        for (int p = 0; p < 5; p++) {
            assert_int_equal(nb_dataset_targets(parts[p]), 2);
            for (int64_t i = 0; i < nb_dataset_count(parts[p]); i++) {
                double x0 = nb_dataset_get(parts[p], i, 0);
                moved = moved || (p == 0 && x0 != (double)i);
                assert_row_aligned(x0, nb_dataset_target(parts[p], i, 0),
                                   nb_dataset_target(parts[p], i, 1));
            }
        }
        assert_true(moved); /* the split did shuffle */
        tc_near(nb_dataset_get(sub, 1, 0), 7, 0);
        tc_near(nb_dataset_target(sl, 0, 0), 400, 0);

        /* standardisation and scaling change the features only */
        double mean[2], std[2];
        assert_int_equal(nb_dataset_mean_std(tr, mean, std), NB_OK);
        assert_int_equal(nb_dataset_standardize(tr, mean, std), NB_OK);
        assert_int_equal(nb_dataset_scale(tr, 4), NB_OK);
        for (int64_t i = 0; i < nb_dataset_count(tr); i++) {
            double x0 = (nb_dataset_get(tr, i, 0) * 4) * std[0] + mean[0];
            assert_row_aligned(round(x0), nb_dataset_target(tr, i, 0), nb_dataset_target(tr, i, 1));
        }

        /* a shuffled loader with noise: the batch's targets, copied and as
         * the tensor y, follow their rows */
        nb_loader *ld = NULL;
        assert_int_equal(nb_loader_new(ds, 8, true, false, &ld), NB_OK);
        assert_int_equal(nb_loader_set_augment(ld, &(nb_augment){.noise_std = 0.01}, &rng), NB_OK);
        assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
        nb_graph *g = nb_graph_new();
        nb_batch b;
        int64_t seen = 0;
        while (nb_graph_reset(g), nb_loader_next(g, ld, &b)) {
            assert_null(b.labels);
            assert_int_equal(b.n_targets, 2);
            assert_non_null(b.y);
            assert_int_equal(nb_tensor_dtype(b.y), dt);
            assert_int_equal(nb_tensor_dim(b.y, 0), b.size);
            assert_int_equal(nb_tensor_dim(b.y, 1), 2);
            for (int64_t k = 0; k < b.size; k++) {
                double x0 = round(nb_tensor_get(b.x, 2 * k)); /* noise below 0.5 */
                tc_near(x0, (double)b.indices[k], 0);
                assert_row_aligned(x0, nb_tensor_get(b.y, 2 * k), nb_tensor_get(b.y, 2 * k + 1));
            }
            seen += b.size;
        }
        assert_int_equal(seen, 50);
        /* without a graph: the targets are there, no tensor */
        assert_int_equal(nb_loader_start(ld, &rng), NB_OK);
        assert_true(nb_loader_next(NULL, ld, &b));
        assert_null(b.y);
        assert_non_null(b.targets);
        nb_tensor *y = nb_batch_target_tensor(g, &b);
        assert_non_null(y);
        assert_ptr_equal(y, b.y);
        assert_row_aligned((double)b.indices[0], nb_tensor_get(y, 0), nb_tensor_get(y, 1));
        nb_loader_free(ld);
        for (int p = 0; p < 5; p++)
            nb_dataset_free(parts[p]);
        nb_dataset_free(ds);
        nb_graph_free(g);
    }
    /* a labelled batch has no target tensor */
    nb_dataset *lab = NULL;
    assert_int_equal(nb_dataset_from(NULL, 4, 2, NULL, (int64_t[]){0, 1, 0, 1}, &lab), NB_OK);
    assert_int_equal(nb_dataset_targets(lab), 0);
    assert_true(isnan(nb_dataset_target(lab, 0, 0)));
    assert_null(nb_dataset_target_data(lab));
    nb_loader *ld = NULL;
    assert_int_equal(nb_loader_new(lab, 2, false, false, &ld), NB_OK);
    nb_graph *g = nb_graph_new();
    nb_batch b;
    assert_true(nb_loader_next(g, ld, &b));
    assert_non_null(b.labels);
    assert_null(b.y);
    assert_null(b.targets);
    assert_null(nb_batch_target_tensor(g, &b));
    assert_int_equal(nb_graph_status(g), NB_ERR_ARG);
    assert_non_null(strstr(nb_graph_error(g)->msg, "class labels, not float targets"));
    nb_graph_clear_error(g);
    assert_null(nb_batch_target_tensor(g, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    assert_null(nb_batch_target_tensor(NULL, &b));
    nb_graph_free(g);
    nb_loader_free(ld);
    nb_dataset_free(lab);
    /* bad arguments */
    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_from_targets(NULL, 2, 1, NULL, 1, NULL, NULL), NB_ERR_NULL);
    assert_int_equal(nb_dataset_from_targets(NULL, 2, 1, NULL, 0, NULL, &ds), NB_ERR_ARG);
    assert_int_equal(
        nb_dataset_from_targets(&(nb_data_opts){.n_classes = 3}, 2, 1, NULL, 1, NULL, &ds),
        NB_ERR_ARG);
    assert_int_equal(
        nb_dataset_from_targets(&(nb_data_opts){.dtype = (nb_dtype)7}, 2, 1, NULL, 1, NULL, &ds),
        NB_ERR_DTYPE);
    assert_int_equal(nb_dataset_from_targets(NULL, INT64_MAX / 2, 1, NULL, 8, NULL, &ds),
                     NB_ERR_ARG);
    const double bad[2] = {1, NAN};
    assert_int_equal(
        nb_dataset_from_targets(&(nb_data_opts){.dtype = NB_F64}, 2, 1, NULL, 1, bad, &ds),
        NB_ERR_ARG);
    assert_null(ds);
    /* zeros when the arrays are NULL; an empty one is allowed */
    assert_int_equal(nb_dataset_from_targets(NULL, 2, 3, NULL, 2, NULL, &ds), NB_OK);
    tc_near(nb_dataset_target(ds, 1, 1), 0, 0);
    nb_dataset_free(ds);
    assert_int_equal(nb_dataset_from_targets(NULL, 0, 3, NULL, 2, NULL, &ds), NB_OK);
    assert_int_equal(nb_dataset_count(ds), 0);
    nb_dataset_free(ds);
}

/* CSV regression tables: targets by header name, by number (negative from
 * the end), several of them; the other columns are the features in file
 * order. */
static void test_csv_targets(void **state)
{
    (void)state;
    const char *text = "x1,price,x2,y2\n1,10.5,2,-1\n3,20.25,4,-2\n5,30,6,-3\n";
    nb_dataset *ds = NULL;
    nb_error err;
    nb_csv_opts o = {
        .data.dtype = NB_F64, .n_targets = 1, .target_names = (const char *const[]){"price"}};
    assert_int_equal(load_csv(text, &o, &ds, &err), NB_OK);
    assert_int_equal(nb_dataset_count(ds), 3);
    assert_int_equal(nb_dataset_features(ds), 3);
    assert_int_equal(nb_dataset_targets(ds), 1);
    assert_int_equal(nb_dataset_classes(ds), 0);
    tc_near(nb_dataset_target(ds, 1, 0), 20.25, 0);
    tc_near(nb_dataset_get(ds, 1, 0), 3, 0);
    tc_near(nb_dataset_get(ds, 1, 1), 4, 0);
    tc_near(nb_dataset_get(ds, 1, 2), -2, 0);
    nb_dataset_free(ds);
    /* two targets by number, in the order given: y2 (-1) then price (1) */
    o = (nb_csv_opts){.n_targets = 2, .target_columns = (const int[]){-1, 1}};
    assert_int_equal(load_csv(text, &o, &ds, &err), NB_OK);
    assert_int_equal(nb_dataset_dtype(ds), NB_F32);
    assert_int_equal(nb_dataset_features(ds), 2);
    assert_int_equal(nb_dataset_targets(ds), 2);
    tc_near(nb_dataset_target(ds, 2, 0), -3, 0);
    tc_near(nb_dataset_target(ds, 2, 1), 30, 0);
    tc_near(nb_dataset_get(ds, 2, 1), 6, 0);
    nb_dataset_free(ds);
    /* names and numbers mixed: a name wins over its number */
    o = (nb_csv_opts){.n_targets = 2,
                      .target_names = (const char *const[]){NULL, "x1"},
                      .target_columns = (const int[]){1, 99}};
    assert_int_equal(load_csv(text, &o, &ds, &err), NB_OK);
    tc_near(nb_dataset_target(ds, 0, 0), 10.5, 0);
    tc_near(nb_dataset_target(ds, 0, 1), 1, 0);
    tc_near(nb_dataset_get(ds, 0, 0), 2, 0);
    nb_dataset_free(ds);
    /* no header: numbers only */
    o = (nb_csv_opts){.n_targets = 1, .target_columns = (const int[]){0}};
    assert_int_equal(load_csv("1.5,2\n2.5,3\n", &o, &ds, &err), NB_OK);
    tc_near(nb_dataset_target(ds, 1, 0), 2.5, 0);
    tc_near(nb_dataset_get(ds, 1, 0), 3, 0);
    nb_dataset_free(ds);

    /* errors: each names what is wrong, and nothing is made */
    struct {
        const char *text;
        nb_csv_opts o;
        nb_status st;
        const char *msg;
    } bad[] = {
        {text,
         {.n_targets = 1, .target_names = (const char *const[]){"prise"}},
         NB_ERR_ARG,
         "line 1: no column named \"prise\" in the header (its columns: \"x1\", \"price\", "
         "\"x2\", \"y2\")"},
        {text,
         {.n_targets = 1, .target_columns = (const int[]){4}},
         NB_ERR_ARG,
         "target column index 4 is outside the 4 columns (0 .. 3, or negative from the end)"},
        {text,
         {.n_targets = 1, .target_columns = (const int[]){-5}},
         NB_ERR_ARG,
         "target column index -5 is outside"},
        {text,
         {.n_targets = 2, .target_columns = (const int[]){1, -3}},
         NB_ERR_ARG,
         "column index 1 (\"price\") is given as a target twice"},
        {"1,2\n3,4\n",
         {.n_targets = 1, .target_names = (const char *const[]){"y"}},
         NB_ERR_ARG,
         "line 1: target column \"y\" is named, but the table has no header row"},
        {"a,y\n1,2\n3,x\n",
         {.n_targets = 1, .target_names = (const char *const[]){"y"}},
         NB_ERR_PARSE,
         "line 3, column 2: target \"x\" is not a number"},
        {"a,y\n1,2\n3,nan\n",
         {.n_targets = 1, .target_names = (const char *const[]){"y"}, .allow_nonfinite = true},
         NB_ERR_PARSE,
         "line 3, column 2: target \"nan\" is not a finite number"},
        {"a,y\n1,2\n3,1e39\n",
         {.n_targets = 1, .target_columns = (const int[]){1}},
         NB_ERR_PARSE,
         "line 3, column 2: target \"1e39\" is not a finite number in the f32 range"},
        {"a,y\n1,2\n",
         {.n_targets = 2, .target_columns = (const int[]){0, 1}},
         NB_ERR_ARG,
         "2 target columns leave no feature among the 2 columns"},
        {"a,y\n1,2\n", {.n_targets = 1}, NB_ERR_NULL, "neither target_columns nor target_names"},
        {"a,y\n1,2\n",
         {.n_targets = 1, .target_names = (const char *const[]){NULL}},
         NB_ERR_NULL,
         "target 0 has no name (target_names) and no column number (target_columns)"},
        {"a,y\n1,2\n", {.n_targets = -1}, NB_ERR_ARG, "n_targets = -1"},
        {"a,y\n1,2\n",
         {.n_targets = 1, .target_columns = (const int[]){1}, .data.n_classes = 3},
         NB_ERR_ARG,
         "n_classes = 3 applies to labels"},
        {"y\n1\n",
         {.n_targets = 1, .target_columns = (const int[]){0}},
         NB_ERR_PARSE,
         "only one column: a target and at least one feature"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ds = (nb_dataset *)&err; /* overwritten with NULL */
        nb_status st = load_csv(bad[i].text, &bad[i].o, &ds, &err);
        if (st != bad[i].st || !strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: status %d, message \"%s\"; expected %d, \"%s\"", i, (int)st,
                     err.msg, (int)bad[i].st, bad[i].msg);
        assert_null(ds);
        assert_string_equal(err.where, "nb_dataset_load_csv_mem");
    }
    /* a long header is listed in part */
    char wide[2048] = "";
    for (int k = 0; k < 60; k++)
        snprintf(wide + strlen(wide), sizeof wide - strlen(wide), "%scolumn_%d", k ? "," : "", k);
    strcat(wide, "\n");
    for (int k = 0; k < 60; k++)
        strcat(wide, k ? ",1" : "1");
    strcat(wide, "\n");
    o = (nb_csv_opts){.n_targets = 1, .target_names = (const char *const[]){"nope"}};
    assert_int_equal(load_csv(wide, &o, &ds, &err), NB_ERR_ARG);
    assert_non_null(strstr(err.msg, "\"column_0\", \"column_1\""));
    assert_non_null(strstr(err.msg, ", ..."));
    assert_null(strstr(err.msg, "column_59"));
}

static nb_status csv_targets_load_free(nb_data_opts *o, void *ctx)
{
    (void)ctx;
    nb_csv_opts co = {.data = *o, .n_targets = 2, .target_names = (const char *const[]){"y", "z"}};
    nb_dataset *ds = NULL, *tr = NULL, *te = NULL;
    nb_loader *ld = NULL;
    nb_error err;
    nb_rng rng;
    nb_rng_seed(&rng, 2);
    const char *text = "a,y,b,z\n1,2,3,4\n5,6,7,8\n9,10,11,12\n";
    nb_status st = nb_dataset_load_csv_mem(text, strlen(text), &co, &ds, &err);
    if (st == NB_ERR_NOMEM)
        assert_true(strlen(err.msg) > 0);
    if (st == NB_OK)
        st = nb_dataset_split(ds, &rng, 2, 0, &tr, NULL, &te);
    if (st == NB_OK)
        st = nb_loader_new(tr, 2, true, false, &ld);
    nb_loader_free(ld);
    nb_dataset_free(tr);
    nb_dataset_free(te);
    nb_dataset_free(ds);
    return st;
}

static void test_alloc_failure(void **state)
{
    (void)state;
    const char *text = "a,b,label\n1,2,0\n3,4,1\n5,6,2\n";
    const void *plain[2] = {text, (void *)(uintptr_t)strlen(text)};
    fail_every_allocation("csv", csv_load_free, plain);
    size_t gz_len;
    unsigned char *gz = gzip_buf(text, strlen(text), &gz_len);
    const void *packed[2] = {gz, (void *)(uintptr_t)gz_len};
    fail_every_allocation("csv.gz", csv_load_free, packed);
    char dir[64] = "", path[128];
    write_temp(dir, path, sizeof path, "t.csv.gz", gz, gz_len);
    fail_every_allocation("csv.gz file", csv_file_load_free, path);
    remove(path);
    rmdir(dir);
    free(gz);

    idx_pair p = make_pair();
    fail_every_allocation("idx", idx_load_free, &p);
    idx_pair z;
    z.img = gzip_buf(p.img, p.img_len, &z.img_len);
    z.lab = gzip_buf(p.lab, p.lab_len, &z.lab_len);
    fail_every_allocation("idx.gz", idx_load_free, &z);
    free_pair(&z);
    free_pair(&p);
    fail_every_allocation("digits, split, loader", digits_split_loader, NULL);
    fail_every_allocation("csv targets, split, loader", csv_targets_load_free, NULL);
}

/* NULL handles and arguments are errors, never crashes. */
static void test_null_and_accessors(void **state)
{
    (void)state;
    assert_int_equal(nb_dataset_count(NULL), 0);
    assert_int_equal(nb_dataset_features(NULL), 0);
    assert_int_equal(nb_dataset_classes(NULL), 0);
    assert_true(isnan(nb_dataset_get(NULL, 0, 0)));
    assert_int_equal(nb_dataset_label(NULL, 0), -1);
    assert_null(nb_dataset_feature_data(NULL));
    nb_dataset_free(NULL);
    assert_int_equal(nb_dataset_scale(NULL, 1), NB_ERR_NULL);
    assert_int_equal(nb_dataset_set_image_shape(NULL, 1, 1), NB_ERR_NULL);
    nb_dataset *ds = NULL;
    assert_int_equal(nb_dataset_from(NULL, 2, 0, NULL, NULL, &ds), NB_ERR_ARG);
    assert_int_equal(nb_dataset_from(NULL, -1, 2, NULL, NULL, &ds), NB_ERR_ARG);
    assert_int_equal(nb_dataset_from(NULL, INT64_MAX, 8, NULL, NULL, &ds), NB_ERR_ARG);
    assert_int_equal(
        nb_dataset_from(&(nb_data_opts){.n_classes = 2}, 2, 1, NULL, (int64_t[]){0, 2}, &ds),
        NB_ERR_ARG);
    assert_null(ds);
    assert_int_equal(nb_dataset_from(NULL, 3, 6, NULL, NULL, &ds), NB_OK);
    assert_int_equal(nb_dataset_set_image_shape(ds, 2, 2), NB_ERR_SHAPE);
    assert_int_equal(nb_dataset_set_image_shape(ds, 1, 3), NB_OK);
    int64_t c;
    nb_dataset_image_shape(ds, &c, NULL, NULL);
    assert_int_equal(c, 2);
    assert_true(isnan(nb_dataset_get(ds, 3, 0)));
    assert_true(isnan(nb_dataset_get(ds, 0, 6)));
    assert_int_equal(nb_dataset_label(ds, -1), -1);
    nb_dataset_free(ds);
    nb_graph *g = nb_graph_new();
    assert_null(nb_batch_tensor(g, NULL));
    assert_int_equal(nb_graph_status(g), NB_ERR_NULL);
    nb_graph_free(g);
    assert_false(nb_loader_next(NULL, NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_round_trip),
        cmocka_unit_test(test_csv_options),
        cmocka_unit_test(test_csv_malformed),
        cmocka_unit_test(test_csv_no_crash),
        cmocka_unit_test(test_csv_files),
        cmocka_unit_test(test_idx_round_trip),
        cmocka_unit_test(test_idx_malformed),
        cmocka_unit_test(test_fashion_mnist_if_installed),
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_loader_epochs),
        cmocka_unit_test(test_loader_shuffle_seeds),
        cmocka_unit_test(test_loader_shard),
        cmocka_unit_test(test_loader_no_malloc_per_batch),
        cmocka_unit_test(test_normalisation),
        cmocka_unit_test(test_augment_flip),
        cmocka_unit_test(test_augment_shift_crop),
        cmocka_unit_test(test_augment_noise_and_loader),
        cmocka_unit_test(test_dataset_targets),
        cmocka_unit_test(test_csv_targets),
        cmocka_unit_test(test_alloc_failure),
        cmocka_unit_test(test_null_and_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
