/* `agora tasks list|generate|load|verify|check`: verifiable tasks. Flag
 * parsing and output only; the work is in libagora (agora/task.h,
 * agora/datasets.h). */
#include "agora/datasets.h"
#include "agora/task.h"
#include "cli/args.h"
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_json_line(json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  if (s) printf("%s\n", s);
  free(s);
  json_decref(o);
}

static void free_tasks(ag_task *tasks, int64_t n) {
  for (int64_t i = 0; i < n; i++) ag_task_clear(&tasks[i]);
  free(tasks);
}

/* Tasks to FILE (atomically) or, without one, to stdout. */
static int write_tasks(const char *out, const ag_task *tasks, int64_t n, bool as_json) {
  if (out) {
    if (ag_task_save_jsonl(out, tasks, n)) return ag_cli_error("%s", ag_error_message());
    if (as_json) {
      print_json_line(json_pack("{s:s, s:I}", "out", out, "tasks", (json_int_t)n));
    } else {
      printf("wrote %lld tasks to %s\n", (long long)n, out);
    }
    return 0;
  }
  for (int64_t i = 0; i < n; i++) {
    json_t *o = ag_task_to_json(&tasks[i]);
    ag_status st = o ? ag_jsonl_write(stdout, o) : AG_ERR_NOMEM;
    json_decref(o);
    if (st) return ag_cli_error("cannot write task %s: %s", tasks[i].id, ag_error_message());
  }
  return 0;
}

/* ---- list ------------------------------------------------------------------------ */

static int cmd_list(int argc, char **argv) {
  bool as_json = false;
  ag_flag flags[] = {
      {.name = "json", .type = AG_FLAG_BOOL, .value = &as_json, .help = "print one JSON object"},
  };
  ag_command cmd = {.name = "tasks list",
                    .summary = "List the task families: generated ones with their levels, and "
                               "the data sets (loaded from files).",
                    .flags = flags,
                    .flag_count = (int)(sizeof flags / sizeof *flags)};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  json_t *list = as_json ? json_array() : NULL;
  if (!as_json) printf("%-10s %-16s %s\n", "family", "levels", "summary");
  for (int i = 0; i < ag_task_family_count(); i++) {
    const ag_task_family *f = ag_task_family_at(i);
    char levels[48];
    if (f->max_level > 0)
      snprintf(levels, sizeof levels, "1-%d (default %d)", f->max_level, f->default_level);
    else
      snprintf(levels, sizeof levels, "data set");
    if (as_json)
      json_array_append_new(list,
                            json_pack("{s:s, s:i, s:i, s:s, s:b}", "name", f->name, "max_level",
                                      f->max_level, "default_level", f->default_level, "summary",
                                      f->summary, "data_set", f->max_level <= 0));
    else
      printf("%-10s %-16s %s\n", f->name, levels, f->summary);
  }
  if (as_json) print_json_line(json_pack("{s:o}", "families", list));
  return 0;
}

/* ---- generate -------------------------------------------------------------------- */

#define MAX_SPEC_ITEMS 64

static int cmd_generate(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *spec = NULL, *out = NULL;
  int64_t n = 10;
  bool sharded = false;
  ag_flag table[] = {
      {.name = "family",
       .type = AG_FLAG_STRING,
       .value = &spec,
       .metavar = "F[:LEVEL],...",
       .help = "families and levels, e.g. arith:2 or arith,maze:3 (no level: the default)",
       .required = true},
      {.name = "n",
       .type = AG_FLAG_INT64,
       .value = &n,
       .metavar = "N",
       .help = "tasks in all, taken in turn from the families listed",
       .min = 1,
       .max = 1e9},
      {.name = "sharded",
       .type = AG_FLAG_BOOL,
       .value = &sharded,
       .help = "also build each task's sharded rendering"},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "FILE",
       .help = "the JSONL file to write (default: stdout)"},
  };
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  ag_command cmd = {.name = "tasks generate",
                    .summary = "Generate tasks as JSONL. Task i of a family is a pure function of "
                               "(seed, level, i): the same flags always give the same tasks.",
                    .flags = flags,
                    .flag_count = count};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  ag_args_apply_common(&common);
  ag_task_spec_item items[MAX_SPEC_ITEMS];
  int n_items = 0;
  if (ag_task_spec_parse(spec, items, MAX_SPEC_ITEMS, &n_items))
    return ag_args_usage_error(&cmd, "--family: %s", ag_error_message());
  for (int i = 0; i < n_items; i++)
    if (!items[i].family->generate)
      return ag_args_usage_error(&cmd,
                                 "--family: %s is a data set, not a generator: use `agora tasks "
                                 "load --dataset %s FILE`",
                                 items[i].family->name, items[i].family->name);
  ag_task *tasks = calloc((size_t)n, sizeof *tasks);
  if (!tasks) return ag_cli_error("out of memory for %lld tasks", (long long)n);
  int rc = 0;
  for (int64_t i = 0; i < n && !rc; i++) {
    const ag_task_spec_item *it = &items[i % n_items];
    if (ag_task_generate(it->family->name, it->level, common.seed, i / n_items, sharded, &tasks[i]))
      rc = ag_cli_error("%s", ag_error_message());
  }
  if (!rc) rc = write_tasks(out, tasks, n, common.json);
  free_tasks(tasks, n);
  return rc;
}

