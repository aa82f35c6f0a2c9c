/* The printed report of a gradient check. */

#include <math.h>
#include <stdio.h>

#include "nabla/check.h"

/* "'x'[3] -> output[1]" and the figures, indented under it. */
static void print_entry(FILE *f, const nb_check_entry *e)
{
    if (e->input >= 0)
        fprintf(f, "'%s'[%lld] -> output[%lld]\n", e->input_name, (long long)e->in_index,
                (long long)e->out_index);
    else
        fprintf(f, "v^T J u for random u, v\n");
    fprintf(f, "      reverse %.10g  forward %.10g  numerical %.10g\n", e->reverse, e->forward,
            e->numerical);
    fprintf(f, "      one-sided: left %.10g  right %.10g\n", e->left, e->right);
    fprintf(f, "      abs err %.3g  rel err %.3g\n", e->abs_err, e->rel_err);
}

void nb_check_print(const nb_check_result *r, FILE *f)
{
    if (!r || !f)
        return;
    if (r->error.status != NB_OK) {
        fprintf(f, "gradcheck ERROR (%s): %s\n", nb_status_str(r->error.status), r->error.msg);
        return;
    }
    fprintf(f, "gradcheck %s (%s mode%s%s)", r->pass ? "PASSED" : "FAILED",
            r->fast ? "fast" : "full", r->full_detail ? ", details from a full check" : "",
            r->shadow ? ", f32 function evaluated in f64 (shadow)" : "");
    if (!r->pass)
        fprintf(f, ": %s", nb_check_cause_str(r->cause));
    fprintf(f, "\n");
    if (r->shadow_failed)
        fprintf(f, "  note: the function does not run in f64, so it was checked in f32\n");
    if (r->cause == NB_CHECK_NOT_DETERMINISTIC) {
        /* nothing was judged: no entries to show */
        fprintf(f, "  %s\n", r->detail);
        return;
    }
    fprintf(f,
            "  reverse mode: %s   forward mode: %s   (atol %.3g, rtol %.3g, %lld entr%s, "
            "%lld evaluations",
            r->reverse_ok ? "ok" : "FAIL", r->forward_ok ? "ok" : "FAIL", r->atol, r->rtol,
            (long long)r->n_entries, r->n_entries == 1 ? "y" : "ies", (long long)r->evals);
    if (r->replays > 0)
        fprintf(f, ", %lld by replay", (long long)r->replays);
    fprintf(f, ")\n");
    if (r->detail[0])
        fprintf(f, "  %s\n", r->detail);
    fprintf(f, "  worst entry: ");
    print_entry(f, &r->worst);
    if (r->cause == NB_CHECK_ROUNDOFF)
        fprintf(f,
                "  its error %.3g is within the tolerance plus the round-off bound %.3g of the "
                "numerical value: check in f64 (opts.shadow for f32 functions) or raise atol\n",
                r->worst.abs_err, r->worst.roundoff);
    if (r->n_kinks > 0) {
        if (r->kinks_accepted)
            fprintf(f,
                    "  %lld kink%s accepted (one-sided differences disagree, the analytic value "
                    "lies between them)\n",
                    (long long)r->n_kinks, r->n_kinks == 1 ? "" : "s");
        else
            fprintf(f,
                    "  %lld kink%s found (one-sided differences disagree), not accepted: kink "
                    "acceptance is off\n",
                    (long long)r->n_kinks, r->n_kinks == 1 ? "" : "s");
        fprintf(f, "  first kink: ");
        print_entry(f, &r->kink);
    }
    if (r->localised) {
        fprintf(f,
                "  localised: op '%s' (recorded op #%lld%s%s%s) fails on its own inputs\n"
                "  its worst entry: ",
                r->culprit_op, (long long)r->culprit_node, r->culprit_label[0] ? ", result '" : "",
                r->culprit_label, r->culprit_label[0] ? "'" : "");
        print_entry(f, &r->culprit_entry);
    } else if (!r->pass && r->cause != NB_CHECK_ROUNDOFF) {
        fprintf(f, "  localisation: every recorded op passes alone (or it was not run); the "
                   "composite disagrees as a whole\n");
    }
    if (r->n_sweep > 0) {
        int best = 0;
        for (int i = 1; i < r->n_sweep; i++)
            if (r->sweep_err[i] < r->sweep_err[best])
                best = i;
        fprintf(f, "  step sweep (central difference minus reverse mode, worst entry):\n");
        fprintf(f, "    %-10s %-10s\n", "h", "error");
        for (int i = 0; i < r->n_sweep; i++)
            fprintf(f, "    %-10.1e %-10.2e%s\n", r->sweep_h[i], r->sweep_err[i],
                    i == best ? "  <- smallest: truncation (~h^2) meets round-off (~eps/h)" : "");
    }
}
