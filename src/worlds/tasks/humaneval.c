/* The humaneval family: HumanEval-style code tasks. An attempt is a Python
 * function; it runs with the task's hidden tests in the sandbox
 * (sandbox.c), and a failing assertion is the localised diagnostic. The
 * canonical solution is the teacher's knowledge and must never be shown:
 * leaks() looks for its lines in a message. */
#include "worlds/tasks/dataset_internal.h"
#include "worlds/tasks/task_util.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char instruction[] =
    "Finish with a line \"Answer:\" followed by the complete function (its def line and body), "
    "optionally in a ```python code block.";

/* What a program prints after the tests passed; a nonce per run, so that
 * an attempt cannot print it itself. */
#define SENTINEL_PREFIX "agora-humaneval-passed-"

static const char *data_string(const ag_task *t, const char *key) {
  json_t *v = t->data ? json_object_get(t->data, key) : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *skip_blank(const char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
  return s;
}

/* ---- loading ---------------------------------------------------------------------- */

ag_status ag_humaneval_task_from_record(const json_t *record, const char *where, ag_task *out) {
  static const char *const keys[] = {"task_id", "prompt", "canonical_solution", "test",
                                     "entry_point"};
  const char *v[5];
  for (int i = 0; i < 5; i++) {
    json_t *x = json_object_get(record, keys[i]);
    if (!json_is_string(x))
      return ag_error_set(AG_ERR_FORMAT, "%s: %s string field \"%s\"", where,
                          x ? "expected a" : "missing the", keys[i]);
    v[i] = json_string_value(x);
  }
  const char *task_id = v[0], *prompt = v[1], *canonical = v[2], *test = v[3], *entry = v[4];
  if (!*entry) return ag_error_set(AG_ERR_FORMAT, "%s: empty \"entry_point\"", where);
  ag_strbuf pb = {0}, ab = {0};
  ag_strbuf_printf(&pb,
                   "Complete the Python function `%s` so that it does what its docstring says.\n\n"
                   "```python\n%s```\n\n%s",
                   entry, prompt, instruction);
  /* The answer a student writes: the whole function, prompt included. */
  ag_strbuf_printf(&ab, "%s%s", prompt, canonical);
  char *problem = ag_strbuf_take(&pb), *answer = ag_strbuf_take(&ab);
  json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "task_id", task_id, "prompt", prompt,
                           "canonical_solution", canonical, "test", test, "entry_point", entry);
  ag_status st;
  if (!problem || !answer || !data) {
    json_decref(data);
    st = ag_error_set(AG_ERR_NOMEM, "%s: out of memory", where);
  } else {
    st = ag_task_fill(out, "humaneval", 0, 0, 0, problem, answer, answer, data);
    /* "HumanEval/12" -> "humaneval/12" */
    const char *slash = strrchr(task_id, '/');
    if (!st) snprintf(out->id, sizeof out->id, "humaneval/%.50s", slash ? slash + 1 : task_id);
  }
  free(problem);
  free(answer);
  return st;
}

/* ---- building the program ------------------------------------------------------------ */

/* The code of an attempt: inside its first ``` block when it has one. */
static char *strip_fences(const char *attempt) {
  const char *open = strstr(attempt, "```");
  if (!open) return strdup(attempt);
  const char *body = open + 3;
  body += strcspn(body, "\n"); /* "```python" */
  if (*body == '\n') body++;
  const char *close = strstr(body, "```");
  size_t n = close ? (size_t)(close - body) : strlen(body);
  char *code = malloc(n + 1);
  if (!code) return NULL;
  memcpy(code, body, n);
  code[n] = '\0';
  return code;
}

static int indent_of(const char *line) {
  int n = 0;
  while (line[n] == ' ') n++;
  return n;
}

/* The indentation of the function body in the prompt (its docstring's),
 * 4 when there is none. */
