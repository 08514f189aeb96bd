/* Decoding one new token per sequence (T = 1) without the tape.
 *
 * A step of batch-1 decoding is a chain of matrix-vector products: every
 * weight is read once from memory and used for one multiply-add per
 * sequence, so the step is bound by memory bandwidth (stories110M streams
 * 440 MB a token). The tape path (transformer.c through transformer_decode.c)
 * runs each op as its own parallel region, about 85 a token, with the norms,
 * rotations and attention in between on one thread. Here the whole step is
 * one OpenMP region: threads take pieces of each stage's output rows from a
 * shared counter (key/value heads with their query heads for q/k/v and
 * attention, 32-128 rows elsewhere), and a barrier separates stages that
 * depend on each other. Each thread keeps its own normalised copy of the
 * residual stream, so a norm needs no barrier of its own, and a thread that
 * computed a key/value head attends with it at once: 4 barriers a layer (5
 * when the key/value heads are too few to share out, as Qwen2's single one).
 *
 * Every output row is computed by one thread with the same code whatever the
 * thread count, so the logits do not depend on the number of threads. They
 * match the tape path to rounding: sums in a different order, a fast exp in
 * softmax, SiLU and GELU (the one the tape's attention uses).
 *
 * Instruction sets: the matrix-vector kernel has AVX-512 and AVX2+FMA
 * versions compiled with target attributes and picked at run time
 * (__builtin_cpu_supports), so a generic x86-64 build (AG_NATIVE=OFF) still
 * gets them; other machines get a portable loop. */
#include "nn/transformer_internal.h"

#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define X86_KERNELS 1
#endif

/* Output rows a thread produces between epilogues (bias, activation,
 * residual add): its scratch holds (sequences, CHUNK_ROWS) sums. */
#define CHUNK_ROWS 64
/* Rows per piece of work handed to a thread in o_proj / down_proj (32 rows:
 * 24 pieces at stories110M) and the LM head. */
#define RESIDUAL_CHUNK_ROWS 32
#define HEAD_CHUNK_ROWS     128
/* Below this many weight floats times sequences a step runs on one thread:
 * stories260K (0.26M floats) is faster alone than paying for barriers. */
#define MIN_PARALLEL_FLOATS (1 << 20)
/* Input rows (sequences) the kernel dots with each weight vector at once:
 * up to 8 accumulators plus 4 x 4 row sums fit AVX-512's 32 registers. */
#define BLOCK_INPUTS_512 4
#define BLOCK_INPUTS_256 2 /* AVX2 has 16 registers */

static decode_path path_setting = DECODE_AUTO;

void ag_decode_path_set(decode_path p) { path_setting = p; }
decode_path ag_decode_path_get(void) { return path_setting; }

const char *ag_decode_fast_refusal(const ag_transformer *m, int64_t batch, int64_t T,
                                   const int32_t *counts, ag_logits_rows rows) {
  if (path_setting == DECODE_TAPE) return "the tape path is forced";
  if (T != 1) return "more than one token per sequence (prompt processing uses sgemm)";
  if (m->adapter) return "an adapter (LoRA) is installed: it acts on the tape";
  if (m->config.arch != AG_ARCH_LLAMA && m->config.arch != AG_ARCH_GPT2)
    return "an architecture the fast path does not know";
  if (rows == AG_LOGITS_ALL && counts)
    for (int64_t b = 0; b < batch; b++)
      if (counts[b] == 0) return "padding rows' logits were asked for (AG_LOGITS_ALL)";
  return NULL;
}

/* ---- matrix-vector kernels --------------------------------------------------------- */

/* y[b * ldy + r] = w[r] . x[b] for weight rows r < n (each `in` floats,
 * consecutive) and input rows b < nx (stride ldx). */
typedef void (*rows_fn)(const float *w, int64_t n, int64_t in, const float *x, int64_t ldx,
                        int64_t nx, float *y, int64_t ldy);

static void rows_portable(const float *w, int64_t n, int64_t in, const float *x, int64_t ldx,
                          int64_t nx, float *y, int64_t ldy) {
  for (int64_t r = 0; r < n; r++)
    for (int64_t b = 0; b < nx; b++) {
      const float *wr = w + r * in, *xb = x + b * ldx;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < in; k++) s += wr[k] * xb[k];
      y[b * ldy + r] = s;
    }
}

