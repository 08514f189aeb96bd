/* EK-FAC factors: per-layer second moments of input activations and output
 * gradients, their eigendecomposition (LAPACKE dsyevd, double), and the
 * eigenvalue correction (George et al. 2018): Λ[o][i] = mean over examples
 * of ((Q_Sᵀ W'_n Q_A)[o][i])². */
#include "learn/influence/influence_internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per float ssyrk before the sum moves to double: bounds the float
 * accumulation error and makes the sums nearly independent of batching. */
#define MOMENT_ROW_BLOCK 4096
/* Default damping: this fraction of the mean corrected eigenvalue
 * (Grosse et al. 2023, and the Infusion seed code). */
#define DAMPING_FRACTION 0.1

ag_influence_config ag_influence_defaults(void) {
  ag_influence_config c;
  memset(&c, 0, sizeof c);
  c.labels = AG_INFLUENCE_SAMPLED;
  c.damping = AG_INFLUENCE_DAMPING_DEFAULT;
  c.batch_size = 64;
  c.limit = 0;
  c.seed = 1;
  c.progress = false;
  return c;
}

static void layer_free(infl_layer *l) {
  free(l->name);
  free(l->a_sum);
  free(l->a_col);
  free(l->s_sum);
  free(l->qa);
  free(l->qs);
  free(l->eig_a);
  free(l->eig_s);
  free(l->qa_f);
  free(l->qs_f);
  free(l->lambda_sum);
  free(l->lambda);
}

void ag_influence_factors_destroy(ag_influence_factors *f) {
  if (!f) return;
  for (int i = 0; i < f->count; i++) layer_free(&f->layers[i]);
  free(f->layers);
  free(f);
}

ag_status ag_influence_factors_create(const ag_influence_model *m, const ag_influence_config *cfg,
                                      ag_influence_factors **out) {
  *out = NULL;
  ag_status st = infl_check_model(m);
  if (st) return st;
  ag_influence_config defaults = ag_influence_defaults();
  if (!cfg) cfg = &defaults;
  if (cfg->labels != AG_INFLUENCE_SAMPLED && cfg->labels != AG_INFLUENCE_EXPECTED)
    return ag_error_set(AG_ERR_INVALID, "influence: unknown label mode %d", (int)cfg->labels);
  infl_candidate *c;
  int n;
  st = infl_candidates(m->params, &c, &n);
  if (st) return st;
  ag_influence_factors *f = calloc(1, sizeof *f);
  if (f) f->layers = calloc((size_t)(n ? n : 1), sizeof *f->layers);
  if (!f || !f->layers) {
    free(c);
    ag_influence_factors_destroy(f);
    return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  }
  f->labels = cfg->labels;
  f->damping_cfg = cfg->damping;
  f->batch_size = cfg->batch_size > 0 ? cfg->batch_size : 64;
  f->seed = cfg->seed;
  f->progress = cfg->progress;
  f->loss = m->loss;
  f->outputs = m->outputs;
  f->rows_per_example = m->rows_per_example;
  f->fingerprint = ag_influence_fingerprint(m->params);
  /* the named layers must all exist */
  for (int j = 0; cfg->layers && j < cfg->layer_count; j++) {
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = !strcmp(c[i].name, cfg->layers[j]);
    if (!found) {
      char list[1024];
      infl_candidate_list(m->params, list, sizeof list);
      st = ag_error_set(AG_ERR_NOT_FOUND,
                        "influence: the model has no linear or conv2d layer '%s' (its layers: %s)",
                        cfg->layers[j] ? cfg->layers[j] : "(null)", list);
      free(c);
      ag_influence_factors_destroy(f);
      return st;
    }
  }
  for (int i = 0; i < n; i++) {
    bool named = false;
    for (int j = 0; cfg->layers && j < cfg->layer_count; j++)
      named = named || !strcmp(c[i].name, cfg->layers[j]);
    if (cfg->layers && cfg->layer_count > 0 && !named) continue;
    infl_layer *l = &f->layers[f->count++];
    l->name = malloc(strlen(c[i].name) + 1);
    if (!l->name) {
      free(c);
      ag_influence_factors_destroy(f);
      return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    }
    strcpy(l->name, c[i].name);
    l->kind = c[i].kind;
    l->weight = c[i].weight;
    l->bias = c[i].bias;
    l->in = c[i].in;
    l->out = c[i].out;
    l->has_bias = c[i].bias != NULL;
    l->cols = l->in + l->has_bias;
    l->named = named;
  }
  free(c);
  if (f->count == 0) {
    ag_influence_factors_destroy(f);
    return ag_error_set(AG_ERR_INVALID, "influence: the model has no linear or conv2d layers");
  }
  *out = f;
  return AG_OK;
}

