/* The Crafter step against the original: every canonical golden trajectory
 * (../shared/data/crafter/golden/traj_S_*.jsonl.gz) replayed field by field,
 * the orig/ files with their logged despawn orders imposed, and
 * determinism per seed (hand-built scenarios: test_crafter_rules.c). */
#include "test.h"
#include "worlds/crafter/crafter_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define GOLDEN_DIR "../shared/data/crafter/golden"

static void replay_file(const char *path, bool impose) {
  ag_crafter_replay_report rep;
  ag_status st = ag_crafter_replay(path, impose, &rep);
  CHECK_MSG(st == AG_OK, "%s: %s", path, ag_error_message());
  CHECK_MSG(rep.match, "%s", rep.mismatch);
  CHECK(rep.records > 0);
  // Every record carries a pixel-observation hash, and each was compared.
  CHECK_MSG(rep.frames == rep.records, "%s: %lld frames for %lld records", path,
            (long long)rep.frames, (long long)rep.records);
  printf("  %s: %lld records (%lld frame hashes), %lld episodes%s\n", strrchr(path, '/') + 1,
         (long long)rep.records, (long long)rep.frames, (long long)rep.episodes,
         rep.match ? "" : " (mismatch)");
}

TEST(canonical_trajectories_match) {
  char path[256];
  // Every file; the sanitizer build replays the long scripted ones of 2 seeds.
  long scripted = test_scaled(8, 2);
  for (int s = 0; s < 8; s++)
    for (int k = 0; k < (s < scripted ? 2 : 1); k++) {
      snprintf(path, sizeof path, GOLDEN_DIR "/traj_%d_%s.jsonl.gz", s, k ? "scripted" : "random");
      replay_file(path, false);
    }
}

TEST(world_files_match) {
  char path[256];
  for (int s = 0; s < 8; s++) {
    snprintf(path, sizeof path, GOLDEN_DIR "/world_%d.json", s);
    replay_file(path, false);
  }
}

TEST(orig_trajectories_match_with_logged_despawns) {
  char path[256];
  long files = test_scaled(16, 4); // all 16; 4 in the sanitizer build
  for (int s = 0; s < 8; s++)
    for (int k = 0; k < 2 && 2 * s + k < files; k++) {
      snprintf(path, sizeof path, GOLDEN_DIR "/orig/traj_%d_%s.jsonl.gz", s,
               k ? "scripted" : "random");
      replay_file(path, true);
    }
}

// A copy of a golden file with one line changed must fail at that step and
// field: the comparison can fail.
TEST(a_changed_field_is_reported) {
  gzFile in = gzopen(GOLDEN_DIR "/traj_0_random.jsonl.gz", "rb");
  CHECK(in != NULL);
  if (!in) return;
  char path[] = "/tmp/ag_crafter_replay_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) {
    gzclose(in);
    return;
  }
  gzFile out = gzdopen(fd, "wb");
  static char line[1 << 20];
  int changed = 0;
  while (gzgets(in, line, sizeof line)) {
    if (strncmp(line, "{\"t\":3,", 7) == 0 && !changed) { // episode 1's step 3
      char *p = strstr(line, "\"sleeping\":false");
      if (p) {
        memcpy(p, "\"sleeping\":true,", 16); // same length: true plus a comma
        memmove(p + 16, p + 17, strlen(p + 17) + 1);
        changed++;
      }
    }
    gzputs(out, line);
  }
  gzclose(in);
  gzclose(out);
  CHECK(changed == 1);
  ag_crafter_replay_report rep;
  CHECK_OK(ag_crafter_replay(path, false, &rep));
  CHECK(!rep.match);
  CHECK_MSG(strstr(rep.mismatch, "step 3: sleeping: expected true, got false") != NULL, "%s",
            rep.mismatch);
  remove(path);
}

