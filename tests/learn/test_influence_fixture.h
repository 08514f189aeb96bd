/* Small networks for the influence tests: an optional first conv layer,
 * then linear layers with an optional tanh between them; data are float
 * rows picked by index. Also dense references: per-example Jacobians and
 * gradients through ag_per_example_grads (a code path independent of the
 * influence engine), a dense Gauss-Newton matrix and a Cholesky solve. */
#ifndef TEST_INFLUENCE_FIXTURE_H
#define TEST_INFLUENCE_FIXTURE_H

#include "agora/influence.h"
#include "agora/ops.h"
#include "test.h"

#include <cblas.h>
#include <lapacke.h>

#define TNET_MAX_LAYERS 4

typedef struct tnet {
  ag_params *p;
  int linear;                        /* linear layers */
  int64_t dims[TNET_MAX_LAYERS + 1]; /* linear sizes: dims[0] -> ... -> dims[linear] */
  ag_tensor *w[TNET_MAX_LAYERS], *b[TNET_MAX_LAYERS];
  bool tanh_act;     /* tanh between layers (else a linear network) */
  bool repeat_first; /* apply fc1 twice (a shared weight: dims[1] == dims[0]) */
  /* optional conv front: (C, H, W) images, conv 3x3 valid, conv_out channels, tanh */
  bool conv;
  int64_t C, H, W, conv_out;
  ag_tensor *cw, *cb;
  int64_t example_floats;
  int64_t forward_examples; /* counts examples through forward (resume tests) */
} tnet;

/* Builds and initialises (normal * scale) a network. */
static inline tnet *tnet_create(int linear, const int64_t *dims, bool bias, bool tanh_act,
                                bool conv, int64_t C, int64_t H, int64_t W, int64_t conv_out,
                                uint64_t seed) {
  tnet *n = calloc(1, sizeof *n);
  n->p = ag_params_create();
  n->linear = linear;
  n->tanh_act = tanh_act;
  n->conv = conv;
  n->C = C, n->H = H, n->W = W, n->conv_out = conv_out;
  for (int i = 0; i <= linear; i++) n->dims[i] = dims[i];
  if (conv) {
    int64_t cs[4] = {conv_out, C, 3, 3};
    n->cw = ag_params_add(n->p, "conv.weight", 4, cs);
    n->cb = ag_params_add(n->p, "conv.bias", 1, &conv_out);
    n->example_floats = C * H * W;
  } else {
    n->example_floats = dims[0];
  }
  for (int i = 0; i < linear; i++) {
    char name[32];
    int64_t s[2] = {dims[i + 1], dims[i]};
    snprintf(name, sizeof name, "fc%d.weight", i + 1);
    n->w[i] = ag_params_add(n->p, name, 2, s);
    if (bias) {
      snprintf(name, sizeof name, "fc%d.bias", i + 1);
      n->b[i] = ag_params_add(n->p, name, 1, &s[0]);
    }
  }
  ag_params_finalize(n->p);
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int i = 0; i < n->p->count; i++) {
    ag_tensor *t = n->p->tensors[i];
    double fan_in = t->ndim == 1 ? 4.0 : (double)(t->numel / t->shape[0]);
    for (int64_t j = 0; j < t->numel; j++)
      t->data[j] = ag_rng_normal(&rng) * (float)(1.2 / sqrt(fan_in));
  }
  return n;
}

static inline void tnet_destroy(tnet *n) {
  ag_params_destroy(n->p);
  free(n);
}

static inline ag_tensor *tnet_forward(void *user, ag_tape *t, const void *data, const int64_t *idx,
                                      int64_t count) {
  tnet *n = user;
  const float *X = data;
  n->forward_examples += count;
  ag_tensor *x;
  if (n->conv) {
    int64_t s[4] = {count, n->C, n->H, n->W};
    x = ag_tape_tensor(t, 4, s);
  } else {
    int64_t s[2] = {count, n->dims[0]};
    x = ag_tape_tensor(t, 2, s);
  }
  if (!x) return NULL;
  for (int64_t i = 0; i < count; i++)
    memcpy(x->data + i * n->example_floats, X + idx[i] * n->example_floats,
           (size_t)n->example_floats * sizeof(float));
  if (n->conv) {
    x = ag_tanh(t, ag_conv2d(t, x, n->cw, n->cb, 1, 0));
    int64_t s[2] = {count, -1};
    x = ag_reshape(t, x, 2, s);
  }
  if (n->repeat_first) x = ag_tanh(t, ag_linear(t, x, n->w[0], n->b[0]));
  for (int i = 0; i < n->linear; i++) {
    x = ag_linear(t, x, n->w[i], n->b[i]);
    if (n->tanh_act && i + 1 < n->linear) x = ag_tanh(t, x);
  }
  return x;
}

