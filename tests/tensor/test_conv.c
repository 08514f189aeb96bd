/* conv2d, maxpool2d, avgpool2d: values against direct loops, gradients
 * against finite differences, layer hooks and per-example gradients, and
 * the error messages for shapes that do not fit. */
#include "agora/ops.h"
#include "gradcheck.h"
#include "test.h"

typedef struct conv_case {
  int64_t N, C, H, W, O, kh, kw;
  int stride, padding;
  bool bias;
} conv_case;

static const conv_case conv_cases[] = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, true},  /* "same" 3x3 */
    {2, 3, 7, 6, 4, 3, 3, 2, 1, false}, /* strided, odd sizes */
    {1, 2, 5, 5, 3, 5, 3, 1, 2, true},  /* non-square kernel, wide padding */
    {3, 4, 6, 5, 5, 1, 1, 1, 0, true},  /* pointwise: the transpose fast path */
    {2, 4, 6, 5, 3, 1, 1, 2, 0, false}, /* 1x1 strided: the general path */
    {2, 2, 8, 8, 3, 2, 2, 2, 0, true},  /* patchify, no overlap */
    {1, 2, 3, 4, 2, 5, 6, 1, 1, false}, /* kernel as large as the padded input */
    {2, 3, 9, 7, 2, 3, 2, 3, 2, true},  /* stride larger than the kernel */
    {2, 2, 4, 3, 3, 1, 1, 1, 2, true},  /* padding wider than the kernel */
    {1, 3, 5, 4, 2, 2, 3, 2, 3, false}, /* whole windows in the padding, strided */
    {2, 3, 6, 9, 4, 3, 3, 1, 0, true},  /* 3x3 without padding */
    {1, 2, 5, 2, 3, 3, 3, 1, 1, false}, /* image narrower than 4: no 4-float copies */
};

static int64_t out_size(int64_t in, int64_t k, int stride, int padding) {
  return (in + 2 * padding - k) / stride + 1;
}

/* y[n, o, oh, ow] = b[o] + sum_{c, i, j} x[n, c, oh*s - p + i, ow*s - p + j] w[o, c, i, j] */
static double direct_conv(const conv_case *cc, const float *x, const float *w, const float *b,
                          int64_t n, int64_t o, int64_t oh, int64_t ow) {
  double s = b ? b[o] : 0.0;
  for (int64_t c = 0; c < cc->C; c++)
    for (int64_t i = 0; i < cc->kh; i++)
      for (int64_t j = 0; j < cc->kw; j++) {
        int64_t ih = oh * cc->stride - cc->padding + i, iw = ow * cc->stride - cc->padding + j;
        if (ih < 0 || ih >= cc->H || iw < 0 || iw >= cc->W) continue;
        s += (double)x[((n * cc->C + c) * cc->H + ih) * cc->W + iw] *
             (double)w[((o * cc->C + c) * cc->kh + i) * cc->kw + j];
      }
  return s;
}

typedef struct conv_args {
  int stride, padding;
} conv_args;

static ag_tensor *f_conv(ag_tape *t, ag_tensor **in, void *ctx) {
  const conv_args *a = ctx;
  return ag_conv2d(t, in[0], in[1], in[2], a->stride, a->padding);
}

TEST(conv2d_matches_direct_convolution) {
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  for (size_t k = 0; k < sizeof conv_cases / sizeof *conv_cases; k++) {
    const conv_case *cc = &conv_cases[k];
    ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){cc->N, cc->C, cc->H, cc->W}, -1, 1, false);
    ag_tensor *w =
        gradcheck_random(&rng, 4, (int64_t[]){cc->O, cc->C, cc->kh, cc->kw}, -1, 1, false);
    ag_tensor *b = cc->bias ? gradcheck_random(&rng, 1, (int64_t[]){cc->O}, -1, 1, false) : NULL;
    ag_tape *t = ag_tape_create();
    ag_tensor *y = ag_conv2d(t, x, w, b, cc->stride, cc->padding);
    int64_t OH = out_size(cc->H, cc->kh, cc->stride, cc->padding);
    int64_t OW = out_size(cc->W, cc->kw, cc->stride, cc->padding);
    CHECK_MSG(y && y->ndim == 4 && y->shape[0] == cc->N && y->shape[1] == cc->O &&
                  y->shape[2] == OH && y->shape[3] == OW,
              "case %zu: %s", k, y ? "wrong shape" : ag_tape_error(t));
    int bad = 0;
    for (int64_t n = 0; y && n < cc->N; n++)
      for (int64_t o = 0; o < cc->O; o++)
        for (int64_t oh = 0; oh < OH; oh++)
          for (int64_t ow = 0; ow < OW; ow++) {
            double want = direct_conv(cc, x->data, w->data, b ? b->data : NULL, n, o, oh, ow);
            float got = y->data[((n * cc->O + o) * OH + oh) * OW + ow];
            if (fabs(got - want) > 1e-5 + 1e-5 * fabs(want)) bad++;
          }
    CHECK_MSG(bad == 0, "case %zu: %d outputs differ from the direct convolution", k, bad);
    ag_tape_destroy(t);
    ag_tensor_destroy(x);
    ag_tensor_destroy(w);
    ag_tensor_destroy(b);
  }
}

