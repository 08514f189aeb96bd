/* `agora sml train`: SML fine-tuning on the student's own teacher-student
 * dialogues. Flag parsing and output only; the work is in libagora
 * (agora/sml_train.h). */
#include "agora/sml_train.h"

#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"
#include "cli/sml_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FLAGS 40

static const char EPILOG[] =
    "Each round rolls out dialogues of the student with the programmatic teacher (training\n"
    "phrasings, sampled replies, --train-turns turns) on tasks of the chosen families:\n"
    "  offline  keeps the dialogues that end solved and fine-tunes on the student's turns\n"
    "           (teacher tokens masked out of the loss);\n"
    "  grpo     rolls out --group dialogues per task, rewards a success at student turn k\n"
    "           with gamma^(k-1), normalises rewards within each group and makes one\n"
    "           policy-gradient update over all rollouts (student tokens only).\n"
    "--q-priming first fine-tunes on solved rollouts whose wrong answers were replaced by\n"
    "clarifying questions (probability --priming-decay^t at turn t) and the teacher's answers.\n"
    "--kl BETA penalises divergence from --reference DIR (default off).\n\n"
    "STUDENT is a model folder with a chat template: our own models train in full; with\n"
    "--lora-rank R LoRA adapters are trained on it instead (any Hugging Face model).\n"
    "Writes OUT/checkpoint-R/ after each round (atomically), OUT/rounds.jsonl, the rollouts,\n"
    "OUT/eval/{base,final}/, OUT/results.json and the trained model (or adapter) in OUT;\n"
    "--resume continues a killed run. Prints base vs trained acc@k (held-out tasks, held-out\n"
    "teacher phrasings, greedy, --eval-turns turns). See docs/sml.md.\n";

static void print_text(const ag_sml_train_result *r, const char *out) {
  printf("sml train: %s, %d rounds%s, %.1f s\n", out, r->rounds_done,
         r->resumed ? " (resumed)" : "", r->seconds);
  if (r->eval_tasks == 0) return;
  printf("%-6s %8s %8s\n", "k", "base", "trained");
  for (int k = 0; k < r->turns; k++)
    printf("acc@%-2d %8.4f %8.4f\n", k + 1, r->base_acc_at[k], r->trained_acc_at[k]);
  printf("question rate %.4f -> %.4f on %lld tasks\n", r->base_question_rate,
         r->trained_question_rate, (long long)r->eval_tasks);
}

static int print_json(const ag_sml_train_result *r, const char *out) {
  json_t *base = json_array(), *trained = json_array();
  for (int k = 0; r->eval_tasks > 0 && k < r->turns; k++) {
    json_array_append_new(base, json_real(r->base_acc_at[k]));
    json_array_append_new(trained, json_real(r->trained_acc_at[k]));
  }
  json_t *o = json_pack("{s:o, s:o, s:f, s:f, s:I, s:i, s:i, s:b, s:f, s:s}", "base_acc_at", base,
                        "trained_acc_at", trained, "base_question_rate", r->base_question_rate,
                        "trained_question_rate", r->trained_question_rate, "eval_tasks",
                        (json_int_t)r->eval_tasks, "turns", r->turns, "rounds", r->rounds_done,
                        "resumed", r->resumed, "seconds", r->seconds, "out", out);
  return ag_cli_print_json(o, 0);
}

