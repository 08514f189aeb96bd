/* A small test harness: TEST(name) functions, CHECK macros that record
 * failures without stopping, and a closing line "N passed, N failed". */
#ifndef AGORA_TEST_H
#define AGORA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_ = 0; /* checks failed in the current test */
static int tests_passed_ = 0, tests_failed_ = 0;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
      test_failures_++;                                                                            \
    }                                                                                              \
  } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      test_failures_++;                                                                            \
    }                                                                                              \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
  do {                                                                                             \
    double a_ = (double)(a), b_ = (double)(b);                                                     \
    if (!(fabs(a_ - b_) <= (tol))) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s = %.9g, %s = %.9g (tol %g)\n", __FILE__, __LINE__,  \
              #a, a_, #b, b_, (double)(tol));                                                      \
      test_failures_++;                                                                            \
    }                                                                                              \
  } while (0)

/* Checks an ag_status is AG_OK, printing the error message if not. */
#define CHECK_OK(expr)                                                                             \
  do {                                                                                             \
    ag_status st_ = (expr);                                                                        \
    if (st_ != AG_OK) {                                                                            \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, ag_error_message());    \
      test_failures_++;                                                                            \
    }                                                                                              \
  } while (0)

#define TEST(name) static void name(void)

#define RUN(name)                                                                                  \
  do {                                                                                             \
    test_failures_ = 0;                                                                            \
    name();                                                                                        \
    if (test_failures_) {                                                                          \
      tests_failed_++;                                                                             \
      fprintf(stderr, "FAIL %s\n", #name);                                                         \
    } else {                                                                                       \
      tests_passed_++;                                                                             \
      fprintf(stderr, "ok   %s\n", #name);                                                         \
    }                                                                                              \
  } while (0)

#define TEST_MAIN_END()                                                                            \
  do {                                                                                             \
    printf("%d passed, %d failed\n", tests_passed_, tests_failed_);                                \
    return tests_failed_ ? 1 : 0;                                                                  \
  } while (0)

/* Sizes scale with AG_TEST_SCALE (default 1.0; the sanitizer build uses a
 * smaller value so the same tests run there, smaller). */
static inline double test_scale(void) {
  const char *s = getenv("AG_TEST_SCALE");
  double v = s ? atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}
static inline long test_scaled(long n, long minimum) {
  long v = (long)((double)n * test_scale());
  return v < minimum ? minimum : v;
}

/* A scratch folder for the test, created under the build tree or /tmp. */
static inline const char *test_tmpdir(void) {
  static char dir[512];
  if (!dir[0]) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/agora-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(dir)) {
      perror("mkdtemp");
      exit(2);
    }
  }
  return dir;
}

#endif
