/* `agora sml train` (agora/sml_train.h): rounds of on-policy teacher-student
 * rollouts through the dialogue runner, then offline fine-tuning on the
 * solved ones or one GRPO update over all of them; question priming before
 * the rounds; atomic checkpoints per round and resume.
 *
 * The run folder:
 *   state.json            settings, rounds done, the current checkpoint
 *   checkpoint-R/         after round R (checkpoint-0: after priming): the
 *                         model folder (full) or PEFT adapter (LoRA), and
 *                         optimizer.safetensors; written as .partial, renamed
 *   priming/, round-R/    rollouts/transcripts.jsonl (+ metrics.json)
 *   rounds.jsonl          one line of statistics per stage
 *   eval/base, eval/final the evaluations (<family>/transcripts.jsonl)
 *   results.json          base and trained acc@1..K
 *   the trained model (or adapter) itself, when the rounds are done. */
#include "agora/json.h"
#include "agora/lm_model.h"
#include "agora/sml_train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_FORMAT   "agora.sml_train.v1"
#define PATH_BYTES     4096
#define ROLLOUT_BATCH  32
#define ADV_EPS        1e-4
#define TRAIN_SEED_TAG 0x736d6c747261696eULL /* "smltrain" */

static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

ag_sml_train_options ag_sml_train_defaults(void) {
  ag_sml_train_options o = {
      .mode = AG_SML_OFFLINE,
      .rounds = 4,
      .tasks_per_round = 16,
      .group = 8,
      .gamma = 0.7,
      .train_turns = 4,
      .eval_turns = 10,
      .eval_tasks = 20,
      .epochs = 1,
      .batch_size = 8,
      .micro_batch = 8,
      .clip_norm = 1.0f,
      .temperature = 1.0f,
      .max_tokens = 384, /* worked maze replies run to 175 tokens at level 1, 271 at 2 */
      .priming_decay = 0.75,
      .train_names = "student"};
  o.lora = ag_lora_defaults();
  o.lora.rank = 0;
  return o;
}

/* ---- rollouts on disk --------------------------------------------------------------------- */

void ag_sml_rollout_clear(ag_sml_rollout *r) {
  if (!r) return;
  ag_sml_messages_free(r->messages, r->count);
  memset(r, 0, sizeof *r);
}

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

static ag_status rollout_from_json(const json_t *rec, ag_sml_rollout *out) {
  memset(out, 0, sizeof *out);
  const json_t *msgs = json_object_get(rec, "messages"), *meta = json_object_get(rec, "meta");
  if (!json_is_array(msgs) || !json_is_object(meta))
    return ag_error_set(AG_ERR_FORMAT, "a transcript record without messages or meta");
  size_t n = json_array_size(msgs);
  out->messages = calloc(n > 0 ? n : 1, sizeof *out->messages);
  if (!out->messages) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const json_t *m = json_array_get(msgs, i);
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *content = json_string_value(json_object_get(m, "content"));
    const char *name = json_string_value(json_object_get(m, "name"));
    if (!role || !content) {
      ag_sml_rollout_clear(out);
      return ag_error_set(AG_ERR_FORMAT, "message %zu has no role or content", i);
    }
    out->messages[i] = (ag_chat_message){dup_str(role), dup_str(content), dup_str(name)};
    out->count = (int)i + 1;
    if (!out->messages[i].role || !out->messages[i].content || (name && !out->messages[i].name)) {
      ag_sml_rollout_clear(out);
      return ag_error_set(AG_ERR_NOMEM, "out of memory");
    }
  }
  out->solved = json_is_true(json_object_get(meta, "solved"));
  out->solved_at = (int)json_integer_value(json_object_get(meta, "solved_at"));
  out->turns = (int)json_integer_value(json_object_get(meta, "turns"));
  const char *id = json_string_value(json_object_get(meta, "task_id"));
  snprintf(out->task_id, sizeof out->task_id, "%s", id ? id : "");
  return AG_OK;
}

ag_status ag_sml_rollouts_load(const char *path, ag_sml_rollout **out, int64_t *count) {
  *out = NULL;
  *count = 0;
  ag_jsonl_reader *rd = NULL;
  ag_status st = ag_jsonl_open(path, &rd);
  if (st) return st;
  int64_t cap = 0, n = 0;
  ag_sml_rollout *v = NULL;
  for (;;) {
    json_t *rec = NULL;
    st = ag_jsonl_next(rd, &rec);
    if (st || !rec) break;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      ag_sml_rollout *grown = realloc(v, (size_t)cap * sizeof *v);
      if (!grown) {
        json_decref(rec);
        st = ag_error_set(AG_ERR_NOMEM, "out of memory");
        break;
      }
      v = grown;
    }
    st = rollout_from_json(rec, &v[n]);
    json_decref(rec);
    if (st) {
      st = ag_error_wrap(st, "%s line %lld", path, (long long)ag_jsonl_line(rd));
      break;
    }
    n++;
  }
  ag_jsonl_close(rd);
  if (st) {
    for (int64_t i = 0; i < n; i++) ag_sml_rollout_clear(&v[i]);
    free(v);
    return st;
  }
  *out = v;
  *count = n;
  return AG_OK;
}

/* ---- the run ---------------------------------------------------------------------------- */

