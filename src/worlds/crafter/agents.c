/* Crafter agents: uniform random actions (numpy's RandomState stream, as the
 * golden random files draw them) and a hand-written scripted policy.
 *
 * The scripted agent sees what a player sees: the semantic 9 x 7 view, the
 * inventory, info's position and achievements, its facing and whether it
 * sleeps (ag_crafter_get_player_state). It keeps its own map of every tile
 * it has seen this episode and plans on it with shortest paths (cutting
 * trees and mining stone count as passable at a cost). Each step it picks
 * the first of: fight an adjacent zombie or skeleton; sleep (at night or
 * when tired) inside a pocket walled with stone; drink; eat a cow; then work
 * down the tech tree (wood, table, wood pickaxe and sword, stone, stone tools,
 * coal, furnace, iron, iron tools, diamond), with cheap side achievements on
 * the way (sapling, plant, place stone, eat the plant when ripe); explore the
 * nearest unseen edge when what it needs is not in sight. */
#include "worlds/crafter/crafter_internal.h"

#include <stdlib.h>
#include <string.h>

#define AREA  AG_CRAFTER_AREA
#define CELLS AG_CRAFTER_CELLS
#define VW    AG_CRAFTER_VIEW_W
#define VH    AG_CRAFTER_VIEW_H
#define INF   0x3fffffff

enum {
  NOOP = 0,
  LEFT,
  RIGHT,
  UP,
  DOWN,
  DO,
  SLEEP,
  PLACE_STONE,
  PLACE_TABLE,
  PLACE_FURNACE,
  PLACE_PLANT,
  MAKE_WOOD_PICKAXE,
  MAKE_STONE_PICKAXE,
  MAKE_IRON_PICKAXE,
  MAKE_WOOD_SWORD,
  MAKE_STONE_SWORD,
  MAKE_IRON_SWORD
};

/* Semantic ids of objects. */
enum { S_PLAYER = 13, S_COW, S_ZOMBIE, S_SKELETON, S_ARROW, S_PLANT };

/* Directions in action order: left (west), right (east), up (north), down (south). */
static const int DX[4] = {-1, 1, 0, 0}, DY[4] = {0, 0, -1, 1};

struct ag_crafter_agent {
  ag_crafter_agent_kind kind;
  int64_t seed;
  ag_crafter_rng rng; /* random: the action stream */
  /* Scripted: the episode it is playing (a reset clears the memory). */
  const ag_crafter_env *env;
  int64_t episode, step;
  bool fresh;
  uint8_t mat[CELLS]; /* last material seen at each cell, 0 = never seen */
  uint8_t obj[CELLS]; /* objects in the current view (semantic id), 0 elsewhere */
  /* This step's observation. */
  int px, py, fx, fy;
  int32_t inv[AG_CRAFTER_ITEM_COUNT];
  int32_t ach[AG_CRAFTER_ACHIEVEMENT_COUNT];
  double daylight;
  /* Latched needs: once started, drink/eat until full; sleep mode. */
  bool drinking, resting;
  int shelter_tries, return_dir;
  int pocket; /* E * 4 + d of the chosen pocket, -1 = none */
  /* Its plant: the cell T, the direction d from the tile S = T - d it was
   * planted from, its growth counted as the game does (one per step while
   * the player is within 18, ripe above 300), whether S is walled. */
  int plant_cell, plant_dir, plant_grown;
  bool plant_sealed;
  int sapling_tries;
  int stuck, last_px, last_py, last_action;
  /* Where it last saw a cow, and when (cows wander slowly). */
  int cow_cell;
  int64_t cow_step;
  uint8_t danger[CELLS]; /* extra step cost near threats in view */
  /* Shortest-path workspace: a binary heap of (distance << 16 | cell). */
  int32_t dist[CELLS];
  int16_t parent[CELLS];
  int64_t *heap;
  int heap_n;
};

/* ---- creation ------------------------------------------------------------------ */

ag_status ag_crafter_agent_kind_parse(const char *name, ag_crafter_agent_kind *kind) {
  if (name && !strcmp(name, "random")) {
    *kind = AG_CRAFTER_AGENT_RANDOM;
    return AG_OK;
  }
  if (name && !strcmp(name, "scripted")) {
    *kind = AG_CRAFTER_AGENT_SCRIPTED;
    return AG_OK;
  }
  return ag_error_set(AG_ERR_INVALID, "crafter: unknown agent '%s' (random|scripted)",
                      name ? name : "(null)");
}

ag_status ag_crafter_agent_create(ag_crafter_agent_kind kind, int64_t seed,
                                  ag_crafter_agent **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "crafter: agent out is NULL");
  *out = NULL;
  if (kind != AG_CRAFTER_AGENT_RANDOM && kind != AG_CRAFTER_AGENT_SCRIPTED)
    return ag_error_set(AG_ERR_INVALID, "crafter: unknown agent kind %d", (int)kind);
  ag_crafter_agent *a = calloc(1, sizeof *a);
  if (!a) return ag_error_set(AG_ERR_NOMEM, "crafter: cannot allocate the agent");
  a->kind = kind;
  a->seed = seed;
  // The golden random files' actions: numpy's RandomState(S + 12345).
  ag_crafter_rng_seed(&a->rng, (uint32_t)((uint64_t)seed + 12345u));
  if (kind == AG_CRAFTER_AGENT_SCRIPTED) {
    a->heap = malloc(sizeof(int64_t) * (4 * CELLS + 1)); // a push per relaxed edge at most
    if (!a->heap) {
      ag_crafter_agent_destroy(a);
      return ag_error_set(AG_ERR_NOMEM, "crafter: cannot allocate the agent");
    }
  }
  *out = a;
  return AG_OK;
}

void ag_crafter_agent_destroy(ag_crafter_agent *a) {
  if (!a) return;
  free(a->heap);
  free(a);
}