#ifdef X86_KERNELS
#define TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define TARGET_AVX2   __attribute__((target("avx2,fma")))
#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* [sum(a), sum(b), sum(c), sum(d)] of four 8-lane vectors. */
ALWAYS_INLINE TARGET_AVX2 __m128 hsum4_256(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

ALWAYS_INLINE TARGET_AVX512 __m256 fold_512(__m512 a) {
  __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
  return _mm256_add_ps(_mm512_castps512_ps256(a), hi);
}

/* The four sums of each input b < nx against four consecutive weight rows
 * w, w + in, ..., out[4 b + j]. The rows are read one after the other (one
 * sequential stream, which the hardware prefetcher follows; four rows side
 * by side were twice as slow at stories15M's 288-float rows), each weight
 * vector serving every input row, with U accumulators per input so the
 * multiply-add chains overlap. nx, U and `rows` are constants after
 * inlining; rows < 4 leaves the missing sums at zero. */
#define BLOCK_KERNEL(name, target, vec, W, zero, load, fma, add, tail_mask, masked_load, fold)     \
  ALWAYS_INLINE target void name(const int nx, const int U, const float *w, int64_t rows,          \
                                 int64_t in, const float *x, int64_t ldx, float *out) {            \
    vec sums[4][4]; /* [row][input] */                                                             \
    _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++) {                                          \
      _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++) sums[j][b] = zero();                    \
      if (j >= rows) continue;                                                                     \
      const float *wj = w + j * in;                                                                \
      vec acc[4][4]; /* [u][input] */                                                              \
      _Pragma("GCC unroll 4") for (int u = 0; u < U; u++)                                          \
          _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++) acc[u][b] = zero();                 \
      int64_t k = 0;                                                                               \
      for (; k + U * W <= in; k += U * W) {                                                        \
        _Pragma("GCC unroll 4") for (int u = 0; u < U; u++) {                                      \
          vec wv = load(wj + k + u * W);                                                           \
          _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++) acc[u][b] =                         \
              fma(wv, load(x + b * ldx + k + u * W), acc[u][b]);                                   \
        }                                                                                          \
      }                                                                                            \
      for (; k + W <= in; k += W) {                                                                \
        vec wv = load(wj + k);                                                                     \
        _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++) acc[0][b] =                           \
            fma(wv, load(x + b * ldx + k), acc[0][b]);                                             \
      }                                                                                            \
      if (k < in) { /* the last in % W columns: masked loads read nothing past the row */          \
        tail_mask(in - k);                                                                         \
        vec wv = masked_load(wj + k);                                                              \
        _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++) acc[0][b] =                           \
            fma(wv, masked_load(x + b * ldx + k), acc[0][b]);                                      \
      }                                                                                            \
      _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++) {                                       \
        _Pragma("GCC unroll 4") for (int u = 1; u < U; u++) acc[0][b] = add(acc[0][b], acc[u][b]); \
        sums[j][b] = acc[0][b];                                                                    \
      }                                                                                            \
    }                                                                                              \
    _Pragma("GCC unroll 4") for (int b = 0; b < nx; b++)                                           \
        _mm_storeu_ps(out + 4 * b, hsum4_256(fold(sums[0][b]), fold(sums[1][b]), fold(sums[2][b]), \
                                             fold(sums[3][b])));                                   \
  }

#define MASK_512(n)        __mmask16 m_ = (__mmask16)((1u << (n)) - 1u)
#define MASKED_LOAD_512(p) _mm512_maskz_loadu_ps(m_, (p))
#define MASK_256(n)                                                                                \
  __m256i m_ =                                                                                     \
      _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define MASKED_LOAD_256(p) _mm256_maskload_ps((p), m_)
#define IDENTITY_256(v)    (v)

BLOCK_KERNEL(block_512, TARGET_AVX512, __m512, 16, _mm512_setzero_ps, _mm512_loadu_ps,
             _mm512_fmadd_ps, _mm512_add_ps, MASK_512, MASKED_LOAD_512, fold_512)
BLOCK_KERNEL(block_256, TARGET_AVX2, __m256, 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_fmadd_ps,
             _mm256_add_ps, MASK_256, MASKED_LOAD_256, IDENTITY_256)

/* Accumulators per input row at batch 1: 4 streamed best in the decoding
 * steps measured here (2 was 5-15% slower at stories110M). */
#define SINGLE_U 4
/* Weight rows four at a time; each row's sums are computed the same way
 * wherever a thread's range starts. U: 4 accumulators per input for one or
 * two inputs, 2 for three or four (at most 8 live accumulators). */
