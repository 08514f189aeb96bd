/* Image classifiers built from ops: an MLP, a plain CNN and a small ResNet.
 * Sizes follow the Infusion paper's CIFAR-10 models (PAPERS.md §3): a
 * SimpleCNN of three double-conv blocks (~290k parameters) and a ResNet with
 * a conv stem and three residual stages 32 -> 64 -> 128 (309k). The ResNet
 * normalises with group norm, not batch norm, so each example's gradient
 * depends on that example alone (per-example gradients, influence). */
#include "agora/ops.h"
#include "agora/vision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MLP_LAYERS 3
static const int64_t mlp_hidden[MLP_LAYERS - 1] = {256, 128};

#define CNN_BLOCKS          3
#define CNN_CONVS_PER_BLOCK 2
static const int64_t cnn_channels[CNN_BLOCKS] = {32, 64, 128};

#define RESNET_STAGES 3
static const int64_t resnet_channels[RESNET_STAGES] = {32, 64, 128};
/* Every stage opens with a stride-2 block, stage 1 included (28 -> 14 -> 7
 * -> 4 on Fashion-MNIST): the stem's 32 channels at full resolution are
 * cheap, and halving before stage 1 makes the network 3.5x cheaper than
 * keeping stage 1 at 28x28 (10.5M vs 37M multiply-adds per image), so in
 * the CNN's time budget the ResNet trains ~2.5x as many epochs. */
static const int resnet_strides[RESNET_STAGES] = {2, 2, 2};
/* Eight groups divide every width above; statistics over 4..16 channels. */
#define GROUPNORM_GROUPS 8
#define GROUPNORM_EPS    1e-5f

#define CONV_KERNEL  3
#define CONV_PADDING 1
#define POOL_SIZE    2

typedef struct conv_layer {
  ag_tensor *weight, *bias; /* (O, C, k, k), (O) or NULL */
} conv_layer;

typedef struct norm_layer {
  ag_tensor *weight, *bias; /* (C), (C) */
} norm_layer;

/* conv1 (stride s) -> norm1 -> relu -> conv2 -> norm2, plus the shortcut
 * (a strided 1x1 conv + norm when the shape changes), then relu. */
typedef struct residual_block {
  int stride;
  conv_layer conv1, conv2, shortcut;
  norm_layer norm1, norm2, shortcut_norm;
  bool has_shortcut;
} residual_block;

struct ag_vision_model {
  ag_vision_model_kind kind;
  int channels, height, width, num_classes;
  ag_params *params;
  conv_layer fc[MLP_LAYERS];                         /* mlp: (out, in) weights */
  conv_layer conv[CNN_BLOCKS * CNN_CONVS_PER_BLOCK]; /* cnn */
  conv_layer stem;                                   /* resnet */
  norm_layer stem_norm;
  residual_block blocks[RESNET_STAGES];
  conv_layer classifier; /* cnn and resnet */
  bool incomplete;       /* a parameter could not be declared */
};

const char *ag_vision_model_name(ag_vision_model_kind kind) {
  switch (kind) {
  case AG_VISION_MLP: return "mlp";
  case AG_VISION_CNN: return "cnn";
  case AG_VISION_RESNET: return "resnet";
  }
  return "?";
}

ag_status ag_vision_model_parse(const char *name, ag_vision_model_kind *out) {
  for (int k = AG_VISION_MLP; k <= AG_VISION_RESNET; k++)
    if (!strcmp(name, ag_vision_model_name((ag_vision_model_kind)k))) {
      *out = (ag_vision_model_kind)k;
      return AG_OK;
    }
  return ag_error_set(AG_ERR_INVALID, "unknown model '%s' (known: mlp, cnn, resnet)", name);
}

/* ---- construction ---------------------------------------------------------------- */

/* Declares name.weight (out, in, k, k) (or (out, in) when k = 0) and
 * name.bias (out) when with_bias. */