/* ---- the map ------------------------------------------------------------------- */

static inline bool inside(int x, int y) { return x >= 0 && y >= 0 && x < AREA && y < AREA; }
static inline int cell_of(int x, int y) { return x * AREA + y; }
static inline int mat_at(const ag_crafter_agent *a, int x, int y) {
  return inside(x, y) ? a->mat[cell_of(x, y)] : -1;
}
static inline int obj_at(const ag_crafter_agent *a, int x, int y) {
  return inside(x, y) ? a->obj[cell_of(x, y)] : 0;
}
static inline bool walkable(int m) {
  return m == AG_CRAFTER_GRASS || m == AG_CRAFTER_SAND || m == AG_CRAFTER_PATH;
}
// A tile the player could step on now (lava never counts).
static inline bool free_tile(const ag_crafter_agent *a, int x, int y) {
  return inside(x, y) && walkable(a->mat[cell_of(x, y)]) && !a->obj[cell_of(x, y)];
}
static inline int iabs(int v) { return v < 0 ? -v : v; }

static void observe(ag_crafter_agent *a, const ag_crafter_env *env) {
  uint8_t view[VW * VH];
  ag_crafter_observe_semantic(env, view, a->inv);
  ag_crafter_info info;
  ag_crafter_get_info(env, &info);
  ag_crafter_player_state ps;
  ag_crafter_get_player_state(env, &ps);
  memcpy(a->ach, info.achievements, sizeof a->ach);
  a->px = info.player_pos[0];
  a->py = info.player_pos[1];
  a->fx = ps.facing[0];
  a->fy = ps.facing[1];
  a->daylight = ps.daylight;
  a->step = info.step;
  memset(a->obj, 0, sizeof a->obj);
  for (int r = 0; r < VH; r++)
    for (int c = 0; c < VW; c++) {
      int x = a->px + c - VW / 2, y = a->py + r - VH / 2, id = view[r * VW + c];
      if (!inside(x, y) || id == 0) continue;
      int cell = cell_of(x, y);
      if (id < AG_CRAFTER_SEMANTIC_OBJECT_BASE) {
        a->mat[cell] = (uint8_t)id;
        continue;
      }
      if (id != S_PLAYER) a->obj[cell] = (uint8_t)id;
      if (id == S_COW) {
        a->cow_cell = cell;
        a->cow_step = info.step;
      }
      // The material under an object is hidden: keep what was seen, else
      // guess where such objects stand.
      if (!a->mat[cell])
        a->mat[cell] = id == S_SKELETON || id == S_ARROW ? AG_CRAFTER_PATH : AG_CRAFTER_GRASS;
    }
  // Keep away from skeletons (arrows) when hurt, and from zombies when weak.
  memset(a->danger, 0, sizeof a->danger);
  int health = a->inv[AG_CRAFTER_INV_HEALTH];
  for (int r = 0; r < VH; r++)
    for (int c = 0; c < VW; c++) {
      int id = view[r * VW + c], x = a->px + c - VW / 2, y = a->py + r - VH / 2;
      int reach = id == S_SKELETON && health <= 6 ? 4 : id == S_ZOMBIE && health <= 4 ? 1 : 0;
      for (int i = -reach; i <= reach && reach; i++)
        for (int j = -reach; j <= reach; j++)
          if (iabs(i) + iabs(j) <= reach && inside(x + i, y + j)) {
            int cell = cell_of(x + i, y + j);
            if (a->danger[cell] < 4) a->danger[cell] = 4;
          }
    }
}

/* ---- shortest paths -------------------------------------------------------------- */

/* The cost of entering a tile: walking 1; cutting a tree or mining what the
 * pickaxes allow 3 (turn, do, move); anything else impassable. */
static int step_cost(const ag_crafter_agent *a, int cell) {
  int m = a->mat[cell];
  // Creatures move on or die when hit; plants stay (and a hit eats them).
  int extra = a->danger[cell];
  if (a->obj[cell]) return a->obj[cell] == S_PLANT || !walkable(m) ? -1 : 3 + extra;
  if (walkable(m)) return 1 + extra;
  if (m == AG_CRAFTER_TREE) return 3 + extra;
  if ((m == AG_CRAFTER_STONE || m == AG_CRAFTER_COAL) && a->inv[AG_CRAFTER_INV_WOOD_PICKAXE])
    return 3 + extra;
  if (m == AG_CRAFTER_IRON && a->inv[AG_CRAFTER_INV_STONE_PICKAXE]) return 3 + extra;
  if (m == AG_CRAFTER_DIAMOND && a->inv[AG_CRAFTER_INV_IRON_PICKAXE]) return 3 + extra;
  return -1;
}

static void heap_push(ag_crafter_agent *a, int d, int cell) {
  int64_t v = (int64_t)d << 16 | cell;
  int i = a->heap_n++;
  while (i > 0 && a->heap[(i - 1) / 2] > v) {
    a->heap[i] = a->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  a->heap[i] = v;
}

static int64_t heap_pop(ag_crafter_agent *a) {
  int64_t top = a->heap[0], v = a->heap[--a->heap_n];
  int i = 0, n = a->heap_n;
  for (;;) {
    int c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && a->heap[c + 1] < a->heap[c]) c++;
    if (a->heap[c] >= v) break;
    a->heap[i] = a->heap[c];
    i = c;
  }
  if (n > 0) a->heap[i] = v;
  return top;
}

