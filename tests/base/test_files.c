/* Atomic writes (commit replaces, abort leaves the old file and no temp),
 * mkdir -p, file_exists and read_file, including their failures. */
#include "agora/base.h"
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>

static char *path_in_tmp(const char *name) {
  static char buf[4][1024];
  static int next = 0;
  char *p = buf[next++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s", test_tmpdir(), name);
  return p;
}

/* Entries of folder whose name starts with prefix. */
static int count_entries(const char *folder, const char *prefix) {
  DIR *d = opendir(folder);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
  closedir(d);
  return n;
}

static bool file_is(const char *path, const char *content) {
  char *data = NULL;
  size_t bytes = 0;
  if (ag_read_file(path, &data, &bytes) != AG_OK) return false;
  bool same = bytes == strlen(content) && memcmp(data, content, bytes) == 0;
  free(data);
  return same;
}

TEST(commit_creates_then_replaces_the_content) {
  const char *path = path_in_tmp("commit.txt");
  CHECK(!ag_file_exists(path));
  CHECK_OK(ag_atomic_write(path, "first version\n", 14));
  CHECK(file_is(path, "first version\n"));

  ag_atomic_file *f = NULL;
  CHECK_OK(ag_atomic_open(path, &f));
  CHECK(f != NULL);
  if (f) {
    fprintf(ag_atomic_stream(f), "second %d\n", 2);
    /* Until commit, readers still see the old file. */
    CHECK(file_is(path, "first version\n"));
    CHECK(count_entries(test_tmpdir(), "commit.txt.tmp.") == 1);
    CHECK_OK(ag_atomic_commit(f));
  }
  CHECK(file_is(path, "second 2\n"));
  CHECK(count_entries(test_tmpdir(), "commit.txt.tmp.") == 0);
  CHECK_OK(ag_atomic_write(path, "", 0)); /* an empty file is a valid file */
  CHECK(file_is(path, ""));
}

TEST(abort_keeps_the_old_file_and_leaves_no_temp) {
  const char *path = path_in_tmp("abort.txt");
  CHECK_OK(ag_atomic_write(path, "keep me", 7));
  ag_atomic_file *f = NULL;
  CHECK_OK(ag_atomic_open(path, &f));
  if (f) {
    fputs("half-written garbage", ag_atomic_stream(f));
    fflush(ag_atomic_stream(f));
    ag_atomic_abort(f);
  }
  CHECK(file_is(path, "keep me"));
  CHECK(count_entries(test_tmpdir(), "abort.txt.tmp.") == 0);
  ag_atomic_abort(NULL); /* harmless */
}

TEST(new_files_get_the_usual_mode_not_mkstemps_0600) {
  const char *path = path_in_tmp("mode.txt");
  CHECK_OK(ag_atomic_write(path, "x", 1));
  mode_t mask = umask(022);
  umask(mask);
  struct stat s;
  CHECK(stat(path, &s) == 0);
  CHECK_MSG((s.st_mode & 0777) == (0666 & ~mask), "mode %o", (unsigned)(s.st_mode & 0777));
  /* An existing file keeps its mode when replaced. */
  chmod(path, 0640);
  CHECK_OK(ag_atomic_write(path, "y", 1));
  CHECK(stat(path, &s) == 0 && (s.st_mode & 0777) == 0640);
}

TEST(writing_into_a_missing_folder_names_the_folder) {
  const char *path = path_in_tmp("no-such-folder/sub/out.json");
  ag_atomic_file *f = (ag_atomic_file *)&f; /* must be reset to NULL */
  ag_status st = ag_atomic_open(path, &f);
  CHECK(st != AG_OK);
  CHECK(f == NULL);
  CHECK_MSG(strstr(ag_error_message(), "no-such-folder/sub") != NULL, "message: %s",
            ag_error_message());
  CHECK(ag_atomic_write(path, "x", 1) != AG_OK);
  CHECK(!ag_file_exists(path));
  CHECK(ag_atomic_write("", "x", 1) == AG_ERR_INVALID);
}

TEST(mkdir_p_creates_parents_and_accepts_existing_folders) {
  const char *deep = path_in_tmp("a/b//c/d/");
  CHECK_OK(ag_mkdir_p(deep));
  const char *d = path_in_tmp("a/b/c/d");
  struct stat s;
  CHECK(stat(d, &s) == 0 && S_ISDIR(s.st_mode));
  CHECK_OK(ag_mkdir_p(d)); /* again: fine */
  CHECK_OK(ag_mkdir_p(test_tmpdir()));
  /* A file in the way is an error naming it. */
  const char *file = path_in_tmp("a/plain");
  CHECK_OK(ag_atomic_write(file, "x", 1));
  const char *below_file = path_in_tmp("a/plain/sub");
  CHECK(ag_mkdir_p(below_file) == AG_ERR_IO);
  CHECK_MSG(strstr(ag_error_message(), "a/plain") != NULL, "message: %s", ag_error_message());
  CHECK(ag_mkdir_p(file) == AG_ERR_IO);
  CHECK(ag_mkdir_p("") == AG_ERR_INVALID);
  /* An atomic write into the new folder now works. */
  CHECK_OK(ag_atomic_write(path_in_tmp("a/b/c/d/out.txt"), "ok", 2));
}

TEST(read_file_returns_bytes_and_a_terminating_nul) {
  const char *path = path_in_tmp("binary.bin");
  /* Larger than any stdio buffer, with NUL bytes inside. */
  size_t n = 300000;
  unsigned char *data = malloc(n);
  for (size_t i = 0; i < n; i++) data[i] = (unsigned char)(i * 7 + (i >> 8));
  CHECK_OK(ag_atomic_write(path, data, n));
  char *back = NULL;
  size_t bytes = 0;
  CHECK_OK(ag_read_file(path, &back, &bytes));
  CHECK(bytes == n);
  CHECK(back && memcmp(back, data, n) == 0 && back[n] == '\0');
  free(back);
  free(data);

  /* The size argument is optional; a missing file is NOT_FOUND. */
  CHECK_OK(ag_read_file(path_in_tmp("commit.txt"), &back, NULL));
  free(back);
  back = (char *)path;
  CHECK(ag_read_file(path_in_tmp("missing.txt"), &back, &bytes) == AG_ERR_NOT_FOUND);
  CHECK(back == NULL && bytes == 0);
  CHECK(strstr(ag_error_message(), "missing.txt") != NULL);
}

TEST(read_file_reads_files_that_report_no_size) {
  /* /proc files have st_size 0 but content. */
  char *data = NULL;
  size_t bytes = 0;
  if (ag_file_exists("/proc/self/status")) {
    CHECK_OK(ag_read_file("/proc/self/status", &data, &bytes));
    CHECK(bytes > 0 && data && strstr(data, "Name:") != NULL);
    free(data);
  }
}

TEST(file_exists_tells_files_from_missing_ones) {
  CHECK(ag_file_exists(test_tmpdir()));
  CHECK(!ag_file_exists(path_in_tmp("nothing-here")));
  CHECK(!ag_file_exists(NULL));
}

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (!d) {
    remove(path);
    return;
  }
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char child[2048];
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    remove_tree(child);
  }
  closedir(d);
  remove(path);
}

int main(void) {
  RUN(commit_creates_then_replaces_the_content);
  RUN(abort_keeps_the_old_file_and_leaves_no_temp);
  RUN(new_files_get_the_usual_mode_not_mkstemps_0600);
  RUN(writing_into_a_missing_folder_names_the_folder);
  RUN(mkdir_p_creates_parents_and_accepts_existing_folders);
  RUN(read_file_returns_bytes_and_a_terminating_nul);
  RUN(read_file_reads_files_that_report_no_size);
  RUN(file_exists_tells_files_from_missing_ones);
  remove_tree(test_tmpdir());
  TEST_MAIN_END();
}
