/* ag_linear's few-rows path (decoding: up to 8 rows dot each weight row
 * directly, with vector tails) against a double-precision reference, across
 * row counts on both sides of the switch to sgemm, input widths around the
 * vector width, and with and without a bias; large enough to go parallel. */
#include "agora/ops.h"
#include "test.h"

static ag_tensor *random_tensor(ag_rng *rng, int ndim, const int64_t *shape) {
  ag_tensor *x = NULL;
  if (ag_tensor_create(ndim, shape, &x) != AG_OK) return NULL;
  for (int64_t i = 0; i < x->numel; i++) x->data[i] = 2 * ag_rng_uniform(rng) - 1;
  return x;
}

static int check_linear(ag_rng *rng, int64_t rows, int64_t out, int64_t in, bool with_bias) {
  int failures = 0;
  ag_tensor *x = random_tensor(rng, 2, (int64_t[]){rows, in});
  ag_tensor *w = random_tensor(rng, 2, (int64_t[]){out, in});
  ag_tensor *b = with_bias ? random_tensor(rng, 1, (int64_t[]){out}) : NULL;
  ag_tape *t = ag_tape_create();
  ag_tape_set_grad_enabled(t, false);
  ag_tensor *y = ag_linear(t, x, w, b);
  if (!y || y->shape[0] != rows || y->shape[1] != out) {
    failures++;
  } else {
    for (int64_t r = 0; r < rows; r++)
      for (int64_t o = 0; o < out; o++) {
        double s = b ? b->data[o] : 0;
        for (int64_t k = 0; k < in; k++) s += (double)x->data[r * in + k] * w->data[o * in + k];
        if (!(fabs(y->data[r * out + o] - s) <= 1e-5 * (1 + sqrt((double)in)))) {
          if (!failures)
            fprintf(stderr, "linear rows %lld out %lld in %lld: y[%lld, %lld] = %.7g, want %.7g\n",
                    (long long)rows, (long long)out, (long long)in, (long long)r, (long long)o,
                    (double)y->data[r * out + o], s);
          failures++;
        }
      }
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(w);
  ag_tensor_destroy(b);
  return failures;
}

TEST(few_rows_match_reference) {
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  const int64_t widths[] = {1, 7, 8, 15, 16, 17, 33, 64, 67, 288};
  const int64_t outs[] = {1, 5, 33};
  for (int64_t rows = 1; rows <= 10; rows++)
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
      for (size_t j = 0; j < sizeof outs / sizeof *outs; j++)
        CHECK(check_linear(&rng, rows, outs[j], widths[i], (rows + i + j) % 2) == 0);
}

TEST(few_rows_parallel_match_reference) {
  /* out x in above the threshold where the output rows are split over threads */
  ag_rng rng;
  ag_rng_seed(&rng, 12);
  for (int64_t rows = 1; rows <= 9; rows += 4) {
    CHECK(check_linear(&rng, rows, 1003, 131, true) == 0);
    CHECK(check_linear(&rng, rows, 517, 768, false) == 0);
  }
}

int main(void) {
  RUN(few_rows_match_reference);
  RUN(few_rows_parallel_match_reference);
  TEST_MAIN_END();
}
