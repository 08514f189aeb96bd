/* Exact values of memory-one policies, their gradients and the LOLA term
 * against independent estimates: power iteration, Monte Carlo rollouts and
 * central finite differences; then the classic two-player IPD result. */
#include "agora/games.h"
#include "agora/shaping.h"
#include "test.h"

#define MAXS 257

static double sig(double z) { return 1 / (1 + exp(-z)); }

/* The test's own player-i state after `joint`, from the definition: own
 * action first, then i+1, ... wrapping (player j's action is bit n-1-j). */
static int ref_state(int n, int i, int joint) {
  if (joint >= (1 << n)) return 1 << n;
  int s = 0;
  for (int m = 0; m < n; m++) s = s * 2 + ((joint >> (n - 1 - (i + m) % n)) & 1);
  return s;
}

static double ref_prob(int n, const double *theta, int prev, int a) {
  int S = (1 << n) + 1;
  double pr = 1;
  for (int j = 0; j < n; j++) {
    double p = sig(theta[j * S + ref_state(n, j, prev)]);
    pr *= ((a >> (n - 1 - j)) & 1) ? 1 - p : p;
  }
  return pr;
}

static double ref_reward(const ag_game *g, int a, int i) {
  int n = g->players, k = 0;
  for (int j = 0; j < n; j++) k += (a >> j) & 1;
  return g->payoff[k][(a >> (n - 1 - i)) & 1];
}

/* sum_{t<T} gamma^t E[r^i_t] by propagating the joint-action distribution. */
static void power_values(const ag_game *g, double gamma, const double *theta, int T,
                         double *values) {
  int n = g->players, N = 1 << n;
  double d[256], nd[256];
  for (int a = 0; a < N; a++) d[a] = ref_prob(n, theta, N, a);
  for (int i = 0; i < n; i++) values[i] = 0;
  double w = 1;
  for (int t = 0; t < T; t++) {
    for (int i = 0; i < n; i++)
      for (int a = 0; a < N; a++) values[i] += w * d[a] * ref_reward(g, a, i);
    for (int b = 0; b < N; b++) nd[b] = 0;
    for (int a = 0; a < N; a++)
      for (int b = 0; b < N; b++) nd[b] += d[a] * ref_prob(n, theta, a, b);
    for (int b = 0; b < N; b++) d[b] = nd[b];
    w *= gamma;
  }
}

static void random_theta(ag_rng *rng, int count, double *theta) {
  for (int k = 0; k < count; k++) theta[k] = ag_rng_normal(rng);
}

TEST(exact_values_match_power_iteration) {
  static const char *games[] = {"ipd", "sd", "sh", "tc"};
  ag_rng rng;
  ag_rng_seed(&rng, 7);
  for (int n = 2; n <= 4; n++)
    for (int f = 0; f < 4; f++) {
      ag_game g;
      CHECK_OK(ag_game_make(games[f], n, &g));
      ag_game_exact *e = NULL;
      CHECK_OK(ag_game_exact_new(&g, 0.96, &e));
      if (!e) return;
      int S = ag_game_state_count(n);
      double theta[5 * 33], want[5];
      random_theta(&rng, n * S, theta);
      CHECK_OK(ag_game_exact_evaluate(e, theta));
      power_values(&g, 0.96, theta, 1200, want); /* 0.96^1200 ~ 5e-22 */
      for (int i = 0; i < n; i++)
        CHECK_MSG(fabs(ag_game_exact_values(e)[i] - want[i]) < 1e-9, "%s n=%d i=%d %.12g vs %.12g",
                  games[f], n, i, ag_game_exact_values(e)[i], want[i]);
      double occ = 0;
      for (int a = 0; a < (1 << n); a++) occ += ag_game_exact_occupancy(e)[a];
      CHECK_NEAR(occ, 1, 1e-10);
      ag_game_exact_free(e);
    }
}