typedef struct run {
  ag_sml_train_options o;
  const ag_task_family *families[AG_SML_MAX_FAMILIES];
  int family_count;
  const ag_task_family *eval_families[AG_SML_MAX_FAMILIES]; /* the training ones unless told */
  int eval_family_count;
  const char *names[AG_LM_MAX_TRAIN_NAMES];
  char names_buf[256];
  int name_count;
  ag_chat_model *chat;     /* rollouts and evaluation */
  ag_transformer *trained; /* full: a trainable copy; LoRA: the chat model's own */
  ag_lora *lora;
  ag_params *params;
  ag_optim *optim;
  ag_transformer *reference;
  ag_hf_info info;
  ag_task *eval_tasks; /* eval_family_count * eval_tasks */
  uint64_t *reserve;   /* sorted hashes of reserved evaluation problems */
  int64_t reserve_n;
  int64_t eval_n;
  int rounds_done;
  bool priming_done;
  char checkpoint[PATH_BYTES]; /* the current checkpoint folder ("" none) */
  double started;
} run;

static bool join(char *out, size_t size, const char *dir, const char *name) {
  int w = snprintf(out, size, "%s/%s", dir, name);
  return w >= 0 && (size_t)w < size;
}

static ag_status path_of(char *out, const char *dir, const char *fmt, int value) {
  char name[256];
  snprintf(name, sizeof name, fmt, value);
  if (!join(out, PATH_BYTES, dir, name))
    return ag_error_set(AG_ERR_INVALID, "sml train: the path under %s is too long", dir);
  return AG_OK;
}

static ag_status remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? AG_OK : ag_error_set(AG_ERR_IO, "cannot open %s", dir);
  struct dirent *e;
  char path[PATH_BYTES];
  ag_status st = AG_OK;
  while ((e = readdir(d)) && !st) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (!join(path, sizeof path, dir, e->d_name)) continue;
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
      st = remove_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  if (!st && rmdir(dir) != 0 && errno != ENOENT)
    st = ag_error_set(AG_ERR_IO, "cannot remove %s: %s", dir, strerror(errno));
  return st;
}

static ag_status copy_file(const char *from, const char *to) {
  char *data = NULL;
  size_t bytes = 0;
  ag_status st = ag_read_file(from, &data, &bytes);
  if (!st) st = ag_atomic_write(to, data, bytes);
  free(data);
  return st;
}

/* The tokenizer files of the student folder into dir, so a checkpoint is a
 * model folder that opens alone. */
static ag_status copy_tokenizer_files(const char *student, const char *dir) {
  static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                      "special_tokens_map.json", "tokenizer.model"};
  char from[PATH_BYTES], to[PATH_BYTES];
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    if (!join(from, sizeof from, student, files[i]) || !join(to, sizeof to, dir, files[i]))
      return ag_error_set(AG_ERR_INVALID, "path too long");
    if (!ag_file_exists(from)) continue;
    ag_status st = copy_file(from, to);
    if (st) return st;
  }
  return AG_OK;
}

/* The trained model (full) or adapter (LoRA) into dir. */
static ag_status write_model(run *x, const char *dir) {
  ag_status st = ag_mkdir_p(dir);
  if (st) return st;
  if (x->lora) return ag_lora_save(x->lora, dir);
  st = ag_hf_save(dir, x->trained, &x->info, AG_DTYPE_F32);
  if (!st) st = copy_tokenizer_files(x->o.student, dir);
  return st;
}

static json_t *settings_json(const run *x) {
  const ag_sml_train_options *o = &x->o;
  return json_pack(
      "{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:f, s:f, s:i, s:f, s:i, s:I, s:b, s:f, "
      "s:I, s:s, s:i, s:I, s:I}",
      "student", o->student, "mode", o->mode == AG_SML_GRPO ? "grpo" : "offline", "families",
      o->families ? o->families : ag_sml_default_families(), "eval_families",
      o->eval_families ? o->eval_families : (o->families ? o->families : ag_sml_default_families()),
      "level", o->level, "tasks_per_round", (json_int_t)o->tasks_per_round, "group", o->group,
      "gamma", o->gamma, "kl", o->kl, "train_turns", o->train_turns, "lr", (double)o->lr,
      "lora_rank", o->lora.rank, "seed", (json_int_t)o->seed, "q_priming", o->q_priming,
      "priming_decay", o->priming_decay, "max_tokens", (json_int_t)o->max_tokens, "train_names",
      o->train_names, "epochs", o->epochs, "batch_size", (json_int_t)o->batch_size, "eval_tasks",
      (json_int_t)o->eval_tasks);
}

static ag_status write_state(run *x) {
  char path[PATH_BYTES];
  if (!join(path, sizeof path, x->o.out_dir, "state.json"))
    return ag_error_set(AG_ERR_INVALID, "path too long");
  json_t *s = json_pack("{s:s, s:i, s:b, s:s, s:o}", "format", STATE_FORMAT, "rounds_done",
                        x->rounds_done, "priming_done", x->priming_done, "checkpoint",
                        x->checkpoint, "settings", settings_json(x));
  ag_status st = s ? ag_json_save(path, s) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_decref(s);
  return st;
}

