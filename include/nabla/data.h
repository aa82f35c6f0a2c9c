/**
 * @file data.h
 * @brief Data sets for training: a dataset type (features and integer
 *        labels, or features and float targets for regression), CSV and
 *        IDX (MNIST format, plain or gzip) loaders, the
 *        built-in digits data set, splits, shuffled mini-batches,
 *        normalisation and image augmentation.
 *
 * Ownership: an nb_dataset or nb_loader belongs to whoever made it and is
 * freed with nb_dataset_free / nb_loader_free (both accept NULL). Every
 * allocation goes through the nb_alloc_fn given in nb_data_opts (malloc when
 * NULL); datasets made from a dataset (slices, splits) and loaders use the
 * hook of the dataset they come from.
 *
 * Errors: loaders return an nb_status and, when given an nb_error, fill it:
 * where = the loader ("nb_dataset_load_csv"), the 1-based line and column
 * (CSV) or the byte offset (IDX) of the first problem, and a sentence
 * naming it, e.g. "line 3, column 2: \"abc\" is not a number". Line and
 * column are 0 and offset -1 when they do not apply; offsets count in the
 * decompressed stream for gzip input, except for errors of the gzip stream
 * itself, where they are in the compressed input. After success the
 * nb_error is cleared. A failed call leaves *out NULL and allocates nothing
 * that outlives it. Nothing is printed.
 * Random numbers come only from the nb_rng passed in.
 */
#ifndef NABLA_DATA_H
#define NABLA_DATA_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A data set: n samples of n_features values (f32 or f64, row-major
 *  [n, n_features]) and, per sample, either one integer label in
 *  [0, n_classes) (classification) or n_targets float values of the same
 *  dtype (regression, multi-output: row-major [n, n_targets]); and
 *  optionally an image shape (channels x height x width = n_features,
 *  channel-major). Which one it holds is fixed when it is made:
 *  nb_dataset_targets() is 0 for a labelled data set. Slices, subsets,
 *  splits, loaders (shuffled or not) and augmentation move a sample's
 *  label or targets with its features; scaling and standardisation change
 *  the features only. Opaque. */
typedef struct nb_dataset nb_dataset;

/** Storage type of labels. */
typedef enum nb_label_type {
    NB_LABEL_I32 = 0, /**< int32_t */
    NB_LABEL_I64 = 1, /**< int64_t */
} nb_label_type;

/** Options shared by every way of making a data set. A zero-initialised
 *  struct (or NULL) means: f32 features, int32 labels, number of classes =
 *  largest label + 1, malloc. */
typedef struct nb_data_opts {
    nb_dtype dtype;           /**< feature type */
    nb_label_type label_type; /**< label type */
    int64_t n_classes;        /**< 0: largest label + 1; else labels must be below it */
    nb_alloc_fn alloc;        /**< allocation hook; NULL: nb_default_alloc */
    void *alloc_ud;           /**< passed to @p alloc */
} nb_data_opts;

/* ---------------------------------------------------------------- dataset */

/**
 * A data set of @p n samples copied from @p features (float* for NB_F32,
 * double* for NB_F64, n*n_features values) and @p labels (n values, each in
 * [0, n_classes)). Either array may be NULL for zeros. @p n may be 0.
 * Errors: NB_ERR_NULL (out), NB_ERR_ARG (negative sizes, n_features < 1,
 * a label out of range, sizes whose product overflows), NB_ERR_DTYPE,
 * NB_ERR_NOMEM.
 */
NB_API nb_status nb_dataset_from(const nb_data_opts *opts, int64_t n, int64_t n_features,
                                 const void *features, const int64_t *labels, nb_dataset **out);
/**
 * A regression data set of @p n samples: features copied from @p features
 * (n*n_features values) and @p n_targets float targets per sample copied
 * from @p targets (n*n_targets values), both float* for NB_F32 and double*
 * for NB_F64 (opts->dtype). Either array may be NULL for zeros. It has no
 * labels (nb_dataset_classes 0, nb_dataset_label -1).
 * Errors: NB_ERR_NULL (out), NB_ERR_ARG (n_targets < 1, negative sizes,
 * n_features < 1, a target that is NaN or infinite, opts->n_classes not 0,
 * sizes whose product overflows), NB_ERR_DTYPE, NB_ERR_NOMEM.
 */
NB_API nb_status nb_dataset_from_targets(const nb_data_opts *opts, int64_t n, int64_t n_features,
                                         const void *features, int64_t n_targets,
                                         const void *targets, nb_dataset **out);
/** Free the data set. NULL is accepted. */
NB_API void nb_dataset_free(nb_dataset *ds);

