/* agora infusion: crafting training data that induces a target behaviour
 * (Rosser et al. 2026, "Infusion"; src/methods/infusion).
 *
 * The target is f(θ) = log p(target class | probe image), a test image the
 * model should come to see as the target class. Influence functions
 * (agora/influence.h) say how up-weighting a training example z would move
 * f: Δf(z) = −vᵀ∇θL(z) with v = (Ĝ + λI)⁻¹∇θf. Infusion runs this
 * backwards:
 *   1. score every training image and select the k with the largest Δf;
 *   2. perturb each selected image x (label y kept) by projected sign
 *      steps along −∇ₓ⟨∇θL(x, y), v̂⟩, v̂ = v/‖v‖, which raises its Δf, under
 *      an L∞ budget ε with pixels kept in [0, 1];
 *   3. retrain the last epoch E of the clean run from its epoch E−1
 *      checkpoint on the edited training set (same data order) and compare
 *      with the same epoch on the clean set: p(target | probe), its
 *      log-odds, whether the target became the top-1 class, and the clean
 *      test accuracy (a subtle attack keeps it).
 * The mixed derivative ∇ₓ⟨∇θL, v̂⟩ is a central difference of ordinary input
 * gradients, [∇ₓL(θ + h v̂) − ∇ₓL(θ − h v̂)] / 2h: no double backward.
 *
 * Baselines under the same retraining protocol: random ±ε sign noise on the
 * selected images (does the direction matter?) and copies of the probe
 * labelled with the target class written over selected training images
 * (count and data order unchanged). Selection ablation: the k smallest Δf,
 * or k random images. Transfer: craft on one run, retrain another.
 *
 * Layers: the perturbation needs only a model (forward pass and
 * parameters); the protocol (ag_infusion_base and below) works on runs
 * written by ag_classify_train (agora/vision.h). docs/infusion.md has the
 * commands and file layout. */
#ifndef AGORA_INFUSION_H
#define AGORA_INFUSION_H

#include "agora/influence.h"
#include "agora/json.h"
#include "agora/vision.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the model the perturbation differentiates ---------------------------- */

/* A classifier as a forward pass over an input tensor that may require
 * grad (the influence engine's model picks examples by index instead). */
typedef struct ag_infusion_model {
  ag_params *params;
  /* x (N, C, H, W) -> logits (N, classes) recorded on t; NULL with the
   * tape's error on failure. Examples must not interact (no batch norm). */
  ag_tensor *(*forward)(void *user, ag_tape *t, ag_tensor *x);
  void *user;
} ag_infusion_model;

/* Fills out for a vision model (keeps a pointer to m). */
void ag_infusion_vision_model(const ag_vision_model *m, ag_infusion_model *out);

/* out (N, C, H, W) = ∇ₓ L(x_i, y_i) for each image, L the cross-entropy of
 * one example; shape = {N, C, H, W}. Parameters are read, not changed;
 * params->grad is left alone. */
ag_status ag_infusion_input_grad(const ag_infusion_model *m, const float *x, const int32_t *y,
                                 const int64_t shape[4], float *out);

/* out (N, C, H, W) = ∇ₓ⟨∇θL(x_i, y_i), v⟩ for each image, by the central
 * difference [∇ₓL(θ + h v) − ∇ₓL(θ − h v)] / (2h). v is laid out like
 * params->data (params->total floats). The parameters are shifted in place
 * for the call and restored bit for bit before it returns: nothing else may
 * use the model meanwhile. */
ag_status ag_infusion_mixed_grad(const ag_infusion_model *m, const float *v, float h,
                                 const float *x, const int32_t *y, const int64_t shape[4],
                                 float *out);

/* ---- perturbation ----------------------------------------------------------- */

typedef struct ag_infusion_perturb_config {
  int steps;          /* sign steps (50) */
  float step_size;    /* per step, in pixel units (0.001) */
  float epsilon;      /* L∞ budget around the original image (0.05) */
  float pixel_min;    /* valid pixel range, clamped after every step (0) */
  float pixel_max;    /* (1) */
  float fd_step;      /* h of the central difference, along the unit v (1e-3) */
  int64_t batch_size; /* images per forward pass (100) */
} ag_infusion_perturb_config;

/* The seed paper's settings: 50 steps of 0.001 within ε = 0.05 in [0, 1]. */
ag_infusion_perturb_config ag_infusion_perturb_defaults(void);

