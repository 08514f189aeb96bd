/* The puzzle family: logic puzzles with unique, machine-checked solutions.
 * Even task indices are Knights and Knaves (who is a knight, who a knave;
 * the generator keeps only statement sets with exactly one consistent
 * assignment, found by enumerating all 2^n), odd indices are Countdown
 * (reach a target from given numbers with + - * / and parentheses, each
 * number used once; only instances the exhaustive solver can reach are
 * emitted). See docs/tasks.md, "## puzzle". */
#include "task_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PUZZLE_MAX_LEVEL = 5, PUZZLE_DEFAULT_LEVEL = 2 };
#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }
static bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }

/* Whether w[0..n) equals the lower-case word s, ignoring case. */
static bool word_is(const char *w, size_t n, const char *s) {
  if (strlen(s) != n) return false;
  for (size_t i = 0; i < n; i++)
    if (lower(w[i]) != s[i]) return false;
  return true;
}

static bool word_in(const char *w, size_t n, const char *const *list, int count) {
  for (int i = 0; i < count; i++)
    if (word_is(w, n, list[i])) return true;
  return false;
}

static bool put(ag_verdict *v, const char *key, json_t *value) {
  return json_object_set_new(v->diagnostics, key, value) == 0;
}

static const char *task_kind(const ag_task *t) {
  return t->data ? json_string_value(json_object_get(t->data, "kind")) : NULL;
}

static const char *const binary_phrasings[] = {
    "That is not correct.",    "Not quite.",
    "That does not work.",     "No, that is not it.",
    "That is wrong.",          "Sorry, that is incorrect.",
    "Not correct, try again.", "That is not the solution.",
};

/* ==== Knights and Knaves ======================================================== */

/* Generated puzzles have 2..5 people; loaded ones up to 8 (256 assignments). */
enum { KK_MAX_PEOPLE = 8 };
/* Statement set draws before giving up: at the hardest level about one in
 * ten random sets has a unique solution, so this never runs out. */
enum { KK_MAX_DRAWS = 100000 };

typedef enum kk_type {
  KK_IS,       // a is role_a
  KK_SAME,     // a and b are the same kind
  KK_DIFF,     // a and b are different kinds
  KK_AND,      // a is role_a and b is role_b
  KK_OR,       // a is role_a or b is role_b
  KK_IF,       // if a is role_a then b is role_b
  KK_EXACTLY,  // exactly count of us are role
  KK_AT_LEAST, // at least count of us are role
  KK_TYPES
} kk_type;
static const char *const kk_type_names[KK_TYPES] = {"is", "same", "diff",    "and",
                                                    "or", "if",   "exactly", "at_least"};

typedef struct kk_statement {
  int type, a, b, count;
  bool role_a, role_b, role; // true: knight
} kk_statement;

typedef struct knights {
  int people;
  kk_statement said[KK_MAX_PEOPLE]; // said[i]: what person i says
} knights;

/* Assignments are bit masks: bit i set means person i is a knight. */
static bool kk_knight(unsigned assignment, int person) { return (assignment >> person) & 1u; }

static bool kk_true(const kk_statement *s, unsigned asg, int people) {
  bool a = kk_knight(asg, s->a), b = kk_knight(asg, s->b);
  int with_role = 0;
  switch (s->type) {
  case KK_IS: return a == s->role_a;
  case KK_SAME: return a == b;
  case KK_DIFF: return a != b;
  case KK_AND: return a == s->role_a && b == s->role_b;
  case KK_OR: return a == s->role_a || b == s->role_b;
  case KK_IF: return a != s->role_a || b == s->role_b;
  default:
    for (int i = 0; i < people; i++) with_role += kk_knight(asg, i) == s->role;
    return s->type == KK_EXACTLY ? with_role == s->count : with_role >= s->count;
  }
}

/* The first speaker whose statement does not fit the role asg gives them, or -1. */
static int kk_contradicted(const knights *k, unsigned asg, int skip) {
  for (int i = 0; i < k->people; i++)
    if (i != skip && kk_knight(asg, i) != kk_true(&k->said[i], asg, k->people)) return i;
  return -1;
}

/* Consistent assignments (ignoring what `skip` says, -1 for none); the
 * first in *first. */
static int kk_solutions(const knights *k, int skip, unsigned *first) {
  int found = 0;
  for (unsigned asg = 0; asg < (1u << k->people); asg++)
    if (kk_contradicted(k, asg, skip) < 0 && found++ == 0 && first) *first = asg;
  return found;
}

static const char *kk_role_name(bool knight) { return knight ? "knight" : "knave"; }
static const char *const number_words[] = {"zero", "one", "two",   "three", "four",
                                           "five", "six", "seven", "eight"};

/* The statement as its speaker says it. */
static void kk_render(const kk_statement *s, int speaker, char *buf, size_t size) {
  char a = (char)('A' + s->a), b = (char)('A' + s->b);
  switch (s->type) {
  case KK_IS: snprintf(buf, size, "%c is a %s.", a, kk_role_name(s->role_a)); break;
  case KK_SAME:
  case KK_DIFF: {
    const char *kind = s->type == KK_SAME ? "the same kind" : "different kinds";
    if (s->a == speaker || s->b == speaker)
      snprintf(buf, size, "%c and I are %s.", s->a == speaker ? b : a, kind);
    else
      snprintf(buf, size, "%c and %c are %s.", a, b, kind);
    break;
  }
  case KK_AND:
  case KK_OR:
    snprintf(buf, size, "%c is a %s %s %c is a %s.", a, kk_role_name(s->role_a),
             s->type == KK_AND ? "and" : "or", b, kk_role_name(s->role_b));
    break;
  case KK_IF:
    snprintf(buf, size, "If %c is a %s, then %c is a %s.", a, kk_role_name(s->role_a), b,
             kk_role_name(s->role_b));
    break;
  case KK_EXACTLY:
    snprintf(buf, size, "Exactly %s of us %s %s%s.", number_words[s->count],
             s->count == 1 ? "is a" : "are", kk_role_name(s->role), s->count == 1 ? "" : "s");
    break;
  default:
    if (s->count == 1)
      snprintf(buf, size, "At least one of us is a %s.", kk_role_name(s->role));
    else
      snprintf(buf, size, "At least %s of us are %ss.", number_words[s->count],
               kk_role_name(s->role));
    break;
  }
}

/* People and statement kinds by level. */
static const int kk_people[PUZZLE_MAX_LEVEL + 1] = {0, 2, 3, 3, 4, 5};
static const int kk_type_count[PUZZLE_MAX_LEVEL + 1] = {0, 3, 5, KK_TYPES, KK_TYPES, KK_TYPES};

static int random_other(ag_rng *rng, int people, int not_a, int not_b) {
  for (;;) {
    int x = (int)ag_rng_below(rng, (uint64_t)people);
    if (x != not_a && x != not_b) return x;
  }
}

static void kk_draw(kk_statement *s, int speaker, int people, int types, ag_rng *rng) {
  memset(s, 0, sizeof *s);
  s->type = (int)ag_rng_below(rng, (uint64_t)types);
  s->role_a = ag_rng_below(rng, 2);
  s->role_b = ag_rng_below(rng, 2);
  s->role = ag_rng_below(rng, 2);
  switch (s->type) {
  case KK_IS: s->a = s->b = random_other(rng, people, speaker, -1); break;
  case KK_SAME:
  case KK_DIFF: // two people, possibly the speaker ("B and I are ...")
    s->a = (int)ag_rng_below(rng, (uint64_t)people);
    s->b = random_other(rng, people, s->a, -1);
    if (s->a > s->b) {
      int t = s->a;
      s->a = s->b;
      s->b = t;
    }
    break;
  case KK_AND:
  case KK_OR:
  case KK_IF:
    s->a = random_other(rng, people, speaker, -1);
    s->b = random_other(rng, people, speaker, s->a);
    break;
  case KK_EXACTLY: s->count = 1 + (int)ag_rng_below(rng, (uint64_t)(people - 1)); break;
  default: s->count = 1 + (int)ag_rng_below(rng, (uint64_t)people); break;
  }
}

static void kk_format_answer(const knights *k, unsigned asg, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < k->people && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%c: %s", i ? ", " : "", 'A' + i,
                             kk_role_name(kk_knight(asg, i)));
}

/* "A, B and C" */
static void kk_list_people(ag_strbuf *b, int people) {
  for (int i = 0; i < people; i++)
    ag_strbuf_printf(b, "%s%c", i == 0 ? "" : i == people - 1 ? " and " : ", ", 'A' + i);
}