static conv_layer add_layer(ag_vision_model *m, const char *name, int64_t out, int64_t in,
                            int64_t k, bool with_bias) {
  ag_params *p = m->params;
  char full[128];
  conv_layer l = {0};
  snprintf(full, sizeof full, "%s.weight", name);
  int64_t conv_shape[4] = {out, in, k, k}, linear_shape[2] = {out, in};
  l.weight = k ? ag_params_add(p, full, 4, conv_shape) : ag_params_add(p, full, 2, linear_shape);
  if (with_bias) {
    snprintf(full, sizeof full, "%s.bias", name);
    l.bias = ag_params_add(p, full, 1, &out);
    if (!l.bias) m->incomplete = true;
  }
  if (!l.weight) m->incomplete = true;
  return l;
}

static norm_layer add_norm(ag_vision_model *m, const char *name, int64_t channels) {
  ag_params *p = m->params;
  char full[128];
  norm_layer n;
  snprintf(full, sizeof full, "%s.weight", name);
  n.weight = ag_params_add(p, full, 1, &channels);
  snprintf(full, sizeof full, "%s.bias", name);
  n.bias = ag_params_add(p, full, 1, &channels);
  if (!n.weight || !n.bias) m->incomplete = true;
  return n;
}

static void build_mlp(ag_vision_model *m) {
  int64_t in = (int64_t)m->channels * m->height * m->width;
  for (int i = 0; i < MLP_LAYERS; i++) {
    int64_t out = i < MLP_LAYERS - 1 ? mlp_hidden[i] : m->num_classes;
    char name[32];
    snprintf(name, sizeof name, "fc%d", i + 1);
    m->fc[i] = add_layer(m, name, out, in, 0, true);
    in = out;
  }
}

static void build_cnn(ag_vision_model *m) {
  int64_t in = m->channels, h = m->height, w = m->width;
  for (int b = 0; b < CNN_BLOCKS; b++) {
    for (int c = 0; c < CNN_CONVS_PER_BLOCK; c++) {
      char name[32];
      snprintf(name, sizeof name, "block%d.conv%d", b + 1, c + 1);
      m->conv[b * CNN_CONVS_PER_BLOCK + c] =
          add_layer(m, name, cnn_channels[b], in, CONV_KERNEL, true);
      in = cnn_channels[b];
    }
    h /= POOL_SIZE;
    w /= POOL_SIZE;
  }
  m->classifier = add_layer(m, "classifier", m->num_classes, in * h * w, 0, true);
}

static void build_resnet(ag_vision_model *m) {
  int64_t in = resnet_channels[0];
  /* Convs followed by a norm need no bias: the norm's shift replaces it. */
  m->stem = add_layer(m, "stem", in, m->channels, CONV_KERNEL, false);
  m->stem_norm = add_norm(m, "stem_norm", in);
  for (int s = 0; s < RESNET_STAGES; s++) {
    residual_block *b = &m->blocks[s];
    int64_t out = resnet_channels[s];
    char name[64];
    b->stride = resnet_strides[s];
    b->has_shortcut = b->stride != 1 || in != out;
    snprintf(name, sizeof name, "stage%d.block0.conv1", s + 1);
    b->conv1 = add_layer(m, name, out, in, CONV_KERNEL, false);
    snprintf(name, sizeof name, "stage%d.block0.norm1", s + 1);
    b->norm1 = add_norm(m, name, out);
    snprintf(name, sizeof name, "stage%d.block0.conv2", s + 1);
    b->conv2 = add_layer(m, name, out, out, CONV_KERNEL, false);
    snprintf(name, sizeof name, "stage%d.block0.norm2", s + 1);
    b->norm2 = add_norm(m, name, out);
    if (b->has_shortcut) {
      snprintf(name, sizeof name, "stage%d.block0.shortcut", s + 1);
      b->shortcut = add_layer(m, name, out, in, 1, false);
      snprintf(name, sizeof name, "stage%d.block0.shortcut_norm", s + 1);
      b->shortcut_norm = add_norm(m, name, out);
    }
    in = out;
  }
  m->classifier = add_layer(m, "classifier", m->num_classes, in, 0, true);
}