/* Projected sign-gradient descent of s(x) = ⟨∇θL(x, y), v⟩ on each image:
 *   x ← clamp(x − step_size · sign(∇ₓ s(x)), [x₀ − ε, x₀ + ε] ∩ [pixel_min, pixel_max])
 * `steps` times, x₀ the image on entry. Lowering s raises the influence
 * engine's Δf = −s·‖v‖ when v is the normalised preconditioned target
 * gradient. x (N, C, H, W) is updated in place; y keeps its labels. A
 * pixel of x₀ outside the valid range is first clamped into it. */
ag_status ag_infusion_perturb(const ag_infusion_model *m, const float *v,
                              const ag_infusion_perturb_config *c, const int32_t *y,
                              const int64_t shape[4], float *x);

/* The random baseline of the same budget: every pixel moves by +ε or −ε
 * (a fair coin from (seed, pixel index)), then is clamped to the valid
 * range. x holds shape[0] * shape[1] * shape[2] * shape[3] floats. */
void ag_infusion_noise(const ag_infusion_perturb_config *c, uint64_t seed, const int64_t shape[4],
                       float *x);

/* ---- selection and measurement ---------------------------------------------- */

typedef enum ag_infusion_selection {
  AG_INFUSION_SELECT_TOP = 0, /* the k largest Δf (Infusion) */
  AG_INFUSION_SELECT_BOTTOM,  /* the k smallest Δf (ablation) */
  AG_INFUSION_SELECT_RANDOM   /* k distinct examples drawn from seed (ablation) */
} ag_infusion_selection;

/* "top", "bottom", "random". */
const char *ag_infusion_selection_name(ag_infusion_selection s);
ag_status ag_infusion_selection_parse(const char *name, ag_infusion_selection *out);

/* out[0..k) = indices into scores[0..count), best first for TOP and BOTTOM
 * (ties broken by the lower index), in draw order for RANDOM (scores may be
 * NULL then). k must be in [1, count]. */
ag_status ag_infusion_select(const float *scores, int64_t count, int64_t k,
                             ag_infusion_selection how, uint64_t seed, int64_t *out);

/* What a model says about the probe and target. */
typedef struct ag_infusion_probe_stats {
  double p;        /* p(target | probe) */
  double log_odds; /* log p − log(1 − p), from the logits (finite even when p rounds to 1) */
  bool top1;       /* the target is the arg-max class (ties: the lower class wins) */
  int predicted;   /* the arg-max class */
} ag_infusion_probe_stats;

/* The model on image `index` of d (the test set). */
ag_status ag_infusion_probe(const ag_vision_model *m, const ag_image_dataset *d, int64_t index,
                            int target, ag_infusion_probe_stats *out);

/* ---- the protocol: clean runs, edits, retraining ------------------------------ */

typedef enum ag_infusion_method {
  AG_INFUSION_METHOD_INFUSION = 0, /* perturb the selected images along the mixed gradient */
  AG_INFUSION_METHOD_NOISE,        /* ±ε random sign noise on the selected images */
  AG_INFUSION_METHOD_PROBE_COPIES  /* the probe, labelled target, over the first `copies`
                                      selected images */
} ag_infusion_method;

/* "infusion", "noise", "probe-copies". */
const char *ag_infusion_method_name(ag_infusion_method m);
ag_status ag_infusion_method_parse(const char *name, ag_infusion_method *out);

typedef struct ag_infusion_config {
  ag_infusion_method method;
  ag_infusion_selection select;
  int64_t k;      /* images selected (100) */
  int64_t copies; /* probe-copies: how many selected images become the probe (1) */
  ag_infusion_perturb_config perturb;
  /* EK-FAC damping λ. The seed's code uses 1e-8, "effectively zero" (the
   * default); AG_INFLUENCE_DAMPING_DEFAULT: 0.1 × the mean eigenvalue. */
  double damping;
  int64_t fit_limit;   /* fit factors on the first N training examples; 0: all the run used */
  int64_t fit_batch;   /* examples per pass when fitting and scoring (64) */
  int64_t score_chunk; /* examples per resumable scoring chunk (5000) */
  uint64_t seed;       /* random selection, noise and label draws (1) */
  bool progress;       /* progress display on stderr */
} ag_infusion_config;

ag_infusion_config ag_infusion_defaults(void);

#define AG_INFUSION_PATH_MAX 4096

/* A clean training run written by ag_classify_train, opened at its last
 * complete epoch E (E ≥ 2: the protocol retrains epoch E from E − 1). */