static void kk_answer_format(ag_strbuf *b, int people) {
  ag_strbuf_printf(b, "Give your final answer on a line \"Answer: ");
  for (int i = 0; i < people; i++) ag_strbuf_printf(b, "%s%c: ?", i ? ", " : "", 'A' + i);
  ag_strbuf_printf(b, "\", each ? knight or knave.");
}

/* The worked solution: every assignment in turn, the first statement that
 * rules it out, and the one that survives. */
static void kk_solution(ag_strbuf *b, const knights *k, unsigned solution) {
  int n = k->people;
  for (unsigned m = 0; m < (1u << n); m++) {
    unsigned asg = 0; // person 0 varies slowest, knight first
    for (int i = 0; i < n; i++)
      if (!((m >> (n - 1 - i)) & 1u)) asg |= 1u << i;
    for (int i = 0; i < n; i++)
      ag_strbuf_printf(b, "%s%c %s", i ? ", " : "", 'A' + i, kk_role_name(kk_knight(asg, i)));
    int bad = kk_contradicted(k, asg, -1);
    if (bad < 0)
      ag_strbuf_printf(b, ": every statement fits.\n");
    else
      ag_strbuf_printf(b, ": %c is a %s but says something %s.\n", 'A' + bad,
                       kk_role_name(kk_knight(asg, bad)), kk_knight(asg, bad) ? "false" : "true");
  }
  char answer[128];
  kk_format_answer(k, solution, answer, sizeof answer);
  ag_strbuf_printf(b, "Only one assignment fits.\nAnswer: %s", answer);
}

static json_t *kk_person_json(int p) {
  char s[2] = {(char)('A' + p), '\0'};
  return json_string(s);
}

static json_t *kk_data(const knights *k) {
  json_t *data = json_object(), *list = json_array();
  bool ok = data && list && json_object_set_new(data, "kind", json_string("knights")) == 0 &&
            json_object_set_new(data, "people", json_integer(k->people)) == 0;
  if (ok && json_object_set_new(data, "statements", list) != 0)
    ok = false;
  else if (!ok)
    json_decref(list);
  for (int i = 0; ok && i < k->people; i++) {
    const kk_statement *s = &k->said[i];
    char text[96];
    kk_render(s, i, text, sizeof text);
    json_t *o = json_object();
    ok = o && json_array_append_new(list, o) == 0 &&
         json_object_set_new(o, "speaker", kk_person_json(i)) == 0 &&
         json_object_set_new(o, "type", json_string(kk_type_names[s->type])) == 0 &&
         json_object_set_new(o, "text", json_string(text)) == 0;
    if (!ok) break;
    if (s->type == KK_EXACTLY || s->type == KK_AT_LEAST) {
      ok = json_object_set_new(o, "count", json_integer(s->count)) == 0 &&
           json_object_set_new(o, "role", json_string(kk_role_name(s->role))) == 0;
    } else {
      ok = json_object_set_new(o, "a", kk_person_json(s->a)) == 0;
      if (ok && s->type != KK_SAME && s->type != KK_DIFF)
        ok = json_object_set_new(o, "role_a", json_string(kk_role_name(s->role_a))) == 0;
      if (ok && s->type != KK_IS) ok = json_object_set_new(o, "b", kk_person_json(s->b)) == 0;
      if (ok && s->type >= KK_AND)
        ok = json_object_set_new(o, "role_b", json_string(kk_role_name(s->role_b))) == 0;
    }
  }
  if (!ok) {
    json_decref(data);
    return NULL;
  }
  return data;
}

static ag_status kk_generate(int level, uint64_t seed, int64_t index, ag_rng *rng, ag_task *out) {
  knights k = {.people = kk_people[level]};
  unsigned solution = 0;
  int draws = 0;
  for (;; draws++) {
    if (draws == KK_MAX_DRAWS)
      return ag_error_set(AG_ERR_INTERNAL, "puzzle: no unique knights puzzle found");
    for (int i = 0; i < k.people; i++) kk_draw(&k.said[i], i, k.people, kk_type_count[level], rng);
    if (kk_solutions(&k, -1, &solution) == 1) break;
  }
  ag_strbuf problem = {0}, sol = {0};
  ag_strbuf_printf(&problem, "Knights always tell the truth; knaves always lie.\n");
  for (int i = 0; i < k.people; i++) {
    char text[96];
    kk_render(&k.said[i], i, text, sizeof text);
    ag_strbuf_printf(&problem, "%c says: \"%s\"\n", 'A' + i, text);
  }
  ag_strbuf_printf(&problem, "Who is a knight and who is a knave? ");
  kk_answer_format(&problem, k.people);
  kk_solution(&sol, &k, solution);
  char answer[128];
  kk_format_answer(&k, solution, answer, sizeof answer);
  json_t *data = kk_data(&k);
  char *problem_text = ag_strbuf_take(&problem), *solution_text = ag_strbuf_take(&sol);
  ag_status st;
  if (!data || !problem_text || !solution_text) {
    json_decref(data);
    st = ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  } else {
    st = ag_task_fill(out, "puzzle", level, seed, index, problem_text, answer, solution_text, data);
  }
  free(problem_text);
  free(solution_text);
  return st;
}

static int kk_person_field(const json_t *o, const char *key, int people) {
  const char *s = json_string_value(json_object_get(o, key));
  if (!s || s[0] < 'A' || s[0] >= 'A' + people || s[1]) return -1;
  return s[0] - 'A';
}

static int kk_role_field(const json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  if (!s) return -1;
  return strcmp(s, "knight") == 0 ? 1 : strcmp(s, "knave") == 0 ? 0 : -1;
}

static ag_status kk_load(const ag_task *t, knights *k) {
  memset(k, 0, sizeof *k);
  json_int_t people = json_integer_value(json_object_get(t->data, "people"));
  const json_t *list = json_object_get(t->data, "statements");
  if (people < 2 || people > KK_MAX_PEOPLE || !json_is_array(list) ||
      (json_int_t)json_array_size(list) != people)
    return ag_error_set(AG_ERR_FORMAT,
                        "puzzle task %s: knights data needs people (2..%d) and one statement "
                        "each",
                        t->id, KK_MAX_PEOPLE);
  k->people = (int)people;
  for (int i = 0; i < k->people; i++) {
    const json_t *o = json_array_get(list, (size_t)i);
    kk_statement *s = &k->said[i];
    const char *type = json_string_value(json_object_get(o, "type"));
    s->type = -1;
    for (int j = 0; type && j < KK_TYPES; j++)
      if (strcmp(type, kk_type_names[j]) == 0) s->type = j;
    bool ok = s->type >= 0 && kk_person_field(o, "speaker", k->people) == i;
    if (ok && (s->type == KK_EXACTLY || s->type == KK_AT_LEAST)) {
      json_int_t count = json_integer_value(json_object_get(o, "count"));
      int role = kk_role_field(o, "role");
      ok = count >= 0 && count <= people && role >= 0;
      s->count = (int)count;
      s->role = role == 1;
    } else if (ok) {
      s->a = s->b = kk_person_field(o, "a", k->people);
      if (s->type != KK_IS) s->b = kk_person_field(o, "b", k->people);
      int ra = s->type == KK_SAME || s->type == KK_DIFF ? 1 : kk_role_field(o, "role_a");
      int rb = s->type >= KK_AND ? kk_role_field(o, "role_b") : 1;
      ok = s->a >= 0 && s->b >= 0 && ra >= 0 && rb >= 0;
      s->role_a = ra == 1;
      s->role_b = rb == 1;
    }
    if (!ok)
      return ag_error_set(AG_ERR_FORMAT, "puzzle task %s: statement %d is malformed", t->id, i + 1);
  }
  return AG_OK;
}

/* ---- reading roles --------------------------------------------------------------- */

static const char *const knight_words[] = {"knight", "knights",     "truth",       "truthful",
                                           "honest", "truthteller", "truthtellers"};
static const char *const knave_words[] = {"knave", "knaves", "liar", "liars",
                                          "lies",  "lying",  "lie",  "dishonest"};
static const char *const negation_words[] = {"not", "isn", "aren", "never"};
/* Words that may stand between a name and its role ("A is a knight", "B
 * and C are both knaves", "D tells the truth"). */
static const char *const role_filler[] = {
    "is",   "are",  "a",  "an",    "the",  "both",   "and",     "must", "be", "was",
    "were", "also", "so", "tells", "tell", "teller", "tellers", "one",  "s"};

typedef struct role_claims {
  /* claims[i] bit 0: person i was called a knave, bit 1: a knight. */
  unsigned char claims[KK_MAX_PEOPLE];
  bool run_leak; // roles listed in order matched the target (leak scans only)
} role_claims;

