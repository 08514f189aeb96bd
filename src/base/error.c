/* Thread-local error messages behind ag_status. */
#include "agora/base.h"

#include <stdio.h>
#include <string.h>

#define AG_ERROR_MAX 1024

static _Thread_local char error_message[AG_ERROR_MAX];

ag_status ag_error_set(ag_status code, const char *fmt, ...) {
  /* Format into a copy first: callers may pass ag_error_message() as an
   * argument, and vsnprintf into its own source is undefined. */
  char message[AG_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  memcpy(error_message, message, sizeof error_message);
  return code;
}

ag_status ag_error_wrap(ag_status code, const char *fmt, ...) {
  char prefix[AG_ERROR_MAX];
  char old[AG_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, error_message, sizeof old);
  if (old[0])
    snprintf(error_message, sizeof error_message, "%.500s: %.500s", prefix, old);
  else
    snprintf(error_message, sizeof error_message, "%s", prefix);
  return code;
}

const char *ag_error_message(void) { return error_message[0] ? error_message : "no error"; }

void ag_error_clear(void) { error_message[0] = '\0'; }

const char *ag_status_name(ag_status code) {
  switch (code) {
  case AG_OK: return "ok";
  case AG_ERR_INVALID: return "invalid argument";
  case AG_ERR_SHAPE: return "shape mismatch";
  case AG_ERR_IO: return "I/O error";
  case AG_ERR_FORMAT: return "malformed input";
  case AG_ERR_NOMEM: return "out of memory";
  case AG_ERR_NOT_FOUND: return "not found";
  case AG_ERR_UNSUPPORTED: return "unsupported";
  case AG_ERR_INTERNAL: return "internal error";
  }
  return "unknown status";
}
