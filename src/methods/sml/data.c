/* The base student's training data (agora/sml.h): single-turn and
 * dialogue-format chat records from the generated task families, with the
 * evaluation problems kept out, and their packing into training windows. */
#include "agora/json.h"
#include "agora/sml.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The dialogue runner's default system message (src/worlds/dialogue/
 * runner.c); tests/methods/test_sml_pretrain.c checks that the runner still
 * sends exactly this text. */
static const char SYSTEM_PROMPT[] =
    "You are a student working on a problem with a teacher. The teacher knows the answer but "
    "will not tell it to you; after each of your answers the teacher says whether it is correct "
    "and may give a hint. If something is unclear or missing, ask the teacher a question. When "
    "you are ready, give your final answer on a line starting with \"Answer:\".";

static const char DEFAULT_FAMILIES[] = "arith,algebra,maze,code,puzzle";

/* Feedback levels of the teacher turns in dialogue records: all three, so
 * that later experiments comparing them (E5) start from a student that has
 * seen each. */
#define BINARY_SHARE      0.2
#define DIRECTIONAL_SHARE 0.4
/* Tries at drawing a wrong attempt that the verifier indeed judges wrong. */
#define WRONG_TRIES 6
/* Stream salts: the training tasks and the siblings whose answers serve as
 * wrong attempts come from seeds of their own. */
#define TRAIN_SALT   0x7A5Cull
#define SIBLING_SALT 0x51B1ull
#define RECORD_SALT  0x2EC0ull

const char *ag_sml_system_prompt(void) { return SYSTEM_PROMPT; }
const char *ag_sml_default_families(void) { return DEFAULT_FAMILIES; }

ag_status ag_sml_parse_families(const char *list, const ag_task_family **families, int max,
                                int *count) {
  *count = 0;
  if (!list || !*list) list = DEFAULT_FAMILIES;
  size_t len = strlen(list);
  char *copy = malloc(len + 1);
  if (!copy) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  memcpy(copy, list, len + 1);
  ag_status st = AG_OK;
  char *p = copy;
  for (;;) {
    char *comma = strchr(p, ',');
    if (comma) *comma = '\0';
    while (*p == ' ') p++;
    char *end = p + strlen(p);
    while (end > p && end[-1] == ' ') *--end = '\0';
    const ag_task_family *f = NULL;
    if (!*p) {
      st = ag_error_set(AG_ERR_INVALID, "families \"%s\": an empty item", list);
    } else if (ag_task_family_get(p, &f)) {
      st = ag_error_set(AG_ERR_INVALID, "unknown task family \"%s\" (generated families: %s)", p,
                        DEFAULT_FAMILIES);
    } else if (!f->generate) {
      st = ag_error_set(AG_ERR_INVALID,
                        "%s is a data set, not a generated family (generated families: %s)", p,
                        DEFAULT_FAMILIES);
    } else {
      for (int i = 0; i < *count && !st; i++)
        if (families[i] == f) st = ag_error_set(AG_ERR_INVALID, "family %s is listed twice", p);
      if (!st && *count == max) st = ag_error_set(AG_ERR_INVALID, "more than %d families", max);
      if (!st) families[(*count)++] = f;
    }
    if (st || !comma) break;
    p = comma + 1;
  }
  free(copy);
  if (st) *count = 0;
  return st;
}

ag_sml_data_options ag_sml_data_defaults(void) {
  ag_sml_data_options o;
  memset(&o, 0, sizeof o);
  o.dialogue_fraction = 0.2;
  o.easier_fraction = 0.25;
  o.system_fraction = 0.25;
  return o;
}

/* ---- evaluation problems are never trained on ----------------------------------------- */

