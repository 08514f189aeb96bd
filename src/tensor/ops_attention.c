/* Transformer attention ops: rotary position embeddings (RoPE, Hugging Face's
 * rotate-half layout) and fused causal scaled-dot-product attention with
 * grouped-query heads, per-sequence key spans and a query offset (KV cache).
 *
 * Attention never materialises the (T, S) score matrix of a head: forward
 * walks key blocks with an online softmax (FlashAttention) and saves only the
 * log-sum-exp of each query row; backward recomputes each block's
 * probabilities from it. Blocks are products of sgemm; OpenMP splits the
 * work over (batch, key/value head[, query block]). */
#include "tensor/internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Rows of queries and keys per block: a 64x64 score block and a 64-row slice
 * of Q, K, V (head_dim up to 256) stay in a core's L2 cache. */
#define QUERY_BLOCK 64
#define KEY_BLOCK   64
/* Below this many multiply-adds the work runs on one thread: a parallel
 * region costs microseconds (a decoding step of a tiny model is that small). */
#define PARALLEL_MIN_FLOPS    (1 << 18)
#define PARALLEL_MIN_ELEMENTS 32768
#define TWO_PI                6.283185307179586

static int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max_i64(int64_t a, int64_t b) { return a > b ? a : b; }

/* exp(x) that vectorises (no libm call): Cephes' expf polynomial, the same
 * method as ops_nn.c. Relative error about 2 ulp; x < -87.3 (and -inf) gives 0. */
static inline float fast_exp(float x) {
  const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  const uint32_t round_magic_bits = 0x4B400000u;
  float xc = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
  float k = xc * 1.44269504f + round_magic;
  float n = k - round_magic;
  float r = xc - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t kbits;
  memcpy(&kbits, &k, sizeof kbits);
  uint32_t scale_bits = (kbits - round_magic_bits + 127u) << 23;
  float scale;
  memcpy(&scale, &scale_bits, sizeof scale);
  return x < -87.3f ? 0.0f : p * scale;
}

/* C (M, N) = alpha op(A) (M, K) @ op(B) (K, N) + beta C, row-major. */
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* ---- rotary embeddings: frequencies and tables ------------------------------------ */

ag_status ag_rope_inv_freq(const ag_rope_config *c, int64_t head_dim, int64_t seq_len,
                           float *inv_freq) {
  if (!c || !inv_freq) return ag_error_set(AG_ERR_INVALID, "rope: NULL argument");
  if (head_dim <= 0 || head_dim % 2)
    return ag_error_set(AG_ERR_INVALID, "rope: head_dim %lld must be positive and even",
                        (long long)head_dim);
  if (!(c->theta > 0))
    return ag_error_set(AG_ERR_INVALID, "rope: rope_theta %g must be positive", (double)c->theta);
  bool scaled = c->scaling != AG_ROPE_DEFAULT;
  if (scaled && !(c->factor > 0))
    return ag_error_set(AG_ERR_INVALID, "rope: rope_scaling factor %g must be positive",
                        (double)c->factor);
  double base = c->theta;
  if (c->scaling == AG_ROPE_DYNAMIC && c->original_max_positions > 0 &&
      seq_len > c->original_max_positions) {
    /* NTK-aware: stretch the base once the sequence outgrows the trained
     * context (transformers' _compute_dynamic_ntk_parameters). */
    double ratio = (double)c->factor * (double)seq_len / (double)c->original_max_positions;
    base *= pow(ratio - (c->factor - 1.0), (double)head_dim / (double)(head_dim - 2));
  }
  int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; i++) {
    /* float32 like transformers: 1 / base^(2i/d) */
    float f = (float)(1.0 / pow(base, (double)(2 * i) / (double)head_dim));
    if (c->scaling == AG_ROPE_LINEAR) f /= c->factor;
    inv_freq[i] = f;
  }
  if (c->scaling == AG_ROPE_LLAMA3) {
    /* Llama 3.1: long wavelengths slowed by `factor`, short ones kept, a
     * smooth blend in between (transformers' _compute_llama3_parameters). */
    if (!(c->low_freq_factor > 0) || !(c->high_freq_factor > c->low_freq_factor) ||
        c->original_max_positions <= 0)
      return ag_error_set(AG_ERR_INVALID,
                          "rope: llama3 scaling needs 0 < low_freq_factor (%g) < "
                          "high_freq_factor (%g) and original_max_position_embeddings > 0 (%lld)",
                          (double)c->low_freq_factor, (double)c->high_freq_factor,
                          (long long)c->original_max_positions);
    double old_len = (double)c->original_max_positions;
    double low_wavelen = old_len / c->low_freq_factor, high_wavelen = old_len / c->high_freq_factor;
    for (int64_t i = 0; i < half; i++) {
      double f = inv_freq[i], wavelen = TWO_PI / f;
      if (wavelen > low_wavelen) {
        f /= c->factor;
      } else if (wavelen >= high_wavelen) {
        double smooth =
            (old_len / wavelen - c->low_freq_factor) / (c->high_freq_factor - c->low_freq_factor);
        f = (1.0 - smooth) * f / c->factor + smooth * f;
      }
      inv_freq[i] = (float)f;
    }
  }
  return AG_OK;
}

