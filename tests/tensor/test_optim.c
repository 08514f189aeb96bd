/* Optimizers against values worked out from PyTorch's update rules, gradient
 * clipping, and learning-rate schedules at their boundaries. */
#include "agora/optim.h"
#include "test.h"

/* A tiny store: w (2, 2) and b (3), 7 floats. */
static const float P0[7] = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 0.0f, 4.0f};
/* The gradient given before each of three steps. */
static const float GRADS[3][7] = {{0.5f, 1.0f, -0.5f, 2.0f, 0.25f, -1.0f, 0.0f},
                                  {0.5f, -1.0f, 0.25f, 1.0f, 0.0f, 2.0f, -3.0f},
                                  {-1.0f, 0.5f, 0.75f, -2.0f, 1.5f, 0.5f, 1.0f}};

static ag_params *tiny_store(void) {
  ag_params *p = ag_params_create();
  int64_t sw[] = {2, 2}, sb[] = {3};
  ag_params_add(p, "w", 2, sw);
  ag_params_add(p, "b", 1, sb);
  if (ag_params_finalize(p) != AG_OK) return p;
  memcpy(p->data, P0, sizeof P0);
  return p;
}

/* Three steps of `config` at learning rate lr; compares with expected. */
static void check_three_steps(const ag_optim_config *config, float lr, const float expected[7],
                              double tol) {
  ag_params *p = tiny_store();
  ag_optim *o = NULL;
  CHECK_OK(ag_optim_create(p, config, &o));
  if (!o) {
    ag_params_destroy(p);
    return;
  }
  for (int s = 0; s < 3; s++) {
    memcpy(p->grad, GRADS[s], sizeof GRADS[s]);
    CHECK_OK(ag_optim_step(o, lr));
  }
  CHECK(o->step == 3);
  for (int i = 0; i < 7; i++) CHECK_NEAR(p->data[i], expected[i], tol);
  ag_optim_destroy(o);
  ag_params_destroy(p);
}

TEST(sgd_plain_subtracts_lr_times_grad) {
  /* p0 = 1: 1 - 0.1 (0.5 + 0.5 - 1) = 1 */
  const float expected[7] = {1, -2.05f, 0.45f, 2.9f, -0.425f, -0.15f, 4.2f};
  ag_optim_config c = ag_optim_sgd_defaults(0.1f);
  CHECK(c.momentum == 0 && c.weight_decay == 0 && !c.nesterov);
  check_three_steps(&c, 0.1f, expected, 1e-6);
}

TEST(sgd_momentum_starts_buffer_at_first_gradient) {
  /* p0 = 1: buf 0.5, p 0.95; buf 0.95, p 0.855; buf 0.855 - 1 = -0.145,
   * p 0.855 + 0.0145 = 0.8695 */
  const float expected[7] = {0.8695f, -2.131f, 0.513f, 2.468f, -0.46775f, -0.159f, 4.47f};
  ag_optim_config c = ag_optim_sgd_defaults(1.0f);
  c.momentum = 0.9f;
  /* config.lr is ignored by step: the schedule's lr (0.1) is what counts. */
  check_three_steps(&c, 0.1f, expected, 1e-6);
}

TEST(sgd_nesterov_looks_ahead) {
  /* p0 = 1: d 0.5 + 0.9*0.5 = 0.95, p 0.905; buf 0.95, d 0.5 + 0.855,
   * p 0.7695; buf -0.145, d -1 - 0.1305, p 0.88255 */
  const float expected[7] = {0.88255f, -2.1679f, 0.4617f, 2.4212f, -0.620975f, -0.2931f, 4.623f};
  ag_optim_config c = ag_optim_sgd_defaults(0.1f);
  c.momentum = 0.9f;
  c.nesterov = true;
  check_three_steps(&c, 0.1f, expected, 1e-6);
}

TEST(sgd_weight_decay_adds_to_gradient) {
  /* p0 = 1, wd 0.1: d 0.6, p 0.94; d 0.594, buf 1.134, p 0.8266; ... */
  const float expected[7] = {0.816274f,    -2.016968f, 0.4835445f, 2.309717f,
                             -0.45289725f, -0.16079f,  4.244516f};
  ag_optim_config c = ag_optim_sgd_defaults(0.1f);
  c.momentum = 0.9f;
  c.weight_decay = 0.1f;
  check_three_steps(&c, 0.1f, expected, 1e-6);
}

