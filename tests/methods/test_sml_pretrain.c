/* The base student of social meta-learning (agora/sml.h): the data
 * builder's records and loss masks, and a tiny pretraining run end to end. */
#include "agora/json.h"
#include "agora/sml.h"
#include "test.h"

#include <sys/stat.h>

static json_t *build(const char *families, int64_t n, double dialogue, double system,
                     uint64_t seed) {
  ag_sml_data_options o = ag_sml_data_defaults();
  if (ag_sml_parse_families(families, o.families, AG_SML_MAX_FAMILIES, &o.family_count))
    return NULL;
  o.examples_per_family = n;
  o.dialogue_fraction = dialogue;
  o.system_fraction = system;
  o.seed = seed;
  json_t *records = NULL;
  return ag_sml_build_records(&o, &records) ? NULL : records;
}

static const char *msg_field(const json_t *rec, size_t i, const char *key) {
  return json_string_value(
      json_object_get(json_array_get(json_object_get(rec, "messages"), i), key));
}

TEST(families_are_parsed_and_bad_ones_named) {
  const ag_task_family *f[AG_SML_MAX_FAMILIES];
  int n = 0;
  CHECK_OK(ag_sml_parse_families(NULL, f, AG_SML_MAX_FAMILIES, &n));
  CHECK(n == 5 && !strcmp(f[0]->name, "arith") && !strcmp(f[4]->name, "puzzle"));
  CHECK_OK(ag_sml_parse_families("maze, code", f, AG_SML_MAX_FAMILIES, &n));
  CHECK(n == 2 && !strcmp(f[1]->name, "code"));
  CHECK(ag_sml_parse_families("arith,bogus", f, AG_SML_MAX_FAMILIES, &n) != AG_OK);
  CHECK(strstr(ag_error_message(), "bogus") && strstr(ag_error_message(), "puzzle"));
  CHECK(ag_sml_parse_families("gsm8k", f, AG_SML_MAX_FAMILIES, &n) != AG_OK);
  CHECK(strstr(ag_error_message(), "data set"));
  CHECK(ag_sml_parse_families("arith,arith", f, AG_SML_MAX_FAMILIES, &n) != AG_OK);
  CHECK(ag_sml_parse_families("arith,,maze", f, AG_SML_MAX_FAMILIES, &n) != AG_OK);
  CHECK(n == 0);
  ag_error_clear();
}

static int lines_of(const char *s) {
  int n = 1;
  for (; *s; s++) n += *s == '\n';
  return n;
}

TEST(records_have_the_chat_shape_and_the_solution_as_the_trained_turn) {
  json_t *records = build("arith,algebra,maze,code,puzzle", 12, 0.5, 0.5, 7);
  CHECK(records && json_array_size(records) == 60);
  int dialogues = 0, systems = 0;
  for (size_t i = 0; records && i < json_array_size(records); i++) {
    const json_t *rec = json_array_get(records, i);
    const json_t *meta = json_object_get(rec, "meta");
    const char *kind = json_string_value(json_object_get(meta, "kind"));
    size_t n = json_array_size(json_object_get(rec, "messages"));
    size_t s = !strcmp(msg_field(rec, 0, "role"), "system") ? 1 : 0;
    systems += (int)s;
    if (s) CHECK(!strcmp(msg_field(rec, 0, "content"), ag_sml_system_prompt()));
    bool dialogue = kind && !strcmp(kind, "dialogue");
    dialogues += dialogue;
    CHECK(n == s + (dialogue ? 4 : 2));
    /* The problem is the teacher's; the last turn is the student's solution. */
    CHECK(!strcmp(msg_field(rec, s, "role"), "user") &&
          !strcmp(msg_field(rec, s, "name"), "teacher"));
    CHECK(strstr(msg_field(rec, s, "content"), "Answer"));
    CHECK(!strcmp(msg_field(rec, n - 1, "role"), "assistant"));
    CHECK(!strcmp(msg_field(rec, n - 1, "name"), "student"));
    char *final = NULL, *wrong = NULL;
    CHECK(ag_task_extract_attempt(msg_field(rec, n - 1, "content"), &final));
    if (dialogue) {
      CHECK(!strcmp(msg_field(rec, s + 1, "name"), "student_wrong"));
      CHECK(!strcmp(msg_field(rec, s + 2, "name"), "teacher"));
      CHECK(strlen(msg_field(rec, s + 2, "content")) > 5);
      CHECK(ag_task_extract_attempt(msg_field(rec, s + 1, "content"), &wrong));
      CHECK_MSG(final && wrong && strcmp(final, wrong), "%s", wrong ? wrong : "(none)");
      /* a whole reply, as the student's own first turn is at evaluation: the
       * solution's lines with the wrong answer in place of the right one */
      const char *w = msg_field(rec, s + 1, "content"), *right = msg_field(rec, n - 1, "content");
      CHECK(w[0] == '\n' && lines_of(w) == lines_of(right));
      if (!strcmp(json_string_value(json_object_get(meta, "family")), "arith")) {
        char last_step[64];
        snprintf(last_step, sizeof last_step, "= %s\nAnswer: %s", wrong ? wrong : "?",
                 wrong ? wrong : "?");
        CHECK_MSG(strstr(w, last_step), "%s", w);
      }
    }
    free(final);
    free(wrong);
  }
  CHECK(dialogues > 10 && dialogues < 50);
  CHECK(systems > 10 && systems < 50);
  /* Deterministic in the seed, different across seeds. */
  json_t *again = build("arith,algebra,maze,code,puzzle", 12, 0.5, 0.5, 7);
  json_t *other = build("arith,algebra,maze,code,puzzle", 12, 0.5, 0.5, 8);
  CHECK(again && json_equal(records, again));
  CHECK(other && !json_equal(records, other));
  json_decref(records);
  json_decref(again);
  json_decref(other);
}