// A changed observation hash is reported: the pixel comparison can fail.
TEST(a_changed_frame_hash_is_reported) {
  gzFile in = gzopen(GOLDEN_DIR "/traj_1_random.jsonl.gz", "rb");
  CHECK(in != NULL);
  if (!in) return;
  char path[] = "/tmp/ag_crafter_replay_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) {
    gzclose(in);
    return;
  }
  gzFile out = gzdopen(fd, "wb");
  static char line[1 << 20];
  int changed = 0;
  while (gzgets(in, line, sizeof line)) {
    if (strncmp(line, "{\"t\":2,", 7) == 0 && !changed) {
      char *p = strstr(line, "\"obs\":\"");
      if (p) {
        p[7] = p[7] == '0' ? '1' : '0';
        changed++;
      }
    }
    gzputs(out, line);
  }
  gzclose(in);
  gzclose(out);
  CHECK(changed == 1);
  ag_crafter_replay_report rep;
  CHECK_OK(ag_crafter_replay(path, false, &rep));
  CHECK(!rep.match);
  CHECK_MSG(strstr(rep.mismatch, "step 2: obs: expected") != NULL, "%s", rep.mismatch);
  remove(path);
}

/* ---- the recorded frames, pixel for pixel ----------------------------------------- */

// The actions of a canonical scripted run (episode 1), as recorded.
static int scripted_actions(int seed, int *actions, int max) {
  char path[256];
  snprintf(path, sizeof path, GOLDEN_DIR "/traj_%d_scripted.jsonl.gz", seed);
  gzFile in = gzopen(path, "rb");
  if (!in) return 0;
  static char line[1 << 20];
  int n = 0;
  while (n < max && gzgets(in, line, sizeof line)) {
    json_t *rec = json_loads(line, 0, NULL);
    const json_t *a = json_object_get(rec, "a"), *t = json_object_get(rec, "t");
    if (json_is_integer(a) && json_integer_value(t) == n + 1)
      actions[n++] = (int)json_integer_value(a);
    json_decref(rec);
  }
  gzclose(in);
  return n;
}

static void compare_frame(const char *name, const uint8_t *got, int w, int h) {
  uint8_t *exp = NULL;
  int ew = 0, eh = 0, ch = 0;
  ag_status st = ag_crafter_png_read(name, &exp, &ew, &eh, &ch);
  CHECK_MSG(st == AG_OK, "%s", ag_error_message());
  if (st) return;
  CHECK_MSG(ew == w && eh == h && ch == 3, "%s: %dx%dx%d", name, ew, eh, ch);
  if (ew == w && eh == h && ch == 3) {
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
      if (exp[i] != got[i] && !diff++) first = i;
    CHECK_MSG(diff == 0, "%s: %zu values differ, first at row %zu col %zu channel %zu: %d vs %d",
              name, diff, first / 3 / w, first / 3 % w, first % 3, exp[first], got[first]);
  }
  free(exp);
}

