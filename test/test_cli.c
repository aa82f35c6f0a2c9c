/* The nabla command, run as a user would: real arguments, output parsed and
 * checked, bad arguments give one line on stderr and exit status 2. The
 * path of the nabla binary is argv[1]. */

#include <math.h>
#include <pty.h>
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
    assert_non_null(strstr(line, "\"cause\": \"agree\""));
    assert_true(json_num(line, "ms") >= 0);
    assert_true(json_num(line, "entries") == 12);
    /* --verbose: the full report of every case, composites too */
    r = run("gradcheck --op gelu --verbose");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "gelu "));
    assert_non_null(strstr(r->out, "gradcheck PASSED (full mode)"));
    assert_non_null(strstr(r->out, "worst entry: 'input 0'["));
    r = run("gradcheck --op mse --verbose --json");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 1); /* stdout stays JSON */
    assert_non_null(strstr(r->err, "gradcheck PASSED (full mode)"));
    r = run("gradcheck --op gelu");
    assert_null(strstr(r->out, "gradcheck PASSED"));
    r = run("gradcheck --fast");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "composites"));
    assert_non_null(strstr(r->out, "gelu-tanh"));
    assert_non_null(strstr(r->out, ", 0 failed"));
    assert_null(strstr(r->out, "FAIL"));
}

/* nabla gradcheck --model: a model saved by nabla train passes, in f64 on
 * its twin, on random rows or a data set's; all-zero weights behind ReLU
 * give the warning and exit status 1; misuse is refused with one line. */
static void test_gradcheck_model(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-mcheck-XXXXXX", cmd[512], ckpt[128], zero[128];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
    snprintf(zero, sizeof zero, "%s/zero.ckpt", dir);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --save %s", ckpt);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);

    snprintf(cmd, sizeof cmd, "gradcheck --model %s", ckpt);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("%s%s", r->out, r->err);
    assert_non_null(strstr(r->out, "on 8 rows drawn from N(0, 1) (seed 1)"));
    assert_non_null(strstr(r->out, "model check PASSED"));
    assert_non_null(strstr(r->out, "evaluated in f64 (an f64 twin of the f32 network)"));
    /* fc1 64x8 + 8, fc2 8x10 + 10 */
    assert_non_null(strstr(r->out, "4 parameters, 610 of 610 entries"));
    assert_non_null(strstr(r->out, "worst entry: 'fc"));

    snprintf(cmd, sizeof cmd, "gradcheck --model %s --data digits --batch 4 --seed 3 --json", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 1);
    char line[2048];
    line_of(r->out, 0, line, sizeof line);
    assert_non_null(strstr(line, "\"pass\": true"));
    assert_non_null(strstr(line, "\"warning\": false"));
    assert_non_null(strstr(line, "\"cause\": \"agree\""));
    assert_non_null(strstr(line, "\"dtype\": \"f64\", \"twin\": true"));
    assert_non_null(strstr(line, "\"worst_param\": \"fc"));
    assert_true(json_num(line, "rows") == 4 && json_num(line, "entries") == 610);
    assert_true(json_num(line, "max_abs_err") < 1e-6 && json_num(line, "worst_index") >= 0);
    snprintf(cmd, sizeof cmd, "gradcheck --model %s --max-entries 5 --json", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_true(json_num(r->out, "entries") == 20 && json_num(r->out, "total") == 610);

    /* all-zero weights behind ReLU, no biases: nothing moves f */
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.init = NB_INIT_ZEROS;
    o.layer.no_bias = true;
    assert_int_equal(nb_mlp_new(m, NULL, (int64_t[]){64, 8, 10}, 3, &o, &net), NB_OK);
    char desc[1024];
    assert_int_equal(nb_layer_describe(net, desc, sizeof desc, NULL), NB_OK);
    nb_ckpt_opts co = {.meta = desc};
    assert_int_equal(nb_model_save(m, NULL, zero, &co, NULL), NB_OK);
    nb_layer_free(net);
    nb_model_free(m);
    snprintf(cmd, sizeof cmd, "gradcheck --model %s", zero);
    r = run(cmd);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "model check WARNING: nothing you checked depends on the "
                                   "inputs you gave"));
    assert_null(strstr(r->out, "PASSED"));
    snprintf(cmd, sizeof cmd, "gradcheck --model %s --json", zero);
    r = run(cmd);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "\"pass\": false, \"warning\": true"));
    assert_non_null(strstr(r->out, "\"cause\": \"zero\""));

    /* misuse: one line, exit status 2 */
    const char *bad[][2] = {
        {"gradcheck --batch 4", "--batch goes with --model FILE"},
        {"gradcheck --data digits", "--data goes with --model FILE"},
        {"gradcheck --max-entries 3", "--max-entries goes with --model FILE"},
        {"gradcheck --model x.ckpt --op add", "--op checks the built-in ops, not a model"},
        {"gradcheck --model x.ckpt --fast", "--fast checks the built-in ops"},
        {"gradcheck --model x.ckpt --batch 0", "--batch needs a whole number from 1"},
        {"gradcheck --model /nonexistent/none.ckpt", "cannot read"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = run(bad[i][0]);
        if (r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, bad[i][1]))
            fail_msg("'nabla %s': status %d, stderr %s", bad[i][0], r->status, r->err);
    }
    /* rows of another width than the model takes */
    char csv[128];
    snprintf(csv, sizeof csv, "%s/wide.csv", dir);
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fprintf(f, "a,b,label\n");
    for (int i = 0; i < 20; i++)
        fprintf(f, "%d,%d,%d\n", i, i * i % 7, i % 2);
    fclose(f);
    snprintf(cmd, sizeof cmd, "gradcheck --model %s --data %s", ckpt, csv);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "takes 64 features"));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
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

/* nabla diff's verdict: its exit status and the line that explains it. */
static void test_diff_verdicts(void **state)
{
    (void)state;
    /* a jump: numerical 1/h against 0 */
    run_result *r = run("diff 'sign(x)' --at x=0");
    assert_int_equal(r->status, 3);
    assert_non_null(strstr(r->out, "df/dx: f jumps at x = 0"));
    assert_non_null(strstr(r->out, "no derivative here"));
    /* a kink where all four agree on the convention's value */
    r = run("diff 'abs(x) + y' --at x=0,y=2 --json");
    assert_int_equal(r->status, 3);
    char line[1024];
    line_of(r->out, 0, line, sizeof line);
    assert_non_null(strstr(line, "\"verdict\": \"kink\""));
    assert_true(json_num(line, "left") == -1 || fabs(json_num(line, "left") + 1) < 1e-9);
    assert_true(fabs(json_num(line, "right") - 1) < 1e-9);
    line_of(r->out, 1, line, sizeof line);
    assert_non_null(strstr(line, "\"verdict\": \"agree\""));
    assert_non_null(strstr(r->err, "kink at x = 0"));
    /* central differences too coarse for the point: numerical is named */
    r = run("diff 'sin(x)' --at x=1e6");
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "numerical disagrees"));
    /* smooth: all agree, status 0 */
    r = run("diff 'x^3*y' --at x=2,y=0.5");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "agree"));
    /* smooth beside a large constant: rounding in f is neither a kink nor a
     * disagreement of the central differences; a real kink still is one */
    const char *smooth[] = {"diff 'x + 100000' --at x=0.142", "diff 'x^2 + 1000000' --at x=0.3",
                            "diff 'x*y + 100000' --at x=0.37,y=1.3"};
    for (size_t k = 0; k < sizeof smooth / sizeof *smooth; k++) {
        r = run(smooth[k]);
        if (r->status != 0)
            fail_msg("'nabla %s': status %d: %s", smooth[k], r->status, r->out);
    }
    r = run("diff 'abs(x) + 100000' --at x=0");
    assert_int_equal(r->status, 3);
    /* variables f does not use: derivative exactly 0 */
    r = run("diff 'x^2' --at x=1,y=2 --wrt x,y,z --json");
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 3);
    for (int k = 1; k < 3; k++) {
        line_of(r->out, k, line, sizeof line);
        assert_non_null(strstr(line, k == 1 ? "\"wrt\": \"y\"" : "\"wrt\": \"z\""));
        assert_non_null(strstr(line, "\"verdict\": \"unused\""));
        assert_true(json_num(line, "reverse") == 0 && json_num(line, "forward") == 0);
        assert_true(json_num(line, "numerical") == 0 && json_num(line, "symbolic") == 0);
    }
    r = run("diff 'x^2' --at x=1,y=2");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "df/dy = 0: f does not use y"));
    r = run("diff 'x' --at x=1,2y=3");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "'2y' is not a variable name"));
    r = run("diff 'x' --at x=1 --wrt 'a-b'");
    assert_int_equal(r->status, 2);
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
    assert_non_null(strstr(r->out, "h6   = 1/h5"));
    assert_null(strstr(r->out, "-0 ")); /* no negative zero shown */
    assert_null(strstr(r->out, "h7"));
    assert_non_null(strstr(r->out, "nb_grad and nb_jvp agree"));
    /* as written: operands in order, the minus a negation */
    assert_non_null(strstr(r->out, "h2   = h1 + b"));
    assert_non_null(strstr(r->out, "h3   = -h2"));
    assert_non_null(strstr(r->out, "dh6/dw = \u2202h6/\u2202h5\u00b7dh5/dw = (-0.25)\u00b7(-1) = 0.25"));
}

/* --svg, --show, --wrt and --html: files written whole, every misuse refused
 * before anything is written */
