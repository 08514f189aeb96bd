/* `agora influence fit|query|score`: which training images made a vision
 * model predict what it does, by EK-FAC influence functions
 * (agora/influence.h). Flag parsing, loading, and the files a researcher
 * reads (provenance JSON, top.jsonl, scores.npy, image grids); every number
 * comes from the library. */
#include "agora/influence.h"

#include "agora/json.h"
#include "agora/vision.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BYTES         4096
#define PREDICT_BATCH      256 /* images per forward pass when printing predictions */
#define DEFAULT_CHUNK      5000
#define DEFAULT_TOP        10
#define DEFAULT_GRID_SCALE 3
#define GRID_BORDER        2 /* pixels of colour around each tile */
#define GRID_GAP           4 /* pixels between tiles */

/* ---- small helpers ----------------------------------------------------------------- */

/* Class names for messages; NULL when the data set has none we know. */
static const char *class_name(const char *data, int num_classes, int c) {
  static const char *const fashion[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                        "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                        "Bag",         "Ankle boot"};
  static const char *const cifar[] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                      "dog",      "frog",       "horse", "ship", "truck"};
  if (num_classes != 10 || c < 0 || c >= 10) return NULL;
  if (!strcmp(data, "fashion-mnist")) return fashion[c];
  if (!strcmp(data, "cifar10")) return cifar[c];
  return NULL;
}

/* "3 (Dress)" or "3" into buf. */
static const char *class_text(const char *data, int num_classes, int c, char *buf, size_t size) {
  const char *name = class_name(data, num_classes, c);
  if (name)
    snprintf(buf, size, "%d (%s)", c, name);
  else
    snprintf(buf, size, "%d", c);
  return buf;
}

/* The provenance file beside a .safetensors output: X.safetensors -> X.json
 * (any other name gets .json appended). */
static void sidecar_path(const char *path, char *buf, size_t size) {
  size_t n = strlen(path);
  const char *ext = ".safetensors";
  size_t e = strlen(ext);
  if (n > e && !strcmp(path + n - e, ext))
    snprintf(buf, size, "%.*s.json", (int)(n - e), path);
  else
    snprintf(buf, size, "%s.json", path);
}

static int print_json_line(json_t *fields) {
  char *text = json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
  json_decref(fields);
  if (!text) return ag_cli_error("out of memory");
  printf("%s\n", text);
  free(text);
  fflush(stdout);
  return 0;
}

/* Parses "3,7,10-12" into a malloc'd list (ranges inclusive). false when
 * malformed. */
static bool parse_index_list(const char *text, int64_t **out, int *count) {
  *out = NULL;
  *count = 0;
  int cap = 0;
  const char *p = text;
  if (!*p) return false;
  for (;;) {
    char *end;
    if (*p < '0' || *p > '9') goto bad;
    errno = 0;
    long long a = strtoll(p, &end, 10), b = a;
    if (errno) goto bad;
    p = end;
    if (*p == '-') {
      p++;
      if (*p < '0' || *p > '9') goto bad;
      b = strtoll(p, &end, 10);
      if (errno || b < a || b - a > 1000000) goto bad;
      p = end;
    }
    for (long long v = a; v <= b; v++) {
      if (*count == cap) {
        cap = cap ? 2 * cap : 16;
        int64_t *grown = realloc(*out, sizeof **out * (size_t)cap);
        if (!grown) goto bad;
        *out = grown;
      }
      (*out)[(*count)++] = v;
    }
    if (!*p) return true;
    if (*p++ != ',') goto bad;
  }
bad:
  free(*out);
  *out = NULL;
  *count = 0;
  return false;
}

/* ---- where the model and the data come from (every verb) -------------------------------- */

typedef struct source {
  const char *run, *checkpoint, *data, *data_dir;
  int epoch;
} source;

#define SOURCE_FLAG_COUNT 5
static void source_flags(ag_flag *f, source *s) {
  f[0] = (ag_flag){.name = "run",
                   .type = AG_FLAG_STRING,
                   .value = &s->run,
                   .metavar = "DIR",
                   .help = "a run folder of `agora vision train`: its last complete epoch, or "
                           "--epoch N"};
  f[1] = (ag_flag){.name = "checkpoint",
                   .type = AG_FLAG_STRING,
                   .value = &s->checkpoint,
                   .metavar = "DIR",
                   .help = "a checkpoint folder, RUN/epoch-NNN (instead of --run)"};
  f[2] = (ag_flag){.name = "epoch",
                   .type = AG_FLAG_INT,
                   .value = &s->epoch,
                   .help = "with --run: use epoch N's checkpoint",
                   .min = 1,
                   .max = 100000,
                   .default_text = "the last complete epoch"};
  f[3] = (ag_flag){.name = "data",
                   .type = AG_FLAG_CHOICE,
                   .value = &s->data,
                   .choices = "fashion-mnist|cifar10",
                   .metavar = "NAME",
                   .help = "dataset",
                   .default_text = "the checkpoint's"};
  f[4] = (ag_flag){.name = "data-dir",
                   .type = AG_FLAG_STRING,
                   .value = &s->data_dir,
                   .metavar = "DIR",
                   .help = "folder holding the dataset files",
                   .default_text = "fashion-mnist: " AG_FASHION_MNIST_DIR};
}

/* The checkpoint folder the flags name into path. Returns 0, or the exit
 * status of a usage (2) or runtime (1) error, already printed. */
