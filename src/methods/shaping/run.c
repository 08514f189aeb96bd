/* A learning run over memory-one policies with exact values (shaping.h):
 * learners step, fixed seats stay, ES shapers emit a policy per inner
 * episode from their GRU. The same loop is the ES shaper's meta-episode. */
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's thread control (cblas.h of OpenBLAS declares the same). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

int shaping_blas_serial_begin(void) {
  if (omp_in_parallel()) return 0; /* OpenBLAS is serial in parallel regions already */
  int previous = openblas_get_num_threads();
  if (previous <= 1) return 0;
  openblas_set_num_threads(1);
  return previous;
}

void shaping_blas_serial_end(int previous) {
  if (previous > 1) openblas_set_num_threads(previous);
}

static ag_status check_config(const ag_shaping_run_config *cfg) {
  if (!cfg || !cfg->game || !cfg->seats)
    return ag_error_set(AG_ERR_INVALID, "shaping: NULL game or seats");
  int n = cfg->game->players;
  if (n < AG_GAME_MIN_PLAYERS || n > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "shaping: players must be %d..%d, got %d",
                        AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS, n);
  for (int i = 0; i < n; i++)
    if ((int)cfg->seats[i] < 0 || cfg->seats[i] >= AG_LEARNER_COUNT)
      return ag_error_set(AG_ERR_INVALID, "shaping: seat %d has no valid kind (%d)", i,
                          (int)cfg->seats[i]);
    else if (cfg->seats[i] == AG_LEARNER_PPO)
      return ag_error_set(AG_ERR_INVALID,
                          "shaping: seat %d is 'ppo', a sampled learner with no closed form: run "
                          "it in the sampled mode (ag_shaping_sampled_run, --mode sampled)",
                          i);
  if (cfg->steps < 0)
    return ag_error_set(AG_ERR_INVALID, "shaping: steps must be >= 0, got %d", cfg->steps);
  if (!(cfg->gamma >= 0 && cfg->gamma < 1))
    return ag_error_set(AG_ERR_INVALID, "shaping: the discount must be in [0, 1), got %g",
                        cfg->gamma);
  if (!isfinite(cfg->lr) || !isfinite(cfg->correction) || !isfinite(cfg->init_std) ||
      cfg->init_std < 0)
    return ag_error_set(AG_ERR_INVALID, "shaping: lr, correction and init_std must be finite "
                                        "(init_std >= 0)");
  if (cfg->shaper_hidden < 0 || cfg->shaper_hidden > 4096)
    return ag_error_set(AG_ERR_INVALID, "shaping: shaper hidden size must be 1..4096, got %d",
                        cfg->shaper_hidden);
  return AG_OK;
}

static int es_seat_count(const ag_shaping_run_config *cfg) {
  int k = 0;
  for (int i = 0; i < cfg->game->players; i++) k += cfg->seats[i] == AG_LEARNER_ES;
  return k;
}

ag_status ag_shaping_run_check(const ag_shaping_run_config *cfg) {
  ag_status st = check_config(cfg);
  if (st) return st;
  if (es_seat_count(cfg) > 0 && !cfg->shaper_params)
    return ag_error_set(AG_ERR_INVALID, "shaping: an 'es' seat needs trained shaper parameters "
                                        "(ag_shaping_es_train)");
  return AG_OK;
}

void shaping_episode_free(shaping_episode *w) {
  if (!w) return;
  ag_shaping_exact_free(w->learn);
  ag_game_exact_free(w->exact);
  free(w->theta);
  free(w->delta);
  free(w->per_step);
  free(w->coop);
  free(w->sum);
  free(w->prev_reward);
  free(w->prev_occ);
  free(w->h);
  free(w->x);
  free(w->gates);
  free(w);
}

ag_status shaping_episode_new(const ag_shaping_run_config *cfg, shaping_episode **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "shaping_episode_new: NULL argument");
  *out = NULL;
  ag_status st = check_config(cfg);
  if (st) return st;
  shaping_episode *w = calloc(1, sizeof *w);
  if (!w) return ag_error_set(AG_ERR_NOMEM, "shaping: out of memory");
  w->cfg = *cfg;
  w->game = *cfg->game;
  w->n = w->game.players;
  memcpy(w->seats, cfg->seats, sizeof(ag_shaping_learner) * (size_t)w->n);
  w->cfg.game = &w->game;
  w->cfg.seats = w->seats;
  w->N = 1 << w->n;
  w->S = w->N + 1;
  w->hidden = cfg->shaper_hidden > 0 ? cfg->shaper_hidden : AG_SHAPER_DEFAULT_HIDDEN;
  w->inputs = ag_shaper_input_size(w->n);
  w->param_count = ag_shaper_param_count(w->n, w->hidden);
  for (int i = 0; i < w->n; i++)
    if (w->seats[i] == AG_LEARNER_ES) w->es_seat[w->es_count++] = i;
  w->payoff_scale = 0;
  for (int k = 0; k <= w->n; k++)
    for (int a = 0; a < 2; a++)
      if (isfinite(w->game.payoff[k][a]) && fabs(w->game.payoff[k][a]) > w->payoff_scale)
        w->payoff_scale = fabs(w->game.payoff[k][a]);
  if (w->payoff_scale == 0) w->payoff_scale = 1;

  size_t n = (size_t)w->n, count = n * (size_t)w->S;
  st = ag_game_exact_new(&w->game, cfg->gamma, &w->exact);
  if (!st) st = ag_shaping_exact_new(w->exact, &w->learn);
  if (st) {
    shaping_episode_free(w);
    return st;
  }
  w->theta = calloc(count, sizeof(double));
  w->delta = calloc(count, sizeof(double));
  w->per_step = calloc(n, sizeof(double));
  w->coop = calloc(n, sizeof(double));
  w->sum = calloc(n, sizeof(double));
  w->prev_reward = calloc(n, sizeof(double));
  w->prev_occ = calloc((size_t)w->N, sizeof(double));
  w->h = calloc((size_t)(w->es_count ? w->es_count : 1) * (size_t)w->hidden, sizeof(double));
  w->x = calloc((size_t)w->inputs, sizeof(double));
  w->gates = calloc(4 * (size_t)w->hidden, sizeof(double));
  if (!w->theta || !w->delta || !w->per_step || !w->coop || !w->sum || !w->prev_reward ||
      !w->prev_occ || !w->h || !w->x || !w->gates) {
    shaping_episode_free(w);
    return ag_error_set(AG_ERR_NOMEM, "shaping: out of memory");
  }
  *out = w;
  return AG_OK;
}

