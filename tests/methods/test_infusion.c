/* Infusion: the mixed derivative against softmax regression's closed form,
 * the perturbation's budget and direction, the noise baseline, selection,
 * probe statistics, and the protocol end to end on a tiny run (craft,
 * retrain the last epoch, measure; baselines; a resumable sweep; bad
 * input). */
#include "agora/infusion.h"
#include "agora/ops.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- softmax regression: logits = W x + b, with closed forms ---------------------- */

#define SR_CLASSES 5
#define SR_C       1
#define SR_H       3
#define SR_W       4
#define SR_D       (SR_C * SR_H * SR_W)

typedef struct softmax_regression {
  ag_params *params;
  ag_tensor *w, *b; /* (K, D), (K) */
} softmax_regression;

static ag_tensor *sr_forward(void *user, ag_tape *t, ag_tensor *x) {
  softmax_regression *m = user;
  int64_t shape[2] = {x->shape[0], SR_D};
  return ag_linear(t, ag_reshape(t, x, 2, shape), m->w, m->b); // (N, K)
}

static softmax_regression sr_create(ag_rng *rng, float scale) {
  softmax_regression m;
  m.params = ag_params_create();
  int64_t ws[2] = {SR_CLASSES, SR_D}, bs[1] = {SR_CLASSES};
  m.w = ag_params_add(m.params, "w", 2, ws);
  m.b = ag_params_add(m.params, "b", 1, bs);
  ag_params_finalize(m.params);
  for (int64_t i = 0; i < m.params->total; i++) m.params->data[i] = scale * ag_rng_normal(rng);
  return m;
}

static ag_infusion_model sr_model(softmax_regression *m) {
  return (ag_infusion_model){.params = m->params, .forward = sr_forward, .user = m};
}

static void random_unit(ag_rng *rng, float *v, int64_t n) {
  double norm = 0;
  for (int64_t i = 0; i < n; i++) {
    v[i] = ag_rng_normal(rng);
    norm += (double)v[i] * v[i];
  }
  for (int64_t i = 0; i < n; i++) v[i] = (float)(v[i] / sqrt(norm));
}

/* p = softmax(W x + b) in double. */
static void sr_probs(const softmax_regression *m, const float *x, double *p) {
  double z[SR_CLASSES], zmax = -1e300, sum = 0;
  for (int k = 0; k < SR_CLASSES; k++) {
    z[k] = m->b->data[k];
    for (int d = 0; d < SR_D; d++) z[k] += (double)m->w->data[k * SR_D + d] * x[d];
    if (z[k] > zmax) zmax = z[k];
  }
  for (int k = 0; k < SR_CLASSES; k++) sum += (p[k] = exp(z[k] - zmax));
  for (int k = 0; k < SR_CLASSES; k++) p[k] /= sum;
}

/* s(x) = ⟨∇θL(x, y), v⟩ = (p − e_y)ᵀ(V x + c), V and c v's parts. */
static double sr_s(const softmax_regression *m, const float *v, const float *x, int y) {
  double p[SR_CLASSES], s = 0;
  sr_probs(m, x, p);
  for (int k = 0; k < SR_CLASSES; k++) {
    double u = v[SR_CLASSES * SR_D + k];
    for (int d = 0; d < SR_D; d++) u += (double)v[k * SR_D + d] * x[d];
    s += (p[k] - (k == y)) * u;
  }
  return s;
}

/* ∇ₓ s = Vᵀ(p − e_y) + Wᵀ(p ⊙ (u − pᵀu)), u = V x + c: the first term from
 * x inside u, the second from x inside p (∂p/∂z = diag p − p pᵀ). */
static void sr_mixed_closed_form(const softmax_regression *m, const float *v, const float *x, int y,
                                 double *g) {
  double p[SR_CLASSES], u[SR_CLASSES], pu = 0;
  sr_probs(m, x, p);
  for (int k = 0; k < SR_CLASSES; k++) {
    u[k] = v[SR_CLASSES * SR_D + k];
    for (int d = 0; d < SR_D; d++) u[k] += (double)v[k * SR_D + d] * x[d];
    pu += p[k] * u[k];
  }
  for (int d = 0; d < SR_D; d++) {
    g[d] = 0;
    for (int k = 0; k < SR_CLASSES; k++)
      g[d] += (double)v[k * SR_D + d] * (p[k] - (k == y)) +
              (double)m->w->data[k * SR_D + d] * p[k] * (u[k] - pu);
  }
}

