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

/* ---- observations ---------------------------------------------------------- */

#define AG_CRAFTER_OBS_SIZE  64 /* the pixel observation is OBS_SIZE x OBS_SIZE RGB */
#define AG_CRAFTER_OBS_BYTES (AG_CRAFTER_OBS_SIZE * AG_CRAFTER_OBS_SIZE * 3)
#define AG_CRAFTER_VIEW_W    9 /* the local view: 9 x 7 tiles around the player */
#define AG_CRAFTER_VIEW_H    7
/* Semantic ids: materials 0..12 as above, then objects Player 13, Cow 14,
 * Zombie 15, Skeleton 16, Arrow 17, Plant 18 (the original's SemanticView). */
#define AG_CRAFTER_SEMANTIC_OBJECT_BASE AG_CRAFTER_MATERIAL_COUNT

/* The 16x16 textures (PNG files named as the original's assets). dir NULL
 * means $AG_CRAFTER_ASSETS, else ../shared/data/crafter/assets. Read-only
 * once loaded: one set can serve any number of envs and threads. */
typedef struct ag_crafter_textures ag_crafter_textures;
ag_status ag_crafter_textures_load(const char *dir, ag_crafter_textures **out);
void ag_crafter_textures_free(ag_crafter_textures *textures);

/* The pixel observation the last reset or step returned, bit for bit the
 * original's: rgb holds AG_CRAFTER_OBS_BYTES, (row, col, channel) = (y, x,
 * RGB). It uses the night noise that step drew, so it changes nothing and
 * may be called any number of times. */
ag_status ag_crafter_observe_pixels(const ag_crafter_env *env, const ag_crafter_textures *textures,
                                    uint8_t *rgb);
/* Env.render((width, height)) into rgb (height * width * 3 bytes), for
 * other sizes (e.g. 600x600). Like the original, at night it draws fresh
 * noise from the world RNG, so it changes the rest of the episode. */
ag_status ag_crafter_render(ag_crafter_env *env, const ag_crafter_textures *textures, int width,
                            int height, uint8_t *rgb);
/* info['semantic'] of the original: the whole map as semantic ids, ids[x *
 * AREA + y]. */
void ag_crafter_semantic_map(const ag_crafter_env *env, uint8_t *ids);
/* The semantic observation: the local view's 9 x 7 tiles as semantic ids,
 * view[row * 9 + col] with the player at row 3, col 4 (0 outside the world),
 * and the inventory (AG_CRAFTER_ITEM_COUNT entries, data.yaml order). Either
 * pointer may be NULL. */
void ag_crafter_observe_semantic(const ag_crafter_env *env, uint8_t *view, int32_t *inventory);
/* Writes an RGB frame (height * width * 3 bytes) as a PNG file, atomically
 * (a temporary file renamed into place). */
ag_status ag_crafter_write_png(const char *path, const uint8_t *rgb, int width, int height);

/* ---- modes and the vectorised form ------------------------------------------ */

/* exact (the default): bit for bit the original, including the random draws
 * the original's night rendering makes in every observation (3,087 uniform
 * draws per night step) even when no pixels are wanted.
 * fast: the same rules and distributions, but work that only serves
 * bit-parity is skipped: no night-noise draws from the world RNG. A fast
 * episode equals the exact one up to the first night step (daylight < 0.5,
 * step 148 of the first day), then diverges. Its pixel observations at night
 * use noise from a hash of (world seed, step, pixel), with the same
 * distribution, and ag_crafter_render never draws from the world RNG. */
typedef enum ag_crafter_mode {
  AG_CRAFTER_MODE_EXACT = 0,
  AG_CRAFTER_MODE_FAST = 1
} ag_crafter_mode;

/* ag_crafter_create with a mode (ag_crafter_create is mode exact). An
 * unknown mode is an error. */
