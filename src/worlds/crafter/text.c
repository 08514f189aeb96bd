/* The text observation for language-model agents, in the format of BALROG's
 * Crafter language wrapper (balrog-ai/BALROG, balrog/environments/crafter/
 * env.py at 393505a: describe_frame, describe_env, describe_inventory,
 * describe_status, describe_loc_old/_precise; the defaults are those of its
 * config.yaml). The facts it follows: the view is the 9 x 7 local view,
 * scanned column by column (x outer, y inner); the player's tile is skipped;
 * with unique items each kind keeps its tile with the smallest Manhattan
 * distance (the first in scan order on ties) and kinds are listed in the
 * order of their first tile in the scan. docs/crafter.md says where we
 * differ (the world's edge). */
#include "worlds/crafter/crafter_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define VW AG_CRAFTER_VIEW_W
#define VH AG_CRAFTER_VIEW_H

void ag_crafter_get_player_state(const ag_crafter_env *env, ag_crafter_player_state *out) {
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!env || !env->started) return;
  const ag_crafter_object *p = &env->world.objects[AG_CRAFTER_PLAYER_ID];
  out->facing[0] = p->face_x;
  out->facing[1] = p->face_y;
  out->sleeping = p->sleeping != 0;
  out->daylight = env->world.daylight;
}

/* BALROG's id_to_item: material names, then the object classes lowercased. */
static const char *semantic_name(int id) {
  static const char *const OBJECTS[] = {"player", "cow", "zombie", "skeleton", "arrow", "plant"};
  if (id > 0 && id < AG_CRAFTER_SEMANTIC_OBJECT_BASE) return ag_crafter_material_name(id);
  id -= AG_CRAFTER_SEMANTIC_OBJECT_BASE;
  return id >= 0 && id < 6 ? OBJECTS[id] : "unknown";
}

static bool is_ground(int id) {
  return id == AG_CRAFTER_GRASS || id == AG_CRAFTER_SAND || id == AG_CRAFTER_PATH;
}

/* An appender with snprintf semantics: len counts everything, buf keeps
 * what fits. */
typedef struct text_out {
  char *buf;
  size_t size, len;
} text_out;

__attribute__((format(printf, 2, 3))) static void put(text_out *t, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n <= 0) return;
  size_t k = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
  if (t->size > t->len + 1) {
    size_t room = t->size - 1 - t->len;
    memcpy(t->buf + t->len, tmp, k < room ? k : room);
  }
  t->len += k;
}

/* describe_loc_old: "3 steps to your north-east"; describe_loc_precise:
 * "1 step north and 2 steps east". dy < 0 is north (up). */
static void put_location(text_out *t, int dx, int dy, bool precise) {
  const char *ns = dy < 0 ? "north" : dy > 0 ? "south" : NULL;
  const char *we = dx < 0 ? "west" : dx > 0 ? "east" : NULL;
  int ax = dx < 0 ? -dx : dx, ay = dy < 0 ? -dy : dy;
  if (precise) {
    if (ns) put(t, "%d step%s %s", ay, ay > 1 ? "s" : "", ns);
    if (ns && we) put(t, " and ");
    if (we) put(t, "%d step%s %s", ax, ax > 1 ? "s" : "", we);
    if (!ns && !we) put(t, "at your location");
    return;
  }
  int d = ax + ay;
  put(t, "%d step%s to your %s%s%s", d, d > 1 ? "s" : "", ns ? ns : "", ns && we ? "-" : "",
      we ? we : "");
}

static void put_status(text_out *t, const int32_t *inv) {
  static const char *const VITALS[4] = {"health", "food", "drink", "energy"};
  put(t, "Your status:");
  for (int i = 0; i < 4; i++) put(t, "\n- %s: %d/9", VITALS[i], inv[i]);
  put(t, "\n\n");
  bool any = false;
  for (int i = 4; i < AG_CRAFTER_ITEM_COUNT; i++) {
    if (!inv[i]) continue;
    put(t, "%s- %s: %d", any ? "\n" : "Your inventory:\n", ag_crafter_item_name(i), inv[i]);
    any = true;
  }
  if (!any) put(t, "You have nothing in your inventory.");
}