int ag_cli_sml_train_flags(ag_flag *table, ag_sml_train_cli *t) {
  t->o = ag_sml_train_defaults();
  t->mode = "offline";
  t->families = NULL;
  t->eval_families = NULL;
  t->lr = 0;
  t->clip = t->o.clip_norm;
  t->temperature = t->o.temperature;
  t->eval_temperature = 0;
  t->lora_alpha = 0;
  t->lora_dropout = 0.05;
  t->lora_rank = 0;
  t->lora_targets = "q_proj,v_proj";
  ag_sml_train_options *o = &t->o;
  int c = 0;
  table[c++] = (ag_flag){.name = "mode",
                         .type = AG_FLAG_CHOICE,
                         .value = &t->mode,
                         .choices = "offline|grpo",
                         .help = "how rollouts train the student"};
  table[c++] = (ag_flag){.name = "q-priming",
                         .type = AG_FLAG_BOOL,
                         .value = &o->q_priming,
                         .help = "a question-priming stage before the rounds"};
  table[c++] = (ag_flag){.name = "priming-decay",
                         .type = AG_FLAG_FLOAT,
                         .value = &o->priming_decay,
                         .metavar = "P",
                         .min = 0,
                         .max = 1,
                         .help = "a wrong answer at turn t becomes a question with prob. P^t"};
  table[c++] = (ag_flag){.name = "priming-tasks",
                         .type = AG_FLAG_INT64,
                         .value = &o->priming_tasks,
                         .metavar = "N",
                         .min = 1,
                         .max = 1e7,
                         .default_text = "--tasks-per-round",
                         .help = "rollouts of the priming stage"};
  table[c++] = (ag_flag){.name = "families",
                         .type = AG_FLAG_STRING,
                         .value = &t->families,
                         .metavar = "A,B",
                         .default_text = ag_sml_default_families(),
                         .help = "generated task families to train on (and to evaluate on)"};
  table[c++] = (ag_flag){.name = "eval-families",
                         .type = AG_FLAG_STRING,
                         .value = &t->eval_families,
                         .metavar = "A,B",
                         .default_text = "--families",
                         .help = "the families to evaluate on instead (transfer)"};
  table[c++] = (ag_flag){.name = "level",
                         .type = AG_FLAG_INT,
                         .value = &o->level,
                         .metavar = "L",
                         .min = 0,
                         .max = 10,
                         .default_text = "each family's default",
                         .help = "task level for training and evaluation"};
  table[c++] = (ag_flag){.name = "rounds",
                         .type = AG_FLAG_INT,
                         .value = &o->rounds,
                         .metavar = "N",
                         .min = 0,
                         .max = 1e6,
                         .help = "rounds of rollouts"};
  table[c++] = (ag_flag){.name = "tasks-per-round",
                         .type = AG_FLAG_INT64,
                         .value = &o->tasks_per_round,
                         .metavar = "N",
                         .min = 1,
                         .max = 1e7,
                         .help = "tasks rolled out per round"};
  table[c++] = (ag_flag){.name = "group",
                         .type = AG_FLAG_INT,
                         .value = &o->group,
                         .metavar = "G",
                         .min = 2,
                         .max = 1024,
                         .help = "GRPO rollouts per task"};
  table[c++] = (ag_flag){.name = "gamma",
                         .type = AG_FLAG_FLOAT,
                         .value = &o->gamma,
                         .metavar = "G",
                         .min = 1e-6,
                         .max = 1,
                         .help = "reward gamma^(k-1) for a success at student turn k"};
  table[c++] = (ag_flag){.name = "kl",
                         .type = AG_FLAG_FLOAT,
                         .value = &o->kl,
                         .metavar = "BETA",
                         .min = 0,
                         .max = 1e6,
                         .help = "KL penalty to --reference (0: off)"};
  table[c++] = (ag_flag){.name = "reference",
                         .type = AG_FLAG_STRING,
                         .value = &o->reference,
                         .metavar = "DIR",
                         .help = "the KL reference model folder"};
  table[c++] = (ag_flag){.name = "train-turns",
                         .type = AG_FLAG_INT,
                         .value = &o->train_turns,
                         .metavar = "K",
                         .min = 1,
                         .max = AG_SML_TRAIN_MAX_TURNS,
                         .help = "student turns per training dialogue"};
  table[c++] = (ag_flag){.name = "eval-turns",
                         .type = AG_FLAG_INT,
                         .value = &o->eval_turns,
                         .metavar = "K",
                         .min = 1,
                         .max = AG_SML_TRAIN_MAX_TURNS,
                         .help = "student turns per evaluation dialogue (acc@1..K)"};
  table[c++] = (ag_flag){.name = "eval-tasks",
                         .type = AG_FLAG_INT64,
                         .value = &o->eval_tasks,
                         .metavar = "N",
                         .min = 0,
                         .max = AG_SML_EVAL_RESERVE,
                         .help = "held-out tasks per family (0: no evaluation)"};
  table[c++] = (ag_flag){.name = "lr",
                         .type = AG_FLAG_FLOAT,
                         .value = &t->lr,
                         .metavar = "LR",
                         .min = 1e-9,
                         .max = 10,
                         .default_text = "1e-4, LoRA 1e-3",
                         .help = "learning rate (constant)"};
  table[c++] = (ag_flag){.name = "epochs",
                         .type = AG_FLAG_INT,
                         .value = &o->epochs,
                         .metavar = "N",
                         .min = 1,
                         .max = 1000,
                         .help = "offline and priming: passes over a round's dialogues"};
  table[c++] = (ag_flag){.name = "batch-size",
                         .type = AG_FLAG_INT64,
                         .value = &o->batch_size,
                         .metavar = "N",
                         .min = 1,
                         .max = 1e6,
                         .help = "offline and priming: dialogues per update"};
  table[c++] = (ag_flag){.name = "micro-batch",
                         .type = AG_FLAG_INT64,
                         .value = &o->micro_batch,
                         .metavar = "N",
                         .min = 1,
                         .max = 1e6,
                         .help = "dialogues per forward"};
  table[c++] = (ag_flag){.name = "clip-norm",
                         .type = AG_FLAG_FLOAT,
                         .value = &t->clip,
                         .metavar = "N",
                         .min = 0,
                         .max = 1e6,
                         .help = "gradient norm clip"};
  table[c++] = (ag_flag){.name = "temperature",
                         .type = AG_FLAG_FLOAT,
                         .value = &t->temperature,
                         .metavar = "T",
                         .min = 0,
                         .max = 10,
                         .help = "rollout sampling"};
  table[c++] = (ag_flag){.name = "eval-temperature",
                         .type = AG_FLAG_FLOAT,
                         .value = &t->eval_temperature,
                         .metavar = "T",
                         .min = 0,
                         .max = 10,
                         .help = "evaluation replies (0: greedy)"};
  table[c++] = (ag_flag){.name = "max-tokens",
                         .type = AG_FLAG_INT64,
                         .value = &o->max_tokens,
                         .metavar = "N",
                         .min = 1,
                         .max = 1e6,
                         .help = "tokens per student reply"};
  table[c++] = (ag_flag){.name = "seq-len",
                         .type = AG_FLAG_INT64,
                         .value = &o->seq_len,
                         .metavar = "N",
                         .min = 0,
                         .max = 1e7,
                         .default_text = "the context",
                         .help = "tokens per training dialogue at most"};
  table[c++] = (ag_flag){.name = "train-names",
                         .type = AG_FLAG_STRING,
                         .value = &o->train_names,
                         .metavar = "A,B",
                         .help = "message names trained on (student,teacher: also predict the "
                                 "teacher)"};
  table[c++] = (ag_flag){.name = "lora-rank",
                         .type = AG_FLAG_INT,
                         .value = &t->lora_rank,
                         .metavar = "R",
                         .min = 0,
                         .max = 4096,
                         .help = "train LoRA adapters of rank R (0: full fine-tuning)"};
  table[c++] = (ag_flag){.name = "lora-alpha",
                         .type = AG_FLAG_FLOAT,
                         .value = &t->lora_alpha,
                         .metavar = "A",
                         .min = 1e-6,
                         .max = 1e6,
                         .default_text = "2 x rank",
                         .help = "LoRA scale alpha / rank"};
  table[c++] = (ag_flag){.name = "lora-dropout",
                         .type = AG_FLAG_FLOAT,
                         .value = &t->lora_dropout,
                         .metavar = "P",
                         .min = 0,
                         .max = 0.99,
                         .help = "LoRA input dropout"};
  table[c++] = (ag_flag){.name = "lora-targets",
                         .type = AG_FLAG_STRING,
                         .value = &t->lora_targets,
                         .metavar = "A,B",
                         .help = "module-name suffixes, or all-linear"};
  return c;
}

