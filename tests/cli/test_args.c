/* The command-line flag parser (src/cli/args.c, compiled into this test:
 * the cli layer is not part of libagora). */
#include "cli/args.c"
#include "test.h"

typedef struct values {
  int epochs;
  int64_t limit;
  uint64_t seed;
  double lr;
  const char *out, *model;
  bool resume;
} values;

static ag_flag flags_for(values *v, ag_flag *f) {
  f[0] =
      (ag_flag){.name = "epochs", .type = AG_FLAG_INT, .value = &v->epochs, .min = 1, .max = 100};
  f[1] = (ag_flag){.name = "limit", .type = AG_FLAG_INT64, .value = &v->limit};
  f[2] = (ag_flag){.name = "seed", .type = AG_FLAG_UINT64, .value = &v->seed};
  f[3] = (ag_flag){.name = "lr", .type = AG_FLAG_FLOAT, .value = &v->lr, .min = 1e-9, .max = 10};
  f[4] = (ag_flag){.name = "out", .type = AG_FLAG_STRING, .value = &v->out, .required = true};
  f[5] =
      (ag_flag){.name = "model", .type = AG_FLAG_CHOICE, .value = &v->model, .choices = "mlp|cnn"};
  f[6] = (ag_flag){.name = "resume", .type = AG_FLAG_BOOL, .value = &v->resume};
  return f[0];
}

/* Parses a NULL-terminated argument list (after the verb) into v. */
static ag_args_result parse(values *v, const char **args) {
  static char *argv[32];
  int argc = 0;
  argv[argc++] = "verb";
  for (int i = 0; args[i]; i++) argv[argc++] = (char *)args[i];
  ag_flag f[7];
  flags_for(v, f);
  /* Usage errors would go to stderr; keep the test log readable. */
  FILE *sink = fopen("/dev/null", "w");
  ag_command cmd = {.name = "test verb", .flags = f, .flag_count = 7, .messages = sink};
  ag_args_result r = ag_args_parse(&cmd, argc, argv, NULL, 0, NULL);
  fclose(sink);
  return r;
}

TEST(values_by_space_and_by_equals) {
  values v = {.epochs = 3, .model = "mlp"};
  const char *args[] = {"--epochs",  "7",     "--limit=-5", "--seed",      "18446744073709551615",
                        "--lr=0.25", "--out", "dir",        "--model=cnn", "--resume",
                        NULL};
  CHECK(parse(&v, args) == AG_ARGS_OK);
  CHECK(v.epochs == 7 && v.limit == -5 && v.seed == UINT64_MAX && v.lr == 0.25);
  CHECK(v.out && !strcmp(v.out, "dir") && !strcmp(v.model, "cnn") && v.resume);
}

TEST(defaults_stay_when_flags_are_absent) {
  values v = {.epochs = 3, .lr = 0.5, .model = "mlp"};
  const char *args[] = {"--out", "x", NULL};
  CHECK(parse(&v, args) == AG_ARGS_OK);
  CHECK(v.epochs == 3 && v.lr == 0.5 && !strcmp(v.model, "mlp") && !v.resume);
}

TEST(booleans_take_optional_true_or_false) {
  values v = {0};
  const char *off[] = {"--out", "x", "--resume=false", NULL};
  CHECK(parse(&v, off) == AG_ARGS_OK && !v.resume);
  const char *bad[] = {"--out", "x", "--resume=maybe", NULL};
  CHECK(parse(&v, bad) == AG_ARGS_USAGE);
}

TEST(usage_errors) {
  const char *cases[][8] = {
      {"--out", "x", "--nope", NULL},         /* unknown flag */
      {"--out", "x", "--epochs", NULL},       /* missing value at the end */
      {"--epochs", "--out", "x", NULL},       /* a flag is not a value */
      {"--out", "x", "--epochs", "3x", NULL}, /* not an integer */
      {"--out", "x", "--epochs", "0", NULL},  /* out of range */
      {"--out", "x", "--lr", "nan", NULL},    /* not finite */
      {"--out", "x", "--seed", "-1", NULL},   /* negative unsigned */
      {"--out", "x", "--model", "vgg", NULL}, /* not a choice */
      {"--epochs", "3", NULL},                /* required --out missing */
      {"--out", "x", "stray", NULL},          /* no positionals accepted */
      {"--out", "x", "-e", "3", NULL},        /* short flags do not exist */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    values v = {0};
    CHECK_MSG(parse(&v, cases[i]) == AG_ARGS_USAGE, "case %zu", i);
  }
}

TEST(help_is_generated_from_the_table) {
  values v = {.epochs = 3, .model = "mlp"};
  ag_flag f[7];
  flags_for(&v, f);
  f[0].help = "passes over the data";
  ag_command cmd = {.name = "test verb", .summary = "Does a test.", .flags = f, .flag_count = 7};
  char *text = NULL;
  size_t size = 0;
  FILE *mem = open_memstream(&text, &size);
  ag_args_help(&cmd, mem);
  fclose(mem);
  CHECK(strstr(text, "usage: agora test verb [flags]"));
  CHECK(strstr(text, "--epochs N") && strstr(text, "passes over the data (default: 3)"));
  CHECK(strstr(text, "--model mlp|cnn") && strstr(text, "(default: mlp)"));
  CHECK(strstr(text, "--out VALUE") && strstr(text, "(required)"));
  CHECK(strstr(text, "--help"));
  free(text);
}

TEST(unknown_flags_get_a_suggestion) {
  values v = {0};
  ag_flag f[7];
  flags_for(&v, f);
  char *text = NULL;
  size_t size = 0;
  FILE *mem = open_memstream(&text, &size);
  ag_command cmd = {.name = "test verb", .flags = f, .flag_count = 7, .messages = mem};
  char *argv[] = {"verb", "--epoch", "3"};
  CHECK(ag_args_parse(&cmd, 3, argv, NULL, 0, NULL) == AG_ARGS_USAGE);
  fclose(mem);
  CHECK_MSG(strstr(text, "agora: error: test verb: unknown flag '--epoch' (did you mean "
                         "'--epochs'?)"),
            "%s", text);
  free(text);
}

int main(void) {
  RUN(values_by_space_and_by_equals);
  RUN(defaults_stay_when_flags_are_absent);
  RUN(booleans_take_optional_true_or_false);
  RUN(usage_errors);
  RUN(help_is_generated_from_the_table);
  RUN(unknown_flags_get_a_suggestion);
  TEST_MAIN_END();
}