/* Every trained turn is a correct answer to its task (maze moves written
 * spaced, `U U R`, still verify), and starts on a line of its own. */
TEST(every_solution_verifies) {
  json_t *records = build("arith,algebra,maze,code,puzzle", 10, 0.5, 0.2, 5);
  CHECK(records != NULL);
  int spaced = 0;
  for (size_t i = 0; records && i < json_array_size(records); i++) {
    const json_t *rec = json_array_get(records, i);
    size_t n = json_array_size(json_object_get(rec, "messages"));
    const char *id = json_string_value(json_object_get(json_object_get(rec, "meta"), "task_id"));
    char family[16] = "";
    int level = 0;
    unsigned long long seed = 0;
    long long index = 0;
    CHECK(id && sscanf(id, "%15[^/]/%d/%llu/%lld", family, &level, &seed, &index) == 4);
    const ag_task_family *f = NULL;
    ag_task task = {0};
    CHECK_OK(ag_task_family_get(family, &f));
    if (!f) continue;
    CHECK_OK(f->generate(level, seed, index, &task));
    const char *turn = msg_field(rec, n - 1, "content");
    CHECK(turn[0] == '\n' && turn[1] != '\n' && turn[1] != ' ');
    char *attempt = NULL;
    ag_verdict v = {0};
    CHECK(ag_task_extract_attempt(turn, &attempt));
    CHECK_OK(f->verify(&task, attempt ? attempt : "", &v));
    CHECK_MSG(v.correct, "%s: %s", id, attempt ? attempt : "(none)");
    if (!strcmp(family, "maze")) spaced += attempt && strlen(attempt) > 2 && attempt[1] == ' ';
    free(attempt);
    ag_verdict_clear(&v);
    ag_task_clear(&task);
  }
  CHECK(spaced == 10);
  json_decref(records);
}

TEST(no_evaluation_problem_is_trained_on) {
  const ag_task_family *f = NULL;
  CHECK_OK(ag_task_family_get("algebra", &f));
  int64_t n_eval = 300;
  ag_task *eval = NULL;
  CHECK_OK(ag_sml_eval_tasks(f, n_eval, &eval));
  json_t *records = build("algebra", 400, 0.0, 0.0, 3);
  CHECK(records != NULL);
  int clashes = 0, default_level = 0;
  for (size_t i = 0; records && eval && i < json_array_size(records); i++) {
    const json_t *rec = json_array_get(records, i);
    int level = (int)json_integer_value(json_object_get(json_object_get(rec, "meta"), "level"));
    if (level != f->default_level) continue;
    default_level++;
    for (int64_t k = 0; k < n_eval; k++)
      clashes += !strcmp(msg_field(rec, 0, "content"), eval[k].problem);
  }
  CHECK(default_level > 200);
  CHECK_MSG(clashes == 0, "%d training problems are evaluation problems", clashes);
  for (int64_t k = 0; eval && k < n_eval; k++) {
    CHECK(eval[k].level == f->default_level);
    ag_task_clear(&eval[k]);
  }
  free(eval);
  json_decref(records);
}