ag_tensor *ag_rope_table(ag_tape *t, const float *inv_freq, int64_t head_dim,
                         const int32_t *positions, int64_t count) {
  if (ag_tape_status(t)) return NULL;
  if (head_dim <= 0 || head_dim % 2 || count < 0 || !inv_freq || (count > 0 && !positions))
    return ag_tape_fail(t, AG_ERR_INVALID, "rope_table: bad arguments (head_dim %lld, count %lld)",
                        (long long)head_dim, (long long)count);
  ag_tensor *table = ag_tape_tensor(t, 2, (int64_t[]){count, head_dim}); /* (count, D) */
  if (!table) return NULL;
  int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static) if (count * half >= PARALLEL_MIN_ELEMENTS)
  for (int64_t i = 0; i < count; i++) {
    float *row = table->data + i * head_dim;
    for (int64_t j = 0; j < half; j++) {
      float angle = (float)positions[i] * inv_freq[j]; /* a float32 product, as transformers */
      row[j] = (float)cos((double)angle);
      row[half + j] = (float)sin((double)angle);
    }
  }
  return table;
}

/* ---- rope: x (B, T, H, D) rotated pairwise (i, i + D/2) -------------------------- */

/* The table row of token (b, t): tables hold one row per token or one per
 * time step shared by the batch. */
static const float *rope_row(const ag_tensor *table, int64_t T, int64_t b, int64_t tt) {
  int64_t row = table->shape[0] == T ? tt : b * T + tt;
  return table->data + row * table->shape[1];
}

static ag_status rope_forward(ag_tape *t, ag_node *n) {
  const ag_tensor *x = n->in[0], *table = n->in[1];
  int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3], half = D / 2;
#pragma omp parallel for schedule(static) if (x->numel >= PARALLEL_MIN_ELEMENTS)
  for (int64_t bt = 0; bt < B * T; bt++) {
    const float *c = rope_row(table, T, bt / T, bt % T), *s = c + half;
    for (int64_t h = 0; h < H; h++) {
      const float *xi = x->data + (bt * H + h) * D;
      float *yi = n->out->data + (bt * H + h) * D;
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        float x0 = xi[i], x1 = xi[i + half];
        yi[i] = x0 * c[i] - x1 * s[i];
        yi[i + half] = x1 * c[i] + x0 * s[i];
      }
    }
  }
  return AG_OK;
}

/* The rotation is orthogonal: its gradient rotates dy back by -angle. */
static ag_status rope_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  const ag_tensor *table = n->in[1];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  const float *gy = n->out->grad;
  int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], D = x->shape[3], half = D / 2;
#pragma omp parallel for schedule(static) if (x->numel >= PARALLEL_MIN_ELEMENTS)
  for (int64_t bt = 0; bt < B * T; bt++) {
    const float *c = rope_row(table, T, bt / T, bt % T), *s = c + half;
    for (int64_t h = 0; h < H; h++) {
      const float *g = gy + (bt * H + h) * D;
      float *dx = gx + (bt * H + h) * D;
#pragma omp simd
      for (int64_t i = 0; i < half; i++) {
        float g0 = g[i], g1 = g[i + half];
        dx[i] += g0 * c[i] + g1 * s[i];
        dx[i + half] += g1 * c[i] - g0 * s[i];
      }
    }
  }
  return AG_OK;
}

