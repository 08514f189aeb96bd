/* Convolution (im2col + OpenBLAS sgemm) and 2-D max / average pooling, all
 * on NCHW tensors.
 *
 * conv2d lays its patches out as rows by example, cols (N*OH*OW, C*kh*kw):
 * row (n, oh, ow) is the input patch under output pixel (oh, ow) of image n,
 * in (c, i, j) order, the order of the weight's (C, kh, kw). That is the A
 * matrix the layer hooks want, so backward hands it out without a copy.
 * The forward product and the weight gradient are one sgemm each over the
 * whole batch; the patch gradients for dx go in cache-sized blocks of
 * images. Everything around the sgemms (im2col, col2im, the NCHW <-> rows
 * transposes) is written to cost little next to them: a CNN training step
 * should spend most of its time in sgemm. */
#include "tensor/internal.h"

#include <cblas.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#include <limits.h>
#include <omp.h>
#include <string.h>

/* Below this many floats of work a loop runs on one thread: a parallel
 * region costs a few microseconds. */
#define PARALLEL_MIN_FLOATS 32768
/* Rows per band of a transpose: a band of 32 rows reads whole cache lines
 * of the source and writes 32-float runs of each destination row. */
#define TRANSPOSE_TILE 32
/* Backward computes the patch gradients in blocks of images of about this
 * many floats (4 MiB): col2im then reads them from cache, not memory, and dx
 * needs no second full-size im2col buffer. */
#define DCOLS_BLOCK_FLOATS ((int64_t)1 << 20)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, all row-major. */
static void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                 int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Sum of n floats in SUM_LANES independent partial sums, which the compiler
 * keeps in one vector register instead of a serial chain of adds. */
#define SUM_LANES 16
static float sum_floats(const float *v, int64_t n) {
  float lanes[SUM_LANES] = {0};
  int64_t i = 0;
  for (; i + SUM_LANES <= n; i += SUM_LANES)
    for (int l = 0; l < SUM_LANES; l++) lanes[l] += v[i + l];
  float s = 0.0f;
  for (; i < n; i++) s += v[i];
  for (int l = 0; l < SUM_LANES; l++) s += lanes[l];
  return s;
}

/* dst[c * ld_dst + r] (+)= src[r * ld_src + c] (+ bias[c]) for r in [r0, r1),
 * c in [c0, c1): one block of a transpose, element by element. With
 * sums, also sums[r - r0] += the block's part of source row r. */
static void transpose_block(const float *src, int64_t ld_src, float *dst, int64_t ld_dst,
                            int64_t r0, int64_t r1, int64_t c0, int64_t c1, const float *bias,
                            bool accumulate, float *sums) {
  for (int64_t c = c0; c < c1; c++) {
    float add = bias ? bias[c] : 0.0f;
    float *out = dst + c * ld_dst;
    if (accumulate)
      for (int64_t r = r0; r < r1; r++) out[r] += src[r * ld_src + c];
    else
      for (int64_t r = r0; r < r1; r++) out[r] = src[r * ld_src + c] + add;
  }
  if (sums)
    for (int64_t r = r0; r < r1; r++) sums[r - r0] += sum_floats(src + r * ld_src + c0, c1 - c0);
}

#if defined(__AVX__)
/* The same for an 8 x 8 block in AVX registers: eight row loads, three
 * rounds of shuffles, eight row stores (the classic 8x8 float transpose).
 * Several times faster than the element loop, which reads a column at a
 * stride of whole rows. With sums, the source rows are also added to
 * sums[0..7], one vector per row. */
static void transpose_8x8(const float *src, int64_t ld_src, float *dst, int64_t ld_dst,
                          const float *bias, bool accumulate, __m256 *sums) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld_src);
  if (sums)
    for (int i = 0; i < 8; i++) sums[i] = _mm256_add_ps(sums[i], r[i]);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int j = 0; j < 8; j++) {
    /* output row j: low halves from rows 0-3, high halves from rows 4-7 */
    __m256 out = j < 4 ? _mm256_permute2f128_ps(u[j], u[j + 4], 0x20)
                       : _mm256_permute2f128_ps(u[j - 4], u[j], 0x31);
    float *d = dst + j * ld_dst;
    if (accumulate)
      out = _mm256_add_ps(out, _mm256_loadu_ps(d));
    else if (bias)
      out = _mm256_add_ps(out, _mm256_set1_ps(bias[j]));
    _mm256_storeu_ps(d, out);
  }
}

static float horizontal_sum(__m256 v) {
  float lanes[8];
  _mm256_storeu_ps(lanes, v);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}
#define TRANSPOSE_KERNEL 8
#else
#define TRANSPOSE_KERNEL 1 /* no vector kernel: transpose_block does it all */
#endif

/* For each of `count` matrices stored back to back: dst (cols, rows) =
 * src (rows, cols)^T, plus bias[c] on dst row c when bias is given; with
 * accumulate, added to dst instead of stored. With row_sums (count, rows),
 * also row_sums[b][r] = the sum of row r of source matrix b (the bias
 * gradient, read on the way instead of in a second pass). Threads split
 * (matrix, band of TRANSPOSE_TILE rows); each band goes by 8x8 register
 * blocks where the CPU has AVX, and element by element at the edges. */
