/**
 * @file sym.h
 * @brief Symbolic differentiation, a reference checker: expressions parsed
 *        from text, held as a hash-consed DAG, differentiated by rules,
 *        simplified, printed, evaluated and turned into a graph of nabla
 *        primitives so that one formula can be differentiated four ways.
 *
 * @code
 * nb_sym *s = nb_sym_new();
 * const char *text = "ln(x) + x^2*y - sin(x*y)";
 * const nb_expr *f = nb_sym_parse(s, text, strlen(text));
 * const nb_expr *df = nb_sym_diff(s, f, "x");
 * if (!df)
 *     fprintf(stderr, "%s\n", nb_sym_error(s)->msg);
 * else
 *     printf("%s\n", nb_sym_str(s, df));   // 1/x + 2*x*y - y*cos(x*y)
 * nb_sym_free(s);
 * @endcode
 *
 * Ownership: every expression belongs to the pool (nb_sym) that made it and
 * lives until nb_sym_free(). Structurally equal expressions of one pool are
 * one node, so pointer equality is structural equality. Never free an
 * expression; never mix expressions of two pools.
 *
 * Errors: functions that fail return NULL (or a status) and leave an
 * nb_error in the pool (nb_sym_error; nb_sym_status gives its code): where
 * is the function ("nb_sym_parse"), msg a sentence, and for parse errors
 * offset, line and column say where in the text; name is the variable of
 * an "unknown variable" error. Each fallible call clears the previous
 * error when it starts. The library never prints.
 */
#ifndef NABLA_SYM_H
#define NABLA_SYM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A pool of expressions (hash-consed nodes and the last error). Opaque.
 *  One pool must not be used by two threads at once. */
typedef struct nb_sym nb_sym;

/** An expression: a node of a pool's DAG. Opaque, immutable. */
typedef struct nb_expr nb_expr;

/** Longest accepted input of nb_sym_parse, in bytes. */
#define NB_SYM_MAX_INPUT (1 << 20)
/** Deepest accepted nesting of parentheses, calls, unary minus and '^'. */
#define NB_SYM_MAX_NESTING 200
/** Deepest expression a pool builds (parsing, derivatives, nb_sym_apply);
 *  every walk over an expression recurses at most this deep. */
#define NB_SYM_MAX_DEPTH 4000
/** Longest text nb_sym_str produces, in bytes. */
#define NB_SYM_MAX_PRINT (16 << 20)

/** Node kinds. Subtraction, division and unary minus are not kinds:
 *  a - b is a + (-1)*b, a / b is a * b^(-1), -a is (-1)*a. */
typedef enum nb_sym_kind {
    NB_SYM_NUM = 0, /**< a finite double constant */
    NB_SYM_VAR,     /**< a named variable */
    NB_SYM_ADD,     /**< sum of 2 or more terms (commutative, sorted) */
    NB_SYM_MUL,     /**< product of 2 or more factors (commutative, sorted) */
    NB_SYM_POW,     /**< a^b (C's pow: a < 0 needs an integer b) */
    NB_SYM_SIN,     /**< sin */
    NB_SYM_COS,     /**< cos */
    NB_SYM_TAN,     /**< tan */
    NB_SYM_EXP,     /**< e^x */
    NB_SYM_LN,      /**< natural logarithm (also parsed as log) */
    NB_SYM_SQRT,    /**< square root */
    NB_SYM_TANH,    /**< tanh */
    NB_SYM_SIGMOID, /**< 1/(1+e^-x) */
    NB_SYM_ABS,     /**< |x| */
    NB_SYM_ERF,     /**< error function */
    NB_SYM_SIGN,    /**< -1, 0, 1 (appears in derivatives of abs, max, min) */
    NB_SYM_MAX,     /**< max(a,b) (commutative, sorted) */
    NB_SYM_MIN,     /**< min(a,b) (commutative, sorted) */
    NB_SYM_KIND_COUNT
} nb_sym_kind;

/* ------------------------------------------------------------------ pool */

/** New empty pool using malloc; NULL when out of memory. */
NB_API nb_sym *nb_sym_new(void);
/** New empty pool whose every allocation (nodes, hash table, buffers) goes
 *  through @p alloc with @p ud. NULL when @p alloc is NULL or fails. */
NB_API nb_sym *nb_sym_new_alloc(nb_alloc_fn alloc, void *ud);
/** Free the pool and every expression in it. NULL is accepted. */
NB_API void nb_sym_free(nb_sym *s);

/** Code of the last error (NB_OK when the last fallible call succeeded). */
NB_API nb_status nb_sym_status(const nb_sym *s);
/** The last error: status, where = the function that failed, msg = a
 *  sentence, e.g. "expected ')' at 7 near '+'" ("" when none); for parse
 *  errors the byte offset in the text and its 1-based line and column (in
 *  bytes), otherwise offset -1 and line and column 0. For NULL a static
 *  error with status NB_ERR_NULL and msg "no pool". Owned by the pool. */
