/* Reductions (sum, mean, max): values and shapes against direct
 * computation, gradients against finite differences, ties, errors. */
#include "agora/ops.h"
#include "gradcheck.h"
#include "test.h"

#include <math.h>

typedef enum reduce_kind { R_SUM, R_MEAN, R_MAX } reduce_kind;
static const char *reduce_name[] = {"sum", "mean", "max"};

static ag_tensor *apply_reduce(ag_tape *t, reduce_kind k, ag_tensor *x, int dim, bool keepdim) {
  if (k == R_SUM) return ag_sum(t, x, dim, keepdim);
  if (k == R_MEAN) return ag_mean(t, x, dim, keepdim);
  return ag_max(t, x, dim, keepdim);
}

/* Output element j of reducing x (any view) over dim d (-1: everything),
 * straight from the definition, in double. */
static double reduce_reference(reduce_kind k, const ag_tensor *x, int d, int64_t j) {
  int64_t n = d < 0 ? x->numel : x->shape[d], inner = 1;
  for (int i = d + 1; d >= 0 && i < x->ndim; i++) inner *= x->shape[i];
  int64_t o = d < 0 ? 0 : j / inner, in = d < 0 ? 0 : j % inner;
  double acc = k == R_MAX ? -INFINITY : 0;
  for (int64_t m = 0; m < n; m++) {
    double v = ag_tensor_get(x, (o * n + m) * inner + in);
    acc = k == R_MAX ? (v > acc ? v : acc) : acc + v;
  }
  return k == R_MEAN ? acc / (double)n : acc;
}

/* Distinct values (a shuffled ramp plus noise) so max has one argmax and
 * finite differences never cross a tie. */
static ag_tensor *distinct_random(ag_rng *rng, int ndim, const int64_t *shape) {
  ag_tensor *x = gradcheck_random(rng, ndim, shape, 0, 1, true);
  int64_t *order = malloc((size_t)x->numel * sizeof *order);
  for (int64_t i = 0; i < x->numel; i++) order[i] = i;
  ag_rng_shuffle_i64(rng, order, x->numel);
  for (int64_t i = 0; i < x->numel; i++)
    x->data[i] = 0.1f * (float)order[i] - 1.0f + 0.02f * ag_rng_uniform(rng);
  free(order);
  return x;
}

typedef struct reduce_ctx {
  reduce_kind kind;
  int dim;
  bool keepdim;
  bool transposed; /* reduce x^T (last two dims swapped), a strided view */
  bool sliced;     /* reduce x[1:] along dim 0, an offset view */
} reduce_ctx;

static ag_tensor *view_of(ag_tape *t, ag_tensor *x, const reduce_ctx *c) {
  if (c->transposed) x = ag_transpose(t, x, -1, -2);
  if (c->sliced) x = ag_slice(t, x, 0, 1, x->shape[0]);
  return x;
}

static ag_tensor *f_reduce(ag_tape *t, ag_tensor **in, void *ctx) {
  reduce_ctx *c = ctx;
  return apply_reduce(t, c->kind, view_of(t, in[0], c), c->dim, c->keepdim);
}

/* Dims to reduce over for a 3-d input: each one, counted both ways, and all. */
static const int dims_to_try[] = {0, 1, 2, -1, -3, AG_ALL_DIMS};
enum { N_DIMS = sizeof dims_to_try / sizeof dims_to_try[0] };

TEST(values_and_shapes_match_direct_computation) {
  ag_rng rng;
  ag_rng_seed(&rng, 31);
  int64_t shape[] = {3, 4, 5};
  for (int k = 0; k <= R_MAX; k++)
    for (int di = 0; di < N_DIMS; di++)
      for (int v = 0; v < 4; v++) {
        reduce_ctx c = {(reduce_kind)k, dims_to_try[di], v & 1, v >= 2, v == 3};
        ag_tensor *x = distinct_random(&rng, 3, shape);
        ag_tape *t = ag_tape_create();
        ag_tensor *xv = view_of(t, x, &c);
        ag_tensor *y = apply_reduce(t, c.kind, xv, c.dim, c.keepdim);
        CHECK_MSG(y != NULL, "%s: %s", reduce_name[k], ag_tape_error(t));
        if (!y) {
          ag_tape_destroy(t);
          ag_tensor_destroy(x);
          continue;
        }
        int d = c.dim == AG_ALL_DIMS ? -1 : (c.dim + 3) % 3;
        /* shape: dim d dropped (or 1 with keepdim); everything -> (1) or (1, 1, 1) */
        if (d < 0) {
          CHECK(y->ndim == (c.keepdim ? 3 : 1) && y->numel == 1);
        } else {
          CHECK(y->ndim == (c.keepdim ? 3 : 2));
          for (int i = 0, j = 0; i < 3; i++) {
            if (i == d && !c.keepdim) continue;
            CHECK(y->shape[j++] == (i == d ? 1 : xv->shape[i]));
          }
        }
        for (int64_t j = 0; j < y->numel; j++) {
          double want = reduce_reference(c.kind, xv, d, j);
          CHECK_MSG(fabs(y->data[j] - want) <= 1e-5 * (1 + fabs(want)),
                    "%s dim %d view %d element %lld: %g vs %g", reduce_name[k], c.dim, v,
                    (long long)j, y->data[j], want);
        }
        ag_tape_destroy(t);
        ag_tensor_destroy(x);
      }
}

