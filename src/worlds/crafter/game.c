/* The game step: the original's Env.step, Player, Cow, Zombie, Skeleton,
 * Arrow and Plant (crafter 1.8.3 objects.py / env.py), with the same random
 * draws in the same order. Every `uniform()` below is one draw of the world
 * RNG where the original makes one; the comments name the original's
 * conditions where short-circuit evaluation decides whether a draw happens. */
#include "worlds/crafter/crafter_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h> /* material bitmaps for balancing */
#endif

#define AREA          AG_CRAFTER_AREA
#define VIEW_DISTANCE 18 /* objects update within 2 * max(view) of the player */
#define ITEM_MAX      9  /* every item's cap in data.yaml */

static const char *const ACTION_NAMES[AG_CRAFTER_ACTION_COUNT] = {"noop",
                                                                  "move_left",
                                                                  "move_right",
                                                                  "move_up",
                                                                  "move_down",
                                                                  "do",
                                                                  "sleep",
                                                                  "place_stone",
                                                                  "place_table",
                                                                  "place_furnace",
                                                                  "place_plant",
                                                                  "make_wood_pickaxe",
                                                                  "make_stone_pickaxe",
                                                                  "make_iron_pickaxe",
                                                                  "make_wood_sword",
                                                                  "make_stone_sword",
                                                                  "make_iron_sword"};
static const char *const ACHIEVEMENT_NAMES[AG_CRAFTER_ACHIEVEMENT_COUNT] = {
    "collect_coal",     "collect_diamond",
    "collect_drink",    "collect_iron",
    "collect_sapling",  "collect_stone",
    "collect_wood",     "defeat_skeleton",
    "defeat_zombie",    "eat_cow",
    "eat_plant",        "make_iron_pickaxe",
    "make_iron_sword",  "make_stone_pickaxe",
    "make_stone_sword", "make_wood_pickaxe",
    "make_wood_sword",  "place_furnace",
    "place_plant",      "place_stone",
    "place_table",      "wake_up"};
static const char *const ITEM_NAMES[AG_CRAFTER_ITEM_COUNT] = {
    "health",       "food",       "drink",       "energy",    "sapling",      "wood",
    "stone",        "coal",       "iron",        "diamond",   "wood_pickaxe", "stone_pickaxe",
    "iron_pickaxe", "wood_sword", "stone_sword", "iron_sword"};

const char *ag_crafter_action_name(int a) {
  return a >= 0 && a < AG_CRAFTER_ACTION_COUNT ? ACTION_NAMES[a] : "";
}
const char *ag_crafter_achievement_name(int a) {
  return a >= 0 && a < AG_CRAFTER_ACHIEVEMENT_COUNT ? ACHIEVEMENT_NAMES[a] : "";
}
const char *ag_crafter_item_name(int i) {
  return i >= 0 && i < AG_CRAFTER_ITEM_COUNT ? ITEM_NAMES[i] : "";
}

/* ---- materials and cells ---------------------------------------------------- */

#define M(m) (1u << AG_CRAFTER_##m)
static const uint32_t WALK_CREATURE = M(GRASS) | M(SAND) | M(PATH);
static const uint32_t WALK_PLAYER = M(GRASS) | M(SAND) | M(PATH) | M(LAVA);
static const uint32_t WALK_ARROW = M(GRASS) | M(SAND) | M(PATH) | M(WATER) | M(LAVA);

static inline bool inside(int x, int y) { return x >= 0 && y >= 0 && x < AREA && y < AREA; }
// World.__getitem__: (None, None) outside the world.
static inline int mat_at(const ag_crafter_world *w, int x, int y) {
  return inside(x, y) ? w->mat[x * AREA + y] : AG_CRAFTER_NONE;
}
static inline uint32_t obj_at(const ag_crafter_world *w, int x, int y) {
  return inside(x, y) ? w->obj[x * AREA + y] : 0;
}
static inline bool is_free(const ag_crafter_world *w, int x, int y, uint32_t walkable) {
  return inside(x, y) && w->obj[x * AREA + y] == 0 && ((walkable >> w->mat[x * AREA + y]) & 1u);
}
static inline int iabs(int v) { return v < 0 ? -v : v; }
static inline int isign(int v) { return (v > 0) - (v < 0); }

static ag_crafter_object *player_of(ag_crafter_env *e) {
  return &e->world.objects[AG_CRAFTER_PLAYER_ID];
}
static int player_distance(ag_crafter_env *e, int x, int y) {
  const ag_crafter_object *p = player_of(e);
  return iabs(x - p->x) + iabs(y - p->y);
}

static void emit(ag_crafter_env *e, ag_crafter_event_kind kind, uint32_t id, int type, int x, int y,
                 const char *by) {
  if (!e->on_event) return;
  ag_crafter_event ev = {.kind = kind, .id = id, .type = type, .x = x, .y = y, .by = by};
  e->on_event(e->event_ctx, &ev);
}

/* ---- health ------------------------------------------------------------------- */

int ag_crafter_object_health(const ag_crafter_env *e, uint32_t id) {
  if (id == AG_CRAFTER_PLAYER_ID) return e->world.inventory[AG_CRAFTER_INV_HEALTH];
  return e->world.objects[id].health;
}

