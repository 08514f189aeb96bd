/* Choosing the next token from logits: repetition penalty, temperature,
 * top-k, top-p, min-p (Hugging Face's logits processors, in their order),
 * then a draw from a seeded ag_rng. */
#include "agora/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ag_sampler {
  ag_sampling s;
  int64_t vocab;
  int32_t *order;      /* (V) candidate ids */
  float *probs;        /* (V) their probabilities, in candidate order */
  unsigned char *seen; /* (V) repetition penalty: ids already penalised this step */
};

ag_sampling ag_sampling_defaults(void) {
  return (ag_sampling){
      .temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repetition_penalty = 1.0f};
}

ag_status ag_sampling_check(const ag_sampling *s) {
  if (!s) return ag_error_set(AG_ERR_INVALID, "sampling: NULL settings");
  if (!(s->temperature >= 0) || isinf(s->temperature))
    return ag_error_set(AG_ERR_INVALID, "sampling: temperature %g must be >= 0",
                        (double)s->temperature);
  if (s->top_k < 0)
    return ag_error_set(AG_ERR_INVALID, "sampling: top_k %d must be >= 0", s->top_k);
  if (!(s->top_p > 0 && s->top_p <= 1))
    return ag_error_set(AG_ERR_INVALID, "sampling: top_p %g must be in (0, 1]", (double)s->top_p);
  if (!(s->min_p >= 0 && s->min_p <= 1))
    return ag_error_set(AG_ERR_INVALID, "sampling: min_p %g must be in [0, 1]", (double)s->min_p);
  if (!(s->repetition_penalty > 0) || isinf(s->repetition_penalty))
    return ag_error_set(AG_ERR_INVALID, "sampling: repetition_penalty %g must be > 0",
                        (double)s->repetition_penalty);
  return AG_OK;
}

ag_status ag_sampler_create(const ag_sampling *s, int64_t vocab_size, ag_sampler **out) {
  *out = NULL;
  ag_status st = ag_sampling_check(s);
  if (st) return st;
  if (vocab_size <= 0 || vocab_size > INT32_MAX)
    return ag_error_set(AG_ERR_INVALID, "sampler: vocabulary size %lld", (long long)vocab_size);
  ag_sampler *r = calloc(1, sizeof *r);
  if (r) {
    r->order = malloc((size_t)vocab_size * sizeof *r->order);
    r->probs = malloc((size_t)vocab_size * sizeof *r->probs);
    r->seen = calloc((size_t)vocab_size, 1);
  }
  if (!r || !r->order || !r->probs || !r->seen) {
    ag_sampler_destroy(r);
    return ag_error_set(AG_ERR_NOMEM, "sampler: out of memory");
  }
  r->s = *s;
  r->vocab = vocab_size;
  *out = r;
  return AG_OK;
}

void ag_sampler_destroy(ag_sampler *s) {
  if (!s) return;
  free(s->order);
  free(s->probs);
  free(s->seen);
  free(s);
}

/* Hugging Face's RepetitionPenaltyLogitsProcessor: every id seen once or
 * more is penalised once. */
static void apply_repetition_penalty(ag_sampler *s, float *logits, const int32_t *history,
                                     int64_t count) {
  float penalty = s->s.repetition_penalty;
  for (int64_t i = 0; i < count; i++) {
    int32_t id = history[i];
    if (id < 0 || id >= s->vocab || s->seen[id]) continue;
    s->seen[id] = 1;
    logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty;
  }
  for (int64_t i = 0; i < count; i++)
    if (history[i] >= 0 && history[i] < s->vocab) s->seen[history[i]] = 0;
}

/* The highest logit; ties go to the lower id. NaN never wins. */
static int32_t argmax(const float *logits, int64_t V) {
  int32_t best = 0;
  for (int64_t i = 1; i < V; i++)
    if (logits[i] > logits[best] || isnan(logits[best])) best = (int32_t)i;
  return best;
}

/* Candidate order: higher logit first, then lower id, so every sort and
 * selection below gives one answer. */
static bool before(const float *logits, int32_t a, int32_t b) {
  float x = logits[a], y = logits[b];
  return x > y || (x == y && a < b);
}

/* A heap over order[0..n) whose root is the worst candidate: every parent
 * comes after its children in candidate order. */
