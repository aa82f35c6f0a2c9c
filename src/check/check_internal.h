/* The numerics nabla's gradient checkers share: nb_gradcheck (here) and
 * the model check of the trainer (src/train/modelcheck.c). One step rule,
 * one round-off bound, one judgement of an entry and one kink test, so
 * both checkers reach the same verdict on the same numbers. */
#ifndef NABLA_CHECK_INTERNAL_H
#define NABLA_CHECK_INTERNAL_H

#include "nabla/check.h"

/* Evaluation errors of f, in machine epsilons of the evaluation dtype and
 * relative to the largest nearby |f|: a few roundings per value. */
#define NBG_ROUNDOFF_EPS 8

/* What one comparison found, in rising order of precedence among
 * failures: a verdict's cause is that of its worst class. */
typedef enum nbg_class {
    NBG_OK,           /* within tolerance */
    NBG_KINK,         /* a kink, accepted */
    NBG_ROUNDOFF,     /* off by no more than the tolerance plus the round-off */
    NBG_KINK_REFUSED, /* a kink, with acceptance off */
    NBG_MISMATCH,     /* off by more */
} nbg_class;

/* The machine epsilon of @p dt. */
double nbg_eps(nb_dtype dt);
/* The finite-difference step for value v in dtype @p dt: @p eps when it
 * is > 0, else cbrt(machine eps)·max(1, |v|). */
double nbg_step(nb_dtype dt, double eps, double v);
/* v rounded to @p dt. */
double nbg_in_dtype(nb_dtype dt, double v);

/* Compare one analytic value a with the numerical num (round-off bound
 * roundoff); *abs_err gets |a − num| (Inf for NaN), *ratio the
 * error/tolerance ratio, or -1 for an accepted kink (kink: one-sided
 * differences disagree and keep disagreeing at a smaller step; accepted
 * when a lies between left and right and o->kinks). */
nbg_class nbg_judge(double a, double num, double left, double right, bool kink, double roundoff,
                    const nb_check_opts *o, double *abs_err, double *ratio);
/* The cause of a verdict whose worst comparison is of class @p worst. */
nb_check_cause nbg_cause(nbg_class worst);

/* The kink test, first half: the one-sided differences left and right at
 * step h differ by more than the tolerance at num and what round-off (u,
 * the bound on f's values) can make of their gap (4u/h). */
bool nbg_kink_gap(double left, double right, double num, double u, double h,
                  const nb_check_opts *o);
/* Second half, at the step h16 = h/16: the gap of the one-sided
 * differences left16, right16 there is still more than half the gap at h
 * plus what round-off (u16) can make of it. On a smooth function the gap
 * is h·f'' and shrinks with h; at a kink it stays. */
bool nbg_kink_stays(double left, double right, double left16, double right16, double u16,
                    double h16);

#endif
