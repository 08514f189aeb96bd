/* Neural-network ops: softmax and log-softmax, cross-entropy, embedding,
 * layer / RMS / group normalisation, dropout. Each op's forward and backward
 * sit next to each other. Kernels assume contiguous inputs: the graph-level
 * functions (ag_*) validate arguments and make inputs contiguous. */
#include "tensor/internal.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Below this many elements an op runs on one thread: starting a parallel
 * region costs microseconds, more than such small work takes. */
#define PARALLEL_MIN_ELEMENTS 32768
/* Softmax over a non-last dim walks this many neighbouring columns at once,
 * so every read of a row is a contiguous run that vectorises. */
#define COLUMN_BLOCK 64
/* Running maxima in row_max: one or two vector registers' worth. */
#define MAX_LANES 16
/* Exponentials summed in float per block of this many, blocks in double. */
#define SUM_BLOCK 256

static int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }
static int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

/* exp(x) for x <= 88 without calls or branches, so loops over it vectorise
 * (glibc's vector expf is only used under -ffast-math). Cephes' expf:
 * x = n ln2 + r with |r| <= ln2/2, exp(r) by a polynomial, 2^n put straight
 * into the exponent bits; relative error about 2 ulp. Inputs below -87.3,
 * where 2^n would leave the normal range, give 0; NaN propagates. */
static inline float exp_approx(float x) {
  const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  const uint32_t round_magic_bits = 0x4B400000u;
  float xc = x < -87.3f ? -87.3f : x;
  float k = xc * 1.44269504f + round_magic; /* n + magic, n = round(x / ln2) */
  float n = k - round_magic;
  float r = xc - n * 0.693359375f - n * -2.12194440e-4f; /* ln2 split in two for accuracy */
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t kbits;
  memcpy(&kbits, &k, sizeof kbits);
  uint32_t scale_bits = (kbits - round_magic_bits + 127u) << 23; /* the float 2^n */
  float scale;
  memcpy(&scale, &scale_bits, sizeof scale);
  return x < -87.3f ? 0.0f : p * scale;
}

/* ---- softmax and log-softmax ------------------------------------------------- */

/* A contiguous tensor seen as (outer, D, inner) around dim. */
static void split_at_dim(const ag_tensor *x, int dim, int64_t *outer, int64_t *D, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < dim; d++) *outer *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) *inner *= x->shape[d];
  *D = x->shape[dim];
}

/* max of x (n) through MAX_LANES running maxima, a compare-and-select that
 * gcc and clang both vectorise (a max reduction needs -ffast-math). A NaN
 * is skipped here and comes back through exp(x - max). */
static float row_max(const float *x, int64_t n) {
  float lane[MAX_LANES], m = -INFINITY;
  for (int j = 0; j < MAX_LANES; j++) lane[j] = -INFINITY;
  int64_t i = 0;
  for (; i + MAX_LANES <= n; i += MAX_LANES)
    for (int j = 0; j < MAX_LANES; j++) lane[j] = x[i + j] > lane[j] ? x[i + j] : lane[j];
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  for (int j = 0; j < MAX_LANES; j++) m = lane[j] > m ? lane[j] : m;
  return m;
}

/* sum of exp(x - m) over x (n), also stored in y unless y is NULL. Float
 * sums over blocks of SUM_BLOCK are added in double, so a 50257-class row
 * keeps float accuracy whether or not the loop is vectorised. */
static double sum_exp_shifted(const float *x, float m, float *y, int64_t n) {
  double total = 0.0;
  for (int64_t b = 0; b < n; b += SUM_BLOCK) {
    int64_t end = min_i64(n, b + SUM_BLOCK);
    float s = 0.0f;
    if (y) {
#pragma omp simd reduction(+ : s)
      for (int64_t i = b; i < end; i++) {
        y[i] = exp_approx(x[i] - m);
        s += y[i];
      }
    } else {
#pragma omp simd reduction(+ : s)
      for (int64_t i = b; i < end; i++) s += exp_approx(x[i] - m);
    }
    total += s;
  }
  return total;
}

/* y (D) = softmax(x) or log-softmax(x), x (D) contiguous. The max is
 * subtracted first so exp never overflows. */
static void softmax_row(const float *x, float *y, int64_t D, bool log_output) {
  float m = row_max(x, D);
  if (log_output) {
    float lse = m + (float)log(sum_exp_shifted(x, m, NULL, D));
#pragma omp simd
    for (int64_t i = 0; i < D; i++) y[i] = x[i] - lse;
  } else {
    float inv = (float)(1.0 / sum_exp_shifted(x, m, y, D));
#pragma omp simd
    for (int64_t i = 0; i < D; i++) y[i] *= inv;
  }
}

