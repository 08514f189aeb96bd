/* ag_crafter_vec: N envs stepped together across OpenMP threads, each reset
 * automatically when its episode ends. Env i is exactly a single env of seed
 * seed + i (its own world RNG and episode counter), so the threads share
 * nothing but the read-only textures. */
#include "worlds/crafter/crafter_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ag_crafter_vec {
  int n;
  int threads; /* 0: ag_threads_get() */
  ag_crafter_env **envs;
  const ag_crafter_textures *textures;
  /* Per env: the status of its last operation and, on error, the message
   * (errors are thread-local, so they are carried out of the region). */
  ag_status *status;
  char (*message)[256];
};

enum { VIEW_CELLS = AG_CRAFTER_VIEW_W * AG_CRAFTER_VIEW_H };

// Remembers env i's error for the caller's thread.
static void keep_error(ag_crafter_vec *v, int i, ag_status st) {
  v->status[i] = st;
  if (st) snprintf(v->message[i], sizeof v->message[i], "%s", ag_error_message());
}

// The first error of any env, raised again on the caller's thread.
static ag_status first_error(const ag_crafter_vec *v) {
  for (int i = 0; i < v->n; i++)
    if (v->status[i])
      return ag_error_set(v->status[i], "crafter vec: env %d: %s", i, v->message[i]);
  return AG_OK;
}

// Threads for n envs, and a dynamic chunk: a reset costs about a thousand
// steps, so envs that reset must not pin one thread's static share.
static int chunk_size(int n, int threads) {
  int c = n / (threads * 8);
  return c < 1 ? 1 : c;
}

// Env i's observations into the caller's arrays.
static ag_status observe(ag_crafter_vec *v, int i, const ag_crafter_vec_out *out) {
  const ag_crafter_env *e = v->envs[i];
  ag_crafter_observe_semantic(e, out->view ? out->view + (size_t)i * VIEW_CELLS : NULL,
                              out->inventory ? out->inventory + (size_t)i * AG_CRAFTER_ITEM_COUNT
                                             : NULL);
  if (out->pixels)
    return ag_crafter_observe_pixels(e, v->textures,
                                     out->pixels + (size_t)i * AG_CRAFTER_OBS_BYTES);
  return AG_OK;
}

void ag_crafter_vec_destroy(ag_crafter_vec *v) {
  if (!v) return;
  if (v->envs)
    for (int i = 0; i < v->n; i++) ag_crafter_destroy(v->envs[i]);
  free(v->envs);
  free(v->status);
  free(v->message);
  free(v);
}

ag_status ag_crafter_vec_create(int n, int64_t seed, ag_crafter_mode mode,
                                const ag_crafter_textures *textures, ag_crafter_vec **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "crafter vec: out is NULL");
  *out = NULL;
  if (n < 1 || n > (1 << 20))
    return ag_error_set(AG_ERR_INVALID, "crafter vec: %d envs (valid: 1 .. 1048576)", n);
  ag_crafter_vec *v = calloc(1, sizeof *v);
  if (!v) return ag_error_set(AG_ERR_NOMEM, "crafter vec: out of memory");
  v->n = n;
  v->textures = textures;
  v->envs = calloc((size_t)n, sizeof *v->envs);
  v->status = calloc((size_t)n, sizeof *v->status);
  v->message = calloc((size_t)n, sizeof *v->message);
  if (!v->envs || !v->status || !v->message) {
    ag_crafter_vec_destroy(v);
    return ag_error_set(AG_ERR_NOMEM, "crafter vec: out of memory");
  }
  int threads = ag_threads_get();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < n; i++) {
    ag_status st = ag_crafter_create_mode(seed + i, mode, &v->envs[i]);
    if (!st) st = ag_crafter_reset(v->envs[i]);
    keep_error(v, i, st);
  }
  ag_status st = first_error(v);
  if (st) {
    ag_crafter_vec_destroy(v);
    return st;
  }
  *out = v;
  return AG_OK;
}

int ag_crafter_vec_size(const ag_crafter_vec *v) { return v ? v->n : 0; }

ag_crafter_env *ag_crafter_vec_env(ag_crafter_vec *v, int i) {
  return v && i >= 0 && i < v->n ? v->envs[i] : NULL;
}

void ag_crafter_vec_set_threads(ag_crafter_vec *v, int threads) {
  if (v) v->threads = threads > 0 ? threads : 0;
}

static int vec_threads(const ag_crafter_vec *v) {
  return v->threads ? v->threads : ag_threads_get();
}

