/* GRPO's generic pieces (agora/grpo.h): turn-discounted rewards, group
 * advantages, masked and weighted batches of conversations, and one update
 * with the weighted token loss. */
#include "agora/grpo.h"

#include "agora/json.h"
#include "agora/ops.h"
#include "agora/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double ag_grpo_turn_reward(bool solved, int turns_used, double gamma) {
  if (!solved || turns_used < 1) return 0.0;
  return pow(gamma, (double)(turns_used - 1));
}

ag_status ag_grpo_advantages(const double *rewards, int64_t n, int64_t group_size, double eps,
                             double *advantages) {
  if (n < 0 || group_size < 1 || n % group_size != 0 || !(eps >= 0) || (n > 0 && !rewards) ||
      (n > 0 && !advantages))
    return ag_error_set(AG_ERR_INVALID,
                        "grpo advantages: %lld rewards do not split into groups of %lld",
                        (long long)n, (long long)group_size);
  for (int64_t g = 0; g < n; g += group_size) {
    const double *r = rewards + g;
    double *a = advantages + g;
    bool equal = true;
    double mean = 0.0;
    for (int64_t i = 0; i < group_size; i++) {
      mean += r[i];
      if (r[i] != r[0]) equal = false;
    }
    mean /= (double)group_size;
    if (equal || group_size == 1) {
      /* No rollout did better than another: nothing to learn, and the
       * division below would be 0 / 0 with eps 0. */
      for (int64_t i = 0; i < group_size; i++) a[i] = 0.0;
      continue;
    }
    double ss = 0.0;
    for (int64_t i = 0; i < group_size; i++) ss += (r[i] - mean) * (r[i] - mean);
    double sd = sqrt(ss / (double)(group_size - 1));
    for (int64_t i = 0; i < group_size; i++) a[i] = (r[i] - mean) / (sd + eps);
  }
  return AG_OK;
}

/* ---- batches ---------------------------------------------------------------------------- */

void ag_grpo_batch_clear(ag_grpo_batch *b) {
  if (!b) return;
  free(b->ids);
  free(b->targets);
  free(b->weights);
  free(b->source);
  memset(b, 0, sizeof *b);
}

ag_status ag_grpo_batch_build(const ag_tokenizer *tok, const ag_lm_data_options *o,
                              const ag_grpo_sequence *seqs, int64_t n, ag_grpo_batch *out) {
  memset(out, 0, sizeof *out);
  if (!tok || !o || (n > 0 && !seqs) || n < 0)
    return ag_error_set(AG_ERR_INVALID, "grpo batch: bad arguments");
  ag_lm_data *d = NULL;
  ag_status st = ag_lm_data_create(tok, o, &d);
  if (st) return st;
  int64_t T = ag_lm_data_seq_len(d);
  out->source = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->source);
  if (!out->source) st = ag_error_set(AG_ERR_NOMEM, "grpo batch: out of memory");
  /* One window per conversation; one that adds none had no trained message. */
  for (int64_t i = 0; i < n && !st; i++) {
    int64_t before = ag_lm_data_windows(d), cut = ag_lm_data_truncated(d);
    st = ag_lm_data_add_chat(d, seqs[i].messages, seqs[i].count);
    if (st) break;
    if (ag_lm_data_windows(d) > before) out->source[out->rows++] = i;
    if (ag_lm_data_truncated(d) > cut) out->truncated++;
  }
  out->skipped = n - out->rows;
  int32_t *ids = NULL, *targets = NULL;
  int64_t *inputs = NULL;
  if (!st && out->rows > 0) {
    size_t cells = (size_t)(out->rows * T);
    ids = malloc(cells * sizeof *ids);
    targets = malloc(cells * sizeof *targets);
    inputs = malloc((size_t)out->rows * sizeof *inputs);
    if (!ids || !targets || !inputs) st = ag_error_set(AG_ERR_NOMEM, "grpo batch: out of memory");
  }
  /* Rows as long as the longest: no forward work on padding beyond it. */
  int64_t longest = 1;
  for (int64_t r = 0; r < out->rows && !st; r++) {
    ag_lm_data_window(d, r, ids + r * T, targets + r * T, &inputs[r]);
    if (inputs[r] > longest) longest = inputs[r];
  }
  if (!st && out->rows > 0) {
    size_t cells = (size_t)(out->rows * longest);
    out->T = longest;
    out->ids = malloc(cells * sizeof *out->ids);
    out->targets = malloc(cells * sizeof *out->targets);
    out->weights = malloc(cells * sizeof *out->weights);
    if (!out->ids || !out->targets || !out->weights)
      st = ag_error_set(AG_ERR_NOMEM, "grpo batch: out of memory");
    for (int64_t r = 0; r < out->rows && !st; r++) {
      float w = seqs[out->source[r]].weight;
      for (int64_t t = 0; t < longest; t++) {
        int64_t k = r * longest + t;
        out->ids[k] = ids[r * T + t];
        out->targets[k] = targets[r * T + t];
        bool counts = out->targets[k] >= 0;
        out->weights[k] = counts ? w : 0.0f;
        out->tokens += counts;
      }
    }
  }
  free(ids);
  free(targets);
  free(inputs);
  ag_lm_data_free(d);
  if (st) ag_grpo_batch_clear(out);
  return st;
}

/* ---- the loss and the update ------------------------------------------------------------ */

ag_tensor *ag_grpo_token_loss(ag_tape *t, ag_tensor *logits, const int32_t *targets,
                              const float *weights, float scale) {
  /* Cross-entropy with per-row weights, summed: sum_i w_i * nll_i. */
  return ag_scale(t, ag_cross_entropy(t, logits, targets, weights, -1, true), scale);
}