/* A larger batch, so im2col, the sgemm and the transposes run threaded. */
TEST(conv2d_large_batch_matches_direct_convolution) {
  conv_case cc = {test_scaled(16, 2), 8, 12, 12, 16, 3, 3, 1, 1, true};
  ag_rng rng;
  ag_rng_seed(&rng, 12);
  ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){cc.N, cc.C, cc.H, cc.W}, -1, 1, false);
  ag_tensor *w = gradcheck_random(&rng, 4, (int64_t[]){cc.O, cc.C, cc.kh, cc.kw}, -1, 1, false);
  ag_tensor *b = gradcheck_random(&rng, 1, (int64_t[]){cc.O}, -1, 1, false);
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_conv2d(t, x, w, b, cc.stride, cc.padding);
  CHECK(y != NULL);
  int bad = 0;
  for (int64_t i = 0; y && i < y->numel; i++) {
    int64_t ow = i % 12, oh = i / 12 % 12, o = i / 144 % cc.O, n = i / (144 * cc.O);
    double want = direct_conv(&cc, x->data, w->data, b->data, n, o, oh, ow);
    if (fabs(y->data[i] - want) > 1e-4) bad++;
  }
  CHECK_MSG(bad == 0, "%d outputs differ", bad);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(w);
  ag_tensor_destroy(b);
}

/* Big enough that backward computes the patch gradients in several blocks
 * of images and transposes in 8x8 register blocks; dx, dW and db against
 * sums written out directly. */
TEST(conv2d_large_batch_gradients_match_direct_sums) {
  const conv_case cases[] = {
      {test_scaled(10, 2), 16, 32, 32, 8, 3, 3, 1, 1, true}, /* blocked col2im, 3-wide path */
      {test_scaled(6, 2), 16, 16, 16, 20, 1, 1, 1, 0, true}, /* pointwise, ragged 8x8 blocks */
      {test_scaled(4, 2), 8, 17, 13, 16, 3, 3, 2, 1, true},  /* strided: general col2im */
  };
  ag_rng rng;
  ag_rng_seed(&rng, 16);
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    const conv_case *cc = &cases[k];
    ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){cc->N, cc->C, cc->H, cc->W}, -1, 1, true);
    ag_tensor *w =
        gradcheck_random(&rng, 4, (int64_t[]){cc->O, cc->C, cc->kh, cc->kw}, -1, 1, true);
    ag_tensor *b = gradcheck_random(&rng, 1, (int64_t[]){cc->O}, -1, 1, true);
    ag_tape *t = ag_tape_create();
    ag_tensor *y = ag_conv2d(t, x, w, b, cc->stride, cc->padding);
    CHECK(y != NULL);
    int64_t OH = out_size(cc->H, cc->kh, cc->stride, cc->padding);
    int64_t OW = out_size(cc->W, cc->kw, cc->stride, cc->padding);
    int64_t numel = cc->N * cc->O * OH * OW;
    float *seed = malloc((size_t)numel * sizeof(float));
    double *dx = calloc((size_t)x->numel, sizeof(double));
    double *dw = calloc((size_t)w->numel, sizeof(double));
    double *db = calloc((size_t)b->numel, sizeof(double));
    for (int64_t i = 0; i < numel; i++) seed[i] = ag_rng_uniform(&rng) - 0.5f;
    if (y) CHECK_OK(ag_backward_with(t, y, seed));
    /* y[n,o,oh,ow] = b[o] + sum x[n,c,oh*s-p+i,ow*s-p+j] w[o,c,i,j]: scatter dy */
    for (int64_t n = 0; n < cc->N; n++)
      for (int64_t o = 0; o < cc->O; o++)
        for (int64_t oh = 0; oh < OH; oh++)
          for (int64_t ow = 0; ow < OW; ow++) {
            double g = seed[((n * cc->O + o) * OH + oh) * OW + ow];
            db[o] += g;
            for (int64_t c = 0; c < cc->C; c++)
              for (int64_t i = 0; i < cc->kh; i++)
                for (int64_t j = 0; j < cc->kw; j++) {
                  int64_t ih = oh * cc->stride - cc->padding + i;
                  int64_t iw = ow * cc->stride - cc->padding + j;
                  if (ih < 0 || ih >= cc->H || iw < 0 || iw >= cc->W) continue;
                  int64_t xi = ((n * cc->C + c) * cc->H + ih) * cc->W + iw;
                  int64_t wi = ((o * cc->C + c) * cc->kh + i) * cc->kw + j;
                  dx[xi] += g * w->data[wi];
                  dw[wi] += g * x->data[xi];
                }
          }
    CHECK(x->grad && w->grad && b->grad);
    int bad_x = 0, bad_w = 0, bad_b = 0;
    for (int64_t i = 0; x->grad && i < x->numel; i++)
      if (fabs(x->grad[i] - dx[i]) > 1e-4 * (1 + fabs(dx[i]))) bad_x++;
    for (int64_t i = 0; w->grad && i < w->numel; i++)
      if (fabs(w->grad[i] - dw[i]) > 1e-4 * (1 + fabs(dw[i]))) bad_w++;
    for (int64_t i = 0; b->grad && i < b->numel; i++)
      if (fabs(b->grad[i] - db[i]) > 1e-4 * (1 + fabs(db[i]))) bad_b++;
    CHECK_MSG(bad_x == 0 && bad_w == 0 && bad_b == 0, "case %zu: %d dx, %d dW, %d db differ", k,
              bad_x, bad_w, bad_b);
    free(seed);
    free(dx);
    free(dw);
    free(db);
    ag_tape_destroy(t);
    ag_tensor_destroy(x);
    ag_tensor_destroy(w);
    ag_tensor_destroy(b);
  }
}

