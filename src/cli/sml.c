/* `agora sml`: social meta-learning. `pretrain` trains the base student
 * from nothing. Flag parsing and output only; the work is in libagora
 * (agora/sml.h). */
#include "agora/sml.h"

#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FLAGS 24

static const char PRETRAIN_EPILOG[] =
    "Builds chat data from the task families (single-turn: problem, then the worked\n"
    "solution; and dialogue-format: a wrong attempt, the teacher's feedback, then the\n"
    "solution), trains a byte-level BPE tokenizer and a small Llama-style model on the\n"
    "student's turns, and measures acc@1 per family on held-out tasks at --level (1, the\n"
    "easiest, unless told; the programmatic teacher with held-out phrasings; greedy).\n\n"
    "Sizes: tiny (tests, seconds), small (the default, about 25 minutes on 2 cores), base\n"
    "(bigger machines). --steps, --examples and --eval-tasks override the size's values;\n"
    "--minutes times a few updates and trains for that long instead of --steps.\n\n"
    "Writes OUT/data/train.jsonl, OUT/tokenizer.json, the model folder OUT (config.json,\n"
    "model.safetensors, tokenizer files with the plain chat template), OUT/checkpoint-N/,\n"
    "OUT/metrics.jsonl, OUT/eval/<family>/ (transcripts, metrics) and OUT/pretrain.json.\n"
    "--resume continues a killed run with its saved settings. Prints the acc@1 table; with\n"
    "--json the last line is {\"acc_at_1\": {family: ...}, \"params\", \"seconds\", ...}.\n"
    "See docs/sml.md.\n";

static void print_text(const ag_sml_pretrain_result *r, const char *out) {
  printf("sml pretrain: %s, size %s, %lld parameters, %lld steps (loss %.4f -> %.4f, eval %.4f)\n",
         out, r->size.name, (long long)r->params, (long long)r->steps, r->first_loss, r->train_loss,
         r->eval_loss);
  printf("%-10s %8s %7s (level %d)\n", "family", "acc@1", "tasks", r->level);
  for (int i = 0; i < r->family_count; i++) {
    if (isfinite(r->acc_at_1[i]))
      printf("%-10s %8.4f %7lld\n", r->families[i], r->acc_at_1[i], (long long)r->eval_tasks);
    else
      printf("%-10s %8s %7s\n", r->families[i], "-", "-");
  }
  printf("seconds %.1f (training %.1f, evaluation %.1f)\n", r->seconds, r->train_seconds,
         r->eval_seconds);
}

static json_t *finite_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int print_json(const ag_sml_pretrain_result *r, const char *out) {
  json_t *acc = json_object();
  for (int i = 0; i < r->family_count; i++)
    json_object_set_new(acc, r->families[i], finite_or_null(r->acc_at_1[i]));
  json_t *o = json_pack(
      "{s:o, s:I, s:i, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:f, s:f, s:f, s:b, s:s, s:i}",
      "acc_at_1", acc, "eval_tasks", (json_int_t)r->eval_tasks, "level", r->level, "size",
      r->size.name, "params", (json_int_t)r->params, "steps", (json_int_t)r->steps, "records",
      (json_int_t)r->records, "windows", (json_int_t)r->windows, "first_loss",
      finite_or_null(r->first_loss), "train_loss", finite_or_null(r->train_loss), "eval_loss",
      finite_or_null(r->eval_loss), "seconds", r->seconds, "train_seconds", r->train_seconds,
      "eval_seconds", r->eval_seconds, "resumed", r->resumed, "out", out, "threads",
      ag_threads_get());
  char *text =
      o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
  json_decref(o);
  if (!text) return ag_cli_error("out of memory");
  printf("%s\n", text);
  free(text);
  return 0;
}

