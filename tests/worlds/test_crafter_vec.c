/* ag_crafter_vec: env i of a vec is a single env of seed seed + i given the
 * same actions and reset whenever done (rewards, done flags, infos, semantic
 * and pixel observations, full state), whatever the thread count. */
#include "agora/crafter.h"
#include "test.h"
#include "worlds/crafter/crafter_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VIEW = AG_CRAFTER_VIEW_W * AG_CRAFTER_VIEW_H, INV = AG_CRAFTER_ITEM_COUNT };

typedef struct outputs {
  uint8_t *view, *pixels;
  int32_t *inv;
  double *reward;
  bool *done;
  ag_crafter_info *info;
  ag_crafter_vec_out out;
} outputs;

static bool outputs_alloc(outputs *o, int n, bool pixels) {
  memset(o, 0, sizeof *o);
  o->view = malloc((size_t)n * VIEW);
  o->inv = malloc(sizeof(int32_t) * (size_t)n * INV);
  o->pixels = pixels ? malloc((size_t)n * AG_CRAFTER_OBS_BYTES) : NULL;
  o->reward = malloc(sizeof(double) * (size_t)n);
  o->done = malloc(sizeof(bool) * (size_t)n);
  o->info = malloc(sizeof(ag_crafter_info) * (size_t)n);
  o->out = (ag_crafter_vec_out){o->view, o->inv, o->pixels, o->reward, o->done, o->info};
  return o->view && o->inv && (!pixels || o->pixels) && o->reward && o->done && o->info;
}

static void outputs_free(outputs *o) {
  free(o->view);
  free(o->inv);
  free(o->pixels);
  free(o->reward);
  free(o->done);
  free(o->info);
}

static bool same_state(const ag_crafter_env *a, const ag_crafter_env *b) {
  char ha[65], hb[65];
  ag_crafter_hash_objects(a, 64, ha);
  ag_crafter_hash_objects(b, 64, hb);
  return memcmp(a->world.mat, b->world.mat, sizeof a->world.mat) == 0 && strcmp(ha, hb) == 0 &&
         memcmp(&a->world.rng, &b->world.rng, sizeof a->world.rng) == 0 && a->step == b->step &&
         a->episode == b->episode && a->seed == b->seed;
}

// n envs, `steps` vec steps; pixels every `pixel_every` steps (0: none).
static void vec_equals_singles(ag_crafter_mode mode, int n, int threads, long steps,
                               const ag_crafter_textures *tex) {
  const int64_t seed = 40;
  ag_crafter_vec *v = NULL;
  CHECK_OK(ag_crafter_vec_create(n, seed, mode, tex, &v));
  if (!v) return;
  ag_crafter_vec_set_threads(v, threads);
  CHECK(ag_crafter_vec_size(v) == n);
  ag_crafter_env **single = calloc((size_t)n, sizeof *single);
  outputs o;
  bool ok = single && outputs_alloc(&o, n, tex != NULL);
  int *actions = malloc(sizeof(int) * (size_t)n);
  uint8_t *px = malloc(AG_CRAFTER_OBS_BYTES);
  CHECK(ok && actions && px);
  if (!ok || !actions || !px) goto done;
  for (int i = 0; i < n; i++) {
    CHECK_OK(ag_crafter_create_mode(seed + i, mode, &single[i]));
    CHECK_OK(ag_crafter_reset(single[i]));
  }
  // The first observations.
  CHECK_OK(ag_crafter_vec_observe(v, &o.out));
  for (int i = 0; i < n; i++) {
    uint8_t view[VIEW];
    int32_t inv[INV];
    ag_crafter_observe_semantic(single[i], view, inv);
    CHECK(memcmp(view, o.view + (size_t)i * VIEW, VIEW) == 0);
    CHECK(memcmp(inv, o.inv + (size_t)i * INV, sizeof inv) == 0);
    if (tex) {
      CHECK_OK(ag_crafter_observe_pixels(single[i], tex, px));
      CHECK(memcmp(px, o.pixels + (size_t)i * AG_CRAFTER_OBS_BYTES, AG_CRAFTER_OBS_BYTES) == 0);
    }
  }
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, 7u);
  long episodes = 0, mismatches = 0;
  for (long t = 0; t < steps && !mismatches; t++) {
    for (int i = 0; i < n; i++) actions[i] = (int)ag_crafter_rng_randint(&r, 0, 17);
    CHECK_OK(ag_crafter_vec_step(v, actions, &o.out));
    for (int i = 0; i < n; i++) {
      ag_crafter_env *e = single[i];
      double reward;
      bool done;
      ag_crafter_info info;
      CHECK_OK(ag_crafter_step(e, actions[i], &reward, &done, &info));
      if (done) {
        CHECK_OK(ag_crafter_reset(e));
        episodes++;
      }
      uint8_t view[VIEW];
      int32_t inv[INV];
      ag_crafter_observe_semantic(e, view, inv);
      bool same = reward == o.reward[i] && done == o.done[i] &&
                  memcmp(&info, &o.info[i], sizeof info) == 0 &&
                  memcmp(view, o.view + (size_t)i * VIEW, VIEW) == 0 &&
                  memcmp(inv, o.inv + (size_t)i * INV, sizeof inv) == 0 &&
                  same_state(e, ag_crafter_vec_env(v, i));
      if (tex) {
        CHECK_OK(ag_crafter_observe_pixels(e, tex, px));
        same &= memcmp(px, o.pixels + (size_t)i * AG_CRAFTER_OBS_BYTES, AG_CRAFTER_OBS_BYTES) == 0;
      }
      if (!same) {
        CHECK_MSG(false, "%s mode, %d threads: env %d differs at step %ld",
                  ag_crafter_mode_name(mode), threads, i, t);
        mismatches++;
        break;
      }
    }
  }
  printf("  %s mode, %d envs, %d threads, %ld steps each, %ld episodes ended%s\n",
         ag_crafter_mode_name(mode), n, threads, steps, episodes, tex ? ", pixels compared" : "");
  CHECK(episodes >= n / 4); // auto-reset was exercised (episodes last ~170 steps)
