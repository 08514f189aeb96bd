/* SML fine-tuning (agora/sml_train.h): question priming's dialogue edits on
 * hand cases, bad options refused before any work, and a tiny run end to
 * end (a student pretrained here, five rounds of offline SML) that must
 * raise acc@2 by a margin and that a stopped run repeats exactly when
 * resumed. */
#include "agora/json.h"
#include "agora/sml_train.h"
#include "test.h"

#include <math.h>
#include <sys/stat.h>

/* ---- question priming ------------------------------------------------------------------ */

static bool has_answer_line(const char *s) {
  char *a = NULL;
  bool yes = ag_task_extract_attempt(s, &a);
  free(a);
  return yes;
}

/* sys, problem, wrong, feedback, wrong, feedback, right. */
static int wrong_dialogue(const ag_task *t, ag_chat_message *m, char bufs[3][64]) {
  long v = atol(t->answer);
  snprintf(bufs[0], 64, "Answer: %ld", v + 1);
  snprintf(bufs[1], 64, "Answer: %ld", v - 2);
  snprintf(bufs[2], 64, "Answer: %s", t->answer);
  const char *opening = t->shard_count > 0 ? t->shards[0].text : t->problem;
  m[0] = (ag_chat_message){"system", ag_sml_system_prompt(), NULL};
  m[1] = (ag_chat_message){"user", opening, "teacher"};
  m[2] = (ag_chat_message){"assistant", bufs[0], "student"};
  m[3] = (ag_chat_message){"user", "That is too high.", "teacher"};
  m[4] = (ag_chat_message){"assistant", bufs[1], "student"};
  m[5] = (ag_chat_message){"user", "That is too low.", "teacher"};
  m[6] = (ag_chat_message){"assistant", bufs[2], "student"};
  return 7;
}

TEST(priming_replaces_wrong_answers_by_questions_and_their_answers) {
  ag_task t;
  CHECK_OK(ag_task_generate("arith", 2, 7, 0, false, &t));
  ag_chat_message m[7];
  char bufs[3][64];
  int n = wrong_dialogue(&t, m, bufs);
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  ag_chat_message *out = NULL;
  int count = 0, edits = 0;
  /* decay 1: every wrong answer becomes a question; the right one stays. */
  CHECK_OK(ag_sml_prime_dialogue(&t, m, n, 1.0, &rng, &out, &count, &edits));
  CHECK(count == n && edits == 2);
  for (int i = 0; out && i < count; i++) {
    CHECK(!strcmp(out[i].role, m[i].role));
    CHECK((out[i].name == NULL) == (m[i].name == NULL));
  }
  if (out) {
    CHECK(!strcmp(out[1].content, t.problem)); /* the problem is kept */
    CHECK(!has_answer_line(out[2].content) && strchr(out[2].content, '?'));
    CHECK(!has_answer_line(out[4].content) && strchr(out[4].content, '?'));
    /* The teacher's answers come from the worked solution, never the answer. */
    CHECK_MSG(strcmp(out[3].content, m[3].content) && strstr(out[3].content, "Start here: "), "%s",
              out[3].content);
    const ag_task_family *f;
    CHECK_OK(ag_task_family_get("arith", &f));
    CHECK(!f->leaks(&t, out[3].content) && !f->leaks(&t, out[5].content));
    CHECK(!strcmp(out[6].content, m[6].content));
  }
  ag_sml_messages_free(out, count);
  /* decay 0: nothing changes. */
  CHECK_OK(ag_sml_prime_dialogue(&t, m, n, 0.0, &rng, &out, &count, &edits));
  CHECK(edits == 0);
  for (int i = 0; out && i < count; i++) CHECK(!strcmp(out[i].content, m[i].content));
  ag_sml_messages_free(out, count);
  /* decay 0.75: turn 1 is replaced with probability 0.75, turn 2 with
   * 0.5625; the same seed gives the same edits. */
  int64_t first = 0, second = 0, trials = 2000;
  ag_rng_seed(&rng, 5);
  for (int64_t k = 0; k < trials; k++) {
    CHECK_OK(ag_sml_prime_dialogue(&t, m, n, 0.75, &rng, &out, &count, &edits));
    first += out && strcmp(out[2].content, m[2].content);
    second += out && strcmp(out[4].content, m[4].content);
    ag_sml_messages_free(out, count);
  }
  CHECK_MSG(fabs((double)first / trials - 0.75) < 0.04, "%lld", (long long)first);
  CHECK_MSG(fabs((double)second / trials - 0.5625) < 0.04, "%lld", (long long)second);
  ag_chat_message *a = NULL, *b = NULL;
  int ca = 0, cb = 0, ea = 0, eb = 0;
  ag_rng r1, r2;
  ag_rng_seed(&r1, 9);
  ag_rng_seed(&r2, 9);
  CHECK_OK(ag_sml_prime_dialogue(&t, m, n, 0.75, &r1, &a, &ca, &ea));
  CHECK_OK(ag_sml_prime_dialogue(&t, m, n, 0.75, &r2, &b, &cb, &eb));
  CHECK(ea == eb);
  for (int i = 0; a && b && i < ca; i++) CHECK(!strcmp(a[i].content, b[i].content));
  ag_sml_messages_free(a, ca);
  ag_sml_messages_free(b, cb);
  ag_task_clear(&t);
}

