/* The maze task family: the verifier on hand-checked paths (spellings,
 * longer paths, near misses), generators that are deterministic and always
 * solvable, sharding, and feedback that never reveals a path to the goal,
 * judged by a checker written here, independent of the family's leaks(). */
#include "agora/task.h"
#include "test.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>

static const ag_task_family *maze_family(void) {
  const ag_task_family *f = NULL;
  CHECK_OK(ag_task_family_get("maze", &f));
  return f;
}

/* A task over a hand-drawn grid (rows of equal length). */
static void hand_task(ag_task *t, const char *const *rows, int n) {
  memset(t, 0, sizeof *t);
  snprintf(t->family, sizeof t->family, "maze");
  snprintf(t->id, sizeof t->id, "maze/hand");
  t->level = 1;
  t->problem = strdup("hand-made maze");
  t->answer = strdup("");
  t->solution = strdup("");
  t->data = json_object();
  json_t *grid = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(grid, json_string(rows[i]));
  json_object_set_new(t->data, "grid", grid);
}

/* S(1,1) -> G(3,5): the shortest path is RDDRRR; RDDRRUUDDR is longer but
 * legal (it visits the dead end above G's row). */
static const char *const small_grid[] = {
    "S.#..",
    "#.#.#",
    "#...G",
};

static const char *kind_of(const ag_verdict *v) {
  return json_string_value(json_object_get(v->diagnostics, "kind"));
}
static long long diag_int(const ag_verdict *v, const char *key) {
  return (long long)json_integer_value(json_object_get(v->diagnostics, key));
}

TEST(verify_accepts_any_spelling_of_a_legal_path_to_the_goal) {
  const ag_task_family *f = maze_family();
  ag_task t;
  hand_task(&t, small_grid, 3);
  const char *good[] = {"RDDRRR",
                        "rddrrr",
                        "R D D R R R",
                        "R, D, D, R, R, R",
                        "right, down, down, right, right, right",
                        "Right Down Down Right Right Right.",
                        "RDD RRR",
                        "right then down, down and right, right, right",
                        "R\xe2\x86\x92"
                        "D\xe2\x86\x92"
                        "D\xe2\x86\x92"
                        "R\xe2\x86\x92"
                        "R\xe2\x86\x92"
                        "R",
                        "  RDDRRR  \nsome explanation after the answer line",
                        "RDDRRUUDDR"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    ag_verdict v;
    CHECK_OK(f->verify(&t, good[i], &v));
    CHECK_MSG(v.correct && v.parsed, "attempt \"%s\" judged %s", good[i], kind_of(&v));
    ag_verdict_clear(&v);
  }
  ag_verdict v;
  CHECK_OK(f->verify(&t, "RDDRRUUDDR", &v));
  CHECK(diag_int(&v, "moves") == 10 && diag_int(&v, "shortest") == 6);
  ag_verdict_clear(&v);
  ag_task_clear(&t);
}

