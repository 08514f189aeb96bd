/* Internal pieces shared by the influence engine's files: the factor and
 * query structs, layer discovery, and the batched forward/backward pass that
 * every stage (moments, correction, queries, scoring) runs with its own
 * layer-hook callback. */
#ifndef AG_INFLUENCE_INTERNAL_H
#define AG_INFLUENCE_INTERNAL_H

#include "agora/influence.h"

/* One tracked layer's factors. Matrices are row-major; the columns of the
 * eigenvector matrices are the eigenvectors. cols = in + has_bias. */
typedef struct infl_layer {
  char *name; /* "block1.conv1" */
  ag_layer_kind kind;
  const ag_tensor *weight, *bias; /* in the model the factors are used with */
  int64_t in, out, cols;
  bool has_bias;
  bool named; /* asked for by name (an unused named layer is an error) */
  /* pass 1: second moments summed in double (upper triangles), lazily
   * allocated at the layer's first event */
  double *a_sum; /* (in, in) */
  double *a_col; /* (in) column sums: the bias column's entries */
  double *s_sum; /* (out, out) */
  int64_t a_rows, s_rows;
  /* after finish_moments */
  double *qa, *qs;       /* (cols, cols), (out, out) */
  double *eig_a, *eig_s; /* (cols), (out) */
  float *qa_f, *qs_f;    /* float copies for sgemm */
  /* pass 2: squared rotated per-example gradients, summed */
  double *lambda_sum; /* (out, cols) */
  /* after finish_correction */
  double *lambda; /* (out, cols) mean corrected eigenvalues */
  double damping, mean_eig;
  /* scratch of one backward pass (tape arena) */
  float *buf;       /* (examples, out, cols) */
  bool buf_rotated; /* buf holds Q_Sᵀ W'_n Q_A already (else W'_n) */
  bool touched;     /* the layer had an event in this backward */
  /* the first rotated event's rows, kept unmultiplied until a second event
   * (a shared weight) or the end of the backward */
  bool pending;
  const float *pend_gt, *pend_at; /* (rows, out), (rows, cols) */
  int64_t pend_rpe;
} infl_layer;

typedef enum infl_stage {
  INFL_STAGE_MOMENTS = 0,    /* accumulating moments */
  INFL_STAGE_CORRECTION = 1, /* eigenbases ready, accumulating the correction */
  INFL_STAGE_DONE = 2        /* corrected eigenvalues and damping ready */
} infl_stage;

struct ag_influence_factors {
  int count;
  infl_layer *layers;
  ag_influence_labels labels;
  double damping_cfg; /* < 0: 0.1 x mean corrected eigenvalue */
  int64_t batch_size;
  uint64_t seed;
  bool progress;
  infl_stage stage;
  uint64_t fingerprint; /* of the parameters at creation (or in the file) */
  ag_influence_loss loss;
  int64_t outputs, rows_per_example;
  int64_t moment_examples, correction_examples;
};

/* A query layer: v for every query. */
typedef struct infl_qlayer {
  char *name;
  ag_layer_kind kind;
  int64_t in, out, cols;
  bool has_bias;
  float *v; /* (count, out, cols) */
} infl_qlayer;

struct ag_influence_queries {
  int64_t count;
  int layer_count;
  infl_qlayer *layers;
  uint64_t fingerprint; /* of the model's parameters */
  ag_influence_loss loss;
  int64_t outputs;
};

/* ---- layers of a model ------------------------------------------------------ */

/* The candidate layers of a parameter store: every "<name>.weight" of 2
 * (linear, (out, in)) or 4 (conv, (O, C, kh, kw)) dimensions, with
 * "<name>.bias" of shape (out) when present. */
typedef struct infl_candidate {
  char name[256];
  ag_layer_kind kind;
  const ag_tensor *weight, *bias;
  int64_t in, out;
} infl_candidate;
/* *out malloc'd (caller frees); *count may be 0. */
ag_status infl_candidates(const ag_params *p, infl_candidate **out, int *count);
/* "a, b, c" of the candidates' names into buf (truncated with "..."). */
void infl_candidate_list(const ag_params *p, char *buf, size_t size);
/* Finds layer `name` in p and checks it has the given shape; on mismatch a
 * clear error naming what differs. `what` names the other side ("factors",
 * "queries"). */
ag_status infl_resolve(const ag_params *p, const char *what, const char *name, ag_layer_kind kind,
                       int64_t in, int64_t out, bool has_bias, const ag_tensor **weight,
                       const ag_tensor **bias);
/* The index of the layer whose weight is w among `weights`, or -1. */
int infl_find_weight(const ag_tensor *const *weights, int count, const ag_tensor *w);
/* Checks a model struct is usable (forward set, outputs and rows > 0). */
ag_status infl_check_model(const ag_influence_model *m);
/* Checks `fingerprint` (of factors or queries) against m's parameters. */
ag_status infl_check_fingerprint(const ag_influence_model *m, const char *what,
                                 uint64_t fingerprint);

/* ---- the batched pass --------------------------------------------------------- */

/* Which gradient is seeded into the model's output rows. */
typedef enum infl_seed_kind {
  INFL_SEED_SAMPLED = 0,  /* loss at labels drawn from the model */
  INFL_SEED_EXPECTED = 1, /* pass k of `outputs`: the expected-label factor */
  INFL_SEED_QUERY = 2,    /* ∇ of f = Σ log p(label) (cross-entropy) or −L (squared) */
  INFL_SEED_LOSS = 3      /* ∇ of L at the true labels */
} infl_seed_kind;

typedef struct infl_batch {
  ag_tape *tape;      /* for scratch: ag_tape_alloc */
  const int64_t *idx; /* the examples, consecutive: idx[i] = idx[0] + i */
  int64_t n;
  int pass, passes; /* backward pass of this batch (expected labels: output k) */
} infl_batch;

typedef struct infl_pass {
  const ag_influence_model *m;
  const ag_influence_data *d;
  int64_t first, count, batch_size;
  infl_seed_kind seeds;
  uint64_t seed; /* label draws */
  /* Called for every linear/conv event of every backward pass. */
  ag_status (*on_event)(void *user, const infl_batch *b, const ag_layer_event *ev);
  /* Called after each backward pass (may be NULL). */
  ag_status (*after_backward)(void *user, const infl_batch *b);
  void *user;
  ag_progress *progress; /* updated with examples done (may be NULL) */
  int64_t progress_base;
} infl_pass;

/* Runs the model over examples [first, first + count) of d in batches:
 * forward, seeds, backward(s) with the layer hook. params->grad and the
 * parameters' requires_grad flags are left as they were. */
ag_status infl_run(const infl_pass *p);

/* Rows per example of an event of a batch of n examples (the op may see
 * examples flattened into rows). */
ag_status infl_event_rows(const ag_layer_event *ev, int64_t n, int64_t *rows_per_example);

/* W'_e (out, cols) += G_eᵀ [A_e, 1] for each example e of an event, into
 * dst + e * dst_stride (row stride cols). Threads over examples. */
void infl_event_grads(const ag_layer_event *ev, int64_t n, int64_t rpe, int64_t cols, bool has_bias,
                      float *dst, int64_t dst_stride);

/* FNV-1a over bytes, continuing from h. */
uint64_t infl_hash(uint64_t h, const void *data, size_t bytes);
#define INFL_HASH_START 1469598103934665603ull

#endif
