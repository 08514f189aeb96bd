/* Elementwise ops: binary ones with NumPy broadcasting (add, sub, mul, div)
 * and unary ones (scale, add_scalar, exp, log, sqrt, pow, relu, gelu, silu,
 * tanh, sigmoid). Inputs may be strided views; outputs are contiguous. */
#include "tensor/internal.h"

#include <math.h>
#include <string.h>

/* Below this many elements a loop runs on one thread. A contiguous add of
 * 32768 floats took about 18 us on one core of the development machine,
 * a few times what waking a thread team costs. */
#define PARALLEL_MIN_ELEMENTS 32768

/* GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016):
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_CUBIC          0.044715f

static inline float sigmoid(float v) {
  /* For v < -88 exp overflows to inf and the result is exactly 0: no NaN. */
  return 1.0f / (1.0f + expf(-v));
}

/* 0.5 (1 + tanh u) = sigmoid(2u): one expf instead of the much slower tanhf. */
static inline float gelu(float v) {
  float u = GELU_SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v);
  return v * sigmoid(2.0f * u);
}

static inline float gelu_grad(float v) {
  /* With s = sigmoid(2u): 1 + tanh u = 2s and 1 - tanh^2 u = 4s(1 - s), so
   * d/dv 0.5 v (1 + tanh u) = s + 2 v s (1 - s) du/dv. */
  float u = GELU_SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v);
  float s = sigmoid(2.0f * u);
  float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_CUBIC * v * v);
  return s + 2.0f * v * s * (1.0f - s) * du;
}

static inline float silu_grad(float v) {
  /* d/dv v s(v) = s + v s (1 - s) */
  float s = sigmoid(v);
  return s * (1.0f + v * (1.0f - s));
}

/* ---- iteration over a contiguous output and up to two strided inputs ------ */

/* The output's index space as rows of its last dim. Threads take
 * contiguous ranges of rows; within a row the inputs advance by their
 * innermost stride (0 where they broadcast). */
typedef struct walk {
  int ndim; /* >= 1 */
  int64_t shape[AG_MAX_DIMS];
  int64_t sa[AG_MAX_DIMS], sb[AG_MAX_DIMS]; /* strides of a and b in the output's dims */
  int64_t rows, inner, chunks;
  /* An input steps through memory along the output's rows (a transposed
   * view): rows are taken TILE_ROWS at a time, column by column, so that
   * input's reads share cache lines. */
  bool tiled;
} walk;

/* Rows per tile. Measured on a 2048 x 2048 transposed add (single thread):
 * 30 ms untiled, 15 ms with 4 rows, worse again from 8 rows on, where the
 * rows' cache lines start evicting each other. */
#define TILE_ROWS 4

static bool strided_step(int64_t stride) { return stride != 0 && stride != 1; }

static void walk_init(walk *w, const ag_tensor *out, const ag_tensor *a, const ag_tensor *b) {
  memset(w, 0, sizeof *w);
  w->ndim = out->ndim;
  memcpy(w->shape, out->shape, sizeof w->shape);
  ag_broadcast_strides(a, out->ndim, out->shape, w->sa);
  if (b) ag_broadcast_strides(b, out->ndim, out->shape, w->sb);
  if (w->ndim == 0) { /* a 0-dim scalar is one row of one element */
    w->ndim = 1;
    w->shape[0] = 1;
  }
  int last = w->ndim - 1;
  w->inner = w->shape[last];
  w->rows = w->inner ? out->numel / w->inner : 0;
  w->tiled = w->ndim >= 2 && (strided_step(w->sa[last]) || strided_step(w->sb[last]));
  if (out->numel == 0) return; /* chunks 0: nothing runs */
  w->chunks = out->numel / PARALLEL_MIN_ELEMENTS;
  if (w->chunks > w->rows) w->chunks = w->rows;
  if (w->chunks < 1) w->chunks = 1;
}

/* Offsets of a and b at the start of `row`, and its multi-index. */
static void walk_start(const walk *w, int64_t row, int64_t *idx, int64_t *oa, int64_t *ob) {
  *oa = *ob = 0;
  for (int d = w->ndim - 2; d >= 0; d--) {
    idx[d] = row % w->shape[d];
    row /= w->shape[d];
    *oa += idx[d] * w->sa[d];
    *ob += idx[d] * w->sb[d];
  }
}

