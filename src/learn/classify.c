/* Supervised image classification: the training loop, evaluation and
 * checkpoints that make a run restartable exactly.
 *
 * Exact restarts rest on three things: every checkpoint holds the weights,
 * the optimizer state and its step count; the order of epoch e's examples
 * is a pure function of (seed, e); and any other randomness (dropout) is
 * reseeded from (seed, step) before each update. So training epochs K+1..E
 * from epoch K's checkpoint repeats the uninterrupted run bit for bit (same
 * machine, same thread count). */
#include "agora/json.h"
#include "agora/ops.h"
#include "agora/safetensors.h"
#include "agora/vision.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FORMAT   "agora.classify.v1"
#define STATE_FILE     "state.json"
#define MODEL_FILE     "model.safetensors"
#define OPTIMIZER_FILE "optimizer.safetensors"
#define METRICS_FILE   "metrics.jsonl"
#define PATH_MAX_BYTES 4096
/* Keeps the dropout stream of update s apart from the data-order stream of
 * epoch e, which both derive from the run's seed. */
#define DROPOUT_SEED_SALT 0x64726f706f7574ULL /* "dropout" */
#define FLIP_SEED_SALT    0x666c6970ULL       /* "flip" */
/* Evaluation batches: big enough for sgemm, small enough that the CNN's
 * im2col buffers stay near 250 MB. */
#define DEFAULT_EVAL_BATCH 250

/* ---- datasets ------------------------------------------------------------------- */

ag_status ag_image_dataset_create(int64_t count, int channels, int height, int width,
                                  int num_classes, ag_image_dataset **out) {
  *out = NULL;
  if (count <= 0 || channels <= 0 || height <= 0 || width <= 0 || num_classes <= 0)
    return ag_error_set(AG_ERR_INVALID, "image dataset: bad size %lld x (%d, %d, %d), %d classes",
                        (long long)count, channels, height, width, num_classes);
  ag_image_dataset *d = calloc(1, sizeof *d);
  size_t pixels = (size_t)count * (size_t)channels * (size_t)height * (size_t)width;
  if (d) {
    d->images = calloc(pixels, sizeof(float));
    d->labels = calloc((size_t)count, sizeof(int32_t));
  }
  if (!d || !d->images || !d->labels) {
    ag_image_dataset_destroy(d);
    return ag_error_set(AG_ERR_NOMEM, "image dataset: cannot allocate %lld images",
                        (long long)count);
  }
  d->count = count;
  d->channels = channels;
  d->height = height;
  d->width = width;
  d->num_classes = num_classes;
  *out = d;
  return AG_OK;
}

void ag_image_dataset_destroy(ag_image_dataset *d) {
  if (!d) return;
  free(d->images);
  free(d->labels);
  free(d);
}

int64_t ag_image_dataset_example_size(const ag_image_dataset *d) {
  return (int64_t)d->channels * d->height * d->width;
}

/* ---- configuration ---------------------------------------------------------------- */

/* Per-model recommendations, measured on Fashion-MNIST on a 2-core AMD EPYC
 * with 2 threads (docs/vision.md has the runs): each reaches its accuracy
 * target within its time budget. */
typedef struct model_defaults {
  ag_optim_kind optimizer;
  int epochs;
  int64_t batch_size;
  float sgd_lr, adamw_lr;
} model_defaults;

static const model_defaults defaults_by_model[] = {
    [AG_VISION_MLP] = {AG_OPTIM_SGD, 20, 128, 0.05f, 1e-3f},
    [AG_VISION_CNN] = {AG_OPTIM_ADAMW, 3, 128, 0.02f, 2e-3f},
    [AG_VISION_RESNET] = {AG_OPTIM_SGD, 7, 128, 0.1f, 2e-3f},
};

#define SGD_MOMENTUM       0.9f
#define SGD_WEIGHT_DECAY   5e-4f
#define ADAMW_WEIGHT_DECAY 0.01f /* PyTorch's default for AdamW */

ag_classify_config ag_classify_defaults(ag_vision_model_kind kind) {
  const model_defaults *d = &defaults_by_model[kind];
  ag_classify_config c = {0};
  c.model = kind;
  snprintf(c.data, sizeof c.data, "fashion-mnist");
  c.epochs = d->epochs;
  c.batch_size = d->batch_size;
  c.eval_batch_size = DEFAULT_EVAL_BATCH;
  c.schedule = AG_LR_COSINE;
  c.optimizer = d->optimizer == AG_OPTIM_SGD ? AG_OPTIM_ADAMW : AG_OPTIM_SGD;
  ag_classify_set_optimizer(&c, d->optimizer);
  return c;
}