static int body_indent(const char *prompt, const char *entry) {
  char def[160];
  snprintf(def, sizeof def, "def %s(", entry);
  const char *d = strstr(prompt, def);
  if (!d) return 4;
  const char *line = strchr(d, '\n');
  while (line) {
    line++;
    if (*line == '\n') {
      line = strchr(line, '\n');
      continue;
    }
    int n = indent_of(line);
    return n > 0 ? n : 4;
  }
  return 4;
}

/* A bare function body whose first line lost its indentation (attempts are
 * trimmed) or that was written without any: indented to the body's level.
 * The second line tells which: inside a block opened by the first line it
 * sits one level deeper than the first line's true indentation. */
static void append_body(ag_strbuf *b, const char *code, int indent) {
  const char *first_end = code + strcspn(code, "\n");
  const char *second = *first_end ? first_end + 1 : first_end;
  while (*second) {
    const char *e = second + strcspn(second, "\n");
    bool blank = true;
    for (const char *p = second; p < e; p++) blank &= *p == ' ' || *p == '\t' || *p == '\r';
    if (!blank) break;
    second = *e ? e + 1 : e;
  }
  const char *last = first_end;
  while (last > code && (last[-1] == ' ' || last[-1] == '\r')) last--;
  bool opens_block = last > code && last[-1] == ':';
  bool indent_all = true;
  if (indent_of(code) > 0)
    indent_all = false; /* already indented: as written */
  else if (*second)
    indent_all = indent_of(second) < (opens_block ? 2 * indent : indent);
  int first_done = indent_of(code) > 0;
  for (const char *line = code; *line;) {
    const char *e = line + strcspn(line, "\n");
    if ((line == code && !first_done) || (indent_all && line != code && e > line))
      ag_strbuf_printf(b, "%*s", indent, "");
    ag_strbuf_append(b, line, (size_t)(e - line));
    ag_strbuf_append(b, "\n", 1);
    line = *e ? e + 1 : e;
  }
}

/* The program that checks code against the task's tests; *test_first and
 * *test_last are the 1-based lines of the test code in it. */
static char *build_program(const ag_task *t, const char *code, const char *sentinel,
                           int *test_first, int *test_last) {
  const char *prompt = data_string(t, "prompt"), *test = data_string(t, "test"),
             *entry = data_string(t, "entry_point");
  if (!prompt || !test || !entry) {
    ag_error_set(AG_ERR_FORMAT, "task %s: data lacks prompt, test or entry_point", t->id);
    return NULL;
  }
  ag_strbuf b = {0};
  char def[160];
  snprintf(def, sizeof def, "def %s(", entry);
  const char *trimmed_prompt = skip_blank(prompt);
  if (!strncmp(skip_blank(code), trimmed_prompt, strlen(trimmed_prompt))) {
    ag_strbuf_printf(&b, "%s", code); /* the whole program, as solve() writes it */
  } else if (strstr(code, def)) {
    /* A complete function: after the prompt, for its imports and helpers
     * (the prompt's own def, a docstring only, is redefined). */
    ag_strbuf_printf(&b, "%s\n%s", prompt, code);
  } else {
    ag_strbuf_printf(&b, "%s", prompt);
    if (b.size && b.data[b.size - 1] != '\n') ag_strbuf_append(&b, "\n", 1);
    append_body(&b, code, body_indent(prompt, entry));
  }
  ag_strbuf_append(&b, "\n\n", 2);
  int lines = 1;
  for (size_t i = 0; i < b.size && b.data; i++) lines += b.data[i] == '\n';
  *test_first = lines;
  ag_strbuf_printf(&b, "%s\n", test);
  for (const char *p = test; *p; p++) lines += *p == '\n';
  *test_last = lines;
  ag_strbuf_printf(&b, "\ncheck(%s)\nprint(\"%s\", flush=True)\n", entry, sentinel);
  char *program = ag_strbuf_take(&b);
  if (!program) ag_error_set(AG_ERR_NOMEM, "task %s: out of memory", t->id);
  return program;
}