int ag_cli_sml_train_finish(ag_command *cmd, const ag_common_flags *common, ag_sml_train_cli *t) {
  ag_sml_train_options *o = &t->o;
  const ag_task_family *parsed[AG_SML_MAX_FAMILIES];
  int count = 0;
  if (ag_sml_parse_families(t->families, parsed, AG_SML_MAX_FAMILIES, &count))
    return ag_args_usage_error(cmd, "--families: %s", ag_error_message());
  if (t->eval_families &&
      ag_sml_parse_families(t->eval_families, parsed, AG_SML_MAX_FAMILIES, &count))
    return ag_args_usage_error(cmd, "--eval-families: %s", ag_error_message());
  if (o->kl > 0 && !o->reference)
    return ag_args_usage_error(cmd, "--kl needs a reference model (--reference DIR)");
  if (ag_args_find(cmd, "group")->seen && strcmp(t->mode, "grpo"))
    return ag_args_usage_error(cmd, "--group is for --mode grpo");
  o->mode = !strcmp(t->mode, "grpo") ? AG_SML_GRPO : AG_SML_OFFLINE;
  o->families = t->families;
  o->eval_families = t->eval_families;
  o->lr = (float)t->lr;
  o->clip_norm = (float)t->clip;
  o->temperature = (float)t->temperature;
  o->eval_temperature = (float)t->eval_temperature;
  o->seed = common->seed;
  o->progress = !common->quiet;
  if (t->lora_rank > 0) {
    o->lora.rank = t->lora_rank;
    o->lora.alpha =
        ag_args_find(cmd, "lora-alpha")->seen ? (float)t->lora_alpha : 2.0f * (float)t->lora_rank;
    o->lora.dropout = (float)t->lora_dropout;
    snprintf(o->lora.target_modules, sizeof o->lora.target_modules, "%s", t->lora_targets);
  }
  return 0;
}

