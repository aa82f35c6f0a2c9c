/**
 * @file nn.h
 * @brief Neural-network building blocks written as compositions of the
 *        primitive ops: activations, initialisation, layers (linear, MLP,
 *        maxout, dropout, batch normalisation), losses and penalties.
 *
 * Nothing here has a derivative rule of its own: every function records
 * primitive ops (ops.h), so its gradient comes from theirs and can be
 * checked like any other graph, and drawn.
 *
 * Errors follow the ops' convention: a NULL tensor input makes a function
 * return NULL quietly; any other failure records the graph's first error
 * (nb_graph_error: the function's name and a sentence) and returns NULL.
 * Functions that do not return a tensor return nb_status.
 *
 * Shapes: a batch is [N, F] (rows are samples). A linear layer's weight is
 * [n_in, n_out] and computes y = x·W + b.
 *
 * @code
 * nb_rng rng; nb_rng_seed(&rng, 1);
 * nb_model *m = nb_model_new();
 * nb_mlp_opts o = nb_mlp_defaults();         // ReLU, He-uniform, f32
 * o.layer.rng = &rng;
 * nb_layer *net = NULL;
 * nb_mlp_new(m, NULL, (int64_t[]){64, 128, 10}, 3, &o, &net); // fc1, fc2
 * for (...) {                                 // one training step
 *     nb_tensor *logits = nb_layer_forward(g, net, x, true);
 *     nb_tensor *loss = nb_softmax_cross_entropy(g, logits, labels, n, NB_REDUCE_MEAN);
 *     nb_backward(g, loss); ... update ...; nb_graph_reset(g);
 * }
 * nb_layer_free(net); nb_model_free(m);
 * @endcode
 */
#ifndef NABLA_NN_H
#define NABLA_NN_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ========================================================== activations */

/* σ(x) = 1/(1+e^-x) is the primitive nb_sigmoid (ops.h), ReLU the primitive
 * nb_relu (ops.h: max(0, x), derivative 1(x > 0), 0 at the kink, ReLU(NaN) =
 * NaN), and the binary step (NB_ACT_STEP: 1 if x > 0 else 0) the primitive
 * nb_step (ops.h): its
 * derivative is zero wherever it exists, so no gradient flows through it
 * (it cannot be trained by back-propagation; it is here for the perceptron
 * and for plots).
 *
 * At a kink (a threshold the input crosses) the derivative is the one of the
 * outer side: relu'(0) = 0, leaky'(0) = γ, elu'(0) = α, hard-tanh'(±1) = 0,
 * hard-sigmoid'(±2) = 0; a NaN input gives NaN. docs/ops.md lists them all. */
/** hard-logistic(x) = max(min(0.25x + 0.5, 1), 0); slope 0.25 inside (-2, 2), 0 elsewhere
 *  (the kinks ±2 included). */
NB_API nb_tensor *nb_hard_sigmoid(nb_graph *g, nb_tensor *x);
/** hard-tanh(x) = max(min(x, 1), -1); slope 1 inside (-1, 1), 0 elsewhere (±1 included). */
NB_API nb_tensor *nb_hard_tanh(nb_graph *g, nb_tensor *x);
/** Leaky ReLU: x for x > 0, γx otherwise; derivative γ at the kink. */
NB_API nb_tensor *nb_leaky_relu(nb_graph *g, nb_tensor *x, double gamma);
/** PReLU: x for x > 0, α·x otherwise, α a tensor (a learned parameter)
 *  broadcasting with x, e.g. one slope per feature [F] for x [N, F].
 *  dα = Σ g·x over the elements where x <= 0. */
NB_API nb_tensor *nb_prelu(nb_graph *g, nb_tensor *x, nb_tensor *alpha);
/** Randomized leaky ReLU: x for x > 0, α·x otherwise. Training: α ~ U(lower,
 *  upper) drawn per element from @p rng (required); evaluation: α =
 *  (lower+upper)/2 and @p rng is not used. Needs 0 <= lower <= upper. */
NB_API nb_tensor *nb_rrelu(nb_graph *g, nb_tensor *x, double lower, double upper, nb_rng *rng,
                           bool training);
/** ELU: x for x > 0, α(e^x − 1) otherwise. The exponential only sees
 *  min(x, 0), so large x never overflows and large negative x gives −α. */
NB_API nb_tensor *nb_elu(nb_graph *g, nb_tensor *x, double alpha);
/** softplus(x) = ln(1 + e^x), computed as max(x,0) + ln(1 + e^-|x|):
 *  finite with finite derivative σ(x) for every finite x. */
NB_API nb_tensor *nb_softplus(nb_graph *g, nb_tensor *x);
/** softsign(x) = x / (1 + |x|). */
NB_API nb_tensor *nb_softsign(nb_graph *g, nb_tensor *x);
/** swish(x) = x·σ(βx) with a fixed β (β = 1 is SiLU). */
NB_API nb_tensor *nb_swish(nb_graph *g, nb_tensor *x, double beta);
/** swish(x) = x·σ(βx) with β a tensor broadcasting with x (learned). */
NB_API nb_tensor *nb_swish_param(nb_graph *g, nb_tensor *x, nb_tensor *beta);
/** GELU(x) = x·Φ(x) = 0.5x(1 + erf(x/√2)) (exact). */
NB_API nb_tensor *nb_gelu(nb_graph *g, nb_tensor *x);
/** GELU approximation x·σ(1.702x). */
NB_API nb_tensor *nb_gelu_sigmoid(nb_graph *g, nb_tensor *x);
/** GELU approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))). */
NB_API nb_tensor *nb_gelu_tanh(nb_graph *g, nb_tensor *x);
/** Maxout: the last axis (size F·k) is split into F groups of @p k
 *  consecutive pieces and each group's maximum is kept: result [..., F].
 *  The gradient goes to the arg-max of each group (split at ties). */
NB_API nb_tensor *nb_maxout(nb_graph *g, nb_tensor *x, int64_t k);
/** softmax along @p axis (negative counts from the end):
 *  e^(x − max) / Σ e^(x − max); the max is a constant (softmax is shift
 *  invariant, so the gradient is exact). */
