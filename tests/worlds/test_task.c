/* The task core: records to and from JSON (strict), JSONL files with
 * file:line errors, answer extraction, the family registry and specs. */
#include "agora/task.h"
#include "test.h"

#include <dirent.h>

static bool message_has(const char *needle) { return strstr(ag_error_message(), needle) != NULL; }

static bool tasks_equal(const ag_task *a, const ag_task *b) {
  if (strcmp(a->family, b->family) || strcmp(a->id, b->id) || a->level != b->level) return false;
  if (strcmp(a->problem, b->problem) || strcmp(a->answer, b->answer) ||
      strcmp(a->solution, b->solution))
    return false;
  if (!json_equal(a->data, b->data) || a->shard_count != b->shard_count) return false;
  for (int i = 0; i < a->shard_count; i++)
    if (strcmp(a->shards[i].text, b->shards[i].text) ||
        a->shards[i].required != b->shards[i].required)
      return false;
  return true;
}

TEST(registry_lists_eight_families_in_order) {
  static const char *const names[] = {"arith",  "algebra", "maze", "code",
                                      "puzzle", "gsm8k",   "math", "humaneval"};
  CHECK(ag_task_family_count() == 8);
  for (int i = 0; i < 8; i++) {
    const ag_task_family *f = ag_task_family_at(i), *g;
    CHECK(f && !strcmp(f->name, names[i]));
    CHECK_OK(ag_task_family_get(names[i], &g));
    CHECK(g == f);
    CHECK(strstr(ag_task_family_names(), names[i]) != NULL);
  }
  CHECK(ag_task_family_at(8) == NULL && ag_task_family_at(-1) == NULL);
  const ag_task_family *f;
  CHECK(ag_task_family_get("arithmetic", &f) == AG_ERR_NOT_FOUND && f == NULL);
  CHECK(message_has("arithmetic") && message_has("arith, algebra, maze, code, puzzle"));
}

TEST(generate_checks_family_and_level) {
  ag_task t;
  CHECK_OK(ag_task_generate("arith", 2, 1, 0, true, &t));
  CHECK(t.shard_count >= 2 && !strcmp(t.family, "arith") && !strcmp(t.id, "arith/2/1/0"));
  ag_task_clear(&t);
  CHECK(ag_task_generate("arith", 9, 1, 0, false, &t) == AG_ERR_INVALID);
  CHECK(message_has("level 9"));
  CHECK(ag_task_generate("arith", 0, 1, 0, false, &t) == AG_ERR_INVALID);
  CHECK(ag_task_generate("gsm8k", 1, 1, 0, false, &t) == AG_ERR_UNSUPPORTED);
  CHECK(ag_task_generate("nope", 1, 1, 0, false, &t) == AG_ERR_NOT_FOUND);
}

TEST(json_roundtrip_and_copy) {
  const char *fams[] = {"arith", "algebra"};
  for (int k = 0; k < 2; k++) {
    for (int sharded = 0; sharded < 2; sharded++) {
      ag_task t, u, c;
      CHECK_OK(ag_task_generate(fams[k], 2, 42, 7, sharded, &t));
      json_t *j = ag_task_to_json(&t);
      CHECK(j != NULL);
      CHECK(json_object_get(j, "shards") ? sharded : !sharded);
      CHECK_OK(ag_task_from_json(j, &u));
      CHECK(tasks_equal(&t, &u));
      CHECK_OK(ag_task_copy(&t, &c));
      CHECK(tasks_equal(&t, &c) && c.problem != t.problem && c.data != t.data);
      json_decref(j);
      ag_task_clear(&t);
      ag_task_clear(&u);
      ag_task_clear(&c);
    }
  }
  ag_task z = {0};
  ag_task_clear(&z); /* safe on a zeroed task */
}

/* A valid record, then one change; the error must name `field`. */
static void expect_error(const char *change_key, json_t *change_value, const char *field) {
  json_t *r = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:{}}", "family", "arith", "level", 2, "id",
                        "arith/2/0/0", "problem", "What is 2 + 3?", "answer", "5", "solution",
                        "2 + 3 = 5\nAnswer: 5", "data");
  if (change_value)
    json_object_set_new(r, change_key, change_value);
  else
    json_object_del(r, change_key);
  ag_task t;
  ag_status st = ag_task_from_json(r, &t);
  CHECK_MSG(st == AG_ERR_FORMAT, "changing %s was accepted", change_key);
  CHECK_MSG(message_has(field), "error \"%s\" does not name %s", ag_error_message(), field);
  if (st == AG_OK) ag_task_clear(&t);
  json_decref(r);
}

