/* The task core: task records and their JSONL files, verdicts, answer
 * extraction, the family registry and task specs ("arith:2,maze"). */
#include "agora/task.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- tasks ------------------------------------------------------------------------ */

void ag_task_clear(ag_task *t) {
  if (!t) return;
  free(t->problem);
  free(t->answer);
  free(t->solution);
  json_decref(t->data);
  for (int i = 0; i < t->shard_count; i++) free(t->shards[i].text);
  free(t->shards);
  memset(t, 0, sizeof *t);
}

static char *dup_str(const char *s, bool *failed) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *failed = true;
  return d;
}

ag_status ag_task_copy(const ag_task *src, ag_task *dst) {
  memset(dst, 0, sizeof *dst);
  memcpy(dst->family, src->family, sizeof dst->family);
  memcpy(dst->id, src->id, sizeof dst->id);
  dst->level = src->level;
  bool failed = false;
  dst->problem = dup_str(src->problem, &failed);
  dst->answer = dup_str(src->answer, &failed);
  dst->solution = dup_str(src->solution, &failed);
  if (src->data) {
    dst->data = json_deep_copy(src->data);
    if (!dst->data) failed = true;
  }
  if (src->shard_count > 0 && !failed) {
    dst->shards = calloc((size_t)src->shard_count, sizeof *dst->shards);
    if (!dst->shards) {
      failed = true;
    } else {
      dst->shard_count = src->shard_count;
      for (int i = 0; i < src->shard_count; i++) {
        dst->shards[i].text = dup_str(src->shards[i].text, &failed);
        dst->shards[i].required = src->shards[i].required;
      }
    }
  }
  if (failed) {
    ag_task_clear(dst);
    return ag_error_set(AG_ERR_NOMEM, "copying task %s: out of memory", src->id);
  }
  return AG_OK;
}

/* ---- JSON records ----------------------------------------------------------------- */

