/* Rotary embeddings and fused causal attention: values against a naive
 * softmax(q k^T / sqrt(D)) v built from other ops, gradients against finite
 * differences and against the naive graph's gradients (many blocks). */
#include "agora/ops.h"
#include "gradcheck.h"
#include "test.h"

/* ---- a naive reference from existing ops ----------------------------------------- */

typedef struct attn_case {
  int64_t B, Hq, Hkv, T, S, D;
  const int32_t *query_start, *key_start, *key_end; /* NULL: defaults */
  bool views; /* q, k, v given as transposed (B, T, H, D) buffers */
} attn_case;

static int64_t case_query_start(const attn_case *c, int64_t b) {
  return c->query_start ? c->query_start[b] : c->S - c->T;
}

/* Additive mask (B, 1, T, S): 0 where visible, -1e9 elsewhere. */
static ag_tensor *naive_mask(ag_tape *t, const attn_case *c) {
  ag_tensor *m = ag_tape_tensor(t, 4, (int64_t[]){c->B, 1, c->T, c->S});
  if (!m) return NULL;
  for (int64_t b = 0; b < c->B; b++)
    for (int64_t i = 0; i < c->T; i++)
      for (int64_t j = 0; j < c->S; j++) {
        int64_t ks = c->key_start ? c->key_start[b] : 0, ke = c->key_end ? c->key_end[b] : c->S;
        bool visible = j >= ks && j < ke && j <= case_query_start(c, b) + i;
        m->data[(b * c->T + i) * c->S + j] = visible ? 0.0f : -1e9f;
      }
  return m;
}

/* k (B, Hkv, S, D) -> (B, Hq, S, D) by repeating each head rep times. */
static ag_tensor *repeat_heads(ag_tape *t, ag_tensor *k, int64_t Hq) {
  int64_t Hkv = k->shape[1], rep = Hq / Hkv;
  if (rep == 1) return k;
  ag_tensor *parts[64];
  for (int64_t h = 0; h < Hq; h++) parts[h] = ag_slice(t, k, 1, h / rep, h / rep + 1);
  return ag_concat(t, parts, (int)Hq, 1);
}

static ag_tensor *naive_attention(ag_tape *t, ag_tensor *q, ag_tensor *k, ag_tensor *v,
                                  const attn_case *c) {
  ag_tensor *kk = repeat_heads(t, k, c->Hq), *vv = repeat_heads(t, v, c->Hq);
  ag_tensor *scores =
      ag_scale(t, ag_matmul(t, q, ag_transpose(t, kk, -1, -2)), 1.0f / sqrtf((float)c->D));
  ag_tensor *p = ag_softmax(t, ag_add(t, scores, naive_mask(t, c)), -1);
  return ag_matmul(t, p, vv);
}

/* The case's inputs as the op sees them: (B, H, T, D), possibly views of
 * (B, T, H, D) buffers. */
static void case_inputs(ag_tape *t, ag_tensor **in, const attn_case *c, ag_tensor **q,
                        ag_tensor **k, ag_tensor **v) {
  if (c->views) {
    *q = ag_transpose(t, in[0], 1, 2);
    *k = ag_transpose(t, in[1], 1, 2);
    *v = ag_transpose(t, in[2], 1, 2);
  } else {
    *q = in[0];
    *k = in[1];
    *v = in[2];
  }
}

static ag_tensor *f_fused(ag_tape *t, ag_tensor **in, void *ctx) {
  const attn_case *c = ctx;
  ag_tensor *q, *k, *v;
  case_inputs(t, in, c, &q, &k, &v);
  ag_attention_spans spans = {c->query_start, c->key_start, c->key_end};
  return ag_attention(t, q, k, v, &spans);
}

static ag_tensor *f_naive(ag_tape *t, ag_tensor **in, void *ctx) {
  const attn_case *c = ctx;
  ag_tensor *q, *k, *v;
  case_inputs(t, in, c, &q, &k, &v);
  return naive_attention(t, q, k, v, c);
}

static void make_inputs(ag_rng *rng, const attn_case *c, ag_tensor **in, float spread) {
  int64_t sq[] = {c->B, c->Hq, c->T, c->D}, sk[] = {c->B, c->Hkv, c->S, c->D};
  if (c->views) {
    sq[1] = c->T, sq[2] = c->Hq;
    sk[1] = c->S, sk[2] = c->Hkv;
  }
  in[0] = gradcheck_random(rng, 4, sq, -spread, spread, true);
  in[1] = gradcheck_random(rng, 4, sk, -spread, spread, true);
  in[2] = gradcheck_random(rng, 4, sk, -1, 1, true);
}

