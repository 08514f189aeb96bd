/* Iterated n-player binary-action games (issue 7, PAPERS.md §10) and the
 * exact discounted values of memory-one policies in them.
 *
 * Actions: 0 = cooperate, 1 = defect. Each step player i receives
 * payoff[k][a_i], k the number of defectors in the joint action.
 *
 * Joint actions and states. A joint action is an n-bit integer with player 0
 * in the most significant bit: joint = sum_j a_j 2^(n-1-j). Each player sees
 * the previous joint action from its own perspective: its own action in the
 * most significant bit, then the others in seat order after it, wrapping
 * around (i+1, ..., n-1, 0, ..., i-1); that is the joint action's n bits
 * rotated left by i (ag_game_perspective). Before the first step every player
 * is in the start state 2^n. A player therefore has 2^n + 1 states.
 *
 * Memory-one policies: one cooperation logit per state per player, theta laid
 * out (n, 2^n + 1) row-major; player i cooperates in its state s with
 * probability sigmoid(theta[i][s]). */
#ifndef AGORA_GAMES_H
#define AGORA_GAMES_H

#include "agora/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_GAME_MIN_PLAYERS 2
#define AG_GAME_MAX_PLAYERS 8

typedef struct ag_game {
  char name[32]; /* "ipd", "sd", "sh", "tc", or the table file's "name" */
  int players;   /* n, 2..AG_GAME_MAX_PLAYERS */
  /* payoff[k][a]: what a player choosing a (0 = C, 1 = D) receives when k
   * players defect in total. The impossible entries payoff[0][1] and
   * payoff[n][0] are NAN. */
  double payoff[AG_GAME_MAX_PLAYERS + 1][2];
} ag_game;

/* The four payoff families of the seed's code base, for n = 2..5, as
 * PAPERS.md §10 gives them (c = n - k cooperators):
 *   "ipd": cooperator 2(n-1-k), defector 2(n-k)+1.
 *   "sd" (snowdrift/chicken): cooperator n - (n-1)/c, defector n, or 0 when
 *         everyone defects.
 *   "sh" (threshold public good): when c >= t everyone gets 6c/n and
 *         cooperators pay 3, else cooperators -3 and defectors 0;
 *         t = 2 for n = 2..4, t = 3 for n = 5.
 *   "tc" (tragedy of the commons): while k <= m cooperators 2, defectors 5,
 *         beyond cooperators -3, defectors 0; m = 1 for n = 3, 4 and m = 2
 *         for n = 5. PAPERS.md gives no m for n = 2; we use m = 1 there.
 * Unknown names or n outside 2..5 are AG_ERR_INVALID. */
ag_status ag_game_make(const char *family, int players, ag_game *out);

/* A game from a table of n + 1 rows {cooperator gets, defector gets}, row k =
 * number of defectors. The impossible entries table[0][1] and table[n][0] are
 * ignored; every other entry must be finite. */
ag_status ag_game_from_table(const char *name, int players, const double (*table)[2], ag_game *out);

/* A game from a JSON file:
 *   {"name": "my game", "players": 3,
 *    "payoff": [[c0, null], [c1, d1], [c2, d2], [null, d3]]}
 * "name" is optional; "payoff" has players + 1 rows of [cooperator, defector];
 * the impossible entries may be null or a number (ignored). Errors name the
 * file and the bad field ("payoff[2][1]: not a finite number"). */
ag_status ag_game_load(const char *path, ag_game *out);

/* ag_game_make when `spec` names a family, else ag_game_load(spec); a file's
 * player count must equal `players`. */
ag_status ag_game_open(const char *spec, int players, ag_game *out);

/* 2^n + 1: the joint actions and the start state. */
int ag_game_state_count(int players);
/* Number of defectors (set bits) in a joint action. */
int ag_game_defectors(int players, int joint);
/* Player i's own action in a joint action (0 = C, 1 = D). */
int ag_game_action(int players, int joint, int player);
/* The state player i sees after `joint`: the bits rotated left by i. The
 * start state 2^n is the same for everyone. */
int ag_game_perspective(int players, int player, int joint);
/* The inverse: the joint action that player i sees as `state` (< 2^n). */
int ag_game_joint_from_perspective(int players, int player, int state);
/* What player i receives for the joint action. */
double ag_game_reward(const ag_game *g, int joint, int player);