static void test_trace_pictures(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-trace-XXXXXX", cmd[512], path[600];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "trace 'x*y - x' --at x=2,y=3 --svg %s/f.svg --show forward --wrt y "
                              "--html %s/f.html", dir, dir);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    snprintf(path, sizeof path, "%s/f.svg", dir);
    char *svg = tc_slurp("", path);
    assert_non_null(strstr(svg, ">h1 = x*y</text>"));
    assert_non_null(strstr(svg, ">\u1e6b = 2</text>")); /* d(x*y)/dy = x */
    free(svg);
    snprintf(path, sizeof path, "%s/f.html", dir);
    char *page = tc_slurp("", path);
    assert_non_null(strstr(page, "<title>f = x*y - x   at x = 2, y = 3</title>"));
    free(page);
    /* a formula without ops draws one box */
    snprintf(cmd, sizeof cmd, "trace x --at x=1 --html %s/x.html", dir);
    assert_int_equal(run(cmd)->status, 0);
    const struct {
        const char *args, *msg;
    } bad[] = {
        {"--svg %s/b.svg --show sideways", "--show: 'sideways' is not values, forward or reverse"},
        {"--svg %s/b.svg --show forward --wrt q", "--wrt: 'q' is not a variable of the expression"},
        {"--svg %s/b.svg --wrt x", "--wrt needs --svg FILE --show forward"},
        {"--show values --html %s/b.html", "--show needs --svg"},
        {"--svg %s", "is a directory"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[256];
        snprintf(args, sizeof args, bad[i].args, dir);
        snprintf(cmd, sizeof cmd, "trace 'x*y' --at x=1,y=2 %s", args);
        r = run(cmd);
        assert_int_equal(r->status, 2);
        assert_non_null(strstr(r->err, bad[i].msg));
        assert_string_equal(r->out, "");
    }
    snprintf(path, sizeof path, "%s/b.svg", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/b.html", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
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

/* An MLP on digits-sized inputs saved with metadata @p meta (its own
 * description when NULL); maxout with @p pieces when > 0. */
static void save_mlp(const char *path, int64_t pieces, const char *meta)
{
    nb_rng rng;
    nb_rng_seed(&rng, 3);
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    int64_t sizes[3] = {64, 12, 10};
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    nb_act_opts ao = nb_act_defaults(pieces > 0 ? NB_ACT_MAXOUT : NB_ACT_RELU);
    if (pieces > 0) {
        o.act = NB_ACT_MAXOUT;
        ao.pieces = pieces;
        o.act_opts = &ao;
    }
    assert_int_equal(nb_mlp_new(m, NULL, sizes, 3, &o, &net), NB_OK);
    char own[1024];
    assert_int_equal(nb_layer_describe(net, own, sizeof own, NULL), NB_OK);
    nb_ckpt_opts co = {.meta = meta ? meta : own};
    assert_int_equal(nb_model_save(m, NULL, path, &co, NULL), NB_OK);
    nb_layer_free(net);
    nb_model_free(m);
}

/* eval and export rebuild a model from its metadata alike, maxout pieces
 * included; nabla train trains maxout networks. */
static void test_maxout_models(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-maxout-XXXXXX", cmd[512], path[128], c_out[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    snprintf(c_out, sizeof c_out, "%s/m.c", dir);

    /* three pieces, as the metadata says (pieces=3): eval reads it */
    save_mlp(path, 3, NULL);
    snprintf(cmd, sizeof cmd, "eval --load %s --json", path);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("eval of a maxout model: %s", r->err);
    assert_true(json_num(r->out, "samples") == 297);

    /* nabla train --act maxout --pieces 3: eval and export read the result */
    snprintf(cmd, sizeof cmd,
             "train --act maxout --pieces 3 --layers 16 --epochs 2 --json --save %s", path);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("train --act maxout: %s", r->err);
    char last[512], line[512];
    line_of(r->out, 1, last, sizeof last);
    snprintf(cmd, sizeof cmd, "eval --load %s --json", path);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    line_of(r->out, 0, line, sizeof line);
    assert_true(json_num(line, "test_acc") == json_num(last, "test_acc"));
    assert_true(json_num(line, "test_acc") > 0.5);
    snprintf(cmd, sizeof cmd, "export --load %s --c %s", path, c_out);
    assert_int_equal(run(cmd)->status, 0);

    /* --pieces belongs to maxout; the list of activations is the valid one */
    r = run("train --act relu --pieces 3");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "--pieces applies to --act maxout only"));
    r = run("train --act sine");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "maxout"));
    assert_null(strstr(r->err, "its own layer"));
    remove(path);
    remove(c_out);
    rmdir(dir);
}

/* nabla train --batchnorm --dropout: the description it writes (batch
 * norm's eps and momentum, dropout, the activation's settings) rebuilds the
 * network in eval and export alike, from the checkpoint and from a
 * safetensors copy. */
static void test_batch_norm_models(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-bn-XXXXXX", cmd[768], path[128], st[128], c_out[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    snprintf(st, sizeof st, "%s/m.safetensors", dir);
    snprintf(c_out, sizeof c_out, "%s/m.c", dir);
    snprintf(cmd, sizeof cmd,
             "train --batchnorm --dropout 0.2 --act leaky-relu --layers 16,12 --epochs 2 --json "
             "--save %s",
             path);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("train --batchnorm: %s", r->err);
    char last[512], line[512];
    line_of(r->out, 1, last, sizeof last);
    char meta[NB_META_MAX + 1], v[64];
    assert_int_equal(nb_ckpt_read_meta(path, meta, sizeof meta, NULL), NB_OK);
    const char *want[][2] = {{"batchnorm", "1"},
                             {"dropout", "0.20000000000000001"},
                             {"bn_momentum", "0.10000000000000001"},
                             {"alpha", "0.01"},
                             {"sizes", "64,16,12,10"},
                             {"seed", "1"}};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        assert_int_equal(nb_meta_get(meta, want[i][0], v, sizeof v), NB_OK);
        assert_string_equal(v, want[i][1]);
    }
    snprintf(cmd, sizeof cmd, "export --load %s --safetensors %s --c %s", path, st, c_out);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("export: %s", r->err);
    const char *files[2] = {path, st};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "eval --load %s --json", files[k]);
        r = run(cmd);
        if (r->status != 0)
            fail_msg("eval of %s: %s", files[k], r->err);
        line_of(r->out, 0, line, sizeof line);
        assert_true(json_num(line, "test_acc") == json_num(last, "test_acc"));
        assert_true(json_num(line, "test_acc") > 0.5);
    }
    remove(path);
    remove(st);
    remove(c_out);
    rmdir(dir);
}

/* Saves the MLP @p o builds twice: with its description in ours, and under
 * the prefix "net" with the metadata @p meta (as another program would) in
 * theirs. eval gives the same test loss on both, and export writes C from
 * theirs. */
static void foreign_pair(const char *dir, const nb_mlp_opts *o, const char *meta)
{
    char cmd[768], ours[128], theirs[128], c_out[128];
    snprintf(ours, sizeof ours, "%s/ours.safetensors", dir);
    snprintf(theirs, sizeof theirs, "%s/theirs.safetensors", dir);
    snprintf(c_out, sizeof c_out, "%s/m.c", dir);
    const int64_t sizes[3] = {64, 12, 10};
    nb_model *a = nb_model_new(), *b = nb_model_new();
    nb_layer *na = NULL, *nb = NULL;
    assert_int_equal(nb_mlp_new(a, NULL, sizes, 3, o, &na), NB_OK);
    assert_int_equal(nb_mlp_new(b, "net", sizes, 3, o, &nb), NB_OK);
    for (nb_tensor *p = nb_model_next(a, NULL), *q = nb_model_next(b, NULL); p;
         p = nb_model_next(a, p), q = nb_model_next(b, q))
        memcpy(nb_tensor_data(q), nb_tensor_data(p),
               (size_t)nb_tensor_size(p) * nb_dtype_size(nb_tensor_dtype(p)));
    char desc[1024];
    assert_int_equal(nb_layer_describe(na, desc, sizeof desc, NULL), NB_OK);
    nb_file_opts co = {.meta = desc};
    assert_int_equal(nb_model_save_safetensors(a, ours, &co, NULL), NB_OK);
    co.meta = meta;
    assert_int_equal(nb_model_save_safetensors(b, theirs, &co, NULL), NB_OK);
    double loss[2];
    const char *files[2] = {ours, theirs};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "eval --load %s --json", files[k]);
        run_result *r = run(cmd);
        if (r->status != 0)
            fail_msg("eval of %s: %s", files[k], r->err);
        char line[512];
        line_of(r->out, 0, line, sizeof line);
        loss[k] = json_num(line, "test_loss");
    }
    assert_true(loss[0] == loss[1] && loss[0] > 0);
    snprintf(cmd, sizeof cmd, "export --load %s --c %s", theirs, c_out);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("export of %s: %s", theirs, r->err);
    nb_layer_free(na);
    nb_layer_free(nb);
    nb_model_free(a);
    nb_model_free(b);
    remove(ours);
    remove(c_out);
}

/* A file another program wrote: names under a prefix, and metadata that
 * names only the activation (as docs/interop.md shows for PyTorch). eval
 * and export both read its MLP from the tensors (sizes, batch norm, biases,
 * maxout pieces), and eval computes what it computes for the same model
 * saved by nabla with its description. */