/** Number of samples (0 for NULL). */
NB_API int64_t nb_dataset_count(const nb_dataset *ds);
/** Values per sample (0 for NULL). */
NB_API int64_t nb_dataset_features(const nb_dataset *ds);
/** Number of classes: labels are in [0, n_classes) (0 for NULL and for a
 *  data set with targets). */
NB_API int64_t nb_dataset_classes(const nb_dataset *ds);
/** Float targets per sample, K (0 for NULL and for a labelled data set). */
NB_API int64_t nb_dataset_targets(const nb_dataset *ds);
NB_API nb_dtype nb_dataset_dtype(const nb_dataset *ds);
NB_API nb_label_type nb_dataset_label_type(const nb_dataset *ds);
/** Image shape: height and width (0 and 0 when the samples are not images),
 *  and channels = n_features / (height*width). Any pointer may be NULL. */
NB_API void nb_dataset_image_shape(const nb_dataset *ds, int64_t *channels, int64_t *height,
                                   int64_t *width);
/** Declare the samples to be images of @p height x @p width pixels
 *  (channels = n_features / (height*width), which must divide exactly).
 *  0, 0 makes them plain vectors again. NB_ERR_SHAPE when it does not fit. */
NB_API nb_status nb_dataset_set_image_shape(nb_dataset *ds, int64_t height, int64_t width);
/** All features, row-major [n, n_features] (float or double by dtype).
 *  Owned by the data set; do not free. NULL when n == 0. */
NB_API const void *nb_dataset_feature_data(const nb_dataset *ds);
/** All labels (int32_t or int64_t by label type). Owned; do not free.
 *  NULL for a data set with targets. */
NB_API const void *nb_dataset_label_data(const nb_dataset *ds);
/** All targets, row-major [n, n_targets] (float or double by dtype).
 *  Owned; do not free. NULL for a labelled data set or when n == 0. */
NB_API const void *nb_dataset_target_data(const nb_dataset *ds);
/** Feature @p j of sample @p i as a double; NAN when out of range. */
NB_API double nb_dataset_get(const nb_dataset *ds, int64_t i, int64_t j);
/** Label of sample @p i; -1 when out of range or the data set has targets. */
NB_API int64_t nb_dataset_label(const nb_dataset *ds, int64_t i);
/** Target @p k of sample @p i as a double; NAN when out of range (and for
 *  a labelled data set). */
NB_API double nb_dataset_target(const nb_dataset *ds, int64_t i, int64_t k);

/* ----------------------------------------------------------------- splits */

/** New data set holding samples [start, start+count) of @p ds (same dtype,
 *  label type, classes or targets, image shape, allocation hook). NB_ERR_ARG when the
 *  range is not inside the data set. */
NB_API nb_status nb_dataset_slice(const nb_dataset *ds, int64_t start, int64_t count,
                                  nb_dataset **out);
/** New data set holding samples idx[0..n) of @p ds in that order (repeats
 *  allowed). NB_ERR_ARG when an index is out of range. */
NB_API nb_status nb_dataset_subset(const nb_dataset *ds, const int64_t *idx, int64_t n,
                                   nb_dataset **out);
/**
 * Split into train (the first @p n_train samples), validation (the next
 * @p n_val) and test (the rest). With @p rng the samples are first put in a
 * random order drawn from it (Fisher-Yates); with NULL the order of @p ds is
 * kept, e.g. n_train = 1500, n_val = 0 on digits gives the first 1500 rows
 * and the last 297. Any of @p train, @p val, @p test may be NULL to skip
 * that part. On failure all three are left NULL.
 */
NB_API nb_status nb_dataset_split(const nb_dataset *ds, nb_rng *rng, int64_t n_train, int64_t n_val,
                                  nb_dataset **train, nb_dataset **val, nb_dataset **test);

/* ---------------------------------------------------------- normalisation */

/** x <- x / max for every feature (scale pixels to [0,1]: max = 255 for
 *  MNIST, 16 for digits). NB_ERR_ARG unless max is finite and > 0. */
NB_API nb_status nb_dataset_scale(nb_dataset *ds, double max);
/** Per-feature mean and population standard deviation over the samples of
 *  @p ds, written to @p mean and @p std (n_features doubles each, either
 *  may be NULL). NB_ERR_ARG on an empty data set. */
NB_API nb_status nb_dataset_mean_std(const nb_dataset *ds, double *mean, double *std);
/** x_j <- (x_j - mean_j) / std_j, with std_j < 1e-12 taken as 1 (constant
 *  features become 0). Use the training set's statistics for every split. */
