/* Crafter's rules one achievement at a time, each in a hand-built scenario
 * (data.yaml's collect, place and make rules, sleeping, the creatures, the
 * plant), and zombies at night. */
#include "test.h"
#include "worlds/crafter/crafter_internal.h"
#include "worlds/crafter_scene.h"

#include <string.h>

enum {
  NOOP = 0,
  DO = 5,
  SLEEP = 6,
  PLACE_STONE = 7,
  PLACE_TABLE = 8,
  PLACE_FURNACE = 9,
  PLACE_PLANT = 10,
  MAKE_WOOD_PICKAXE = 11,
  MAKE_STONE_PICKAXE = 12,
  MAKE_IRON_PICKAXE = 13,
  MAKE_WOOD_SWORD = 14,
  MAKE_STONE_SWORD = 15,
  MAKE_IRON_SWORD = 16
};

#define AREA    AG_CRAFTER_AREA
#define FRONT_X 32
#define FRONT_Y 33

/* Seed 0 with every creature removed, a 7 x 7 grass square around the player
 * (at the centre, facing down onto FRONT), `front` in front, an empty
 * inventory besides the vitals, and daylight. */
static ag_crafter_env *scenario(int front) {
  ag_crafter_env *e = crafter_without_creatures();
  if (!e) return NULL;
  ag_crafter_world *w = &e->world;
  ag_crafter_world_compact(w);
  for (int x = 29; x <= 35; x++)
    for (int y = 29; y <= 35; y++) w->mat[x * AREA + y] = AG_CRAFTER_GRASS;
  w->mat[FRONT_X * AREA + FRONT_Y] = (uint8_t)front;
  return e;
}

static int front(const ag_crafter_env *e) { return e->world.mat[FRONT_X * AREA + FRONT_Y]; }

static void step(ag_crafter_env *e, int action) {
  CHECK_OK(ag_crafter_step(e, action, NULL, NULL, NULL));
}

/* A creature of `type` in front of the player, walled in by stone on its
 * other three sides so that it cannot walk off. */
static uint32_t creature_in_front(ag_crafter_env *e, int type, int health) {
  ag_crafter_world *w = &e->world;
  w->mat[(FRONT_X - 1) * AREA + FRONT_Y] = AG_CRAFTER_STONE;
  w->mat[(FRONT_X + 1) * AREA + FRONT_Y] = AG_CRAFTER_STONE;
  w->mat[FRONT_X * AREA + FRONT_Y + 1] = AG_CRAFTER_STONE;
  uint32_t id = 0;
  CHECK_OK(ag_crafter_world_add(w, type, FRONT_X, FRONT_Y, &id));
  if (id) w->objects[id].health = (int16_t)health;
  return id;
}

TEST(table_needs_wood_and_a_free_tile) {
  ag_crafter_env *e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  double r;
  bool done;
  inv[AG_CRAFTER_INV_WOOD] = 1; // a table costs 2
  CHECK_OK(ag_crafter_step(e, PLACE_TABLE, &r, &done, NULL));
  CHECK(front(e) == AG_CRAFTER_GRASS && inv[AG_CRAFTER_INV_WOOD] == 1 && r == 0);
  e->world.mat[32 * AG_CRAFTER_AREA + 33] = AG_CRAFTER_WATER; // not a place for a table
  inv[AG_CRAFTER_INV_WOOD] = 2;
  CHECK_OK(ag_crafter_step(e, PLACE_TABLE, &r, &done, NULL));
  CHECK(front(e) == AG_CRAFTER_WATER && inv[AG_CRAFTER_INV_WOOD] == 2);
  e->world.mat[32 * AG_CRAFTER_AREA + 33] = AG_CRAFTER_GRASS;
  CHECK_OK(ag_crafter_step(e, PLACE_TABLE, &r, &done, NULL));
  CHECK(front(e) == AG_CRAFTER_TABLE && inv[AG_CRAFTER_INV_WOOD] == 0);
  CHECK(e->achievements[AG_CRAFTER_ACH_PLACE_TABLE] == 1 && r == 1.0);
  // A second unlock of the same achievement gives no reward.
  e->world.mat[32 * AG_CRAFTER_AREA + 33] = AG_CRAFTER_GRASS;
  inv[AG_CRAFTER_INV_WOOD] = 2;
  CHECK_OK(ag_crafter_step(e, PLACE_TABLE, &r, &done, NULL));
  CHECK(e->achievements[AG_CRAFTER_ACH_PLACE_TABLE] == 2 && r == 0);
  ag_crafter_destroy(e);
}