static int cmd_pretrain(int argc, char **argv) {
  ag_common_flags common = {0};
  ag_sml_pretrain_options o = ag_sml_pretrain_defaults();
  const char *families = NULL;
  bool no_eval = false;
  ag_flag table[MAX_FLAGS];
  int c = 0;
  table[c++] = (ag_flag){.name = "out",
                         .type = AG_FLAG_STRING,
                         .value = &o.out_dir,
                         .metavar = "DIR",
                         .help = "the run folder: data, checkpoints, the model, evaluations",
                         .required = true};
  table[c++] = (ag_flag){.name = "size",
                         .type = AG_FLAG_CHOICE,
                         .value = &o.size,
                         .choices = "tiny|small|base",
                         .help = "model, data and training preset"};
  table[c++] = (ag_flag){.name = "families",
                         .type = AG_FLAG_STRING,
                         .value = &families,
                         .metavar = "A,B",
                         .help = "generated task families to train and evaluate on",
                         .default_text = ag_sml_default_families()};
  table[c++] = (ag_flag){.name = "steps",
                         .type = AG_FLAG_INT64,
                         .value = &o.steps,
                         .metavar = "N",
                         .help = "updates",
                         .min = 1,
                         .max = 1e12,
                         .default_text = "the size's"};
  table[c++] = (ag_flag){.name = "minutes",
                         .type = AG_FLAG_FLOAT,
                         .value = &o.minutes,
                         .metavar = "M",
                         .help = "train for about M minutes instead of --steps",
                         .min = 0.01,
                         .max = 1e6};
  table[c++] = (ag_flag){.name = "examples",
                         .type = AG_FLAG_INT64,
                         .value = &o.examples_per_family,
                         .metavar = "N",
                         .help = "training records per family",
                         .min = 1,
                         .max = 1e9,
                         .default_text = "the size's"};
  table[c++] = (ag_flag){.name = "eval-tasks",
                         .type = AG_FLAG_INT64,
                         .value = &o.eval_tasks,
                         .metavar = "N",
                         .help = "held-out tasks per family for acc@1",
                         .min = 1,
                         .max = AG_SML_EVAL_RESERVE,
                         .default_text = "the size's"};
  table[c++] = (ag_flag){.name = "dialogue-fraction",
                         .type = AG_FLAG_FLOAT,
                         .value = &o.dialogue_fraction,
                         .metavar = "F",
                         .help = "share of records in dialogue format",
                         .min = 0,
                         .max = 1,
                         .default_text = "0.2"};
  table[c++] = (ag_flag){.name = "level",
                         .type = AG_FLAG_INT,
                         .value = &o.level,
                         .metavar = "N",
                         .help = "task level of the evaluation and most records",
                         .min = 1,
                         .max = 9,
                         .default_text = "1"};
  table[c++] =
      (ag_flag){.name = "easier-fraction",
                .type = AG_FLAG_FLOAT,
                .value = &o.easier_fraction,
                .metavar = "F",
                .help = "share of records one level below --level (level 2 when --level is 1)",
                .min = 0,
                .max = 1,
                .default_text = "0.25"};
  table[c++] = (ag_flag){.name = "resume",
                         .type = AG_FLAG_BOOL,
                         .value = &o.resume,
                         .help = "continue the run in --out from its last checkpoint"};
  table[c++] = (ag_flag){.name = "no-eval",
                         .type = AG_FLAG_BOOL,
                         .value = &no_eval,
                         .help = "train only; skip the acc@1 evaluation"};
  ag_flag flags[MAX_FLAGS + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, c, &common, true);
  ag_command cmd = {.name = "sml pretrain",
                    .summary = "Train the base student from nothing: task data, a tokenizer and "
                               "a small Llama-style\nmodel, then acc@1 per family on held-out "
                               "tasks.",
                    .flags = flags,
                    .flag_count = n,
                    .epilog = PRETRAIN_EPILOG};
  ag_args_result ar = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (ar == AG_ARGS_HELP) return 0;
  if (ar) return 2;
  if (ag_args_find(&cmd, "steps")->seen && ag_args_find(&cmd, "minutes")->seen)
    return ag_args_usage_error(&cmd, "give --steps or --minutes, not both");
  const ag_task_family *parsed[AG_SML_MAX_FAMILIES];
  int count = 0;
  if (ag_sml_parse_families(families, parsed, AG_SML_MAX_FAMILIES, &count))
    return ag_args_usage_error(&cmd, "--families: %s", ag_error_message());
  for (int i = 0; i < count && o.level > 0; i++)
    if (o.level > parsed[i]->max_level)
      return ag_args_usage_error(&cmd, "--level %d: %s has levels 1..%d", o.level, parsed[i]->name,
                                 parsed[i]->max_level);
  ag_args_apply_common(&common);
  o.families = families;
  o.seed = common.seed;
  o.skip_eval = no_eval;
  o.progress = !common.quiet;
  ag_sml_pretrain_result r;
  if (ag_sml_pretrain(&o, &r)) return ag_cli_error("%s", ag_error_message());
  print_text(&r, o.out_dir);
  return common.json ? print_json(&r, o.out_dir) : 0;
}

int ag_cli_sml(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"pretrain", "train the base student from nothing and measure its acc@1", cmd_pretrain},
      {"train", "SML fine-tuning on teacher-student rollouts (offline or GRPO)", ag_cli_sml_train},
      {"e1", "experiment E1: acc@k of the base vs the SML student (report folder)", ag_cli_sml_e1},
      {"e2", "experiment E2: SML transfer, math -> code/maze/puzzle and code -> math",
       ag_cli_sml_e2},
      {"e3", "experiment E3: premature answers and questions on underspecified tasks",
       ag_cli_sml_e3},
      {"e4", "experiment E4: self-correction with and without feedback prediction", ag_cli_sml_e4},
      {"e5", "experiment E5: binary, directional, localised and LLM-teacher feedback",
       ag_cli_sml_e5},
  };
  static const ag_cli_area_help area = {
      "sml",
      "Social meta-learning: students that learn from a teacher's feedback within a\n"
      "conversation (see docs/sml.md).",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