static void make_sentinel(char *buf, size_t size) {
  /* Not secret, only unguessable by the program: clock, pid and a counter. */
  static _Atomic unsigned long counter;
  unsigned long c = ++counter;
  uint64_t x = (uint64_t)(ag_time_seconds() * 1e9) ^ ((uint64_t)getpid() << 32) ^ (c * 0x9E37ULL);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 29;
  snprintf(buf, size, SENTINEL_PREFIX "%016llx", (unsigned long long)x);
}

/* ---- reading the outcome -------------------------------------------------------------- */

/* The last non-empty line of the output, e.g. "AssertionError" or
 * "NameError: name 'x' is not defined". */
static char *last_output_line(const char *output) {
  const char *best = NULL;
  size_t best_n = 0;
  for (const char *line = output; *line;) {
    const char *e = line + strcspn(line, "\n");
    const char *a = skip_blank(line);
    if (a < e) {
      best = a;
      best_n = (size_t)(e - a);
    }
    line = *e ? e + 1 : e;
  }
  if (!best) return strdup("");
  if (best_n > 300) best_n = 300;
  char *s = malloc(best_n + 1);
  if (!s) return NULL;
  memcpy(s, best, best_n);
  s[best_n] = '\0';
  while (best_n > 0 && (s[best_n - 1] == '\r' || s[best_n - 1] == ' ')) s[--best_n] = '\0';
  return s;
}

/* The innermost traceback frame inside the test code: the program line of
 * the check that failed, trimmed; NULL when the failure is elsewhere. */
static char *failing_check(const char *output, const char *program, int first, int last) {
  static const char marker[] = "main.py\", line ";
  int found = 0;
  for (const char *p = strstr(output, marker); p; p = strstr(p + 1, marker)) {
    int line = atoi(p + sizeof marker - 1);
    if (line >= first && line <= last) found = line;
  }
  if (!found) return NULL;
  const char *s = program;
  for (int i = 1; i < found && s; i++) {
    s = strchr(s, '\n');
    if (s) s++;
  }
  if (!s) return NULL;
  s = skip_blank(s);
  size_t n = strcspn(s, "\n");
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r')) n--;
  if (n > 400) n = 400;
  char *line = malloc(n + 1);
  if (!line) return NULL;
  memcpy(line, s, n);
  line[n] = '\0';
  return line;
}

static ag_status classify(const ag_sandbox_result *r, const char *program, const char *sentinel,
                          int first, int last, ag_verdict *out) {
  bool passed = r->passed && strstr(r->output, sentinel) != NULL;
  if (passed) return ag_verdict_init(out, true, true, "correct");
  char *error = last_output_line(r->output);
  char *check = failing_check(r->output, program, first, last);
  const char *kind;
  bool parsed = true;
  if (r->timed_out)
    kind = "timeout";
  else if (r->signal)
    kind = "crash";
  else if (error && (strstr(error, "SyntaxError") || strstr(error, "IndentationError") ||
                     strstr(error, "TabError"))) {
    kind = "syntax_error";
    parsed = false;
  } else if (error && !strncmp(error, "AssertionError", 14) && check)
    kind = "failing_test";
  else if (r->exit_code != 0)
    kind = "runtime_error";
  else
    kind = "no_result"; /* exited 0 before the tests ran */
  ag_status st = ag_verdict_init(out, false, parsed, kind);
  if (!st) {
    json_t *d = out->diagnostics;
    if (check) json_object_set_new(d, "failing_assertion", json_string(check));
    if (error && *error && !r->timed_out) json_object_set_new(d, "error", json_string(error));
    json_object_set_new(d, "exit_code", json_integer(r->exit_code));
    if (r->signal) json_object_set_new(d, "signal", json_integer(r->signal));
    json_object_set_new(d, "isolation", json_string(r->isolation ? r->isolation : "none"));
  }
  free(error);
  free(check);
  return st;
}