ag_status ag_crafter_vec_observe(ag_crafter_vec *v, const ag_crafter_vec_out *out) {
  if (!v || !out) return ag_error_set(AG_ERR_INVALID, "crafter vec: NULL argument to observe");
  if (out->pixels && !v->textures)
    return ag_error_set(AG_ERR_INVALID, "crafter vec: pixels need textures at creation");
  int threads = vec_threads(v);
#pragma omp parallel for schedule(static) num_threads(threads) if (out->pixels)
  for (int i = 0; i < v->n; i++) keep_error(v, i, observe(v, i, out));
  return first_error(v);
}

ag_status ag_crafter_vec_step(ag_crafter_vec *v, const int *actions,
                              const ag_crafter_vec_out *out) {
  if (!v || !actions || !out) return ag_error_set(AG_ERR_INVALID, "crafter vec: NULL argument");
  if (out->pixels && !v->textures)
    return ag_error_set(AG_ERR_INVALID, "crafter vec: pixels need textures at creation");
  for (int i = 0; i < v->n; i++)
    if (actions[i] < 0 || actions[i] >= AG_CRAFTER_ACTION_COUNT)
      return ag_error_set(AG_ERR_INVALID, "crafter vec: env %d: invalid action %d (valid: 0..%d)",
                          i, actions[i], AG_CRAFTER_ACTION_COUNT - 1);
  int threads = vec_threads(v);
#pragma omp parallel for schedule(dynamic, chunk_size(v->n, threads)) num_threads(threads)
  for (int i = 0; i < v->n; i++) {
    ag_crafter_env *e = v->envs[i];
    double reward = 0;
    bool done = false;
    ag_status st = ag_crafter_step(e, actions[i], &reward, &done, out->info ? &out->info[i] : NULL);
    if (!st && done) st = ag_crafter_reset(e);
    if (!st) st = observe(v, i, out);
    if (out->reward) out->reward[i] = reward;
    if (out->done) out->done[i] = done;
    keep_error(v, i, st);
  }
  return first_error(v);
}

/* ---- speed ------------------------------------------------------------------------------ */

enum { TENTHS = 30, ACTION_BLOCK = 4096 };

typedef struct action_source {
  ag_crafter_rng rng;
  int actions[ACTION_BLOCK];
  int next;
} action_source;

// Uniform random actions, drawn a block at a time outside the timed runs.
static void actions_refill(action_source *a) {
  for (int i = 0; i < ACTION_BLOCK; i++)
    a->actions[i] = (int)ag_crafter_rng_randint(&a->rng, 0, AG_CRAFTER_ACTION_COUNT);
  a->next = 0;
}