static void transpose_batch(const float *src, float *dst, int64_t count, int64_t rows, int64_t cols,
                            const float *bias, bool accumulate, float *row_sums) {
  int64_t bands = (rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
#pragma omp parallel for collapse(2) schedule(static) if (count * rows * cols > PARALLEL_MIN_FLOATS)
  for (int64_t b = 0; b < count; b++)
    for (int64_t band = 0; band < bands; band++) {
      const float *s = src + b * rows * cols;
      float *d = dst + b * rows * cols;
      int64_t r0 = band * TRANSPOSE_TILE, r1 = min64(r0 + TRANSPOSE_TILE, rows);
      /* [r0, r_full) x [0, c_full) in whole kernel blocks */
      int64_t r_full = r0 + (r1 - r0) / TRANSPOSE_KERNEL * TRANSPOSE_KERNEL;
      int64_t c_full = cols / TRANSPOSE_KERNEL * TRANSPOSE_KERNEL;
      float sums[TRANSPOSE_TILE] = {0}; /* of rows r0.., this matrix */
      float *band_sums = row_sums ? sums : NULL;
#if defined(__AVX__)
      __m256 vector_sums[TRANSPOSE_TILE];
      for (int64_t r = r0; r < r_full; r++) vector_sums[r - r0] = _mm256_setzero_ps();
      for (int64_t c = 0; c < c_full; c += 8)
        for (int64_t r = r0; r < r_full; r += 8)
          transpose_8x8(s + r * cols + c, cols, d + c * rows + r, rows, bias ? bias + c : NULL,
                        accumulate, row_sums ? vector_sums + (r - r0) : NULL);
      if (row_sums)
        for (int64_t r = r0; r < r_full; r++) sums[r - r0] += horizontal_sum(vector_sums[r - r0]);
#else
      transpose_block(s, cols, d, rows, r0, r_full, 0, c_full, bias, accumulate, band_sums);
#endif
      transpose_block(s, cols, d, rows, r_full, r1, 0, c_full, bias, accumulate,
                      band_sums ? band_sums + (r_full - r0) : NULL);
      transpose_block(s, cols, d, rows, r0, r1, c_full, cols, bias, accumulate, band_sums);
      if (row_sums)
        for (int64_t r = r0; r < r1; r++) row_sums[b * rows + r] = sums[r - r0];
    }
}

/* ---- conv2d ------------------------------------------------------------------ */

typedef struct conv_geometry {
  int64_t N, C, H, W; /* input */
  int64_t O, kh, kw;  /* weight (O, C, kh, kw) */
  int64_t stride, padding;
  int64_t OH, OW; /* output (N, O, OH, OW) */
  int64_t P;      /* OH * OW: patch rows per image */
  int64_t K;      /* C * kh * kw: patch length */
  bool pointwise; /* 1x1, stride 1, no padding: im2col is a transpose */
} conv_geometry;

static conv_geometry conv_geometry_of(const ag_node *n) {
  const ag_tensor *x = n->in[0], *w = n->in[1];
  conv_geometry g = {.N = x->shape[0],
                     .C = x->shape[1],
                     .H = x->shape[2],
                     .W = x->shape[3],
                     .O = w->shape[0],
                     .kh = w->shape[2],
                     .kw = w->shape[3],
                     .stride = n->iarg[0],
                     .padding = n->iarg[1]};
  g.OH = (g.H + 2 * g.padding - g.kh) / g.stride + 1;
  g.OW = (g.W + 2 * g.padding - g.kw) / g.stride + 1;
  g.P = g.OH * g.OW;
  g.K = g.C * g.kh * g.kw;
  g.pointwise = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.padding == 0;
  return g;
}

/* Kernel rows [*lo, *hi) of a window whose top row is input row ih0 fall
 * inside the H rows of the image; the others read padding. Padding may
 * exceed the kernel, so the range can be empty. */
static void kernel_rows_inside(int64_t ih0, int64_t kh, int64_t H, int64_t *lo, int64_t *hi) {
  *lo = min64(max64(-ih0, 0), kh);
  *hi = max64(min64(H - ih0, kh), *lo);
}

/* One patch row of a 3-wide kernel whose window lies inside the image with
 * a column to spare on the right: tap row (c, i) is a run of 3 floats at
 * src + c * plane + i * W. Each run is copied as 4 floats, one vector move;
 * the extra float lands on the next run's first slot, which is written
 * after it. The last channel's runs are copied exactly, so nothing spills
 * into the next patch row (another thread's, perhaps). */
static void copy_interior_3wide(const float *src, int64_t C, int64_t kh, int64_t plane, int64_t W,
                                float *row) {
  for (int64_t c = 0; c < C; c++) {
    const float *in = src + c * plane;
    float *out = row + c * kh * 3;
    if (c + 1 < C)
      for (int64_t i = 0; i < kh; i++) memcpy(out + 3 * i, in + i * W, 4 * sizeof(float));
    else
      for (int64_t i = 0; i < kh; i++) memcpy(out + 3 * i, in + i * W, 3 * sizeof(float));
  }
}

/* cols (count*P, K) from images [first, first + count) of x (N, C, H, W).
 * Padding reads as 0. Threads split the output rows (n, oh) and write each
 * patch row front to back; a window inside the image is, per (c, i), a
 * kw-float run of one input row (stride moves the window, not the taps). */
static void im2col(const float *x, const conv_geometry *g, int64_t first, int64_t count,
                   float *cols) {
  const int64_t C = g->C, H = g->H, W = g->W, kh = g->kh, kw = g->kw, K = g->K;
  const int64_t OH = g->OH, OW = g->OW, s = g->stride, p = g->padding;
  if (g->pointwise) { /* x_n (C, H*W) -> cols_n (H*W, C) */
    transpose_batch(x + first * C * g->P, cols, count, C, g->P, NULL, false, NULL);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static) if (count * g->P * K > PARALLEL_MIN_FLOATS)
  for (int64_t n = 0; n < count; n++)
    for (int64_t oh = 0; oh < OH; oh++) {
      const float *image = x + (first + n) * C * H * W;
      int64_t ih0 = oh * s - p, i_lo, i_hi;
      kernel_rows_inside(ih0, kh, H, &i_lo, &i_hi);
      for (int64_t ow = 0; ow < OW; ow++) {
        float *row = cols + ((n * OH + oh) * OW + ow) * K;
        int64_t iw0 = ow * s - p;
        bool inside = iw0 >= 0 && iw0 + kw <= W;
        if (kw == 3 && inside && iw0 + 4 <= W && i_lo == 0 && i_hi == kh) {
          copy_interior_3wide(image + ih0 * W + iw0, C, kh, H * W, W, row);
          continue;
        }
        for (int64_t c = 0; c < C; c++) {
          float *dst = row + c * kh * kw;
          const float *plane = image + c * H * W;
          int64_t at = ih0 * W + iw0; /* offset of tap (0, 0), maybe outside */
          for (int64_t q = 0; q < i_lo * kw; q++) dst[q] = 0.0f;
          if (inside && kw == 3) { /* the common 3x3 case, unrolled */
            for (int64_t i = i_lo; i < i_hi; i++) {
              const float *in = plane + at + i * W;
              float *out = dst + i * 3;
              out[0] = in[0];
              out[1] = in[1];
              out[2] = in[2];
            }
          } else if (inside) {
            for (int64_t i = i_lo; i < i_hi; i++)
              for (int64_t j = 0; j < kw; j++) dst[i * kw + j] = plane[at + i * W + j];
          } else {
            for (int64_t i = i_lo; i < i_hi; i++)
              for (int64_t j = 0; j < kw; j++) {
                int64_t iw = iw0 + j;
                dst[i * kw + j] = iw >= 0 && iw < W ? plane[at + i * W + j] : 0.0f;
              }
          }
          for (int64_t q = i_hi * kw; q < kh * kw; q++) dst[q] = 0.0f;
        }
      }
    }
}

/* Adds into one input row (c, ih) the taps (c, i, 0..2) of the patch rows
 * of one output row, for stride 1: input column x gathers tap j from patch
 * row ow = x + p - j. taps points at tap (c, i, 0) of patch row 0; patch
 * rows are K floats apart. Each dx element is loaded and stored once. */
static void add_taps_3wide_stride1(float *row, const float *taps, int64_t K, int64_t W, int64_t OW,
                                   int64_t p) {
  int64_t x_lo = min64(max64(2 - p, 0), W), x_hi = max64(min64(OW - p, W), x_lo);
  for (int64_t x = x_lo; x < x_hi; x++) { /* all three taps exist */
    const float *t0 = taps + (x + p) * K;
    row[x] += t0[0] + t0[1 - K] + t0[2 - 2 * K];
  }
  for (int64_t x = 0; x < W; x++) { /* the edges, where some taps fall outside */
    if (x == x_lo) x = x_hi;
    if (x >= W) break;
    float sum = 0.0f;
    for (int64_t j = 0; j < 3; j++) {
      int64_t ow = x + p - j;
      if (ow >= 0 && ow < OW) sum += taps[ow * K + j];
    }
    row[x] += sum;
  }
}

static void col2im_add_3wide_stride1(const float *dcols, const conv_geometry *g, int64_t first,
                                     int64_t count, float *dx) {
  const int64_t C = g->C, H = g->H, W = g->W, kh = g->kh, K = g->K, OH = g->OH, OW = g->OW;
#pragma omp parallel for schedule(static) if (count > 1 && count * g->P * K > PARALLEL_MIN_FLOATS)
  for (int64_t n = 0; n < count; n++) {
    float *image = dx + (first + n) * C * H * W;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t ih0 = oh - g->padding, i_lo, i_hi;
      kernel_rows_inside(ih0, kh, H, &i_lo, &i_hi);
      const float *patches = dcols + (n * OH + oh) * OW * K; // (OW, K)
      for (int64_t c = 0; c < C; c++)
        for (int64_t i = i_lo; i < i_hi; i++)
          add_taps_3wide_stride1(image + (c * H + ih0 + i) * W, patches + (c * kh + i) * 3, K, W,
                                 OW, g->padding);
    }
  }
}

