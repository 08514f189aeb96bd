/* Verifiable tasks (worlds layer): seeded generators with difficulty levels,
 * verifiers with structured diagnostics, feedback a teacher can give without
 * revealing the answer, and sharded (underspecified) renderings.
 *
 *   const ag_task_family *f;
 *   ag_task_family_get("arith", &f);
 *   ag_task t;
 *   f->generate(f->default_level, seed, 0, &t);      // problem, answer, solution
 *   ag_verdict v;
 *   f->verify(&t, "42", &v);                          // v.correct, v.diagnostics
 *   ag_verdict_clear(&v);
 *   ag_task_clear(&t);
 *
 * Families: arith, algebra, maze, code, puzzle (generated), and the real data
 * sets gsm8k, math and humaneval (loaded from files, see agora/datasets.h).
 * See docs/tasks.md. */
#ifndef AGORA_TASK_H
#define AGORA_TASK_H

#include "agora/base.h"
#include "agora/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One piece of a sharded problem. shards[0] states the goal and is given up
 * front; the user simulator reveals the rest one per turn. An answer attempt
 * made while a required shard is hidden is premature. */
typedef struct ag_task_shard {
  char *text;
  bool required;
} ag_task_shard;

typedef struct ag_task {
  char family[16]; /* "arith" */
  int level;       /* 1..family->max_level; 0 for data sets */
  char id[64];     /* unique and stable: "arith/2/<seed>/<index>", "gsm8k/<line>" */
  /* The full problem as the teacher states it in its first turn. It ends by
   * asking for a final line "Answer: ..." in the family's answer form. */
  char *problem;
  /* The canonical answer, as a correct student writes it after "Answer:". */
  char *answer;
  /* A worked solution (steps, a path, a program): the teacher's private
   * knowledge and the target of single-turn training. At least the answer. */
  char *solution;
  /* Everything else the verifier needs (a maze grid, hidden tests, the
   * numbers of a puzzle): a JSON object owned by the task, never shown to
   * the student. */
  json_t *data;
  /* The sharded rendering, built by ag_task_shard_build (or loaded); NULL /
   * 0 until then. */
  ag_task_shard *shards;
  int shard_count;
} ag_task;

/* Frees what the task owns and zeroes it (safe on a zeroed task). */
void ag_task_clear(ag_task *t);
/* A deep copy. */
ag_status ag_task_copy(const ag_task *src, ag_task *dst);

/* The JSONL record of a task: {"family","level","id","problem","answer",
 * "solution","data",["shards":[{"text","required"}...]]}. Loading checks
 * every field (a missing or mistyped one is an error naming it) and that the
 * family exists. */
json_t *ag_task_to_json(const ag_task *t);
ag_status ag_task_from_json(const json_t *record, ag_task *out);
/* Reads a task JSONL file; a malformed line is an error naming the file and
 * line number. *tasks is malloc'd; free each with ag_task_clear, then it. */
ag_status ag_task_load_jsonl(const char *path, ag_task **tasks, int64_t *count);
/* Writes tasks to path atomically. */
ag_status ag_task_save_jsonl(const char *path, const ag_task *tasks, int64_t count);

/* ---- verdicts ------------------------------------------------------------------- */

typedef struct ag_verdict {
  bool correct;
  /* The attempt had the answer's form (a number, a move string, a program
   * that parses, ...). An unparsable attempt is incorrect. */
  bool parsed;
  /* Family-specific diagnostics (a JSON object owned by the verdict; never
   * NULL after a successful verify). Every family sets "kind" (a short
   * machine-readable name: "wrong_value", "illegal_move", "failing_test",
   * "unparsed", "correct", ...); the rest is documented in docs/tasks.md.
   * Diagnostics may contain facts about the attempt and about the problem
   * the student already has; they are for the teacher, who must still not
   * state the answer. */
  json_t *diagnostics;
} ag_verdict;

void ag_verdict_clear(ag_verdict *v);

/* The attempt in a student turn: the text after the first line that starts
 * with "Answer:" (leading spaces allowed, case-sensitive), to the end of the
 * turn, trimmed. false when no line starts with "Answer:" (the turn is a
 * question or discussion). *attempt is malloc'd. Families whose answers are
 * one line read the attempt's first line. */
