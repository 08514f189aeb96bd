/* Infusion's edits: select training images by predicted influence and
 * perturb them (or add noise, or write probe copies over them). */
#include "methods/infusion/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- crafting an edit --------------------------------------------------------------- */

void ag_infusion_edit_free(ag_infusion_edit *e) {
  if (!e) return;
  free(e->index);
  free(e->images);
  free(e->labels);
  memset(e, 0, sizeof *e);
}

static ag_status edit_alloc(ag_infusion_edit *e, int64_t count, int64_t size) {
  memset(e, 0, sizeof *e);
  e->count = count;
  e->index = malloc((size_t)count * sizeof *e->index);
  e->images = malloc((size_t)(count * size) * sizeof *e->images);
  e->labels = malloc((size_t)count * sizeof *e->labels);
  if (!e->index || !e->images || !e->labels) {
    ag_infusion_edit_free(e);
    return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory for %lld images", (long long)count);
  }
  return AG_OK;
}

/* A seed per pair, so the random pieces of different pairs differ. */
static uint64_t pair_seed(uint64_t seed, ag_infusion_target t, uint64_t salt) {
  uint64_t h = seed ^ 0x9e3779b97f4a7c15ULL * (salt + 1);
  h ^= (uint64_t)t.probe * 0xbf58476d1ce4e5b9ULL;
  h ^= (uint64_t)(t.target + 1) * 0x94d049bb133111ebULL;
  return h;
}

static void edit_linf(ag_infusion_edit *e, const ag_image_dataset *train, int64_t size) {
  double sum = 0, max = 0;
  for (int64_t i = 0; i < e->count; i++) {
    const float *old = train->images + e->index[i] * size, *now = e->images + i * size;
    double m = 0;
    for (int64_t j = 0; j < size; j++) {
      double d = fabs((double)now[j] - (double)old[j]);
      if (d > m) m = d;
    }
    sum += m;
    if (m > max) max = m;
  }
  e->linf_max = max;
  e->linf_mean = e->count ? sum / (double)e->count : 0;
}

/* Σ Δf of the edit's images for query `query` (the engine's score of the
 * edited examples, as they would be scored in the training set). */
static ag_status predicted_sum(const ag_infusion_base *b, const ag_influence_queries *q,
                               int64_t query, const ag_infusion_edit *e, double *sum) {
  ag_image_dataset *d;
  const ag_image_dataset *train = b->train;
  ag_status st = ag_image_dataset_create(e->count, train->channels, train->height, train->width,
                                         train->num_classes, &d);
  if (st) return st;
  snprintf(d->name, sizeof d->name, "%s", train->name);
  int64_t size = ag_image_dataset_example_size(train);
  memcpy(d->images, e->images, (size_t)(e->count * size) * sizeof(float));
  memcpy(d->labels, e->labels, (size_t)e->count * sizeof(int32_t));
  int64_t nq = ag_influence_query_count(q);
  float *scores = malloc((size_t)(nq * e->count) * sizeof *scores);
  ag_influence_model m;
  infusion_influence_model(b, &m);
  ag_influence_data data;
  ag_influence_vision_data(d, &data);
  st = scores ? ag_influence_score(q, &m, &data, 0, e->count, 64, scores)
              : ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st) {
    double s = 0;
    for (int64_t i = 0; i < e->count; i++) s += scores[query * e->count + i];
    *sum = s;
  }
  free(scores);
  ag_image_dataset_destroy(d);
  return st;
}

/* v̂ = v / ‖v‖ of query `query`, laid out like the parameters. */
static ag_status unit_direction(const ag_infusion_base *b, const ag_influence_queries *q,
                                int64_t query, float **out) {
  ag_params *p = ag_vision_model_params(b->model);
  float *v = malloc((size_t)p->total * sizeof *v);
  if (!v) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_status st = ag_influence_query_vector(q, query, p, v);
  double norm = 0;
  for (int64_t i = 0; !st && i < p->total; i++) norm += (double)v[i] * v[i];
  norm = sqrt(norm);
  if (!st && !(norm > 0 && isfinite(norm)))
    st = ag_error_set(AG_ERR_INVALID,
                      "infusion: the preconditioned target gradient has norm %g: nothing to "
                      "follow",
                      norm);
  if (st) {
    free(v);
    return st;
  }
  for (int64_t i = 0; i < p->total; i++) v[i] = (float)(v[i] / norm);
  *out = v;
  return AG_OK;
}

ag_status ag_infusion_craft(const ag_infusion_base *b, const ag_influence_queries *q, int64_t query,
                            const float *scores, ag_infusion_target target,
                            const ag_infusion_config *cfg, ag_infusion_edit *out) {
  memset(out, 0, sizeof *out);
  ag_status st = ag_infusion_targets_check(b, &target, 1);
  if (st) return st;
  if (cfg->k < 1 || cfg->k > b->examples)
    return ag_error_set(AG_ERR_INVALID, "k = %lld: choose 1 to %lld (the run's training examples)",
                        (long long)cfg->k, (long long)b->examples);
  if (cfg->method == AG_INFUSION_METHOD_PROBE_COPIES && (cfg->copies < 1 || cfg->copies > cfg->k))
    return ag_error_set(AG_ERR_INVALID, "copies = %lld: choose 1 to k = %lld",
                        (long long)cfg->copies, (long long)cfg->k);
  if (cfg->method == AG_INFUSION_METHOD_INFUSION && !q)
    return ag_error_set(AG_ERR_INVALID, "infusion: crafting needs the preconditioned queries");
  int64_t *chosen = malloc((size_t)cfg->k * sizeof *chosen);
  if (!chosen) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  st = ag_infusion_select(scores, b->examples, cfg->k, cfg->select, pair_seed(cfg->seed, target, 1),
                          chosen);
  int64_t count = cfg->method == AG_INFUSION_METHOD_PROBE_COPIES ? cfg->copies : cfg->k;
  int64_t size = ag_image_dataset_example_size(b->train);
  if (!st) st = edit_alloc(out, count, size);
  if (st) {
    free(chosen);
    return st;
  }
  const ag_image_dataset *train = b->train;
  for (int64_t i = 0; i < count; i++) {
    int64_t j = chosen[i];
    out->index[i] = j;
    if (cfg->method == AG_INFUSION_METHOD_PROBE_COPIES) {
      memcpy(out->images + i * size, b->test->images + target.probe * size,
             (size_t)size * sizeof(float));
      out->labels[i] = target.target;
    } else {
      memcpy(out->images + i * size, train->images + j * size, (size_t)size * sizeof(float));
      out->labels[i] = train->labels[j];
    }
  }
  free(chosen);
  int64_t shape[4] = {count, train->channels, train->height, train->width};
  if (cfg->method == AG_INFUSION_METHOD_NOISE) {
    ag_infusion_noise(&cfg->perturb, pair_seed(cfg->seed, target, 2), shape, out->images);
  } else if (cfg->method == AG_INFUSION_METHOD_INFUSION) {
    float *v = NULL;
    st = predicted_sum(b, q, query, out, &out->predicted_before);
    if (!st) st = unit_direction(b, q, query, &v);
    ag_infusion_model m;
    ag_infusion_vision_model(b->model, &m);
    if (!st) st = ag_infusion_perturb(&m, v, &cfg->perturb, out->labels, shape, out->images);
    if (!st) st = predicted_sum(b, q, query, out, &out->predicted_after);
    free(v);
  }
  if (st) {
    ag_infusion_edit_free(out);
    return st;
  }
  edit_linf(out, train, size);
  return AG_OK;
}