/* Same inputs, same threads: bit-identical gradients (DESIGN.md: same seed,
 * same machine, same threads, same result). */
TEST(conv2d_gradients_are_reproducible) {
  ag_rng rng;
  ag_rng_seed(&rng, 17);
  int64_t N = test_scaled(16, 2);
  ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){N, 8, 16, 16}, -1, 1, true);
  ag_tensor *w = gradcheck_random(&rng, 4, (int64_t[]){16, 8, 3, 3}, -1, 1, true);
  ag_tensor *b = gradcheck_random(&rng, 1, (int64_t[]){16}, -1, 1, true);
  float *first[3] = {NULL, NULL, NULL};
  ag_tensor *params[3] = {x, w, b};
  for (int run = 0; run < 2; run++) {
    ag_tape *t = ag_tape_create();
    for (int k = 0; k < 3; k++)
      if (params[k]->grad) memset(params[k]->grad, 0, (size_t)params[k]->numel * sizeof(float));
    ag_tensor *y = ag_conv2d(t, x, w, b, 1, 1);
    float *seed = malloc((size_t)(y ? y->numel : 1) * sizeof(float));
    for (int64_t i = 0; y && i < y->numel; i++) seed[i] = (float)((i * 7919) % 101) / 50.0f - 1;
    if (y) CHECK_OK(ag_backward_with(t, y, seed));
    for (int k = 0; k < 3; k++) {
      if (!params[k]->grad) continue;
      size_t bytes = (size_t)params[k]->numel * sizeof(float);
      if (run == 0) {
        first[k] = malloc(bytes);
        memcpy(first[k], params[k]->grad, bytes);
      } else {
        CHECK_MSG(first[k] && memcmp(first[k], params[k]->grad, bytes) == 0,
                  "gradient %d differs between runs", k);
      }
    }
    free(seed);
    ag_tape_destroy(t);
  }
  for (int k = 0; k < 3; k++) {
    free(first[k]);
    ag_tensor_destroy(params[k]);
  }
}

TEST(conv2d_gradients_match_finite_differences) {
  static const conv_case cases[] = {
      {2, 2, 5, 4, 3, 3, 3, 1, 1, true},  {2, 2, 5, 5, 3, 3, 3, 2, 1, false},
      {2, 3, 3, 4, 2, 1, 1, 1, 0, true},  {1, 2, 4, 5, 2, 2, 3, 2, 2, true},
      {2, 2, 4, 4, 2, 1, 1, 2, 0, true},  {1, 2, 3, 3, 2, 2, 2, 1, 3, true},
      {2, 2, 4, 5, 2, 3, 3, 1, 0, true},  {1, 2, 3, 2, 2, 3, 3, 1, 1, false},
      {1, 1, 3, 4, 2, 2, 3, 1, 3, false},
  };
  ag_rng rng;
  ag_rng_seed(&rng, 13);
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    const conv_case *cc = &cases[k];
    ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){cc->N, cc->C, cc->H, cc->W}, -1, 1, true);
    ag_tensor *w =
        gradcheck_random(&rng, 4, (int64_t[]){cc->O, cc->C, cc->kh, cc->kw}, -1, 1, true);
    ag_tensor *b = cc->bias ? gradcheck_random(&rng, 1, (int64_t[]){cc->O}, -1, 1, true) : NULL;
    ag_tensor *in[] = {x, w, b};
    conv_args args = {cc->stride, cc->padding};
    char label[64];
    snprintf(label, sizeof label, "conv2d case %zu", k);
    CHECK_MSG(gradcheck(label, f_conv, in, cc->bias ? 3 : 2, &args, 1e-2, 1e-3, 1e-3) == 0,
              "case %zu", k);
    ag_tensor_destroy(x);
    ag_tensor_destroy(w);
    ag_tensor_destroy(b);
  }
}

/* x stored (N, H, W, C) and permuted to (N, C, H, W): a strided view. */
static ag_tensor *f_conv_channels_last(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *x = ag_permute(t, in[0], (int[]){0, 3, 1, 2});
  return ag_conv2d(t, x, in[1], in[2], 1, 1);
}

TEST(conv2d_accepts_non_contiguous_input) {
  ag_rng rng;
  ag_rng_seed(&rng, 14);
  ag_tensor *xl = gradcheck_random(&rng, 4, (int64_t[]){2, 4, 5, 3}, -1, 1, true); /* NHWC */
  ag_tensor *w = gradcheck_random(&rng, 4, (int64_t[]){2, 3, 3, 3}, -1, 1, true);
  ag_tensor *b = gradcheck_random(&rng, 1, (int64_t[]){2}, -1, 1, true);
  ag_tape *t = ag_tape_create();
  ag_tensor *view = ag_permute(t, xl, (int[]){0, 3, 1, 2});
  CHECK(view && !ag_tensor_is_contiguous(view));
  ag_tensor *y = ag_conv2d(t, view, w, b, 1, 1);
  /* the same values copied into NCHW order */
  ag_tensor *xc = NULL;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){2, 3, 4, 5}, &xc));
  if (view) ag_tensor_copy_to(view, xc->data);
  ag_tensor *yc = ag_conv2d(t, xc, w, b, 1, 1);
  CHECK(y && yc);
  for (int64_t i = 0; y && yc && i < y->numel; i++) CHECK_NEAR(y->data[i], yc->data[i], 1e-6);
  ag_tape_destroy(t);
  ag_tensor *in[] = {xl, w, b};
  CHECK(gradcheck("conv2d channels-last view", f_conv_channels_last, in, 3, NULL, 1e-2, 1e-3,
                  1e-3) == 0);
  ag_tensor_destroy(xl);
  ag_tensor_destroy(xc);
  ag_tensor_destroy(w);
  ag_tensor_destroy(b);
}