/* Rollouts of the same policies, sampled step by step. */
TEST(exact_values_match_monte_carlo) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  const int n = 3, S = 9, T = 300; /* 0.96^300 ~ 5e-6 */
  const double gamma = 0.96;
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  double theta[3 * 9];
  random_theta(&rng, n * S, theta);
  ag_game_exact *e = NULL;
  CHECK_OK(ag_game_exact_new(&g, gamma, &e));
  if (!e) return;
  CHECK_OK(ag_game_exact_evaluate(e, theta));
  long episodes = test_scaled(20000, 2000);
  double sum[3] = {0}, sumsq[3] = {0};
  for (long ep = 0; ep < episodes; ep++) {
    int prev = 1 << n;
    double ret[3] = {0}, w = 1;
    for (int t = 0; t < T; t++) {
      int joint = 0;
      for (int j = 0; j < n; j++) {
        double p = sig(theta[j * S + ref_state(n, j, prev)]);
        int defect = ag_rng_uniform(&rng) >= p;
        joint = joint * 2 + defect;
      }
      for (int i = 0; i < n; i++) ret[i] += w * ref_reward(&g, joint, i);
      w *= gamma;
      prev = joint;
    }
    for (int i = 0; i < n; i++) {
      sum[i] += ret[i];
      sumsq[i] += ret[i] * ret[i];
    }
  }
  for (int i = 0; i < n; i++) {
    double mean = sum[i] / episodes;
    double se = sqrt((sumsq[i] / episodes - mean * mean) / episodes);
    CHECK_MSG(fabs(mean - ag_game_exact_values(e)[i]) < 5 * se + 0.01,
              "player %d: MC %.4f +- %.4f, exact %.4f", i, mean, se, ag_game_exact_values(e)[i]);
  }
  ag_game_exact_free(e);
}

/* With the same policy in every seat (in each player's own perspective), a
 * rotation-symmetric game gives everyone the same value. */
TEST(symmetric_policies_give_equal_values) {
  ag_game g;
  CHECK_OK(ag_game_make("sh", 5, &g));
  ag_game_exact *e = NULL;
  CHECK_OK(ag_game_exact_new(&g, 0.9, &e));
  if (!e) return;
  int S = ag_game_state_count(5);
  double theta[5 * 33];
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  random_theta(&rng, S, theta);
  for (int i = 1; i < 5; i++) memcpy(theta + i * S, theta, sizeof(double) * S);
  CHECK_OK(ag_game_exact_evaluate(e, theta));
  for (int i = 1; i < 5; i++)
    CHECK_NEAR(ag_game_exact_values(e)[i], ag_game_exact_values(e)[0], 1e-9);
  ag_game_exact_free(e);
}

TEST(gradients_match_finite_differences) {
  ag_game g;
  CHECK_OK(ag_game_make("tc", 3, &g));
  const int n = 3, S = 9;
  ag_game_exact *e = NULL;
  CHECK_OK(ag_game_exact_new(&g, 0.96, &e));
  if (!e) return;
  ag_rng rng;
  ag_rng_seed(&rng, 5);
  double theta[27], grad[3 * 3 * 9];
  random_theta(&rng, n * S, theta);
  CHECK_OK(ag_game_exact_evaluate(e, theta));
  ag_game_exact_gradients(e, grad);
  const double h = 1e-5;
  double worst = 0;
  for (int j = 0; j < n; j++)
    for (int s = 0; s < S; s++) {
      double vp[3], vm[3], keep = theta[j * S + s];
      theta[j * S + s] = keep + h;
      CHECK_OK(ag_game_exact_evaluate(e, theta));
      memcpy(vp, ag_game_exact_values(e), sizeof vp);
      theta[j * S + s] = keep - h;
      CHECK_OK(ag_game_exact_evaluate(e, theta));
      memcpy(vm, ag_game_exact_values(e), sizeof vm);
      theta[j * S + s] = keep;
      for (int i = 0; i < n; i++) {
        double fd = (vp[i] - vm[i]) / (2 * h);
        double err = fabs(fd - grad[(i * n + j) * S + s]) / (1 + fabs(fd));
        if (err > worst) worst = err;
      }
    }
  CHECK_MSG(worst < 1e-6, "worst relative error %g", worst);
  ag_game_exact_free(e);
}

/* The Hessian block d^2 V^k / (d theta_i d theta_j) times u, for i != j and
 * i == j, against central differences of the exact gradient. */
