/* agora ops: each records itself on the tape (when grad is enabled and an
 * input requires grad) and has a backward. All take the tape first, return
 * a new tensor owned by the tape, or NULL on error (see agora/tensor.h:
 * errors are sticky). Dimensions may be negative (counted from the end).
 * Shape mismatches name the op and both shapes. */
#ifndef AGORA_OPS_H
#define AGORA_OPS_H

#include "agora/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- views and copies (src/tensor/ops_shape.c) ---------------------------- */
ag_tensor *ag_reshape(ag_tape *t, ag_tensor *x, int ndim,
                      const int64_t *shape);                           /* one -1 allowed */
ag_tensor *ag_transpose(ag_tape *t, ag_tensor *x, int dim0, int dim1); /* a view */
ag_tensor *ag_permute(ag_tape *t, ag_tensor *x, const int *dims);      /* a view */
ag_tensor *ag_slice(ag_tape *t, ag_tensor *x, int dim, int64_t start, int64_t end); /* a view */
ag_tensor *ag_contiguous(ag_tape *t, ag_tensor *x); /* x itself if already contiguous */
ag_tensor *ag_concat(ag_tape *t, ag_tensor *const *xs, int count, int dim);
ag_tensor *ag_stop_gradient(ag_tape *t, ag_tensor *x); /* same values, no gradient flows */

/* ---- elementwise with broadcasting (src/tensor/ops_elementwise.c) --------- */
ag_tensor *ag_add(ag_tape *t, ag_tensor *a, ag_tensor *b);
ag_tensor *ag_sub(ag_tape *t, ag_tensor *a, ag_tensor *b);
ag_tensor *ag_mul(ag_tape *t, ag_tensor *a, ag_tensor *b);
ag_tensor *ag_div(ag_tape *t, ag_tensor *a, ag_tensor *b);
ag_tensor *ag_scale(ag_tape *t, ag_tensor *x, float s);      /* s * x */
ag_tensor *ag_add_scalar(ag_tape *t, ag_tensor *x, float s); /* x + s */
ag_tensor *ag_exp(ag_tape *t, ag_tensor *x);
ag_tensor *ag_log(ag_tape *t, ag_tensor *x);
ag_tensor *ag_sqrt(ag_tape *t, ag_tensor *x);
ag_tensor *ag_pow(ag_tape *t, ag_tensor *x, float p);
ag_tensor *ag_relu(ag_tape *t, ag_tensor *x);
ag_tensor *ag_gelu(ag_tape *t, ag_tensor *x); /* tanh approximation, as GPT-2 */
ag_tensor *ag_silu(ag_tape *t, ag_tensor *x);
ag_tensor *ag_tanh(ag_tape *t, ag_tensor *x);
ag_tensor *ag_sigmoid(ag_tape *t, ag_tensor *x);

/* ---- reductions (src/tensor/ops_reduce.c) --------------------------------- */
#define AG_ALL_DIMS 127
/* Over one dim, or over every element with AG_ALL_DIMS (result shape (1),
 * or all-ones with keepdim). */
ag_tensor *ag_sum(ag_tape *t, ag_tensor *x, int dim, bool keepdim);
ag_tensor *ag_mean(ag_tape *t, ag_tensor *x, int dim, bool keepdim);
ag_tensor *ag_max(ag_tape *t, ag_tensor *x, int dim, bool keepdim); /* grad to the first argmax */

/* ---- matrix products (src/tensor/ops_matmul.c) ---------------------------- */
/* a (..., M, K) @ b (..., K, N): 2-D, or batched with equal leading dims, or
 * b 2-D shared by every batch entry. OpenBLAS sgemm underneath. */
ag_tensor *ag_matmul(ag_tape *t, ag_tensor *a, ag_tensor *b);
/* x (..., in) W^T + b: W (out, in), bias (out) or NULL. Fires layer hooks. */
ag_tensor *ag_linear(ag_tape *t, ag_tensor *x, ag_tensor *weight, ag_tensor *bias);

/* ---- neural-net ops (src/tensor/ops_nn.c) --------------------------------- */
ag_tensor *ag_softmax(ag_tape *t, ag_tensor *x, int dim);
ag_tensor *ag_log_softmax(ag_tape *t, ag_tensor *x, int dim);
/* logits (N, C) against integer targets (N). Targets equal to ignore_index
 * contribute nothing; weights (N) or NULL scale each row's loss (loss
 * masks). Returns the scalar sum(w_i * nll_i) / sum(w_i) over rows not
 * ignored (0 when none counts); with sum_reduction the division is skipped. */
ag_tensor *ag_cross_entropy(ag_tape *t, ag_tensor *logits, const int32_t *targets,
                            const float *weights, int32_t ignore_index, bool sum_reduction);
/* Rows of table (V, D) for ids of shape ids_shape: result ids_shape + (D). */
ag_tensor *ag_embedding(ag_tape *t, ag_tensor *table, const int32_t *ids, int ids_ndim,
                        const int64_t *ids_shape);