static void random_images(ag_rng *rng, float *x, int32_t *y, int64_t n, int64_t size) {
  for (int64_t i = 0; i < n * size; i++) x[i] = ag_rng_uniform(rng);
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)ag_rng_below(rng, SR_CLASSES);
}

TEST(input_gradient_matches_softmax_regression) {
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  softmax_regression m = sr_create(&rng, 0.8f);
  ag_infusion_model im = sr_model(&m);
  enum { N = 7 };
  float x[N * SR_D], out[N * SR_D];
  int32_t y[N];
  random_images(&rng, x, y, N, SR_D);
  int64_t shape[4] = {N, SR_C, SR_H, SR_W};
  CHECK_OK(ag_infusion_input_grad(&im, x, y, shape, out));
  for (int i = 0; i < N; i++) {
    double p[SR_CLASSES];
    sr_probs(&m, x + i * SR_D, p);
    for (int d = 0; d < SR_D; d++) {
      double g = 0; /* ∇ₓL = Wᵀ(p − e_y) */
      for (int k = 0; k < SR_CLASSES; k++) g += m.w->data[k * SR_D + d] * (p[k] - (k == y[i]));
      CHECK_NEAR(out[i * SR_D + d], g, 1e-5);
    }
  }
  ag_params_destroy(m.params);
}

TEST(mixed_gradient_matches_softmax_regression_closed_form) {
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  softmax_regression m = sr_create(&rng, 1.0f);
  ag_infusion_model im = sr_model(&m);
  int64_t n = test_scaled(40, 10);
  float *x = malloc((size_t)(n * SR_D) * sizeof *x),
        *out = malloc((size_t)(n * SR_D) * sizeof *out);
  int32_t *y = malloc((size_t)n * sizeof *y);
  float v[SR_CLASSES * SR_D + SR_CLASSES], before[SR_CLASSES * SR_D + SR_CLASSES];
  random_images(&rng, x, y, n, SR_D);
  random_unit(&rng, v, m.params->total);
  memcpy(before, m.params->data, sizeof before);
  int64_t shape[4] = {n, SR_C, SR_H, SR_W};
  float h = ag_infusion_perturb_defaults().fd_step;
  CHECK_OK(ag_infusion_mixed_grad(&im, v, h, x, y, shape, out));
  CHECK(memcmp(before, m.params->data, sizeof before) == 0); /* restored bit for bit */
  double worst = 0, scale = 0, second = 0;
  for (int64_t i = 0; i < n; i++) {
    double g[SR_D], p[SR_CLASSES];
    sr_mixed_closed_form(&m, v, x + i * SR_D, y[i], g);
    sr_probs(&m, x + i * SR_D, p);
    for (int d = 0; d < SR_D; d++) {
      double e = fabs(out[i * SR_D + d] - g[d]);
      if (e > worst) worst = e;
      if (fabs(g[d]) > scale) scale = fabs(g[d]);
      double first = 0; /* Vᵀ(p − e_y) alone: what forgetting x inside p would give */
      for (int k = 0; k < SR_CLASSES; k++) first += v[k * SR_D + d] * (p[k] - (k == y[i]));
      if (fabs(first - g[d]) > second) second = fabs(first - g[d]);
    }
  }
  CHECK(scale > 0.05); /* the comparison means something */
  CHECK_MSG(worst < 2e-3 * scale, "worst error %g at scale %g", worst, scale);
  CHECK(second > 50 * worst); /* the term through p is tested, not negligible */
  free(x);
  free(out);
  free(y);
  ag_params_destroy(m.params);
}

/* The generic path (a vision model, ReLUs): the mixed gradient's component
 * along a random pixel direction d matches a central difference of
 * s(x) = ⟨∇θL(x), v⟩ along d, with ∇θL from an ordinary backward. */
