/* Scoring training examples: Δf_q(z) = −⟨v_q, ∇θ L(z)⟩ summed over layers,
 * with ⟨v, G_zᵀ [A_z, 1]⟩ computed either row-wise, Σ_r G[r] · (v [A[r], 1]),
 * or through the per-example gradient, whichever needs fewer flops. */
#include "agora/json.h"
#include "learn/influence/influence_internal.h"

#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct score_ctx {
  const ag_influence_queries *q;
  const ag_tensor **weights;
  int64_t first, count;
  float *scores; /* (queries, count) */
} score_ctx;

static ag_status score_event(void *user, const infl_batch *b, const ag_layer_event *ev) {
  score_ctx *c = user;
  int li = infl_find_weight(c->weights, c->q->layer_count, ev->weight);
  if (li < 0) return AG_OK;
  const infl_qlayer *l = &c->q->layers[li];
  int64_t n = b->n, rpe, in = l->in, out = l->out, cols = l->cols, P = out * cols;
  int64_t Q = c->q->count, rows = ev->rows, base = b->idx[0] - c->first;
  ag_status st = infl_event_rows(ev, n, &rpe);
  if (st) return st;
  ag_arena *arena = ag_tape_arena(b->tape);
  float *sc = ag_arena_calloc(arena, (size_t)(n * Q) * sizeof(float), 64); // (n, Q)
  if (!sc) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  /* row-wise: rows in Q out; via gradients: rows out cols + n Q out cols */
  double rows_cost = (double)rows * (double)(in * Q * out + Q * out);
  double grad_cost = (double)rows * (double)(out * cols) + (double)(n * Q * P);
  if (rows_cost <= grad_cost) {
    float *av = ag_arena_alloc(arena, (size_t)(rows * Q * out) * sizeof(float), 64);
    if (!av) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    /* av (rows, Q out) = A (rows, in) @ V[:, :in]ᵀ, V viewed (Q out, cols) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)(Q * out), (int)in, 1.0f,
                ev->A, (int)in, l->v, (int)cols, 0.0f, av, (int)(Q * out));
#pragma omp parallel for schedule(static) if (n > 1)
    for (int64_t e = 0; e < n; e++)
      for (int64_t r = e * rpe; r < (e + 1) * rpe; r++) {
        const float *g = ev->G + r * out;
        const float *a = av + r * Q * out;
        for (int64_t k = 0; k < Q; k++) {
          const float *vk = l->v + k * P;
          float s = 0.0f;
          for (int64_t o = 0; o < out; o++)
            s += g[o] * (a[k * out + o] + (l->has_bias ? vk[o * cols + in] : 0.0f));
          sc[e * Q + k] += s;
        }
      }
  } else {
    float *w = ag_arena_calloc(arena, (size_t)(n * P) * sizeof(float), 64); // (n, out, cols)
    if (!w) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    infl_event_grads(ev, n, rpe, cols, l->has_bias, w, P);
    /* sc (n, Q) = W' (n, P) @ V (Q, P)ᵀ */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)Q, (int)P, 1.0f, w, (int)P,
                l->v, (int)P, 0.0f, sc, (int)Q);
  }
  for (int64_t e = 0; e < n; e++)
    for (int64_t k = 0; k < Q; k++) c->scores[k * c->count + base + e] -= sc[e * Q + k];
  return AG_OK;
}

/* The query layers' weights in m, after checking m is the queries' model. */
static ag_status resolve_queries(const ag_influence_queries *q, const ag_influence_model *m,
                                 const ag_tensor ***weights) {
  *weights = NULL;
  ag_status st = infl_check_model(m);
  if (st) return st;
  if (m->loss != q->loss || m->outputs != q->outputs)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: the queries are for a model with %lld outputs, not %lld",
                        (long long)q->outputs, (long long)m->outputs);
  const ag_tensor **w = calloc((size_t)(q->layer_count ? q->layer_count : 1), sizeof *w);
  if (!w) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  for (int i = 0; i < q->layer_count; i++) {
    const infl_qlayer *l = &q->layers[i];
    const ag_tensor *b;
    st =
        infl_resolve(m->params, "queries", l->name, l->kind, l->in, l->out, l->has_bias, &w[i], &b);
    if (st) {
      free(w);
      return st;
    }
  }
  st = infl_check_fingerprint(m, "queries", q->fingerprint);
  if (st) {
    free(w);
    return st;
  }
  *weights = w;
  return AG_OK;
}

static ag_status score_range(const ag_influence_queries *q, const ag_influence_model *m,
                             const ag_tensor **weights, const ag_influence_data *train,
                             int64_t first, int64_t count, int64_t batch_size, float *scores,
                             ag_progress *progress, int64_t progress_base) {
  memset(scores, 0, (size_t)(q->count * count) * sizeof(float));
  score_ctx c = {q, weights, first, count, scores};
  infl_pass p = {m,
                 train,
                 first,
                 count,
                 batch_size > 0 ? batch_size : 64,
                 INFL_SEED_LOSS,
                 0,
                 score_event,
                 NULL,
                 &c,
                 progress,
                 progress_base};
  return infl_run(&p);
}

ag_status ag_influence_score(const ag_influence_queries *q, const ag_influence_model *m,
                             const ag_influence_data *train, int64_t first, int64_t count,
                             int64_t batch_size, float *scores) {
  if (!q) return ag_error_set(AG_ERR_INVALID, "influence: no queries");
  if (!train || first < 0 || count < 0 || first + count > train->count)
    return ag_error_set(AG_ERR_INVALID, "influence: examples %lld..%lld outside the data set",
                        (long long)first, (long long)(first + count));
  const ag_tensor **weights;
  ag_status st = resolve_queries(q, m, &weights);
  if (st) return st;
  st = score_range(q, m, weights, train, first, count, batch_size, scores, NULL, 0);
  free(weights);
  return st;
}

