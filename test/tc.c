/* Derivative checks for the op tests. See tc.h. */

#include "tc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>

void tc_near_(double a, double b, double tol, const char *what, const char *file, int line)
{
    if (!(fabs(a - b) <= tol)) {
        print_error("%s:%d: %s = %.17g, expected %.17g (tol %g)\n", file, line, what, a, b, tol);
        _fail(file, line);
    }
}

double tc_dot(const nb_tensor *a, const nb_tensor *b)
{
    assert_int_equal(nb_tensor_size(a), nb_tensor_size(b));
    double s = 0;
    for (int64_t i = 0; i < nb_tensor_size(a); i++)
        s += nb_tensor_get(a, i) * nb_tensor_get(b, i);
    return s;
}

/* Make the inputs in g (dtype dt) from the f64 values vals[i]. */
static void make_inputs(nb_graph *g, nb_dtype dt, int n, const tc_shape *shapes,
                        nb_tensor *const *vals, nb_tensor **in, unsigned no_grad)
{
    for (int i = 0; i < n; i++) {
        in[i] = nb_zeros(g, dt, shapes[i].rank, shapes[i].dims);
        assert_non_null(in[i]);
        for (int64_t k = 0; k < nb_tensor_size(in[i]); k++)
            nb_tensor_set(in[i], k, nb_tensor_get(vals[i], k));
        if (!(no_grad & (1u << i)))
            nb_tensor_set_requires_grad(in[i], true);
    }
}

/* <v, f(x)> with x = vals (values only). */
static double eval_dot(tc_fn f, void *ctx, int n, const tc_shape *shapes, nb_tensor *const *vals,
                       nb_tensor *v)
{
    nb_graph *g = nb_graph_new();
    nb_graph_set_recording(g, false);
    nb_tensor *in[8];
    make_inputs(g, NB_F64, n, shapes, vals, in, ~0u);
    nb_tensor *y = f(g, in, ctx);
    if (!y)
        fail_msg("evaluation failed: %s", nb_graph_error(g)->msg);
    double s = tc_dot(y, v);
    nb_graph_free(g);
    return s;
}

static bool close_rel(double a, double b, double tol)
{
    double scale = fmax(1.0, fmax(fabs(a), fabs(b)));
    return fabs(a - b) <= tol * scale;
}

