/* Social meta-learning fine-tuning (methods layer): `agora sml train`
 * (PAPERS.md §1, docs/sml.md "train"). A student model is trained on its
 * own teacher-student dialogues (on-policy rollouts through the dialogue
 * runner, programmatic teacher with the training phrasings):
 *
 *   - offline: each round rolls out tasks_per_round dialogues (sampled
 *     replies), keeps those that end solved and fine-tunes on the student's
 *     turns only (teacher and system tokens masked out of the loss);
 *   - grpo: each round rolls out `group` dialogues per task, rewards a
 *     dialogue solved at student turn k with gamma^(k-1), normalises the
 *     rewards within each task's group and makes one policy-gradient update
 *     over all rollouts (agora/grpo.h), with an optional KL penalty to a
 *     reference model;
 *   - question priming (optional, before the rounds): rollouts whose wrong
 *     answer turns are replaced, with probability decay^t at student turn t,
 *     by a clarifying question written from the teacher's private knowledge
 *     and the teacher's answer to it, then fine-tuned on like offline data.
 *
 * The student is a model folder: our own models are fine-tuned in full;
 * with lora.rank > 0 (any Hugging Face model with a chat template) LoRA
 * adapters are trained instead. The run folder holds checkpoint-R/ after
 * round R (written atomically), state.json, rounds.jsonl, the rollouts of
 * every round and the evaluations; resume continues after a kill. */
#ifndef AGORA_SML_TRAIN_H
#define AGORA_SML_TRAIN_H

#include "agora/dialogue.h"
#include "agora/grpo.h"
#include "agora/sml.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ag_sml_train_mode { AG_SML_OFFLINE = 0, AG_SML_GRPO = 1 } ag_sml_train_mode;

#define AG_SML_TRAIN_MAX_TURNS 32

typedef struct ag_sml_train_options {
  const char *student; /* required: the starting model folder */
  const char *out_dir; /* required: the run folder */
  ag_sml_train_mode mode;
  const char *families;      /* comma-separated generated families; NULL: all */
  const char *eval_families; /* the families evaluated on (NULL: the training ones) */
  int level;                 /* training and evaluation level; 0: each family's default */
  int rounds;                /* default 4 */
  int64_t tasks_per_round;   /* default 16: offline dialogues / GRPO tasks per round */
  int group;                 /* GRPO rollouts per task (default 8) */
  double gamma;              /* turn discount (default 0.7) */
  double kl;                 /* KL penalty beta (default 0: off) */
  const char *reference;     /* the KL reference model folder (required when kl > 0) */
  int train_turns;           /* student turns per training dialogue (default 4) */
  int eval_turns;            /* K of the evaluation (default 10) */
  int64_t eval_tasks;        /* held-out tasks per family (default 20; 0: no evaluation) */
  float lr;                  /* default 1e-4 (full), 1e-3 (LoRA) when 0 */
  int epochs;                /* offline and priming: passes over a round's data (default 1) */
  int64_t batch_size;        /* offline: dialogues per update (default 8) */
  int64_t micro_batch;       /* rows per forward (default 8) */
  float clip_norm;           /* default 1.0 */
  float temperature;         /* rollout sampling (default 1.0) */
  float eval_temperature;    /* evaluation replies (default 0: greedy; > 0: sampled, seeded) */
  int64_t max_tokens;        /* tokens per student reply (default 384) */
  int64_t seq_len;           /* tokens per training dialogue at most (0: the model's context) */
  ag_lora_config lora;       /* rank 0: full fine-tuning */
  /* Question priming. */
  bool q_priming;
  double priming_decay;  /* default 0.75 */
  int64_t priming_tasks; /* rollouts of the priming stage (default tasks_per_round) */
  /* The names whose turns are trained on, comma-separated (default
   * "student"; "student,teacher" also predicts the teacher's turns). */
  const char *train_names;
  /* The system message of every dialogue (NULL: ag_sml_system_prompt(),
   * what the base student was pretrained with). */
  const char *system_prompt;
  uint64_t seed;
  bool resume;
  bool progress;
} ag_sml_train_options;