static void test_foreign_models(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-foreign-XXXXXX", cmd[768], theirs[128];
    assert_non_null(mkdtemp(dir));
    snprintf(theirs, sizeof theirs, "%s/theirs.safetensors", dir);
    nb_rng rng;
    nb_rng_seed(&rng, 11);
    nb_mlp_opts o = nb_mlp_defaults();
    o.layer.rng = &rng;
    o.act = NB_ACT_TANH;
    o.batch_norm = true;
    foreign_pair(dir, &o, "act=tanh\nformat=pt");
    nb_act_opts k3 = nb_act_defaults(NB_ACT_MAXOUT);
    k3.pieces = 3;
    o = nb_mlp_defaults();
    o.layer.rng = &rng;
    o.layer.no_bias = true;
    o.act = NB_ACT_MAXOUT;
    o.act_opts = &k3;
    foreign_pair(dir, &o, "act=maxout");

    /* without act= the hidden activation is unknown; a weight must be a
     * matrix; a prefix must be one nb_mlp_new takes */
    char p90[91], p200[201];
    memset(p90, 'p', 89), p90[89] = '.', p90[90] = '\0';
    memset(p200, 'q', 199), p200[199] = '.', p200[200] = '\0';
    const struct {
        const char *meta, *says, *prefix;
        int64_t rank;
    } bad[] = {{NULL, "names no hidden activation (act=;", "net.", 2},
               {"act=relu", "net.fc1.weight is not a matrix", "net.", 1},
               {"act=relu", "the prefix is longer than 80 bytes", p90, 2},
               {"act=relu", "the names' prefix is longer than 127 bytes", p200, 2}};
    for (int k = 0; k < 4; k++) {
        nb_model *m = nb_model_new();
        char name[300];
        snprintf(name, sizeof name, "%sfc1.weight", bad[k].prefix);
        assert_int_equal(nb_model_add(m, name, NB_F32, (int)bad[k].rank, (int64_t[]){64, 12}, NULL),
                         NB_OK);
        snprintf(name, sizeof name, "%sfc2.weight", bad[k].prefix);
        assert_int_equal(nb_model_add(m, name, NB_F32, 2, (int64_t[]){12, 10}, NULL), NB_OK);
        nb_file_opts co = {.meta = bad[k].meta};
        assert_int_equal(nb_model_save_safetensors(m, theirs, &co, NULL), NB_OK);
        snprintf(cmd, sizeof cmd, "eval --load %s", theirs);
        run_result *r = run(cmd);
        if (r->status != 2 || !strstr(r->err, bad[k].says))
            fail_msg("status %d, '%s' (want 2, '%s')", r->status, r->err, bad[k].says);
        nb_model_free(m);
    }
    remove(theirs);
    rmdir(dir);
}

/* Bad model metadata: one line naming what is wrong, status 2, never a
 * crash or a huge allocation. */
