/* The trace as a table and as JSON rows. */

#include <math.h>
#include <string.h>

#include "trace.h"

/* a node's numbers: one number, or [a, b, ...] row-major */
static void put_nums(FILE *f, const double *v, int m, int digits)
{
    char b[40];
    if (m == 1) {
        fputs(nbt_num(b, sizeof b, v[0], digits), f);
        return;
    }
    fputc('[', f);
    for (int i = 0; i < m; i++)
        fprintf(f, "%s%s", i ? ", " : "", nbt_num(b, sizeof b, v[i], digits));
    fputc(']', f);
}

void nbt_json_nums(FILE *f, const double *v, int m, bool scalar)
{
    char b[40];
    if (!scalar)
        fputc('[', f);
    for (int i = 0; i < m; i++) {
        const char *s = nbt_num(b, sizeof b, v[i], 17);
        fprintf(f, "%s%s", i ? ", " : "", isfinite(v[i]) ? s : "null");
    }
    if (!scalar)
        fputc(']', f);
}

/* a JSON string; < > & escaped too, so it may stand inside an HTML <script> */
void nbt_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == '<' || c == '>' || c == '&')
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* @p s left-aligned in @p width characters (UTF-8 aware: ∂ and · are one) */
static void put_padded(FILE *f, const char *s, int width)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        n += ((unsigned char)*p & 0xC0) != 0x80;
    fputs(s, f);
    for (; n < width; n++)
        fputc(' ', f);
}

/* v as a factor of a product: negative numbers in parentheses */
static const char *factor(char *buf, size_t n, double v)
{
    char b[40];
    nbt_num(b, sizeof b, v, 6);
    snprintf(buf, n, b[0] == '-' ? "(%s)" : "%s", b);
    return buf;
}

/* "w" for a one-element input, "W[3]" for element 3 of a larger one */
const char *nbt_sweep_name(const nb_trace *tr, int s, char *buf, size_t n)
{
    int k = 0;
    while (tr->nodes[k].kind != NBT_INPUT || tr->nodes[k].input != tr->sweep_input[s])
        k++;
    if (tr->nodes[k].m == 1)
        snprintf(buf, n, "%s", tr->nodes[k].label);
    else
        snprintf(buf, n, "%s[%d]", tr->nodes[k].label, tr->sweep_elem[s]);
    return buf;
}

/* node k of the trace, if it is an input (-1 otherwise is not used) */
static int input_node(const nb_trace *tr, int i)
{
    for (int k = 0; k < tr->n; k++)
        if (tr->nodes[k].kind == NBT_INPUT && tr->nodes[k].input == i)
            return k;
    return -1;
}

nb_status nbt_finish(FILE *f, nb_error *err, const char *where)
{
    if (fflush(f) != 0 || ferror(f))
        return nb_error_set(err, NB_ERR_IO, where, "%s: writing the trace failed", where);
    return NB_OK;
}

void nbt_print_eval(const nb_trace *tr, FILE *f, int unused)
{
    (void)unused;
    fprintf(f, "evaluation trace\n");
    for (int k = 0; k < tr->n; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        if (nd->kind != NBT_OP)
            continue;
        fprintf(f, "  %-4s = %-16s = ", nd->label, nd->text);
        put_nums(f, tr->value + tr->off[k], nd->m, 10);
        fputc('\n', f);
    }
}

