/* The trace of a small graph: values, local derivatives (one Jacobian per
 * edge, from the op re-run on fresh f64 leaves), one forward sweep per
 * input element and the reverse sweep, by plain arithmetic on those
 * numbers, checked against nb_grad and nb_jvp. */

#include "trace.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nabla/op.h"
#include "nabla/ops.h"

/* ------------------------------------------------------------ numbers */

const char *nbt_num(char *buf, size_t n, double v, int digits)
{
    if (v == 0)
        v = 0; /* -0 reads as a sign error to a student */
    if (isnan(v))
        snprintf(buf, n, "nan");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else
        snprintf(buf, n, "%.*g", digits, v);
    return buf;
}

/* ------------------------------------------------------------ building */

static void trace_free_nodes(nb_trace *tr)
{
    for (int k = 0; k < tr->n; k++) {
        free(tr->nodes[k].in);
        free(tr->nodes[k].jac);
    }
}

void nb_trace_free(nb_trace *tr)
{
    if (!tr)
        return;
    trace_free_nodes(tr);
    free(tr->nodes);
    free(tr->off);
    free(tr->value);
    free(tr->tangent);
    free(tr->adjoint);
    free(tr->adj_mag);
    free(tr->fwd_mag);
    free(tr->sweep_input);
    free(tr->sweep_elem);
    free(tr->jac_block);
    free(tr->steps);
    free(tr->step_nums);
    free(tr);
}

static const char *infix_of(const char *op)
{
    static const struct {
        const char *op, *sym;
    } infix[] = {{"add", " + "}, {"sub", " - "}, {"mul", "*"}, {"div", "/"}, {"pow", "^"}};
    for (size_t i = 0; i < sizeof infix / sizeof *infix; i++)
        if (!strcmp(op, infix[i].op))
            return infix[i].sym;
    return NULL;
}

/* The op of node k written as in a formula: "w*x", "h1 + b", "-h2",
 * "exp(h3)", "matmul(W, x)". */
static void write_text(nb_trace *tr, int k)
{
    nbt_tnode *nd = &tr->nodes[k];
    const char *sym = nd->n_in == 2 ? infix_of(nd->op) : NULL;
    if (sym) {
        snprintf(nd->text, sizeof nd->text, "%s%s%s", tr->nodes[nd->in[0]].label, sym,
                 tr->nodes[nd->in[1]].label);
        return;
    }
    if (nd->n_in == 1 && !strcmp(nd->op, "neg")) {
        snprintf(nd->text, sizeof nd->text, "-%s", tr->nodes[nd->in[0]].label);
        return;
    }
    size_t len = (size_t)snprintf(nd->text, sizeof nd->text, "%s(", nd->op);
    for (int i = 0; i < nd->n_in && len < sizeof nd->text; i++)
        len += (size_t)snprintf(nd->text + len, sizeof nd->text - len, "%s%s", i ? ", " : "",
                                tr->nodes[nd->in[i]].label);
    if (len < sizeof nd->text)
        snprintf(nd->text + len, sizeof nd->text - len, ")");
}

static int find_node(nb_tensor *const *list, int n, const nb_tensor *t)
{
    for (int k = 0; k < n; k++)
        if (list[k] == t)
            return k;
    return -1;
}

/* Keep the tensors y needs, a listed input cutting the walk (an
 * intermediate input is a leaf of the trace); order kept. */
static int prune(nb_tensor **all, int n_all, nb_tensor *const *xs, int n)
{
    bool *need = calloc((size_t)n_all, sizeof *need);
    if (!need)
        return -1;
    need[n_all - 1] = true;
    for (int k = n_all - 1; k >= 0; k--) {
        if (!need[k] || find_node(xs, n, all[k]) >= 0 || nb_op_find(nb_tensor_op_name(all[k])) < 0)
            continue;
        for (int i = 0; i < nb_op_n_inputs(all[k]); i++) {
            int j = find_node(all, k, nb_op_input(all[k], i));
            if (j >= 0)
                need[j] = true;
        }
    }
    int m = 0;
    for (int k = 0; k < n_all; k++)
        if (need[k])
            all[m++] = all[k];
    free(need);
    return m;
}