/* Reads state.json; settings that shape the weights must match. */
static ag_status read_state(run *x, bool *found) {
  char path[PATH_BYTES];
  *found = false;
  if (!join(path, sizeof path, x->o.out_dir, "state.json"))
    return ag_error_set(AG_ERR_INVALID, "path too long");
  if (!ag_file_exists(path)) return AG_OK;
  json_t *s = NULL;
  ag_status st = ag_json_load(path, &s);
  if (st) return st;
  const char *format = json_string_value(json_object_get(s, "format"));
  if (!format || strcmp(format, STATE_FORMAT)) {
    json_decref(s);
    return ag_error_set(AG_ERR_FORMAT, "%s is not an sml train state", path);
  }
  json_t *want = settings_json(x), *have = json_object_get(s, "settings");
  const char *key;
  json_t *v;
  json_object_foreach(want, key, v) {
    json_t *h = json_object_get(have, key);
    /* runs saved before eval_families existed evaluated their training families */
    if (!h && !strcmp(key, "eval_families")) h = json_object_get(have, "families");
    bool same = h && (json_is_number(v) && json_is_number(h)
                          ? fabs(json_number_value(v) - json_number_value(h)) <=
                                1e-6 * (1 + fabs(json_number_value(v)))
                          : json_equal(v, h));
    if (!same) {
      st = ag_error_set(AG_ERR_INVALID,
                        "sml train --resume: %s differs from the run in %s (the saved run has "
                        "other settings; use another --out)",
                        key, x->o.out_dir);
      break;
    }
  }
  json_decref(want);
  if (!st) {
    x->rounds_done = (int)json_integer_value(json_object_get(s, "rounds_done"));
    x->priming_done = json_is_true(json_object_get(s, "priming_done"));
    const char *ck = json_string_value(json_object_get(s, "checkpoint"));
    snprintf(x->checkpoint, sizeof x->checkpoint, "%s", ck ? ck : "");
    *found = true;
  }
  json_decref(s);
  return st;
}

/* checkpoint-<stage>.partial, filled, renamed into place; then state.json
 * points at it and the previous one goes. */
static ag_status checkpoint(run *x, int stage) {
  char final_dir[PATH_BYTES], partial[PATH_BYTES], path[PATH_BYTES], old[PATH_BYTES];
  ag_status st = path_of(final_dir, x->o.out_dir, "checkpoint-%d", stage);
  if (!st) st = path_of(partial, x->o.out_dir, "checkpoint-%d.partial", stage);
  if (!st) st = remove_tree(partial);
  if (!st) st = write_model(x, partial);
  if (!st && !join(path, sizeof path, partial, "optimizer.safetensors"))
    st = ag_error_set(AG_ERR_INVALID, "path too long");
  if (!st) st = ag_optim_save(path, x->optim);
  if (!st) st = remove_tree(final_dir);
  if (!st && rename(partial, final_dir) != 0)
    st = ag_error_set(AG_ERR_IO, "cannot rename %s: %s", partial, strerror(errno));
  if (st) return ag_error_wrap(st, "sml train: writing checkpoint %d", stage);
  snprintf(old, sizeof old, "%s", x->checkpoint);
  snprintf(x->checkpoint, sizeof x->checkpoint, "%s", final_dir);
  st = write_state(x);
  if (!st && old[0] && strcmp(old, final_dir)) remove_tree(old);
  return st;
}

/* The chat model over the current weights: full fine-tuning reopens it on
 * the checkpoint just written (memory-mapped; the trainable copy stays). */
static ag_status open_chat(run *x, const char *dir) {
  ag_chat_model_close(x->chat);
  x->chat = NULL;
  ag_chat_model_options co = ag_chat_model_defaults();
  co.max_batch = ROLLOUT_BATCH;
  co.truncate = true;
  return ag_chat_model_open(dir, &co, &x->chat);
}

static ag_status setup_model(run *x) {
  const char *from = x->checkpoint[0] ? x->checkpoint : x->o.student;
  ag_transformer_config config;
  ag_status st = ag_hf_read_config(x->o.student, &config, &x->info);
  if (st) return st;
  if (x->o.lora.rank > 0) {
    st = open_chat(x, x->o.student);
    if (st) return st;
    x->trained = ag_chat_model_lm(x->chat)->model;
    if (x->checkpoint[0]) {
      st = ag_lora_load(x->checkpoint, x->trained, &x->lora);
    } else {
      ag_lora_config c = x->o.lora;
      snprintf(c.base_model_name_or_path, sizeof c.base_model_name_or_path, "%s", x->o.student);
      st = ag_lora_create(x->trained, &c, mix(x->o.seed, 0x6c6f7261), &x->lora);
    }
    if (st) return st;
    x->params = ag_lora_params(x->lora);
  } else {
    st = open_chat(x, from);
    if (!st) st = ag_hf_load(from, AG_HF_LOAD_TRAINABLE, &x->trained, NULL);
    if (st) return st;
    x->params = ag_transformer_params(x->trained);
  }
  ag_optim_config oc = ag_optim_adamw_defaults(x->o.lr);
  oc.weight_decay = 0.0f;
  oc.beta2 = 0.99f;
  st = ag_optim_create(x->params, &oc, &x->optim);
  if (!st && x->checkpoint[0]) {
    char path[PATH_BYTES];
    if (!join(path, sizeof path, x->checkpoint, "optimizer.safetensors"))
      return ag_error_set(AG_ERR_INVALID, "path too long");
    st = ag_optim_load(path, x->optim);
  }
  return st;
}

/* ---- tasks -------------------------------------------------------------------------------- */

static int level_of(const run *x, const ag_task_family *f) {
  return x->o.level > 0 ? (x->o.level < f->max_level ? x->o.level : f->max_level)
                        : f->default_level;
}

static ag_status make_eval_tasks(run *x) {
  int64_t n = x->o.eval_tasks;
  x->eval_n = n * x->eval_family_count;
  if (x->eval_n == 0) return AG_OK;
  x->eval_tasks = calloc((size_t)x->eval_n, sizeof *x->eval_tasks);
  if (!x->eval_tasks) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int f = 0; f < x->eval_family_count; f++)
    for (int64_t i = 0; i < n; i++) {
      const ag_task_family *fam = x->eval_families[f];
      ag_status st =
          fam->generate(level_of(x, fam), AG_SML_EVAL_SEED, i, &x->eval_tasks[f * n + i]);
      if (st) return st;
    }
  return AG_OK;
}

