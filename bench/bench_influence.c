/* Seconds to fit EK-FAC factors of a vision model on Fashion-MNIST's
 * training images, and to score every training image against one query, on
 * ag_threads_get() threads (scripts/bench.sh sets AG_THREADS=2).
 *
 * Usage: bench_influence [mlp|cnn|resnet] [fit_examples] [score_examples] [checkpoint]
 * Defaults: cnn, all 60,000 for both. Without a checkpoint folder the weights
 * are Kaiming-initialised: the work does not depend on their values. The
 * fit is timed in its four steps (moments pass, eigendecomposition,
 * eigenvalue-correction pass, averaging). Without the data set it prints a
 * note and exits 0. */
#include "agora/influence.h"
#include "agora/vision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the whole process (all threads): on a machine shared with
 * other jobs, wall time stretches but this does not, so both are printed. */
static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The first field of /proc/loadavg, or "?". */
static const char *load_average(void) {
  static char text[32] = "?";
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%31s", text) != 1) snprintf(text, sizeof text, "?");
    fclose(f);
  }
  return text;
}

static int fail(const char *what) {
  fprintf(stderr, "bench_influence: %s: %s\n", what, ag_error_message());
  return 1;
}

int main(int argc, char **argv) {
  const char *model_name = argc > 1 ? argv[1] : "cnn";
  int64_t fit_n = argc > 2 ? atoll(argv[2]) : 0, score_n = argc > 3 ? atoll(argv[3]) : 0;
  const char *checkpoint = argc > 4 ? argv[4] : NULL;
  ag_threads_init();
  ag_progress_set_quiet(true);

  ag_image_dataset *train = NULL, *test = NULL;
  if (ag_image_dataset_load("fashion-mnist", NULL, AG_SPLIT_TRAIN, &train) ||
      ag_image_dataset_load("fashion-mnist", NULL, AG_SPLIT_TEST, &test)) {
    printf("bench_influence: skipped (%s)\n", ag_error_message());
    ag_image_dataset_destroy(train);
    return 0;
  }
  if (fit_n <= 0 || fit_n > train->count) fit_n = train->count;
  if (score_n <= 0 || score_n > train->count) score_n = train->count;

  ag_vision_model *vm = NULL;
  if (checkpoint) {
    ag_classify_checkpoint info;
    if (ag_classify_checkpoint_read(checkpoint, &info) ||
        ag_classify_checkpoint_load_model(checkpoint, &info, &vm))
      return fail(checkpoint);
  } else {
    ag_vision_model_kind kind;
    if (ag_vision_model_parse(model_name, &kind) ||
        ag_vision_model_create(kind, 1, 28, 28, 10, &vm))
      return fail(model_name);
    ag_rng rng;
    ag_rng_seed(&rng, 1);
    ag_vision_model_init(vm, &rng);
  }
  ag_influence_model m;
  ag_influence_vision_model(vm, &m);
  ag_influence_data d, qd;
  ag_influence_vision_data(train, &d);
  ag_influence_config cfg = ag_influence_defaults();

  // Fit, step by step.
  ag_influence_factors *f = NULL;
  double c0 = cpu_seconds(), t0 = ag_time_seconds();
  if (ag_influence_factors_create(&m, &cfg, &f)) return fail("create");
  if (ag_influence_accumulate_moments(f, &m, &d, 0, fit_n)) return fail("moments");
  double t1 = ag_time_seconds();
  if (ag_influence_finish_moments(f)) return fail("eigendecomposition");
  double t2 = ag_time_seconds();
  if (ag_influence_accumulate_correction(f, &m, &d, 0, fit_n)) return fail("correction");
  double t3 = ag_time_seconds();
  if (ag_influence_finish_correction(f)) return fail("finish");
  double t4 = ag_time_seconds(), c4 = cpu_seconds();

  // One query: test image 0 at its true label.
  ag_image_dataset *one = NULL;
  if (ag_image_dataset_create(1, 1, 28, 28, 10, &one)) return fail("query");
  memcpy(one->images, test->images, sizeof(float) * 784);
  one->labels[0] = test->labels[0];
  ag_influence_vision_data(one, &qd);
  ag_influence_queries *q = NULL;
  double t5 = ag_time_seconds(), c5 = cpu_seconds();
  if (ag_influence_precondition(f, &m, &qd, &q)) return fail("precondition");
  double t6 = ag_time_seconds(), c6 = cpu_seconds();
  float *scores = malloc(sizeof(float) * (size_t)score_n);
  if (!scores || ag_influence_score(q, &m, &d, 0, score_n, cfg.batch_size, scores))
    return fail("score");
  double t7 = ag_time_seconds(), c7 = cpu_seconds();

  printf("threads %d  model %s%s  params %lld  tracked layers %d  batch %lld\n", ag_threads_get(),
         ag_vision_model_name(ag_vision_model_kind_of(vm)), checkpoint ? " (checkpoint)" : "",
         (long long)m.params->total, ag_influence_layer_count(f), (long long)cfg.batch_size);
  printf("fit    %6lld examples  %8.1f s wall  %8.1f s cpu  (moments %.1f s, eigendecomposition "
         "%.2f s, correction %.1f s, finish %.2f s)  %.0f examples/s\n",
         (long long)fit_n, t4 - t0, c4 - c0, t1 - t0, t2 - t1, t3 - t2, t4 - t3, fit_n / (t4 - t0));
  printf("query  1 test image      %8.3f s wall  %8.3f s cpu  (gradient and inverse-curvature "
         "product)\n",
         t6 - t5, c6 - c5);
  printf("score  %6lld examples  %8.1f s wall  %8.1f s cpu  x 1 query  %.0f examples/s\n",
         (long long)score_n, t7 - t6, c7 - c6, score_n / (t7 - t6));
  printf("load   %s (1-minute load average; 2 threads on an idle machine: cpu / wall near 2)\n",
         load_average());

  free(scores);
  ag_influence_queries_destroy(q);
  ag_influence_factors_destroy(f);
  ag_image_dataset_destroy(one);
  ag_vision_model_destroy(vm);
  ag_image_dataset_destroy(test);
  ag_image_dataset_destroy(train);
  return 0;
}