static uint64_t hash_text(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

ag_status ag_sml_eval_tasks(const ag_task_family *family, int64_t n, ag_task **tasks) {
  return ag_sml_eval_tasks_at(family, 0, n, tasks);
}

ag_status ag_sml_eval_tasks_at(const ag_task_family *family, int level, int64_t n,
                               ag_task **tasks) {
  *tasks = NULL;
  if (!family || !family->generate || n < 0)
    return ag_error_set(AG_ERR_INVALID, "sml: evaluation tasks need a generated family");
  if (level == 0) level = family->default_level;
  if (level < 1 || level > family->max_level)
    return ag_error_set(AG_ERR_INVALID, "sml: %s has levels 1..%d, not %d", family->name,
                        family->max_level, level);
  ag_task *t = calloc((size_t)(n > 0 ? n : 1), sizeof *t);
  if (!t) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) {
    ag_status st = family->generate(level, AG_SML_EVAL_SEED, i, &t[i]);
    if (st) {
      for (int64_t k = 0; k < i; k++) ag_task_clear(&t[k]);
      free(t);
      return ag_error_wrap(st, "sml: evaluation task %lld of %s", (long long)i, family->name);
    }
  }
  *tasks = t;
  return AG_OK;
}

/* Sorted hashes of the reserved evaluation problems of a family. */
static ag_status reserved_hashes(const ag_task_family *f, int level, uint64_t **out) {
  *out = NULL;
  uint64_t *h = malloc(AG_SML_EVAL_RESERVE * sizeof *h);
  if (!h) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int64_t i = 0; i < AG_SML_EVAL_RESERVE; i++) {
    ag_task t = {0};
    ag_status st = f->generate(level, AG_SML_EVAL_SEED, i, &t);
    if (st) {
      free(h);
      return ag_error_wrap(st, "sml: evaluation task %lld of %s", (long long)i, f->name);
    }
    h[i] = hash_text(t.problem ? t.problem : "");
    ag_task_clear(&t);
  }
  qsort(h, AG_SML_EVAL_RESERVE, sizeof *h, compare_u64);
  *out = h;
  return AG_OK;
}

static bool is_reserved(const uint64_t *reserved, const char *problem) {
  uint64_t h = hash_text(problem ? problem : "");
  return bsearch(&h, reserved, AG_SML_EVAL_RESERVE, sizeof h, compare_u64) != NULL;
}

/* The seed of the training stream of (run seed, family, level): never the
 * evaluation seed. */
static uint64_t train_seed(uint64_t seed, int family_index, int level, uint64_t salt) {
  ag_rng r;
  ag_rng_seed2(&r, seed ^ salt, (uint64_t)(family_index * 16 + level));
  uint64_t s = ag_rng_u64(&r);
  return s == AG_SML_EVAL_SEED ? s + 1 : s;
}

/* ---- records ---------------------------------------------------------------------------- */

static json_t *message(const char *role, const char *name, const char *content) {
  json_t *m = json_pack("{s:s, s:s}", "role", role, "content", content ? content : "");
  if (m && name) json_object_set_new(m, "name", json_string(name));
  return m;
}

/* An integer written alone, or after "x = ": a near miss is that value off
 * by a little. */
static bool integer_answer(const char *answer, const char **prefix_end, long long *value) {
  const char *p = answer;
  if (!strncmp(p, "x = ", 4)) p += 4;
  if (!*p) return false;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(p, &end, 10);
  if (errno || *end || end == p) return false;
  *prefix_end = p;
  *value = v;
  return true;
}

/* A plausible wrong attempt at task: a near miss of a numeric answer, or
 * the answer of another task of the same family and level (well-formed
 * and almost always wrong). Its verdict is filled; *attempt malloc'd. NULL
 * attempt: none found (the record stays single-turn). */
