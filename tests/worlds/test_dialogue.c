/* Teacher-student dialogues: the metrics of hand-built dialogues, the user
 * simulator, and the runner driven by scripted students (one that follows
 * feedback, one that ignores it, one that asks first, and sharded ones)
 * whose metrics are known exactly; resume after a kill, LLM teachers behind
 * the leak guard, and a student that fails mid-run. */
#include "agora/dialogue.h"
#include "agora/json.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- tasks the scripted agents can recognise ---------------------------------------- */

/* Generated arith tasks whose problem (and first shard) start "Task k.", so
 * that a scripted agent can tell from the dialogue which task it is in. */
static ag_task *make_tasks(int n, bool sharded) {
  ag_task *tasks = calloc((size_t)n, sizeof *tasks);
  for (int i = 0; i < n; i++) {
    ag_status st = ag_task_generate("arith", 1, 7, i, sharded, &tasks[i]);
    CHECK_MSG(st == AG_OK, "%s", ag_error_message());
    if (st) continue;
    char buf[8192];
    snprintf(buf, sizeof buf, "Task %d. %s", i, tasks[i].problem);
    free(tasks[i].problem);
    tasks[i].problem = strdup(buf);
    if (sharded && tasks[i].shard_count > 0) {
      snprintf(buf, sizeof buf, "Task %d. %s", i, tasks[i].shards[0].text);
      free(tasks[i].shards[0].text);
      tasks[i].shards[0].text = strdup(buf);
    }
  }
  return tasks;
}

static void free_tasks(ag_task *tasks, int n) {
  for (int i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);
}

/* The k of the first "Task k." in text, or -1. */
static int task_index(const char *text) {
  const char *p = text ? strstr(text, "Task ") : NULL;
  return p ? atoi(p + 5) : -1;
}

static char *wrong_answer(const ag_task *t) {
  char buf[256];
  snprintf(buf, sizeof buf, "Answer: %s1", t->answer); /* 7 -> 71, 3/4 -> 3/41 */
  return strdup(buf);
}

static char *right_answer(const ag_task *t) {
  char buf[256];
  snprintf(buf, sizeof buf, "Let me see.\nAnswer: %s", t->answer);
  return strdup(buf);
}

/* ---- scripted students --------------------------------------------------------------- */

typedef enum student_kind {
  FOLLOWER,    /* wrong at turn 1, correct after feedback */
  IGNORER,     /* the same wrong answer every turn */
  ASKER,       /* asks at turn 1, then answers correctly */
  EAGER,       /* answers correctly at once (premature on sharded tasks) */
  SHARD_ASKER, /* asks until every shard is revealed, then answers correctly */
  SELF_CRITIC  /* writes its own critique when asked for a user turn; correct after it */
} student_kind;

static const char SELF_CRITIQUE[] = "Your answer is off; recheck the last step.";

typedef struct script {
  student_kind kind;
  const ag_task *tasks;
  int calls, fail_at; /* fail_at: the call (1-based) that returns an error; 0: none */
  int64_t replies;
} script;

static ag_status scripted_student(void *user, const ag_chat_conversation *convs, int64_t n,
                                  const ag_chat_params *params, ag_chat_reply *out) {
  script *s = user;
  bool writes_teacher = params->reply_role && !strcmp(params->reply_role, "user");
  s->calls++;
  if (s->fail_at && s->calls == s->fail_at)
    return ag_error_set(AG_ERR_IO, "scripted student: connection lost");
  for (int64_t i = 0; i < n; i++) {
    const ag_chat_conversation *c = &convs[i];
    CHECK(c->count >= 2 && !strcmp(c->messages[0].role, "system"));
    int k = task_index(c->messages[1].content);
    CHECK(k >= 0);
    if (k < 0) k = 0;
    const ag_task *t = &s->tasks[k];
    int turn = 0; /* student turns so far */
    for (int m = 0; m < c->count; m++) turn += !strcmp(c->messages[m].role, "assistant");
    char *reply = NULL;
    switch (s->kind) {
    case FOLLOWER: reply = turn == 0 ? wrong_answer(t) : right_answer(t); break;
    case IGNORER: reply = wrong_answer(t); break;
    case ASKER:
      reply = turn == 0 ? strdup("I am not sure what to do. Can you explain?") : right_answer(t);
      break;
    case EAGER: reply = right_answer(t); break;
    case SHARD_ASKER:
      reply = turn < t->shard_count - 1 ? strdup("What else do I need to know?") : right_answer(t);
      break;
    case SELF_CRITIC:
      CHECK(writes_teacher == !strcmp(c->messages[c->count - 1].role, "assistant"));
      if (writes_teacher)
        reply = strdup(SELF_CRITIQUE);
      else /* right only after its own critique */
        reply = !strcmp(c->messages[c->count - 1].content, SELF_CRITIQUE) ? right_answer(t)
                                                                          : wrong_answer(t);
      break;
    }
    CHECK(writes_teacher == (s->kind == SELF_CRITIC && turn > 0 &&
                             !strcmp(c->messages[c->count - 1].role, "assistant")));
    out[i].content = reply;
    out[i].finish = AG_FINISH_EOS;
    s->replies++;
  }
  return AG_OK;
}

/* ---- scripted LLM teachers ----------------------------------------------------------- */

typedef struct teacher_script {
  bool leak;
  const ag_task *tasks;
  int64_t replies;
} teacher_script;

static const char HONEST_HINT[] = "Check each step of your working carefully.";