/* Dijkstra from the player over known tiles. */
static void plan(ag_crafter_agent *a) {
  for (int i = 0; i < CELLS; i++) a->dist[i] = INF;
  int start = cell_of(a->px, a->py);
  a->dist[start] = 0;
  a->parent[start] = -1;
  a->heap_n = 0;
  heap_push(a, 0, start);
  while (a->heap_n > 0) {
    int64_t top = heap_pop(a);
    int d = (int)(top >> 16), cell = (int)(top & 0xffff);
    if (d != a->dist[cell]) continue; // stale
    int x = cell / AREA, y = cell % AREA;
    for (int k = 0; k < 4; k++) {
      int nx = x + DX[k], ny = y + DY[k];
      if (!inside(nx, ny)) continue;
      int nc = cell_of(nx, ny), c = step_cost(a, nc);
      if (c < 0 || d + c >= a->dist[nc]) continue;
      a->dist[nc] = d + c;
      a->parent[nc] = (int16_t)cell;
      if (a->heap_n < 4 * CELLS + 1) heap_push(a, d + c, nc);
    }
  }
}

/* The action that starts the way to `goal` (dist finite, not the player's
 * tile): walk; or face and clear what is in the way: a tree or rock (do),
 * a creature (hit it), an arrow (wait for it to fly on). */
static int walk_to(ag_crafter_agent *a, int goal) {
  int cell = goal, start = cell_of(a->px, a->py);
  while (a->parent[cell] != start && a->parent[cell] >= 0) cell = a->parent[cell];
  int x = cell / AREA, y = cell % AREA;
  int dir = 0;
  for (int k = 0; k < 4; k++)
    if (a->px + DX[k] == x && a->py + DY[k] == y) dir = k;
  bool facing = a->fx == DX[dir] && a->fy == DY[dir];
  if (a->obj[cell] == S_ARROW) return NOOP;
  if (a->obj[cell]) return facing ? DO : LEFT + dir; // a move into a creature only turns
  if (walkable(a->mat[cell])) return LEFT + dir;
  return facing ? DO : LEFT + dir;
}

/* ---- goals ------------------------------------------------------------------------ */

typedef bool (*stand_fn)(const ag_crafter_agent *a, int x, int y, int arg);

/* The reachable standing tile nearest to the player where ok() holds (scan
 * order on ties), or -1. */
static int nearest(const ag_crafter_agent *a, stand_fn ok, int arg) {
  int best = -1, best_d = INF;
  for (int cell = 0; cell < CELLS; cell++) {
    if (a->dist[cell] >= best_d) continue;
    if (!walkable(a->mat[cell]) && cell != cell_of(a->px, a->py)) continue;
    if (ok(a, cell / AREA, cell % AREA, arg)) {
      best = cell;
      best_d = a->dist[cell];
    }
  }
  return best;
}

static bool next_to_material(const ag_crafter_agent *a, int x, int y, int m) {
  for (int k = 0; k < 4; k++)
    if (mat_at(a, x + DX[k], y + DY[k]) == m && !obj_at(a, x + DX[k], y + DY[k])) return true;
  return false;
}
static bool next_to_object(const ag_crafter_agent *a, int x, int y, int id) {
  for (int k = 0; k < 4; k++)
    if (obj_at(a, x + DX[k], y + DY[k]) == id) return true;
  return false;
}
// make_* looks at the 3 x 3 around the player (empty at x = 0 or y = 0).
static bool near_material(const ag_crafter_agent *a, int x, int y, int m) {
  if (x < 1 || y < 1) return false;
  for (int i = -1; i <= 1; i++)
    for (int j = -1; j <= 1; j++)
      if (mat_at(a, x + i, y + j) == m) return true;
  return false;
}
static bool near_table(const ag_crafter_agent *a, int x, int y, int furnace) {
  return near_material(a, x, y, AG_CRAFTER_TABLE) &&
         (!furnace || near_material(a, x, y, AG_CRAFTER_FURNACE));
}
static bool frontier(const ag_crafter_agent *a, int x, int y, int unused) {
  (void)unused;
  for (int k = 0; k < 4; k++)
    if (inside(x + DX[k], y + DY[k]) && !a->mat[cell_of(x + DX[k], y + DY[k])]) return true;
  return false;
}
static bool next_to_cell(const ag_crafter_agent *a, int x, int y, int cell) {
  (void)a;
  int cx = cell / AREA, cy = cell % AREA;
  return iabs(cx - x) + iabs(cy - y) == 1;
}

/* Act on the 4-neighbour of the player that satisfies is_target: do/place
 * when facing it, else turn toward it (a move into a blocked tile only
 * turns). -1 when there is none. */
static int act_on(ag_crafter_agent *a, int action,
                  bool (*is_target)(const ag_crafter_agent *, int, int, int), int arg) {
  for (int pass = 0; pass < 2; pass++)
    for (int k = 0; k < 4; k++) {
      int x = a->px + DX[k], y = a->py + DY[k];
      bool facing = DX[k] == a->fx && DY[k] == a->fy;
      if ((pass == 0) != facing) continue; // the tile in front first
      if (!is_target(a, x, y, arg)) continue;
      if (facing) return action;
      // Turning is a move: only into a tile the player cannot enter.
      if (mat_at(a, x, y) == AG_CRAFTER_LAVA || free_tile(a, x, y)) continue;
      return LEFT + k;
    }
  return -1;
}

static bool is_material(const ag_crafter_agent *a, int x, int y, int m) {
  return mat_at(a, x, y) == m && !obj_at(a, x, y);
}
static bool is_object(const ag_crafter_agent *a, int x, int y, int id) {
  return obj_at(a, x, y) == id;
}
static bool is_cell(const ag_crafter_agent *a, int x, int y, int cell) {
  return inside(x, y) && cell_of(x, y) == cell;
}

/* Go next to the nearest tile of material m (or object id when m < 0) and
 * act on it; -1 when none is known and reachable. */