/* ---- pass 1: moments ----------------------------------------------------------------- */

typedef struct fit_ctx {
  ag_influence_factors *f;
  const ag_tensor **weights; /* f->count */
} fit_ctx;

static ag_status fit_ctx_init(fit_ctx *c, ag_influence_factors *f) {
  c->f = f;
  c->weights = malloc((size_t)f->count * sizeof *c->weights);
  if (!c->weights) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  for (int i = 0; i < f->count; i++) c->weights[i] = f->layers[i].weight;
  return AG_OK;
}

/* The layer of an event, after checking the event fits it; NULL for ops of
 * untracked weights. */
static ag_status event_layer(fit_ctx *c, const ag_layer_event *ev, infl_layer **out) {
  *out = NULL;
  int i = infl_find_weight(c->weights, c->f->count, ev->weight);
  if (i < 0) return AG_OK;
  infl_layer *l = &c->f->layers[i];
  if (ev->in_features != l->in || ev->out_features != l->out)
    return ag_error_set(AG_ERR_SHAPE,
                        "influence: layer '%s': an op used its weight as %lld -> %lld, expected "
                        "%lld -> %lld",
                        l->name, (long long)ev->in_features, (long long)ev->out_features,
                        (long long)l->in, (long long)l->out);
  if (ev->bias != l->bias)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: layer '%s': the op's bias is not the parameter '%s.bias'",
                        l->name, l->name);
  *out = l;
  return AG_OK;
}

/* sum (cols, cols) upper triangle += Xᵀ X over X (rows, cols), float ssyrk
 * per block of rows, then into double; col (cols), when not NULL, += the
 * column sums (Xᵀ 1, sgemv per block). */
static ag_status syrk_add(ag_tape *t, const float *X, int64_t rows, int64_t cols, double *sum,
                          double *col) {
  int64_t block = rows < MOMENT_ROW_BLOCK ? rows : MOMENT_ROW_BLOCK;
  ag_arena *arena = ag_tape_arena(t);
  float *tmp = ag_arena_alloc(arena, (size_t)(cols * cols) * sizeof(float), 64); // (cols, cols)
  float *ones = ag_arena_alloc(arena, (size_t)(block ? block : 1) * sizeof(float), 64);
  float *csum = ag_arena_alloc(arena, (size_t)cols * sizeof(float), 64);
  if (!tmp || !ones || !csum) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  for (int64_t r = 0; r < block; r++) ones[r] = 1.0f;
  for (int64_t r0 = 0; r0 < rows; r0 += MOMENT_ROW_BLOCK) {
    int64_t nr = rows - r0 < MOMENT_ROW_BLOCK ? rows - r0 : MOMENT_ROW_BLOCK;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)nr, 1.0f, X + r0 * cols,
                (int)cols, 0.0f, tmp, (int)cols);
#pragma omp parallel for schedule(dynamic, 16) if (cols * cols > 262144)
    for (int64_t i = 0; i < cols; i++)
      for (int64_t j = i; j < cols; j++) sum[i * cols + j] += tmp[i * cols + j];
    if (col) {
      /* csum (cols) = X_blockᵀ (cols, nr) @ 1 (nr) */
      cblas_sgemv(CblasRowMajor, CblasTrans, (int)nr, (int)cols, 1.0f, X + r0 * cols, (int)cols,
                  ones, 1, 0.0f, csum, 1);
      for (int64_t j = 0; j < cols; j++) col[j] += csum[j];
    }
  }
  return AG_OK;
}

