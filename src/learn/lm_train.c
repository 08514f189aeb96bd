/* Next-token training of a transformer: the loop, evaluation, checkpoints
 * and exact restarts (agora/lm_train.h says what makes them exact).
 *
 * Update s reads batch_size * grad_accum windows: example g = s * B * K + i
 * of the run is window perm_e[g mod N] with e = g / N and perm_e the shuffle
 * of (seed, e), so epochs follow one another without a gap and the windows of
 * any update can be found from s alone. The micro-batch losses are sums
 * divided by the update's count of targets, so K micro-batches of B windows
 * give the gradient of one batch of K * B windows. */
#include "agora/lm_train.h"

#include "agora/json.h"
#include "agora/optim.h"
#include "agora/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FORMAT     "agora.lm_train.v1"
#define STATE_FILE       "trainer_state.json"
#define OPTIMIZER_FILE   "optimizer.safetensors"
#define METRICS_FILE     "metrics.jsonl"
#define CHECKPOINT_NAME  "checkpoint-"
#define TOKENIZER_JSON   "tokenizer.json"
#define TOKENIZER_CONFIG "tokenizer_config.json"
#define PATH_BYTES       4096
/* Streams derived from the run's seed: kept apart by these salts. */
#define DROPOUT_SEED_SALT 0x64726f706f7574ULL /* "dropout" */
#define LORA_SEED_SALT    0x6c6f7261ULL       /* "lora" */
/* Auto settings: warmup 5% of the updates, the cosine ends at lr / 10. */
#define AUTO_WARMUP_FRACTION 0.05
#define AUTO_MIN_LR_FRACTION 0.1f

/* ---- configuration ------------------------------------------------------------------- */

ag_lm_train_config ag_lm_train_defaults(void) {
  ag_lm_train_config c = {.batch_size = 8,
                          .grad_accum = 1,
                          .steps = 1000,
                          .lr = 3e-4f,
                          .min_lr = -1.0f,
                          .warmup_steps = -1,
                          .weight_decay = 0.1f,
                          .beta1 = 0.9f,
                          .beta2 = 0.95f,
                          .eps = 1e-8f,
                          .clip_norm = 1.0f};
  c.lora = ag_lora_defaults();
  c.lora.rank = 0;
  return c;
}

ag_status ag_lm_train_config_check(const ag_lm_train_config *c) {
  if (c->batch_size < 1 || c->grad_accum < 1 || c->steps < 1)
    return ag_error_set(AG_ERR_INVALID,
                        "lm train: batch_size (%lld), grad_accum (%lld) and steps (%lld) must "
                        "be >= 1",
                        (long long)c->batch_size, (long long)c->grad_accum, (long long)c->steps);
  if (!(c->lr > 0) || !isfinite(c->lr))
    return ag_error_set(AG_ERR_INVALID, "lm train: learning rate %g must be positive",
                        (double)c->lr);
  if (!(c->min_lr <= c->lr) || !isfinite(c->min_lr))
    return ag_error_set(AG_ERR_INVALID, "lm train: min_lr %g must be at most lr %g",
                        (double)c->min_lr, (double)c->lr);
  if (c->warmup_steps > c->steps)
    return ag_error_set(AG_ERR_INVALID, "lm train: %lld warmup steps exceed the %lld steps",
                        (long long)c->warmup_steps, (long long)c->steps);
  if (!(c->weight_decay >= 0) || !(c->beta1 >= 0 && c->beta1 < 1) ||
      !(c->beta2 >= 0 && c->beta2 < 1) || !(c->eps > 0) || !(c->clip_norm >= 0))
    return ag_error_set(AG_ERR_INVALID,
                        "lm train: weight decay and clip norm must be >= 0, betas in [0, 1), "
                        "eps > 0");
  if (c->lora.rank > 0) return ag_lora_config_check(&c->lora);
  return AG_OK;
}

/* Fills in the automatic settings. */
static ag_lm_train_config resolve(const ag_lm_train_config *in) {
  ag_lm_train_config c = *in;
  if (c.min_lr < 0) c.min_lr = c.lr * AUTO_MIN_LR_FRACTION;
  if (c.warmup_steps < 0) c.warmup_steps = (int64_t)((double)c.steps * AUTO_WARMUP_FRACTION);
  if (c.lora.rank < 0) c.lora.rank = 0;
  return c;
}

/* The settings a checkpoint records and a resumed run must repeat: the
 * training config and the model's shape. */
