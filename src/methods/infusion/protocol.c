/* Infusion for one probe × target pair: the shared parts (factors,
 * queries, scores, the clean retrain), then craft, retrain, measure. */
#include "methods/infusion/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- one pair end to end ------------------------------------------------------------- */

json_t *ag_infusion_result_json(const ag_infusion_result *r) {
  return json_pack(
      "{s:I, s:i, s:i, s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:b, s:b, "
      "s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
      "probe", (json_int_t)r->pair.probe, "probe_label", r->probe_label, "target", r->pair.target,
      "method", ag_infusion_method_name(r->method), "select", ag_infusion_selection_name(r->select),
      "k", (json_int_t)r->k, "edited", (json_int_t)r->edited, "p_before", r->before.p, "p_after",
      r->after.p, "delta_p", r->delta_p, "log_odds_before", r->before.log_odds, "log_odds_after",
      r->after.log_odds, "delta_log_odds", r->delta_log_odds, "top1_before", r->before.top1,
      "top1_after", r->after.top1, "predicted_class_before", r->before.predicted,
      "predicted_class_after", r->after.predicted, "clean_acc_before", r->clean_acc_before,
      "clean_acc_after", r->clean_acc_after, "linf_max", r->linf_max, "linf_mean", r->linf_mean,
      "predicted_before", r->predicted_before, "predicted_after", r->predicted_after, "seconds",
      r->seconds);
}

/* The craft and retrain runs must see the same training images for an
 * edit made on one to mean the same on the other. */
ag_status infusion_check_transfer(const ag_infusion_base *c, const ag_infusion_base *r) {
  if (c == r) return AG_OK;
  if (c->train->count != r->train->count || c->test->count != r->test->count ||
      c->info.channels != r->info.channels || c->info.height != r->info.height ||
      c->info.width != r->info.width || c->info.num_classes != r->info.num_classes ||
      strcmp(c->info.config.data, r->info.config.data))
    return ag_error_set(AG_ERR_INVALID,
                        "cannot transfer from %s to %s: they were trained on different data (%s "
                        "vs %s)",
                        c->dir, r->dir, c->info.config.data, r->info.config.data);
  if (c->epoch != r->epoch)
    ag_warn("infusion: crafting on epoch %d of %s, retraining epoch %d of %s", c->epoch, c->dir,
            r->epoch, r->dir);
  return AG_OK;
}

/* Where `agora infusion run` keeps its files. */
static ag_status work_path(const ag_infusion_plan *p, const char *name, char *buf, size_t size) {
  char base[AG_INFUSION_PATH_MAX];
  if (p->work_dir)
    snprintf(base, sizeof base, "%s", p->work_dir);
  else if (snprintf(base, sizeof base, "%s/infusion", p->craft->dir) >= (int)sizeof base)
    return ag_error_set(AG_ERR_INVALID, "path too long: %s", p->craft->dir);
  return infusion_path_join(buf, size, base, name);
}

ag_status infusion_clean_retrain_path(const ag_infusion_base *r, char *buf, size_t size) {
  return infusion_path_join(buf, size, r->dir, "infusion/clean-retrain");
}

/* Needs factors and queries: the infusion method, or any scored selection. */
bool infusion_needs_influence(const ag_infusion_config *cfg) {
  return cfg->method == AG_INFUSION_METHOD_INFUSION || cfg->select != AG_INFUSION_SELECT_RANDOM;
}

/* Fills the measurement part of r from the two retrained models. */
static ag_status measure(const ag_infusion_base *r, ag_infusion_target pair,
                         const ag_vision_model *clean, const ag_vision_model *edited,
                         ag_infusion_result *out) {
  ag_status st = ag_infusion_probe(clean, r->test, pair.probe, pair.target, &out->before);
  if (!st) st = ag_infusion_probe(edited, r->test, pair.probe, pair.target, &out->after);
  if (st) return st;
  out->delta_p = out->after.p - out->before.p;
  out->delta_log_odds = out->after.log_odds - out->before.log_odds;
  return AG_OK;
}

/* Crafts with (q, query, scores), retrains into work_dir, measures against
 * the clean retrain: everything of one pair after the shared parts. */
ag_status infusion_run_crafted(const ag_infusion_plan *p, const ag_influence_queries *q,
                               int64_t query, const float *scores, ag_infusion_target pair,
                               const ag_infusion_config *cfg, const ag_vision_model *clean,
                               double clean_acc, const char *work_dir, ag_infusion_result *out) {
  const ag_infusion_base *r = p->retrain ? p->retrain : p->craft;
  memset(out, 0, sizeof *out);
  double start = ag_time_seconds();
  ag_infusion_edit edit;
  ag_status st = ag_infusion_craft(p->craft, q, query, scores, pair, cfg, &edit);
  if (st) return st;
  ag_vision_model *edited = NULL;
  double edited_acc = 0;
  st = ag_infusion_retrain(r, &edit, work_dir, false, &edited, &edited_acc);
  if (!st) st = measure(r, pair, clean, edited, out);
  out->pair = pair;
  out->probe_label = r->test->labels[pair.probe];
  out->method = cfg->method;
  out->select = cfg->select;
  out->k = cfg->k;
  out->edited = edit.count;
  out->clean_acc_before = clean_acc;
  out->clean_acc_after = edited_acc;
  out->linf_max = edit.linf_max;
  out->linf_mean = edit.linf_mean;
  out->predicted_before = edit.predicted_before;
  out->predicted_after = edit.predicted_after;
  out->seconds = ag_time_seconds() - start;
  ag_vision_model_destroy(edited);
  ag_infusion_edit_free(&edit);
  return st;
}