/* x feeds a pointwise and a 3x3 conv: both must add into x's gradient.
 * The pointwise conv is recorded first, so its backward runs last, onto a
 * gradient that already holds the 3x3 conv's share. */
static ag_tensor *f_conv_shared_input(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *pointwise = ag_conv2d(t, in[0], in[1], NULL, 1, 0);
  ag_tensor *full = ag_conv2d(t, in[0], in[2], NULL, 1, 1);
  return ag_add(t, pointwise, full);
}

TEST(conv2d_gradients_accumulate_over_uses) {
  ag_rng rng;
  ag_rng_seed(&rng, 15);
  /* 10 channels and 4x5 pixels: the pointwise backward adds 8x8 blocks and
   * ragged edges */
  ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){2, 10, 4, 5}, -1, 1, true);
  ag_tensor *w1 = gradcheck_random(&rng, 4, (int64_t[]){2, 10, 1, 1}, -1, 1, true);
  ag_tensor *w3 = gradcheck_random(&rng, 4, (int64_t[]){2, 10, 3, 3}, -1, 1, true);
  ag_tensor *in[] = {x, w1, w3};
  CHECK(gradcheck("conv2d shared input", f_conv_shared_input, in, 3, NULL, 1e-2, 1e-3, 1e-3) == 0);
  ag_tensor_destroy(x);
  ag_tensor_destroy(w1);
  ag_tensor_destroy(w3);
}

/* A batch of zero images is a valid (empty) input: the shape carries over. */
TEST(conv2d_and_pools_accept_an_empty_batch) {
  ag_tensor *x = NULL, *w = NULL;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){0, 2, 5, 5}, &x));
  CHECK_OK(ag_tensor_create(4, (int64_t[]){3, 2, 3, 3}, &w));
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_conv2d(t, x, w, NULL, 2, 1);
  CHECK(y && y->ndim == 4 && y->shape[0] == 0 && y->shape[1] == 3 && y->shape[2] == 3 &&
        y->shape[3] == 3);
  ag_tensor *m = ag_maxpool2d(t, x, 2, 2, 0), *a = ag_avgpool2d(t, x, 3, 1, 1);
  CHECK(m && m->shape[0] == 0 && m->shape[2] == 2 && a && a->shape[0] == 0 && a->shape[2] == 5);
  CHECK_MSG(ag_tape_status(t) == AG_OK, "%s", ag_tape_error(t));
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(w);
}

/* ---- pooling ------------------------------------------------------------------ */

typedef struct pool_case {
  int64_t N, C, H, W;
  int kernel, stride, padding;
} pool_case;

static const pool_case pool_cases[] = {
    {2, 3, 6, 6, 2, 2, 0},  {2, 2, 7, 5, 3, 2, 1},  {1, 3, 5, 6, 3, 1, 1},
    {2, 2, 5, 5, 5, 1, 2},  {1, 2, 4, 6, 1, 1, 0},  {2, 1, 7, 7, 4, 3, 2},
    {2, 3, 6, 20, 2, 2, 0}, {1, 2, 5, 35, 2, 2, 0}, /* 2x2 rows of 8 outputs and a tail */
};

/* Inputs whose values are a shuffled ladder 0.1 apart: every window has one
 * clear maximum, and a finite-difference step of 1e-2 never changes it. */
static ag_tensor *distinct_input(ag_rng *rng, const pool_case *pc, bool requires_grad) {
  ag_tensor *x =
      gradcheck_random(rng, 4, (int64_t[]){pc->N, pc->C, pc->H, pc->W}, 0, 1, requires_grad);
  for (int64_t i = 0; i < x->numel; i++) x->data[i] = 0.1f * (float)i - 0.05f * (float)x->numel;
  for (int64_t i = x->numel - 1; i > 0; i--) {
    int64_t j = (int64_t)(ag_rng_uniform(rng) * (float)(i + 1)) % (i + 1);
    float tmp = x->data[i];
    x->data[i] = x->data[j];
    x->data[j] = tmp;
  }
  return x;
}

/* Max (or average with count_include_pad) over one window; padding is -inf
 * for max and 0 for average. */
static double direct_pool(const pool_case *pc, const float *x, bool max, int64_t plane, int64_t oh,
                          int64_t ow) {
  double best = -INFINITY, sum = 0;
  for (int i = 0; i < pc->kernel; i++)
    for (int j = 0; j < pc->kernel; j++) {
      int64_t ih = oh * pc->stride - pc->padding + i, iw = ow * pc->stride - pc->padding + j;
      if (ih < 0 || ih >= pc->H || iw < 0 || iw >= pc->W) continue;
      double v = x[(plane * pc->H + ih) * pc->W + iw];
      if (v > best) best = v;
      sum += v;
    }
  return max ? best : sum / (pc->kernel * pc->kernel);
}