static uint64_t text_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Hashes of this run's evaluation problems, sorted: no training task is one
 * of them. (Families with few distinct problems at a level, such as
 * two-person knights and knaves, would lose most of their training tasks to
 * a larger reserve.) */
static ag_status make_reserve(run *x) {
  x->reserve = malloc((size_t)(x->eval_n > 0 ? x->eval_n : 1) * sizeof *x->reserve);
  if (!x->reserve) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < x->eval_n; i++)
    x->reserve[x->reserve_n++] = text_hash(x->eval_tasks[i].problem);
  qsort(x->reserve, (size_t)x->reserve_n, sizeof *x->reserve, cmp_u64);
  return AG_OK;
}

static bool is_eval_problem(const run *x, const char *problem) {
  uint64_t h = text_hash(problem);
  return bsearch(&h, x->reserve, (size_t)x->reserve_n, sizeof h, cmp_u64) != NULL;
}

/* Stage `stage`'s n training tasks, round-robin over the families, each
 * copied `copies` times with ids "<id>#g<k>" (copies > 1). */
static ag_status make_train_tasks(const run *x, int stage, int64_t n, int copies, ag_task **out) {
  ag_task *t = calloc((size_t)(n * copies), sizeof *t);
  if (!t) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_status st = AG_OK;
  uint64_t seed = mix(x->o.seed ^ TRAIN_SEED_TAG, (uint64_t)stage) % 1000000000ULL;
  if (seed == AG_SML_EVAL_SEED) seed++;
  int64_t next[AG_SML_MAX_FAMILIES] = {0};
  for (int64_t i = 0; i < n && !st; i++) {
    int f = (int)(i % x->family_count);
    const ag_task_family *fam = x->families[f];
    ag_task base;
    for (int tries = 0;; tries++) {
      st = fam->generate(level_of(x, fam), seed, next[f]++, &base);
      if (st || !is_eval_problem(x, base.problem)) break;
      ag_task_clear(&base);
      if (tries == 10000)
        st = ag_error_set(AG_ERR_INVALID,
                          "sml train: %s level %d: no training task found that is not an "
                          "evaluation problem",
                          fam->name, level_of(x, fam));
      if (st) break;
    }
    if (st) break;
    for (int k = 0; k < copies && !st; k++) {
      ag_task *c = &t[i * copies + k];
      st = ag_task_copy(&base, c);
      if (!st && copies > 1) {
        snprintf(c->id, sizeof c->id, "%.50s#g%d", base.id, k % 10000);
      }
    }
    ag_task_clear(&base);
  }
  if (st) {
    for (int64_t i = 0; i < n * copies; i++) ag_task_clear(&t[i]);
    free(t);
    return st;
  }
  *out = t;
  return AG_OK;
}

static void free_tasks(ag_task *t, int64_t n) {
  for (int64_t i = 0; t && i < n; i++) ag_task_clear(&t[i]);
  free(t);
}

/* ---- rollouts and evaluation -------------------------------------------------------------- */

static ag_teach_options teach_options(const run *x) {
  ag_teach_options o = ag_teach_defaults();
  o.student = x->chat;
  o.system_prompt = x->o.system_prompt ? x->o.system_prompt : ag_sml_system_prompt();
  o.student_params.max_tokens = x->o.max_tokens;
  o.batch = ROLLOUT_BATCH;
  o.resume = true; /* a killed stage continues its dialogues (same weights) */
  return o;
}

/* Rolls out the tasks into dir/transcripts.jsonl and reads them back, in
 * the order of tasks. */
static ag_status rollouts(run *x, const char *dir, const ag_task *tasks, int64_t n, uint64_t seed,
                          ag_sml_rollout **out) {
  ag_teach_options o = teach_options(x);
  o.teacher.phrasing = AG_PHRASING_TRAIN;
  o.student_params.sampling.temperature = x->o.temperature;
  o.student_params.seed = seed;
  o.turns = x->o.train_turns;
  o.out_dir = dir;
  o.seed = seed;
  ag_status st = ag_teach_eval(&o, tasks, n, NULL, NULL);
  if (st) return st;
  char path[PATH_BYTES];
  if (!join(path, sizeof path, dir, "transcripts.jsonl"))
    return ag_error_set(AG_ERR_INVALID, "path too long");
  ag_sml_rollout *all = NULL;
  int64_t count = 0;
  st = ag_sml_rollouts_load(path, &all, &count);
  if (st) return st;
  ag_sml_rollout *v = calloc((size_t)(n > 0 ? n : 1), sizeof *v);
  if (!v) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < n && !st; i++) {
    int64_t j = 0;
    while (j < count && strcmp(all[j].task_id, tasks[i].id)) j++;
    if (j == count)
      st = ag_error_set(AG_ERR_FORMAT, "%s: no dialogue for task %s", path, tasks[i].id);
    else {
      v[i] = all[j];
      memset(&all[j], 0, sizeof all[j]);
    }
  }
  for (int64_t j = 0; j < count; j++) ag_sml_rollout_clear(&all[j]);
  free(all);
  for (int64_t i = 0; i < n && !st; i++) st = ag_sml_rollout_name_opening(&v[i]);
  if (st) {
    for (int64_t i = 0; v && i < n; i++) ag_sml_rollout_clear(&v[i]);
    free(v);
    return st;
  }
  *out = v;
  return AG_OK;
}

ag_status ag_sml_rollout_name_opening(ag_sml_rollout *r) {
  for (int k = 0; r && k < r->count; k++) {
    if (!r->messages[k].name || strcmp(r->messages[k].name, "teacher")) continue;
    char *name = dup_str(AG_SML_OPENING_NAME);
    if (!name) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    free((char *)r->messages[k].name);
    r->messages[k].name = name;
    break;
  }
  return AG_OK;
}

