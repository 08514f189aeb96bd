/* The ES shaper and its pieces: OpenES on a quadratic with a known optimum,
 * its ranks, antithetic pairs and determinism; the GRU against the
 * documented formula and parameter layout; meta-episodes in which the
 * shaper's memory persists; ES training that is deterministic per seed,
 * independent of the thread count, and learns a best response; fixed
 * strategies as memory-one policies; LOLA's look-ahead skipping fixed
 * seats. */
#include "agora/games.h"
#include "agora/shaping.h"
#include "methods/shaping/internal.h"
#include "test.h"

static double sig(double z) { return 1 / (1 + exp(-z)); }

/* ---- OpenES ------------------------------------------------------------------ */

#define QDIM 10

/* f(x) = -sum_k a_k (x_k - opt_k)^2 with a_k in [0.5, 2]. */
static double quadratic(const double *x, const double *opt) {
  double f = 0;
  for (int k = 0; k < QDIM; k++) {
    double a = 0.5 + 1.5 * k / (QDIM - 1), d = x[k] - opt[k];
    f -= a * d * d;
  }
  return f;
}

/* Runs OpenES from 0 for `generations`; returns the final mean in out. */
static void run_quadratic(uint64_t seed, int generations, const double *opt, double *out) {
  double start[QDIM] = {0}, fitness[16];
  ag_openes_config cfg = {.dim = QDIM, .population = 16, .sigma = 0.1, .lr = 0.05, .seed = seed};
  ag_openes *es = NULL;
  CHECK_OK(ag_openes_new(&cfg, start, &es));
  if (!es) return;
  for (int g = 0; g < generations; g++) {
    const double *cand = ag_openes_ask(es);
    for (int m = 0; m < 16; m++) fitness[m] = quadratic(cand + m * QDIM, opt);
    CHECK_OK(ag_openes_tell(es, fitness));
  }
  CHECK(ag_openes_generation(es) == generations);
  memcpy(out, ag_openes_mean(es), sizeof(double) * QDIM);
  ag_openes_free(es);
}

TEST(openes_converges_to_the_optimum_of_a_quadratic) {
  double opt[QDIM], mean[QDIM];
  ag_rng rng;
  ag_rng_seed(&rng, 21);
  for (int k = 0; k < QDIM; k++) opt[k] = 2 * ag_rng_normal(&rng);
  double start_dist = 0;
  for (int k = 0; k < QDIM; k++) start_dist += opt[k] * opt[k];
  run_quadratic(3, (int)test_scaled(400, 400), opt, mean);
  double dist = 0;
  for (int k = 0; k < QDIM; k++) dist += (mean[k] - opt[k]) * (mean[k] - opt[k]);
  fprintf(stderr, "  quadratic: distance to the optimum %.4f (from %.3f)\n", sqrt(dist),
          sqrt(start_dist));
  CHECK_MSG(sqrt(dist) < 0.1, "distance %g", sqrt(dist));
}

TEST(openes_is_deterministic_per_seed) {
  double opt[QDIM] = {1, -1, 2, 0, 0.5, -2, 1, 1, -0.5, 0.25}, a[QDIM], b[QDIM], c[QDIM];
  run_quadratic(5, 30, opt, a);
  run_quadratic(5, 30, opt, b);
  run_quadratic(6, 30, opt, c);
  CHECK(!memcmp(a, b, sizeof a));
  CHECK(memcmp(a, c, sizeof a) != 0);
}

TEST(openes_candidates_are_antithetic_pairs) {
  double start[4] = {1, 2, 3, 4};
  ag_openes_config cfg = {.dim = 4, .population = 6, .sigma = 0.5, .lr = 0.1, .seed = 1};
  ag_openes *es = NULL;
  CHECK_OK(ag_openes_new(&cfg, start, &es));
  if (!es) return;
  const double *cand = ag_openes_ask(es);
  for (int p = 0; p < 3; p++)
    for (int k = 0; k < 4; k++) {
      CHECK_NEAR((cand[(2 * p) * 4 + k] + cand[(2 * p + 1) * 4 + k]) / 2, start[k], 1e-12);
      CHECK(cand[(2 * p) * 4 + k] != start[k]);
    }
  ag_openes_free(es);
}

