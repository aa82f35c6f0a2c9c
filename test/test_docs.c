/* The command output that docs/modes.md and docs/figures/ show is the
 * output of the nabla built here, so the two cannot drift apart. argv[1] is
 * the nabla binary, argv[2] the top of the source tree.
 *
 * - docs/modes.md: a code block whose first line is "$ nabla ARGS" holds
 *   commands, each followed by lines of its output; a ```sh block holding
 *   "nabla ARGS" is followed by plain ``` blocks of excerpts of its output.
 *   Each shown line must be a line the command prints.
 * - the .txt files of docs/figures/ written by docs/figures.sh with `"$nabla" modes` or
 *   `"$nabla" trace` must equal what the command prints now.
 * - docs/training.md, "Regression": its indented ```c blocks are excerpts
 *   of docs/examples/regression.c (which the suite builds and runs), word
 *   for word; the commands of "Regression from the command line" run on
 *   docs/examples/curve.csv print the lines shown, numbers within 3 %
 *   (other builds round f32 sums differently) and times not compared.
 * - docs/gradcheck.md ("Checking a whole model") shows the code of
 *   docs/examples/model_check.c between its markers, to the byte, and lines
 *   of its output: argv[3], when given, is that program, and then only its
 *   output is checked (docs/examples/meson.build runs it so).
 * Times (the column under a header "ms") are masked on both sides. */

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tc.h"

static const char *nabla, *top, *model_check;      /* argv[3] or NULL */
static char tmp[] = "/tmp/nabla-test-docs-XXXXXX"; /* commands run and write here */

/* Lines of @p text, with the last field of every row under a header line
 * ending in " ms" replaced by " *" (until a blank line). Returns the count;
 * lines point into a copy the caller frees with free(lines[0]). */
static int split_masked(const char *text, char ***lines_out)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    int cap = 16, n = 0;
    char **lines = malloc((size_t)cap * sizeof *lines);
    assert_non_null(lines);
    bool timed = false;
    for (char *p = copy; *p;) {
        char *end = strchr(p, '\n');
        if (end)
            *end = '\0';
        size_t len = strlen(p);
        if (len == 0)
            timed = false;
        else if (len > 3 && strcmp(p + len - 3, " ms") == 0)
            timed = true;
        else if (timed) {
            char *last = strrchr(p, ' '); /* the field and the spaces before it */
            if (last && last[1]) {
                while (last > p && last[-1] == ' ')
                    last--;
                strcpy(last, " *");
            }
        }
        if (n == cap) {
            cap *= 2;
            lines = realloc(lines, (size_t)cap * sizeof *lines);
            assert_non_null(lines);
        }
        lines[n++] = p;
        if (!end)
            break;
        p = end + 1;
    }
    if (n == 0)
        free(copy); /* nothing points into it */
    *lines_out = lines;
    return n;
}

static void free_lines(char **lines, int n)
{
    if (n > 0)
        free(lines[0]);
    free(lines);
}

/* stdout of "nabla ARGS" (exit status 0 required), malloc'd. */
static char *nabla_out(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s", tmp, nabla, args);
    tc_run_result *r = tc_run(cmd);
    if (r->status != 0)
        fail_msg("nabla %s: exit status %d: %s", args, r->status, r->err);
    assert_true(strlen(r->out) < sizeof r->out - 1); /* not cut */
    char *out = strdup(r->out);
    assert_non_null(out);
    return out;
}

/* Every line of @p shown (n lines) is a line of @p printed. */
static void lines_printed(const char *doc, const char *args, char *const *shown, int n,
                          const char *printed)
{
    char **got;
    int n_got = split_masked(printed, &got);
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (int k = 0; k < n_got && !found; k++)
            found = strcmp(shown[i], got[k]) == 0;
        if (!found)
            fail_msg("%s shows for `nabla %s` the line\n  \"%s\"\nwhich nabla does not print; it "
                     "prints:\n%s",
                     doc, args, shown[i], printed);
    }
    free_lines(got, n_got);
}