static void free_rollouts(ag_sml_rollout *v, int64_t n) {
  for (int64_t i = 0; v && i < n; i++) ag_sml_rollout_clear(&v[i]);
  free(v);
}

/* acc@1..K over every family's held-out tasks (greedy, held-out phrasings)
 * into dir/<family>/. */
static ag_status evaluate(run *x, const char *dir, double *acc, double *question_rate) {
  int64_t n = x->o.eval_tasks, solved[AG_SML_TRAIN_MAX_TURNS] = {0}, turns = 0, questions = 0;
  for (int f = 0; f < x->eval_family_count; f++) {
    char sub[PATH_BYTES];
    if (!join(sub, sizeof sub, dir, x->eval_families[f]->name))
      return ag_error_set(AG_ERR_INVALID, "path too long");
    ag_teach_options o = teach_options(x);
    o.teacher.phrasing = AG_PHRASING_HELDOUT;
    o.student_params.sampling.temperature = x->o.eval_temperature;
    o.student_params.seed = AG_SML_EVAL_SEED;
    o.turns = x->o.eval_turns;
    o.out_dir = sub;
    o.seed = AG_SML_EVAL_SEED;
    ag_teach_metrics m;
    memset(&m, 0, sizeof m);
    ag_status st = ag_teach_eval(&o, x->eval_tasks + f * n, n, &m, NULL);
    if (st) return ag_error_wrap(st, "sml train: evaluating %s", x->eval_families[f]->name);
    for (int k = 0; k < x->o.eval_turns; k++)
      solved[k] += (int64_t)llround(m.acc_at[k] * (double)m.n);
    turns += m.student_turns;
    questions += (int64_t)llround(m.question_rate * (double)m.student_turns);
    ag_teach_metrics_clear(&m);
  }
  for (int k = 0; k < x->o.eval_turns; k++)
    acc[k] = x->eval_n ? (double)solved[k] / (double)x->eval_n : NAN;
  *question_rate = turns ? (double)questions / (double)turns : 0.0;
  return AG_OK;
}

/* The base evaluation, always of the starting model: a resumed run that
 * has trained already evaluates the student folder (full fine-tuning) or
 * the model with its adapters detached (LoRA). */
static ag_status evaluate_base(run *x, const char *dir, ag_sml_train_result *r) {
  if (!x->checkpoint[0]) return evaluate(x, dir, r->base_acc_at, &r->base_question_rate);
  ag_status st;
  if (x->lora) {
    ag_lora_detach(x->lora);
    st = evaluate(x, dir, r->base_acc_at, &r->base_question_rate);
    ag_lora_attach(x->lora);
    return st;
  }
  ag_chat_model *trained = x->chat;
  x->chat = NULL;
  st = open_chat(x, x->o.student);
  if (!st) st = evaluate(x, dir, r->base_acc_at, &r->base_question_rate);
  ag_chat_model_close(x->chat);
  x->chat = trained;
  return st;
}

/* ---- training --------------------------------------------------------------------------- */

static ag_lm_data_options data_options(run *x) {
  ag_lm_data_options d = {0};
  ag_lm *lm = ag_chat_model_lm(x->chat);
  int64_t ctx = lm->context_length > 0 ? lm->context_length : 2048;
  d.seq_len = x->o.seq_len > 0 && x->o.seq_len < ctx ? x->o.seq_len : ctx;
  d.format = AG_LM_DATA_CHAT;
  d.chat_template = lm->chat_template;
  for (int i = 0; i < x->name_count; i++) d.train_names[i] = x->names[i];
  d.n_train_names = x->name_count;
  return d;
}

static ag_status update(run *x, const ag_grpo_sequence *seqs, int64_t n, ag_sml_round_stats *rs) {
  ag_grpo_batch b;
  ag_lm_data_options d = data_options(x);
  ag_status st = ag_grpo_batch_build(ag_chat_model_lm(x->chat)->tokenizer, &d, seqs, n, &b);
  if (st) return st;
  ag_grpo_update_options uo = {.micro_batch = x->o.micro_batch,
                               .lr = x->o.lr,
                               .clip_norm = x->o.clip_norm,
                               .kl_beta = (float)x->o.kl,
                               .reference = x->reference};
  ag_grpo_update_stats s;
  st = ag_grpo_update(x->trained, x->params, x->optim, &b, &uo, &s);
  if (!st && b.tokens > 0) {
    rs->updates++;
    rs->tokens += s.tokens;
    rs->loss = s.loss;
    rs->nll = s.nll;
    rs->kl = s.kl;
    rs->grad_norm = s.grad_norm;
  }
  ag_grpo_batch_clear(&b);
  return st;
}

/* Fine-tuning on dialogues (weight 1): epochs of shuffled batches. */
static ag_status fine_tune(run *x, ag_chat_message **msgs, const int *counts, int64_t n,
                           uint64_t seed, ag_sml_round_stats *rs) {
  if (n == 0) return AG_OK;
  int64_t *order = malloc((size_t)n * sizeof *order);
  ag_grpo_sequence *seqs = malloc((size_t)n * sizeof *seqs);
  ag_status st = order && seqs ? AG_OK : ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int e = 0; e < x->o.epochs && !st; e++) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    ag_rng_shuffle_i64(&rng, order, n);
    for (int64_t b0 = 0; b0 < n && !st; b0 += x->o.batch_size) {
      int64_t m = n - b0 < x->o.batch_size ? n - b0 : x->o.batch_size;
      for (int64_t i = 0; i < m; i++)
        seqs[i] = (ag_grpo_sequence){msgs[order[b0 + i]], counts[order[b0 + i]], 1.0f};
      st = update(x, seqs, m, rs);
    }
  }
  free(order);
  free(seqs);
  return st;
}

