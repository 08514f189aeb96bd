/* Crafter internals: the random number generator, the noise, the world state
 * and world generation. Each mirrors one piece of the original (danijar/crafter
 * 1.8.3 with numpy 1.24 and opensimplex 0.4.5) closely enough to be bit-exact;
 * the comments say which. */
#ifndef AGORA_CRAFTER_INTERNAL_H
#define AGORA_CRAFTER_INTERNAL_H

#include "agora/crafter.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- rng.c: numpy's legacy RandomState over MT19937 ---------------------- */

#define AG_CRAFTER_MT_N 624

typedef struct ag_crafter_rng {
  uint32_t key[AG_CRAFTER_MT_N];
  int pos; /* next word of key to temper; N = regenerate the block first */
} ag_crafter_rng;

/* numpy.random.RandomState(seed) for an integer seed: numpy seeds with
 * init_genrand (not init_by_array) and leaves pos = 624. */
void ag_crafter_rng_seed(ag_crafter_rng *r, uint32_t seed);
/* Regenerates the 624-word block (pos = 0), as numpy's mt19937_gen. */
void ag_crafter_rng_generate(ag_crafter_rng *r);
static inline uint32_t ag_crafter_rng_temper(uint32_t y) {
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}
/* One tempered 32-bit output. */
static inline uint32_t ag_crafter_rng_next32(ag_crafter_rng *r) {
  if (r->pos >= AG_CRAFTER_MT_N) ag_crafter_rng_generate(r);
  return ag_crafter_rng_temper(r->key[r->pos++]);
}
/* n outputs in a row (the same as n calls of next32, faster). */
void ag_crafter_rng_next32_fill(ag_crafter_rng *r, uint32_t *out, size_t n);
/* Advances the state as n calls of next32 would, without tempering. */
void ag_crafter_rng_skip(ag_crafter_rng *r, size_t n);
/* random_sample(): 53 bits from two outputs, (a >> 5, b >> 6). */
static inline double ag_crafter_rng_random(ag_crafter_rng *r) {
  // Two separate statements: the high part is always drawn first.
  int32_t a = (int32_t)(ag_crafter_rng_next32(r) >> 5);
  int32_t b = (int32_t)(ag_crafter_rng_next32(r) >> 6);
  return (a * 67108864.0 + b) / 9007199254740992.0;
}
/* uniform(lo, hi) = lo + (hi - lo) * random_sample(), numpy's order. */
double ag_crafter_rng_uniform(ag_crafter_rng *r, double lo, double hi);
/* size-n uniform(lo, hi, n), in C order (what uniform(lo, hi, (a, b)) draws). */
void ag_crafter_rng_uniform_fill(ag_crafter_rng *r, double lo, double hi, double *out, size_t n);
/* randint(lo, hi) for the default int64 dtype: legacy masked rejection
 * sampling (32-bit draws when hi - lo - 1 fits 32 bits, else 64-bit draws,
 * high word first). Requires lo < hi (numpy raises otherwise); returns lo
 * when hi <= lo. */
int64_t ag_crafter_rng_randint(ag_crafter_rng *r, int64_t lo, int64_t hi);
/* choice(n) without p and with replacement: the same draw as randint(0, n). */
int64_t ag_crafter_rng_choice(ag_crafter_rng *r, int64_t n);
/* The state as get_state() gives it, serialised for hashing: 624 key words as
 * uint32 little-endian, then pos as int32 little-endian (2500 bytes). */
#define AG_CRAFTER_RNG_STATE_BYTES (AG_CRAFTER_MT_N * 4 + 4)
void ag_crafter_rng_state_bytes(const ag_crafter_rng *r, uint8_t out[AG_CRAFTER_RNG_STATE_BYTES]);

/* ---- noise.c: opensimplex 0.4.5's OpenSimplex (3-D noise) ----------------- */

typedef struct ag_crafter_simplex {
  uint8_t perm[256];
  /* The gradient of perm[i] in the package's 3-D table, as float64. */
  double gx[256], gy[256], gz[256];
} ag_crafter_simplex;

/* OpenSimplex(seed): the package's 64-bit LCG permutation. */
void ag_crafter_simplex_seed(ag_crafter_simplex *s, int64_t seed);
/* noise3(x, y, z), in the package's order of floating-point operations. */
double ag_crafter_simplex_noise3(const ag_crafter_simplex *s, double x, double y, double z);

/* ---- sha256.c: hashes used by the parity checks --------------------------- */

void ag_crafter_sha256(const void *data, size_t bytes, uint8_t out[32]);
/* Lowercase hex of the first `hex_chars` hex digits (<= 64) of the hash, with
 * a terminating NUL (out holds hex_chars + 1 bytes). */
void ag_crafter_sha256_hex(const void *data, size_t bytes, int hex_chars, char *out);

/* ---- png.c: PNG files through libpng ------------------------------------- */

#define AG_CRAFTER_DEFAULT_ASSETS "../shared/data/crafter/assets"
/* Reads a PNG as stored (no gamma or colour transforms): *pixels (malloc'd,
 * rows top to bottom) holds width * height * channels bytes, channels 3
 * (RGB) or 4 (RGBA); palettes and grey are expanded to RGB. */
