/* The Crafter text observation (BALROG's format): hand-built scenes with
 * objects at known offsets and the exact sentences, the nearest-of-each-kind
 * rule and its scan order, the options, vitals, inventory, sleeping and
 * death, the world's edge, truncation, bad input, and a property check over
 * random play (every listed tile exists at the stated offset and nothing of
 * its kind is nearer). */
#include "agora/crafter.h"
#include "test.h"
#include "worlds/crafter/crafter_internal.h"
#include "worlds/crafter_scene.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AREA AG_CRAFTER_AREA

/* Seed 0 after reset, every creature removed, the 9 x 7 view around the
 * player (at 32, 32, facing south) made grass; nothing in the inventory but
 * the vitals. */
static ag_crafter_env *scene(void) {
  ag_crafter_env *e = crafter_without_creatures();
  if (!e) return NULL;
  ag_crafter_world *w = &e->world;
  const ag_crafter_object *p = &w->objects[AG_CRAFTER_PLAYER_ID];
  for (int dx = -4; dx <= 4; dx++)
    for (int dy = -3; dy <= 3; dy++) w->mat[(p->x + dx) * AREA + p->y + dy] = AG_CRAFTER_GRASS;
  for (int i = 4; i < AG_CRAFTER_ITEM_COUNT; i++) w->inventory[i] = 0;
  return e;
}

static void set_mat(ag_crafter_env *e, int dx, int dy, int m) {
  const ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
  e->world.mat[(p->x + dx) * AREA + p->y + dy] = (uint8_t)m;
}

static void add_obj(ag_crafter_env *e, int type, int dx, int dy) {
  const ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
  uint32_t id;
  CHECK_OK(ag_crafter_world_add(&e->world, type, p->x + dx, p->y + dy, &id));
}

static char *text_of(ag_crafter_env *e, const ag_crafter_text_options *o) {
  static char buf[AG_CRAFTER_TEXT_MAX];
  size_t len = 0;
  CHECK_OK(ag_crafter_observe_text(e, o, buf, sizeof buf, &len));
  CHECK(len < sizeof buf && len == strlen(buf));
  return buf;
}

#define CHECK_HAS(text, s)                                                                         \
  CHECK_MSG(strstr((text), (s)) != NULL, "missing \"%s\" in:\n%s", (s), (text))
#define CHECK_LACKS(text, s)                                                                       \
  CHECK_MSG(strstr((text), (s)) == NULL, "unexpected \"%s\" in:\n%s", (s), (text))

TEST(a_tree_and_a_cow_at_known_offsets) {
  ag_crafter_env *e = scene();
  CHECK(e != NULL);
  if (!e) return;
  set_mat(e, 4, 0, AG_CRAFTER_TREE);  // 4 east
  add_obj(e, AG_CRAFTER_COW, -1, -2); // 2 north, 1 west
  ag_crafter_text_options skip = {.skip_ground = true};
  const char *t = text_of(e, &skip);
  CHECK_HAS(t, "You see:\n");
  CHECK_HAS(t, "\n- tree 4 steps to your east");
  CHECK_HAS(t, "\n- cow 3 steps to your north-west");
  CHECK_HAS(t, "You face nothing at your front."); // grass is skipped
  CHECK_LACKS(t, "grass");
  // Kinds in scan order (x outer): the cow's column comes first.
  CHECK(strstr(t, "- cow") < strstr(t, "- tree"));
  // The defaults keep the ground: the nearest grass is 1 step away, the
  // first in scan order (the column west of the player).
  t = text_of(e, NULL);
  CHECK_HAS(t, "\n- grass 1 step to your west\n");
  CHECK_HAS(t, "You face grass at your front.");
  // Precise locations.
  ag_crafter_text_options precise = {.precise_location = true, .skip_ground = true};
  t = text_of(e, &precise);
  CHECK_HAS(t, "\n- tree 4 steps east");
  CHECK_HAS(t, "\n- cow 2 steps north and 1 step west");
  ag_crafter_destroy(e);
}