/* ---- load ------------------------------------------------------------------------ */

static int cmd_load(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *dataset = NULL, *out = NULL;
  int64_t limit = 0;
  bool sharded = false;
  ag_flag table[] = {
      {.name = "dataset",
       .type = AG_FLAG_CHOICE,
       .value = &dataset,
       .choices = "gsm8k|math|humaneval",
       .help = "the file's format",
       .required = true},
      {.name = "limit",
       .type = AG_FLAG_INT64,
       .value = &limit,
       .metavar = "N",
       .help = "at most N records (0: all)",
       .min = 0,
       .max = 1e15},
      {.name = "sharded",
       .type = AG_FLAG_BOOL,
       .value = &sharded,
       .help = "also build each task's sharded rendering"},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "FILE",
       .help = "the task JSONL file to write (default: stdout)"},
  };
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  ag_command cmd = {.name = "tasks load",
                    .summary = "Read a data set file (JSONL, optionally gzip'd) into task JSONL, "
                               "the form `agora tasks verify` and `agora teach` read.",
                    .flags = flags,
                    .flag_count = count,
                    .positional_metavar = "FILE"};
  const char *files[2];
  int n_files = 0;
  ag_args_result r = ag_args_parse(&cmd, argc, argv, files, 2, &n_files);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (n_files != 1) return ag_args_usage_error(&cmd, "expected one data set FILE");
  ag_args_apply_common(&common);
  ag_task *tasks = NULL;
  int64_t n = 0;
  if (ag_dataset_load(dataset, files[0], limit, &tasks, &n))
    return ag_cli_error("%s", ag_error_message());
  const ag_task_family *f = NULL;
  int rc = 0;
  if (sharded && ag_task_family_get(dataset, &f)) rc = ag_cli_error("%s", ag_error_message());
  for (int64_t i = 0; sharded && !rc && i < n; i++)
    if (f->shard(&tasks[i])) rc = ag_cli_error("%s", ag_error_message());
  if (!rc) rc = write_tasks(out, tasks, n, common.json);
  free_tasks(tasks, n);
  return rc;
}

/* ---- verify ---------------------------------------------------------------------- */

/* All of a file ("-": stdin). */
static int read_text(const char *path, char **text) {
  if (strcmp(path, "-")) {
    size_t n;
    if (ag_read_file(path, text, &n)) return ag_cli_error("%s", ag_error_message());
    return 0;
  }
  size_t cap = 1 << 14, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n - 1, stdin);
    if (n < cap - 1) break;
    char *grown = realloc(buf, cap * 2);
    if (!grown) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  if (!buf) return ag_cli_error("out of memory reading stdin");
  buf[n] = '\0';
  *text = buf;
  return 0;
}