// The original's health setter clamps at 0 (Object.health).
static void add_health(ag_crafter_env *e, uint32_t id, int delta) {
  int32_t *h = id == AG_CRAFTER_PLAYER_ID ? &e->world.inventory[AG_CRAFTER_INV_HEALTH] : NULL;
  int v = (h ? *h : e->world.objects[id].health) + delta;
  if (v < 0) v = 0;
  if (h) {
    *h = v;
    e->world.objects[id].health = (int16_t)v;
  } else {
    e->world.objects[id].health = (int16_t)v;
  }
}

/* ---- World.add / remove / move -------------------------------------------------- */

static uint32_t add_object(ag_crafter_env *e, int type, int x, int y, int health, const char *by) {
  uint32_t id = 0;
  if (ag_crafter_world_add(&e->world, type, x, y, &id)) return 0; // callers check the cell
  e->world.objects[id].health = (int16_t)health;
  emit(e, AG_CRAFTER_EV_ADD, id, type, x, y, by);
  return id;
}

// A removed object keeps its fields (the rest of its update reads them) and
// only loses its type and its cell, as the original's `removed` flag does.
static void remove_object(ag_crafter_env *e, uint32_t id, const char *by) {
  ag_crafter_object *o = &e->world.objects[id];
  if (!o->type) return;
  int type = o->type;
  e->world.obj[o->x * AREA + o->y] = 0;
  o->type = AG_CRAFTER_OBJ_NONE;
  emit(e, AG_CRAFTER_EV_REMOVE, id, type, o->x, o->y, by);
}

static void world_move(ag_crafter_env *e, uint32_t id, int x, int y) {
  ag_crafter_world *w = &e->world;
  ag_crafter_object *o = &w->objects[id];
  if (!o->type) return; // World.move ignores removed objects
  w->obj[o->x * AREA + o->y] = 0;
  w->obj[x * AREA + y] = id;
  o->x = (uint8_t)x;
  o->y = (uint8_t)y;
  int chunk = ag_crafter_chunk_index(x, y);
  if (!w->chunk_seen[chunk]) { // the defaultdict sees a new key
    w->chunk_seen[chunk] = 1;
    w->chunk_order[w->chunk_count++] = (uint8_t)chunk;
  }
}

// Object.move: true when the target was free (even for a removed object).
static bool move(ag_crafter_env *e, uint32_t id, int dx, int dy, uint32_t walkable) {
  ag_crafter_object *o = &e->world.objects[id];
  int x = o->x + dx, y = o->y + dy;
  if (!is_free(&e->world, x, y, walkable)) return false;
  world_move(e, id, x, y);
  return true;
}

static double uniform(ag_crafter_env *e) { return ag_crafter_rng_random(&e->world.rng); }

static const int DIRS[4][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}};

// Object.toward: the sign of the offset along the long (or short) axis.
static void toward(const ag_crafter_object *o, int tx, int ty, bool long_axis, int *dx, int *dy) {
  int ox = tx - o->x, oy = ty - o->y;
  bool x_axis = long_axis ? iabs(ox) > iabs(oy) : iabs(ox) <= iabs(oy);
  *dx = x_axis ? isign(ox) : 0;
  *dy = x_axis ? 0 : isign(oy);
}

/* ---- the player ------------------------------------------------------------------ */

typedef struct collect_rule {
  int material, require, receive, leaves, achievement;
  double probability;
} collect_rule;

// data.yaml `collect`; require -1 = nothing.
static const collect_rule COLLECT[] = {
    {AG_CRAFTER_TREE, -1, AG_CRAFTER_INV_WOOD, AG_CRAFTER_GRASS, AG_CRAFTER_ACH_COLLECT_WOOD, 1},
    {AG_CRAFTER_STONE, AG_CRAFTER_INV_WOOD_PICKAXE, AG_CRAFTER_INV_STONE, AG_CRAFTER_PATH,
     AG_CRAFTER_ACH_COLLECT_STONE, 1},
    {AG_CRAFTER_COAL, AG_CRAFTER_INV_WOOD_PICKAXE, AG_CRAFTER_INV_COAL, AG_CRAFTER_PATH,
     AG_CRAFTER_ACH_COLLECT_COAL, 1},
    {AG_CRAFTER_IRON, AG_CRAFTER_INV_STONE_PICKAXE, AG_CRAFTER_INV_IRON, AG_CRAFTER_PATH,
     AG_CRAFTER_ACH_COLLECT_IRON, 1},
    {AG_CRAFTER_DIAMOND, AG_CRAFTER_INV_IRON_PICKAXE, AG_CRAFTER_INV_DIAMOND, AG_CRAFTER_PATH,
     AG_CRAFTER_ACH_COLLECT_DIAMOND, 1},
    {AG_CRAFTER_WATER, -1, AG_CRAFTER_INV_DRINK, AG_CRAFTER_WATER, AG_CRAFTER_ACH_COLLECT_DRINK, 1},
    {AG_CRAFTER_GRASS, -1, AG_CRAFTER_INV_SAPLING, AG_CRAFTER_GRASS, AG_CRAFTER_ACH_COLLECT_SAPLING,
     0.1},
};