/* Reads who is said to be what. Names are single letters A.. (a lower-case
 * "a" is an article unless punctuation follows it); a role word after
 * names gives them that role ("A and C are knights"), a role word before
 * names gives it to the names that follow ("knights: A, C"). In strict
 * mode (leak scans) any other word breaks these links; in loose mode
 * (answers) other words are skipped. target, when given, is compared with
 * lists of bare roles in person order ("knight, knave, a knight"). */
static void read_roles(const char *text, int people, bool strict, const unsigned *target,
                       role_claims *out) {
  memset(out, 0, sizeof *out);
  unsigned pending = 0;
  int header = -1;
  bool negate = false;
  bool recent[KK_MAX_PEOPLE]; // the last bare roles of a list, oldest first
  int listed = 0;
  size_t n = strlen(text);
  for (size_t i = 0; i < n;) {
    char ch = text[i];
    if (!is_letter(ch)) {
      if (ch == '.' || ch == ';' || ch == '\n' || ch == '!' || ch == '?') {
        header = -1;
        pending = 0;
        negate = false;
      }
      if (is_digit(ch)) listed = 0;
      i++;
      continue;
    }
    size_t j = i;
    while (j < n && is_letter(text[j])) j++;
    const char *w = text + i;
    size_t len = j - i;
    size_t k = j;
    while (k < n && text[k] == ' ') k++;
    bool punct_follows = k < n && !is_letter(text[k]) && !is_digit(text[k]);
    int person = -1;
    if (len == 1) {
      int p = lower(w[0]) - 'a';
      if (p >= 0 && p < people && (is_upper(w[0]) || w[0] != 'a' || punct_follows)) person = p;
    }
    bool bare_role = false;
    if (person >= 0) {
      if (header >= 0)
        out->claims[person] |= (unsigned char)(1u << header);
      else
        pending |= 1u << person;
    } else if (word_in(w, len, knight_words, COUNT_OF(knight_words)) ||
               word_in(w, len, knave_words, COUNT_OF(knave_words))) {
      int role = word_in(w, len, knight_words, COUNT_OF(knight_words)) ? 1 : 0;
      bare_role = !negate && !pending && (word_is(w, len, "knight") || word_is(w, len, "knave"));
      if (negate) role = !role;
      negate = false;
      if (pending) {
        for (int p = 0; p < people; p++)
          if (pending & (1u << p)) out->claims[p] |= (unsigned char)(1u << role);
        pending = 0;
        header = -1;
      } else {
        header = role;
      }
    } else if (word_in(w, len, negation_words, COUNT_OF(negation_words))) {
      negate = true;
    } else if (!word_in(w, len, role_filler, COUNT_OF(role_filler))) {
      if (strict) {
        pending = 0;
        header = -1;
        negate = false;
      }
    }
    if (bare_role) {
      if (listed == people)
        memmove(recent, recent + 1, (size_t)(people - 1) * sizeof *recent);
      else
        listed++;
      recent[listed - 1] = header == 1;
      if (target && listed == people) {
        bool match = true;
        for (int p = 0; p < people && match; p++) match = recent[p] == kk_knight(*target, p);
        out->run_leak |= match;
      }
    } else if (!word_is(w, len, "a") && !word_is(w, len, "an")) {
      listed = 0;
    }
    i = j;
  }
}

static ag_status kk_verify(const ag_task *t, const char *attempt, ag_verdict *out) {
  knights k;
  ag_status st = kk_load(t, &k);
  if (st != AG_OK) return st;
  unsigned truth = 0;
  if (kk_solutions(&k, -1, &truth) != 1)
    return ag_error_set(AG_ERR_FORMAT, "puzzle task %s: the knights puzzle is not unique", t->id);
  char *line = ag_first_line(attempt ? attempt : "");
  if (!line) return ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  role_claims claims;
  read_roles(line, k.people, false, NULL, &claims);
  free(line);
  unsigned given = 0;
  int missing = -1, conflict = -1;
  for (int p = 0; p < k.people; p++) {
    if (claims.claims[p] == 0 && missing < 0) missing = p;
    if (claims.claims[p] == 3 && conflict < 0) conflict = p;
    if (claims.claims[p] == 2) given |= 1u << p;
  }
  bool ok;
  if (missing >= 0 || conflict >= 0) {
    st = ag_verdict_init(out, false, false, "unparsed");
    ok = st == AG_OK &&
         put(out, "reason", json_string(missing >= 0 ? "missing_person" : "conflicting_roles")) &&
         put(out, "person", kk_person_json(missing >= 0 ? missing : conflict));
  } else if (given == truth) {
    st = ag_verdict_init(out, true, true, "correct");
    ok = st == AG_OK;
  } else {
    int wrong = 0, first_wrong = -1;
    for (int p = 0; p < k.people; p++)
      if (kk_knight(given, p) != kk_knight(truth, p)) {
        wrong++;
        if (first_wrong < 0) first_wrong = p;
      }
    // The solution is unique, so a wrong assignment contradicts someone.
    int speaker = kk_contradicted(&k, given, -1);
    st = ag_verdict_init(out, false, true, "wrong_roles");
    ok = st == AG_OK && put(out, "people", json_integer(k.people)) &&
         put(out, "wrong", json_integer(wrong)) &&
         put(out, "first_wrong", kk_person_json(first_wrong)) &&
         put(out, "contradicted", kk_person_json(speaker)) &&
         put(out, "claimed", json_string(kk_role_name(kk_knight(given, speaker)))) &&
         put(out, "statement_true", json_boolean(kk_true(&k.said[speaker], given, k.people)));
  }
  if (st == AG_OK && !ok) {
    ag_verdict_clear(out);
    st = ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  }
  return st;
}

static const char *const kk_one_wrong[] = {
    "Exactly one person has the wrong role in your answer.",
    "You are close: just one of your roles is wrong.",
    "Only one person in your answer is labelled wrongly.",
    "All but one of your roles are correct.",
    "One single role in your answer needs to change.",
    "Your answer gets every person but one correct.",
    "Just one person's role is off.",
    "There is exactly one mistake among your roles.",
};
static const char *const kk_more_wrong[] = {
    "More than one of your roles is wrong.",
    "Several people in your answer have the wrong role.",
    "At least two of your roles need to change.",
    "Your answer gets two or more people wrong.",
    "More than one person is labelled wrongly.",
    "Two or more of your roles are off.",
    "Several of your roles need another look.",
    "You have more than one mistake among the roles.",
};
/* With two people a count would give the answer away. */
static const char *const kk_some_wrong[] = {
    "At least one of your two roles is wrong.",  "Your two roles do not both hold up.",
    "Something in your pair of roles is off.",   "Not both of your roles are correct.",
    "One or both of your roles need to change.", "Your two roles cannot both be correct.",
    "At least one person is labelled wrongly.",  "The roles you gave do not all work.",
};
static const char *const kk_check_hint[] = {
    "Check each statement against the role you gave its speaker.",
    "Test every statement with your roles in mind.",
    "Go through the statements one at a time and see if each fits its speaker.",
    "Ask for each speaker whether they could say what they said.",
    "Compare every statement with the role of the person who says it.",
    "See whether each speaker's words agree with the role you chose.",
    "Work through who says what, and whether your roles allow it.",
    "For each person, check that their words match your label for them.",
};
/* {0}: the speaker; {1}: "true" / "false". */
static const char *const kk_contradiction[] = {
    "With your roles, {0}'s statement would be {1}, which does not fit the role you gave {0}.",
    "Look at what {0} says: under your answer it is {1}, and that clashes with {0}'s role.",
    "Your answer makes {0}'s statement {1}, but that does not match how you labelled {0}.",
    "{0}'s statement is the problem: with your roles it comes out {1}, which {0} could not say.",
    "Under your roles, what {0} says is {1}; that contradicts the role you chose for {0}.",
    "Check {0}: your answer makes the words of {0} {1}, which does not fit {0}'s role.",
    "If your roles held, {0}'s statement would be {1}, and {0} could not have said it.",
    "Your assignment clashes with {0}'s statement, which it would make {1}.",
};
static const char *const kk_unparsed[] = {
    "I could not read a role for each person in your answer.",
    "Please give every person a role, each as name: role.",
    "Your answer does not name a role for everyone.",
    "I cannot tell which role you give each person; list them all.",
    "Give a role to each person, in the form name: role.",
    "Some person has no clear role in your answer.",
    "Please list every person with their role.",
    "I could not match a role to each person; write them out one by one.",
};

