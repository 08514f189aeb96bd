/* Seat kinds, and the naive and LOLA updates on exact closed-form values
 * (shaping.h). */
#include "agora/shaping.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ag_shaping_exact {
  ag_game_exact *game;
  int n, S;
  double *grad;                                  /* (n, n, S): grad[i][j] = dV^i / dtheta_j */
  double *term;                                  /* (S) */
  ag_shaping_learner seats[AG_GAME_MAX_PLAYERS]; /* of the last update */
  bool evaluated;
};

static const char *const learner_names[AG_LEARNER_COUNT] = {[AG_LEARNER_NAIVE] = "naive",
                                                            [AG_LEARNER_LOLA] = "lola",
                                                            [AG_LEARNER_ES] = "es",
                                                            [AG_LEARNER_ALLC] = "allc",
                                                            [AG_LEARNER_ALLD] = "alld",
                                                            [AG_LEARNER_TFT] = "tft",
                                                            [AG_LEARNER_TFT_MAJORITY] = "tft-maj",
                                                            [AG_LEARNER_PPO] = "ppo"};

const char *ag_shaping_learner_name(ag_shaping_learner l) {
  return (int)l >= 0 && l < AG_LEARNER_COUNT ? learner_names[l] : "?";
}

ag_status ag_shaping_parse_seats(const char *list, int players, ag_shaping_learner *seats) {
  if (!list || !seats) return ag_error_set(AG_ERR_INVALID, "ag_shaping_parse_seats: NULL argument");
  int count = 0;
  const char *p = list;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    int found = -1;
    for (int l = 0; l < AG_LEARNER_COUNT; l++)
      if (strlen(learner_names[l]) == len && !strncmp(p, learner_names[l], len)) found = l;
    if (found < 0)
      return ag_error_set(AG_ERR_INVALID,
                          "seats: entry %d '%.*s' is not a seat kind (naive, lola, es, allc, "
                          "alld, tft, tft-maj, ppo)",
                          count + 1, (int)len, p);
    if (count < players) seats[count] = (ag_shaping_learner)found;
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
    if (j == player || ag_shaping_learner_is_fixed(s->seats[j])) continue;
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
  memcpy(s->seats, seats, sizeof(ag_shaping_learner) * (size_t)n);
  for (int i = 0; i < n; i++) {
    double *d = delta + (size_t)i * S;
    const double *own = s->grad + ((size_t)i * n + i) * S;
    if (seats[i] == AG_LEARNER_LOLA) {
      st = ag_shaping_exact_lola_term(s, i, d);
      if (st) return st;
      for (int k = 0; k < S; k++) d[k] = lr * own[k] + lr * correction * d[k];
    } else if (seats[i] == AG_LEARNER_NAIVE) {
      for (int k = 0; k < S; k++) d[k] = lr * own[k];
    } else {
      memset(d, 0, sizeof(double) * (size_t)S); /* ES and fixed seats */
    }
  }
  return AG_OK;
}
