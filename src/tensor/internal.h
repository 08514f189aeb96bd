/* Internal to the tensor layer: tape nodes and the op table between the graph
 * (ops.h) and the kernels. Code outside src/tensor must not include this. */
#ifndef AGORA_TENSOR_INTERNAL_H
#define AGORA_TENSOR_INTERNAL_H

#include "agora/ops.h"
#include "agora/tensor.h"

/* Every op the graph knows. A backend supplies an implementation for each. */
typedef enum ag_op_id {
  AG_OP_NONE = 0,
  /* ops_shape.c */
  AG_OP_RESHAPE,
  AG_OP_VIEW, /* transpose, permute, slice */
  AG_OP_CONTIGUOUS,
  AG_OP_CONCAT,
  AG_OP_STOP_GRADIENT,
  /* ops_elementwise.c */
  AG_OP_ADD,
  AG_OP_SUB,
  AG_OP_MUL,
  AG_OP_DIV,
  AG_OP_SCALE,
  AG_OP_ADD_SCALAR,
  AG_OP_EXP,
  AG_OP_LOG,
  AG_OP_SQRT,
  AG_OP_POW,
  AG_OP_RELU,
  AG_OP_GELU,
  AG_OP_SILU,
  AG_OP_TANH,
  AG_OP_SIGMOID,
  /* ops_reduce.c */
  AG_OP_SUM,
  AG_OP_MEAN,
  AG_OP_MAX,
  /* ops_matmul.c */
  AG_OP_MATMUL,
  AG_OP_LINEAR,
  /* ops_nn.c */
  AG_OP_SOFTMAX,
  AG_OP_LOG_SOFTMAX,
  AG_OP_CROSS_ENTROPY,
  AG_OP_EMBEDDING,
  AG_OP_LAYERNORM,
  AG_OP_RMSNORM,
  AG_OP_GROUPNORM,
  AG_OP_DROPOUT,
  /* ops_conv.c */
  AG_OP_CONV2D,
  AG_OP_MAXPOOL2D,
  AG_OP_AVGPOOL2D,
  /* ops_attention.c */
  AG_OP_ROPE,
  AG_OP_ATTENTION,
  AG_OP_COUNT
} ag_op_id;

#define AG_NODE_MAX_INPUTS 4
#define AG_NODE_MAX_ARGS   8

/* One recorded op. Ops keep what their backward needs in `saved` (arena
 * memory) and small arguments in iarg/farg. */
struct ag_node {
  ag_op_id op;
  ag_tensor *out;
  ag_tensor *in[AG_NODE_MAX_INPUTS];
  int n_in;
  int64_t iarg[AG_NODE_MAX_ARGS];
  float farg[AG_NODE_MAX_ARGS];
  void *saved;     /* op-specific (indices, statistics, im2col, ...) */
  const void *aux; /* op-specific read-only input copied to the arena (ids, targets) */
  const void *aux2;
  ag_tensor **many; /* concat inputs */
  int n_many;
  /* Views: where each output element sits in the input's row-major grad. */
  int64_t grad_stride[AG_MAX_DIMS];
  int64_t grad_offset;
};

/* An implementation of one op. forward fills node->out (already allocated
 * with its shape) from node->in; backward reads node->out->grad and
 * accumulates into the grads of inputs that require them (use
 * ag_tape_grad to get a zero-filled buffer). */
typedef ag_status (*ag_forward_fn)(ag_tape *t, ag_node *n);
typedef ag_status (*ag_backward_fn)(ag_tape *t, ag_node *n);
typedef struct ag_op_impl {
  const char *name;
  ag_forward_fn forward;
  ag_backward_fn backward;
} ag_op_impl;

/* A backend: one implementation per op id (src/tensor/backend.c). */
typedef struct ag_backend {
  const char *name;
  const ag_op_impl *ops[AG_OP_COUNT];
} ag_backend;
const ag_backend *ag_backend_current(void);

/* Each op file fills the CPU table entries for its ops. */
void ag_cpu_register_shape(const ag_op_impl **ops);
void ag_cpu_register_elementwise(const ag_op_impl **ops);
void ag_cpu_register_reduce(const ag_op_impl **ops);
void ag_cpu_register_matmul(const ag_op_impl **ops);
void ag_cpu_register_nn(const ag_op_impl **ops);
void ag_cpu_register_conv(const ag_op_impl **ops);
void ag_cpu_register_attention(const ag_op_impl **ops);

/* ---- helpers for op files (src/tensor/tape.c) ----------------------------- */

/* Creates the output tensor and the node (kept on the tape only when
 * recording); then runs the backend's forward. Returns the output or NULL
 * (error recorded on tape). Absent optional inputs (bias) are NULL. */
typedef struct ag_op_call {
  ag_op_id op;
  ag_tensor *in[AG_NODE_MAX_INPUTS];
  int n_in;
  int out_ndim;
  int64_t out_shape[AG_MAX_DIMS];
  int64_t iarg[AG_NODE_MAX_ARGS];
  float farg[AG_NODE_MAX_ARGS];
  const void *aux;
  const void *aux2;
  ag_tensor **many;
  int n_many;
  /* A view: the output aliases view_data with view_stride; no forward runs;
   * backward scatters through grad_stride/grad_offset (see ag_node). */
  float *view_data;
  const int64_t *view_stride;
  const int64_t *grad_stride;
  int64_t grad_offset;
} ag_op_call;
ag_tensor *ag_op_run(ag_tape *t, const ag_op_call *call);

/* True when any input needs a gradient and the tape records. */
bool ag_tape_recording(const ag_tape *t);
/* Records the layer event to the hook, if any. */
void ag_tape_fire_layer_hook(ag_tape *t, const ag_layer_event *event);
/* Whether a hook is set: ops that build the event's matrices only for the
 * hook skip that work otherwise. */
bool ag_tape_has_layer_hook(const ag_tape *t);
/* Arena allocation that records NOMEM on the tape. */
void *ag_tape_alloc(ag_tape *t, size_t bytes);
/* Normalises a possibly negative dim; -1 (with an error on tape) if bad. */
int ag_tape_dim(ag_tape *t, const char *op, const ag_tensor *x, int dim);
/* Checks the input is non-NULL and the tape is healthy. */
bool ag_tape_ok(ag_tape *t, const ag_tensor *x);

/* Broadcasting: the result shape of a and b, or an error naming both. */
ag_status ag_broadcast_shape(const ag_tensor *a, const ag_tensor *b, int *ndim, int64_t *shape);
/* Sums grad (contiguous, shape out) down into dst (contiguous, shape of x,
 * which broadcasts to out). dst is accumulated (+=). */
void ag_reduce_broadcast_grad(const float *grad, int out_ndim, const int64_t *out_shape,
                              const ag_tensor *x, float *dst);
/* Strides of x aligned to an out shape (0 where x broadcasts). */
void ag_broadcast_strides(const ag_tensor *x, int out_ndim, const int64_t *out_shape,
                          int64_t *stride);

#endif
