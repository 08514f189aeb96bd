/* `agora sml pretrain` (agora/sml.h): the base student from nothing —
 * chat data from the task families, a BPE tokenizer trained on it, a small
 * Llama-style model trained on the student's turns, acc@1 per family. */
#include "agora/json.h"
#include "agora/sml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BYTES 4096
#define SETTINGS   "pretrain.json"
#define DATA_FILE  "data/train.jsonl"
#define TOKENIZER  "tokenizer.json"
#define METRICS    "metrics.jsonl"
/* Evaluations and checkpoints per run. */
#define EVALS_PER_RUN 10
/* Held-out windows for eval_loss: a fiftieth of the data, at most this many. */
#define MAX_HELD_OUT_WINDOWS 32
/* Updates timed to size a --minutes run (after one warm-up update). */
#define PROBE_STEPS 3
#define DATA_SALT   0xDA7Aull

/* Presets. small is the default: the smallest recipe whose base student
 * lands every family's acc@1 in 10-60% at level 1 (docs/sml.md has the
 * measurements): 3,600 updates over 15,000 records a family, about one pass.
 * With a third of both (1,200 updates, 5,000 records) the same model wrote
 * each family's format but could not yet compute (arith 0.13, maze 0.00). */
static const ag_sml_size SIZES[] = {
    {.name = "tiny",
     .vocab_size = 512,
     .hidden_size = 64,
     .intermediate_size = 176,
     .num_layers = 2,
     .num_heads = 2,
     .num_kv_heads = 2,
     .seq_len = 512,
     .examples_per_family = 24,
     .steps = 30,
     .batch_size = 4,
     .lr = 3e-3f,
     .eval_tasks = 6,
     .max_new_tokens = 160},
    {.name = "small",
     .vocab_size = 1024,
     .hidden_size = 128,
     .intermediate_size = 384,
     .num_layers = 4,
     .num_heads = 4,
     .num_kv_heads = 4,
     .seq_len = 512,
     .examples_per_family = 15000,
     .steps = 3600,
     .batch_size = 8,
     .lr = 3e-3f,
     .eval_tasks = 100,
     .max_new_tokens = 384},
    {.name = "base",
     .vocab_size = 2048,
     .hidden_size = 384,
     .intermediate_size = 1024,
     .num_layers = 6,
     .num_heads = 6,
     .num_kv_heads = 6,
     .seq_len = 512,
     .examples_per_family = 20000,
     .steps = 4000,
     .batch_size = 16,
     .lr = 1e-3f,
     .eval_tasks = 200,
     .max_new_tokens = 384},
};
#define SIZE_COUNT ((int)(sizeof SIZES / sizeof *SIZES))

const char *ag_sml_size_names(void) { return "tiny, small, base"; }

ag_status ag_sml_size_get(const char *name, ag_sml_size *out) {
  for (int i = 0; i < SIZE_COUNT; i++)
    if (name && !strcmp(name, SIZES[i].name)) {
      *out = SIZES[i];
      return AG_OK;
    }
  return ag_error_set(AG_ERR_INVALID, "unknown size \"%s\" (sizes: %s)", name ? name : "",
                      ag_sml_size_names());
}

ag_sml_pretrain_options ag_sml_pretrain_defaults(void) {
  ag_sml_pretrain_options o;
  memset(&o, 0, sizeof o);
  o.size = "small";
  o.dialogue_fraction = -1;
  o.easier_fraction = -1;
  return o;
}

static bool join(char *buf, size_t size, const char *dir, const char *name) {
  int w = snprintf(buf, size, "%s/%s", dir, name);
  return w > 0 && (size_t)w < size;
}

/* ---- settings: what a resumed run must repeat ------------------------------------------ */

typedef struct settings {
  ag_sml_size size;
  char families[256];
  uint64_t seed;
  double dialogue_fraction, easier_fraction, system_fraction;
  int level; /* of the evaluation and most records; 0 (runs before levels were saved): default */
} settings;