/* log softmax(row)[target] for each counted row of logits (N, V) into lp. */
static void token_log_probs(const float *logits, const int32_t *targets, int64_t N, int64_t V,
                            float *lp) {
#pragma omp parallel for if (N * V >= 65536) schedule(static)
  for (int64_t i = 0; i < N; i++) {
    lp[i] = 0.0f;
    if (targets[i] < 0) continue;
    const float *row = logits + i * V;
    float max = row[0];
    for (int64_t c = 1; c < V; c++) max = row[c] > max ? row[c] : max;
    double sum = 0.0;
    for (int64_t c = 0; c < V; c++) sum += exp((double)(row[c] - max));
    // cppcheck-suppress invalidFunctionArg ; sum >= 1: the max term is exp(0)
    lp[i] = (float)((double)(row[targets[i]] - max) - log(sum));
  }
}

/* Reference log-probabilities of a micro-batch's targets, gradients off. */
static ag_status reference_log_probs(ag_transformer *ref, const int32_t *ids,
                                     const int32_t *targets, int64_t B, int64_t T, float *lp) {
  ag_tape *t = ag_tape_create();
  if (!t) return ag_error_set(AG_ERR_NOMEM, "grpo: out of memory");
  ag_tape_set_grad_enabled(t, false);
  ag_tape_set_training(t, false);
  ag_tensor *logits = ag_transformer_forward(t, ref, ids, B, T); /* (B, T, V) */
  ag_status st = AG_OK;
  if (!logits)
    st = ag_error_set(ag_tape_status(t), "grpo reference: %s", ag_tape_error(t));
  else
    token_log_probs(logits->data, targets, B * T, logits->shape[2], lp);
  ag_tape_destroy(t);
  return st;
}

ag_status ag_grpo_update(ag_transformer *model, ag_params *params, ag_optim *optim,
                         const ag_grpo_batch *b, const ag_grpo_update_options *o,
                         ag_grpo_update_stats *stats) {
  memset(stats, 0, sizeof *stats);
  if (!model || !params || !optim || !b || !o)
    return ag_error_set(AG_ERR_INVALID, "grpo update: NULL argument");
  if (o->kl_beta > 0 && !o->reference)
    return ag_error_set(AG_ERR_INVALID, "grpo update: a KL penalty needs a reference model");
  if (b->tokens == 0) return AG_OK;
  int64_t T = b->T, mb = o->micro_batch > 0 ? o->micro_batch : b->rows;
  bool kl = o->kl_beta > 0;
  size_t cells = (size_t)(mb * T);
  float *w = kl ? malloc(cells * sizeof *w) : NULL;
  float *lp = kl ? malloc(cells * sizeof *lp) : NULL;
  float *lref = kl ? malloc(cells * sizeof *lref) : NULL;
  ag_tape *t = ag_tape_create();
  ag_status st =
      t && (!kl || (w && lp && lref)) ? AG_OK : ag_error_set(AG_ERR_NOMEM, "grpo: out of memory");
  float scale = 1.0f / (float)b->tokens;
  double loss = 0.0, nll = 0.0, kl_sum = 0.0;
  ag_params_zero_grad(params);
  for (int64_t r0 = 0; r0 < b->rows && !st; r0 += mb) {
    int64_t B = b->rows - r0 < mb ? b->rows - r0 : mb;
    const int32_t *ids = b->ids + r0 * T, *targets = b->targets + r0 * T;
    const float *weights = b->weights + r0 * T;
    if (kl) st = reference_log_probs(o->reference, ids, targets, B, T, lref);
    if (st) break;
    ag_tape_reset(t);
    ag_tensor *logits = ag_transformer_forward(t, model, ids, B, T); /* (B, T, V) */
    if (logits) logits = ag_reshape(t, logits, 2, (int64_t[]){B * T, logits->shape[2]});
    if (logits && kl) {
      token_log_probs(logits->data, targets, B * T, logits->shape[1], lp);
      for (int64_t i = 0; i < B * T; i++) {
        w[i] = weights[i];
        if (targets[i] < 0) continue;
        float d = lp[i] - lref[i];
        kl_sum += d;
        w[i] -= o->kl_beta * d;
      }
    }
    ag_tensor *l = logits ? ag_grpo_token_loss(t, logits, targets, kl ? w : weights, scale) : NULL;
    /* The plain mean NLL for the record (no graph: grad off for this one). */
    if (l) {
      bool was = ag_tape_grad_enabled(t);
      ag_tape_set_grad_enabled(t, false);
      ag_tensor *u = ag_cross_entropy(t, logits, targets, NULL, -1, true);
      ag_tape_set_grad_enabled(t, was);
      if (u) nll += (double)u->data[0];
    }
    if (!l) {
      st = ag_error_set(ag_tape_status(t), "grpo update: %s", ag_tape_error(t));
      break;
    }
    loss += (double)l->data[0];
    st = ag_backward(t, l);
    if (st) st = ag_error_wrap(st, "grpo update: backward");
  }
  if (t) ag_tape_reset(t);
  if (!st && !isfinite(loss))
    st =
        ag_error_set(AG_ERR_INVALID,
                     "grpo update: the loss is not finite (%g): try a smaller learning rate", loss);
  if (!st) {
    float norm = ag_clip_grad_norm(params, o->clip_norm > 0 ? o->clip_norm : INFINITY);
    st = ag_optim_step(optim, o->lr);
    stats->grad_norm = norm;
  }
  stats->loss = loss;
  stats->nll = nll / (double)b->tokens;
  stats->kl = kl_sum / (double)b->tokens;
  stats->tokens = b->tokens;
  ag_tape_destroy(t);
  free(w);
  free(lp);
  free(lref);
  return st;
}