TEST(json_errors_name_the_field) {
  const char *required[] = {"family", "level", "id", "problem", "answer", "solution", "data"};
  for (int i = 0; i < 7; i++) expect_error(required[i], NULL, required[i]);
  expect_error("level", json_string("2"), "\"level\"");
  expect_error("level", json_integer(9), "\"level\"");
  expect_error("level", json_integer(0), "\"level\"");
  expect_error("family", json_integer(3), "\"family\"");
  expect_error("family", json_string("chess"), "chess");
  expect_error("data", json_array(), "\"data\"");
  expect_error("problem", json_null(), "\"problem\"");
  expect_error("answer", json_string(""), "answer");
  expect_error("id", json_string(""), "\"id\"");
  expect_error("colour", json_string("red"), "\"colour\"");
  expect_error("shards", json_object(), "\"shards\"");
  expect_error("shards", json_pack("[{s:s}]", "text", "goal"), "shards[0].required");
  expect_error("shards", json_pack("[{s:s, s:s}]", "text", "goal", "required", "yes"),
               "shards[0].required");
  expect_error("shards", json_pack("[{s:b}]", "required", 1), "shards[0].text");
  expect_error("shards", json_pack("[{s:s, s:b}, i]", "text", "goal", "required", 0, 3),
               "shards[1]");
  ag_task t;
  json_t *arr = json_array();
  CHECK(ag_task_from_json(arr, &t) == AG_ERR_FORMAT && message_has("object"));
  json_decref(arr);
  /* The valid record itself loads, shards included. */
  json_t *r = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:{}, s:[{s:s, s:b}]}", "family", "arith",
                        "level", 2, "id", "x", "problem", "p", "answer", "5", "solution", "s",
                        "data", "shards", "text", "goal", "required", 0);
  CHECK_OK(ag_task_from_json(r, &t));
  CHECK(t.shard_count == 1 && !t.shards[0].required);
  ag_task_clear(&t);
  json_decref(r);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.') n++;
  if (d) closedir(d);
  return n;
}

TEST(jsonl_roundtrip_is_atomic) {
  char dir[600], path[700];
  snprintf(dir, sizeof dir, "%s/jsonl", test_tmpdir());
  CHECK_OK(ag_mkdir_p(dir));
  snprintf(path, sizeof path, "%s/tasks.jsonl", dir);
  ag_task tasks[5];
  for (int i = 0; i < 5; i++)
    CHECK_OK(ag_task_generate(i % 2 ? "algebra" : "arith", 1 + i % 3, 3, i, i % 2, &tasks[i]));
  CHECK_OK(ag_task_save_jsonl(path, tasks, 5));
  CHECK(count_files(dir) == 1); /* no temporary file left behind */
  ag_task *loaded;
  int64_t n;
  CHECK_OK(ag_task_load_jsonl(path, &loaded, &n));
  CHECK(n == 5);
  for (int i = 0; i < 5 && i < n; i++) CHECK(tasks_equal(&tasks[i], &loaded[i]));
  for (int64_t i = 0; i < n; i++) ag_task_clear(&loaded[i]);
  free(loaded);
  for (int i = 0; i < 5; i++) ag_task_clear(&tasks[i]);
  /* Empty file: no tasks. */
  write_text(path, "\n");
  CHECK_OK(ag_task_load_jsonl(path, &loaded, &n));
  CHECK(n == 0);
  free(loaded);
}

TEST(jsonl_errors_name_file_and_line) {
  char path[700];
  snprintf(path, sizeof path, "%s/bad.jsonl", test_tmpdir());
  const char *good = "{\"family\":\"arith\",\"level\":1,\"id\":\"a\",\"problem\":\"p\","
                     "\"answer\":\"5\",\"solution\":\"s\",\"data\":{}}\n";
  char text[2048], expect[800];
  /* Line 2 is not JSON. */
  snprintf(text, sizeof text, "%s{\"family\": oops\n%s", good, good);
  write_text(path, text);
  ag_task *tasks = (ag_task *)1;
  int64_t n = 7;
  CHECK(ag_task_load_jsonl(path, &tasks, &n) == AG_ERR_FORMAT);
  snprintf(expect, sizeof expect, "%s:2", path);
  CHECK_MSG(message_has(expect), "%s", ag_error_message());
  CHECK(tasks == NULL && n == 0);
  /* Line 4 (after a blank line) lacks "answer". */
  snprintf(text, sizeof text,
           "%s%s\n{\"family\":\"arith\",\"level\":1,\"id\":\"b\",\"problem\":\"p\","
           "\"solution\":\"s\",\"data\":{}}\n",
           good, good);
  write_text(path, text);
  CHECK(ag_task_load_jsonl(path, &tasks, &n) == AG_ERR_FORMAT);
  snprintf(expect, sizeof expect, "%s:4", path);
  CHECK_MSG(message_has(expect) && message_has("\"answer\""), "%s", ag_error_message());
  /* A missing file. */
  snprintf(path, sizeof path, "%s/missing.jsonl", test_tmpdir());
  CHECK(ag_task_load_jsonl(path, &tasks, &n) == AG_ERR_NOT_FOUND);
  CHECK(message_has("missing.jsonl"));
}