static int resolve_checkpoint(ag_command *cmd, const source *s, char *path, size_t size) {
  if (!s->run == !s->checkpoint)
    return ag_args_usage_error(cmd, "give one of --run DIR and --checkpoint DIR");
  if (ag_args_find(cmd, "epoch")->seen && !s->run)
    return ag_args_usage_error(cmd, "--epoch needs --run DIR (--checkpoint names an epoch)");
  if (s->checkpoint) {
    snprintf(path, size, "%s", s->checkpoint);
    return 0;
  }
  if (s->epoch > 0) {
    ag_classify_checkpoint_path(s->run, s->epoch, path, size);
    return 0;
  }
  DIR *d = opendir(s->run);
  if (!d) return ag_cli_error("cannot open run folder %s: %s", s->run, strerror(errno));
  int best = 0;
  for (struct dirent *e; (e = readdir(d));) {
    int epoch;
    char tail;
    // "epoch-007" only: "epoch-008.partial" is a checkpoint being written.
    if (sscanf(e->d_name, "epoch-%d%c", &epoch, &tail) != 1 || epoch <= best) continue;
    char candidate[PATH_BYTES];
    ag_classify_checkpoint_path(s->run, epoch, candidate, sizeof candidate);
    ag_classify_checkpoint info;
    if (ag_classify_checkpoint_read(candidate, &info) == AG_OK) best = epoch;
  }
  closedir(d);
  if (!best)
    return ag_cli_error("%s holds no complete checkpoint (epoch-NNN/ folders written by `agora "
                        "vision train`)",
                        s->run);
  ag_classify_checkpoint_path(s->run, best, path, size);
  return 0;
}

/* A checkpoint's model as an influence model. */
typedef struct loaded {
  char checkpoint[PATH_BYTES];
  ag_classify_checkpoint info;
  ag_vision_model *model;
  ag_influence_model im;
  char data[AG_DATASET_NAME_MAX]; /* dataset name in use */
} loaded;

static ag_status load_checkpoint(const char *path, const source *s, loaded *l) {
  memset(l, 0, sizeof *l);
  snprintf(l->checkpoint, sizeof l->checkpoint, "%s", path);
  ag_status st = ag_classify_checkpoint_read(path, &l->info);
  if (!st) st = ag_classify_checkpoint_load_model(path, &l->info, &l->model);
  if (st) return st;
  ag_influence_vision_model(l->model, &l->im);
  const char *data = s->data                  ? s->data
                     : l->info.config.data[0] ? l->info.config.data
                                              : "fashion-mnist";
  snprintf(l->data, sizeof l->data, "%s", data);
  return AG_OK;
}

static void loaded_free(loaded *l) { ag_vision_model_destroy(l->model); }

/* A split of `name`, checked against the checkpoint's input shape. */
static ag_status load_split(const loaded *l, const char *name, const char *data_dir, ag_split split,
                            ag_image_dataset **out) {
  ag_status st = ag_image_dataset_load(name, data_dir, split, out);
  if (st) return st;
  const ag_image_dataset *d = *out;
  const ag_classify_checkpoint *i = &l->info;
  if (d->channels != i->channels || d->height != i->height || d->width != i->width ||
      d->num_classes != i->num_classes) {
    st = ag_error_set(AG_ERR_SHAPE,
                      "%s holds (%d, %d, %d) images in %d classes; the checkpoint %s expects (%d, "
                      "%d, %d) in %d",
                      name, d->channels, d->height, d->width, d->num_classes, l->checkpoint,
                      i->channels, i->height, i->width, i->num_classes);
    ag_image_dataset_destroy(*out);
    *out = NULL;
  }
  return st;
}

/* log softmax of the model's logits for every image of d: (count, classes). */
static ag_status predict_log_probs(const ag_vision_model *m, const ag_image_dataset *d,
                                   float *log_probs) {
  ag_tape *t = ag_tape_create();
  if (!t) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_tape_set_grad_enabled(t, false);
  ag_tape_set_training(t, false);
  int64_t size = ag_image_dataset_example_size(d), classes = d->num_classes;
  ag_status st = AG_OK;
  for (int64_t first = 0; first < d->count && !st; first += PREDICT_BATCH) {
    int64_t n = d->count - first < PREDICT_BATCH ? d->count - first : PREDICT_BATCH;
    ag_tape_reset(t);
    int64_t shape[4] = {n, d->channels, d->height, d->width};
    ag_tensor *logits =
        ag_vision_model_forward(t, m, ag_tape_wrap(t, d->images + first * size, 4, shape));
    if (!logits) {
      st = ag_error_set(ag_tape_status(t), "%s", ag_tape_error(t));
      break;
    }
    float *out = log_probs + first * classes;
    ag_tensor_copy_to(logits, out);
    for (int64_t r = 0; r < n; r++) {
      float *row = out + r * classes, top = row[0];
      for (int64_t c = 1; c < classes; c++) top = row[c] > top ? row[c] : top;
      double sum = exp((double)(row[0] - top)); // the top class adds exp(0): sum >= 1
      for (int64_t c = 1; c < classes; c++) sum += exp((double)(row[c] - top));
      float shift = top + (float)log(sum);
      for (int64_t c = 0; c < classes; c++) row[c] -= shift;
    }
  }
  ag_tape_destroy(t);
  return st;
}