static void sift_down(const float *logits, int32_t *order, int64_t n, int64_t i) {
  int32_t id = order[i];
  for (;;) {
    int64_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && before(logits, order[c], order[c + 1])) c++; /* the worse child */
    if (!before(logits, id, order[c])) break;
    order[i] = order[c];
    i = c;
  }
  order[i] = id;
}

/* Heap sort: taking the worst root to the end each time leaves the best
 * first. O(n log n), in place, no global state (qsort has no context). */
static void sort_heap(const float *logits, int32_t *order, int64_t n) {
  for (int64_t end = n - 1; end > 0; end--) {
    int32_t worst = order[0];
    order[0] = order[end];
    order[end] = worst;
    sift_down(logits, order, end, 0);
  }
}

static void sort_all(const float *logits, int32_t *order, int64_t n) {
  for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(logits, order, n, i);
  sort_heap(logits, order, n);
}

/* The k best ids into order[0..k), best first: a heap of the k best seen so
 * far (its root is the worst kept), then sorted. O(V log k). */
static void select_top_k(const float *logits, int64_t V, int32_t *order, int64_t k) {
  int64_t n = 0;
  for (int32_t id = 0; id < V; id++) {
    if (n < k) {
      int64_t i = n++;                                          /* sift up from the new leaf */
      while (i > 0 && before(logits, order[(i - 1) / 2], id)) { /* parent better: id rises */
        order[i] = order[(i - 1) / 2];
        i = (i - 1) / 2;
      }
      order[i] = id;
    } else if (before(logits, id, order[0])) {
      order[0] = id; /* better than the worst kept: replace it */
      sift_down(logits, order, n, 0);
    }
  }
  sort_heap(logits, order, n);
}

int32_t ag_sampler_next(ag_sampler *s, float *logits, const int32_t *history, int64_t count,
                        ag_rng *rng) {
  const ag_sampling *c = &s->s;
  int64_t V = s->vocab;
  if (c->repetition_penalty != 1.0f && history && count > 0)
    apply_repetition_penalty(s, logits, history, count);
  if (c->temperature == 0.0f || !rng) return argmax(logits, V);
  float inv_t = 1.0f / c->temperature;
  for (int64_t i = 0; i < V; i++) logits[i] = isnan(logits[i]) ? -INFINITY : logits[i] * inv_t;
  /* Candidates: the top k, or every id sorted when top-p needs the order,
   * or every id as it is. */
  int64_t n = V;
  if (c->top_k > 0 && c->top_k < V) {
    n = c->top_k;
    select_top_k(logits, V, s->order, n);
  } else {
    for (int32_t i = 0; i < V; i++) s->order[i] = i;
    if (c->top_p < 1.0f) sort_all(logits, s->order, V);
  }
  float top = -INFINITY;
  for (int64_t i = 0; i < n; i++) top = fmaxf(top, logits[s->order[i]]);
  if (top == -INFINITY) return s->order[0]; /* nothing is possible: any answer */
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    s->probs[i] = expf(logits[s->order[i]] - top);
    total += s->probs[i];
  }
  /* top-p: the candidates are sorted here; keep the prefix whose mass
   * before each kept token is below top_p (HF's TopPLogitsWarper). */
  if (c->top_p < 1.0f) {
    double before_mass = 0;
    int64_t keep = 0;
    while (keep < n && before_mass < c->top_p * total) before_mass += s->probs[keep++];
    n = keep > 0 ? keep : 1;
    total = 0;
    for (int64_t i = 0; i < n; i++) total += s->probs[i];
  }
  /* min-p: probabilities relative to the most likely (which has weight 1). */
  if (c->min_p > 0.0f) {
    double kept = 0;
    for (int64_t i = 0; i < n; i++) {
      if (s->probs[i] < c->min_p) s->probs[i] = 0;
      kept += s->probs[i];
    }
    total = kept;
  }
  double u = (double)ag_rng_uniform(rng) * total, cum = 0;
  int32_t last = s->order[0];
  for (int64_t i = 0; i < n; i++) {
    if (s->probs[i] <= 0) continue;
    last = s->order[i];
    cum += s->probs[i];
    if (u < cum) return last;
  }
  return last; /* u within rounding of the total */
}
