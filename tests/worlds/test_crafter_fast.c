/* Crafter's fast mode against exact mode, and a million random steps.
 *
 * Fast mode skips only the night-noise draws exact mode makes for the
 * original's night rendering, so the two are identical step for step until
 * the first night step (daylight < 0.5, step 148), then diverge; their
 * statistics must still agree. */
#include "agora/crafter.h"
#include "test.h"
#include "worlds/crafter/crafter_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FIRST_NIGHT = 148 }; /* the first step with daylight < 0.5 */

static bool same_state(const ag_crafter_env *a, const ag_crafter_env *b) {
  char ha[65], hb[65];
  ag_crafter_hash_objects(a, 64, ha);
  ag_crafter_hash_objects(b, 64, hb);
  return memcmp(a->world.mat, b->world.mat, sizeof a->world.mat) == 0 && strcmp(ha, hb) == 0 &&
         memcmp(&a->world.rng, &b->world.rng, sizeof a->world.rng) == 0 &&
         memcmp(a->world.inventory, b->world.inventory, sizeof a->world.inventory) == 0 &&
         memcmp(a->achievements, b->achievements, sizeof a->achievements) == 0 &&
         a->hunger == b->hunger && a->thirst == b->thirst && a->fatigue == b->fatigue &&
         a->recover == b->recover && a->step == b->step;
}

TEST(first_night_is_step_148) {
  for (int t = 0; t < FIRST_NIGHT; t++) CHECK(ag_crafter_daylight(t) >= 0.5);
  CHECK(ag_crafter_daylight(FIRST_NIGHT) < 0.5);
}

// Same seed, same actions: identical (world, objects, RNG, vitals, rewards,
// frames) at every step before the first night, different RNGs right after.
TEST(fast_equals_exact_until_the_first_night) {
  ag_crafter_textures *tex = NULL;
  CHECK_OK(ag_crafter_textures_load(NULL, &tex));
  static uint8_t fa[AG_CRAFTER_OBS_BYTES], fb[AG_CRAFTER_OBS_BYTES];
  int nights = 0, steps = 0;
  long seeds = test_scaled(12, 3);
  for (int s = 0; s < seeds && tex; s++) {
    ag_crafter_env *ex = NULL, *fa_env = NULL;
    CHECK_OK(ag_crafter_create_mode(s, AG_CRAFTER_MODE_EXACT, &ex));
    CHECK_OK(ag_crafter_create_mode(s, AG_CRAFTER_MODE_FAST, &fa_env));
    if (!ex || !fa_env) break;
    CHECK(ag_crafter_get_mode(ex) == AG_CRAFTER_MODE_EXACT);
    CHECK(ag_crafter_get_mode(fa_env) == AG_CRAFTER_MODE_FAST);
    ag_crafter_rng r;
    ag_crafter_rng_seed(&r, (uint32_t)(s + 12345));
    // Episodes until one reaches the night (random episodes often die first).
    for (int episode = 0; episode < 8; episode++) {
      CHECK_OK(ag_crafter_reset(ex));
      CHECK_OK(ag_crafter_reset(fa_env));
      CHECK(same_state(ex, fa_env));
      bool done = false, reached = false;
      while (!done) {
        int a = (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT);
        double ra, rb;
        bool da, db;
        ag_crafter_info ia, ib;
        CHECK_OK(ag_crafter_step(ex, a, &ra, &da, &ia));
        CHECK_OK(ag_crafter_step(fa_env, a, &rb, &db, &ib));
        steps++;
        done = da;
        if (ex->step == FIRST_NIGHT) {
          // Exact mode drew 3,087 uniforms for the night noise; fast did not.
          CHECK(memcmp(&ex->world.rng, &fa_env->world.rng, sizeof ex->world.rng) != 0);
          reached = true;
          break;
        }
        if (ra != rb || da != db || memcmp(&ia, &ib, sizeof ia) != 0 || !same_state(ex, fa_env)) {
          CHECK_MSG(false, "seed %d episode %d step %lld: fast differs from exact by day", s,
                    episode + 1, (long long)ex->step);
          done = true;
          break;
        }
        // Day frames are the same bits in both modes.
        if (ex->step % 16 == 0) {
          CHECK_OK(ag_crafter_observe_pixels(ex, tex, fa));
          CHECK_OK(ag_crafter_observe_pixels(fa_env, tex, fb));
          CHECK(memcmp(fa, fb, sizeof fa) == 0);
        }
      }
      if (reached) {
        nights++;
        break;
      }
    }
    ag_crafter_destroy(ex);
    ag_crafter_destroy(fa_env);
  }
  printf("  %d steps compared, %d episodes reached the first night\n", steps, nights);
  CHECK(nights >= seeds / 3);
  ag_crafter_textures_free(tex);
}

