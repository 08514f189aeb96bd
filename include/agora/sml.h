/* Social meta-learning (methods layer): students that learn from a teacher's
 * language feedback within a conversation (PAPERS.md §1-2, docs/sml.md).
 *
 * This file has the base student so far: `agora sml pretrain` builds
 * single-turn and dialogue-format chat data from the generated task
 * families, trains a byte-level BPE tokenizer and a small Llama-style model
 * on it from nothing (loss on the student's turns only), saves a Hugging
 * Face folder with agora's plain chat template, and measures acc@1 per
 * family on held-out tasks through the dialogue runner.
 *
 *   ag_sml_pretrain_options o = ag_sml_pretrain_defaults();
 *   o.out_dir = "runs/base";
 *   ag_sml_pretrain_result r;
 *   if (ag_sml_pretrain(&o, &r) == AG_OK) printf("%.3f\n", r.acc_at_1[0]);
 *
 * Seeds. Evaluation tasks are task numbers 0.. of the stream (family,
 * the run's level, AG_SML_EVAL_SEED); training tasks come from other seeds
 * (derived from the run's seed), and a training task whose problem text
 * equals one of the first AG_SML_EVAL_RESERVE evaluation problems of its
 * family and level is left out, so no evaluation problem is ever trained on. */
#ifndef AGORA_SML_H
#define AGORA_SML_H

#include "agora/dialogue.h"
#include "agora/lm_train.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AG_SML_MAX_FAMILIES 8
#define AG_SML_EVAL_SEED    1000u
#define AG_SML_EVAL_RESERVE 1000
/* The level `sml pretrain` trains and evaluates the base student at unless
 * told (docs/sml.md): level 1, the easiest of every family, because a
 * 1M-parameter student scored at chance at the families' default level 2. */
#define AG_SML_BASE_LEVEL 1

/* The system message of every dialogue: the dialogue runner's default
 * protocol explanation, so that training data and `agora teach eval` show
 * the student the same conversation. */
const char *ag_sml_system_prompt(void);

/* The generated families in registry order ("arith,algebra,maze,code,puzzle"):
 * the default family list. */
const char *ag_sml_default_families(void);

/* Parses a comma-separated list of generated family names (no levels; NULL
 * or "" gives the defaults) into families[0..*count). An unknown name, a
 * data set family, a repeat or an empty item is an error naming it. */
ag_status ag_sml_parse_families(const char *list, const ag_task_family **families, int max,
                                int *count);

/* ---- model sizes ------------------------------------------------------------------- */

/* A named preset: the network, the data and the training it gets. */
typedef struct ag_sml_size {
  const char *name;   /* "tiny", "small", "base" */
  int32_t vocab_size; /* BPE vocabulary, special tokens and bytes included */
  int64_t hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads;
  int64_t seq_len;             /* tokens per training window (and the model's positions) */
  int64_t examples_per_family; /* chat records per family */
  int64_t steps;               /* updates (when neither steps nor minutes is given) */
  int64_t batch_size;          /* windows per update */
  float lr;
  int64_t eval_tasks;     /* held-out tasks per family for acc@1 */
  int64_t max_new_tokens; /* reply length at evaluation */
} ag_sml_size;

/* The preset called name; an unknown name is an error listing them. */
ag_status ag_sml_size_get(const char *name, ag_sml_size *out);
const char *ag_sml_size_names(void); /* "tiny, small, base" */

/* ---- data --------------------------------------------------------------------------- */

typedef struct ag_sml_data_options {
  const ag_task_family *families[AG_SML_MAX_FAMILIES];
  int family_count;
  int64_t examples_per_family; /* records per family */
  /* Share of records in dialogue format: the problem, a wrong attempt
   * (masked), the programmatic teacher's feedback (training phrasings),
   * then the worked solution. The rest are single-turn: the problem, then
   * the worked solution. */
  double dialogue_fraction;
  /* Share of records drawn one level below the records' level: easier
   * problems of the same form. At level 1 they come from level 2 instead
   * (puzzle's 12 level-1 Knights and Knaves problems are all reserved for
   * evaluation, so only level 2 trains that form). */
  double easier_fraction;
  /* Share of records that start with the system message. Every
   * evaluation dialogue has it; it is the same text every time, so a share
   * of the records teaches the student to read past it at a fraction of
   * its cost (about 80 tokens a record). */
  double system_fraction;
  uint64_t seed;
  /* The level of the records (and of the reserved evaluation problems);
   * 0: each family's default level. Above a family's max_level: an error. */
  int level;
} ag_sml_data_options;

/* dialogue_fraction 0.2, easier_fraction 0.25, system_fraction 0.25, the
 * other fields zero. */
ag_sml_data_options ag_sml_data_defaults(void);

