/* Logging to stderr and a monotonic clock. */
#include <stdio.h>
#include <time.h>

#include "agora/base.h"

static ag_log_level current_level = AG_LOG_INFO;

void ag_log_set_level(ag_log_level level) { current_level = level; }
ag_log_level ag_log_get_level(void) { return current_level; }

void ag_log_write(ag_log_level level, const char *fmt, ...) {
  if (level < current_level) return;
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
