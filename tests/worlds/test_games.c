/* Iterated n-player games: payoff tables against PAPERS.md §10 by hand,
 * state indexing from each player's perspective, payoff files, and the
 * sampled mode (a batch of episodes stepped by hand; Monte Carlo returns of
 * memory-one policies against the closed form, whatever the threads). */
#include "agora/games.h"
#include "test.h"

#include <math.h>
#include <unistd.h>

static void check_row(const ag_game *g, int k, double coop, double defect) {
  if (isnan(coop))
    CHECK_MSG(isnan(g->payoff[k][0]), "%s k=%d cooperator should be impossible", g->name, k);
  else
    CHECK_NEAR(g->payoff[k][0], coop, 1e-12);
  if (isnan(defect))
    CHECK_MSG(isnan(g->payoff[k][1]), "%s k=%d defector should be impossible", g->name, k);
  else
    CHECK_NEAR(g->payoff[k][1], defect, 1e-12);
}

/* Tables written out by hand from PAPERS.md §10 (rows k = 0..n defectors). */
TEST(payoff_tables_two_players) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 2, &g)); /* R 2, S 0, T 3, P 1 */
  check_row(&g, 0, 2, NAN);
  check_row(&g, 1, 0, 3);
  check_row(&g, 2, NAN, 1);
  CHECK_OK(ag_game_make("sd", 2, &g));
  check_row(&g, 0, 1.5, NAN);
  check_row(&g, 1, 1, 2);
  check_row(&g, 2, NAN, 0);
  CHECK_OK(ag_game_make("sh", 2, &g)); /* t = 2 */
  check_row(&g, 0, 3, NAN);
  check_row(&g, 1, -3, 0);
  check_row(&g, 2, NAN, 0);
  CHECK_OK(ag_game_make("tc", 2, &g)); /* m = 1 (our choice for n = 2) */
  check_row(&g, 0, 2, NAN);
  check_row(&g, 1, 2, 5);
  check_row(&g, 2, NAN, 0);
}

TEST(payoff_tables_three_players) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  check_row(&g, 0, 4, NAN);
  check_row(&g, 1, 2, 5);
  check_row(&g, 2, 0, 3);
  check_row(&g, 3, NAN, 1);
  CHECK_OK(ag_game_make("sd", 3, &g));
  check_row(&g, 0, 3 - 2.0 / 3, NAN);
  check_row(&g, 1, 2, 3);
  check_row(&g, 2, 1, 3);
  check_row(&g, 3, NAN, 0);
  CHECK_OK(ag_game_make("sh", 3, &g)); /* t = 2 */
  check_row(&g, 0, 3, NAN);
  check_row(&g, 1, 1, 4);
  check_row(&g, 2, -3, 0);
  check_row(&g, 3, NAN, 0);
  CHECK_OK(ag_game_make("tc", 3, &g)); /* m = 1 */
  check_row(&g, 0, 2, NAN);
  check_row(&g, 1, 2, 5);
  check_row(&g, 2, -3, 0);
  check_row(&g, 3, NAN, 0);
}

TEST(payoff_tables_five_players_thresholds) {
  ag_game g;
  CHECK_OK(ag_game_make("sh", 5, &g)); /* t = 3 */
  check_row(&g, 2, 6.0 * 3 / 5 - 3, 6.0 * 3 / 5);
  check_row(&g, 3, -3, 0);
  CHECK_OK(ag_game_make("tc", 5, &g)); /* m = 2 */
  check_row(&g, 2, 2, 5);
  check_row(&g, 3, -3, 0);
  CHECK_OK(ag_game_make("tc", 4, &g)); /* m = 1 */
  check_row(&g, 1, 2, 5);
  check_row(&g, 2, -3, 0);
  CHECK_OK(ag_game_make("ipd", 5, &g));
  check_row(&g, 4, 0, 3); /* cooperator 2(5-1-4), defector 2(5-4)+1 */
}

TEST(unknown_games_and_sizes_are_errors) {
  ag_game g;
  CHECK(ag_game_make("pd", 3, &g) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "pd") != NULL);
  CHECK(ag_game_make("ipd", 6, &g) == AG_ERR_INVALID);
  CHECK(ag_game_make("ipd", 1, &g) == AG_ERR_INVALID);
  double table[10][2] = {{0}};
  CHECK(ag_game_from_table("x", 9, (const double(*)[2])table, &g) == AG_ERR_INVALID);
  table[1][0] = INFINITY;
  CHECK(ag_game_from_table("x", 2, (const double(*)[2])table, &g) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "payoff[1][0]") != NULL);
}

