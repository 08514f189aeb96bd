/* Vision models: parameter names and counts, output shapes, initialisation,
 * per-example independence of the ResNet's group norm, gradients reaching
 * every parameter, a few SGD steps lowering the loss, and tape reuse. */
#include "agora/ops.h"
#include "agora/optim.h"
#include "agora/vision.h"
#include "test.h"

/* Counts designed in src/nn/vision_models.c for 1x28x28 inputs, 10 classes:
 *   mlp    784*256+256 + 256*128+128 + 128*10+10                    = 235,146
 *   cnn    convs 1->32->32 | 32->64->64 | 64->128->128 with biases,
 *          classifier 128*3*3*10+10                                  = 297,962
 *   resnet stem conv 288 + norm 64; stage1 convs 9216, 9216 + 1x1 shortcut 1024 + 3 norms 64;
 *          stage2 convs 18432, 36864 + 1x1 shortcut 2048 + 3 norms 128;
 *          stage3 convs 73728, 147456 + shortcut 8192 + 3 norms 256;
 *          classifier 128*10+10                                      = 309,162 */
#define MLP_PARAMS    235146
#define CNN_PARAMS    297962
#define RESNET_PARAMS 309162

static ag_vision_model *make(ag_vision_model_kind kind, int c, int h, int w, uint64_t seed) {
  ag_vision_model *m = NULL;
  ag_status st = ag_vision_model_create(kind, c, h, w, 10, &m);
  if (st) {
    fprintf(stderr, "create %s: %s\n", ag_vision_model_name(kind), ag_error_message());
    return NULL;
  }
  ag_rng rng;
  ag_rng_seed(&rng, seed);
  ag_vision_model_init(m, &rng);
  return m;
}

/* Images with uniform random pixels in [0, 1): (n, c, h, w). */
static float *random_images(ag_rng *rng, int64_t n, int c, int h, int w) {
  float *x = malloc((size_t)(n * c * h * w) * sizeof(float));
  for (int64_t i = 0; i < n * c * h * w; i++) x[i] = ag_rng_uniform(rng);
  return x;
}

TEST(parameter_counts_and_names_are_as_designed) {
  ag_vision_model *mlp = make(AG_VISION_MLP, 1, 28, 28, 1);
  ag_vision_model *cnn = make(AG_VISION_CNN, 1, 28, 28, 1);
  ag_vision_model *res = make(AG_VISION_RESNET, 1, 28, 28, 1);
  CHECK(mlp && cnn && res);
  if (!mlp || !cnn || !res) return;
  CHECK(ag_vision_model_params(mlp)->total == MLP_PARAMS);
  CHECK(ag_vision_model_params(cnn)->total == CNN_PARAMS);
  CHECK(ag_vision_model_params(res)->total == RESNET_PARAMS);
  CHECK(ag_vision_model_kind_of(cnn) == AG_VISION_CNN);
  const char *mlp_names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc3.bias"};
  for (int i = 0; i < 4; i++)
    CHECK_MSG(ag_params_find(ag_vision_model_params(mlp), mlp_names[i]), "%s", mlp_names[i]);
  const char *cnn_names[] = {"block1.conv1.weight", "block3.conv2.bias", "classifier.weight"};
  for (int i = 0; i < 3; i++)
    CHECK_MSG(ag_params_find(ag_vision_model_params(cnn), cnn_names[i]), "%s", cnn_names[i]);
  const char *res_names[] = {"stem.weight",
                             "stem_norm.weight",
                             "stage1.block0.conv1.weight",
                             "stage1.block0.norm2.bias",
                             "stage2.block0.shortcut.weight",
                             "stage3.block0.shortcut_norm.weight",
                             "classifier.bias"};
  for (int i = 0; i < 7; i++)
    CHECK_MSG(ag_params_find(ag_vision_model_params(res), res_names[i]), "%s", res_names[i]);
  /* Every stage halves the resolution, so every shortcut is a strided 1x1 conv. */
  ag_tensor *sc = ag_params_find(ag_vision_model_params(res), "stage1.block0.shortcut.weight");
  CHECK(sc && sc->shape[0] == 32 && sc->shape[1] == 32 && sc->shape[2] == 1);
  ag_tensor *w = ag_params_find(ag_vision_model_params(res), "stage3.block0.conv2.weight");
  CHECK(w && w->shape[0] == 128 && w->shape[1] == 128 && w->shape[2] == 3);
  ag_vision_model_destroy(mlp);
  ag_vision_model_destroy(cnn);
  ag_vision_model_destroy(res);
}