/* The shared parts: factors, queries and scores for `count` pairs, when
 * cfg needs them (else all three stay NULL). */
/* FNV-1a over the bytes of every query vector: names a scores folder after
 * what was scored, so other factors (another damping) never meet old chunks. */
static ag_status queries_hash(const ag_infusion_base *b, const ag_influence_queries *q,
                              uint64_t *out) {
  ag_params *params = ag_vision_model_params(b->model);
  float *v = malloc((size_t)params->total * sizeof *v);
  if (!v) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  uint64_t h = 0xcbf29ce484222325ULL;
  ag_status st = AG_OK;
  for (int64_t i = 0; i < ag_influence_query_count(q) && !st; i++) {
    st = ag_influence_query_vector(q, i, params, v);
    const unsigned char *bytes = (const unsigned char *)v;
    for (size_t j = 0; !st && j < (size_t)params->total * sizeof *v; j++)
      h = (h ^ bytes[j]) * 0x100000001b3ULL;
  }
  free(v);
  *out = h;
  return st;
}

ag_status infusion_prepare_influence(const ag_infusion_plan *p, const ag_infusion_target *pairs,
                                     int64_t count, const ag_infusion_config *cfg,
                                     const char *scores_dir, bool key_by_queries,
                                     ag_influence_queries **q, float **scores) {
  *q = NULL;
  *scores = NULL;
  if (!infusion_needs_influence(cfg)) return AG_OK;
  ag_influence_factors *f = NULL;
  ag_status st = ag_infusion_factors(p->craft, p->factors_path, cfg, &f);
  if (!st) st = ag_infusion_queries(p->craft, f, pairs, count, q);
  ag_influence_factors_destroy(f);
  char dir[AG_INFUSION_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", scores_dir);
  uint64_t hash = 0;
  if (!st && key_by_queries && !(st = queries_hash(p->craft, *q, &hash)) &&
      snprintf(dir, sizeof dir, "%s-%016llx", scores_dir, (unsigned long long)hash) >=
          (int)sizeof dir)
    st = ag_error_set(AG_ERR_INVALID, "path too long: %s", scores_dir);
  if (!st && cfg->select != AG_INFUSION_SELECT_RANDOM)
    st = ag_infusion_scores(p->craft, *q, dir, cfg, scores);
  if (st) {
    ag_influence_queries_destroy(*q);
    *q = NULL;
  }
  return st;
}

ag_status ag_infusion_run_pair(const ag_infusion_plan *p, ag_infusion_target target,
                               const ag_infusion_config *cfg, ag_infusion_result *out) {
  memset(out, 0, sizeof *out);
  const ag_infusion_base *r = p->retrain ? p->retrain : p->craft;
  ag_status st = infusion_check_transfer(p->craft, r);
  if (!st) st = ag_infusion_targets_check(p->craft, &target, 1);
  if (st) return st;
  char scores_dir[AG_INFUSION_PATH_MAX], work_dir[AG_INFUSION_PATH_MAX],
      clean_dir[AG_INFUSION_PATH_MAX], name[128];
  snprintf(name, sizeof name, "scores-p%lld-t%d", (long long)target.probe, target.target);
  st = work_path(p, name, scores_dir, sizeof scores_dir);
  snprintf(name, sizeof name, "retrain-p%lld-t%d-%s", (long long)target.probe, target.target,
           ag_infusion_method_name(cfg->method));
  if (!st) st = work_path(p, name, work_dir, sizeof work_dir);
  if (!st) st = infusion_clean_retrain_path(r, clean_dir, sizeof clean_dir);
  if (st) return st;
  ag_influence_queries *q = NULL;
  float *scores = NULL;
  st = infusion_prepare_influence(p, &target, 1, cfg, scores_dir, true, &q, &scores);
  ag_vision_model *clean = NULL;
  double clean_acc = 0;
  if (!st) st = ag_infusion_retrain(r, NULL, clean_dir, true, &clean, &clean_acc);
  if (!st) st = infusion_run_crafted(p, q, 0, scores, target, cfg, clean, clean_acc, work_dir, out);
  ag_vision_model_destroy(clean);
  ag_influence_queries_destroy(q);
  free(scores);
  return st;
}