TEST(gradients_match_finite_differences) {
  ag_rng rng;
  ag_rng_seed(&rng, 32);
  for (int k = 0; k <= R_MAX; k++)
    for (int di = 0; di < N_DIMS; di++)
      for (int v = 0; v < 4; v++) {
        /* a random 3-d shape, each dim 2 to 4 long */
        int64_t shape[3];
        for (int d = 0; d < 3; d++) shape[d] = 2 + (int64_t)ag_rng_below(&rng, 3);
        reduce_ctx c = {(reduce_kind)k, dims_to_try[di], v & 1, v >= 2, v == 3};
        ag_tensor *x = distinct_random(&rng, 3, shape);
        char label[64];
        snprintf(label, sizeof label, "%s dim %d view %d", reduce_name[k], c.dim, v);
        CHECK_MSG(gradcheck(label, f_reduce, &x, 1, &c, 1e-2, 1e-3, 1e-3) == 0, "%s", label);
        ag_tensor_destroy(x);
      }
}

/* Reductions composed with elementwise ops: a layer-norm-like chain. */
static ag_tensor *f_centered_square_mean(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *x = in[0];
  ag_tensor *centered = ag_sub(t, x, ag_mean(t, x, -1, true));
  return ag_mean(t, ag_mul(t, centered, centered), -1, false);
}

TEST(chain_with_broadcast_of_a_keepdim_reduction) {
  ag_rng rng;
  ag_rng_seed(&rng, 33);
  int64_t shape[] = {3, 6};
  ag_tensor *x = gradcheck_random(&rng, 2, shape, -1, 1, true);
  CHECK(gradcheck("variance", f_centered_square_mean, &x, 1, NULL, 1e-2, 1e-3, 1e-3) == 0);
  ag_tensor_destroy(x);
}