typedef struct pool_args {
  bool max;
  int kernel, stride, padding;
} pool_args;

static ag_tensor *f_pool(ag_tape *t, ag_tensor **in, void *ctx) {
  const pool_args *a = ctx;
  return a->max ? ag_maxpool2d(t, in[0], a->kernel, a->stride, a->padding)
                : ag_avgpool2d(t, in[0], a->kernel, a->stride, a->padding);
}

static void check_pool_values(bool max) {
  ag_rng rng;
  ag_rng_seed(&rng, max ? 21 : 22);
  for (size_t k = 0; k < sizeof pool_cases / sizeof *pool_cases; k++) {
    const pool_case *pc = &pool_cases[k];
    ag_tensor *x = distinct_input(&rng, pc, false);
    ag_tape *t = ag_tape_create();
    pool_args a = {max, pc->kernel, pc->stride, pc->padding};
    ag_tensor *y = f_pool(t, &x, &a);
    int64_t OH = out_size(pc->H, pc->kernel, pc->stride, pc->padding);
    int64_t OW = out_size(pc->W, pc->kernel, pc->stride, pc->padding);
    CHECK_MSG(y && y->shape[0] == pc->N && y->shape[1] == pc->C && y->shape[2] == OH &&
                  y->shape[3] == OW,
              "%s case %zu: %s", max ? "max" : "avg", k, y ? "wrong shape" : ag_tape_error(t));
    int bad = 0;
    for (int64_t pl = 0; y && pl < pc->N * pc->C; pl++)
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          double want = direct_pool(pc, x->data, max, pl, oh, ow);
          if (fabs(y->data[(pl * OH + oh) * OW + ow] - want) > 1e-5 * (1 + fabs(want))) bad++;
        }
    CHECK_MSG(bad == 0, "%s case %zu: %d outputs differ", max ? "max" : "avg", k, bad);
    ag_tape_destroy(t);
    ag_tensor_destroy(x);
  }
}

static void check_pool_gradients(bool max) {
  ag_rng rng;
  ag_rng_seed(&rng, max ? 23 : 24);
  for (size_t k = 0; k < sizeof pool_cases / sizeof *pool_cases; k++) {
    const pool_case *pc = &pool_cases[k];
    ag_tensor *x = distinct_input(&rng, pc, true);
    pool_args a = {max, pc->kernel, pc->stride, pc->padding};
    char label[64];
    snprintf(label, sizeof label, "%s case %zu", max ? "maxpool2d" : "avgpool2d", k);
    CHECK_MSG(gradcheck(label, f_pool, &x, 1, &a, 1e-2, 1e-3, 1e-3) == 0, "%s", label);
    ag_tensor_destroy(x);
  }
}

TEST(maxpool2d_matches_direct_window_maximum) { check_pool_values(true); }
TEST(avgpool2d_matches_direct_window_mean_including_padding) { check_pool_values(false); }
TEST(maxpool2d_gradients_match_finite_differences) { check_pool_gradients(true); }
TEST(avgpool2d_gradients_match_finite_differences) { check_pool_gradients(false); }

/* The whole gradient of a window goes to its maximum, and padding never wins
 * even when every real value is negative. */