TEST(collecting_follows_the_rules) {
  ag_crafter_env *e = scenario(AG_CRAFTER_TREE);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  CHECK_OK(ag_crafter_step(e, DO, NULL, NULL, NULL));
  // Collecting wood leaves grass (data.yaml's `leaves`).
  CHECK(inv[AG_CRAFTER_INV_WOOD] == 1 && front(e) == AG_CRAFTER_GRASS);
  e->world.mat[32 * AG_CRAFTER_AREA + 33] = AG_CRAFTER_STONE; // needs a wood pickaxe
  CHECK_OK(ag_crafter_step(e, DO, NULL, NULL, NULL));
  CHECK(inv[AG_CRAFTER_INV_STONE] == 0 && front(e) == AG_CRAFTER_STONE);
  inv[AG_CRAFTER_INV_WOOD_PICKAXE] = 1;
  CHECK_OK(ag_crafter_step(e, DO, NULL, NULL, NULL));
  CHECK(inv[AG_CRAFTER_INV_STONE] == 1 && front(e) == AG_CRAFTER_PATH);
  // Stone can be placed on water; the inventory is capped at 9.
  e->world.mat[32 * AG_CRAFTER_AREA + 33] = AG_CRAFTER_WATER;
  CHECK_OK(ag_crafter_step(e, PLACE_STONE, NULL, NULL, NULL));
  CHECK(front(e) == AG_CRAFTER_STONE && inv[AG_CRAFTER_INV_STONE] == 0);
  inv[AG_CRAFTER_INV_STONE] = 9;
  CHECK_OK(ag_crafter_step(e, DO, NULL, NULL, NULL));
  CHECK(inv[AG_CRAFTER_INV_STONE] == 9 && front(e) == AG_CRAFTER_PATH);
  ag_crafter_destroy(e);
}

TEST(wood_pickaxe_needs_a_nearby_table) {
  ag_crafter_env *e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  inv[AG_CRAFTER_INV_WOOD] = 1;
  CHECK_OK(ag_crafter_step(e, MAKE_WOOD_PICKAXE, NULL, NULL, NULL));
  CHECK(inv[AG_CRAFTER_INV_WOOD_PICKAXE] == 0 && inv[AG_CRAFTER_INV_WOOD] == 1);
  e->world.mat[33 * AG_CRAFTER_AREA + 31] = AG_CRAFTER_TABLE; // diagonal: within the 3x3
  CHECK_OK(ag_crafter_step(e, MAKE_WOOD_PICKAXE, NULL, NULL, NULL));
  CHECK(inv[AG_CRAFTER_INV_WOOD_PICKAXE] == 1 && inv[AG_CRAFTER_INV_WOOD] == 0);
  CHECK(e->achievements[AG_CRAFTER_ACH_MAKE_WOOD_PICKAXE] == 1);
  ag_crafter_destroy(e);
}

TEST(sleeping_and_waking) {
  ag_crafter_env *e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  const ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
  CHECK_OK(ag_crafter_step(e, SLEEP, NULL, NULL, NULL)); // full energy: no sleep
  CHECK(!p->sleeping);
  inv[AG_CRAFTER_INV_ENERGY] = 8;
  CHECK_OK(ag_crafter_step(e, SLEEP, NULL, NULL, NULL));
  CHECK(p->sleeping);
  int steps = 0;
  while (p->sleeping && steps < 100) {
    CHECK_OK(ag_crafter_step(e, NOOP, NULL, NULL, NULL)); // actions are ignored while asleep
    steps++;
  }
  // Fatigue (1 after the first step) is clamped to 0 on falling asleep and
  // falls by 1 per sleeping step; below -10 it gives 1 energy, and the next
  // update wakes the player: 1 + 11 steps.
  CHECK_MSG(steps == 12, "woke after %d steps", steps);
  CHECK(inv[AG_CRAFTER_INV_ENERGY] == 9 && e->achievements[AG_CRAFTER_ACH_WAKE_UP] == 1);
  // Hunger and thirst grow by halves while sleeping.
  CHECK_MSG(e->hunger == 1 + 0.5 * 12 + 1 && e->thirst == e->hunger, "hunger %g", e->hunger);
  ag_crafter_destroy(e);
}

/* Coal and iron and diamond need the pickaxe of their level, and each
 * leaves a path; drinking from water leaves the water. */