void nbt_print_forward(const nb_trace *tr, FILE *f, int s)
{
    char wrt[64], b[40];
    nbt_sweep_name(tr, s, wrt, sizeof wrt);
    const double *t = tr->tangent + (size_t)s * (size_t)tr->total;
    fprintf(f, "\nforward mode, sweep %d of %d: the tangent of %s (d%s/d%s = 1, every other input's "
               "0)\n",
            s + 1, tr->sweeps, wrt, wrt, wrt);
    for (int k = 0; k < tr->n; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        if (nd->kind != NBT_OP || !nd->active)
            continue;
        fprintf(f, "  d%s/d%s = ", nd->label, wrt);
        bool first = true;
        for (int i = 0; i < nd->n_in; i++) { /* the symbols */
            const nbt_tnode *in = &tr->nodes[nd->in[i]];
            if (!in->active)
                continue;
            if (nd->m == 1 && in->m == 1)
                fprintf(f, "%s\u2202%s/\u2202%s\u00b7d%s/d%s", first ? "" : " + ", nd->label,
                        in->label, in->label, wrt);
            else
                fprintf(f, "%sJ(%s, %s)\u00b7d%s/d%s", first ? "" : " + ", nd->label, in->label,
                        in->label, wrt);
            first = false;
        }
        bool scalars = nd->m == 1;
        for (int i = 0; i < nd->n_in; i++)
            scalars = scalars && (!tr->nodes[nd->in[i]].active || tr->nodes[nd->in[i]].m == 1);
        if (scalars) { /* the numbers */
            fprintf(f, " = ");
            first = true;
            for (int i = 0; i < nd->n_in; i++) {
                const nbt_tnode *in = &tr->nodes[nd->in[i]];
                if (!in->active)
                    continue;
                fprintf(f, "%s%s\u00b7", first ? "" : " + ", factor(b, sizeof b, nd->jac[i][0]));
                fputs(factor(b, sizeof b, t[tr->off[nd->in[i]]]), f);
                first = false;
            }
        }
        fprintf(f, " = ");
        put_nums(f, t + tr->off[k], nd->m, 10);
        fputc('\n', f);
    }
    fprintf(f, "  df/d%s = %s\n", wrt, nbt_num(b, sizeof b, t[tr->off[tr->n - 1]], 10));
}

void nbt_print_reverse(const nb_trace *tr, FILE *f, int unused)
{
    (void)unused;
    const nbt_tnode *out = &tr->nodes[tr->n - 1];
    fprintf(f, "\nreverse mode, one sweep from the output back (g_v = df/dv)\n  g_%s = 1\n",
            out->label);
    for (int s = 0; s < tr->n_steps; s++) {
        const nbt_step *st = &tr->steps[s];
        const nbt_tnode *from = &tr->nodes[st->from], *to = &tr->nodes[st->to];
        char lhs[256], b[40], c[40];
        if (from->m == 1 && to->m == 1) {
            snprintf(lhs, sizeof lhs, "g_%s += \u2202%s/\u2202%s\u00b7g_%s", to->label,
                     from->label, to->label, from->label);
            char prod[96];
            snprintf(prod, sizeof prod, "%s\u00b7%s", factor(b, sizeof b, from->jac[st->slot][0]),
                     factor(c, sizeof c, tr->adjoint[tr->off[st->from]]));
            fputs("  ", f);
            put_padded(f, lhs, 30);
            fputs(" = ", f);
            put_padded(f, prod, 14);
        } else {
            snprintf(lhs, sizeof lhs, "g_%s += J(%s, %s)^T\u00b7g_%s", to->label, from->label,
                     to->label, from->label);
            fputs("  ", f);
            put_padded(f, lhs, 30);
            fputs(" = ", f);
            put_nums(f, st->contrib, to->m, 6);
        }
        fprintf(f, "   -> g_%s = ", to->label);
        put_nums(f, st->after, to->m, 10);
        fputc('\n', f);
    }
}

nb_status nb_trace_print(const nb_trace *tr, FILE *f, nb_error *err)
{
    nb_error_clear(err);
    if (!tr || !f)
        return nb_error_set(err, NB_ERR_NULL, "nb_trace_print", "nb_trace_print: %s is NULL",
                            !tr ? "the trace" : "the file");
    nbt_print_eval(tr, f, 0);
    for (int s = 0; s < tr->sweeps; s++)
        nbt_print_forward(tr, f, s);
    nbt_print_reverse(tr, f, 0);
    fprintf(f, "\ngradient:");
    for (int i = 0; i < tr->n_inputs; i++) {
        int k = input_node(tr, i);
        if (k < 0)
            continue; /* y does not depend on it */
        fprintf(f, "  df/d%s = ", tr->nodes[k].label);
        put_nums(f, tr->adjoint + tr->off[k], tr->nodes[k].m, 10);
    }
    fprintf(f, "   (nb_grad and nb_jvp agree)\n");
    fprintf(f, "cost: the evaluation %lld primitives; forward mode %d sweep%s, %lld tangent rules; "
               "reverse mode 1 sweep, %lld adjoint rules\n",
            (long long)tr->n_ops, tr->sweeps, tr->sweeps == 1 ? "" : "s",
            (long long)tr->rules_forward, (long long)tr->rules_reverse);
    return nbt_finish(f, err, "nb_trace_print");
}

