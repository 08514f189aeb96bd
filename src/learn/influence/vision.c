/* The vision adapter: an ag_vision_model and an ag_image_dataset as an
 * influence model and data set. */
#include "agora/influence.h"
#include "agora/ops.h"

#include <string.h>

static ag_tensor *vision_forward(void *user, ag_tape *t, const void *data, const int64_t *idx,
                                 int64_t n) {
  const ag_vision_model *m = user;
  const ag_image_dataset *d = data;
  int64_t size = ag_image_dataset_example_size(d);
  int64_t shape[4] = {n, d->channels, d->height, d->width};
  ag_tensor *x = ag_tape_tensor(t, 4, shape);
  if (!x) return NULL;
  for (int64_t i = 0; i < n; i++) {
    if (idx[i] < 0 || idx[i] >= d->count)
      return ag_tape_fail(t, AG_ERR_INVALID, "influence: example %lld outside the data set (%lld)",
                          (long long)idx[i], (long long)d->count);
    memcpy(x->data + i * size, d->images + idx[i] * size, (size_t)size * sizeof(float));
  }
  return ag_vision_model_forward(t, m, x);
}

void ag_influence_vision_model(const ag_vision_model *m, ag_influence_model *out) {
  memset(out, 0, sizeof *out);
  out->params = ag_vision_model_params(m);
  out->forward = vision_forward;
  out->user = (void *)m;
  out->loss = AG_INFLUENCE_CROSS_ENTROPY;
  out->rows_per_example = 1;
  /* classes: rows of the last 2-d weight, the classifier (fc3 for the MLP) */
  const ag_params *p = out->params;
  for (int i = p->count - 1; i >= 0; i--)
    if (p->tensors[i]->ndim == 2) {
      out->outputs = p->tensors[i]->shape[0];
      break;
    }
}

void ag_influence_vision_data(const ag_image_dataset *d, ag_influence_data *out) {
  memset(out, 0, sizeof *out);
  out->data = d;
  out->count = d->count;
  out->labels = d->labels;
  out->targets = NULL;
}
