/* JSONL reading and writing: good files, every malformed case reported with
 * FILE:LINE and never skipped, line-ending variants, and a large file
 * streamed in bounded memory. JSON files: load and atomic save. */
#include "agora/json.h"
#include "test.h"

#include <dirent.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static const char *write_text(const char *name, const char *content) {
  static char buf[4][1024];
  static int next = 0;
  char *path = buf[next++ % 4];
  snprintf(path, sizeof buf[0], "%s/%s", test_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    exit(2);
  }
  fwrite(content, 1, strlen(content), f);
  fclose(f);
  return path;
}

/* Reads every object; returns how many, or -1 at the first error (with
 * *line set to the reader's line number then). Values of "id" go to ids. */
static int read_all(const char *path, ag_status *status, int64_t *line, long long *ids,
                    int max_ids) {
  ag_jsonl_reader *r = NULL;
  *status = ag_jsonl_open(path, &r);
  if (*status) return -1;
  int count = 0;
  for (;;) {
    json_t *v = NULL;
    *status = ag_jsonl_next(r, &v);
    *line = ag_jsonl_line(r);
    if (*status) {
      ag_jsonl_close(r);
      return -1;
    }
    if (!v) break;
    if (ids && count < max_ids) ids[count] = json_integer_value(json_object_get(v, "id"));
    json_decref(v);
    count++;
  }
  ag_jsonl_close(r);
  return count;
}

TEST(good_file_reads_every_object_in_order) {
  const char *path = write_text("good.jsonl", "{\"id\":1,\"text\":\"a\"}\n"
                                              "{\"id\":2,\"nested\":{\"x\":[1,2,3]}}\n"
                                              "{\"id\":3,\"text\":\"line\\nbreak \\u00e9\"}\n");
  ag_status st;
  int64_t line;
  long long ids[8];
  CHECK(read_all(path, &st, &line, ids, 8) == 3);
  CHECK_OK(st);
  CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
  CHECK(line == 3);
}

TEST(malformed_line_names_file_and_line_and_is_not_skipped) {
  const char *path = write_text("bad.jsonl", "{\"id\":1}\n"
                                             "{\"id\":2}\n"
                                             "{\"id\":3, \"oops\": }\n"
                                             "{\"id\":4}\n");
  ag_jsonl_reader *r = NULL;
  CHECK_OK(ag_jsonl_open(path, &r));
  json_t *v = NULL;
  CHECK_OK(ag_jsonl_next(r, &v));
  json_decref(v);
  CHECK_OK(ag_jsonl_next(r, &v));
  json_decref(v);
  ag_status st = ag_jsonl_next(r, &v);
  CHECK(st == AG_ERR_FORMAT);
  CHECK(v == NULL);
  CHECK(ag_jsonl_line(r) == 3);
  char expected[1100];
  snprintf(expected, sizeof expected, "%s:3: ", path);
  const char *msg = ag_error_message();
  CHECK_MSG(strncmp(msg, expected, strlen(expected)) == 0, "message: %s", msg);
  CHECK_MSG(strlen(msg) > strlen(expected) + 5, "no jansson text in: %s", msg);
  /* Line 4 is fine, but the reader never skips past the bad line. */
  CHECK(ag_jsonl_next(r, &v) == AG_ERR_FORMAT);
  CHECK(v == NULL);
  ag_jsonl_close(r);
}

TEST(trailing_garbage_and_truncated_lines_are_errors) {
  const char *cases[] = {"{\"a\":1} x\n", "{\"a\":1}{\"b\":2}\n", "{\"a\":\n", "{\"a\":1",
                         "{'a':1}\n"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *path = write_text("garbage.jsonl", cases[i]);
    ag_status st;
    int64_t line;
    CHECK_MSG(read_all(path, &st, &line, NULL, 0) == -1, "case %zu accepted", i);
    CHECK(st == AG_ERR_FORMAT && line == 1);
    CHECK(strstr(ag_error_message(), "garbage.jsonl:1: ") != NULL);
  }
}

TEST(valid_json_that_is_not_an_object_is_an_error) {
  const char *values[] = {"[1,2,3]", "42", "\"text\"", "null", "true"};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char content[128];
    snprintf(content, sizeof content, "{\"ok\":1}\n%s\n", values[i]);
    const char *path = write_text("nonobject.jsonl", content);
    ag_status st;
    int64_t line;
    CHECK_MSG(read_all(path, &st, &line, NULL, 0) == -1, "%s accepted", values[i]);
    CHECK(st == AG_ERR_FORMAT && line == 2);
    CHECK_MSG(strstr(ag_error_message(), "nonobject.jsonl:2: expected a JSON object") != NULL,
              "message: %s", ag_error_message());
  }
}

