/* The autograd tape: records ops, owns intermediates in an arena, runs
 * backward in reverse order. */
#include "tensor/internal.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define TAPE_CHUNK_BYTES ((size_t)64 << 20)
#define TAPE_ERROR_MAX   1024

struct ag_tape {
  ag_arena *arena;
  ag_node **nodes; /* recorded ops in execution order; kept across resets */
  size_t n_nodes, cap_nodes;
  ag_status status;
  char error[TAPE_ERROR_MAX];
  bool grad_enabled;
  bool training;
  ag_rng rng;
  ag_layer_hook hook;
  void *hook_user;
};

ag_tape *ag_tape_create(void) {
  ag_tape *t = calloc(1, sizeof *t);
  if (!t) {
    ag_error_set(AG_ERR_NOMEM, "tape: out of memory");
    return NULL;
  }
  t->arena = ag_arena_create(TAPE_CHUNK_BYTES);
  if (!t->arena) {
    free(t);
    return NULL;
  }
  t->grad_enabled = true;
  t->training = true;
  ag_rng_seed(&t->rng, 0);
  return t;
}

void ag_tape_destroy(ag_tape *t) {
  if (!t) return;
  ag_arena_destroy(t->arena);
  free(t->nodes);
  free(t);
}

void ag_tape_reset(ag_tape *t) {
  ag_arena_reset(t->arena);
  t->n_nodes = 0;
  t->status = AG_OK;
  t->error[0] = '\0';
}

ag_status ag_tape_status(const ag_tape *t) { return t->status; }
const char *ag_tape_error(const ag_tape *t) { return t->error[0] ? t->error : "no error"; }

ag_tensor *ag_tape_fail(ag_tape *t, ag_status code, const char *fmt, ...) {
  if (t->status == AG_OK) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof t->error, fmt, ap);
    va_end(ap);
    t->status = code;
  }
  ag_error_set(t->status, "%s", t->error);
  return NULL;
}

void ag_tape_set_grad_enabled(ag_tape *t, bool enabled) { t->grad_enabled = enabled; }
bool ag_tape_grad_enabled(const ag_tape *t) { return t->grad_enabled; }
void ag_tape_set_training(ag_tape *t, bool training) { t->training = training; }
bool ag_tape_training(const ag_tape *t) { return t->training; }
ag_rng *ag_tape_rng(ag_tape *t) { return &t->rng; }
ag_arena *ag_tape_arena(ag_tape *t) { return t->arena; }
size_t ag_tape_node_count(const ag_tape *t) { return t->n_nodes; }
bool ag_tape_recording(const ag_tape *t) { return t->grad_enabled; }

void ag_tape_set_layer_hook(ag_tape *t, ag_layer_hook hook, void *user) {
  t->hook = hook;
  t->hook_user = user;
}

bool ag_tape_has_layer_hook(const ag_tape *t) { return t->hook != NULL; }

void ag_tape_fire_layer_hook(ag_tape *t, const ag_layer_event *event) {
  if (t->hook) t->hook(t->hook_user, event);
}

void *ag_tape_alloc(ag_tape *t, size_t bytes) {
  void *p = ag_arena_alloc(t->arena, bytes, 64);
  if (!p) ag_tape_fail(t, AG_ERR_NOMEM, "tape: out of memory allocating %zu bytes", bytes);
  return p;
}

bool ag_tape_ok(ag_tape *t, const ag_tensor *x) {
  if (t->status) return false;
  if (!x) {
    ag_tape_fail(t, AG_ERR_INVALID, "op given a NULL tensor");
    return false;
  }
  return true;
}

int ag_tape_dim(ag_tape *t, const char *op, const ag_tensor *x, int dim) {
  int d = dim < 0 ? dim + x->ndim : dim;
  if (d < 0 || d >= x->ndim) {
    char s[96];
    ag_tape_fail(t, AG_ERR_INVALID, "%s: dim %d out of range for shape %s", op, dim,
                 ag_shape_string(x, s, sizeof s));
    return -1;
  }
  return d;
}

static ag_tensor *new_tensor(ag_tape *t, int ndim, const int64_t *shape, bool alloc_data) {
  if (ndim < 0 || ndim > AG_MAX_DIMS)
    return ag_tape_fail(t, AG_ERR_INVALID, "tensor: %d dims (at most %d)", ndim, AG_MAX_DIMS);
  ag_tensor *x = ag_tape_alloc(t, sizeof *x);
  if (!x) return NULL;
  memset(x, 0, sizeof *x);
  ag_tensor_set_shape(x, ndim, shape);
  x->storage = AG_STORAGE_TAPE;
  if (alloc_data) {
    x->data = ag_tape_alloc(t, (size_t)(x->numel ? x->numel : 1) * sizeof(float));
    if (!x->data) return NULL;
  }
  return x;
}