void tc_check(const char *label, tc_fn f, void *ctx, int n_in, const tc_shape *shapes,
              const tc_opts *opts)
{
    tc_opts o = opts ? *opts : (tc_opts){0};
    if (o.lo == 0 && o.hi == 0)
        o.lo = -2, o.hi = 2;
    if (o.seed == 0)
        o.seed = 1;
    if (o.rel_tol == 0)
        o.rel_tol = 1e-6;
    if (o.dot_tol == 0)
        o.dot_tol = 1e-10;
    if (o.f32_tol == 0)
        o.f32_tol = 2e-3;
    assert_true(n_in >= 0 && n_in <= 8);

    nb_rng rng;
    nb_rng_seed(&rng, o.seed);
    nb_graph *keep = nb_graph_new(); /* holds the input values and seeds */
    nb_tensor *vals[8] = {0};
    for (int i = 0; i < n_in; i++) {
        vals[i] = nb_rand_uniform(keep, &rng, NB_F64, shapes[i].rank, shapes[i].dims, o.lo, o.hi);
        assert_non_null(vals[i]);
        if (o.integer_inputs)
            for (int64_t k = 0; k < nb_tensor_size(vals[i]); k++)
                nb_tensor_set(vals[i], k, round(nb_tensor_get(vals[i], k)));
    }

    /* reverse mode in f64 */
    nb_graph *g = nb_graph_new();
    nb_tensor *in[8];
    make_inputs(g, NB_F64, n_in, shapes, vals, in, o.no_grad_mask);
    nb_tensor *y = f(g, in, ctx);
    if (!y)
        fail_msg("%s: building failed: %s", label, nb_graph_error(g)->msg);
    nb_tensor *v =
        nb_rand_uniform(keep, &rng, NB_F64, nb_tensor_rank(y), nb_tensor_shape(y), -1, 1);
    nb_tensor *v_in_g =
        nb_tensor_from(g, NB_F64, nb_tensor_rank(y), nb_tensor_shape(y), nb_tensor_data(v));
    nb_tensor *grads[8] = {0};
    nb_tensor *xs[8];
    int n_x = 0;
    int which[8];
    for (int i = 0; i < n_in; i++)
        if (!(o.no_grad_mask & (1u << i))) {
            which[n_x] = i;
            xs[n_x++] = in[i];
        }
    if (n_x > 0 && nb_grad(g, y, v_in_g, xs, n_x, grads, false) != NB_OK)
        fail_msg("%s: reverse sweep failed: %s", label, nb_graph_error(g)->msg);

    /* 1. against central differences */
    for (int k = 0; k < n_x; k++) {
        int i = which[k];
        nb_tensor *xv = vals[i];
        for (int64_t e = 0; e < nb_tensor_size(xv); e++) {
            double x0 = nb_tensor_get(xv, e);
            double h = cbrt(2.220446049250313e-16) * fmax(1.0, fabs(x0));
            nb_tensor_set(xv, e, x0 + h);
            double fp = eval_dot(f, ctx, n_in, shapes, vals, v);
            nb_tensor_set(xv, e, x0 - h);
            double fm = eval_dot(f, ctx, n_in, shapes, vals, v);
            nb_tensor_set(xv, e, x0);
            double num = (fp - fm) / (2 * h);
            double ana = nb_tensor_get(grads[k], e);
            if (!close_rel(ana, num, o.rel_tol))
                fail_msg("%s: input %d element %lld: reverse %.12g, central difference %.12g",
                         label, i, (long long)e, ana, num);
        }
    }

    /* 2. <J u, v> = <u, J^T v> */
    if (n_x > 0) {
        nb_tensor *us[8];
        double rhs = 0;
        for (int k = 0; k < n_x; k++) {
            us[k] = nb_rand_uniform(g, &rng, NB_F64, nb_tensor_rank(xs[k]), nb_tensor_shape(xs[k]),
                                    -1, 1);
            rhs += tc_dot(us[k], grads[k]);
        }
        nb_tensor *ju = NULL;
        if (nb_jvp(g, y, xs, us, n_x, &ju) != NB_OK)
            fail_msg("%s: forward sweep failed: %s", label, nb_graph_error(g)->msg);
        double lhs = tc_dot(ju, v);
        if (!close_rel(lhs, rhs, o.dot_tol))
            fail_msg("%s: <J u, v> = %.17g but <u, J^T v> = %.17g", label, lhs, rhs);
    }

    /* 3. the f32 kernels agree with f64 */
    nb_graph *g32 = nb_graph_new();
    nb_tensor *in32[8];
    make_inputs(g32, NB_F32, n_in, shapes, vals, in32, o.no_grad_mask);
    nb_tensor *y32 = f(g32, in32, ctx);
    if (!y32)
        fail_msg("%s: f32 building failed: %s", label, nb_graph_error(g32)->msg);
    assert_int_equal(nb_tensor_dtype(y32), NB_F32);
    assert_int_equal(nb_tensor_size(y32), nb_tensor_size(y));
    for (int64_t e = 0; e < nb_tensor_size(y); e++)
        if (!close_rel(nb_tensor_get(y32, e), nb_tensor_get(y, e), o.f32_tol))
            fail_msg("%s: f32 value %lld is %.9g, f64 gives %.9g", label, (long long)e,
                     nb_tensor_get(y32, e), nb_tensor_get(y, e));
    if (n_x > 0) {
        nb_tensor *v32 = nb_zeros(g32, NB_F32, nb_tensor_rank(y), nb_tensor_shape(y));
        for (int64_t e = 0; e < nb_tensor_size(v); e++)
            nb_tensor_set(v32, e, nb_tensor_get(v, e));
        nb_tensor *xs32[8], *grads32[8];
        for (int k = 0; k < n_x; k++)
            xs32[k] = in32[which[k]];
        if (nb_grad(g32, y32, v32, xs32, n_x, grads32, false) != NB_OK)
            fail_msg("%s: f32 reverse sweep failed: %s", label, nb_graph_error(g32)->msg);
        for (int k = 0; k < n_x; k++)
            for (int64_t e = 0; e < nb_tensor_size(grads[k]); e++)
                if (!close_rel(nb_tensor_get(grads32[k], e), nb_tensor_get(grads[k], e), o.f32_tol))
                    fail_msg("%s: f32 gradient of input %d element %lld is %.9g, f64 %.9g", label,
                             which[k], (long long)e, nb_tensor_get(grads32[k], e),
                             nb_tensor_get(grads[k], e));
    }
    nb_graph_free(g32);
    nb_graph_free(g);
    nb_graph_free(keep);
}