static ag_status moments_event(void *user, const infl_batch *b, const ag_layer_event *ev) {
  fit_ctx *c = user;
  infl_layer *l;
  ag_status st = event_layer(c, ev, &l);
  if (st || !l) return st;
  if (!l->s_sum) {
    l->a_sum = calloc((size_t)(l->in * l->in), sizeof(double));
    l->a_col = calloc((size_t)l->in, sizeof(double));
    l->s_sum = calloc((size_t)(l->out * l->out), sizeof(double));
    if (!l->a_sum || !l->a_col || !l->s_sum)
      return ag_error_set(AG_ERR_NOMEM, "influence: out of memory for layer '%s'", l->name);
  }
  int64_t in = l->in, out = l->out;
  /* A does not depend on the labels: once per forward */
  if (b->pass == 0) {
    st = syrk_add(b->tape, ev->A, ev->rows, in, l->a_sum, l->a_col);
    if (st) return st;
    l->a_rows += ev->rows;
  }
  /* expected labels: S sums the passes (the expectation), over the rows once */
  st = syrk_add(b->tape, ev->G, ev->rows, out, l->s_sum, NULL);
  if (b->pass == 0) l->s_rows += ev->rows;
  return st;
}

static ag_status check_range(const ag_influence_data *d, int64_t first, int64_t count) {
  if (!d) return ag_error_set(AG_ERR_INVALID, "influence: no data");
  if (first < 0 || count < 0 || first + count > d->count)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: examples %lld..%lld outside the data set of %lld",
                        (long long)first, (long long)(first + count), (long long)d->count);
  return AG_OK;
}

/* Checks m is the model of the factors and points the layers at its weights. */
static ag_status check_same_model(ag_influence_factors *f, const ag_influence_model *m) {
  ag_status st = infl_check_model(m);
  if (st) return st;
  if (m->loss != f->loss || m->outputs != f->outputs)
    return ag_error_set(
        AG_ERR_INVALID,
        "influence: the factors are for a model with %lld outputs (%s loss), not "
        "%lld (%s)",
        (long long)f->outputs, f->loss == AG_INFLUENCE_SQUARED ? "squared" : "cross-entropy",
        (long long)m->outputs, m->loss == AG_INFLUENCE_SQUARED ? "squared" : "cross-entropy");
  for (int i = 0; i < f->count; i++) {
    infl_layer *l = &f->layers[i];
    st = infl_resolve(m->params, "factors", l->name, l->kind, l->in, l->out, l->has_bias,
                      &l->weight, &l->bias);
    if (st) return st;
  }
  return infl_check_fingerprint(m, "factors", f->fingerprint);
}

ag_status ag_influence_accumulate_moments(ag_influence_factors *f, const ag_influence_model *m,
                                          const ag_influence_data *d, int64_t first,
                                          int64_t count) {
  if (f->stage != INFL_STAGE_MOMENTS)
    return ag_error_set(AG_ERR_INVALID, "influence: moments are already finished");
  ag_status st = check_range(d, first, count);
  if (!st) st = check_same_model(f, m);
  if (st) return st;
  fit_ctx c;
  st = fit_ctx_init(&c, f);
  if (st) return st;
  ag_progress *progress =
      f->progress ? ag_progress_begin("influence moments", count, "examples") : NULL;
  infl_pass p = {m,
                 d,
                 first,
                 count,
                 f->batch_size,
                 f->labels == AG_INFLUENCE_EXPECTED ? INFL_SEED_EXPECTED : INFL_SEED_SAMPLED,
                 f->seed,
                 moments_event,
                 NULL,
                 &c,
                 progress,
                 0};
  st = infl_run(&p);
  ag_progress_end(progress);
  free(c.weights);
  if (!st) f->moment_examples += count;
  return st;
}

/* One eigenproblem of finish_moments: the symmetric n x n matrix a (upper
 * triangle filled) becomes its eigenvectors (columns), w its eigenvalues. */
typedef struct eigen_job {
  double *a, *w;
  int64_t n;
  int layer;
  lapack_int info;
} eigen_job;

static int compare_jobs(const void *x, const void *y) {
  int64_t a = ((const eigen_job *)x)->n, b = ((const eigen_job *)y)->n;
  return (a < b) - (a > b); /* largest first */
}

/* dsyevd (double) on every job, jobs spread over the threads: each solve
 * then runs single-threaded, which beats many small multithreaded BLAS
 * calls inside one solve (and keeps all threads busy across layers). */
static ag_status eigen_all(ag_influence_factors *f, eigen_job *jobs, int count) {
  qsort(jobs, (size_t)count, sizeof *jobs, compare_jobs);
#pragma omp parallel for schedule(dynamic, 1)
  for (int j = 0; j < count; j++)
    jobs[j].info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)jobs[j].n, jobs[j].a,
                                  (lapack_int)jobs[j].n, jobs[j].w);
  for (int j = 0; j < count; j++)
    if (jobs[j].info != 0)
      return ag_error_set(AG_ERR_INTERNAL, "influence: layer '%s': dsyevd failed (info %d)",
                          f->layers[jobs[j].layer].name, (int)jobs[j].info);
  return AG_OK;
}