json_t *ag_task_to_json(const ag_task *t) {
  json_t *o = json_object();
  if (!o) return NULL;
  int bad = 0;
  bad |= json_object_set_new(o, "family", json_string(t->family));
  bad |= json_object_set_new(o, "level", json_integer(t->level));
  bad |= json_object_set_new(o, "id", json_string(t->id));
  bad |= json_object_set_new(o, "problem", json_string(t->problem ? t->problem : ""));
  bad |= json_object_set_new(o, "answer", json_string(t->answer ? t->answer : ""));
  bad |= json_object_set_new(o, "solution", json_string(t->solution ? t->solution : ""));
  bad |= json_object_set_new(o, "data", t->data ? json_deep_copy(t->data) : json_object());
  if (t->shard_count > 0) {
    json_t *shards = json_array();
    bad |= json_object_set_new(o, "shards", shards);
    for (int i = 0; shards && i < t->shard_count; i++) {
      json_t *s = json_object();
      bad |= json_array_append_new(shards, s);
      if (!s) break;
      bad |= json_object_set_new(s, "text", json_string(t->shards[i].text));
      bad |= json_object_set_new(s, "required", json_boolean(t->shards[i].required));
    }
  }
  if (bad) {
    json_decref(o);
    ag_error_set(AG_ERR_NOMEM, "task %s to JSON: out of memory (or text not UTF-8)", t->id);
    return NULL;
  }
  return o;
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

/* The field `key` of `record`, of the wanted type. */
static ag_status get_field(const json_t *record, const char *key, json_type type, bool optional,
                           json_t **out) {
  json_t *v = json_object_get(record, key);
  *out = v;
  if (!v) {
    if (optional) return AG_OK;
    return ag_error_set(AG_ERR_FORMAT, "task record: missing field \"%s\"", key);
  }
  static const char *const wanted[] = {
      [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
      [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number",  [JSON_TRUE] = "a boolean",
      [JSON_FALSE] = "a boolean",    [JSON_NULL] = "null"};
  bool ok = json_typeof(v) == type || (type == JSON_TRUE && json_is_boolean(v));
  if (!ok)
    return ag_error_set(AG_ERR_FORMAT, "task record: field \"%s\" must be %s, got %s", key,
                        wanted[type], json_type_name(v));
  return AG_OK;
}

static const char *const task_fields[] = {"family", "problem", "answer", "solution",
                                          "id",     "level",   "data",   "shards"};

ag_status ag_task_from_json(const json_t *record, ag_task *out) {
  memset(out, 0, sizeof *out);
  if (!json_is_object(record))
    return ag_error_set(AG_ERR_FORMAT, "task record: expected an object, got %s",
                        record ? json_type_name(record) : "nothing");
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)record, key, value) {
    bool known = false;
    for (size_t i = 0; i < sizeof task_fields / sizeof *task_fields; i++)
      if (!strcmp(key, task_fields[i])) known = true;
    if (!known) return ag_error_set(AG_ERR_FORMAT, "task record: unknown field \"%s\"", key);
  }
  json_t *f[8];
  ag_status st;
  if ((st = get_field(record, "family", JSON_STRING, false, &f[0])) ||
      (st = get_field(record, "problem", JSON_STRING, false, &f[1])) ||
      (st = get_field(record, "answer", JSON_STRING, false, &f[2])) ||
      (st = get_field(record, "solution", JSON_STRING, false, &f[3])) ||
      (st = get_field(record, "id", JSON_STRING, false, &f[4])) ||
      (st = get_field(record, "level", JSON_INTEGER, false, &f[5])) ||
      (st = get_field(record, "data", JSON_OBJECT, false, &f[6])) ||
      (st = get_field(record, "shards", JSON_ARRAY, true, &f[7])))
    return st;
  const char *family = json_string_value(f[0]);
  const ag_task_family *fam;
  if (ag_task_family_get(family, &fam))
    return ag_error_wrap(AG_ERR_FORMAT, "task record: field \"family\": ");
  const char *id = json_string_value(f[4]);
  if (!id[0] || strlen(id) >= sizeof out->id)
    return ag_error_set(AG_ERR_FORMAT, "task record: field \"id\" must have 1 to %zu characters",
                        sizeof out->id - 1);
  json_int_t level = json_integer_value(f[5]);
  bool level_ok = fam->max_level > 0 ? level >= 1 && level <= fam->max_level : level == 0;
  if (!level_ok)
    return ag_error_set(AG_ERR_FORMAT, "task record %s: field \"level\" is %lld; %s takes %s", id,
                        (long long)level, fam->name,
                        fam->max_level > 0 ? "levels from 1 to its max_level" : "level 0");
  if (!json_string_value(f[1])[0] || !json_string_value(f[2])[0])
    return ag_error_set(AG_ERR_FORMAT, "task record %s: field \"%s\" is empty", id,
                        !json_string_value(f[1])[0] ? "problem" : "answer");
  /* Shards: each {"text": string, "required": boolean}. */
  size_t shard_count = f[7] ? json_array_size(f[7]) : 0;
  for (size_t i = 0; i < shard_count; i++) {
    json_t *s = json_array_get(f[7], i), *text, *required;
    if (!json_is_object(s))
      return ag_error_set(AG_ERR_FORMAT, "task record %s: field \"shards[%zu]\" must be an object",
                          id, i);
    json_object_foreach(s, key, value) {
      if (strcmp(key, "text") && strcmp(key, "required"))
        return ag_error_set(AG_ERR_FORMAT, "task record %s: unknown field \"shards[%zu].%s\"", id,
                            i, key);
    }
    text = json_object_get(s, "text");
    required = json_object_get(s, "required");
    if (!json_is_string(text))
      return ag_error_set(AG_ERR_FORMAT, "task record %s: field \"shards[%zu].text\" %s", id, i,
                          text ? "must be a string" : "is missing");
    if (!json_is_boolean(required))
      return ag_error_set(AG_ERR_FORMAT, "task record %s: field \"shards[%zu].required\" %s", id, i,
                          required ? "must be a boolean" : "is missing");
  }
  snprintf(out->family, sizeof out->family, "%s", fam->name);
  snprintf(out->id, sizeof out->id, "%s", id);
  out->level = (int)level;
  bool failed = false;
  out->problem = dup_str(json_string_value(f[1]), &failed);
  out->answer = dup_str(json_string_value(f[2]), &failed);
  out->solution = dup_str(json_string_value(f[3]), &failed);
  out->data = json_deep_copy(f[6]);
  if (!out->data) failed = true;
  if (shard_count > 0 && !failed) {
    out->shards = calloc(shard_count, sizeof *out->shards);
    if (!out->shards) failed = true;
    for (size_t i = 0; out->shards && i < shard_count; i++) {
      json_t *s = json_array_get(f[7], i);
      out->shards[i].text = dup_str(json_string_value(json_object_get(s, "text")), &failed);
      out->shards[i].required = json_is_true(json_object_get(s, "required"));
      out->shard_count++;
    }
  }
  if (failed) {
    ag_task_clear(out);
    return ag_error_set(AG_ERR_NOMEM, "task record %s: out of memory", id);
  }
  return AG_OK;
}

ag_status ag_task_load_jsonl(const char *path, ag_task **tasks, int64_t *count) {
  *tasks = NULL;
  *count = 0;
  ag_jsonl_reader *r;
  ag_status st = ag_jsonl_open(path, &r);
  if (st) return st;
  ag_task *list = NULL;
  int64_t n = 0, cap = 0;
  for (;;) {
    json_t *v;
    if ((st = ag_jsonl_next(r, &v))) break; /* the reader names file:line */
    if (!v) break;
    if (n == cap) {
      int64_t grown_cap = cap ? 2 * cap : 64;
      ag_task *grown = realloc(list, (size_t)grown_cap * sizeof *grown);
      if (!grown) {
        json_decref(v);
        st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory after %lld tasks", path, (long long)n);
        break;
      }
      list = grown;
      cap = grown_cap;
    }
    st = ag_task_from_json(v, &list[n]);
    json_decref(v);
    if (st) {
      st = ag_error_wrap(st, "%s:%lld: ", path, (long long)ag_jsonl_line(r));
      break;
    }
    n++;
  }
  ag_jsonl_close(r);
  if (st) {
    for (int64_t i = 0; i < n; i++) ag_task_clear(&list[i]);
    free(list);
    return st;
  }
  *tasks = list;
  *count = n;
  return AG_OK;
}

ag_status ag_task_save_jsonl(const char *path, const ag_task *tasks, int64_t count) {
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  for (int64_t i = 0; i < count; i++) {
    json_t *o = ag_task_to_json(&tasks[i]);
    st = o ? ag_jsonl_write(ag_atomic_stream(f), o) : AG_ERR_NOMEM;
    json_decref(o);
    if (st) {
      ag_atomic_abort(f);
      return ag_error_wrap(st, "writing %s: ", path);
    }
  }
  return ag_atomic_commit(f);
}

/* ---- verdicts and attempts -------------------------------------------------------- */

void ag_verdict_clear(ag_verdict *v) {
  if (!v) return;
  json_decref(v->diagnostics);
  memset(v, 0, sizeof *v);
}

bool ag_task_extract_attempt(const char *turn, char **attempt) {
  *attempt = NULL;
  if (!turn) return false;
  for (const char *line = turn; *line;) {
    const char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    if (!strncmp(s, "Answer:", 7)) {
      s += 7;
      while (isspace((unsigned char)*s)) s++;
      size_t n = strlen(s);
      while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
      char *a = malloc(n + 1);
      if (!a) return false;
      memcpy(a, s, n);
      a[n] = '\0';
      *attempt = a;
      return true;
    }
    const char *nl = strchr(line, '\n');
    if (!nl) break;
    line = nl + 1;
  }
  return false;
}

/* ---- the registry ----------------------------------------------------------------- */

static const ag_task_family *const families[] = {&ag_task_family_arith,  &ag_task_family_algebra,
                                                 &ag_task_family_maze,   &ag_task_family_code,
                                                 &ag_task_family_puzzle, &ag_task_family_gsm8k,
                                                 &ag_task_family_math,   &ag_task_family_humaneval};
#define FAMILY_COUNT ((int)(sizeof families / sizeof *families))

int ag_task_family_count(void) { return FAMILY_COUNT; }

const ag_task_family *ag_task_family_at(int i) {
  return i >= 0 && i < FAMILY_COUNT ? families[i] : NULL;
}

const char *ag_task_family_names(void) {
  return "arith, algebra, maze, code, puzzle, gsm8k, math, humaneval";
}

ag_status ag_task_family_get(const char *name, const ag_task_family **out) {
  *out = NULL;
  for (int i = 0; name && i < FAMILY_COUNT; i++) {
    if (!strcmp(families[i]->name, name)) {
      *out = families[i];
      return AG_OK;
    }
  }
  return ag_error_set(AG_ERR_NOT_FOUND, "unknown task family \"%s\" (known: %s)", name ? name : "",
                      ag_task_family_names());
}

ag_status ag_task_generate(const char *family, int level, uint64_t seed, int64_t index,
                           bool sharded, ag_task *out) {
  memset(out, 0, sizeof *out);
  const ag_task_family *f;
  ag_status st = ag_task_family_get(family, &f);
  if (st) return st;
  if (!f->generate || f->max_level <= 0)
    return ag_error_set(AG_ERR_UNSUPPORTED,
                        "task family %s is a data set: load its tasks from a file", f->name);
  if (level < 1 || level > f->max_level)
    return ag_error_set(AG_ERR_INVALID, "task family %s: level %d is not in 1..%d", f->name, level,
                        f->max_level);
  if ((st = f->generate(level, seed, index, out))) return st;
  if (sharded) {
    if (!f->shard) {
      ag_task_clear(out);
      return ag_error_set(AG_ERR_UNSUPPORTED, "task family %s has no sharded form", f->name);
    }
    if ((st = f->shard(out))) {
      ag_task_clear(out);
      return st;
    }
  }
  return AG_OK;
}

/* ---- specs ------------------------------------------------------------------------ */

ag_status ag_task_spec_parse(const char *spec, ag_task_spec_item *items, int max_items,
                             int *count) {
  *count = 0;
  if (!spec || !*spec)
    return ag_error_set(AG_ERR_INVALID, "empty task spec (families: %s)", ag_task_family_names());
  const char *p = spec;
  for (;;) {
    size_t len = strcspn(p, ",");
    char item[64];
    const char *a = p, *b = p + len;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    size_t n = (size_t)(b - a);
    if (n == 0) return ag_error_set(AG_ERR_INVALID, "task spec \"%s\": empty item", spec);
    if (n >= sizeof item)
      return ag_error_set(AG_ERR_INVALID, "task spec \"%s\": item \"%.*s\" is too long", spec,
                          (int)n, a);
    memcpy(item, a, n);
    item[n] = '\0';
    char *colon = strchr(item, ':');
    if (colon) *colon = '\0';
    const ag_task_family *f;
    if (ag_task_family_get(item, &f))
      return ag_error_set(AG_ERR_INVALID,
                          "task spec item \"%.*s\": unknown family \"%s\" (known: %s)", (int)n, a,
                          item, ag_task_family_names());
    int level = f->default_level;
    if (colon) {
      char *end;
      const char *digits = colon + 1;
      long v = strtol(digits, &end, 10);
      bool ok = *digits && !isspace((unsigned char)*digits) && *end == '\0';
      bool in_range = f->max_level > 0 ? v >= 1 && v <= f->max_level : v == 0;
      if (!ok || !in_range) {
        if (f->max_level > 0)
          return ag_error_set(AG_ERR_INVALID,
                              "task spec item \"%.*s\": level must be an integer from 1 to %d",
                              (int)n, a, f->max_level);
        return ag_error_set(AG_ERR_INVALID,
                            "task spec item \"%.*s\": %s is a data set and has no levels", (int)n,
                            a, f->name);
      }
      level = (int)v;
    }
    if (*count >= max_items)
      return ag_error_set(AG_ERR_INVALID, "task spec \"%s\": more than %d items", spec, max_items);
    items[*count].family = f;
    items[*count].level = level;
    (*count)++;
    if (!p[len]) break;
    p += len + 1;
  }
  return AG_OK;
}
