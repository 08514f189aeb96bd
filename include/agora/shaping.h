/* N-player opponent shaping (issue 7, PAPERS.md §10): learners that update
 * memory-one policies with exact gradients of the closed-form values
 * (agora/games.h), in any mix across the seats.
 *
 *   naive: theta^i += lr grad_{theta_i} V^i
 *   lola:  theta^i += lr grad_{theta_i} V^i
 *           + lr correction sum_{j != i} grad_{theta_i}[(grad_{theta_j} V^i)_stopped
 *                                                    . grad_{theta_j} V^j]
 * The LOLA term is sum_{j != i} (d^2 V^j / d theta_i d theta_j) grad_{theta_j} V^i,
 * computed exactly by forward-mode differentiation of the closed-form
 * gradient (ag_game_exact_mixed). All seats update simultaneously from the
 * same theta. */
#ifndef AGORA_SHAPING_H
#define AGORA_SHAPING_H

#include "agora/games.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ag_shaping_learner {
  AG_LEARNER_NAIVE = 0,
  AG_LEARNER_LOLA = 1,
} ag_shaping_learner;

/* "naive" / "lola". */
const char *ag_shaping_learner_name(ag_shaping_learner l);
/* Parses a comma-separated seat list ("lola,naive,naive") into seats[0..n);
 * the count must equal `players`. Errors name the bad entry. */
ag_status ag_shaping_parse_seats(const char *list, int players, ag_shaping_learner *seats);

/* Scratch for updates of one game's policies. */
typedef struct ag_shaping_exact ag_shaping_exact;
ag_status ag_shaping_exact_new(ag_game_exact *game, ag_shaping_exact **out);
void ag_shaping_exact_free(ag_shaping_exact *s);

/* The update every seat would make from theta (n, 2^n + 1): delta (same
 * shape). Evaluates the game at theta (its values are then readable with
 * ag_game_exact_values). lr = delta, correction = eta of the LOLA formula. */
ag_status ag_shaping_exact_update(ag_shaping_exact *s, const ag_shaping_learner *seats, double lr,
                                  double correction, const double *theta, double *delta);
/* The LOLA term alone for player i at the last evaluated theta:
 * out (2^n + 1) = sum_{j != i} grad_{theta_i}[(grad_{theta_j} V^i)_stopped . grad_{theta_j} V^j].
 */
ag_status ag_shaping_exact_lola_term(ag_shaping_exact *s, int player, double *out);

/* ---- a learning run ------------------------------------------------------ */

typedef struct ag_shaping_run_config {
  const ag_game *game;
  const ag_shaping_learner *seats; /* (n) */
  int steps;                       /* simultaneous updates */
  double gamma;                    /* discount, e.g. 0.96 */
  double lr;                       /* delta */
  double correction;               /* eta, LOLA seats only */
  double init_std;                 /* theta ~ N(0, init_std^2) */
  uint64_t seed;
} ag_shaping_run_config;

/* What the observer sees before the first update (step 0) and after each. */
typedef struct ag_shaping_record {
  int step, players, states;
  const double *theta;           /* (n, 2^n + 1) */
  const double *values;          /* (n) V^i, discounted returns */
  const double *reward_per_step; /* (n) (1 - gamma) V^i */
  const double *cooperation;     /* (n) discounted cooperation rates */
  const double *occupancy;       /* (2^n) normalised discounted visitation */
  double welfare;                /* mean of reward_per_step */
  double cooperation_rate;       /* mean of cooperation */
} ag_shaping_record;

/* A nonzero status stops the run and is returned. */
typedef ag_status (*ag_shaping_observer)(const ag_shaping_record *record, void *ctx);

/* Draws theta from the seed, then runs cfg->steps exact updates, calling
 * observe (may be NULL) steps + 1 times. Bad configurations (gamma, steps,
 * non-finite rates) are errors before any work. */
ag_status ag_shaping_exact_run(const ag_shaping_run_config *cfg, ag_shaping_observer observe,
                               void *ctx);

#ifdef __cplusplus
}
#endif

#endif