TEST(verify_reports_where_a_wrong_path_goes_wrong) {
  const ag_task_family *f = maze_family();
  ag_task t;
  hand_task(&t, small_grid, 3);
  ag_verdict v;

  // One move short: ends next to G.
  CHECK_OK(f->verify(&t, "RDDRR", &v));
  CHECK(!v.correct && v.parsed && strcmp(kind_of(&v), "ended_elsewhere") == 0);
  CHECK(diag_int(&v, "row") == 3 && diag_int(&v, "col") == 4);
  CHECK(diag_int(&v, "distance") == 1 && diag_int(&v, "manhattan") == 1);
  CHECK(diag_int(&v, "first_away") == 0);
  CHECK(!json_is_true(json_object_get(v.diagnostics, "passed_goal")));
  ag_verdict_clear(&v);

  // Through G and one step back: the path must end on G.
  CHECK_OK(f->verify(&t, "RDDRRRL", &v));
  CHECK(!v.correct && strcmp(kind_of(&v), "ended_elsewhere") == 0);
  CHECK(json_is_true(json_object_get(v.diagnostics, "passed_goal")));
  CHECK(diag_int(&v, "first_away") == 7);
  ag_verdict_clear(&v);

  // A detour into the dead end: move 6 (U) is the first away from G.
  CHECK_OK(f->verify(&t, "RDDRRU", &v));
  CHECK(diag_int(&v, "first_away") == 6 && diag_int(&v, "distance") == 2);
  CHECK(strcmp(json_string_value(json_object_get(v.diagnostics, "away_move")), "U") == 0);
  ag_verdict_clear(&v);

  // Into a wall at move 2.
  CHECK_OK(f->verify(&t, "RR", &v));
  CHECK(!v.correct && v.parsed && strcmp(kind_of(&v), "illegal_move") == 0);
  CHECK(diag_int(&v, "move_index") == 2 && diag_int(&v, "row") == 1 && diag_int(&v, "col") == 2);
  CHECK(strcmp(json_string_value(json_object_get(v.diagnostics, "move")), "R") == 0);
  CHECK(strcmp(json_string_value(json_object_get(v.diagnostics, "reason")), "wall") == 0);
  ag_verdict_clear(&v);

  // Off the grid at once; the mirror image of the answer ("wrong sign").
  CHECK_OK(f->verify(&t, "LDDRRR", &v));
  CHECK(strcmp(kind_of(&v), "illegal_move") == 0 && diag_int(&v, "move_index") == 1);
  CHECK(strcmp(json_string_value(json_object_get(v.diagnostics, "reason")), "edge") == 0);
  ag_verdict_clear(&v);

  // Past G and off the edge: the square before the illegal move is G.
  CHECK_OK(f->verify(&t, "RDDRRRR", &v));
  CHECK(strcmp(kind_of(&v), "illegal_move") == 0 && diag_int(&v, "move_index") == 7);
  CHECK(diag_int(&v, "distance") == 0);
  ag_verdict_clear(&v);

  const char *unreadable[] = {"", "   ", "north", "RDDRRX", "R2 D2", "go to the goal", "42"};
  for (size_t i = 0; i < sizeof unreadable / sizeof *unreadable; i++) {
    CHECK_OK(f->verify(&t, unreadable[i], &v));
    CHECK_MSG(!v.correct && !v.parsed && strcmp(kind_of(&v), "unparsed") == 0, "\"%s\"",
              unreadable[i]);
    ag_verdict_clear(&v);
  }
  ag_task_clear(&t);
}

static char *feedback_for(const ag_task_family *f, const ag_task *t, const char *attempt,
                          ag_feedback_level level, ag_phrasing_set set, uint64_t seed) {
  ag_verdict v;
  char *text = NULL;
  CHECK_OK(f->verify(t, attempt, &v));
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  CHECK_OK(f->feedback(t, &v, level, set, &rng, &text));
  ag_verdict_clear(&v);
  return text;
}

TEST(feedback_is_directional_or_localised_as_asked) {
  const ag_task_family *f = maze_family();
  ag_task t;
  hand_task(&t, small_grid, 3);
  for (uint64_t seed = 0; seed < 16; seed++) {
    char *dir = feedback_for(f, &t, "RDDRR", AG_FEEDBACK_DIRECTIONAL, seed & 1, seed);
    CHECK_MSG(strstr(dir, "1 move") && strstr(dir, "to the right") && !strstr(dir, "down"), "%s",
              dir);
    free(dir);
    char *loc = feedback_for(f, &t, "RDDRR", AG_FEEDBACK_LOCALISED, seed & 1, seed);
    CHECK_MSG(strstr(loc, "row 3, column 4"), "%s", loc);
    free(loc);
    loc = feedback_for(f, &t, "RR", AG_FEEDBACK_LOCALISED, seed & 1, seed);
    CHECK_MSG(strstr(loc, "2") && strstr(loc, "R") && strstr(loc, "wall") &&
                  strstr(loc, "row 1, column 2"),
              "%s", loc);
    free(loc);
    loc = feedback_for(f, &t, "RDDRRU", AG_FEEDBACK_LOCALISED, seed & 1, seed);
    CHECK_MSG(strstr(loc, "6") && strstr(loc, "U") != NULL, "%s", loc);
    free(loc);
    dir = feedback_for(f, &t, "RR", AG_FEEDBACK_DIRECTIONAL, seed & 1, seed);
    CHECK_MSG(strstr(dir, "wall") && strstr(dir, "further down and to the right"), "%s", dir);
    free(dir);
  }
  ag_task_clear(&t);
}