TEST(mining_needs_the_right_pickaxe) {
  static const struct {
    int material, tool, item, achievement;
  } ores[] = {
      {AG_CRAFTER_COAL, AG_CRAFTER_INV_WOOD_PICKAXE, AG_CRAFTER_INV_COAL,
       AG_CRAFTER_ACH_COLLECT_COAL},
      {AG_CRAFTER_IRON, AG_CRAFTER_INV_STONE_PICKAXE, AG_CRAFTER_INV_IRON,
       AG_CRAFTER_ACH_COLLECT_IRON},
      {AG_CRAFTER_DIAMOND, AG_CRAFTER_INV_IRON_PICKAXE, AG_CRAFTER_INV_DIAMOND,
       AG_CRAFTER_ACH_COLLECT_DIAMOND},
  };
  for (size_t i = 0; i < sizeof ores / sizeof *ores; i++) {
    ag_crafter_env *e = scenario(ores[i].material);
    CHECK(e != NULL);
    if (!e) return;
    int32_t *inv = e->world.inventory;
    // The pickaxe one level down is not enough.
    if (ores[i].tool > AG_CRAFTER_INV_WOOD_PICKAXE) inv[ores[i].tool - 1] = 1;
    step(e, DO);
    CHECK(inv[ores[i].item] == 0 && front(e) == ores[i].material);
    inv[ores[i].tool] = 1;
    step(e, DO);
    CHECK_MSG(inv[ores[i].item] == 1 && front(e) == AG_CRAFTER_PATH, "material %d",
              ores[i].material);
    CHECK(e->achievements[ores[i].achievement] == 1);
    ag_crafter_destroy(e);
  }
  ag_crafter_env *e = scenario(AG_CRAFTER_WATER);
  CHECK(e != NULL);
  if (!e) return;
  e->world.inventory[AG_CRAFTER_INV_DRINK] = 5;
  step(e, DO);
  CHECK(e->world.inventory[AG_CRAFTER_INV_DRINK] == 6 && front(e) == AG_CRAFTER_WATER);
  CHECK(e->achievements[AG_CRAFTER_ACH_COLLECT_DRINK] == 1);
  ag_crafter_destroy(e);
}

/* Grass gives a sapling with probability 0.1 and stays grass; a sapling is
 * planted on grass only; a ripe plant (grown > 300) is eaten for 4 food. */
TEST(saplings_plants_and_eating_them) {
  ag_crafter_env *e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  int tries = 0;
  while (inv[AG_CRAFTER_INV_SAPLING] == 0 && tries < 300) {
    step(e, DO);
    tries++;
    CHECK(front(e) == AG_CRAFTER_GRASS);
  }
  // 300 draws at 0.1 all failing has probability 2e-14.
  CHECK_MSG(inv[AG_CRAFTER_INV_SAPLING] == 1, "no sapling in %d tries", tries);
  CHECK(e->achievements[AG_CRAFTER_ACH_COLLECT_SAPLING] == 1);
  e->world.mat[FRONT_X * AREA + FRONT_Y] = AG_CRAFTER_SAND; // not grass: no planting
  step(e, PLACE_PLANT);
  CHECK(inv[AG_CRAFTER_INV_SAPLING] == 1 && e->world.obj[FRONT_X * AREA + FRONT_Y] == 0);
  e->world.mat[FRONT_X * AREA + FRONT_Y] = AG_CRAFTER_GRASS;
  step(e, PLACE_PLANT);
  uint32_t id = e->world.obj[FRONT_X * AREA + FRONT_Y];
  CHECK(inv[AG_CRAFTER_INV_SAPLING] == 0 && id != 0);
  CHECK(e->achievements[AG_CRAFTER_ACH_PLACE_PLANT] == 1);
  if (!id) {
    ag_crafter_destroy(e);
    return;
  }
  CHECK(e->world.objects[id].type == AG_CRAFTER_PLANT);
  inv[AG_CRAFTER_INV_FOOD] = 2;
  step(e, DO); // unripe: nothing to eat
  CHECK(inv[AG_CRAFTER_INV_FOOD] == 2 && e->achievements[AG_CRAFTER_ACH_EAT_PLANT] == 0);
  e->world.objects[id].grown = 301;
  step(e, DO);
  CHECK(inv[AG_CRAFTER_INV_FOOD] == 6 && e->achievements[AG_CRAFTER_ACH_EAT_PLANT] == 1);
  CHECK(e->world.objects[id].grown <= 1); // it starts growing again
  ag_crafter_destroy(e);
}

/* Furnaces cost 4 stone; the stone and iron tools need a table (and iron ones
 * a furnace too) within the 3 x 3 around the player, and take their items. */