static ag_status wrong_attempt(const ag_task_family *f, const ag_task *task, uint64_t sibling_seed,
                               int64_t index, ag_rng *rng, char **attempt, ag_verdict *verdict) {
  *attempt = NULL;
  for (int k = 0; k < WRONG_TRIES; k++) {
    char *candidate = NULL;
    const char *digits = NULL;
    long long value = 0;
    if (ag_rng_uniform(rng) < 0.5f && integer_answer(task->answer, &digits, &value)) {
      static const int deltas[] = {1, 2, 10, -1, -2, -10};
      long long wrong = value + deltas[ag_rng_below(rng, sizeof deltas / sizeof *deltas)];
      size_t prefix = (size_t)(digits - task->answer);
      candidate = malloc(prefix + 32);
      if (candidate) snprintf(candidate, prefix + 32, "%.*s%lld", (int)prefix, task->answer, wrong);
    } else {
      /* The sibling's number has the parity of the task's own (its id ends
       * in it): families that alternate kinds by number (puzzle: Knights
       * and Knaves, Countdown) then give an answer of the same kind. */
      const char *slash = strrchr(task->id, '/');
      int64_t parity = slash ? strtoll(slash + 1, NULL, 10) % 2 : 0;
      ag_task sibling = {0};
      ag_status st =
          f->generate(task->level, sibling_seed, 2 * (index * WRONG_TRIES + k) + parity, &sibling);
      if (st) return ag_error_wrap(st, "sml: a wrong attempt for %s", task->id);
      candidate = strdup(sibling.answer ? sibling.answer : "");
      ag_task_clear(&sibling);
    }
    if (!candidate) return ag_error_set(AG_ERR_NOMEM, "out of memory");
    ag_verdict v = {0};
    ag_status st = f->verify(task, candidate, &v);
    if (st) {
      free(candidate);
      return ag_error_wrap(st, "sml: verifying a wrong attempt for %s", task->id);
    }
    if (!v.correct) {
      *attempt = candidate;
      *verdict = v;
      return AG_OK;
    }
    ag_verdict_clear(&v);
    free(candidate);
  }
  return AG_OK;
}

/* A maze answer with its moves spaced ("Answer: U U L D"), which the maze
 * verifier reads like the run "UULD": with the moves as separate words the
 * tokenizer keeps one token per move instead of merging runs of letters
 * into chunks, so the answer line is a copy of the moves the worked steps
 * wrote one by one. Other answers are returned as they are. */
static char *spaced_moves(const ag_task *task, const char *answer) {
  bool maze = !strcmp(task->family, "maze");
  size_t n = strlen(answer);
  char *out = malloc(2 * n + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (maze && k > 0 && answer[i] != ' ' && out[k - 1] != ' ') out[k++] = ' ';
    out[k++] = answer[i];
  }
  out[k] = '\0';
  return out;
}

/* The student's turn for a task: a newline, then its worked solution, the
 * final line rendered with spaced_moves.
 *
 * Why the newline: a reply is generated after the prompt `assistant: `,
 * whose trailing space the tokenizer encodes as a token of its own, while
 * in a rendered training turn `assistant: A knight` the space joins the
 * first word (` A`). A turn that starts with a letter would then begin
 * with a token the model never sees at evaluation. The newline is a token
 * of its own (the tokenizer isolates it), so every trained turn starts
 * `:`, ` `, `\n`: the prompt ends at `:` and the model writes ` ` (a target
 * of the chat mask, which starts at the prompt's left-out space) and the
 * rest. */
static char *student_solution(const ag_task *task) {
  const char *sol = task->solution ? task->solution : "";
  const char *last = strstr(sol, "Answer: ");
  while (last && strstr(last + 1, "Answer: ")) last = strstr(last + 1, "Answer: ");
  const char *tail = last && !strchr(last, '\n') ? last + 8 : sol + strlen(sol);
  char *moves = spaced_moves(task, tail);
  if (!moves) return NULL;
  size_t head = (size_t)(tail - sol), bytes = head + strlen(moves) + 2;
  char *out = malloc(bytes);
  if (out) snprintf(out, bytes, "\n%.*s%s", (int)head, sol, moves);
  free(moves);
  return out;
}

/* The wrong attempt as the student would write it: its worked solution
 * (from student_solution) with the final answer replaced by `wrong`, and
 * the last place the steps state the right answer (the last step's result,
 * code's "Try f(x) = ...") changed to it too. A dialogue at evaluation
 * carries the student's own full first reply, so the records show a full
 * reply there as well, not a bare "Answer:" line. NULL: out of memory. */