static ag_status run_attempt(const ag_task *t, const char *attempt, const ag_sandbox_limits *limits,
                             ag_verdict *out) {
  memset(out, 0, sizeof *out);
  char *code = strip_fences(attempt ? attempt : "");
  if (!code) return ag_error_set(AG_ERR_NOMEM, "verify: out of memory");
  if (!*skip_blank(code)) {
    free(code);
    return ag_verdict_init(out, false, false, "unparsed");
  }
  char sentinel[64];
  make_sentinel(sentinel, sizeof sentinel);
  int first = 0, last = 0;
  char *program = build_program(t, code, sentinel, &first, &last);
  free(code);
  if (!program) return AG_ERR_FORMAT;
  ag_sandbox_result r;
  ag_status st = ag_sandbox_python(program, limits, &r);
  if (!st) st = classify(&r, program, sentinel, first, last, out);
  ag_sandbox_result_clear(&r);
  free(program);
  return st;
}

static ag_status humaneval_verify(const ag_task *t, const char *attempt, ag_verdict *out) {
  return run_attempt(t, attempt, NULL, out);
}

/* ---- feedback ---------------------------------------------------------------------------- */

/* Phrasings: [0, n/2) training, [n/2, n) held out. */
static const char *const wrong_result[] = {
    "Your function returns a wrong result on at least one test.",
    "The code runs, but some outputs are not what the tests expect.",
    "Not all tests pass: some results are wrong.",
    "Your function gives incorrect results for some inputs.",
    "Some of the hidden tests get the wrong answer from your function.",
    "Your code runs but fails at least one test case.",
    "At least one input gives an incorrect output.",
    "The logic is off for some inputs: a test fails.",
};
static const char *const raises[] = {
    "Your function raises an error on one of the tests",
    "The code stops with an exception on a test",
    "A test makes your function raise an exception",
    "Your function throws an exception on some input",
    "Your code crashes with an exception on some input",
    "An exception escapes your function during the tests",
    "Running the tests, your code raised an error",
    "Some input makes your function fail with an exception",
};
static const char *const syntax[] = {
    "Your code does not run: Python reports a syntax error.",
    "Python cannot parse your code; check the syntax and indentation.",
    "There is a syntax or indentation error in your code.",
    "Your program is not valid Python yet.",
    "The program does not even start: fix the syntax first.",
    "Python rejects the code before running it: a syntax problem.",
    "Check your brackets, colons and indentation: the code does not parse.",
    "The code has a syntax error, so no test could run.",
};
static const char *const too_slow[] = {
    "Your code takes too long on the tests; look for a loop that never ends.",
    "The tests time out: your function may loop forever or be far too slow.",
    "Your function does not finish in time on some input.",
    "The run hit the time limit; check your loop conditions.",
    "It runs out of time: check your loop conditions.",
    "Your code never finishes on some test; is there an endless loop?",
    "Too slow: the tests were stopped at the time limit.",
    "Some input sends your function into a very long or endless computation.",
};
static const char *const crashed[] = {
    "Your program was killed: it ran out of memory or resources.",
    "The program crashed while running the tests (memory or process limits).",
    "Your code used far too much memory or too many processes.",
    "The run was stopped by the sandbox for using too many resources.",
    "The run was stopped for exceeding the sandbox's limits.",
    "Your program was terminated: it needs far less memory.",
    "The tests could not finish: your code exhausted its resources.",
    "Resource limits killed your program; it allocates too much.",
};
static const char *const no_result[] = {
    "Your program exits before the tests can run; do not call exit().",
    "The tests never ran: something in your code ends the program early.",
    "Remove whatever stops the program before the tests run (exit, quit).",
    "Your code terminates the program, so the tests cannot run.",
    "Your code ends the program before any test runs.",
    "Do not exit the interpreter: the tests run after your code.",
    "The program stopped before testing; drop the call that ends it.",
    "No test ran because your code quits early.",
};
static const char *const no_code[] = {
    "I could not find any code after \"Answer:\"; write the complete function.",
    "Your answer has no code in it; give the whole function.",
    "Please give the function's code after \"Answer:\".",
    "There is no program in your answer to test.",
    "Write the full function after \"Answer:\" so it can be tested.",
    "I need the function's source code to check it.",
    "Your answer is missing the code itself.",
    "Put the complete Python function after \"Answer:\".",
};
static const char *const this_check[] = {
    "This check fails:", "The failing test is:", "It fails on:",           "Look at this test:",
    "This test fails:",  "A failing check:",     "It does not pass this:", "See this test:",
};

