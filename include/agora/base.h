/* agora base layer: status codes, errors, logging, progress, arenas, RNG,
 * threads, JSONL and atomic file writes. Nothing here knows about tensors. */
#ifndef AGORA_BASE_H
#define AGORA_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ------------------------------------------------ */

/* A function that can fail returns ag_status; 0 is success. The message of
 * the last failure on this thread is kept for ag_error_message(). */
typedef enum ag_status {
  AG_OK = 0,
  AG_ERR_INVALID,     /* bad argument from the caller */
  AG_ERR_SHAPE,       /* tensor shapes that do not fit the op */
  AG_ERR_IO,          /* open/read/write/rename failed */
  AG_ERR_FORMAT,      /* a file or string is malformed */
  AG_ERR_NOMEM,       /* allocation failed */
  AG_ERR_NOT_FOUND,   /* a named thing (file, tensor, dataset) is missing */
  AG_ERR_UNSUPPORTED, /* valid but not implemented (dtype, arch, ...) */
  AG_ERR_INTERNAL     /* a bug in agora: please report */
} ag_status;

/* Records a message for the current thread and returns `code`, so that
 * `return ag_error_set(AG_ERR_IO, "cannot open %s", path);` reads naturally. */
ag_status ag_error_set(ag_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes context to the current message ("loading x: " + old message). */
ag_status ag_error_wrap(ag_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ag_error_message(void);
void ag_error_clear(void);
const char *ag_status_name(ag_status code);

/* ---- logging ---------------------------------------------------------- */

typedef enum ag_log_level {
  AG_LOG_DEBUG = 0,
  AG_LOG_INFO,
  AG_LOG_WARN,
  AG_LOG_ERROR,
  AG_LOG_SILENT
} ag_log_level;

void ag_log_set_level(ag_log_level level);
ag_log_level ag_log_get_level(void);
/* Logs go to stderr; results go to stdout (DESIGN.md). */
void ag_log_write(ag_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ag_debug(...) ag_log_write(AG_LOG_DEBUG, __VA_ARGS__)
#define ag_info(...)  ag_log_write(AG_LOG_INFO, __VA_ARGS__)
#define ag_warn(...)  ag_log_write(AG_LOG_WARN, __VA_ARGS__)

/* ---- time ------------------------------------------------------------- */

double ag_time_seconds(void); /* monotonic clock */

/* ---- progress --------------------------------------------------------- */

/* A one-line progress display on stderr (done/total, rate, ETA). It draws
 * only when stderr is a terminal and quiet mode is off. */
typedef struct ag_progress ag_progress;
void ag_progress_set_quiet(bool quiet);
bool ag_progress_get_quiet(void);
ag_progress *ag_progress_begin(const char *label, int64_t total, const char *unit);
void ag_progress_update(ag_progress *p, int64_t done);
/* Extra text after the counters, e.g. "loss 0.412". */
void ag_progress_set_note(ag_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ag_progress_end(ag_progress *p);

/* ---- arenas ----------------------------------------------------------- */

/* A bump allocator: many allocations, one reset. Memory is kept across
 * resets so a training step that repeats the same work allocates nothing
 * from the heap after the first step. */
typedef struct ag_arena ag_arena;
ag_arena *ag_arena_create(size_t chunk_bytes);
void ag_arena_destroy(ag_arena *a);
/* Returns NULL (and sets the error) when memory runs out. */
/* Large, long-lived blocks (weights, gradients, optimizer state, caches):
 * 64-byte aligned, and from 2 MiB up 2 MiB-aligned and advised for
 * transparent huge pages. NULL when out of memory; release with free().
 * ag_calloc_large zeroes the block. */
void *ag_alloc_large(size_t bytes);
void *ag_calloc_large(size_t bytes);

void *ag_arena_alloc(ag_arena *a, size_t bytes, size_t align);
void *ag_arena_calloc(ag_arena *a, size_t bytes, size_t align);
void ag_arena_reset(ag_arena *a);
size_t ag_arena_used(const ag_arena *a);
size_t ag_arena_capacity(const ag_arena *a);

/* ---- random numbers ----------------------------------------------------- */

/* xoshiro256** seeded through splitmix64: integer-only, so the same seed
 * gives the same stream on every platform. */
typedef struct ag_rng {
  uint64_t s[4];
} ag_rng;

void ag_rng_seed(ag_rng *r, uint64_t seed);
/* Seeds from several values, e.g. (seed, epoch): independent streams. */
void ag_rng_seed2(ag_rng *r, uint64_t seed, uint64_t stream);
uint64_t ag_rng_u64(ag_rng *r);
uint32_t ag_rng_u32(ag_rng *r);
/* Uniform in [0, 1) with 24 random bits (exact in float). */
float ag_rng_uniform(ag_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint64_t ag_rng_below(ag_rng *r, uint64_t n);
/* Standard normal (Box-Muller). */
float ag_rng_normal(ag_rng *r);
/* Fisher-Yates shuffle of an index array. */
void ag_rng_shuffle_i64(ag_rng *r, int64_t *v, int64_t n);

/* ---- threads ------------------------------------------------------------ */

/* Thread count for OpenMP and OpenBLAS. Starts from AG_THREADS if set, else
 * the number of online cores. */
void ag_threads_set(int n);
int ag_threads_get(void);
/* Reads AG_THREADS once; called by ag_threads_get on first use. */
void ag_threads_init(void);

/* ---- files -------------------------------------------------------------- */

/* Atomic writes: write to PATH.tmp.XXXXXX in the same folder, fsync, rename
 * over PATH. A killed process never leaves a half-written PATH. */
typedef struct ag_atomic_file ag_atomic_file;
ag_status ag_atomic_open(const char *path, ag_atomic_file **out);
FILE *ag_atomic_stream(ag_atomic_file *f);
ag_status ag_atomic_commit(ag_atomic_file *f); /* frees f */
void ag_atomic_abort(ag_atomic_file *f);       /* removes the temp file, frees f */
ag_status ag_atomic_write(const char *path, const void *data, size_t bytes);

/* Creates a folder and its parents (like mkdir -p). */
ag_status ag_mkdir_p(const char *path);
bool ag_file_exists(const char *path);
/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
ag_status ag_read_file(const char *path, char **data, size_t *bytes);

/* ---- PNG images (src/base/png.c, libpng) ------------------------------------ */

/* Writes height rows of width pixels, channels bytes each (1 grey, 3 RGB,
 * 4 RGBA; row-major, no padding), as an 8-bit PNG, atomically like
 * ag_atomic_write. Used for Crafter frames and influence image grids. */
ag_status ag_png_write(const char *path, const uint8_t *pixels, int width, int height,
                       int channels);

/* ---- plots (src/base/plot.c) --------------------------------------------------- */

/* Runs `gnuplot script` inside dir (the script names its own output).
 * gnuplot missing or failing is a warning naming the script, and false;
 * reports write their numbers before they render. */
bool ag_plot_render(const char *dir, const char *script);

#ifdef __cplusplus
}
#endif
#endif