static void test_bad_model_metadata(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-meta-XXXXXX", cmd[512], path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    static const char base[] = "arch=mlp\nsizes=64,12,10\nact=relu\nout_act=identity\n"
                               "batchnorm=0\ndtype=f32";
    const struct {
        const char *meta, *says;
    } cases[] = {
        {"arch=cnn\nsizes=64,12,10\nact=relu", "arch=cnn is not an architecture"},
        {"arch=mlp\nact=relu", "no sizes="},
        {"arch=mlp\nsizes=64,12,10", "no act="},
        {"arch=mlp\nsizes=64,,10\nact=relu", "sizes=64,,10"},
        {"arch=mlp\nsizes=64,12,\nact=relu", "sizes=64,12,"},
        {"arch=mlp\nsizes=64\nact=relu", "fewer than two"},
        {"arch=mlp\nsizes=64,0,10\nact=relu", "sizes=64,0,10"},
        {"arch=mlp\nsizes=64,99999999999999999999,10\nact=relu", "too large"},
        {"arch=mlp\nsizes=64,100000,100000,10\nact=relu", "more than the"},
        {"arch=mlp\nsizes=64,12,10\nact=sine", "act=sine is not an activation"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\nout_act=prelu",
         "out_act=prelu cannot follow the last layer"},
        {"arch=mlp\nsizes=64,12,10\nact=maxout\npieces=0", "pieces=0"},
        {"arch=mlp\nsizes=64,12,10\nact=maxout\npieces=2.5", "pieces=2.5"},
        {"arch=mlp\nsizes=64,12,10\nact=leaky-relu\nalpha=nan", "alpha=nan"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\nbatchnorm=2", "batchnorm=2"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\nbatchnorm=1\nbn_eps=-1", "bn_eps=-1"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\ndtype=f16", "dtype=f16"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\ninput_norm=minmax", "input_norm=minmax"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\ninput_norm=standardize", "'input.mean'"},
        {"arch=mlp\nsizes=64,12,10\nact=maxout\npieces=2", "more than the"},
        {"arch=mlp\nsizes=64,10,12\nact=relu", "cannot load"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\nseed=abc", "seed=abc is not a whole number"},
        {"arch=mlp\nsizes=64,12,10\nact=relu\nseed=-3", "seed=-3 is not a whole number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        save_mlp(path, 0, cases[i].meta);
        snprintf(cmd, sizeof cmd, "eval --load %s", path);
        run_result *r = run(cmd);
        if (r->status != 2 || !strstr(r->err, cases[i].says) || count_lines(r->err) != 1)
            fail_msg("metadata '%s': status %d, '%s' (want 2 and '%s')", cases[i].meta, r->status,
                     r->err, cases[i].says);
    }
    save_mlp(path, 0, base); /* and the good one loads */
    snprintf(cmd, sizeof cmd, "eval --load %s", path);
    assert_int_equal(run(cmd)->status, 0);
    remove(path);
    rmdir(dir);
}

/* A CSV with large offsets and scales: three classes along a line. */
static void write_csv(const char *path, int only_class, uint64_t seed)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    nb_rng rng;
    nb_rng_seed(&rng, seed);
    for (int i = 0; i < 300; i++) {
        int k = i % 3;
        double x[4];
        for (int j = 0; j < 4; j++)
            x[j] = 1e4 * (j + 1) + 1e3 * (j + 1) * (4.0 * k + 0.7 * nb_rng_normal(&rng));
        if (only_class < 0 || k == only_class)
            fprintf(f, "%.6f,%.6f,%.6f,%.6f,%d\n", x[0], x[1], x[2], x[3], k);
    }
    fclose(f);
}

/* --load and --resume across data sets: a file without the input
 * standardisation (trained on digits) continues on a CSV of as many
 * features, and a model of standardised CSV features is not continued on
 * data that is not. */
static void test_load_across_data(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-across-XXXXXX", cmd[512], csv[128], dig[128], csv_ckpt[128];
    assert_non_null(mkdtemp(dir));
    snprintf(csv, sizeof csv, "%s/wide.csv", dir);
    snprintf(dig, sizeof dig, "%s/dig.ckpt", dir);
    snprintf(csv_ckpt, sizeof csv_ckpt, "%s/csv.ckpt", dir);
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    for (int i = 0; i < 60; i++) {
        for (int j = 0; j < 64; j++)
            fprintf(f, "%d,", (i * 7 + j * 3) % 17 + 100 * (i % 2));
        fprintf(f, "%d\n", i % 10);
    }
    fclose(f);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --save %s", dig);
    assert_int_equal(run(cmd)->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --data %s --load %s --save %s", csv, dig,
             csv_ckpt);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("a digits model continued on a CSV: %s", r->err);
    /* the result holds the CSV's standardisation: eval and --load use it */
    snprintf(cmd, sizeof cmd, "eval --load %s --data %s", csv_ckpt, csv);
    assert_int_equal(run(cmd)->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --data %s --load %s", csv, csv_ckpt);
    assert_int_equal(run(cmd)->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --load %s", csv_ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "was trained on standardised CSV features"));
    remove(csv);
    remove(dig);
    remove(csv_ckpt);
    rmdir(dir);
}

/* A model trained on a CSV stores its standardisation and eval applies it
 * to raw rows: the same accuracy as training reported, and rows of one
 * class (whose own statistics differ) classified as well as the others. */
static void test_csv_standardisation(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-csv-XXXXXX", cmd[768], csv[128], one[128], ckpt[128];
    assert_non_null(mkdtemp(dir));
    snprintf(csv, sizeof csv, "%s/train.csv", dir);
    snprintf(one, sizeof one, "%s/class2.csv", dir);
    snprintf(ckpt, sizeof ckpt, "%s/m.ckpt", dir);
    write_csv(csv, -1, 11);
    write_csv(one, 2, 12);
    snprintf(cmd, sizeof cmd, "train --data %s --layers 8 --epochs 20 --json --save %s", csv, ckpt);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("train on a CSV: %s", r->err);
    char last[512], line[512];
    line_of(r->out, 19, last, sizeof last);
    assert_true(json_num(last, "test_acc") > 0.9);

    snprintf(cmd, sizeof cmd, "eval --load %s --data %s --json", ckpt, csv);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    line_of(r->out, 0, line, sizeof line);
    assert_true(json_num(line, "test_acc") == json_num(last, "test_acc"));

    snprintf(cmd, sizeof cmd, "eval --load %s --data %s --json", ckpt, one);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    line_of(r->out, 0, line, sizeof line);
    if (!(json_num(line, "test_acc") > 0.9))
        fail_msg("raw rows of one class: accuracy %g", json_num(line, "test_acc"));

    /* the statistics must fit the data */
    r = run("eval --load /dev/null --data digits");
    assert_int_equal(r->status, 2);
    snprintf(cmd, sizeof cmd, "eval --load %s --data digits", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "has 64 features; the model standardises 4"));
    remove(csv);
    remove(one);
    remove(ckpt);
    rmdir(dir);
}

/* ------------------------------------------------ resuming a training run */

#define KEEP INT64_MIN

/* Rewrite the checkpoint at @p path (nabla train) with other optimizer
 * counts: the step count, the schedule position and every parameter's own
 * step count (KEEP: unchanged), as a damaged or hand-made file may hold
 * them, and the metadata line @p key with @p value (when @p key is not
 * NULL), adding a zero state tensor "P/<slot>" for each count "P/t" (when
 * @p slot is not NULL). The checkpoint is a safetensors file with these counts in its
 * metadata: it is read as one, its lines rewritten, and saved again (with
 * new CRC-32s). Returns the step count the file had. */
static int64_t ckpt_edit(const char *path, int64_t step, int64_t pos, double state_step,
                         const char *key, const char *value, const char *slot)
{
    static char meta[NB_META_MAX + 1], out[NB_META_MAX + 1];
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_model *all = NULL;
    nb_error err;
    assert_int_equal(nb_safetensors_read(path, &all, &fo, &err), NB_OK);
    int64_t had;
    assert_int_equal(nb_meta_get_i64(meta, "optim.step", &had), NB_OK);
    out[0] = '\0';
    for (char *line = strtok(meta, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        *eq = '\0';
        int64_t v = !strcmp(line, "optim.step")        ? step
                    : !strcmp(line, "optim.sched_pos") ? pos
                                                       : KEEP;
        const char *text = key && !strcmp(line, key) ? value : eq + 1;
        nb_status st = v == KEEP ? nb_meta_put(out, sizeof out, line, "%s", text)
                                 : nb_meta_put(out, sizeof out, line, "%lld", (long long)v);
        assert_int_equal(st, NB_OK);
    }
    /* each parameter's update count, the tensor "P/t" */
    int counts = 0;
    nb_model *extra = nb_model_new();
    for (nb_tensor *t = nb_model_next(all, NULL); t; t = nb_model_next(all, t)) {
        const char *name = nb_tensor_name(t);
        size_t len = strlen(name);
        if (len > 2 && !strcmp(name + len - 2, "/t")) {
            counts++;
            if (state_step != KEEP)
                nb_tensor_set(t, 0, state_step);
            char p[256];
            snprintf(p, sizeof p, "%.*s", (int)(len - 2), name);
            nb_tensor *w = nb_model_get(all, p);
            snprintf(p + len - 2, sizeof p - (len - 2), "/%s", slot ? slot : "");
            if (slot)
                assert_int_equal(nb_model_add(extra, p, nb_tensor_dtype(w), nb_tensor_rank(w),
                                              nb_tensor_shape(w), NULL),
                                 NB_OK);
        }
    }
    assert_true(counts > 0);
    nb_file_opts so = {.meta = out};
    const nb_model *stores[2] = {all, extra};
    assert_int_equal(nb_safetensors_save(path, stores, 2, &so, &err), NB_OK);
    nb_model_free(extra);
    nb_model_free(all);
    return had;
}

static int64_t ckpt_set_counts(const char *path, int64_t step, int64_t pos, double state_step)
{
    return ckpt_edit(path, step, pos, state_step, NULL, NULL, NULL);
}

/* The number of points of the first line of an SVG chart (-1: no file). */
static int svg_points(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    static char svg[1 << 16];
    size_t n = fread(svg, 1, sizeof svg - 1, f);
    svg[n] = '\0';
    fclose(f);
    const char *p = strstr(svg, "points=\"");
    int commas = 0;
    for (p = p ? p + 8 : "\""; *p != '"'; p++)
        commas += *p == ',';
    return commas;
}

/* --resume believes no step count that does not fit the run: each is
 * refused with one line, nothing trained, nothing plotted. */
static void test_train_resume_counts(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-resume-XXXXXX", cmd[512], ckpt[128], svg[128];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/r.ckpt", dir);
    snprintf(svg, sizeof svg, "%s/r.svg", dir);
    snprintf(cmd, sizeof cmd, "train --epochs 2 --layers 8 --json --save %s", ckpt);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    int64_t per = ckpt_set_counts(ckpt, KEEP, KEEP, KEEP) / 2; /* batches per epoch */
    assert_true(per > 1);
    snprintf(cmd, sizeof cmd, "train --epochs 3 --layers 8 --resume %s --plot %s", ckpt, svg);
    const int64_t wrap = (int64_t)1 << 31, wrap2 = (int64_t)1 << 32;
    struct {
        int64_t step, pos;
        const char *says;
    } bad[] = {
        {per * (wrap + 2), wrap + 2,
         "already holds 2147483650 epochs (--epochs 3)"},                  /* int wraps */
        {per * (wrap2 + 1), wrap2 + 1, "already holds 4294967297 epochs"}, /* wraps to 1 */
        {per * (INT64_MAX / per), INT64_MAX / per, "already holds"},
        {2 * per + 1, 2, "not a whole number of epochs"},
        {2 * per, 5, "the schedule is at position 5"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        ckpt_set_counts(ckpt, bad[k].step, bad[k].pos, KEEP);
        r = run(cmd);
        if (r->status != 2 || !strstr(r->err, bad[k].says))
            fail_msg("case %zu: status %d, stderr %s", k, r->status, r->err);
        assert_int_equal(count_lines(r->err), 1);
        assert_null(strstr(r->out, "epochs in"));
        assert_int_equal(svg_points(svg), -1);
    }
    /* options other than the saved run's: named, nothing trained */
    ckpt_set_counts(ckpt, 2 * per, 2, KEEP);
    const char *other[][2] = {
        {"--lr 0.1", "saved with --lr 0.050000000000000003, this one has 0.10000000000000001"},
        {"--opt adam", "saved with --opt sgd --schedule constant, this one has --opt adam"},
        {"--schedule cosine", "--schedule constant, this one has --opt sgd --schedule cosine"},
        {"--weight-decay 0.5", "--weight-decay 0, this one has 0.5"},
        {"--act tanh", "saved with act=relu, this one has act=tanh"},
        {"--seed 2", "saved with seed=1, this one has seed=2"},
        {"--dropout 0.5", "saved with dropout=(none), this one has dropout=0.5"},
    };
    for (size_t k = 0; k < sizeof other / sizeof *other; k++) {
        snprintf(cmd, sizeof cmd, "train --epochs 3 --layers 8 %s --resume %s --plot %s",
                 other[k][0], ckpt, svg);
        r = run(cmd);
        if (r->status != 2 || !strstr(r->err, other[k][1]))
            fail_msg("%s: status %d, stderr %s", other[k][0], r->status, r->err);
        assert_int_equal(svg_points(svg), -1);
    }
    /* a step schedule is made for the run's --epochs: another count is another schedule */
    char ck2[160];
    snprintf(ck2, sizeof ck2, "%s/s.ckpt", dir);
    snprintf(cmd, sizeof cmd, "train --epochs 3 --layers 8 --schedule step --save %s", ck2);
    assert_int_equal(run(cmd)->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 6 --layers 8 --schedule step --resume %s", ck2);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "--epochs (the step schedule's step size) 1, this one has 2"));
    remove(ck2);
    snprintf(cmd, sizeof cmd, "train --epochs 3 --layers 8 --resume %s --plot %s", ckpt, svg);
    /* a parameter's own update count past what a file may hold (2^53):
     * refused, naming it */
    ckpt_set_counts(ckpt, 2 * per, 2, 0x1p53 + 2);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "update count 'fc1.weight/t' is not a whole number"));
    assert_int_equal(count_lines(r->err), 1);
    assert_int_equal(svg_points(svg), -1);
    /* counts that fit: epochs 3 and 4, and a chart of those two */
    ckpt_set_counts(ckpt, 2 * per, 2, 2 * per);
    snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 8 --json --resume %s --plot %s", ckpt,
             svg);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->out), 2);
    char line[512];
    assert_true(json_num(line_of(r->out, 0, line, sizeof line), "epoch") == 3);
    assert_true(json_num(line_of(r->out, 1, line, sizeof line), "epoch") == 4);
    assert_int_equal(svg_points(svg), 2);
    remove(svg);
    remove(ckpt);
    rmdir(dir);
}

/* --opt rmsprop and adagrad train with their default rates; a run saved
 * and resumed gives the epochs an uninterrupted run gives, bit for bit;
 * --resume names each of their options that differs from the saved run's
 * (options a program may have saved with), and an unknown --opt lists
 * the optimizers. */
static void test_train_rmsprop_adagrad(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-optim-XXXXXX", cmd[512], ckpt[128], line[512], straight[4][512];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/o.ckpt", dir);
    const char *opts[2] = {"rmsprop", "adagrad"}, *lr[2] = {"lr 0.001", "lr 0.01"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 16 --opt %s", opts[k]);
        run_result *r = run(cmd);
        assert_int_equal(r->status, 0);
        char head[64];
        snprintf(head, sizeof head, "%s, %s,", opts[k], lr[k]);
        assert_non_null(strstr(r->out, head));
        snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 16 --opt %s --json", opts[k]);
        r = run(cmd);
        assert_int_equal(r->status, 0);
        for (int e = 0; e < 4; e++)
            line_of(r->out, e, straight[e], sizeof straight[e]);
        assert_true(json_num(straight[3], "test_acc") > 0.6); /* chance: 0.1 */
        snprintf(cmd, sizeof cmd, "train --epochs 2 --layers 16 --opt %s --json --save %s", opts[k],
                 ckpt);
        assert_int_equal(run(cmd)->status, 0);
        snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 16 --opt %s --json --resume %s",
                 opts[k], ckpt);
        r = run(cmd);
        assert_int_equal(r->status, 0);
        assert_int_equal(count_lines(r->out), 2);
        for (int e = 0; e < 2; e++) {
            line_of(r->out, e, line, sizeof line);
            assert_true(json_num(line, "loss") == json_num(straight[2 + e], "loss"));
            assert_true(json_num(line, "test_acc") == json_num(straight[2 + e], "test_acc"));
        }
        /* the file saved after epoch 2 again, one option changed at a time */
        snprintf(cmd, sizeof cmd, "train --epochs 2 --layers 16 --opt %s --save %s", opts[k], ckpt);
        assert_int_equal(run(cmd)->status, 0);
        const char *other[][4] = {
            /* key, value, the slot it keeps, the error */
            {"optim.alpha", "0.5", NULL, "saved with alpha 0.5, this one has 0.98999999999999999"},
            {"optim.centered", "1", "grad_avg", "saved with centered 1, this one has 0"},
            {"optim.momentum", "0.25", "momentum_buffer",
             "saved with the momentum 0.25, this one has 0"},
            {"optim.eps", "1e-06", NULL, "saved with eps 9.9999999999999995e-07"},
            {"optim.lr_decay", "0.5", NULL, "saved with lr_decay 0.5, this one has 0"},
            {"optim.initial_accumulator_value", "0.5", NULL,
             "saved with initial_accumulator_value 0.5, this one has 0"},
        };
        for (size_t i = k ? 3 : 0; i < (k ? 6u : 4u); i++) {
            char again[160];
            snprintf(again, sizeof again, "%s/again.ckpt", dir);
            snprintf(cmd, sizeof cmd, "cp %s %s", ckpt, again);
            assert_int_equal(system(cmd), 0);
            ckpt_edit(again, KEEP, KEEP, KEEP, other[i][0], other[i][1], other[i][2]);
            snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 16 --opt %s --resume %s", opts[k],
                     again);
            r = run(cmd);
            if (r->status != 2 || !strstr(r->err, other[i][3]))
                fail_msg("%s %s=%s: status %d, stderr %s", opts[k], other[i][0], other[i][1],
                         r->status, r->err);
            assert_int_equal(count_lines(r->err), 1);
            remove(again);
        }
    }
    snprintf(cmd, sizeof cmd, "train --epochs 4 --layers 16 --opt rmsprop --resume %s", ckpt);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "saved with --opt adagrad --schedule constant"));
    r = run("train --opt lion");
    assert_int_equal(r->status, 2);
    assert_non_null(
        strstr(r->err, "'lion' (sgd, momentum, nesterov, adam, adamw, rmsprop, adagrad)"));
    remove(ckpt);
    rmdir(dir);
}

