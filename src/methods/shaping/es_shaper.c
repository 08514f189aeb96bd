/* The model-free meta-learning shaper (M-FOS / "Shaper" style, shaping.h):
 * a GRU on plain double arrays that emits one memory-one policy per inner
 * episode, and its training by OpenES over meta-episodes. */
#include "internal.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the GRU ---------------------------------------------------------------- */

int ag_shaper_input_size(int players) {
  /* q (2^n + 1), o (2n), own and co-players' reward, first flag, progress */
  return (1 << players) + 1 + 2 * players + 4;
}

int ag_shaper_param_count(int players, int hidden) {
  int I = ag_shaper_input_size(players), O = (1 << players) + 1, H = hidden;
  return 3 * H * I + 3 * H * H + 3 * H + O * H + O;
}

void ag_shaper_init(int players, int hidden, ag_rng *rng, double *params) {
  const int I = ag_shaper_input_size(players), O = (1 << players) + 1, H = hidden;
  double *p = params;
  const double sw = 1 / sqrt((double)I), su = 1 / sqrt((double)H);
  for (int k = 0; k < 3 * H * I; k++) *p++ = sw * ag_rng_normal(rng);
  for (int k = 0; k < 3 * H * H; k++) *p++ = su * ag_rng_normal(rng);
  for (int k = 0; k < 3 * H; k++) *p++ = 0;
  for (int k = 0; k < O * H; k++) *p++ = su * ag_rng_normal(rng);
  for (int k = 0; k < O; k++) *p++ = 0;
}

double shaping_sigmoid(double z) {
  if (z >= 0) return 1 / (1 + exp(-z));
  double t = exp(z);
  return t / (1 + t);
}

void shaping_gru_recur(const double *U, int H, double *a, double *rh, double *h) {
  /* z and r read the old h; the candidate reads r * h. */
  for (int g = 0; g < 2 * H; g++) {
    const double *u = U + (size_t)g * H;
    double s = a[g];
    for (int k = 0; k < H; k++) s += u[k] * h[k];
    a[g] = shaping_sigmoid(s);
  }
  for (int k = 0; k < H; k++) rh[k] = a[H + k] * h[k];
  for (int g = 0; g < H; g++) {
    const double *u = U + (size_t)(2 * H + g) * H;
    double s = a[2 * H + g];
    for (int k = 0; k < H; k++) s += u[k] * rh[k];
    a[2 * H + g] = tanh(s);
  }
  for (int k = 0; k < H; k++) h[k] = (1 - a[k]) * h[k] + a[k] * a[2 * H + k];
}

void shaper_step(const double *params, int players, int hidden, const double *x, double *h,
                 double *scratch, double *logits) {
  const int I = ag_shaper_input_size(players), O = (1 << players) + 1, H = hidden;
  const double *W = params;        /* (3H, I) */
  const double *U = W + 3 * H * I; /* (3H, H) */
  const double *b = U + 3 * H * H; /* (3H) */
  const double *Wo = b + 3 * H;    /* (O, H) */
  const double *bo = Wo + O * H;   /* (O) */
  double *a = scratch;             /* (3H) W x + b */
  double *rh = a + 3 * H;          /* (H) r * h */
  for (int g = 0; g < 3 * H; g++) {
    const double *w = W + (size_t)g * I;
    double s = b[g];
    for (int k = 0; k < I; k++) s += w[k] * x[k];
    a[g] = s;
  }
  shaping_gru_recur(U, H, a, rh, h);
  for (int o = 0; o < O; o++) {
    const double *w = Wo + (size_t)o * H;
    double s = bo[o];
    for (int k = 0; k < H; k++) s += w[k] * h[k];
    logits[o] = s;
  }
}