static int seek(ag_crafter_agent *a, int m, int id, int action) {
  int here = m >= 0 ? act_on(a, action, is_material, m) : act_on(a, action, is_object, id);
  if (here >= 0) return here;
  int goal = m >= 0 ? nearest(a, next_to_material, m) : nearest(a, next_to_object, id);
  if (goal < 0 || goal == cell_of(a->px, a->py)) return -1;
  return walk_to(a, goal);
}

static bool placeable(const ag_crafter_agent *a, int x, int y, int action) {
  int m = mat_at(a, x, y);
  if (obj_at(a, x, y) || m < 0) return false;
  if (action == PLACE_STONE) return walkable(m) || m == AG_CRAFTER_WATER || m == AG_CRAFTER_LAVA;
  if (action == PLACE_PLANT) return m == AG_CRAFTER_GRASS;
  return walkable(m);
}

/* Place in front; else step so that the tile ahead is placeable (facing
 * follows the step). keep_table: stay where a table is within the 3 x 3
 * (for a furnace next to it). -1 when nothing works from here. */
static int place_here(ag_crafter_agent *a, int action, bool keep_table) {
  bool ok_here = !keep_table || near_table(a, a->px, a->py, 0);
  if (ok_here && placeable(a, a->px + a->fx, a->py + a->fy, action)) return action;
  for (int k = 0; k < 4; k++) {
    int x = a->px + DX[k], y = a->py + DY[k];
    if (!free_tile(a, x, y)) continue;
    if (keep_table && !near_table(a, x, y, 0)) continue;
    if (placeable(a, x + DX[k], y + DY[k], action)) return LEFT + k;
  }
  return -1;
}

/* ---- shelter and sleep --------------------------------------------------------------- */

/* Tiles zombies could walk into or arrows fly over, connected to the
 * player's (objects are no walls): safe when at most 3 and all known. Zombies spawn on grass at
 * distance >= 6 only, so a closed pocket stays empty. */
static bool sheltered(const ag_crafter_agent *a) {
  int queue[8], n = 0, head = 0;
  queue[n++] = cell_of(a->px, a->py);
  while (head < n) {
    int cell = queue[head++], x = cell / AREA, y = cell % AREA;
    for (int k = 0; k < 4; k++) {
      int nx = x + DX[k], ny = y + DY[k];
      if (!inside(nx, ny)) continue;
      int nc = cell_of(nx, ny), m = a->mat[nc];
      if (m == 0) return false; // unknown
      if (!walkable(m) && m != AG_CRAFTER_WATER && m != AG_CRAFTER_LAVA) continue;
      bool seen = false;
      for (int i = 0; i < n; i++) seen |= queue[i] == nc;
      if (seen) continue;
      if (n == 3) return false;
      queue[n++] = nc;
    }
  }
  return true;
}

static bool diggable(const ag_crafter_agent *a, int m) {
  if (m == AG_CRAFTER_STONE || m == AG_CRAFTER_COAL) return a->inv[AG_CRAFTER_INV_WOOD_PICKAXE];
  if (m == AG_CRAFTER_IRON) return a->inv[AG_CRAFTER_INV_STONE_PICKAXE];
  if (m == AG_CRAFTER_DIAMOND) return a->inv[AG_CRAFTER_INV_IRON_PICKAXE];
  return m == AG_CRAFTER_TREE;
}

/* Stops zombies and arrows (arrows fly over water and lava). */
static bool wall(const ag_crafter_agent *a, int x, int y) {
  int m = mat_at(a, x, y);
  // Outside the world (-1) is a wall too.
  return m != 0 && !walkable(m) && m != AG_CRAFTER_WATER && m != AG_CRAFTER_LAVA;
}

/* A pocket: the player walks from the mouth O = E - d into E and on into
 * N = E + d (digging them out if they are rock or trees), walls the far end
 * N + d with a stone unless it is a wall already, steps back to E, now
 * facing O, and walls O. The sides of E and N must be walls already: a side
 * can never be walled from inside (facing it means arriving from the
 * opposite side, which then stays open). Returns the cost (the walk to O
 * plus digging), or -1. */
static int pocket_cost(const ag_crafter_agent *a, int e, int d) {
  int ex = e / AREA, ey = e % AREA, nx = ex + DX[d], ny = ey + DY[d], ox = ex - DX[d],
      oy = ey - DY[d];
  if (!inside(nx, ny) || !inside(ox, oy)) return -1;
  int o = cell_of(ox, oy), n = cell_of(nx, ny);
  if (!walkable(a->mat[o]) || a->dist[o] >= INF) return -1;
  int dig = 0, stone = a->inv[AG_CRAFTER_INV_STONE], stones_needed = 1;
  const int inner[2] = {e, n};
  for (int i = 0; i < 2; i++) {
    int m = a->mat[inner[i]];
    if (a->obj[inner[i]] && a->obj[inner[i]] != S_COW && a->obj[inner[i]] != S_ZOMBIE) return -1;
    if (walkable(m)) continue;
    if (!diggable(a, m) || m == 0) return -1;
    dig++;
    stone += m == AG_CRAFTER_STONE;
  }
  int px = DY[d] != 0, py = DX[d] != 0; // perpendicular
  if (!wall(a, ex + px, ey + py) || !wall(a, ex - px, ey - py) || !wall(a, nx + px, ny + py) ||
      !wall(a, nx - px, ny - py))
    return -1;
  int fx = nx + DX[d], fy = ny + DY[d]; // the far end
  if (!wall(a, fx, fy)) {
    int m = mat_at(a, fx, fy);
    if (m == 0 || obj_at(a, fx, fy)) return -1;
    stones_needed++;
  }
  if (stone < stones_needed) return -1;
  return a->dist[o] + 3 * dig;
}

