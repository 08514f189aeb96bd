/* Observations: the original's pixel frame (engine.py's LocalView, ItemView
 * and Env.render) and the semantic views. Every step of the frame follows the
 * original's arithmetic: Pillow 9.4's nearest-neighbour resize (its
 * ImagingScaleAffine with an accumulated float64 source position), numpy's
 * float32 alpha blending, the float64 night noise and vignette, Pillow's
 * fixed-point luma and float32 blend for ImageEnhance.Color, the float64
 * tints, and truncation wherever numpy casts to uint8. Arrays here are
 * indexed [x][y] as the original's canvas is; the output is transposed to
 * (row, col) like Env.render's. */
#include "worlds/crafter/crafter_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_W    9 /* the local view's grid is 9 x 7 tiles, items 9 x 2 */
#define VIEW_H    7
#define ITEM_ROWS 2
#define VIEW_ALL  (VIEW_H + ITEM_ROWS)

enum {
  TEX_MATERIAL = 0, /* + material id - 1: water .. furnace */
  TEX_PLAYER_LEFT = 12,
  TEX_PLAYER_RIGHT,
  TEX_PLAYER_UP,
  TEX_PLAYER_DOWN,
  TEX_PLAYER_SLEEP,
  TEX_COW,
  TEX_ZOMBIE,
  TEX_SKELETON,
  TEX_ARROW_LEFT,
  TEX_ARROW_RIGHT,
  TEX_ARROW_UP,
  TEX_ARROW_DOWN,
  TEX_PLANT,
  TEX_PLANT_RIPE,
  TEX_FENCE,
  TEX_ITEM,                  /* + inventory slot: health .. iron_sword */
  TEX_DIGIT = TEX_ITEM + 16, /* + n - 1 for "1" .. "9" */
  TEX_UNKNOWN = TEX_DIGIT + 9,
  TEX_COUNT
};

static const char *const TEX_NAMES[TEX_COUNT] = {"water",
                                                 "grass",
                                                 "stone",
                                                 "path",
                                                 "sand",
                                                 "tree",
                                                 "lava",
                                                 "coal",
                                                 "iron",
                                                 "diamond",
                                                 "table",
                                                 "furnace",
                                                 "player-left",
                                                 "player-right",
                                                 "player-up",
                                                 "player-down",
                                                 "player-sleep",
                                                 "cow",
                                                 "zombie",
                                                 "skeleton",
                                                 "arrow-left",
                                                 "arrow-right",
                                                 "arrow-up",
                                                 "arrow-down",
                                                 "plant",
                                                 "plant-ripe",
                                                 "fence",
                                                 "health",
                                                 "food",
                                                 "drink",
                                                 "energy",
                                                 "sapling",
                                                 "wood",
                                                 "stone",
                                                 "coal",
                                                 "iron",
                                                 "diamond",
                                                 "wood_pickaxe",
                                                 "stone_pickaxe",
                                                 "iron_pickaxe",
                                                 "wood_sword",
                                                 "stone_sword",
                                                 "iron_sword",
                                                 "1",
                                                 "2",
                                                 "3",
                                                 "4",
                                                 "5",
                                                 "6",
                                                 "7",
                                                 "8",
                                                 "9",
                                                 "unknown"};

/* A texture as the original holds it: [x][y] with 3 or 4 channels. */
typedef struct texture {
  int w, h, ch;
  uint8_t *px; /* px[(x * h + y) * ch + c] */
} texture;

/* The sizes the 64x64 observation uses: tiles 7x7, items 5x5, amounts 4x4. */
#define CACHED_SIZES 3
static const int CACHED[CACHED_SIZES] = {7, 5, 4};
#define OBS_LX (VIEW_W * 7) /* 63 */
#define OBS_LY (VIEW_H * 7) /* 49 */

#define UNIT    7 /* the observation's tile size */
#define TILE_PX (UNIT * UNIT)
#define OBS_PX  (OBS_LX * OBS_LY)
#define AMOUNTS 10 /* an item cell per amount 1..9, then "unknown" */

/* A texture at 7x7, ready for the observation: planar, [x][y] as the
 * original's arrays. */
typedef struct tile {
  uint8_t rgb[3][TILE_PX]; /* engine._draw copies these */
  float a[3][TILE_PX];     /* alpha * tex, as _draw_alpha's float32 first product */
  float b[TILE_PX];        /* 1 - alpha */
  bool alpha;              /* RGBA: objects blend; RGB: they copy */
} tile;

