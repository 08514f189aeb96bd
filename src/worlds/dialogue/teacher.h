/* The teacher's turns as the dialogue runner asks for them (internal to
 * src/worlds/dialogue; the programmatic teacher alone is public in
 * agora/dialogue.h as ag_teacher_feedback). */
#ifndef AGORA_DIALOGUE_TEACHER_H
#define AGORA_DIALOGUE_TEACHER_H

#include "agora/dialogue.h"

/* The teacher's first turn: the problem, or (sharded) its first shard.
 * malloc'd; NULL with the error set when memory runs out. */
char *ag_teacher_opening(const ag_task *task, bool sharded);

/* One teacher turn the runner needs: the dialogue so far (its last message
 * is the student's turn), that turn's verdict when it was an answer
 * attempt (NULL for a question or discussion), the shard the simulator
 * reveals with this turn (-1: none), and the stream that seeds the
 * phrasings and the LLM teacher's sampling. */
typedef struct ag_teacher_request {
  const ag_dialogue *dialogue;
  const ag_verdict *verdict;
  int shard;
  uint64_t stream;
} ag_teacher_request;

/* The teacher's messages for requests[0..n): out[i] malloc'd (all NULL
 * after an error). An LLM teacher answers all requests in one batched
 * model call per try; a leaking (or empty) reply is retried up to
 * o->max_regenerations times, then replaced by the programmatic feedback.
 * A revealed shard is appended to the message. seed: the run's seed.
 * stats (may be NULL) is added to. A model error is returned. */
ag_status ag_teacher_replies(const ag_teacher_options *o, const ag_teacher_request *requests,
                             int64_t n, uint64_t seed, char **out, ag_teacher_stats *stats);

/* A well-mixed 64-bit value of two (splitmix64 of a ^ rotated b), for
 * deriving random streams. */
uint64_t ag_dialogue_mix(uint64_t a, uint64_t b);

#endif