/* The same over D rows of stride `inner` for w <= COLUMN_BLOCK adjacent
 * columns: x, y point at column 0 of the block. */
static void softmax_columns(const float *x, float *y, int64_t D, int64_t inner, int64_t w,
                            bool log_output) {
  float m[COLUMN_BLOCK], s[COLUMN_BLOCK];
  for (int64_t j = 0; j < w; j++) {
    m[j] = -INFINITY;
    s[j] = 0.0f;
  }
  for (int64_t d = 0; d < D; d++) {
    const float *xr = x + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; j++) m[j] = xr[j] > m[j] ? xr[j] : m[j];
  }
  for (int64_t d = 0; d < D; d++) {
    const float *xr = x + d * inner;
    float *yr = y + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; j++) {
      float e = exp_approx(xr[j] - m[j]);
      s[j] += e;
      if (!log_output) yr[j] = e;
    }
  }
  for (int64_t j = 0; j < w; j++) s[j] = log_output ? m[j] + logf(s[j]) : 1.0f / s[j];
  for (int64_t d = 0; d < D; d++) {
    const float *xr = x + d * inner;
    float *yr = y + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; j++) yr[j] = log_output ? xr[j] - s[j] : yr[j] * s[j];
  }
}

/* dx (D) += the gradient through y (D) = softmax / log-softmax, given dy:
 *   softmax:     dx = y * (dy - sum(dy * y))
 *   log-softmax: dx = dy - exp(y) * sum(dy) */
static void softmax_row_backward(const float *y, const float *dy, float *dx, int64_t D,
                                 bool log_output) {
  float s = 0.0f;
  if (log_output) {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; i++) s += dy[i];
#pragma omp simd
    for (int64_t i = 0; i < D; i++) dx[i] += dy[i] - exp_approx(y[i]) * s;
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; i++) s += dy[i] * y[i];
#pragma omp simd
    for (int64_t i = 0; i < D; i++) dx[i] += y[i] * (dy[i] - s);
  }
}

static void softmax_columns_backward(const float *y, const float *dy, float *dx, int64_t D,
                                     int64_t inner, int64_t w, bool log_output) {
  float s[COLUMN_BLOCK];
  for (int64_t j = 0; j < w; j++) s[j] = 0.0f;
  for (int64_t d = 0; d < D; d++) {
    const float *yr = y + d * inner, *gr = dy + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; j++) s[j] += log_output ? gr[j] : gr[j] * yr[j];
  }
  for (int64_t d = 0; d < D; d++) {
    const float *yr = y + d * inner, *gr = dy + d * inner;
    float *xr = dx + d * inner;
#pragma omp simd
    for (int64_t j = 0; j < w; j++)
      xr[j] += log_output ? gr[j] - exp_approx(yr[j]) * s[j] : yr[j] * (gr[j] - s[j]);
  }
}

/* Runs the row kernel (dim is last) or the column kernel over every
 * (outer, block of inner) task. */
static void softmax_apply(const ag_node *n, bool backward, bool log_output) {
  const ag_tensor *x = n->in[0], *y = n->out;
  int64_t outer, D, inner;
  split_at_dim(x, (int)n->iarg[0], &outer, &D, &inner);
  const float *xd = x->data, *yd = y->data, *gy = y->grad;
  float *out = backward ? x->grad : y->data;
  if (inner == 1) {
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t r = 0; r < outer; r++) {
      if (backward)
        softmax_row_backward(yd + r * D, gy + r * D, out + r * D, D, log_output);
      else
        softmax_row(xd + r * D, out + r * D, D, log_output);
    }
    return;
  }
  int64_t blocks = (inner + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t k = 0; k < outer * blocks; k++) {
    int64_t o = k / blocks, i0 = (k % blocks) * COLUMN_BLOCK;
    int64_t off = o * D * inner + i0, w = min_i64(COLUMN_BLOCK, inner - i0);
    if (backward)
      softmax_columns_backward(yd + off, gy + off, out + off, D, inner, w, log_output);
    else
      softmax_columns(xd + off, out + off, D, inner, w, log_output);
  }
}

static ag_status softmax_forward(ag_tape *t, ag_node *n) {
  softmax_apply(n, false, false);
  return AG_OK;
}

static ag_status log_softmax_forward(ag_tape *t, ag_node *n) {
  softmax_apply(n, false, true);
  return AG_OK;
}

/* Backward reads the op's own output (softmax or log-softmax values), which
 * the tape keeps until reset. */
static ag_status softmax_backward_any(ag_tape *t, ag_node *n, bool log_output) {
  if (!n->in[0]->requires_grad) return AG_OK;
  if (!ag_tape_grad(t, n->in[0])) return AG_ERR_NOMEM;
  softmax_apply(n, true, log_output);
  return AG_OK;
}