/* The command blocks of one page of docs/ (see the top of this file). */
static int check_commands(const char *doc)
{
    char *md = tc_slurp(top, doc);
    char **lines;
    int n = split_masked(md, &lines);
    char *excerpts_of = NULL, *excerpts_args = NULL; /* the last ```sh command */
    int checked = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(lines[i], "```", 3) != 0)
            continue;
        bool sh = strcmp(lines[i], "```sh") == 0;
        int start = ++i;
        while (i < n && strncmp(lines[i], "```", 3) != 0)
            i++;
        if (sh && i > start && strncmp(lines[start], "nabla ", 6) == 0) {
            free(excerpts_of);
            free(excerpts_args);
            excerpts_args = strdup(lines[start] + 6);
            excerpts_of = nabla_out(excerpts_args);
        } else if (!sh && i > start && strncmp(lines[start], "$ nabla ", 8) == 0) {
            /* commands, each followed by lines of its output */
            for (int c = start; c < i;) {
                const char *args = lines[c] + 8;
                int first = ++c;
                while (c < i && strncmp(lines[c], "$ nabla ", 8) != 0)
                    c++;
                char *out = nabla_out(args);
                lines_printed(doc, args, lines + first, c - first, out);
                free(out);
                checked += c - first;
            }
        } else if (!sh && excerpts_of) {
            lines_printed(doc, excerpts_args, lines + start, i - start, excerpts_of);
            checked += i - start;
        }
    }
    free(excerpts_of);
    free(excerpts_args);
    free_lines(lines, n);
    free(md);
    return checked;
}

static void test_modes_md(void **state)
{
    (void)state;
    assert_true(check_commands("docs/modes.md") > 20); /* the trace excerpts, both modes tables */
}

static void test_teaching_md(void **state)
{
    (void)state;
    /* the evaluation, both sweeps, the fan-out rows and a modes table */
    assert_true(check_commands("docs/teaching.md") > 30);
}

/* The text figures docs/figures.sh makes with `modes` and `trace`. */
static void test_figures(void **state)
{
    (void)state;
    char *sh = tc_slurp(top, "docs/figures.sh");
    char **lines;
    int n = split_masked(sh, &lines);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        /* "$nabla" modes --n 1000 --m 1 > "$out/modes-1000x1.txt", possibly
         * continued on the next line after a backslash */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s", lines[i]);
        while (cmd[0] && cmd[strlen(cmd) - 1] == '\\' && i + 1 < n) {
            cmd[strlen(cmd) - 1] = '\0';
            strncat(cmd, lines[++i], sizeof cmd - strlen(cmd) - 1);
        }
        const char *p = cmd + strspn(cmd, " ");
        if (strncmp(p, "\"$nabla\" modes ", 15) != 0 && strncmp(p, "\"$nabla\" trace ", 15) != 0)
            continue;
        char *redirect = strstr(p, " > \"$out/");
        assert_non_null(redirect);
        char figure[256];
        snprintf(figure, sizeof figure, "docs/figures/%.*s", (int)strcspn(redirect + 9, "\""),
                 redirect + 9);
        /* the arguments; files the command writes go to tmp */
        char args[1024] = "";
        for (const char *q = p + 9; q < redirect;) {
            const char *o = strstr(q, "\"$out/");
            if (!o || o >= redirect) {
                strncat(args, q, (size_t)(redirect - q));
                break;
            }
            strncat(args, q, (size_t)(o - q));
            strncat(args, "\"", 2);
            strncat(args, tmp, sizeof args - strlen(args) - 1);
            strncat(args, "/", 2);
            q = o + 6;
        }
        char *want = tc_slurp(top, figure), *got = nabla_out(args);
        char **w, **g;
        int nw = split_masked(want, &w), ng = split_masked(got, &g);
        for (int k = 0; k < nw || k < ng; k++)
            if (k >= nw || k >= ng || strcmp(w[k], g[k]) != 0)
                fail_msg("%s is not what `nabla %s` prints now (line %d):\n%s\nRun "
                         "docs/figures.sh.",
                         figure, args, k + 1, got);
        free_lines(w, nw);
        free_lines(g, ng);
        free(want);
        free(got);
        checked++;
        /* the pictures and pages trace writes (--svg, --html) are the
         * committed ones, byte for byte */
        for (const char *q = strstr(p, "\"$out/"); q && q < redirect; q = strstr(q + 1, "\"$out/")) {
            char name[128], fig[256], made[512];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(q + 6, "\""), q + 6);
            size_t len = strlen(name);
            if (len < 5 || (strcmp(name + len - 4, ".svg") && strcmp(name + len - 5, ".html")))
                continue;
            snprintf(fig, sizeof fig, "docs/figures/%s", name);
            snprintf(made, sizeof made, "%s/%s", tmp, name);
            char *committed = tc_slurp(top, fig), *now = tc_slurp("", made);
            if (strcmp(committed, now) != 0)
                fail_msg("%s is not what `nabla %s` writes now. Run docs/figures.sh.", fig, args);
            free(committed);
            free(now);
            checked++;
        }
    }
    assert_true(checked >= 3); /* the trace and the two modes figures */
    free_lines(lines, n);
    free(sh);
}