static ag_status kk_feedback(const json_t *diag, ag_feedback_level level, ag_phrasing_set set,
                             ag_rng *rng, ag_strbuf *b) {
  const char *kind = json_string_value(json_object_get(diag, "kind"));
  if (strcmp(kind, "unparsed") == 0) {
    ag_pick_fill(b, kk_unparsed, COUNT_OF(kk_unparsed), set, rng, NULL, 0);
  } else if (level == AG_FEEDBACK_BINARY || strcmp(kind, "wrong_roles") != 0) {
    ag_pick_fill(b, binary_phrasings, COUNT_OF(binary_phrasings), set, rng, NULL, 0);
  } else if (level == AG_FEEDBACK_DIRECTIONAL) {
    json_int_t people = json_integer_value(json_object_get(diag, "people"));
    json_int_t wrong = json_integer_value(json_object_get(diag, "wrong"));
    if (people <= 2)
      ag_pick_fill(b, kk_some_wrong, COUNT_OF(kk_some_wrong), set, rng, NULL, 0);
    else if (wrong == 1)
      ag_pick_fill(b, kk_one_wrong, COUNT_OF(kk_one_wrong), set, rng, NULL, 0);
    else
      ag_pick_fill(b, kk_more_wrong, COUNT_OF(kk_more_wrong), set, rng, NULL, 0);
    ag_pick_fill(b, kk_check_hint, COUNT_OF(kk_check_hint), set, rng, NULL, 0);
  } else {
    const char *speaker = json_string_value(json_object_get(diag, "contradicted"));
    bool truth = json_is_true(json_object_get(diag, "statement_true"));
    const char *args[2] = {speaker ? speaker : "someone", truth ? "true" : "false"};
    ag_pick_fill(b, kk_contradiction, COUNT_OF(kk_contradiction), set, rng, args, 2);
  }
  return AG_OK;
}

/* Whether text at p follows an opening quote mark (" ' or a curly one). */
static bool quoted(const char *text, const char *p) {
  if (p > text && (p[-1] == '"' || p[-1] == '\'')) return true;
  return p - text >= 3 && (unsigned char)p[-3] == 0xE2 && (unsigned char)p[-2] == 0x80 &&
         ((unsigned char)p[-1] == 0x9C || (unsigned char)p[-1] == 0x98);
}

/* Leaks every person's role: "A is a knight", "A: knight", "B and C are
 * knaves", "knights: A, C", "A tells the truth", "A is not a knave", or
 * the roles in order ("knight, knave, knight"). The statements the
 * problem quotes are blanked first where they are quoted: facts the
 * problem states are not leaks. */
static bool kk_leaks(const ag_task *t, const char *text) {
  knights k;
  unsigned truth = 0;
  if (kk_load(t, &k) != AG_OK || kk_solutions(&k, -1, &truth) != 1) {
    ag_error_clear();
    return false;
  }
  char *copy = strdup(text);
  if (!copy) return true; // out of memory: refuse rather than let a leak through
  const json_t *list = json_object_get(t->data, "statements");
  for (size_t i = 0; i < json_array_size(list); i++) {
    const char *said = json_string_value(json_object_get(json_array_get(list, i), "text"));
    size_t len = said ? strlen(said) : 0;
    for (char *p = len ? strstr(copy, said) : NULL; p; p = strstr(p + 1, said))
      if (quoted(copy, p)) memset(p, ' ', len);
  }
  role_claims claims;
  read_roles(copy, k.people, true, &truth, &claims);
  free(copy);
  bool all = true;
  for (int p = 0; p < k.people && all; p++)
    all = (claims.claims[p] >> (kk_knight(truth, p) ? 1 : 0)) & 1u;
  return all || claims.run_leak;
}

static ag_status kk_solve(const ag_task *t, char **answer) {
  knights k;
  ag_status st = kk_load(t, &k);
  if (st != AG_OK) return st;
  unsigned asg = 0;
  int found = kk_solutions(&k, -1, &asg);
  if (found != 1)
    return ag_error_set(AG_ERR_FORMAT, "puzzle task %s: %d consistent assignments, not one", t->id,
                        found);
  char buf[128];
  kk_format_answer(&k, asg, buf, sizeof buf);
  *answer = strdup(buf);
  return *answer ? AG_OK : ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
}

/* The goal, then each statement; a statement is required when without it
 * the roles are no longer unique. */
static ag_status kk_shard(ag_task *t) {
  knights k;
  ag_status st = kk_load(t, &k);
  if (st != AG_OK) return st;
  ag_strbuf goal = {0};
  ag_strbuf_printf(&goal, "Knights always tell the truth; knaves always lie. ");
  kk_list_people(&goal, k.people);
  ag_strbuf_printf(&goal, " each make one statement, which I will tell you one at a time. Who "
                          "is a knight and who is a knave? ");
  kk_answer_format(&goal, k.people);
  char *text = ag_strbuf_take(&goal);
  if (!text) return ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  st = ag_task_add_shard(t, text, false); // given up front
  free(text);
  for (int i = 0; i < k.people && st == AG_OK; i++) {
    char said[96], shard[128];
    kk_render(&k.said[i], i, said, sizeof said);
    snprintf(shard, sizeof shard, "%c says: \"%s\"", 'A' + i, said);
    st = ag_task_add_shard(t, shard, kk_solutions(&k, i, NULL) != 1);
  }
  return st;
}

/* ==== Countdown ================================================================= */

enum { CD_MAX_NUMBERS = 8, CD_MAX_NODES = 128, CD_MAX_DEPTH = 48 };
/* Numbers in an answer above this are not read (no instance needs them). */
#define CD_MAX_LITERAL 1000000000LL

/* An expression tree: leaves hold a number, inner nodes an operator. */
typedef struct cd_node {
  char op; // 0 for a number, else + - * /
  int left, right;
  int64_t number;
} cd_node;

typedef struct cd_expr {
  cd_node nodes[CD_MAX_NODES];
  int count, root;
} cd_expr;

typedef struct countdown {
  int count;
  int64_t numbers[CD_MAX_NUMBERS];
  int64_t target;
} countdown;

static int cd_push(cd_expr *e, char op, int left, int right, int64_t number) {
  if (e->count == CD_MAX_NODES) return -1;
  e->nodes[e->count] = (cd_node){op, left, right, number};
  return e->count++;
}

static bool cd_apply(char op, ag_rational a, ag_rational b, ag_rational *out) {
  switch (op) {
  case '+': return ag_rational_add(a, b, out);
  case '-': return ag_rational_sub(a, b, out);
  case '*': return ag_rational_mul(a, b, out);
  default: return ag_rational_div(a, b, out);
  }
}

/* 0: ok; 1: division by zero; 2: overflow. */
static int cd_eval(const cd_expr *e, int node, ag_rational *out) {
  const cd_node *x = &e->nodes[node];
  if (!x->op) {
    *out = ag_rational_make(x->number, 1);
    return 0;
  }
  ag_rational a, b;
  int r = cd_eval(e, x->left, &a);
  if (r == 0) r = cd_eval(e, x->right, &b);
  if (r != 0) return r;
  if (x->op == '/' && b.num == 0) return 1;
  return cd_apply(x->op, a, b, out) ? 0 : 2;
}

static int cd_precedence(char op) { return op == '+' || op == '-' ? 1 : op ? 2 : 3; }

/* The expression with the parentheses it needs. */
static void cd_print(ag_strbuf *b, const cd_expr *e, int node) {
  const cd_node *x = &e->nodes[node];
  if (!x->op) {
    ag_strbuf_printf(b, "%lld", (long long)x->number);
    return;
  }
  int p = cd_precedence(x->op);
  int pl = cd_precedence(e->nodes[x->left].op), pr = cd_precedence(e->nodes[x->right].op);
  bool paren_left = pl < p;
  bool paren_right = pr < p || (pr == p && (x->op == '-' || x->op == '/'));
  if (paren_left) ag_strbuf_append(b, "(", 1);
  cd_print(b, e, x->left);
  if (paren_left) ag_strbuf_append(b, ")", 1);
  ag_strbuf_printf(b, "%c", x->op);
  if (paren_right) ag_strbuf_append(b, "(", 1);
  cd_print(b, e, x->right);
  if (paren_right) ag_strbuf_append(b, ")", 1);
}

/* The worked steps, innermost first: "8 - 2 = 6". */
static void cd_steps(ag_strbuf *b, const cd_expr *e, int node) {
  const cd_node *x = &e->nodes[node];
  if (!x->op) return;
  cd_steps(b, e, x->left);
  cd_steps(b, e, x->right);
  ag_rational l, r, v;
  char lb[48], rb[48], vb[48];
  if (cd_eval(e, x->left, &l) || cd_eval(e, x->right, &r) || cd_eval(e, node, &v)) return;
  ag_strbuf_printf(b, "%s %c %s = %s\n", ag_rational_format(l, lb, sizeof lb), x->op,
                   ag_rational_format(r, rb, sizeof rb), ag_rational_format(v, vb, sizeof vb));
}

