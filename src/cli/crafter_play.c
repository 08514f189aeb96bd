/* `agora crafter play`: Crafter in a terminal. A coloured character view of
 * the local 9 x 7 view (one glyph per tile, drawn two columns wide so tiles
 * are square), vitals, inventory and achievements as they unlock; raw-mode
 * keys (WASD / arrows, the original GUI's action keys). The world advances
 * one step per key, as a turn-based game. Without a terminal, --actions or
 * --script play a list of actions and print the transcript. */
#include "agora/crafter.h"
#include "cli/args.h"
#include "worlds/crafter/crafter_internal.h" /* plants' growth, for the ripe glyph */

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

int ag_cli_crafter_play(int argc, char **argv);

/* ---- keys --------------------------------------------------------------------- */

enum { NOOP = 0, MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, DO, SLEEP };

/* The original GUI's keymap (crafter/run_gui.py), plus arrows and '.' to wait. */
static int key_action(int key) {
  switch (key) {
  case 'a':
  case 'A': return MOVE_LEFT;
  case 'd':
  case 'D': return MOVE_RIGHT;
  case 'w':
  case 'W': return MOVE_UP;
  case 's':
  case 'S': return MOVE_DOWN;
  case ' ': return DO;
  case '\t': return SLEEP;
  case 'r':
  case 'R': return 7; /* place_stone */
  case 't':
  case 'T': return 8; /* place_table */
  case 'f':
  case 'F': return 9; /* place_furnace */
  case 'p':
  case 'P': return 10; /* place_plant */
  case '1':
  case '2':
  case '3':
  case '4':
  case '5':
  case '6': return 11 + (key - '1');
  case '.': return NOOP;
  default: return -1;
  }
}

/* Special keys read from escape sequences. */
enum { KEY_UP = 1000, KEY_DOWN, KEY_RIGHT, KEY_LEFT };

static const char *const HELP_LINES[] = {
    "keys: w a s d / arrows move   space do (collect, drink, hit)   tab sleep   . wait",
    "      r place stone   t place table   f place furnace   p place plant",
    ("      1 wood pickaxe  2 stone pickaxe  3 iron pickaxe  4 wood sword  5 stone sword  "
     "6 iron sword"),
    "      q quit (n: new episode once it is over)",
};

/* ---- the picture ---------------------------------------------------------------- */

typedef enum color_mode { COLOR_NONE, COLOR_256, COLOR_TRUE } color_mode;

typedef struct glyph {
  char ch;
  uint8_t bg[3], fg[3];
} glyph;

/* Background colours near the textures' mean colours; glyphs for shape. */
static const glyph MATERIALS[AG_CRAFTER_MATERIAL_COUNT] = {
    [AG_CRAFTER_NONE] = {' ', {0, 0, 0}, {0, 0, 0}},
    [AG_CRAFTER_WATER] = {'~', {52, 104, 196}, {170, 205, 255}},
    [AG_CRAFTER_GRASS] = {'.', {88, 158, 62}, {64, 122, 44}},
    [AG_CRAFTER_STONE] = {'#', {118, 118, 118}, {88, 88, 88}},
    [AG_CRAFTER_PATH] = {'.', {156, 136, 104}, {124, 106, 80}},
    [AG_CRAFTER_SAND] = {':', {214, 196, 140}, {176, 156, 100}},
    [AG_CRAFTER_TREE] = {'T', {88, 158, 62}, {18, 72, 18}},
    [AG_CRAFTER_LAVA] = {'%', {214, 84, 24}, {255, 210, 40}},
    [AG_CRAFTER_COAL] = {'c', {118, 118, 118}, {16, 16, 16}},
    [AG_CRAFTER_IRON] = {'i', {118, 118, 118}, {236, 170, 120}},
    [AG_CRAFTER_DIAMOND] = {'D', {118, 118, 118}, {235, 255, 255}},
    [AG_CRAFTER_TABLE] = {'=', {138, 92, 44}, {246, 206, 130}},
    [AG_CRAFTER_FURNACE] = {'F', {70, 70, 70}, {255, 140, 0}},
};