TEST(nearest_of_each_kind_and_ties_in_scan_order) {
  ag_crafter_env *e = scene();
  if (!e) return;
  set_mat(e, 0, 3, AG_CRAFTER_STONE);  // 3 south
  set_mat(e, 2, 0, AG_CRAFTER_STONE);  // 2 east: nearer
  set_mat(e, -3, 0, AG_CRAFTER_STONE); // 3 west
  set_mat(e, 0, -2, AG_CRAFTER_WATER); // 2 north
  set_mat(e, 2, 1, AG_CRAFTER_WATER);  // 3 south-east
  set_mat(e, -2, 0, AG_CRAFTER_WATER); // 2 west: ties with north, comes first in the scan
  ag_crafter_text_options o = {.skip_ground = true};
  const char *t = text_of(e, &o);
  CHECK_HAS(t, "- stone 2 steps to your east");
  CHECK_LACKS(t, "stone 3 steps");
  CHECK_HAS(t, "- water 2 steps to your west");
  CHECK_LACKS(t, "water 2 steps to your north");
  // Kinds in the order of their first tile in the scan: stone's (x = -3)
  // precedes water's (x = -2).
  CHECK(strstr(t, "- stone") < strstr(t, "- water"));
  // Every tile (the scene only: no vitals lines).
  o.all_tiles = true;
  o.parts = AG_CRAFTER_TEXT_SCENE;
  t = text_of(e, &o);
  int lines = 0;
  for (const char *p = t; (p = strstr(p, "\n- ")); p++) lines++;
  CHECK(lines == 6);
  CHECK_HAS(t, "- stone 3 steps to your south");
  CHECK_HAS(t, "- water 3 steps to your south-east");
  ag_crafter_destroy(e);
}

TEST(water_edges_only) {
  ag_crafter_env *e = scene();
  if (!e) return;
  for (int dx = 1; dx <= 3; dx++) // a 3 x 3 lake east of the player
    for (int dy = -1; dy <= 1; dy++) set_mat(e, dx, dy, AG_CRAFTER_WATER);
  ag_crafter_text_options o = {.all_tiles = true, .skip_ground = true};
  const char *t = text_of(e, &o);
  int all = 0, edges = 0;
  for (const char *p = t; (p = strstr(p, "\n- water")); p++) all++;
  o.water_edges_only = true;
  t = text_of(e, &o);
  for (const char *p = t; (p = strstr(p, "\n- water")); p++) edges++;
  CHECK(all == 9);
  CHECK(edges == 8);                              // the centre borders only water
  CHECK_LACKS(t, "water 2 steps to your east\n"); // the centre, (2, 0)
  ag_crafter_destroy(e);
}

TEST(every_tile_of_a_plain_view) {
  ag_crafter_env *e = scene();
  if (!e) return;
  ag_crafter_text_options o = {.all_tiles = true};
  const char *t = text_of(e, &o);
  int lines = 0;
  for (const char *p = t; (p = strstr(p, "\n- grass")); p++) lines++;
  CHECK(lines == 9 * 7 - 1); // all but the player's tile
  o.skip_ground = true;
  t = text_of(e, &o);
  CHECK_HAS(t, "You see nothing away from you.\n\nYou face nothing at your front.");
  ag_crafter_destroy(e);
}

TEST(facing_vitals_inventory) {
  ag_crafter_env *e = scene();
  if (!e) return;
  set_mat(e, 0, 1, AG_CRAFTER_TABLE); // the player faces south
  e->world.inventory[AG_CRAFTER_INV_WOOD] = 2;
  e->world.inventory[AG_CRAFTER_INV_SAPLING] = 1;
  e->world.inventory[AG_CRAFTER_INV_FOOD] = 7;
  const char *t = text_of(e, NULL);
  CHECK(!strncmp(t,
                 "Your status:\n- health: 9/9\n- food: 7/9\n- drink: 9/9\n- energy: 9/9\n\n"
                 "Your inventory:\n- sapling: 1\n- wood: 2\nYou see:\n",
                 strlen("Your status:\n- health: 9/9\n- food: 7/9\n- drink: 9/9\n- energy: "
                        "9/9\n\nYour inventory:\n- sapling: 1\n- wood: 2\nYou see:\n")));
  CHECK_HAS(t, "- table 1 step to your south");
  size_t n = strlen(t);
  const char *end = "\n\nYou face table at your front.";
  CHECK(n > strlen(end) && !strcmp(t + n - strlen(end), end));
  // Parts.
  ag_crafter_text_options status = {.parts = AG_CRAFTER_TEXT_STATUS};
  t = text_of(e, &status);
  CHECK(!strcmp(t, "Your status:\n- health: 9/9\n- food: 7/9\n- drink: 9/9\n- energy: 9/9\n\n"
                   "Your inventory:\n- sapling: 1\n- wood: 2"));
  ag_crafter_text_options scene_only = {.parts = AG_CRAFTER_TEXT_SCENE};
  t = text_of(e, &scene_only);
  CHECK(!strncmp(t, "You see:\n", 9));
  e->world.inventory[AG_CRAFTER_INV_WOOD] = 0;
  e->world.inventory[AG_CRAFTER_INV_SAPLING] = 0;
  t = text_of(e, &status);
  CHECK_HAS(t, "\n\nYou have nothing in your inventory.");
  ag_crafter_destroy(e);
}