static json_t *config_to_json(const ag_lm_train_config *c, const ag_transformer *m) {
  const ag_transformer_config *mc = ag_transformer_config_of(m);
  json_t *lora =
      c->lora.rank > 0
          ? json_pack("{s:i, s:f, s:f, s:s, s:s}", "rank", c->lora.rank, "alpha",
                      (double)c->lora.alpha, "dropout", (double)c->lora.dropout, "target_modules",
                      c->lora.target_modules, "base", c->lora.base_model_name_or_path)
          : json_null();
  json_t *model = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "arch",
      mc->arch == AG_ARCH_GPT2 ? "gpt2" : "llama", "vocab_size", (json_int_t)mc->vocab_size,
      "hidden_size", (json_int_t)mc->hidden_size, "intermediate_size",
      (json_int_t)mc->intermediate_size, "num_layers", (json_int_t)mc->num_layers, "num_heads",
      (json_int_t)mc->num_heads, "num_kv_heads", (json_int_t)mc->num_kv_heads, "head_dim",
      (json_int_t)mc->head_dim, "max_positions", (json_int_t)mc->max_positions);
  return json_pack("{s:I, s:I, s:I, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:I, s:o, s:o}",
                   "batch_size", (json_int_t)c->batch_size, "grad_accum", (json_int_t)c->grad_accum,
                   "steps", (json_int_t)c->steps, "lr", (double)c->lr, "min_lr", (double)c->min_lr,
                   "warmup_steps", (json_int_t)c->warmup_steps, "weight_decay",
                   (double)c->weight_decay, "beta1", (double)c->beta1, "beta2", (double)c->beta2,
                   "eps", (double)c->eps, "clip_norm", (double)c->clip_norm, "seed",
                   (json_int_t)c->seed, "lora", lora, "model", model);
}

/* ---- batches ----------------------------------------------------------------------------- */

typedef struct trainer {
  ag_lm_train_config c;
  const ag_lm_train_run *run;
  ag_transformer *model;
  const ag_lm_data *train, *eval;
  ag_lora *lora;     /* rank > 0 */
  ag_params *params; /* what trains: the model's or the adapters' */
  ag_optim *optim;
  ag_schedule schedule;
  ag_tape *tape;
  int64_t T, windows;
  int64_t *order; /* (windows) the shuffle of order_epoch */
  int64_t order_epoch;
  int32_t *ids, *targets; /* (K, B, T) the update's windows */
  int64_t tokens;         /* input tokens trained on */
  double train_loss, eval_loss;
  FILE *metrics;
} trainer;

/* The window of the run's example g. */
static int64_t window_of(trainer *tr, int64_t g) {
  int64_t epoch = g / tr->windows;
  if (epoch != tr->order_epoch) {
    ag_rng rng;
    ag_rng_seed2(&rng, tr->c.seed, (uint64_t)epoch);
    for (int64_t i = 0; i < tr->windows; i++) tr->order[i] = i;
    ag_rng_shuffle_i64(&rng, tr->order, tr->windows);
    tr->order_epoch = epoch;
  }
  return tr->order[g % tr->windows];
}

/* Fills ids/targets with update `step`'s windows; returns the targets that
 * count and, in *tokens, the input tokens that are not padding. */
static int64_t fill_update(trainer *tr, int64_t step, int64_t *tokens) {
  int64_t n = tr->c.batch_size * tr->c.grad_accum, T = tr->T, counted = 0;
  *tokens = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t w = window_of(tr, step * n + i);
    int64_t inputs = 0;
    counted += ag_lm_data_window(tr->train, w, tr->ids + i * T, tr->targets + i * T, &inputs);
    *tokens += inputs;
  }
  return counted;
}

/* Sum of next-token losses over the (B, T) batch, times `scale`; a scalar. */
static ag_tensor *batch_loss(ag_tape *t, ag_transformer *m, const int32_t *ids,
                             const int32_t *targets, int64_t B, int64_t T, float scale) {
  ag_tensor *logits = ag_transformer_forward(t, m, ids, B, T); /* (B, T, V) */
  if (!logits) return NULL;
  logits = ag_reshape(t, logits, 2, (int64_t[]){B * T, logits->shape[2]});
  return ag_scale(t, ag_cross_entropy(t, logits, targets, NULL, -1, true), scale);
}

ag_status ag_lm_evaluate(ag_transformer *model, const ag_lm_data *d, int64_t batch_size,
                         int64_t max_batches, double *loss) {
  *loss = NAN;
  if (!model || !d || batch_size < 1)
    return ag_error_set(AG_ERR_INVALID, "lm evaluate: bad arguments");
  int64_t T = ag_lm_data_seq_len(d), windows = ag_lm_data_windows(d);
  if (max_batches > 0 && max_batches * batch_size < windows) windows = max_batches * batch_size;
  if (windows == 0) return ag_error_set(AG_ERR_INVALID, "lm evaluate: no windows to evaluate");
  ag_tape *t = ag_tape_create();
  int32_t *ids = malloc((size_t)(batch_size * T) * sizeof(int32_t));
  int32_t *targets = malloc((size_t)(batch_size * T) * sizeof(int32_t));
  ag_status st = t && ids && targets ? AG_OK : ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (t) {
    ag_tape_set_grad_enabled(t, false);
    ag_tape_set_training(t, false);
  }
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t start = 0; start < windows && !st; start += batch_size) {
    int64_t B = windows - start < batch_size ? windows - start : batch_size, n = 0;
    for (int64_t b = 0; b < B; b++)
      n += ag_lm_data_window(d, start + b, ids + b * T, targets + b * T, NULL);
    if (n == 0) continue;
    ag_tape_reset(t);
    ag_tensor *l = batch_loss(t, model, ids, targets, B, T, 1.0f);
    if (!l) {
      st = ag_error_set(ag_tape_status(t), "lm evaluate: %s", ag_tape_error(t));
      break;
    }
    sum += (double)l->data[0];
    count += n;
  }
  ag_tape_destroy(t);
  free(ids);
  free(targets);
  if (!st && count == 0)
    st = ag_error_set(AG_ERR_INVALID, "lm evaluate: the windows hold no trained target");
  if (!st) *loss = sum / (double)count;
  return st;
}