ag_status ag_vision_model_create(ag_vision_model_kind kind, int channels, int height, int width,
                                 int num_classes, ag_vision_model **out) {
  *out = NULL;
  int min_side = kind == AG_VISION_CNN ? 8 : 1; /* three 2x2 pools need 8 pixels */
  if (channels <= 0 || height < min_side || width < min_side || num_classes < 2)
    return ag_error_set(AG_ERR_INVALID,
                        "%s: cannot classify %d-channel %dx%d images into %d classes",
                        ag_vision_model_name(kind), channels, height, width, num_classes);
  if (kind < AG_VISION_MLP || kind > AG_VISION_RESNET)
    return ag_error_set(AG_ERR_INVALID, "unknown model kind %d", (int)kind);
  ag_vision_model *m = calloc(1, sizeof *m);
  if (!m) return ag_error_set(AG_ERR_NOMEM, "model: out of memory");
  m->kind = kind;
  m->channels = channels;
  m->height = height;
  m->width = width;
  m->num_classes = num_classes;
  m->params = ag_params_create();
  if (!m->params) {
    free(m);
    return AG_ERR_NOMEM;
  }
  switch (kind) {
  case AG_VISION_MLP: build_mlp(m); break;
  case AG_VISION_CNN: build_cnn(m); break;
  case AG_VISION_RESNET: build_resnet(m); break;
  }
  /* ag_params_add has set the error message of a failed declaration. */
  ag_status st = m->incomplete ? AG_ERR_NOMEM : ag_params_finalize(m->params);
  if (st) {
    ag_vision_model_destroy(m);
    return st;
  }
  *out = m;
  return AG_OK;
}

void ag_vision_model_destroy(ag_vision_model *m) {
  if (!m) return;
  ag_params_destroy(m->params);
  free(m);
}

ag_vision_model_kind ag_vision_model_kind_of(const ag_vision_model *m) { return m->kind; }
ag_params *ag_vision_model_params(const ag_vision_model *m) { return m->params; }

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && !strcmp(s + n - k, suffix);
}

void ag_vision_model_init(ag_vision_model *m, ag_rng *rng) {
  ag_params *p = m->params;
  for (int i = 0; i < p->count; i++) {
    ag_tensor *x = p->tensors[i];
    if (x->ndim >= 2) {
      /* Kaiming-normal for ReLU networks (He et al. 2015): fan_in = inputs
       * feeding one output unit. */
      double fan_in = (double)x->numel / (double)x->shape[0];
      float std = (float)sqrt(2.0 / fan_in);
      for (int64_t j = 0; j < x->numel; j++) x->data[j] = std * ag_rng_normal(rng);
    } else {
      bool norm_scale = strstr(x->name, "norm") && ends_with(x->name, ".weight");
      /* The last norm of each residual branch starts at 0, so every block
       * starts as its shortcut (Goyal et al. 2017, "zero-init residual"). */
      if (ends_with(x->name, ".norm2.weight")) norm_scale = false;
      for (int64_t j = 0; j < x->numel; j++) x->data[j] = norm_scale ? 1.0f : 0.0f;
    }
  }
}

/* ---- forward passes ---------------------------------------------------------------- */

static ag_tensor *conv(ag_tape *t, ag_tensor *x, const conv_layer *l, int stride) {
  int padding = (int)(l->weight->shape[2] / 2);
  return ag_conv2d(t, x, l->weight, l->bias, stride, padding);
}

static ag_tensor *norm(ag_tape *t, ag_tensor *x, const norm_layer *n) {
  return ag_groupnorm(t, x, GROUPNORM_GROUPS, n->weight, n->bias, GROUPNORM_EPS);
}