ag_status ag_influence_finish_moments(ag_influence_factors *f) {
  if (f->stage != INFL_STAGE_MOMENTS)
    return ag_error_set(AG_ERR_INVALID, "influence: moments are already finished");
  int kept = 0;
  for (int i = 0; i < f->count; i++) {
    infl_layer *l = &f->layers[i];
    if (!l->s_sum || l->a_rows == 0) {
      if (l->named)
        return ag_error_set(AG_ERR_INVALID,
                            "influence: layer '%s': no linear or conv2d op used its weight "
                            "(no examples seen?)",
                            l->name);
      ag_debug("influence: layer '%s' is not used by a linear/conv op: not tracked", l->name);
      layer_free(l);
      continue;
    }
    f->layers[kept++] = *l;
  }
  f->count = kept;
  if (kept == 0) return ag_error_set(AG_ERR_INVALID, "influence: no tracked layer saw any example");
  for (int i = 0; i < f->count; i++) {
    infl_layer *l = &f->layers[i];
    int64_t in = l->in, cols = l->cols, out = l->out;
    l->qa = malloc((size_t)(cols * cols) * sizeof(double));
    l->qs = malloc((size_t)(out * out) * sizeof(double));
    l->eig_a = malloc((size_t)cols * sizeof(double));
    l->eig_s = malloc((size_t)out * sizeof(double));
    l->qa_f = malloc((size_t)(cols * cols) * sizeof(float));
    l->qs_f = malloc((size_t)(out * out) * sizeof(float));
    l->lambda_sum = calloc((size_t)(out * cols), sizeof(double));
    if (!l->qa || !l->qs || !l->eig_a || !l->eig_s || !l->qa_f || !l->qs_f || !l->lambda_sum)
      return ag_error_set(AG_ERR_NOMEM, "influence: out of memory for layer '%s'", l->name);
    /* A (cols, cols) = (1/rows) [Σ a aᵀ, Σ a; Σ aᵀ, rows] */
    double ra = 1.0 / (double)l->a_rows, rs = 1.0 / (double)l->s_rows;
    for (int64_t r = 0; r < in; r++)
      for (int64_t c = r; c < in; c++) l->qa[r * cols + c] = l->a_sum[r * in + c] * ra;
    if (l->has_bias) {
      for (int64_t r = 0; r < in; r++) l->qa[r * cols + in] = l->a_col[r] * ra;
      l->qa[in * cols + in] = 1.0;
    }
    for (int64_t r = 0; r < out; r++)
      for (int64_t c = r; c < out; c++) l->qs[r * out + c] = l->s_sum[r * out + c] * rs;
  }
  eigen_job *jobs = malloc((size_t)(2 * f->count) * sizeof *jobs);
  if (!jobs) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  for (int i = 0; i < f->count; i++) {
    infl_layer *l = &f->layers[i];
    jobs[2 * i] = (eigen_job){l->qa, l->eig_a, l->cols, i, 0};
    jobs[2 * i + 1] = (eigen_job){l->qs, l->eig_s, l->out, i, 0};
  }
  ag_status st = eigen_all(f, jobs, 2 * f->count);
  free(jobs);
  if (st) return st;
  for (int i = 0; i < f->count; i++) {
    infl_layer *l = &f->layers[i];
    int64_t cols = l->cols, out = l->out;
    for (int64_t j = 0; j < cols * cols; j++) l->qa_f[j] = (float)l->qa[j];
    for (int64_t j = 0; j < out * out; j++) l->qs_f[j] = (float)l->qs[j];
    free(l->a_sum);
    free(l->a_col);
    free(l->s_sum);
    l->a_sum = l->a_col = l->s_sum = NULL;
  }
  f->stage = INFL_STAGE_CORRECTION;
  return AG_OK;
}

/* ---- pass 2: eigenvalue correction ------------------------------------------------- */