/* The adjoint of im2col: adds dcols (count*P, K) into dx for images
 * [first, first + count). Windows overlap, so threads split whole images;
 * each reads its rows of dcols front to back (backward hands them over in
 * cache-sized blocks) and adds every patch row into its image. */
static void col2im_add(const float *dcols, const conv_geometry *g, int64_t first, int64_t count,
                       float *dx) {
  const int64_t C = g->C, H = g->H, W = g->W, kh = g->kh, kw = g->kw, K = g->K;
  const int64_t OH = g->OH, OW = g->OW, s = g->stride, p = g->padding;
  if (g->pointwise) { /* dcols_n (H*W, C) -> dx_n (C, H*W) */
    transpose_batch(dcols, dx + first * C * g->P, count, g->P, C, NULL, true, NULL);
    return;
  }
  if (kw == 3 && s == 1) {
    col2im_add_3wide_stride1(dcols, g, first, count, dx);
    return;
  }
#pragma omp parallel for schedule(static) if (count > 1 && count * g->P * K > PARALLEL_MIN_FLOATS)
  for (int64_t n = 0; n < count; n++) {
    float *image = dx + (first + n) * C * H * W;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t ih0 = oh * s - p, i_lo, i_hi;
      kernel_rows_inside(ih0, kh, H, &i_lo, &i_hi);
      for (int64_t ow = 0; ow < OW; ow++) {
        const float *row = dcols + ((n * OH + oh) * OW + ow) * K;
        int64_t iw0 = ow * s - p;
        bool inside = iw0 >= 0 && iw0 + kw <= W;
        for (int64_t c = 0; c < C; c++) {
          const float *src = row + c * kh * kw;
          float *plane = image + c * H * W;
          int64_t at = ih0 * W + iw0; /* offset of tap (0, 0), maybe outside */
          if (inside && kw == 3) {    /* the common 3x3 case, unrolled */
            for (int64_t i = i_lo; i < i_hi; i++) {
              float *out = plane + at + i * W;
              const float *in = src + i * 3;
              out[0] += in[0];
              out[1] += in[1];
              out[2] += in[2];
            }
          } else if (inside) {
            for (int64_t i = i_lo; i < i_hi; i++)
              for (int64_t j = 0; j < kw; j++) plane[at + i * W + j] += src[i * kw + j];
          } else {
            for (int64_t i = i_lo; i < i_hi; i++)
              for (int64_t j = 0; j < kw; j++) {
                int64_t iw = iw0 + j;
                if (iw >= 0 && iw < W) plane[at + i * W + j] += src[i * kw + j];
              }
          }
        }
      }
    }
  }
}