ag_status ag_crafter_png_read(const char *path, uint8_t **pixels, int *width, int *height,
                              int *channels);

/* ---- world.c: the world state --------------------------------------------- */

#define AG_CRAFTER_CELLS       (AG_CRAFTER_AREA * AG_CRAFTER_AREA)
#define AG_CRAFTER_CHUNKS_AXIS ((AG_CRAFTER_AREA + AG_CRAFTER_CHUNK - 1) / AG_CRAFTER_CHUNK)
#define AG_CRAFTER_CHUNK_COUNT (AG_CRAFTER_CHUNKS_AXIS * AG_CRAFTER_CHUNKS_AXIS)
#define AG_CRAFTER_INVENTORY   16 /* data.yaml's items, in order */
#define AG_CRAFTER_PLAYER_ID   1  /* the player is added before world generation */

/* Inventory slots in data.yaml order. */
enum {
  AG_CRAFTER_INV_HEALTH,
  AG_CRAFTER_INV_FOOD,
  AG_CRAFTER_INV_DRINK,
  AG_CRAFTER_INV_ENERGY,
  AG_CRAFTER_INV_SAPLING,
  AG_CRAFTER_INV_WOOD,
  AG_CRAFTER_INV_STONE,
  AG_CRAFTER_INV_COAL,
  AG_CRAFTER_INV_IRON,
  AG_CRAFTER_INV_DIAMOND,
  AG_CRAFTER_INV_WOOD_PICKAXE,
  AG_CRAFTER_INV_STONE_PICKAXE,
  AG_CRAFTER_INV_IRON_PICKAXE,
  AG_CRAFTER_INV_WOOD_SWORD,
  AG_CRAFTER_INV_STONE_SWORD,
  AG_CRAFTER_INV_IRON_SWORD
};

/* One object. Its id is its index in ag_crafter_world.objects; type 0 marks a
 * removed object (ids are never reused, as in the original's list). Fields a
 * type does not use stay 0. */
typedef struct ag_crafter_object {
  uint8_t type;          /* ag_crafter_object_type */
  uint8_t x, y;          /* position */
  int8_t face_x, face_y; /* player and arrow: facing */
  uint8_t sleeping;      /* player */
  int16_t health;        /* creatures, plant; the player's is inventory[HEALTH] */
  int32_t cooldown;      /* zombie */
  int32_t reload;        /* skeleton */
  int32_t grown;         /* plant */
} ag_crafter_object;

typedef struct ag_crafter_world {
  uint8_t mat[AG_CRAFTER_CELLS];  /* material id at (x, y) is mat[x * AREA + y] */
  uint32_t obj[AG_CRAFTER_CELLS]; /* object id at (x, y), 0 = none */
  ag_crafter_object *objects;     /* by id; [0] is the unused sentinel */
  uint32_t object_count;          /* ids in use so far = the next id */
  uint32_t object_capacity;
  /* Ids of the objects not known to be removed, ascending (ids only grow):
   * world_add appends; world_compact drops removed ones (type 0, however
   * they were removed). Capacity object_capacity. */
  uint32_t *live;
  uint32_t live_count;
  /* Chunk indices (cx * CHUNKS_AXIS + cy) in the order the original's
   * defaultdict first saw them: balancing visits chunks in this order. */
  uint8_t chunk_order[AG_CRAFTER_CHUNK_COUNT];
  uint8_t chunk_seen[AG_CRAFTER_CHUNK_COUNT];
  int chunk_count;
  int32_t inventory[AG_CRAFTER_INVENTORY]; /* the player's */
  ag_crafter_rng rng;                      /* the one world RNG */
  uint32_t world_seed;                     /* W that seeded rng */
  int64_t simplex_seed;                    /* the first draw, randint(0, 2**31 - 1) */
  double daylight;
} ag_crafter_world;

/* Allocates the object table; the world is empty until reset. */
ag_status ag_crafter_world_init(ag_crafter_world *w);
void ag_crafter_world_free(ag_crafter_world *w);
/* Clears the world and seeds its RNG with RandomState(world_seed), as
 * World.reset does. */
void ag_crafter_world_clear(ag_crafter_world *w, uint32_t world_seed);
/* World.add: the next id, the object map and the chunk's first sighting.
 * The cell must be inside and free. */
ag_status ag_crafter_world_add(ag_crafter_world *w, int type, int x, int y, uint32_t *id);
/* Drops removed objects from the live list, keeping the order. */
void ag_crafter_world_compact(ag_crafter_world *w);
/* ag_crafter_daylight(step), from a table for steps 0..10,000. */
double ag_crafter_daylight_at(int64_t step);
/* The chunk index of (x, y) and its key [xmin, xmax, ymin, ymax]. */
int ag_crafter_chunk_index(int x, int y);
void ag_crafter_chunk_key(int chunk, int key[4]);

/* ---- worldgen.c ----------------------------------------------------------- */