/* The Jacobian of each input edge of op node k: the op applied again on
 * f64 copies of its inputs in @p scratch, one reverse sweep per output
 * element (seeded one-hot). */
static nb_status local_jacobians(nb_trace *tr, nb_graph *scratch, int k, nb_error *err)
{
    nbt_tnode *nd = &tr->nodes[k];
    nb_tensor *in[NBT_MAX_IN], *d[NBT_MAX_IN];
    nb_graph_reset(scratch);
    for (int i = 0; i < nd->n_in; i++) {
        const nbt_tnode *src = &tr->nodes[nd->in[i]];
        in[i] = nb_tensor_set_requires_grad(
            nb_tensor_from(scratch, NB_F64, src->rank, src->shape, tr->value + tr->off[nd->in[i]]),
            true);
    }
    nb_tensor *y = nb_apply(scratch, nb_op_find(nd->op), in, nd->n_in, nb_op_attrs(nd->t));
    if (!y)
        goto fail;
    if (nb_tensor_size(y) != nd->m)
        return nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                            "%s = %s: re-running the op gave %lld elements, not %d", nd->label,
                            nd->op, (long long)nb_tensor_size(y), nd->m);
    for (int i = 0; i < nd->n_in; i++)
        memset(nd->jac[i], 0, (size_t)nd->m * (size_t)tr->nodes[nd->in[i]].m * sizeof(double));
    if (!nb_tensor_requires_grad(y))
        return NB_OK; /* comparisons, sign: zero derivatives */
    for (int j = 0; j < nd->m; j++) {
        nb_tensor *seed = nb_zeros(scratch, NB_F64, nd->rank, nd->shape);
        if (!seed || nb_tensor_set(seed, j, 1.0) != NB_OK)
            goto fail;
        if (nb_grad(scratch, y, seed, in, nd->n_in, d, false) != NB_OK)
            goto fail;
        for (int i = 0; i < nd->n_in; i++) {
            int mi = tr->nodes[nd->in[i]].m;
            for (int l = 0; l < mi; l++)
                nd->jac[i][j * mi + l] = nb_tensor_get(d[i], l);
        }
    }
    return NB_OK;
fail:;
    const nb_error *e = nb_graph_error(scratch);
    return nb_error_set(err, e->status ? e->status : NB_ERR_NOMEM, "nb_trace_new",
                        "local derivatives of %s = %s: %s", nd->label, nd->op, e->msg);
}