static const char *const LEGEND =
    "legend: < > ^ v you (facing that way), z you asleep  C cow  Z zombie  S skeleton  - | arrow  "
    "p sapling  P ripe plant\n"
    "        ~ water  . grass  : sand  . path  T tree  # stone  c coal  i iron  D diamond  "
    "% lava  = table  F furnace";

typedef struct screen {
  char *buf;
  size_t len, cap;
  bool oom;
} screen;

__attribute__((format(printf, 2, 3))) static void out(screen *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char tmp[1024];
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t k = (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1;
  if (s->len + k + 1 > s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8192;
    while (cap < s->len + k + 1) cap *= 2;
    char *b = realloc(s->buf, cap);
    if (!b) {
      s->oom = true;
      return;
    }
    s->buf = b;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, tmp, k);
  s->len += k;
  s->buf[s->len] = '\0';
}

static int cube6(int v) { return v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40; }

static void set_color(screen *s, color_mode mode, const uint8_t bg[3], const uint8_t fg[3],
                      bool bold) {
  if (mode == COLOR_NONE) return;
  if (mode == COLOR_TRUE)
    out(s, "\x1b[%s48;2;%d;%d;%d;38;2;%d;%d;%dm", bold ? "1;" : "", bg[0], bg[1], bg[2], fg[0],
        fg[1], fg[2]);
  else
    out(s, "\x1b[%s48;5;%d;38;5;%dm", bold ? "1;" : "",
        16 + 36 * cube6(bg[0]) + 6 * cube6(bg[1]) + cube6(bg[2]),
        16 + 36 * cube6(fg[0]) + 6 * cube6(fg[1]) + cube6(fg[2]));
}
static void reset_color(screen *s, color_mode mode) {
  if (mode != COLOR_NONE) out(s, "\x1b[0m");
}

/* The glyph of a tile: its material, with any object drawn over it. */
static glyph tile_glyph(const ag_crafter_env *env, int x, int y, bool *bold) {
  *bold = false;
  const ag_crafter_world *w = &env->world;
  if (x < 0 || y < 0 || x >= AG_CRAFTER_AREA || y >= AG_CRAFTER_AREA) return MATERIALS[0];
  int cell = x * AG_CRAFTER_AREA + y;
  glyph g = MATERIALS[w->mat[cell] < AG_CRAFTER_MATERIAL_COUNT ? w->mat[cell] : 0];
  uint32_t id = w->obj[cell];
  if (!id) return g;
  const ag_crafter_object *o = &w->objects[id];
  static const uint8_t WHITE[3] = {255, 255, 255}, BROWN[3] = {72, 40, 12}, RED[3] = {200, 0, 0},
                       GREEN[3] = {20, 96, 20}, BONE[3] = {240, 240, 228};
  const uint8_t *fg = WHITE;
  *bold = true;
  switch (o->type) {
  case AG_CRAFTER_PLAYER: {
    ag_crafter_player_state ps;
    ag_crafter_get_player_state(env, &ps);
    g.ch = ps.sleeping        ? 'z'
           : ps.facing[0] < 0 ? '<'
           : ps.facing[0] > 0 ? '>'
           : ps.facing[1] < 0 ? '^'
                              : 'v';
    break;
  }
  case AG_CRAFTER_COW: g.ch = 'C', fg = BROWN; break;
  case AG_CRAFTER_ZOMBIE: g.ch = 'Z', fg = RED; break;
  case AG_CRAFTER_SKELETON: g.ch = 'S', fg = BONE; break;
  case AG_CRAFTER_ARROW: g.ch = o->face_x ? '-' : '|'; break;
  case AG_CRAFTER_PLANT:
    g.ch = o->grown > 300 ? 'P' : 'p';
    fg = o->grown > 300 ? RED : GREEN;
    break;
  default: g.ch = '?'; break;
  }
  memcpy(g.fg, fg, 3);
  return g;
}

static void dim(uint8_t c[3], double f) {
  for (int i = 0; i < 3; i++) c[i] = (uint8_t)(c[i] * f);
}

static void vital_bar(screen *s, color_mode mode, const char *name, int v, const uint8_t col[3]) {
  static const uint8_t BLACK[3] = {0, 0, 0}, GREY[3] = {60, 60, 60};
  out(s, "  %-7s %d/9 ", name, v);
  if (mode == COLOR_NONE) {
    out(s, "[");
    for (int i = 0; i < 9; i++) out(s, "%c", i < v ? '#' : ' ');
    out(s, "]");
    return;
  }
  for (int i = 0; i < 9; i++) {
    set_color(s, mode, i < v ? col : GREY, BLACK, false);
    out(s, " ");
  }
  reset_color(s, mode);
}

typedef struct play_state {
  color_mode mode;
  int cell_width; /* terminal columns per tile */
  bool show_text; /* also print the text observation */
  double episode_return;
  char messages[4][160];
  int n_messages;
} play_state;

static void message(play_state *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void message(play_state *ps, const char *fmt, ...) {
  if (ps->n_messages == 4) {
    memmove(ps->messages[0], ps->messages[1], sizeof ps->messages[0] * 3);
    ps->n_messages = 3;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ps->messages[ps->n_messages++], sizeof ps->messages[0], fmt, ap);
  va_end(ap);
}

/* The whole screen: header, view with vitals beside it, inventory,
 * achievements, messages, keys and legend. nl is "\n" or "\r\n" (raw mode). */
static void draw(screen *s, const ag_crafter_env *env, play_state *ps, bool help, const char *nl) {
  ag_crafter_info info;
  ag_crafter_get_info(env, &info);
  ag_crafter_player_state pl;
  ag_crafter_get_player_state(env, &pl);
  const char *phase = pl.daylight < 0.5 ? "night" : "day";
  out(s, "agora crafter  seed %lld  episode %lld  step %lld  %s (daylight %.2f)%s%s",
      (long long)env->seed, (long long)env->episode, (long long)info.step, phase, pl.daylight,
      pl.sleeping ? "  asleep" : "", nl);
  // Night and sleep darken the view, as the frame does.
  double shade = pl.daylight < 0.5 ? 0.45 + pl.daylight : 1.0;
  if (pl.sleeping) shade *= 0.6;
  static const uint8_t RED[3] = {210, 40, 40}, ORANGE[3] = {220, 150, 40}, BLUE[3] = {60, 120, 230},
                       YELLOW[3] = {230, 220, 60};
  int px = info.player_pos[0], py = info.player_pos[1];
  int fx = px + pl.facing[0], fy = py + pl.facing[1];
  const char *facing = "nothing";
  if (fx >= 0 && fy >= 0 && fx < AG_CRAFTER_AREA && fy < AG_CRAFTER_AREA) {
    uint32_t id = env->world.obj[fx * AG_CRAFTER_AREA + fy];
    facing = id ? ag_crafter_object_type_name(env->world.objects[id].type)
                : ag_crafter_material_name(env->world.mat[fx * AG_CRAFTER_AREA + fy]);
  }
  for (int r = 0; r < AG_CRAFTER_VIEW_H; r++) {
    out(s, "  ");
    for (int c = 0; c < AG_CRAFTER_VIEW_W; c++) {
      bool bold;
      glyph g =
          tile_glyph(env, px + c - AG_CRAFTER_VIEW_W / 2, py + r - AG_CRAFTER_VIEW_H / 2, &bold);
      dim(g.bg, shade);
      dim(g.fg, shade);
      set_color(s, ps->mode, g.bg, g.fg, bold);
      out(s, "%c%*s", g.ch, ps->cell_width - 1, "");
    }
    reset_color(s, ps->mode);
    switch (r) {
    case 0: vital_bar(s, ps->mode, "health", info.inventory[0], RED); break;
    case 1: vital_bar(s, ps->mode, "food", info.inventory[1], ORANGE); break;
    case 2: vital_bar(s, ps->mode, "drink", info.inventory[2], BLUE); break;
    case 3: vital_bar(s, ps->mode, "energy", info.inventory[3], YELLOW); break;
    case 4: out(s, "  facing  %s", facing); break;
    case 5: out(s, "  return  %.1f", ps->episode_return); break;
    default: break;
    }
    out(s, "%s", nl);
  }
  out(s, "inventory:");
  bool any = false;
  for (int i = 4; i < AG_CRAFTER_ITEM_COUNT; i++)
    if (info.inventory[i]) {
      out(s, "%s %s %d", any ? "," : "", ag_crafter_item_name(i), info.inventory[i]);
      any = true;
    }
  out(s, "%s%s", any ? "" : " nothing", nl);
  int unlocked = 0;
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++) unlocked += info.achievements[a] > 0;
  out(s, "achievements %d/22:", unlocked);
  for (int a = 0, shown = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
    if (info.achievements[a] > 0)
      out(s, "%s %s", shown++ ? "," : "", ag_crafter_achievement_name(a));
  out(s, "%s", nl);
  for (int m = 0; m < ps->n_messages; m++) out(s, "> %s%s", ps->messages[m], nl);
  if (ps->show_text) {
    char text[AG_CRAFTER_TEXT_MAX];
    if (!ag_crafter_observe_text(env, NULL, text, sizeof text, NULL)) {
      out(s, "-- text observation --%s", nl);
      for (char *line = text; line;) {
        char *end = strchr(line, '\n');
        if (end) *end = '\0';
        out(s, "%s%s", line, nl);
        line = end ? end + 1 : NULL;
      }
    }
  }
  if (help) {
    for (size_t i = 0; i < sizeof HELP_LINES / sizeof *HELP_LINES; i++)
      out(s, "%s%s", HELP_LINES[i], nl);
    for (const char *p = LEGEND; *p;) {
      const char *end = strchr(p, '\n');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      out(s, "%.*s%s", (int)n, p, nl);
      p += n + (end ? 1 : 0);
    }
  }
}

/* One step; announces new achievements and the episode's end. */
static ag_status play_step(ag_crafter_env *env, play_state *ps, int action, bool *done) {
  ag_crafter_info before, after;
  ag_crafter_get_info(env, &before);
  double reward = 0;
  ag_status st = ag_crafter_step(env, action, &reward, done, &after);
  if (st) return st;
  ps->episode_return += reward;
  for (int a = 0; a < AG_CRAFTER_ACHIEVEMENT_COUNT; a++)
    if (after.achievements[a] > 0 && before.achievements[a] == 0)
      message(ps, "achievement unlocked: %s", ag_crafter_achievement_name(a));
  if (*done)
    message(ps, "%s at step %lld, return %.1f", after.inventory[0] <= 0 ? "you died" : "time is up",
            (long long)after.step, ps->episode_return);
  return AG_OK;
}

/* ---- the terminal ---------------------------------------------------------------- */

static struct termios saved_termios;
static volatile sig_atomic_t termios_saved = 0;
static const char LEAVE[] = "\x1b[0m\x1b[?25h\x1b[?1049l";

static void restore_terminal(void) {
  if (!termios_saved) return;
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_termios);
  ssize_t w = write(STDOUT_FILENO, LEAVE, sizeof LEAVE - 1);
  (void)w;
  termios_saved = 0;
}

// Only async-signal-safe calls: restore, then die of the same signal.
static void on_signal(int sig) {
  restore_terminal();
  signal(sig, SIG_DFL);
  raise(sig);
}

static int enter_raw_mode(void) {
  if (tcgetattr(STDIN_FILENO, &saved_termios)) return -1;
  struct termios raw = saved_termios;
  raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN); // keep ISIG: Ctrl-C raises SIGINT
  raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  termios_saved = 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGQUIT, &sa, NULL);
  if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw)) {
    termios_saved = 0;
    return -1;
  }
  static const char ENTER[] = "\x1b[?1049h\x1b[?25l";
  ssize_t w = write(STDOUT_FILENO, ENTER, sizeof ENTER - 1);
  (void)w;
  return 0;
}

