/* The nabla command, run as a user would: real arguments, output parsed and
 * checked, bad arguments give one line on stderr and exit status 2. The
 * path of the nabla binary is argv[1]. */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tc.h"

static const char *nabla;

typedef tc_run_result run_result;

/* Run "nabla ARGS" and capture what it printed. */
static run_result *run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s", nabla, args);
    return tc_run(cmd);
}

/* The number after "key": in a JSON line (NAN when absent). */
static double json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* Line k (0-based) of text into buf. */
static const char *line_of(const char *text, int k, char *buf, size_t n)
{
    for (; k > 0 && text; k--) {
        text = strchr(text, '\n');
        if (text)
            text++;
    }
    assert_non_null(text);
    size_t len = strcspn(text, "\n");
    assert_true(len < n);
    memcpy(buf, text, len);
    buf[len] = '\0';
    return buf;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void test_modes(void **state)
{
    (void)state;
    run_result *r = run("modes --n 50 --m 3 --json");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 2);
    char fwd[512], rev[512];
    line_of(r->out, 0, fwd, sizeof fwd);
    line_of(r->out, 1, rev, sizeof rev);
    assert_non_null(strstr(fwd, "\"mode\": \"forward\""));
    assert_non_null(strstr(rev, "\"mode\": \"reverse\""));
    assert_true(json_num(fwd, "sweeps") == 50 && json_num(rev, "sweeps") == 3);
    assert_true(json_num(fwd, "max_abs_diff") < 1e-12);
    /* forward mode pays per input, reverse per output */
    assert_true(json_num(fwd, "evals") > 5 * json_num(rev, "evals"));
    r = run("modes --n 2 --m 40");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "forward mode is the cheaper one"));
}

static void test_gradcheck(void **state)
{
    (void)state;
    run_result *r = run("gradcheck --op div --json");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 3); /* three broadcast cases */
    char line[512];
    for (int k = 0; k < 3; k++) {
        line_of(r->out, k, line, sizeof line);
        assert_non_null(strstr(line, "\"op\": \"div\""));
        assert_non_null(strstr(line, "\"pass\": true"));
        assert_true(json_num(line, "max_abs_err") < 1e-6);
        assert_true(json_num(line, "entries") > 0);
    }
    r = run("gradcheck --op softmax-ce --json");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 1);
    line_of(r->out, 0, line, sizeof line);
    assert_non_null(strstr(line, "\"pass\": true"));
    assert_true(json_num(line, "entries") == 12);
    r = run("gradcheck --fast");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "composites"));
    assert_non_null(strstr(r->out, "gelu-tanh"));
    assert_non_null(strstr(r->out, ", 0 failed"));
    assert_null(strstr(r->out, "FAIL"));
}

static void test_demo(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-demo-XXXXXX", cmd[256], path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/loss.svg", dir);
    snprintf(cmd, sizeof cmd, "demo --epochs 12 --plot %s", path);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    /* the notes' examples: (x+y)z at (-2,5,-4), sigma(wx+b) at 1,0,0 */
    const char *p = strstr(r->out, "df/dx = ");
    assert_non_null(p);
    assert_true(strtod(p + 8, NULL) == -4);
    p = strstr(r->out, "df/dz = ");
    assert_non_null(p);
    assert_true(strtod(p + 8, NULL) == 3);
    p = strstr(r->out, "forward mode: df/dw = ");
    assert_non_null(p);
    assert_true(strtod(p + 22, NULL) == 0.25);
    /* the digits network learns, and its gradients check */
    p = strstr(r->out, "; test accuracy ");
    assert_non_null(p);
    assert_true(strtod(p + 16, NULL) > 85);
    assert_non_null(strstr(r->out, "-> PASSED"));

    /* the loss curve as SVG: well-formed XML with one point per epoch */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char svg[1 << 16];
    size_t n = fread(svg, 1, sizeof svg - 1, f);
    svg[n] = '\0';
    fclose(f);
    assert_non_null(strstr(svg, "<svg"));
    const char *pts = strstr(svg, "points=\"");
    assert_non_null(pts);
    int commas = 0;
    for (pts += 8; *pts != '"'; pts++)
        commas += *pts == ',';
    assert_int_equal(commas, 12);
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "xmllint --noout %s", path);
        assert_int_equal(system(cmd), 0);
    }
    /* a directory that does not exist: an error, not a crash */
    r = run("demo --epochs 1 --plot /nonexistent-dir/loss.svg");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "/nonexistent-dir/loss.svg"));
    remove(path);
    rmdir(dir);
}