NB_API nb_tensor *nb_softmax(nb_graph *g, nb_tensor *x, int axis);
/** log-softmax along @p axis: (x − max) − ln Σ e^(x − max). Finite for any
 *  finite input. One primitive (log_softmax, docs/ops.md) whose values are
 *  those of that composition bit for bit; its gradient is one more,
 *  g − e^y·Σ g. Errors: axis out of range (NB_ERR_ARG), an axis of size 0
 *  (NB_ERR_SHAPE). */
NB_API nb_tensor *nb_log_softmax(nb_graph *g, nb_tensor *x, int axis);

/** Activations by kind, for model builders and command lines. */
typedef enum nb_act {
    NB_ACT_IDENTITY = 0,       /**< "identity" / "linear" / "none" */
    NB_ACT_SIGMOID = 1,        /**< "sigmoid" / "logistic" */
    NB_ACT_TANH = 2,           /**< "tanh" */
    NB_ACT_HARD_SIGMOID = 3,   /**< "hard-sigmoid" / "hard-logistic" */
    NB_ACT_HARD_TANH = 4,      /**< "hard-tanh" */
    NB_ACT_RELU = 5,           /**< "relu" */
    NB_ACT_LEAKY_RELU = 6,     /**< "leaky-relu" (γ = alpha) */
    NB_ACT_PRELU = 7,          /**< "prelu" (learned α per feature, init alpha) */
    NB_ACT_RRELU = 8,          /**< "rrelu" (α ~ U(lower, upper)) */
    NB_ACT_ELU = 9,            /**< "elu" (alpha) */
    NB_ACT_SOFTPLUS = 10,      /**< "softplus" */
    NB_ACT_SOFTSIGN = 11,      /**< "softsign" */
    NB_ACT_SWISH = 12,         /**< "swish" / "silu" (fixed beta) */
    NB_ACT_SWISH_LEARNED = 13, /**< "swish-learned" (β per feature, init beta) */
    NB_ACT_GELU = 14,          /**< "gelu" (erf) */
    NB_ACT_GELU_SIGMOID = 15,  /**< "gelu-sigmoid" */
    NB_ACT_GELU_TANH = 16,     /**< "gelu-tanh" */
    NB_ACT_MAXOUT = 17,        /**< "maxout" (pieces) */
    NB_ACT_STEP = 18,          /**< "step" / "binary-step" (nb_step; no gradient) */
    NB_ACT_COUNT
} nb_act;

/** Settings of the activations that have any. */
typedef struct nb_act_opts {
    double alpha;   /**< leaky-ReLU γ (0.01), ELU α (1), PReLU initial α (0.25) */
    double beta;    /**< swish β, or its initial value when learned (1) */
    double lower;   /**< RReLU lower bound (1/8) */
    double upper;   /**< RReLU upper bound (1/3) */
    int64_t pieces; /**< maxout pieces k (2) */
} nb_act_opts;

/** The default settings of @p act (values in nb_act_opts' comments). */
NB_API nb_act_opts nb_act_defaults(nb_act act);
/** Canonical name of @p act ("relu", "leaky-relu", ...); "?" if unknown. */
NB_API const char *nb_act_name(nb_act act);
/** Look an activation up by name: case is ignored and '_' equals '-'
 *  ("ReLU", "leaky_relu"). NB_ERR_NULL, NB_ERR_NOTFOUND (unknown name;
 *  *out untouched). */
NB_API nb_status nb_act_from_name(const char *name, nb_act *out);
/** A comma-separated list of every canonical name, for help texts. */
NB_API const char *nb_act_names(void);
/** True for the activations that own a parameter (PReLU, learned swish). */
NB_API bool nb_act_has_param(nb_act act);

/**
 * Apply @p act to @p x. @p o NULL means nb_act_defaults(act). @p param is
 * the learned tensor of PReLU (α) or learned swish (β), and must be NULL
 * otherwise; @p rng and @p training matter only to RReLU. Maxout shrinks
 * the last axis by o->pieces. Records NB_ERR_ARG for an unknown kind or a
 * missing parameter.
 */
NB_API nb_tensor *nb_activate(nb_graph *g, nb_act act, nb_tensor *x, const nb_act_opts *o,
                              nb_tensor *param, nb_rng *rng, bool training);

/* ======================================================= initialisation */

/** Ways to fill a parameter. fan_in, fan_out as nb_init_tensor says. */
typedef enum nb_init {
    NB_INIT_AUTO = 0,           /**< layers pick (He-uniform for ReLU-like, else Xavier-uniform) */
    NB_INIT_ZEROS = 1,          /**< 0 */
    NB_INIT_CONSTANT = 2,       /**< the value `scale` */
    NB_INIT_SMALL_NORMAL = 3,   /**< N(0, σ²) with σ = scale (0.01 when scale is 0) */
    NB_INIT_XAVIER_UNIFORM = 4, /**< U(±√(6/(fan_in+fan_out))): variance 2/(fan_in+fan_out) */
    NB_INIT_XAVIER_NORMAL = 5,  /**< N(0, 2/(fan_in+fan_out)) */
    NB_INIT_HE_UNIFORM = 6,     /**< U(±√(6/fan_in)): variance 2/fan_in */
    NB_INIT_HE_NORMAL = 7,      /**< N(0, 2/fan_in) */
    NB_INIT_LECUN_UNIFORM = 8,  /**< U(±√(3/fan_in)): variance 1/fan_in */
    NB_INIT_LECUN_NORMAL = 9,   /**< N(0, 1/fan_in) */
    NB_INIT_COUNT
} nb_init;

/** The initialisation NB_INIT_AUTO picks for layers followed by @p act:
 *  He-uniform for the ReLU family (ReLU, leaky, PReLU, RReLU, ELU, maxout,
 *  swish, GELU, softplus), Xavier-uniform otherwise. */
NB_API nb_init nb_act_default_init(nb_act act);
/** Canonical name ("xavier-uniform", ...); "?" if unknown. */
NB_API const char *nb_init_name(nb_init kind);
/** Look up by name as nb_act_from_name does. */
NB_API nb_status nb_init_from_name(const char *name, nb_init *out);

/**
 * Fill @p t (a parameter or any tensor) in place. Fans come from the shape:
 * rank 2 [n_in, n_out] gives fan_in = n_in, fan_out = n_out; rank > 2 uses
 * the last axis as fan_out and the product of the others as fan_in; rank 1
 * and 0 use the size for both. Random kinds draw from @p rng in row-major
 * order (the same seed gives the same values). Errors: NB_ERR_NULL (t, or
 * rng for a random kind), NB_ERR_ARG (unknown kind, NB_INIT_AUTO, or a fan
 * of zero for a scaled kind).
 */