TEST(maxpool2d_gradient_goes_to_the_argmax) {
  float xs[] = {-5,      -1,  -3,    -2,  /**/ -4,  -6,  -7,  -8,
                /**/ -9, -10, -0.5f, -11, /**/ -12, -13, -14, -15};
  ag_tensor *x = NULL;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){1, 1, 4, 4}, &x));
  memcpy(x->data, xs, sizeof xs);
  x->requires_grad = true;
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_maxpool2d(t, x, 3, 2, 1); /* (1, 1, 2, 2) */
  CHECK(y && y->numel == 4);
  if (y) {
    /* windows: rows/cols [-1, 2) and [1, 4) */
    CHECK(y->data[0] == -1 && y->data[1] == -1 && y->data[2] == -4 && y->data[3] == -0.5f);
    CHECK_OK(ag_backward_with(t, y, (float[]){1, 2, 3, 4}));
    float want[16] = {0};
    want[1] = 1 + 2; /* -1 is the maximum of two windows */
    want[4] = 3;
    want[10] = 4;
    for (int i = 0; i < 16; i++) CHECK_NEAR(x->grad[i], want[i], 0);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

/* Ties go to the first maximum in row-major window order, as in PyTorch:
 * both the 2x2 fast path and the general path. */
TEST(maxpool2d_ties_go_to_the_first_maximum) {
  ag_tensor *wide = NULL, *x = NULL;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){1, 1, 3, 20}, &wide));
  for (int i = 0; i < 60; i++) wide->data[i] = 2.0f;
  wide->requires_grad = true;
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_maxpool2d(t, wide, 2, 2, 0); /* (1, 1, 1, 10): 8 vector lanes and a tail */
  CHECK(y && y->numel == 10);
  if (y) {
    CHECK_OK(ag_backward_with(t, y, (float[]){1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
    for (int i = 0; i < 60; i++) CHECK_NEAR(wide->grad[i], i < 20 && i % 2 == 0 ? i / 2 + 1 : 0, 0);
  }
  ag_tape_reset(t);
  CHECK_OK(ag_tensor_create(4, (int64_t[]){1, 1, 3, 4}, &x));
  for (int i = 0; i < 12; i++) x->data[i] = 2.0f;
  x->requires_grad = true;
  y = ag_maxpool2d(t, x, 3, 2, 1); /* (1, 1, 2, 2): windows start at (0|1, 0|1) once clipped */
  CHECK(y && y->numel == 4);
  if (y) {
    CHECK_OK(ag_backward_with(t, y, (float[]){1, 2, 3, 4}));
    float want[12] = {1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 12; i++) CHECK_NEAR(x->grad[i], want[i], 0);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(wide);
  ag_tensor_destroy(x);
}

TEST(maxpool2d_propagates_nan) {
  ag_tensor *x = NULL;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){1, 1, 2, 4}, &x));
  for (int i = 0; i < 8; i++) x->data[i] = (float)i;
  x->data[5] = NAN; /* in the first 2x2 window, and the (1, 2) window of the 3x3 pool */
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_maxpool2d(t, x, 2, 2, 0);
  CHECK(y && isnan(y->data[0]) && y->data[1] == 7);
  y = ag_maxpool2d(t, x, 3, 1, 1); /* (1, 1, 2, 4) */
  CHECK(y && isnan(y->data[0]) && isnan(y->data[2]) && y->data[3] == 7 && !isnan(y->data[7]));
  /* a row of 8 windows: NaN top-right in window 3, bottom-left in 5, both rows in 6 */
  ag_tensor *wide = NULL;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){1, 1, 2, 16}, &wide));
  for (int i = 0; i < 32; i++) wide->data[i] = (float)(i % 5);
  wide->data[7] = wide->data[16 + 10] = wide->data[12] = wide->data[16 + 13] = NAN;
  y = ag_maxpool2d(t, wide, 2, 2, 0);
  CHECK(y && y->numel == 8);
  for (int i = 0; y && i < 8; i++)
    CHECK_MSG(isnan(y->data[i]) == (i == 3 || i == 5 || i == 6), "window %d: %g", i, y->data[i]);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(wide);
}

/* ---- layer hooks and per-example gradients -------------------------------------- */

typedef struct hook_record {
  int calls;
  ag_layer_event event;
  double weight_grad_sum; /* sum of G^T A over all entries */
  double bias_grad_sum;   /* sum of G */
} hook_record;

static void record_hook(void *user, const ag_layer_event *ev) {
  hook_record *r = user;
  r->calls++;
  r->event = *ev;
  r->weight_grad_sum = r->bias_grad_sum = 0;
  for (int64_t o = 0; o < ev->out_features; o++)
    for (int64_t k = 0; k < ev->in_features; k++) {
      double s = 0;
      for (int64_t row = 0; row < ev->rows; row++)
        s += (double)ev->G[row * ev->out_features + o] * ev->A[row * ev->in_features + k];
      r->weight_grad_sum += s;
    }
  for (int64_t i = 0; i < ev->rows * ev->out_features; i++) r->bias_grad_sum += ev->G[i];
}

/* The hook's A and G reproduce the weight and bias gradients, for a map
 * that goes as one batched sgemm and for one large enough to go image by
 * image (ops_conv.c builds G differently on the two paths). */
static void check_conv_hook(int64_t H, int64_t W, int stride) {
  ag_rng rng;
  ag_rng_seed(&rng, 31);
  ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){2, 3, H, W}, -1, 1, false);
  ag_tensor *w = gradcheck_random(&rng, 4, (int64_t[]){4, 3, 3, 3}, -1, 1, true);
  ag_tensor *b = gradcheck_random(&rng, 1, (int64_t[]){4}, -1, 1, true);
  ag_tape *t = ag_tape_create();
  hook_record rec = {0};
  ag_tape_set_layer_hook(t, record_hook, &rec);
  ag_tensor *y = ag_conv2d(t, x, w, b, stride, 1);
  CHECK(y != NULL);
  int64_t OH = (H + 2 - 3) / stride + 1, OW = (W + 2 - 3) / stride + 1;
  float *seed = malloc((size_t)(y ? y->numel : 1) * sizeof(float));
  for (int64_t i = 0; y && i < y->numel; i++) seed[i] = ag_rng_uniform(&rng) - 0.5f;
  CHECK_OK(ag_backward_with(t, y, seed));
  CHECK(rec.calls == 1);
  const ag_layer_event *ev = &rec.event;
  CHECK(ev->kind == AG_LAYER_CONV2D && ev->weight == w && ev->bias == b);
  CHECK(ev->rows == 2 * OH * OW && ev->in_features == 27 && ev->out_features == 4);
  CHECK(ev->examples == 2 && ev->rows_per_example == OH * OW);
  double gw = 0, gb = 0;
  for (int64_t i = 0; i < w->numel; i++) gw += w->grad[i];
  for (int64_t i = 0; i < b->numel; i++) gb += b->grad[i];
  CHECK_NEAR(rec.weight_grad_sum, gw, 1e-4 * (1 + fabs(gw)));
  CHECK_NEAR(rec.bias_grad_sum, gb, 1e-4 * (1 + fabs(gb)));
  free(seed);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(w);
  ag_tensor_destroy(b);
}

