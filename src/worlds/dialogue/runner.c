/* The teacher-student protocol runner (agora/dialogue.h): dialogues advanced
 * together in rounds (one student model call per round for all active
 * dialogues: one batched generation locally, concurrent requests to an
 * endpoint), each written to transcripts.jsonl the moment it ends, so that
 * a killed run loses at most the dialogues in flight and --resume goes on
 * from the file. */
#include "agora/json.h"
#include "worlds/dialogue/teacher.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char DEFAULT_SYSTEM_PROMPT[] =
    "You are a student working on a problem with a teacher. The teacher knows the answer but "
    "will not tell it to you; after each of your answers the teacher says whether it is correct "
    "and may give a hint. If something is unclear or missing, ask the teacher a question. When "
    "you are ready, give your final answer on a line starting with \"Answer:\".";

#define PATH_MAX_BYTES 4096

ag_teach_options ag_teach_defaults(void) {
  ag_teach_options o;
  memset(&o, 0, sizeof o);
  o.teacher = ag_teacher_defaults();
  o.student_params = ag_chat_params_defaults();
  o.turns = 4;
  o.batch = 16;
  return o;
}

/* ---- dialogues ---------------------------------------------------------------------- */

void ag_dialogue_clear(ag_dialogue *d) {
  if (!d) return;
  ag_task_clear(&d->task);
  for (int i = 0; i < d->message_count; i++) {
    free((char *)d->messages[i].role);
    free((char *)d->messages[i].content);
    free((char *)d->messages[i].name);
  }
  free(d->messages);
  for (int i = 0; i < d->turn_count; i++) json_decref(d->turns[i].diagnostics);
  free(d->turns);
  free(d->revealed);
  memset(d, 0, sizeof *d);
}

/* A copy of text that is valid UTF-8 (each invalid byte becomes U+FFFD), so
 * that any model output can go into a JSON transcript. malloc'd. */
static char *utf8_clean(const char *s) {
  size_t n = strlen(s);
  char *clean = malloc(3 * n + 1);
  if (!clean) return NULL;
  size_t w = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
    if (ok && len > 1) { /* jansson rejects overlong forms and surrogates */
      json_t *probe = json_stringn(s + i, len);
      ok = probe != NULL;
      json_decref(probe);
    }
    if (ok) {
      memcpy(clean + w, s + i, len);
      w += len;
      i += len;
    } else {
      memcpy(clean + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i++;
    }
  }
  clean[w] = '\0';
  return clean;
}

/* Appends a message; the strings are copied (content cleaned to UTF-8). */
static ag_status push_message(ag_dialogue *d, const char *role, const char *name,
                              const char *content) {
  ag_chat_message *grown = realloc(d->messages, (size_t)(d->message_count + 1) * sizeof *grown);
  if (!grown) return ag_error_set(AG_ERR_NOMEM, "dialogue: out of memory");
  d->messages = grown;
  char *r = strdup(role), *c = utf8_clean(content ? content : ""), *nm = name ? strdup(name) : NULL;
  if (!r || !c || (name && !nm)) {
    free(r);
    free(c);
    free(nm);
    return ag_error_set(AG_ERR_NOMEM, "dialogue: out of memory");
  }
  d->messages[d->message_count++] = (ag_chat_message){r, c, nm};
  // cppcheck-suppress memleak ; r, c and nm now belong to d->messages
  return AG_OK;
}

json_t *ag_dialogue_to_json(const ag_dialogue *d, const char *student, const char *teacher) {
  if (!d) return NULL;
  json_t *messages = json_array(), *verdicts = json_array();
  if (!messages || !verdicts) {
    json_decref(messages);
    json_decref(verdicts);
    return NULL;
  }
  for (int i = 0; i < d->message_count; i++) {
    const ag_chat_message *m = &d->messages[i];
    json_t *o = json_pack("{s:s, s:s}", "role", m->role ? m->role : "", "content",
                          m->content ? m->content : "");
    if (o && m->name) json_object_set_new(o, "name", json_string(m->name));
    if (!o || json_array_append_new(messages, o)) goto fail;
  }
  for (int t = 0; t < d->turn_count; t++) {
    const ag_turn_record *r = &d->turns[t];
    json_t *diagnostics = r->diagnostics ? json_incref(r->diagnostics) : json_null();
    json_t *o =
        json_pack("{s:i, s:b, s:b, s:b, s:o}", "turn", t + 1, "attempt", r->attempt, "correct",
                  r->correct, "premature", r->premature, "diagnostics", diagnostics);
    if (!o || json_array_append_new(verdicts, o)) goto fail;
  }
  json_t *meta =
      json_pack("{s:s, s:s, s:i, s:b, s:b, s:i, s:i, s:o, s:s, s:s}", "task_id", d->task.id,
                "family", d->task.family, "level", d->task.level, "sharded", d->sharded, "solved",
                d->solved, "turns", d->turn_count, "solved_at", d->solved_at, "verdicts", verdicts,
                "student", student ? student : "", "teacher", teacher ? teacher : "");
  verdicts = NULL; /* stolen by json_pack, also on failure */
  if (!meta) goto fail;
  return json_pack("{s:o, s:o}", "messages", messages, "meta", meta);
fail:
  json_decref(messages);
  json_decref(verdicts);
  return NULL;
}