/* Feature maps of at least this many pixels go image by image: one sgemm
 * per image writes its NCHW output (O, P) directly and reads dy (O, P) as
 * it is, so neither pass needs a transpose, and an image's patches are
 * still in cache when its sgemm reads them. Smaller maps make sgemms too
 * thin (P is their inner or outer dimension); they go as one sgemm over
 * the batch with transposes around it. */
#define PER_IMAGE_MIN_PIXELS 128

static bool per_image(const conv_geometry *g) { return g->P >= PER_IMAGE_MIN_PIXELS; }

static ag_status conv2d_forward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
  conv_geometry g = conv_geometry_of(n);
  int64_t rows = g.N * g.P;
  float *cols = ag_tape_alloc(t, (size_t)(rows * g.K) * sizeof(float)); // (rows, K)
  if (!cols) return AG_ERR_NOMEM;
  n->saved = cols;
  if (per_image(&g)) {
    /* threads take whole images; sgemm inside a parallel region runs on
     * the calling thread (OpenMP OpenBLAS) */
#pragma omp parallel for schedule(static) if (g.N > 1)
    for (int64_t i = 0; i < g.N; i++) {
      float *cols_i = cols + i * g.P * g.K, *y_i = y->data + i * g.O * g.P;
      im2col(x->data, &g, i, 1, cols_i);
      float beta = 0.0f;
      if (bias) {
        for (int64_t o = 0; o < g.O; o++)
          for (int64_t q = 0; q < g.P; q++) y_i[o * g.P + q] = bias->data[o];
        beta = 1.0f;
      }
      /* y_i (O, P) = W (O, K) @ cols_i^T (K, P) */
      gemm(false, true, g.O, g.P, g.K, 1.0f, w->data, g.K, cols_i, g.K, beta, y_i, g.P);
    }
    return AG_OK;
  }
  float *y_rows = ag_tape_alloc(t, (size_t)(rows * g.O) * sizeof(float)); // (rows, O)
  if (!y_rows) return AG_ERR_NOMEM;
  im2col(x->data, &g, 0, g.N, cols);
  /* y_rows (rows, O) = cols (rows, K) @ W^T (K, O), W viewed (O, K) */
  gemm(false, true, rows, g.O, g.K, 1.0f, cols, g.K, w->data, g.K, 0.0f, y_rows, g.O);
  /* per image (P, O) -> (O, P): NCHW, bias added on the way */
  transpose_batch(y_rows, y->data, g.N, g.P, g.O, bias ? bias->data : NULL, false, NULL);
  return AG_OK;
}

/* Backward image by image (see PER_IMAGE_MIN_PIXELS): each thread sums its
 * images' weight gradients dy_i (O, P) @ cols_i (P, K) into a private
 * (O, K) buffer, and computes dcols_i (P, K) = dy_i^T @ W into a private
 * buffer that col2im reads back from cache. The private sums are added in
 * thread order, so a run is reproducible for a given thread count. The
 * layer hooks want G as rows (rows, O): it is built only when a hook is
 * set. */