bool ag_task_extract_attempt(const char *turn, char **attempt);

/* ---- feedback ------------------------------------------------------------------- */

typedef enum ag_feedback_level {
  AG_FEEDBACK_BINARY = 0,      /* "That is not correct." */
  AG_FEEDBACK_DIRECTIONAL = 1, /* which way to go: too high, wrong sign, ... */
  AG_FEEDBACK_LOCALISED = 2    /* where it goes wrong: a step, a move, a test */
} ag_feedback_level;

/* Phrasings come in two disjoint sets, so that an evaluation can use
 * teacher phrasings no training dialogue contained. */
typedef enum ag_phrasing_set { AG_PHRASING_TRAIN = 0, AG_PHRASING_HELDOUT = 1 } ag_phrasing_set;

/* ---- families ------------------------------------------------------------------- */

typedef struct ag_task_family {
  const char *name;    /* "arith" */
  const char *summary; /* one line for --help */
  int max_level;       /* levels 1..max_level; 0: a data set (no generator) */
  int default_level;   /* the level evaluations use unless told */
  /* Task number `index` of the stream (seed, level): a pure function of
   * the three, so any task can be regenerated alone. NULL for data sets. */
  ag_status (*generate)(int level, uint64_t seed, int64_t index, ag_task *out);
  /* Judges an attempt (the text after "Answer:"). Near-misses are judged as
   * the answer's form allows: extra spaces and equivalent fractions are
   * correct, a wrong sign is not. Fails only on a malformed task. */
  ag_status (*verify)(const ag_task *task, const char *attempt, ag_verdict *out);
  /* Corrective feedback on a wrong attempt at the DIRECTIONAL or LOCALISED
   * level (the teacher phrases BINARY itself), one or a few sentences drawn
   * with rng from the phrasing set; never states the answer in any form.
   * *out is malloc'd. */
  ag_status (*feedback)(const ag_task *task, const ag_verdict *verdict, ag_feedback_level level,
                        ag_phrasing_set set, ag_rng *rng, char **out);
  /* Whether text reveals the answer in any equivalent form (1/2, 0.5, one
   * half; the same path written differently; the program itself): the leak
   * guard of LLM teachers. Facts the problem states are not leaks. */
  bool (*leaks)(const ag_task *task, const char *text);
  /* Solves the task from its problem data alone, independently of how the
   * generator built it (search, enumeration, an interpreter): an answer
   * that verifies. For tests: every generated task is solvable. */
  ag_status (*solve)(const ag_task *task, char **answer);
  /* Fills task->shards: the goal first, then the facts one per shard, with
   * required set on those without which the answer cannot be found. */
  ag_status (*shard)(ag_task *task);
} ag_task_family;

/* By name; an unknown name is an error listing the families. */
ag_status ag_task_family_get(const char *name, const ag_task_family **out);
int ag_task_family_count(void);
const ag_task_family *ag_task_family_at(int i);
/* "arith, algebra, maze, code, puzzle, gsm8k, math, humaneval": for messages. */
const char *ag_task_family_names(void);

/* Generates through the family and, when sharded, fills the shards. */
ag_status ag_task_generate(const char *family, int level, uint64_t seed, int64_t index,
                           bool sharded, ag_task *out);

/* A spec such as "arith:2,maze,code:1" (no level: the family's default)
 * parsed into families and levels; errors name the bad item. */
typedef struct ag_task_spec_item {
  const ag_task_family *family;
  int level;
} ag_task_spec_item;
ag_status ag_task_spec_parse(const char *spec, ag_task_spec_item *items, int max_items, int *count);

/* The per-family tables the registry is built from (src/worlds/tasks/). */
extern const ag_task_family ag_task_family_arith;
extern const ag_task_family ag_task_family_algebra;
extern const ag_task_family ag_task_family_maze;
extern const ag_task_family ag_task_family_code;
extern const ag_task_family ag_task_family_puzzle;
extern const ag_task_family ag_task_family_gsm8k;
extern const ag_task_family ag_task_family_math;
extern const ag_task_family ag_task_family_humaneval;

#ifdef __cplusplus
}
#endif

#endif