typedef struct ag_infusion_base {
  char dir[AG_INFUSION_PATH_MAX];
  int epoch;                   /* E */
  ag_classify_checkpoint info; /* epoch E's state.json */
  ag_vision_model *model;      /* the weights after epoch E: crafting differentiates these */
  ag_image_dataset *train;     /* borrowed: the full training set the run was trained on */
  const ag_image_dataset *test;
  int64_t examples; /* training examples the run used: min(limit, train->count) */
} ag_infusion_base;

/* Opens run_dir (its last complete epoch E and E − 1 must be there) with the
 * data sets it was trained on: train and test must have the run's image
 * shape and class count (checked; a mismatch names both shapes). train is
 * borrowed, and ag_infusion_retrain edits it for the length of a call. */
ag_status ag_infusion_base_open(const char *run_dir, ag_image_dataset *train,
                                const ag_image_dataset *test, ag_infusion_base **out);
void ag_infusion_base_close(ag_infusion_base *b);

/* EK-FAC factors of the base model: loaded from path when the file exists
 * (refused when fitted for other weights or with another damping), else
 * fitted on the run's training examples and saved there. path NULL:
 * RUN/infusion/factors-eEEE-dDAMPING[-lLIMIT].safetensors. */
ag_status ag_infusion_factors(const ag_infusion_base *b, const char *path,
                              const ag_infusion_config *cfg, ag_influence_factors **out);

/* A probe × target pair: probe indexes the test set, target is a class. */
typedef struct ag_infusion_target {
  int64_t probe;
  int target;
} ag_infusion_target;

/* Checks every pair (probe in the test set, target a class of the model). */
ag_status ag_infusion_targets_check(const ag_infusion_base *b, const ag_infusion_target *targets,
                                    int64_t count);

/* Preconditioned gradients v_q = (Ĝ + λI)⁻¹∇θ log p(target_q | probe_q),
 * one query per pair. */
ag_status ag_infusion_queries(const ag_infusion_base *b, const ag_influence_factors *f,
                              const ag_infusion_target *targets, int64_t count,
                              ag_influence_queries **out);

/* Δf of every training example the run used, for every query:
 * *scores (malloc'd) is (queries, b->examples). Computed in resumable
 * chunks under dir (ag_influence_score_dir). */
ag_status ag_infusion_scores(const ag_infusion_base *b, const ag_influence_queries *q,
                             const char *dir, const ag_infusion_config *cfg, float **scores);

/* Training examples to overwrite. */
typedef struct ag_infusion_edit {
  int64_t count;
  int64_t *index;   /* (count) training indices */
  float *images;    /* (count, C, H, W) new pixels */
  int32_t *labels;  /* (count) new labels */
  double linf_max;  /* max |new − old| over all pixels */
  double linf_mean; /* mean over images of each image's max |new − old| */
  /* Σ over edited examples of the predicted Δf per unit weight, before and
   * after the edit (infusion only; 0 otherwise). */
  double predicted_before, predicted_after;
} ag_infusion_edit;

void ag_infusion_edit_free(ag_infusion_edit *e);

/* Builds the edit for one pair with cfg's method and selection. scores: the
 * pair's row of Δf (b->examples floats); may be NULL for a random selection
 * of noise or probe copies. q and query: the pair's preconditioned
 * gradient, needed by the infusion method only (else NULL, 0). */
ag_status ag_infusion_craft(const ag_infusion_base *b, const ag_influence_queries *q, int64_t query,
                            const float *scores, ag_infusion_target target,
                            const ag_infusion_config *cfg, ag_infusion_edit *out);

/* Trains epoch E of b from its epoch E − 1 checkpoint, with the run's
 * config and data order, on its training set with `edit` applied (NULL: the
 * clean set), writing the checkpoint into work_dir; the training set is
 * restored before returning. With reuse, a complete epoch-E checkpoint
 * already in work_dir that was trained from this run's epoch E − 1 weights
 * (a marker file records their fingerprint) is loaded instead (the clean
 * retrain shared by a sweep). *model (ag_vision_model_destroy) holds the
 * retrained weights, *test_acc their test accuracy. An edit index beyond the
 * examples the run trains on is an error. */
ag_status ag_infusion_retrain(const ag_infusion_base *b, const ag_infusion_edit *edit,
                              const char *work_dir, bool reuse, ag_vision_model **model,
                              double *test_acc);

