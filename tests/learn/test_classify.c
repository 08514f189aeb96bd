/* The classification loop on a small synthetic dataset: metrics and
 * checkpoints on disk, exact resume (bit-identical weights), restarts from
 * an earlier epoch, evaluation of a checkpoint, and the unhappy paths. */
#include "agora/json.h"
#include "agora/safetensors.h"
#include "agora/vision.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLASSES 10
#define SIDE    8
#define EPOCHS  3

/* Class c lights pixel block c of an 8x8 image, over uniform noise: easy
 * to learn, hard to learn by accident. */
static ag_image_dataset *synthetic(int64_t count, uint64_t seed) {
  ag_image_dataset *d = NULL;
  if (ag_image_dataset_create(count, 1, SIDE, SIDE, CLASSES, &d)) return NULL;
  snprintf(d->name, sizeof d->name, "synthetic");
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int64_t i = 0; i < count; i++) {
    int c = (int)ag_rng_below(&rng, CLASSES);
    d->labels[i] = c;
    float *img = d->images + i * SIDE * SIDE;
    for (int k = 0; k < SIDE * SIDE; k++) img[k] = 0.5f * ag_rng_uniform(&rng);
    for (int k = 0; k < 4; k++) img[c * 6 + k] = 1.0f;
  }
  return d;
}

typedef struct fixture {
  ag_image_dataset *train, *test;
  ag_classify_config cfg;
} fixture;

static fixture setup(void) {
  fixture f;
  f.train = synthetic(test_scaled(320, 80), 1);
  f.test = synthetic(test_scaled(200, 50), 2);
  f.cfg = ag_classify_defaults(AG_VISION_MLP);
  ag_classify_set_optimizer(&f.cfg, AG_OPTIM_SGD);
  snprintf(f.cfg.data, sizeof f.cfg.data, "synthetic");
  f.cfg.epochs = EPOCHS;
  f.cfg.batch_size = 16;
  f.cfg.eval_batch_size = 64;
  f.cfg.lr = 0.05f;
  f.cfg.limit = f.train->count - 7; /* a partial last batch and the --limit path */
  f.cfg.seed = 42;
  return f;
}

static void teardown(fixture *f) {
  ag_image_dataset_destroy(f->train);
  ag_image_dataset_destroy(f->test);
}

static const char *run_dir(const char *name) {
  static char paths[8][600];
  static int next = 0;
  char *p = paths[next++ % 8];
  snprintf(p, 600, "%s/%s", test_tmpdir(), name);
  return p;
}

static ag_status train(const fixture *f, const char *dir, bool resume, int from_epoch,
                       const char *from_dir, ag_classify_metrics *last) {
  ag_classify_run run = {
      .out_dir = dir, .resume = resume, .from_epoch = from_epoch, .from_dir = from_dir};
  return ag_classify_train(&f->cfg, &run, f->train, f->test, last);
}

/* Reads a file into a malloc'd buffer (NULL if absent). */
static char *slurp(const char *dir, const char *name, size_t *bytes) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *data = NULL;
  if (ag_read_file(path, &data, bytes)) return NULL;
  return data;
}

/* Every tensor of two safetensors files is bit-identical. */
static bool same_tensors(const char *dir_a, const char *dir_b, const char *file) {
  char pa[700], pb[700];
  snprintf(pa, sizeof pa, "%s/%s", dir_a, file);
  snprintf(pb, sizeof pb, "%s/%s", dir_b, file);
  ag_safetensors *a = NULL, *b = NULL;
  if (ag_safetensors_open(pa, &a) || ag_safetensors_open(pb, &b)) {
    fprintf(stderr, "open: %s\n", ag_error_message());
    ag_safetensors_close(a);
    return false;
  }
  bool same = a->count == b->count && a->count > 0;
  for (int i = 0; same && i < a->count; i++) {
    const ag_st_entry *e = ag_safetensors_find(b, a->entries[i].name);
    same = e && e->bytes == a->entries[i].bytes && !memcmp(e->data, a->entries[i].data, e->bytes);
    if (!same) fprintf(stderr, "tensor %s differs\n", a->entries[i].name);
  }
  ag_safetensors_close(a);
  ag_safetensors_close(b);
  return same;
}

