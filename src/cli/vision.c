/* `agora vision train|eval`: image classifiers on Fashion-MNIST (or
 * CIFAR-10). Flag parsing and output only; the work is in libagora
 * (agora/vision.h). */
#include "agora/vision.h"

#include "cli/args.h"
#include "cli/cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPILOG_BYTES 2048

/* The last line on stdout: `test_acc 0.8912`, or one JSON object. */
static int print_result(bool as_json, json_t *fields, double test_acc) {
  if (as_json) {
    char *text = json_dumps(fields, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    if (!text) return ag_cli_error("out of memory");
    printf("%s\n", text);
    free(text);
  } else {
    printf("test_acc %.4f\n", test_acc);
  }
  fflush(stdout);
  return 0;
}

static const char *optimizer_text(ag_optim_kind k) { return k == AG_OPTIM_ADAMW ? "adamw" : "sgd"; }

/* The per-model defaults for train --help, from the library's table. */
static void defaults_epilog(char *buf, size_t size) {
  size_t len = 0;
#define APPEND(...)                                                                                \
  if (len < size) len += (size_t)snprintf(buf + len, size - len, __VA_ARGS__)
  APPEND("Flags marked \"per model\" default to (the other --optimizer brings its own lr,\n"
         "momentum and weight decay, in parentheses):\n"
         "  model   optimizer  epochs  batch-size  lr     momentum  weight-decay\n");
  for (int k = AG_VISION_MLP; k <= AG_VISION_RESNET; k++) {
    ag_classify_config c = ag_classify_defaults((ag_vision_model_kind)k);
    ag_classify_config o = c;
    ag_classify_set_optimizer(&o, c.optimizer == AG_OPTIM_SGD ? AG_OPTIM_ADAMW : AG_OPTIM_SGD);
    APPEND("  %-7s %-10s %-7d %-11lld %-6g %-9g %g\n", ag_vision_model_name(c.model),
           optimizer_text(c.optimizer), c.epochs, (long long)c.batch_size, (double)c.lr,
           (double)c.momentum, (double)c.weight_decay);
    APPEND("  %-7s (%-8s %-7s %-11s %-6g %-9g %g)\n", "", optimizer_text(o.optimizer), "", "",
           (double)o.lr, (double)o.momentum, (double)o.weight_decay);
  }
  APPEND("\nWrites OUT/metrics.jsonl (a line per epoch) and OUT/epoch-NNN/ (model.safetensors,\n"
         "optimizer.safetensors, state.json) for every epoch. Epoch e sees the data in an order\n"
         "that depends only on (seed, e), so --resume and --from-epoch repeat an uninterrupted\n"
         "run exactly (same machine, same --threads). The last line on stdout is\n"
         "`test_acc 0.XXXX` (or a JSON object with --json).\n");
#undef APPEND
}

/* ---- train ---------------------------------------------------------------------- */

static int cmd_train(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *data = "fashion-mnist", *data_dir = NULL, *model_name = NULL, *out = NULL;
  const char *optimizer = NULL, *schedule = "cosine", *from_dir = NULL, *augment = "none";
  int epochs = 0, from_epoch = 0;
  int64_t batch_size = 0, limit = 0;
  int64_t eval_batch_size = ag_classify_defaults(AG_VISION_MLP).eval_batch_size;
  double lr = 0, momentum = 0, weight_decay = 0;
  bool resume = false;
  ag_flag table[] = {
      {.name = "data",
       .type = AG_FLAG_CHOICE,
       .value = &data,
       .choices = "fashion-mnist|cifar10",
       .metavar = "NAME",
       .help = "dataset: fashion-mnist or cifar10"},
      {.name = "data-dir",
       .type = AG_FLAG_STRING,
       .value = &data_dir,
       .metavar = "DIR",
       .help = "folder holding the dataset files",
       .default_text = "fashion-mnist: " AG_FASHION_MNIST_DIR},
      {.name = "model",
       .type = AG_FLAG_CHOICE,
       .value = &model_name,
       .choices = "mlp|cnn|resnet",
       .help = "model to train",
       .required = true},
      {.name = "epochs",
       .type = AG_FLAG_INT,
       .value = &epochs,
       .help = "passes over the data",
       .min = 1,
       .max = 100000,
       .default_text = "per model"},
      {.name = "out",
       .type = AG_FLAG_STRING,
       .value = &out,
       .metavar = "DIR",
       .help = "run folder for metrics.jsonl and epoch-NNN/ checkpoints",
       .required = true},
      {.name = "batch-size",
       .type = AG_FLAG_INT64,
       .value = &batch_size,
       .metavar = "B",
       .help = "examples per update",
       .min = 1,
       .max = 1 << 20,
       .default_text = "per model"},
      {.name = "lr",
       .type = AG_FLAG_FLOAT,
       .value = &lr,
       .help = "peak learning rate",
       .min = 1e-12,
       .max = 100,
       .default_text = "per model"},
      {.name = "optimizer",
       .type = AG_FLAG_CHOICE,
       .value = &optimizer,
       .choices = "sgd|adamw",
       .help = "update rule",
       .default_text = "per model"},
      {.name = "momentum",
       .type = AG_FLAG_FLOAT,
       .value = &momentum,
       .help = "SGD momentum",
       .min = 0,
       .max = 0.999999,
       .default_text = "per model"},
      {.name = "weight-decay",
       .type = AG_FLAG_FLOAT,
       .value = &weight_decay,
       .metavar = "WD",
       .help = "weight decay",
       .min = 0,
       .max = 10,
       .default_text = "per model"},
      {.name = "schedule",
       .type = AG_FLAG_CHOICE,
       .value = &schedule,
       .choices = "cosine|constant",
       .help = "learning-rate schedule over all epochs"},
      {.name = "augment",
       .type = AG_FLAG_CHOICE,
       .value = &augment,
       .choices = "none|flip",
       .help = "flip: mirror each training image left to right with probability 1/2"},
      {.name = "limit",
       .type = AG_FLAG_INT64,
       .value = &limit,
       .help = "train on the first N examples only (quick tests)",
       .min = 1,
       .max = 1e15,
       .default_text = "all"},
      {
          .name = "eval-batch-size",
          .type = AG_FLAG_INT64,
          .value = &eval_batch_size,
          .metavar = "B",
          .help = "examples per evaluation batch",
          .min = 1,
          .max = 1 << 20,
      },
      {.name = "resume",
       .type = AG_FLAG_BOOL,
       .value = &resume,
       .help = "continue from the last complete checkpoint in --out"},
      {.name = "from-epoch",
       .type = AG_FLAG_INT,
       .value = &from_epoch,
       .metavar = "K",
       .help = "restart from epoch K's checkpoint, rewriting the epochs after it",
       .min = 1,
       .max = 100000,
       .default_text = ""},
      {.name = "from-dir",
       .type = AG_FLAG_STRING,
       .value = &from_dir,
       .metavar = "DIR",
       .help = "run folder holding the --from-epoch checkpoint",
       .default_text = "--out"},
  };
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, true);
  char epilog[EPILOG_BYTES];
  defaults_epilog(epilog, sizeof epilog);
  ag_command cmd = {.name = "vision train",
                    .summary = "Train an image classifier, evaluating on the test set after "
                               "every epoch.",
                    .flags = flags,
                    .flag_count = n,
                    .epilog = epilog};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  if (resume && from_epoch > 0)
    return ag_args_usage_error(&cmd, "--resume and --from-epoch exclude each other");
  if (from_dir && from_epoch == 0)
    return ag_args_usage_error(&cmd, "--from-dir needs --from-epoch K");
  ag_args_apply_common(&common);

  ag_vision_model_kind kind;
  ag_vision_model_parse(model_name, &kind); /* the choice list admits only valid names */
  ag_classify_config cfg = ag_classify_defaults(kind);
  if (optimizer)
    ag_classify_set_optimizer(&cfg, !strcmp(optimizer, "adamw") ? AG_OPTIM_ADAMW : AG_OPTIM_SGD);
  snprintf(cfg.data, sizeof cfg.data, "%s", data);
  cfg.seed = common.seed;
  cfg.schedule = !strcmp(schedule, "constant") ? AG_LR_CONSTANT : AG_LR_COSINE;
  cfg.flip = !strcmp(augment, "flip");
  if (ag_args_find(&cmd, "epochs")->seen) cfg.epochs = epochs;
  if (ag_args_find(&cmd, "batch-size")->seen) cfg.batch_size = batch_size;
  if (ag_args_find(&cmd, "eval-batch-size")->seen) cfg.eval_batch_size = eval_batch_size;
  if (ag_args_find(&cmd, "lr")->seen) cfg.lr = (float)lr;
  if (ag_args_find(&cmd, "momentum")->seen) {
    if (cfg.optimizer != AG_OPTIM_SGD)
      return ag_args_usage_error(&cmd, "--momentum applies to --optimizer sgd only");
    cfg.momentum = (float)momentum;
  }
  if (ag_args_find(&cmd, "weight-decay")->seen) cfg.weight_decay = (float)weight_decay;
  if (ag_args_find(&cmd, "limit")->seen) cfg.limit = limit;

  ag_image_dataset *train = NULL, *test = NULL;
  ag_status st = ag_image_dataset_load(data, data_dir, AG_SPLIT_TRAIN, &train);
  if (!st) st = ag_image_dataset_load(data, data_dir, AG_SPLIT_TEST, &test);
  ag_classify_metrics last;
  double start = ag_time_seconds();
  if (!st) {
    ag_classify_run run = {.out_dir = out,
                           .resume = resume,
                           .from_epoch = from_epoch,
                           .from_dir = from_dir,
                           .log_epochs = !common.quiet};
    st = ag_classify_train(&cfg, &run, train, test, &last);
  }
  double seconds = ag_time_seconds() - start;
  ag_image_dataset_destroy(train);
  ag_image_dataset_destroy(test);
  if (st) return ag_cli_error("%s", ag_error_message());
  json_t *fields = json_pack(
      "{s:f, s:f, s:f, s:i, s:i, s:s, s:s, s:f, s:i}", "test_acc", last.test_acc, "test_loss",
      last.test_loss, "train_loss", last.train_loss, "epoch", last.epoch, "epochs", cfg.epochs,
      "model", model_name, "out", out, "seconds", seconds, "threads", ag_threads_get());
  int rc = print_result(common.json, fields, last.test_acc);
  json_decref(fields);
  return rc;
}