TEST(openes_ranks_are_centred_and_ignore_the_fitness_scale) {
  double f[4] = {3, 1, 2, 2}, r[4];
  ag_openes_centred_ranks(4, f, r);
  /* Sorted: 1 (index 1), 2 (index 2), 2 (index 3), 3 (index 0). */
  CHECK_NEAR(r[1], -0.5, 1e-12);
  CHECK_NEAR(r[2], -1.0 / 6, 1e-12);
  CHECK_NEAR(r[3], 1.0 / 6, 1e-12);
  CHECK_NEAR(r[0], 0.5, 1e-12);
  /* Any increasing transform of the fitness gives the same step. */
  double start[3] = {0.1, -0.2, 0.3}, fit[8], fit2[8];
  ag_openes_config cfg = {.dim = 3, .population = 8, .sigma = 0.2, .lr = 0.1, .seed = 9};
  ag_openes *a = NULL, *b = NULL;
  CHECK_OK(ag_openes_new(&cfg, start, &a));
  CHECK_OK(ag_openes_new(&cfg, start, &b));
  if (!a || !b) return;
  for (int g = 0; g < 5; g++) {
    const double *ca = ag_openes_ask(a);
    ag_openes_ask(b);
    for (int m = 0; m < 8; m++) {
      fit[m] = -(ca[m * 3] * ca[m * 3]) + ca[m * 3 + 1];
      fit2[m] = exp(fit[m]) * 7 - 3;
    }
    CHECK_OK(ag_openes_tell(a, fit));
    CHECK_OK(ag_openes_tell(b, fit2));
  }
  CHECK(!memcmp(ag_openes_mean(a), ag_openes_mean(b), sizeof(double) * 3));
  ag_openes_free(a);
  ag_openes_free(b);
}

TEST(openes_rejects_bad_settings_and_fitness) {
  double start[2] = {0, 0}, bad[4] = {0, NAN, 1, 2};
  ag_openes *es = NULL;
  ag_openes_config odd = {.dim = 2, .population = 3, .sigma = 0.1, .lr = 0.1};
  CHECK(ag_openes_new(&odd, start, &es) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "even") != NULL);
  ag_openes_config zero = {.dim = 2, .population = 4, .sigma = 0, .lr = 0.1};
  CHECK(ag_openes_new(&zero, start, &es) == AG_ERR_INVALID);
  ag_openes_config ok = {.dim = 2, .population = 4, .sigma = 0.1, .lr = 0.1};
  CHECK_OK(ag_openes_new(&ok, start, &es));
  if (!es) return;
  CHECK(ag_openes_tell(es, bad) == AG_ERR_INVALID); /* before ask */
  ag_openes_ask(es);
  CHECK(ag_openes_tell(es, bad) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "fitness[1]") != NULL);
  ag_openes_free(es);
}

/* ---- the GRU ------------------------------------------------------------------- */

