/* Optimizers (SGD, AdamW) over a parameter store's flat data/grad arrays,
 * gradient clipping by global norm, and learning-rate schedules. The update
 * rules follow torch.optim.SGD and torch.optim.AdamW so that hyperparameters
 * carry over from PyTorch recipes unchanged. */
#include "agora/optim.h"

#include "agora/safetensors.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Below this many floats a parallel region costs more than it saves. */
#define PARALLEL_MIN_FLOATS 32768

/* M_PI is not part of C17. */
static const double PI = 3.14159265358979323846;

ag_optim_config ag_optim_sgd_defaults(float lr) {
  ag_optim_config c;
  memset(&c, 0, sizeof c);
  c.kind = AG_OPTIM_SGD;
  c.lr = lr;
  c.weight_decay = 0.0f;
  c.momentum = 0.0f;
  c.nesterov = false;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.eps = 1e-8f;
  return c;
}

ag_optim_config ag_optim_adamw_defaults(float lr) {
  ag_optim_config c = ag_optim_sgd_defaults(lr);
  c.kind = AG_OPTIM_ADAMW;
  c.weight_decay = 0.01f;
  return c;
}

static ag_status check_config(const ag_optim_config *c) {
  if (c->kind != AG_OPTIM_SGD && c->kind != AG_OPTIM_ADAMW)
    return ag_error_set(AG_ERR_INVALID, "optim: unknown optimizer kind %d", (int)c->kind);
  if (!(c->weight_decay >= 0.0f))
    return ag_error_set(AG_ERR_INVALID, "optim: weight_decay %g must be >= 0",
                        (double)c->weight_decay);
  if (c->kind == AG_OPTIM_SGD) {
    if (!(c->momentum >= 0.0f))
      return ag_error_set(AG_ERR_INVALID, "optim: SGD momentum %g must be >= 0",
                          (double)c->momentum);
    /* As in PyTorch: Nesterov momentum needs a momentum. */
    if (c->nesterov && c->momentum <= 0.0f)
      return ag_error_set(AG_ERR_INVALID, "optim: SGD with nesterov needs momentum > 0");
  } else {
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f))
      return ag_error_set(AG_ERR_INVALID, "optim: AdamW betas (%g, %g) must be in [0, 1)",
                          (double)c->beta1, (double)c->beta2);
    if (!(c->eps >= 0.0f))
      return ag_error_set(AG_ERR_INVALID, "optim: AdamW eps %g must be >= 0", (double)c->eps);
  }
  return AG_OK;
}

ag_status ag_optim_create(ag_params *params, const ag_optim_config *config, ag_optim **out) {
  *out = NULL;
  if (!params || !config) return ag_error_set(AG_ERR_INVALID, "optim: params and config needed");
  if (!params->finalized)
    return ag_error_set(AG_ERR_INVALID, "optim: the parameter store is not finalized");
  ag_status st = check_config(config);
  if (st) return st;
  ag_optim *o = calloc(1, sizeof *o);
  if (!o) return ag_error_set(AG_ERR_NOMEM, "optim: out of memory");
  o->config = *config;
  o->params = params;
  size_t n = (size_t)(params->total ? params->total : 1);
  /* state1 exists for every optimizer (plain SGD leaves it at zero) so code
   * that saves optimizer state never meets a NULL first buffer. */
  o->state1 = ag_calloc_large(n * sizeof(float));
  if (config->kind == AG_OPTIM_ADAMW) o->state2 = ag_calloc_large(n * sizeof(float));
  if (!o->state1 || (config->kind == AG_OPTIM_ADAMW && !o->state2)) {
    ag_optim_destroy(o);
    return ag_error_set(AG_ERR_NOMEM, "optim: cannot allocate state for %lld parameters",
                        (long long)params->total);
  }
  *out = o;
  return AG_OK;
}