struct ag_crafter_textures {
  texture orig[TEX_COUNT];
  texture sized[CACHED_SIZES][TEX_COUNT];
  double vignette[OBS_LX * OBS_LY]; /* LocalView._vignette((63, 49, 3), 0.5), [x][y] */
  /* Precomputed once for the 64x64 observation (render_obs). */
  tile tiles[TEX_COUNT + 1]; /* [TEX_COUNT]: the grey outside the world */
  /* An item cell of the ItemView as drawn on black: icon and amount digit,
   * interleaved RGB, row-major 7x7. */
  uint8_t items[AG_CRAFTER_INVENTORY][AMOUNTS][TILE_PX * 3];
};

// Pillow's nearest resize of one axis: source index per output index, -1
// where the accumulated position falls outside (Pillow fills those with 0).
static void nearest_map(int src, int dst, int *map) {
  double scale = (double)src / dst;
  double pos = 0.0 + scale * 0.5;
  for (int i = 0; i < dst; i++) {
    int v = pos < 0.0 ? -1 : (int)pos;
    map[i] = v < src ? v : -1;
    pos += scale;
  }
}

// Image.resize(NEAREST) of the [x][y] array: PIL sees it transposed, which
// only swaps which axis is resized first; each axis maps independently.
static void resize(const texture *t, int sx, int sy, texture *out) {
  int mx[512], my[512];
  nearest_map(t->w, sx, mx);
  nearest_map(t->h, sy, my);
  out->w = sx;
  out->h = sy;
  out->ch = t->ch;
  for (int x = 0; x < sx; x++)
    for (int y = 0; y < sy; y++) {
      uint8_t *d = out->px + ((size_t)x * sy + y) * t->ch;
      if (mx[x] < 0 || my[y] < 0) {
        memset(d, 0, (size_t)t->ch);
        continue;
      }
      memcpy(d, t->px + ((size_t)mx[x] * t->h + my[y]) * t->ch, (size_t)t->ch);
    }
}

static void vignette(int lx, int ly, double *out) {
  // np.linspace(-1, 1, n): i * (2 / (n - 1)) - 1, the last exactly 1.
  double ax[1024], ay[1024];
  double stx = 2.0 / (lx - 1), sty = 2.0 / (ly - 1);
  for (int i = 0; i < lx; i++) ax[i] = i == lx - 1 ? 1.0 : (double)i * stx + -1.0;
  for (int j = 0; j < ly; j++) ay[j] = j == ly - 1 ? 1.0 : (double)j * sty + -1.0;
  for (int i = 0; i < lx; i++)
    for (int j = 0; j < ly; j++) {
      double s = ax[i] * ax[i] + ay[j] * ay[j];
      out[i * ly + j] = 1 - exp(-0.5 * s / 0.25);
    }
}

static void prepare_obs(ag_crafter_textures *t);

void ag_crafter_textures_free(ag_crafter_textures *t) {
  if (!t) return;
  for (int i = 0; i < TEX_COUNT; i++) {
    free(t->orig[i].px);
    for (int k = 0; k < CACHED_SIZES; k++) free(t->sized[k][i].px);
  }
  free(t);
}

ag_status ag_crafter_textures_load(const char *dir, ag_crafter_textures **out) {
  if (!out) return ag_error_set(AG_ERR_INVALID, "crafter: out is NULL");
  *out = NULL;
  if (!dir) dir = getenv("AG_CRAFTER_ASSETS");
  if (!dir || !*dir) dir = AG_CRAFTER_DEFAULT_ASSETS;
  ag_crafter_textures *t = calloc(1, sizeof *t);
  if (!t) return ag_error_set(AG_ERR_NOMEM, "crafter: out of memory");
  char path[4096];
  for (int i = 0; i < TEX_COUNT; i++) {
    snprintf(path, sizeof path, "%s/%s.png", dir, TEX_NAMES[i]);
    uint8_t *rows;
    int w, h, ch;
    ag_status st = ag_crafter_png_read(path, &rows, &w, &h, &ch);
    if (!st && (w > 512 || h > 512)) {
      free(rows);
      st = ag_error_set(AG_ERR_FORMAT, "crafter: texture %s is larger than 512x512", path);
    }
    if (st) {
      ag_crafter_textures_free(t);
      return st;
    }
    texture *o = &t->orig[i];
    o->px = malloc((size_t)w * h * ch);
    if (!o->px) {
      free(rows);
      ag_crafter_textures_free(t);
      return ag_error_set(AG_ERR_NOMEM, "crafter: out of memory");
    }
    o->w = w; // the original transposes imageio's (row, col) to [x][y]
    o->h = h;
    o->ch = ch;
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        memcpy(o->px + ((size_t)x * h + y) * ch, rows + ((size_t)y * w + x) * ch, (size_t)ch);
    free(rows);
    for (int k = 0; k < CACHED_SIZES; k++) {
      texture *s = &t->sized[k][i];
      s->px = malloc((size_t)CACHED[k] * CACHED[k] * ch);
      if (!s->px) {
        ag_crafter_textures_free(t);
        return ag_error_set(AG_ERR_NOMEM, "crafter: out of memory");
      }
      if (CACHED[k] == w && CACHED[k] == h) {
        s->w = w, s->h = h, s->ch = ch;
        memcpy(s->px, o->px, (size_t)w * h * ch);
      } else {
        resize(o, CACHED[k], CACHED[k], s);
      }
    }
  }
  vignette(OBS_LX, OBS_LY, t->vignette);
  prepare_obs(t);
  *out = t;
  return AG_OK;
}