TEST(priming_on_a_sharded_task_asks_for_a_hidden_shard) {
  ag_task t;
  CHECK_OK(ag_task_generate("arith", 2, 7, 3, true, &t));
  CHECK(t.shard_count > 2);
  ag_chat_message m[7];
  char bufs[3][64];
  int n = wrong_dialogue(&t, m, bufs);
  ag_rng rng;
  ag_rng_seed(&rng, 2);
  ag_chat_message *out = NULL;
  int count = 0, edits = 0;
  CHECK_OK(ag_sml_prime_dialogue(&t, m, n, 1.0, &rng, &out, &count, &edits));
  CHECK(edits == 2);
  if (out) {
    /* The reply is a hidden required shard, and the user simulator picks the
     * same shard for the question. */
    int shard = -1;
    for (int s = 1; s < t.shard_count; s++)
      if (!strcmp(out[3].content, t.shards[s].text)) shard = s;
    CHECK_MSG(shard > 0 && t.shards[shard].required, "%s", out[3].content);
    bool revealed[64] = {true};
    CHECK(ag_shard_pick(&t, revealed, out[2].content) == shard);
    /* No number of the shard is in the question. */
    for (const char *c = out[2].content; *c; c++) CHECK(!(*c >= '0' && *c <= '9'));
    /* The second question asks for another shard than the first. */
    CHECK(strcmp(out[5].content, out[3].content));
  }
  ag_sml_messages_free(out, count);
  ag_task_clear(&t);
}

/* ---- bad options -------------------------------------------------------------------------- */

/* Feedback prediction trains on the teacher's critiques, not on the opening
 * turn that states the problem: training renames the opening. */
TEST(the_opening_teacher_turn_is_renamed_for_training) {
  static const char *const roles[] = {"system", "user", "assistant", "user", "assistant"};
  static const char *const names[] = {NULL, "teacher", "student", "teacher", "student"};
  ag_sml_rollout r = {0};
  r.messages = calloc(5, sizeof *r.messages);
  for (int i = 0; i < 5; i++)
    r.messages[i] =
        (ag_chat_message){strdup(roles[i]), strdup("text"), names[i] ? strdup(names[i]) : NULL};
  r.count = 5;
  CHECK_OK(ag_sml_rollout_name_opening(&r));
  CHECK(r.messages[0].name == NULL);
  CHECK(!strcmp(r.messages[1].name, AG_SML_OPENING_NAME));
  CHECK(!strcmp(r.messages[2].name, "student") && !strcmp(r.messages[3].name, "teacher"));
  /* a dialogue without a teacher turn is left as it is */
  ag_sml_rollout none = {0};
  CHECK_OK(ag_sml_rollout_name_opening(&none));
  ag_sml_rollout_clear(&r);
}

TEST(bad_options_fail_before_any_work) {
  char out[600];
  snprintf(out, sizeof out, "%s/bad", test_tmpdir());
  ag_sml_train_options o = ag_sml_train_defaults();
  o.student = "../shared/data/models/stories260K";
  o.out_dir = out;
  ag_sml_train_result r;
  o.kl = 0.1;
  CHECK(ag_sml_train(&o, &r) != AG_OK);
  CHECK(strstr(ag_error_message(), "reference"));
  o.kl = 0;
  o.families = "arith,bogus";
  CHECK(ag_sml_train(&o, &r) != AG_OK);
  CHECK(strstr(ag_error_message(), "bogus"));
  o.families = "arith";
  o.mode = AG_SML_GRPO;
  o.group = 1;
  CHECK(ag_sml_train(&o, &r) != AG_OK);
  o.mode = AG_SML_OFFLINE;
  o.group = 8;
  CHECK(!ag_file_exists(out)); /* nothing written so far */
  /* stories260K has no chat template: refused when opened, before rollouts. */
  CHECK(ag_sml_train(&o, &r) != AG_OK);
  CHECK_MSG(strstr(ag_error_message(), "template"), "%s", ag_error_message());
  ag_error_clear();
}

