/* Infusion's perturbation: input gradients, the mixed derivative
 * ∇ₓ⟨∇θL, v⟩ by central differences, projected sign steps, and the random
 * sign-noise baseline. Needs only a forward pass and the parameters. */
#include "agora/infusion.h"
#include "agora/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the model ---------------------------------------------------------------- */

static ag_tensor *vision_forward(void *user, ag_tape *t, ag_tensor *x) {
  return ag_vision_model_forward(t, (const ag_vision_model *)user, x);
}

void ag_infusion_vision_model(const ag_vision_model *m, ag_infusion_model *out) {
  memset(out, 0, sizeof *out);
  out->params = ag_vision_model_params(m);
  out->forward = vision_forward;
  out->user = (void *)m;
}

/* ---- input gradients ------------------------------------------------------------ */

static ag_status check_shape(const char *who, const int64_t shape[4]) {
  for (int d = 0; d < 4; d++)
    if (shape[d] <= 0)
      return ag_error_set(AG_ERR_INVALID, "%s: bad image shape (%lld, %lld, %lld, %lld)", who,
                          (long long)shape[0], (long long)shape[1], (long long)shape[2],
                          (long long)shape[3]);
  return AG_OK;
}

/* Turns off requires_grad on every parameter for an input-gradient pass
 * (the weight gradients are not wanted: skipping them halves the backward
 * of the convolutions), remembering the flags in `was`. */
static void params_freeze(ag_params *p, bool *was) {
  for (int i = 0; i < p->count; i++) {
    was[i] = p->tensors[i]->requires_grad;
    p->tensors[i]->requires_grad = false;
  }
}

static void params_thaw(ag_params *p, const bool *was) {
  for (int i = 0; i < p->count; i++) p->tensors[i]->requires_grad = was[i];
}

/* ∇ₓ of the summed cross-entropy of n images (so row i is example i's own
 * gradient: examples do not interact), in batches of `batch` on tape t. */
static ag_status input_grad_batched(const ag_infusion_model *m, ag_tape *t, const float *x,
                                    const int32_t *y, const int64_t shape[4], int64_t batch,
                                    float *out) {
  int64_t n = shape[0], size = shape[1] * shape[2] * shape[3];
  bool grad_was = ag_tape_grad_enabled(t), training_was = ag_tape_training(t);
  ag_tape_set_grad_enabled(t, true);
  ag_tape_set_training(t, false);
  ag_status st = AG_OK;
  for (int64_t start = 0; start < n && !st; start += batch) {
    int64_t b = n - start < batch ? n - start : batch;
    ag_tape_reset(t);
    int64_t bshape[4] = {b, shape[1], shape[2], shape[3]};
    ag_tensor *xt = ag_tape_tensor(t, 4, bshape); // (b, C, H, W), a leaf that wants ∇ₓ
    if (xt) {
      memcpy(xt->data, x + start * size, (size_t)(b * size) * sizeof(float));
      xt->requires_grad = true;
    }
    ag_tensor *logits = xt ? m->forward(m->user, t, xt) : NULL; // (b, classes)
    ag_tensor *loss = ag_cross_entropy(t, logits, y + start, NULL, -1, true);
    if (!loss) {
      st = ag_error_set(ag_tape_status(t), "infusion: input gradient: %s", ag_tape_error(t));
      break;
    }
    st = ag_backward(t, loss);
    if (st) break;
    if (!xt->grad) /* the loss does not depend on x: its gradient is zero */
      memset(out + start * size, 0, (size_t)(b * size) * sizeof(float));
    else
      memcpy(out + start * size, xt->grad, (size_t)(b * size) * sizeof(float));
  }
  ag_tape_reset(t);
  ag_tape_set_grad_enabled(t, grad_was);
  ag_tape_set_training(t, training_was);
  return st;
}

/* The batch size the public functions use when none is configured. */
#define DEFAULT_BATCH 100

