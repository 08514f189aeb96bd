/* agora tensor layer: float32 n-d tensors, a reverse-mode autograd tape,
 * parameter stores. Ops are declared in agora/ops.h. */
#ifndef AGORA_TENSOR_H
#define AGORA_TENSOR_H

#include "agora/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_MAX_DIMS 6

typedef struct ag_node ag_node;
typedef struct ag_tape ag_tape;

/* A float32 tensor. `data` points at element [0,...,0]; element i of dim d
 * is `stride[d]` floats away (views share data with their base). `grad`,
 * when present, is a contiguous buffer of `numel` floats in row-major order
 * of `shape`, whatever the strides of `data`. */
typedef struct ag_tensor {
  float *data;
  int ndim;
  int64_t shape[AG_MAX_DIMS];
  int64_t stride[AG_MAX_DIMS];
  int64_t numel;
  float *grad;
  bool requires_grad;
  ag_node *node;    /* the op that produced it; NULL for leaves */
  const char *name; /* optional, for messages and safetensors */
  int storage;      /* ag_storage: who owns data and grad */
} ag_tensor;

typedef enum ag_storage {
  AG_STORAGE_HEAP = 0, /* ag_tensor_create: freed by ag_tensor_destroy */
  AG_STORAGE_TAPE,     /* intermediates in a tape's arena */
  AG_STORAGE_PARAMS,   /* carved from an ag_params store */
  AG_STORAGE_WRAPPED   /* caller memory wrapped for a tape's lifetime */
} ag_storage;

/* ---- tensor helpers (no tape involved) --------------------------------- */

bool ag_tensor_is_contiguous(const ag_tensor *t);
/* Sets shape and row-major strides; does not touch data. */
void ag_tensor_set_shape(ag_tensor *t, int ndim, const int64_t *shape);
/* "(2, 3, 4)" into buf; returns buf. */
char *ag_shape_string(const ag_tensor *t, char *buf, size_t size);
/* Element at a flat row-major index, honouring strides. */
float ag_tensor_get(const ag_tensor *t, int64_t flat_index);
/* Copies (honouring strides) into dst, a contiguous buffer of numel floats. */
void ag_tensor_copy_to(const ag_tensor *t, float *dst);
bool ag_shapes_equal(const ag_tensor *a, const ag_tensor *b);

/* Heap tensors owned by the caller (inputs, buffers, test fixtures).
 * Contiguous, zero-filled. ag_tensor_destroy frees data and grad too. */
ag_status ag_tensor_create(int ndim, const int64_t *shape, ag_tensor **out);
void ag_tensor_destroy(ag_tensor *t);

/* ---- parameter store --------------------------------------------------- */

/* A model's parameters live in one allocation carved into named tensors (and
 * their gradients in another), so zeroing, saving, clipping or all-reducing
 * them is one loop over a flat array. */
typedef struct ag_params {
  int count;
  ag_tensor **tensors; /* count entries, in the order added */
  float *data;         /* total floats */
  float *grad;         /* total floats */
  int64_t total;
  bool finalized;
  int capacity;
} ag_params;

ag_params *ag_params_create(void);
void ag_params_destroy(ag_params *p);
/* Declares a parameter; its memory exists after ag_params_finalize. The
 * returned pointer stays valid for the store's lifetime. Names are copied. */
ag_tensor *ag_params_add(ag_params *p, const char *name, int ndim, const int64_t *shape);
ag_status ag_params_finalize(ag_params *p);
ag_tensor *ag_params_find(const ag_params *p, const char *name);
void ag_params_zero_grad(ag_params *p);
/* Offset of a parameter's first float inside p->data / p->grad. */
int64_t ag_params_offset(const ag_params *p, const ag_tensor *t);

/* ---- the tape ------------------------------------------------------------ */

/* A tape records the ops of one forward pass and owns every intermediate
 * tensor in an arena; ag_backward walks it in reverse. ag_tape_reset drops
 * all intermediates and keeps the memory for the next step.
 *
 * Errors are sticky: an op that fails returns NULL and records the message;
 * an op given NULL returns NULL. Check the final result (or
 * ag_tape_status) once instead of after every op. */