ag_tensor *ag_rope(ag_tape *t, ag_tensor *x, ag_tensor *table) {
  if (!ag_tape_ok(t, x) || !ag_tape_ok(t, table)) return NULL;
  char sx[96], st[96];
  if (x->ndim != 4 || x->shape[3] % 2)
    return ag_tape_fail(t, AG_ERR_SHAPE, "rope: x %s must be (B, T, H, D) with D even",
                        ag_shape_string(x, sx, sizeof sx));
  int64_t B = x->shape[0], T = x->shape[1];
  if (table->ndim != 2 || table->shape[1] != x->shape[3] ||
      (table->shape[0] != T && table->shape[0] != B * T))
    return ag_tape_fail(t, AG_ERR_SHAPE,
                        "rope: table %s does not fit x %s (want (T, D) or (B*T, D))",
                        ag_shape_string(table, st, sizeof st), ag_shape_string(x, sx, sizeof sx));
  x = ag_contiguous(t, x);
  table = ag_contiguous(t, table);
  if (!x || !table) return NULL;
  ag_op_call c = {.op = AG_OP_ROPE, .in = {x, table}, .n_in = 2, .out_ndim = 4};
  memcpy(c.out_shape, x->shape, sizeof c.out_shape);
  return ag_op_run(t, &c);
}

/* ---- fused causal attention -------------------------------------------------------- */

/* Everything a kernel needs about one attention call. Query rows of one
 * key/value head g are numbered r = t * rep + j (head g * rep + j, time t):
 * time-major, so a block of rows has monotone causal limits. */
typedef struct attn_geometry {
  int64_t B, Hq, Hkv, T, S, D, rep;
  const float *q, *k, *v;
  int64_t qs[3], ks[3], vs[3];                      /* strides of dims 0..2; dim 3 has stride 1 */
  int64_t ldk, ldv;                                 /* row strides of K and V as sgemm sees them */
  const int32_t *query_start, *key_start, *key_end; /* (B) each */
  float scale;
} attn_geometry;

static attn_geometry geometry_of(const ag_node *n) {
  const ag_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  attn_geometry g = {.B = q->shape[0],
                     .Hq = q->shape[1],
                     .Hkv = k->shape[1],
                     .T = q->shape[2],
                     .S = k->shape[2],
                     .D = q->shape[3],
                     .q = q->data,
                     .k = k->data,
                     .v = v->data,
                     .scale = n->farg[0]};
  g.rep = g.Hq / g.Hkv;
  for (int d = 0; d < 3; d++) {
    g.qs[d] = q->stride[d];
    g.ks[d] = k->stride[d];
    g.vs[d] = v->stride[d];
  }
  g.ldk = g.S > 1 ? k->stride[2] : g.D;
  g.ldv = g.S > 1 ? v->stride[2] : g.D;
  const int32_t *spans = n->aux;
  g.query_start = spans;
  g.key_start = spans + g.B;
  g.key_end = spans + 2 * g.B;
  return g;
}

/* Keys [key_start, end) that query row r (time t) of batch b may see. */
static int64_t row_key_end(const attn_geometry *g, int64_t b, int64_t t) {
  return min_i64(g->key_end[b], (int64_t)g->query_start[b] + t + 1);
}

/* Offsets of query row r of key/value head kvh in q and in contiguous
 * (B, Hq, T, ...) buffers (output, its gradient, lse). */
static int64_t q_offset(const attn_geometry *g, int64_t b, int64_t kvh, int64_t r) {
  int64_t t = r / g->rep, h = kvh * g->rep + r % g->rep;
  return b * g->qs[0] + h * g->qs[1] + t * g->qs[2];
}
static int64_t row_index(const attn_geometry *g, int64_t b, int64_t kvh, int64_t r) {
  int64_t t = r / g->rep, h = kvh * g->rep + r % g->rep;
  return (b * g->Hq + h) * g->T + t;
}