void ag_classify_set_optimizer(ag_classify_config *c, ag_optim_kind optimizer) {
  if (c->optimizer == optimizer) return;
  const model_defaults *d = &defaults_by_model[c->model];
  c->optimizer = optimizer;
  if (optimizer == AG_OPTIM_SGD) {
    c->lr = d->sgd_lr;
    c->momentum = SGD_MOMENTUM;
    c->weight_decay = SGD_WEIGHT_DECAY;
  } else {
    c->lr = d->adamw_lr;
    c->momentum = 0.0f;
    c->weight_decay = ADAMW_WEIGHT_DECAY;
  }
}

static const char *optimizer_name(ag_optim_kind k) { return k == AG_OPTIM_ADAMW ? "adamw" : "sgd"; }
static const char *schedule_name(ag_lr_schedule s) {
  return s == AG_LR_COSINE ? "cosine" : "constant";
}

static json_t *config_to_json(const ag_classify_config *c) {
  return json_pack(
      "{s:s, s:s, s:i, s:I, s:I, s:s, s:f, s:f, s:f, s:s, s:I, s:I, s:s}", "model",
      ag_vision_model_name(c->model), "data", c->data, "epochs", c->epochs, "batch_size",
      (json_int_t)c->batch_size, "eval_batch_size", (json_int_t)c->eval_batch_size, "optimizer",
      optimizer_name(c->optimizer), "lr", (double)c->lr, "momentum", (double)c->momentum,
      "weight_decay", (double)c->weight_decay, "schedule", schedule_name(c->schedule), "limit",
      (json_int_t)c->limit, "seed", (json_int_t)c->seed, "augment", c->flip ? "flip" : "none");
}

static json_t *metrics_to_json(const ag_classify_metrics *m) {
  return json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:I}", "epoch", m->epoch, "train_loss",
                   m->train_loss, "test_loss", m->test_loss, "test_acc", m->test_acc, "lr", m->lr,
                   "seconds", m->seconds, "steps", (json_int_t)m->steps);
}

/* Field readers for state.json: a missing or mistyped field names the file
 * and the key. */
typedef struct json_reader {
  const char *path;
  ag_status status;
} json_reader;

static json_t *field(json_reader *r, json_t *obj, const char *key, json_type type) {
  json_t *v = json_object_get(obj, key);
  bool ok = v && (json_typeof(v) == type || (type == JSON_REAL && json_typeof(v) == JSON_INTEGER));
  if (!ok && !r->status)
    r->status = ag_error_set(AG_ERR_FORMAT, "%s: missing or mistyped field \"%s\"", r->path, key);
  return ok ? v : NULL;
}

static int64_t field_int(json_reader *r, json_t *obj, const char *key) {
  json_t *v = field(r, obj, key, JSON_INTEGER);
  return v ? (int64_t)json_integer_value(v) : 0;
}

static double field_real(json_reader *r, json_t *obj, const char *key) {
  json_t *v = field(r, obj, key, JSON_REAL);
  return v ? json_number_value(v) : 0.0;
}

static const char *field_string(json_reader *r, json_t *obj, const char *key) {
  json_t *v = field(r, obj, key, JSON_STRING);
  return v ? json_string_value(v) : "";
}

static void config_from_json(json_reader *r, json_t *o, ag_classify_config *c) {
  memset(c, 0, sizeof *c);
  if (!o) return;
  const char *model = field_string(r, o, "model");
  if (!r->status && ag_vision_model_parse(model, &c->model))
    r->status = ag_error_set(AG_ERR_FORMAT, "%s: unknown model \"%s\"", r->path, model);
  snprintf(c->data, sizeof c->data, "%s", field_string(r, o, "data"));
  c->epochs = (int)field_int(r, o, "epochs");
  c->batch_size = field_int(r, o, "batch_size");
  c->eval_batch_size = field_int(r, o, "eval_batch_size");
  const char *opt = field_string(r, o, "optimizer");
  c->optimizer = !strcmp(opt, "adamw") ? AG_OPTIM_ADAMW : AG_OPTIM_SGD;
  c->lr = (float)field_real(r, o, "lr");
  c->momentum = (float)field_real(r, o, "momentum");
  c->weight_decay = (float)field_real(r, o, "weight_decay");
  c->schedule = !strcmp(field_string(r, o, "schedule"), "cosine") ? AG_LR_COSINE : AG_LR_CONSTANT;
  c->limit = field_int(r, o, "limit");
  c->seed = (uint64_t)field_int(r, o, "seed");
  /* Runs written before augmentation existed have no "augment": none. */
  const json_t *augment = json_object_get(o, "augment");
  c->flip = json_is_string(augment) && !strcmp(json_string_value(augment), "flip");
  if (!r->status && augment && !c->flip &&
      !(json_is_string(augment) && !strcmp(json_string_value(augment), "none")))
    r->status =
        ag_error_set(AG_ERR_FORMAT, "%s: \"augment\" must be \"none\" or \"flip\"", r->path);
  if (!r->status && (c->epochs <= 0 || c->batch_size <= 0 || c->eval_batch_size <= 0))
    r->status = ag_error_set(AG_ERR_FORMAT, "%s: epochs and batch sizes must be positive", r->path);
}