/* Player 0 in the most significant bit; player i sees itself first, then
 * i+1, ..., wrapping around. */
TEST(state_indexing_from_each_perspective) {
  /* n = 3, actions (a0, a1, a2) = (D, C, C): joint 0b100. */
  CHECK(ag_game_perspective(3, 0, 4) == 4); /* (a0 a1 a2) = 100 */
  CHECK(ag_game_perspective(3, 1, 4) == 1); /* (a1 a2 a0) = 001 */
  CHECK(ag_game_perspective(3, 2, 4) == 2); /* (a2 a0 a1) = 010 */
  /* (C, D, D): joint 0b011. */
  CHECK(ag_game_perspective(3, 1, 3) == 6); /* (a1 a2 a0) = 110 */
  CHECK(ag_game_perspective(3, 2, 3) == 5); /* (a2 a0 a1) = 101 */
  CHECK(ag_game_state_count(3) == 9);
  CHECK(ag_game_perspective(3, 1, 8) == 8); /* start */
  for (int n = 2; n <= AG_GAME_MAX_PLAYERS; n++)
    for (int i = 0; i < n; i++)
      for (int joint = 0; joint < (1 << n); joint++) {
        int s = ag_game_perspective(n, i, joint);
        /* Rebuild the expected state from the definition. */
        int want = 0;
        for (int m = 0; m < n; m++) want = want * 2 + ag_game_action(n, joint, (i + m) % n);
        CHECK(s == want);
        CHECK(ag_game_joint_from_perspective(n, i, s) == joint);
        CHECK(ag_game_action(n, joint, i) == (s >> (n - 1)));
      }
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  CHECK(ag_game_defectors(3, 4) == 1);
  CHECK_NEAR(ag_game_reward(&g, 4, 0), 5, 0); /* the lone defector */
  CHECK_NEAR(ag_game_reward(&g, 4, 1), 2, 0);
  CHECK_NEAR(ag_game_reward(&g, 7, 2), 1, 0);
  CHECK_NEAR(ag_game_reward(&g, 0, 2), 4, 0);
}

static const char *write_temp(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/agora_test_games_%d.json", (int)getpid());
  FILE *f = fopen(path, "w");
  if (!f) return NULL;
  fputs(text, f);
  fclose(f);
  return path;
}

TEST(payoff_files_load_and_errors_name_the_field) {
  ag_game g;
  const char *p = write_temp("{\"name\": \"classic\", \"players\": 2,"
                             " \"payoff\": [[-1, null], [-3, 0], [null, -2]]}");
  CHECK(p != NULL);
  CHECK_OK(ag_game_load(p, &g));
  CHECK(!strcmp(g.name, "classic"));
  CHECK(g.players == 2);
  check_row(&g, 0, -1, NAN);
  check_row(&g, 1, -3, 0);
  check_row(&g, 2, NAN, -2);
  CHECK_OK(ag_game_open(p, 2, &g));
  CHECK(ag_game_open(p, 3, &g) == AG_ERR_INVALID);

  p = write_temp("{\"players\": 2, \"payoff\": [[-1, 0], [-3, \"x\"], [0, -2]]}");
  CHECK(ag_game_load(p, &g) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "payoff[1][1]") != NULL, "%s", ag_error_message());
  p = write_temp("{\"players\": 3, \"payoff\": [[-1, 0], [-3, 0], [0, -2]]}");
  CHECK(ag_game_load(p, &g) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "\"payoff\"") != NULL, "%s", ag_error_message());
  p = write_temp("{\"players\": 9, \"payoff\": []}");
  CHECK(ag_game_load(p, &g) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "\"players\"") != NULL, "%s", ag_error_message());
  p = write_temp("{\"players\": 2, \"payoff\": [[-1, 0], [-3], [0, -2]]}");
  CHECK(ag_game_load(p, &g) == AG_ERR_FORMAT);
  CHECK_MSG(strstr(ag_error_message(), "payoff[1]") != NULL, "%s", ag_error_message());
  p = write_temp("[1, 2]");
  CHECK(ag_game_load(p, &g) == AG_ERR_FORMAT);
  remove(p);
  CHECK(ag_game_load("/nonexistent/game.json", &g) != AG_OK);
}

