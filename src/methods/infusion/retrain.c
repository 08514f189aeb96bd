/* Infusion's retraining protocol: epoch E of a run again from its epoch
 * E − 1 checkpoint, on the edited (or clean) training set, same data order. */
#include "methods/infusion/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARKER_FILE   "infusion-retrain.json"
#define MARKER_FORMAT "agora.infusion.retrain.v1"

/* ---- retraining ----------------------------------------------------------------------- */

/* Fingerprint of the epoch E − 1 weights: what a retrain starts from. */
static ag_status start_fingerprint(const ag_infusion_base *b, uint64_t *out) {
  char path[AG_INFUSION_PATH_MAX];
  ag_classify_checkpoint_path(b->dir, b->epoch - 1, path, sizeof path);
  ag_classify_checkpoint info;
  ag_vision_model *m = NULL;
  ag_status st = ag_classify_checkpoint_read(path, &info);
  if (!st) st = ag_classify_checkpoint_load_model(path, &info, &m);
  if (!st) *out = ag_influence_fingerprint(ag_vision_model_params(m));
  ag_vision_model_destroy(m);
  return st;
}

static json_t *marker_json(const ag_infusion_base *b, uint64_t fingerprint, bool clean) {
  char hex[32];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fingerprint);
  return json_pack("{s:s, s:s, s:i, s:s, s:b}", "format", MARKER_FORMAT, "from_run", b->dir,
                   "from_epoch", b->epoch - 1, "start_fingerprint", hex, "clean", clean);
}

/* Whether work_dir holds a clean retrain of b that can be reused. */
static bool reusable(const ag_infusion_base *b, const char *work_dir, uint64_t fingerprint) {
  char path[AG_INFUSION_PATH_MAX];
  if (infusion_path_join(path, sizeof path, work_dir, MARKER_FILE) || !ag_file_exists(path)) {
    ag_error_clear();
    return false;
  }
  json_t *have = NULL, *want = marker_json(b, fingerprint, true);
  bool same = ag_json_load(path, &have) == AG_OK && want && json_equal(have, want);
  json_decref(have);
  json_decref(want);
  ag_classify_checkpoint info;
  ag_classify_checkpoint_path(work_dir, b->epoch, path, sizeof path);
  same = same && ag_classify_checkpoint_read(path, &info) == AG_OK && info.epoch == b->epoch;
  ag_error_clear();
  return same;
}

/* Original pixels and labels of the edited examples, to put back. */
typedef struct saved_examples {
  float *images;
  int32_t *labels;
} saved_examples;

static void apply_edit(ag_image_dataset *train, const ag_infusion_edit *e, saved_examples *s) {
  int64_t size = ag_image_dataset_example_size(train);
  for (int64_t i = 0; i < e->count; i++) {
    float *img = train->images + e->index[i] * size;
    memcpy(s->images + i * size, img, (size_t)size * sizeof(float));
    s->labels[i] = train->labels[e->index[i]];
    memcpy(img, e->images + i * size, (size_t)size * sizeof(float));
    train->labels[e->index[i]] = e->labels[i];
  }
}

/* In reverse, so an index edited twice ends at its original value. */
static void undo_edit(ag_image_dataset *train, const ag_infusion_edit *e, const saved_examples *s) {
  int64_t size = ag_image_dataset_example_size(train);
  for (int64_t i = e->count; i-- > 0;) {
    memcpy(train->images + e->index[i] * size, s->images + i * size, (size_t)size * sizeof(float));
    train->labels[e->index[i]] = s->labels[i];
  }
}

static ag_status load_retrained(const ag_infusion_base *b, const char *work_dir,
                                ag_vision_model **model, double *test_acc) {
  char path[AG_INFUSION_PATH_MAX];
  ag_classify_checkpoint_path(work_dir, b->epoch, path, sizeof path);
  ag_classify_checkpoint info;
  ag_status st = ag_classify_checkpoint_read(path, &info);
  if (!st) st = ag_classify_checkpoint_load_model(path, &info, model);
  if (!st) *test_acc = info.metrics.test_acc;
  return st;
}

ag_status ag_infusion_retrain(const ag_infusion_base *b, const ag_infusion_edit *edit,
                              const char *work_dir, bool reuse, ag_vision_model **model,
                              double *test_acc) {
  *model = NULL;
  *test_acc = 0;
  for (int64_t i = 0; edit && i < edit->count; i++)
    if (edit->index[i] < 0 || edit->index[i] >= b->examples)
      return ag_error_set(AG_ERR_INVALID,
                          "the edit changes training example %lld, but %s trains on the first "
                          "%lld only",
                          (long long)edit->index[i], b->dir, (long long)b->examples);
  uint64_t fingerprint = 0;
  ag_status st = start_fingerprint(b, &fingerprint);
  if (st) return st;
  if (reuse && !edit && reusable(b, work_dir, fingerprint)) {
    ag_info("infusion: reusing the clean retrain in %s", work_dir);
    return load_retrained(b, work_dir, model, test_acc);
  }
  char marker[AG_INFUSION_PATH_MAX];
  st = infusion_path_join(marker, sizeof marker, work_dir, MARKER_FILE);
  if (!st) st = ag_mkdir_p(work_dir);
  if (st) return st;
  if (remove(marker) != 0 && errno != ENOENT)
    return ag_error_set(AG_ERR_IO, "cannot remove %s", marker);

  int64_t size = ag_image_dataset_example_size(b->train);
  int64_t n = edit ? edit->count : 0;
  saved_examples saved = {malloc((size_t)(n * size + 1) * sizeof(float)),
                          malloc((size_t)(n + 1) * sizeof(int32_t))};
  if (!saved.images || !saved.labels) {
    free(saved.images);
    free(saved.labels);
    return ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  if (edit) apply_edit(b->train, edit, &saved);
  ag_classify_run run = {.out_dir = work_dir,
                         .from_epoch = b->epoch - 1,
                         .from_dir = b->dir,
                         .log_epochs = !ag_progress_get_quiet()};
  ag_classify_config cfg = b->info.config;
  cfg.epochs = b->epoch; /* a constant schedule may have been extended; retrain up to E */
  ag_classify_metrics last;
  double start = ag_time_seconds();
  st = ag_classify_train(&cfg, &run, b->train, b->test, &last);
  if (edit) undo_edit(b->train, edit, &saved);
  free(saved.images);
  free(saved.labels);
  if (st) return ag_error_wrap(st, "retraining epoch %d of %s", b->epoch, b->dir);
  ag_info("infusion: retrained epoch %d of %s on the %s set in %.1f s (test accuracy %.4f)",
          b->epoch, b->dir, edit ? "edited" : "clean", ag_time_seconds() - start, last.test_acc);
  st = load_retrained(b, work_dir, model, test_acc);
  if (st) return st;
  json_t *m = marker_json(b, fingerprint, !edit);
  st = m ? ag_json_save(marker, m) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_decref(m);
  if (st) {
    ag_vision_model_destroy(*model);
    *model = NULL;
  }
  return st;
}