ag_status ag_crafter_create_mode(int64_t seed, ag_crafter_mode mode, ag_crafter_env **out);
ag_crafter_mode ag_crafter_get_mode(const ag_crafter_env *env);
/* "exact", "fast"; "" for an unknown mode. */
const char *ag_crafter_mode_name(ag_crafter_mode mode);

/* N envs stepped together, across OpenMP threads. Env i is
 * crafter.Env(seed=seed + i) in the given mode, reset at creation; when its
 * episode ends (death or length), step resets it (its next episode, with the
 * original's per-episode world seed) and returns the new episode's first
 * observation, with that step's reward and done = true. Env i of a vec is
 * exactly a single env of seed seed + i given the same actions and reset
 * whenever done. */
typedef struct ag_crafter_vec ag_crafter_vec;

/* textures may be NULL (then no pixel observations); it must outlive the vec. */
ag_status ag_crafter_vec_create(int n, int64_t seed, ag_crafter_mode mode,
                                const ag_crafter_textures *textures, ag_crafter_vec **out);
void ag_crafter_vec_destroy(ag_crafter_vec *vec);
int ag_crafter_vec_size(const ag_crafter_vec *vec);
/* Env i itself (read it, don't step or reset it alone). */
ag_crafter_env *ag_crafter_vec_env(ag_crafter_vec *vec, int i);
/* Threads for step and observe; 0 (the default) = ag_threads_get(). */
void ag_crafter_vec_set_threads(ag_crafter_vec *vec, int threads);

/* Where a vec step writes, each array holding n entries of its kind (any
 * pointer may be NULL to skip it): view n * 63 semantic ids (9 x 7 as
 * ag_crafter_observe_semantic), inventory n * 16, pixels n *
 * AG_CRAFTER_OBS_BYTES (needs textures), reward, done, and info (for an env
 * that was reset: the final info of the episode that ended). */
typedef struct ag_crafter_vec_out {
  uint8_t *view;
  int32_t *inventory;
  uint8_t *pixels;
  double *reward;
  bool *done;
  ag_crafter_info *info;
} ag_crafter_vec_out;

/* The observations of the current states (after create: each episode's
 * first) into out's view, inventory and pixels. */
ag_status ag_crafter_vec_observe(ag_crafter_vec *vec, const ag_crafter_vec_out *out);
/* Steps every env i with actions[i] (each in [0, 17); an invalid one is an
 * error that steps nothing), auto-resets those done, and writes out. */
ag_status ag_crafter_vec_step(ag_crafter_vec *vec, const int *actions,
                              const ag_crafter_vec_out *out);

/* Speed, as `agora crafter bench` and bench/bench_crafter report it. Random
 * actions (drawn outside the timed part); steps and their observations are
 * timed in runs within one tenth of the 300-step day/night cycle, and each
 * figure is 1 / (mean over the 30 tenths of the mean step time): whole
 * cycles, although random episodes rarely live through a night. Resets are
 * timed apart. */
typedef struct ag_crafter_bench_figure {
  double steps_per_s;       /* over whole cycles */
  double day_steps_per_s;   /* tenths entirely by day (daylight >= 0.5) */
  double night_steps_per_s; /* tenths entirely at night */
  int64_t steps;
  int empty_tenths; /* tenths no step reached (the mean is over the rest) */
} ag_crafter_bench_figure;

typedef struct ag_crafter_bench_result {
  ag_crafter_bench_figure pixels;         /* exact mode, pixels every step, one thread */
  ag_crafter_bench_figure semantic;       /* fast mode, semantic view every step, one thread */
  ag_crafter_bench_figure exact_semantic; /* exact mode, semantic view, one thread */
  double reset_ms;                        /* mean reset (world generation), one thread */
  int64_t resets;
  /* ag_crafter_vec, fast mode, semantic views, auto-resets included: env
   * steps per second with vec_threads threads, and with one. */
  double vec_steps_per_s, vec_one_thread_steps_per_s;
  int vec_envs, vec_threads;
} ag_crafter_bench_result;