void ag_optim_destroy(ag_optim *o) {
  if (!o) return;
  free(o->state1);
  free(o->state2);
  free(o);
}

void ag_optim_reset(ag_optim *o) {
  size_t n = (size_t)(o->params->total ? o->params->total : 1);
  memset(o->state1, 0, n * sizeof(float));
  if (o->state2) memset(o->state2, 0, n * sizeof(float));
  o->step = 0;
}

/* torch.optim.SGD (dampening 0):
 *   d = g + wd * p
 *   buf = d on the first step, else momentum * buf + d
 *   d = d + momentum * buf (nesterov) or buf
 *   p -= lr * d */
static void sgd_step(ag_optim *o, float lr) {
  const ag_optim_config *c = &o->config;
  float *p = o->params->data;
  const float *g = o->params->grad;
  float *buf = o->state1;
  const int64_t n = o->params->total;
  const float wd = c->weight_decay, mu = c->momentum;
  const bool first = o->step == 0, nesterov = c->nesterov;
  if (mu == 0.0f) {
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_FLOATS)
    for (int64_t i = 0; i < n; i++) p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_FLOATS)
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float b = first ? d : mu * buf[i] + d;
    buf[i] = b;
    d = nesterov ? d + mu * b : b;
    p[i] -= lr * d;
  }
}

/* torch.optim.AdamW (amsgrad off):
 *   p *= 1 - lr * wd                      (decoupled weight decay)
 *   m = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
static void adamw_step(ag_optim *o, float lr) {
  const ag_optim_config *c = &o->config;
  float *p = o->params->data;
  const float *g = o->params->grad;
  float *m = o->state1, *v = o->state2;
  const int64_t n = o->params->total;
  const double t = (double)(o->step + 1);
  const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
  const float decay = (float)(1.0 - (double)lr * (double)c->weight_decay);
  const float step_size = (float)((double)lr / (1.0 - pow((double)b1, t)));
  const float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)b2, t)));
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_FLOATS)
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i];
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
    p[i] = p[i] * decay - step_size * mi / denom;
  }
}

ag_status ag_optim_step(ag_optim *o, float lr) {
  if (!o) return ag_error_set(AG_ERR_INVALID, "optim: step on NULL optimizer");
  if (!isfinite(lr)) return ag_error_set(AG_ERR_INVALID, "optim: learning rate %g", (double)lr);
  if (o->config.kind == AG_OPTIM_SGD)
    sgd_step(o, lr);
  else
    adamw_step(o, lr);
  o->step++;
  return AG_OK;
}

/* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that
 * is below 1. A non-finite norm leaves the gradients untouched: the caller
 * sees it in the return value and can skip the step. */
float ag_clip_grad_norm(ag_params *params, float max_norm) {
  if (!params || !params->grad) return 0.0f;
  float *g = params->grad;
  const int64_t n = params->total;
  double sum = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : sum) if (n >= PARALLEL_MIN_FLOATS)
  for (int64_t i = 0; i < n; i++) sum += (double)g[i] * (double)g[i];
  const double norm = sqrt(sum);
  if (!isfinite(norm)) return (float)norm;
  const double coef = (double)max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    const float scale = (float)coef;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_FLOATS)
    for (int64_t i = 0; i < n; i++) g[i] *= scale;
  }
  return (float)norm;
}

float ag_schedule_lr(const ag_schedule *s, int64_t step) {
  if (step < 0) step = 0;
  switch (s->kind) {
  case AG_SCHEDULE_CONSTANT: return s->lr;
  case AG_SCHEDULE_WARMUP_COSINE: {
    /* Hugging Face's get_cosine_schedule_with_warmup, decaying to min_lr:
     * 0 at step 0, lr at warmup_steps, min_lr at total_steps and after. */
    if (step < s->warmup_steps) return (float)((double)s->lr * (double)step / s->warmup_steps);
    if (step >= s->total_steps) return s->min_lr;
    const double progress =
        (double)(step - s->warmup_steps) / (double)(s->total_steps - s->warmup_steps);
    const double cosine = 0.5 * (1.0 + cos(PI * progress));
    return (float)((double)s->min_lr + ((double)s->lr - (double)s->min_lr) * cosine);
  }
  case AG_SCHEDULE_STEP:
    if (s->step_size <= 0) return s->lr;
    return (float)((double)s->lr * pow((double)s->gamma, (double)(step / s->step_size)));
  }
  return s->lr;
}

