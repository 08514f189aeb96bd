/* A one-line progress display on stderr:
 *   label  done/total unit  rate unit/s  ETA mm:ss  note
 * redrawn in place with '\r' at most every REDRAW_INTERVAL_SECONDS, and only
 * when stderr is a terminal and quiet mode is off, so logs piped to a file
 * stay clean. Updates allocate nothing: a hot loop pays one clock read. */
#include "agora/base.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* ~10 redraws a second looks live and costs nothing measurable. */
#define REDRAW_INTERVAL_SECONDS 0.1
#define NOTE_MAX_BYTES          160
#define TEXT_MAX_BYTES          512
/* Width used when the terminal does not say (the classic 80 columns). */
#define DEFAULT_COLUMNS 80
/* An ETA past 99:59:59 is shown as ">99h" rather than a huge number. */
#define ETA_MAX_SECONDS 359999.0

struct ag_progress {
  char *label, *unit;
  int64_t total; /* <= 0: unknown, so no ETA */
  int64_t done;
  double start_seconds, last_draw_seconds;
  bool terminal;      /* stderr was a terminal at begin */
  bool drawn;         /* something was drawn: end finishes the line */
  size_t shown_width; /* characters of our line now on screen (0: none) */
  char note[NOTE_MAX_BYTES];
  /* '\r' + text + blanks over a longer previous line; 2x for the blanks. */
  char line[2 * TEXT_MAX_BYTES + 2];
};

static bool quiet_mode = false;
/* The display whose line is on screen: log messages erase it first, and a
 * second display drawing over it blanks its leftovers. */
static ag_progress *on_screen = NULL;

void ag_progress_set_quiet(bool quiet) { quiet_mode = quiet; }
bool ag_progress_get_quiet(void) { return quiet_mode; }

ag_progress *ag_progress_begin(const char *label, int64_t total, const char *unit) {
  ag_progress *p = calloc(1, sizeof *p);
  if (!p) return NULL; /* callers pass NULL on to update/end, which ignore it */
  p->label = strdup(label ? label : "");
  p->unit = strdup(unit ? unit : "");
  if (!p->label || !p->unit) {
    free(p->label);
    free(p->unit);
    free(p);
    return NULL;
  }
  p->total = total;
  p->start_seconds = ag_time_seconds();
  /* The first draw waits one interval, so quick work never flickers. */
  p->last_draw_seconds = p->start_seconds;
  p->terminal = isatty(STDERR_FILENO) == 1;
  return p;
}

static size_t terminal_columns(void) {
  struct winsize ws;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return DEFAULT_COLUMNS;
}

/* Appends printf-style text at *len, never past cap (text is cut instead). */
__attribute__((format(printf, 4, 5))) static void append(char *buf, size_t cap, size_t *len,
                                                         const char *fmt, ...) {
  if (*len + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

static void format_rate(char *buf, size_t cap, double per_second) {
  if (per_second >= 100)
    snprintf(buf, cap, "%.0f", per_second);
  else if (per_second >= 10)
    snprintf(buf, cap, "%.1f", per_second);
  else
    snprintf(buf, cap, "%.2f", per_second);
}

static void format_eta(char *buf, size_t cap, double seconds) {
  if (!(seconds >= 0)) { /* no rate yet (also catches NaN) */
    snprintf(buf, cap, "--:--");
    return;
  }
  if (seconds > ETA_MAX_SECONDS) {
    snprintf(buf, cap, ">99h");
    return;
  }
  long s = (long)(seconds + 0.5);
  if (s >= 3600)
    snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(buf, cap, "%02ld:%02ld", s / 60, s % 60);
}

/* Formats the display text (without '\r') into text; returns its length. */
static size_t format_text(const ag_progress *p, double now, char *text, size_t cap) {
  size_t len = 0;
  double elapsed = now - p->start_seconds;
  double rate = elapsed > 0 ? (double)p->done / elapsed : 0;
  const char *space = p->unit[0] ? " " : "";
  char rate_text[32];
  format_rate(rate_text, sizeof rate_text, rate);

  append(text, cap, &len, "%s  %lld", p->label, (long long)p->done);
  if (p->total > 0) append(text, cap, &len, "/%lld", (long long)p->total);
  append(text, cap, &len, "%s%s  %s %s/s", space, p->unit, rate_text, p->unit[0] ? p->unit : "it");
  if (p->total > 0) {
    char eta_text[32];
    double remaining = (double)(p->total - p->done);
    double eta = remaining <= 0 ? 0 : rate > 0 ? remaining / rate : -1;
    format_eta(eta_text, sizeof eta_text, eta);
    append(text, cap, &len, "  ETA %s", eta_text);
  }
  if (p->note[0]) append(text, cap, &len, "  %s", p->note);
  return len;
}

static void draw(ag_progress *p, double now) {
  char text[TEXT_MAX_BYTES];
  size_t width = format_text(p, now, text, sizeof text);
  /* Stay on one row: a line that wraps cannot be redrawn with '\r'. */
  size_t columns = terminal_columns();
  if (width > columns - 1) width = columns - 1;

  size_t previous = p->shown_width;
  if (on_screen && on_screen != p) {
    if (on_screen->shown_width > previous) previous = on_screen->shown_width;
    on_screen->shown_width = 0;
  }
  size_t len = 0;
  p->line[len++] = '\r';
  memcpy(p->line + len, text, width);
  len += width;
  /* Blank what a longer previous line left behind. */
  for (size_t i = width; i < previous && len < sizeof p->line; i++) p->line[len++] = ' ';
  fwrite(p->line, 1, len, stderr);
  fflush(stderr);

  p->shown_width = width;
  p->drawn = true;
  p->last_draw_seconds = now;
  on_screen = p;
}

void ag_progress_update(ag_progress *p, int64_t done) {
  if (!p) return;
  p->done = done;
  if (!p->terminal || quiet_mode) return;
  double now = ag_time_seconds();
  if (now - p->last_draw_seconds < REDRAW_INTERVAL_SECONDS) return;
  draw(p, now);
}

void ag_progress_set_note(ag_progress *p, const char *fmt, ...) {
  if (!p) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->note, sizeof p->note, fmt, ap);
  va_end(ap);
  /* A newline or tab in the note would break the one-line display. */
  for (char *c = p->note; *c; c++)
    if ((unsigned char)*c < ' ') *c = ' ';
}

void ag_progress_clear_line(void) {
  if (!on_screen || on_screen->shown_width == 0) return;
  char blank[TEXT_MAX_BYTES + 2];
  size_t n = on_screen->shown_width;
  blank[0] = '\r';
  memset(blank + 1, ' ', n);
  blank[n + 1] = '\r';
  fwrite(blank, 1, n + 2, stderr);
  fflush(stderr);
  on_screen->shown_width = 0;
  /* Redraw at the next update rather than leave the display missing. */
  on_screen->last_draw_seconds = 0;
}

void ag_progress_end(ag_progress *p) {
  if (!p) return;
  if (p->drawn) {
    /* The final state, then a newline so later output starts clean. */
    if (!quiet_mode) draw(p, ag_time_seconds());
    if (p->shown_width > 0) {
      fputc('\n', stderr);
      fflush(stderr);
    }
  }
  if (on_screen == p) on_screen = NULL;
  free(p->label);
  free(p->unit);
  free(p);
}