static ag_status softmax_backward(ag_tape *t, ag_node *n) {
  return softmax_backward_any(t, n, false);
}

static ag_status log_softmax_backward(ag_tape *t, ag_node *n) {
  return softmax_backward_any(t, n, true);
}

static ag_tensor *softmax_op_run(ag_tape *t, ag_tensor *x, int dim, ag_op_id op, const char *name) {
  if (!ag_tape_ok(t, x)) return NULL;
  int d = ag_tape_dim(t, name, x, dim);
  if (d < 0) return NULL;
  x = ag_contiguous(t, x);
  if (!x) return NULL;
  ag_op_call c = {.op = op, .in = {x}, .n_in = 1, .out_ndim = x->ndim, .iarg = {d}};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

ag_tensor *ag_softmax(ag_tape *t, ag_tensor *x, int dim) {
  return softmax_op_run(t, x, dim, AG_OP_SOFTMAX, "softmax");
}

ag_tensor *ag_log_softmax(ag_tape *t, ag_tensor *x, int dim) {
  return softmax_op_run(t, x, dim, AG_OP_LOG_SOFTMAX, "log_softmax");
}

/* ---- cross-entropy ------------------------------------------------------------- */

/* log(sum(exp(x))) of a row x (C), stable: the max comes out first. */
static float log_sum_exp(const float *x, int64_t C) {
  float m = row_max(x, C);
  return m + (float)log(sum_exp_shifted(x, m, NULL, C));
}

/* A row counts unless its target is ignore_index or its weight is 0 (a
 * masked row: skipping it also keeps NaN logits there out of the loss). */
static bool row_counts(const ag_node *n, int64_t i) {
  const int32_t *target = n->aux;
  const float *weight = n->aux2;
  return target[i] != (int32_t)n->iarg[0] && (!weight || weight[i] != 0.0f);
}

/* loss = sum_i w_i * (lse_i - x[i, target_i]) / denominator; saves lse per row. */
static ag_status cross_entropy_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0];
  int64_t N = x->shape[0], C = x->shape[1];
  const int32_t *target = n->aux;
  const float *weight = n->aux2;
  float *lse = ag_tape_alloc(t, (size_t)max_i64(2 * N, 1) * sizeof(float));
  if (!lse) return AG_ERR_NOMEM;
  float *row_loss = lse + N; /* summed in row order below: same result on any thread count */
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t i = 0; i < N; i++) {
    lse[i] = row_loss[i] = 0.0f;
    if (!row_counts(n, i)) continue;
    const float *row = x->data + i * C;
    lse[i] = log_sum_exp(row, C);
    row_loss[i] = (weight ? weight[i] : 1.0f) * (lse[i] - row[target[i]]);
  }
  double total = 0.0;
  for (int64_t i = 0; i < N; i++) total += row_loss[i];
  float denominator = n->farg[0];
  n->out->data[0] = denominator != 0.0f ? (float)(total / denominator) : 0.0f;
  n->saved = lse;
  return AG_OK;
}

/* dx[i] += dloss * w_i / denominator * (softmax(x[i]) - onehot(target_i)) */
static ag_status cross_entropy_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad || n->farg[0] == 0.0f) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  int64_t N = x->shape[0], C = x->shape[1];
  const int32_t *target = n->aux;
  const float *weight = n->aux2, *lse = n->saved;
  float g = n->out->grad[0] / n->farg[0];
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t i = 0; i < N; i++) {
    if (!row_counts(n, i)) continue;
    float scale = weight ? g * weight[i] : g, l = lse[i];
    const float *row = x->data + i * C;
    float *grow = gx + i * C;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) grow[c] += scale * exp_approx(row[c] - l);
    grow[target[i]] -= scale;
  }
  return AG_OK;
}

