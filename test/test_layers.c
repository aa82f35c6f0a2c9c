/* The layers of the source tree point one way (docs/architecture.md):
 *
 *   core <- ops <- autodiff <- nn, optim, check, sym, teach
 *   core <- io <- data;  nn, optim, check, data <- the trainer <- dist;  everything <- cli
 *
 * Every #include "..." line of src/ and include/ is read and the file it
 * names placed in a layer; an include that points against the order fails
 * the test, named by file and line. argv[1] is the top of the source
 * tree. */

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tc.h"

static const char *top;

enum layer {
    CORE,
    OPS,
    AUTODIFF,
    NN,
    OPTIM,
    CHECK,
    SYM,
    TEACH,
    IO,
    DATA,
    TRAINER,
    DIST,
    CLI,
    UMBRELLA,
    N_LAYERS,
    UNKNOWN = -1
};
static const char *const layer_names[N_LAYERS] = {"core",
                                                  "ops",
                                                  "autodiff",
                                                  "nn",
                                                  "optim",
                                                  "check",
                                                  "sym",
                                                  "teach",
                                                  "io",
                                                  "data",
                                                  "trainer",
                                                  "dist",
                                                  "cli",
                                                  "the umbrella nabla.h"};

/* may[a] holds the layers a file of layer a may include (its own too) */
#define L(x) (1u << (x))
static const unsigned may[N_LAYERS] = {
    [CORE] = L(CORE),
    [OPS] = L(CORE) | L(OPS),
    [AUTODIFF] = L(CORE) | L(OPS) | L(AUTODIFF),
    [NN] = L(CORE) | L(OPS) | L(AUTODIFF) | L(NN),
    [OPTIM] = L(CORE) | L(OPS) | L(AUTODIFF) | L(OPTIM),
    [CHECK] = L(CORE) | L(OPS) | L(AUTODIFF) | L(CHECK),
    [SYM] = L(CORE) | L(OPS) | L(AUTODIFF) | L(SYM),
    [TEACH] = L(CORE) | L(OPS) | L(AUTODIFF) | L(TEACH),
    [IO] = L(CORE) | L(IO),
    [DATA] = L(CORE) | L(IO) | L(DATA),
    [TRAINER] =
        L(CORE) | L(OPS) | L(AUTODIFF) | L(NN) | L(OPTIM) | L(CHECK) | L(IO) | L(DATA) | L(TRAINER),
    [DIST] = L(CORE) | L(OPS) | L(AUTODIFF) | L(NN) | L(OPTIM) | L(CHECK) | L(IO) | L(DATA) |
             L(TRAINER) | L(DIST),
    [CLI] = (1u << N_LAYERS) - 1,
    [UMBRELLA] = (1u << N_LAYERS) - 1,
};

/* The layer of a file given by its path from the top of the tree. */
static int layer_of(const char *path)
{
    static const struct {
        const char *prefix;
        int layer;
    } rooms[] = {
        {"src/train/", TRAINER},
        {"include/nabla/train.h", TRAINER},
        {"include/nabla/ckpt.h", TRAINER},
        {"include/nabla/modelcheck.h", TRAINER},
        {"src/core/", CORE},
        {"src/ops/", OPS},
        {"src/autodiff/", AUTODIFF},
        {"src/nn/", NN},
        {"src/optim/", OPTIM},
        {"src/check/", CHECK},
        {"src/sym/", SYM},
        {"src/teach/", TEACH},
        {"src/io/", IO},
        {"src/data/", DATA},
        {"src/dist/", DIST},
        {"src/cli/", CLI},
        {"include/nabla/base.h", CORE},
        {"include/nabla/tensor.h", CORE},
        {"include/nabla/meta.h", CORE},
        {"include/nabla/ops.h", OPS},
        {"include/nabla/op.h", OPS},
        {"include/nabla/autodiff.h", AUTODIFF},
        {"include/nabla/nn.h", NN},
        {"include/nabla/optim.h", OPTIM},
        {"include/nabla/check.h", CHECK},
        {"include/nabla/sym.h", SYM},
        {"include/nabla/teach.h", TEACH},
        {"include/nabla/safetensors.h", IO},
        {"include/nabla/data.h", DATA},
        {"include/nabla/dist.h", DIST},
        {"include/nabla.h", UMBRELLA},
    };
    for (size_t i = 0; i < sizeof rooms / sizeof *rooms; i++)
        if (!strncmp(path, rooms[i].prefix, strlen(rooms[i].prefix)))
            return rooms[i].layer;
    return UNKNOWN;
}

