/* Policy-gradient fine-tuning of language models on whole conversations
 * (learn layer): the generic pieces of GRPO (Shao et al. 2024, "DeepSeekMath")
 * and of rejection-sampling fine-tuning, used by `agora sml train`
 * (docs/sml.md).
 *
 *   - rewards: 1 for a dialogue solved at student turn k, discounted per
 *     turn: gamma^(k-1); 0 when unsolved;
 *   - group-normalised advantages: A_i = (r_i - mean) / (std + eps) within
 *     each group of rollouts of one task (std the sample standard deviation,
 *     n - 1 in the divisor, as TRL computes it); a group whose rewards are all
 *     equal, or of one rollout, gets zero advantages;
 *   - a batch: conversations rendered with a chat template into rows of
 *     token ids and targets, loss only on the tokens of the messages whose
 *     name is chosen (e.g. "student"; the mask of agora/lm_train.h), each row
 *     carrying one weight (its advantage; 1 for plain fine-tuning);
 *   - the loss -sum_t w_t log pi(token_t) / (counted tokens), and one update
 *     (AdamW, clipping) over a whole batch.
 *
 * One update per batch of fresh rollouts: the policy that sampled the batch
 * is the one being updated, so the PPO probability ratio is exactly 1 and
 * its clipping would never act; it is left out. The optional KL penalty to
 * a reference model enters as a per-token weight: w_t = A - beta * (log pi(t)
 * - log pi_ref(t)), whose policy gradient is the score-function gradient of
 * KL(pi || pi_ref) on the sampled tokens (Ziegler et al. 2019's reward
 * penalty, applied per token). */
#ifndef AGORA_GRPO_H
#define AGORA_GRPO_H

#include "agora/lm_train.h"
#include "agora/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gamma^(turns_used - 1) when solved (turns_used >= 1), else 0. */
double ag_grpo_turn_reward(bool solved, int turns_used, double gamma);

/* Advantages of n rewards in consecutive groups of group_size (n a multiple
 * of it): (r - group mean) / (group sample std + eps); zero for a group
 * whose rewards are all equal and for group_size 1. Never NaN for finite
 * rewards. */
ag_status ag_grpo_advantages(const double *rewards, int64_t n, int64_t group_size, double eps,
                             double *advantages);

/* One conversation of a batch and the weight of its trained tokens. */
typedef struct ag_grpo_sequence {
  const ag_chat_message *messages;
  int count;
  float weight;
} ag_grpo_sequence;

/* Rows of token ids and targets, padded to the longest row. */
typedef struct ag_grpo_batch {
  int64_t rows, T;   /* (rows, T) */
  int32_t *ids;      /* (rows, T) */
  int32_t *targets;  /* (rows, T): the next id, -1 where no loss is taken */
  float *weights;    /* (rows, T): the row's weight where a target counts, else 0 */
  int64_t *source;   /* (rows): the index of the sequence each row came from */
  int64_t tokens;    /* targets that count */
  int64_t skipped;   /* sequences with no trained message (no row) */
  int64_t truncated; /* sequences cut at the window length */
} ag_grpo_batch;

/* Renders each sequence with o's template (o->seq_len tokens at most, cut
 * beyond) and masks all but the messages o chooses (o->train_names; e.g.
 * {"student"}, or {"student", "teacher"} to also predict the teacher). A
 * sequence with weight 0 still makes a row (its tokens count, with weight
 * 0: they add nothing to the loss). */
ag_status ag_grpo_batch_build(const ag_tokenizer *tok, const ag_lm_data_options *o,
                              const ag_grpo_sequence *seqs, int64_t n, ag_grpo_batch *out);
void ag_grpo_batch_clear(ag_grpo_batch *b);

/* scale * sum_i w_i * (-log softmax(logits_i)[target_i]) over rows whose
 * target is not -1: logits (N, V), targets and weights (N). With scale
 * 1 / (counted tokens) this is the policy-gradient loss
 * -sum_t A_t log pi(t) / tokens. A row with target -1 or weight 0 gets an
 * exactly zero gradient. */
ag_tensor *ag_grpo_token_loss(ag_tape *t, ag_tensor *logits, const int32_t *targets,
                              const float *weights, float scale);

typedef struct ag_grpo_update_options {
  int64_t micro_batch; /* rows per forward (gradients accumulate); 0: all */
  float lr;
  float clip_norm; /* 0: no clipping */
  /* KL penalty to a reference model with the same vocabulary (beta 0: off;
   * beta > 0 needs reference). */
  float kl_beta;
  ag_transformer *reference;
} ag_grpo_update_options;

typedef struct ag_grpo_update_stats {
  double loss;      /* the weighted loss the update descended */
  double nll;       /* mean -log pi over the counted tokens (weights ignored) */
  double kl;        /* mean log pi - log pi_ref over the counted tokens (0 when off) */
  double grad_norm; /* before clipping */
  int64_t tokens;
} ag_grpo_update_stats;

/* One update of params (the model's or its adapters') from batch b: zero
 * the gradients, forward and backward every micro-batch with the loss
 * scaled by 1 / b->tokens, clip, optimizer step at o->lr. A batch with no
 * counted token changes nothing. */
ag_status ag_grpo_update(ag_transformer *model, ag_params *params, ag_optim *optim,
                         const ag_grpo_batch *b, const ag_grpo_update_options *o,
                         ag_grpo_update_stats *stats);

/* Optimizer state for checkpoints: ag_optim_save / ag_optim_load
 * (agora/optim.h). */

#ifdef __cplusplus
}
#endif
#endif