static double mlp_s(ag_vision_model *vm, const float *v, const float *x, int32_t y,
                    const int64_t shape[4]) {
  ag_params *p = ag_vision_model_params(vm);
  ag_tape *t = ag_tape_create();
  ag_params_zero_grad(p);
  ag_tensor *xt = ag_tape_wrap(t, (float *)x, 4, shape);
  ag_tensor *loss = ag_cross_entropy(t, ag_vision_model_forward(t, vm, xt), &y, NULL, -1, true);
  double s = NAN;
  if (loss && ag_backward(t, loss) == AG_OK) {
    s = 0;
    for (int64_t i = 0; i < p->total; i++) s += (double)p->grad[i] * v[i];
  }
  ag_tape_destroy(t);
  return s;
}

TEST(mixed_gradient_of_an_mlp_matches_a_directional_difference) {
  ag_vision_model *vm;
  CHECK_OK(ag_vision_model_create(AG_VISION_MLP, 1, 6, 6, 4, &vm));
  ag_rng rng;
  ag_rng_seed(&rng, 5);
  ag_vision_model_init(vm, &rng);
  ag_params *p = ag_vision_model_params(vm);
  float *v = malloc((size_t)p->total * sizeof *v);
  random_unit(&rng, v, p->total);
  float x[36], d[36], xp[36], xm[36], g[36];
  for (int i = 0; i < 36; i++) {
    x[i] = ag_rng_uniform(&rng);
    d[i] = ag_rng_normal(&rng);
  }
  int32_t y = 2;
  int64_t shape[4] = {1, 1, 6, 6};
  ag_infusion_model im;
  ag_infusion_vision_model(vm, &im);
  CHECK_OK(ag_infusion_mixed_grad(&im, v, 1e-3f, x, &y, shape, g));
  const float delta = 1e-3f;
  for (int i = 0; i < 36; i++) {
    xp[i] = x[i] + delta * d[i];
    xm[i] = x[i] - delta * d[i];
  }
  double numeric = (mlp_s(vm, v, xp, y, shape) - mlp_s(vm, v, xm, y, shape)) / (2 * delta);
  double analytic = 0;
  for (int i = 0; i < 36; i++) analytic += (double)g[i] * d[i];
  CHECK_MSG(fabs(numeric - analytic) < 0.02 * fabs(numeric) + 1e-4, "numeric %g, mixed %g", numeric,
            analytic);
  free(v);
  ag_vision_model_destroy(vm);
}

TEST(perturbation_stays_in_budget_and_pixel_range) {
  ag_rng rng;
  ag_rng_seed(&rng, 21);
  softmax_regression m = sr_create(&rng, 1.0f);
  ag_infusion_model im = sr_model(&m);
  int64_t n = test_scaled(30, 8);
  float *x = malloc((size_t)(n * SR_D) * sizeof *x), *x0 = malloc((size_t)(n * SR_D) * sizeof *x0);
  int32_t *y = malloc((size_t)n * sizeof *y);
  float v[SR_CLASSES * SR_D + SR_CLASSES];
  random_images(&rng, x, y, n, SR_D);
  for (int64_t i = 0; i < n * SR_D; i += 3) x[i] = i % 2 ? 1.0f : 0.0f; /* pixels on the edges */
  random_unit(&rng, v, m.params->total);
  memcpy(x0, x, (size_t)(n * SR_D) * sizeof *x);
  ag_infusion_perturb_config c = ag_infusion_perturb_defaults();
  c.step_size = 0.004f; /* 50 steps could move 0.2: the ε = 0.05 ball must stop them */
  c.batch_size = 4;     /* several batches */
  int64_t shape[4] = {n, SR_C, SR_H, SR_W};
  CHECK_OK(ag_infusion_perturb(&im, v, &c, y, shape, x));
  int at_budget = 0, outside = 0, out_of_range = 0;
  for (int64_t i = 0; i < n * SR_D; i++) {
    double dx = fabs((double)x[i] - x0[i]);
    if (dx > c.epsilon + 1e-6) outside++;
    if (x[i] < 0.0f || x[i] > 1.0f) out_of_range++;
    if (dx > c.epsilon - 1e-6) at_budget++;
  }
  CHECK(outside == 0);
  CHECK(out_of_range == 0);
  CHECK(at_budget > n * SR_D / 4); /* the budget did bind */
  /* And each image's s(x) fell: the steps descend ⟨∇θL, v⟩. */
  int fell = 0;
  for (int64_t i = 0; i < n; i++)
    fell += sr_s(&m, v, x + i * SR_D, y[i]) < sr_s(&m, v, x0 + i * SR_D, y[i]);
  CHECK_MSG(fell == n, "s fell on %d of %lld images", fell, (long long)n);
  free(x);
  free(x0);
  free(y);
  ag_params_destroy(m.params);
}