TEST(recorded_frames_match_pixel_for_pixel) {
  ag_crafter_textures *tex = NULL;
  CHECK_OK(ag_crafter_textures_load(NULL, &tex));
  if (!tex) return;
  static int actions[4000];
  static uint8_t big[600 * 600 * 3];
  uint8_t rgb[AG_CRAFTER_OBS_BYTES];
  int frames = 0;
  long seeds = test_scaled(8, 2); // all 8; 2 in the sanitizer build
  for (int s = 0; s < seeds; s++) {
    char path[256];
    snprintf(path, sizeof path, GOLDEN_DIR "/frames_%d/index.json", s);
    json_t *index = json_load_file(path, 0, NULL);
    CHECK_MSG(json_is_array(index), "%s", path);
    int n_scripted = scripted_actions(s, actions, 4000);
    size_t i;
    const json_t *x;
    json_array_foreach(index, i, x) {
      const char *file = json_string_value(json_object_get(x, "file"));
      const char *run = json_string_value(json_object_get(x, "run"));
      int t = (int)json_integer_value(json_object_get(x, "t"));
      if (!file || !run) continue;
      snprintf(path, sizeof path, GOLDEN_DIR "/frames_%d/%s", s, file);
      ag_crafter_env *env = NULL;
      CHECK_OK(ag_crafter_create(s, &env));
      CHECK_OK(ag_crafter_reset(env));
      if (strcmp(run, "reset") == 0) { // env.render((600, 600)) right after reset
        CHECK_OK(ag_crafter_render(env, tex, 600, 600, big));
        compare_frame(path, big, 600, 600);
      } else {
        // Random actions: RandomState(S + 12345).randint(0, 17) per step.
        ag_crafter_rng r;
        ag_crafter_rng_seed(&r, (uint32_t)(s + 12345));
        bool scripted = strcmp(run, "scripted") == 0;
        CHECK(!scripted || t <= n_scripted);
        for (int k = 0; k < t && (!scripted || k < n_scripted); k++) {
          int a = scripted ? actions[k] : (int)ag_crafter_rng_randint(&r, 0, 17);
          CHECK_OK(ag_crafter_step(env, a, NULL, NULL, NULL));
        }
        CHECK_OK(ag_crafter_observe_pixels(env, tex, rgb));
        compare_frame(path, rgb, AG_CRAFTER_OBS_SIZE, AG_CRAFTER_OBS_SIZE);
      }
      frames++;
      ag_crafter_destroy(env);
    }
    json_decref(index);
  }
  printf("  %d recorded frames compared\n", frames);
  CHECK(frames >= 8 * seeds);
  ag_crafter_textures_free(tex);
}

// The semantic view: the local 9 x 7 tiles as ids, the player in the centre.
TEST(semantic_view) {
  ag_crafter_env *env = NULL;
  CHECK_OK(ag_crafter_create(0, &env));
  CHECK_OK(ag_crafter_reset(env));
  uint8_t view[AG_CRAFTER_VIEW_W * AG_CRAFTER_VIEW_H], map[AG_CRAFTER_CELLS];
  int32_t inv[AG_CRAFTER_ITEM_COUNT];
  ag_crafter_observe_semantic(env, view, inv);
  ag_crafter_semantic_map(env, map);
  CHECK(view[3 * AG_CRAFTER_VIEW_W + 4] == AG_CRAFTER_SEMANTIC_OBJECT_BASE); // the player: 13
  const ag_crafter_object *p = &env->world.objects[AG_CRAFTER_PLAYER_ID];
  for (int gy = 0; gy < AG_CRAFTER_VIEW_H; gy++)
    for (int gx = 0; gx < AG_CRAFTER_VIEW_W; gx++) {
      int x = p->x + gx - 4, y = p->y + gy - 3;
      CHECK(view[gy * AG_CRAFTER_VIEW_W + gx] == map[x * AG_CRAFTER_AREA + y]);
    }
  for (int i = 0; i < AG_CRAFTER_ITEM_COUNT; i++) CHECK(inv[i] == env->world.inventory[i]);
  // Objects carry their type's id; elsewhere the material.
  for (int c = 0; c < AG_CRAFTER_CELLS; c++) {
    uint32_t id = env->world.obj[c];
    int want =
        id ? AG_CRAFTER_SEMANTIC_OBJECT_BASE + env->world.objects[id].type - 1 : env->world.mat[c];
    CHECK(map[c] == want);
  }
  // A rendered frame written as PNG reads back identical; bad paths fail.
  ag_crafter_textures *tex = NULL;
  CHECK_OK(ag_crafter_textures_load(NULL, &tex));
  uint8_t rgb[AG_CRAFTER_OBS_BYTES];
  CHECK_OK(ag_crafter_observe_pixels(env, tex, rgb));
  char path[] = "/tmp/ag_crafter_frame_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  CHECK_OK(ag_crafter_write_png(path, rgb, AG_CRAFTER_OBS_SIZE, AG_CRAFTER_OBS_SIZE));
  compare_frame(path, rgb, AG_CRAFTER_OBS_SIZE, AG_CRAFTER_OBS_SIZE);
  remove(path);
  CHECK(ag_crafter_write_png("/nonexistent-dir/x.png", rgb, 64, 64) != AG_OK);
  ag_crafter_textures *none = NULL;
  CHECK(ag_crafter_textures_load("/nonexistent-dir", &none) != AG_OK && none == NULL);
  CHECK(ag_crafter_render(env, tex, 3, 3, rgb) != AG_OK);
  ag_crafter_textures_free(tex);
  ag_crafter_destroy(env);
}