NB_API nb_status nb_init_tensor(nb_tensor *t, nb_init kind, double scale, nb_rng *rng);
/** As nb_init_tensor with explicit fans. */
NB_API nb_status nb_init_tensor_fans(nb_tensor *t, nb_init kind, double scale, int64_t fan_in,
                                     int64_t fan_out, nb_rng *rng);

/* =============================================================== layers */

/** A layer: built once against an nb_model (which owns its parameters),
 *  then run on a fresh graph every step. Opaque; free with nb_layer_free.
 *  What a layer does is its definition's (nb_layer_def, below): the
 *  library's layers are definitions like any a program writes. */
typedef struct nb_layer nb_layer;

/** The library's first kinds of layers (nb_layer_get_kind); a layer of
 *  any other definition is NB_LAYER_OTHER (nb_layer_get_def says which). */
typedef enum nb_layer_kind {
    NB_LAYER_LINEAR = 1,
    NB_LAYER_ACTIVATION = 2,
    NB_LAYER_DROPOUT = 3,
    NB_LAYER_BATCH_NORM = 4,
    NB_LAYER_MAXOUT = 5,
    NB_LAYER_SEQUENTIAL = 6,
    NB_LAYER_OTHER = 7,
} nb_layer_kind;

typedef struct nb_layer_def nb_layer_def;

/** Settings shared by the layer constructors; a zeroed struct is valid. */
typedef struct nb_layer_opts {
    nb_dtype dtype;    /**< dtype of the parameters (NB_F32) */
    nb_init init;      /**< weight initialisation (NB_INIT_AUTO: Xavier-uniform for a
                            lone layer; the MLP builder picks by activation) */
    double init_scale; /**< value for NB_INIT_CONSTANT, σ for NB_INIT_SMALL_NORMAL */
    bool no_bias;      /**< linear and maxout layers without a bias */
    nb_rng *rng;       /**< draws initial weights, dropout masks and RReLU slopes;
                            kept by the layer (not owned): it must outlive it */
    /** nb_layer_from_description: the program's own kinds of layers a
     *  description may name, besides the library's (NULL when none) */
    const nb_layer_def *const *defs;
    int n_defs;
    /** nb_layer_from_description: refuse (NB_ERR_ARG) a description whose
     *  parameters would take more than this many bytes, before allocating
     *  them (0: no bound) */
    int64_t max_bytes;
} nb_layer_opts;

/* ======================================================= layer protocol */

/**
 * A kind of layer. The library's layers (linear, maxout, activation,
 * dropout, batch norm, sequence) are definitions of this shape, and a
 * program's own layer is one too: it then works in sequences, the trainer,
 * evaluation, checkpoints, descriptions and model-level checks like the
 * library's. docs/nn.md ("Your own layers") has a worked example.
 */
struct nb_layer_def {
    /** The kind's name: letters, digits, '_' and '-', unique among the kinds
     *  a program uses ("linear", "my_block"); descriptions name it. */
    const char *kind;
    /** Bytes of settings each layer of the kind keeps (nb_layer_state):
     *  allocated and zeroed with the layer, freed with it. */
    size_t state_size;
    /** Run the layer (required): record ops in @p g on input @p x and
     *  return the output, or record an error in @p g (nb_graph_fail) and
     *  return NULL. The graph comes first, as in every op. */
    nb_tensor *(*forward)(nb_graph *g, nb_layer *l, nb_tensor *x, bool training);
    /** Width of the output's last axis for an input whose last axis is
     *  @p w (NULL: the same width), or -1 when it is not known from @p w
     *  alone (a flatten). nb_layer_forward checks every output against a
     *  width >= 0. */
    int64_t (*out_width)(const nb_layer *l, int64_t w);
    /** The layer's settings as text for descriptions (NULL: layers of the
     *  kind cannot be described, and neither can a network holding one):
     *  append them with nb_layer_setting_put to out[0..cap), which holds
     *  "" on entry. Return NB_OK or an error of nb_layer_setting_put. */
    nb_status (*describe)(const nb_layer *l, char *out, size_t cap);
    /** Build a layer of the kind again from those settings (NULL: it cannot
     *  be built from a description): @p l is new (its name, generator and
     *  zeroed state set); read @p settings with nb_layer_setting_get_*,
     *  add the parameters with nb_layer_add_param to @p m and fill the
     *  state. @p o gives the description's dtype and the caller's init,
     *  generator and bound. Report a bad setting in @p err (may be NULL;
     *  nb_error_set) and return its status; @p l is then freed. */
    nb_status (*build)(nb_layer *l, nb_model *m, const char *settings, const nb_layer_opts *o,
                       nb_error *err);
    /** Release what the state holds besides itself (NULL: nothing). */
    void (*release)(nb_layer *l);
};

/**
 * A new layer of kind @p def named @p name (under 96 bytes, no space,
 * '=' or line break, so descriptions can hold it), with zeroed state of
 * def->state_size bytes and the generator o->rng (@p o may be NULL).
 * Errors: NB_ERR_NULL (def, def->forward, def->kind, name, out), NB_ERR_ARG
 * (a kind or name that breaks those rules), NB_ERR_NOMEM.
 */
NB_API nb_status nb_layer_new(const nb_layer_def *def, const char *name, const nb_layer_opts *o,
                              nb_layer **out);
/** The layer's settings (def->state_size bytes; NULL when none, or for a
 *  NULL layer). */
NB_API void *nb_layer_state(const nb_layer *l);
/** The layer's definition (NULL for NULL). */
NB_API const nb_layer_def *nb_layer_get_def(const nb_layer *l);
/** The generator the layer was made with (NULL when none). */
NB_API nb_rng *nb_layer_rng(const nb_layer *l);
/**
 * Add the parameter "<layer name>.<suffix>" to @p m and to the layer's
 * list (nb_layer_param), zero-filled. The layer keeps pointers to it; the
 * model owns it. Errors: NB_ERR_NULL, NB_ERR_DTYPE (not f32 or f64),
 * NB_ERR_ARG (a bad suffix or shape, a name too long, past the bound of
 * nb_layer_from_description), NB_ERR_EXISTS (the name is taken), NB_ERR_NOMEM.
 */