/* ---- files -------------------------------------------------------------------------------- */

/* dir/file into out; false (out empty) when it does not fit. */
static bool path_join(char *out, size_t size, const char *dir, const char *file) {
  size_t a = strlen(dir), b = strlen(file);
  if (a + b + 2 > size) {
    out[0] = '\0';
    return false;
  }
  memmove(out, dir, a);
  out[a] = '/';
  memcpy(out + a + 1, file, b + 1);
  return true;
}

void ag_lm_checkpoint_path(const char *out_dir, int64_t step, char *buf, size_t size) {
  int n = snprintf(buf, size, "%s/" CHECKPOINT_NAME "%lld", out_dir, (long long)step);
  if (n < 0 || (size_t)n >= size) buf[0] = '\0';
}

static bool is_dir(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

/* Removes a folder holding only files (a checkpoint or its partial copy). */
static ag_status remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? AG_OK : ag_error_set(AG_ERR_IO, "cannot open %s", dir);
  struct dirent *e;
  char path[PATH_BYTES];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (path_join(path, sizeof path, dir, e->d_name)) unlink(path);
  }
  closedir(d);
  if (rmdir(dir) != 0) return ag_error_set(AG_ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
  return AG_OK;
}

static void sync_folder(const char *dir) {
  int fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

static ag_status copy_file(const char *from, const char *to) {
  char *data = NULL;
  size_t bytes = 0;
  ag_status st = ag_read_file(from, &data, &bytes);
  if (!st) st = ag_atomic_write(to, data, bytes);
  free(data);
  return st;
}

/* tokenizer_config.json for a tokenizer that came without one. */
static ag_status write_tokenizer_config(const char *path, const ag_lm_train_run *run,
                                        int64_t max_positions) {
  const ag_tokenizer *tok = run->tokenizer;
  json_t *o = json_pack("{s:s, s:I}", "tokenizer_class", "PreTrainedTokenizerFast",
                        "model_max_length", (json_int_t)max_positions);
  if (!o) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  const char *keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
  const ag_tok_role roles[] = {AG_TOK_BOS, AG_TOK_EOS, AG_TOK_UNK, AG_TOK_PAD};
  for (int i = 0; i < 4; i++) {
    int32_t id = ag_tok_special_id(tok, roles[i]);
    size_t bytes = 0;
    const char *text = id >= 0 ? ag_tok_token_text(tok, id, &bytes) : NULL;
    if (text) json_object_set_new(o, keys[i], json_stringn(text, bytes));
  }
  const char *jinja = run->chat_template ? ag_chat_template_jinja(run->chat_template) : NULL;
  if (jinja) json_object_set_new(o, "chat_template", json_string(jinja));
  ag_status st = ag_json_save(path, o);
  json_decref(o);
  return st;
}

/* tokenizer.json and tokenizer_config.json into dir, so it loads alone. */
static ag_status write_tokenizer(const char *dir, const ag_lm_train_run *run,
                                 int64_t max_positions) {
  char src_json[PATH_BYTES] = "", src_config[PATH_BYTES] = "", to[PATH_BYTES];
  const char *p = run->tokenizer_path;
  if (p && is_dir(p)) {
    path_join(src_json, sizeof src_json, p, TOKENIZER_JSON);
    path_join(src_config, sizeof src_config, p, TOKENIZER_CONFIG);
  } else if (p && strlen(p) > 5 && !strcmp(p + strlen(p) - 5, ".json")) {
    snprintf(src_json, sizeof src_json, "%s", p);
    snprintf(src_config, sizeof src_config, "%s", p);
    char *slash = strrchr(src_config, '/');
    if (slash)
      snprintf(slash + 1, sizeof src_config - (size_t)(slash + 1 - src_config), TOKENIZER_CONFIG);
    else
      snprintf(src_config, sizeof src_config, TOKENIZER_CONFIG);
  }
  ag_status st = AG_OK;
  path_join(to, sizeof to, dir, TOKENIZER_JSON);
  if (src_json[0] && ag_file_exists(src_json))
    st = copy_file(src_json, to);
  else if (run->tokenizer)
    st = ag_tok_save_json(run->tokenizer, to);
  if (st) return st;
  path_join(to, sizeof to, dir, TOKENIZER_CONFIG);
  if (src_config[0] && ag_file_exists(src_config)) return copy_file(src_config, to);
  if (run->tokenizer) return write_tokenizer_config(to, run, max_positions);
  return AG_OK;
}

/* The model (Hugging Face layout) or the adapters (PEFT layout), with the
 * tokenizer, into dir. */
static ag_status write_model(const trainer *tr, const char *dir) {
  ag_status st = ag_mkdir_p(dir);
  if (st) return st;
  if (tr->lora)
    st = ag_lora_save(tr->lora, dir);
  else
    st = ag_hf_save(dir, tr->model, tr->run->model_info, AG_DTYPE_F32);
  /* A folder without a tokenizer still resumes, and loads with one given
   * separately: not a reason to stop a run. */
  if (!st && write_tokenizer(dir, tr->run, ag_transformer_config_of(tr->model)->max_positions)) {
    ag_warn("%s: no tokenizer files: %s", dir, ag_error_message());
    ag_error_clear();
  }
  return st;
}

static json_t *number_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* checkpoint-N.partial, filled, then renamed into place: a checkpoint folder
 * is complete or absent. */
static ag_status write_checkpoint(const trainer *tr, int64_t step) {
  const char *out = tr->run->out_dir;
  char final_dir[PATH_BYTES], partial[PATH_BYTES], old[PATH_BYTES], path[PATH_BYTES];
  ag_lm_checkpoint_path(out, step, final_dir, sizeof final_dir);
  int a = snprintf(partial, sizeof partial, "%s.partial", final_dir);
  int b = snprintf(old, sizeof old, "%s.old", final_dir);
  if (!final_dir[0] || a < 0 || (size_t)a >= sizeof partial || b < 0 || (size_t)b >= sizeof old)
    return ag_error_set(AG_ERR_INVALID, "checkpoint path under %s is too long", out);
  ag_status st = remove_folder(partial);
  if (!st) st = write_model(tr, partial);
  path_join(path, sizeof path, partial, OPTIMIZER_FILE);
  if (!st) st = ag_optim_save(path, tr->optim);
  if (!st) {
    char fingerprint[32];
    snprintf(fingerprint, sizeof fingerprint, "%016llx",
             (unsigned long long)ag_lm_data_fingerprint(tr->train));
    json_t *state =
        json_pack("{s:s, s:I, s:I, s:i, s:s, s:I, s:o, s:o, s:o}", "format", STATE_FORMAT, "step",
                  (json_int_t)step, "tokens", (json_int_t)tr->tokens, "threads", ag_threads_get(),
                  "data_fingerprint", fingerprint, "windows", (json_int_t)tr->windows, "config",
                  config_to_json(&tr->c, tr->model), "train_loss", number_or_null(tr->train_loss),
                  "eval_loss", number_or_null(tr->eval_loss));
    path_join(path, sizeof path, partial, STATE_FILE);
    st = state ? ag_json_save(path, state) : ag_error_set(AG_ERR_NOMEM, "out of memory");
    json_decref(state);
  }
  if (st) {
    remove_folder(partial);
    return ag_error_wrap(st, "writing checkpoint %s", final_dir);
  }
  remove_folder(old);
  if (ag_file_exists(final_dir) && rename(final_dir, old) != 0)
    return ag_error_set(AG_ERR_IO, "cannot move %s aside: %s", final_dir, strerror(errno));
  if (rename(partial, final_dir) != 0)
    return ag_error_set(AG_ERR_IO, "cannot rename %s to %s: %s", partial, final_dir,
                        strerror(errno));
  sync_folder(out);
  remove_folder(old);
  return AG_OK;
}

/* "checkpoint-N" -> N; -1 for any other name. */
static int64_t step_of_name(const char *name) {
  size_t prefix = strlen(CHECKPOINT_NAME);
  if (strncmp(name, CHECKPOINT_NAME, prefix)) return -1;
  const char *digits = name + prefix;
  if (!*digits || strlen(digits) > 12) return -1;
  for (const char *c = digits; *c; c++)
    if (*c < '0' || *c > '9') return -1;
  return atoll(digits);
}

/* A checkpoint's trainer_state.json, checked to be one of ours. */
static ag_status read_state(const char *dir, int64_t step, json_t **out) {
  char path[PATH_BYTES];
  path_join(path, sizeof path, dir, STATE_FILE);
  json_t *s;
  ag_status st = ag_json_load(path, &s);
  if (st) return st;
  const char *format = json_string_value(json_object_get(s, "format"));
  json_t *at = json_object_get(s, "step");
  if (!format || strcmp(format, STATE_FORMAT) || !json_is_integer(at) ||
      json_integer_value(at) != step || !json_is_object(json_object_get(s, "config"))) {
    json_decref(s);
    return ag_error_set(AG_ERR_FORMAT, "%s is not an %s trainer state for step %lld", path,
                        STATE_FORMAT, (long long)step);
  }
  *out = s;
  return AG_OK;
}

/* The steps of run_dir's checkpoint folders, ascending; *complete says which
 * hold a readable state. */
static int64_t list_checkpoints(const char *run_dir, int64_t *steps, int64_t max) {
  DIR *d = opendir(run_dir);
  if (!d) return 0;
  int64_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int64_t s = step_of_name(e->d_name);
    if (s < 0) continue;
    if (n < max) steps[n++] = s;
  }
  closedir(d);
  for (int64_t i = 1; i < n; i++) /* insertion sort: a handful of folders */
    for (int64_t j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
      int64_t x = steps[j];
      steps[j] = steps[j - 1];
      steps[j - 1] = x;
    }
  return n;
}