/* Env.reset's world part for world seed W: clear, add the player at the
 * centre, generate materials and creatures, set daylight for step 0. */
ag_status ag_crafter_world_reset(ag_crafter_world *w, uint32_t world_seed);

/* ---- game.c: the step (the original's Env and objects) -------------------- */

/* Achievements in data.yaml order. */
enum {
  AG_CRAFTER_ACH_COLLECT_COAL,
  AG_CRAFTER_ACH_COLLECT_DIAMOND,
  AG_CRAFTER_ACH_COLLECT_DRINK,
  AG_CRAFTER_ACH_COLLECT_IRON,
  AG_CRAFTER_ACH_COLLECT_SAPLING,
  AG_CRAFTER_ACH_COLLECT_STONE,
  AG_CRAFTER_ACH_COLLECT_WOOD,
  AG_CRAFTER_ACH_DEFEAT_SKELETON,
  AG_CRAFTER_ACH_DEFEAT_ZOMBIE,
  AG_CRAFTER_ACH_EAT_COW,
  AG_CRAFTER_ACH_EAT_PLANT,
  AG_CRAFTER_ACH_MAKE_IRON_PICKAXE,
  AG_CRAFTER_ACH_MAKE_IRON_SWORD,
  AG_CRAFTER_ACH_MAKE_STONE_PICKAXE,
  AG_CRAFTER_ACH_MAKE_STONE_SWORD,
  AG_CRAFTER_ACH_MAKE_WOOD_PICKAXE,
  AG_CRAFTER_ACH_MAKE_WOOD_SWORD,
  AG_CRAFTER_ACH_PLACE_FURNACE,
  AG_CRAFTER_ACH_PLACE_PLANT,
  AG_CRAFTER_ACH_PLACE_STONE,
  AG_CRAFTER_ACH_PLACE_TABLE,
  AG_CRAFTER_ACH_WAKE_UP
};

#define AG_CRAFTER_NIGHT_NOISE (63 * 49)

/* Something that happened in a step, as the golden files' `ev` records. */
typedef enum ag_crafter_event_kind {
  AG_CRAFTER_EV_ADD,
  AG_CRAFTER_EV_REMOVE,
  AG_CRAFTER_EV_DESPAWN_DRAW
} ag_crafter_event_kind;

typedef struct ag_crafter_event {
  ag_crafter_event_kind kind;
  uint32_t id;           /* add, remove */
  int type;              /* object type */
  int x, y;              /* add, remove: position */
  const char *by;        /* add, remove: "_balance_object", "_shoot", "_place", "update" */
  int chunk[4];          /* despawn_draw: [xmin, xmax, ymin, ymax] */
  const uint32_t *order; /* despawn_draw: the candidates in draw order */
  int n, k;              /* despawn_draw: how many; the index drawn */
} ag_crafter_event;

/* Test hook: called at each despawn draw with the candidates in ascending id
 * (the canonical order); it may permute them in place to impose another
 * order (the orig/ files' logged one). It must not change the set. */
typedef void (*ag_crafter_despawn_hook)(void *ctx, const int chunk[4], int type,
                                        uint32_t *candidates, int n);
typedef void (*ag_crafter_event_fn)(void *ctx, const ag_crafter_event *ev);

struct ag_crafter_env {
  ag_crafter_world world;
  int64_t seed, episode, step, length;
  bool started; /* reset was called */
  int action;   /* the player's current action */
  /* The player's internal counters (halves while sleeping). */
  double hunger, thirst, fatigue, recover;
  int32_t player_last_health; /* Player._last_health */
  int32_t last_health;        /* Env._last_health */
  int32_t achievements[AG_CRAFTER_ACHIEVEMENT_COUNT];
  uint32_t unlocked; /* bit a: achievement a unlocked this episode */
  ag_crafter_despawn_hook despawn_hook;
  void *despawn_ctx;
  ag_crafter_event_fn on_event;
  void *event_ctx;
  ag_crafter_mode mode;
  uint32_t *candidates; /* balancing scratch, candidates_capacity ids */
  uint32_t candidates_capacity;
  /* Exact mode's night noise: whenever daylight < 0.5 the observation draws
   * LocalView._noise's uniform(32, 127, (63, 49)) from the world RNG. The
   * step advances the RNG past those draws and keeps the state before them
   * here (night_noise_valid), so the pixel observation can replay them. */
  bool night_noise_valid;
  ag_crafter_rng noise_rng;
};

/* The hashes of the golden files: the map, the object list
 * ("{id} {Type} {x} {y} {health}\n" per object) and the RNG state, as the
 * first hex_chars hex digits. */
void ag_crafter_hash_grid(const ag_crafter_env *env, int hex_chars, char *out);
void ag_crafter_hash_objects(const ag_crafter_env *env, int hex_chars, char *out);
void ag_crafter_hash_rng(const ag_crafter_env *env, int hex_chars, char *out);
/* An object's health as the original reports it (the player's is its inventory's). */
int ag_crafter_object_health(const ag_crafter_env *env, uint32_t id);

#endif
