/* The sampled mode of opponent shaping (agora/shaping.h): PPO learners with
 * GRU policies, and fixed strategies, playing batches of sampled inner
 * episodes (ag_game_batch); each iteration every PPO seat updates on the
 * batch it just played.
 *
 * The policy of a PPO seat, over its own view of the game (its state, one
 * of 2^n + 1, as a one-hot input), in PyTorch's GRU convention:
 *   gx = Wx[state] + bx,  gh = U h + bh                 (3 H each: z, r, n)
 *   z = sigmoid(gx_z + gh_z), r = sigmoid(gx_r + gh_r)
 *   c = tanh(gx_n + r * gh_n),  h' = (1 - z) c + z h
 *   P(cooperate) = sigmoid(wp . h' + bp),  value = wv . h' + bv.
 * Rollouts run it on plain float arrays; updates replay the same arithmetic
 * on the tape (backpropagation through the whole inner episode). PPO: GAE
 * advantages (normalised per batch), the clipped surrogate (the clipped
 * samples get no gradient: the gradient of min(r A, clip(r) A)), a value
 * loss and an entropy bonus, several epochs of Adam on the batch. */
#include "agora/ops.h"
#include "agora/optim.h"
#include "agora/shaping.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

ag_ppo_config ag_ppo_defaults(void) {
  return (ag_ppo_config){.hidden = 16,
                         .episodes = 32,
                         .steps = 100,
                         .gamma = 0.96,
                         .lambda = 0.95,
                         .lr = 0.01,
                         .clip = 0.2,
                         .epochs = 4,
                         .value_coef = 0.5,
                         .entropy_coef = 0.01};
}

/* One PPO seat: its parameters, optimizer and tape. */
typedef struct ppo_agent {
  ag_params *params;
  ag_tensor *wx, *bx, *u, *bh, *wp, *bp, *wv, *bv;
  ag_optim *optim;
  ag_tape *tape;
} ppo_agent;

static void agent_free(ppo_agent *a) {
  if (a->tape) ag_tape_destroy(a->tape);
  if (a->optim) ag_optim_destroy(a->optim);
  if (a->params) ag_params_destroy(a->params);
  memset(a, 0, sizeof *a);
}