static int cmd_verify(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *task_file = NULL, *id = NULL, *answer = NULL, *answer_file = NULL, *feedback = NULL,
             *phrasing = "train";
  ag_flag table[] = {
      {.name = "task-file",
       .type = AG_FLAG_STRING,
       .value = &task_file,
       .metavar = "FILE",
       .help = "task JSONL (from `agora tasks generate` or `agora tasks load`)",
       .required = true},
      {.name = "id",
       .type = AG_FLAG_STRING,
       .value = &id,
       .metavar = "ID",
       .help = "the task's id (\"arith/2/0/5\", \"gsm8k/17\")",
       .required = true},
      {.name = "answer",
       .type = AG_FLAG_STRING,
       .value = &answer,
       .metavar = "TEXT",
       .help = "the attempt: what a student writes after \"Answer:\""},
      {.name = "answer-file",
       .type = AG_FLAG_STRING,
       .value = &answer_file,
       .metavar = "FILE",
       .help = "read the attempt from FILE (\"-\": stdin), e.g. a program"},
      {.name = "feedback",
       .type = AG_FLAG_CHOICE,
       .value = &feedback,
       .choices = "directional|localised",
       .help = "also print the programmatic teacher's feedback on a wrong attempt"},
      {.name = "phrasing",
       .type = AG_FLAG_CHOICE,
       .value = &phrasing,
       .choices = "train|heldout",
       .help = "the phrasing set feedback is drawn from"},
  };
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  ag_command cmd = {.name = "tasks verify",
                    .summary = "Judge one attempt at one task with the family's verifier and "
                               "print the verdict and its diagnostics.",
                    .flags = flags,
                    .flag_count = count};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (!answer == !answer_file)
    return ag_args_usage_error(&cmd, "give exactly one of --answer and --answer-file");
  ag_args_apply_common(&common);
  char *attempt = NULL;
  if (answer_file) {
    int rc = read_text(answer_file, &attempt);
    if (rc) return rc;
  } else if (!(attempt = strdup(answer))) {
    return ag_cli_error("out of memory");
  }
  ag_task *tasks = NULL;
  int64_t n = 0;
  int rc = 0;
  if (ag_task_load_jsonl(task_file, &tasks, &n)) rc = ag_cli_error("%s", ag_error_message());
  const ag_task *t = NULL;
  for (int64_t i = 0; !rc && i < n && !t; i++)
    if (!strcmp(tasks[i].id, id)) t = &tasks[i];
  if (!rc && !t) rc = ag_cli_error("no task with id \"%s\" in %s", id, task_file);
  const ag_task_family *f = NULL;
  if (!rc && ag_task_family_get(t->family, &f)) rc = ag_cli_error("%s", ag_error_message());
  ag_verdict v = {0};
  char *text = NULL;
  if (!rc && f->verify(t, attempt, &v)) rc = ag_cli_error("%s", ag_error_message());
  if (!rc && feedback && !v.correct) {
    ag_rng rng;
    ag_rng_seed(&rng, common.seed);
    ag_feedback_level level =
        !strcmp(feedback, "localised") ? AG_FEEDBACK_LOCALISED : AG_FEEDBACK_DIRECTIONAL;
    ag_phrasing_set set = !strcmp(phrasing, "heldout") ? AG_PHRASING_HELDOUT : AG_PHRASING_TRAIN;
    if (f->feedback(t, &v, level, set, &rng, &text)) rc = ag_cli_error("%s", ag_error_message());
  }
  if (!rc) {
    if (common.json) {
      json_t *o = json_pack("{s:s, s:b, s:b, s:O}", "id", t->id, "correct", v.correct, "parsed",
                            v.parsed, "diagnostics", v.diagnostics);
      if (o && text) json_object_set_new(o, "feedback", json_string(text));
      print_json_line(o);
    } else {
      char *d = json_dumps(v.diagnostics, JSON_COMPACT | JSON_PRESERVE_ORDER);
      printf("%s: %s\ndiagnostics: %s\n", t->id, v.correct ? "correct" : "incorrect", d ? d : "{}");
      if (text) printf("feedback: %s\n", text);
      free(d);
    }
  }
  free(text);
  ag_verdict_clear(&v);
  free_tasks(tasks, n);
  free(attempt);
  return rc;
}

/* ---- check ----------------------------------------------------------------------- */

typedef struct check_state {
  ag_progress *progress;
  int64_t done, failed;
  int64_t shown; /* failures printed; the rest are counted */
} check_state;

#define MAX_FAILURES_SHOWN 20