static void free_inputs(ag_tensor **in, int n) {
  for (int i = 0; i < n; i++) ag_tensor_destroy(in[i]);
}

/* Max |fused - naive| over values, and over input gradients for one random
 * projection of the output. */
static void compare_with_naive(const attn_case *c, double *value_err, double *grad_err) {
  ag_rng rng;
  ag_rng_seed(&rng, 7);
  ag_tensor *in[3];
  make_inputs(&rng, c, in, 1.5f);
  ag_tape *t = ag_tape_create();
  ag_tensor *y1 = f_fused(t, in, (void *)c);
  ag_tensor *y2 = f_naive(t, in, (void *)c);
  *value_err = *grad_err = 1e30;
  if (!y1 || !y2) {
    fprintf(stderr, "forward failed: %s\n", ag_tape_error(t));
    ag_tape_destroy(t);
    free_inputs(in, 3);
    return;
  }
  *value_err = 0;
  for (int64_t i = 0; i < y1->numel; i++)
    *value_err = fmax(*value_err, fabs(ag_tensor_get(y1, i) - ag_tensor_get(y2, i)));
  float *seed = malloc((size_t)y1->numel * sizeof(float));
  for (int64_t i = 0; i < y1->numel; i++) seed[i] = ag_rng_uniform(&rng) * 2 - 1;
  float *grads[3];
  ag_backward_with(t, y1, seed);
  for (int k = 0; k < 3; k++) {
    grads[k] = malloc((size_t)in[k]->numel * sizeof(float));
    memcpy(grads[k], in[k]->grad, (size_t)in[k]->numel * sizeof(float));
    memset(in[k]->grad, 0, (size_t)in[k]->numel * sizeof(float));
  }
  ag_tape_reset(t);
  y2 = f_naive(t, in, (void *)c);
  ag_backward_with(t, y2, seed);
  *grad_err = 0;
  for (int k = 0; k < 3; k++) {
    for (int64_t i = 0; i < in[k]->numel; i++)
      *grad_err = fmax(*grad_err, fabs(grads[k][i] - in[k]->grad[i]));
    free(grads[k]);
  }
  free(seed);
  ag_tape_destroy(t);
  free_inputs(in, 3);
}

TEST(attention_matches_naive_softmax) {
  int32_t qs[] = {3, 2}, ks[] = {0, 2}, ke[] = {9, 6};
  attn_case cases[] = {
      {.B = 2, .Hq = 2, .Hkv = 2, .T = 5, .S = 5, .D = 8},  /* plain causal */
      {.B = 2, .Hq = 4, .Hkv = 2, .T = 5, .S = 5, .D = 8},  /* GQA */
      {.B = 1, .Hq = 6, .Hkv = 2, .T = 3, .S = 10, .D = 4}, /* KV cache offset */
      {.B = 2, .Hq = 4, .Hkv = 1, .T = 4, .S = 9, .D = 8, .views = true},
      {.B = 2, .Hq = 4, .Hkv = 2, .T = 4, .S = 9, .D = 8, qs, ks, ke}, /* spans */
      /* many blocks: 150 queries x 170 keys in 64-row blocks, GQA rows interleaved */
      {.B = 2, .Hq = 4, .Hkv = 2, .T = 150, .S = 170, .D = 16},
      {.B = 1, .Hq = 3, .Hkv = 1, .T = 70, .S = 200, .D = 32, .views = true},
  };
  int count = (int)(sizeof cases / sizeof cases[0]);
  if (test_scale() < 1.0) count -= 1; /* the largest case is slow under sanitizers */
  for (int i = 0; i < count; i++) {
    double value_err, grad_err;
    compare_with_naive(&cases[i], &value_err, &grad_err);
    CHECK_MSG(value_err < 2e-5, "case %d: value error %g", i, value_err);
    CHECK_MSG(grad_err < 1e-4, "case %d: gradient error %g", i, grad_err);
  }
}