TEST(perturbation_with_a_small_budget_moves_at_most_steps_times_step) {
  ag_rng rng;
  ag_rng_seed(&rng, 8);
  softmax_regression m = sr_create(&rng, 1.0f);
  ag_infusion_model im = sr_model(&m);
  float x[3 * SR_D], x0[3 * SR_D], v[SR_CLASSES * SR_D + SR_CLASSES];
  int32_t y[3];
  random_images(&rng, x, y, 3, SR_D);
  random_unit(&rng, v, m.params->total);
  memcpy(x0, x, sizeof x);
  ag_infusion_perturb_config c = ag_infusion_perturb_defaults(); /* 50 × 0.001 = 0.05 = ε */
  c.steps = 10;
  int64_t shape[4] = {3, SR_C, SR_H, SR_W};
  CHECK_OK(ag_infusion_perturb(&im, v, &c, y, shape, x));
  double max = 0;
  for (int i = 0; i < 3 * SR_D; i++) max = fmax(max, fabs((double)x[i] - x0[i]));
  CHECK(max <= 10 * 0.001 + 1e-6);
  CHECK(max > 0.005);
  ag_params_destroy(m.params);
}

TEST(noise_moves_every_pixel_by_epsilon_within_range) {
  enum { N = 4000 };
  float x[N], x0[N], again[N];
  ag_rng rng;
  ag_rng_seed(&rng, 2);
  for (int i = 0; i < N; i++) x[i] = i % 10 == 0 ? 0.0f : i % 10 == 1 ? 1.0f : ag_rng_uniform(&rng);
  memcpy(x0, x, sizeof x);
  memcpy(again, x, sizeof x);
  ag_infusion_perturb_config c = ag_infusion_perturb_defaults();
  int64_t shape[4] = {4, 1, 1, N / 4};
  ag_infusion_noise(&c, 77, shape, x);
  ag_infusion_noise(&c, 77, shape, again);
  CHECK(memcmp(x, again, sizeof x) == 0); /* a function of the seed */
  int up = 0, bad = 0;
  for (int i = 0; i < N; i++) {
    double d = (double)x[i] - x0[i];
    if (x[i] < 0 || x[i] > 1) bad++;
    bool clamped = x[i] == 0.0f || x[i] == 1.0f;
    if (!clamped && fabs(fabs(d) - c.epsilon) > 1e-6) bad++;
    if (fabs(d) > c.epsilon + 1e-6) bad++;
    up += d > 0;
  }
  CHECK(bad == 0);
  /* Fair coins: 0.45 N move up (half of the 80% inner pixels, half of the
   * zeros; a one cannot move up). */
  CHECK(up > 0.45 * N - 150 && up < 0.45 * N + 150);
}

TEST(selection_by_score_and_at_random) {
  float s[8] = {0.5f, -2.0f, 3.0f, 0.5f, NAN, -1.0f, 7.0f, 0.0f};
  int64_t out[8];
  CHECK_OK(ag_infusion_select(s, 8, 3, AG_INFUSION_SELECT_TOP, 0, out));
  CHECK(out[0] == 6 && out[1] == 2 && out[2] == 0); /* ties: the lower index first */
  CHECK_OK(ag_infusion_select(s, 8, 2, AG_INFUSION_SELECT_BOTTOM, 0, out));
  CHECK(out[0] == 1 && out[1] == 5);
  CHECK_OK(ag_infusion_select(NULL, 8, 8, AG_INFUSION_SELECT_RANDOM, 4, out));
  int seen = 0;
  for (int i = 0; i < 8; i++) seen |= 1 << out[i];
  CHECK(seen == 255); /* distinct */
  CHECK(ag_infusion_select(s, 8, 9, AG_INFUSION_SELECT_TOP, 0, out) == AG_ERR_INVALID);
  CHECK(ag_infusion_select(NULL, 8, 2, AG_INFUSION_SELECT_TOP, 0, out) == AG_ERR_INVALID);
}