NB_API nb_status nb_layer_add_param(nb_layer *l, nb_model *m, const char *suffix, nb_dtype dt,
                                    int rank, const int64_t *shape, nb_tensor **out);
/** Number of parameters the layer added (its sublayers' not counted). */
NB_API int nb_layer_param_count(const nb_layer *l);
/** The @p i-th parameter the layer added (NULL when out of range). */
NB_API nb_tensor *nb_layer_param(const nb_layer *l, int i);
/** Make @p child a sublayer of @p parent, which then owns it (also on
 *  error: @p child is freed). Sequences run their sublayers in order; a
 *  program's layer runs them itself (nb_layer_at). NB_ERR_NULL,
 *  NB_ERR_ARG (the same layer), NB_ERR_NOMEM. */
NB_API nb_status nb_layer_add_child(nb_layer *parent, nb_layer *child);
/** The library's definition of kind @p kind ("linear", "maxout",
 *  "activation", "dropout", "batch_norm", "sequential", ...), or NULL. */
NB_API const nb_layer_def *nb_layer_builtin(const char *kind);

/**
 * Settings text: "key=value" pairs separated by single spaces (the form
 * descriptions hold). Keys are letters, digits, '_', '-' and '.'; values
 * hold no space, '=' or line break. nb_layer_setting_put appends
 * " key=value" (no space first when @p out is "") with printf's @p fmt;
 * NB_ERR_ARG when a key or value breaks the rules or it does not fit in
 * @p cap bytes (then @p out is as it was).
 */
NB_API nb_status nb_layer_setting_put(char *out, size_t cap, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/** The value of @p key in @p settings into buf[0..cap). NB_ERR_NOTFOUND,
 *  NB_ERR_ARG (it does not fit), NB_ERR_NULL. */
NB_API nb_status nb_layer_setting_get(const char *settings, const char *key, char *buf, size_t cap);
/** The value of @p key as an integer. NB_ERR_NOTFOUND, NB_ERR_PARSE. */
NB_API nb_status nb_layer_setting_get_i64(const char *settings, const char *key, int64_t *out);
/** The value of @p key as a finite double. NB_ERR_NOTFOUND, NB_ERR_PARSE. */
NB_API nb_status nb_layer_setting_get_f64(const char *settings, const char *key, double *out);

/**
 * Linear layer y = x·W + b: adds "<name>.weight" [n_in, n_out] (initialised
 * by o->init) and "<name>.bias" [n_out] (zeros) to @p m. @p o may be NULL
 * (defaults; then the random init has no rng and fails: pass one).
 * The input is [N, n_in] (or [B, N, n_in]). Errors: NB_ERR_NULL (m, name,
 * out, or o->rng for a random init), NB_ERR_DTYPE, NB_ERR_ARG (sizes < 1,
 * name of 96 bytes or more, NB_INIT_COUNT or beyond), NB_ERR_EXISTS (a
 * parameter name is taken: then nothing is added), NB_ERR_NOMEM (the
 * parameters already added stay in the model: discard it).
 */
NB_API nb_status nb_linear_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out,
                               const nb_layer_opts *o, nb_layer **out);
/** Maxout layer: a linear map to n_out·k values ("<name>.weight" [n_in,
 *  n_out·k], "<name>.bias"), then nb_maxout over groups of k. */
NB_API nb_status nb_maxout_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out,
                               int64_t k, const nb_layer_opts *o, nb_layer **out);
/** Activation layer. PReLU and learned swish add "<name>.alpha" or
 *  "<name>.beta" [n_features] filled with the initial value from @p act_o
 *  (NULL: defaults); other kinds add nothing (n_features is then unused).
 *  RReLU takes its rng from @p o. */
NB_API nb_status nb_act_layer_new(nb_model *m, const char *name, nb_act act,
                                  const nb_act_opts *act_o, int64_t n_features,
                                  const nb_layer_opts *o, nb_layer **out);
/** Inverted dropout with drop probability @p p in [0, 1): training keeps each
 *  element with probability 1−p and divides the kept ones by 1−p (the mean
 *  is preserved), masks drawn from o->rng (required); evaluation is the
 *  identity. (The notes' keep probability is 1−p; scaling at training time
 *  instead of at test time gives the same expected output.) */
NB_API nb_status nb_dropout_new(const char *name, double p, const nb_layer_opts *o, nb_layer **out);
/**
 * Batch normalisation of [N, F] inputs: y = γ·(x − μ)/√(σ² + eps) + β.
 * Parameters "<name>.weight" (γ, ones) and "<name>.bias" (β, zeros), and
 * the non-trainable buffers "<name>.running_mean" (zeros) and
 * "<name>.running_var" (ones), all [F] and saved with the model.
 * Training: μ, σ² are the batch mean and (biased) variance, gradients flow
 * through them, and the buffers move: r ← (1−momentum)·r + momentum·stat,
 * with the unbiased variance N/(N−1)·σ² for running_var (N > 1 needed).
 * Evaluation: μ, σ² are the running buffers (constants).
 * eps > 0 and momentum in [0, 1] (NB_ERR_ARG otherwise); 1e-5 and 0.1 are usual.
 */
NB_API nb_status nb_batch_norm_new(nb_model *m, const char *name, int64_t n_features, double eps,
                                   double momentum, const nb_layer_opts *o, nb_layer **out);
/** Reshape each sample: [N, ...] to [N, shape[0], ..., shape[rank-1]]
 *  (kind "reshape"; e.g. an image's 784 pixels as 28 rows of 28 for a
 *  recurrent layer). The sample's element count must be the shape's.
 *  NB_ERR_NULL, NB_ERR_ARG (rank outside 1..NB_MAX_RANK-1, a size < 1),
 *  NB_ERR_NOMEM. */
NB_API nb_status nb_reshape_layer_new(const char *name, int rank, const int64_t *shape,
                                      nb_layer **out);