TEST(mixed_second_derivatives_match_finite_differences) {
  ag_game g;
  CHECK_OK(ag_game_make("sd", 3, &g));
  const int n = 3, S = 9;
  ag_game_exact *e = NULL;
  CHECK_OK(ag_game_exact_new(&g, 0.9, &e));
  if (!e) return;
  ag_rng rng;
  ag_rng_seed(&rng, 9);
  double theta[27], u[9], out[9], gp[81], gm[81];
  random_theta(&rng, n * S, theta);
  random_theta(&rng, S, u);
  const double h = 1e-5;
  double worst = 0;
  for (int k = 0; k < n; k++)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) {
        CHECK_OK(ag_game_exact_evaluate(e, theta));
        CHECK_OK(ag_game_exact_mixed(e, k, i, j, u, out));
        double t2[27];
        memcpy(t2, theta, sizeof t2);
        for (int s = 0; s < S; s++) t2[j * S + s] = theta[j * S + s] + h * u[s];
        CHECK_OK(ag_game_exact_evaluate(e, t2));
        ag_game_exact_gradients(e, gp);
        for (int s = 0; s < S; s++) t2[j * S + s] = theta[j * S + s] - h * u[s];
        CHECK_OK(ag_game_exact_evaluate(e, t2));
        ag_game_exact_gradients(e, gm);
        for (int s = 0; s < S; s++) {
          double fd = (gp[(k * n + i) * S + s] - gm[(k * n + i) * S + s]) / (2 * h);
          double err = fabs(fd - out[s]) / (1 + fabs(fd));
          if (err > worst) worst = err;
        }
      }
  CHECK_MSG(worst < 1e-6, "worst relative error %g", worst);
  CHECK(ag_game_exact_mixed(e, 3, 0, 0, u, out) == AG_ERR_INVALID);
  ag_game_exact_free(e);
}

/* f(theta_i) = sum_{j != i} u_j . grad_{theta_j} V^j with u_j = grad_{theta_j} V^i
 * frozen at the base point; the LOLA term is grad_{theta_i} f. */
TEST(lola_term_matches_finite_differences) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 4, &g));
  const int n = 4, S = 17;
  ag_game_exact *e = NULL;
  ag_shaping_exact *sh = NULL;
  CHECK_OK(ag_game_exact_new(&g, 0.96, &e));
  if (!e) return;
  CHECK_OK(ag_shaping_exact_new(e, &sh));
  if (!sh) return;
  ag_rng rng;
  ag_rng_seed(&rng, 13);
  static double theta[4 * 17], delta[4 * 17], base[4 * 4 * 17], gr[4 * 4 * 17], term[17];
  random_theta(&rng, n * S, theta);
  ag_shaping_learner seats[4] = {AG_LEARNER_LOLA, AG_LEARNER_NAIVE, AG_LEARNER_LOLA,
                                 AG_LEARNER_NAIVE};
  CHECK_OK(ag_shaping_exact_update(sh, seats, 0.5, 2.0, theta, delta));
  ag_game_exact_gradients(e, base);
  const double h = 1e-5;
  double worst = 0;
  for (int i = 0; i < n; i++) {
    CHECK_OK(ag_shaping_exact_update(sh, seats, 0.5, 2.0, theta, delta));
    CHECK_OK(ag_shaping_exact_lola_term(sh, i, term));
    /* The update itself: naive seats ascend alone, LOLA seats add the term. */
    for (int s = 0; s < S; s++) {
      double own = 0.5 * base[(i * n + i) * S + s];
      double want = seats[i] == AG_LEARNER_LOLA ? own + 0.5 * 2.0 * term[s] : own;
      CHECK_NEAR(delta[i * S + s], want, 1e-12);
    }
    for (int s = 0; s < S; s++) {
      double f[2];
      for (int sign = 0; sign < 2; sign++) {
        double keep = theta[i * S + s];
        theta[i * S + s] = keep + (sign ? -h : h);
        CHECK_OK(ag_game_exact_evaluate(e, theta));
        ag_game_exact_gradients(e, gr);
        theta[i * S + s] = keep;
        double acc = 0;
        for (int j = 0; j < n; j++) {
          if (j == i) continue;
          for (int q = 0; q < S; q++) acc += base[(i * n + j) * S + q] * gr[(j * n + j) * S + q];
        }
        f[sign] = acc;
      }
      double fd = (f[0] - f[1]) / (2 * h);
      double err = fabs(fd - term[s]) / (1 + fabs(fd));
      if (err > worst) worst = err;
    }
  }
  CHECK_MSG(worst < 1e-6, "worst relative error %g", worst);
  ag_shaping_exact_free(sh);
  ag_game_exact_free(e);
}