/* Copies images idx[0..n) of d into a new data set labelled `labels`. */
static ag_status subset(const ag_image_dataset *d, const int64_t *idx, int n, const int32_t *labels,
                        ag_image_dataset **out) {
  ag_status st = ag_image_dataset_create(n, d->channels, d->height, d->width, d->num_classes, out);
  if (st) return st;
  snprintf((*out)->name, sizeof(*out)->name, "%s", d->name);
  int64_t size = ag_image_dataset_example_size(d);
  for (int i = 0; i < n; i++) {
    memcpy((*out)->images + i * size, d->images + idx[i] * size, sizeof(float) * (size_t)size);
    (*out)->labels[i] = labels[i];
  }
  return AG_OK;
}

/* ---- fit --------------------------------------------------------------------------------- */

static const char *kind_text(ag_layer_kind k) { return k == AG_LAYER_CONV2D ? "conv2d" : "linear"; }

static int cmd_fit(int argc, char **argv) {
  ag_influence_config cfg = ag_influence_defaults();
  ag_common_flags common = {.seed = cfg.seed};
  source s = {0};
  const char *layers = NULL, *labels = "sampled", *out = NULL;
  int64_t limit = 0, batch = cfg.batch_size;
  double damping = 0;
  ag_flag own[] = {
      {.name = "limit",
       .type = AG_FLAG_INT64,
       .value = &limit,
       .help = "fit on the first N training examples",
       .min = 1,
       .max = 1e15,
       .default_text = "all"},
      {.name = "layers",
       .type = AG_FLAG_STRING,
       .value = &layers,
       .metavar = "A,B,...",
       .help = "track only these layers (weight fc1.weight is layer fc1; an unknown name "
               "lists the model's layers)",
       .default_text = "every linear and conv2d layer"},
      {.name = "labels",
       .type = AG_FLAG_CHOICE,
       .value = &labels,
       .choices = "sampled|expected",
       .help = "output gradients at labels drawn from the model (one per example, from "
               "--seed), or the exact expectation over them (classes x the cost)"},
      {.name = "damping",
       .type = AG_FLAG_FLOAT,
       .value = &damping,
       .help = "lambda added to every corrected eigenvalue (0 allowed)",
       .min = 0,
       .max = 1e30,
       .default_text = "0.1 x the layer's mean corrected eigenvalue"},
      {.name = "batch",
       .type = AG_FLAG_INT64,
       .value = &batch,
       .help = "examples per forward pass (memory only: the factors do not depend on it)",
       .min = 1,
       .max = 1 << 20},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "FILE",
       .help = "factors file (safetensors); provenance goes to FILE's .json beside it",
       .required = true},
  };
  ag_flag table[SOURCE_FLAG_COUNT + sizeof own / sizeof *own];
  source_flags(table, &s);
  memcpy(table + SOURCE_FLAG_COUNT, own, sizeof own);
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  ag_command cmd = {
      .name = "influence fit",
      .summary = "Fit EK-FAC curvature factors of a vision checkpoint on the training split. Per\n"
                 "tracked layer: the second moments of input activations A (conv: im2col\n"
                 "patches; bias as an extra column) and of output gradients S, their\n"
                 "eigenvectors (LAPACK, double), and eigenvalues corrected by the per-example\n"
                 "gradients' squared projections onto that basis. Two passes over the data.",
      .flags = flags,
      .flag_count = n,
      .epilog =
          "Prints a line per tracked layer (input and output sizes, damping, mean corrected\n"
          "eigenvalue); the last line on stdout is `factors FILE ...` (or a JSON object with\n"
          "--json). The factors remember a fingerprint of the checkpoint's weights: `query`\n"
          "refuses them for any other checkpoint.\n"};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;

  // --layers a,b: names in a copy of the argument, split in place.
  char *layer_text = layers ? strdup(layers) : NULL;
  const char *names[256];
  int name_count = 0;
  if (layer_text) {
    for (char *p = layer_text, *next; p; p = next) {
      next = strchr(p, ',');
      if (next) *next++ = '\0';
      if (!*p || name_count == (int)(sizeof names / sizeof *names)) {
        free(layer_text);
        return ag_args_usage_error(&cmd, "--layers expects comma-separated layer names, got '%s'",
                                   layers);
      }
      names[name_count++] = p;
    }
  }
  char checkpoint[PATH_BYTES];
  int rc = resolve_checkpoint(&cmd, &s, checkpoint, sizeof checkpoint);
  if (rc) {
    free(layer_text);
    return rc;
  }
  ag_args_apply_common(&common);
  cfg.labels = !strcmp(labels, "expected") ? AG_INFLUENCE_EXPECTED : AG_INFLUENCE_SAMPLED;
  cfg.damping = ag_args_find(&cmd, "damping")->seen ? damping : AG_INFLUENCE_DAMPING_DEFAULT;
  cfg.batch_size = batch;
  cfg.seed = common.seed;
  cfg.layers = name_count ? names : NULL;
  cfg.layer_count = name_count;
  cfg.progress = !common.quiet;

  loaded l;
  ag_image_dataset *train = NULL;
  ag_influence_factors *factors = NULL;
  double start = ag_time_seconds();
  ag_status st = load_checkpoint(checkpoint, &s, &l);
  if (!st) st = load_split(&l, l.data, s.data_dir, AG_SPLIT_TRAIN, &train);
  int64_t examples = 0;
  if (!st) {
    examples = limit > 0 && limit < train->count ? limit : train->count;
    cfg.limit = examples;
    ag_influence_data d;
    ag_influence_vision_data(train, &d);
    st = ag_influence_fit(&l.im, &d, &cfg, &factors);
  }
  if (!st) st = ag_influence_factors_save(factors, out);
  double seconds = ag_time_seconds() - start;
  json_t *layer_list = json_array();
  if (!st) {
    if (!common.json)
      printf("%-28s %-7s %8s %8s %12s %16s\n", "layer", "kind", "in", "out", "damping",
             "mean eigenvalue");
    for (int i = 0; i < ag_influence_layer_count(factors) && !st; i++) {
      ag_influence_layer_info li;
      st = ag_influence_layer(factors, i, &li);
      if (st) break;
      if (!common.json)
        printf("%-28s %-7s %6lld%-2s %8lld %12.4g %16.4g\n", li.name, kind_text(li.kind),
               (long long)li.in_features, li.has_bias ? "+1" : "", (long long)li.out_features,
               li.damping, li.mean_eigenvalue);
      json_array_append_new(
          layer_list, json_pack("{s:s, s:s, s:I, s:I, s:b, s:f, s:f}", "name", li.name, "kind",
                                kind_text(li.kind), "in_features", (json_int_t)li.in_features,
                                "out_features", (json_int_t)li.out_features, "bias", li.has_bias,
                                "damping", li.damping, "mean_eigenvalue", li.mean_eigenvalue));
    }
  }
  if (!st) {
    // What the factors were fit on, for whoever finds the file later.
    char side[PATH_BYTES];
    sidecar_path(out, side, sizeof side);
    json_t *meta = json_pack(
        "{s:s, s:s, s:i, s:s, s:s, s:I, s:s, s:o, s:I, s:I, s:O}", "kind",
        "agora influence factors", "checkpoint", l.checkpoint, "epoch", l.info.epoch, "model",
        ag_vision_model_name(l.info.config.model), "data", l.data, "examples", (json_int_t)examples,
        "labels", labels, "damping",
        cfg.damping >= 0 ? json_real(cfg.damping) : json_string("0.1 x mean corrected eigenvalue"),
        "seed", (json_int_t)cfg.seed, "batch", (json_int_t)cfg.batch_size, "layers", layer_list);
    st = ag_json_save(side, meta);
    json_decref(meta);
  }
  if (st) {
    rc = ag_cli_error("%s", ag_error_message());
  } else if (common.json) {
    rc = print_json_line(json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:s, s:f, s:i, s:O}", "factors",
                                   out, "checkpoint", l.checkpoint, "epoch", l.info.epoch, "model",
                                   ag_vision_model_name(l.info.config.model), "data", l.data,
                                   "examples", (json_int_t)examples, "labels", labels, "seconds",
                                   seconds, "threads", ag_threads_get(), "layers", layer_list));
  } else {
    printf("factors %s  layers %d  examples %lld  seconds %.1f\n", out,
           ag_influence_layer_count(factors), (long long)examples, seconds);
    fflush(stdout);
  }
  json_decref(layer_list);
  ag_influence_factors_destroy(factors);
  ag_image_dataset_destroy(train);
  if (l.model) loaded_free(&l);
  free(layer_text);
  return rc;
}

