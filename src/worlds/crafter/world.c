/* The world state (the original's engine.World) and the per-episode seeding. */
#include "worlds/crafter/crafter_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const MATERIAL_NAMES[AG_CRAFTER_MATERIAL_COUNT] = {
    NULL,   "water", "grass", "stone",   "path",  "sand",   "tree",
    "lava", "coal",  "iron",  "diamond", "table", "furnace"};
static const char *const OBJECT_NAMES[AG_CRAFTER_OBJECT_TYPE_COUNT] = {
    "", "Player", "Cow", "Zombie", "Skeleton", "Arrow", "Plant", "Fence"};

const char *ag_crafter_material_name(int material) {
  if (material < 0 || material >= AG_CRAFTER_MATERIAL_COUNT) return "";
  return MATERIAL_NAMES[material];
}

const char *ag_crafter_object_type_name(int type) {
  if (type < 0 || type >= AG_CRAFTER_OBJECT_TYPE_COUNT) return "";
  return OBJECT_NAMES[type];
}

// CPython's hash of an int: the value mod 2**61 - 1 with the sign kept, and
// -1 (the error marker) replaced by -2.
static int64_t py_hash_int(int64_t v) {
  const uint64_t modulus = (1ull << 61) - 1;
  uint64_t mag = v < 0 ? 0u - (uint64_t)v : (uint64_t)v;
  int64_t h = (int64_t)(mag % modulus);
  if (v < 0) h = -h;
  return h == -1 ? -2 : h;
}

uint32_t ag_crafter_episode_seed(int64_t seed, int64_t episode) {
  // CPython 3.8+ tuple hash (xxHash-based) of (seed, episode).
  const uint64_t p1 = 11400714785074694791ull, p2 = 14029467366897019727ull,
                 p5 = 2870177450012600261ull;
  const int64_t items[2] = {seed, episode};
  uint64_t acc = p5;
  for (int i = 0; i < 2; i++) {
    acc += (uint64_t)py_hash_int(items[i]) * p2;
    acc = (acc << 31) | (acc >> 33);
    acc *= p1;
  }
  acc += 2u ^ (p5 ^ 3527539u);
  int64_t h = acc == UINT64_MAX ? 1546275796 : (int64_t)acc;
  // Python's % with a positive modulus is never negative.
  const int64_t m = 2147483647; // 2**31 - 1
  int64_t w = h % m;
  if (w < 0) w += m;
  return (uint32_t)w;
}

double ag_crafter_daylight(int64_t step) {
  // Env._update_time: Python float division and modulo, cos and power. The
  // golden files' numpy ran without AVX-512, so its float64 cos was libm's:
  // all 11,016 recorded daylights equal libm's, SVML's differ on 4,321.
  double progress = fmod((double)step / 300, 1.0);
  if (progress < 0) progress += 1.0;
  progress += 0.3;
  return 1 - pow(fabs(cos(3.141592653589793 * progress)), 3.0);
}

// Every step of a default-length episode: the daylight function is pure, so
// the table holds exactly its values.
enum { DAYLIGHT_TABLE = AG_CRAFTER_DEFAULT_LENGTH + 1 };
static double daylight_table[DAYLIGHT_TABLE];
static pthread_once_t daylight_once = PTHREAD_ONCE_INIT;

static void daylight_init(void) {
  for (int i = 0; i < DAYLIGHT_TABLE; i++) daylight_table[i] = ag_crafter_daylight(i);
}

double ag_crafter_daylight_at(int64_t step) {
  if (step < 0 || step >= DAYLIGHT_TABLE) return ag_crafter_daylight(step);
  pthread_once(&daylight_once, daylight_init);
  return daylight_table[step];
}

int ag_crafter_chunk_index(int x, int y) {
  return (x / AG_CRAFTER_CHUNK) * AG_CRAFTER_CHUNKS_AXIS + y / AG_CRAFTER_CHUNK;
}

void ag_crafter_chunk_key(int chunk, int key[4]) {
  int xmin = (chunk / AG_CRAFTER_CHUNKS_AXIS) * AG_CRAFTER_CHUNK;
  int ymin = (chunk % AG_CRAFTER_CHUNKS_AXIS) * AG_CRAFTER_CHUNK;
  key[0] = xmin;
  key[1] = xmin + AG_CRAFTER_CHUNK < AG_CRAFTER_AREA ? xmin + AG_CRAFTER_CHUNK : AG_CRAFTER_AREA;
  key[2] = ymin;
  key[3] = ymin + AG_CRAFTER_CHUNK < AG_CRAFTER_AREA ? ymin + AG_CRAFTER_CHUNK : AG_CRAFTER_AREA;
}

