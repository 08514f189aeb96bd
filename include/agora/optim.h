/* Optimizers over a parameter store, gradient clipping, LR schedules. */
#ifndef AGORA_OPTIM_H
#define AGORA_OPTIM_H

#include "agora/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ag_optim_kind { AG_OPTIM_SGD = 0, AG_OPTIM_ADAMW = 1 } ag_optim_kind;

typedef struct ag_optim_config {
  ag_optim_kind kind;
  float lr;
  float weight_decay; /* SGD: L2 added to the gradient; AdamW: decoupled */
  /* SGD */
  float momentum;
  bool nesterov;
  /* AdamW */
  float beta1, beta2, eps;
} ag_optim_config;

/* PyTorch's defaults: SGD momentum 0; AdamW betas (0.9, 0.999), eps 1e-8,
 * weight decay 0.01. */
ag_optim_config ag_optim_sgd_defaults(float lr);
ag_optim_config ag_optim_adamw_defaults(float lr);

/* State (momentum buffers, Adam moments, step count) lives in the optimizer,
 * laid out like params->data, so it saves and restores as flat arrays. */
typedef struct ag_optim {
  ag_optim_config config;
  ag_params *params;
  int64_t step;  /* updates done */
  float *state1; /* SGD momentum buffer / Adam first moment (params->total) */
  float *state2; /* Adam second moment (params->total), NULL for SGD */
} ag_optim;

ag_status ag_optim_create(ag_params *params, const ag_optim_config *config, ag_optim **out);
void ag_optim_destroy(ag_optim *o);
/* One update from params->grad at learning rate lr (the schedule's value;
 * config.lr is ignored here so schedules stay outside). */
ag_status ag_optim_step(ag_optim *o, float lr);

/* Saves the optimizer's buffers to a safetensors file (F32) under PyTorch's
 * state names: "momentum_buffer.<param>" for SGD, "exp_avg.<param>" and
 * "exp_avg_sq.<param>" for AdamW; metadata {"optimizer": "sgd"|"adamw",
 * "step": "N"}. */
ag_status ag_optim_save(const char *path, const ag_optim *o);
/* Loads buffers that ag_optim_save wrote for the same parameters into o
 * (a missing or differently sized tensor is an error naming it) and sets
 * o->step from the metadata when it is there. */
ag_status ag_optim_load(const char *path, ag_optim *o);
void ag_optim_reset(ag_optim *o);

/* Scales all gradients so their global L2 norm is at most max_norm; returns
 * the norm before clipping. */
float ag_clip_grad_norm(ag_params *params, float max_norm);

typedef enum ag_schedule_kind {
  AG_SCHEDULE_CONSTANT = 0,
  AG_SCHEDULE_WARMUP_COSINE, /* linear 0 -> lr over warmup_steps, cosine to min_lr at total_steps */
  AG_SCHEDULE_STEP           /* lr * gamma^(floor(step / step_size)) */
} ag_schedule_kind;

typedef struct ag_schedule {
  ag_schedule_kind kind;
  float lr;
  float min_lr;
  int64_t warmup_steps;
  int64_t total_steps;
  int64_t step_size;
  float gamma;
} ag_schedule;

/* The learning rate for update number `step` (0-based). */
float ag_schedule_lr(const ag_schedule *s, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