/* A key: a byte, or an arrow from its escape sequence; -1 at end of input. */
static int read_key(void) {
  unsigned char c;
  for (;;) {
    ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    return -1;
  }
  if (c != 0x1b) return c;
  // An escape sequence follows within a few milliseconds; a lone ESC does not.
  struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
  unsigned char seq[2];
  if (poll(&pfd, 1, 50) <= 0 || read(STDIN_FILENO, &seq[0], 1) != 1) return 0x1b;
  if (seq[0] != '[' && seq[0] != 'O') return 0x1b;
  if (poll(&pfd, 1, 50) <= 0 || read(STDIN_FILENO, &seq[1], 1) != 1) return 0x1b;
  switch (seq[1]) {
  case 'A': return KEY_UP;
  case 'B': return KEY_DOWN;
  case 'C': return KEY_RIGHT;
  case 'D': return KEY_LEFT;
  default: return 0x1b;
  }
}

static void flush_screen(screen *s) {
  size_t off = 0;
  while (off < s->len) {
    ssize_t n = write(STDOUT_FILENO, s->buf + off, s->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  s->len = 0;
}

static int play_interactive(ag_crafter_env *env, play_state *ps) {
  if (enter_raw_mode()) return ag_cli_error("crafter play: cannot set the terminal to raw mode");
  screen s = {0};
  bool done = false;
  int rc = 0;
  message(ps, "a new world (seed %lld): press keys to act; the world waits for you",
          (long long)env->seed);
  for (;;) {
    out(&s, "\x1b[H\x1b[2J");
    draw(&s, env, ps, true, "\r\n");
    if (done) out(&s, "episode over: n = new episode, q = quit\r\n");
    flush_screen(&s);
    int key = read_key();
    if (key < 0 || key == 'q' || key == 'Q' || key == 4 /* Ctrl-D */) break;
    if (done) {
      if (key == 'n' || key == 'N') {
        if (ag_crafter_reset(env)) {
          rc = 1;
          break;
        }
        done = false;
        ps->episode_return = 0;
        ps->n_messages = 0;
        message(ps, "episode %lld", (long long)env->episode);
      }
      continue;
    }
    int action = key == KEY_UP      ? MOVE_UP
                 : key == KEY_DOWN  ? MOVE_DOWN
                 : key == KEY_LEFT  ? MOVE_LEFT
                 : key == KEY_RIGHT ? MOVE_RIGHT
                                    : key_action(key);
    if (action < 0) {
      if (isprint(key))
        message(ps, "key '%c' does nothing (the keys are listed below)", key);
      else
        message(ps, "that key does nothing (the keys are listed below)");
      continue;
    }
    if (play_step(env, ps, action, &done)) {
      rc = 1;
      break;
    }
  }
  restore_terminal();
  free(s.buf);
  if (rc) return ag_cli_error("%s", ag_error_message());
  return 0;
}

/* ---- scripted play ------------------------------------------------------------------ */

/* Parses action tokens (names or ids, separated by spaces, commas or
 * newlines; '#' starts a comment) into *actions. Returns 0, or prints the
 * error and returns 2. */
static int parse_actions(const char *text, int **actions, int *count) {
  *actions = NULL;
  *count = 0;
  int cap = 0, token = 0;
  const char *p = text;
  while (*p) {
    if (*p == '#') {
      while (*p && *p != '\n') p++;
      continue;
    }
    if (isspace((unsigned char)*p) || *p == ',') {
      p++;
      continue;
    }
    const char *start = p;
    while (*p && !isspace((unsigned char)*p) && *p != ',' && *p != '#') p++;
    int len = (int)(p - start);
    token++;
    char word[64];
    snprintf(word, sizeof word, "%.*s", len < 63 ? len : 63, start);
    int action = -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(word, &end, 10);
    if (end != word && *end == '\0') {
      if (errno || v < 0 || v >= AG_CRAFTER_ACTION_COUNT) {
        free(*actions);
        *actions = NULL;
        fprintf(stderr,
                "agora: error: crafter play: invalid action id %s (action %d; valid ids: 0..%d)\n",
                word, token, AG_CRAFTER_ACTION_COUNT - 1);
        return 2;
      }
      action = (int)v;
    } else {
      for (int a = 0; a < AG_CRAFTER_ACTION_COUNT; a++)
        if (!strcmp(word, ag_crafter_action_name(a))) action = a;
    }
    if (action < 0) {
      free(*actions);
      *actions = NULL;
      fprintf(stderr,
              "agora: error: crafter play: unknown action '%s' (action %d): give action names "
              "(noop, move_left, move_right, move_up, move_down, do, sleep, place_stone, ...) or "
              "ids 0..%d\n",
              word, token, AG_CRAFTER_ACTION_COUNT - 1);
      return 2;
    }
    if (*count == cap) {
      cap = cap ? cap * 2 : 64;
      int *grown = realloc(*actions, sizeof(int) * (size_t)cap);
      if (!grown) {
        free(*actions);
        *actions = NULL;
        fprintf(stderr, "agora: error: out of memory\n");
        return 1;
      }
      *actions = grown;
    }
    (*actions)[(*count)++] = action;
  }
  return 0;
}

static char *read_all(FILE *f) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  size_t n;
  while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (len + 1 == cap) {
      char *grown = realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        return NULL;
      }
      buf = grown;
      cap *= 2;
    }
  }
  buf[len] = '\0';
  return buf;
}