TEST(blank_lines_are_skipped_but_counted) {
  const char *path = write_text("blank.jsonl", "\n\n{\"id\":1}\n   \n\t\n{\"id\":2}\n\n\n");
  ag_status st;
  int64_t line;
  long long ids[4];
  CHECK(read_all(path, &st, &line, ids, 4) == 2);
  CHECK(ids[0] == 1 && ids[1] == 2);
  /* An error after blank lines still reports the true line number. */
  path = write_text("blank-bad.jsonl", "{\"id\":1}\n\n\n{bad}\n");
  CHECK(read_all(path, &st, &line, NULL, 0) == -1);
  CHECK(line == 4 && strstr(ag_error_message(), "blank-bad.jsonl:4: ") != NULL);
  /* Empty and blank-only files hold no objects. */
  CHECK(read_all(write_text("empty.jsonl", ""), &st, &line, NULL, 0) == 0);
  CHECK(read_all(write_text("only-blank.jsonl", "\n\r\n \n"), &st, &line, NULL, 0) == 0);
}

TEST(crlf_endings_and_a_missing_final_newline_are_accepted) {
  const char *path = write_text("crlf.jsonl", "{\"id\":1}\r\n\r\n{\"id\":2}\r\n{\"id\":3}");
  ag_status st;
  int64_t line;
  long long ids[4];
  CHECK(read_all(path, &st, &line, ids, 4) == 3);
  CHECK_OK(st);
  CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 3);
  /* A byte order mark before the first object, as some editors write. */
  path = write_text("bom.jsonl", "\xEF\xBB\xBF{\"id\":7}\n");
  CHECK(read_all(path, &st, &line, ids, 4) == 1 && ids[0] == 7);
}

TEST(missing_file_is_not_found) {
  ag_jsonl_reader *r = (ag_jsonl_reader *)&r;
  CHECK(ag_jsonl_open("/nonexistent/agora/x.jsonl", &r) == AG_ERR_NOT_FOUND);
  CHECK(r == NULL);
  CHECK(strstr(ag_error_message(), "/nonexistent/agora/x.jsonl") != NULL);
}

TEST(write_then_read_round_trips) {
  char path[1024];
  snprintf(path, sizeof path, "%s/roundtrip.jsonl", test_tmpdir());
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  for (int i = 0; i < 100; i++) {
    json_t *v =
        json_pack("{s:i, s:s, s:f}", "id", i, "text", "multi\nline \"quoted\"", "x", i * 0.1);
    CHECK_OK(ag_jsonl_write(f, v));
    json_decref(v);
  }
  /* Only objects are JSONL records. */
  json_t *array = json_array();
  CHECK(ag_jsonl_write(f, array) == AG_ERR_INVALID);
  json_decref(array);
  fclose(f);

  ag_jsonl_reader *r = NULL;
  CHECK_OK(ag_jsonl_open(path, &r));
  int n = 0;
  for (json_t *v; r && ag_jsonl_next(r, &v) == AG_OK && v; n++) {
    CHECK(json_integer_value(json_object_get(v, "id")) == n);
    CHECK(strcmp(json_string_value(json_object_get(v, "text")), "multi\nline \"quoted\"") == 0);
    CHECK(json_real_value(json_object_get(v, "x")) == n * 0.1); /* doubles round-trip */
    CHECK(ag_jsonl_line(r) == n + 1);
    json_decref(v);
  }
  CHECK(n == 100);
  ag_jsonl_close(r);
}

TEST(json_save_is_atomic_and_load_reports_errors) {
  char path[1024];
  snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
  json_t *config =
      json_pack("{s:i, s:s, s:[i,i]}", "hidden_size", 64, "model_type", "llama", "shape", 2, 3);
  CHECK_OK(ag_json_save(path, config));
  json_t *back = NULL;
  CHECK_OK(ag_json_load(path, &back));
  CHECK(back && json_equal(config, back));
  json_decref(back);
  json_decref(config);

  const char *bad = write_text("bad.json", "{\n  \"a\": 1,\n  \"b\": \n}\n");
  back = (json_t *)bad;
  CHECK(ag_json_load(bad, &back) == AG_ERR_FORMAT);
  CHECK(back == NULL);
  CHECK_MSG(strstr(ag_error_message(), "bad.json:4: ") != NULL, "message: %s", ag_error_message());
  CHECK(ag_json_load("/nonexistent/config.json", &back) == AG_ERR_NOT_FOUND);
  json_t *one = json_integer(1);
  CHECK(ag_json_save("/nonexistent/folder/config.json", one) != AG_OK);
  json_decref(one);
}