TEST(adamw_matches_pytorch_rule) {
  /* p0 = 1, g 0.5 twice: a constant gradient makes each bias-corrected step
   * exactly lr, so p = 0.999 - 0.1 = 0.899, then 0.898101 - 0.1 = 0.798101;
   * the third step (g = -1) gives 0.804867836. */
  const float expected[7] = {0.804867836f,  -2.10602076f,  0.585969689f, 2.78700585f,
                             -0.487510423f, 0.0216612372f, 4.09670853f};
  ag_optim_config c = ag_optim_adamw_defaults(0.1f);
  CHECK(c.beta1 == 0.9f && c.beta2 == 0.999f && c.eps == 1e-8f && c.weight_decay == 0.01f);
  check_three_steps(&c, 0.1f, expected, 2e-6);

  const float expected_b[7] = {0.894104325f,  -2.02212856f,   0.528599998f, 2.85931337f,
                               -0.365262137f, 0.00590482927f, 3.99496772f};
  c.beta1 = 0.8f;
  c.beta2 = 0.99f;
  c.eps = 1e-3f;
  c.weight_decay = 0.1f;
  check_three_steps(&c, 0.05f, expected_b, 2e-6);
}

TEST(adamw_after_one_step_holds_moments_in_state) {
  ag_params *p = tiny_store();
  ag_optim_config c = ag_optim_adamw_defaults(0.1f);
  ag_optim *o = NULL;
  CHECK_OK(ag_optim_create(p, &c, &o));
  memcpy(p->grad, GRADS[0], sizeof GRADS[0]);
  CHECK_OK(ag_optim_step(o, 0.1f));
  for (int i = 0; o && i < 7; i++) {
    /* (1 - beta) with the betas as the floats the config holds */
    CHECK_NEAR(o->state1[i], (1 - (double)c.beta1) * GRADS[0][i], 1e-8);
    CHECK_NEAR(o->state2[i], (1 - (double)c.beta2) * GRADS[0][i] * GRADS[0][i], 1e-10);
  }
  /* reset: the next step is a first step again. */
  ag_optim_reset(o);
  CHECK(o->step == 0 && o->state1[0] == 0 && o->state2[3] == 0);
  ag_optim_destroy(o);
  ag_params_destroy(p);
}

TEST(sgd_reset_restarts_momentum) {
  ag_params *p = tiny_store();
  ag_optim_config c = ag_optim_sgd_defaults(0.1f);
  c.momentum = 0.9f;
  ag_optim *o = NULL;
  CHECK_OK(ag_optim_create(p, &c, &o));
  memcpy(p->grad, GRADS[0], sizeof GRADS[0]);
  CHECK_OK(ag_optim_step(o, 0.1f));
  CHECK_OK(ag_optim_step(o, 0.1f));
  ag_optim_reset(o);
  memcpy(p->data, P0, sizeof P0);
  CHECK_OK(ag_optim_step(o, 0.1f));
  /* A first step again: plain SGD. */
  for (int i = 0; i < 7; i++) CHECK_NEAR(p->data[i], P0[i] - 0.1f * GRADS[0][i], 1e-7);
  ag_optim_destroy(o);
  ag_params_destroy(p);
}

TEST(optimizer_rejects_bad_configs) {
  ag_params *unfinished = ag_params_create();
  int64_t s[] = {3};
  ag_params_add(unfinished, "x", 1, s);
  ag_optim_config c = ag_optim_sgd_defaults(0.1f);
  ag_optim *o = NULL;
  CHECK(ag_optim_create(unfinished, &c, &o) == AG_ERR_INVALID && o == NULL);
  CHECK(strstr(ag_error_message(), "finalized"));
  ag_params_destroy(unfinished);

  ag_params *p = tiny_store();
  c.nesterov = true; /* without momentum */
  CHECK(ag_optim_create(p, &c, &o) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "nesterov"));
  c = ag_optim_adamw_defaults(0.1f);
  c.beta2 = 1.0f;
  CHECK(ag_optim_create(p, &c, &o) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "betas"));
  c.beta2 = 0.999f;
  CHECK_OK(ag_optim_create(p, &c, &o));
  CHECK(ag_optim_step(o, NAN) == AG_ERR_INVALID);
  ag_optim_destroy(o);
  ag_params_destroy(p);
}

