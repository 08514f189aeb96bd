/* docs/base.md: write a JSONL file atomically, then stream it back. */
#include "agora/json.h"

#include <stdio.h>
#include <unistd.h>

int main(void) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/agora-example-%ld.jsonl", (long)getpid());
  ag_atomic_file *f;
  if (ag_atomic_open(path, &f)) goto fail;
  for (int i = 0; i < 3; i++) {
    json_t *row = json_pack("{s:i, s:s}", "id", i, "text", i % 2 ? "odd" : "even");
    ag_status st = ag_jsonl_write(ag_atomic_stream(f), row);
    json_decref(row);
    if (st) {
      ag_atomic_abort(f);
      goto fail;
    }
  }
  if (ag_atomic_commit(f)) goto fail; /* readers now see all three lines or none */
  ag_jsonl_reader *r;
  if (ag_jsonl_open(path, &r)) goto fail;
  json_t *row;
  int count = 0;
  while (ag_jsonl_next(r, &row) == AG_OK && row) {
    printf("line %lld: id %lld, %s\n", (long long)ag_jsonl_line(r),
           (long long)json_integer_value(json_object_get(row, "id")),
           json_string_value(json_object_get(row, "text")));
    json_decref(row);
    count++;
  }
  ag_jsonl_close(r);
  remove(path);
  return count == 3 ? 0 : 1;
fail:
  fprintf(stderr, "agora: error: %s\n", ag_error_message());
  remove(path);
  return 1;
}