/* ---- saving and loading the buffers ----------------------------------------------- */

#define STATE_NAME_BYTES 256

static const char *state_name(const ag_optim *o, int which) {
  if (o->config.kind == AG_OPTIM_SGD) return "momentum_buffer";
  return which == 0 ? "exp_avg" : "exp_avg_sq";
}

ag_status ag_optim_save(const char *path, const ag_optim *o) {
  const ag_params *p = o->params;
  int buffers = o->state2 ? 2 : 1, count = buffers * p->count;
  ag_tensor *views = calloc((size_t)count + 1, sizeof *views);
  ag_st_write_item *items = calloc((size_t)count + 1, sizeof *items);
  char *names = calloc((size_t)count + 1, STATE_NAME_BYTES);
  ag_status st = views && items && names ? AG_OK : ag_error_set(AG_ERR_NOMEM, "out of memory");
  for (int b = 0; b < buffers && !st; b++) {
    float *state = b == 0 ? o->state1 : o->state2;
    for (int i = 0; i < p->count; i++) {
      int k = b * p->count + i;
      const ag_tensor *param = p->tensors[i];
      views[k] = *param;
      views[k].data = state + ag_params_offset(p, param);
      views[k].grad = NULL;
      char *name = names + (size_t)k * STATE_NAME_BYTES;
      snprintf(name, STATE_NAME_BYTES, "%s.%s", state_name(o, b), param->name);
      items[k] = (ag_st_write_item){name, &views[k]};
    }
  }
  char step_text[32];
  snprintf(step_text, sizeof step_text, "%lld", (long long)o->step);
  const char *metadata[] = {"optimizer", o->config.kind == AG_OPTIM_ADAMW ? "adamw" : "sgd", "step",
                            step_text, NULL};
  if (!st) st = ag_safetensors_write(path, items, count, AG_DTYPE_F32, metadata);
  free(views);
  free(items);
  free(names);
  return st;
}

ag_status ag_optim_load(const char *path, ag_optim *o) {
  ag_safetensors *f;
  ag_status st = ag_safetensors_open(path, &f);
  if (st) return st;
  const ag_params *p = o->params;
  int buffers = o->state2 ? 2 : 1;
  for (int b = 0; b < buffers && !st; b++) {
    float *state = b == 0 ? o->state1 : o->state2;
    for (int i = 0; i < p->count && !st; i++) {
      char name[STATE_NAME_BYTES];
      snprintf(name, sizeof name, "%s.%s", state_name(o, b), p->tensors[i]->name);
      const ag_st_entry *e = ag_safetensors_find(f, name);
      if (!e)
        st = ag_error_set(AG_ERR_FORMAT, "%s: no tensor \"%s\"", path, name);
      else if (e->numel != p->tensors[i]->numel)
        st = ag_error_set(AG_ERR_SHAPE, "%s: \"%s\" has %lld values, expected %lld", path, name,
                          (long long)e->numel, (long long)p->tensors[i]->numel);
      else
        st = ag_safetensors_read_f32(e, state + ag_params_offset(p, p->tensors[i]));
    }
  }
  json_t *meta = !st && f->metadata_json ? json_loads(f->metadata_json, 0, NULL) : NULL;
  const char *step = json_string_value(json_object_get(meta, "step"));
  if (!st && step) o->step = atoll(step);
  json_decref(meta);
  ag_safetensors_close(f);
  return st;
}
