/* The flag parser behind every command (see args.h). */
#include "cli/args.h"

#include "agora/base.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COLUMN    26 /* where flag descriptions start */
#define HELP_WIDTH     92 /* and where they wrap */
#define NAME_MAX_BYTES 64

int ag_args_usage_error(const ag_command *cmd, const char *fmt, ...) {
  FILE *out = cmd->messages ? cmd->messages : stderr;
  va_list ap;
  va_start(ap, fmt);
  fprintf(out, "agora: error: %s: ", cmd->name);
  vfprintf(out, fmt, ap);
  fputc('\n', out);
  va_end(ap);
  fprintf(out, "Run 'agora %s --help' for its flags.\n", cmd->name);
  return AG_ARGS_USAGE;
}

int ag_cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "agora: error: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

int ag_cli_print_json(json_t *o, size_t flags) {
  char *text = o ? json_dumps(o, flags | JSON_COMPACT) : NULL;
  json_decref(o);
  if (!text) return ag_cli_error("out of memory");
  printf("%s\n", text);
  free(text);
  return 0;
}

ag_flag *ag_args_find(ag_command *cmd, const char *name) {
  for (int i = 0; i < cmd->flag_count; i++)
    if (!strcmp(cmd->flags[i].name, name)) return &cmd->flags[i];
  return NULL;
}

/* ---- help ------------------------------------------------------------------------ */

static const char *metavar_of(const ag_flag *f) {
  if (f->metavar) return f->metavar;
  switch (f->type) {
  case AG_FLAG_BOOL: return "";
  case AG_FLAG_INT:
  case AG_FLAG_INT64:
  case AG_FLAG_UINT64: return "N";
  case AG_FLAG_FLOAT: return "X";
  case AG_FLAG_STRING: return "VALUE";
  case AG_FLAG_CHOICE: return f->choices;
  }
  return "VALUE";
}

/* The current value as help shows it; false when there is nothing to show. */
static bool default_of(const ag_flag *f, char *buf, size_t size) {
  if (f->default_text) {
    snprintf(buf, size, "%s", f->default_text);
    return f->default_text[0] != '\0';
  }
  switch (f->type) {
  case AG_FLAG_BOOL: return false;
  case AG_FLAG_INT: snprintf(buf, size, "%d", *(int *)f->value); return true;
  case AG_FLAG_INT64: snprintf(buf, size, "%lld", (long long)*(int64_t *)f->value); return true;
  case AG_FLAG_UINT64:
    snprintf(buf, size, "%llu", (unsigned long long)*(uint64_t *)f->value);
    return true;
  case AG_FLAG_FLOAT: snprintf(buf, size, "%g", *(double *)f->value); return true;
  case AG_FLAG_STRING:
  case AG_FLAG_CHOICE: {
    const char *s = *(const char **)f->value;
    if (!s) return false;
    snprintf(buf, size, "%s", s);
    return true;
  }
  }
  return false;
}

/* Prints text from HELP_COLUMN on, wrapped at spaces before HELP_WIDTH. */
static void print_wrapped(FILE *out, const char *text) {
  const int width = HELP_WIDTH - HELP_COLUMN;
  while ((int)strlen(text) > width) {
    int cut = width;
    while (cut > 0 && text[cut] != ' ') cut--;
    if (cut == 0) break; /* one long word: let it run over */
    fprintf(out, "%.*s\n%*s", cut, text, HELP_COLUMN, "");
    text += cut + 1;
  }
  fprintf(out, "%s\n", text);
}

void ag_args_help(const ag_command *cmd, FILE *out) {
  fprintf(out, "usage: agora %s [flags]%s%s\n", cmd->name, cmd->positional_metavar ? " " : "",
          cmd->positional_metavar ? cmd->positional_metavar : "");
  if (cmd->summary) fprintf(out, "\n%s\n", cmd->summary);
  fprintf(out, "\nflags:\n");
  for (int i = 0; i <= cmd->flag_count; i++) {
    ag_flag help_flag = {.name = "help", .type = AG_FLAG_BOOL, .help = "show this help and exit"};
    const ag_flag *f = i < cmd->flag_count ? &cmd->flags[i] : &help_flag;
    char left[128];
    const char *mv = metavar_of(f);
    int n = snprintf(left, sizeof left, "  --%s%s%s", f->name, mv[0] ? " " : "", mv);
    fprintf(out, "%s", left);
    if (n >= HELP_COLUMN)
      fprintf(out, "\n%*s", HELP_COLUMN, "");
    else
      fprintf(out, "%*s", HELP_COLUMN - n, "");
    char text[512], def[128];
    size_t len = (size_t)snprintf(text, sizeof text, "%s", f->help ? f->help : "");
    if (f->required && len < sizeof text)
      snprintf(text + len, sizeof text - len, " (required)");
    else if (default_of(f, def, sizeof def) && len < sizeof text)
      snprintf(text + len, sizeof text - len, " (default: %s)", def);
    print_wrapped(out, text);
  }
  if (cmd->epilog) fprintf(out, "\n%s", cmd->epilog);
}

