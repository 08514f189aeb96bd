/* Naive and LOLA learners on exact closed-form values (shaping.h). */
#include "agora/shaping.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ag_shaping_exact {
  ag_game_exact *game;
  int n, S;
  double *grad; /* (n, n, S): grad[i][j] = dV^i / dtheta_j */
  double *term; /* (S) */
  bool evaluated;
};

const char *ag_shaping_learner_name(ag_shaping_learner l) {
  return l == AG_LEARNER_LOLA ? "lola" : "naive";
}

ag_status ag_shaping_parse_seats(const char *list, int players, ag_shaping_learner *seats) {
  if (!list || !seats) return ag_error_set(AG_ERR_INVALID, "ag_shaping_parse_seats: NULL argument");
  int count = 0;
  const char *p = list;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    ag_shaping_learner l;
    if (len == 5 && !strncmp(p, "naive", 5))
      l = AG_LEARNER_NAIVE;
    else if (len == 4 && !strncmp(p, "lola", 4))
      l = AG_LEARNER_LOLA;
    else
      return ag_error_set(AG_ERR_INVALID, "seats: entry %d '%.*s' is not a learner (naive, lola)",
                          count + 1, (int)len, p);
    if (count < players) seats[count] = l;
    count++;
    if (!end) break;
    p = end + 1;
  }
  if (count != players)
    return ag_error_set(AG_ERR_INVALID, "seats: %d learners listed for %d players", count, players);
  return AG_OK;
}

ag_status ag_shaping_exact_new(ag_game_exact *game, ag_shaping_exact **out) {
  if (!game || !out) return ag_error_set(AG_ERR_INVALID, "ag_shaping_exact_new: NULL argument");
  ag_shaping_exact *s = calloc(1, sizeof *s);
  if (!s) return ag_error_set(AG_ERR_NOMEM, "shaping: out of memory");
  s->game = game;
  s->n = ag_game_exact_players(game);
  s->S = ag_game_state_count(s->n);
  s->grad = calloc((size_t)s->n * s->n * s->S, sizeof(double));
  s->term = calloc((size_t)s->S, sizeof(double));
  if (!s->grad || !s->term) {
    ag_shaping_exact_free(s);
    return ag_error_set(AG_ERR_NOMEM, "shaping: out of memory");
  }
  *out = s;
  return AG_OK;
}

void ag_shaping_exact_free(ag_shaping_exact *s) {
  if (!s) return;
  free(s->grad);
  free(s->term);
  free(s);
}

ag_status ag_shaping_exact_lola_term(ag_shaping_exact *s, int player, double *out) {
  if (!s || !out) return ag_error_set(AG_ERR_INVALID, "ag_shaping_exact_lola_term: NULL argument");
  if (!s->evaluated) return ag_error_set(AG_ERR_INVALID, "shaping: no evaluated policies");
  if (player < 0 || player >= s->n)
    return ag_error_set(AG_ERR_INVALID, "shaping: player %d outside 0..%d", player, s->n - 1);
  int n = s->n, S = s->S;
  memset(out, 0, sizeof(double) * (size_t)S);
  for (int j = 0; j < n; j++) {
    if (j == player) continue;
    /* (grad_{theta_j} V^i), held fixed, along which V^j's gradient moves. */
    const double *u = s->grad + ((size_t)player * n + j) * S;
    ag_status st = ag_game_exact_mixed(s->game, j, player, j, u, s->term);
    if (st) return st;
    for (int k = 0; k < S; k++) out[k] += s->term[k];
  }
  return AG_OK;
}