TEST(conv2d_layer_hook_reports_patches_and_output_grads) {
  check_conv_hook(6, 5, 2);   /* 3 x 3 outputs: one batched sgemm */
  check_conv_hook(16, 12, 1); /* 192 outputs: image by image */
}

enum { PE_C = 2, PE_H = 6, PE_W = 6, PE_O = 4, PE_OUT = 3 };

/* conv 3x3 -> relu -> avgpool 2x2 -> flatten -> linear, on x (n, C, H, W). */
static ag_tensor *small_cnn(ag_tape *t, ag_params *p, ag_tensor *x, int64_t n) {
  ag_tensor *h = ag_conv2d(t, x, ag_params_find(p, "conv.w"), ag_params_find(p, "conv.b"), 1, 1);
  h = ag_avgpool2d(t, ag_relu(t, h), 2, 2, 0); /* (n, O, 3, 3) */
  h = ag_reshape(t, h, 2, (int64_t[]){n, PE_O * 9});
  return ag_linear(t, h, ag_params_find(p, "fc.w"), ag_params_find(p, "fc.b"));
}

/* sum over examples and outputs of r * y, as (1, n*OUT) @ (n*OUT, 1) */
static ag_tensor *weighted_sum(ag_tape *t, ag_tensor *y, float *r, int64_t n) {
  return ag_matmul(t, ag_reshape(t, y, 2, (int64_t[]){1, n * PE_OUT}),
                   ag_tape_wrap(t, r, 2, (int64_t[]){n * PE_OUT, 1}));
}

TEST(per_example_grads_of_a_cnn_equal_single_example_runs) {
  enum { N = 3 };
  ag_params *p = ag_params_create();
  ag_params_add(p, "conv.w", 4, (int64_t[]){PE_O, PE_C, 3, 3});
  ag_params_add(p, "conv.b", 1, (int64_t[]){PE_O});
  ag_params_add(p, "fc.w", 2, (int64_t[]){PE_OUT, PE_O * 9});
  ag_params_add(p, "fc.b", 1, (int64_t[]){PE_OUT});
  CHECK_OK(ag_params_finalize(p));
  ag_rng rng;
  ag_rng_seed(&rng, 32);
  for (int64_t i = 0; i < p->total; i++) p->data[i] = ag_rng_normal(&rng) * 0.5f;
  float x[N * PE_C * PE_H * PE_W], r[N * PE_OUT];
  for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = ag_rng_normal(&rng);
  for (size_t i = 0; i < sizeof r / sizeof *r; i++) r[i] = ag_rng_normal(&rng);
  float *per = calloc((size_t)(N * p->total), sizeof(float));
  ag_tape *t = ag_tape_create();
  ag_tensor *xs = ag_tape_wrap(t, x, 4, (int64_t[]){N, PE_C, PE_H, PE_W});
  ag_tensor *loss = weighted_sum(t, small_cnn(t, p, xs, N), r, N);
  CHECK_MSG(loss != NULL, "%s", ag_tape_error(t));
  int64_t covered = 0;
  CHECK_OK(ag_per_example_grads(t, loss, p, N, per, &covered));
  CHECK(covered == p->total);
  double norm = 0;
  for (int64_t i = 0; i < N * p->total; i++) norm += fabs(per[i]);
  CHECK(norm > 0); /* the hooks fired and filled the rows */
  for (int e = 0; e < N; e++) {
    ag_tape_reset(t);
    ag_params_zero_grad(p);
    ag_tensor *xe =
        ag_tape_wrap(t, x + e * PE_C * PE_H * PE_W, 4, (int64_t[]){1, PE_C, PE_H, PE_W});
    ag_tensor *le = weighted_sum(t, small_cnn(t, p, xe, 1), r + e * PE_OUT, 1);
    CHECK_OK(ag_backward(t, le));
    int bad = 0;
    for (int64_t i = 0; i < p->total; i++)
      if (fabs(per[e * p->total + i] - p->grad[i]) > 1e-4 * (1 + fabs(p->grad[i]))) bad++;
    CHECK_MSG(bad == 0, "example %d: %d of %lld gradient entries differ", e, bad,
              (long long)p->total);
  }
  free(per);
  ag_tape_destroy(t);
  ag_params_destroy(p);
}

/* ---- errors --------------------------------------------------------------------- */

/* Runs op on a fresh tape and checks it fails with a message holding every
 * one of `needles`. */