/* ---- parsing expressions --------------------------------------------------------- */

typedef struct cd_parser {
  const char *text;
  size_t pos;
  int depth;
  cd_expr *e;
  char error[96];
  size_t error_pos;
} cd_parser;

/* The next character with × ÷ − – and a lone x as * / -, and [ ] as ( ). */
static char cd_peek(cd_parser *p, size_t *width) {
  const char *s = p->text + p->pos;
  while (*s == ' ' || *s == '\t') {
    s++;
    p->pos++;
  }
  *width = 1;
  unsigned char c0 = (unsigned char)s[0], c1 = c0 ? (unsigned char)s[1] : 0;
  if (c0 == 0xC3 && c1 == 0x97) return *width = 2, '*';
  if (c0 == 0xC3 && c1 == 0xB7) return *width = 2, '/';
  if (c0 == 0xE2 && c1 == 0x88 && (unsigned char)s[2] == 0x92) return *width = 3, '-';
  if (c0 == 0xE2 && c1 == 0x80 && (unsigned char)s[2] == 0x93) return *width = 3, '-';
  if ((c0 == 'x' || c0 == 'X') && !is_letter(s[1])) return '*';
  if (c0 == '[') return '(';
  if (c0 == ']') return ')';
  return (char)c0;
}

static bool cd_fail(cd_parser *p, const char *what) {
  if (!p->error[0]) {
    snprintf(p->error, sizeof p->error, "%s", what);
    p->error_pos = p->pos;
  }
  return false;
}

static int cd_parse_sum(cd_parser *p);

static int cd_parse_atom(cd_parser *p) {
  size_t w;
  char c = cd_peek(p, &w);
  if (c == '(') {
    if (++p->depth > CD_MAX_DEPTH) return cd_fail(p, "too deeply nested"), -1;
    p->pos += w;
    int inner = cd_parse_sum(p);
    if (inner < 0) return -1;
    if (cd_peek(p, &w) != ')') return cd_fail(p, "a parenthesis is not closed"), -1;
    p->pos += w;
    p->depth--;
    return inner;
  }
  if (is_digit(c)) {
    int64_t v = 0;
    while (is_digit(p->text[p->pos])) {
      v = v * 10 + (p->text[p->pos++] - '0');
      if (v > CD_MAX_LITERAL) return cd_fail(p, "a number is too large"), -1;
    }
    if (p->text[p->pos] == '.' || p->text[p->pos] == ',')
      return cd_fail(p, "only whole numbers can be used"), -1;
    int node = cd_push(p->e, 0, -1, -1, v);
    return node < 0 ? (cd_fail(p, "the expression is too long"), -1) : node;
  }
  if (c == '-' || c == '+') return cd_fail(p, "a number cannot be given a sign"), -1;
  if (c == 0) return cd_fail(p, "the expression ends too early"), -1;
  if (c == ')') return cd_fail(p, "a closing parenthesis has no opening one"), -1;
  return cd_fail(p, "a number or '(' was expected"), -1;
}

static int cd_parse_product(cd_parser *p) {
  int left = cd_parse_atom(p);
  size_t w;
  for (char c; left >= 0 && ((c = cd_peek(p, &w)) == '*' || c == '/');) {
    p->pos += w;
    int right = cd_parse_atom(p);
    if (right < 0) return -1;
    left = cd_push(p->e, c, left, right, 0);
    if (left < 0) return cd_fail(p, "the expression is too long"), -1;
  }
  return left;
}

static int cd_parse_sum(cd_parser *p) {
  int left = cd_parse_product(p);
  size_t w;
  for (char c; left >= 0 && ((c = cd_peek(p, &w)) == '+' || c == '-');) {
    p->pos += w;
    int right = cd_parse_product(p);
    if (right < 0) return -1;
    left = cd_push(p->e, c, left, right, 0);
    if (left < 0) return cd_fail(p, "the expression is too long"), -1;
  }
  return left;
}

/* Parses the whole of text as one expression. */
static bool cd_parse(const char *text, cd_expr *e, char *error, size_t error_size,
                     size_t *error_pos) {
  cd_parser p = {.text = text, .e = e};
  e->count = 0;
  e->root = cd_parse_sum(&p);
  size_t w;
  if (e->root >= 0) {
    char c = cd_peek(&p, &w);
    if (c == ')')
      cd_fail(&p, "a closing parenthesis has no opening one");
    else if (is_digit(c) || c == '(')
      cd_fail(&p, "an operator is missing");
    else if (c)
      cd_fail(&p, "an unexpected character");
    if (c) e->root = -1;
  }
  if (error) snprintf(error, error_size, "%s", p.error);
  if (error_pos) *error_pos = p.error_pos;
  return e->root >= 0;
}

static void sort_i64(int64_t *v, int n) {
  for (int i = 1; i < n; i++) // insertion sort: a handful of numbers
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      int64_t t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
}

/* The numbers an expression uses, sorted. */
static int cd_leaves(const cd_expr *e, int64_t *out, int max) {
  int n = 0;
  for (int i = 0; i < e->count; i++)
    if (!e->nodes[i].op) {
      if (n == max) return max + 1;
      out[n++] = e->nodes[i].number;
    }
  sort_i64(out, n);
  return n;
}

static void cd_sorted_numbers(const countdown *c, int64_t *out) {
  memcpy(out, c->numbers, (size_t)c->count * sizeof *out);
  sort_i64(out, c->count);
}

/* ---- the exhaustive solver ------------------------------------------------------- */

typedef struct cd_item {
  ag_rational value;
  int node;
} cd_item;

/* Combines two of the items with each operator, recursively, until one
 * item is left: every expression over the numbers is reached. natural
 * keeps to whole, non-negative steps (what people write first). */
static bool cd_search(cd_expr *e, const cd_item *items, int n, ag_rational target, bool natural) {
  if (n == 1) {
    e->root = items[0].node;
    return ag_rational_equal(items[0].value, target);
  }
  cd_item rest[CD_MAX_NUMBERS];
  static const char ops[6] = {'+', '*', '-', '-', '/', '/'};
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      int m = 0;
      for (int k = 0; k < n; k++)
        if (k != i && k != j) rest[m++] = items[k];
      for (int o = 0; o < 6; o++) {
        const cd_item *a = &items[i], *b = &items[j];
        if (o == 3 || o == 5) { // b - a, b / a
          a = &items[j];
          b = &items[i];
        }
        ag_rational v;
        if (!cd_apply(ops[o], a->value, b->value, &v)) continue;
        if (natural && (v.num < 0 || v.den != 1)) continue;
        int saved = e->count;
        int node = cd_push(e, ops[o], a->node, b->node, 0);
        if (node < 0) return false;
        rest[m] = (cd_item){v, node};
        if (cd_search(e, rest, m + 1, target, natural)) return true;
        e->count = saved;
      }
    }
  return false;
}

static bool cd_solve_numbers(const countdown *c, cd_expr *e) {
  cd_item items[CD_MAX_NUMBERS];
  e->count = 0;
  for (int i = 0; i < c->count; i++)
    items[i] = (cd_item){ag_rational_make(c->numbers[i], 1), cd_push(e, 0, -1, -1, c->numbers[i])};
  ag_rational target = ag_rational_make(c->target, 1);
  if (cd_search(e, items, c->count, target, true)) return true;
  e->count = c->count; // only the leaves
  return cd_search(e, items, c->count, target, false);
}

/* ---- generation ------------------------------------------------------------------ */

typedef struct cd_level {
  int count;      // numbers
  int small_max;  // small numbers are 1..small_max
  int large;      // how many come from {25, 50, 75, 100}
  int64_t target; // a fixed target (24), or 0: the value of a random expression
  int64_t lo, hi; // the target's range when random
} cd_level;
static const cd_level cd_levels[PUZZLE_MAX_LEVEL + 1] = {
    {0},
    {3, 9, 0, 0, 2, 50},
    {4, 9, 0, 0, 10, 100},
    {4, 13, 0, 24, 24, 24},
    {5, 10, 1, 0, 20, 300},
    {5, 10, 2, 0, 100, 999},
};
/* Draws before giving up; a few per task suffice in practice. */
enum { CD_MAX_DRAWS = 100000 };

/* A random expression over the numbers with whole, positive steps (a
 * larger number minus a smaller one, exact divisions), as Countdown
 * players write them. false when a draw gives no such step. */