done:
  if (single)
    for (int i = 0; i < n; i++) ag_crafter_destroy(single[i]);
  free(single);
  free(actions);
  free(px);
  outputs_free(&o);
  ag_crafter_vec_destroy(v);
}

TEST(exact_vec_with_pixels_equals_single_envs) {
  ag_crafter_textures *tex = NULL;
  CHECK_OK(ag_crafter_textures_load(NULL, &tex));
  if (!tex) return;
  vec_equals_singles(AG_CRAFTER_MODE_EXACT, 6, 2, test_scaled(300, 200), tex);
  ag_crafter_textures_free(tex);
}

TEST(fast_vec_equals_single_envs_on_any_thread_count) {
  // Each vec step is a parallel region: few of them (an oversubscribed
  // machine makes each barrier slow), each with 16 envs of work.
  vec_equals_singles(AG_CRAFTER_MODE_FAST, 16, 1, test_scaled(300, 150), NULL);
  vec_equals_singles(AG_CRAFTER_MODE_FAST, 16, 2, test_scaled(250, 200), NULL);
  vec_equals_singles(AG_CRAFTER_MODE_FAST, 16, 3, test_scaled(200, 200), NULL);
}

TEST(bad_input_is_an_error) {
  ag_crafter_vec *v = NULL;
  CHECK(ag_crafter_vec_create(0, 0, AG_CRAFTER_MODE_FAST, NULL, &v) == AG_ERR_INVALID);
  CHECK(v == NULL);
  CHECK(ag_crafter_vec_create(2, 0, (ag_crafter_mode)9, NULL, &v) != AG_OK);
  CHECK(v == NULL);
  CHECK_OK(ag_crafter_vec_create(3, 5, AG_CRAFTER_MODE_EXACT, NULL, &v));
  if (!v) return;
  uint8_t view[3 * VIEW], pixels[3 * AG_CRAFTER_OBS_BYTES];
  ag_crafter_vec_out out = {.view = view};
  int bad[3] = {0, 17, 1};
  CHECK(ag_crafter_vec_step(v, bad, &out) == AG_ERR_INVALID);
  for (int i = 0; i < 3; i++) CHECK(ag_crafter_vec_env(v, i)->step == 0); // nothing stepped
  int neg[3] = {-1, 0, 0};
  CHECK(ag_crafter_vec_step(v, neg, &out) == AG_ERR_INVALID);
  ag_crafter_vec_out with_pixels = {.pixels = pixels};
  int ok[3] = {0, 0, 0};
  CHECK(ag_crafter_vec_step(v, ok, &with_pixels) == AG_ERR_INVALID); // no textures given
  CHECK(ag_crafter_vec_env(v, 3) == NULL && ag_crafter_vec_env(v, -1) == NULL);
  CHECK_OK(ag_crafter_vec_step(v, ok, &out));
  for (int i = 0; i < 3; i++) CHECK(ag_crafter_vec_env(v, i)->step == 1);
  CHECK(ag_crafter_vec_env(v, 2)->seed == 7);
  ag_crafter_vec_destroy(v);
  ag_crafter_vec_destroy(NULL);
}

int main(void) {
  RUN(exact_vec_with_pixels_equals_single_envs);
  RUN(fast_vec_equals_single_envs_on_any_thread_count);
  RUN(bad_input_is_an_error);
  TEST_MAIN_END();
}