/* The chat records, in a deterministic order: a JSON array of
 * {"messages": [{"role", "content", "name"}...], "meta": {"task_id",
 * "family", "level", "kind": "single" | "dialogue"}} (DESIGN.md's
 * chat-messages shape). The first message may be the system prompt; teacher
 * turns are "user" messages named "teacher"; the student turn to learn is
 * an "assistant" message named "student": a newline, then the task's worked
 * solution (maze moves spaced in the answer line, "Answer: U U R", which
 * the maze verifier reads like "UUR"; docs/sml.md says why); a wrong attempt in a dialogue
 * record is an "assistant" message named "student_wrong", which is never
 * trained on (`agora lm train --train-names student` reproduces the mask). */
ag_status ag_sml_build_records(const ag_sml_data_options *o, json_t **records);

/* Adds records to a chat corpus over tok made with ag_sml_lm_data_options:
 * several records packed into one window where they fit (concatenated in
 * the plain template, whole conversations only), in an order shuffled with
 * seed. A record longer than a window is cut (ag_lm_data_truncated). */
ag_status ag_sml_add_records(ag_lm_data *d, const ag_tokenizer *tok, const json_t *records,
                             uint64_t seed);

/* The data options ag_sml_add_records expects: seq_len, the plain template,
 * training on the messages named "student". */
ag_lm_data_options ag_sml_lm_data_options(int64_t seq_len);

/* ---- evaluation --------------------------------------------------------------------- */

/* The n held-out tasks of a family at its default level (seed
 * AG_SML_EVAL_SEED, numbers 0..n-1). *tasks malloc'd; clear each. */
ag_status ag_sml_eval_tasks(const ag_task_family *family, int64_t n, ag_task **tasks);
/* The same at a given level (0: the default level; outside 1..max_level an
 * error). */
ag_status ag_sml_eval_tasks_at(const ag_task_family *family, int level, int64_t n, ag_task **tasks);

/* acc@1 of a student on each family's held-out tasks at level (0: each
 * family's default level): single-turn
 * dialogues through ag_teach_eval (the programmatic teacher with held-out
 * phrasings, greedy replies of at most max_tokens tokens), written under
 * out_dir/<family>/ (transcripts.jsonl, metrics.json; resume continues
 * them). acc[i] receives family i's acc@1. */
ag_status ag_sml_eval_acc1(ag_chat_model *student, const ag_task_family *const *families,
                           int family_count, int level, int64_t tasks_per_family,
                           int64_t max_tokens, const char *out_dir, bool resume, double *acc);

/* ---- pretraining -------------------------------------------------------------------- */

typedef struct ag_sml_pretrain_options {
  const char *out_dir;  /* required: the model folder (and its run files) */
  const char *size;     /* a preset name (default "small") */
  const char *families; /* comma-separated generated families; NULL: all */
  /* Overrides of the preset (0: the preset's). steps and minutes exclude
   * each other; minutes sizes the step count from the speed of a few
   * trial updates. */
  int64_t steps;
  double minutes;
  int64_t examples_per_family;
  int64_t eval_tasks;
  double dialogue_fraction; /* < 0: the data default */
  double easier_fraction;   /* < 0: the data default */
  uint64_t seed;
  /* The level of the training records and of the evaluation (0:
   * AG_SML_BASE_LEVEL); above a family's max_level an error before any work.
   * The easier records (easier_fraction) come from one level below it
   * (from level 2 when it is 1). */
  int level;
  bool resume; /* continue a run in out_dir (its saved settings win) */
  bool skip_eval;
  bool progress; /* progress lines on a terminal */
} ag_sml_pretrain_options;

ag_sml_pretrain_options ag_sml_pretrain_defaults(void);

typedef struct ag_sml_pretrain_result {
  int family_count;
  char families[AG_SML_MAX_FAMILIES][16];
  double acc_at_1[AG_SML_MAX_FAMILIES]; /* NAN when not evaluated */
  int64_t eval_tasks;                   /* per family */
  int level;                            /* of the evaluation and most records */
  int64_t params, steps, records, windows, train_tokens;
  double first_loss, train_loss, eval_loss; /* first_loss: the first update's */
  double seconds, train_seconds, eval_seconds;
  bool resumed;
  ag_sml_size size; /* as resolved (overrides applied) */
} ag_sml_pretrain_result;

/* The whole pipeline into o->out_dir: data/train.jsonl (the records),
 * tokenizer.json, the model folder (config.json, model.safetensors,
 * generation_config.json, tokenizer files with the plain chat template),
 * checkpoint-N/ folders, metrics.jsonl, eval/<family>/ and pretrain.json
 * (settings and results). Bad options (an unknown family or size, both
 * steps and minutes) are errors before any work. Progress on stderr. */
ag_status ag_sml_pretrain(const ag_sml_pretrain_options *o, ag_sml_pretrain_result *r);

#ifdef __cplusplus
}
#endif

#endif