static inline ag_influence_model tnet_model(tnet *n, ag_influence_loss loss) {
  ag_influence_model m;
  memset(&m, 0, sizeof m);
  m.params = n->p;
  m.forward = tnet_forward;
  m.user = n;
  m.loss = loss;
  m.rows_per_example = 1;
  m.outputs = n->dims[n->linear];
  return m;
}

/* Per-example gradients of Σ_n seed_nᵀ y_n (seed (count, K)): out (count,
 * params->total). */
static inline void tnet_seeded_grads(tnet *n, const float *X, int64_t first, int64_t count,
                                     const float *seed, float *out) {
  ag_tape *t = ag_tape_create();
  int64_t *idx = malloc((size_t)count * sizeof *idx);
  for (int64_t i = 0; i < count; i++) idx[i] = first + i;
  int64_t K = n->dims[n->linear];
  ag_tensor *y = tnet_forward(n, t, X, idx, count);
  int64_t s[2] = {count, K};
  ag_tensor *sd = ag_tape_wrap(t, (float *)seed, 2, s);
  ag_tensor *loss = ag_sum(t, ag_sum(t, ag_mul(t, y, sd), 1, false), 0, false);
  int64_t covered = 0;
  ag_status st = ag_per_example_grads(t, loss, n->p, count, out, &covered);
  if (st) fprintf(stderr, "per-example grads: %s\n", ag_error_message());
  free(idx);
  ag_tape_destroy(t);
}

/* Outputs y (count, K) in double. */
static inline void tnet_outputs(tnet *n, const float *X, int64_t first, int64_t count, double *y) {
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  int64_t *idx = malloc((size_t)count * sizeof *idx);
  for (int64_t i = 0; i < count; i++) idx[i] = first + i;
  ag_tensor *out = tnet_forward(n, t, X, idx, count);
  for (int64_t i = 0; i < out->numel; i++) y[i] = out->data[i];
  free(idx);
  ag_tape_destroy(t);
}

static inline void softmax_d(const double *y, int64_t K, double *p) {
  double mx = y[0], s = 0;
  for (int64_t k = 1; k < K; k++) mx = y[k] > mx ? y[k] : mx;
  for (int64_t k = 0; k < K; k++) s += p[k] = exp(y[k] - mx);
  for (int64_t k = 0; k < K; k++) p[k] /= s;
}

/* Per-example gradients of the cross-entropy at labels (sign +1: ∇L; -1:
 * ∇ log p(label) = ∇f). out (count, total). */
static inline void tnet_loss_grads(tnet *n, const float *X, const int32_t *labels, int64_t first,
                                   int64_t count, double sign, float *out) {
  int64_t K = n->dims[n->linear];
  double *y = malloc((size_t)(count * K) * sizeof(double)), *p = malloc((size_t)K * sizeof(double));
  float *seed = malloc((size_t)(count * K) * sizeof(float));
  tnet_outputs(n, X, first, count, y);
  for (int64_t i = 0; i < count; i++) {
    softmax_d(y + i * K, K, p);
    for (int64_t k = 0; k < K; k++)
      seed[i * K + k] = (float)(sign * (p[k] - (k == labels[first + i])));
  }
  tnet_seeded_grads(n, X, first, count, seed, out);
  free(seed);
  free(p);
  free(y);
}

/* The dense Gauss-Newton matrix of the mean cross-entropy (or squared)
 * loss over examples [0, count): G = (1/N) Σ_n J_nᵀ H_n J_n, H_n = diag(p) −
 * ppᵀ (cross-entropy) or I (squared). G is (total, total). */