ag_tensor *ag_cross_entropy(ag_tape *t, ag_tensor *logits, const int32_t *targets,
                            const float *weights, int32_t ignore_index, bool sum_reduction) {
  if (!ag_tape_ok(t, logits)) return NULL;
  char s[96];
  if (logits->ndim != 2)
    return ag_tape_fail(t, AG_ERR_SHAPE, "cross_entropy: logits %s must be (N, C)",
                        ag_shape_string(logits, s, sizeof s));
  int64_t N = logits->shape[0], C = logits->shape[1];
  if (N > 0 && !targets) return ag_tape_fail(t, AG_ERR_INVALID, "cross_entropy: targets is NULL");
  double denominator = 0.0;
  for (int64_t i = 0; i < N; i++) {
    if (targets[i] == ignore_index) continue;
    if (targets[i] < 0 || targets[i] >= C)
      return ag_tape_fail(t, AG_ERR_INVALID,
                          "cross_entropy: target %d in row %lld is outside [0, %lld) and is not "
                          "ignore_index %d (logits %s)",
                          (int)targets[i], (long long)i, (long long)C, (int)ignore_index,
                          ag_shape_string(logits, s, sizeof s));
    denominator += weights ? weights[i] : 1.0;
  }
  if (sum_reduction) denominator = 1.0;
  /* The caller's buffers need not outlive this call; backward runs later. */
  size_t bytes = (size_t)max_i64(N, 1) * sizeof(int32_t);
  int32_t *target_copy = ag_tape_alloc(t, bytes);
  float *weight_copy = weights ? ag_tape_alloc(t, (size_t)max_i64(N, 1) * sizeof(float)) : NULL;
  if (!target_copy || (weights && !weight_copy)) return NULL;
  if (N > 0) memcpy(target_copy, targets, (size_t)N * sizeof(int32_t));
  if (weights && N > 0) memcpy(weight_copy, weights, (size_t)N * sizeof(float));
  logits = ag_contiguous(t, logits);
  if (!logits) return NULL;
  ag_op_call c = {.op = AG_OP_CROSS_ENTROPY,
                  .in = {logits},
                  .n_in = 1,
                  .out_ndim = 1,
                  .out_shape = {1},
                  .iarg = {ignore_index, sum_reduction},
                  .farg = {(float)denominator},
                  .aux = target_copy,
                  .aux2 = weight_copy};
  return ag_op_run(t, &c);
}

/* ---- embedding ----------------------------------------------------------------- */

static ag_status embedding_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *table = n->in[0];
  int64_t D = table->shape[1], count = n->out->numel / max_i64(D, 1);
  const int32_t *ids = n->aux;
  float *y = n->out->data;
#pragma omp parallel for if (n->out->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t i = 0; i < count; i++)
    memcpy(y + i * D, table->data + (int64_t)ids[i] * D, (size_t)D * sizeof(float));
  return AG_OK;
}

/* d table[id] += dy for every occurrence. Ids repeat, so threads split the
 * columns rather than the ids: no two threads touch the same float. */
static ag_status embedding_backward(ag_tape *t, ag_node *n) {
  ag_tensor *table = n->in[0];
  if (!table->requires_grad) return AG_OK;
  float *gt = ag_tape_grad(t, table);
  if (!gt) return AG_ERR_NOMEM;
  int64_t D = table->shape[1], count = n->out->numel / max_i64(D, 1);
  const int32_t *ids = n->aux;
  const float *gy = n->out->grad;
  int64_t blocks = (D + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for if (n->out->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t b = 0; b < blocks; b++) {
    int64_t d0 = b * COLUMN_BLOCK, d1 = min_i64(D, d0 + COLUMN_BLOCK);
    for (int64_t i = 0; i < count; i++) {
      float *dst = gt + (int64_t)ids[i] * D;
      const float *src = gy + i * D;
#pragma omp simd
      for (int64_t d = d0; d < d1; d++) dst[d] += src[d];
    }
  }
  return AG_OK;
}

ag_tensor *ag_embedding(ag_tape *t, ag_tensor *table, const int32_t *ids, int ids_ndim,
                        const int64_t *ids_shape) {
  if (!ag_tape_ok(t, table)) return NULL;
  char s[96];
  if (table->ndim != 2)
    return ag_tape_fail(t, AG_ERR_SHAPE, "embedding: table %s must be (V, D)",
                        ag_shape_string(table, s, sizeof s));
  if (ids_ndim < 0 || ids_ndim > AG_MAX_DIMS - 1)
    return ag_tape_fail(t, AG_ERR_INVALID, "embedding: ids have %d dims (at most %d)", ids_ndim,
                        AG_MAX_DIMS - 1);
  int64_t count = 1, V = table->shape[0];
  for (int d = 0; d < ids_ndim; d++) {
    if (ids_shape[d] < 0)
      return ag_tape_fail(t, AG_ERR_INVALID, "embedding: ids dim %d has negative size %lld", d,
                          (long long)ids_shape[d]);
    count *= ids_shape[d];
  }
  if (count > 0 && !ids) return ag_tape_fail(t, AG_ERR_INVALID, "embedding: ids is NULL");
  for (int64_t i = 0; i < count; i++)
    if (ids[i] < 0 || ids[i] >= V)
      return ag_tape_fail(t, AG_ERR_INVALID,
                          "embedding: id %d at position %lld is outside the table %s (ids in "
                          "[0, %lld))",
                          (int)ids[i], (long long)i, ag_shape_string(table, s, sizeof s),
                          (long long)V);
  int32_t *ids_copy = ag_tape_alloc(t, (size_t)max_i64(count, 1) * sizeof(int32_t));
  if (!ids_copy) return NULL;
  if (count > 0) memcpy(ids_copy, ids, (size_t)count * sizeof(int32_t));
  table = ag_contiguous(t, table);
  if (!table) return NULL;
  ag_op_call c = {
      .op = AG_OP_EMBEDDING, .in = {table}, .n_in = 1, .out_ndim = ids_ndim + 1, .aux = ids_copy};
  for (int d = 0; d < ids_ndim; d++) c.out_shape[d] = ids_shape[d];
  c.out_shape[ids_ndim] = table->shape[1];
  return ag_op_run(t, &c);
}

/* ---- layer norm and RMS norm (over the last dim) --------------------------------- */

/* Both normalise each row: xhat = (x - mean) * rstd, with mean = 0 for RMS
 * norm (iarg[0] = 0) and rstd = 1 / sqrt(mean((x - mean)^2) + eps); then
 * y = xhat * gamma + beta. saved holds (mean, rstd) per row. */

static ag_status norm_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
  bool centered = n->iarg[0] != 0;
  float eps = n->farg[0];
  int64_t D = x->shape[x->ndim - 1], rows = D ? x->numel / D : 0;
  float *stats = ag_tape_alloc(t, (size_t)max_i64(2 * rows, 1) * sizeof(float));
  if (!stats) return AG_ERR_NOMEM;
  const float *g = gamma ? gamma->data : NULL, *b = beta ? beta->data : NULL;
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x->data + r * D;
    float *yr = n->out->data + r * D;
    double sum = 0.0, sq = 0.0;
    if (centered) {
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < D; i++) sum += xr[i];
    }
    float mean = (float)(sum / (double)D);
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < D; i++) sq += (double)((xr[i] - mean) * (xr[i] - mean));
    float rstd = (float)(1.0 / sqrt(sq / (double)D + (double)eps));
    stats[2 * r] = mean;
    stats[2 * r + 1] = rstd;
