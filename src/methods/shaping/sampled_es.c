/* Training the sampled mode's per-step shaper (shaping.h): OpenES over
 * runs of ag_shaping_sampled_run_mean, each es seat with its own OpenES on
 * its own mean reward per step, candidates evaluated in parallel. */
#include "internal.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ag_status ag_shaping_sampled_es_train(const ag_shaping_sampled_config *run,
                                      const ag_shaping_es_config *es, double *params,
                                      ag_shaping_es_observer observe, void *ctx) {
  if (!run || !es || !params || !run->game || !run->seats)
    return ag_error_set(AG_ERR_INVALID, "ag_shaping_sampled_es_train: NULL argument");
  ag_status st = shaping_es_check(es);
  if (st) return st;
  int n = run->game->players, H = es->hidden > 0 ? es->hidden : AG_SHAPER_DEFAULT_HIDDEN;
  int K = 0, seat_of[AG_GAME_MAX_PLAYERS];
  for (int i = 0; i < n; i++)
    if (run->seats[i] == AG_LEARNER_ES) seat_of[K++] = i;
  if (K == 0) return ag_error_set(AG_ERR_INVALID, "es: no 'es' seat to train");
  const int D = ag_shaping_sampled_shaper_param_count(n, H), pop = es->population;
  /* The configuration is checked once, with the initial parameters. */
  for (int k = 0; k < K; k++) {
    ag_rng rng;
    ag_rng_seed2(&rng, es->seed, shaping_mix_seed(SHAPING_STREAM_INIT, (uint64_t)k, 0));
    ag_shaping_sampled_shaper_init(n, H, &rng, params + (size_t)k * D);
  }
  ag_shaping_sampled_config rc = *run;
  rc.shaper_params = params;
  rc.shaper_hidden = H;
  st = ag_shaping_sampled_check(&rc);
  if (st) return st;
  int threads = es->threads > 0 ? es->threads : ag_threads_get();
  if (threads < 1) threads = 1;
  if (threads > pop) threads = pop;
  ag_openes *opt[AG_GAME_MAX_PLAYERS] = {0};
  double *cand = calloc((size_t)pop * K * D, sizeof(double)); /* per member (K, D) */
  double *fitness = calloc((size_t)K * pop, sizeof(double));  /* (K, pop) */
  ag_status *member_st = calloc((size_t)pop, sizeof(ag_status));
  char first_error[512] = "";
  if (!cand || !fitness || !member_st) st = ag_error_set(AG_ERR_NOMEM, "es: out of memory");
  for (int k = 0; k < K && !st; k++) {
    ag_openes_config oc = {.dim = D,
                           .population = pop,
                           .sigma = es->sigma,
                           .lr = es->lr,
                           .seed =
                               shaping_mix_seed(es->seed, SHAPING_STREAM_DIRECTIONS, (uint64_t)k)};
    st = ag_openes_new(&oc, params + (size_t)k * D, &opt[k]);
  }
  for (int gen = 0; gen < es->generations && !st; gen++) {
    for (int k = 0; k < K; k++) {
      const double *asked = ag_openes_ask(opt[k]);
      for (int m = 0; m < pop; m++)
        memcpy(cand + ((size_t)m * K + k) * D, asked + (size_t)m * D, sizeof(double) * (size_t)D);
    }
    memset(fitness, 0, sizeof(double) * (size_t)K * pop);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (int m = 0; m < pop; m++) {
      ag_shaping_sampled_config c = rc;
      c.shaper_params = cand + (size_t)m * K * D;
      double reward[AG_GAME_MAX_PLAYERS];
      ag_status ms = AG_OK;
      for (int e = 0; e < es->episodes && !ms; e++) {
        /* Every candidate of a generation meets the same co-player starts. */
        c.seed =
            shaping_mix_seed(es->seed, SHAPING_STREAM_STARTS, (uint64_t)gen * es->episodes + e);
        ms = ag_shaping_sampled_run_mean(&c, NULL, NULL, reward);
        for (int k = 0; k < K && !ms; k++)
          fitness[(size_t)k * pop + m] += reward[seat_of[k]] / es->episodes;
      }
      member_st[m] = ms;
      if (ms) shaping_es_note_error(first_error, sizeof first_error);
    }
    st = shaping_es_generation_end(opt, K, pop, member_st, first_error, fitness, gen + 1, es,
                                   observe, ctx);
  }
  for (int k = 0; k < K; k++) {
    if (!st && opt[k])
      memcpy(params + (size_t)k * D, ag_openes_mean(opt[k]), sizeof(double) * (size_t)D);
    ag_openes_free(opt[k]);
  }
  free(cand);
  free(fitness);
  free(member_st);
  return st;
}