/* ---- eval ----------------------------------------------------------------------- */

static int cmd_eval(int argc, char **argv) {
  ag_common_flags common = {0};
  const char *checkpoint = NULL, *data = NULL, *data_dir = NULL;
  int64_t batch_size = 0;
  ag_flag table[] = {
      {.name = "checkpoint",
       .type = AG_FLAG_STRING,
       .value = &checkpoint,
       .metavar = "DIR",
       .help = "a checkpoint folder, RUN/epoch-NNN",
       .required = true},
      {.name = "data",
       .type = AG_FLAG_CHOICE,
       .value = &data,
       .choices = "fashion-mnist|cifar10",
       .metavar = "NAME",
       .help = "dataset to score on",
       .default_text = "the checkpoint's"},
      {.name = "data-dir",
       .type = AG_FLAG_STRING,
       .value = &data_dir,
       .metavar = "DIR",
       .help = "folder holding the dataset files",
       .default_text = "fashion-mnist: " AG_FASHION_MNIST_DIR},
      {.name = "batch-size",
       .type = AG_FLAG_INT64,
       .value = &batch_size,
       .metavar = "B",
       .help = "examples per batch",
       .min = 1,
       .max = 1 << 20,
       .default_text = "the checkpoint's eval batch size"},
  };
  /* No --seed: evaluation is deterministic. */
  ag_flag flags[sizeof table / sizeof *table + AG_COMMON_FLAG_COUNT];
  int n = ag_args_with_common(flags, table, (int)(sizeof table / sizeof *table), &common, false);
  ag_command cmd = {.name = "vision eval",
                    .summary = "Score a checkpoint written by `agora vision train` on the test "
                               "set.\nThe last line on stdout is `test_acc 0.XXXX` (or a JSON "
                               "object with --json).",
                    .flags = flags,
                    .flag_count = n};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  if (r == AG_ARGS_HELP) return 0;
  if (r) return 2;
  ag_args_apply_common(&common);

  ag_classify_checkpoint info;
  ag_status st = ag_classify_checkpoint_read(checkpoint, &info);
  if (st) return ag_cli_error("%s", ag_error_message());
  const char *dataset = data ? data : info.config.data;
  ag_vision_model *model = NULL;
  ag_image_dataset *test = NULL;
  double accuracy = 0, loss = 0;
  st = ag_classify_checkpoint_load_model(checkpoint, &info, &model);
  if (!st) st = ag_image_dataset_load(dataset, data_dir, AG_SPLIT_TEST, &test);
  if (!st && (test->channels != info.channels || test->height != info.height ||
              test->width != info.width || test->num_classes != info.num_classes))
    st = ag_error_set(AG_ERR_SHAPE,
                      "%s holds (%d, %d, %d) images in %d classes; the checkpoint expects (%d, "
                      "%d, %d) in %d",
                      dataset, test->channels, test->height, test->width, test->num_classes,
                      info.channels, info.height, info.width, info.num_classes);
  if (!st)
    st =
        ag_classify_evaluate(model, test, batch_size > 0 ? batch_size : info.config.eval_batch_size,
                             NULL, &accuracy, &loss);
  int64_t examples = test ? test->count : 0;
  ag_vision_model_destroy(model);
  ag_image_dataset_destroy(test);
  if (st) return ag_cli_error("%s", ag_error_message());
  json_t *fields =
      json_pack("{s:f, s:f, s:I, s:s, s:i, s:s, s:s}", "test_acc", accuracy, "test_loss", loss,
                "examples", (json_int_t)examples, "checkpoint", checkpoint, "epoch", info.epoch,
                "model", ag_vision_model_name(info.config.model), "data", dataset);
  int rc = print_result(common.json, fields, accuracy);
  json_decref(fields);
  return rc;
}

int ag_cli_vision(int argc, char **argv) {
  static const ag_cli_verb verbs[] = {
      {"train", "train a model, keeping a checkpoint per epoch", cmd_train},
      {"eval", "score a checkpoint on the test set", cmd_eval},
  };
  static const ag_cli_area_help area = {
      "vision", "Train and evaluate image classifiers (MLP, CNN, ResNet) on Fashion-MNIST.", verbs,
      (int)(sizeof verbs / sizeof *verbs)};
  return ag_cli_dispatch(&area, argc, argv);
}