static bool cd_random_expr(const countdown *c, ag_rng *rng, cd_expr *e) {
  cd_item items[CD_MAX_NUMBERS] = {0};
  int n = c->count;
  e->count = 0;
  for (int i = 0; i < n; i++)
    items[i] = (cd_item){ag_rational_make(c->numbers[i], 1), cd_push(e, 0, -1, -1, c->numbers[i])};
  while (n > 1) {
    int i = (int)ag_rng_below(rng, (uint64_t)n);
    int j = (int)ag_rng_below(rng, (uint64_t)(n - 1));
    if (j >= i) j++;
    static const char ops[4] = {'+', '-', '*', '/'};
    char op = ops[ag_rng_below(rng, 4)];
    cd_item a = items[i], b = items[j];
    if ((op == '-' || op == '/') && a.value.num < b.value.num) {
      cd_item t = a;
      a = b;
      b = t;
    }
    ag_rational v;
    if (!cd_apply(op, a.value, b.value, &v) || v.den != 1 || v.num <= 0) return false;
    if (op == '/' && b.value.num == 1) return false; // dividing by 1 is a wasted step
    int node = cd_push(e, op, a.node, b.node, 0);
    items[i] = (cd_item){v, node};
    items[j] = items[--n];
  }
  e->root = items[0].node;
  return true;
}

static ag_status cd_generate(int level, uint64_t seed, int64_t index, ag_rng *rng, ag_task *out) {
  const cd_level *spec = &cd_levels[level];
  countdown c = {.count = spec->count};
  cd_expr e;
  bool found = false;
  for (int draw = 0; draw < CD_MAX_DRAWS && !found; draw++) {
    for (int i = 0; i < c.count; i++) {
      static const int64_t large[4] = {25, 50, 75, 100};
      c.numbers[i] = i < spec->large ? large[ag_rng_below(rng, 4)]
                                     : 1 + (int64_t)ag_rng_below(rng, (uint64_t)spec->small_max);
    }
    if (spec->target) {
      c.target = spec->target;
      found = cd_solve_numbers(&c, &e);
    } else if (cd_random_expr(&c, rng, &e)) {
      ag_rational v;
      found = cd_eval(&e, e.root, &v) == 0 && v.den == 1 && v.num >= spec->lo && v.num <= spec->hi;
      c.target = v.num;
      for (int i = 0; i < c.count && found; i++) found = c.numbers[i] != c.target; // not trivial
    }
  }
  if (!found) return ag_error_set(AG_ERR_INTERNAL, "puzzle: no countdown instance found");
  // Shown in increasing order, so the order says nothing about the answer.
  sort_i64(c.numbers, c.count);

  ag_strbuf problem = {0}, sol = {0}, ans = {0};
  ag_strbuf_printf(&problem, "Use the numbers ");
  for (int i = 0; i < c.count; i++)
    ag_strbuf_printf(&problem, "%s%lld",
                     i == 0             ? ""
                     : i == c.count - 1 ? " and "
                                        : ", ",
                     (long long)c.numbers[i]);
  ag_strbuf_printf(&problem,
                   ", each exactly once, with +, -, *, / and parentheses to make %lld. Give "
                   "your final answer on a line \"Answer: <expression>\".",
                   (long long)c.target);
  cd_print(&ans, &e, e.root);
  cd_steps(&sol, &e, e.root);
  char *answer = ag_strbuf_take(&ans);
  ag_strbuf_printf(&sol, "Answer: %s", answer ? answer : "");
  json_t *data = json_object(), *numbers = json_array();
  bool ok = data && numbers && json_object_set_new(data, "kind", json_string("countdown")) == 0;
  if (ok && json_object_set_new(data, "numbers", numbers) != 0)
    ok = false;
  else if (!ok)
    json_decref(numbers);
  for (int i = 0; ok && i < c.count; i++)
    ok = json_array_append_new(numbers, json_integer(c.numbers[i])) == 0;
  ok = ok && json_object_set_new(data, "target", json_integer(c.target)) == 0;
  char *problem_text = ag_strbuf_take(&problem), *solution_text = ag_strbuf_take(&sol);
  ag_status st;
  if (!ok || !answer || !problem_text || !solution_text) {
    json_decref(data);
    st = ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  } else {
    st = ag_task_fill(out, "puzzle", level, seed, index, problem_text, answer, solution_text, data);
  }
  free(answer);
  free(problem_text);
  free(solution_text);
  return st;
}

static ag_status cd_load(const ag_task *t, countdown *c) {
  const json_t *numbers = json_object_get(t->data, "numbers");
  const json_t *target = json_object_get(t->data, "target");
  size_t n = json_array_size(numbers);
  if (!json_is_array(numbers) || n < 1 || n > CD_MAX_NUMBERS || !json_is_integer(target))
    return ag_error_set(AG_ERR_FORMAT,
                        "puzzle task %s: countdown data needs numbers (1..%d) and a target", t->id,
                        CD_MAX_NUMBERS);
  c->count = (int)n;
  c->target = json_integer_value(target);
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(numbers, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > CD_MAX_LITERAL)
      return ag_error_set(AG_ERR_FORMAT,
                          "puzzle task %s: countdown number %zu is not a "
                          "whole number in range",
                          t->id, i + 1);
    c->numbers[i] = json_integer_value(v);
  }
  return AG_OK;
}

/* The expression part of an answer line: "(8-2)*4 = 24" and "24 = (8-2)*4"
 * both give "(8-2)*4". */
static void cd_expression_part(char *line, int64_t target) {
  char *eq = strchr(line, '=');
  if (!eq) return;
  *eq = '\0';
  ag_rational left;
  if (ag_parse_number(line, &left) && ag_rational_equal(left, ag_rational_make(target, 1)))
    memmove(line, eq + 1, strlen(eq + 1) + 1);
}

static json_t *cd_number_list(const int64_t *v, int n) {
  json_t *a = json_array();
  for (int i = 0; a && i < n; i++)
    if (json_array_append_new(a, json_integer(v[i])) != 0) {
      json_decref(a);
      return NULL;
    }
  return a;
}

static json_t *rational_json(ag_rational r) {
  char buf[48];
  return json_string(ag_rational_format(r, buf, sizeof buf));
}

static ag_status cd_verify(const ag_task *t, const char *attempt, ag_verdict *out) {
  countdown c;
  ag_status st = cd_load(t, &c);
  if (st != AG_OK) return st;
  char *line = ag_first_line(attempt ? attempt : "");
  if (!line) return ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  cd_expression_part(line, c.target);
  cd_expr *e = malloc(sizeof *e);
  if (!e) {
    free(line);
    return ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  }
  char error[96];
  size_t error_pos = 0;
  bool ok = true;
  if (!cd_parse(line, e, error, sizeof error, &error_pos)) {
    st = ag_verdict_init(out, false, false, "unparsed");
    ok = st == AG_OK && put(out, "reason", json_string("syntax")) &&
         put(out, "message", json_string(error)) &&
         put(out, "position", json_integer((json_int_t)error_pos + 1));
    goto done;
  }
  // Which numbers are missing or extra: a merge of the two sorted lists.
  int64_t used[CD_MAX_NODES], given[CD_MAX_NUMBERS], missing[CD_MAX_NUMBERS], extra[CD_MAX_NODES];
  int n_used = cd_leaves(e, used, CD_MAX_NODES), n_missing = 0, n_extra = 0;
  cd_sorted_numbers(&c, given);
  for (int i = 0, j = 0; i < c.count || j < n_used;) {
    if (j == n_used || (i < c.count && given[i] < used[j]))
      missing[n_missing++] = given[i++];
    else if (i == c.count || used[j] < given[i])
      extra[n_extra++] = used[j++];
    else
      i++, j++;
  }
  ag_rational value;
  int eval = cd_eval(e, e->root, &value);
  ag_rational target = ag_rational_make(c.target, 1);
  if (n_missing || n_extra) {
    st = ag_verdict_init(out, false, true, "numbers_mismatch");
    ok = st == AG_OK && put(out, "missing", cd_number_list(missing, n_missing)) &&
         put(out, "extra", cd_number_list(extra, n_extra)) &&
         (eval != 0 || put(out, "value", rational_json(value)));
  } else if (eval == 1) {
    st = ag_verdict_init(out, false, true, "division_by_zero");
  } else if (eval == 0 && ag_rational_equal(value, target)) {
    st = ag_verdict_init(out, true, true, "correct");
  } else {
    st = ag_verdict_init(out, false, true, "wrong_value");
    ok = st == AG_OK && put(out, "target", json_integer(c.target));
    if (ok && eval == 0) {
      ag_rational diff;
      bool exact = ag_rational_sub(value, target, &diff);
      bool high = exact ? diff.num > 0 : (double)value.num / (double)value.den > (double)c.target;
      if (exact && diff.num < 0) diff.num = -diff.num;
      ok = put(out, "value", rational_json(value)) &&
           put(out, "direction", json_string(high ? "high" : "low")) &&
           (!exact || put(out, "off_by", rational_json(diff)));
    }
    // The last step: the values the outermost operator combines.
    const cd_node *root = &e->nodes[e->root];
    ag_rational l, r;
    if (ok && root->op && cd_eval(e, root->left, &l) == 0 && cd_eval(e, root->right, &r) == 0) {
      char op[2] = {root->op, '\0'};
      ok = put(out, "last_left", rational_json(l)) && put(out, "last_op", json_string(op)) &&
           put(out, "last_right", rational_json(r));
    }
  }
done:
  free(e);
  free(line);
  if (st == AG_OK && !ok) {
    ag_verdict_clear(out);
    st = ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  }
  return st;
}