TEST(furnace_and_the_tools) {
  ag_crafter_env *e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  inv[AG_CRAFTER_INV_STONE] = 3;
  step(e, PLACE_FURNACE);
  CHECK(front(e) == AG_CRAFTER_GRASS && inv[AG_CRAFTER_INV_STONE] == 3);
  inv[AG_CRAFTER_INV_STONE] = 4;
  step(e, PLACE_FURNACE);
  CHECK(front(e) == AG_CRAFTER_FURNACE && inv[AG_CRAFTER_INV_STONE] == 0);
  CHECK(e->achievements[AG_CRAFTER_ACH_PLACE_FURNACE] == 1);
  // Stone tools: a furnace is not a table.
  inv[AG_CRAFTER_INV_WOOD] = 9;
  inv[AG_CRAFTER_INV_STONE] = 9;
  step(e, MAKE_STONE_PICKAXE);
  CHECK(inv[AG_CRAFTER_INV_STONE_PICKAXE] == 0);
  e->world.mat[31 * AREA + 32] = AG_CRAFTER_TABLE; // beside the player
  step(e, MAKE_WOOD_SWORD);
  step(e, MAKE_STONE_PICKAXE);
  step(e, MAKE_STONE_SWORD);
  CHECK(inv[AG_CRAFTER_INV_WOOD_SWORD] == 1 && inv[AG_CRAFTER_INV_STONE_PICKAXE] == 1 &&
        inv[AG_CRAFTER_INV_STONE_SWORD] == 1);
  CHECK(inv[AG_CRAFTER_INV_WOOD] == 6 && inv[AG_CRAFTER_INV_STONE] == 7);
  CHECK(e->achievements[AG_CRAFTER_ACH_MAKE_WOOD_SWORD] == 1 &&
        e->achievements[AG_CRAFTER_ACH_MAKE_STONE_PICKAXE] == 1 &&
        e->achievements[AG_CRAFTER_ACH_MAKE_STONE_SWORD] == 1);
  // Iron tools: wood, coal and iron, with a table and a furnace nearby.
  inv[AG_CRAFTER_INV_COAL] = 2;
  inv[AG_CRAFTER_INV_IRON] = 1;
  step(e, MAKE_IRON_PICKAXE);
  CHECK(inv[AG_CRAFTER_INV_IRON_PICKAXE] == 1 && inv[AG_CRAFTER_INV_IRON] == 0 &&
        inv[AG_CRAFTER_INV_COAL] == 1 && inv[AG_CRAFTER_INV_WOOD] == 5);
  step(e, MAKE_IRON_SWORD); // no iron left
  CHECK(inv[AG_CRAFTER_INV_IRON_SWORD] == 0);
  inv[AG_CRAFTER_INV_IRON] = 1;
  e->world.mat[FRONT_X * AREA + FRONT_Y] = AG_CRAFTER_GRASS; // the furnace gone
  step(e, MAKE_IRON_SWORD);
  CHECK(inv[AG_CRAFTER_INV_IRON_SWORD] == 0);
  e->world.mat[33 * AREA + 31] = AG_CRAFTER_FURNACE; // diagonal: within the 3 x 3
  step(e, MAKE_IRON_SWORD);
  CHECK(inv[AG_CRAFTER_INV_IRON_SWORD] == 1 && inv[AG_CRAFTER_INV_IRON] == 0);
  CHECK(e->achievements[AG_CRAFTER_ACH_MAKE_IRON_PICKAXE] == 1 &&
        e->achievements[AG_CRAFTER_ACH_MAKE_IRON_SWORD] == 1);
  // Stone goes on water and lava too.
  inv[AG_CRAFTER_INV_STONE] = 1;
  e->world.mat[FRONT_X * AREA + FRONT_Y] = AG_CRAFTER_LAVA;
  step(e, PLACE_STONE);
  CHECK(front(e) == AG_CRAFTER_STONE && e->achievements[AG_CRAFTER_ACH_PLACE_STONE] == 1);
  ag_crafter_destroy(e);
}

/* A cow (health 3) loses 1 per `do` without a sword and is eaten at 0 for 6
 * food; swords deal 2 (wood), 3 (stone) or 5 (iron), the best one held: a
 * zombie (health 5) falls to a stone then an iron blow, a skeleton (3) to
 * two wooden ones. Each achievement counts when the creature is gone. */