static inline void tnet_dense_gn(tnet *n, const float *X, int64_t count, ag_influence_loss loss,
                                 double *G) {
  int64_t K = n->dims[n->linear], T = n->p->total;
  float *J = malloc((size_t)(K * count * T) * sizeof(float)); /* (K, count, T) */
  float *seed = calloc((size_t)(count * K), sizeof(float));
  for (int64_t k = 0; k < K; k++) {
    for (int64_t i = 0; i < count; i++)
      for (int64_t j = 0; j < K; j++) seed[i * K + j] = j == k;
    tnet_seeded_grads(n, X, 0, count, seed, J + k * count * T);
  }
  double *y = malloc((size_t)(count * K) * sizeof(double)), *p = malloc((size_t)K * sizeof(double));
  double *HJ = malloc((size_t)(K * T) * sizeof(double)),
         *Jn = malloc((size_t)(K * T) * sizeof(double));
  tnet_outputs(n, X, 0, count, y);
  memset(G, 0, (size_t)(T * T) * sizeof(double));
  for (int64_t i = 0; i < count; i++) {
    for (int64_t k = 0; k < K; k++)
      for (int64_t a = 0; a < T; a++) Jn[k * T + a] = J[(k * count + i) * T + a];
    if (loss == AG_INFLUENCE_SQUARED) {
      memcpy(HJ, Jn, (size_t)(K * T) * sizeof(double));
    } else {
      softmax_d(y + i * K, K, p);
      for (int64_t k = 0; k < K; k++)
        for (int64_t a = 0; a < T; a++) {
          double s = p[k] * Jn[k * T + a];
          for (int64_t j = 0; j < K; j++) s -= p[k] * p[j] * Jn[j * T + a];
          HJ[k * T + a] = s;
        }
    }
    /* G += Jnᵀ HJ / N */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)T, (int)T, (int)K,
                1.0 / (double)count, Jn, (int)T, HJ, (int)T, 1.0, G, (int)T);
  }
  free(Jn);
  free(HJ);
  free(p);
  free(y);
  free(seed);
  free(J);
}

/* Indices (into params->grad) of a layer's block in the weight layout
 * o * cols + i, bias last in each row: idx (out * cols). */
static inline void layer_indices(const ag_params *p, const char *layer, int64_t *idx,
                                 int64_t *size) {
  char name[64];
  snprintf(name, sizeof name, "%s.weight", layer);
  ag_tensor *w = ag_params_find(p, name);
  snprintf(name, sizeof name, "%s.bias", layer);
  ag_tensor *b = ag_params_find(p, name);
  int64_t out = w->shape[0], in = w->numel / out, cols = in + (b != NULL);
  int64_t wo = ag_params_offset(p, w), bo = b ? ag_params_offset(p, b) : 0;
  for (int64_t o = 0; o < out; o++) {
    for (int64_t i = 0; i < in; i++) idx[o * cols + i] = wo + o * in + i;
    if (b) idx[o * cols + in] = bo + o;
  }
  *size = out * cols;
}

static inline double pearson(const double *a, const double *b, int64_t n) {
  double ma = 0, mb = 0;
  for (int64_t i = 0; i < n; i++) ma += a[i], mb += b[i];
  ma /= (double)n, mb /= (double)n;
  double sab = 0, saa = 0, sbb = 0;
  for (int64_t i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return sab / sqrt(saa * sbb + 1e-300);
}

static inline void ranks(const double *a, int64_t n, double *r) {
  for (int64_t i = 0; i < n; i++) {
    int64_t less = 0, equal = 0;
    for (int64_t j = 0; j < n; j++) less += a[j] < a[i], equal += a[j] == a[i];
    r[i] = (double)less + 0.5 * (double)(equal - 1);
  }
}

static inline double spearman(const double *a, const double *b, int64_t n) {
  double *ra = malloc((size_t)n * sizeof(double)), *rb = malloc((size_t)n * sizeof(double));
  ranks(a, n, ra);
  ranks(b, n, rb);
  double r = pearson(ra, rb, n);
  free(ra);
  free(rb);
  return r;
}

#endif