/* ---- transcripts on disk ------------------------------------------------------------ */

/* Turn records of a transcript line, enough for the metrics. */
static ag_status dialogue_from_record(const json_t *rec, ag_dialogue *d, const char *path,
                                      int64_t line) {
  memset(d, 0, sizeof *d);
  json_t *meta = json_object_get(rec, "meta");
  json_t *verdicts = json_object_get(meta, "verdicts");
  if (!json_is_object(meta) || !json_is_array(verdicts))
    return ag_error_set(AG_ERR_FORMAT, "%s:%lld: not a transcript record (no meta.verdicts)", path,
                        (long long)line);
  d->sharded = json_is_true(json_object_get(meta, "sharded"));
  d->solved = json_is_true(json_object_get(meta, "solved"));
  d->solved_at = (int)json_integer_value(json_object_get(meta, "solved_at"));
  size_t count = json_array_size(verdicts);
  d->turns = calloc(count ? count : 1, sizeof *d->turns);
  if (!d->turns) return ag_error_set(AG_ERR_NOMEM, "transcripts: out of memory");
  d->turn_count = (int)count;
  for (size_t i = 0; i < count; i++) {
    json_t *v = json_array_get(verdicts, i);
    d->turns[i].attempt = json_is_true(json_object_get(v, "attempt"));
    d->turns[i].correct = json_is_true(json_object_get(v, "correct"));
    d->turns[i].premature = json_is_true(json_object_get(v, "premature"));
  }
  return AG_OK;
}

