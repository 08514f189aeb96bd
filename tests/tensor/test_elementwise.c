/* Elementwise ops: values against direct computation, gradients against
 * finite differences, broadcasting, strided views, error messages. */
#include "agora/ops.h"
#include "gradcheck.h"
#include "test.h"

#include <math.h>

enum { N_UNARY = 11, N_BINARY = 4 };

/* Layouts an input can be handed to an op in. */
typedef enum layout {
  LAYOUT_PLAIN = 0,      /* the heap tensor itself, contiguous */
  LAYOUT_TRANSPOSED = 1, /* its last two dims swapped: a strided view */
  LAYOUT_SLICED = 2      /* dim 0 without its first entry: an offset view */
} layout;

static ag_tensor *in_layout(ag_tape *t, ag_tensor *x, layout l) {
  if (l == LAYOUT_TRANSPOSED) return ag_transpose(t, x, -1, -2);
  if (l == LAYOUT_SLICED) return ag_slice(t, x, 0, 1, x->shape[0]);
  return x;
}

/* ---- unary ops and their direct (double) definitions --------------------------- */

typedef enum unary_kind {
  U_SCALE,
  U_ADD_SCALAR,
  U_EXP,
  U_LOG,
  U_SQRT,
  U_POW,
  U_RELU,
  U_GELU,
  U_SILU,
  U_TANH,
  U_SIGMOID
} unary_kind;

static const char *unary_name[N_UNARY] = {"scale", "add_scalar", "exp",  "log",  "sqrt",   "pow",
                                          "relu",  "gelu",       "silu", "tanh", "sigmoid"};

static ag_tensor *apply_unary(ag_tape *t, unary_kind k, ag_tensor *x, float p) {
  switch (k) {
  case U_SCALE: return ag_scale(t, x, p);
  case U_ADD_SCALAR: return ag_add_scalar(t, x, p);
  case U_EXP: return ag_exp(t, x);
  case U_LOG: return ag_log(t, x);
  case U_SQRT: return ag_sqrt(t, x);
  case U_POW: return ag_pow(t, x, p);
  case U_RELU: return ag_relu(t, x);
  case U_GELU: return ag_gelu(t, x);
  case U_SILU: return ag_silu(t, x);
  case U_TANH: return ag_tanh(t, x);
  case U_SIGMOID: return ag_sigmoid(t, x);
  }
  return NULL;
}

static double unary_reference(unary_kind k, double v, double p) {
  const double pi = 3.14159265358979323846;
  switch (k) {
  case U_SCALE: return p * v;
  case U_ADD_SCALAR: return v + p;
  case U_EXP: return exp(v);
  case U_LOG: return log(v);
  case U_SQRT: return sqrt(v);
  case U_POW: return pow(v, p);
  case U_RELU: return v > 0 ? v : 0;
  case U_GELU: return 0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v * v * v)));
  case U_SILU: return v / (1 + exp(-v));
  case U_TANH: return tanh(v);
  case U_SIGMOID: return 1 / (1 + exp(-v));
  }
  return NAN;
}

/* Inputs in the op's domain: positive for log/sqrt/pow, away from the kink
 * of relu (further than the finite-difference step). */
static void fill_domain(ag_rng *rng, unary_kind k, ag_tensor *x) {
  for (int64_t i = 0; i < x->numel; i++) {
    float u = ag_rng_uniform(rng);
    if (k == U_LOG || k == U_SQRT || k == U_POW)
      x->data[i] = 0.5f + 1.5f * u;
    else if (k == U_RELU)
      x->data[i] = (u < 0.5f ? -1.0f : 1.0f) * (0.1f + 0.9f * ag_rng_uniform(rng));
    else
      x->data[i] = -2.0f + 4.0f * u;
  }
}

typedef struct unary_ctx {
  unary_kind kind;
  layout layout;
  float p;
} unary_ctx;

static ag_tensor *f_unary(ag_tape *t, ag_tensor **in, void *ctx) {
  unary_ctx *c = ctx;
  return apply_unary(t, c->kind, in_layout(t, in[0], c->layout), c->p);
}