static ag_status scripted_teacher(void *user, const ag_chat_conversation *convs, int64_t n,
                                  const ag_chat_params *params, ag_chat_reply *out) {
  (void)params;
  teacher_script *s = user;
  for (int64_t i = 0; i < n; i++) {
    const ag_chat_conversation *c = &convs[i];
    const char *prompt = c->messages[c->count - 1].content;
    CHECK(strstr(prompt, "Problem:") != NULL);
    int k = task_index(strstr(prompt, "Problem:"));
    CHECK(k >= 0);
    char buf[256];
    if (s->leak && k >= 0)
      snprintf(buf, sizeof buf, "Nearly! The answer is %s.", s->tasks[k].answer);
    else
      snprintf(buf, sizeof buf, "%s", HONEST_HINT);
    out[i].content = strdup(buf);
    s->replies++;
  }
  return AG_OK;
}

/* ---- helpers ------------------------------------------------------------------------- */

static char out_dir[600];

static const char *fresh_dir(const char *name) {
  snprintf(out_dir, sizeof out_dir, "%s/%s", test_tmpdir(), name);
  char path[700];
  snprintf(path, sizeof path, "%s/transcripts.jsonl", out_dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/metrics.json", out_dir);
  unlink(path);
  return out_dir;
}

static void remove_dir(const char *dir) {
  char path[700];
  snprintf(path, sizeof path, "%s/transcripts.jsonl", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/metrics.json", dir);
  unlink(path);
  rmdir(dir);
}

/* Every transcript record of dir, in file order. */
static json_t *read_transcripts(const char *dir) {
  char path[700];
  snprintf(path, sizeof path, "%s/transcripts.jsonl", dir);
  json_t *all = json_array();
  ag_jsonl_reader *r = NULL;
  if (ag_jsonl_open(path, &r) != AG_OK) return all;
  json_t *rec = NULL;
  while (ag_jsonl_next(r, &rec) == AG_OK && rec) json_array_append_new(all, rec);
  ag_jsonl_close(r);
  return all;
}

typedef struct run_result {
  ag_status status;
  ag_teach_metrics metrics;
  ag_teacher_stats stats;
} run_result;

static run_result run_script(script *s, const ag_task *tasks, int n, int turns, bool sharded,
                             const char *dir, bool resume, int64_t batch, ag_chat_model *teacher) {
  run_result r = {0};
  ag_chat_model *student = NULL;
  CHECK_OK(ag_chat_model_custom("scripted-student", scripted_student, s, &student));
  ag_teach_options o = ag_teach_defaults();
  o.student = student;
  o.turns = turns;
  o.sharded = sharded;
  o.out_dir = dir;
  o.resume = resume;
  o.batch = batch;
  o.seed = 11;
  o.teacher.model = teacher;
  r.status = ag_teach_eval(&o, tasks, n, &r.metrics, &r.stats);
  ag_chat_model_close(student);
  return r;
}

static void check_acc(const ag_teach_metrics *m, const double *want, int k) {
  CHECK(m->turns == k);
  for (int i = 0; i < k && m->acc_at; i++) CHECK_NEAR(m->acc_at[i], want[i], 1e-12);
}

/* ---- metrics -------------------------------------------------------------------------- */

static void set_turn(ag_turn_record *r, bool attempt, bool correct, bool premature) {
  r->attempt = attempt;
  r->correct = correct;
  r->premature = premature;
}

TEST(metrics_of_hand_built_dialogues) {
  ag_turn_record t1[3] = {0}, t2[3] = {0}, t3[2] = {0};
  set_turn(&t1[0], true, false, false); /* wrong, question, right: solved at 3 */
  set_turn(&t1[1], false, false, false);
  set_turn(&t1[2], true, true, false);
  set_turn(&t2[0], true, false, true); /* sharded: three wrong answers, the first premature */
  set_turn(&t2[1], true, false, false);
  set_turn(&t2[2], true, false, false);
  set_turn(&t3[0], false, false, false); /* sharded: question, then right but premature */
  set_turn(&t3[1], true, true, true);
  ag_dialogue d[3];
  memset(d, 0, sizeof d);
  d[0] = (ag_dialogue){.turns = t1, .turn_count = 3, .solved = true, .solved_at = 3};
  d[1] = (ag_dialogue){.sharded = true, .turns = t2, .turn_count = 3};
  d[2] =
      (ag_dialogue){.sharded = true, .turns = t3, .turn_count = 2, .solved = true, .solved_at = 2};
  ag_teach_metrics m;
  CHECK_OK(ag_teach_metrics_compute(d, 3, 3, &m));
  CHECK(m.n == 3);
  check_acc(&m, (const double[]){0.0, 1.0 / 3, 2.0 / 3}, 3);
  CHECK_NEAR(m.mean_turns_to_solve, 2.5, 1e-12);
  CHECK(m.attempts == 6 && m.student_turns == 8 && m.uptake_pairs == 3);
  CHECK_NEAR(m.premature_answer_rate, 2.0 / 4, 1e-12); /* over the 4 sharded attempts */
  CHECK_NEAR(m.question_rate, 2.0 / 8, 1e-12);
  CHECK_NEAR(m.feedback_uptake, 1.0 / 3, 1e-12);
  json_t *j = ag_teach_metrics_to_json(&m);
  CHECK(json_integer_value(json_object_get(j, "n")) == 3);
  CHECK(json_array_size(json_object_get(j, "acc_at")) == 3);
  CHECK_NEAR(json_real_value(json_array_get(json_object_get(j, "acc_at"), 2)), 2.0 / 3, 1e-12);
  const char *keys[] = {"mean_turns_to_solve", "premature_answer_rate", "question_rate",
                        "feedback_uptake"};
  for (int i = 0; i < 4; i++) CHECK(json_is_real(json_object_get(j, keys[i])));
  json_decref(j);
  ag_teach_metrics_clear(&m);

  /* No dialogues: every rate is 0, acc@k has K zeros. */
  CHECK_OK(ag_teach_metrics_compute(NULL, 0, 2, &m));
  check_acc(&m, (const double[]){0.0, 0.0}, 2);
  CHECK(m.mean_turns_to_solve == 0 && m.question_rate == 0 && m.feedback_uptake == 0);
  ag_teach_metrics_clear(&m);
  CHECK(ag_teach_metrics_compute(d, 3, 0, &m) != AG_OK);
}

/* ---- the user simulator --------------------------------------------------------------- */

TEST(simulator_picks_the_most_relevant_hidden_shard) {
  ag_task_shard shards[] = {{"Find the area of the garden.", true},
                            {"The garden is 5 metres wide.", true},
                            {"The garden is 7 metres long.", true},
                            {"The gardener's name is Ann.", false}};
  ag_task t = {.shards = shards, .shard_count = 4};
  bool revealed[4] = {true, false, false, false};
  /* "garden" is in shards 1 and 2; "long" only in 2. */
  CHECK(ag_shard_pick(&t, revealed, "How long is the garden?") == 2);
  CHECK(ag_shard_pick(&t, revealed, "Who looks after it? What is the name?") == 3);
  /* A tie goes to the earlier shard; common words do not count. */
  CHECK(ag_shard_pick(&t, revealed, "What is the garden like?") == 1);
  CHECK(ag_shard_pick(&t, revealed, "What is it? Is there more?") == 1);
  /* No question (an answer attempt) or no overlap: the next in order. */
  CHECK(ag_shard_pick(&t, revealed, "Answer: 35 metres long") == 1);
  CHECK(ag_shard_pick(&t, revealed, "Hmm, tell me about the weather?") == 1);
  /* A question before an answer line counts. */
  CHECK(ag_shard_pick(&t, revealed, "How long is it?\nAnswer: 12") == 2);
  /* Plurals match their singular. */
  CHECK(ag_shard_pick(&t, revealed, "How many metres long are gardens?") == 2);
  /* A revealed shard is never picked again. */
  revealed[2] = true;
  CHECK(ag_shard_pick(&t, revealed, "How long is the garden?") == 1);
  revealed[1] = true;
  CHECK(ag_shard_pick(&t, revealed, "How wide is the garden?") == 3);
  revealed[3] = true;
  CHECK(ag_shard_pick(&t, revealed, "Anything else?") == -1);
}

/* ---- the programmatic teacher ---------------------------------------------------------- */

TEST(binary_phrasings_are_varied_and_the_sets_disjoint) {
  ag_task *tasks = make_tasks(1, false);
  ag_verdict v = {0};
  const ag_task_family *f = NULL;
  CHECK_OK(ag_task_family_get("arith", &f));
  if (!f) {
    free_tasks(tasks, 1);
    return;
  }
  CHECK_OK(f->verify(&tasks[0], "123456789", &v));
  CHECK(!v.correct);
  char *seen[2][64];
  int count[2] = {0, 0};
  for (int set = 0; set < 2; set++) {
    ag_rng rng;
    ag_rng_seed(&rng, 3);
    for (int i = 0; i < 400; i++) {
      char *text = NULL;
      CHECK_OK(ag_teacher_feedback(&tasks[0], &v, AG_FEEDBACK_BINARY, (ag_phrasing_set)set, &rng,
                                   &text));
      if (!text) continue;
      CHECK(strstr(text, tasks[0].answer) == NULL || strlen(tasks[0].answer) == 0);
      bool known = false;
      for (int k = 0; k < count[set] && !known; k++) known = !strcmp(seen[set][k], text);
      if (!known && count[set] < 64)
        seen[set][count[set]++] = text;
      else
        free(text);
    }
  }
  /* Each set has at least 6 distinct openings ("That is not correct.") and
   * more texts with the retry phrasings; no opening and no text is in both. */
  CHECK_MSG(count[0] >= 12 && count[1] >= 12, "%d, %d distinct", count[0], count[1]);
  char openings[2][64][128];
  int n_open[2] = {0, 0};
  for (int set = 0; set < 2; set++)
    for (int k = 0; k < count[set]; k++) {
      const char *dot = strchr(seen[set][k], '.');
      int len = dot ? (int)(dot - seen[set][k]) + 1 : (int)strlen(seen[set][k]);
      char opening[128];
      snprintf(opening, sizeof opening, "%.*s", len, seen[set][k]);
      bool known = false;
      for (int j = 0; j < n_open[set] && !known; j++) known = !strcmp(openings[set][j], opening);
      if (!known && n_open[set] < 64) snprintf(openings[set][n_open[set]++], 128, "%s", opening);
    }
  CHECK_MSG(n_open[0] >= 6 && n_open[1] >= 6, "%d, %d openings", n_open[0], n_open[1]);
  for (int a = 0; a < n_open[0]; a++)
    for (int b = 0; b < n_open[1]; b++) CHECK(strcmp(openings[0][a], openings[1][b]) != 0);
  for (int a = 0; a < count[0]; a++)
    for (int b = 0; b < count[1]; b++) CHECK(strcmp(seen[0][a], seen[1][b]) != 0);
  for (int set = 0; set < 2; set++)
    for (int k = 0; k < count[set]; k++) free(seen[set][k]);
  /* After a question: a nudge and the answer format. */
  ag_rng rng;
  ag_rng_seed(&rng, 4);
  char *text = NULL;
  CHECK_OK(ag_teacher_feedback(&tasks[0], NULL, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, &rng,
                               &text));
  CHECK(text && !strncmp(text, "Think about", 11) && strstr(text, "Answer:"));
  free(text);
  ag_verdict_clear(&v);
  free_tasks(tasks, 1);
}

/* ---- scripted students give exactly their metrics -------------------------------------- */

#define N_TASKS 6
#define K_TURNS 3

TEST(follower_solves_at_turn_two) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  script s = {.kind = FOLLOWER, .tasks = tasks};
  const char *dir = fresh_dir("follower");
  run_result r = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 4, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  const ag_teach_metrics *m = &r.metrics;
  CHECK(m->n == N_TASKS);
  check_acc(m, (const double[]){0.0, 1.0, 1.0}, K_TURNS);
  CHECK_NEAR(m->mean_turns_to_solve, 2.0, 1e-12);
  CHECK(m->question_rate == 0.0 && m->premature_answer_rate == 0.0);
  CHECK_NEAR(m->feedback_uptake, 1.0, 1e-12);
  CHECK(m->uptake_pairs == N_TASKS && m->attempts == 2 * N_TASKS);
  CHECK(r.stats.messages == N_TASKS && r.stats.rejected == 0 && r.stats.fallbacks == 0);
  /* Batches of 4 (then refilled): far fewer model calls than replies. */
  CHECK(s.replies == 2 * N_TASKS && s.calls <= 4);

  /* The transcripts: chat-messages shape, names, verdicts; metrics.json. */
  json_t *all = read_transcripts(dir);
  CHECK(json_array_size(all) == N_TASKS);
  json_t *rec = json_array_get(all, 0);
  json_t *msgs = json_object_get(rec, "messages"), *meta = json_object_get(rec, "meta");
  CHECK(json_array_size(msgs) == 5); /* system, teacher, student, teacher, student */
  const char *roles[] = {"system", "user", "assistant", "user", "assistant"};
  const char *names[] = {NULL, "teacher", "student", "teacher", "student"};
  for (size_t i = 0; i < json_array_size(msgs) && i < 5; i++) {
    json_t *mj = json_array_get(msgs, i);
    CHECK(!strcmp(json_string_value(json_object_get(mj, "role")), roles[i]));
    const char *name = json_string_value(json_object_get(mj, "name"));
    CHECK(names[i] ? name && !strcmp(name, names[i]) : name == NULL);
    CHECK(json_is_string(json_object_get(mj, "content")));
  }
  const char *teacher_reply =
      json_string_value(json_object_get(json_array_get(msgs, 3), "content"));
  CHECK(teacher_reply && strlen(teacher_reply) > 0);
  CHECK(json_is_true(json_object_get(meta, "solved")));
  CHECK(json_integer_value(json_object_get(meta, "solved_at")) == 2);
  CHECK(!strcmp(json_string_value(json_object_get(meta, "family")), "arith"));
  CHECK(!strcmp(json_string_value(json_object_get(meta, "teacher")), "programmatic"));
  CHECK(!strcmp(json_string_value(json_object_get(meta, "student")), "scripted-student"));
  json_t *verdicts = json_object_get(meta, "verdicts");
  CHECK(json_array_size(verdicts) == 2);
  json_t *v0 = json_array_get(verdicts, 0);
  CHECK(json_is_true(json_object_get(v0, "attempt")) &&
        json_is_false(json_object_get(v0, "correct")));
  CHECK(json_is_object(json_object_get(v0, "diagnostics")));
  json_decref(all);
  json_t *mj = NULL;
  char path[700];
  snprintf(path, sizeof path, "%s/metrics.json", dir);
  CHECK_OK(ag_json_load(path, &mj));
  CHECK(json_integer_value(json_object_get(mj, "n")) == N_TASKS);
  CHECK(json_array_size(json_object_get(mj, "acc_at")) == K_TURNS);
  json_decref(mj);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

TEST(ignorer_never_solves) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  script s = {.kind = IGNORER, .tasks = tasks};
  const char *dir = fresh_dir("ignorer");
  run_result r = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  const ag_teach_metrics *m = &r.metrics;
  check_acc(m, (const double[]){0.0, 0.0, 0.0}, K_TURNS);
  CHECK(m->mean_turns_to_solve == 0.0 && m->question_rate == 0.0);
  CHECK(m->feedback_uptake == 0.0 && m->uptake_pairs == 2 * N_TASKS);
  CHECK(m->attempts == K_TURNS * N_TASKS);
  CHECK(s.calls == K_TURNS); /* one call per round for all dialogues */
  /* The teacher replied after turns 1 and 2, not after the last. */
  CHECK(r.stats.messages == 2 * N_TASKS);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

TEST(asker_asks_then_solves) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  script s = {.kind = ASKER, .tasks = tasks};
  const char *dir = fresh_dir("asker");
  run_result r = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  const ag_teach_metrics *m = &r.metrics;
  check_acc(m, (const double[]){0.0, 1.0, 1.0}, K_TURNS);
  CHECK_NEAR(m->mean_turns_to_solve, 2.0, 1e-12);
  CHECK_NEAR(m->question_rate, 0.5, 1e-12);
  CHECK(m->feedback_uptake == 0.0 && m->uptake_pairs == 0);
  CHECK(m->premature_answer_rate == 0.0);
  /* The teacher's reply to a question asks for an answer line. */
  json_t *all = read_transcripts(dir);
  json_t *msgs = json_object_get(json_array_get(all, 0), "messages");
  const char *reply = json_string_value(json_object_get(json_array_get(msgs, 3), "content"));
  CHECK(reply && strstr(reply, "Answer:"));
  json_t *v0 = json_array_get(
      json_object_get(json_object_get(json_array_get(all, 0), "meta"), "verdicts"), 0);
  CHECK(json_is_false(json_object_get(v0, "attempt")) &&
        json_is_null(json_object_get(v0, "diagnostics")));
  json_decref(all);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

/* Sharded: answering at once is premature exactly when a required shard
 * beyond the first exists; asking until all is revealed never is, and each
 * teacher turn reveals at most one shard. */
TEST(sharded_premature_answers_and_one_shard_per_turn) {
  ag_task *tasks = make_tasks(N_TASKS, true);
  int expected_premature = 0, max_shards = 0;
  for (int i = 0; i < N_TASKS; i++) {
    CHECK(tasks[i].shard_count >= 2);
    bool hidden_required = false;
    for (int k = 1; k < tasks[i].shard_count; k++) hidden_required |= tasks[i].shards[k].required;
    expected_premature += hidden_required;
    if (tasks[i].shard_count > max_shards) max_shards = tasks[i].shard_count;
  }
  CHECK(expected_premature > 0);

  script eager = {.kind = EAGER, .tasks = tasks};
  const char *dir = fresh_dir("eager");
  run_result r = run_script(&eager, tasks, N_TASKS, K_TURNS, true, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  check_acc(&r.metrics, (const double[]){1.0, 1.0, 1.0}, K_TURNS);
  CHECK_NEAR(r.metrics.premature_answer_rate, (double)expected_premature / N_TASKS, 1e-12);
  json_t *all = read_transcripts(dir);
  for (size_t i = 0; i < json_array_size(all); i++) {
    json_t *meta = json_object_get(json_array_get(all, i), "meta");
    int k = task_index(json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(all, i), "messages"), 1), "content")));
    CHECK(json_is_true(json_object_get(meta, "sharded")));
    bool hidden_required = false;
    for (int s = 1; k >= 0 && s < tasks[k].shard_count; s++)
      hidden_required |= tasks[k].shards[s].required;
    json_t *v0 = json_array_get(json_object_get(meta, "verdicts"), 0);
    CHECK(json_is_true(json_object_get(v0, "premature")) == hidden_required);
  }
  json_decref(all);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);

  script asker = {.kind = SHARD_ASKER, .tasks = tasks};
  dir = fresh_dir("shard-asker");
  r = run_script(&asker, tasks, N_TASKS, max_shards, true, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  CHECK(r.metrics.premature_answer_rate == 0.0);
  int64_t turns = 0, questions = 0;
  for (int i = 0; i < N_TASKS; i++) {
    turns += tasks[i].shard_count;
    questions += tasks[i].shard_count - 1;
  }
  CHECK_NEAR(r.metrics.question_rate, (double)questions / turns, 1e-12);
  for (int k = 1; k <= max_shards; k++) {
    int within = 0;
    for (int i = 0; i < N_TASKS; i++) within += tasks[i].shard_count <= k;
    CHECK_NEAR(r.metrics.acc_at[k - 1], (double)within / N_TASKS, 1e-12);
  }
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);

  /* An ignoring student: each teacher turn reveals exactly one new shard
   * until all are out. */
  script ignorer = {.kind = IGNORER, .tasks = tasks};
  dir = fresh_dir("shard-ignorer");
  r = run_script(&ignorer, tasks, N_TASKS, max_shards + 1, true, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  all = read_transcripts(dir);
  for (size_t i = 0; i < json_array_size(all); i++) {
    json_t *msgs = json_object_get(json_array_get(all, i), "messages");
    int k = task_index(json_string_value(json_object_get(json_array_get(msgs, 1), "content")));
    if (k < 0) continue;
    const ag_task *t = &tasks[k];
    bool *shown = calloc((size_t)t->shard_count, sizeof *shown);
    shown[0] = true;
    int teacher_turn = 0;
    for (size_t m = 3; m < json_array_size(msgs); m += 2) {
      const char *text = json_string_value(json_object_get(json_array_get(msgs, m), "content"));
      int fresh = 0;
      for (int s = 1; s < t->shard_count; s++)
        if (!shown[s] && strstr(text, t->shards[s].text)) {
          shown[s] = true;
          fresh++;
        }
      teacher_turn++;
      CHECK_MSG(fresh == (teacher_turn < t->shard_count ? 1 : 0), "turn %d reveals %d shards",
                teacher_turn, fresh);
    }
    free(shown);
  }
  json_decref(all);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

/* Whether a required shard is hidden while shards[0..shown) are revealed. */
static bool required_hidden_after(const ag_task *t, int shown) {
  for (int k = shown; k < t->shard_count; k++)
    if (t->shards[k].required) return true;
  return false;
}

/* The three scripted students on sharded tasks: every metric, premature
 * answers included, follows from the shards the teacher reveals (one per
 * turn: the next in order after an attempt, the simulator's pick after a
 * question). */
TEST(scripted_students_on_sharded_tasks) {
  ag_task *tasks = make_tasks(N_TASKS, true);
  int follower_premature = 0, ignorer_premature = 0, asker_premature = 0;
  for (int i = 0; i < N_TASKS; i++) {
    const ag_task *t = &tasks[i];
    follower_premature += required_hidden_after(t, 1) + required_hidden_after(t, 2);
    for (int turn = 1; turn <= K_TURNS; turn++)
      ignorer_premature += required_hidden_after(t, turn < t->shard_count ? turn : t->shard_count);
    bool *revealed = calloc((size_t)t->shard_count, sizeof *revealed);
    revealed[0] = true;
    int pick = ag_shard_pick(t, revealed, "I am not sure what to do. Can you explain?");
    if (pick >= 0) revealed[pick] = true;
    bool hidden = false;
    for (int k = 0; k < t->shard_count; k++) hidden |= t->shards[k].required && !revealed[k];
    asker_premature += hidden;
    free(revealed);
  }
  CHECK(follower_premature > 0 && ignorer_premature > 0 && asker_premature > 0);

  script follower = {.kind = FOLLOWER, .tasks = tasks};
  const char *dir = fresh_dir("sharded-follower");
  run_result r = run_script(&follower, tasks, N_TASKS, K_TURNS, true, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  check_acc(&r.metrics, (const double[]){0.0, 1.0, 1.0}, K_TURNS);
  CHECK_NEAR(r.metrics.mean_turns_to_solve, 2.0, 1e-12);
  CHECK(r.metrics.question_rate == 0.0);
  CHECK_NEAR(r.metrics.feedback_uptake, 1.0, 1e-12);
  CHECK_NEAR(r.metrics.premature_answer_rate, (double)follower_premature / (2 * N_TASKS), 1e-12);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);

  script ignorer = {.kind = IGNORER, .tasks = tasks};
  dir = fresh_dir("sharded-ignorer");
  r = run_script(&ignorer, tasks, N_TASKS, K_TURNS, true, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  check_acc(&r.metrics, (const double[]){0.0, 0.0, 0.0}, K_TURNS);
  CHECK(r.metrics.mean_turns_to_solve == 0.0 && r.metrics.question_rate == 0.0);
  CHECK(r.metrics.feedback_uptake == 0.0 && r.metrics.uptake_pairs == (K_TURNS - 1) * N_TASKS);
  CHECK_NEAR(r.metrics.premature_answer_rate, (double)ignorer_premature / (K_TURNS * N_TASKS),
             1e-12);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);

  script asker = {.kind = ASKER, .tasks = tasks};
  dir = fresh_dir("sharded-asker");
  r = run_script(&asker, tasks, N_TASKS, K_TURNS, true, dir, false, 16, NULL);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  check_acc(&r.metrics, (const double[]){0.0, 1.0, 1.0}, K_TURNS);
  CHECK_NEAR(r.metrics.mean_turns_to_solve, 2.0, 1e-12);
  CHECK_NEAR(r.metrics.question_rate, 0.5, 1e-12);
  CHECK(r.metrics.feedback_uptake == 0.0 && r.metrics.uptake_pairs == 0);
  CHECK_NEAR(r.metrics.premature_answer_rate, (double)asker_premature / N_TASKS, 1e-12);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

/* ---- resume, errors, LLM teachers --------------------------------------------------- */

static char *read_all(const char *dir) {
  char path[700], *data = NULL;
  size_t bytes = 0;
  snprintf(path, sizeof path, "%s/transcripts.jsonl", dir);
  if (ag_read_file(path, &data, &bytes) != AG_OK) return NULL;
  return data;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; s && *s; s++) n += *s == '\n';
  return n;
}

static int compare_lines(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text, sorted (pointers into text, which is modified). */
static int sorted_lines(char *text, char **lines, int max) {
  int n = 0;
  for (char *p = text; p && *p && n < max;) {
    char *end = strchr(p, '\n');
    if (!end) break;
    *end = '\0';
    lines[n++] = p;
    p = end + 1;
  }
  qsort(lines, (size_t)n, sizeof *lines, compare_lines);
  return n;
}

TEST(resume_after_a_kill_gives_the_same_metrics) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  script s = {.kind = FOLLOWER, .tasks = tasks};
  const char *dir = fresh_dir("resume");
  run_result full = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 2, NULL);
  CHECK_MSG(full.status == AG_OK, "%s", ag_error_message());
  char *original = read_all(dir);
  CHECK(count_lines(original) == N_TASKS);

  /* A kill in the middle of writing line 4: 3 whole lines and half of one. */
  const char *p = original;
  for (int i = 0; i < 3 && p; i++) p = strchr(p, '\n') + 1;
  size_t keep = (size_t)(p - original) + (size_t)(strchr(p, '\n') - p) / 2;
  char path[700];
  snprintf(path, sizeof path, "%s/transcripts.jsonl", dir);
  CHECK_OK(ag_atomic_write(path, original, keep));

  script again = {.kind = FOLLOWER, .tasks = tasks};
  run_result resumed = run_script(&again, tasks, N_TASKS, K_TURNS, false, dir, true, 2, NULL);
  CHECK_MSG(resumed.status == AG_OK, "%s", ag_error_message());
  CHECK_MSG(again.replies == 2 * (N_TASKS - 3), "%lld replies",
            (long long)again.replies); /* only the three missing dialogues ran */
  const ag_teach_metrics *a = &full.metrics, *b = &resumed.metrics;
  CHECK(a->n == b->n && a->attempts == b->attempts && a->student_turns == b->student_turns &&
        a->uptake_pairs == b->uptake_pairs);
  for (int k = 0; k < K_TURNS; k++) CHECK(a->acc_at[k] == b->acc_at[k]);
  CHECK(a->mean_turns_to_solve == b->mean_turns_to_solve && a->question_rate == b->question_rate &&
        a->feedback_uptake == b->feedback_uptake &&
        a->premature_answer_rate == b->premature_answer_rate);
  /* The same dialogues, word for word (the random streams follow task ids). */
  char *after = read_all(dir);
  char *la[N_TASKS + 2], *lb[N_TASKS + 2];
  int na = sorted_lines(original, la, N_TASKS + 2), nb = sorted_lines(after, lb, N_TASKS + 2);
  CHECK(na == N_TASKS && nb == N_TASKS);
  for (int i = 0; i < na && i < nb; i++) CHECK(!strcmp(la[i], lb[i]));
  free(original);
  free(after);

  /* Resuming a finished run runs nothing and keeps the file. */
  script idle = {.kind = FOLLOWER, .tasks = tasks};
  ag_teach_metrics_clear(&resumed.metrics);
  resumed = run_script(&idle, tasks, N_TASKS, K_TURNS, false, dir, true, 2, NULL);
  CHECK(resumed.status == AG_OK && idle.calls == 0 && resumed.metrics.n == N_TASKS);
  after = read_all(dir);
  CHECK(count_lines(after) == N_TASKS);
  free(after);
  ag_teach_metrics_clear(&resumed.metrics);
  ag_teach_metrics_clear(&full.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

TEST(student_error_ends_the_run_and_keeps_finished_dialogues) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  /* Batches of 2 solved in 2 calls each: calls 1-4 finish tasks 0-3, call 5 fails. */
  script s = {.kind = FOLLOWER, .tasks = tasks, .fail_at = 5};
  const char *dir = fresh_dir("error");
  run_result r = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 2, NULL);
  CHECK(r.status != AG_OK);
  CHECK_MSG(strstr(ag_error_message(), "connection lost") != NULL, "%s", ag_error_message());
  json_t *all = read_transcripts(dir);
  CHECK(json_array_size(all) == 4);
  for (size_t i = 0; i < json_array_size(all); i++) {
    json_t *meta = json_object_get(json_array_get(all, i), "meta");
    CHECK(!strcmp(json_string_value(json_object_get(meta, "task_id")), tasks[i].id));
  }
  json_decref(all);
  ag_teach_metrics_clear(&r.metrics);
  /* Resuming finishes the rest. */
  script rest = {.kind = FOLLOWER, .tasks = tasks};
  r = run_script(&rest, tasks, N_TASKS, K_TURNS, false, dir, true, 2, NULL);
  CHECK(r.status == AG_OK && r.metrics.n == N_TASKS);
  CHECK_NEAR(r.metrics.acc_at[1], 1.0, 1e-12);
  ag_teach_metrics_clear(&r.metrics);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

TEST(leaking_llm_teacher_is_rejected_and_replaced) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  teacher_script ts = {.leak = true, .tasks = tasks};
  ag_chat_model *teacher = NULL;
  CHECK_OK(ag_chat_model_custom("leaky-teacher", scripted_teacher, &ts, &teacher));
  script s = {.kind = FOLLOWER, .tasks = tasks};
  const char *dir = fresh_dir("leaky");
  run_result r = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 16, teacher);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  /* One reply per dialogue (after turn 1), each tried 1 + 2 times. */
  CHECK(r.stats.messages == N_TASKS);
  CHECK(r.stats.rejected == 3 * N_TASKS && ts.replies == 3 * N_TASKS);
  CHECK(r.stats.fallbacks == N_TASKS);
  json_t *all = read_transcripts(dir);
  CHECK(json_array_size(all) == N_TASKS);
  for (size_t i = 0; i < json_array_size(all); i++) {
    json_t *rec = json_array_get(all, i);
    const char *reply = json_string_value(
        json_object_get(json_array_get(json_object_get(rec, "messages"), 3), "content"));
    CHECK(reply && !strstr(reply, "The answer is") && strlen(reply) > 0);
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(rec, "meta"), "teacher")),
                  "leaky-teacher"));
  }
  json_decref(all);
  ag_teach_metrics_clear(&r.metrics);
  ag_chat_model_close(teacher);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