/* ---- query ------------------------------------------------------------------------------- */

static int cmd_query(int argc, char **argv) {
  ag_common_flags common = {0};
  source s = {0};
  const char *factors_path = NULL, *indices_text = NULL, *target_text = NULL, *out = NULL;
  ag_flag own[] = {
      {.name = "factors",
       .type = AG_FLAG_STRING,
       .value = &factors_path,
       .metavar = "FILE",
       .help = "factors from `agora influence fit` on this very checkpoint",
       .required = true},
      {.name = "test-index",
       .type = AG_FLAG_STRING,
       .value = &indices_text,
       .metavar = "I[,J,A-B]",
       .help = "test images to explain, one query each (0-based; ranges inclusive)",
       .required = true},
      {.name = "target-class",
       .type = AG_FLAG_STRING,
       .value = &target_text,
       .metavar = "C[,C...]",
       .help = "measure log p(C | image) instead: one class for every query, or one per query",
       .default_text = "each image's true label"},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "FILE",
       .help = "preconditioned query gradients (safetensors); what they measure goes to "
               "FILE's .json beside it (`score` reads both)",
       .required = true},
  };
  ag_flag table[SOURCE_FLAG_COUNT + sizeof own / sizeof *own];
  source_flags(table, &s);
  memcpy(table + SOURCE_FLAG_COUNT, own, sizeof own);
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, false);
  ag_command cmd = {
      .name = "influence query",
      .summary = "Turn test images into influence queries: the gradient of a measurement f on\n"
                 "each image, preconditioned by the damped EK-FAC curvature,\n"
                 "v = (G + lambda I)^-1 grad f. By default f = log p(true label | image), i.e.\n"
                 "minus the image's loss; --target-class C makes it log p(C | image).",
      .flags = flags,
      .flag_count = n,
      .epilog = "Prints a line per query (label, measured class, f, the model's prediction);\n"
                "the last line on stdout is `queries FILE ...` (or a JSON object with --json).\n"};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  int64_t *indices = NULL, *targets = NULL;
  int count = 0, target_count = 0;
  if (!parse_index_list(indices_text, &indices, &count))
    return ag_args_usage_error(&cmd, "--test-index expects indices like 3,7,10-12, got '%s'",
                               indices_text);
  if (target_text && !parse_index_list(target_text, &targets, &target_count)) {
    free(indices);
    return ag_args_usage_error(&cmd, "--target-class expects classes like 3 or 3,5, got '%s'",
                               target_text);
  }
  if (targets && target_count != 1 && target_count != count) {
    free(indices);
    free(targets);
    return ag_args_usage_error(&cmd,
                               "--target-class gives %d classes for %d queries (give one, "
                               "or one per query)",
                               target_count, count);
  }
  char checkpoint[PATH_BYTES];
  int rc = resolve_checkpoint(&cmd, &s, checkpoint, sizeof checkpoint);
  if (rc) {
    free(indices);
    free(targets);
    return rc;
  }
  ag_args_apply_common(&common);

  loaded l;
  ag_image_dataset *test = NULL, *queries = NULL;
  ag_influence_factors *factors = NULL;
  ag_influence_queries *q = NULL;
  int32_t *measured = calloc((size_t)count, sizeof *measured);
  float *log_probs = NULL;
  json_t *list = json_array();
  double start = ag_time_seconds();
  ag_status st =
      measured ? load_checkpoint(checkpoint, &s, &l) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st) st = load_split(&l, l.data, s.data_dir, AG_SPLIT_TEST, &test);
  for (int i = 0; i < count && !st; i++) {
    if (indices[i] >= test->count)
      st = ag_error_set(
          AG_ERR_INVALID, "--test-index %lld is outside the %s test set (%lld images: 0..%lld)",
          (long long)indices[i], l.data, (long long)test->count, (long long)test->count - 1);
    else if (targets && targets[target_count == 1 ? 0 : i] >= test->num_classes)
      st = ag_error_set(AG_ERR_INVALID, "--target-class %lld: the model has %d classes (0..%d)",
                        (long long)targets[target_count == 1 ? 0 : i], test->num_classes,
                        test->num_classes - 1);
    else
      measured[i] =
          targets ? (int32_t)targets[target_count == 1 ? 0 : i] : test->labels[indices[i]];
  }
  if (!st) st = subset(test, indices, count, measured, &queries);
  if (!st) st = ag_influence_factors_load(factors_path, &l.im, &factors);
  if (!st) {
    ag_influence_data qd;
    ag_influence_vision_data(queries, &qd);
    st = ag_influence_precondition(factors, &l.im, &qd, &q);
  }
  if (!st) st = ag_influence_queries_save(q, out);
  if (!st) {
    log_probs = malloc(sizeof(float) * (size_t)count * (size_t)queries->num_classes);
    st = log_probs ? predict_log_probs(l.model, queries, log_probs)
                   : ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  for (int i = 0; i < count && !st; i++) {
    int classes = queries->num_classes, label = test->labels[indices[i]], predicted = 0;
    const float *row = log_probs + (size_t)i * (size_t)classes;
    for (int c = 1; c < classes; c++) predicted = row[c] > row[predicted] ? c : predicted;
    char what[64];
    snprintf(what, sizeof what, "log p(%d | x)", measured[i]);
    json_t *all = json_array();
    for (int c = 0; c < classes; c++) json_array_append_new(all, json_real((double)row[c]));
    json_array_append_new(
        list, json_pack("{s:i, s:I, s:i, s:i, s:s, s:f, s:i, s:f, s:o}", "query", i, "index",
                        (json_int_t)indices[i], "label", label, "class", measured[i], "measurement",
                        what, "f", (double)row[measured[i]], "predicted", predicted, "p_predicted",
                        exp((double)row[predicted]), "log_probs", all));
    if (!common.json) {
      char a[48], c[48];
      printf("query %d  test %lld  label %s  f = log p(%d | x) = %.4f  predicted %s p %.3f\n", i,
             (long long)indices[i], class_text(l.data, classes, label, a, sizeof a), measured[i],
             (double)row[measured[i]], class_text(l.data, classes, predicted, c, sizeof c),
             exp((double)row[predicted]));
    }
  }
  if (!st) {
    char side[PATH_BYTES];
    sidecar_path(out, side, sizeof side);
    json_t *meta =
        json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:O}", "kind", "agora influence queries",
                  "factors", factors_path, "checkpoint", l.checkpoint, "epoch", l.info.epoch,
                  "model", ag_vision_model_name(l.info.config.model), "data", l.data, "split",
                  "test", "queries", list);
    st = ag_json_save(side, meta);
    json_decref(meta);
  }
  double seconds = ag_time_seconds() - start;
  if (st) {
    rc = ag_cli_error("%s", ag_error_message());
  } else if (common.json) {
    rc = print_json_line(json_pack("{s:s, s:s, s:s, s:i, s:f, s:O}", "queries_file", out,
                                   "checkpoint", l.checkpoint, "factors", factors_path, "count",
                                   count, "seconds", seconds, "queries", list));
  } else {
    printf("queries %s  count %d  seconds %.1f\n", out, count, seconds);
    fflush(stdout);
  }
  json_decref(list);
  ag_influence_queries_destroy(q);
  ag_influence_factors_destroy(factors);
  ag_image_dataset_destroy(queries);
  ag_image_dataset_destroy(test);
  if (measured && l.model) loaded_free(&l);
  free(log_probs);
  free(measured);
  free(indices);
  free(targets);
  return rc;
}

