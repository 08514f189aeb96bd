/* Checks an op's backward against central finite differences. The output y
 * is projected onto fixed random weights r and the projection sum(r * y) is
 * accumulated in double, so the reference derivative is as exact as float
 * forward passes allow. */
#ifndef AGORA_TEST_GRADCHECK_H
#define AGORA_TEST_GRADCHECK_H

#include "agora/ops.h"
#include "test.h"

/* Builds the output from the inputs on tape t. */
typedef ag_tensor *(*gradcheck_fn)(ag_tape *t, ag_tensor **inputs, void *ctx);

static double gradcheck_project(const ag_tensor *y, const float *r) {
  double s = 0;
  for (int64_t i = 0; i < y->numel; i++) s += (double)r[i] * (double)ag_tensor_get(y, i);
  return s;
}

/* inputs: heap tensors (ag_tensor_create); those with requires_grad are
 * checked. Returns the number of mismatching elements (0 = pass). */
static int gradcheck(const char *label, gradcheck_fn f, ag_tensor **inputs, int n_inputs, void *ctx,
                     double eps, double atol, double rtol) {
  ag_tape *t = ag_tape_create();
  ag_rng rng;
  ag_rng_seed(&rng, 1234);
  ag_tensor *y = f(t, inputs, ctx);
  if (!y) {
    fprintf(stderr, "%s: forward failed: %s\n", label, ag_tape_error(t));
    ag_tape_destroy(t);
    return 1;
  }
  float *r = malloc((size_t)y->numel * sizeof(float));
  for (int64_t i = 0; i < y->numel; i++) r[i] = ag_rng_uniform(&rng) * 2.0f - 1.0f;
  for (int k = 0; k < n_inputs; k++)
    if (inputs[k]->grad) memset(inputs[k]->grad, 0, (size_t)inputs[k]->numel * sizeof(float));
  int bad = 0;
  if (ag_backward_with(t, y, r) != AG_OK) {
    fprintf(stderr, "%s: backward failed: %s\n", label, ag_error_message());
    bad = 1;
  }
  for (int k = 0; k < n_inputs && !bad; k++) {
    ag_tensor *x = inputs[k];
    if (!x->requires_grad) continue;
    for (int64_t i = 0; i < x->numel; i++) {
      float saved = x->data[i];
      ag_tape_reset(t);
      x->data[i] = saved + (float)eps;
      double plus = gradcheck_project(f(t, inputs, ctx), r);
      ag_tape_reset(t);
      x->data[i] = saved - (float)eps;
      double minus = gradcheck_project(f(t, inputs, ctx), r);
      x->data[i] = saved;
      /* the perturbation actually applied, in float */
      double h = (double)(saved + (float)eps) - (double)(saved - (float)eps);
      double numeric = (plus - minus) / h;
      double analytic = x->grad ? x->grad[i] : 0.0;
      if (fabs(analytic - numeric) > atol + rtol * fabs(numeric)) {
        if (bad < 5)
          fprintf(stderr, "%s: input %d element %lld: analytic %.7g numeric %.7g\n", label, k,
                  (long long)i, analytic, numeric);
        bad++;
      }
    }
  }
  free(r);
  ag_tape_destroy(t);
  return bad;
}

/* A heap tensor with uniform values in [lo, hi). */
static ag_tensor *gradcheck_random(ag_rng *rng, int ndim, const int64_t *shape, float lo, float hi,
                                   bool requires_grad) {
  ag_tensor *x = NULL;
  if (ag_tensor_create(ndim, shape, &x) != AG_OK) return NULL;
  for (int64_t i = 0; i < x->numel; i++) x->data[i] = lo + (hi - lo) * ag_rng_uniform(rng);
  x->requires_grad = requires_grad;
  return x;
}

#endif