/* The documented formula on the documented layout, written out apart. */
TEST(gru_step_matches_the_documented_formula) {
  const int n = 3, H = 5, I = ag_shaper_input_size(n), O = 9;
  CHECK(I == 9 + 6 + 4);
  int count = ag_shaper_param_count(n, H);
  CHECK(count == 3 * H * I + 3 * H * H + 3 * H + O * H + O);
  double *p = malloc(sizeof(double) * count);
  ag_rng rng;
  ag_rng_seed(&rng, 4);
  for (int k = 0; k < count; k++) p[k] = 0.5 * ag_rng_normal(&rng);
  double x[19], h[5], h_ref[5], logits[9], scratch[20];
  for (int k = 0; k < I; k++) x[k] = ag_rng_normal(&rng);
  for (int k = 0; k < H; k++) h[k] = h_ref[k] = 0.3 * ag_rng_normal(&rng);
  shaper_step(p, n, H, x, h, scratch, logits);
  const double *W = p, *U = W + 3 * H * I, *b = U + 3 * H * H, *Wo = b + 3 * H, *bo = Wo + O * H;
  double z[5], r[5], c[5], hn[5];
  for (int g = 0; g < H; g++) {
    double az = b[g], ar = b[H + g];
    for (int k = 0; k < I; k++) {
      az += W[g * I + k] * x[k];
      ar += W[(H + g) * I + k] * x[k];
    }
    for (int k = 0; k < H; k++) {
      az += U[g * H + k] * h_ref[k];
      ar += U[(H + g) * H + k] * h_ref[k];
    }
    z[g] = sig(az);
    r[g] = sig(ar);
  }
  for (int g = 0; g < H; g++) {
    double ac = b[2 * H + g];
    for (int k = 0; k < I; k++) ac += W[(2 * H + g) * I + k] * x[k];
    for (int k = 0; k < H; k++) ac += U[(2 * H + g) * H + k] * r[k] * h_ref[k];
    c[g] = tanh(ac);
  }
  for (int g = 0; g < H; g++) {
    hn[g] = (1 - z[g]) * h_ref[g] + z[g] * c[g];
    CHECK_NEAR(h[g], hn[g], 1e-12);
  }
  for (int o = 0; o < O; o++) {
    double s = bo[o];
    for (int k = 0; k < H; k++) s += Wo[o * H + k] * hn[k];
    CHECK_NEAR(logits[o], s, 1e-12);
  }
  free(p);
}

/* ---- meta-episodes --------------------------------------------------------------- */

typedef struct trace {
  int records;
  double shaper_logits[64][9];
  double sum[3];
} trace;

static ag_status keep_trace(const ag_shaping_record *r, void *ctx) {
  trace *t = ctx;
  if (t->records < 64) memcpy(t->shaper_logits[t->records], r->theta, sizeof(double) * 9);
  for (int i = 0; i < 3; i++) t->sum[i] += r->reward_per_step[i];
  t->records++;
  return AG_OK;
}

/* The shaper emits a new policy each inner episode from its memory and the
 * co-players' progress; its fitness is its mean reward over the episodes. */
TEST(meta_episode_shaper_emits_per_episode_and_fitness_is_its_mean_reward) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  const int H = 6, count = ag_shaper_param_count(3, H);
  double *params = malloc(sizeof(double) * count);
  ag_rng rng;
  ag_rng_seed(&rng, 8);
  ag_shaper_init(3, H, &rng, params);
  ag_shaping_learner seats[3] = {AG_LEARNER_ES, AG_LEARNER_NAIVE, AG_LEARNER_NAIVE};
  ag_shaping_run_config rc = {.game = &g,
                              .seats = seats,
                              .steps = 20,
                              .gamma = 0.96,
                              .lr = 1,
                              .correction = 1,
                              .init_std = 1,
                              .seed = 3,
                              .shaper_params = params,
                              .shaper_hidden = H};
  trace a = {0}, b = {0};
  double mean[3], mean_b[3];
  CHECK_OK(ag_shaping_exact_run_mean(&rc, keep_trace, &a, mean));
  CHECK_OK(ag_shaping_exact_run_mean(&rc, keep_trace, &b, mean_b));
  CHECK(a.records == 21);
  CHECK(!memcmp(a.shaper_logits, b.shaper_logits, sizeof a.shaper_logits));
  CHECK(!memcmp(mean, mean_b, sizeof mean));
  for (int i = 0; i < 3; i++) CHECK_NEAR(mean[i], a.sum[i] / 21, 1e-12);
  int changed = 0;
  for (int t = 1; t < 21; t++)
    changed += memcmp(a.shaper_logits[t], a.shaper_logits[t - 1], 72) != 0;
  CHECK(changed == 20);
  /* Without parameters an ES seat is refused before any work. */
  rc.shaper_params = NULL;
  CHECK(ag_shaping_exact_run(&rc, NULL, NULL) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "es") != NULL);
  free(params);
}

/* The hidden state carries over between inner episodes: zeroing the
 * recurrent weights U changes what the shaper emits after the first
 * episode but not in it (h starts at 0, so U h = 0 there). */