static ag_status conv2d_backward_per_image(ag_tape *t, ag_node *n, const conv_geometry *gp) {
  const conv_geometry g = *gp;
  ag_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
  const float *cols = n->saved, *dy = y->grad;
  int64_t rows = g.N * g.P;
  if (ag_tape_has_layer_hook(t)) {
    float *G = ag_tape_alloc(t, (size_t)(rows * g.O) * sizeof(float)); // (rows, O)
    if (!G) return AG_ERR_NOMEM;
    transpose_batch(dy, G, g.N, g.O, g.P, NULL, false, NULL);
    ag_layer_event ev = {AG_LAYER_CONV2D, w, bias, cols, G, rows, g.K, g.O, g.N, g.P};
    ag_tape_fire_layer_hook(t, &ev);
  }
  bool want_w = w->requires_grad, want_b = bias && bias->requires_grad;
  bool want_x = x->requires_grad;
  float *gw = want_w ? ag_tape_grad(t, w) : NULL, *gb = want_b ? ag_tape_grad(t, bias) : NULL;
  float *gx = want_x ? ag_tape_grad(t, x) : NULL;
  if ((want_w && !gw) || (want_b && !gb) || (want_x && !gx)) return AG_ERR_NOMEM;
  int64_t threads = min64(omp_get_max_threads(), g.N);
  float *dw_part = want_w ? ag_tape_alloc(t, (size_t)(threads * g.O * g.K) * sizeof(float)) : NULL;
  float *db_image = want_b ? ag_tape_alloc(t, (size_t)(g.N * g.O) * sizeof(float)) : NULL;
  float *dcols = want_x ? ag_tape_alloc(t, (size_t)(threads * g.P * g.K) * sizeof(float)) : NULL;
  if ((want_w && !dw_part) || (want_b && !db_image) || (want_x && !dcols)) return AG_ERR_NOMEM;
#pragma omp parallel num_threads((int)threads)
  {
    int64_t id = omp_get_thread_num();
    float *my_dw = want_w ? dw_part + id * g.O * g.K : NULL;
    float *my_dcols = want_x ? dcols + id * g.P * g.K : NULL;
    bool first = true;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < g.N; i++) {
      const float *dy_i = dy + i * g.O * g.P, *cols_i = cols + i * g.P * g.K;
      if (want_b)
        for (int64_t o = 0; o < g.O; o++) db_image[i * g.O + o] = sum_floats(dy_i + o * g.P, g.P);
      if (want_w) { /* my_dw (O, K) (+)= dy_i (O, P) @ cols_i (P, K) */
        gemm(false, false, g.O, g.K, g.P, 1.0f, dy_i, g.P, cols_i, g.K, first ? 0.0f : 1.0f, my_dw,
             g.K);
        first = false;
      }
      if (want_x) { /* dcols_i (P, K) = dy_i^T (P, O) @ W (O, K) */
        gemm(true, false, g.P, g.K, g.O, 1.0f, dy_i, g.P, w->data, g.K, 0.0f, my_dcols, g.K);
        col2im_add(my_dcols, &g, i, 1, gx);
      }
    }
    if (want_w && first) memset(my_dw, 0, (size_t)(g.O * g.K) * sizeof(float));
  }
  if (want_w)
    for (int64_t id = 0; id < threads; id++) {
      const float *part = dw_part + id * g.O * g.K;
      for (int64_t j = 0; j < g.O * g.K; j++) gw[j] += part[j];
    }
  if (want_b)
    for (int64_t i = 0; i < g.N; i++)
      for (int64_t o = 0; o < g.O; o++) gb[o] += db_image[i * g.O + o];
  return AG_OK;
}

static ag_status conv2d_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2], *y = n->out;
  conv_geometry g = conv_geometry_of(n);
  if (per_image(&g)) return conv2d_backward_per_image(t, n, &g);
  int64_t rows = g.N * g.P;
  const float *cols = n->saved;                                      // (rows, K)
  const float *dy = y->grad;                                         // (N, O, OH, OW)
  float *G = ag_tape_alloc(t, (size_t)(rows * g.O) * sizeof(float)); // (rows, O)
  if (!G) return AG_ERR_NOMEM;
  if (bias && bias->requires_grad) {
    /* the bias gradient, column sums of G, summed per image from dy on the
     * way, then over images in a fixed order (the same result every run) */
    float *gb = ag_tape_grad(t, bias);
    float *per_image = ag_tape_alloc(t, (size_t)(max64(1, g.N * g.O)) * sizeof(float)); // (N, O)
    if (!gb || !per_image) return AG_ERR_NOMEM;
    transpose_batch(dy, G, g.N, g.O, g.P, NULL, false, per_image);
    for (int64_t i = 0; i < g.N; i++)
      for (int64_t o = 0; o < g.O; o++) gb[o] += per_image[i * g.O + o];
  } else {
    transpose_batch(dy, G, g.N, g.O, g.P, NULL, false, NULL);
  }
  ag_layer_event ev = {AG_LAYER_CONV2D, w, bias, cols, G, rows, g.K, g.O, g.N, g.P};
  ag_tape_fire_layer_hook(t, &ev);
  if (w->requires_grad) {
    float *gw = ag_tape_grad(t, w);
    if (!gw) return AG_ERR_NOMEM;
    /* dW (O, K) += G^T (O, rows) @ cols (rows, K) */
    gemm(true, false, g.O, g.K, rows, 1.0f, G, g.O, cols, g.K, 1.0f, gw, g.K);
  }
  if (x->requires_grad) {
    float *gx = ag_tape_grad(t, x);
    /* whole images per block, a multiple of the thread count so that
     * col2im splits evenly */
    int64_t threads = omp_get_max_threads();
    int64_t block = max64(1, DCOLS_BLOCK_FLOATS / max64(1, g.P * g.K));
    block = min64(max64(threads, block - block % threads), g.N);
    float *dcols = ag_tape_alloc(t, (size_t)(max64(1, block * g.P * g.K)) * sizeof(float));
    if (!gx || !dcols) return AG_ERR_NOMEM;
    for (int64_t first = 0; first < g.N; first += block) {
      int64_t count = min64(block, g.N - first);
      /* dcols (count*P, K) = G (count*P, O) @ W (O, K) */
      gemm(false, false, count * g.P, g.K, g.O, 1.0f, G + first * g.P * g.O, g.O, w->data, g.K,
           0.0f, dcols, g.K);
      col2im_add(dcols, &g, first, count, gx);
    }
  }
  return AG_OK;
}

