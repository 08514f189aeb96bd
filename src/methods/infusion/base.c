/* Infusion's clean runs: opening a run at its last epoch, its EK-FAC
 * factors (fitted once, cached in the run folder), the target queries and
 * the scores of the training set against them. */
#include "methods/infusion/internal.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

ag_infusion_config ag_infusion_defaults(void) {
  ag_infusion_config c = {0};
  c.method = AG_INFUSION_METHOD_INFUSION;
  c.select = AG_INFUSION_SELECT_TOP;
  c.k = 100;
  c.copies = 1;
  c.perturb = ag_infusion_perturb_defaults();
  c.damping = 1e-8; /* the seed's code: "effectively zero" */
  c.fit_limit = 0;
  c.fit_batch = 64;
  c.score_chunk = 5000;
  c.seed = 1;
  c.progress = true;
  return c;
}

/* Paths longer than the buffer are an error rather than a truncated name. */
ag_status infusion_path_join(char *buf, size_t size, const char *dir, const char *name) {
  int n = snprintf(buf, size, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= size)
    return ag_error_set(AG_ERR_INVALID, "path too long: %s/%s", dir, name);
  return AG_OK;
}

/* ---- opening a clean run ------------------------------------------------------------ */

/* The highest epoch NNN with a readable checkpoint folder epoch-NNN. */
static int last_epoch(const char *run_dir) {
  DIR *d = opendir(run_dir);
  if (!d) return -1;
  int best = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    const char *name = e->d_name;
    if (strncmp(name, "epoch-", 6) || !name[6] || strlen(name + 6) > 6) continue;
    bool digits = true;
    for (const char *c = name + 6; *c; c++) digits = digits && *c >= '0' && *c <= '9';
    int epoch = digits ? atoi(name + 6) : 0;
    if (epoch <= best) continue;
    char path[AG_INFUSION_PATH_MAX];
    ag_classify_checkpoint info;
    if (!infusion_path_join(path, sizeof path, run_dir, name) &&
        ag_classify_checkpoint_read(path, &info) == AG_OK && info.epoch == epoch)
      best = epoch;
  }
  closedir(d);
  ag_error_clear();
  return best;
}

static ag_status check_data(const char *run_dir, const ag_classify_checkpoint *info,
                            const ag_image_dataset *d, const char *which) {
  if (d->channels != info->channels || d->height != info->height || d->width != info->width ||
      d->num_classes != info->num_classes)
    return ag_error_set(AG_ERR_SHAPE,
                        "%s was trained on (%d, %d, %d) images in %d classes; the %s set holds "
                        "(%d, %d, %d) in %d",
                        run_dir, info->channels, info->height, info->width, info->num_classes,
                        which, d->channels, d->height, d->width, d->num_classes);
  if (d->name[0] && info->config.data[0] && strcmp(d->name, info->config.data))
    return ag_error_set(AG_ERR_INVALID, "%s was trained on %s, not on the %s set given (%s)",
                        run_dir, info->config.data, which, d->name);
  return AG_OK;
}