static void choose_pocket(ag_crafter_agent *a) {
  int best = -1, best_cost = 60; // farther ones are not worth the walk
  for (int e = 0; e < CELLS; e++) {
    if (!a->mat[e]) continue;
    for (int d = 0; d < 4; d++) {
      int c = pocket_cost(a, e, d);
      if (c >= 0 && c < best_cost) {
        best_cost = c;
        best = e * 4 + d;
      }
    }
  }
  a->pocket = best;
}

/* The next move into the pocket and of walling it; -1 when the pocket no
 * longer works (choose another). */
static int enter_pocket(ag_crafter_agent *a, int rest_action) {
  int e = a->pocket / 4, d = a->pocket % 4;
  int ex = e / AREA, ey = e % AREA, nx = ex + DX[d], ny = ey + DY[d], ox = ex - DX[d],
      oy = ey - DY[d];
  int here = cell_of(a->px, a->py), n = cell_of(nx, ny), o = cell_of(ox, oy);
  bool face_in = a->fx == DX[d] && a->fy == DY[d], face_out = a->fx == -DX[d] && a->fy == -DY[d];
  if (here == n) {
    if (sheltered(a)) return rest_action;
    int fx = nx + DX[d], fy = ny + DY[d];
    if (!wall(a, fx, fy)) { // wall the far end first: we face it after walking in
      if (!face_in || !a->inv[AG_CRAFTER_INV_STONE]) return -1;
      int id = obj_at(a, fx, fy);
      return id == S_ARROW ? NOOP : id ? DO : PLACE_STONE;
    }
    if (a->obj[e]) return a->obj[e] == S_ARROW ? NOOP : (face_out ? DO : LEFT + (d ^ 1));
    return LEFT + (d ^ 1); // back to E, facing the mouth
  }
  if (here == e) {
    if (sheltered(a)) return rest_action;
    if (face_out) {
      if (a->obj[o]) return a->obj[o] == S_ARROW || a->obj[o] == S_PLANT ? NOOP : DO;
      if (walkable(a->mat[o])) return a->inv[AG_CRAFTER_INV_STONE] ? PLACE_STONE : -1;
      return -1; // the mouth is closed, yet not sheltered: the map was wrong
    }
    if (face_in && !walkable(a->mat[n])) return diggable(a, a->mat[n]) ? DO : -1;
    if (a->obj[n]) return face_in ? DO : LEFT + d;
    return LEFT + d;
  }
  if (pocket_cost(a, e, d) < 0) return -1;
  if (here == o) {
    if (a->obj[e]) return face_in ? DO : LEFT + d;
    if (!walkable(a->mat[e]) && face_in) return DO;
    return LEFT + d;
  }
  return a->dist[o] < INF ? walk_to(a, o) : -1;
}

/* Walls around the player with stones where it stands (no pocket in
 * sight): place ahead, or step out and back to face the far side of an
 * open pair. */
static int wall_in(ag_crafter_agent *a, int rest_action) {
  if (sheltered(a) || a->shelter_tries > 30 || a->inv[AG_CRAFTER_INV_STONE] == 0)
    return rest_action;
  a->shelter_tries++;
  if (a->return_dir >= 0) {
    int k = a->return_dir;
    a->return_dir = -1;
    if (free_tile(a, a->px + DX[k], a->py + DY[k])) return LEFT + k;
  }
  int fx = a->px + a->fx, fy = a->py + a->fy;
  if (free_tile(a, fx, fy)) return PLACE_STONE;
  bool open[4];
  for (int k = 0; k < 4; k++) open[k] = free_tile(a, a->px + DX[k], a->py + DY[k]);
  for (int k = 0; k < 4; k++)
    if (open[k] && open[k ^ 1]) {
      a->return_dir = k ^ 1;
      return LEFT + k;
    }
  return rest_action;
}

/* Rest: get into a closed pocket, then sleep (or wait out the night when
 * rested). -1 when there is no pocket at night: better stay awake then
 * (a sleeper takes 7 damage per zombie hit, an awake player 2). */
static int rest(ag_crafter_agent *a, bool night) {
  int rest_action = a->inv[AG_CRAFTER_INV_ENERGY] < 9 ? SLEEP : NOOP;
  if (sheltered(a)) return rest_action;
  for (int tries = 0; tries < 2; tries++) {
    if (a->pocket < 0) choose_pocket(a);
    if (a->pocket < 0) break;
    int act = enter_pocket(a, rest_action);
    if (act >= 0) return act;
    a->pocket = -1;
  }
  if ((night || a->inv[AG_CRAFTER_INV_ENERGY] > 2) && a->inv[AG_CRAFTER_INV_ENERGY] > 0) return -1;
  return wall_in(a, rest_action);
}

/* ---- the policy ---------------------------------------------------------------------- */

static int explore(ag_crafter_agent *a) {
  int goal = nearest(a, frontier, 0);
  if (goal >= 0 && goal != cell_of(a->px, a->py)) return walk_to(a, goal);
  // Nothing left to see from here: wander.
  for (int tries = 0; tries < 8; tries++) {
    int k = (int)ag_crafter_rng_randint(&a->rng, 0, 4);
    int x = a->px + DX[k], y = a->py + DY[k];
    if (mat_at(a, x, y) != AG_CRAFTER_LAVA) return LEFT + k;
  }
  return NOOP;
}

static bool have(const ag_crafter_agent *a, int item) { return a->inv[item] > 0; }

/* Craft `action` at a table (and furnace): here, or walk to one. -1 when
 * none is known and reachable. */
static int craft(ag_crafter_agent *a, int action, bool furnace) {
  if (near_table(a, a->px, a->py, furnace)) return action;
  int goal = nearest(a, near_table, furnace);
  if (goal < 0) return -1;
  // Far tables are not worth the walk when wood for a new one is at hand.
  if (!furnace && a->dist[goal] > 24 && a->inv[AG_CRAFTER_INV_WOOD] >= 3) return -1;
  return walk_to(a, goal);
}