/* {0}: the value; {1}: how far off; {2}: "high" / "low". */
static const char *const cd_value_directional[] = {
    "Your expression gives {0}, which is {1} too {2}.",
    "That comes to {0}: {1} too {2}.",
    "Your expression evaluates to {0}, {1} too {2} for the target.",
    "The value of your expression is {0}; that is {1} too {2}.",
    "That makes {0}, which misses the target by {1} (too {2}).",
    "You reach {0}, {1} too {2}.",
    "Your expression equals {0}; it is too {2} by {1}.",
    "Working it out gives {0}, which is too {2} by {1}.",
};
/* {0}: the value; {1}: the target; {2} {3} {4}: the last step. */
static const char *const cd_value_localised[] = {
    "Your expression gives {0}, not {1}: its last step is {2} {3} {4}.",
    "The final operation combines {2} and {4} with {3}, which gives {0} instead of {1}.",
    "Everything comes down to {2} {3} {4} at the end, and that is {0}, not {1}.",
    "Your last step, {2} {3} {4}, lands on {0} rather than {1}.",
    "At the outermost level you compute {2} {3} {4}, which is {0}; the target is {1}.",
    "The expression ends with {2} {3} {4} and so gives {0}, where {1} is needed.",
    "Look at the last operation: {2} {3} {4} makes {0}, not {1}.",
    "Your final step works out {2} {3} {4} = {0}, which is not {1}.",
};
static const char *const cd_numbers_directional[] = {
    "Your expression must use each of the given numbers exactly once.",
    "Use every given number exactly once, and no other numbers.",
    "The numbers in your expression are not exactly the given ones.",
    "Each given number has to appear once in your expression.",
    "Your expression does not use the given numbers once each.",
    "Check your numbers: each given one exactly once, nothing else.",
    "The set of numbers you used differs from the given one.",
    "Every given number must appear exactly one time.",
};
/* {0}: "7" or "7 and 3". */
static const char *const cd_missing_localised[] = {
    "Your expression does not use {0}.",
    "You left out {0}.",
    "The given {0} is missing from your expression.",
    "Your expression still needs {0}.",
    "You never use {0} in your expression.",
    "{0} from the given numbers does not appear.",
    "Missing from your expression: {0}.",
    "You forgot to use {0}.",
};
static const char *const cd_extra_localised[] = {
    "You use {0} more often than the given numbers allow.",
    "Not available to you (or used too often): {0}.",
    "Your expression uses {0} beyond what you were given.",
    "Too many uses of {0}: check them against the given numbers.",
    "Used more times than given: {0}.",
    "The given numbers do not allow this many uses of {0}.",
    "Your expression has {0} once too often, or it is not given at all.",
    "There are extra uses of {0} in your expression.",
};
/* {0}: what is wrong; {1}: the character position. */
static const char *const cd_syntax[] = {
    "I could not read your expression: {0} (at character {1}).",
    "Your expression does not parse: {0}, near character {1}.",
    "That is not a valid expression: {0} (character {1}).",
    "I cannot evaluate that: {0}, around character {1}.",
    "The expression is malformed: {0} at character {1}.",
    "Something is off in the writing: {0} (near character {1}).",
    "I cannot parse your answer: {0}, at position {1}.",
    "Your expression is not well formed: {0} (position {1}).",
};
static const char *const cd_division_by_zero[] = {
    "Your expression divides by zero.",
    "Somewhere your expression divides by 0.",
    "A division in your expression has a divisor of zero.",
    "That expression is undefined: it divides by zero.",
    "You divide by zero in your expression.",
    "One of your divisions is by zero.",
    "Your expression cannot be evaluated: a division by zero.",
    "There is a division by zero in your answer.",
};

static void cd_join_numbers(const json_t *list, char *buf, size_t size) {
  size_t used = 0, n = json_array_size(list);
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < size; i++)
    used += (size_t)snprintf(buf + used, size - used, "%s%lld",
                             i == 0       ? ""
                             : i == n - 1 ? " and "
                                          : ", ",
                             (long long)json_integer_value(json_array_get(list, i)));
}

static ag_status cd_feedback(const json_t *diag, ag_feedback_level level, ag_phrasing_set set,
                             ag_rng *rng, ag_strbuf *b) {
  const char *kind = json_string_value(json_object_get(diag, "kind"));
  char a0[128], a1[64], a2[64], a3[64], a4[64];
  if (strcmp(kind, "unparsed") == 0) {
    snprintf(a0, sizeof a0, "%s", json_string_value(json_object_get(diag, "message")));
    snprintf(a1, sizeof a1, "%lld",
             (long long)json_integer_value(json_object_get(diag, "position")));
    const char *args[2] = {a0, a1};
    ag_pick_fill(b, cd_syntax, COUNT_OF(cd_syntax), set, rng, args, 2);
  } else if (level == AG_FEEDBACK_BINARY) {
    ag_pick_fill(b, binary_phrasings, COUNT_OF(binary_phrasings), set, rng, NULL, 0);
  } else if (strcmp(kind, "division_by_zero") == 0) {
    ag_pick_fill(b, cd_division_by_zero, COUNT_OF(cd_division_by_zero), set, rng, NULL, 0);
  } else if (strcmp(kind, "numbers_mismatch") == 0) {
    const json_t *missing = json_object_get(diag, "missing"),
                 *extra = json_object_get(diag, "extra");
    if (level == AG_FEEDBACK_DIRECTIONAL) {
      ag_pick_fill(b, cd_numbers_directional, COUNT_OF(cd_numbers_directional), set, rng, NULL, 0);
    } else {
      if (json_array_size(missing)) {
        cd_join_numbers(missing, a0, sizeof a0);
        const char *args[1] = {a0};
        ag_pick_fill(b, cd_missing_localised, COUNT_OF(cd_missing_localised), set, rng, args, 1);
      }
      if (json_array_size(extra)) {
        cd_join_numbers(extra, a0, sizeof a0);
        const char *args[1] = {a0};
        ag_pick_fill(b, cd_extra_localised, COUNT_OF(cd_extra_localised), set, rng, args, 1);
      }
    }
  } else if (strcmp(kind, "wrong_value") == 0 && json_object_get(diag, "value")) {
    const char *value = json_string_value(json_object_get(diag, "value"));
    if (level == AG_FEEDBACK_DIRECTIONAL || !json_object_get(diag, "last_op")) {
      const char *off = json_string_value(json_object_get(diag, "off_by"));
      const char *dir = json_string_value(json_object_get(diag, "direction"));
      const char *args[3] = {value, off ? off : "something", dir ? dir : "far"};
      ag_pick_fill(b, cd_value_directional, COUNT_OF(cd_value_directional), set, rng, args, 3);
    } else {
      snprintf(a1, sizeof a1, "%lld",
               (long long)json_integer_value(json_object_get(diag, "target")));
      snprintf(a2, sizeof a2, "%s", json_string_value(json_object_get(diag, "last_left")));
      snprintf(a3, sizeof a3, "%s", json_string_value(json_object_get(diag, "last_op")));
      snprintf(a4, sizeof a4, "%s", json_string_value(json_object_get(diag, "last_right")));
      const char *args[5] = {value, a1, a2, a3, a4};
      ag_pick_fill(b, cd_value_localised, COUNT_OF(cd_value_localised), set, rng, args, 5);
    }
  } else {
    ag_pick_fill(b, binary_phrasings, COUNT_OF(binary_phrasings), set, rng, NULL, 0);
  }
  return AG_OK;
}