/**
 * 2-D convolution layer over [N, C, H, W] inputs (kind "conv2d"): y =
 * nb_conv2d(x, W, @p co) + b, "<name>.weight" [c_out, c_in/groups, kh, kw]
 * and "<name>.bias" [c_out] (zeros; none with o->no_bias), the parameter
 * names and shapes of PyTorch's nn.Conv2d. NB_INIT_AUTO is He-uniform with
 * fan_in = c_in/groups·kh·kw (o->rng needed). @p co NULL: stride 1, no
 * padding, dilation 1, one group. Its width (the output's last axis) is
 * OW = ⌊(W + 2·padding − dilation·(kw − 1) − 1)/stride⌋ + 1. NB_ERR_NULL,
 * NB_ERR_DTYPE, NB_ERR_ARG (a size or setting nb_conv2d refuses, channels
 * not divisible by groups), NB_ERR_EXISTS, NB_ERR_NOMEM.
 */
NB_API nb_status nb_conv2d_new(nb_model *m, const char *name, int64_t c_in, int64_t c_out,
                               int64_t kh, int64_t kw, const nb_conv_opts *co,
                               const nb_layer_opts *o, nb_layer **out);
/** Max pooling layer (kind "max_pool2d"): nb_max_pool2d with window @p po
 *  on [N, C, H, W] inputs. No parameters. NB_ERR_NULL, NB_ERR_ARG (a
 *  window nb_max_pool2d refuses), NB_ERR_NOMEM. */
NB_API nb_status nb_max_pool2d_new(const char *name, const nb_pool2d_opts *po, nb_layer **out);
/** Average pooling layer (kind "avg_pool2d"): nb_avg_pool2d, as
 *  nb_max_pool2d_new. */
NB_API nb_status nb_avg_pool2d_new(const char *name, const nb_pool2d_opts *po, nb_layer **out);
/** Flatten layer (kind "flatten"): [N, ...] to [N, the product of the
 *  other axes], e.g. a convolution's [N, 64, 7, 7] maps to [N, 3136] for a
 *  linear layer. Its width depends on every axis, so its out_width is -1
 *  (not checked). NB_ERR_NULL, NB_ERR_NOMEM. */
NB_API nb_status nb_flatten_new(const char *name, nb_layer **out);
/** Layer normalisation over the last axis, as PyTorch's nn.LayerNorm(F):
 *  y = γ ⊙ (x − μ)/√(σ² + eps) + β with μ, σ² (biased) of each sample's
 *  last axis, in training and evaluation alike. "<name>.weight" (γ, ones)
 *  and "<name>.bias" (β, zeros) [F]. Kind "layer_norm". NB_ERR_NULL,
 *  NB_ERR_DTYPE, NB_ERR_ARG (F < 1, eps not > 0), NB_ERR_EXISTS,
 *  NB_ERR_NOMEM. */
NB_API nb_status nb_layer_norm_new(nb_model *m, const char *name, int64_t n_features, double eps,
                                   const nb_layer_opts *o, nb_layer **out);
/** A table of @p num vectors of @p dim, as PyTorch's nn.Embedding: the
 *  input holds indices (whole numbers 0..num-1 in a tensor of any rank up
 *  to NB_MAX_RANK-1), the output their rows, [..., dim] (nb_gather, so the
 *  gradient adds into the rows used). "<name>.weight" [num, dim], drawn
 *  from N(0, 1) (NB_INIT_AUTO; o->rng needed) or as o->init says. Kind
 *  "embedding". An entry that is not such an index is an error naming it.
 *  NB_ERR_NULL, NB_ERR_DTYPE, NB_ERR_ARG, NB_ERR_EXISTS, NB_ERR_NOMEM. */
NB_API nb_status nb_embedding_new(nb_model *m, const char *name, int64_t num, int64_t dim,
                                  const nb_layer_opts *o, nb_layer **out);
/** An empty sequence of layers, run in order. */
NB_API nb_status nb_sequential_new(const char *name, nb_layer **out);
/** Append @p layer to @p seq, which takes ownership (also on error: then
 *  @p layer is freed). NB_ERR_NULL, NB_ERR_ARG (seq not a sequence, or
 *  the same layer), NB_ERR_NOMEM. */
NB_API nb_status nb_sequential_add(nb_layer *seq, nb_layer *layer);

/** Settings of nb_mlp_new. Start from nb_mlp_defaults(). */
typedef struct nb_mlp_opts {
    nb_layer_opts layer;         /**< dtype, init, rng (required for random init) */
    nb_act act;                  /**< hidden activation (NB_ACT_RELU) */
    const nb_act_opts *act_opts; /**< NULL: nb_act_defaults(act) */
    nb_act out_act;              /**< activation after the last layer (identity) */
    bool batch_norm;             /**< batch norm after each hidden linear layer */
    double bn_eps, bn_momentum;  /**< batch-norm settings (1e-5, 0.1) */
    double dropout;              /**< drop probability after each hidden activation (0: none) */
} nb_mlp_opts;

/** ReLU, no batch norm, no dropout, f32, init by activation, rng NULL. */
NB_API nb_mlp_opts nb_mlp_defaults(void);

/**
 * Multi-layer perceptron from @p n_sizes >= 2 sizes (input, hidden...,
 * output): for each hidden layer i = 1, 2, ...: linear "fc<i>", then batch
 * norm "bn<i>" (if asked), activation "act<i>", dropout "drop<i>" (if
 * asked); then the last linear layer and out_act. Names are prefixed by
 * "<prefix>." when @p prefix is not NULL or empty. Maxout hidden layers
 * become maxout layers "fc<i>" of o->act_opts->pieces pieces. Init
 * NB_INIT_AUTO picks, for every linear layer, He-uniform when the hidden
 * activation is of the ReLU family (ReLU, leaky, PReLU, RReLU, ELU, maxout,
 * swish, GELU, softplus) and Xavier-uniform otherwise. Biases start at 0.
 * Errors as nb_linear_new; on error the parameters already added stay in
 * the model (use a fresh model).
 */
NB_API nb_status nb_mlp_new(nb_model *m, const char *prefix, const int64_t *sizes, int n_sizes,
                            const nb_mlp_opts *o, nb_layer **out);

/**
 * Run @p l on @p x in @p g (its definition's forward). @p training selects
 * dropout masks, RReLU slopes and batch statistics (training) or their
 * evaluation forms. Batch norm in training mode also updates its running
 * buffers (once per call). Errors are recorded in @p g: wrong input width
 * or dtype, for instance "fc1: input [4,3] does not fit weight [5,2]"; a
 * layer that returns NULL without recording an error, or an output whose
 * last axis is not the width its out_width says, is an error naming the
 * layer, its kind and the shapes. @p l NULL: NB_ERR_NULL.
 */
