/* `agora shape sweep` as a library call: the grid's cells, one results line
 * per cell x seed, summaries that agree with the lines, resumption (skips
 * what is there, drops a torn last line, refuses other settings), results
 * that do not depend on the thread count, and bad input refused before any
 * work. */
#include "agora/json.h"
#include "agora/shaping.h"
#include "test.h"

#include <stdlib.h>
#include <unistd.h>

static char root[256];

static ag_shaping_sweep_config tiny(const char *dir, int threads) {
  ag_shaping_sweep_config c = {
      .out_dir = dir,
      .games = {"ipd", "sh"},
      .game_count = 2,
      .players = {3},
      .player_count = 1,
      .seeds = 2,
      .first_seed = 1,
      .evaluations = 2,
      .lola = true,
      .es = true,
      .run = {.steps = 10, .gamma = 0.96, .lr = 1, .correction = 1, .init_std = 1},
      .es_config = ag_shaping_es_defaults(),
      .threads = threads};
  c.es_config.generations = 2;
  c.es_config.population = 4;
  c.es_config.hidden = 4;
  return c;
}

static json_t *load_lines(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/results.jsonl", dir);
  json_t *all = json_array();
  ag_jsonl_reader *r = NULL;
  if (ag_jsonl_open(path, &r)) return all;
  json_t *v = NULL;
  while (!ag_jsonl_next(r, &v) && v) json_array_append_new(all, v);
  ag_jsonl_close(r);
  return all;
}

static const json_t *find(const json_t *lines, const char *cell, int seed) {
  size_t i;
  json_t *v;
  json_array_foreach(lines, i, v) {
    if (!strcmp(json_string_value(json_object_get(v, "cell")), cell) &&
        json_integer_value(json_object_get(v, "seed")) == seed)
      return v;
  }
  return NULL;
}

static double num(const json_t *o, const char *key) {
  return json_number_value(json_object_get(o, key));
}

TEST(sweep_writes_a_line_per_cell_and_seed_and_a_matching_summary) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/a", root);
  ag_shaping_sweep_config c = tiny(dir, 2);
  ag_shaping_sweep_result res;
  CHECK_OK(ag_shaping_sweep(&c, &res));
  /* n = 3: all naive, 1..2 LOLA, 1..2 ES: 5 cells per game. */
  CHECK(res.cells == 10 && res.jobs == 20 && res.jobs_run == 20 && res.jobs_skipped == 0);
  json_t *lines = load_lines(dir);
  CHECK(json_array_size(lines) == 20);
  const json_t *es = find(lines, "sh/3/es/2", 2);
  CHECK(es != NULL);
  if (es) {
    CHECK(json_integer_value(json_object_get(es, "shapers")) == 2);
    CHECK(json_is_number(json_object_get(es, "es_fitness")));
    CHECK(json_array_size(json_object_get(es, "reward_per_step")) == 3);
    /* welfare = mean of the players' final rewards */
    const json_t *r = json_object_get(es, "reward_per_step");
    double w = 0;
    for (int i = 0; i < 3; i++) w += json_number_value(json_array_get(r, i)) / 3;
    CHECK_NEAR(num(es, "welfare"), w, 1e-8);
  }
  /* summary.json: means and standard errors over the two seeds. */
  char path[400];
  snprintf(path, sizeof path, "%s/summary.json", dir);
  json_t *summary = NULL;
  CHECK_OK(ag_json_load(path, &summary));
  json_t *cells = json_object_get(summary, "cells");
  CHECK(json_array_size(cells) == 10);
  size_t i;
  json_t *cell;
  int checked = 0;
  json_array_foreach(cells, i, cell) {
    const char *game = json_string_value(json_object_get(cell, "game"));
    const char *kind = json_string_value(json_object_get(cell, "shaper"));
    int k = (int)json_integer_value(json_object_get(cell, "shapers"));
    char key[64];
    snprintf(key, sizeof key, "%s/3/%s/%d", game, kind, k);
    const json_t *a = find(lines, key, 1), *b = find(lines, key, 2);
    CHECK(a && b);
    if (!a || !b) continue;
    double wa = num(a, "welfare"), wb = num(b, "welfare");
    json_t *w = json_object_get(cell, "welfare");
    CHECK_NEAR(num(w, "mean"), (wa + wb) / 2, 1e-8);
    CHECK_NEAR(num(w, "se"), fabs(wa - wb) / 2, 1e-8); /* sd / sqrt(2) with n = 2 */
    if (k > 0) {
      char naive[64];
      snprintf(naive, sizeof naive, "%s/3/none/0", game);
      double adv = (wa - num(find(lines, naive, 1), "welfare") + wb -
                    num(find(lines, naive, 2), "welfare")) /
                   2;
      CHECK_NEAR(num(json_object_get(cell, "advantage_over_naive"), "mean"), adv, 1e-8);
    }
    checked++;
  }
  CHECK(checked == 10);
  json_decref(summary);
  json_decref(lines);
  static const char *files[] = {"summary.md", "summary.csv", "plot.gp", "plot.dat", "config.json"};
  for (int f = 0; f < 5; f++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[f]);
    CHECK_MSG(access(path, R_OK) == 0, "%s", files[f]);
  }
}