/* Per-thread scratch, carved from the tape arena before the parallel region. */
typedef struct attn_scratch {
  float *q;             /* (QUERY_BLOCK, D) scaled queries */
  float *acc;           /* (QUERY_BLOCK, D) output accumulator / dQ */
  float *dout;          /* (QUERY_BLOCK, D) output gradient rows (backward) */
  float *p;             /* (QUERY_BLOCK, KEY_BLOCK) scores / probabilities */
  float *dp;            /* (QUERY_BLOCK, KEY_BLOCK) dP then dS (backward) */
  float *m, *l, *delta; /* (QUERY_BLOCK) running max / sum; lse and D_i in backward */
} attn_scratch;

static attn_scratch *scratch_create(ag_tape *t, int threads, int64_t D) {
  attn_scratch *s = ag_tape_alloc(t, (size_t)threads * sizeof *s);
  size_t rows = QUERY_BLOCK * (size_t)D, block = QUERY_BLOCK * KEY_BLOCK;
  size_t floats = 3 * rows + 2 * block + 3 * QUERY_BLOCK;
  float *mem = ag_tape_alloc(t, (size_t)threads * floats * sizeof(float));
  if (!s || !mem) return NULL;
  for (int i = 0; i < threads; i++) {
    float *f = mem + (size_t)i * floats;
    s[i] = (attn_scratch){.q = f,
                          .acc = f + rows,
                          .dout = f + 2 * rows,
                          .p = f + 3 * rows,
                          .dp = f + 3 * rows + block,
                          .m = f + 3 * rows + 2 * block,
                          .l = f + 3 * rows + 2 * block + QUERY_BLOCK,
                          .delta = f + 3 * rows + 2 * block + 2 * QUERY_BLOCK};
  }
  return s;
}

/* Query rows [r0, r1) of (b, kvh): out rows = softmax(q K^T * scale) V over
 * the visible keys, and lse per row. */
static void attention_forward_rows(const attn_geometry *g, int64_t b, int64_t kvh, int64_t r0,
                                   int64_t r1, float *out, float *lse, const attn_scratch *s) {
  const int64_t D = g->D, rows = r1 - r0;
  const float *kb = g->k + b * g->ks[0] + kvh * g->ks[1];
  const float *vb = g->v + b * g->vs[0] + kvh * g->vs[1];
  for (int64_t i = 0; i < rows; i++) {
    const float *src = g->q + q_offset(g, b, kvh, r0 + i);
    for (int64_t d = 0; d < D; d++) s->q[i * D + d] = src[d] * g->scale;
    s->m[i] = -INFINITY;
    s->l[i] = 0.0f;
  }
  memset(s->acc, 0, (size_t)(rows * D) * sizeof(float));
  int64_t start = g->key_start[b], end = row_key_end(g, b, (r1 - 1) / g->rep);
  for (int64_t j0 = start; j0 < end; j0 += KEY_BLOCK) {
    int64_t nk = min_i64(KEY_BLOCK, end - j0);
    /* scores (rows, nk) = q_scaled (rows, D) @ K_block^T (D, nk) */
    gemm(false, true, rows, nk, D, 1.0f, s->q, D, kb + j0 * g->ldk, g->ldk, 0.0f, s->p, KEY_BLOCK);
    for (int64_t i = 0; i < rows; i++) {
      float *p = s->p + i * KEY_BLOCK;
      int64_t valid = min_i64(nk, max_i64(0, row_key_end(g, b, (r0 + i) / g->rep) - j0));
      if (valid == 0) {
        memset(p, 0, (size_t)nk * sizeof(float));
        continue;
      }
      float mx = p[0];
      for (int64_t c = 1; c < valid; c++) mx = p[c] > mx ? p[c] : mx;
      float m_new = mx > s->m[i] ? mx : s->m[i];
      float alpha = fast_exp(s->m[i] - m_new), sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t c = 0; c < valid; c++) {
        p[c] = fast_exp(p[c] - m_new);
        sum += p[c];
      }
      for (int64_t c = valid; c < nk; c++) p[c] = 0.0f;
      s->l[i] = s->l[i] * alpha + sum;
      s->m[i] = m_new;
      if (alpha != 1.0f)
        for (int64_t d = 0; d < D; d++) s->acc[i * D + d] *= alpha;
    }
    /* acc (rows, D) += P (rows, nk) @ V_block (nk, D) */
    gemm(false, false, rows, D, nk, 1.0f, s->p, KEY_BLOCK, vb + j0 * g->ldv, g->ldv, 1.0f, s->acc,
         D);
  }
  for (int64_t i = 0; i < rows; i++) {
    int64_t idx = row_index(g, b, kvh, r0 + i);
    float *o = out + idx * D;
    if (s->l[i] > 0.0f) {
      float inv = 1.0f / s->l[i];
      for (int64_t d = 0; d < D; d++) o[d] = s->acc[i * D + d] * inv;
      lse[idx] = s->m[i] + logf(s->l[i]);
    } else { /* a row with no visible key (padding): zero output, no gradient */
      memset(o, 0, (size_t)D * sizeof(float));
      lse[idx] = -INFINITY;
    }
  }
}

