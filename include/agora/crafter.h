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

#include <stdbool.h>
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

/* ---- the game ------------------------------------------------------------- */

#define AG_CRAFTER_ACTION_COUNT      17
#define AG_CRAFTER_ACHIEVEMENT_COUNT 22
#define AG_CRAFTER_ITEM_COUNT        16    /* inventory entries, data.yaml order */
#define AG_CRAFTER_DEFAULT_LENGTH    10000 /* steps until the episode ends */

/* Names in the original's order: actions (data.yaml `actions`, ids 0..16),
 * achievements (data.yaml order, alphabetical), inventory items (health,
 * food, drink, energy, sapling, wood, ...). "" for an id out of range. */
const char *ag_crafter_action_name(int action);
const char *ag_crafter_achievement_name(int achievement);
const char *ag_crafter_item_name(int item);

/* What a step (or reset) leaves behind, as the original's info dict. */
typedef struct ag_crafter_info {
  int32_t inventory[AG_CRAFTER_ITEM_COUNT];           /* after clamping to 0..9 */
  int32_t achievements[AG_CRAFTER_ACHIEVEMENT_COUNT]; /* counts this episode */
  double discount;                                    /* 1, or 0 when the player died */
  int player_pos[2];                                  /* [x, y] */
  int64_t step;                                       /* steps taken this episode */
} ag_crafter_info;

/* One game: crafter.Env(seed=seed) with the default arguments (64x64 area,
 * 9x9 view, length 10,000). No episode runs until the first reset. */
typedef struct ag_crafter_env ag_crafter_env;

ag_status ag_crafter_create(int64_t seed, ag_crafter_env **out);
void ag_crafter_destroy(ag_crafter_env *env);
/* Env.reset(): starts the next episode e (1, 2, ...) of the env's seed with
 * world seed ag_crafter_episode_seed(seed, e). */
ag_status ag_crafter_reset(ag_crafter_env *env);
/* Makes the env behave as a fresh crafter.Env(seed=seed), then resets it
 * (so this is episode 1 of that seed). */
ag_status ag_crafter_reset_seed(ag_crafter_env *env, int64_t seed);
/* Env.step(action): action in [0, 17). reward = (health - last health)/10,
 * plus 1 when an achievement was unlocked for the first time this episode;
 * *done when the player died or the length is reached. reward, done and
 * info may be NULL. An invalid action or a step before reset is an error
 * that changes nothing. */
ag_status ag_crafter_step(ag_crafter_env *env, int action, double *reward, bool *done,
                          ag_crafter_info *info);
/* The info of the current state (also valid right after reset). */
void ag_crafter_get_info(const ag_crafter_env *env, ag_crafter_info *info);

/* ---- parity with the original -------------------------------------------- */

/* Replays a canonical golden file (../shared/data/crafter/golden format: a
 * traj_S_*.jsonl.gz or a world_S.json) and compares every recorded field
 * except the pixel-observation hashes. With impose_logged_despawns, each
 * despawn draw uses the candidate order the file logged (for orig/ files). */
typedef struct ag_crafter_replay_report {
  int64_t records;    /* step records (or world files) compared */
  int64_t episodes;   /* episode headers seen */
  bool match;         /* every compared field matched */
  char mismatch[768]; /* when !match: "FILE: episode E step T: field F: expected X, got Y" */
} ag_crafter_replay_report;

/* An error status only for an unreadable or malformed file; a mismatch is
 * AG_OK with report->match false. */
ag_status ag_crafter_replay(const char *path, bool impose_logged_despawns,
                            ag_crafter_replay_report *report);

#ifdef __cplusplus
}
#endif

#endif
