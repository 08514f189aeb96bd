/* JSON files and streaming JSONL over jansson.
 *
 * The JSONL reader holds one line at a time in a buffer that getline grows
 * to the longest line seen, so a 100 GB dataset reads in the memory of its
 * longest record. A bad line stops the read with FILE:LINE and jansson's
 * message: silently skipping records would change a dataset unnoticed. */
#include "agora/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ag_jsonl_reader {
  FILE *file;
  char *path;
  char *line;          /* getline's buffer, reused for every line */
  size_t capacity;     /* bytes allocated for line */
  int64_t line_number; /* of the line last read */
  ag_status failed;    /* sticky: after an error every call fails */
};

ag_status ag_jsonl_open(const char *path, ag_jsonl_reader **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int err = errno;
    return ag_error_set(err == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, "cannot open %s: %s", path,
                        strerror(err));
  }
  ag_jsonl_reader *r = calloc(1, sizeof *r);
  if (r) r->path = strdup(path);
  if (!r || !r->path) {
    free(r);
    fclose(f);
    return ag_error_set(AG_ERR_NOMEM, "cannot read %s: out of memory", path);
  }
  r->file = f;
  *out = r;
  return AG_OK;
}

static bool is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
  return true;
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER:
  case JSON_REAL: return "a number";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  default: return "an object";
  }
}

ag_status ag_jsonl_next(ag_jsonl_reader *r, json_t **value) {
  *value = NULL;
  if (r->failed)
    return ag_error_set(r->failed, "%s:%lld: reading stopped at an earlier error", r->path,
                        (long long)r->line_number);
  for (;;) {
    errno = 0;
    ssize_t got = getline(&r->line, &r->capacity, r->file);
    if (got < 0) {
      if (ferror(r->file) || errno == ENOMEM || errno == EOVERFLOW) {
        int err = errno;
        r->failed = err == ENOMEM ? AG_ERR_NOMEM : AG_ERR_IO;
        return ag_error_set(r->failed, "%s:%lld: cannot read: %s", r->path,
                            (long long)r->line_number + 1, strerror(err));
      }
      return AG_OK; /* end of file */
    }
    r->line_number++;
    size_t n = (size_t)got;
    /* "\n", "\r\n" or nothing (last line) ends a line. */
    if (n > 0 && r->line[n - 1] == '\n') n--;
    if (n > 0 && r->line[n - 1] == '\r') n--;
    /* A UTF-8 byte order mark, which some editors put first, is not JSON. */
    char *text = r->line;
    if (r->line_number == 1 && n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
      text += 3;
      n -= 3;
    }
    if (is_blank(text, n)) continue;

    json_error_t error;
    json_t *v = json_loadb(text, n, JSON_DECODE_ANY, &error);
    if (!v) {
      r->failed = AG_ERR_FORMAT;
      return ag_error_set(AG_ERR_FORMAT, "%s:%lld: %s", r->path, (long long)r->line_number,
                          error.text);
    }
    if (!json_is_object(v)) {
      const char *type = json_type_name(v);
      json_decref(v);
      r->failed = AG_ERR_FORMAT;
      return ag_error_set(AG_ERR_FORMAT, "%s:%lld: expected a JSON object, got %s", r->path,
                          (long long)r->line_number, type);
    }
    *value = v;
    return AG_OK;
  }
}

int64_t ag_jsonl_line(const ag_jsonl_reader *r) { return r ? r->line_number : 0; }

size_t ag_jsonl_buffer_bytes(const ag_jsonl_reader *r) { return r ? r->capacity : 0; }

void ag_jsonl_close(ag_jsonl_reader *r) {
  if (!r) return;
  fclose(r->file);
  free(r->line);
  free(r->path);
  free(r);
}

ag_status ag_jsonl_write(FILE *f, const json_t *value) {
  if (!f || !value) return ag_error_set(AG_ERR_INVALID, "jsonl write: no file or no value");
  if (!json_is_object(value))
    return ag_error_set(AG_ERR_INVALID, "jsonl write: expected a JSON object, got %s",
                        json_type_name(value));
  /* Compact output has no newlines: strings escape theirs. */
  errno = 0;
  if (json_dumpf(value, f, JSON_COMPACT) != 0 || fputc('\n', f) == EOF || fflush(f) != 0)
    return ag_error_set(AG_ERR_IO, "jsonl write: %s",
                        errno ? strerror(errno) : "cannot encode the value");
  return AG_OK;
}

ag_status ag_json_load(const char *path, json_t **value) {
  *value = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int err = errno;
    return ag_error_set(err == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, "cannot open %s: %s", path,
                        strerror(err));
  }
  json_error_t error;
  json_t *v = json_loadf(f, JSON_DECODE_ANY, &error);
  fclose(f);
  if (!v) return ag_error_set(AG_ERR_FORMAT, "%s:%d: %s", path, error.line, error.text);
  *value = v;
  return AG_OK;
}

ag_status ag_json_save(const char *path, const json_t *value) {
  if (!value) return ag_error_set(AG_ERR_INVALID, "json save %s: no value", path);
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  FILE *stream = ag_atomic_stream(f);
  errno = 0;
  /* Indented like Hugging Face's config.json, with a final newline. */
  if (json_dumpf(value, stream, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0 ||
      fputc('\n', stream) == EOF) {
    st = ag_error_set(AG_ERR_IO, "cannot write %s: %s", path,
                      errno ? strerror(errno) : "cannot encode the value");
    ag_atomic_abort(f);
    return st;
  }
  return ag_atomic_commit(f);
}