void shaper_features(shaping_episode *w, int seat, int step, bool first) {
  const int n = w->n, N = w->N, S = w->S;
  double *x = w->x;
  /* q: the co-players' mean cooperation probability after each joint action,
   * indexed by the shaper's own state. */
  for (int s = 0; s <= N; s++) {
    int g = s == N ? N : ag_game_joint_from_perspective(n, seat, s);
    double q = 0;
    for (int j = 0; j < n; j++) {
      if (j == seat) continue;
      q += shaping_sigmoid(w->theta[(size_t)j * S + ag_game_perspective(n, j, g)]);
    }
    x[s] = q / (n - 1);
  }
  /* o: last episode's visitation of (own action, co-players defecting). */
  double *o = x + S;
  memset(o, 0, sizeof(double) * 2 * (size_t)n);
  double own = 0, others = 0;
  if (!first) {
    for (int a = 0; a < N; a++) {
      int mine = ag_game_action(n, a, seat);
      int d = ag_game_defectors(n, a) - mine;
      o[mine * n + d] += w->prev_occ[a];
    }
    own = w->prev_reward[seat] / w->payoff_scale;
    for (int j = 0; j < n; j++)
      if (j != seat) others += w->prev_reward[j] / w->payoff_scale / (n - 1);
  }
  double *tail = o + 2 * n;
  tail[0] = own;
  tail[1] = others;
  tail[2] = first ? 1 : 0;
  tail[3] = w->cfg.steps > 0 ? (double)step / w->cfg.steps : 0;
}

/* ---- training by OpenES ------------------------------------------------------- */

ag_shaping_es_config ag_shaping_es_defaults(void) {
  return (ag_shaping_es_config){.generations = 100,
                                .population = 32,
                                .episodes = 1,
                                .sigma = 0.04,
                                .lr = 0.1,
                                .hidden = AG_SHAPER_DEFAULT_HIDDEN};
}