/* Lexically normalise a/b/../c into out (no file system access). */
static void normalise(const char *path, char *out, size_t n)
{
    char buf[1024], *parts[64];
    int k = 0;
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, "."))
            continue;
        if (!strcmp(t, "..") && k > 0 && strcmp(parts[k - 1], ".."))
            k--;
        else if (k < 64)
            parts[k++] = t;
    }
    out[0] = '\0';
    for (int i = 0; i < k; i++)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "/" : "", parts[i]);
}

static bool exists(const char *rel)
{
    char full[2048];
    struct stat sb;
    snprintf(full, sizeof full, "%s/%s", top, rel);
    return stat(full, &sb) == 0;
}

/* Where the include "inc" of file rel resolves: beside the file, else
 * under include/. */
static void resolve(const char *rel, const char *inc, char *out, size_t n)
{
    char joined[1024];
    const char *slash = strrchr(rel, '/');
    snprintf(joined, sizeof joined, "%.*s/%s", slash ? (int)(slash - rel) : 0, rel, inc);
    normalise(joined, out, n);
    if (!exists(out)) {
        snprintf(joined, sizeof joined, "include/%s", inc);
        normalise(joined, out, n);
    }
}

/* A verdict on one include: NULL when it keeps to the order, otherwise a
 * sentence in why. */
static const char *judge(const char *rel, const char *inc, char *why, size_t n)
{
    char target[1024];
    resolve(rel, inc, target, sizeof target);
    int from = layer_of(rel), to = layer_of(target);
    if (from == UNKNOWN) {
        snprintf(why, n, "%s is in no layer (add its folder to layer_of)", rel);
        return why;
    }
    if (to == UNKNOWN || (may[from] & L(to)))
        return NULL; /* a file of no layer: a system or test header */
    snprintf(why, n, "includes \"%.200s\": %s may not include %s (%.300s)", inc, layer_names[from],
             layer_names[to], target);
    return why;
}

typedef struct scan {
    int new_arrows, files, includes;
    char report[8192];
} scan;

static void scan_file(scan *s, const char *rel)
{
    char full[2048], line[1024], why[1024];
    snprintf(full, sizeof full, "%s/%s", top, rel);
    FILE *f = fopen(full, "r");
    if (!f)
        fail_msg("cannot open %s", full);
    s->files++;
    for (int no = 1; fgets(line, sizeof line, f); no++) {
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '#')
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "include", 7))
            continue;
        const char *q = strchr(p, '"'), *e = q ? strchr(q + 1, '"') : NULL;
        if (!q || !e)
            continue; /* <system.h> */
        char inc[512];
        snprintf(inc, sizeof inc, "%.*s", (int)(e - q - 1), q + 1);
        s->includes++;
        if (!judge(rel, inc, why, sizeof why))
            continue;
        s->new_arrows++;
        snprintf(s->report + strlen(s->report), sizeof s->report - strlen(s->report), "%s:%d: %s\n",
                 rel, no, why);
    }
    fclose(f);
}

static void scan_dir(scan *s, const char *rel)
{
    char full[2048];
    snprintf(full, sizeof full, "%s/%s", top, rel);
    DIR *d = opendir(full);
    if (!d)
        fail_msg("cannot open the folder %s", full);
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (e->d_name[0] == '.')
            continue;
        char child[1024];
        snprintf(child, sizeof child, "%s/%s", rel, e->d_name);
        size_t len = strlen(e->d_name);
        struct stat sb;
        snprintf(full, sizeof full, "%s/%s", top, child);
        if (stat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            scan_dir(s, child);
        else if (len > 2 &&
                 (!strcmp(e->d_name + len - 2, ".c") || !strcmp(e->d_name + len - 2, ".h")))
            scan_file(s, child);
    }
    closedir(d);
}