/* ---- the plant --------------------------------------------------------------------- */

/* A site for a plant: a grass tile T walled on three sides, planted from S =
 * T - d, with Y = S - d and Z = Y - d free: after planting the player walks
 * S -> Y -> Z and back to Y, now facing S, and walls S with a stone. No
 * creature can then stand next to the plant (a cow, zombie or skeleton
 * there would eat it). Returns Y * 4 + d of the nearest, or -1. */
static int farm_site(const ag_crafter_agent *a) {
  int best = -1, best_d = 26;
  for (int t = 0; t < CELLS; t++) {
    if (a->mat[t] != AG_CRAFTER_GRASS || a->obj[t]) continue;
    int tx = t / AREA, ty = t % AREA;
    for (int d = 0; d < 4; d++) {
      int sx = tx - DX[d], sy = ty - DY[d];
      int yx = sx - DX[d], yy = sy - DY[d];
      if (!free_tile(a, sx, sy) || !free_tile(a, yx, yy) || !free_tile(a, yx - DX[d], yy - DY[d]))
        continue;
      bool walled = true;
      for (int k = 0; k < 4; k++)
        if (k != (d ^ 1)) {
          int m = mat_at(a, tx + DX[k], ty + DY[k]); // creatures walk on grass, sand, path only
          walled &= m != 0 && !walkable(m) && !obj_at(a, tx + DX[k], ty + DY[k]);
        }
      int y = cell_of(yx, yy);
      if (walled && a->dist[y] < best_d) {
        best_d = a->dist[y];
        best = y * 4 + d;
      }
    }
  }
  return best;
}

/* Plant a sapling at a walled site (or anywhere, once, for the
 * achievement), then wall it in. -1 when there is nothing to do. */
static int farm(ag_crafter_agent *a) {
  int32_t *inv = a->inv;
  int here = cell_of(a->px, a->py);
  if (a->plant_cell >= 0 && !a->plant_sealed) {
    int d = a->plant_dir, t = a->plant_cell;
    int sx = t / AREA - DX[d], sy = t % AREA - DY[d];
    int s_ = cell_of(sx, sy), y = cell_of(sx - DX[d], sy - DY[d]);
    int z = cell_of(sx - 2 * DX[d], sy - 2 * DY[d]);
    if (a->mat[s_] == AG_CRAFTER_STONE) {
      a->plant_sealed = true;
      return -1;
    }
    if (!inv[AG_CRAFTER_INV_STONE] || a->dist[y] > 12) return -1;
    if (here == s_) return LEFT + (d ^ 1);
    if (here == y) {
      if (a->fx == DX[d] && a->fy == DY[d]) return free_tile(a, sx, sy) ? PLACE_STONE : NOOP;
      return free_tile(a, z / AREA, z % AREA) ? LEFT + (d ^ 1) : -1;
    }
    if (here == z) return LEFT + d;
    return a->dist[z] < INF ? walk_to(a, z) : -1;
  }
  if (a->plant_cell != -1 || !inv[AG_CRAFTER_INV_SAPLING]) return -1;
  int site = farm_site(a);
  if (site >= 0) {
    int y = site / 4, d = site % 4;
    int sx = y / AREA + DX[d], sy = y % AREA + DY[d];
    if (here == cell_of(sx, sy) && a->fx == DX[d] && a->fy == DY[d]) {
      a->plant_cell = cell_of(sx + DX[d], sy + DY[d]);
      a->plant_dir = d;
      a->plant_grown = 0;
      a->plant_sealed = false;
      return PLACE_PLANT;
    }
    if (here == y) return LEFT + d; // into S, facing T
    return walk_to(a, y);
  }
  // No site in reach: plant in front for the achievement (unprotected).
  int tx = a->px + a->fx, ty = a->py + a->fy;
  if (!a->ach[AG_CRAFTER_ACH_PLACE_PLANT] && placeable(a, tx, ty, PLACE_PLANT)) {
    a->plant_cell = cell_of(tx, ty);
    a->plant_dir = -1;
    a->plant_grown = 0;
    a->plant_sealed = true; // no way to wall it
    return PLACE_PLANT;
  }
  return -1;
}

/* Counts the plant's growth and eats it when ripe. */
static int harvest(ag_crafter_agent *a) {
  int t = a->plant_cell;
  if (t < 0) return -1;
  int tx = t / AREA, ty = t % AREA;
  if (iabs(tx - a->px) <= VW / 2 && iabs(ty - a->py) <= VH / 2 && a->obj[t] != S_PLANT) {
    a->plant_cell = -1; // gone: eaten by a creature
    return -1;
  }
  if (a->plant_grown <= 300) return -1;
  if (a->ach[AG_CRAFTER_ACH_EAT_PLANT] && a->inv[AG_CRAFTER_INV_FOOD] > 5) return -1;
  int act = act_on(a, DO, is_cell, t);
  if (act >= 0) {
    if (act == DO) {
      a->plant_grown = -1; // eaten: it starts again from 0 (counted after this step)
      if (a->plant_dir >= 0) a->plant_sealed = false;
    }
    return act;
  }
  int goal = nearest(a, next_to_cell, t);
  if (goal >= 0 && goal != cell_of(a->px, a->py) && a->dist[goal] <= 40) return walk_to(a, goal);
  return -1;
}