TEST(creatures_are_eaten_and_defeated) {
  ag_crafter_env *e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  int32_t *inv = e->world.inventory;
  uint32_t cow = creature_in_front(e, AG_CRAFTER_COW, 3);
  inv[AG_CRAFTER_INV_FOOD] = 1;
  step(e, DO);
  step(e, DO);
  CHECK(e->world.objects[cow].type == AG_CRAFTER_COW && e->world.objects[cow].health == 1);
  CHECK(e->achievements[AG_CRAFTER_ACH_EAT_COW] == 0);
  step(e, DO);
  CHECK(e->achievements[AG_CRAFTER_ACH_EAT_COW] == 1 && inv[AG_CRAFTER_INV_FOOD] == 7);
  CHECK(e->world.obj[FRONT_X * AREA + FRONT_Y] == 0); // removed
  ag_crafter_destroy(e);

  e = scenario(AG_CRAFTER_GRASS);
  CHECK(e != NULL);
  if (!e) return;
  inv = e->world.inventory;
  uint32_t zombie = creature_in_front(e, AG_CRAFTER_ZOMBIE, 5);
  inv[AG_CRAFTER_INV_STONE_SWORD] = 1; // damage 3
  step(e, DO);
  CHECK(e->world.objects[zombie].health == 2 && e->achievements[AG_CRAFTER_ACH_DEFEAT_ZOMBIE] == 0);
  inv[AG_CRAFTER_INV_IRON_SWORD] = 1; // damage 5: the best sword counts
  step(e, DO);
  CHECK(e->achievements[AG_CRAFTER_ACH_DEFEAT_ZOMBIE] == 1);
  CHECK(e->world.obj[FRONT_X * AREA + FRONT_Y] == 0);
  ag_crafter_destroy(e);

  e = scenario(AG_CRAFTER_PATH); // skeletons live on paths
  CHECK(e != NULL);
  if (!e) return;
  inv = e->world.inventory;
  uint32_t skeleton = creature_in_front(e, AG_CRAFTER_SKELETON, 3);
  inv[AG_CRAFTER_INV_WOOD_SWORD] = 1; // damage 2
  step(e, DO);
  CHECK(e->world.objects[skeleton].health == 1);
  step(e, DO);
  CHECK(e->achievements[AG_CRAFTER_ACH_DEFEAT_SKELETON] == 1);
  CHECK(e->world.obj[FRONT_X * AREA + FRONT_Y] == 0);
  ag_crafter_destroy(e);
}

/* Chunk balancing keeps more zombies on grass in the dark: over 600 steps of
 * standing still (two nights; the player's health topped up before each
 * step so that it lives through them), the zombies alive per night step
 * (daylight < 0.3) outnumber those per day step (> 0.7) several times. */
TEST(zombies_come_out_at_night) {
  double day_zombies = 0, night_zombies = 0;
  int64_t day_steps = 0, night_steps = 0;
  for (uint32_t seed = 1; seed <= 3; seed++) {
    ag_crafter_env *e = NULL;
    CHECK_OK(ag_crafter_create(seed, &e));
    if (!e) return;
    CHECK_OK(ag_crafter_reset(e));
    bool done = false;
    for (int t = 0; t < 600 && !done; t++) {
      e->world.inventory[AG_CRAFTER_INV_HEALTH] = 9; // the zombies would end it at night
      CHECK_OK(ag_crafter_step(e, NOOP, NULL, &done, NULL));
      int zombies = 0;
      for (uint32_t i = 0; i < e->world.live_count; i++)
        zombies += e->world.objects[e->world.live[i]].type == AG_CRAFTER_ZOMBIE;
      if (e->world.daylight > 0.7) {
        day_zombies += zombies;
        day_steps++;
      } else if (e->world.daylight < 0.3) {
        night_zombies += zombies;
        night_steps++;
      }
    }
    ag_crafter_destroy(e);
  }
  CHECK(day_steps > 100 && night_steps > 20);
  double day = day_zombies / (double)(day_steps ? day_steps : 1);
  double night = night_zombies / (double)(night_steps ? night_steps : 1);
  printf("  zombies alive per step: %.2f by day (%lld steps), %.2f at night (%lld steps)\n", day,
         (long long)day_steps, night, (long long)night_steps);
  CHECK_MSG(night > 2 * day, "%.2f at night vs %.2f by day", night, day);
}

int main(void) {
  RUN(table_needs_wood_and_a_free_tile);
  RUN(collecting_follows_the_rules);
  RUN(wood_pickaxe_needs_a_nearby_table);
  RUN(sleeping_and_waking);
  RUN(mining_needs_the_right_pickaxe);
  RUN(saplings_plants_and_eating_them);
  RUN(furnace_and_the_tools);
  RUN(creatures_are_eaten_and_defeated);
  RUN(zombies_come_out_at_night);
  TEST_MAIN_END();
}