/* ---- score ------------------------------------------------------------------------------- */

typedef struct ranked {
  float score;
  int64_t index;
} ranked;

/* Largest score first; ties by index so the order is reproducible. */
static int by_score_descending(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->score != y->score) return x->score < y->score ? 1 : -1;
  return (x->index > y->index) - (x->index < y->index);
}

/* scores as a NumPy .npy file: float32, shape (rows, cols), C order. */
static ag_status write_npy(const char *path, const float *scores, int64_t rows, int64_t cols) {
  char header[128];
  int len = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
  // The magic, version and length take 10 bytes; pad so data starts at a
  // multiple of 64, the header ending in a newline.
  int total = (10 + len + 1 + 63) / 64 * 64;
  while (len < total - 10 - 1) header[len++] = ' ';
  header[len++] = '\n';
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  FILE *s = ag_atomic_stream(f);
  unsigned char prefix[10] = {
      0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 255), (unsigned char)(len >> 8)};
  size_t n = (size_t)(rows * cols);
  if (fwrite(prefix, 1, 10, s) != 10 || fwrite(header, 1, (size_t)len, s) != (size_t)len ||
      fwrite(scores, sizeof(float), n, s) != n) {
    ag_atomic_abort(f);
    return ag_error_set(AG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
  }
  return ag_atomic_commit(f);
}

