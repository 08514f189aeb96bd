/* The progress display, seen through a pseudo-terminal standing in for
 * stderr: what it draws, how often, and that it stays silent when stderr is
 * not a terminal, in quiet mode, and for work shorter than one redraw. */
#define _XOPEN_SOURCE 700 /* posix_openpt, grantpt, unlockpt, ptsname */
#include "agora/base.h"
#include "test.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void sleep_seconds(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* stderr redirected to a pseudo-terminal (or a plain file) for one test. */
typedef struct capture {
  int master;      /* terminal side we read from; -1 for a file */
  int saved_fd;    /* the real stderr */
  char path[1024]; /* the file, when not a terminal */
} capture;

static bool capture_terminal(capture *c, int columns) {
  c->master = posix_openpt(O_RDWR | O_NOCTTY);
  if (c->master < 0 || grantpt(c->master) || unlockpt(c->master)) return false;
  int slave = open(ptsname(c->master), O_RDWR | O_NOCTTY);
  if (slave < 0) return false;
  /* Raw output: no "\n" -> "\r\n", so we read exactly what was written. */
  struct termios t;
  tcgetattr(slave, &t);
  t.c_oflag &= ~(tcflag_t)OPOST;
  tcsetattr(slave, TCSANOW, &t);
  struct winsize ws = {.ws_row = 24, .ws_col = (unsigned short)columns};
  ioctl(slave, TIOCSWINSZ, &ws);
  fflush(stderr);
  c->saved_fd = dup(STDERR_FILENO);
  dup2(slave, STDERR_FILENO);
  close(slave);
  return true;
}

