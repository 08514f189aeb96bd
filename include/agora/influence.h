/* agora influence: influence functions with EK-FAC (src/learn/influence).
 *
 * The question: if a training example z were up-weighted by a small amount,
 * how would a measurement f(θ) on a query change? With H the curvature of the
 * training loss, the classical answer is
 *
 *     Δf(z) = −∇f(θ)ᵀ (H + λI)⁻¹ ∇L(z, θ)          (per unit of up-weighting)
 *
 * and agora reports this signed quantity: Δf > 0 means up-weighting z raises
 * f. H is the Gauss–Newton / Fisher matrix approximated by EK-FAC (George et
 * al. 2018; Grosse et al. 2023): per tracked layer (every linear and conv2d
 * op of the model, or a named subset) a Kronecker product of the input
 * activation second moment A and the output-gradient second moment S, whose
 * eigenvalues are replaced by the averaged squared per-example gradients in
 * the Kronecker eigenbasis. Layers are independent (block diagonal), so
 * Δf sums over layers.
 *
 * The engine knows nothing about images or tokens: a model is a forward
 * function over examples picked by index (ag_influence_model), data is a count
 * and labels. ag_influence_vision_model adapts a vision model and an image
 * data set; a transformer adapter plugs in the same way.
 *
 * Usage:
 *   ag_influence_fit(&model, &train, &cfg, &factors);          // two passes over train
 *   ag_influence_factors_save(factors, "factors.safetensors");
 *   ag_influence_precondition(factors, &model, &queries, &q);  // v_q = (Ĝ+λ)⁻¹ ∇f_q
 *   ag_influence_score(q, &model, &train, 0, n, 64, scores);   // Δf, (queries, n)
 * Long scoring runs use ag_influence_score_dir: chunked, resumable. */
#ifndef AGORA_INFLUENCE_H
#define AGORA_INFLUENCE_H

#include "agora/tensor.h"
#include "agora/vision.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- models and data ------------------------------------------------------ */

typedef enum ag_influence_loss {
  /* Rows of the forward output are logits; labels are class ids (a label < 0
   * is ignored). Per-example loss L = Σ_rows −log softmax(logits)[label]. */
  AG_INFLUENCE_CROSS_ENTROPY = 0,
  /* Rows are predictions; targets are values. L = Σ ½‖y − t‖². */
  AG_INFLUENCE_SQUARED = 1
} ag_influence_loss;

/* A set of examples the model's forward function can look up by index. */
typedef struct ag_influence_data {
  const void *data; /* handed to forward unchanged (an ag_image_dataset *, ...) */
  int64_t count;
  /* Cross-entropy: count * rows_per_example class ids. Squared: NULL. */
  const int32_t *labels;
  /* Squared: count * rows_per_example * outputs values. Cross-entropy: NULL. */
  const float *targets;
} ag_influence_data;

typedef struct ag_influence_model {
  ag_params *params; /* the weights: tracked layers are the linear/conv ops whose
                        weight lives here */
  /* Records the model on examples idx[0..n) of `data` on tape t and returns
   * the output, (n * rows_per_example, outputs), rows grouped by example.
   * NULL with the tape's error on failure. */
  ag_tensor *(*forward)(void *user, ag_tape *t, const void *data, const int64_t *idx, int64_t n);
  void *user;
  ag_influence_loss loss;
  int64_t rows_per_example; /* 1 for a classifier, T for a language model */
  int64_t outputs;          /* classes (cross-entropy) or output values (squared) */
} ag_influence_model;

/* Fills `out` for a vision model (its parameters and forward pass; images
 * taken from the ag_image_dataset handed as data) and `data` for a data set
 * with its true labels. Both keep pointers to m and d. */
void ag_influence_vision_model(const ag_vision_model *m, ag_influence_model *out);
void ag_influence_vision_data(const ag_image_dataset *d, ag_influence_data *out);

/* ---- fitting EK-FAC factors ------------------------------------------------- */

