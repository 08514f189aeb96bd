/* A small flag parser for every area's commands.
 *
 * A command declares a table of flags; each flag points at the variable it
 * sets, whose value before parsing is the default shown by --help. Accepted:
 *   --name VALUE, --name=VALUE      valued flags (ints and floats range-checked)
 *   --name, --name=true|false       booleans
 *   --help, -h                      help generated from the table, exit 0
 *   --                              everything after is positional
 * Unknown flags, missing or malformed values and missing required flags are
 * usage errors: one line `agora: error: ...` naming the flag, exit status 2. */
#ifndef AGORA_CLI_ARGS_H
#define AGORA_CLI_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum ag_flag_type {
  AG_FLAG_BOOL = 0, /* bool * */
  AG_FLAG_INT,      /* int * */
  AG_FLAG_INT64,    /* int64_t * */
  AG_FLAG_UINT64,   /* uint64_t * (seeds) */
  AG_FLAG_FLOAT,    /* double * */
  AG_FLAG_STRING,   /* const char ** (points into argv) */
  AG_FLAG_CHOICE    /* const char **, one of `choices` */
} ag_flag_type;

typedef struct ag_flag {
  const char *name; /* without dashes: "epochs" */
  ag_flag_type type;
  void *value;
  const char *metavar; /* "N", "DIR"; NULL: chosen from the type */
  const char *help;
  /* Numeric range, inclusive, checked when min < max. */
  double min, max;
  const char *choices; /* AG_FLAG_CHOICE: "sgd|adamw" */
  /* Shown as "(default: ...)" instead of the variable's value; "" shows
   * none. NULL: the value itself (nothing for NULL strings and false). */
  const char *default_text;
  bool required;
  bool seen; /* set by the parser when the flag was given */
} ag_flag;

typedef struct ag_command {
  const char *name;    /* "vision train": for usage lines and messages */
  const char *summary; /* a paragraph under the usage line */
  ag_flag *flags;
  int flag_count;
  const char *positional_metavar; /* "FILE..."; NULL: none accepted */
  const char *epilog;             /* text after the flag list, or NULL */
  FILE *messages;                 /* where usage errors go; NULL: stderr */
} ag_command;

typedef enum ag_args_result {
  AG_ARGS_OK = 0,   /* parsed: run the command */
  AG_ARGS_HELP = 1, /* help printed on stdout: exit 0 */
  AG_ARGS_USAGE = 2 /* error printed on stderr: exit 2 */
} ag_args_result;

/* Parses argv[1..argc) (argv[0] is the verb). Positional arguments go to
 * positionals (at most max_positionals; *n_positionals says how many) when
 * the command accepts them. */
ag_args_result ag_args_parse(ag_command *cmd, int argc, char **argv, const char **positionals,
                             int max_positionals, int *n_positionals);
void ag_args_help(const ag_command *cmd, FILE *f);
/* The flag called name (NULL if none); handy for `seen`. */
ag_flag *ag_args_find(ag_command *cmd, const char *name);

/* Prints `agora: error: <message>` and a pointer to --help on stderr;
 * returns 2, the usage-error exit status. */
int ag_args_usage_error(const ag_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints `agora: error: <message>` on stderr; returns 1. */
int ag_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints o (consumed; NULL: out of memory) on stdout as one line of JSON,
 * json_dumps with flags | JSON_COMPACT: the --json line. 0, or 1 with the
 * error on stderr. */
int ag_cli_print_json(json_t *o, size_t flags);

/* ---- flags every command shares ------------------------------------------- */

typedef struct ag_common_flags {
  int threads;   /* 0: AG_THREADS or all cores */
  bool quiet;    /* no progress display, warnings and errors only */
  bool json;     /* the last line on stdout is one JSON object */
  uint64_t seed; /* for stochastic commands */
} ag_common_flags;

#define AG_COMMON_FLAG_COUNT 4
/* Writes the table entries for --seed, --threads, --quiet and --json into
 * flags[0..AG_COMMON_FLAG_COUNT), bound to c (whose values are defaults). */
void ag_args_common_flags(ag_flag *flags, ag_common_flags *c);
/* Applies --threads (ag_threads_set) and --quiet (progress and info logs). */
void ag_args_apply_common(const ag_common_flags *c);
/* flags = a command's own table, then the common flags (without --seed
 * unless with_seed); returns how many. flags has room for count +
 * AG_COMMON_FLAG_COUNT entries. */
int ag_args_with_common(ag_flag *flags, const ag_flag *table, int count, ag_common_flags *common,
                        bool with_seed);

/* ---- areas and their verbs -------------------------------------------------- */

typedef struct ag_cli_verb {
  const char *name;                  /* "train" */
  const char *summary;               /* one line in the area's help */
  int (*run)(int argc, char **argv); /* argv[0] is the verb */
} ag_cli_verb;

typedef struct ag_cli_area_help {
  const char *name;  /* "vision" */
  const char *about; /* a paragraph under the usage line, or NULL */
  const ag_cli_verb *verbs;
  int verb_count;
} ag_cli_area_help;

/* `agora <area> <verb> ...`: runs the verb argv[1] names (argv[0] is the
 * area). No verb: the area's help on stderr, exit 2; --help / -h / help:
 * on stdout, exit 0; an unknown verb: an error listing the verbs, exit 2. */
int ag_cli_dispatch(const ag_cli_area_help *area, int argc, char **argv);

#endif