/* ---- parsing --------------------------------------------------------------------- */

/* Levenshtein distance, for "did you mean" on a mistyped flag. */
static int edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n >= NAME_MAX_BYTES || m >= NAME_MAX_BYTES) return 1 << 20;
  int row[NAME_MAX_BYTES + 1];
  for (size_t j = 0; j <= m; j++) row[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    int diagonal = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int above = row[j];
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      int best = diagonal + cost;
      if (above + 1 < best) best = above + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diagonal = above;
    }
  }
  return row[m];
}

static int unknown_flag(const ag_command *cmd, const char *name) {
  const char *closest = NULL;
  int best = 3; /* suggest only near misses */
  for (int i = 0; i < cmd->flag_count; i++) {
    int d = edit_distance(name, cmd->flags[i].name);
    if (d < best) {
      best = d;
      closest = cmd->flags[i].name;
    }
  }
  if (closest)
    return ag_args_usage_error(cmd, "unknown flag '--%s' (did you mean '--%s'?)", name, closest);
  return ag_args_usage_error(cmd, "unknown flag '--%s'", name);
}

static bool in_choices(const char *choices, const char *value) {
  size_t len = strlen(value);
  for (const char *c = choices; *c;) {
    const char *end = strchr(c, '|');
    size_t n = end ? (size_t)(end - c) : strlen(c);
    if (n == len && !strncmp(c, value, n)) return true;
    if (!end) break;
    c = end + 1;
  }
  return false;
}

static int out_of_range(const ag_command *cmd, const ag_flag *f, const char *text) {
  return ag_args_usage_error(cmd, "--%s %s is out of range [%g, %g]", f->name, text, f->min,
                             f->max);
}

/* Stores text into the flag's variable, checking type and range. */
static int set_value(const ag_command *cmd, ag_flag *f, const char *text) {
  bool ranged = f->min < f->max;
  char *end = NULL;
  errno = 0;
  switch (f->type) {
  case AG_FLAG_BOOL:
    if (!strcmp(text, "true") || !strcmp(text, "1"))
      *(bool *)f->value = true;
    else if (!strcmp(text, "false") || !strcmp(text, "0"))
      *(bool *)f->value = false;
    else
      return ag_args_usage_error(cmd, "--%s takes no value or true|false, not '%s'", f->name, text);
    return AG_ARGS_OK;
  case AG_FLAG_INT:
  case AG_FLAG_INT64: {
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || errno)
      return ag_args_usage_error(cmd, "--%s expects an integer, not '%s'", f->name, text);
    if ((ranged && (v < f->min || v > f->max)) ||
        (f->type == AG_FLAG_INT && (v < -2147483647LL || v > 2147483647LL)))
      return out_of_range(cmd, f, text);
    if (f->type == AG_FLAG_INT)
      *(int *)f->value = (int)v;
    else
      *(int64_t *)f->value = v;
    return AG_ARGS_OK;
  }
  case AG_FLAG_UINT64: {
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *end || errno || text[0] == '-')
      return ag_args_usage_error(cmd, "--%s expects a non-negative integer, not '%s'", f->name,
                                 text);
    if (ranged && ((double)v < f->min || (double)v > f->max)) return out_of_range(cmd, f, text);
    *(uint64_t *)f->value = v;
    return AG_ARGS_OK;
  }
  case AG_FLAG_FLOAT: {
    double v = strtod(text, &end);
    if (!*text || *end || errno || !isfinite(v))
      return ag_args_usage_error(cmd, "--%s expects a number, not '%s'", f->name, text);
    if (ranged && (v < f->min || v > f->max)) return out_of_range(cmd, f, text);
    *(double *)f->value = v;
    return AG_ARGS_OK;
  }
  case AG_FLAG_CHOICE:
    if (!in_choices(f->choices, text))
      return ag_args_usage_error(cmd, "--%s must be one of %s, not '%s'", f->name, f->choices,
                                 text);
    *(const char **)f->value = text;
    return AG_ARGS_OK;
  case AG_FLAG_STRING:
    if (!*text) return ag_args_usage_error(cmd, "--%s needs a non-empty value", f->name);
    *(const char **)f->value = text;
    return AG_ARGS_OK;
  }
  return AG_ARGS_OK;
}