#pragma omp simd
    for (int64_t i = 0; i < D; i++) {
      float h = (xr[i] - mean) * rstd;
      yr[i] = (g ? h * g[i] : h) + (b ? b[i] : 0.0f);
    }
  }
  n->saved = stats;
  return AG_OK;
}

/* dgamma (D) += sum over rows of dy * xhat, dbeta (D) += sum of dy. Threads
 * take rows and sum into their own partial buffers, added in thread order. */
static ag_status norm_affine_backward(ag_tape *t, const ag_node *n, float *dgamma, float *dbeta) {
  const ag_tensor *x = n->in[0];
  const float *stats = n->saved, *gy = n->out->grad;
  int64_t D = x->shape[x->ndim - 1], rows = D ? x->numel / D : 0;
  int threads = x->numel >= PARALLEL_MIN_ELEMENTS ? omp_get_max_threads() : 1;
  size_t bytes = (size_t)threads * 2 * (size_t)max_i64(D, 1) * sizeof(float);
  float *partial = ag_tape_alloc(t, bytes);
  if (!partial) return AG_ERR_NOMEM;
  memset(partial, 0, bytes);
#pragma omp parallel num_threads(threads)
  {
    float *pg = partial + (size_t)omp_get_thread_num() * 2 * (size_t)D, *pb = pg + D;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x->data + r * D, *gr = gy + r * D;
      float mean = stats[2 * r], rstd = stats[2 * r + 1];
#pragma omp simd
      for (int64_t i = 0; i < D; i++) {
        pg[i] += gr[i] * (xr[i] - mean) * rstd;
        pb[i] += gr[i];
      }
    }
  }
  for (int k = 0; k < threads; k++) {
    const float *pg = partial + (size_t)k * 2 * (size_t)D, *pb = pg + D;
    if (dgamma)
      for (int64_t i = 0; i < D; i++) dgamma[i] += pg[i];
    if (dbeta)
      for (int64_t i = 0; i < D; i++) dbeta[i] += pb[i];
  }
  return AG_OK;
}

/* With dh = dy * gamma: dx = rstd * (dh - mean(dh) - xhat * mean(dh * xhat));
 * RMS norm has no mean(dh) term (its mean is not subtracted). */