static long max_rss_kb(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST(large_file_streams_in_bounded_memory) {
  /* ~100 MB of ~250-byte records (25 MB under the sanitizers). */
  long target_bytes = test_scaled(100L << 20, 4L << 20);
  char path[1024];
  snprintf(path, sizeof path, "%s/large.jsonl", test_tmpdir());
  char text[201];
  for (int i = 0; i < 200; i++) text[i] = (char)('a' + i % 26);
  text[200] = '\0';

  double t0 = ag_time_seconds();
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  json_t *record = json_object();
  json_object_set_new(record, "text", json_string(text));
  long records = 0;
  for (long written = 0; written < target_bytes; records++) {
    json_object_set_new(record, "id", json_integer(records));
    json_object_set_new(record, "score", json_real((double)records * 0.25));
    CHECK_OK(ag_jsonl_write(f, record));
    if (records % 1024 == 0) written = ftell(f);
  }
  json_decref(record);
  fclose(f);
  double t1 = ag_time_seconds();

  long rss_before_kb = max_rss_kb();
  ag_jsonl_reader *r = NULL;
  CHECK_OK(ag_jsonl_open(path, &r));
  long count = 0;
  bool in_order = true;
  size_t largest_buffer = 0;
  for (json_t *v; r && ag_jsonl_next(r, &v) == AG_OK && v; count++) {
    in_order &= json_integer_value(json_object_get(v, "id")) == count;
    json_decref(v);
    size_t held = ag_jsonl_buffer_bytes(r);
    if (held > largest_buffer) largest_buffer = held;
  }
  ag_jsonl_close(r);
  double t2 = ag_time_seconds();
  long rss_growth_kb = max_rss_kb() - rss_before_kb;

  fprintf(stderr,
          "  %.0f MB, %ld records: write %.2f s, read %.2f s, line buffer %zu bytes, "
          "peak RSS growth %ld kB\n",
          (double)target_bytes / (1 << 20), records, t1 - t0, t2 - t1, largest_buffer,
          rss_growth_kb);
  CHECK(count == records);
  CHECK(in_order);
  /* One ~250-byte line at a time: the buffer never nears the file size. */
  CHECK_MSG(largest_buffer > 0 && largest_buffer <= 4096, "buffer %zu", largest_buffer);
#ifndef UNDER_ASAN
  /* ASan's quarantine keeps freed memory resident, so RSS says nothing there. */
  CHECK_MSG(rss_growth_kb * 1024 < target_bytes / 10, "RSS grew %ld kB", rss_growth_kb);
#endif
  remove(path);
}

TEST(buffer_tracks_the_longest_line) {
  /* A 1 MB line grows the buffer to hold it, and no further. */
  size_t n = 1 << 20;
  char *content = malloc(n + 64);
  strcpy(content, "{\"id\":1}\n{\"big\":\"");
  size_t len = strlen(content);
  memset(content + len, 'x', n);
  strcpy(content + len + n, "\"}\n{\"id\":3}\n");
  const char *path = write_text("longline.jsonl", content);
  free(content);
  ag_jsonl_reader *r = NULL;
  CHECK_OK(ag_jsonl_open(path, &r));
  json_t *v;
  size_t after_small = 0, after_big = 0;
  for (int i = 0; r && ag_jsonl_next(r, &v) == AG_OK && v; i++) {
    if (i == 0) after_small = ag_jsonl_buffer_bytes(r);
    if (i == 1) {
      after_big = ag_jsonl_buffer_bytes(r);
      CHECK(json_string_length(json_object_get(v, "big")) == n);
    }
    json_decref(v);
  }
  ag_jsonl_close(r);
  CHECK(after_small < 4096);
  CHECK(after_big > n && after_big < 4 * n);
}

/* The scratch folder holds only files. */
static void remove_flat_folder(const char *folder) {
  DIR *d = opendir(folder);
  for (struct dirent *e; d && (e = readdir(d));) {
    char child[2048];
    snprintf(child, sizeof child, "%s/%s", folder, e->d_name);
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) remove(child);
  }
  if (d) closedir(d);
  remove(folder);
}

int main(void) {
  RUN(good_file_reads_every_object_in_order);
  RUN(malformed_line_names_file_and_line_and_is_not_skipped);
  RUN(trailing_garbage_and_truncated_lines_are_errors);
  RUN(valid_json_that_is_not_an_object_is_an_error);
  RUN(blank_lines_are_skipped_but_counted);
  RUN(crlf_endings_and_a_missing_final_newline_are_accepted);
  RUN(missing_file_is_not_found);
  RUN(write_then_read_round_trips);
  RUN(json_save_is_atomic_and_load_reports_errors);
  RUN(large_file_streams_in_bounded_memory);
  RUN(buffer_tracks_the_longest_line);
  remove_flat_folder(test_tmpdir());
  TEST_MAIN_END();
}
