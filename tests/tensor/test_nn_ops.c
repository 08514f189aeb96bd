/* Neural-network ops (softmax, log-softmax, cross-entropy, embedding, layer /
 * RMS / group norm, dropout): values against direct computation in double,
 * gradients against finite differences, and the error cases. */
#include "agora/ops.h"
#include "gradcheck.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------------ */

static ag_tensor *random_tensor(ag_rng *rng, int ndim, const int64_t *shape, float lo, float hi,
                                bool requires_grad) {
  return gradcheck_random(rng, ndim, shape, lo, hi, requires_grad);
}

/* Splits a row-major shape around dim into (outer, D, inner). */
static void split_shape(int ndim, const int64_t *shape, int dim, int64_t *outer, int64_t *D,
                        int64_t *inner) {
  *outer = *inner = 1;
  for (int d = 0; d < dim; d++) *outer *= shape[d];
  for (int d = dim + 1; d < ndim; d++) *inner *= shape[d];
  *D = shape[dim];
}

/* softmax (or log-softmax) of x along dim, in double, into out. */
static void reference_softmax(const float *x, int ndim, const int64_t *shape, int dim, bool log_out,
                              double *out) {
  int64_t outer, D, inner;
  split_shape(ndim, shape, dim, &outer, &D, &inner);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *xr = x + o * D * inner + i;
      double m = -INFINITY, s = 0;
      for (int64_t d = 0; d < D; d++) m = fmax(m, xr[d * inner]);
      for (int64_t d = 0; d < D; d++) s += exp((double)xr[d * inner] - m);
      for (int64_t d = 0; d < D; d++) {
        double v = (double)xr[d * inner] - m - log(s);
        out[o * D * inner + i + d * inner] = log_out ? v : exp(v);
      }
    }
}

/* Largest |a - b| over n elements. */
static double max_abs_diff_fd(const float *a, const double *b, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
  return worst;
}

static bool error_mentions(ag_tape *t, const char *a, const char *b) {
  const char *e = ag_tape_error(t);
  return strstr(e, a) != NULL && (!b || strstr(e, b) != NULL);
}

/* ---- softmax and log-softmax ----------------------------------------------------- */

typedef struct softmax_case {
  int dim;
  bool log_output;
  bool transpose; /* feed a transposed (non-contiguous) view of the input */
} softmax_case;

static ag_tensor *f_softmax(ag_tape *t, ag_tensor **in, void *ctx) {
  const softmax_case *c = ctx;
  ag_tensor *x = c->transpose ? ag_transpose(t, in[0], 0, -1) : in[0];
  return c->log_output ? ag_log_softmax(t, x, c->dim) : ag_softmax(t, x, c->dim);
}

TEST(softmax_matches_direct_computation_on_every_dim) {
  ag_rng rng;
  ag_rng_seed(&rng, 10);
  int64_t shape[] = {3, 5, 4};
  ag_tensor *x = random_tensor(&rng, 3, shape, -3, 3, false);
  double ref[60];
  ag_tape *t = ag_tape_create();
  for (int dim = 0; dim < 3; dim++)
    for (int log_out = 0; log_out < 2; log_out++) {
      ag_tensor *y = log_out ? ag_log_softmax(t, x, dim) : ag_softmax(t, x, dim);
      CHECK(y && ag_shapes_equal(y, x));
      if (!y) continue;
      reference_softmax(x->data, 3, shape, dim, log_out, ref);
      CHECK_MSG(max_abs_diff_fd(y->data, ref, 60) < 1e-6, "dim %d log %d", dim, log_out);
    }
  /* Negative dims count from the end. */
  ag_tensor *a = ag_softmax(t, x, -1), *b = ag_softmax(t, x, 2);
  CHECK(a && b && memcmp(a->data, b->data, 60 * sizeof(float)) == 0);
  /* Softmax sums to 1 along the dim. */
  ag_tensor *y = ag_softmax(t, x, 1);
  for (int o = 0; y && o < 3; o++)
    for (int i = 0; i < 4; i++) {
      double s = 0;
      for (int d = 0; d < 5; d++) s += y->data[o * 20 + d * 4 + i];
      CHECK_NEAR(s, 1.0, 1e-6);
    }
  CHECK(ag_softmax(t, x, 3) == NULL && error_mentions(t, "softmax", "dim 3"));
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(softmax_is_stable_for_large_logits) {
  float v[] = {1000, 1001, 1002, -1000, -3000, 88.5f};
  ag_tape *t = ag_tape_create();
  ag_tensor *x = ag_tape_wrap(t, v, 2, (int64_t[]){2, 3});
  ag_tensor *y = ag_softmax(t, x, -1), *ly = ag_log_softmax(t, x, -1);
  CHECK(y && ly);
  double ref[6], lref[6];
  reference_softmax(v, 2, (int64_t[]){2, 3}, 1, false, ref);
  reference_softmax(v, 2, (int64_t[]){2, 3}, 1, true, lref);
  for (int i = 0; y && ly && i < 6; i++) {
    CHECK(isfinite(y->data[i]) && isfinite(ly->data[i]));
    CHECK_NEAR(y->data[i], ref[i], 1e-6);
    CHECK_NEAR(ly->data[i], lref[i], 1e-4 * fmax(1.0, fabs(lref[i])));
  }
  ag_tape_destroy(t);
}

TEST(softmax_gradients_match_finite_differences) {
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  int64_t shape[] = {3, 4, 5};
  ag_tensor *x = random_tensor(&rng, 3, shape, -2, 2, true);
  int dims[] = {0, 1, -1};
  /* transposed: softmax of the (5, 4, 3) view x^T, which is not contiguous */
  for (int transposed = 0; transposed < 2; transposed++)
    for (int k = 0; k < 3; k++)
      for (int log_out = 0; log_out < 2; log_out++) {
        softmax_case c = {dims[k], log_out, transposed};
        char label[64];
        snprintf(label, sizeof label, "%s%s dim %d", transposed ? "transposed " : "",
                 log_out ? "log_softmax" : "softmax", dims[k]);
        CHECK_MSG(gradcheck(label, f_softmax, &x, 1, &c, 1e-2, 1e-3, 1e-3) == 0, "%s", label);
      }
  ag_tensor_destroy(x);
}

/* Big enough for the multi-threaded paths and for column blocks with a
 * remainder; backward checked against the closed form in double. */
TEST(softmax_large_inputs_match_closed_form) {
  ag_rng rng;
  ag_rng_seed(&rng, 12);
  int64_t rows = test_scaled(96, 16);
  int64_t shape[] = {rows, 130, 3};
  int64_t numel = rows * 130 * 3;
  ag_tensor *x = random_tensor(&rng, 3, shape, -8, 8, true);
  float *seed = malloc((size_t)numel * sizeof(float));
  double *ref = malloc((size_t)numel * sizeof(double));
  double *gref = malloc((size_t)numel * sizeof(double));
  for (int64_t i = 0; i < numel; i++) seed[i] = ag_rng_uniform(&rng) - 0.5f;
  for (int dim = 0; dim < 3; dim++)
    for (int log_out = 0; log_out < 2; log_out++) {
      ag_tape *t = ag_tape_create();
      ag_tensor *y = log_out ? ag_log_softmax(t, x, dim) : ag_softmax(t, x, dim);
      if (x->grad) memset(x->grad, 0, (size_t)numel * sizeof(float));
      CHECK(y && ag_backward_with(t, y, seed) == AG_OK);
      reference_softmax(x->data, 3, shape, dim, log_out, ref);
      /* log-softmax to 1e-5 absolute; softmax to a few float ulps relative */
      double worst = 0;
      for (int64_t i = 0; y && i < numel; i++)
        worst = fmax(worst, fabs(y->data[i] - ref[i]) / (log_out ? 1.0 : ref[i]));
      CHECK_MSG(y && worst < (log_out ? 1e-5 : 1.2e-6), "dim %d log %d: error %g", dim, log_out,
                worst);
      /* dx = p * (g - sum(g p)) for softmax, g - p * sum(g) for log-softmax. */
      int64_t outer, D, inner;
      split_shape(3, shape, dim, &outer, &D, &inner);
      reference_softmax(x->data, 3, shape, dim, false, ref);
      for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
          int64_t base = o * D * inner + i;
          double s = 0;
          for (int64_t d = 0; d < D; d++)
            s += log_out ? seed[base + d * inner] : seed[base + d * inner] * ref[base + d * inner];
          for (int64_t d = 0; d < D; d++) {
            int64_t k = base + d * inner;
            gref[k] = log_out ? seed[k] - ref[k] * s : ref[k] * (seed[k] - s);
          }
        }
      CHECK_MSG(x->grad && max_abs_diff_fd(x->grad, gref, numel) < 1e-5, "grad dim %d log %d", dim,
                log_out);
      ag_tape_destroy(t);
    }
  free(seed);
  free(ref);
  free(gref);
  ag_tensor_destroy(x);
}