ag_tensor *ag_conv2d(ag_tape *t, ag_tensor *x, ag_tensor *weight, ag_tensor *bias, int stride,
                     int padding) {
  if (!ag_tape_ok(t, x) || !ag_tape_ok(t, weight)) return NULL;
  char sx[96], sw[96], sb[96];
  ag_shape_string(x, sx, sizeof sx);
  ag_shape_string(weight, sw, sizeof sw);
  if (x->ndim != 4 || weight->ndim != 4)
    return ag_tape_fail(t, AG_ERR_SHAPE,
                        "conv2d: input %s must be (N, C, H, W) and weight %s (O, C, kh, kw)", sx,
                        sw);
  for (int d = 0; d < 4; d++)
    if (weight->shape[d] < 1 || (d > 0 && x->shape[d] < 1))
      return ag_tape_fail(t, AG_ERR_SHAPE, "conv2d: empty input %s or weight %s", sx, sw);
  if (x->shape[1] != weight->shape[1])
    return ag_tape_fail(t, AG_ERR_SHAPE,
                        "conv2d: input %s has %lld channels but weight %s expects %lld", sx,
                        (long long)x->shape[1], sw, (long long)weight->shape[1]);
  if (stride < 1)
    return ag_tape_fail(t, AG_ERR_INVALID,
                        "conv2d: stride must be >= 1, got %d (input %s, weight %s)", stride, sx,
                        sw);
  if (padding < 0)
    return ag_tape_fail(t, AG_ERR_INVALID,
                        "conv2d: padding must be >= 0, got %d (input %s, weight %s)", padding, sx,
                        sw);
  int64_t padded_h = x->shape[2] + 2 * (int64_t)padding,
          padded_w = x->shape[3] + 2 * (int64_t)padding;
  if (weight->shape[2] > padded_h || weight->shape[3] > padded_w)
    return ag_tape_fail(t, AG_ERR_SHAPE,
                        "conv2d: kernel of weight %s is larger than input %s padded by %d", sw, sx,
                        padding);
  if (bias && (bias->ndim != 1 || bias->shape[0] != weight->shape[0]))
    return ag_tape_fail(t, AG_ERR_SHAPE, "conv2d: bias %s does not fit weight %s",
                        ag_shape_string(bias, sb, sizeof sb), sw);
  int64_t OH = (padded_h - weight->shape[2]) / stride + 1;
  int64_t OW = (padded_w - weight->shape[3]) / stride + 1;
  int64_t rows = x->shape[0] * OH * OW;
  int64_t K = weight->shape[1] * weight->shape[2] * weight->shape[3];
  if (rows > INT_MAX || K > INT_MAX || weight->shape[0] > INT_MAX)
    return ag_tape_fail(t, AG_ERR_UNSUPPORTED,
                        "conv2d: input %s with weight %s is too large for one sgemm", sx, sw);
  x = ag_contiguous(t, x);
  weight = ag_contiguous(t, weight);
  if (bias) bias = ag_contiguous(t, bias);
  if (!x || !weight || ag_tape_status(t)) return NULL;
  ag_op_call c = {.op = AG_OP_CONV2D,
                  .in = {x, weight, bias},
                  .n_in = 3,
                  .out_ndim = 4,
                  .out_shape = {x->shape[0], weight->shape[0], OH, OW},
                  .iarg = {stride, padding}};
  return ag_op_run(t, &c);
}

/* ---- pooling ----------------------------------------------------------------- */

typedef struct pool_geometry {
  int64_t planes, H, W; /* input (N, C, H, W): N*C independent planes */
  int64_t kernel, stride, padding;
  int64_t OH, OW;
} pool_geometry;

static pool_geometry pool_geometry_of(const ag_node *n) {
  const ag_tensor *x = n->in[0];
  pool_geometry g = {.planes = x->shape[0] * x->shape[1],
                     .H = x->shape[2],
                     .W = x->shape[3],
                     .kernel = n->iarg[0],
                     .stride = n->iarg[1],
                     .padding = n->iarg[2]};
  g.OH = n->out->shape[2];
  g.OW = n->out->shape[3];
  return g;
}

/* The window of output (oh, ow) clipped to the image: rows [h0, h1), cols
 * [w0, w1). Never empty, since padding <= kernel / 2 is checked. */
typedef struct pool_window {
  int64_t h0, h1, w0, w1;
} pool_window;

static pool_window window_of(const pool_geometry *g, int64_t oh, int64_t ow) {
  int64_t hs = oh * g->stride - g->padding, ws = ow * g->stride - g->padding;
  return (pool_window){max64(hs, 0), min64(hs + g->kernel, g->H), max64(ws, 0),
                       min64(ws + g->kernel, g->W)};
}

/* The first maximum of (a, b) and where it is; NaN wins as in PyTorch.
 * Blended through integer masks: GCC turns a ?: on floats into a branch,
 * which mispredicts on relu outputs (ties and near-ties everywhere). */
static inline void max_with_index(float a, int32_t ia, float b, int32_t ib, float *m, int32_t *im) {
  int32_t take_b = -(int32_t)((b > a) | ((b != b) & (a == a))); /* 0 or all ones */
  int32_t bits_a, bits_b;
  memcpy(&bits_a, &a, sizeof bits_a);
  memcpy(&bits_b, &b, sizeof bits_b);
  int32_t bits = bits_a ^ ((bits_a ^ bits_b) & take_b);
  memcpy(m, &bits, sizeof bits);
  *im = ia ^ ((ia ^ ib) & take_b);
}

#if defined(__AVX2__)
/* Lanes 0, 2, .., 14 (even) or 1, 3, .., 15 (odd) of the 16 floats lo, hi:
 * shuffle within 128-bit halves, then put the 64-bit quarters in order. */
static inline __m256 even_lanes(__m256 lo, __m256 hi) {
  __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}
