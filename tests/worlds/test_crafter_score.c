/* The Crafter score: success rates per achievement and exp(mean ln(1 + s_i))
 * - 1, against values computed by hand, and the tally of real episodes. */
#include "agora/crafter.h"
#include "test.h"
#include "worlds/crafter/crafter_internal.h"

#define N_ACH AG_CRAFTER_ACHIEVEMENT_COUNT

TEST(test_empty_tally) {
  ag_crafter_tally t = {0};
  double s[N_ACH];
  for (int a = 0; a < N_ACH; a++) s[a] = -1;
  ag_crafter_success_rates(&t, s);
  for (int a = 0; a < N_ACH; a++) CHECK(s[a] == 0.0);
  CHECK(ag_crafter_score(s) == 0.0); // exp(0) - 1
}

TEST(test_rates_and_score_by_hand) {
  // 4 episodes: collect_coal (0) in two of them (counts 1 and 3),
  // collect_diamond (1) in one; nothing else. Rates 50 %, 25 %, 0 ...
  ag_crafter_tally t = {0};
  int32_t ach[4][N_ACH] = {{0}};
  ach[0][0] = 1;
  ach[2][0] = 3;
  ach[3][1] = 1;
  int64_t lengths[4] = {100, 200, 300, 401};
  double returns[4] = {1.5, -0.25, 2.0, 0.75};
  for (int e = 0; e < 4; e++) ag_crafter_tally_add(&t, ach[e], lengths[e], returns[e]);
  CHECK(t.episodes == 4);
  CHECK(t.steps == 1001);
  CHECK_NEAR(t.total_return, 4.0, 1e-12);
  double s[N_ACH];
  ag_crafter_success_rates(&t, s);
  CHECK(s[0] == 50.0);
  CHECK(s[1] == 25.0);
  for (int a = 2; a < N_ACH; a++) CHECK(s[a] == 0.0);
  // exp((ln 51 + ln 26) / 22) - 1 = 0.38654444920034..., by hand (Python).
  CHECK_NEAR(ag_crafter_score(s), 0.3865444492003427, 1e-13);
}

TEST(test_score_geometric_mean) {
  double s[N_ACH];
  for (int a = 0; a < N_ACH; a++) s[a] = 100.0;
  CHECK_NEAR(ag_crafter_score(s), 100.0, 1e-12); // all always unlocked
  for (int a = 0; a < N_ACH; a++) s[a] = 100.0 / 3;
  CHECK_NEAR(ag_crafter_score(s), 100.0 / 3, 1e-12); // equal rates: the rate itself
  for (int a = 0; a < N_ACH; a++) s[a] = a % 2 ? 100.0 : 0.0;
  CHECK_NEAR(ag_crafter_score(s), 9.04987562112089, 1e-12); // sqrt(1 * 101) - 1
  // Geometric, not arithmetic: far below the mean rate of 50 %.
  CHECK(ag_crafter_score(s) < 10.0);
}

TEST(test_tally_of_real_episodes) {
  // Two random episodes (numpy's RandomState(12345) actions, as the golden
  // random files): a rate is 100 % exactly for achievements both unlocked.
  ag_crafter_env *env = NULL;
  CHECK_OK(ag_crafter_create(0, &env));
  if (!env) return;
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, 12345u);
  ag_crafter_tally t = {0};
  int both[N_ACH] = {0};
  long max_steps = test_scaled(3000, 300);
  for (int e = 0; e < 2; e++) {
    CHECK_OK(ag_crafter_reset(env));
    bool done = false;
    double ret = 0, rew = 0;
    ag_crafter_info info;
    long k = 0;
    for (; k < max_steps && !done; k++) {
      CHECK_OK(ag_crafter_step(env, (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT),
                               &rew, &done, &info));
      ret += rew;
    }
    CHECK(info.step == k);
    ag_crafter_tally_add(&t, info.achievements, info.step, ret);
    for (int a = 0; a < N_ACH; a++) both[a] += info.achievements[a] > 0;
  }
  double s[N_ACH];
  ag_crafter_success_rates(&t, s);
  int any = 0;
  for (int a = 0; a < N_ACH; a++) {
    CHECK(s[a] == 50.0 * both[a]);
    any += both[a];
  }
  CHECK(any > 0); // a random agent unlocks something (collect_sapling, wood...)
  CHECK(ag_crafter_score(s) > 0);
  ag_crafter_destroy(env);
}

int main(void) {
  RUN(test_empty_tally);
  RUN(test_rates_and_score_by_hand);
  RUN(test_score_geometric_mean);
  RUN(test_tally_of_real_episodes);
  TEST_MAIN_END();
}