#define CHECK_FAILS(expr, code, ...)                                                               \
  do {                                                                                             \
    ag_tape *t_ = ag_tape_create();                                                                \
    ag_tape *t = t_;                                                                               \
    ag_tensor *r_ = (expr);                                                                        \
    CHECK_MSG(r_ == NULL, "%s succeeded", #expr);                                                  \
    CHECK(ag_tape_status(t_) == (code));                                                           \
    const char *needles_[] = {__VA_ARGS__};                                                        \
    for (size_t i_ = 0; i_ < sizeof needles_ / sizeof *needles_; i_++)                             \
      CHECK_MSG(strstr(ag_tape_error(t_), needles_[i_]) != NULL, "\"%s\" not in \"%s\"",           \
                needles_[i_], ag_tape_error(t_));                                                  \
    ag_tape_destroy(t_);                                                                           \
  } while (0)

TEST(conv2d_errors_name_the_op_and_shapes) {
  ag_tensor *x, *w, *w_c, *w_big, *b_bad, *x3;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){2, 3, 5, 5}, &x));
  CHECK_OK(ag_tensor_create(4, (int64_t[]){4, 3, 3, 3}, &w));
  CHECK_OK(ag_tensor_create(4, (int64_t[]){4, 2, 3, 3}, &w_c));
  CHECK_OK(ag_tensor_create(4, (int64_t[]){4, 3, 8, 3}, &w_big));
  CHECK_OK(ag_tensor_create(1, (int64_t[]){5}, &b_bad));
  CHECK_OK(ag_tensor_create(3, (int64_t[]){3, 5, 5}, &x3));
  CHECK_FAILS(ag_conv2d(t, x, w_c, NULL, 1, 0), AG_ERR_SHAPE, "conv2d", "(2, 3, 5, 5)",
              "(4, 2, 3, 3)", "channels");
  CHECK_FAILS(ag_conv2d(t, x, w_big, NULL, 1, 1), AG_ERR_SHAPE, "conv2d", "(2, 3, 5, 5)",
              "(4, 3, 8, 3)", "larger");
  CHECK_FAILS(ag_conv2d(t, x, w, NULL, 0, 1), AG_ERR_INVALID, "conv2d", "stride", "(2, 3, 5, 5)",
              "(4, 3, 3, 3)");
  CHECK_FAILS(ag_conv2d(t, x, w, NULL, 1, -1), AG_ERR_INVALID, "conv2d", "padding", "(2, 3, 5, 5)",
              "(4, 3, 3, 3)");
  CHECK_FAILS(ag_conv2d(t, x, w, b_bad, 1, 1), AG_ERR_SHAPE, "conv2d", "bias", "(5)",
              "(4, 3, 3, 3)");
  CHECK_FAILS(ag_conv2d(t, x3, w, NULL, 1, 1), AG_ERR_SHAPE, "conv2d", "(3, 5, 5)", "(4, 3, 3, 3)");
  CHECK_FAILS(ag_conv2d(t, NULL, w, NULL, 1, 1), AG_ERR_INVALID, "NULL");
  /* errors are sticky: a good call after a failure returns NULL too */
  ag_tape *t = ag_tape_create();
  CHECK(ag_conv2d(t, x, w_c, NULL, 1, 0) == NULL);
  CHECK(ag_conv2d(t, x, w, NULL, 1, 1) == NULL);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(w);
  ag_tensor_destroy(w_c);
  ag_tensor_destroy(w_big);
  ag_tensor_destroy(b_bad);
  ag_tensor_destroy(x3);
}

TEST(pool2d_errors_name_the_op_and_shapes) {
  ag_tensor *x, *x3;
  CHECK_OK(ag_tensor_create(4, (int64_t[]){2, 3, 4, 4}, &x));
  CHECK_OK(ag_tensor_create(3, (int64_t[]){3, 4, 4}, &x3));
  CHECK_FAILS(ag_maxpool2d(t, x3, 2, 2, 0), AG_ERR_SHAPE, "maxpool2d", "(3, 4, 4)");
  CHECK_FAILS(ag_avgpool2d(t, x3, 2, 2, 0), AG_ERR_SHAPE, "avgpool2d", "(3, 4, 4)");
  CHECK_FAILS(ag_maxpool2d(t, x, 7, 1, 1), AG_ERR_SHAPE, "maxpool2d", "larger", "(2, 3, 4, 4)");
  CHECK_FAILS(ag_avgpool2d(t, x, 2, 0, 0), AG_ERR_INVALID, "avgpool2d", "stride", "(2, 3, 4, 4)");
  CHECK_FAILS(ag_maxpool2d(t, x, 0, 1, 0), AG_ERR_INVALID, "maxpool2d", "kernel", "(2, 3, 4, 4)");
  CHECK_FAILS(ag_maxpool2d(t, x, 2, 2, -1), AG_ERR_INVALID, "maxpool2d", "padding");
  CHECK_FAILS(ag_avgpool2d(t, x, 2, 2, 2), AG_ERR_INVALID, "avgpool2d", "padding");
  ag_tensor_destroy(x);
  ag_tensor_destroy(x3);
}

int main(void) {
  RUN(conv2d_matches_direct_convolution);
  RUN(conv2d_large_batch_matches_direct_convolution);
  RUN(conv2d_large_batch_gradients_match_direct_sums);
  RUN(conv2d_gradients_are_reproducible);
  RUN(conv2d_gradients_match_finite_differences);
  RUN(conv2d_accepts_non_contiguous_input);
  RUN(conv2d_gradients_accumulate_over_uses);
  RUN(conv2d_and_pools_accept_an_empty_batch);
  RUN(maxpool2d_matches_direct_window_maximum);
  RUN(avgpool2d_matches_direct_window_mean_including_padding);
  RUN(maxpool2d_gradients_match_finite_differences);
  RUN(avgpool2d_gradients_match_finite_differences);
  RUN(maxpool2d_gradient_goes_to_the_argmax);
  RUN(maxpool2d_ties_go_to_the_first_maximum);
  RUN(maxpool2d_propagates_nan);
  RUN(conv2d_layer_hook_reports_patches_and_output_grads);
  RUN(per_example_grads_of_a_cnn_equal_single_example_runs);
  RUN(conv2d_errors_name_the_op_and_shapes);
  RUN(pool2d_errors_name_the_op_and_shapes);
  TEST_MAIN_END();
}