ag_tape *ag_tape_create(void);
void ag_tape_destroy(ag_tape *t);
void ag_tape_reset(ag_tape *t);
ag_status ag_tape_status(const ag_tape *t);
const char *ag_tape_error(const ag_tape *t);
/* Records a failure on the tape (used by ops) and returns NULL. */
ag_tensor *ag_tape_fail(ag_tape *t, ag_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* With grad disabled (evaluation) ops record nothing. Default: enabled. */
void ag_tape_set_grad_enabled(ag_tape *t, bool enabled);
bool ag_tape_grad_enabled(const ag_tape *t);
/* Training mode turns dropout on. Default: training. */
void ag_tape_set_training(ag_tape *t, bool training);
bool ag_tape_training(const ag_tape *t);
/* The RNG used by stochastic ops (dropout). */
ag_rng *ag_tape_rng(ag_tape *t);
ag_arena *ag_tape_arena(ag_tape *t);
size_t ag_tape_node_count(const ag_tape *t);

/* A new contiguous tensor in the tape's arena (data uninitialised). */
ag_tensor *ag_tape_tensor(ag_tape *t, int ndim, const int64_t *shape);
ag_tensor *ag_tape_zeros(ag_tape *t, int ndim, const int64_t *shape);
/* Wraps caller memory as a leaf (no copy, no grad) for the tape's lifetime. */
ag_tensor *ag_tape_wrap(ag_tape *t, float *data, int ndim, const int64_t *shape);
/* The gradient buffer of x, zero-filled on first use (arena memory for
 * intermediates; leaves must own one: ag_params or ag_tensor_create). */
float *ag_tape_grad(ag_tape *t, ag_tensor *x);

/* Back-propagates from a scalar `loss` (seeded with d loss = 1), accumulating
 * into .grad of every tensor that requires grad. Parameter grads accumulate
 * across calls until zeroed (gradient accumulation). */
ag_status ag_backward(ag_tape *t, ag_tensor *loss);
/* The same with an explicit seed gradient of loss->numel floats. */
ag_status ag_backward_with(ag_tape *t, ag_tensor *out, const float *seed);

/* ---- layer hooks (influence functions, per-example gradients) ------------ */

/* During backward, every linear and conv2d op reports its input activations
 * A and output gradients G as row matrices: the weight gradient is G^T A.
 *   linear: A = x reshaped (rows, in), G = dy reshaped (rows, out)
 *   conv2d: A = im2col patches (rows, C*kh*kw), G = (rows, O), rows = N*OH*OW
 * Rows are grouped by example: rows_per_example rows for each of `examples`.
 * has_bias says whether the op has a bias (its gradient is the column sums of
 * G). The buffers are only valid during the call. */
typedef enum ag_layer_kind { AG_LAYER_LINEAR = 0, AG_LAYER_CONV2D = 1 } ag_layer_kind;
typedef struct ag_layer_event {
  ag_layer_kind kind;
  const ag_tensor *weight; /* linear (out, in); conv (O, C, kh, kw) */
  const ag_tensor *bias;   /* NULL when none */
  const float *A;          /* (rows, in_features) */
  const float *G;          /* (rows, out_features) */
  int64_t rows, in_features, out_features;
  int64_t examples, rows_per_example;
} ag_layer_event;
typedef void (*ag_layer_hook)(void *user, const ag_layer_event *event);
void ag_tape_set_layer_hook(ag_tape *t, ag_layer_hook hook, void *user);

/* Per-example gradients of every linear/conv parameter in `params` for the
 * batch whose loss is `loss`: out is (examples, params->total) floats laid
 * out like params->grad. The loss must be a sum over examples (a mean gives
 * gradients scaled by 1/examples). Parameters that are not weights or biases
 * of linear/conv ops are left at zero; *covered says how many floats of each
 * row were filled. Does not touch params->grad. */
ag_status ag_per_example_grads(ag_tape *t, ag_tensor *loss, ag_params *params, int64_t examples,
                               float *out, int64_t *covered);

#ifdef __cplusplus
}
#endif
#endif