/* Moves `count` rows on, at most to the end of the innermost row dim. */
static void walk_skip(const walk *w, int64_t count, int64_t *idx, int64_t *oa, int64_t *ob) {
  int d = w->ndim - 2;
  if (d < 0) return;
  idx[d] += count;
  *oa += count * w->sa[d];
  *ob += count * w->sb[d];
  while (idx[d] == w->shape[d]) { /* carry into the dim above */
    *oa -= idx[d] * w->sa[d];
    *ob -= idx[d] * w->sb[d];
    idx[d] = 0;
    if (--d < 0) return;
    idx[d]++;
    *oa += w->sa[d];
    *ob += w->sb[d];
  }
}

/* Rows left in the current run of the innermost row dim. */
static int64_t walk_tile(const walk *w, const int64_t *idx, int64_t rows_left) {
  int64_t g = w->shape[w->ndim - 2] - idx[w->ndim - 2];
  if (g > rows_left) g = rows_left;
  return g < TILE_ROWS ? g : TILE_ROWS;
}

/* Runs the body for every output element: i is its contiguous index, ia
 * and ib the offsets of the elements of a and b it reads. */
// clang-format off
#define WALK(w, ...)                                                                     \
  do {                                                                                   \
    const walk *w_ = (w);                                                                \
    int64_t chunks_ = w_->chunks;                                                        \
    _Pragma("omp parallel for schedule(static) if (chunks_ > 1)")                        \
    for (int64_t c_ = 0; c_ < chunks_; c_++) {                                           \
      int64_t r_ = w_->rows * c_ / chunks_, r1_ = w_->rows * (c_ + 1) / chunks_;         \
      int64_t idx_[AG_MAX_DIMS], oa_, ob_;                                               \
      int64_t inner_ = w_->inner;                                                        \
      int64_t sai_ = w_->sa[w_->ndim - 1], sbi_ = w_->sb[w_->ndim - 1];                  \
      walk_start(w_, r_, idx_, &oa_, &ob_);                                              \
      while (r_ < r1_) {                                                                 \
        if (!w_->tiled) {                                                                \
          for (int64_t j_ = 0; j_ < inner_; j_++) {                                      \
            int64_t i = r_ * inner_ + j_, ia = oa_ + j_ * sai_, ib = ob_ + j_ * sbi_;    \
            (void)ia;                                                                    \
            (void)ib;                                                                    \
            __VA_ARGS__;                                                                 \
          }                                                                              \
          walk_skip(w_, 1, idx_, &oa_, &ob_);                                            \
          r_++;                                                                          \
          continue;                                                                      \
        }                                                                                \
        int64_t g_ = walk_tile(w_, idx_, r1_ - r_);                                      \
        int64_t sar_ = w_->sa[w_->ndim - 2], sbr_ = w_->sb[w_->ndim - 2];                \
        for (int64_t j_ = 0; j_ < inner_; j_++)                                          \
          for (int64_t m_ = 0; m_ < g_; m_++) {                                          \
            int64_t i = (r_ + m_) * inner_ + j_;                                         \
            int64_t ia = oa_ + m_ * sar_ + j_ * sai_, ib = ob_ + m_ * sbr_ + j_ * sbi_;  \
            (void)ia;                                                                    \
            (void)ib;                                                                    \
            __VA_ARGS__;                                                                 \
          }                                                                              \
        walk_skip(w_, g_, idx_, &oa_, &ob_);                                             \
        r_ += g_;                                                                        \
      }                                                                                  \
    }                                                                                    \
  } while (0)

/* The fast path: every operand contiguous with the output's shape, one
 * loop under the OpenMP pragma given (a string literal). */
#define FLAT(pragma, count, ...)                                                         \
  do {                                                                                   \
    int64_t n_ = (count);                                                                \
    _Pragma(pragma)                                                                      \
    for (int64_t i = 0; i < n_; i++) {                                                   \
      int64_t ia = i, ib = i;                                                            \
      (void)ia;                                                                          \
      (void)ib;                                                                          \
      __VA_ARGS__;                                                                       \
    }                                                                                    \
  } while (0)

#define EACH_WITH(pragma, flat, w, ...)                                                  \
  do {                                                                                   \
    if (flat)                                                                            \
      FLAT(pragma, (w)->rows * (w)->inner, __VA_ARGS__);                                 \
    else                                                                                 \
      WALK(w, __VA_ARGS__);                                                              \
  } while (0)

#define EACH(flat, w, ...)                                                               \
  EACH_WITH("omp parallel for schedule(static) if (n_ > PARALLEL_MIN_ELEMENTS)", flat, w, \
            __VA_ARGS__)