static void do_material(ag_crafter_env *e, int x, int y, int material) {
  int32_t *inv = e->world.inventory;
  if (material == AG_CRAFTER_WATER) e->thirst = 0;
  const collect_rule *rule = NULL;
  for (size_t i = 0; i < sizeof COLLECT / sizeof *COLLECT; i++)
    if (COLLECT[i].material == material) rule = &COLLECT[i];
  if (!rule) return;
  if (rule->require >= 0 && inv[rule->require] < 1) return;
  e->world.mat[x * AREA + y] = (uint8_t)rule->leaves;
  // The draw happens even when the probability is 1.
  if (uniform(e) <= rule->probability) {
    inv[rule->receive] += 1;
    e->achievements[rule->achievement]++;
  }
}

static void do_object(ag_crafter_env *e, uint32_t id) {
  int32_t *inv = e->world.inventory;
  ag_crafter_object *o = &e->world.objects[id];
  int damage = 1;
  if (inv[AG_CRAFTER_INV_WOOD_SWORD] && damage < 2) damage = 2;
  if (inv[AG_CRAFTER_INV_STONE_SWORD] && damage < 3) damage = 3;
  if (inv[AG_CRAFTER_INV_IRON_SWORD] && damage < 5) damage = 5;
  switch (o->type) {
  case AG_CRAFTER_PLANT:
    if (o->grown > 300) { // ripe
      o->grown = 0;
      inv[AG_CRAFTER_INV_FOOD] += 4;
      e->achievements[AG_CRAFTER_ACH_EAT_PLANT]++;
    }
    break;
  case AG_CRAFTER_ZOMBIE:
    add_health(e, id, -damage);
    if (o->health <= 0) e->achievements[AG_CRAFTER_ACH_DEFEAT_ZOMBIE]++;
    break;
  case AG_CRAFTER_SKELETON:
    add_health(e, id, -damage);
    if (o->health <= 0) e->achievements[AG_CRAFTER_ACH_DEFEAT_SKELETON]++;
    break;
  case AG_CRAFTER_COW:
    add_health(e, id, -damage);
    if (o->health <= 0) {
      inv[AG_CRAFTER_INV_FOOD] += 6;
      e->achievements[AG_CRAFTER_ACH_EAT_COW]++;
      e->hunger = 0;
    }
    break;
  default: break; // arrows; fences cannot be placed, so none exist
  }
}

typedef struct place_rule {
  int item, amount; /* what it uses */
  uint32_t where;   /* material mask */
  int material;     /* what it becomes; NONE = a plant object */
  int achievement;
} place_rule;

// data.yaml `place`, indexed by action - place_stone.
static const place_rule PLACE[4] = {
    {AG_CRAFTER_INV_STONE, 1, M(GRASS) | M(SAND) | M(PATH) | M(WATER) | M(LAVA), AG_CRAFTER_STONE,
     AG_CRAFTER_ACH_PLACE_STONE},
    {AG_CRAFTER_INV_WOOD, 2, M(GRASS) | M(SAND) | M(PATH), AG_CRAFTER_TABLE,
     AG_CRAFTER_ACH_PLACE_TABLE},
    {AG_CRAFTER_INV_STONE, 4, M(GRASS) | M(SAND) | M(PATH), AG_CRAFTER_FURNACE,
     AG_CRAFTER_ACH_PLACE_FURNACE},
    {AG_CRAFTER_INV_SAPLING, 1, M(GRASS), AG_CRAFTER_NONE, AG_CRAFTER_ACH_PLACE_PLANT},
};

static void place(ag_crafter_env *e, const place_rule *rule, int x, int y, int material) {
  if (obj_at(&e->world, x, y)) return;
  if (!((rule->where >> material) & 1u)) return; // also false outside (material NONE)
  int32_t *inv = e->world.inventory;
  if (inv[rule->item] < rule->amount) return;
  inv[rule->item] -= rule->amount;
  if (rule->material != AG_CRAFTER_NONE)
    e->world.mat[x * AREA + y] = (uint8_t)rule->material;
  else
    add_object(e, AG_CRAFTER_PLANT, x, y, 1, "_place");
  e->achievements[rule->achievement]++;
}

typedef struct make_rule {
  int wood, stone, coal, iron; /* uses */
  bool furnace;                /* needs a furnace nearby besides a table */
  int gives, achievement;
} make_rule;

// data.yaml `make`, indexed by action - make_wood_pickaxe.
static const make_rule MAKE[6] = {
    {1, 0, 0, 0, false, AG_CRAFTER_INV_WOOD_PICKAXE, AG_CRAFTER_ACH_MAKE_WOOD_PICKAXE},
    {1, 1, 0, 0, false, AG_CRAFTER_INV_STONE_PICKAXE, AG_CRAFTER_ACH_MAKE_STONE_PICKAXE},
    {1, 0, 1, 1, true, AG_CRAFTER_INV_IRON_PICKAXE, AG_CRAFTER_ACH_MAKE_IRON_PICKAXE},
    {1, 0, 0, 0, false, AG_CRAFTER_INV_WOOD_SWORD, AG_CRAFTER_ACH_MAKE_WOOD_SWORD},
    {1, 1, 0, 0, false, AG_CRAFTER_INV_STONE_SWORD, AG_CRAFTER_ACH_MAKE_STONE_SWORD},
    {1, 0, 1, 1, true, AG_CRAFTER_INV_IRON_SWORD, AG_CRAFTER_ACH_MAKE_IRON_SWORD},
};