// Textures.get(name, (sx, sy)): a cached size, the original's own size, or a
// resize into scratch (which holds sx * sy * 4 bytes).
static const texture *get(const ag_crafter_textures *t, int id, int sx, int sy, texture *scratch) {
  const texture *o = &t->orig[id];
  if (sx == o->w && sy == o->h) return o;
  if (sx == sy)
    for (int k = 0; k < CACHED_SIZES; k++)
      if (CACHED[k] == sx) return &t->sized[k][id];
  resize(o, sx, sy, scratch);
  return scratch;
}

/* A uint8 canvas [x][y][3]. */
typedef struct canvas {
  int w, h;
  uint8_t *px;
} canvas;

// engine._draw: copy the colour channels (alpha ignored), clipped like a slice.
static void draw(canvas *c, int x0, int y0, const texture *t) {
  for (int x = 0; x < t->w && x0 + x < c->w; x++)
    for (int y = 0; y < t->h && y0 + y < c->h; y++)
      memcpy(c->px + ((size_t)(x0 + x) * c->h + (y0 + y)) * 3,
             t->px + ((size_t)x * t->h + y) * t->ch, 3);
}

// engine._draw_alpha: numpy float32 blending, then truncation to uint8.
static void draw_alpha(canvas *c, int x0, int y0, const texture *t) {
  if (t->ch != 4) {
    draw(c, x0, y0, t);
    return;
  }
  for (int x = 0; x < t->w && x0 + x < c->w; x++)
    for (int y = 0; y < t->h && y0 + y < c->h; y++) {
      const uint8_t *s = t->px + ((size_t)x * t->h + y) * 4;
      uint8_t *d = c->px + ((size_t)(x0 + x) * c->h + (y0 + y)) * 3;
      float alpha = (float)s[3] / 255.0f;
      for (int k = 0; k < 3; k++) {
        float tex = (float)s[k] / 255.0f, cur = (float)d[k] / 255.0f;
        float blended = alpha * tex + (1.0f - alpha) * cur;
        d[k] = (uint8_t)(255.0f * blended);
      }
    }
}