/* Draws image `index` of d into an RGB canvas at (x, y), each pixel as a
 * scale x scale block, inside a border of colour rgb. */
static void draw_tile(uint8_t *canvas, int canvas_width, int x, int y, const ag_image_dataset *d,
                      int64_t index, int scale, const uint8_t border[3]) {
  int tile_w = d->width * scale + 2 * GRID_BORDER, tile_h = d->height * scale + 2 * GRID_BORDER;
  for (int r = 0; r < tile_h; r++)
    for (int c = 0; c < tile_w; c++)
      memcpy(canvas + 3 * ((size_t)(y + r) * canvas_width + x + c), border, 3);
  int64_t plane = (int64_t)d->height * d->width;
  const float *image = d->images + index * ag_image_dataset_example_size(d);
  for (int r = 0; r < d->height * scale; r++)
    for (int c = 0; c < d->width * scale; c++) {
      int64_t p = (int64_t)(r / scale) * d->width + c / scale;
      uint8_t *px =
          canvas + 3 * ((size_t)(y + GRID_BORDER + r) * canvas_width + x + GRID_BORDER + c);
      for (int k = 0; k < 3; k++) {
        float v = image[(d->channels == 3 ? k : 0) * plane + p];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        px[k] = (uint8_t)lrintf(v * 255.0f);
      }
    }
}

/* The grid for one query: row 1 the query image, row 2 the top k training
 * examples (largest score first), row 3 the bottom k (most negative first). */
static ag_status write_grid(const char *path, const ag_image_dataset *queries, int64_t query_index,
                            int measured_class, const ag_image_dataset *train, const ranked *top,
                            const ranked *bottom, int k, int scale) {
  static const uint8_t query_colour[3] = {60, 120, 255}, same_colour[3] = {40, 190, 70},
                       other_colour[3] = {230, 60, 50}, background[3] = {32, 32, 32};
  int tile_w = train->width * scale + 2 * GRID_BORDER;
  int tile_h = train->height * scale + 2 * GRID_BORDER;
  int width = GRID_GAP + k * (tile_w + GRID_GAP), height = GRID_GAP + 3 * (tile_h + GRID_GAP);
  uint8_t *canvas = malloc((size_t)width * (size_t)height * 3);
  if (!canvas) return ag_error_set(AG_ERR_NOMEM, "out of memory for a %dx%d grid", width, height);
  for (size_t i = 0; i < (size_t)width * (size_t)height; i++) memcpy(canvas + 3 * i, background, 3);
  draw_tile(canvas, width, GRID_GAP, GRID_GAP, queries, query_index, scale, query_colour);
  for (int row = 0; row < 2; row++)
    for (int j = 0; j < k; j++) {
      int64_t index = (row ? bottom : top)[j].index;
      bool same = train->labels[index] == measured_class;
      draw_tile(canvas, width, GRID_GAP + j * (tile_w + GRID_GAP),
                GRID_GAP + (row + 1) * (tile_h + GRID_GAP), train, index, scale,
                same ? same_colour : other_colour);
    }
  ag_status st = ag_png_write(path, canvas, width, height, 3);
  free(canvas);
  return st;
}

/* chunk-*.f32 files in dir: finished chunks of an earlier run. */
static int count_chunks(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    n += !strncmp(e->d_name, "chunk-", 6) && len > 4 && !strcmp(e->d_name + len - 4, ".f32");
  }
  closedir(d);
  return n;
}

static json_t *ranked_list(const ranked *r, int k, const ag_image_dataset *train) {
  json_t *list = json_array();
  for (int j = 0; j < k; j++)
    json_array_append_new(list,
                          json_pack("{s:I, s:i, s:f}", "index", (json_int_t)r[j].index, "label",
                                    train->labels[r[j].index], "score", (double)r[j].score));
  return list;
}

/* Reads what `query` wrote beside the queries file. */
static ag_status read_query_meta(const char *queries_path, json_t **meta, json_t **list) {
  char side[PATH_BYTES];
  sidecar_path(queries_path, side, sizeof side);
  ag_status st = ag_json_load(side, meta);
  if (st)
    return ag_error_wrap(st, "%s needs %s, written beside it by `agora influence query`",
                         queries_path, side);
  *list = json_object_get(*meta, "queries");
  if (!json_is_array(*list)) return ag_error_set(AG_ERR_FORMAT, "%s has no \"queries\" list", side);
  for (size_t i = 0; i < json_array_size(*list); i++) {
    json_t *e = json_array_get(*list, i);
    if (!json_is_integer(json_object_get(e, "index")) ||
        !json_is_integer(json_object_get(e, "class")))
      return ag_error_set(AG_ERR_FORMAT, "%s: query %zu lacks \"index\" or \"class\"", side, i);
  }
  return AG_OK;
}