static json_t *settings_to_json(const settings *s) {
  const ag_sml_size *z = &s->size;
  return json_pack(
      "{s:{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I},"
      " s:s, s:I, s:f, s:f, s:f, s:i}",
      "size", "name", z->name, "vocab_size", (int)z->vocab_size, "hidden_size",
      (json_int_t)z->hidden_size, "intermediate_size", (json_int_t)z->intermediate_size,
      "num_layers", (json_int_t)z->num_layers, "num_heads", (json_int_t)z->num_heads,
      "num_kv_heads", (json_int_t)z->num_kv_heads, "seq_len", (json_int_t)z->seq_len,
      "examples_per_family", (json_int_t)z->examples_per_family, "steps", (json_int_t)z->steps,
      "batch_size", (json_int_t)z->batch_size, "lr", (double)z->lr, "eval_tasks",
      (json_int_t)z->eval_tasks, "max_new_tokens", (json_int_t)z->max_new_tokens, "families",
      s->families, "seed", (json_int_t)s->seed, "dialogue_fraction", s->dialogue_fraction,
      "easier_fraction", s->easier_fraction, "system_fraction", s->system_fraction, "level",
      s->level);
}

static ag_status int_field(const json_t *o, const char *key, const char *path, int64_t *out) {
  json_t *v = json_object_get(o, key);
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return ag_error_set(AG_ERR_FORMAT, "%s: \"%s\" is missing or not a count", path, key);
  *out = (int64_t)json_integer_value(v);
  return AG_OK;
}

/* Reads pretrain.json's settings over *s (name points into SIZES). */
static ag_status settings_load(const char *path, settings *s) {
  json_t *o = NULL;
  ag_status st = ag_json_load(path, &o);
  if (st) return st;
  const json_t *z = json_object_get(o, "size");
  const char *name = json_string_value(json_object_get(z, "name"));
  const char *families = json_string_value(json_object_get(o, "families"));
  if (!name || !families || strlen(families) >= sizeof s->families) {
    json_decref(o);
    return ag_error_set(AG_ERR_FORMAT, "%s: no size name or families", path);
  }
  st = ag_sml_size_get(name, &s->size);
  int64_t vocab = 0, seed = 0;
  if (!st) st = int_field(z, "vocab_size", path, &vocab);
  if (!st) st = int_field(z, "hidden_size", path, &s->size.hidden_size);
  if (!st) st = int_field(z, "intermediate_size", path, &s->size.intermediate_size);
  if (!st) st = int_field(z, "num_layers", path, &s->size.num_layers);
  if (!st) st = int_field(z, "num_heads", path, &s->size.num_heads);
  if (!st) st = int_field(z, "num_kv_heads", path, &s->size.num_kv_heads);
  if (!st) st = int_field(z, "seq_len", path, &s->size.seq_len);
  if (!st) st = int_field(z, "examples_per_family", path, &s->size.examples_per_family);
  if (!st) st = int_field(z, "steps", path, &s->size.steps);
  if (!st) st = int_field(z, "batch_size", path, &s->size.batch_size);
  if (!st) st = int_field(z, "eval_tasks", path, &s->size.eval_tasks);
  if (!st) st = int_field(z, "max_new_tokens", path, &s->size.max_new_tokens);
  if (!st) st = int_field(o, "seed", path, &seed);
  s->size.vocab_size = (int32_t)vocab;
  s->size.lr = (float)json_number_value(json_object_get(z, "lr"));
  s->seed = (uint64_t)seed;
  s->dialogue_fraction = json_number_value(json_object_get(o, "dialogue_fraction"));
  s->easier_fraction = json_number_value(json_object_get(o, "easier_fraction"));
  s->system_fraction = json_number_value(json_object_get(o, "system_fraction"));
  s->level = (int)json_integer_value(json_object_get(o, "level")); /* absent: 0, the default */
  snprintf(s->families, sizeof s->families, "%s", families);
  json_decref(o);
  return st;
}

/* Writes pretrain.json: the settings, and the results when r is given. */
static ag_status settings_save(const char *path, const settings *s,
                               const ag_sml_pretrain_result *r) {
  json_t *o = settings_to_json(s);
  if (o && r) {
    json_t *acc = json_object();
    for (int i = 0; i < r->family_count; i++)
      json_object_set_new(acc, r->families[i],
                          isfinite(r->acc_at_1[i]) ? json_real(r->acc_at_1[i]) : json_null());
    json_object_set_new(
        o, "results",
        json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "acc_at_1", acc,
                  "eval_tasks", (json_int_t)r->eval_tasks, "params", (json_int_t)r->params, "steps",
                  (json_int_t)r->steps, "records", (json_int_t)r->records, "windows",
                  (json_int_t)r->windows, "first_loss", r->first_loss, "train_loss", r->train_loss,
                  "eval_loss", r->eval_loss, "seconds", r->seconds, "train_seconds",
                  r->train_seconds, "eval_seconds", r->eval_seconds));
  }
  if (!o) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_status st = ag_json_save(path, o);
  json_decref(o);
  return st;
}