/* Over the last dim; gamma/beta (D) or NULL. */
ag_tensor *ag_layernorm(ag_tape *t, ag_tensor *x, ag_tensor *gamma, ag_tensor *beta, float eps);
ag_tensor *ag_rmsnorm(ag_tape *t, ag_tensor *x, ag_tensor *gamma, float eps);
/* x (N, C, ...) in `groups` groups of channels; gamma/beta (C) or NULL.
 * Statistics per example, so examples stay independent (per-example grads). */
ag_tensor *ag_groupnorm(ag_tape *t, ag_tensor *x, int groups, ag_tensor *gamma, ag_tensor *beta,
                        float eps);
/* Inverted dropout with the tape's RNG; identity when not training or p = 0. */
ag_tensor *ag_dropout(ag_tape *t, ag_tensor *x, float p);

/* ---- convolution and pooling (src/tensor/ops_conv.c) ---------------------- */
/* x (N, C, H, W), weight (O, C, kh, kw), bias (O) or NULL; im2col + sgemm.
 * Fires layer hooks. */
ag_tensor *ag_conv2d(ag_tape *t, ag_tensor *x, ag_tensor *weight, ag_tensor *bias, int stride,
                     int padding);
ag_tensor *ag_maxpool2d(ag_tape *t, ag_tensor *x, int kernel, int stride, int padding);
/* Padding counts in the divisor (PyTorch's count_include_pad=True). */
ag_tensor *ag_avgpool2d(ag_tape *t, ag_tensor *x, int kernel, int stride, int padding);

/* ---- transformer attention (src/tensor/ops_attention.c) -------------------- */
/* Rotary position embeddings as Hugging Face computes them: frequencies
 * theta^(-2i/D) for i < D/2, rescaled as config.json's rope_scaling says. */
typedef enum ag_rope_scaling {
  AG_ROPE_DEFAULT = 0, /* none */
  AG_ROPE_LINEAR,      /* positions divided by factor */
  AG_ROPE_DYNAMIC,     /* NTK-aware base growth beyond original_max_positions */
  AG_ROPE_LLAMA3       /* Llama 3.1 frequency bands */
} ag_rope_scaling;
typedef struct ag_rope_config {
  float theta; /* rope_theta: 10000 (Llama 2), 500000 (Llama 3), 1e6 (Qwen2) */
  ag_rope_scaling scaling;
  float factor;                   /* linear, dynamic, llama3 */
  float low_freq_factor;          /* llama3 */
  float high_freq_factor;         /* llama3 */
  int64_t original_max_positions; /* llama3, dynamic: the unscaled context */
} ag_rope_config;
/* inv_freq (head_dim/2) for sequences of seq_len tokens (seq_len matters for
 * dynamic scaling only). */
ag_status ag_rope_inv_freq(const ag_rope_config *c, int64_t head_dim, int64_t seq_len,
                           float *inv_freq);
/* A (count, head_dim) table on the tape for tokens at `positions`: row i is
 * cos(positions[i] * inv_freq) then sin(...). Not an op (no gradient). */
ag_tensor *ag_rope_table(ag_tape *t, const float *inv_freq, int64_t head_dim,
                         const int32_t *positions, int64_t count);
/* x (B, T, H, D) rotated in the rotate-half layout: pairs (i, i + D/2) of
 * token (b, t) turn by the angles of its table row. table is (B*T, D), one
 * row per token, or (T, D) shared by the batch. The table gets no gradient. */
ag_tensor *ag_rope(ag_tape *t, ag_tensor *x, ag_tensor *table);

/* Which keys each query row may see, per sequence b: query row i sits at key
 * index query_start[b] + i and sees keys j with key_start[b] <= j < key_end[b]
 * and j <= query_start[b] + i. NULL arrays (or spans NULL) mean
 * query_start = S - T (the new tokens are the last T keys: a KV cache),
 * key_start = 0 (key_start > 0 masks left padding), key_end = S (key_end < S
 * masks right padding). A row that sees no key gives zeros. */
typedef struct ag_attention_spans {
  const int32_t *query_start; /* (B) */
  const int32_t *key_start;   /* (B) */
  const int32_t *key_end;     /* (B) */
} ag_attention_spans;
/* Causal softmax(q k^T / sqrt(D)) v, fused: q (B, Hq, T, D), k and v
 * (B, Hkv, S, D) with Hq a multiple of Hkv (grouped-query attention: query
 * head h reads key/value head h / (Hq / Hkv)). Strided views are read in
 * place (last dim unit stride). Result (B, Hq, T, D). Keeps only a
 * log-sum-exp per query row for backward (no (T, S) matrix). */
ag_tensor *ag_attention(ag_tape *t, ag_tensor *q, ag_tensor *k, ag_tensor *v,
                        const ag_attention_spans *spans);

#ifdef __cplusplus
}
#endif
#endif