static ag_status log_stage(run *x, const ag_sml_round_stats *s) {
  char path[PATH_BYTES];
  if (!join(path, sizeof path, x->o.out_dir, "rounds.jsonl"))
    return ag_error_set(AG_ERR_INVALID, "path too long");
  FILE *f = fopen(path, "ab");
  if (!f) return ag_error_set(AG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  json_t *o =
      json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "round",
                s->round, "dialogues", (json_int_t)s->dialogues, "solved", (json_int_t)s->solved,
                "kept", (json_int_t)s->kept, "edits", (json_int_t)s->edits, "tokens",
                (json_int_t)s->tokens, "updates", (json_int_t)s->updates, "mean_reward",
                s->mean_reward, "loss", isfinite(s->loss) ? s->loss : 0.0, "nll", s->nll, "kl",
                s->kl, "grad_norm", s->grad_norm, "seconds", s->seconds);
  ag_status st = o ? ag_jsonl_write(f, o) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_decref(o);
  if (fclose(f) != 0 && !st) st = ag_error_set(AG_ERR_IO, "cannot write %s", path);
  return st;
}

/* The priming stage: rollouts, solved ones with wrong answers turned into
 * questions, fine-tuned on. */
static ag_status priming(run *x, ag_sml_round_stats *rs) {
  char dir[PATH_BYTES];
  ag_status st = join(dir, sizeof dir, x->o.out_dir, "priming/rollouts")
                     ? AG_OK
                     : ag_error_set(AG_ERR_INVALID, "path too long");
  int64_t n = x->o.priming_tasks;
  ag_task *tasks = NULL;
  ag_sml_rollout *v = NULL;
  if (!st) st = make_train_tasks(x, 0, n, 1, &tasks);
  if (!st) st = rollouts(x, dir, tasks, n, mix(x->o.seed, 0x7072696d), &v);
  ag_chat_message **msgs = calloc((size_t)(n > 0 ? n : 1), sizeof *msgs);
  int *counts = calloc((size_t)(n > 0 ? n : 1), sizeof *counts);
  if (!st && (!msgs || !counts)) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  int64_t kept = 0;
  ag_rng rng;
  ag_rng_seed2(&rng, x->o.seed, 0x7072696d696e67ULL);
  for (int64_t i = 0; i < n && !st; i++) {
    rs->dialogues++;
    if (!v[i].solved) continue;
    rs->solved++;
    int edits = 0;
    st = ag_sml_prime_dialogue(&tasks[i], v[i].messages, v[i].count, x->o.priming_decay, &rng,
                               &msgs[kept], &counts[kept], &edits);
    if (st) break;
    rs->edits += edits;
    kept++;
  }
  rs->kept = kept;
  rs->mean_reward = rs->dialogues ? (double)rs->solved / (double)rs->dialogues : 0.0;
  if (!st) st = fine_tune(x, msgs, counts, kept, mix(x->o.seed, 0x70726d74), rs);
  for (int64_t i = 0; i < kept; i++) ag_sml_messages_free(msgs[i], counts[i]);
  free(msgs);
  free(counts);
  free_rollouts(v, n);
  free_tasks(tasks, n);
  return st;
}

static ag_status round_offline(run *x, int r, ag_sml_round_stats *rs) {
  char dir[PATH_BYTES];
  ag_status st = path_of(dir, x->o.out_dir, "round-%d/rollouts", r);
  int64_t n = x->o.tasks_per_round;
  ag_task *tasks = NULL;
  ag_sml_rollout *v = NULL;
  if (!st) st = make_train_tasks(x, r, n, 1, &tasks);
  if (!st) st = rollouts(x, dir, tasks, n, mix(x->o.seed, (uint64_t)r), &v);
  ag_chat_message **msgs = calloc((size_t)(n > 0 ? n : 1), sizeof *msgs);
  int *counts = calloc((size_t)(n > 0 ? n : 1), sizeof *counts);
  if (!st && (!msgs || !counts)) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  int64_t kept = 0;
  double reward = 0.0;
  for (int64_t i = 0; i < n && !st; i++) {
    rs->dialogues++;
    reward += ag_grpo_turn_reward(v[i].solved, v[i].solved_at, x->o.gamma);
    if (!v[i].solved) continue;
    rs->solved++;
    msgs[kept] = v[i].messages;
    counts[kept++] = v[i].count;
  }
  rs->kept = kept;
  rs->mean_reward = n ? reward / (double)n : 0.0;
  if (!st) st = fine_tune(x, msgs, counts, kept, mix(x->o.seed, 0x6f66666c + (uint64_t)r), rs);
  free(msgs);
  free(counts);
  free_rollouts(v, n);
  free_tasks(tasks, n);
  return st;
}

