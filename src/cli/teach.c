/* `agora teach eval`: a student model in teacher-student dialogues over
 * verifiable tasks. Flag parsing and output only; the work is in libagora
 * (agora/dialogue.h, agora/task.h, agora/chat_model.h). */
#include "agora/datasets.h"
#include "agora/dialogue.h"
#include "agora/json.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FLAGS      32
#define MAX_SPEC_ITEMS 32

static void free_tasks(ag_task *tasks, int64_t n) {
  for (int64_t i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);
}

/* The tasks of the run: generated (n per family of the spec), a task JSONL
 * file, or a data set file for a data-set family of the spec. */
static int load_tasks(const char *spec, const char *task_file, int64_t n, bool n_given,
                      bool sharded, uint64_t seed, ag_task **out, int64_t *count) {
  *out = NULL;
  *count = 0;
  ag_task_spec_item items[MAX_SPEC_ITEMS];
  int item_count = 0;
  if (spec && ag_task_spec_parse(spec, items, MAX_SPEC_ITEMS, &item_count))
    return ag_cli_error("--tasks: %s", ag_error_message());
  if (task_file) {
    if (!spec) {
      if (ag_task_load_jsonl(task_file, out, count)) return ag_cli_error("%s", ag_error_message());
      if (n_given && *count > n) {
        for (int64_t i = n; i < *count; i++) ag_task_clear(&(*out)[i]);
        *count = n;
      }
      return 0;
    }
    if (item_count != 1 || items[0].family->generate)
      return ag_cli_error("--task-file goes with no --tasks (a task JSONL file) or with one data "
                          "set family (--tasks gsm8k, math or humaneval)");
    if (ag_dataset_load(items[0].family->name, task_file, n, out, count))
      return ag_cli_error("%s", ag_error_message());
    return 0;
  }
  for (int i = 0; i < item_count; i++)
    if (!items[i].family->generate)
      return ag_cli_error("--tasks: %s is a data set, not a generated family: give its file with "
                          "--task-file",
                          items[i].family->name);
  ag_task *tasks = calloc((size_t)(item_count * n), sizeof *tasks);
  if (!tasks) return ag_cli_error("out of memory");
  int64_t k = 0;
  for (int i = 0; i < item_count; i++)
    for (int64_t j = 0; j < n; j++, k++)
      if (ag_task_generate(items[i].family->name, items[i].level, seed, j, sharded, &tasks[k])) {
        int rc = ag_cli_error("%s", ag_error_message());
        free_tasks(tasks, k);
        return rc;
      }
  *out = tasks;
  *count = k;
  return 0;
}

static void print_table(const ag_teach_metrics *m, const char *student, const char *teacher) {
  printf("teach eval: %lld dialogues, up to %d student turns; student %s, teacher %s\n",
         (long long)m->n, m->turns, student, teacher);
  printf("%4s  %s\n", "k", "acc@k");
  for (int k = 0; k < m->turns; k++) printf("%4d  %.4f\n", k + 1, m->acc_at[k]);
  printf("mean_turns_to_solve    %.4f\n", m->mean_turns_to_solve);
  printf("question_rate          %.4f\n", m->question_rate);
  printf("premature_answer_rate  %.4f\n", m->premature_answer_rate);
  printf("feedback_uptake        %.4f (%lld pairs)\n", m->feedback_uptake,
         (long long)m->uptake_pairs);
}

