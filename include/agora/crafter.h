/* Crafter (worlds layer): a C port of danijar/crafter 1.8.3 (MIT), the 2-D
 * open-world survival game, faithful to the original step for step. See
 * docs/crafter.md for what exists so far.
 *
 * Ids below are the original's: material ids are indices into data.yaml's
 * `materials` list plus one (0 = none, outside the world), object types are
 * the original's classes. They are also the ids of the semantic observation.
 *
 *   uint32_t w = ag_crafter_episode_seed(seed, 1);  // the world seed of episode 1
 */
#ifndef AGORA_CRAFTER_H
#define AGORA_CRAFTER_H

#include "agora/base.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AG_CRAFTER_AREA  64 /* the world is AREA x AREA tiles */
#define AG_CRAFTER_CHUNK 12 /* creature-balancing chunks are CHUNK x CHUNK (edge ones 4 wide) */

typedef enum ag_crafter_material {
  AG_CRAFTER_NONE = 0,
  AG_CRAFTER_WATER,
  AG_CRAFTER_GRASS,
  AG_CRAFTER_STONE,
  AG_CRAFTER_PATH,
  AG_CRAFTER_SAND,
  AG_CRAFTER_TREE,
  AG_CRAFTER_LAVA,
  AG_CRAFTER_COAL,
  AG_CRAFTER_IRON,
  AG_CRAFTER_DIAMOND,
  AG_CRAFTER_TABLE,
  AG_CRAFTER_FURNACE,
  AG_CRAFTER_MATERIAL_COUNT
} ag_crafter_material;

typedef enum ag_crafter_object_type {
  AG_CRAFTER_OBJ_NONE = 0, /* an empty slot: a removed object */
  AG_CRAFTER_PLAYER,
  AG_CRAFTER_COW,
  AG_CRAFTER_ZOMBIE,
  AG_CRAFTER_SKELETON,
  AG_CRAFTER_ARROW,
  AG_CRAFTER_PLANT,
  AG_CRAFTER_FENCE,
  AG_CRAFTER_OBJECT_TYPE_COUNT
} ag_crafter_object_type;

/* Name of a material ("water") or object type ("Cow", as the original's class
 * is named); "" for an id out of range, NULL for AG_CRAFTER_NONE materials. */
const char *ag_crafter_material_name(int material);
const char *ag_crafter_object_type_name(int type);

/* The world seed W of episode `episode` (1 = the first reset) of
 * crafter.Env(seed=seed): the original's hash((seed, episode)) % (2**31 - 1),
 * with CPython's 64-bit tuple hash, so W is in [0, 2**31 - 2]. */
uint32_t ag_crafter_episode_seed(int64_t seed, int64_t episode);

/* Daylight at step `step` (0 at reset): 1 - |cos(pi * ((step/300) % 1 + 0.3))|^3,
 * in the original's order of operations and with numpy's own float64 cos
 * (numpy 1.24 on AVX-512, where the golden files were recorded). */
double ag_crafter_daylight(int64_t step);

#ifdef __cplusplus
}
#endif

#endif