#define ROWS_KERNEL(name, target, block, block_inputs)                                             \
  target static void name(const float *w, int64_t n, int64_t in, const float *x, int64_t ldx,      \
                          int64_t nx, float *y, int64_t ldy) {                                     \
    float out[4 * (block_inputs)];                                                                 \
    if (nx == 1) { /* batch 1: its own loop, as tight as the kernel alone */                       \
      for (int64_t r = 0; r < n; r += 4) {                                                         \
        int64_t rows = n - r < 4 ? n - r : 4;                                                      \
        block(1, SINGLE_U, w + r * in, rows, in, x, ldx, out);                                     \
        for (int64_t j = 0; j < rows; j++) y[r + j] = out[j];                                      \
      }                                                                                            \
      return;                                                                                      \
    }                                                                                              \
    for (int64_t r = 0; r < n; r += 4) {                                                           \
      int64_t rows = n - r < 4 ? n - r : 4;                                                        \
      const float *wr = w + r * in;                                                                \
      for (int64_t b0 = 0; b0 < nx; b0 += (block_inputs)) {                                        \
        int64_t nb = nx - b0 < (block_inputs) ? nx - b0 : (block_inputs);                          \
        const float *xb = x + b0 * ldx;                                                            \
        switch (nb) {                                                                              \
        case 1: block(1, SINGLE_U, wr, rows, in, xb, ldx, out); break;                             \
        case 2: block(2, (block_inputs) > 2 ? 4 : 2, wr, rows, in, xb, ldx, out); break;           \
        case 3:                                                                                    \
          block(3 < (block_inputs) ? 3 : (block_inputs), 2, wr, rows, in, xb, ldx, out);           \
          break;                                                                                   \
        default: block((block_inputs), 2, wr, rows, in, xb, ldx, out); break;                      \
        }                                                                                          \
        for (int64_t b = 0; b < nb; b++)                                                           \
          for (int64_t j = 0; j < rows; j++) y[(b0 + b) * ldy + r + j] = out[4 * b + j];           \
      }                                                                                            \
    }                                                                                              \
  }

ROWS_KERNEL(rows_avx512, TARGET_AVX512, block_512, BLOCK_INPUTS_512)
ROWS_KERNEL(rows_avx2, TARGET_AVX2, block_256, BLOCK_INPUTS_256)
#endif

static decode_kernel kernel_setting = DECODE_KERNEL_AUTO;

