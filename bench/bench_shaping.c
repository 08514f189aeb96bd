/* Opponent-shaping speed (issue 7): exact updates per second
 * (ag_shaping_exact_update: one evaluation of the closed form, every
 * player's gradient, and for LOLA seats the exact second-order term) at
 * n = 3, 4, 5; ES-shaper meta-episodes per second at n = 5 (one ES shaper
 * and four naive learners, `steps` inner episodes each), one at a time and
 * as ES training evaluates them, on 1 thread and on all threads; and the
 * sampled mode's environment steps per second (memory-one policies, n = 5)
 * on 1 thread and on all.
 *
 * The anchor: all-LOLA updates at n = 5 with OpenBLAS threads left on (what
 * the library did before running these tiny solves serially).
 *
 * Usage: bench_shaping [seconds per measurement] [steps per meta-episode]
 *        (defaults 2 100). The last line is one JSON object. */
#include "agora/shaping.h"
#include "methods/shaping/internal.h" /* shaping_blas_serial_begin, as the runs use it */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Exact updates per second for one seat list on the ipd of n players. */
static double updates_per_second(int n, const ag_shaping_learner *seats, double seconds,
                                 bool serial_blas) {
  ag_game g;
  ag_game_exact *e = NULL;
  ag_shaping_exact *s = NULL;
  if (ag_game_make("ipd", n, &g) || ag_game_exact_new(&g, 0.96, &e) ||
      ag_shaping_exact_new(e, &s)) {
    fprintf(stderr, "bench_shaping: %s\n", ag_error_message());
    exit(1);
  }
  int count = n * ag_game_state_count(n);
  double *theta = malloc(sizeof(double) * (size_t)count);
  double *delta = malloc(sizeof(double) * (size_t)count);
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  for (int k = 0; k < count; k++) theta[k] = ag_rng_normal(&rng);
  long done = 0;
  int blas = serial_blas ? shaping_blas_serial_begin() : 0;
  double t0 = ag_time_seconds(), elapsed = 0;
  while (elapsed < seconds) {
    for (int r = 0; r < 20; r++) {
      if (ag_shaping_exact_update(s, seats, 1.0, 1.0, theta, delta)) {
        fprintf(stderr, "bench_shaping: %s\n", ag_error_message());
        exit(1);
      }
      /* Keep the logits moving but bounded, as learning does. */
      for (int k = 0; k < count; k++) theta[k] = 0.999 * theta[k] + 0.01 * delta[k];
    }
    done += 20;
    elapsed = ag_time_seconds() - t0;
  }
  shaping_blas_serial_end(blas);
  free(theta);
  free(delta);
  ag_shaping_exact_free(s);
  ag_game_exact_free(e);
  return done / elapsed;
}

typedef struct es_clock {
  double t0, first, last;
  int generations;
} es_clock;