static inline __m256 odd_lanes(__m256 lo, __m256 hi) {
  __m256 s = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* max_with_index on 8 lanes: indices ride along as int32 bit patterns. */
static inline void max_with_index_8(__m256 a, __m256i ia, __m256 b, __m256i ib, __m256 *m,
                                    __m256i *im) {
  __m256 take_b =
      _mm256_or_ps(_mm256_cmp_ps(b, a, _CMP_GT_OQ), _mm256_and_ps(_mm256_cmp_ps(b, b, _CMP_UNORD_Q),
                                                                  _mm256_cmp_ps(a, a, _CMP_ORD_Q)));
  *m = _mm256_blendv_ps(a, b, take_b);
  *im = _mm256_castps_si256(
      _mm256_blendv_ps(_mm256_castsi256_ps(ia), _mm256_castsi256_ps(ib), take_b));
}

/* Outputs [ow, ow + 8) of one output row: windows start at input column
 * 2 * ow of rows top and bottom (input row `row` of the plane). */
static void maxpool_2x2_8(const float *top, const float *bottom, int64_t ow, int32_t row, int32_t W,
                          float *out, int32_t *at) {
  const float *t = top + 2 * ow, *b = bottom + 2 * ow;
  __m256 t0 = _mm256_loadu_ps(t), t1 = _mm256_loadu_ps(t + 8);
  __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
  __m256i i_tl = _mm256_add_epi32(_mm256_set1_epi32(row + 2 * (int32_t)ow),
                                  _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  __m256i one = _mm256_set1_epi32(1), i_bl = _mm256_add_epi32(i_tl, _mm256_set1_epi32(W));
  __m256 m_top, m_bottom, m;
  __m256i i_top, i_bottom, i;
  max_with_index_8(even_lanes(t0, t1), i_tl, odd_lanes(t0, t1), _mm256_add_epi32(i_tl, one), &m_top,
                   &i_top);
  max_with_index_8(even_lanes(b0, b1), i_bl, odd_lanes(b0, b1), _mm256_add_epi32(i_bl, one),
                   &m_bottom, &i_bottom);
  max_with_index_8(m_top, i_top, m_bottom, i_bottom, &m, &i);
  _mm256_storeu_ps(out + ow, m);
  _mm256_storeu_si256((__m256i *)(at + ow), i);
}
#endif

/* 2x2 windows at stride 2 without padding, the usual CNN downsampling:
 * eight outputs at a time where the CPU has AVX2, one at a time for the
 * rest. Row-major order of the window (top-left, top-right, bottom-left,
 * bottom-right) breaks ties either way. */
static void maxpool_2x2(const float *x, const pool_geometry *g, float *y, int32_t *argmax) {
  const int64_t W = g->W, OH = g->OH, OW = g->OW;
#pragma omp parallel for collapse(2)                                                               \
    schedule(static) if (g->planes * g->H * W > PARALLEL_MIN_FLOATS)
  for (int64_t pl = 0; pl < g->planes; pl++)
    for (int64_t oh = 0; oh < OH; oh++) {
      const float *top = x + (pl * g->H + 2 * oh) * W, *bottom = top + W;
      float *out = y + (pl * OH + oh) * OW;
      int32_t *at = argmax + (pl * OH + oh) * OW;
      int32_t row = (int32_t)(2 * oh * W);
      int64_t ow = 0;
#if defined(__AVX2__)
      /* the 16 floats read per row end at 2 * (ow + 8) <= 2 * OW <= W */
      for (; ow + 8 <= OW; ow += 8) maxpool_2x2_8(top, bottom, ow, row, (int32_t)W, out, at);
#endif
      for (; ow < OW; ow++) {
        int32_t left = row + (int32_t)(2 * ow);
        float m_top, m_bottom;
        int32_t i_top, i_bottom;
        max_with_index(top[2 * ow], left, top[2 * ow + 1], left + 1, &m_top, &i_top);
        max_with_index(bottom[2 * ow], left + (int32_t)W, bottom[2 * ow + 1], left + (int32_t)W + 1,
                       &m_bottom, &i_bottom);
        max_with_index(m_top, i_top, m_bottom, i_bottom, &out[ow], &at[ow]);
      }
    }
}

static ag_status maxpool2d_forward(ag_tape *t, ag_node *n) {
  pool_geometry g = pool_geometry_of(n);
  const float *x = n->in[0]->data;
  float *y = n->out->data;
  /* argmax of each output inside its plane (h * W + w), for backward */
  int32_t *argmax = ag_tape_alloc(t, (size_t)(n->out->numel ? n->out->numel : 1) * sizeof *argmax);
  if (!argmax) return AG_ERR_NOMEM;
  int64_t out_plane = g.OH * g.OW;
  if (g.kernel == 2 && g.stride == 2 && g.padding == 0) {
    maxpool_2x2(x, &g, y, argmax);
    n->saved = argmax;
    return AG_OK;
  }
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W > PARALLEL_MIN_FLOATS)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    const float *plane = x + pl * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; oh++)
      for (int64_t ow = 0; ow < g.OW; ow++) {
        pool_window win = window_of(&g, oh, ow);
        int32_t best_at = (int32_t)(win.h0 * g.W + win.w0);
        float best = plane[best_at];
        for (int64_t ih = win.h0; ih < win.h1; ih++)
          for (int64_t iw = win.w0; iw < win.w1; iw++) {
            int32_t at = (int32_t)(ih * g.W + iw);
            max_with_index(best, best_at, plane[at], at, &best, &best_at);
          }
        int64_t o = pl * out_plane + oh * g.OW + ow;
        y[o] = best;
        argmax[o] = best_at;
      }
  }
  n->saved = argmax;
  return AG_OK;
}