NB_API nb_tensor *nb_layer_forward(nb_graph *g, nb_layer *l, nb_tensor *x, bool training);
/** Free a layer (and its sublayers). Parameters stay in their model.
 *  NULL is accepted. */
NB_API void nb_layer_free(nb_layer *l);
/** Kind of a layer (0 for NULL). */
NB_API nb_layer_kind nb_layer_get_kind(const nb_layer *l);
/** Name of a layer ("" for NULL). Owned by the layer. */
NB_API const char *nb_layer_name(const nb_layer *l);
/** Number of sublayers (a sequence's layers; 0 for most layers). */
NB_API int nb_layer_count(const nb_layer *l);
/** The @p i-th sublayer (NULL when out of range). */
NB_API nb_layer *nb_layer_at(const nb_layer *l, int i);
/** Find a layer by name in @p l and its sequences (depth first); NULL if none. */
NB_API nb_layer *nb_layer_find(const nb_layer *l, const char *name);

/** What a layer is (nb_layer_get_info). Tensors belong to the model (do
 *  not free); NULL when the layer has none. */
typedef struct nb_layer_info {
    nb_layer_kind kind;
    const char *kind_name; /**< its definition's kind ("linear", "my_block") */
    const char *name;     /**< owned by the layer */
    int64_t n_in, n_out;  /**< widths: linear and maxout in and out (out after the maxout);
                               conv2d: the channels in and out;
                               batch norm and PReLU / learned swish: the features; a
                               reshape: a sample's elements and the last axis; a recurrent
                               layer: a step's features and the hidden units; a
                               sequence: what goes in and comes out; 0 when unknown */
    int64_t pieces;       /**< maxout: pieces per unit; linear: 1; else 0 */
    nb_act act;           /**< activation layers: the kind */
    nb_act_opts act_opts; /**< activation layers: its settings */
    double p;             /**< dropout: the drop probability */
    double eps, momentum; /**< batch norm */
    int n_items;          /**< sequence: its number of layers */
    nb_tensor *weight;    /**< linear and maxout: W; batch norm: γ; recurrent: W_ih */
    nb_tensor *bias;      /**< linear and maxout: b (NULL without one); batch norm: β;
                               recurrent: b_ih */
    nb_tensor *running_mean, *running_var; /**< batch norm */
    nb_tensor *param;                      /**< PReLU α or learned swish β */
    int64_t kernel[2];    /**< conv2d and pooling: the window's height and width */
    nb_conv_opts conv;    /**< conv2d: its settings (n_in, n_out: the channels) */
    nb_pool2d_opts pool;  /**< max_pool2d, avg_pool2d: the window */
} nb_layer_info;

/** Fill @p out with what @p l is. NB_ERR_NULL when either is NULL. */
NB_API nb_status nb_layer_get_info(const nb_layer *l, nb_layer_info *out);

/* ============================================================ recurrent */

/** Recurrent cells. Gate layout and parameter names are PyTorch's, so
 *  weights convert through safetensors as they are. */
typedef enum nb_rnn_kind {
    NB_RNN_ELMAN = 0, /**< h' = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh), act tanh or relu */
    NB_RNN_GRU = 1,   /**< gates r, z, n stacked in that order (3H rows) */
    NB_RNN_LSTM = 2,  /**< gates i, f, g, o stacked in that order (4H rows) */
} nb_rnn_kind;

/** Settings of recurrent layers; start from nb_rnn_defaults(). */
typedef struct nb_rnn_opts {
    nb_layer_opts layer; /**< dtype; init (NB_INIT_AUTO: PyTorch's U(±1/√hidden) for every
                              weight and bias; another kind fills the weights, biases 0);
                              rng (for a random init); no_bias */
    bool all_steps;      /**< output every step's hidden state [N, T, H] (false: the last,
                              [N, H]) */
    int64_t truncate;    /**< truncated back-propagation through time: the state is cut
                              from the graph (nb_stop_gradient) before every step t > 0 with
                              t % truncate == 0, so gradients reach back at most that many
                              steps (0: through all) */
    nb_act act;          /**< the Elman cell's nonlinearity: NB_ACT_TANH or NB_ACT_RELU */
} nb_rnn_opts;

/** f32, NB_INIT_AUTO, no rng, biases, the last step only, no truncation, tanh. */
NB_API nb_rnn_opts nb_rnn_defaults(void);
/** "rnn", "gru" or "lstm"; "?" for anything else. */
NB_API const char *nb_rnn_kind_name(nb_rnn_kind kind);

/**
 * A recurrent layer of @p kind (descriptions' kinds "rnn", "gru",
 * "lstm") unrolled over an input [N, T, n_in]: the input's projection for
 * all steps in one matrix product, then one cell step per time from a zero
 * state; back-propagation through time is the graph's (truncated as
 * o->truncate says). Output [N, hidden] (the last step) or [N, T, hidden]
 * (o->all_steps). Parameters, as PyTorch's nn.RNN / nn.GRU / nn.LSTM name
 * and shape them: "<name>.weight_ih_l0" [G·hidden, n_in],
 * "<name>.weight_hh_l0" [G·hidden, hidden], "<name>.bias_ih_l0" and
 * "<name>.bias_hh_l0" [G·hidden] (G = 1, 3, 4). Errors: NB_ERR_NULL (m,
 * name, out; no rng for a random init), NB_ERR_DTYPE, NB_ERR_ARG (sizes
 * < 1, truncate < 0, an Elman act other than tanh or relu, a bad name or
 * init), NB_ERR_EXISTS (a name taken: nothing added), NB_ERR_NOMEM.
 */
NB_API nb_status nb_rnn_new(nb_model *m, const char *name, nb_rnn_kind kind, int64_t n_in,
                            int64_t hidden, const nb_rnn_opts *o, nb_layer **out);
/** A recurrent cell (kinds "rnn_cell", "gru_cell", "lstm_cell"), named as
 *  PyTorch's nn.RNNCell / nn.GRUCell / nn.LSTMCell: "<name>.weight_ih",
 *  "<name>.weight_hh", "<name>.bias_ih", "<name>.bias_hh". As a layer it
 *  takes [N, n_in] and gives one step from a zero state; nb_rnn_cell_step
 *  takes the state. all_steps and truncate are ignored. Errors as
 *  nb_rnn_new. */