TEST(sleeping_and_dead) {
  ag_crafter_env *e = scene();
  if (!e) return;
  ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
  p->sleeping = 1;
  ag_crafter_text_options scene_only = {.parts = AG_CRAFTER_TEXT_SCENE};
  const char *t = text_of(e, &scene_only);
  CHECK(!strncmp(t,
                 "You are sleeping, and will not be able take actions until energy is full."
                 "\n\n\n\nYou see:\n",
                 strlen("You are sleeping, and will not be able take actions until energy is "
                        "full.\n\n\n\nYou see:\n")));
  ag_crafter_player_state ps;
  ag_crafter_get_player_state(e, &ps);
  CHECK(ps.sleeping && ps.facing[0] == 0 && ps.facing[1] == 1);
  p->sleeping = 0;
  e->world.inventory[AG_CRAFTER_INV_HEALTH] = 0;
  t = text_of(e, &scene_only);
  CHECK(!strncmp(t, "You died.\n\n\n\nYou see:", 20));
  t = text_of(e, NULL);
  CHECK_HAS(t, "- health: 0/9");
  ag_crafter_destroy(e);
}

TEST(world_edge) {
  ag_crafter_env *e = scene();
  if (!e) return;
  ag_crafter_world *w = &e->world;
  ag_crafter_object *p = &w->objects[AG_CRAFTER_PLAYER_ID];
  // Move the player to the west edge, facing west (outside the world).
  w->obj[p->x * AREA + p->y] = 0;
  p->x = 0;
  p->y = 32;
  w->obj[p->x * AREA + p->y] = AG_CRAFTER_PLAYER_ID;
  for (int x = 0; x <= 4; x++)
    for (int y = 29; y <= 35; y++) w->mat[x * AREA + y] = AG_CRAFTER_SAND;
  w->mat[3 * AREA + 32] = AG_CRAFTER_DIAMOND;
  p->face_x = -1;
  p->face_y = 0;
  ag_crafter_text_options o = {.all_tiles = true};
  const char *t = text_of(e, &o);
  CHECK_HAS(t, "- diamond 3 steps to your east");
  CHECK_HAS(t, "You face nothing at your front.");
  CHECK_LACKS(t, "west"); // nothing outside the world is described
  int lines = 0;
  for (const char *q = t; (q = strstr(q, "\n- ")); q++) lines++;
  CHECK(lines == 5 * 7 - 1 + 4); // the 5 columns inside, less the player; plus 4 vitals
  ag_crafter_destroy(e);
}

TEST(truncation_and_bad_input) {
  ag_crafter_env *e = scene();
  if (!e) return;
  char full[AG_CRAFTER_TEXT_MAX], small[10];
  size_t n = 0, m = 0;
  CHECK_OK(ag_crafter_observe_text(e, NULL, full, sizeof full, &n));
  CHECK_OK(ag_crafter_observe_text(e, NULL, small, sizeof small, &m));
  CHECK(m == n && n > sizeof small);
  CHECK(strlen(small) == sizeof small - 1 && !strncmp(small, full, sizeof small - 1));
  CHECK_OK(ag_crafter_observe_text(e, NULL, NULL, 0, &m)); // a length query
  CHECK(m == n);
  CHECK(ag_crafter_observe_text(e, NULL, NULL, 5, &m) != AG_OK);
  ag_crafter_text_options bad = {.parts = 4};
  CHECK(ag_crafter_observe_text(e, &bad, full, sizeof full, &m) != AG_OK);
  CHECK(ag_crafter_observe_text(NULL, NULL, full, sizeof full, &m) != AG_OK);
  CHECK(full[0] == '\0'); // cleared on error
  ag_crafter_env *fresh = NULL;
  CHECK_OK(ag_crafter_create(1, &fresh));
  CHECK(ag_crafter_observe_text(fresh, NULL, full, sizeof full, &m) != AG_OK); // before reset
  CHECK(strstr(ag_error_message(), "reset") != NULL);
  ag_crafter_destroy(fresh);
  // The worst case fits AG_CRAFTER_TEXT_MAX: every tile listed, precise
  // locations, a full inventory, asleep.
  for (int dx = -4; dx <= 4; dx++)
    for (int dy = -3; dy <= 3; dy++)
      if (dx || dy) set_mat(e, dx, dy, AG_CRAFTER_DIAMOND);
  for (int i = 0; i < AG_CRAFTER_ITEM_COUNT; i++) e->world.inventory[i] = 9;
  e->world.objects[AG_CRAFTER_PLAYER_ID].sleeping = 1;
  ag_crafter_text_options worst = {.all_tiles = true, .precise_location = true};
  CHECK_OK(ag_crafter_observe_text(e, &worst, NULL, 0, &m));
  CHECK_MSG(m < AG_CRAFTER_TEXT_MAX, "worst case %zu", m);
  ag_crafter_destroy(e);
}