static void make(ag_crafter_env *e, const make_rule *rule) {
  const ag_crafter_object *p = player_of(e);
  // World.nearby(pos, 1) slices [x-1:x+2, y-1:y+2]: a start of -1 gives an
  // empty slice, so at x = 0 or y = 0 nothing is nearby.
  bool table = false, furnace = false;
  if (p->x >= 1 && p->y >= 1) {
    for (int x = p->x - 1; x <= p->x + 1 && x < AREA; x++)
      for (int y = p->y - 1; y <= p->y + 1 && y < AREA; y++) {
        int m = e->world.mat[x * AREA + y];
        table |= m == AG_CRAFTER_TABLE;
        furnace |= m == AG_CRAFTER_FURNACE;
      }
  }
  if (!table || (rule->furnace && !furnace)) return;
  int32_t *inv = e->world.inventory;
  if (inv[AG_CRAFTER_INV_WOOD] < rule->wood || inv[AG_CRAFTER_INV_STONE] < rule->stone ||
      inv[AG_CRAFTER_INV_COAL] < rule->coal || inv[AG_CRAFTER_INV_IRON] < rule->iron)
    return;
  inv[AG_CRAFTER_INV_WOOD] -= rule->wood;
  inv[AG_CRAFTER_INV_STONE] -= rule->stone;
  inv[AG_CRAFTER_INV_COAL] -= rule->coal;
  inv[AG_CRAFTER_INV_IRON] -= rule->iron;
  inv[rule->gives] += 1;
  e->achievements[rule->achievement]++;
}

static void update_life_stats(ag_crafter_env *e, bool sleeping) {
  int32_t *inv = e->world.inventory;
  e->hunger += sleeping ? 0.5 : 1;
  if (e->hunger > 25) {
    e->hunger = 0;
    inv[AG_CRAFTER_INV_FOOD] -= 1;
  }
  e->thirst += sleeping ? 0.5 : 1;
  if (e->thirst > 20) {
    e->thirst = 0;
    inv[AG_CRAFTER_INV_DRINK] -= 1;
  }
  if (sleeping)
    e->fatigue = e->fatigue - 1 < 0 ? e->fatigue - 1 : 0;
  else
    e->fatigue += 1;
  if (e->fatigue < -10) {
    e->fatigue = 0;
    inv[AG_CRAFTER_INV_ENERGY] += 1;
  }
  if (e->fatigue > 30) {
    e->fatigue = 0;
    inv[AG_CRAFTER_INV_ENERGY] -= 1;
  }
}

static void degen_or_regen_health(ag_crafter_env *e, bool sleeping) {
  const int32_t *inv = e->world.inventory;
  bool ok = inv[AG_CRAFTER_INV_FOOD] > 0 && inv[AG_CRAFTER_INV_DRINK] > 0 &&
            (inv[AG_CRAFTER_INV_ENERGY] > 0 || sleeping);
  if (ok)
    e->recover += sleeping ? 2 : 1;
  else
    e->recover -= sleeping ? 0.5 : 1;
  if (e->recover > 25) {
    e->recover = 0;
    add_health(e, AG_CRAFTER_PLAYER_ID, 1);
  }
  if (e->recover < -15) {
    e->recover = 0;
    add_health(e, AG_CRAFTER_PLAYER_ID, -1);
  }
}

static void update_player(ag_crafter_env *e) {
  ag_crafter_world *w = &e->world;
  ag_crafter_object *p = player_of(e);
  int32_t *inv = w->inventory;
  int tx = p->x + p->face_x, ty = p->y + p->face_y; // the facing tile, before moving
  int material = mat_at(w, tx, ty);
  uint32_t target = obj_at(w, tx, ty);
  int action = e->action;
  if (p->sleeping) {
    if (inv[AG_CRAFTER_INV_ENERGY] < ITEM_MAX) {
      action = 6; // sleep
    } else {
      p->sleeping = 0;
      e->achievements[AG_CRAFTER_ACH_WAKE_UP]++;
    }
  }
  if (action >= 1 && action <= 4) {
    p->face_x = (int8_t)DIRS[action - 1][0];
    p->face_y = (int8_t)DIRS[action - 1][1];
    move(e, AG_CRAFTER_PLAYER_ID, p->face_x, p->face_y, WALK_PLAYER);
    if (w->mat[p->x * AREA + p->y] == AG_CRAFTER_LAVA) add_health(e, AG_CRAFTER_PLAYER_ID, -inv[0]);
  } else if (action == 5) {
    if (target)
      do_object(e, target);
    else
      do_material(e, tx, ty, material);
  } else if (action == 6) {
    if (inv[AG_CRAFTER_INV_ENERGY] < ITEM_MAX) p->sleeping = 1;
  } else if (action >= 7 && action <= 10) {
    place(e, &PLACE[action - 7], tx, ty, material);
  } else if (action >= 11 && action <= 16) {
    make(e, &MAKE[action - 11]);
  }
  p = player_of(e); // placing a plant may have grown the object table
  update_life_stats(e, p->sleeping);
  degen_or_regen_health(e, p->sleeping);
  for (int i = 0; i < AG_CRAFTER_INVENTORY; i++) {
    if (inv[i] > ITEM_MAX) inv[i] = ITEM_MAX;
    if (inv[i] < 0) inv[i] = 0;
  }
  p->health = (int16_t)inv[AG_CRAFTER_INV_HEALTH];
  // Wake up when hurt, after clamping (it compares health).
  if (inv[AG_CRAFTER_INV_HEALTH] < e->player_last_health) p->sleeping = 0;
  e->player_last_health = inv[AG_CRAFTER_INV_HEALTH];
}