static void capture_file(capture *c) {
  snprintf(c->path, sizeof c->path, "%s/stderr.txt", test_tmpdir());
  c->master = -1;
  int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  fflush(stderr);
  c->saved_fd = dup(STDERR_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
}

/* Restores stderr and returns everything written meanwhile (malloc'd). */
static char *capture_end(capture *c, size_t *length) {
  fflush(stderr);
  size_t cap = 1 << 16, len = 0;
  char *out = malloc(cap);
  if (c->master >= 0) {
    /* Terminal output reaches the master side asynchronously: read until it
     * has been quiet for a while. */
    struct pollfd p = {.fd = c->master, .events = POLLIN};
    while (len + 1 < cap && poll(&p, 1, 100) > 0) {
      ssize_t n = read(c->master, out + len, cap - 1 - len);
      if (n <= 0) break;
      len += (size_t)n;
    }
  }
  dup2(c->saved_fd, STDERR_FILENO);
  close(c->saved_fd);
  if (c->master >= 0) {
    close(c->master);
  } else {
    FILE *f = fopen(c->path, "rb");
    if (f) {
      len = fread(out, 1, cap - 1, f);
      fclose(f);
    }
    remove(c->path);
  }
  out[len] = '\0';
  if (length) *length = len;
  return out;
}

static int count_char(const char *s, size_t n, char ch) {
  int k = 0;
  for (size_t i = 0; i < n; i++) k += s[i] == ch;
  return k;
}

#define NEED_TERMINAL(c, columns)                                                                  \
  if (!capture_terminal(&(c), (columns))) {                                                        \
    fprintf(stderr, "  skipped: no pseudo-terminal here\n");                                       \
    return;                                                                                        \
  }

TEST(draws_counts_rate_eta_and_note_on_a_terminal) {
  capture c;
  NEED_TERMINAL(c, 200);
  ag_progress *p = ag_progress_begin("train", 100, "steps");
  ag_progress_update(p, 10);
  sleep_seconds(0.15);
  ag_progress_set_note(p, "loss %.2f", 0.5);
  ag_progress_update(p, 50);
  ag_progress_end(p);
  size_t n;
  char *out = capture_end(&c, &n);
  CHECK_MSG(strstr(out, "\rtrain  50/100 steps  ") != NULL, "output: %s", out);
  CHECK(strstr(out, " steps/s  ETA ") != NULL);
  CHECK(strstr(out, "  loss 0.50") != NULL);
  /* The line is finished with exactly one newline, at the very end. */
  CHECK(n > 0 && out[n - 1] == '\n' && count_char(out, n, '\n') == 1);
  free(out);
}

TEST(eta_counts_down_from_the_measured_rate) {
  capture c;
  NEED_TERMINAL(c, 200);
  /* 10 of 1000 items in ~0.2 s: the rest takes ~20 s, or 99x the time the
   * 10 items really took on a loaded machine (measured around them). */
  double t0 = ag_time_seconds();
  ag_progress *p = ag_progress_begin("eta", 1000, "items");
  sleep_seconds(0.2);
  ag_progress_update(p, 10);
  double took = ag_time_seconds() - t0;
  ag_progress_end(p);
  char *out = capture_end(&c, NULL);
  const char *eta = strstr(out, "ETA ");
  int minutes = -1, seconds = -1;
  if (eta) sscanf(eta, "ETA %d:%d", &minutes, &seconds);
  int total = minutes * 60 + seconds;
  CHECK_MSG(minutes >= 0 && total >= 10 && total <= (int)(99 * took) + 2, "output: %s", out);
  free(out);
}

TEST(unknown_total_shows_no_eta) {
  capture c;
  NEED_TERMINAL(c, 200);
  ag_progress *p = ag_progress_begin("scan", 0, "files");
  sleep_seconds(0.15);
  ag_progress_update(p, 9);
  ag_progress_end(p);
  char *out = capture_end(&c, NULL);
  CHECK_MSG(strstr(out, "\rscan  9 files  ") != NULL, "output: %s", out);
  CHECK(strstr(out, "files/s") != NULL);
  CHECK(strstr(out, "ETA") == NULL && strstr(out, "/0") == NULL);
  free(out);
}

TEST(redraws_at_most_ten_times_a_second) {
  capture c;
  NEED_TERMINAL(c, 200);
  ag_progress *p = ag_progress_begin("busy", 0, NULL);
  double start = ag_time_seconds();
  long updates = 0;
  while (ag_time_seconds() - start < 0.35) ag_progress_update(p, ++updates);
  ag_progress_end(p);
  size_t n;
  char *out = capture_end(&c, &n);
  int draws = count_char(out, n, '\r');
  /* 3 timed redraws in 0.35 s plus the final one at end. */
  CHECK_MSG(draws >= 2 && draws <= 5, "%d draws for %ld updates", draws, updates);
  CHECK(updates > 1000);
  CHECK(strstr(out, "it/s") != NULL); /* no unit: "it" */
  free(out);
}

TEST(short_work_draws_nothing_at_all) {
  capture c;
  NEED_TERMINAL(c, 200);
  ag_progress *p = ag_progress_begin("quick", 10, "items");
  for (int i = 0; i <= 10; i++) ag_progress_update(p, i);
  ag_progress_end(p);
  size_t n;
  char *out = capture_end(&c, &n);
  CHECK_MSG(n == 0, "output: %s", out);
  free(out);
}

TEST(quiet_mode_draws_nothing) {
  capture c;
  NEED_TERMINAL(c, 200);
  ag_progress_set_quiet(true);
  ag_progress *p = ag_progress_begin("hush", 10, "items");
  sleep_seconds(0.15);
  ag_progress_update(p, 5);
  ag_progress_end(p);
  bool quiet = ag_progress_get_quiet();
  ag_progress_set_quiet(false);
  size_t n;
  char *out = capture_end(&c, &n);
  CHECK(quiet);
  CHECK_MSG(n == 0, "output: %s", out);
  free(out);
}

TEST(stderr_that_is_not_a_terminal_gets_nothing) {
  capture c;
  capture_file(&c);
  ag_progress *p = ag_progress_begin("piped", 10, "items");
  sleep_seconds(0.15);
  ag_progress_update(p, 5);
  ag_progress_set_note(p, "note");
  ag_progress_end(p);
  size_t n;
  char *out = capture_end(&c, &n);
  CHECK_MSG(n == 0, "output: %s", out);
  free(out);
}

TEST(line_is_cut_to_the_terminal_width) {
  capture c;
  NEED_TERMINAL(c, 40);
  ag_progress *p = ag_progress_begin("a-rather-long-label", 1000000, "tokens");
  ag_progress_set_note(p, "a note that is much too long to fit on a forty column terminal");
  sleep_seconds(0.15);
  ag_progress_update(p, 123456);
  ag_progress_end(p);
  size_t n;
  char *out = capture_end(&c, &n);
  /* Every drawn segment (between '\r's, before '\n') fits in 39 columns. */
  size_t longest = 0, run = 0;
  for (size_t i = 0; i < n; i++) {
    if (out[i] == '\r' || out[i] == '\n')
      run = 0;
    else if (++run > longest)
      longest = run;
  }
  CHECK_MSG(longest > 20 && longest <= 39, "longest segment %zu: %s", longest, out);
  free(out);
}

TEST(log_messages_erase_the_line_first) {
  capture c;
  NEED_TERMINAL(c, 200);
  ag_progress *p = ag_progress_begin("work", 10, "items");
  sleep_seconds(0.15);
  ag_progress_update(p, 3);
  ag_warn("disk almost full");
  ag_progress_update(p, 4); /* redrawn at once below the message */
  ag_progress_end(p);
  size_t n;
  char *out = capture_end(&c, &n);
  const char *msg = strstr(out, "agora: warning: disk almost full\n");
  CHECK_MSG(msg != NULL, "output: %s", out);
  /* Just before the message: blanks over the old line, then '\r'. */
  CHECK(msg && msg > out + 2 && msg[-1] == '\r' && msg[-2] == ' ');
  CHECK(msg && strstr(msg, "\rwork  4/10 items") != NULL);
  CHECK(n > 0 && out[n - 1] == '\n');
  free(out);
}

TEST(null_display_is_ignored) {
  ag_progress_update(NULL, 1);
  ag_progress_set_note(NULL, "x");
  ag_progress_end(NULL);
}

int main(void) {
  RUN(draws_counts_rate_eta_and_note_on_a_terminal);
  RUN(eta_counts_down_from_the_measured_rate);
  RUN(unknown_total_shows_no_eta);
  RUN(redraws_at_most_ten_times_a_second);
  RUN(short_work_draws_nothing_at_all);
  RUN(quiet_mode_draws_nothing);
  RUN(stderr_that_is_not_a_terminal_gets_nothing);
  RUN(line_is_cut_to_the_terminal_width);
  RUN(log_messages_erase_the_line_first);
  RUN(null_display_is_ignored);
  remove(test_tmpdir());
  TEST_MAIN_END();
}