/* Parses "- NAME D step(s) to your DIR" lines and checks each against the
 * semantic view: a tile of that kind at Manhattan distance D in that
 * direction, and none of that kind nearer. */
static int check_against_view(const ag_crafter_env *e, const char *text) {
  uint8_t view[AG_CRAFTER_VIEW_W * AG_CRAFTER_VIEW_H];
  ag_crafter_observe_semantic(e, view, NULL);
  static const char *const OBJ[] = {"player", "cow", "zombie", "skeleton", "arrow", "plant"};
  int bad = 0;
  for (const char *line = strstr(text, "\n- "); line; line = strstr(line + 1, "\n- ")) {
    char name[32], dir[32];
    int d;
    if (sscanf(line, "\n- %31s %d step%*s to your %31s", name, &d, dir) != 3) continue;
    int id = -1;
    for (int m = 1; m < AG_CRAFTER_MATERIAL_COUNT; m++)
      if (!strcmp(name, ag_crafter_material_name(m))) id = m;
    for (int k = 0; k < 6; k++)
      if (!strcmp(name, OBJ[k])) id = AG_CRAFTER_SEMANTIC_OBJECT_BASE + k;
    int nearest = 1000;
    bool found = false;
    for (int r = 0; r < AG_CRAFTER_VIEW_H; r++)
      for (int c = 0; c < AG_CRAFTER_VIEW_W; c++) {
        if (view[r * AG_CRAFTER_VIEW_W + c] != id || (r == 3 && c == 4)) continue;
        int dx = c - 4, dy = r - 3, dist = abs(dx) + abs(dy);
        if (dist < nearest) nearest = dist;
        char want[32];
        snprintf(want, sizeof want, "%s%s%s",
                 dy < 0   ? "north"
                 : dy > 0 ? "south"
                          : "",
                 dy && dx ? "-" : "",
                 dx < 0   ? "west"
                 : dx > 0 ? "east"
                          : "");
        found |= dist == d && !strcmp(want, dir);
      }
    if (!found || nearest != d) {
      fprintf(stderr, "line '%.40s' does not match the view (nearest %d)\n", line + 1, nearest);
      bad++;
    }
  }
  return bad;
}

TEST(random_play_matches_the_semantic_view) {
  ag_crafter_env *e = NULL;
  CHECK_OK(ag_crafter_create(5, &e));
  if (!e) return;
  long steps = test_scaled(3000, 400);
  uint32_t r = 12345;
  int bad = 0, checked = 0;
  bool saw_cow = false, saw_sleep = false;
  CHECK_OK(ag_crafter_reset(e));
  for (long i = 0; i < steps && bad < 5; i++) {
    r = r * 1103515245u + 12345u;
    int action = (int)((r >> 16) % AG_CRAFTER_ACTION_COUNT);
    bool done = false;
    CHECK_OK(ag_crafter_step(e, action, NULL, &done, NULL));
    size_t len;
    char buf[AG_CRAFTER_TEXT_MAX];
    CHECK_OK(ag_crafter_observe_text(e, NULL, buf, sizeof buf, &len));
    CHECK(len < sizeof buf);
    bad += check_against_view(e, buf);
    checked++;
    saw_cow |= strstr(buf, "- cow ") != NULL;
    saw_sleep |= strstr(buf, "You are sleeping") != NULL;
    if (done) CHECK_OK(ag_crafter_reset(e));
  }
  CHECK(bad == 0);
  CHECK(checked == steps);
  CHECK(saw_cow && saw_sleep);
  ag_crafter_destroy(e);
}

int main(void) {
  RUN(a_tree_and_a_cow_at_known_offsets);
  RUN(nearest_of_each_kind_and_ties_in_scan_order);
  RUN(water_edges_only);
  RUN(every_tile_of_a_plain_view);
  RUN(facing_vitals_inventory);
  RUN(sleeping_and_dead);
  RUN(world_edge);
  RUN(truncation_and_bad_input);
  RUN(random_play_matches_the_semantic_view);
  TEST_MAIN_END();
}