#define PICK(list, set, rng) ag_pick_phrasing(list, (int)(sizeof list / sizeof *list), set, rng)

static const char *diag(const ag_verdict *v, const char *key) {
  json_t *x = json_object_get(v->diagnostics, key);
  return json_is_string(x) ? json_string_value(x) : NULL;
}

static ag_status humaneval_feedback(const ag_task *t, const ag_verdict *v, ag_feedback_level level,
                                    ag_phrasing_set set, ag_rng *rng, char **out) {
  (void)t;
  *out = NULL;
  if (!v || !v->diagnostics) return ag_error_set(AG_ERR_INVALID, "feedback: no verdict");
  const char *kind = diag(v, "kind"), *check = diag(v, "failing_assertion"),
             *error = diag(v, "error");
  if (!kind) kind = "";
  ag_strbuf b = {0};
  if (!strcmp(kind, "syntax_error")) {
    ag_strbuf_printf(&b, "%s", PICK(syntax, set, rng));
    if (level >= AG_FEEDBACK_LOCALISED && error) ag_strbuf_printf(&b, " (%s)", error);
  } else if (!strcmp(kind, "timeout")) {
    ag_strbuf_printf(&b, "%s", PICK(too_slow, set, rng));
  } else if (!strcmp(kind, "crash")) {
    ag_strbuf_printf(&b, "%s", PICK(crashed, set, rng));
  } else if (!strcmp(kind, "no_result")) {
    ag_strbuf_printf(&b, "%s", PICK(no_result, set, rng));
  } else if (!strcmp(kind, "unparsed")) {
    ag_strbuf_printf(&b, "%s", PICK(no_code, set, rng));
  } else if (!strcmp(kind, "runtime_error")) {
    /* The exception's name ("TypeError"), not its message. */
    char name[64] = "";
    if (error) snprintf(name, sizeof name, "%.*s", (int)strcspn(error, ":"), error);
    ag_strbuf_printf(&b, "%s%s%s.", PICK(raises, set, rng), *name ? ": " : "", name);
  } else {
    ag_strbuf_printf(&b, "%s", PICK(wrong_result, set, rng));
  }
  if (level >= AG_FEEDBACK_LOCALISED && check &&
      (!strcmp(kind, "failing_test") || !strcmp(kind, "runtime_error")))
    ag_strbuf_printf(&b, " %s `%s`", PICK(this_check, set, rng), check);
  *out = ag_strbuf_take(&b);
  return *out ? AG_OK : ag_error_set(AG_ERR_NOMEM, "feedback: out of memory");
}

/* ---- leaks -------------------------------------------------------------------------------- */

/* s without white space (code compared however it is spaced or wrapped). */
static char *squeeze(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  size_t w = 0;
  for (size_t i = 0; i < n; i++)
    if (!isspace((unsigned char)s[i])) d[w++] = s[i];
  d[w] = '\0';
  return d;
}

/* Lines any solution might have: too short or too generic to give the
 * canonical one away ("return result", "else:", a comment). */
static bool trivial_line(const char *squeezed) {
  size_t n = strlen(squeezed);
  if (n < 12 || squeezed[0] == '#') return true;
  if (!strncmp(squeezed, "return", 6)) {
    bool identifier = true;
    for (const char *p = squeezed + 6; *p; p++)
      identifier &= isalnum((unsigned char)*p) || *p == '_';
    if (identifier) return true;
  }
  return false;
}

