/* The sampled mode of opponent shaping: PPO learners with GRU policies in
 * sampled episodes learn the best response to fixed strategies (defect
 * against always-defect; cooperate with tit-for-tat, which punishes
 * defection, at gamma 0.96), two PPO learners in the prisoner's dilemma end
 * in mutual defection (naive learners do, PAPERS.md §10), a run is a
 * function of its seed, and bad configurations are refused. */
#include "agora/shaping.h"
#include "test.h"

typedef struct trace {
  int records;
  double first_coop, last_coop, first_reward, last_reward;
} trace;

static ag_status keep(const ag_shaping_sampled_record *r, void *ctx) {
  trace *t = ctx;
  if (t->records++ == 0) {
    t->first_coop = r->cooperation[0];
    t->first_reward = r->reward_per_step[0];
  }
  t->last_coop = r->cooperation[0];
  t->last_reward = r->reward_per_step[0];
  return AG_OK;
}

static trace run(const char *seats_list, int iterations, uint64_t seed) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 2, &g));
  ag_shaping_learner seats[2];
  CHECK_OK(ag_shaping_parse_seats(seats_list, 2, seats));
  ag_shaping_sampled_config c = {
      .game = &g, .seats = seats, .iterations = iterations, .seed = seed, .ppo = ag_ppo_defaults()};
  c.ppo.episodes = 16;
  c.ppo.steps = 50;
  trace t = {0};
  CHECK_OK(ag_shaping_sampled_run(&c, keep, &t));
  CHECK(t.records == iterations + 1);
  fprintf(stderr, "  %s: cooperation %.3f -> %.3f, reward per step %.3f -> %.3f\n", seats_list,
          t.first_coop, t.last_coop, t.first_reward, t.last_reward);
  return t;
}

TEST(ppo_learns_to_defect_against_always_defect) {
  trace t = run("ppo,alld", 30, 1);
  CHECK(t.first_coop > 0.3 && t.last_coop < 0.1);
  CHECK(t.last_reward > t.first_reward + 0.3); /* 1 for D, 0 for C against D */
}

TEST(ppo_learns_to_cooperate_with_tit_for_tat) {
  trace t = run("ppo,tft", 40, 2);
  CHECK(t.last_coop > 0.9);
  CHECK(t.last_reward > t.first_reward + 0.3); /* 2 a step when both cooperate */
}

TEST(two_ppo_learners_end_in_mutual_defection) {
  trace t = run("ppo,ppo", 40, 3);
  CHECK(t.last_coop < 0.1);
}

TEST(a_run_is_a_function_of_its_seed) {
  trace a = run("ppo,tft", 3, 7), b = run("ppo,tft", 3, 7), c = run("ppo,tft", 3, 8);
  CHECK(a.last_coop == b.last_coop && a.last_reward == b.last_reward);
  CHECK(a.first_coop != c.first_coop || a.last_coop != c.last_coop);
}

TEST(bad_configurations_are_refused_before_any_work) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  ag_shaping_learner seats[3] = {AG_LEARNER_PPO, AG_LEARNER_NAIVE, AG_LEARNER_ALLD};
  ag_shaping_sampled_config c = {
      .game = &g, .seats = seats, .iterations = 1, .ppo = ag_ppo_defaults()};
  trace t = {0};
  CHECK(ag_shaping_sampled_run(&c, keep, &t) == AG_ERR_INVALID && t.records == 0);
  CHECK(strstr(ag_error_message(), "seat 1 is 'naive'"));
  seats[1] = AG_LEARNER_TFT;
  c.ppo.hidden = 0;
  CHECK(ag_shaping_sampled_run(&c, keep, &t) == AG_ERR_INVALID && t.records == 0);
  c.ppo = ag_ppo_defaults();
  c.ppo.gamma = 1.0;
  CHECK(ag_shaping_sampled_check(&c) == AG_ERR_INVALID);
  /* and the exact mode refuses a ppo seat, pointing at the sampled one */
  ag_shaping_run_config e = {.game = &g,
                             .seats = seats,
                             .steps = 1,
                             .gamma = 0.96,
                             .lr = 1,
                             .correction = 1,
                             .init_std = 1};
  CHECK(ag_shaping_run_check(&e) == AG_ERR_INVALID && strstr(ag_error_message(), "sampled"));
}

int main(void) {
  RUN(ppo_learns_to_defect_against_always_defect);
  RUN(ppo_learns_to_cooperate_with_tit_for_tat);
  RUN(two_ppo_learners_end_in_mutual_defection);
  RUN(a_run_is_a_function_of_its_seed);
  RUN(bad_configurations_are_refused_before_any_work);
  TEST_MAIN_END();
}
