/* Atomic file writes, mkdir -p and small file helpers.
 *
 * An atomic write goes to PATH.tmp.XXXXXX in PATH's own folder (rename is
 * atomic only within one file system), is fsync'ed, then renamed over PATH.
 * A process killed at any point leaves either the old PATH or the new one,
 * never a mix; at worst a stray PATH.tmp.* file. */
#include "agora/base.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ag_atomic_file {
  FILE *stream;
  char *path;      /* the final name */
  char *temp_path; /* PATH.tmp.XXXXXX */
};

/* The folder part of path ("." when there is none), malloc'd. */
static char *folder_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  size_t n = (size_t)(slash - path);
  char *folder = malloc(n + 1);
  if (!folder) return NULL;
  memcpy(folder, path, n);
  folder[n] = '\0';
  return folder;
}

/* mkstemp creates files 0600; a file written by agora should get the mode a
 * plain fopen would give it (0666 minus the umask). umask can only be read
 * by setting it, so that is done once. */
static mode_t process_umask;
static pthread_once_t umask_once = PTHREAD_ONCE_INIT;
static void read_umask(void) {
  process_umask = umask(022);
  umask(process_umask);
}

static ag_status open_failure(const char *path, const char *what) {
  int err = errno;
  ag_status code = err == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO;
  char *folder = folder_of(path);
  if (err == ENOENT || err == ENOTDIR || err == EACCES || err == EROFS)
    code = ag_error_set(code, "cannot %s %s: folder %s: %s", what, path, folder ? folder : "?",
                        strerror(err));
  else
    code = ag_error_set(code, "cannot %s %s: %s", what, path, strerror(err));
  free(folder);
  return code;
}