NB_API nb_status nb_dataset_standardize(nb_dataset *ds, const double *mean, const double *std);

/* -------------------------------------------------------------------- CSV */

/** Whether the first CSV line is a header. */
typedef enum nb_csv_header {
    NB_CSV_HEADER_AUTO = 0,    /**< a header when a field of the first line is not a number */
    NB_CSV_HEADER_NONE = 1,    /**< the first line is data */
    NB_CSV_HEADER_PRESENT = 2, /**< the first line is a header, skipped */
} nb_csv_header;

/** CSV options; zero-initialised fields take the defaults in brackets. */
typedef struct nb_csv_opts {
    nb_data_opts data;    /**< dtype, label type, classes, allocation */
    char delimiter;       /**< field separator [','] */
    nb_csv_header header; /**< [NB_CSV_HEADER_AUTO] */
    int label_column;     /**< 0-based column of the label, negative from the end [0] */
    bool allow_nonfinite; /**< accept nan, inf in features [false: an error] */
    size_t max_field;     /**< longest field in bytes [256] */
    int64_t image_height; /**< declare images of this shape [0: none] */
    int64_t image_width;
    /** > 0: a regression table with this many float target columns and no
     *  label column (label_column and n_classes are not used; n_classes must
     *  be 0); every other column is a feature, in file order [0: labels] */
    int n_targets;
    /** the target columns' 0-based numbers, negative from the end, in the
     *  order of the targets (n_targets of them), or NULL */
    const int *target_columns;
    /** the target columns' names in the header row (exact, case-sensitive),
     *  or NULL; target k is the column named target_names[k] when that is
     *  not NULL, else column target_columns[k] */
    const char *const *target_names;
} nb_csv_opts;

/**
 * Load a CSV table from memory: one sample per line, every line with the
 * same number of fields, one of them (label_column) a non-negative integer
 * label, the others numbers (strtod syntax, surrounding spaces ignored,
 * fields may be double-quoted). With n_targets > 0 the table holds float
 * targets instead: those columns (by number or header name) are the
 * targets, finite numbers, and the others the features. Lines may end in LF
 * or CRLF; blank lines are skipped. Gzip-compressed input (magic 1f 8b) is
 * decompressed first.
 * Errors (with line and column; columns in messages count from 1): NB_ERR_PARSE
 * for an empty table, a ragged row, a field that is not a number (for a
 * target: "line 7, column 3: target \"abc\" is not a number"), a label that
 * is not an integer in range, NaN/Inf when not allowed (never allowed in a
 * target), a value outside the f32 range for f32, a field longer than
 * max_field, an unterminated quote, corrupt gzip; NB_ERR_ARG for bad
 * options, a target column out of range or given twice, a target name that
 * no header column has (the message lists the header's columns), a name
 * when the table has no header row, targets that leave no feature;
 * NB_ERR_NULL for a target with neither a name nor a column number;
 * NB_ERR_NOMEM.
 */
NB_API nb_status nb_dataset_load_csv_mem(const void *buf, size_t len, const nb_csv_opts *opts,
                                         nb_dataset **out, nb_error *err);
/** As nb_dataset_load_csv_mem, from the file at @p path (plain or .gz).
 *  NB_ERR_IO when it cannot be read; the message names the path. */
NB_API nb_status nb_dataset_load_csv(const char *path, const nb_csv_opts *opts, nb_dataset **out,
                                     nb_error *err);

/* -------------------------------------------------------------------- IDX */

/**
 * Load an IDX pair (the MNIST format): an images file with magic 00 00 08 03
 * (unsigned bytes, dims n x height x width; or 08 02, n x features) and a
 * labels file with magic 00 00 08 01 (n unsigned bytes). Each buffer may be
 * gzip-compressed (detected by its magic). Features are the raw pixel
 * values 0..255 (see nb_dataset_scale). Strict: the magic, the dimensions
 * (each >= 1, product bounded), the data size (exactly what the header
 * announces: missing or extra bytes are errors), equal counts in both
 * files, labels below n_classes (default: largest + 1), and for gzip the
 * stream's integrity (CRC, truncation). Errors name the file ("images" or
 * "labels") and the byte offset: NB_ERR_PARSE, NB_ERR_NOMEM.
 */
NB_API nb_status nb_dataset_load_idx_mem(const void *images, size_t images_len, const void *labels,
                                         size_t labels_len, const nb_data_opts *opts,
                                         nb_dataset **out, nb_error *err);
/** As nb_dataset_load_idx_mem, from two files (plain or .gz). NB_ERR_IO when
 *  a file cannot be read; the message names the path. */
