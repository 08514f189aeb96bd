/* `agora infusion run|sweep`: crafting training data that raises
 * p(target | probe) after retraining (agora/infusion.h). Flag parsing and
 * output only. */
#include "agora/infusion.h"

#include "cli/args.h"
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Flags both verbs take, bound to one set of variables. */
typedef struct shared_flags {
  const char *run, *retrain_run, *data_dir, *factors;
  int64_t k, fit_limit, fit_batch, score_chunk, perturb_batch;
  int steps;
  double damping, step_size, epsilon, fd_step;
} shared_flags;

#define SHARED_FLAG_COUNT 14

static void shared_defaults(shared_flags *s) {
  ag_infusion_config c = ag_infusion_defaults();
  memset(s, 0, sizeof *s);
  s->k = c.k;
  s->fit_limit = c.fit_limit;
  s->fit_batch = c.fit_batch;
  s->score_chunk = c.score_chunk;
  s->perturb_batch = c.perturb.batch_size;
  s->steps = c.perturb.steps;
  s->damping = c.damping;
  s->step_size = c.perturb.step_size;
  s->epsilon = c.perturb.epsilon;
  s->fd_step = c.perturb.fd_step;
}

static void shared_table(ag_flag *f, shared_flags *s) {
  int i = 0;
  f[i++] = (ag_flag){.name = "run",
                     .type = AG_FLAG_STRING,
                     .value = &s->run,
                     .metavar = "DIR",
                     .help = "a clean run of `agora vision train` (>= 2 epochs): its last epoch's "
                             "model crafts the edit",
                     .required = true};
  f[i++] = (ag_flag){.name = "retrain-run",
                     .type = AG_FLAG_STRING,
                     .value = &s->retrain_run,
                     .metavar = "DIR",
                     .help = "retrain this run instead (transfer: craft on --run, e.g. a ResNet, "
                             "retrain a CNN)",
                     .default_text = "--run"};
  f[i++] = (ag_flag){.name = "data-dir",
                     .type = AG_FLAG_STRING,
                     .value = &s->data_dir,
                     .metavar = "DIR",
                     .help = "folder holding the run's dataset files",
                     .default_text = "fashion-mnist: " AG_FASHION_MNIST_DIR};
  f[i++] = (ag_flag){.name = "factors",
                     .type = AG_FLAG_STRING,
                     .value = &s->factors,
                     .metavar = "FILE",
                     .help = "EK-FAC factors of --run's model: loaded if present, else fitted and "
                             "saved there",
                     .default_text = "RUN/infusion/factors-eEEE-dDAMPING.safetensors"};
  f[i++] = (ag_flag){.name = "k",
                     .type = AG_FLAG_INT64,
                     .value = &s->k,
                     .help = "training images selected and edited",
                     .min = 1,
                     .max = 1e12};
  f[i++] = (ag_flag){.name = "damping",
                     .type = AG_FLAG_FLOAT,
                     .value = &s->damping,
                     .help = "EK-FAC damping; -1: 0.1 x mean eigenvalue (the seed: effectively 0)",
                     .min = -1,
                     .max = 1e6};
  f[i++] = (ag_flag){.name = "fit-limit",
                     .type = AG_FLAG_INT64,
                     .value = &s->fit_limit,
                     .help = "fit the factors on the first N training images",
                     .min = 0,
                     .max = 1e15,
                     .default_text = "all the run used"};
  f[i++] = (ag_flag){.name = "fit-batch",
                     .type = AG_FLAG_INT64,
                     .value = &s->fit_batch,
                     .metavar = "B",
                     .help = "images per pass when fitting and scoring",
                     .min = 1,
                     .max = 1 << 20};
  f[i++] = (ag_flag){.name = "score-chunk",
                     .type = AG_FLAG_INT64,
                     .value = &s->score_chunk,
                     .help = "images per resumable scoring chunk",
                     .min = 1,
                     .max = 1e12};
  f[i++] = (ag_flag){.name = "steps",
                     .type = AG_FLAG_INT,
                     .value = &s->steps,
                     .help = "sign-gradient steps per image",
                     .min = 0,
                     .max = 1e6};
  f[i++] = (ag_flag){.name = "step-size",
                     .type = AG_FLAG_FLOAT,
                     .value = &s->step_size,
                     .help = "pixel change per step",
                     .min = 0,
                     .max = 1};
  f[i++] = (ag_flag){.name = "epsilon",
                     .type = AG_FLAG_FLOAT,
                     .value = &s->epsilon,
                     .help = "L-infinity budget per pixel (also the noise baseline's amplitude)",
                     .min = 0,
                     .max = 1};
  f[i++] = (ag_flag){.name = "fd-step",
                     .type = AG_FLAG_FLOAT,
                     .value = &s->fd_step,
                     .metavar = "H",
                     .help = "finite-difference step along the unit inverse-HVP direction",
                     .min = 1e-9,
                     .max = 10};
  f[i++] = (ag_flag){.name = "perturb-batch",
                     .type = AG_FLAG_INT64,
                     .value = &s->perturb_batch,
                     .metavar = "B",
                     .help = "images per forward pass while perturbing",
                     .min = 1,
                     .max = 1 << 20};
}

