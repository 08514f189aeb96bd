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

// Euclidean distance from (x, y) to the player: np.sqrt of an integer.
static double player_distance(int x, int y, int px, int py) {
  int dx = x - px, dy = y - py;
  return sqrt((double)(dx * dx + dy * dy));
}

/* A column's cells as far as the noise decides them, computed field by
 * field: noise3 branches on where its input falls, and inputs that vary
 * smoothly from call to call make those branches predictable. Every field is
 * pure (no draws), so computing it before the scan changes nothing; each is
 * computed only where the original evaluates it. */
enum { UNDECIDED = 0, ORE = 0xFF }; /* else the material; ORE: a mountain draw decides */
typedef struct column_noise {
  uint8_t kind[AG_CRAFTER_AREA]; /* a material, UNDECIDED (grassland) or ORE */
  bool tunnel[AG_CRAFTER_AREA];
  double mountain[AG_CRAFTER_AREA];
  double noise[AG_CRAFTER_AREA]; /* ORE: the coal noise; UNDECIDED: the tree noise */
} column_noise;

static void column(const ag_crafter_simplex *s, int x, int px, int py, column_noise *c) {
  enum { N = AG_CRAFTER_AREA };
  const double fx = x;
  double start[N], water[N], a[N], b[N];
  for (int y = 0; y < N; y++) {
    double v = 4 - player_distance(x, y, px, py);
    v += 2 * simplex1(s, fx, y, 8, 3);
    // libm's exp: the golden files' numpy ran without AVX-512 (see daylight
    // in world.c); the 8 golden worlds come out the same with SVML's exp too.
    start[y] = 1 / (1 + exp(-v));
    c->kind[y] = start[y] > 0.5 ? AG_CRAFTER_GRASS : UNDECIDED;
    c->tunnel[y] = false;
  }
  // Water and mountain: worldgen._simplex with sizes {15: 1, 5: w}, the
  // dict's order (15 first), normalised by sum([1, w]) for the mountains.
  // The original computes them for every cell; where the start area decided
  // they are unused.
  bool open[N];
  for (int y = 0; y < N; y++) open[y] = c->kind[y] == UNDECIDED;
  for (int y = 0; y < N; y++)
    if (open[y]) a[y] = ag_crafter_simplex_noise3(s, fx / 15, (double)y / 15, 3);
  for (int y = 0; y < N; y++)
    if (open[y]) b[y] = ag_crafter_simplex_noise3(s, fx / 5, (double)y / 5, 3);
  for (int y = 0; y < N; y++) {
    if (!open[y]) continue;
    double value = a[y];
    value += 0.15 * b[y];
    water[y] = value + 0.1;
    water[y] -= 2 * start[y];
  }
  for (int y = 0; y < N; y++)
    if (open[y]) a[y] = ag_crafter_simplex_noise3(s, fx / 15, (double)y / 15, 0);
  for (int y = 0; y < N; y++)
    if (open[y]) b[y] = ag_crafter_simplex_noise3(s, fx / 5, (double)y / 5, 0);
  bool hill[N];
  for (int y = 0; y < N; y++) {
    hill[y] = false;
    if (!open[y]) continue;
    double value = a[y];
    value += 0.3 * b[y];
    value /= 1 + 0.3;
    c->mountain[y] = value - (4 * start[y] + 0.3 * water[y]);
    hill[y] = c->mountain[y] > 0.15;
  }
  // Mountains: caves, then horizontal and vertical tunnels, then the coal
  // noise of the ores.
  for (int y = 0; y < N; y++)
    if (hill[y] && simplex1(s, fx, y, 6, 7) > 0.15 && c->mountain[y] > 0.3) {
      c->kind[y] = AG_CRAFTER_PATH;
      hill[y] = false;
    }
  for (int y = 0; y < N; y++)
    if (hill[y] && simplex1(s, 2 * fx, (double)y / 5, 7, 3) > 0.4) {
      c->kind[y] = AG_CRAFTER_PATH, c->tunnel[y] = true;
      hill[y] = false;
    }
  for (int y = 0; y < N; y++)
    if (hill[y] && simplex1(s, fx / 5, 2 * (double)y, 7, 3) > 0.4) {
      c->kind[y] = AG_CRAFTER_PATH, c->tunnel[y] = true;
      hill[y] = false;
    }
  for (int y = 0; y < N; y++)
    if (hill[y]) {
      c->kind[y] = ORE;
      c->noise[y] = simplex1(s, fx, y, 1, 8);
    }
  // Lowlands: sand, water, else grassland with the tree noise.
  for (int y = 0; y < N; y++) {
    if (!open[y] || c->mountain[y] > 0.15) continue;
    if (0.25 < water[y] && water[y] <= 0.35 && simplex1(s, fx, y, 4, 9) > -0.2)
      c->kind[y] = AG_CRAFTER_SAND;
    else if (0.3 < water[y])
      c->kind[y] = AG_CRAFTER_WATER;
  }
  for (int y = 0; y < N; y++)
    if (c->kind[y] == UNDECIDED) c->noise[y] = simplex1(s, fx, y, 5, 7);
}

// The rest of the material of (x, y), in scan order: the draws.
static uint8_t material_at(const ag_crafter_simplex *s, ag_crafter_rng *r, int x, int y,
                           const column_noise *c) {
  const double fx = x, fy = y;
  switch (c->kind[y]) {
  case ORE: {
    double mountain = c->mountain[y];
    if (c->noise[y] > 0 && ag_crafter_rng_random(r) > 0.85) return AG_CRAFTER_COAL;
    if (simplex1(s, fx, fy, 2, 6) > 0.4 && ag_crafter_rng_random(r) > 0.75) return AG_CRAFTER_IRON;
    if (mountain > 0.18 && ag_crafter_rng_random(r) > 0.994) return AG_CRAFTER_DIAMOND;
    if (mountain > 0.3 && simplex1(s, fx, fy, 6, 5) > 0.35) return AG_CRAFTER_LAVA;
    return AG_CRAFTER_STONE;
  }
  case UNDECIDED: // grassland
    if (c->noise[y] > 0 && ag_crafter_rng_random(r) > 0.8) return AG_CRAFTER_TREE;
    return AG_CRAFTER_GRASS;
  default: return c->kind[y];
  }
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
  w->daylight = ag_crafter_daylight_at(0);

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
  for (int x = 0; x < AG_CRAFTER_AREA; x++) {
    column_noise c;
    column(&simplex, x, px, py, &c);
    for (int y = 0; y < AG_CRAFTER_AREA; y++) {
      int cell = x * AG_CRAFTER_AREA + y;
      w->mat[cell] = material_at(&simplex, &w->rng, x, y, &c);
      tunnels[cell] = c.tunnel[y];
    }
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