static ag_status norm_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
  bool centered = n->iarg[0] != 0;
  int64_t D = x->shape[x->ndim - 1], rows = D ? x->numel / D : 0;
  const float *stats = n->saved, *gy = n->out->grad, *g = gamma ? gamma->data : NULL;
  if (x->requires_grad) {
    float *gx = ag_tape_grad(t, x);
    if (!gx) return AG_ERR_NOMEM;
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float *xr = x->data + r * D, *gr = gy + r * D;
      float *dxr = gx + r * D;
      float mean = stats[2 * r], rstd = stats[2 * r + 1];
      double sum_dh = 0.0, sum_dh_xhat = 0.0;
#pragma omp simd reduction(+ : sum_dh, sum_dh_xhat)
      for (int64_t i = 0; i < D; i++) {
        float dh = g ? gr[i] * g[i] : gr[i];
        sum_dh += dh;
        sum_dh_xhat += (double)(dh * (xr[i] - mean) * rstd);
      }
      float a = centered ? (float)(sum_dh / (double)D) : 0.0f;
      float b = (float)(sum_dh_xhat / (double)D);
#pragma omp simd
      for (int64_t i = 0; i < D; i++) {
        float dh = g ? gr[i] * g[i] : gr[i];
        dxr[i] += rstd * (dh - a - (xr[i] - mean) * rstd * b);
      }
    }
  }
  bool want_gamma = gamma && gamma->requires_grad, want_beta = beta && beta->requires_grad;
  if (!want_gamma && !want_beta) return AG_OK;
  float *dgamma = want_gamma ? ag_tape_grad(t, gamma) : NULL;
  float *dbeta = want_beta ? ag_tape_grad(t, beta) : NULL;
  if ((want_gamma && !dgamma) || (want_beta && !dbeta)) return AG_ERR_NOMEM;
  return norm_affine_backward(t, n, dgamma, dbeta);
}

/* Checks that an affine parameter is (D) and makes it contiguous. */
static bool norm_param(ag_tape *t, const char *op, const char *what, ag_tensor **p,
                       const ag_tensor *x, int64_t D) {
  if (!*p) return true;
  char sp[96], sx[96];
  if ((*p)->ndim != 1 || (*p)->shape[0] != D) {
    ag_tape_fail(t, AG_ERR_SHAPE, "%s: %s %s does not fit input %s (needs (%lld))", op, what,
                 ag_shape_string(*p, sp, sizeof sp), ag_shape_string(x, sx, sizeof sx),
                 (long long)D);
    return false;
  }
  *p = ag_contiguous(t, *p);
  return *p != NULL;
}

static ag_tensor *norm_op_run(ag_tape *t, ag_op_id op, const char *name, ag_tensor *x,
                              ag_tensor *gamma, ag_tensor *beta, float eps) {
  if (!ag_tape_ok(t, x)) return NULL;
  char s[96];
  if (x->ndim < 1)
    return ag_tape_fail(t, AG_ERR_SHAPE, "%s: input %s has no last dim", name,
                        ag_shape_string(x, s, sizeof s));
  if (!(eps >= 0.0f)) return ag_tape_fail(t, AG_ERR_INVALID, "%s: eps %g < 0", name, (double)eps);
  int64_t D = x->shape[x->ndim - 1];
  if (!norm_param(t, name, "gamma", &gamma, x, D) || !norm_param(t, name, "beta", &beta, x, D))
    return NULL;
  x = ag_contiguous(t, x);
  if (!x) return NULL;
  ag_op_call c = {.op = op,
                  .in = {x, gamma, beta},
                  .n_in = 3,
                  .out_ndim = x->ndim,
                  .iarg = {op == AG_OP_LAYERNORM},
                  .farg = {eps}};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

ag_tensor *ag_layernorm(ag_tape *t, ag_tensor *x, ag_tensor *gamma, ag_tensor *beta, float eps) {
  return norm_op_run(t, AG_OP_LAYERNORM, "layernorm", x, gamma, beta, eps);
}

ag_tensor *ag_rmsnorm(ag_tape *t, ag_tensor *x, ag_tensor *gamma, float eps) {
  return norm_op_run(t, AG_OP_RMSNORM, "rmsnorm", x, gamma, NULL, eps);
}

/* ---- group norm ------------------------------------------------------------------- */

/* x (N, C, S...) seen as (N, G, C/G * S): each (example, group) is one
 * contiguous run normalised on its own; gamma/beta act per channel. saved
 * holds (mean, rstd) per (example, group). iarg[0] = G. */

static void groupnorm_dims(const ag_node *n, int64_t *N, int64_t *C, int64_t *G, int64_t *S) {
  const ag_tensor *x = n->in[0];
  *N = x->shape[0];
  *C = x->shape[1];
  *G = n->iarg[0];
  *S = *N && *C ? x->numel / (*N * *C) : 0;
}

static ag_status groupnorm_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
  int64_t N, C, G, S;
  groupnorm_dims(n, &N, &C, &G, &S);
  int64_t cpg = C / G, M = cpg * S;
  float eps = n->farg[0];
  float *stats = ag_tape_alloc(t, (size_t)max_i64(2 * N * G, 1) * sizeof(float));
  if (!stats) return AG_ERR_NOMEM;
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t k = 0; k < N * G; k++) {
    const float *xg = x->data + k * M;
    float *yg = n->out->data + k * M;
    double sum = 0.0, sq = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < M; i++) sum += xg[i];
    float mean = (float)(sum / (double)M);