static ag_infusion_config config_of(const shared_flags *s, const ag_common_flags *common) {
  ag_infusion_config c = ag_infusion_defaults();
  c.k = s->k;
  c.damping = s->damping < 0 ? AG_INFLUENCE_DAMPING_DEFAULT : s->damping;
  c.fit_limit = s->fit_limit;
  c.fit_batch = s->fit_batch;
  c.score_chunk = s->score_chunk;
  c.perturb.steps = s->steps;
  c.perturb.step_size = (float)s->step_size;
  c.perturb.epsilon = (float)s->epsilon;
  c.perturb.fd_step = (float)s->fd_step;
  c.perturb.batch_size = s->perturb_batch;
  c.seed = common->seed;
  c.progress = !common->quiet;
  return c;
}

/* The runs and the data sets they were trained on, opened together. */
typedef struct opened {
  ag_image_dataset *train, *test;
  ag_infusion_base *craft, *retrain;
} opened;

static void close_all(opened *o) {
  ag_infusion_base_close(o->craft);
  ag_infusion_base_close(o->retrain);
  ag_image_dataset_destroy(o->train);
  ag_image_dataset_destroy(o->test);
}

static ag_status open_all(const shared_flags *s, opened *o) {
  memset(o, 0, sizeof *o);
  char path[AG_INFUSION_PATH_MAX];
  ag_classify_checkpoint info;
  /* The data set's name comes from any checkpoint of the run. */
  ag_classify_checkpoint_path(s->run, 1, path, sizeof path);
  ag_status st = ag_classify_checkpoint_read(path, &info);
  if (st)
    return ag_error_wrap(st,
                         "%s is not a run of `agora vision train` with its epoch-001 "
                         "checkpoint",
                         s->run);
  st = ag_image_dataset_load(info.config.data, s->data_dir, AG_SPLIT_TRAIN, &o->train);
  if (!st) st = ag_image_dataset_load(info.config.data, s->data_dir, AG_SPLIT_TEST, &o->test);
  if (!st) st = ag_infusion_base_open(s->run, o->train, o->test, &o->craft);
  if (!st && s->retrain_run && strcmp(s->retrain_run, s->run))
    st = ag_infusion_base_open(s->retrain_run, o->train, o->test, &o->retrain);
  if (st) close_all(o);
  return st;
}

static int print_json(json_t *fields) {
  char *text = fields
                   ? json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8))
                   : NULL;
  if (!text) return ag_cli_error("out of memory");
  printf("%s\n", text);
  free(text);
  fflush(stdout);
  return 0;
}

/* ---- run --------------------------------------------------------------------------- */