typedef enum ag_influence_labels {
  /* Output gradients with labels drawn from the model's own distribution
   * (cross-entropy: from softmax; squared: t ~ N(y, I)), one draw per
   * example from (seed, example index), so any batching gives the same
   * draws. What the established implementations do. */
  AG_INFLUENCE_SAMPLED = 0,
  /* The exact expectation over those labels: one backward pass per output
   * (cross-entropy: seeds √p_k (e_k − p); squared: e_k). Exact Fisher /
   * Gauss–Newton factors at `outputs` times the cost; used by tests. (With
   * rows_per_example > 1 pass k seeds output k on every row at once, so
   * the rows' labels are not independent: exact for one row per example.) */
  AG_INFLUENCE_EXPECTED = 1
} ag_influence_labels;

/* Damping: λ = damping when >= 0; a negative value (the default) means
 * 0.1 × the mean corrected eigenvalue, per layer. λ = 0 is allowed (Infusion):
 * eigenvalues + λ below 1e-30 are treated as 1e-30 rather than divided by. */
#define AG_INFLUENCE_DAMPING_DEFAULT (-1.0)

typedef struct ag_influence_config {
  ag_influence_labels labels;
  double damping;
  int64_t batch_size; /* examples per forward pass; results do not depend on it */
  int64_t limit;      /* fit on the first `limit` examples; 0: all */
  uint64_t seed;      /* label draws */
  /* Layers to track by name (a weight "block1.conv1.weight" is layer
   * "block1.conv1"); NULL / 0: every linear and conv2d layer (every 2-d or
   * 4-d "<name>.weight"; one no linear/conv2d op uses is dropped when the
   * moments are finished). An unknown name is an error listing the model's
   * layers. */
  const char *const *layers;
  int layer_count;
  bool progress; /* progress display on stderr (quiet when not a terminal) */
} ag_influence_config;

ag_influence_config ag_influence_defaults(void);

typedef struct ag_influence_factors ag_influence_factors;

/* Two passes over the data: (1) the per-layer second moments
 *   A = (1/rows) Σ a aᵀ   (a: input row, with a trailing 1 when the layer has
 *                          a bias; conv: im2col patches, every position)
 *   S = (1/rows) Σ g gᵀ   (g: output-gradient row)
 * summed in double over all rows of all examples, then eigendecomposed in
 * double (LAPACKE dsyevd): A = Q_A diag Q_Aᵀ, S = Q_S diag Q_Sᵀ; (2) the
 * eigenvalue correction Λ[o][i] = (1/N) Σ_n ((Q_Sᵀ W'_n Q_A)[o][i])² with
 * W'_n example n's weight gradient (bias as the last column). Both passes
 * use the same label draws. Uses every thread (ag_threads_get). */
ag_status ag_influence_fit(const ag_influence_model *m, const ag_influence_data *d,
                           const ag_influence_config *cfg, ag_influence_factors **out);
void ag_influence_factors_destroy(ag_influence_factors *f);

/* The same pieces, exposed for tests and for fitting over several data
 * sets: accumulate moments (any batching or chunking gives the same sums, up
 * to float rounding), finish them (eigendecomposition), accumulate the
 * correction, finish it (averages, damping). ag_influence_fit is these four. */
ag_status ag_influence_factors_create(const ag_influence_model *m, const ag_influence_config *cfg,
                                      ag_influence_factors **out);
ag_status ag_influence_accumulate_moments(ag_influence_factors *f, const ag_influence_model *m,
                                          const ag_influence_data *d, int64_t first, int64_t count);
ag_status ag_influence_finish_moments(ag_influence_factors *f);
ag_status ag_influence_accumulate_correction(ag_influence_factors *f, const ag_influence_model *m,
                                             const ag_influence_data *d, int64_t first,
                                             int64_t count);
ag_status ag_influence_finish_correction(ag_influence_factors *f);

