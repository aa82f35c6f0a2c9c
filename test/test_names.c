/* Public names agree: every function of the public headers that takes a
 * graph takes it first, as the ops do (nb_op(g, ...)). Function pointer
 * types and struct members count too: a callback the library calls with a
 * graph gets it first. The declarations of include/nabla.h and of every
 * header in include/nabla/ are read as text (comments, preprocessor lines
 * and __attribute__ lists left out); a parameter of type nb_graph * in any
 * other place fails the test, named by file, line and function. argv[1] is
 * the top of the source tree. */

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc.h"

static const char *top;

typedef struct verdict {
    int with_graph; /* declarations that take a graph */
    int misplaced;  /* ... not as their first parameter */
    char report[8192];
} verdict;

/* Blank (to spaces, newlines kept) what is not declaration text: comments,
 * preprocessor lines with their continuations, __attribute__((...)). */
static void blank_noise(char *s)
{
    size_t n = strlen(s);
    bool line_start = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '/' && s[i + 1] == '*') {
            size_t j = i;
            while (j < n && !(s[j] == '*' && s[j + 1] == '/'))
                j++;
            for (size_t k = i; k < j + 2 && k < n; k++)
                if (s[k] != '\n')
                    s[k] = ' ';
            i = j + 1;
        } else if (s[i] == '/' && s[i + 1] == '/') {
            while (i < n && s[i] != '\n')
                s[i++] = ' ';
        } else if (line_start && s[i] == '#') {
            for (bool continued = false; i < n && (s[i] != '\n' || continued); i++)
                if (s[i] == '\n')
                    continued = false;
                else {
                    continued = s[i] == '\\';
                    s[i] = ' ';
                }
        } else if (!strncmp(s + i, "__attribute__", 13)) {
            size_t j = i + 13;
            int depth = 0;
            while (j < n && isspace((unsigned char)s[j]))
                j++;
            do {
                if (s[j] == '(')
                    depth++;
                else if (s[j] == ')')
                    depth--;
                j++;
            } while (j < n && depth > 0);
            for (size_t k = i; k < j; k++)
                if (s[k] != '\n')
                    s[k] = ' ';
            i = j - 1;
        }
        if (s[i] == '\n')
            line_start = true;
        else if (!isspace((unsigned char)s[i]))
            line_start = false;
    }
}

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

/* Check the declaration text[from, to): its last top-level parenthesised
 * group is a parameter list when an identifier or "(*name)" comes before
 * it. A parameter of type nb_graph * after the first is reported. */
static void check_decl(verdict *v, const char *file, const char *text, const char *from,
                       const char *to)
{
    const char *open = NULL, *close = NULL;
    int depth = 0;
    for (const char *p = from; p < to; p++) {
        if (*p == '(' && depth++ == 0)
            open = p;
        else if (*p == ')' && --depth == 0)
            close = p;
    }
    if (!open || !close || close < open)
        return;
    const char *q = open;
    while (q > from && isspace((unsigned char)q[-1]))
        q--;
    const char *name_end = q, *name = q;
    if (q > from && q[-1] == ')') { /* (*name)(params) */
        const char *inner = q - 1;
        while (inner > from && *inner != '(')
            inner--;
        name = inner + 1;
        while (*name == '*' || isspace((unsigned char)*name))
            name++;
        name_end = name;
        while (isalnum((unsigned char)*name_end) || *name_end == '_')
            name_end++;
    } else {
        while (name > from && (isalnum((unsigned char)name[-1]) || name[-1] == '_'))
            name--;
    }
    if (name == name_end)
        return; /* not a function: a parenthesised value */
    int param = 0;
    depth = 0;
    for (const char *p = open + 1, *start = p; p <= close; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        else if ((*p == ',' && depth == 0) || p == close) {
            while (start < p && isspace((unsigned char)*start))
                start++;
            if (!strncmp(start, "const ", 6))
                start += 6;
            while (start < p && isspace((unsigned char)*start))
                start++;
            const char *t = start + 8;
            if (!strncmp(start, "nb_graph", 8) && !(isalnum((unsigned char)*t) || *t == '_')) {
                while (isspace((unsigned char)*t))
                    t++;
                if (*t == '*' && t[1] != '*') {
                    if (param == 0)
                        v->with_graph++;
                    else {
                        v->with_graph++;
                        v->misplaced++;
                        size_t used = strlen(v->report);
                        snprintf(v->report + used, sizeof v->report - used,
                                 "%s:%d: %.*s takes the graph as parameter %d; it goes first\n",
                                 file, line_of(text, name), (int)(name_end - name), name,
                                 param + 1);
                    }
                }
            }
            param++;
            start = p + 1;
        }
    }
}

/* Check every declaration of @p text (a header's contents, modified). */
static void check_text(verdict *v, const char *file, char *text)
{
    blank_noise(text);
    int depth = 0;
    const char *from = text;
    for (const char *p = text; *p; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        else if (depth == 0 && (*p == ';' || *p == '{' || *p == '}')) {
            check_decl(v, file, text, from, p);
            from = p + 1;
        }
    }
}

static void check_file(verdict *v, const char *rel)
{
    char *text = tc_slurp(top, rel);
    check_text(v, rel, text);
    free(text);
}

/* The reader finds what it should: misplaced graphs in a function, a
 * function pointer type and a struct member, across lines and after a
 * comment; none in declarations that keep the order. */
static void test_reader(void **state)
{
    (void)state;
    char sample[] = "/* a comment (nb_graph *g, x) */\n"
                    "#define NB_X(a, b) (a)\n"
                    "NB_API nb_tensor *nb_good(nb_graph *g, nb_tensor *x);\n"
                    "NB_API nb_tensor *nb_good_const(const nb_graph *g, int n);\n"
                    "NB_API nb_tensor *nb_bad(nb_layer *l,\n"
                    "                         nb_graph *g, bool on);\n"
                    "typedef nb_tensor *(*nb_bad_fn)(void *ud, const nb_graph *g);\n"
                    "typedef struct s { int (*member)(int k, nb_graph *g); } s;\n"
                    "NB_API nb_status nb_fmt(nb_graph *g, const char *fmt, ...)\n"
                    "    __attribute__((format(printf, 2, 3)));\n"
                    "NB_API int nb_none(int a, nb_graph_opts *o, nb_graph **out);\n";
    verdict v = {0};
    check_text(&v, "sample.h", sample);
    assert_int_equal(v.misplaced, 3);
    assert_int_equal(v.with_graph, 6);
    assert_non_null(strstr(v.report, "sample.h:5: nb_bad takes the graph as parameter 2"));
    assert_non_null(strstr(v.report, "sample.h:7: nb_bad_fn takes the graph as parameter 2"));
    assert_non_null(strstr(v.report, "sample.h:8: member takes the graph as parameter 2"));
}

static void test_graph_first(void **state)
{
    (void)state;
    verdict v = {0};
    check_file(&v, "include/nabla.h");
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/include/nabla", top);
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    int headers = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".h"))
            continue;
        char rel[512];
        snprintf(rel, sizeof rel, "include/nabla/%s", e->d_name);
        check_file(&v, rel);
        headers++;
    }
    closedir(d);
    assert_true(headers >= 10);
    assert_true(v.with_graph >= 100); /* the ops alone: the reader reads */
    if (v.misplaced)
        fail_msg("%d public declarations take a graph after their first parameter:\n%s",
                 v.misplaced, v.report);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_names SOURCE_ROOT\n");
        return 2;
    }
    top = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_graph_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