typedef struct ag_crafter_bench_options {
  double seconds; /* per measurement (five of them), > 0 */
  int vec_envs;   /* envs for the vectorised figures; 0 skips them */
  /* Time the single-thread figures (and their budget) by the thread's CPU
   * clock instead of the wall clock: for a machine shared with other jobs,
   * where wall time counts the time the thread waited for a core. It costs
   * ~0.2 us per clock read (two per run of up to 10 steps). */
  bool cpu_time;
} ag_crafter_bench_options;

/* textures are needed for pixels. */
ag_status ag_crafter_bench(const ag_crafter_textures *textures,
                           const ag_crafter_bench_options *options, ag_crafter_bench_result *out);

/* ---- the score --------------------------------------------------------- */

/* Episodes tallied for the score: how many, in how many each achievement
 * was unlocked (its count >= 1 at the episode's end), and their lengths and
 * returns. Zero-initialise, then ag_crafter_tally_add once per episode. */
typedef struct ag_crafter_tally {
  int64_t episodes;
  int64_t unlocked[AG_CRAFTER_ACHIEVEMENT_COUNT];
  int64_t steps;       /* summed episode lengths */
  double total_return; /* summed episode returns */
} ag_crafter_tally;

/* Adds one finished episode: its final info's achievement counts, its
 * length in steps and its return (summed rewards). */
void ag_crafter_tally_add(ag_crafter_tally *tally,
                          const int32_t achievements[AG_CRAFTER_ACHIEVEMENT_COUNT], int64_t length,
                          double episode_return);
/* Success rate of each achievement in percent (0..100): 100 * unlocked /
 * episodes, all 0 when no episode was tallied. */
void ag_crafter_success_rates(const ag_crafter_tally *tally,
                              double percent[AG_CRAFTER_ACHIEVEMENT_COUNT]);
/* The Crafter score from success rates in percent: exp(mean_i ln(1 + s_i))
 * - 1 (the paper's geometric mean, offset by 1), in percent too: 0 when
 * nothing was ever unlocked, 100 when everything always was. */
double ag_crafter_score(const double percent[AG_CRAFTER_ACHIEVEMENT_COUNT]);

/* ---- parity with the original -------------------------------------------- */

/* Replays a canonical golden file (../shared/data/crafter/golden format: a
 * traj_S_*.jsonl.gz or a world_S.json) and compares every recorded field,
 * the pixel-observation hashes (`obs`, `obs_sha256_at_reset`) included, with
 * the textures of ag_crafter_textures_load(NULL). With
 * impose_logged_despawns, each despawn draw uses the candidate order the file
 * logged (for orig/ files). */
typedef struct ag_crafter_replay_report {
  int64_t records;    /* step records (or world files) compared */
  int64_t episodes;   /* episode headers seen */
  int64_t frames;     /* observation hashes compared */
  bool match;         /* every compared field matched */
  char mismatch[768]; /* when !match: "FILE: episode E step T: field F: expected X, got Y" */
} ag_crafter_replay_report;

/* An error status only for an unreadable or malformed file; a mismatch is
 * AG_OK with report->match false. */
ag_status ag_crafter_replay(const char *path, bool impose_logged_despawns,
                            ag_crafter_replay_report *report);

/* ---- the player, text observation, agents (text.c, agents.c) ------------- */

/* What the original exposes beyond info: the player's facing and sleep, and
 * the daylight of the current step (BALROG's wrapper reads the same). */
typedef struct ag_crafter_player_state {
  int facing[2]; /* [dx, dy]: [-1, 0] west (left), [1, 0] east, [0, -1] north (up), [0, 1] south */
  bool sleeping; /* actions are ignored until energy is full or the player is hurt */
  double daylight; /* 1 at noon, below 0.5 at night (the frame darkens) */
} ag_crafter_player_state;
/* The state after the last reset or step (all zero before the first reset). */
void ag_crafter_get_player_state(const ag_crafter_env *env, ag_crafter_player_state *out);