static int play_script(ag_crafter_env *env, play_state *ps, const int *actions, int count,
                       bool every_frame) {
  screen s = {0};
  if (every_frame) {
    draw(&s, env, ps, false, "\n");
    fputs(s.buf ? s.buf : "", stdout);
    s.len = 0;
  }
  bool done = false;
  int played = 0;
  for (; played < count && !done; played++) {
    ps->n_messages = 0; // each step shows only its own news
    if (play_step(env, ps, actions[played], &done)) {
      free(s.buf);
      return ag_cli_error("%s", ag_error_message());
    }
    if (every_frame) {
      printf("\n-- step %lld: %s --\n", (long long)env->step,
             ag_crafter_action_name(actions[played]));
      draw(&s, env, ps, false, "\n");
      fputs(s.buf ? s.buf : "", stdout);
      s.len = 0;
    } else {
      for (int m = 0; m < ps->n_messages; m++)
        printf("step %lld: %s\n", (long long)env->step, ps->messages[m]);
    }
  }
  ps->n_messages = 0;
  if (!every_frame) {
    printf("\n");
    draw(&s, env, ps, false, "\n");
    fputs(s.buf ? s.buf : "", stdout);
  }
  if (done && played < count) printf("the episode ended after %d of %d actions\n", played, count);
  free(s.buf);
  return 0;
}