TEST(seat_lists_are_checked) {
  ag_shaping_learner seats[8];
  CHECK_OK(ag_shaping_parse_seats("lola,naive,naive", 3, seats));
  CHECK(seats[0] == AG_LEARNER_LOLA && seats[1] == AG_LEARNER_NAIVE &&
        seats[2] == AG_LEARNER_NAIVE);
  CHECK(ag_shaping_parse_seats("lola,naive", 3, seats) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "2 learners") != NULL);
  CHECK(ag_shaping_parse_seats("lola,naive,naive,lola", 3, seats) == AG_ERR_INVALID);
  CHECK(ag_shaping_parse_seats("lola,sarsa,naive", 3, seats) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "sarsa") != NULL);
  CHECK_OK(ag_shaping_parse_seats("ppo,alld", 2, seats));
  CHECK(seats[0] == AG_LEARNER_PPO && seats[1] == AG_LEARNER_ALLD);
  CHECK(ag_shaping_parse_seats("lola,,naive", 3, seats) == AG_ERR_INVALID);
}

/* Runs 200 exact updates of the classic IPD (Foerster et al. 2018: payoffs
 * -1, -3, 0, -2; gamma 0.96; lr 1; correction 1; theta ~ N(0, 1)) and
 * returns the mean discounted cooperation rate of the two players. */
static double classic_ipd_cooperation(ag_shaping_learner learner, uint64_t seed) {
  const double table[3][2] = {{-1, NAN}, {-3, 0}, {NAN, -2}};
  ag_game g;
  if (ag_game_from_table("classic ipd", 2, table, &g)) return NAN;
  ag_game_exact *e = NULL;
  ag_shaping_exact *sh = NULL;
  if (ag_game_exact_new(&g, 0.96, &e)) return NAN;
  if (ag_shaping_exact_new(e, &sh)) {
    ag_game_exact_free(e);
    return NAN;
  }
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  double theta[10], delta[10], coop[2] = {NAN, NAN};
  random_theta(&rng, 10, theta);
  ag_shaping_learner seats[2] = {learner, learner};
  for (int step = 0; step < 200; step++) {
    if (ag_shaping_exact_update(sh, seats, 1.0, 1.0, theta, delta)) break;
    for (int k = 0; k < 10; k++) theta[k] += delta[k];
  }
  if (!ag_game_exact_evaluate(e, theta)) ag_game_exact_cooperation(e, coop);
  ag_shaping_exact_free(sh);
  ag_game_exact_free(e);
  return (coop[0] + coop[1]) / 2;
}

TEST(classic_ipd_lola_cooperates_more_than_naive) {
  int runs = (int)test_scaled(10, 4);
  double lola = 0, naive = 0;
  int lola_wins = 0;
  for (int r = 0; r < runs; r++) {
    double cl = classic_ipd_cooperation(AG_LEARNER_LOLA, 100 + r);
    double cn = classic_ipd_cooperation(AG_LEARNER_NAIVE, 100 + r);
    CHECK(isfinite(cl) && isfinite(cn));
    lola += cl / runs;
    naive += cn / runs;
    lola_wins += cl > cn;
  }
  fprintf(stderr, "  classic IPD, %d seeds: cooperation LOLA %.3f, naive %.3f, LOLA higher in %d\n",
          runs, lola, naive, lola_wins);
  CHECK(lola > naive + 0.3);
  CHECK(lola > 0.6);
  CHECK(naive < 0.3);
}

int main(void) {
  /* These tests call the closed form directly, outside the shaping entry
   * points that keep its 2^n x 2^n solves off OpenBLAS's threads: on a busy
   * machine the idle BLAS threads' spinning slowed this file 10x. */
  ag_threads_set(1);
  RUN(exact_values_match_power_iteration);
  RUN(exact_values_match_monte_carlo);
  RUN(symmetric_policies_give_equal_values);
  RUN(gradients_match_finite_differences);
  RUN(mixed_second_derivatives_match_finite_differences);
  RUN(lola_term_matches_finite_differences);
  RUN(seat_lists_are_checked);
  RUN(classic_ipd_lola_cooperates_more_than_naive);
  TEST_MAIN_END();
}