TEST(names_parse_and_print) {
  ag_infusion_method m;
  ag_infusion_selection s;
  CHECK_OK(ag_infusion_method_parse("probe-copies", &m));
  CHECK(m == AG_INFUSION_METHOD_PROBE_COPIES);
  CHECK(!strcmp(ag_infusion_method_name(AG_INFUSION_METHOD_NOISE), "noise"));
  CHECK_OK(ag_infusion_selection_parse("bottom", &s));
  CHECK(s == AG_INFUSION_SELECT_BOTTOM);
  CHECK(ag_infusion_method_parse("nope", &m) == AG_ERR_INVALID);
  ag_infusion_variant v[8];
  int n = 0;
  CHECK_OK(
      ag_infusion_variants_parse("infusion,noise,probe-1,probe-k,infusion-random", 40, v, 8, &n));
  CHECK(n == 5);
  CHECK(!strcmp(v[3].name, "probe-40") && v[3].copies == 40);
  CHECK(v[4].select == AG_INFUSION_SELECT_RANDOM && v[4].method == AG_INFUSION_METHOD_INFUSION);
  CHECK(ag_infusion_variants_parse("probe-41", 40, v, 8, &n) == AG_ERR_INVALID);
  CHECK(ag_infusion_variants_parse("infusion,infusion", 40, v, 8, &n) == AG_ERR_INVALID);
}

TEST(bad_perturbation_settings_are_refused) {
  ag_rng rng;
  ag_rng_seed(&rng, 1);
  softmax_regression m = sr_create(&rng, 1.0f);
  ag_infusion_model im = sr_model(&m);
  float x[SR_D] = {0}, v[SR_CLASSES * SR_D + SR_CLASSES] = {0}, g[SR_D];
  int32_t y = 0;
  int64_t shape[4] = {1, SR_C, SR_H, SR_W}, bad_shape[4] = {1, 0, SR_H, SR_W};
  CHECK(ag_infusion_mixed_grad(&im, v, 0.0f, x, &y, shape, g) == AG_ERR_INVALID);
  CHECK(ag_infusion_mixed_grad(&im, v, 1e-3f, x, &y, bad_shape, g) == AG_ERR_INVALID);
  int64_t wrong[4] = {1, SR_C, SR_H + 1, SR_W}; /* the model's reshape refuses it */
  float big[SR_D + SR_W] = {0};
  CHECK(ag_infusion_input_grad(&im, big, &y, wrong, g) != AG_OK);
  ag_infusion_perturb_config c = ag_infusion_perturb_defaults();
  c.pixel_min = 1.0f;
  c.pixel_max = 0.0f;
  CHECK(ag_infusion_perturb(&im, v, &c, &y, shape, x) == AG_ERR_INVALID);
  ag_params_destroy(m.params);
}

/* ---- the protocol on a tiny run ----------------------------------------------------------- */

#define CLASSES 10
#define SIDE    8

/* Class c lights pixel block c over uniform noise (as tests/learn/test_classify.c). */
static ag_image_dataset *synthetic(int64_t count, uint64_t seed) {
  ag_image_dataset *d = NULL;
  if (ag_image_dataset_create(count, 1, SIDE, SIDE, CLASSES, &d)) return NULL;
  snprintf(d->name, sizeof d->name, "synthetic");
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  for (int64_t i = 0; i < count; i++) {
    int c = (int)ag_rng_below(&rng, CLASSES);
    d->labels[i] = c;
    float *img = d->images + i * SIDE * SIDE;
    for (int k = 0; k < SIDE * SIDE; k++) img[k] = 0.5f * ag_rng_uniform(&rng);
    for (int k = 0; k < 4; k++) img[c * 6 + k] = 1.0f;
  }
  return d;
}

static const char *tmp_path(const char *name) {
  static char p[8][600];
  static int next = 0;
  char *s = p[next++ % 8];
  snprintf(s, 600, "%s/%s", test_tmpdir(), name);
  return s;
}