ag_status shaping_episode_run(shaping_episode *w, const double *shaper_params, uint64_t seed,
                              ag_shaping_observer observe, void *ctx, double *mean_reward) {
  if (w->es_count > 0 && !shaper_params)
    return ag_error_set(AG_ERR_INVALID, "shaping: an 'es' seat needs shaper parameters");
  const int n = w->n, S = w->S, count = n * S, steps = w->cfg.steps;
  const double gamma = w->cfg.gamma;
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int k = 0; k < count; k++) w->theta[k] = w->cfg.init_std * ag_rng_normal(&rng);
  for (int i = 0; i < n; i++)
    if (ag_shaping_learner_is_fixed(w->seats[i])) {
      ag_status st = ag_shaping_fixed_logits(w->seats[i], n, w->theta + (size_t)i * S);
      if (st) return st;
    }
  memset(w->h, 0, sizeof(double) * (size_t)(w->es_count ? w->es_count : 1) * w->hidden);
  memset(w->sum, 0, sizeof(double) * (size_t)n);
  for (int step = 0;; step++) {
    /* Each shaper reads the co-players' current policies and last episode's
     * outcome, and emits this episode's policy into its row of theta. */
    for (int k = 0; k < w->es_count; k++) {
      int seat = w->es_seat[k];
      shaper_features(w, seat, step, step == 0);
      shaper_step(shaper_params + (size_t)k * w->param_count, n, w->hidden, w->x,
                  w->h + (size_t)k * w->hidden, w->gates, w->theta + (size_t)seat * S);
    }
    /* The update evaluates the game at theta, which the record reports. */
    ag_status st = ag_shaping_exact_update(w->learn, w->seats, w->cfg.lr, w->cfg.correction,
                                           w->theta, w->delta);
    if (st) return st;
    const double *values = ag_game_exact_values(w->exact);
    ag_game_exact_cooperation(w->exact, w->coop);
    ag_shaping_record rec = {.step = step,
                             .players = n,
                             .states = S,
                             .theta = w->theta,
                             .values = values,
                             .reward_per_step = w->per_step,
                             .cooperation = w->coop,
                             .occupancy = ag_game_exact_occupancy(w->exact)};
    for (int i = 0; i < n; i++) {
      w->per_step[i] = (1 - gamma) * values[i];
      w->sum[i] += w->per_step[i];
      rec.welfare += w->per_step[i] / n;
      rec.cooperation_rate += w->coop[i] / n;
    }
    if (observe && (st = observe(&rec, ctx))) return st;
    memcpy(w->prev_reward, w->per_step, sizeof(double) * (size_t)n);
    memcpy(w->prev_occ, rec.occupancy, sizeof(double) * (size_t)w->N);
    if (step == steps) break;
    for (int k = 0; k < count; k++) w->theta[k] += w->delta[k];
  }
  if (mean_reward)
    for (int i = 0; i < n; i++) mean_reward[i] = w->sum[i] / (steps + 1);
  return AG_OK;
}

ag_status ag_shaping_exact_run_mean(const ag_shaping_run_config *cfg, ag_shaping_observer observe,
                                    void *ctx, double *mean_reward) {
  ag_status st = ag_shaping_run_check(cfg);
  if (st) return st;
  shaping_episode *w = NULL;
  st = shaping_episode_new(cfg, &w);
  if (st) return st;
  int blas = shaping_blas_serial_begin();
  st = shaping_episode_run(w, cfg->shaper_params, cfg->seed, observe, ctx, mean_reward);
  shaping_blas_serial_end(blas);
  shaping_episode_free(w);
  return st;
}

ag_status ag_shaping_exact_run(const ag_shaping_run_config *cfg, ag_shaping_observer observe,
                               void *ctx) {
  return ag_shaping_exact_run_mean(cfg, observe, ctx, NULL);
}