static bool humaneval_leaks(const ag_task *t, const char *text) {
  const char *canonical = data_string(t, "canonical_solution"), *prompt = data_string(t, "prompt");
  if (!text || !canonical) return false;
  char *hay = squeeze(text, strlen(text));
  char *prompt_sq = squeeze(prompt ? prompt : "", prompt ? strlen(prompt) : 0);
  char *whole = squeeze(canonical, strlen(canonical));
  if (!hay || !prompt_sq || !whole) {
    free(hay);
    free(prompt_sq);
    free(whole);
    return true;
  }
  /* The whole body (for short solutions such as "return a * b"). */
  bool leak = strlen(whole) >= 6 && strstr(hay, whole) != NULL;
  for (const char *line = canonical; !leak && *line;) {
    const char *e = line + strcspn(line, "\n");
    char *sq = squeeze(line, (size_t)(e - line));
    /* Lines the prompt shows already are not the solution's secret. */
    if (sq && !trivial_line(sq) && !strstr(prompt_sq, sq) && strstr(hay, sq)) leak = true;
    if (!sq) leak = true;
    free(sq);
    line = *e ? e + 1 : e;
  }
  free(hay);
  free(prompt_sq);
  free(whole);
  return leak;
}

static ag_status humaneval_solve(const ag_task *t, char **answer) {
  *answer = t->answer ? strdup(t->answer) : NULL;
  if (!*answer) return ag_error_set(AG_ERR_INVALID, "task %s has no canonical solution", t->id);
  return AG_OK;
}

/* ---- shards ------------------------------------------------------------------------------- */

/* Bounds of the entry point's docstring in the prompt (the quotes
 * included); false when it has none. */
static bool find_docstring(const char *prompt, const char *entry, const char **begin,
                           const char **end) {
  char def[160];
  snprintf(def, sizeof def, "def %s(", entry);
  const char *d = strstr(prompt, def);
  if (!d) return false;
  const char *body = strstr(d, ":\n");
  if (!body) return false;
  const char *q = skip_blank(body + 2);
  const char *quote = NULL;
  if (!strncmp(q, "\"\"\"", 3))
    quote = "\"\"\"";
  else if (!strncmp(q, "'''", 3))
    quote = "'''";
  if (!quote) return false;
  const char *close = strstr(q + 3, quote);
  if (!close) return false;
  *begin = q;
  *end = close + 3;
  return true;
}

/* The docstring's examples, one shard each (a ">>> call" line with the
 * lines after it, up to the next call or a blank line). */
static ag_status add_example_shards(ag_task *t, const char *examples) {
  ag_status st = AG_OK;
  ag_strbuf cur = {0};
  for (const char *line = examples; !st;) {
    const char *e = line + strcspn(line, "\n");
    const char *a = line;
    while (a < e && (*a == ' ' || *a == '\t' || *a == '\r')) a++;
    bool blank = a == e, at_end = !*line;
    bool call = !blank && !strncmp(a, ">>>", 3);
    if ((call || blank || at_end) && cur.size) {
      char *text = ag_strbuf_take(&cur);
      st = text ? ag_task_add_shard(t, text, false) : AG_ERR_NOMEM;
      free(text);
    }
    if (at_end || st) break;
    if (!blank) {
      if (cur.size) ag_strbuf_append(&cur, "\n", 1);
      ag_strbuf_append(&cur, a, (size_t)(e - a));
    }
    line = *e ? e + 1 : e;
  }
  ag_strbuf_free(&cur);
  return st;
}