static ag_status time_generation(const ag_shaping_es_report *r, void *ctx) {
  es_clock *c = ctx;
  double now = ag_time_seconds();
  if (r->generation == 1) c->first = now; /* the first generation warms caches and threads */
  c->last = now;
  c->generations = r->generation;
  return AG_OK;
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 2;
  int steps = argc > 2 ? atoi(argv[2]) : 100;
  if (!(seconds > 0) || steps < 1) {
    fprintf(stderr, "usage: bench_shaping [seconds per measurement] [steps per meta-episode]\n");
    return 2;
  }
  ag_shaping_learner naive[8], lola[8], one_lola[8];
  for (int i = 0; i < 8; i++) {
    naive[i] = AG_LEARNER_NAIVE;
    lola[i] = AG_LEARNER_LOLA;
    one_lola[i] = i == 0 ? AG_LEARNER_LOLA : AG_LEARNER_NAIVE;
  }
  double naive_rate[6] = {0}, lola_rate[6] = {0}, one_lola_rate[6] = {0};
  for (int n = 3; n <= 5; n++) {
    naive_rate[n] = updates_per_second(n, naive, seconds, true);
    one_lola_rate[n] = updates_per_second(n, one_lola, seconds, true);
    lola_rate[n] = updates_per_second(n, lola, seconds, true);
    printf("n = %d: exact updates/s: all naive %9.0f, 1 LOLA + naive %9.0f, all LOLA %9.0f\n", n,
           naive_rate[n], one_lola_rate[n], lola_rate[n]);
  }

  /* The anchor: the same all-LOLA updates with OpenBLAS left to fan the
   * 32 x 32 solves out to AG_THREADS threads, as before the shaping entry
   * points made them serial. */
  double threaded = updates_per_second(5, lola, seconds, false);
  printf("n = 5: all LOLA with OpenBLAS threads (%d): %9.0f updates/s; serial / threaded = %.1f\n",
         ag_threads_get(), threaded, lola_rate[5] / threaded);

  /* ES shaper at n = 5: one meta-episode at a time (1 thread). */
  const int n = 5;
  ag_game g;
  if (ag_game_make("ipd", n, &g)) return 1;
  ag_shaping_learner seats[5] = {AG_LEARNER_ES, AG_LEARNER_NAIVE, AG_LEARNER_NAIVE,
                                 AG_LEARNER_NAIVE, AG_LEARNER_NAIVE};
  int count = ag_shaper_param_count(n, AG_SHAPER_DEFAULT_HIDDEN);
  double *params = malloc(sizeof(double) * (size_t)count);
  ag_rng rng;
  ag_rng_seed(&rng, 2);
  ag_shaper_init(n, AG_SHAPER_DEFAULT_HIDDEN, &rng, params);
  ag_shaping_run_config run = {.game = &g,
                               .seats = seats,
                               .steps = steps,
                               .gamma = 0.96,
                               .lr = 1,
                               .correction = 1,
                               .init_std = 1,
                               .shaper_params = params};
  long episodes = 0;
  double t0 = ag_time_seconds(), elapsed = 0;
  while (elapsed < seconds) {
    run.seed = (uint64_t)episodes;
    if (ag_shaping_exact_run(&run, NULL, NULL)) {
      fprintf(stderr, "bench_shaping: %s\n", ag_error_message());
      return 1;
    }
    episodes++;
    elapsed = ag_time_seconds() - t0;
  }
  double meta_rate = episodes / elapsed;
  printf("n = 5: ES shaper meta-episodes/s (%d inner episodes, 1 thread): %.1f (%.0f inner "
         "episodes/s)\n",
         steps, meta_rate, meta_rate * (steps + 1));

  /* ES training throughput on 1 thread and on all threads (population 32). */
  double train_rate[2] = {0};
  int thread_counts[2] = {1, ag_threads_get()};
  for (int t = 0; t < 2; t++) {
    ag_shaping_es_config es = ag_shaping_es_defaults();
    es.threads = thread_counts[t];
    /* Enough generations for about `seconds` after the first. */
    es.generations = 1 + (int)(seconds * meta_rate * thread_counts[t] / es.population) + 1;
    es_clock clock = {ag_time_seconds(), 0, 0, 0};
    if (ag_shaping_es_train(&run, &es, params, time_generation, &clock)) {
      fprintf(stderr, "bench_shaping: %s\n", ag_error_message());
      return 1;
    }
    train_rate[t] = (clock.generations - 1) * es.population / (clock.last - clock.first);
    printf("n = 5: ES training meta-episodes/s on %d thread%s: %.1f (%d generations x %d)\n",
           thread_counts[t], thread_counts[t] > 1 ? "s" : "", train_rate[t], clock.generations,
           es.population);
  }
  free(params);

  /* Sampled mode: environment steps per second (one step = every player of
   * one episode acting), memory-one policies at n = 5, 4096 episodes of 100
   * steps a call, on 1 thread and on all. */
  double sampled_rate[2] = {0};
  int S = ag_game_state_count(n);
  double theta[5 * 33], mean[5];
  for (int k = 0; k < n * S; k++) theta[k] = ag_rng_normal(&rng);
  for (int t = 0; t < 2; t++) {
    ag_threads_set(thread_counts[t]);
    long calls = 0;
    double start = ag_time_seconds(), took = 0;
    while (took < seconds) {
      if (ag_game_sample_memory_one(&g, theta, 0.96, 4096, 100, (uint64_t)calls, mean, NULL)) {
        fprintf(stderr, "bench_shaping: %s\n", ag_error_message());
        return 1;
      }
      calls++;
      took = ag_time_seconds() - start;
    }
    sampled_rate[t] = calls * 4096.0 * 100.0 / took;
    printf("n = 5: sampled environment steps/s on %d thread%s: %.3g\n", thread_counts[t],
           thread_counts[t] > 1 ? "s" : "", sampled_rate[t]);
  }
  ag_threads_set(thread_counts[1]);

  /* Sampled mode with learning: five PPO seats (GRU 16) at n = 5, batches of
   * 32 episodes x 100 steps, each followed by 4 PPO epochs per seat. */
  ag_shaping_learner ppo_seats[5];
  for (int i = 0; i < 5; i++) ppo_seats[i] = AG_LEARNER_PPO;
  ag_shaping_sampled_config pc = {
      .game = &g, .seats = ppo_seats, .iterations = 3, .seed = 1, .ppo = ag_ppo_defaults()};
  double ppo_start = ag_time_seconds();
  if (ag_shaping_sampled_run(&pc, NULL, NULL)) {
    fprintf(stderr, "bench_shaping: %s\n", ag_error_message());
    return 1;
  }
  double ppo_rate = (pc.iterations + 1) * pc.ppo.episodes * (double)pc.ppo.steps /
                    (ag_time_seconds() - ppo_start);
  printf("n = 5: five PPO learners, environment steps/s with learning (1 thread): %.3g\n",
         ppo_rate);
  printf("{\"lola_updates_per_s_n5\":%.1f,\"lola_updates_per_s_n5_blas_threads\":%.1f,"
         "\"one_lola_updates_per_s_n5\":%.1f,"
         "\"naive_updates_per_s_n5\":%.1f,\"es_meta_episodes_per_s_n5\":%.2f,"
         "\"es_train_meta_episodes_per_s_1_thread\":%.2f,\"es_train_meta_episodes_per_s_%d_"
         "threads\":%.2f,\"sampled_steps_per_s_1_thread\":%.4g,\"sampled_steps_per_s_%d_"
         "threads\":%.4g,\"ppo_steps_per_s_n5\":%.4g,\"steps\":%d}\n",
         lola_rate[5], threaded, one_lola_rate[5], naive_rate[5], meta_rate, train_rate[0],
         thread_counts[1], train_rate[1], sampled_rate[0], thread_counts[1], sampled_rate[1],
         ppo_rate, steps);
  return 0;
}