/* Read the nodes: labels, shapes, values, inputs; allocate the Jacobians. */
static nb_status read_nodes(nb_trace *tr, nb_tensor **all, nb_tensor *const *xs, int n,
                            nb_error *err)
{
    int h = 0, c = 0;
    int64_t total = 0;
    for (int k = 0; k < tr->n; k++) {
        nbt_tnode *nd = &tr->nodes[k];
        nb_tensor *t = all[k];
        nd->t = t;
        nd->rank = nb_tensor_rank(t);
        memcpy(nd->shape, nb_tensor_shape(t), (size_t)nd->rank * sizeof *nd->shape);
        if (nb_tensor_size(t) > NB_TRACE_MAX_NUMEL) {
            char shape[96];
            return nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                                "nb_trace_new: a tensor of shape %s (%lld elements) is larger "
                                "than a trace shows (%d)",
                                nb_shape_str(nd->rank, nd->shape, shape, sizeof shape),
                                (long long)nb_tensor_size(t), NB_TRACE_MAX_NUMEL);
        }
        nd->m = (int)nb_tensor_size(t);
        tr->off[k] = total;
        total += nd->m;
        int x = find_node(xs, n, t);
        const char *name = nb_tensor_name(t);
        if (x >= 0) {
            nd->kind = NBT_INPUT;
            nd->input = x;
            if (name && *name)
                snprintf(nd->label, sizeof nd->label, "%s", name);
            else
                snprintf(nd->label, sizeof nd->label, "x%d", x + 1);
        } else if (nb_op_find(nb_tensor_op_name(t)) < 0) {
            nd->kind = NBT_CONST;
            if (name && *name)
                snprintf(nd->label, sizeof nd->label, "%s", name);
            else if (nd->m == 1)
                nbt_num(nd->label, sizeof nd->label, nb_tensor_get(t, 0), 6);
            else
                snprintf(nd->label, sizeof nd->label, "c%d", ++c);
        } else {
            nd->kind = NBT_OP;
            nd->op = nb_tensor_op_name(t);
            snprintf(nd->label, sizeof nd->label, "h%d", ++h);
            nd->n_in = nb_op_n_inputs(t);
            if (nd->n_in > NBT_MAX_IN)
                return nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                                    "nb_trace_new: op %s has %d inputs; a trace follows up to %d",
                                    nd->op, nd->n_in, NBT_MAX_IN);
            nd->in = calloc((size_t)nd->n_in + 1, sizeof *nd->in);
            nd->jac = calloc((size_t)nd->n_in + 1, sizeof *nd->jac);
            if (!nd->in || !nd->jac)
                return nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
            for (int i = 0; i < nd->n_in; i++)
                nd->in[i] = find_node(all, k, nb_op_input(t, i));
        }
    }
    tr->total = total;
    tr->value = malloc((size_t)total * sizeof *tr->value);
    if (!tr->value)
        return nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
    for (int k = 0; k < tr->n; k++) {
        nbt_tnode *nd = &tr->nodes[k];
        for (int j = 0; j < nd->m; j++)
            tr->value[tr->off[k] + j] = nb_tensor_get(nd->t, j);
        nd->active = nd->kind == NBT_INPUT;
        for (int i = 0; i < nd->n_in; i++)
            nd->active = nd->active || tr->nodes[nd->in[i]].active;
        if (nd->kind == NBT_OP)
            write_text(tr, k);
    }
    return NB_OK;
}

/* Jacobians of the active op nodes, in one block. */
static nb_status all_jacobians(nb_trace *tr, nb_error *err)
{
    size_t need = 0;
    for (int k = 0; k < tr->n; k++)
        for (int i = 0; tr->nodes[k].active && i < tr->nodes[k].n_in; i++)
            need += (size_t)tr->nodes[k].m * (size_t)tr->nodes[tr->nodes[k].in[i]].m;
    tr->jac_block = malloc((need ? need : 1) * sizeof(double));
    nb_graph *scratch = nb_graph_new();
    nb_status rc = NB_OK;
    if (!tr->jac_block || !scratch)
        rc = nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
    double *p = tr->jac_block;
    for (int k = 0; k < tr->n && rc == NB_OK; k++) {
        nbt_tnode *nd = &tr->nodes[k];
        if (!nd->active || nd->kind != NBT_OP)
            continue;
        for (int i = 0; i < nd->n_in; i++) {
            nd->jac[i] = p;
            p += (size_t)nd->m * (size_t)tr->nodes[nd->in[i]].m;
        }
        rc = local_jacobians(tr, scratch, k, err);
    }
    nb_graph_free(scratch);
    return rc;
}

/* tangent of every node in sweep s (input element seeded with 1); @p mag
 * (total numbers, scratch) gets the same sums of absolute values, whose
 * output entry bounds the rounding of the output's tangent */
static void forward_sweep(nb_trace *tr, int s, double *mag)
{
    double *t = tr->tangent + (size_t)s * (size_t)tr->total;
    memset(t, 0, (size_t)tr->total * sizeof *t);
    memset(mag, 0, (size_t)tr->total * sizeof *mag);
    for (int k = 0; k < tr->n; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        double *tk = t + tr->off[k];
        if (nd->kind == NBT_INPUT && nd->input == tr->sweep_input[s])
            tk[tr->sweep_elem[s]] = mag[tr->off[k] + tr->sweep_elem[s]] = 1;
        if (!nd->active || nd->kind != NBT_OP)
            continue;
        for (int i = 0; i < nd->n_in; i++) {
            int mi = tr->nodes[nd->in[i]].m;
            const double *ti = t + tr->off[nd->in[i]];
            if (!tr->nodes[nd->in[i]].active)
                continue; /* a constant has no tangent at all, not a zero one: nothing
                             flows from it, even where the local derivative is infinite
                             (d 0^y / d 0), as in the library's forward mode */
            const double *mgi = mag + tr->off[nd->in[i]];
            for (int j = 0; j < nd->m; j++)
                for (int l = 0; l < mi; l++) {
                    tk[j] += nd->jac[i][j * mi + l] * ti[l];
                    mag[tr->off[k] + j] += fabs(nd->jac[i][j * mi + l]) * mgi[l];
                }
        }
    }
    tr->fwd_mag[s] = mag[tr->off[tr->n - 1]];
}