ag_tensor *ag_tape_tensor(ag_tape *t, int ndim, const int64_t *shape) {
  return new_tensor(t, ndim, shape, true);
}

ag_tensor *ag_tape_zeros(ag_tape *t, int ndim, const int64_t *shape) {
  ag_tensor *x = new_tensor(t, ndim, shape, true);
  if (x) memset(x->data, 0, (size_t)x->numel * sizeof(float));
  return x;
}

ag_tensor *ag_tape_wrap(ag_tape *t, float *data, int ndim, const int64_t *shape) {
  ag_tensor *x = new_tensor(t, ndim, shape, false);
  if (!x) return NULL;
  x->data = data;
  x->storage = AG_STORAGE_WRAPPED;
  return x;
}

float *ag_tape_grad(ag_tape *t, ag_tensor *x) {
  if (x->grad) return x->grad;
  size_t bytes = (size_t)(x->numel ? x->numel : 1) * sizeof(float);
  if (x->storage == AG_STORAGE_HEAP) {
    x->grad = calloc(1, bytes); /* owned by the tensor: ag_tensor_destroy frees it */
    if (!x->grad) ag_tape_fail(t, AG_ERR_NOMEM, "tape: cannot allocate a gradient");
    return x->grad;
  }
  x->grad = ag_tape_alloc(t, bytes);
  if (x->grad) memset(x->grad, 0, bytes);
  return x->grad;
}

static ag_status push_node(ag_tape *t, ag_node *n) {
  if (t->n_nodes == t->cap_nodes) {
    size_t cap = t->cap_nodes ? 2 * t->cap_nodes : 256;
    ag_node **grown = realloc(t->nodes, cap * sizeof *grown);
    if (!grown) return AG_ERR_NOMEM;
    t->nodes = grown;
    t->cap_nodes = cap;
  }
  t->nodes[t->n_nodes++] = n;
  return AG_OK;
}

ag_tensor *ag_op_run(ag_tape *t, const ag_op_call *c) {
  if (t->status) return NULL;
  const ag_op_impl *impl = ag_backend_current()->ops[c->op];
  if (!impl || (!impl->forward && !c->view_data))
    return ag_tape_fail(t, AG_ERR_UNSUPPORTED, "op %d has no implementation in backend %s",
                        (int)c->op, ag_backend_current()->name);
  bool view = c->view_data != NULL;
  ag_tensor *out = new_tensor(t, c->out_ndim, c->out_shape, !view);
  ag_node *n = ag_tape_alloc(t, sizeof *n);
  if (!out || !n) return NULL;
  memset(n, 0, sizeof *n);
  n->op = c->op;
  n->out = out;
  n->n_in = c->n_in;
  bool needs_grad = false;
  for (int i = 0; i < c->n_in; i++) {
    n->in[i] = c->in[i];
    if (c->in[i] && c->in[i]->requires_grad) needs_grad = true;
  }
  for (int i = 0; i < c->n_many; i++)
    if (c->many[i]->requires_grad) needs_grad = true;
  memcpy(n->iarg, c->iarg, sizeof n->iarg);
  memcpy(n->farg, c->farg, sizeof n->farg);
  n->aux = c->aux;
  n->aux2 = c->aux2;
  n->many = c->many;
  n->n_many = c->n_many;
  if (view) {
    out->data = c->view_data;
    for (int d = 0; d < c->out_ndim; d++) {
      out->stride[d] = c->view_stride[d];
      n->grad_stride[d] = c->grad_stride[d];
    }
    n->grad_offset = c->grad_offset;
  } else {
    ag_status st = impl->forward(t, n);
    if (st) {
      if (t->status == AG_OK) ag_tape_fail(t, st, "%s: %s", impl->name, ag_error_message());
      return NULL;
    }
  }
  if (needs_grad && t->grad_enabled) {
    out->requires_grad = true;
    out->node = n;
    if (push_node(t, n)) return ag_tape_fail(t, AG_ERR_NOMEM, "tape: out of memory");
  }
  return out;
}