/* Each message kind draws from >= 4 phrasings per set, and the training
 * and held-out sets share none. */
TEST(phrasing_sets_are_varied_and_disjoint) {
  const ag_task_family *f = maze_family();
  ag_task t;
  hand_task(&t, small_grid, 3);
  const char *attempts[] = {"RDDRR", "RR", "RDDRRU", "xyz", "RDDRRRL"};
  for (size_t a = 0; a < sizeof attempts / sizeof *attempts; a++)
    for (int level = AG_FEEDBACK_DIRECTIONAL; level <= AG_FEEDBACK_LOCALISED; level++) {
      char *seen[2][64];
      int count[2] = {0, 0};
      for (int set = 0; set < 2; set++)
        for (uint64_t seed = 0; seed < 200; seed++) {
          char *text = feedback_for(f, &t, attempts[a], level, set, seed);
          bool dup = false;
          for (int i = 0; i < count[set] && !dup; i++) dup = strcmp(seen[set][i], text) == 0;
          if (dup || count[set] == 64)
            free(text);
          else
            seen[set][count[set]++] = text;
        }
      CHECK_MSG(count[0] >= 4 && count[1] >= 4, "%s: %d / %d phrasings", attempts[a], count[0],
                count[1]);
      for (int i = 0; i < count[0]; i++)
        for (int j = 0; j < count[1]; j++)
          CHECK_MSG(strcmp(seen[0][i], seen[1][j]) != 0, "shared: %s", seen[0][i]);
      for (int set = 0; set < 2; set++)
        for (int i = 0; i < count[set]; i++) free(seen[set][i]);
    }
  ag_task_clear(&t);
}

TEST(leaks_finds_a_path_in_any_spelling) {
  const ag_task_family *f = maze_family();
  ag_task t;
  hand_task(&t, small_grid, 3);
  const char *leaky[] = {
      "RDDRRR",
      "The answer is rddrrr.",
      "right, down, down, right, right, right",
      "Go right, then down twice, then right three times.",
      "1R 2D 3R",
      "R D2 R3",
      "Rx1 Dx2 Rx3",
      "right once, down 2 times, right 3 times",
      "RDD and then RRR",
      "right (R), down (D), down, right (R), right, right",
      "Try RDDRRUUDDR.",
      "R \xe2\x86\x92 D \xe2\x86\x92 D \xe2\x86\x92 R \xe2\x86\x92 R \xe2\x86\x92 R",
  };
  for (size_t i = 0; i < sizeof leaky / sizeof *leaky; i++)
    CHECK_MSG(f->leaks(&t, leaky[i]), "missed: %s", leaky[i]);
  const char *safe[] = {
      "The goal is further down and to the right.",
      "Your move 2 (R) runs into a wall.",
      "RDDRR",
      "Try RDD first; you will see what RRR does later.",
      "Write the moves as one string of U, D, L and R.",
      "Each move goes one square up (U), down (D), left (L) or right (R).",
      "",
  };
  for (size_t i = 0; i < sizeof safe / sizeof *safe; i++)
    CHECK_MSG(!f->leaks(&t, safe[i]), "false alarm: %s", safe[i]);
  ag_task_clear(&t);
}

TEST(bad_tasks_and_verdicts_are_errors_not_crashes) {
  const ag_task_family *f = maze_family();
  const char *ragged[] = {"S..", "#.", "..G"};
  const char *two_starts[] = {"S.S", "...", "..G"};
  const char *no_goal[] = {"S..", "...", "..."};
  const char *odd_square[] = {"S.x", "...", "..G"};
  const char *const *bad[] = {ragged, two_starts, no_goal, odd_square};
  for (int i = 0; i < 4; i++) {
    ag_task t;
    hand_task(&t, bad[i], 3);
    ag_verdict v;
    char *answer = NULL;
    CHECK(f->verify(&t, "RR", &v) != AG_OK);
    CHECK(f->solve(&t, &answer) != AG_OK && answer == NULL);
    CHECK(f->shard(&t) != AG_OK);
    CHECK(!f->leaks(&t, "RRDD"));
    ag_task_clear(&t);
  }
  // A grid where G cannot be reached.
  const char *walled[] = {"S#G"};
  ag_task t;
  hand_task(&t, walled, 1);
  char *answer = NULL;
  CHECK(f->solve(&t, &answer) != AG_OK);
  ag_verdict empty = {0};
  char *text = NULL;
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  CHECK(f->feedback(&t, &empty, AG_FEEDBACK_LOCALISED, AG_PHRASING_TRAIN, &rng, &text) != AG_OK);
  CHECK(text == NULL);
  CHECK(f->generate(0, 1, 0, &t) != AG_OK);
  CHECK(f->generate(f->max_level + 1, 1, 0, &t) != AG_OK);
  ag_task_clear(&t);
}