TEST(shaper_memory_persists_across_inner_episodes) {
  ag_game g;
  CHECK_OK(ag_game_make("sh", 3, &g));
  const int H = 6, I = ag_shaper_input_size(3), count = ag_shaper_param_count(3, H);
  double *params = malloc(sizeof(double) * count), *no_memory = malloc(sizeof(double) * count);
  ag_rng rng;
  ag_rng_seed(&rng, 12);
  ag_shaper_init(3, H, &rng, params);
  memcpy(no_memory, params, sizeof(double) * count);
  memset(no_memory + 3 * H * I, 0, sizeof(double) * 3 * H * H);
  ag_shaping_learner seats[3] = {AG_LEARNER_ES, AG_LEARNER_NAIVE, AG_LEARNER_NAIVE};
  ag_shaping_run_config rc = {.game = &g,
                              .seats = seats,
                              .steps = 5,
                              .gamma = 0.96,
                              .lr = 1,
                              .correction = 1,
                              .init_std = 1,
                              .seed = 1,
                              .shaper_params = params,
                              .shaper_hidden = H};
  trace a = {0}, b = {0};
  CHECK_OK(ag_shaping_exact_run(&rc, keep_trace, &a));
  rc.shaper_params = no_memory;
  CHECK_OK(ag_shaping_exact_run(&rc, keep_trace, &b));
  CHECK(!memcmp(a.shaper_logits[0], b.shaper_logits[0], 72));
  CHECK(memcmp(a.shaper_logits[1], b.shaper_logits[1], 72) != 0);
  free(params);
  free(no_memory);
}

/* ---- ES training -------------------------------------------------------------------- */

static ag_status keep_reports(const ag_shaping_es_report *r, void *ctx) {
  double *fitness = ctx;
  fitness[r->generation - 1] = r->mean_fitness[0];
  return AG_OK;
}

TEST(es_training_is_deterministic_and_independent_of_threads) {
  ag_game g;
  CHECK_OK(ag_game_make("tc", 3, &g));
  ag_shaping_learner seats[3] = {AG_LEARNER_ES, AG_LEARNER_ES, AG_LEARNER_NAIVE};
  ag_shaping_run_config rc = {.game = &g,
                              .seats = seats,
                              .steps = 8,
                              .gamma = 0.96,
                              .lr = 1,
                              .correction = 1,
                              .init_std = 1};
  ag_shaping_es_config es = ag_shaping_es_defaults();
  es.generations = 3;
  es.population = 6;
  es.hidden = 4;
  es.seed = 77;
  int count = 2 * ag_shaper_param_count(3, 4);
  double *a = malloc(sizeof(double) * count), *b = malloc(sizeof(double) * count);
  double *c = malloc(sizeof(double) * count);
  double fa[3], fb[3];
  es.threads = 1;
  CHECK_OK(ag_shaping_es_train(&rc, &es, a, keep_reports, fa));
  es.threads = 2;
  CHECK_OK(ag_shaping_es_train(&rc, &es, b, keep_reports, fb));
  CHECK(!memcmp(a, b, sizeof(double) * count));
  CHECK(!memcmp(fa, fb, sizeof fa));
  es.seed = 78;
  CHECK_OK(ag_shaping_es_train(&rc, &es, c, NULL, NULL));
  CHECK(memcmp(a, c, sizeof(double) * count) != 0);
  /* No ES seat: nothing to train. */
  seats[0] = seats[1] = AG_LEARNER_NAIVE;
  CHECK(ag_shaping_es_train(&rc, &es, c, NULL, NULL) == AG_ERR_INVALID);
  free(a);
  free(b);
  free(c);
}

/* Against always-cooperate co-players the best response is to defect
 * everywhere: ES training must move the shaper towards it. */