static int thread_count(int64_t items, int64_t flops) {
  if (flops < PARALLEL_MIN_FLOPS) return 1;
  return (int)min_i64(omp_get_max_threads(), items);
}

static ag_status attention_forward(ag_tape *t, ag_node *n) {
  attn_geometry g = geometry_of(n);
  float *lse = ag_tape_alloc(t, (size_t)max_i64(g.B * g.Hq * g.T, 1) * sizeof(float));
  if (!lse) return AG_ERR_NOMEM;
  n->saved = lse;
  int64_t rows = g.rep * g.T, blocks = (rows + QUERY_BLOCK - 1) / QUERY_BLOCK;
  int64_t items = g.B * g.Hkv * blocks;
  int threads = thread_count(items, g.B * g.Hq * g.T * g.S * g.D);
  attn_scratch *scratch = scratch_create(t, threads, g.D);
  if (!scratch) return AG_ERR_NOMEM;
  float *out = n->out->data;
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1)
  for (int64_t it = 0; it < items; it++) {
    int64_t b = it / (g.Hkv * blocks), kvh = (it / blocks) % g.Hkv,
            r0 = (it % blocks) * QUERY_BLOCK;
    attention_forward_rows(&g, b, kvh, r0, min_i64(rows, r0 + QUERY_BLOCK), out, lse,
                           &scratch[omp_get_thread_num()]);
  }
  return AG_OK;
}

/* Gradients of every query row of (b, kvh) and of its keys and values. With
 * P = exp(q K^T * scale - lse) recomputed per block and D_i = dO_i . O_i:
 *   dV += P^T dO,  dS = P * (dO V^T - D_i),  dQ += scale dS K,  dK += scale dS^T Q.
 * One thread owns (b, kvh), so its dK, dV and dQ rows need no locks. */
