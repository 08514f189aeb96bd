/* The batched pass every influence stage runs (forward, seed gradients,
 * backward with a layer hook), and finding a model's layers by name. */
#include "learn/influence/influence_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- layers of a model ------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

ag_status infl_candidates(const ag_params *p, infl_candidate **out, int *count) {
  *out = NULL;
  *count = 0;
  infl_candidate *c = calloc((size_t)(p->count ? p->count : 1), sizeof *c);
  if (!c) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  int k = 0;
  for (int i = 0; i < p->count; i++) {
    const ag_tensor *w = p->tensors[i];
    if (!w->name || !ends_with(w->name, ".weight") || (w->ndim != 2 && w->ndim != 4)) continue;
    size_t len = strlen(w->name) - strlen(".weight");
    if (len == 0 || len >= sizeof c[k].name) continue;
    memcpy(c[k].name, w->name, len);
    c[k].name[len] = '\0';
    c[k].kind = w->ndim == 4 ? AG_LAYER_CONV2D : AG_LAYER_LINEAR;
    c[k].weight = w;
    c[k].out = w->shape[0];
    c[k].in = w->numel / w->shape[0];
    char bias_name[272];
    snprintf(bias_name, sizeof bias_name, "%s.bias", c[k].name);
    const ag_tensor *b = ag_params_find(p, bias_name);
    c[k].bias = b && b->ndim == 1 && b->shape[0] == c[k].out ? b : NULL;
    k++;
  }
  *out = c;
  *count = k;
  return AG_OK;
}

void infl_candidate_list(const ag_params *p, char *buf, size_t size) {
  infl_candidate *c;
  int n;
  buf[0] = '\0';
  if (infl_candidates(p, &c, &n)) return;
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    int w = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", c[i].name);
    if (w < 0 || (size_t)w >= size - used) {
      if (size > 4) strcpy(buf + size - 4, "...");
      break;
    }
    used += (size_t)w;
  }
  if (n == 0) snprintf(buf, size, "none");
  free(c);
}

ag_status infl_resolve(const ag_params *p, const char *what, const char *name, ag_layer_kind kind,
                       int64_t in, int64_t out, bool has_bias, const ag_tensor **weight,
                       const ag_tensor **bias) {
  infl_candidate *c;
  int n;
  ag_status st = infl_candidates(p, &c, &n);
  if (st) return st;
  int found = -1;
  for (int i = 0; i < n; i++)
    if (!strcmp(c[i].name, name)) found = i;
  if (found < 0) {
    free(c);
    char list[1024];
    infl_candidate_list(p, list, sizeof list);
    return ag_error_set(AG_ERR_NOT_FOUND,
                        "influence: layer '%s' of the %s is not a linear/conv layer of the model "
                        "(its layers: %s)",
                        name, what, list);
  }
  infl_candidate l = c[found];
  free(c);
  if (l.kind != kind || l.in != in || l.out != out || (l.bias != NULL) != has_bias)
    return ag_error_set(AG_ERR_SHAPE,
                        "influence: layer '%s' differs: the %s have a %s layer %lld -> %lld%s, the "
                        "model a %s layer %lld -> %lld%s",
                        name, what, kind == AG_LAYER_CONV2D ? "conv2d" : "linear", (long long)in,
                        (long long)out, has_bias ? " with bias" : "",
                        l.kind == AG_LAYER_CONV2D ? "conv2d" : "linear", (long long)l.in,
                        (long long)l.out, l.bias ? " with bias" : "");
  *weight = l.weight;
  *bias = l.bias;
  return AG_OK;
}

int infl_find_weight(const ag_tensor *const *weights, int count, const ag_tensor *w) {
  for (int i = 0; i < count; i++)
    if (weights[i] == w) return i;
  return -1;
}

