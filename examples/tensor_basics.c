/* docs/tensor.md: fit y = 3x - 1 with one linear layer, SGD, and the tape. */
#include "agora/ops.h"
#include "agora/optim.h"

#include <stdio.h>

int main(void) {
  ag_params *params = ag_params_create();
  ag_tensor *w = ag_params_add(params, "w", 2, (int64_t[]){1, 1}); /* (out, in) */
  ag_tensor *b = ag_params_add(params, "b", 1, (int64_t[]){1});
  if (!w || !b || ag_params_finalize(params)) {
    fprintf(stderr, "error: %s\n", ag_error_message());
    return 1;
  }
  float xs[8], ys[8];
  for (int i = 0; i < 8; i++) {
    xs[i] = (float)i / 8.0f;
    ys[i] = 3.0f * xs[i] - 1.0f;
  }
  ag_optim *sgd = NULL;
  ag_optim_config cfg = ag_optim_sgd_defaults(0.5f);
  if (ag_optim_create(params, &cfg, &sgd)) return 1;
  ag_tape *tape = ag_tape_create();
  float loss_value = 0;
  for (int step = 0; step < 300; step++) {
    ag_tape_reset(tape); /* drops last step's intermediates, keeps the memory */
    ag_params_zero_grad(params);
    ag_tensor *x = ag_tape_wrap(tape, xs, 2, (int64_t[]){8, 1}); /* (N, in) */
    ag_tensor *y = ag_tape_wrap(tape, ys, 2, (int64_t[]){8, 1});
    ag_tensor *err = ag_sub(tape, ag_linear(tape, x, w, b), y);
    ag_tensor *loss = ag_mean(tape, ag_mul(tape, err, err), AG_ALL_DIMS, false);
    if (!loss) { /* errors are sticky: one check at the end of the forward pass */
      fprintf(stderr, "error: %s\n", ag_tape_error(tape));
      return 1;
    }
    if (ag_backward(tape, loss) || ag_optim_step(sgd, 0.5f)) return 1;
    loss_value = loss->data[0];
  }
  printf("w = %.3f  b = %.3f  loss = %.2e\n", w->data[0], b->data[0], loss_value);
  int ok = loss_value < 1e-4f;
  ag_tape_destroy(tape);
  ag_optim_destroy(sgd);
  ag_params_destroy(params);
  return ok ? 0 : 1;
}