/* ---- cross-entropy ------------------------------------------------------------------ */

typedef struct ce_case {
  const int32_t *targets;
  const float *weights;
  int32_t ignore_index;
  bool sum_reduction;
} ce_case;

static ag_tensor *f_cross_entropy(ag_tape *t, ag_tensor **in, void *ctx) {
  const ce_case *c = ctx;
  return ag_cross_entropy(t, in[0], c->targets, c->weights, c->ignore_index, c->sum_reduction);
}

/* The logits as the transposed (non-contiguous) view of a (C, N) tensor. */
static ag_tensor *f_cross_entropy_transposed(ag_tape *t, ag_tensor **in, void *ctx) {
  return f_cross_entropy(t, (ag_tensor *[]){ag_transpose(t, in[0], 0, 1)}, ctx);
}

/* The loss by definition: sum w_i * -log softmax(x_i)[t_i] / sum w_i. */
static double reference_cross_entropy(const float *x, int64_t N, int64_t C, const ce_case *c) {
  double total = 0, weight_sum = 0;
  for (int64_t i = 0; i < N; i++) {
    if (c->targets[i] == c->ignore_index) continue;
    double m = -INFINITY, s = 0, w = c->weights ? c->weights[i] : 1.0;
    for (int64_t j = 0; j < C; j++) m = fmax(m, x[i * C + j]);
    for (int64_t j = 0; j < C; j++) s += exp((double)x[i * C + j] - m);
    total += w * (m + log(s) - x[i * C + c->targets[i]]);
    weight_sum += w;
  }
  if (c->sum_reduction) return total;
  return weight_sum != 0 ? total / weight_sum : 0.0;
}