#define MAX_CHECKPOINTS 4096

/* Removes all but the newest `keep` checkpoints. */
static void prune_checkpoints(const char *run_dir, int keep) {
  if (keep <= 0) return;
  int64_t *steps = malloc(MAX_CHECKPOINTS * sizeof *steps);
  if (!steps) return;
  int64_t n = list_checkpoints(run_dir, steps, MAX_CHECKPOINTS);
  char path[PATH_BYTES];
  for (int64_t i = 0; i + keep < n; i++) {
    ag_lm_checkpoint_path(run_dir, steps[i], path, sizeof path);
    if (path[0] && remove_folder(path)) ag_warn("%s", ag_error_message());
  }
  free(steps);
  ag_error_clear();
}

/* ---- metrics.jsonl ------------------------------------------------------------------------ */

/* Keeps the lines of steps <= upto (a resumed run rewrites what came after
 * its checkpoint), atomically; 0 empties the file. */
static ag_status trim_metrics(const char *path, int64_t upto) {
  char *text = NULL;
  size_t bytes = 0;
  if (upto > 0 && ag_file_exists(path) && ag_read_file(path, &text, &bytes)) {
    ag_error_clear();
    text = NULL;
  }
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) {
    free(text);
    return st;
  }
  for (char *line = text; line && *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    json_t *o = json_loadb(line, len, 0, NULL);
    json_t *s = json_object_get(o, "step");
    if (json_is_integer(s) && json_integer_value(s) <= upto)
      fprintf(ag_atomic_stream(f), "%.*s\n", (int)len, line);
    json_decref(o);
    line = end ? end + 1 : NULL;
  }
  free(text);
  return ag_atomic_commit(f);
}