/* The number after "label" in text (NAN when absent). */
static double number_after(const char *text, const char *label)
{
    const char *p = strstr(text, label);
    return p ? strtod(p + strlen(label), NULL) : NAN;
}

static void test_diff(void **state)
{
    (void)state;
    run_result *r = run("diff 'ln(x) + x^2*y - sin(x*y)' --at x=1.5,y=2 --json");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 2);
    char line[1024];
    double x = 1.5, y = 2;
    double want[2] = {1 / x + 2 * x * y - y * cos(x * y), x * x - x * cos(x * y)};
    for (int k = 0; k < 2; k++) {
        line_of(r->out, k, line, sizeof line);
        assert_non_null(strstr(line, k == 0 ? "\"wrt\": \"x\"" : "\"wrt\": \"y\""));
        assert_true(fabs(json_num(line, "value") - (log(x) + x * x * y - sin(x * y))) < 1e-12);
        assert_true(fabs(json_num(line, "reverse") - want[k]) < 1e-12);
        assert_true(fabs(json_num(line, "forward") - want[k]) < 1e-12);
        assert_true(fabs(json_num(line, "symbolic") - want[k]) < 1e-12);
        assert_true(fabs(json_num(line, "numerical") - want[k]) < 1e-7);
        assert_true(json_num(line, "tape_ops") > 0 && json_num(line, "dag_nodes") > 0);
    }
    line_of(r->out, 0, line, sizeof line);
    assert_non_null(strstr(line, "\"derivative\": \"1/x + 2*x*y - y*cos(x*y)\""));

    /* the table, and the graph as DOT */
    char dir[] = "/tmp/nabla-diff-XXXXXX", cmd[256], path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/g.dot", dir);
    snprintf(cmd, sizeof cmd, "diff 'x*y + sin(x)' --at x=0,y=3 --wrt y --dot %s", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_true(number_after(r->out, "value ") == 0);
    assert_non_null(strstr(r->out, "df/dy = x"));
    assert_null(strstr(r->out, "df/dx"));
    if (system("command -v dot >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "dot -Tsvg -o /dev/null %s", path);
        assert_int_equal(system(cmd), 0);
    }
    remove(path);
    rmdir(dir);
}

static void test_trace(void **state)
{
    (void)state;
    /* the notes' logistic unit at x=1, w=0, b=0 */
    run_result *r = run("trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0 --json");
    assert_int_equal(r->status, 0);
    int rows = count_lines(r->out);
    assert_true(rows > 10);
    /* the reverse sweep's local derivatives from the output back are the
     * notes' chain 1 x -0.25 x 1 x 1 x -1 x 1, and the adjoints of w, b are 0.25 */
    double locals[16];
    int n_locals = 0;
    double gw = NAN, gb = NAN, gx = NAN;
    char line[512];
    for (int k = 0; k < rows; k++) {
        line_of(r->out, k, line, sizeof line);
        if (!strstr(line, "\"sweep\": \"reverse\""))
            continue;
        if (n_locals < 16)
            locals[n_locals++] = json_num(line, "local");
        if (strstr(line, "\"to\": \"w\""))
            gw = json_num(line, "adjoint_to");
        if (strstr(line, "\"to\": \"b\""))
            gb = json_num(line, "adjoint_to");
        if (strstr(line, "\"to\": \"x\""))
            gx = json_num(line, "adjoint_to");
    }
    assert_true(gw == 0.25 && gb == 0.25 && gx == 0.0);
    bool saw_quarter = false, saw_minus_one = false;
    for (int i = 0; i < n_locals; i++) {
        saw_quarter |= locals[i] == -0.25;
        saw_minus_one |= locals[i] == -1.0;
    }
    assert_true(saw_quarter && saw_minus_one);
    /* the evaluation trace is the notes' h1..h6, h6 = 1/h5 = 0.5 */
    assert_true(n_locals == 8); /* g_h5 .. g_h1 and g_b, g_w, g_x: constants get none */
    /* forward mode: the tangent of w reaches the output as 0.25 */
    r = run("trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0");
    assert_int_equal(r->status, 0);
    assert_true(number_after(r->out, "df/dw = ") == 0.25);
    assert_true(number_after(r->out, "df/db = ") == 0.25);
    assert_non_null(strstr(r->out, "g_h5 = -0.25"));
    assert_non_null(strstr(r->out, "h6    = div(1, h5)"));
    assert_null(strstr(r->out, "h7"));
    assert_non_null(strstr(r->out, "nb_backward agrees"));
}

static void test_plot(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-plot-XXXXXX", cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "plot activations --out %s", dir);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    int files = count_lines(r->out);
    assert_true(files >= 17);
    char line[256];
    for (int k = 0; k < files; k++) {
        line_of(r->out, k, line, sizeof line);
        FILE *f = fopen(line, "r");
        assert_non_null(f);
        static char svg[1 << 16];
        size_t n = fread(svg, 1, sizeof svg - 1, f);
        svg[n] = '\0';
        fclose(f);
        assert_non_null(strstr(svg, "</svg>"));
        assert_non_null(strstr(svg, "d/dx"));
        if (system("command -v xmllint >/dev/null 2>&1") == 0) {
            snprintf(cmd, sizeof cmd, "xmllint --noout %s", line);
            assert_int_equal(system(cmd), 0);
        }
        remove(line);
    }
    rmdir(dir);
}

static void test_train_eval(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-train-XXXXXX", cmd[512], ckpt[128], ckpt2[128], svg[128];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/a.ckpt", dir);
    snprintf(ckpt2, sizeof ckpt2, "%s/b.ckpt", dir);
    snprintf(svg, sizeof svg, "%s/curve.svg", dir);

    /* six epochs straight, with JSON lines, a plot and a checkpoint */
    snprintf(cmd, sizeof cmd, "train --epochs 6 --layers 32 --json --save %s --plot %s", ckpt, svg);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 6);
    static char straight[6][512];
    for (int k = 0; k < 6; k++) {
        line_of(r->out, k, straight[k], sizeof straight[k]);
        assert_true(json_num(straight[k], "epoch") == k + 1);
        assert_true(json_num(straight[k], "test_acc") > 0.1);
        assert_non_null(strstr(straight[k], "\"val_acc\": null")); /* no validation set */
    }
    assert_true(json_num(straight[5], "loss") < json_num(straight[0], "loss"));
    assert_true(json_num(straight[5], "test_acc") > 0.8);
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "xmllint --noout %s", svg);
        assert_int_equal(system(cmd), 0);
    }

    /* eval of the saved model gives the last epoch's test accuracy */
    snprintf(cmd, sizeof cmd, "eval --load %s --json", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    char line[512];
    line_of(r->out, 0, line, sizeof line);
    assert_true(json_num(line, "test_acc") == json_num(straight[5], "test_acc"));
    assert_true(json_num(line, "samples") == 297);

    /* the weights as safetensors: eval reads its metadata and agrees too */
    char st[128];
    snprintf(st, sizeof st, "%s/m.safetensors", dir);
    snprintf(cmd, sizeof cmd, "train --epochs 6 --layers 32 --json --save %s", st);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    snprintf(cmd, sizeof cmd, "eval --load %s --json", st);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    line_of(r->out, 0, line, sizeof line);
    assert_true(json_num(line, "test_acc") == json_num(straight[5], "test_acc"));
    remove(st);

    /* four epochs, then resumed to six: the same epochs 5 and 6 */
    snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 32 --json --save %s", ckpt2);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 6 --layers 32 --json --resume %s", ckpt2);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 2);
    for (int k = 0; k < 2; k++) {
        line_of(r->out, k, line, sizeof line);
        assert_true(json_num(line, "epoch") == 5 + k);
        assert_true(json_num(line, "loss") == json_num(straight[4 + k], "loss"));
        assert_true(json_num(line, "test_acc") == json_num(straight[4 + k], "test_acc"));
    }

    /* early stopping holds out a validation set */
    r = run("train --epochs 3 --layers 16 --early-stop 1 --opt adam");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "val "));

    /* a corrupt checkpoint: a clear error, exit 2 */
    FILE *f = fopen(ckpt, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "eval --load %s", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_int_equal(count_lines(r->err), 1);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --load %s", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    remove(ckpt);
    remove(ckpt2);
    remove(svg);
    rmdir(dir);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *bad[] = {
        "",                    /* no command */
        "frobnicate",          /* unknown command */
        "demo --bogus",        /* unknown option */
        "demo --seed",         /* missing value */
        "demo --epochs 0",     /* out of range */
        "modes --n abc",       /* not a number */
        "modes --m 1e99",      /* not a whole number */
        "gradcheck --op nope", /* unknown op */
        "modes extra",         /* stray argument */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        run_result *r = run(bad[i]);
        if (r->status != 2)
            fprintf(stderr, "'nabla %s' exited %d\n", bad[i], r->status);
        assert_int_equal(r->status, 2);
        if (i > 0) { /* one line naming the problem */
            assert_int_equal(count_lines(r->err), 1);
            assert_non_null(strstr(r->err, "nabla"));
        }
    }
    run_result *r = run("modes --help");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "usage: nabla modes"));
}

