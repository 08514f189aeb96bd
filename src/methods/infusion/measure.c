/* Infusion's small pieces: names, the selection of training examples by
 * score, and what a model says about a probe image. */
#include "agora/infusion.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ------------------------------------------------------------------------ */

static const char *const selection_names[] = {"top", "bottom", "random"};
static const char *const method_names[] = {"infusion", "noise", "probe-copies"};

const char *ag_infusion_selection_name(ag_infusion_selection s) {
  return (unsigned)s < 3 ? selection_names[s] : "?";
}

ag_status ag_infusion_selection_parse(const char *name, ag_infusion_selection *out) {
  for (int i = 0; i < 3; i++)
    if (name && !strcmp(name, selection_names[i])) {
      *out = (ag_infusion_selection)i;
      return AG_OK;
    }
  return ag_error_set(AG_ERR_INVALID, "unknown selection '%s' (top|bottom|random)",
                      name ? name : "");
}

const char *ag_infusion_method_name(ag_infusion_method m) {
  return (unsigned)m < 3 ? method_names[m] : "?";
}

ag_status ag_infusion_method_parse(const char *name, ag_infusion_method *out) {
  for (int i = 0; i < 3; i++)
    if (name && !strcmp(name, method_names[i])) {
      *out = (ag_infusion_method)i;
      return AG_OK;
    }
  return ag_error_set(AG_ERR_INVALID, "unknown method '%s' (infusion|noise|probe-copies)",
                      name ? name : "");
}

/* ---- selection -------------------------------------------------------------------- */

/* qsort has no context argument: the comparison reads the scores through
 * index pairs prepared beforehand. */
typedef struct ranked {
  float score;
  int64_t index;
} ranked;

static int by_score_descending(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

ag_status ag_infusion_select(const float *scores, int64_t count, int64_t k,
                             ag_infusion_selection how, uint64_t seed, int64_t *out) {
  if (count <= 0 || k < 1 || k > count)
    return ag_error_set(AG_ERR_INVALID, "infusion: cannot select %lld of %lld examples",
                        (long long)k, (long long)count);
  if (how == AG_INFUSION_SELECT_RANDOM) {
    int64_t *order = malloc((size_t)count * sizeof *order);
    if (!order) return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory");
    for (int64_t i = 0; i < count; i++) order[i] = i;
    ag_rng rng;
    ag_rng_seed(&rng, seed);
    ag_rng_shuffle_i64(&rng, order, count);
    memcpy(out, order, (size_t)k * sizeof *out);
    free(order);
    return AG_OK;
  }
  if (!scores) return ag_error_set(AG_ERR_INVALID, "infusion: selecting by score needs scores");
  ranked *r = malloc((size_t)count * sizeof *r);
  if (!r) return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory");
  for (int64_t i = 0; i < count; i++) {
    float s = how == AG_INFUSION_SELECT_BOTTOM ? -scores[i] : scores[i];
    r[i] = (ranked){isnan(s) ? -INFINITY : s, i}; /* a NaN score is never chosen first */
  }
  qsort(r, (size_t)count, sizeof *r, by_score_descending);
  for (int64_t i = 0; i < k; i++) out[i] = r[i].index;
  free(r);
  return AG_OK;
}

/* ---- probe statistics ------------------------------------------------------------- */

ag_status ag_infusion_probe(const ag_vision_model *m, const ag_image_dataset *d, int64_t index,
                            int target, ag_infusion_probe_stats *out) {
  memset(out, 0, sizeof *out);
  if (index < 0 || index >= d->count)
    return ag_error_set(AG_ERR_INVALID, "infusion: probe %lld is outside the %lld test images",
                        (long long)index, (long long)d->count);
  if (target < 0 || target >= d->num_classes)
    return ag_error_set(AG_ERR_INVALID, "infusion: target class %d is not in [0, %d)", target,
                        d->num_classes);
  ag_tape *t = ag_tape_create();
  if (!t) return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory");
  ag_tape_set_grad_enabled(t, false);
  ag_tape_set_training(t, false);
  int64_t size = ag_image_dataset_example_size(d);
  int64_t shape[4] = {1, d->channels, d->height, d->width};
  ag_tensor *x = ag_tape_wrap(t, d->images + index * size, 4, shape); // (1, C, H, W)
  ag_tensor *logits = ag_vision_model_forward(t, m, x);               // (1, classes)
  ag_status st = AG_OK;
  if (!logits)
    st = ag_error_set(ag_tape_status(t), "infusion: probe: %s", ag_tape_error(t));
  else if (logits->shape[1] != d->num_classes)
    st = ag_error_set(AG_ERR_SHAPE, "infusion: the model has %lld classes, the data %d",
                      (long long)logits->shape[1], d->num_classes);
  if (!st) {
    int64_t classes = logits->shape[1];
    const float *z = logits->data;
    /* log-odds = z_t − log Σ_{j≠t} exp z_j, with the max taken out of each
     * sum so that neither p nor 1 − p underflows first. */
    double zmax = -INFINITY, others_max = -INFINITY;
    int best = 0;
    for (int64_t j = 0; j < classes; j++) {
      if (z[j] > zmax) zmax = z[j];
      if (j != target && z[j] > others_max) others_max = z[j];
      if (z[j] > z[best]) best = (int)j;
    }
    double all = 0, others = 0;
    for (int64_t j = 0; j < classes; j++) {
      all += exp((double)z[j] - zmax);
      if (j != target) others += exp((double)z[j] - others_max);
    }
    out->p = exp((double)z[target] - zmax) / all;
    /* others >= 1 whenever there is another class (its max term is exp 0) */
    out->log_odds = others > 0 ? (double)z[target] - (others_max + log(others)) : INFINITY;
    out->predicted = best;
    out->top1 = best == target;
  }
  ag_tape_destroy(t);
  return st;
}