NB_API const nb_error *nb_sym_error(const nb_sym *s);
/** Number of distinct nodes the pool holds. */
NB_API int64_t nb_sym_node_count(const nb_sym *s);

/* ------------------------------------------------------------- building */

/**
 * Parse @p len bytes of @p text (NUL bytes are not terminators; they are
 * errors). Grammar, loosest first: sums `a + b`, `a - b`; products `a * b`,
 * `a / b`; unary minus `-a`; powers `a ^ b` (right-associative, binding
 * tighter than unary minus on its left: -x^2 = -(x^2), x^-2 allowed);
 * numbers (`2`, `0.5`, `.5`, `1e-3`, `2.5E+4`); identifiers
 * `[A-Za-z_][A-Za-z0-9_]*` as variables; calls sin cos tan exp ln log(= ln)
 * sqrt tanh sigmoid abs erf sign (one argument), pow max min (two).
 * The result keeps the text's structure (no simplification), with sums and
 * products flattened and their operands sorted, and the constant factors of
 * a product multiplied into one coefficient when that is a finite nonzero
 * double (or a factor is 0), the way nb_sym_eval multiplies them, so the
 * value is unchanged: -2 is the number -2, -(-x) is x, -(2*x) is (-2)*x,
 * 1*x is x. a / b^c with a constant c is a*b^(-c).
 * Errors (NULL; NB_ERR_PARSE with offset and token, e.g. "expected ')' at 7
 * near '+'"): empty input, a missing operand or ')', '**', an unknown
 * function or wrong argument count, a name used both ways, a number that
 * overflows a double, a byte that is not part of the language (NUL,
 * invalid UTF-8 is reported as such), nesting deeper than
 * NB_SYM_MAX_NESTING, input longer than NB_SYM_MAX_INPUT. NB_ERR_NULL for
 * NULL @p s or @p text (with len > 0), NB_ERR_NOMEM.
 */
NB_API const nb_expr *nb_sym_parse(nb_sym *s, const char *text, size_t len);

/** The constant @p v (NB_ERR_ARG when not finite). -0 is stored as 0. */
NB_API const nb_expr *nb_sym_num(nb_sym *s, double v);
/** The variable @p name (an identifier as in the grammar; NB_ERR_ARG otherwise). */
NB_API const nb_expr *nb_sym_var(nb_sym *s, const char *name);
/** The node @p kind applied to @p args, as written (not simplified; sums and
 *  products need n >= 2 and are sorted, the others their fixed arity).
 *  Errors: NB_ERR_ARG (kind, arity, too deep), NB_ERR_NULL, NB_ERR_NOMEM. */
NB_API const nb_expr *nb_sym_apply(nb_sym *s, nb_sym_kind kind, const nb_expr *const *args, int n);

/** Kind of @p e (NB_SYM_KIND_COUNT for NULL). */
NB_API nb_sym_kind nb_expr_kind(const nb_expr *e);
/** Value of a NB_SYM_NUM node (NAN otherwise). */
NB_API double nb_expr_value(const nb_expr *e);
/** Name of a NB_SYM_VAR node, owned by the pool ("" otherwise). */
NB_API const char *nb_expr_name(const nb_expr *e);
/** Number of operands (0 for numbers and variables). */
NB_API int nb_expr_arity(const nb_expr *e);
/** Operand @p i (NULL when out of range). */
NB_API const nb_expr *nb_expr_arg(const nb_expr *e, int i);

/* ------------------------------------------------- differentiating */

/**
 * Simplified form of @p e. Rewrites (each exact wherever @p e is defined, in
 * real arithmetic): constant folding in double (only when the result is
 * finite), 0 and 1 identities (a+0, a*1, a*0, a^1, a^0, 1^a), flattening,
 * like terms in sums (2*a + 3*a = 5*a, a - a = 0), like factors in products
 * (a*a = a^2, a^b*a^c = a^(b+c), a/a = 1), and (a^b)^n = a^(b*n) for an
 * integer constant n. See docs/symbolic.md for what it does not do.
 */
NB_API const nb_expr *nb_sym_simplify(nb_sym *s, const nb_expr *e);

/**
 * d e / d @p var, simplified. Rules for every kind; abs, max and min use
 * sign: d|u| = sign(u)*u' (0 at u = 0), d max(a,b) = (1+sign(a-b))/2*a' +
 * (1-sign(a-b))/2*b' (halves at ties, as nb_maximum), likewise min; sign
 * has derivative 0. Errors: NB_ERR_NULL, NB_ERR_ARG (var not an
 * identifier, result too deep), NB_ERR_NOMEM.
 */
NB_API const nb_expr *nb_sym_diff(nb_sym *s, const nb_expr *e, const char *var);

/* ------------------------------------------------------------ using */