/* At a chosen level (the base student's level 1) the records are of that
 * level except the easier share, which at level 1 (none below) comes from
 * level 2; the reserved evaluation problems are the ones of level 1, and a
 * level above a family's max_level is refused. */
TEST(records_and_reserved_problems_follow_the_level) {
  const ag_task_family *f = NULL;
  CHECK_OK(ag_task_family_get("arith", &f));
  int64_t n_eval = 200;
  ag_task *eval = NULL;
  CHECK_OK(ag_sml_eval_tasks_at(f, 1, n_eval, &eval));
  ag_sml_data_options o = ag_sml_data_defaults();
  CHECK_OK(ag_sml_parse_families("arith", o.families, AG_SML_MAX_FAMILIES, &o.family_count));
  o.examples_per_family = 300;
  o.dialogue_fraction = 0;
  o.level = 1;
  o.seed = 5;
  json_t *records = NULL;
  CHECK_OK(ag_sml_build_records(&o, &records));
  int other_level = 0, level2 = 0, clashes = 0;
  for (size_t i = 0; records && eval && i < json_array_size(records); i++) {
    const json_t *rec = json_array_get(records, i);
    int level = (int)json_integer_value(json_object_get(json_object_get(rec, "meta"), "level"));
    level2 += level == 2;
    other_level += level != 1 && level != 2;
    for (int64_t k = 0; k < n_eval; k++)
      clashes += !strcmp(msg_field(rec, 0, "content"), eval[k].problem);
  }
  CHECK(records && json_array_size(records) == 300);
  CHECK_MSG(other_level == 0, "%d records neither at level 1 nor 2", other_level);
  /* 300 draws at 0.25: 75 expected, sd 7.5 */
  CHECK_MSG(level2 >= 45 && level2 <= 105, "%d of 300 records at level 2", level2);
  CHECK_MSG(clashes == 0, "%d training problems are level-1 evaluation problems", clashes);
  for (int64_t k = 0; eval && k < n_eval; k++) {
    CHECK(eval[k].level == 1);
    ag_task_clear(&eval[k]);
  }
  free(eval);
  json_decref(records);
  o.level = f->max_level + 1;
  records = NULL;
  CHECK(ag_sml_build_records(&o, &records) != AG_OK && records == NULL);
  CHECK(ag_sml_eval_tasks_at(f, f->max_level + 1, 1, &eval) != AG_OK);
  ag_error_clear();
}

/* Puzzle's level 1 has only 12 Knights and Knaves problems, all reserved for
 * evaluation; the level-2 share still brings that form into training. */
TEST(level_one_puzzle_records_include_knights_and_knaves) {
  ag_sml_data_options o = ag_sml_data_defaults();
  CHECK_OK(ag_sml_parse_families("puzzle", o.families, AG_SML_MAX_FAMILIES, &o.family_count));
  o.examples_per_family = 200;
  o.level = 1;
  o.seed = 3;
  json_t *records = NULL;
  CHECK_OK(ag_sml_build_records(&o, &records));
  int knights = 0;
  for (size_t i = 0; records && i < json_array_size(records); i++) {
    const json_t *rec = json_array_get(records, i);
    for (size_t m = 0; m < json_array_size(json_object_get(rec, "messages")); m++) {
      const char *text = msg_field(rec, m, "content");
      if (text && strstr(text, "Knights always tell the truth")) {
        knights++;
        break;
      }
    }
  }
  CHECK_MSG(knights >= 10, "%d of 200 level-1 puzzle records are Knights and Knaves", knights);
  json_decref(records);
}