ag_status ag_shaping_exact_update(ag_shaping_exact *s, const ag_shaping_learner *seats, double lr,
                                  double correction, const double *theta, double *delta) {
  if (!s || !seats || !theta || !delta)
    return ag_error_set(AG_ERR_INVALID, "ag_shaping_exact_update: NULL argument");
  s->evaluated = false;
  ag_status st = ag_game_exact_evaluate(s->game, theta);
  if (st) return st;
  ag_game_exact_gradients(s->game, s->grad);
  s->evaluated = true;
  int n = s->n, S = s->S;
  for (int i = 0; i < n; i++) {
    double *d = delta + (size_t)i * S;
    const double *own = s->grad + ((size_t)i * n + i) * S;
    if (seats[i] == AG_LEARNER_LOLA) {
      st = ag_shaping_exact_lola_term(s, i, d);
      if (st) return st;
      for (int k = 0; k < S; k++) d[k] = lr * own[k] + lr * correction * d[k];
    } else {
      for (int k = 0; k < S; k++) d[k] = lr * own[k];
    }
  }
  return AG_OK;
}

static ag_status observe_step(ag_game_exact *e, int step, const double *theta, double *scratch,
                              ag_shaping_observer observe, void *ctx) {
  int n = ag_game_exact_players(e);
  double gamma = ag_game_exact_gamma(e);
  double *per_step = scratch, *coop = scratch + n;
  const double *values = ag_game_exact_values(e);
  ag_game_exact_cooperation(e, coop);
  ag_shaping_record rec = {.step = step,
                           .players = n,
                           .states = ag_game_state_count(n),
                           .theta = theta,
                           .values = values,
                           .reward_per_step = per_step,
                           .cooperation = coop,
                           .occupancy = ag_game_exact_occupancy(e)};
  for (int i = 0; i < n; i++) {
    per_step[i] = (1 - gamma) * values[i];
    rec.welfare += per_step[i] / n;
    rec.cooperation_rate += coop[i] / n;
  }
  return observe ? observe(&rec, ctx) : AG_OK;
}

ag_status ag_shaping_exact_run(const ag_shaping_run_config *cfg, ag_shaping_observer observe,
                               void *ctx) {
  if (!cfg || !cfg->game || !cfg->seats)
    return ag_error_set(AG_ERR_INVALID, "ag_shaping_exact_run: NULL argument");
  if (cfg->steps < 0)
    return ag_error_set(AG_ERR_INVALID, "shaping: steps must be >= 0, got %d", cfg->steps);
  if (!isfinite(cfg->lr) || !isfinite(cfg->correction) || !isfinite(cfg->init_std) ||
      cfg->init_std < 0)
    return ag_error_set(AG_ERR_INVALID, "shaping: lr, correction and init_std must be finite "
                                        "(init_std >= 0)");
  ag_game_exact *e = NULL;
  ag_status st = ag_game_exact_new(cfg->game, cfg->gamma, &e);
  if (st) return st;
  ag_shaping_exact *s = NULL;
  st = ag_shaping_exact_new(e, &s);
  if (st) {
    ag_game_exact_free(e);
    return st;
  }
  int n = s->n, count = n * s->S;
  double *theta = calloc((size_t)count, sizeof(double));
  double *delta = calloc((size_t)count, sizeof(double));
  double *scratch = calloc(2 * (size_t)n, sizeof(double));
  if (!theta || !delta || !scratch) {
    st = ag_error_set(AG_ERR_NOMEM, "shaping: out of memory");
    goto done;
  }
  ag_rng rng;
  ag_rng_seed(&rng, cfg->seed);
  for (int k = 0; k < count; k++) theta[k] = cfg->init_std * ag_rng_normal(&rng);
  for (int step = 0;; step++) {
    /* The update evaluates the game at theta, which the record reports. */
    st = ag_shaping_exact_update(s, cfg->seats, cfg->lr, cfg->correction, theta, delta);
    if (st) break;
    st = observe_step(e, step, theta, scratch, observe, ctx);
    if (st || step == cfg->steps) break;
    for (int k = 0; k < count; k++) theta[k] += delta[k];
  }
done:
  free(theta);
  free(delta);
  free(scratch);
  ag_shaping_exact_free(s);
  ag_game_exact_free(e);
  return st;
}