static void attention_backward_group(const attn_geometry *g, int64_t b, int64_t kvh,
                                     const float *out, const float *gout, const float *lse,
                                     float *gq, float *gk, float *gv, const attn_scratch *s) {
  const int64_t D = g->D, S = g->S, rows_total = g->rep * g->T;
  const float *kb = g->k + b * g->ks[0] + kvh * g->ks[1];
  const float *vb = g->v + b * g->vs[0] + kvh * g->vs[1];
  float *gkb = gk ? gk + (b * g->Hkv + kvh) * S * D : NULL;
  float *gvb = gv ? gv + (b * g->Hkv + kvh) * S * D : NULL;
  for (int64_t r0 = 0; r0 < rows_total; r0 += QUERY_BLOCK) {
    int64_t r1 = min_i64(rows_total, r0 + QUERY_BLOCK), rows = r1 - r0;
    for (int64_t i = 0; i < rows; i++) {
      const float *src = g->q + q_offset(g, b, kvh, r0 + i);
      int64_t idx = row_index(g, b, kvh, r0 + i);
      const float *go = gout + idx * D, *o = out + idx * D;
      float dot = 0.0f;
      for (int64_t d = 0; d < D; d++) {
        s->q[i * D + d] = src[d] * g->scale;
        s->dout[i * D + d] = go[d];
        dot += go[d] * o[d];
      }
      s->delta[i] = dot;
      s->m[i] = lse[idx];
    }
    if (gq) memset(s->acc, 0, (size_t)(rows * D) * sizeof(float));
    int64_t start = g->key_start[b], end = row_key_end(g, b, (r1 - 1) / g->rep);
    for (int64_t j0 = start; j0 < end; j0 += KEY_BLOCK) {
      int64_t nk = min_i64(KEY_BLOCK, end - j0);
      gemm(false, true, rows, nk, D, 1.0f, s->q, D, kb + j0 * g->ldk, g->ldk, 0.0f, s->p,
           KEY_BLOCK);
      for (int64_t i = 0; i < rows; i++) {
        float *p = s->p + i * KEY_BLOCK, l = s->m[i];
        int64_t valid = min_i64(nk, max_i64(0, row_key_end(g, b, (r0 + i) / g->rep) - j0));
        if (l == -INFINITY) valid = 0;
#pragma omp simd
        for (int64_t c = 0; c < valid; c++) p[c] = fast_exp(p[c] - l);
        for (int64_t c = valid; c < nk; c++) p[c] = 0.0f;
      }
      /* dV_block (nk, D) += P^T (nk, rows) @ dO (rows, D) */
      if (gvb)
        gemm(true, false, nk, D, rows, 1.0f, s->p, KEY_BLOCK, s->dout, D, 1.0f, gvb + j0 * D, D);
      if (!gq && !gkb) continue;
      /* dP (rows, nk) = dO (rows, D) @ V_block^T (D, nk); then dS in place */
      gemm(false, true, rows, nk, D, 1.0f, s->dout, D, vb + j0 * g->ldv, g->ldv, 0.0f, s->dp,
           KEY_BLOCK);
      for (int64_t i = 0; i < rows; i++) {
        float *dp = s->dp + i * KEY_BLOCK;
        const float *p = s->p + i * KEY_BLOCK;
        float di = s->delta[i];
#pragma omp simd
        for (int64_t c = 0; c < nk; c++) dp[c] = p[c] * (dp[c] - di);
      }
      /* dQ (rows, D) += scale dS (rows, nk) @ K_block (nk, D) */
      if (gq)
        gemm(false, false, rows, D, nk, g->scale, s->dp, KEY_BLOCK, kb + j0 * g->ldk, g->ldk, 1.0f,
             s->acc, D);
      /* dK_block (nk, D) += dS^T (nk, rows) @ q_scaled (rows, D) */
      if (gkb)
        gemm(true, false, nk, D, rows, 1.0f, s->dp, KEY_BLOCK, s->q, D, 1.0f, gkb + j0 * D, D);
    }
    if (gq)
      for (int64_t i = 0; i < rows; i++) {
        float *dst = gq + row_index(g, b, kvh, r0 + i) * D;
        for (int64_t d = 0; d < D; d++) dst[d] += s->acc[i * D + d];
      }
  }
}

static ag_status attention_backward(ag_tape *t, ag_node *n) {
  ag_tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
  float *gq = q->requires_grad ? ag_tape_grad(t, q) : NULL;
  float *gk = k->requires_grad ? ag_tape_grad(t, k) : NULL;
  float *gv = v->requires_grad ? ag_tape_grad(t, v) : NULL;
  if ((q->requires_grad && !gq) || (k->requires_grad && !gk) || (v->requires_grad && !gv))
    return AG_ERR_NOMEM;
  if (!gq && !gk && !gv) return AG_OK;
  attn_geometry g = geometry_of(n);
  int64_t items = g.B * g.Hkv;
  int threads = thread_count(items, g.B * g.Hq * g.T * g.S * g.D);
  attn_scratch *scratch = scratch_create(t, threads, g.D);
  if (!scratch) return AG_ERR_NOMEM;
  const float *out = n->out->data, *gout = n->out->grad, *lse = n->saved;
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1)
  for (int64_t it = 0; it < items; it++)
    attention_backward_group(&g, it / g.Hkv, it % g.Hkv, out, gout, lse, gq, gk, gv,
                             &scratch[omp_get_thread_num()]);
  return AG_OK;
}