static void put_scene(text_out *t, const ag_crafter_env *env, const ag_crafter_text_options *o) {
  const ag_crafter_object *p = &env->world.objects[AG_CRAFTER_PLAYER_ID];
  // describe_status, then describe_frame's own "\n\n", kept by strip().
  if (p->sleeping)
    put(t, "You are sleeping, and will not be able take actions until energy is full.\n\n\n\n");
  else if (env->world.inventory[AG_CRAFTER_INV_HEALTH] <= 0)
    put(t, "You died.\n\n\n\n");

  uint8_t view[VW * VH]; // [row * 9 + col], 0 outside the world
  ag_crafter_observe_semantic(env, view, NULL);
  const int cx = VW / 2, cy = VH / 2;
  // Water is an edge where a 4-neighbour inside the view (and the world) is
  // something else: ndimage.binary_dilation with a zero border.
  bool edge[VW * VH] = {0};
  for (int r = 0; r < VH; r++)
    for (int c = 0; c < VW; c++) {
      if (view[r * VW + c] != AG_CRAFTER_WATER) continue;
      static const int D[4][2] = {{-1, 0}, {1, 0}, {0, -1}, {0, 1}};
      for (int k = 0; k < 4; k++) {
        int rr = r + D[k][1], cc = c + D[k][0];
        if (rr < 0 || cc < 0 || rr >= VH || cc >= VW) continue;
        int n = view[rr * VW + cc];
        if (n != 0 && n != AG_CRAFTER_WATER) edge[r * VW + c] = true;
      }
    }
  // Tiles in BALROG's scan order: x (column) outer, y (row) inner.
  int kind_order[32], kinds = 0;
  int best[32], best_dist[32];
  int listed[VW * VH], n_listed = 0;
  for (int i = 0; i < 32; i++) best[i] = -1;
  const int player_id = AG_CRAFTER_SEMANTIC_OBJECT_BASE; // Player = 13
  for (int c = 0; c < VW; c++)
    for (int r = 0; r < VH; r++) {
      int id = view[r * VW + c];
      if (id == 0 || id == player_id) continue;
      if (o->water_edges_only && id == AG_CRAFTER_WATER && !edge[r * VW + c]) continue;
      if (o->skip_ground && is_ground(id)) continue;
      if (o->all_tiles) {
        listed[n_listed++] = r * VW + c;
        continue;
      }
      int dist = (c > cx ? c - cx : cx - c) + (r > cy ? r - cy : cy - r);
      if (best[id] < 0) kind_order[kinds++] = id;
      if (best[id] < 0 || dist < best_dist[id]) {
        best[id] = r * VW + c;
        best_dist[id] = dist;
      }
    }
  if (!o->all_tiles)
    for (int k = 0; k < kinds; k++) listed[n_listed++] = best[kind_order[k]];
  if (n_listed == 0) {
    put(t, "You see nothing away from you.");
  } else {
    put(t, "You see:");
    for (int k = 0; k < n_listed; k++) {
      int cell = listed[k];
      put(t, "\n- %s ", semantic_name(view[cell]));
      put_location(t, cell % VW - cx, cell / VW - cy, o->precise_location);
    }
  }
  // The tile in front; outside the world it is "nothing" (BALROG's slice
  // stops at the world's edge, so the target falls outside it).
  int fc = cx + p->face_x, fr = cy + p->face_y;
  int front = view[fr * VW + fc];
  const char *name =
      front == 0 || (o->skip_ground && is_ground(front)) ? "nothing" : semantic_name(front);
  put(t, "\n\nYou face %s at your front.", name);
}

ag_status ag_crafter_observe_text(const ag_crafter_env *env, const ag_crafter_text_options *options,
                                  char *buf, size_t size, size_t *length) {
  if (length) *length = 0;
  if (buf && size) buf[0] = '\0';
  if (!env) return ag_error_set(AG_ERR_INVALID, "crafter: observe_text: env is NULL");
  if (!env->started) return ag_error_set(AG_ERR_INVALID, "crafter: observe_text before reset");
  if (!buf && size) return ag_error_set(AG_ERR_INVALID, "crafter: observe_text: buf is NULL");
  ag_crafter_text_options o = {0};
  if (options) o = *options;
  if (o.parts & ~(AG_CRAFTER_TEXT_STATUS | AG_CRAFTER_TEXT_SCENE))
    return ag_error_set(AG_ERR_INVALID, "crafter: observe_text: unknown parts bits 0x%x", o.parts);
  if (!o.parts) o.parts = AG_CRAFTER_TEXT_STATUS | AG_CRAFTER_TEXT_SCENE;
  text_out t = {.buf = buf, .size = size, .len = 0};
  if (o.parts & AG_CRAFTER_TEXT_STATUS) put_status(&t, env->world.inventory);
  if (o.parts == (AG_CRAFTER_TEXT_STATUS | AG_CRAFTER_TEXT_SCENE)) put(&t, "\n");
  if (o.parts & AG_CRAFTER_TEXT_SCENE) put_scene(&t, env, &o);
  if (buf && size) buf[t.len < size ? t.len : size - 1] = '\0';
  if (length) *length = t.len;
  return AG_OK;
}