/* the reverse sweep, each edge's contribution kept as a step */
static nb_status reverse_sweep(nb_trace *tr, nb_error *err)
{
    size_t n_steps = 0, nums = 0;
    for (int k = 0; k < tr->n; k++)
        for (int i = 0; tr->nodes[k].kind == NBT_OP && i < tr->nodes[k].n_in; i++)
            if (tr->nodes[tr->nodes[k].in[i]].active) {
                n_steps++;
                nums += 2 * (size_t)tr->nodes[tr->nodes[k].in[i]].m;
            }
    tr->steps = calloc(n_steps + 1, sizeof *tr->steps);
    tr->step_nums = malloc((nums + 1) * sizeof *tr->step_nums);
    tr->adjoint = calloc((size_t)tr->total, sizeof *tr->adjoint);
    tr->adj_mag = calloc((size_t)tr->total, sizeof *tr->adj_mag);
    if (!tr->steps || !tr->step_nums || !tr->adjoint || !tr->adj_mag)
        return nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
    tr->adjoint[tr->off[tr->n - 1]] = tr->adj_mag[tr->off[tr->n - 1]] = 1;
    double *p = tr->step_nums;
    for (int k = tr->n - 1; k >= 0; k--) {
        const nbt_tnode *nd = &tr->nodes[k];
        if (nd->kind != NBT_OP)
            continue;
        const double *ak = tr->adjoint + tr->off[k];
        for (int i = 0; i < nd->n_in; i++) {
            int to = nd->in[i], mi = tr->nodes[to].m;
            if (!tr->nodes[to].active)
                continue; /* constants receive nothing */
            nbt_step *st = &tr->steps[tr->n_steps++];
            st->from = k;
            st->to = to;
            st->slot = i;
            st->contrib = p;
            st->after = p + mi;
            p += 2 * mi;
            double *at = tr->adjoint + tr->off[to];
            const double *mk = tr->adj_mag + tr->off[k];
            for (int l = 0; l < mi; l++) {
                double sum = 0, m = 0;
                for (int j = 0; j < nd->m; j++) {
                    sum += nd->jac[i][j * mi + l] * ak[j];
                    m += fabs(nd->jac[i][j * mi + l]) * mk[j];
                }
                st->contrib[l] = sum;
                at[l] += sum;
                tr->adj_mag[tr->off[to] + l] += m;
            }
            memcpy(st->after, at, (size_t)mi * sizeof *at);
        }
    }
    return NB_OK;
}

/* mine (the trace's sum) against lib (the library's sweep) for a result
 * whose terms add up to @p mag in absolute value: rounding differs between
 * the two orders of work by a few ulps of mag, so the tolerance scales with
 * it; where the terms overflow nothing can be judged */
static bool agrees(double mine, double lib, double mag, nb_dtype dt)
{
    double tol = dt == NB_F64 ? 1e-9 : 1e-3;
    if (!isfinite(mag))
        return true;
    if (isnan(mine) || isnan(lib))
        return isnan(mine) && isnan(lib);
    if (isinf(mine) || isinf(lib))
        return mine == lib;
    return fabs(mine - lib) <= tol * fmax(fmax(1, fabs(lib)), mag);
}