ag_args_result ag_args_parse(ag_command *cmd, int argc, char **argv, const char **positionals,
                             int max_positionals, int *n_positionals) {
  if (n_positionals) *n_positionals = 0;
  for (int i = 0; i < cmd->flag_count; i++) cmd->flags[i].seen = false;
  /* --help anywhere wins, so the defaults it shows are untouched. */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--")) break;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      ag_args_help(cmd, stdout);
      return AG_ARGS_HELP;
    }
  }
  bool flags_done = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (flags_done || arg[0] != '-' || !strcmp(arg, "-")) {
      if (!cmd->positional_metavar || !positionals || *n_positionals >= max_positionals)
        return ag_args_usage_error(cmd, "unexpected argument '%s'", arg);
      positionals[(*n_positionals)++] = arg;
      continue;
    }
    if (!strcmp(arg, "--")) {
      flags_done = true;
      continue;
    }
    if (arg[1] != '-') return ag_args_usage_error(cmd, "unknown flag '%s' (flags are --name)", arg);
    char name[NAME_MAX_BYTES];
    const char *eq = strchr(arg + 2, '=');
    size_t len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
    if (len == 0 || len >= sizeof name) return ag_args_usage_error(cmd, "malformed flag '%s'", arg);
    memcpy(name, arg + 2, len);
    name[len] = '\0';
    ag_flag *f = ag_args_find(cmd, name);
    if (!f) return unknown_flag(cmd, name);
    f->seen = true;
    if (f->type == AG_FLAG_BOOL && !eq) {
      *(bool *)f->value = true;
      continue;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
      /* A following "--flag" is not a value; a negative number is. */
      bool next_is_flag = i + 1 < argc && argv[i + 1][0] == '-' && argv[i + 1][1] == '-';
      if (i + 1 >= argc || next_is_flag)
        return ag_args_usage_error(cmd, "flag --%s needs a value (%s)", name, metavar_of(f));
      value = argv[++i];
    }
    int r = set_value(cmd, f, value);
    if (r) return (ag_args_result)r;
  }
  for (int i = 0; i < cmd->flag_count; i++)
    if (cmd->flags[i].required && !cmd->flags[i].seen)
      return ag_args_usage_error(cmd, "missing required flag --%s %s", cmd->flags[i].name,
                                 metavar_of(&cmd->flags[i]));
  return AG_ARGS_OK;
}

/* ---- common flags ------------------------------------------------------------------ */

void ag_args_common_flags(ag_flag *flags, ag_common_flags *c) {
  flags[0] = (ag_flag){.name = "seed",
                       .type = AG_FLAG_UINT64,
                       .value = &c->seed,
                       .help = "random seed (same seed, machine and --threads: same result)"};
  flags[1] = (ag_flag){.name = "threads",
                       .type = AG_FLAG_INT,
                       .value = &c->threads,
                       .help = "threads for OpenMP and BLAS",
                       .min = 1,
                       .max = 1024,
                       .default_text = "$AG_THREADS or all cores"};
  flags[2] = (ag_flag){.name = "quiet",
                       .type = AG_FLAG_BOOL,
                       .value = &c->quiet,
                       .help = "no progress display or per-epoch logs; warnings and errors only"};
  flags[3] = (ag_flag){.name = "json",
                       .type = AG_FLAG_BOOL,
                       .value = &c->json,
                       .help = "make the last line on stdout one JSON object"};
}

void ag_args_apply_common(const ag_common_flags *c) {
  if (c->threads > 0)
    ag_threads_set(c->threads);
  else
    ag_threads_init();
  ag_progress_set_quiet(c->quiet);
  if (c->quiet) ag_log_set_level(AG_LOG_WARN);
}

int ag_args_with_common(ag_flag *flags, const ag_flag *table, int count, ag_common_flags *common,
                        bool with_seed) {
  ag_flag shared[AG_COMMON_FLAG_COUNT];
  ag_args_common_flags(shared, common);
  int n = 0;
  for (int i = 0; i < count; i++) flags[n++] = table[i];
  for (int i = 0; i < AG_COMMON_FLAG_COUNT; i++)
    if (with_seed || strcmp(shared[i].name, "seed")) flags[n++] = shared[i];
  return n;
}

/* ---- areas -------------------------------------------------------------------------- */

static void area_help(const ag_cli_area_help *a, FILE *f) {
  fprintf(f, "usage: agora %s <verb> [flags]\n\n", a->name);
  if (a->about) fprintf(f, "%s\n\n", a->about);
  fprintf(f, "verbs:\n");
  for (int i = 0; i < a->verb_count; i++)
    fprintf(f, "  %-10s %s\n", a->verbs[i].name, a->verbs[i].summary);
  fprintf(f, "\nRun `agora %s <verb> --help` for a verb's flags.\n", a->name);
}

int ag_cli_dispatch(const ag_cli_area_help *a, int argc, char **argv) {
  if (argc < 2) {
    area_help(a, stderr);
    return 2;
  }
  const char *verb = argv[1];
  if (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help")) {
    area_help(a, stdout);
    return 0;
  }
  for (int i = 0; i < a->verb_count; i++)
    if (!strcmp(verb, a->verbs[i].name)) return a->verbs[i].run(argc - 1, argv + 1);
  fprintf(stderr, "agora: error: %s: unknown verb '%s' (verbs:", a->name, verb);
  for (int i = 0; i < a->verb_count; i++) fprintf(stderr, "%s %s", i ? "," : "", a->verbs[i].name);
  fprintf(stderr, ")\n");
  area_help(a, stderr);
  return 2;
}