/* The tree keeps to the order. */
static void test_tree(void **state)
{
    (void)state;
    scan *s = calloc(1, sizeof *s);
    assert_non_null(s);
    scan_dir(s, "src");
    scan_dir(s, "include");
    assert_true(s->files > 50 && s->includes > 100); /* the tree was read */
    if (s->report[0])
        fail_msg("includes against the layers (%d new):\n%s", s->new_arrows, s->report);
    free(s);
}

/* The judge itself: arrows down pass, arrows up fail, whatever the path. */
static void test_judge(void **state)
{
    (void)state;
    char why[1024];
    assert_null(judge("src/ops/matmul.c", "../core/internal.h", why, sizeof why));
    assert_null(judge("src/autodiff/reverse.c", "../ops/table.h", why, sizeof why));
    assert_null(judge("src/data/dataset.c", "../io/file.h", why, sizeof why));
    assert_null(judge("src/train/train.c", "nabla/data.h", why, sizeof why));
    assert_null(judge("src/cli/cmd_train.c", "nabla.h", why, sizeof why));
    assert_null(judge("src/train/modelcheck.c", "../check/check_internal.h", why, sizeof why));
    assert_null(judge("include/nabla/modelcheck.h", "check.h", why, sizeof why));
    assert_non_null(judge("src/check/gradcheck.c", "nabla/modelcheck.h", why, sizeof why));
    assert_non_null(strstr(why, "check may not include trainer"));
    assert_non_null(judge("src/check/gradcheck.c", "nabla/nn.h", why, sizeof why));
    assert_non_null(judge("src/nn/layer.c", "../check/check_internal.h", why, sizeof why));
    assert_null(judge("src/core/tensor.c", "internal.h", why, sizeof why));
    assert_non_null(judge("src/core/tensor.c", "../ops/table.h", why, sizeof why));
    assert_non_null(strstr(why, "core may not include ops"));
    assert_non_null(judge("src/io/writer.c", "nabla/nn.h", why, sizeof why));
    assert_non_null(strstr(why, "io may not include nn"));
    assert_non_null(judge("src/nn/layers.c", "nabla/train.h", why, sizeof why));
    /* dist sits above the trainer: it fills the trainer's collectives */
    assert_null(judge("src/dist/dist_internal.h", "nabla/dist.h", why, sizeof why));
    assert_null(judge("include/nabla/dist.h", "train.h", why, sizeof why));
    assert_non_null(judge("src/train/train.c", "nabla/dist.h", why, sizeof why));
    assert_non_null(strstr(why, "trainer may not include dist"));
    assert_non_null(judge("src/data/loader.c", "../dist/dist_internal.h", why, sizeof why));
    assert_non_null(judge("src/optim/optim.c", "../nn/nn_internal.h", why, sizeof why));
    assert_non_null(judge("src/data/loader.c", "nabla.h", why, sizeof why));
    assert_non_null(strstr(why, "the umbrella nabla.h"));
    assert_non_null(judge("src/io/file.c", "../cli/cli.h", why, sizeof why));
    assert_non_null(judge("src/newroom/x.c", "../core/internal.h", why, sizeof why));
    assert_non_null(strstr(why, "in no layer"));
    /* the arrows that once pointed the wrong way would fail again */
    static const char *const once[][2] = {
        {"src/io/ckpt.c", "../optim/optim_internal.h"},
        {"include/nabla/safetensors.h", "ckpt.h"},
        {"include/nabla/safetensors.h", "nn.h"},
        {"src/io/meta.c", "nabla/nn.h"},
        {"src/io/csv.c", "../data/data_internal.h"},
        {"src/ops/apply.c", "../autodiff/sweep.h"},
        {"src/core/internal.h", "nabla.h"},
        {"src/core/internal.h", "nabla/op.h"},
        {"src/data/data_internal.h", "nabla.h"},
        {"src/optim/optim_internal.h", "nabla/ckpt.h"},
    };
    for (size_t i = 0; i < sizeof once / sizeof *once; i++)
        if (!judge(once[i][0], once[i][1], why, sizeof why))
            fail_msg("%s including \"%s\" was not refused", once[i][0], once[i][1]);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_layers SOURCE_ROOT\n");
        return 2;
    }
    top = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