/* ---- chunked, resumable scoring ------------------------------------------------------- */

/* Fingerprint of the queries themselves: their vectors and the model's. */
static uint64_t queries_hash(const ag_influence_queries *q) {
  uint64_t h = infl_hash(INFL_HASH_START, &q->fingerprint, sizeof q->fingerprint);
  h = infl_hash(h, &q->count, sizeof q->count);
  for (int i = 0; i < q->layer_count; i++) {
    const infl_qlayer *l = &q->layers[i];
    h = infl_hash(h, l->name, strlen(l->name) + 1);
    h = infl_hash(h, l->v, (size_t)(q->count * l->out * l->cols) * sizeof(float));
  }
  return h;
}

/* Creates dir/manifest.json, or checks the one there describes this run. */
static ag_status check_manifest(const char *dir, const ag_influence_queries *q, int64_t train_count,
                                int64_t chunk) {
  char path[4096], hash[17], model[17];
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  snprintf(hash, sizeof hash, "%016llx", (unsigned long long)queries_hash(q));
  snprintf(model, sizeof model, "%016llx", (unsigned long long)q->fingerprint);
  if (ag_file_exists(path)) {
    json_t *j;
    ag_status st = ag_json_load(path, &j);
    if (st) return st;
    const char *h = json_string_value(json_object_get(j, "queries_fingerprint"));
    json_int_t n = json_integer_value(json_object_get(j, "train_count"));
    json_int_t c = json_integer_value(json_object_get(j, "chunk"));
    json_int_t nq = json_integer_value(json_object_get(j, "queries"));
    bool same = h && !strcmp(h, hash) && n == train_count && c == chunk && nq == q->count;
    char have[160];
    snprintf(have, sizeof have, "queries %s (%lld), %lld examples, chunks of %lld", h ? h : "?",
             (long long)nq, (long long)n, (long long)c);
    json_decref(j);
    if (!same)
      return ag_error_set(AG_ERR_INVALID,
                          "influence: %s holds scores of another run (%s; this run: queries %s "
                          "(%lld), %lld examples, chunks of %lld): use another folder or remove it",
                          dir, have, hash, (long long)q->count, (long long)train_count,
                          (long long)chunk);
    return AG_OK;
  }
  json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "format", "agora-influence-scores",
                        "queries_fingerprint", hash, "model_fingerprint", model, "queries",
                        (json_int_t)q->count, "train_count", (json_int_t)train_count, "chunk",
                        (json_int_t)chunk);
  if (!j) return ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
  ag_status st = ag_json_save(path, j);
  json_decref(j);
  return st;
}

/* Reads a finished chunk file into scores (queries, count) at column first;
 * false when absent or of the wrong size (then it is recomputed). */
static bool read_chunk(const char *path, int64_t Q, int64_t len, float *scores, int64_t count,
                       int64_t first) {
  struct stat sb;
  size_t bytes = (size_t)(Q * len) * sizeof(float);
  if (stat(path, &sb) != 0 || (size_t)sb.st_size != bytes) return false;
  FILE *fp = fopen(path, "rb");
  if (!fp) return false;
  bool ok = true;
  for (int64_t k = 0; k < Q && ok; k++)
    ok = fread(scores + k * count + first, sizeof(float), (size_t)len, fp) == (size_t)len;
  fclose(fp);
  return ok;
}

ag_status ag_influence_score_dir(const ag_influence_queries *q, const ag_influence_model *m,
                                 const ag_influence_data *train, const char *dir, int64_t chunk,
                                 int64_t batch_size, bool progress, float **scores) {
  *scores = NULL;
  if (!q || !train || !dir) return ag_error_set(AG_ERR_INVALID, "influence: missing argument");
  if (chunk <= 0) return ag_error_set(AG_ERR_INVALID, "influence: chunk must be > 0");
  const ag_tensor **weights;
  ag_status st = resolve_queries(q, m, &weights);
  if (st) return st;
  int64_t N = train->count, Q = q->count;
  float *all = malloc((size_t)(Q * (N ? N : 1)) * sizeof(float));
  float *part = malloc((size_t)(Q * chunk) * sizeof(float));
  if (!all || !part) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory for %lld x %lld scores", (long long)Q,
                      (long long)N);
    goto done;
  }
  st = ag_mkdir_p(dir);
  if (!st) st = check_manifest(dir, q, N, chunk);
  if (st) goto done;
  ag_progress *bar = progress ? ag_progress_begin("influence scores", N, "examples") : NULL;
  for (int64_t first = 0; first < N && !st; first += chunk) {
    int64_t len = N - first < chunk ? N - first : chunk;
    char path[4096];
    snprintf(path, sizeof path, "%s/chunk-%06lld.f32", dir, (long long)(first / chunk));
    if (!read_chunk(path, Q, len, all, N, first)) {
      st = score_range(q, m, weights, train, first, len, batch_size, part, bar, first);
      if (!st) st = ag_atomic_write(path, part, (size_t)(Q * len) * sizeof(float));
      if (st) break;
      for (int64_t k = 0; k < Q; k++)
        memcpy(all + k * N + first, part + k * len, (size_t)len * sizeof(float));
    }
    ag_progress_update(bar, first + len);
  }
  ag_progress_end(bar);
done:
  free(part);
  free(weights);
  if (st) {
    free(all);
    return st;
  }
  *scores = all;
  return AG_OK;
}