/* Exponents (and scale / shift constants) to try for each op. */
static const float unary_params[] = {2.0f, 3.0f, 0.5f, -1.5f};

TEST(unary_values_match_direct_computation) {
  ag_rng rng;
  ag_rng_seed(&rng, 11);
  int64_t shape[] = {2, 3, 5};
  for (int k = 0; k < N_UNARY; k++)
    for (int l = 0; l <= LAYOUT_SLICED; l++)
      for (int pi = 0; pi < 4; pi++) {
        ag_tensor *x = gradcheck_random(&rng, 3, shape, 0, 1, false);
        fill_domain(&rng, (unary_kind)k, x);
        ag_tape *t = ag_tape_create();
        ag_tensor *xv = in_layout(t, x, (layout)l);
        float p = unary_params[pi];
        ag_tensor *y = apply_unary(t, (unary_kind)k, xv, p);
        CHECK_MSG(y != NULL, "%s: %s", unary_name[k], ag_tape_error(t));
        if (y) {
          CHECK(ag_shapes_equal(y, xv) && ag_tensor_is_contiguous(y));
          for (int64_t i = 0; i < y->numel; i++) {
            double want = unary_reference((unary_kind)k, ag_tensor_get(xv, i), p);
            CHECK_MSG(fabs(y->data[i] - want) <= 1e-5 + 1e-5 * fabs(want),
                      "%s layout %d p %g element %lld: %.8g vs %.8g", unary_name[k], l, p,
                      (long long)i, y->data[i], want);
          }
        }
        ag_tape_destroy(t);
        ag_tensor_destroy(x);
      }
}

TEST(unary_gradients_match_finite_differences) {
  ag_rng rng;
  ag_rng_seed(&rng, 12);
  for (int k = 0; k < N_UNARY; k++)
    for (int l = 0; l <= LAYOUT_SLICED; l++)
      for (int pi = 0; pi < 4; pi++) {
        /* a random shape of 2 to 4 dims, each 2 to 4 long */
        int ndim = 2 + (int)ag_rng_below(&rng, 3);
        int64_t shape[4];
        for (int d = 0; d < ndim; d++) shape[d] = 2 + (int64_t)ag_rng_below(&rng, 3);
        ag_tensor *x = gradcheck_random(&rng, ndim, shape, 0, 1, true);
        fill_domain(&rng, (unary_kind)k, x);
        unary_ctx c = {(unary_kind)k, (layout)l, unary_params[pi]};
        char label[64];
        snprintf(label, sizeof label, "%s layout %d p %g", unary_name[k], l, c.p);
        CHECK_MSG(gradcheck(label, f_unary, &x, 1, &c, 1e-2, 2e-3, 2e-3) == 0, "%s", label);
        ag_tensor_destroy(x);
      }
}

/* ---- binary ops ------------------------------------------------------------------------ */

typedef enum binary_kind { B_ADD, B_SUB, B_MUL, B_DIV } binary_kind;
static const char *binary_name[N_BINARY] = {"add", "sub", "mul", "div"};

static ag_tensor *apply_binary(ag_tape *t, binary_kind k, ag_tensor *a, ag_tensor *b) {
  switch (k) {
  case B_ADD: return ag_add(t, a, b);
  case B_SUB: return ag_sub(t, a, b);
  case B_MUL: return ag_mul(t, a, b);
  case B_DIV: return ag_div(t, a, b);
  }
  return NULL;
}

static double binary_reference(binary_kind k, double a, double b) {
  switch (k) {
  case B_ADD: return a + b;
  case B_SUB: return a - b;
  case B_MUL: return a * b;
  case B_DIV: return a / b;
  }
  return NAN;
}

/* The element of x (a possibly strided view) that output element `flat` of
 * shape out reads under broadcasting: computed from the definition. */
static float broadcast_get(const ag_tensor *x, int out_ndim, const int64_t *out_shape,
                           int64_t flat) {
  int64_t idx[AG_MAX_DIMS];
  for (int d = out_ndim - 1; d >= 0; d--) {
    idx[d] = flat % out_shape[d];
    flat /= out_shape[d];
  }
  int64_t xflat = 0;
  for (int d = 0; d < x->ndim; d++) {
    int64_t i = idx[d + out_ndim - x->ndim];
    xflat = xflat * x->shape[d] + (x->shape[d] == 1 ? 0 : i);
  }
  return ag_tensor_get(x, xflat);
}