int ag_cli_sml_train(int argc, char **argv) {
  ag_sml_train_cli t;
  ag_common_flags common = {0};
  ag_flag table[MAX_FLAGS];
  int c = 0;
  table[c++] = (ag_flag){.name = "student",
                         .type = AG_FLAG_STRING,
                         .value = &t.o.student,
                         .metavar = "DIR",
                         .help = "the starting model folder",
                         .required = true};
  table[c++] = (ag_flag){.name = "out",
                         .type = AG_FLAG_STRING,
                         .value = &t.o.out_dir,
                         .metavar = "DIR",
                         .help = "the run folder",
                         .required = true};
  c += ag_cli_sml_train_flags(table + c, &t);
  table[c++] = (ag_flag){.name = "resume",
                         .type = AG_FLAG_BOOL,
                         .value = &t.o.resume,
                         .help = "continue the run in --out after its last checkpoint"};
  ag_flag flags[MAX_FLAGS + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, c, &common, true);
  ag_command cmd = {.name = "sml train",
                    .summary = "SML fine-tuning of a student on its own teacher-student dialogues "
                               "(offline or GRPO),\nthen base vs trained acc@k on held-out tasks.",
                    .flags = flags,
                    .flag_count = n,
                    .epilog = EPILOG};
  ag_args_result ar = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (ar == AG_ARGS_HELP) return 0;
  if (ar) return 2;
  if (ag_cli_sml_train_finish(&cmd, &common, &t)) return 2;
  ag_args_apply_common(&common);
  ag_sml_train_result r;
  if (ag_sml_train(&t.o, &r)) return ag_cli_error("%s", ag_error_message());
  print_text(&r, t.o.out_dir);
  return common.json ? print_json(&r, t.o.out_dir) : 0;
}