typedef struct fixture {
  ag_image_dataset *train, *test;
  ag_classify_config cfg;
  const char *run;
} fixture;

/* A 3-epoch MLP run (SGD, constant lr) on 8x8 synthetic images. */
static bool fixture_setup(fixture *f, const char *name, int epochs) {
  f->train = synthetic(test_scaled(400, 160), 1);
  f->test = synthetic(test_scaled(120, 60), 2);
  f->cfg = ag_classify_defaults(AG_VISION_MLP);
  ag_classify_set_optimizer(&f->cfg, AG_OPTIM_SGD);
  snprintf(f->cfg.data, sizeof f->cfg.data, "synthetic");
  f->cfg.epochs = epochs;
  f->cfg.batch_size = 16;
  f->cfg.eval_batch_size = 64;
  f->cfg.lr = 0.05f;
  f->cfg.schedule = AG_LR_CONSTANT;
  f->cfg.limit = f->train->count - 10; /* the edit must stay inside the examples used */
  f->cfg.seed = 7;
  f->run = tmp_path(name);
  ag_classify_run run = {.out_dir = f->run};
  ag_classify_metrics last;
  ag_status st = f->train && f->test ? ag_classify_train(&f->cfg, &run, f->train, f->test, &last)
                                     : AG_ERR_NOMEM;
  CHECK_OK(st);
  return st == AG_OK;
}

static void fixture_teardown(fixture *f) {
  ag_image_dataset_destroy(f->train);
  ag_image_dataset_destroy(f->test);
}

static ag_infusion_config small_config(void) {
  ag_infusion_config c = ag_infusion_defaults();
  c.k = 12;
  c.progress = false;
  c.score_chunk = 100;
  c.damping = AG_INFLUENCE_DAMPING_DEFAULT;
  c.perturb.steps = 10;
  c.perturb.step_size = 0.005f;
  return c;
}

static bool in_unit(double x) { return x >= 0 && x <= 1; }

TEST(protocol_crafts_retrains_and_measures_one_pair) {
  fixture f;
  if (!fixture_setup(&f, "run-a", 3)) return;
  ag_infusion_base *b = NULL;
  CHECK_OK(ag_infusion_base_open(f.run, f.train, f.test, &b));
  if (!b) {
    fixture_teardown(&f);
    return;
  }
  CHECK(b->epoch == 3 && b->examples == f.cfg.limit);
  float *before = malloc((size_t)(f.train->count * SIDE * SIDE) * sizeof *before);
  memcpy(before, f.train->images, (size_t)(f.train->count * SIDE * SIDE) * sizeof *before);
  ag_infusion_config cfg = small_config();
  ag_infusion_plan plan = {.craft = b, .work_dir = tmp_path("work-a")};
  int probe_label = f.test->labels[3];
  ag_infusion_target pair = {3, (probe_label + 4) % CLASSES};
  ag_infusion_result r;
  ag_status st = ag_infusion_run_pair(&plan, pair, &cfg, &r);
  CHECK_OK(st);
  if (!st) {
    CHECK(r.edited == cfg.k && r.probe_label == probe_label);
    CHECK(in_unit(r.before.p) && in_unit(r.after.p));
    CHECK_NEAR(r.delta_p, r.after.p - r.before.p, 1e-12);
    CHECK(in_unit(r.clean_acc_before) && in_unit(r.clean_acc_after));
    CHECK(r.linf_max <= cfg.perturb.epsilon + 1e-6 && r.linf_max > 0);
    /* The perturbation raised the engine's own prediction of Δf for the
     * edited images: the mixed derivative and the scores agree in sign. */
    CHECK_MSG(r.predicted_after > r.predicted_before, "predicted %g -> %g", r.predicted_before,
              r.predicted_after);
    /* log-odds agree with p */
    CHECK_NEAR(r.before.log_odds, log(r.before.p / (1 - r.before.p)), 1e-4);
  }
  /* The training set is back as it was. */
  CHECK(memcmp(before, f.train->images, (size_t)(f.train->count * SIDE * SIDE) * sizeof *before) ==
        0);
  /* The clean retrain repeats the run's own last epoch: same weights. */
  ag_vision_model *clean = NULL;
  double acc = 0;
  char clean_dir[700];
  snprintf(clean_dir, sizeof clean_dir, "%s/infusion/clean-retrain", f.run);
  CHECK_OK(ag_infusion_retrain(b, NULL, clean_dir, true, &clean, &acc));
  if (clean) {
    ag_params *a = ag_vision_model_params(clean), *o = ag_vision_model_params(b->model);
    CHECK(a->total == o->total && !memcmp(a->data, o->data, (size_t)a->total * sizeof(float)));
    CHECK_NEAR(acc, b->info.metrics.test_acc, 1e-12);
  }
  ag_vision_model_destroy(clean);
  /* The factors were cached: a second pair loads them. */
  char factors[700];
  snprintf(factors, sizeof factors, "%s/infusion/factors-e003-ddefault.safetensors", f.run);
  CHECK(ag_file_exists(factors));

  /* Baselines: noise of the same budget, probe copies. */
  cfg.method = AG_INFUSION_METHOD_NOISE;
  CHECK_OK(ag_infusion_run_pair(&plan, pair, &cfg, &r));
  CHECK(r.edited == cfg.k && fabs(r.linf_max - cfg.perturb.epsilon) < 1e-6);
  cfg.method = AG_INFUSION_METHOD_PROBE_COPIES;
  cfg.copies = 3;
  cfg.select = AG_INFUSION_SELECT_RANDOM;
  CHECK_OK(ag_infusion_run_pair(&plan, pair, &cfg, &r));
  CHECK(r.edited == 3 && in_unit(r.after.p));

  /* Bad pairs are refused with a message naming them. */
  ag_infusion_target bad = {f.test->count, 1};
  CHECK(ag_infusion_run_pair(&plan, bad, &cfg, &r) == AG_ERR_INVALID);
  CHECK(strstr(ag_error_message(), "probe") != NULL);
  bad = (ag_infusion_target){0, CLASSES};
  CHECK(ag_infusion_run_pair(&plan, bad, &cfg, &r) == AG_ERR_INVALID);
  free(before);
  ag_infusion_base_close(b);
  fixture_teardown(&f);
}

