/* Sampled episodes of the iterated games (agora/games.h): a batch of
 * episodes stepping together, for policies with no closed form (memory,
 * PPO learners), and Monte Carlo returns of memory-one policies, which the
 * closed form checks and which measure the sampled mode's speed. */
#include "agora/games.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SAMPLE_BLOCKS 256 /* units of parallel work */

ag_status ag_game_batch_init(ag_game_batch *b, const ag_game *g, int64_t episodes) {
  if (!b) return ag_error_set(AG_ERR_INVALID, "game batch: NULL batch");
  memset(b, 0, sizeof *b);
  if (!g || g->players < AG_GAME_MIN_PLAYERS || g->players > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "game batch: no game, or players outside %d..%d",
                        AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS);
  if (episodes < 1 || episodes > ((int64_t)1 << 30))
    return ag_error_set(AG_ERR_INVALID, "game batch: %lld episodes (1..2^30)", (long long)episodes);
  b->joint = malloc((size_t)episodes * sizeof *b->joint);
  if (!b->joint) return ag_error_set(AG_ERR_NOMEM, "game batch: out of memory");
  b->game = *g;
  b->episodes = episodes;
  ag_game_batch_reset(b);
  return AG_OK;
}

void ag_game_batch_free(ag_game_batch *b) {
  if (!b) return;
  free(b->joint);
  memset(b, 0, sizeof *b);
}

void ag_game_batch_reset(ag_game_batch *b) {
  int start = 1 << b->game.players;
  for (int64_t e = 0; e < b->episodes; e++) b->joint[e] = start;
  b->steps = 0;
}

int ag_game_batch_state(const ag_game_batch *b, int64_t episode, int player) {
  return ag_game_perspective(b->game.players, player, b->joint[episode]);
}

ag_status ag_game_batch_step(ag_game_batch *b, const uint8_t *actions, double *rewards) {
  if (!b || !b->joint || !actions) return ag_error_set(AG_ERR_INVALID, "game batch: bad step");
  int n = b->game.players;
  for (int64_t e = 0; e < b->episodes; e++) {
    const uint8_t *a = actions + e * n;
    int joint = 0, defectors = 0;
    for (int j = 0; j < n; j++) {
      if (a[j] > 1)
        return ag_error_set(AG_ERR_INVALID,
                            "game batch: episode %lld, player %d: action %d (0 or 1)", (long long)e,
                            j, a[j]);
      joint = joint * 2 + a[j];
      defectors += a[j];
    }
    b->joint[e] = joint;
    if (rewards)
      for (int j = 0; j < n; j++) rewards[e * n + j] = b->game.payoff[defectors][a[j]];
  }
  b->steps++;
  return AG_OK;
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

ag_status ag_game_sample_memory_one(const ag_game *g, const double *theta, double gamma,
                                    int64_t episodes, int steps, uint64_t seed, double *mean,
                                    double *std_error) {
  if (!g || !theta || !mean)
    return ag_error_set(AG_ERR_INVALID, "game sample: NULL game, policies or output");
  int n = g->players;
  if (n < AG_GAME_MIN_PLAYERS || n > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "game sample: players outside %d..%d", AG_GAME_MIN_PLAYERS,
                        AG_GAME_MAX_PLAYERS);
  if (!(gamma >= 0 && gamma < 1) || episodes < 1 || steps < 1)
    return ag_error_set(AG_ERR_INVALID,
                        "game sample: needs 0 <= gamma < 1, episodes >= 1 and steps >= 1");
  int S = ag_game_state_count(n);
  /* Cooperation probability of player j in joint state s (its own view),
   * tabled once: the inner loop is then a lookup and a uniform draw. */
  double *coop = malloc(sizeof(double) * (size_t)(n * S));
  double *sums = calloc((size_t)(2 * n), sizeof(double));
  if (!coop || !sums) {
    free(coop);
    free(sums);
    return ag_error_set(AG_ERR_NOMEM, "game sample: out of memory");
  }
  bool finite = true;
  for (int j = 0; j < n; j++)
    for (int s = 0; s < S; s++) {
      double logit = theta[j * S + s];
      finite = finite && isfinite(logit);
      int joint = s == S - 1 ? s : ag_game_joint_from_perspective(n, j, s);
      coop[j * S + joint] = sigmoid(logit);
    }
  if (!finite) {
    free(coop);
    free(sums);
    return ag_error_set(AG_ERR_INVALID, "game sample: non-finite logits");
  }
  /* Fixed blocks of episodes, summed in order: the result does not depend
   * on the thread count (each episode also has its own stream). */
  int64_t blocks = episodes < SAMPLE_BLOCKS ? episodes : SAMPLE_BLOCKS;
  double *block_sums = calloc((size_t)(blocks * 2 * n), sizeof(double));
  if (!block_sums) {
    free(coop);
    free(sums);
    return ag_error_set(AG_ERR_NOMEM, "game sample: out of memory");
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t k = 0; k < blocks; k++) {
    double *local = block_sums + k * 2 * n;
    for (int64_t e = episodes * k / blocks; e < episodes * (k + 1) / blocks; e++) {
      ag_rng rng;
      ag_rng_seed2(&rng, seed, (uint64_t)e);
      double ret[AG_GAME_MAX_PLAYERS] = {0}, w = 1;
      int joint = S - 1;
      for (int t = 0; t < steps; t++) {
        int next = 0, defectors = 0;
        for (int j = 0; j < n; j++) {
          int d = ag_rng_uniform(&rng) >= (float)coop[j * S + joint];
          next = next * 2 + d;
          defectors += d;
        }
        for (int j = 0; j < n; j++) ret[j] += w * g->payoff[defectors][(next >> (n - 1 - j)) & 1];
        w *= gamma;
        joint = next;
      }
      for (int j = 0; j < n; j++) {
        local[j] += ret[j];
        local[n + j] += ret[j] * ret[j];
      }
    }
  }
  for (int64_t k = 0; k < blocks; k++)
    for (int i = 0; i < 2 * n; i++) sums[i] += block_sums[k * 2 * n + i];
  free(block_sums);
  for (int j = 0; j < n; j++) {
    mean[j] = sums[j] / (double)episodes;
    if (std_error) {
      double var = sums[n + j] / (double)episodes - mean[j] * mean[j];
      std_error[j] = var > 0 && episodes > 1 ? sqrt(var / (double)(episodes - 1)) : 0;
    }
  }
  free(coop);
  free(sums);
  return AG_OK;
}
