/* What datasets.c (GSM8K, MATH, the loaders) and humaneval.c share
 * (internal to src/worlds/tasks). */
#ifndef AGORA_DATASET_INTERNAL_H
#define AGORA_DATASET_INTERNAL_H

#include "agora/datasets.h"

/* Splits prose into sentences, each trimmed with its runs of white space
 * made one space: a sentence ends at '.', '?' or '!' (with any closing
 * quotes or brackets) followed by white space or the end, and at a blank
 * line; not in decimals ("2.5"), after common abbreviations ("Mr.",
 * "e.g."), nor, when latex is true, inside $...$ math (GSM8K's "$" is
 * money, MATH's is math). *out is malloc'd; free with ag_strings_free. */
ag_status ag_split_sentences(const char *text, bool latex, char ***out, int *count);
void ag_strings_free(char **strings, int count);

/* Whether the sentence asks something (ends with '?'). */
bool ag_sentence_is_question(const char *sentence);

/* Text with every sentence of `problem` it repeats verbatim blanked out:
 * restating the problem is not a leak, even when the answer's value
 * appears in it. malloc'd (NULL when out of memory). */
char *ag_text_without_problem(const char *text, const char *problem);

/* A HumanEval record {"task_id","prompt","canonical_solution","test",
 * "entry_point"} as a task; where names the record ("FILE:LINE") in
 * errors. */
ag_status ag_humaneval_task_from_record(const json_t *record, const char *where, ag_task *out);

/* Runs each task's canonical solution (the task's answer) in the sandbox,
 * up to ag_threads_get() at a time, telling on_record about each in the
 * order they finish. */
ag_status ag_humaneval_check_tasks(const ag_task *tasks, int64_t count,
                                   const ag_sandbox_limits *limits, ag_dataset_check_fn on_record,
                                   void *user, int64_t *verified);

#endif