TEST(attention_gradients_match_finite_differences) {
  int32_t qs[] = {2, 0}, ks[] = {1, 0}, ke[] = {6, 4};
  attn_case cases[] = {
      {.B = 1, .Hq = 2, .Hkv = 2, .T = 4, .S = 4, .D = 4},
      {.B = 2, .Hq = 4, .Hkv = 2, .T = 3, .S = 5, .D = 4},                /* GQA + offset */
      {.B = 2, .Hq = 2, .Hkv = 1, .T = 3, .S = 6, .D = 4, qs, ks, ke},    /* spans */
      {.B = 1, .Hq = 3, .Hkv = 1, .T = 3, .S = 5, .D = 2, .views = true}, /* strided */
  };
  for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
    ag_rng rng;
    ag_rng_seed(&rng, 100 + i);
    ag_tensor *in[3];
    make_inputs(&rng, &cases[i], in, 1.0f);
    char label[32];
    snprintf(label, sizeof label, "attention case %d", i);
    CHECK(gradcheck(label, f_fused, in, 3, &cases[i], 1e-2, 2e-3, 2e-3) == 0);
    free_inputs(in, 3);
  }
}

TEST(attention_row_without_keys_is_zero) {
  /* Sequence 1 is all padding on the left of row 0: key_start 3 > row 0's limit. */
  int32_t qs[] = {0, 0}, ks[] = {0, 3}, ke[] = {4, 4};
  attn_case c = {.B = 2, .Hq = 1, .Hkv = 1, .T = 4, .S = 4, .D = 4, qs, ks, ke};
  ag_rng rng;
  ag_rng_seed(&rng, 3);
  ag_tensor *in[3];
  make_inputs(&rng, &c, in, 1.0f);
  ag_tape *t = ag_tape_create();
  ag_tensor *y = f_fused(t, in, &c);
  CHECK(y != NULL);
  for (int64_t d = 0; y && d < 4; d++) {
    CHECK(y->data[(1 * 4 + 0) * 4 + d] == 0.0f); /* (b 1, t 0) sees nothing */
    CHECK(isfinite(y->data[(1 * 4 + 3) * 4 + d]));
  }
  float seed[32];
  for (int i = 0; i < 32; i++) seed[i] = 1.0f;
  CHECK_OK(ag_backward_with(t, y, seed));
  for (int64_t i = 0; i < in[1]->numel; i++) CHECK(isfinite(in[1]->grad[i]));
  ag_tape_destroy(t);
  CHECK(gradcheck("padding rows", f_fused, in, 3, &c, 1e-2, 2e-3, 2e-3) == 0);
  free_inputs(in, 3);
}

TEST(attention_rejects_bad_shapes) {
  ag_tape *t = ag_tape_create();
  ag_tensor *q = ag_tape_zeros(t, 4, (int64_t[]){1, 3, 2, 4});
  ag_tensor *k = ag_tape_zeros(t, 4, (int64_t[]){1, 2, 2, 4});
  CHECK(ag_attention(t, q, k, k, NULL) == NULL);
  CHECK(strstr(ag_tape_error(t), "multiple") != NULL);
  ag_tape_reset(t);
  q = ag_tape_zeros(t, 4, (int64_t[]){1, 2, 2, 4});
  k = ag_tape_zeros(t, 4, (int64_t[]){1, 2, 3, 4});
  int32_t ke[] = {5};
  CHECK(ag_attention(t, q, k, k, &(ag_attention_spans){.key_end = ke}) == NULL);
  CHECK(strstr(ag_tape_error(t), "key_end") != NULL);
  ag_tape_destroy(t);
}

/* ---- rope ---------------------------------------------------------------------- */

typedef struct rope_ctx {
  ag_tensor *table;
} rope_ctx;

static ag_tensor *f_rope(ag_tape *t, ag_tensor **in, void *ctx) {
  return ag_rope(t, in[0], ((rope_ctx *)ctx)->table);
}