TEST(honest_llm_teacher_is_used_as_is) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  teacher_script ts = {.leak = false, .tasks = tasks};
  ag_chat_model *teacher = NULL;
  CHECK_OK(ag_chat_model_custom("honest-teacher", scripted_teacher, &ts, &teacher));
  script s = {.kind = FOLLOWER, .tasks = tasks};
  const char *dir = fresh_dir("honest");
  run_result r = run_script(&s, tasks, N_TASKS, K_TURNS, false, dir, false, 16, teacher);
  CHECK_MSG(r.status == AG_OK, "%s", ag_error_message());
  CHECK(r.stats.messages == N_TASKS && r.stats.rejected == 0 && r.stats.fallbacks == 0);
  CHECK(ts.replies == N_TASKS);
  json_t *all = read_transcripts(dir);
  for (size_t i = 0; i < json_array_size(all); i++) {
    const char *reply = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(all, i), "messages"), 3), "content"));
    CHECK(reply && !strcmp(reply, HONEST_HINT));
  }
  json_decref(all);
  check_acc(&r.metrics, (const double[]){0.0, 1.0, 1.0}, K_TURNS);
  ag_teach_metrics_clear(&r.metrics);
  ag_chat_model_close(teacher);
  remove_dir(dir);
  free_tasks(tasks, N_TASKS);
}