ag_status ag_infusion_input_grad(const ag_infusion_model *m, const float *x, const int32_t *y,
                                 const int64_t shape[4], float *out) {
  ag_status st = check_shape("infusion input gradient", shape);
  if (st) return st;
  ag_tape *t = ag_tape_create();
  bool *was = calloc((size_t)m->params->count + 1, sizeof *was);
  if (!t || !was) {
    ag_tape_destroy(t);
    free(was);
    return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory");
  }
  params_freeze(m->params, was);
  st = input_grad_batched(m, t, x, y, shape, DEFAULT_BATCH, out);
  params_thaw(m->params, was);
  free(was);
  ag_tape_destroy(t);
  return st;
}

/* Central difference on tape t with scratch `minus` (numel floats) and
 * `theta` (params->total floats): see ag_infusion_mixed_grad. */
static ag_status mixed_grad_on(const ag_infusion_model *m, ag_tape *t, const float *v, float h,
                               const float *x, const int32_t *y, const int64_t shape[4],
                               int64_t batch, float *theta, float *minus, float *out) {
  ag_params *p = m->params;
  int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
  memcpy(theta, p->data, (size_t)p->total * sizeof(float));
  for (int64_t i = 0; i < p->total; i++) p->data[i] = theta[i] + h * v[i];
  ag_status st = input_grad_batched(m, t, x, y, shape, batch, out);
  if (!st) {
    for (int64_t i = 0; i < p->total; i++) p->data[i] = theta[i] - h * v[i];
    st = input_grad_batched(m, t, x, y, shape, batch, minus);
  }
  memcpy(p->data, theta, (size_t)p->total * sizeof(float)); /* bit-exact restore */
  if (st) return st;
  float scale = 0.5f / h;
  for (int64_t i = 0; i < numel; i++) out[i] = (out[i] - minus[i]) * scale;
  return AG_OK;
}

/* Scratch shared by the mixed-gradient callers. */
typedef struct workspace {
  ag_tape *tape;
  bool *frozen;
  float *theta; /* (params->total) */
  float *minus; /* (numel) */
  float *grad;  /* (numel) */
} workspace;

static void workspace_free(workspace *w) {
  ag_tape_destroy(w->tape);
  free(w->frozen);
  free(w->theta);
  free(w->minus);
  free(w->grad);
}

static ag_status workspace_init(workspace *w, const ag_infusion_model *m, int64_t numel) {
  memset(w, 0, sizeof *w);
  w->tape = ag_tape_create();
  w->frozen = calloc((size_t)m->params->count + 1, sizeof *w->frozen);
  w->theta = malloc((size_t)m->params->total * sizeof(float));
  w->minus = malloc((size_t)numel * sizeof(float));
  w->grad = malloc((size_t)numel * sizeof(float));
  if (!w->tape || !w->frozen || !w->theta || !w->minus || !w->grad) {
    workspace_free(w);
    return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory for %lld pixels", (long long)numel);
  }
  return AG_OK;
}

static ag_status check_fd_step(float h) {
  if (!(h > 0) || !isfinite(h))
    return ag_error_set(AG_ERR_INVALID, "infusion: finite-difference step must be > 0, got %g",
                        (double)h);
  return AG_OK;
}

ag_status ag_infusion_mixed_grad(const ag_infusion_model *m, const float *v, float h,
                                 const float *x, const int32_t *y, const int64_t shape[4],
                                 float *out) {
  ag_status st = check_shape("infusion mixed gradient", shape);
  if (!st) st = check_fd_step(h);
  if (st) return st;
  int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
  workspace w;
  st = workspace_init(&w, m, numel);
  if (st) return st;
  params_freeze(m->params, w.frozen);
  st = mixed_grad_on(m, w.tape, v, h, x, y, shape, DEFAULT_BATCH, w.theta, w.minus, out);
  params_thaw(m->params, w.frozen);
  workspace_free(&w);
  return st;
}