TEST(es_training_learns_to_exploit_always_cooperate) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  ag_shaping_learner seats[3] = {AG_LEARNER_ES, AG_LEARNER_ALLC, AG_LEARNER_ALLC};
  ag_shaping_run_config rc = {.game = &g,
                              .seats = seats,
                              .steps = 5,
                              .gamma = 0.96,
                              .lr = 1,
                              .correction = 1,
                              .init_std = 1,
                              .seed = 5,
                              .shaper_hidden = 8};
  ag_shaping_es_config es = ag_shaping_es_defaults();
  es.generations = (int)test_scaled(60, 30);
  es.population = 16;
  es.hidden = 8;
  es.lr = 0.1;
  es.seed = 4;
  int count = ag_shaper_param_count(3, 8);
  double *params = malloc(sizeof(double) * count), *initial = malloc(sizeof(double) * count);
  double before[3], after[3];
  CHECK_OK(ag_shaping_es_train(&rc, &es, params, NULL, NULL));
  es.generations = 0; /* the starting point of the same training */
  CHECK_OK(ag_shaping_es_train(&rc, &es, initial, NULL, NULL));
  rc.shaper_params = initial;
  CHECK_OK(ag_shaping_exact_run_mean(&rc, NULL, NULL, before));
  rc.shaper_params = params;
  CHECK_OK(ag_shaping_exact_run_mean(&rc, NULL, NULL, after));
  fprintf(stderr, "  vs two always-cooperate: shaper reward %.3f (untrained %.3f, best 5)\n",
          after[0], before[0]);
  /* IPD n = 3: defecting against two cooperators pays 5, cooperating 4. */
  CHECK(after[0] > 4.8);
  CHECK(after[0] > before[0] + 0.2);
  free(params);
  free(initial);
}

/* ---- fixed strategies --------------------------------------------------------------- */

TEST(fixed_strategies_are_the_documented_memory_one_policies) {
  double l[33];
  /* n = 4: the own action is bit 3, co-players bits 2..0. */
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_TFT, 4, l));
  CHECK(l[0] > 0 && l[16] > 0); /* all cooperated; start */
  CHECK(l[8] > 0);              /* only I defected: my own action is ignored */
  CHECK(l[1] < 0 && l[4] < 0);  /* any co-player defected */
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_TFT_MAJORITY, 4, l));
  CHECK(l[1] > 0 && l[8 + 2] > 0);         /* 1 of 3 co-players defected */
  CHECK(l[3] < 0 && l[5] < 0 && l[7] < 0); /* 2 or 3 of 3 */
  CHECK(l[16] > 0);
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_TFT_MAJORITY, 3, l));
  CHECK(l[1] > 0 && l[3] < 0); /* 1 of 2 is no strict majority; 2 of 2 is */
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_ALLD, 3, l));
  for (int s = 0; s < 9; s++) CHECK(l[s] == -AG_SHAPING_FIXED_LOGIT);
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_ALLC, 3, l));
  for (int s = 0; s < 9; s++) CHECK(l[s] == AG_SHAPING_FIXED_LOGIT);
  CHECK(ag_shaping_fixed_logits(AG_LEARNER_LOLA, 3, l) == AG_ERR_INVALID);
  ag_shaping_learner seats[5];
  CHECK_OK(ag_shaping_parse_seats("es,allc,alld,tft,tft-maj", 5, seats));
  CHECK(seats[0] == AG_LEARNER_ES && seats[1] == AG_LEARNER_ALLC && seats[2] == AG_LEARNER_ALLD &&
        seats[3] == AG_LEARNER_TFT && seats[4] == AG_LEARNER_TFT_MAJORITY);
  CHECK(ag_shaping_parse_seats("tft,tft-majority,naive", 3, seats) == AG_ERR_INVALID);
}

typedef struct last_values {
  double values[3], theta[27];
} last_values;

static ag_status keep_values(const ag_shaping_record *r, void *ctx) {
  last_values *l = ctx;
  memcpy(l->values, r->values, sizeof l->values);
  memcpy(l->theta, r->theta, sizeof l->theta);
  return AG_OK;
}

/* Closed forms by hand (IPD, n = 3, gamma 0.9: a defector among k
 * defectors gets 2(3-k)+1, a cooperator 2(2-k)):
 *   tft vs two alld: C then D forever: 0 + 0.9/(1-0.9) * 1 = 9;
 *   alld vs tft, alld: 3 then 1 forever: 3 + 9 = 12;
 *   three tft: cooperate forever: 4 / 0.1 = 40; fixed seats never move. */