/**
 * @p e as text with the fewest parentheses that parse back to the same
 * value: "1/x + 2*x*y - y*cos(x*y)". Numbers are printed so that they read
 * back exactly. The text of an expression made by nb_sym_parse reads back
 * (in the same pool) to the same node, so to the same value bit for bit,
 * unless it nests deeper than NB_SYM_MAX_NESTING. Other expressions (from
 * nb_sym_apply, nb_sym_simplify, nb_sym_diff) read back to one equal in
 * exact arithmetic, whose value in double may differ by rounding. The text
 * is owned by the pool and valid until the next nb_sym_str call or
 * nb_sym_free. Errors (NULL): NB_ERR_ARG when the text would exceed
 * NB_SYM_MAX_PRINT bytes (deep expression swell), NB_ERR_NULL, NB_ERR_NOMEM.
 */
NB_API const char *nb_sym_str(nb_sym *s, const nb_expr *e);

/**
 * Evaluate @p e in double with the @p n variables names[i] = values[i]
 * (each shared subexpression once). Undefined points follow C's maths
 * library (ln of a negative number gives NaN). Errors: NB_ERR_NOTFOUND
 * ("unknown variable 'z'") when a variable of @p e has no value,
 * NB_ERR_NULL, NB_ERR_NOMEM; *out is NAN then.
 */
NB_API nb_status nb_sym_eval(nb_sym *s, const nb_expr *e, int n, const char *const *names,
                             const double *values, double *out);

/**
 * Build @p e in the graph @p g from nabla primitives, with the variable
 * names[i] bound to the tensor values[i] (all of one dtype; any shapes that
 * broadcast; the expression is applied elementwise). tan = sin/cos,
 * sigmoid is the primitive nb_sigmoid, a^n with an integer constant |n| <= 1024 by repeated
 * squaring (exact for a < 0, where nb_pow's derivative is not),
 * constants are scalars of the values' dtype (f64 when n is 0).
 * Each shared subexpression becomes one tensor. Errors (NULL): those of
 * nb_sym_eval (in the pool), NB_ERR_DTYPE for mixed dtypes, and an op's
 * failure (NB_ERR_GRAPH in the pool; the graph holds the op's error).
 */
NB_API nb_tensor *nb_sym_to_graph(nb_graph *g, nb_sym *s, const nb_expr *e, int n,
                                  const char *const *names, nb_tensor *const *values);

/**
 * Parse @p len bytes of @p text as nb_sym_parse does (the same grammar,
 * limits and parse errors, with the same messages and offsets) and record
 * the formula in @p g as written: each operator, left to right, is one
 * primitive with its operands in the written order. a + b is nb_add(a, b),
 * a - b nb_sub, a * b nb_mul, a / b nb_div, -a nb_neg, a ^ b and pow(a, b)
 * nb_pow; functions are their primitives as in nb_sym_to_graph (tan is
 * sin/cos). So w*x + b is add(mul(w, x), b) and -(w*x + b) is
 * neg(add(mul(w, x), b)). Nothing is reordered, flattened, folded or
 * shared: a name used twice is the same tensor, x + x is add(x, x), and
 * each number literal is its own scalar constant (of the values' dtype,
 * f64 when n is 0; no gradient), a minus sign written right before a
 * number being part of it: -2 is the constant -2 (-0 is 0), while -(2) is
 * neg(2) and -2^2 is neg(pow(2, 2)). A power records nb_pow even for a
 * constant exponent: its derivative in the base, b*a^(b-1), is finite and
 * exact for a negative base with an integer exponent ((-2)^3 has
 * derivative 12); nb_pow's derivative of 0^0 is NaN where
 * nb_sym_to_graph's is 0.
 * The variable names[i] is bound to values[i] (all of one dtype, shapes
 * that broadcast), as in nb_sym_to_graph. Returns the output tensor.
 * Errors (NULL, in the pool; where = "nb_sym_record"): the parse errors of
 * nb_sym_parse (checked before anything is recorded), NB_ERR_NOTFOUND
 * ("unknown variable 'z'") for a name without a value (the first in the
 * text), NB_ERR_DTYPE for mixed dtypes, an op's failure (NB_ERR_GRAPH in
 * the pool; the graph holds the op's error), NB_ERR_NULL for a NULL
 * graph, text (with len > 0), names or values (n > 0).
 */
NB_API nb_tensor *nb_sym_record(nb_graph *g, nb_sym *s, const char *text, size_t len, int n,
                                const char *const *names, nb_tensor *const *values);

/**
 * Variables of @p e in byte order of their names: up to @p cap names
 * (owned by the pool) go to @p names. Returns how many there are (may
 * exceed @p cap), or -1 on error (NB_ERR_NULL, NB_ERR_NOMEM).
 */
NB_API int nb_sym_vars(nb_sym *s, const nb_expr *e, const char **names, int cap);

/** Number of distinct nodes reachable from @p e (its DAG size); -1 for NULL. */
NB_API int64_t nb_sym_dag_size(nb_sym *s, const nb_expr *e);
/** Number of nodes of @p e written out as a tree, every shared subexpression
 *  copied. A double because expression swell can exceed 2^63; exact below
 *  2^53, rounded above. 0 for NULL. */
NB_API double nb_sym_tree_size(const nb_expr *e);

#ifdef __cplusplus
}
#endif
#endif