/* ---- creatures ------------------------------------------------------------------- */

static void update_cow(ag_crafter_env *e, uint32_t id) {
  if (e->world.objects[id].health <= 0) remove_object(e, id, "update");
  if (uniform(e) < 0.5) {
    const int *d = DIRS[ag_crafter_rng_randint(&e->world.rng, 0, 4)];
    move(e, id, d[0], d[1], WALK_CREATURE);
  }
}

static void update_zombie(ag_crafter_env *e, uint32_t id) {
  ag_crafter_object *z = &e->world.objects[id];
  const ag_crafter_object *p = player_of(e);
  if (z->health <= 0) remove_object(e, id, "update");
  int dist = player_distance(e, z->x, z->y);
  int dx, dy;
  if (dist <= 8 && uniform(e) < 0.9) {
    toward(z, p->x, p->y, uniform(e) < 0.8, &dx, &dy);
  } else {
    const int *d = DIRS[ag_crafter_rng_randint(&e->world.rng, 0, 4)];
    dx = d[0];
    dy = d[1];
  }
  move(e, id, dx, dy, WALK_CREATURE);
  dist = player_distance(e, z->x, z->y);
  if (dist <= 1) {
    if (z->cooldown) {
      z->cooldown--;
    } else {
      add_health(e, AG_CRAFTER_PLAYER_ID, p->sleeping ? -7 : -2);
      z->cooldown = 5;
    }
  }
}

static void shoot(ag_crafter_env *e, uint32_t id, int dx, int dy) {
  ag_crafter_object *s = &e->world.objects[id];
  if (s->reload > 0) return;
  if (dx == 0 && dy == 0) return;
  int x = s->x + dx, y = s->y + dy;
  if (!is_free(&e->world, x, y, WALK_ARROW)) return;
  uint32_t arrow = add_object(e, AG_CRAFTER_ARROW, x, y, 0, "_shoot");
  if (arrow) {
    e->world.objects[arrow].face_x = (int8_t)dx;
    e->world.objects[arrow].face_y = (int8_t)dy;
  }
  s = &e->world.objects[id]; // the table may have grown
  s->reload = 4;
}

static void update_skeleton(ag_crafter_env *e, uint32_t id) {
  ag_crafter_object *s = &e->world.objects[id];
  const ag_crafter_object *p = player_of(e);
  if (s->health <= 0) remove_object(e, id, "update");
  s->reload = s->reload - 1 > 0 ? s->reload - 1 : 0;
  int dist = player_distance(e, s->x, s->y); // not updated after moving away
  int dx, dy;
  if (dist <= 3) {
    toward(s, p->x, p->y, uniform(e) < 0.6, &dx, &dy);
    if (move(e, id, -dx, -dy, WALK_CREATURE)) return;
  }
  if (dist <= 5 && uniform(e) < 0.5) {
    toward(s, p->x, p->y, true, &dx, &dy);
    shoot(e, id, dx, dy);
  } else if (dist <= 8 && uniform(e) < 0.3) {
    toward(s, p->x, p->y, uniform(e) < 0.6, &dx, &dy);
    move(e, id, dx, dy, WALK_CREATURE);
  } else if (uniform(e) < 0.2) {
    const int *d = DIRS[ag_crafter_rng_randint(&e->world.rng, 0, 4)];
    move(e, id, d[0], d[1], WALK_CREATURE);
  }
}

static void update_arrow(ag_crafter_env *e, uint32_t id) {
  ag_crafter_world *w = &e->world;
  ag_crafter_object *a = &w->objects[id];
  int tx = a->x + a->face_x, ty = a->y + a->face_y;
  int material = mat_at(w, tx, ty);
  uint32_t target = obj_at(w, tx, ty);
  if (target) {
    add_health(e, target, -2);
    remove_object(e, id, "update");
  } else if (!((WALK_ARROW >> material) & 1u)) {
    remove_object(e, id, "update");
    // Arrows destroy tables and furnaces.
    if (material == AG_CRAFTER_TABLE || material == AG_CRAFTER_FURNACE)
      w->mat[tx * AREA + ty] = AG_CRAFTER_PATH;
  } else {
    move(e, id, a->face_x, a->face_y, WALK_ARROW);
  }
}

static void update_plant(ag_crafter_env *e, uint32_t id) {
  ag_crafter_object *pl = &e->world.objects[id];
  pl->grown++;
  bool threatened = false;
  for (int d = 0; d < 4; d++) {
    uint32_t o = obj_at(&e->world, pl->x + DIRS[d][0], pl->y + DIRS[d][1]);
    int t = o ? e->world.objects[o].type : 0;
    threatened |= t == AG_CRAFTER_ZOMBIE || t == AG_CRAFTER_SKELETON || t == AG_CRAFTER_COW;
  }
  if (threatened) add_health(e, id, -1);
  if (pl->health <= 0) remove_object(e, id, "update");
}