/* metrics.jsonl lines equal except for wall-clock seconds. */
static bool same_metrics(const char *dir_a, const char *dir_b) {
  char pa[700], pb[700];
  snprintf(pa, sizeof pa, "%s/metrics.jsonl", dir_a);
  snprintf(pb, sizeof pb, "%s/metrics.jsonl", dir_b);
  ag_jsonl_reader *ra = NULL, *rb = NULL;
  if (ag_jsonl_open(pa, &ra) || ag_jsonl_open(pb, &rb)) {
    ag_jsonl_close(ra);
    return false;
  }
  bool same = true;
  int lines = 0;
  for (;;) {
    json_t *a = NULL, *b = NULL;
    if (ag_jsonl_next(ra, &a) || ag_jsonl_next(rb, &b)) same = false;
    if (!a || !b) {
      same = same && !a && !b;
      json_decref(a);
      json_decref(b);
      break;
    }
    json_object_del(a, "seconds");
    json_object_del(b, "seconds");
    if (!json_equal(a, b)) same = false;
    lines++;
    json_decref(a);
    json_decref(b);
  }
  ag_jsonl_close(ra);
  ag_jsonl_close(rb);
  return same && lines == EPOCHS;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[700];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
      remove_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static void epoch_dir(const char *run, int epoch, char *buf, size_t size) {
  ag_classify_checkpoint_path(run, epoch, buf, size);
}

TEST(training_writes_metrics_and_every_epoch_checkpoint) {
  fixture f = setup();
  const char *dir = run_dir("full");
  ag_classify_metrics last;
  CHECK_OK(train(&f, dir, false, 0, NULL, &last));
  CHECK(last.epoch == EPOCHS);
  CHECK_MSG(last.test_acc > 0.8, "the synthetic task is easy: test_acc %g", last.test_acc);
  int64_t batches = (f.cfg.limit + f.cfg.batch_size - 1) / f.cfg.batch_size;
  CHECK(last.steps == EPOCHS * batches);
  for (int e = 1; e <= EPOCHS; e++) {
    char path[700];
    epoch_dir(dir, e, path, sizeof path);
    ag_classify_checkpoint info;
    CHECK_OK(ag_classify_checkpoint_read(path, &info));
    CHECK(info.epoch == e && info.optimizer_step == e * batches);
    CHECK(info.config.model == AG_VISION_MLP && info.config.seed == 42);
    CHECK(info.config.lr == f.cfg.lr && info.config.limit == f.cfg.limit);
    CHECK(info.height == SIDE && info.num_classes == CLASSES);
  }
  /* metrics.jsonl: one object per epoch with the promised fields */
  char path[700];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  ag_jsonl_reader *r = NULL;
  CHECK_OK(ag_jsonl_open(path, &r));
  int lines = 0;
  json_t *v = NULL;
  double first_loss = 0, last_loss = 0;
  while (r && ag_jsonl_next(r, &v) == AG_OK && v) {
    lines++;
    CHECK(json_integer_value(json_object_get(v, "epoch")) == lines);
    const char *keys[] = {"train_loss", "test_acc", "test_loss", "lr", "seconds"};
    for (int k = 0; k < 5; k++)
      CHECK_MSG(json_is_number(json_object_get(v, keys[k])), "%s", keys[k]);
    double loss = json_number_value(json_object_get(v, "train_loss"));
    if (lines == 1) first_loss = loss;
    last_loss = loss;
    json_decref(v);
  }
  ag_jsonl_close(r);
  CHECK(lines == EPOCHS);
  CHECK_MSG(last_loss < first_loss, "train loss %g -> %g", first_loss, last_loss);
  teardown(&f);
}

TEST(resume_after_an_interruption_is_bit_identical) {
  fixture f = setup();
  const char *a = run_dir("resume-a"), *b = run_dir("resume-b");
  ag_classify_metrics last_a, last_b;
  CHECK_OK(train(&f, a, false, 0, NULL, &last_a));
  CHECK_OK(train(&f, b, false, 0, NULL, &last_b));
  /* Interrupt b after epoch 1: later checkpoints never landed, a partial
   * folder of epoch 2 was left behind, metrics.jsonl is ahead. */
  char path[700];
  for (int e = 2; e <= EPOCHS; e++) {
    epoch_dir(b, e, path, sizeof path);
    remove_tree(path);
  }
  epoch_dir(b, 2, path, sizeof path);
  strcat(path, ".partial");
  mkdir(path, 0755);
  strcat(path, "/model.safetensors");
  CHECK_OK(ag_atomic_write(path, "junk", 4));

  ag_classify_metrics resumed;
  CHECK_OK(train(&f, b, true, 0, NULL, &resumed));
  CHECK(resumed.epoch == EPOCHS);
  CHECK(resumed.test_acc == last_a.test_acc && resumed.train_loss == last_a.train_loss);
  char ea[700], eb[700];
  epoch_dir(a, EPOCHS, ea, sizeof ea);
  epoch_dir(b, EPOCHS, eb, sizeof eb);
  CHECK(same_tensors(ea, eb, "model.safetensors"));
  CHECK(same_tensors(ea, eb, "optimizer.safetensors"));
  CHECK(same_metrics(a, b));
  /* Resuming a finished run trains nothing and reports the last epoch. */
  ag_classify_metrics again;
  CHECK_OK(train(&f, b, true, 0, NULL, &again));
  CHECK(again.epoch == EPOCHS && again.test_acc == last_a.test_acc);
  teardown(&f);
}

TEST(adamw_run_extended_under_a_constant_schedule_matches_a_longer_run) {
  /* AdamW keeps two moment buffers and a step count; all must survive the
   * checkpoint. Under a constant schedule a finished run may be extended:
   * 1 epoch, then resumed to 3, equals 3 epochs straight. */
  fixture f = setup();
  f.cfg = ag_classify_defaults(AG_VISION_MLP);
  ag_classify_set_optimizer(&f.cfg, AG_OPTIM_ADAMW);
  snprintf(f.cfg.data, sizeof f.cfg.data, "synthetic");
  f.cfg.schedule = AG_LR_CONSTANT;
  f.cfg.batch_size = 32;
  f.cfg.seed = 3;
  const char *straight = run_dir("adam-straight"), *extended = run_dir("adam-extended");
  ag_classify_metrics last;
  f.cfg.epochs = EPOCHS;
  CHECK_OK(train(&f, straight, false, 0, NULL, &last));
  f.cfg.epochs = 1;
  CHECK_OK(train(&f, extended, false, 0, NULL, &last));
  f.cfg.epochs = EPOCHS;
  CHECK_OK(train(&f, extended, true, 0, NULL, &last));
  char es[700], ee[700];
  epoch_dir(straight, EPOCHS, es, sizeof es);
  epoch_dir(extended, EPOCHS, ee, sizeof ee);
  CHECK(same_tensors(es, ee, "model.safetensors"));
  CHECK(same_tensors(es, ee, "optimizer.safetensors"));
  CHECK(same_metrics(straight, extended));
  teardown(&f);
}

TEST(from_epoch_retrains_later_epochs_exactly) {
  fixture f = setup();
  const char *a = run_dir("from-a"), *b = run_dir("from-b");
  ag_classify_metrics last_a, last_b;
  CHECK_OK(train(&f, a, false, 0, NULL, &last_a));
  /* Retrain the last epoch from a's epoch 2 into a new folder. */
  CHECK_OK(train(&f, b, false, EPOCHS - 1, a, &last_b));
  CHECK(last_b.epoch == EPOCHS && last_b.test_acc == last_a.test_acc);
  char ea[700], eb[700];
  epoch_dir(a, EPOCHS, ea, sizeof ea);
  epoch_dir(b, EPOCHS, eb, sizeof eb);
  CHECK(same_tensors(ea, eb, "model.safetensors"));
  /* And in place: epoch 3 of a rewritten from its own epoch 1. */
  CHECK_OK(train(&f, a, false, 1, NULL, &last_b));
  CHECK(same_tensors(ea, eb, "model.safetensors"));
  char partial[720];
  snprintf(partial, sizeof partial, "%s.partial", ea);
  CHECK(!ag_file_exists(partial));
  teardown(&f);
}

/* Flip augmentation: training changes (the images differ), it is
 * replayed exactly from any epoch, and a run cannot continue with the
 * other setting. */
TEST(flip_augmentation_changes_training_and_replays_from_any_epoch) {
  fixture f = setup();
  const char *plain = run_dir("flip-off"), *a = run_dir("flip-a"), *b = run_dir("flip-b");
  ag_classify_metrics off, on, again;
  CHECK_OK(train(&f, plain, false, 0, NULL, &off));
  f.cfg.flip = true;
  CHECK_OK(train(&f, a, false, 0, NULL, &on));
  CHECK(on.epoch == EPOCHS && on.train_loss != off.train_loss);
  CHECK_OK(train(&f, b, false, EPOCHS - 1, a, &again));
  CHECK(again.train_loss == on.train_loss && again.test_acc == on.test_acc);
  char ea[700], eb[700];
  epoch_dir(a, EPOCHS, ea, sizeof ea);
  epoch_dir(b, EPOCHS, eb, sizeof eb);
  CHECK(same_tensors(ea, eb, "model.safetensors"));
  /* the setting is part of the run: state.json says so, and continuing
   * without it is refused with both values named */
  size_t bytes = 0;
  char state_rel[64];
  snprintf(state_rel, sizeof state_rel, "epoch-%03d/state.json", EPOCHS);
  char *state = slurp(a, state_rel, &bytes);
  CHECK_MSG(state && strstr(state, "\"augment\": \"flip\""), "%s", state ? state : "(none)");
  free(state);
  f.cfg.flip = false;
  CHECK(train(&f, b, false, EPOCHS - 1, a, &again) == AG_ERR_INVALID);
  CHECK_MSG(strstr(ag_error_message(), "augment") && strstr(ag_error_message(), "flip"), "%s",
            ag_error_message());
  teardown(&f);
}

TEST(evaluating_a_checkpoint_gives_its_test_accuracy) {
  fixture f = setup();
  const char *dir = run_dir("eval");
  ag_classify_metrics last;
  CHECK_OK(train(&f, dir, false, 0, NULL, &last));
  char path[700];
  epoch_dir(dir, EPOCHS, path, sizeof path);
  ag_classify_checkpoint info;
  ag_vision_model *m = NULL;
  CHECK_OK(ag_classify_checkpoint_read(path, &info));
  CHECK_OK(ag_classify_checkpoint_load_model(path, &info, &m));
  double acc = -1, loss = -1;
  if (m) CHECK_OK(ag_classify_evaluate(m, f.test, info.config.eval_batch_size, NULL, &acc, &loss));
  CHECK(acc == last.test_acc && info.metrics.test_acc == last.test_acc);
  CHECK_NEAR(loss, last.test_loss, 1e-12);
  ag_vision_model_destroy(m);
  teardown(&f);
}

TEST(a_fresh_run_refuses_a_folder_with_checkpoints) {
  fixture f = setup();
  f.cfg.epochs = 1;
  const char *dir = run_dir("refuse");
  ag_classify_metrics last;
  CHECK_OK(train(&f, dir, false, 0, NULL, &last));
  char ckpt[700];
  epoch_dir(dir, 1, ckpt, sizeof ckpt);
  size_t n_before, n_after;
  char *before = slurp(ckpt, "model.safetensors", &n_before);
  CHECK(train(&f, dir, false, 0, NULL, &last) == AG_ERR_INVALID);
  CHECK_MSG(strstr(ag_error_message(), "--resume"), "%s", ag_error_message());
  char *after = slurp(ckpt, "model.safetensors", &n_after);
  CHECK(before && after && n_before == n_after && !memcmp(before, after, n_before));
  free(before);
  free(after);
  /* A resume with other settings is refused and names the setting. */
  f.cfg.lr *= 2;
  CHECK(train(&f, dir, true, 0, NULL, &last) == AG_ERR_INVALID);
  CHECK_MSG(strstr(ag_error_message(), "lr"), "%s", ag_error_message());
  teardown(&f);
}

TEST(missing_or_truncated_checkpoints_are_clear_errors) {
  fixture f = setup();
  f.cfg.epochs = 1;
  const char *dir = run_dir("broken");
  ag_classify_metrics last;
  CHECK_OK(train(&f, dir, false, 0, NULL, &last));
  ag_classify_checkpoint info;
  CHECK(ag_classify_checkpoint_read(run_dir("no-such-run/epoch-001"), &info) == AG_ERR_NOT_FOUND);
  CHECK_MSG(strstr(ag_error_message(), "does not exist"), "%s", ag_error_message());
  CHECK(ag_classify_checkpoint_read(dir, &info) == AG_ERR_NOT_FOUND); /* the run, not an epoch */
  CHECK_MSG(strstr(ag_error_message(), "state.json"), "%s", ag_error_message());

  char ckpt[700], model[720];
  epoch_dir(dir, 1, ckpt, sizeof ckpt);
  snprintf(model, sizeof model, "%s/model.safetensors", ckpt);
  size_t bytes;
  char *data = slurp(ckpt, "model.safetensors", &bytes);
  CHECK(data && bytes > 100);
  if (data) CHECK_OK(ag_atomic_write(model, data, bytes - 100));
  free(data);
  ag_vision_model *m = NULL;
  CHECK_OK(ag_classify_checkpoint_read(ckpt, &info));
  CHECK(ag_classify_checkpoint_load_model(ckpt, &info, &m) != AG_OK && m == NULL);
  CHECK_MSG(strstr(ag_error_message(), "epoch-001"), "%s", ag_error_message());
  CHECK_MSG(!strchr(ag_error_message(), '\n'), "one line: %s", ag_error_message());
  /* Resuming from it fails the same way instead of training on garbage. */
  f.cfg.epochs = 2;
  f.cfg.schedule = AG_LR_CONSTANT;
  CHECK(train(&f, dir, false, 1, NULL, &last) != AG_OK);
  teardown(&f);
}

int main(void) {
  ag_log_set_level(AG_LOG_WARN);
  ag_progress_set_quiet(true);
  RUN(training_writes_metrics_and_every_epoch_checkpoint);
  RUN(resume_after_an_interruption_is_bit_identical);
  RUN(adamw_run_extended_under_a_constant_schedule_matches_a_longer_run);
  RUN(from_epoch_retrains_later_epochs_exactly);
  RUN(flip_augmentation_changes_training_and_replays_from_any_epoch);
  RUN(evaluating_a_checkpoint_gives_its_test_accuracy);
  RUN(a_fresh_run_refuses_a_folder_with_checkpoints);
  RUN(missing_or_truncated_checkpoints_are_clear_errors);
  TEST_MAIN_END();
}