/* The lines of a JSONL file as one array. */
static ag_status read_lines(const char *path, json_t **out) {
  *out = json_array();
  ag_jsonl_reader *r = NULL;
  ag_status st = ag_jsonl_open(path, &r);
  json_t *v = NULL;
  while (!st && !(st = ag_jsonl_next(r, &v)) && v) json_array_append_new(*out, v);
  if (r) ag_jsonl_close(r);
  return st;
}

TEST(sweep_resumes_and_summarizes) {
  fixture f;
  if (!fixture_setup(&f, "run-s", 2)) return;
  ag_infusion_base *b = NULL;
  CHECK_OK(ag_infusion_base_open(f.run, f.train, f.test, &b));
  if (!b) {
    fixture_teardown(&f);
    return;
  }
  ag_infusion_config cfg = small_config();
  ag_infusion_variant v[4];
  int nv = 0;
  CHECK_OK(ag_infusion_variants_parse("infusion,probe-1", cfg.k, v, 4, &nv));
  ag_infusion_plan plan = {.craft = b};
  const char *out = tmp_path("sweep");
  ag_infusion_sweep_config sc = {.pairs = 3, .out_dir = out, .variants = v, .variant_count = nv};
  ag_infusion_summary_row rows[4];
  int n = 0;
  CHECK_OK(ag_infusion_sweep(&plan, &sc, &cfg, rows, 4, &n));
  CHECK(n == 2);
  if (n == 2) {
    CHECK(!strcmp(rows[0].variant, "infusion") && rows[0].runs == 3);
    CHECK(!strcmp(rows[1].variant, "probe-1") && rows[1].runs == 3);
    CHECK(rows[0].positive_share >= 0 && rows[0].positive_share <= 1);
    CHECK(rows[0].delta_p_se >= 0);
  }
  char path[700];
  snprintf(path, sizeof path, "%s/results.jsonl", out);
  struct stat first, second;
  CHECK(stat(path, &first) == 0);
  /* Rerun: every line is there, nothing is redone or appended. */
  CHECK_OK(ag_infusion_sweep(&plan, &sc, &cfg, rows, 4, &n));
  CHECK(stat(path, &second) == 0 && second.st_size == first.st_size);
  ag_infusion_summary_row again[4];
  int m = 0;
  CHECK_OK(ag_infusion_summarize(path, again, 4, &m));
  CHECK(m == 2 && again[0].delta_p_mean == rows[0].delta_p_mean);
  const char *files[] = {"summary.md", "summary.json", "results.csv", "plot.gp"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", out, files[i]);
    CHECK_MSG(ag_file_exists(path), "%s missing", files[i]);
  }
  /* Grown to four pairs: the three finished pairs' lines stay as they were
   * (pairs are a prefix-stable draw) and the scores are computed again for
   * the four queries, in a folder of their own. */
  json_t *before = NULL;
  snprintf(path, sizeof path, "%s/results.jsonl", out);
  CHECK_OK(read_lines(path, &before));
  sc.pairs = 4;
  CHECK_OK(ag_infusion_sweep(&plan, &sc, &cfg, rows, 4, &n));
  CHECK(n == 2 && rows[0].runs == 4 && rows[1].runs == 4);
  json_t *after = NULL;
  CHECK_OK(read_lines(path, &after));
  CHECK(before && after && json_array_size(after) == 8);
  for (size_t i = 0; before && after && i < json_array_size(before); i++)
    CHECK_MSG(json_equal(json_array_get(before, i), json_array_get(after, i)), "line %zu changed",
              i);
  json_decref(before);
  json_decref(after);
  sc.pairs = 3;
  /* Another seed draws other pairs: its lines would not match. */
  cfg.seed = 99;
  CHECK(ag_infusion_sweep(&plan, &sc, &cfg, rows, 4, &n) == AG_ERR_INVALID);
  ag_infusion_base_close(b);
  fixture_teardown(&f);
}