/* ---- chunk balancing ---------------------------------------------------------------- */

typedef struct balance_rule {
  int type, material, spawn_dist, despawn_dist;
  double spawn_prob, despawn_prob;
} balance_rule;

static const balance_rule BALANCE[3] = {
    {AG_CRAFTER_ZOMBIE, AG_CRAFTER_GRASS, 6, 0, 0.3, 0.4},
    {AG_CRAFTER_SKELETON, AG_CRAFTER_PATH, 7, 7, 0.1, 0.1},
    {AG_CRAFTER_COW, AG_CRAFTER_GRASS, 5, 5, 0.01, 0.1},
};

// Per map column x, a bitmap of the cells (bit y) holding one material.
#if defined(__SSE2__)
static void material_bits(const uint8_t *mat, int material, uint64_t *bits) {
  const __m128i v = _mm_set1_epi8((char)material);
  for (int x = 0; x < AREA; x++) {
    const uint8_t *row = mat + x * AREA;
    uint64_t m = 0;
    for (int j = 0; j < AREA / 16; j++) {
      __m128i eq = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(row + 16 * j)), v);
      m |= (uint64_t)(uint16_t)_mm_movemask_epi8(eq) << (16 * j);
    }
    bits[x] = m;
  }
}
#else
static void material_bits(const uint8_t *mat, int material, uint64_t *bits) {
  for (int x = 0; x < AREA; x++) {
    uint64_t m = 0;
    for (int y = 0; y < AREA; y++) m |= (uint64_t)(mat[x * AREA + y] == material) << y;
    bits[x] = m;
  }
}
#endif
_Static_assert(AREA == 64, "material bitmaps hold one column in a uint64_t");

static int popcount64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(v);
#else
  int n = 0;
  for (; v; v &= v - 1) n++;
  return n;
#endif
}

// How many cells of the chunk [xmin, xmax) x [ymin, ymax) are set in bits.
static int chunk_space(const uint64_t *bits, const int key[4]) {
  uint64_t ymask = ((1ull << (key[3] - key[2])) - 1) << key[2];
  int n = 0;
  for (int x = key[0]; x < key[1]; x++) n += popcount64(bits[x] & ymask);
  return n;
}

// `candidates` are the chunk's creatures of the rule's type in ascending id
// (the canonical order), `space` its cells of the rule's material.
static void balance_object(ag_crafter_env *e, const int key[4], const balance_rule *rule,
                           uint32_t *candidates, int n, int space) {
  ag_crafter_world *w = &e->world;
  double light = w->daylight, target_min, target_max;
  if (rule->type == AG_CRAFTER_ZOMBIE) {
    target_min = space < 50 ? 0 : 3.5 - 3 * light;
    target_max = 3.5 - 3 * light;
  } else if (rule->type == AG_CRAFTER_SKELETON) {
    target_min = space < 6 ? 0 : 1;
    target_max = 2;
  } else {
    target_min = space < 30 ? 0 : 1;
    target_max = 1.5 + light;
  }
  // `len < int(min) and uniform() < p`, then the elif: draws only where reached.
  if (n < (int)target_min && uniform(e) < rule->spawn_prob) {
    int64_t i = ag_crafter_rng_randint(&w->rng, 0, space);
    for (int x = key[0]; x < key[1]; x++)
      for (int y = key[2]; y < key[3]; y++) {
        if (w->mat[x * AREA + y] != rule->material) continue;
        if (i-- != 0) continue;
        if (!w->obj[x * AREA + y] && player_distance(e, x, y) >= rule->spawn_dist)
          add_object(e, rule->type, x, y, rule->type == AG_CRAFTER_ZOMBIE ? 5 : 3,
                     "_balance_object");
        return;
      }
  } else if (n > (int)target_max && uniform(e) < rule->despawn_prob) {
    if (e->despawn_hook) e->despawn_hook(e->despawn_ctx, key, rule->type, candidates, n);
    int k = (int)ag_crafter_rng_randint(&w->rng, 0, n);
    if (e->on_event) {
      ag_crafter_event ev = {.kind = AG_CRAFTER_EV_DESPAWN_DRAW,
                             .type = rule->type,
                             .order = candidates,
                             .n = n,
                             .k = k};
      memcpy(ev.chunk, key, sizeof ev.chunk);
      e->on_event(e->event_ctx, &ev);
    }
    uint32_t id = candidates[k];
    const ag_crafter_object *o = &w->objects[id];
    if (player_distance(e, o->x, o->y) >= rule->despawn_dist)
      remove_object(e, id, "_balance_object");
  }
}