/* buf_e (out, cols) += gt_eᵀ (out, rpe) @ at_e (rpe, cols) for every example. */
static void add_rotated(infl_layer *l, const float *gt, const float *at, int64_t n, int64_t rpe) {
  int64_t out = l->out, cols = l->cols;
#pragma omp parallel for schedule(static) if (n > 1 && rpe * out * cols > 16384)
  for (int64_t e = 0; e < n; e++)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)cols, (int)rpe, 1.0f,
                gt + e * rpe * out, (int)out, at + e * rpe * cols, (int)cols, 1.0f,
                l->buf + e * out * cols, (int)cols);
}

/* Turns a pending rotated event into the per-example buffer. */
static ag_status materialize(infl_layer *l, ag_arena *arena, int64_t n) {
  l->buf = ag_arena_calloc(arena, (size_t)(n * l->out * l->cols) * sizeof(float), 64);
  if (!l->buf) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  add_rotated(l, l->pend_gt, l->pend_at, n, l->pend_rpe);
  l->pending = false;
  return AG_OK;
}

static ag_status correction_event(void *user, const infl_batch *b, const ag_layer_event *ev) {
  fit_ctx *c = user;
  infl_layer *l;
  ag_status st = event_layer(c, ev, &l);
  if (st || !l) return st;
  int64_t n = b->n, rpe, in = l->in, out = l->out, cols = l->cols;
  st = infl_event_rows(ev, n, &rpe);
  if (st) return st;
  ag_arena *arena = ag_tape_arena(b->tape);
  bool first = !l->touched;
  if (first) {
    /* Rotating every row first costs rpe (in cols + out out + out cols) per
     * example; forming W'_n and rotating it, out cols (rpe + cols + out). */
    double rows_cost = (double)rpe * (double)(in * cols + out * out + out * cols);
    double grad_cost = (double)out * (double)cols * (double)(rpe + cols + out);
    l->buf_rotated = rows_cost < grad_cost;
    l->touched = true;
    l->pending = false;
    l->buf = NULL;
  }
  if (!l->buf_rotated) {
    if (first) {
      l->buf = ag_arena_calloc(arena, (size_t)(n * out * cols) * sizeof(float), 64);
      if (!l->buf) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    }
    infl_event_grads(ev, n, rpe, cols, l->has_bias, l->buf, out * cols);
    return AG_OK;
  }
  int64_t rows = ev->rows;
  float *at = ag_arena_alloc(arena, (size_t)(rows * cols) * sizeof(float), 64); // (rows, cols)
  float *gt = ag_arena_alloc(arena, (size_t)(rows * out) * sizeof(float), 64);  // (rows, out)
  if (!at || !gt) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  /* at = [A, 1] Q_A: A (rows, in) @ Q_A[:in] (in, cols), plus Q_A's bias row */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)in, 1.0f, ev->A,
              (int)in, l->qa_f, (int)cols, 0.0f, at, (int)cols);
  if (l->has_bias) {
    const float *qb = l->qa_f + in * cols;
#pragma omp parallel for schedule(static) if (rows * cols > 262144)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < cols; j++) at[r * cols + j] += qb[j];
  }
  /* gt = G (rows, out) @ Q_S (out, out) */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)out, (int)out, 1.0f, ev->G,
              (int)out, l->qs_f, (int)out, 0.0f, gt, (int)out);
  if (first) { /* the layer's only event, usually: kept for the fast path */
    l->pending = true;
    l->pend_gt = gt;
    l->pend_at = at;
    l->pend_rpe = rpe;
    return AG_OK;
  }
  if (l->pending) { /* a weight used twice: per-example sums needed */
    st = materialize(l, arena, n);
    if (st) return st;
  }
  add_rotated(l, gt, at, n, rpe);
  return AG_OK;
}

/* lambda_sum (P) += Σ_e buf_e² over buf (n, P). */
static void add_squares(double *sum, const float *buf, int64_t n, int64_t P) {
  int64_t blocks = (P + 1023) / 1024;
#pragma omp parallel for schedule(static) if (n * P > 262144)
  for (int64_t bl = 0; bl < blocks; bl++) {
    int64_t j0 = bl * 1024, j1 = j0 + 1024 < P ? j0 + 1024 : P;
    for (int64_t e = 0; e < n; e++) {
      const float *row = buf + e * P;
      for (int64_t j = j0; j < j1; j++) sum[j] += (double)row[j] * row[j];
    }
  }
}