static int cmd_score(int argc, char **argv) {
  ag_influence_config defaults = ag_influence_defaults();
  ag_common_flags common = {0};
  source s = {0};
  const char *queries_path = NULL, *out = NULL;
  int64_t limit = 0, chunk = DEFAULT_CHUNK, batch = defaults.batch_size;
  int top_k = DEFAULT_TOP, scale = DEFAULT_GRID_SCALE;
  ag_flag own[] = {
      {.name = "queries",
       .type = AG_FLAG_STRING,
       .value = &queries_path,
       .metavar = "FILE",
       .help = "queries from `agora influence query` on this very checkpoint (and its .json)",
       .required = true},
      {.name = "limit",
       .type = AG_FLAG_INT64,
       .value = &limit,
       .help = "score the first N training examples",
       .min = 1,
       .max = 1e15,
       .default_text = "all"},
      {.name = "chunk",
       .type = AG_FLAG_INT64,
       .value = &chunk,
       .help = "training examples per chunk file: the unit a rerun resumes from",
       .min = 1,
       .max = 1e12},
      {.name = "batch",
       .type = AG_FLAG_INT64,
       .value = &batch,
       .help = "examples per forward pass (memory only)",
       .min = 1,
       .max = 1 << 20},
      {.name = "top",
       .type = AG_FLAG_INT,
       .value = &top_k,
       .metavar = "K",
       .help = "training examples listed at each end of the ranking",
       .min = 1,
       .max = 1000},
      {.name = "scale",
       .type = AG_FLAG_INT,
       .value = &scale,
       .help = "pixels per image pixel in the PNG grids",
       .min = 1,
       .max = 16},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "DIR",
       .help = "folder for the chunks, scores.npy, top.jsonl and query-Q.png (rerun to resume)",
       .required = true},
  };
  ag_flag table[SOURCE_FLAG_COUNT + sizeof own / sizeof *own];
  source_flags(table, &s);
  memcpy(table + SOURCE_FLAG_COUNT, own, sizeof own);
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, false);
  ag_command cmd = {
      .name = "influence score",
      .summary = "Score every training example z against every query: the signed influence\n"
                 "score(z) = -v . grad L(z) (L at z's true label), the predicted change of the\n"
                 "query's f when z is up-weighted. Positive: up-weighting z raises f (z supports\n"
                 "the measured class); negative: it lowers f.",
      .flags = flags,
      .flag_count = n,
      .epilog =
          "Writes into DIR:\n"
          "  manifest.json, chunk-NNNNNN.f32\n"
          "                          the scores in chunks; a rerun (after a kill) computes only\n"
          "                          the missing chunks\n"
          "  scores.npy              float32, shape (queries, examples), for NumPy\n"
          "  top.jsonl               a line per query: its test index, label, measured class, f,\n"
          "                          and the K largest (\"top\") and K most negative (\"bottom\")\n"
          "                          training examples, each {\"index\",\"label\",\"score\"}\n"
          "  query-Q.png             per query Q: the query image (blue frame), then a row of\n"
          "                          the top K and a row of the bottom K, framed green when the\n"
          "                          example's label is the measured class, red otherwise\n"
          "The last line on stdout is `scores DIR ...` (or a JSON object with --json).\n"};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  char checkpoint[PATH_BYTES];
  int rc = resolve_checkpoint(&cmd, &s, checkpoint, sizeof checkpoint);
  if (rc) return rc;
  ag_args_apply_common(&common);

  loaded l = {0};
  json_t *meta = NULL, *list = NULL, *results = json_array();
  ag_image_dataset *train = NULL, *test = NULL, *queries = NULL;
  ag_influence_queries *q = NULL;
  float *scores = NULL;
  ranked *order = NULL;
  int64_t *query_indices = NULL;
  int32_t *query_classes = NULL;
  int64_t examples = 0, count = 0;
  int found = 0;
  double start = ag_time_seconds();
  ag_status st = read_query_meta(queries_path, &meta, &list);
  if (!st) st = load_checkpoint(checkpoint, &s, &l);
  if (!st) st = ag_influence_queries_load(queries_path, &l.im, &q);
  if (!st && ag_influence_query_count(q) != (int64_t)json_array_size(list))
    st = ag_error_set(AG_ERR_FORMAT, "%s holds %lld queries but its .json describes %zu",
                      queries_path, (long long)ag_influence_query_count(q), json_array_size(list));
  if (!st) {
    count = ag_influence_query_count(q);
    query_indices = calloc((size_t)count + 1, sizeof *query_indices);
    query_classes = calloc((size_t)count + 1, sizeof *query_classes);
    if (!query_indices || !query_classes) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  if (!st) st = load_split(&l, l.data, s.data_dir, AG_SPLIT_TRAIN, &train);
  if (!st) {
    // The query images, for the grids: the data set and split `query` used.
    const char *qdata = json_string_value(json_object_get(meta, "data"));
    st = load_split(&l, qdata ? qdata : l.data, s.data_dir, AG_SPLIT_TEST, &test);
  }
  for (int64_t i = 0; i < count && !st; i++) {
    json_t *e = json_array_get(list, (size_t)i);
    query_indices[i] = json_integer_value(json_object_get(e, "index"));
    query_classes[i] = (int32_t)json_integer_value(json_object_get(e, "class"));
    if (query_indices[i] < 0 || query_indices[i] >= test->count)
      st = ag_error_set(AG_ERR_FORMAT, "query %lld: test index %lld outside the test set",
                        (long long)i, (long long)query_indices[i]);
  }
  if (!st) st = subset(test, query_indices, (int)count, query_classes, &queries);
  if (!st) st = ag_mkdir_p(out);
  if (!st) {
    examples = limit > 0 && limit < train->count ? limit : train->count;
    ag_influence_data d;
    ag_influence_vision_data(train, &d);
    d.count = examples;
    found = count_chunks(out);
    st = ag_influence_score_dir(q, &l.im, &d, out, chunk, batch, !common.quiet, &scores);
    if (!st && found) ag_info("%s: resumed, %d chunk files of an earlier run reused", out, found);
  }
  char path[PATH_BYTES];
  if (!st) {
    snprintf(path, sizeof path, "%s/scores.npy", out);
    st = write_npy(path, scores, count, examples);
  }
  int k = top_k < examples ? top_k : (int)examples;
  if (!st) {
    order = malloc(sizeof *order * (size_t)examples);
    if (!order) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  ag_atomic_file *jsonl = NULL;
  if (!st) {
    snprintf(path, sizeof path, "%s/top.jsonl", out);
    st = ag_atomic_open(path, &jsonl);
  }
  for (int64_t qi = 0; qi < count && !st; qi++) {
    // Rank the finite scores; a NaN would make the order meaningless.
    int64_t ranked_count = 0, not_finite = 0;
    for (int64_t j = 0; j < examples; j++) {
      float v = scores[qi * examples + j];
      if (isfinite(v))
        order[ranked_count++] = (ranked){v, j};
      else
        not_finite++;
    }
    if (not_finite)
      ag_warn("query %lld: %lld scores are not finite, left out of the ranking", (long long)qi,
              (long long)not_finite);
    qsort(order, (size_t)ranked_count, sizeof *order, by_score_descending);
    int kq = k < ranked_count ? k : (int)ranked_count;
    ranked *bottom = malloc(sizeof *bottom * (size_t)(kq + 1));
    if (!bottom) {
      st = ag_error_set(AG_ERR_NOMEM, "out of memory");
      break;
    }
    for (int j = 0; j < kq; j++) bottom[j] = order[ranked_count - 1 - j];
    json_t *e = json_array_get(list, (size_t)qi);
    json_t *line =
        json_pack("{s:I, s:I, s:O, s:i, s:O, s:O, s:o, s:o}", "query", (json_int_t)qi, "index",
                  (json_int_t)query_indices[qi], "label", json_object_get(e, "label"), "class",
                  query_classes[qi], "measurement", json_object_get(e, "measurement"), "f",
                  json_object_get(e, "f"), "top", ranked_list(order, kq, train), "bottom",
                  ranked_list(bottom, kq, train));
    st = line ? ag_jsonl_write(ag_atomic_stream(jsonl), line)
              : ag_error_set(AG_ERR_FORMAT, "%s: query %lld is malformed", queries_path,
                             (long long)qi);
    json_decref(line);
    if (!st) {
      snprintf(path, sizeof path, "%s/query-%lld.png", out, (long long)qi);
      st = write_grid(path, queries, qi, query_classes[qi], train, order, bottom, kq, scale);
    }
    if (!st) json_array_append_new(results, json_string(path));
    if (!st && !common.json) {
      printf("query %lld  test %lld  class %d  top", (long long)qi, (long long)query_indices[qi],
             query_classes[qi]);
      for (int j = 0; j < kq && j < 5; j++)
        printf(" %lld(%d)%+.3g", (long long)order[j].index, train->labels[order[j].index],
               (double)order[j].score);
      printf("  bottom");
      for (int j = 0; j < kq && j < 5; j++)
        printf(" %lld(%d)%+.3g", (long long)bottom[j].index, train->labels[bottom[j].index],
               (double)bottom[j].score);
      printf("\n");
    }
    free(bottom);
  }
  if (jsonl) {
    if (st)
      ag_atomic_abort(jsonl);
    else
      st = ag_atomic_commit(jsonl);
  }
  double seconds = ag_time_seconds() - start;
  if (st) {
    rc = ag_cli_error("%s", ag_error_message());
  } else if (common.json) {
    rc = print_json_line(json_pack(
        "{s:s, s:s, s:I, s:I, s:i, s:f, s:i, s:O}", "out", out, "checkpoint", l.checkpoint,
        "queries", (json_int_t)count, "examples", (json_int_t)examples, "chunks_found", found,
        "seconds", seconds, "threads", ag_threads_get(), "grids", results));
  } else {
    printf("scores %s  queries %lld  examples %lld  seconds %.1f\n", out, (long long)count,
           (long long)examples, seconds);
    fflush(stdout);
  }
  json_decref(results);
  json_decref(meta);
  free(order);
  free(scores);
  free(query_indices);
  free(query_classes);
  ag_influence_queries_destroy(q);
  ag_image_dataset_destroy(queries);
  ag_image_dataset_destroy(test);
  ag_image_dataset_destroy(train);
  if (l.model) loaded_free(&l);
  return rc;
}

int ag_cli_influence(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"fit", "fit EK-FAC factors of a checkpoint on the training set", cmd_fit},
      {"query", "precondition the gradients of test-image measurements", cmd_query},
      {"score", "rank training examples by influence on each query (resumable)", cmd_score},
  };
  static const ag_cli_area_help area = {
      "influence",
      "Influence functions with EK-FAC: which training images raise or lower a vision model's\n"
      "log-probability of a class on a test image. fit -> query -> score; see docs/influence.md.",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