NB_API nb_status nb_rnn_cell_new(nb_model *m, const char *name, nb_rnn_kind kind, int64_t n_in,
                                 int64_t hidden, const nb_rnn_opts *o, nb_layer **out);
/**
 * One step of @p cell on x [N, n_in] from state @p h [N, hidden] (NULL:
 * zeros) and, for an LSTM, cell state @p c (NULL: zeros): returns the new
 * h, and the new c in *c_out (LSTM; required then, NULL for the others
 * gives NULL). Errors recorded in @p g naming the cell and the shapes.
 */
NB_API nb_tensor *nb_rnn_cell_step(nb_graph *g, nb_layer *cell, nb_tensor *x, nb_tensor *h,
                                   nb_tensor *c, nb_tensor **c_out);

/** What a recurrent layer or cell is (nb_rnn_get_info). */
typedef struct nb_rnn_info {
    nb_rnn_kind kind;
    bool cell, bias, all_steps;
    int64_t n_in, hidden, truncate;
    nb_act act;
    nb_tensor *weight_ih, *weight_hh, *bias_ih, *bias_hh; /**< the model's; biases NULL without */
} nb_rnn_info;

/** Fill @p out. NB_ERR_NULL, NB_ERR_ARG (not a recurrent layer or cell). */
NB_API nb_status nb_rnn_get_info(const nb_layer *l, nb_rnn_info *out);

/* ================================================================ graphs */

/**
 * Graph convolution (Kipf & Welling): y = Â·x·W + b over the @p n_nodes
 * nodes of a fixed undirected graph, Â = D^-1/2 (A + I) D^-1/2 its
 * adjacency with self-loops, normalised by the degrees (loops counted).
 * @p edges holds @p n_edges pairs (a, b) of nodes 0..n_nodes-1, each edge
 * once, no loops (the layer adds one per node). Built from gather and
 * scatter_add: Â is never formed, memory and time follow the edges.
 * Input [n_nodes, n_in] (a row of features per node), output
 * [n_nodes, n_out]. Parameters "<name>.weight" [n_in, n_out] (o->init;
 * NB_INIT_AUTO: Xavier-uniform) and "<name>.bias" [n_out] (zeros; not with
 * o->no_bias). Kind "gcn"; its description holds the edges. Errors, also
 * in @p err (may be NULL) with a sentence: NB_ERR_NULL, NB_ERR_DTYPE,
 * NB_ERR_ARG (sizes < 1; a node out of range, a loop or an edge given
 * twice, named), NB_ERR_EXISTS, NB_ERR_NOMEM.
 */
NB_API nb_status nb_gcn_new(nb_model *m, const char *name, int64_t n_in, int64_t n_out,
                            int64_t n_nodes, const int64_t *edges, int64_t n_edges,
                            const nb_layer_opts *o, nb_layer **out, nb_error *err);

/* ========================================================= descriptions */

/*
 * A description is metadata text (nabla/meta.h) that says what network a
 * file's tensors belong to, so the network can be built again before they
 * are loaded. A network nb_mlp_new builds is written compactly:
 * "arch=mlp", "sizes=64,128,10", "act=relu", ... (it names no tensor:
 * nb_layer_from_description gives the layers the names nb_mlp_new gives).
 * Any other is written layer by layer: "arch=layers", "layers=<n>",
 * "dtype=", and a line "layer.<i>=<kind> name=<name> <settings>" per layer
 * (a sequence's layers numbered below it, "layer.3.1"), each kind writing
 * and reading its own settings (nb_layer_def's describe and build).
 * docs/nn.md ("Descriptions") lists every key with its rules.
 */

/**
 * The description of @p net, read from the network itself (its layers,
 * sizes, activations and their settings, batch-norm eps and momentum,
 * dropout, biases, dtype), into out[0..cap) as NUL-terminated metadata
 * text; nb_layer_from_description builds the same network from it: the
 * "arch=mlp" form for a sequence as nb_mlp_new builds it (under any
 * prefix, the sequence's name), the "arch=layers" form for any other.
 * Errors (also in @p err, which may be NULL; err->name is the layer
 * concerned): NB_ERR_NULL, NB_ERR_ARG (a layer whose definition has no
 * describe or build, or whose name holds a space; parameters of two
 * dtypes; more than 1000 layers or 16 levels of sequences; the text does
 * not fit in @p cap bytes), NB_ERR_NOMEM. On error @p out holds "" (when
 * cap > 0).
 */
NB_API nb_status nb_layer_describe(const nb_layer *net, char *out, size_t cap, nb_error *err);

/**
 * Check description @p desc as nb_layer_from_description does, without
 * building anything, and give in *bytes (may be NULL) the bytes of the
 * tensors its network would add to a model: a caller can refuse a
 * description of more tensors than a file holds before anything is
 * allocated. For "arch=layers" text its form is checked (every layer line
 * there, kinds spelled, nesting) and *bytes is -1: each kind reads its
 * settings when built, so bound the build with nb_layer_opts.max_bytes.
 * Keys that are not the description's are ignored. Errors, in
 * @p err (may be NULL) with the key in err->name and a sentence:
 * NB_ERR_NULL; NB_ERR_PARSE (text that is not metadata (nb_meta_check), a
 * required key missing, a number or list that does not parse);
 * NB_ERR_ARG (an unknown architecture, activation or dtype, a value out of
 * range, a key that does not apply, as pieces= without act=maxout, or a
 * network of 2^63 bytes or more).
 */
NB_API nb_status nb_layer_description_check(const char *desc, int64_t *bytes, nb_error *err);

/**
 * Build the network description @p desc gives (from nb_layer_describe or a
 * file's metadata), adding its parameters to @p m with the names nb_mlp_new
 * gives them (arch=mlp) or the names the description holds (arch=layers),
 * under @p prefix (NULL or "": none). @p o supplies what a description does
 * not say: the initialisation (init, init_scale), the generator (rng,
 * which dropout and a random init need), the program's own kinds (defs)
 * and a bound on the parameters' bytes (max_bytes); its dtype and no_bias
 * are ignored (the description says them). @p o NULL: parameters start at
 * zero (as when a file's tensors are loaded next) and there is no
 * generator. The description is checked first (nb_layer_description_check)
 * and a bad one adds nothing. Errors, in @p err (may be NULL) with the key
 * or parameter in err->name: those of nb_layer_description_check,
 * NB_ERR_NULL (m, desc, out; no generator for dropout= or a random init),
 * NB_ERR_ARG (a prefix longer than 80 bytes), NB_ERR_EXISTS (a parameter
 * name is taken), NB_ERR_NOMEM (then, as for nb_mlp_new, parameters added
 * stay in @p m: discard it).
 */