/* ---- the command ---------------------------------------------------------------------- */

int ag_cli_crafter_play(int argc, char **argv) {
  int64_t seed = 0;
  const char *actions_text = NULL, *script = NULL, *color = "auto";
  bool text = false, frames = false, narrow = false;
  ag_flag flags[] = {
      {.name = "seed",
       .type = AG_FLAG_INT64,
       .value = &seed,
       .metavar = "S",
       .help = "the world, as crafter.Env(seed=S) (n after an episode ends plays the next one)"},
      {.name = "actions",
       .type = AG_FLAG_STRING,
       .value = &actions_text,
       .metavar = "LIST",
       .help = "play these actions without a terminal: names or ids 0..16, separated by spaces "
               "or commas (\"move_left,do,do,place_table\"), then print the transcript"},
      {.name = "script",
       .type = AG_FLAG_STRING,
       .value = &script,
       .metavar = "FILE",
       .help = "like --actions, read from FILE ('-' = stdin; '#' starts a comment)"},
      {.name = "frames",
       .type = AG_FLAG_BOOL,
       .value = &frames,
       .help = "with --actions/--script: print the screen after every action (default: the "
               "achievements as they unlock and the last screen)"},
      {.name = "text",
       .type = AG_FLAG_BOOL,
       .value = &text,
       .help = "also show the text observation a language-model agent gets"},
      {.name = "color",
       .type = AG_FLAG_CHOICE,
       .value = &color,
       .choices = "auto|always|never",
       .help = "colours: auto = on a terminal (24-bit when $COLORTERM says truecolor, else 256)"},
      {.name = "narrow",
       .type = AG_FLAG_BOOL,
       .value = &narrow,
       .help = "one terminal column per tile (default two, so tiles look square)"},
  };
  static const char EPILOG[] =
      "Keys (the original's GUI keymap): w a s d or the arrows move (and turn), space = do "
      "(collect, drink, attack), tab = sleep, r = place stone, t = place table, f = place "
      "furnace, p = place plant, 1..6 = make wood pickaxe, stone pickaxe, iron pickaxe, wood "
      "sword, stone sword, iron sword, '.' = wait a step (noop), q = quit, n = a new episode "
      "after one ends. The world advances one step per key. Ctrl-C also quits; the terminal is "
      "restored either way.";
  ag_command cmd = {
      .name = "crafter play",
      .summary = "Plays Crafter in the terminal: a coloured character view of the 9x7 local "
                 "view, vitals, inventory and achievements as they unlock. Needs a terminal, "
                 "unless the moves come from --actions or --script.",
      .flags = flags,
      .flag_count = (int)(sizeof flags / sizeof *flags),
      .epilog = EPILOG,
  };
  ag_args_result res = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (res == AG_ARGS_HELP) return 0;
  if (res != AG_ARGS_OK) return 2;
  if (actions_text && script)
    return ag_args_usage_error(&cmd, "give --actions or --script, not both");
  bool scripted = actions_text || script;
  if (!scripted && !(isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)))
    return ag_args_usage_error(&cmd, "it needs a terminal (stdin and stdout are not "
                                     "both a TTY); to play without one give the moves with "
                                     "--actions LIST or --script FILE");
  play_state ps = {.cell_width = narrow ? 1 : 2, .show_text = text};
  bool tty_out = isatty(STDOUT_FILENO);
  if (!strcmp(color, "always") || (!strcmp(color, "auto") && tty_out)) {
    const char *ct = getenv("COLORTERM");
    ps.mode = ct && (strstr(ct, "truecolor") || strstr(ct, "24bit")) ? COLOR_TRUE : COLOR_256;
  }
  int *actions = NULL, count = 0;
  if (scripted) {
    char *owned = NULL;
    const char *src = actions_text;
    if (script) {
      FILE *f = strcmp(script, "-") ? fopen(script, "r") : stdin;
      if (!f) return ag_cli_error("crafter play: cannot open %s: %s", script, strerror(errno));
      owned = read_all(f);
      if (f != stdin) fclose(f);
      if (!owned) return ag_cli_error("crafter play: cannot read %s", script);
      src = owned;
    }
    int rc = parse_actions(src, &actions, &count);
    free(owned);
    if (rc) return rc;
  }
  ag_crafter_env *env = NULL;
  if (ag_crafter_create(seed, &env) || ag_crafter_reset(env)) {
    free(actions);
    ag_crafter_destroy(env);
    return ag_cli_error("%s", ag_error_message());
  }
  int rc = scripted ? play_script(env, &ps, actions, count, frames) : play_interactive(env, &ps);
  free(actions);
  ag_crafter_destroy(env);
  return rc;
}
