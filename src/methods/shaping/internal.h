/* Pieces shared by the shaping files: the workspace of one learning run
 * (run.c) and the ES shaper's GRU (es_shaper.c). Not a public contract. */
#ifndef AGORA_SHAPING_INTERNAL_H
#define AGORA_SHAPING_INTERNAL_H

#include "agora/shaping.h"

#include <jansson.h>

/* Everything one run needs, allocated once and reused across runs (the ES
 * training runs thousands of meta-episodes per workspace). */
typedef struct shaping_episode {
  ag_shaping_run_config cfg; /* game and seats point into this struct */
  ag_game game;
  ag_shaping_learner seats[AG_GAME_MAX_PLAYERS];
  int n, N, S;
  int hidden, inputs, param_count;
  int es_count, es_seat[AG_GAME_MAX_PLAYERS];
  double payoff_scale; /* the table's largest |payoff|: rewards fed to the GRU are divided by it */
  ag_game_exact *exact;
  ag_shaping_exact *learn;
  double *theta, *delta;         /* (n, S) */
  double *per_step, *coop, *sum; /* (n) */
  double *prev_reward;           /* (n) last inner episode's reward per step */
  double *prev_occ;              /* (N) last inner episode's visitation */
  double *h;                     /* (es_count, hidden) GRU states */
  double *x;                     /* (inputs) */
  double *gates;                 /* (4 hidden) GRU scratch */
} shaping_episode;

/* Checks cfg (ag_shaping_run_check without the shaper parameters) and
 * allocates. */
ag_status shaping_episode_new(const ag_shaping_run_config *cfg, shaping_episode **out);
void shaping_episode_free(shaping_episode *w);
/* One run (a meta-episode when ES seats are present) from `seed`, with
 * shaper_params (es_count, param_count) or NULL when there are no ES seats. */
ag_status shaping_episode_run(shaping_episode *w, const double *shaper_params, uint64_t seed,
                              ag_shaping_observer observe, void *ctx, double *mean_reward);

/* The GRU's input for the shaper in `seat` (es_shaper.c): w->x. */
void shaper_features(shaping_episode *w, int seat, int step, bool first);
/* The logistic function, stable for large |z|. */
double shaping_sigmoid(double z);
/* A GRU's recurrence after its input part: a (3H) holds W x + b for the z,
 * r and candidate gates, U (3H, H) the recurrent weights; h (H) is updated
 * in place, a becomes the gates, rh (H) is scratch. Shared by the exact
 * mode's shaper (shaper_step) and the sampled mode's (ppo.c). */
void shaping_gru_recur(const double *U, int H, double *a, double *rh, double *h);
/* One GRU step: h (hidden) updated in place from x (inputs); logits (2^n+1). */
void shaper_step(const double *params, int players, int hidden, const double *x, double *h,
                 double *scratch, double *logits);

/* es_shaper.c, shared with the sampled mode's trainer (sampled_es.c): the
 * seed mixer and stream tags of ES training, the check of its options, and
 * the end of a generation — the first failed candidate's error (member_st,
 * first_error), else every shaper's OpenES told its fitness row (K, pop)
 * and the observer given the generation's mean and best. */
uint64_t shaping_mix_seed(uint64_t seed, uint64_t a, uint64_t b);
#define SHAPING_STREAM_INIT       0x5e11
#define SHAPING_STREAM_DIRECTIONS 0xd1ec
#define SHAPING_STREAM_STARTS     0x57a7
ag_status shaping_es_check(const ag_shaping_es_config *es);
/* A failed candidate (in a parallel loop): keeps the first error message. */
void shaping_es_note_error(char *first_error, size_t size);
ag_status shaping_es_generation_end(ag_openes *const *opt, int K, int pop,
                                    const ag_status *member_st, const char *first_error,
                                    const double *fitness, int generation,
                                    const ag_shaping_es_config *es, ag_shaping_es_observer observe,
                                    void *ctx);

/* plot.c: dir/name into buf. */
ag_status shaping_path(char *buf, size_t size, const char *dir, const char *name);

/* run.c: OpenBLAS fans even the 32 x 32 LU solves of n = 5 out to its
 * threads when called outside a parallel region, and on a busy machine
 * each solve then waits for a sleeping thread (measured: ~90 updates/s
 * instead of ~1,400). The shaping entry points run their tiny solves on
 * the calling thread: begin returns the previous BLAS thread count (0 when
 * nothing was changed), end restores it. */
int shaping_blas_serial_begin(void);
void shaping_blas_serial_end(int previous);

/* sweep.c / sweep_report.c: the settings a sweep's results depend on, as
 * config.json holds them; the reports from every results line. */
json_t *shaping_sweep_settings(const ag_shaping_sweep_config *cfg);
ag_status shaping_sweep_write_reports(const char *dir, const ag_shaping_sweep_config *cfg,
                                      const json_t *lines);

#endif