static void expect_attempt(const char *turn, const char *want) {
  char *a = (char *)"unset";
  bool found = ag_task_extract_attempt(turn, &a);
  if (!want) {
    CHECK_MSG(!found && a == NULL, "\"%s\" gave an attempt", turn);
    return;
  }
  CHECK_MSG(found && a && !strcmp(a, want), "\"%s\" -> \"%s\", want \"%s\"", turn,
            found && a ? a : "(none)", want);
  free(a);
}

TEST(extract_attempt_cases) {
  expect_attempt("Answer: 42", "42");
  expect_attempt("Answer:42", "42");
  expect_attempt("Let me think.\n12 + 30 = 42\nAnswer: 42  \n", "42");
  expect_attempt("   Answer:   x = 3/4", "x = 3/4");
  expect_attempt("\tAnswer: 7\r\n", "7");
  expect_attempt("Answer: 1\nbecause it is", "1\nbecause it is");
  expect_attempt("Answer:", "");
  expect_attempt("Answer: 5\nAnswer: 6", "5\nAnswer: 6");
  expect_attempt("answer: 42", NULL);
  expect_attempt("ANSWER: 42", NULL);
  expect_attempt("The Answer: 42", NULL);
  expect_attempt("What is the answer? Is it 42?", NULL);
  expect_attempt("", NULL);
}

TEST(spec_parse_items_and_errors) {
  ag_task_spec_item items[8];
  int n;
  CHECK_OK(ag_task_spec_parse("arith:2,maze, algebra:4 ,gsm8k", items, 8, &n));
  CHECK(n == 4);
  CHECK(items[0].family == &ag_task_family_arith && items[0].level == 2);
  CHECK(items[1].family == &ag_task_family_maze &&
        items[1].level == ag_task_family_maze.default_level);
  CHECK(items[2].family == &ag_task_family_algebra && items[2].level == 4);
  CHECK(items[3].family == &ag_task_family_gsm8k && items[3].level == 0);
  CHECK_OK(ag_task_spec_parse("algebra", items, 8, &n));
  CHECK(n == 1 && items[0].level == ag_task_family_algebra.default_level);
  struct {
    const char *spec, *named;
  } bad[] = {{"arith:9", "arith:9"}, {"arith:0", "arith:0"}, {"arith:x", "arith:x"},
             {"arith:", "arith:"},   {"chess:1", "chess"},   {"arith,,maze", "empty"},
             {"", "empty"},          {"gsm8k:1", "gsm8k:1"}, {"arith: 2", "arith: 2"}};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    CHECK_MSG(ag_task_spec_parse(bad[i].spec, items, 8, &n) == AG_ERR_INVALID, "\"%s\"",
              bad[i].spec);
    CHECK_MSG(message_has(bad[i].named), "\"%s\": %s", bad[i].spec, ag_error_message());
  }
  CHECK(ag_task_spec_parse("chess", items, 8, &n) == AG_ERR_INVALID &&
        message_has("arith, algebra"));
  CHECK(ag_task_spec_parse("arith,arith,arith", items, 2, &n) == AG_ERR_INVALID);
  CHECK(message_has("more than 2"));
}

TEST(verdict_clear_is_safe) {
  ag_verdict v = {0};
  ag_verdict_clear(&v);
  ag_verdict_clear(NULL);
  v.diagnostics = json_object();
  ag_verdict_clear(&v);
  CHECK(v.diagnostics == NULL && !v.correct);
}

int main(void) {
  RUN(registry_lists_eight_families_in_order);
  RUN(generate_checks_family_and_level);
  RUN(json_roundtrip_and_copy);
  RUN(json_errors_name_the_field);
  RUN(jsonl_roundtrip_is_atomic);
  RUN(jsonl_errors_name_file_and_line);
  RUN(extract_attempt_cases);
  RUN(spec_parse_items_and_errors);
  RUN(verdict_clear_is_safe);
  TEST_MAIN_END();
}