/* The input as the kernels read it: unit stride in the last dim and rows
 * (dim 2) at least D apart, as sgemm requires; otherwise a contiguous copy. */
static ag_tensor *kernel_layout(ag_tape *t, ag_tensor *x) {
  int64_t D = x->shape[3];
  bool ok = (D <= 1 || x->stride[3] == 1) && (x->shape[2] <= 1 || x->stride[2] >= D) &&
            x->stride[2] < INT32_MAX;
  return ok ? x : ag_contiguous(t, x);
}

ag_tensor *ag_attention(ag_tape *t, ag_tensor *q, ag_tensor *k, ag_tensor *v,
                        const ag_attention_spans *spans) {
  if (!ag_tape_ok(t, q) || !ag_tape_ok(t, k) || !ag_tape_ok(t, v)) return NULL;
  char sq[96], sk[96], sv[96];
  ag_shape_string(q, sq, sizeof sq);
  ag_shape_string(k, sk, sizeof sk);
  ag_shape_string(v, sv, sizeof sv);
  if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4 || !ag_shapes_equal(k, v) ||
      q->shape[0] != k->shape[0] || q->shape[3] != k->shape[3] || q->shape[3] <= 0)
    return ag_tape_fail(t, AG_ERR_SHAPE,
                        "attention: q %s, k %s, v %s must be (B, Hq, T, D), (B, Hkv, S, D), "
                        "(B, Hkv, S, D)",
                        sq, sk, sv);
  int64_t B = q->shape[0], Hq = q->shape[1], Hkv = k->shape[1], T = q->shape[2], S = k->shape[2];
  if (Hkv <= 0 || Hq % Hkv)
    return ag_tape_fail(t, AG_ERR_SHAPE,
                        "attention: q %s has %lld heads, not a multiple of the %lld key/value "
                        "heads of k %s",
                        sq, (long long)Hq, (long long)Hkv, sk);
  /* Spans are copied: backward runs after the caller's arrays may be gone. */
  int32_t *copy = ag_tape_alloc(t, (size_t)max_i64(3 * B, 1) * sizeof(int32_t));
  if (!copy) return NULL;
  for (int64_t b = 0; b < B; b++) {
    int64_t qs = spans && spans->query_start ? spans->query_start[b] : S - T;
    int64_t ks = spans && spans->key_start ? spans->key_start[b] : 0;
    int64_t ke = spans && spans->key_end ? spans->key_end[b] : S;
    if (qs < 0 || ks < 0 || ks > ke || ke > S)
      return ag_tape_fail(t, AG_ERR_INVALID,
                          "attention: sequence %lld has query_start %lld, keys [%lld, %lld); "
                          "need query_start >= 0 and 0 <= key_start <= key_end <= S = %lld",
                          (long long)b, (long long)qs, (long long)ks, (long long)ke, (long long)S);
    copy[b] = (int32_t)qs;
    copy[B + b] = (int32_t)ks;
    copy[2 * B + b] = (int32_t)ke;
  }
  q = kernel_layout(t, q);
  k = kernel_layout(t, k);
  v = kernel_layout(t, v);
  if (!q || !k || !v) return NULL;
  ag_op_call c = {.op = AG_OP_ATTENTION,
                  .in = {q, k, v},
                  .n_in = 3,
                  .out_ndim = 4,
                  .out_shape = {B, Hq, T, q->shape[3]},
                  .farg = {(float)(1.0 / sqrt((double)q->shape[3]))},
                  .aux = copy};
  return ag_op_run(t, &c);
}

static const ag_op_impl rope_op = {"rope", rope_forward, rope_backward};
static const ag_op_impl attention_op = {"attention", attention_forward, attention_backward};

void ag_cpu_register_attention(const ag_op_impl **ops) {
  ops[AG_OP_ROPE] = &rope_op;
  ops[AG_OP_ATTENTION] = &attention_op;
}
