/* Views and copies: reshape, transpose, permute, slice, contiguous, concat,
 * stop_gradient. Values against index arithmetic, gradients of view chains
 * against finite differences, and the error messages of bad arguments. */
#include "agora/ops.h"
#include "gradcheck.h"
#include "test.h"

/* A heap tensor holding 0, 1, 2, ... so that values name their position. */
static ag_tensor *ramp(int ndim, const int64_t *shape) {
  ag_tensor *x = NULL;
  if (ag_tensor_create(ndim, shape, &x) != AG_OK) return NULL;
  for (int64_t i = 0; i < x->numel; i++) x->data[i] = (float)i;
  return x;
}

static bool error_mentions(ag_tape *t, const char *a, const char *b) {
  const char *msg = ag_tape_error(t);
  bool ok = strstr(msg, a) && (!b || strstr(msg, b));
  if (!ok) fprintf(stderr, "  message was: %s\n", msg);
  return ok;
}

/* ---- reshape ------------------------------------------------------------------------ */

TEST(reshape_keeps_values_and_infers_minus_one) {
  ag_tensor *x = ramp(3, (int64_t[]){2, 3, 4});
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_reshape(t, x, 2, (int64_t[]){4, -1});
  CHECK(y && y->ndim == 2 && y->shape[0] == 4 && y->shape[1] == 6);
  CHECK(y && y->data == x->data); /* a view: no copy of contiguous data */
  for (int64_t i = 0; y && i < 24; i++) CHECK(ag_tensor_get(y, i) == (float)i);
  ag_tensor *flat = ag_reshape(t, x, 1, (int64_t[]){-1});
  CHECK(flat && flat->ndim == 1 && flat->shape[0] == 24);
  ag_tensor *z = ag_reshape(t, x, 4, (int64_t[]){1, 2, 12, 1});
  CHECK(z && z->shape[2] == 12 && z->numel == 24);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(reshape_of_a_strided_view_copies_in_view_order) {
  ag_tensor *x = ramp(2, (int64_t[]){3, 4});
  ag_tape *t = ag_tape_create();
  ag_tensor *xt = ag_transpose(t, x, 0, 1); /* (4, 3), strided */
  ag_tensor *y = ag_reshape(t, xt, 1, (int64_t[]){12});
  CHECK(y && y->shape[0] == 12);
  for (int64_t i = 0; y && i < 12; i++) CHECK(ag_tensor_get(y, i) == (float)((i % 3) * 4 + i / 3));
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(reshape_errors_name_the_problem) {
  ag_tensor *x = ramp(3, (int64_t[]){2, 3, 4});
  struct {
    int ndim;
    int64_t shape[3];
    ag_status code;
    const char *text;
  } cases[] = {
      {2, {-1, -1}, AG_ERR_INVALID, "-1"},     /* two unknowns */
      {2, {5, 5}, AG_ERR_SHAPE, "(2, 3, 4)"},  /* 25 != 24 elements */
      {2, {5, -1}, AG_ERR_SHAPE, "(2, 3, 4)"}, /* 24 does not divide by 5 */
      {2, {0, -1}, AG_ERR_SHAPE, "(2, 3, 4)"}, /* nothing to infer from */
      {2, {-2, 12}, AG_ERR_INVALID, "-2"},     /* negative size */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ag_tape *t = ag_tape_create();
    CHECK(ag_reshape(t, x, cases[i].ndim, cases[i].shape) == NULL);
    CHECK_MSG(ag_tape_status(t) == cases[i].code, "case %zu", i);
    CHECK(error_mentions(t, "reshape", cases[i].text));
    ag_tape_destroy(t);
  }
  ag_tensor_destroy(x);
}

/* ---- transpose and permute ---------------------------------------------------------- */

TEST(transpose_is_a_view_with_swapped_dims) {
  ag_tensor *x = ramp(3, (int64_t[]){2, 3, 4});
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_transpose(t, x, 0, -1); /* (4, 3, 2) */
  CHECK(y && y->shape[0] == 4 && y->shape[1] == 3 && y->shape[2] == 2);
  CHECK(y && y->data == x->data && !ag_tensor_is_contiguous(y));
  for (int64_t i = 0; y && i < 24; i++) {
    int64_t a = i / 6, b = (i / 2) % 3, c = i % 2; /* y[a, b, c] = x[c, b, a] */
    CHECK(ag_tensor_get(y, i) == (float)(c * 12 + b * 4 + a));
  }
  CHECK(ag_transpose(t, x, 0, 3) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_INVALID && error_mentions(t, "transpose", "(2, 3, 4)"));
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(permute_reorders_dims) {
  ag_tensor *x = ramp(3, (int64_t[]){2, 3, 4});
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_permute(t, x, (int[]){2, 0, 1}); /* y[k, i, j] = x[i, j, k]: (4, 2, 3) */
  CHECK(y && y->shape[0] == 4 && y->shape[1] == 2 && y->shape[2] == 3);
  for (int64_t n = 0; y && n < 24; n++) {
    int64_t k = n / 6, i = (n / 3) % 2, j = n % 3;
    CHECK(ag_tensor_get(y, n) == (float)(i * 12 + j * 4 + k));
  }
  ag_tensor *same = ag_permute(t, x, (int[]){-3, -2, -1}); /* negative dims, identity */
  for (int64_t n = 0; same && n < 24; n++) CHECK(ag_tensor_get(same, n) == (float)n);
  CHECK(ag_permute(t, x, (int[]){0, 0, 1}) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_INVALID && error_mentions(t, "permute", NULL));
  ag_tape_reset(t);
  CHECK(ag_permute(t, x, (int[]){0, 1, 3}) == NULL && error_mentions(t, "permute", NULL));
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

/* ---- slice --------------------------------------------------------------------------- */

TEST(slice_selects_a_range_with_negative_indices) {
  ag_tensor *x = ramp(2, (int64_t[]){4, 5});
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_slice(t, x, 1, 1, 4); /* columns 1..3 */
  CHECK(y && y->shape[0] == 4 && y->shape[1] == 3);
  for (int64_t n = 0; y && n < 12; n++)
    CHECK(ag_tensor_get(y, n) == (float)((n / 3) * 5 + 1 + n % 3));
  ag_tensor *z = ag_slice(t, x, -2, -3, -1); /* rows 1..2 */
  CHECK(z && z->shape[0] == 2 && z->shape[1] == 5);
  for (int64_t n = 0; z && n < 10; n++) CHECK(ag_tensor_get(z, n) == (float)(5 + n));
  ag_tensor *e = ag_slice(t, x, 0, 2, 2); /* empty */
  CHECK(e && e->shape[0] == 0 && e->numel == 0);
  ag_tensor *all = ag_slice(t, x, -1, 0, 5);
  CHECK(all && all->shape[1] == 5);
  ag_tape_destroy(t);
  struct {
    int dim;
    int64_t start, end;
    const char *text;
  } bad[] = {
      {1, 0, 6, "[0, 6)"},  /* past the end */
      {0, 3, 2, "[3, 2)"},  /* start after end */
      {0, -5, 2, "size 4"}, /* before the start */
      {2, 0, 1, "(4, 5)"},  /* no such dim */
      {-3, 0, 1, "(4, 5)"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    t = ag_tape_create();
    CHECK(ag_slice(t, x, bad[i].dim, bad[i].start, bad[i].end) == NULL);
    CHECK(ag_tape_status(t) == AG_ERR_INVALID);
    CHECK_MSG(error_mentions(t, "slice", bad[i].text), "case %zu", i);
    ag_tape_destroy(t);
  }
  ag_tensor_destroy(x);
}

/* ---- contiguous ---------------------------------------------------------------------- */

TEST(contiguous_copies_only_strided_tensors) {
  ag_tensor *x = ramp(2, (int64_t[]){3, 4});
  x->requires_grad = true;
  ag_tape *t = ag_tape_create();
  CHECK(ag_contiguous(t, x) == x);
  ag_tensor *xt = ag_transpose(t, x, 0, 1);
  ag_tensor *c = ag_contiguous(t, xt);
  CHECK(c && c != xt && c->data != x->data && ag_tensor_is_contiguous(c));
  for (int64_t n = 0; c && n < 12; n++) CHECK(c->data[n] == ag_tensor_get(xt, n));
  /* a slice of whole rows is still contiguous: no copy */
  ag_tensor *rows = ag_slice(t, x, 0, 1, 3);
  CHECK(rows && ag_contiguous(t, rows) == rows);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

/* ---- concat --------------------------------------------------------------------------- */

TEST(concat_joins_along_a_dim) {
  ag_tensor *a = ramp(2, (int64_t[]){2, 3}), *b = ramp(2, (int64_t[]){2, 2});
  for (int64_t i = 0; i < b->numel; i++) b->data[i] += 100;
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_concat(t, (ag_tensor *[]){a, b}, 2, -1); /* (2, 5) */
  CHECK(y && y->shape[0] == 2 && y->shape[1] == 5);
  float want[] = {0, 1, 2, 100, 101, 3, 4, 5, 102, 103};
  for (int n = 0; y && n < 10; n++) CHECK(y->data[n] == want[n]);
  /* along dim 0 with a strided input: (2, 3) ++ transpose of (3, 2) */
  ag_tensor *c = ramp(2, (int64_t[]){3, 2});
  ag_tensor *z = ag_concat(t, (ag_tensor *[]){a, ag_transpose(t, c, 0, 1)}, 2, 0);
  CHECK(z && z->shape[0] == 4 && z->shape[1] == 3);
  float wantz[] = {0, 1, 2, 3, 4, 5, 0, 2, 4, 1, 3, 5};
  for (int n = 0; z && n < 12; n++) CHECK(z->data[n] == wantz[n]);
  ag_tape_destroy(t);
  ag_tensor_destroy(a);
  ag_tensor_destroy(b);
  ag_tensor_destroy(c);
}

TEST(concat_errors_name_both_shapes) {
  ag_tensor *a = ramp(2, (int64_t[]){2, 3}), *b = ramp(2, (int64_t[]){2, 4});
  ag_tensor *c = ramp(3, (int64_t[]){2, 3, 1});
  ag_tape *t = ag_tape_create();
  CHECK(ag_concat(t, (ag_tensor *[]){a, b}, 2, 0) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_SHAPE && error_mentions(t, "concat", "(2, 3)") &&
        error_mentions(t, "(2, 4)", NULL));
  ag_tape_reset(t);
  CHECK(ag_concat(t, (ag_tensor *[]){a, c}, 2, 1) == NULL);
  CHECK(ag_tape_status(t) == AG_ERR_SHAPE && error_mentions(t, "(2, 3)", "(2, 3, 1)"));
  ag_tape_reset(t);
  CHECK(ag_concat(t, (ag_tensor *[]){a, a}, 2, 2) == NULL && error_mentions(t, "concat", NULL));
  ag_tape_reset(t);
  CHECK(ag_concat(t, NULL, 0, 0) == NULL && ag_tape_status(t) == AG_ERR_INVALID);
  ag_tape_destroy(t);
  ag_tensor_destroy(a);
  ag_tensor_destroy(b);
  ag_tensor_destroy(c);
}

static ag_tensor *f_concat3(ag_tape *t, ag_tensor **in, void *ctx) {
  /* in[1] enters transposed (a strided input); concat along dim 1 */
  ag_tensor *parts[] = {in[0], ag_transpose(t, in[1], 0, 1), in[2]};
  return ag_concat(t, parts, 3, 1);
}

TEST(concat_sends_each_input_its_gradient) {
  ag_rng rng;
  ag_rng_seed(&rng, 41);
  ag_tensor *in[3] = {gradcheck_random(&rng, 2, (int64_t[]){3, 2}, -1, 1, true),
                      gradcheck_random(&rng, 2, (int64_t[]){4, 3}, -1, 1, true),
                      gradcheck_random(&rng, 2, (int64_t[]){3, 1}, -1, 1, false)};
  CHECK(gradcheck("concat", f_concat3, in, 3, NULL, 1e-2, 1e-3, 1e-3) == 0);
  /* exact: the seed's columns 0-1 go to in[0], 2-5 (transposed) to in[1] */
  ag_tape *t = ag_tape_create();
  ag_tensor *y = f_concat3(t, in, NULL); /* (3, 7) */
  float seed[21];
  for (int i = 0; i < 21; i++) seed[i] = (float)i;
  memset(in[0]->grad, 0, 6 * sizeof(float));
  memset(in[1]->grad, 0, 12 * sizeof(float));
  CHECK_OK(ag_backward_with(t, y, seed));
  for (int r = 0; r < 3; r++) {
    for (int c = 0; c < 2; c++) CHECK(in[0]->grad[r * 2 + c] == seed[r * 7 + c]);
    for (int c = 0; c < 4; c++) CHECK(in[1]->grad[c * 3 + r] == seed[r * 7 + 2 + c]);
  }
  CHECK(in[2]->grad == NULL);
  ag_tape_destroy(t);
  for (int k = 0; k < 3; k++) ag_tensor_destroy(in[k]);
}

/* ---- stop_gradient ---------------------------------------------------------------------- */

TEST(stop_gradient_passes_values_but_no_gradient) {
  ag_rng rng;
  ag_rng_seed(&rng, 42);
  ag_tensor *x = gradcheck_random(&rng, 2, (int64_t[]){2, 3}, -1, 1, true);
  ag_tape *t = ag_tape_create();
  ag_tensor *s = ag_stop_gradient(t, x);
  CHECK(s && !s->requires_grad);
  for (int64_t i = 0; s && i < 6; i++) CHECK(ag_tensor_get(s, i) == x->data[i]);
  /* y = x * sg(x): dy/dx = sg(x) = x, not 2x */
  ag_tensor *y = ag_mul(t, x, s);
  CHECK_OK(ag_backward_with(t, y, (float[]){1, 1, 1, 1, 1, 1}));
  for (int i = 0; i < 6; i++) CHECK(x->grad[i] == x->data[i]);
  /* a stopped strided view keeps its layout */
  ag_tensor *st = ag_stop_gradient(t, ag_transpose(t, x, 0, 1));
  for (int64_t i = 0; st && i < 6; i++) CHECK(ag_tensor_get(st, i) == x->data[(i % 2) * 3 + i / 2]);
  /* nothing to differentiate through a stopped tensor alone */
  CHECK(ag_backward_with(t, ag_exp(t, st), (float[]){1, 1, 1, 1, 1, 1}) != AG_OK);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

/* ---- gradients through chains of views ------------------------------------------------- */

/* (2, 3, 4) -> transpose (4, 3, 2) -> slice rows 1..3 -> reshape (3, 6) ->
 * slice columns -4..end -> permute (4, 3) */
static ag_tensor *f_chain_a(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *y = ag_transpose(t, in[0], 0, 2);
  y = ag_slice(t, y, 0, 1, 4);
  y = ag_reshape(t, y, 2, (int64_t[]){3, -1});
  y = ag_slice(t, y, 1, -4, 6);
  return ag_permute(t, y, (int[]){1, 0});
}

/* x used twice through different views, joined by concat and mul: the
 * gradients of both paths add up. */
static ag_tensor *f_chain_b(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *x = in[0];                                             /* (4, 4) */
  ag_tensor *top = ag_slice(t, x, 0, 0, 2);                         /* (2, 4) */
  ag_tensor *left = ag_transpose(t, ag_slice(t, x, 1, 1, 3), 0, 1); /* (2, 4) */
  ag_tensor *both = ag_concat(t, (ag_tensor *[]){top, left}, 2, 0); /* (4, 4) */
  return ag_mul(t, ag_contiguous(t, ag_transpose(t, both, 0, 1)), x);
}

/* stop_gradient in a chain: only the unstopped path contributes. */
static ag_tensor *f_chain_c(ag_tape *t, ag_tensor **in, void *ctx) {
  ag_tensor *x = in[0];
  ag_tensor *frozen = ag_stop_gradient(t, ag_slice(t, x, 0, 1, 3)); /* (2, 3) */
  return ag_mul(t, ag_slice(t, x, 0, 0, 2), frozen);
}

TEST(view_chains_pass_gradient_checks) {
  ag_rng rng;
  ag_rng_seed(&rng, 43);
  ag_tensor *a = gradcheck_random(&rng, 3, (int64_t[]){2, 3, 4}, -1, 1, true);
  CHECK(gradcheck("transpose-slice-reshape-slice-permute", f_chain_a, &a, 1, NULL, 1e-2, 1e-3,
                  1e-3) == 0);
  ag_tensor *b = gradcheck_random(&rng, 2, (int64_t[]){4, 4}, -1, 1, true);
  CHECK(gradcheck("two paths through views", f_chain_b, &b, 1, NULL, 1e-2, 1e-3, 1e-3) == 0);
  ag_tensor *c = gradcheck_random(&rng, 2, (int64_t[]){3, 3}, -1, 1, true);
  /* Finite differences would see through the stop, so this one is exact:
   * y = x[0:2] * sg(x[1:3]) gives dx[r] = seed[r] * x[r + 1] for rows 0, 1 and
   * nothing for row 2, which reaches y only through the stopped path. */
  ag_tape *tc = ag_tape_create();
  float seed[6] = {0.5f, -1, 2, 3, -0.25f, 1};
  CHECK_OK(ag_backward_with(tc, f_chain_c(tc, &c, NULL), seed));
  for (int i = 0; i < 9; i++) CHECK_NEAR(c->grad[i], i < 6 ? seed[i] * c->data[i + 3] : 0.0, 1e-7);
  ag_tape_destroy(tc);
  /* and the chain's values against index arithmetic: out[j, i] = x[k, r, p]
   * where (r, k-part) come from the reshape of the transposed slice */
  ag_tape *t = ag_tape_create();
  ag_tensor *y = f_chain_a(t, &a, NULL); /* (4, 3) */
  CHECK(y && y->shape[0] == 4 && y->shape[1] == 3);
  for (int64_t j = 0; y && j < 4; j++)
    for (int64_t i = 0; i < 3; i++) {
      int64_t flat = i * 6 + 2 + j; /* row i, column 2 + j of the (3, 6) reshape */
      int64_t p = 1 + flat / 6, q = (flat / 2) % 3, r = flat % 2; /* index of (4, 3, 2) */
      CHECK(ag_tensor_get(y, j * 3 + i) == a->data[r * 12 + q * 4 + p]);
    }
  ag_tape_destroy(t);
  ag_tensor_destroy(a);
  ag_tensor_destroy(b);
  ag_tensor_destroy(c);
}

int main(void) {
  RUN(reshape_keeps_values_and_infers_minus_one);
  RUN(reshape_of_a_strided_view_copies_in_view_order);
  RUN(reshape_errors_name_the_problem);
  RUN(transpose_is_a_view_with_swapped_dims);
  RUN(permute_reorders_dims);
  RUN(slice_selects_a_range_with_negative_indices);
  RUN(contiguous_copies_only_strided_tensors);
  RUN(concat_joins_along_a_dim);
  RUN(concat_errors_name_both_shapes);
  RUN(concat_sends_each_input_its_gradient);
  RUN(stop_gradient_passes_values_but_no_gradient);
  RUN(view_chains_pass_gradient_checks);
  TEST_MAIN_END();
}