static void on_record(void *user, const ag_task *task, bool verified, const char *detail) {
  check_state *s = user;
  s->done++;
  if (!verified) {
    s->failed++;
    if (s->shown++ < MAX_FAILURES_SHOWN)
      fprintf(stderr, "agora: %s: not verified: %s\n", task->id, detail ? detail : "");
  }
  ag_progress_update(s->progress, s->done);
  if (s->failed) ag_progress_set_note(s->progress, "%lld failed", (long long)s->failed);
}

static int cmd_check(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *dataset = NULL;
  int64_t limit = 0;
  ag_sandbox_limits lim = ag_sandbox_defaults();
  double timeout = lim.wall_seconds;
  int64_t memory_mb = lim.memory_bytes >> 20;
  ag_flag table[] = {
      {.name = "dataset",
       .type = AG_FLAG_CHOICE,
       .value = &dataset,
       .choices = "gsm8k|math|humaneval",
       .help = "the file's format",
       .required = true},
      {.name = "limit",
       .type = AG_FLAG_INT64,
       .value = &limit,
       .metavar = "N",
       .help = "check the first N records only (0: all)",
       .min = 0,
       .max = 1e15},
      {.name = "timeout",
       .type = AG_FLAG_FLOAT,
       .value = &timeout,
       .metavar = "SECONDS",
       .help = "humaneval: wall-time (and CPU) limit per program",
       .min = 0.1,
       .max = 3600},
      {.name = "memory-mb",
       .type = AG_FLAG_INT64,
       .value = &memory_mb,
       .metavar = "MB",
       .help = "humaneval: address-space limit per program",
       .min = 64,
       .max = 1 << 20},
  };
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  ag_command cmd = {
      .name = "tasks check",
      .summary = "Verify every record of a data set with agora's own extractor and verifier: "
                 "GSM8K and MATH reference answers are extracted from the reference solutions "
                 "and verified; HumanEval canonical solutions run against their tests in the "
                 "sandbox (--threads at a time). The last line on stdout is `verified N/M`; "
                 "the exit status is 0 only when every record verifies.",
      .flags = flags,
      .flag_count = count,
      .positional_metavar = "FILE"};
  const char *files[2];
  int n_files = 0;
  ag_args_result r = ag_args_parse(&cmd, argc, argv, files, 2, &n_files);
  if (r != AG_ARGS_OK) return r == AG_ARGS_HELP ? 0 : 2;
  if (n_files != 1) return ag_args_usage_error(&cmd, "expected one data set FILE");
  ag_args_apply_common(&common);
  lim.wall_seconds = timeout;
  lim.cpu_seconds = timeout;
  lim.memory_bytes = memory_mb << 20;
  check_state state = {.progress = ag_progress_begin("check", limit, "records")};
  int64_t verified = 0, total = 0;
  double start = ag_time_seconds();
  ag_status st =
      ag_dataset_check(dataset, files[0], limit, &lim, on_record, &state, &verified, &total);
  ag_progress_end(state.progress);
  if (st) return ag_cli_error("%s", ag_error_message());
  if (state.shown > MAX_FAILURES_SHOWN)
    fprintf(stderr, "agora: ... and %lld more not verified\n",
            (long long)(state.shown - MAX_FAILURES_SHOWN));
  double seconds = ag_time_seconds() - start;
  if (common.json)
    print_json_line(json_pack("{s:s, s:s, s:I, s:I, s:f}", "dataset", dataset, "file", files[0],
                              "verified", (json_int_t)verified, "total", (json_int_t)total,
                              "seconds", seconds));
  else
    printf("verified %lld/%lld\n", (long long)verified, (long long)total);
  return verified == total ? 0 : 1;
}

int ag_cli_tasks(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"list", "the task families, their levels and what they are", cmd_list},
      {"generate", "generate tasks of a family (JSONL)", cmd_generate},
      {"load", "read a data set file into task JSONL", cmd_load},
      {"verify", "judge an answer to one task of a task file", cmd_verify},
      {"check", "verify every reference answer of a data set file", cmd_check},
  };
  static const ag_cli_area_help area = {
      "tasks",
      "Verifiable tasks: seeded generators with difficulty levels, and the real data sets\n"
      "GSM8K, MATH and HumanEval (HumanEval runs python3 in a sandbox).",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
