/* Logging to stderr and a monotonic clock. */
#include "agora/base.h"

#include <stdio.h>
#include <time.h>

static ag_log_level current_level = AG_LOG_INFO;

void ag_log_set_level(ag_log_level level) { current_level = level; }
ag_log_level ag_log_get_level(void) { return current_level; }

/* In progress.c: erases a progress line being drawn, so that a message does
 * not land in the middle of it. Not public: only logging needs it. */
void ag_progress_clear_line(void);

void ag_log_write(ag_log_level level, const char *fmt, ...) {
  /* AG_LOG_SILENT is a threshold, not a level to write at. */
  if (level < current_level || level >= AG_LOG_SILENT) return;
  ag_progress_clear_line();
  static const char *const prefix[] = {"debug: ", "", "warning: ", "error: ", ""};
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "agora: %s", prefix[level]);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

double ag_time_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