NB_API nb_status nb_dataset_load_idx(const char *images_path, const char *labels_path,
                                     const nb_data_opts *opts, nb_dataset **out, nb_error *err);

/** Where Debian's dataset-fashion-mnist package installs its IDX files. */
#define NB_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/** Fashion-MNIST from @p dir (NULL: NB_FASHION_MNIST_DIR): the training set
 *  (train-images-idx3-ubyte[.gz], 60000 images) when @p train, else the test
 *  set (t10k-*, 10000 images); 28x28 pixels 0..255, 10 classes (n_classes
 *  0 in @p opts means 10). NB_ERR_IO when the files are not there. */
NB_API nb_status nb_dataset_fashion_mnist(const char *dir, bool train, const nb_data_opts *opts,
                                          nb_dataset **out, nb_error *err);

/* ----------------------------------------------------------------- digits */

/** The digits data set built into the library: 1797 images of 8x8 pixels
 *  with values 0..16, labels 0..9, in the row order of scikit-learn's
 *  digits.csv.gz (a copy of the test set of the UCI "Optical Recognition of
 *  Handwritten Digits" data, BSD-licensed; see docs/data.md). opts->n_classes
 *  must be 0 or 10. Errors: NB_ERR_ARG, NB_ERR_NOMEM. */
NB_API nb_status nb_dataset_digits(const nb_data_opts *opts, nb_dataset **out);

/* ------------------------------------------------------------ mini-batches */

/** One mini-batch, owned by its loader and valid until the loader's next
 *  call. @p features is the loader's own copy of the samples, so changing
 *  it (augmentation) never touches the data set. A batch of a labelled data
 *  set has @p labels (and n_targets 0, targets and y NULL); one of a data
 *  set with targets has @p targets and @p y (and labels NULL). */
typedef struct nb_batch {
    int64_t size;                    /**< B, samples in this batch */
    int64_t n_features;              /**< F */
    int64_t channels, height, width; /**< image shape (height = width = 0: not images) */
    nb_dtype dtype;                  /**< of features */
    void *features;                  /**< B*F values, row-major (float* or double*) */
    const int64_t *labels;           /**< B labels (NULL for a data set with targets) */
    const int64_t *indices;          /**< B row numbers in the data set */
    nb_tensor *x; /**< [B, F] tensor in the graph given to nb_loader_next, or NULL */
    int64_t n_targets;   /**< K, targets per sample (0: labels) */
    const void *targets; /**< B*K target values, row-major, of dtype (NULL: labels) */
    nb_tensor *y;        /**< [B, K] tensor of the targets in the graph given to nb_loader_next,
                              or NULL (labels, or no graph) */
    int64_t global_size; /**< samples of the global batch this one is a share of: B, or with
                              nb_loader_set_shard the whole batch the ranks share */
} nb_batch;

/** Iterates over a data set in mini-batches. Opaque. */
typedef struct nb_loader nb_loader;

/**
 * New loader over @p ds (which must outlive it) with batches of
 * @p batch_size samples, in a random order per epoch when @p shuffle, the
 * last short batch dropped when @p drop_last. All memory is allocated here
 * (through the data set's hook); nb_loader_next allocates nothing except
 * the batch tensor in the graph. Errors: NB_ERR_NULL, NB_ERR_ARG
 * (batch_size < 1), NB_ERR_NOMEM.
 */
NB_API nb_status nb_loader_new(const nb_dataset *ds, int64_t batch_size, bool shuffle,
                               bool drop_last, nb_loader **out);
/** Free the loader. NULL is accepted. */
NB_API void nb_loader_free(nb_loader *ld);
/** Start an epoch: rewind and, when shuffling, draw a new order from
 *  @p rng (a random permutation, Fisher-Yates). NB_ERR_NULL when shuffling
 *  without an rng. A new loader starts at an epoch in data set order. */