static ag_status maxpool2d_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  pool_geometry g = pool_geometry_of(n);
  const int32_t *argmax = n->saved;
  const float *gy = n->out->grad;
  int64_t out_plane = g.OH * g.OW;
  /* planes are independent: no two threads touch the same gx element */
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W > PARALLEL_MIN_FLOATS)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    float *plane = gx + pl * g.H * g.W;
    for (int64_t o = pl * out_plane; o < (pl + 1) * out_plane; o++) plane[argmax[o]] += gy[o];
  }
  return AG_OK;
}

static ag_status avgpool2d_forward(ag_tape *t, ag_node *n) {
  pool_geometry g = pool_geometry_of(n);
  const float *x = n->in[0]->data;
  float *y = n->out->data;
  /* count_include_pad: windows never reach past the padding (OH is floored),
   * so every divisor is the full kernel area */
  float inv_area = 1.0f / (float)(g.kernel * g.kernel);
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W > PARALLEL_MIN_FLOATS)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    const float *plane = x + pl * g.H * g.W;
    float *out = y + pl * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; oh++)
      for (int64_t ow = 0; ow < g.OW; ow++) {
        pool_window win = window_of(&g, oh, ow);
        float s = 0.0f;
        for (int64_t ih = win.h0; ih < win.h1; ih++)
          for (int64_t iw = win.w0; iw < win.w1; iw++) s += plane[ih * g.W + iw];
        out[oh * g.OW + ow] = s * inv_area;
      }
  }
  return AG_OK;
}

static ag_status avgpool2d_backward(ag_tape *t, ag_node *n) {
  ag_tensor *x = n->in[0];
  if (!x->requires_grad) return AG_OK;
  float *gx = ag_tape_grad(t, x);
  if (!gx) return AG_ERR_NOMEM;
  pool_geometry g = pool_geometry_of(n);
  const float *gy = n->out->grad;
  float inv_area = 1.0f / (float)(g.kernel * g.kernel);
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W > PARALLEL_MIN_FLOATS)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    float *plane = gx + pl * g.H * g.W;
    const float *gout = gy + pl * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; oh++)
      for (int64_t ow = 0; ow < g.OW; ow++) {
        pool_window win = window_of(&g, oh, ow);
        float share = gout[oh * g.OW + ow] * inv_area;
        for (int64_t ih = win.h0; ih < win.h1; ih++)
          for (int64_t iw = win.w0; iw < win.w1; iw++) plane[ih * g.W + iw] += share;
      }
  }
  return AG_OK;
}

/* Validates and records a pooling op; `op_name` for messages. */
static ag_tensor *pool2d(ag_tape *t, ag_op_id op, const char *op_name, ag_tensor *x, int kernel,
                         int stride, int padding) {
  if (!ag_tape_ok(t, x)) return NULL;
  char sx[96];
  ag_shape_string(x, sx, sizeof sx);
  if (x->ndim != 4)
    return ag_tape_fail(t, AG_ERR_SHAPE, "%s: input %s must be (N, C, H, W)", op_name, sx);
  if (kernel < 1 || stride < 1)
    return ag_tape_fail(t, AG_ERR_INVALID, "%s: kernel %d and stride %d must be >= 1 (input %s)",
                        op_name, kernel, stride, sx);
  /* PyTorch's rule: it keeps every window overlapping the image */
  if (padding < 0 || padding > kernel / 2)
    return ag_tape_fail(t, AG_ERR_INVALID,
                        "%s: padding %d must be in [0, kernel / 2 = %d] (input %s)", op_name,
                        padding, kernel / 2, sx);
  int64_t padded_h = x->shape[2] + 2 * (int64_t)padding,
          padded_w = x->shape[3] + 2 * (int64_t)padding;
  if (kernel > padded_h || kernel > padded_w)
    return ag_tape_fail(t, AG_ERR_SHAPE, "%s: kernel %d is larger than input %s padded by %d",
                        op_name, kernel, sx, padding);
  if (x->shape[2] * x->shape[3] > INT32_MAX)
    return ag_tape_fail(t, AG_ERR_UNSUPPORTED, "%s: planes of input %s are too large", op_name, sx);
  x = ag_contiguous(t, x);
  if (!x) return NULL;
  ag_op_call c = {.op = op,
                  .in = {x},
                  .n_in = 1,
                  .out_ndim = 4,
                  .out_shape = {x->shape[0], x->shape[1], (padded_h - kernel) / stride + 1,
                                (padded_w - kernel) / stride + 1},
                  .iarg = {kernel, stride, padding}};
  return ag_op_run(t, &c);
}

ag_tensor *ag_maxpool2d(ag_tape *t, ag_tensor *x, int kernel, int stride, int padding) {
  return pool2d(t, AG_OP_MAXPOOL2D, "maxpool2d", x, kernel, stride, padding);
}

ag_tensor *ag_avgpool2d(ag_tape *t, ag_tensor *x, int kernel, int stride, int padding) {
  return pool2d(t, AG_OP_AVGPOOL2D, "avgpool2d", x, kernel, stride, padding);
}

static const ag_op_impl conv2d_op = {"conv2d", conv2d_forward, conv2d_backward};
static const ag_op_impl maxpool2d_op = {"maxpool2d", maxpool2d_forward, maxpool2d_backward};
static const ag_op_impl avgpool2d_op = {"avgpool2d", avgpool2d_forward, avgpool2d_backward};

void ag_cpu_register_conv(const ag_op_impl **ops) {
  ops[AG_OP_CONV2D] = &conv2d_op;
  ops[AG_OP_MAXPOOL2D] = &maxpool2d_op;
  ops[AG_OP_AVGPOOL2D] = &avgpool2d_op;
}