static ag_status write_metrics_line(trainer *tr, const ag_lm_train_step *s) {
  if (!tr->metrics) return AG_OK;
  json_t *o = json_pack("{s:I, s:f, s:f, s:f, s:f, s:I}", "step", (json_int_t)s->step, "loss",
                        s->loss, "lr", s->lr, "grad_norm", s->grad_norm, "tokens_per_second",
                        s->tokens_per_second, "tokens", (json_int_t)s->tokens);
  if (o && isfinite(s->eval_loss)) json_object_set_new(o, "eval_loss", json_real(s->eval_loss));
  ag_status st = o ? ag_jsonl_write(tr->metrics, o) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_decref(o);
  return st;
}

/* ---- starting and resuming --------------------------------------------------------------- */

/* The first key whose values differ, for the message. */
static const char *first_difference(json_t *want, json_t *have) {
  const char *key;
  json_t *v;
  json_object_foreach(want, key, v) {
    if (!json_equal(v, json_object_get(have, key))) return key;
  }
  return "?";
}

/* A setting's value for messages: floats as the float they came from. */
static char *value_text(const json_t *v) {
  if (!json_is_real(v)) return v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
  char buf[32];
  snprintf(buf, sizeof buf, "%.7g", json_real_value(v));
  char *copy = malloc(strlen(buf) + 1);
  if (copy) memcpy(copy, buf, strlen(buf) + 1);
  return copy;
}

/* Loads checkpoint dir into the trainer: weights or adapters, optimizer,
 * counters. */