bool ag_decode_kernel_set(decode_kernel k) {
#ifdef X86_KERNELS
  bool ok = k != DECODE_KERNEL_AVX512 || __builtin_cpu_supports("avx512f");
  ok = ok && (k != DECODE_KERNEL_AVX2 ||
              (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
#else
  bool ok = k == DECODE_KERNEL_AUTO || k == DECODE_KERNEL_PORTABLE;
#endif
  if (ok) kernel_setting = k;
  return ok;
}

static rows_fn pick_rows_kernel(void) {
  if (kernel_setting == DECODE_KERNEL_PORTABLE) return rows_portable;
#ifdef X86_KERNELS
  if (kernel_setting == DECODE_KERNEL_AVX2) return rows_avx2;
  if (__builtin_cpu_supports("avx512f")) return rows_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return rows_avx2;
#endif
  return rows_portable;
}

/* ---- elementwise pieces, computed as the tape's ops compute them --------------------- */

/* exp(x) that vectorises: Cephes' expf polynomial, the method of the tape's
 * attention (ops_attention.c). Relative error about 2 ulp; x < -87.3 gives 0. */
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

static inline float sigmoid(float v) { return 1.0f / (1.0f + fast_exp(-v)); }

/* GELU, tanh form, as 0.5 (1 + tanh u) = sigmoid(2u) (ops_elementwise.c). */
static inline float gelu(float v) {
  float u = 0.7978845608028654f * (v + 0.044715f * v * v * v);
  return v * sigmoid(2.0f * u);
}

/* rmsnorm (llama) or layernorm (gpt2) of rows x (n, C) into y, with the
 * tape's arithmetic (ops_nn.c: sums in double). */
static void norm_rows(ag_transformer_arch arch, float eps, const float *x, int64_t n, int64_t C,
                      const float *gamma, const float *beta, float *y) {
  for (int64_t i = 0; i < n; i++) {
    const float *xr = x + i * C;
    float *yr = y + i * C;
    double sum = 0.0, sq = 0.0;
    if (arch == AG_ARCH_GPT2) {
#pragma omp simd reduction(+ : sum)
      for (int64_t k = 0; k < C; k++) sum += xr[k];
    }
    float mean = (float)(sum / (double)C);
#pragma omp simd reduction(+ : sq)
    for (int64_t k = 0; k < C; k++) sq += (double)((xr[k] - mean) * (xr[k] - mean));
    float rstd = (float)(1.0 / sqrt(sq / (double)C + (double)eps));
#pragma omp simd
    for (int64_t k = 0; k < C; k++) {
      float h = (xr[k] - mean) * rstd;
      yr[k] = (gamma ? h * gamma[k] : h) + (beta ? beta[k] : 0.0f);
    }
  }
}

/* ---- one step ---------------------------------------------------------------------- */

static const float *data_of(const ag_tensor *t) { return t ? t->data : NULL; }

/* One block's weights as flat arrays; NULL where there is none. */
typedef struct layer_view {
  const float *norm1_w, *norm1_b, *norm2_w, *norm2_b;
  const float *wq, *wk, *wv, *bq, *bk, *bv; /* (Hq D, C), (Hkv D, C), (Hkv D, C) */
  const float *wo, *bo;                     /* (C, Hq D) */
  const float *wgate, *bgate, *wup, *bup;   /* (I, C); no gate in gpt2 */
  const float *wdown, *bdown;               /* (C, I) */
} layer_view;

static layer_view view_of(const ag_transformer *m, int64_t l) {
  const transformer_layer *L = &m->layers[l];
  layer_view v = {.norm1_w = data_of(L->norm1_weight),
                  .norm1_b = data_of(L->norm1_bias),
                  .norm2_w = data_of(L->norm2_weight),
                  .norm2_b = data_of(L->norm2_bias),
                  .wo = data_of(L->o_weight),
                  .bo = data_of(L->o_bias),
                  .wgate = data_of(L->gate_weight),
                  .bgate = data_of(L->gate_bias),
                  .wup = data_of(L->up_weight),
                  .bup = data_of(L->up_bias),
                  .wdown = data_of(L->down_weight),
                  .bdown = data_of(L->down_bias)};
  if (m->config.arch == AG_ARCH_GPT2) { /* c_attn's rows are [q; k; v] */
    int64_t C = m->config.hidden_size;
    v.wq = L->qkv_weight->data;
    v.wk = v.wq + C * C;
    v.wv = v.wk + C * C;
    v.bq = data_of(L->qkv_bias);
    v.bk = v.bq ? v.bq + C : NULL;
    v.bv = v.bq ? v.bq + 2 * C : NULL;
  } else {
    v.wq = L->q_weight->data;
    v.wk = L->k_weight->data;
    v.wv = L->v_weight->data;
    v.bq = data_of(L->q_bias);
    v.bk = data_of(L->k_bias);
    v.bv = data_of(L->v_bias);
  }
  return v;
}

/* Rows of a stage left to a thread: (back << 32 | front), see range_take. */
typedef _Atomic uint64_t row_range;

/* Everything the threads of one step share. n is the number of sequences
 * that append a token; row i of every buffer is sequence seq[i]. */
typedef struct step_ctx {
  const ag_transformer *m;
  const decode_fast_step *s;
  rows_fn rows;
  int64_t n;
  const int64_t *seq; /* (n) batch index of each active sequence */
  float *x;           /* (n, C) residual stream */
  float *xn;          /* (threads, n, C) each thread's normalised copy of x */
  float *q;           /* (n, Hq, D) rotated queries */
  float *att;         /* (n, Hq D) attention output */
  float *hid;         /* (n, I) MLP activations */
  const float *rope;  /* (n, D) cos | sin of each new token's angles (llama) */
  float *tmp;         /* (threads, tmp_floats) sums before their epilogue */
  int64_t tmp_floats; /* >= 2 n CHUNK_ROWS, >= n D and >= D */
  float *scores;      /* (threads, capacity) attention weights */
  row_range *work;    /* (layers * WORK_STAGES + 1, threads) rows left per stage and thread */
  int threads;        /* the ranges per stage (the team may be smaller) */
  bool by_groups;     /* q/k/v and attention by key/value head, no barrier between */
  float *compact;     /* (n, V) logits of the active rows; NULL: n == batch */
  float *logits;      /* (batch, V) */
} step_ctx;

/* Layer l's keys (or values) of sequence b, head h, from position p. */
static float *cache_at(const decode_fast_step *s, const ag_transformer_config *cfg, float *base,
                       int64_t l, int64_t b, int64_t h, int64_t p) {
  return base + (((l * s->batch + b) * cfg->num_kv_heads + h) * s->capacity + p) * cfg->head_dim;
}

/* Head unit u of the fused q/k/v product (u < Hq: query head u; then the
 * Hkv key heads, then the Hkv value heads): D rows against every sequence,
 * bias, rotation (llama q and k); queries go to c->q, keys and values
 * straight into the cache at each sequence's next position. */
static void qkv_unit(const step_ctx *c, const layer_view *L, int64_t l, int64_t u, const float *xn,
                     float *tmp) {
  const ag_transformer_config *cfg = &c->m->config;
  const decode_fast_step *s = c->s;
  int64_t C = cfg->hidden_size, D = cfg->head_dim, Hq = cfg->num_heads, Hkv = cfg->num_kv_heads;
  int kind = u < Hq ? 0 : u < Hq + Hkv ? 1 : 2; /* q, k, v */
  int64_t h = kind == 0 ? u : kind == 1 ? u - Hq : u - Hq - Hkv;
  const float *w = (kind == 0 ? L->wq : kind == 1 ? L->wk : L->wv) + h * D * C;
  const float *bias = kind == 0 ? L->bq : kind == 1 ? L->bk : L->bv;
  if (bias) bias += h * D;
  c->rows(w, D, C, xn, C, c->n, tmp, D); /* tmp (n, D) */
  bool rotate = kind != 2 && cfg->arch == AG_ARCH_LLAMA;
  int64_t half = D / 2;
  for (int64_t i = 0; i < c->n; i++) {
    float *v = tmp + i * D;
    if (bias)
      for (int64_t d = 0; d < D; d++) v[d] += bias[d];
    int64_t b = c->seq[i];
    float *dst = kind == 0   ? c->q + (i * Hq + h) * D
                 : kind == 1 ? cache_at(s, cfg, s->keys, l, b, h, s->length[b])
                             : cache_at(s, cfg, s->values, l, b, h, s->length[b]);
    if (!rotate) {
      memcpy(dst, v, (size_t)D * sizeof(float));
      continue;
    }
    const float *cs = c->rope + i * D, *sn = cs + half; /* HF rotate-half: pairs (d, d + D/2) */
    for (int64_t d = 0; d < half; d++) {
      float x0 = v[d], x1 = v[d + half];
      dst[d] = x0 * cs[d] - x1 * sn[d];
      dst[d + half] = x1 * cs[d] + x0 * sn[d];
    }
  }
}

/* Query head h of active sequence i against its cached keys 0..length:
 * softmax(q k^T / sqrt(D)) v into c->att. */
static void attend(const step_ctx *c, int64_t l, int64_t i, int64_t h, float *scores, float *qs) {
  const ag_transformer_config *cfg = &c->m->config;
  const decode_fast_step *s = c->s;
  int64_t D = cfg->head_dim, Hq = cfg->num_heads, b = c->seq[i];
  int64_t g = h / (Hq / cfg->num_kv_heads), S = s->length[b] + 1;
  const float *K = cache_at(s, cfg, s->keys, l, b, g, 0),
              *V = cache_at(s, cfg, s->values, l, b, g, 0);
  const float *q = c->q + (i * Hq + h) * D;
  float scale = (float)(1.0 / sqrt((double)D));
  for (int64_t d = 0; d < D; d++) qs[d] = q[d] * scale; /* scaled first, as the tape does */
  c->rows(K, S, D, qs, D, 1, scores, 1);                /* scores (S) = K q */
  float mx = scores[0];
  for (int64_t j = 1; j < S; j++) mx = scores[j] > mx ? scores[j] : mx;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < S; j++) {
    scores[j] = fast_exp(scores[j] - mx);
    sum += scores[j];
  }
  float *o = c->att + (i * Hq + h) * D;
  memset(o, 0, (size_t)D * sizeof(float));
  for (int64_t j = 0; j < S; j++) {
    float p = scores[j];
    const float *vj = V + j * D;
#pragma omp simd
    for (int64_t d = 0; d < D; d++) o[d] += p * vj[d];
  }
  float inv = 1.0f / sum;
  for (int64_t d = 0; d < D; d++) o[d] *= inv;
}

/* x[i, r0:r1) += W[r0:r1) in[i] + bias: a projection into the residual
 * stream (o_proj, down_proj), in chunks of CHUNK_ROWS. */
static void project_residual(const step_ctx *c, const float *w, const float *bias, int64_t r0,
                             int64_t r1, const float *in, int64_t width, float *tmp) {
  int64_t C = c->m->config.hidden_size;
  for (int64_t r = r0; r < r1; r += CHUNK_ROWS) {
    int64_t rows = r1 - r < CHUNK_ROWS ? r1 - r : CHUNK_ROWS;
    c->rows(w + r * width, rows, width, in, width, c->n, tmp, CHUNK_ROWS);
    for (int64_t i = 0; i < c->n; i++)
      for (int64_t j = 0; j < rows; j++)
        c->x[i * C + r + j] += tmp[i * CHUNK_ROWS + j] + (bias ? bias[r + j] : 0.0f);
  }
}

/* hid[i, r0:r1) = silu(gate) * up (llama) or gelu(up) (gpt2), biases included. */
static void mlp_rows(const step_ctx *c, const layer_view *L, int64_t r0, int64_t r1,
                     const float *xn, float *tmp) {
  const ag_transformer_config *cfg = &c->m->config;
  int64_t C = cfg->hidden_size, I = cfg->intermediate_size;
  float *tg = tmp, *tu = tmp + c->n * CHUNK_ROWS;
  for (int64_t r = r0; r < r1; r += CHUNK_ROWS) {
    int64_t rows = r1 - r < CHUNK_ROWS ? r1 - r : CHUNK_ROWS;
    c->rows(L->wup + r * C, rows, C, xn, C, c->n, tu, CHUNK_ROWS);
    if (L->wgate) c->rows(L->wgate + r * C, rows, C, xn, C, c->n, tg, CHUNK_ROWS);
    for (int64_t i = 0; i < c->n; i++) {
      float *out = c->hid + i * I + r;
      const float *u = tu + i * CHUNK_ROWS, *g = tg + i * CHUNK_ROWS;
      if (L->wgate) {
#pragma omp simd
        for (int64_t j = 0; j < rows; j++) {
          float gv = g[j] + (L->bgate ? L->bgate[r + j] : 0.0f);
          out[j] = gv * sigmoid(gv) * (u[j] + (L->bup ? L->bup[r + j] : 0.0f));
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < rows; j++) out[j] = gelu(u[j] + (L->bup ? L->bup[r + j] : 0.0f));
      }
    }
  }
}

/* Work sharing: each stage's rows start out split into one contiguous range
 * per thread, which its owner works through from the front; a thread done
 * with its own range takes pieces from the back of the others'. A thread
 * slowed down (another process on its core) thus holds nobody up at the
 * next barrier, while each thread still streams one contiguous stretch of a
 * weight matrix (pieces handed out in turn were 10% slower: the hardware
 * prefetcher runs past each piece's end into rows another core reads). A
 * range is (front, back) packed in one atomic word. Which thread computes a
 * row never changes its value. */

static void ranges_init(row_range *r, int64_t total, int64_t align, int threads) {
  int64_t blocks = (total + align - 1) / align;
  for (int t = 0; t < threads; t++) {
    uint64_t front = (uint64_t)(blocks * t / threads * align);
    uint64_t back = (uint64_t)(blocks * (t + 1) / threads * align);
    front = front < (uint64_t)total ? front : (uint64_t)total;
    back = back < (uint64_t)total ? back : (uint64_t)total;
    atomic_init(&r[t], back << 32 | front);
  }
}

/* [*r0, *r1): up to `piece` rows from the front (own range) or the back. */
static bool range_take(row_range *r, bool front, int64_t piece, int64_t *r0, int64_t *r1) {
  uint64_t old = atomic_load_explicit(r, memory_order_relaxed), next;
  for (;;) {
    int64_t f = (int64_t)(old & 0xffffffffu), b = (int64_t)(old >> 32);
    if (f >= b) return false;
    if (front) {
      *r0 = f;
      *r1 = b - f > piece ? f + piece : b;
      next = (uint64_t)b << 32 | (uint64_t)*r1;
    } else {
      *r0 = b - f > piece ? b - piece : f;
      *r1 = b;
      next = (uint64_t)*r0 << 32 | (uint64_t)f;
    }
    if (atomic_compare_exchange_weak_explicit(r, &old, next, memory_order_relaxed,
                                              memory_order_relaxed))
      return true;
  }
}

/* Thread tid's next piece of a stage whose ranges are r (threads of them). */
static bool next_piece(row_range *r, int tid, int threads, int64_t piece, int64_t *r0,
                       int64_t *r1) {
  if (range_take(&r[tid], true, piece, r0, r1)) return true;
  for (int k = 1; k < threads; k++)
    if (range_take(&r[(tid + k) % threads], false, piece, r0, r1)) return true;
  return false;
}

/* Work counters of one layer (and one for the LM head after the last). */
enum { WORK_QKV, WORK_ATTEND, WORK_O, WORK_MLP, WORK_DOWN, WORK_STAGES };

/* One thread's share of the step, meeting the others at barriers. */
static void step_thread(const step_ctx *c, int tid) {
  const ag_transformer *m = c->m;
  const ag_transformer_config *cfg = &m->config;
  int64_t C = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
  int64_t D = cfg->head_dim, Hq = cfg->num_heads, Hkv = cfg->num_kv_heads, n = c->n;
  int64_t rep = Hq / Hkv;
  int nt = c->threads;
  float *xn = c->xn + (size_t)tid * (size_t)(n * C);
  float *tmp = c->tmp + (size_t)tid * (size_t)c->tmp_floats;
  float *scores = c->scores + (size_t)tid * (size_t)c->s->capacity;
  int64_t r0, r1;
  for (int64_t l = 0; l < cfg->num_layers; l++) {
    layer_view L = view_of(m, l);
    row_range *work = c->work + l * WORK_STAGES * nt;
    norm_rows(cfg->arch, cfg->norm_eps, c->x, n, C, L.norm1_w, L.norm1_b, xn);
    if (c->by_groups) {
      /* A key/value head with its query heads: the thread attends with the
       * keys and values it has just written, no barrier between. */
      while (next_piece(work + WORK_QKV * nt, tid, nt, 1, &r0, &r1)) {
        int64_t g = r0;
        for (int64_t h = g * rep; h < (g + 1) * rep; h++) qkv_unit(c, &L, l, h, xn, tmp);
        qkv_unit(c, &L, l, Hq + g, xn, tmp);
        qkv_unit(c, &L, l, Hq + Hkv + g, xn, tmp);
        for (int64_t i = 0; i < n; i++)
          for (int64_t h = g * rep; h < (g + 1) * rep; h++) attend(c, l, i, h, scores, tmp);
      }
    } else {
      while (next_piece(work + WORK_QKV * nt, tid, nt, 1, &r0, &r1))
        qkv_unit(c, &L, l, r0, xn, tmp);
#pragma omp barrier
      while (next_piece(work + WORK_ATTEND * nt, tid, nt, 1, &r0, &r1))
        attend(c, l, r0 / Hq, r0 % Hq, scores, tmp);
    }
#pragma omp barrier
    while (next_piece(work + WORK_O * nt, tid, nt, RESIDUAL_CHUNK_ROWS, &r0, &r1))
      project_residual(c, L.wo, L.bo, r0, r1, c->att, Hq * D, tmp);
#pragma omp barrier
    norm_rows(cfg->arch, cfg->norm_eps, c->x, n, C, L.norm2_w, L.norm2_b, xn);
    while (next_piece(work + WORK_MLP * nt, tid, nt, CHUNK_ROWS, &r0, &r1))
      mlp_rows(c, &L, r0, r1, xn, tmp);
#pragma omp barrier
    while (next_piece(work + WORK_DOWN * nt, tid, nt, RESIDUAL_CHUNK_ROWS, &r0, &r1))
      project_residual(c, L.wdown, L.bdown, r0, r1, c->hid, I, tmp);
#pragma omp barrier
  }
  norm_rows(cfg->arch, cfg->norm_eps, c->x, n, C, data_of(m->final_norm_weight),
            data_of(m->final_norm_bias), xn);
  float *out = c->compact ? c->compact : c->logits;
  row_range *head = c->work + cfg->num_layers * WORK_STAGES * nt;
  while (next_piece(head, tid, nt, HEAD_CHUNK_ROWS, &r0, &r1)) {
    c->rows(m->lm_head->data + r0 * C, r1 - r0, C, xn, C, n, out + r0, V);
    if (!c->compact) continue;
    /* these columns of every row: idle sequences get zeros */
    for (int64_t b = 0, i = 0; b < c->s->batch; b++) {
      float *dst = c->logits + b * V + r0;
      if (i < n && c->seq[i] == b)
        memcpy(dst, c->compact + i++ * V + r0, (size_t)(r1 - r0) * sizeof(float));
      else
        memset(dst, 0, (size_t)(r1 - r0) * sizeof(float));
    }
  }
}

/* cos | sin of each active token's rotary angles, (n, D), as ag_rope_table
 * computes them; dynamic scaling looks at the largest position of the step
 * (padding rows included), as the tape path does. */
static float *rope_rows(const ag_transformer *m, const decode_fast_step *s, const int64_t *seq,
                        int64_t n) {
  const ag_transformer_config *cfg = &m->config;
  int64_t D = cfg->head_dim, half = D / 2;
  const float *inv_freq = m->inv_freq;
  if (cfg->rope.scaling == AG_ROPE_DYNAMIC) {
    int32_t max_position = 0;
    for (int64_t b = 0; b < s->batch; b++)
      max_position = s->positions[b] > max_position ? s->positions[b] : max_position;
    float *f = ag_arena_alloc(s->arena, (size_t)half * sizeof(float), 64);
    if (!f || ag_rope_inv_freq(&cfg->rope, D, (int64_t)max_position + 1, f)) return NULL;
    inv_freq = f;
  }
  float *table = ag_arena_alloc(s->arena, (size_t)(n * D) * sizeof(float), 64);
  if (!table) return NULL;
  for (int64_t i = 0; i < n; i++) {
    float *row = table + i * D;
    int32_t p = s->positions[seq[i]];
    for (int64_t j = 0; j < half; j++) {
      float angle = (float)p * inv_freq[j];
      row[j] = (float)cos((double)angle);
      row[half + j] = (float)sin((double)angle);
    }
  }
  return table;
}

static void *scratch(ag_arena *a, int64_t floats) {
  return ag_arena_alloc(a, (size_t)(floats > 0 ? floats : 1) * sizeof(float), 64);
}

ag_status ag_decode_fast(const ag_transformer *m, const decode_fast_step *s, const float **logits) {
  *logits = NULL;
  const ag_transformer_config *cfg = &m->config;
  if (m->external && ag_transformer_check_weights(m))
    return ag_error_wrap(AG_ERR_INVALID, "decode");
  int64_t B = s->batch, C = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
  int64_t D = cfg->head_dim, HD = cfg->num_heads * D;
  int threads = omp_get_max_threads();
  int64_t n = 0;
  int64_t *seq = ag_arena_alloc(s->arena, (size_t)B * sizeof(int64_t), 64);
  float *out = scratch(s->arena, B * V);
  if (!seq || !out) return ag_error_set(AG_ERR_NOMEM, "decode: out of memory");
  for (int64_t b = 0; b < B; b++)
    if (s->counts[b]) seq[n++] = b;
  *logits = out;
  if (n == 0) { /* every sequence idle */
    memset(out, 0, (size_t)(B * V) * sizeof(float));
    return AG_OK;
  }
  if (path_setting != DECODE_FAST_THREADED &&
      (double)m->params->total * (double)n < (double)MIN_PARALLEL_FLOATS)
    threads = 1;
  int64_t tmp_floats = 2 * n * CHUNK_ROWS;
  if (tmp_floats < n * D) tmp_floats = n * D;
  step_ctx c = {.m = m,
                .s = s,
                .rows = pick_rows_kernel(),
                .n = n,
                .seq = seq,
                .x = scratch(s->arena, n * C),
                .xn = scratch(s->arena, threads * n * C),
                .q = scratch(s->arena, n * HD),
                .att = scratch(s->arena, n * HD),
                .hid = scratch(s->arena, n * I),
                .rope = cfg->arch == AG_ARCH_LLAMA ? rope_rows(m, s, seq, n) : NULL,
                .tmp = scratch(s->arena, threads * tmp_floats),
                .tmp_floats = tmp_floats,
                .scores = scratch(s->arena, threads * s->capacity),
                .compact = n < B ? scratch(s->arena, n * V) : NULL,
                .logits = out};
  int64_t stages = cfg->num_layers * WORK_STAGES + 1;
  c.threads = threads;
  c.work = ag_arena_alloc(s->arena, (size_t)(stages * threads) * sizeof *c.work, 64);
  if (!c.x || !c.xn || !c.q || !c.att || !c.hid || !c.tmp || !c.scores || !c.work ||
      (cfg->arch == AG_ARCH_LLAMA && !c.rope) || (n < B && !c.compact)) {
    *logits = NULL;
    return ag_error_set(AG_ERR_NOMEM, "decode: out of memory");
  }
  /* By key/value heads when they spread evenly enough over the threads
   * (Qwen2.5-0.5B's 2 heads on 2 threads; not 1 head, nor 3 on 2). */
  int64_t Hq = cfg->num_heads, Hkv = cfg->num_kv_heads;
  c.by_groups = Hkv % threads == 0 || Hkv >= 4 * threads;
  for (int64_t l = 0; l <= cfg->num_layers; l++) {
    row_range *w = c.work + l * WORK_STAGES * threads;
    if (l == cfg->num_layers) { /* the LM head */
      ranges_init(w, V, 4, threads);
      break;
    }
    ranges_init(w + WORK_QKV * threads, c.by_groups ? Hkv : Hq + 2 * Hkv, 1, threads);
    ranges_init(w + WORK_ATTEND * threads, n * Hq, 1, threads);
    ranges_init(w + WORK_O * threads, C, 4, threads);
    ranges_init(w + WORK_MLP * threads, I, 4, threads);
    ranges_init(w + WORK_DOWN * threads, C, 4, threads);
  }
  for (int64_t i = 0; i < n; i++) { /* token embeddings (+ learned positions) */
    int64_t b = seq[i];
    const float *e = m->embed->data + (int64_t)s->tokens[b] * C;
    float *x = c.x + i * C;
    if (cfg->arch == AG_ARCH_GPT2) {
      const float *p = m->positions->data + (int64_t)s->positions[b] * C;
      for (int64_t k = 0; k < C; k++) x[k] = e[k] + p[k];
    } else {
      memcpy(x, e, (size_t)C * sizeof(float));
    }
  }
#pragma omp parallel num_threads(threads) if (threads > 1)
  step_thread(&c, omp_get_thread_num());
  return AG_OK;
}