/* A store large enough for the parallel loops, checked against a serial
 * double-precision reference of the same rules. */
TEST(large_store_matches_serial_reference) {
  const int64_t n = test_scaled(200000, 1000);
  ag_params *p = ag_params_create();
  ag_params_add(p, "big", 1, &n);
  CHECK_OK(ag_params_finalize(p));
  ag_rng rng;
  ag_rng_seed(&rng, 7);
  double *ref_p = malloc((size_t)n * sizeof(double));
  double *ref_m = calloc((size_t)n, sizeof(double));
  double *ref_v = calloc((size_t)n, sizeof(double));
  for (int64_t i = 0; i < n; i++) ref_p[i] = p->data[i] = ag_rng_normal(&rng);
  ag_optim_config c = ag_optim_adamw_defaults(0.01f);
  ag_optim *o = NULL;
  CHECK_OK(ag_optim_create(p, &c, &o));
  for (int t = 1; o && t <= 3; t++) {
    for (int64_t i = 0; i < n; i++) p->grad[i] = ag_rng_normal(&rng);
    CHECK_OK(ag_optim_step(o, 0.01f));
    for (int64_t i = 0; i < n; i++) {
      double g = p->grad[i];
      ref_p[i] *= 1 - 0.01 * 0.01;
      ref_m[i] = 0.9 * ref_m[i] + 0.1 * g;
      ref_v[i] = 0.999 * ref_v[i] + 0.001 * g * g;
      ref_p[i] -=
          0.01 / (1 - pow(0.9, t)) * ref_m[i] / (sqrt(ref_v[i] / (1 - pow(0.999, t))) + 1e-8);
    }
  }
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(p->data[i] - ref_p[i]));
  CHECK_MSG(worst < 1e-5, "worst difference %g", worst);
  ag_optim_destroy(o);
  free(ref_p);
  free(ref_m);
  free(ref_v);
  ag_params_destroy(p);
}

TEST(clip_scales_to_max_norm_and_returns_old_norm) {
  ag_params *p = tiny_store();
  const float g[7] = {3, 0, 0, 4, 0, 0, 0}; /* norm 5 */
  memcpy(p->grad, g, sizeof g);
  CHECK_NEAR(ag_clip_grad_norm(p, 10.0f), 5.0, 1e-6); /* under the limit: untouched */
  CHECK(p->grad[0] == 3.0f && p->grad[3] == 4.0f);
  CHECK_NEAR(ag_clip_grad_norm(p, 1.0f), 5.0, 1e-6);
  CHECK_NEAR(p->grad[0], 0.6, 1e-6);
  CHECK_NEAR(p->grad[3], 0.8, 1e-6);
  CHECK_NEAR(ag_clip_grad_norm(p, 1.0f), 1.0, 1e-5); /* now within the limit */

  /* A non-finite norm is reported and the gradients are left alone. */
  p->grad[1] = INFINITY;
  CHECK(isinf(ag_clip_grad_norm(p, 1.0f)));
  CHECK(isinf(p->grad[1]) && fabsf(p->grad[0] - 0.6f) < 1e-6f);
  ag_params_destroy(p);
}

TEST(clip_norm_of_large_store_accumulates_in_double) {
  const int64_t n = test_scaled(1 << 20, 4096);
  ag_params *p = ag_params_create();
  ag_params_add(p, "big", 1, &n);
  CHECK_OK(ag_params_finalize(p));
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  double sum = 0;
  for (int64_t i = 0; i < n; i++) {
    p->grad[i] = ag_rng_uniform(&rng) - 0.5f;
    sum += (double)p->grad[i] * p->grad[i];
  }
  const double norm = sqrt(sum);
  CHECK_NEAR(ag_clip_grad_norm(p, 1.0f), norm, 1e-6 * norm);
  double after = 0;
  for (int64_t i = 0; i < n; i++) after += (double)p->grad[i] * p->grad[i];
  CHECK_NEAR(sqrt(after), 1.0, 1e-5);
  ag_params_destroy(p);
}