/* Three players, three episodes stepped by hand. */
TEST(a_batch_of_episodes_steps_by_hand) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  ag_game_batch b;
  CHECK_OK(ag_game_batch_init(&b, &g, 3));
  for (int e = 0; e < 3; e++)
    for (int i = 0; i < 3; i++) CHECK(ag_game_batch_state(&b, e, i) == 8); /* start */
  const uint8_t actions[9] = {0, 0, 0,                                     /* all cooperate */
                              1, 0, 0,                                     /* player 0 defects */
                              0, 1, 1};
  double r[9];
  CHECK_OK(ag_game_batch_step(&b, actions, r));
  /* ipd, n = 3: cooperator 2(n-1-k), defector 2(n-k)+1 */
  const double want[9] = {4, 4, 4, 5, 2, 2, 0, 3, 3};
  for (int k = 0; k < 9; k++) CHECK_NEAR(r[k], want[k], 1e-12);
  /* episode 1's joint action is 100: player 0 sees 100, player 1 sees 001
   * (itself first, then player 2, then player 0), player 2 sees 010 */
  CHECK(ag_game_batch_state(&b, 1, 0) == 4 && ag_game_batch_state(&b, 1, 1) == 1 &&
        ag_game_batch_state(&b, 1, 2) == 2);
  CHECK(b.steps == 1);
  const uint8_t bad[9] = {0, 0, 0, 0, 2, 0, 0, 0, 0};
  CHECK(ag_game_batch_step(&b, bad, NULL) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "episode 1, player 1"));
  ag_game_batch_reset(&b);
  CHECK(ag_game_batch_state(&b, 1, 1) == 8 && b.steps == 0);
  ag_game_batch_free(&b);
  ag_game_batch none;
  CHECK(ag_game_batch_init(&none, &g, 0) == AG_ERR_INVALID);
}

/* The library's sampler against the closed form, on games where the
 * threshold and the tragedy matter; the same numbers on 1 and 2 threads. */
TEST(sampled_memory_one_returns_match_the_closed_form) {
  static const char *games[] = {"ipd", "sh", "tc"};
  ag_rng rng;
  ag_rng_seed(&rng, 5);
  int saved = ag_threads_get();
  for (int f = 0; f < 3; f++) {
    const int n = 3 + f % 2, S = ag_game_state_count(n), T = 300; /* 0.96^300 ~ 5e-6 */
    ag_game g;
    CHECK_OK(ag_game_make(games[f], n, &g));
    double theta[4 * 17];
    for (int k = 0; k < n * S; k++) theta[k] = ag_rng_normal(&rng);
    ag_game_exact *e = NULL;
    CHECK_OK(ag_game_exact_new(&g, 0.96, &e));
    if (!e) return;
    CHECK_OK(ag_game_exact_evaluate(e, theta));
    int64_t episodes = test_scaled(20000, 2000);
    double mean[4], se[4], again[4];
    ag_threads_set(1);
    CHECK_OK(ag_game_sample_memory_one(&g, theta, 0.96, episodes, T, 9, mean, se));
    for (int i = 0; i < n; i++)
      CHECK_MSG(fabs(mean[i] - ag_game_exact_values(e)[i]) < 5 * se[i] + 0.01,
                "%s n=%d player %d: sampled %.4f +- %.4f, exact %.4f", games[f], n, i, mean[i],
                se[i], ag_game_exact_values(e)[i]);
    ag_threads_set(2);
    CHECK_OK(ag_game_sample_memory_one(&g, theta, 0.96, episodes, T, 9, again, NULL));
    for (int i = 0; i < n; i++) CHECK(again[i] == mean[i]);
    ag_game_exact_free(e);
  }
  ag_threads_set(saved);
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 2, &g));
  double theta[10] = {0}, mean[2];
  CHECK(ag_game_sample_memory_one(&g, theta, 1.0, 10, 10, 0, mean, NULL) == AG_ERR_INVALID);
  theta[3] = NAN;
  CHECK(ag_game_sample_memory_one(&g, theta, 0.9, 10, 10, 0, mean, NULL) == AG_ERR_INVALID);
}

int main(void) {
  RUN(payoff_tables_two_players);
  RUN(payoff_tables_three_players);
  RUN(payoff_tables_five_players_thresholds);
  RUN(unknown_games_and_sizes_are_errors);
  RUN(state_indexing_from_each_perspective);
  RUN(payoff_files_load_and_errors_name_the_field);
  RUN(a_batch_of_episodes_steps_by_hand);
  RUN(sampled_memory_one_returns_match_the_closed_form);
  TEST_MAIN_END();
}
