/* World generation, as the original's Env.reset and worldgen.generate_world
 * do it: the same noise fields, thresholds and order of random draws. A
 * draw happens only where the original's short-circuit `and` reaches it, so
 * the order of the tests in each condition below matters. */
#include "worlds/crafter/crafter_internal.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

// worldgen._simplex with one size: noise3(x / size, y / size, z), divided by
// the weight sum 1.
static double simplex1(const ag_crafter_simplex *s, double x, double y, double z, double size) {
  return ag_crafter_simplex_noise3(s, x / size, y / size, z);
}

// worldgen._simplex with sizes {15: 1, 5: w}: the dict's order (15 first),
// normalised by sum([1, w]) when asked.
static double simplex_15_5(const ag_crafter_simplex *s, double x, double y, double z, double w,
                           bool normalize) {
  double value = ag_crafter_simplex_noise3(s, x / 15, y / 15, z);
  value += w * ag_crafter_simplex_noise3(s, x / 5, y / 5, z);
  if (normalize) value /= 1 + w;
  return value;
}

// Euclidean distance from (x, y) to the player: np.sqrt of an integer.
static double player_distance(int x, int y, int px, int py) {
  int dx = x - px, dy = y - py;
  return sqrt((double)(dx * dx + dy * dy));
}

static uint8_t material_at(const ag_crafter_simplex *s, ag_crafter_rng *r, int x, int y, int px,
                           int py, bool *tunnel) {
  const double fx = x, fy = y;
  double start = 4 - player_distance(x, y, px, py);
  start += 2 * simplex1(s, fx, fy, 8, 3);
  // libm's exp: the golden files' numpy ran without AVX-512 (see daylight in
  // world.c); the 8 golden worlds come out the same with SVML's exp too.
  start = 1 / (1 + exp(-start));
  double water = simplex_15_5(s, fx, fy, 3, 0.15, false) + 0.1;
  water -= 2 * start;
  double mountain = simplex_15_5(s, fx, fy, 0, 0.3, true);
  mountain -= 4 * start + 0.3 * water;
  *tunnel = false;
  if (start > 0.5) return AG_CRAFTER_GRASS;
  if (mountain > 0.15) {
    if (simplex1(s, fx, fy, 6, 7) > 0.15 && mountain > 0.3) return AG_CRAFTER_PATH; // cave
    if (simplex1(s, 2 * fx, fy / 5, 7, 3) > 0.4) { // horizontal tunnel
      *tunnel = true;
      return AG_CRAFTER_PATH;
    }
    if (simplex1(s, fx / 5, 2 * fy, 7, 3) > 0.4) { // vertical tunnel
      *tunnel = true;
      return AG_CRAFTER_PATH;
    }
    if (simplex1(s, fx, fy, 1, 8) > 0 && ag_crafter_rng_random(r) > 0.85) return AG_CRAFTER_COAL;
    if (simplex1(s, fx, fy, 2, 6) > 0.4 && ag_crafter_rng_random(r) > 0.75) return AG_CRAFTER_IRON;
    if (mountain > 0.18 && ag_crafter_rng_random(r) > 0.994) return AG_CRAFTER_DIAMOND;
    if (mountain > 0.3 && simplex1(s, fx, fy, 6, 5) > 0.35) return AG_CRAFTER_LAVA;
    return AG_CRAFTER_STONE;
  }
  if (0.25 < water && water <= 0.35 && simplex1(s, fx, fy, 4, 9) > -0.2) return AG_CRAFTER_SAND;
  if (0.3 < water) return AG_CRAFTER_WATER;
  // Grassland.
  if (simplex1(s, fx, fy, 5, 7) > 0 && ag_crafter_rng_random(r) > 0.8) return AG_CRAFTER_TREE;
  return AG_CRAFTER_GRASS;
}

// The creature _set_object places at (x, y), or 0.
static int creature_at(ag_crafter_rng *r, uint8_t material, bool tunnel, double dist) {
  bool walkable =
      material == AG_CRAFTER_GRASS || material == AG_CRAFTER_SAND || material == AG_CRAFTER_PATH;
  if (!walkable) return 0;
  if (dist > 3 && material == AG_CRAFTER_GRASS && ag_crafter_rng_random(r) > 0.985)
    return AG_CRAFTER_COW;
  if (dist > 10 && ag_crafter_rng_random(r) > 0.993) return AG_CRAFTER_ZOMBIE;
  if (material == AG_CRAFTER_PATH && tunnel && ag_crafter_rng_random(r) > 0.95)
    return AG_CRAFTER_SKELETON;
  return 0;
}

ag_status ag_crafter_world_reset(ag_crafter_world *w, uint32_t world_seed) {
  if (!w || !w->objects) return ag_error_set(AG_ERR_INVALID, "crafter: world not initialised");
  ag_crafter_world_clear(w, world_seed);
  w->daylight = ag_crafter_daylight(0);

  // The player first (id 1), at the centre, with data.yaml's initial items.
  const int px = AG_CRAFTER_AREA / 2, py = AG_CRAFTER_AREA / 2;
  uint32_t id;
  ag_status st = ag_crafter_world_add(w, AG_CRAFTER_PLAYER, px, py, &id);
  if (st) return st;
  ag_crafter_object *player = &w->objects[id];
  player->face_x = 0;
  player->face_y = 1;
  w->inventory[AG_CRAFTER_INV_HEALTH] = 9;
  w->inventory[AG_CRAFTER_INV_FOOD] = 9;
  w->inventory[AG_CRAFTER_INV_DRINK] = 9;
  w->inventory[AG_CRAFTER_INV_ENERGY] = 9;
  player->health = 9;

  // The first draw seeds the noise.
  w->simplex_seed = ag_crafter_rng_randint(&w->rng, 0, 2147483647);
  ag_crafter_simplex simplex;
  ag_crafter_simplex_seed(&simplex, w->simplex_seed);

  // Materials in scan order (x outer, y inner), then creatures in the same order.
  bool tunnels[AG_CRAFTER_CELLS];
  for (int x = 0; x < AG_CRAFTER_AREA; x++)
    for (int y = 0; y < AG_CRAFTER_AREA; y++) {
      int cell = x * AG_CRAFTER_AREA + y;
      w->mat[cell] = material_at(&simplex, &w->rng, x, y, px, py, &tunnels[cell]);
    }
  for (int x = 0; x < AG_CRAFTER_AREA; x++)
    for (int y = 0; y < AG_CRAFTER_AREA; y++) {
      int cell = x * AG_CRAFTER_AREA + y;
      int type = creature_at(&w->rng, w->mat[cell], tunnels[cell], player_distance(x, y, px, py));
      if (!type) continue;
      // The original asserts the cell is free; only the player's could be
      // taken, and no creature is placed within distance 3 of it... except
      // a skeleton, if a tunnel ran through the centre, which start > 0.5
      // rules out. A failure here is a bug.
      st = ag_crafter_world_add(w, type, x, y, &id);
      if (st) return ag_error_wrap(AG_ERR_INTERNAL, "crafter: world generation");
      ag_crafter_object *o = &w->objects[id];
      o->health = type == AG_CRAFTER_ZOMBIE ? 5 : 3; // Cow 3, Zombie 5, Skeleton 3
    }
  return AG_OK;
}
