/* Teacher–student dialogues (worlds layer): teachers (programmatic, or any
 * chat model behind a leak guard), the user simulator of sharded tasks, and
 * the protocol runner behind `agora teach eval`.
 *
 * A dialogue: the teacher states the problem (or, sharded, its first
 * shard); the student replies. A student turn with a line starting
 * "Answer:" is an answer attempt, verified by the task's family; any other
 * turn is a question or discussion. After a turn that is not a correct
 * answer the teacher replies — corrective feedback on a wrong attempt, and
 * on a sharded task one more shard (the one most relevant to the student's
 * question when it asked one, else the next in order). The dialogue ends
 * at the first correct answer or after K student turns.
 *
 * Roles as the student sees them: teacher turns are "user" messages (name
 * "teacher"), student turns "assistant" messages (name "student"), after
 * one "system" message that explains the protocol. See docs/dialogue.md. */
#ifndef AGORA_DIALOGUE_H
#define AGORA_DIALOGUE_H

#include "agora/chat_model.h"
#include "agora/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- teachers --------------------------------------------------------------------- */

typedef struct ag_teacher_options {
  ag_feedback_level level;  /* programmatic feedback level (default DIRECTIONAL) */
  ag_phrasing_set phrasing; /* default AG_PHRASING_HELDOUT (evaluation) */
  /* A chat model makes this an LLM teacher (NULL: programmatic). It is
   * prompted with the problem, the solution and the dialogue so far; a
   * message that leaks the answer (the family's leaks()) is rejected and
   * regenerated up to max_regenerations times, then replaced by the
   * programmatic teacher's feedback. */
  ag_chat_model *model;
  ag_chat_params params; /* for the LLM teacher */
  int max_regenerations; /* default 2 */
} ag_teacher_options;

ag_teacher_options ag_teacher_defaults(void);

/* The counts a teacher keeps: messages written after the opening turn,
 * LLM replies rejected by the leak guard (each try counts; an empty reply
 * is rejected too), and messages replaced by programmatic feedback. */
typedef struct ag_teacher_stats {
  int64_t messages, rejected, fallbacks;
} ag_teacher_stats;

/* The programmatic teacher's reply to a student turn that was not a correct
 * answer. After an attempt (verdict non-NULL): BINARY is phrased here ("That
 * is not correct." ...), DIRECTIONAL and LOCALISED come from the family's
 * feedback() (BINARY when it has none). After a question or discussion
 * (verdict NULL): a nudge ("Think about ...") and a request for a line
 * starting "Answer:". Phrasings are drawn with rng from the set; the answer
 * is never stated. *out malloc'd. */
ag_status ag_teacher_feedback(const ag_task *task, const ag_verdict *verdict,
                              ag_feedback_level level, ag_phrasing_set set, ag_rng *rng,
                              char **out);

/* ---- one dialogue ----------------------------------------------------------------- */

typedef struct ag_turn_record {
  bool attempt;        /* the student turn had an "Answer:" line */
  bool correct;        /* the attempt verified */
  bool premature;      /* an attempt made while a required shard was hidden */
  json_t *diagnostics; /* the verdict's, for attempts (owned); NULL otherwise */
} ag_turn_record;

typedef struct ag_dialogue {
  ag_task task; /* owned copy */
  bool sharded;
  ag_chat_message *messages; /* system, then teacher/student turns; strings owned */
  int message_count;
  ag_turn_record *turns; /* one per student turn */
  int turn_count;
  bool *revealed; /* per shard (sharded dialogues) */
  bool solved;
  int solved_at; /* student turns used when solved (1-based), 0 if not */
} ag_dialogue;

void ag_dialogue_clear(ag_dialogue *d);
/* The transcript record: {"messages":[...], "meta":{"task_id", "family",
 * "level", "sharded", "solved", "turns", "solved_at", "verdicts":[{"turn",
 * "attempt", "correct", "premature", "diagnostics"}...], "student",
 * "teacher"}} (DESIGN.md's chat-messages shape, name teacher/student). */
json_t *ag_dialogue_to_json(const ag_dialogue *d, const char *student, const char *teacher);

/* The user simulator: the hidden shard most relevant to a student's
 * question (word overlap, ignoring common words; ties to the earlier
 * shard), or the next hidden one in order when the turn asks nothing or
 * nothing overlaps. -1 when every shard is revealed. */
int ag_shard_pick(const ag_task *task, const bool *revealed, const char *student_turn);

/* ---- metrics ---------------------------------------------------------------------- */

typedef struct ag_teach_metrics {
  int64_t n;                    /* dialogues */
  int turns;                    /* K */
  double *acc_at;               /* [K]: share solved within k student turns (malloc'd) */
  double mean_turns_to_solve;   /* over solved dialogues (0 when none) */
  double premature_answer_rate; /* premature attempts / attempts (sharded) */
  double question_rate;         /* non-attempt student turns / student turns */
  double feedback_uptake;       /* P(next attempt correct | previous attempt wrong) */
  int64_t attempts, student_turns, uptake_pairs;
} ag_teach_metrics;

void ag_teach_metrics_clear(ag_teach_metrics *m);
/* Metrics of dialogues with K turns; rates with a zero denominator are 0. */
ag_status ag_teach_metrics_compute(const ag_dialogue *dialogues, int64_t n, int turns,
                                   ag_teach_metrics *out);
json_t *ag_teach_metrics_to_json(const ag_teach_metrics *m);

/* ---- the runner ------------------------------------------------------------------- */

typedef struct ag_teach_options {
  ag_chat_model *student;
  ag_teacher_options teacher;
  ag_chat_params student_params;
  const char *system_prompt; /* NULL: the default protocol explanation */
  int turns;                 /* K student turns at most (default 4) */
  bool sharded;              /* render tasks sharded */
  /* Where transcripts.jsonl and metrics.json go (created). With resume,
   * dialogues already in transcripts.jsonl are kept and skipped (a partial
   * last line from a killed run is dropped). */
  const char *out_dir;
  bool resume;
  int64_t batch; /* dialogues advanced together (default 16) */
  uint64_t seed;
  /* Self-teaching (PAPERS.md §2): no teacher after the opening turn; the
   * student writes each teacher turn itself from the public dialogue (a
   * "user" turn, ag_chat_params.reply_role; a local student only), then
   * revises. The verifier still ends the dialogue at the first correct
   * answer. Not with a teacher model or sharded tasks. */
  bool self_teach;
} ag_teach_options;

ag_teach_options ag_teach_defaults(void);

/* Runs one dialogue per task (ids must be unique), writes each finished
 * dialogue to out_dir/transcripts.jsonl as it ends, then out_dir/
 * metrics.json (atomically) over all dialogues in the file, and fills
 * *metrics (may be NULL). A model error ends the run with that error; every
 * dialogue finished before it stays written. Progress on stderr. */
ag_status ag_teach_eval(const ag_teach_options *o, const ag_task *tasks, int64_t n,
                        ag_teach_metrics *metrics, ag_teacher_stats *teacher_stats);

#ifdef __cplusplus
}
#endif

#endif