/* nb_grad and nb_jvp on the graph itself must give the trace's numbers */
static nb_status check_library(nb_trace *tr, nb_graph *g, nb_tensor *y, nb_tensor *const *xs,
                               int n, nb_error *err)
{
    nb_tensor **d = calloc((size_t)n, sizeof *d);
    nb_tensor **tans = calloc((size_t)n, sizeof *tans);
    nb_status rc = NB_OK;
    if (!d || !tans) {
        rc = nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
        goto done;
    }
    nb_dtype dt = nb_tensor_dtype(y);
    if (nb_grad(g, y, NULL, xs, n, d, false) != NB_OK) {
        rc = nb_error_set(err, nb_graph_status(g), "nb_trace_new", "reverse mode: %s",
                          nb_graph_error(g)->msg);
        goto done;
    }
    for (int k = 0; k < tr->n && rc == NB_OK; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        if (nd->kind != NBT_INPUT)
            continue;
        for (int l = 0; l < nd->m && rc == NB_OK; l++) {
            double mine = tr->adjoint[tr->off[k] + l], lib = nb_tensor_get(d[nd->input], l);
            if (!agrees(mine, lib, tr->adj_mag[tr->off[k] + l], dt))
                rc = nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                                  "the trace's df/d%s[%d] = %.17g differs from nb_grad's %.17g: "
                                  "an op's derivative rules disagree",
                                  nd->label, l, mine, lib);
        }
    }
    for (int s = 0; s < tr->sweeps && rc == NB_OK; s++) {
        for (int i = 0; i < n; i++) {
            tans[i] = nb_zeros(g, nb_tensor_dtype(xs[i]), nb_tensor_rank(xs[i]),
                               nb_tensor_shape(xs[i]));
            if (tans[i] && i == tr->sweep_input[s])
                nb_tensor_set(tans[i], tr->sweep_elem[s], 1.0);
        }
        nb_tensor *yt = NULL;
        if (nb_jvp(g, y, xs, tans, n, &yt) != NB_OK) {
            rc = nb_error_set(err, nb_graph_status(g), "nb_trace_new", "forward mode: %s",
                              nb_graph_error(g)->msg);
            break;
        }
        double mine = tr->tangent[(size_t)s * (size_t)tr->total + tr->off[tr->n - 1]];
        double lib = nb_tensor_item(yt);
        if (!agrees(mine, lib, tr->fwd_mag[s], dt))
            rc = nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                              "the trace's forward sweep %d gives %.17g, nb_jvp %.17g: an op's "
                              "derivative rules disagree",
                              s + 1, mine, lib);
    }
done:
    free(d);
    free(tans);
    return rc;
}

static nb_status check_args(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, int n, nb_error *err)
{
    if (!g || !y || !xs)
        return nb_error_set(err, NB_ERR_NULL, "nb_trace_new", "nb_trace_new: %s is NULL",
                            !g ? "the graph" : !y ? "y" : "xs");
    if (n < 1)
        return nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                            "nb_trace_new: n = %d; give at least one input", n);
    int64_t elems = 0;
    for (int i = 0; i < n; i++) {
        if (!xs[i])
            return nb_error_set(err, NB_ERR_NULL, "nb_trace_new", "nb_trace_new: xs[%d] is NULL",
                                i);
        for (int j = 0; j < i; j++)
            if (xs[j] == xs[i])
                return nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                                    "nb_trace_new: xs[%d] and xs[%d] are the same tensor", j, i);
        elems += nb_tensor_size(xs[i]);
    }
    if (elems > NB_TRACE_MAX_SWEEPS)
        return nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                            "nb_trace_new: the inputs have %lld elements, so %lld forward sweeps; "
                            "a trace runs at most %d",
                            (long long)elems, (long long)elems, NB_TRACE_MAX_SWEEPS);
    if (nb_tensor_size(y) != 1) {
        char shape[96];
        return nb_error_set(err, NB_ERR_SHAPE, "nb_trace_new",
                            "nb_trace_new: y has shape %s; a trace follows one scalar output "
                            "(reduce it first, e.g. with nb_sum)",
                            nb_shape_str(nb_tensor_rank(y), nb_tensor_shape(y), shape,
                                         sizeof shape));
    }
    return NB_OK;
}