/* ---- hand-built scenarios ------------------------------------------------------- */

TEST(bad_input_is_an_error) {
  ag_crafter_env *e = NULL;
  CHECK_OK(ag_crafter_create(3, &e));
  CHECK(ag_crafter_step(e, 0, NULL, NULL, NULL) == AG_ERR_INVALID); // before reset
  CHECK_OK(ag_crafter_reset(e));
  CHECK(ag_crafter_step(e, AG_CRAFTER_ACTION_COUNT, NULL, NULL, NULL) == AG_ERR_INVALID);
  CHECK(ag_crafter_step(e, -1, NULL, NULL, NULL) == AG_ERR_INVALID);
  CHECK(e->step == 0);
  ag_crafter_replay_report rep;
  CHECK(ag_crafter_replay("/nonexistent/traj.jsonl.gz", false, &rep) != AG_OK && !rep.match);
  ag_crafter_destroy(e);
}

// Same seed and actions, same trajectory; another seed, another world.
TEST(deterministic_per_seed) {
  ag_crafter_env *a = NULL, *b = NULL, *c = NULL;
  CHECK_OK(ag_crafter_create(11, &a));
  CHECK_OK(ag_crafter_create(11, &b));
  CHECK_OK(ag_crafter_create(12, &c));
  if (!a || !b || !c) goto done;
  for (int episode = 0; episode < 2; episode++) {
    CHECK_OK(ag_crafter_reset(a));
    CHECK_OK(ag_crafter_reset(b));
    CHECK_OK(ag_crafter_reset(c));
    CHECK(memcmp(a->world.mat, c->world.mat, sizeof a->world.mat) != 0);
    uint64_t lcg = 99;
    long steps = test_scaled(1200, 300);
    for (long t = 0; t < steps; t++) {
      lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
      int action = (int)((lcg >> 33) % AG_CRAFTER_ACTION_COUNT);
      double ra, rb;
      bool da, db;
      CHECK_OK(ag_crafter_step(a, action, &ra, &da, NULL));
      CHECK_OK(ag_crafter_step(b, action, &rb, &db, NULL));
      char ha[17], hb[17];
      ag_crafter_hash_objects(a, 16, ha);
      ag_crafter_hash_objects(b, 16, hb);
      if (ra != rb || da != db || strcmp(ha, hb) != 0 ||
          memcmp(&a->world.rng, &b->world.rng, sizeof a->world.rng) != 0) {
        CHECK_MSG(false, "episode %d step %ld differs", episode, t);
        break;
      }
      if (da) break;
    }
  }
done:
  ag_crafter_destroy(a);
  ag_crafter_destroy(b);
  ag_crafter_destroy(c);
}

int main(void) {
  RUN(world_files_match);
  RUN(canonical_trajectories_match);
  RUN(orig_trajectories_match_with_logged_despawns);
  RUN(a_changed_field_is_reported);
  RUN(a_changed_frame_hash_is_reported);
  RUN(recorded_frames_match_pixel_for_pixel);
  RUN(semantic_view);
  RUN(bad_input_is_an_error);
  RUN(deterministic_per_seed);
  TEST_MAIN_END();
}