/* ---- data and tokenizer ------------------------------------------------------------------ */

static ag_status save_records(const char *path, const json_t *records) {
  ag_atomic_file *f = NULL;
  ag_status st = ag_atomic_open(path, &f);
  for (size_t i = 0; !st && i < json_array_size(records); i++)
    st = ag_jsonl_write(ag_atomic_stream(f), json_array_get(records, i));
  if (st) {
    if (f) ag_atomic_abort(f);
    return st;
  }
  return ag_atomic_commit(f);
}

static ag_status load_records(const char *path, json_t **records) {
  *records = json_array();
  if (!*records) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_jsonl_reader *r = NULL;
  ag_status st = ag_jsonl_open(path, &r);
  while (!st) {
    json_t *rec = NULL;
    st = ag_jsonl_next(r, &rec);
    if (st || !rec) break;
    if (json_array_append_new(*records, rec)) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  ag_jsonl_close(r);
  if (st) {
    json_decref(*records);
    *records = NULL;
  }
  return st;
}

/* A byte-level BPE over the records as the model reads them (rendered in
 * the plain template). The word pattern (llama.cpp's "chameleon") isolates
 * every digit and every punctuation mark before merging: numbers are
 * sequences of digits the model can compute with rather than hundreds of
 * opaque tokens, and a maze row `.#..#.#` is one token per square, never
 * chunks such as `..#` whose squares the model would have to unpack. */
static ag_status train_tokenizer(const json_t *records, int32_t vocab_size, ag_tokenizer **out) {
  const ag_chat_template *plain = NULL;
  ag_status st = ag_chat_template_by_name("plain", &plain);
  if (st) return st;
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = vocab_size;
  c.pre_tokenizer = "chameleon";
  ag_tok_trainer *tr = NULL;
  st = ag_tok_trainer_create(&c, &tr);
  for (size_t i = 0; !st && i < json_array_size(records); i++) {
    const json_t *messages = json_object_get(json_array_get(records, i), "messages");
    for (size_t k = 0; !st && k < json_array_size(messages); k++) {
      const json_t *m = json_array_get(messages, k);
      const char *role = json_string_value(json_object_get(m, "role"));
      const char *content = json_string_value(json_object_get(m, "content"));
      ag_chat_message msg = {role ? role : "", content ? content : "", NULL};
      char *text = NULL;
      st = ag_chat_render(plain, &msg, 1, NULL, &text);
      if (!st) st = ag_tok_trainer_feed(tr, text, strlen(text));
      free(text);
    }
  }
  if (!st) st = ag_tok_trainer_finish(tr, out);
  ag_tok_trainer_free(tr);
  return st;
}

/* ---- training ---------------------------------------------------------------------------- */

typedef struct probe {
  double t[PROBE_STEPS + 2];
  int n;
} probe;

static void probe_step(void *user, const ag_lm_train_step *s) {
  probe *p = user;
  if (p->n < PROBE_STEPS + 2) p->t[p->n++] = ag_time_seconds();
  (void)s;
}

/* Seconds per update, from a few updates of the fresh model; the weights
 * are re-initialised after. */
static ag_status time_updates(ag_transformer *model, const ag_lm_train_config *c,
                              const ag_lm_data *train, uint64_t seed, double *seconds) {
  ag_lm_train_config pc = *c;
  pc.steps = PROBE_STEPS + 1;
  pc.warmup_steps = 0;
  probe p = {.n = 0};
  ag_lm_train_run run = {
      .eval_every = 1000000, .eval_batches = 1, .on_step = probe_step, .user = &p};
  ag_lm_train_result r;
  ag_status st = ag_lm_train(model, &pc, train, NULL, &run, &r);
  ag_transformer_init(model, seed);
  if (st) return st;
  *seconds = p.n >= 2 ? (p.t[p.n - 1] - p.t[0]) / (double)(p.n - 1) : r.seconds;
  return AG_OK;
}

/* The first update's loss, from metrics.jsonl (a resumed run did not see it). */
static double first_loss(const char *out_dir) {
  char path[PATH_BYTES];
  if (!join(path, sizeof path, out_dir, METRICS)) return NAN;
  ag_jsonl_reader *r = NULL;
  double loss = NAN;
  if (ag_jsonl_open(path, &r)) {
    ag_error_clear();
    return NAN;
  }
  json_t *line = NULL;
  if (!ag_jsonl_next(r, &line) && line) {
    json_t *v = json_object_get(line, "loss");
    if (json_is_number(v)) loss = json_number_value(v);
  }
  ag_error_clear();
  json_decref(line);
  ag_jsonl_close(r);
  return loss;
}

/* ---- the pipeline ------------------------------------------------------------------------- */

/* Options into settings, checked before any work. */
static ag_status resolve(const ag_sml_pretrain_options *o, settings *s) {
  memset(s, 0, sizeof *s);
  if (!o->out_dir || !*o->out_dir)
    return ag_error_set(AG_ERR_INVALID, "sml pretrain: no output folder");
  ag_status st = ag_sml_size_get(o->size ? o->size : "small", &s->size);
  if (st) return st;
  const ag_task_family *families[AG_SML_MAX_FAMILIES];
  int count = 0;
  st = ag_sml_parse_families(o->families, families, AG_SML_MAX_FAMILIES, &count);
  if (st) return st;
  size_t used = 0;
  for (int i = 0; i < count; i++)
    used += (size_t)snprintf(s->families + used, sizeof s->families - used, "%s%s", i ? "," : "",
                             families[i]->name);
  if (o->steps > 0 && o->minutes > 0)
    return ag_error_set(AG_ERR_INVALID, "sml pretrain: give steps or minutes, not both");
  if (o->steps < 0 || o->minutes < 0 || o->examples_per_family < 0 || o->eval_tasks < 0 ||
      o->dialogue_fraction > 1 || o->easier_fraction > 1)
    return ag_error_set(AG_ERR_INVALID, "sml pretrain: a negative count or a fraction above 1");
  if (o->steps > 0) s->size.steps = o->steps;
  if (o->examples_per_family > 0) s->size.examples_per_family = o->examples_per_family;
  if (o->eval_tasks > 0) s->size.eval_tasks = o->eval_tasks;
  ag_sml_data_options d = ag_sml_data_defaults();
  s->dialogue_fraction = o->dialogue_fraction >= 0 ? o->dialogue_fraction : d.dialogue_fraction;
  s->easier_fraction = o->easier_fraction >= 0 ? o->easier_fraction : d.easier_fraction;
  s->system_fraction = d.system_fraction;
  s->seed = o->seed;
  s->level = o->level > 0 ? o->level : AG_SML_BASE_LEVEL;
  if (o->level < 0) return ag_error_set(AG_ERR_INVALID, "sml pretrain: level %d", o->level);
  for (int i = 0; i < count; i++)
    if (s->level > families[i]->max_level)
      return ag_error_set(AG_ERR_INVALID, "sml pretrain: %s has levels 1..%d, not %d",
                          families[i]->name, families[i]->max_level, s->level);
  return AG_OK;
}

typedef struct session {
  json_t *records;
  ag_tokenizer *tok;
  ag_lm_data *train, *held_out;
  ag_transformer *model;
} session;

static void session_free(session *s) {
  ag_transformer_destroy(s->model);
  ag_lm_data_free(s->held_out);
  ag_lm_data_free(s->train);
  ag_tok_free(s->tok);
  json_decref(s->records);
}

/* Records and tokenizer: built fresh, or read back when resuming. */
static ag_status prepare_data(const char *out, const settings *s, bool reuse, session *x) {
  char data_path[PATH_BYTES], tok_path[PATH_BYTES], dir[PATH_BYTES];
  if (!join(data_path, sizeof data_path, out, DATA_FILE) ||
      !join(tok_path, sizeof tok_path, out, TOKENIZER) || !join(dir, sizeof dir, out, "data"))
    return ag_error_set(AG_ERR_INVALID, "output folder name is too long");
  ag_status st = AG_OK;
  if (reuse && ag_file_exists(data_path) && ag_file_exists(tok_path)) {
    ag_info("sml pretrain: reading the data and tokenizer of %s", out);
    st = load_records(data_path, &x->records);
    if (!st) st = ag_tok_load(tok_path, &x->tok);
    return st;
  }
  ag_sml_data_options d = ag_sml_data_defaults();
  st = ag_sml_parse_families(s->families, d.families, AG_SML_MAX_FAMILIES, &d.family_count);
  d.examples_per_family = s->size.examples_per_family;
  d.dialogue_fraction = s->dialogue_fraction;
  d.easier_fraction = s->easier_fraction;
  d.system_fraction = s->system_fraction;
  d.seed = s->seed;
  d.level = s->level;
  double t0 = ag_time_seconds();
  if (!st) st = ag_sml_build_records(&d, &x->records);
  if (!st) st = ag_mkdir_p(dir);
  if (!st) st = save_records(data_path, x->records);
  if (!st)
    ag_info("sml pretrain: %zu records (%lld per family) in %s (%.1f s)",
            json_array_size(x->records), (long long)d.examples_per_family, data_path,
            ag_time_seconds() - t0);
  if (!st) st = train_tokenizer(x->records, s->size.vocab_size, &x->tok);
  if (!st) st = ag_tok_save_json(x->tok, tok_path);
  return st;
}

static ag_status prepare_model(const settings *s, session *x, ag_hf_info *info) {
  ag_lm_data_options lo = ag_sml_lm_data_options(s->size.seq_len);
  ag_status st = ag_lm_data_create(x->tok, &lo, &x->train);
  if (!st) st = ag_sml_add_records(x->train, x->tok, x->records, s->seed ^ DATA_SALT);
  if (st) return st;
  int64_t windows = ag_lm_data_windows(x->train);
  int64_t held = windows / 50 < 1 ? 1 : windows / 50;
  if (held > MAX_HELD_OUT_WINDOWS) held = MAX_HELD_OUT_WINDOWS;
  if (windows > held) st = ag_lm_data_split(x->train, held, &x->held_out);
  if (st) return st;
  if (ag_lm_data_truncated(x->train))
    ag_warn("sml pretrain: %lld window(s) longer than %lld tokens were cut",
            (long long)ag_lm_data_truncated(x->train), (long long)s->size.seq_len);
  const ag_sml_size *z = &s->size;
  ag_transformer_config c =
      ag_transformer_llama_config(ag_tok_vocab_size(x->tok), z->hidden_size, z->num_layers,
                                  z->num_heads, z->num_kv_heads, z->seq_len);
  c.intermediate_size = z->intermediate_size;
  c.tie_embeddings = true; /* a small vocabulary: one table in and out saves parameters */
  st = ag_transformer_config_check(&c);
  if (!st) st = ag_transformer_create(&c, &x->model);
  if (st) return st;
  ag_transformer_init(x->model, s->seed);
  memset(info, 0, sizeof *info);
  info->bos_token_id = ag_tok_special_id(x->tok, AG_TOK_BOS);
  info->pad_token_id = ag_tok_special_id(x->tok, AG_TOK_PAD);
  int32_t eos = ag_tok_special_id(x->tok, AG_TOK_EOS);
  if (eos >= 0) info->eos_token_ids[info->eos_count++] = eos;
  return AG_OK;
}

static void fill_result_header(const settings *s, ag_sml_pretrain_result *r) {
  memset(r, 0, sizeof *r);
  r->size = s->size;
  const ag_task_family *families[AG_SML_MAX_FAMILIES];
  if (ag_sml_parse_families(s->families, families, AG_SML_MAX_FAMILIES, &r->family_count))
    ag_error_clear();
  for (int i = 0; i < r->family_count; i++) {
    snprintf(r->families[i], sizeof r->families[i], "%s", families[i]->name);
    r->acc_at_1[i] = NAN;
  }
  r->eval_tasks = s->size.eval_tasks;
  r->level = s->level;
  r->first_loss = r->train_loss = r->eval_loss = NAN;
}

ag_status ag_sml_pretrain(const ag_sml_pretrain_options *o, ag_sml_pretrain_result *r) {
  double started = ag_time_seconds();
  settings s;
  ag_status st = resolve(o, &s);
  if (st) return st;
  const char *out = o->out_dir;
  char settings_path[PATH_BYTES], eval_dir[PATH_BYTES];
  if (!join(settings_path, sizeof settings_path, out, SETTINGS) ||
      !join(eval_dir, sizeof eval_dir, out, "eval"))
    return ag_error_set(AG_ERR_INVALID, "output folder name is too long");
  bool has_run = ag_file_exists(settings_path);
  if (has_run && !o->resume)
    return ag_error_set(AG_ERR_INVALID,
                        "%s already holds a pretraining run: resume it, or choose another folder",
                        out);
  bool resuming = o->resume && has_run;
  if (resuming) {
    st = settings_load(settings_path, &s);
    if (st) return st;
    ag_info("sml pretrain: resuming %s (size %s, %lld steps)", out, s.size.name,
            (long long)s.size.steps);
  }
  st = ag_mkdir_p(out);
  if (st) return st;

  session x = {0};
  ag_hf_info info;
  st = prepare_data(out, &s, resuming, &x);
  if (!st) st = prepare_model(&s, &x, &info);
  ag_lm_train_config c = ag_lm_train_defaults();
  c.batch_size = s.size.batch_size;
  c.lr = s.size.lr;
  c.seed = s.seed;
  c.steps = s.size.steps;
  if (!st && !resuming && o->minutes > 0) {
    double per_update = 0;
    st = time_updates(x.model, &c, x.train, s.seed, &per_update);
    if (!st) {
      s.size.steps = (int64_t)(o->minutes * 60.0 / (per_update > 0 ? per_update : 1));
      if (s.size.steps < 1) s.size.steps = 1;
      c.steps = s.size.steps;
      ag_info("sml pretrain: %.2f s per update: %lld updates in %.1f minutes", per_update,
              (long long)c.steps, o->minutes);
    }
  }
  if (!st) st = settings_save(settings_path, &s, NULL);
  fill_result_header(&s, r);
  if (st) {
    session_free(&x);
    return st;
  }
  r->records = (int64_t)json_array_size(x.records);
  r->windows = ag_lm_data_windows(x.train);
  r->train_tokens = ag_lm_data_target_tokens(x.train);
  r->params = ag_transformer_params(x.model)->total;
  ag_info(
      "sml pretrain: %lld records in %lld windows of %lld tokens (%lld trained); llama %lldx%lld"
      " (%lld heads), %lld parameters; %lld updates of %lld windows",
      (long long)r->records, (long long)r->windows, (long long)s.size.seq_len,
      (long long)r->train_tokens, (long long)s.size.num_layers, (long long)s.size.hidden_size,
      (long long)s.size.num_heads, (long long)r->params, (long long)c.steps,
      (long long)c.batch_size);

  const ag_chat_template *plain = NULL;
  st = ag_chat_template_by_name("plain", &plain);
  int64_t every = (c.steps + EVALS_PER_RUN - 1) / EVALS_PER_RUN;
  ag_lm_train_run run = {.out_dir = out,
                         .resume = o->resume,
                         .save_every = every,
                         .keep = 2,
                         .eval_every = every,
                         .eval_batches = 0,
                         .log_every = 1, /* metrics.jsonl starts at update 1: first_loss */
                         .tokenizer = x.tok,
                         .chat_template = plain,
                         .model_info = &info,
                         .progress = o->progress};
  ag_lm_train_result tr;
  memset(&tr, 0, sizeof tr);
  double t0 = ag_time_seconds();
  if (!st) st = ag_lm_train(x.model, &c, x.train, x.held_out, &run, &tr);
  r->train_seconds = ag_time_seconds() - t0;
  r->steps = tr.steps;
  r->train_loss = tr.train_loss;
  r->eval_loss = tr.eval_loss;
  r->resumed = tr.resumed;
  r->first_loss = first_loss(out);
  session_free(&x);
  if (st) return ag_error_wrap(st, "sml pretrain");

  if (!o->skip_eval) {
    t0 = ag_time_seconds();
    const ag_task_family *families[AG_SML_MAX_FAMILIES];
    int count = 0;
    ag_chat_model *student = NULL;
    st = ag_sml_parse_families(s.families, families, AG_SML_MAX_FAMILIES, &count);
    if (!st) st = ag_chat_model_open(out, NULL, &student);
    if (!st)
      st = ag_sml_eval_acc1(student, families, count, s.level, s.size.eval_tasks,
                            s.size.max_new_tokens, eval_dir, o->resume, r->acc_at_1);
    ag_chat_model_close(student);
    r->eval_seconds = ag_time_seconds() - t0;
    if (st) return ag_error_wrap(st, "sml pretrain: evaluating %s", out);
  }
  r->seconds = ag_time_seconds() - started;
  return settings_save(settings_path, &s, r);
}
