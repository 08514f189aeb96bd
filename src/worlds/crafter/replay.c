/* Replaying the golden files recorded from the original (the format of
 * ../shared/data/crafter/golden/README.md): the recorded actions are stepped
 * and every recorded field is compared, the pixel-observation hashes (`obs`,
 * `obs_sha256_at_reset`) included. */
#include "worlds/crafter/crafter_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct replay {
  const char *path;
  ag_crafter_replay_report *rep;
  ag_crafter_env *env;
  int64_t t; /* the record being compared */
  bool failed;
  /* The record's `ev` list (NULL: none) and how many of its events came so far. */
  json_t *ev;
  size_t ev_seen;
  /* Impose the logged despawn orders: the next despawn_draw of `ev`. */
  bool impose;
  size_t draw_seen;
  const ag_crafter_textures *tex; /* for the observation hashes */
} replay;

static void fail(replay *rp, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(replay *rp, const char *field, const char *fmt, ...) {
  if (rp->failed) return;
  rp->failed = true;
  rp->rep->match = false;
  char detail[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  snprintf(rp->rep->mismatch, sizeof rp->rep->mismatch, "%s: episode %lld step %lld: %s: %s",
           rp->path, (long long)(rp->env ? rp->env->episode : 0), (long long)rp->t, field, detail);
}

#define FAIL_RETURN(...)                                                                           \
  do {                                                                                             \
    fail(__VA_ARGS__);                                                                             \
    return;                                                                                        \
  } while (0)

// A JSON value as compact text for messages (static buffer, one at a time).
static const char *show(const json_t *v) {
  static char buf[256];
  if (!v) return "(missing)";
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  snprintf(buf, sizeof buf, "%s", text ? text : "?");
  free(text);
  return buf;
}

static void cmp_int(replay *rp, const char *field, const json_t *exp, long long got) {
  if (!json_is_number(exp) || json_number_value(exp) != (double)got)
    fail(rp, field, "expected %s, got %lld", show(exp), got);
}

static void cmp_real(replay *rp, const char *field, const json_t *exp, double got) {
  if (!json_is_number(exp) || json_number_value(exp) != got)
    fail(rp, field, "expected %s, got %.17g", show(exp), got);
}

static void cmp_bool(replay *rp, const char *field, const json_t *exp, bool got) {
  if (!json_is_boolean(exp) || json_is_true(exp) != got)
    fail(rp, field, "expected %s, got %s", show(exp), got ? "true" : "false");
}

static void cmp_str(replay *rp, const char *field, const json_t *exp, const char *got) {
  if (!json_is_string(exp) || strcmp(json_string_value(exp), got) != 0)
    fail(rp, field, "expected %s, got \"%s\"", show(exp), got);
}

static void cmp_pair(replay *rp, const char *field, const json_t *exp, int a, int b) {
  if (!json_is_array(exp) || json_array_size(exp) != 2 ||
      json_number_value(json_array_get(exp, 0)) != a ||
      json_number_value(json_array_get(exp, 1)) != b)
    fail(rp, field, "expected %s, got [%d, %d]", show(exp), a, b);
}

/* ---- objects and chunks ------------------------------------------------------- */

static void cmp_objects(replay *rp, const json_t *exp) {
  const ag_crafter_env *e = rp->env;
  const ag_crafter_world *w = &e->world;
  if (!json_is_array(exp)) FAIL_RETURN(rp, "objects", "expected a list, got %s", show(exp));
  size_t i = 0;
  for (uint32_t id = 1; id < w->object_count && !rp->failed; id++) {
    const ag_crafter_object *o = &w->objects[id];
    if (!o->type) continue;
    const json_t *x = json_array_get(exp, i++);
    char field[64];
    snprintf(field, sizeof field, "objects[%zu]", i - 1);
    if (!x) FAIL_RETURN(rp, field, "expected no more objects, got id %u", id);
    cmp_int(rp, field, json_object_get(x, "id"), id);
    cmp_str(rp, field, json_object_get(x, "type"), ag_crafter_object_type_name(o->type));
    cmp_pair(rp, field, json_object_get(x, "pos"), o->x, o->y);
    cmp_int(rp, field, json_object_get(x, "health"), ag_crafter_object_health(e, id));
    switch (o->type) {
    case AG_CRAFTER_PLAYER:
      cmp_pair(rp, field, json_object_get(x, "facing"), o->face_x, o->face_y);
      cmp_bool(rp, field, json_object_get(x, "sleeping"), o->sleeping);
      break;
    case AG_CRAFTER_ZOMBIE: cmp_int(rp, field, json_object_get(x, "cooldown"), o->cooldown); break;
    case AG_CRAFTER_SKELETON: cmp_int(rp, field, json_object_get(x, "reload"), o->reload); break;
    case AG_CRAFTER_ARROW:
      cmp_pair(rp, field, json_object_get(x, "facing"), o->face_x, o->face_y);
      break;
    case AG_CRAFTER_PLANT: cmp_int(rp, field, json_object_get(x, "grown"), o->grown); break;
    default: break;
    }
  }
  if (!rp->failed && i != json_array_size(exp))
    fail(rp, "objects", "expected %zu objects, got %zu", json_array_size(exp), i);
}

static void cmp_chunks(replay *rp, const json_t *exp) {
  const ag_crafter_world *w = &rp->env->world;
  if (!json_is_array(exp) || json_array_size(exp) != (size_t)w->chunk_count)
    FAIL_RETURN(rp, "chunks", "expected %zu chunks, got %d", json_array_size(exp), w->chunk_count);
  for (int c = 0; c < w->chunk_count; c++) {
    int key[4];
    ag_crafter_chunk_key(w->chunk_order[c], key);
    const json_t *x = json_array_get(exp, (size_t)c);
    for (int k = 0; k < 4; k++)
      if (json_number_value(json_array_get(x, (size_t)k)) != key[k])
        FAIL_RETURN(rp, "chunks", "chunk %d: expected %s, got [%d, %d, %d, %d]", c, show(x), key[0],
                    key[1], key[2], key[3]);
  }
}

static void cmp_inventory(replay *rp, const char *field, const json_t *exp) {
  for (int i = 0; i < AG_CRAFTER_ITEM_COUNT; i++) {
    char f[64];
    snprintf(f, sizeof f, "%s.%s", field, ag_crafter_item_name(i));
    cmp_int(rp, f, json_object_get(exp, ag_crafter_item_name(i)), rp->env->world.inventory[i]);
  }
  if (json_object_size(exp) != AG_CRAFTER_ITEM_COUNT)
    fail(rp, field, "expected %zu items, got %d", json_object_size(exp), AG_CRAFTER_ITEM_COUNT);
}

/* ---- events --------------------------------------------------------------------- */

static const char *EV_NAMES[] = {"add", "remove", "despawn_draw"};

static void on_event(void *ctx, const ag_crafter_event *ev) {
  replay *rp = ctx;
  if (rp->failed) return;
  const json_t *x = rp->ev ? json_array_get(rp->ev, rp->ev_seen) : NULL;
  rp->ev_seen++;
  char field[32];
  snprintf(field, sizeof field, "ev[%zu]", rp->ev_seen - 1);
  if (!x)
    FAIL_RETURN(rp, field, "expected no event, got %s of %s id %u", EV_NAMES[ev->kind],
                ag_crafter_object_type_name(ev->type), ev->id);
  cmp_str(rp, field, json_object_get(x, "ev"), EV_NAMES[ev->kind]);
  cmp_str(rp, field, json_object_get(x, "type"), ag_crafter_object_type_name(ev->type));
  if (ev->kind == AG_CRAFTER_EV_DESPAWN_DRAW) {
    const json_t *chunk = json_object_get(x, "chunk");
    for (int k = 0; k < 4; k++)
      if (json_number_value(json_array_get(chunk, (size_t)k)) != ev->chunk[k])
        FAIL_RETURN(rp, field, "chunk: expected %s, got [%d, %d, %d, %d]", show(chunk),
                    ev->chunk[0], ev->chunk[1], ev->chunk[2], ev->chunk[3]);
    const json_t *order = json_object_get(x, "order");
    bool same = json_array_size(order) == (size_t)ev->n;
    for (int i = 0; same && i < ev->n; i++)
      same = json_number_value(json_array_get(order, (size_t)i)) == ev->order[i];
    if (!same) {
      char got[256];
      size_t len = 0;
      for (int i = 0; i < ev->n && len < sizeof got; i++)
        len += (size_t)snprintf(got + len, sizeof got - len, "%s%u", i ? "," : "", ev->order[i]);
      FAIL_RETURN(rp, field, "order: expected %s, got [%s]", show(order), got);
    }
    cmp_int(rp, field, json_object_get(x, "k"), ev->k);
    cmp_int(rp, field, json_object_get(x, "chosen"), ev->order[ev->k]);
  } else {
    cmp_int(rp, field, json_object_get(x, "id"), ev->id);
    cmp_pair(rp, field, json_object_get(x, "pos"), ev->x, ev->y);
    cmp_str(rp, field, json_object_get(x, "by"), ev->by);
  }
}

// Imposes the order the file logged for this despawn draw (orig/ files).
static void despawn_hook(void *ctx, const int chunk[4], int type, uint32_t *cand, int n) {
  (void)chunk;
  (void)type;
  replay *rp = ctx;
  const json_t *x = NULL;
  while (rp->ev && rp->draw_seen < json_array_size(rp->ev)) {
    const json_t *y = json_array_get(rp->ev, rp->draw_seen++);
    if (strcmp(json_string_value(json_object_get(y, "ev"))
                   ? json_string_value(json_object_get(y, "ev"))
                   : "",
               "despawn_draw") == 0) {
      x = y;
      break;
    }
  }
  const json_t *order = x ? json_object_get(x, "order") : NULL;
  if (!order || json_array_size(order) != (size_t)n)
    FAIL_RETURN(rp, "despawn order", "expected %s, got %d candidates", show(order), n);
  for (int i = 0; i < n; i++) {
    uint32_t id = (uint32_t)json_number_value(json_array_get(order, (size_t)i));
    bool found = false;
    for (int j = 0; j < n; j++) found |= cand[j] == id;
    if (!found) FAIL_RETURN(rp, "despawn order", "logged id %u is not a candidate", id);
  }
  for (int i = 0; i < n; i++)
    cand[i] = (uint32_t)json_number_value(json_array_get(order, (size_t)i));
}

/* ---- records ---------------------------------------------------------------------- */

// The pixel observation's hash, as long as the recorded one (16 or 64 digits).
static void cmp_obs(replay *rp, const char *field, const json_t *exp) {
  if (!exp) return;
  uint8_t rgb[AG_CRAFTER_OBS_BYTES];
  if (ag_crafter_observe_pixels(rp->env, rp->tex, rgb)) {
    fail(rp, field, "cannot render: %s", ag_error_message());
    return;
  }
  char hex[65];
  size_t len = json_string_length(exp);
  ag_crafter_sha256_hex(rgb, sizeof rgb, len == 64 ? 64 : 16, hex);
  cmp_str(rp, field, exp, hex);
  rp->rep->frames++;
}

static void cmp_state(replay *rp, const json_t *rec) {
  ag_crafter_env *e = rp->env;
  const ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
  cmp_pair(rp, "pos", json_object_get(rec, "pos"), p->x, p->y);
  cmp_pair(rp, "facing", json_object_get(rec, "facing"), p->face_x, p->face_y);
  cmp_inventory(rp, "inv", json_object_get(rec, "inv"));
  cmp_real(rp, "hunger", json_object_get(rec, "hunger"), e->hunger);
  cmp_real(rp, "thirst", json_object_get(rec, "thirst"), e->thirst);
  cmp_real(rp, "fatigue", json_object_get(rec, "fatigue"), e->fatigue);
  cmp_real(rp, "recover", json_object_get(rec, "recover"), e->recover);
  cmp_bool(rp, "sleeping", json_object_get(rec, "sleeping"), p->sleeping);
  // ach: the sorted unlocked names; ach_counts: the non-zero counts.
  const json_t *ach = json_object_get(rec, "ach"), *counts = json_object_get(rec, "ach_counts");
  size_t n_ach = 0, n_counts = 0;
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++) {
    const char *name = ag_crafter_achievement_name(a);
    if (e->unlocked & (1u << a)) {
      const json_t *x = json_array_get(ach, n_ach++);
      if (!x || strcmp(json_string_value(x) ? json_string_value(x) : "", name) != 0)
        fail(rp, "ach", "expected %s, got %s unlocked", show(ach), name);
    }
    if (e->achievements[a]) {
      n_counts++;
      char f[64];
      snprintf(f, sizeof f, "ach_counts.%s", name);
      cmp_int(rp, f, json_object_get(counts, name), e->achievements[a]);
    }
  }
  if (json_array_size(ach) != n_ach)
    fail(rp, "ach", "expected %s, got %zu unlocked", show(ach), n_ach);
  if (json_object_size(counts) != n_counts)
    fail(rp, "ach_counts", "expected %s, got %zu non-zero", show(counts), n_counts);
  cmp_real(rp, "daylight", json_object_get(rec, "daylight"), e->world.daylight);
  int type_counts[AG_CRAFTER_OBJECT_TYPE_COUNT] = {0};
  for (uint32_t id = 1; id < e->world.object_count; id++) type_counts[e->world.objects[id].type]++;
  const json_t *c = json_object_get(rec, "counts");
  for (int t = AG_CRAFTER_COW; t < AG_CRAFTER_OBJECT_TYPE_COUNT; t++) {
    char f[64];
    snprintf(f, sizeof f, "counts.%s", ag_crafter_object_type_name(t));
    cmp_int(rp, f, json_object_get(c, ag_crafter_object_type_name(t)), type_counts[t]);
  }
  char hex[65];
  ag_crafter_hash_grid(e, 16, hex);
  cmp_str(rp, "grid", json_object_get(rec, "grid"), hex);
  ag_crafter_hash_objects(e, 16, hex);
  cmp_str(rp, "objs", json_object_get(rec, "objs"), hex);
  ag_crafter_hash_rng(e, 16, hex);
  cmp_str(rp, "rng", json_object_get(rec, "rng"), hex);
  cmp_obs(rp, "obs", json_object_get(rec, "obs"));
  // The snapshot fields (t = 0, every 50 steps, the last step).
  const json_t *x;
  if ((x = json_object_get(rec, "grid_sha256"))) {
    ag_crafter_hash_grid(e, 64, hex);
    cmp_str(rp, "grid_sha256", x, hex);
  }
  if ((x = json_object_get(rec, "objects"))) cmp_objects(rp, x);
  if ((x = json_object_get(rec, "chunks"))) cmp_chunks(rp, x);
}

/* ---- files -------------------------------------------------------------------------- */

// Reads one line (without the newline) into *buf; false at end of file.
static bool read_line(gzFile f, char **buf, size_t *cap) {
  size_t len = 0;
  for (;;) {
    if (len + 2 > *cap) {
      size_t grown = *cap ? *cap * 2 : 65536;
      char *b = realloc(*buf, grown);
      if (!b) return false;
      *buf = b;
      *cap = grown;
    }
    if (!gzgets(f, *buf + len, (int)(*cap - len))) return len > 0;
    len += strlen(*buf + len);
    if (len && (*buf)[len - 1] == '\n') {
      (*buf)[--len] = '\0';
      return true;
    }
  }
}

static ag_status replay_header(replay *rp, const json_t *h) {
  const json_t *seed = json_object_get(h, "seed");
  if (!json_is_integer(seed))
    return ag_error_set(AG_ERR_FORMAT, "%s: header without an integer seed", rp->path);
  if (!rp->env) {
    ag_status st = ag_crafter_create(json_integer_value(seed), &rp->env);
    if (st) return st;
  } else if (rp->env->seed != json_integer_value(seed)) {
    return ag_error_set(AG_ERR_FORMAT, "%s: the seed changes between episodes", rp->path);
  }
  ag_status st = ag_crafter_reset(rp->env);
  if (st) return st;
  rp->t = 0;
  rp->rep->episodes++;
  cmp_int(rp, "header.episode", json_object_get(h, "episode"), rp->env->episode);
  cmp_int(rp, "header.world_rng_seed", json_object_get(h, "world_rng_seed"),
          rp->env->world.world_seed);
  char hex[65];
  ag_crafter_hash_grid(rp->env, 64, hex);
  cmp_str(rp, "header.world_grid_sha256", json_object_get(h, "world_grid_sha256"), hex);
  return AG_OK;
}

static ag_status replay_record(replay *rp, const json_t *rec, bool *done) {
  ag_crafter_env *e = rp->env;
  if (!e) return ag_error_set(AG_ERR_FORMAT, "%s: a step record before any header", rp->path);
  const json_t *t = json_object_get(rec, "t");
  if (!json_is_integer(t)) return ag_error_set(AG_ERR_FORMAT, "%s: a record without t", rp->path);
  rp->t = json_integer_value(t);
  rp->ev = json_object_get(rec, "ev");
  rp->ev_seen = rp->draw_seen = 0;
  if (rp->t > 0) {
    const json_t *a = json_object_get(rec, "a");
    if (!json_is_integer(a))
      return ag_error_set(AG_ERR_FORMAT, "%s: step %lld has no action", rp->path, (long long)rp->t);
    double reward = 0;
    e->on_event = on_event;
    e->event_ctx = rp;
    e->despawn_hook = rp->impose ? despawn_hook : NULL;
    e->despawn_ctx = rp;
    ag_status st = ag_crafter_step(e, (int)json_integer_value(a), &reward, done, NULL);
    e->on_event = NULL;
    e->despawn_hook = NULL;
    if (st) {
      fail(rp, "a", "the step failed: %s", ag_error_message());
      return AG_OK;
    }
    if (!rp->failed && rp->ev_seen != json_array_size(rp->ev))
      fail(rp, "ev", "expected %zu events, got %zu", json_array_size(rp->ev), rp->ev_seen);
    cmp_real(rp, "r", json_object_get(rec, "r"), reward);
    cmp_bool(rp, "done", json_object_get(rec, "done"), *done);
    cmp_real(rp, "discount", json_object_get(rec, "discount"),
             e->world.inventory[AG_CRAFTER_INV_HEALTH] <= 0 ? 0.0 : 1.0);
  }
  cmp_int(rp, "t", t, e->step);
  cmp_state(rp, rec);
  rp->rep->records++;
  return AG_OK;
}

static ag_status replay_trajectory(replay *rp) {
  gzFile f = gzopen(rp->path, "rb");
  if (!f) return ag_error_set(AG_ERR_IO, "cannot open %s", rp->path);
  char *buf = NULL;
  size_t cap = 0;
  ag_status st = AG_OK;
  bool done = false;
  int64_t line = 0;
  while (!rp->failed && read_line(f, &buf, &cap)) {
    line++;
    if (!buf[0]) continue;
    json_error_t err;
    json_t *v = json_loads(buf, 0, &err);
    if (!v || !json_is_object(v)) {
      json_decref(v);
      st = ag_error_set(AG_ERR_FORMAT, "%s:%lld: %s", rp->path, (long long)line,
                        v ? "not an object" : err.text);
      break;
    }
    if (json_is_true(json_object_get(v, "header"))) {
      st = replay_header(rp, v);
    } else if (json_is_true(json_object_get(v, "summary"))) {
      rp->t = rp->env ? rp->env->step : 0;
      if (rp->env) cmp_int(rp, "summary.steps", json_object_get(v, "steps"), rp->env->step);
      cmp_bool(rp, "summary.done", json_object_get(v, "done"), done);
    } else {
      st = replay_record(rp, v, &done);
    }
    json_decref(v);
    if (st) break;
  }
  free(buf);
  gzclose(f);
  if (!st && !rp->failed && rp->rep->records == 0)
    st = ag_error_set(AG_ERR_FORMAT, "%s: no step records", rp->path);
  return st;
}

static ag_status replay_world(replay *rp) {
  json_t *w = NULL;
  json_error_t err;
  w = json_load_file(rp->path, 0, &err);
  if (!w) return ag_error_set(AG_ERR_FORMAT, "%s: %s", rp->path, err.text);
  ag_status st = AG_OK;
  const json_t *seed = json_object_get(w, "seed"), *episode = json_object_get(w, "episode");
  if (!json_is_integer(seed) || !json_is_integer(episode) || json_integer_value(episode) < 1) {
    st = ag_error_set(AG_ERR_FORMAT, "%s: no seed or episode", rp->path);
    goto done;
  }
  if ((st = ag_crafter_create(json_integer_value(seed), &rp->env))) goto done;
  for (int64_t e = 0; e < json_integer_value(episode) && !st; e++) st = ag_crafter_reset(rp->env);
  if (st) goto done;
  rp->rep->episodes = 1;
  ag_crafter_env *env = rp->env;
  cmp_int(rp, "world_rng_seed", json_object_get(w, "world_rng_seed"), env->world.world_seed);
  cmp_int(rp, "simplex_seed", json_object_get(w, "simplex_seed"), env->world.simplex_seed);
  char hex[65];
  ag_crafter_hash_grid(env, 64, hex);
  cmp_str(rp, "grid_sha256", json_object_get(w, "grid_sha256"), hex);
  // rng_after_reset holds the short form (16 hex digits).
  const json_t *rng = json_object_get(w, "rng_after_reset");
  size_t rng_len = json_string_length(rng);
  ag_crafter_hash_rng(env, rng_len == 64 ? 64 : 16, hex);
  cmp_str(rp, "rng_after_reset", rng, hex);
  cmp_inventory(rp, "player_inventory", json_object_get(w, "player_inventory"));
  cmp_objects(rp, json_object_get(w, "objects"));
  cmp_chunks(rp, json_object_get(w, "chunks"));
  cmp_real(rp, "daylight", json_object_get(w, "daylight"), env->world.daylight);
  cmp_obs(rp, "obs_sha256_at_reset", json_object_get(w, "obs_sha256_at_reset"));
  rp->rep->records = 1;
done:
  json_decref(w);
  return st;
}

ag_status ag_crafter_replay(const char *path, bool impose_logged_despawns,
                            ag_crafter_replay_report *report) {
  if (!path || !report) return ag_error_set(AG_ERR_INVALID, "crafter replay: NULL argument");
  memset(report, 0, sizeof *report);
  report->match = true;
  replay rp = {.path = path, .rep = report, .impose = impose_logged_despawns};
  ag_crafter_textures *tex = NULL;
  ag_status st = ag_crafter_textures_load(NULL, &tex);
  if (st) {
    report->match = false;
    return st;
  }
  rp.tex = tex;
  size_t n = strlen(path);
  bool world = n >= 5 && strcmp(path + n - 5, ".json") == 0;
  st = world ? replay_world(&rp) : replay_trajectory(&rp);
  ag_crafter_destroy(rp.env);
  ag_crafter_textures_free(tex);
  if (st) report->match = false;
  return st;
}