/* A tokenizer for mask checks: trained on the records' text. */
static ag_tokenizer *tokenizer_for(const json_t *records) {
  ag_tok_train_config c = ag_tok_train_defaults();
  c.vocab_size = 400;
  c.pre_tokenizer = "qwen2";
  ag_tok_trainer *tr = NULL;
  ag_tokenizer *tok = NULL;
  if (ag_tok_trainer_create(&c, &tr)) return NULL;
  for (size_t i = 0; i < json_array_size(records); i++)
    for (size_t k = 0; k < json_array_size(json_object_get(json_array_get(records, i), "messages"));
         k++) {
      const char *text = msg_field(json_array_get(records, i), k, "content");
      ag_tok_trainer_feed(tr, text, strlen(text));
    }
  if (ag_tok_trainer_finish(tr, &tok)) tok = NULL;
  ag_tok_trainer_free(tr);
  return tok;
}

TEST(packed_windows_train_on_student_solutions_only) {
  json_t *records = build("arith,algebra", 20, 0.5, 0.5, 11);
  ag_tokenizer *tok = records ? tokenizer_for(records) : NULL;
  CHECK(tok != NULL);
  if (!tok) {
    json_decref(records);
    return;
  }
  const int64_t T = 512;
  ag_lm_data_options o = ag_sml_lm_data_options(T);
  ag_lm_data *d = NULL;
  CHECK_OK(ag_lm_data_create(tok, &o, &d));
  CHECK_OK(ag_sml_add_records(d, tok, records, 5));
  int64_t windows = ag_lm_data_windows(d);
  /* Packing: several records a window, none cut. */
  CHECK_MSG(windows > 0 && windows * 2 <= 40, "%lld windows", (long long)windows);
  CHECK(ag_lm_data_truncated(d) == 0);
  /* The trained targets of all windows, decoded with special tokens. */
  ag_tok_text trained = {0};
  int32_t ids[512], targets[512];
  for (int64_t w = 0; w < windows; w++) {
    ag_lm_data_window(d, w, ids, targets, NULL);
    for (int64_t t = 0; t < T; t++)
      if (targets[t] >= 0) CHECK_OK(ag_tok_decode(tok, &targets[t], 1, 0, &trained));
  }
  CHECK(trained.data != NULL);
  const char *text = trained.data ? trained.data : "";
  /* Every solution is trained on, with the end of its turn ... */
  int solutions = 0, wrong_seen = 0;
  for (size_t i = 0; i < json_array_size(records); i++) {
    const json_t *rec = json_array_get(records, i);
    size_t n = json_array_size(json_object_get(rec, "messages"));
    char line[256];
    char *final = NULL;
    ag_task_extract_attempt(msg_field(rec, n - 1, "content"), &final);
    snprintf(line, sizeof line, "Answer: %s<|endoftext|>", final ? final : "?");
    solutions += strstr(text, line) != NULL;
    /* ... and no wrong attempt (unless it happens to be another record's answer). */
    for (size_t k = 0; k < n; k++) {
      const char *name = msg_field(rec, k, "name");
      if (!name || strcmp(name, "student_wrong")) continue;
      snprintf(line, sizeof line, "%s<|endoftext|>", msg_field(rec, k, "content"));
      bool is_some_answer = false;
      for (size_t j = 0; j < json_array_size(records); j++) {
        const json_t *other = json_array_get(records, j);
        size_t m = json_array_size(json_object_get(other, "messages"));
        if (strstr(msg_field(other, m - 1, "content"), msg_field(rec, k, "content")))
          is_some_answer = true;
      }
      if (!is_some_answer) wrong_seen += strstr(text, line) != NULL;
    }
    free(final);
  }
  CHECK_MSG(solutions == (int)json_array_size(records), "%d of %zu solutions trained", solutions,
            json_array_size(records));
  CHECK_MSG(wrong_seen == 0, "%d wrong attempts trained on", wrong_seen);
  /* Teacher and system turns are never targets. */
  CHECK(!strstr(text, "Give your final answer"));
  CHECK(!strstr(text, "You are a student"));
  ag_tok_text_free(&trained);
  ag_lm_data_free(d);
  ag_tok_free(tok);
  json_decref(records);
}

/* The dialogue runner sends ag_sml_system_prompt() as its default. */
typedef struct captured {
  char system[1024];
} captured;