nb_status nb_trace_json(const nb_trace *tr, FILE *f, nb_error *err)
{
    nb_error_clear(err);
    if (!tr || !f)
        return nb_error_set(err, NB_ERR_NULL, "nb_trace_json", "nb_trace_json: %s is NULL",
                            !tr ? "the trace" : "the file");
    for (int k = 0; k < tr->n; k++) {
        const nbt_tnode *nd = &tr->nodes[k];
        if (nd->kind != NBT_OP)
            continue;
        fprintf(f, "{\"sweep\": \"eval\", \"node\": ");
        nbt_json_str(f, nd->label);
        fprintf(f, ", \"op\": ");
        nbt_json_str(f, nd->op);
        fprintf(f, ", \"text\": ");
        nbt_json_str(f, nd->text);
        fprintf(f, ", \"inputs\": [");
        for (int i = 0; i < nd->n_in; i++) {
            fprintf(f, i ? ", " : "");
            nbt_json_str(f, tr->nodes[nd->in[i]].label);
        }
        fprintf(f, "], \"value\": ");
        nbt_json_nums(f, tr->value + tr->off[k], nd->m, nd->m == 1);
        fprintf(f, "}\n");
    }
    char wrt[64];
    for (int s = 0; s < tr->sweeps; s++) {
        const double *t = tr->tangent + (size_t)s * (size_t)tr->total;
        nbt_sweep_name(tr, s, wrt, sizeof wrt);
        for (int k = 0; k < tr->n; k++) {
            const nbt_tnode *nd = &tr->nodes[k];
            if (nd->kind != NBT_OP || !nd->active)
                continue;
            fprintf(f, "{\"sweep\": \"forward\", \"wrt\": ");
            nbt_json_str(f, wrt);
            fprintf(f, ", \"node\": ");
            nbt_json_str(f, nd->label);
            fprintf(f, ", \"locals\": [");
            for (int i = 0; i < nd->n_in; i++) {
                const nbt_tnode *in = &tr->nodes[nd->in[i]];
                fprintf(f, i ? ", " : "");
                if (!in->active) /* no edge derivative is needed: it carries 0 */
                    fprintf(f, "null");
                else
                    nbt_json_nums(f, nd->jac[i], nd->m * in->m, nd->m * in->m == 1);
            }
            fprintf(f, "], \"tangent\": ");
            nbt_json_nums(f, t + tr->off[k], nd->m, nd->m == 1);
            fprintf(f, "}\n");
        }
    }
    for (int s = 0; s < tr->n_steps; s++) {
        const nbt_step *st = &tr->steps[s];
        const nbt_tnode *from = &tr->nodes[st->from], *to = &tr->nodes[st->to];
        bool scalar = from->m == 1 && to->m == 1;
        fprintf(f, "{\"sweep\": \"reverse\", \"to\": ");
        nbt_json_str(f, to->label);
        fprintf(f, ", \"from\": ");
        nbt_json_str(f, from->label);
        fprintf(f, ", \"local\": ");
        nbt_json_nums(f, from->jac[st->slot], from->m * to->m, scalar);
        fprintf(f, ", \"adjoint_from\": ");
        nbt_json_nums(f, tr->adjoint + tr->off[st->from], from->m, from->m == 1);
        fprintf(f, ", \"contribution\": ");
        nbt_json_nums(f, st->contrib, to->m, to->m == 1);
        fprintf(f, ", \"adjoint_to\": ");
        nbt_json_nums(f, st->after, to->m, to->m == 1);
        fprintf(f, "}\n");
    }
    return nbt_finish(f, err, "nb_trace_json");
}