/* The text observation, in the format of BALROG's Crafter language wrapper
 * (balrog-ai/BALROG, balrog/environments/crafter/env.py; see
 * docs/crafter.md). Zero-initialised options are BALROG's benchmark
 * configuration: the nearest tile of each kind, "N steps to your
 * north-east" (Manhattan distance), every kind listed, water anywhere. */
typedef struct ag_crafter_text_options {
  bool all_tiles;        /* every tile, not only the nearest of each kind (unique_items=False) */
  bool precise_location; /* "2 steps north and 3 steps east" (precise_location=True) */
  bool skip_ground;      /* leave out grass, sand and path; facing them is "nothing" */
  bool water_edges_only; /* water only where it borders another kind in the view */
  int parts;             /* AG_CRAFTER_TEXT_* bits; 0 = both */
} ag_crafter_text_options;

#define AG_CRAFTER_TEXT_STATUS 1 /* vitals and inventory (BALROG's short-term context) */
#define AG_CRAFTER_TEXT_SCENE  2 /* sleeping/dead, what it sees and faces (long-term context) */
/* A buffer of this size always holds the whole text with its NUL. */
#define AG_CRAFTER_TEXT_MAX 4096

/* Describes the current state: with both parts, the status part, a newline
 * and the scene part, as BALROG's prompt builder joins them:
 *
 *   Your status:\n- health: 9/9\n- food: 9/9\n- drink: 9/9\n- energy: 9/9\n\n
 *   You have nothing in your inventory.\n
 *   You see:\n- grass 1 step to your west\n- tree 3 steps to your north-east\n\n
 *   You face grass at your front.
 *
 * snprintf semantics: writes at most size - 1 characters and a NUL (buf may
 * be NULL when size is 0), and *length (may be NULL) gets the full length,
 * so the text was cut short when *length >= size. options NULL = defaults.
 * Errors: env NULL or not reset, buf NULL with size > 0, unknown parts bits. */
ag_status ag_crafter_observe_text(const ag_crafter_env *env, const ag_crafter_text_options *options,
                                  char *buf, size_t size, size_t *length);

/* Agents that play from what the game shows. random: uniform actions from
 * numpy's RandomState(seed + 12345), one stream across episodes (episode 1
 * of crafter.Env(seed) is then the golden traj_S_random run). scripted: a
 * hand-written policy from the semantic view, the inventory, info's position
 * and achievements and the player state (plus its own map of what it has
 * seen this episode): fights, drinks, cows, nights asleep in a pocket it
 * walls with stone, the tech tree from wood to diamonds, a walled-in plant
 * (docs/crafter.md). Both are deterministic given the seed and the game. */
typedef enum ag_crafter_agent_kind {
  AG_CRAFTER_AGENT_RANDOM = 0,
  AG_CRAFTER_AGENT_SCRIPTED
} ag_crafter_agent_kind;

typedef struct ag_crafter_agent ag_crafter_agent;

/* "random" or "scripted" to a kind; an error for anything else. */
ag_status ag_crafter_agent_kind_parse(const char *name, ag_crafter_agent_kind *kind);
ag_status ag_crafter_agent_create(ag_crafter_agent_kind kind, int64_t seed, ag_crafter_agent **out);
void ag_crafter_agent_destroy(ag_crafter_agent *agent);
/* The action for the env's current state (after reset or a step), in
 * [0, AG_CRAFTER_ACTION_COUNT). The scripted agent notices a new episode by
 * itself (a reset); one agent plays one env at a time. -1 with an error set
 * when env is NULL or not reset. */
int ag_crafter_agent_act(ag_crafter_agent *agent, const ag_crafter_env *env);

#ifdef __cplusplus
}
#endif

#endif