static ag_status capture(void *user, const ag_chat_conversation *convs, int64_t n,
                         const ag_chat_params *params, ag_chat_reply *out) {
  captured *c = user;
  (void)params;
  for (int64_t i = 0; i < n; i++) {
    if (convs[i].count > 0 && !strcmp(convs[i].messages[0].role, "system"))
      snprintf(c->system, sizeof c->system, "%s", convs[i].messages[0].content);
    out[i].content = strdup("Answer: 0");
  }
  return AG_OK;
}

TEST(the_runner_default_system_prompt_is_the_training_one) {
  captured c = {{0}};
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_custom("capture", capture, &c, &m));
  ag_task t = {0};
  CHECK_OK(ag_task_generate("arith", 2, 1, 0, false, &t));
  char dir[600];
  snprintf(dir, sizeof dir, "%s/runner", test_tmpdir());
  ag_teach_options o = ag_teach_defaults();
  o.student = m;
  o.turns = 1;
  o.out_dir = dir;
  CHECK_OK(ag_teach_eval(&o, &t, 1, NULL, NULL));
  CHECK_MSG(!strcmp(c.system, ag_sml_system_prompt()), "runner sends \"%s\"", c.system);
  ag_task_clear(&t);
  ag_chat_model_close(m);
}

TEST(bad_options_fail_before_any_work) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/never", test_tmpdir());
  ag_sml_pretrain_options o = ag_sml_pretrain_defaults();
  o.out_dir = dir;
  o.families = "arith,nosuch";
  ag_sml_pretrain_result r;
  CHECK(ag_sml_pretrain(&o, &r) != AG_OK);
  CHECK(strstr(ag_error_message(), "nosuch"));
  o.families = NULL;
  o.size = "huge";
  CHECK(ag_sml_pretrain(&o, &r) != AG_OK);
  CHECK(strstr(ag_error_message(), "tiny"));
  o.size = "tiny";
  o.steps = 3;
  o.minutes = 1;
  CHECK(ag_sml_pretrain(&o, &r) != AG_OK);
  o.minutes = 0;
  o.level = 99; /* above every family's max_level */
  CHECK(ag_sml_pretrain(&o, &r) != AG_OK);
  CHECK(strstr(ag_error_message(), "levels 1.."));
  struct stat s;
  CHECK(stat(dir, &s) != 0); /* nothing was created */
  ag_error_clear();
}