/* ---- perturbation ------------------------------------------------------------------ */

ag_infusion_perturb_config ag_infusion_perturb_defaults(void) {
  /* The seed paper's CIFAR-10 settings (PAPERS.md §3). fd_step: v has unit
   * norm, so θ ± 1e-3·v moves the weights by 1e-3 in L2: far inside the
   * region where the input gradient is linear in θ, far above float
   * rounding of the difference (tests/methods/test_infusion.c). */
  return (ag_infusion_perturb_config){.steps = 50,
                                      .step_size = 0.001f,
                                      .epsilon = 0.05f,
                                      .pixel_min = 0.0f,
                                      .pixel_max = 1.0f,
                                      .fd_step = 1e-3f,
                                      .batch_size = DEFAULT_BATCH};
}

static ag_status check_perturb_config(const ag_infusion_perturb_config *c) {
  if (c->steps < 0 || !(c->step_size >= 0) || !(c->epsilon >= 0) ||
      !(c->pixel_min < c->pixel_max) || c->batch_size <= 0)
    return ag_error_set(AG_ERR_INVALID,
                        "infusion: perturbation needs steps >= 0, step size >= 0, epsilon >= 0, "
                        "pixel min < max and batch size > 0");
  return check_fd_step(c->fd_step);
}

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

ag_status ag_infusion_perturb(const ag_infusion_model *m, const float *v,
                              const ag_infusion_perturb_config *c, const int32_t *y,
                              const int64_t shape[4], float *x) {
  ag_status st = check_shape("infusion perturbation", shape);
  if (!st) st = check_perturb_config(c);
  if (st) return st;
  int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
  workspace w;
  st = workspace_init(&w, m, numel);
  if (st) return st;
  float *lo = malloc((size_t)numel * sizeof(float));
  float *hi = malloc((size_t)numel * sizeof(float));
  if (!lo || !hi) {
    workspace_free(&w);
    free(lo);
    free(hi);
    return ag_error_set(AG_ERR_NOMEM, "infusion: out of memory");
  }
  /* The feasible box of each pixel: the L∞ ball around x₀ within the valid
   * range. */
  for (int64_t i = 0; i < numel; i++) {
    float x0 = clampf(x[i], c->pixel_min, c->pixel_max);
    x[i] = x0;
    lo[i] = x0 - c->epsilon > c->pixel_min ? x0 - c->epsilon : c->pixel_min;
    hi[i] = x0 + c->epsilon < c->pixel_max ? x0 + c->epsilon : c->pixel_max;
  }
  params_freeze(m->params, w.frozen);
  for (int s = 0; s < c->steps && !st; s++) {
    st = mixed_grad_on(m, w.tape, v, c->fd_step, x, y, shape, c->batch_size, w.theta, w.minus,
                       w.grad);
    if (st) break;
    for (int64_t i = 0; i < numel; i++) {
      float g = w.grad[i];
      float step = g > 0 ? -c->step_size : g < 0 ? c->step_size : 0.0f;
      x[i] = clampf(x[i] + step, lo[i], hi[i]);
    }
  }
  params_thaw(m->params, w.frozen);
  workspace_free(&w);
  free(lo);
  free(hi);
  return st;
}

void ag_infusion_noise(const ag_infusion_perturb_config *c, uint64_t seed, const int64_t shape[4],
                       float *x) {
  int64_t numel = shape[0] * shape[1] * shape[2] * shape[3];
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  uint64_t word = 0; /* 64 coin flips per draw, used in pixel order */
  for (int64_t i = 0; i < numel; i++) {
    if (i % 64 == 0) word = ag_rng_u64(&rng);
    float sign = (word >> (i % 64)) & 1 ? 1.0f : -1.0f;
    x[i] = clampf(x[i] + sign * c->epsilon, c->pixel_min, c->pixel_max);
  }
}
