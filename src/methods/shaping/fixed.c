/* Fixed strategies as memory-one policies (shaping.h): always-cooperate,
 * always-defect and two n-player tit-for-tat variants. */
#include "agora/shaping.h"

bool ag_shaping_learner_is_fixed(ag_shaping_learner l) {
  return l == AG_LEARNER_ALLC || l == AG_LEARNER_ALLD || l == AG_LEARNER_TFT ||
         l == AG_LEARNER_TFT_MAJORITY;
}

/* Whether the strategy cooperates in its own state s (< 2^n): the own action
 * is bit n-1, the n - 1 co-players' actions the bits below it. */
static bool cooperates(ag_shaping_learner l, int players, int state) {
  int others = state & ((1 << (players - 1)) - 1);
  int defectors = ag_game_defectors(players - 1, others);
  switch (l) {
  case AG_LEARNER_ALLC: return true;
  case AG_LEARNER_ALLD: return false;
  case AG_LEARNER_TFT: return defectors == 0;
  default: return 2 * defectors <= players - 1; /* tft-maj: defect iff d > (n-1)/2 */
  }
}

ag_status ag_shaping_fixed_logits(ag_shaping_learner l, int players, double *logits) {
  if (!logits) return ag_error_set(AG_ERR_INVALID, "ag_shaping_fixed_logits: NULL argument");
  if (!ag_shaping_learner_is_fixed(l))
    return ag_error_set(AG_ERR_INVALID, "shaping: '%s' is not a fixed strategy",
                        ag_shaping_learner_name(l));
  if (players < AG_GAME_MIN_PLAYERS || players > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "shaping: players must be %d..%d, got %d",
                        AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS, players);
  int N = 1 << players;
  for (int s = 0; s < N; s++)
    logits[s] = cooperates(l, players, s) ? AG_SHAPING_FIXED_LOGIT : -AG_SHAPING_FIXED_LOGIT;
  /* Every strategy but always-defect opens with cooperation. */
  logits[N] = l == AG_LEARNER_ALLD ? -AG_SHAPING_FIXED_LOGIT : AG_SHAPING_FIXED_LOGIT;
  return AG_OK;
}