ag_sml_train_options ag_sml_train_defaults(void);

typedef struct ag_sml_round_stats {
  int round;                       /* 1-based; 0: the priming stage */
  int64_t dialogues, solved, kept; /* rollouts, solved ones, used for training */
  int64_t tokens, updates;
  double mean_reward, loss, nll, kl, grad_norm, seconds;
  int64_t edits; /* priming: answer turns replaced by questions */
} ag_sml_round_stats;

typedef struct ag_sml_train_result {
  int rounds_done;
  bool resumed;
  int turns;                                     /* K of acc_at */
  int64_t eval_tasks;                            /* total over families (0: not evaluated) */
  double base_acc_at[AG_SML_TRAIN_MAX_TURNS];    /* acc@1..K of the starting model */
  double trained_acc_at[AG_SML_TRAIN_MAX_TURNS]; /* acc@1..K after training */
  double base_question_rate, trained_question_rate;
  ag_sml_round_stats last; /* the last round run by this call */
  double seconds;
} ag_sml_train_result;

/* The whole run. Bad options — an unknown family, a student folder without
 * a chat template, a KL penalty without a reference, a mode or size out of
 * range — are errors before any work. A fresh run refuses a folder that
 * holds a run (state.json) unless resume. Progress on stderr. */
ag_status ag_sml_train(const ag_sml_train_options *o, ag_sml_train_result *r);

/* ---- pieces (for tests and the experiments) ----------------------------------------- */

/* A rollout read back from transcripts: its messages (owned) and outcome. */
typedef struct ag_sml_rollout {
  ag_chat_message *messages;
  int count;
  bool solved;
  int solved_at; /* student turns used when solved */
  int turns;
  char task_id[64];
} ag_sml_rollout;

void ag_sml_rollout_clear(ag_sml_rollout *r);
/* Reads every record of a transcripts.jsonl (agora/dialogue.h's shape);
 * *out malloc'd (clear each). */
ag_status ag_sml_rollouts_load(const char *path, ag_sml_rollout **out, int64_t *count);

/* The name of the teacher's opening turn in training dialogues. */
#define AG_SML_OPENING_NAME "problem"
/* Renames the rollout's first "teacher" message (the opening turn, which
 * states the problem) to AG_SML_OPENING_NAME: feedback prediction
 * (train_names "student,teacher") learns the teacher's critiques, not the
 * problems, which no public context predicts. Training does this to every
 * rollout. */
ag_status ag_sml_rollout_name_opening(ag_sml_rollout *r);

/* A clarifying question for task at student turn `turn` (1-based) written
 * from the teacher's private knowledge, and the teacher's reply to it.
 * Sharded tasks: the question names the words of the first hidden required
 * shard (revealed[i] says which are known; NULL: only shard 0), and the
 * reply is that shard. Fully specified tasks: the question asks how to
 * start, and the reply is the first step of the worked solution (or the
 * programmatic nudge when that step would state the answer). *question and
 * *reply malloc'd. */
ag_status ag_sml_clarifying_question(const ag_task *task, const bool *revealed, ag_rng *rng,
                                     char **question, char **reply);

/* Question priming of one dialogue: each student turn that is a wrong
 * answer attempt (an "Answer:" line the task's verifier rejects) at student
 * turn t (1-based) is replaced, with probability decay^t, by a clarifying
 * question, and the teacher turn after it by the answer to that question.
 * Other turns are kept. *out is a new message array (strings owned: free
 * with ag_sml_messages_free); *edits counts the replacements. */
ag_status ag_sml_prime_dialogue(const ag_task *task, const ag_chat_message *messages, int count,
                                double decay, ag_rng *rng, ag_chat_message **out, int *out_count,
                                int *edits);
void ag_sml_messages_free(ag_chat_message *m, int count);

#ifdef __cplusplus
}
#endif
#endif
