/* Crafter, single thread: steps per second in exact mode observing pixels
 * every step, and observing the semantic view (exact mode as well: fast mode
 * does not exist yet), averaged over whole day/night cycles; and reset time.
 *
 * Random actions (numpy's RandomState(12345), drawn outside the timed part)
 * end episodes early (about 170 steps on average, before most nights), so
 * each step plus its observation is timed alone and binned by its phase in
 * the 300-step cycle; the figure is 1 / (mean over the 30 bins of the bin's
 * mean step time), which weights day and night as a whole cycle does. The
 * plain throughput (steps / their summed time) is printed too. Resets are
 * timed in their own loop (episodes 1..R of one env).
 *
 * Usage: bench_crafter [seconds per measurement] [resets]   (defaults 5 200) */
#include "agora/crafter.h"
#include "worlds/crafter/crafter_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define BINS 30 /* 10 steps of the 300-step cycle each */

typedef struct measure {
  double weighted, plain, day, night; /* steps per second */
  int64_t steps, night_steps, episodes;
  int empty_bins;
} measure;

static int run(bool pixels, double seconds, const ag_crafter_textures *tex, measure *m) {
  ag_crafter_env *env = NULL;
  if (ag_crafter_create(0, &env)) return 1;
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, 12345u);
  static uint8_t rgb[AG_CRAFTER_OBS_BYTES];
  uint8_t view[AG_CRAFTER_VIEW_W * AG_CRAFTER_VIEW_H];
  int32_t inv[AG_CRAFTER_ITEM_COUNT];
  double bin_t[BINS] = {0}, day_t = 0, night_t = 0;
  int64_t bin_n[BINS] = {0};
  *m = (measure){0};
  bool done = true;
  double start = ag_time_seconds();
  while (ag_time_seconds() - start < seconds) {
    if (done) {
      if (ag_crafter_reset(env)) return 1;
      m->episodes++;
      done = false;
    }
    int action = (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT);
    int bin = (int)(env->step % 300) / (300 / BINS);
    double t0 = ag_time_seconds();
    if (ag_crafter_step(env, action, NULL, &done, NULL)) return 1;
    if (pixels) {
      if (ag_crafter_observe_pixels(env, tex, rgb)) return 1;
    } else {
      ag_crafter_observe_semantic(env, view, inv);
    }
    double dt = ag_time_seconds() - t0;
    bin_t[bin] += dt;
    bin_n[bin]++;
    m->steps++;
    if (env->world.daylight < 0.5) {
      night_t += dt;
      m->night_steps++;
    } else {
      day_t += dt;
    }
  }
  ag_crafter_destroy(env);
  double mean = 0;
  int used = 0;
  for (int b = 0; b < BINS; b++)
    if (bin_n[b]) {
      mean += bin_t[b] / (double)bin_n[b];
      used++;
    }
  m->empty_bins = BINS - used;
  m->weighted = used ? used / mean : 0;
  m->plain = (double)m->steps / (day_t + night_t);
  m->day = day_t > 0 ? (double)(m->steps - m->night_steps) / day_t : 0;
  m->night = night_t > 0 ? (double)m->night_steps / night_t : 0;
  return 0;
}

static void report(const char *name, const measure *m) {
  printf("%-24s %11.0f steps/s over the cycle  (plain %.0f, day %.0f, night %.0f; %lld steps, "
         "%.1f%% at night, %lld episodes%s)\n",
         name, m->weighted, m->plain, m->day, m->night, (long long)m->steps,
         100.0 * (double)m->night_steps / (double)m->steps, (long long)m->episodes,
         m->empty_bins ? ", some cycle bins never reached" : "");
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5;
  int resets = argc > 2 ? atoi(argv[2]) : 200;
  if (seconds <= 0 || resets < 1) {
    fprintf(stderr, "usage: bench_crafter [seconds per measurement] [resets]\n");
    return 2;
  }
  ag_crafter_textures *tex = NULL;
  if (ag_crafter_textures_load(NULL, &tex)) {
    fprintf(stderr, "bench_crafter: %s\n", ag_error_message());
    return 1;
  }
  // The clock's own cost, included in every timed step.
  double t0 = ag_time_seconds(), t1 = t0;
  for (int i = 0; i < 1000000; i++) t1 = ag_time_seconds();
  printf("timer overhead %.1f ns per call (one call per timed step)\n", (t1 - t0) * 1e3);

  measure px, sem;
  if (run(true, seconds, tex, &px) || run(false, seconds, tex, &sem)) {
    fprintf(stderr, "bench_crafter: %s\n", ag_error_message());
    return 1;
  }
  report("exact, pixels", &px);
  report("exact, semantic", &sem);

  ag_crafter_env *env = NULL;
  if (ag_crafter_create(0, &env)) return 1;
  double best = 1e30, total = 0;
  for (int i = 0; i < resets; i++) {
    double a = ag_time_seconds();
    if (ag_crafter_reset(env)) return 1;
    double dt = ag_time_seconds() - a;
    total += dt;
    if (dt < best) best = dt;
  }
  ag_crafter_destroy(env);
  printf("%-24s %11.3f ms mean, %.3f ms best (%d resets, world generation included)\n", "reset",
         1e3 * total / resets, 1e3 * best, resets);
  ag_crafter_textures_free(tex);
  return 0;
}