TEST(models_map_image_batches_to_logits) {
  ag_rng rng;
  ag_rng_seed(&rng, 2);
  const int shapes[2][3] = {{1, 28, 28}, {3, 32, 32}}; /* Fashion-MNIST and CIFAR-10 */
  for (int s = 0; s < 2; s++)
    for (int k = AG_VISION_MLP; k <= AG_VISION_RESNET; k++) {
      int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2];
      ag_vision_model *m = make((ag_vision_model_kind)k, c, h, w, 3);
      CHECK(m);
      if (!m) continue;
      float *x = random_images(&rng, 3, c, h, w);
      ag_tape *t = ag_tape_create();
      int64_t shape[4] = {3, c, h, w};
      ag_tensor *y = ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, shape));
      CHECK_MSG(y && y->ndim == 2 && y->shape[0] == 3 && y->shape[1] == 10, "%s: %s",
                ag_vision_model_name((ag_vision_model_kind)k), ag_tape_error(t));
      for (int64_t i = 0; y && i < y->numel; i++) CHECK(isfinite(y->data[i]));
      ag_tape_destroy(t);
      free(x);
      ag_vision_model_destroy(m);
    }
}

TEST(wrong_input_shape_is_an_error_naming_the_model) {
  ag_vision_model *m = make(AG_VISION_CNN, 1, 28, 28, 1);
  ag_tape *t = ag_tape_create();
  int64_t shape[4] = {2, 3, 28, 28};
  float x[2 * 3 * 28 * 28] = {0};
  CHECK(ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, shape)) == NULL);
  CHECK_MSG(strstr(ag_tape_error(t), "cnn") && strstr(ag_tape_error(t), "(2, 3, 28, 28)"), "%s",
            ag_tape_error(t));
  ag_vision_model *bad = NULL;
  CHECK(ag_vision_model_create(AG_VISION_CNN, 1, 4, 4, 10, &bad) == AG_ERR_INVALID && !bad);
  ag_vision_model_kind kind;
  CHECK(ag_vision_model_parse("resnet", &kind) == AG_OK && kind == AG_VISION_RESNET);
  CHECK(ag_vision_model_parse("vgg", &kind) == AG_ERR_INVALID);
  ag_tape_destroy(t);
  ag_vision_model_destroy(m);
}

TEST(kaiming_init_is_seeded_and_scaled_by_fan_in) {
  ag_vision_model *a = make(AG_VISION_RESNET, 1, 28, 28, 7);
  ag_vision_model *b = make(AG_VISION_RESNET, 1, 28, 28, 7);
  ag_vision_model *c = make(AG_VISION_RESNET, 1, 28, 28, 8);
  ag_params *pa = ag_vision_model_params(a), *pb = ag_vision_model_params(b),
            *pc = ag_vision_model_params(c);
  CHECK(!memcmp(pa->data, pb->data, (size_t)pa->total * sizeof(float)));
  CHECK(memcmp(pa->data, pc->data, (size_t)pa->total * sizeof(float)) != 0);
  ag_tensor *w = ag_params_find(pa, "stage3.block0.conv2.weight"); /* fan_in 128*3*3 */
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < w->numel; i++) {
    sum += w->data[i];
    sq += (double)w->data[i] * w->data[i];
  }
  double mean = sum / (double)w->numel, std = sqrt(sq / (double)w->numel - mean * mean);
  CHECK_NEAR(mean, 0.0, 0.002);
  CHECK_NEAR(std, sqrt(2.0 / 1152.0), 0.02 * sqrt(2.0 / 1152.0));
  ag_tensor *gamma = ag_params_find(pa, "stage2.block0.norm1.weight");
  ag_tensor *beta = ag_params_find(pa, "stage2.block0.norm1.bias");
  ag_tensor *bias = ag_params_find(pa, "classifier.bias");
  for (int i = 0; i < 64; i++) CHECK(gamma->data[i] == 1.0f && beta->data[i] == 0.0f);
  /* zero-init residual: each block starts as its shortcut */
  ag_tensor *last_gamma = ag_params_find(pa, "stage2.block0.norm2.weight");
  for (int i = 0; i < 64; i++) CHECK(last_gamma->data[i] == 0.0f);
  for (int i = 0; i < 10; i++) CHECK(bias->data[i] == 0.0f);
  ag_vision_model_destroy(a);
  ag_vision_model_destroy(b);
  ag_vision_model_destroy(c);
}

TEST(resnet_examples_do_not_influence_each_other) {
  /* Group norm normalises within an example: example 0's logits are the
   * same alone and in a batch (batch norm would mix them). */
  ag_rng rng;
  ag_rng_seed(&rng, 4);
  ag_vision_model *m = make(AG_VISION_RESNET, 1, 28, 28, 5);
  float *x = random_images(&rng, 3, 1, 28, 28);
  ag_tape *t = ag_tape_create();
  int64_t one[4] = {1, 1, 28, 28}, three[4] = {3, 1, 28, 28};
  ag_tensor *alone = ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, one));
  ag_tensor *batch = ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, three));
  CHECK(alone && batch);
  for (int j = 0; alone && batch && j < 10; j++)
    CHECK_NEAR(alone->data[j], batch->data[j], 1e-4 * (1 + fabs(alone->data[j])));
  ag_tape_destroy(t);
  free(x);
  ag_vision_model_destroy(m);
}

