/* N-player opponent shaping (issue 7, PAPERS.md §10; docs/shaping.md):
 * learners that update memory-one policies with exact gradients of the
 * closed-form values (agora/games.h), a model-free meta-learning shaper
 * trained by OpenES, and fixed strategies, in any mix across the seats;
 * learning runs, and the seed paper's grid of experiments.
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

/* What sits in a seat. Learners update memory-one logits with exact
 * gradients; the ES shaper emits a memory-one policy per inner episode from
 * a recurrent policy trained by evolution strategies (below); fixed seats
 * play a constant memory-one policy (ag_shaping_fixed_logits). */
typedef enum ag_shaping_learner {
  AG_LEARNER_NAIVE = 0,        /* "naive" */
  AG_LEARNER_LOLA = 1,         /* "lola" */
  AG_LEARNER_ES = 2,           /* "es": the model-free meta-learning shaper */
  AG_LEARNER_ALLC = 3,         /* "allc": always cooperate */
  AG_LEARNER_ALLD = 4,         /* "alld": always defect */
  AG_LEARNER_TFT = 5,          /* "tft": cooperate iff every co-player cooperated */
  AG_LEARNER_TFT_MAJORITY = 6, /* "tft-maj": defect iff most co-players defected */
  AG_LEARNER_PPO = 7,          /* "ppo": a GRU policy trained by PPO (sampled mode only) */
} ag_shaping_learner;
#define AG_LEARNER_COUNT 8

/* "naive", "lola", "es", "allc", "alld", "tft", "tft-maj", "ppo". */
const char *ag_shaping_learner_name(ag_shaping_learner l);
/* allc, alld, tft, tft-maj: seats that never change their policy. */
bool ag_shaping_learner_is_fixed(ag_shaping_learner l);
/* Parses a comma-separated seat list ("lola,naive,naive") into seats[0..n);
 * the count must equal `players`. Errors name the bad entry. */
ag_status ag_shaping_parse_seats(const char *list, int players, ag_shaping_learner *seats);

/* ---- fixed strategies (fixed.c) -------------------------------------------
 *
 * Memory-one policies written as logits of +-AG_SHAPING_FIXED_LOGIT, so that
 * they go through the same exact evaluation as the learners (a cooperation
 * probability within 1e-13 of 0 or 1). In the player's own state s (own
 * action in the most significant bit, co-players after it; start state 2^n):
 *   allc:    cooperate everywhere;     alld: defect everywhere;
 *   tft:     cooperate at the start and iff no co-player defected last step
 *            (the player's own last action is ignored: counting it would make
 *            one defection permanent, a grim trigger);
 *   tft-maj: cooperate at the start and unless a strict majority of the
 *            n - 1 co-players defected last step (d > (n - 1) / 2). */
#define AG_SHAPING_FIXED_LOGIT 30.0
/* logits (2^n + 1) of a fixed strategy; AG_ERR_INVALID for a learner. */
ag_status ag_shaping_fixed_logits(ag_shaping_learner l, int players, double *logits);

/* Scratch for updates of one game's policies. */
typedef struct ag_shaping_exact ag_shaping_exact;
ag_status ag_shaping_exact_new(ag_game_exact *game, ag_shaping_exact **out);
void ag_shaping_exact_free(ag_shaping_exact *s);

/* The update every seat would make from theta (n, 2^n + 1): delta (same
 * shape). Evaluates the game at theta (its values are then readable with
 * ag_game_exact_values). lr = delta, correction = eta of the LOLA formula.
 * Naive and LOLA seats move; ES and fixed seats get a zero delta (the ES
 * shaper sets its own logits each inner episode). A LOLA seat looks ahead
 * through every co-player that is not fixed: a fixed seat takes no step. */
ag_status ag_shaping_exact_update(ag_shaping_exact *s, const ag_shaping_learner *seats, double lr,
                                  double correction, const double *theta, double *delta);
/* The LOLA term alone for player i at the last update's theta and seats:
 * out (2^n + 1) = sum_{j != i, j not fixed}
 *                 grad_{theta_i}[(grad_{theta_j} V^i)_stopped . grad_{theta_j} V^j]. */
ag_status ag_shaping_exact_lola_term(ag_shaping_exact *s, int player, double *out);

