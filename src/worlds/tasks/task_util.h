/* Helpers the task families share (internal to src/worlds/tasks): exact
 * rationals, reading numbers the ways people write them, finding an answer
 * in free text (leak checks), growing strings, and picking phrasings. */
#ifndef AGORA_TASK_UTIL_H
#define AGORA_TASK_UTIL_H

#include "agora/task.h"

#include <stdarg.h>

/* An exact rational, always normalised: den > 0, gcd(|num|, den) = 1. */
typedef struct ag_rational {
  int64_t num, den;
} ag_rational;

ag_rational ag_rational_make(int64_t num, int64_t den); /* normalises; den != 0 */
bool ag_rational_equal(ag_rational a, ag_rational b);
/* Arithmetic; false on overflow of int64 (or division by zero). */
bool ag_rational_add(ag_rational a, ag_rational b, ag_rational *out);
bool ag_rational_sub(ag_rational a, ag_rational b, ag_rational *out);
bool ag_rational_mul(ag_rational a, ag_rational b, ag_rational *out);
bool ag_rational_div(ag_rational a, ag_rational b, ag_rational *out);
/* "7", "-3/4": the canonical answer form. buf of at least 48 bytes. */
const char *ag_rational_format(ag_rational r, char *buf, size_t size);

/* Reads one number written as: an integer ("-12", "1,234"), a decimal
 * ("0.5", ".5", "-2.50"), a fraction ("3/4", "-3/4", "3 / 4"), a mixed
 * number ("1 1/2"), optionally with a leading "$" or "x =" and a trailing
 * "%" (kept as the percent value, 50% = 50) or up to two unit words, or the LaTeX
 * forms "\frac{3}{4}", "\dfrac{3}{4}", "-\frac34". The whole trimmed text
 * must be one number; false otherwise. */
bool ag_parse_number(const char *text, ag_rational *out);

/* Whether free text contains the value r written in any common form: as a
 * number token in any of the forms above (also with thousands separators,
 * trailing ".0", or as the decimal of a fraction that has one within 4
 * digits: 1/2 as 0.5, 1/3 as 0.333), or in words for small values ("seven",
 * "one half", "three quarters", "minus two", "negative five"). Numbers that
 * are part of longer numbers ("17" in "170") do not count. Either sign
 * counts: "-42" gives 42 away. */
bool ag_text_mentions_value(const char *text, ag_rational r);

/* A growing NUL-terminated string (malloc'd; ag_strbuf_take hands it over). */
typedef struct ag_strbuf {
  char *data;
  size_t size, capacity;
  bool failed; /* an allocation failed: the content is truncated */
} ag_strbuf;
void ag_strbuf_printf(ag_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ag_strbuf_vprintf(ag_strbuf *b, const char *fmt, va_list ap);
void ag_strbuf_append(ag_strbuf *b, const char *text, size_t bytes);
/* The string (never NULL: "" when empty), owned by the caller; b is reset.
 * NULL with an out-of-memory error set when an allocation failed. */
char *ag_strbuf_take(ag_strbuf *b);
void ag_strbuf_free(ag_strbuf *b);

/* One of n phrasings, drawn with rng from the set: phrasings[0..n/2) are the
 * training set and [n/2, n) the held-out set (n >= 2). */
const char *ag_pick_phrasing(const char *const *phrasings, int n, ag_phrasing_set set, ag_rng *rng);

/* Appends tmpl to b with each "{i}" (one digit, i < nargs) replaced by
 * args[i]. */
void ag_fill_template(ag_strbuf *b, const char *tmpl, const char *const *args, int nargs);
/* Appends a phrasing drawn as ag_pick_phrasing does, filled as above, after
 * a space when b is not empty. */
void ag_pick_fill(ag_strbuf *b, const char *const *set, int n, ag_phrasing_set which, ag_rng *rng,
                  const char *const *args, int nargs);

/* The family's own random stream for task (seed, level, index). */
void ag_task_rng(ag_rng *rng, const char *family, int level, uint64_t seed, int64_t index);

/* Fills the common fields of a task (family, level, id "family/level/seed/
 * index"; strdup'd problem, answer, solution; data taken over, may be
 * NULL for an empty object). On failure frees data and clears out. */
ag_status ag_task_fill(ag_task *out, const char *family, int level, uint64_t seed, int64_t index,
                       const char *problem, const char *answer, const char *solution, json_t *data);

/* A verdict with kind set and correct/parsed as given; further fields are
 * added with json_object_set_new(v->diagnostics, ...). */
ag_status ag_verdict_init(ag_verdict *v, bool correct, bool parsed, const char *kind);

/* Appends shard {text, required} to task->shards. */
ag_status ag_task_add_shard(ag_task *t, const char *text, bool required);

/* The attempt's first non-empty line, trimmed, as a malloc'd string. */
char *ag_first_line(const char *attempt);

#endif