/* A command given a directory or a FIFO where it reads or writes a file
 * says so at once (timeout: a command that waits on the FIFO fails the
 * test), with exit status 2 (1 when found while training), and leaves
 * them as they were. */
static void refuses(const char *args, const char *what)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "timeout 20 '%s' %s", nabla, args);
    run_result *r = tc_run(cmd);
    if ((r->status != 1 && r->status != 2) || !strstr(r->err, what))
        fail_msg("nabla %s: status %d, stderr '%s' (want 1 or 2 and '%s')", args, r->status, r->err,
                 what);
}

static void test_special_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-special-XXXXXX", cmd[512], adir[128], fifo[128], fifo_csv[128],
         null[128];
    assert_non_null(mkdtemp(dir));
    snprintf(adir, sizeof adir, "%s/adir.csv", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(fifo_csv, sizeof fifo_csv, "%s/fifo.csv", dir);
    snprintf(null, sizeof null, "%s/null", dir);
    assert_int_equal(mkdir(adir, 0755), 0);
    assert_int_equal(mkfifo(fifo, 0644), 0);
    assert_int_equal(mkfifo(fifo_csv, 0644), 0);
    assert_int_equal(symlink("/dev/null", null), 0);

    const struct {
        const char *args, *path, *what;
    } cases[] = {
        /* reading */
        {"train --data ", adir, "adir.csv is a directory, not a regular file"},
        {"train --data ", fifo_csv, "fifo.csv is a FIFO, not a regular file"},
        {"train --epochs 1 --layers 8 --load ", fifo, "fifo is a FIFO, not a regular file"},
        {"train --epochs 1 --layers 8 --resume ", fifo, "fifo is a FIFO, not a regular file"},
        {"eval --load ", fifo, "fifo is a FIFO, not a regular file"},
        {"eval --load ", adir, "adir.csv is a directory, not a regular file"},
        {"export --c /dev/null --load ", fifo, "fifo is a FIFO, not a regular file"},
        /* writing: a directory and a FIFO with no reader are refused */
        {"train --epochs 1 --layers 8 --save ", adir, "adir.csv is a directory"},
        {"train --epochs 1 --layers 8 --plot ", adir, "adir.csv is a directory"},
        {"train --epochs 1 --layers 8 --save ", fifo, "fifo is a FIFO with no reader"},
        {"trace 'x*y' --at x=1,y=2 --dot ", adir, "adir.csv is a directory"},
        {"diff 'x*y' --at x=1,y=2 --wrt x --dot ", fifo, "fifo is a FIFO with no reader"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s%s", cases[k].args, cases[k].path);
        refuses(cmd, cases[k].what);
    }
    struct stat sb;
    assert_int_equal(lstat(adir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));

    /* a link to /dev/null: written through, and still a link */
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --save %s --plot %s", null, null);
    assert_int_equal(run(cmd)->status, 0);
    assert_int_equal(lstat(null, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(stat("/dev/null", &sb), 0);
    assert_true(S_ISCHR(sb.st_mode));

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cli PATH-OF-NABLA\n");
        return 2;
    }
    nabla = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),      cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_demo),       cmocka_unit_test(test_diff),
        cmocka_unit_test(test_trace),      cmocka_unit_test(test_plot),
        cmocka_unit_test(test_train_eval), cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_special_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