static ag_status humaneval_shard(ag_task *t) {
  const char *prompt = data_string(t, "prompt"), *entry = data_string(t, "entry_point");
  if (!prompt || !entry) return ag_error_set(AG_ERR_FORMAT, "task %s: no prompt", t->id);
  for (int i = 0; i < t->shard_count; i++) free(t->shards[i].text);
  free(t->shards);
  t->shards = NULL;
  t->shard_count = 0;
  const char *begin, *end;
  if (!find_docstring(prompt, entry, &begin, &end)) {
    ag_strbuf b = {0};
    ag_strbuf_printf(&b, "Complete this Python function:\n```python\n%s```\n%s", prompt,
                     instruction);
    char *goal = ag_strbuf_take(&b);
    ag_status st = goal ? ag_task_add_shard(t, goal, true) : AG_ERR_NOMEM;
    free(goal);
    return st;
  }
  /* The goal: the code without the docstring (signature, imports, helpers). */
  const char *line_start = begin;
  while (line_start > prompt && line_start[-1] != '\n') line_start--;
  const char *after = end + strcspn(end, "\n");
  if (*after == '\n') after++;
  ag_strbuf b = {0};
  ag_strbuf_printf(&b,
                   "Write the Python function `%s`; its description follows in parts.\n"
                   "```python\n%.*s%s```\n%s",
                   entry, (int)(line_start - prompt), prompt, after, instruction);
  char *goal = ag_strbuf_take(&b);
  ag_status st = goal ? ag_task_add_shard(t, goal, true) : AG_ERR_NOMEM;
  free(goal);
  if (st) return st;
  /* The description: sentences before the first example, required. */
  const char *doc = begin + 3, *doc_end = end - 3;
  const char *examples = doc_end;
  static const char *const example_marks[] = {">>>", "Example", "example", "For example", "E.g."};
  for (size_t i = 0; i < sizeof example_marks / sizeof *example_marks; i++) {
    const char *m = strstr(doc, example_marks[i]);
    if (m && m < examples) examples = m;
  }
  size_t desc_n = (size_t)(examples - doc);
  char *desc = malloc(desc_n + 1), *rest = malloc((size_t)(doc_end - examples) + 1);
  if (!desc || !rest) {
    free(desc);
    free(rest);
    return ag_error_set(AG_ERR_NOMEM, "task %s: out of memory", t->id);
  }
  memcpy(desc, doc, desc_n);
  desc[desc_n] = '\0';
  memcpy(rest, examples, (size_t)(doc_end - examples));
  rest[doc_end - examples] = '\0';
  char **sentences = NULL;
  int n = 0;
  st = ag_split_sentences(desc, false, &sentences, &n);
  for (int i = 0; !st && i < n; i++) st = ag_task_add_shard(t, sentences[i], true);
  ag_strings_free(sentences, n);
  /* The examples: helpful, not required (the description states the task). */
  if (!st) st = add_example_shards(t, rest);
  free(desc);
  free(rest);
  return st;
}

const ag_task_family ag_task_family_humaneval = {
    .name = "humaneval",
    .summary = "HumanEval Python functions (data set; run against hidden tests in a sandbox)",
    .max_level = 0,
    .default_level = 0,
    .generate = NULL,
    .verify = humaneval_verify,
    .feedback = humaneval_feedback,
    .leaks = humaneval_leaks,
    .solve = humaneval_solve,
    .shard = humaneval_shard,
};

/* ---- checking the canonical solutions ------------------------------------------------- */

ag_status ag_humaneval_check_tasks(const ag_task *tasks, int64_t count,
                                   const ag_sandbox_limits *limits, ag_dataset_check_fn on_record,
                                   void *user, int64_t *verified) {
  *verified = 0;
  int64_t passed = 0;
  ag_status first_error = AG_OK;
  char error_message[512] = "";
  /* The sandbox's children do the work; a thread per core waits on each. */
  int threads = ag_threads_get();
  if (threads < 1) threads = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : passed)
  for (int64_t i = 0; i < count; i++) {
    ag_verdict v = {0};
    ag_status st = run_attempt(&tasks[i], tasks[i].answer, limits, &v);
#pragma omp critical(humaneval_check)
    {
      if (st) {
        if (!first_error) {
          first_error = st;
          snprintf(error_message, sizeof error_message, "%s", ag_error_message());
        }
      } else {
        char detail[600] = "";
        if (!v.correct) {
          const char *kind = diag(&v, "kind"), *check = diag(&v, "failing_assertion"),
                     *error = diag(&v, "error");
          snprintf(detail, sizeof detail, "%s%s%.300s%s%.200s", kind ? kind : "?",
                   check ? ": " : "", check ? check : "", error ? ": " : "", error ? error : "");
        }
        if (on_record) on_record(user, &tasks[i], v.correct, detail);
      }
    }
    passed += !st && v.correct;
    ag_verdict_clear(&v);
  }
  *verified = passed;
  if (first_error) return ag_error_set(first_error, "%s", error_message);
  return AG_OK;
}