static void metrics_from_json(json_reader *r, json_t *o, ag_classify_metrics *m) {
  memset(m, 0, sizeof *m);
  if (!o) return;
  m->epoch = (int)field_int(r, o, "epoch");
  m->train_loss = field_real(r, o, "train_loss");
  m->test_loss = field_real(r, o, "test_loss");
  m->test_acc = field_real(r, o, "test_acc");
  m->lr = field_real(r, o, "lr");
  m->seconds = field_real(r, o, "seconds");
  m->steps = field_int(r, o, "steps");
}

static ag_status validate_config(const ag_classify_config *c) {
  if (c->epochs <= 0) return ag_error_set(AG_ERR_INVALID, "epochs must be positive");
  if (c->batch_size <= 0 || c->eval_batch_size <= 0)
    return ag_error_set(AG_ERR_INVALID, "batch sizes must be positive");
  if (!(c->lr > 0) || !isfinite(c->lr))
    return ag_error_set(AG_ERR_INVALID, "learning rate must be positive, got %g", (double)c->lr);
  if (c->momentum < 0 || c->momentum >= 1 || c->weight_decay < 0)
    return ag_error_set(AG_ERR_INVALID, "momentum must be in [0, 1) and weight decay >= 0");
  if (c->limit < 0) return ag_error_set(AG_ERR_INVALID, "limit must be >= 0");
  return AG_OK;
}

/* A restart must redo the same arithmetic: every field that shapes the
 * weights must match the checkpoint. The message names the first field
 * that differs and both values. */
static ag_status check_same_config(const ag_classify_config *want, const ag_classify_config *have,
                                   const char *dir) {
  char w[64] = "", h[64] = "";
  const char *name = NULL;
#define DIFFERS(field_name, cond, fmt, wv, hv)                                                     \
  if (!name && (cond)) {                                                                           \
    name = field_name;                                                                             \
    snprintf(w, sizeof w, fmt, wv);                                                                \
    snprintf(h, sizeof h, fmt, hv);                                                                \
  }
  DIFFERS("model", want->model != have->model, "%s", ag_vision_model_name(want->model),
          ag_vision_model_name(have->model))
  DIFFERS("data", strcmp(want->data, have->data), "%s", want->data, have->data)
  DIFFERS("batch-size", want->batch_size != have->batch_size, "%lld", (long long)want->batch_size,
          (long long)have->batch_size)
  DIFFERS("optimizer", want->optimizer != have->optimizer, "%s", optimizer_name(want->optimizer),
          optimizer_name(have->optimizer))
  DIFFERS("lr", want->lr != have->lr, "%g", (double)want->lr, (double)have->lr)
  DIFFERS("momentum", want->momentum != have->momentum, "%g", (double)want->momentum,
          (double)have->momentum)
  DIFFERS("weight-decay", want->weight_decay != have->weight_decay, "%g",
          (double)want->weight_decay, (double)have->weight_decay)
  DIFFERS("schedule", want->schedule != have->schedule, "%s", schedule_name(want->schedule),
          schedule_name(have->schedule))
  DIFFERS("limit", want->limit != have->limit, "%lld", (long long)want->limit,
          (long long)have->limit)
  DIFFERS("seed", want->seed != have->seed, "%llu", (unsigned long long)want->seed,
          (unsigned long long)have->seed)
  DIFFERS("augment", want->flip != have->flip, "%s", want->flip ? "flip" : "none",
          have->flip ? "flip" : "none")
  /* The cosine schedule spans all epochs: only a constant one may grow. */
  DIFFERS("epochs", want->epochs != have->epochs && want->schedule != AG_LR_CONSTANT, "%d",
          want->epochs, have->epochs)
#undef DIFFERS
  if (!name) return AG_OK;
  return ag_error_set(AG_ERR_INVALID,
                      "cannot continue from %s: its %s is %s, this run's is %s (rerun with the "
                      "checkpoint's settings)",
                      dir, name, h, w);
}

/* ---- checkpoints ------------------------------------------------------------------ */

/* Paths longer than the buffer become "" (and then fail to open) rather
 * than silently naming another file. */
static void path_fits(int written, char *buf, size_t size) {
  if (written < 0 || (size_t)written >= size) buf[0] = '\0';
}

void ag_classify_checkpoint_path(const char *run_dir, int epoch, char *buf, size_t size) {
  path_fits(snprintf(buf, size, "%s/epoch-%03d", run_dir, epoch), buf, size);
}

static void join(char *buf, size_t size, const char *dir, const char *name) {
  path_fits(snprintf(buf, size, "%s/%s", dir, name), buf, size);
}