/* ---- an independent reading of generated tasks ---------------------------------- */

typedef struct grid {
  int rows, cols, start, goal;
  char sq[64 * 64];
} grid;

/* The grid as the problem text draws it: the lines made only of # . S G. */
static bool grid_from_problem(const char *problem, grid *g) {
  g->rows = g->cols = 0;
  g->start = g->goal = -1;
  for (const char *line = problem; *line;) {
    size_t n = strcspn(line, "\n");
    bool is_row = n > 0 && strspn(line, "#.SG") >= n;
    if (is_row) {
      if (g->rows > 0 && (int)n != g->cols) return false;
      g->cols = (int)n;
      for (size_t c = 0; c < n; c++) {
        int p = g->rows * g->cols + (int)c;
        g->sq[p] = line[c];
        if (line[c] == 'S') g->start = p;
        if (line[c] == 'G') g->goal = p;
      }
      g->rows++;
    }
    line += n + (line[n] == '\n');
  }
  return g->rows > 0 && g->start >= 0 && g->goal >= 0;
}

static int step(const grid *g, int p, char move) {
  int r = p / g->cols, c = p % g->cols;
  switch (move) {
  case 'U': r--; break;
  case 'D': r++; break;
  case 'L': c--; break;
  case 'R': c++; break;
  default: return -1;
  }
  if (r < 0 || c < 0 || r >= g->rows || c >= g->cols || g->sq[r * g->cols + c] == '#') return -1;
  return r * g->cols + c;
}

static int bfs_distance(const grid *g) {
  int dist[64 * 64], queue[64 * 64], head = 0, tail = 0;
  for (int i = 0; i < g->rows * g->cols; i++) dist[i] = -1;
  dist[g->start] = 0;
  queue[tail++] = g->start;
  while (head < tail) {
    int p = queue[head++];
    for (const char *m = "UDLR"; *m; m++) {
      int q = step(g, p, *m);
      if (q >= 0 && dist[q] < 0) {
        dist[q] = dist[p] + 1;
        queue[tail++] = q;
      }
    }
  }
  return dist[g->goal];
}

/* Whether the moves of text, read as generously as possible, contain a
 * stretch that walks from S to G: every direction letter or word in the
 * text in order, all other words ignored, with counts ("3R", "3 right",
 * "right 3 times", "twice") expanded. */
static bool reveals_path(const grid *g, const char *text) {
  char moves[8192];
  int n = 0, pending = 1;
  for (const char *p = text; *p && n < 7000;) {
    if (isdigit((unsigned char)*p)) {
      int v = atoi(p);
      while (isdigit((unsigned char)*p)) p++;
      const char *q = p;
      while (*q == ' ') q++;
      if (strncmp(q, "times", 5) == 0 && n > 0) {
        for (int k = 1; k < v && k < 100; k++, n++) moves[n] = moves[n - 1];
      } else if (isalpha((unsigned char)*q)) {
        pending = v < 100 ? v : 100;
      }
      continue;
    }
    if (!isalpha((unsigned char)*p)) {
      p++;
      continue;
    }
    char word[1024];
    int len = 0;
    while (isalpha((unsigned char)*p)) {
      if (len < 1023) word[len++] = (char)*p;
      p++;
    }
    word[len] = '\0';
    char lowered[1024];
    for (int i = 0; i <= len; i++) lowered[i] = (char)tolower((unsigned char)word[i]);
    char dir = 0;
    if (!strcmp(lowered, "up")) dir = 'U';
    if (!strcmp(lowered, "down")) dir = 'D';
    if (!strcmp(lowered, "left")) dir = 'L';
    if (!strcmp(lowered, "right")) dir = 'R';
    if (dir) {
      for (int k = 0; k < pending; k++) moves[n++] = dir;
    } else if (!strcmp(lowered, "twice") && n > 0) {
      moves[n] = moves[n - 1];
      n++;
    } else if (strspn(lowered, "udlr") == (size_t)len) {
      for (int i = 0; i < len; i++) moves[n++] = (char)toupper((unsigned char)lowered[i]);
    }
    pending = 1;
  }
  for (int i = 0; i < n; i++)
    for (int j = i, p = g->start; j < n; j++) {
      p = step(g, p, moves[j]);
      if (p < 0) break;
      if (p == g->goal) return true;
    }
  return false;
}