/* EACH for bodies of plain arithmetic, vectorised. Each iteration touches
 * element i alone, so `simd` is safe even when operands alias; without it
 * -O2 leaves loops whose pointers might alias scalar (ReLU's backward, a
 * compare and branch per element, was 10% of a ResNet step). Bodies that
 * call libm (expf, sqrtf, tanhf, ...) stay in EACH: they do not vectorise,
 * and clang reports a requested simd it cannot do. */
#define EACH_SIMD(flat, w, ...)                                                          \
  EACH_WITH("omp parallel for simd schedule(static) if (n_ > PARALLEL_MIN_ELEMENTS)", flat, \
            w, __VA_ARGS__)
// clang-format on

/* ---- binary ops with broadcasting -------------------------------------------- */

static bool binary_flat(const ag_node *n) {
  const ag_tensor *a = n->in[0], *b = n->in[1];
  return a->numel == n->out->numel && b->numel == n->out->numel && ag_tensor_is_contiguous(a) &&
         ag_tensor_is_contiguous(b);
}

static ag_status binary_forward(ag_tape *t, ag_node *n) {
  const float *A = n->in[0]->data, *B = n->in[1]->data;
  float *y = n->out->data; // (out shape), contiguous
  walk w;
  walk_init(&w, n->out, n->in[0], n->in[1]);
  bool flat = binary_flat(n);
  switch (n->op) {
  case AG_OP_ADD: EACH_SIMD(flat, &w, y[i] = A[ia] + B[ib]); break;
  case AG_OP_SUB: EACH_SIMD(flat, &w, y[i] = A[ia] - B[ib]); break;
  case AG_OP_MUL: EACH_SIMD(flat, &w, y[i] = A[ia] * B[ib]); break;
  case AG_OP_DIV: EACH_SIMD(flat, &w, y[i] = A[ia] / B[ib]); break;
  default: return ag_error_set(AG_ERR_INTERNAL, "binary op %d unknown", (int)n->op);
  }
  return AG_OK;
}

/* d out / d input k times the output gradient, accumulated into dst
 * (output-shaped, contiguous). */
static void binary_input_grad(const ag_node *n, int k, const walk *w, bool flat, float *dst) {
  const float *A = n->in[0]->data, *B = n->in[1]->data, *gy = n->out->grad;
  switch (n->op * 2 + k) {
  case AG_OP_ADD * 2 + 0:
  case AG_OP_ADD * 2 + 1:
  case AG_OP_SUB * 2 + 0: EACH_SIMD(flat, w, dst[i] += gy[i]); break;
  case AG_OP_SUB * 2 + 1: EACH_SIMD(flat, w, dst[i] -= gy[i]); break;
  case AG_OP_MUL * 2 + 0: EACH_SIMD(flat, w, dst[i] += gy[i] * B[ib]); break;
  case AG_OP_MUL * 2 + 1: EACH_SIMD(flat, w, dst[i] += gy[i] * A[ia]); break;
  case AG_OP_DIV * 2 + 0: EACH_SIMD(flat, w, dst[i] += gy[i] / B[ib]); break;
  /* d(a/b)/db = -a / b^2 */
  case AG_OP_DIV * 2 + 1: EACH_SIMD(flat, w, dst[i] -= gy[i] * A[ia] / (B[ib] * B[ib])); break;
  default: break;
  }
}

static ag_status binary_backward(ag_tape *t, ag_node *n) {
  ag_tensor *y = n->out;
  walk w;
  walk_init(&w, y, n->in[0], n->in[1]);
  bool flat = binary_flat(n);
  for (int k = 0; k < 2; k++) {
    ag_tensor *x = n->in[k];
    if (!x->requires_grad) continue;
    float *gx = ag_tape_grad(t, x); // (x shape), contiguous
    if (!gx) return AG_ERR_NOMEM;
    if (x->numel == y->numel) {
      /* Not broadcast: x's row-major order is the output's. */
      binary_input_grad(n, k, &w, flat, gx);
      continue;
    }
    if (n->op == AG_OP_ADD || (n->op == AG_OP_SUB && k == 0)) {
      ag_reduce_broadcast_grad(y->grad, y->ndim, y->shape, x, gx);
      continue;
    }
    /* Output-shaped scratch, then summed over the dims x was broadcast along. */
    float *tmp = ag_tape_alloc(t, (size_t)y->numel * sizeof(float)); // (out shape)
    if (!tmp) return AG_ERR_NOMEM;
    memset(tmp, 0, (size_t)y->numel * sizeof(float));
    binary_input_grad(n, k, &w, flat, tmp);
    ag_reduce_broadcast_grad(tmp, y->ndim, y->shape, x, gx);
  }
  return AG_OK;
}