static char *wrong_solution(const char *solution, const ag_task *task, const char *wrong) {
  const char *tail = strstr(solution, "Answer: ");
  while (tail && strstr(tail + 1, "Answer: ")) tail = strstr(tail + 1, "Answer: ");
  if (!tail) tail = solution + strlen(solution);
  size_t head = (size_t)(tail - solution), right_len = task->answer ? strlen(task->answer) : 0;
  /* the last occurrence of the right answer in the steps, as a whole token */
  const char *hit = NULL;
  for (const char *p = solution; right_len > 0 && (p = strstr(p, task->answer)) && p < tail; p++) {
    bool starts = p == solution || !isalnum((unsigned char)p[-1]);
    bool ends = !isalnum((unsigned char)p[right_len]);
    if (starts && ends && p + right_len <= tail) hit = p;
  }
  size_t bytes = strlen(solution) + 2 * strlen(wrong) + 16;
  char *out = malloc(bytes);
  if (!out) return NULL;
  if (hit)
    snprintf(out, bytes, "%.*s%s%.*sAnswer: %s", (int)(hit - solution), solution, wrong,
             (int)(tail - hit - (ptrdiff_t)right_len), hit + right_len, wrong);
  else
    snprintf(out, bytes, "%.*sAnswer: %s", (int)head, solution, wrong);
  return out;
}

static ag_feedback_level draw_level(ag_rng *rng) {
  float u = ag_rng_uniform(rng);
  return u < BINARY_SHARE                       ? AG_FEEDBACK_BINARY
         : u < BINARY_SHARE + DIRECTIONAL_SHARE ? AG_FEEDBACK_DIRECTIONAL
                                                : AG_FEEDBACK_LOCALISED;
}

/* One record for task: single-turn, or (dialogue) with a wrong attempt and
 * the teacher's feedback before the solution. */