static ag_status correction_after_backward(void *user, const infl_batch *b) {
  fit_ctx *c = user;
  ag_arena *arena = ag_tape_arena(b->tape);
  int64_t n = b->n;
  for (int i = 0; i < c->f->count; i++) {
    infl_layer *l = &c->f->layers[i];
    if (!l->touched) continue;
    l->touched = false;
    int64_t out = l->out, cols = l->cols, P = out * cols;
    if (l->pending && l->pend_rpe == 1) {
      /* one row per example: (Q_Sᵀ W'_e Q_A)[o][i] = gt[e][o] at[e][i], so
       * Σ_e of its square is (gt∘gt)ᵀ (at∘at): one sgemm, no buffer */
      float *gt = (float *)l->pend_gt, *at = (float *)l->pend_at;
      float *tmp = ag_arena_alloc(arena, (size_t)P * sizeof(float), 64); // (out, cols)
      if (!tmp) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      for (int64_t j = 0; j < n * out; j++) gt[j] *= gt[j];
      for (int64_t j = 0; j < n * cols; j++) at[j] *= at[j];
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)cols, (int)n, 1.0f, gt,
                  (int)out, at, (int)cols, 0.0f, tmp, (int)cols);
      for (int64_t j = 0; j < P; j++) l->lambda_sum[j] += tmp[j];
      l->pending = false;
      continue;
    }
    if (l->pending) {
      ag_status st = materialize(l, arena, n);
      if (st) return st;
    }
    if (!l->buf_rotated) {
      float *tmp = ag_arena_alloc(arena, (size_t)(n * P) * sizeof(float), 64);
      if (!tmp) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      /* tmp (n out, cols) = W' (n out, cols) @ Q_A (cols, cols) */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(n * out), (int)cols, (int)cols,
                  1.0f, l->buf, (int)cols, l->qa_f, (int)cols, 0.0f, tmp, (int)cols);
#pragma omp parallel for schedule(static) if (n > 1)
      for (int64_t e = 0; e < n; e++) /* buf_e (out, cols) = Q_Sᵀ (out, out) @ tmp_e (out, cols) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)cols, (int)out, 1.0f,
                    l->qs_f, (int)out, tmp + e * P, (int)cols, 0.0f, l->buf + e * P, (int)cols);
    }
    add_squares(l->lambda_sum, l->buf, n, P);
    l->buf = NULL;
  }
  return AG_OK;
}

ag_status ag_influence_accumulate_correction(ag_influence_factors *f, const ag_influence_model *m,
                                             const ag_influence_data *d, int64_t first,
                                             int64_t count) {
  if (f->stage != INFL_STAGE_CORRECTION)
    return ag_error_set(AG_ERR_INVALID, f->stage == INFL_STAGE_MOMENTS
                                            ? "influence: finish the moments before the correction"
                                            : "influence: the correction is already finished");
  ag_status st = check_range(d, first, count);
  if (!st) st = check_same_model(f, m);
  if (st) return st;
  fit_ctx c;
  st = fit_ctx_init(&c, f);
  if (st) return st;
  for (int i = 0; i < f->count; i++) f->layers[i].touched = false;
  ag_progress *progress =
      f->progress ? ag_progress_begin("influence correction", count, "examples") : NULL;
  infl_pass p = {m,
                 d,
                 first,
                 count,
                 f->batch_size,
                 f->labels == AG_INFLUENCE_EXPECTED ? INFL_SEED_EXPECTED : INFL_SEED_SAMPLED,
                 f->seed,
                 correction_event,
                 correction_after_backward,
                 &c,
                 progress,
                 0};
  st = infl_run(&p);
  ag_progress_end(progress);
  for (int i = 0; i < f->count; i++) {
    f->layers[i].touched = f->layers[i].pending = false;
    f->layers[i].buf = NULL;
  }
  free(c.weights);
  if (!st) f->correction_examples += count;
  return st;
}

ag_status ag_influence_finish_correction(ag_influence_factors *f) {
  if (f->stage != INFL_STAGE_CORRECTION)
    return ag_error_set(AG_ERR_INVALID, f->stage == INFL_STAGE_MOMENTS
                                            ? "influence: finish the moments before the correction"
                                            : "influence: the correction is already finished");
  if (f->correction_examples == 0)
    return ag_error_set(AG_ERR_INVALID, "influence: the correction saw no examples");
  for (int i = 0; i < f->count; i++) {
    infl_layer *l = &f->layers[i];
    int64_t P = l->out * l->cols;
    l->lambda = malloc((size_t)P * sizeof(double));
    if (!l->lambda) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    double total = 0.0;
    for (int64_t j = 0; j < P; j++) {
      l->lambda[j] = l->lambda_sum[j] / (double)f->correction_examples;
      total += l->lambda[j];
    }
    l->mean_eig = total / (double)P;
    l->damping = f->damping_cfg >= 0 ? f->damping_cfg : DAMPING_FRACTION * l->mean_eig;
    free(l->lambda_sum);
    l->lambda_sum = NULL;
  }
  f->stage = INFL_STAGE_DONE;
  return AG_OK;
}

ag_status ag_influence_fit(const ag_influence_model *m, const ag_influence_data *d,
                           const ag_influence_config *cfg, ag_influence_factors **out) {
  *out = NULL;
  ag_influence_config defaults = ag_influence_defaults();
  if (!cfg) cfg = &defaults;
  if (!d) return ag_error_set(AG_ERR_INVALID, "influence: no data");
  int64_t count = cfg->limit > 0 && cfg->limit < d->count ? cfg->limit : d->count;
  if (count <= 0) return ag_error_set(AG_ERR_INVALID, "influence: no examples to fit on");
  ag_influence_factors *f;
  ag_status st = ag_influence_factors_create(m, cfg, &f);
  if (st) return st;
  st = ag_influence_accumulate_moments(f, m, d, 0, count);
  if (!st) st = ag_influence_finish_moments(f);
  if (!st) st = ag_influence_accumulate_correction(f, m, d, 0, count);
  if (!st) st = ag_influence_finish_correction(f);
  if (st) {
    ag_influence_factors_destroy(f);
    return st;
  }
  *out = f;
  return AG_OK;
}

/* ---- inspection ------------------------------------------------------------------- */