static ag_tensor *binary(ag_tape *t, ag_op_id op, const char *name, ag_tensor *a, ag_tensor *b) {
  if (!ag_tape_ok(t, a) || !ag_tape_ok(t, b)) return NULL;
  ag_op_call c = {.op = op, .in = {a, b}, .n_in = 2};
  if (ag_broadcast_shape(a, b, &c.out_ndim, c.out_shape))
    return ag_tape_fail(t, AG_ERR_SHAPE, "%s: %s", name, ag_error_message());
  return ag_op_run(t, &c);
}

ag_tensor *ag_add(ag_tape *t, ag_tensor *a, ag_tensor *b) {
  return binary(t, AG_OP_ADD, "add", a, b);
}
ag_tensor *ag_sub(ag_tape *t, ag_tensor *a, ag_tensor *b) {
  return binary(t, AG_OP_SUB, "sub", a, b);
}
ag_tensor *ag_mul(ag_tape *t, ag_tensor *a, ag_tensor *b) {
  return binary(t, AG_OP_MUL, "mul", a, b);
}
ag_tensor *ag_div(ag_tape *t, ag_tensor *a, ag_tensor *b) {
  return binary(t, AG_OP_DIV, "div", a, b);
}

/* ---- unary ops ------------------------------------------------------------------ */

/* farg[0] is the op's scalar (scale, added constant, exponent). */
static ag_status unary_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *in = n->in[0];
  const float *x = in->data;
  float *y = n->out->data; // (x shape), contiguous
  float s = n->farg[0];
  walk w;
  walk_init(&w, n->out, in, NULL);
  bool flat = ag_tensor_is_contiguous(in);
  switch (n->op) {
  case AG_OP_SCALE: EACH_SIMD(flat, &w, y[i] = s * x[ia]); break;
  case AG_OP_ADD_SCALAR: EACH_SIMD(flat, &w, y[i] = x[ia] + s); break;
  case AG_OP_EXP: EACH(flat, &w, y[i] = expf(x[ia])); break;
  case AG_OP_LOG: EACH(flat, &w, y[i] = logf(x[ia])); break;
  case AG_OP_SQRT: EACH(flat, &w, y[i] = sqrtf(x[ia])); break;
  case AG_OP_POW:
    if (s == 2.0f) /* squares are common (variances, L2) and exact this way */
      EACH_SIMD(flat, &w, y[i] = x[ia] * x[ia]);
    else
      EACH(flat, &w, y[i] = powf(x[ia], s));
    break;
  case AG_OP_RELU: EACH_SIMD(flat, &w, y[i] = x[ia] > 0 ? x[ia] : 0.0f); break;
  case AG_OP_GELU: EACH(flat, &w, y[i] = gelu(x[ia])); break;
  case AG_OP_SILU: EACH(flat, &w, y[i] = x[ia] * sigmoid(x[ia])); break;
  case AG_OP_TANH: EACH(flat, &w, y[i] = tanhf(x[ia])); break;
  case AG_OP_SIGMOID: EACH(flat, &w, y[i] = sigmoid(x[ia])); break;
  default: return ag_error_set(AG_ERR_INTERNAL, "unary op %d unknown", (int)n->op);
  }
  return AG_OK;
}

/* gx += gy * f'(x), with f' written through y = f(x) where that is cheaper. */
static ag_status unary_backward(ag_tape *t, ag_node *n) {
  ag_tensor *in = n->in[0];
  if (!in->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, in); // (x shape), contiguous
  if (!gx) return AG_ERR_NOMEM;
  const float *x = in->data, *y = n->out->data, *gy = n->out->grad;
  float s = n->farg[0];
  walk w;
  walk_init(&w, n->out, in, NULL);
  bool flat = ag_tensor_is_contiguous(in);
  switch (n->op) {
  case AG_OP_SCALE: EACH_SIMD(flat, &w, gx[i] += s * gy[i]); break;
  case AG_OP_ADD_SCALAR: EACH_SIMD(flat, &w, gx[i] += gy[i]); break;
  case AG_OP_EXP: EACH_SIMD(flat, &w, gx[i] += gy[i] * y[i]); break;
  case AG_OP_LOG: EACH_SIMD(flat, &w, gx[i] += gy[i] / x[ia]); break;
  case AG_OP_SQRT: EACH_SIMD(flat, &w, gx[i] += gy[i] * 0.5f / y[i]); break;
  case AG_OP_POW:
    if (s == 2.0f)
      EACH_SIMD(flat, &w, gx[i] += gy[i] * 2.0f * x[ia]);
    else
      EACH(flat, &w, gx[i] += gy[i] * s * powf(x[ia], s - 1.0f));
    break;
  case AG_OP_RELU: EACH_SIMD(flat, &w, gx[i] += x[ia] > 0 ? gy[i] : 0.0f); break;
  case AG_OP_GELU: EACH(flat, &w, gx[i] += gy[i] * gelu_grad(x[ia])); break;
  case AG_OP_SILU: EACH(flat, &w, gx[i] += gy[i] * silu_grad(x[ia])); break;
  case AG_OP_TANH: EACH_SIMD(flat, &w, gx[i] += gy[i] * (1.0f - y[i] * y[i])); break;
  case AG_OP_SIGMOID: EACH_SIMD(flat, &w, gx[i] += gy[i] * y[i] * (1.0f - y[i])); break;
  default: return ag_error_set(AG_ERR_INTERNAL, "unary op %d unknown", (int)n->op);
  }
  return AG_OK;
}