static int cmd_run(int argc, char **argv) {
  ag_common_flags common = {.seed = 1};
  shared_flags s;
  shared_defaults(&s);
  int64_t probe = -1, copies = 1;
  int target = -1;
  const char *method = "infusion", *select = "top", *work = NULL;
  ag_flag table[SHARED_FLAG_COUNT + 7];
  shared_table(table, &s);
  int n = SHARED_FLAG_COUNT;
  table[n++] = (ag_flag){.name = "probe",
                         .type = AG_FLAG_INT64,
                         .value = &probe,
                         .metavar = "I",
                         .help = "index of the probe image in the test set",
                         .min = 0,
                         .max = 1e15,
                         .required = true};
  table[n++] = (ag_flag){.name = "target",
                         .type = AG_FLAG_INT,
                         .value = &target,
                         .metavar = "C",
                         .help = "class whose probability on the probe should rise",
                         .min = 0,
                         .max = 1 << 20,
                         .required = true};
  table[n++] = (ag_flag){.name = "method",
                         .type = AG_FLAG_CHOICE,
                         .value = &method,
                         .choices = "infusion|noise|probe-copies",
                         .help = "infusion; random +-epsilon noise; or probe copies labelled "
                                 "target written over selected images"};
  table[n++] = (ag_flag){.name = "select",
                         .type = AG_FLAG_CHOICE,
                         .value = &select,
                         .choices = "top|bottom|random",
                         .help = "which k images: largest or smallest predicted change, or random"};
  table[n++] = (ag_flag){.name = "copies",
                         .type = AG_FLAG_INT64,
                         .value = &copies,
                         .help = "probe-copies: how many of the k selected images become the probe",
                         .min = 1,
                         .max = 1e12};
  table[n++] = (ag_flag){.name = "work",
                         .type = AG_FLAG_STRING,
                         .value = &work,
                         .metavar = "DIR",
                         .help = "folder for scores and retrained checkpoints",
                         .default_text = "RUN/infusion"};
  ag_flag flags[SHARED_FLAG_COUNT + 7 + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, n, &common, true);
  ag_command cmd = {
      .name = "infusion run",
      .summary = "Edit k training images so that retraining the last epoch raises\n"
                 "p(target | probe image), and measure it: retrains epoch E of the run from its\n"
                 "epoch E-1 checkpoint on the edited and on the clean set (same data order).",
      .flags = flags,
      .flag_count = count,
      .epilog =
          "The last line on stdout is `delta_p +0.XXXX ...`, or with --json one object with\n"
          "delta_p, delta_log_odds, top1_before, top1_after, clean_acc_before,\n"
          "clean_acc_after, p_before, p_after and more. Factors are cached under RUN/infusion\n"
          "(or --factors); the clean retrain under RETRAIN/infusion/clean-retrain."};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  ag_args_apply_common(&common);
  ag_infusion_config cfg = config_of(&s, &common);
  ag_infusion_method_parse(method, &cfg.method); /* the choice lists admit only valid names */
  ag_infusion_selection_parse(select, &cfg.select);
  cfg.copies = copies;
  if (cfg.method == AG_INFUSION_METHOD_PROBE_COPIES && copies > cfg.k)
    return ag_args_usage_error(&cmd, "--copies %lld exceeds --k %lld", (long long)copies,
                               (long long)cfg.k);

  opened o;
  ag_status st = open_all(&s, &o);
  if (st) return ag_cli_error("%s", ag_error_message());
  ag_infusion_plan plan = {
      .craft = o.craft, .retrain = o.retrain, .factors_path = s.factors, .work_dir = work};
  ag_infusion_result res;
  st = ag_infusion_run_pair(&plan, (ag_infusion_target){probe, target}, &cfg, &res);
  const char *retrain_dir = o.retrain ? o.retrain->dir : o.craft->dir;
  json_t *fields = NULL;
  if (!st) {
    fields =
        json_pack("{s:f, s:f, s:b, s:b, s:f, s:f}", "delta_p", res.delta_p, "delta_log_odds",
                  res.delta_log_odds, "top1_before", res.before.top1, "top1_after", res.after.top1,
                  "clean_acc_before", res.clean_acc_before, "clean_acc_after", res.clean_acc_after);
    json_t *rest = ag_infusion_result_json(&res);
    if (fields && rest) json_object_update_missing(fields, rest);
    json_decref(rest);
    if (fields) {
      json_object_set_new(fields, "run", json_string(o.craft->dir));
      json_object_set_new(fields, "retrain_run", json_string(retrain_dir));
    }
  }
  close_all(&o);
  if (st) return ag_cli_error("%s", ag_error_message());
  if (common.json) {
    int rc = print_json(fields);
    json_decref(fields);
    return rc;
  }
  json_decref(fields);
  printf("p(target %d | probe %lld): %.4f -> %.4f; log-odds %+.3f -> %+.3f; target top-1: %s -> "
         "%s; clean accuracy %.4f -> %.4f\n",
         target, (long long)probe, res.before.p, res.after.p, res.before.log_odds,
         res.after.log_odds, res.before.top1 ? "yes" : "no", res.after.top1 ? "yes" : "no",
         res.clean_acc_before, res.clean_acc_after);
  printf("delta_p %+.4f delta_log_odds %+.3f\n", res.delta_p, res.delta_log_odds);
  return 0;
}

/* ---- sweep ------------------------------------------------------------------------- */

#define MAX_VARIANTS 16