/* ---- the model-free shaper (es_shaper.c) ----------------------------------
 *
 * The M-FOS / "Shaper" idea in the closed-form setting: a GRU whose hidden
 * state persists across the inner episodes of a meta-episode, while the
 * co-players learn. Before each inner episode it reads
 *   x = [ q (2^n + 1): the co-players' mean cooperation probability in each of
 *         the shaper's own states (their current policies, seen from its seat),
 *         o (2n): last episode's discounted visitation of (own action, number
 *         of co-players defecting), own and co-players' mean reward per step
 *         last episode (divided by the table's largest |payoff|), 1 on the
 *         first episode, t / steps ]
 * and emits one memory-one policy, 2^n + 1 logits, evaluated in closed form;
 * then the learners take their step. The GRU is plain double arrays, forward
 * only (evolution strategies need no gradients):
 *   z = sig(Wz x + Uz h + bz), r = sig(Wr x + Ur h + br),
 *   c = tanh(Wc x + Uc (r * h) + bc), h = (1 - z) h + z c, logits = Wo h + bo.
 * Parameters, flat: W (3H, I) rows z, r, c; U (3H, H); b (3H); Wo (2^n+1, H); bo. */
#define AG_SHAPER_DEFAULT_HIDDEN 16
int ag_shaper_input_size(int players);
int ag_shaper_param_count(int players, int hidden);
/* Draws W, U ~ N(0, 1/fan_in), Wo ~ N(0, 1/H), biases 0: params (param_count). */
void ag_shaper_init(int players, int hidden, ag_rng *rng, double *params);

/* ---- OpenES (openes.c) -----------------------------------------------------
 *
 * Salimans et al. 2017 as the Shaper paper trains its meta-policy: each
 * generation draws population / 2 directions eps and evaluates mean + sigma
 * eps and mean - sigma eps (antithetic pairs); fitnesses become centred ranks
 * in [-0.5, 0.5] (invariant to any increasing transform of the fitness);
 * the gradient estimate g = sum_m rank_m eps_m / (population sigma) is
 * ascended with Adam (beta 0.9, 0.999). Generic: any dimension and fitness. */
typedef struct ag_openes_config {
  int dim;        /* parameters */
  int population; /* even, >= 2 */
  double sigma;   /* perturbation scale, e.g. 0.04 (Shaper paper) */
  double lr;      /* Adam step size */
  uint64_t seed;  /* the directions' stream */
} ag_openes_config;
typedef struct ag_openes ag_openes;
/* start (dim): the first mean. Bad sizes or rates are AG_ERR_INVALID. */
ag_status ag_openes_new(const ag_openes_config *cfg, const double *start, ag_openes **out);
void ag_openes_free(ag_openes *es);
/* This generation's candidates (population, dim); rows 2k and 2k + 1 are
 * mean + sigma eps_k and mean - sigma eps_k. Valid until the next tell. */
const double *ag_openes_ask(ag_openes *es);
/* The fitness of every candidate of the last ask (population, higher is
 * better; all finite): one Adam step on the mean. */
ag_status ag_openes_tell(ag_openes *es, const double *fitness);
const double *ag_openes_mean(const ag_openes *es); /* (dim) */
int ag_openes_generation(const ag_openes *es);     /* tells so far */
/* Centred ranks: out[m] = rank(fitness[m]) / (count - 1) - 0.5, ties broken
 * by index; count 1 gives 0. */
void ag_openes_centred_ranks(int count, const double *fitness, double *out);

/* ---- a learning run ------------------------------------------------------ */