static ag_status agent_init(ppo_agent *a, int states, int hidden, double lr, ag_rng *rng) {
  memset(a, 0, sizeof *a);
  int64_t H = hidden, S = states;
  a->params = ag_params_create();
  if (!a->params) return ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  a->wx = ag_params_add(a->params, "wx", 2, (int64_t[]){S, 3 * H});
  a->bx = ag_params_add(a->params, "bx", 1, (int64_t[]){3 * H});
  a->u = ag_params_add(a->params, "u", 2, (int64_t[]){3 * H, H});
  a->bh = ag_params_add(a->params, "bh", 1, (int64_t[]){3 * H});
  a->wp = ag_params_add(a->params, "wp", 2, (int64_t[]){1, H});
  a->bp = ag_params_add(a->params, "bp", 1, (int64_t[]){1});
  a->wv = ag_params_add(a->params, "wv", 2, (int64_t[]){1, H});
  a->bv = ag_params_add(a->params, "bv", 1, (int64_t[]){1});
  ag_status st = a->wx && a->bx && a->u && a->bh && a->wp && a->bp && a->wv && a->bv
                     ? ag_params_finalize(a->params)
                     : ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  if (st) return st;
  /* PyTorch's GRU init: U(-1/sqrt(H), 1/sqrt(H)) everywhere; the heads small
   * so that the first policy is near 50/50. */
  float k = 1.0f / sqrtf((float)H);
  for (int64_t i = 0; i < a->params->total; i++)
    a->params->data[i] = k * (2.0f * ag_rng_uniform(rng) - 1.0f);
  for (int64_t i = 0; i < H; i++) a->wp->data[i] *= 0.1f;
  a->bp->data[0] = 0;
  ag_optim_config oc = ag_optim_adamw_defaults((float)lr);
  oc.weight_decay = 0;
  st = ag_optim_create(a->params, &oc, &a->optim);
  if (!st) a->tape = ag_tape_create();
  if (!st && !a->tape) st = ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  return st;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* One GRU step for one episode on plain arrays: h (H) updated in place;
 * returns the cooperation logit, *value the value estimate. */
static float agent_step(const ppo_agent *a, int H, int state, float *h, float *value) {
  float gh[3 * 64], hn[64];
  const float *gx = a->wx->data + (int64_t)state * 3 * H;
  for (int o = 0; o < 3 * H; o++) {
    float s = a->bh->data[o];
    const float *row = a->u->data + (int64_t)o * H;
    for (int k = 0; k < H; k++) s += row[k] * h[k];
    gh[o] = s;
  }
  for (int k = 0; k < H; k++) {
    float z = sigmoidf(gx[k] + a->bx->data[k] + gh[k]);
    float r = sigmoidf(gx[H + k] + a->bx->data[H + k] + gh[H + k]);
    float c = tanhf(gx[2 * H + k] + a->bx->data[2 * H + k] + r * gh[2 * H + k]);
    hn[k] = (1 - z) * c + z * h[k];
  }
  float logit = a->bp->data[0], v = a->bv->data[0];
  for (int k = 0; k < H; k++) {
    h[k] = hn[k];
    logit += a->wp->data[k] * hn[k];
    v += a->wv->data[k] * hn[k];
  }
  *value = v;
  return logit;
}

/* What one iteration's batch holds for each PPO seat. */
typedef struct ppo_batch {
  int32_t *states;  /* (T, B) the seat's state before each step */
  float *actions;   /* (B, T, 2) one-hot of the action taken (C, D) */
  float *logp_old;  /* (B, T) */
  float *values;    /* (B, T) */
  float *rewards;   /* (B, T) */
  float *advantage; /* (B, T) */
  float *returns;   /* (B, T) */
} ppo_batch;

/* The PPO loss on the tape for one seat's batch; backward and one Adam
 * step. *loss_out: the loss's value. */
static ag_status agent_update(ppo_agent *a, const ag_ppo_config *c, const ppo_batch *b, int B,
                              int T, double *loss_out) {
  int64_t H = c->hidden;
  ag_tape *t = a->tape;
  ag_tape_reset(t);
  ag_tensor *h = ag_tape_zeros(t, 2, (int64_t[]){B, H});
  ag_tensor **logits = malloc(sizeof(ag_tensor *) * (size_t)T);
  ag_tensor **values = malloc(sizeof(ag_tensor *) * (size_t)T);
  if (!logits || !values) {
    free(logits);
    free(values);
    return ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  }
  for (int s = 0; s < T; s++) {
    ag_tensor *gx = ag_add(t, ag_embedding(t, a->wx, b->states + (int64_t)s * B, 1, (int64_t[]){B}),
                           a->bx);                /* (B, 3H) */
    ag_tensor *gh = ag_linear(t, h, a->u, a->bh); /* (B, 3H) */
    ag_tensor *z = ag_sigmoid(t, ag_add(t, ag_slice(t, gx, 1, 0, H), ag_slice(t, gh, 1, 0, H)));
    ag_tensor *r =
        ag_sigmoid(t, ag_add(t, ag_slice(t, gx, 1, H, 2 * H), ag_slice(t, gh, 1, H, 2 * H)));
    ag_tensor *cand = ag_tanh(t, ag_add(t, ag_slice(t, gx, 1, 2 * H, 3 * H),
                                        ag_mul(t, r, ag_slice(t, gh, 1, 2 * H, 3 * H))));
    h = ag_add(t, cand, ag_mul(t, z, ag_sub(t, h, cand))); /* (1 - z) c + z h */
    logits[s] = ag_linear(t, h, a->wp, a->bp);             /* (B, 1) */
    values[s] = ag_linear(t, h, a->wv, a->bv);
  }
  ag_tensor *logit = ag_concat(t, logits, T, 1); /* (B, T) */
  ag_tensor *value = ag_concat(t, values, T, 1);
  free(logits);
  free(values);
  /* log P over (C, D): logits (l, 0), so P(C) = sigmoid(l). */
  ag_tensor *two = ag_concat(t,
                             (ag_tensor *[]){ag_reshape(t, logit, 3, (int64_t[]){B, T, 1}),
                                             ag_tape_zeros(t, 3, (int64_t[]){B, T, 1})},
                             2, 2);
  ag_tensor *logp_all = ag_log_softmax(t, two, 2);
  ag_tensor *onehot = ag_tape_wrap(t, b->actions, 3, (int64_t[]){B, T, 2});
  ag_tensor *logp = ag_sum(t, ag_mul(t, logp_all, onehot), 2, false); /* (B, T) */
  ag_tensor *entropy =
      ag_scale(t, ag_sum(t, ag_mul(t, ag_exp(t, logp_all), logp_all), 2, false), -1.0f);
  ag_tensor *old = ag_tape_wrap(t, b->logp_old, 2, (int64_t[]){B, T});
  ag_tensor *ratio = ag_exp(t, ag_sub(t, logp, old));
  if (!ratio) return ag_error_set(ag_tape_status(t), "ppo: %s", ag_tape_error(t));
  /* The clipped surrogate's gradient: A * d ratio where the clip is not
   * active, 0 where it is. */
  ag_tensor *w = ag_tape_tensor(t, 2, (int64_t[]){B, T});
  if (!w) return ag_error_set(ag_tape_status(t), "ppo: %s", ag_tape_error(t));
  float *weight = w->data;
  int64_t count = (int64_t)B * T;
  for (int64_t k = 0; k < count; k++) {
    float A = b->advantage[k], rt = ratio->data[k];
    bool clipped = (A > 0 && rt > 1 + c->clip) || (A < 0 && rt < 1 - c->clip);
    weight[k] = clipped ? 0.0f : A;
  }
  ag_tensor *surrogate =
      ag_mean(t, ag_reshape(t, ag_mul(t, ratio, w), 1, (int64_t[]){count}), 0, false);
  ag_tensor *target = ag_tape_wrap(t, b->returns, 2, (int64_t[]){B, T});
  ag_tensor *err = ag_sub(t, value, target);
  ag_tensor *vloss =
      ag_mean(t, ag_reshape(t, ag_mul(t, err, err), 1, (int64_t[]){count}), 0, false);
  ag_tensor *ent = ag_mean(t, ag_reshape(t, entropy, 1, (int64_t[]){count}), 0, false);
  ag_tensor *loss = ag_add(t, ag_scale(t, surrogate, -1.0f),
                           ag_sub(t, ag_scale(t, vloss, (float)c->value_coef),
                                  ag_scale(t, ent, (float)c->entropy_coef)));
  if (!loss) return ag_error_set(ag_tape_status(t), "ppo: %s", ag_tape_error(t));
  *loss_out = loss->data[0];
  ag_params_zero_grad(a->params);
  ag_status st = ag_backward(t, loss);
  if (!st) {
    ag_clip_grad_norm(a->params, 1.0f);
    st = ag_optim_step(a->optim, (float)c->lr);
  }
  return st;
}

/* ---- the per-step shaper (es seats) ------------------------------------------ */

int ag_shaping_sampled_shaper_param_count(int players, int hidden) {
  int S = ag_game_state_count(players), H = hidden;
  return 3 * H * S + 3 * H * H + 3 * H + H + 1;
}

void ag_shaping_sampled_shaper_init(int players, int hidden, ag_rng *rng, double *params) {
  int S = ag_game_state_count(players), H = hidden;
  double *p = params, su = 1 / sqrt((double)H);
  for (int k = 0; k < 3 * H * S; k++) *p++ = ag_rng_normal(rng); /* one-hot input: fan-in 1 */
  for (int k = 0; k < 3 * H * H; k++) *p++ = su * ag_rng_normal(rng);
  for (int k = 0; k < 3 * H; k++) *p++ = 0;
  for (int k = 0; k < H; k++) *p++ = su * ag_rng_normal(rng);
  *p = 0;
}

/* One step of the shaper in `state`: h (H) updated; returns the cooperation
 * logit. scratch: 4 H doubles. */
static double shaper_act(const double *params, int S, int H, int state, double *h,
                         double *scratch) {
  const double *W = params, *U = W + 3 * H * S, *b = U + 3 * H * H, *wo = b + 3 * H;
  const double bo = wo[H];
  double *a = scratch, *rh = scratch + 3 * H;
  /* the one-hot input's W x is W's column `state` */
  for (int g = 0; g < 3 * H; g++) a[g] = W[(size_t)g * S + state] + b[g];
  shaping_gru_recur(U, H, a, rh, h);
  double logit = bo;
  for (int k = 0; k < H; k++) logit += wo[k] * h[k];
  return logit;
}

ag_status ag_shaping_sampled_check(const ag_shaping_sampled_config *cfg) {
  if (!cfg || !cfg->game || !cfg->seats)
    return ag_error_set(AG_ERR_INVALID, "shaping (sampled): NULL game or seats");
  int n = cfg->game->players;
  if (n < AG_GAME_MIN_PLAYERS || n > AG_GAME_MAX_PLAYERS)
    return ag_error_set(AG_ERR_INVALID, "shaping (sampled): players must be %d..%d, got %d",
                        AG_GAME_MIN_PLAYERS, AG_GAME_MAX_PLAYERS, n);
  for (int i = 0; i < n; i++) {
    ag_shaping_learner l = cfg->seats[i];
    if (l != AG_LEARNER_PPO && l != AG_LEARNER_ES && !ag_shaping_learner_is_fixed(l))
      return ag_error_set(AG_ERR_INVALID,
                          "shaping (sampled): seat %d is '%s'; the sampled mode has ppo and es "
                          "seats and fixed strategies (allc, alld, tft, tft-maj)",
                          i, ag_shaping_learner_name(l));
    if (l == AG_LEARNER_ES && !cfg->shaper_params)
      return ag_error_set(AG_ERR_INVALID,
                          "shaping (sampled): seat %d is 'es' and needs trained shaper "
                          "parameters (ag_shaping_sampled_es_train)",
                          i);
  }
  if (cfg->shaper_hidden < 0 || cfg->shaper_hidden > 4096)
    return ag_error_set(AG_ERR_INVALID, "shaping (sampled): shaper hidden size must be 1..4096");
  const ag_ppo_config *c = &cfg->ppo;
  if (cfg->iterations < 0 || c->hidden < 1 || c->hidden > 64 || c->episodes < 1 || c->steps < 1 ||
      c->epochs < 1)
    return ag_error_set(AG_ERR_INVALID,
                        "shaping (sampled): needs iterations >= 0, hidden 1..64, episodes, steps "
                        "and epochs >= 1");
  if (!(c->gamma >= 0 && c->gamma < 1) || !(c->lambda >= 0 && c->lambda <= 1) || !(c->lr > 0) ||
      !(c->clip > 0) || !isfinite(c->value_coef) || !isfinite(c->entropy_coef))
    return ag_error_set(AG_ERR_INVALID, "shaping (sampled): gamma in [0, 1), lambda in [0, 1], "
                                        "lr and clip > 0, finite coefficients");
  return AG_OK;
}

/* GAE over each episode (the inner episode ends after T steps), then the
 * advantages normalised over the batch. */
static void advantages(ppo_batch *b, int B, int T, double gamma, double lambda) {
  double sum = 0, sumsq = 0;
  for (int e = 0; e < B; e++) {
    double next_value = 0, gae = 0;
    for (int s = T - 1; s >= 0; s--) {
      int64_t k = (int64_t)e * T + s;
      double delta = b->rewards[k] + gamma * next_value - b->values[k];
      gae = delta + gamma * lambda * gae;
      b->returns[k] = (float)(gae + b->values[k]);
      b->advantage[k] = (float)gae;
      next_value = b->values[k];
      sum += gae;
      sumsq += gae * gae;
    }
  }
  double count = (double)B * T, mean = sum / count;
  double sd = sqrt(fmax(sumsq / count - mean * mean, 0)) + 1e-8;
  for (int64_t k = 0; k < (int64_t)B * T; k++)
    b->advantage[k] = (float)((b->advantage[k] - mean) / sd);
}

ag_status ag_shaping_sampled_run(const ag_shaping_sampled_config *cfg,
                                 ag_shaping_sampled_observer observe, void *ctx) {
  return ag_shaping_sampled_run_mean(cfg, observe, ctx, NULL);
}

ag_status ag_shaping_sampled_run_mean(const ag_shaping_sampled_config *cfg,
                                      ag_shaping_sampled_observer observe, void *ctx,
                                      double *mean_reward) {
  ag_status st = ag_shaping_sampled_check(cfg);
  if (st) return st;
  const ag_ppo_config *c = &cfg->ppo;
  int n = cfg->game->players, S = ag_game_state_count(n), B = c->episodes, T = c->steps;
  int H = c->hidden;
  ppo_agent agents[AG_GAME_MAX_PLAYERS];
  ppo_batch batches[AG_GAME_MAX_PLAYERS];
  memset(agents, 0, sizeof agents);
  memset(batches, 0, sizeof batches);
  double fixed[AG_GAME_MAX_PLAYERS][257];
  ag_rng init;
  ag_rng_seed2(&init, cfg->seed, 0x70706f); /* "ppo" */
  int64_t BT = (int64_t)B * T;
  for (int i = 0; i < n && !st; i++) {
    if (cfg->seats[i] == AG_LEARNER_ES) continue;
    if (cfg->seats[i] != AG_LEARNER_PPO) {
      st = ag_shaping_fixed_logits(cfg->seats[i], n, fixed[i]);
      continue;
    }
    st = agent_init(&agents[i], S, H, c->lr, &init);
    ppo_batch *b = &batches[i];
    b->states = malloc(sizeof(int32_t) * (size_t)BT);
    b->actions = malloc(sizeof(float) * (size_t)(2 * BT));
    b->logp_old = malloc(sizeof(float) * (size_t)BT);
    b->values = malloc(sizeof(float) * (size_t)BT);
    b->rewards = malloc(sizeof(float) * (size_t)BT);
    b->advantage = malloc(sizeof(float) * (size_t)BT);
    b->returns = malloc(sizeof(float) * (size_t)BT);
    if (!st && (!b->states || !b->actions || !b->logp_old || !b->values || !b->rewards ||
                !b->advantage || !b->returns))
      st = ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  }
  ag_game_batch env;
  memset(&env, 0, sizeof env);
  if (!st) st = ag_game_batch_init(&env, cfg->game, B);
  /* es seats: the row of parameters and a hidden state per episode lane
   * that persists across the run's inner episodes (the meta-episode). */
  int SH = cfg->shaper_hidden > 0 ? cfg->shaper_hidden : AG_SHAPER_DEFAULT_HIDDEN;
  int shaper_count = ag_shaping_sampled_shaper_param_count(n, SH), es_row[AG_GAME_MAX_PLAYERS];
  int es_count = 0;
  for (int i = 0; i < n; i++) es_row[i] = cfg->seats[i] == AG_LEARNER_ES ? es_count++ : -1;
  double *es_hidden = calloc((size_t)(es_count * B * SH) + 1, sizeof(double));
  double *es_scratch = malloc(sizeof(double) * (size_t)(4 * SH));
  double total_reward[AG_GAME_MAX_PLAYERS] = {0};
  if (!st && (!es_hidden || !es_scratch)) st = ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  uint8_t *acts = malloc((size_t)(B * n));
  double *rew = malloc(sizeof(double) * (size_t)(B * n));
  float *hidden = calloc((size_t)(n * B * H), sizeof(float));
  if (!st && (!acts || !rew || !hidden)) st = ag_error_set(AG_ERR_NOMEM, "ppo: out of memory");
  double reward_sum[AG_GAME_MAX_PLAYERS], coop_sum[AG_GAME_MAX_PLAYERS], loss[AG_GAME_MAX_PLAYERS];
  double discounted[AG_GAME_MAX_PLAYERS], visits[1 << AG_GAME_MAX_PLAYERS];
  for (int it = 0; it <= cfg->iterations && !st; it++) {
    /* Play a batch with the current policies. */
    ag_rng rng;
    ag_rng_seed2(&rng, cfg->seed, 0x73616d70ULL + (uint64_t)it);
    ag_game_batch_reset(&env);
    memset(hidden, 0, sizeof(float) * (size_t)(n * B * H));
    for (int i = 0; i < n; i++) reward_sum[i] = coop_sum[i] = loss[i] = discounted[i] = 0;
    memset(visits, 0, sizeof(double) * (size_t)(1 << n));
    double weight = 1;
    for (int s = 0; s < T && !st; s++, weight *= c->gamma) {
      for (int e = 0; e < B; e++)
        for (int i = 0; i < n; i++) {
          int state = ag_game_batch_state(&env, e, i);
          float p;
          if (cfg->seats[i] == AG_LEARNER_PPO) {
            float v, l = agent_step(&agents[i], H, state, hidden + ((int64_t)i * B + e) * H, &v);
            p = sigmoidf(l);
            ppo_batch *b = &batches[i];
            int64_t k = (int64_t)e * T + s;
            b->states[(int64_t)s * B + e] = state;
            b->values[k] = v;
            /* log P(C) = -softplus(-l), log P(D) = -softplus(l), stably */
            float lc = l < 0 ? l - log1pf(expf(l)) : -log1pf(expf(-l));
            float ld = l > 0 ? -l - log1pf(expf(-l)) : -log1pf(expf(l));
            int d = ag_rng_uniform(&rng) >= p;
            acts[e * n + i] = (uint8_t)d;
            b->actions[2 * k] = d ? 0.0f : 1.0f;
            b->actions[2 * k + 1] = d ? 1.0f : 0.0f;
            b->logp_old[k] = d ? ld : lc;
          } else if (es_row[i] >= 0) {
            double *h = es_hidden + ((size_t)es_row[i] * B + e) * SH;
            double l = shaper_act(cfg->shaper_params + (size_t)es_row[i] * shaper_count, S, SH,
                                  state, h, es_scratch);
            acts[e * n + i] = (uint8_t)(ag_rng_uniform(&rng) >= (float)shaping_sigmoid(l));
          } else {
            p = (float)(1.0 / (1.0 + exp(-fixed[i][state])));
            acts[e * n + i] = (uint8_t)(ag_rng_uniform(&rng) >= p);
          }
          coop_sum[i] += acts[e * n + i] == 0;
        }
      st = ag_game_batch_step(&env, acts, rew);
      for (int e = 0; e < B && !st; e++) visits[env.joint[e]] += 1;
      for (int e = 0; e < B && !st; e++)
        for (int i = 0; i < n; i++) {
          reward_sum[i] += rew[e * n + i];
          discounted[i] += weight * rew[e * n + i];
          if (cfg->seats[i] == AG_LEARNER_PPO)
            batches[i].rewards[(int64_t)e * T + s] = (float)rew[e * n + i];
        }
    }
    if (st) break;
    /* Report the batch just played (iteration 0: the initial policies). */
    double per_step[AG_GAME_MAX_PLAYERS], coop[AG_GAME_MAX_PLAYERS], welfare = 0, rate = 0;
    for (int a = 0; a < (1 << n); a++) visits[a] /= (double)BT;
    for (int i = 0; i < n; i++) {
      discounted[i] /= B;
      per_step[i] = reward_sum[i] / (double)BT;
      total_reward[i] += per_step[i];
      coop[i] = coop_sum[i] / (double)BT;
      welfare += per_step[i] / n;
      rate += coop[i] / n;
    }
    /* Then every PPO seat learns from it (not after the last report). */
    if (it < cfg->iterations)
      for (int i = 0; i < n && !st; i++) {
        if (cfg->seats[i] != AG_LEARNER_PPO) continue;
        advantages(&batches[i], B, T, c->gamma, c->lambda);
        for (int k = 0; k < c->epochs && !st; k++)
          st = agent_update(&agents[i], c, &batches[i], B, T, &loss[i]);
      }
    if (!st && observe) {
      ag_shaping_sampled_record r = {.iteration = it,
                                     .players = n,
                                     .values = discounted,
                                     .reward_per_step = per_step,
                                     .cooperation = coop,
                                     .loss = loss,
                                     .welfare = welfare,
                                     .cooperation_rate = rate,
                                     .visitation = visits};
      st = observe(&r, ctx);
    }
  }
  if (!st && mean_reward)
    for (int i = 0; i < n; i++) mean_reward[i] = total_reward[i] / (cfg->iterations + 1);
  ag_game_batch_free(&env);
  free(es_hidden);
  free(es_scratch);
  free(acts);
  free(rew);
  free(hidden);
  for (int i = 0; i < n; i++) {
    agent_free(&agents[i]);
    free(batches[i].states);
    free(batches[i].actions);
    free(batches[i].logp_old);
    free(batches[i].values);
    free(batches[i].rewards);
    free(batches[i].advantage);
    free(batches[i].returns);
  }
  return st;
}
