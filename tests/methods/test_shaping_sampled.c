/* The sampled mode of opponent shaping: PPO learners with GRU policies in
 * sampled episodes learn the best response to fixed strategies (defect
 * against always-defect; cooperate with tit-for-tat, which punishes
 * defection, at gamma 0.96), two PPO learners in the prisoner's dilemma end
 * in mutual defection (naive learners do, PAPERS.md §10), a run is a
 * function of its seed, the per-step ES shaper learns (and its training
 * ignores the thread count), and bad configurations are refused. */
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

typedef struct fitness_trace {
  double first, last;
} fitness_trace;

static ag_status keep_fitness(const ag_shaping_es_report *r, void *ctx) {
  fitness_trace *f = ctx;
  if (r->generation == 1) f->first = r->mean_fitness[0];
  f->last = r->mean_fitness[0];
  return AG_OK;
}

/* The per-step shaper trained by OpenES: it learns the best response to a
 * fixed co-player, it raises its reward against a learning PPO co-player,
 * and its parameters do not depend on the thread count. */
TEST(the_sampled_es_shaper_learns_and_ignores_the_thread_count) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 2, &g));
  ag_shaping_learner seats[2] = {AG_LEARNER_ES, AG_LEARNER_ALLD};
  ag_shaping_sampled_config c = {
      .game = &g, .seats = seats, .iterations = 1, .ppo = ag_ppo_defaults()};
  c.ppo.episodes = 8;
  c.ppo.steps = 20;
  ag_shaping_es_config es = ag_shaping_es_defaults();
  es.generations = 15;
  es.population = 8;
  es.hidden = 8;
  es.sigma = 0.1;
  es.threads = 1;
  int D = ag_shaping_sampled_shaper_param_count(2, 8);
  double *a = malloc(sizeof(double) * (size_t)D), *b = malloc(sizeof(double) * (size_t)D);
  fitness_trace f = {0};
  CHECK_OK(ag_shaping_sampled_es_train(&c, &es, a, keep_fitness, &f));
  fprintf(stderr, "  es vs alld: fitness %.3f -> %.3f\n", f.first, f.last);
  CHECK(f.first < 0.7 && f.last > 0.9); /* 1 a step for defecting against a defector */
  es.threads = 2;
  CHECK_OK(ag_shaping_sampled_es_train(&c, &es, b, NULL, NULL));
  bool same = true;
  for (int k = 0; k < D; k++) same = same && a[k] == b[k];
  CHECK(same);
  /* against a PPO learner, which learns while the shaper plays it */
  seats[1] = AG_LEARNER_PPO;
  c.iterations = 3;
  es.generations = 6;
  f = (fitness_trace){0};
  CHECK_OK(ag_shaping_sampled_es_train(&c, &es, a, keep_fitness, &f));
  fprintf(stderr, "  es vs ppo: fitness %.3f -> %.3f\n", f.first, f.last);
  CHECK(f.last > f.first + 0.1);
  free(a);
  free(b);
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
  c.ppo = ag_ppo_defaults();
  seats[1] = AG_LEARNER_ES; /* an es seat needs trained parameters */
  CHECK(ag_shaping_sampled_check(&c) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "ag_shaping_sampled_es_train"));
  seats[1] = AG_LEARNER_TFT;
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
  RUN(the_sampled_es_shaper_learns_and_ignores_the_thread_count);
  RUN(bad_configurations_are_refused_before_any_work);
  TEST_MAIN_END();
}
