/* Queries: v_q = (Ĝ + λI)⁻¹ ∇θ f_q per tracked layer, with Ĝ's layer block
 * (Q_S ⊗ Q_A) diag(Λ) (Q_S ⊗ Q_A)ᵀ: rotate into the eigenbasis, divide by
 * Λ + λ, rotate back. */
#include "learn/influence/influence_internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Eigenvalue + damping below this is treated as this (λ = 0 allowed). */
#define MIN_DENOMINATOR 1e-30

void ag_influence_queries_destroy(ag_influence_queries *q) {
  if (!q) return;
  for (int i = 0; i < q->layer_count; i++) {
    free(q->layers[i].name);
    free(q->layers[i].v);
  }
  free(q->layers);
  free(q);
}

int64_t ag_influence_query_count(const ag_influence_queries *q) { return q ? q->count : 0; }

typedef struct query_ctx {
  ag_influence_queries *q;
  const ag_tensor **weights;
  int64_t first; /* query index of example 0 of the data */
} query_ctx;

static ag_status query_event(void *user, const infl_batch *b, const ag_layer_event *ev) {
  query_ctx *c = user;
  int i = infl_find_weight(c->weights, c->q->layer_count, ev->weight);
  if (i < 0) return AG_OK;
  infl_qlayer *l = &c->q->layers[i];
  int64_t rpe;
  ag_status st = infl_event_rows(ev, b->n, &rpe);
  if (st) return st;
  int64_t P = l->out * l->cols;
  infl_event_grads(ev, b->n, rpe, l->cols, l->has_bias, l->v + (b->idx[0] - c->first) * P, P);
  return AG_OK;
}

/* v (out, cols) = Q_S ((Q_Sᵀ g Q_A) / (Λ + λ)) Q_Aᵀ in double, in place. */
static void precondition_one(const infl_layer *l, float *v, double *g, double *t) {
  int64_t out = l->out, cols = l->cols, P = out * cols;
  for (int64_t j = 0; j < P; j++) g[j] = v[j];
  /* t = Q_Sᵀ g (out, cols); g = t Q_A */
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)cols, (int)out, 1.0, l->qs,
              (int)out, g, (int)cols, 0.0, t, (int)cols);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)cols, (int)cols, 1.0, t,
              (int)cols, l->qa, (int)cols, 0.0, g, (int)cols);
  for (int64_t j = 0; j < P; j++) {
    double den = l->lambda[j] + l->damping;
    g[j] /= den > MIN_DENOMINATOR ? den : MIN_DENOMINATOR;
  }
  /* t = Q_S g; g = t Q_Aᵀ */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)cols, (int)out, 1.0, l->qs,
              (int)out, g, (int)cols, 0.0, t, (int)cols);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)out, (int)cols, (int)cols, 1.0, t,
              (int)cols, l->qa, (int)cols, 0.0, g, (int)cols);
  for (int64_t j = 0; j < P; j++) v[j] = (float)g[j];
}

ag_status ag_influence_precondition(const ag_influence_factors *f, const ag_influence_model *m,
                                    const ag_influence_data *queries, ag_influence_queries **out) {
  *out = NULL;
  if (!f || f->stage != INFL_STAGE_DONE)
    return ag_error_set(AG_ERR_INVALID, "influence: the factors are not finished");
  ag_status st = infl_check_model(m);
  if (st) return st;
  if (!queries || queries->count <= 0) return ag_error_set(AG_ERR_INVALID, "influence: no queries");
  if (m->loss != f->loss || m->outputs != f->outputs)
    return ag_error_set(AG_ERR_INVALID,
                        "influence: the factors are for a model with %lld outputs, not %lld",
                        (long long)f->outputs, (long long)m->outputs);
  st = infl_check_fingerprint(m, "factors", f->fingerprint);
  if (st) return st;
  ag_influence_queries *q = calloc(1, sizeof *q);
  const ag_tensor **weights = calloc((size_t)f->count, sizeof *weights);
  if (q) q->layers = calloc((size_t)f->count, sizeof *q->layers);
  if (!q || !weights || !q->layers) {
    st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
    goto fail;
  }
  q->count = queries->count;
  q->fingerprint = f->fingerprint;
  q->loss = f->loss;
  q->outputs = f->outputs;
  for (int i = 0; i < f->count; i++) {
    const infl_layer *l = &f->layers[i];
    infl_qlayer *ql = &q->layers[i];
    q->layer_count = i + 1;
    const ag_tensor *bias;
    st = infl_resolve(m->params, "factors", l->name, l->kind, l->in, l->out, l->has_bias,
                      &weights[i], &bias);
    if (st) goto fail;
    ql->name = malloc(strlen(l->name) + 1);
    ql->v = calloc((size_t)(q->count * l->out * l->cols), sizeof(float));
    if (!ql->name || !ql->v) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory for %lld queries",
                        (long long)q->count);
      goto fail;
    }
    strcpy(ql->name, l->name);
    ql->kind = l->kind;
    ql->in = l->in;
    ql->out = l->out;
    ql->cols = l->cols;
    ql->has_bias = l->has_bias;
  }
  query_ctx c = {q, weights, 0};
  infl_pass p = {
      m,  queries, 0, queries->count, f->batch_size, INFL_SEED_QUERY, 0, query_event, NULL,
      &c, NULL,    0};
  st = infl_run(&p);
  if (st) goto fail;
  int64_t max_p = 0;
  for (int i = 0; i < f->count; i++)
    if (f->layers[i].out * f->layers[i].cols > max_p) max_p = f->layers[i].out * f->layers[i].cols;
  for (int i = 0; i < f->count; i++) {
    const infl_layer *l = &f->layers[i];
    int64_t P = l->out * l->cols;
    int err = 0;
#pragma omp parallel reduction(| : err)
    {
      double *g = malloc((size_t)max_p * sizeof(double)),
             *t = malloc((size_t)max_p * sizeof(double));
      if (!g || !t) err = 1;
#pragma omp for schedule(dynamic, 1)
      for (int64_t k = 0; k < q->count; k++)
        if (g && t) precondition_one(l, q->layers[i].v + k * P, g, t);
      free(g);
      free(t);
    }
    if (err) {
      st = ag_error_set(AG_ERR_NOMEM, "influence: out of memory");
      goto fail;
    }
  }
  free(weights);
  *out = q;
  return AG_OK;
fail:
  free(weights);
  ag_influence_queries_destroy(q);
  return st;
}

ag_status ag_influence_query_vector(const ag_influence_queries *q, int64_t query,
                                    const ag_params *params, float *out) {
  if (!q || query < 0 || query >= q->count)
    return ag_error_set(AG_ERR_INVALID, "influence: no query %lld (there are %lld)",
                        (long long)query, (long long)(q ? q->count : 0));
  memset(out, 0, (size_t)params->total * sizeof(float));
  for (int i = 0; i < q->layer_count; i++) {
    const infl_qlayer *l = &q->layers[i];
    const ag_tensor *w, *b;
    ag_status st =
        infl_resolve(params, "queries", l->name, l->kind, l->in, l->out, l->has_bias, &w, &b);
    if (st) return st;
    const float *v = l->v + query * l->out * l->cols; // (out, cols)
    float *dw = out + ag_params_offset(params, w);    // (out, in)
    for (int64_t o = 0; o < l->out; o++)
      memcpy(dw + o * l->in, v + o * l->cols, (size_t)l->in * sizeof(float));
    if (b) {
      float *db = out + ag_params_offset(params, b);
      for (int64_t o = 0; o < l->out; o++) db[o] = v[o * l->cols + l->in];
    }
  }
  return AG_OK;
}