TEST(fixed_seats_match_closed_forms_and_never_move) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  ag_shaping_learner seats[3] = {AG_LEARNER_TFT, AG_LEARNER_ALLD, AG_LEARNER_ALLD};
  ag_shaping_run_config rc = {.game = &g,
                              .seats = seats,
                              .steps = 3,
                              .gamma = 0.9,
                              .lr = 1,
                              .correction = 1,
                              .init_std = 1,
                              .seed = 1};
  last_values l;
  CHECK_OK(ag_shaping_exact_run(&rc, keep_values, &l));
  CHECK_NEAR(l.values[0], 9, 1e-9);
  CHECK_NEAR(l.values[1], 12, 1e-9);
  double want[9];
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_TFT, 3, want));
  CHECK(!memcmp(l.theta, want, sizeof want));
  seats[1] = seats[2] = AG_LEARNER_TFT;
  CHECK_OK(ag_shaping_exact_run(&rc, keep_values, &l));
  for (int i = 0; i < 3; i++) CHECK_NEAR(l.values[i], 40, 1e-9);
  /* tft-maj with one alld: the two tft-maj keep cooperating (1 of 2 is no
   * majority), so the defector gets 2(3-1)+1 = 5 per step: 50. */
  seats[0] = AG_LEARNER_ALLD;
  seats[1] = seats[2] = AG_LEARNER_TFT_MAJORITY;
  CHECK_OK(ag_shaping_exact_run(&rc, keep_values, &l));
  CHECK_NEAR(l.values[0], 50, 1e-9);
  CHECK_NEAR(l.values[1], 20, 1e-9); /* 2(2-1) = 2 per step */
}

/* A LOLA seat looks ahead through learning co-players only: with a fixed
 * co-player its term is the sum over the learning ones. */
TEST(lola_look_ahead_skips_fixed_seats) {
  ag_game g;
  CHECK_OK(ag_game_make("ipd", 3, &g));
  ag_game_exact *e = NULL;
  ag_shaping_exact *s = NULL;
  CHECK_OK(ag_game_exact_new(&g, 0.96, &e));
  if (!e) return;
  CHECK_OK(ag_shaping_exact_new(e, &s));
  if (!s) return;
  double theta[27], delta[27], grad[81], term[9], part[9];
  ag_rng rng;
  ag_rng_seed(&rng, 2);
  for (int k = 0; k < 27; k++) theta[k] = ag_rng_normal(&rng);
  CHECK_OK(ag_shaping_fixed_logits(AG_LEARNER_TFT, 3, theta + 18));
  ag_shaping_learner seats[3] = {AG_LEARNER_LOLA, AG_LEARNER_NAIVE, AG_LEARNER_TFT};
  CHECK_OK(ag_shaping_exact_update(s, seats, 1, 1, theta, delta));
  CHECK_OK(ag_shaping_exact_lola_term(s, 0, term));
  ag_game_exact_gradients(e, grad);
  /* Only j = 1: (d^2 V^1 / d theta_0 d theta_1) grad_{theta_1} V^0. */
  CHECK_OK(ag_game_exact_mixed(e, 1, 0, 1, grad + (0 * 3 + 1) * 9, part));
  for (int k = 0; k < 9; k++) CHECK_NEAR(term[k], part[k], 1e-12);
  for (int k = 0; k < 9; k++) CHECK(delta[18 + k] == 0);
  ag_shaping_exact_free(s);
  ag_game_exact_free(e);
}

int main(void) {
  RUN(openes_converges_to_the_optimum_of_a_quadratic);
  RUN(openes_is_deterministic_per_seed);
  RUN(openes_candidates_are_antithetic_pairs);
  RUN(openes_ranks_are_centred_and_ignore_the_fitness_scale);
  RUN(openes_rejects_bad_settings_and_fitness);
  RUN(gru_step_matches_the_documented_formula);
  RUN(meta_episode_shaper_emits_per_episode_and_fitness_is_its_mean_reward);
  RUN(shaper_memory_persists_across_inner_episodes);
  RUN(es_training_is_deterministic_and_independent_of_threads);
  RUN(es_training_learns_to_exploit_always_cooperate);
  RUN(fixed_strategies_are_the_documented_memory_one_policies);
  RUN(fixed_seats_match_closed_forms_and_never_move);
  RUN(lola_look_ahead_skips_fixed_seats);
  TEST_MAIN_END();
}