// Env._balance_chunk for every chunk in first-seen order. The creatures are
// bucketed by (chunk, rule) once, in ascending id: a chunk's spawn or despawn
// changes only its own bucket of that rule, which is not read again.
static ag_status balance(ag_crafter_env *e) {
  ag_crafter_world *w = &e->world;
  ag_crafter_world_compact(w);
  if (e->candidates_capacity < w->live_count) {
    uint32_t cap = w->object_capacity;
    uint32_t *grown = realloc(e->candidates, cap * sizeof *grown);
    if (!grown) return ag_error_set(AG_ERR_NOMEM, "crafter: balancing");
    e->candidates = grown;
    e->candidates_capacity = cap;
  }
  enum { RULES = 3, BUCKETS = AG_CRAFTER_CHUNK_COUNT * RULES };
  static const int8_t RULE_OF[AG_CRAFTER_OBJECT_TYPE_COUNT] = {
      [AG_CRAFTER_OBJ_NONE] = -1, [AG_CRAFTER_PLAYER] = -1,  [AG_CRAFTER_COW] = 2,
      [AG_CRAFTER_ZOMBIE] = 0,    [AG_CRAFTER_SKELETON] = 1, [AG_CRAFTER_ARROW] = -1,
      [AG_CRAFTER_PLANT] = -1,    [AG_CRAFTER_FENCE] = -1};
  uint32_t start[BUCKETS + 1] = {0}, fill[BUCKETS];
  for (uint32_t i = 0; i < w->live_count; i++) {
    const ag_crafter_object *o = &w->objects[w->live[i]];
    int r = RULE_OF[o->type];
    if (r >= 0) start[ag_crafter_chunk_index(o->x, o->y) * RULES + r + 1]++;
  }
  for (int b = 0; b < BUCKETS; b++) {
    start[b + 1] += start[b];
    fill[b] = start[b];
  }
  for (uint32_t i = 0; i < w->live_count; i++) {
    uint32_t id = w->live[i];
    const ag_crafter_object *o = &w->objects[id];
    int r = RULE_OF[o->type];
    if (r >= 0) e->candidates[fill[ag_crafter_chunk_index(o->x, o->y) * RULES + r]++] = id;
  }
  uint64_t grass[AREA], path[AREA];
  material_bits(w->mat, AG_CRAFTER_GRASS, grass);
  material_bits(w->mat, AG_CRAFTER_PATH, path);
  int chunks = w->chunk_count; // spawns stay inside their chunk: no new keys
  for (int c = 0; c < chunks; c++) {
    int chunk = w->chunk_order[c], key[4];
    ag_crafter_chunk_key(chunk, key);
    int grass_space = chunk_space(grass, key);
    for (int r = 0; r < RULES; r++) {
      const balance_rule *rule = &BALANCE[r];
      uint32_t b = (uint32_t)(chunk * RULES + r);
      int space = rule->material == AG_CRAFTER_GRASS ? grass_space : chunk_space(path, key);
      balance_object(e, key, rule, e->candidates + start[b], (int)(start[b + 1] - start[b]), space);
    }
  }
  return AG_OK;
}

/* Every reset and step renders the observation; at night LocalView._noise
 * draws uniform(32, 127, (63, 49)) from the world RNG, so in exact mode the
 * draws are part of the dynamics: the RNG skips past them (two 32-bit
 * outputs each) and keeps the state before them for the pixel observation.
 * Fast mode skips them. */
static void observation_draws(ag_crafter_env *e) {
  e->night_noise_valid = false;
  if (e->world.daylight >= 0.5 || e->mode == AG_CRAFTER_MODE_FAST) return;
  e->noise_rng = e->world.rng;
  ag_crafter_rng_skip(&e->world.rng, 2 * (size_t)AG_CRAFTER_NIGHT_NOISE);
  e->night_noise_valid = true;
}

/* ---- the env ------------------------------------------------------------------------- */

ag_status ag_crafter_create(int64_t seed, ag_crafter_env **out) {
  return ag_crafter_create_mode(seed, AG_CRAFTER_MODE_EXACT, out);
}

ag_crafter_mode ag_crafter_get_mode(const ag_crafter_env *e) {
  return e ? e->mode : AG_CRAFTER_MODE_EXACT;
}

const char *ag_crafter_mode_name(ag_crafter_mode mode) {
  switch (mode) {
  case AG_CRAFTER_MODE_EXACT: return "exact";
  case AG_CRAFTER_MODE_FAST: return "fast";
  }
  return "";
}

ag_status ag_crafter_create_mode(int64_t seed, ag_crafter_mode mode, ag_crafter_env **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "crafter: out is NULL");
  *out = NULL;
  if (mode != AG_CRAFTER_MODE_EXACT && mode != AG_CRAFTER_MODE_FAST)
    return ag_error_set(AG_ERR_INVALID, "crafter: unknown mode %d (valid: 0 exact, 1 fast)",
                        (int)mode);
  ag_crafter_env *e = calloc(1, sizeof *e);
  if (!e) return ag_error_set(AG_ERR_NOMEM, "crafter: cannot allocate the env");
  ag_status st = ag_crafter_world_init(&e->world);
  if (st) {
    free(e);
    return st;
  }
  e->seed = seed;
  e->mode = mode;
  e->length = AG_CRAFTER_DEFAULT_LENGTH;
  *out = e;
  return AG_OK;
}

void ag_crafter_destroy(ag_crafter_env *e) {
  if (!e) return;
  ag_crafter_world_free(&e->world);
  free(e->candidates);
  free(e);
}