static int cmd_sweep(int argc, char **argv) {
  ag_common_flags common = {.seed = 1};
  shared_flags s;
  shared_defaults(&s);
  int64_t pairs = 20, first_pair = 0;
  const char *out = NULL, *variants = "infusion";
  ag_flag table[SHARED_FLAG_COUNT + 4];
  shared_table(table, &s);
  int n = SHARED_FLAG_COUNT;
  table[n++] = (ag_flag){.name = "pairs",
                         .type = AG_FLAG_INT64,
                         .value = &pairs,
                         .help = "probe x target pairs, drawn from --seed (probe: a test image; "
                                 "target: another class than its label)",
                         .min = 1,
                         .max = 1e9};
  table[n++] = (ag_flag){.name = "first-pair",
                         .type = AG_FLAG_INT64,
                         .value = &first_pair,
                         .help = "run pairs first-pair..pairs-1 only (split a sweep)",
                         .min = 0,
                         .max = 1e9};
  table[n++] = (ag_flag){.name = "variants",
                         .type = AG_FLAG_STRING,
                         .value = &variants,
                         .metavar = "LIST",
                         .help = "comma-separated: infusion, infusion-bottom, infusion-random, "
                                 "noise, noise-random, probe-1, probe-k, probe-N"};
  table[n++] = (ag_flag){.name = "out",
                         .type = AG_FLAG_STRING,
                         .value = &out,
                         .metavar = "DIR",
                         .help = "results.jsonl (resumable), summary.{md,json,csv}, results.csv, "
                                 "plot.gp, plot.svg",
                         .required = true};
  ag_flag flags[SHARED_FLAG_COUNT + 4 + AG_COMMON_FLAG_COUNT];
  int count = ag_args_with_common(flags, table, n, &common, true);
  ag_command cmd = {
      .name = "infusion sweep",
      .summary = "Run Infusion and its baselines on many probe x target pairs, sharing the\n"
                 "factors, one scoring pass and the clean retrain; a line per (pair, variant) in\n"
                 "OUT/results.jsonl (finished lines are skipped when rerun) and a summary table.",
      .flags = flags,
      .flag_count = count,
      .epilog = "The last line on stdout summarises the first variant (or is a JSON object with\n"
                "--json: every variant's means, standard errors, share of positive delta_p and\n"
                "top-1 rates)."};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  if (first_pair >= pairs)
    return ag_args_usage_error(&cmd, "--first-pair %lld must be below --pairs %lld",
                               (long long)first_pair, (long long)pairs);
  ag_infusion_variant list[MAX_VARIANTS];
  int variant_count = 0;
  if (ag_infusion_variants_parse(variants, s.k, list, MAX_VARIANTS, &variant_count))
    return ag_args_usage_error(&cmd, "--variants: %s", ag_error_message());
  ag_args_apply_common(&common);
  ag_infusion_config cfg = config_of(&s, &common);

  opened o;
  ag_status st = open_all(&s, &o);
  if (st) return ag_cli_error("%s", ag_error_message());
  ag_infusion_plan plan = {.craft = o.craft, .retrain = o.retrain, .factors_path = s.factors};
  ag_infusion_sweep_config sc = {.pairs = pairs,
                                 .first_pair = first_pair,
                                 .out_dir = out,
                                 .variants = list,
                                 .variant_count = variant_count};
  ag_infusion_summary_row rows[MAX_VARIANTS];
  int row_count = 0;
  st = ag_infusion_sweep(&plan, &sc, &cfg, rows, MAX_VARIANTS, &row_count);
  close_all(&o);
  if (st) return ag_cli_error("%s", ag_error_message());
  for (int i = 0; i < row_count && !common.json; i++)
    printf("%-16s runs %-4lld delta_p %+.4f +- %.4f  delta_log_odds %+.3f +- %.3f  positive "
           "%.0f%%  top-1 %.0f%% -> %.0f%%  accuracy %.4f -> %.4f\n",
           rows[i].variant, (long long)rows[i].runs, rows[i].delta_p_mean, rows[i].delta_p_se,
           rows[i].delta_log_odds_mean, rows[i].delta_log_odds_se, 100 * rows[i].positive_share,
           100 * rows[i].top1_before, 100 * rows[i].top1_after, rows[i].clean_acc_before,
           rows[i].clean_acc_after);
  if (!common.json) return 0;
  json_t *arr = json_array();
  for (int i = 0; i < row_count && arr; i++)
    json_array_append_new(
        arr,
        json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "variant",
                  rows[i].variant, "runs", (json_int_t)rows[i].runs, "delta_p_mean",
                  rows[i].delta_p_mean, "delta_p_se", rows[i].delta_p_se, "delta_log_odds_mean",
                  rows[i].delta_log_odds_mean, "delta_log_odds_se", rows[i].delta_log_odds_se,
                  "positive_share", rows[i].positive_share, "top1_before", rows[i].top1_before,
                  "top1_after", rows[i].top1_after, "clean_acc_before", rows[i].clean_acc_before,
                  "clean_acc_after", rows[i].clean_acc_after));
  json_t *doc =
      json_pack("{s:s, s:I, s:o}", "out", out, "pairs", (json_int_t)pairs, "variants", arr);
  int rc = print_json(doc);
  json_decref(doc);
  return rc;
}

int ag_cli_infusion(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"run", "edit k training images for one probe x target pair, retrain, measure", cmd_run},
      {"sweep", "many pairs and baselines, a results table and a plot", cmd_sweep},
  };
  static const ag_cli_area_help area = {
      "infusion",
      "Infusion (Rosser et al. 2026): craft training data that induces a target behaviour,\n"
      "with EK-FAC influence functions, on image classifiers trained by `agora vision train`.",
      verbs, (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