static ag_status round_grpo(run *x, int r, ag_sml_round_stats *rs) {
  char dir[PATH_BYTES];
  ag_status st = path_of(dir, x->o.out_dir, "round-%d/rollouts", r);
  int64_t tasks_n = x->o.tasks_per_round, G = x->o.group, n = tasks_n * G;
  ag_task *tasks = NULL;
  ag_sml_rollout *v = NULL;
  if (!st) st = make_train_tasks(x, r, tasks_n, (int)G, &tasks);
  if (!st) st = rollouts(x, dir, tasks, n, mix(x->o.seed, (uint64_t)r), &v);
  double *rewards = malloc((size_t)n * sizeof *rewards), *adv = malloc((size_t)n * sizeof *adv);
  ag_grpo_sequence *seqs = malloc((size_t)n * sizeof *seqs);
  if (!st && (!rewards || !adv || !seqs)) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  double total = 0.0;
  for (int64_t i = 0; i < n && !st; i++) {
    rewards[i] = ag_grpo_turn_reward(v[i].solved, v[i].solved_at, x->o.gamma);
    total += rewards[i];
    rs->dialogues++;
    rs->solved += v[i].solved;
  }
  if (!st) st = ag_grpo_advantages(rewards, n, G, ADV_EPS, adv);
  int64_t kept = 0;
  for (int64_t i = 0; i < n && !st; i++)
    if (adv[i] != 0.0 || x->o.kl > 0) /* zero advantage: no gradient unless the KL term */
      seqs[kept++] = (ag_grpo_sequence){v[i].messages, v[i].count, (float)adv[i]};
  rs->kept = kept;
  rs->mean_reward = n ? total / (double)n : 0.0;
  if (!st && kept > 0) st = update(x, seqs, kept, rs);
  free(rewards);
  free(adv);
  free(seqs);
  free_rollouts(v, n);
  free_tasks(tasks, n);
  return st;
}

/* ---- options ------------------------------------------------------------------------------ */

static ag_status check_options(run *x) {
  ag_sml_train_options *o = &x->o;
  if (!o->student || !o->student[0] || !o->out_dir || !o->out_dir[0])
    return ag_error_set(AG_ERR_INVALID, "sml train: a student model folder and an output "
                                        "folder are required");
  if (o->mode != AG_SML_OFFLINE && o->mode != AG_SML_GRPO)
    return ag_error_set(AG_ERR_INVALID, "sml train: unknown mode %d", (int)o->mode);
  if (o->rounds < 0 || o->tasks_per_round < 1 || o->group < 1 || o->epochs < 1 ||
      o->batch_size < 1 || o->micro_batch < 0 || o->max_tokens < 1 || o->eval_tasks < 0 ||
      o->eval_tasks > AG_SML_EVAL_RESERVE || o->priming_tasks < 0)
    return ag_error_set(AG_ERR_INVALID,
                        "sml train: rounds >= 0, tasks per round, group, epochs, batch size and "
                        "max tokens >= 1, eval tasks in 0..%d",
                        AG_SML_EVAL_RESERVE);
  if (o->mode == AG_SML_GRPO && o->group < 2)
    return ag_error_set(AG_ERR_INVALID, "sml train: GRPO needs a group of at least 2 rollouts");
  if (o->train_turns < 1 || o->train_turns > AG_SML_TRAIN_MAX_TURNS || o->eval_turns < 1 ||
      o->eval_turns > AG_SML_TRAIN_MAX_TURNS)
    return ag_error_set(AG_ERR_INVALID, "sml train: turns must be in 1..%d",
                        AG_SML_TRAIN_MAX_TURNS);
  if (!(o->gamma > 0 && o->gamma <= 1))
    return ag_error_set(AG_ERR_INVALID, "sml train: gamma %g must be in (0, 1]", o->gamma);
  if (!(o->kl >= 0) || !isfinite(o->kl))
    return ag_error_set(AG_ERR_INVALID, "sml train: the KL penalty must be >= 0");
  if (o->kl > 0 && (!o->reference || !o->reference[0]))
    return ag_error_set(AG_ERR_INVALID,
                        "sml train: a KL penalty (%g) needs a reference model (--reference DIR)",
                        o->kl);
  if (!(o->priming_decay >= 0 && o->priming_decay <= 1))
    return ag_error_set(AG_ERR_INVALID, "sml train: the priming decay must be in [0, 1]");
  if (!(o->temperature >= 0) || !(o->eval_temperature >= 0) || !(o->clip_norm >= 0))
    return ag_error_set(AG_ERR_INVALID, "sml train: temperature and clip norm must be >= 0");
  if (o->lora.rank > 0) {
    ag_status st = ag_lora_config_check(&o->lora);
    if (st) return st;
  }
  if (o->lr == 0) o->lr = o->lora.rank > 0 ? 1e-3f : 1e-4f;
  if (!(o->lr > 0) || !isfinite(o->lr))
    return ag_error_set(AG_ERR_INVALID, "sml train: the learning rate must be positive");
  if (o->priming_tasks == 0) o->priming_tasks = o->tasks_per_round;
  if (!o->train_names || !o->train_names[0]) o->train_names = "student";
  ag_status st =
      ag_sml_parse_families(o->families, x->families, AG_SML_MAX_FAMILIES, &x->family_count);
  if (!st)
    st = ag_sml_parse_families(o->eval_families ? o->eval_families : o->families, x->eval_families,
                               AG_SML_MAX_FAMILIES, &x->eval_family_count);
  if (st) return ag_error_wrap(st, "sml train");
  /* The trained names: a comma-separated list. */
  snprintf(x->names_buf, sizeof x->names_buf, "%s", o->train_names);
  for (char *tok = strtok(x->names_buf, ", "); tok; tok = strtok(NULL, ", ")) {
    if (x->name_count == AG_LM_MAX_TRAIN_NAMES)
      return ag_error_set(AG_ERR_INVALID, "sml train: at most %d trained names",
                          AG_LM_MAX_TRAIN_NAMES);
    x->names[x->name_count++] = tok;
  }
  if (x->name_count == 0) return ag_error_set(AG_ERR_INVALID, "sml train: no trained name");
  return AG_OK;
}