TEST(a_tiny_pretrain_learns_and_saves_a_chat_model) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/tiny", test_tmpdir());
  ag_sml_pretrain_options o = ag_sml_pretrain_defaults();
  o.out_dir = dir;
  o.size = "tiny";
  o.families = "arith,puzzle";
  o.steps = test_scaled(12, 8);
  o.examples_per_family = 16;
  o.eval_tasks = 3;
  o.seed = 1;
  ag_sml_pretrain_result r;
  CHECK_OK(ag_sml_pretrain(&o, &r));
  CHECK(r.family_count == 2 && !strcmp(r.families[1], "puzzle"));
  CHECK(r.steps == o.steps && r.params > 10000);
  CHECK(r.level == AG_SML_BASE_LEVEL); /* the base student's level unless told */
  CHECK(r.acc_at_1[0] >= 0 && r.acc_at_1[0] <= 1 && r.acc_at_1[1] >= 0);
  /* Loss from about ln(vocab) down by a margin a broken mask or schedule misses. */
  CHECK_MSG(r.first_loss - r.train_loss > 0.7, "loss %.3f -> %.3f", r.first_loss, r.train_loss);
  CHECK(isfinite(r.eval_loss));
  /* The folder is a chat model that answers. */
  ag_chat_model *m = NULL;
  CHECK_OK(ag_chat_model_open(dir, NULL, &m));
  if (m) {
    ag_chat_message msgs[] = {{"system", ag_sml_system_prompt(), NULL},
                              {"user",
                               "Compute 3 + 4. Give your final answer on a line "
                               "\"Answer: <number>\".",
                               NULL}};
    ag_chat_conversation conv = {msgs, 2, 0};
    ag_chat_params p = ag_chat_params_defaults();
    p.sampling.temperature = 0;
    p.max_tokens = 24;
    ag_chat_reply reply;
    CHECK_OK(ag_chat_model_reply(m, &conv, 1, &p, &reply));
    CHECK(reply.content && reply.completion_tokens > 0);
    ag_chat_reply_clear(&reply, 1);
    ag_chat_model_close(m);
  }
  /* The run's files. */
  const char *files[] = {"config.json",           "model.safetensors",      "tokenizer.json",
                         "tokenizer_config.json", "generation_config.json", "pretrain.json",
                         "data/train.jsonl",      "eval/arith/metrics.json"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    CHECK_MSG(ag_file_exists(path), "%s", files[i]);
  }
  /* The prompt a reply is generated after (`...assistant: `) encodes to a
   * prefix of the rendered training record: the student's turn starts with
   * the tokens the model sees at evaluation (Knights and Knaves solutions
   * start with a letter, which the tokenizer would join to the space). */
  char path[700];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  ag_tokenizer *tok = NULL;
  CHECK_OK(ag_tok_load(path, &tok));
  snprintf(path, sizeof path, "%s/data/train.jsonl", dir);
  json_t *lines = NULL;
  const ag_chat_template *plain = NULL;
  CHECK_OK(ag_chat_template_by_name("plain", &plain));
  ag_jsonl_reader *reader = NULL;
  CHECK_OK(ag_jsonl_open(path, &reader));
  int checked = 0, mismatched = 0;
  while (tok && reader && !ag_jsonl_next(reader, &lines) && lines) {
    ag_chat_message turns[8];
    size_t n = json_array_size(json_object_get(lines, "messages"));
    if (n > 8) n = 8;
    for (size_t k = 0; k < n; k++)
      turns[k] =
          (ag_chat_message){msg_field(lines, k, "role"), msg_field(lines, k, "content"), NULL};
    ag_chat_render_options ro = {.eos_token = "<|endoftext|>", .bos_token = ""};
    char *full = NULL, *prompt = NULL;
    CHECK_OK(ag_chat_render(plain, turns, (int)n, &ro, &full));
    ro.add_generation_prompt = true;
    CHECK_OK(ag_chat_render(plain, turns, (int)n - 1, &ro, &prompt));
    ag_tok_ids a = {0}, b = {0};
    if (full && prompt) {
      CHECK_OK(ag_tok_encode(tok, prompt, strlen(prompt), 0, &a));
      CHECK_OK(ag_tok_encode(tok, full, strlen(full), 0, &b));
      bool prefix = a.count < b.count && !memcmp(a.ids, b.ids, (size_t)a.count * sizeof *a.ids);
      mismatched += !prefix;
      checked++;
    }
    ag_tok_ids_free(&a);
    ag_tok_ids_free(&b);
    free(full);
    free(prompt);
    json_decref(lines);
    lines = NULL;
  }
  ag_jsonl_close(reader);
  ag_tok_free(tok);
  CHECK(checked == 32);
  CHECK_MSG(mismatched == 0, "%d of %d records start differently from the prompt", mismatched,
            checked);
  /* A second fresh run into the folder is refused; --resume finds it done. */
  CHECK(ag_sml_pretrain(&o, &r) != AG_OK);
  ag_error_clear();
  o.resume = true;
  o.steps = 0; /* the saved settings win */
  ag_sml_pretrain_result again;
  CHECK_OK(ag_sml_pretrain(&o, &again));
  CHECK(again.resumed && again.steps == r.steps);
  CHECK(again.acc_at_1[0] == r.acc_at_1[0]);
}

int main(void) {
  ag_log_set_level(AG_LOG_WARN);
  RUN(families_are_parsed_and_bad_ones_named);
  RUN(records_have_the_chat_shape_and_the_solution_as_the_trained_turn);
  RUN(every_solution_verifies);
  RUN(no_evaluation_problem_is_trained_on);
  RUN(records_and_reserved_problems_follow_the_level);
  RUN(level_one_puzzle_records_include_knights_and_knaves);
  RUN(packed_windows_train_on_student_solutions_only);
  RUN(the_runner_default_system_prompt_is_the_training_one);
  RUN(bad_options_fail_before_any_work);
  RUN(a_tiny_pretrain_learns_and_saves_a_chat_model);
  TEST_MAIN_END();
}