static int scripted_act(ag_crafter_agent *a) {
  int32_t *inv = a->inv;
  int px = a->px, py = a->py;
  plan(a);

  // 1. Fight whatever attacks from next door.
  int act = act_on(a, DO, is_object, S_ZOMBIE);
  if (act < 0) act = act_on(a, DO, is_object, S_SKELETON);
  if (act >= 0) return act;

  // 2. Rest at night or when tired, in a walled pocket (leave it for water
  // or food only when they run low).
  bool night = a->daylight < 0.5;
  bool thirsty = inv[AG_CRAFTER_INV_DRINK] <= 1, starving = inv[AG_CRAFTER_INV_FOOD] <= 1;
  bool hurt = inv[AG_CRAFTER_INV_HEALTH] <= 4 || (a->resting && inv[AG_CRAFTER_INV_HEALTH] < 7);
  bool resting = (night || hurt || inv[AG_CRAFTER_INV_ENERGY] <= 2 ||
                  (a->resting && inv[AG_CRAFTER_INV_ENERGY] < 9)) &&
                 !thirsty && !starving;
  if (resting && !a->resting) {
    a->pocket = -1;
    a->shelter_tries = 0;
    a->return_dir = -1;
  }
  a->resting = resting;
  if (resting) {
    // A zombie in sight comes for us: meet it awake.
    int z = nearest(a, next_to_object, S_ZOMBIE);
    if (z >= 0 && a->dist[z] <= 4 && !sheltered(a) && z != cell_of(px, py)) return walk_to(a, z);
    if ((act = rest(a, night)) >= 0) return act;
  }

  // 3. Drink and eat; top up in the evening, before the night.
  int phase = (int)(a->step % 300);
  bool evening = phase >= 80 && phase < 150; // daylight falls below 0.5 at 148
  if (inv[AG_CRAFTER_INV_DRINK] <= 4 || (evening && inv[AG_CRAFTER_INV_DRINK] <= 6))
    a->drinking = true;
  if (inv[AG_CRAFTER_INV_DRINK] >= 9) a->drinking = false;
  if (a->drinking) {
    act = seek(a, AG_CRAFTER_WATER, 0, DO);
    if (act >= 0) return act;
    if (inv[AG_CRAFTER_INV_DRINK] <= 3) return explore(a);
  }
  bool hungry = inv[AG_CRAFTER_INV_FOOD] <= 5 || (evening && inv[AG_CRAFTER_INV_FOOD] <= 6);
  if (hungry || !a->ach[AG_CRAFTER_ACH_EAT_COW]) {
    if ((act = act_on(a, DO, is_object, S_COW)) >= 0) return act;
    // A first cow only when it is close; a hungry agent goes further.
    int goal = nearest(a, next_to_object, S_COW);
    int limit = inv[AG_CRAFTER_INV_FOOD] <= 3 ? INF : hungry ? 30 : 8;
    if (goal >= 0 && goal != cell_of(px, py) && a->dist[goal] <= limit) return walk_to(a, goal);
    if (inv[AG_CRAFTER_INV_FOOD] <= 3) {
      // Back to where the last cow was seen, then look around.
      int c = a->cow_cell;
      if (c >= 0 && a->step - a->cow_step < 300 && a->dist[c] < INF && c != cell_of(px, py) &&
          iabs(c / AREA - px) + iabs(c % AREA - py) > 2)
        return walk_to(a, c);
      return explore(a);
    }
  }
  if (!a->ach[AG_CRAFTER_ACH_COLLECT_DRINK] || inv[AG_CRAFTER_INV_DRINK] < 7) {
    int goal = nearest(a, next_to_material, AG_CRAFTER_WATER);
    if (goal >= 0 && a->dist[goal] <= 6) {
      act = seek(a, AG_CRAFTER_WATER, 0, DO);
      if (act >= 0) return act;
    }
  }

  // 4. Its plant, when ripe.
  if ((act = harvest(a)) >= 0) return act;

  // 5. Tools and materials, in the order of the tech tree.
  int wood = inv[AG_CRAFTER_INV_WOOD], stone = inv[AG_CRAFTER_INV_STONE];
  int coal = inv[AG_CRAFTER_INV_COAL], iron = inv[AG_CRAFTER_INV_IRON];
  bool wp = have(a, AG_CRAFTER_INV_WOOD_PICKAXE), sp = have(a, AG_CRAFTER_INV_STONE_PICKAXE);
  bool ip = have(a, AG_CRAFTER_INV_IRON_PICKAXE), ws = have(a, AG_CRAFTER_INV_WOOD_SWORD);
  bool ss = have(a, AG_CRAFTER_INV_STONE_SWORD), is = have(a, AG_CRAFTER_INV_IRON_SWORD);
  int table_goal = nearest(a, near_table, 0);
  bool table_near = table_goal >= 0 && a->dist[table_goal] <= 24;

  // Place a table when a recipe is affordable and none is near.
  int wood_tools = !wp + !ws + (!sp) + (!ss);
  if (!table_near && wood >= 2 + (wood_tools > 0) &&
      (!wp || !ws || (!sp && stone) || (!ss && stone))) {
    act = place_here(a, PLACE_TABLE, false);
    if (act >= 0) return act;
  }
  if (!wp && wood >= 1 && (act = craft(a, MAKE_WOOD_PICKAXE, false)) >= 0) return act;
  if (!ws && wood >= 1 && wp && (act = craft(a, MAKE_WOOD_SWORD, false)) >= 0) return act;
  if (!sp && wood >= 1 && stone >= 1 && (act = craft(a, MAKE_STONE_PICKAXE, false)) >= 0)
    return act;
  if (!ss && sp && wood >= 1 && stone >= 1 && (act = craft(a, MAKE_STONE_SWORD, false)) >= 0)
    return act;
  // The furnace goes next to a table, so iron tools can be made there.
  bool furnace_near = nearest(a, near_table, 1) >= 0;
  if (sp && !furnace_near && stone >= 4) {
    if (near_table(a, px, py, 0)) {
      act = place_here(a, PLACE_FURNACE, true);
      if (act >= 0) return act;
    }
    int goal = nearest(a, near_table, 0);
    if (goal >= 0 && goal != cell_of(px, py) && a->dist[goal] <= 40) return walk_to(a, goal);
    if (wood >= 2) {
      act = place_here(a, PLACE_TABLE, false);
      if (act >= 0) return act;
    }
  }
  if (furnace_near && wood >= 1 && coal >= 1 && iron >= 1) {
    if (!ip && (act = craft(a, MAKE_IRON_PICKAXE, true)) >= 0) return act;
    if (ip && !is && (act = craft(a, MAKE_IRON_SWORD, true)) >= 0) return act;
  }
  // Place a stone once it has one to spare (the achievement), and plant.
  if (stone >= 1 && !a->ach[AG_CRAFTER_ACH_PLACE_STONE]) {
    act = place_here(a, PLACE_STONE, false);
    if (act >= 0) return act;
  }
  if ((act = farm(a)) >= 0) return act;

  // What to gather: the first missing input of the tech tree.
  int wood_need = (!wp) + (!ws) + (!sp) + (!ss) + (!ip) + (!is) + (table_near ? 0 : 2);
  if (wood_need > 6) wood_need = 6;
  int stone_need = !sp + !ss + (furnace_near ? 0 : 4) + 2; // and 2 for the shelter
  if (stone_need > 9) stone_need = 9;
  if (wood < wood_need && (wood < 3 || !wp)) {
    act = seek(a, AG_CRAFTER_TREE, 0, DO);
    if (act >= 0) return act;
  }
  if (wp) {
    // Ore next door is always worth taking.
    if (sp && !ip && iron < 2 && (act = act_on(a, DO, is_material, AG_CRAFTER_IRON)) >= 0)
      return act;
    if (ip && (act = act_on(a, DO, is_material, AG_CRAFTER_DIAMOND)) >= 0) return act;
    if (coal < 2 && (act = act_on(a, DO, is_material, AG_CRAFTER_COAL)) >= 0) return act;
    if (stone < stone_need) {
      act = seek(a, AG_CRAFTER_STONE, 0, DO);
      if (act >= 0) return act;
    }
    if (coal < 1 + !is) {
      act = seek(a, AG_CRAFTER_COAL, 0, DO);
      if (act >= 0) return act;
    }
    if (sp && iron < (!ip) + (!is)) {
      act = seek(a, AG_CRAFTER_IRON, 0, DO);
      if (act >= 0) return act;
    }
    if (ip) {
      act = seek(a, AG_CRAFTER_DIAMOND, 0, DO);
      if (act >= 0) return act;
    }
  }
  if (wood < wood_need) {
    act = seek(a, AG_CRAFTER_TREE, 0, DO);
    if (act >= 0) return act;
  }
  // A sapling: grass gives one with probability 0.1 per try.
  if (a->plant_cell < 0 && inv[AG_CRAFTER_INV_SAPLING] == 0 && a->sapling_tries < 60 &&
      placeable(a, px + a->fx, py + a->fy, PLACE_PLANT)) {
    a->sapling_tries++;
    return DO;
  }
  return explore(a);
}