NB_API nb_status nb_loader_start(nb_loader *ld, nb_rng *rng);
/** Batches per epoch: ceil(n/B), or floor(n/B) with drop_last. */
NB_API int64_t nb_loader_batches(const nb_loader *ld);
/** The data set the loader reads (NULL for NULL). */
NB_API const nb_dataset *nb_loader_dataset(const nb_loader *ld);
/** The batch size the loader was made with (0 for NULL). */
NB_API int64_t nb_loader_batch_size(const nb_loader *ld);
/**
 * Data parallelism: the loader of rank @p rank of @p size processes gives
 * that rank's share of every global batch: of a batch of G samples (the
 * batch size, or the epoch's last short batch), the samples
 * [⌊G·rank/size⌋, ⌊G·(rank+1)/size⌋) of the epoch's order. With the same
 * data, batch size and shuffling rng state on every rank the shares are
 * disjoint and together exactly the batch one process would take; sizes
 * differ by at most 1 when size does not divide G, and a share is empty
 * (nb_batch.size 0, x and y NULL, nb_loader_next still true) when G <
 * size. nb_batch.global_size is G, so b.size / b.global_size weighs this
 * rank's mean-loss gradient (nb_dist_average_grads). Batches per epoch
 * (nb_loader_batches) count global batches, the same on every rank.
 * Augmentation applies to this rank's share only, drawing from its rng.
 * rank 0 of 1 (the default) is the whole batch.
 * Errors: NB_ERR_NULL, NB_ERR_ARG (size < 1, rank outside 0 .. size-1).
 */
NB_API nb_status nb_loader_set_shard(nb_loader *ld, int rank, int size);
/** The shard set with nb_loader_set_shard (0 of 1 for none or NULL); either
 *  pointer may be NULL. */
NB_API void nb_loader_shard(const nb_loader *ld, int *rank, int *size);
/**
 * Fill @p b with the next batch of the epoch and return true; false at the
 * end of the epoch. Augmentation set with nb_loader_set_augment is applied
 * to the batch copy. When @p g is not NULL the features are then copied
 * into a new [B, F] tensor of @p g (nb_tensor_from) at b->x, and for a data
 * set with targets the targets into a new [B, K] tensor at b->y; if that
 * fails b->x (or b->y) is NULL and the graph holds the error.
 */
NB_API bool nb_loader_next(nb_graph *g, nb_loader *ld, nb_batch *b);

/** Image augmentation of a batch; zero fields do nothing. Applied in this
 *  order: crop, shift, flip, noise. */
typedef struct nb_augment {
    double flip_prob; /**< flip each image left-right with this probability */
    int max_shift;    /**< shift each image by (dy, dx) uniform in [-s, s]^2 */
    int crop_pad;     /**< pad by p pixels on each side, crop back at a random place */
    double noise_std; /**< add N(0, std^2) to every feature */
    double fill;      /**< value of pixels moved in from outside by shift/crop */
} nb_augment;

/** Apply @p aug (copied; NULL turns augmentation off) to every batch the
 *  loader yields, drawing from @p rng (which must outlive the loader's use).
 *  NB_ERR_SHAPE when flip/shift/crop are asked for and the data set has no
 *  image shape; NB_ERR_ARG for negative or non-finite settings; NB_ERR_NULL
 *  for a NULL rng with augmentation on. */
NB_API nb_status nb_loader_set_augment(nb_loader *ld, const nb_augment *aug, nb_rng *rng);

/** Flip each image of @p b left-right (x <- W-1-x) with probability @p p
 *  (one draw per image; p >= 1 flips all without drawing). */
NB_API nb_status nb_batch_flip(nb_batch *b, nb_rng *rng, double p);
/** Move every image of @p b by @p dy rows and @p dx columns (down/right
 *  positive): out(y,x) = in(y-dy, x-dx), @p fill where that is outside. */
NB_API nb_status nb_batch_shift(nb_batch *b, int64_t dy, int64_t dx, double fill);
/** Shift each image by its own (dy, dx) drawn uniformly from [-s, s]^2. */
NB_API nb_status nb_batch_random_shift(nb_batch *b, nb_rng *rng, int s, double fill);
/** Random crop with padding: pad each image with @p pad pixels of @p fill
 *  on every side and cut an H x W window at a uniform random offset in
 *  [0, 2*pad]^2 (the same as a shift by pad - offset). */
NB_API nb_status nb_batch_random_crop(nb_batch *b, nb_rng *rng, int pad, double fill);
/** x <- x + std * N(0, 1) for every feature of @p b. */
NB_API nb_status nb_batch_noise(nb_batch *b, nb_rng *rng, double std);
/** Copy the batch features into a new [B, F] tensor of @p g, stored at b->x
 *  and returned (NULL with the error recorded in @p g on failure). */
NB_API nb_tensor *nb_batch_tensor(nb_graph *g, nb_batch *b);
/** Copy the batch targets into a new [B, K] tensor of @p g (the features'
 *  dtype), stored at b->y and returned; NULL with the error recorded in
 *  @p g on failure, or when the batch has labels (NB_ERR_ARG). */
NB_API nb_tensor *nb_batch_target_tensor(nb_graph *g, nb_batch *b);

#ifdef __cplusplus
}
#endif
#endif