TEST(a_self_teaching_student_writes_the_teacher_turns_itself) {
  ag_task *tasks = make_tasks(N_TASKS, false);
  script s = {.kind = SELF_CRITIC, .tasks = tasks};
  ag_chat_model *student = NULL;
  CHECK_OK(ag_chat_model_custom("scripted-student", scripted_student, &s, &student));
  ag_teach_options o = ag_teach_defaults();
  o.student = student;
  o.turns = K_TURNS;
  o.out_dir = fresh_dir("self-teach");
  o.batch = 4;
  o.self_teach = true;
  ag_teach_metrics m;
  ag_teacher_stats stats;
  CHECK_MSG(ag_teach_eval(&o, tasks, N_TASKS, &m, &stats) == AG_OK, "%s", ag_error_message());
  check_acc(&m, (const double[]){0.0, 1.0, 1.0}, K_TURNS);
  /* two answers and one critique per dialogue, all from the student */
  CHECK(s.replies == 3 * N_TASKS && stats.messages == N_TASKS);
  json_t *all = read_transcripts(o.out_dir);
  CHECK(json_array_size(all) == N_TASKS);
  json_t *rec = json_array_get(all, 0);
  json_t *msgs = json_object_get(rec, "messages");
  CHECK(json_array_size(msgs) == 5);
  json_t *critique = json_array_get(msgs, 3);
  CHECK(!strcmp(json_string_value(json_object_get(critique, "role")), "user"));
  CHECK(!strcmp(json_string_value(json_object_get(critique, "content")), SELF_CRITIQUE));
  CHECK(
      !strcmp(json_string_value(json_object_get(json_object_get(rec, "meta"), "teacher")), "self"));
  json_decref(all);
  ag_teach_metrics_clear(&m);
  remove_dir(o.out_dir);
  /* the same student with the programmatic teacher never sees its critique */
  s = (script){.kind = SELF_CRITIC, .tasks = tasks};
  o.self_teach = false;
  o.out_dir = fresh_dir("self-teach-off");
  CHECK_OK(ag_teach_eval(&o, tasks, N_TASKS, &m, NULL));
  check_acc(&m, (const double[]){0.0, 0.0, 0.0}, K_TURNS);
  ag_teach_metrics_clear(&m);
  remove_dir(o.out_dir);
  ag_chat_model_close(student);
  free_tasks(tasks, N_TASKS);
}