ag_status ag_classify_checkpoint_read(const char *dir, ag_classify_checkpoint *out) {
  memset(out, 0, sizeof *out);
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return ag_error_set(AG_ERR_NOT_FOUND,
                        "checkpoint %s does not exist (expected a folder "
                        "RUN/epoch-NNN written by `vision train`)",
                        dir);
  char path[PATH_MAX_BYTES];
  join(path, sizeof path, dir, STATE_FILE);
  if (!ag_file_exists(path))
    return ag_error_set(AG_ERR_NOT_FOUND, "%s is not a complete checkpoint: %s is missing", dir,
                        STATE_FILE);
  json_t *state = NULL;
  ag_status st = ag_json_load(path, &state);
  if (st) return ag_error_wrap(st, "checkpoint %s", dir);
  json_reader r = {path, AG_OK};
  if (!json_is_object(state) || strcmp(field_string(&r, state, "format"), STATE_FORMAT)) {
    json_decref(state);
    return ag_error_set(AG_ERR_FORMAT, "%s: not an agora classification checkpoint", path);
  }
  out->epoch = (int)field_int(&r, state, "epoch");
  out->optimizer_step = field_int(&r, state, "optimizer_step");
  out->threads = (int)field_int(&r, state, "threads");
  json_t *input = field(&r, state, "input", JSON_OBJECT);
  if (input) {
    out->channels = (int)field_int(&r, input, "channels");
    out->height = (int)field_int(&r, input, "height");
    out->width = (int)field_int(&r, input, "width");
    out->num_classes = (int)field_int(&r, input, "num_classes");
  }
  config_from_json(&r, field(&r, state, "config", JSON_OBJECT), &out->config);
  metrics_from_json(&r, field(&r, state, "metrics", JSON_OBJECT), &out->metrics);
  json_decref(state);
  if (r.status) return r.status;
  const char *files[] = {MODEL_FILE, OPTIMIZER_FILE};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    join(path, sizeof path, dir, files[i]);
    if (!ag_file_exists(path))
      return ag_error_set(AG_ERR_NOT_FOUND, "%s is not a complete checkpoint: %s is missing", dir,
                          files[i]);
  }
  return AG_OK;
}

/* Loads dir/model.safetensors into params; names and shapes must match. */
static ag_status load_weights(const char *dir, ag_params *params) {
  char path[PATH_MAX_BYTES];
  join(path, sizeof path, dir, MODEL_FILE);
  ag_safetensors *f;
  ag_status st = ag_safetensors_open(path, &f);
  if (st) return st;
  st = ag_safetensors_load_params(f, params, false);
  ag_safetensors_close(f);
  return st;
}

ag_status ag_classify_checkpoint_load_model(const char *dir, const ag_classify_checkpoint *info,
                                            ag_vision_model **out) {
  *out = NULL;
  ag_vision_model *m;
  ag_status st = ag_vision_model_create(info->config.model, info->channels, info->height,
                                        info->width, info->num_classes, &m);
  if (st) return ag_error_wrap(st, "checkpoint %s", dir);
  st = load_weights(dir, ag_vision_model_params(m));
  if (st) {
    ag_vision_model_destroy(m);
    return ag_error_wrap(st, "checkpoint %s", dir);
  }
  *out = m;
  return AG_OK;
}