/* A resumed run that stops early names the kept epoch as counted from the
 * start of the run: the last one marked as the best. */
static void test_train_resume_early_stop(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-resume-XXXXXX", cmd[512], ckpt[128], line[512];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/e.ckpt", dir);
    snprintf(cmd, sizeof cmd, "train --epochs 2 --layers 16 --early-stop 3 --save %s", ckpt);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 30 --layers 16 --early-stop 1 --resume %s", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    double best = NAN;
    for (int k = 1; k < count_lines(r->out) - 1; k++)
        if (strstr(line_of(r->out, k, line, sizeof line), "  *"))
            best = number_after(line, "epoch ");
    assert_true(best >= 3);
    assert_true(number_after(r->out, "parameters of epoch ") == best);
    remove(ckpt);
    rmdir(dir);
}

/* ------------------------------------------------------------ data sets */

/* Write a CSV of @p n rows: two features and the label, rows sorted by
 * class (n / k rows of each of the k classes, the rest of the last one). */
static void write_sorted_csv(const char *path, int n, int k)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++) {
        int c = i / (n / k) < k ? i / (n / k) : k - 1;
        fprintf(f, "%.4f,%.4f,%d\n", c + 0.2 * sin(i), 2.0 * c - 0.2 * cos(i), c);
    }
    assert_int_equal(fclose(f), 0);
}

/* A CSV sorted by class is split at random (by --seed): the test part
 * holds every class, the network learns them all, and eval with the same
 * seed sees the same test part. Too small a split draws a warning. */
static void test_train_csv_splits(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-split-XXXXXX", cmd[512], csv[128], ckpt[128];
    assert_non_null(mkdtemp(dir));
    snprintf(csv, sizeof csv, "%s/sorted.csv", dir);
    snprintf(ckpt, sizeof ckpt, "%s/s.ckpt", dir);
    write_sorted_csv(csv, 90, 3);
    snprintf(cmd, sizeof cmd,
             "train --data %s --epochs 15 --layers 8 --lr 0.2 --json --early-stop 15 --save %s",
             csv, ckpt);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_null(strstr(r->err, "warning"));
    char last[512];
    line_of(r->out, count_lines(r->out) - 1, last, sizeof last);
    assert_true(json_num(last, "test_acc") > 0.9);
    assert_true(json_num(last, "val_acc") > 0.9);
    snprintf(cmd, sizeof cmd, "eval --data %s --load %s --json", csv, ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    char line[512];
    line_of(r->out, 0, line, sizeof line);
    assert_true(json_num(line, "samples") == 18);
    assert_true(json_num(line, "test_acc") == json_num(last, "test_acc"));

    /* eval splits with the seed the model records (seed=), unless told */
    snprintf(cmd, sizeof cmd, "train --data %s --epochs 3 --layers 8 --seed 7 --save %s", csv,
             ckpt);
    assert_int_equal(run(cmd)->status, 0);
    double loss[3];
    for (int k = 0; k < 3; k++) { /* no --seed, --seed 7, --seed 1 */
        snprintf(cmd, sizeof cmd, "eval --data %s --load %s --json%s", csv, ckpt,
                 k == 0   ? ""
                 : k == 1 ? " --seed 7"
                          : " --seed 1");
        r = run(cmd);
        assert_int_equal(r->status, 0);
        loss[k] = json_num(line_of(r->out, 0, line, sizeof line), "test_loss");
    }
    assert_true(loss[0] == loss[1]);
    assert_true(loss[0] != loss[2]);

    /* five rows of two classes: the one test row holds one class */
    write_sorted_csv(csv, 5, 2);
    snprintf(cmd, sizeof cmd, "train --data %s --epochs 1 --layers 4", csv);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_int_equal(count_lines(r->err), 1);
    assert_non_null(strstr(r->err, "warning: the test part (1 samples) holds 1 of the 2 classes"));
    remove(csv);
    remove(ckpt);
    rmdir(dir);
}

/* ---------------------------------------------------------- --target */

/* A regression table: a header a,b,y,c and y = 2a − b + 0.5c + 0.3 sin(3a)
 * (a, b, c spread over [−1, 1] by sines); with @p bad_row >= 0 that row's
 * y is the text "x". */
static void write_regression_csv(const char *path, int n, int bad_row)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "a,b,y,c\n");
    for (int i = 0; i < n; i++) {
        double a = sin(1.3 * i), b = cos(0.7 * i + 1), c = sin(0.37 * i + 2);
        if (i == bad_row)
            fprintf(f, "%.5f,%.5f,x,%.5f\n", a, b, c);
        else
            fprintf(f, "%.5f,%.5f,%.5f,%.5f\n", a, b, 2 * a - b + 0.5 * c + 0.3 * sin(3 * a), c);
    }
    assert_int_equal(fclose(f), 0);
}

/* Whether the file at @p path holds the bytes of @p needle. */
static bool file_holds(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f), k = strlen(needle);
    fclose(f);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(buf + i, needle, k))
            return true;
    return false;
}

/* nabla train --target: a regression reporting RMSE and MAE (JSON keys
 * test_rmse, test_mae, no accuracy), the target named or numbered, the
 * checkpoint saying it is a regression model, and nabla eval reproducing
 * its figures from the file alone. */
static void test_train_regression(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-reg-XXXXXX", cmd[1024], csv[128], ckpt[128], line[1024], last[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(csv, sizeof csv, "%s/reg.csv", dir);
    snprintf(ckpt, sizeof ckpt, "%s/reg.ckpt", dir);
    write_regression_csv(csv, 300, -1);
    const char *common = "--loss huber --huber-delta 0.5 --opt adam --lr 0.01 --epochs 25 "
                         "--layers 16 --act tanh --json";
    snprintf(cmd, sizeof cmd, "train --data %s --target y %s --save %s", csv, common, ckpt);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("%s", r->err);
    assert_int_equal(count_lines(r->out), 25);
    line_of(r->out, 0, line, sizeof line);
    line_of(r->out, 24, last, sizeof last);
    assert_null(strstr(last, "_acc"));
    double rmse = json_num(last, "test_rmse"), mae = json_num(last, "test_mae");
    assert_true(rmse < 0.5 * json_num(line, "test_rmse")); /* it learned */
    assert_true(rmse < 0.15);                              /* y has a spread of about 1.5 */
    assert_true(mae > 0 && mae <= rmse);
    assert_true(isfinite(json_num(last, "train_rmse")));
    assert_non_null(strstr(last, "\"val_rmse\": null")); /* no validation part */
    /* the file says what the model is, for nabla eval */
    const char *keys[] = {"\"task\":\"regression\"", "\"target\":\"y\"",
                          "\"targets\":\"1\"",       "\"loss\":\"huber\"",
                          "\"huber_delta\":\"0.5\"", "\"input_norm\":\"standardize\"",
                          "\"sizes\":\"3,16,1\""};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!file_holds(ckpt, keys[i]))
            fail_msg("the checkpoint's metadata lacks %s", keys[i]);
    snprintf(cmd, sizeof cmd, "eval --load %s --data %s --json", ckpt, csv);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    line_of(r->out, 0, line, sizeof line);
    assert_true(json_num(line, "test_rmse") == rmse);
    assert_true(json_num(line, "test_mae") == mae);
    assert_true(json_num(line, "samples") == 60);
    assert_null(strstr(line, "test_acc"));
    snprintf(cmd, sizeof cmd, "eval --load %s --data %s", ckpt, csv);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "target y (60 test samples): RMSE "));

    /* the target by its 0-based index, or counted from the end: the same run */
    const char *same[] = {"2", "-2"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "train --data %s --target %s %s", csv, same[k], common);
        r = run(cmd);
        assert_int_equal(r->status, 0);
        line_of(r->out, 24, line, sizeof line);
        assert_true(json_num(line, "test_rmse") == rmse);
        assert_true(json_num(line, "loss") == json_num(last, "loss"));
    }
    /* the table: a header line, then one per epoch with RMSE and MAE; the
     * summary; early stopping on the validation loss */
    snprintf(cmd, sizeof cmd,
             "train --data %s --target y --loss l1 --epochs 4 --layers 8 --early-stop 4", csv);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "train RMSE "));
    assert_non_null(strstr(r->out, "  val RMSE "));
    assert_non_null(strstr(r->out, "  test RMSE "));
    assert_non_null(strstr(r->out, " MAE "));
    assert_non_null(strstr(r->out, "4 epochs in "));
    assert_non_null(strstr(r->out, "; test RMSE "));
    assert_null(strstr(r->out, "accuracy"));
    /* two targets: two outputs, RMSE and MAE over both; eval takes the list */
    snprintf(cmd, sizeof cmd, "train --data %s --target y,c --epochs 3 --layers 8 --json --save %s",
             csv, ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    line_of(r->out, 2, last, sizeof last);
    assert_true(file_holds(ckpt, "\"target\":\"y,c\"") && file_holds(ckpt, "\"targets\":\"2\"") &&
                file_holds(ckpt, "\"sizes\":\"2,8,2\""));
    snprintf(cmd, sizeof cmd, "eval --load %s --data %s --json", ckpt, csv);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_true(json_num(line_of(r->out, 0, line, sizeof line), "test_rmse") ==
                json_num(last, "test_rmse"));
    /* a plot of RMSE curves */
    char svg[160];
    snprintf(svg, sizeof svg, "%s/reg.svg", dir);
    snprintf(cmd, sizeof cmd, "train --data %s --target y --epochs 2 --layers 4 --plot %s", csv,
             svg);
    assert_int_equal(run(cmd)->status, 0);
    assert_true(file_holds(svg, "test RMSE") && file_holds(svg, "loss / RMSE"));
    /* the model checked against its weights on rows of its CSV, targets left out */
    snprintf(cmd, sizeof cmd, "gradcheck --model %s --data %s --batch 5 --json", ckpt, csv);
    r = run(cmd);
    if (r->status != 0 || !strstr(r->out, "\"pass\": true") || json_num(r->out, "rows") != 5)
        fail_msg("%s%s", r->out, r->err);
    remove(svg);
    remove(ckpt);
    remove(csv);
    rmdir(dir);
}