// Mean over the 63x49 local view of all channels of a frame.
static double view_mean(const uint8_t *rgb) {
  double sum = 0;
  for (int y = 0; y < 49; y++)
    for (int x = 0; x < 63 * 3; x++) sum += rgb[y * AG_CRAFTER_OBS_SIZE * 3 + x];
  return sum / (49.0 * 63 * 3);
}

// Fast mode's night frames: drawn from a hash, not the world RNG; the same
// frame every call; as dark and as noisy as exact mode's on the same state.
TEST(fast_night_pixels) {
  ag_crafter_textures *tex = NULL;
  CHECK_OK(ag_crafter_textures_load(NULL, &tex));
  ag_crafter_env *e = NULL;
  CHECK_OK(ag_crafter_create_mode(3, AG_CRAFTER_MODE_EXACT, &e));
  if (!tex || !e) goto done;
  static uint8_t a[AG_CRAFTER_OBS_BYTES], b[AG_CRAFTER_OBS_BYTES], c[AG_CRAFTER_OBS_BYTES];
  // Into the deep night: the step counter only sets the daylight, and the
  // step taken from there makes exact mode's night draws.
  CHECK_OK(ag_crafter_reset(e));
  e->step = 199;
  CHECK_OK(ag_crafter_step(e, 0, NULL, NULL, NULL));
  CHECK(e->world.daylight < 0.2);
  CHECK_OK(ag_crafter_observe_pixels(e, tex, a)); // exact: the step's own draws
  e->mode = AG_CRAFTER_MODE_FAST;                 // the same state, fast noise
  ag_crafter_rng before = e->world.rng;
  CHECK_OK(ag_crafter_observe_pixels(e, tex, b));
  CHECK_OK(ag_crafter_observe_pixels(e, tex, c));
  CHECK(memcmp(b, c, sizeof b) == 0);
  CHECK(memcmp(a, b, sizeof a) != 0);
  CHECK(memcmp(&before, &e->world.rng, sizeof before) == 0);
  // Same distribution: over 9,261 values the means agree closely (the noise
  // alone moves a pixel by up to ~95 levels where the vignette is strong).
  double ma = view_mean(a), mb = view_mean(b);
  printf("  night view mean: exact %.2f, fast %.2f\n", ma, mb);
  CHECK(fabs(ma - mb) < 1.5);
  int differ = 0;
  for (size_t i = 0; i < sizeof a; i++) differ += a[i] != b[i];
  CHECK(differ > 1000); // the noise really is different
  // Another size renders without touching the world RNG in fast mode.
  uint8_t *big = malloc(200 * 200 * 3);
  CHECK(big != NULL);
  if (big) {
    CHECK_OK(ag_crafter_render(e, tex, 200, 200, big));
    CHECK(memcmp(&before, &e->world.rng, sizeof before) == 0);
    e->mode = AG_CRAFTER_MODE_EXACT;
    CHECK_OK(ag_crafter_render(e, tex, 90, 90, big)); // exact: draws from the world RNG
    CHECK(memcmp(&before, &e->world.rng, sizeof before) != 0);
    free(big);
  }
done:
  ag_crafter_destroy(e);
  ag_crafter_textures_free(tex);
}

typedef struct stats {
  int64_t episodes, night_episodes; /* night_episodes: those that saw a night step */
  int64_t unlocked[AG_CRAFTER_ACHIEVEMENT_COUNT];
  double len, len2, ret, ret2;
  double zombies, zombies2; /* per night episode: mean zombies alive per night step */
} stats;