/* The checkpoint header docs/optim.md shows ("Format, version 2") is the
 * one nb_model_save writes for the model it describes: a 2x2 weight and a
 * bias, one momentum step with gradients of ones, the RNG seeded with 1,
 * the caller's metadata arch=mlp. The block's line breaks and the spaces
 * that start its lines are not in the file. */
static void test_checkpoint_header(void **state)
{
    (void)state;
    char *doc = tc_slurp(top, "docs/optim.md");
    const char *sec = strstr(doc, "### Format, version 2");
    assert_non_null(sec);
    const char *open = strstr(sec, "```\n{");
    assert_non_null(open);
    open += 4;
    const char *close = strstr(open, "\n```");
    assert_non_null(close);
    char *want = malloc((size_t)(close - open) + 1);
    size_t n = 0;
    for (const char *p = open; p < close; p++) {
        if (*p == '\n') {
            while (p[1] == ' ')
                p++;
            continue;
        }
        want[n++] = *p;
    }
    want[n] = '\0';

    nb_model *m = nb_model_new();
    nb_tensor *w, *b;
    assert_int_equal(nb_model_add(m, "fc.weight", NB_F32, 2, (int64_t[]){2, 2}, &w), NB_OK);
    assert_int_equal(nb_model_add(m, "fc.bias", NB_F32, 1, (int64_t[]){2}, &b), NB_OK);
    for (int i = 0; i < 4; i++) {
        nb_tensor_set(w, i, 0.5 * i);
        nb_tensor_set(nb_tensor_grad(w), i, 1);
    }
    for (int i = 0; i < 2; i++)
        nb_tensor_set(nb_tensor_grad(b), i, 1);
    nb_optim_opts o = nb_optim_defaults(NB_OPTIM_MOMENTUM);
    nb_optim *opt = nb_optim_new(&o);
    assert_int_equal(nb_optim_step(opt, m), NB_OK);
    nb_rng r;
    nb_rng_seed(&r, 1);
    char path[128];
    snprintf(path, sizeof path, "%s/header.ckpt", tmp);
    nb_ckpt_opts co = {.rng = &r, .meta = "arch=mlp"};
    nb_error err;
    assert_int_equal(nb_model_save(m, opt, path, &co, &err), NB_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char len[8];
    assert_int_equal(fread(len, 1, 8, f), 8);
    size_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | len[i];
    char *got = calloc(1, hn + 1);
    assert_int_equal(fread(got, 1, hn, f), hn);
    fclose(f);
    while (hn > 0 && got[hn - 1] == ' ')
        got[--hn] = '\0'; /* the padding */
    assert_string_equal(got, want);
    free(got);
    free(want);
    free(doc);
    nb_optim_free(opt);
    nb_model_free(m);
}

/* The code of section @p section of the page @p page between the markers
 * @p begin and @p end is the text of docs/examples/@p example between the
 * same markers, to the byte (the suite builds and runs the example). */
static void same_as_example(const char *page, const char *section, const char *example,
                            const char *begin, const char *end)
{
    char *doc = tc_slurp(top, page);
    char path[128];
    snprintf(path, sizeof path, "docs/examples/%s", example);
    char *ex = tc_slurp(top, path);
    const char *a = strstr(ex, begin), *b = strstr(ex, end);
    assert_non_null(a);
    assert_non_null(b);
    const char *sec = strstr(doc, section);
    assert_non_null(sec);
    const char *c = strstr(sec, begin), *d = c ? strstr(c, end) : NULL;
    assert_non_null(d);
    assert_int_equal(d - c, b - a);
    assert_memory_equal(c, a, (size_t)(b - a));
    free(doc);
    free(ex);
}

/* docs/models.md's layer of its own, recurrent and convolutional networks
 * are the examples' (tests 'custom-layer', 'rnn-rows', 'cnn-digits'), and
 * docs/distributed.md's loop (test 'dist-loop'). */
static void test_custom_layer_block(void **state)
{
    (void)state;
    same_as_example("docs/models.md", "## Your own layers", "custom_layer.c",
                    "/* --- the layer: ", "/* --- end of the layer --- */");
    same_as_example("docs/models.md", "## A recurrent network", "rnn_rows.c",
                    "    /* --- the network --- */", "    /* --- end of the network --- */");
    same_as_example("docs/models.md", "## A convolutional network", "cnn_digits.c",
                    "    /* --- the network --- */", "    /* --- end of the network --- */");
    /* docs/distributed.md's training loop is the example's (test 'dist-loop') */
    same_as_example("docs/distributed.md", "## Your own training loop", "dist_loop.c",
                    "    /* --- the loop --- */", "    /* --- end of the loop --- */");
}

/* The program excerpts of the regression section are in its program. */
static void test_regression_excerpts(void **state)
{
    (void)state;
    char *md = tc_slurp(top, "docs/training.md"),
         *prog = tc_slurp(top, "docs/examples/regression.c");
    char *sec = strstr(md, "\n## 11. Regression\n");
    assert_non_null(sec);
    char *end = strstr(sec + 1, "\n## ");
    if (end)
        *end = '\0';
    int checked = 0;
    for (char *p = strstr(sec, "```c\n"); p; p = strstr(p, "```c\n")) {
        p += 5;
        char *close = strstr(p, "```");
        assert_non_null(close);
        *close = '\0';
        if (strncmp(p, "    ", 4) == 0) { /* indented: a piece of main() */
            if (!strstr(prog, p))
                fail_msg("docs/training.md shows\n%swhich docs/examples/regression.c does not "
                         "hold",
                         p);
            checked++;
        }
        p = close + 1;
    }
    assert_true(checked >= 3);
    free(md);
    free(prog);
}

/* Whether the @p n bytes at @p a and at @p b are the same number within
 * 3 % or 0.002 (false when either is not a number). */
static bool same_number(const char *a, size_t na, const char *b, size_t nb)
{
    char x[64], y[64];
    if (na == 0 || nb == 0 || na >= sizeof x || nb >= sizeof y)
        return false;
    memcpy(x, a, na), x[na] = '\0';
    memcpy(y, b, nb), y[nb] = '\0';
    char *ex, *ey;
    double u = strtod(x, &ex), v = strtod(y, &ey);
    return *ex == '\0' && *ey == '\0' && fabs(u - v) <= fmax(0.002, 0.03 * fabs(v));
}

/* Whether @p shown is @p printed, word by word (split at spaces; the
 * punctuation ,;%) after a word kept apart): numbers may differ a little,
 * a number followed by the word "s" (seconds) at will. */
static bool same_line(const char *shown, const char *printed)
{
    const char *p = shown, *q = printed;
    for (;;) {
        size_t sp = strspn(p, " "), sq = strspn(q, " ");
        if (sp != sq)
            return false;
        p += sp, q += sq;
        if (!*p || !*q)
            return !*p && !*q;
        size_t np = strcspn(p, " "), nq = strcspn(q, " ");
        size_t cp = np, cq = nq; /* without trailing punctuation */
        while (cp > 0 && strchr(",;%)", p[cp - 1]))
            cp--;
        while (cq > 0 && strchr(",;%)", q[cq - 1]))
            cq--;
        bool seconds = !strncmp(p + np, " s", 2) &&
                       (p[np + 2] == '\0' || p[np + 2] == ' ' || p[np + 2] == ';');
        bool word_equal = np == nq && !memcmp(p, q, np);
        if (!word_equal && !(np - cp == nq - cq && !memcmp(p + cp, q + cq, np - cp) &&
                             (seconds || same_number(p, cp, q, cq))))
            return false;
        p += np, q += nq;
    }
}

/* docs/training.md, "Regression from the command line": each ```sh
 * command (nabla train, nabla eval on docs/examples/curve.csv, run in the
 * temporary directory) prints the lines of the ``` block after it. */
static void test_regression_commands(void **state)
{
    (void)state;
    char *md = tc_slurp(top, "docs/training.md");
    char *sec = strstr(md, "\n### Regression from the command line\n");
    assert_non_null(sec);
    char *end = strstr(sec + 1, "\n## ");
    if (end)
        *end = '\0';
    char abs_dir[2048], *out = NULL;
    assert_true(top[0] == '/'); /* meson passes the source root absolute */
    snprintf(abs_dir, sizeof abs_dir, "%s/docs/examples/", top);
    int commands = 0, checked = 0;
    for (char *p = strstr(sec, "\n```"); p; p = strstr(p, "\n```")) {
        p += 4;
        bool sh = !strncmp(p, "sh\n", 3);
        char *body = strchr(p, '\n') + 1, *close = strstr(body, "\n```");
        assert_non_null(close);
        *close = '\0';
        if (sh && !strncmp(body, "nabla ", 6)) {
            /* docs/examples/... read from the source tree */
            char args[8192];
            size_t len = 0;
            for (const char *q = body + 6; *q;) {
                const char *hit = strstr(q, "docs/examples/");
                size_t n = hit ? (size_t)(hit - q) : strlen(q);
                assert_true(len + n + strlen(abs_dir) < sizeof args);
                memcpy(args + len, q, n);
                len += n;
                if (!hit)
                    break;
                memcpy(args + len, abs_dir, strlen(abs_dir));
                len += strlen(abs_dir);
                q = hit + strlen("docs/examples/");
            }
            args[len] = '\0';
            free(out);
            out = nabla_out(args);
            /* and named as the docs name them */
            for (char *hit; (hit = strstr(out, abs_dir));) {
                size_t k = strlen(abs_dir), m = strlen("docs/examples/");
                memmove(hit + m, hit + k, strlen(hit + k) + 1);
                memcpy(hit, "docs/examples/", m);
            }
            commands++;
        } else if (!sh && out) {
            char **shown, **got;
            int n = split_masked(body, &shown), n_got = split_masked(out, &got);
            for (int i = 0; i < n; i++) {
                bool found = false;
                for (int k = 0; k < n_got && !found; k++)
                    found = same_line(shown[i], got[k]);
                if (!found)
                    fail_msg("docs/training.md shows the line\n  \"%s\"\nwhich nabla does not "
                             "print; it prints:\n%s",
                             shown[i], out);
                checked++;
            }
            free_lines(shown, n);
            free_lines(got, n_got);
        }
        p = close + 1;
    }
    assert_int_equal(commands, 2);
    assert_true(checked >= 5);
    free(out);
    free(md);
}

/* The code docs/gradcheck.md shows is docs/examples/model_check.c's. */
static void test_model_check_code(void **state)
{
    (void)state;
    same_as_example("docs/gradcheck.md", "## Checking a whole model", "model_check.c",
                    "/* --- the check --- */", "/* --- end of the check --- */");
    same_as_example("docs/gradcheck.md", "## Checking a whole model", "model_check.c",
                    "/* --- the bug --- */", "/* --- end of the bug --- */");
}

/* @p line with every number that has a decimal point or an exponent made
 * "#": their last digits depend on the order a machine sums in. */
static void mask_reals(char *line)
{
    char out[2048];
    size_t n = 0;
    for (const char *p = line; *p && n + 2 < sizeof out;) {
        bool in_word = p > line && (isalnum((unsigned char)p[-1]) || strchr("_.", p[-1]));
        const char *q = p + (*p == '-');
        if (in_word || !isdigit((unsigned char)*q)) {
            out[n++] = *p++;
            continue;
        }
        bool real = false;
        while (isdigit((unsigned char)*q))
            q++;
        if (*q == '.' && isdigit((unsigned char)q[1]))
            for (real = true, q++; isdigit((unsigned char)*q);)
                q++;
        if (*q == 'e' && (isdigit((unsigned char)q[1]) ||
                          (strchr("+-", q[1]) && q[1] && isdigit((unsigned char)q[2]))))
            for (real = true, q += 2; isdigit((unsigned char)*q);)
                q++;
        if (real) {
            out[n++] = '#';
        } else {
            for (; p < q && n + 2 < sizeof out; p++)
                out[n++] = *p;
        }
        p = q;
    }
    out[n] = '\0';
    strcpy(line, out);
}

/* Every line of the output docs/gradcheck.md shows (but "...") is a line
 * model_check prints. */
static void test_model_check_output(void **state)
{
    (void)state;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s'", model_check);
    tc_run_result *r = tc_run(cmd);
    if (r->status != 0)
        fail_msg("%s: exit status %d: %s", model_check, r->status, r->err);
    char **got;
    int n_got = split_masked(r->out, &got);
    for (int k = 0; k < n_got; k++)
        mask_reals(got[k]);
    char *doc = tc_slurp(top, "docs/gradcheck.md");
    const char *sec = strstr(doc, "## Checking a whole model");
    assert_non_null(sec);
    const char *open = strstr(sec, "```\n== ");
    assert_non_null(open);
    char **shown;
    int n = split_masked(open + 4, &shown), checked = 0;
    for (int i = 0; i < n && strcmp(shown[i], "```") != 0; i++) {
        if (!strcmp(shown[i], "..."))
            continue;
        mask_reals(shown[i]);
        bool found = false;
        for (int k = 0; k < n_got && !found; k++)
            found = strcmp(shown[i], got[k]) == 0;
        if (!found)
            fail_msg("docs/gradcheck.md shows the line\n  \"%s\"\nwhich %s does not print; it "
                     "prints:\n%s",
                     shown[i], model_check, r->out);
        checked++;
    }
    assert_true(checked > 15); /* the three verdicts and the failure's details */
    free_lines(shown, n);
    free_lines(got, n_got);
    free(doc);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_docs PATH-OF-NABLA TOP-OF-SOURCE-TREE\n");
        return 2;
    }
    static char exe[4096]; /* absolute: the commands run in tmp */
    char cwd[2048];
    if (argv[1][0] == '/')
        snprintf(exe, sizeof exe, "%s", argv[1]);
    else if (getcwd(cwd, sizeof cwd))
        snprintf(exe, sizeof exe, "%s/%s", cwd, argv[1]);
    nabla = exe;
    top = argv[2];
    model_check = argc > 3 ? argv[3] : NULL;
    if (!mkdtemp(tmp)) {
        perror(tmp);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_md),
        cmocka_unit_test(test_teaching_md),
        cmocka_unit_test(test_figures),
        cmocka_unit_test(test_checkpoint_header),
        cmocka_unit_test(test_custom_layer_block),
        cmocka_unit_test(test_regression_excerpts),
        cmocka_unit_test(test_regression_commands),
        cmocka_unit_test(test_model_check_code),
    };
    const struct CMUnitTest output_tests[] = {
        cmocka_unit_test(test_model_check_output),
    };
    int rc = model_check ? cmocka_run_group_tests(output_tests, NULL, NULL)
                         : cmocka_run_group_tests(tests, NULL, NULL);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", tmp);
    return system(rm) == 0 ? rc : 1;
}
