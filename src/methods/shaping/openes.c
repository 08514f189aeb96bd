/* OpenES (Salimans et al. 2017), as the Shaper paper trains its meta-policy:
 * antithetic Gaussian directions, centred-rank fitness shaping, Adam on the
 * gradient estimate (shaping.h). */
#include "agora/shaping.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Adam's usual constants (Kingma & Ba 2015). */
#define ADAM_BETA1 0.9
#define ADAM_BETA2 0.999
#define ADAM_EPS   1e-8

struct ag_openes {
  ag_openes_config cfg;
  ag_rng rng;
  int generation;
  bool asked;
  double *mean;         /* (dim) */
  double *eps;          /* (population / 2, dim) this generation's directions */
  double *candidates;   /* (population, dim) */
  double *grad, *m, *v; /* (dim) */
  double *ranks;        /* (population) */
  int *order;           /* (population) */
};

ag_status ag_openes_new(const ag_openes_config *cfg, const double *start, ag_openes **out) {
  if (!cfg || !start || !out) return ag_error_set(AG_ERR_INVALID, "ag_openes_new: NULL argument");
  *out = NULL;
  if (cfg->dim < 1)
    return ag_error_set(AG_ERR_INVALID, "openes: dim must be >= 1, got %d", cfg->dim);
  if (cfg->population < 2 || cfg->population % 2)
    return ag_error_set(AG_ERR_INVALID, "openes: the population must be even and >= 2, got %d",
                        cfg->population);
  if (!(cfg->sigma > 0) || !isfinite(cfg->sigma) || !(cfg->lr > 0) || !isfinite(cfg->lr))
    return ag_error_set(AG_ERR_INVALID, "openes: sigma and lr must be finite and > 0 (%g, %g)",
                        cfg->sigma, cfg->lr);
  for (int k = 0; k < cfg->dim; k++)
    if (!isfinite(start[k]))
      return ag_error_set(AG_ERR_INVALID, "openes: start[%d] is not finite", k);
  ag_openes *es = calloc(1, sizeof *es);
  if (!es) return ag_error_set(AG_ERR_NOMEM, "openes: out of memory");
  es->cfg = *cfg;
  size_t dim = (size_t)cfg->dim, pop = (size_t)cfg->population;
  es->mean = malloc(dim * sizeof(double));
  es->eps = malloc(pop / 2 * dim * sizeof(double));
  es->candidates = malloc(pop * dim * sizeof(double));
  es->grad = calloc(dim, sizeof(double));
  es->m = calloc(dim, sizeof(double));
  es->v = calloc(dim, sizeof(double));
  es->ranks = calloc(pop, sizeof(double));
  es->order = calloc(pop, sizeof(int));
  if (!es->mean || !es->eps || !es->candidates || !es->grad || !es->m || !es->v || !es->ranks ||
      !es->order) {
    ag_openes_free(es);
    return ag_error_set(AG_ERR_NOMEM, "openes: out of memory");
  }
  memcpy(es->mean, start, dim * sizeof(double));
  ag_rng_seed(&es->rng, cfg->seed);
  *out = es;
  return AG_OK;
}

void ag_openes_free(ag_openes *es) {
  if (!es) return;
  free(es->mean);
  free(es->eps);
  free(es->candidates);
  free(es->grad);
  free(es->m);
  free(es->v);
  free(es->ranks);
  free(es->order);
  free(es);
}

const double *ag_openes_ask(ag_openes *es) {
  const int dim = es->cfg.dim, pairs = es->cfg.population / 2;
  const double sigma = es->cfg.sigma;
  /* One set of directions per generation: asking twice returns the same. */
  if (!es->asked) {
    for (size_t k = 0; k < (size_t)pairs * dim; k++) es->eps[k] = ag_rng_normal(&es->rng);
    es->asked = true;
  }
  for (int p = 0; p < pairs; p++) {
    const double *e = es->eps + (size_t)p * dim;
    double *plus = es->candidates + (size_t)(2 * p) * dim, *minus = plus + dim;
    for (int k = 0; k < dim; k++) {
      plus[k] = es->mean[k] + sigma * e[k];
      minus[k] = es->mean[k] - sigma * e[k];
    }
  }
  return es->candidates;
}

/* Insertion sort keeps ranks deterministic and thread-safe (qsort would
 * need the keys in a global); populations are small. */
static void sort_by_fitness(int count, const double *fitness, int *order) {
  for (int i = 0; i < count; i++) order[i] = i;
  for (int i = 1; i < count; i++) {
    int cur = order[i], j = i - 1;
    while (j >= 0 && (fitness[order[j]] > fitness[cur] ||
                      (fitness[order[j]] == fitness[cur] && order[j] > cur))) {
      order[j + 1] = order[j];
      j--;
    }
    order[j + 1] = cur;
  }
}

void ag_openes_centred_ranks(int count, const double *fitness, double *out) {
  if (count <= 0) return;
  if (count == 1) {
    out[0] = 0;
    return;
  }
  int stack_order[256];
  int *order = count <= 256 ? stack_order : malloc(sizeof(int) * (size_t)count);
  if (!order) { /* out of memory: no shaping information, no step */
    for (int i = 0; i < count; i++) out[i] = 0;
    return;
  }
  sort_by_fitness(count, fitness, order);
  for (int r = 0; r < count; r++) out[order[r]] = (double)r / (count - 1) - 0.5;
  if (order != stack_order) free(order);
}

ag_status ag_openes_tell(ag_openes *es, const double *fitness) {
  if (!es || !fitness) return ag_error_set(AG_ERR_INVALID, "ag_openes_tell: NULL argument");
  if (!es->asked) return ag_error_set(AG_ERR_INVALID, "openes: tell before ask");
  const int dim = es->cfg.dim, pop = es->cfg.population, pairs = pop / 2;
  for (int m = 0; m < pop; m++)
    if (!isfinite(fitness[m]))
      return ag_error_set(AG_ERR_INVALID, "openes: fitness[%d] is not finite", m);
  sort_by_fitness(pop, fitness, es->order);
  for (int r = 0; r < pop; r++) es->ranks[es->order[r]] = (double)r / (pop - 1) - 0.5;
  /* g = sum_m rank_m (candidate_m - mean) / (pop sigma^2)
   *   = sum_k (rank_2k - rank_2k+1) eps_k / (pop sigma). */
  memset(es->grad, 0, sizeof(double) * (size_t)dim);
  for (int p = 0; p < pairs; p++) {
    double w = (es->ranks[2 * p] - es->ranks[2 * p + 1]) / (pop * es->cfg.sigma);
    const double *e = es->eps + (size_t)p * dim;
    for (int k = 0; k < dim; k++) es->grad[k] += w * e[k];
  }
  es->generation++;
  const double t = es->generation;
  const double c1 = 1 - pow(ADAM_BETA1, t), c2 = 1 - pow(ADAM_BETA2, t);
  for (int k = 0; k < dim; k++) {
    double g = es->grad[k];
    es->m[k] = ADAM_BETA1 * es->m[k] + (1 - ADAM_BETA1) * g;
    es->v[k] = ADAM_BETA2 * es->v[k] + (1 - ADAM_BETA2) * g * g;
    es->mean[k] += es->cfg.lr * (es->m[k] / c1) / (sqrt(es->v[k] / c2) + ADAM_EPS);
  }
  es->asked = false;
  return AG_OK;
}

const double *ag_openes_mean(const ag_openes *es) { return es->mean; }
int ag_openes_generation(const ag_openes *es) { return es->generation; }