static ag_status load_checkpoint(trainer *tr, const char *dir, json_t *state) {
  json_t *want = config_to_json(&tr->c, tr->model), *have = json_object_get(state, "config");
  ag_status st = AG_OK;
  if (!want) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!json_equal(want, have)) {
    const char *key = first_difference(want, have);
    char *w = value_text(json_object_get(want, key));
    char *h = value_text(json_object_get(have, key));
    st = ag_error_set(AG_ERR_INVALID,
                      "cannot resume from %s: its %s is %s, this run's is %s (a resumed run must "
                      "use the same settings)",
                      dir, key, h ? h : "missing", w ? w : "?");
    free(w);
    free(h);
  }
  json_decref(want);
  if (st) return st;
  char fingerprint[32];
  snprintf(fingerprint, sizeof fingerprint, "%016llx",
           (unsigned long long)ag_lm_data_fingerprint(tr->train));
  const char *stored = json_string_value(json_object_get(state, "data_fingerprint"));
  if (!stored || strcmp(stored, fingerprint))
    return ag_error_set(AG_ERR_INVALID,
                        "cannot resume from %s: it was trained on other data (fingerprint %s, "
                        "this data %s); use the same files, tokenizer and sequence length",
                        dir, stored ? stored : "missing", fingerprint);
  json_t *threads = json_object_get(state, "threads");
  if (json_is_integer(threads) && json_integer_value(threads) != ag_threads_get())
    ag_warn("%s was written with %lld threads, this run uses %d: the loss curve may differ in "
            "the last bits from an uninterrupted run",
            dir, (long long)json_integer_value(threads), ag_threads_get());

  char path[PATH_BYTES];
  if (tr->lora) {
    ag_safetensors *f;
    path_join(path, sizeof path, dir, "adapter_model.safetensors");
    st = ag_safetensors_open(path, &f);
    if (!st) {
      st = ag_safetensors_load_params(f, ag_lora_params(tr->lora), false);
      ag_safetensors_close(f);
    }
  } else {
    /* Through the Hugging Face reader: it undoes GPT-2's Conv1D transposes. */
    ag_transformer *saved;
    st = ag_hf_load(dir, AG_HF_LOAD_TRAINABLE, &saved, NULL);
    if (!st) {
      ag_params *from = ag_transformer_params(saved), *to = tr->params;
      if (from->total != to->total || from->count != to->count)
        st = ag_error_set(AG_ERR_SHAPE, "%s holds a model of %lld parameters, this one has %lld",
                          dir, (long long)from->total, (long long)to->total);
      else
        memcpy(to->data, from->data, (size_t)to->total * sizeof(float));
      ag_transformer_destroy(saved);
    }
  }
  path_join(path, sizeof path, dir, OPTIMIZER_FILE);
  int64_t step = (int64_t)json_integer_value(json_object_get(state, "step"));
  if (!st) st = ag_optim_load(path, tr->optim);
  if (!st) tr->optim->step = step;
  if (st) return ag_error_wrap(st, "loading checkpoint %s", dir);
  tr->tokens = (int64_t)json_integer_value(json_object_get(state, "tokens"));
  json_t *tl = json_object_get(state, "train_loss"), *el = json_object_get(state, "eval_loss");
  tr->train_loss = json_is_number(tl) ? json_number_value(tl) : NAN;
  tr->eval_loss = json_is_number(el) ? json_number_value(el) : NAN;
  return AG_OK;
}