static ag_status build_record(const ag_task_family *f, const ag_task *task, bool dialogue,
                              bool system, uint64_t sibling_seed, int64_t index, ag_rng *rng,
                              json_t **out) {
  *out = NULL;
  char *wrong = NULL, *feedback = NULL;
  ag_verdict verdict = {0};
  ag_status st = AG_OK;
  if (dialogue) st = wrong_attempt(f, task, sibling_seed, index, rng, &wrong, &verdict);
  if (!st && wrong) {
    char *spaced = spaced_moves(task, wrong);
    free(wrong);
    wrong = spaced;
    if (!wrong) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  char *solution = st ? NULL : student_solution(task);
  if (!st && !solution) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
  if (!st && wrong) {
    st = ag_teacher_feedback(task, &verdict, draw_level(rng), AG_PHRASING_TRAIN, rng, &feedback);
  }
  ag_verdict_clear(&verdict);
  json_t *messages = json_array();
  if (!st && messages) {
    if (system) json_array_append_new(messages, message("system", NULL, SYSTEM_PROMPT));
    json_array_append_new(messages, message("user", "teacher", task->problem));
    if (wrong) {
      char *turn = wrong_solution(solution, task, wrong);
      json_array_append_new(messages, turn ? message("assistant", "student_wrong", turn) : NULL);
      json_array_append_new(messages, message("user", "teacher", feedback));
      free(turn);
    }
    json_array_append_new(messages, message("assistant", "student", solution));
  }
  free(solution);
  free(wrong);
  free(feedback);
  if (st) {
    json_decref(messages);
    return st;
  }
  json_t *rec = messages ? json_pack("{s:o, s:{s:s, s:s, s:i, s:s}}", "messages", messages, "meta",
                                     "task_id", task->id, "family", task->family, "level",
                                     task->level, "kind", wrong ? "dialogue" : "single")
                         : NULL;
  if (!rec ||
      json_array_size(json_object_get(rec, "messages")) != (wrong ? 4u : 2u) + (system ? 1u : 0u)) {
    json_decref(rec);
    return ag_error_set(AG_ERR_NOMEM, "out of memory");
  }
  *out = rec;
  return AG_OK;
}

/* The next training task of (family, level) whose problem is not reserved
 * for evaluation at eval_level; *next is the stream position, advanced. */
static ag_status next_task(const ag_task_family *f, int level, int eval_level, uint64_t seed,
                           const uint64_t *reserved, int64_t *next, ag_task *out) {
  for (;;) {
    ag_status st = f->generate(level, seed, (*next)++, out);
    if (st) return ag_error_wrap(st, "sml: training task of %s", f->name);
    if (level != eval_level || !is_reserved(reserved, out->problem)) return AG_OK;
    ag_task_clear(out);
  }
}

ag_status ag_sml_build_records(const ag_sml_data_options *o, json_t **records) {
  *records = NULL;
  if (!o || o->family_count < 1 || o->family_count > AG_SML_MAX_FAMILIES ||
      o->examples_per_family < 0 || o->dialogue_fraction < 0 || o->dialogue_fraction > 1 ||
      o->easier_fraction < 0 || o->easier_fraction > 1 || o->system_fraction < 0 ||
      o->system_fraction > 1 || o->level < 0)
    return ag_error_set(AG_ERR_INVALID, "sml data: bad options (families, counts or fractions)");
  json_t *all = json_array();
  if (!all) return ag_error_set(AG_ERR_NOMEM, "out of memory");
  ag_status st = AG_OK;
  for (int fi = 0; fi < o->family_count && !st; fi++) {
    const ag_task_family *f = o->families[fi];
    if (!f || !f->generate || !f->verify) {
      st = ag_error_set(AG_ERR_INVALID, "sml data: family %d is not a generated family", fi);
      break;
    }
    int top = o->level > 0 ? o->level : f->default_level; /* the evaluation level */
    if (top > f->max_level) {
      st = ag_error_set(AG_ERR_INVALID, "sml data: %s has levels 1..%d, not %d", f->name,
                        f->max_level, top);
      break;
    }
    uint64_t *reserved = NULL;
    st = reserved_hashes(f, top, &reserved);
    int64_t next[2] = {0, 0}; /* stream positions: the level, its neighbour */
    /* The level the easier fraction comes from: one below; at level 1, where
     * there is none, one above, so that a family whose level-1 problem space
     * is all reserved (puzzle's 12 Knights and Knaves problems) is still
     * trained on that form. */
    int neighbour = top > 1 ? top - 1 : (top < f->max_level ? top + 1 : 0);
    for (int64_t i = 0; i < o->examples_per_family && !st; i++) {
      ag_rng rng;
      ag_rng_seed2(&rng, o->seed ^ RECORD_SALT, (uint64_t)(fi * 1000003 + i));
      bool easier = neighbour > 0 && ag_rng_uniform(&rng) < o->easier_fraction;
      bool dialogue = ag_rng_uniform(&rng) < o->dialogue_fraction;
      bool system = ag_rng_uniform(&rng) < o->system_fraction;
      int level = easier ? neighbour : top;
      ag_task task = {0};
      st = next_task(f, level, top, train_seed(o->seed, fi, level, TRAIN_SALT), reserved,
                     &next[easier], &task);
      json_t *rec = NULL;
      if (!st)
        st = build_record(f, &task, dialogue, system, train_seed(o->seed, fi, level, SIBLING_SALT),
                          i, &rng, &rec);
      ag_task_clear(&task);
      if (!st && json_array_append_new(all, rec)) st = ag_error_set(AG_ERR_NOMEM, "out of memory");
    }
    free(reserved);
  }
  if (st) {
    json_decref(all);
    return st;
  }
  *records = all;
  return AG_OK;
}

/* ---- packing records into windows ------------------------------------------------------ */

ag_lm_data_options ag_sml_lm_data_options(int64_t seq_len) {
  ag_lm_data_options o;
  memset(&o, 0, sizeof o);
  o.seq_len = seq_len;
  o.format = AG_LM_DATA_CHAT;
  o.chat_template = NULL; /* plain */
  o.train_names[0] = "student";
  o.n_train_names = 1;
  return o;
}

/* A record's messages as the chat data takes them (pointers into rec). */
static int record_messages(const json_t *rec, ag_chat_message *out, int max) {
  const json_t *messages = json_object_get(rec, "messages");
  int n = 0;
  for (size_t i = 0; i < json_array_size(messages) && n < max; i++) {
    const json_t *m = json_array_get(messages, i);
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *content = json_string_value(json_object_get(m, "content"));
    if (!role || !content) return -1;
    out[n++] = (ag_chat_message){role, content, json_string_value(json_object_get(m, "name"))};
  }
  return n == (int)json_array_size(messages) ? n : -1;
}

#define MAX_RECORD_MESSAGES 16

/* Tokens of one record rendered alone in the plain template. */
static ag_status record_tokens(const ag_tokenizer *tok, const ag_chat_template *plain,
                               const char *eos, const json_t *rec, int64_t *count) {
  ag_chat_message m[MAX_RECORD_MESSAGES];
  int n = record_messages(rec, m, MAX_RECORD_MESSAGES);
  if (n < 1) return ag_error_set(AG_ERR_FORMAT, "sml: a record without well-formed messages");
  ag_chat_render_options ro = {.eos_token = eos, .bos_token = ""};
  char *text = NULL;
  ag_status st = ag_chat_render(plain, m, n, &ro, &text);
  ag_tok_ids ids = {0};
  if (!st) st = ag_tok_encode(tok, text, strlen(text), 0, &ids);
  *count = ids.count;
  ag_tok_ids_free(&ids);
  free(text);
  return st;
}

ag_status ag_sml_add_records(ag_lm_data *d, const ag_tokenizer *tok, const json_t *records,
                             uint64_t seed) {
  int64_t n = (int64_t)json_array_size(records);
  if (!d || !tok || !json_is_array(records)) return ag_error_set(AG_ERR_INVALID, "sml: no records");
  if (n == 0) return AG_OK;
  const ag_chat_template *plain = NULL;
  ag_status st = ag_chat_template_by_name("plain", &plain);
  if (st) return st;
  int32_t eos_id = ag_tok_special_id(tok, AG_TOK_EOS);
  size_t eos_bytes = 0;
  const char *eos_piece = eos_id >= 0 ? ag_tok_token_text(tok, eos_id, &eos_bytes) : NULL;
  char eos[64] = "";
  if (eos_piece && eos_bytes < sizeof eos) memcpy(eos, eos_piece, eos_bytes), eos[eos_bytes] = 0;
  int64_t capacity = ag_lm_data_seq_len(d) + 1; /* a window's tokens, its last target included */
  int64_t *order = malloc((size_t)n * sizeof *order), *tokens = malloc((size_t)n * sizeof *tokens);
  int64_t *bin_of = malloc((size_t)n * sizeof *bin_of), *room = malloc((size_t)n * sizeof *room);
  ag_chat_message *window = malloc((size_t)n * MAX_RECORD_MESSAGES * sizeof *window);
  if (!order || !tokens || !bin_of || !room || !window) st = ag_error_set(AG_ERR_NOMEM, "oom");
  for (int64_t i = 0; i < n && !st; i++) {
    order[i] = i;
    st = record_tokens(tok, plain, eos, json_array_get(records, (size_t)i), &tokens[i]);
  }
  int64_t bins = 0;
  if (!st) {
    ag_rng rng;
    ag_rng_seed(&rng, seed);
    ag_rng_shuffle_i64(&rng, order, n);
    /* First fit over the shuffled records: windows mix families, and a bin
     * holds whole conversations only. */
    for (int64_t k = 0; k < n; k++) {
      int64_t i = order[k], b = 0;
      while (b < bins && room[b] < tokens[i]) b++;
      if (b == bins) room[bins++] = capacity;
      room[b] -= tokens[i];
      bin_of[k] = b;
    }
  }
  /* Each window: its records' messages in shuffled order, one conversation. */
  for (int64_t b = 0; b < bins && !st; b++) {
    int count = 0;
    for (int64_t k = 0; k < n; k++) {
      if (bin_of[k] != b) continue;
      int m = record_messages(json_array_get(records, (size_t)order[k]), window + count,
                              MAX_RECORD_MESSAGES);
      if (m < 0) {
        st = ag_error_set(AG_ERR_FORMAT, "sml: a record without well-formed messages");
        break;
      }
      count += m;
    }
    if (!st) st = ag_lm_data_add_chat(d, window, count);
  }
  free(order);
  free(tokens);
  free(bin_of);
  free(room);
  free(window);
  return st;
}