TEST(cross_entropy_equals_mean_negative_log_softmax_of_targets) {
  ag_rng rng;
  ag_rng_seed(&rng, 20);
  enum { N = 6, C = 7 };
  ag_tensor *x = random_tensor(&rng, 2, (int64_t[]){N, C}, -4, 4, false);
  int32_t targets[N] = {0, 6, 3, -100, 2, 5};
  float weights[N] = {1.0f, 0.5f, 2.0f, 1.0f, 0.0f, 1.5f};
  ag_tape *t = ag_tape_create();
  /* Plain mean against -log_softmax[target] from the log_softmax op. */
  int32_t plain[N] = {1, 2, 3, 4, 5, 6};
  ag_tensor *ls = ag_log_softmax(t, x, -1);
  double mean = 0;
  for (int i = 0; ls && i < N; i++) mean -= ls->data[i * C + plain[i]] / N;
  ag_tensor *loss = ag_cross_entropy(t, x, plain, NULL, -100, false);
  CHECK(loss && loss->numel == 1);
  if (loss) CHECK_NEAR(loss->data[0], mean, 1e-5);
  int32_t ignore_three[N] = {0, 6, 3, 1, 2, 3};
  ce_case cases[] = {{targets, NULL, -100, false},
                     {targets, weights, -100, false},
                     {targets, weights, -100, true},
                     {ignore_three, weights, 3, false}};
  for (int k = 0; k < 4; k++) {
    loss = ag_cross_entropy(t, x, cases[k].targets, cases[k].weights, cases[k].ignore_index,
                            cases[k].sum_reduction);
    CHECK_MSG(loss != NULL, "case %d: %s", k, ag_tape_error(t));
    if (loss) CHECK_NEAR(loss->data[0], reference_cross_entropy(x->data, N, C, &cases[k]), 1e-5);
  }
  /* No row counts: the loss is 0, not NaN. */
  int32_t none[N] = {-100, -100, -100, -100, -100, -100};
  loss = ag_cross_entropy(t, x, none, NULL, -100, false);
  CHECK(loss && loss->data[0] == 0.0f);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(cross_entropy_gradients_match_finite_differences) {
  ag_rng rng;
  ag_rng_seed(&rng, 21);
  enum { N = 5, C = 6 };
  ag_tensor *x = random_tensor(&rng, 2, (int64_t[]){N, C}, -3, 3, true);
  int32_t targets[N] = {5, -1, 0, 2, -1};
  int32_t all[N] = {5, 1, 0, 2, 3};
  float weights[N] = {0.5f, 1.0f, 2.0f, 0.0f, 1.0f};
  ce_case cases[] = {{all, NULL, -1, false},     {all, weights, -1, false},
                     {targets, NULL, -1, false}, {targets, weights, -1, false},
                     {targets, NULL, -1, true},  {targets, weights, -1, true}};
  const char *labels[] = {"mean",           "weights",    "ignore_index",
                          "ignore+weights", "sum+ignore", "sum+weights"};
  for (int k = 0; k < 6; k++)
    CHECK_MSG(gradcheck(labels[k], f_cross_entropy, &x, 1, &cases[k], 1e-2, 1e-4, 1e-3) == 0, "%s",
              labels[k]);
  ag_tensor *xt = random_tensor(&rng, 2, (int64_t[]){C, N}, -3, 3, true);
  CHECK(gradcheck("transposed logits", f_cross_entropy_transposed, &xt, 1, &cases[3], 1e-2, 1e-4,
                  1e-3) == 0);
  ag_tensor_destroy(xt);
  /* Ignored and zero-weight rows get exactly zero gradient. */
  ag_tape *t = ag_tape_create();
  memset(x->grad, 0, N * C * sizeof(float));
  ag_tensor *loss = ag_cross_entropy(t, x, targets, weights, -1, false);
  CHECK(loss && ag_backward(t, loss) == AG_OK);
  for (int j = 0; j < C; j++) {
    CHECK(x->grad[1 * C + j] == 0.0f && x->grad[4 * C + j] == 0.0f); /* ignored */
    CHECK(x->grad[3 * C + j] == 0.0f);                               /* weight 0 */
  }
  /* Gradient rows sum to zero (softmax - onehot) and match in closed form. */
  double weight_sum = 0.5 + 2.0;
  for (int i = 0; i <= 2; i += 2) { /* the rows that count with weight > 0 */
    double m = -INFINITY, s = 0, row = 0;
    for (int j = 0; j < C; j++) m = fmax(m, x->data[i * C + j]);
    for (int j = 0; j < C; j++) s += exp(x->data[i * C + j] - m);
    for (int j = 0; j < C; j++) {
      double expect =
          weights[i] / weight_sum * (exp(x->data[i * C + j] - m) / s - (j == targets[i]));
      CHECK_NEAR(x->grad[i * C + j], expect, 1e-6);
      row += x->grad[i * C + j];
    }
    CHECK_NEAR(row, 0.0, 1e-6);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

/* A language model's vocabulary: the values and the closed-form gradient
 * hold over 50257 classes with widely spread logits. */
TEST(cross_entropy_big_vocabulary_matches_direct_computation) {
  ag_rng rng;
  ag_rng_seed(&rng, 22);
  int64_t N = test_scaled(8, 2), C = test_scaled(50257, 5000);
  ag_tensor *x = random_tensor(&rng, 2, (int64_t[]){N, C}, 0, 1, true);
  for (int64_t i = 0; i < N * C; i++) x->data[i] = ag_rng_normal(&rng) * 6.0f;
  int32_t *targets = malloc((size_t)N * sizeof(int32_t));
  for (int64_t i = 0; i < N; i++) targets[i] = (int32_t)ag_rng_below(&rng, (uint64_t)C);
  targets[N - 1] = -100;
  ce_case c = {targets, NULL, -100, false};
  ag_tape *t = ag_tape_create();
  ag_tensor *loss = ag_cross_entropy(t, x, targets, NULL, -100, false);
  CHECK(loss && ag_backward(t, loss) == AG_OK);
  double expect = reference_cross_entropy(x->data, N, C, &c);
  if (loss) CHECK_NEAR(loss->data[0], expect, 1e-5 * fabs(expect));
  double worst = 0;
  for (int64_t i = 0; i < N - 1; i++) {
    double m = -INFINITY, s = 0;
    const float *row = x->data + i * C;
    for (int64_t j = 0; j < C; j++) m = fmax(m, row[j]);
    for (int64_t j = 0; j < C; j++) s += exp(row[j] - m);
    for (int64_t j = 0; j < C; j++) {
      double g = (exp(row[j] - m) / s - (j == targets[i])) / (double)(N - 1);
      /* float sums over C terms: relative error about 1e-6 */
      worst = fmax(worst, fabs(x->grad[i * C + j] - g) / (fabs(g) + 1e-9));
    }
  }
  CHECK_MSG(worst < 1e-5, "largest relative gradient error %g", worst);
  for (int64_t j = 0; j < C; j++) CHECK(x->grad[(N - 1) * C + j] == 0.0f);
  free(targets);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(cross_entropy_rejects_targets_outside_the_classes) {
  float v[8] = {0};
  ag_tape *t = ag_tape_create();
  ag_tensor *x = ag_tape_wrap(t, v, 2, (int64_t[]){2, 4});
  CHECK(ag_cross_entropy(t, x, (int32_t[]){1, 7}, NULL, -100, false) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_INVALID);
  CHECK_MSG(error_mentions(t, "cross_entropy", "target 7"), "%s", ag_tape_error(t));
  ag_tape_reset(t);
  x = ag_tape_wrap(t, v, 2, (int64_t[]){2, 4});
  CHECK(ag_cross_entropy(t, x, (int32_t[]){-3, 0}, NULL, -100, false) == NULL);
  CHECK_MSG(error_mentions(t, "cross_entropy", "target -3"), "%s", ag_tape_error(t));
  ag_tape_reset(t);
  /* ignore_index itself is fine even outside [0, C). */
  x = ag_tape_wrap(t, v, 2, (int64_t[]){2, 4});
  CHECK(ag_cross_entropy(t, x, (int32_t[]){-100, 3}, NULL, -100, false) != NULL);
  /* Logits must be 2-D. */
  x = ag_tape_wrap(t, v, 1, (int64_t[]){8});
  CHECK(ag_cross_entropy(t, x, (int32_t[]){0}, NULL, -100, false) == NULL);
  CHECK(error_mentions(t, "cross_entropy", "(8)"));
  ag_tape_destroy(t);
}

/* ---- embedding ------------------------------------------------------------------ */

typedef struct embedding_case {
  const int32_t *ids;
  int ndim;
  const int64_t *shape;
} embedding_case;

static ag_tensor *f_embedding(ag_tape *t, ag_tensor **in, void *ctx) {
  const embedding_case *c = ctx;
  return ag_embedding(t, in[0], c->ids, c->ndim, c->shape);
}

TEST(embedding_gathers_rows_of_the_table) {
  ag_rng rng;
  ag_rng_seed(&rng, 30);
  enum { V = 5, D = 3 };
  ag_tensor *table = random_tensor(&rng, 2, (int64_t[]){V, D}, -1, 1, false);
  int32_t ids[6] = {4, 0, 4, 2, 1, 4};
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_embedding(t, table, ids, 2, (int64_t[]){2, 3});
  CHECK(y && y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == D);
  for (int i = 0; y && i < 6; i++)
    for (int d = 0; d < D; d++) CHECK(y->data[i * D + d] == table->data[ids[i] * D + d]);
  /* A table given as a strided view (columns 1..2) is read through its strides. */
  ag_tensor *cols = ag_slice(t, table, 1, 1, 3); /* (V, 2) */
  ag_tensor *z = ag_embedding(t, cols, (int32_t[]){3, 0}, 1, (int64_t[]){2});
  CHECK(z && z->shape[0] == 2 && z->shape[1] == 2);
  for (int d = 0; z && d < 2; d++) {
    CHECK(z->data[d] == table->data[3 * D + 1 + d]);
    CHECK(z->data[2 + d] == table->data[0 * D + 1 + d]);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(table);
}

TEST(embedding_gradients_accumulate_over_repeated_ids) {
  ag_rng rng;
  ag_rng_seed(&rng, 31);
  enum { V = 6, D = 4 };
  ag_tensor *table = random_tensor(&rng, 2, (int64_t[]){V, D}, -1, 1, true);
  int32_t ids[6] = {2, 5, 2, 2, 0, 5};
  embedding_case c = {ids, 2, (int64_t[]){3, 2}};
  CHECK(gradcheck("embedding", f_embedding, &table, 1, &c, 1e-2, 1e-4, 1e-4) == 0);
  /* With all-ones upstream, row k's gradient is how often k occurs; the
   * caller's id buffer may change before backward without effect. */
  int32_t scratch[6];
  memcpy(scratch, ids, sizeof ids);
  ag_tape *t = ag_tape_create();
  memset(table->grad, 0, V * D * sizeof(float));
  ag_tensor *y = ag_embedding(t, table, scratch, 1, (int64_t[]){6});
  for (int i = 0; i < 6; i++) scratch[i] = 1;
  float ones[6 * D];
  for (int i = 0; i < 6 * D; i++) ones[i] = 1.0f;
  CHECK(y && ag_backward_with(t, y, ones) == AG_OK);
  int counts[V] = {1, 0, 3, 0, 0, 2};
  for (int v = 0; v < V; v++)
    for (int d = 0; d < D; d++) CHECK(table->grad[v * D + d] == (float)counts[v]);
  ag_tape_destroy(t);
  ag_tensor_destroy(table);
}

/* Many ids over a wide table: the column-split backward matches a serial sum. */
TEST(embedding_large_backward_matches_serial_sum) {
  ag_rng rng;
  ag_rng_seed(&rng, 32);
  int64_t V = 50, D = 300, count = test_scaled(2000, 200);
  ag_tensor *table = random_tensor(&rng, 2, (int64_t[]){V, D}, -1, 1, true);
  int32_t *ids = malloc((size_t)count * sizeof(int32_t));
  float *seed = malloc((size_t)(count * D) * sizeof(float));
  double *expect = calloc((size_t)(V * D), sizeof(double));
  for (int64_t i = 0; i < count; i++) ids[i] = (int32_t)ag_rng_below(&rng, (uint64_t)V);
  for (int64_t i = 0; i < count * D; i++) seed[i] = ag_rng_uniform(&rng);
  for (int64_t i = 0; i < count; i++)
    for (int64_t d = 0; d < D; d++) expect[ids[i] * D + d] += seed[i * D + d];
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_embedding(t, table, ids, 1, &count);
  CHECK(y && ag_backward_with(t, y, seed) == AG_OK);
  CHECK(table->grad && max_abs_diff_fd(table->grad, expect, V * D) < 1e-3);
  free(ids);
  free(seed);
  free(expect);
  ag_tape_destroy(t);
  ag_tensor_destroy(table);
}

TEST(embedding_rejects_ids_outside_the_table) {
  float v[6] = {0};
  ag_tape *t = ag_tape_create();
  ag_tensor *table = ag_tape_wrap(t, v, 2, (int64_t[]){3, 2});
  CHECK(ag_embedding(t, table, (int32_t[]){0, 3}, 1, (int64_t[]){2}) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_INVALID);
  CHECK_MSG(error_mentions(t, "embedding", "id 3"), "%s", ag_tape_error(t));
  ag_tape_reset(t);
  table = ag_tape_wrap(t, v, 2, (int64_t[]){3, 2});
  CHECK(ag_embedding(t, table, (int32_t[]){-1}, 1, (int64_t[]){1}) == NULL);
  CHECK_MSG(error_mentions(t, "embedding", "id -1"), "%s", ag_tape_error(t));
  ag_tape_destroy(t);
}

/* ---- layer norm, RMS norm, group norm ----------------------------------------------- */

typedef struct norm_case {
  int kind; /* 0 layernorm, 1 rmsnorm, 2 groupnorm */
  bool affine;
  int groups;
} norm_case;

static ag_tensor *f_norm(ag_tape *t, ag_tensor **in, void *ctx) {
  const norm_case *c = ctx;
  ag_tensor *g = c->affine ? in[1] : NULL, *b = c->affine ? in[2] : NULL;
  switch (c->kind) {
  case 0: return ag_layernorm(t, in[0], g, b, 1e-5f);
  case 1: return ag_rmsnorm(t, in[0], g, 1e-5f);
  default: return ag_groupnorm(t, in[0], c->groups, g, b, 1e-5f);
  }
}

TEST(layernorm_rows_have_mean_zero_and_variance_one) {
  ag_rng rng;
  ag_rng_seed(&rng, 40);
  enum { R = 4, D = 10 };
  ag_tensor *x = random_tensor(&rng, 2, (int64_t[]){R, D}, -3, 5, false);
  ag_tensor *g = random_tensor(&rng, 1, (int64_t[]){D}, 0.5f, 2, false);
  ag_tensor *b = random_tensor(&rng, 1, (int64_t[]){D}, -1, 1, false);
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_layernorm(t, x, NULL, NULL, 1e-5f);
  ag_tensor *ya = ag_layernorm(t, x, g, b, 1e-5f);
  CHECK(y && ya);
  for (int r = 0; y && ya && r < R; r++) {
    double mean = 0, var = 0, xm = 0, xv = 0;
    for (int i = 0; i < D; i++) mean += y->data[r * D + i] / D, xm += x->data[r * D + i] / D;
    for (int i = 0; i < D; i++) {
      var += pow(y->data[r * D + i] - mean, 2) / D;
      xv += pow(x->data[r * D + i] - xm, 2) / D;
    }
    CHECK_NEAR(mean, 0.0, 1e-6);
    CHECK_NEAR(var, 1.0 / (1.0 + 1e-5 / xv), 1e-5);
    for (int i = 0; i < D; i++) {
      double xhat = (x->data[r * D + i] - xm) / sqrt(xv + 1e-5);
      CHECK_NEAR(ya->data[r * D + i], xhat * g->data[i] + b->data[i], 1e-5);
    }
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(g);
  ag_tensor_destroy(b);
}

TEST(rmsnorm_matches_direct_computation) {
  ag_rng rng;
  ag_rng_seed(&rng, 41);
  enum { R = 3, D = 8 };
  ag_tensor *x = random_tensor(&rng, 3, (int64_t[]){R, 1, D}, -2, 3, false);
  ag_tensor *g = random_tensor(&rng, 1, (int64_t[]){D}, 0.5f, 2, false);
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_rmsnorm(t, x, NULL, 1e-6f), *yg = ag_rmsnorm(t, x, g, 1e-6f);
  CHECK(y && yg);
  for (int r = 0; y && yg && r < R; r++) {
    double ms = 0, ys = 0;
    for (int i = 0; i < D; i++) ms += pow(x->data[r * D + i], 2) / D;
    for (int i = 0; i < D; i++) {
      double expect = x->data[r * D + i] / sqrt(ms + 1e-6);
      CHECK_NEAR(y->data[r * D + i], expect, 1e-5);
      CHECK_NEAR(yg->data[r * D + i], expect * g->data[i], 1e-5);
      ys += pow(y->data[r * D + i], 2) / D;
    }
    CHECK_NEAR(ys, 1.0, 1e-4); /* unit root-mean-square */
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(g);
}

TEST(groupnorm_normalises_each_group_of_each_example) {
  ag_rng rng;
  ag_rng_seed(&rng, 42);
  enum { N = 2, C = 6, G = 3, S = 5 };
  ag_tensor *x = random_tensor(&rng, 3, (int64_t[]){N, C, S}, -2, 4, false);
  ag_tensor *g = random_tensor(&rng, 1, (int64_t[]){C}, 0.5f, 2, false);
  ag_tensor *b = random_tensor(&rng, 1, (int64_t[]){C}, -1, 1, false);
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_groupnorm(t, x, G, NULL, NULL, 1e-5f);
  ag_tensor *ya = ag_groupnorm(t, x, G, g, b, 1e-5f);
  CHECK(y && ya);
  int M = C / G * S;
  for (int k = 0; y && ya && k < N * G; k++) {
    double mean = 0, var = 0, xm = 0, xv = 0;
    for (int i = 0; i < M; i++) mean += y->data[k * M + i] / M, xm += x->data[k * M + i] / M;
    for (int i = 0; i < M; i++) {
      var += pow(y->data[k * M + i] - mean, 2) / M;
      xv += pow(x->data[k * M + i] - xm, 2) / M;
    }
    CHECK_NEAR(mean, 0.0, 1e-6);
    CHECK_NEAR(var, 1.0, 1e-4);
    for (int i = 0; i < M; i++) {
      int c = (k % G) * (C / G) + i / S;
      double xhat = (x->data[k * M + i] - xm) / sqrt(xv + 1e-5);
      CHECK_NEAR(ya->data[k * M + i], xhat * g->data[c] + b->data[c], 1e-5);
    }
  }
  /* Examples are independent: changing example 1 leaves example 0's output. */
  float before[C * S];
  if (y) memcpy(before, y->data, sizeof before);
  for (int i = C * S; i < N * C * S; i++) x->data[i] *= 3.0f;
  ag_tensor *y2 = ag_groupnorm(t, x, G, NULL, NULL, 1e-5f);
  CHECK(y2 && memcmp(before, y2->data, sizeof before) == 0);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(g);
  ag_tensor_destroy(b);
}

TEST(norm_gradients_match_finite_differences_on_random_shapes) {
  ag_rng rng;
  ag_rng_seed(&rng, 43);
  for (int trial = 0; trial < 3; trial++)
    for (int kind = 0; kind < 3; kind++)
      for (int affine = 0; affine < 2; affine++) {
        ag_tensor *in[3];
        int64_t shape[4];
        int ndim, groups = 1;
        int64_t channels;
        if (kind < 2) {
          ndim = 1 + (int)ag_rng_below(&rng, 3); /* 1..3 dims */
          for (int d = 0; d < ndim; d++) shape[d] = 1 + (int64_t)ag_rng_below(&rng, 3);
          shape[ndim - 1] = 3 + (int64_t)ag_rng_below(&rng, 6);
          channels = shape[ndim - 1];
        } else {
          groups = 1 + (int)ag_rng_below(&rng, 3);
          channels = groups * (1 + (int64_t)ag_rng_below(&rng, 3));
          ndim = 2 + (int)ag_rng_below(&rng, 3); /* (N, C), (N, C, L), (N, C, H, W) */
          shape[0] = 1 + (int64_t)ag_rng_below(&rng, 3);
          shape[1] = channels;
          for (int d = 2; d < ndim; d++) shape[d] = 1 + (int64_t)ag_rng_below(&rng, 3);
          if (channels / groups * (ndim > 2 ? shape[2] : 1) < 2) shape[1] = channels *= 2;
        }
        in[0] = random_tensor(&rng, ndim, shape, -2, 2, true);
        in[1] = random_tensor(&rng, 1, &channels, 0.5f, 1.5f, true);
        in[2] = random_tensor(&rng, 1, &channels, -1, 1, true);
        norm_case c = {kind, affine, groups};
        char label[96], s[64];
        snprintf(label, sizeof label, "%s%s %s groups %d",
                 kind == 0   ? "layernorm"
                 : kind == 1 ? "rmsnorm"
                             : "groupnorm",
                 affine ? " affine" : "", ag_shape_string(in[0], s, sizeof s), groups);
        int inputs = affine ? (kind == 1 ? 2 : 3) : 1;
        CHECK_MSG(gradcheck(label, f_norm, in, inputs, &c, 1e-2, 2e-3, 5e-3) == 0, "%s", label);
        for (int k = 0; k < 3; k++) ag_tensor_destroy(in[k]);
      }
}

/* Each op given the transposed view of a contiguous tensor. */
static ag_tensor *f_norm_transposed(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *views[3] = {ag_transpose(t, in[0], 0, -1), in[1], in[2]};
  return f_norm(t, views, ctx);
}

TEST(norm_gradients_through_non_contiguous_inputs) {
  ag_rng rng;
  ag_rng_seed(&rng, 45);
  /* x (6, 2, 4): its transpose (4, 2, 6) normalises over 6 (or 2 channels
   * in 2 groups for group norm). */
  ag_tensor *in[3];
  in[0] = random_tensor(&rng, 3, (int64_t[]){6, 2, 4}, -2, 2, true);
  for (int kind = 0; kind < 3; kind++) {
    int64_t channels = kind == 2 ? 2 : 6;
    in[1] = random_tensor(&rng, 1, &channels, 0.5f, 1.5f, true);
    in[2] = random_tensor(&rng, 1, &channels, -1, 1, true);
    norm_case c = {kind, true, 2};
    CHECK_MSG(gradcheck("transposed", f_norm_transposed, in, kind == 1 ? 2 : 3, &c, 1e-2, 2e-3,
                        5e-3) == 0,
              "kind %d", kind);
    ag_tensor_destroy(in[1]);
    ag_tensor_destroy(in[2]);
  }
  ag_tensor_destroy(in[0]);
}

/* Large enough for the multi-threaded paths: every gradient equals the one
 * computed row by row (or example by example) on small inputs. */
TEST(norm_large_inputs_match_row_by_row) {
  ag_rng rng;
  ag_rng_seed(&rng, 44);
  int64_t R = test_scaled(128, 32);
  for (int kind = 0; kind < 3; kind++) {
    /* (R, 384) for layer / RMS norm; (R, 96, 4) in 8 groups for group norm */
    int64_t shape[3] = {R, 384, 1}, channels = 384;
    int ndim = 2;
    if (kind == 2) {
      ndim = 3;
      shape[1] = channels = 96;
      shape[2] = 4;
    }
    ag_tensor *x = random_tensor(&rng, ndim, shape, -2, 2, true);
    ag_tensor *g = random_tensor(&rng, 1, &channels, 0.5f, 1.5f, true);
    ag_tensor *b = random_tensor(&rng, 1, &channels, -1, 1, kind != 1); /* RMS norm: no beta */
    ag_tensor *in[] = {x, g, b};
    norm_case c = {kind, true, 8};
    float *seed = malloc((size_t)x->numel * sizeof(float));
    for (int64_t i = 0; i < x->numel; i++) seed[i] = ag_rng_uniform(&rng) - 0.5f;
    ag_tape *t = ag_tape_create();
    ag_tensor *y = f_norm(t, in, &c);
    CHECK(y && ag_backward_with(t, y, seed) == AG_OK);
    /* The batch's parameter grads, then zeroed for the row-by-row sums. */
    float dg_big[384], db_big[384] = {0};
    memcpy(dg_big, g->grad, (size_t)channels * sizeof(float));
    memset(g->grad, 0, (size_t)channels * sizeof(float));
    if (b->grad) {
      memcpy(db_big, b->grad, (size_t)channels * sizeof(float));
      memset(b->grad, 0, (size_t)channels * sizeof(float));
    }
    double worst_y = 0, worst_dx = 0, worst_dg = 0, worst_db = 0;
    int64_t per_row = x->numel / R, row_shape[3] = {1, shape[1], shape[2]};
    ag_tape *rt = ag_tape_create();
    for (int64_t r = 0; y && r < R; r++) {
      ag_tape_reset(rt);
      ag_tensor *xr = NULL;
      ag_tensor_create(ndim, row_shape, &xr);
      memcpy(xr->data, x->data + r * per_row, (size_t)per_row * sizeof(float));
      xr->requires_grad = true;
      ag_tensor *row_in[] = {xr, g, b};
      ag_tensor *yr = f_norm(rt, row_in, &c);
      CHECK(yr && ag_backward_with(rt, yr, seed + r * per_row) == AG_OK);
      for (int64_t i = 0; yr && xr->grad && i < per_row; i++) {
        worst_y = fmax(worst_y, fabs(yr->data[i] - y->data[r * per_row + i]));
        worst_dx = fmax(worst_dx, fabs(xr->grad[i] - x->grad[r * per_row + i]));
      }
      ag_tensor_destroy(xr);
    }
    for (int64_t i = 0; i < channels; i++) {
      worst_dg = fmax(worst_dg, fabs(g->grad[i] - dg_big[i]) / fmax(1.0, fabs(dg_big[i])));
      if (b->grad)
        worst_db = fmax(worst_db, fabs(b->grad[i] - db_big[i]) / fmax(1.0, fabs(db_big[i])));
    }
    CHECK_MSG(worst_y < 1e-6 && worst_dx < 1e-5 && worst_dg < 1e-4 && worst_db < 1e-4,
              "kind %d: y %g dx %g dgamma %g dbeta %g", kind, worst_y, worst_dx, worst_dg,
              worst_db);
    free(seed);
    ag_tape_destroy(rt);
    ag_tape_destroy(t);
    ag_tensor_destroy(x);
    ag_tensor_destroy(g);
    ag_tensor_destroy(b);
  }
}

TEST(norm_errors_name_the_problem) {
  float v[48] = {0};
  ag_tape *t = ag_tape_create();
  ag_tensor *x = ag_tape_wrap(t, v, 3, (int64_t[]){2, 8, 3});
  CHECK(ag_groupnorm(t, x, 3, NULL, NULL, 1e-5f) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_INVALID);
  CHECK_MSG(error_mentions(t, "groupnorm", "3 groups") && error_mentions(t, "8 channels", NULL),
            "%s", ag_tape_error(t));
  ag_tape_reset(t);
  x = ag_tape_wrap(t, v, 3, (int64_t[]){2, 8, 3});
  ag_tensor *gamma = ag_tape_wrap(t, v, 1, (int64_t[]){4});
  CHECK(ag_layernorm(t, x, gamma, NULL, 1e-5f) == NULL);
  CHECK_MSG(error_mentions(t, "layernorm", "(4)") && error_mentions(t, "(2, 8, 3)", NULL), "%s",
            ag_tape_error(t));
  ag_tape_reset(t);
  x = ag_tape_wrap(t, v, 3, (int64_t[]){2, 8, 3});
  gamma = ag_tape_wrap(t, v, 1, (int64_t[]){3});
  CHECK(ag_groupnorm(t, x, 4, gamma, NULL, 1e-5f) == NULL);
  CHECK_MSG(error_mentions(t, "groupnorm", "gamma (3)"), "%s", ag_tape_error(t));
  ag_tape_reset(t);
  x = ag_tape_wrap(t, v, 3, (int64_t[]){2, 8, 3});
  CHECK(ag_rmsnorm(t, x, ag_tape_wrap(t, v, 1, (int64_t[]){8}), 1e-5f) == NULL);
  CHECK(error_mentions(t, "rmsnorm", "(8)"));
  ag_tape_destroy(t);
}

/* ---- dropout ------------------------------------------------------------------------ */

static ag_tensor *f_dropout(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_rng_seed(ag_tape_rng(t), 99); /* the same mask on every call */
  return ag_dropout(t, in[0], *(const float *)ctx);
}

TEST(dropout_is_identity_in_eval_mode_and_for_p_zero) {
  ag_rng rng;
  ag_rng_seed(&rng, 50);
  ag_tensor *x = random_tensor(&rng, 2, (int64_t[]){8, 9}, -1, 1, true);
  ag_tape *t = ag_tape_create();
  ag_tape_set_training(t, false);
  ag_tensor *y = ag_dropout(t, x, 0.5f);
  CHECK(y && memcmp(y->data, x->data, 72 * sizeof(float)) == 0);
  ag_tape_set_training(t, true);
  y = ag_dropout(t, x, 0.0f);
  CHECK(y && memcmp(y->data, x->data, 72 * sizeof(float)) == 0);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(dropout_zeroes_about_p_and_scales_the_rest) {
  ag_rng rng;
  ag_rng_seed(&rng, 51);
  int64_t n = test_scaled(200000, 40000);
  ag_tensor *x = random_tensor(&rng, 1, &n, 1, 2, false);
  const float ps[] = {0.1f, 0.5f, 0.9f};
  for (int k = 0; k < 3; k++) {
    float p = ps[k];
    ag_tape *t = ag_tape_create();
    ag_rng_seed(ag_tape_rng(t), 7);
    ag_tensor *y = ag_dropout(t, x, p);
    CHECK(y != NULL);
    int64_t zeros = 0, badly_scaled = 0;
    for (int64_t i = 0; y && i < n; i++) {
      if (y->data[i] == 0.0f)
        zeros++;
      else if (fabsf(y->data[i] - x->data[i] / (1.0f - p)) > 1e-5f * y->data[i])
        badly_scaled++;
    }
    /* 5 standard deviations of a binomial fraction. */
    double tol = 5.0 * sqrt(p * (1 - p) / (double)n);
    CHECK_MSG(fabs((double)zeros / (double)n - p) < tol, "p %g: dropped %g", p,
              (double)zeros / (double)n);
    CHECK(badly_scaled == 0);
    ag_tape_destroy(t);
  }
  ag_tensor_destroy(x);
}

TEST(dropout_same_seed_gives_the_same_mask) {
  ag_rng rng;
  ag_rng_seed(&rng, 52);
  int64_t n = 1001;
  ag_tensor *x = random_tensor(&rng, 1, &n, 1, 2, false);
  ag_tape *t = ag_tape_create();
  ag_rng_seed(ag_tape_rng(t), 5);
  ag_tensor *a = ag_dropout(t, x, 0.3f);
  ag_rng_seed(ag_tape_rng(t), 5);
  ag_tensor *b = ag_dropout(t, x, 0.3f);
  ag_tensor *c = ag_dropout(t, x, 0.3f); /* the stream moved on: a new mask */
  CHECK(a && b && c);
  CHECK(a && b && memcmp(a->data, b->data, (size_t)n * sizeof(float)) == 0);
  CHECK(a && c && memcmp(a->data, c->data, (size_t)n * sizeof(float)) != 0);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(dropout_gradient_is_the_scaled_mask) {
  ag_rng rng;
  ag_rng_seed(&rng, 53);
  ag_tensor *x = random_tensor(&rng, 3, (int64_t[]){3, 4, 5}, -1, 1, true);
  float p = 0.4f;
  CHECK(gradcheck("dropout", f_dropout, &x, 1, &p, 1e-2, 1e-4, 1e-4) == 0);
  /* Non-contiguous input: a transposed view. */
  ag_tape *t = ag_tape_create();
  ag_rng_seed(ag_tape_rng(t), 3);
  memset(x->grad, 0, 60 * sizeof(float));
  ag_tensor *xt = ag_transpose(t, x, 0, 2); /* (5, 4, 3) */
  ag_tensor *y = ag_dropout(t, xt, p);
  float ones[60];
  for (int i = 0; i < 60; i++) ones[i] = 1.0f;
  CHECK(y && ag_backward_with(t, y, ones) == AG_OK);
  for (int64_t i = 0; y && i < 60; i++) {
    float xi = ag_tensor_get(xt, i), yi = y->data[i];
    int64_t a = i / 12, b = (i / 3) % 4, c = i % 3; /* xt[a][b][c] = x[c][b][a] */
    float gi = x->grad[c * 20 + b * 5 + a];
    CHECK(yi == 0.0f ? gi == 0.0f : fabsf(gi - 1.0f / (1.0f - p)) < 1e-6f);
    CHECK(yi == 0.0f || fabsf(yi - xi / (1.0f - p)) < 1e-6f);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(dropout_rejects_p_outside_zero_to_one) {
  float v[4] = {1, 2, 3, 4};
  ag_tape *t = ag_tape_create();
  ag_tensor *x = ag_tape_wrap(t, v, 1, (int64_t[]){4});
  CHECK(ag_dropout(t, x, 1.0f) == NULL);
  CHECK_MSG(error_mentions(t, "dropout", "p = 1"), "%s", ag_tape_error(t));
  ag_tape_reset(t);
  x = ag_tape_wrap(t, v, 1, (int64_t[]){4});
  CHECK(ag_dropout(t, x, -0.25f) == NULL);
  CHECK(error_mentions(t, "dropout", "-0.25"));
  ag_tape_destroy(t);
}

int main(void) {
  RUN(softmax_matches_direct_computation_on_every_dim);
  RUN(softmax_is_stable_for_large_logits);
  RUN(softmax_gradients_match_finite_differences);
  RUN(softmax_large_inputs_match_closed_form);
  RUN(cross_entropy_equals_mean_negative_log_softmax_of_targets);
  RUN(cross_entropy_gradients_match_finite_differences);
  RUN(cross_entropy_big_vocabulary_matches_direct_computation);
  RUN(cross_entropy_rejects_targets_outside_the_classes);
  RUN(embedding_gathers_rows_of_the_table);
  RUN(embedding_gradients_accumulate_over_repeated_ids);
  RUN(embedding_large_backward_matches_serial_sum);
  RUN(embedding_rejects_ids_outside_the_table);
  RUN(layernorm_rows_have_mean_zero_and_variance_one);
  RUN(rmsnorm_matches_direct_computation);
  RUN(groupnorm_normalises_each_group_of_each_example);
  RUN(norm_gradients_match_finite_differences_on_random_shapes);
  RUN(norm_gradients_through_non_contiguous_inputs);
  RUN(norm_large_inputs_match_row_by_row);
  RUN(norm_errors_name_the_problem);
  RUN(dropout_is_identity_in_eval_mode_and_for_p_zero);
  RUN(dropout_zeroes_about_p_and_scales_the_rest);
  RUN(dropout_same_seed_gives_the_same_mask);
  RUN(dropout_gradient_is_the_scaled_mask);
  RUN(dropout_rejects_p_outside_zero_to_one);
  TEST_MAIN_END();
}