#pragma omp simd reduction(+ : sq)
    for (int64_t i = 0; i < M; i++) sq += (double)((xg[i] - mean) * (xg[i] - mean));
    float rstd = (float)(1.0 / sqrt(sq / (double)M + (double)eps));
    stats[2 * k] = mean;
    stats[2 * k + 1] = rstd;
    int64_t c0 = (k % G) * cpg;
    for (int64_t c = 0; c < cpg; c++) {
      float gc = gamma ? gamma->data[c0 + c] : 1.0f, bc = beta ? beta->data[c0 + c] : 0.0f;
      const float *xc = xg + c * S;
      float *yc = yg + c * S;
#pragma omp simd
      for (int64_t s = 0; s < S; s++) yc[s] = (xc[s] - mean) * rstd * gc + bc;
    }
  }
  n->saved = stats;
  return AG_OK;
}

static ag_status groupnorm_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
  int64_t N, C, G, S;
  groupnorm_dims(n, &N, &C, &G, &S);
  int64_t cpg = C / G, M = cpg * S;
  const float *stats = n->saved, *gy = n->out->grad;
  if (x->requires_grad) {
    float *gx = ag_tape_grad(t, x);
    if (!gx) return AG_ERR_NOMEM;
      /* dx = rstd * (dh - mean(dh) - xhat * mean(dh * xhat)) over the group,
       * with dh = dy * gamma[c]. */
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
    for (int64_t k = 0; k < N * G; k++) {
      const float *xg = x->data + k * M, *gg = gy + k * M;
      float *dxg = gx + k * M;
      float mean = stats[2 * k], rstd = stats[2 * k + 1];
      int64_t c0 = (k % G) * cpg;
      double sum_dh = 0.0, sum_dh_xhat = 0.0;
      for (int64_t c = 0; c < cpg; c++) {
        float gc = gamma ? gamma->data[c0 + c] : 1.0f;
#pragma omp simd reduction(+ : sum_dh, sum_dh_xhat)
        for (int64_t s = c * S; s < (c + 1) * S; s++) {
          float dh = gg[s] * gc;
          sum_dh += dh;
          sum_dh_xhat += (double)(dh * (xg[s] - mean) * rstd);
        }
      }
      float a = (float)(sum_dh / (double)M), b = (float)(sum_dh_xhat / (double)M);
      for (int64_t c = 0; c < cpg; c++) {
        float gc = gamma ? gamma->data[c0 + c] : 1.0f;
#pragma omp simd
        for (int64_t s = c * S; s < (c + 1) * S; s++)
          dxg[s] += rstd * (gg[s] * gc - a - (xg[s] - mean) * rstd * b);
      }
    }
  }
  bool want_gamma = gamma && gamma->requires_grad, want_beta = beta && beta->requires_grad;
  if (!want_gamma && !want_beta) return AG_OK;
  float *dgamma = want_gamma ? ag_tape_grad(t, gamma) : NULL;
  float *dbeta = want_beta ? ag_tape_grad(t, beta) : NULL;
  if ((want_gamma && !dgamma) || (want_beta && !dbeta)) return AG_ERR_NOMEM;
    /* One channel per task: each sums over examples and positions on its own. */
#pragma omp parallel for if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t c = 0; c < C; c++) {
    double sg = 0.0, sb = 0.0;
    for (int64_t e = 0; e < N; e++) {
      int64_t k = e * G + c / cpg;
      float mean = stats[2 * k], rstd = stats[2 * k + 1];
      const float *xc = x->data + (e * C + c) * S, *gc = gy + (e * C + c) * S;
#pragma omp simd reduction(+ : sg, sb)
      for (int64_t s = 0; s < S; s++) {
        sg += (double)(gc[s] * (xc[s] - mean) * rstd);
        sb += gc[s];
      }
    }
    if (dgamma) dgamma[c] += (float)sg;
    if (dbeta) dbeta[c] += (float)sb;
  }
  return AG_OK;
}