int ag_influence_layer_count(const ag_influence_factors *f) { return f ? f->count : 0; }

ag_status ag_influence_layer(const ag_influence_factors *f, int layer,
                             ag_influence_layer_info *out) {
  if (!f || layer < 0 || layer >= f->count)
    return ag_error_set(AG_ERR_INVALID, "influence: no layer %d (the factors have %d)", layer,
                        f ? f->count : 0);
  const infl_layer *l = &f->layers[layer];
  out->name = l->name;
  out->kind = l->kind;
  out->in_features = l->in;
  out->out_features = l->out;
  out->has_bias = l->has_bias;
  out->damping = l->damping;
  out->mean_eigenvalue = l->mean_eig;
  out->weight = l->weight;
  return AG_OK;
}

ag_status ag_influence_layer_curvature(const ag_influence_factors *f, int layer, double *out) {
  if (!f || layer < 0 || layer >= f->count)
    return ag_error_set(AG_ERR_INVALID, "influence: no layer %d (the factors have %d)", layer,
                        f ? f->count : 0);
  if (f->stage != INFL_STAGE_DONE)
    return ag_error_set(AG_ERR_INVALID, "influence: the factors are not finished");
  const infl_layer *l = &f->layers[layer];
  int64_t out_n = l->out, cols = l->cols, P = out_n * cols;
  /* M = Q_S ⊗ Q_A (P, P); curvature = M diag(Λ) Mᵀ */
  double *M = malloc((size_t)(P * P) * sizeof(double));
  double *MD = malloc((size_t)(P * P) * sizeof(double));
  if (!M || !MD) {
    free(M);
    free(MD);
    return ag_error_set(AG_ERR_NOMEM, "influence: out of memory (curvature of %lld x %lld)",
                        (long long)P, (long long)P);
  }
  for (int64_t o1 = 0; o1 < out_n; o1++)
    for (int64_t i1 = 0; i1 < cols; i1++)
      for (int64_t o = 0; o < out_n; o++)
        for (int64_t i = 0; i < cols; i++) {
          double v = l->qs[o1 * out_n + o] * l->qa[i1 * cols + i];
          M[(o1 * cols + i1) * P + o * cols + i] = v;
          MD[(o1 * cols + i1) * P + o * cols + i] = v * l->lambda[o * cols + i];
        }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)P, (int)P, (int)P, 1.0, MD, (int)P, M,
              (int)P, 0.0, out, (int)P);
  free(M);
  free(MD);
  return AG_OK;
}