static int cmd_eval(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *student = NULL, *teacher = "programmatic", *spec = NULL, *task_file = NULL,
             *out = NULL, *feedback = "directional", *phrasing = "heldout", *chat_template = NULL;
  int turns = 4, max_regenerations = 2, retries = ag_chat_model_defaults().retries;
  int64_t n = 10, batch = 16, max_tokens = 256;
  double temperature = 0.0, teacher_temperature = 0.7;
  bool sharded = false, resume = false, truncate = true, self_teach = false;
  ag_flag table[MAX_FLAGS];
  int c = 0;
  table[c++] = (ag_flag){.name = "student",
                         .type = AG_FLAG_STRING,
                         .value = &student,
                         .metavar = "MODEL",
                         .help = "the student: a model folder, a .gguf file or an endpoint "
                                 "http://HOST:PORT/v1#MODEL_NAME",
                         .required = true};
  table[c++] = (ag_flag){.name = "teacher",
                         .type = AG_FLAG_STRING,
                         .value = &teacher,
                         .metavar = "programmatic|MODEL",
                         .help = "the programmatic teacher, or a chat model behind a leak guard"};
  table[c++] = (ag_flag){.name = "tasks",
                         .type = AG_FLAG_STRING,
                         .value = &spec,
                         .metavar = "FAMILY[:LEVEL],...",
                         .help = "task families (and levels) to generate --n tasks each of"};
  table[c++] = (ag_flag){.name = "task-file",
                         .type = AG_FLAG_STRING,
                         .value = &task_file,
                         .metavar = "FILE",
                         .help = "tasks from a task JSONL file, or a data set file with --tasks "
                                 "gsm8k|math|humaneval"};
  table[c++] = (ag_flag){.name = "turns",
                         .type = AG_FLAG_INT,
                         .value = &turns,
                         .metavar = "K",
                         .help = "student turns per dialogue at most",
                         .min = 1,
                         .max = 1000};
  table[c++] = (ag_flag){.name = "n",
                         .type = AG_FLAG_INT64,
                         .value = &n,
                         .metavar = "N",
                         .help = "tasks per family (with --task-file: the first N)",
                         .min = 1,
                         .max = 1e9};
  table[c++] = (ag_flag){.name = "out",
                         .type = AG_FLAG_STRING,
                         .value = &out,
                         .metavar = "DIR",
                         .help = "writes DIR/transcripts.jsonl and DIR/metrics.json",
                         .required = true};
  table[c++] = (ag_flag){.name = "sharded",
                         .type = AG_FLAG_BOOL,
                         .value = &sharded,
                         .help = "underspecified tasks: one shard up front, one more per turn"};
  table[c++] = (ag_flag){.name = "self-teach",
                         .type = AG_FLAG_BOOL,
                         .value = &self_teach,
                         .help = "no teacher after the problem: the student writes each "
                                 "critique itself (a local student), then revises"};
  table[c++] = (ag_flag){.name = "feedback",
                         .type = AG_FLAG_CHOICE,
                         .value = &feedback,
                         .choices = "binary|directional|localised",
                         .help = "the programmatic teacher's feedback level"};
  table[c++] = (ag_flag){.name = "phrasing",
                         .type = AG_FLAG_CHOICE,
                         .value = &phrasing,
                         .choices = "train|heldout",
                         .help = "the set of teacher phrasings"};
  table[c++] = (ag_flag){.name = "resume",
                         .type = AG_FLAG_BOOL,
                         .value = &resume,
                         .help = "keep the dialogues already in DIR/transcripts.jsonl, run the "
                                 "rest"};
  table[c++] = (ag_flag){.name = "batch",
                         .type = AG_FLAG_INT64,
                         .value = &batch,
                         .metavar = "N",
                         .help = "dialogues advanced together (one batched generation, or N "
                                 "concurrent requests)",
                         .min = 1,
                         .max = 4096};
  table[c++] = (ag_flag){.name = "temperature",
                         .type = AG_FLAG_FLOAT,
                         .value = &temperature,
                         .help = "the student's sampling temperature; 0: greedy",
                         .min = 0,
                         .max = 100};
  table[c++] = (ag_flag){.name = "teacher-temperature",
                         .type = AG_FLAG_FLOAT,
                         .value = &teacher_temperature,
                         .help = "an LLM teacher's temperature (above 0, so that a rejected "
                                 "message is regenerated differently)",
                         .min = 0,
                         .max = 100};
  table[c++] = (ag_flag){.name = "max-tokens",
                         .type = AG_FLAG_INT64,
                         .value = &max_tokens,
                         .metavar = "N",
                         .help = "tokens per model reply at most",
                         .min = 1,
                         .max = 1e9};
  table[c++] = (ag_flag){.name = "max-regenerations",
                         .type = AG_FLAG_INT,
                         .value = &max_regenerations,
                         .metavar = "N",
                         .help = "an LLM teacher's retries after a leaking message, before the "
                                 "programmatic feedback replaces it",
                         .min = 0,
                         .max = 100};
  table[c++] = (ag_flag){.name = "chat-template",
                         .type = AG_FLAG_STRING,
                         .value = &chat_template,
                         .metavar = "NAME",
                         .help = "local models: chatml, llama3, gemma, phi3 or plain instead of "
                                 "the model's own"};
  table[c++] = (ag_flag){.name = "truncate",
                         .type = AG_FLAG_BOOL,
                         .value = &truncate,
                         .help = "local models: drop the start of a dialogue too long for the "
                                 "context (--truncate=false: fail instead)",
                         .default_text = "true"};
  table[c++] = (ag_flag){.name = "retries",
                         .type = AG_FLAG_INT,
                         .value = &retries,
                         .metavar = "N",
                         .help = "endpoints: tries after the first on 429, 5xx, timeouts and "
                                 "refused connections",
                         .min = 0,
                         .max = 100};
  ag_flag flags[MAX_FLAGS + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, c, &common, true);
  ag_command cmd = {
      .name = "teach eval",
      .summary =
          "Run one dialogue per task between a teacher, who knows the answer, and the student "
          "model, who must find it: the teacher states the problem (or, --sharded, its first "
          "shard), the student replies, and a reply with a line starting \"Answer:\" is checked. "
          "After a turn that is not a correct answer the teacher gives corrective feedback (and, "
          "sharded, one more shard). A dialogue ends at the first correct answer or after K "
          "student turns. Prints acc@k for k = 1..K and the dialogue metrics.",
      .flags = flags,
      .flag_count = count,
      .epilog = "example:\n  agora teach eval --student models/qwen --teacher programmatic "
                "--tasks arith:2,maze --turns 4 --n 50 --out runs/teach"};
  ag_args_result pr = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (pr != AG_ARGS_OK) return pr == AG_ARGS_HELP ? 0 : 2;
  if (!spec && !task_file) return ag_args_usage_error(&cmd, "give --tasks or --task-file");
  if (self_teach && (sharded || strcmp(teacher, "programmatic")))
    return ag_args_usage_error(&cmd, "--self-teach has no teacher: not with --teacher MODEL or "
                                     "--sharded");
  ag_args_apply_common(&common);

  ag_task *tasks = NULL;
  int64_t task_count = 0;
  int rc = load_tasks(spec, task_file, n, ag_args_find(&cmd, "n")->seen, sharded, common.seed,
                      &tasks, &task_count);
  if (rc) return rc;

  ag_chat_model_options mo = ag_chat_model_defaults();
  mo.chat_template = chat_template;
  mo.max_batch = batch;
  mo.concurrency = (int)batch;
  mo.retries = retries;
  mo.truncate = truncate;
  ag_chat_model *student_model = NULL, *teacher_model = NULL;
  if (ag_chat_model_open(student, &mo, &student_model)) {
    rc = ag_cli_error("--student %s: %s", student, ag_error_message());
    goto done;
  }
  bool programmatic = !strcmp(teacher, "programmatic");
  if (!programmatic && ag_chat_model_open(teacher, &mo, &teacher_model)) {
    rc = ag_cli_error("--teacher %s: %s", teacher, ag_error_message());
    goto done;
  }

  ag_teach_options o = ag_teach_defaults();
  o.student = student_model;
  o.student_params.sampling.temperature = (float)temperature;
  o.student_params.max_tokens = max_tokens;
  o.student_params.seed = common.seed;
  o.teacher.level = !strcmp(feedback, "binary")        ? AG_FEEDBACK_BINARY
                    : !strcmp(feedback, "directional") ? AG_FEEDBACK_DIRECTIONAL
                                                       : AG_FEEDBACK_LOCALISED;
  o.teacher.phrasing = !strcmp(phrasing, "train") ? AG_PHRASING_TRAIN : AG_PHRASING_HELDOUT;
  o.teacher.model = teacher_model;
  o.teacher.params.sampling.temperature = (float)teacher_temperature;
  o.teacher.params.max_tokens = max_tokens;
  o.teacher.params.seed = common.seed;
  o.teacher.max_regenerations = max_regenerations;
  o.turns = turns;
  o.sharded = sharded;
  o.out_dir = out;
  o.resume = resume;
  o.batch = batch;
  o.seed = common.seed;
  o.self_teach = self_teach;
  const char *teacher_name = self_teach      ? "self"
                             : teacher_model ? ag_chat_model_name(teacher_model)
                                             : "programmatic";
  ag_info("teach eval: %lld tasks, student %s, teacher %s%s%s", (long long)task_count,
          ag_chat_model_name(student_model), teacher_name, self_teach ? "" : ", feedback ",
          self_teach ? "" : feedback);
  ag_teach_metrics m;
  ag_teacher_stats stats;
  if (ag_teach_eval(&o, tasks, task_count, &m, &stats)) {
    rc = ag_cli_error("%s", ag_error_message());
    goto done;
  }
  ag_info("teacher: %lld messages, %lld rejected by the leak guard, %lld replaced by "
          "programmatic feedback",
          (long long)stats.messages, (long long)stats.rejected, (long long)stats.fallbacks);
  print_table(&m, ag_chat_model_name(student_model), teacher_name);
  if (common.json) {
    json_t *j = ag_teach_metrics_to_json(&m);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
    json_decref(j);
    if (text)
      printf("%s\n", text);
    else
      rc = ag_cli_error("out of memory");
    free(text);
  }
  ag_teach_metrics_clear(&m);
  if (!rc && fflush(stdout) != 0) rc = ag_cli_error("cannot write stdout: %s", strerror(errno));
done:
  if (teacher_model) ag_chat_model_close(teacher_model);
  if (student_model) ag_chat_model_close(student_model);
  free_tasks(tasks, task_count);
  return rc;
}

int ag_cli_teach(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"eval", "run a student model in dialogues with a teacher; acc@k and the dialogue metrics",
       cmd_eval},
  };
  static const ag_cli_area_help area = {
      "teach", "Teacher-student dialogues over verifiable tasks (see docs/dialogue.md).", verbs,
      (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