// Random episodes of seeds seed0, seed0 + 1, ... (one episode each).
static void play(ag_crafter_mode mode, int seed0, int episodes, stats *st) {
  memset(st, 0, sizeof *st);
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, (uint32_t)seed0 * 7919u + 1u);
  for (int k = 0; k < episodes; k++) {
    ag_crafter_env *e = NULL;
    if (ag_crafter_create_mode(seed0 + k, mode, &e) || ag_crafter_reset(e)) {
      CHECK_MSG(false, "%s", ag_error_message());
      ag_crafter_destroy(e);
      return;
    }
    bool done = false;
    double ret = 0, reward;
    int64_t night_steps = 0, night_zombies = 0;
    ag_crafter_info info;
    while (!done) {
      int a = (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT);
      CHECK_OK(ag_crafter_step(e, a, &reward, &done, &info));
      ret += reward;
      if (e->world.daylight < 0.5) {
        night_steps++;
        for (uint32_t i = 0; i < e->world.live_count; i++)
          night_zombies += e->world.objects[e->world.live[i]].type == AG_CRAFTER_ZOMBIE;
      }
    }
    st->episodes++;
    if (night_steps) {
      double z = (double)night_zombies / (double)night_steps;
      st->night_episodes++;
      st->zombies += z;
      st->zombies2 += z * z;
    }
    for (int i = 0; i < AG_CRAFTER_ACHIEVEMENT_COUNT; i++)
      st->unlocked[i] += info.achievements[i] > 0;
    st->len += (double)info.step;
    st->len2 += (double)info.step * (double)info.step;
    st->ret += ret;
    st->ret2 += ret * ret;
    ag_crafter_destroy(e);
  }
}

// Welch's z for two means from sums and sums of squares.
static double welch(double s1, double q1, double n1, double s2, double q2, double n2) {
  double m1 = s1 / n1, m2 = s2 / n2;
  double v1 = (q1 - n1 * m1 * m1) / (n1 - 1), v2 = (q2 - n2 * m2 * m2) / (n2 - 1);
  double se = sqrt(v1 / n1 + v2 / n2);
  return se > 0 ? (m1 - m2) / se : 0;
}

// Independent random episodes (different seeds) in each mode: success rates,
// lengths, returns and the zombies alive at night agree within sampling
// error (|z| < 5 for each of the 25 statistics; a chance failure has odds
// of about 1 in 10^5).
TEST(fast_mode_statistics_match_exact) {
  int n = (int)test_scaled(300, 80);
  stats ex, fa;
  play(AG_CRAFTER_MODE_EXACT, 10000, n, &ex);
  play(AG_CRAFTER_MODE_FAST, 20000, n, &fa);
  if (ex.episodes != n || fa.episodes != n) return;
  double worst = 0;
  for (int i = 0; i < AG_CRAFTER_ACHIEVEMENT_COUNT; i++) {
    double p1 = (double)ex.unlocked[i] / n, p2 = (double)fa.unlocked[i] / n;
    double p = (p1 + p2) / 2, se = sqrt(p * (1 - p) * 2.0 / n);
    double z = se > 0 ? (p1 - p2) / se : 0;
    if (fabs(z) > fabs(worst)) worst = z;
    CHECK_MSG(fabs(z) < 5, "%s: exact %.3f, fast %.3f (z %.2f)", ag_crafter_achievement_name(i), p1,
              p2, z);
  }
  double zl = welch(ex.len, ex.len2, n, fa.len, fa.len2, n);
  double zr = welch(ex.ret, ex.ret2, n, fa.ret, fa.ret2, n);
  double ne = (double)ex.night_episodes, nf = (double)fa.night_episodes;
  double zz =
      ne > 1 && nf > 1 ? welch(ex.zombies, ex.zombies2, ne, fa.zombies, fa.zombies2, nf) : 0;
  printf("  %d episodes each: mean length exact %.1f fast %.1f (z %.2f), return %.3f / %.3f "
         "(z %.2f), worst achievement z %.2f; zombies per night step %.2f / %.2f over %.0f / %.0f "
         "episodes (z %.2f)\n",
         n, ex.len / n, fa.len / n, zl, ex.ret / n, fa.ret / n, zr, worst, ex.zombies / ne,
         fa.zombies / nf, ne, nf, zz);
  CHECK(fabs(zl) < 5);
  CHECK(fabs(zr) < 5);
  CHECK(ne > 10 && nf > 10);
  CHECK(fabs(zz) < 5);
}