TEST(runs_that_cannot_be_used_are_refused) {
  fixture f;
  if (!fixture_setup(&f, "run-one", 1)) return;
  ag_infusion_base *b = NULL;
  CHECK(ag_infusion_base_open(f.run, f.train, f.test, &b) == AG_ERR_INVALID); /* one epoch */
  CHECK(strstr(ag_error_message(), "2 epochs") != NULL);
  CHECK(ag_infusion_base_open(tmp_path("nothing-here"), f.train, f.test, &b) == AG_ERR_NOT_FOUND);
  fixture_teardown(&f);
  if (!fixture_setup(&f, "run-two", 2)) return;
  ag_image_dataset *other = NULL; /* 16x16 images: not what the run saw */
  CHECK_OK(ag_image_dataset_create(10, 1, 16, 16, CLASSES, &other));
  CHECK(ag_infusion_base_open(f.run, other, f.test, &b) == AG_ERR_SHAPE);
  snprintf(other->name, sizeof other->name, "synthetic");
  ag_image_dataset_destroy(other);
  snprintf(f.train->name, sizeof f.train->name, "fashion-mnist"); /* another data set's name */
  CHECK(ag_infusion_base_open(f.run, f.train, f.test, &b) == AG_ERR_INVALID);
  fixture_teardown(&f);
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[1200];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
      remove_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

int main(void) {
  ag_threads_init();
  ag_log_set_level(AG_LOG_WARN);
  ag_progress_set_quiet(true);
  RUN(input_gradient_matches_softmax_regression);
  RUN(mixed_gradient_matches_softmax_regression_closed_form);
  RUN(mixed_gradient_of_an_mlp_matches_a_directional_difference);
  RUN(perturbation_stays_in_budget_and_pixel_range);
  RUN(perturbation_with_a_small_budget_moves_at_most_steps_times_step);
  RUN(noise_moves_every_pixel_by_epsilon_within_range);
  RUN(selection_by_score_and_at_random);
  RUN(names_parse_and_print);
  RUN(bad_perturbation_settings_are_refused);
  RUN(protocol_crafts_retrains_and_measures_one_pair);
  RUN(sweep_resumes_and_summarizes);
  RUN(runs_that_cannot_be_used_are_refused);
  remove_tree(test_tmpdir());
  TEST_MAIN_END();
}