TEST(generation_is_deterministic_per_seed) {
  const ag_task_family *f = maze_family();
  for (int level = 1; level <= f->max_level; level++) {
    int distinct = 0;
    char *previous = NULL;
    for (int64_t index = 0; index < 20; index++) {
      ag_task a, b;
      CHECK_OK(f->generate(level, 42, index, &a));
      CHECK_OK(f->generate(level, 42, index, &b));
      CHECK(strcmp(a.problem, b.problem) == 0 && strcmp(a.answer, b.answer) == 0 &&
            strcmp(a.solution, b.solution) == 0 && json_equal(a.data, b.data));
      if (!previous || strcmp(previous, a.problem) != 0) distinct++;
      free(previous);
      previous = strdup(a.problem);
      // A task saved as JSON and loaded back still verifies.
      json_t *record = ag_task_to_json(&a);
      ag_task back;
      CHECK_OK(ag_task_from_json(record, &back));
      ag_verdict v;
      CHECK_OK(f->verify(&back, a.answer, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      ag_task_clear(&back);
      json_decref(record);
      ag_task other;
      CHECK_OK(f->generate(level, 43, index, &other));
      CHECK(strcmp(other.id, a.id) != 0);
      ag_task_clear(&other);
      ag_task_clear(&a);
      ag_task_clear(&b);
    }
    free(previous);
    CHECK_MSG(distinct >= 15, "level %d: %d distinct mazes in 20", level, distinct);
  }
}

TEST(every_generated_maze_is_solvable_and_sharded) {
  const ag_task_family *f = maze_family();
  CHECK(f->max_level == 5 && f->default_level >= 1 && f->default_level <= f->max_level);
  long per_level = test_scaled(2000, 100);
  for (int level = 1; level <= f->max_level; level++) {
    size_t longest = 0;
    for (long i = 0; i < per_level; i++) {
      ag_task t;
      CHECK_OK(f->generate(level, 7, i, &t));
      grid g;
      CHECK(grid_from_problem(t.problem, &g));
      int shortest = bfs_distance(&g);
      CHECK_MSG(shortest >= 4, "%s: S and G only %d apart", t.id, shortest);
      CHECK(strlen(t.answer) == (size_t)shortest);
      char *answer = NULL;
      CHECK_OK(f->solve(&t, &answer));
      CHECK(answer && strlen(answer) == (size_t)shortest);
      // The answer walks from S to G in the drawn grid (an independent walk).
      int p = g.start;
      for (const char *m = answer; m && *m && p >= 0; m++) p = step(&g, p, *m);
      CHECK_MSG(p == g.goal, "%s: solve() gives %s", t.id, answer);
      ag_verdict v;
      CHECK_OK(f->verify(&t, answer, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      CHECK_OK(f->verify(&t, t.answer, &v));
      CHECK(v.correct);
      ag_verdict_clear(&v);
      CHECK(strstr(t.problem, "Answer: <moves>") != NULL);
      const char *last = strstr(t.solution, "Answer: ");
      CHECK(last && strcmp(last + 8, t.answer) == 0);
      CHECK(f->leaks(&t, t.answer) && f->leaks(&t, t.solution) && !f->leaks(&t, t.problem));
      // The checker the feedback test relies on does see a path (positive control).
      CHECK(reveals_path(&g, t.answer) && reveals_path(&g, t.solution));
      if (strlen(t.problem) > longest) longest = strlen(t.problem);
      CHECK_OK(f->shard(&t));
      CHECK(t.shard_count == g.rows + 1 && !t.shards[0].required);
      // A row is required exactly when the path crosses it.
      bool crossed[64] = {false};
      int q = g.start;
      crossed[q / g.cols] = true;
      for (const char *m = t.answer; *m && q >= 0; m++) {
        q = step(&g, q, *m);
        if (q >= 0) crossed[q / g.cols] = true;
      }
      for (int r = 0; r < g.rows && t.shard_count == g.rows + 1; r++)
        CHECK(t.shards[1 + r].required == crossed[r]);
      free(answer);
      ag_task_clear(&t);
    }
    if (level == f->default_level)
      CHECK_MSG(longest <= 300, "default-level problems up to %zu characters", longest);
  }
}

/* Wrong attempts of every kind, feedback at both levels and from both
 * phrasing sets: none may reveal a path from S to G. */
TEST(feedback_never_reveals_a_path) {
  const ag_task_family *f = maze_family();
  long tasks = test_scaled(10000, 500);
  ag_rng rng;
  ag_rng_seed(&rng, 2024);
  long judged = 0;
  for (long i = 0; i < tasks; i++) {
    int level = 1 + (int)(i % f->max_level);
    ag_task t;
    CHECK_OK(f->generate(level, 11, i, &t));
    grid g;
    CHECK(grid_from_problem(t.problem, &g));
    size_t len = strlen(t.answer);
    char attempt[4200];
    switch (i % 5) {
    case 0: // a prefix of the answer
      snprintf(attempt, sizeof attempt, "%.*s", (int)(ag_rng_below(&rng, len)), t.answer);
      if (!attempt[0]) snprintf(attempt, sizeof attempt, "U");
      break;
    case 1: // one move changed
      snprintf(attempt, sizeof attempt, "%s", t.answer);
      attempt[ag_rng_below(&rng, len)] = "UDLR"[ag_rng_below(&rng, 4)];
      break;
    case 2: // past the goal
      snprintf(attempt, sizeof attempt, "%s%c", t.answer, "UDLR"[ag_rng_below(&rng, 4)]);
      break;
    case 3: { // random moves
      int n = 1 + (int)ag_rng_below(&rng, 30);
      for (int k = 0; k < n; k++) attempt[k] = "UDLR"[ag_rng_below(&rng, 4)];
      attempt[n] = '\0';
      break;
    }
    default: snprintf(attempt, sizeof attempt, "I think it is %s", t.answer); break;
    }
    ag_verdict v;
    CHECK_OK(f->verify(&t, attempt, &v));
    if (!v.correct) {
      for (int level_fb = AG_FEEDBACK_DIRECTIONAL; level_fb <= AG_FEEDBACK_LOCALISED; level_fb++)
        for (int set = 0; set < 2; set++) {
          char *text = NULL;
          CHECK_OK(f->feedback(&t, &v, level_fb, set, &rng, &text));
          bool bad = !text || reveals_path(&g, text) || strstr(text, t.answer) != NULL;
          CHECK_MSG(!bad, "%s, attempt %s: %s", t.id, attempt, text ? text : "(null)");
          // The family's own guard agrees (the teacher never trips it).
          CHECK_MSG(!f->leaks(&t, text), "leaks() flags its own feedback: %s", text);
          judged++;
          free(text);
        }
    }
    ag_verdict_clear(&v);
    ag_task_clear(&t);
  }
  CHECK(judged >= tasks * 2);
}

int main(void) {
  RUN(verify_accepts_any_spelling_of_a_legal_path_to_the_goal);
  RUN(verify_reports_where_a_wrong_path_goes_wrong);
  RUN(feedback_is_directional_or_localised_as_asked);
  RUN(phrasing_sets_are_varied_and_disjoint);
  RUN(leaks_finds_a_path_in_any_spelling);
  RUN(bad_tasks_and_verdicts_are_errors_not_crashes);
  RUN(generation_is_deterministic_per_seed);
  RUN(every_generated_maze_is_solvable_and_sharded);
  RUN(feedback_never_reveals_a_path);
  TEST_MAIN_END();
}