/* ---- a tiny run --------------------------------------------------------------------------- */

/* A short system message: the tiny student need not read the long default. */
#define SYSTEM "Talk with the teacher."

/* All start with the same word: greedy, the first token is "Let" while
 * non-answers are the majority. */
static const char *const NON_ANSWERS[] = {"Let me think about this.", "Let me see.",
                                          "Let me read it again."};

#define MAX_REC_MESSAGES 6
/* The share of knights-and-knaves replies that are a guess: below half, so
 * that greedy decoding starts "Let" (a non-answer). */
#define GUESS_SHARE    0.45f
#define PRETRAIN_STEPS 200
#define TINY_ROUNDS    5

/* One record: the problem, then one or two student turns with a teacher's
 * nudge between them. Each reply starts with a newline (see the note at
 * make_student). */
static int student_record(const ag_task *t, ag_rng *rng, char replies[2][64], char **nudge,
                          ag_chat_message *m) {
  int n = 0, turns = 1 + (ag_rng_uniform(rng) < 0.5f);
  m[n++] = (ag_chat_message){"system", SYSTEM, NULL};
  m[n++] = (ag_chat_message){"user", t->problem, "teacher"};
  *nudge = NULL;
  for (int k = 0; k < turns; k++) {
    bool knights = !strcmp(json_string_value(json_object_get(t->data, "kind")), "knights");
    if (knights && ag_rng_uniform(rng) < GUESS_SHARE)
      snprintf(replies[k], 64, "\nAnswer: A: %s, B: %s", ag_rng_below(rng, 2) ? "knight" : "knave",
               ag_rng_below(rng, 2) ? "knight" : "knave");
    else
      snprintf(replies[k], 64, "\n%s", NON_ANSWERS[ag_rng_below(rng, 3)]);
    if (k > 0) {
      if (ag_teacher_feedback(t, NULL, AG_FEEDBACK_DIRECTIONAL, AG_PHRASING_TRAIN, rng, nudge))
        *nudge = strdup("Think again.");
      m[n++] = (ag_chat_message){"user", *nudge, "teacher"};
    }
    m[n++] = (ag_chat_message){"assistant", replies[k], "student"};
  }
  return n;
}

/* A student for knights-and-knaves puzzles with two people (puzzle level 1,
 * even tasks): pretrained here on one- and two-turn dialogues whose replies
 * are a well-formed guess ("Answer: A: knight, B: knave", roles at random)
 * 45% of the time and a non-answer otherwise (countdown puzzles: always).
 * Sampled, it answers in about a fifth of its turns and is right a quarter
 * of those times; what SML can teach it is to answer.
 *
 * Each reply starts with a newline: the plain template's generation prompt
 * ends "assistant: " and byte-level BPE would otherwise train the first word
 * with its leading space (" Let"), a token the prompt's lone " " never
 * leads to. */
