/* Real task data sets (worlds layer): GSM8K ("#### answer"), MATH-style
 * "\boxed{}" answers with normalisation, and HumanEval-style code tasks run by
 * python3 in a sandboxed subprocess. Each loads into ag_task records of the
 * families "gsm8k", "math" and "humaneval" (agora/task.h), which verify
 * attempts like the generated families do. See docs/tasks.md. */
#ifndef AGORA_DATASETS_H
#define AGORA_DATASETS_H

#include "agora/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GSM8K ---------------------------------------------------------------------- */

/* The reference answer of a GSM8K "answer" field: the text after the last
 * "####", trimmed, thousands separators removed ("1,234" -> "1234"). An
 * error when there is no "####" or nothing after it. */
ag_status ag_gsm8k_reference(const char *answer_field, char **out);
/* The final answer a model wrote: after "Answer:" or "####" when present,
 * else the content of the last \boxed{}, else the last number in the text.
 * NULL when there is none. malloc'd. */
char *ag_math_extract_final(const char *text);

/* ---- MATH ----------------------------------------------------------------------- */

/* The content of the last \boxed{...} (or \fbox{...}) in text, braces
 * balanced, NULL when there is none. malloc'd. */
char *ag_math_last_boxed(const char *text);
/* The canonical form of a MATH answer, for comparison: spaces, "$", "\!",
 * "\left"/"\right", "^\circ"/"^{\circ}", "\%", "\text{...}" units and
 * trailing unit words removed; \dfrac/\tfrac -> \frac; "\frac12" ->
 * "\frac{1}{2}"; "a/b" of integers -> \frac{a}{b}; "0.5" -> "\frac{1}{2}";
 * a leading "x =" dropped; "1,000" -> "1000"; trailing ".0" dropped.
 * malloc'd. */
char *ag_math_normalize(const char *answer);
/* Whether two MATH answers are equal after normalisation (numbers compared
 * exactly as rationals when both are numbers). */
bool ag_math_equivalent(const char *a, const char *b);

/* ---- python sandbox ------------------------------------------------------------- */

typedef struct ag_sandbox_limits {
  double wall_seconds;      /* killed after this long (default 10) */
  double cpu_seconds;       /* RLIMIT_CPU (default 10) */
  int64_t memory_bytes;     /* RLIMIT_AS (default 1 GiB) */
  int max_processes;        /* RLIMIT_NPROC for the sandbox's user (default 16) */
  int64_t max_output_bytes; /* stdout + stderr kept (default 64 KiB; the rest dropped) */
} ag_sandbox_limits;

ag_sandbox_limits ag_sandbox_defaults(void);

typedef struct ag_sandbox_result {
  bool passed;    /* exited with status 0 within the limits */
  bool timed_out; /* killed by the wall-time limit */
  int exit_code;  /* -1 when killed by a signal */
  int signal;     /* the signal that ended it, or 0 */
  char *output;   /* stdout and stderr, interleaved, truncated to the limit; malloc'd */
  /* How the sandbox isolated the run: "netns" when it ran in its own network
   * namespace (no network), "none" when the kernel refused one (then the
   * network is not blocked, and the docs say so). */
  const char *isolation;
} ag_sandbox_result;

void ag_sandbox_result_clear(ag_sandbox_result *r);

/* Runs `python3 -I -B program` in a fresh temporary directory (its cwd and
 * HOME, removed afterwards) with the limits, no stdin, a minimal
 * environment and, where the kernel allows, no network. A crash, a hang or
 * a memory blow-up is a failed run, never a hung caller. Fails (status)
 * only when the sandbox itself cannot be set up (no python3, no temp dir). */
ag_status ag_sandbox_python(const char *program, const ag_sandbox_limits *limits,
                            ag_sandbox_result *out);

/* ---- loading data sets as tasks ------------------------------------------------- */

/* GSM8K JSONL ({"question","answer"}), MATH JSONL ({"problem","solution"} with
 * the answer in the solution's last \boxed{}; "answer" when present), or
 * HumanEval JSONL, optionally gzip'd ({"task_id","prompt",
 * "canonical_solution","test","entry_point"}), into tasks of the family
 * named by `dataset` ("gsm8k", "math", "humaneval"). A malformed line is an
 * error naming the file and line. At most `limit` records (0: all). */
ag_status ag_dataset_load(const char *dataset, const char *path, int64_t limit, ag_task **tasks,
                          int64_t *count);

/* `agora tasks check`: verifies each record's reference answer (GSM8K,
 * MATH) or canonical solution (HumanEval, in the sandbox) with agora's own
 * extractor / verifier. *verified of *total pass; on_record (may be NULL) is
 * told each result as it comes. */
typedef void (*ag_dataset_check_fn)(void *user, const ag_task *task, bool verified,
                                    const char *detail);
ag_status ag_dataset_check(const char *dataset, const char *path, int64_t limit,
                           const ag_sandbox_limits *limits, ag_dataset_check_fn on_record,
                           void *user, int64_t *verified, int64_t *total);

#ifdef __cplusplus
}
#endif

#endif