/* Whether text holds an expression over exactly the given numbers that
 * makes the target: every span of an expression-like stretch of text
 * (digits, operators, parentheses, spaces, × ÷ −) that starts and ends on
 * a number or parenthesis is parsed and evaluated. */
static bool cd_leaks(const ag_task *t, const char *text) {
  countdown c;
  if (cd_load(t, &c) != AG_OK) {
    ag_error_clear();
    return false;
  }
  cd_expr *e = malloc(sizeof *e);
  if (!e) return true; // out of memory: refuse rather than let a leak through
  int64_t given[CD_MAX_NUMBERS], used[CD_MAX_NUMBERS + 1];
  cd_sorted_numbers(&c, given);
  ag_rational target = ag_rational_make(c.target, 1);
  size_t n = strlen(text);
  char *span = malloc(n + 1);
  bool leak = false;
  if (!span) leak = true;
  for (size_t i = 0; i < n && !leak;) {
    // An expression-like stretch [i, j).
    size_t j = i;
    for (;;) {
      unsigned char ch = (unsigned char)text[j];
      if (j < n && (is_digit((char)ch) || strchr("+-*/()[] \t", ch) ||
                    ((ch == 'x' || ch == 'X') && (j == 0 || !is_letter(text[j - 1])) &&
                     !is_letter(text[j + 1])))) {
        j++;
      } else if (j + 1 < n && ch == 0xC3 &&
                 ((unsigned char)text[j + 1] == 0x97 || (unsigned char)text[j + 1] == 0xB7)) {
        j += 2;
      } else if (j + 2 < n && ch == 0xE2 &&
                 (((unsigned char)text[j + 1] == 0x88 && (unsigned char)text[j + 2] == 0x92) ||
                  ((unsigned char)text[j + 1] == 0x80 && (unsigned char)text[j + 2] == 0x93))) {
        j += 3;
      } else {
        break;
      }
    }
    if (j == i) {
      i++;
      continue;
    }
    // Every sub-span starting on a digit or '(' and ending on a digit or ')'.
    for (size_t s = i; s < j && !leak; s++) {
      if (!(is_digit(text[s]) || text[s] == '(' || text[s] == '[')) continue;
      if (s > i && is_digit(text[s]) && is_digit(text[s - 1])) continue;
      int numbers = 0; // numbers in [s, f): only spans with exactly c.count are parsed
      for (size_t f = s + 1; f <= j && !leak; f++) {
        char last = text[f - 1];
        if (is_digit(last) && (f - 1 == s || !is_digit(text[f - 2])) && ++numbers > c.count) break;
        if (numbers != c.count || !(is_digit(last) || last == ')' || last == ']')) continue;
        if (f < j && is_digit(last) && is_digit(text[f])) continue;
        memcpy(span, text + s, f - s);
        span[f - s] = '\0';
        ag_rational v;
        if (cd_parse(span, e, NULL, 0, NULL) && cd_leaves(e, used, CD_MAX_NUMBERS) == c.count &&
            memcmp(used, given, (size_t)c.count * sizeof *used) == 0 &&
            cd_eval(e, e->root, &v) == 0 && ag_rational_equal(v, target))
          leak = true;
      }
    }
    i = j;
  }
  free(span);
  free(e);
  return leak;
}

static ag_status cd_solve(const ag_task *t, char **answer) {
  countdown c;
  ag_status st = cd_load(t, &c);
  if (st != AG_OK) return st;
  cd_expr *e = malloc(sizeof *e);
  if (!e) return ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
  if (!cd_solve_numbers(&c, e)) {
    free(e);
    return ag_error_set(AG_ERR_FORMAT, "puzzle task %s: %lld cannot be made from the numbers",
                        t->id, (long long)c.target);
  }
  ag_strbuf b = {0};
  cd_print(&b, e, e->root);
  free(e);
  *answer = ag_strbuf_take(&b);
  return *answer ? AG_OK : ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
}

/* The goal (the target and how many numbers), then one number per shard;
 * all are required, since every number must be used. */
static ag_status cd_shard(ag_task *t) {
  countdown c;
  ag_status st = cd_load(t, &c);
  if (st != AG_OK) return st;
  char text[320];
  snprintf(text, sizeof text,
           "Make %lld from %d numbers, which I will give you one at a time, using each exactly "
           "once with +, -, *, / and parentheses. Give your final answer on a line \"Answer: "
           "<expression>\".",
           (long long)c.target, c.count);
  st = ag_task_add_shard(t, text, false); // given up front
  for (int i = 0; i < c.count && st == AG_OK; i++) {
    snprintf(text, sizeof text, "Number %d of %d is %lld.", i + 1, c.count,
             (long long)c.numbers[i]);
    st = ag_task_add_shard(t, text, true);
  }
  return st;
}

/* ==== the family ================================================================ */

static bool is_knights(const ag_task *t) {
  const char *kind = task_kind(t);
  return kind && strcmp(kind, "knights") == 0;
}

static ag_status check_kind(const ag_task *t) {
  const char *kind = task_kind(t);
  if (kind && (strcmp(kind, "knights") == 0 || strcmp(kind, "countdown") == 0)) return AG_OK;
  return ag_error_set(AG_ERR_FORMAT,
                      "puzzle task %s: data.kind must be \"knights\" or \"countdown\"", t->id);
}

static ag_status puzzle_generate(int level, uint64_t seed, int64_t index, ag_task *out) {
  if (level < 1 || level > PUZZLE_MAX_LEVEL)
    return ag_error_set(AG_ERR_INVALID, "puzzle: level %d is outside 1..%d", level,
                        PUZZLE_MAX_LEVEL);
  ag_rng rng;
  ag_task_rng(&rng, "puzzle", level, seed, index);
  return (index & 1) == 0 ? kk_generate(level, seed, index, &rng, out)
                          : cd_generate(level, seed, index, &rng, out);
}

static ag_status puzzle_verify(const ag_task *t, const char *attempt, ag_verdict *out) {
  memset(out, 0, sizeof *out);
  ag_status st = check_kind(t);
  if (st != AG_OK) return st;
  return is_knights(t) ? kk_verify(t, attempt, out) : cd_verify(t, attempt, out);
}

static const char *const correct_phrasings[] = {
    "That is correct.", "Yes, that works.",      "Correct.",      "Well done, that is it.",
    "Right answer.",    "That is the solution.", "Yes, exactly.", "Good, that is correct.",
};

static ag_status puzzle_feedback(const ag_task *t, const ag_verdict *verdict,
                                 ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                                 char **out) {
  *out = NULL;
  ag_status st = check_kind(t);
  if (st != AG_OK) return st;
  const json_t *diag = verdict ? verdict->diagnostics : NULL;
  const char *kind = json_string_value(json_object_get(diag, "kind"));
  if (!kind)
    return ag_error_set(AG_ERR_INVALID, "puzzle task %s: the verdict has no diagnostics", t->id);
  ag_strbuf b = {0};
  if (strcmp(kind, "correct") == 0)
    ag_pick_fill(&b, correct_phrasings, COUNT_OF(correct_phrasings), set, rng, NULL, 0);
  else
    st = is_knights(t) ? kk_feedback(diag, level, set, rng, &b)
                       : cd_feedback(diag, level, set, rng, &b);
  if (st != AG_OK) {
    ag_strbuf_free(&b);
    return st;
  }
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "puzzle: out of memory");
}

static bool puzzle_leaks(const ag_task *t, const char *text) {
  if (!text || check_kind(t) != AG_OK) {
    ag_error_clear();
    return false;
  }
  return is_knights(t) ? kk_leaks(t, text) : cd_leaks(t, text);
}

static ag_status puzzle_solve(const ag_task *t, char **answer) {
  ag_status st = check_kind(t);
  if (st != AG_OK) return st;
  return is_knights(t) ? kk_solve(t, answer) : cd_solve(t, answer);
}

static ag_status puzzle_shard(ag_task *t) {
  ag_status st = check_kind(t);
  if (st != AG_OK) return st;
  for (int i = 0; i < t->shard_count; i++) free(t->shards[i].text);
  free(t->shards);
  t->shards = NULL;
  t->shard_count = 0;
  return is_knights(t) ? kk_shard(t) : cd_shard(t);
}

const ag_task_family ag_task_family_puzzle = {
    .name = "puzzle",
    .summary = "logic puzzles: Knights and Knaves (even indices), Countdown (odd indices)",
    .max_level = PUZZLE_MAX_LEVEL,
    .default_level = PUZZLE_DEFAULT_LEVEL,
    .generate = puzzle_generate,
    .verify = puzzle_verify,
    .feedback = puzzle_feedback,
    .leaks = puzzle_leaks,
    .solve = puzzle_solve,
    .shard = puzzle_shard,
};