ag_tensor *ag_groupnorm(ag_tape *t, ag_tensor *x, int groups, ag_tensor *gamma, ag_tensor *beta,
                        float eps) {
  if (!ag_tape_ok(t, x)) return NULL;
  char s[96];
  if (x->ndim < 2)
    return ag_tape_fail(t, AG_ERR_SHAPE, "groupnorm: input %s must be (N, C, ...)",
                        ag_shape_string(x, s, sizeof s));
  int64_t C = x->shape[1];
  if (groups <= 0 || C % groups != 0)
    return ag_tape_fail(t, AG_ERR_INVALID,
                        "groupnorm: %d groups do not divide the %lld channels of input %s", groups,
                        (long long)C, ag_shape_string(x, s, sizeof s));
  if (!(eps >= 0.0f)) return ag_tape_fail(t, AG_ERR_INVALID, "groupnorm: eps %g < 0", (double)eps);
  if (!norm_param(t, "groupnorm", "gamma", &gamma, x, C) ||
      !norm_param(t, "groupnorm", "beta", &beta, x, C))
    return NULL;
  x = ag_contiguous(t, x);
  if (!x) return NULL;
  ag_op_call c = {.op = AG_OP_GROUPNORM,
                  .in = {x, gamma, beta},
                  .n_in = 3,
                  .out_ndim = x->ndim,
                  .iarg = {groups},
                  .farg = {eps}};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

/* ---- dropout ------------------------------------------------------------------------ */

/* Keeps each element with probability 1 - p and scales it by 1 / (1 - p),
 * so the expected output equals the input. saved: one keep byte per
 * element; farg = (p, 1 / (1 - p)). */
static ag_status dropout_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0];
  int64_t count = x->numel;
  uint8_t *keep = ag_tape_alloc(t, (size_t)max_i64(count, 1));
  if (!keep) return AG_ERR_NOMEM;
  /* Drawn serially from the tape's RNG (two 32-bit draws per u64), so the
   * same seed gives the same mask whatever the thread count. keep when
   * u >= p * 2^32, probability 1 - p up to 2^-32. */
  ag_rng *rng = ag_tape_rng(t);
  uint32_t threshold = (uint32_t)((double)n->farg[0] * 4294967296.0);
  for (int64_t i = 0; i < count; i += 2) {
    uint64_t u = ag_rng_u64(rng);
    keep[i] = (uint32_t)u >= threshold;
    if (i + 1 < count) keep[i + 1] = (uint32_t)(u >> 32) >= threshold;
  }
  float scale = n->farg[1];
  float *y = n->out->data;
#pragma omp parallel for simd if (count >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t i = 0; i < count; i++) y[i] = keep[i] ? x->data[i] * scale : 0.0f;
  n->saved = keep;
  return AG_OK;
}

static ag_status dropout_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  const uint8_t *keep = n->saved;
  const float *gy = n->out->grad;
  float scale = n->farg[1];
#pragma omp parallel for simd if (x->numel >= PARALLEL_MIN_ELEMENTS) schedule(static)
  for (int64_t i = 0; i < x->numel; i++) gx[i] += keep[i] ? gy[i] * scale : 0.0f;
  return AG_OK;
}

ag_tensor *ag_dropout(ag_tape *t, ag_tensor *x, float p) {
  if (!ag_tape_ok(t, x)) return NULL;
  if (!(p >= 0.0f && p < 1.0f))
    return ag_tape_fail(t, AG_ERR_INVALID, "dropout: p = %g is outside [0, 1)", (double)p);
  if (!ag_tape_training(t) || p == 0.0f) return x;
  x = ag_contiguous(t, x);
  if (!x) return NULL;
  ag_op_call c = {.op = AG_OP_DROPOUT,
                  .in = {x},
                  .n_in = 1,
                  .out_ndim = x->ndim,
                  .farg = {p, 1.0f / (1.0f - p)}};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

/* ---- registration -------------------------------------------------------------------- */

static const ag_op_impl softmax_op = {"softmax", softmax_forward, softmax_backward};
static const ag_op_impl log_softmax_op = {"log_softmax", log_softmax_forward, log_softmax_backward};
static const ag_op_impl cross_entropy_op = {"cross_entropy", cross_entropy_forward,
                                            cross_entropy_backward};
static const ag_op_impl embedding_op = {"embedding", embedding_forward, embedding_backward};
static const ag_op_impl layernorm_op = {"layernorm", norm_forward, norm_backward};
static const ag_op_impl rmsnorm_op = {"rmsnorm", norm_forward, norm_backward};
static const ag_op_impl groupnorm_op = {"groupnorm", groupnorm_forward, groupnorm_backward};
static const ag_op_impl dropout_op = {"dropout", dropout_forward, dropout_backward};

void ag_cpu_register_nn(const ag_op_impl **ops) {
  ops[AG_OP_SOFTMAX] = &softmax_op;
  ops[AG_OP_LOG_SOFTMAX] = &log_softmax_op;
  ops[AG_OP_CROSS_ENTROPY] = &cross_entropy_op;
  ops[AG_OP_EMBEDDING] = &embedding_op;
  ops[AG_OP_LAYERNORM] = &layernorm_op;
  ops[AG_OP_RMSNORM] = &rmsnorm_op;
  ops[AG_OP_GROUPNORM] = &groupnorm_op;
  ops[AG_OP_DROPOUT] = &dropout_op;
}