static void new_episode(ag_crafter_agent *a, const ag_crafter_env *env) {
  a->env = env;
  a->episode = env->episode;
  memset(a->mat, 0, sizeof a->mat);
  a->drinking = a->resting = false;
  a->pocket = -1;
  a->shelter_tries = 0;
  a->return_dir = -1;
  a->plant_cell = -1;
  a->plant_dir = 0;
  a->plant_grown = 0;
  a->plant_sealed = false;
  a->cow_cell = -1;
  a->cow_step = 0;
  a->sapling_tries = 0;
  a->stuck = 0;
  a->last_px = a->last_py = -1;
  a->last_action = NOOP;
  // Tie-breaks of the episode depend on the seed and the episode only.
  ag_crafter_rng_seed(&a->rng, (uint32_t)((uint64_t)a->seed * 1000003u + (uint64_t)env->episode));
}

int ag_crafter_agent_act(ag_crafter_agent *a, const ag_crafter_env *env) {
  if (!a || !env) {
    ag_error_set(AG_ERR_INVALID, "crafter: agent or env is NULL");
    return -1;
  }
  if (!env->started) {
    ag_error_set(AG_ERR_INVALID, "crafter: agent asked to act before reset");
    return -1;
  }
  if (a->kind == AG_CRAFTER_AGENT_RANDOM)
    return (int)ag_crafter_rng_randint(&a->rng, 0, AG_CRAFTER_ACTION_COUNT);
  if (env != a->env || env->episode != a->episode || env->step < a->step) new_episode(a, env);
  observe(a, env);
  // The plant grows in every step it is updated: within 18 of the player.
  if (a->plant_cell >= 0 &&
      iabs(a->plant_cell / AREA - a->px) + iabs(a->plant_cell % AREA - a->py) < 18)
    a->plant_grown++;
  ag_crafter_player_state ps;
  ag_crafter_get_player_state(env, &ps);
  int action;
  if (ps.sleeping) {
    action = NOOP; // ignored until it wakes
  } else {
    action = scripted_act(a);
  }
  // Unstick: the same move that did not move us, many times over.
  if (a->px == a->last_px && a->py == a->last_py && action == a->last_action && action >= LEFT &&
      action <= DOWN && !free_tile(a, a->px + DX[action - LEFT], a->py + DY[action - LEFT])) {
    // Turning into a blocked tile is fine once; repeating it means stuck.
    if (++a->stuck > 3) {
      a->stuck = 0;
      int k = (int)ag_crafter_rng_randint(&a->rng, 0, 4);
      if (mat_at(a, a->px + DX[k], a->py + DY[k]) != AG_CRAFTER_LAVA) action = LEFT + k;
    }
  } else {
    a->stuck = 0;
  }
  a->last_px = a->px;
  a->last_py = a->py;
  a->last_action = action;
  return action;
}