/* splitmix64's finaliser: independent-looking seeds from (seed, a, b). */
uint64_t shaping_mix_seed(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

ag_status shaping_es_check(const ag_shaping_es_config *es) {
  if (es->generations < 0 || es->generations > 100000000)
    return ag_error_set(AG_ERR_INVALID, "es: generations must be 0..1e8, got %d", es->generations);
  if (es->population < 2 || es->population % 2 || es->population > 1000000)
    return ag_error_set(AG_ERR_INVALID, "es: the population must be even and >= 2, got %d",
                        es->population);
  if (es->episodes < 1 || es->episodes > 1000000)
    return ag_error_set(AG_ERR_INVALID, "es: episodes per candidate must be >= 1, got %d",
                        es->episodes);
  if (!(es->sigma > 0) || !isfinite(es->sigma) || !(es->lr > 0) || !isfinite(es->lr))
    return ag_error_set(AG_ERR_INVALID, "es: sigma and lr must be finite and > 0 (%g, %g)",
                        es->sigma, es->lr);
  if (es->hidden < 0 || es->hidden > 4096)
    return ag_error_set(AG_ERR_INVALID, "es: hidden size must be 1..4096, got %d", es->hidden);
  if (es->threads < 0) return ag_error_set(AG_ERR_INVALID, "es: threads must be >= 0");
  return AG_OK;
}

void shaping_es_note_error(char *first_error, size_t size) {
#pragma omp critical(shaping_es_error)
  if (!first_error[0]) snprintf(first_error, size, "%s", ag_error_message());
}

ag_status shaping_es_generation_end(ag_openes *const *opt, int K, int pop,
                                    const ag_status *member_st, const char *first_error,
                                    const double *fitness, int generation,
                                    const ag_shaping_es_config *es, ag_shaping_es_observer observe,
                                    void *ctx) {
  for (int m = 0; m < pop; m++)
    if (member_st[m]) return ag_error_set(member_st[m], "%s", first_error);
  double mean_fit[AG_GAME_MAX_PLAYERS], best_fit[AG_GAME_MAX_PLAYERS];
  ag_status st = AG_OK;
  for (int k = 0; k < K && !st; k++) {
    const double *f = fitness + (size_t)k * pop;
    mean_fit[k] = 0;
    best_fit[k] = f[0];
    for (int m = 0; m < pop; m++) {
      mean_fit[k] += f[m] / pop;
      if (f[m] > best_fit[k]) best_fit[k] = f[m];
    }
    st = ag_openes_tell(opt[k], f);
  }
  if (!st && observe) {
    ag_shaping_es_report r = {.generation = generation,
                              .generations = es->generations,
                              .es_seats = K,
                              .mean_fitness = mean_fit,
                              .best_fitness = best_fit};
    st = observe(&r, ctx);
  }
  return st;
}

ag_status ag_shaping_es_train(const ag_shaping_run_config *run, const ag_shaping_es_config *es,
                              double *params, ag_shaping_es_observer observe, void *ctx) {
  if (!run || !es || !params)
    return ag_error_set(AG_ERR_INVALID, "ag_shaping_es_train: NULL argument");
  ag_status st = shaping_es_check(es);
  if (st) return st;
  ag_shaping_run_config rc = *run;
  rc.shaper_hidden = es->hidden > 0 ? es->hidden : AG_SHAPER_DEFAULT_HIDDEN;
  rc.shaper_params = NULL;
  int threads = es->threads > 0 ? es->threads : ag_threads_get();
  if (threads < 1) threads = 1;
  if (threads > es->population) threads = es->population;

  shaping_episode **work = calloc((size_t)threads, sizeof *work);
  if (!work) return ag_error_set(AG_ERR_NOMEM, "es: out of memory");
  for (int t = 0; t < threads && !st; t++) st = shaping_episode_new(&rc, &work[t]);
  if (st) goto cleanup_work;
  const int K = work[0]->es_count, D = work[0]->param_count, n = work[0]->n;
  const int pop = es->population;
  if (K == 0) {
    st = ag_error_set(AG_ERR_INVALID, "es: no 'es' seat to train");
    goto cleanup_work;
  }
  ag_openes *opt[AG_GAME_MAX_PLAYERS] = {0};
  double *cand = calloc((size_t)threads * K * D, sizeof(double)); /* per thread (K, D) */
  double *fitness = calloc((size_t)K * pop, sizeof(double));      /* (K, pop) */
  double *rewards = calloc((size_t)threads * n, sizeof(double));
  ag_status *member_st = calloc((size_t)pop, sizeof(ag_status));
  char first_error[512] = "";
  if (!cand || !fitness || !rewards || !member_st) {
    st = ag_error_set(AG_ERR_NOMEM, "es: out of memory");
    goto cleanup;
  }
  for (int k = 0; k < K && !st; k++) {
    ag_rng rng;
    ag_rng_seed2(&rng, es->seed, shaping_mix_seed(SHAPING_STREAM_INIT, (uint64_t)k, 0));
    ag_shaper_init(n, rc.shaper_hidden, &rng, params + (size_t)k * D);
    ag_openes_config oc = {.dim = D,
                           .population = pop,
                           .sigma = es->sigma,
                           .lr = es->lr,
                           .seed =
                               shaping_mix_seed(es->seed, SHAPING_STREAM_DIRECTIONS, (uint64_t)k)};
    st = ag_openes_new(&oc, params + (size_t)k * D, &opt[k]);
  }
  /* One thread: no parallel region, and serial BLAS (see internal.h). */
  int blas = threads == 1 ? shaping_blas_serial_begin() : 0;
  for (int gen = 0; gen < es->generations && !st; gen++) {
    const double *asked[AG_GAME_MAX_PLAYERS];
    for (int k = 0; k < K; k++) asked[k] = ag_openes_ask(opt[k]);
    memset(fitness, 0, sizeof(double) * (size_t)K * pop);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (int m = 0; m < pop; m++) {
      int t = omp_get_thread_num();
      shaping_episode *w = work[t];
      double *mine = cand + (size_t)t * K * D, *rew = rewards + (size_t)t * n;
      /* Candidate m of every shaper plays together; each ES is told its own
       * shaper's reward. */
      for (int k = 0; k < K; k++)
        memcpy(mine + (size_t)k * D, asked[k] + (size_t)m * D, sizeof(double) * (size_t)D);
      ag_status ms = AG_OK;
      for (int e = 0; e < es->episodes && !ms; e++) {
        /* Every candidate of a generation meets the same starts. */
        uint64_t start =
            shaping_mix_seed(es->seed, SHAPING_STREAM_STARTS, (uint64_t)gen * es->episodes + e);
        ms = shaping_episode_run(w, mine, start, NULL, NULL, rew);
        for (int k = 0; k < K && !ms; k++)
          fitness[(size_t)k * pop + m] += rew[w->es_seat[k]] / es->episodes;
      }
      member_st[m] = ms;
      if (ms) shaping_es_note_error(first_error, sizeof first_error);
    }
    st = shaping_es_generation_end(opt, K, pop, member_st, first_error, fitness, gen + 1, es,
                                   observe, ctx);
  }
  shaping_blas_serial_end(blas);
  for (int k = 0; k < K && !st; k++)
    memcpy(params + (size_t)k * D, ag_openes_mean(opt[k]), sizeof(double) * (size_t)D);
cleanup:
  for (int k = 0; k < K; k++) ag_openes_free(opt[k]);
  free(cand);
  free(fitness);
  free(rewards);
  free(member_st);
cleanup_work:
  for (int t = 0; t < threads; t++) shaping_episode_free(work[t]);
  free(work);
  return st;
}