/* (N, C, H, W) -> (N, C*H*W) */
static ag_tensor *flatten(ag_tape *t, ag_tensor *x) {
  if (!x) return NULL;
  int64_t shape[2] = {x->shape[0], -1};
  return ag_reshape(t, x, 2, shape);
}

static ag_tensor *forward_mlp(ag_tape *t, const ag_vision_model *m, ag_tensor *x) {
  ag_tensor *h = flatten(t, x); // (N, C*H*W)
  for (int i = 0; i < MLP_LAYERS; i++) {
    h = ag_linear(t, h, m->fc[i].weight, m->fc[i].bias);
    if (i < MLP_LAYERS - 1) h = ag_relu(t, h);
  }
  return h; // (N, classes)
}

static ag_tensor *forward_cnn(ag_tape *t, const ag_vision_model *m, ag_tensor *x) {
  ag_tensor *h = x;
  for (int b = 0; b < CNN_BLOCKS; b++) {
    for (int c = 0; c < CNN_CONVS_PER_BLOCK; c++)
      h = ag_relu(t, conv(t, h, &m->conv[b * CNN_CONVS_PER_BLOCK + c], 1));
    h = ag_maxpool2d(t, h, POOL_SIZE, POOL_SIZE, 0); // (N, C_b, H/2^b, W/2^b)
  }
  return ag_linear(t, flatten(t, h), m->classifier.weight, m->classifier.bias);
}

static ag_tensor *forward_block(ag_tape *t, const residual_block *b, ag_tensor *x) {
  ag_tensor *h = ag_relu(t, norm(t, conv(t, x, &b->conv1, b->stride), &b->norm1));
  h = norm(t, conv(t, h, &b->conv2, 1), &b->norm2);
  ag_tensor *skip =
      b->has_shortcut ? norm(t, conv(t, x, &b->shortcut, b->stride), &b->shortcut_norm) : x;
  return ag_relu(t, ag_add(t, h, skip));
}

static ag_tensor *forward_resnet(ag_tape *t, const ag_vision_model *m, ag_tensor *x) {
  ag_tensor *h = ag_relu(t, norm(t, conv(t, x, &m->stem, 1), &m->stem_norm)); // (N, 32, H, W)
  for (int s = 0; s < RESNET_STAGES; s++) h = forward_block(t, &m->blocks[s], h);
  if (!h) return NULL;
  // global average pool: (N, C, H, W) -> (N, C, H*W) -> (N, C)
  int64_t shape[3] = {h->shape[0], h->shape[1], -1};
  h = ag_mean(t, ag_reshape(t, h, 3, shape), -1, false);
  return ag_linear(t, h, m->classifier.weight, m->classifier.bias);
}

ag_tensor *ag_vision_model_forward(ag_tape *t, const ag_vision_model *m, ag_tensor *x) {
  if (ag_tape_status(t)) return NULL;
  if (!x) return ag_tape_fail(t, AG_ERR_INVALID, "%s: NULL input", ag_vision_model_name(m->kind));
  if (x->ndim != 4 || x->shape[1] != m->channels || x->shape[2] != m->height ||
      x->shape[3] != m->width) {
    char s[96];
    return ag_tape_fail(t, AG_ERR_SHAPE, "%s: input %s does not fit (N, %d, %d, %d)",
                        ag_vision_model_name(m->kind), ag_shape_string(x, s, sizeof s), m->channels,
                        m->height, m->width);
  }
  switch (m->kind) {
  case AG_VISION_MLP: return forward_mlp(t, m, x);
  case AG_VISION_CNN: return forward_cnn(t, m, x);
  case AG_VISION_RESNET: return forward_resnet(t, m, x);
  }
  return ag_tape_fail(t, AG_ERR_INTERNAL, "unknown model kind %d", (int)m->kind);
}