ag_status ag_crafter_reset(ag_crafter_env *e) {
  if (!e) return ag_error_set(AG_ERR_INVALID, "crafter: env is NULL");
  e->episode++;
  e->step = 0;
  ag_status st = ag_crafter_world_reset(&e->world, ag_crafter_episode_seed(e->seed, e->episode));
  if (st) return st;
  e->action = 0;
  e->hunger = e->thirst = e->fatigue = e->recover = 0;
  e->player_last_health = e->last_health = e->world.inventory[AG_CRAFTER_INV_HEALTH];
  memset(e->achievements, 0, sizeof e->achievements);
  e->unlocked = 0;
  e->started = true;
  observation_draws(e); // none: daylight at reset is 0.797
  return AG_OK;
}

ag_status ag_crafter_reset_seed(ag_crafter_env *e, int64_t seed) {
  if (!e) return ag_error_set(AG_ERR_INVALID, "crafter: env is NULL");
  e->seed = seed;
  e->episode = 0;
  return ag_crafter_reset(e);
}

void ag_crafter_get_info(const ag_crafter_env *e, ag_crafter_info *info) {
  memset(info, 0, sizeof *info);
  if (!e) return;
  memcpy(info->inventory, e->world.inventory, sizeof info->inventory);
  memcpy(info->achievements, e->achievements, sizeof info->achievements);
  info->discount = e->world.inventory[AG_CRAFTER_INV_HEALTH] <= 0 ? 0.0 : 1.0;
  info->player_pos[0] = e->world.objects[AG_CRAFTER_PLAYER_ID].x;
  info->player_pos[1] = e->world.objects[AG_CRAFTER_PLAYER_ID].y;
  info->step = e->step;
}

ag_status ag_crafter_step(ag_crafter_env *e, int action, double *reward, bool *done,
                          ag_crafter_info *info) {
  if (!e) return ag_error_set(AG_ERR_INVALID, "crafter: env is NULL");
  if (action < 0 || action >= AG_CRAFTER_ACTION_COUNT)
    return ag_error_set(AG_ERR_INVALID, "crafter: invalid action %d (valid: 0..%d)", action,
                        AG_CRAFTER_ACTION_COUNT - 1);
  if (!e->started) return ag_error_set(AG_ERR_INVALID, "crafter: step before reset");
  ag_crafter_world *w = &e->world;
  e->step++;
  w->daylight = ag_crafter_daylight_at(e->step);
  e->action = action;
  // Objects alive now, ascending id; those added during the loop wait. An
  // object removes only itself during the loop, so the snapshot is exact.
  ag_crafter_world_compact(w);
  uint32_t count = w->live_count;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t id = w->live[i];
    const ag_crafter_object *o = &w->objects[id];
    if (!o->type || player_distance(e, o->x, o->y) >= VIEW_DISTANCE) continue;
    switch (o->type) {
    case AG_CRAFTER_PLAYER: update_player(e); break;
    case AG_CRAFTER_COW: update_cow(e, id); break;
    case AG_CRAFTER_ZOMBIE: update_zombie(e, id); break;
    case AG_CRAFTER_SKELETON: update_skeleton(e, id); break;
    case AG_CRAFTER_ARROW: update_arrow(e, id); break;
    case AG_CRAFTER_PLANT: update_plant(e, id); break;
    default: break;
    }
  }
  if (e->step % 10 == 0) {
    ag_status st = balance(e);
    if (st) return st;
  }
  observation_draws(e);
  int32_t health = w->inventory[AG_CRAFTER_INV_HEALTH];
  double r = (double)(health - e->last_health) / 10;
  e->last_health = health;
  uint32_t unlocked = 0;
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
    if (e->achievements[a] > 0) unlocked |= 1u << a;
  if (unlocked & ~e->unlocked) {
    e->unlocked |= unlocked;
    r += 1.0;
  }
  bool dead = health <= 0;
  if (reward) *reward = r;
  if (done) *done = dead || (e->length && e->step >= e->length);
  if (info) ag_crafter_get_info(e, info);
  return AG_OK;
}

/* ---- hashes -------------------------------------------------------------------------- */

void ag_crafter_hash_grid(const ag_crafter_env *e, int hex_chars, char *out) {
  ag_crafter_sha256_hex(e->world.mat, sizeof e->world.mat, hex_chars, out);
}

void ag_crafter_hash_rng(const ag_crafter_env *e, int hex_chars, char *out) {
  uint8_t bytes[AG_CRAFTER_RNG_STATE_BYTES];
  ag_crafter_rng_state_bytes(&e->world.rng, bytes);
  ag_crafter_sha256_hex(bytes, sizeof bytes, hex_chars, out);
}

void ag_crafter_hash_objects(const ag_crafter_env *e, int hex_chars, char *out) {
  const ag_crafter_world *w = &e->world;
  size_t cap = 64 * (size_t)w->object_count + 1, len = 0;
  char *text = malloc(cap);
  if (!text) {
    out[0] = '\0';
    return;
  }
  for (uint32_t id = 1; id < w->object_count; id++) {
    const ag_crafter_object *o = &w->objects[id];
    if (!o->type) continue;
    len += (size_t)snprintf(text + len, cap - len, "%u %s %d %d %d\n", id,
                            ag_crafter_object_type_name(o->type), o->x, o->y,
                            ag_crafter_object_health(e, id));
  }
  ag_crafter_sha256_hex(text, len, hex_chars, out);
  free(text);
}