static ag_status run_backward(ag_tape *t, ag_tensor *out, const float *seed) {
  if (t->status) return ag_error_set(t->status, "%s", t->error);
  if (!out) return ag_error_set(AG_ERR_INVALID, "backward: NULL output");
  if (!out->requires_grad)
    return ag_error_set(AG_ERR_INVALID, "backward: the output does not depend on any tensor "
                                        "that requires grad");
  /* Fresh intermediate grads so a second backward over the same graph does
   * not add to the first one's. */
  for (size_t i = 0; i < t->n_nodes; i++) t->nodes[i]->out->grad = NULL;
  float *g = ag_tape_grad(t, out);
  if (!g) return t->status;
  for (int64_t i = 0; i < out->numel; i++) g[i] += seed ? seed[i] : 1.0f;
  const ag_backend *be = ag_backend_current();
  for (size_t i = t->n_nodes; i-- > 0;) {
    ag_node *n = t->nodes[i];
    if (!n->out->grad) continue; /* nothing flowed into this op */
    const ag_op_impl *impl = be->ops[n->op];
    if (!impl || !impl->backward)
      return ag_error_set(AG_ERR_UNSUPPORTED, "backward: op %s has no backward",
                          impl ? impl->name : "?");
    ag_status st = impl->backward(t, n);
    if (st) return ag_error_wrap(st, "backward of %s", impl->name);
    if (t->status) return ag_error_set(t->status, "%s", t->error);
  }
  return AG_OK;
}

ag_status ag_backward(ag_tape *t, ag_tensor *loss) {
  if (loss && loss->numel != 1) {
    char s[96];
    return ag_error_set(AG_ERR_SHAPE, "backward: loss must be a scalar, got shape %s",
                        ag_shape_string(loss, s, sizeof s));
  }
  return run_backward(t, loss, NULL);
}

ag_status ag_backward_with(ag_tape *t, ag_tensor *out, const float *seed) {
  return run_backward(t, out, seed);
}

/* ---- per-example gradients from layer hooks ------------------------------ */

typedef struct per_example {
  ag_params *params;
  int64_t examples;
  float *out;
  int64_t covered;
  ag_status status;
} per_example;

static void per_example_hook(void *user, const ag_layer_event *ev) {
  per_example *pe = user;
  int64_t woff = ag_params_offset(pe->params, ev->weight);
  int64_t boff = ev->bias ? ag_params_offset(pe->params, ev->bias) : -1;
  if (woff < 0) return; /* a weight outside this store */
  if (ev->examples != pe->examples) {
    pe->status = ag_error_set(AG_ERR_SHAPE,
                              "per-example grads: layer saw %lld examples, "
                              "expected %lld",
                              (long long)ev->examples, (long long)pe->examples);
    return;
  }
  int64_t rows = ev->rows_per_example, in = ev->in_features, out = ev->out_features;
  for (int64_t e = 0; e < ev->examples; e++) {
    const float *A = ev->A + e * rows * in;
    const float *G = ev->G + e * rows * out;
    float *row = pe->out + e * pe->params->total;
    /* dW (out, in) += G_e^T (out, rows) @ A_e (rows, in) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)rows, 1.0f, G,
                (int)out, A, (int)in, 1.0f, row + woff, (int)in);
    if (boff >= 0) {
      float *db = row + boff;
      for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) db[o] += G[r * out + o];
    }
  }
  pe->covered += out * in + (boff >= 0 ? out : 0);
}

ag_status ag_per_example_grads(ag_tape *t, ag_tensor *loss, ag_params *params, int64_t examples,
                               float *out, int64_t *covered) {
  if (examples <= 0) return ag_error_set(AG_ERR_INVALID, "per-example grads: examples <= 0");
  memset(out, 0, (size_t)(examples * params->total) * sizeof(float));
  float *saved = malloc((size_t)(params->total ? params->total : 1) * sizeof(float));
  if (!saved) return ag_error_set(AG_ERR_NOMEM, "per-example grads: out of memory");
  memcpy(saved, params->grad, (size_t)params->total * sizeof(float));
  per_example pe = {params, examples, out, 0, AG_OK};
  ag_layer_hook old_hook = t->hook;
  void *old_user = t->hook_user;
  ag_tape_set_layer_hook(t, per_example_hook, &pe);
  ag_status st = ag_backward(t, loss);
  ag_tape_set_layer_hook(t, old_hook, old_user);
  memcpy(params->grad, saved, (size_t)params->total * sizeof(float));
  free(saved);
  if (st) return st;
  if (pe.status) return pe.status;
  if (covered) *covered = pe.covered;
  return AG_OK;
}