ag_status infl_check_model(const ag_influence_model *m) {
  if (!m || !m->params || !m->forward)
    return ag_error_set(AG_ERR_INVALID, "influence: the model has no parameters or forward");
  if (m->outputs <= 0 || m->rows_per_example <= 0)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: the model needs outputs > 0 and rows_per_example > 0 "
                        "(got %lld, %lld)",
                        (long long)m->outputs, (long long)m->rows_per_example);
  if (m->loss != AG_INFLUENCE_CROSS_ENTROPY && m->loss != AG_INFLUENCE_SQUARED)
    return ag_error_set(AG_ERR_INVALID, "influence: unknown loss %d", (int)m->loss);
  return AG_OK;
}

ag_status infl_check_fingerprint(const ag_influence_model *m, const char *what,
                                 uint64_t fingerprint) {
  uint64_t have = ag_influence_fingerprint(m->params);
  if (have != fingerprint)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: the %s were computed for other parameters (fingerprint "
                        "%016llx; this model's is %016llx): another model or checkpoint",
                        what, (unsigned long long)fingerprint, (unsigned long long)have);
  return AG_OK;
}

uint64_t infl_hash(uint64_t h, const void *data, size_t bytes) {
  const unsigned char *b = data;
  for (size_t i = 0; i < bytes; i++) {
    h ^= b[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* ---- events ------------------------------------------------------------------ */

ag_status infl_event_rows(const ag_layer_event *ev, int64_t n, int64_t *rows_per_example) {
  if (ev->examples == n) {
    *rows_per_example = ev->rows_per_example;
    return AG_OK;
  }
  if (n > 0 && ev->rows % n == 0) { /* examples flattened into rows, still grouped */
    *rows_per_example = ev->rows / n;
    return AG_OK;
  }
  return ag_error_set(AG_ERR_SHAPE,
                      "influence: layer '%s' saw %lld rows for a batch of %lld examples",
                      ev->weight->name ? ev->weight->name : "?", (long long)ev->rows, (long long)n);
}

void infl_event_grads(const ag_layer_event *ev, int64_t n, int64_t rpe, int64_t cols, bool has_bias,
                      float *dst, int64_t dst_stride) {
  int64_t in = ev->in_features, out = ev->out_features;
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t e = 0; e < n; e++) {
    const float *A = ev->A + e * rpe * in;  // (rpe, in)
    const float *G = ev->G + e * rpe * out; // (rpe, out)
    float *W = dst + e * dst_stride;        // (out, cols)
    /* W[:, :in] (out, in) += G_eᵀ (out, rpe) @ A_e (rpe, in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)rpe, 1.0f, G,
                (int)out, A, (int)in, 1.0f, W, (int)cols);
    if (has_bias)
      for (int64_t r = 0; r < rpe; r++)
        for (int64_t o = 0; o < out; o++) W[o * cols + in] += G[r * out + o];
  }
}

/* ---- seeds ------------------------------------------------------------------------ */

/* The seed gradient of one output row y (outputs values) into s. */
static ag_status row_seed(const ag_influence_model *m, const ag_influence_data *d,
                          infl_seed_kind kind, int pass, int64_t row, const float *y, ag_rng *rng,
                          double *p, float *s) {
  int64_t K = m->outputs;
  if (m->loss == AG_INFLUENCE_SQUARED) {
    const float *t = d->targets ? d->targets + row * K : NULL;
    for (int64_t k = 0; k < K; k++) {
      switch (kind) {
      case INFL_SEED_SAMPLED: s[k] = -ag_rng_normal(rng); break; /* y − t, t ~ N(y, I) */
      case INFL_SEED_EXPECTED: s[k] = k == pass ? 1.0f : 0.0f; break;
      case INFL_SEED_QUERY: s[k] = t[k] - y[k]; break; /* ∇ of −½‖y − t‖² */
      case INFL_SEED_LOSS: s[k] = y[k] - t[k]; break;
      }
    }
    return AG_OK;
  }
  int32_t label = d->labels ? d->labels[row] : -1;
  if (label >= K)
    return ag_error_set(AG_ERR_INVALID, "influence: label %d of row %lld is not below %lld",
                        (int)label, (long long)row, (long long)K);
  bool masked = d->labels && label < 0;
  if (masked) {
    /* ignored rows still consume their draw, so later rows' draws do not
     * depend on which rows are masked */
    if (kind == INFL_SEED_SAMPLED) (void)ag_rng_uniform(rng);
    memset(s, 0, (size_t)K * sizeof(float));
    return AG_OK;
  }
  double mx = y[0], sum = 0.0;
  for (int64_t k = 1; k < K; k++) mx = y[k] > mx ? y[k] : mx;
  for (int64_t k = 0; k < K; k++) sum += p[k] = exp((double)y[k] - mx);
  for (int64_t k = 0; k < K; k++) p[k] /= sum;
  switch (kind) {
  case INFL_SEED_SAMPLED: {
    double u = ag_rng_uniform(rng), c = 0.0;
    int64_t drawn = K - 1;
    for (int64_t k = 0; k < K; k++) {
      c += p[k];
      if (u < c) {
        drawn = k;
        break;
      }
    }
    for (int64_t k = 0; k < K; k++) s[k] = (float)(p[k] - (k == drawn)); /* p − e_y */
    break;
  }
  case INFL_SEED_EXPECTED: { /* √p_k (e_k − p): Σ_k of their outer products is diag(p) − ppᵀ */
    double r = sqrt(p[pass]);
    for (int64_t k = 0; k < K; k++) s[k] = (float)(r * ((k == pass) - p[k]));
    break;
  }
  case INFL_SEED_QUERY:
  case INFL_SEED_LOSS:
    if (label < 0) return ag_error_set(AG_ERR_INVALID, "influence: cross-entropy needs labels");
    for (int64_t k = 0; k < K; k++) {
      double g = p[k] - (k == label); /* ∇ of −log p(label) */
      s[k] = (float)(kind == INFL_SEED_LOSS ? g : -g);
    }
    break;
  }
  return AG_OK;
}

/* ---- the pass ---------------------------------------------------------------------- */

typedef struct hook_state {
  const infl_pass *p;
  infl_batch *b;
  ag_status status;
} hook_state;

static void hook(void *user, const ag_layer_event *ev) {
  hook_state *h = user;
  if (h->status) return;
  h->status = h->p->on_event(h->p->user, h->b, ev);
}

static ag_status check_data(const infl_pass *p) {
  const ag_influence_model *m = p->m;
  const ag_influence_data *d = p->d;
  if (!d) return ag_error_set(AG_ERR_INVALID, "influence: no data");
  if (p->first < 0 || p->count < 0 || p->first + p->count > d->count)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: examples %lld..%lld outside the data set of %lld",
                        (long long)p->first, (long long)(p->first + p->count), (long long)d->count);
  bool needs_truth = p->seeds == INFL_SEED_QUERY || p->seeds == INFL_SEED_LOSS;
  if (needs_truth && m->loss == AG_INFLUENCE_CROSS_ENTROPY && !d->labels)
    return ag_error_set(AG_ERR_INVALID, "influence: cross-entropy needs the data's labels");
  if (needs_truth && m->loss == AG_INFLUENCE_SQUARED && !d->targets)
    return ag_error_set(AG_ERR_INVALID, "influence: squared loss needs the data's targets");
  return AG_OK;
}

ag_status infl_run(const infl_pass *p) {
  const ag_influence_model *m = p->m;
  ag_status st = infl_check_model(m);
  if (!st) st = check_data(p);
  if (st) return st;
  if (p->count == 0) return AG_OK;
  int64_t bs = p->batch_size > 0 ? p->batch_size : 32;
  if (bs > p->count) bs = p->count;
  int64_t rows_max = bs * m->rows_per_example, K = m->outputs;
  ag_params *params = m->params;
  bool saved = false;
  ag_tape *t = ag_tape_create();
  int64_t *idx = malloc((size_t)bs * sizeof *idx);
  float *y = malloc((size_t)(rows_max * K) * sizeof *y);       // (rows, K)
  float *seed = malloc((size_t)(rows_max * K) * sizeof *seed); // (rows, K)
  double *prob = malloc((size_t)K * sizeof *prob);
  float *saved_grad = malloc((size_t)(params->total ? params->total : 1) * sizeof(float));
  bool *saved_flags = malloc((size_t)(params->count ? params->count : 1) * sizeof(bool));
  if (!t || !idx || !y || !seed || !prob || !saved_grad || !saved_flags) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    goto done;
  }
  memcpy(saved_grad, params->grad, (size_t)params->total * sizeof(float));
  for (int i = 0; i < params->count; i++) saved_flags[i] = params->tensors[i]->requires_grad;
  saved = true;
  ag_tape_set_training(t, false);
  int passes = p->seeds == INFL_SEED_EXPECTED ? (int)K : 1;
  infl_batch b = {t, idx, 0, 0, passes};
  hook_state hs = {p, &b, AG_OK};
  for (int64_t start = p->first; start < p->first + p->count; start += bs) {
    int64_t n = p->first + p->count - start < bs ? p->first + p->count - start : bs;
    int64_t rows = n * m->rows_per_example;
    for (int64_t i = 0; i < n; i++) idx[i] = start + i;
    b.n = n;
    ag_tape_reset(t);
    for (int i = 0; i < params->count; i++) params->tensors[i]->requires_grad = saved_flags[i];
    ag_tensor *out = m->forward(m->user, t, p->d->data, idx, n);
    if (!out) {
      st = ag_tape_status(t) ? ag_error_set(ag_tape_status(t), "%s", ag_tape_error(t))
                             : ag_error_set(AG_ERR_INTERNAL, "influence: forward returned NULL");
      goto done;
    }
    if (out->numel != rows * K) {
      char s[96];
      st = ag_error_set(AG_ERR_SHAPE,
                        "influence: the forward output has shape %s, expected %lld rows of %lld "
                        "outputs (%lld examples x %lld rows)",
                        ag_shape_string(out, s, sizeof s), (long long)rows, (long long)K,
                        (long long)n, (long long)m->rows_per_example);
      goto done;
    }
    if (!out->requires_grad) {
      st = ag_error_set(AG_ERR_INVALID, "influence: the model's output does not depend on "
                                        "its parameters");
      goto done;
    }
    ag_tensor_copy_to(out, y);
    /* Weight gradients are not needed (the hook sees A and G): turning the
     * flags off after the forward skips their gemms in backward. */
    for (int i = 0; i < params->count; i++) params->tensors[i]->requires_grad = false;
    for (int k = 0; k < passes; k++) {
      b.pass = k;
      for (int64_t i = 0; i < n && !st; i++) {
        ag_rng rng;
        ag_rng_seed2(&rng, p->seed, (uint64_t)idx[i]); /* batching never changes a draw */
        for (int64_t r = 0; r < m->rows_per_example && !st; r++) {
          int64_t row = i * m->rows_per_example + r;
          st = row_seed(m, p->d, p->seeds, k, idx[i] * m->rows_per_example + r, y + row * K, &rng,
                        prob, seed + row * K);
        }
      }
      if (st) goto done;
      ag_tape_set_layer_hook(t, hook, &hs);
      st = ag_backward_with(t, out, seed);
      ag_tape_set_layer_hook(t, NULL, NULL);
      if (!st) st = hs.status;
      if (!st && p->after_backward) st = p->after_backward(p->user, &b);
      if (st) goto done;
    }
    if (p->progress) ag_progress_update(p->progress, p->progress_base + start + n - p->first);
  }
done:
  if (saved) {
    for (int i = 0; i < params->count; i++) params->tensors[i]->requires_grad = saved_flags[i];
    memcpy(params->grad, saved_grad, (size_t)params->total * sizeof(float));
  }
  free(saved_flags);
  free(saved_grad);
  free(prob);
  free(seed);
  free(y);
  free(idx);
  ag_tape_destroy(t);
  return st;
}