/* ---- exact values of memory-one policies --------------------------------
 *
 * With P the (2^n, 2^n) transition matrix between joint actions, s0 the
 * distribution of the first joint action and r^i[a] player i's reward for
 * joint action a, player i's discounted return is
 *     V^i = sum_t gamma^t E[r^i_t] = s0^T (I - gamma P)^-1 r^i,
 * computed by one LU factorisation of M = I - gamma P (LAPACK dgetrf, then
 * dgetrs solves; no inverse is formed). Gradients are analytic:
 *     dV^i = ds0^T v^i + gamma x^T dP v^i,   v^i = M^-1 r^i, x = M^-T s0,
 * and second derivatives are forward-mode derivatives of that expression. */
typedef struct ag_game_exact ag_game_exact;

/* A workspace for one game and discount 0 <= gamma < 1. */
ag_status ag_game_exact_new(const ag_game *g, double gamma, ag_game_exact **out);
void ag_game_exact_free(ag_game_exact *e);

/* Evaluates the policies theta (n, 2^n + 1): builds P and s0, factorises M
 * and solves for every player's v^i and for x. The queries below read this
 * evaluation. Non-finite logits are AG_ERR_INVALID. */
ag_status ag_game_exact_evaluate(ag_game_exact *e, const double *theta);

/* V^i for every player: (n). */
const double *ag_game_exact_values(const ag_game_exact *e);
/* Normalised discounted state occupancy of the joint actions,
 * (1 - gamma) x: (2^n), sums to 1. */
const double *ag_game_exact_occupancy(const ag_game_exact *e);
/* Discounted average probability that each player cooperates,
 * (1 - gamma) sum_t gamma^t P(a_i,t = C): (n) into coop. */
void ag_game_exact_cooperation(const ag_game_exact *e, double *coop);
/* Every player's gradient: grad (n, n, 2^n + 1), grad[i][j][s] =
 * dV^i / dtheta[j][s]. */
void ag_game_exact_gradients(const ag_game_exact *e, double *grad);
/* A mixed second derivative along a direction: out (2^n + 1) =
 *   d/d eps [ grad_{theta_wrt} V^value ](theta_tangent + eps u) at eps = 0,
 * i.e. the Hessian block d^2 V^value / (d theta_wrt d theta_tangent) times
 * u (2^n + 1). Any players, equal or not. */
ag_status ag_game_exact_mixed(ag_game_exact *e, int value_player, int wrt_player,
                              int tangent_player, const double *u, double *out);

int ag_game_exact_players(const ag_game_exact *e);
double ag_game_exact_gamma(const ag_game_exact *e);

/* ---- sampled episodes ----------------------------------------------------
 *
 * For policies with no closed form (memory, sampled learners): B episodes
 * stepping together. Every episode starts in the start state; a step takes
 * every player's action in every episode, returns the rewards, and each
 * player then sees the joint action from its own perspective. */
typedef struct ag_game_batch {
  ag_game game;     /* a copy */
  int64_t episodes; /* B */
  int32_t *joint;   /* (B): the last joint action, 2^n before the first step */
  int64_t steps;    /* steps since the last reset */
} ag_game_batch;
/* B in 1..2^30 episodes of g, reset. */
ag_status ag_game_batch_init(ag_game_batch *b, const ag_game *g, int64_t episodes);
void ag_game_batch_free(ag_game_batch *b);
/* Every episode back to the start state. */
void ag_game_batch_reset(ag_game_batch *b);
/* The state player i sees in episode e (ag_game_perspective). */
int ag_game_batch_state(const ag_game_batch *b, int64_t episode, int player);
/* One step: actions (B, n) of 0 = C and 1 = D; rewards (B, n) or NULL. An
 * action other than 0 or 1 is AG_ERR_INVALID (the batch unchanged up to
 * that episode's step). */
ag_status ag_game_batch_step(ag_game_batch *b, const uint8_t *actions, double *rewards);

/* Monte Carlo returns of memory-one policies theta (n, 2^n + 1): `episodes`
 * episodes of `steps` steps, each drawn from its own stream (seed,
 * episode); mean (n) and std_error (n, may be NULL) of each player's
 * discounted return. Episodes run on every thread, and the result does not
 * depend on how many. */
ag_status ag_game_sample_memory_one(const ag_game *g, const double *theta, double gamma,
                                    int64_t episodes, int steps, uint64_t seed, double *mean,
                                    double *std_error);

#ifdef __cplusplus
}
#endif

#endif