static void run_free(run *x) {
  ag_lora_destroy(x->lora);
  ag_optim_destroy(x->optim);
  if (x->o.lora.rank == 0) ag_transformer_destroy(x->trained);
  ag_chat_model_close(x->chat);
  ag_transformer_destroy(x->reference);
  free_tasks(x->eval_tasks, x->eval_n);
  free(x->reserve);
}

static ag_status write_results(run *x, const ag_sml_train_result *r) {
  char path[PATH_BYTES];
  if (!join(path, sizeof path, x->o.out_dir, "results.json"))
    return ag_error_set(AG_ERR_INVALID, "path too long");
  json_t *base = json_array(), *trained = json_array();
  for (int k = 0; k < r->turns; k++) {
    json_array_append_new(base, json_real(r->base_acc_at[k]));
    json_array_append_new(trained, json_real(r->trained_acc_at[k]));
  }
  json_t *o =
      json_pack("{s:{s:o, s:f}, s:{s:o, s:f}, s:I, s:i, s:i, s:o}", "base", "acc_at", base,
                "question_rate", r->base_question_rate, "sml", "acc_at", trained, "question_rate",
                r->trained_question_rate, "tasks", (json_int_t)r->eval_tasks, "turns", r->turns,
                "rounds", r->rounds_done, "settings", settings_json(x));
  ag_status st = o ? ag_json_save(path, o) : ag_error_set(AG_ERR_NOMEM, "out of memory");
  json_decref(o);
  return st;
}

ag_status ag_sml_train(const ag_sml_train_options *options, ag_sml_train_result *r) {
  memset(r, 0, sizeof *r);
  if (!options) return ag_error_set(AG_ERR_INVALID, "sml train: NULL options");
  run x;
  memset(&x, 0, sizeof x);
  x.o = *options;
  x.started = ag_time_seconds();
  ag_status st = check_options(&x);
  bool found = false;
  if (!st) st = read_state(&x, &found);
  if (!st && found && !x.o.resume)
    st = ag_error_set(AG_ERR_INVALID,
                      "sml train: %s already holds a run: continue it with --resume, or choose "
                      "another folder",
                      x.o.out_dir);
  /* The reference model (KL) and the student open before any work: a
   * folder without a chat template fails here. */
  if (!st && x.o.kl > 0) st = ag_hf_load(x.o.reference, AG_HF_LOAD_MAPPED, &x.reference, NULL);
  if (!st) st = ag_mkdir_p(x.o.out_dir);
  if (!st) st = setup_model(&x);
  if (!st && x.reference &&
      ag_transformer_config_of(x.reference)->vocab_size !=
          ag_transformer_config_of(x.trained)->vocab_size)
    st = ag_error_set(AG_ERR_INVALID,
                      "sml train: the reference model's vocabulary differs from the student's");
  if (!st) st = make_eval_tasks(&x);
  if (!st) st = make_reserve(&x);
  if (!st && !found) st = write_state(&x);
  r->resumed = found;
  r->turns = x.o.eval_turns;
  r->eval_tasks = x.eval_n;
  char dir[PATH_BYTES];
  /* The base evaluation runs before any update, so on a resumed run its
   * transcripts are complete and nothing is generated again. */
  if (!st && x.eval_n > 0) {
    if (!join(dir, sizeof dir, x.o.out_dir, "eval/base"))
      st = ag_error_set(AG_ERR_INVALID, "path too long");
    if (!st) st = evaluate_base(&x, dir, r);
    if (!st)
      ag_info("sml train: base acc@1 %.3f acc@%d %.3f", r->base_acc_at[0], x.o.eval_turns,
              r->base_acc_at[x.o.eval_turns - 1]);
  }
  /* Stages: priming (0), then rounds 1..R. */
  for (int stage = x.o.q_priming ? 0 : 1; stage <= x.o.rounds && !st; stage++) {
    if (stage == 0 ? x.priming_done : stage <= x.rounds_done) continue;
    ag_sml_round_stats rs = {.round = stage};
    double t0 = ag_time_seconds();
    if (stage == 0)
      st = priming(&x, &rs);
    else if (x.o.mode == AG_SML_GRPO)
      st = round_grpo(&x, stage, &rs);
    else
      st = round_offline(&x, stage, &rs);
    if (st) break;
    rs.seconds = ag_time_seconds() - t0;
    if (stage == 0)
      x.priming_done = true;
    else
      x.rounds_done = stage;
    st = checkpoint(&x, stage);
    if (!st) st = log_stage(&x, &rs);
    if (!st && x.o.lora.rank == 0) st = open_chat(&x, x.checkpoint);
    r->last = rs;
    ag_info("sml train: %s %d: %lld dialogues, %lld solved, %lld trained on%s, reward %.3f, "
            "%lld updates, loss %.4f, %.1f s",
            stage ? "round" : "priming", stage, (long long)rs.dialogues, (long long)rs.solved,
            (long long)rs.kept, stage ? "" : " (primed)", rs.mean_reward, (long long)rs.updates,
            rs.loss, rs.seconds);
  }
  r->rounds_done = x.rounds_done;
  if (!st && x.rounds_done == x.o.rounds) {
    st = write_model(&x, x.o.out_dir);
    if (!st && x.eval_n > 0) {
      if (!join(dir, sizeof dir, x.o.out_dir, "eval/final"))
        st = ag_error_set(AG_ERR_INVALID, "path too long");
      if (!st) st = evaluate(&x, dir, r->trained_acc_at, &r->trained_question_rate);
    }
    if (!st && x.eval_n > 0) st = write_results(&x, r);
  }
  r->seconds = ag_time_seconds() - x.started;
  run_free(&x);
  return st;
}
