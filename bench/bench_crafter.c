/* Crafter speed: ag_crafter_bench (the same figures as `agora crafter
 * bench`), printed in full. One thread: exact mode observing pixels every
 * step, fast mode observing the semantic view, exact mode observing the
 * semantic view, each averaged over whole day/night cycles (random episodes
 * rarely live through a night, so steps are timed in runs within each tenth
 * of the 300-step cycle and the tenths are averaged); resets timed apart.
 * Then ag_crafter_vec with N envs (fast, semantic, auto-resets included) on
 * all threads (AG_THREADS, default all cores) and on one.
 *
 * Usage: bench_crafter [seconds per measurement] [envs] [cpu]   (defaults 5 64; "cpu"
 * times the single-thread figures by the thread's CPU clock, for a busy machine) */
#include "agora/crafter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void row(const char *name, const ag_crafter_bench_figure *f) {
  printf("%-24s %11.0f steps/s over the cycle (day %.0f, night %.0f; %lld steps%s)\n", name,
         f->steps_per_s, f->day_steps_per_s, f->night_steps_per_s, (long long)f->steps,
         f->empty_tenths ? ", some tenths of the cycle never reached" : "");
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5;
  int envs = argc > 2 ? atoi(argv[2]) : 64;
  bool cpu_time = argc > 3 && strcmp(argv[3], "cpu") == 0;
  if (!(seconds > 0) || envs < 0) {
    fprintf(stderr, "usage: bench_crafter [seconds per measurement] [envs] [cpu]\n");
    return 2;
  }
  ag_crafter_textures *tex = NULL;
  ag_crafter_bench_result r;
  ag_crafter_bench_options opt = {.seconds = seconds, .vec_envs = envs, .cpu_time = cpu_time};
  if (ag_crafter_textures_load(NULL, &tex) || ag_crafter_bench(tex, &opt, &r)) {
    fprintf(stderr, "bench_crafter: %s\n", ag_error_message());
    ag_crafter_textures_free(tex);
    return 1;
  }
  ag_crafter_textures_free(tex);
  row("exact, pixels", &r.pixels);
  row("fast, semantic", &r.semantic);
  row("exact, semantic", &r.exact_semantic);
  printf("%-24s %11.3f ms mean (%lld resets, world generation included)\n", "reset", r.reset_ms,
         (long long)r.resets);
  if (envs)
    printf("%-24s %11.0f env steps/s on %d threads, %.0f on one (%d envs, fast, semantic, "
           "auto-resets included)\n",
           "vec", r.vec_steps_per_s, r.vec_threads, r.vec_one_thread_steps_per_s, r.vec_envs);
  return 0;
}