TEST(bad_options_are_errors) {
  ag_task *tasks = make_tasks(2, false);
  script s = {.kind = FOLLOWER, .tasks = tasks};
  ag_chat_model *student = NULL;
  CHECK_OK(ag_chat_model_custom("scripted-student", scripted_student, &s, &student));
  ag_teach_options o = ag_teach_defaults();
  o.student = student;
  o.out_dir = fresh_dir("bad");
  ag_teach_metrics m;
  o.turns = 0;
  CHECK(ag_teach_eval(&o, tasks, 2, &m, NULL) != AG_OK);
  o.turns = 2;
  memcpy(tasks[1].id, tasks[0].id, sizeof tasks[1].id);
  CHECK(ag_teach_eval(&o, tasks, 2, &m, NULL) != AG_OK);
  CHECK(strstr(ag_error_message(), "more than once") != NULL);
  memcpy(tasks[1].id, "other", 6);
  o.self_teach = true; /* no teacher to reveal the pieces of a sharded task */
  o.sharded = true;
  CHECK(ag_teach_eval(&o, tasks, 2, &m, NULL) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "self-teaching") != NULL);
  o.sharded = false;
  o.student = NULL;
  CHECK(ag_teach_eval(&o, tasks, 1, &m, NULL) != AG_OK);
  CHECK(s.calls == 0);
  ag_chat_model_close(student);
  remove_dir(o.out_dir);
  free_tasks(tasks, 2);
}

int main(void) {
  ag_progress_set_quiet(true);
  ag_log_set_level(AG_LOG_ERROR);
  RUN(metrics_of_hand_built_dialogues);
  RUN(simulator_picks_the_most_relevant_hidden_shard);
  RUN(binary_phrasings_are_varied_and_the_sets_disjoint);
  RUN(follower_solves_at_turn_two);
  RUN(ignorer_never_solves);
  RUN(asker_asks_then_solves);
  RUN(sharded_premature_answers_and_one_shard_per_turn);
  RUN(scripted_students_on_sharded_tasks);
  RUN(resume_after_a_kill_gives_the_same_metrics);
  RUN(student_error_ends_the_run_and_keeps_finished_dialogues);
  RUN(leaking_llm_teacher_is_rejected_and_replaced);
  RUN(honest_llm_teacher_is_used_as_is);
  RUN(a_self_teaching_student_writes_the_teacher_turns_itself);
  RUN(bad_options_are_errors);
  rmdir(test_tmpdir());
  TEST_MAIN_END();
}