TEST(max_gradient_goes_to_the_first_argmax) {
  float v[] = {1, 3, 3, 2, 2, 0}; /* (2, 3) with ties in both rows */
  int64_t shape[] = {2, 3};
  ag_tensor *x;
  CHECK_OK(ag_tensor_create(2, shape, &x));
  memcpy(x->data, v, sizeof v);
  x->requires_grad = true;
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_max(t, x, 1, false);
  CHECK(y && y->data[0] == 3 && y->data[1] == 2);
  CHECK_OK(ag_backward_with(t, y, (float[]){10, 20}));
  float want_rows[] = {0, 10, 0, 20, 0, 0};
  for (int i = 0; i < 6; i++) CHECK(x->grad[i] == want_rows[i]);
  /* over dim 0: columns (1, 2), (3, 2), (3, 0) */
  ag_tape_reset(t);
  memset(x->grad, 0, sizeof v);
  y = ag_max(t, x, 0, true);
  CHECK(y && y->ndim == 2 && y->shape[0] == 1 && y->shape[1] == 3);
  CHECK_OK(ag_backward_with(t, y, (float[]){1, 2, 3}));
  float want_cols[] = {0, 2, 3, 1, 0, 0};
  for (int i = 0; i < 6; i++) CHECK(x->grad[i] == want_cols[i]);
  /* over everything: the 3 at flat index 1, not the one at 2 */
  ag_tape_reset(t);
  memset(x->grad, 0, sizeof v);
  y = ag_max(t, x, AG_ALL_DIMS, false);
  CHECK(y && y->ndim == 1 && y->data[0] == 3);
  CHECK_OK(ag_backward(t, y));
  for (int i = 0; i < 6; i++) CHECK(x->grad[i] == (i == 1 ? 1.0f : 0.0f));
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(bad_dims_and_empty_max_are_errors) {
  int64_t shape[] = {2, 3}, empty[] = {2, 0};
  ag_tensor *x, *e;
  ag_tensor_create(2, shape, &x);
  ag_tensor_create(2, empty, &e);
  for (int k = 0; k <= R_MAX; k++) {
    int bad_dims[] = {2, -3};
    for (int i = 0; i < 2; i++) {
      ag_tape *t = ag_tape_create();
      CHECK(apply_reduce(t, (reduce_kind)k, x, bad_dims[i], false) == NULL);
      CHECK(ag_tape_status(t) == AG_ERR_INVALID);
      CHECK_MSG(strstr(ag_tape_error(t), reduce_name[k]) && strstr(ag_tape_error(t), "(2, 3)"),
                "message: %s", ag_tape_error(t));
      ag_tape_destroy(t);
    }
  }
  ag_tape *t = ag_tape_create();
  CHECK(ag_max(t, e, 1, false) == NULL && ag_tape_status(t) == AG_ERR_SHAPE);
  CHECK(strstr(ag_tape_error(t), "max") && strstr(ag_tape_error(t), "(2, 0)"));
  ag_tape_reset(t);
  /* A sum over nothing is 0, a max over a non-empty dim of an empty tensor is empty. */
  ag_tensor *s = ag_sum(t, e, 1, false);
  CHECK(s && s->numel == 2 && s->data[0] == 0 && s->data[1] == 0);
  ag_tensor *m = ag_max(t, e, 0, false);
  CHECK(m && m->numel == 0);
  /* A 1-d tensor reduced over its only dim is (1), like AG_ALL_DIMS. */
  ag_tensor *one = ag_sum(t, ag_reshape(t, x, 1, (int64_t[]){6}), 0, false);
  CHECK(one && one->ndim == 1 && one->shape[0] == 1);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(e);
}

/* Sizes above the parallel threshold: every kernel shape of the threaded
 * paths (one long row, many short rows, column blocks) against references. */
TEST(large_reductions_match_direct_computation) {
  ag_rng rng;
  ag_rng_seed(&rng, 34);
  int64_t rows = test_scaled(700, 40), cols = 301;
  int64_t shape[] = {rows, cols};
  ag_tensor *x = gradcheck_random(&rng, 2, shape, -1, 1, true);
  int64_t peak = (rows / 2) * cols + 7;
  x->data[peak] = 5; /* the one maximum, away from chunk edges */
  ag_tape *t = ag_tape_create();
  ag_tensor *all = ag_sum(t, x, AG_ALL_DIMS, false);
  ag_tensor *mx = ag_max(t, x, AG_ALL_DIMS, false);
  ag_tensor *rowmean = ag_mean(t, x, 1, false);
  ag_tensor *colsum = ag_sum(t, x, 0, false);
  ag_tensor *colmax = ag_max(t, x, 0, false);
  ag_tensor *tsum = ag_sum(t, ag_transpose(t, x, 0, 1), 1, false); /* strided input */
  CHECK(all && mx && rowmean && colsum && colmax && tsum);
  if (all && mx && rowmean && colsum && colmax && tsum) {
    double total = 0;
    for (int64_t i = 0; i < x->numel; i++) total += x->data[i];
    CHECK_NEAR(all->data[0], total, 1e-3);
    CHECK(mx->data[0] == 5);
    int bad = 0;
    for (int64_t r = 0; r < rows; r++) {
      double s = 0;
      for (int64_t c = 0; c < cols; c++) s += x->data[r * cols + c];
      if (fabs(rowmean->data[r] - s / (double)cols) > 1e-5) bad++;
    }
    for (int64_t c = 0; c < cols; c++) {
      double s = 0, m = -INFINITY;
      for (int64_t r = 0; r < rows; r++) {
        s += x->data[r * cols + c];
        m = fmax(m, x->data[r * cols + c]);
      }
      if (fabs(colsum->data[c] - s) > 1e-4 || fabs(tsum->data[c] - s) > 1e-4) bad++;
      if (colmax->data[c] != (float)m) bad++;
    }
    CHECK_MSG(bad == 0, "%d mismatches", bad);
    /* d(max all)/dx is one-hot at the peak */
    CHECK_OK(ag_backward(t, mx));
    int wrong = 0;
    for (int64_t i = 0; i < x->numel; i++) wrong += x->grad[i] != (i == peak ? 1.0f : 0.0f);
    CHECK(wrong == 0);
  }
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

int main(void) {
  RUN(values_and_shapes_match_direct_computation);
  RUN(gradients_match_finite_differences);
  RUN(chain_with_broadcast_of_a_keepdim_reduction);
  RUN(max_gradient_goes_to_the_first_argmax);
  RUN(bad_dims_and_empty_max_are_errors);
  RUN(large_reductions_match_direct_computation);
  TEST_MAIN_END();
}