/* Tracked layers, in the order the model's parameters were added. */
typedef struct ag_influence_layer_info {
  const char *name;        /* "block1.conv1" */
  ag_layer_kind kind;      /* linear or conv2d */
  int64_t in_features;     /* columns of A, without the bias column */
  int64_t out_features;    /* columns of S */
  bool has_bias;           /* A has in_features + 1 columns */
  double damping;          /* λ in use */
  double mean_eigenvalue;  /* mean corrected eigenvalue */
  const ag_tensor *weight; /* the model's weight tensor */
} ag_influence_layer_info;
int ag_influence_layer_count(const ag_influence_factors *f);
ag_status ag_influence_layer(const ag_influence_factors *f, int layer,
                             ag_influence_layer_info *out);

/* The EK-FAC curvature block of a layer as a dense matrix, for tests: size
 * P = out_features * (in_features + has_bias), index o * cols + i matching the
 * weight's layout (bias last in each row). out is P*P doubles; damping is not
 * added. */
ag_status ag_influence_layer_curvature(const ag_influence_factors *f, int layer, double *out);

/* Saves eigenvectors, corrected eigenvalues and dampings as safetensors, with
 * metadata naming each layer's shape and a fingerprint of the model's
 * parameters (written atomically). Loading checks every layer exists with
 * the same shape in m and the fingerprint matches m's parameters: factors
 * of another model or checkpoint are refused with a clear error. */
ag_status ag_influence_factors_save(const ag_influence_factors *f, const char *path);
ag_status ag_influence_factors_load(const char *path, const ag_influence_model *m,
                                    ag_influence_factors **out);
/* 64-bit fingerprint of a parameter store's names, shapes and values. */
uint64_t ag_influence_fingerprint(const ag_params *p);

/* ---- queries -------------------------------------------------------------- */

/* A query is an example of some data set with the labels that define the
 * measurement: f = Σ_rows log p(label | x) for cross-entropy (so a query
 * labelled with its true class measures minus its loss; labelled with a
 * target class, the log-probability of the target), f = −L for squared.
 * ag_influence_precondition turns each into v_q = (Ĝ + λI)⁻¹ ∇θ f_q,
 * per tracked layer. */
typedef struct ag_influence_queries ag_influence_queries;

ag_status ag_influence_precondition(const ag_influence_factors *f, const ag_influence_model *m,
                                    const ag_influence_data *queries, ag_influence_queries **out);
void ag_influence_queries_destroy(ag_influence_queries *q);
int64_t ag_influence_query_count(const ag_influence_queries *q);
/* v_q laid out like params->grad (params->total floats; zero outside tracked
 * layers). */
ag_status ag_influence_query_vector(const ag_influence_queries *q, int64_t query,
                                    const ag_params *params, float *out);
/* Same checks as factors (layer shapes, fingerprint). */
ag_status ag_influence_queries_save(const ag_influence_queries *q, const char *path);
ag_status ag_influence_queries_load(const char *path, const ag_influence_model *m,
                                    ag_influence_queries **out);

/* ---- scoring -------------------------------------------------------------- */

/* scores[q * count + j] = Δf_q(z) = −v_q · ∇θ L(z) for training example
 * z = first + j, with L at z's true labels (data->labels / targets).
 * Uses every thread. */
ag_status ag_influence_score(const ag_influence_queries *q, const ag_influence_model *m,
                             const ag_influence_data *train, int64_t first, int64_t count,
                             int64_t batch_size, float *scores);

/* The same over all of `train`, in chunks of `chunk` examples written to dir
 * (chunk-NNNNNN.f32, each atomic, with a manifest naming the queries'
 * fingerprint); chunks already there are not recomputed, so a killed run
 * resumes; a folder whose manifest describes other queries, another data
 * size or chunk size is refused. On success *scores (malloc'd, caller frees) holds
 * (queries, train->count) floats. Progress on stderr when `progress`. */
ag_status ag_influence_score_dir(const ag_influence_queries *q, const ag_influence_model *m,
                                 const ag_influence_data *train, const char *dir, int64_t chunk,
                                 int64_t batch_size, bool progress, float **scores);

#ifdef __cplusplus
}
#endif
#endif