TEST(gradients_reach_every_parameter) {
  /* Two steps: the ResNet's zero-initialised norm2 scales block the
   * gradient of conv2 until the first update makes them non-zero. */
  ag_rng rng;
  ag_rng_seed(&rng, 5);
  float *x = random_images(&rng, 4, 1, 28, 28);
  int32_t y[4] = {0, 3, 7, 9};
  for (int k = AG_VISION_MLP; k <= AG_VISION_RESNET; k++) {
    ag_vision_model *m = make((ag_vision_model_kind)k, 1, 28, 28, 6);
    ag_params *p = ag_vision_model_params(m);
    ag_optim_config oc = ag_optim_sgd_defaults(0.01f);
    ag_optim *o = NULL;
    CHECK_OK(ag_optim_create(p, &oc, &o));
    ag_tape *t = ag_tape_create();
    int64_t shape[4] = {4, 1, 28, 28};
    for (int step = 0; step < 2 && o; step++) {
      ag_tape_reset(t);
      ag_tensor *logits = ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, shape));
      ag_tensor *loss = ag_cross_entropy(t, logits, y, NULL, -1, false);
      ag_params_zero_grad(p);
      CHECK_OK(ag_backward(t, loss));
      if (step == 0) CHECK_OK(ag_optim_step(o, 0.01f));
    }
    for (int i = 0; i < p->count; i++) {
      double norm = 0;
      for (int64_t j = 0; j < p->tensors[i]->numel; j++) norm += fabs(p->tensors[i]->grad[j]);
      CHECK_MSG(norm > 0 && isfinite(norm), "%s: no gradient reaches %s",
                ag_vision_model_name((ag_vision_model_kind)k), p->tensors[i]->name);
    }
    ag_tape_destroy(t);
    ag_optim_destroy(o);
    ag_vision_model_destroy(m);
  }
  free(x);
}

TEST(a_few_sgd_steps_lower_the_loss) {
  ag_rng rng;
  ag_rng_seed(&rng, 6);
  enum { N = 8 };
  float *x = random_images(&rng, N, 1, 28, 28);
  int32_t y[N];
  for (int i = 0; i < N; i++) y[i] = i % 10;
  const int steps = 10; /* cheap at this size, even under sanitizers */
  for (int k = AG_VISION_MLP; k <= AG_VISION_RESNET; k++) {
    ag_vision_model *m = make((ag_vision_model_kind)k, 1, 28, 28, 7);
    ag_params *p = ag_vision_model_params(m);
    ag_optim_config oc = ag_optim_sgd_defaults(0.02f);
    oc.momentum = 0.9f;
    ag_optim *o = NULL;
    CHECK_OK(ag_optim_create(p, &oc, &o));
    ag_tape *t = ag_tape_create();
    int64_t shape[4] = {N, 1, 28, 28};
    float first = 0, last = 0;
    for (int s = 0; s <= steps && o; s++) {
      ag_tape_reset(t);
      ag_tensor *logits = ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, shape));
      ag_tensor *loss = ag_cross_entropy(t, logits, y, NULL, -1, false);
      if (!loss) break;
      if (s == 0) first = loss->data[0];
      last = loss->data[0];
      ag_params_zero_grad(p);
      CHECK_OK(ag_backward(t, loss));
      CHECK_OK(ag_optim_step(o, 0.02f));
    }
    CHECK_MSG(last < 0.85f * first, "%s: loss %g -> %g",
              ag_vision_model_name((ag_vision_model_kind)k), first, last);
    ag_tape_destroy(t);
    ag_optim_destroy(o);
    ag_vision_model_destroy(m);
  }
  free(x);
}

TEST(repeated_steps_reuse_the_tape_memory) {
  /* After the first step, a training step allocates nothing new: the
   * tape's arena stays the size the first step made it. */
  ag_rng rng;
  ag_rng_seed(&rng, 8);
  float *x = random_images(&rng, 8, 1, 28, 28);
  int32_t y[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  ag_vision_model *m = make(AG_VISION_RESNET, 1, 28, 28, 9);
  ag_tape *t = ag_tape_create();
  int64_t shape[4] = {8, 1, 28, 28};
  size_t capacity[3];
  for (int s = 0; s < 3; s++) {
    ag_tape_reset(t);
    ag_tensor *loss = ag_cross_entropy(
        t, ag_vision_model_forward(t, m, ag_tape_wrap(t, x, 4, shape)), y, NULL, -1, false);
    ag_params_zero_grad(ag_vision_model_params(m));
    CHECK_OK(ag_backward(t, loss));
    capacity[s] = ag_arena_capacity(ag_tape_arena(t));
  }
  CHECK(capacity[1] == capacity[0] && capacity[2] == capacity[0]);
  ag_tape_destroy(t);
  free(x);
  ag_vision_model_destroy(m);
}

int main(void) {
  RUN(parameter_counts_and_names_are_as_designed);
  RUN(models_map_image_batches_to_logits);
  RUN(wrong_input_shape_is_an_error_naming_the_model);
  RUN(kaiming_init_is_seeded_and_scaled_by_fan_in);
  RUN(resnet_examples_do_not_influence_each_other);
  RUN(gradients_reach_every_parameter);
  RUN(a_few_sgd_steps_lower_the_loss);
  RUN(repeated_steps_reuse_the_tape_memory);
  TEST_MAIN_END();
}