nb_trace *nb_trace_new(nb_graph *g, nb_tensor *y, nb_tensor *const *xs, int n, nb_error *err)
{
    nb_error_clear(err);
    if (check_args(g, y, xs, n, err) != NB_OK)
        return NULL;
    nb_tensor **all = malloc(NB_TRACE_MAX_NODES * sizeof *all);
    nb_trace *tr = calloc(1, sizeof *tr);
    nb_status rc = NB_OK;
    if (!all || !tr) {
        rc = nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
        goto done;
    }
    int64_t n_all = nb_graph_nodes(g, y, all, NB_TRACE_MAX_NODES);
    if (n_all < 0) {
        rc = nb_error_set(err, nb_graph_status(g), "nb_trace_new", "%s", nb_graph_error(g)->msg);
        goto done;
    }
    if (n_all > NB_TRACE_MAX_NODES) {
        rc = nb_error_set(err, NB_ERR_ARG, "nb_trace_new",
                          "nb_trace_new: the graph has %lld tensors; a trace follows up to %d",
                          (long long)n_all, NB_TRACE_MAX_NODES);
        goto done;
    }
    tr->n = prune(all, (int)n_all, xs, n);
    tr->nodes = calloc((size_t)(tr->n > 0 ? tr->n : 1), sizeof *tr->nodes);
    tr->off = calloc((size_t)(tr->n > 0 ? tr->n : 1), sizeof *tr->off);
    if (tr->n < 0 || !tr->nodes || !tr->off) {
        tr->n = 0;
        rc = nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
        goto done;
    }
    rc = read_nodes(tr, all, xs, n, err);
    if (rc == NB_OK)
        rc = all_jacobians(tr, err);
    if (rc != NB_OK)
        goto done;
    /* one forward sweep per input element */
    tr->n_inputs = n;
    for (int i = 0; i < n; i++)
        tr->sweeps += (int)nb_tensor_size(xs[i]);
    tr->sweep_input = calloc((size_t)tr->sweeps + 1, sizeof *tr->sweep_input);
    tr->sweep_elem = calloc((size_t)tr->sweeps + 1, sizeof *tr->sweep_elem);
    tr->tangent = malloc(((size_t)tr->sweeps * (size_t)tr->total + 1) * sizeof *tr->tangent);
    tr->fwd_mag = calloc((size_t)tr->sweeps + 1, sizeof *tr->fwd_mag);
    double *mag = malloc(((size_t)tr->total + 1) * sizeof *mag);
    if (!tr->sweep_input || !tr->sweep_elem || !tr->tangent || !tr->fwd_mag || !mag) {
        free(mag);
        rc = nb_error_set(err, NB_ERR_NOMEM, "nb_trace_new", "out of memory");
        goto done;
    }
    for (int i = 0, s = 0; i < n; i++)
        for (int l = 0; l < (int)nb_tensor_size(xs[i]); l++, s++) {
            tr->sweep_input[s] = i;
            tr->sweep_elem[s] = l;
        }
    for (int s = 0; s < tr->sweeps; s++)
        forward_sweep(tr, s, mag);
    free(mag);
    for (int k = 0; k < tr->n; k++) {
        tr->n_ops += tr->nodes[k].kind == NBT_OP;
        tr->rules_reverse += tr->nodes[k].kind == NBT_OP && tr->nodes[k].active;
    }
    tr->rules_forward = tr->rules_reverse * tr->sweeps;
    rc = reverse_sweep(tr, err);
    if (rc == NB_OK)
        rc = check_library(tr, g, y, xs, n, err);
done:
    free(all);
    if (rc != NB_OK) {
        nb_trace_free(tr);
        return NULL;
    }
    return tr;
}

/* ------------------------------------------------------------ reading */

int nb_trace_nodes(const nb_trace *tr)
{
    return tr ? tr->n : 0;
}

const char *nb_trace_label(const nb_trace *tr, int k)
{
    return tr && k >= 0 && k < tr->n ? tr->nodes[k].label : NULL;
}

int nb_trace_sweeps(const nb_trace *tr)
{
    return tr ? tr->sweeps : 0;
}