NB_API nb_status nb_layer_from_description(nb_model *m, const char *prefix, const char *desc,
                                           const nb_layer_opts *o, nb_layer **out, nb_error *err);

/** One entry of a gradient-norm report. */
typedef struct nb_param_norm {
    const char *name; /**< parameter name, e.g. "fc1.weight" (owned by the model) */
    double norm;      /**< Frobenius norm of its gradient */
} nb_param_norm;

/**
 * ‖grad‖ of every trainable matrix (rank >= 2) whose name ends in
 * ".weight" (so not batch-norm γ), in the
 * order they were added to @p m (for an MLP: input layer first), written to
 * out[0 .. min(count, cap)). Returns the count (which may exceed cap), or
 * -1 when m is NULL or out is NULL with cap > 0. Shows vanishing gradients:
 * in a deep sigmoid network the norms shrink towards the input.
 */
NB_API int nb_grad_norms(const nb_model *m, nb_param_norm *out, int cap);

/* =============================================================== losses */

/** How a loss is reduced over elements or samples. */
typedef enum nb_reduction {
    NB_REDUCE_MEAN = 0, /**< mean (over elements; over samples for cross-entropy) */
    NB_REDUCE_SUM = 1,  /**< sum */
} nb_reduction;

/** Mean squared error: reduce((pred − target)²) over all elements; shapes
 *  must be equal (NB_ERR_SHAPE / NB_ERR_DTYPE naming both otherwise, e.g.
 *  "mse_loss: prediction f32 [32,1] and target f32 [32,2] differ"). */
NB_API nb_tensor *nb_mse_loss(nb_graph *g, nb_tensor *pred, nb_tensor *target, nb_reduction r);
/** Mean absolute error (L1 loss): reduce(|pred − target|) over all
 *  elements; derivative sign(pred − target), 0 where they are equal.
 *  Shapes must be equal, as for nb_mse_loss. */
NB_API nb_tensor *nb_l1_loss(nb_graph *g, nb_tensor *pred, nb_tensor *target, nb_reduction r);
/** Huber loss with threshold @p delta (PyTorch's HuberLoss): with
 *  d = pred − target, ½d² where |d| < δ and δ(|d| − ½δ) elsewhere,
 *  reduced over all elements; derivative d inside, δ·sign(d) outside
 *  (continuous at |d| = δ). Shapes must be equal, as for nb_mse_loss;
 *  NB_ERR_ARG unless delta is finite and > 0. */
NB_API nb_tensor *nb_huber_loss(nb_graph *g, nb_tensor *pred, nb_tensor *target, double delta,
                                nb_reduction r);
/** Binary cross-entropy on probabilities: −[t·ln p + (1−t)·ln(1−p)] with p
 *  clamped to [eps, 1−eps] (eps 1e-7 in f32, 1e-12 in f64), so it is finite
 *  for p = 0 or 1; no gradient flows where p is clamped. Shapes equal. */
NB_API nb_tensor *nb_bce_loss(nb_graph *g, nb_tensor *prob, nb_tensor *target, nb_reduction r);
/** Binary cross-entropy on logits z (p = σ(z)) in the stable form
 *  softplus(z) − t·z = max(z,0) − t·z + ln(1 + e^-|z|). Shapes equal. */
NB_API nb_tensor *nb_bce_with_logits(nb_graph *g, nb_tensor *logits, nb_tensor *target,
                                     nb_reduction r);
/** Softmax cross-entropy of logits [N, C] against integer labels[0..n)
 *  (n == N, each in [0, C)): −Σ_i log_softmax(z_i)[labels[i]], reduced over
 *  the N samples. Labels are copied. One node (the primitive softmax_xent,
 *  docs/ops.md), whose VJP is one node (softmax_xent_backward); its value
 *  is that of the composition one_hot, log_softmax, mul, sum, neg,
 *  mean/sum, bit for bit. */
NB_API nb_tensor *nb_softmax_cross_entropy(nb_graph *g, nb_tensor *logits, const int64_t *labels,
                                           int64_t n, nb_reduction r);
/** Softmax cross-entropy against target distributions [N, C] (rows summing
 *  to 1, e.g. smoothed labels): −Σ_c t_ic·log_softmax(z_i)_c, reduced over N. */
NB_API nb_tensor *nb_softmax_cross_entropy_soft(nb_graph *g, nb_tensor *logits, nb_tensor *target,
                                                nb_reduction r);
/** L2 penalty ½λ Σ_k ‖W_k‖²_F over @p n tensors (same dtype); a scalar of
 *  their dtype. n == 0 or an entry NULL: NB_ERR_ARG / quiet NULL. */
NB_API nb_tensor *nb_l2_penalty(nb_graph *g, nb_tensor *const *params, int n, double lambda);
/** L1 penalty λ Σ_k Σ |W_k| (derivative λ·sign(W), 0 at 0). */
NB_API nb_tensor *nb_l1_penalty(nb_graph *g, nb_tensor *const *params, int n, double lambda);
/** Collect the trainable parameters of @p m whose names end in @p suffix
 *  (e.g. ".weight": the usual choice for a penalty; NULL or "": all) into
 *  out[0 .. min(count, cap)), in model order. Returns the count, or -1 for
 *  m NULL or out NULL with cap > 0. */
NB_API int nb_params_matching(const nb_model *m, const char *suffix, nb_tensor **out, int cap);
/** Fraction of rows of @p logits [N, C] whose arg-max (first on ties)
 *  equals labels[i]; n must be N. Written to *out. NB_ERR_NULL,
 *  NB_ERR_SHAPE (not rank 2 or n differs), NB_ERR_ARG (N == 0). */
NB_API nb_status nb_accuracy(const nb_tensor *logits, const int64_t *labels, int64_t n,
                             double *out);

#ifdef __cplusplus
}
#endif
#endif