/* Write the safetensors file @p path again with its metadata changed:
 * the line of @p key dropped, or its value replaced by @p value. */
static void rewrite_meta(const char *path, const char *key, const char *value)
{
    static char meta[NB_META_MAX + 1], out[NB_META_MAX + 1];
    nb_model *m = NULL;
    nb_error err;
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    assert_int_equal(nb_safetensors_read(path, &m, &fo, &err), NB_OK);
    size_t klen = strlen(key), n = 0;
    for (const char *p = meta; *p;) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, key, klen) || p[klen] != '=')
            n += (size_t)snprintf(out + n, sizeof out - n, "%.*s\n", (int)len, p);
        else if (value)
            n += (size_t)snprintf(out + n, sizeof out - n, "%s=%s\n", key, value);
        p += len + (p[len] == '\n');
    }
    assert_int_equal(nb_model_save_safetensors(m, path, &(nb_file_opts){.meta = out}, &err), NB_OK);
    nb_model_free(m);
}

/* Bad regression requests: one line on stderr naming what is wrong, exit
 * status 2, no file written. */
static void test_train_regression_errors(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-regerr-XXXXXX", cmd[1024], csv[128], bad[128], ckpt[128], cls[128];
    assert_non_null(mkdtemp(dir));
    snprintf(csv, sizeof csv, "%s/reg.csv", dir);
    snprintf(bad, sizeof bad, "%s/bad.csv", dir);
    snprintf(ckpt, sizeof ckpt, "%s/reg.ckpt", dir);
    snprintf(cls, sizeof cls, "%s/cls.ckpt", dir);
    write_regression_csv(csv, 50, -1);
    write_regression_csv(bad, 50, 6); /* line 8 of the file */
    struct {
        const char *args, *msg;
    } cases[] = {
        {"--data %s --target yy", "line 1: no column named \"yy\" in the header (its columns: "
                                  "\"a\", \"b\", \"y\", \"c\")"},
        {"--data %s --target 4",
         "target column index 4 is outside the 4 columns (0 .. 3, or negative from the end)"},
        {"--data %s --target y,2", "column index 2 (\"y\") is given as a target twice"},
        {"--data %s --target y,", "--target y,: column 2 of the list is empty"},
        {"--data %s --target a,b,y,c", "4 target columns leave no feature among the 4 columns"},
        {"--data %s --target y --loss cross-entropy",
         "--loss cross-entropy needs class labels; --target y makes a regression"},
        {"--data %s --target y --loss hubber", "--loss: unknown loss 'hubber'"},
        {"--data %s --target y --huber-delta 2", "--huber-delta applies to --loss huber only"},
        {"--data %s --target y --loss huber --huber-delta 0", "--huber-delta needs a number"},
        {"--data %s --loss mse", "--loss mse is a regression loss: it needs float targets"},
        {"--data digits --target y%.0s",
         "--target y needs a .csv file; --data digits holds images with class labels"},
        {"--loss l1%.0s", "--loss l1 is a regression loss: it needs float targets, --target COL "
                          "of a .csv file (--data digits has class labels)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[512];
        snprintf(args, sizeof args, cases[i].args, csv);
        snprintf(cmd, sizeof cmd, "train %s --epochs 1 --save %s", args, ckpt);
        run_result *r = run(cmd);
        if (r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, cases[i].msg))
            fail_msg("nabla %s: status %d, stderr \"%s\"; expected \"%s\"", cmd, r->status, r->err,
                     cases[i].msg);
        assert_int_equal(access(ckpt, F_OK), -1);
    }
    /* a target that is not a number names its line and column */
    snprintf(cmd, sizeof cmd, "train --data %s --target y --epochs 1", bad);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "bad.csv: line 8, column 3: target \"x\" is not a number"));
    assert_int_equal(count_lines(r->err), 1);

    /* eval: the model's targets, and what does not fit them */
    snprintf(cmd, sizeof cmd, "train --data %s --target y --epochs 1 --layers 4 --save %s", csv,
             ckpt);
    assert_int_equal(run(cmd)->status, 0);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 4 --save %s", cls);
    assert_int_equal(run(cmd)->status, 0);
    struct {
        const char *fmt, *msg;
    } evals[] = {
        {"eval --load %s --data %s --target y,c", "predicts 1 target; --target y,c names 2"},
        {"eval --load %s --data %s --target zz", "no column named \"zz\""},
        {"eval --load %s%.0s", "is a regression model of the target y of a CSV file: --data "
                               "digits is not a .csv file"},
        {"eval --load %s --data %s --target 1", NULL}, /* another column: allowed */
    };
    for (size_t i = 0; i < sizeof evals / sizeof *evals; i++) {
        snprintf(cmd, sizeof cmd, evals[i].fmt, ckpt, csv);
        r = run(cmd);
        if (evals[i].msg
                ? r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, evals[i].msg)
                : r->status != 0)
            fail_msg("nabla %s: status %d, stderr \"%s\"", cmd, r->status, r->err);
    }
    snprintf(cmd, sizeof cmd, "eval --load %s --target y", cls);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "is a classifier (its metadata has no task=regression): "
                                   "--target does not apply"));
    /* metadata that does not describe a regression model as nabla train
     * writes it */
    char st_path[160];
    snprintf(st_path, sizeof st_path, "%s/reg.safetensors", dir);
    struct {
        const char *key, *value, *extra, *msg;
    } metas[] = {
        {"task", "classify", "", "the metadata's task=classify is not 'regression'"},
        {"targets", NULL, "", "a regression model without a number of targets (targets=)"},
        {"targets", "0", "", "a regression model without a number of targets (targets=)"},
        {"target", NULL, "",
         "a regression model without its target columns (target=): give "
         "--target COLS"},
        {"target", NULL, " --target 2", NULL}, /* then --target says it */
    };
    for (size_t i = 0; i < sizeof metas / sizeof *metas; i++) {
        snprintf(cmd, sizeof cmd, "train --data %s --target y --epochs 1 --layers 4 --save %s", csv,
                 st_path);
        assert_int_equal(run(cmd)->status, 0);
        rewrite_meta(st_path, metas[i].key, metas[i].value);
        snprintf(cmd, sizeof cmd, "eval --load %s --data %s%s", st_path, csv, metas[i].extra);
        r = run(cmd);
        if (metas[i].msg
                ? r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, metas[i].msg)
                : r->status != 0 || !strstr(r->out, "target 2 (10 test samples)"))
            fail_msg("nabla %s after %s=%s: status %d, stderr \"%s\"", cmd, metas[i].key,
                     metas[i].value ? metas[i].value : "(none)", r->status, r->err);
    }
    remove(st_path);
    /* too many target columns */
    char many[512] = "";
    for (int k = 0; k <= 64; k++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d", k ? "," : "", k);
    snprintf(cmd, sizeof cmd, "train --data %s --target %s --epochs 1", csv, many);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, ": more than 64 columns"));
    /* resuming a regression run with another target is refused */
    snprintf(cmd, sizeof cmd, "train --data %s --target c --epochs 2 --layers 4 --resume %s", csv,
             ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "the run was saved with target=y, this one has target=c"));
    remove(ckpt);
    remove(cls);
    remove(csv);
    remove(bad);
    rmdir(dir);
}

/* Three rows are too few to split: an error, and (the ASan run checks)
 * the loaded rows are freed. */
static void test_train_too_few_rows(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-few-XXXXXX", cmd[512], csv[128];
    assert_non_null(mkdtemp(dir));
    snprintf(csv, sizeof csv, "%s/three.csv", dir);
    write_sorted_csv(csv, 3, 2);
    snprintf(cmd, sizeof cmd, "train --data %s --epochs 1", csv);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_int_equal(count_lines(r->err), 1); /* a leak report would add lines */
    assert_non_null(strstr(r->err, "3 samples are too few to split"));
    remove(csv);
    rmdir(dir);
}

/* ------------------------------------------------------------- --layers */

static void test_train_layers(void **state)
{
    (void)state;
    static char spaces[300 + 1], zeros[250 + 1];
    memset(spaces, ' ', 300);
    memset(zeros, '0', 250);
    char cmd[1024], list[512];
    struct {
        const char *list, *says;
    } bad[] = {
        {"1,,2", "size 2 of '1,,2' is empty"},
        {"8,", "size 2 of '8,' is empty"},
        {",8", "size 1 of ',8' is empty"},
        {"8, 4", "' 4' is not a size"},
        {"8,+4", "'+4' is not a size"},
        {"8,-4", "'-4' is not a size"},
        {"8,4x", "'4x' is not a size"},
        {"0", "'0' is not a size"},
        {"100001", "'100001' is not a size"},
        {"99999999999999999999999", "'99999999999999999999999' is not a size"},
        {"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17", "more than 16 sizes"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(cmd, sizeof cmd, "train --epochs 1 --layers '%s'", bad[k].list);
        run_result *r = run(cmd);
        if (r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, bad[k].says))
            fail_msg("--layers '%s': status %d, stderr %s", bad[k].list, r->status, r->err);
    }
    /* past 255 bytes: nothing is cut off */
    snprintf(list, sizeof list, "16,%s1234", spaces);
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers '%s'", list);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "is not a size"));
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8,%s4", zeros);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "training a 64-8-4-10 relu network"));
}

/* ------------------------------------------------------- the progress bar */