static bool make_student(const char *dir) {
  const ag_chat_template *plain = NULL;
  CHECK_OK(ag_chat_template_by_name("plain", &plain));
  int64_t n = test_scaled(96, 32);
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  ag_task *tasks = calloc((size_t)n, sizeof *tasks);
  char(*replies)[2][64] = calloc((size_t)n, sizeof *replies);
  char **nudges = calloc((size_t)n, sizeof *nudges);
  ag_chat_message(*msgs)[MAX_REC_MESSAGES] = calloc((size_t)n, sizeof *msgs);
  int *counts = calloc((size_t)n, sizeof *counts);
  ag_tok_train_config tc = ag_tok_train_defaults();
  tc.vocab_size = 384;
  tc.pre_tokenizer = "chameleon";
  ag_tok_trainer *tt = NULL;
  CHECK_OK(ag_tok_trainer_create(&tc, &tt));
  const ag_task_family *puzzle;
  CHECK_OK(ag_task_family_get("puzzle", &puzzle));
  for (int64_t i = 0; i < n; i++) {
    CHECK_OK(puzzle->generate(1, 424242, i, &tasks[i]));
    counts[i] = student_record(&tasks[i], &rng, replies[i], &nudges[i], msgs[i]);
    char *text = NULL;
    CHECK_OK(ag_chat_render(plain, msgs[i], counts[i], NULL, &text));
    if (text) CHECK_OK(ag_tok_trainer_feed(tt, text, strlen(text)));
    free(text);
  }
  ag_tokenizer *tok = NULL;
  CHECK_OK(ag_tok_trainer_finish(tt, &tok));
  ag_tok_trainer_free(tt);
  ag_lm_data *data = NULL;
  ag_lm_data_options lo = {.seq_len = 256, .format = AG_LM_DATA_CHAT, .chat_template = plain};
  lo.train_names[0] = "student";
  lo.n_train_names = 1;
  if (tok) CHECK_OK(ag_lm_data_create(tok, &lo, &data));
  for (int64_t i = 0; data && i < n; i++) CHECK_OK(ag_lm_data_add_chat(data, msgs[i], counts[i]));
  if (data)
    fprintf(stderr, "pretrain: %lld windows, %lld cut\n", (long long)ag_lm_data_windows(data),
            (long long)ag_lm_data_truncated(data));
  ag_transformer *model = NULL;
  if (tok) {
    ag_transformer_config c = ag_transformer_llama_config(ag_tok_vocab_size(tok), 48, 2, 2, 2, 768);
    c.tie_embeddings = true;
    CHECK_OK(ag_transformer_create(&c, &model));
    if (model) ag_transformer_init(model, 3);
  }
  bool ok = false;
  if (model && data) {
    ag_hf_info info;
    memset(&info, 0, sizeof info);
    info.bos_token_id = ag_tok_special_id(tok, AG_TOK_BOS);
    info.pad_token_id = -1;
    int32_t eos = ag_tok_special_id(tok, AG_TOK_EOS);
    if (eos >= 0) info.eos_token_ids[info.eos_count++] = eos;
    ag_lm_train_config c = ag_lm_train_defaults();
    c.steps = test_scale() >= 1.0 ? PRETRAIN_STEPS : 3; /* the sanitizer build: the pipeline only */
    c.batch_size = 4;
    c.lr = 1e-2f;
    c.seed = 1;
    ag_lm_train_run run = {
        .out_dir = dir, .tokenizer = tok, .chat_template = plain, .model_info = &info};
    ag_lm_train_result r;
    ok = ag_lm_train(model, &c, data, NULL, &run, &r) == AG_OK;
    if (!ok)
      fprintf(stderr, "pretrain: %s\n", ag_error_message());
    else
      fprintf(stderr, "pretrain: loss %.3f in %.1f s\n", r.train_loss, r.seconds);
  }
  ag_transformer_destroy(model);
  ag_lm_data_free(data);
  ag_tok_free(tok);
  for (int64_t i = 0; i < n; i++) {
    ag_task_clear(&tasks[i]);
    free(nudges[i]);
  }
  free(tasks);
  free(replies);
  free(nudges);
  free(msgs);
  free(counts);
  return ok;
}

static ag_sml_train_options tiny_options(const char *student, const char *out) {
  ag_sml_train_options o = ag_sml_train_defaults();
  o.student = student;
  o.out_dir = out;
  o.families = "puzzle";
  o.level = 1;
  o.rounds = TINY_ROUNDS;
  o.tasks_per_round = 128;
  o.train_turns = 2;
  o.eval_turns = 2;
  o.eval_tasks = 48;
  o.eval_temperature = 1.0f; /* sampled: acc@k moves with the share of answers */
  o.lr = 3e-3f;
  o.epochs = 2;
  o.batch_size = 4;
  o.max_tokens = 20;
  o.temperature = 1.0f;
  o.system_prompt = SYSTEM;
  o.seed = 1;
  return o;
}