/* Removes a folder holding only files (a checkpoint or its partial copy). */
static ag_status remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? AG_OK : ag_error_set(AG_ERR_IO, "cannot open %s", dir);
  struct dirent *e;
  char path[PATH_MAX_BYTES];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    join(path, sizeof path, dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  if (rmdir(dir) != 0) return ag_error_set(AG_ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
  return AG_OK;
}

/* Makes a rename inside dir durable. */
static void sync_folder(const char *dir) {
  int fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

typedef struct checkpoint_state {
  const ag_classify_config *config;
  const ag_image_dataset *data;
  const ag_classify_metrics *metrics;
  const ag_vision_model *model;
  const ag_optim *optim;
} checkpoint_state;

/* Writes the three files into RUN/epoch-NNN.partial, then renames the folder
 * into place: a checkpoint folder is either complete or absent. */
static ag_status write_checkpoint(const char *run_dir, const checkpoint_state *s) {
  char final_dir[PATH_MAX_BYTES], partial[PATH_MAX_BYTES], old[PATH_MAX_BYTES],
      path[PATH_MAX_BYTES];
  ag_classify_checkpoint_path(run_dir, s->metrics->epoch, final_dir, sizeof final_dir);
  path_fits(snprintf(partial, sizeof partial, "%s.partial", final_dir), partial, sizeof partial);
  path_fits(snprintf(old, sizeof old, "%s.old", final_dir), old, sizeof old);
  if (!final_dir[0] || !partial[0] || !old[0])
    return ag_error_set(AG_ERR_INVALID, "checkpoint path under %s is too long", run_dir);
  ag_status st = remove_folder(partial);
  if (!st) st = ag_mkdir_p(partial);
  if (st) return st;
  const ag_params *params = ag_vision_model_params(s->model);
  const char *model_meta[] = {"format", "pt", "agora.model", ag_vision_model_name(s->config->model),
                              NULL};
  join(path, sizeof path, partial, MODEL_FILE);
  st = ag_safetensors_save_params(path, params, AG_DTYPE_F32, model_meta);
  join(path, sizeof path, partial, OPTIMIZER_FILE);
  if (!st) st = ag_optim_save(path, s->optim);
  if (!st) {
    json_t *state =
        json_pack("{s:s, s:i, s:I, s:i, s:{s:i, s:i, s:i, s:i}, s:I, s:o, s:o}", "format",
                  STATE_FORMAT, "epoch", s->metrics->epoch, "optimizer_step",
                  (json_int_t)s->optim->step, "threads", ag_threads_get(), "input", "channels",
                  s->data->channels, "height", s->data->height, "width", s->data->width,
                  "num_classes", s->data->num_classes, "params", (json_int_t)params->total,
                  "config", config_to_json(s->config), "metrics", metrics_to_json(s->metrics));
    join(path, sizeof path, partial, STATE_FILE);
    st = state ? ag_json_save(path, state) : ag_error_set(AG_ERR_NOMEM, "out of memory");
    json_decref(state);
  }
  if (st) {
    remove_folder(partial);
    return ag_error_wrap(st, "writing checkpoint %s", final_dir);
  }
  /* Replacing an epoch that exists (a restart from an earlier one): move the
   * old folder aside first, since rename() cannot replace a non-empty one. */
  remove_folder(old);
  if (ag_file_exists(final_dir) && rename(final_dir, old) != 0)
    return ag_error_set(AG_ERR_IO, "cannot move %s aside: %s", final_dir, strerror(errno));
  if (rename(partial, final_dir) != 0)
    return ag_error_set(AG_ERR_IO, "cannot rename %s to %s: %s", partial, final_dir,
                        strerror(errno));
  sync_folder(run_dir);
  remove_folder(old);
  return AG_OK;
}

/* Parses "epoch-NNN" (digits only); -1 otherwise. */
static int epoch_of_name(const char *name) {
  if (strncmp(name, "epoch-", 6)) return -1;
  const char *digits = name + 6;
  if (!*digits || strlen(digits) > 6) return -1;
  for (const char *c = digits; *c; c++)
    if (*c < '0' || *c > '9') return -1;
  return atoi(digits);
}

/* The highest epoch with a complete checkpoint in run_dir (0: none), and
 * whether any epoch folder exists at all. */
static int last_complete_epoch(const char *run_dir, bool *any) {
  *any = false;
  DIR *d = opendir(run_dir);
  if (!d) return 0;
  int best = 0;
  struct dirent *e;
  char path[PATH_MAX_BYTES];
  while ((e = readdir(d))) {
    int epoch = epoch_of_name(e->d_name);
    if (epoch < 0) continue;
    *any = true;
    if (epoch <= best) continue;
    ag_classify_checkpoint info;
    join(path, sizeof path, run_dir, e->d_name);
    if (ag_classify_checkpoint_read(path, &info) == AG_OK && info.epoch == epoch) best = epoch;
  }
  closedir(d);
  ag_error_clear();
  return best;
}

static ag_status write_metrics(const char *run_dir, const ag_classify_metrics *history, int count) {
  char path[PATH_MAX_BYTES];
  join(path, sizeof path, run_dir, METRICS_FILE);
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  for (int i = 0; i < count && !st; i++) {
    if (history[i].epoch <= 0) continue; /* an epoch whose checkpoint is gone */
    json_t *line = metrics_to_json(&history[i]);
    st = line ? ag_jsonl_write(ag_atomic_stream(f), line)
              : ag_error_set(AG_ERR_NOMEM, "out of memory");
    json_decref(line);
  }
  if (st) {
    ag_atomic_abort(f);
    return st;
  }
  return ag_atomic_commit(f);
}

/* ---- evaluation --------------------------------------------------------------------- */

static int64_t argmax_row(const float *row, int64_t n) {
  int64_t best = 0;
  for (int64_t j = 1; j < n; j++)
    if (row[j] > row[best]) best = j;
  return best;
}

ag_status ag_classify_evaluate(const ag_vision_model *m, const ag_image_dataset *d,
                               int64_t batch_size, ag_tape *tape, double *accuracy, double *loss) {
  if (batch_size <= 0) return ag_error_set(AG_ERR_INVALID, "evaluate: batch size must be > 0");
  ag_tape *t = tape ? tape : ag_tape_create();
  if (!t) return AG_ERR_NOMEM;
  bool grad_was = ag_tape_grad_enabled(t), training_was = ag_tape_training(t);
  ag_tape_set_grad_enabled(t, false);
  ag_tape_set_training(t, false);
  int64_t example = ag_image_dataset_example_size(d), correct = 0;
  double loss_sum = 0.0;
  ag_status st = AG_OK;
  ag_progress *progress =
      ag_progress_begin("evaluating", (d->count + batch_size - 1) / batch_size, "batches");
  for (int64_t start = 0; start < d->count && !st; start += batch_size) {
    int64_t n = d->count - start < batch_size ? d->count - start : batch_size;
    ag_tape_reset(t);
    int64_t shape[4] = {n, d->channels, d->height, d->width};
    ag_tensor *x = ag_tape_wrap(t, d->images + start * example, 4, shape); // (n, C, H, W)
    ag_tensor *logits = ag_vision_model_forward(t, m, x);                  // (n, classes)
    ag_tensor *l = ag_cross_entropy(t, logits, d->labels + start, NULL, -1, true);
    if (!l) {
      st = ag_error_set(ag_tape_status(t), "evaluate: %s", ag_tape_error(t));
      break;
    }
    int64_t classes = logits->shape[1];
    for (int64_t i = 0; i < n; i++)
      if (argmax_row(logits->data + i * classes, classes) == d->labels[start + i]) correct++;
    loss_sum += (double)l->data[0];
    ag_progress_update(progress, start / batch_size + 1);
  }
  ag_progress_end(progress);
  ag_tape_reset(t);
  ag_tape_set_grad_enabled(t, grad_was);
  ag_tape_set_training(t, training_was);
  if (!tape) ag_tape_destroy(t);
  if (st) return st;
  *accuracy = (double)correct / (double)d->count;
  if (loss) *loss = loss_sum / (double)d->count;
  return AG_OK;
}

/* ---- training ----------------------------------------------------------------------- */

typedef struct trainer {
  const ag_classify_config *config;
  const ag_image_dataset *train, *test;
  int64_t examples; /* training examples used (limit applied) */
  int64_t batches;  /* per epoch */
  ag_vision_model *model;
  ag_optim *optim;
  ag_schedule schedule;
  ag_tape *tape;
  int64_t *order;   /* (examples) */
  float *batch_x;   /* (batch_size, C, H, W) */
  int32_t *batch_y; /* (batch_size) */
} trainer;

static void trainer_free(trainer *tr) {
  ag_vision_model_destroy(tr->model);
  ag_optim_destroy(tr->optim);
  ag_tape_destroy(tr->tape);
  free(tr->order);
  free(tr->batch_x);
  free(tr->batch_y);
}

static ag_status trainer_init(trainer *tr, const ag_classify_config *c,
                              const ag_image_dataset *train, const ag_image_dataset *test) {
  memset(tr, 0, sizeof *tr);
  tr->config = c;
  tr->train = train;
  tr->test = test;
  tr->examples = c->limit > 0 && c->limit < train->count ? c->limit : train->count;
  tr->batches = (tr->examples + c->batch_size - 1) / c->batch_size;
  ag_status st = ag_vision_model_create(c->model, train->channels, train->height, train->width,
                                        train->num_classes, &tr->model);
  if (st) return st;
  ag_optim_config oc = c->optimizer == AG_OPTIM_ADAMW ? ag_optim_adamw_defaults(c->lr)
                                                      : ag_optim_sgd_defaults(c->lr);
  oc.weight_decay = c->weight_decay;
  if (c->optimizer == AG_OPTIM_SGD) oc.momentum = c->momentum;
  st = ag_optim_create(ag_vision_model_params(tr->model), &oc, &tr->optim);
  if (st) return st;
  tr->schedule = (ag_schedule){.kind = c->schedule == AG_LR_COSINE ? AG_SCHEDULE_WARMUP_COSINE
                                                                   : AG_SCHEDULE_CONSTANT,
                               .lr = c->lr,
                               .min_lr = 0.0f,
                               .warmup_steps = 0,
                               .total_steps = (int64_t)c->epochs * tr->batches};
  tr->tape = ag_tape_create();
  int64_t example = ag_image_dataset_example_size(train);
  tr->order = malloc((size_t)tr->examples * sizeof *tr->order);
  tr->batch_x = malloc((size_t)(c->batch_size * example) * sizeof *tr->batch_x);
  tr->batch_y = malloc((size_t)c->batch_size * sizeof *tr->batch_y);
  if (!tr->tape || !tr->order || !tr->batch_x || !tr->batch_y)
    return ag_error_set(AG_ERR_NOMEM, "training: out of memory");
  return AG_OK;
}

/* Mirrors each of n images (C x H x W) left to right with probability 1/2. */
static void flip_images(float *x, int64_t n, int64_t channels, int64_t height, int64_t width,
                        ag_rng *rng) {
  for (int64_t i = 0; i < n; i++) {
    if (ag_rng_below(rng, 2) == 0) continue;
    for (int64_t r = 0; r < channels * height; r++) {
      float *row = x + (i * channels * height + r) * width;
      for (int64_t a = 0, b = width - 1; a < b; a++, b--) {
        float v = row[a];
        row[a] = row[b];
        row[b] = v;
      }
    }
  }
}

/* One pass over the training examples in the order of (seed, epoch);
 * returns the mean training loss in *loss. */
static ag_status train_epoch(trainer *tr, int epoch, double *loss, double *last_lr) {
  const ag_classify_config *c = tr->config;
  const ag_image_dataset *d = tr->train;
  int64_t example = ag_image_dataset_example_size(d);
  ag_rng order_rng;
  ag_rng_seed2(&order_rng, c->seed, (uint64_t)epoch);
  for (int64_t i = 0; i < tr->examples; i++) tr->order[i] = i;
  ag_rng_shuffle_i64(&order_rng, tr->order, tr->examples);

  char label[64];
  snprintf(label, sizeof label, "epoch %d/%d", epoch, c->epochs);
  ag_progress *progress = ag_progress_begin(label, tr->batches, "batches");
  ag_tape *t = tr->tape;
  ag_params *params = ag_vision_model_params(tr->model);
  double loss_sum = 0.0;
  ag_status st = AG_OK;
  for (int64_t b = 0; b < tr->batches && !st; b++) {
    int64_t start = b * c->batch_size;
    int64_t n = tr->examples - start < c->batch_size ? tr->examples - start : c->batch_size;
    for (int64_t i = 0; i < n; i++) {
      int64_t src = tr->order[start + i];
      memcpy(tr->batch_x + i * example, d->images + src * example, (size_t)example * sizeof(float));
      tr->batch_y[i] = d->labels[src];
    }
    if (c->flip) {
      ag_rng flip_rng;
      ag_rng_seed2(&flip_rng, c->seed ^ FLIP_SEED_SALT, (uint64_t)tr->optim->step);
      flip_images(tr->batch_x, n, d->channels, d->height, d->width, &flip_rng);
    }
    ag_tape_reset(t);
    ag_rng_seed2(ag_tape_rng(t), c->seed ^ DROPOUT_SEED_SALT, (uint64_t)tr->optim->step);
    int64_t shape[4] = {n, d->channels, d->height, d->width};
    ag_tensor *x = ag_tape_wrap(t, tr->batch_x, 4, shape);                    // (n, C, H, W)
    ag_tensor *logits = ag_vision_model_forward(t, tr->model, x);             // (n, classes)
    ag_tensor *l = ag_cross_entropy(t, logits, tr->batch_y, NULL, -1, false); // mean
    if (!l) {
      st = ag_error_set(ag_tape_status(t), "training: %s", ag_tape_error(t));
      break;
    }
    if (!isfinite(l->data[0])) {
      st = ag_error_set(AG_ERR_INVALID,
                        "training diverged at epoch %d, batch %lld (loss %g): try a smaller "
                        "learning rate",
                        epoch, (long long)b, (double)l->data[0]);
      break;
    }
    ag_params_zero_grad(params);
    st = ag_backward(t, l);
    float lr = ag_schedule_lr(&tr->schedule, tr->optim->step);
    if (!st) st = ag_optim_step(tr->optim, lr);
    *last_lr = lr;
    loss_sum += (double)l->data[0] * (double)n;
    ag_progress_update(progress, b + 1);
    ag_progress_set_note(progress, "loss %.4f", loss_sum / (double)(start + n));
  }
  ag_progress_end(progress);
  ag_tape_reset(t);
  *loss = loss_sum / (double)tr->examples;
  return st;
}

/* Where a run starts: epoch 0 (fresh) or a checkpoint to load. */
typedef struct start_point {
  int epoch;
  char dir[PATH_MAX_BYTES]; /* the checkpoint folder when epoch > 0 */
  ag_classify_checkpoint info;
} start_point;

static ag_status find_start(const ag_classify_config *c, const ag_classify_run *run,
                            start_point *sp) {
  memset(sp, 0, sizeof *sp);
  if (run->from_epoch > 0) {
    ag_classify_checkpoint_path(run->from_dir ? run->from_dir : run->out_dir, run->from_epoch,
                                sp->dir, sizeof sp->dir);
  } else {
    bool any = false;
    int last = last_complete_epoch(run->out_dir, &any);
    if (!run->resume) {
      if (any)
        return ag_error_set(AG_ERR_INVALID,
                            "%s already holds checkpoints of a run: pass --resume to continue "
                            "it, or choose another output folder",
                            run->out_dir);
      return AG_OK;
    }
    if (last == 0) {
      if (any)
        ag_warn("%s holds no complete checkpoint: starting from scratch", run->out_dir);
      else
        ag_info("no checkpoint in %s yet: starting from scratch", run->out_dir);
      return AG_OK;
    }
    ag_classify_checkpoint_path(run->out_dir, last, sp->dir, sizeof sp->dir);
  }
  ag_status st = ag_classify_checkpoint_read(sp->dir, &sp->info);
  if (st) return st;
  sp->epoch = sp->info.epoch;
  st = check_same_config(c, &sp->info.config, sp->dir);
  if (st) return st;
  if (sp->epoch > c->epochs)
    return ag_error_set(AG_ERR_INVALID, "%s is epoch %d, past this run's %d epochs", sp->dir,
                        sp->epoch, c->epochs);
  if (sp->info.threads != ag_threads_get())
    ag_warn("%s was written with %d threads, this run uses %d: results may differ in the last "
            "bits from an uninterrupted run",
            sp->dir, sp->info.threads, ag_threads_get());
  return AG_OK;
}

/* Loads weights and optimizer state of the start checkpoint. */
static ag_status load_start(trainer *tr, const start_point *sp) {
  const ag_classify_checkpoint *info = &sp->info;
  if (info->channels != tr->train->channels || info->height != tr->train->height ||
      info->width != tr->train->width || info->num_classes != tr->train->num_classes)
    return ag_error_set(AG_ERR_SHAPE, "%s was trained on (%d, %d, %d) images with %d classes",
                        sp->dir, info->channels, info->height, info->width, info->num_classes);
  ag_status st = load_weights(sp->dir, ag_vision_model_params(tr->model));
  char path[PATH_MAX_BYTES];
  join(path, sizeof path, sp->dir, OPTIMIZER_FILE);
  if (!st) st = ag_optim_load(path, tr->optim);
  if (!st) tr->optim->step = info->optimizer_step;
  if (st) return ag_error_wrap(st, "loading checkpoint %s", sp->dir);
  return AG_OK;
}

/* Metrics of epochs 1..upto from the checkpoints in dir (zeros where one is
 * missing: write_metrics skips those). */
static void read_history(const char *dir, int upto, ag_classify_metrics *history) {
  for (int e = 1; e <= upto; e++) {
    char path[PATH_MAX_BYTES];
    ag_classify_checkpoint info;
    ag_classify_checkpoint_path(dir, e, path, sizeof path);
    if (ag_classify_checkpoint_read(path, &info) == AG_OK)
      history[e - 1] = info.metrics;
    else
      memset(&history[e - 1], 0, sizeof history[e - 1]);
  }
  ag_error_clear();
}

ag_status ag_classify_train(const ag_classify_config *cfg, const ag_classify_run *run,
                            const ag_image_dataset *train, const ag_image_dataset *test,
                            ag_classify_metrics *last) {
  memset(last, 0, sizeof *last);
  ag_status st = validate_config(cfg);
  if (st) return st;
  if (!run || !run->out_dir) return ag_error_set(AG_ERR_INVALID, "training: no output folder");
  if (train->channels != test->channels || train->height != test->height ||
      train->width != test->width || train->num_classes != test->num_classes)
    return ag_error_set(AG_ERR_SHAPE, "training and test images differ in shape or classes");
  start_point sp;
  st = find_start(cfg, run, &sp);
  if (st) return st;
  st = ag_mkdir_p(run->out_dir);
  if (st) return st;
  ag_classify_metrics *history = calloc((size_t)cfg->epochs, sizeof *history);
  if (!history) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (sp.epoch > 0)
    read_history(run->from_epoch > 0 && run->from_dir ? run->from_dir : run->out_dir, sp.epoch,
                 history);
  if (sp.epoch == cfg->epochs) { /* nothing left to train: report the last epoch */
    *last = sp.info.metrics;
    free(history);
    return AG_OK;
  }

  trainer tr;
  st = trainer_init(&tr, cfg, train, test);
  if (!st) {
    if (sp.epoch > 0) {
      st = load_start(&tr, &sp);
    } else {
      ag_rng init_rng;
      ag_rng_seed(&init_rng, cfg->seed);
      ag_vision_model_init(tr.model, &init_rng);
    }
  }
  for (int epoch = sp.epoch + 1; epoch <= cfg->epochs && !st; epoch++) {
    double start = ag_time_seconds();
    ag_classify_metrics m = {.epoch = epoch};
    st = train_epoch(&tr, epoch, &m.train_loss, &m.lr);
    if (!st)
      st = ag_classify_evaluate(tr.model, test, cfg->eval_batch_size, tr.tape, &m.test_acc,
                                &m.test_loss);
    if (st) break;
    m.steps = tr.optim->step;
    m.seconds = ag_time_seconds() - start;
    checkpoint_state cs = {cfg, train, &m, tr.model, tr.optim};
    st = write_checkpoint(run->out_dir, &cs);
    history[epoch - 1] = m;
    if (!st) st = write_metrics(run->out_dir, history, epoch);
    if (!st && run->log_epochs)
      ag_info("epoch %d/%d  train_loss %.4f  test_loss %.4f  test_acc %.4f  lr %.4g  %.1fs", epoch,
              cfg->epochs, m.train_loss, m.test_loss, m.test_acc, m.lr, m.seconds);
    *last = m;
  }
  trainer_free(&tr);
  free(history);
  return st;
}