/* What a terminal shows for @p text: its lines, after carriage returns,
 * erase-to-end-of-line (ESC [ K) and other escape sequences (ignored). */
static int screen_lines(const char *text, char lines[][512], int max)
{
    char cur[512];
    size_t len = 0, at = 0;
    int n = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '\r') {
            at = 0;
        } else if (*p == '\n') {
            if (n < max) {
                memcpy(lines[n], cur, len);
                lines[n++][len] = '\0';
            }
            len = at = 0;
        } else if (*p == '\033' && p[1] == '[') {
            p += 2;
            while (*p && (*p < '@' || *p > '~'))
                p++;
            if (*p == 'K')
                len = at;
            if (!*p)
                break;
        } else if (at < sizeof cur - 1) {
            cur[at++] = *p;
            len = at > len ? at : len;
        }
    }
    return n;
}

/* On a terminal the bar is drawn and each epoch's line replaces it. */
static void test_train_progress_bar(void **state)
{
    (void)state;
    int fd;
    pid_t pid = forkpty(&fd, NULL, NULL, NULL);
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(nabla, "nabla", "train", "--epochs", "3", "--layers", "8", (char *)NULL);
        _exit(127);
    }
    static char text[1 << 17];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof text - 1 && (k = read(fd, text + n, sizeof text - 1 - n)) > 0)
        n += (size_t)k;
    text[n] = '\0';
    close(fd);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_non_null(strstr(text, "[###")); /* the bar was drawn */
    static char lines[64][512];
    int n_lines = screen_lines(text, lines, 64), summaries = 0;
    for (int i = 0; i < n_lines; i++) {
        if (!strstr(lines[i], "  train "))
            continue;
        summaries++;
        if (strchr(lines[i], '#') || strncmp(lines[i], "  epoch ", 8) != 0)
            fail_msg("a progress bar is left in the line '%s'", lines[i]);
    }
    assert_int_equal(summaries, 3);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *bad[] = {
        "",                           /* no command */
        "frobnicate",                 /* unknown command */
        "demo --bogus",               /* unknown option */
        "demo --seed",                /* missing value */
        "demo --epochs 0",            /* out of range */
        "modes --n abc",              /* not a number */
        "modes --m 1e99",             /* not a whole number */
        "gradcheck --op nope",        /* unknown op */
        "modes extra",                /* stray argument */
        "diff x --at x=1 --wrt x,,y", /* an empty name in a list */
        "diff x --at x=1 --wrt x,",
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

    /* an option given twice, whatever the command: refused by name */
    const char *twice[][2] = {
        {"train --seed 1 --seed 2", "--seed is given twice"},
        {"demo --epochs 2 --epochs 2", "--epochs is given twice"},
        {"eval --json --load x --json", "--json is given twice"},
        {"diff x --at x=1 --at x=2", "--at is given twice"},
    };
    for (size_t i = 0; i < sizeof twice / sizeof *twice; i++) {
        r = run(twice[i][0]);
        if (r->status != 2 || count_lines(r->err) != 1 || !strstr(r->err, twice[i][1]))
            fail_msg("'nabla %s': status %d, stderr %s", twice[i][0], r->status, r->err);
    }

    /* a long argument is quoted by its first 77 bytes and "..." */
    static char big[300 + 1];
    memset(big, 'q', 300);
    const char *quoting[] = {"modes --n %s",
                             "demo --%s",
                             "modes %s",
                             "train --opt %s",
                             "train --schedule %s",
                             "train --layers %s",
                             "train --layers 8,%s",
                             "train --layers conv8k3,%s",
                             "gradcheck --op %s",
                             "diff x --at %s",
                             "diff x --at x=1 --wrt %s",
                             "plot activations --out %s"};
    char cmd[1024];
    for (size_t i = 0; i < sizeof quoting / sizeof *quoting; i++) {
        snprintf(cmd, sizeof cmd, quoting[i], big);
        r = run(cmd);
        size_t len = strlen(r->err);
        if (r->status != 2 || count_lines(r->err) != 1 || len > 200 || !strstr(r->err, "qqq..."))
            fail_msg("'nabla %.20s': status %d, %zu bytes of stderr %s", quoting[i], r->status, len,
                     r->err);
    }
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
    /* a long path is shown cut to its end, with the system's reason */
    char longp[256];
    memset(longp, 'x', 200);
    longp[200] = '\0';
    const char *long_cases[] = {"eval --load %s/%s", "train --data %s/%s.csv", "train --load %s/%s",
                                "export --c /dev/null --load %s/%s"};
    for (size_t k = 0; k < sizeof long_cases / sizeof *long_cases; k++) {
        snprintf(cmd, sizeof cmd, long_cases[k], dir, longp);
        run_result *lr = run(cmd);
        if (lr->status != 2 || count_lines(lr->err) != 1 || strlen(lr->err) > 260 ||
            !strstr(lr->err, "No such file or directory") || !strstr(lr->err, "...xxx"))
            fail_msg("'%.30s': status %d, %zu bytes: %s", long_cases[k], lr->status,
                     strlen(lr->err), lr->err);
    }
    /* an output that cannot be written is refused before the run, not after */
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --save %s/no/such/dir/m.ckpt", dir);
    run_result *r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "--save: cannot create the temporary file"));
    assert_null(strstr(r->out, "epoch"));
    snprintf(cmd, sizeof cmd, "train --epochs 1 --layers 8 --plot %s", adir);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_null(strstr(r->out, "epoch"));
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

/* Recurrent models: nabla train --model lstm|gru|rnn reads each digits
 * image row by row; the saved model evaluates to the same accuracy, its
 * run resumes, and a CSV row is read as --steps steps; options of the
 * other kind of model are refused, each in one line. */
static void test_train_recurrent(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-rnn-XXXXXX", cmd[512], ckpt[128], csv[128];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/r.ckpt", dir);
    snprintf(cmd, sizeof cmd,
             "train --model lstm --hidden 16 --epochs 2 --opt adam --lr 0.01 --json --save %s",
             ckpt);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("%s", r->err);
    char line[512];
    double acc = json_num(line_of(r->out, 1, line, sizeof line), "test_acc");
    assert_true(acc > 0.5);
    snprintf(cmd, sizeof cmd, "eval --load %s --json", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_true(fabs(json_num(r->out, "test_acc") - acc) < 1e-12);
    snprintf(cmd, sizeof cmd,
             "train --model lstm --hidden 16 --epochs 3 --opt adam --lr 0.01 --json --resume %s",
             ckpt);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("%s", r->err);
    assert_int_equal(count_lines(r->out), 1);
    /* another model or width than the saved one */
    snprintf(cmd, sizeof cmd,
             "train --model gru --hidden 16 --epochs 3 --opt adam --lr 0.01 --resume %s", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "lstm"));
    snprintf(cmd, sizeof cmd, "export --load %s --c %s/x.c", ckpt, dir);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "cannot emit layer 'rows' (reshape)"));

    /* a CSV row of 4 values as 2 steps of 2 */
    snprintf(csv, sizeof csv, "%s/seq.csv", dir);
    FILE *f = fopen(csv, "w");
    fputs("a,b,c,d,y\n", f);
    for (int i = 0; i < 40; i++)
        fprintf(f, "%d,%d,%d,%d,%d\n", i % 3, i % 5, i % 7, i % 2, i % 2);
    fclose(f);
    snprintf(cmd, sizeof cmd, "train --data %s --model rnn --hidden 4 --steps 2 --epochs 1", csv);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("%s", r->err);
    assert_non_null(strstr(r->out, "training an rnn (2 steps of 2, 4 units) -> 2 network"));

    const char *bad[][2] = {
        {"train --model lstm --layers 8", "--layers applies to --model mlp"},
        {"train --model gru --act tanh", "--act applies to --model mlp"},
        {"train --model rnn --batchnorm", "--batchnorm applies to --model mlp"},
        {"train --hidden 8", "--hidden applies to --model rnn, gru or lstm"},
        {"train --steps 4", "--steps applies to --model rnn, gru or lstm"},
        {"train --model cnn", "--model: unknown model 'cnn' (mlp, rnn, gru, lstm)"},
        {"train --model lstm --steps 4", "the images of digits are read row by row (8 steps)"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        r = run(bad[k][0]);
        if (r->status != 2 || !strstr(r->err, bad[k][1]))
            fail_msg("%s: status %d, %s", bad[k][0], r->status, r->err);
        assert_int_equal(count_lines(r->err), 1);
    }
    snprintf(cmd, sizeof cmd, "train --data %s --model lstm --steps 3 --epochs 1", csv);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "--steps 3 does not divide the 4 values of a sample"));
    remove(csv);
    remove(ckpt);
    rmdir(dir);
}

/* Convolutional networks from --layers: trained, evaluated to the same
 * accuracy, resumed bit for bit, checked by gradcheck --model; lists that
 * do not make a network are named. */