TEST(constant_schedule_never_changes) {
  ag_schedule s = {.kind = AG_SCHEDULE_CONSTANT, .lr = 0.3f};
  CHECK(ag_schedule_lr(&s, 0) == 0.3f);
  CHECK(ag_schedule_lr(&s, 1000000) == 0.3f);
}

TEST(warmup_cosine_boundaries) {
  ag_schedule s = {.kind = AG_SCHEDULE_WARMUP_COSINE,
                   .lr = 1.0f,
                   .min_lr = 0.1f,
                   .warmup_steps = 10,
                   .total_steps = 110};
  CHECK_NEAR(ag_schedule_lr(&s, 0), 0.0, 1e-7); /* warmup starts at 0 */
  CHECK_NEAR(ag_schedule_lr(&s, 5), 0.5, 1e-7); /* linear */
  CHECK_NEAR(ag_schedule_lr(&s, 9), 0.9, 1e-7);
  CHECK_NEAR(ag_schedule_lr(&s, 10), 1.0, 1e-7);  /* end of warmup: peak */
  CHECK_NEAR(ag_schedule_lr(&s, 60), 0.55, 1e-6); /* half way: (lr + min_lr) / 2 */
  /* One step before the end: min_lr + 0.9 * 0.5 * (1 + cos(pi * 0.99)) */
  CHECK_NEAR(ag_schedule_lr(&s, 109), 0.1 + 0.9 * 0.5 * (1 + cos(3.14159265358979 * 0.99)), 1e-6);
  CHECK(ag_schedule_lr(&s, 109) > 0.1f);
  CHECK_NEAR(ag_schedule_lr(&s, 110), 0.1, 1e-7);  /* total_steps: min_lr */
  CHECK_NEAR(ag_schedule_lr(&s, 5000), 0.1, 1e-7); /* and stays there */
  /* Monotone decay after warmup. */
  for (int64_t t = 11; t <= 110; t++) CHECK(ag_schedule_lr(&s, t) <= ag_schedule_lr(&s, t - 1));
  /* No warmup: step 0 is the peak. */
  s.warmup_steps = 0;
  CHECK_NEAR(ag_schedule_lr(&s, 0), 1.0, 1e-7);
}

TEST(step_schedule_decays_at_step_boundaries) {
  ag_schedule s = {.kind = AG_SCHEDULE_STEP, .lr = 1.0f, .step_size = 10, .gamma = 0.5f};
  CHECK_NEAR(ag_schedule_lr(&s, 0), 1.0, 1e-7);
  CHECK_NEAR(ag_schedule_lr(&s, 9), 1.0, 1e-7);
  CHECK_NEAR(ag_schedule_lr(&s, 10), 0.5, 1e-7);
  CHECK_NEAR(ag_schedule_lr(&s, 19), 0.5, 1e-7);
  CHECK_NEAR(ag_schedule_lr(&s, 20), 0.25, 1e-7);
  CHECK_NEAR(ag_schedule_lr(&s, 35), 0.125, 1e-7);
}

int main(void) {
  RUN(sgd_plain_subtracts_lr_times_grad);
  RUN(sgd_momentum_starts_buffer_at_first_gradient);
  RUN(sgd_nesterov_looks_ahead);
  RUN(sgd_weight_decay_adds_to_gradient);
  RUN(adamw_matches_pytorch_rule);
  RUN(adamw_after_one_step_holds_moments_in_state);
  RUN(sgd_reset_restarts_momentum);
  RUN(optimizer_rejects_bad_configs);
  RUN(large_store_matches_serial_reference);
  RUN(clip_scales_to_max_norm_and_returns_old_norm);
  RUN(clip_norm_of_large_store_accumulates_in_double);
  RUN(constant_schedule_never_changes);
  RUN(warmup_cosine_boundaries);
  RUN(step_schedule_decays_at_step_boundaries);
  TEST_MAIN_END();
}