static int luma(const uint8_t *p) {
  return (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
}

static int object_texture(const ag_crafter_object *o) {
  switch (o->type) {
  case AG_CRAFTER_PLAYER:
    if (o->sleeping) return TEX_PLAYER_SLEEP;
    // fall through
  case AG_CRAFTER_ARROW: {
    int base = o->type == AG_CRAFTER_PLAYER ? TEX_PLAYER_LEFT : TEX_ARROW_LEFT;
    if (o->face_x < 0) return base;
    if (o->face_x > 0) return base + 1;
    return base + (o->face_y < 0 ? 2 : 3);
  }
  case AG_CRAFTER_COW: return TEX_COW;
  case AG_CRAFTER_ZOMBIE: return TEX_ZOMBIE;
  case AG_CRAFTER_SKELETON: return TEX_SKELETON;
  case AG_CRAFTER_PLANT: return o->grown > 300 ? TEX_PLANT_RIPE : TEX_PLANT;
  case AG_CRAFTER_FENCE: return TEX_FENCE;
  default: return TEX_UNKNOWN;
  }
}

/* ---- the 64x64 observation, fast ------------------------------------------------------ */

// Tiles and item cells for render_obs. The item cells are drawn by the
// general code (draw_alpha on black) at the offsets Env.render computes for
// any cell: int(gx*7 + 0.1*7) = gx*7 and int(gx*7 + 0.4*7) = gx*7 + 2, sizes
// int(0.8*7) = 5 and int(0.6*7) = 4.
static void prepare_obs(ag_crafter_textures *t) {
  for (int id = 0; id <= TEX_COUNT; id++) {
    tile *d = &t->tiles[id];
    if (id == TEX_COUNT) { // grey 127, opaque
      memset(d->rgb, 127, sizeof d->rgb);
      continue;
    }
    const texture *s = &t->sized[0][id]; // 7x7, [x][y]
    d->alpha = s->ch == 4;
    for (int i = 0; i < TILE_PX; i++) {
      const uint8_t *p = s->px + (size_t)i * s->ch;
      float alpha = d->alpha ? (float)p[3] / 255.0f : 1.0f;
      for (int k = 0; k < 3; k++) {
        d->rgb[k][i] = p[k];
        d->a[k][i] = alpha * ((float)p[k] / 255.0f);
      }
      d->b[i] = 1.0f - alpha;
    }
  }
  uint8_t px[TILE_PX * 3];
  canvas cell = {UNIT, UNIT, px};
  int ox = (int)(0.1 * UNIT), dx = (int)(0.4 * UNIT);
  for (int i = 0; i < AG_CRAFTER_INVENTORY; i++)
    for (int a = 0; a < AMOUNTS; a++) {
      memset(px, 0, sizeof px);
      draw_alpha(&cell, ox, ox, &t->sized[1][TEX_ITEM + i]);
      draw_alpha(&cell, dx, dx, &t->sized[2][a < 9 ? TEX_DIGIT + a : TEX_UNKNOWN]);
      for (int x = 0; x < UNIT; x++)
        for (int y = 0; y < UNIT; y++)
          memcpy(&t->items[i][a][(y * UNIT + x) * 3], &px[(x * UNIT + y) * 3], 3);
    }
}

// engine._draw_alpha of a tile onto n pixels (planar, [x][y] with column
// stride `stride`): float32 alpha*tex + (1-alpha)*cur, truncated.
static void blend_tile(uint8_t *c0, uint8_t *c1, uint8_t *c2, int stride, const tile *tl) {
  uint8_t *c[3] = {c0, c1, c2};
  for (int k = 0; k < 3; k++)
    for (int x = 0; x < UNIT; x++) {
      uint8_t *d = c[k] + x * stride;
      if (!tl->alpha) {
        memcpy(d, &tl->rgb[k][x * UNIT], UNIT);
        continue;
      }
      const float *a = &tl->a[k][x * UNIT], *b = &tl->b[x * UNIT];
      for (int y = 0; y < UNIT; y++) {
        float cur = (float)d[y] / 255.0f;
        float blended = a[y] + b[y] * cur;
        d[y] = (uint8_t)(255.0f * blended);
      }
    }
}

/* The light of one pixel: LocalView._light's night mix (n = the canvas
 * after the noise, c before it), ImageEnhance.Color(0.4), the tint, the
 * daylight mix, then the sleep filter; packed as r | g << 8 | b << 16. The
 * arithmetic is render()'s, per pixel, so SIMD lanes give the same bits. */
static inline uint32_t light_px(int r, int g, int b, int c0, int c1, int c2, double day,
                                bool sleeping) {
  const double tint0 = 0.5 * 0, tint1 = 0.5 * 16, tint2 = 0.5 * 64, sleep2 = 0.5 * 16;
  int l = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
  float fl = (float)l;
  uint8_t er = (uint8_t)(fl + 0.4f * (float)(r - l));
  uint8_t eg = (uint8_t)(fl + 0.4f * (float)(g - l));
  uint8_t eb = (uint8_t)(fl + 0.4f * (float)(b - l));
  uint8_t u0 = (uint8_t)(day * c0 + (1 - day) * (0.5 * er + tint0));
  uint8_t u1 = (uint8_t)(day * c1 + (1 - day) * (0.5 * eg + tint1));
  uint8_t u2 = (uint8_t)(day * c2 + (1 - day) * (0.5 * eb + tint2));
  if (sleeping) {
    int grey = (u0 * 19595 + u1 * 38470 + u2 * 7471 + 0x8000) >> 16;
    u0 = u1 = (uint8_t)(0.5 * grey);
    u2 = (uint8_t)(0.5 * grey + sleep2);
  }
  return (uint32_t)u0 | (uint32_t)u1 << 8 | (uint32_t)u2 << 16;
}

// Lights n pixels by day (no noise): planar canvas in, packed pixels out.
// Sleeping is a constant in each loop so the lanes have no branch.
static void light_day(const uint8_t *c0, const uint8_t *c1, const uint8_t *c2, int n, double day,
                      bool sleeping, uint32_t *out) {
  if (sleeping) {
#pragma omp simd
    for (int i = 0; i < n; i++)
      out[i] = light_px(c0[i], c1[i], c2[i], c0[i], c1[i], c2[i], day, true);
  } else {
#pragma omp simd
    for (int i = 0; i < n; i++)
      out[i] = light_px(c0[i], c1[i], c2[i], c0[i], c1[i], c2[i], day, false);
  }
}

// Lights n pixels at night: first (1 - mask) * canvas + mask * noise with
// mask = 2 (0.5 - daylight) * vignette, truncated, per channel.
#define NIGHT_PX(i, sleeping)                                                                      \
  do {                                                                                             \
    double mask = amount * vig[i], keep = 1 - mask, add = mask * noise[i];                         \
    uint8_t r = (uint8_t)(keep * c0[i] + add), g = (uint8_t)(keep * c1[i] + add),                  \
            b = (uint8_t)(keep * c2[i] + add);                                                     \
    out[i] = light_px(r, g, b, c0[i], c1[i], c2[i], day, sleeping);                                \
  } while (0)
static void light_night(const uint8_t *c0, const uint8_t *c1, const uint8_t *c2, const double *vig,
                        const double *noise, int n, double day, bool sleeping, uint32_t *out) {
  double amount = 2 * (0.5 - day);
  if (sleeping) {
#pragma omp simd
    for (int i = 0; i < n; i++) NIGHT_PX(i, true);
  } else {
#pragma omp simd
    for (int i = 0; i < n; i++) NIGHT_PX(i, false);
  }
}
#undef NIGHT_PX

// Writes packed [x][y] pixels (column stride `stride`, w x h of them) into
// the frame at (x0, y0), x0 + w <= 63. Four-byte stores: the fourth byte (0)
// lands on the next column, written after this one, or on column 63 (black).
static void put_rgb(uint8_t *rgb, int x0, int y0, const uint32_t *px, int stride, int w, int h) {
  for (int x = 0; x < w; x++) {
    const uint32_t *p = px + x * stride;
    uint8_t *d = rgb + ((size_t)y0 * AG_CRAFTER_OBS_SIZE + x0 + x) * 3;
    for (int y = 0; y < h; y++) {
      uint8_t b[4] = {(uint8_t)p[y], (uint8_t)(p[y] >> 8), (uint8_t)(p[y] >> 16), 0};
      memcpy(d + (size_t)y * AG_CRAFTER_OBS_SIZE * 3, b, 4);
    }
  }
}

// A tile's packed [x][y] pixels as RGB rows ([y][x][3]), to copy row by row.
static void tile_rows(const uint32_t *px, uint8_t *rows) {
  for (int x = 0; x < UNIT; x++)
    for (int y = 0; y < UNIT; y++) {
      uint32_t v = px[x * UNIT + y];
      uint8_t *d = rows + (y * UNIT + x) * 3;
      d[0] = (uint8_t)v, d[1] = (uint8_t)(v >> 8), d[2] = (uint8_t)(v >> 16);
    }
}

// The tile texture of a view cell: its material, or grey outside the world.
static int cell_texture(const ag_crafter_world *w, int x, int y, uint32_t *object) {
  *object = 0;
  if (x < 0 || y < 0 || x >= AG_CRAFTER_AREA || y >= AG_CRAFTER_AREA) return TEX_COUNT;
  int cell = x * AG_CRAFTER_AREA + y, m = w->mat[cell];
  uint32_t id = w->obj[cell];
  if (id && w->objects[id].type) *object = id;
  return m >= 1 && m < AG_CRAFTER_MATERIAL_COUNT ? TEX_MATERIAL + m - 1 : TEX_UNKNOWN;
}

/* The 64x64 observation: render() specialised to unit 7, bit for bit the
 * same (the golden frame hashes check it). By day the light of a pixel
 * depends only on its colour, so each distinct tile (a material, or a
 * material under an object) is lit once. At night the noise differs per
 * pixel: the whole view is lit, column-major ([x][y], the noise's order).
 * noise is NULL by day, else 63 x 49 values [x][y]. */
static void render_obs(const ag_crafter_env *e, const ag_crafter_textures *t, const double *noise,
                       uint8_t *rgb) {
  const ag_crafter_world *w = &e->world;
  const ag_crafter_object *player = &w->objects[AG_CRAFTER_PLAYER_ID];
  int cx = player->x, cy = player->y;
  double day = w->daylight;
  bool sleeping = player->sleeping;
  memset(rgb, 0, AG_CRAFTER_OBS_BYTES);
  if (!noise) {
    uint8_t lit[TEX_COUNT + 1][TILE_PX * 3]; // lit material tiles by texture, RGB rows
    bool have[TEX_COUNT + 1] = {0};
    for (int gx = 0; gx < VIEW_W; gx++)
      for (int gy = 0; gy < VIEW_H; gy++) {
        uint32_t id, px[TILE_PX];
        uint8_t one[TILE_PX * 3];
        int tex = cell_texture(w, cx + gx - VIEW_W / 2, cy + gy - VIEW_H / 2, &id);
        const tile *tl = &t->tiles[tex];
        const uint8_t *rows = lit[tex];
        if (id) { // the material under the object, then the object blended
          uint8_t obj[3][TILE_PX];
          memcpy(obj, tl->rgb, sizeof obj);
          blend_tile(obj[0], obj[1], obj[2], UNIT, &t->tiles[object_texture(&w->objects[id])]);
          light_day(obj[0], obj[1], obj[2], TILE_PX, day, sleeping, px);
          tile_rows(px, one);
          rows = one;
        } else if (!have[tex]) {
          light_day(tl->rgb[0], tl->rgb[1], tl->rgb[2], TILE_PX, day, sleeping, px);
          tile_rows(px, lit[tex]);
          have[tex] = true;
        }
        for (int r = 0; r < UNIT; r++)
          memcpy(rgb + ((size_t)(gy * UNIT + r) * AG_CRAFTER_OBS_SIZE + gx * UNIT) * 3,
                 rows + r * UNIT * 3, UNIT * 3);
      }
  } else {
    uint8_t c[3][OBS_PX]; // [x][y], column stride 49
    uint32_t px[OBS_PX];
    for (int gx = 0; gx < VIEW_W; gx++)
      for (int gy = 0; gy < VIEW_H; gy++) {
        uint32_t id;
        int tex = cell_texture(w, cx + gx - VIEW_W / 2, cy + gy - VIEW_H / 2, &id);
        int at = gx * UNIT * OBS_LY + gy * UNIT;
        for (int k = 0; k < 3; k++)
          for (int x = 0; x < UNIT; x++)
            memcpy(&c[k][at + x * OBS_LY], &t->tiles[tex].rgb[k][x * UNIT], UNIT);
        // One object per cell: the original's ascending-id order of
        // blending never matters.
        if (id)
          blend_tile(&c[0][at], &c[1][at], &c[2][at], OBS_LY,
                     &t->tiles[object_texture(&w->objects[id])]);
      }
    light_night(c[0], c[1], c[2], t->vignette, noise, OBS_PX, day, sleeping, px);
    put_rgb(rgb, 0, 0, px, OBS_LY, OBS_LX, OBS_LY);
  }
  // The item view below the local view; row and column 63 stay black.
  for (int i = 0; i < AG_CRAFTER_INVENTORY; i++) {
    int amount_i = w->inventory[i];
    if (amount_i < 1) continue;
    const uint8_t *cellpx = t->items[i][amount_i <= 9 ? amount_i - 1 : AMOUNTS - 1];
    int x0 = (i % VIEW_W) * UNIT, y0 = OBS_LY + (i / VIEW_W) * UNIT;
    for (int r = 0; r < UNIT; r++)
      memcpy(rgb + ((size_t)(y0 + r) * AG_CRAFTER_OBS_SIZE + x0) * 3, &cellpx[r * UNIT * 3],
             UNIT * 3);
  }
}

/* Env.render(size) into rgb (height, width, 3), with the night noise given
 * (lx * ly values, [x][y], or NULL by day) and its vignette. */
static ag_status render(const ag_crafter_env *e, const ag_crafter_textures *t, int width,
                        int height, const double *noise, const double *vig, uint8_t *rgb) {
  const ag_crafter_world *w = &e->world;
  int ux = width / VIEW_W, uy = height / VIEW_ALL;
  int lx = VIEW_W * ux, ly = VIEW_H * uy, iy = ITEM_ROWS * uy;
  size_t scratch_bytes = (size_t)ux * uy * 4;
  uint8_t *mem = malloc((size_t)lx * (ly + iy) * 3 + scratch_bytes + 1);
  if (!mem) return ag_error_set(AG_ERR_NOMEM, "crafter: out of memory");
  canvas local = {lx, ly, mem}, items = {lx, iy, mem + (size_t)lx * ly * 3};
  texture scratch = {0, 0, 0, mem + (size_t)lx * (ly + iy) * 3};
  const ag_crafter_object *player = &w->objects[AG_CRAFTER_PLAYER_ID];
  int cx = player->x, cy = player->y;

  // LocalView: grey outside the world, material tiles, then objects in id order.
  memset(local.px, 127, (size_t)lx * ly * 3);
  for (int gx = 0; gx < VIEW_W; gx++)
    for (int gy = 0; gy < VIEW_H; gy++) {
      int x = cx + gx - VIEW_W / 2, y = cy + gy - VIEW_H / 2;
      if (x < 0 || y < 0 || x >= AG_CRAFTER_AREA || y >= AG_CRAFTER_AREA) continue;
      int m = w->mat[x * AG_CRAFTER_AREA + y];
      int id = m >= 1 && m < AG_CRAFTER_MATERIAL_COUNT ? TEX_MATERIAL + m - 1 : TEX_UNKNOWN;
      draw(&local, gx * ux, gy * uy, get(t, id, ux, uy, &scratch));
    }
  for (uint32_t id = 1; id < w->object_count; id++) {
    const ag_crafter_object *o = &w->objects[id];
    if (!o->type) continue;
    int gx = o->x - cx + VIEW_W / 2, gy = o->y - cy + VIEW_H / 2;
    if (gx < 0 || gy < 0 || gx >= VIEW_W || gy >= VIEW_H) continue;
    draw_alpha(&local, gx * ux, gy * uy, get(t, object_texture(o), ux, uy, &scratch));
  }

  // ItemView: every item the player holds, its icon and its amount.
  memset(items.px, 0, (size_t)lx * iy * 3);
  for (int i = 0; i < AG_CRAFTER_INVENTORY; i++) {
    int amount = w->inventory[i];
    if (amount < 1) continue;
    int gx = i % VIEW_W, gy = i / VIEW_W;
    int x = (int)((double)(gx * ux) + 0.1 * ux), y = (int)((double)(gy * uy) + 0.1 * uy);
    int sx = (int)(0.8 * ux), sy = (int)(0.8 * uy);
    if (sx > 0 && sy > 0) draw_alpha(&items, x, y, get(t, TEX_ITEM + i, sx, sy, &scratch));
    x = (int)((double)(gx * ux) + 0.4 * ux), y = (int)((double)(gy * uy) + 0.4 * uy);
    sx = (int)(0.6 * ux), sy = (int)(0.6 * uy);
    int digit = amount <= 9 ? TEX_DIGIT + amount - 1 : TEX_UNKNOWN;
    if (sx > 0 && sy > 0) draw_alpha(&items, x, y, get(t, digit, sx, sy, &scratch));
  }

  // Light (and sleep) per pixel, then the frame: (row, col) = (y, x) + border.
  double day = w->daylight, amount = 2 * (0.5 - day);
  bool night = day < 0.5, sleeping = player->sleeping;
  static const double TINT[3] = {0.5 * 0, 0.5 * 16, 0.5 * 64}, SLEEP_TINT[3] = {0, 0, 0.5 * 16};
  int bx = (width - ux * VIEW_W) / 2, by = (height - uy * VIEW_ALL) / 2;
  memset(rgb, 0, (size_t)width * height * 3);
  for (int x = 0; x < lx; x++)
    for (int y = 0; y < ly; y++) {
      const uint8_t *c0 = local.px + ((size_t)x * ly + y) * 3;
      uint8_t n[3], u[3];
      if (night) {
        double mask = amount * vig[x * ly + y], z = noise[x * ly + y];
        for (int k = 0; k < 3; k++) n[k] = (uint8_t)((1 - mask) * c0[k] + mask * z);
      } else {
        memcpy(n, c0, 3);
      }
      int l = luma(n);
      for (int k = 0; k < 3; k++) {
        // ImageEnhance.Color(0.4): Pillow's float32 blend of grey and colour.
        uint8_t en = (uint8_t)((float)l + 0.4f * (float)(n[k] - l));
        double tinted = 0.5 * en + TINT[k];
        u[k] = (uint8_t)(day * c0[k] + (1 - day) * tinted);
      }
      if (sleeping) {
        int g = luma(u);
        for (int k = 0; k < 3; k++) u[k] = (uint8_t)(0.5 * g + SLEEP_TINT[k]);
      }
      memcpy(rgb + ((size_t)(by + y) * width + (bx + x)) * 3, u, 3);
    }
  for (int x = 0; x < lx; x++)
    for (int y = 0; y < iy; y++)
      memcpy(rgb + ((size_t)(by + ly + y) * width + (bx + x)) * 3,
             items.px + ((size_t)x * iy + y) * 3, 3);
  free(mem);
  return AG_OK;
}

/* ---- night noise ----------------------------------------------------------------------- */

// Fast mode's night noise: uniform(32, 127) from a counter-based hash of
// (world seed, step, index), so it never touches the world RNG and the same
// step always gives the same frame.
static inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t fast_noise_key(const ag_crafter_env *e, uint64_t salt) {
  return splitmix64(((uint64_t)e->world.world_seed << 32) ^ (uint64_t)e->step ^ (salt << 60));
}

static inline double fast_noise(uint64_t key, uint64_t i) {
  return 32 + 95 * ((double)(splitmix64(key + i * 0xd1b54a32d192ed03ull) >> 11) *
                    (1.0 / 9007199254740992.0));
}

// The 63x49 night noise of the observation, [x][y] (the draw's C order).
// Exact mode: the values the step drew (uniform(32, 127, (63, 49))),
// replayed from the state it saved before drawing.
static void obs_noise(const ag_crafter_env *e, double *out) {
  if (e->mode == AG_CRAFTER_MODE_FAST) {
    uint64_t key = fast_noise_key(e, 0);
#pragma omp simd
    for (int i = 0; i < OBS_PX; i++) out[i] = fast_noise(key, (uint64_t)i);
    return;
  }
  ag_crafter_rng r = e->noise_rng;
  ag_crafter_rng_uniform_fill(&r, 32, 127, out, OBS_PX);
}

ag_status ag_crafter_observe_pixels(const ag_crafter_env *e, const ag_crafter_textures *t,
                                    uint8_t *rgb) {
  if (!e || !t || !rgb) return ag_error_set(AG_ERR_INVALID, "crafter: NULL argument to observe");
  if (!e->started) return ag_error_set(AG_ERR_INVALID, "crafter: observe before reset");
  if (e->world.daylight < 0.5) {
    if (e->mode != AG_CRAFTER_MODE_FAST && !e->night_noise_valid)
      return ag_error_set(AG_ERR_INVALID, "crafter: no night noise was drawn for this step");
    double noise[OBS_PX];
    obs_noise(e, noise);
    render_obs(e, t, noise, rgb);
  } else {
    render_obs(e, t, NULL, rgb);
  }
  return AG_OK;
}

ag_status ag_crafter_render(ag_crafter_env *e, const ag_crafter_textures *t, int width, int height,
                            uint8_t *rgb) {
  if (!e || !t || !rgb) return ag_error_set(AG_ERR_INVALID, "crafter: NULL argument to render");
  if (!e->started) return ag_error_set(AG_ERR_INVALID, "crafter: render before reset");
  if (width < VIEW_W || height < VIEW_ALL || width > 4096 || height > 4096)
    return ag_error_set(AG_ERR_INVALID, "crafter: render size %dx%d (valid: 9x9 .. 4096x4096)",
                        width, height);
  int lx = VIEW_W * (width / VIEW_W), ly = VIEW_H * (height / VIEW_ALL);
  double *noise = NULL, *vig = NULL;
  if (e->world.daylight < 0.5) {
    noise = malloc(sizeof(double) * 2 * (size_t)lx * ly);
    if (!noise) return ag_error_set(AG_ERR_NOMEM, "crafter: out of memory");
    vig = noise + (size_t)lx * ly;
    if (e->mode == AG_CRAFTER_MODE_FAST) {
      uint64_t key = fast_noise_key(e, (uint64_t)width * 4099u + (uint64_t)height);
      for (size_t i = 0; i < (size_t)lx * ly; i++) noise[i] = fast_noise(key, i);
    } else {
      // The original's render draws fresh noise from the world RNG at night.
      ag_crafter_rng_uniform_fill(&e->world.rng, 32, 127, noise, (size_t)lx * ly);
    }
    vignette(lx, ly, vig);
  }
  ag_status st = render(e, t, width, height, noise, vig, rgb);
  free(noise);
  return st;
}

/* ---- semantic ------------------------------------------------------------------------ */

// SemanticView's ids: materials 0..12, then Player 13 .. Plant 18 (the
// original has no id for a fence; it never occurs, 19 here).
static uint8_t semantic_id(const ag_crafter_world *w, int x, int y) {
  uint32_t id = w->obj[x * AG_CRAFTER_AREA + y];
  if (id && w->objects[id].type)
    return (uint8_t)(AG_CRAFTER_MATERIAL_COUNT + w->objects[id].type - AG_CRAFTER_PLAYER);
  return w->mat[x * AG_CRAFTER_AREA + y];
}

void ag_crafter_semantic_map(const ag_crafter_env *e, uint8_t *ids) {
  if (!e || !ids) return;
  for (int x = 0; x < AG_CRAFTER_AREA; x++)
    for (int y = 0; y < AG_CRAFTER_AREA; y++)
      ids[x * AG_CRAFTER_AREA + y] = semantic_id(&e->world, x, y);
}

void ag_crafter_observe_semantic(const ag_crafter_env *e, uint8_t *view, int32_t *inventory) {
  if (!e) return;
  const ag_crafter_object *p = &e->world.objects[AG_CRAFTER_PLAYER_ID];
  if (view)
    for (int gy = 0; gy < VIEW_H; gy++)
      for (int gx = 0; gx < VIEW_W; gx++) {
        int x = p->x + gx - VIEW_W / 2, y = p->y + gy - VIEW_H / 2;
        bool in = x >= 0 && y >= 0 && x < AG_CRAFTER_AREA && y < AG_CRAFTER_AREA;
        view[gy * VIEW_W + gx] = in ? semantic_id(&e->world, x, y) : 0;
      }
  if (inventory) memcpy(inventory, e->world.inventory, sizeof(int32_t) * AG_CRAFTER_INVENTORY);
}