static void test_train_cnn(void **state)
{
    (void)state;
    char dir[] = "/tmp/nabla-cnn-XXXXXX", cmd[512], ckpt[128], csv[128];
    assert_non_null(mkdtemp(dir));
    snprintf(ckpt, sizeof ckpt, "%s/c.ckpt", dir);
    const char *net = "--layers conv8k3p1,pool2,conv8k3s1p1,avgpool2,fc16 --opt adam --lr 0.01";
    snprintf(cmd, sizeof cmd, "train %s --epochs 4 --json --save %s", net, ckpt);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("%s", r->err);
    char line[512], last[512];
    double acc = json_num(line_of(r->out, 3, last, sizeof last), "test_acc");
    assert_true(acc > 0.6);
    snprintf(cmd, sizeof cmd, "eval --load %s --json", ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    assert_true(fabs(json_num(r->out, "test_acc") - acc) < 1e-12);
    /* 2 epochs, then resumed to 4: the 4th epoch's line as the straight run's */
    snprintf(cmd, sizeof cmd, "train %s --epochs 2 --json --save %s", net, ckpt);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    snprintf(cmd, sizeof cmd, "train %s --epochs 4 --json --resume %s", net, ckpt);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("%s", r->err);
    assert_true(json_num(line_of(r->out, 1, line, sizeof line), "test_acc") == acc);
    assert_true(json_num(line, "loss") == json_num(last, "loss"));
    snprintf(cmd, sizeof cmd, "gradcheck --model %s", ckpt);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("%s%s", r->out, r->err);
    assert_non_null(strstr(r->out, "PASSED"));
    r = run("train --layers conv4k3,pool2,fc8 --epochs 1 --dropout 0.1 --act tanh");
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "training a 1x8x8 conv4k3,pool2,fc8 -> 10 tanh convolutional "
                                   "network on digits"));

    snprintf(csv, sizeof csv, "%s/rows.csv", dir);
    FILE *f = fopen(csv, "w");
    fputs("a,b,c,y\n", f);
    for (int i = 0; i < 20; i++)
        fprintf(f, "%d,%d,%d,%d\n", i % 3, i % 5, i % 7, i % 2);
    fclose(f);
    snprintf(cmd, sizeof cmd, "train --data %s --layers conv2k1,fc3 --epochs 1", csv);
    r = run(cmd);
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, "a convolutional network needs images"));
    const char *bad[][2] = {
        {"train --layers conv8k3p1,pool2,conv8k5",
         "'conv8k5' does not fit the maps of 8x4x4 that reach it: conv2d: x [1,8,4,4], w "
         "[8,8,5,5]: kernel 5x5"},
        {"train --layers pool9", "'pool9' does not fit the maps of 1x8x8"},
        {"train --layers avgpool2,avgpool2,avgpool2,avgpool2", "'avgpool2' does not fit"},
        {"train --layers conv8k3,fc10,pool2", "'pool2' follows a fully connected layer"},
        {"train --layers conv0k3", "'conv0k3' is not a layer (conv<O>k<K>[s<S>][p<P>], pool<K>"},
        {"train --layers conv8", "'conv8' is not a layer"},
        {"train --layers conv8k3s0", "'conv8k3s0' is not a layer"},
        {"train --layers conv8k3p65", "'conv8k3p65' is not a layer"},
        {"train --layers conv8k3p1x", "'conv8k3p1x' is not a layer"},
        {"train --layers fc", "'fc' is not a layer"},
        {"train --layers conv8k3p1,,fc1", "element 2 of 'conv8k3p1,,fc1' is empty"},
        {"train --layers conv8k3,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,"
         "pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1,"
         "pool1,pool1,pool1,pool1,pool1,pool1,pool1,pool1",
         "more than 32 layers"},
        {"train --layers conv8k3 --act prelu", "--act prelu works on the last axis"},
        {"train --layers conv8k3 --act maxout", "--act maxout works on the last axis"},
        {"train --layers conv8k3 --batchnorm", "no batch normalisation of its maps"},
        {"train --layers conv8k3 --model gru", "--layers applies to --model mlp"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        r = run(bad[k][0]);
        if (r->status != 2 || !strstr(r->err, bad[k][1]))
            fail_msg("%s: status %d, %s", bad[k][0], r->status, r->err);
        assert_int_equal(count_lines(r->err), 1);
    }
    remove(csv);
    remove(ckpt);
    rmdir(dir);
}

/* Reads the metadata of a safetensors file. */
static nb_status list_nothing(void *ud, const char *name, nb_dtype dt, int rank,
                              const int64_t *shape)
{
    (void)ud, (void)name, (void)dt, (void)rank, (void)shape;
    return NB_OK;
}

/* The index of the largest of y[0..n) (the first of equals). */
static int argmax_of(const double *y, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        best = y[j] > y[best] ? j : best;
    return best;
}

/* A CNN trained by nabla train --layers, exported to C: compiled and run on
 * the digits test set, it predicts what the library predicts for every
 * image, and its accuracy is nabla eval's. */
static void test_export_cnn_predictions(void **state)
{
    (void)state;
    if (system("command -v cc >/dev/null 2>&1") != 0)
        skip();
    char dir[] = "/tmp/nabla-cnnc-XXXXXX", cmd[1024], model[128], src[128], drv[128], exe[128],
         rows[128];
    assert_non_null(mkdtemp(dir));
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    snprintf(src, sizeof src, "%s/m.c", dir);
    snprintf(drv, sizeof drv, "%s/main.c", dir);
    snprintf(exe, sizeof exe, "%s/m", dir);
    snprintf(rows, sizeof rows, "%s/rows.txt", dir);
    snprintf(cmd, sizeof cmd,
             "train --data digits --layers conv8k3p1,pool2,fc16 --epochs 2 --save %s", model);
    run_result *r = run(cmd);
    if (r->status != 0)
        fail_msg("train: %s", r->err);
    snprintf(cmd, sizeof cmd, "eval --load %s --json", model);
    r = run(cmd);
    assert_int_equal(r->status, 0);
    double eval_acc = json_num(r->out, "test_acc");
    assert_true(eval_acc > 0.3);
    snprintf(cmd, sizeof cmd, "export --load %s --c %s", model, src);
    r = run(cmd);
    if (r->status != 0)
        fail_msg("export: %s", r->err);

    /* the test part of digits as nabla eval reads it: the last 297 images,
       scaled to [0, 1] */
    nb_dataset *all = NULL, *test = NULL;
    assert_int_equal(nb_dataset_digits(NULL, &all), NB_OK);
    assert_int_equal(nb_dataset_scale(all, 16.0), NB_OK);
    assert_int_equal(nb_dataset_slice(all, 1500, 297, &test), NB_OK);
    enum { N = 297, F = 64, K = 10 };
    FILE *f = fopen(rows, "w");
    assert_non_null(f);
    nb_graph *g = nb_graph_new();
    nb_tensor *x = nb_zeros(g, NB_F32, 2, (int64_t[]){N, F});
    for (int i = 0; i < N; i++)
        for (int j = 0; j < F; j++) {
            double v = nb_dataset_get(test, i, j);
            nb_tensor_set(x, i * F + j, v);
            fprintf(f, "%a\n", v);
        }
    fclose(f);

    /* the compiled program: one prediction per image */
    f = fopen(drv, "w");
    assert_non_null(f);
    fputs("#include <stdio.h>\n"
          "int nabla_cnn_forward(const float *x, float *logits);\n"
          "int main(void)\n{\n"
          "    float x[64], y[10];\n"
          "    for (;;) {\n"
          "        for (int i = 0; i < 64; i++) {\n"
          "            double v;\n"
          "            if (scanf(\"%la\", &v) != 1)\n"
          "                return 0;\n"
          "            x[i] = (float)v;\n"
          "        }\n"
          "        nabla_cnn_forward(x, y);\n"
          "        int best = 0;\n"
          "        for (int j = 1; j < 10; j++)\n"
          "            best = y[j] > y[best] ? j : best;\n"
          "        printf(\"%d\\n\", best);\n"
          "    }\n}\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic -o '%s' '%s' '%s' -lm && '%s' < '%s'",
             exe, src, drv, exe, rows);
    r = tc_run(cmd);
    if (r->status != 0)
        fail_msg("compiling or running %s: %s", src, r->err);
    assert_int_equal(count_lines(r->out), N);

    /* the library's predictions from the same file */
    static char meta[NB_META_MAX + 1];
    nb_file_opts fo = {.meta_out = meta, .meta_cap = sizeof meta};
    nb_error err;
    assert_int_equal(nb_safetensors_list(model, list_nothing, NULL, &fo, &err), NB_OK);
    nb_model *m = nb_model_new();
    nb_layer *net = NULL;
    nb_rng rng;
    nb_rng_seed(&rng, 1);
    nb_layer_opts lo = {.rng = &rng};
    if (nb_layer_from_description(m, "", meta, &lo, &net, &err) != NB_OK ||
        nb_model_load_safetensors(m, model, NULL, &err) != NB_OK)
        fail_msg("%s", err.msg);
    nb_tensor *y = nb_layer_forward(g, net, x, false);
    assert_non_null(y);
    const char *p = r->out;
    int right = 0;
    for (int i = 0; i < N; i++) {
        double logits[K];
        for (int j = 0; j < K; j++)
            logits[j] = nb_tensor_get(y, i * K + j);
        int want = argmax_of(logits, K), got = atoi(p);
        if (got != want)
            fail_msg("image %d: the compiled C predicts %d, the library %d", i, got, want);
        right += got == nb_dataset_label(test, i);
        p = strchr(p, '\n') + 1;
    }
    assert_true((double)right / N == eval_acc);

    nb_graph_free(g);
    nb_layer_free(net);
    nb_model_free(m);
    nb_dataset_free(test);
    nb_dataset_free(all);
    const char *files[] = {model, src, drv, exe, rows};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        remove(files[i]);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_cli PATH-OF-NABLA\n");
        return 2;
    }
    nabla = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_gradcheck_model),
        cmocka_unit_test(test_demo),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_trace_pictures),
        cmocka_unit_test(test_plot),
        cmocka_unit_test(test_train_eval),
        cmocka_unit_test(test_train_resume_counts),
        cmocka_unit_test(test_train_resume_early_stop),
        cmocka_unit_test(test_train_rmsprop_adagrad),
        cmocka_unit_test(test_train_csv_splits),
        cmocka_unit_test(test_train_regression),
        cmocka_unit_test(test_train_regression_errors),
        cmocka_unit_test(test_train_too_few_rows),
        cmocka_unit_test(test_train_layers),
        cmocka_unit_test(test_train_progress_bar),
        cmocka_unit_test(test_maxout_models),
        cmocka_unit_test(test_batch_norm_models),
        cmocka_unit_test(test_foreign_models),
        cmocka_unit_test(test_bad_model_metadata),
        cmocka_unit_test(test_csv_standardisation),
        cmocka_unit_test(test_load_across_data),
        cmocka_unit_test(test_diff_verdicts),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_special_files),
        cmocka_unit_test(test_train_recurrent),
        cmocka_unit_test(test_train_cnn),
        cmocka_unit_test(test_export_cnn_predictions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