// A million random steps (0.25 million in the sanitizer build) over many
// seeds, alternating modes: each seed's episode runs to its end, then its
// world keeps running to 1,500 steps (the original lets a dead player's world
// go on; so five day/night cycles, deep nights, many arrows and spawns, which
// random players rarely live to see). No crash, sane state throughout.
TEST(a_million_random_steps) {
  enum { STEPS_PER_SEED = 1500 };
  long total = test_scaled(1000000, 20000);
  long steps = 0, seeds = 0, ended = 0, max_objects = 0;
  ag_crafter_rng r;
  ag_crafter_rng_seed(&r, 2024);
  uint8_t view[AG_CRAFTER_VIEW_W * AG_CRAFTER_VIEW_H];
  int32_t inv[AG_CRAFTER_ITEM_COUNT];
  long bad = 0;
  for (int seed = 0; steps < total && !bad; seed++) {
    ag_crafter_env *e = NULL;
    CHECK_OK(
        ag_crafter_create_mode(seed, seed % 2 ? AG_CRAFTER_MODE_FAST : AG_CRAFTER_MODE_EXACT, &e));
    if (!e) break;
    CHECK_OK(ag_crafter_reset(e));
    seeds++;
    bool over = false;
    for (int t = 0; t < STEPS_PER_SEED && steps < total; t++) {
      int a = (int)ag_crafter_rng_randint(&r, 0, AG_CRAFTER_ACTION_COUNT);
      bool done = false;
      if (ag_crafter_step(e, a, NULL, &done, NULL)) {
        CHECK_MSG(false, "seed %d step %d: %s", seed, t, ag_error_message());
        bad++;
        break;
      }
      steps++;
      if (done && !over) ended++;
      over |= done;
      ag_crafter_observe_semantic(e, view, inv);
      for (int i = 0; i < AG_CRAFTER_ITEM_COUNT; i++) bad += inv[i] < 0 || inv[i] > 9;
      for (size_t i = 0; i < sizeof view; i++) bad += view[i] > AG_CRAFTER_SEMANTIC_OBJECT_BASE + 5;
      const ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
      bad += p->x >= AG_CRAFTER_AREA || p->y >= AG_CRAFTER_AREA;
      bad += e->world.obj[p->x * AG_CRAFTER_AREA + p->y] != AG_CRAFTER_PLAYER_ID;
    }
    if ((long)e->world.live_count > max_objects) max_objects = (long)e->world.live_count;
    ag_crafter_destroy(e);
  }
  printf("  %ld steps over %ld seeds, %ld episodes ended in them, up to %ld objects alive\n", steps,
         seeds, ended, max_objects);
  CHECK(bad == 0);
  CHECK(steps == total);
  CHECK(ended > seeds / 2);
}

TEST(bad_mode_is_an_error) {
  ag_crafter_env *e = NULL;
  CHECK(ag_crafter_create_mode(0, (ag_crafter_mode)7, &e) == AG_ERR_INVALID);
  CHECK(e == NULL);
  CHECK(strcmp(ag_crafter_mode_name(AG_CRAFTER_MODE_FAST), "fast") == 0);
  CHECK(strcmp(ag_crafter_mode_name(AG_CRAFTER_MODE_EXACT), "exact") == 0);
  CHECK(strcmp(ag_crafter_mode_name((ag_crafter_mode)7), "") == 0);
}

int main(void) {
  RUN(first_night_is_step_148);
  RUN(fast_equals_exact_until_the_first_night);
  RUN(fast_night_pixels);
  RUN(fast_mode_statistics_match_exact);
  RUN(a_million_random_steps);
  RUN(bad_mode_is_an_error);
  TEST_MAIN_END();
}