/* The metrics over every record of a transcripts file. */
static ag_status metrics_of_file(const char *path, int turns, ag_teach_metrics *out) {
  ag_jsonl_reader *r = NULL;
  ag_status st = ag_jsonl_open(path, &r);
  if (st) return st;
  ag_dialogue *ds = NULL;
  int64_t n = 0, capacity = 0;
  for (;;) {
    json_t *rec = NULL;
    st = ag_jsonl_next(r, &rec);
    if (st || !rec) break;
    if (n == capacity) {
      int64_t grown_capacity = capacity ? 2 * capacity : 64;
      ag_dialogue *grown = realloc(ds, (size_t)grown_capacity * sizeof *grown);
      if (!grown) {
        json_decref(rec);
        st = ag_error_set(AG_ERR_NOMEM, "transcripts: out of memory");
        break;
      }
      ds = grown;
      capacity = grown_capacity;
    }
    st = dialogue_from_record(rec, &ds[n], path, ag_jsonl_line(r));
    json_decref(rec);
    if (st) {
      ag_dialogue_clear(&ds[n]);
      break;
    }
    n++;
  }
  ag_jsonl_close(r);
  if (!st) st = ag_teach_metrics_compute(ds, n, turns, out);
  for (int64_t i = 0; i < n; i++) ag_dialogue_clear(&ds[i]);
  free(ds);
  return st;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The ids of the dialogues already in a transcripts file (sorted, strdup'd),
 * after dropping a partial last line (a killed run's) by rewriting the
 * file atomically. */
static ag_status read_finished(const char *path, char ***ids, int64_t *count) {
  *ids = NULL;
  *count = 0;
  char *data = NULL;
  size_t bytes = 0;
  ag_status st = ag_read_file(path, &data, &bytes);
  if (st) return st;
  size_t keep = bytes;
  while (keep > 0 && data[keep - 1] != '\n') keep--;
  if (keep < bytes) {
    ag_warn("%s: dropping a partial last line (%zu bytes) left by an interrupted run", path,
            bytes - keep);
    st = ag_atomic_write(path, data, keep);
    if (st) {
      free(data);
      return st;
    }
  }
  data[keep] = '\0';
  int64_t line = 0, capacity = 0;
  for (char *p = data; *p && !st;) {
    char *end = strchr(p, '\n');
    *end = '\0';
    line++;
    char *q = p;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    if (*q) {
      json_error_t error;
      json_t *rec = json_loads(p, 0, &error);
      const char *id = json_string_value(json_object_get(json_object_get(rec, "meta"), "task_id"));
      if (!rec) {
        st = ag_error_set(AG_ERR_FORMAT, "%s:%lld: %s", path, (long long)line, error.text);
      } else if (!id) {
        st = ag_error_set(AG_ERR_FORMAT, "%s:%lld: not a transcript record (no meta.task_id)", path,
                          (long long)line);
      } else {
        if (*count == capacity) {
          int64_t grown_capacity = capacity ? 2 * capacity : 64;
          char **grown = realloc(*ids, (size_t)grown_capacity * sizeof *grown);
          if (grown) {
            *ids = grown;
            capacity = grown_capacity;
          }
        }
        char *copy = *count < capacity ? strdup(id) : NULL;
        if (!copy)
          st = ag_error_set(AG_ERR_NOMEM, "transcripts: out of memory");
        else
          (*ids)[(*count)++] = copy;
      }
      json_decref(rec);
    }
    p = end + 1;
  }
  free(data);
  if (st) {
    for (int64_t i = 0; i < *count; i++) free((*ids)[i]);
    free(*ids);
    *ids = NULL;
    *count = 0;
    return st;
  }
  if (*count > 1) qsort(*ids, (size_t)*count, sizeof **ids, compare_strings);
  return AG_OK;
}

/* ---- the run ------------------------------------------------------------------------ */

/* A dialogue in flight. */
typedef struct slot {
  ag_dialogue d;
  uint64_t stream;    /* the dialogue's random stream: seed and task id */
  ag_verdict verdict; /* of the last student turn, until the teacher has replied */
  bool has_verdict, finished;
} slot;

/* FNV-1a: a stable hash of a task id, so random streams follow the task
 * (and a resumed run replays the same dialogues), not its position. */
static uint64_t hash_id(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static ag_status slot_start(slot *s, const ag_teach_options *o, const ag_task *task) {
  memset(s, 0, sizeof *s);
  ag_dialogue *d = &s->d;
  ag_status st = ag_task_copy(task, &d->task);
  if (st) return st;
  d->sharded = o->sharded;
  s->stream = ag_dialogue_mix(o->seed, hash_id(task->id));
  if (o->sharded) {
    if (d->task.shard_count == 0) {
      const ag_task_family *f = NULL;
      st = ag_task_family_get(d->task.family, &f);
      if (!st && !f->shard)
        st = ag_error_set(AG_ERR_UNSUPPORTED, "family %s cannot render sharded tasks", f->name);
      if (!st) st = f->shard(&d->task);
      if (st) return ag_error_wrap(st, "sharding %s", task->id);
    }
    if (d->task.shard_count < 1)
      return ag_error_set(AG_ERR_FORMAT, "task %s has no shards", task->id);
    d->revealed = calloc((size_t)d->task.shard_count, sizeof *d->revealed);
    if (!d->revealed) return ag_error_set(AG_ERR_NOMEM, "dialogue: out of memory");
    d->revealed[0] = true;
  }
  st = push_message(d, "system", NULL, o->system_prompt ? o->system_prompt : DEFAULT_SYSTEM_PROMPT);
  if (st) return st;
  char *opening = ag_teacher_opening(&d->task, d->sharded);
  if (!opening) return AG_ERR_NOMEM;
  st = push_message(d, "user", "teacher", opening);
  free(opening);
  return st;
}

static void slot_clear(slot *s) {
  ag_dialogue_clear(&s->d);
  if (s->has_verdict) ag_verdict_clear(&s->verdict);
  memset(s, 0, sizeof *s);
}

static bool required_hidden(const ag_dialogue *d) {
  if (!d->sharded) return false;
  for (int i = 0; i < d->task.shard_count; i++)
    if (d->task.shards[i].required && !d->revealed[i]) return true;
  return false;
}

/* Records the student's turn: the message, its verdict, whether the
 * dialogue ends. */
static ag_status student_turn(slot *s, const char *content, int max_turns) {
  ag_dialogue *d = &s->d;
  ag_status st = push_message(d, "assistant", "student", content);
  if (st) return st;
  ag_turn_record *grown = realloc(d->turns, (size_t)(d->turn_count + 1) * sizeof *grown);
  if (!grown) return ag_error_set(AG_ERR_NOMEM, "dialogue: out of memory");
  d->turns = grown;
  ag_turn_record *r = &d->turns[d->turn_count++];
  memset(r, 0, sizeof *r);
  char *attempt = NULL;
  const char *said = d->messages[d->message_count - 1].content;
  if (ag_task_extract_attempt(said, &attempt)) {
    const ag_task_family *f = NULL;
    st = ag_task_family_get(d->task.family, &f);
    if (!st) st = f->verify(&d->task, attempt ? attempt : "", &s->verdict);
    free(attempt);
    if (st) return ag_error_wrap(st, "verifying an attempt at %s", d->task.id);
    s->has_verdict = true;
    r->attempt = true;
    r->correct = s->verdict.correct;
    r->premature = required_hidden(d);
    r->diagnostics = s->verdict.diagnostics ? json_incref(s->verdict.diagnostics) : NULL;
  }
  if (r->correct) {
    d->solved = true;
    d->solved_at = d->turn_count;
  }
  s->finished = r->correct || d->turn_count >= max_turns;
  return AG_OK;
}

typedef struct run {
  const ag_teach_options *o;
  slot *slots;
  int64_t active;
  ag_chat_conversation *convs;
  ag_chat_reply *replies;
  ag_teacher_request *requests;
  int64_t *request_slot;
  char **teacher_out;
  FILE *file;
  const char *student_name, *teacher_name;
  ag_progress *progress;
  int64_t done, solved;
  ag_teacher_stats stats;
} run;

static ag_status write_dialogue(run *r, const ag_dialogue *d) {
  json_t *rec = ag_dialogue_to_json(d, r->student_name, r->teacher_name);
  ag_status st = rec ? ag_jsonl_write(r->file, rec)
                     : ag_error_set(AG_ERR_NOMEM, "transcript of %s: out of memory", d->task.id);
  json_decref(rec);
  if (st) return ag_error_wrap(st, "writing the transcript of %s", d->task.id);
  r->done++;
  if (d->solved) r->solved++;
  ag_progress_set_note(r->progress, "solved %lld", (long long)r->solved);
  ag_progress_update(r->progress, r->done);
  return AG_OK;
}

/* Self-teaching: the student writes the teacher turns of the n requests
 * (the same conversations it just answered, now with its turn last) into
 * r->teacher_out, from the public dialogue alone. */
static ag_status self_critiques(run *r, int64_t n) {
  const ag_teach_options *o = r->o;
  for (int64_t j = 0; j < n; j++) {
    const ag_dialogue *d = r->requests[j].dialogue;
    r->convs[j] = (ag_chat_conversation){d->messages, d->message_count, r->requests[j].stream};
  }
  ag_chat_params p = o->student_params;
  p.reply_role = "user";
  ag_status st = ag_chat_model_reply(o->student, r->convs, n, &p, r->replies);
  for (int64_t j = 0; j < n && !st; j++) {
    const char *c = r->replies[j].content ? r->replies[j].content : "";
    size_t len = strlen(c);
    r->teacher_out[j] = malloc(len + 1);
    if (!r->teacher_out[j])
      st = ag_error_set(AG_ERR_NOMEM, "self-teaching: out of memory");
    else
      memcpy(r->teacher_out[j], c, len + 1);
  }
  ag_chat_reply_clear(r->replies, n);
  if (!st) r->stats.messages += n;
  return st ? ag_error_wrap(st, "student %s writing its own feedback", r->student_name) : AG_OK;
}

/* One round: every active dialogue gets a student turn, and those that go
 * on a teacher turn; finished ones are written and leave. */
static ag_status round_step(run *r) {
  const ag_teach_options *o = r->o;
  int64_t m = r->active;
  for (int64_t i = 0; i < m; i++) {
    const ag_dialogue *d = &r->slots[i].d;
    r->convs[i] =
        (ag_chat_conversation){d->messages, d->message_count,
                               ag_dialogue_mix(r->slots[i].stream, 2 * (uint64_t)d->turn_count)};
  }
  ag_status st = ag_chat_model_reply(o->student, r->convs, m, &o->student_params, r->replies);
  if (st) {
    ag_chat_reply_clear(r->replies, m);
    return ag_error_wrap(st, "student %s", r->student_name);
  }
  int64_t wanted = 0;
  for (int64_t i = 0; i < m && !st; i++) {
    slot *s = &r->slots[i];
    st = student_turn(s, r->replies[i].content ? r->replies[i].content : "", o->turns);
    if (st || s->finished) continue;
    ag_dialogue *d = &s->d;
    int shard =
        d->sharded ? ag_shard_pick(&d->task, d->revealed, d->messages[d->message_count - 1].content)
                   : -1;
    if (shard >= 0) d->revealed[shard] = true;
    r->requests[wanted] =
        (ag_teacher_request){d, s->has_verdict ? &s->verdict : NULL, shard,
                             ag_dialogue_mix(s->stream, 2 * (uint64_t)d->turn_count - 1)};
    r->request_slot[wanted++] = i;
  }
  ag_chat_reply_clear(r->replies, m);
  if (st) return st;
  /* Finished dialogues go to the file before the teacher speaks, so that a
   * teacher model's error loses none of them. */
  for (int64_t i = 0; i < m && !st; i++)
    if (r->slots[i].finished) st = write_dialogue(r, &r->slots[i].d);
  if (st) return st;
  st = o->self_teach ? self_critiques(r, wanted)
                     : ag_teacher_replies(&o->teacher, r->requests, wanted, o->seed, r->teacher_out,
                                          &r->stats);
  for (int64_t j = 0; j < wanted; j++) {
    slot *s = &r->slots[r->request_slot[j]];
    if (!st) st = push_message(&s->d, "user", "teacher", r->teacher_out[j]);
    free(r->teacher_out[j]);
    r->teacher_out[j] = NULL;
  }
  /* Finished dialogues leave; the rest close the gaps, keeping their order. */
  int64_t kept = 0;
  for (int64_t i = 0; i < m; i++) {
    slot *s = &r->slots[i];
    if (s->has_verdict) {
      ag_verdict_clear(&s->verdict);
      s->has_verdict = false;
    }
    if (s->finished) {
      slot_clear(s);
      continue;
    }
    if (kept != i) {
      r->slots[kept] = *s;
      memset(s, 0, sizeof *s);
    }
    kept++;
  }
  r->active = kept;
  return st;
}

static ag_status check_options(const ag_teach_options *o, const ag_task *tasks, int64_t n) {
  if (!o || !o->student) return ag_error_set(AG_ERR_INVALID, "teach eval: no student model");
  if (!o->out_dir || !o->out_dir[0])
    return ag_error_set(AG_ERR_INVALID, "teach eval: no output folder");
  if (o->turns < 1) return ag_error_set(AG_ERR_INVALID, "teach eval: turns must be >= 1");
  if (o->batch < 1) return ag_error_set(AG_ERR_INVALID, "teach eval: batch must be >= 1");
  if (o->teacher.max_regenerations < 0)
    return ag_error_set(AG_ERR_INVALID, "teach eval: max_regenerations must be >= 0");
  if (o->self_teach && (o->teacher.model || o->sharded))
    return ag_error_set(AG_ERR_INVALID,
                        "teach eval: self-teaching has no teacher, so neither a teacher model nor "
                        "sharded tasks (whose pieces a teacher reveals)");
  if (n < 0 || (n > 0 && !tasks))
    return ag_error_set(AG_ERR_INVALID, "teach eval: no tasks given for n = %lld", (long long)n);
  if (strlen(o->out_dir) + 32 > PATH_MAX_BYTES)
    return ag_error_set(AG_ERR_INVALID, "teach eval: output folder path too long");
  const char **ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
  if (!ids) return ag_error_set(AG_ERR_NOMEM, "teach eval: out of memory");
  for (int64_t i = 0; i < n; i++) ids[i] = tasks[i].id;
  qsort(ids, (size_t)n, sizeof *ids, compare_strings);
  ag_status st = AG_OK;
  for (int64_t i = 1; i < n && !st; i++)
    if (!strcmp(ids[i - 1], ids[i]))
      st = ag_error_set(AG_ERR_INVALID, "teach eval: task id %s appears more than once", ids[i]);
  free(ids);
  return st;
}

ag_status ag_teach_eval(const ag_teach_options *o, const ag_task *tasks, int64_t n,
                        ag_teach_metrics *metrics, ag_teacher_stats *teacher_stats) {
  if (metrics) memset(metrics, 0, sizeof *metrics);
  if (teacher_stats) memset(teacher_stats, 0, sizeof *teacher_stats);
  ag_status st = check_options(o, tasks, n);
  if (st) return st;
  st = ag_mkdir_p(o->out_dir);
  if (st) return st;
  char path[PATH_MAX_BYTES], metrics_path[PATH_MAX_BYTES];
  snprintf(path, sizeof path, "%s/transcripts.jsonl", o->out_dir);
  snprintf(metrics_path, sizeof metrics_path, "%s/metrics.json", o->out_dir);

  char **finished = NULL;
  int64_t finished_count = 0;
  if (o->resume && ag_file_exists(path)) {
    st = read_finished(path, &finished, &finished_count);
    if (st) return st;
  }
  run r = {.o = o,
           .student_name = ag_chat_model_name(o->student),
           .teacher_name = o->self_teach      ? "self"
                           : o->teacher.model ? ag_chat_model_name(o->teacher.model)
                                              : "programmatic"};
  int64_t *todo = malloc((size_t)(n ? n : 1) * sizeof *todo), todo_count = 0;
  int64_t batch = o->batch;
  r.slots = calloc((size_t)batch, sizeof *r.slots);
  r.convs = calloc((size_t)batch, sizeof *r.convs);
  r.replies = calloc((size_t)batch, sizeof *r.replies);
  r.requests = calloc((size_t)batch, sizeof *r.requests);
  r.request_slot = calloc((size_t)batch, sizeof *r.request_slot);
  r.teacher_out = calloc((size_t)batch, sizeof *r.teacher_out);
  if (!todo || !r.slots || !r.convs || !r.replies || !r.requests || !r.request_slot ||
      !r.teacher_out) {
    st = ag_error_set(AG_ERR_NOMEM, "teach eval: out of memory");
    goto done;
  }
  for (int64_t i = 0; i < n; i++) {
    const char *id = tasks[i].id;
    if (finished_count &&
        bsearch(&id, finished, (size_t)finished_count, sizeof *finished, compare_strings))
      continue;
    todo[todo_count++] = i;
  }
  if (finished_count)
    ag_info("%s: %lld dialogues already written, %lld to run", path, (long long)finished_count,
            (long long)todo_count);
  /* Appending keeps what a resumed run found; a fresh run starts empty. */
  r.file = fopen(path, o->resume ? "ab" : "wb");
  if (!r.file) {
    st = ag_error_set(AG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    goto done;
  }
  r.progress = ag_progress_begin("teach eval", todo_count, "dialogues");
  int64_t next = 0;
  while (!st && (r.active > 0 || next < todo_count)) {
    while (!st && r.active < batch && next < todo_count) {
      st = slot_start(&r.slots[r.active], o, &tasks[todo[next++]]);
      r.active++; /* counted also on failure, so that the cleanup frees it */
    }
    if (!st) st = round_step(&r);
  }
  ag_progress_end(r.progress);
  if (fclose(r.file) != 0 && !st)
    st = ag_error_set(AG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
  r.file = NULL;
  if (st) goto done;

  ag_teach_metrics m;
  st = metrics_of_file(path, o->turns, &m);
  if (st) goto done;
  json_t *mj = ag_teach_metrics_to_json(&m);
  st =
      mj ? ag_json_save(metrics_path, mj) : ag_error_set(AG_ERR_NOMEM, "teach eval: out of memory");
  json_decref(mj);
  if (!st && metrics)
    *metrics = m;
  else
    ag_teach_metrics_clear(&m);

done:
  for (int64_t i = 0; r.slots && i < r.active; i++) slot_clear(&r.slots[i]);
  if (r.file) fclose(r.file);
  if (teacher_stats) *teacher_stats = r.stats;
  for (int64_t i = 0; i < finished_count; i++) free(finished[i]);
  free(finished);
  free(todo);
  free(r.slots);
  free(r.convs);
  free(r.replies);
  free(r.requests);
  free(r.request_slot);
  free(r.teacher_out);
  return st;
}