/* One pair's outcome: "before" is the clean retrain, "after" the edited. */
typedef struct ag_infusion_result {
  ag_infusion_target pair;
  int probe_label;
  ag_infusion_method method;
  ag_infusion_selection select;
  int64_t k;      /* images selected */
  int64_t edited; /* training images changed */
  ag_infusion_probe_stats before, after;
  double delta_p, delta_log_odds;
  double clean_acc_before, clean_acc_after;
  double linf_max, linf_mean;
  double predicted_before, predicted_after; /* see ag_infusion_edit */
  double seconds;                           /* crafting and retraining */
} ag_infusion_result;

/* The result as a JSON object (caller json_decref's; NULL when out of memory):
 * probe, probe_label, target, method, select, k, edited, p_before, p_after,
 * delta_p, log_odds_before, log_odds_after, delta_log_odds, top1_before,
 * top1_after, clean_acc_before, clean_acc_after, linf_max, linf_mean,
 * predicted_before, predicted_after, seconds. */
json_t *ag_infusion_result_json(const ag_infusion_result *r);

/* `agora infusion run`: one pair, end to end. */
typedef struct ag_infusion_plan {
  ag_infusion_base *craft;   /* crafts the edit (its model, factors, scores) */
  ag_infusion_base *retrain; /* is retrained (NULL: craft); another run = transfer */
  const char *factors_path;  /* NULL: the default under craft's run folder */
  /* Folder for scores and retrained checkpoints; NULL: CRAFT/infusion.
   * The clean retrain lives in RETRAIN/infusion/clean-retrain (reused). */
  const char *work_dir;
} ag_infusion_plan;

ag_status ag_infusion_run_pair(const ag_infusion_plan *p, ag_infusion_target target,
                               const ag_infusion_config *cfg, ag_infusion_result *out);

/* ---- sweeps ------------------------------------------------------------------- */

/* A variant is a method with its selection and copy count, named
 * "infusion", "infusion-bottom", "infusion-random", "noise",
 * "noise-random", "probe-1", "probe-k" (k copies), "probe-N". */
typedef struct ag_infusion_variant {
  char name[32];
  ag_infusion_method method;
  ag_infusion_selection select;
  int64_t copies;
} ag_infusion_variant;

/* Parses a comma-separated list of variant names (k fills "probe-k"). */
ag_status ag_infusion_variants_parse(const char *list, int64_t k, ag_infusion_variant *out, int max,
                                     int *count);

/* count pairs from seed: probe i uniform over the test set (distinct),
 * target uniform over the classes other than the probe's label. */
ag_status ag_infusion_pairs(const ag_image_dataset *test, int64_t count, uint64_t seed,
                            ag_infusion_target *out);

/* Per variant over the pairs it ran. */
typedef struct ag_infusion_summary_row {
  char variant[32];
  int64_t runs;
  double delta_p_mean, delta_p_se; /* se: sample standard deviation / √runs */
  double delta_log_odds_mean, delta_log_odds_se;
  double positive_share;                    /* share of runs with Δp > 0 */
  double top1_before, top1_after;           /* share of runs with the target top-1 */
  double clean_acc_before, clean_acc_after; /* means */
} ag_infusion_summary_row;

typedef struct ag_infusion_sweep_config {
  int64_t pairs;      /* probe × target pairs (20) */
  int64_t first_pair; /* run pairs [first_pair, pairs) only, for splitting a sweep (0) */
  const char *out_dir;
  const ag_infusion_variant *variants;
  int variant_count;
} ag_infusion_sweep_config;

/* Runs every variant on every pair, appending one line per (pair, variant)
 * to OUT/results.jsonl; lines already there are skipped (resume). Shares
 * the craft run's factors, one scoring pass for all pairs (OUT/scores) and
 * the clean retrain. Then writes OUT/summary.json and OUT/summary.md (a
 * row per variant over every line in results.jsonl), OUT/results.csv,
 * OUT/plot.gp and, when gnuplot is on PATH, OUT/plot.svg (Δp per pair and
 * variant with mean ± standard error). rows (may be NULL) receives up to
 * max_rows summary rows, *row_count how many. */
ag_status ag_infusion_sweep(const ag_infusion_plan *p, const ag_infusion_sweep_config *s,
                            const ag_infusion_config *cfg, ag_infusion_summary_row *rows,
                            int max_rows, int *row_count);

/* Summary rows from a results.jsonl (also used by the sweep). */
ag_status ag_infusion_summarize(const char *results_path, ag_infusion_summary_row *rows,
                                int max_rows, int *row_count);

#ifdef __cplusplus
}
#endif
#endif