// The wall clock, or the calling thread's CPU time.
static double bench_clock(bool cpu_time) {
  if (!cpu_time) return ag_time_seconds();
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One single-thread figure: runs of steps within one tenth of the cycle,
// each timed by two clock reads.
static ag_status bench_single(ag_crafter_mode mode, bool pixels, const ag_crafter_textures *tex,
                              double seconds, bool cpu_time, ag_crafter_bench_figure *fig,
                              double *reset_s, int64_t *resets) {
  memset(fig, 0, sizeof *fig);
  ag_crafter_env *env = NULL;
  ag_status st = ag_crafter_create_mode(0, mode, &env);
  if (st) return st;
  action_source *a = malloc(sizeof *a);
  uint8_t *rgb = malloc(AG_CRAFTER_OBS_BYTES);
  if (!a || !rgb) {
    free(a);
    free(rgb);
    ag_crafter_destroy(env);
    return ag_error_set(AG_ERR_NOMEM, "crafter bench: out of memory");
  }
  ag_crafter_rng_seed(&a->rng, 12345u);
  actions_refill(a);
  uint8_t view[VIEW_CELLS];
  int32_t inv[AG_CRAFTER_ITEM_COUNT];
  double t_sum[TENTHS] = {0};
  int64_t n_sum[TENTHS] = {0};
  bool done = true;
  double start = bench_clock(cpu_time), now = start;
  while (!st && now - start < seconds) {
    if (done) {
      double t0 = bench_clock(cpu_time);
      st = ag_crafter_reset(env);
      *reset_s += bench_clock(cpu_time) - t0;
      ++*resets;
      done = false;
      if (st) break;
    }
    if (a->next + 10 > ACTION_BLOCK) actions_refill(a);
    int tenth = (int)(env->step % 300) / 10, left = 10 - (int)(env->step % 10), k = 0;
    double t0 = bench_clock(cpu_time);
    for (; k < left && !done && !st; k++) {
      st = ag_crafter_step(env, a->actions[a->next++], NULL, &done, NULL);
      if (st) break;
      if (pixels)
        st = ag_crafter_observe_pixels(env, tex, rgb);
      else
        ag_crafter_observe_semantic(env, view, inv);
    }
    now = bench_clock(cpu_time);
    t_sum[tenth] += now - t0;
    n_sum[tenth] += k;
  }
  double mean = 0, day_t = 0, night_t = 0;
  int64_t day_n = 0, night_n = 0;
  int used = 0;
  for (int b = 0; b < TENTHS; b++) {
    fig->steps += n_sum[b];
    if (!n_sum[b]) continue;
    mean += t_sum[b] / (double)n_sum[b];
    used++;
    bool all_day = true, all_night = true;
    for (int s = b * 10; s < b * 10 + 10; s++) {
      bool night = ag_crafter_daylight_at(s) < 0.5;
      all_day &= !night;
      all_night &= night;
    }
    if (all_day) day_t += t_sum[b], day_n += n_sum[b];
    if (all_night) night_t += t_sum[b], night_n += n_sum[b];
  }
  fig->empty_tenths = TENTHS - used;
  fig->steps_per_s = used && mean > 0 ? used / mean : 0;
  fig->day_steps_per_s = day_t > 0 ? (double)day_n / day_t : 0;
  fig->night_steps_per_s = night_t > 0 ? (double)night_n / night_t : 0;
  free(a);
  free(rgb);
  ag_crafter_destroy(env);
  return st;
}

// Env steps per second of a vec with `threads` threads (auto-resets included).
static ag_status bench_vec(int n, int threads, double seconds, double *steps_per_s) {
  *steps_per_s = 0;
  ag_crafter_vec *v = NULL;
  ag_status st = ag_crafter_vec_create(n, 0, AG_CRAFTER_MODE_FAST, NULL, &v);
  if (st) return st;
  ag_crafter_vec_set_threads(v, threads);
  int *actions = malloc(sizeof(int) * (size_t)n);
  uint8_t *view = malloc((size_t)n * VIEW_CELLS);
  int32_t *inv = malloc(sizeof(int32_t) * (size_t)n * AG_CRAFTER_ITEM_COUNT);
  double *reward = malloc(sizeof(double) * (size_t)n);
  bool *done = malloc(sizeof(bool) * (size_t)n);
  if (!actions || !view || !inv || !reward || !done) {
    st = ag_error_set(AG_ERR_NOMEM, "crafter bench: out of memory");
    goto out;
  }
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, 54321u);
  ag_crafter_vec_out o = {.view = view, .inventory = inv, .reward = reward, .done = done};
  double busy = 0, start = ag_time_seconds();
  int64_t steps = 0;
  while (ag_time_seconds() - start < seconds) {
    for (int i = 0; i < n; i++)
      actions[i] = (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT);
    double t0 = ag_time_seconds();
    st = ag_crafter_vec_step(v, actions, &o);
    busy += ag_time_seconds() - t0;
    if (st) break;
    steps += n;
  }
  if (!st && busy > 0) *steps_per_s = (double)steps / busy;
out:
  free(actions);
  free(view);
  free(inv);
  free(reward);
  free(done);
  ag_crafter_vec_destroy(v);
  return st;
}

ag_status ag_crafter_bench(const ag_crafter_textures *tex, const ag_crafter_bench_options *opt,
                           ag_crafter_bench_result *out) {
  if (!out || !opt) return ag_error_set(AG_ERR_INVALID, "crafter bench: NULL argument");
  memset(out, 0, sizeof *out);
  if (!tex) return ag_error_set(AG_ERR_INVALID, "crafter bench: pixels need textures");
  double seconds = opt->seconds;
  if (!(seconds > 0)) return ag_error_set(AG_ERR_INVALID, "crafter bench: seconds must be > 0");
  double reset_s = 0;
  ag_status st = bench_single(AG_CRAFTER_MODE_EXACT, true, tex, seconds, opt->cpu_time,
                              &out->pixels, &reset_s, &out->resets);
  if (!st)
    st = bench_single(AG_CRAFTER_MODE_FAST, false, NULL, seconds, opt->cpu_time, &out->semantic,
                      &reset_s, &out->resets);
  if (!st)
    st = bench_single(AG_CRAFTER_MODE_EXACT, false, NULL, seconds, opt->cpu_time,
                      &out->exact_semantic, &reset_s, &out->resets);
  if (st) return st;
  out->reset_ms = out->resets ? 1e3 * reset_s / (double)out->resets : 0;
  if (opt->vec_envs > 0) {
    out->vec_envs = opt->vec_envs;
    out->vec_threads = ag_threads_get();
    st = bench_vec(opt->vec_envs, out->vec_threads, seconds, &out->vec_steps_per_s);
    if (!st) st = bench_vec(opt->vec_envs, 1, seconds, &out->vec_one_thread_steps_per_s);
  }
  return st;
}