typedef struct ag_shaping_run_config {
  const ag_game *game;
  const ag_shaping_learner *seats; /* (n) */
  int steps;                       /* simultaneous updates (inner episodes) */
  double gamma;                    /* discount, e.g. 0.96 */
  double lr;                       /* delta */
  double correction;               /* eta, LOLA seats only */
  double init_std;                 /* learners' theta ~ N(0, init_std^2) */
  uint64_t seed;
  /* ES seats: one parameter row per ES seat in seat order, each
   * ag_shaper_param_count(n, shaper_hidden) long; required when a seat is
   * "es" (see ag_shaping_es_train), ignored otherwise. */
  const double *shaper_params;
  int shaper_hidden; /* 0: AG_SHAPER_DEFAULT_HIDDEN */
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

/* Checks a configuration without running it: game, seats, steps, gamma,
 * finite rates, shaper parameters present when a seat is "es". */
ag_status ag_shaping_run_check(const ag_shaping_run_config *cfg);

/* Draws the learners' theta from the seed (fixed seats get their logits),
 * then runs cfg->steps exact updates, calling observe (may be NULL)
 * steps + 1 times; ES seats emit their policy before each evaluation. Bad
 * configurations are errors before any work. The _mean form also writes
 * mean_reward (n, may be NULL): each player's reward per step averaged
 * over the steps + 1 evaluations, the ES shaper's fitness. */
ag_status ag_shaping_exact_run(const ag_shaping_run_config *cfg, ag_shaping_observer observe,
                               void *ctx);
ag_status ag_shaping_exact_run_mean(const ag_shaping_run_config *cfg, ag_shaping_observer observe,
                                    void *ctx, double *mean_reward);

/* ---- training the ES shaper (es_shaper.c) --------------------------------- */

typedef struct ag_shaping_es_config {
  int generations; /* OpenES generations */
  int population;  /* candidates per generation, even */
  int episodes;    /* meta-episodes per candidate per generation; every candidate
                      of a generation meets the same co-player starts */
  double sigma, lr;
  int hidden;    /* GRU hidden size; 0: AG_SHAPER_DEFAULT_HIDDEN */
  int threads;   /* candidates evaluated in parallel; 0: ag_threads_get() */
  uint64_t seed; /* initial parameters, directions and co-player starts */
} ag_shaping_es_config;

/* Defaults: 100 generations, population 32, 1 episode, sigma 0.04, lr 0.1,
 * hidden 16, threads 0, seed 0. */
ag_shaping_es_config ag_shaping_es_defaults(void);

typedef struct ag_shaping_es_report {
  int generation, generations, es_seats;
  const double *mean_fitness; /* (es seats) population mean of each shaper's fitness */
  const double *best_fitness; /* (es seats) */
} ag_shaping_es_report;
typedef ag_status (*ag_shaping_es_observer)(const ag_shaping_es_report *report, void *ctx);

/* Trains every ES seat of run->seats at once, each with its own OpenES on
 * its own fitness (its mean reward per step over a meta-episode of
 * run->steps inner episodes against the other seats; run->seed and
 * run->shaper_params are ignored). Writes the final means into params
 * (es seats, ag_shaper_param_count(n, hidden)). The result depends on the
 * seed only, not on the thread count. */
ag_status ag_shaping_es_train(const ag_shaping_run_config *run, const ag_shaping_es_config *es,
                              double *params, ag_shaping_es_observer observe, void *ctx);

/* ---- plots (plot.c) --------------------------------------------------------
 *
 * Writes DIR/plot.gp, a gnuplot script that draws DIR/curve.csv (as `agora
 * shape run` writes it: step, n values, n rewards per step, n cooperation
 * rates, welfare, cooperation rate) into DIR/plot.svg, and renders it when
 * gnuplot is installed (a warning otherwise). */
ag_status ag_shaping_plot_run(const char *dir, const ag_game *game,
                              const ag_shaping_learner *seats);

/* ---- the paper's grid (sweep.c) ------------------------------------------- */

#define AG_SHAPING_SWEEP_MAX_GAMES 16
/* The defaults of `agora shape sweep` (docs/shaping.md: sized to finish
 * within 2 hours on 2 cores). */
#define AG_SHAPING_SWEEP_DEFAULT_SEEDS       5
#define AG_SHAPING_SWEEP_DEFAULT_EVALUATIONS 4
#define AG_SHAPING_SWEEP_DEFAULT_STEPS       100
typedef struct ag_shaping_sweep_config {
  const char *out_dir;
  const char *games[AG_SHAPING_SWEEP_MAX_GAMES]; /* families or table files */
  int game_count;
  int players[AG_GAME_MAX_PLAYERS]; /* player counts, e.g. {3, 4, 5} */
  int player_count;
  int seeds; /* seeds first_seed .. first_seed + seeds - 1 */
  uint64_t first_seed;
  int evaluations; /* learner starts per cell x seed, averaged */
  bool lola, es;   /* which shaper kinds the grid includes */
  int max_shapers; /* k = 1..min(n - 1, max_shapers); 0: n - 1 */
  /* steps, gamma, lr, correction, init_std; game, seats, seed ignored. */
  ag_shaping_run_config run;
  ag_shaping_es_config es_config; /* seed, threads ignored */
  int threads;                    /* cells in parallel; 0: ag_threads_get() */
} ag_shaping_sweep_config;

typedef struct ag_shaping_sweep_result {
  int cells, jobs, jobs_run, jobs_skipped;
  double seconds;
} ag_shaping_sweep_result;

/* The grid: for every game and n in players: all naive; k = 1 ..
 * n - 1 LOLA shapers (seats 0..k-1) with naive learners in the other seats;
 * the same with ES shapers. Each cell x seed is one line of
 * DIR/results.jsonl, written when it finishes and skipped when already
 * there (the sweep resumes; DIR/config.json must match). Then writes
 * DIR/summary.json and summary.md (means and standard errors over seeds of
 * final welfare, shaper and naive rewards, cooperation, the advantage over
 * all-naive on the same seeds), summary.csv, plot.gp and plot.svg. */
ag_status ag_shaping_sweep(const ag_shaping_sweep_config *cfg, ag_shaping_sweep_result *result);

/* ---- the sampled mode (ppo.c) --------------------------------------------
 *
 * Batches of sampled inner episodes (ag_game_batch) between PPO learners,
 * each a GRU policy over its own view of the game (one-hot state in, a
 * cooperation probability and a value out), and fixed strategies. Each
 * iteration every seat plays `episodes` episodes of `steps` steps; then every
 * PPO seat takes `epochs` PPO updates (GAE advantages normalised over the
 * batch, clipped surrogate, value loss, entropy bonus, Adam, gradient norm
 * clipped at 1) on the batch it played, backpropagating through the whole
 * episode. The exact learners (naive, lola, es) need the closed form and
 * are refused here. */
typedef struct ag_ppo_config {
  int hidden;          /* GRU width, 1..64 (default 16) */
  int episodes;        /* per iteration (default 32) */
  int steps;           /* inner-episode length (default 100) */
  double gamma;        /* discount (default 0.96) */
  double lambda;       /* GAE (default 0.95) */
  double lr;           /* Adam (default 0.01) */
  double clip;         /* PPO ratio clip (default 0.2) */
  int epochs;          /* updates per batch (default 4) */
  double value_coef;   /* default 0.5 */
  double entropy_coef; /* default 0.01 */
} ag_ppo_config;

ag_ppo_config ag_ppo_defaults(void);

typedef struct ag_shaping_sampled_config {
  const ag_game *game;
  const ag_shaping_learner *seats; /* (n): ppo, es or fixed */
  int iterations;                  /* batches learned from */
  uint64_t seed;                   /* initial weights and every draw */
  ag_ppo_config ppo;
  /* es seats: the per-step shaper's parameters, one row per es seat in seat
   * order, ag_shaping_sampled_shaper_param_count(n, shaper_hidden) long;
   * required when a seat is "es" (ag_shaping_sampled_es_train). */
  const double *shaper_params;
  int shaper_hidden; /* 0: AG_SHAPER_DEFAULT_HIDDEN */
} ag_shaping_sampled_config;

/* The sampled mode's shaper acts every step: a GRU over its own state
 * (one-hot, 2^n + 1) whose hidden state persists across the inner episodes
 * of a run (the meta-episode), so that it can track how its co-players
 * learn, with a cooperation-logit head. The gates as ag_shaper_* (z and r
 * read h, the candidate reads r * h). Parameters, flat: W (3H, 2^n + 1), U
 * (3H, H), b (3H), wo (H), bo. */
int ag_shaping_sampled_shaper_param_count(int players, int hidden);
/* W ~ N(0, 1), U and wo ~ N(0, 1/H), biases 0. */
void ag_shaping_sampled_shaper_init(int players, int hidden, ag_rng *rng, double *params);

/* What the observer sees for each batch played: iteration 0 is the initial
 * policies' batch, iteration k the batch after k updates. */
typedef struct ag_shaping_sampled_record {
  int iteration, players;
  const double *values;          /* (n) mean discounted return of an episode */
  const double *reward_per_step; /* (n) mean reward per step over the batch */
  const double *cooperation;     /* (n) share of cooperative actions */
  const double *loss;            /* (n) the last PPO loss of the update that follows (0: none) */
  double welfare;                /* mean of reward_per_step */
  double cooperation_rate;       /* mean of cooperation */
  const double *visitation;      /* (2^n) share of the batch's steps in each joint action */
} ag_shaping_sampled_record;

typedef ag_status (*ag_shaping_sampled_observer)(const ag_shaping_sampled_record *record,
                                                 void *ctx);

/* Checks a configuration without running it. */
ag_status ag_shaping_sampled_check(const ag_shaping_sampled_config *cfg);
/* Runs iterations + 1 batches (observe may be NULL); the result is a
 * function of the configuration and the seed. Bad configurations are
 * errors before any work. */
ag_status ag_shaping_sampled_run(const ag_shaping_sampled_config *cfg,
                                 ag_shaping_sampled_observer observe, void *ctx);
/* The same, and mean_reward (n, may be NULL): each seat's reward per step
 * over every batch of the run — an es seat's fitness. */
ag_status ag_shaping_sampled_run_mean(const ag_shaping_sampled_config *cfg,
                                      ag_shaping_sampled_observer observe, void *ctx,
                                      double *mean_reward);
/* Trains every es seat of run->seats with its own OpenES (es: generations,
 * population, episodes, sigma, lr, hidden, threads, seed as in
 * ag_shaping_es_train) on its mean reward per step over a run against the
 * other seats (PPO seats learning as they play); every candidate of a
 * generation meets the same co-player starts. run->seed and
 * run->shaper_params are ignored. Writes the final means into params (es
 * seats, ag_shaping_sampled_shaper_param_count(n, hidden)). The result
 * depends on the seed, not on the thread count. */
ag_status ag_shaping_sampled_es_train(const ag_shaping_sampled_config *run,
                                      const ag_shaping_es_config *es, double *params,
                                      ag_shaping_es_observer observe, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