enum { INITIAL_OBJECT_CAPACITY = 256 };

ag_status ag_crafter_world_init(ag_crafter_world *w) {
  if (!w) return ag_error_set(AG_ERR_INVALID, "crafter: world is NULL");
  memset(w, 0, sizeof *w);
  w->objects = calloc(INITIAL_OBJECT_CAPACITY, sizeof *w->objects);
  w->live = calloc(INITIAL_OBJECT_CAPACITY, sizeof *w->live);
  if (!w->objects || !w->live) {
    ag_crafter_world_free(w);
    return ag_error_set(AG_ERR_NOMEM, "crafter: cannot allocate the object table");
  }
  w->object_capacity = INITIAL_OBJECT_CAPACITY;
  ag_crafter_world_clear(w, 0);
  return AG_OK;
}

void ag_crafter_world_free(ag_crafter_world *w) {
  if (!w) return;
  free(w->objects);
  free(w->live);
  w->objects = NULL;
  w->live = NULL;
  w->object_capacity = w->object_count = w->live_count = 0;
}

void ag_crafter_world_clear(ag_crafter_world *w, uint32_t world_seed) {
  memset(w->mat, 0, sizeof w->mat);
  memset(w->obj, 0, sizeof w->obj);
  memset(w->chunk_seen, 0, sizeof w->chunk_seen);
  memset(w->inventory, 0, sizeof w->inventory);
  if (w->objects) memset(w->objects, 0, w->object_capacity * sizeof *w->objects);
  w->object_count = 1; // id 0 is the original's None sentinel
  w->live_count = 0;
  w->chunk_count = 0;
  w->world_seed = world_seed;
  w->simplex_seed = 0;
  w->daylight = 0.0;
  ag_crafter_rng_seed(&w->rng, world_seed);
}

void ag_crafter_world_compact(ag_crafter_world *w) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < w->live_count; i++) {
    uint32_t id = w->live[i];
    if (w->objects[id].type) w->live[n++] = id;
  }
  w->live_count = n;
}

ag_status ag_crafter_world_add(ag_crafter_world *w, int type, int x, int y, uint32_t *id) {
  if (type <= AG_CRAFTER_OBJ_NONE || type >= AG_CRAFTER_OBJECT_TYPE_COUNT)
    return ag_error_set(AG_ERR_INVALID, "crafter: bad object type %d", type);
  if (x < 0 || y < 0 || x >= AG_CRAFTER_AREA || y >= AG_CRAFTER_AREA)
    return ag_error_set(AG_ERR_INVALID, "crafter: object at (%d, %d) is outside the world", x, y);
  if (w->obj[x * AG_CRAFTER_AREA + y])
    return ag_error_set(AG_ERR_INVALID, "crafter: cell (%d, %d) already holds an object", x, y);
  if (w->object_count == w->object_capacity) {
    uint32_t cap = w->object_capacity * 2;
    ag_crafter_object *grown = realloc(w->objects, cap * sizeof *grown);
    if (!grown) return ag_error_set(AG_ERR_NOMEM, "crafter: cannot grow the object table");
    memset(grown + w->object_capacity, 0, (cap - w->object_capacity) * sizeof *grown);
    w->objects = grown;
    uint32_t *live = realloc(w->live, cap * sizeof *live);
    if (!live) return ag_error_set(AG_ERR_NOMEM, "crafter: cannot grow the object table");
    w->live = live;
    w->object_capacity = cap;
  }
  uint32_t new_id = w->object_count++;
  ag_crafter_object *o = &w->objects[new_id];
  memset(o, 0, sizeof *o);
  o->type = (uint8_t)type;
  o->x = (uint8_t)x;
  o->y = (uint8_t)y;
  w->obj[x * AG_CRAFTER_AREA + y] = new_id;
  w->live[w->live_count++] = new_id;
  int chunk = ag_crafter_chunk_index(x, y);
  if (!w->chunk_seen[chunk]) {
    w->chunk_seen[chunk] = 1;
    w->chunk_order[w->chunk_count++] = (uint8_t)chunk;
  }
  if (id) *id = new_id;
  return AG_OK;
}