TEST(offline_sml_runs_end_to_end_and_resumes_exactly) {
  char student[600], out[600], again[600], path[700];
  snprintf(student, sizeof student, "%s/student", test_tmpdir());
  snprintf(out, sizeof out, "%s/sml", test_tmpdir());
  snprintf(again, sizeof again, "%s/sml-again", test_tmpdir());
  if (!make_student(student)) return;
  /* The sanitizer build (scale < 1) runs a smaller pipeline. */
  bool full = test_scale() >= 1.0;
  ag_sml_train_options o = tiny_options(student, out);
  if (!full) {
    o.tasks_per_round = 6;
    o.eval_tasks = 4;
  }
  ag_sml_train_result r;
  CHECK_OK(ag_sml_train(&o, &r));
  CHECK(r.rounds_done == TINY_ROUNDS && r.turns == 2 && r.eval_tasks == o.eval_tasks);
  fprintf(stderr, "acc@2 %.3f -> %.3f (acc@1 %.3f -> %.3f), last round: %lld solved of %lld\n",
          r.base_acc_at[1], r.trained_acc_at[1], r.base_acc_at[0], r.trained_acc_at[0],
          (long long)r.last.solved, (long long)r.last.dialogues);
  fprintf(stderr, "question rate (turns without an answer) %.3f -> %.3f\n", r.base_question_rate,
          r.trained_question_rate);
  CHECK(r.base_acc_at[0] >= 0 && r.trained_acc_at[1] >= r.trained_acc_at[0]);
  if (full) {
    /* The integration margin: offline SML on the few dialogues the student
     * solves (about 4 of 128 a round) teaches it to answer (measured: 18% ->
     * 99% of its turns), and sampled acc@2 over 48 held-out tasks rises with
     * it (measured: 5 -> 10 tasks; half the tasks are countdowns it cannot
     * solve). Both must move by a clear margin. */
    CHECK_MSG(r.trained_question_rate < r.base_question_rate - 0.3, "question rate %.3f -> %.3f",
              r.base_question_rate, r.trained_question_rate);
    CHECK_MSG(r.trained_acc_at[1] >= r.base_acc_at[1] + 3.0 / 48.0, "acc@2 %.3f -> %.3f",
              r.base_acc_at[1], r.trained_acc_at[1]);
  }
  snprintf(path, sizeof path, "%s/results.json", out);
  CHECK(ag_file_exists(path));
  snprintf(path, sizeof path, "%s/checkpoint-%d/model.safetensors", out, TINY_ROUNDS);
  CHECK(ag_file_exists(path));
  /* A second fresh run into the folder is refused; resumed, it is done. */
  ag_sml_train_result done;
  CHECK(ag_sml_train(&o, &done) != AG_OK);
  ag_error_clear();
  o.resume = true;
  CHECK_OK(ag_sml_train(&o, &done));
  CHECK(done.resumed && done.rounds_done == TINY_ROUNDS);
  for (int k = 0; k < 2; k++) CHECK(done.trained_acc_at[k] == r.trained_acc_at[k]);
  /* Stopped after round 1 (a run of 1 round, as if killed), then resumed
   * to 2 rounds: round 2 repeats the uninterrupted run's round 2. */
  ag_sml_train_options a = tiny_options(student, again);
  a.tasks_per_round = o.tasks_per_round;
  a.rounds = 1;
  a.eval_tasks = o.eval_tasks; /* the evaluation problems are kept out of training */
  ag_sml_train_result ra;
  CHECK_OK(ag_sml_train(&a, &ra));
  a.rounds = 2;
  a.resume = true;
  CHECK_OK(ag_sml_train(&a, &ra));
  CHECK(ra.resumed && ra.rounds_done == 2);
  char line_a[1024] = "", line_b[1024] = "";
  for (int which = 0; which < 2; which++) {
    snprintf(path, sizeof path, "%s/rounds.jsonl", which ? again : out);
    FILE *f = fopen(path, "r");
    char *dst = which ? line_b : line_a;
    for (int i = 0; f && i < 2; i++)
      if (!fgets(dst, 1024, f)) dst[0] = 0;
    if (f) fclose(f);
  }
  /* Equal but for the seconds. */
  char *sa = strstr(line_a, "\"seconds\""), *sb = strstr(line_b, "\"seconds\"");
  if (sa) *sa = 0;
  if (sb) *sb = 0;
  CHECK_MSG(line_a[0] && !strcmp(line_a, line_b), "\n%s\n%s", line_a, line_b);
}

int main(void) {
  ag_log_set_level(AG_LOG_WARN);
  RUN(priming_replaces_wrong_answers_by_questions_and_their_answers);
  RUN(priming_on_a_sharded_task_asks_for_a_hidden_shard);
  RUN(the_opening_teacher_turn_is_renamed_for_training);
  RUN(bad_options_fail_before_any_work);
  RUN(offline_sml_runs_end_to_end_and_resumes_exactly);
  TEST_MAIN_END();
}