static ag_tensor *unary(ag_tape *t, ag_op_id op, ag_tensor *x, float arg) {
  if (!ag_tape_ok(t, x)) return NULL;
  ag_op_call c = {.op = op, .in = {x}, .n_in = 1, .out_ndim = x->ndim, .farg = {arg}};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

ag_tensor *ag_scale(ag_tape *t, ag_tensor *x, float s) { return unary(t, AG_OP_SCALE, x, s); }
ag_tensor *ag_add_scalar(ag_tape *t, ag_tensor *x, float s) {
  return unary(t, AG_OP_ADD_SCALAR, x, s);
}
ag_tensor *ag_exp(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_EXP, x, 0); }
ag_tensor *ag_log(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_LOG, x, 0); }
ag_tensor *ag_sqrt(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_SQRT, x, 0); }
ag_tensor *ag_pow(ag_tape *t, ag_tensor *x, float p) { return unary(t, AG_OP_POW, x, p); }
ag_tensor *ag_relu(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_RELU, x, 0); }
ag_tensor *ag_gelu(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_GELU, x, 0); }
ag_tensor *ag_silu(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_SILU, x, 0); }
ag_tensor *ag_tanh(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_TANH, x, 0); }
ag_tensor *ag_sigmoid(ag_tape *t, ag_tensor *x) { return unary(t, AG_OP_SIGMOID, x, 0); }

static const ag_op_impl add_op = {"add", binary_forward, binary_backward};
static const ag_op_impl sub_op = {"sub", binary_forward, binary_backward};
static const ag_op_impl mul_op = {"mul", binary_forward, binary_backward};
static const ag_op_impl div_op = {"div", binary_forward, binary_backward};
static const ag_op_impl scale_op = {"scale", unary_forward, unary_backward};
static const ag_op_impl add_scalar_op = {"add_scalar", unary_forward, unary_backward};
static const ag_op_impl exp_op = {"exp", unary_forward, unary_backward};
static const ag_op_impl log_op = {"log", unary_forward, unary_backward};
static const ag_op_impl sqrt_op = {"sqrt", unary_forward, unary_backward};
static const ag_op_impl pow_op = {"pow", unary_forward, unary_backward};
static const ag_op_impl relu_op = {"relu", unary_forward, unary_backward};
static const ag_op_impl gelu_op = {"gelu", unary_forward, unary_backward};
static const ag_op_impl silu_op = {"silu", unary_forward, unary_backward};
static const ag_op_impl tanh_op = {"tanh", unary_forward, unary_backward};
static const ag_op_impl sigmoid_op = {"sigmoid", unary_forward, unary_backward};

void ag_cpu_register_elementwise(const ag_op_impl **ops) {
  ops[AG_OP_ADD] = &add_op;
  ops[AG_OP_SUB] = &sub_op;
  ops[AG_OP_MUL] = &mul_op;
  ops[AG_OP_DIV] = &div_op;
  ops[AG_OP_SCALE] = &scale_op;
  ops[AG_OP_ADD_SCALAR] = &add_scalar_op;
  ops[AG_OP_EXP] = &exp_op;
  ops[AG_OP_LOG] = &log_op;
  ops[AG_OP_SQRT] = &sqrt_op;
  ops[AG_OP_POW] = &pow_op;
  ops[AG_OP_RELU] = &relu_op;
  ops[AG_OP_GELU] = &gelu_op;
  ops[AG_OP_SILU] = &silu_op;
  ops[AG_OP_TANH] = &tanh_op;
  ops[AG_OP_SIGMOID] = &sigmoid_op;
}