/* Finds where the run starts: 0, or the step of the checkpoint loaded. */
static ag_status find_start(trainer *tr, int64_t *start) {
  *start = 0;
  const ag_lm_train_run *run = tr->run;
  if (!run->out_dir) return AG_OK;
  int64_t *steps = malloc(MAX_CHECKPOINTS * sizeof *steps);
  if (!steps) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  int64_t n = list_checkpoints(run->out_dir, steps, MAX_CHECKPOINTS);
  ag_status st = AG_OK;
  if (!run->resume) {
    if (n > 0)
      st = ag_error_set(AG_ERR_INVALID,
                        "%s already holds checkpoints of a run: pass --resume to continue it, "
                        "or choose another output folder",
                        run->out_dir);
    free(steps);
    return st;
  }
  /* The newest checkpoint whose state reads back. */
  json_t *state = NULL;
  char dir[PATH_BYTES] = "";
  for (int64_t i = n - 1; i >= 0 && !state; i--) {
    ag_lm_checkpoint_path(run->out_dir, steps[i], dir, sizeof dir);
    if (read_state(dir, steps[i], &state)) {
      ag_warn("skipping %s: %s", dir, ag_error_message());
      state = NULL;
    }
  }
  free(steps);
  ag_error_clear();
  if (!state) {
    ag_info("no checkpoint in %s yet: starting from scratch", run->out_dir);
    return AG_OK;
  }
  st = load_checkpoint(tr, dir, state);
  if (!st) *start = (int64_t)json_integer_value(json_object_get(state, "step"));
  if (!st && *start > tr->c.steps)
    st = ag_error_set(AG_ERR_INVALID, "%s is past this run's %lld steps", dir,
                      (long long)tr->c.steps);
  json_decref(state);
  if (!st) ag_info("resuming from %s", dir);
  return st;
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void trainer_free(trainer *tr) {
  if (tr->metrics) fclose(tr->metrics);
  ag_lora_destroy(tr->lora);
  ag_optim_destroy(tr->optim);
  ag_tape_destroy(tr->tape);
  free(tr->order);
  free(tr->ids);
  free(tr->targets);
}

static ag_status trainer_init(trainer *tr, ag_transformer *model, const ag_lm_train_config *c,
                              const ag_lm_data *train, const ag_lm_data *eval,
                              const ag_lm_train_run *run) {
  memset(tr, 0, sizeof *tr);
  tr->c = resolve(c);
  tr->run = run;
  tr->model = model;
  tr->train = train;
  tr->eval = eval;
  tr->T = ag_lm_data_seq_len(train);
  tr->windows = ag_lm_data_windows(train);
  tr->order_epoch = -1;
  tr->train_loss = tr->eval_loss = NAN;
  ag_status st = ag_lm_train_config_check(&tr->c);
  if (st) return st;
  const ag_transformer_config *mc = ag_transformer_config_of(model);
  if (tr->windows < 1)
    return ag_error_set(AG_ERR_INVALID, "lm train: the training data holds no window");
  if (tr->T > mc->max_positions)
    return ag_error_set(AG_ERR_INVALID,
                        "lm train: sequence length %lld exceeds the model's %lld positions",
                        (long long)tr->T, (long long)mc->max_positions);
  if (eval && ag_lm_data_seq_len(eval) != tr->T)
    return ag_error_set(AG_ERR_INVALID, "lm train: eval windows have another sequence length");
  if (tr->c.lora.rank > 0) {
    ag_rng seeder;
    ag_rng_seed2(&seeder, tr->c.seed, LORA_SEED_SALT);
    st = ag_lora_create(model, &tr->c.lora, ag_rng_u64(&seeder), &tr->lora);
    if (st) return st;
    tr->params = ag_lora_params(tr->lora);
  } else {
    if (!ag_transformer_trainable(model))
      return ag_error_set(AG_ERR_INVALID,
                          "lm train: the model is read-only (memory-mapped): load it trainable "
                          "for full training, or train LoRA adapters");
    tr->params = ag_transformer_params(model);
  }
  ag_optim_config oc = ag_optim_adamw_defaults(tr->c.lr);
  oc.weight_decay = tr->c.weight_decay;
  oc.beta1 = tr->c.beta1;
  oc.beta2 = tr->c.beta2;
  oc.eps = tr->c.eps;
  st = ag_optim_create(tr->params, &oc, &tr->optim);
  if (st) return st;
  tr->schedule = (ag_schedule){.kind = AG_SCHEDULE_WARMUP_COSINE,
                               .lr = tr->c.lr,
                               .min_lr = tr->c.min_lr,
                               .warmup_steps = tr->c.warmup_steps,
                               .total_steps = tr->c.steps};
  int64_t n = tr->c.batch_size * tr->c.grad_accum * tr->T;
  tr->tape = ag_tape_create();
  tr->order = malloc((size_t)tr->windows * sizeof *tr->order);
  tr->ids = malloc((size_t)n * sizeof *tr->ids);
  tr->targets = malloc((size_t)n * sizeof *tr->targets);
  if (!tr->tape || !tr->order || !tr->ids || !tr->targets)
    return ag_error_set(AG_ERR_NOMEM, "lm train: out of memory");
  return AG_OK;
}

/* One update: K micro-batches forward and backward, clip, AdamW. */
static ag_status train_update(trainer *tr, int64_t step, ag_lm_train_step *out) {
  const ag_lm_train_config *c = &tr->c;
  int64_t B = c->batch_size, K = c->grad_accum, T = tr->T, tokens = 0;
  int64_t counted = fill_update(tr, step, &tokens);
  ag_params_zero_grad(tr->params);
  double loss = 0.0;
  ag_tape *t = tr->tape;
  for (int64_t k = 0; k < K && counted > 0; k++) {
    ag_tape_reset(t);
    ag_rng_seed2(ag_tape_rng(t), c->seed ^ DROPOUT_SEED_SALT, (uint64_t)(step * K + k));
    ag_tensor *l = batch_loss(t, tr->model, tr->ids + k * B * T, tr->targets + k * B * T, B, T,
                              1.0f / (float)counted);
    if (!l) return ag_error_set(ag_tape_status(t), "lm train: %s", ag_tape_error(t));
    loss += (double)l->data[0];
    ag_status st = ag_backward(t, l);
    if (st) return ag_error_wrap(st, "lm train: backward");
  }
  ag_tape_reset(t);
  if (!isfinite(loss))
    return ag_error_set(AG_ERR_INVALID,
                        "lm train: the loss diverged at update %lld (%g): try a smaller "
                        "learning rate or a lower clip norm",
                        (long long)step + 1, loss);
  float norm = ag_clip_grad_norm(tr->params, c->clip_norm > 0 ? c->clip_norm : INFINITY);
  float lr = ag_schedule_lr(&tr->schedule, step);
  ag_status st = ag_optim_step(tr->optim, lr);
  if (st) return st;
  tr->tokens += tokens;
  tr->train_loss = loss;
  *out = (ag_lm_train_step){.step = step + 1,
                            .loss = loss,
                            .lr = lr,
                            .grad_norm = norm,
                            .eval_loss = NAN,
                            .tokens = tr->tokens};
  if (counted == 0) ag_warn("update %lld has no trained target", (long long)step + 1);
  return AG_OK;
}

static ag_status evaluate(trainer *tr, double *loss) {
  const ag_lm_data *d = tr->eval ? tr->eval : tr->train;
  return ag_lm_evaluate(tr->model, d, tr->c.batch_size, tr->run->eval_batches, loss);
}

static bool every(int64_t step, int64_t period) { return period > 0 && step % period == 0; }

ag_status ag_lm_train(ag_transformer *model, const ag_lm_train_config *c, const ag_lm_data *train,
                      const ag_lm_data *eval, const ag_lm_train_run *run,
                      ag_lm_train_result *result) {
  memset(result, 0, sizeof *result);
  result->eval_loss = result->train_loss = NAN;
  if (!model || !c || !train || !run)
    return ag_error_set(AG_ERR_INVALID, "lm train: NULL argument");
  double started = ag_time_seconds();
  trainer tr;
  ag_status st = trainer_init(&tr, model, c, train, eval, run);
  int64_t start = 0;
  if (!st) st = find_start(&tr, &start);
  char path[PATH_BYTES];
  if (!st && run->out_dir) {
    st = ag_mkdir_p(run->out_dir);
    if (!st && !path_join(path, sizeof path, run->out_dir, METRICS_FILE))
      st = ag_error_set(AG_ERR_INVALID, "output folder name is too long");
    if (!st) st = trim_metrics(path, start);
    if (!st && !(tr.metrics = fopen(path, "ab")))
      st = ag_error_set(AG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  }
  result->resumed = start > 0;
  result->start_step = start;
  const int64_t steps = tr.c.steps;
  int64_t stop = run->stop_after > 0 && run->stop_after < steps ? run->stop_after : steps;
  ag_progress *progress = NULL;
  if (!st && start < stop && run->progress) {
    progress = ag_progress_begin("training", steps, "steps");
    ag_progress_update(progress, start);
  }
  double interval_seconds = 0.0, train_seconds = 0.0;
  int64_t interval_tokens = 0, train_tokens = 0;
  for (int64_t step = start; step < stop && !st; step++) {
    double t0 = ag_time_seconds();
    int64_t tokens_before = tr.tokens;
    ag_lm_train_step s;
    st = train_update(&tr, step, &s);
    if (st) break;
    double seconds = ag_time_seconds() - t0;
    int64_t done = step + 1, tokens = tr.tokens - tokens_before;
    interval_seconds += seconds;
    interval_tokens += tokens;
    train_seconds += seconds;
    train_tokens += tokens;
    s.tokens_per_second = seconds > 0 ? (double)tokens / seconds : 0.0;
    bool evaluated = every(done, run->eval_every) || done == steps;
    if (evaluated) {
      st = evaluate(&tr, &s.eval_loss);
      if (st) break;
      tr.eval_loss = s.eval_loss;
      ag_info("step %lld/%lld  loss %.4f  eval_loss %.4f  lr %.3g  %.0f tokens/s", (long long)done,
              (long long)steps, s.loss, s.eval_loss, s.lr,
              interval_seconds > 0 ? (double)interval_tokens / interval_seconds : 0.0);
    }
    if (evaluated || every(done, run->log_every) || done == stop) {
      ag_lm_train_step line = s;
      line.tokens_per_second =
          interval_seconds > 0 ? (double)interval_tokens / interval_seconds : 0.0;
      st = write_metrics_line(&tr, &line);
      interval_seconds = 0.0;
      interval_tokens = 0;
    }
    if (run->on_step) run->on_step(run->user, &s);
    if (progress) {
      ag_progress_update(progress, done);
      ag_progress_set_note(progress, "loss %.4f  lr %.2e  %.0f tok/s", s.loss, s.lr,
                           s.tokens_per_second);
    }
    if (!st && run->out_dir && (every(done, run->save_every) || done == stop)) {
      st = write_checkpoint(&tr, done);
      if (!st) prune_checkpoints(run->out_dir, run->keep);
    }
  }
  ag_progress_end(progress);
  int64_t reached = tr.optim ? tr.optim->step : 0;
  /* A finished run leaves its model (or adapters) in out_dir itself. */
  if (!st && run->out_dir && reached == steps) st = write_model(&tr, run->out_dir);
  result->steps = reached;
  result->train_loss = tr.train_loss;
  result->eval_loss = tr.eval_loss;
  result->tokens = tr.tokens;
  result->seconds = ag_time_seconds() - started;
  result->tokens_per_second = train_seconds > 0 ? (double)train_tokens / train_seconds : 0.0;
  trainer_free(&tr);
  return st;
}

ag_status ag_lm_merge_adapter(const char *base_dir, const char *adapter_dir, const char *out_dir) {
  ag_transformer *base = NULL;
  ag_lora *lora = NULL;
  ag_hf_info info;
  ag_status st = ag_hf_load(base_dir, AG_HF_LOAD_TRAINABLE, &base, &info);
  if (!st) st = ag_lora_load(adapter_dir, base, &lora);
  if (!st) st = ag_lora_merge(lora, base);
  if (!st) st = ag_hf_save(out_dir, base, &info, AG_DTYPE_F32);
  if (!st) {
    ag_lm_train_run run = {.tokenizer_path = base_dir};
    st = write_tokenizer(out_dir, &run, ag_transformer_config_of(base)->max_positions);
  }
  ag_lora_destroy(lora);
  ag_transformer_destroy(base);
  if (st) return ag_error_wrap(st, "merging %s into %s", adapter_dir, base_dir);
  return AG_OK;
}