ag_status ag_atomic_open(const char *path, ag_atomic_file **out) {
  *out = NULL;
  if (!path || !path[0]) return ag_error_set(AG_ERR_INVALID, "atomic write: empty path");
  ag_atomic_file *f = calloc(1, sizeof *f);
  size_t n = strlen(path);
  if (f) f->path = strdup(path);
  if (f) f->temp_path = malloc(n + sizeof ".tmp.XXXXXX");
  if (!f || !f->path || !f->temp_path) {
    if (f) free(f->path);
    free(f);
    return ag_error_set(AG_ERR_NOMEM, "atomic write %s: out of memory", path);
  }
  memcpy(f->temp_path, path, n);
  memcpy(f->temp_path + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");

  int fd = mkstemp(f->temp_path);
  if (fd < 0) {
    ag_status st = open_failure(path, "write");
    free(f->temp_path);
    free(f->path);
    free(f);
    return st;
  }
  /* Keep an existing file's mode; a new file gets the fopen default. */
  struct stat old;
  pthread_once(&umask_once, read_umask);
  mode_t mode = stat(path, &old) == 0 ? (old.st_mode & 07777) : (0666 & ~process_umask);
  fchmod(fd, mode); /* best effort: a failure leaves 0600, which is still usable */

  f->stream = fdopen(fd, "wb");
  if (!f->stream) {
    ag_status st = ag_error_set(AG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    close(fd);
    unlink(f->temp_path);
    free(f->temp_path);
    free(f->path);
    free(f);
    return st;
  }
  *out = f;
  return AG_OK;
}

FILE *ag_atomic_stream(ag_atomic_file *f) { return f ? f->stream : NULL; }

static void atomic_free(ag_atomic_file *f) {
  free(f->temp_path);
  free(f->path);
  free(f);
}

void ag_atomic_abort(ag_atomic_file *f) {
  if (!f) return;
  if (f->stream) fclose(f->stream);
  unlink(f->temp_path);
  atomic_free(f);
}

/* After the rename, the folder entry itself must reach the disk for the new
 * name to survive a power cut. Some file systems refuse to fsync a folder;
 * the data is safe either way, so failures are ignored. */
static void sync_folder(const char *path) {
  char *folder = folder_of(path);
  if (!folder) return;
  int fd = open(folder, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(folder);
}

ag_status ag_atomic_commit(ag_atomic_file *f) {
  if (!f) return ag_error_set(AG_ERR_INVALID, "atomic commit: no file");
  FILE *stream = f->stream;
  f->stream = NULL;
  /* Every step must succeed before the rename: a full disk shows up at
   * fflush, fsync or fclose, and must not replace a good file. */
  int failed = fflush(stream) != 0 || ferror(stream);
  int err = errno;
  if (!failed && fsync(fileno(stream)) != 0) {
    failed = 1;
    err = errno;
  }
  if (fclose(stream) != 0 && !failed) {
    failed = 1;
    err = errno;
  }
  if (failed) {
    ag_status st = ag_error_set(AG_ERR_IO, "cannot write %s: %s", f->path, strerror(err));
    ag_atomic_abort(f);
    return st;
  }
  if (rename(f->temp_path, f->path) != 0) {
    ag_status st = ag_error_set(AG_ERR_IO, "cannot rename %s to %s: %s", f->temp_path, f->path,
                                strerror(errno));
    ag_atomic_abort(f);
    return st;
  }
  sync_folder(f->path);
  atomic_free(f);
  return AG_OK;
}

ag_status ag_atomic_write(const char *path, const void *data, size_t bytes) {
  ag_atomic_file *f;
  ag_status st = ag_atomic_open(path, &f);
  if (st) return st;
  if (bytes && fwrite(data, 1, bytes, f->stream) != bytes) {
    st = ag_error_set(AG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    ag_atomic_abort(f);
    return st;
  }
  return ag_atomic_commit(f);
}

static bool is_folder(const char *path) {
  struct stat s;
  return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

/* Creates one folder; an existing folder is fine (another process may
 * create it between our check and our mkdir). */
static ag_status make_one(const char *whole, const char *prefix) {
  if (mkdir(prefix, 0777) == 0) return AG_OK;
  int err = errno;
  if (err == EEXIST) {
    if (is_folder(prefix)) return AG_OK;
    return ag_error_set(AG_ERR_IO, "cannot create folder %s: %s exists and is not a folder", whole,
                        prefix);
  }
  return ag_error_set(AG_ERR_IO, "cannot create folder %s: %s: %s", whole, prefix, strerror(err));
}

ag_status ag_mkdir_p(const char *path) {
  if (!path || !path[0]) return ag_error_set(AG_ERR_INVALID, "mkdir: empty path");
  if (is_folder(path)) return AG_OK;
  char *copy = strdup(path);
  if (!copy) return ag_error_set(AG_ERR_NOMEM, "mkdir %s: out of memory", path);
  ag_status st = AG_OK;
  /* Each '/' after a name ends a prefix to create; "a//b" and "a/b/" work. */
  for (char *c = copy + 1; *c && st == AG_OK; c++) {
    if (*c != '/' || c[-1] == '/') continue;
    *c = '\0';
    st = make_one(path, copy);
    *c = '/';
  }
  if (st == AG_OK) st = make_one(path, copy);
  free(copy);
  return st;
}

bool ag_file_exists(const char *path) {
  struct stat s;
  return path && stat(path, &s) == 0;
}

ag_status ag_read_file(const char *path, char **data, size_t *bytes) {
  *data = NULL;
  if (bytes) *bytes = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    int err = errno;
    return ag_error_set(err == ENOENT ? AG_ERR_NOT_FOUND : AG_ERR_IO, "cannot open %s: %s", path,
                        strerror(err));
  }
  /* Start from the size the file reports, but read to the end whatever it
   * is: pipes and /proc files report 0, and files can grow meanwhile. */
  struct stat s;
  size_t cap = fstat(fileno(f), &s) == 0 && s.st_size > 0 ? (size_t)s.st_size + 1 : 4096;
  size_t len = 0;
  char *buf = malloc(cap);
  ag_status st = AG_OK;
  while (buf) {
    len += fread(buf + len, 1, cap - len, f);
    if (len < cap) break; /* end of file or an error, told apart below */
    size_t bigger = cap * 2;
    char *grown = bigger > cap ? realloc(buf, bigger) : NULL;
    if (!grown) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap = bigger;
  }
  if (!buf)
    st = ag_error_set(AG_ERR_NOMEM, "cannot read %s: out of memory", path);
  else if (ferror(f))
    st = ag_error_set(AG_ERR_IO, "cannot read %s: %s", path, strerror(errno));
  fclose(f);
  if (st || !buf) {
    free(buf);
    return st;
  }
  buf[len] = '\0'; /* len < cap: the loop left room */
  *data = buf;
  if (bytes) *bytes = len;
  return AG_OK;
}