TEST(rope_rotates_pairs_half_apart) {
  const int64_t B = 2, T = 3, H = 2, D = 6;
  ag_rope_config cfg = {.theta = 10000.0f};
  float inv_freq[3];
  CHECK_OK(ag_rope_inv_freq(&cfg, D, T, inv_freq));
  CHECK_NEAR(inv_freq[0], 1.0, 1e-7);
  CHECK_NEAR(inv_freq[1], pow(10000.0, -2.0 / 6), 1e-7);
  int32_t positions[] = {0, 1, 2, 5, 6, 7}; /* (B, T): sequence 1 continues a cache */
  ag_tape *t = ag_tape_create();
  ag_tensor *table = ag_rope_table(t, inv_freq, D, positions, B * T);
  ag_rng rng;
  ag_rng_seed(&rng, 5);
  ag_tensor *x = gradcheck_random(&rng, 4, (int64_t[]){B, T, H, D}, -1, 1, true);
  ag_tensor *y = ag_rope(t, x, table);
  CHECK(y != NULL);
  for (int64_t b = 0; y && b < B; b++)
    for (int64_t tt = 0; tt < T; tt++)
      for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < D / 2; i++) {
          double angle = (double)positions[b * T + tt] * inv_freq[i];
          const float *xi = x->data + ((b * T + tt) * H + h) * D;
          const float *yi = y->data + ((b * T + tt) * H + h) * D;
          CHECK_NEAR(yi[i], xi[i] * cos(angle) - xi[i + D / 2] * sin(angle), 1e-5);
          CHECK_NEAR(yi[i + D / 2], xi[i + D / 2] * cos(angle) + xi[i] * sin(angle), 1e-5);
        }
  rope_ctx ctx = {table};
  CHECK(gradcheck("rope", f_rope, &x, 1, &ctx, 1e-2, 1e-3, 1e-3) == 0);
  /* a (T, D) table shared by the batch */
  ag_tensor *shared = ag_rope_table(t, inv_freq, D, positions, T);
  rope_ctx ctx2 = {shared};
  CHECK(gradcheck("rope shared table", f_rope, &x, 1, &ctx2, 1e-2, 1e-3, 1e-3) == 0);
  CHECK(ag_rope(t, x, ag_rope_table(t, inv_freq, D, positions, 4)) == NULL);
  CHECK(strstr(ag_tape_error(t), "rope") != NULL);
  ag_tape_destroy(t);
  ag_tensor_destroy(x);
}

TEST(rope_scaling_variants) {
  const int64_t D = 128;
  float base[64], linear[64], llama3[64];
  ag_rope_config plain = {.theta = 500000.0f};
  CHECK_OK(ag_rope_inv_freq(&plain, D, 1, base));
  ag_rope_config lin = {.theta = 500000.0f, .scaling = AG_ROPE_LINEAR, .factor = 4.0f};
  CHECK_OK(ag_rope_inv_freq(&lin, D, 1, linear));
  for (int i = 0; i < 64; i++) CHECK_NEAR(linear[i], base[i] / 4.0f, 1e-12);
  /* Llama 3.1's published rope_scaling */
  ag_rope_config l3 = {.theta = 500000.0f,
                       .scaling = AG_ROPE_LLAMA3,
                       .factor = 8.0f,
                       .low_freq_factor = 1.0f,
                       .high_freq_factor = 4.0f,
                       .original_max_positions = 8192};
  CHECK_OK(ag_rope_inv_freq(&l3, D, 1, llama3));
  for (int i = 0; i < 64; i++) {
    double wavelen = 2 * 3.14159265358979 / base[i], want = base[i];
    if (wavelen > 8192.0)
      want = base[i] / 8.0;
    else if (wavelen >= 8192.0 / 4.0) {
      double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * base[i] / 8.0 + smooth * base[i];
    }
    CHECK_NEAR(llama3[i], want, 1e-6 * want);
  }
  CHECK(llama3[0] == base[0]);         /* high frequencies are kept */
  CHECK(llama3[63] < base[63] / 7.9f); /* low ones slowed by the factor */
  /* dynamic NTK changes nothing inside the trained context and slows beyond it */
  ag_rope_config dyn = {.theta = 10000.0f,
                        .scaling = AG_ROPE_DYNAMIC,
                        .factor = 2.0f,
                        .original_max_positions = 2048};
  float inside[64], beyond[64];
  plain.theta = 10000.0f;
  CHECK_OK(ag_rope_inv_freq(&plain, D, 1, base));
  CHECK_OK(ag_rope_inv_freq(&dyn, D, 2048, inside));
  CHECK_OK(ag_rope_inv_freq(&dyn, D, 4096, beyond));
  CHECK(inside[10] == base[10] && beyond[10] < base[10]);
  ag_rope_config bad = {.theta = 10000.0f, .scaling = AG_ROPE_LLAMA3, .factor = 8.0f};
  CHECK(ag_rope_inv_freq(&bad, D, 1, llama3) == AG_ERR_INVALID);
  CHECK(ag_rope_inv_freq(&plain, 7, 1, llama3) == AG_ERR_INVALID);
}

int main(void) {
  RUN(attention_matches_naive_softmax);
  RUN(attention_gradients_match_finite_differences);
  RUN(attention_row_without_keys_is_zero);
  RUN(attention_rejects_bad_shapes);
  RUN(rope_rotates_pairs_half_apart);
  RUN(rope_scaling_variants);
  TEST_MAIN_END();
}