ag_status ag_infusion_base_open(const char *run_dir, ag_image_dataset *train,
                                const ag_image_dataset *test, ag_infusion_base **out) {
  *out = NULL;
  struct stat sb;
  if (!run_dir || stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return ag_error_set(AG_ERR_NOT_FOUND,
                        "run folder %s does not exist (train one with "
                        "`agora vision train --out DIR`)",
                        run_dir ? run_dir : "(null)");
  int epoch = last_epoch(run_dir);
  if (epoch < 2)
    return ag_error_set(AG_ERR_INVALID,
                        "%s holds %s: Infusion retrains the last epoch from the one before, so "
                        "the run needs at least 2 epochs",
                        run_dir, epoch <= 0 ? "no complete checkpoint" : "only epoch 1");
  ag_infusion_base *b = calloc(1, sizeof *b);
  if (!b) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_status st = AG_OK;
  if (snprintf(b->dir, sizeof b->dir, "%s", run_dir) >= (int)sizeof b->dir)
    st = ag_error_set(AG_ERR_INVALID, "path too long: %s", run_dir);
  char path[AG_INFUSION_PATH_MAX];
  ag_classify_checkpoint before;
  if (!st) {
    ag_classify_checkpoint_path(run_dir, epoch - 1, path, sizeof path);
    st = ag_classify_checkpoint_read(path, &before); /* the retrain starts here */
  }
  if (!st) {
    ag_classify_checkpoint_path(run_dir, epoch, path, sizeof path);
    st = ag_classify_checkpoint_read(path, &b->info);
  }
  if (!st) st = check_data(run_dir, &b->info, train, "training");
  if (!st) st = check_data(run_dir, &b->info, test, "test");
  if (!st) st = ag_classify_checkpoint_load_model(path, &b->info, &b->model);
  if (st) {
    ag_infusion_base_close(b);
    return st;
  }
  b->epoch = epoch;
  b->train = train;
  b->test = test;
  int64_t limit = b->info.config.limit;
  b->examples = limit > 0 && limit < train->count ? limit : train->count;
  *out = b;
  return AG_OK;
}

void ag_infusion_base_close(ag_infusion_base *b) {
  if (!b) return;
  ag_vision_model_destroy(b->model);
  free(b);
}

/* The influence engine's view of the base model and its training examples. */
void infusion_influence_model(const ag_infusion_base *b, ag_influence_model *m) {
  ag_influence_vision_model(b->model, m);
  m->outputs = b->info.num_classes;
}

/* ---- factors, queries, scores ------------------------------------------------------- */

static ag_status default_factors_path(const ag_infusion_base *b, const ag_infusion_config *cfg,
                                      char *buf, size_t size) {
  char damping[32], limit[32] = "";
  if (cfg->damping < 0)
    snprintf(damping, sizeof damping, "default");
  else
    snprintf(damping, sizeof damping, "%g", cfg->damping);
  if (cfg->fit_limit > 0 && cfg->fit_limit < b->examples)
    snprintf(limit, sizeof limit, "-l%lld", (long long)cfg->fit_limit);
  int n = snprintf(buf, size, "%s/infusion/factors-e%03d-d%s%s.safetensors", b->dir, b->epoch,
                   damping, limit);
  if (n < 0 || (size_t)n >= size) return ag_error_set(AG_ERR_INVALID, "path too long: %s", b->dir);
  return AG_OK;
}

/* mkdir -p of the folder holding `path`. */
static ag_status make_parent(const char *path) {
  char dir[AG_INFUSION_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return AG_OK;
  *slash = '\0';
  return ag_mkdir_p(dir);
}

static ag_status check_damping(const ag_influence_factors *f, const ag_infusion_config *cfg,
                               const char *path) {
  if (cfg->damping < 0) return AG_OK; /* the engine's default: whatever it chose */
  for (int i = 0; i < ag_influence_layer_count(f); i++) {
    ag_influence_layer_info li;
    ag_status st = ag_influence_layer(f, i, &li);
    if (st) return st;
    if (fabs(li.damping - cfg->damping) > 1e-6 * fabs(cfg->damping) + 1e-30)
      return ag_error_set(AG_ERR_INVALID,
                          "%s was fitted with damping %g (layer %s), not %g: pass another "
                          "--factors path to fit new factors",
                          path, li.damping, li.name, cfg->damping);
  }
  return AG_OK;
}

ag_status ag_infusion_factors(const ag_infusion_base *b, const char *path,
                              const ag_infusion_config *cfg, ag_influence_factors **out) {
  *out = NULL;
  char def[AG_INFUSION_PATH_MAX];
  if (!path) {
    ag_status st = default_factors_path(b, cfg, def, sizeof def);
    if (st) return st;
    path = def;
  }
  ag_influence_model m;
  infusion_influence_model(b, &m);
  ag_status st;
  if (ag_file_exists(path)) {
    st = ag_influence_factors_load(path, &m, out);
    if (st) return ag_error_wrap(st, "loading factors %s", path);
    st = check_damping(*out, cfg, path);
    if (st) {
      ag_influence_factors_destroy(*out);
      *out = NULL;
    }
    return st;
  }
  ag_image_dataset view = *b->train;
  view.count = b->examples;
  ag_influence_data d;
  ag_influence_vision_data(&view, &d);
  ag_influence_config ic = ag_influence_defaults();
  ic.damping = cfg->damping;
  ic.batch_size = cfg->fit_batch;
  ic.limit = cfg->fit_limit > 0 && cfg->fit_limit < b->examples ? cfg->fit_limit : 0;
  ic.seed = cfg->seed;
  ic.progress = cfg->progress;
  double start = ag_time_seconds();
  st = ag_influence_fit(&m, &d, &ic, out);
  if (st) return ag_error_wrap(st, "fitting EK-FAC factors on %s", b->dir);
  ag_info("infusion: fitted EK-FAC factors of %s (epoch %d) in %.1f s", b->dir, b->epoch,
          ag_time_seconds() - start);
  st = make_parent(path);
  if (!st) st = ag_influence_factors_save(*out, path);
  ag_influence_factors_destroy(*out);
  *out = NULL;
  if (st) return ag_error_wrap(st, "saving factors to %s", path);
  /* Use what was saved, so that this run and later ones precondition with
   * the same numbers (cached scores are keyed by the queries' values). */
  st = ag_influence_factors_load(path, &m, out);
  if (st) return ag_error_wrap(st, "loading factors %s", path);
  return AG_OK;
}

ag_status ag_infusion_targets_check(const ag_infusion_base *b, const ag_infusion_target *targets,
                                    int64_t count) {
  for (int64_t i = 0; i < count; i++) {
    if (targets[i].probe < 0 || targets[i].probe >= b->test->count)
      return ag_error_set(AG_ERR_INVALID, "probe %lld is not a test image index (0 to %lld)",
                          (long long)targets[i].probe, (long long)b->test->count - 1);
    if (targets[i].target < 0 || targets[i].target >= b->info.num_classes)
      return ag_error_set(AG_ERR_INVALID, "target class %d is not a class of %s (0 to %d)",
                          targets[i].target, b->dir, b->info.num_classes - 1);
  }
  return AG_OK;
}

ag_status ag_infusion_queries(const ag_infusion_base *b, const ag_influence_factors *f,
                              const ag_infusion_target *targets, int64_t count,
                              ag_influence_queries **out) {
  *out = NULL;
  ag_status st = ag_infusion_targets_check(b, targets, count);
  if (st) return st;
  const ag_image_dataset *test = b->test;
  ag_image_dataset *probes;
  st = ag_image_dataset_create(count, test->channels, test->height, test->width, test->num_classes,
                               &probes);
  if (st) return st;
  snprintf(probes->name, sizeof probes->name, "%s", test->name);
  int64_t size = ag_image_dataset_example_size(test);
  for (int64_t i = 0; i < count; i++) {
    memcpy(probes->images + i * size, test->images + targets[i].probe * size,
           (size_t)size * sizeof(float));
    probes->labels[i] = targets[i].target; /* f = log p(target | probe) */
  }
  ag_influence_model m;
  infusion_influence_model(b, &m);
  ag_influence_data d;
  ag_influence_vision_data(probes, &d);
  st = ag_influence_precondition(f, &m, &d, out);
  ag_image_dataset_destroy(probes);
  if (st) return ag_error_wrap(st, "preconditioning the target gradients");
  return AG_OK;
}

ag_status ag_infusion_scores(const ag_infusion_base *b, const ag_influence_queries *q,
                             const char *dir, const ag_infusion_config *cfg, float **scores) {
  *scores = NULL;
  ag_influence_model m;
  infusion_influence_model(b, &m);
  ag_image_dataset view = *b->train;
  view.count = b->examples;
  ag_influence_data d;
  ag_influence_vision_data(&view, &d);
  double start = ag_time_seconds();
  ag_status st = ag_mkdir_p(dir);
  if (!st)
    st = ag_influence_score_dir(q, &m, &d, dir, cfg->score_chunk, cfg->fit_batch, cfg->progress,
                                scores);
  if (st) return ag_error_wrap(st, "scoring the training set");
  ag_info("infusion: scored %lld training examples against %lld queries in %.1f s",
          (long long)b->examples, (long long)ag_influence_query_count(q),
          ag_time_seconds() - start);
  return AG_OK;
}