void *tc_counting_alloc(void *ud, void *ptr, size_t old_size, size_t new_size)
{
    tc_counting *c = ud;
    (void)old_size;
    if (new_size == 0) {
        if (ptr)
            c->live--;
        free(ptr);
        return NULL;
    }
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at)
        return NULL;
    void *p = realloc(ptr, new_size);
    if (p && !ptr)
        c->live++;
    return p;
}

void tc_adjoint(nb_graph *g, nb_tensor *y, nb_tensor *x, nb_tensor *u, nb_tensor *v)
{
    nb_tensor *ju = NULL, *jtv = NULL;
    assert_int_equal(nb_jvp(g, y, &x, &u, 1, &ju), NB_OK);
    assert_int_equal(nb_grad(g, y, v, &x, 1, &jtv, false), NB_OK);
    double lhs = tc_dot(ju, v), rhs = tc_dot(u, jtv);
    tc_near(lhs, rhs, 1e-12 * fmax(1, fabs(rhs)));
    assert_true(fabs(rhs) > 1e-3); /* not a trivially zero product */
}

unsigned tc_oom_sweep(tc_oom_fn fn, void *ctx, int rank, const int64_t *shape, const char *where,
                      const char *const *msgs, int n_msgs)
{
    unsigned hit = 0, all = (1u << n_msgs) - 1;
    for (int shift = 0; shift < 400 && hit != all; shift++) {
        tc_counting c = {0};
        nb_graph *g = nb_graph_new_alloc(tc_counting_alloc, &c);
        assert_non_null(g);
        nb_tensor *x = nb_zeros(g, NB_F64, rank, shape);
        nb_tensor *filler = nb_zeros(g, NB_F64, 1, (int64_t[]){1 + shift * 97});
        assert_non_null(x);
        assert_non_null(filler);
        c.fail_at = c.calls + 1; /* the next chunk the arena asks for */
        nb_tensor *y = NULL;
        for (int k = 0; k < 64; k++) {
            y = fn(g, x, ctx);
            if (!y)
                break;
        }
        assert_null(y);
        assert_int_equal(nb_graph_status(g), NB_ERR_NOMEM);
        assert_string_equal(nb_graph_error(g)->where, where);
        for (int k = 0; k < n_msgs; k++)
            if (strstr(nb_graph_error(g)->msg, msgs[k]))
                hit |= 1u << k;
        nb_graph_free(g);
        assert_int_equal(c.live, 0);
    }
    return hit;
}

nb_status tc_add_listed(void *ud, const char *name, nb_dtype dt, int rank, const int64_t *shape)
{
    return nb_model_add(ud, name, dt, rank, shape, NULL);
}

tc_run_result *tc_run(const char *cmd)
{
    static tc_run_result r;
    char errpath[] = "/tmp/nabla-test-stderr-XXXXXX";
    int fd = mkstemp(errpath);
    assert_true(fd >= 0);
    close(fd);
    size_t len = strlen(cmd) + sizeof errpath + 8;
    char *full = malloc(len);
    assert_non_null(full);
    snprintf(full, len, "%s 2>'%s'", cmd, errpath);
    FILE *p = popen(full, "r");
    free(full);
    assert_non_null(p);
    size_t n = fread(r.out, 1, sizeof r.out - 1, p);
    r.out[n] = '\0';
    int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fopen(errpath, "r");
    assert_non_null(e);
    n = fread(r.err, 1, sizeof r.err - 1, e);
    r.err[n] = '\0';
    fclose(e);
    remove(errpath);
    return &r;
}

char *tc_slurp(const char *top, const char *rel)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", top, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    do {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 4096 + 1;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}