TEST(sweep_resumes_skips_done_cells_and_drops_a_torn_last_line) {
  char dir[300], path[400];
  snprintf(dir, sizeof dir, "%s/a", root); /* from the test above */
  snprintf(path, sizeof path, "%s/results.jsonl", dir);
  json_t *before = load_lines(dir);
  ag_shaping_sweep_config c = tiny(dir, 2);
  ag_shaping_sweep_result res;
  CHECK_OK(ag_shaping_sweep(&c, &res));
  CHECK(res.jobs_run == 0 && res.jobs_skipped == 20);

  /* A killed sweep: the last line cut in half. */
  char *text = NULL;
  size_t bytes = 0;
  CHECK_OK(ag_read_file(path, &text, &bytes));
  if (!text) return;
  size_t cut = bytes - 2;
  while (cut > 0 && text[cut - 1] != '\n') cut--;
  const json_t *removed = json_array_get(before, json_array_size(before) - 1);
  size_t keep = cut + (bytes - 1 - cut) / 2;
  FILE *f = fopen(path, "w");
  fwrite(text, 1, keep, f);
  fclose(f);
  free(text);
  CHECK_OK(ag_shaping_sweep(&c, &res));
  CHECK(res.jobs_run == 1 && res.jobs_skipped == 19);
  json_t *after = load_lines(dir);
  CHECK(json_array_size(after) == 20);
  const char *cell = json_string_value(json_object_get(removed, "cell"));
  int seed = (int)json_integer_value(json_object_get(removed, "seed"));
  const json_t *again = find(after, cell, seed);
  CHECK(again != NULL);
  if (again) CHECK(num(again, "welfare") == num(removed, "welfare")); /* same seed, same result */
  json_decref(before);
  json_decref(after);

  /* Other settings in the same folder are refused. */
  c.run.steps = 11;
  CHECK(ag_shaping_sweep(&c, &res) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "steps") != NULL);

  /* A malformed line in the middle is an error, not silently skipped. */
  c.run.steps = 10;
  CHECK_OK(ag_read_file(path, &text, &bytes));
  if (!text) return;
  f = fopen(path, "w");
  fputs("{\"cell\": broken\n", f);
  fwrite(text, 1, bytes, f);
  fclose(f);
  free(text);
  CHECK(ag_shaping_sweep(&c, &res) == AG_ERR_FORMAT);
  CHECK(strstr(ag_error_message(), "line 1") != NULL);
}

TEST(sweep_results_do_not_depend_on_threads) {
  char d1[300], d2[300];
  snprintf(d1, sizeof d1, "%s/t1", root);
  snprintf(d2, sizeof d2, "%s/t2", root);
  ag_shaping_sweep_config c1 = tiny(d1, 1), c2 = tiny(d2, 2);
  c1.games[0] = c2.games[0] = "tc";
  c1.game_count = c2.game_count = 1;
  c1.max_shapers = c2.max_shapers = 1;
  ag_shaping_sweep_result r1, r2;
  CHECK_OK(ag_shaping_sweep(&c1, &r1));
  CHECK_OK(ag_shaping_sweep(&c2, &r2));
  CHECK(r1.cells == 3 && r2.cells == 3); /* all naive, 1 LOLA, 1 ES */
  json_t *a = load_lines(d1), *b = load_lines(d2);
  CHECK(json_array_size(a) == 6 && json_array_size(b) == 6);
  size_t i;
  json_t *v;
  json_array_foreach(a, i, v) {
    const json_t *w = find(b, json_string_value(json_object_get(v, "cell")),
                           (int)json_integer_value(json_object_get(v, "seed")));
    CHECK(w != NULL);
    if (w)
      CHECK(num(v, "welfare") == num(w, "welfare") &&
            num(v, "welfare_run") == num(w, "welfare_run"));
  }
  json_decref(a);
  json_decref(b);
}

TEST(sweep_refuses_bad_input_before_any_work) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/bad", root);
  ag_shaping_sweep_config c = tiny(dir, 1);
  ag_shaping_sweep_result res;
  c.players[0] = 6; /* the built-in families stop at 5 */
  CHECK(ag_shaping_sweep(&c, &res) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "2..5") != NULL);
  c.players[0] = 9;
  CHECK(ag_shaping_sweep(&c, &res) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "2..8") != NULL);
  c = tiny(dir, 1);
  c.games[1] = "nope";
  CHECK(ag_shaping_sweep(&c, &res) != AG_OK);
  c = tiny(dir, 1);
  c.es_config.population = 3;
  CHECK(ag_shaping_sweep(&c, &res) == AG_ERR_INVALID);
  c = tiny(dir, 1);
  c.run.gamma = 1;
  CHECK(ag_shaping_sweep(&c, &res) == AG_ERR_INVALID);
  CHECK(access(dir, F_OK) != 0); /* nothing was created */
}

int main(void) {
  snprintf(root, sizeof root, "%s/agora-shaping-sweep-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(sweep_writes_a_line_per_cell_and_seed_and_a_matching_summary);
  RUN(sweep_resumes_skips_done_cells_and_drops_a_torn_last_line);
  RUN(sweep_results_do_not_depend_on_threads);
  RUN(sweep_refuses_bad_input_before_any_work);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  TEST_MAIN_END();
}