typedef struct binary_ctx {
  binary_kind kind;
  layout la, lb;
} binary_ctx;

static ag_tensor *f_binary(ag_tape *t, ag_tensor **in, void *ctx) {
  binary_ctx *c = ctx;
  return apply_binary(t, c->kind, in_layout(t, in[0], c->la), in_layout(t, in[1], c->lb));
}

/* Shape pairs (as stored: a view layout may change them) that broadcast. */
typedef struct shape_pair {
  int na, nb;
  int64_t a[4], b[4];
  layout la, lb;
} shape_pair;

static const shape_pair pairs[] = {
    {3, 2, {3, 1, 4}, {2, 4}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    {2, 3, {2, 4}, {3, 1, 4}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    {2, 3, {3, 1}, {2, 3, 4}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    {2, 1, {2, 3}, {1}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    {1, 2, {1}, {2, 3}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    {1, 2, {4}, {3, 1}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    {3, 3, {2, 3, 4}, {2, 3, 4}, LAYOUT_PLAIN, LAYOUT_PLAIN},
    /* a (2, 4, 3) transposed to (2, 3, 4) against a plain (2, 3, 4) */
    {3, 3, {2, 4, 3}, {2, 3, 4}, LAYOUT_TRANSPOSED, LAYOUT_PLAIN},
    /* transposed (4, 3) -> (3, 4) against a bias-like (4) */
    {2, 1, {4, 3}, {4}, LAYOUT_TRANSPOSED, LAYOUT_PLAIN},
    /* (2, 4) against a sliced (3, 1) -> (2, 1): one value per row */
    {2, 2, {2, 4}, {3, 1}, LAYOUT_PLAIN, LAYOUT_SLICED},
    /* both views: sliced (3, 2, 4) -> (2, 2, 4) and transposed (1, 4, 2) -> (1, 2, 4) */
    {3, 3, {3, 2, 4}, {1, 4, 2}, LAYOUT_SLICED, LAYOUT_TRANSPOSED},
};
enum { N_PAIRS = sizeof pairs / sizeof pairs[0] };

/* Values in [0.5, 1.5] with a random sign: safe divisors. */
static ag_tensor *random_operand(ag_rng *rng, int ndim, const int64_t *shape, bool grad) {
  ag_tensor *x = gradcheck_random(rng, ndim, shape, 0.5f, 1.5f, grad);
  for (int64_t i = 0; i < x->numel; i++)
    if (ag_rng_uniform(rng) < 0.5f) x->data[i] = -x->data[i];
  return x;
}

TEST(binary_values_broadcast_as_numpy) {
  ag_rng rng;
  ag_rng_seed(&rng, 21);
  for (int k = 0; k < N_BINARY; k++)
    for (int p = 0; p < N_PAIRS; p++) {
      const shape_pair *sp = &pairs[p];
      ag_tensor *a = random_operand(&rng, sp->na, sp->a, false);
      ag_tensor *b = random_operand(&rng, sp->nb, sp->b, false);
      ag_tape *t = ag_tape_create();
      ag_tensor *av = in_layout(t, a, sp->la), *bv = in_layout(t, b, sp->lb);
      ag_tensor *y = apply_binary(t, (binary_kind)k, av, bv);
      CHECK_MSG(y != NULL, "%s pair %d: %s", binary_name[k], p, ag_tape_error(t));
      if (y) {
        int nd = av->ndim > bv->ndim ? av->ndim : bv->ndim;
        CHECK(y->ndim == nd && ag_tensor_is_contiguous(y));
        for (int d = 0; d < nd; d++) {
          int da = d - (nd - av->ndim), db = d - (nd - bv->ndim);
          int64_t sa = da >= 0 ? av->shape[da] : 1, sb = db >= 0 ? bv->shape[db] : 1;
          CHECK(y->shape[d] == (sa > sb ? sa : sb));
        }
        for (int64_t i = 0; i < y->numel; i++) {
          double want = binary_reference((binary_kind)k, broadcast_get(av, y->ndim, y->shape, i),
                                         broadcast_get(bv, y->ndim, y->shape, i));
          CHECK_MSG(fabs(y->data[i] - want) <= 1e-6 * (1 + fabs(want)),
                    "%s pair %d element %lld: %g vs %g", binary_name[k], p, (long long)i,
                    y->data[i], want);
        }
      }
      ag_tape_destroy(t);
      ag_tensor_destroy(a);
      ag_tensor_destroy(b);
    }
}

TEST(binary_gradients_with_broadcasting_and_views) {
  ag_rng rng;
  ag_rng_seed(&rng, 22);
  for (int k = 0; k < N_BINARY; k++)
    for (int p = 0; p < N_PAIRS; p++) {
      const shape_pair *sp = &pairs[p];
      ag_tensor *in[2] = {random_operand(&rng, sp->na, sp->a, true),
                          random_operand(&rng, sp->nb, sp->b, true)};
      binary_ctx c = {(binary_kind)k, sp->la, sp->lb};
      char label[64];
      snprintf(label, sizeof label, "%s pair %d", binary_name[k], p);
      CHECK_MSG(gradcheck(label, f_binary, in, 2, &c, 1e-2, 2e-3, 2e-3) == 0, "%s", label);
      ag_tensor_destroy(in[0]);
      ag_tensor_destroy(in[1]);
    }
}

/* Random shapes: b takes a suffix of a's dims, each kept or set to 1 (and
 * sometimes a's own dims are the ones set to 1), so both sides broadcast. */
TEST(binary_gradients_on_random_broadcast_shapes) {
  ag_rng rng;
  ag_rng_seed(&rng, 23);
  for (int trial = 0; trial < 24; trial++) {
    binary_kind k = (binary_kind)(trial % N_BINARY);
    int na = 1 + (int)ag_rng_below(&rng, 4), nb = 1 + (int)ag_rng_below(&rng, (uint64_t)na);
    int64_t sa[4], sb[4];
    for (int d = 0; d < na; d++) sa[d] = 1 + (int64_t)ag_rng_below(&rng, 3);
    for (int d = 0; d < nb; d++) {
      int64_t full = sa[d + na - nb];
      uint64_t r = ag_rng_below(&rng, 3);
      sb[d] = r == 0 ? 1 : full;
      if (r == 1 && full > 1) { /* a broadcasts along this dim instead */
        sa[d + na - nb] = 1;
        sb[d] = full;
      }
    }
    bool swap = ag_rng_below(&rng, 2) == 1;
    ag_tensor *a = random_operand(&rng, na, sa, true), *b = random_operand(&rng, nb, sb, true);
    ag_tensor *in[2] = {swap ? b : a, swap ? a : b};
    binary_ctx c = {k, LAYOUT_PLAIN, LAYOUT_PLAIN};
    char label[64];
    snprintf(label, sizeof label, "%s trial %d", binary_name[k], trial);
    CHECK_MSG(gradcheck(label, f_binary, in, 2, &c, 1e-2, 2e-3, 2e-3) == 0, "%s", label);
    ag_tensor_destroy(a);
    ag_tensor_destroy(b);
  }
}

TEST(only_inputs_that_require_grad_receive_one) {
  ag_rng rng;
  ag_rng_seed(&rng, 24);
  int64_t sa[] = {3, 4}, sb[] = {4};
  ag_tensor *a = random_operand(&rng, 2, sa, true), *b = random_operand(&rng, 1, sb, false);
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_mul(t, a, b);
  CHECK(y && y->requires_grad);
  CHECK_OK(ag_backward_with(t, y, (float[12]){1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}));
  CHECK(a->grad != NULL && b->grad == NULL);
  for (int i = 0; a->grad && i < 12; i++) CHECK_NEAR(a->grad[i], b->data[i % 4], 0);
  /* With grad disabled nothing is recorded and the output needs no grad. */
  ag_tape_reset(t);
  ag_tape_set_grad_enabled(t, false);
  y = ag_mul(t, a, b);
  CHECK(y && !y->requires_grad && ag_tape_node_count(t) == 0);
  ag_tape_destroy(t);
  ag_tensor_destroy(a);
  ag_tensor_destroy(b);
}

static ag_tensor *f_square_plus_self(ag_tape *t, ag_tensor **in, void *ctx) {
  return ag_add(t, ag_mul(t, in[0], in[0]), in[0]);
}

/* b (3, 1) broadcast twice into (2, 3, 4): both reductions add up. */
static ag_tensor *f_broadcast_used_twice(ag_tape *t, ag_tensor **in, void *ctx) {
  return ag_add(t, ag_mul(t, in[0], in[1]), in[1]);
}

TEST(grad_accumulates_when_a_tensor_is_used_twice) {
  ag_rng rng;
  ag_rng_seed(&rng, 25);
  int64_t s[] = {2, 3};
  ag_tensor *x = gradcheck_random(&rng, 2, s, -1, 1, true);
  CHECK(gradcheck("x*x + x", f_square_plus_self, &x, 1, NULL, 1e-2, 1e-3, 1e-3) == 0);
  int64_t sa[] = {2, 3, 4}, sb[] = {3, 1};
  ag_tensor *ab[2] = {gradcheck_random(&rng, 3, sa, -1, 1, true),
                      gradcheck_random(&rng, 2, sb, -1, 1, true)};
  CHECK(gradcheck("a*b + b", f_broadcast_used_twice, ab, 2, NULL, 1e-2, 1e-3, 1e-3) == 0);
  ag_tensor_destroy(ab[0]);
  ag_tensor_destroy(ab[1]);
  ag_tape *t = ag_tape_create();
  memset(x->grad, 0, 6 * sizeof(float));
  float ones[6] = {1, 1, 1, 1, 1, 1};
  ag_tensor *y = f_square_plus_self(t, &x, NULL);
  CHECK_OK(ag_backward_with(t, y, ones));
  /* d(x^2 + x)/dx = 2x + 1: three uses of x, all accumulated */
  for (int i = 0; i < 6; i++) CHECK_NEAR(x->grad[i], 2 * x->data[i] + 1, 1e-6);
  /* Leaf grads accumulate across backward calls until zeroed. */
  ag_tape_reset(t);
  y = f_square_plus_self(t, &x, NULL);
  CHECK_OK(ag_backward_with(t, y, ones));
  for (int i = 0; i < 6; i++) CHECK_NEAR(x->grad[i], 2 * (2 * x->data[i] + 1), 1e-6);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(shape_mismatch_names_the_op_and_both_shapes) {
  int64_t sa[] = {2, 3}, sb[] = {4, 3}, sc[] = {3, 4};
  ag_tensor *a, *b, *c;
  ag_tensor_create(2, sa, &a);
  ag_tensor_create(2, sb, &b);
  ag_tensor_create(2, sc, &c);
  ag_tensor *(*fns[N_BINARY])(ag_tape *, ag_tensor *, ag_tensor *) = {ag_add, ag_sub, ag_mul,
                                                                      ag_div};
  for (int k = 0; k < N_BINARY; k++) {
    ag_tape *t = ag_tape_create();
    CHECK(fns[k](t, a, b) == NULL);
    CHECK(ag_tape_status(t) == AG_ERR_SHAPE);
    const char *msg = ag_tape_error(t);
    CHECK_MSG(strncmp(msg, binary_name[k], strlen(binary_name[k])) == 0 && strstr(msg, "(2, 3)") &&
                  strstr(msg, "(4, 3)"),
              "message: %s", msg);
    /* Errors are sticky: a valid op after a failure returns NULL. */
    CHECK(ag_add(t, a, a) == NULL);
    ag_tape_destroy(t);
  }
  ag_tape *t = ag_tape_create();
  CHECK(ag_mul(t, a, c) == NULL);
  CHECK(strstr(ag_tape_error(t), "mul") && strstr(ag_tape_error(t), "(2, 3)") &&
        strstr(ag_tape_error(t), "(3, 4)"));
  ag_tape_reset(t);
  CHECK(ag_exp(t, NULL) == NULL && ag_tape_status(t) == AG_ERR_INVALID);
  ag_tape_destroy(t);
  ag_tensor_destroy(a);
  ag_tensor_destroy(b);
  ag_tensor_destroy(c);
}

TEST(empty_tensors_pass_through) {
  int64_t sa[] = {0, 3}, sb[] = {3};
  ag_tensor *a, *b;
  ag_tensor_create(2, sa, &a);
  ag_tensor_create(1, sb, &b);
  a->requires_grad = b->requires_grad = true;
  ag_tape *t = ag_tape_create();
  ag_tensor *y = ag_gelu(t, ag_mul(t, a, b));
  CHECK(y && y->numel == 0 && y->shape[0] == 0 && y->shape[1] == 3);
  CHECK_OK(ag_backward_with(t, y, NULL));
  CHECK(b->grad && b->grad[0] == 0 && b->grad[1] == 0 && b->grad[2] == 0);
  ag_tape_destroy(t);
  ag_tensor_destroy(a);
  ag_tensor_destroy(b);
}

/* Sizes above the parallel threshold: the threaded loops give the same
 * values and gradients as direct computation. */
TEST(large_tensors_match_direct_computation) {
  ag_rng rng;
  ag_rng_seed(&rng, 26);
  /* odd sizes: thread chunks split the row tiles of the transposed input */
  int64_t rows = test_scaled(1000, 64) + 3, cols = 257;
  int64_t sx[] = {rows, cols}, sb[] = {cols}, sxt[] = {cols, rows};
  ag_tensor *x = random_operand(&rng, 2, sx, true);
  ag_tensor *xt = random_operand(&rng, 2, sxt, true);
  ag_tensor *b = random_operand(&rng, 1, sb, true);
  ag_tape *t = ag_tape_create();
  /* y = gelu(x * b) + xt^T: flat unary, row broadcast, strided add */
  ag_tensor *xb = ag_mul(t, x, b);
  ag_tensor *g = ag_gelu(t, xb);
  ag_tensor *y = ag_add(t, g, ag_transpose(t, xt, 0, 1));
  CHECK(y != NULL);
  float *seed = malloc((size_t)(rows * cols) * sizeof(float));
  for (int64_t i = 0; i < rows * cols; i++) seed[i] = ag_rng_uniform(&rng) - 0.5f;
  CHECK_OK(ag_backward_with(t, y, seed));
  int bad = 0;
  double *gb_ref = calloc((size_t)cols, sizeof(double));
  for (int64_t r = 0; y && r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      int64_t i = r * cols + c;
      double v = (double)x->data[i] * b->data[c];
      double want = unary_reference(U_GELU, v, 0) + xt->data[c * rows + r];
      if (fabs(y->data[i] - want) > 1e-5 * (1 + fabs(want))) bad++;
      /* gelu'(v) by a central difference in double: an independent reference */
      double h = 1e-6;
      double dg = (unary_reference(U_GELU, v + h, 0) - unary_reference(U_GELU, v - h, 0)) / (2 * h);
      if (fabs(x->grad[i] - seed[i] * dg * b->data[c]) > 1e-4) bad++;
      if (fabs(xt->grad[c * rows + r] - seed[i]) > 0) bad++;
      gb_ref[c] += seed[i] * dg * x->data[i];
    }
  for (int64_t c = 0; c < cols; c++)
    if (fabs(b->grad[c] - gb_ref[c]) > 1e-3 * (1 + fabs(gb_ref[c]))) bad++;
  CHECK_MSG(bad == 0, "%d mismatches", bad);
  free(gb_ref);
  free(seed);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
  ag_tensor_destroy(xt);
  ag_tensor_destroy(b);
}

int main(void) {
  RUN(unary_values_match_direct_computation);
  RUN(unary_gradients_match_finite_differences);
  RUN(binary_values_broadcast_as_numpy);
  RUN(binary_gradients_with_broadcasting_and_views);
  RUN(binary_gradients_on_random_broadcast_shapes);
  RUN(only_inputs_that_require_grad_receive_one);
  RUN(grad_accumulates_when_a_tensor_is_used_twice);
  RUN(shape_mismatch_names_the_op_and_both_shapes);
  RUN(empty_tensors_pass_through);
  RUN(large_tensors_match_direct_computation);
  TEST_MAIN_END();
}
